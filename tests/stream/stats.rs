//! Stream statistics: consistent snapshots from another thread while one consumes,
//! received = yielded + filtered + buffered on paused and finished streams, buffered 0 after
//! the end, estimated memory = chunks in the channel + chunk being read + read buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use fraiseql_wire::ffi::client::fw_client_free;
use fraiseql_wire::ffi::fw_status::*;
use fraiseql_wire::ffi::query::*;
use fraiseql_wire::ffi::stream::*;
use fraiseql_wire::query::JsonOp;
use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::{Query, StreamState, StreamStats};

/// Checks that hold in every snapshot, and between two successive ones.
fn check_snapshot(prev: &StreamStats, st: &StreamStats) {
    assert!(
        st.total_rows_yielded + st.total_rows_filtered <= st.total_rows_received,
        "{st:?}"
    );
    assert_eq!(
        st.items_buffered,
        st.total_rows_received - st.total_rows_yielded - st.total_rows_filtered
    );
    assert!(st.bytes_buffered <= st.estimated_memory, "{st:?}");
    assert!(st.estimated_memory <= st.memory_limit, "{st:?}");
    assert!(st.peak_memory <= st.memory_limit, "{st:?}");
    for (a, b) in [
        (prev.total_rows_received, st.total_rows_received),
        (prev.total_rows_yielded, st.total_rows_yielded),
        (prev.total_rows_filtered, st.total_rows_filtered),
        (prev.total_bytes_received, st.total_bytes_received),
        (prev.chunks_received, st.chunks_received),
        (prev.peak_memory, st.peak_memory),
        (prev.elapsed_us, st.elapsed_us),
    ] {
        assert!(a <= b, "counters never go back: {prev:?} then {st:?}");
    }
    if st.total_rows_received > 0 {
        assert!(st.time_to_first_row_us > 0 && st.time_to_first_row_us <= st.elapsed_us);
    }
}

#[test]
fn snapshots_from_another_thread_are_consistent() {
    let c = socket_client();
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(512 * 1024, 0.8, 1.0).unwrap();
    q.filter_json("/active", JsonOp::Eq, Some("true")).unwrap();
    q.filter(Arc::new(|row: &[u8]| {
        !row.ends_with(b"\"admin\"}") && row.len() % 2 == 0
    }));
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut prev = StreamStats::default();
            let mut n = 0;
            let mut states = Vec::new();
            while !done.load(Ordering::Acquire) {
                let st = ctl.stats();
                check_snapshot(&prev, &st);
                if states.last() != Some(&st.state) {
                    states.push(st.state);
                }
                prev = st;
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            (n, states)
        })
    };
    let mut yielded = 0u64;
    loop {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => {
                yielded += 1;
                if yielded % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    done.store(true, Ordering::Release);
    let (n, states) = poller.join().unwrap();
    assert!(n > 50, "the poller ran alongside ({n} snapshots)");
    assert_eq!(states[0], Some(StreamState::Running));
    // Finished: the invariant with nothing buffered.
    let st = s.stats();
    assert_eq!(st.state, Some(StreamState::Completed));
    assert_eq!(st.total_rows_received, 10_000);
    assert_eq!(st.total_rows_yielded, yielded);
    assert_eq!(
        st.total_rows_received,
        st.total_rows_yielded + st.total_rows_filtered
    );
    assert_eq!(st.items_buffered, 0);
    assert_eq!(st.bytes_buffered, 0);
    assert_eq!(st.estimated_memory, 0);
    let active = psql("SELECT count(*) FROM v_bench_10k WHERE (data->>'active')::boolean");
    assert!(st.total_rows_filtered >= 10_000 - active.trim().parse::<u64>().unwrap());
    let bytes = psql("SELECT sum(octet_length(data::text)) FROM v_bench_10k");
    assert_eq!(st.total_bytes_received.to_string(), bytes.trim());
    assert!(st.chunks_received >= 1 && st.current_chunk_size >= 16);
    // elapsed stops at the end.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.stats().elapsed_us, st.elapsed_us);
}

#[test]
fn estimated_memory_is_what_the_stream_holds() {
    let c = socket_client();
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(256 * 1024, 0.9, 1.0).unwrap();
    q.adaptive_chunking(false, 1, 1).unwrap();
    q.chunk_size(100).unwrap();
    let mut s = execute(&c, &q);
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    let ctl = s.control().clone();
    std::thread::sleep(Duration::from_millis(400));
    // Backpressure holds the stream still: a stable snapshot.
    let st = ctl.stats();
    // Rows buffered = the rest of the chunk being read + whole chunks in the channel.
    assert_eq!(st.items_buffered, st.total_rows_received - 1);
    // Chunks of at most 100 rows (fewer when a read ends mid-way: rows never wait).
    assert!(st.total_rows_received <= 100 * st.chunks_received, "{st:?}");
    // Bytes: chunks hold at least their rows' JSON text; memory adds the read buffer.
    let held_json = psql(&format!(
        "SELECT sum(octet_length(data::text)) FROM (SELECT data FROM v_bench_10k LIMIT {}) t",
        st.total_rows_received
    ));
    assert!(st.bytes_buffered >= held_json.trim().parse::<u64>().unwrap());
    assert!(st.estimated_memory >= st.bytes_buffered);
    assert!(st.estimated_memory - st.bytes_buffered <= 256 * 1024);
    assert!(st.estimated_memory <= 256 * 1024);
    drain_strings(&mut s);
    let st = s.stats();
    assert_eq!(
        (st.items_buffered, st.bytes_buffered, st.estimated_memory),
        (0, 0, 0)
    );
}

#[test]
fn stats_through_the_c_api_from_another_thread() {
    struct Ptr(*mut fw_stream);
    // SAFETY (test): fw_stream control calls are thread-safe; the consumer is this thread.
    unsafe impl Send for Ptr {}
    let (client, q) = c_client_query("v_user");
    let mut s: *mut fw_stream = std::ptr::null_mut();
    assert_eq!(fw_query_execute(q, &mut s), FW_OK);
    let done = Arc::new(AtomicBool::new(false));
    let polled_main = Arc::new(AtomicBool::new(false));
    let poller = {
        let p = Ptr(s);
        let done = done.clone();
        let polled = polled_main.clone();
        std::thread::spawn(move || {
            let p = p;
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                let mut st: fw_stats = unsafe { std::mem::zeroed() };
                st.struct_size = std::mem::size_of::<fw_stats>();
                assert_eq!(fw_stream_stats(p.0, &mut st), FW_OK);
                assert_eq!(
                    st.items_buffered,
                    st.total_rows_received - st.total_rows_yielded - st.total_rows_filtered
                );
                n += 1;
                polled.store(true, Ordering::Release);
            }
            n
        })
    };
    // Consume only once the poller runs, so the two really overlap (on a loaded machine the
    // thread could otherwise start after the whole stream was consumed).
    while !polled_main.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let mut row = fw_row {
        data: std::ptr::null(),
        len: 0,
    };
    let mut n = 0;
    loop {
        match fw_stream_next(s, &mut row, -1) {
            FW_OK => n += 1,
            FW_DONE => break,
            other => panic!("{other:?}"),
        }
    }
    done.store(true, Ordering::Release);
    assert!(poller.join().unwrap() > 0);
    assert_eq!(n, 1000);
    // An old, smaller struct: only its fields are written.
    let mut small = [0u8; 256];
    let min = std::mem::offset_of!(fw_stats, elapsed_us) + 8;
    small[..8].copy_from_slice(&min.to_ne_bytes());
    assert_eq!(fw_stream_stats(s, small.as_mut_ptr().cast()), FW_OK);
    assert!(
        small[min..].iter().all(|&b| b == 0),
        "nothing written past struct_size"
    );
    let mut tiny: fw_stats = unsafe { std::mem::zeroed() };
    tiny.struct_size = 8;
    assert_eq!(fw_stream_stats(s, &mut tiny), FW_E_INVALID_ARGUMENT);
    assert_eq!(fw_stream_stats(s, std::ptr::null_mut()), FW_E_NULL);
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(client);
}
