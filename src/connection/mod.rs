//! Connections: transport, startup, authentication, cancel.
//!
//! A [`Connection`] is a started, authenticated session in the idle state (ReadyForQuery
//! received). The streaming reader in [`crate::stream`] takes it over for one query and gives
//! it back when the query ended cleanly.

pub mod auth;
pub mod cancel;
mod open;
pub mod pool;
pub mod select;
pub(crate) mod startup;
pub(crate) mod tls;
pub mod transport;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::Phase;
pub use auth::Mechanism;
pub use cancel::{CancelTarget, CancelToken};
pub use pool::Pool;
pub use transport::{Transport, TransportKind};

/// An idle, authenticated connection.
pub struct Connection {
    pub(crate) transport: Transport,
    /// Bytes read from the socket and not yet parsed.
    pub(crate) buf: BytesMut,
    pub(crate) cancel: CancelToken,
    /// The process that opened the socket: after fork() a child never uses it.
    pub(crate) owner_pid: u32,
    pub(crate) mechanism: Mechanism,
    pub(crate) created: Instant,
    /// How long the server took to answer the last query started on the caller's thread
    /// (send to first bytes), or for a new connection the startup message when that took
    /// over [`SLOW_STARTUP`]: whether the next query is worth spinning for.
    pub(crate) answer_time: Option<Duration>,
    /// Whether the library was shut down: the blocking waits on the caller's thread ask it
    /// every 100 ms, so that `fw_shutdown` interrupts them. The client passes the runtime's
    /// check ([`Connection::with_shutdown_check`]); this module asks nothing of the runtime.
    shut_down: fn() -> bool,
    /// The host of the connection string this connection went to (its index in
    /// `ConnConfig::hosts`, which the pool keys connections by).
    pub(crate) host: usize,
    /// `host:port` or the socket path, for messages.
    pub(crate) host_label: String,
    /// What the server told of the session's attributes (`target_session_attrs`).
    pub(crate) session: select::SessionState,
    /// The pass of the host list in which the session qualified (prefer-standby's second
    /// pass accepts any server).
    pub(crate) pass: select::Pass,
    /// Before AuthenticationOk, every message is held to libpq's small limits (see
    /// [`crate::protocol::header`]).
    phase: Phase,
}

/// The deadline of a connection opened on the caller's thread ([`Connection::connect_inline`]):
/// the host's `connect_timeout`.
#[derive(Clone, Copy, Debug)]
struct InlineOpen {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

impl InlineOpen {
    fn new(timeout: Option<Duration>) -> InlineOpen {
        InlineOpen {
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
        }
    }

    fn left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn timed_out(&self) -> Error {
        timed_out(self.timeout.unwrap_or_default())
    }
}

fn timed_out(t: Duration) -> Error {
    Error::new(
        ErrorKind::Connect,
        format!("timed out after {} s", t.as_secs_f64()),
    )
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("transport", &self.transport.kind())
            .field("backend_pid", &self.cancel.process_id)
            .finish()
    }
}

const CLOSED: &str = "the server closed the connection unexpectedly";

fn closed() -> Error {
    Error::new(ErrorKind::Io, CLOSED)
}

/// Whether `e` is the end of the connection as [`Connection`]'s reads report it (the stream's
/// reader then says after how many rows).
pub(crate) fn is_closed(e: &Error) -> bool {
    e.kind() == ErrorKind::Io && e.message() == CLOSED
}

/// Mark a send failure as [`Error::request_unsent`] when the server cannot have received
/// any complete message of the request: the very first write failed (so no byte reached the
/// socket) and, over TLS, the request fits in one TLS record (16 KiB of plaintext), which
/// the server cannot read in part. A failure after a byte was taken is not marked: the server
/// may hold Parse, Bind and Execute already, and Execute starts the query before Sync.
fn unsent_if(e: Error, first_write: bool, tls: bool, len: usize) -> Error {
    const TLS_RECORD: usize = 16 * 1024;
    if first_write && (!tls || len <= TLS_RECORD) {
        e.request_unsent()
    } else {
        e
    }
}

fn not_plain() -> Error {
    Error::new(ErrorKind::Panic, "blocking I/O on a TLS connection")
}

/// Wait in slices of at most 100 ms until the socket is ready (`Ok(true)`) or `deadline`
/// passed (`Ok(false)`); fails once `shut_down` says the library was shut down.
fn wait_blocking(
    sock: &socket2::SockRef<'_>,
    write: bool,
    deadline: Option<Instant>,
    shut_down: fn() -> bool,
) -> Result<bool> {
    const SLICE: Duration = Duration::from_millis(100);
    loop {
        if shut_down() {
            return Err(Error::shutdown());
        }
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        match transport::wait_socket(sock, write, slice) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) => return Err(Error::io("could not wait for the server", &e)),
        }
    }
}

fn socket_path(dir: &Path, port: u16) -> std::path::PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

impl Connection {
    pub fn kind(&self) -> TransportKind {
        self.transport.kind()
    }

    pub fn backend_pid(&self) -> i32 {
        self.cancel.process_id
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Write `bytes` whole. A failure before the first byte was taken is marked
    /// [`Error::request_unsent`] (see [`unsent_if`]).
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let tls = self.transport.kind() == TransportKind::Tls;
        let mut rest = bytes;
        while !rest.is_empty() {
            let first = rest.len() == bytes.len();
            match self.transport.write(rest).await {
                Ok(0) => return Err(unsent_if(closed(), first, tls, bytes.len())),
                Ok(n) => rest = &rest[n..],
                Err(e) => {
                    let e = Error::io("could not send to the server", &e);
                    return Err(unsent_if(e, first, tls, bytes.len()));
                }
            }
        }
        // A TLS write may leave records in the TLS layer when the socket is full.
        self.transport
            .flush()
            .await
            .map_err(|e| Error::io("could not send to the server", &e))
    }

    /// Read one whole backend message (startup and control paths; the row hot path parses the
    /// buffer itself).
    pub(crate) async fn read_message(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.parse_message()? {
                return Ok(m);
            }
            self.read_more().await?;
        }
    }

    /// The next whole message in the buffer, if it holds one. Its header is checked first
    /// (see [`crate::protocol::header`]): a message announcing more than its phase allows is
    /// refused before any more of it is read.
    pub(crate) fn parse_message(&mut self) -> Result<Option<Message>> {
        startup::next_message(&mut self.buf, self.phase)
    }

    /// Read what the socket has (up to 8 KiB more room), waiting for at least one byte.
    pub(crate) async fn read_more(&mut self) -> Result<()> {
        self.buf.reserve(8192);
        let n = self.transport.read_buf(&mut self.buf).await.map_err(|e| {
            // A TLS connection that ended without a close_notify: reported as a plain
            // socket's end is.
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                closed()
            } else {
                Error::io("could not read from the server", &e)
            }
        })?;
        if n == 0 {
            return Err(closed());
        }
        Ok(())
    }

    /// Close as libpq does: a Terminate message first when it can be written at once (plain
    /// sockets; writing to a TLS socket needs the runtime), then the socket.
    pub(crate) fn close(self) {
        if let Some(sock) = self.transport.plain_socket() {
            let _ = sock.send_with_flags(&TERMINATE, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
        }
    }

    /// Whether an idle (pooled) connection can carry the next query: nothing left unparsed
    /// after its last ReadyForQuery, and nothing arrived since (see
    /// [`Transport::idle_readable`]).
    pub(crate) fn is_clean_idle(&mut self) -> bool {
        self.buf.is_empty() && !self.transport.idle_readable()
    }

    /// Whether the socket is registered with the runtime (TLS, or a plain socket in use by
    /// a reader task): dropping it then needs the runtime.
    pub(crate) fn is_attached(&self) -> bool {
        matches!(
            self.transport,
            Transport::Tcp(_) | Transport::Unix(_) | Transport::Tls(_)
        )
    }

    /// Whether the blocking calls below can be used (plain TCP or Unix socket, not TLS).
    pub(crate) fn is_plain(&self) -> bool {
        self.transport.plain_socket().is_some()
    }

    /// [`Connection::send`] from a thread outside the runtime: blocking writes on the socket
    /// (plain transports only, see [`Connection::is_plain`]).
    pub(crate) fn send_blocking(&mut self, bytes: &[u8]) -> Result<()> {
        let open = InlineOpen {
            deadline: None,
            timeout: None,
        };
        self.send_blocking_until(bytes, open)
    }

    fn send_blocking_until(&mut self, bytes: &[u8], open: InlineOpen) -> Result<()> {
        let fail = |e: &std::io::Error| Error::io("could not send to the server", e);
        let shut_down = self.shut_down;
        let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let first = rest.len() == bytes.len();
            // MSG_NOSIGNAL: a closed peer is an error here, never a SIGPIPE in the host.
            match sock.send_with_flags(rest, libc::MSG_NOSIGNAL) {
                Ok(0) => return Err(unsent_if(closed(), first, false, bytes.len())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !wait_blocking(&sock, true, open.deadline, shut_down)? {
                        return Err(open.timed_out());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unsent_if(fail(&e), first, false, bytes.len())),
            }
        }
        Ok(())
    }

    /// [`Connection::read_more`] from a thread outside the runtime, of at most `max` bytes
    /// (the buffer grows only if its spare capacity is smaller): waits in poll(2) (in
    /// slices, so that `fw_shutdown` interrupts it), at most `limit` when given: `Ok(false)` when
    /// nothing arrived in that time. The first `spin` of the wait retries the read instead
    /// of sleeping in poll(2): for an answer due within microseconds, a sleep and wake-up of
    /// the thread costs more CPU than the spin and adds its latency.
    pub(crate) fn read_more_within(
        &mut self,
        limit: Option<Duration>,
        spin: Duration,
        max: usize,
    ) -> Result<bool> {
        let deadline = limit.map(|d| Instant::now() + d);
        let mut spin_start: Option<Instant> = None;
        self.buf.reserve(max);
        loop {
            match self.read_now(max)? {
                Some(0) => return Err(closed()),
                Some(_) => return Ok(true),
                None => {}
            }
            let spun = *spin_start.get_or_insert_with(Instant::now);
            if spun.elapsed() < spin && deadline.map_or(true, |d| Instant::now() < d) {
                std::hint::spin_loop();
                continue;
            }
            let shut_down = self.shut_down;
            let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
            if !wait_blocking(&sock, false, deadline, shut_down)? {
                return Ok(false);
            }
        }
    }

    /// One read on the caller's thread within `open`'s deadline (start-up and session checks).
    fn read_blocking(&mut self, open: InlineOpen) -> Result<()> {
        match self.read_more_within(open.left(), Duration::ZERO, 8192)? {
            true => Ok(()),
            false => Err(open.timed_out()),
        }
    }

    /// [`Connection::read_more_within`] (without spinning) for an answer that cannot have
    /// arrived yet: poll(2) first, then read, rather than a read that finds nothing first.
    pub(crate) fn read_more_after_wait(
        &mut self,
        limit: Option<Duration>,
        max: usize,
    ) -> Result<bool> {
        let deadline = limit.map(|d| Instant::now() + d);
        let shut_down = self.shut_down;
        let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
        if !wait_blocking(&sock, false, deadline, shut_down)? {
            return Ok(false);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        self.read_more_within(left, Duration::ZERO, max)
    }

    /// Whether the socket is out of the runtime's epoll set (see [`Transport::detach`]).
    pub(crate) fn is_detached(&self) -> bool {
        matches!(self.transport, Transport::Detached(_))
    }

    /// Read at most `max` bytes of what a plain socket has now into the buffer's spare
    /// capacity (less if it has less room), without waiting: `Ok(None)` when it has nothing,
    /// `Ok(Some(0))` at the end of the stream. Used by the blocking reads on the caller's
    /// thread and by a reader task on a detached socket (see [`crate::stream::coalesce`]).
    pub(crate) fn read_now(&mut self, max: usize) -> Result<Option<usize>> {
        let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
        let spare = self.buf.spare_capacity_mut();
        let room = spare.len().min(max);
        loop {
            match sock.recv(&mut spare[..room]) {
                Ok(n) => {
                    // SAFETY: recv(2) initialised the first `n` bytes of the spare capacity
                    // (n <= room <= spare capacity).
                    unsafe { self.buf.set_len(self.buf.len() + n) };
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("could not read from the server", &e)),
            }
        }
    }

    /// Take a plain socket out of the runtime's epoll set (see [`Transport::detach`]); its
    /// next asynchronous read or write puts it back.
    pub(crate) fn detach(&mut self) -> Result<()> {
        self.transport
            .detach()
            .map_err(|e| Error::io("could not take the socket out of the runtime", &e))
    }

    /// An authenticated connection without a socket (every read or write fails), for the
    /// reader's framing driven from bytes in memory (see `stream::reader::framing`).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn without_socket() -> Connection {
        let mut c = Connection::new(
            Transport::Gone(TransportKind::Unix),
            CancelTarget::Unix(std::path::PathBuf::new()),
        );
        c.phase = Phase::Session;
        c
    }

    fn new(transport: Transport, target: CancelTarget) -> Connection {
        Connection {
            transport,
            buf: BytesMut::with_capacity(8192),
            cancel: CancelToken {
                target,
                process_id: 0,
                secret_key: 0,
            },
            owner_pid: std::process::id(),
            mechanism: Mechanism::Trust,
            created: Instant::now(),
            answer_time: None,
            shut_down: || false,
            host: 0,
            host_label: String::new(),
            session: select::SessionState::default(),
            pass: select::Pass::First,
            phase: Phase::Auth,
        }
    }

    /// Abandon a connection inherited across fork(): its socket and the runtime's epoll
    /// registration belong to the parent, so nothing may be done with it (dropping it would
    /// deregister the parent's socket from the shared epoll instance). Its file descriptor is
    /// closed directly, which leaves the parent's socket untouched.
    pub(crate) fn abandon_after_fork(self) {
        let fd = self.transport.raw_fd();
        std::mem::forget(self);
        if let Some(fd) = fd {
            // SAFETY: `fd` is owned by the forgotten transport, which can never use or close
            // it again; taking ownership here and dropping it closes it in this (child)
            // process only, which drops this process's reference.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
    }
}

/// The Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// How long a connection may sit idle in a client's pool before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A server slower than this to answer the startup message (PostgreSQL forking a backend) is
/// not spun for on a new connection's first query (see [`Connection::answer_time`]). A pooler
/// or a local fake server, answering in tens to a few hundred microseconds, is.
const SLOW_STARTUP: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> Error {
        Error::new(ErrorKind::Io, "could not send to the server: Broken pipe")
    }

    #[test]
    fn only_a_failed_first_write_leaves_a_request_unsent() {
        assert!(unsent_if(io(), true, false, 100).is_request_unsent());
        assert!(unsent_if(io(), true, false, 1 << 20).is_request_unsent());
        // Some bytes went out: the server may hold Execute already.
        assert!(!unsent_if(io(), false, false, 100).is_request_unsent());
        // TLS: a request in one record cannot be read in part; a longer one can.
        assert!(unsent_if(io(), true, true, 16 * 1024).is_request_unsent());
        assert!(!unsent_if(io(), true, true, 16 * 1024 + 1).is_request_unsent());
        assert!(!unsent_if(io(), false, true, 100).is_request_unsent());
    }
}
