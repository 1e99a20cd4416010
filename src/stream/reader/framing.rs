//! The reader's framing without a socket, for the fuzz targets (`fuzz/`, through
//! [`crate::fuzzing`]) and their regression tests: `input` (what the server sends after the
//! query) is fed to [`Reader::process_buffer`] through the reader's own read planning, at
//! most `piece()` bytes per read, with a consumer that takes every chunk at once.

use std::sync::Arc;

use super::framer::Flow;
use super::Reader;
use crate::connection::pool::Pool;
use crate::connection::Connection;
use crate::error::ErrorKind;
use crate::stream::chunk::NULL_ROW;
use crate::stream::options::{MemoryLimits, StreamOptions};
use crate::stream::shared::Shared;
use crate::stream::RowPredicate;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// ReadyForQuery after CommandComplete.
    Done,
    /// The stream failed with this kind.
    Failed(ErrorKind),
    /// The input ended first (the connection would have been closed).
    Exhausted,
}

/// The rows delivered (copied out) and how the stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub rows: Vec<Vec<u8>>,
    pub end: End,
}

/// Run the reader over `input` with a budget of `budget` bytes, chunks of `chunk_size`
/// rows and the built-in predicate `filter`. Panics when an invariant breaks: a read is
/// always possible once the consumer took everything (never a wait: see `plan_read`), the
/// reader holds no more than the budget except while it reads a message other than a row
/// whole, and every row handed over is followed by a NUL.
pub fn run(
    input: &[u8],
    budget: usize,
    chunk_size: usize,
    filter: Option<Arc<dyn RowPredicate>>,
    mut piece: impl FnMut() -> usize,
) -> Outcome {
    let options = StreamOptions {
        chunk_size,
        adaptive: None,
        memory: MemoryLimits::new(budget, 0.8, 1.0).expect("a valid budget"),
        ..StreamOptions::default()
    };
    let conn = Connection::without_socket();
    let token = conn.cancel_token().clone();
    let shared = Arc::new(
        Shared::new("fuzz".into(), options, token).with_json_filters(filter.into_iter().collect()),
    );
    let mut r = Reader::new(conn, shared.clone(), Arc::new(Pool::default()));
    let mut rows = Vec::new();
    let mut pos = 0;
    let end = loop {
        let flow = r.process_buffer();
        let need = match flow {
            Ok(Flow::Finished) => {
                break match (&r.framer.protocol.error, r.framer.protocol.command_complete) {
                    (Some(e), _) => End::Failed(e.kind()),
                    (None, true) => End::Done,
                    (None, false) => End::Failed(ErrorKind::Protocol),
                }
            }
            Err(e) => {
                r.emit_chunk();
                break End::Failed(e.kind());
            }
            Ok(Flow::NeedMore(need)) => need,
        };
        take_rows(&shared, &mut rows);
        if pos == input.len() {
            break End::Exhausted;
        }
        let plan = r.plan_now(need).unwrap_or_else(|| {
            panic!(
                "no read possible with an empty queue: budget {budget}, buffer {} of {}, \
                 pending {need:?}, footprint {}, held {}",
                r.conn.buf.len(),
                r.conn.buf.capacity(),
                r.footprint(),
                shared.lock().held_total()
            )
        });
        let max = r.apply_plan(plan);
        let whole_message = need.is_some_and(|p| !p.row);
        assert!(
            whole_message || r.footprint() <= budget,
            "the reader holds {} bytes, over the budget of {budget} ({plan:?}, {need:?})",
            r.footprint()
        );
        let spare = r.conn.buf.capacity() - r.conn.buf.len();
        assert!(max <= spare, "a read of {max} into {spare} spare bytes");
        let n = max.min(piece().max(1)).min(input.len() - pos);
        r.conn.buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
    };
    take_rows(&shared, &mut rows);
    Outcome { rows, end }
}

/// What the consumer takes: every queued chunk's rows.
fn take_rows(shared: &Shared, rows: &mut Vec<Vec<u8>>) {
    let mut g = shared.lock();
    while let Some(chunk) = g.queue.pop_front() {
        g.queued_rows -= chunk.len();
        g.queued_bytes -= chunk.bytes;
        for i in 0..chunk.len() {
            let (off, len) = chunk.rows[i];
            if len != NULL_ROW {
                let end = off as usize + len as usize;
                assert_eq!(
                    chunk.buf[end], 0,
                    "row {i} of a chunk is not NUL-terminated"
                );
            }
            rows.push(chunk.row(i).to_vec());
        }
    }
}
