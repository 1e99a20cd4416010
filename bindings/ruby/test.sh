#!/usr/bin/env bash
# Run the Ruby binding's tests (minitest) against a throwaway PostgreSQL.
#
#   bindings/ruby/test.sh
#
# Library: $FW_LIB_DIR (default <repo>/target/release, built with cargo if missing).
# Inside scripts/with-pg (FW_PG_DIR set) the running cluster is used; otherwise the
# tests are run under scripts/with-pg. With CI=true a missing toolchain is a failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

missing() {
    if [[ ${CI:-} == true ]]; then
        echo "ruby binding: FAIL: $1 is missing (CI=true)" >&2
        exit 1
    fi
    echo "ruby binding: skipped: $1 is missing"
    exit 0
}
command -v ruby >/dev/null || missing ruby
ruby -e 'require "ffi"' 2>/dev/null || missing "the ffi gem (Debian: ruby-ffi)"
ruby -e 'require "minitest"' 2>/dev/null || missing minitest

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
exec ruby -Ilib test/test_fraiseql_wire.rb -v "$@"
