#!/usr/bin/env bash
# Run the Python binding's tests (stdlib unittest) against a throwaway PostgreSQL.
#
#   bindings/python/test.sh
#
# Library: $FW_LIB_DIR (default <repo>/target/release, built with cargo if missing).
# Inside scripts/with-pg (FW_PG_DIR set) the running cluster is used; otherwise the
# tests are run under scripts/with-pg. With CI=true a missing toolchain is a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

missing() {
    if [[ ${CI:-} == true ]]; then
        echo "python binding: FAIL: $1 is missing (CI=true)" >&2
        exit 1
    fi
    echo "python binding: skipped: $1 is missing"
    exit 0
}
command -v python3 >/dev/null || missing python3
python3 -c 'import ctypes' 2>/dev/null || missing "python3 ctypes"

if [[ -z ${FW_LIB_DIR:-} ]]; then
    FW_LIB_DIR=$ROOT/target/release
    if [[ ! -f $FW_LIB_DIR/libfraiseql_wire.so ]]; then
        (cd "$ROOT" && cargo build --release)
    fi
fi
export FW_LIB_DIR

if [[ -z ${FW_PG_DIR:-} ]]; then
    exec "$ROOT/scripts/with-pg" "$HERE/test.sh" "$@"
fi

cd "$HERE"
# The optional accelerator, built in place as `pip install` builds it; the suite runs with
# it and again without it (FW_PY_NO_EXT=1), the pure-Python path.
mkdir -p build
if python3 setup.py build_ext --inplace --quiet >/dev/null 2>build/accelerator.log; then
    expect=1
elif [[ ${CI:-} == true ]]; then
    cat build/accelerator.log >&2
    echo "python binding: FAIL: the accelerator did not build (CI=true)" >&2
    exit 1
else
    echo "python binding: the accelerator did not build (build/accelerator.log): pure path only"
    expect=0
fi
if [[ $expect == 1 ]]; then
    echo "== python binding, with the accelerator"
    FW_PY_EXPECT_EXT=1 python3 - "$@" <"$HERE/tests/run.py"
fi
echo "== python binding, without the accelerator (FW_PY_NO_EXT=1)"
FW_PY_NO_EXT=1 FW_PY_EXPECT_EXT=0 exec python3 - "$@" <"$HERE/tests/run.py"
