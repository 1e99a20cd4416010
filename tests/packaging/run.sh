#!/usr/bin/env bash
# Packaging tests (`make test-packaging`): install fraiseql-wire into temporary prefixes with
# `make install` (with and without DESTDIR) and use it the way its users do:
#
#   - the installed files, their symlinks, the SONAME, -z nodelete, exported symbols (fw_* only,
#     exactly the header's functions), stripped debug info;
#   - the version: Cargo.toml = header macros = fw_version() = pkg-config = CMake = file name;
#   - the header alone compiles as C99 and C++17 with -Wall -Wextra -Werror -pedantic;
#   - hello.c built with nothing but `pkg-config --cflags --libs fraiseql-wire` (shared), and
#     with `pkg-config --static` against the archive (no dependency on the .so), runs;
#   - Libs.private is what rustc prints for the staticlib (--print native-static-libs);
#   - a CMake project (cmake/) finds the package, builds shared and static variants, they run;
#     the package is relocatable and its version check accepts and refuses what it should;
#   - dlclose leaves the library loaded (dlclose.c);
#   - `make uninstall` leaves the prefixes without any of our files.
#
# Needs no PostgreSQL. Missing tools fail the run, they are never skipped. Prints every
# failure with its log, then "N passed, N failed"; exits 1 if anything failed.
# KEEP_TMP=1 keeps the temporary directory (kept anyway when something failed).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HERE=$ROOT/tests/packaging
FW_MAKE="make"
CC=${CC:-cc}

T=$(mktemp -d "${TMPDIR:-/tmp}/fw-packaging.XXXXXX")
LOGS=$T/logs
mkdir -p "$LOGS"

passed=0
failed=0
failed_names=()
n=0

finish() {
    echo
    if ((failed > 0)); then
        echo "FAILED checks:"
        printf '  %s\n' "${failed_names[@]}"
        echo "(logs and prefixes kept in $T)"
    elif [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "(kept $T)"
    else
        rm -rf "$T"
    fi
    echo "$passed passed, $failed failed"
}
trap finish EXIT

# check NAME COMMAND...: run COMMAND (a function, usually) with its output in a log; report.
check() {
    local name=$1 log start=$SECONDS
    shift
    n=$((n + 1))
    log=$LOGS/$(printf '%02d' "$n")-${name//[^A-Za-z0-9_.-]/_}.log
    # A statement of its own: bash ignores set -e in a command that is part of an if, ||, &&
    # or ! (even in a subshell), so the status is read afterwards.
    local rc
    (set -e; "$@") >"$log" 2>&1
    rc=$?
    if ((rc == 0)); then
        passed=$((passed + 1))
        printf 'ok    %s (%ds)\n' "$name" $((SECONDS - start))
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        printf 'FAIL  %s (%ds)\n' "$name" $((SECONDS - start))
        sed 's/^/      | /' "$log" | tail -n 60
    fi
}

# Helpers for check bodies (each body runs in a subshell, with -e).
fail() { echo "$*"; return 1; }
expect_eq() { # WHAT GOT WANT
    if [[ $2 != "$3" ]]; then
        printf '%s: got\n  %s\nwant\n  %s\n' "$1" "$2" "$3"
        return 1
    fi
    echo "$1: $2"
}
run() { echo "+ $*"; "$@"; }

# cmake, without make settings of a calling make (its generated Makefiles run make).
cm() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKE cmake "$@"; }

# `make` for our own targets, without variables the caller's make may have passed down.
fw_make() {
    env -u MAKEFLAGS -u MFLAGS -u DESTDIR -u PREFIX -u LIBDIR -u INCLUDEDIR -u PKGCONFDIR \
        -u CMAKEDIR -u STRIP_DEBUG "$FW_MAKE" --no-print-directory -C "$ROOT" "$@"
}

# The files an install into $1 (a path under which PREFIX/... appears) must hold, sorted.
expected_files() {
    local p=$1
    printf '%s\n' "$p/include/fraiseql_wire.h" "$p/lib/libfraiseql_wire.a" \
        "$p/lib/libfraiseql_wire.so" "$p/lib/libfraiseql_wire.so.$MAJOR" \
        "$p/lib/libfraiseql_wire.so.$VERSION" "$p/lib/pkgconfig/fraiseql-wire.pc" \
        "$p/lib/cmake/FraiseqlWire/FraiseqlWireConfig.cmake" \
        "$p/lib/cmake/FraiseqlWire/FraiseqlWireConfigVersion.cmake" | sort
}
files_under() { find "$1" \( -type f -o -type l \) | sort; }

# ---------------------------------------------------------------------------------------------
# versions and tools
# ---------------------------------------------------------------------------------------------

VERSION=$(awk '/^\[/ { pkg = ($0 == "[package]") }
    pkg && /^version *=/ { gsub(/[" ]/, ""); sub(/^version=/, ""); print; exit }' Cargo.toml)
MAJOR=${VERSION%%.*}
MINOR=${VERSION#*.}
MINOR=${MINOR%%.*}
echo "fraiseql-wire $VERSION (Cargo.toml); temporary directory $T"

t_tools() {
    local missing=() t
    for t in "$FW_MAKE" "$CC" pkg-config cmake nm readelf ldd strip realpath; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    command -v c++ >/dev/null || command -v clang++ >/dev/null || missing+=("c++ or clang++")
    ((${#missing[@]} == 0)) || fail "missing tools: ${missing[*]} (make deps installs them)"
    [[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "Cargo.toml version '$VERSION'"
    echo "all tools present"
}
check "tools present, Cargo.toml version parsed" t_tools

t_header_macros() {
    local h=include/fraiseql_wire.h
    expect_eq FW_VERSION_MAJOR "$(sed -n 's/^#define FW_VERSION_MAJOR //p' $h)" "$MAJOR"
    expect_eq FW_VERSION_MINOR "$(sed -n 's/^#define FW_VERSION_MINOR //p' $h)" "$MINOR"
    expect_eq FW_VERSION_PATCH "$(sed -n 's/^#define FW_VERSION_PATCH //p' $h)" "${VERSION##*.}"
    expect_eq FW_VERSION_STRING "$(sed -n 's/^#define FW_VERSION_STRING //p' $h)" "\"$VERSION\""
}
check "header version macros = Cargo.toml" t_header_macros

# ---------------------------------------------------------------------------------------------
# install into a plain prefix
# ---------------------------------------------------------------------------------------------

A=$T/prefix
LIB=$A/lib
export PKG_CONFIG_PATH=$LIB/pkgconfig

t_install() {
    run fw_make install PREFIX="$A"
    # A second install over the first one must work too (upgrades, reinstalls).
    run fw_make install PREFIX="$A"
    expect_eq "installed files" "$(files_under "$A")" "$(expected_files "$A")"
    expect_eq "libfraiseql_wire.so ->" "$(readlink "$LIB/libfraiseql_wire.so")" \
        "libfraiseql_wire.so.$MAJOR"
    expect_eq "libfraiseql_wire.so.$MAJOR ->" "$(readlink "$LIB/libfraiseql_wire.so.$MAJOR")" \
        "libfraiseql_wire.so.$VERSION"
    [[ -f $LIB/libfraiseql_wire.so.$VERSION && ! -L $LIB/libfraiseql_wire.so.$VERSION ]] ||
        fail "libfraiseql_wire.so.$VERSION is not a regular file"
    # What packaging/install.sh says it installs is what is there.
    expect_eq "install.sh manifest" \
        "$(PREFIX=$A packaging/install.sh manifest | sort)" "$(expected_files "$A")"
}
check "make install PREFIX=<tmp> (twice)" t_install

t_soname() {
    local d
    d=$(readelf -d "$LIB/libfraiseql_wire.so.$VERSION")
    expect_eq SONAME "$(sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' <<<"$d")" "libfraiseql_wire.so.$MAJOR"
    grep -E '\(FLAGS_1\).*NODELETE' <<<"$d" || fail "DT_FLAGS_1 lacks NODELETE (build.rs -z nodelete)"
}
check "readelf -d: SONAME libfraiseql_wire.so.$MAJOR, NODELETE" t_soname

t_symbols() {
    local syms others header_fns
    syms=$(nm -D --defined-only "$LIB/libfraiseql_wire.so.$VERSION" | awk '{ print $NF }' | sort -u)
    [[ -n $syms ]] || fail "no dynamic symbols defined"
    others=$(grep -v '^fw_' <<<"$syms" || true)
    [[ -z $others ]] || fail "exported symbols other than fw_*:"$'\n'"$others"
    # Exactly the functions the installed header declares.
    header_fns=$(grep -oE '\bfw_[a-z0-9_]+\(' "$A/include/fraiseql_wire.h" | tr -d '(' | sort -u)
    expect_eq "exported = declared in the header" "$syms" "$header_fns"
}
check "nm -D: only fw_* symbols, exactly the header's functions" t_symbols

t_stripped() {
    local s
    s=$(readelf -S -W "$LIB/libfraiseql_wire.so.$VERSION")
    # Section names starting with .debug_ (readelf -S -W: "[Nr] Name Type ...").
    if grep -E '\] \.debug_' <<<"$s"; then fail "the installed .so has debug sections"; fi
    grep -q '\.symtab' <<<"$s" || fail "the installed .so lost its symbol table"
    s=$(readelf -S -W "$LIB/libfraiseql_wire.a")
    if grep -E -m 3 '\] \.debug_' <<<"$s"; then fail "the installed .a has debug sections"; fi
    ls -l "$LIB/"
}
check "installed libraries: debug info stripped, symbol table kept" t_stripped

t_pc() {
    local native
    expect_eq "pkg-config --modversion" "$(pkg-config --modversion fraiseql-wire)" "$VERSION"
    pkg-config --exists "fraiseql-wire >= $MAJOR.$MINOR" || fail "pkg-config --exists '>= $MAJOR.$MINOR'"
    expect_eq "pkg-config --cflags" "$(pkg-config --cflags fraiseql-wire | xargs)" "-I$A/include"
    expect_eq "pkg-config --libs" "$(pkg-config --libs fraiseql-wire | xargs)" \
        "-L$LIB -lfraiseql_wire"
    if grep -q -- --validate <<<"$(pkg-config --help 2>&1)"; then
        run pkg-config --validate fraiseql-wire
    fi
    # Libs.private = what rustc reports for the staticlib now (asked again, not the answer
    # that packaging/native-static-libs.sh cached for `make install`).
    native=$(FW_NATIVE_STATIC_LIBS_NO_CACHE=1 packaging/native-static-libs.sh)
    echo "rustc --print native-static-libs: $native"
    expect_eq "Libs.private" "$(sed -n 's/^Libs.private: *//p' "$LIB/pkgconfig/fraiseql-wire.pc")" \
        "$native"
    cat "$LIB/pkgconfig/fraiseql-wire.pc"
}
check "fraiseql-wire.pc: version, flags, Libs.private = rustc native-static-libs" t_pc

# ---------------------------------------------------------------------------------------------
# the header alone
# ---------------------------------------------------------------------------------------------

t_header_c99() {
    local c any=0
    for c in "$CC" clang gcc; do
        command -v "$c" >/dev/null || continue
        any=1
        # shellcheck disable=SC2046
        run "$c" -std=c99 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags fraiseql-wire) \
            -c "$HERE/header_c99.c" -o "$T/header_c99.o"
    done
    ((any)) || fail "no C compiler"
}
check "header compiles as C99 -Wall -Wextra -Werror -pedantic" t_header_c99

t_header_cxx17() {
    local c any=0
    for c in c++ clang++ g++; do
        command -v "$c" >/dev/null || continue
        any=1
        # shellcheck disable=SC2046
        run "$c" -std=c++17 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags fraiseql-wire) \
            -c "$HERE/header_cxx17.cpp" -o "$T/header_cxx17.o"
    done
    ((any)) || fail "no C++ compiler"
}
check "header compiles as C++17 -Wall -Wextra -Werror -pedantic" t_header_cxx17

# ---------------------------------------------------------------------------------------------
# C programs through pkg-config
# ---------------------------------------------------------------------------------------------

t_pkgconfig_shared() {
    local out
    # shellcheck disable=SC2046
    run "$CC" -o "$T/hello_pc" "$HERE/hello.c" $(pkg-config --cflags --libs fraiseql-wire)
    out=$(LD_LIBRARY_PATH=$LIB "$T/hello_pc")
    expect_eq "fw_version() (LD_LIBRARY_PATH)" "$out" "$VERSION"
    LD_LIBRARY_PATH=$LIB ldd "$T/hello_pc" | tee "$T/ldd_pc"
    grep -q "libfraiseql_wire.so.$MAJOR => $LIB/libfraiseql_wire.so.$MAJOR" "$T/ldd_pc" ||
        fail "not linked against $LIB/libfraiseql_wire.so.$MAJOR"
    # The same with an rpath, without LD_LIBRARY_PATH.
    # shellcheck disable=SC2046
    run "$CC" -o "$T/hello_pc_rpath" "$HERE/hello.c" $(pkg-config --cflags --libs fraiseql-wire) \
        -Wl,-rpath,"$(pkg-config --variable=libdir fraiseql-wire)"
    out=$(env -u LD_LIBRARY_PATH "$T/hello_pc_rpath")
    expect_eq "fw_version() (rpath)" "$out" "$VERSION"
}
check "C program via pkg-config --cflags --libs (shared) builds and runs" t_pkgconfig_shared

# The archive through pkg-config: GNU ld prefers the .so when both are in libdir, so the
# -lfraiseql_wire of `pkg-config --static --libs` becomes -l:libfraiseql_wire.a (the README's
# recipe); the rest of the line (Libs.private) is used as is.
t_pkgconfig_static() {
    local libs out
    libs=$(pkg-config --static --libs fraiseql-wire)
    echo "pkg-config --static --libs: $libs"
    libs=${libs/-lfraiseql_wire/-l:libfraiseql_wire.a}
    # shellcheck disable=SC2046,SC2086
    run "$CC" -o "$T/hello_static" "$HERE/hello.c" $(pkg-config --static --cflags fraiseql-wire) $libs
    ldd "$T/hello_static" | tee "$T/ldd_static"
    if grep -q libfraiseql_wire "$T/ldd_static"; then fail "the static build needs libfraiseql_wire.so"; fi
    out=$(env -u LD_LIBRARY_PATH "$T/hello_static")
    expect_eq "fw_version() (static)" "$out" "$VERSION"
}
check "C program via pkg-config --static (archive) builds and runs, no .so dependency" t_pkgconfig_static

# ---------------------------------------------------------------------------------------------
# CMake
# ---------------------------------------------------------------------------------------------

# cmake_build BUILD_DIR PREFIX_PATH: configure and build tests/packaging/cmake.
cmake_build() {
    run cm -S "$HERE/cmake" -B "$1" -DCMAKE_PREFIX_PATH="$2" -DFW_EXPECT_VERSION="$VERSION" \
        -DCMAKE_BUILD_TYPE=Release | tee "$1.configure.log"
    grep -q "FraiseqlWire $VERSION from $2/lib/cmake/FraiseqlWire\$" "$1.configure.log" ||
        fail "the package was not found in $2"
    run cm --build "$1" -- VERBOSE=1
}

# cmake_run BUILD_DIR LIBDIR: run both programs (no LD_LIBRARY_PATH: CMake's build rpath).
cmake_run() {
    local out
    ldd "$1/hello_shared" | tee "$1.ldd_shared"
    grep -q "libfraiseql_wire.so.$MAJOR => $2/libfraiseql_wire.so.$MAJOR" "$1.ldd_shared" ||
        fail "hello_shared does not load $2/libfraiseql_wire.so.$MAJOR"
    out=$(env -u LD_LIBRARY_PATH "$1/hello_shared")
    expect_eq "hello_shared" "$out" "$VERSION"
    ldd "$1/hello_static" | tee "$1.ldd_static"
    if grep -q libfraiseql_wire "$1.ldd_static"; then fail "hello_static needs libfraiseql_wire.so"; fi
    out=$(env -u LD_LIBRARY_PATH "$1/hello_static")
    expect_eq "hello_static" "$out" "$VERSION"
}

t_cmake() {
    cmake_build "$T/cmake-build" "$A"
    cmake_run "$T/cmake-build" "$LIB"
}
check "CMake: find_package(FraiseqlWire $MAJOR.$MINOR), shared and static targets build and run" t_cmake

# Relocatable: a copy of the prefix elsewhere works on its own (paths come from the config
# file's location, not from the prefix given at install time).
t_cmake_relocated() {
    cp -a "$A" "$T/moved"
    cmake_build "$T/cmake-moved" "$T/moved"
    cmake_run "$T/cmake-moved" "$T/moved/lib"
    if grep -rn "$A" "$T/moved/lib/cmake"; then fail "the CMake package names the install prefix"; fi
    rm -rf "$T/moved"
}
check "CMake package is relocatable (prefix copied elsewhere)" t_cmake_relocated

# probe REQUEST [COMPONENTS] -> prints 1 if find_package accepts it, 0 if not.
probe() {
    local dir=$T/probe args=(-DFW_REQUEST="$1")
    [[ -n ${2:-} ]] && args+=(-DFW_COMPONENTS="$2")
    [[ -n ${3:-} ]] && args+=("$3")
    rm -rf "$dir"
    cm -S "$HERE/cmake-version" -B "$dir" -DCMAKE_PREFIX_PATH="$A" "${args[@]}" >"$dir.log" 2>&1 ||
        { cat "$dir.log"; return 1; }
    sed -n 's/.*FW_FOUND=\([01]\).*/\1/p' "$dir.log"
}
t_cmake_versions() {
    local req want got bad=0 next_minor=$((MINOR + 1)) next_major=$((MAJOR + 1))
    local cases=("$MAJOR.$MINOR:1" "$VERSION:1" "$MAJOR:1" "$MAJOR.$next_minor:$((MAJOR > 0))"
        "$next_major.0:0" "$MAJOR.$MINOR...$MAJOR.$next_minor:1"
        "$MAJOR.$next_minor...$next_major.0:0" "0...<$VERSION:0" "0...$VERSION:1")
    ((MAJOR == 0 && MINOR > 0)) && cases+=("0.$((MINOR - 1)):0")
    for c in "${cases[@]}"; do
        req=${c%:*} want=${c##*:}
        got=$(probe "$req")
        echo "find_package(FraiseqlWire $req): found=$got (want $want)"
        [[ $got == "$want" ]] || bad=1
    done
    got=$(probe "$MAJOR.$MINOR" "shared;static")
    echo "COMPONENTS shared static: found=$got (want 1)"
    [[ $got == 1 ]] || bad=1
    got=$(probe "$MAJOR.$MINOR" "nonesuch")
    echo "COMPONENTS nonesuch: found=$got (want 0)"
    [[ $got == 0 ]] || bad=1
    got=$(probe "$MAJOR.$MINOR" "" -DCMAKE_SIZEOF_VOID_P=4)
    echo "a 32-bit project: found=$got (want 0)"
    [[ $got == 0 ]] || bad=1
    ((bad == 0))
}
check "CMake version check: accepts compatible requests, refuses others" t_cmake_versions

# ---------------------------------------------------------------------------------------------
# dlclose
# ---------------------------------------------------------------------------------------------

t_dlclose() {
    # shellcheck disable=SC2046
    run "$CC" -std=c99 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags fraiseql-wire) \
        -o "$T/dlclose" "$HERE/dlclose.c" -ldl
    run "$T/dlclose" "$LIB/libfraiseql_wire.so.$MAJOR"
}
check "dlopen/dlclose/dlopen: the library stays loaded and keeps working" t_dlclose

# ---------------------------------------------------------------------------------------------
# the versions all agree
# ---------------------------------------------------------------------------------------------

t_versions() {
    expect_eq "Cargo.toml" "$VERSION" "$VERSION"
    expect_eq "fw_version()" "$(LD_LIBRARY_PATH=$LIB "$T/hello_pc")" "$VERSION"
    expect_eq "FW_VERSION_STRING (installed header)" \
        "$(sed -n 's/^#define FW_VERSION_STRING "\(.*\)"/\1/p' "$A/include/fraiseql_wire.h")" "$VERSION"
    expect_eq "pkg-config" "$(pkg-config --modversion fraiseql-wire)" "$VERSION"
    expect_eq "CMake PACKAGE_VERSION" "$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")/\1/p' \
        "$LIB/cmake/FraiseqlWire/FraiseqlWireConfigVersion.cmake")" "$VERSION"
    [[ -f $LIB/libfraiseql_wire.so.$VERSION ]] || fail "no libfraiseql_wire.so.$VERSION"
}
check "Cargo.toml = header macros = fw_version() = pkg-config = CMake = file name" t_versions

# ---------------------------------------------------------------------------------------------
# archive-only prefix, unstripped install
# ---------------------------------------------------------------------------------------------

# With only the archive installed (the .so files removed), the plain `pkg-config --static`
# line links it as is. Installed with STRIP_DEBUG=0: the debug info is kept.
C=$T/prefix-static
t_archive_only() {
    local out sections
    run fw_make install PREFIX="$C" STRIP_DEBUG=0
    sections=$(readelf -S -W "$C/lib/libfraiseql_wire.so.$VERSION")
    grep -q '\] \.debug_line' <<<"$sections" || fail "STRIP_DEBUG=0 install has no debug info"
    rm -f "$C"/lib/libfraiseql_wire.so*
    # shellcheck disable=SC2046
    run "$CC" -o "$T/hello_static2" "$HERE/hello.c" \
        $(PKG_CONFIG_PATH=$C/lib/pkgconfig pkg-config --static --cflags --libs fraiseql-wire)
    if ldd "$T/hello_static2" | grep libfraiseql_wire; then fail "needs libfraiseql_wire.so"; fi
    out=$(env -u LD_LIBRARY_PATH "$T/hello_static2")
    expect_eq "fw_version() (static, archive-only prefix)" "$out" "$VERSION"
    # uninstall copes with the missing .so files, and with the SONAME link of an older version
    # (an upgrade left behind): the file it points to goes too.
    : >"$C/lib/libfraiseql_wire.so.$MAJOR.0.0-old"
    ln -s "libfraiseql_wire.so.$MAJOR.0.0-old" "$C/lib/libfraiseql_wire.so.$MAJOR"
    run fw_make uninstall PREFIX="$C"
    expect_eq "files left in $C" "$(files_under "$C")" ""
}
check "archive-only prefix: pkg-config --static as is; STRIP_DEBUG=0; uninstall" t_archive_only

# ---------------------------------------------------------------------------------------------
# DESTDIR
# ---------------------------------------------------------------------------------------------

D=$T/stage
P=/opt/fraiseql-wire-packaging-test-$$-$RANDOM
S=$D$P
t_destdir() {
    local out
    [[ ! -e $P ]] || fail "$P exists already"
    run fw_make install DESTDIR="$D" PREFIX="$P"
    [[ ! -e $P ]] || fail "install with DESTDIR wrote to $P"
    expect_eq "staged files" "$(files_under "$D")" "$(expected_files "$S")"
    # The .pc names the final prefix; pkg-config's sysroot maps it into the staging directory.
    expect_eq "prefix in the .pc" "$(sed -n 's/^prefix=//p' "$S/lib/pkgconfig/fraiseql-wire.pc")" "$P"
    # shellcheck disable=SC2046
    run "$CC" -o "$T/hello_staged" "$HERE/hello.c" \
        $(PKG_CONFIG_PATH=$S/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D pkg-config --cflags --libs fraiseql-wire)
    out=$(LD_LIBRARY_PATH=$S/lib "$T/hello_staged")
    expect_eq "fw_version() (staged)" "$out" "$VERSION"
    # The CMake package works from the staging directory as is (relocatable).
    cmake_build "$T/cmake-staged" "$S"
    cmake_run "$T/cmake-staged" "$S/lib"
}
check "make install DESTDIR=<tmp> PREFIX=/opt/...: staged, usable, nothing outside DESTDIR" t_destdir

t_destdir_uninstall() {
    run fw_make uninstall DESTDIR="$D" PREFIX="$P"
    expect_eq "files left in $D" "$(files_under "$D")" ""
    [[ ! -e $P ]] || fail "$P exists"
}
check "make uninstall DESTDIR=<tmp> PREFIX=/opt/...: no files left" t_destdir_uninstall

# ---------------------------------------------------------------------------------------------
# uninstall
# ---------------------------------------------------------------------------------------------

t_uninstall() {
    run fw_make uninstall PREFIX="$A"
    expect_eq "files left in $A" "$(files_under "$A")" ""
    [[ ! -e $LIB/cmake/FraiseqlWire ]] || fail "$LIB/cmake/FraiseqlWire is left"
    # Uninstalling again is harmless.
    run fw_make uninstall PREFIX="$A"
}
check "make uninstall PREFIX=<tmp>: no files left" t_uninstall

((failed == 0))
