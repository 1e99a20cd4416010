//! The stream's reader: one query's connection, its read buffer within the stream's memory
//! budget, and the framer that turns what is read into chunks for the consumer. The reader
//! does no I/O of its own choosing: the drivers (`super::driver`) decide who reads the
//! socket (the calling thread or a runtime task) and when; this module holds what they share:
//! the buffer management and read planning (`plan`), the hand-over of chunks to the channel
//! (`Outbox`), and the end of the stream (`Reader::finish`).
//!
//! The I/O-free parts, each unit-tested with bytes: [`plan`] (how much to read, into which
//! buffer), [`protocol`] (the messages other than rows, and the DataRow checks), [`framer`]
//! (bytes to chunks).

pub(crate) mod framer;
pub(crate) mod plan;
pub(crate) mod protocol;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod framing;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::chunk::Chunk;
use super::coalesce::{Coalescer, Timer};
use super::place::Place;
use super::shared::{Shared, StreamState, Terminal};
use crate::connection::pool::Pool;
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use framer::{ChunkSink, Flow, Framer, Made};
use plan::{plan_read, Pending, ReadPlan, MIN_READ, READ_SIZE};

/// Read buffers handed over, kept to be reused once their chunks are consumed.
const MAX_SPARES: usize = 2;

/// What the executing thread learns once the server has described the result (or refused).
pub(crate) type StartResult = Result<()>;

pub(crate) struct Reader {
    pub(in crate::stream) conn: Connection,
    pub(in crate::stream) shared: Arc<Shared>,
    pub(in crate::stream) pool: Arc<Pool>,
    pub(in crate::stream) framer: Framer,
    /// Where the chunks go.
    pub(in crate::stream) out: Outbox,
    /// Read buffers of `READ_SIZE` handed over (their chunks may still be alive), to be
    /// reused: see [`Reader::make_room`].
    spares: Vec<(usize, BytesMut)>,
    /// The read buffer is a `READ_SIZE` buffer (one that may be recycled).
    buf_block: usize,
    /// When to wait before a read so that it takes several packets (see [`super::coalesce`]).
    pub(in crate::stream) coalesce: Coalescer,
    /// Its timer, created at the first wait (a runtime task's linger).
    pub(in crate::stream) timer: Option<Timer>,
}

/// The hand-over of chunks to the stream's channel: counters, memory accounting, the
/// consumer's wake-up.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    pub(in crate::stream) query_sent: Instant,
    /// When the first bytes of the chunk being built were read.
    pub(in crate::stream) chunk_started: Option<Instant>,
    saw_first_row: bool,
    /// A chunk was queued for a waiting consumer without waking it (see the end of
    /// [`Outbox::hand_over`]); the wake is done before the reader waits for anything.
    pub(in crate::stream) wake_pending: bool,
    /// The socket is read on the consumer's (calling) thread: the chunks made are the
    /// consumer's own read, not rows read ahead for it (see [`super::shared::Inner::waiting_rows`]).
    pub(in crate::stream) consumer_reads: bool,
}

impl Reader {
    pub(crate) fn new(mut conn: Connection, shared: Arc<Shared>, pool: Arc<Pool>) -> Reader {
        // A pooled connection's buffer may have grown under another stream's (larger) budget;
        // this stream starts from an empty one so only its own budget applies.
        if conn.buf.is_empty() {
            conn.buf = BytesMut::new();
        }
        Reader {
            coalesce: Coalescer::new(shared.options.read_coalesce),
            framer: Framer::new(
                &shared.entity,
                shared.options.memory,
                shared.json_filters.clone(),
            ),
            out: Outbox {
                shared: shared.clone(),
                query_sent: Instant::now(),
                chunk_started: None,
                saw_first_row: false,
                wake_pending: false,
                consumer_reads: false,
            },
            conn,
            shared,
            pool,
            spares: Vec::new(),
            buf_block: 0,
            timer: None,
        }
    }

    /// Frame what the read buffer holds (see [`Framer::process`]) at the stream's chunk size
    /// now.
    #[inline]
    pub(in crate::stream) fn process_buffer(&mut self) -> Result<Flow> {
        let chunk_size = self.shared.chunk_size.load(Ordering::Relaxed);
        let flow = self
            .framer
            .process(&mut self.conn.buf, chunk_size, &mut self.out);
        if self.framer.replaced_buffer {
            self.framer.replaced_buffer = false;
            self.buf_block = 0;
        }
        flow
    }

    /// Parse what the buffer holds of the answer up to the RowDescription: `Ok(true)` once
    /// the result is described (and has the right shape), `Ok(false)` when more is needed.
    pub(in crate::stream) fn parse_start(&mut self) -> Result<bool> {
        while let Some(msg) = self.conn.parse_message()? {
            if self.framer.protocol.at_start(msg)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Hand the rows framed so far over (before an error, which comes after them).
    pub(in crate::stream) fn emit_chunk(&mut self) {
        self.framer.emit(&mut self.conn.buf, &mut self.out);
    }

    /// Record a read of `n` bytes out of `max` allowed (for the coalescing and the chunk's
    /// build time). `n == 0` is the end of the connection.
    pub(in crate::stream) fn after_read(&mut self, n: usize, max: usize) -> Result<()> {
        self.coalesce.after_read(n, max, Instant::now());
        if n == 0 {
            return Err(self.closed_error());
        }
        if self.out.chunk_started.is_none() {
            self.out.chunk_started = Some(Instant::now());
        }
        Ok(())
    }

    /// How long to let packets gather before waiting for the socket (see
    /// [`super::coalesce`]), for both drivers: only when the consumer is blocked waiting for
    /// rows (`consumer_waits`: the reader keeps up with the server). `None`: wait at once.
    pub(in crate::stream) fn linger(&self, consumer_waits: bool) -> Option<Duration> {
        self.coalesce.linger().filter(|_| consumer_waits)
    }

    /// What the stream's reader holds: its read buffer (all of its capacity) and the row
    /// table of the chunk being built.
    pub(in crate::stream) fn footprint(&self) -> usize {
        self.conn.buf.capacity() + self.framer.table_bytes()
    }

    /// Give the read buffer (which holds only the unparsed tail: everything before it went
    /// out in chunks) room for at least `want` more bytes, its capacity at most `limit`.
    ///
    /// Buffers are recycled: fresh memory costs a page fault per 4 KiB, which was a third of
    /// the client's CPU time when every read got a new buffer. Normal reads use buffers of
    /// exactly `READ_SIZE` bytes, so that one whose chunks have all been consumed serves the
    /// next read; other sizes (a large pending row, a tight budget) are allocated exactly, as
    /// the budget planned, and reused the same way when they fit (rows of similar sizes).
    fn make_room(&mut self, want: usize, limit: usize) {
        let buf = &mut self.conn.buf;
        let need = buf.len() + want;
        let fits = |block: usize| block >= need && block <= limit;
        if fits(self.buf_block) && buf.try_reclaim(want) {
            return;
        }
        // A buffer whose chunks are all gone and whose size fits this read.
        let mut next = None;
        if let Some(i) = self
            .spares
            .iter_mut()
            .position(|(block, b)| fits(*block) && b.try_reclaim(*block))
        {
            next = Some(self.spares.swap_remove(i));
        }
        let (block, mut next) = next.unwrap_or_else(|| {
            let block = if need <= READ_SIZE && READ_SIZE <= limit {
                READ_SIZE
            } else {
                limit.max(need)
            };
            (block, BytesMut::with_capacity(block))
        });
        next.extend_from_slice(buf);
        let mut old = std::mem::replace(buf, next);
        // Keep buffers of at most the budget (a large row's buffer serves the next large row).
        if self.buf_block > 0 && self.buf_block <= self.shared.options.memory.bytes {
            old.clear();
            if self.spares.len() >= MAX_SPARES {
                self.spares.remove(0);
            }
            self.spares.push((self.buf_block, old));
        }
        self.buf_block = block;
    }

    /// Give the read buffer the capacity `plan` asks for (see [`plan_read`]) and return how
    /// many bytes to read at most.
    pub(in crate::stream) fn apply_plan(&mut self, plan: ReadPlan) -> usize {
        if let Some(cap) = plan.capacity {
            // No doubling: the budget was checked for this capacity. The unparsed tail moves
            // over; chunks keep the old buffer alive until consumed. The rest of a large
            // message gets all its room at once; a normal read may read a little less.
            let room = cap - self.conn.buf.len();
            let want = if room > READ_SIZE {
                room
            } else {
                room.min(MIN_READ)
            };
            self.make_room(want, cap);
            let reader = self.footprint();
            let mut g = self.shared.lock();
            g.reader_bytes = reader;
            let held = g.held_total();
            if held > g.peak_bytes {
                g.peak_bytes = held;
            }
        }
        let buf = &self.conn.buf;
        plan.max.min(buf.capacity() - buf.len()).max(1)
    }

    /// The read the budget allows now, without waiting (`None`: no room, or paused or
    /// cancelled: the reader task will wait for that).
    pub(in crate::stream) fn plan_now(&mut self, need: Option<Pending>) -> Option<ReadPlan> {
        let budget = self.shared.options.memory.bytes;
        let mut g = self.shared.lock();
        g.reader_bytes = self.footprint();
        let held = g.held_total();
        if held > g.peak_bytes {
            g.peak_bytes = held;
        }
        if g.state == StreamState::Cancelled
            || g.pause_started.is_some()
            || g.queued_bytes >= self.shared.options.read_ahead
        {
            return None;
        }
        let free = budget.saturating_sub(g.held_total());
        let len = self.conn.buf.len();
        let spare = self.conn.buf.capacity() - len;
        plan_read(budget, free, spare, len, need)
    }

    /// The error of a failed socket read. A TLS connection that ended without a close_notify
    /// (the server or a proxy killed) is reported as a plain socket's end is.
    pub(in crate::stream) fn read_failed(&self, e: &std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.closed_error()
        } else {
            Error::io("could not read from the server", e)
        }
    }

    /// The error for a connection the server closed in the middle of the stream.
    pub(in crate::stream) fn closed_error(&self) -> Error {
        Error::new(
            ErrorKind::Io,
            format!(
                "the server closed the connection unexpectedly after {} rows",
                self.shared.lock().rows_received + self.framer.rows_in_progress() as u64
            ),
        )
    }

    /// Deliver the outcome after the last row and give the connection back when it is clean.
    pub(in crate::stream) fn finish(self, outcome: Result<()>) {
        let Reader {
            mut conn,
            shared,
            pool,
            mut framer,
            out,
            ..
        } = self;
        let query_sent = out.query_sent;
        let in_transaction = framer.protocol.in_transaction;
        let result = framer.protocol.outcome(outcome);
        let (status, category) = match &result {
            Ok(()) => ("success", None),
            Err(e) if e.kind() == ErrorKind::Cancelled => ("cancelled", None),
            Err(e) => ("error", Some(e.kind().category())),
        };
        let schema_error = matches!(&result, Err(e) if e.kind() == ErrorKind::Schema);
        // Bytes after ReadyForQuery are out of turn (the server has nothing to say between
        // queries): such a connection is dropped, never read by the next query.
        let reusable = conn.buf.is_empty()
            && !in_transaction
            && match &result {
                Ok(()) => true,
                // The server reported an error and then ReadyForQuery: the session is clean.
                Err(e) => e.kind() == ErrorKind::Server,
            };
        let mut g = shared.lock();
        g.ended_at = Some(Instant::now());
        g.place = Place::Ended;
        g.reader_bytes = 0;
        let was_cancelled = g.state == StreamState::Cancelled;
        // A terminal set meanwhile by cancel or shutdown is what the consumer gets.
        if !was_cancelled && g.terminal.is_none() {
            if g.pause_started.is_some() {
                shared.end_pause_at_end(&mut g);
            }
            g.state = match &result {
                Ok(()) => StreamState::Completed,
                Err(e) if e.kind() == ErrorKind::Cancelled => StreamState::Cancelled,
                Err(_) => StreamState::Failed,
            };
            g.terminal = Some(match result {
                Ok(()) => Terminal::Done,
                Err(e) => Terminal::Failed(e),
            });
        }
        // A cancelled stream's buffered rows are dropped, including a chunk that was queued
        // after the cancel (the consumer may be gone already).
        let (dropped, dropped_rows) = if was_cancelled {
            g.drain_queue()
        } else {
            (Vec::new(), 0)
        };
        // Recorded before the consumer can see the end, so that a dump taken after it is exact.
        let (rows, bytes, total) = (g.rows_received, g.bytes_received, query_sent.elapsed());
        metrics::buffered_rows(&shared.entity, -(dropped_rows as i64));
        if !shared.query_metrics {
            // A part of a parallel stream: counted once by the parallel stream.
        } else if was_cancelled {
            // Counted as cancelled by the cancel call.
            metrics::query_ended(&shared.entity, total, rows, bytes);
        } else {
            if let Some(category) = category {
                metrics::error(category, "stream");
            }
            metrics::query_finished(&shared.entity, status, category, total, rows, bytes);
        }
        // A cancelled stream's connection is never reused: a late CancelRequest could hit the
        // next query on it. The connection is back before the consumer can see the end, so
        // that the next stream started right after `Done` reuses it.
        if reusable && !was_cancelled {
            // An idle connection holds no buffer memory.
            conn.buf = BytesMut::new();
            pool.put(conn);
        } else if schema_error && !was_cancelled {
            // Described only after `execute` returned, with the wrong shape: the rows that
            // follow are unwanted, as when `execute` refuses.
            crate::runtime::spawn_detached(abandon(conn));
        }
        shared.wake_consumer(&mut g);
        drop(g);
        drop(dropped);
    }
}

impl ChunkSink for Outbox {
    /// Queue a chunk (a split of the read buffer, no copy) for the consumer, with the
    /// stream's counters, and wake the consumer as its flow needs.
    fn hand_over(&mut self, made: Made, buf: &BytesMut) {
        let Made {
            chunk,
            data_bytes,
            rejected,
            rejected_bytes,
        } = made;
        let shared = &*self.shared;
        // The read buffer's capacity: the row table of the chunk being built was taken.
        let reader_bytes = buf.capacity();
        let Some(chunk) = chunk else {
            let mut g = shared.lock();
            g.rows_received += rejected;
            g.bytes_received += rejected_bytes;
            shared.rows_filtered.fetch_add(rejected, Ordering::Relaxed);
            g.reader_bytes = reader_bytes;
            return;
        };
        self.queue(chunk, data_bytes, rejected, rejected_bytes, reader_bytes);
    }
}

impl Outbox {
    fn queue(
        &mut self,
        chunk: Chunk,
        data_bytes: u64,
        rejected: u64,
        rejected_bytes: u64,
        reader_bytes: usize,
    ) {
        let shared = &*self.shared;
        let n = chunk.len();
        let chunk_bytes = chunk.bytes;
        let now = Instant::now();
        let build = self
            .chunk_started
            .take()
            .map(|t| now - t)
            .unwrap_or_default();
        if !self.saw_first_row {
            self.saw_first_row = true;
            metrics::first_row(&shared.entity, now - self.query_sent);
        }
        metrics::chunk_built(&shared.entity, n, chunk_bytes, build);
        let mut g = shared.lock();
        g.queue.push_back(chunk);
        g.queued_rows += n;
        if self.consumer_reads {
            g.consumer_read_rows += n;
        }
        g.queued_bytes += chunk_bytes;
        g.rows_received += n as u64 + rejected;
        g.bytes_received += data_bytes + rejected_bytes;
        if rejected > 0 {
            // Under the lock with `rows_received`, so snapshots stay consistent.
            shared.rows_filtered.fetch_add(rejected, Ordering::Relaxed);
        }
        g.chunks_received += 1;
        g.reader_bytes = reader_bytes;
        if g.first_row_at.is_none() {
            g.first_row_at = Some(now);
        }
        let held = g.held_total();
        if held > g.peak_bytes {
            g.peak_bytes = held;
        }
        if held >= shared.options.memory.warn_bytes() {
            if g.warn_armed {
                g.warn_armed = false;
                g.memory_warnings += 1;
                crate::log::warn(format!(
                    "stream on {}: buffered {} bytes, above the warning threshold of {} bytes",
                    shared.entity,
                    held,
                    shared.options.memory.warn_bytes()
                ));
            }
        } else {
            g.warn_armed = true;
        }
        // A consumer blocked waiting for rows is woken for the first chunk, then once a
        // quarter of the budget is queued; in between the wake is deferred until the reader
        // is about to wait (socket empty, budget full, pause) or ends. A consumer faster than
        // the socket then takes several chunks per wake-up instead of sleeping and waking
        // for each one (a futex wake and two context switches per chunk). A consumer that
        // waits on the event fd (an event loop; a parallel stream's merge, for each part)
        // is waiting when the fd is not armed: it drained it on finding nothing.
        let waiting = g.consumer_waiting || (!g.fd_armed && shared.has_event_fd());
        if waiting && g.chunks_received > 1 && g.queued_bytes < shared.options.queue_limit() / 4 {
            self.wake_pending = true;
        } else {
            self.wake_pending = false;
            shared.wake_consumer(&mut g);
        }
    }

    /// Do a deferred wake of the consumer (see the end of [`Outbox::queue`]); returns
    /// whether there was one (the consumer was blocked waiting for these rows).
    pub(in crate::stream) fn wake_deferred(&mut self) -> bool {
        if !self.wake_pending {
            return false;
        }
        self.wake_pending = false;
        let mut g = self.shared.lock();
        self.shared.wake_consumer(&mut g);
        true
    }
}

/// A result of the wrong shape: the rows that follow are unwanted. The connection (its
/// session now mid-query) is dropped, and the server told to stop the query with a
/// CancelRequest on a new connection.
pub(in crate::stream) async fn abandon(conn: Connection) {
    let token = conn.cancel_token().clone();
    drop(conn);
    let _ = token.send().await;
}
