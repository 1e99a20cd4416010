#!/usr/bin/env bash
# Install or remove fraiseql-wire: `make install` / `make uninstall` run this.
#
#   packaging/install.sh install     copy the built libraries, header, pkg-config file and
#                                    CMake package under $DESTDIR$PREFIX
#   packaging/install.sh uninstall   remove exactly those files
#   packaging/install.sh manifest    list the paths install writes (under $DESTDIR)
#
# Environment (the Makefile passes its variables; defaults in brackets):
#   PREFIX [/usr/local]  LIBDIR [$PREFIX/lib]  INCLUDEDIR [$PREFIX/include]
#   PKGCONFDIR [$LIBDIR/pkgconfig]  CMAKEDIR [$LIBDIR/cmake/FraiseqlWire]
#                        where the files go at run time: absolute paths. fraiseql-wire.pc
#                        names them; the CMake package only uses where they are relative to
#                        CMAKEDIR, so a prefix can be moved (or used from $DESTDIR) as a whole.
#   DESTDIR              staging root prepended to every path written (packagers)
#   STRIP_DEBUG [1]      1: remove debug info from the installed .so and .a (the release
#                        profile builds line tables, debug = 1: 24 MB .so -> 4 MB). The symbol
#                        table stays, so backtraces still name functions. 0: install as built.
#   STRIP [strip]        the strip program
#   LDCONFIG [ldconfig]  run after installing when root and DESTDIR is empty; empty: don't
#   FW_NATIVE_STATIC_LIBS  the native libraries of the staticlib, if you know them (normally
#                        computed by packaging/native-static-libs.sh, which asks rustc)
#   CARGO [cargo]
#
# The libraries must be built first (`make build`, i.e. `cargo build --release`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'packaging/install.sh: %s\n' "$*" >&2; exit 1; }

action=${1:-}
[[ $action == install || $action == uninstall || $action == manifest ]] ||
    die "usage: packaging/install.sh install|uninstall|manifest"

PREFIX=${PREFIX:-/usr/local}
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
PKGCONFDIR=${PKGCONFDIR:-$LIBDIR/pkgconfig}
CMAKEDIR=${CMAKEDIR:-$LIBDIR/cmake/FraiseqlWire}
DESTDIR=${DESTDIR:-}
STRIP_DEBUG=${STRIP_DEBUG:-1}
STRIP=${STRIP:-strip}
LDCONFIG=${LDCONFIG-ldconfig}

for v in PREFIX LIBDIR INCLUDEDIR PKGCONFDIR CMAKEDIR; do
    [[ ${!v} == /* ]] || die "$v must be an absolute path (got '${!v}'; e.g. $v=\$PWD/${!v})"
done
[[ -z $DESTDIR || $DESTDIR == /* ]] || die "DESTDIR must be an absolute path (got '$DESTDIR')"
[[ $STRIP_DEBUG == 0 || $STRIP_DEBUG == 1 ]] || die "STRIP_DEBUG must be 0 or 1"

# --- version: the header's macros (what programs compile against), checked against Cargo.toml
header=include/fraiseql_wire.h
macro() { sed -n "s/^#define $1 //p" "$header" | tr -d '"'; }
major=$(macro FW_VERSION_MAJOR)
minor=$(macro FW_VERSION_MINOR)
patch=$(macro FW_VERSION_PATCH)
version=$(macro FW_VERSION_STRING)
[[ -n $major && -n $minor && -n $patch && $version == "$major.$minor.$patch" ]] ||
    die "$header: FW_VERSION_* macros missing or inconsistent ('$major' '$minor' '$patch' '$version')"
cargo_version=$(awk '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' Cargo.toml)
[[ $cargo_version == "$version" ]] ||
    die "$header says $version but Cargo.toml says $cargo_version: run \`make header\`"

real_so=libfraiseql_wire.so.$version
soname=libfraiseql_wire.so.$major

d_lib=$DESTDIR$LIBDIR
d_inc=$DESTDIR$INCLUDEDIR
d_pc=$DESTDIR$PKGCONFDIR
d_cmake=$DESTDIR$CMAKEDIR

manifest() {
    printf '%s\n' "$d_inc/fraiseql_wire.h" "$d_lib/libfraiseql_wire.a" "$d_lib/$real_so" \
        "$d_lib/$soname" "$d_lib/libfraiseql_wire.so" "$d_pc/fraiseql-wire.pc" \
        "$d_cmake/FraiseqlWireConfig.cmake" "$d_cmake/FraiseqlWireConfigVersion.cmake"
}

if [[ $action == manifest ]]; then
    manifest
    exit 0
fi

if [[ $action == uninstall ]]; then
    # An older version's library file, if the SONAME link still points to one.
    if [[ -L $d_lib/$soname ]]; then
        old=$(readlink "$d_lib/$soname")
        if [[ $old == libfraiseql_wire.so.* && $old != */* && $old != "$real_so" ]]; then
            rm -f "$d_lib/$old"
        fi
    fi
    manifest | while IFS= read -r f; do rm -f "$f"; done
    # Only the package's own directory; lib/, include/, pkgconfig/ may hold others' files.
    if [[ -d $d_cmake ]]; then rmdir "$d_cmake" 2>/dev/null || true; fi
    echo "uninstalled fraiseql-wire $version from ${DESTDIR}${PREFIX}"
    exit 0
fi

# --- install -------------------------------------------------------------------------------
so=target/release/libfraiseql_wire.so
a=target/release/libfraiseql_wire.a
[[ -f $so && -f $a ]] || die "$so or $a is missing: run \`make build\` first"

if [[ -n ${FW_NATIVE_STATIC_LIBS:-} ]]; then
    native=$FW_NATIVE_STATIC_LIBS
else
    native=$(packaging/native-static-libs.sh) || die "could not get the staticlib's native libraries"
fi
# The same list for CMake: -lfoo -> foo, anything else (a path, a linker flag) as is.
native_cmake=""
for w in $native; do
    [[ $w == -l* ]] && w=${w#-l}
    native_cmake+=${native_cmake:+;}$w
done

# Pointer size of the library (ELF class byte) for the CMake version check.
case $(od -An -tu1 -j4 -N1 "$so" | tr -d ' ') in
    1) sizeof_void_p=4 ;;
    2) sizeof_void_p=8 ;;
    *) die "$so is not an ELF file" ;;
esac

# Paths relative to the CMake package directory (lexical: symlinks are not resolved, so the
# layout under a moved or staged prefix is what counts).
rel() { realpath -m -s --relative-to="$1" "$2"; }
cmake_to_lib=$(rel "$CMAKEDIR" "$LIBDIR")
cmake_to_inc=$(rel "$CMAKEDIR" "$INCLUDEDIR")

# pkg-config: libdir and includedir in terms of ${prefix} when they are under it.
pc_path() {
    # shellcheck disable=SC2016 # a literal ${prefix}, for pkg-config
    case $1 in
        "$PREFIX") printf '%s' '${prefix}' ;;
        "$PREFIX"/*) printf '%s' "\${prefix}${1#"$PREFIX"}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Fill a template's @NAME@ placeholders; fail if one is left.
subst_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
fill() {
    local in=$1 out=$2 args=() kv
    shift 2
    for kv in "$@"; do
        args+=(-e "s|@${kv%%=*}@|$(subst_escape "${kv#*=}")|g")
    done
    sed "${args[@]}" "$in" > "$out.tmp.$$"
    if grep -n '@[A-Z_][A-Z_]*@' "$out.tmp.$$" >&2; then
        rm -f "$out.tmp.$$"
        die "$in: placeholder(s) left unfilled (above)"
    fi
    chmod 644 "$out.tmp.$$"
    mv -f "$out.tmp.$$" "$out"
}

# Copy $1 to $2 with mode $3 through a temporary name, optionally stripping the copy: the
# rename gives the destination a new inode, so processes that have the old library mapped
# keep it intact.
put() {
    local src=$1 dst=$2 mode=$3 tmp=$2.tmp.$$
    install -m "$mode" "$src" "$tmp"
    if [[ $STRIP_DEBUG == 1 ]]; then
        if [[ $dst == *.a ]]; then
            "$STRIP" --strip-debug --enable-deterministic-archives "$tmp"
        else
            "$STRIP" --strip-debug "$tmp"
        fi
    fi
    mv -f "$tmp" "$dst"
}

install -d "$d_lib" "$d_inc" "$d_pc" "$d_cmake"
install -m 644 "$header" "$d_inc/fraiseql_wire.h"
put "$a" "$d_lib/libfraiseql_wire.a" 644
put "$so" "$d_lib/$real_so" 755
ln -sfn "$real_so" "$d_lib/$soname"
ln -sfn "$soname" "$d_lib/libfraiseql_wire.so"

fill packaging/fraiseql-wire.pc.in "$d_pc/fraiseql-wire.pc" \
    "PREFIX=$PREFIX" "LIBDIR=$(pc_path "$LIBDIR")" "INCLUDEDIR=$(pc_path "$INCLUDEDIR")" \
    "VERSION=$version" "NATIVE_STATIC_LIBS=$native"
fill packaging/FraiseqlWireConfig.cmake.in "$d_cmake/FraiseqlWireConfig.cmake" \
    "VERSION=$version" "MAJOR=$major" "CMAKE_TO_LIBDIR=$cmake_to_lib" \
    "CMAKE_TO_INCLUDEDIR=$cmake_to_inc" "NATIVE_STATIC_LIBS=$native_cmake"
fill packaging/FraiseqlWireConfigVersion.cmake.in "$d_cmake/FraiseqlWireConfigVersion.cmake" \
    "VERSION=$version" "SIZEOF_VOID_P=$sizeof_void_p"

if [[ -z $DESTDIR && -n $LDCONFIG && $EUID -eq 0 ]] && command -v "$LDCONFIG" >/dev/null; then
    "$LDCONFIG"
fi
echo "installed fraiseql-wire $version under ${DESTDIR}${PREFIX}$([[ $STRIP_DEBUG == 1 ]] && echo ' (debug info stripped)')"
