//! Metric events. Every place in the engine where something that a metric names happens calls
//! one of these functions; this module turns them into the metrics of METRICS.md.
//!
//! NOTE: recording is not implemented yet (issue 4): the functions define where each event
//! happens and are no-ops for now.

use std::time::Duration;

use crate::stream::adaptive::Adjustment;

pub fn query_started(_entity: &str) {}
pub fn first_row(_entity: &str, _since_query: Duration) {}
/// A query ended: `status` is "success", "error" or "cancelled".
pub fn query_finished(
    _entity: &str,
    _status: &str,
    _error_category: Option<&str>,
    _total: Duration,
    _rows: u64,
    _bytes: u64,
) {
}
pub fn query_cancelled(_entity: &str) {}
pub fn chunk_built(_entity: &str, _rows: usize, _bytes: usize, _build: Duration) {}
pub fn chunk_consumed(_entity: &str, _rows: usize, _filtered: u64, _filter_time: Duration) {}
pub fn channel_send_wait(_entity: &str, _waited: Duration) {}
pub fn occupancy(_entity: &str, _rows: usize) {}
pub fn buffered_rows(_entity: &str, _delta: i64) {}
pub fn pause_started(_entity: &str) {}
pub fn pause_ended(_entity: &str, _paused: Duration, _by_timeout: bool) {}
pub fn memory_limit_exceeded(_entity: &str) {}
pub fn adaptive_adjusted(_entity: &str, _adj: Adjustment) {}
pub fn protocol_error(_message_type: &str) {}
pub fn connection_created(_transport: &str) {}
pub fn connection_failed(_phase: &str, _error_category: &str) {}
pub fn auth_attempt(_mechanism: &str, _ok: Result<(), &str>, _took: Duration) {}
pub fn error(_error_category: &str, _phase: &str) {}
/// A feature that parses rows validated/deserialized `n` rows of a chunk.
pub fn rows_deserialized(_entity: &str, _n: u64) {}
/// A row failed deserialization/validation for `reason` (a short stable label).
pub fn deserialization_failed(_entity: &str, _reason: &str) {}
/// A row's text was not valid JSON.
pub fn json_parse_error(_entity: &str) {}
/// Time spent parsing JSON for one chunk.
pub fn json_parse(_entity: &str, _took: Duration) {}
/// Time spent validating/deserializing one chunk.
pub fn deserialization_duration(_entity: &str, _took: Duration) {}
/// Rows received and rejected by the built-in JSON predicate inside the reader (they never
/// reach a chunk): counted as processed and as filtered.
pub fn reader_filtered(_entity: &str, _rows: u64) {}
