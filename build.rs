//! Link settings of the shared library (Linux):
//!
//! - SONAME `libfraiseql_wire.so.<major>`, so that installed programs link against the ABI
//!   version, not the development symlink.
//! - `-z nodelete`: the library cannot be unloaded. Its runtime starts worker threads and
//!   registers thread-local destructors that run code inside the library; unmapping it while
//!   they exist would be undefined behaviour, so `dlclose` is made a no-op instead
//!   (tests/packaging/dlclose.c checks it).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfraiseql_wire.so.{major}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
