//! The committed header must be exactly what cbindgen generates from the sources now, and
//! the version macros in it must match Cargo.toml.

use std::path::Path;

/// The version macros, from Cargo.toml (the one place the version is written).
fn version_macros() -> String {
    format!(
        "#define FW_VERSION_MAJOR {}\n#define FW_VERSION_MINOR {}\n#define FW_VERSION_PATCH {}\n#define FW_VERSION_STRING \"{}\"\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut config = cbindgen::Config::from_file(Path::new(root).join("cbindgen.toml")).unwrap();
    assert!(
        config.after_includes.is_none(),
        "cbindgen.toml must not set after_includes: the version macros come from Cargo.toml"
    );
    config.after_includes = Some(version_macros());
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

#[test]
fn header_defines_only_prefixed_names() {
    let generated = generate();
    let mut bad = Vec::new();
    for line in generated.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("#define ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            if !(name.starts_with("FW_") || name == "FRAISEQL_WIRE_H") {
                bad.push(name.to_string());
            }
        } else if t.starts_with("FW_") || t.starts_with("fw_") {
            // enum constants and continuation lines are prefixed: fine
        } else if let Some(rest) = t.strip_prefix("typedef ") {
            // `typedef struct fw_x fw_x;`, `typedef enum fw_x {`, `typedef T (*fw_cb)(...)`
            let name = rest
                .trim_end_matches(';')
                .rsplit([' ', '*', '('])
                .find(|w| !w.is_empty() && !w.ends_with(')'))
                .unwrap_or("");
            let is_fn_ptr = rest.contains("(*");
            if !is_fn_ptr && !name.starts_with("fw_") && !rest.ends_with('{') {
                bad.push(name.to_string());
            }
        }
    }
    // Every exported function is fw_*.
    for line in generated.lines() {
        if let Some(open) = line.find('(') {
            if line.starts_with(' ')
                || line.starts_with("typedef")
                || line.starts_with('#')
                || line.starts_with("//")
                || line.starts_with("/*")
            {
                continue;
            }
            let head = &line[..open];
            if let Some(name) = head.rsplit([' ', '*']).next() {
                if !name.is_empty() && !name.starts_with("fw_") {
                    bad.push(name.to_string());
                }
            }
        }
    }
    assert!(bad.is_empty(), "unprefixed names in the header: {bad:?}");
}
