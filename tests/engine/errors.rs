//! Errors: each failure has its own kind and an actionable message, server
//! errors carry SQLSTATE / detail / hint / position, rows received before a server error are
//! delivered first, and the client stays usable after every one of them.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::{Client, Error, ErrorKind, Next, Query, StreamState, Wait};

/// The client still streams, and exactly what SQL says.
fn assert_usable(client: &Client) {
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int BETWEEN 10 AND 19").unwrap();
    let ns: Vec<i64> = rows_of(client, &q)
        .iter()
        .map(|r| int_field(r, "n"))
        .collect();
    assert_eq!(ns, (10..=19).collect::<Vec<_>>());
}

/// The error of executing and draining `q`, wherever it shows up.
fn failure(client: &Client, q: &Query) -> Error {
    match client.execute(q) {
        Err(e) => e,
        Ok(mut s) => drain(&mut s).1.expect_err("the query should fail"),
    }
}

#[test]
fn missing_view_is_a_server_error_at_execute() {
    let client = socket_client();
    let err = client
        .execute(&query("v_does_not_exist"))
        .err()
        .expect("missing view");
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("42P01"));
    let se = err.server_error().unwrap();
    assert_eq!(se.severity, "ERROR");
    assert_eq!(se.message, "relation \"v_does_not_exist\" does not exist");
    // Position of the name in `SELECT data FROM "v_does_not_exist"` (1-based characters).
    assert_eq!(se.position.as_deref(), Some("18"));
    assert_eq!(
        err.to_string(),
        "ERROR: relation \"v_does_not_exist\" does not exist (SQLSTATE 42P01)"
    );
    assert_usable(&client);
}

#[test]
fn syntax_error_in_where_sql_has_a_position() {
    let client = socket_client();
    let mut q = query("v_user");
    q.where_sql("data->>'n' = = '1'").unwrap();
    let err = failure(&client, &q);
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("42601"));
    let sql = q.sql();
    let expected = sql.find("= '1'").unwrap() + 1; // ASCII: bytes == characters
    assert_eq!(
        err.server_error().unwrap().position.as_deref(),
        Some(expected.to_string().as_str()),
        "{sql}"
    );
    assert!(err.message().contains("syntax error"), "{err}");
    assert_usable(&client);
}

#[test]
fn server_hint_and_detail_are_kept() {
    let client = socket_client();
    // text = integer: "operator does not exist", with a HINT.
    let mut q = query("v_user");
    q.where_sql("data->>'n' = 1").unwrap();
    let err = failure(&client, &q);
    assert_eq!(err.sqlstate(), Some("42883"), "{err}");
    let se = err.server_error().unwrap();
    assert!(
        se.message.contains("operator does not exist"),
        "{}",
        se.message
    );
    assert!(
        se.hint
            .as_deref()
            .unwrap_or("")
            .contains("explicit type casts"),
        "{se:?}"
    );
    assert!(se.position.is_some());

    // Invalid JSON literal: a DETAIL naming the bad token.
    let mut q = query("v_user");
    q.where_sql("data @> '{bad'::jsonb").unwrap();
    let err = failure(&client, &q);
    assert_eq!(err.sqlstate(), Some("22P02"), "{err}");
    let se = err.server_error().unwrap();
    assert!(se.detail.as_deref().unwrap_or("").contains("bad"), "{se:?}");
    assert_usable(&client);
}

#[test]
fn division_by_zero_after_50_rows_delivers_the_rows_then_the_error() {
    let app = "fw_err_divzero";
    let client = socket_client_app(app);
    let mut stream = client.execute(&query("v_div_zero_after")).unwrap();
    let mut is = Vec::new();
    let err = loop {
        match stream.next(Wait::Forever) {
            Ok(Next::Row(r)) => is.push(int_field(r, "i")),
            Ok(other) => panic!("{other:?} after {} rows", is.len()),
            Err(e) => break e,
        }
    };
    assert_eq!(is, (1..=50).collect::<Vec<_>>());
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("22012"));
    assert_eq!(err.server_error().unwrap().message, "division by zero");
    assert_eq!(stream.control().state(), StreamState::Failed);
    // The error is the stream's terminal error, and repeats.
    assert_eq!(stream.error().map(Error::sqlstate), Some(Some("22012")));
    assert_eq!(
        stream
            .control()
            .terminal_error()
            .and_then(|e| e.sqlstate().map(str::to_owned)),
        Some("22012".to_string())
    );
    assert_eq!(
        stream.next(Wait::NoWait).unwrap_err().sqlstate(),
        Some("22012")
    );
    let st = stream.stats();
    assert_eq!((st.total_rows_received, st.total_rows_yielded), (50, 50));
    drop(stream);
    // The session is clean after ErrorResponse + ReadyForQuery: it goes back to the pool and
    // the next query runs on the same backend.
    let before = backends_of(pg(), app);
    assert_eq!(before.len(), 1);
    assert_eq!(client.pool().idle_count(), 1);
    assert_usable(&client);
    assert_eq!(backends_of(pg(), app), before);
}

#[test]
fn a_server_that_dies_mid_stream_is_io_with_the_servers_reason() {
    let app = "fw_err_terminate";
    let client = socket_client_app(app);
    let mut stream = client.execute(&query("v_slow")).unwrap();
    // Take the first row, then kill the backend while it is producing the others.
    match stream.next(Wait::Forever).unwrap() {
        Next::Row(r) => assert_eq!(int_field(r, "i"), 1),
        other => panic!("{other:?}"),
    }
    let killed = pg().psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = '{app}' AND state = 'active'"
    ));
    assert_eq!(killed.trim(), "1");
    let t = Instant::now();
    let mut rows = 1;
    let err = loop {
        match stream.next(Wait::Forever) {
            Ok(Next::Row(r)) => {
                rows += 1;
                assert_eq!(int_field(r, "i"), rows);
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert!(
        rows < 20,
        "all rows arrived although the backend was terminated"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "error took {:?}",
        t.elapsed()
    );
    // Decision: the connection broke, so the kind is Io; the server said why before closing
    // (FATAL 57P01 admin_shutdown), and that reason and SQLSTATE are kept.
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.sqlstate(), Some("57P01"), "{err}");
    assert!(
        err.message()
            .contains("terminating connection due to administrator command"),
        "{err}"
    );
    assert_eq!(stream.control().state(), StreamState::Failed);
    drop(stream);
    // The broken connection is not pooled; the client opens a new one.
    assert_eq!(client.pool().idle_count(), 0);
    assert_usable(&client);
    assert_eq!(backends_of(pg(), app).len(), 1);
}

#[test]
fn a_server_error_does_not_poison_the_pool_for_other_queries() {
    let client = socket_client();
    for _ in 0..3 {
        let err = client.execute(&query("v_missing")).err().unwrap();
        assert_eq!(err.sqlstate(), Some("42P01"));
        let mut s = client.execute(&query("v_div_zero_after")).unwrap();
        let (rows, end) = drain(&mut s);
        assert_eq!(rows.len(), 50);
        assert_eq!(end.unwrap_err().sqlstate(), Some("22012"));
        assert_usable(&client);
    }
}
