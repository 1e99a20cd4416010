#!/usr/bin/env bash
# Build a wheel of the Python binding with the shared library inside (`make python-wheel`):
# build/python-wheel/dist/fraiseql_wire-<version>-cp3X-cp3X-linux_<arch>.whl (with the
# compiled accelerator, for the Python that builds it; py3-none-linux_<arch> where it cannot be
# built). Installed with pip, it needs no libfraiseql_wire on the machine (the package loads
# its own copy).
# The library must be built first (`make build`); its debug info is stripped (24 MB -> 4 MB).
# pip fetches setuptools for the build (PyPI), caching it in build/cache/pip.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/build/python-wheel
SO=$ROOT/target/release/libfraiseql_wire.so
[[ -f $SO ]] || { echo "build-wheel.sh: $SO is missing: run \`make build\` first" >&2; exit 1; }
major=$(sed -n 's/^#define FW_VERSION_MAJOR //p' "$ROOT/include/fraiseql_wire.h")
grep -q "^MAJOR = $major\$" "$ROOT/bindings/python/fraiseql_wire/_native.py" ||
    { echo "build-wheel.sh: _native.MAJOR is not the header's FW_VERSION_MAJOR ($major)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/src/fraiseql_wire" "$OUT/dist"
cp "$ROOT"/bindings/python/{pyproject.toml,setup.py,README.md} "$OUT/src/"
cp "$ROOT"/bindings/python/fraiseql_wire/{*.py,*.c} "$OUT/src/fraiseql_wire/"
strip --strip-debug -o "$OUT/src/fraiseql_wire/libfraiseql_wire.so.$major" "$SO"
python3 -m pip wheel --quiet --no-deps --cache-dir "$ROOT/build/cache/pip" -w "$OUT/dist" "$OUT/src"
ls "$OUT"/dist/*.whl
