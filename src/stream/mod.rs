//! Streams: the consumer's API over a query's rows. [`Stream`] takes chunks from the
//! byte-bounded channel ([`shared`]) and hands out their rows; [`StreamControl`] pauses,
//! resumes, cancels and reports statistics from any thread. Who reads the socket (the calling
//! thread or a runtime task, and the hand-overs between them) is [`driver`]'s; the reader
//! itself (read planning, protocol, framing) is [`reader`]'s. docs/architecture.md has the
//! way of a row from the socket to the caller.

pub mod adaptive;
pub mod block;
pub mod chunk;
pub mod coalesce;
pub(crate) mod driver;
pub mod options;
pub(crate) mod place;
pub(crate) mod reader;
pub(crate) mod registry;
pub(crate) mod shared;
pub(crate) mod transcode;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::CancelToken;
use crate::error::{Error, ErrorKind, Result};
use adaptive::AdaptiveController;
use chunk::Chunk;
pub use shared::StreamState;
use shared::{Shared, Terminal};

/// A client-side row predicate run on the consumer's thread: `true` keeps the row (a C
/// predicate, `fw_query_filter`; re-exported as `query::RowFilter`).
pub type RowFilter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// A predicate the reader evaluates on each row before it enters the channel: the built-in
/// JSON predicates (`crate::query::JsonFilter`, which implements it). Defined here so that
/// the stream needs nothing of the query builder.
pub trait RowPredicate: Send + Sync {
    /// Whether to keep the row; `Err(reason)` when it cannot be evaluated (not JSON): the
    /// row is rejected and counted with `reason` as the failure metric's label.
    fn accepts(&self, row: &[u8]) -> std::result::Result<bool, &'static str>;
}

/// What a consuming call produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A row: its JSON text. The byte right after the slice is a NUL. Valid until the next
    /// consuming call on the stream.
    Row(&'a [u8]),
    /// The stream ended normally.
    Done,
    /// Non-blocking call: nothing ready.
    WouldBlock,
    /// The timeout elapsed; the stream is still usable.
    Timeout,
    /// Paused and drained: nothing more until resume.
    Paused,
}

/// How long a consuming call may block.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    NoWait,
    Forever,
    For(Duration),
}

impl Wait {
    /// `-1` (or any negative) waits forever, `0` does not wait, else milliseconds.
    pub fn from_millis(ms: i64) -> Wait {
        match ms {
            ms if ms < 0 => Wait::Forever,
            0 => Wait::For(Duration::ZERO),
            ms => Wait::For(Duration::from_millis(ms as u64)),
        }
    }
}

/// A point-in-time snapshot of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub state: Option<StreamState>,
    /// Rows received and neither yielded nor filtered yet (channel + the chunk being read).
    pub items_buffered: u64,
    /// Bytes of the chunks in the channel and held by the consumer.
    pub bytes_buffered: u64,
    /// Everything the stream holds: chunks plus the socket read buffer.
    pub estimated_memory: u64,
    pub peak_memory: u64,
    pub memory_limit: u64,
    pub memory_warnings: u64,
    pub total_rows_received: u64,
    pub total_rows_yielded: u64,
    pub total_rows_filtered: u64,
    pub total_bytes_received: u64,
    pub chunks_received: u64,
    pub current_chunk_size: u64,
    pub pause_count: u64,
    pub pause_timeouts: u64,
    pub paused_ms_total: u64,
    /// Microseconds from the query being sent to the first row, 0 before it.
    pub time_to_first_row_us: u64,
    pub elapsed_us: u64,
}

/// Control of a stream from any thread: pause, resume, cancel, stats, readiness fd.
#[derive(Clone)]
pub struct StreamControl {
    shared: Arc<Shared>,
}

impl StreamControl {
    pub fn state(&self) -> StreamState {
        self.shared.lock().state
    }

    pub fn entity(&self) -> &str {
        &self.shared.entity
    }

    /// Stop reading the socket. Idempotent; `State` error on a completed/failed/cancelled stream.
    pub fn pause(&self, reason: Option<&str>) -> Result<()> {
        let mut g = self.shared.lock();
        if g.state.is_terminal() || g.terminal.is_some() {
            return Err(Error::state(format!(
                "cannot pause a stream that is {:?}",
                g.state
            )));
        }
        if g.pause_started.is_some() {
            return Ok(());
        }
        g.pause_started = Some(Instant::now());
        g.pause_reason = reason.map(str::to_owned);
        g.pause_count += 1;
        g.state = StreamState::Paused;
        crate::metrics::pause_started(&self.shared.entity);
        crate::log::debug(format!(
            "stream on {} paused{}",
            self.shared.entity,
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        ));
        self.shared.wake_consumer(&mut g);
        // A pause (and its timeout) is kept by a reader task.
        let parked = self.shared.unpark(&mut g);
        drop(g);
        if let Some(p) = parked {
            p.spawn();
        }
        self.shared.reader_wake.notify_one();
        Ok(())
    }

    /// Read the socket again. Idempotent; `State` error on a completed/failed/cancelled stream.
    pub fn resume(&self) -> Result<()> {
        let mut g = self.shared.lock();
        if g.state.is_terminal() || g.terminal.is_some() {
            return Err(Error::state(format!(
                "cannot resume a stream that is {:?}",
                g.state
            )));
        }
        if g.pause_started.is_none() {
            return Ok(());
        }
        self.shared.end_pause(&mut g, false);
        crate::log::debug(format!("stream on {} resumed", self.shared.entity));
        drop(g);
        self.shared.reader_wake.notify_one();
        Ok(())
    }

    /// A pause longer than this resumes by itself. `None` = no limit.
    pub fn set_pause_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        let mut g = self.shared.lock();
        if g.state.is_terminal() {
            return Err(Error::state(format!(
                "cannot set a pause timeout on a stream that is {:?}",
                g.state
            )));
        }
        g.pause_timeout = timeout;
        drop(g);
        self.shared.reader_wake.notify_one();
        Ok(())
    }

    /// Cancel the stream: buffered rows are dropped, consumers get `Cancelled`, and if the
    /// server is still running the query a CancelRequest is sent. Never blocks: the request
    /// goes from a runtime task, which `fw_shutdown` waits for (within its timeout).
    /// Cancelling a cancelled stream is a no-op; a completed or failed one is a `State` error.
    pub fn cancel(&self) -> Result<()> {
        if let Some(token) = self.cancel_locally()? {
            crate::runtime::spawn_before_shutdown(async move {
                if let Err(e) = token.send().await {
                    crate::log::warn(format!("cancel request failed: {e}"));
                }
            });
        }
        Ok(())
    }

    /// The stream's side of [`StreamControl::cancel`]; returns the token to send the
    /// CancelRequest with when the server may still be running the query.
    fn cancel_locally(&self) -> Result<Option<CancelToken>> {
        let mut g = self.shared.lock();
        match g.state {
            StreamState::Cancelled => return Ok(None),
            StreamState::Completed | StreamState::Failed => {
                return Err(Error::state(format!(
                    "cannot cancel a stream that is {:?}",
                    g.state
                )))
            }
            _ => {}
        }
        if g.pause_started.is_some() {
            self.shared.end_pause_at_end(&mut g);
        }
        let reader_active = g.ended_at.is_none();
        g.state = StreamState::Cancelled;
        self.shared.cancelled.store(true, Ordering::Release);
        g.terminal = Some(Terminal::Failed(Error::cancelled()));
        let (dropped, rows) = g.drain_queue();
        crate::metrics::buffered_rows(&self.shared.entity, -(rows as i64));
        self.shared.wake_consumer(&mut g);
        // A parked reader ends in a task as a running one does (see `Reader::finish`).
        let parked = self.shared.unpark(&mut g);
        drop(g);
        drop(dropped);
        if let Some(p) = parked {
            p.spawn();
        }
        if self.shared.query_metrics {
            crate::metrics::query_cancelled(&self.shared.entity);
        }
        self.shared.reader_wake.notify_one();
        Ok(reader_active.then(|| self.shared.cancel_token.clone()))
    }

    /// The error the stream ended with, once the reader has finished with one.
    pub fn terminal_error(&self) -> Option<Error> {
        match &self.shared.lock().terminal {
            Some(Terminal::Failed(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// A descriptor that is readable whenever `next`/`try_next` has something to return.
    pub fn fd(&self) -> Result<i32> {
        self.shared.event_fd()
    }

    /// The event fd for a parallel stream's merge, which reads parked parts itself (see
    /// [`driver::parked_socket`]): the reader is left where it is.
    pub(crate) fn merge_fd(&self) -> Result<i32> {
        self.shared.merge_event_fd()
    }

    /// See [`driver::parked_socket`].
    pub(crate) fn parked_socket(&self) -> Option<(i32, Option<Duration>)> {
        driver::parked_socket(&self.shared)
    }

    /// See [`driver::merge_waits`].
    pub(crate) fn merge_waits(&self, on: bool) {
        driver::merge_waits(&self.shared, on)
    }

    pub fn stats(&self) -> StreamStats {
        let g = self.shared.lock();
        let received = g.rows_received;
        let yielded = self.shared.rows_yielded();
        let filtered = self.shared.rows_filtered();
        let now = Instant::now();
        let end = g.ended_at.filter(|_| g.queue.is_empty()).unwrap_or(now);
        let mut paused = g.paused_total;
        if let Some(p) = g.pause_started {
            paused += now - p;
        }
        let bytes_buffered = (g.queued_bytes + g.held_bytes) as u64;
        StreamStats {
            state: Some(g.state),
            items_buffered: if g.state == StreamState::Cancelled {
                0
            } else {
                received.saturating_sub(yielded + filtered)
            },
            bytes_buffered,
            estimated_memory: g.held_total() as u64,
            peak_memory: g.peak_bytes as u64,
            memory_limit: self.shared.options.memory.bytes as u64,
            memory_warnings: g.memory_warnings,
            total_rows_received: received,
            total_rows_yielded: yielded,
            total_rows_filtered: filtered,
            total_bytes_received: g.bytes_received,
            chunks_received: g.chunks_received,
            current_chunk_size: self.shared.chunk_size.load(Ordering::Relaxed) as u64,
            pause_count: g.pause_count,
            pause_timeouts: g.pause_timeouts,
            paused_ms_total: paused.as_millis() as u64,
            time_to_first_row_us: g
                .first_row_at
                .map(|t| (t - self.shared.started).as_micros() as u64)
                .unwrap_or(0),
            elapsed_us: (end - self.shared.started).as_micros() as u64,
        }
    }
}

/// The consuming side of a stream. Rows are borrowed from the chunk being read.
pub struct Stream {
    control: StreamControl,
    current: Option<Chunk>,
    idx: usize,
    /// Chunks whose rows a batch handed out: kept alive until the next call.
    retired: Vec<Chunk>,
    filters: Vec<RowFilter>,
    yielded: u64,
    filtered: u64,
    filtered_in_chunk: u64,
    filter_time: Duration,
    adaptive: Option<AdaptiveController>,
    /// The terminal outcome once seen: repeated calls return it again.
    end: Option<std::result::Result<(), Error>>,
}

impl Stream {
    pub(crate) fn new(shared: Arc<Shared>, filters: Vec<RowFilter>) -> Stream {
        let adaptive = shared.options.adaptive.map(|b| {
            AdaptiveController::with_window(
                b,
                shared.options.initial_chunk_size(),
                adaptive::WINDOW,
                shared.options.adaptive_interval,
            )
        });
        Stream {
            control: StreamControl { shared },
            current: None,
            idx: 0,
            retired: Vec::new(),
            filters,
            yielded: 0,
            filtered: 0,
            filtered_in_chunk: 0,
            filter_time: Duration::ZERO,
            adaptive,
            end: None,
        }
    }

    pub fn control(&self) -> &StreamControl {
        &self.control
    }

    pub fn stats(&self) -> StreamStats {
        self.control.stats()
    }

    /// The error the stream ended with, if it failed.
    pub fn error(&self) -> Option<&Error> {
        match &self.end {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Advance within the current chunk to the next row the filters accept.
    #[inline]
    fn advance(&mut self) -> Option<usize> {
        let chunk = self.current.as_ref()?;
        let shared = &self.control.shared;
        if shared.cancelled.load(Ordering::Acquire) {
            // Cancelled: the rest of the chunk being read is dropped like the queued ones.
            return None;
        }
        while self.idx < chunk.len() {
            let i = self.idx;
            self.idx += 1;
            if !self.filters.is_empty() {
                let row = chunk.row(i);
                let t = Instant::now();
                let keep = self.filters.iter().all(|f| f(row));
                self.filter_time += t.elapsed();
                if !keep {
                    self.filtered += 1;
                    self.filtered_in_chunk += 1;
                    // The reader adds its own rejections to the same counter.
                    shared.rows_filtered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            self.yielded += 1;
            shared.rows_yielded.store(self.yielded, Ordering::Relaxed);
            return Some(i);
        }
        None
    }

    /// The next row of the chunk being read, when one is there and no client-side filter
    /// applies: the per-row fast path (no lock, clock or allocation). `None` means "take the
    /// full path" ([`Stream::next`]): chunk exhausted, filters, a batch's chunks to release,
    /// cancelled. Never panics.
    #[inline]
    pub fn next_ready(&mut self) -> Option<&[u8]> {
        if !self.filters.is_empty() || !self.retired.is_empty() {
            return None;
        }
        let chunk = self.current.as_ref()?;
        let shared = &self.control.shared;
        let &(off, len) = chunk.rows.get(self.idx)?;
        if shared.cancelled.load(Ordering::Acquire) {
            return None;
        }
        let row = if len == chunk::NULL_ROW {
            &chunk::NULL_JSON[..4]
        } else {
            chunk.buf.get(off as usize..off as usize + len as usize)?
        };
        self.idx += 1;
        self.yielded += 1;
        shared.rows_yielded.store(self.yielded, Ordering::Relaxed);
        Some(row)
    }

    /// Whether client-side filters (C predicates) run on the consumer's thread.
    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    /// The next row, waiting as `wait` says.
    pub fn next(&mut self, wait: Wait) -> Result<Next<'_>> {
        self.release_retired();
        let deadline = match wait {
            Wait::For(d) => Some(Instant::now() + d),
            _ => None,
        };
        loop {
            if let Some(i) = self.advance() {
                let chunk = self.current.as_ref().expect("advance found a row");
                return Ok(Next::Row(chunk.row(i)));
            }
            if let Some(status) = self.refill(wait, deadline, true)? {
                return Ok(status);
            }
        }
    }

    /// Up to `cap` rows at once; they stay valid until the next consuming call. Waits (as
    /// `wait` says) only when no row is ready at all. Returns the rows, or a status when none.
    pub fn next_batch(&mut self, cap: usize, wait: Wait) -> Result<Batch<'_>> {
        self.release_retired();
        if cap == 0 {
            return Err(Error::invalid("batch capacity must be at least 1"));
        }
        let deadline = match wait {
            Wait::For(d) => Some(Instant::now() + d),
            _ => None,
        };
        // Positions (retired index or current, row index) of the rows handed out.
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(cap.min(4096));
        loop {
            while picks.len() < cap {
                match self.advance() {
                    Some(i) => picks.push((self.retired.len(), i)),
                    None => break,
                }
            }
            if picks.len() == cap {
                break;
            }
            // Current chunk exhausted: keep it alive if it holds picked rows.
            let keep = picks.last().is_some_and(|p| p.0 == self.retired.len());
            if keep {
                if let Some(c) = self.current.take() {
                    self.retired.push(c);
                }
            }
            let w = if picks.is_empty() { wait } else { Wait::NoWait };
            let refilled = match self.refill(w, deadline, picks.is_empty()) {
                Ok(r) => r,
                Err(e) if picks.is_empty() => return Err(e),
                // Rows already picked are delivered first; the terminal error is kept in
                // `self.end` and returned by the next call.
                Err(_) => break,
            };
            match refilled {
                None => continue,
                Some(status) => {
                    if picks.is_empty() {
                        return Ok(Batch::Status(status));
                    }
                    break;
                }
            }
        }
        let retired = &self.retired;
        let current = self.current.as_ref();
        let rows = picks
            .into_iter()
            .map(|(c, i)| {
                let chunk = if c < retired.len() {
                    &retired[c]
                } else {
                    current.expect("picked from the current chunk")
                };
                chunk.row(i)
            })
            .collect();
        Ok(Batch::Rows(rows))
    }

    /// Deliver every row to `f` on this thread until the end, a stop (`f` returns `false`),
    /// a drained pause, or an error.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8]) -> bool) -> Result<ForEachEnd> {
        loop {
            // The rows of the chunk being read, then the full path for the next chunk.
            while let Some(r) = self.next_ready() {
                if !f(r) {
                    return Ok(ForEachEnd::Stopped);
                }
            }
            if let Some(end) = ForEachEnd::after(self.next(Wait::Forever)?, &mut f) {
                return Ok(end);
            }
        }
    }

    fn release_retired(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let bytes: usize = self.retired.iter().map(|c| c.bytes).sum();
        let mut g = self.control.shared.lock();
        g.held_bytes -= bytes;
        if g.reader_waiting {
            self.control.shared.reader_wake.notify_one();
        }
        drop(g);
        self.retired.clear();
    }

    /// Drop the exhausted current chunk and take the next one from the channel, waiting as
    /// allowed. Returns `Ok(None)` when a chunk was taken, `Ok(Some(status))` when the caller
    /// must return that status, or the terminal error.
    fn refill(
        &mut self,
        wait: Wait,
        deadline: Option<Instant>,
        may_report_timeout: bool,
    ) -> Result<Option<Next<'static>>> {
        let shared = self.control.shared.clone();
        let old = self.current.take();
        self.idx = 0;
        // The chunk just finished (for a batch: the chunk it retired just before this call).
        if old.is_some() || self.filtered_in_chunk > 0 || !self.filter_time.is_zero() {
            crate::metrics::chunk_consumed(
                &shared.entity,
                old.as_ref().map_or(0, |c| c.len()),
                self.filtered_in_chunk,
                (!self.filters.is_empty()).then_some(self.filter_time),
            );
            self.filtered_in_chunk = 0;
            self.filter_time = Duration::ZERO;
        }
        if let Some(end) = &self.end {
            drop(old);
            return match end {
                Ok(()) => Ok(Some(Next::Done)),
                Err(e) => Err(e.clone()),
            };
        }
        let mut g = shared.lock();
        // A read on this thread found nothing: the next one waits (or the call returns).
        let mut consumer_idle = false;
        if let Some(c) = &old {
            g.held_bytes -= c.bytes;
            if g.reader_waiting {
                shared.reader_wake.notify_one();
            }
        }
        let result = loop {
            if let Some(c) = g.pop_chunk() {
                // Rows read ahead for the consumer, not those of its own socket read.
                self.observe_occupancy(&shared, c.len(), g.waiting_rows());
                self.current = Some(c);
                break Ok(None);
            }
            if let Some(end) = self.take_end(&mut g) {
                break end;
            }
            if g.pause_started.is_some() {
                shared.disarm_fd(&mut g);
                break Ok(Some(Next::Paused));
            }
            if std::process::id() != shared.owner_pid {
                break Err(Error::state(
                    "this stream belongs to the parent process; streams do not survive fork()",
                ));
            }
            // The reader is parked: read the socket here (see `driver::Parked`). Without waiting once
            // when the call may not wait (or its time is up), else as long as it may.
            let may_wait = match (wait, deadline) {
                (Wait::NoWait, _) => Some(Duration::ZERO),
                (Wait::Forever, _) | (Wait::For(_), None) => None,
                (Wait::For(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            };
            if g.is_parked() && !(consumer_idle && may_wait == Some(Duration::ZERO)) {
                let got;
                (g, got) = driver::consumer_turn(&shared, g, may_wait);
                consumer_idle = !got;
                continue;
            }
            let timeout = match (wait, deadline) {
                (Wait::NoWait, _) => {
                    shared.disarm_fd(&mut g);
                    break Ok(Some(Next::WouldBlock));
                }
                (Wait::Forever, _) => None,
                (Wait::For(_), Some(d)) => {
                    let now = Instant::now();
                    if now >= d {
                        if may_report_timeout {
                            break Ok(Some(Next::Timeout));
                        }
                        break Ok(Some(Next::WouldBlock));
                    }
                    Some(d - now)
                }
                (Wait::For(_), None) => None,
            };
            if g.task_may_park() && !shared.needs_task(&g) {
                // A reader task runs: it parks the reader for this thread to read (see
                // `driver::task`) when it finds nothing queued and this thread waiting.
                shared.reader_wake.notify_one();
            }
            g = shared.wait_for_reader(g, timeout);
        };
        drop(g);
        drop(old);
        result
    }

    /// Adaptive chunking's sample as the consumer takes a chunk of `rows` rows: `waiting`
    /// rows read ahead for it (see [`adaptive`]).
    fn observe_occupancy(&mut self, shared: &Shared, rows: usize, waiting: usize) {
        crate::metrics::chunk_taken(&shared.entity, rows, waiting);
        let Some(adj) = self
            .adaptive
            .as_mut()
            .and_then(|a| a.observe(waiting, Instant::now()))
        else {
            return;
        };
        shared.chunk_size.store(adj.new, Ordering::Relaxed);
        crate::metrics::adaptive_adjusted(&shared.entity, adj.direction.label(), adj.old, adj.new);
        crate::log::debug(format!(
            "stream on {}: chunk size {} -> {} (average occupancy high/low)",
            shared.entity, adj.old, adj.new
        ));
    }

    /// The stream's end once the reader set it (nothing queued before it): kept for later
    /// calls and for `fw_stream_error`. Lock held.
    fn take_end(&mut self, g: &mut shared::Inner) -> Option<Result<Option<Next<'static>>>> {
        let end = match g.terminal.as_ref()? {
            Terminal::Done => Ok(()),
            Terminal::Failed(e) => Err(e.clone()),
        };
        self.end = Some(end.clone());
        Some(end.map(|()| Some(Next::Done)))
    }
}

/// The longest a free of a running stream (`fw_stream_free`, dropping a [`Stream`]) waits
/// to hand its CancelRequest over: the connect to the server and the write of the request,
/// done on the calling thread (about 0.1 ms over a local socket, one round trip to a remote
/// server). Sending it before the free returns means a process that frees its streams and
/// exits does not leave their queries running on the server.
pub const FREE_CANCEL_TIMEOUT: Duration = Duration::from_millis(500);

/// Send a freed stream's CancelRequest now, on the calling thread (see
/// [`FREE_CANCEL_TIMEOUT`]). Not in a forked child: the query is the parent's.
fn cancel_on_free(shared: &Shared, token: &CancelToken) {
    if std::process::id() != shared.owner_pid {
        return;
    }
    if let Err(e) = token.send_blocking(FREE_CANCEL_TIMEOUT) {
        crate::log::warn(format!(
            "cancel request for a freed stream on {} failed: {e}",
            shared.entity
        ));
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Freeing a running stream cancels its query, before the free returns.
        let state = self.control.state();
        if !state.is_terminal() {
            if let Ok(Some(token)) = self.control.cancel_locally() {
                cancel_on_free(&self.control.shared, &token);
            }
        }
        let held: usize = self.current.iter().map(|c| c.bytes).sum::<usize>()
            + self.retired.iter().map(|c| c.bytes).sum::<usize>();
        let mut g = self.control.shared.lock();
        g.held_bytes = g.held_bytes.saturating_sub(held);
        let (dropped, rows_left) = g.drain_queue();
        // Not left parked after the stream is gone (the cancel above took it when running).
        let parked = g.take_parked();
        drop(g);
        drop(dropped);
        if let Some(p) = parked {
            p.spawn();
        }
        crate::metrics::buffered_rows(&self.control.shared.entity, -(rows_left as i64));
        if self.current.is_some() || self.filtered_in_chunk > 0 || !self.filter_time.is_zero() {
            // The chunk being read when the stream is freed: count what the filters did.
            crate::metrics::chunk_consumed(
                &self.control.shared.entity,
                self.current.as_ref().map_or(0, |c| c.len()),
                self.filtered_in_chunk,
                (!self.filters.is_empty()).then_some(self.filter_time),
            );
        }
        registry::unregister(&self.control.shared);
    }
}

/// Rows of a batch, or the status when there were none.
#[derive(Debug)]
pub enum Batch<'a> {
    Rows(Vec<&'a [u8]>),
    Status(Next<'static>),
}

/// How [`Stream::for_each`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForEachEnd {
    Done,
    Stopped,
    Paused,
}

impl ForEachEnd {
    /// What a `for_each` loop does with one answer of `next`: a row goes to `f`; `Some` when
    /// the loop ends there (`f` asked to stop, the end, a drained pause), `None` to go on.
    pub(crate) fn after(next: Next<'_>, f: &mut impl FnMut(&[u8]) -> bool) -> Option<ForEachEnd> {
        match next {
            Next::Row(r) => (!f(r)).then_some(ForEachEnd::Stopped),
            Next::Done => Some(ForEachEnd::Done),
            Next::Paused => Some(ForEachEnd::Paused),
            Next::Timeout | Next::WouldBlock => None,
        }
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Stream>();
    is_send::<StreamControl>();
}

/// Whether an error of this kind ends a stream (as opposed to a misuse of one call).
pub fn is_stream_error(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::InvalidArgument | ErrorKind::Null | ErrorKind::State
    )
}
