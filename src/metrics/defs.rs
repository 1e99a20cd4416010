//! The definitions of the 37 metrics: name, type, labels, meaning, when each moves, and the
//! histogram buckets. This table is the single source of truth: the recorder is configured
//! from it (HELP text, buckets), and `tests/metrics_docs.rs` checks that the reference table
//! in `docs/metrics.md` (and the product's metric list) say exactly the same.

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
    Gauge,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Histogram => "histogram",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One metric of the product's list.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    /// Label names, in the order they are documented.
    pub labels: &'static [&'static str],
    /// What the metric counts / observes (also its `# HELP` text).
    pub help: &'static str,
    /// When it moves, and where in the code.
    pub moves: &'static str,
    /// Upper bounds of the histogram buckets (histograms only; `+Inf` is implicit).
    pub buckets: &'static [f64],
    /// Where it is recorded: `(source file, function)` pairs calling into this module.
    pub sites: &'static [(&'static str, &'static str)],
}

/// Latencies of a whole query, in ms: sub-millisecond to five minutes.
pub const QUERY_MS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 30000.0, 60000.0, 300000.0,
];
/// Per-chunk work, in ms: microseconds to a second.
pub const CHUNK_MS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 250.0, 1000.0,
];
/// Waits (backpressure, pauses), in ms: ten microseconds to ten minutes.
pub const WAIT_MS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 60000.0,
    600000.0,
];
/// Authentication exchanges, in ms.
pub const AUTH_MS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];
/// Rows per query: powers of ten.
pub const QUERY_ROWS: &[f64] = &[
    0.0,
    1.0,
    10.0,
    100.0,
    1000.0,
    10000.0,
    100000.0,
    1000000.0,
    10000000.0,
    100000000.0,
];
/// Bytes per query: 1 KiB to 16 GiB, by fours.
pub const QUERY_BYTES: &[f64] = &[
    0.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
    17179869184.0,
];
/// Rows per chunk: powers of two up to 8192.
pub const CHUNK_ROWS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];
/// Rows waiting in the channel: 0, then powers of two.
pub const OCCUPANCY_ROWS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 65536.0,
];

const fn counter(
    name: &'static str,
    sites: &'static [(&'static str, &'static str)],
    labels: &'static [&'static str],
    help: &'static str,
    moves: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Counter,
        labels,
        help,
        moves,
        buckets: &[],
        sites,
    }
}

const fn histogram(
    name: &'static str,
    sites: &'static [(&'static str, &'static str)],
    labels: &'static [&'static str],
    help: &'static str,
    moves: &'static str,
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Histogram,
        labels,
        help,
        moves,
        buckets,
        sites,
    }
}

const fn gauge(
    name: &'static str,
    sites: &'static [(&'static str, &'static str)],
    labels: &'static [&'static str],
    help: &'static str,
    moves: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Gauge,
        labels,
        help,
        moves,
        buckets: &[],
        sites,
    }
}

const E: &[&str] = &["entity"];

/// Every metric of the product, in the order of the reference.
pub const DEFINITIONS: &[MetricDef] = &[
    // ---- counters -------------------------------------------------------------------------
    counter(
        "fraiseql_queries_total",
        &[("src/client.rs", "Client::execute")],
        E,
        "Queries submitted.",
        "`Client::execute` (`fw_query_execute`) is called, before anything is sent.",
    ),
    counter(
        "fraiseql_query_success_total",
        &[("src/stream/reader/mod.rs", "Reader::finish")],
        E,
        "Queries that reached CommandComplete.",
        "The reader task ends after CommandComplete and ReadyForQuery.",
    ),
    counter(
        "fraiseql_query_error_total",
        &[("src/client.rs", "Client::execute"), ("src/stream/reader/mod.rs", "Reader::finish"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        &["entity", "error_category"],
        "Queries that ended in an error.",
        "`execute` fails (connect, server error, wrong result shape), or the stream ends with an error (server error after rows, memory limit, protocol, I/O).",
    ),
    counter(
        "fraiseql_query_cancelled_total",
        &[("src/stream/mod.rs", "StreamControl::cancel"), ("src/stream/reader/mod.rs", "Reader::finish")],
        E,
        "Queries cancelled (cancel call, or stream freed early).",
        "`cancel` / `fw_stream_cancel` on a running stream, or `fw_stream_free` of a running stream. A query the server cancels by itself (SQLSTATE 57014: `statement_timeout`, `pg_cancel_backend`) is an error (`server`), not counted here.",
    ),
    counter(
        "fraiseql_query_completed_total",
        &[("src/client.rs", "Client::execute"), ("src/stream/reader/mod.rs", "Reader::finish"), ("src/stream/mod.rs", "StreamControl::cancel"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        &["entity", "status"],
        "Queries that ended, once each (status: success, error, cancelled).",
        "Together with the success, error or cancelled counter: exactly once per submitted query.",
    ),
    counter(
        "fraiseql_rows_processed_total",
        &[("src/stream/reader/mod.rs", "Outbox::queue"), ("src/stream/reader/framer.rs", "Framer::take_rejected")],
        E,
        "Rows received from the server.",
        "The reader hands a chunk to the consumer (per chunk, by its row count; rows the built-in JSON predicates reject in the reader count too).",
    ),
    counter(
        "fraiseql_rows_filtered_total",
        &[("src/stream/mod.rs", "Stream::refill"), ("src/stream/mod.rs", "Stream::drop"), ("src/stream/reader/framer.rs", "Framer::take_rejected")],
        E,
        "Rows rejected by client-side predicates.",
        "The consumer finishes a chunk (or frees the stream) in which `fw_query_filter` predicates rejected rows, or the reader hands over a chunk after the built-in JSON predicates (`fw_query_filter_json`) rejected rows.",
    ),
    counter(
        "fraiseql_rows_deserialized_total",
        &[("src/stream/reader/framer.rs", "Framer::flush_parse_metrics")],
        E,
        "Rows parsed/validated as JSON (when a feature parses).",
        "The reader hands over a chunk whose rows the built-in JSON predicates parsed.",
    ),
    counter(
        "fraiseql_rows_deserialization_failed_total",
        &[("src/stream/reader/framer.rs", "Framer::json_accepts")],
        &["entity", "reason"],
        "Rows that failed that parse (the JSON parse/validation above).",
        "A built-in JSON predicate meets a row it cannot parse (the row is rejected; reason `invalid_json`, `invalid_utf8` or `too_deep`).",
    ),
    counter(
        "fraiseql_errors_total",
        &[("src/connection/open.rs", "HostLoop::settle"), ("src/connection/open.rs", "HostLoop::no_host"), ("src/client.rs", "query_phase_error"), ("src/stream/reader/mod.rs", "Reader::finish"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        &["error_category", "phase"],
        "Every error, by category and phase (connect, auth, query, stream).",
        "A connection attempt fails (phase connect or auth), `execute` fails after the connection (query), or a started stream ends with an error (stream).",
    ),
    counter(
        "fraiseql_protocol_errors_total",
        &[("src/stream/reader/protocol.rs", "ProtocolState::at_start"), ("src/stream/reader/protocol.rs", "ProtocolState::in_rows"), ("src/stream/reader/protocol.rs", "row_fault_error"), ("src/stream/reader/framer.rs", "Framer::process"), ("src/stream/reader/protocol.rs", "ProtocolState::outcome"), ("src/connection/startup.rs", "next_message"), ("src/connection/startup.rs", "Startup::on_message"), ("src/connection/auth.rs", "unexpected")],
        &["message_type"],
        "Protocol violations from the server.",
        "The server sends a malformed message or one the protocol does not allow at that point.",
    ),
    counter(
        "fraiseql_json_parse_errors_total",
        &[("src/stream/reader/framer.rs", "Framer::json_accepts")],
        E,
        "JSON parse failures.",
        "A built-in JSON predicate meets a row it cannot parse (as above).",
    ),
    counter(
        "fraiseql_connections_created_total",
        &[("src/connection/open.rs", "HostLoop::settle")],
        &["transport"],
        "Connections established (transport: tcp, unix, tls).",
        "A new connection finished startup and authentication (pooled reuse does not count).",
    ),
    counter(
        "fraiseql_connections_failed_total",
        &[("src/connection/open.rs", "HostLoop::settle"), ("src/connection/open.rs", "HostLoop::no_host")],
        &["phase", "error_category"],
        "Connection attempts that failed.",
        "Opening a connection fails, in phase connect (unreachable, TLS, startup) or auth.",
    ),
    counter(
        "fraiseql_authentications_total",
        &[("src/connection/open.rs", "Connection::startup_step"), ("src/connection/open.rs", "startup_failed")],
        &["mechanism"],
        "Authentication attempts.",
        "The server answers the startup message with its authentication request (trust, cleartext, md5, scram-sha-256).",
    ),
    counter(
        "fraiseql_authentications_successful_total",
        &[("src/connection/open.rs", "Connection::startup_step")],
        &["mechanism"],
        "Successful authentications.",
        "AuthenticationOk is received.",
    ),
    counter(
        "fraiseql_authentications_failed_total",
        &[("src/connection/open.rs", "startup_failed")],
        &["mechanism", "reason"],
        "Failed authentications.",
        "The server rejects the credentials, no password was supplied, the mechanism is unsupported, or the SCRAM exchange fails.",
    ),
    counter(
        "fraiseql_memory_limit_exceeded_total",
        &[("src/stream/reader/framer.rs", "Framer::process")],
        E,
        "Streams stopped by their hard memory limit.",
        "A row larger than the stream's hard limit (max_memory x fail_ratio) arrives.",
    ),
    counter(
        "fraiseql_adaptive_chunk_adjusted_total",
        &[("src/stream/mod.rs", "Stream::refill")],
        &["entity", "direction", "old_size", "new_size"],
        "Adaptive chunk size changes.",
        "Adaptive chunking grows (direction increase) or shrinks (decrease) the chunk size.",
    ),
    counter(
        "fraiseql_stream_paused_total",
        &[("src/stream/mod.rs", "StreamControl::pause")],
        E,
        "Pauses (not counting idempotent repeats).",
        "`pause` on a running stream.",
    ),
    counter(
        "fraiseql_stream_resumed_total",
        &[("src/stream/shared.rs", "Shared::end_pause")],
        E,
        "Resumes (explicit or by timeout).",
        "`resume` on a paused stream, or its pause timeout expires.",
    ),
    counter(
        "fraiseql_stream_pause_timeout_expired_total",
        &[("src/stream/shared.rs", "Shared::end_pause"), ("src/stream/driver/task.rs", "Reader::wait_for_room")],
        E,
        "Pauses ended by their timeout.",
        "A pause outlives the stream's pause timeout and the stream resumes by itself.",
    ),
    // ---- histograms -----------------------------------------------------------------------
    histogram(
        "fraiseql_query_startup_duration_ms",
        &[("src/stream/reader/mod.rs", "Outbox::queue")],
        E,
        "Query sent to first row received, in milliseconds.",
        "The first chunk of a query is built.",
        QUERY_MS,
    ),
    histogram(
        "fraiseql_query_total_duration_ms",
        &[("src/stream/reader/mod.rs", "Reader::finish"), ("src/client.rs", "Client::execute"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        E,
        "Query sent to end of stream, in milliseconds.",
        "A query ends (success, error or cancel), once per query.",
        QUERY_MS,
    ),
    histogram(
        "fraiseql_query_rows_processed",
        &[("src/stream/reader/mod.rs", "Reader::finish"), ("src/client.rs", "Client::execute"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        E,
        "Rows per query.",
        "A query ends, once per query.",
        QUERY_ROWS,
    ),
    histogram(
        "fraiseql_query_bytes_received",
        &[("src/stream/reader/mod.rs", "Reader::finish"), ("src/client.rs", "Client::execute"), ("src/stream/driver/mod.rs", "TerminalGuard::drop")],
        E,
        "Bytes of row data per query (JSON text).",
        "A query ends, once per query.",
        QUERY_BYTES,
    ),
    histogram(
        "fraiseql_chunk_processing_duration_ms",
        &[("src/stream/reader/mod.rs", "Outbox::queue")],
        E,
        "Time to build one chunk from socket bytes, in milliseconds.",
        "The reader hands a chunk to the consumer.",
        CHUNK_MS,
    ),
    histogram(
        "fraiseql_chunk_size_rows",
        &[("src/stream/reader/mod.rs", "Outbox::queue")],
        E,
        "Rows per chunk handed to the consumer.",
        "The reader hands a chunk to the consumer.",
        CHUNK_ROWS,
    ),
    histogram(
        "fraiseql_json_parse_duration_ms",
        &[("src/stream/reader/framer.rs", "Framer::flush_parse_metrics")],
        E,
        "Time spent parsing JSON, per chunk, in milliseconds.",
        "The reader hands over a chunk whose rows the built-in JSON predicates parsed.",
        CHUNK_MS,
    ),
    histogram(
        "fraiseql_filter_duration_ms",
        &[("src/stream/mod.rs", "Stream::refill"), ("src/stream/mod.rs", "Stream::drop")],
        E,
        "Time spent in client-side predicates, per chunk, in milliseconds.",
        "The consumer finishes a chunk of a query that has predicates.",
        CHUNK_MS,
    ),
    histogram(
        "fraiseql_deserialization_duration_ms",
        &[("src/stream/reader/framer.rs", "Framer::flush_parse_metrics")],
        E,
        "Time spent validating/deserializing, per chunk, in milliseconds.",
        "The reader hands over a chunk whose rows the built-in JSON predicates parsed (the same time as the parse: the predicate's parse is its whole deserialization).",
        CHUNK_MS,
    ),
    histogram(
        "fraiseql_channel_send_latency_ms",
        &[("src/stream/driver/task.rs", "Reader::wait_for_room")],
        E,
        "Time a ready chunk waited for room in the channel (backpressure), in milliseconds.",
        "The reader, blocked because the stream's memory budget was full, may read again.",
        WAIT_MS,
    ),
    histogram(
        "fraiseql_auth_duration_ms",
        &[("src/connection/open.rs", "Connection::startup_step"), ("src/connection/open.rs", "startup_failed")],
        &["mechanism"],
        "Authentication time, in milliseconds.",
        "An authentication exchange ends (success or failure).",
        AUTH_MS,
    ),
    histogram(
        "fraiseql_channel_occupancy_rows",
        &[("src/stream/mod.rs", "Stream::refill")],
        E,
        "Rows waiting in the channel, sampled as the consumer takes rows.",
        "The consumer takes a chunk from the channel.",
        OCCUPANCY_ROWS,
    ),
    histogram(
        "fraiseql_stream_pause_duration_ms",
        &[("src/stream/shared.rs", "Shared::close_pause")],
        E,
        "Length of each pause, in milliseconds.",
        "A pause ends (resume, timeout, cancel, or the end of the stream).",
        WAIT_MS,
    ),
    // ---- gauges ---------------------------------------------------------------------------
    gauge(
        "fraiseql_chunk_size_bytes",
        &[("src/stream/reader/mod.rs", "Outbox::queue")],
        E,
        "Bytes in the latest chunk handed to the consumer.",
        "The reader hands a chunk to the consumer.",
    ),
    gauge(
        "fraiseql_stream_buffered_items",
        &[("src/stream/reader/mod.rs", "Outbox::queue"), ("src/stream/mod.rs", "Stream::refill"), ("src/stream/mod.rs", "StreamControl::cancel"), ("src/stream/mod.rs", "Stream::drop"), ("src/stream/reader/mod.rs", "Reader::finish")],
        E,
        "Rows currently buffered (summed over live streams of that entity).",
        "Up when the reader queues a chunk, down when the consumer takes it or the stream is cancelled or freed.",
    ),
];

/// The definition of `name`.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    DEFINITIONS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_seven_metrics_with_sorted_buckets() {
        assert_eq!(DEFINITIONS.len(), 37);
        let count = |k| DEFINITIONS.iter().filter(|d| d.kind == k).count();
        assert_eq!(count(MetricKind::Counter), 22);
        assert_eq!(count(MetricKind::Histogram), 13);
        assert_eq!(count(MetricKind::Gauge), 2);
        for d in DEFINITIONS {
            assert!(d.name.starts_with("fraiseql_"));
            assert_eq!(
                d.kind == MetricKind::Histogram,
                !d.buckets.is_empty(),
                "{}",
                d.name
            );
            assert!(d.buckets.windows(2).all(|w| w[0] < w[1]), "{}", d.name);
            assert_eq!(
                DEFINITIONS.iter().filter(|o| o.name == d.name).count(),
                1,
                "{}",
                d.name
            );
        }
    }
}
