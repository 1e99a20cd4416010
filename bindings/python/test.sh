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
exec python3 - "$@" <<'PY'
import sys
import unittest

suite = unittest.defaultTestLoader.discover("tests")
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
skipped = len(result.skipped)
line = "python: %d passed, %d failed" % (result.testsRun - failed - skipped, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
PY
