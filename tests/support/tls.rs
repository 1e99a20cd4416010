//! Certificates for the TLS tests, made with openssl in a scratch directory of the test
//! server's directory (gone with the server).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster::pg;
use super::run;

/// `FW_PG_DIR/<name>` of the binary's server, created on first use.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = Path::new(pg().dir()).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The server's own TLS files (`FW_PG_DIR/tls`: ca.crt/key, server, selfsigned, expired).
pub fn server_tls_dir() -> PathBuf {
    Path::new(pg().dir()).join("tls")
}

/// Run openssl with `args` in `dir`; a failure fails the test with openssl's message.
pub fn openssl(dir: &Path, args: &[&str]) {
    run(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {args:?}"),
    );
}

/// `openssl req` arguments for a new P-256 key without a passphrase, written to `key`.
fn new_key(key: &str) -> [&str; 8] {
    [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-sha256",
    ]
}

/// A self-signed P-256 certificate `<stem>.crt` (key `<stem>.key`) for `subject` in `dir`,
/// valid 2 days: a CA that signed nothing the server has.
pub fn self_signed(dir: &Path, stem: &str, subject: &str) -> PathBuf {
    let (key, crt) = (format!("{stem}.key"), format!("{stem}.crt"));
    let mut args = vec!["req", "-x509"];
    args.extend(new_key(&key));
    args.extend(["-out", &crt, "-days", "2", "-subj", subject]);
    openssl(dir, &args);
    dir.join(crt)
}

/// A certificate `<stem>.crt` (key `<stem>.key`, mode 0600 as libpq wants) in `dir` for
/// `CN=<cn>`, signed by the CA `ca_crt` / `ca_key` with serial `serial`, valid 2 days.
pub fn signed(
    dir: &Path,
    stem: &str,
    cn: &str,
    (ca_crt, ca_key): (&Path, &Path),
    serial: &str,
) -> (PathBuf, PathBuf) {
    let (key, csr, crt) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.crt"),
    );
    let subject = format!("/CN={cn}");
    let mut args = vec!["req", "-new"];
    args.extend(new_key(&key));
    args.extend(["-out", &csr, "-subj", &subject]);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca_crt.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-sha256",
            "-out",
            &crt,
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir.join(crt), dir.join(key))
}

/// A client certificate `client.crt` / `client.key` in `dir` for `CN=<cn>`, signed by the
/// server's CA (whose key pg-throwaway keeps next to it) with serial `serial`.
pub fn client_cert(dir: &Path, cn: &str, serial: &str) -> (PathBuf, PathBuf) {
    let ca = server_tls_dir();
    signed(
        dir,
        "client",
        cn,
        (&ca.join("ca.crt"), &ca.join("ca.key")),
        serial,
    )
}
