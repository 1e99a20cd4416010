//! The client: thread-safe, a stream that ended cleanly gives its
//! connection back for the next stream, several threads stream at once on connections of
//! their own, and dropping the last clone closes the idle connections.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::{Client, Next, Wait};

#[test]
fn client_is_clone_send_and_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Client>();
    fn send<T: Send>() {}
    send::<fraiseql_wire::Stream>();
    send::<fraiseql_wire::StreamControl>();
}

#[test]
fn a_cleanly_ended_stream_returns_its_connection() {
    let app = "fw_client_reuse";
    let client = socket_client_app(app);
    // connect keeps the connection it checked the settings with.
    assert_eq!(client.pool().idle_count(), 1);
    let first = backends_of(pg(), app);
    assert_eq!(first.len(), 1);

    let mut s = client.execute(&query("v_slow")).unwrap();
    assert_eq!(
        client.pool().idle_count(),
        0,
        "the running stream holds the connection"
    );
    let (rows, end) = drain(&mut s);
    end.unwrap();
    assert_eq!(rows.len(), 20);
    assert_eq!(client.pool().idle_count(), 1, "given back after Done");
    drop(s);
    let mut q = query("v_user");
    q.limit(20).unwrap();
    for _ in 0..3 {
        assert_eq!(rows_of(&client, &q).len(), 20);
    }
    assert_eq!(client.pool().idle_count(), 1);
    assert_eq!(
        backends_of(pg(), app),
        first,
        "every stream ran on the same backend"
    );
}

#[test]
fn an_unfinished_stream_does_not_return_its_connection() {
    let app = "fw_client_nopool";
    let client = socket_client_app(app);
    let mut s = client.execute(&query("v_slow")).unwrap();
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    drop(s); // cancels
    assert_eq!(client.pool().idle_count(), 0);
    // The cancelled session is closed, not reused.
    assert!(
        wait_until(Duration::from_secs(2), || backends_of(pg(), app).is_empty()),
        "the cancelled connection was not closed"
    );
    let mut q = query("v_user");
    q.limit(2).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 2);
    assert_eq!(client.pool().idle_count(), 1);
}

#[test]
fn four_threads_stream_v_user_on_one_client() {
    let client = socket_client();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let rows = rows_of(&client, &query("v_user"));
                rows.iter().map(|r| int_field(r, "n")).collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (1..=1000).collect::<Vec<_>>());
    }
    // Shared through an Arc as well (the C API's model).
    let shared = Arc::new(client);
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let c = shared.clone();
            std::thread::spawn(move || {
                let mut q = query("v_user");
                q.where_sql(&format!("(data->>'n')::int % 4 = {k}"))
                    .unwrap();
                rows_of(&c, &q).len()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 250);
    }
}

#[test]
fn concurrent_streams_run_on_distinct_backends() {
    let app = "fw_client_parallel";
    let client = socket_client_app(app);
    let barrier = Arc::new(Barrier::new(5));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = client.execute(&query("v_slow")).unwrap();
                let mut is = Vec::new();
                if let Next::Row(r) = s.next(Wait::Forever).unwrap() {
                    is.push(int_field(r, "i"));
                }
                barrier.wait(); // all four streams are running now
                barrier.wait(); // the main thread has looked at pg_stat_activity
                let (rest, end) = drain(&mut s);
                end.unwrap();
                is.extend(rest.iter().map(|r| int_field(r, "i")));
                is
            })
        })
        .collect();
    barrier.wait();
    let active: BTreeSet<i32> = psql_lines(
        pg(),
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' \
             AND state = 'active' AND query LIKE '%v_slow%'"
        ),
    )
    .iter()
    .map(|l| l.parse().unwrap())
    .collect();
    barrier.wait();
    assert_eq!(
        active.len(),
        4,
        "4 streams at once need 4 backends: {active:?}"
    );
    for h in handles {
        assert_eq!(h.join().unwrap(), (1..=20).collect::<Vec<_>>());
    }
    // Four 2-second queries in parallel, not one after the other.
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // All four connections came back to the pool.
    assert_eq!(client.pool().idle_count(), 4);
    let all: BTreeSet<i32> = backends_of(pg(), app).into_iter().collect();
    assert!(active.is_subset(&all), "{active:?} vs {all:?}");
}

#[test]
fn dropping_the_last_clone_closes_idle_connections() {
    let app = "fw_client_drop";
    let client = socket_client_app(app);
    let clone = client.clone();
    assert_eq!(backends_of(pg(), app).len(), 1);
    drop(client);
    // A clone still shares the pool: the connection stays open and usable.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(backends_of(pg(), app).len(), 1);
    let mut q = query("v_user");
    q.limit(1).unwrap();
    assert_eq!(rows_of(&clone, &q).len(), 1);
    drop(clone);
    assert!(
        wait_until(Duration::from_secs(2), || backends_of(pg(), app).is_empty()),
        "idle connections stay open after the client is gone"
    );
}

#[test]
fn a_pooled_connection_closed_by_the_server_is_replaced() {
    let app = "fw_client_stale";
    let client = socket_client_app(app);
    assert_eq!(client.pool().idle_count(), 1);
    let old = backends_of(pg(), app);
    assert_eq!(old.len(), 1);
    // The server ends the idle session (as an idle timeout or a restart would).
    pg().psql(&format!("SELECT pg_terminate_backend({})", old[0]));
    assert!(wait_until(Duration::from_secs(2), || backends_of(
        pg(),
        app
    )
    .is_empty()));
    let mut q = query("v_user");
    q.limit(5).unwrap();
    assert_eq!(
        rows_of(&client, &q).len(),
        5,
        "the stale connection was not replaced"
    );
    let new = backends_of(pg(), app);
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
}

#[test]
fn back_to_back_streams_reuse_one_connection() {
    // The next execute comes right after Done: the connection must already be back.
    let app = "fw_client_tight";
    let client = socket_client_app(app);
    let mut q = query("v_user");
    q.limit(1).unwrap();
    for i in 0..300 {
        let mut s = client.execute(&q).unwrap();
        let (rows, end) = drain(&mut s);
        end.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            client.pool().idle_count(),
            1,
            "not back in the pool after Done #{i}"
        );
    }
    assert_eq!(backends_of(pg(), app).len(), 1);
}

#[test]
fn failed_queries_do_not_open_extra_connections() {
    // A server error leaves the session clean (ReadyForQuery follows): the next query reuses
    // it instead of opening a new connection.
    let app = "fw_client_failing";
    let client = socket_client_app(app);
    for i in 0..100 {
        let err = client.execute(&query("v_missing")).err().unwrap();
        assert_eq!(err.sqlstate(), Some("42P01"));
        assert_eq!(
            client.pool().idle_count(),
            1,
            "not back in the pool after error #{i}"
        );
    }
    assert_eq!(backends_of(pg(), app).len(), 1);
}

/// A pooled connection whose read buffer grew under a large budget (1 MB rows) must not
/// count that buffer against the next stream's small budget: the next stream fails at once
/// with MemoryLimit on its first too-large row, and a small-budget stream after it stays
/// within its own budget.
#[test]
fn a_reused_connection_does_not_bring_its_old_buffer_into_a_smaller_budget() {
    let client = socket_client();
    let (rows, end) = drain(&mut client.execute(&query("v_big")).unwrap());
    assert_eq!(rows.len(), 5);
    end.unwrap();
    assert_eq!(client.pool().idle_count(), 1);

    let mut q = query("v_big");
    q.max_memory(64 * 1024, 0.5, 1.0).unwrap();
    let t0 = Instant::now();
    let mut s = client.execute(&q).unwrap();
    let err = match s.next(Wait::For(Duration::from_secs(20))) {
        Ok(Next::Row(_)) => panic!("a 1 MB row fit in a 64 KiB budget"),
        Ok(other) => panic!("expected MemoryLimit, got {other:?}"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), fraiseql_wire::ErrorKind::MemoryLimit, "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    drop(s);

    let mut q = query("v_user");
    q.max_memory(16 * 1024, 0.8, 1.0).unwrap();
    let mut s = client.execute(&q).unwrap();
    let (rows, end) = drain(&mut s);
    end.unwrap();
    assert_eq!(rows.len(), 1000);
    let stats = s.stats();
    assert!(
        stats.peak_memory <= 16 * 1024,
        "peak {} above the 16 KiB budget",
        stats.peak_memory
    );
}

#[test]
fn closing_a_client_says_goodbye_to_the_server() {
    // As libpq does: Terminate before closing each idle connection (fakepg logs which).
    let f = crate::support::fakepg::fakepg_with(&["--verbose"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut q = query("w_10_430");
    q.limit(5).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 5);
    // A second connection in the pool too: two streams open at once.
    let a = client.execute(&query("w_10_430")).unwrap();
    let b = client.execute(&query("w_10_430")).unwrap();
    drop((a, b));
    drop(client);
    let said = |what: &str| f.stderr_lines().iter().filter(|l| l.contains(what)).count();
    assert!(
        wait_until(Duration::from_secs(5), || said("terminated by the client")
            >= 1),
        "no Terminate: {:?}",
        f.stderr_lines()
    );
    assert_eq!(
        said("closed without Terminate"),
        0,
        "{:?}",
        f.stderr_lines()
    );
}
