#!/usr/bin/env bash
# Run the Node binding's tests (node --test) against a throwaway PostgreSQL.
#
#   bindings/node/test.sh
#
# Installs koffi into bindings/node/node_modules with `npm ci` when it is missing.
# Library: $FW_LIB_DIR (default <repo>/target/release, built with cargo if missing).
# Inside scripts/with-pg (FW_PG_DIR set) the running cluster is used; otherwise the
# tests are run under scripts/with-pg. With CI=true a missing toolchain is a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

missing() {
    if [[ ${CI:-} == true ]]; then
        echo "node binding: FAIL: $1 is missing (CI=true)" >&2
        exit 1
    fi
    echo "node binding: skipped: $1 is missing"
    exit 0
}
command -v node >/dev/null || missing "node (Debian: nodejs)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' ||
    missing "node >= 18 (found $(node --version))"

cd "$HERE"
if ! node -e 'require("koffi")' 2>/dev/null; then
    command -v npm >/dev/null || missing "npm (to install koffi)"
    npm ci --no-audit --no-fund
fi

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

exec node --expose-gc --test "$@" test/
