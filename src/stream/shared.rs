//! State shared by a stream's reader and its consumer: the byte-bounded chunk channel,
//! pause/cancel flags, the reader's place (see [`super::driver`]), and the counters behind
//! the stream's statistics.
//!
//! One mutex guards it; it is taken once per chunk by each side (never per row). The consumer
//! blocks on a condvar (it is a host thread, outside the runtime), or in poll(2) on the socket
//! when it reads it itself; a reader task awaits a `tokio::sync::Notify`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::chunk::Chunk;
use super::options::StreamOptions;
use super::place::{Place, Watchdog};
use super::RowPredicate;
use crate::connection::CancelToken;
use crate::error::{Error, Result};

/// The stream's life cycle as reported to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    Running,
    Paused,
    Completed,
    Failed,
    Cancelled,
}

impl StreamState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StreamState::Completed | StreamState::Failed | StreamState::Cancelled
        )
    }
}

/// How the reader ended, delivered to the consumer after the last buffered row.
#[derive(Debug)]
pub(crate) enum Terminal {
    Done,
    Failed(Error),
}

pub(crate) struct Inner {
    pub queue: VecDeque<Chunk>,
    pub queued_rows: usize,
    /// Rows of `queue` that the consumer's own socket reads produced (always at its front:
    /// the consumer reads only when the queue is empty). They are not rows read ahead for
    /// it, so they are not counted as waiting (see [`Inner::waiting_rows`]).
    pub consumer_read_rows: usize,
    pub queued_bytes: usize,
    /// Bytes of the chunks the consumer holds (the one being read, a batch's earlier chunks).
    pub held_bytes: usize,
    /// Bytes in the reader's socket buffer (unparsed and not yet handed over).
    pub reader_bytes: usize,
    pub state: StreamState,
    /// Set by the reader when it is finished; consumed after the queue is drained.
    pub terminal: Option<Terminal>,
    pub consumer_waiting: bool,
    pub reader_waiting: bool,
    // pause
    pub pause_started: Option<Instant>,
    pub pause_reason: Option<String>,
    pub pause_timeout: Option<Duration>,
    pub pause_count: u64,
    pub paused_total: Duration,
    pub pause_timeouts: u64,
    // counters
    pub rows_received: u64,
    pub bytes_received: u64,
    pub chunks_received: u64,
    pub first_row_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub memory_warnings: u64,
    pub warn_armed: bool,
    pub peak_bytes: usize,
    /// The eventfd (if created) has been signalled and not yet drained.
    pub fd_armed: bool,
    /// Where the stream's reader is: who reads the socket (see [`super::driver`]).
    pub place: Place,
    /// The watchdog of a parked reader (see [`Watchdog`]).
    pub watchdog: Watchdog,
}

impl Inner {
    /// Rows waiting for the consumer in the channel, read ahead by a reader task: the
    /// occupancy that adaptive chunking and `fraiseql_channel_occupancy_rows` sample.
    pub fn waiting_rows(&self) -> usize {
        self.queued_rows - self.consumer_read_rows
    }

    /// Take the first queued chunk, moving its bytes from queued to held.
    pub fn pop_chunk(&mut self) -> Option<Chunk> {
        let c = self.queue.pop_front()?;
        self.queued_rows -= c.len();
        self.consumer_read_rows -= self.consumer_read_rows.min(c.len());
        self.queued_bytes -= c.bytes;
        self.held_bytes += c.bytes;
        Some(c)
    }

    /// Drop every queued chunk (cancel, free); returns them (to drop outside the lock) and
    /// the number of rows they held.
    pub fn drain_queue(&mut self) -> (Vec<Chunk>, usize) {
        let rows = std::mem::take(&mut self.queued_rows);
        self.consumer_read_rows = 0;
        self.queued_bytes = 0;
        (self.queue.drain(..).collect(), rows)
    }

    pub fn held_total(&self) -> usize {
        self.queued_bytes + self.held_bytes + self.reader_bytes
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub consumer_cv: Condvar,
    pub reader_wake: tokio::sync::Notify,
    /// Wakes the parked reader's watchdog (see [`Watchdog::BackedOff`]).
    pub watchdog_wake: tokio::sync::Notify,
    /// Rows handed to the consumer's caller. Written by the consumer only.
    pub rows_yielded: AtomicU64,
    /// Rows rejected by filters: by the consumer (C predicates, `fetch_add`) and by the
    /// reader (built-in JSON predicates, added under the lock together with `rows_received`).
    pub rows_filtered: AtomicU64,
    /// Built-in JSON predicates, evaluated by the reader before rows enter the channel.
    pub json_filters: Vec<Arc<dyn RowPredicate>>,
    /// Rows per chunk the reader uses now (changed by adaptive chunking).
    pub chunk_size: AtomicUsize,
    /// Set by `cancel`: the consumer stops handing out rows of the chunk it holds.
    pub cancelled: AtomicBool,
    pub options: StreamOptions,
    pub entity: String,
    pub started: Instant,
    efd: OnceLock<OwnedFd>,
    /// The event fd was asked for by an event loop (`Stream::fd`), which does not read the
    /// socket: the reader must run as a task. Not set when the fd only tells a parallel
    /// stream's merge, which reads parked parts itself, that a part has something
    /// ([`Shared::merge_event_fd`]).
    watched: AtomicBool,
    /// Wakes a consumer blocked on the socket when a control event needs it (see
    /// [`Shared::unpark`]); created when the consumer first reads the socket itself.
    interrupt: OnceLock<OwnedFd>,
    pub owner_pid: u32,
    /// Cancels the query running on the stream's connection.
    pub cancel_token: CancelToken,
    /// The stream counts as a query in the metrics (its end, a cancel). Off for the parts
    /// of a parallel stream, which counts once for all of them (`crate::parallel`).
    pub query_metrics: bool,
}

impl Shared {
    pub fn new(entity: String, options: StreamOptions, cancel_token: CancelToken) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                queued_rows: 0,
                consumer_read_rows: 0,
                queued_bytes: 0,
                held_bytes: 0,
                reader_bytes: 0,
                state: StreamState::Running,
                terminal: None,
                consumer_waiting: false,
                reader_waiting: false,
                pause_started: None,
                pause_reason: None,
                pause_timeout: None,
                pause_count: 0,
                paused_total: Duration::ZERO,
                pause_timeouts: 0,
                rows_received: 0,
                bytes_received: 0,
                chunks_received: 0,
                first_row_at: None,
                ended_at: None,
                memory_warnings: 0,
                warn_armed: true,
                peak_bytes: 0,
                fd_armed: false,
                place: Place::Task { may_park: false },
                watchdog: Watchdog::Off,
            }),
            consumer_cv: Condvar::new(),
            reader_wake: tokio::sync::Notify::new(),
            watchdog_wake: tokio::sync::Notify::new(),
            rows_yielded: AtomicU64::new(0),
            rows_filtered: AtomicU64::new(0),
            json_filters: Vec::new(),
            chunk_size: AtomicUsize::new(options.initial_chunk_size()),
            cancelled: AtomicBool::new(false),
            options,
            entity,
            started: Instant::now(),
            efd: OnceLock::new(),
            watched: AtomicBool::new(false),
            interrupt: OnceLock::new(),
            owner_pid: std::process::id(),
            cancel_token,
            query_metrics: true,
        }
    }

    /// A part of a parallel stream: not counted as a query of its own (see `query_metrics`).
    pub fn without_query_metrics(mut self) -> Shared {
        self.query_metrics = false;
        self
    }

    /// Set the built-in JSON predicates (before the reader starts).
    pub fn with_json_filters(mut self, filters: Vec<Arc<dyn RowPredicate>>) -> Shared {
        self.json_filters = filters;
        self
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is caught at the boundary; the data stays consistent
        // enough to report and tear down, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake a blocked consumer and signal the event fd. Call with the lock held, after making
    /// something available (a chunk, the terminal, a state change).
    pub fn wake_consumer(&self, g: &mut Inner) {
        if g.consumer_waiting {
            self.consumer_cv.notify_all();
        }
        if !g.fd_armed {
            if let Some(fd) = self.efd.get() {
                signal_eventfd(fd);
                g.fd_armed = true;
            }
        }
    }

    /// Block the consumer until the reader (or a control call) wakes it, at most `timeout`.
    pub fn wait_for_reader<'a>(
        &self,
        mut g: MutexGuard<'a, Inner>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, Inner> {
        g.consumer_waiting = true;
        let mut g = match timeout {
            None => self.consumer_cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(t) => {
                self.consumer_cv
                    .wait_timeout(g, t)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        g.consumer_waiting = false;
        g
    }

    /// Drain the event fd: the consumer found nothing to return. Call with the lock held.
    pub fn disarm_fd(&self, g: &mut Inner) {
        if g.fd_armed {
            if let Some(fd) = self.efd.get() {
                drain_eventfd(fd);
            }
            g.fd_armed = false;
        }
    }

    /// The readiness fd, created on first use: readable whenever a consuming call has
    /// something to return. An event loop waits on it instead of reading: from then on a
    /// reader task reads ahead.
    pub fn event_fd(&self) -> Result<i32> {
        let fd = self.merge_event_fd()?;
        if !self.watched.swap(true, Ordering::SeqCst) {
            let mut g = self.lock();
            let parked = self.unpark(&mut g);
            drop(g);
            if let Some(p) = parked {
                p.spawn();
            }
        }
        Ok(fd)
    }

    /// The readiness fd for a parallel stream's merge, which waits on it and on the sockets
    /// of the parts whose readers are parked, and reads those itself: unlike
    /// [`Shared::event_fd`], it leaves the reader where it is.
    pub fn merge_event_fd(&self) -> Result<i32> {
        if let Some(fd) = self.efd.get() {
            return Ok(fd.as_raw_fd());
        }
        let mut g = self.lock();
        if self.efd.get().is_none() {
            let fd = new_eventfd().map_err(|e| {
                Error::io(
                    "could not create the stream's event fd",
                    &std::io::Error::from(e),
                )
            })?;
            let _ = self.efd.set(fd);
            let ready = !g.queue.is_empty()
                || g.terminal.is_some()
                || g.state.is_terminal() && g.state != StreamState::Completed;
            g.fd_armed = false;
            if ready {
                self.wake_consumer(&mut g);
            }
        }
        Ok(self.efd.get().map(|f| f.as_raw_fd()).unwrap_or(-1))
    }

    /// Whether an event loop watches the stream through its event fd.
    pub fn has_event_fd(&self) -> bool {
        self.watched.load(Ordering::SeqCst)
    }

    /// The descriptor that interrupts a consumer's wait on the socket, created on first
    /// use (`None` if it cannot be: the reader then runs as a task).
    pub fn interrupt_fd(&self) -> Option<i32> {
        if let Some(fd) = self.interrupt.get() {
            return Some(fd.as_raw_fd());
        }
        let fd = new_eventfd().ok()?;
        // Only the consumer creates it (under the lock): the set cannot race.
        let _ = self.interrupt.set(fd);
        self.interrupt.get().map(|f| f.as_raw_fd())
    }

    /// Wake a consumer blocked on the socket (see [`Shared::unpark`]).
    pub fn interrupt(&self) {
        if let Some(fd) = self.interrupt.get() {
            signal_eventfd(fd);
        }
    }

    /// Reset the interrupt fd after the consumer saw it readable.
    pub fn drain_interrupt(&self) {
        if let Some(fd) = self.interrupt.get() {
            drain_eventfd(fd);
        }
    }

    /// Record the end of a pause (explicit resume or timeout). Lock held.
    pub fn end_pause(&self, g: &mut Inner, by_timeout: bool) {
        use crate::metrics::PauseEnd;
        let how = if by_timeout {
            PauseEnd::TimedOut
        } else {
            PauseEnd::Resumed
        };
        self.close_pause(g, how);
    }

    /// Record the end of a pause because the stream itself ends (cancel, end of the query):
    /// not a resume. Lock held.
    pub fn end_pause_at_end(&self, g: &mut Inner) {
        self.close_pause(g, crate::metrics::PauseEnd::StreamEnded);
    }

    fn close_pause(&self, g: &mut Inner, how: crate::metrics::PauseEnd) {
        if let Some(started) = g.pause_started.take() {
            let d = started.elapsed();
            g.paused_total += d;
            g.pause_reason = None;
            if how == crate::metrics::PauseEnd::TimedOut {
                g.pause_timeouts += 1;
            }
            if g.state == StreamState::Paused {
                g.state = StreamState::Running;
            }
            crate::metrics::pause_ended(&self.entity, d, how);
        }
    }

    /// End a live stream because the library is shutting down: its consumer gets
    /// `Shutdown`. A parked reader's connection is closed (its query is cancelled by the
    /// caller: see `super::registry`).
    pub fn fail_for_shutdown(&self) {
        let mut g = self.lock();
        if g.terminal.is_none() && !g.state.is_terminal() {
            g.state = StreamState::Failed;
            g.terminal = Some(Terminal::Failed(Error::shutdown()));
            g.ended_at.get_or_insert_with(Instant::now);
            self.wake_consumer(&mut g);
        }
        let parked = self.unpark(&mut g);
        if parked.is_some() {
            g.place = Place::Ended;
        }
        drop(g);
        drop(parked);
    }

    pub fn rows_yielded(&self) -> u64 {
        self.rows_yielded.load(Ordering::Relaxed)
    }
    pub fn rows_filtered(&self) -> u64 {
        self.rows_filtered.load(Ordering::Relaxed)
    }
}

/// A new non-blocking, close-on-exec eventfd with a zero count.
fn new_eventfd() -> rustix::io::Result<OwnedFd> {
    use rustix::event::{eventfd, EventfdFlags};
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// Make an eventfd we own readable. Cannot fail short of the count overflowing (2^64 - 2
/// signals without a drain), when the fd is readable anyway.
fn signal_eventfd(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Reset a non-blocking eventfd we own (unreadable until signalled again). `EAGAIN` means
/// it was not signalled: nothing to reset.
fn drain_eventfd(fd: &OwnedFd) {
    let mut v = [0u8; 8];
    let _ = rustix::io::read(fd, &mut v);
}
