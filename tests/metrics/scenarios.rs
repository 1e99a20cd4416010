//! every feature moves its metrics by exactly what happened, against the
//! real server. Each test uses entities of its own (views created for it), so the exact values
//! hold while the tests of this binary run in parallel; metrics without an entity label are
//! compared as deltas under a lock. The dump is read through `fw_metrics_dump` and parsed.

// Without the `metrics` feature nothing is recorded (see tests/metrics/dump.rs).
#![cfg(feature = "metrics")]

use std::thread;
use std::time::Duration;

use crate::support::metrics::*;
use crate::support::*;

/// Labels as the parser's `&[(&str, &str)]`.
macro_rules! l {
    ($($k:literal = $v:expr),* $(,)?) => { &[$(($k, $v)),*][..] };
}

#[test]
fn n_successful_queries_are_counted_exactly() {
    let _recording = recording_shared();
    let ent = "m_ok";
    let (rows, bytes) = run_successful(ent, 3);
    assert_eq!(rows, 3000);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_queries_total", en), 3.0);
    assert_eq!(d.value("fraiseql_query_success_total", en), 3.0);
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 3000.0);
    for (status, n) in [("success", 3.0), ("error", 0.0), ("cancelled", 0.0)] {
        assert_eq!(
            d.value(
                "fraiseql_query_completed_total",
                l!("entity" = ent, "status" = status)
            ),
            n,
            "{status}"
        );
    }
    assert_eq!(d.value("fraiseql_query_cancelled_total", en), 0.0);
    assert_eq!(d.value("fraiseql_rows_filtered_total", en), 0.0);
    // Per-query histograms: one observation per query.
    assert_eq!(d.count("fraiseql_query_rows_processed", en), 3.0);
    assert_eq!(d.sum("fraiseql_query_rows_processed", en), 3000.0);
    assert_eq!(d.bucket("fraiseql_query_rows_processed", en, "100"), 0.0);
    assert_eq!(d.bucket("fraiseql_query_rows_processed", en, "1000"), 3.0);
    assert_eq!(d.count("fraiseql_query_bytes_received", en), 3.0);
    assert_eq!(d.sum("fraiseql_query_bytes_received", en), bytes as f64);
    assert_eq!(d.count("fraiseql_query_total_duration_ms", en), 3.0);
    assert!(d.sum("fraiseql_query_total_duration_ms", en) > 0.0);
    assert_eq!(d.count("fraiseql_query_startup_duration_ms", en), 3.0);
    let startup = d.sum("fraiseql_query_startup_duration_ms", en);
    assert!(startup > 0.0 && startup < d.sum("fraiseql_query_total_duration_ms", en));
    // Per-chunk: every row is in exactly one chunk; every chunk was taken by the consumer.
    let chunks = d.count("fraiseql_chunk_size_rows", en);
    assert!(chunks >= 3.0 * 4.0, "1000 rows in chunks of at most 256");
    assert_eq!(d.sum("fraiseql_chunk_size_rows", en), 3000.0);
    assert_eq!(d.count("fraiseql_chunk_processing_duration_ms", en), chunks);
    assert_eq!(d.count("fraiseql_channel_occupancy_rows", en), chunks);
    // No predicates, no pause, no parse: those histograms are registered and empty.
    assert_eq!(d.get("fraiseql_filter_duration_ms_count", en), Some(0.0));
    assert_eq!(
        d.get("fraiseql_stream_pause_duration_ms_count", en),
        Some(0.0)
    );
    assert_eq!(
        d.get("fraiseql_json_parse_duration_ms_count", en),
        Some(0.0)
    );
    // Gauges: the latest chunk's size, and nothing left buffered.
    assert!(d.value("fraiseql_chunk_size_bytes", en) > 0.0);
    assert_eq!(d.get("fraiseql_stream_buffered_items", en), Some(0.0));
    // The Rust API renders the same numbers.
    let r = render();
    assert_eq!(r.value("fraiseql_rows_processed_total", en), 3000.0);
}

#[test]
fn sub_millisecond_durations_keep_their_fraction() {
    let _recording = recording_shared();
    let ent = "m_fraction";
    run_successful(ent, 1);
    let d = dump();
    let en = l!("entity" = ent);
    // Building a chunk out of bytes already read takes microseconds: recorded as a fraction of
    // a millisecond, not 0.
    let sum = d.sum("fraiseql_chunk_processing_duration_ms", en);
    assert!(sum > 0.0, "chunk processing time rounded to 0");
    assert!(d.bucket("fraiseql_chunk_processing_duration_ms", en, "1") > 0.0);
}

#[test]
fn filters_count_rejected_rows_and_their_time() {
    let _recording = recording_shared();
    let ent = "m_filter";
    let stats = run_filtered(ent);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_rows_filtered_total", en), 500.0);
    assert_eq!(stats.total_rows_filtered, 500);
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 1000.0);
    // One filter-time observation per chunk consumed.
    assert_eq!(
        d.count("fraiseql_filter_duration_ms", en),
        stats.chunks_received as f64
    );
    assert!(d.sum("fraiseql_filter_duration_ms", en) > 0.0);

    // Read in batches: exact once the stream has ended, before it is freed.
    let ent = "m_filter_batch";
    let (s, rows) = run_filtered_batch(ent);
    assert_eq!(rows, 500);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_rows_filtered_total", en), 500.0);
    assert_eq!(
        d.count("fraiseql_filter_duration_ms", en),
        s.stats().chunks_received as f64
    );
    drop(s);
    assert_eq!(dump().value("fraiseql_rows_filtered_total", en), 500.0);
}

#[test]
fn errors_are_counted_once_by_category_and_phase() {
    let _recording = recording_shared();
    let before = dump();
    let c = socket_client();
    // Query phase: the relation does not exist.
    let err = c.execute(&query("m_missing")).err().expect("fails");
    assert_eq!(err.kind(), fraiseql_wire::ErrorKind::Server);
    // Query phase: wrong result shape.
    view("m_schema", "SELECT data FROM v_not_json");
    let err = c.execute(&query("m_schema")).err().expect("fails");
    assert_eq!(err.kind(), fraiseql_wire::ErrorKind::Schema);
    // Stream phase: a server error after 50 rows.
    view("m_divzero", "SELECT data FROM v_div_zero_after");
    let mut s = c.execute(&query("m_divzero")).expect("execute");
    let (rows, _, end) = drain_counts(&mut s);
    assert_eq!(rows, 50);
    assert_eq!(end.unwrap_err().kind(), fraiseql_wire::ErrorKind::Server);
    let d = dump();
    for (ent, cat) in [
        ("m_missing", "server"),
        ("m_schema", "schema"),
        ("m_divzero", "server"),
    ] {
        assert_eq!(d.value("fraiseql_queries_total", l!("entity" = ent)), 1.0);
        assert_eq!(
            d.value(
                "fraiseql_query_error_total",
                l!("entity" = ent, "error_category" = cat)
            ),
            1.0,
            "{ent}"
        );
        assert_eq!(
            d.value(
                "fraiseql_query_completed_total",
                l!("entity" = ent, "status" = "error")
            ),
            1.0
        );
        assert_eq!(
            d.value("fraiseql_query_success_total", l!("entity" = ent)),
            0.0
        );
        assert_eq!(
            d.count("fraiseql_query_total_duration_ms", l!("entity" = ent)),
            1.0
        );
    }
    assert_eq!(
        d.value("fraiseql_rows_processed_total", l!("entity" = "m_divzero")),
        50.0
    );
    let delta = |cat: &str, phase: &str| {
        let labels = l!("error_category" = cat, "phase" = phase);
        d.value("fraiseql_errors_total", labels) - before.value("fraiseql_errors_total", labels)
    };
    assert_eq!(delta("server", "query"), 1.0);
    assert_eq!(delta("schema", "query"), 1.0);
    assert_eq!(delta("server", "stream"), 1.0);
}

#[test]
fn a_cancel_counts_once() {
    let _recording = recording_shared();
    let ent = "m_cancel";
    run_cancel(ent);
    let en = l!("entity" = ent);
    let cancelled = l!("entity" = ent, "status" = "cancelled");
    let d = dump();
    assert_eq!(d.value("fraiseql_query_cancelled_total", en), 1.0);
    assert_eq!(d.value("fraiseql_query_completed_total", cancelled), 1.0);
    // Once the reader has seen the end of the query: still once, and one per-query
    // observation.
    assert!(wait_until(Duration::from_secs(10), || {
        dump().count("fraiseql_query_total_duration_ms", en) == 1.0
    }));
    let d = dump();
    assert_eq!(d.value("fraiseql_queries_total", en), 1.0);
    assert_eq!(d.value("fraiseql_query_cancelled_total", en), 1.0);
    assert_eq!(d.value("fraiseql_query_completed_total", cancelled), 1.0);
    for status in ["success", "error"] {
        assert_eq!(
            d.value(
                "fraiseql_query_completed_total",
                l!("entity" = ent, "status" = status)
            ),
            0.0
        );
    }
    assert_eq!(d.get("fraiseql_stream_buffered_items", en), Some(0.0));

    // Freeing a running stream cancels it: counted the same way.
    let ent = "m_drop_early";
    run_drop_early(ent);
    let en = l!("entity" = ent);
    let d = dump();
    assert_eq!(d.value("fraiseql_query_cancelled_total", en), 1.0);
    assert_eq!(
        d.value(
            "fraiseql_query_completed_total",
            l!("entity" = ent, "status" = "cancelled")
        ),
        1.0
    );
    assert_eq!(d.value("fraiseql_query_success_total", en), 0.0);
    assert!(wait_until(Duration::from_secs(10), || {
        dump().count("fraiseql_query_total_duration_ms", en) == 1.0
    }));
    assert_eq!(dump().get("fraiseql_stream_buffered_items", en), Some(0.0));
}

#[test]
fn a_cancel_through_the_c_api_counts_once() {
    let _recording = recording_shared();
    use fraiseql_wire::ffi::client::{fw_client_free, fw_client_new};
    use fraiseql_wire::ffi::fw_status;
    use fraiseql_wire::ffi::query::{fw_query_execute, fw_query_free, fw_query_new};
    use fraiseql_wire::ffi::stream::{fw_stream_cancel, fw_stream_free};
    use std::ffi::CString;

    let ent = "m_ffi_cancel";
    view(ent, "SELECT data FROM v_sleep30");
    let conninfo = CString::new(pg().socket_conninfo()).unwrap();
    let source = CString::new(ent).unwrap();
    let mut client = std::ptr::null_mut();
    assert_eq!(
        fw_client_new(conninfo.as_ptr(), &mut client),
        fw_status::FW_OK
    );
    let mut q = std::ptr::null_mut();
    assert_eq!(
        fw_query_new(client, source.as_ptr(), &mut q),
        fw_status::FW_OK
    );
    let mut s = std::ptr::null_mut();
    assert_eq!(fw_query_execute(q, &mut s), fw_status::FW_OK);
    assert_eq!(fw_stream_cancel(s), fw_status::FW_OK);
    assert_eq!(fw_stream_cancel(s), fw_status::FW_OK);
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(client);
    let d = dump();
    assert_eq!(d.value("fraiseql_queries_total", l!("entity" = ent)), 1.0);
    assert_eq!(
        d.value("fraiseql_query_cancelled_total", l!("entity" = ent)),
        1.0
    );
    assert_eq!(
        d.value(
            "fraiseql_query_completed_total",
            l!("entity" = ent, "status" = "cancelled")
        ),
        1.0
    );
}

#[test]
fn pause_with_timeout_moves_pause_metrics() {
    let _recording = recording_shared();
    let ent = "m_pause";
    let stats = run_pause_timeout(ent);
    assert_eq!(stats.pause_count, 2);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_stream_paused_total", en), 2.0);
    assert_eq!(d.value("fraiseql_stream_resumed_total", en), 2.0);
    assert_eq!(
        d.value("fraiseql_stream_pause_timeout_expired_total", en),
        1.0
    );
    assert_eq!(d.count("fraiseql_stream_pause_duration_ms", en), 2.0);
    let paused = d.sum("fraiseql_stream_pause_duration_ms", en);
    assert!(
        (350.0..10_000.0).contains(&paused),
        "300 ms + 50 ms of pauses, got {paused} ms"
    );
    // The timed-out pause is in a bucket above 100 ms, the explicit one below.
    assert_eq!(
        d.bucket("fraiseql_stream_pause_duration_ms", en, "100"),
        1.0
    );
    assert_eq!(d.value("fraiseql_query_success_total", en), 1.0);
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 20.0);
}

#[test]
fn a_memory_limit_stop_is_counted() {
    let _recording = recording_shared();
    let before = dump();
    let ent = "m_memlimit";
    run_memory_limit(ent);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_memory_limit_exceeded_total", en), 1.0);
    assert_eq!(
        d.value(
            "fraiseql_query_error_total",
            l!("entity" = ent, "error_category" = "memory_limit")
        ),
        1.0
    );
    assert_eq!(
        d.value(
            "fraiseql_query_completed_total",
            l!("entity" = ent, "status" = "error")
        ),
        1.0
    );
    let labels = l!("error_category" = "memory_limit", "phase" = "stream");
    assert_eq!(
        d.value("fraiseql_errors_total", labels) - before.value("fraiseql_errors_total", labels),
        1.0
    );
}

#[test]
fn a_slow_consumer_moves_send_latency_and_occupancy() {
    let _recording = recording_shared();
    let ent = "m_slow_consumer";
    let stats = run_slow_consumer(ent);
    let d = dump();
    let en = l!("entity" = ent);
    let waits = d.count("fraiseql_channel_send_latency_ms", en);
    assert!(waits >= 1.0, "the reader never waited for room");
    assert!(d.sum("fraiseql_channel_send_latency_ms", en) > 0.0);
    // One occupancy sample per chunk taken, and chunks were waiting at some point.
    assert_eq!(
        d.count("fraiseql_channel_occupancy_rows", en),
        stats.chunks_received as f64
    );
    assert!(d.sum("fraiseql_channel_occupancy_rows", en) > 0.0);
    assert!(d.bucket("fraiseql_channel_occupancy_rows", en, "0") < stats.chunks_received as f64);
    // Chunks of at most 8 rows.
    let chunks = d.count("fraiseql_chunk_size_rows", en);
    assert_eq!(d.bucket("fraiseql_chunk_size_rows", en, "8"), chunks);
    assert_eq!(d.get("fraiseql_stream_buffered_items", en), Some(0.0));
}

#[test]
fn adaptive_changes_move_their_counter_and_the_chunk_gauges() {
    let _recording = recording_shared();
    let ent = "m_adaptive";
    let stats = run_adaptive(ent);
    let d = dump();
    let en = l!("entity" = ent);
    let adjusted = d.family("fraiseql_adaptive_chunk_adjusted_total");
    let ours: Vec<_> = adjusted
        .iter()
        .filter(|s| s.labels.get("entity").map(String::as_str) == Some(ent))
        .collect();
    assert_eq!(
        d.value(
            "fraiseql_adaptive_chunk_adjusted_total",
            l!(
                "entity" = ent,
                "direction" = "decrease",
                "old_size" = "16",
                "new_size" = "8"
            )
        ),
        1.0,
        "{ours:?}"
    );
    assert_eq!(stats.current_chunk_size, 8);
    // Chunks built after the change are smaller: the chunk-size histogram has chunks of at
    // most 8 rows, the bytes gauge holds the latest chunk's size.
    assert!(d.bucket("fraiseql_chunk_size_rows", en, "8") >= 1.0);
    assert_eq!(
        d.bucket("fraiseql_chunk_size_rows", en, "16"),
        d.count("fraiseql_chunk_size_rows", en)
    );
    let latest = d.value("fraiseql_chunk_size_bytes", en);
    assert!(
        latest > 0.0 && latest < 16.0 * 1024.0,
        "latest chunk {latest} bytes"
    );
    assert_eq!(d.get("fraiseql_stream_buffered_items", en), Some(0.0));
}

#[test]
fn buffered_items_gauge_follows_the_channel() {
    let _recording = recording_shared();
    let ent = "m_buffered";
    view(ent, "SELECT data FROM users");
    let c = socket_client();
    // All 1000 rows queued while nobody consumes: a read-ahead of the whole budget.
    let mut q = query(ent);
    q.read_ahead(usize::MAX).unwrap();
    let mut s = c.execute(&q).expect("execute");
    assert!(wait_until(Duration::from_secs(10), || {
        s.stats().total_rows_received == 1000
    }));
    let en = l!("entity" = ent);
    assert_eq!(dump().value("fraiseql_stream_buffered_items", en), 1000.0);
    // Taking a row takes its whole chunk out of the channel.
    assert!(matches!(
        s.next(fraiseql_wire::Wait::Forever),
        Ok(fraiseql_wire::Next::Row(_))
    ));
    let g = dump().value("fraiseql_stream_buffered_items", en);
    assert!((1000.0 - 256.0..1000.0).contains(&g), "{g}");
    // A second stream of the same entity adds up.
    let mut s2 = c.execute(&q).expect("execute");
    assert!(wait_until(Duration::from_secs(10), || {
        s2.stats().total_rows_received == 1000
    }));
    assert_eq!(
        dump().value("fraiseql_stream_buffered_items", en),
        g + 1000.0
    );
    drop(s);
    assert_eq!(dump().value("fraiseql_stream_buffered_items", en), 1000.0);
    let (rows, _, end) = drain_counts(&mut s2);
    end.unwrap();
    assert_eq!(rows, 1000);
    assert_eq!(dump().value("fraiseql_stream_buffered_items", en), 0.0);
}

#[test]
fn counters_are_exact_under_concurrency() {
    let _recording = recording_shared();
    let ent = "m_concurrent";
    view(ent, "SELECT data FROM users");
    let c = socket_client();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            thread::spawn(move || {
                let mut total = 0;
                for _ in 0..5 {
                    let mut s = c.execute(&query(ent)).expect("execute");
                    let (rows, _, end) = drain_counts(&mut s);
                    end.unwrap();
                    total += rows;
                }
                total
            })
        })
        .collect();
    let rows: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(rows, 20_000);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_queries_total", en), 20.0);
    assert_eq!(d.value("fraiseql_query_success_total", en), 20.0);
    assert_eq!(
        d.value(
            "fraiseql_query_completed_total",
            l!("entity" = ent, "status" = "success")
        ),
        20.0
    );
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 20_000.0);
    assert_eq!(d.count("fraiseql_query_rows_processed", en), 20.0);
    assert_eq!(d.sum("fraiseql_query_rows_processed", en), 20_000.0);
    assert_eq!(d.sum("fraiseql_chunk_size_rows", en), 20_000.0);
    assert_eq!(d.get("fraiseql_stream_buffered_items", en), Some(0.0));
}

#[test]
fn authentication_and_connection_counters() {
    let _recording = recording_shared();
    let _tcp = tcp_lock();
    let before = dump();
    run_wrong_password();
    for (user, pw) in [
        ("fw_scram", "scram-secret"),
        ("fw_md5", "md5-secret"),
        ("fw_plain", "plain-secret"),
    ] {
        fraiseql_wire::Client::connect(&pg().tcp_conninfo(user, pw))
            .unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    // Nothing listens on this port (bound, then closed).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = fraiseql_wire::Client::connect(&format!(
        "host=127.0.0.1 port={port} user=x dbname=x sslmode=disable"
    ))
    .err()
    .expect("nothing listens");
    assert_eq!(err.kind(), fraiseql_wire::ErrorKind::Connect);
    let d = dump();
    let delta =
        |name: &str, labels: &[(&str, &str)]| d.value(name, labels) - before.value(name, labels);
    let scram = l!("mechanism" = "scram-sha-256");
    assert_eq!(delta("fraiseql_authentications_total", scram), 2.0);
    assert_eq!(
        delta("fraiseql_authentications_successful_total", scram),
        1.0
    );
    assert_eq!(
        delta(
            "fraiseql_authentications_failed_total",
            l!("mechanism" = "scram-sha-256", "reason" = "invalid_password")
        ),
        1.0
    );
    for mech in ["md5", "cleartext"] {
        let m = l!("mechanism" = mech);
        assert_eq!(delta("fraiseql_authentications_total", m), 1.0, "{mech}");
        assert_eq!(
            delta("fraiseql_authentications_successful_total", m),
            1.0,
            "{mech}"
        );
        assert_eq!(
            d.count("fraiseql_auth_duration_ms", m) - before.count("fraiseql_auth_duration_ms", m),
            1.0
        );
    }
    assert_eq!(
        d.count("fraiseql_auth_duration_ms", scram)
            - before.count("fraiseql_auth_duration_ms", scram),
        2.0
    );
    assert_eq!(
        delta(
            "fraiseql_connections_failed_total",
            l!("phase" = "auth", "error_category" = "auth")
        ),
        1.0
    );
    assert_eq!(
        delta(
            "fraiseql_connections_failed_total",
            l!("phase" = "connect", "error_category" = "connect")
        ),
        1.0
    );
    assert_eq!(
        delta(
            "fraiseql_errors_total",
            l!("error_category" = "auth", "phase" = "auth")
        ),
        1.0
    );
    assert_eq!(
        delta(
            "fraiseql_errors_total",
            l!("error_category" = "connect", "phase" = "connect")
        ),
        1.0
    );
    assert_eq!(
        delta(
            "fraiseql_connections_created_total",
            l!("transport" = "tcp")
        ),
        3.0
    );
    // Trust over the socket (other tests connect the same way concurrently: at least ours).
    let before = dump();
    socket_client();
    let d = dump();
    assert!(
        d.value(
            "fraiseql_connections_created_total",
            l!("transport" = "unix")
        ) > before.value(
            "fraiseql_connections_created_total",
            l!("transport" = "unix")
        )
    );
    assert!(
        d.value(
            "fraiseql_authentications_successful_total",
            l!("mechanism" = "trust")
        ) >= 1.0
    );
}

#[test]
fn a_protocol_violation_is_counted() {
    let _recording = recording_shared();
    let _tcp = tcp_lock();
    let before = dump();
    let ent = "m_protocol";
    run_protocol_error(ent);
    let d = dump();
    let dt = l!("message_type" = "data_row");
    assert_eq!(
        d.value("fraiseql_protocol_errors_total", dt)
            - before.value("fraiseql_protocol_errors_total", dt),
        1.0
    );
    assert_eq!(
        d.value(
            "fraiseql_query_error_total",
            l!("entity" = ent, "error_category" = "protocol")
        ),
        1.0
    );
    let ps = l!("error_category" = "protocol", "phase" = "stream");
    assert_eq!(
        d.value("fraiseql_errors_total", ps) - before.value("fraiseql_errors_total", ps),
        1.0
    );
    assert_eq!(
        d.value(
            "fraiseql_connections_created_total",
            l!("transport" = "tcp")
        ) - before.value(
            "fraiseql_connections_created_total",
            l!("transport" = "tcp")
        ),
        1.0
    );
}

#[test]
fn the_built_in_json_predicate_reports_its_parsing() {
    let _recording = recording_shared();
    let ent = "m_json";
    let stats = run_json_filter(ent);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 1000.0);
    assert_eq!(d.value("fraiseql_rows_deserialized_total", en), 1000.0);
    assert_eq!(d.value("fraiseql_rows_filtered_total", en), 500.0);
    assert_eq!(stats.total_rows_filtered, 500);
    assert_eq!(d.value("fraiseql_json_parse_errors_total", en), 0.0);
    let parses = d.count("fraiseql_json_parse_duration_ms", en);
    assert!(parses >= 1.0);
    assert!(d.sum("fraiseql_json_parse_duration_ms", en) > 0.0);
    assert_eq!(d.count("fraiseql_deserialization_duration_ms", en), parses);

    let ent = "m_json_failure";
    run_json_failure(ent);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_json_parse_errors_total", en), 1.0);
    let failed: f64 = d
        .family("fraiseql_rows_deserialization_failed_total")
        .iter()
        .filter(|s| s.labels.get("entity").map(String::as_str) == Some(ent))
        .map(|s| s.value)
        .sum();
    assert_eq!(failed, 1.0);
    assert_eq!(d.value("fraiseql_rows_deserialized_total", en), 1.0);
    assert_eq!(d.value("fraiseql_rows_processed_total", en), 2.0);
    assert_eq!(d.value("fraiseql_rows_filtered_total", en), 1.0);
}

#[test]
fn parsing_features_report_through_the_facade() {
    let _recording = recording_shared();
    let ent = "m_deserialize";
    run_deserialization_events(ent);
    run_deserialization_events(ent);
    let d = dump();
    let en = l!("entity" = ent);
    assert_eq!(d.value("fraiseql_rows_deserialized_total", en), 20.0);
    assert_eq!(
        d.value(
            "fraiseql_rows_deserialization_failed_total",
            l!("entity" = ent, "reason" = "invalid_json")
        ),
        4.0
    );
    assert_eq!(d.value("fraiseql_json_parse_errors_total", en), 4.0);
    assert_eq!(d.count("fraiseql_json_parse_duration_ms", en), 2.0);
    assert!((d.sum("fraiseql_json_parse_duration_ms", en) - 0.6).abs() < 1e-9);
    assert_eq!(d.bucket("fraiseql_json_parse_duration_ms", en, "0.25"), 0.0);
    assert_eq!(d.bucket("fraiseql_json_parse_duration_ms", en, "0.5"), 2.0);
    assert_eq!(d.count("fraiseql_deserialization_duration_ms", en), 2.0);
    assert!((d.sum("fraiseql_deserialization_duration_ms", en) - 0.4).abs() < 1e-9);
}
