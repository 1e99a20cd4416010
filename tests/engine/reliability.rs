//! Real server faults against the throwaway PostgreSQL, over the Unix socket, TCP and TLS:
//! the backend terminated while idle in the pool and in the middle of a stream,
//! `idle_session_timeout`, `statement_timeout`. In each case the caller gets a clear status
//! and the client works for the next query (the pool is not poisoned). The server restart
//! has a test binary of its own (tests/reliability_restart.rs). See docs/reliability.md.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::{Client, ErrorKind, Next, StreamState, Wait};

/// The three transports, each as a conninfo tagged with `application_name=app` (plus
/// `extra` settings).
fn transports(app: &str, extra: &str) -> [(&'static str, String); 3] {
    let p = pg();
    [
        (
            "unix",
            format!("{} application_name={app} {extra}", p.socket_conninfo()),
        ),
        (
            "tcp",
            format!(
                "{} application_name={app} {extra}",
                p.tcp_conninfo("fw_trust", "unused")
            ),
        ),
        (
            "tls",
            p.tls_conninfo(&format!("application_name={app} {extra}")),
        ),
    ]
}

/// The client streams exactly what SQL says.
fn assert_usable(client: &Client, what: &str) {
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int BETWEEN 10 AND 19").unwrap();
    let mut s = client
        .execute(&q)
        .unwrap_or_else(|e| panic!("{what}: the next query failed at execute: {e} ({e:?})"));
    let (rows, end) = drain(&mut s);
    end.unwrap_or_else(|e| panic!("{what}: the next query failed: {e}"));
    let ns: Vec<i64> = rows.iter().map(|r| int_field(r, "n")).collect();
    assert_eq!(ns, (10..=19).collect::<Vec<_>>(), "{what}");
}

fn terminate(app: &str) -> usize {
    pg().psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = '{app}' AND pid <> pg_backend_pid()"
    ))
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn a_backend_terminated_while_idle_in_the_pool_is_replaced() {
    // Before the fix, over TCP and TLS: the next query failed with `Server` "FATAL:
    // terminating connection due to administrator command (SQLSTATE 57P01)".
    for (transport, conninfo) in transports("fw_rel_idle_kill", "") {
        let app = format!("fw_rel_idle_kill_{transport}");
        let conninfo = conninfo.replace("fw_rel_idle_kill", &app);
        let client = Client::connect(&conninfo).expect("connect");
        assert_eq!(client.pool().idle_count(), 1);
        let old = backends_of(pg(), &app);
        assert_eq!(old.len(), 1, "{transport}");
        assert_eq!(terminate(&app), 1);
        assert!(
            wait_until(Duration::from_secs(5), || backends_of(pg(), &app)
                .is_empty()),
            "{transport}: the backend did not end"
        );
        assert_usable(&client, &format!("terminated while idle, {transport}"));
        let new = backends_of(pg(), &app);
        assert_eq!(new.len(), 1, "{transport}");
        assert_ne!(new, old, "{transport}");
        // And the new connection is pooled and reused.
        assert_usable(&client, transport);
        assert_eq!(backends_of(pg(), &app), new, "{transport}");
    }
}

#[test]
fn an_idle_session_timeout_does_not_fail_the_next_query() {
    // The server ends sessions idle for 300 ms (FATAL 57P05). Before the fix, over TCP and
    // TLS: the next query failed with `Server` "FATAL: terminating connection due to idle-
    // session timeout (SQLSTATE 57P05)".
    for (transport, conninfo) in transports(
        "fw_rel_idle_timeout",
        "options='-c idle_session_timeout=300'",
    ) {
        let app = format!("fw_rel_idle_timeout_{transport}");
        let conninfo = conninfo.replace("fw_rel_idle_timeout", &app);
        let client = Client::connect(&conninfo).expect("connect");
        for round in 0..2 {
            assert!(
                wait_until(Duration::from_secs(5), || backends_of(pg(), &app)
                    .is_empty()),
                "{transport}: idle_session_timeout did not end the session"
            );
            assert_usable(
                &client,
                &format!("idle_session_timeout {transport} #{round}"),
            );
        }
    }
}

#[test]
fn a_backend_terminated_mid_stream_is_io_with_the_reason_and_the_client_recovers() {
    for (transport, conninfo) in transports("fw_rel_mid_kill", "") {
        let app = format!("fw_rel_mid_kill_{transport}");
        let conninfo = conninfo.replace("fw_rel_mid_kill", &app);
        let client = Client::connect(&conninfo).expect("connect");
        let mut stream = client.execute(&query("v_slow")).unwrap();
        match stream.next(Wait::Forever).unwrap() {
            Next::Row(r) => assert_eq!(int_field(r, "i"), 1, "{transport}"),
            other => panic!("{transport}: {other:?}"),
        }
        assert_eq!(terminate(&app), 1);
        let t = Instant::now();
        let mut rows = 1;
        let err = loop {
            match stream.next(Wait::For(Duration::from_secs(10))) {
                Ok(Next::Row(r)) => {
                    rows += 1;
                    assert_eq!(int_field(r, "i"), rows, "{transport}");
                }
                Ok(other) => panic!("{transport}: {other:?}"),
                Err(e) => break e,
            }
        };
        assert!(rows < 20, "{transport}: every row arrived");
        assert!(t.elapsed() < Duration::from_secs(3), "{transport}");
        assert_eq!(err.kind(), ErrorKind::Io, "{transport}: {err}");
        assert_eq!(err.sqlstate(), Some("57P01"), "{transport}: {err}");
        assert!(
            err.message()
                .contains("terminating connection due to administrator command"),
            "{transport}: {err}"
        );
        assert_eq!(stream.control().state(), StreamState::Failed);
        drop(stream);
        assert_eq!(client.pool().idle_count(), 0, "{transport}");
        assert_usable(&client, &format!("after a kill mid-stream, {transport}"));
        assert_eq!(backends_of(pg(), &app).len(), 1, "{transport}");
    }
}

#[test]
fn a_statement_timeout_is_a_server_error_and_the_connection_is_reused() {
    // Before the fix: `Cancelled` ("ERROR: canceling statement due to statement timeout"),
    // the status of a cancel the caller asked for, and the connection was dropped.
    for (transport, conninfo) in
        transports("fw_rel_stmt_timeout", "options='-c statement_timeout=200'")
    {
        let app = format!("fw_rel_stmt_timeout_{transport}");
        let conninfo = conninfo.replace("fw_rel_stmt_timeout", &app);
        let client = Client::connect(&conninfo).expect("connect");
        let before = backends_of(pg(), &app);
        let t = Instant::now();
        let err = match client.execute(&query("v_sleep30")) {
            Err(e) => e,
            Ok(mut s) => {
                let (rows, end) = drain(&mut s);
                assert!(rows.is_empty(), "{transport}");
                assert_eq!(s.control().state(), StreamState::Failed, "{transport}");
                end.expect_err("the statement times out")
            }
        };
        assert!(t.elapsed() < Duration::from_secs(5), "{transport}");
        assert_eq!(err.kind(), ErrorKind::Server, "{transport}: {err}");
        assert_eq!(err.sqlstate(), Some("57014"), "{transport}: {err}");
        assert!(
            err.message().contains("statement timeout"),
            "{transport}: {err}"
        );
        // The session is clean after ErrorResponse + ReadyForQuery: the next query runs on the
        // same backend.
        assert_usable(&client, &format!("after statement_timeout, {transport}"));
        assert_eq!(backends_of(pg(), &app), before, "{transport}");
    }
}
