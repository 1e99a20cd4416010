//! The pool against a scripted server (tests/support/idle_fake.rs): a connection that the server
//! wrote to, or closed, while it sat idle in the pool is never used for the next query (its
//! bytes never become that query's answer), and a query is retried on a new connection only
//! when its request could not have reached a live session. See docs/reliability.md.

mod support;

use std::time::Duration;

use fraiseql_wire::{Client, Error, ErrorKind, Next, Query, Wait};
use support::idle_fake::{error_fields, start, Answer, Idle, IdleFake, Script};

/// Both transports the scripted server offers.
fn transports(f: &IdleFake) -> [(&'static str, String); 2] {
    [("tcp", f.tcp_conninfo()), ("unix", f.unix_conninfo())]
}

/// The one row of a query on the scripted server: `(connection, query on it)`.
fn one_row(client: &Client) -> Result<(i64, i64), Error> {
    let mut s = client.execute(&Query::new("v").unwrap())?;
    let row = match s.next(Wait::For(Duration::from_secs(10)))? {
        Next::Row(r) => String::from_utf8(r.to_vec()).unwrap(),
        other => panic!("expected a row, got {other:?}"),
    };
    match s.next(Wait::For(Duration::from_secs(10)))? {
        Next::Done => {}
        other => panic!("expected the end, got {other:?}"),
    }
    let field = |k: &str| -> i64 {
        let at = row.find(&format!("\"{k}\": ")).expect("field") + k.len() + 4;
        row[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    Ok((field("conn"), field("query")))
}

/// Connection 1 (the one `Client::connect` opens and pools) does `idle` right after its
/// start-up; every later connection behaves. The first query, made after that happened,
/// must be answered by connection 2, and the client must go on working.
fn idle_case(name: &str, idle: Idle) {
    let f = start(move |n| Script {
        after_startup: if n % 2 == 1 {
            idle.clone()
        } else {
            Idle::Nothing
        },
        ..Script::default()
    });
    // Connections 1 and 2 for the first transport, 3 and 4 for the second.
    for (i, (transport, conninfo)) in transports(&f).into_iter().enumerate() {
        let client = Client::connect(&conninfo).expect("connect");
        assert_eq!(client.pool().idle_count(), 1);
        std::thread::sleep(Duration::from_millis(300));
        let first = 2 * i as i64 + 1;
        let got = one_row(&client).unwrap_or_else(|e| {
            panic!(
                "{name} over {transport}: the next query failed with {e} ({:?})",
                e.kind()
            )
        });
        assert_eq!(
            got,
            (first + 1, 1),
            "{name} over {transport}: answered by another connection than a new one"
        );
        // The new connection went back to the pool and serves the next query.
        assert_eq!(
            one_row(&client).unwrap(),
            (first + 1, 2),
            "{name} over {transport}"
        );
    }
    assert_eq!(f.queries(), 4, "{name}: no query was sent twice");
}

#[test]
fn an_error_sent_to_an_idle_connection_is_not_the_next_queries_result() {
    // Before the fix, over both transports: the next query failed with `Server` "ERROR: the
    // server complains while idle (SQLSTATE XX000)".
    idle_case(
        "an ErrorResponse while idle",
        Idle::Send(
            Duration::from_millis(20),
            error_fields(b'E', "ERROR", "XX000", "the server complains while idle"),
        ),
    );
}

#[test]
fn a_fatal_error_and_close_while_idle_is_not_the_next_queries_result() {
    // What pg_terminate_backend, idle_session_timeout or a fast shutdown do to an idle
    // session. Before the fix, over TCP: the next query failed with `Server` "FATAL:
    // terminating connection due to administrator command (SQLSTATE 57P01)" (over the Unix
    // socket the write failed and the query was retried).
    idle_case(
        "FATAL 57P01 and close while idle",
        Idle::SendAndClose(
            Duration::from_millis(20),
            error_fields(
                b'E',
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            ),
        ),
    );
}

#[test]
fn a_silent_close_while_idle_is_not_the_next_queries_result() {
    // A pooler or a firewall ending the connection without a word.
    idle_case(
        "a close without a message",
        Idle::SendAndClose(Duration::from_millis(20), Vec::new()),
    );
}

#[test]
fn a_stray_byte_on_an_idle_connection_is_not_the_next_queries_result() {
    // Before the fix, over both transports: the next query failed with `Protocol`
    // (the byte was read as the start of the answer).
    idle_case(
        "one stray byte while idle",
        Idle::Send(Duration::from_millis(20), b"Z".to_vec()),
    );
}

#[test]
fn a_notice_on_an_idle_connection_is_not_the_next_queries_result() {
    idle_case(
        "a NoticeResponse while idle",
        Idle::Send(
            Duration::from_millis(20),
            error_fields(b'N', "NOTICE", "00000", "a notice while idle"),
        ),
    );
}

#[test]
fn a_message_split_right_after_ready_for_query_discards_the_connection() {
    // Connection 1 answers its first query and, in the same packet, starts an unsolicited
    // NoticeResponse whose rest comes 100 ms later. Before the fix the bytes after
    // ReadyForQuery were dropped, the connection pooled, and the second query read the rest
    // of the notice as its answer: `Protocol` over both transports.
    let notice = error_fields(b'N', "NOTICE", "00000", "a notice after the answer");
    let (head, tail) = notice.split_at(3);
    let (head, tail) = (head.to_vec(), tail.to_vec());
    let f = start(move |n| Script {
        first_answer: if n % 2 == 1 {
            Answer::RowThen(head.clone(), Duration::from_millis(100), tail.clone())
        } else {
            Answer::Row
        },
        ..Script::default()
    });
    for (i, (transport, conninfo)) in transports(&f).into_iter().enumerate() {
        let client = Client::connect(&conninfo).expect("connect");
        let first = 2 * i as i64 + 1;
        assert_eq!(one_row(&client).unwrap(), (first, 1), "{transport}");
        std::thread::sleep(Duration::from_millis(300));
        let got = one_row(&client).unwrap_or_else(|e| {
            panic!("over {transport}: the query after the split message failed with {e}")
        });
        assert_eq!(got, (first + 1, 1), "over {transport}");
    }
}

#[test]
fn a_query_whose_connection_dies_after_it_was_sent_is_not_retried() {
    // Connection 1 reads the query and closes without an answer: the server may have run it,
    // so it must not run again. Before the fix the query was retried on a new connection
    // (the server received it twice and `execute` succeeded).
    let f = start(|n| Script {
        first_answer: if n % 2 == 1 {
            Answer::Close
        } else {
            Answer::Row
        },
        ..Script::default()
    });
    for (i, (transport, conninfo)) in transports(&f).into_iter().enumerate() {
        let client = Client::connect(&conninfo).expect("connect");
        let queries_before = f.queries();
        let sessions_before = f.sessions();
        let err = one_row(&client).expect_err("the connection died under the query");
        assert_eq!(err.kind(), ErrorKind::Io, "over {transport}: {err}");
        assert_eq!(
            f.queries(),
            queries_before + 1,
            "over {transport}: the query was sent again"
        );
        assert_eq!(
            f.sessions(),
            sessions_before,
            "over {transport}: a new connection was opened for a retry"
        );
        // The client is not poisoned: the next query runs on a new connection.
        let first = 2 * i as i64 + 1;
        assert_eq!(one_row(&client).unwrap(), (first + 1, 1), "{transport}");
    }
}

#[test]
fn a_request_that_cannot_be_written_is_retried_once_on_a_new_connection() {
    // Connection 1 stops reading while idle: over a Unix socket the client's socket shows
    // nothing to read, and the write of the query fails at once (EPIPE), so the server never
    // received it: the query is retried on a new connection.
    let f = start(|n| Script {
        after_startup: if n == 1 {
            Idle::StopReading
        } else {
            Idle::Nothing
        },
        ..Script::default()
    });
    let client = Client::connect(&f.unix_conninfo()).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(one_row(&client).unwrap(), (2, 1));
    assert_eq!(f.queries(), 1);
    assert_eq!(f.sessions(), 2);
}
