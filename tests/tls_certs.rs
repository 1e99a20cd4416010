//! The two shapes of server certificate people deploy, against every sslmode, on a throwaway
//! server of this test binary's own (the tests switch the server's certificate, so they take
//! turns through one lock):
//!
//! * a leaf signed by a CA, the client trusting the CA (`server.crt`, root `ca.crt`);
//! * PostgreSQL's documented self-signed certificate (`openssl req -new -x509 ... -subj
//!   /CN=localhost`: CA:TRUE, no subjectAltName), the client trusting that very certificate
//!   (`selfsigned.crt`, copied to `root.crt`), which libpq accepts;
//!
//! plus a wrong root, a wrong host name (DNS and IP), an expired certificate, and a server that
//! demands a client certificate (`clientcert=verify-full`). Files: scripts/pg-throwaway's
//! `FW_PG_DIR/tls`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, Error, ErrorKind, Query, Wait};
use support::*;

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

fn tls_dir() -> PathBuf {
    support::tls::server_tls_dir()
}

fn file(name: &str) -> String {
    tls_dir().join(name).display().to_string()
}

/// The server's certificate shape, switched with ALTER SYSTEM and a reload.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    /// `server.crt`: a leaf (CA:FALSE) for localhost and 127.0.0.1, signed by `ca.crt`.
    CaSigned,
    /// `selfsigned.crt`: CA:TRUE, CN=localhost, no subjectAltName; its own root.
    SelfSigned,
    /// `expired.crt`: like `server.crt`, valid in January 2020 only.
    Expired,
}

impl Shape {
    fn stem(self) -> &'static str {
        match self {
            Shape::CaSigned => "server",
            Shape::SelfSigned => "selfsigned",
            Shape::Expired => "expired",
        }
    }
    /// The root a client of this server is told to trust.
    fn root(self) -> String {
        match self {
            Shape::CaSigned | Shape::Expired => file("ca.crt"),
            Shape::SelfSigned => file("selfsigned.crt"),
        }
    }
}

/// One test at a time owns the server's certificate.
fn server_with(shape: Shape) -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    setup();
    let stem = shape.stem();
    pg().psql(&format!(
        "ALTER SYSTEM SET ssl_cert_file = '{}'",
        file(&format!("{stem}.crt"))
    ));
    pg().psql(&format!(
        "ALTER SYSTEM SET ssl_key_file = '{}'",
        file(&format!("{stem}.key"))
    ));
    pg().psql("SELECT pg_reload_conf()");
    // The postmaster reloads asynchronously: wait until a new connection is shown that
    // certificate.
    let want = fingerprint_of_file(&file(&format!("{stem}.crt")));
    let t = Instant::now();
    while served_fingerprint().as_deref() != Some(want.as_str()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the server did not switch to {stem}.crt"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

fn fingerprint_of_file(path: &str) -> String {
    run(
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in", path]),
        &format!("openssl x509 -in {path}"),
    )
    .trim()
    .to_string()
}

/// The fingerprint of the certificate the server presents now (openssl s_client speaks
/// PostgreSQL's SSLRequest with -starttls postgres).
fn served_fingerprint() -> Option<String> {
    let s_client = Command::new("openssl")
        .args(["s_client", "-starttls", "postgres", "-connect"])
        .arg(format!("127.0.0.1:{}", pg().port()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(&s_client.stdout)
        .ok()?;
    let out = x509.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The view that shows whether the streaming session itself is on TLS, and a role that may
/// only log in over TLS with a client certificate the CA signed (`clientcert=verify-full`).
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        pg().psql(
            "CREATE VIEW v_ssl AS SELECT jsonb_build_object('ssl', s.ssl) AS data \
             FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid(); \
             GRANT SELECT ON v_ssl TO PUBLIC; \
             CREATE ROLE fw_cert_only LOGIN;",
        );
        let hba = Path::new(pg().var("FW_PG_DIR")).join("data/pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!(
                "hostssl all fw_cert_only 127.0.0.1/32 trust clientcert=verify-full\n\
                 host all fw_cert_only 127.0.0.1/32 reject\n{old}"
            ),
        )
        .unwrap();
        pg().psql("SELECT pg_reload_conf()");
    });
}

fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::tls::scratch_dir("tls-certs-test"))
        .clone()
}

/// A self-signed CA that signed nothing the server has.
fn other_root() -> String {
    static F: OnceLock<String> = OnceLock::new();
    F.get_or_init(|| {
        support::tls::self_signed(&scratch(), "other", "/CN=localhost")
            .display()
            .to_string()
    })
    .clone()
}

/// `host` is what the certificate is checked against; the connection always goes to
/// 127.0.0.1.
fn conninfo(user: &str, host: &str, extra: &str) -> String {
    let password = if user == "fw_scram" {
        "password=scram-secret"
    } else {
        ""
    };
    format!(
        "host={host} hostaddr=127.0.0.1 port={} dbname={} user={user} {password} \
         connect_timeout=10 {extra}",
        pg().port(),
        pg().var("FW_PG_DB")
    )
}

/// Connect and say whether the server sees TLS on the streaming session.
fn ssl_of(conninfo: &str) -> Result<bool, Error> {
    let client = Client::connect(conninfo)?;
    let mut stream = client.execute(&Query::new("v_ssl").unwrap())?;
    let rows = strings_within(&mut stream, Wait::For(Duration::from_secs(30)))?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    Ok(rows[0].contains("true"))
}

fn must_fail(conninfo: &str) -> Error {
    match ssl_of(conninfo) {
        Ok(tls) => panic!("{conninfo}: connected (tls={tls}), expected a failure"),
        Err(e) => e,
    }
}

/// The error is a TLS error written for people: it names the check, the host name and the
/// root file, and holds no Rust debug output.
fn assert_tls_error(e: &Error, check: &str, host: &str, root: &str) {
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    let m = e.message();
    assert!(m.contains(check), "the message should name {check:?}: {m}");
    assert!(m.contains(&format!("\"{host}\"")), "no host name in: {m}");
    assert!(m.contains(root), "no root file in: {m}");
    for dump in [
        "Other(",
        "OtherError",
        "CaUsedAsEndEntity",
        "Context {",
        "UnixTime",
    ] {
        assert!(!m.contains(dump), "debug output {dump:?} in: {m}");
    }
}

/// Every sslmode with the right root and the right host name: the modes that use TLS do, and
/// every one connects. `user` may log in with or without TLS.
fn every_mode_connects(shape: Shape) {
    let _server = server_with(shape);
    for mode in MODES {
        for host in ["localhost", "LocalHost"] {
            let ci = conninfo(
                "fw_scram",
                host,
                &format!("sslmode={mode} sslrootcert={}", shape.root()),
            );
            let tls = ssl_of(&ci).unwrap_or_else(|e| panic!("{shape:?}, {ci}: {e}"));
            let expect_tls = !matches!(mode, "disable" | "allow");
            assert_eq!(tls, expect_tls, "{shape:?}, sslmode={mode}");
        }
    }
    // The unverified modes without any root file.
    for mode in ["prefer", "require"] {
        let ci = conninfo("fw_scram", "localhost", &format!("sslmode={mode}"));
        assert!(ssl_of(&ci).unwrap_or_else(|e| panic!("{shape:?}, {ci}: {e}")));
    }
}

#[test]
fn ca_signed_leaf_every_sslmode() {
    every_mode_connects(Shape::CaSigned);
}

/// The defect this file was written for: PostgreSQL's own self-signed recipe failed with
/// "certificate verify failed: Other(OtherError(CaUsedAsEndEntity))" for verify-full,
/// verify-ca and require with sslrootcert.
#[test]
fn self_signed_ca_true_certificate_every_sslmode() {
    every_mode_connects(Shape::SelfSigned);
}

/// The documented client side of the recipe: the certificate copied to ~/.postgresql/root.crt
/// (no sslrootcert).
#[test]
fn self_signed_certificate_as_the_default_root_file() {
    let _server = server_with(Shape::SelfSigned);
    let home = scratch().join("home");
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    std::fs::copy(file("selfsigned.crt"), home.join(".postgresql/root.crt")).unwrap();
    let old_home = std::env::var_os("HOME");
    std::env::set_var("HOME", &home);
    let result = ssl_of(&conninfo("fw_scram", "localhost", "sslmode=verify-full"));
    match old_home {
        Some(h) => std::env::set_var("HOME", h),
        None => std::env::remove_var("HOME"),
    }
    assert!(result.expect("verify-full with ~/.postgresql/root.crt"));
}

#[test]
fn wrong_root_is_refused_by_every_verifying_mode() {
    for shape in [Shape::CaSigned, Shape::SelfSigned] {
        let _server = server_with(shape);
        let root = other_root();
        let check = match shape {
            Shape::SelfSigned => {
                "is a CA certificate (basicConstraints CA:TRUE) that is not \
                                  itself one of the trusted roots"
            }
            _ => "chain check",
        };
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = must_fail(&conninfo(
                "fw_scram",
                "localhost",
                &format!("sslmode={mode} sslrootcert={root}"),
            ));
            assert_tls_error(&e, check, "localhost", &root);
        }
        // prefer falls back to plain text, as libpq does.
        let ci = conninfo(
            "fw_scram",
            "localhost",
            &format!("sslmode=prefer sslrootcert={root}"),
        );
        assert!(!ssl_of(&ci).expect("prefer falls back to plain text"));
    }
}

#[test]
fn wrong_dns_host_name_fails_verify_full_only() {
    for shape in [Shape::CaSigned, Shape::SelfSigned] {
        let _server = server_with(shape);
        let root = shape.root();
        let e = must_fail(&conninfo(
            "fw_scram",
            "wrong-name.invalid",
            &format!("sslmode=verify-full sslrootcert={root}"),
        ));
        assert_tls_error(&e, "host name check", "wrong-name.invalid", &root);
        let expected_names = match shape {
            // libpq's wording: the first name and how many others were compared.
            Shape::CaSigned => "for \"localhost\" (and 1 other name) does not match",
            // No subjectAltName: the CN is compared.
            _ => "for \"localhost\" does not match",
        };
        assert!(e.message().contains(expected_names), "{e}");
        for mode in ["verify-ca", "require"] {
            let ci = conninfo(
                "fw_scram",
                "wrong-name.invalid",
                &format!("sslmode={mode} sslrootcert={root}"),
            );
            assert!(ssl_of(&ci).unwrap_or_else(|e| panic!("{shape:?} {mode}: {e}")));
        }
    }
}

#[test]
fn ip_host_names_are_checked_as_libpq_does() {
    {
        let _server = server_with(Shape::CaSigned);
        let root = Shape::CaSigned.root();
        // The certificate's iPAddress entry 127.0.0.1 matches; 127.0.0.2 does not.
        let ok = conninfo(
            "fw_scram",
            "127.0.0.1",
            &format!("sslmode=verify-full sslrootcert={root}"),
        );
        assert!(ssl_of(&ok).expect("IP subjectAltName"));
        let e = must_fail(&conninfo(
            "fw_scram",
            "127.0.0.2",
            &format!("sslmode=verify-full sslrootcert={root}"),
        ));
        assert_tls_error(&e, "host name check", "127.0.0.2", &root);
        assert!(e.message().contains("(and 1 other name)"), "{e}");
    }
    {
        // No subjectAltName: an IP host is compared with the CN "localhost", and fails.
        let _server = server_with(Shape::SelfSigned);
        let root = Shape::SelfSigned.root();
        let e = must_fail(&conninfo(
            "fw_scram",
            "127.0.0.1",
            &format!("sslmode=verify-full sslrootcert={root}"),
        ));
        assert_tls_error(&e, "host name check", "127.0.0.1", &root);
        assert!(
            e.message()
                .contains("for \"localhost\" does not match host name \"127.0.0.1\""),
            "{e}"
        );
    }
}

#[test]
fn expired_certificate_is_refused_when_verifying() {
    let _server = server_with(Shape::Expired);
    let root = Shape::Expired.root();
    for mode in ["require", "verify-ca", "verify-full"] {
        let e = must_fail(&conninfo(
            "fw_scram",
            "localhost",
            &format!("sslmode={mode} sslrootcert={root}"),
        ));
        assert_tls_error(&e, "validity check", "localhost", &root);
        assert!(
            e.message().contains("expired on 2020-02-01 00:00:00 UTC"),
            "{e}"
        );
    }
    // Without a root file, require does not verify (libpq's rule).
    assert!(ssl_of(&conninfo("fw_scram", "localhost", "sslmode=require")).expect("require"));
}

/// A client certificate for CN=fw_cert_only, signed by the CA the server trusts.
fn client_cert() -> (String, String) {
    static CERT: OnceLock<(String, String)> = OnceLock::new();
    CERT.get_or_init(|| {
        let (crt, key) = support::tls::client_cert(&scratch(), "fw_cert_only", "91");
        (crt.display().to_string(), key.display().to_string())
    })
    .clone()
}

#[test]
fn clientcert_verify_full_needs_a_client_certificate() {
    let _server = server_with(Shape::CaSigned);
    let root = Shape::CaSigned.root();
    // HOME has no ~/.postgresql/postgresql.crt here: no certificate is sent.
    let e = must_fail(&conninfo(
        "fw_cert_only",
        "localhost",
        &format!("sslmode=verify-full sslrootcert={root}"),
    ));
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    assert!(e.message().contains("client certificate"), "{e}");
    let (crt, key) = client_cert();
    let ci = conninfo(
        "fw_cert_only",
        "localhost",
        &format!("sslmode=verify-full sslrootcert={root} sslcert={crt} sslkey={key}"),
    );
    assert!(ssl_of(&ci).expect("with the client certificate"));
}

/// A client certificate signed by a CA the server does not trust: the server ends the session
/// with a TLS alert after the handshake, which the error explains in words.
#[test]
fn an_untrusted_client_certificate_is_explained() {
    let _server = server_with(Shape::CaSigned);
    let other = other_root();
    let other_key = scratch().join("other.key");
    let (crt, key) = support::tls::signed(
        &scratch(),
        "stranger",
        "fw_cert_only",
        (Path::new(&other), &other_key),
        "92",
    );
    let e = must_fail(&conninfo(
        "fw_cert_only",
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            Shape::CaSigned.root(),
            crt.display(),
            key.display()
        ),
    ));
    let m = e.message();
    assert!(
        m.contains("the client certificate is not signed by a CA the server trusts"),
        "{e}"
    );
    assert!(
        !m.contains("UnknownCA") && !m.contains("AlertReceived"),
        "{e}"
    );
}
