#!/usr/bin/env bash
# Print the native libraries that a program linking libfraiseql_wire.a must also link, as
# rustc reports them for the staticlib (`--print native-static-libs`), on one line, e.g.
#   -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#
# Used by `make install` (Libs.private of fraiseql-wire.pc, INTERFACE_LINK_LIBRARIES of
# FraiseqlWire::fraiseql_wire_static) and by tests/packaging/run.sh.
#
# Asking rustc means building the staticlib as a unit of its own (`cargo rustc --crate-type
# staticlib`, apart from `cargo build`'s), a second release build of about three minutes on
# a two-core machine. The list depends on the toolchain, the target and the dependencies, not
# on the library's own sources, so the answer is cached in target/ under a key made of
# `rustc -vV`, Cargo.toml and Cargo.lock: only the first call after one of those changes
# builds. FW_NATIVE_STATIC_LIBS_NO_CACHE=1 asks rustc again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo=${CARGO:-cargo}
rustc=${RUSTC:-rustc}
key=$({ "$rustc" -vV; cat Cargo.toml Cargo.lock; } | sha256sum | cut -c1-16)
cache_dir=${CARGO_TARGET_DIR:-target}/native-static-libs
cache=$cache_dir/$key

if [[ -z ${FW_NATIVE_STATIC_LIBS_NO_CACHE:-} && -s $cache ]]; then
    cat "$cache"
    exit 0
fi

if ! out=$("$cargo" rustc --release --lib --crate-type staticlib \
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
mkdir -p "$cache_dir"
printf '%s\n' "$libs" > "$cache.tmp"
mv "$cache.tmp" "$cache"
printf '%s\n' "$libs"
