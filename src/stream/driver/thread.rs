//! The calling-thread driver: the socket read on the application's own thread, as libpq
//! does. `execute` starts the query here ([`Reader::start_on_caller`]): it sends it, waits in
//! poll(2) for the description, and reads a small result whole; a consumer that finds no
//! chunk queued reads the parked reader's socket here ([`Parked::read`], through
//! [`super::consumer_turn`]). Only for plain sockets ([`Connection::is_plain`]).
//!
//! [`Connection::is_plain`]: crate::connection::Connection::is_plain

use std::time::{Duration, Instant};

use super::{park, watchdog_task, Parked, Place, Step};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::stream::reader::framer::Flow;
use crate::stream::reader::{Reader, StartResult};

/// How long `start_on_caller` waits on the calling thread for the rest of a small result: as
/// long as the description took, within these bounds.
const CALLER_GRACE_MIN: Duration = Duration::from_micros(200);
const CALLER_GRACE: Duration = Duration::from_millis(1);
/// How long of that wait `start_on_caller` spins instead of sleeping (see
/// `Connection::read_more_within`).
const CALLER_SPIN: Duration = Duration::from_micros(50);
/// How much of a result `start_on_caller` reads on the calling thread at most.
const CALLER_BYTES: usize = 64 * 1024;
/// Longest single wait of a consumer on its socket: between two, it checks for a shutdown.
const SHUTDOWN_SLICE: Duration = Duration::from_millis(500);

impl Reader {
    /// Start the query on the calling thread, as libpq does: send it, wait for the answer in
    /// poll(2), parse up to the RowDescription and hand over the rows that came with it. A
    /// result that ended there (a small query) is finished here, with no other thread
    /// involved; otherwise the reader is parked for the consumer, or a reader task takes the
    /// connection over for the rest (also when the server has not answered within the
    /// stream's `describe_wait`). Only for plain sockets ([`Connection::is_plain`]). The
    /// outcome is what a task start reports through `started`; an `Io` error means the
    /// connection failed before any answer (the caller may retry on a new one).
    pub(crate) fn start_on_caller(mut self, msg: &[u8]) -> StartResult {
        self.out.query_sent = Instant::now();
        self.out.consumer_reads = true;
        self.shared.lock().place = Place::Caller;
        self.conn.send_blocking(msg)?;
        let deadline = self
            .shared
            .options
            .describe_wait
            .map(|w| self.out.query_sent + w);
        // A server that answered the last query within microseconds is spun for (the first
        // CALLER_SPIN of the wait): sleeping in poll(2) until then costs a wake-up of an idle
        // CPU, which on virtual machines takes longer than such an answer. One that took
        // longer is waited for in poll(2) at once, as libpq does, costing no CPU. A new
        // connection is judged by its answer to the startup message.
        let spin = match self.conn.answer_time {
            Some(t) if t > 2 * CALLER_SPIN => Duration::ZERO,
            _ => CALLER_SPIN,
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
                    self.conn.answer_time = Some(self.out.query_sent.elapsed());
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
        // long (CALLER_GRACE_MIN..CALLER_GRACE) and for at most CALLER_BYTES here, rather
        // than hand a few rows to the reader task (two thread wake-ups). A slow query costs
        // `execute` that much more.
        let grace = self
            .out
            .query_sent
            .elapsed()
            .clamp(CALLER_GRACE_MIN, CALLER_GRACE);
        let deadline = Instant::now() + grace;
        let mut read = 0;
        while let (true, Ok(Flow::NeedMore(need))) = (self.framer.protocol.described, &first) {
            let need = *need;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || read >= CALLER_BYTES {
                break;
            }
            // Within the stream's budget, as the reader task would read.
            let Some(plan) = self.plan_now(need) else {
                break;
            };
            let max = self.apply_plan(plan).min(CALLER_BYTES - read);
            let before = self.conn.buf.len();
            match self.conn.read_more_within(Some(left), CALLER_SPIN, max) {
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
        // does (see `super::Parked`), until something needs a reader task.
        let need = match first {
            Ok(Flow::NeedMore(need)) => need,
            _ => unreachable!("handled above"),
        };
        let shared = self.shared.clone();
        let mut g = shared.lock();
        if shared.needs_task(&g) {
            g.place = Place::Task { may_park: true };
            drop(g);
            self.spawn_task(Ok(Flow::NeedMore(need)));
            return Ok(());
        }
        let watchdog = park(self, &mut g, need);
        drop(g);
        if watchdog {
            crate::runtime::spawn_detached(watchdog_task(shared));
        }
        Ok(())
    }
}

impl Parked {
    /// One socket read on the consumer's thread, within the stream's budget, and the chunks
    /// it makes queued. When the socket has nothing, waits in poll(2) at most `wait` (`None`:
    /// without limit; zero: not at all) for it or for `interrupt` (see
    /// [`crate::stream::shared::Shared::unpark`]). Must not be called with the stream's lock held.
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
        reader.out.consumer_reads = true;
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
        if let Err(e) = reader.after_read(n, max) {
            reader.finish(Err(e));
            return Step::Ended;
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
    /// Read at most `max` bytes on the calling thread (see [`Parked::read`]): `Ok(None)` when
    /// nothing came within `wait` or `interrupt` became readable. On a steady flow the
    /// consumer keeps up with, the wait first lingers so that one read takes several packets
    /// (see [`crate::stream::coalesce`]), as a reader task does.
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
        // The consumer is waiting for rows: it keeps up with the server.
        if let Some(d) = self.linger(true) {
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
