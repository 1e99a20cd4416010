//! The cost of recording, per chunk, measured directly (run by `benches/metrics_cost` in
//! release mode; ignored in normal test runs): the events the reader records for each chunk it
//! hands over, and those the consumer records for each chunk it takes, alone and with both
//! sides on two threads at once (as in a stream).

#![cfg(feature = "metrics")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use fraiseql_wire::metrics;

/// Events per measurement (`FW_MICRO_N` overrides, e.g. for a run under valgrind).
fn n() -> u32 {
    std::env::var("FW_MICRO_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000)
}

fn reader_chunk(entity: &str, i: u32) {
    metrics::chunk_built(
        entity,
        black_box(256),
        black_box(110_000),
        Duration::from_nanos(u64::from(i % 50_000)),
    );
}

fn consumer_chunk(entity: &str, i: u32) {
    metrics::chunk_taken(entity, 256, black_box((i % 2048) as usize));
    metrics::chunk_consumed(entity, 256, 0, None);
}

fn per_event_ns(f: impl Fn(u32)) -> f64 {
    let n = n();
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

#[test]
#[ignore = "benchmark: run by benches/metrics_cost (cargo test --release -- --ignored)"]
fn per_chunk_recording_cost() {
    // The recorder is built on the first event of the process (one-time cost).
    let t = Instant::now();
    metrics::render();
    let init_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Warm up: registration of the entity, allocation of histogram blocks.
    per_event_ns(|i| reader_chunk("micro", i));
    let reader = per_event_ns(|i| reader_chunk("micro", i));
    let consumer = per_event_ns(|i| consumer_chunk("micro", i));
    let t = std::thread::spawn(|| per_event_ns(|i| reader_chunk("micro2", i)));
    let consumer2 = per_event_ns(|i| consumer_chunk("micro2", i));
    let reader2 = t.join().unwrap();
    println!(
        "RESULT reader_ns={reader:.1} consumer_ns={consumer:.1} \
         reader_concurrent_ns={reader2:.1} consumer_concurrent_ns={consumer2:.1} \
         init_ms={init_ms:.2}"
    );
    // The dump stays consistent after millions of samples (upkeep ran along the way).
    let text = metrics::render();
    assert!(text.contains("fraiseql_chunk_size_rows_count{entity=\"micro\"}"));
}
