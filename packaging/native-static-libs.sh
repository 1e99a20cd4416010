#!/usr/bin/env bash
# Print the native libraries that a program linking libfraiseql_wire.a must also link, as
# rustc reports them for the staticlib (`--print native-static-libs`), on one line, e.g.
#   -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#
# Used by `make install` (Libs.private of fraiseql-wire.pc, INTERFACE_LINK_LIBRARIES of
# FraiseqlWire::fraiseql_wire_static) and by tests/packaging/run.sh.
#
# `cargo rustc --crate-type staticlib` builds the staticlib as a unit of its own, apart from
# `cargo build`'s (same sources, same profile and features), so running this does not make
# `cargo build --release` stale: it compiles once after each source change, and afterwards
# cargo finds the unit fresh and replays rustc's cached note in a fraction of a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! out=$("${CARGO:-cargo}" rustc --release --lib --crate-type staticlib \
    -- --print native-static-libs 2>&1); then
    printf '%s\n' "$out" >&2
    echo "native-static-libs.sh: cargo rustc failed" >&2
    exit 1
fi
libs=$(printf '%s\n' "$out" | sed -n 's/^note: native-static-libs: *//p' | tail -n 1)
if [[ -z $libs ]]; then
    printf '%s\n' "$out" >&2
    echo "native-static-libs.sh: rustc printed no 'native-static-libs' note" >&2
    exit 1
fi
printf '%s\n' "$libs"
