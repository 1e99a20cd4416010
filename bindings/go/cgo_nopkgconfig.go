//go:build fw_nopkgconfig

package fraiseqlwire

// With -tags fw_nopkgconfig only the library name is given here; point the compiler
// and linker at the header and the library with the environment, e.g.
//
//	CGO_CFLAGS="-I$REPO/include" CGO_LDFLAGS="-L$REPO/target/release" go build -tags fw_nopkgconfig

// #cgo LDFLAGS: -lfraiseql_wire
import "C"
