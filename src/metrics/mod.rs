//! Metric events. Every place in the engine where something that a metric names happens calls
//! one of these functions; this module turns them into the 37 metrics of the product's list
//! (see [`defs::DEFINITIONS`] and `docs/metrics.md`): counters and gauges on the library's own
//! Prometheus recorder (never the process-global one), histograms in the library's own
//! fixed-bucket atomic histograms, rendered together by [`render`].
//!
//! Cost: the hot paths (the reader building chunks, the consumer taking them) record once per
//! chunk, never per row, into handles registered once per entity. With the `metrics` cargo
//! feature off, every event compiles to nothing (the dump then has no series).
//!
//! Durations are recorded as float milliseconds (sub-millisecond values keep their fraction).

pub mod defs;
mod histogram;
#[cfg(feature = "metrics-http")]
pub mod http;
mod registry;

use std::time::Duration;

pub use defs::{MetricDef, MetricKind, DEFINITIONS};

/// The Prometheus text exposition (format 0.0.4) of every metric that has a series: what
/// `fw_metrics_dump` returns and `/metrics` serves.
pub fn render() -> String {
    registry::registry().render()
}

/// Whether this build records metrics (the `metrics` cargo feature).
pub const fn recording_enabled() -> bool {
    cfg!(feature = "metrics")
}

/// How a pause ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseEnd {
    /// An explicit resume.
    Resumed,
    /// The pause timeout expired (the stream resumed by itself).
    TimedOut,
    /// The stream ended while paused (cancel, or the query finished): not a resume.
    StreamEnded,
}

#[cfg(feature = "metrics")]
#[inline]
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Define an event: with the `metrics` feature its body records; without, it is empty.
macro_rules! events {
    ($(
        $(#[$m:meta])*
        pub fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block
    )*) => {$(
        $(#[$m])*
        #[inline]
        pub fn $name($($arg: $ty),*) {
            #[cfg(feature = "metrics")]
            $body
            #[cfg(not(feature = "metrics"))]
            {
                $(let _ = $arg;)*
            }
        }
    )*};
}

events! {
    /// A query was submitted (`Client::execute`).
    pub fn query_started(entity: &str) {
        registry::with_entity(entity, |m| m.queries.increment(1));
    }

    /// The first row of a query arrived, `since_query` after the query was sent.
    pub fn first_row(entity: &str, since_query: Duration) {
        let r = registry::registry();
        registry::with_entity(entity, |m| r.observe(&m.startup_ms, ms(since_query)));
    }

    /// A query ended: `status` is "success", "error" or "cancelled" (a server-side cancel;
    /// a cancel call is counted by [`query_cancelled`], the reader then calls [`query_ended`]).
    /// Records the outcome counters (once per query) and the per-query histograms.
    pub fn query_finished(
        entity: &str,
        status: &str,
        error_category: Option<&'static str>,
        total: Duration,
        rows: u64,
        bytes: u64,
    ) {
        registry::with_entity(entity, |m| {
            match status {
                "success" => {
                    m.success.increment(1);
                    m.completed_success.increment(1);
                }
                "cancelled" => {
                    m.cancelled.increment(1);
                    m.completed_cancelled.increment(1);
                }
                _ => {
                    m.query_error(error_category.unwrap_or("unknown"));
                    m.completed_error.increment(1);
                }
            }
        });
        query_ended(entity, total, rows, bytes);
    }

    /// The per-query histograms alone (the outcome was counted elsewhere, e.g. by a cancel).
    pub fn query_ended(entity: &str, total: Duration, rows: u64, bytes: u64) {
        let r = registry::registry();
        registry::with_entity(entity, |m| {
            r.observe(&m.total_ms, ms(total));
            r.observe(&m.query_rows, rows as f64);
            r.observe(&m.query_bytes, bytes as f64);
        });
    }

    /// A running query was cancelled (cancel call, or its stream freed early). Counts the
    /// query as ended with status "cancelled".
    pub fn query_cancelled(entity: &str) {
        registry::with_entity(entity, |m| {
            m.cancelled.increment(1);
            m.completed_cancelled.increment(1);
        });
    }

    /// The reader handed a chunk of `rows` rows (`bytes` bytes) to the consumer; building it
    /// from socket bytes took `build`. The rows count as buffered until [`chunk_taken`] (or a
    /// cancel or free) takes them out.
    pub fn chunk_built(entity: &str, rows: usize, bytes: usize, build: Duration) {
        let r = registry::registry();
        registry::with_entity(entity, |m| {
            m.rows_processed.increment(rows as u64);
            r.observe(&m.chunk_rows, rows as f64);
            r.observe(&m.chunk_ms, ms(build));
            m.chunk_bytes.set(bytes as f64);
            m.buffered_rows(rows as i64);
        });
    }

    /// The consumer took a chunk of `rows` rows from the channel; `waiting` rows are still
    /// waiting there.
    pub fn chunk_taken(entity: &str, rows: usize, waiting: usize) {
        let r = registry::registry();
        registry::with_entity(entity, |m| {
            m.buffered_rows(-(rows as i64));
            r.observe(&m.occupancy, waiting as f64);
        });
    }

    /// The consumer finished a chunk of `rows` rows, `filtered` of which the predicates
    /// rejected; `filter_time` is the time spent in predicates (`None` without predicates).
    pub fn chunk_consumed(entity: &str, rows: usize, filtered: u64, filter_time: Option<Duration>) {
        let _ = rows;
        if filtered == 0 && filter_time.is_none() {
            return;
        }
        let r = registry::registry();
        registry::with_entity(entity, |m| {
            if filtered > 0 {
                m.rows_filtered.increment(filtered);
            }
            if let Some(t) = filter_time {
                r.observe(&m.filter_ms, ms(t));
            }
        });
    }

    /// A chunk waited `waited` for room in the stream's budget (backpressure).
    pub fn channel_send_wait(entity: &str, waited: Duration) {
        let r = registry::registry();
        registry::with_entity(entity, |m| r.observe(&m.send_latency_ms, ms(waited)));
    }

    /// Rows buffered in a stream of `entity` went up (positive) or down (negative).
    pub fn buffered_rows(entity: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        registry::with_entity(entity, |m| m.buffered_rows(delta));
    }

    /// A running stream was paused.
    pub fn pause_started(entity: &str) {
        registry::with_entity(entity, |m| m.paused.increment(1));
    }

    /// A pause of `paused` ended.
    pub fn pause_ended(entity: &str, paused: Duration, how: PauseEnd) {
        let r = registry::registry();
        registry::with_entity(entity, |m| {
            match how {
                PauseEnd::Resumed => m.resumed.increment(1),
                PauseEnd::TimedOut => {
                    m.resumed.increment(1);
                    m.pause_timeouts.increment(1);
                }
                PauseEnd::StreamEnded => {}
            }
            r.observe(&m.pause_ms, ms(paused));
        });
    }

    /// A stream was stopped by its hard memory limit.
    pub fn memory_limit_exceeded(entity: &str) {
        registry::with_entity(entity, |m| m.memory_limit.increment(1));
    }

    /// Adaptive chunking changed the chunk size from `old` to `new` rows (rare: at most one
    /// change per interval); `direction` is "increase" or "decrease".
    pub fn adaptive_adjusted(entity: &str, direction: &str, old: usize, new: usize) {
        let (old, new) = (old.to_string(), new.to_string());
        registry::registry()
            .new_counter(
                "fraiseql_adaptive_chunk_adjusted_total",
                &[entity, direction, &old, &new],
            )
            .increment(1);
    }

    /// The server violated the protocol; `message_type` says how.
    pub fn protocol_error(message_type: &'static str) {
        registry::registry().count("fraiseql_protocol_errors_total", [message_type, ""], 1);
    }

    /// A new connection finished startup over `transport` ("tcp", "unix", "tls").
    pub fn connection_created(transport: &'static str) {
        registry::registry().count("fraiseql_connections_created_total", [transport, ""], 1);
    }

    /// A connection attempt failed in `phase` ("connect" or "auth"). Also counts the error in
    /// `fraiseql_errors_total`.
    pub fn connection_failed(phase: &'static str, error_category: &'static str) {
        let r = registry::registry();
        r.count("fraiseql_connections_failed_total", [phase, error_category], 1);
        r.count("fraiseql_errors_total", [error_category, phase], 1);
    }

    /// An authentication exchange with `mechanism` ended: `Ok`, or `Err(reason)`.
    pub fn auth_attempt(mechanism: &'static str, ok: Result<(), &'static str>, took: Duration) {
        let r = registry::registry();
        r.count("fraiseql_authentications_total", [mechanism, ""], 1);
        match ok {
            Ok(()) => r.count("fraiseql_authentications_successful_total", [mechanism, ""], 1),
            Err(reason) => r.count("fraiseql_authentications_failed_total", [mechanism, reason], 1),
        }
        r.observe_auth(mechanism, ms(took));
    }

    /// An error in `phase` ("query" or "stream"; connection errors are counted by
    /// [`connection_failed`]).
    pub fn error(error_category: &'static str, phase: &'static str) {
        registry::registry().count("fraiseql_errors_total", [error_category, phase], 1);
    }

    /// A feature that parses rows validated/deserialized `n` rows of a chunk.
    pub fn rows_deserialized(entity: &str, n: u64) {
        if n > 0 {
            registry::with_entity(entity, |m| m.rows_deserialized.increment(n));
        }
    }

    /// A row failed deserialization/validation for `reason` (a short stable label, e.g.
    /// "invalid_json", "not_an_object").
    pub fn deserialization_failed(entity: &str, reason: &str) {
        registry::with_entity(entity, |m| m.deserialization_failed(reason, 1));
    }

    /// A row's text was not valid JSON.
    pub fn json_parse_error(entity: &str) {
        registry::with_entity(entity, |m| m.json_parse_errors.increment(1));
    }

    /// Time spent parsing JSON for one chunk.
    pub fn json_parse(entity: &str, took: Duration) {
        let r = registry::registry();
        registry::with_entity(entity, |m| r.observe(&m.json_parse_ms, ms(took)));
    }

    /// Time spent validating/deserializing one chunk.
    pub fn deserialization_duration(entity: &str, took: Duration) {
        let r = registry::registry();
        registry::with_entity(entity, |m| r.observe(&m.deserialization_ms, ms(took)));
    }

    /// Rows received and rejected by the built-in JSON predicate inside the reader (they never
    /// reach a chunk): counted as processed and as filtered.
    pub fn reader_filtered(entity: &str, rows: u64) {
        registry::with_entity(entity, |m| {
            m.rows_processed.increment(rows);
            m.rows_filtered.increment(rows);
        });
    }
}

/// A connection attempt failed with `e`: phase "auth" for an authentication failure,
/// "connect" otherwise (unreachable, TLS, startup).
pub fn connection_error(e: &crate::Error) {
    let phase = if e.kind() == crate::ErrorKind::Auth {
        "auth"
    } else {
        "connect"
    };
    connection_failed(phase, e.kind().category());
}

/// The `mechanism` label for the server's answer to the startup message (used when the
/// exchange fails before it settles on a mechanism).
pub fn requested_mechanism(first: &postgres_protocol::message::backend::Message) -> &'static str {
    use postgres_protocol::message::backend::Message;
    match first {
        Message::AuthenticationOk => "trust",
        Message::AuthenticationCleartextPassword => "cleartext",
        Message::AuthenticationMd5Password(_) => "md5",
        Message::AuthenticationSasl(_) => "scram-sha-256",
        Message::ErrorResponse(_) => "none",
        _ => "unsupported",
    }
}

/// The `reason` label of a failed authentication.
pub fn auth_failure_reason(e: &crate::Error) -> &'static str {
    match e.sqlstate() {
        Some("28P01") => "invalid_password",
        Some("28000") => "rejected",
        Some(_) => "server_error",
        None => match e.kind() {
            crate::ErrorKind::Auth => {
                let m = e.message();
                if m.contains("no password was supplied") {
                    "no_password"
                } else if m.contains("SCRAM") {
                    "scram_failed"
                } else {
                    "unsupported_mechanism"
                }
            }
            crate::ErrorKind::Protocol => "protocol",
            crate::ErrorKind::Io => "io",
            _ => "other",
        },
    }
}
