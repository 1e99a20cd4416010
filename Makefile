# fraiseql-wire: build, demo and tests (GNU make).
#
#   make build          cargo build --release: target/release/libfraiseql_wire.{so,a}
#   make header         regenerate include/fraiseql_wire.h with cbindgen
#   make demo           build, start a throwaway PostgreSQL with sample data, run
#                       examples-c/stream_users.c against it
#   make test           everything below (what .ci/run and the README call)
#     make lint           cargo fmt --check, cargo clippy --all-targets -D warnings (and the fake server's)
#     make test-rust      cargo test (unit, integration, header drift)
#     make test-c         the C suite (tests/c) with -fsanitize=address,undefined
#     make test-valgrind  the C suite under valgrind, non-sanitized build
#     make test-examples  build and run every examples-c/*.c program (the README's example is
#                         examples-c/readme.c: tests/readme-example)
#     make test-bindings  run every bindings/*/test.sh that exists
#     make test-bindings-install  install each binding as a package from outside the repo
#                         (pip/venv, gem, npm tarball, Go module with replace) against
#                         `make install` into a temporary prefix (tests/bindings-install)
#     make test-packaging install into temporary prefixes and use it: pkg-config, CMake,
#                         static and shared (tests/packaging/run.sh)
#     make fuzz-smoke     every cargo-fuzz target (fuzz/) for FUZZ_SMOKE_SECONDS (15) each
#   make fuzz           every cargo-fuzz target for FUZZ_SECONDS (600) each
#   make fuzz-deps      the nightly toolchain (fuzz build only) and cargo-fuzz, if missing
#   make soak           tests/soak.rs for SOAK_SECS seconds (default 600; `make test` runs it
#                       for 60): connect/stream/pause/cancel/free on 4 threads, RSS and open
#                       descriptors flat after the warm-up
#   make bench-smoke    benches/run --smoke: every benchmark contender on tiny inputs,
#                       benches/instructions on 2000 rows, benches/alternate once,
#                       cargo bench --bench transcode (its outputs checked equal)
#   make bench          the full benchmark suite (benches/run)
#   make bench-bindings each binding against its language's incumbent drivers and the C API
#                       (benches/bindings/run; results in docs/bindings.md)
#   make python-wheel   build/python-wheel/dist/*.whl: the Python binding with the library inside
#   make install        header, libraries, fraiseql-wire.pc and the CMake package under
#                       $(DESTDIR)$(PREFIX) (packaging/install.sh); `make uninstall` removes them
#
# Tests that need PostgreSQL start a throwaway cluster through scripts/with-pg, which always
# tears it down. Missing Debian packages are installed by scripts/install-deps when root
# (otherwise it names them).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
# C compiler for the examples and the valgrind build (the one Rust links with).
CC := $(shell command -v cc || command -v gcc || echo cc)
# C compiler for the sanitizer build: clang if present, else gcc.
SAN_CC ?= $(shell command -v clang || command -v gcc || echo cc)

BUILD   := build
LIB_DIR := target/release
LIB_A   := $(LIB_DIR)/libfraiseql_wire.a
LIB_SO  := $(LIB_DIR)/libfraiseql_wire.so
# The shared library's SONAME is libfraiseql_wire.so.<major> (build.rs); programs linked
# against it look for that name, so `make build` puts a link by that name next to it.
FW_MAJOR := $(shell sed -n 's/^\#define FW_VERSION_MAJOR //p' include/fraiseql_wire.h)
LIB_SONAME_LINK := $(LIB_DIR)/libfraiseql_wire.so.$(FW_MAJOR)
WITH_PG := scripts/with-pg

# Debian packages `make test` needs (beyond the Rust toolchain). libclang-rt-14-dev holds
# clang's sanitizer runtimes (only recommended by clang, and install-deps skips recommends);
# openssl makes the fault-injection server's certificate, g++ builds libFuzzer (fuzz-smoke).
# The second line is for the bindings' tests (bindings/*/test.sh fail without their
# toolchain when CI=true; the third line is for the bindings' benchmark and install tests).
# pgbouncer is for tests/scale_out.rs, nftables and iproute2 for tests/keepalive.rs (a network
# namespace of its own whose packets it drops).
TEST_DEPS := make clang libclang-rt-14-dev valgrind libpq-dev postgresql-15 pgbouncer nftables iproute2 openssl g++ \
	python3 python3-dev python3-venv python3-pip ruby ruby-ffi ruby-minitest golang-go pkg-config nodejs npm cmake prometheus linux-perf \
	ruby-pg golang-github-jackc-pgx-v4-dev

CSTD     := -std=c99 -D_POSIX_C_SOURCE=200809L
CWARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Werror
CFLAGS_C := $(CSTD) $(CWARN) -g -Iinclude
SAN      := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
# Link the static library (what `cargo rustc --print native-static-libs` lists) ...
STATIC_LINK := $(LIB_A) -lgcc_s -lutil -lrt -lpthread -lm -ldl
# ... or the shared one, found at run time through the rpath.
SHARED_LINK := -L$(LIB_DIR) -lfraiseql_wire -Wl,-rpath,$(abspath $(LIB_DIR)) -lpthread -lm

TEST_C_SRCS := $(wildcard tests/c/*.c)
TEST_C_HDRS := $(wildcard tests/c/*.h) include/fraiseql_wire.h
EXAMPLES    := $(basename $(notdir $(wildcard examples-c/*.c)))

# Sanitizer settings: any error, UB or leak fails the run. Leaks are checked after
# fw_shutdown at the end of the suite. tests/c/lsan.supp lists process-lifetime statics only.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(abspath tests/c/lsan.supp):print_suppressions=0

VALGRIND := valgrind --quiet --error-exitcode=1 --leak-check=full \
	--show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible \
	--num-callers=40 --suppressions=$(abspath tests/c/valgrind.supp)

.PHONY: all build header demo deps test lint test-rust test-c test-valgrind test-examples \
	test-bindings test-bindings-install test-packaging soak bench-smoke bench bench-bindings \
	bench-bindings-smoke python-wheel fuzz fuzz-smoke fuzz-deps install uninstall clean

all: build

deps:
	scripts/install-deps $(TEST_DEPS)

build:
	$(CARGO) build --release
	ln -sfn libfraiseql_wire.so $(LIB_SONAME_LINK)

header:
	FW_REGENERATE_HEADER=1 $(CARGO) test --test header

# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------

demo:
	scripts/install-deps
	$(MAKE) build
	@mkdir -p $(BUILD)/examples
	$(CC) $(CFLAGS_C) -O2 -o $(BUILD)/examples/stream_users examples-c/stream_users.c $(SHARED_LINK)
	$(WITH_PG) $(BUILD)/examples/stream_users

# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

test: deps
	$(MAKE) lint
	$(MAKE) test-rust
	$(MAKE) build
	$(MAKE) test-c
	$(MAKE) test-valgrind
	$(MAKE) test-examples
	$(MAKE) test-bindings
	$(MAKE) test-packaging
	$(MAKE) test-bindings-install
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke
	$(MAKE) bench-bindings-smoke
	@echo "make test: all passed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path benches/fakepg/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path benches/fakepg/Cargo.toml --target-dir target/fakepg --release -- -D warnings
	$(CARGO) clippy --lib --features fuzzing -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check

test-rust:
	$(CARGO) test

SOAK_SECS ?= 600
soak:
	FW_SOAK_SECS=$(SOAK_SECS) $(CARGO) test --test soak -- --nocapture

$(BUILD)/c/fw_tests_asan: $(TEST_C_SRCS) $(TEST_C_HDRS) $(LIB_A)
	@mkdir -p $(@D)
	$(SAN_CC) $(CFLAGS_C) $(SAN) -o $@ $(TEST_C_SRCS) $(STATIC_LINK)

$(BUILD)/c/fw_tests: $(TEST_C_SRCS) $(TEST_C_HDRS) $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) -O1 -DFWT_VALGRIND -o $@ $(TEST_C_SRCS) $(SHARED_LINK)

$(BUILD)/examples/%: examples-c/%.c include/fraiseql_wire.h $(LIB_SO)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) -O2 -o $@ $< $(SHARED_LINK)

# The library is rebuilt by `make build`; these rules only say where it comes from.
$(LIB_A) $(LIB_SO):
	$(MAKE) build

test-c: build
	$(MAKE) $(BUILD)/c/fw_tests_asan
	$(ASAN_ENV) $(WITH_PG) $(BUILD)/c/fw_tests_asan

# Timing bounds in the suite are multiplied by FW_TEST_SLOW under valgrind.
test-valgrind: build
	$(MAKE) $(BUILD)/c/fw_tests
	FW_TEST_SLOW=10 $(WITH_PG) $(VALGRIND) $(BUILD)/c/fw_tests

# tests/readme-example first: the README's C example must be examples-c/readme.c.
test-examples: build
	tests/readme-example
	$(MAKE) $(addprefix $(BUILD)/examples/,$(EXAMPLES))
	$(WITH_PG) bash -c 'failed=0; for e in $(EXAMPLES); do \
		echo "== examples-c/$$e.c"; \
		if ! $(BUILD)/examples/$$e; then echo "FAILED: $$e"; failed=$$((failed + 1)); fi; \
	done; echo "examples: $(words $(EXAMPLES)) run, $$failed failed"; [ $$failed -eq 0 ]'

test-bindings:
	@shopt -s nullglob; n=0; \
	for t in bindings/*/test.sh; do echo "== $$t"; bash "$$t"; n=$$((n + 1)); done; \
	echo "bindings: $$n test script(s) passed"

# Each binding installed as its language's package, used from outside the repository.
test-bindings-install: build
	tests/bindings-install/run.sh

python-wheel: build
	bindings/python/build-wheel.sh

# Installs into temporary prefixes (with and without DESTDIR) and builds against them; needs
# no PostgreSQL.
test-packaging: build
	tests/packaging/run.sh

bench-smoke: build
	benches/run --smoke
	ROWS=2000 benches/instructions
	benches/alternate -n 1 -s w_2k_430 current
	$(CARGO) bench --bench transcode

# Fuzzing (scripts/fuzz): the reader's framing at random split points, conninfo parsing, the
# SCRAM server messages and the JSON predicate. The fuzz build needs a nightly toolchain and
# cargo-fuzz, which fuzz-deps installs when missing; the rest of the project stays on stable.
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_SECONDS ?= 600

fuzz-deps:
	scripts/fuzz deps

fuzz-smoke: fuzz-deps
	FUZZ_FRESH=1 scripts/fuzz run $(FUZZ_SMOKE_SECONDS)

fuzz: fuzz-deps
	scripts/fuzz run $(FUZZ_SECONDS)

# The full benchmark suite against the fake server and a throwaway PostgreSQL (tables in
# target/bench/; numbers in docs/performance.md come from it).
bench: build
	benches/run

# Bindings against ruby-pg, node-postgres, psycopg 3 and pgx (benches/bindings/run).
bench-bindings: build
	benches/bindings/run

# After bench-smoke in `make test`: fw_bench and the fake server are built already.
bench-bindings-smoke: build
	benches/bindings/run --smoke --no-build

# ---------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------

# Layout (absolute paths). packaging/install.sh documents the details; STRIP_DEBUG=0 keeps
# the debug info (line tables) that the release profile builds, which install strips by
# default (the .so shrinks from 24 MB to 4 MB; the symbol table stays for backtraces).
PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFDIR  ?= $(LIBDIR)/pkgconfig
CMAKEDIR    ?= $(LIBDIR)/cmake/FraiseqlWire
STRIP_DEBUG ?= 1
INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' LIBDIR='$(LIBDIR)' INCLUDEDIR='$(INCLUDEDIR)' \
	PKGCONFDIR='$(PKGCONFDIR)' CMAKEDIR='$(CMAKEDIR)' STRIP_DEBUG='$(STRIP_DEBUG)' CARGO='$(CARGO)'

install: build
	$(INSTALL_ENV) packaging/install.sh install

uninstall:
	$(INSTALL_ENV) packaging/install.sh uninstall

clean:
	rm -rf $(BUILD)
	$(CARGO) clean
