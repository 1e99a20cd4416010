//! The reader task: owns the connection for one query, reads the socket in large reads, splits
//! DataRows out of the read buffer without copying them, and hands them to the consumer in
//! chunks through the byte-bounded channel in [`super::shared`].
//!
//! Flow control lives here: the task reads the socket only while the stream holds less than
//! its memory budget and is not paused. Otherwise it does not read at all, so the kernel socket
//! buffers fill and the server blocks in send (TCP backpressure).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use tokio::io::AsyncReadExt;

use super::chunk::{terminate_rows, Chunk, NULL_ROW};
use super::coalesce::{Coalescer, Timer};
use super::shared::{Inner, Shared, StreamState, Terminal};
use crate::connection::pool::Pool;
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result, ServerError};
use crate::metrics;
use crate::protocol::Phase;

/// How long `run_inline` waits on the caller's thread for the rest of a small result: as
/// long as the description took, within these bounds.
const INLINE_GRACE_MIN: Duration = Duration::from_micros(200);
const INLINE_GRACE: Duration = Duration::from_millis(1);
/// How long of that wait `run_inline` spins instead of sleeping (see
/// `Connection::read_more_within`).
const INLINE_SPIN: Duration = Duration::from_micros(50);
/// How much of a result `run_inline` reads on the caller's thread at most.
const INLINE_BYTES: usize = 64 * 1024;
/// Largest single socket read.
pub(crate) const READ_SIZE: usize = 256 * 1024;
/// Do not bother reading into less free budget than this (unless the budget is smaller).
const MIN_READ: usize = 32 * 1024;
/// Granularity of a large row's buffer (see `plan_read`).
const LARGE_BLOCK: usize = 64 * 1024;
/// Read buffers handed over, kept to be reused once their chunks are consumed.
const MAX_SPARES: usize = 2;
/// Bytes of one row-table entry (`(offset, len)`).
pub(crate) const ROW_REF: usize = std::mem::size_of::<(u32, u32)>();
/// The smallest DataRow message: tag, length, column count, column length.
const MIN_DATA_ROW: usize = 11;
/// A row table's first allocation (4 entries) that any read may cause.
const TABLE_SLACK: usize = 4 * ROW_REF;

/// A message the buffer holds only the beginning of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Its total size in bytes.
    total: usize,
    /// Whether it is a DataRow (rows are bounded by the budget; other messages are read whole).
    row: bool,
}

/// How the next socket read is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Most bytes to read.
    max: usize,
    /// First move the unparsed bytes to a new buffer of exactly this capacity.
    capacity: Option<usize>,
}

/// Budget cost of reading `r` bytes besides the bytes themselves: the row-table entries they
/// can produce at worst (one per smallest DataRow, twice that while the table doubles), or
/// one entry when they are the rest of a single large message.
fn table_cost(r: usize, one_message: bool) -> usize {
    if one_message {
        TABLE_SLACK
    } else {
        2 * ROW_REF * (r / MIN_DATA_ROW + 1) + TABLE_SLACK
    }
}

/// Largest `r` with `r + table_cost(r) <= room`.
fn max_read(room: usize, one_message: bool) -> usize {
    if one_message {
        room.saturating_sub(TABLE_SLACK)
    } else {
        room.saturating_sub(TABLE_SLACK + 2 * ROW_REF) * MIN_DATA_ROW / (MIN_DATA_ROW + 2 * ROW_REF)
    }
}

/// Decide the next read so that what the stream holds stays within `budget`, counting the
/// read buffer's whole capacity and the worst-case row tables. `free` is the budget left now
/// (the buffer's capacity already counted), `spare`/`len` the buffer's free and used bytes,
/// `pending` the message the buffer ends with. `None`: wait for the consumer to free room.
///
/// * The buffer's spare capacity is used first (it is already counted; only row tables cost).
/// * Otherwise a new buffer of exactly `len + extra` bytes replaces it (the old one's spare
///   is released, so the cost is `extra - spare` plus tables). A large pending row gets room
///   for all of its remaining bytes at once when it fits.
/// * A pending message that is not a row (an error, a notice) is read whole even beyond the
///   budget: the stream cannot go on without it, and nothing the consumer frees can make
///   room for it (the read buffer holding its beginning may be the whole budget). Its header
///   was checked against [`crate::protocol::MAX_MESSAGE`], which bounds it instead. So a
///   non-row pending message always gets a plan: never a wait.
pub(crate) fn plan_read(
    budget: usize,
    free: usize,
    spare: usize,
    len: usize,
    pending: Option<Pending>,
) -> Option<ReadPlan> {
    if let Some(plan) = plan_within_budget(budget, free, spare, len, pending) {
        return Some(plan);
    }
    // Exactly the rest of the pending message: such a read completes at most that one
    // message, so it costs one row-table entry, not one per 11 bytes.
    let p = pending?;
    let rest = p.total.checked_sub(len).filter(|r| *r > 0)?;
    let plan = ReadPlan {
        max: rest,
        capacity: (spare < rest).then_some(len + rest),
    };
    if !p.row {
        return Some(plan);
    }
    // A row within the budget. Once the consumer has taken everything this always fits:
    // the row is at most the budget less its table entry, and a planned buffer leaves room
    // for that entry.
    (rest.saturating_sub(spare) + TABLE_SLACK <= free).then_some(plan)
}

/// [`plan_read`] within the budget (`None`: wait for room).
fn plan_within_budget(
    budget: usize,
    free: usize,
    spare: usize,
    len: usize,
    pending: Option<Pending>,
) -> Option<ReadPlan> {
    let rest = pending.map_or(0, |p| p.total.saturating_sub(len));
    let one_message = rest >= MIN_READ;
    let want = if rest > 0 {
        rest.min(MIN_READ)
    } else {
        MIN_READ.min(budget / 4)
    };
    if let Some(p) = pending {
        if !p.row && rest > spare.max(free) {
            return Some(ReadPlan {
                max: rest,
                capacity: Some(len + rest),
            });
        }
    }
    if spare >= want {
        let mut r = spare.min(READ_SIZE);
        if one_message || spare == rest + 1 {
            // The rest of a large message; or the end of a large row whose buffer keeps one
            // byte for its NUL (see below): reading a byte of the next message there would
            // cost a move of the whole row.
            r = spare.min(rest);
        }
        if table_cost(r, one_message) > free {
            // Only the row tables need room: find the largest read they allow.
            let by_table = if one_message {
                0
            } else {
                free.saturating_sub(TABLE_SLACK + 2 * ROW_REF) / (2 * ROW_REF) * MIN_DATA_ROW
            };
            r = r.min(by_table);
        }
        return (r >= want).then_some(ReadPlan {
            max: r,
            capacity: None,
        });
    }
    let limit = max_read(free + spare, one_message);
    let extra = if one_message { rest } else { READ_SIZE }.min(limit);
    // The rest of a large row gets one byte more when the budget allows: the row then ends
    // the buffer with room for its NUL, and is handed over without being moved.
    let nul = usize::from(one_message && extra == rest && extra < limit);
    let mut capacity = len + extra + nul;
    if one_message {
        // A large row's buffer is rounded up to a multiple of LARGE_BLOCK within the budget:
        // rows of similar sizes then get buffers of one size, so a spare one (its row
        // consumed) serves the next row instead of fresh memory (page faults: a 1 MiB buffer
        // is 256 pages). Only the row's bytes are read into it.
        capacity = capacity
            .next_multiple_of(LARGE_BLOCK)
            .min(len + limit)
            .max(capacity);
    }
    (extra >= want).then_some(ReadPlan {
        max: extra,
        capacity: Some(capacity),
    })
}

const JSON_OID: u32 = 114;
const JSONB_OID: u32 = 3802;

/// What the executing thread learns once the server has described the result (or refused).
pub(crate) type StartResult = Result<()>;

fn server_error(body: postgres_protocol::message::backend::ErrorResponseBody) -> Error {
    match ServerError::from_fields(&mut body.fields()) {
        // Also 57014 (query_canceled): the caller's own cancel has already ended the stream
        // as `Cancelled` when the server's answer comes; a 57014 without it is the server's
        // doing (`statement_timeout`, `pg_cancel_backend`), a server error like any other.
        Ok(se) => Error::server(ErrorKind::Server, se),
        Err(e) => Error::protocol(format!("malformed ErrorResponse: {e}")),
    }
}

/// Check the RowDescription: exactly one column named `data` of type json or jsonb.
fn check_schema(body: &postgres_protocol::message::backend::RowDescriptionBody) -> Result<()> {
    use fallible_iterator::FallibleIterator;
    let fields: Vec<(String, u32, i16)> = body
        .fields()
        .map(|f| Ok((f.name().to_string(), f.type_oid(), f.format())))
        .collect()
        .map_err(|e| Error::protocol(format!("malformed RowDescription: {e}")))?;
    // The query asks for text results: a column in another format is a protocol violation.
    for (_, _, format) in &fields {
        crate::protocol::check_text_format(*format)?;
    }
    let fields: Vec<(String, u32)> = fields.into_iter().map(|(n, oid, _)| (n, oid)).collect();
    if let [(name, oid)] = fields.as_slice() {
        if name == "data" && (*oid == JSON_OID || *oid == JSONB_OID) {
            return Ok(());
        }
    }
    let described: Vec<String> = fields
        .iter()
        .map(|(n, oid)| format!("{n} ({})", type_name(*oid)))
        .collect();
    Err(Error::new(
        ErrorKind::Schema,
        format!(
            "the result must be exactly one column named \"data\" of type json or jsonb; got {} column(s): {}",
            fields.len(),
            if described.is_empty() { "none".to_string() } else { described.join(", ") }
        ),
    ))
}

fn no_columns() -> Error {
    Error::new(
        ErrorKind::Schema,
        "the statement returns no rows description (no columns)",
    )
}

fn type_name(oid: u32) -> String {
    match oid {
        JSON_OID => "json".into(),
        JSONB_OID => "jsonb".into(),
        16 => "bool".into(),
        20 => "int8".into(),
        21 => "int2".into(),
        23 => "int4".into(),
        25 => "text".into(),
        700 => "float4".into(),
        701 => "float8".into(),
        1043 => "varchar".into(),
        1700 => "numeric".into(),
        other => format!("type oid {other}"),
    }
}

/// The message of a row over the stream's row limit, stating the rule applied: the smaller of
/// `fail_ratio x budget` and the budget less one row-table entry's room (`TABLE_SLACK`).
fn row_limit_message(total: usize, max_row: usize, m: &super::options::MemoryLimits) -> String {
    let by_ratio = m.max_row_bytes();
    let rule = if max_row < by_ratio {
        format!(
            "the budget of {} bytes less {TABLE_SLACK} bytes for the row's table entry",
            m.bytes
        )
    } else {
        format!("{} bytes x fail ratio {}", m.bytes, m.fail_ratio)
    };
    format!("a row of {total} bytes exceeds the stream's row limit of {max_row} bytes ({rule})")
}

pub(crate) struct Reader {
    conn: Connection,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    /// Row references of the chunk being built: `(data offset, len)` into `conn.buf`.
    rows: Vec<(u32, u32)>,
    /// Parsed prefix of `conn.buf` (all of it belongs to the chunk being built).
    pos: usize,
    chunk_started: Option<Instant>,
    query_sent: Instant,
    saw_first_row: bool,
    /// The RowDescription was received and checked. A stream handed over before (see
    /// [`StreamOptions::describe_wait`]) gets it in `process_buffer`.
    ///
    /// [`StreamOptions::describe_wait`]: super::options::StreamOptions::describe_wait
    described: bool,
    command_complete: bool,
    error: Option<Error>,
    /// A chunk was queued for a waiting consumer without waking it (see the end of
    /// [`Reader::emit_chunk`]); the wake is done before the reader waits for anything.
    wake_pending: bool,
    /// Read buffers of `READ_SIZE` handed over (their chunks may still be alive), to be
    /// reused: see [`Reader::make_room`].
    spares: Vec<(usize, BytesMut)>,
    /// The read buffer is a `READ_SIZE` buffer (one that may be recycled).
    buf_block: usize,
    /// Rows of the chunk being built that the built-in JSON predicates rejected, and their
    /// JSON bytes: counted as received and filtered when the chunk is handed over.
    rejected: u64,
    rejected_bytes: u64,
    /// Built-in predicate work since the last chunk (for the parse metrics).
    parsed_rows: u64,
    parse_time: Duration,
    parse_failure_logged: bool,
    /// When to wait before a read so that it takes several packets (see [`super::coalesce`]).
    coalesce: Coalescer,
    /// Its timer, created at the first wait.
    timer: Option<Timer>,
}

/// Sets a terminal state if the task ends without one (runtime shutdown, panic), so that a
/// blocked consumer is always woken. Disarmed (`None`) when the task parks its reader.
struct TerminalGuard(Option<Arc<Shared>>);

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let Some(shared) = self.0.take() else {
            return;
        };
        let mut g = shared.lock();
        if g.terminal.is_none() && !g.state.is_terminal() {
            let err = if crate::runtime::is_shut_down() {
                Error::shutdown()
            } else {
                Error::new(
                    ErrorKind::Panic,
                    "the stream's reader task ended unexpectedly",
                )
            };
            let category = err.kind().category();
            let (rows, bytes) = (g.rows_received, g.bytes_received);
            let total = shared.started.elapsed();
            metrics::error(category, "stream");
            metrics::query_finished(&shared.entity, "error", Some(category), total, rows, bytes);
            g.terminal = Some(Terminal::Failed(err));
            g.reader_bytes = 0;
            shared.wake_consumer(&mut g);
        }
    }
}

enum Flow {
    /// Need more bytes from the socket, and the message the buffer ends with, if any.
    NeedMore(Option<Pending>),
    /// The query is over (ReadyForQuery received).
    Finished,
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
            conn,
            shared,
            pool,
            rows: Vec::new(),
            pos: 0,
            chunk_started: None,
            query_sent: Instant::now(),
            saw_first_row: false,
            described: false,
            command_complete: false,
            error: None,
            wake_pending: false,
            spares: Vec::new(),
            buf_block: 0,
            rejected: 0,
            rejected_bytes: 0,
            parsed_rows: 0,
            parse_time: Duration::ZERO,
            parse_failure_logged: false,
            timer: None,
        }
    }

    /// Send the query (`msg`: [`crate::query::Statement::encode`]) and read up to its
    /// RowDescription; report the outcome through `started`, then stream the rows until the end.
    pub(crate) async fn run(
        mut self,
        msg: Bytes,
        started: tokio::sync::oneshot::Sender<StartResult>,
    ) {
        let guard = TerminalGuard(Some(self.shared.clone()));
        if let Err(e) = self.start(&msg).await {
            self.finish_start_error(e, started).await;
            return;
        }
        // The rows that came with the description (a small result often arrives whole, up to
        // ReadyForQuery) are handed over, and such a query ended, before the caller is told:
        // its first `next` then finds them without another wake-up of either thread.
        let first = self.process_buffer();
        if let Ok(Flow::Finished) = first {
            // The caller learns the outcome from the stream; the connection is back in the
            // pool before `execute` returns, ready for the caller's next query.
            self.finish(Ok(()));
            let _ = started.send(Ok(()));
            return;
        }
        let _ = started.send(Ok(()));
        self.drive(first, guard).await;
    }

    /// Stream the rows as a task until the end, or until the consumer is waiting for rows
    /// and may read them itself (see [`Parked`]): the reader is then parked and the task ends.
    async fn drive(mut self, mut first: Result<Flow>, mut guard: TerminalGuard) {
        loop {
            match self.stream_rows(first).await {
                TaskEnd::Ended(outcome) => {
                    self.finish(outcome);
                    return;
                }
                TaskEnd::Park(need) => {
                    // Out of the runtime's epoll set: a socket left there wakes a runtime
                    // thread for nothing each time data arrives for the consumer to read.
                    if let Err(e) = self.conn.detach() {
                        self.finish(Err(e));
                        return;
                    }
                    let shared = self.shared.clone();
                    let mut g = shared.lock();
                    if shared.needs_task(&g) {
                        // Something came up meanwhile: go on as a task.
                        drop(g);
                        first = Ok(Flow::NeedMore(need));
                        continue;
                    }
                    guard.0 = None;
                    let watchdog = self.park(&mut g, need);
                    shared.wake_consumer(&mut g);
                    drop(g);
                    if watchdog {
                        tokio::spawn(watchdog_task(shared));
                    }
                    return;
                }
            }
        }
    }

    async fn start(&mut self, msg: &[u8]) -> Result<()> {
        self.query_sent = Instant::now();
        self.conn.send(msg).await?;
        let wait = self.shared.options.describe_wait;
        let describe = async {
            while !self.parse_start()? {
                self.conn.read_more().await?;
            }
            Ok(())
        };
        match wait {
            None => describe.await,
            // Not described in time: the stream goes on without (`process_buffer` checks
            // the description when it comes). Reads are cancel-safe: nothing is lost.
            Some(w) => tokio::time::timeout(w, describe).await.unwrap_or(Ok(())),
        }
    }

    /// A message of the answer before the result is described, as both `parse_start` (at the
    /// start) and `process_buffer` (a stream handed over undescribed) see them: the
    /// acknowledgements of Parse and Bind are skipped, the RowDescription is checked (see
    /// `take_description`), NoData means no column. Anything else is the caller's to handle.
    fn before_description(&mut self, msg: Message) -> Result<Undescribed> {
        match msg {
            Message::ParseComplete | Message::BindComplete => Ok(Undescribed::Skipped),
            Message::RowDescription(body) => {
                self.take_description(&body)?;
                Ok(Undescribed::Described)
            }
            Message::NoData => Err(no_columns()),
            other => Ok(Undescribed::Other(other)),
        }
    }

    /// Check the result's description (see `check_schema`) and mark the stream described:
    /// at the start (`parse_start`) or, for a stream handed over before the server described
    /// it, in `process_buffer`.
    fn take_description(
        &mut self,
        body: &postgres_protocol::message::backend::RowDescriptionBody,
    ) -> Result<()> {
        check_schema(body)?;
        self.described = true;
        Ok(())
    }

    /// Parse what the buffer holds of the answer up to the RowDescription: `Ok(true)` once
    /// the result is described (and has the right shape), `Ok(false)` when more is needed.
    fn parse_start(&mut self) -> Result<bool> {
        while let Some(msg) = self.conn.parse_message()? {
            let msg = match self.before_description(msg)? {
                Undescribed::Described => return Ok(true),
                Undescribed::Skipped => continue,
                Undescribed::Other(msg) => msg,
            };
            match msg {
                Message::NoticeResponse(body) => {
                    crate::protocol::notice(&body)?;
                }
                Message::ParameterStatus(_) => {}
                Message::ErrorResponse(body) => return Err(server_error(body)),
                _ => {
                    metrics::protocol_error("unexpected_before_rows");
                    return Err(Error::protocol(
                        "unexpected message from the server before the result description",
                    ));
                }
            }
        }
        Ok(false)
    }

    /// Start the query on the calling thread, as libpq does: send it, wait for the answer in
    /// poll(2), parse up to the RowDescription and hand over the rows that came with it. A
    /// result that ended there (a small query) is finished here, with no other thread
    /// involved; otherwise a reader task takes the connection over for the rest (also when
    /// the server has not answered within the stream's `describe_wait`). Only for plain
    /// sockets ([`Connection::is_plain`]). The outcome is what `run` reports through
    /// `started`; an `Io` error means the connection failed before any answer (the caller
    /// may retry on a new one).
    pub(crate) fn run_inline(mut self, msg: &[u8]) -> StartResult {
        self.query_sent = Instant::now();
        self.conn.send_blocking(msg)?;
        let deadline = self
            .shared
            .options
            .describe_wait
            .map(|w| self.query_sent + w);
        // A server that answered the last query within microseconds is spun for (the first
        // INLINE_SPIN of the wait): sleeping in poll(2) until then costs a wake-up of an idle
        // CPU, which on virtual machines takes longer than such an answer. One that took
        // longer is waited for in poll(2) at once, as libpq does, costing no CPU. A new
        // connection is judged by its answer to the startup message.
        let spin = match self.conn.answer_time {
            Some(t) if t > 2 * INLINE_SPIN => Duration::ZERO,
            _ => INLINE_SPIN,
        };
        let mut waited = false;
        let started = loop {
            match self.parse_start() {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // The answer cannot be there yet right after the send: poll(2) first, then read
            // (one syscall less than a read that finds nothing).
            let read = if waited || !spin.is_zero() {
                self.conn.read_more_within(left, spin, 8192)
            } else {
                self.conn.read_more_after_wait(left, 8192)
            };
            match read {
                Ok(true) if !waited => {
                    waited = true;
                    self.conn.answer_time = Some(self.query_sent.elapsed());
                }
                Ok(true) => {}
                // Not described in time: the reader task below takes over undescribed.
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = started {
            if e.kind() == ErrorKind::Io {
                return Err(e);
            }
            // Draining to ReadyForQuery or cancelling the unwanted rows: done by the
            // runtime as for any query (errors are not the path to make fast).
            let (tx, rx) = tokio::sync::oneshot::channel();
            crate::runtime::spawn_detached(self.finish_start_error(e.clone(), tx));
            return Err(rx.blocking_recv().ok().and_then(|r| r.err()).unwrap_or(e));
        }
        let mut first = self.process_buffer();
        // The description comes with the first rows, and the rest of a result larger than
        // one packet usually follows within about the time the first one took. Wait that
        // long (INLINE_GRACE_MIN..INLINE_GRACE) and for at most INLINE_BYTES here, rather
        // than hand a few rows to the reader task (two thread wake-ups). A slow query costs
        // `execute` that much more.
        let grace = self
            .query_sent
            .elapsed()
            .clamp(INLINE_GRACE_MIN, INLINE_GRACE);
        let deadline = Instant::now() + grace;
        let mut read = 0;
        while let (true, Ok(Flow::NeedMore(need))) = (self.described, &first) {
            let need = *need;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || read >= INLINE_BYTES {
                break;
            }
            // Within the stream's budget, as the reader task would read.
            let Some(plan) = self.plan_now(need) else {
                break;
            };
            let max = self.apply_plan(plan).min(INLINE_BYTES - read);
            let before = self.conn.buf.len();
            match self.conn.read_more_within(Some(left), INLINE_SPIN, max) {
                Ok(true) => {
                    read += self.conn.buf.len() - before;
                    first = self.process_buffer();
                }
                Ok(false) => break,
                // The end of the connection is reported with the rows received so far, as
                // on the other paths.
                Err(e) if crate::connection::is_closed(&e) => first = Err(self.closed_error()),
                Err(e) => first = Err(e),
            }
        }
        match first {
            Ok(Flow::Finished) => {
                self.finish(Ok(()));
                return Ok(());
            }
            Err(e) => {
                // Described, then failed: the stream reports it after the rows before it.
                self.emit_chunk();
                self.finish(Err(e));
                return Ok(());
            }
            Ok(Flow::NeedMore(_)) => {}
        }
        // The rest is read by the consumer on its own thread when it needs rows, as libpq
        // does (see `Parked`), until something needs a reader task.
        let need = match first {
            Ok(Flow::NeedMore(need)) => need,
            _ => unreachable!("handled above"),
        };
        let shared = self.shared.clone();
        let mut g = shared.lock();
        g.parkable = true;
        if shared.needs_task(&g) {
            drop(g);
            self.spawn_rest(Ok(Flow::NeedMore(need)));
            return Ok(());
        }
        let watchdog = self.park(&mut g, need);
        drop(g);
        if watchdog {
            crate::runtime::spawn_detached(watchdog_task(shared));
        }
        Ok(())
    }

    /// Park the reader in its stream (see [`Parked`]); lock held. Returns whether the caller
    /// must start a watchdog task for it (none runs yet).
    fn park(self, g: &mut Inner, need: Option<Pending>) -> bool {
        let watchdog = !g.watchdog;
        g.watchdog = true;
        g.parked = Some(Parked {
            reader: Box::new(self),
            need,
            since: Instant::now(),
        });
        watchdog
    }

    /// Run the rest of the stream in a reader task. If the task cannot run (shut down
    /// meanwhile), the guard dropped with it ends the stream with an error instead of
    /// leaving the consumer waiting.
    fn spawn_rest(self, first: Result<Flow>) {
        let guard = TerminalGuard(Some(self.shared.clone()));
        crate::runtime::spawn_detached(self.drive(first, guard));
    }

    /// The query failed before any row. A server error leaves the connection usable once
    /// ReadyForQuery arrives: report first, then drain and return it to the pool. A schema
    /// error means rows are coming that nobody wants: cancel the query and drop the connection.
    async fn finish_start_error(
        mut self,
        err: Error,
        started: tokio::sync::oneshot::Sender<StartResult>,
    ) {
        let kind = err.kind();
        {
            let mut g = self.shared.lock();
            g.state = StreamState::Failed;
            g.terminal = Some(Terminal::Failed(err.clone()));
            g.ended_at = Some(Instant::now());
        }
        match kind {
            ErrorKind::Server => {
                // Drain to ReadyForQuery (it follows at once: the server skips to Sync) and
                // give the connection back before reporting, so that the caller's next query
                // reuses it instead of opening another one.
                let drained = tokio::time::timeout(Duration::from_secs(10), async {
                    loop {
                        match self.conn.read_message().await {
                            Ok(Message::ReadyForQuery(_)) => return true,
                            Ok(_) => {}
                            Err(_) => return false,
                        }
                    }
                })
                .await;
                // Anything after ReadyForQuery is out of turn: such a connection is dropped
                // (see `Pool::take`).
                if let (Ok(true), true) = (drained, self.conn.buf.is_empty()) {
                    // An idle connection holds no buffer memory.
                    self.conn.buf = BytesMut::new();
                    self.pool.put(self.conn);
                }
                let _ = started.send(Err(err));
            }
            ErrorKind::Schema => {
                let _ = started.send(Err(err));
                abandon(self.conn).await;
            }
            _ => {
                let _ = started.send(Err(err));
            }
        }
    }

    /// Stream rows until ReadyForQuery, an error, a cancel, or the end of the connection; or
    /// until the reader may be parked (see [`Parked`]). `first` is the outcome of a
    /// `process_buffer` already done.
    async fn stream_rows(&mut self, first: Result<Flow>) -> TaskEnd {
        let mut flow = first;
        loop {
            let need = match flow {
                Ok(Flow::Finished) => return TaskEnd::Ended(Ok(())),
                Ok(Flow::NeedMore(n)) => n,
                Err(e) => {
                    // Rows parsed before a malformed message are complete: deliver them
                    // first, then the error (nothing received is dropped silently).
                    self.emit_chunk();
                    return TaskEnd::Ended(Err(e));
                }
            };
            let allowance = match self.wait_for_room(need).await {
                Ok(Some(plan)) => plan,
                Ok(None) => return TaskEnd::Park(need),
                Err(e) => return TaskEnd::Ended(Err(e)),
            };
            if let Err(e) = self.read_some(allowance).await {
                return TaskEnd::Ended(Err(e));
            }
            flow = self.process_buffer();
        }
    }

    /// Wait until the stream may read: not paused, not cancelled, and enough free budget.
    /// Returns how to read (see [`plan_read`]); `None` when the consumer waits for rows and
    /// nothing is queued: it reads them itself from now on (see [`Parked`]).
    async fn wait_for_room(&mut self, need: Option<Pending>) -> Result<Option<ReadPlan>> {
        let budget = self.shared.options.memory.bytes;
        let mut waited_since: Option<Instant> = None;
        loop {
            let wait: Option<Duration>;
            {
                let mut g = self.shared.lock();
                g.reader_bytes = self.footprint();
                let held = g.held_total();
                if held > g.peak_bytes {
                    g.peak_bytes = held;
                }
                if g.state == StreamState::Cancelled {
                    return Err(Error::cancelled());
                }
                if g.parkable && g.consumer_waiting && !self.shared.needs_task(&g) {
                    // The consumer caught up (what is queued was just handed over: it takes
                    // that first, woken by the park).
                    self.wake_pending = false;
                    if let Some(since) = waited_since {
                        metrics::channel_send_wait(&self.shared.entity, since.elapsed());
                    }
                    g.reader_waiting = false;
                    return Ok(None);
                }
                if let Some(started) = g.pause_started {
                    match g.pause_timeout {
                        Some(t) if started.elapsed() >= t => {
                            self.shared.end_pause(&mut g, true);
                            crate::log::debug(format!(
                                "stream on {}: pause timeout of {} ms expired, resuming",
                                self.shared.entity,
                                t.as_millis()
                            ));
                            continue;
                        }
                        Some(t) => wait = Some(t - started.elapsed()),
                        None => wait = None,
                    }
                    if self.wake_pending {
                        self.wake_pending = false;
                        self.shared.wake_consumer(&mut g);
                    }
                } else {
                    let free = budget.saturating_sub(held);
                    let len = self.conn.buf.len();
                    let spare = self.conn.buf.capacity() - len;
                    // Far enough ahead of the consumer: wait for it (see read_ahead).
                    let plan = if g.queued_bytes < self.shared.options.read_ahead {
                        plan_read(budget, free, spare, len, need)
                    } else {
                        None
                    };
                    if let Some(plan) = plan {
                        g.reader_waiting = false;
                        drop(g);
                        if let Some(since) = waited_since {
                            metrics::channel_send_wait(&self.shared.entity, since.elapsed());
                        }
                        return Ok(Some(plan));
                    }
                    g.reader_waiting = true;
                    if self.wake_pending {
                        self.wake_pending = false;
                        self.shared.wake_consumer(&mut g);
                    }
                    waited_since.get_or_insert_with(Instant::now);
                    wait = None;
                }
            }
            match wait {
                Some(d) => {
                    let _ = tokio::time::timeout(d, self.shared.reader_wake.notified()).await;
                }
                None => self.shared.reader_wake.notified().await,
            }
        }
    }

    /// What the stream's reader holds: its read buffer (all of its capacity) and the row
    /// table of the chunk being built.
    fn footprint(&self) -> usize {
        self.conn.buf.capacity() + self.rows.capacity() * ROW_REF
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
    fn apply_plan(&mut self, plan: ReadPlan) -> usize {
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
    fn plan_now(&mut self, need: Option<Pending>) -> Option<ReadPlan> {
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

    /// One socket read as `plan` says; returns early (without reading) when a pause, cancel
    /// or other control event arrives meanwhile.
    async fn read_some(&mut self, plan: ReadPlan) -> Result<()> {
        let max = self.apply_plan(plan);
        // Try the read once without waiting: only when the socket has nothing for us is a
        // deferred wake of the consumer done (rows never wait behind an idle socket).
        let mut got = self.read_now(max).await?;
        if got.is_none() {
            // The consumer is blocked waiting for these rows: it keeps up with the server.
            let starved = self.wake_pending;
            if self.wake_pending {
                self.wake_pending = false;
                let mut g = self.shared.lock();
                self.shared.wake_consumer(&mut g);
            }
            if let Some(d) = self.coalesce.linger().filter(|_| starved) {
                // A steady flow we keep up with: let a few packets gather (see
                // super::coalesce). A plain socket leaves the epoll set meanwhile, or every
                // packet would still wake a runtime thread. Without a timer (fd limit), the
                // packets are read as they come.
                if self.timer.is_none() {
                    self.timer = Timer::new().ok();
                }
                if let Some(timer) = &self.timer {
                    self.conn.detach()?;
                    tokio::select! {
                        biased;
                        _ = self.shared.reader_wake.notified() => return Ok(()),
                        r = timer.sleep(d) => if r.is_err() { self.timer = None },
                    }
                    got = self.read_now(max).await?;
                }
            }
        }
        let n = match got {
            Some(n) => n,
            None => {
                // Wait for the socket (attaching it again if it was detached).
                let buf = &mut self.conn.buf;
                let mut limited = (&mut self.conn.transport).take(max as u64);
                tokio::select! {
                    biased;
                    _ = self.shared.reader_wake.notified() => return Ok(()),
                    r = limited.read_buf(buf) => r.map_err(|e| self.read_failed(&e))?,
                }
            }
        };
        self.coalesce.after_read(n, max, Instant::now());
        if n == 0 {
            return Err(self.closed_error());
        }
        if self.chunk_started.is_none() {
            self.chunk_started = Some(Instant::now());
        }
        Ok(())
    }

    /// Read at most `max` bytes of what the socket has now, without waiting (`None`:
    /// nothing). A detached socket is read directly, leaving it out of the epoll set.
    async fn read_now(&mut self, max: usize) -> Result<Option<usize>> {
        if self.conn.is_detached() {
            return self.conn.read_now(max);
        }
        let buf = &mut self.conn.buf;
        let mut limited = (&mut self.conn.transport).take(max as u64);
        let mut read = std::pin::pin!(limited.read_buf(buf));
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(read.as_mut(), cx))
        })
        .await;
        match polled {
            std::task::Poll::Ready(r) => r.map(Some).map_err(|e| self.read_failed(&e)),
            std::task::Poll::Pending => Ok(None),
        }
    }

    /// Split every complete message in the buffer. DataRows are collected into the chunk
    /// being built, which is handed over when it reaches the chunk size or when the buffer has
    /// no further complete message: a row never waits for a chunk to fill.
    fn process_buffer(&mut self) -> Result<Flow> {
        let chunk_size = self.shared.chunk_size.load(Ordering::Relaxed).max(1);
        // A row must also fit beside its table entry.
        let max_row = self
            .shared
            .options
            .memory
            .max_row_bytes()
            .min(self.shared.options.memory.bytes - TABLE_SLACK);
        let plain = self.shared.json_filters.is_empty();
        loop {
            if plain && self.described {
                self.take_plain_rows(chunk_size, max_row);
                if self.rows.len() >= chunk_size {
                    self.emit_chunk();
                    continue;
                }
            }
            // One message at a time: whatever the loop above declined (another message, a
            // partial one, a NULL, a malformed or oversized row, predicates to run).
            let buf = &self.conn.buf[..];
            let avail = buf.len() - self.pos;
            let p = self.pos;
            // The length is checked before any more of the message is read: at least 4, and
            // for messages other than rows within the protocol's limits.
            let Some(header) = crate::protocol::header(&buf[p..], Phase::Session)? else {
                self.emit_chunk();
                return Ok(Flow::NeedMore(None));
            };
            let (tag, total) = (header.tag, header.total);
            let len = total - 1;
            if tag == b'D' && total > max_row {
                self.emit_chunk();
                metrics::memory_limit_exceeded(&self.shared.entity);
                return Err(Error::new(
                    ErrorKind::MemoryLimit,
                    row_limit_message(total, max_row, &self.shared.options.memory),
                ));
            }
            if avail < total {
                self.emit_chunk();
                return Ok(Flow::NeedMore(Some(Pending {
                    total,
                    row: tag == b'D',
                })));
            }
            if tag == b'D' {
                if !self.described {
                    metrics::protocol_error("unexpected_before_rows");
                    return Err(Error::protocol("DataRow before the result description"));
                }
                if len < 10 || buf[p + 5] != 0 || buf[p + 6] != 1 {
                    metrics::protocol_error("data_row");
                    return Err(Error::protocol(
                        "DataRow with a column count other than 1 after a one-column description",
                    ));
                }
                let col = i32::from_be_bytes([buf[p + 7], buf[p + 8], buf[p + 9], buf[p + 10]]);
                let row = match crate::protocol::data_row_field(col)? {
                    None if len == 10 => (0, NULL_ROW),
                    Some(n) if n as usize == len - 10 => ((p + 11) as u32, n),
                    _ => {
                        metrics::protocol_error("data_row");
                        return Err(Error::protocol(
                            "DataRow column length does not match the message length",
                        ));
                    }
                };
                self.pos += total;
                if !self.shared.json_filters.is_empty() && !self.json_accepts(row) {
                    // Rejected before the channel: its bytes go with the chunk's region (or
                    // are dropped at once when the chunk has no row yet).
                    self.rejected += 1;
                    if row.1 != NULL_ROW {
                        self.rejected_bytes += u64::from(row.1);
                    }
                    continue;
                }
                self.rows.push(row);
                if self.rows.len() >= chunk_size {
                    self.emit_chunk();
                }
                continue;
            }
            // Any other message: rows before it go out first, in order.
            self.emit_chunk();
            let msg = Message::parse(&mut self.conn.buf)
                .map_err(|e| {
                    metrics::protocol_error("malformed");
                    Error::protocol(format!("malformed message from the server: {e}"))
                })?
                .ok_or_else(|| Error::protocol("incomplete message after length check"))?;
            if total > READ_SIZE {
                // A message read whole beyond the normal reads (see `plan_read`): what
                // follows it moves to a buffer of its own, so that the large one is freed
                // with the message instead of staying behind the few bytes after it.
                self.conn.buf = BytesMut::from(&self.conn.buf[..]);
                self.buf_block = 0;
            }
            // A stream handed over before it was described (see
            // `StreamOptions::describe_wait`) first sees the start of the answer.
            let msg = if self.described {
                msg
            } else {
                match self.before_description(msg)? {
                    Undescribed::Other(msg) => msg,
                    Undescribed::Described | Undescribed::Skipped => continue,
                }
            };
            match msg {
                Message::CommandComplete(_) => self.command_complete = true,
                Message::ErrorResponse(body) => {
                    let e = server_error(body);
                    if e.kind() == ErrorKind::Protocol {
                        // Malformed: what follows cannot be trusted; end here.
                        return Err(e);
                    }
                    if self.error.is_none() {
                        self.error = Some(e);
                    }
                }
                Message::ReadyForQuery(_) => return Ok(Flow::Finished),
                Message::NoticeResponse(body) => {
                    let se = crate::protocol::notice(&body)?;
                    crate::log::debug(format!("server notice: {}", se.message));
                }
                Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
                Message::EmptyQueryResponse | Message::PortalSuspended => {}
                _ => {
                    metrics::protocol_error("unexpected_in_rows");
                    return Err(Error::protocol(
                        "unexpected message from the server while streaming rows",
                    ));
                }
            }
        }
    }

    /// The hot loop: take consecutive complete, well-formed one-column non-NULL DataRows
    /// within `max_row` bytes into the chunk being built, up to `chunk_size` rows, reading
    /// each 11-byte header once. Stops at anything else, which `process_buffer` handles
    /// message by message (so errors are reported exactly as before).
    #[inline]
    fn take_plain_rows(&mut self, chunk_size: usize, max_row: usize) {
        let buf = &self.conn.buf[..];
        let mut p = self.pos;
        let mut room = chunk_size.saturating_sub(self.rows.len());
        if self.rows.capacity() == 0 {
            // A new chunk's row table, allocated once at the size it can reach from what the
            // buffer holds (not grown by doubling from 4 entries, then shrunk): within what
            // `plan_read` counted for the tables of this read.
            // The first message's own length bounds it further: a large row followed by
            // nothing (its buffer is planned with room for one table entry) gets one entry,
            // not one per 11 bytes of its text.
            let avail = buf.len() - p;
            let first = buf.get(p + 1..p + 5).map_or(avail, |h| {
                (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize + 1).min(avail)
            });
            let fit = 1 + (avail - first) / MIN_DATA_ROW;
            self.rows.reserve_exact(room.min(fit));
        }
        while room > 0 {
            let Some(h) = buf.get(p..p + 11) else { break };
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            let col = i32::from_be_bytes([h[7], h[8], h[9], h[10]]);
            if h[0] != b'D'
                || h[5] != 0
                || h[6] != 1
                || col < 0
                || col as usize + 10 != len
                || len + 1 > max_row
                || buf.len() - p < len + 1
            {
                break;
            }
            self.rows.push(((p + 11) as u32, col as u32));
            p += len + 1;
            room -= 1;
        }
        self.pos = p;
    }

    /// Hand the rows collected so far to the consumer as one chunk (a split of the read
    /// buffer, no copy).
    fn emit_chunk(&mut self) {
        self.flush_parse_metrics();
        if self.rows.is_empty() {
            // A table reserved for rows that did not come (the buffer ended in a partial
            // message, or held another kind): freed, or its bytes would count against the
            // budget while the reader waits for a large row that needs them (a 40 KB row
            // in a 64 KiB budget then found no room, with nothing queued to free).
            if self.rows.capacity() > 0 {
                self.rows = Vec::new();
            }
            if self.pos > 0 {
                // Only rejected rows were parsed: drop their bytes now.
                let _ = self.conn.buf.split_to(self.pos);
                self.pos = 0;
            }
            if self.rejected > 0 {
                let (rejected, rejected_bytes) = self.take_rejected();
                let mut g = self.shared.lock();
                g.rows_received += rejected;
                g.bytes_received += rejected_bytes;
                self.shared
                    .rows_filtered
                    .fetch_add(rejected, Ordering::Relaxed);
                g.reader_bytes = self.footprint();
            }
            return;
        }
        let mut end = self.pos;
        let mut rows = std::mem::take(&mut self.rows);
        if rows.capacity() > 2 * rows.len() {
            // Sized for more rows than came (the chunk ended at a message of another kind or
            // at the end of the buffer): give the rest back before the chunk is queued.
            rows.shrink_to_fit();
        }
        // Nothing after the chunk in the buffer and room for a byte: the last row's NUL goes
        // there instead of moving the row (a 1 MiB row would be copied whole).
        if end == self.conn.buf.len() && self.conn.buf.capacity() > end {
            self.conn.buf.extend_from_slice(&[0]);
            end += 1;
        }
        terminate_rows(&mut self.conn.buf[..end], &mut rows);
        let region = self.conn.buf.split_to(end).freeze();
        let (rejected, rejected_bytes) = self.take_rejected();
        self.pos = 0;
        let n = rows.len();
        let data_bytes: u64 = rows
            .iter()
            .filter(|r| r.1 != NULL_ROW)
            .map(|r| r.1 as u64)
            .sum();
        let chunk = Chunk::new(region, rows);
        let chunk_bytes = chunk.bytes;
        let now = Instant::now();
        let build = self
            .chunk_started
            .take()
            .map(|t| now - t)
            .unwrap_or_default();
        if !self.saw_first_row {
            self.saw_first_row = true;
            metrics::first_row(&self.shared.entity, now - self.query_sent);
        }
        metrics::chunk_built(&self.shared.entity, n, chunk_bytes, build);
        let mut g = self.shared.lock();
        g.queue.push_back(chunk);
        g.queued_rows += n;
        g.queued_bytes += chunk_bytes;
        g.rows_received += n as u64 + rejected;
        g.bytes_received += data_bytes + rejected_bytes;
        if rejected > 0 {
            // Under the lock with `rows_received`, so snapshots stay consistent.
            self.shared
                .rows_filtered
                .fetch_add(rejected, Ordering::Relaxed);
        }
        g.chunks_received += 1;
        g.reader_bytes = self.footprint();
        if g.first_row_at.is_none() {
            g.first_row_at = Some(now);
        }
        let held = g.held_total();
        if held > g.peak_bytes {
            g.peak_bytes = held;
        }
        if held >= self.shared.options.memory.warn_bytes() {
            if g.warn_armed {
                g.warn_armed = false;
                g.memory_warnings += 1;
                crate::log::warn(format!(
                    "stream on {}: buffered {} bytes, above the warning threshold of {} bytes",
                    self.shared.entity,
                    held,
                    self.shared.options.memory.warn_bytes()
                ));
            }
        } else {
            g.warn_armed = true;
        }
        // A consumer blocked waiting for rows is woken for the first chunk, then once a
        // quarter of the budget is queued; in between the wake is deferred until the reader
        // is about to wait (socket empty, budget full, pause) or ends. A consumer faster than
        // the socket then takes several chunks per wake-up instead of sleeping and waking
        // for each one (a futex wake and two context switches per chunk).
        if g.consumer_waiting
            && g.chunks_received > 1
            && g.queued_bytes < self.shared.options.queue_limit() / 4
        {
            self.wake_pending = true;
        } else {
            self.wake_pending = false;
            self.shared.wake_consumer(&mut g);
        }
    }

    /// Reset the count of rows the built-in predicates rejected since the last chunk; the
    /// caller adds them to the stream's counters.
    fn take_rejected(&mut self) -> (u64, u64) {
        let r = (self.rejected, self.rejected_bytes);
        if r.0 > 0 {
            metrics::reader_filtered(&self.shared.entity, r.0);
        }
        self.rejected = 0;
        self.rejected_bytes = 0;
        r
    }

    /// Evaluate the built-in JSON predicates on a row (`(offset, len)` into the buffer).
    /// A row that is not valid JSON is rejected and counted as a parse failure.
    fn json_accepts(&mut self, (off, len): (u32, u32)) -> bool {
        let row: &[u8] = if len == NULL_ROW {
            b"null"
        } else {
            &self.conn.buf[off as usize..off as usize + len as usize]
        };
        let t = Instant::now();
        let mut outcome = Ok(true);
        for f in &self.shared.json_filters {
            match f.eval(row) {
                Ok(true) => {}
                other => {
                    outcome = other;
                    break;
                }
            }
        }
        self.parse_time += t.elapsed();
        match outcome {
            Ok(keep) => {
                self.parsed_rows += 1;
                keep
            }
            Err(failure) => {
                let entity = &self.shared.entity;
                metrics::deserialization_failed(entity, failure.reason());
                metrics::json_parse_error(entity);
                if !self.parse_failure_logged {
                    self.parse_failure_logged = true;
                    crate::log::warn(format!(
                        "stream on {entity}: a row could not be parsed for the JSON predicate \
                         ({}); such rows are rejected and counted as filtered",
                        failure.reason()
                    ));
                }
                false
            }
        }
    }

    /// Report the built-in predicates' parsing of the chunk being handed over.
    fn flush_parse_metrics(&mut self) {
        if self.parsed_rows == 0 && self.parse_time.is_zero() {
            return;
        }
        let entity = &self.shared.entity;
        metrics::rows_deserialized(entity, self.parsed_rows);
        // The predicate's parse is its whole deserialization: both histograms see it.
        metrics::json_parse(entity, self.parse_time);
        metrics::deserialization_duration(entity, self.parse_time);
        self.parsed_rows = 0;
        self.parse_time = Duration::ZERO;
    }

    /// Deliver the outcome after the last row and give the connection back when it is clean.
    fn finish(self, outcome: Result<()>) {
        let Reader {
            mut conn,
            shared,
            pool,
            error,
            command_complete,
            query_sent,
            ..
        } = self;
        let result = match (outcome, error) {
            // The server said why before closing (e.g. FATAL 57P01 when the backend is
            // terminated): the connection is broken (Io), but keep the server's reason.
            (Err(e), Some(se))
                if e.kind() == ErrorKind::Io
                    && se
                        .server_error()
                        .is_some_and(|s| s.severity == "FATAL" || s.severity == "PANIC") =>
            {
                let fields = se.server_error().cloned().unwrap_or_default();
                Err(Error::server(ErrorKind::Io, fields).context(e.message()))
            }
            (Err(e), _) => Err(e),
            (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) if command_complete => Ok(()),
            (Ok(()), None) => {
                metrics::protocol_error("missing_command_complete");
                Err(Error::protocol(
                    "the server ended the query without CommandComplete",
                ))
            }
        };
        let (status, category) = match &result {
            Ok(()) => ("success", None),
            Err(e) if e.kind() == ErrorKind::Cancelled => ("cancelled", None),
            Err(e) => ("error", Some(e.kind().category())),
        };
        let schema_error = matches!(&result, Err(e) if e.kind() == ErrorKind::Schema);
        // Bytes after ReadyForQuery are out of turn (the server has nothing to say between
        // queries): such a connection is dropped, never read by the next query.
        let reusable = conn.buf.is_empty()
            && match &result {
                Ok(()) => true,
                // The server reported an error and then ReadyForQuery: the session is clean.
                Err(e) => e.kind() == ErrorKind::Server,
            };
        let mut g = shared.lock();
        g.ended_at = Some(Instant::now());
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
        let dropped_rows = if was_cancelled {
            std::mem::take(&mut g.queued_rows)
        } else {
            0
        };
        let dropped: Vec<_> = if was_cancelled {
            g.queued_bytes = 0;
            g.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        // Recorded before the consumer can see the end, so that a dump taken after it is exact.
        let (rows, bytes, total) = (g.rows_received, g.bytes_received, query_sent.elapsed());
        metrics::buffered_rows(&shared.entity, -(dropped_rows as i64));
        if was_cancelled {
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

/// A stream's reader that no task runs: the consumer, finding no chunk queued, reads the
/// socket on its own thread ([`Parked::read`]), as libpq and a minimal client do, instead of
/// waiting for a reader task to read, hand a chunk over and wake it. On a client-bound stream
/// that halves the threads at work and removes the two context switches per chunk (about a
/// third of the client's CPU time with a task: docs/performance.md).
///
/// Nothing reads ahead meanwhile: the kernel's socket buffers do, as for libpq. A control
/// event that needs a reader running on its own (a pause with its timeout, a cancel, an event
/// fd for an event loop, a budget too full to read) hands the reader to a task for the rest of
/// the stream ([`Parked::spawn`], [`Shared::unpark`]). Only plain sockets are parked (the
/// start of the query ran on the caller's thread: [`Reader::run_inline`]).
pub(crate) struct Parked {
    reader: Box<Reader>,
    /// The message the read buffer ends with, if any.
    need: Option<Pending>,
    /// When it was parked: one parked for [`TAKE_OVER_AFTER`] goes to a task, which reads
    /// ahead while the consumer is busy (see [`watchdog_task`]).
    since: Instant,
}

/// How long a reader stays parked while its consumer is busy with the rows it has before a
/// task takes it over to read ahead (up to [`StreamOptions::read_ahead`]), as a reader task
/// always did. A consumer that comes back for rows sooner reads them itself; one that waits
/// for rows while a task reads gets the reader back (see [`Reader::wait_for_room`]).
///
/// Longer than the scheduler's latency on a loaded machine (12 ms on two CPUs with the
/// default CFS settings), so that a consumer merely preempted, not busy, does not cause a
/// take-over. Measured on the 2-vCPU machine (500k x 430 B from the fake server's socket, 15
/// alternations): in a calm spell no difference between 5 ms, 20 ms and no take-over at all
/// (wall medians 43.8, 42.5, 42.2 ms; 25 runs at 5 ms saw no take-over); in noisy spells the
/// build without take-overs used less CPU than either (45.9 and 51.4 ms against 39.7 and 40.2
/// in two sets), which says the cost is there but not how often it is paid.
///
/// [`StreamOptions::read_ahead`]: super::options::StreamOptions::read_ahead
pub(crate) const TAKE_OVER_AFTER: Duration = Duration::from_millis(20);

/// Longest single wait of a consumer on its socket: between two, it checks for a shutdown.
const SHUTDOWN_SLICE: Duration = Duration::from_millis(500);

/// The longest the watchdog sleeps while the consumer keeps waiting on the socket (a slow
/// query): it then wakes ten times a second rather than every [`TAKE_OVER_AFTER`].
const WATCHDOG_IDLE_MAX: Duration = Duration::from_millis(100);

/// Watches a stream whose reader is parked or read by its consumer, and hands the reader to a
/// task once it has stayed parked [`TAKE_OVER_AFTER`]. Ends when a task has the reader or the
/// stream ended. Wakes at most once per [`TAKE_OVER_AFTER`]; while the consumer waits on
/// the socket, less and less often (up to [`WATCHDOG_IDLE_MAX`]), so that a stream on a slow
/// query costs next to nothing while it waits.
async fn watchdog_task(shared: Arc<Shared>) {
    let mut at = tokio::time::Instant::now() + TAKE_OVER_AFTER;
    let mut idle = TAKE_OVER_AFTER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            // Backed off, and the consumer has rows again (see `Shared::watchdog_backoff`).
            _ = shared.watchdog_wake.notified() => {}
        }
        let mut g = shared.lock();
        let now = Instant::now();
        let parked_since = g.parked.as_ref().map(|p| p.since);
        let due = match parked_since {
            Some(since) => {
                idle = TAKE_OVER_AFTER;
                g.watchdog_backoff = false;
                let due = since + TAKE_OVER_AFTER;
                if due <= now {
                    None
                } else {
                    Some(due)
                }
            }
            None if g.inline_reading => {
                idle = (idle * 2).min(WATCHDOG_IDLE_MAX);
                g.watchdog_backoff = true;
                Some(now + idle)
            }
            None => {
                g.watchdog = false;
                return;
            }
        };
        match due {
            Some(due) => at = tokio::time::Instant::from_std(due),
            None => {
                let parked = g.parked.take();
                g.watchdog = false;
                drop(g);
                if let Some(p) = parked {
                    p.spawn();
                }
                return;
            }
        }
    }
}

enum TaskEnd {
    /// The stream ended with this outcome (see [`Reader::finish`]).
    Ended(Result<()>),
    /// The consumer waits for rows and may read them itself: park the reader.
    Park(Option<Pending>),
}

/// What one [`Parked::read`] did.
pub(crate) enum Step {
    /// Read and handed over what came (`true`), or nothing (`false`: no data within the
    /// wait, or an interrupt); the reader goes back to its place.
    Read(Parked, bool),
    /// The reader cannot go on on this thread (no room in the budget, paused, cancelled):
    /// it must run as a task.
    HandOver(Parked),
    /// The stream ended (its terminal is set, the connection given back or closed).
    Ended,
}

impl Parked {
    /// Hand the reader to a task for the rest of the stream.
    pub(crate) fn spawn(self) {
        let Parked { reader, need, .. } = self;
        if std::process::id() != reader.shared.owner_pid {
            // A stream of the parent freed in a forked child: the connection is the
            // parent's, never read here (see `Connection::abandon_after_fork`).
            // The read-coalescing timer is registered with the parent's epoll instance, which
            // the child shares: dropping it would deregister it there.
            let Reader { conn, timer, .. } = *reader;
            std::mem::forget(timer);
            conn.abandon_after_fork();
            return;
        }
        reader.spawn_rest(Ok(Flow::NeedMore(need)));
    }

    /// One socket read on the consumer's thread, within the stream's budget, and the chunks
    /// it makes queued. When the socket has nothing, waits in poll(2) at most `wait` (`None`:
    /// without limit; zero: not at all) for it or for `interrupt` (see
    /// [`Shared::unpark`]). Must not be called with the stream's lock held.
    pub(crate) fn read(self, wait: Option<Duration>, interrupt: i32) -> Step {
        let Parked {
            mut reader,
            need,
            since,
        } = self;
        let Some(plan) = reader.plan_now(need) else {
            return Step::HandOver(Parked {
                reader,
                need,
                since,
            });
        };
        let max = reader.apply_plan(plan);
        let got = match reader.read_blocking(max, wait, interrupt) {
            Ok(got) => got,
            Err(e) => {
                reader.finish(Err(e));
                return Step::Ended;
            }
        };
        let Some(n) = got else {
            let since = Instant::now();
            return Step::Read(
                Parked {
                    reader,
                    need,
                    since,
                },
                false,
            );
        };
        reader.coalesce.after_read(n, max, Instant::now());
        if n == 0 {
            let e = reader.closed_error();
            reader.finish(Err(e));
            return Step::Ended;
        }
        if reader.chunk_started.is_none() {
            reader.chunk_started = Some(Instant::now());
        }
        match reader.process_buffer() {
            Ok(Flow::NeedMore(need)) => {
                let since = Instant::now();
                Step::Read(
                    Parked {
                        reader,
                        need,
                        since,
                    },
                    true,
                )
            }
            Ok(Flow::Finished) => {
                reader.finish(Ok(()));
                Step::Ended
            }
            Err(e) => {
                // Rows parsed before a malformed message are delivered first.
                reader.emit_chunk();
                reader.finish(Err(e));
                Step::Ended
            }
        }
    }
}

impl Reader {
    /// The error of a failed socket read. A TLS connection that ended without a close_notify
    /// (the server or a proxy killed) is reported as a plain socket's end is.
    fn read_failed(&self, e: &std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.closed_error()
        } else {
            Error::io("could not read from the server", e)
        }
    }

    /// The error for a connection the server closed in the middle of the stream.
    fn closed_error(&self) -> Error {
        Error::new(
            ErrorKind::Io,
            format!(
                "the server closed the connection unexpectedly after {} rows",
                self.shared.lock().rows_received + self.rows.len() as u64
            ),
        )
    }

    /// Read at most `max` bytes on the calling thread (see [`Parked::read`]): `Ok(None)` when
    /// nothing came within `wait` or `interrupt` became readable. On a steady flow the
    /// consumer keeps up with, the wait first lingers so that one read takes several packets
    /// (see [`super::coalesce`]), as the reader task does.
    fn read_blocking(
        &mut self,
        max: usize,
        wait: Option<Duration>,
        interrupt: i32,
    ) -> Result<Option<usize>> {
        if let Some(n) = self.conn.read_now(max)? {
            return Ok(Some(n));
        }
        if wait.is_some_and(|w| w.is_zero()) {
            return Ok(None);
        }
        let deadline = wait.map(|w| Instant::now() + w);
        let sock_ready = |conn: &Connection, left: Option<Duration>| {
            let sock = conn.transport.plain_socket().ok_or_else(|| {
                Error::new(ErrorKind::Panic, "a parked reader without a plain socket")
            })?;
            crate::connection::transport::wait_readable_or(&sock, interrupt, left)
                .map_err(|e| Error::io("could not wait for the server", &e))
        };
        if let Some(d) = self.coalesce.linger() {
            // Let a few packets gather: wait on the interrupt fd alone.
            let d = deadline.map_or(d, |dl| d.min(dl.saturating_duration_since(Instant::now())));
            if crate::connection::transport::wait_fd_readable(interrupt, d) {
                self.shared.drain_interrupt();
                return Ok(None);
            }
            if let Some(n) = self.conn.read_now(max)? {
                return Ok(Some(n));
            }
        }
        if crate::runtime::is_shut_down() {
            return Err(Error::shutdown());
        }
        // In slices: `fw_shutdown` interrupts a registered stream through the interrupt fd,
        // but one it ran before knowing of (its `execute` still returning) is only seen here.
        let left = deadline.map_or(SHUTDOWN_SLICE, |d| {
            d.saturating_duration_since(Instant::now())
                .min(SHUTDOWN_SLICE)
        });
        let ready = sock_ready(&self.conn, Some(left))?;
        if ready.other {
            self.shared.drain_interrupt();
            return Ok(None);
        }
        if !ready.socket {
            return Ok(None);
        }
        self.conn.read_now(max)
    }
}

/// What [`Reader::before_description`] made of a message.
enum Undescribed {
    /// The result is described now, with the right shape.
    Described,
    /// An acknowledgement (ParseComplete, BindComplete).
    Skipped,
    /// Any other message, for the caller.
    Other(Message),
}

/// A result of the wrong shape: the rows that follow are unwanted. The connection (its
/// session now mid-query) is dropped, and the server told to stop the query with a
/// CancelRequest on a new connection.
async fn abandon(conn: Connection) {
    let token = conn.cancel_token().clone();
    drop(conn);
    let _ = token.send().await;
}

/// The reader's framing without a socket, for the fuzz targets (`fuzz/`, through
/// [`crate::fuzzing`]) and their regression tests: `input` (what the server sends after the
/// query) is fed to [`Reader::process_buffer`] through the reader's own read planning, at
/// most `piece()` bytes per read, with a consumer that takes every chunk at once.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod framing {
    use super::*;
    use crate::query::JsonFilter;
    use crate::stream::options::{MemoryLimits, StreamOptions};

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
        filter: Option<JsonFilter>,
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
            Shared::new("fuzz".into(), options, token)
                .with_json_filters(filter.into_iter().map(Arc::new).collect()),
        );
        let mut r = Reader::new(conn, shared.clone(), Arc::new(Pool::default()));
        let mut rows = Vec::new();
        let mut pos = 0;
        let end = loop {
            let flow = r.process_buffer();
            let need = match flow {
                Ok(Flow::Finished) => {
                    break match (&r.error, r.command_complete) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// The budget cost of carrying out `plan` from a buffer holding `len` bytes with `spare`
    /// free bytes: the new buffer's capacity replaces the old one's, plus the row tables.
    fn cost(plan: ReadPlan, len: usize, spare: usize, one_message: bool) -> isize {
        let tables = table_cost(plan.max, one_message) as isize;
        match plan.capacity {
            None => tables,
            Some(cap) => cap as isize - (len + spare) as isize + tables,
        }
    }

    #[test]
    fn the_row_limit_message_states_the_rule_applied() {
        let m = crate::stream::options::MemoryLimits::new(MIB, 0.8, 1.0).unwrap();
        let max = m.max_row_bytes().min(m.bytes - TABLE_SLACK);
        let msg = row_limit_message(2 * MIB, max, &m);
        assert!(
            msg.contains(&format!("row limit of {} bytes", MIB - TABLE_SLACK)),
            "{msg}"
        );
        assert!(
            msg.contains("less 32 bytes for the row's table entry"),
            "{msg}"
        );
        assert!(!msg.contains("fail ratio"), "{msg}");
        let m = crate::stream::options::MemoryLimits::new(MIB, 0.5, 0.5).unwrap();
        let max = m.max_row_bytes().min(m.bytes - TABLE_SLACK);
        let msg = row_limit_message(MIB, max, &m);
        assert!(
            msg.contains("row limit of 524288 bytes (1048576 bytes x fail ratio 0.5)"),
            "{msg}"
        );
    }

    #[test]
    fn first_read_gets_an_exact_buffer() {
        let p = plan_read(4 * MIB, 4 * MIB, 0, 0, None).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: READ_SIZE,
                capacity: Some(READ_SIZE)
            }
        );
        // The spare room of the current buffer is used before allocating.
        let p = plan_read(4 * MIB, MIB, 100_000, 50, None).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: 100_000,
                capacity: None
            }
        );
    }

    #[test]
    fn full_budget_waits() {
        assert_eq!(plan_read(4 * MIB, 0, 0, 10, None), None);
        assert_eq!(plan_read(4 * MIB, 1000, 0, 10, None), None);
        // Spare room but no room for the row tables of what it would hold.
        assert_eq!(plan_read(4 * MIB, 0, 100_000, 10, None), None);
    }

    #[test]
    fn plans_never_exceed_the_budget() {
        for budget in [16 * 1024, 64 * 1024, 512 * 1024, 4 * MIB] {
            for free in (0..=budget).step_by(budget / 37) {
                for spare in [0, 10, 5000, 40_000, 300_000] {
                    for pending in [None, Some(200), Some(100_000), Some(budget - TABLE_SLACK)] {
                        let len = 7;
                        let pending = pending.map(|total| Pending { total, row: true });
                        if let Some(p) = plan_read(budget, free, spare, len, pending) {
                            let rest = pending.map_or(0, |p| p.total - len);
                            // A read within the pending message completes only that one.
                            let one = rest >= MIN_READ || (rest > 0 && p.max <= rest);
                            let c = cost(p, len, spare, one);
                            assert!(
                                c <= free as isize,
                                "budget {budget} free {free} spare {spare} {pending:?}: {p:?} costs {c}"
                            );
                            assert!(p.max >= 1);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_large_row_gets_room_for_all_of_it() {
        let budget = MIB;
        let total = 500_000;
        let pending = Some(Pending { total, row: true });
        // Everything else consumed: the old buffer (len + spare) is the only thing held.
        let (len, spare) = (200_000, 1000);
        let free = budget - len - spare;
        let p = plan_read(budget, free, spare, len, pending).unwrap();
        // Room for the row and its NUL (no move of the row), rounded up to LARGE_BLOCK; only
        // the row's bytes are read.
        assert_eq!(p.capacity, Some((total + 1).next_multiple_of(LARGE_BLOCK)));
        assert_eq!(p.max, total - len);
        assert!(cost(p, len, spare, true) <= free as isize);
        // Rows of similar sizes get buffers of one size (a spare one serves the next row).
        let similar = Some(Pending {
            total: total - 300,
            row: true,
        });
        let q = plan_read(budget, free, spare, len, similar).unwrap();
        assert_eq!(q.capacity, p.capacity);
        // Rounding stops at the budget.
        let tight = total + 1 + 100 - len - spare + TABLE_SLACK;
        let t = plan_read(budget, tight, spare, len, pending).unwrap();
        assert_eq!(t.capacity, Some(total + 101));
        assert!(cost(t, len, spare, true) <= tight as isize);
        let budget = 512 * 1024;
        // A row of the whole budget (less its table entry) still fits once alone.
        let total = budget - TABLE_SLACK;
        let p = plan_read(
            budget,
            budget - 20,
            10,
            10,
            Some(Pending { total, row: true }),
        );
        assert_eq!(p.unwrap().capacity, Some(total));
    }

    #[test]
    fn a_message_other_than_a_row_always_gets_a_read() {
        // The beginning of a 2.2 MB error fills a buffer as large as the whole 2 MiB budget:
        // nothing the consumer frees makes room, and waiting would never end.
        let total = 2_200_000;
        let pending = Some(Pending { total, row: false });
        for len in [5, 100_000, 2 * MIB] {
            let rest = total - len;
            let p = plan_read(2 * MIB, 0, rest, len, pending).unwrap();
            assert_eq!(
                p,
                ReadPlan {
                    max: rest,
                    capacity: None
                }
            );
            let p = plan_read(2 * MIB, 0, 0, len, pending).unwrap();
            assert_eq!(
                p,
                ReadPlan {
                    max: rest,
                    capacity: Some(total)
                }
            );
        }
        // A row never goes beyond the budget: it waits for the consumer.
        let row = Some(Pending {
            total: 500_000,
            row: true,
        });
        assert_eq!(plan_read(2 * MIB, 0, 1000, 10, row), None);
    }

    #[test]
    fn the_rest_of_a_row_fits_once_the_consumer_took_everything() {
        // Found by fuzzing: a 40 KB row in a 64 KiB budget, its first 7251 bytes in a buffer
        // of 65504 (all the stream holds). The rest, 32762 bytes, is under MIN_READ, and a
        // read of it was charged a table entry per 11 bytes: no plan, and nothing to free.
        let pending = Some(Pending {
            total: 40_013,
            row: true,
        });
        let p = plan_read(65_536, 32, 65_504 - 7_251, 7_251, pending).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: 40_013 - 7_251,
                capacity: None
            }
        );
        // Where a new buffer is needed, it is exactly the row.
        let p = plan_read(65_536, 65_536 - 8_000, 8_000 - 7_251, 7_251, pending).unwrap();
        assert_eq!(p.capacity.map(|c| c >= 40_013), Some(true));
    }

    #[test]
    fn other_messages_are_read_whole() {
        let pending = Some(Pending {
            total: 100_000,
            row: false,
        });
        let p = plan_read(16 * 1024, 100, 0, 5, pending).unwrap();
        assert_eq!(p.capacity, Some(100_000));
    }
}
