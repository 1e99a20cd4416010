//! Hostile and broken servers, one defect each: a server message larger than the stream's
//! memory budget is read whole and reported (never a wait), start-up messages are bounded,
//! protocol violations are errors (rows before them delivered first), and unclear failures
//! get clear messages. Against the scripted fake server of `support::fault` over a Unix
//! socket, TCP and TLS, and (the large error) against the throwaway PostgreSQL.
//!
//! Every client call runs under a harness bound (`within`): a hang fails the test.

mod support;

use std::time::Duration;

use fraiseql_wire::{Client, ErrorKind, Query};
use support::fault::*;

const BOUND: Duration = Duration::from_secs(30);
const MIB: usize = 1024 * 1024;

/// How the consumer takes the rows of a stream, to exercise each of the reader's paths.
#[derive(Clone, Copy, Debug)]
enum Consumer {
    /// Asks for the next row at once (the reader is parked, the consumer reads the socket).
    Eager,
    /// Busy for 200 ms after the first row (a reader task takes over and reads meanwhile).
    Busy,
}

fn drain_as(client: &Client, query: &Query, consumer: Consumer) -> Outcome {
    let busy = match consumer {
        Consumer::Eager => Duration::ZERO,
        Consumer::Busy => Duration::from_millis(200),
    };
    drain_busy(client, query, busy)
}

/// Connect to `server`, run one query as `consumer`, then (when `then_usable`) check that
/// the client streams the next query normally.
fn run_as(server: &Server, consumer: Consumer, what: &str) -> Outcome {
    let config = server.config(Duration::from_secs(5));
    within(BOUND, what, move || {
        let client = match Client::with_config(config) {
            Ok(c) => c,
            Err(e) => return Outcome::Connect(e.kind(), e.to_string()),
        };
        drain_as(&client, &Query::new("v_fault").unwrap(), consumer)
    })
}

// ---------------------------------------------------------------------------------------------
// 1. A server message larger than the stream's memory budget
// ---------------------------------------------------------------------------------------------

/// Five rows, `pause`, then an ErrorResponse (`tag` E) or NoticeResponse (N) whose message is
/// `len` bytes of 'x', then (for a notice) two more rows and the end of the query.
fn large_message_server(via: Via, tag: u8, len: usize, pause: Duration) -> Server {
    Server::start(via, move |p| {
        p.send(&session_start())?;
        p.read_query()?;
        p.send(&[described(), rows(5)].concat())?;
        std::thread::sleep(pause);
        p.send(&huge_error_head(tag, "22P02", len))?;
        p.send_fill(len, b'x')?;
        p.send(&huge_error_tail())?;
        if tag == b'N' {
            p.send(&[rows(2), complete(7)].concat())?;
        } else {
            p.send(&ready())?;
        }
        p.wait_close();
        Ok(())
    })
}

#[test]
fn an_error_larger_than_the_budget_is_reported_on_every_path() {
    for via in ALL {
        for (consumer, pause) in [
            // The error comes right behind the rows: read while the query starts.
            (Consumer::Eager, Duration::ZERO),
            // The consumer waits on the socket when the error comes.
            (Consumer::Eager, Duration::from_millis(100)),
            // A reader task reads while the consumer is busy.
            (Consumer::Busy, Duration::from_millis(50)),
        ] {
            let what = format!("{via:?} {consumer:?} pause {pause:?}");
            let server = large_message_server(via, b'E', 2_200_000, pause);
            let out = run_as(&server, consumer, &what);
            let Outcome::Stream { rows, end } = &out else {
                panic!("{what}: {out:?}")
            };
            assert_eq!(rows.len(), 5, "{what}: rows before the error");
            let (kind, message) = end.as_ref().expect("an error");
            assert_eq!(*kind, ErrorKind::Server, "{what}: {message:.300}");
            assert!(
                message.contains("(SQLSTATE 22P02)"),
                "{what}: {message:.300}"
            );
            assert!(message.starts_with("ERROR: xxxx"), "{what}: {message:.300}");
            // Reported, but truncated: not 2.2 MB of x.
            assert!(
                message.len() < 20_000,
                "{what}: a {} byte message",
                message.len()
            );
            assert!(
                message.contains("bytes truncated"),
                "{what}: {message:.300}"
            );
        }
    }
}

#[test]
fn a_notice_larger_than_the_budget_is_read_and_the_stream_goes_on() {
    for via in ALL {
        let server = large_message_server(via, b'N', 2_200_000, Duration::from_millis(50));
        let out = run_as(&server, Consumer::Eager, &format!("{via:?} notice"));
        assert_eq!(out.kind(), None, "{via:?}: {out:?}");
        assert_eq!(out.row_count(), 7, "{via:?}: all rows, the notice skipped");
    }
}

#[test]
fn a_message_of_unknown_type_larger_than_the_budget_is_a_protocol_error() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            p.send(&[described(), rows(3)].concat())?;
            let len = 3 * MIB;
            p.send(&msg_with_len(b'~', (len + 4) as u32, &[]))?;
            p.send_fill(len, b'x')?;
            p.wait_close();
            Ok(())
        });
        let out = run(&server, BOUND, &format!("{via:?} unknown"));
        assert_eq!(out.row_count(), 3, "{via:?}: {out:?}");
        assert_eq!(out.kind(), Some(ErrorKind::Protocol), "{via:?}: {out:?}");
        assert!(out.message().contains("'~'"), "{via:?}: {out:?}");
    }
}

#[test]
fn an_error_over_the_message_cap_is_a_protocol_error_at_its_header() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            p.send(&[described(), rows(4)].concat())?;
            // Announces 100 MiB; sends 1 MiB of it, then waits.
            let head = huge_error_head(b'E', "22P02", 100 * MIB);
            p.send(&head)?;
            p.send_fill(MIB, b'x')?;
            p.wait_close();
            Ok(())
        });
        let out = run(&server, BOUND, &format!("{via:?} over the cap"));
        assert_eq!(out.row_count(), 4, "{via:?}: {out:?}");
        assert_eq!(out.kind(), Some(ErrorKind::Protocol), "{via:?}: {out:?}");
        assert!(out.message().contains("67108864"), "{via:?}: {out:?}");
    }
}

#[test]
fn a_large_error_before_the_description_fails_execute() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            p.send(&msg(b'1', &[]))?;
            let len = 3 * MIB;
            p.send(&huge_error_head(b'E', "22P02", len))?;
            p.send_fill(len, b'y')?;
            p.send(&[huge_error_tail(), ready()].concat())?;
            p.wait_close();
            Ok(())
        });
        // `execute` waiting for the description as long as it takes: it reports the error.
        let mut q = Query::new("v_fault").unwrap();
        q.describe_wait(None).unwrap();
        let config = server.config(Duration::from_secs(5));
        let out = run_config(config, q, BOUND, &format!("{via:?} before description"));
        let Outcome::Execute(kind, message) = &out else {
            panic!("{via:?}: {out:?}")
        };
        assert_eq!(*kind, ErrorKind::Server, "{via:?}: {message:.200}");
        assert!(
            message.contains("bytes truncated"),
            "{via:?}: {message:.200}"
        );
        assert!(message.len() < 20_000, "{via:?}: {} bytes", message.len());
        // With the default describe_wait, `execute` returns before the error is read
        // whole; the stream reports it.
        let out = run(
            &server,
            BOUND,
            &format!("{via:?} before description, stream"),
        );
        match &out {
            Outcome::Execute(ErrorKind::Server, _) => {}
            Outcome::Stream {
                rows,
                end: Some((ErrorKind::Server, m)),
            } if rows.is_empty() => {
                assert!(m.len() < 20_000, "{via:?}: {} bytes", m.len())
            }
            other => panic!("{via:?}: {other:?}"),
        }
    }
}

/// Real PostgreSQL: `22P02` quotes the whole bad input, here 8.5 MB, far above the default
/// 2 MiB budget. The rows before it come first, the error is reported (truncated), and the
/// client runs the next query on the same connection.
#[test]
fn postgres_huge_error_is_reported_over_unix_tcp_and_tls() {
    let pg = support::pg();
    let tls = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname={} user=fw_tls_only \
         password=tls-secret sslmode=require",
        pg.port(),
        pg.var("FW_PG_DB")
    );
    for (name, conninfo) in [
        ("unix", pg.socket_conninfo()),
        ("tcp", pg.tcp_conninfo("fw_trust", "x")),
        ("tls", tls),
    ] {
        let out = within(Duration::from_secs(60), name, move || {
            let client = Client::connect(&conninfo).unwrap();
            let mut q = Query::new("v_user").unwrap();
            q.where_sql(
                "CASE WHEN (data->>'n')::int <= 20 THEN true \
                 ELSE (repeat('x', 8500000) || (data->>'n'))::int = 1 END",
            )
            .unwrap();
            let failed = drain_as(&client, &q, Consumer::Eager);
            // The connection was clean after the error: the next query reuses it.
            let idle = client.pool().idle_count();
            let again = drain_as(&client, &Query::new("v_user").unwrap(), Consumer::Eager);
            (failed, idle, again)
        });
        let (failed, idle, again) = out;
        let Outcome::Stream { rows, end } = &failed else {
            panic!("{name}: {failed:?}")
        };
        assert!(!rows.is_empty(), "{name}: rows before the error");
        let (kind, message) = end.as_ref().expect("an error");
        assert_eq!(*kind, ErrorKind::Server, "{name}: {message:.300}");
        assert!(
            message.contains("(SQLSTATE 22P02)"),
            "{name}: {message:.300}"
        );
        assert!(message.len() < 20_000, "{name}: {} bytes", message.len());
        assert_eq!(idle, 1, "{name}: the connection went back to the pool");
        assert_eq!(again.row_count(), 1000, "{name}: {again:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Start-up messages are bounded
// ---------------------------------------------------------------------------------------------

/// A message header announcing `len` bytes (length field) sent at `when`, then up to
/// `send` bytes of it (fewer if the client hangs up).
fn startup_flood(via: Via, after_auth: bool, tag: u8, len: u32, send: usize) -> Server {
    Server::start(via, move |p| {
        if after_auth {
            p.send(&auth_ok())?;
        }
        p.send(&msg_with_len(tag, len, &[]))?;
        p.send_fill(send, b'z')?;
        p.wait_close();
        Ok(())
    })
}

#[test]
fn a_huge_notice_before_authentication_is_refused_at_its_header() {
    for via in ALL {
        let _mem = memory_lock();
        let server = startup_flood(via, false, b'N', i32::MAX as u32, 300 * MIB);
        let before = rss_bytes();
        let out = run(&server, BOUND, &format!("{via:?} notice flood"));
        let grown = rss_bytes().saturating_sub(before);
        let Outcome::Connect(kind, message) = &out else {
            panic!("{via:?}: {out:?}")
        };
        assert_eq!(*kind, ErrorKind::Protocol, "{via:?}: {message}");
        assert!(
            message.contains("before authentication"),
            "{via:?}: {message}"
        );
        assert!(
            grown < 32 * MIB as u64,
            "{via:?}: RSS grew by {} MiB",
            grown / MIB as u64
        );
    }
}

#[test]
fn startup_messages_are_bounded_as_libpq_bounds_them() {
    // (after AuthenticationOk?, tag, length field, what the message must say)
    let cases: [(bool, u8, u32, &str); 5] = [
        // An authentication request of more than 2000 bytes.
        (false, b'R', 5000, "authentication request"),
        // An error of more than 30000 bytes before authentication.
        (false, b'E', 40_000, "before authentication"),
        // A ParameterStatus of 1 GiB after AuthenticationOk: a short message type.
        (true, b'S', 1 << 30, "at most 30000"),
        // BackendKeyData of 1 MiB.
        (true, b'K', 1 << 20, "at most 30000"),
        // A notice of 2 GiB after AuthenticationOk: over the cap of non-row messages.
        (true, b'N', i32::MAX as u32, "67108864"),
    ];
    for via in ALL {
        for (after_auth, tag, len, says) in cases {
            let what = format!("{via:?} {} len {len}", tag as char);
            let _mem = memory_lock();
            let server = startup_flood(via, after_auth, tag, len, (len as usize).min(64 * MIB));
            let before = rss_bytes();
            let out = run(&server, BOUND, &what);
            let grown = rss_bytes().saturating_sub(before);
            let Outcome::Connect(kind, message) = &out else {
                panic!("{what}: {out:?}")
            };
            assert_eq!(*kind, ErrorKind::Protocol, "{what}: {message}");
            assert!(message.contains(says), "{what}: {message}");
            assert!(grown < 32 * MIB as u64, "{what}: RSS +{grown}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Protocol violations are errors, after the rows before them
// ---------------------------------------------------------------------------------------------

#[test]
fn a_data_row_field_length_below_minus_one_is_a_protocol_error() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            p.send(&[described(), rows(3), data_row_len(-2, &[]), complete(4)].concat())?;
            p.wait_close();
            Ok(())
        });
        let out = run(&server, BOUND, &format!("{via:?} -2"));
        let Outcome::Stream { rows, end } = &out else {
            panic!("{via:?}: {out:?}")
        };
        assert_eq!(rows.len(), 3, "{via:?}: {out:?}");
        let (kind, message) = end.as_ref().expect("an error, not a null row");
        assert_eq!(*kind, ErrorKind::Protocol, "{via:?}: {message}");
        assert!(message.contains("-2"), "{via:?}: {message}");
    }
}

#[test]
fn a_binary_format_column_is_a_protocol_error() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            let desc = row_description_with("data", 3802, 1);
            // jsonb in binary: a version byte, then the text.
            let row = data_row(b"\x01{\"a\":1}");
            p.send(&[msg(b'1', &[]), msg(b'2', &[]), desc, row, complete(1)].concat())?;
            p.wait_close();
            Ok(())
        });
        let out = run(&server, BOUND, &format!("{via:?} binary"));
        let Outcome::Execute(kind, message) = &out else {
            panic!("{via:?}: {out:?}")
        };
        assert_eq!(*kind, ErrorKind::Protocol, "{via:?}: {message}");
        assert!(message.contains("binary"), "{via:?}: {message}");
    }
}

/// A SCRAM exchange whose server-first message has iteration count `iterations`; records
/// whether the client sent its proof.
fn scram_server(
    via: Via,
    iterations: &'static str,
) -> (Server, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let proof = std::sync::Arc::new(AtomicBool::new(false));
    let seen = proof.clone();
    let server = Server::start(via, move |p| {
        p.send(&auth(10, b"SCRAM-SHA-256\0\0"))?;
        let (tag, body) = p.read_message()?;
        assert_eq!(tag, b'p', "SASLInitialResponse");
        // "SCRAM-SHA-256\0", a length, then the client-first message "n,,n=,r=<nonce>" (the
        // nonce has no comma).
        let text = String::from_utf8_lossy(&body).into_owned();
        let nonce = text.split_once(",r=").expect("client nonce").1.to_string();
        let first = format!("r={nonce}server,s=c2FsdHNhbHQ=,i={iterations}");
        p.send(&auth(11, first.as_bytes()))?;
        if let Ok((b'p', _)) = p.read_message() {
            seen.store(true, Ordering::SeqCst);
        }
        p.wait_close();
        Ok(())
    });
    (server, proof)
}

#[test]
fn a_scram_iteration_count_of_zero_is_refused_before_the_proof() {
    for via in ALL {
        for count in ["0", "-1", ""] {
            let (server, proof) = scram_server(via, count);
            let out = run(&server, BOUND, &format!("{via:?} i={count}"));
            let Outcome::Connect(kind, message) = &out else {
                panic!("{via:?}: {out:?}")
            };
            assert_eq!(*kind, ErrorKind::Auth, "{via:?} i={count}: {message}");
            assert!(message.contains("iteration count"), "{via:?}: {message}");
            // Give a proof a moment to arrive, were one sent.
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !proof.load(std::sync::atomic::Ordering::SeqCst),
                "{via:?} i={count}: the client sent a proof"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Clear messages
// ---------------------------------------------------------------------------------------------

#[test]
fn an_error_without_fields_says_so() {
    for via in ALL {
        let server = Server::start(via, |p| {
            p.send(&session_start())?;
            p.read_query()?;
            p.send(&[described(), rows(2), msg(b'E', &[0]), ready()].concat())?;
            p.wait_close();
            Ok(())
        });
        let out = run(&server, BOUND, &format!("{via:?} empty error"));
        assert_eq!(out.row_count(), 2, "{via:?}: {out:?}");
        assert_eq!(out.kind(), Some(ErrorKind::Server), "{via:?}: {out:?}");
        assert_eq!(
            out.message(),
            "the server sent an error without a message",
            "{via:?}"
        );
    }
}

#[test]
fn a_connection_cut_mid_stream_reads_the_same_on_every_transport() {
    for via in ALL {
        for consumer in [Consumer::Eager, Consumer::Busy] {
            let server = Server::start(via, |p| {
                p.send(&session_start())?;
                p.read_query()?;
                p.send(&[described(), rows(6)].concat())?;
                std::thread::sleep(Duration::from_millis(50));
                p.hang_up();
                Ok(())
            });
            let out = run_as(&server, consumer, &format!("{via:?} cut"));
            assert_eq!(out.row_count(), 6, "{via:?}: {out:?}");
            assert_eq!(out.kind(), Some(ErrorKind::Io), "{via:?}: {out:?}");
            assert_eq!(
                out.message(),
                "the server closed the connection unexpectedly after 6 rows",
                "{via:?} {consumer:?}"
            );
        }
    }
}

#[test]
fn unsupported_authentication_requests_are_named() {
    // (request code, what the message must name)
    let cases = [
        (2u32, "Kerberos V5"),
        (6, "SCM credential"),
        (7, "GSSAPI"),
        (9, "SSPI"),
    ];
    for via in ALL {
        for (code, name) in cases {
            let server = Server::start(via, move |p| {
                p.send(&auth(code, &[]))?;
                p.wait_close();
                Ok(())
            });
            let out = run(&server, BOUND, &format!("{via:?} auth {code}"));
            let Outcome::Connect(kind, message) = &out else {
                panic!("{via:?}: {out:?}")
            };
            assert_eq!(*kind, ErrorKind::Auth, "{via:?} {code}: {message}");
            assert!(message.contains(name), "{via:?} {code}: {message}");
            assert!(
                message.contains("not supported"),
                "{via:?} {code}: {message}"
            );
            if code == 6 {
                assert!(!message.contains("GSSAPI"), "{message}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Found by fuzzing (fuzz/corpus/frame/large-row)
// ---------------------------------------------------------------------------------------------

/// A 40 KB row after a small one with a 64 KiB budget: the row fits the budget (it may use
/// all of it), and must be read whatever the read buffer looked like when its header came.
#[test]
fn a_large_row_within_a_tight_budget_is_read() {
    for via in ALL {
        let big = format!("\"{}\"", "y".repeat(40_000));
        let server = Server::start(via, move |p| {
            p.send(&session_start())?;
            p.read_query()?;
            let mut answer = [described(), rows(1)].concat();
            answer.extend(data_row(big.as_bytes()));
            answer.extend([rows(1), complete(3)].concat());
            for piece in answer.chunks(4096) {
                p.send(piece)?;
            }
            p.wait_close();
            Ok(())
        });
        let mut q = Query::new("v_fault").unwrap();
        q.max_memory(64 * 1024, 0.8, 1.0).unwrap();
        let out = run_config(
            server.config(Duration::from_secs(5)),
            q,
            BOUND,
            &format!("{via:?} large row"),
        );
        assert_eq!(out.kind(), None, "{via:?}: {out:?}");
        assert_eq!(out.row_count(), 3, "{via:?}");
    }
}
