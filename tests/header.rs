//! The committed header must be exactly what cbindgen generates from the sources now, and
//! the version macros in it must match Cargo.toml.

use std::path::Path;

fn generate() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(root).join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn header_matches_cbindgen_output() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = Path::new(root).join("include/fraiseql_wire.h");
    let generated = generate();
    if std::env::var_os("FW_REGENERATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/fraiseql_wire.h is out of date: run `make header` and commit it"
    );
}

#[test]
fn header_version_macros_match_cargo() {
    let generated = generate();
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.');
    let (maj, min, pat) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert!(generated.contains(&format!("#define FW_VERSION_MAJOR {maj}\n")));
    assert!(generated.contains(&format!("#define FW_VERSION_MINOR {min}\n")));
    assert!(generated.contains(&format!("#define FW_VERSION_PATCH {pat}\n")));
    assert!(generated.contains(&format!("#define FW_VERSION_STRING \"{v}\"\n")));
}
