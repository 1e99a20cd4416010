//! Opening a connection: libpq's host loop (the decisions are in [`select`]), the socket
//! (TCP with `sslmode`, or a Unix socket), and the two drivers of the start-up state machine
//! ([`startup::Startup`]): on the runtime with asynchronous I/O, or on the caller's thread
//! with blocking I/O (plain sockets). Both drivers run the same decisions; neither can meet
//! a wait it cannot make.

use std::time::Instant;

use bytes::BytesMut;
use tokio::net::{TcpStream, UnixStream};

use super::startup::{Startup, Step, TransactionStatus};
use super::{
    select, socket_path, timed_out, tls, transport, CancelTarget, Connection, InlineOpen,
    Transport, TransportKind, SLOW_STARTUP, TERMINATE,
};
use crate::conninfo::{ConnConfig, Host, LoadBalanceHosts, SslMode, TargetSessionAttrs};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::Phase;

/// What a driver of [`Startup`] does next.
enum Io {
    Send(BytesMut),
    Read,
    Done,
}

/// The attempts of libpq's host loop and the hosts skipped so far.
struct HostLoop {
    attempts: std::vec::IntoIter<(select::Pass, usize)>,
    skipped: Vec<select::Skipped>,
}

impl HostLoop {
    fn new(config: &ConnConfig) -> HostLoop {
        let order = select::host_order(
            config.hosts.len(),
            config.load_balance_hosts,
            &mut random_pick(),
        );
        HostLoop {
            attempts: select::attempts(config.target_session_attrs, &order).into_iter(),
            skipped: Vec::new(),
        }
    }

    /// The outcome of one attempt: the connection (`Ok(Some)`), the host skipped (`Ok(None)`:
    /// unreachable, not accepting connections now, or without the session attributes asked
    /// for), or an error that ends the loop.
    fn settle(
        &mut self,
        config: &ConnConfig,
        index: usize,
        pass: select::Pass,
        res: Result<std::result::Result<Connection, select::Rejection>>,
    ) -> Result<Option<Connection>> {
        let (host, port) = &config.hosts[index];
        let reason = match res {
            Ok(Ok(mut c)) => {
                c.host = index;
                c.pass = pass;
                c.host_label = describe_host(host, *port);
                crate::metrics::connection_created(c.kind().label());
                return Ok(Some(c));
            }
            Ok(Err(rejection)) => rejection.to_string(),
            Err(e) if select::moves_on(&e) => e.to_string(),
            Err(e) => {
                crate::metrics::connection_error(&e);
                return Err(e);
            }
        };
        self.skipped.push(select::Skipped {
            host: describe_host(host, *port),
            pass,
            reason,
        });
        Ok(None)
    }

    fn no_host(self, config: &ConnConfig) -> Error {
        let e = select::no_host(config.target_session_attrs, &self.skipped);
        crate::metrics::connection_error(&e);
        e
    }
}

impl Connection {
    /// Open a connection to the first host of `config` that answers, start the session and
    /// authenticate, on the runtime. `connect_timeout` applies to each host.
    ///
    /// libpq's connection loop (the decisions are in [`select`]): the hosts in order, or
    /// shuffled with `load_balance_hosts=random`; a host that cannot be reached, cannot accept
    /// connections now (57P03), or whose session does not have the `target_session_attrs`
    /// asked for is skipped; prefer-standby goes over the hosts twice. `connect_timeout`
    /// applies to each attempt, the attribute check included.
    pub async fn connect(config: &ConnConfig) -> Result<Connection> {
        let mut hosts = HostLoop::new(config);
        while let Some((pass, index)) = hosts.attempts.next() {
            let (host, port) = &config.hosts[index];
            let attempt = Self::attempt(config, index, host, *port, pass);
            let res = match config.connect_timeout {
                Some(t) => match tokio::time::timeout(t, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(timed_out(t)),
                },
                None => attempt.await,
            };
            if let Some(c) = hosts.settle(config, index, pass, res)? {
                return Ok(c);
            }
        }
        Err(hosts.no_host(config))
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
    /// hand-over between threads costs a wake-up). The host loop's decisions and the start-up
    /// exchange are the same as the runtime's; every wait blocks in poll(2), in slices that
    /// ask `shut_down` (the connection keeps it for its later blocking waits).
    pub(crate) fn connect_inline(
        config: &ConnConfig,
        shut_down: fn() -> bool,
    ) -> Result<Connection> {
        let mut hosts = HostLoop::new(config);
        while let Some((pass, index)) = hosts.attempts.next() {
            let (host, port) = &config.hosts[index];
            let open = InlineOpen::new(config.connect_timeout);
            let res = Self::attempt_inline(config, index, host, *port, open, pass, shut_down);
            if let Some(c) = hosts.settle(config, index, pass, res)? {
                return Ok(c);
            }
        }
        Err(hosts.no_host(config))
    }

    /// Let the blocking waits of this connection ask `shut_down` (see
    /// [`Connection::connect_inline`]): for a connection opened on the runtime that is later
    /// read on the caller's thread.
    pub(crate) fn with_shutdown_check(mut self, shut_down: fn() -> bool) -> Connection {
        self.shut_down = shut_down;
        self
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
    fn attempt_inline(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
        open: InlineOpen,
        pass: select::Pass,
        shut_down: fn() -> bool,
    ) -> Result<std::result::Result<Connection, select::Rejection>> {
        let mut conn = Self::connect_host_inline(config, index, host, port, open, shut_down)?;
        match conn.check_target_blocking(config.target_session_attrs, pass, open)? {
            None => Ok(Ok(conn)),
            Some(r) => {
                conn.close();
                Ok(Err(r))
            }
        }
    }

    /// Whether a pooled connection is checked again before a new stream uses it
    /// ([`Connection::recheck`]): when the client asks for particular session attributes. With
    /// `target_session_attrs=any` (and a prefer-standby session taken in the second pass)
    /// there is nothing to check and no round trip.
    pub(crate) fn needs_recheck(&self, config: &ConnConfig) -> bool {
        config.target_session_attrs != TargetSessionAttrs::Any && self.pass != select::Pass::Second
    }

    /// Check a pooled connection again (see [`Connection::needs_recheck`]): a host's role
    /// changes (a standby is promoted, a primary is demoted or made read-only), and a pooled
    /// session must not outlive that. One round trip: an empty query, whose ReadyForQuery the
    /// server precedes with the changed `in_hot_standby`/`default_transaction_read_only`
    /// (PostgreSQL 14+), or else the check queries again. `Ok(false)` when it no longer
    /// qualifies; the caller then closes it and opens a new connection through host selection.
    pub(crate) async fn recheck(&mut self, config: &ConnConfig) -> Result<bool> {
        let want = config.target_session_attrs;
        self.session.forget_answers();
        if self.session.reported {
            self.simple_query_value("").await?;
        }
        Ok(self.check_target(want, self.pass).await?.is_none())
    }

    /// [`Connection::recheck`] on the calling thread (plain sockets), within `connect_timeout`.
    pub(crate) fn recheck_blocking(&mut self, config: &ConnConfig) -> Result<bool> {
        let want = config.target_session_attrs;
        let open = InlineOpen::new(config.connect_timeout);
        self.session.forget_answers();
        if self.session.reported {
            self.simple_query_value_blocking("", open)?;
        }
        Ok(self.check_target_blocking(want, self.pass, open)?.is_none())
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

    /// [`Connection::check_target`] on the calling thread.
    fn check_target_blocking(
        &mut self,
        want: TargetSessionAttrs,
        pass: select::Pass,
        open: InlineOpen,
    ) -> Result<Option<select::Rejection>> {
        loop {
            match select::check(want, pass, self.session) {
                select::Check::Accept => return Ok(None),
                select::Check::Reject(r) => return Ok(Some(r)),
                select::Check::Ask(q) => match self.simple_query_value_blocking(q.sql(), open)? {
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
        self.send(&select::ValueQuery::request(sql)?).await?;
        let mut q = select::ValueQuery::default();
        loop {
            while let Some(m) = self.parse_message()? {
                if let Some(value) = q.on_message(m, &mut self.session) {
                    return Ok(value);
                }
            }
            self.read_more().await?;
        }
    }

    /// [`Connection::simple_query_value`] on the calling thread.
    fn simple_query_value_blocking(
        &mut self,
        sql: &str,
        open: InlineOpen,
    ) -> Result<Option<String>> {
        self.send_blocking_until(&select::ValueQuery::request(sql)?, open)?;
        let mut q = select::ValueQuery::default();
        loop {
            while let Some(m) = self.parse_message()? {
                if let Some(value) = q.on_message(m, &mut self.session) {
                    return Ok(value);
                }
            }
            self.read_blocking(open)?;
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
    fn connect_host_inline(
        config: &ConnConfig,
        index: usize,
        host: &Host,
        port: u16,
        open: InlineOpen,
        shut_down: fn() -> bool,
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
        let mut conn =
            Connection::new(Transport::Detached(socket), target).with_shutdown_check(shut_down);
        conn.startup_blocking(config, open)?;
        Ok(conn)
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
            match conn.startup(config).await {
                Ok(()) => return Ok(conn),
                Err(e)
                    if !second_try
                        && conn.phase == Phase::Auth
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
        }
    }

    /// Drive the start-up exchange on the runtime: the StartupMessage, authentication, and
    /// the session's parameters up to ReadyForQuery.
    async fn startup(&mut self, config: &ConnConfig) -> Result<()> {
        let binding = tls::channel_binding_info(config.channel_binding, &self.transport);
        let mut sm = Startup::new(config, binding);
        let started = Instant::now();
        loop {
            let done = match self.startup_step(&mut sm, started) {
                Ok(Io::Send(out)) => self.send(&out).await,
                Ok(Io::Read) => self.read_more().await,
                Ok(Io::Done) => return Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                return Err(startup_failed(&sm, e, started));
            }
        }
    }

    /// [`Connection::startup`] on the calling thread, within `open`'s deadline.
    fn startup_blocking(&mut self, config: &ConnConfig, open: InlineOpen) -> Result<()> {
        let binding = tls::channel_binding_info(config.channel_binding, &self.transport);
        let mut sm = Startup::new(config, binding);
        let started = Instant::now();
        loop {
            let done = match self.startup_step(&mut sm, started) {
                Ok(Io::Send(out)) => self.send_blocking_until(&out, open),
                Ok(Io::Read) => self.read_blocking(open),
                Ok(Io::Done) => return Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                return Err(startup_failed(&sm, e, started));
            }
        }
    }

    /// Step the start-up exchange until it needs I/O, applying what it learnt to the
    /// connection: the mechanism (and the authentication metrics) at AuthenticationOk, the
    /// cancel key and the session's parameters at ReadyForQuery.
    fn startup_step(&mut self, sm: &mut Startup<'_>, started: Instant) -> Result<Io> {
        loop {
            let first_answer = sm.requested().is_none();
            let step = sm.step(&mut self.buf)?;
            if first_answer && sm.requested().is_some() {
                self.note_startup_answer(started.elapsed());
            }
            match step {
                Step::Send(out) => return Ok(Io::Send(out)),
                Step::Read => return Ok(Io::Read),
                Step::Authenticated(m) => {
                    crate::metrics::auth_attempt(m.label(), Ok(()), started.elapsed());
                    self.mechanism = m;
                    self.phase = Phase::Session;
                }
                Step::Ready(status) => {
                    if status != TransactionStatus::Idle {
                        crate::log::debug(format!(
                            "the new session is not idle at its first ReadyForQuery: {}",
                            status.describe()
                        ));
                    }
                    if let Some((pid, secret)) = sm.key {
                        self.cancel.process_id = pid;
                        self.cancel.secret_key = secret;
                    }
                    for (name, value) in &sm.parameters {
                        self.session.parameter(name, value);
                    }
                    return Ok(Io::Done);
                }
            }
        }
    }

    /// The server's first answer also tells whether the first query's answer is worth
    /// spinning for (see `answer_time`): PostgreSQL forks a backend first (milliseconds) and
    /// then takes hundreds of microseconds per query, too long to spin for; a pooler or a
    /// local fake server answers within a fraction of SLOW_STARTUP, and the first query is
    /// spun for as before.
    fn note_startup_answer(&mut self, took: std::time::Duration) {
        if took > SLOW_STARTUP {
            self.answer_time = Some(took);
        }
    }
}

/// An error of the start-up exchange, counted as a failed authentication when it came
/// between the server's authentication request and AuthenticationOk.
fn startup_failed(sm: &Startup<'_>, e: Error, started: Instant) -> Error {
    if let (Some(requested), false) = (sm.requested(), sm.authenticated()) {
        crate::metrics::auth_attempt(
            requested,
            Err(crate::metrics::auth_failure_reason(&e)),
            started.elapsed(),
        );
    }
    e
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
