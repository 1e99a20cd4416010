//go:build !fw_nopkgconfig

package fraiseqlwire

// Compiler and linker flags come from pkg-config (fraiseql-wire.pc, installed by
// `make install`, or written for the build tree by bindings/go/test.sh into
// <repo>/target/pkgconfig). Build with -tags fw_nopkgconfig to pass the flags through
// CGO_CFLAGS / CGO_LDFLAGS instead.

// #cgo pkg-config: fraiseql-wire
import "C"
