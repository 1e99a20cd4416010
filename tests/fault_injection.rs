//! Fault injection: for every backend message the library reads, in start-up and while
//! streaming, a scripted fake server (`support::fault`) sends it broken (length below 4,
//! length huge, body a byte short or a byte long, unknown type), cuts the connection at
//! every byte offset of a short exchange, or stays silent. Each case runs over a Unix socket,
//! TCP and TLS, under a harness-level bound (a hang fails the test), and asserts the status,
//! the rows delivered before the fault, whether the connection went back to the pool, and
//! (for huge lengths) that the process's RSS stayed flat.
//!
//! docs/reliability.md lists what each failure gives the caller; its table names the tests
//! here.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, ErrorKind, Next, Query, StreamState, Wait};
use support::fault::*;

const BOUND: Duration = Duration::from_secs(20);
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Exchanges
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Sent from the connection's start, before the query.
    Startup,
    /// Sent once the query (up to its Sync) was read.
    Answer,
}

/// One backend message of an exchange.
#[derive(Clone, Debug)]
struct Step {
    part: Part,
    name: &'static str,
    bytes: Vec<u8>,
    /// The client answers this message (a password): read its reply before going on.
    reply: bool,
}

fn step(part: Part, name: &'static str, bytes: Vec<u8>) -> Step {
    Step {
        part,
        name,
        bytes,
        reply: false,
    }
}

fn notice() -> Vec<u8> {
    error_fields(
        b'N',
        &[
            (b'S', "NOTICE"),
            (b'V', "NOTICE"),
            (b'C', "00000"),
            (b'M', "hello"),
        ],
    )
}

fn notification() -> Vec<u8> {
    let mut b = 4242i32.to_be_bytes().to_vec();
    b.extend_from_slice(b"chan\0payload\0");
    msg(b'A', &b)
}

fn trust_startup() -> Vec<Step> {
    use Part::Startup;
    vec![
        step(Startup, "AuthenticationOk", auth_ok()),
        step(
            Startup,
            "ParameterStatus",
            parameter_status("server_version", "15.0"),
        ),
        step(Startup, "NoticeResponse", notice()),
        step(Startup, "BackendKeyData", backend_key()),
        step(Startup, "ReadyForQuery", ready()),
    ]
}

/// The main exchange: a trust start-up, and an answer with every message the reader takes
/// between rows (a notice, a parameter change, a notification, PortalSuspended,
/// EmptyQueryResponse) and a NULL row.
fn main_exchange() -> Vec<Step> {
    use Part::Answer;
    let mut steps = trust_startup();
    steps.extend([
        step(Answer, "ParseComplete", msg(b'1', &[])),
        step(Answer, "BindComplete", msg(b'2', &[])),
        step(Answer, "RowDescription", row_description()),
        step(Answer, "DataRow", data_row(b"{\"i\":0}")),
        step(Answer, "NoticeResponse", notice()),
        step(Answer, "DataRow", data_row(b"{\"i\":1}")),
        step(
            Answer,
            "ParameterStatus",
            parameter_status("application_name", "x"),
        ),
        step(Answer, "NotificationResponse", notification()),
        step(Answer, "DataRow (NULL)", data_row_len(-1, &[])),
        step(Answer, "PortalSuspended", msg(b's', &[])),
        step(Answer, "EmptyQueryResponse", msg(b'I', &[])),
        step(Answer, "CommandComplete", command_complete("SELECT 3")),
        step(Answer, "ReadyForQuery", ready()),
    ]);
    steps
}

/// A short exchange: start-up with a password request of `auth`, and two rows.
fn password_exchange(auth_request: Vec<u8>, name: &'static str) -> Vec<Step> {
    use Part::{Answer, Startup};
    let mut first = step(Startup, name, auth_request);
    first.reply = true;
    vec![
        first,
        step(Startup, "AuthenticationOk", auth_ok()),
        step(Startup, "BackendKeyData", backend_key()),
        step(Startup, "ReadyForQuery", ready()),
        step(Answer, "ParseComplete", msg(b'1', &[])),
        step(Answer, "BindComplete", msg(b'2', &[])),
        step(Answer, "RowDescription", row_description()),
        step(Answer, "DataRow", data_row(b"{\"i\":0}")),
        step(Answer, "DataRow", data_row(b"{\"i\":1}")),
        step(Answer, "CommandComplete", command_complete("SELECT 2")),
        step(Answer, "ReadyForQuery", ready()),
    ]
}

/// Rows, then a server error.
fn error_exchange() -> Vec<Step> {
    use Part::Answer;
    let mut steps = trust_startup();
    steps.extend([
        step(Answer, "ParseComplete", msg(b'1', &[])),
        step(Answer, "BindComplete", msg(b'2', &[])),
        step(Answer, "RowDescription", row_description()),
        step(Answer, "DataRow", data_row(b"{\"i\":0}")),
        step(Answer, "DataRow", data_row(b"{\"i\":1}")),
        step(
            Answer,
            "ErrorResponse",
            error("ERROR", "22012", "division by zero"),
        ),
        step(Answer, "ReadyForQuery", ready()),
    ]);
    steps
}

/// A statement that returns no rows description.
fn no_data_exchange() -> Vec<Step> {
    use Part::Answer;
    let mut steps = trust_startup();
    steps.extend([
        step(Answer, "ParseComplete", msg(b'1', &[])),
        step(Answer, "BindComplete", msg(b'2', &[])),
        step(Answer, "NoData", msg(b'n', &[])),
        step(Answer, "CommandComplete", command_complete("SET")),
        step(Answer, "ReadyForQuery", ready()),
    ]);
    steps
}

/// The server refuses the session in start-up.
fn refused_exchange() -> Vec<Step> {
    vec![step(
        Part::Startup,
        "ErrorResponse",
        error("FATAL", "28P01", "password authentication failed"),
    )]
}

/// A SASL request answered with a refusal (the SCRAM exchange itself is in
/// `scram_server_messages_broken_every_way`).
fn sasl_exchange() -> Vec<Step> {
    let mut first = step(
        Part::Startup,
        "AuthenticationSASL",
        auth(10, b"SCRAM-SHA-256\0\0"),
    );
    first.reply = true;
    vec![
        first,
        step(
            Part::Startup,
            "ErrorResponse",
            error("FATAL", "28P01", "password authentication failed"),
        ),
    ]
}

/// A server that plays `steps`, sending `bytes_of(i)` for step `i` (`None`: stop there and
/// `then`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Go on with the rest of the exchange, then wait for the client to hang up.
    Continue,
    /// Hang up at once.
    HangUp,
    /// Send this many MiB of filler, then wait for the client to hang up.
    Flood(usize),
    /// Say nothing more until the client hangs up.
    Silent,
}

fn play(via: Via, steps: Vec<Step>, mutate: Option<(usize, Vec<u8>, Then)>) -> Server {
    let steps = Arc::new(steps);
    Server::start(via, move |p| {
        let mut query_read = false;
        for (i, s) in steps.iter().enumerate() {
            if s.part == Part::Answer && !query_read {
                p.read_query()?;
                query_read = true;
            }
            match &mutate {
                Some((at, bytes, then)) if *at == i => {
                    p.send(bytes)?;
                    match then {
                        Then::Continue => {}
                        Then::HangUp => {
                            p.hang_up();
                            return Ok(());
                        }
                        Then::Flood(mib) => {
                            p.send_fill(mib * 1024 * 1024, b'f')?;
                            p.wait_close();
                            return Ok(());
                        }
                        Then::Silent => {
                            p.silent();
                            return Ok(());
                        }
                    }
                }
                _ => p.send(&s.bytes)?,
            }
            if s.reply {
                p.read_message()?;
            }
        }
        p.wait_close();
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// What the client saw, and how many connections its pool held afterwards.
#[derive(Debug)]
struct Seen {
    outcome: Outcome,
    idle: usize,
}

/// Connect, run one query (waiting for its description as long as it takes, so that a
/// fault before the description is always reported by `execute`) and drain it.
fn client_run(server: &Server, what: &str) -> Seen {
    let config = server.config(Duration::from_secs(5));
    within(BOUND, what, move || {
        let client = match Client::with_config(config) {
            Ok(c) => c,
            Err(e) => {
                return Seen {
                    outcome: Outcome::Connect(e.kind(), e.to_string()),
                    idle: 0,
                }
            }
        };
        let mut q = Query::new("v_fault").unwrap();
        q.describe_wait(None).unwrap();
        let outcome = drain(&client, &q);
        Seen {
            outcome,
            idle: client.pool().idle_count(),
        }
    })
}

/// Where a fault at step `i` of `steps` is reported: by connect (start-up), by execute (up
/// to the description), or by the stream after the rows before it.
fn expected_at(steps: &[Step], i: usize, kind: ErrorKind) -> Outcome {
    let described = steps
        .iter()
        .position(|s| matches!(s.name, "RowDescription" | "NoData"))
        .unwrap_or(usize::MAX);
    if steps[i].part == Part::Startup {
        return Outcome::Connect(kind, String::new());
    }
    if i <= described {
        return Outcome::Execute(kind, String::new());
    }
    Outcome::Stream {
        rows: rows_before(steps, i),
        end: Some((kind, String::new())),
    }
}

/// The rows of the DataRow steps before step `i`, as the stream delivers them.
fn rows_before(steps: &[Step], i: usize) -> Vec<String> {
    steps[..i]
        .iter()
        .filter(|s| s.name.starts_with("DataRow"))
        .map(|s| {
            let b = &s.bytes;
            let len = i32::from_be_bytes([b[7], b[8], b[9], b[10]]);
            if len < 0 {
                "null".to_string()
            } else {
                String::from_utf8_lossy(&b[11..]).into_owned()
            }
        })
        .collect()
}

/// Compare kinds, positions and rows (not messages).
fn same_shape(got: &Outcome, want: &Outcome) -> bool {
    match (got, want) {
        (Outcome::Connect(a, _), Outcome::Connect(b, _))
        | (Outcome::Execute(a, _), Outcome::Execute(b, _)) => a == b,
        (Outcome::Stream { rows: r1, end: e1 }, Outcome::Stream { rows: r2, end: e2 }) => {
            r1 == r2 && e1.as_ref().map(|e| e.0) == e2.as_ref().map(|e| e.0)
        }
        _ => false,
    }
}

/// Whether the connection must be back in the pool after `outcome`: after a clean end or a
/// server error (the session is in sync), never after a protocol violation, a cut or a
/// memory-limit failure.
fn reused_after(outcome: &Outcome) -> Option<bool> {
    match outcome {
        Outcome::Stream { end: None, .. } => Some(true),
        Outcome::Stream {
            end: Some((kind, _)),
            ..
        } => Some(*kind == ErrorKind::Server),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Broken messages
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Break {
    /// Length field 0..=3.
    LengthBelow4,
    /// Length field 2^31 - 1, then 64 MiB of filler.
    LengthHuge,
    /// The body a byte short (the length says so).
    BodyShort,
    /// A byte more in the body (the length says so).
    BodyLong,
    /// The same message under an unknown type byte.
    UnknownType,
}

const BREAKS: [Break; 5] = [
    Break::LengthBelow4,
    Break::LengthHuge,
    Break::BodyShort,
    Break::BodyLong,
    Break::UnknownType,
];

/// The broken bytes for `brk` of `bytes`, and what the server does after them; `None` when
/// the break does not apply (no body to shorten).
fn broken(bytes: &[u8], brk: Break) -> Option<(Vec<u8>, Then)> {
    let (tag, body) = (bytes[0], &bytes[5..]);
    Some(match brk {
        Break::LengthBelow4 => (msg_with_len(tag, 3, body), Then::Continue),
        Break::LengthHuge => (msg_with_len(tag, i32::MAX as u32, body), Then::Flood(64)),
        Break::BodyShort if body.is_empty() => return None,
        Break::BodyShort => (msg(tag, &body[..body.len() - 1]), Then::Continue),
        Break::BodyLong => (msg(tag, &[body, &[0]].concat()), Then::Continue),
        Break::UnknownType => (msg(b'~', body), Then::Continue),
    })
}

/// What a break of step `s` gives: a protocol error, but a huge DataRow is over the
/// stream's memory budget.
fn break_kind(s: &Step, brk: Break) -> ErrorKind {
    match (s.bytes[0], brk) {
        (b'D', Break::LengthHuge) => ErrorKind::MemoryLimit,
        _ => ErrorKind::Protocol,
    }
}

/// Every break of every message of `steps`, over `via`.
fn break_every_message(via: Via, name: &str, steps: Vec<Step>) {
    let mut failures = Vec::new();
    let mut cases = 0;
    // The client stops reading at a NoData (the statement has no result to stream).
    let last = steps
        .iter()
        .position(|s| s.name == "NoData")
        .unwrap_or(steps.len() - 1);
    for i in 0..=last {
        for brk in BREAKS {
            let Some((bytes, then)) = broken(&steps[i].bytes, brk) else {
                continue;
            };
            cases += 1;
            let what = format!("{via:?} {name} #{i} {} {brk:?}", steps[i].name);
            let want = expected_at(&steps, i, break_kind(&steps[i], brk));
            let _mem = (brk == Break::LengthHuge).then(memory_lock);
            let server = play(via, steps.clone(), Some((i, bytes, then)));
            let before = rss_bytes();
            let seen = client_run(&server, &what);
            let grown = rss_bytes().saturating_sub(before);
            if !same_shape(&seen.outcome, &want) {
                failures.push(format!("{what}: got {:?}, want {want:?}", seen.outcome));
                continue;
            }
            if let Some(reused) = reused_after(&seen.outcome) {
                if (seen.idle == 1) != reused {
                    failures.push(format!("{what}: {} idle connections", seen.idle));
                }
            }
            if brk == Break::LengthHuge && grown > 16 * MIB {
                failures.push(format!("{what}: RSS grew by {} MiB", grown / MIB));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each exchange unbroken gives what it should: the baseline the breaks are compared with.
#[test]
fn exchanges_unbroken() {
    for via in ALL {
        let cases: [(Vec<Step>, Outcome); 6] = [
            (
                main_exchange(),
                Outcome::Stream {
                    rows: vec!["{\"i\":0}".into(), "{\"i\":1}".into(), "null".into()],
                    end: None,
                },
            ),
            (
                password_exchange(auth(3, &[]), "AuthenticationCleartextPassword"),
                Outcome::Stream {
                    rows: vec!["{\"i\":0}".into(), "{\"i\":1}".into()],
                    end: None,
                },
            ),
            (
                password_exchange(auth(5, b"salt"), "AuthenticationMD5Password"),
                Outcome::Stream {
                    rows: vec!["{\"i\":0}".into(), "{\"i\":1}".into()],
                    end: None,
                },
            ),
            (
                error_exchange(),
                Outcome::Stream {
                    rows: vec!["{\"i\":0}".into(), "{\"i\":1}".into()],
                    end: Some((ErrorKind::Server, String::new())),
                },
            ),
            (
                no_data_exchange(),
                Outcome::Execute(ErrorKind::Schema, String::new()),
            ),
            (
                refused_exchange(),
                Outcome::Connect(ErrorKind::Auth, String::new()),
            ),
        ];
        for (steps, want) in cases {
            let what = format!("{via:?} unbroken {}", steps[0].name);
            let server = play(via, steps, None);
            let seen = client_run(&server, &what);
            assert!(same_shape(&seen.outcome, &want), "{what}: {seen:?}");
            if let Some(reused) = reused_after(&seen.outcome) {
                assert_eq!(seen.idle == 1, reused, "{what}: {seen:?}");
            }
        }
        let seen = client_run(&play(via, sasl_exchange(), None), "sasl");
        assert!(
            same_shape(
                &seen.outcome,
                &Outcome::Connect(ErrorKind::Auth, String::new())
            ),
            "{via:?}: {seen:?}"
        );
    }
}

#[test]
fn every_message_broken_every_way_unix() {
    for (name, steps) in exchanges() {
        break_every_message(Via::Unix, name, steps);
    }
}

#[test]
fn every_message_broken_every_way_tcp() {
    for (name, steps) in exchanges() {
        break_every_message(Via::Tcp, name, steps);
    }
}

#[test]
fn every_message_broken_every_way_tls() {
    for (name, steps) in exchanges() {
        break_every_message(Via::Tls, name, steps);
    }
}

fn exchanges() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("main", main_exchange()),
        (
            "cleartext",
            password_exchange(auth(3, &[]), "AuthenticationCleartextPassword"),
        ),
        (
            "md5",
            password_exchange(auth(5, b"salt"), "AuthenticationMD5Password"),
        ),
        ("error", error_exchange()),
        ("nodata", no_data_exchange()),
        ("refused", refused_exchange()),
        ("sasl", sasl_exchange()),
    ]
}

/// Messages with wrong counts: a description announcing more or fewer columns than it has,
/// rows with no column or two, an error field without its end.
#[test]
fn wrong_counts_are_protocol_errors() {
    let described = trust_startup().len() + 2;
    let first_row = described + 1;
    let field = |name: &str| {
        let mut b = Vec::new();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&3802u32.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b
    };
    let cases: Vec<(&str, usize, Vec<u8>, ErrorKind)> = vec![
        (
            "RowDescription announcing 2 columns, holding 1",
            described,
            msg(b'T', &[&2u16.to_be_bytes()[..], &field("data")].concat()),
            ErrorKind::Protocol,
        ),
        (
            "RowDescription announcing 1 column, holding 2",
            described,
            msg(
                b'T',
                &[&1u16.to_be_bytes()[..], &field("data"), &field("x")].concat(),
            ),
            ErrorKind::Protocol,
        ),
        (
            "RowDescription of 0 columns",
            described,
            msg(b'T', &0u16.to_be_bytes()),
            ErrorKind::Schema,
        ),
        (
            "DataRow of 0 columns",
            first_row,
            msg(b'D', &0u16.to_be_bytes()),
            ErrorKind::Protocol,
        ),
        (
            "DataRow of 2 columns",
            first_row,
            msg(
                b'D',
                &[
                    &2u16.to_be_bytes()[..],
                    &2i32.to_be_bytes(),
                    b"{}",
                    &(-1i32).to_be_bytes(),
                ]
                .concat(),
            ),
            ErrorKind::Protocol,
        ),
        (
            "DataRow field longer than the message",
            first_row,
            msg(
                b'D',
                &[&1u16.to_be_bytes()[..], &100i32.to_be_bytes(), b"{}"].concat(),
            ),
            ErrorKind::Protocol,
        ),
        (
            "ErrorResponse field without its NUL",
            first_row,
            msg(b'E', b"SERROR\0MNo end"),
            ErrorKind::Protocol,
        ),
        (
            "NoticeResponse field without its NUL",
            first_row,
            msg(b'N', b"SNOTICE\0Mhello"),
            ErrorKind::Protocol,
        ),
    ];
    for via in ALL {
        for (name, at, bytes, kind) in &cases {
            let steps = main_exchange();
            let want = expected_at(&steps, *at, *kind);
            let what = format!("{via:?} {name}");
            let server = play(via, steps, Some((*at, bytes.clone(), Then::Continue)));
            let seen = client_run(&server, &what);
            assert!(
                same_shape(&seen.outcome, &want),
                "{what}: {seen:?}, want {want:?}"
            );
            assert_eq!(seen.idle, 0, "{what}: the connection is not reused");
        }
    }
}

/// The SCRAM messages of the server broken: SASLContinue (server-first) and SASLFinal.
/// The client refuses each before authenticating, with FW_E_AUTH or FW_E_PROTOCOL.
#[test]
fn scram_server_messages_broken_every_way() {
    // (what, server-first attributes after the nonce, final message, expected kind)
    let cases: [(&str, &str, Option<&[u8]>, ErrorKind); 8] = [
        ("no salt", ",i=4096", None, ErrorKind::Auth),
        ("bad base64 salt", ",s=!!!,i=4096", None, ErrorKind::Auth),
        ("no iteration count", ",s=c2FsdA==", None, ErrorKind::Auth),
        (
            "iteration count 0",
            ",s=c2FsdA==,i=0",
            None,
            ErrorKind::Auth,
        ),
        (
            "iteration count huge",
            ",s=c2FsdA==,i=4294967296",
            None,
            ErrorKind::Auth,
        ),
        (
            "trailing junk",
            ",s=c2FsdA==,i=4096,x=1,",
            None,
            ErrorKind::Auth,
        ),
        (
            "final with a wrong signature",
            ",s=c2FsdA==,i=4096",
            Some(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ErrorKind::Auth,
        ),
        (
            "final not a SCRAM message",
            ",s=c2FsdA==,i=4096",
            Some(b"\xff\xfe"),
            ErrorKind::Auth,
        ),
    ];
    for via in ALL {
        for (name, attrs, last, kind) in cases {
            let server = Server::start(via, move |p| {
                p.send(&auth(10, b"SCRAM-SHA-256\0\0"))?;
                let (_, body) = p.read_message()?;
                let text = String::from_utf8_lossy(&body).into_owned();
                let nonce = text.split_once(",r=").map_or("", |(_, n)| n).to_string();
                p.send(&auth(11, format!("r={nonce}srv{attrs}").as_bytes()))?;
                if let Some(last) = last {
                    p.read_message()?;
                    p.send(&auth(12, last))?;
                }
                p.wait_close();
                Ok(())
            });
            let what = format!("{via:?} SCRAM {name}");
            let seen = client_run(&server, &what);
            let Outcome::Connect(got, message) = &seen.outcome else {
                panic!("{what}: {seen:?}")
            };
            assert_eq!(*got, kind, "{what}: {message}");
            assert!(message.contains("SCRAM"), "{what}: {message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connection cut at every byte
// ---------------------------------------------------------------------------------------------

/// The server sends the first `k` bytes of the whole exchange (start-up and answer), then
/// hangs up, for every `k`. Up to the end of the start-up, `connect` fails; up to the
/// description, `execute`; then the stream delivers every row that came whole and fails
/// with "closed the connection unexpectedly after N rows"; all of it, and the stream ends.
fn cut_at_every_byte(via: Via, steps: Vec<Step>) {
    let all: Vec<u8> = steps.iter().flat_map(|s| s.bytes.clone()).collect();
    let mut failures = Vec::new();
    let started = Instant::now();
    for k in 0..=all.len() {
        // The step the cut falls in (`steps.len()`: none, everything was sent).
        let mut end = 0;
        let mut at = steps.len();
        for (i, s) in steps.iter().enumerate() {
            end += s.bytes.len();
            if k < end {
                at = i;
                break;
            }
        }
        let what = format!("{via:?} cut at byte {k} of {}", all.len());
        let (want, server) = if at == steps.len() {
            (
                Outcome::Stream {
                    rows: rows_before(&steps, at),
                    end: None,
                },
                play(via, steps.clone(), None),
            )
        } else {
            let sent = k - (end - steps[at].bytes.len());
            let partial = steps[at].bytes[..sent].to_vec();
            (
                expected_at(&steps, at, ErrorKind::Io),
                play(via, steps.clone(), Some((at, partial, Then::HangUp))),
            )
        };
        let seen = client_run(&server, &what);
        if !same_shape(&seen.outcome, &want) {
            failures.push(format!("{what}: got {:?}, want {want:?}", seen.outcome));
            continue;
        }
        if let Outcome::Stream {
            rows,
            end: Some((_, message)),
        } = &seen.outcome
        {
            let expected = format!(
                "the server closed the connection unexpectedly after {} rows",
                rows.len()
            );
            if *message != expected {
                failures.push(format!("{what}: message {message:?}"));
            }
        }
        if let Some(reused) = reused_after(&seen.outcome) {
            if (seen.idle == 1) != reused {
                failures.push(format!("{what}: {} idle connections", seen.idle));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cuts failed:\n{}",
        failures.len(),
        all.len() + 1,
        failures.join("\n")
    );
    eprintln!(
        "{via:?}: {} cuts in {:.1} s",
        all.len() + 1,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn connection_cut_at_every_byte_unix() {
    cut_at_every_byte(Via::Unix, main_exchange());
    cut_at_every_byte(
        Via::Unix,
        password_exchange(auth(3, &[]), "AuthenticationCleartextPassword"),
    );
}

#[test]
fn connection_cut_at_every_byte_tcp() {
    cut_at_every_byte(Via::Tcp, main_exchange());
    cut_at_every_byte(
        Via::Tcp,
        password_exchange(auth(5, b"salt"), "AuthenticationMD5Password"),
    );
}

#[test]
fn connection_cut_at_every_byte_tls() {
    cut_at_every_byte(Via::Tls, main_exchange());
}

// ---------------------------------------------------------------------------------------------
// A silent server
// ---------------------------------------------------------------------------------------------

/// A server silent during start-up (from the first byte, after AuthenticationOk, in the
/// middle of a message) fails `connect` after `connect_timeout`, not later.
#[test]
fn silent_in_startup_times_out_with_connect_timeout() {
    let timeout = Duration::from_millis(300);
    for via in ALL {
        let servers = [
            ("silent from the start", Server::start_silent(via)),
            (
                "silent after AuthenticationOk",
                play(via, main_exchange(), Some((1, vec![], Then::Silent))),
            ),
            (
                "silent inside BackendKeyData",
                play(
                    via,
                    main_exchange(),
                    Some((3, backend_key()[..6].to_vec(), Then::Silent)),
                ),
            ),
        ];
        for (name, server) in servers {
            let what = format!("{via:?} {name}");
            let config = server.config(timeout);
            let t = Instant::now();
            let err = within(BOUND, &what, move || {
                Client::with_config(config).err().expect("connect fails")
            });
            let took = t.elapsed();
            assert_eq!(err.kind(), ErrorKind::Connect, "{what}: {err}");
            assert!(
                err.message().contains("timed out after 0.3 s"),
                "{what}: {err}"
            );
            // It waited for the timeout (the message says it is what ended the wait).
            assert!(took >= timeout, "{what}: failed after {took:?}");
        }
    }
}

/// A server silent after the query, or after a few rows, or inside a row: `execute` returns
/// once its `describe_wait` has passed, `next` with a timeout returns the rows that came and
/// then `Timeout`, the stream still running; a cancel then ends it.
#[test]
fn silent_while_streaming_gives_timeouts_then_a_cancel_ends_it() {
    let main = main_exchange();
    let described = trust_startup().len() + 2;
    let first_row = described + 1;
    let second_row = first_row + 2;
    // (what, the step where the server falls silent, what it sends of it, rows before)
    let cases: [(&str, usize, Vec<u8>, usize); 4] = [
        ("silent after the query", described - 2, vec![], 0),
        ("silent after the description", first_row, vec![], 0),
        ("silent after one row", first_row + 1, vec![], 1),
        (
            "silent inside the second row",
            second_row,
            main[second_row].bytes[..9].to_vec(),
            1,
        ),
    ];
    for via in ALL {
        for (name, at, partial, rows) in &cases {
            let what = format!("{via:?} {name}");
            let server = play(
                via,
                main.clone(),
                Some((*at, partial.clone(), Then::Silent)),
            );
            let config = server.config(Duration::from_secs(5));
            let rows = *rows;
            let (got, timeout_state, after_cancel) = within(BOUND, &what, move || {
                let client = Client::with_config(config).unwrap();
                let mut s = client.execute(&Query::new("v_fault").unwrap()).unwrap();
                let mut got = 0;
                loop {
                    match s.next(Wait::For(Duration::from_millis(150))) {
                        Ok(Next::Row(_)) => got += 1,
                        Ok(Next::Timeout) => break,
                        other => panic!("expected rows then Timeout, got {other:?}"),
                    }
                }
                let state = s.control().state();
                s.control().cancel().unwrap();
                let after = match s.next(Wait::Forever) {
                    Err(e) => e.kind(),
                    Ok(other) => panic!("expected an error after the cancel, got {other:?}"),
                };
                (got, state, after)
            });
            assert_eq!(got, rows, "{what}");
            assert_eq!(timeout_state, StreamState::Running, "{what}");
            assert_eq!(after_cancel, ErrorKind::Cancelled, "{what}");
        }
    }
}
