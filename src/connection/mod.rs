//! Connections: transport, startup, authentication, cancel.
//!
//! A [`Connection`] is a started, authenticated session in the idle state (ReadyForQuery
//! received). The streaming reader in [`crate::stream`] takes it over for one query and gives
//! it back when the query ended cleanly.

pub mod auth;
pub mod cancel;
pub mod transport;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::conninfo::{ConnConfig, Host, SslMode};
use crate::error::{Error, ErrorKind, Result, ServerError};
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

    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.transport
            .write_all(bytes)
            .await
            .map_err(|e| Error::io("could not send to the server", &e))
    }

    /// Read one whole backend message (startup and control paths; the row hot path parses the
    /// buffer itself).
    pub(crate) async fn read_message(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = Message::parse(&mut self.buf)
                .map_err(|e| Error::protocol(format!("malformed message from the server: {e}")))?
            {
                return Ok(m);
            }
            self.buf.reserve(8192);
            let n = self
                .transport
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| Error::io("could not read from the server", &e))?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    "the server closed the connection unexpectedly",
                ));
            }
        }
    }

    /// Open a connection to the first host of `config` that answers, start the session and
    /// authenticate. `connect_timeout` applies to each host.
    pub async fn connect(config: &ConnConfig) -> Result<Connection> {
        let mut failures = Vec::new();
        for (index, (host, port)) in config.hosts.iter().enumerate() {
            let attempt = Self::connect_host(config, index, host, *port);
            let res = match config.connect_timeout {
                Some(t) => match tokio::time::timeout(t, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::new(
                        ErrorKind::Connect,
                        format!("timed out after {} s", t.as_secs_f64()),
                    )),
                },
                None => attempt.await,
            };
            match res {
                Ok(c) => return Ok(c),
                // Only an unreachable host moves on to the next one (as libpq does).
                Err(e) if e.kind() == ErrorKind::Connect && e.server_error().is_none() => {
                    failures.push(format!("{}: {}", describe_host(host, *port), e.message()))
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Connect,
            format!("could not connect to the server: {}", failures.join("; ")),
        ))
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
            Host::Tcp(name) => {
                let (s, addr) = tcp_connect(config, index, name, port).await?;
                let transport = negotiate_tls(config, name, s).await?;
                (transport, CancelTarget::Tcp(addr))
            }
        };
        let mut conn = Connection {
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
        };
        conn.startup(config).await?;
        Ok(conn)
    }

    async fn startup(&mut self, config: &ConnConfig) -> Result<()> {
        let mut out = BytesMut::new();
        let params = config.startup_params();
        frontend::startup_message(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut out,
        )
        .map_err(|e| Error::invalid(format!("invalid startup parameter: {e}")))?;
        self.send(&out).await?;

        let first = self.read_message().await?;
        let binding = postgres_protocol::authentication::sasl::ChannelBinding::unsupported();
        self.mechanism = auth::authenticate(
            self,
            first,
            &config.user,
            config.password.as_deref(),
            binding,
        )
        .await?;

        loop {
            match self.read_message().await? {
                Message::BackendKeyData(k) => {
                    self.cancel.process_id = k.process_id();
                    self.cancel.secret_key = k.secret_key();
                }
                Message::ParameterStatus(_) | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => return Err(startup_error(body)),
                _ => {
                    return Err(Error::protocol(
                        "unexpected message from the server during session startup",
                    ))
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
        // SAFETY: `fd` is owned by the forgotten transport, which can never use or close it
        // again; closing it in this (child) process only drops this process's reference.
        unsafe {
            libc::close(fd);
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
    let hostaddr = config.hostaddr_at(index).map(|a| a.to_string());
    let lookup = hostaddr.as_deref().unwrap_or(name);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((lookup, port))
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("could not resolve host {lookup:?}: {e}"),
            )
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                if config.keepalives {
                    let sock = socket2::SockRef::from(&s);
                    let _ = sock.set_keepalive(true);
                }
                return Ok((s, addr));
            }
            Err(e) => last = Some(format!("could not connect to {addr}: {e}")),
        }
    }
    Err(Error::new(
        ErrorKind::Connect,
        last.unwrap_or_else(|| format!("host {lookup:?} has no address")),
    ))
}

/// Apply `sslmode`. Until TLS support lands, `disable`/`allow`/`prefer` connect without TLS and
/// the modes that demand TLS fail clearly.
async fn negotiate_tls(config: &ConnConfig, _name: &str, s: TcpStream) -> Result<Transport> {
    match config.sslmode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => Ok(Transport::Tcp(s)),
        mode => Err(Error::new(
            ErrorKind::Tls,
            format!("sslmode={mode:?} requires TLS, which this build does not support yet"),
        )),
    }
}

/// How long a connection may sit idle in a client's pool before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
