//! Parallel partitioned streams: one query read as `k` disjoint parts over `k` connections at
//! once, merged into one stream (docs/parallel.md).
//!
//! A layer over the core streams: each part is an ordinary [`Stream`] whose statement the
//! [`partition`](crate::query::partition) module wrote, run on a connection prepared here:
//!
//! 1. The first connection opens a REPEATABLE READ transaction, exports its snapshot
//!    (`pg_export_snapshot()`) and, in the same round trip, reads what splitting needs (the
//!    source's kind and size, the server's version, the types of the ORDER BY keys).
//! 2. Every other connection opens a REPEATABLE READ transaction and imports that snapshot
//!    (`SET TRANSACTION SNAPSHOT`), so that all parts see the data one serial query would.
//! 3. Each part's statement ends its transaction (`COMMIT` before `Sync`): a part that ends
//!    normally leaves an idle connection, which goes back to the pool; one that fails inside
//!    the transaction is closed (the reader reuses only connections whose last ReadyForQuery
//!    says idle).
//!
//! The merge takes rows as they come without ORDER BY, and otherwise keeps one head row per
//! part and hands out the smallest by the keys each part sends with its rows ([`merge`]).
//! OFFSET and LIMIT apply to the merged stream.

pub mod merge;
mod session;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::query::partition::{self, KeyType, Split};
use crate::query::{JsonFilter, Query, RowFilter};
use crate::stream::block::{Block, Filled};
use crate::stream::options::{MemoryLimits, StreamOptions};
use crate::stream::{
    Batch, ForEachEnd, Next, Stream, StreamControl, StreamState, StreamStats, Wait,
};
use merge::KeySpec;

/// The server version from which TID range scans exist (block-range splitting) and
/// `extract(epoch ...)` is an exact numeric (date and timestamp sort keys).
const MIN_VERSION_TID_RANGE: u32 = 140000;

/// The consumer-side state shared with [`ParallelControl`].
#[derive(Default)]
struct Own {
    cancelled: bool,
    /// The merged stream's end once reached: `Ok` done, `Err` the error it ended with.
    end: Option<std::result::Result<(), Error>>,
}

struct ControlInner {
    parts: Vec<StreamControl>,
    /// An epoll instance holding the parts' readiness descriptors (the stream's fd).
    epoll: OwnedFd,
    own: Mutex<Own>,
    yielded: AtomicU64,
    /// Rows the merge's own filters rejected (ordered streams filter after unwrapping).
    filtered: AtomicU64,
    /// The source, for the metrics: the parallel stream counts as one query.
    entity: String,
    started: Instant,
}

impl ControlInner {
    fn own(&self) -> MutexGuard<'_, Own> {
        self.own.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Control of a parallel stream from any thread: pause, resume, cancel, stats, fd. Each acts
/// on every part.
#[derive(Clone)]
pub struct ParallelControl {
    inner: Arc<ControlInner>,
}

impl ParallelControl {
    /// The stream's state: terminal once the merged stream ended (or was cancelled); paused
    /// while a part is paused; failed as soon as a part failed (its error is returned after
    /// the rows already received).
    pub fn state(&self) -> StreamState {
        {
            let own = self.inner.own();
            if own.cancelled {
                return StreamState::Cancelled;
            }
            match &own.end {
                Some(Ok(())) => return StreamState::Completed,
                Some(Err(e)) if e.kind() == ErrorKind::Cancelled => return StreamState::Cancelled,
                Some(Err(_)) => return StreamState::Failed,
                None => {}
            }
        }
        let states: Vec<StreamState> = self.inner.parts.iter().map(|p| p.state()).collect();
        if states.contains(&StreamState::Failed) {
            StreamState::Failed
        } else if states.iter().all(|s| *s == StreamState::Completed) {
            StreamState::Completed
        } else if states.contains(&StreamState::Paused) {
            StreamState::Paused
        } else {
            StreamState::Running
        }
    }

    fn check_live(&self, what: &str) -> Result<()> {
        let state = self.state();
        if state.is_terminal() {
            return Err(Error::state(format!(
                "cannot {what} a stream that is {state:?}"
            )));
        }
        Ok(())
    }

    /// Pause every part that still runs. Idempotent; `State` error on an ended stream.
    pub fn pause(&self, reason: Option<&str>) -> Result<()> {
        self.check_live("pause")?;
        for p in &self.inner.parts {
            // A part that has ended has nothing to pause.
            let _ = p.pause(reason);
        }
        Ok(())
    }

    /// Resume every part. Idempotent; `State` error on an ended stream.
    pub fn resume(&self) -> Result<()> {
        self.check_live("resume")?;
        for p in &self.inner.parts {
            let _ = p.resume();
        }
        Ok(())
    }

    pub fn set_pause_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.check_live("set a pause timeout on")?;
        for p in &self.inner.parts {
            let _ = p.set_pause_timeout(timeout);
        }
        Ok(())
    }

    /// Cancel every part (their queries get a CancelRequest; buffered rows are dropped);
    /// consuming calls return `Cancelled`. No-op when cancelled; `State` error when ended.
    pub fn cancel(&self) -> Result<()> {
        {
            let mut own = self.inner.own();
            if own.cancelled {
                return Ok(());
            }
            match &own.end {
                Some(Err(e)) if e.kind() == ErrorKind::Cancelled => return Ok(()),
                Some(_) => {
                    return Err(Error::state(format!(
                        "cannot cancel a stream that is {:?}",
                        if matches!(own.end, Some(Ok(()))) {
                            StreamState::Completed
                        } else {
                            StreamState::Failed
                        }
                    )))
                }
                None => {}
            }
            own.cancelled = true;
        }
        crate::metrics::query_cancelled(&self.inner.entity);
        for p in &self.inner.parts {
            let _ = p.cancel();
        }
        Ok(())
    }

    /// The error the stream ended with, once it has one.
    pub fn terminal_error(&self) -> Option<Error> {
        if let Some(Err(e)) = &self.inner.own().end {
            return Some(e.clone());
        }
        // A part's failure, before the consumer reached it.
        self.inner
            .parts
            .iter()
            .filter_map(|p| p.terminal_error())
            .find(|e| e.kind() != ErrorKind::Cancelled)
    }

    /// A descriptor readable whenever a part has something to return (an epoll instance
    /// over the parts' descriptors). With ORDER BY a call may still find no row ready (the
    /// merge needs a row from every part) and return `WouldBlock`.
    ///
    /// An event loop waits on it instead of calling in: from then on every part is read by
    /// a reader task (as a serial stream's after `fd`), since nothing would read the sockets
    /// of parts parked for the merge.
    pub fn fd(&self) -> Result<i32> {
        for p in &self.inner.parts {
            p.fd()?;
        }
        Ok(self.inner.epoll.as_raw_fd())
    }

    /// The sum of the parts' statistics; rows yielded are the merged stream's.
    pub fn stats(&self) -> StreamStats {
        let mut s = StreamStats::default();
        let mut first_row = u64::MAX;
        for p in &self.inner.parts {
            let x = p.stats();
            s.items_buffered += x.items_buffered;
            s.bytes_buffered += x.bytes_buffered;
            s.estimated_memory += x.estimated_memory;
            s.peak_memory += x.peak_memory;
            s.memory_limit += x.memory_limit;
            s.memory_warnings += x.memory_warnings;
            s.total_rows_received += x.total_rows_received;
            s.total_rows_filtered += x.total_rows_filtered;
            s.total_bytes_received += x.total_bytes_received;
            s.chunks_received += x.chunks_received;
            s.current_chunk_size = s.current_chunk_size.max(x.current_chunk_size);
            s.pause_count = s.pause_count.max(x.pause_count);
            s.pause_timeouts = s.pause_timeouts.max(x.pause_timeouts);
            s.paused_ms_total = s.paused_ms_total.max(x.paused_ms_total);
            if x.time_to_first_row_us > 0 {
                first_row = first_row.min(x.time_to_first_row_us);
            }
            s.elapsed_us = s.elapsed_us.max(x.elapsed_us);
        }
        s.time_to_first_row_us = if first_row == u64::MAX { 0 } else { first_row };
        s.total_rows_yielded = self.inner.yielded.load(Ordering::Relaxed);
        s.total_rows_filtered += self.inner.filtered.load(Ordering::Relaxed);
        s.state = Some(self.state());
        s
    }

    /// Parts of the stream.
    pub fn partitions(&self) -> usize {
        self.inner.parts.len()
    }
}

/// One part's next row in an ordered merge: its keys and its JSON text followed by a NUL.
struct Head {
    keys: Vec<Option<Vec<u8>>>,
    row: Vec<u8>,
}

struct Ordered {
    specs: Vec<KeySpec>,
    heads: Vec<Option<Head>>,
    /// The row handed out last (NUL-terminated): valid until the next call.
    out: Vec<u8>,
    filters: Vec<RowFilter>,
    json_filters: Vec<Arc<JsonFilter>>,
}

/// What one pass over the parts found.
enum Step {
    /// A row: a part's current row (unordered) or the merge's `out` buffer (ordered).
    Row(*const [u8]),
    Done,
    Paused,
    /// Nothing ready now.
    Pending,
}

/// The consuming side of a parallel stream (see the module docs). Rows are valid until the
/// next consuming call, as with [`Stream`].
pub struct ParallelStream {
    parts: Vec<Stream>,
    control: ParallelControl,
    /// Parts not yet ended.
    live: Vec<bool>,
    ordered: Option<Ordered>,
    /// Rows still to skip (OFFSET) and to hand out (LIMIT).
    skip: u64,
    left: Option<u64>,
    /// The part read last (unordered): read on while its chunk lasts.
    current: usize,
    yielded: u64,
    /// How the result was split into parts.
    split: Split,
}

impl ParallelStream {
    pub fn control(&self) -> &ParallelControl {
        &self.control
    }

    pub fn stats(&self) -> StreamStats {
        self.control.stats()
    }

    /// How the result was split into the parts (block ranges, value ranges or modulo).
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// The error the stream ended with, if it failed.
    pub fn error(&self) -> Option<Error> {
        match &self.control.inner.own().end {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Whether the merged stream's rows are cut out of the parts' rows (ORDER BY).
    pub fn is_ordered(&self) -> bool {
        self.ordered.is_some()
    }

    /// The next row of the merged stream, waiting as `wait` says.
    pub fn next(&mut self, wait: Wait) -> Result<Next<'_>> {
        let deadline = match wait {
            Wait::For(d) => Some(Instant::now() + d),
            _ => None,
        };
        loop {
            if let Some(end) = self.ended() {
                return end.map(|()| Next::Done);
            }
            if self.left == Some(0) {
                self.finish(Ok(()));
                continue;
            }
            let step = if self.ordered.is_some() {
                self.step_ordered()?
            } else {
                self.step_unordered()?
            };
            match step {
                Step::Row(ptr) => {
                    if self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    if let Some(l) = self.left.as_mut() {
                        *l -= 1;
                    }
                    self.yielded += 1;
                    self.control
                        .inner
                        .yielded
                        .store(self.yielded, Ordering::Relaxed);
                    // SAFETY: `ptr` points at a row of a part's current chunk (unordered: kept
                    // until the next consuming call on that part, which only this stream
                    // makes, through `&mut self`) or at `self.ordered.out` (changed only by
                    // the next call); the returned borrow of `self` ends before either.
                    return Ok(Next::Row(unsafe { &*ptr }));
                }
                Step::Done => self.finish(Ok(())),
                Step::Paused => return Ok(Next::Paused),
                Step::Pending => {
                    let timeout = match (wait, deadline) {
                        (Wait::NoWait, _) => return Ok(Next::WouldBlock),
                        (Wait::For(_), Some(d)) => {
                            let now = Instant::now();
                            if now >= d {
                                return Ok(if d == now || wait_is_zero(wait) {
                                    Next::WouldBlock
                                } else {
                                    Next::Timeout
                                });
                            }
                            Some(d - now)
                        }
                        _ => None,
                    };
                    self.wait_any(timeout)?;
                }
            }
        }
    }

    /// The outcome once the merged stream ended (or was cancelled), recorded on first sight.
    fn ended(&mut self) -> Option<Result<()>> {
        let cancelled_now = {
            let own = self.control.inner.own();
            if own.end.is_some() {
                return own.end.clone();
            }
            own.cancelled
        };
        if cancelled_now {
            self.finish(Err(Error::cancelled()));
            return Some(Err(Error::cancelled()));
        }
        None
    }

    /// Record the end; the parts still running (a LIMIT reached, another part's error) are
    /// cancelled.
    fn finish(&mut self, end: Result<()>) {
        let first = {
            let mut own = self.control.inner.own();
            let first = own.end.is_none();
            if first {
                own.end = Some(end.clone());
            }
            first
        };
        if first {
            self.record_end(&end);
        }
        for (i, p) in self.parts.iter().enumerate() {
            if self.live[i] && !p.control().state().is_terminal() {
                let _ = p.control().cancel();
            }
        }
        self.live.iter_mut().for_each(|l| *l = false);
    }

    /// Part `i` failed with `e`: the others are cancelled and the stream ends with `e` (or
    /// as cancelled, when the caller cancelled it).
    fn fail(&mut self, i: usize, e: Error) -> Error {
        if self.control.inner.own().cancelled {
            self.finish(Err(Error::cancelled()));
            return Error::cancelled();
        }
        let k = self.parts.len();
        let e = if e.kind() == ErrorKind::Cancelled {
            e
        } else {
            e.context(format!("parallel stream part {} of {k}", i + 1))
        };
        self.finish(Err(e.clone()));
        e
    }

    /// Count the stream's end in the metrics, once for all its parts.
    fn record_end(&self, end: &Result<()>) {
        let inner = &self.control.inner;
        let st = self.control.stats();
        let (total, rows, bytes) = (
            inner.started.elapsed(),
            st.total_rows_received,
            st.total_bytes_received,
        );
        match end {
            Ok(()) => {
                crate::metrics::query_finished(&inner.entity, "success", None, total, rows, bytes)
            }
            // Counted as cancelled by the cancel call.
            Err(e) if e.kind() == ErrorKind::Cancelled => {
                crate::metrics::query_ended(&inner.entity, total, rows, bytes)
            }
            Err(e) => {
                let category = e.kind().category();
                crate::metrics::error(category, "stream");
                crate::metrics::query_finished(
                    &inner.entity,
                    "error",
                    Some(category),
                    total,
                    rows,
                    bytes,
                );
            }
        }
    }

    fn part_done(&mut self, i: usize) {
        self.live[i] = false;
        if let Ok(fd) = self.parts[i].control().merge_fd() {
            // SAFETY: the descriptor belongs to part `i`'s stream, alive in `self.parts`.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::event::epoll::delete(&self.control.inner.epoll, fd);
        }
    }

    fn step_unordered(&mut self) -> Result<Step> {
        let k = self.parts.len();
        // The part read last, while its chunk lasts (no lock, no wait).
        let c = self.current;
        if self.live[c] {
            if let Some(r) = self.parts[c].next_ready() {
                return Ok(Step::Row(r as *const [u8]));
            }
        }
        let mut pending = false;
        let mut paused = false;
        for j in 1..=k {
            let i = (c + j) % k;
            if !self.live[i] {
                continue;
            }
            match self.parts[i].next(Wait::NoWait) {
                Ok(Next::Row(r)) => {
                    let r = r as *const [u8];
                    self.current = i;
                    return Ok(Step::Row(r));
                }
                Ok(Next::Done) => self.part_done(i),
                Ok(Next::Paused) => paused = true,
                Ok(Next::WouldBlock) | Ok(Next::Timeout) => pending = true,
                Err(e) => return Err(self.fail(i, e)),
            }
        }
        Ok(if pending {
            Step::Pending
        } else if paused {
            Step::Paused
        } else {
            Step::Done
        })
    }

    fn step_ordered(&mut self) -> Result<Step> {
        let k = self.parts.len();
        let mut pending = false;
        let mut paused = false;
        let mut keys = Vec::new();
        for i in 0..k {
            if !self.live[i] || self.ordered.as_ref().is_some_and(|o| o.heads[i].is_some()) {
                continue;
            }
            loop {
                let ord = self.ordered.as_mut().expect("ordered");
                let got = match self.parts[i].next(Wait::NoWait) {
                    Ok(Next::Row(r)) => {
                        let data = merge::split_wrapped(r, ord.specs.len(), &mut keys);
                        match data {
                            Ok(data) => {
                                if accepts(ord, data) {
                                    let mut row = Vec::with_capacity(data.len() + 1);
                                    row.extend_from_slice(data);
                                    row.push(0);
                                    ord.heads[i] = Some(Head {
                                        keys: std::mem::take(&mut keys),
                                        row,
                                    });
                                    Ok(None)
                                } else {
                                    self.control.inner.filtered.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Ok(other) => Ok(Some(other)),
                    Err(e) => Err(e),
                };
                match got {
                    Ok(None) => {}
                    Ok(Some(Next::Done)) => self.part_done(i),
                    Ok(Some(Next::Paused)) => paused = true,
                    Ok(Some(_)) => pending = true,
                    Err(e) => return Err(self.fail(i, e)),
                }
                break;
            }
        }
        if pending {
            return Ok(Step::Pending);
        }
        if paused {
            return Ok(Step::Paused);
        }
        let ord = self.ordered.as_mut().expect("ordered");
        let mut best: Option<usize> = None;
        for i in 0..k {
            let Some(h) = &ord.heads[i] else { continue };
            best = match best {
                None => Some(i),
                Some(b) => {
                    let bh = ord.heads[b].as_ref().expect("head");
                    if merge::compare(&ord.specs, &h.keys, &bh.keys).is_lt() {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let Some(b) = best else {
            return Ok(Step::Done);
        };
        let head = ord.heads[b].take().expect("head");
        ord.out = head.row;
        let len = ord.out.len() - 1;
        Ok(Step::Row(&ord.out[..len] as *const [u8]))
    }

    /// Wait until a part has something, or `timeout`. A part whose reader is parked is read
    /// on this thread, as a serial stream's consumer reads its socket (see
    /// `stream::driver::Parked`): the wait covers its socket, after letting packets gather
    /// as that consumer would (`linger`). The others are read by their tasks, which tell of
    /// rows through their event fds (the epoll instance); a task that may park its reader is
    /// asked to (the merge waits), so that on a server-bound stream every part ends up read
    /// here, with no thread hand-over per chunk.
    fn wait_any(&self, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut fds = vec![self.control.inner.epoll.as_raw_fd()];
        let mut linger: Option<Duration> = None;
        let mut every_part_lingers = true;
        let mut asked = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            match p.control().parked_socket() {
                Some((fd, l)) => {
                    fds.push(fd);
                    match l {
                        Some(d) => linger = Some(linger.map_or(d, |x| x.min(d))),
                        None => every_part_lingers = false,
                    }
                }
                None => {
                    p.control().merge_waits(true);
                    asked.push(i);
                }
            }
        }
        let result = (|| {
            if fds.len() > 1 && every_part_lingers {
                if let Some(d) = linger {
                    let d = timeout.map_or(d, |t| d.min(t));
                    // Let packets gather; a part read by a task may end the wait sooner.
                    if self.wait_epoll(Some(d))? {
                        return Ok(());
                    }
                }
            }
            if fds.len() == 1 {
                return self.wait_epoll(timeout).map(|_| ());
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            crate::connection::transport::wait_any_readable(&fds, left)
                .map(|_| ())
                .map_err(|e| Error::io("parallel stream: waiting for the parts failed", &e))
        })();
        for i in asked {
            self.parts[i].control().merge_waits(false);
        }
        result
    }

    /// Wait on the parts' event fds alone, at most `timeout`; whether one is readable.
    fn wait_epoll(&self, timeout: Option<Duration>) -> Result<bool> {
        use rustix::event::epoll;
        let ts = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as _,
        });
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); 4];
        match epoll::wait(&self.control.inner.epoll, &mut events, ts.as_ref()) {
            Ok((ready, _)) => Ok(!ready.is_empty()),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(Error::io(
                "parallel stream: waiting for the parts failed",
                &std::io::Error::from(e),
            )),
        }
    }

    /// Up to `cap` rows at once; they stay valid until the next consuming call. Without ORDER
    /// BY the rows of a batch come from one part's chunk; with ORDER BY a batch holds one row.
    pub fn next_batch(&mut self, cap: usize, wait: Wait) -> Result<Batch<'_>> {
        if cap == 0 {
            return Err(Error::invalid("batch capacity must be at least 1"));
        }
        let first = match self.next(wait)? {
            Next::Row(r) => r as *const [u8],
            other => return Ok(Batch::Status(status(&other))),
        };
        let mut rows: Vec<*const [u8]> = vec![first];
        if self.ordered.is_none() {
            let c = self.current;
            while rows.len() < cap && self.left != Some(0) && self.skip == 0 {
                let Some(r) = self.parts[c].next_ready() else {
                    break;
                };
                rows.push(r as *const [u8]);
                if let Some(l) = self.left.as_mut() {
                    *l -= 1;
                }
                self.yielded += 1;
            }
            self.control
                .inner
                .yielded
                .store(self.yielded, Ordering::Relaxed);
        }
        // SAFETY: every pointer is a row of part `current`'s current chunk or the merge's
        // `out` buffer (see `next`), valid until the next consuming call on this stream.
        Ok(Batch::Rows(
            rows.into_iter().map(|p| unsafe { &*p }).collect(),
        ))
    }

    /// Fill `block` with the next rows (copied; see [`Stream::next_block`]): the first as
    /// `next` finds it (waiting as `wait` says), then the rows ready without waiting.
    pub fn next_block(
        &mut self,
        block: &mut Block,
        max_rows: usize,
        max_bytes: usize,
        wait: Wait,
    ) -> Result<Filled> {
        block.begin(max_rows)?;
        match self.next(wait)? {
            Next::Row(r) if crate::stream::block::has_nul(r) => {
                return Err(crate::stream::block::nul_row_error("a row"))
            }
            Next::Row(r) => block.push(r),
            other => return Ok(Filled::Status(status(&other))),
        }
        while block.len() < max_rows && block.data().len() < max_bytes {
            match self.next(Wait::NoWait) {
                // The end, an error or nothing ready: the next call reports it.
                Ok(Next::Row(r)) if !crate::stream::block::has_nul(r) => block.push(r),
                _ => break,
            }
        }
        Ok(Filled::Rows(block.len()))
    }

    /// Deliver every row to `f` on this thread until the end, a stop, a drained pause, or an
    /// error.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8]) -> bool) -> Result<ForEachEnd> {
        loop {
            if let Some(end) = ForEachEnd::after(self.next(Wait::Forever)?, &mut f) {
                return Ok(end);
            }
        }
    }
}

/// A status (not a row) without the stream's lifetime.
fn status(n: &Next<'_>) -> Next<'static> {
    match n {
        Next::Done | Next::Row(_) => Next::Done,
        Next::WouldBlock => Next::WouldBlock,
        Next::Timeout => Next::Timeout,
        Next::Paused => Next::Paused,
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    fn is_sync<T: Send + Sync>() {}
    is_send::<ParallelStream>();
    is_sync::<ParallelControl>();
}

impl Drop for ParallelStream {
    /// Freeing a running stream cancels its parts (each part's free sends its
    /// CancelRequest); it counts as one cancelled query.
    fn drop(&mut self) {
        let running = {
            let own = self.control.inner.own();
            own.end.is_none() && !own.cancelled
        };
        if running {
            crate::metrics::query_cancelled(&self.control.inner.entity);
            let inner = &self.control.inner;
            let st = self.control.stats();
            crate::metrics::query_ended(
                &inner.entity,
                inner.started.elapsed(),
                st.total_rows_received,
                st.total_bytes_received,
            );
        }
    }
}

fn wait_is_zero(w: Wait) -> bool {
    matches!(w, Wait::For(d) if d.is_zero())
}

/// Whether the merge's own filters (ordered streams) accept `row`.
fn accepts(ord: &Ordered, row: &[u8]) -> bool {
    ord.json_filters
        .iter()
        .all(|f| f.eval(row).unwrap_or(false))
        && ord.filters.iter().all(|f| f(row))
}

/// How the parts were set up.
struct Started {
    /// The parts started (all of them unless `first_error`).
    parts: Vec<Option<Stream>>,
    first_error: Option<Error>,
    specs: Option<Vec<KeySpec>>,
    split: Split,
}

/// Run `query` as a parallel stream of `query.partitions()` parts (at least 2).
pub(crate) fn execute(client: &Client, query: &Query) -> Result<ParallelStream> {
    let k = query.partitions();
    if k < 2 {
        return Err(Error::invalid(
            "execute_parallel: the query is not parallel (set Query::parallel to 2 or more)",
        ));
    }
    let mut options = *query.options();
    let m = options.memory;
    let share = m.bytes / k as usize;
    options.memory = MemoryLimits::new(share, m.warn_ratio, m.fail_ratio).map_err(|e| {
        Error::invalid(format!(
            "parallel stream: the memory budget of {} bytes is shared by {k} parts, {share} \
             bytes each: {}; raise the budget (fw_query_max_memory) or use fewer parts",
            m.bytes,
            e.message()
        ))
    })?;
    let entity = query.source().as_str().to_string();
    crate::metrics::query_started(&entity);
    let t0 = Instant::now();
    let started = {
        let client = client.clone();
        let query = query.clone();
        crate::runtime::block_on(async move { start_parts(&client, &query, options).await })
    };
    // A part that failed to start: the others are cancelled (dropped here, on the caller's
    // thread, as a freed stream is).
    let started = match started {
        Ok(Started {
            parts,
            first_error: Some(e),
            ..
        }) => {
            drop(parts);
            Err(e)
        }
        Ok(Started {
            parts,
            first_error: None,
            specs,
            split,
        }) => Ok((
            parts
                .into_iter()
                .map(|p| p.expect("started"))
                .collect::<Vec<_>>(),
            specs,
            split,
        )),
        Err(e) => Err(e),
    };
    let (parts, specs, split) = match started {
        Ok(s) => s,
        Err(e) => {
            crate::metrics::query_finished(
                &entity,
                "error",
                Some(e.kind().category()),
                t0.elapsed(),
                0,
                0,
            );
            return Err(e);
        }
    };
    let epoll =
        rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).map_err(|e| {
            Error::io(
                "parallel stream: could not create an epoll instance",
                &std::io::Error::from(e),
            )
        })?;
    let mut controls = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        // The part's readiness descriptor, for what its reader task delivers; a part whose
        // reader is parked is read by the merge itself (see `ParallelStream::wait_any`).
        let fd = p.control().merge_fd()?;
        // SAFETY: the descriptor belongs to the part's stream, which outlives the epoll
        // instance's use of it (parts are dropped with the stream; the instance too).
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::event::epoll::add(
            &epoll,
            bfd.as_fd(),
            rustix::event::epoll::EventData::new_u64(i as u64),
            rustix::event::epoll::EventFlags::IN,
        )
        .map_err(|e| {
            Error::io(
                "parallel stream: could not watch a part",
                &std::io::Error::from(e),
            )
        })?;
        controls.push(p.control().clone());
    }
    let k = parts.len();
    let ordered = specs.map(|specs| Ordered {
        specs,
        heads: (0..k).map(|_| None).collect(),
        out: Vec::new(),
        filters: query.filters().to_vec(),
        json_filters: query.json_filters().to_vec(),
    });
    Ok(ParallelStream {
        parts,
        control: ParallelControl {
            inner: Arc::new(ControlInner {
                parts: controls,
                epoll,
                own: Mutex::new(Own::default()),
                yielded: AtomicU64::new(0),
                filtered: AtomicU64::new(0),
                entity,
                started: t0,
            }),
        },
        live: vec![true; k],
        ordered,
        skip: query.offset_value().unwrap_or(0),
        left: query.limit_value(),
        current: 0,
        yielded: 0,
        split,
    })
}

/// Run `sql` on a connection of `client`; a pooled connection that turns out dead before the
/// request went out is replaced by a new one, once.
async fn setup(client: &Client, sql: &str) -> Result<(Connection, Vec<session::Answer>)> {
    let (mut conn, pooled) = client.part_connection().await?;
    match session::simple(&mut conn, sql).await {
        Ok(a) => Ok((conn, a)),
        Err(e) if pooled && e.is_request_unsent() => {
            let mut conn = client.new_connection().await?;
            let a = session::simple(&mut conn, sql).await?;
            Ok((conn, a))
        }
        Err(e) => {
            if e.kind() == ErrorKind::Server {
                conn.close();
            }
            Err(e)
        }
    }
}

async fn start_parts(client: &Client, q: &Query, options: StreamOptions) -> Result<Started> {
    let k = q.partitions();
    let src = q.source().quoted();
    let lit = session::literal(&src);
    let mut sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; \
         SELECT pg_export_snapshot(), current_setting('server_version_num'), \
         (SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass({lit})), \
         (SELECT (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::text \
          FROM pg_class c WHERE c.oid = to_regclass({lit}))"
    );
    let probe = partition::key_probe_sql(q);
    if let Some(p) = &probe {
        sql.push_str("; ");
        sql.push_str(p);
    }
    // With a partition expression: what a range split would cost (see `Split::Ranges`).
    let expr = q.partition_expr().map(|_| q.partition_sql());
    if let Some(e) = &expr {
        let (range_probe, scan) = partition::range_probe_sql(e, &src);
        sql.push_str(&format!("; {range_probe}; {scan}"));
    }
    let (first, answers) = setup(client, &sql)
        .await
        .map_err(|e| e.context("parallel stream: could not open the snapshot's transaction"))?;
    let mut conns: Vec<Connection> = vec![first];
    let fail = |conns: Vec<Connection>, e: Error| -> Error {
        for c in conns {
            c.close();
        }
        e
    };
    let info = answers
        .first()
        .and_then(|a| a.rows.first())
        .cloned()
        .unwrap_or_default();
    let text = |i: usize| info.get(i).cloned().flatten();
    let (Some(snapshot), Some(version)) = (text(0), text(1)) else {
        return Err(fail(
            conns,
            Error::protocol("parallel stream: the server did not return its snapshot"),
        ));
    };
    let version: u32 = version.parse().unwrap_or(0);
    let relkind = text(2);
    let pages: u64 = text(3).and_then(|p| p.parse().ok()).unwrap_or(0);
    let split = match expr {
        Some(expr) => {
            // The two EXPLAINs come last: the range probe's, then the scan's.
            let cost = |a: Option<&session::Answer>| {
                a.and_then(|a| a.rows.first())
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|line| partition::plan_cost(&line))
            };
            let n = answers.len();
            let (probe_cost, scan_cost) = match n {
                2.. => (cost(answers.get(n - 2)), cost(answers.get(n - 1))),
                _ => (None, None),
            };
            let cheap = matches!((probe_cost, scan_cost), (Some(p), Some(s))
                if partition::ranges_are_cheap(p, s));
            if cheap {
                let bounds_sql = partition::range_bounds_sql(&expr, &src);
                match session::simple(&mut conns[0], &bounds_sql).await {
                    Ok(a) => range_split(expr, a.first(), k),
                    Err(e) => {
                        return Err(fail(
                            conns,
                            e.context(
                                "parallel stream: could not read the partition expression's range",
                            ),
                        ))
                    }
                }
            } else {
                Split::Modulo(expr)
            }
        }
        None => match relkind.as_deref() {
            Some("r") | Some("m") if version >= MIN_VERSION_TID_RANGE => Split::Blocks { pages },
            Some("r") | Some("m") => {
                return Err(fail(
                    conns,
                    Error::invalid(format!(
                        "parallel stream: splitting the table {src} by block ranges needs TID \
                         range scans (PostgreSQL 14 or later; the server is {version}); give a \
                         partition expression with fw_query_partition_by (an integer column \
                         such as its key)"
                    )),
                ))
            }
            other => {
                let what = match other {
                    Some("v") => "a view",
                    Some("p") => "a partitioned table",
                    Some("f") => "a foreign table",
                    Some(_) => "not a plain table",
                    None => "not a table (or does not exist)",
                };
                return Err(fail(
                    conns,
                    Error::invalid(format!(
                        "parallel stream: {src} is {what}, which cannot be split by block \
                         ranges: add a partition expression with fw_query_partition_by(q, \
                         expr), an integer expression over its columns (e.g. its key \
                         column), or run the query serially (fw_query_parallel(q, 1))"
                    )),
                ));
            }
        },
    };
    let specs = match probe {
        None => None,
        Some(_) => {
            let types = answers.get(1).map(|a| a.types.clone()).unwrap_or_default();
            let terms: Vec<_> = q.order_terms().collect();
            if types.len() != terms.len() {
                return Err(fail(
                    conns,
                    Error::protocol("parallel stream: the ORDER BY keys were not described"),
                ));
            }
            let mut specs = Vec::with_capacity(terms.len());
            for (i, ((expr, coll, dir), oid)) in terms.iter().zip(types).enumerate() {
                let ty = match KeyType::of(oid, i + 1, expr, *coll) {
                    Ok(t) => t,
                    Err(e) => return Err(fail(conns, e)),
                };
                if ty == KeyType::Time && version < MIN_VERSION_TID_RANGE {
                    return Err(fail(
                        conns,
                        Error::invalid(format!(
                            "parallel stream: ORDER BY term {} ({expr}) is a date or timestamp, \
                             which the merge compares exactly only from PostgreSQL 14 (the \
                             server is {version}); run the query serially",
                            i + 1
                        )),
                    ));
                }
                specs.push(KeySpec { ty, dir: *dir });
            }
            Some(specs)
        }
    };
    let import = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
        session::literal(&snapshot)
    );
    for i in 1..k {
        match setup(client, &import).await {
            Ok((c, _)) => conns.push(c),
            Err(e) => {
                return Err(fail(
                    conns,
                    e.context(format!(
                        "parallel stream: part {} of {k} could not import the snapshot of part 1 \
                         (all parts must read one snapshot on one server; a server that cannot \
                         export or import snapshots, a connection to another host, or a pooler \
                         that does not keep a transaction on one server session cannot run a \
                         parallel stream: run the query serially)",
                        i + 1
                    )),
                ))
            }
        }
    }
    // Every part's statement, then the parts, started at once.
    let mut msgs = Vec::with_capacity(k as usize);
    for i in 0..k {
        let st = partition::part_statement(
            q,
            &split,
            i,
            k,
            specs
                .as_ref()
                .map(|s| {
                    // The key types in term order.
                    s.iter().map(|x| x.ty).collect::<Vec<_>>()
                })
                .as_deref(),
        )
        .and_then(|st| partition::encode_with_commit(&st));
        match st {
            Ok(m) => msgs.push(m),
            Err(e) => return Err(fail(conns, e)),
        }
    }
    let entity = q.source().as_str().to_string();
    let (json_filters, filters) = if specs.is_some() {
        // Ordered: the parts' rows carry their keys; the merge filters the rows it cuts out.
        (Vec::new(), Vec::new())
    } else {
        (q.json_filters().to_vec(), q.filters().to_vec())
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (conn, msg)) in conns.into_iter().zip(msgs).enumerate() {
        let client = client.clone();
        let entity = entity.clone();
        let json_filters = json_filters.clone();
        let filters = filters.clone();
        tasks.spawn(async move {
            let s = client
                .start_part(conn, &entity, options, &json_filters, filters, &msg)
                .await;
            (i, s)
        });
    }
    let mut parts: Vec<Option<Stream>> = (0..k).map(|_| None).collect();
    let mut first_error: Option<Error> = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(s))) => parts[i] = Some(s),
            Ok((i, Err(e))) => {
                if first_error.is_none() {
                    first_error = Some(e.context(format!("parallel stream part {} of {k}", i + 1)));
                }
            }
            Err(_) => {
                first_error.get_or_insert(Error::new(
                    ErrorKind::Panic,
                    "a parallel stream part's start task ended without a result",
                ));
            }
        }
    }
    Ok(Started {
        parts,
        first_error,
        specs,
        split,
    })
}

/// The range split of the values the bounds query found (`min`, `max` as text, whether some
/// value is NULL): modulo when there are no values or they are not integers.
fn range_split(expr: String, answer: Option<&session::Answer>, k: u32) -> Split {
    let row = answer.and_then(|a| a.rows.first());
    let field = |i: usize| row.and_then(|r| r.get(i).cloned().flatten());
    let lo = field(0).and_then(|v| v.parse::<i64>().ok());
    let hi = field(1).and_then(|v| v.parse::<i64>().ok());
    let nulls = field(2).as_deref() != Some("f");
    match (lo, hi) {
        (Some(lo), Some(hi)) => Split::Ranges {
            expr,
            bounds: partition::value_bounds(lo, hi, k),
            nulls,
        },
        _ => Split::Modulo(expr),
    }
}

impl Client {
    /// Run a parallel query ([`Query::parallel`] of 2 or more): see docs/parallel.md.
    pub fn execute_parallel(&self, query: &Query) -> Result<ParallelStream> {
        execute(self, query)
    }
}
