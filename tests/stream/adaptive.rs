//! Adaptive chunking at the socket level: a slow consumer (the channel backs up)
//! shrinks the chunks the reader hands over, a fast one (the channel runs dry) grows them,
//! within the bounds. The 5 s interval between changes is shortened through the Rust-only
//! `Query::adaptive_interval`; the unit tests of each rule are in src/stream/adaptive.rs.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::Query;

/// A query of `t_adapt_small` (400k small rows, created once) with adaptive chunking between
/// 16 and 1024 rows, starting at `chunk` rows and adapting every `interval`.
fn small_rows_adaptive(chunk: usize, interval: Duration) -> Query {
    create_once(
        "t_adapt_small",
        // Large enough that the reader is still receiving when the chunk sizes are checked
        // (60k rows were sometimes all received, within the budget, before the check).
        "CREATE TABLE t_adapt_small AS SELECT jsonb_build_object('i', i) AS data \
         FROM generate_series(1, 400000) AS i",
    );
    let mut q = Query::new("t_adapt_small").unwrap();
    q.chunk_size(chunk).unwrap();
    q.adaptive_chunking(true, 16, 1024).unwrap();
    q.adaptive_interval(interval);
    q
}

#[test]
fn a_slow_consumer_shrinks_the_chunks_the_reader_hands_over() {
    let c = socket_client();
    let mut q = small_rows_adaptive(64, Duration::from_millis(50));
    q.max_memory(256 * 1024, 0.9, 1.0).unwrap();
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    assert_eq!(ctl.stats().current_chunk_size, 64);
    let mut sizes = vec![64];
    let mut n = 0u64;
    let t = Instant::now();
    // Consume slowly until the size reached the lower bound.
    while sizes.last() != Some(&16) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no shrink: {sizes:?}"
        );
        match s.next(Wait::Forever).unwrap() {
            Next::Row(r) => {
                n += 1;
                assert_eq!(field(std::str::from_utf8(r).unwrap(), "i"), n.to_string());
            }
            other => panic!("{other:?} after {n} rows"),
        }
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
        let cur = ctl.stats().current_chunk_size;
        if sizes.last() != Some(&cur) {
            sizes.push(cur);
        }
    }
    // Halved each time, never below the bound.
    assert_eq!(sizes, [64, 32, 16]);
    // What the reader hands over now: once the chunks of the old size queued before the
    // change are consumed, every new chunk holds at most 16 rows.
    let before = ctl.stats();
    let backlog = before.items_buffered;
    let mut taken = 0;
    while taken < backlog + 2000 {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => taken += 1,
            other => panic!("{other:?}"),
        }
    }
    // Keep consuming at the slow pace (the channel stays backed up) until the reader has
    // handed over a good number of new rows. Rows already queued are consumed faster than a
    // waiting reader is scheduled, so this waits for received rows, not for a fixed count.
    let a = ctl.stats();
    let t = Instant::now();
    let mut b = a.clone();
    while b.total_rows_received - a.total_rows_received < 2000 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the reader received too little while the consumer went on ({a:?} -> {b:?})"
        );
        for _ in 0..50 {
            assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
        }
        std::thread::sleep(Duration::from_micros(300));
        b = ctl.stats();
    }
    let rows = b.total_rows_received - a.total_rows_received;
    let chunks = b.chunks_received - a.chunks_received;
    assert!(rows <= 16 * chunks, "{rows} rows in {chunks} chunks");
    assert_eq!(b.current_chunk_size, 16, "stays at the bound");
    assert!(b.peak_memory <= 256 * 1024);
}

#[test]
fn a_fast_consumer_grows_the_chunks() {
    // The server trickles rows (1 ms each, ~2 KB so that its 8 KiB output buffer goes out
    // every few rows): any consumer, even a debug build on a loaded machine, keeps up, so the
    // channel stays nearly empty. (Streaming a fast table instead made this depend on the
    // consumer outrunning the server, which a loaded CI machine does not guarantee.)
    create_once(
        "v_adapt_trickle",
        "CREATE VIEW v_adapt_trickle AS SELECT jsonb_build_object(\
         'i', fw_sleep_then(i, 0.001), 'pad', repeat('t', 2000)) AS data \
         FROM (SELECT generate_series(1, 100000) AS i) AS s",
    );
    let c = socket_client();
    let mut q = Query::new("v_adapt_trickle").unwrap();
    q.chunk_size(16).unwrap();
    q.adaptive_chunking(true, 16, 40).unwrap();
    q.adaptive_interval(Duration::from_millis(50));
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    let mut sizes = vec![16];
    let t = Instant::now();
    let mut n = 0u64;
    while sizes.last() != Some(&40) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no growth after {n} rows: {sizes:?}"
        );
        match s.next(Wait::Forever).unwrap() {
            Next::Row(r) => {
                n += 1;
                assert_eq!(field(std::str::from_utf8(r).unwrap(), "i"), n.to_string());
            }
            other => panic!("{other:?}: {sizes:?}"),
        }
        let cur = ctl.stats().current_chunk_size;
        if sizes.last() != Some(&cur) {
            sizes.push(cur);
        }
    }
    // +50% each time, capped at the upper bound.
    assert_eq!(sizes, [16, 24, 36, 40]);
    drop(s);
}

#[test]
fn a_fast_consumer_reading_its_own_socket_grows_the_chunks() {
    // A fast server (a table of small rows over the Unix socket) and a consumer that only
    // counts rows: the consumer catches up and reads the socket itself (the reader is parked
    // for it), so it is never behind. The rows its own read split into chunks are not rows
    // waiting for it: the chunk size grows as for any starved consumer. (Counted as
    // "waiting", a read's chunks kept the average occupancy between the thresholds, ~115
    // rows at 16 per chunk, and the size never moved.)
    let c = socket_client();
    let q = small_rows_adaptive(16, Duration::from_millis(20));
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    let mut sizes = vec![16];
    let mut n = 0u64;
    loop {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => n += 1,
            Next::Done => break,
            other => panic!("{other:?} after {n} rows"),
        }
        if n % 1000 == 0 {
            let cur = ctl.stats().current_chunk_size;
            if sizes.last() != Some(&cur) {
                sizes.push(cur);
            }
        }
    }
    assert_eq!(n, 400_000);
    let cur = ctl.stats().current_chunk_size;
    if sizes.last() != Some(&cur) {
        sizes.push(cur);
    }
    // +50% at each change, never down.
    assert!(
        sizes.len() >= 3 && sizes[1] == 24 && sizes.windows(2).all(|w| w[0] < w[1]),
        "the chunk size did not grow for a consumer reading its own socket: {sizes:?}"
    );
}

#[test]
fn fixed_chunk_size_without_adaptive() {
    let c = socket_client();
    let mut q = Query::new("v_user").unwrap();
    q.adaptive_chunking(false, 1, 1).unwrap();
    q.chunk_size(7).unwrap();
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    assert_eq!(drain_strings(&mut s).len(), 1000);
    let st = ctl.stats();
    assert_eq!(st.current_chunk_size, 7);
    assert!(st.chunks_received > 1000 / 7, "{st:?}");
    // Defaults: adaptive on, 256 rows to start, within 16..1024.
    let s = execute(&c, &Query::new("v_user").unwrap());
    assert_eq!(s.stats().current_chunk_size, 256);
    let mut q = Query::new("v_user").unwrap();
    q.chunk_size(5000).unwrap();
    assert_eq!(execute(&c, &q).stats().current_chunk_size, 1024);
}

#[test]
fn adaptive_bounds_are_validated_in_the_c_api() {
    use fraiseql_wire::ffi::client::fw_client_free;
    use fraiseql_wire::ffi::fw_status::*;
    use fraiseql_wire::ffi::query::*;
    let (client, q) = c_client_query("v_user");
    assert_eq!(
        fw_query_adaptive_chunking(q, true, 0, 10),
        FW_E_INVALID_ARGUMENT
    );
    assert_eq!(
        fw_query_adaptive_chunking(q, true, 10, 9),
        FW_E_INVALID_ARGUMENT
    );
    assert_eq!(fw_query_adaptive_chunking(q, true, 10, 10), FW_OK);
    assert_eq!(fw_query_adaptive_chunking(q, false, 0, 0), FW_OK);
    assert_eq!(fw_query_chunk_size(q, 0), FW_E_INVALID_ARGUMENT);
    fw_query_free(q);
    fw_client_free(client);
}
