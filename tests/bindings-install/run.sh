#!/usr/bin/env bash
# Install every binding as a package, from outside the repository, against the library that
# `make install` put into a temporary prefix, and stream from a throwaway PostgreSQL:
#
#   Python  a venv, `pip install bindings/python` (the pure package: finds the library
#           through pkg-config), then the wheel of `make python-wheel` (library inside) in a
#           second venv with no pkg-config path
#   Ruby    `gem build` + `gem install` into a gem home of its own (ffi from the system)
#   Node    `npm pack` + `npm install <tarball>` into an app directory (koffi from npm), and
#           tsc --strict on a TypeScript program against the package's types
#   Go      a module of its own requiring the binding with a `replace`, linked with an rpath
#           (CGO_LDFLAGS) to the prefix, run without LD_LIBRARY_PATH
#
#   tests/bindings-install/run.sh        (make test-bindings-install)
#
# Package caches (pip, npm, Go) live in build/cache. The library must be built (`make build`).
# Inside scripts/with-pg (FW_PG_DIR set) the running cluster is used. A missing toolchain is
# a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [[ -z ${FW_PG_DIR:-} ]]; then
    exec "$ROOT/scripts/with-pg" "$HERE/run.sh" "$@"
fi
for tool in python3 ruby gem node npm go pkg-config; do
    command -v "$tool" >/dev/null || { echo "bindings-install: FAIL: $tool is missing" >&2; exit 1; }
done

CACHE=$ROOT/build/cache
mkdir -p "$CACHE"
WORK=$(mktemp -d /tmp/fw-bindings-install.XXXXXX)
cleanup() { chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PREFIX=$WORK/prefix
step() { printf '== bindings-install: %s\n' "$*"; }

step "make install PREFIX=$PREFIX"
make -C "$ROOT" --no-print-directory install PREFIX="$PREFIX" >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; exit 1; }
# Nothing points the loader at the prefix: the packages find the library through pkg-config
# (Python, Ruby, Node) or their rpath (Go).
unset FW_LIB FW_LIB_DIR LD_LIBRARY_PATH
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
cp "$HERE"/check.* "$WORK/"
cd "$WORK"
failed=0
check() { # name command... (in a subshell of its own, so that set -e applies inside it)
    local name=$1
    shift
    ("$@") &
    if ! wait $!; then
        echo "bindings-install: FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}

# --- Python
py_pure() {
    cp -r "$ROOT/bindings/python" "$WORK/python-src"
    rm -rf "$WORK/python-src/tests" "$WORK/python-src/build" "$WORK/python-src/fraiseql_wire/"*.so
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet --cache-dir "$CACHE/pip" "$WORK/python-src"
    "$WORK/venv/bin/python" "$WORK/check.py" "$PREFIX/lib"
}
py_wheel() {
    make -C "$ROOT" --no-print-directory python-wheel >"$WORK/wheel.log" 2>&1 ||
        { cat "$WORK/wheel.log" >&2; return 1; }
    local whl
    # Tagged for this Python and platform (the accelerator is a compiled module).
    whl=$(ls "$ROOT"/build/python-wheel/dist/fraiseql_wire-*-linux_*.whl)
    python3 -m venv "$WORK/venv-wheel"
    "$WORK/venv-wheel/bin/pip" install --quiet --no-index "$whl"
    local site
    site=$("$WORK/venv-wheel/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
    PKG_CONFIG_PATH=/nonexistent "$WORK/venv-wheel/bin/python" "$WORK/check.py" "$site/fraiseql_wire"
}
step "python: pip install bindings/python into a venv"
check "python package" py_pure
step "python: the wheel of make python-wheel (library inside)"
check "python wheel" py_wheel

# --- Ruby
rb() {
    cp -r "$ROOT/bindings/ruby" "$WORK/ruby-src"
    (cd "$WORK/ruby-src" && gem build --quiet fraiseql-wire.gemspec >/dev/null)
    local system_gems
    system_gems=$(gem env gempath)
    # ffi comes from the system (Debian ruby-ffi): the gem home only gets fraiseql-wire.
    GEM_HOME=$WORK/gems GEM_PATH=$system_gems gem install --local --no-document \
        "$WORK"/ruby-src/fraiseql-wire-*.gem >/dev/null
    [[ -f $WORK/gems/gems/fraiseql-wire-0.1.0/lib/fraiseql_wire.rb ]]
    GEM_HOME=$WORK/gems GEM_PATH=$WORK/gems:$system_gems ruby "$WORK/check.rb" "$PREFIX/lib"
}
step "ruby: gem build + gem install"
check "ruby gem" rb

# --- Node
nd() {
    (cd "$ROOT/bindings/node" && npm pack --silent --pack-destination "$WORK" >/dev/null)
    mkdir -p "$WORK/nodeapp"
    cd "$WORK/nodeapp"
    echo '{ "name": "fw-install-check", "private": true }' > package.json
    npm install --silent --no-audit --no-fund --cache "$CACHE/npm" "$WORK"/fraiseql-wire-*.tgz typescript@5
    cp "$WORK/check.js" "$WORK/check.ts" .
    node check.js "$PREFIX/lib"
    npx --no-install tsc --noEmit --strict --target es2022 --module commonjs --lib es2022,dom check.ts
    echo "node: index.d.ts type-checks"
}
step "node: npm pack + npm install <tarball>"
check "node package" nd

# --- Go
gomod() {
    mkdir -p "$WORK/goapp"
    cp "$HERE/go/main.go" "$WORK/goapp/"
    cat > "$WORK/goapp/go.mod" <<MOD
module example.com/fwcheck

go 1.19

require github.com/fraiseql/fraiseql-wire/bindings/go v0.1.0

replace github.com/fraiseql/fraiseql-wire/bindings/go => $ROOT/bindings/go
MOD
    (cd "$WORK/goapp" && GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$CACHE/go-build \
        GOPATH=$WORK/gopath CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib" go build -o fwcheck .)
    "$WORK/goapp/fwcheck" "$PREFIX/lib"
}
step "go: a module with a replace, rpath through CGO_LDFLAGS"
check "go module" gomod

echo "bindings-install: $((5 - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
