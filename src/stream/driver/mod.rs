//! Who reads a stream's socket. A stream's reader ([`Reader`]: its connection, read buffer
//! and framer) is always in exactly one [`Place`], kept in the stream's shared state under
//! its lock; every hand-over between the calling thread and a runtime task happens here:
//!
//! * [`Place::Caller`]: `execute` started the query on the calling thread
//!   ([`Reader::start_on_caller`], `thread`), as libpq does; a small result ends there.
//! * [`Place::Parked`]: no thread runs the reader; the consumer, finding no chunk queued,
//!   reads the socket on its own thread ([`consumer_turn`]), as libpq and a minimal client
//!   do. Only for plain sockets started on the calling thread.
//! * [`Place::ConsumerReading`]: the consumer took the parked reader and reads (it may be
//!   blocked in poll(2) on the socket and the stream's interrupt descriptor).
//! * [`Place::Task`]: a runtime task runs the reader (`task`), reading ahead of the consumer
//!   within the budget. `may_park`: it parks the reader again when the consumer waits for
//!   rows and nothing is queued (the consumer caught up).
//! * [`Place::Ended`]: the stream ended; the reader is gone.
//!
//! A parked reader goes to a task when something needs one ([`Shared::needs_task`]: a pause
//! and its timeout, a cancel, an event fd for an event loop, shutdown), when the budget has
//! no room for a read on the consumer's thread, or when it stayed parked [`TAKE_OVER_AFTER`]
//! while the consumer was busy (the watchdog, [`watchdog_task`]: the task reads ahead).
//! docs/architecture.md draws the transitions.
//!
//! The race guards are here too: [`ConsumerReadGuard`] ends the stream if the consumer's read
//! panics, [`TerminalGuard`] if a reader task ends without a terminal state.

mod task;
mod thread;

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::reader::framer::Flow;
use super::reader::plan::Pending;
use super::reader::Reader;
use super::shared::{Inner, Shared, StreamState, Terminal};
use crate::error::{Error, ErrorKind};
use crate::metrics;

use super::place::Opaque;
pub(crate) use super::place::{Place, Watchdog};

impl Inner {
    pub(crate) fn is_parked(&self) -> bool {
        matches!(self.place, Place::Parked(_))
    }

    /// A reader task runs that may park the reader for the consumer.
    pub(crate) fn task_may_park(&self) -> bool {
        matches!(self.place, Place::Task { may_park: true })
    }

    /// Take the parked reader for a task (the caller spawns it, see [`Parked::spawn`], after
    /// releasing the lock); it may be parked again later.
    #[must_use]
    pub(crate) fn take_parked(&mut self) -> Option<Parked> {
        if !self.is_parked() {
            return None;
        }
        match std::mem::replace(&mut self.place, Place::Task { may_park: true }) {
            Place::Parked(p) => Some(p.open()),
            _ => unreachable!("checked above"),
        }
    }
}

impl Shared {
    /// A control event (pause, cancel, an event fd, shutdown) needs the stream's reader to
    /// run as a task: take it when it is parked (the caller spawns it, see
    /// [`Parked::spawn`], after releasing the lock), or wake the consumer that is reading
    /// with it, which hands it over when its read returns (see [`Shared::needs_task`]).
    /// Lock held.
    #[must_use]
    pub(crate) fn unpark(&self, g: &mut Inner) -> Option<Parked> {
        if matches!(g.place, Place::ConsumerReading) {
            self.interrupt();
        }
        g.take_parked()
    }

    /// Whether the reader must not stay parked: paused, cancelled, ended by shutdown, or
    /// watched through the event fd. Lock held.
    pub(crate) fn needs_task(&self, g: &Inner) -> bool {
        g.pause_started.is_some()
            || g.state == StreamState::Cancelled
            || g.terminal.is_some()
            || self.has_event_fd()
    }
}

/// A stream's reader that no thread runs (see [`Place::Parked`]). On a client-bound stream
/// the consumer reading its own socket halves the threads at work and removes the two
/// context switches per chunk (about a third of the client's CPU time with a task:
/// docs/performance.md). Nothing reads ahead meanwhile: the kernel's socket buffers do, as
/// for libpq.
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
/// for rows while a task reads gets the reader back (see `task::wait_for_room`).
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

/// The longest the watchdog sleeps while the consumer keeps waiting on the socket (a slow
/// query): it then wakes ten times a second rather than every [`TAKE_OVER_AFTER`].
const WATCHDOG_IDLE_MAX: Duration = Duration::from_millis(100);

/// Park `reader` in its stream; lock held. Returns whether the caller must start a watchdog
/// task for it (none runs yet).
fn park(reader: Reader, g: &mut Inner, need: Option<Pending>) -> bool {
    let start = g.watchdog == Watchdog::Off;
    if start {
        g.watchdog = Watchdog::Running;
    }
    g.place = Place::Parked(Opaque::new(Parked {
        reader: Box::new(reader),
        need,
        since: Instant::now(),
    }));
    start
}

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
            // Backed off, and the consumer has rows again (see `Watchdog::BackedOff`).
            _ = shared.watchdog_wake.notified() => {}
        }
        let mut g = shared.lock();
        let now = Instant::now();
        let due = match &g.place {
            Place::Parked(p) => {
                let due = p.get::<Parked>().since + TAKE_OVER_AFTER;
                idle = TAKE_OVER_AFTER;
                g.watchdog = Watchdog::Running;
                (due > now).then_some(due)
            }
            Place::ConsumerReading => {
                idle = (idle * 2).min(WATCHDOG_IDLE_MAX);
                g.watchdog = Watchdog::BackedOff;
                Some(now + idle)
            }
            Place::Caller | Place::Task { .. } | Place::Ended => {
                g.watchdog = Watchdog::Off;
                return;
            }
        };
        match due {
            Some(due) => at = tokio::time::Instant::from_std(due),
            None => {
                let parked = g.take_parked();
                g.watchdog = Watchdog::Off;
                drop(g);
                if let Some(p) = parked {
                    p.spawn();
                }
                return;
            }
        }
    }
}

/// For a parallel stream's merge, which waits on several parts at once: the socket of the
/// stream's parked reader (it reads it through [`consumer_turn`] once readable) and how long
/// to let packets gather before waiting on it (see `Reader::linger`); `None` when no reader
/// is parked. The merge only polls the descriptor: should a task take the reader meanwhile,
/// the stream's event fd tells of what the task delivers.
pub(crate) fn parked_socket(shared: &Shared) -> Option<(i32, Option<Duration>)> {
    use std::os::fd::AsRawFd;
    let g = shared.lock();
    let Place::Parked(p) = &g.place else {
        return None;
    };
    let p = p.get::<Parked>();
    let fd = p.reader.conn.transport.plain_socket()?.as_raw_fd();
    Some((fd, p.reader.linger(true)))
}

/// A part of a parallel stream on a plain socket: its reader task, started by the runtime,
/// may park the reader for the merge to read (see [`merge_waits`]). Before the task starts.
pub(crate) fn let_task_park(shared: &Shared) {
    let mut g = shared.lock();
    if matches!(g.place, Place::Task { may_park: false }) {
        g.place = Place::Task { may_park: true };
    }
}

/// For a parallel stream's merge: whether it waits for rows of this stream (`on`) or has
/// stopped waiting. A reader task that may park parks its reader for the merge to read
/// (as for a consumer blocked in `next`, see `task::wait_for_room`).
pub(crate) fn merge_waits(shared: &Shared, on: bool) {
    let mut g = shared.lock();
    g.consumer_waiting = on;
    if on && g.task_may_park() && g.queue.is_empty() && !shared.needs_task(&g) {
        shared.reader_wake.notify_one();
    }
}

/// The consumer found no chunk queued and the reader parked: read the socket on this thread
/// (see [`Parked`]), waiting at most `wait` (`None`: without limit; zero: not at all) for
/// data or for a control event ([`Shared::unpark`]), and put the reader back in its place
/// (parked, or to a task when something needs one). Lock held on entry and on return;
/// returns whether rows came.
pub(crate) fn consumer_turn<'a>(
    shared: &'a Shared,
    mut g: MutexGuard<'a, Inner>,
    wait: Option<Duration>,
) -> (MutexGuard<'a, Inner>, bool) {
    let Some(interrupt) = shared.interrupt_fd() else {
        // No descriptor to spare: a task reads this stream from now on.
        let parked = g.take_parked();
        g.place = Place::Task { may_park: false };
        drop(g);
        if let Some(p) = parked {
            p.spawn();
        }
        return (shared.lock(), false);
    };
    let parked = match std::mem::replace(&mut g.place, Place::ConsumerReading) {
        Place::Parked(p) => p.open::<Parked>(),
        other => {
            g.place = other;
            return (g, false);
        }
    };
    drop(g);
    let guard = ConsumerReadGuard(shared);
    let step = parked.read(wait, interrupt);
    std::mem::forget(guard);
    let mut g = shared.lock();
    let (spawn, got) = match step {
        Step::Read(p, got) => {
            if got && g.watchdog == Watchdog::BackedOff {
                g.watchdog = Watchdog::Running;
                shared.watchdog_wake.notify_one();
            }
            if shared.needs_task(&g) {
                g.place = Place::Task { may_park: true };
                (Some(p), got)
            } else {
                g.place = Place::Parked(Opaque::new(p));
                (None, got)
            }
        }
        Step::HandOver(p) => {
            // No room in the budget on this thread: a task waits for it, and keeps the
            // reader (it would otherwise park it for this thread at once) unless a control
            // event is what needs the task.
            g.place = Place::Task {
                may_park: shared.needs_task(&g),
            };
            (Some(p), false)
        }
        Step::Ended => (None, false),
    };
    if let Some(p) = spawn {
        drop(g);
        p.spawn();
        g = shared.lock();
    }
    (g, got)
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
        reader.spawn_task(Ok(Flow::NeedMore(need)));
    }
}

/// Ends the stream if the consumer's own read of the socket panics (the panic is caught at
/// the C boundary): the reader is lost with it, so nothing else would ever end the stream.
/// A reader task has the same guarantee from its [`TerminalGuard`]. Forgotten on success.
struct ConsumerReadGuard<'a>(&'a Shared);

impl Drop for ConsumerReadGuard<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        let mut g = shared.lock();
        g.place = Place::Ended;
        if g.terminal.is_none() && !g.state.is_terminal() {
            g.state = StreamState::Failed;
            g.terminal = Some(Terminal::Failed(Error::new(
                ErrorKind::Panic,
                "the stream's reader panicked",
            )));
            g.ended_at.get_or_insert_with(Instant::now);
            g.reader_bytes = 0;
            shared.wake_consumer(&mut g);
        }
    }
}

/// Sets a terminal state if a reader task ends without one (runtime shutdown, panic), so
/// that a blocked consumer is always woken. Disarmed (`None`) when the task parks its reader.
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
            if shared.query_metrics {
                metrics::error(category, "stream");
                metrics::query_finished(
                    &shared.entity,
                    "error",
                    Some(category),
                    total,
                    rows,
                    bytes,
                );
            }
            g.terminal = Some(Terminal::Failed(err));
            g.reader_bytes = 0;
            g.place = Place::Ended;
            shared.wake_consumer(&mut g);
        }
    }
}
