//! TLS against the throwaway server (TLS on, certificate for localhost / 127.0.0.1 signed by
//! `FW_PG_SSLROOTCERT`; `fw_tls_only` may only log in over TLS): every sslmode, certificate
//! verification, client certificates, SCRAM-SHA-256-PLUS channel binding, cancel over TLS, and
//! the SSLRequest answers a misbehaving server can give (against a fake server).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, Error, ErrorKind, Query, Wait};
use support::*;

/// Views that show what the server sees of the streaming session itself.
fn setup_views(pg: &Pg) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        pg.psql(
            "CREATE VIEW v_tls_session AS
               SELECT jsonb_build_object('ssl', s.ssl, 'version', s.version,
                                         'client_dn', s.client_dn) AS data
               FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid();
             GRANT SELECT ON v_tls_session TO PUBLIC;",
        );
    });
}

fn conninfo(pg: &Pg, user: &str, password: &str, extra: &str) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname={} user={user} password={password} \
         connect_timeout=10 {extra}",
        pg.port(),
        pg.var("FW_PG_DB"),
    )
}

fn tls_only(extra: &str) -> String {
    conninfo(pg(), "fw_tls_only", "tls-secret", extra)
}

fn ca() -> String {
    pg().var("FW_PG_SSLROOTCERT").to_string()
}

fn connect(conninfo: &str) -> Result<Client, Error> {
    setup_views(pg());
    Client::connect(conninfo)
}

fn rows(client: &Client, q: &Query) -> Vec<String> {
    let mut stream = client.execute(q).expect("execute");
    strings_within(&mut stream, Wait::For(Duration::from_secs(30))).expect("next")
}

/// What pg_stat_ssl says about the session that streams the view.
#[derive(Debug)]
struct Session {
    ssl: bool,
    version: Option<String>,
    client_dn: Option<String>,
}

fn session(client: &Client) -> Session {
    let rows = rows(client, &Query::new("v_tls_session").unwrap());
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = rows[0].as_bytes();
    let string = |key: &str| json_field(row, key).as_str().map(str::to_string);
    Session {
        ssl: json_field(row, "ssl") == serde_json::Value::Bool(true),
        version: string("version"),
        client_dn: string("client_dn"),
    }
}

fn assert_tls(client: &Client) {
    let s = session(client);
    assert!(s.ssl, "the server does not see TLS: {s:?}");
    assert!(
        s.version
            .as_deref()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{s:?}"
    );
}

fn assert_plain(client: &Client) {
    let s = session(client);
    assert!(!s.ssl, "expected a plain connection: {s:?}");
}

fn expect_err(conninfo: &str) -> Error {
    match connect(conninfo) {
        Ok(_) => panic!("connecting with {conninfo:?} should fail"),
        Err(e) => e,
    }
}

fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::tls::scratch_dir("tls-test"))
        .clone()
}

/// A CA that signed nothing the server has.
fn other_ca() -> PathBuf {
    static CA: OnceLock<PathBuf> = OnceLock::new();
    CA.get_or_init(|| support::tls::self_signed(&scratch_dir(), "other-ca", "/CN=some other CA"))
        .clone()
}

/// A client certificate for CN=fw_tls_only signed by the server's CA.
fn client_cert() -> (PathBuf, PathBuf) {
    static CERT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CERT.get_or_init(|| support::tls::client_cert(&scratch_dir(), "fw_tls_only", "77"))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// sslmode
// ---------------------------------------------------------------------------------------------

#[test]
fn verify_full_streams_v_user_over_tls() {
    let client = connect(&tls_only(&format!(
        "sslmode=verify-full sslrootcert={}",
        ca()
    )))
    .expect("verify-full against the right CA");
    assert_tls(&client);
    let rows = rows(&client, &Query::new("v_user").unwrap());
    assert_eq!(rows.len(), 1000);
    assert!(rows.iter().all(|r| r.starts_with('{')));
}

#[test]
fn verify_full_accepts_the_ip_address_in_the_certificate() {
    let ci = format!(
        "host=127.0.0.1 port={} dbname={} user=fw_tls_only password=tls-secret \
         sslmode=verify-full sslrootcert={}",
        pg().port(),
        pg().var("FW_PG_DB"),
        ca()
    );
    assert_tls(&connect(&ci).expect("the certificate names IP 127.0.0.1"));
}

#[test]
fn verify_full_with_another_ca_fails() {
    let e = expect_err(&tls_only(&format!(
        "sslmode=verify-full sslrootcert={}",
        other_ca().display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("certificate verify failed"), "{e}");
    assert!(e.message().contains("other-ca.crt"), "{e}");
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let ci = |mode: &str| {
        format!(
            "host=wrong-name.invalid hostaddr=127.0.0.1 port={} dbname={} user=fw_tls_only \
             password=tls-secret sslmode={mode} sslrootcert={}",
            pg().port(),
            pg().var("FW_PG_DB"),
            ca()
        )
    };
    let e = expect_err(&ci("verify-full"));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(
        e.message()
            .contains("does not match host name \"wrong-name.invalid\""),
        "{e}"
    );
    assert_tls(&connect(&ci("verify-ca")).expect("verify-ca ignores the host name"));
}

#[test]
fn verify_ca_with_another_ca_fails() {
    let e = expect_err(&tls_only(&format!(
        "sslmode=verify-ca sslrootcert={}",
        other_ca().display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[test]
fn missing_root_certificate_file_is_named() {
    let e = expect_err(&tls_only(
        "sslmode=verify-ca sslrootcert=/nonexistent/fw-root.crt",
    ));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("\"/nonexistent/fw-root.crt\""), "{e}");
    assert!(e.message().contains("does not exist"), "{e}");

    // A configured root file also binds `require` (it verifies as verify-ca).
    let e = expect_err(&tls_only(
        "sslmode=require sslrootcert=/nonexistent/fw-root.crt",
    ));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");

    // A file that is not PEM.
    let bad = scratch_dir().join("not-a-cert.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let e = expect_err(&tls_only(&format!(
        "sslmode=verify-ca sslrootcert={}",
        bad.display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains(&bad.display().to_string()), "{e}");
}

#[test]
fn require_encrypts_without_verifying() {
    // The certificate is not checked: no root file is configured (and HOME has no
    // ~/.postgresql/root.crt in the test environment).
    assert_tls(&connect(&tls_only("sslmode=require")).expect("require"));
}

#[test]
fn require_with_a_root_file_verifies_the_chain() {
    assert_tls(
        &connect(&tls_only(&format!("sslmode=require sslrootcert={}", ca())))
            .expect("require with the right CA"),
    );
    let e = expect_err(&tls_only(&format!(
        "sslmode=require sslrootcert={}",
        other_ca().display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[test]
fn prefer_uses_tls() {
    assert_tls(&connect(&tls_only("sslmode=prefer")).expect("prefer"));
    // prefer is the default
    assert_tls(&connect(&tls_only("")).expect("default sslmode"));
}

#[test]
fn prefer_falls_back_to_plain_text_when_the_handshake_fails() {
    // libpq: with a root file every mode verifies; prefer retries without TLS when that fails.
    let ci = conninfo(
        pg(),
        "fw_scram",
        "scram-secret",
        &format!("sslmode=prefer sslrootcert={}", other_ca().display()),
    );
    assert_plain(&connect(&ci).expect("prefer falls back"));
    // fw_tls_only cannot log in without TLS: the fallback is rejected by the server.
    let e = expect_err(&tls_only(&format!(
        "sslmode=prefer sslrootcert={}",
        other_ca().display()
    )));
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
}

#[test]
fn allow_starts_plain_and_retries_with_tls_when_rejected() {
    let plain = conninfo(pg(), "fw_scram", "scram-secret", "sslmode=allow");
    assert_plain(&connect(&plain).expect("allow, plain accepted"));
    assert_tls(&connect(&tls_only("sslmode=allow")).expect("allow, retried with TLS"));
}

#[test]
fn disable_never_uses_tls() {
    let plain = conninfo(pg(), "fw_scram", "scram-secret", "sslmode=disable");
    assert_plain(&connect(&plain).expect("disable"));
    // The server only lets fw_tls_only in over TLS: pg_hba rejects it (28000).
    let e = expect_err(&tls_only("sslmode=disable"));
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    assert!(e.message().contains("no encryption"), "{e}");
}

#[test]
fn sslrootcert_system_demands_verify_full() {
    let e = expect_err(&tls_only("sslmode=require sslrootcert=system"));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("verify-full"), "{e}");
}

#[test]
fn sslsni_off_still_verifies() {
    assert_tls(
        &connect(&tls_only(&format!(
            "sslmode=verify-full sslsni=0 sslrootcert={}",
            ca()
        )))
        .expect("verify-full without SNI"),
    );
}

#[test]
fn client_certificate_is_presented() {
    let (crt, key) = client_cert();
    let client = connect(&tls_only(&format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        ca(),
        crt.display(),
        key.display()
    )))
    .expect("TLS with a client certificate");
    let s = session(&client);
    assert!(s.ssl);
    assert_eq!(s.client_dn.as_deref(), Some("/CN=fw_tls_only"), "{s:?}");

    // A key readable by others is refused, as libpq does.
    let open_key = scratch_dir().join("open.key");
    std::fs::copy(&key, &open_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = expect_err(&tls_only(&format!(
        "sslmode=require sslcert={} sslkey={}",
        crt.display(),
        open_key.display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("group or world access"), "{e}");

    // A certificate without its key.
    let e = expect_err(&tls_only(&format!(
        "sslmode=require sslcert={} sslkey=/nonexistent/fw.key",
        crt.display()
    )));
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("/nonexistent/fw.key"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// channel binding
// ---------------------------------------------------------------------------------------------

#[test]
fn channel_binding_require_works_over_tls() {
    for mode in ["require", &format!("verify-full sslrootcert={}", ca())] {
        let client = connect(&tls_only(&format!(
            "sslmode={mode} channel_binding=require"
        )))
        .unwrap_or_else(|e| panic!("SCRAM-SHA-256-PLUS with sslmode={mode}: {e}"));
        assert_tls(&client);
        let mut q = Query::new("v_user").unwrap();
        q.limit(5).unwrap();
        assert_eq!(rows(&client, &q).len(), 5);
    }
}

#[test]
fn channel_binding_prefer_and_disable_work_over_tls() {
    for cb in ["prefer", "disable"] {
        let client = connect(&tls_only(&format!("sslmode=require channel_binding={cb}")))
            .unwrap_or_else(|e| panic!("channel_binding={cb}: {e}"));
        assert_tls(&client);
    }
}

#[test]
fn channel_binding_require_fails_without_tls() {
    let ci = conninfo(
        pg(),
        "fw_scram",
        "scram-secret",
        "sslmode=disable channel_binding=require",
    );
    let e = expect_err(&ci);
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("channel binding required"), "{e}");
    assert!(e.message().contains("SSL is not in use"), "{e}");
}

#[test]
fn channel_binding_require_refuses_password_and_trust_methods() {
    // fw_md5 / fw_trust over TLS: no SCRAM, so no binding, so no connection.
    for (user, pw) in [
        ("fw_md5", "md5-secret"),
        ("fw_trust", "x"),
        ("fw_plain", "plain-secret"),
    ] {
        let e = expect_err(&conninfo(
            pg(),
            user,
            pw,
            "sslmode=require channel_binding=require",
        ));
        assert_eq!(e.kind(), ErrorKind::Auth, "{user}: {e}");
        assert!(e.message().contains("channel binding required"), "{e}");
    }
    // Without the requirement they connect over TLS.
    let client =
        connect(&conninfo(pg(), "fw_md5", "md5-secret", "sslmode=require")).expect("md5 over TLS");
    assert_tls(&client);
}

// ---------------------------------------------------------------------------------------------
// cancel
// ---------------------------------------------------------------------------------------------

fn active_sleep30(app: &str) -> usize {
    active_queries(pg(), app, "v_sleep30")
}

#[test]
fn cancel_works_on_a_tls_stream() {
    let app = "fw_tls_cancel";
    let client = connect(&tls_only(&format!(
        "sslmode=verify-full sslrootcert={} application_name={app}",
        ca()
    )))
    .expect("connect");
    assert_tls(&client);
    let mut stream = client
        .execute(&Query::new("v_sleep30").unwrap())
        .expect("execute v_sleep30");
    assert!(
        wait_until(Duration::from_secs(5), || active_sleep30(app) == 1),
        "v_sleep30 never showed up as active"
    );
    let t = Instant::now();
    stream.control().cancel().expect("cancel");
    assert!(
        wait_until(Duration::from_secs(1), || active_sleep30(app) == 0),
        "v_sleep30 still active 1 s after cancel over a TLS connection"
    );
    assert!(t.elapsed() < Duration::from_millis(1200));
    let e = stream.next(Wait::Forever).expect_err("cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    drop(stream);
    // The client still works (over TLS).
    assert_tls(&client);
}

// ---------------------------------------------------------------------------------------------
// SSLRequest answers from a fake server
// ---------------------------------------------------------------------------------------------

/// A one-shot fake server: reads the 8-byte SSLRequest, answers `reply`, then waits a little
/// (so the client sees the reply before any close).
fn fake_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).is_ok() {
                assert_eq!(req, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], "SSLRequest");
                let _ = s.write_all(reply);
                let _ = s.flush();
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    port
}

fn fake_conninfo(port: u16, mode: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} dbname=x user=x password=x sslmode={mode} connect_timeout=5"
    )
}

#[test]
fn data_after_ssl_accept_is_rejected() {
    let port = fake_server(b"Sinjected");
    let e = match Client::connect(&fake_conninfo(port, "require")) {
        Ok(_) => panic!("must fail"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.message().contains("unencrypted data"), "{e}");
}

#[test]
fn server_without_ssl_fails_require() {
    let port = fake_server(b"N");
    let e = match Client::connect(&fake_conninfo(port, "require")) {
        Ok(_) => panic!("must fail"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("does not support SSL"), "{e}");
}

#[test]
fn invalid_ssl_answer_is_a_protocol_error() {
    let port = fake_server(b"X");
    let e = match Client::connect(&fake_conninfo(port, "prefer")) {
        Ok(_) => panic!("must fail"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
}
