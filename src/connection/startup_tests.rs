//! The start-up state machine on byte fixtures: backend messages built as bytes, fed whole,
//! in pieces and several at once; every authentication method (SCRAM against a server side
//! computed here from RFC 5802/7677), server errors with their SQLSTATE, messages out of
//! turn, and the size limits of `crate::protocol::header`.

use super::*;
use sha2::{Digest, Sha256};

// ---- backend messages as bytes ----

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn auth(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(rest);
    msg(b'R', &b)
}

fn auth_ok() -> Vec<u8> {
    auth(0, &[])
}

fn key_data(pid: i32, secret: i32) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(&secret.to_be_bytes());
    msg(b'K', &b)
}

fn param(name: &str, value: &str) -> Vec<u8> {
    msg(b'S', format!("{name}\0{value}\0").as_bytes())
}

fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

fn fields(severity: &str, code: &str, text: &str) -> Vec<u8> {
    format!("S{severity}\0V{severity}\0C{code}\0M{text}\0\0").into_bytes()
}

fn error(code: &str, text: &str) -> Vec<u8> {
    msg(b'E', &fields("FATAL", code, text))
}

fn notice(text: &str) -> Vec<u8> {
    msg(b'N', &fields("WARNING", "01000", text))
}

fn session_tail() -> Vec<u8> {
    [
        param("server_version", "16.4"),
        param("in_hot_standby", "off"),
        key_data(4242, -7),
        ready(b'I'),
    ]
    .concat()
}

// ---- the machine ----

fn config(extra: &str) -> ConnConfig {
    ConnConfig::parse(&format!("host=/tmp user=alice dbname=app {extra}")).unwrap()
}

fn plain(mode: ChannelBindingMode) -> ChannelBindingInfo {
    ChannelBindingInfo {
        mode,
        tls: false,
        end_point: None,
    }
}

/// Start the exchange: the StartupMessage, then the machine waits for the server.
fn started<'a>(config: &'a ConnConfig, binding: ChannelBindingInfo) -> Startup<'a> {
    let mut sm = Startup::new(config, binding);
    let mut buf = BytesMut::new();
    match sm.step(&mut buf).unwrap() {
        Step::Send(out) => {
            // Length, protocol 3.0, then the parameters.
            assert_eq!(&out[4..8], &196_608i32.to_be_bytes());
            let text = String::from_utf8_lossy(&out[8..]).into_owned();
            assert!(text.contains("user\0alice\0"), "{text:?}");
            assert!(text.contains("database\0app\0"), "{text:?}");
        }
        other => panic!("expected the StartupMessage, got {other:?}"),
    }
    assert_eq!(sm.step(&mut buf).unwrap(), Step::Read);
    sm
}

impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        match (self, other) {
            (Step::Send(a), Step::Send(b)) => a == b,
            (Step::Read, Step::Read) => true,
            (Step::Authenticated(a), Step::Authenticated(b)) => a == b,
            (Step::Ready(a), Step::Ready(b)) => a == b,
            _ => false,
        }
    }
}

/// Feed `bytes` (in the given pieces) and collect the steps until the machine waits for
/// more or the session is ready; an error ends the run.
fn feed(sm: &mut Startup<'_>, buf: &mut BytesMut, bytes: &[u8]) -> Result<Vec<Step>> {
    buf.extend_from_slice(bytes);
    let mut steps = Vec::new();
    loop {
        let step = sm.step(buf)?;
        let stop = matches!(step, Step::Read | Step::Ready(_));
        steps.push(step);
        if stop {
            return Ok(steps);
        }
    }
}

fn sent(step: &Step) -> &[u8] {
    match step {
        Step::Send(b) => b,
        other => panic!("expected bytes to send, got {other:?}"),
    }
}

fn password_of(out: &[u8]) -> &[u8] {
    assert_eq!(out[0], b'p');
    let len = u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
    assert_eq!(len + 1, out.len());
    &out[5..out.len() - 1]
}

#[test]
fn trust_goes_from_authentication_ok_to_ready_for_query() {
    let c = config("");
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let bytes = [auth_ok(), session_tail()].concat();
    let steps = feed(&mut sm, &mut buf, &bytes).unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Authenticated(Mechanism::Trust),
            Step::Ready(TransactionStatus::Idle)
        ]
    );
    assert_eq!(sm.requested(), Some("trust"));
    assert_eq!(sm.key, Some((4242, -7)));
    assert_eq!(
        sm.parameters,
        vec![
            ("server_version".to_string(), "16.4".to_string()),
            ("in_hot_standby".to_string(), "off".to_string())
        ]
    );
    assert!(buf.is_empty());
    let e = sm.step(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
}

#[test]
fn the_exchange_fed_one_byte_at_a_time_waits_for_each_whole_message() {
    let c = config("password=secret");
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let mut steps = Vec::new();
    let mut bytes = auth(3, &[]);
    bytes.extend([auth_ok(), notice("hello"), session_tail()].concat());
    let mut reads = 0;
    for b in bytes {
        for s in feed(&mut sm, &mut buf, &[b]).unwrap() {
            match s {
                Step::Read => reads += 1,
                other => steps.push(other),
            }
        }
    }
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(password_of(sent(&steps[0])), b"secret");
    assert_eq!(steps[1], Step::Authenticated(Mechanism::Cleartext));
    assert_eq!(steps[2], Step::Ready(TransactionStatus::Idle));
    assert!(
        reads > 50,
        "every partial message asks for more ({reads} reads)"
    );
    assert_eq!(sm.notices.len(), 1);
    assert_eq!(sm.notices[0].message, "hello");
}

#[test]
fn cleartext_sends_the_password_and_waits_for_authentication_ok() {
    let c = config("password=secret");
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let steps = feed(&mut sm, &mut buf, &auth(3, &[])).unwrap();
    assert_eq!(password_of(sent(&steps[0])), b"secret");
    assert!(!sm.authenticated());
    assert_eq!(sm.phase(), Phase::Auth);
    let steps = feed(&mut sm, &mut buf, &[auth_ok(), session_tail()].concat()).unwrap();
    assert_eq!(steps[0], Step::Authenticated(Mechanism::Cleartext));
    assert!(sm.authenticated());
    assert_eq!(sm.phase(), Phase::Session);
}

#[test]
fn a_password_request_without_a_password_fails_before_sending_anything() {
    let c = config("");
    for (code, rest, what) in [
        (3, &[][..], "cleartext password"),
        (5, &[1, 2, 3, 4][..], "MD5 password"),
    ] {
        let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
        let e = feed(&mut sm, &mut BytesMut::new(), &auth(code, rest)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert_eq!(
            e.message(),
            format!("the server requested {what} authentication but no password was supplied")
        );
    }
}

#[test]
fn md5_sends_the_salted_hash() {
    let c = config("password=secret");
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let steps = feed(&mut sm, &mut buf, &auth(5, &[9, 8, 7, 6])).unwrap();
    let want = postgres_protocol::authentication::md5_hash(b"alice", b"secret", [9, 8, 7, 6]);
    assert!(want.starts_with("md5") && want.len() == 35, "{want}");
    assert_eq!(password_of(sent(&steps[0])), want.as_bytes());
    let steps = feed(&mut sm, &mut buf, &[auth_ok(), ready(b'T')].concat()).unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Authenticated(Mechanism::Md5),
            Step::Ready(TransactionStatus::InTransaction)
        ]
    );
}

// ---- SCRAM-SHA-256: the server's side, from RFC 5802 / RFC 7677 ----

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The body of a SASLInitialResponse or SASLResponse after its header.
fn sasl_body(out: &[u8]) -> &[u8] {
    assert_eq!(out[0], b'p');
    &out[5..]
}

/// The mechanism and client-first message of a SASLInitialResponse.
fn initial_response(out: &[u8]) -> (String, String) {
    let body = sasl_body(out);
    let nul = body.iter().position(|b| *b == 0).unwrap();
    let mech = String::from_utf8(body[..nul].to_vec()).unwrap();
    let len = i32::from_be_bytes(body[nul + 1..nul + 5].try_into().unwrap()) as usize;
    let first = String::from_utf8(body[nul + 5..nul + 5 + len].to_vec()).unwrap();
    (mech, first)
}

struct ScramServer {
    client_first_bare: String,
    server_first: String,
    salted: [u8; 32],
}

impl ScramServer {
    fn first(client_first: &str, password: &str, iterations: u32) -> ScramServer {
        let bare = client_first.splitn(3, ',').nth(2).unwrap().to_string();
        let nonce = bare.split(',').find_map(|a| a.strip_prefix("r=")).unwrap();
        let salt = b"fixture-salt";
        ScramServer {
            server_first: format!("r={nonce}SERVERNONCE,s={},i={iterations}", base64(salt)),
            client_first_bare: bare,
            salted: salted_password(password.as_bytes(), salt, iterations.max(1)),
        }
    }

    /// Check the client's proof and return the server-final message.
    fn last(&self, client_final: &str) -> String {
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_key = hmac(&self.salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let want: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(proof, base64(&want), "the client's proof");
        let server_key = hmac(&self.salted, b"Server Key");
        format!("v={}", base64(&hmac(&server_key, auth_message.as_bytes())))
    }
}

fn sasl_offer(mechs: &[&str]) -> Vec<u8> {
    let mut rest = Vec::new();
    for m in mechs {
        rest.extend_from_slice(m.as_bytes());
        rest.push(0);
    }
    rest.push(0);
    auth(10, &rest)
}

/// Run a SCRAM exchange up to the server-final message; returns the mechanism the client
/// chose, its client-first message and the result of the final step.
fn scram_run(
    binding: ChannelBindingInfo,
    offer: &[&str],
    tamper: bool,
) -> (String, String, Result<Vec<Step>>) {
    let c = config("password=pencil");
    let mut sm = started(&c, binding);
    let mut buf = BytesMut::new();
    let steps = feed(&mut sm, &mut buf, &sasl_offer(offer)).unwrap();
    let (mech, client_first) = initial_response(sent(&steps[0]));
    let server = ScramServer::first(&client_first, "pencil", 4096);
    let steps = feed(&mut sm, &mut buf, &auth(11, server.server_first.as_bytes())).unwrap();
    let client_final = String::from_utf8(sasl_body(sent(&steps[0])).to_vec()).unwrap();
    let mut last = server.last(&client_final);
    if tamper {
        last = format!("v={}", base64(&[0u8; 32]));
    }
    let end = [auth(12, last.as_bytes()), auth_ok(), session_tail()].concat();
    let result = feed(&mut sm, &mut buf, &end);
    (mech, client_first, result)
}

#[test]
fn scram_sha_256_proves_the_password_and_verifies_the_server() {
    let (mech, first, result) =
        scram_run(plain(ChannelBindingMode::Prefer), &["SCRAM-SHA-256"], false);
    assert_eq!(mech, "SCRAM-SHA-256");
    // No TLS: the client cannot bind ('n').
    assert!(first.starts_with("n,,"), "{first}");
    assert_eq!(
        result.unwrap(),
        vec![
            Step::Authenticated(Mechanism::ScramSha256),
            Step::Ready(TransactionStatus::Idle)
        ]
    );
}

#[test]
fn a_wrong_server_signature_fails_the_exchange() {
    let (_, _, result) = scram_run(plain(ChannelBindingMode::Prefer), &["SCRAM-SHA-256"], true);
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.message()
            .starts_with("the server's SCRAM signature did not verify"),
        "{e}"
    );
}

#[test]
fn scram_sha_256_plus_binds_to_the_tls_server_end_point() {
    let tls = ChannelBindingInfo {
        mode: ChannelBindingMode::Prefer,
        tls: true,
        end_point: Some(vec![7; 32]),
    };
    let (mech, first, result) = scram_run(tls, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], false);
    assert_eq!(mech, "SCRAM-SHA-256-PLUS");
    assert!(first.starts_with("p=tls-server-end-point,,"), "{first}");
    assert_eq!(
        result.unwrap()[0],
        Step::Authenticated(Mechanism::ScramSha256Plus)
    );
    // On TLS without -PLUS offered: 'y' (the client could bind; a downgrade is detectable).
    let tls = ChannelBindingInfo {
        mode: ChannelBindingMode::Prefer,
        tls: true,
        end_point: Some(vec![7; 32]),
    };
    let (mech, first, _) = scram_run(tls, &["SCRAM-SHA-256"], false);
    assert_eq!(mech, "SCRAM-SHA-256");
    assert!(first.starts_with("y,,"), "{first}");
}

#[test]
fn a_zero_iteration_count_is_refused() {
    let c = config("password=pencil");
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let steps = feed(&mut sm, &mut buf, &sasl_offer(&["SCRAM-SHA-256"])).unwrap();
    let (_, client_first) = initial_response(sent(&steps[0]));
    let server = ScramServer::first(&client_first, "pencil", 0);
    let e = feed(&mut sm, &mut buf, &auth(11, server.server_first.as_bytes())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("invalid iteration count \"0\""), "{e}");
}

#[test]
fn channel_binding_require_refuses_a_password_or_trust_before_sending_anything() {
    let c = config("password=secret");
    for first in [auth_ok(), auth(3, &[]), auth(5, &[1, 2, 3, 4])] {
        let mut sm = started(&c, plain(ChannelBindingMode::Require));
        let e = feed(&mut sm, &mut BytesMut::new(), &first).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(
            e.message()
                .starts_with("channel binding required (channel_binding=require), but"),
            "{e}"
        );
    }
    // SCRAM without TLS cannot bind either.
    let mut sm = started(&c, plain(ChannelBindingMode::Require));
    let e = feed(
        &mut sm,
        &mut BytesMut::new(),
        &sasl_offer(&["SCRAM-SHA-256"]),
    )
    .unwrap_err();
    assert!(e.message().ends_with("but SSL is not in use"), "{e}");
}

#[test]
fn unsupported_methods_are_named() {
    let c = config("password=secret");
    for (code, name) in [
        (2, "Kerberos V5"),
        (7, "GSSAPI"),
        (9, "SSPI"),
        (6, "SCM credential"),
    ] {
        let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
        let e = feed(&mut sm, &mut BytesMut::new(), &auth(code, &[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(
            e.message()
                .starts_with(&format!("the server requested {name}")),
            "{e}"
        );
    }
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let e = feed(&mut sm, &mut BytesMut::new(), &sasl_offer(&["OTHER-MECH"])).unwrap_err();
    assert!(e.message().contains("offered no SASL mechanism"), "{e}");
}

#[test]
fn server_errors_carry_their_sqlstate_and_kind() {
    let c = config("password=secret");
    // Before authentication: class 28 is an authentication failure...
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let e = feed(
        &mut sm,
        &mut BytesMut::new(),
        &error("28P01", "password authentication failed for user \"alice\""),
    )
    .unwrap_err();
    assert_eq!((e.kind(), e.sqlstate()), (ErrorKind::Auth, Some("28P01")));
    assert_eq!(sm.requested(), Some("none"));
    assert!(!sm.authenticated());
    // ...anything else a connection failure (the host loop moves on after 57P03).
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let e = feed(
        &mut sm,
        &mut BytesMut::new(),
        &error("57P03", "the database system is starting up"),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.sqlstate()),
        (ErrorKind::Connect, Some("57P03"))
    );
    // After the password, and after authentication (too many connections).
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    feed(&mut sm, &mut buf, &auth(3, &[])).unwrap();
    let e = feed(&mut sm, &mut buf, &error("28P01", "wrong")).unwrap_err();
    assert_eq!(e.sqlstate(), Some("28P01"));
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let mut buf = BytesMut::new();
    let bytes = [
        auth_ok(),
        param("a", "b"),
        error("53300", "too many clients"),
    ]
    .concat();
    let e = feed(&mut sm, &mut buf, &bytes).unwrap_err();
    assert_eq!(
        (e.kind(), e.sqlstate()),
        (ErrorKind::Connect, Some("53300"))
    );
    assert!(sm.authenticated());
    // The machine stays failed.
    assert_eq!(sm.step(&mut buf).unwrap_err().kind(), ErrorKind::State);
}

#[test]
fn messages_out_of_turn_are_protocol_errors() {
    let c = config("password=secret");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Before any authentication request.
        (
            ready(b'I'),
            "unexpected message from the server during authentication",
        ),
        (
            notice("early"),
            "unexpected message from the server during authentication",
        ),
        // A password was sent: only AuthenticationOk may follow.
        (
            [auth(3, &[]), param("a", "b")].concat(),
            "expected AuthenticationOk from the server after the password",
        ),
        // After authentication: a query's answer.
        (
            [auth_ok(), msg(b'C', b"SELECT 1\0")].concat(),
            "unexpected message from the server during session startup",
        ),
        // SCRAM: anything but SASLContinue.
        (
            [sasl_offer(&["SCRAM-SHA-256"]), auth_ok()].concat(),
            "unexpected message during SCRAM exchange",
        ),
    ];
    for (bytes, want) in cases {
        let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
        let e = feed(&mut sm, &mut BytesMut::new(), &bytes).unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Protocol, want));
    }
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let e = feed(
        &mut sm,
        &mut BytesMut::new(),
        &[auth_ok(), ready(b'X')].concat(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(
        e.message().contains("unknown transaction status 0x58"),
        "{e}"
    );
}

#[test]
fn oversized_and_malformed_messages_are_refused_by_their_header() {
    let c = config("password=secret");
    // Only the 5-byte header arrived: refused before the body is waited for.
    let header = |tag: u8, len: u32| {
        let mut h = vec![tag];
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    for (bytes, want) in [
        (
            header(b'R', 2001),
            "an authentication request is at most 2000 bytes",
        ),
        (
            header(b'E', 30_001),
            "a message before authentication is at most 30000 bytes",
        ),
        (header(b'R', 3), "invalid length 3"),
        (
            [auth_ok(), header(b'S', 30_001)].concat(),
            "a message of this type is at most 30000 bytes",
        ),
        (
            [auth_ok(), header(b'D', 64 * 1024 * 1024)].concat(),
            "a DataRow of 67108865 bytes where none was expected",
        ),
    ] {
        let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
        let e = feed(&mut sm, &mut BytesMut::new(), &bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        assert!(e.message().contains(want), "{e}");
    }
    // A length that fits the limits but a body that does not parse.
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let e = feed(&mut sm, &mut BytesMut::new(), &msg(b'R', &[0, 0])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(
        e.message().starts_with("malformed message from the server"),
        "{e}"
    );
    // A truncated message is waited for, not refused.
    let mut sm = started(&c, plain(ChannelBindingMode::Prefer));
    let whole = auth(5, &[1, 2, 3, 4]);
    let mut buf = BytesMut::new();
    assert_eq!(
        feed(&mut sm, &mut buf, &whole[..8]).unwrap(),
        vec![Step::Read]
    );
    assert_eq!(buf.len(), 8);
    let steps = feed(&mut sm, &mut buf, &whole[8..]).unwrap();
    assert!(matches!(steps[0], Step::Send(_)), "{steps:?}");
}

#[test]
fn the_ssl_answer_is_one_byte() {
    assert!(ssl_answer(b'S').unwrap());
    assert!(!ssl_answer(b'N').unwrap());
    let e = ssl_answer(b'E').unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert_eq!(
        e.message(),
        "the server sent an error response during the SSL exchange"
    );
    let e = ssl_answer(b'H').unwrap_err();
    assert_eq!(
        (e.kind(), e.message()),
        (
            ErrorKind::Protocol,
            "received invalid response to the SSL request: 0x48"
        )
    );
}
