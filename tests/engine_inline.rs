//! Queries start on the calling thread (small-query latency): on an idle pooled
//! connection over a plain socket, `execute` sends the query, waits for the answer in poll(2)
//! and parses it itself; a small result is read whole there (the stream is complete and its
//! connection back in the pool when `execute` returns), a larger one continues on a reader
//! task. Idle and inline connections are out of the runtime's epoll set, so the runtime's
//! threads do not even wake up for a small query.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use fraiseql_wire::stream::StreamState;
use fraiseql_wire::{Client, ErrorKind, Next, Wait};
use support::fakepg::{fakepg_with, FakePg};
use support::*;

/// The tests below count the runtime threads' context switches: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tls_client_app(app: &str) -> Client {
    Client::connect(&format!(
        "host=127.0.0.1 port={} dbname={} user=fw_trust application_name={app} sslmode=require",
        pg().port(),
        pg().var("FW_PG_DB")
    ))
    .expect("tls client")
}

/// A client over the socket (queries start on the calling thread) and one over TLS (through
/// the runtime), both named `app`.
fn unix_and_tls(app: &str) -> [(&'static str, Client); 2] {
    [
        ("unix", socket_client_app(app)),
        ("tls", tls_client_app(app)),
    ]
}

/// Plain sockets (the inline start) and TLS (the runtime path).
fn clients() -> Vec<(&'static str, Client)> {
    let tcp = format!(
        "host=127.0.0.1 port={} dbname={} user=fw_trust",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    vec![
        ("unix", socket_client()),
        (
            "tcp",
            Client::connect(&format!("{tcp} sslmode=disable")).expect("tcp client"),
        ),
        (
            "tls",
            Client::connect(&format!("{tcp} sslmode=require")).expect("tls client"),
        ),
    ]
}

/// A fake server that sends the whole answer to a query in one write (no flush after the
/// description), so a small result is there when the description is, whatever the timing;
/// a client of it, and a `LIMIT 10` query of 430-byte documents.
fn small_query_on_a_one_write_server() -> (FakePg, Client, fraiseql_wire::Query) {
    let f = fakepg_with(&["--ignore-flush"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut q = query("w_10_430");
    q.limit(10).unwrap();
    (f, client, q)
}

#[test]
fn a_small_result_is_complete_when_execute_returns() {
    let _g = serial();
    let (_f, client, q) = small_query_on_a_one_write_server();
    // The first query and the following ones on the pooled connection.
    for round in 0..3 {
        let mut s = client.execute(&q).unwrap();
        let st = s.stats();
        assert_eq!(st.state, Some(StreamState::Completed), "round {round}");
        assert_eq!(st.total_rows_received, 10, "round {round}");
        assert_eq!(
            client.pool().idle_count(),
            1,
            "the connection is back in the pool before the rows are read"
        );
        let (rows, end) = drain(&mut s);
        end.unwrap();
        assert_eq!(rows.len(), 10);
        assert!(
            rows.iter().all(|r| r.len() == 430),
            "documents of 430 bytes"
        );
    }
}

#[test]
fn small_results_from_postgres_over_every_transport() {
    let _g = serial();
    for (name, client) in clients() {
        let mut q = query("v_user");
        q.order_by(
            "(data->>'id')::int",
            None,
            fraiseql_wire::query::SortDir::Asc,
        )
        .unwrap();
        q.limit(10).unwrap();
        for _ in 0..5 {
            let ids: Vec<i64> = rows_of(&client, &q)
                .iter()
                .map(|r| int_field(r, "id"))
                .collect();
            assert_eq!(ids, (1..=10).collect::<Vec<i64>>(), "{name}");
            assert_eq!(client.pool().idle_count(), 1, "{name}");
        }
    }
}

#[test]
fn a_large_result_continues_on_the_reader_task() {
    let _g = serial();
    for (name, client) in clients() {
        let mut q = query("v_bench_1m");
        q.limit(200_000).unwrap();
        let mut s = client.execute(&q).unwrap();
        let st = s.stats();
        assert_eq!(st.state, Some(StreamState::Running), "{name}: {st:?}");
        assert!(st.total_rows_received < 200_000, "{name}: {st:?}");
        assert_eq!(client.pool().idle_count(), 0, "{name}: the stream holds it");
        let mut n = 0u64;
        loop {
            match s.next(Wait::Forever).unwrap() {
                Next::Row(_) => n += 1,
                Next::Done => break,
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(n, 200_000, "{name}");
        drop(s);
        assert!(
            wait_until(Duration::from_secs(5), || client.pool().idle_count() == 1),
            "{name}: the connection went back to the pool"
        );
        // And the pooled connection (re-attached to the runtime and detached again) serves
        // both kinds of query again.
        assert_eq!(rows_of(&client, &q).len(), 200_000, "{name}");
        let mut small = query("v_user");
        small.limit(3).unwrap();
        assert_eq!(rows_of(&client, &small).len(), 3, "{name}");
    }
}

/// The server describes the result with its first rows (no Flush after Describe): a query
/// slower than the describe wait (20 ms by default) returns from `execute` undescribed, on
/// the caller's thread (plain sockets) and through the runtime (TLS) alike.
#[test]
fn a_slow_query_returns_from_execute_after_the_describe_wait() {
    let _g = serial();
    let app = "fw_inline_slow";
    for (name, client) in unix_and_tls(app) {
        let t = Instant::now();
        let mut s = client.execute(&query("v_sleep30")).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name}: execute waited for the rows: {:?}",
            t.elapsed()
        );
        let st = s.stats();
        assert_eq!(st.state, Some(StreamState::Running), "{name}");
        assert_eq!(st.total_rows_received, 0, "{name}");
        assert!(matches!(
            s.next(Wait::For(Duration::from_millis(100))),
            Ok(Next::Timeout)
        ));
        s.control().cancel().unwrap();
        assert!(
            active_queries_become(app, "v_sleep30", 0, Duration::from_secs(5)),
            "{name}: the cancel reached the server"
        );
    }
}

/// `describe_wait(None)`: `execute` returns with the description, i.e. with the first rows.
/// v_slow makes a 9 KB row every 100 ms: the first fills the server's 8 KiB output buffer
/// and goes out alone, 100 ms after the query started.
#[test]
fn describe_wait_none_returns_with_the_first_rows() {
    let _g = serial();
    for (name, client) in clients() {
        let mut q = query("v_slow");
        q.limit(3).unwrap();
        let mut waiting = q.clone();
        waiting.describe_wait(None).unwrap();
        let t = Instant::now();
        let mut s = client.execute(&waiting).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{name}: execute returned before the first row existed ({:?})",
            t.elapsed()
        );
        let (rows, end) = drain(&mut s);
        assert_eq!(rows.len(), 3, "{name}: {end:?}");
        assert!(end.is_ok(), "{name}: {end:?}");
        // The default wait returns before that row exists.
        let mut s = client.execute(&q).unwrap();
        assert_eq!(s.stats().total_rows_received, 0, "{name}");
        let (rows, end) = drain(&mut s);
        assert_eq!(rows.len(), 3, "{name}: {end:?}");
        assert!(end.is_ok(), "{name}: {end:?}");
    }
}

/// A wrong result shape that the server describes only after `execute` returned is the
/// stream's error (`Schema` from `next`, same message as from `execute`); the query is
/// cancelled on the server and the client goes on.
#[test]
fn a_slow_wrong_shape_is_reported_by_the_stream() {
    let _g = serial();
    let app = "fw_inline_slow_shape";
    for (name, client) in unix_and_tls(app) {
        let mut s = client
            .execute(&query("v_slow_not_json"))
            .expect("execute returns before the description");
        assert_eq!(s.stats().state, Some(StreamState::Running), "{name}");
        let err = match s.next(Wait::Forever) {
            Err(e) => e,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(err.kind(), ErrorKind::Schema, "{name}: {err}");
        assert_eq!(
            err.message(),
            "the result must be exactly one column named \"data\" of type json or jsonb; \
             got 1 column(s): data (text)"
        );
        assert_eq!(s.stats().state, Some(StreamState::Failed), "{name}");
        assert!(
            active_queries_become(app, "v_slow_not_json", 0, Duration::from_secs(5)),
            "{name}: the query does not linger"
        );
        let mut q = query("v_user");
        q.limit(2).unwrap();
        assert_eq!(rows_of(&client, &q).len(), 2, "{name}");
    }
}

/// `describe_wait(Some(ZERO))`: `execute` returns right after sending; everything the server
/// says (rows, a refusal) comes through the stream, and the connection is reused after.
#[test]
fn describe_wait_zero_hands_everything_to_the_stream() {
    let _g = serial();
    let app = "fw_inline_wait_zero";
    for (name, client) in unix_and_tls(app) {
        let mut q = query("v_user");
        q.where_sql("(data->>'n')::int <= 3")
            .unwrap()
            .describe_wait(Some(Duration::ZERO))
            .unwrap();
        let ns: Vec<i64> = rows_of(&client, &q)
            .iter()
            .map(|r| int_field(r, "n"))
            .collect();
        assert_eq!(ns, vec![1, 2, 3], "{name}");
        let before = backends_of(pg(), app);
        let mut missing = query("no_such_view");
        missing.describe_wait(Some(Duration::ZERO)).unwrap();
        // Usually from the stream; from `execute` when the answer was already there at the
        // first look (over TLS the runtime reads once before it gives up).
        let e = match client.execute(&missing) {
            Ok(mut s) => {
                let (rows, end) = drain(&mut s);
                assert!(rows.is_empty(), "{name}");
                end.expect_err("a missing relation streamed")
            }
            Err(e) => e,
        };
        assert_eq!(
            e.server_error().map(|s| s.sqlstate.as_str()),
            Some("42P01"),
            "{name}: {e:?}"
        );
        assert_eq!(rows_of(&client, &q).len(), 3, "{name}");
        assert_eq!(
            backends_of(pg(), app),
            before,
            "{name}: the connection was reused"
        );
    }
}

#[test]
fn describe_wait_is_validated() {
    let mut q = query("v_user");
    assert!(q.describe_wait(Some(Duration::from_secs(3601))).is_err());
    assert!(q.describe_wait(Some(Duration::from_secs(3600))).is_ok());
    assert!(q.describe_wait(None).is_ok());
}

#[test]
fn server_errors_found_inline_leave_the_connection_usable() {
    let _g = serial();
    let app = "fw_inline_errors";
    let client = socket_client_app(app);
    let before = backends_of(pg(), app);
    for _ in 0..3 {
        let Err(e) = client.execute(&query("no_such_view")) else {
            panic!("a missing relation executes");
        };
        assert_eq!(
            e.server_error().map(|s| s.sqlstate.as_str()),
            Some("42P01"),
            "{e:?}"
        );
        assert!(
            wait_until(Duration::from_secs(5), || client.pool().idle_count() == 1),
            "the connection is back in the pool"
        );
        let mut q = query("v_user");
        q.limit(2).unwrap();
        assert_eq!(rows_of(&client, &q).len(), 2);
    }
    assert_eq!(backends_of(pg(), app), before, "no other connection opened");
}

#[test]
fn small_queries_do_not_wake_the_runtime_threads() {
    let _g = serial();
    let (_f, client, q) = small_query_on_a_one_write_server();
    rows_of(&client, &q);
    let before = runtime_switches();
    for _ in 0..200 {
        assert_eq!(rows_of(&client, &q).len(), 10);
    }
    let woken = runtime_switches() - before;
    // Each query run by the runtime costs its threads at least two wake-ups; inline (and
    // with the idle connection out of the epoll set) only unrelated timers may wake them.
    assert!(
        woken < 40,
        "the runtime threads switched {woken} times for 200 small queries"
    );
}

/// Connections to a plain socket are opened on the calling thread too (connect, startup,
/// authentication: `Connection::connect_inline`), by `Client::connect` and by `execute` when
/// the pool is empty: connect + small query + close wakes no runtime thread.
#[test]
fn new_plain_connections_do_not_wake_the_runtime_threads() {
    let _g = serial();
    let (f, client, q) = small_query_on_a_one_write_server();
    rows_of(&client, &q);
    for conninfo in [f.conninfo(), f.tcp_conninfo()] {
        let before = runtime_switches();
        for _ in 0..50 {
            let c = Client::connect(&conninfo).unwrap();
            assert_eq!(rows_of(&c, &q).len(), 10);
            drop(c);
        }
        // Two streams at once on one client: the second opens a connection in `execute`.
        let c = Client::connect(&conninfo).unwrap();
        for _ in 0..25 {
            let mut a = c.execute(&q).unwrap();
            let mut b = c.execute(&q).unwrap();
            assert_eq!(drain(&mut a).0.len(), 10);
            assert_eq!(drain(&mut b).0.len(), 10);
        }
        let woken = runtime_switches() - before;
        // Through the runtime, each connection costs its threads several wake-ups (the
        // connect, each answer of the server).
        assert!(
            woken < 40,
            "{conninfo}: the runtime threads switched {woken} times for 75 new connections"
        );
    }
}
