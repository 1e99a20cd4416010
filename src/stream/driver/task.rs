//! The runtime-task driver: a reader task reads the socket ahead of the consumer, within the
//! stream's budget and read-ahead, pausing with the stream and ending at its cancel. It
//! starts a query on a connection that cannot be started on the calling thread (TLS), takes
//! over the rest of a stream from the calling thread when something needs a task (see
//! [`super::Place`]), and parks its reader for the consumer when the consumer catches up.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use tokio::io::AsyncReadExt;

use super::{park, watchdog_task, TerminalGuard};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use crate::stream::coalesce::Timer;
use crate::stream::reader::framer::Flow;
use crate::stream::reader::plan::{plan_read, Pending, ReadPlan};
use crate::stream::reader::{abandon, Reader, StartResult};
use crate::stream::shared::{StreamState, Terminal};

enum TaskEnd {
    /// The stream ended with this outcome (see [`Reader::finish`]).
    Ended(Result<()>),
    /// The consumer waits for rows and may read them itself: park the reader.
    Park(Option<Pending>),
}

impl Reader {
    /// Send the query (`msg`: [`crate::query::Statement::encode`]) and read up to its
    /// RowDescription; report the outcome through `started`, then stream the rows until the end.
    pub(crate) async fn run(
        mut self,
        msg: Bytes,
        started: tokio::sync::oneshot::Sender<StartResult>,
    ) {
        let guard = TerminalGuard(Some(self.shared.clone()));
        if let Err(e) = self.send_and_describe(&msg).await {
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
    /// and may read them itself (see [`super::Parked`]): the reader is then parked and the task ends.
    pub(super) async fn drive(mut self, mut first: Result<Flow>, mut guard: TerminalGuard) {
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
                    let watchdog = park(self, &mut g, need);
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

    async fn send_and_describe(&mut self, msg: &[u8]) -> Result<()> {
        self.out.query_sent = Instant::now();
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

    /// Run the rest of the stream in a reader task. If the task cannot run (shut down
    /// meanwhile), the guard dropped with it ends the stream with an error instead of
    /// leaving the consumer waiting.
    pub(in crate::stream) fn spawn_task(mut self, first: Result<Flow>) {
        self.out.consumer_reads = false;
        let guard = TerminalGuard(Some(self.shared.clone()));
        crate::runtime::spawn_detached(self.drive(first, guard));
    }

    /// The query failed before any row. A server error leaves the connection usable once
    /// ReadyForQuery arrives: report first, then drain and return it to the pool. A schema
    /// error means rows are coming that nobody wants: cancel the query and drop the connection.
    pub(super) async fn finish_start_error(
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
                            // Only an idle session is reused (see `ProtocolState::in_transaction`).
                            Ok(Message::ReadyForQuery(b)) => return b.status() == b'I',
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
    /// until the reader may be parked (see [`super::Parked`]). `first` is the outcome of a
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
    /// nothing is queued: it reads them itself from now on (see [`super::Parked`]).
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
                if g.task_may_park() && g.consumer_waiting && !self.shared.needs_task(&g) {
                    // The consumer caught up (what is queued was just handed over: it takes
                    // that first, woken by the park).
                    self.out.wake_pending = false;
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
                    if self.out.wake_pending {
                        self.out.wake_pending = false;
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
                    if self.out.wake_pending {
                        self.out.wake_pending = false;
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

    /// One socket read as `plan` says; returns early (without reading) when a pause, cancel
    /// or other control event arrives meanwhile.
    async fn read_some(&mut self, plan: ReadPlan) -> Result<()> {
        let max = self.apply_plan(plan);
        // Try the read once without waiting: only when the socket has nothing for us is a
        // deferred wake of the consumer done (rows never wait behind an idle socket).
        let mut got = self.read_now(max).await?;
        if got.is_none() {
            // The consumer is blocked waiting for these rows: it keeps up with the server.
            let starved = self.out.wake_deferred();
            if let Some(d) = self.linger(starved) {
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
        self.after_read(n, max)
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
}
