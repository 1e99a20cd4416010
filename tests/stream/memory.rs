//! Memory bounds: the stream never holds more than its budget (row bytes, row tables
//! and read buffer capacity), a slow consumer stops the socket reads (the server blocks in
//! ClientWrite), a row that cannot fit ends the stream before its bytes are buffered, the
//! warning ratio is reported, invalid limits are rejected.

use std::time::Duration;

use crate::support::*;
use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::{ErrorKind, Query};

const KIB: usize = 1024;

/// Consume everything slowly, checking every snapshot against the budget.
fn consume_checking_budget(q: &Query, budget: usize, every: usize, pause: Duration) -> u64 {
    let c = socket_client();
    let mut s = execute(&c, q);
    let mut n = 0u64;
    loop {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => {
                n += 1;
                if n % every as u64 == 0 {
                    let st = s.stats();
                    assert!(st.estimated_memory <= budget as u64, "{st:?}");
                    std::thread::sleep(pause);
                }
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    let st = s.stats();
    assert!(
        st.peak_memory <= budget as u64,
        "peak {} over the budget {budget}",
        st.peak_memory
    );
    assert!(st.peak_memory > 0);
    assert_eq!(st.memory_limit, budget as u64);
    assert_eq!(st.estimated_memory, 0, "nothing held after the end");
    assert_eq!(st.bytes_buffered, 0);
    n
}

#[test]
fn peak_memory_stays_within_the_budget() {
    // Tiny rows are the worst case for the row tables (8 bytes per 12-byte message).
    create_once(
        "t_mem_tiny",
        "CREATE TABLE t_mem_tiny AS SELECT '1'::jsonb AS data FROM generate_series(1, 60000)",
    );
    let mut q = Query::new("t_mem_tiny").unwrap();
    q.max_memory(16 * KIB, 0.8, 1.0).unwrap();
    assert_eq!(
        consume_checking_budget(&q, 16 * KIB, 5000, Duration::from_millis(20)),
        60_000
    );
    // Ordinary rows, a consumer slower than the server.
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(64 * KIB, 0.8, 1.0).unwrap();
    assert_eq!(
        consume_checking_budget(&q, 64 * KIB, 1000, Duration::from_millis(30)),
        10_000
    );
    // Big rows with a budget that holds about one: each needs the whole of it.
    let mut q = Query::new("v_big").unwrap();
    q.max_memory(2 * 1024 * KIB, 0.8, 1.0).unwrap();
    assert_eq!(
        consume_checking_budget(&q, 2 * 1024 * KIB, 1, Duration::from_millis(50)),
        5
    );
}

#[test]
fn a_sleeping_consumer_stops_the_socket_reads() {
    let c = socket_client_app("fw_memory_sleeping");
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(256 * KIB, 0.8, 1.0).unwrap();
    let mut s = execute(&c, &q);
    let mut ids = Vec::new();
    for _ in 0..10 {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(r) => ids.push(field(std::str::from_utf8(r).unwrap(), "id")),
            other => panic!("{other:?}"),
        }
    }
    // The consumer sleeps: the budget fills, then nothing more is read.
    let ctl = s.control().clone();
    std::thread::sleep(Duration::from_millis(500));
    let a = ctl.stats();
    std::thread::sleep(Duration::from_millis(700));
    let b = ctl.stats();
    assert_eq!(
        a.total_bytes_received, b.total_bytes_received,
        "{a:?}\n{b:?}"
    );
    assert_eq!(a.total_rows_received, b.total_rows_received);
    assert!(b.total_rows_received < 10_000, "{b:?}");
    assert!(b.estimated_memory <= 256 * KIB as u64 && b.peak_memory <= 256 * KIB as u64);
    assert!(
        b.estimated_memory > 128 * KIB as u64,
        "the budget is what fills up: {b:?}"
    );
    // The server is blocked sending to us, the connection open.
    assert!(
        wait_until(Duration::from_secs(5), || backend_wait_event(
            "fw_memory_sleeping",
            "v_bench_10k"
        )
        .as_deref()
            == Some("ClientWrite")),
        "backend wait event: {:?}",
        backend_wait_event("fw_memory_sleeping", "v_bench_10k")
    );
    // Everything arrives, in order, once the consumer goes on.
    for r in drain_strings(&mut s) {
        ids.push(field(&r, "id"));
    }
    let want: Vec<String> = (1..=10_000).map(|i| i.to_string()).collect();
    assert_eq!(ids, want);
    assert!(s.stats().peak_memory <= 256 * KIB as u64);
}

#[test]
fn a_row_over_the_limit_ends_the_stream_before_it_is_buffered() {
    // Ten small rows, a 1 MB row, then more small rows.
    create_once(
        "v_mem_then_big",
        "CREATE VIEW v_mem_then_big AS SELECT jsonb_build_object('i', i, 'pad', \
         CASE WHEN i = 11 THEN repeat('x', 1000000) ELSE 'small' END) AS data \
         FROM generate_series(1, 20) AS i",
    );
    let c = socket_client();
    let budget = 512 * KIB;
    let mut q = Query::new("v_mem_then_big").unwrap();
    q.max_memory(budget, 0.8, 1.0).unwrap();
    let mut s = execute(&c, &q);
    let mut got = Vec::new();
    let err = loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(r)) => got.push(field(std::str::from_utf8(r).unwrap(), "i")),
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, (1..=10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(err.kind(), ErrorKind::MemoryLimit, "{err}");
    assert!(err.message().contains("1000"), "{}", err.message());
    let st = s.stats();
    assert_eq!(st.state, Some(fraiseql_wire::StreamState::Failed));
    assert_eq!(st.total_rows_received, 10);
    assert!(st.peak_memory <= budget as u64, "{st:?}");
    assert!(st.total_bytes_received < 10_000, "{st:?}");
    assert_eq!(st.items_buffered, 0);
    // The error stays: later calls return it again.
    assert_eq!(
        s.next(Wait::NoWait).unwrap_err().kind(),
        ErrorKind::MemoryLimit
    );

    // On the very first row: no row, the error.
    let mut q = Query::new("v_big").unwrap();
    q.max_memory(budget, 0.8, 1.0).unwrap();
    let mut s = execute(&c, &q);
    assert_eq!(
        s.next(Wait::Forever).unwrap_err().kind(),
        ErrorKind::MemoryLimit
    );
    let st = s.stats();
    assert_eq!(st.total_rows_received, 0);
    assert!(st.peak_memory <= budget as u64);

    // The connection was not reused mid-result: the client goes on working.
    let mut s = execute(&c, &Query::new("v_null").unwrap());
    assert_eq!(drain_strings(&mut s).len(), 3);
}

#[test]
fn fail_ratio_bounds_a_single_row() {
    create_once(
        "v_mem_sized",
        "CREATE VIEW v_mem_sized AS SELECT jsonb_build_object('i', i, 'pad', \
         repeat('y', i * 100000)) AS data FROM generate_series(1, 6) AS i",
    );
    // Budget 1 MiB, fail ratio 0.5: rows up to 524288 bytes pass (the 500 KB one), the
    // 600 KB one fails.
    let c = socket_client();
    let mut q = Query::new("v_mem_sized").unwrap();
    q.max_memory(1024 * KIB, 0.4, 0.5).unwrap();
    let mut s = execute(&c, &q);
    let mut n = 0;
    let err = loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(_)) => n += 1,
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 5);
    assert_eq!(err.kind(), ErrorKind::MemoryLimit);
    // With fail ratio 1 all six fit.
    let mut q = Query::new("v_mem_sized").unwrap();
    q.max_memory(1024 * KIB, 0.4, 1.0).unwrap();
    let mut s = execute(&c, &q);
    assert_eq!(drain_strings(&mut s).len(), 6);
    assert!(
        s.stats().peak_memory <= 1024 * KIB as u64,
        "{:?}",
        s.stats().peak_memory
    );
}

#[test]
fn invalid_limits_are_rejected() {
    use fraiseql_wire::ffi::client::fw_client_free;
    use fraiseql_wire::ffi::fw_status::*;
    use fraiseql_wire::ffi::query::*;
    let (client, q) = c_client_query("v_user");
    let mib = 1 << 20;
    for (bytes, warn, fail) in [
        (mib, 0.0, 1.0),
        (mib, -0.5, 1.0),
        (mib, 0.9, 0.8),
        (mib, 0.8, 1.5),
        (mib, 0.8, 0.0),
        (mib, f64::NAN, 1.0),
        (mib, 0.8, f64::INFINITY),
        (1000, 0.8, 1.0),
        (0, 0.8, 1.0),
    ] {
        assert_eq!(
            fw_query_max_memory(q, bytes, warn, fail),
            FW_E_INVALID_ARGUMENT,
            "{bytes} {warn} {fail}"
        );
    }
    assert_eq!(fw_query_max_memory(q, mib, 0.5, 0.5), FW_OK);
    assert_eq!(fw_query_max_memory(q, 16 * 1024, 1.0, 1.0), FW_OK);
    fw_query_free(q);
    fw_client_free(client);
    let mut q = Query::new("v_user").unwrap();
    assert!(q.max_memory(mib, 0.9, 0.8).is_err());
}

#[test]
fn default_budget_applies() {
    let c = socket_client();
    let mut s = execute(&c, &Query::new("v_user").unwrap());
    drain_strings(&mut s);
    let st = s.stats();
    assert_eq!(
        st.memory_limit,
        fraiseql_wire::stream::options::DEFAULT_MAX_MEMORY as u64
    );
    assert!(st.peak_memory <= st.memory_limit);
}

/// Bytes of rows received and not consumed after the consumer has slept a while: the reader
/// has stopped by then (the queue is at its limit).
fn queued_after_a_sleep(q: &Query) -> fraiseql_wire::stream::StreamStats {
    let c = socket_client();
    let mut s = execute(&c, q);
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    let ctl = s.control().clone();
    // The reader stops: two looks 300 ms apart see the same rows received (within 10 s, so
    // that a loaded machine that is slow to fill the queue does not fail the test).
    let mut a = ctl.stats();
    let mut b = a.clone();
    let stopped = wait_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(300));
        (a, b) = (b.clone(), ctl.stats());
        a.total_rows_received == b.total_rows_received
    });
    assert!(stopped, "still reading: {a:?}\n{b:?}");
    let rows = drain_strings(&mut s);
    assert_eq!(rows.len() + 1, 100_000, "every row after the wait");
    b
}

#[test]
fn the_reader_stays_only_the_read_ahead_in_front_of_the_consumer() {
    // 100k rows of ~430 B (43 MB) and a 4 MiB budget. By default the queue stops at the
    // read-ahead of 512 KiB (plus the read buffer being split), far below the budget.
    let mut q = Query::new("v_bench_1m").unwrap();
    q.limit(100_000).unwrap();
    q.max_memory(4096 * KIB, 0.9, 1.0).unwrap();
    let st = queued_after_a_sleep(&q);
    assert!(
        st.bytes_buffered >= 400 * KIB as u64 && st.bytes_buffered <= 800 * KIB as u64,
        "{st:?}"
    );
    assert!(st.peak_memory <= 1100 * KIB as u64, "{st:?}");
    assert_eq!(st.memory_warnings, 0, "{st:?}");
    // A read-ahead of the whole budget fills it (and crosses the 90 % warning).
    q.read_ahead(usize::MAX).unwrap();
    let st = queued_after_a_sleep(&q);
    assert!(st.estimated_memory >= 3500 * KIB as u64, "{st:?}");
    assert!(st.peak_memory <= 4096 * KIB as u64, "{st:?}");
    assert_eq!(st.memory_warnings, 1, "{st:?}");
    // Under a budget smaller than the read-ahead, the budget is the limit.
    let mut q = Query::new("v_bench_1m").unwrap();
    q.limit(100_000).unwrap();
    q.max_memory(256 * KIB, 0.8, 1.0).unwrap();
    let st = queued_after_a_sleep(&q);
    assert!(st.estimated_memory >= 128 * KIB as u64, "{st:?}");
    assert!(st.peak_memory <= 256 * KIB as u64, "{st:?}");
}

#[test]
fn read_ahead_is_validated() {
    let mut q = Query::new("v_user").unwrap();
    assert_eq!(
        q.read_ahead(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    q.read_ahead(1).unwrap();
    assert_eq!(q.options().read_ahead, 1);
}
