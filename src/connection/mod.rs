//! Connections: transport, startup, authentication, cancel.
//!
//! A [`Connection`] is a started, authenticated session in the idle state (ReadyForQuery
//! received). The streaming reader in [`crate::stream`] takes it over for one query and gives
//! it back when the query ended cleanly.

pub mod auth;
pub mod cancel;
pub mod select;
pub(crate) mod tls;
pub mod transport;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::conninfo::{ConnConfig, Host, LoadBalanceHosts, SslMode, TargetSessionAttrs};
use crate::error::{Error, ErrorKind, Result, ServerError};
use crate::protocol::Phase;
pub use auth::Mechanism;
pub use cancel::{CancelTarget, CancelToken};
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
    /// Set while the connection is being opened on the caller's thread
    /// ([`Connection::connect_inline`]): `send` and `read_more` then block on the socket
    /// instead of waiting on the runtime. The deadline is the host's `connect_timeout`.
    inline: Option<InlineOpen>,
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

/// See [`Connection::inline`].
#[derive(Clone, Copy, Debug)]
struct InlineOpen {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

impl InlineOpen {
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

/// Map an ErrorResponse received during startup to an error: class 28 (invalid authorization)
/// is an authentication failure, anything else a connection failure.
pub(crate) fn startup_error(body: ErrorResponseBody) -> Error {
    match ServerError::from_fields(&mut body.fields()) {
        Ok(se) => {
            let kind = if se.sqlstate.starts_with("28") {
                ErrorKind::Auth
            } else {
                ErrorKind::Connect
            };
            Error::server(kind, se)
        }
        Err(e) => Error::protocol(format!("malformed ErrorResponse: {e}")),
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
/// passed (`Ok(false)`); fails once the runtime is shut down.
fn wait_blocking(
    sock: &socket2::SockRef<'_>,
    write: bool,
    deadline: Option<Instant>,
) -> Result<bool> {
    const SLICE: Duration = Duration::from_millis(100);
    loop {
        if crate::runtime::is_shut_down() {
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
        if let Some(open) = self.inline {
            return self.send_blocking_until(bytes, open);
        }
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
        let Some(header) = crate::protocol::header(&self.buf, self.phase)? else {
            return Ok(None);
        };
        if header.tag == b'D' && header.total > crate::protocol::MAX_MESSAGE {
            // Never expected here (start-up, or before a result is described): bounded as
            // any other message.
            crate::metrics::protocol_error("message_too_long");
            return Err(Error::protocol(format!(
                "the server sent a DataRow of {} bytes where none was expected",
                header.total
            )));
        }
        if self.buf.len() < header.total {
            return Ok(None);
        }
        Message::parse(&mut self.buf).map_err(|e| {
            crate::metrics::protocol_error("malformed");
            Error::protocol(format!("malformed message from the server: {e}"))
        })
    }

    /// Read what the socket has (up to 8 KiB more room), waiting for at least one byte.
    pub(crate) async fn read_more(&mut self) -> Result<()> {
        if let Some(open) = self.inline {
            return match self.read_more_within(open.left(), Duration::ZERO, 8192)? {
                true => Ok(()),
                false => Err(open.timed_out()),
            };
        }
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
        let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let first = rest.len() == bytes.len();
            // MSG_NOSIGNAL: a closed peer is an error here, never a SIGPIPE in the host.
            match sock.send_with_flags(rest, libc::MSG_NOSIGNAL) {
                Ok(0) => return Err(unsent_if(closed(), first, false, bytes.len())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !wait_blocking(&sock, true, open.deadline)? {
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
            let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
            if !wait_blocking(&sock, false, deadline)? {
                return Ok(false);
            }
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
        let sock = self.transport.plain_socket().ok_or_else(not_plain)?;
        if !wait_blocking(&sock, false, deadline)? {
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

    /// Open a connection to the first host of `config` that answers, start the session and
    /// authenticate. `connect_timeout` applies to each host.
    pub async fn connect(config: &ConnConfig) -> Result<Connection> {
        Self::connect_with(config, false).await
    }

    /// Whether [`Connection::connect_inline`] can open connections for `config`: every host
    /// is a Unix socket, or TCP with `sslmode=disable` (TLS needs the runtime, and so do
    /// the second attempts of `allow` and `prefer`).
    pub(crate) fn can_connect_inline(config: &ConnConfig) -> bool {
        let plain_tcp = matches!(tls::effective_mode(config), Ok(SslMode::Disable));
        config
            .hosts
            .iter()
            .all(|(h, _)| matches!(h, Host::Unix(_)) || plain_tcp)
    }

    /// [`Connection::connect`] on the calling thread, as libpq does (for configurations that
    /// [`Connection::can_connect_inline`]): blocking connect, startup and authentication
    /// with the socket out of the runtime, so that no runtime thread takes part (each
    /// hand-over between threads costs a wake-up). The steps are the same code as the
    /// runtime's: the future is polled once, and every wait in it blocks in poll(2) instead
    /// of returning `Pending` (see [`Connection::inline`]).
    pub(crate) fn connect_inline(config: &ConnConfig) -> Result<Connection> {
        poll_once(Self::connect_with(config, true))
    }

    /// libpq's connection loop (the decisions are in [`select`]): the hosts in order, or
    /// shuffled with `load_balance_hosts=random`; a host that cannot be reached, cannot accept
    /// connections now (57P03), or whose session does not have the `target_session_attrs`
    /// asked for is skipped; prefer-standby goes over the hosts twice. `connect_timeout`
    /// applies to each attempt, the attribute check included.
    async fn connect_with(config: &ConnConfig, inline: bool) -> Result<Connection> {
        let want = config.target_session_attrs;
        let order = select::host_order(
            config.hosts.len(),
            config.load_balance_hosts,
            &mut random_pick(),
        );
        let mut skipped = Vec::new();
        for (pass, index) in select::attempts(want, &order) {
            let (host, port) = &config.hosts[index];
            let res = if inline {
                let open = InlineOpen {
                    deadline: config.connect_timeout.map(|t| Instant::now() + t),
                    timeout: config.connect_timeout,
                };
                Self::attempt_inline(config, index, host, *port, open, pass).await
            } else {
                let attempt = Self::attempt(config, index, host, *port, pass);
                match config.connect_timeout {
                    Some(t) => match tokio::time::timeout(t, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(timed_out(t)),
                    },
                    None => attempt.await,
                }
            };
            let reason = match res {
                Ok(Ok(mut c)) => {
                    c.host = index;
                    c.pass = pass;
                    c.host_label = describe_host(host, *port);
                    crate::metrics::connection_created(c.kind().label());
                    return Ok(c);
                }
                Ok(Err(rejection)) => rejection.to_string(),
                Err(e) if select::moves_on(&e) => e.to_string(),
                Err(e) => {
                    crate::metrics::connection_error(&e);
                    return Err(e);
                }
            };
            skipped.push(select::Skipped {
                host: describe_host(host, *port),
                pass,
                reason,
            });
        }
        let e = select::no_host(want, &skipped);
        crate::metrics::connection_error(&e);
        Err(e)
    }

    /// One host on the runtime: connect, start the session, check its attributes. A session
    /// that does not qualify is closed and its rejection returned.
    async fn attempt(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
        pass: select::Pass,
    ) -> Result<std::result::Result<Connection, select::Rejection>> {
        let mut conn = Self::connect_host(config, index, host, port).await?;
        match conn.check_target(config.target_session_attrs, pass).await? {
            None => Ok(Ok(conn)),
            Some(r) => {
                // Politely, as libpq: a Terminate message before closing (`close` writes it
                // on plain sockets itself; TLS needs the runtime).
                if !conn.is_plain() {
                    let _ = conn.send(&TERMINATE).await;
                }
                conn.close();
                Ok(Err(r))
            }
        }
    }

    /// [`Connection::attempt`] on the calling thread, within `open`'s deadline.
    async fn attempt_inline(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
        open: InlineOpen,
        pass: select::Pass,
    ) -> Result<std::result::Result<Connection, select::Rejection>> {
        let mut conn = Self::connect_host_inline(config, index, host, port, open).await?;
        let checked = conn.check_target(config.target_session_attrs, pass).await?;
        conn.inline = None;
        match checked {
            None => Ok(Ok(conn)),
            Some(r) => {
                conn.close();
                Ok(Err(r))
            }
        }
    }

    /// A pooled connection, checked again before a new stream uses it when the client asks
    /// for particular session attributes: a host's role changes (a standby is promoted, a
    /// primary is demoted or made read-only), and a pooled session must not outlive that.
    /// One round trip: an empty query, whose ReadyForQuery the server precedes with the
    /// changed `in_hot_standby`/`default_transaction_read_only` (PostgreSQL 14+), or else the
    /// check queries again. `None` (the connection closed) when it no longer qualifies or does
    /// not answer; the caller then opens a new connection through host selection. With
    /// `target_session_attrs=any` (and a prefer-standby session taken in the second pass)
    /// there is nothing to check and no round trip.
    pub(crate) fn requalify(mut self, config: &ConnConfig) -> Option<Connection> {
        let want = config.target_session_attrs;
        if want == TargetSessionAttrs::Any || self.pass == select::Pass::Second {
            return Some(self);
        }
        let outcome = if self.is_plain() {
            self.inline = Some(InlineOpen {
                deadline: config.connect_timeout.map(|t| Instant::now() + t),
                timeout: config.connect_timeout,
            });
            let outcome = poll_once(self.recheck(want));
            self.inline = None;
            outcome.map(|ok| ok.then_some(self))
        } else {
            crate::runtime::block_on(async move {
                let ok = self.recheck(want).await?;
                Ok(ok.then_some(self))
            })
        };
        match outcome {
            Ok(Some(c)) => Some(c),
            Ok(None) => None,
            Err(e) => {
                crate::log::debug(format!(
                    "a pooled connection failed its session check and is dropped: {e}"
                ));
                None
            }
        }
    }

    async fn recheck(&mut self, want: TargetSessionAttrs) -> Result<bool> {
        self.session.forget_answers();
        if self.session.reported {
            self.simple_query_value("").await?;
        }
        Ok(self.check_target(want, self.pass).await?.is_none())
    }

    /// Whether the session has the attributes asked for (`None`) or why not, asking the
    /// server when it did not report them (see [`select::check`]).
    pub(crate) async fn check_target(
        &mut self,
        want: TargetSessionAttrs,
        pass: select::Pass,
    ) -> Result<Option<select::Rejection>> {
        loop {
            match select::check(want, pass, self.session) {
                select::Check::Accept => return Ok(None),
                select::Check::Reject(r) => return Ok(Some(r)),
                select::Check::Ask(q) => match self.simple_query_value(q.sql()).await? {
                    Some(value) => self.session.answer(q, &value),
                    None => return Ok(Some(select::Rejection::CheckFailed(q))),
                },
            }
        }
    }

    /// Run `sql` with the simple query protocol and return the first column of its first row
    /// as text; `None` when the server answered with an error (or no row). ParameterStatus
    /// messages on the way are recorded. An empty `sql` is a round trip that only collects
    /// the ParameterStatus changes the server reports before ReadyForQuery.
    pub(crate) async fn simple_query_value(&mut self, sql: &str) -> Result<Option<String>> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)
            .map_err(|e| Error::invalid(format!("invalid query: {e}")))?;
        self.send(&out).await?;
        let mut value = None;
        let mut failed = false;
        loop {
            match self.read_message().await? {
                Message::DataRow(row) if value.is_none() => {
                    let mut ranges = row.ranges();
                    use fallible_iterator::FallibleIterator;
                    if let Ok(Some(Some(r))) = ranges.next() {
                        value = Some(String::from_utf8_lossy(&row.buffer()[r]).into_owned());
                    }
                }
                Message::ErrorResponse(_) => failed = true,
                Message::ParameterStatus(p) => {
                    if let (Ok(name), Ok(v)) = (p.name(), p.value()) {
                        self.session.parameter(name, v);
                    }
                }
                Message::ReadyForQuery(_) => return Ok(if failed { None } else { value }),
                _ => {}
            }
        }
    }

    async fn connect_host(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
    ) -> Result<Connection> {
        let (transport, target) = match host {
            Host::Unix(dir) => {
                let path = socket_path(dir, port);
                let s = UnixStream::connect(&path).await.map_err(|e| {
                    Error::new(
                        ErrorKind::Connect,
                        format!("could not connect to socket {}: {e}", path.display()),
                    )
                })?;
                (Transport::Unix(s), CancelTarget::Unix(path))
            }
            Host::Tcp(name) => return Self::connect_tcp(config, index, name, port).await,
        };
        let mut conn = Connection::new(transport, target);
        conn.startup(config).await?;
        Ok(conn)
    }

    /// [`Connection::connect_host`] on the calling thread: a blocking connect, then the
    /// session started with blocking I/O within `open`'s deadline.
    async fn connect_host_inline(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
        open: InlineOpen,
    ) -> Result<Connection> {
        let (socket, target) = match host {
            Host::Unix(dir) => {
                let path = socket_path(dir, port);
                let s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
                    Error::new(
                        ErrorKind::Connect,
                        format!("could not connect to socket {}: {e}", path.display()),
                    )
                })?;
                (transport::Detached::Unix(s), CancelTarget::Unix(path))
            }
            Host::Tcp(name) => {
                let (s, addr) = tcp_connect_blocking(config, index, name, port, open)?;
                (transport::Detached::Tcp(s), CancelTarget::Tcp(addr))
            }
        };
        let nonblocking = match &socket {
            transport::Detached::Unix(s) => s.set_nonblocking(true),
            transport::Detached::Tcp(s) => s.set_nonblocking(true),
        };
        nonblocking.map_err(|e| Error::io("could not set up the socket", &e))?;
        let mut conn = Connection::new(Transport::Detached(socket), target);
        conn.inline = Some(open);
        conn.startup(config).await?;
        Ok(conn)
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
            inline: None,
            host: 0,
            host_label: String::new(),
            session: select::SessionState::default(),
            pass: select::Pass::First,
            phase: Phase::Auth,
        }
    }

    /// TCP with `sslmode` applied, including libpq's second attempts: `allow` starts in plain
    /// text and retries with TLS when the server rejects the session; `prefer` starts with TLS
    /// and retries in plain text when the TLS handshake fails or the server rejects the TLS
    /// session. Only a rejection during authentication counts (an ErrorResponse before
    /// AuthenticationOk), as in libpq.
    async fn connect_tcp(
        config: &ConnConfig,
        index: usize,
        name: &str,
        port: u16,
    ) -> Result<Connection> {
        let mode = tls::effective_mode(config)?;
        let mut setup: Option<tls::TlsSetup> = None;
        let mut use_tls = !matches!(mode, SslMode::Disable | SslMode::Allow);
        let mut second_try = false;
        loop {
            let (s, addr) = tcp_connect(config, index, name, port).await?;
            let transport = if use_tls {
                let setup = match setup.take() {
                    Some(t) => setup.insert(t),
                    None => setup.insert(tls::TlsSetup::new(config, mode)?),
                };
                match negotiate_tls(setup, mode, name, s).await {
                    Ok(t) => t,
                    Err(e)
                        if mode == SslMode::Prefer && !second_try && e.kind() == ErrorKind::Tls =>
                    {
                        crate::log::warn(format!("{e}; sslmode=prefer: retrying without TLS"));
                        second_try = true;
                        use_tls = false;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                Transport::Tcp(s)
            };
            let on_tls = transport.kind() == TransportKind::Tls;
            let mut conn = Connection::new(transport, CancelTarget::Tcp(addr));
            match conn.start_session(config).await {
                Ok(()) => {}
                Err(e)
                    if !second_try
                        && e.server_error().is_some()
                        && ((mode == SslMode::Allow && !on_tls)
                            || (mode == SslMode::Prefer && on_tls)) =>
                {
                    second_try = true;
                    use_tls = !on_tls;
                    continue;
                }
                Err(e) => return Err(e),
            }
            conn.await_ready().await?;
            return Ok(conn);
        }
    }

    async fn startup(&mut self, config: &ConnConfig) -> Result<()> {
        self.start_session(config).await?;
        self.await_ready().await
    }

    /// Send the StartupMessage and authenticate, up to AuthenticationOk.
    async fn start_session(&mut self, config: &ConnConfig) -> Result<()> {
        let mut out = BytesMut::new();
        let params = config.startup_params();
        frontend::startup_message(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut out,
        )
        .map_err(|e| Error::invalid(format!("invalid startup parameter: {e}")))?;
        let auth_started = Instant::now();
        self.send(&out).await?;

        let first = self.read_message().await?;
        // The server's first answer also tells whether the first query's answer is worth
        // spinning for (see `answer_time`): PostgreSQL forks a backend first (milliseconds)
        // and then takes hundreds of microseconds per query, too long to spin for; a pooler
        // or a local fake server answers within a fraction of SLOW_STARTUP, and the first
        // query is spun for as before.
        let startup_answer = auth_started.elapsed();
        if startup_answer > SLOW_STARTUP {
            self.answer_time = Some(startup_answer);
        }
        let binding = tls::ChannelBindingInfo::new(config.channel_binding, &self.transport);
        let requested = crate::metrics::requested_mechanism(&first);
        let result = auth::authenticate(
            self,
            first,
            &config.user,
            config.password.as_deref(),
            binding,
        )
        .await;
        match &result {
            Ok(m) => crate::metrics::auth_attempt(m.label(), Ok(()), auth_started.elapsed()),
            Err(e) => crate::metrics::auth_attempt(
                requested,
                Err(crate::metrics::auth_failure_reason(e)),
                auth_started.elapsed(),
            ),
        }
        self.mechanism = result?;
        self.phase = Phase::Session;
        Ok(())
    }

    /// After AuthenticationOk: the session parameters and cancel key, up to ReadyForQuery.
    async fn await_ready(&mut self) -> Result<()> {
        loop {
            match self.read_message().await? {
                Message::BackendKeyData(k) => {
                    self.cancel.process_id = k.process_id();
                    self.cancel.secret_key = k.secret_key();
                }
                Message::ParameterStatus(p) => {
                    if let (Ok(name), Ok(value)) = (p.name(), p.value()) {
                        self.session.parameter(name, value);
                    }
                }
                Message::NoticeResponse(body) => {
                    crate::protocol::notice(&body)?;
                }
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => return Err(startup_error(body)),
                _ => {
                    crate::metrics::protocol_error("unexpected_in_startup");
                    return Err(Error::protocol(
                        "unexpected message from the server during session startup",
                    ));
                }
            }
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

fn describe_host(host: &Host, port: u16) -> String {
    match host {
        Host::Tcp(h) => format!("{h}:{port}"),
        Host::Unix(d) => socket_path(d, port).display().to_string(),
    }
}

async fn tcp_connect(
    config: &ConnConfig,
    index: usize,
    name: &str,
    port: u16,
) -> Result<(TcpStream, std::net::SocketAddr)> {
    let lookup = &lookup_name(config, index, name);
    let mut addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((lookup.as_str(), port))
        .await
        .map_err(|e| unresolved(lookup, &e))?
        .collect();
    order_addresses(config, &mut addrs);
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tune_tcp(config, socket2::SockRef::from(&s))?;
                return Ok((s, addr));
            }
            Err(e) => last = Some(format!("could not connect to {addr}: {e}")),
        }
    }
    Err(no_tcp_connection(lookup, last))
}

/// What to resolve for `hosts[index]`: its `hostaddr` when given, else the host name.
fn lookup_name(config: &ConnConfig, index: usize, name: &str) -> String {
    config
        .hostaddr_at(index)
        .map_or_else(|| name.to_string(), |a| a.to_string())
}

fn unresolved(lookup: &str, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Connect,
        format!("could not resolve host {lookup:?}: {e}"),
    )
}

/// TCP_NODELAY; keepalives unless `keepalives=0`, with `keepalives_idle`,
/// `keepalives_interval` and `keepalives_count` when given (0 leaves the system default);
/// `tcp_user_timeout` when given. A setting the kernel refuses fails the connection, as in
/// libpq.
fn tune_tcp(config: &ConnConfig, sock: socket2::SockRef<'_>) -> Result<()> {
    let failed = |what: &str, e: std::io::Error| {
        Error::new(
            ErrorKind::Connect,
            format!("could not set {what} on the socket: {e}"),
        )
    };
    let _ = sock.set_nodelay(true);
    if config.keepalives {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(t) = config.keepalives_idle.filter(|t| !t.is_zero()) {
            ka = ka.with_time(t);
        }
        if let Some(t) = config.keepalives_interval.filter(|t| !t.is_zero()) {
            ka = ka.with_interval(t);
        }
        if let Some(n) = config.keepalives_count.filter(|n| *n > 0) {
            ka = ka.with_retries(n);
        }
        sock.set_tcp_keepalive(&ka)
            .map_err(|e| failed("the keepalive options (keepalives_*)", e))?;
    } else {
        sock.set_keepalive(false)
            .map_err(|e| failed("SO_KEEPALIVE", e))?;
    }
    if let Some(t) = config.tcp_user_timeout {
        sock.set_tcp_user_timeout((!t.is_zero()).then_some(t))
            .map_err(|e| failed("TCP_USER_TIMEOUT (tcp_user_timeout)", e))?;
    }
    Ok(())
}

/// A source of uniform picks in `0..=i` for [`select::shuffle`]: xorshift64* seeded from the
/// standard library's per-process random hash keys (enough to spread connections; nothing
/// here needs to be unpredictable).
fn random_pick() -> impl FnMut(usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut state = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1;
    move |i| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) % (i as u64 + 1)) as usize
    }
}

/// libpq 16 shuffles each host's addresses too under `load_balance_hosts=random`.
fn order_addresses(config: &ConnConfig, addrs: &mut [std::net::SocketAddr]) {
    if config.load_balance_hosts == LoadBalanceHosts::Random {
        select::shuffle(addrs, &mut random_pick());
    }
}

fn no_tcp_connection(lookup: &str, last: Option<String>) -> Error {
    Error::new(
        ErrorKind::Connect,
        last.unwrap_or_else(|| format!("host {lookup:?} has no address")),
    )
}

/// [`tcp_connect`] on the calling thread (name resolution with getaddrinfo, as libpq).
fn tcp_connect_blocking(
    config: &ConnConfig,
    index: usize,
    name: &str,
    port: u16,
    open: InlineOpen,
) -> Result<(std::net::TcpStream, std::net::SocketAddr)> {
    use std::net::ToSocketAddrs;
    let lookup = &lookup_name(config, index, name);
    let mut addrs: Vec<std::net::SocketAddr> = (lookup.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| unresolved(lookup, &e))?
        .collect();
    order_addresses(config, &mut addrs);
    let mut last = None;
    for addr in addrs {
        let connected = match open.left() {
            Some(left) if left.is_zero() => return Err(open.timed_out()),
            Some(left) => std::net::TcpStream::connect_timeout(&addr, left),
            None => std::net::TcpStream::connect(addr),
        };
        match connected {
            Ok(s) => {
                tune_tcp(config, socket2::SockRef::from(&s))?;
                return Ok((s, addr));
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && open.deadline.is_some() => {
                return Err(open.timed_out())
            }
            Err(e) => last = Some(format!("could not connect to {addr}: {e}")),
        }
    }
    Err(no_tcp_connection(lookup, last))
}

/// Ask the server for TLS on `s` and, if it agrees, run the handshake. A server that declines
/// ('N') leaves a plain connection, unless `mode` demands TLS.
async fn negotiate_tls(
    setup: &tls::TlsSetup,
    mode: SslMode,
    name: &str,
    mut s: TcpStream,
) -> Result<Transport> {
    if tls::ssl_request(&mut s).await? {
        let stream = setup.handshake(name, s).await?;
        Ok(Transport::Tls(Box::new(stream)))
    } else if mode.requires_tls() {
        Err(Error::new(
            ErrorKind::Tls,
            format!("the server does not support SSL, but sslmode={mode} requires it"),
        ))
    } else {
        Ok(Transport::Tcp(s))
    }
}

/// Run a connection step on the caller's thread: the future is polled once, and every wait in
/// it blocks in poll(2) instead of returning `Pending` (see [`Connection::inline`]), so
/// nothing ever needs to wake it.
fn poll_once<T>(step: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let mut step = std::pin::pin!(step);
    let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
    match step
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker))
    {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(Error::new(
            ErrorKind::Panic,
            "internal: a connection step on the calling thread would have waited",
        )),
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
