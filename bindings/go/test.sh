#!/usr/bin/env bash
# Run the Go binding's tests (go test) against a throwaway PostgreSQL.
#
#   bindings/go/test.sh [go test flags...]
#
# Library: $FW_LIB_DIR (default <repo>/target/release, built with cargo if missing).
# cgo finds the library through `#cgo pkg-config: fraiseql-wire`: this script writes a
# pkg-config file for the build tree, <repo>/target/pkgconfig/fraiseql-wire.pc (the one
# `make install` installs describes the installed files instead), and puts it first on
# PKG_CONFIG_PATH. The tests then also run once with -tags fw_nopkgconfig, the flags coming
# from CGO_CFLAGS / CGO_LDFLAGS. Inside scripts/with-pg (FW_PG_DIR set) the running cluster
# is used; otherwise the tests are run under scripts/with-pg. With CI=true a missing
# toolchain is a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

missing() {
    if [[ ${CI:-} == true ]]; then
        echo "go binding: FAIL: $1 is missing (CI=true)" >&2
        exit 1
    fi
    echo "go binding: skipped: $1 is missing"
    exit 0
}
command -v go >/dev/null || missing "go (Debian: golang-go)"
command -v pkg-config >/dev/null || missing pkg-config
command -v cc >/dev/null || command -v gcc >/dev/null || missing "a C compiler"

if [[ -z ${FW_LIB_DIR:-} ]]; then
    FW_LIB_DIR=$ROOT/target/release
    if [[ ! -f $FW_LIB_DIR/libfraiseql_wire.so ]]; then
        (cd "$ROOT" && cargo build --release)
    fi
fi
FW_LIB_DIR=$(cd "$FW_LIB_DIR" && pwd)
export FW_LIB_DIR

if [[ -z ${FW_PG_DIR:-} ]]; then
    exec "$ROOT/scripts/with-pg" "$HERE/test.sh" "$@"
fi

# Build-tree pkg-config file.
version=$(sed -n 's/^#define FW_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/include/fraiseql_wire.h")
mkdir -p "$ROOT/target/pkgconfig"
cat > "$ROOT/target/pkgconfig/fraiseql-wire.pc" <<PC
# Written by bindings/go/test.sh for the build tree (not installed).
includedir=$ROOT/include
libdir=$FW_LIB_DIR

Name: fraiseql-wire
Description: Stream JSON rows from PostgreSQL (build tree)
Version: ${version:-0.0.0}
Cflags: -I\${includedir}
Libs: -L\${libdir} -lfraiseql_wire
PC
export PKG_CONFIG_PATH=$ROOT/target/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}

# At run time the loader looks for the library's SONAME (e.g. libfraiseql_wire.so.0),
# which cargo does not create in the build tree: link it in a directory of our own.
run_dir=$FW_LIB_DIR
soname=$( (readelf -d "$FW_LIB_DIR/libfraiseql_wire.so" 2>/dev/null || true) |
    sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [[ -n $soname && ! -e $FW_LIB_DIR/$soname ]]; then
    run_dir=$ROOT/target/pkgconfig/lib
    mkdir -p "$run_dir"
    ln -sfn "$FW_LIB_DIR/libfraiseql_wire.so" "$run_dir/$soname"
fi
export LD_LIBRARY_PATH=$run_dir:$FW_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

cd "$HERE"
gofmt_out=$(gofmt -l .)
if [[ -n $gofmt_out ]]; then
    echo "go binding: not gofmt-ed: $gofmt_out" >&2
    exit 1
fi
go vet ./...
go test -count=1 -v "$@" ./...

echo "go binding: again with -tags fw_nopkgconfig (CGO_CFLAGS/CGO_LDFLAGS)"
CGO_CFLAGS="-I$ROOT/include" CGO_LDFLAGS="-L$FW_LIB_DIR" PKG_CONFIG_PATH=/nonexistent \
    go test -count=1 -tags fw_nopkgconfig -run 'TestVersion|TestLargeViewCountAndContent|TestMissingViewSQLState' ./...
