//! A scripted fake PostgreSQL server for the fault-injection tests
//! (`support::fault`), in the test process: each case gives the server a script (a closure
//! run once per accepted connection) that sends exactly the bytes the case is about, over a
//! Unix socket, plain TCP on 127.0.0.1, or TLS (rustls, a self-signed certificate made with
//! openssl once per test binary; the client connects with `sslmode=require`).
//!
//! A cut connection is closed without a TLS close_notify, as a killed server's would be.
//! Every client call of a case runs under [`within`], a harness-level bound: a case that
//! hangs fails the test instead of stalling the suite.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fraiseql_wire::conninfo::ConnConfig;
use fraiseql_wire::{Client, ErrorKind, Next, Query, Wait};

/// How the client reaches the fake server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Unix,
    Tcp,
    Tls,
}

pub const ALL: [Via; 3] = [Via::Unix, Via::Tcp, Via::Tls];

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;

/// The port in the Unix socket's name (the directory is unique per server).
const UNIX_PORT: u16 = 5432;

type Script = dyn Fn(&mut Peer) -> io::Result<()> + Send + Sync;

/// A listening fake server; stops accepting when dropped.
pub struct Server {
    pub via: Via,
    dir: PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    /// Connections that sent a StartupMessage (CancelRequests and SSL refusals not counted).
    sessions: Arc<AtomicUsize>,
    /// CancelRequests received.
    cancels: Arc<AtomicUsize>,
}

impl Server {
    /// Listen on `via` and run `script` for every session (after the startup packet, and
    /// for TLS the handshake, were read: see [`Peer::startup`]).
    pub fn start(
        via: Via,
        script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
    ) -> Server {
        Self::start_with(via, true, script)
    }

    /// A server that accepts connections and never sends a byte (not even the answer to an
    /// SSLRequest), until the client hangs up.
    pub fn start_silent(via: Via) -> Server {
        Self::start_with(via, false, |_| Ok(()))
    }

    fn start_with(
        via: Via,
        answer: bool,
        script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
    ) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fw-fault-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let script: Arc<Script> = Arc::new(script);
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(AtomicUsize::new(0));
        let cancels = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            via,
            answer,
            script,
            stop: stop.clone(),
            sessions: sessions.clone(),
            cancels: cancels.clone(),
        };
        let port = match via {
            Via::Unix => {
                let l = UnixListener::bind(dir.join(format!(".s.PGSQL.{UNIX_PORT}"))).unwrap();
                std::thread::spawn(move || {
                    for s in l.incoming() {
                        if shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(s) = s else { continue };
                        let shared = shared.clone();
                        std::thread::spawn(move || shared.serve(Conn::Unix(s)));
                    }
                });
                UNIX_PORT
            }
            Via::Tcp | Via::Tls => {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                std::thread::spawn(move || {
                    for s in l.incoming() {
                        if shared.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(s) = s else { continue };
                        let _ = s.set_nodelay(true);
                        let shared = shared.clone();
                        std::thread::spawn(move || shared.serve(Conn::Tcp(s)));
                    }
                });
                port
            }
        };
        Server {
            via,
            dir,
            port,
            stop,
            sessions,
            cancels,
        }
    }

    /// A conninfo string for this server (`extra` appended).
    pub fn conninfo(&self, extra: &str) -> String {
        match self.via {
            Via::Unix => format!(
                "host={} port={} user=u dbname=d {extra}",
                self.dir.display(),
                self.port
            ),
            Via::Tcp => format!(
                "host=127.0.0.1 port={} user=u dbname=d sslmode=disable {extra}",
                self.port
            ),
            Via::Tls => format!(
                "host=127.0.0.1 port={} user=u dbname=d sslmode=require {extra}",
                self.port
            ),
        }
    }

    /// The parsed conninfo with a `connect_timeout` below the conninfo's 2 s minimum.
    pub fn config(&self, connect_timeout: Duration) -> ConnConfig {
        let mut c = ConnConfig::parse(&self.conninfo("password=pw")).unwrap();
        c.connect_timeout = Some(connect_timeout);
        c
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    pub fn cancels(&self) -> usize {
        self.cancels.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        match self.via {
            Via::Unix => {
                let _ = UnixStream::connect(self.dir.join(format!(".s.PGSQL.{UNIX_PORT}")));
            }
            _ => {
                let _ = TcpStream::connect(("127.0.0.1", self.port));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone)]
struct Shared {
    via: Via,
    /// Answer the startup packets (`false`: stay silent throughout).
    answer: bool,
    script: Arc<Script>,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicUsize>,
    cancels: Arc<AtomicUsize>,
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Shared {
    fn serve(&self, conn: Conn) {
        let mut peer = Peer {
            io: match &conn {
                Conn::Tcp(s) => Io::Tcp(s.try_clone().unwrap()),
                Conn::Unix(s) => Io::Unix(s.try_clone().unwrap()),
            },
            raw: conn,
            tls: self.via == Via::Tls,
        };
        if !self.answer {
            peer.silent();
            return;
        }
        match peer.startup() {
            Ok(Startup::Session) => {
                self.sessions.fetch_add(1, Ordering::SeqCst);
                let _ = (self.script)(&mut peer);
            }
            Ok(Startup::Cancel) => {
                self.cancels.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {}
        }
        peer.hang_up();
    }
}

enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Io {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.read(b),
            Io::Unix(s) => s.read(b),
            Io::Tls(s) => s.read(b),
        }
    }
}

impl Write for Io {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.write(b),
            Io::Unix(s) => s.write(b),
            Io::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Tcp(s) => s.flush(),
            Io::Unix(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

enum Startup {
    Session,
    Cancel,
}

/// One accepted connection, as a script sees it.
pub struct Peer {
    io: Io,
    /// The socket itself, to cut it (no TLS close_notify).
    raw: Conn,
    tls: bool,
}

impl Peer {
    /// Read the startup packets: an SSLRequest is answered 'S' and the TLS handshake run (TLS
    /// server) or 'N'; a GSSENCRequest 'N'; then the StartupMessage or a CancelRequest.
    fn startup(&mut self) -> io::Result<Startup> {
        loop {
            let mut hdr = [0u8; 8];
            self.io.read_exact(&mut hdr)?;
            let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let code = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            if !(8..=10_000).contains(&len) {
                return Err(io::Error::other("bad startup packet"));
            }
            let mut body = vec![0u8; len - 8];
            self.io.read_exact(&mut body)?;
            match code {
                SSL_REQUEST if self.tls => {
                    self.io.write_all(b"S")?;
                    let Conn::Tcp(s) = &self.raw else {
                        unreachable!("TLS over TCP")
                    };
                    let conn =
                        rustls::ServerConnection::new(tls_config()).map_err(io::Error::other)?;
                    self.io = Io::Tls(Box::new(rustls::StreamOwned::new(conn, s.try_clone()?)));
                }
                SSL_REQUEST | GSSENC_REQUEST => self.io.write_all(b"N")?,
                CANCEL_REQUEST => return Ok(Startup::Cancel),
                _ => return Ok(Startup::Session),
            }
        }
    }

    /// Send `bytes` (in one write for plain sockets; TLS records as rustls cuts them).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes)?;
        self.io.flush()
    }

    /// Send `total` bytes of `fill`, in pieces (a message too large to build in memory).
    pub fn send_fill(&mut self, total: usize, fill: u8) -> io::Result<()> {
        let piece = vec![fill; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(piece.len());
            self.io.write_all(&piece[..n])?;
            left -= n;
        }
        self.io.flush()
    }

    /// The next frontend message: its tag and body.
    pub fn read_message(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut hdr = [0u8; 5];
        self.io.read_exact(&mut hdr)?;
        let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
        if !(4..=(1 << 24)).contains(&len) {
            return Err(io::Error::other("bad frontend message length"));
        }
        let mut body = vec![0u8; len - 4];
        self.io.read_exact(&mut body)?;
        Ok((hdr[0], body))
    }

    /// Read the client's query up to its Sync; returns the SQL of its Parse.
    pub fn read_query(&mut self) -> io::Result<String> {
        let mut sql = String::new();
        loop {
            let (tag, body) = self.read_message()?;
            match tag {
                b'P' => {
                    let mut parts = body.split(|b| *b == 0);
                    let _name = parts.next();
                    sql = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                }
                b'S' => return Ok(sql),
                b'X' => return Err(io::Error::other("the client terminated")),
                _ => {}
            }
        }
    }

    /// Read until the client hangs up (or the read fails).
    pub fn wait_close(&mut self) {
        let mut sink = [0u8; 4096];
        while let Ok(n) = self.io.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }

    /// Stay connected and silent until the client hangs up.
    pub fn silent(&mut self) {
        self.wait_close();
    }

    /// Close the connection at once, in both directions (for TLS: no close_notify).
    pub fn hang_up(&mut self) {
        let _ = match &self.raw {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// The rustls configuration of the TLS server: a self-signed certificate for 127.0.0.1.
fn tls_config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let dir = std::env::temp_dir().join(format!("fw-fault-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
            super::run(
                std::process::Command::new("openssl")
                    .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                    .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                    .args(["-subj", "/CN=localhost", "-addext"])
                    .args(["subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert),
                "openssl req (a test prerequisite)",
            );
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&key).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            )
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Backend messages
// ---------------------------------------------------------------------------------------------

pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A message whose length field says `len` whatever the body.
pub fn msg_with_len(tag: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

pub fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    msg(b'R', &b)
}

pub fn auth_ok() -> Vec<u8> {
    auth(0, &[])
}

pub fn parameter_status(k: &str, v: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, k);
    cstr(&mut b, v);
    msg(b'S', &b)
}

pub fn backend_key() -> Vec<u8> {
    let mut b = 4242i32.to_be_bytes().to_vec();
    b.extend_from_slice(&77i32.to_be_bytes());
    msg(b'K', &b)
}

pub fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

/// Everything after AuthenticationOk up to ReadyForQuery.
pub fn session_rest() -> Vec<u8> {
    [
        parameter_status("server_version", "15.0"),
        parameter_status("client_encoding", "UTF8"),
        backend_key(),
        ready(),
    ]
    .concat()
}

/// A trust session's start: AuthenticationOk to ReadyForQuery.
pub fn session_start() -> Vec<u8> {
    [auth_ok(), session_rest()].concat()
}

/// A RowDescription of one column `data` of type oid `oid` with format code `format`.
pub fn row_description_with(name: &str, oid: u32, format: i16) -> Vec<u8> {
    let mut b = 1u16.to_be_bytes().to_vec();
    cstr(&mut b, name);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&oid.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&format.to_be_bytes());
    msg(b'T', &b)
}

/// The description of a jsonb `data` column in text format.
pub fn row_description() -> Vec<u8> {
    row_description_with("data", 3802, 0)
}

/// ParseComplete, BindComplete and the description.
pub fn described() -> Vec<u8> {
    [msg(b'1', &[]), msg(b'2', &[]), row_description()].concat()
}

/// A one-column DataRow.
pub fn data_row(value: &[u8]) -> Vec<u8> {
    let mut b = 1u16.to_be_bytes().to_vec();
    b.extend_from_slice(&(value.len() as i32).to_be_bytes());
    b.extend_from_slice(value);
    msg(b'D', &b)
}

/// A one-column DataRow whose field length says `len`.
pub fn data_row_len(len: i32, value: &[u8]) -> Vec<u8> {
    let mut b = 1u16.to_be_bytes().to_vec();
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(value);
    msg(b'D', &b)
}

/// Rows `{"i":0}`, `{"i":1}`, ...
pub fn rows(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| data_row(format!("{{\"i\":{i}}}").as_bytes()))
        .collect()
}

pub fn command_complete(tag: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, tag);
    msg(b'C', &b)
}

/// CommandComplete and ReadyForQuery.
pub fn complete(n: usize) -> Vec<u8> {
    [command_complete(&format!("SELECT {n}")), ready()].concat()
}

/// An ErrorResponse (`tag` b'E') or NoticeResponse (b'N') with these fields.
pub fn error_fields(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (t, v) in fields {
        b.push(*t);
        cstr(&mut b, v);
    }
    b.push(0);
    msg(tag, &b)
}

pub fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
    error_fields(
        b'E',
        &[
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message),
        ],
    )
}

/// The header of an ErrorResponse/NoticeResponse whose message field is `len` bytes of
/// filler: send it, then `len` filler bytes, then [`huge_error_tail`].
pub fn huge_error_head(tag: u8, code: &str, len: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for (t, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code)] {
        b.push(t);
        cstr(&mut b, v);
    }
    b.push(b'M');
    let total = 4 + b.len() + len + 2;
    let mut out = vec![tag];
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&b);
    out
}

/// The end of a [`huge_error_head`] message: the message field's NUL and the terminator.
pub fn huge_error_tail() -> Vec<u8> {
    vec![0, 0]
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Run `f` on its own thread and wait at most `limit` for it: a case that hangs fails the
/// test (its thread is left behind).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: no outcome within {limit:?} (hung)"),
    }
}

/// What a client saw of one query against a fake server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Client::connect` failed.
    Connect(ErrorKind, String),
    /// `Client::execute` failed.
    Execute(ErrorKind, String),
    /// The stream delivered `rows` rows, then ended (`None`) or failed.
    Stream {
        rows: Vec<String>,
        end: Option<(ErrorKind, String)>,
    },
}

impl Outcome {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Connect(k, _) | Outcome::Execute(k, _) => Some(*k),
            Outcome::Stream { end, .. } => end.as_ref().map(|e| e.0),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Connect(_, m) | Outcome::Execute(_, m) => m,
            Outcome::Stream { end, .. } => end.as_ref().map_or("", |e| e.1.as_str()),
        }
    }

    pub fn row_count(&self) -> usize {
        match self {
            Outcome::Stream { rows, .. } => rows.len(),
            _ => 0,
        }
    }
}

/// Connect with `config`, run one query and drain it (`Wait::Forever`: only the harness
/// bound ends a hang), all within `limit`.
pub fn run_config(config: ConnConfig, query: Query, limit: Duration, what: &str) -> Outcome {
    within(limit, what, move || {
        let client = match Client::with_config(config) {
            Ok(c) => c,
            Err(e) => return Outcome::Connect(e.kind(), e.to_string()),
        };
        drain(&client, &query)
    })
}

/// [`run_config`] with the server's conninfo (a password given, a 5 s connect timeout).
pub fn run(server: &Server, limit: Duration, what: &str) -> Outcome {
    run_config(
        server.config(Duration::from_secs(5)),
        Query::new("v_fault").unwrap(),
        limit,
        what,
    )
}

/// Execute `query` on `client` and drain the stream.
pub fn drain(client: &Client, query: &Query) -> Outcome {
    drain_busy(client, query, Duration::ZERO)
}

/// Execute `query` on `client` and drain the stream, busy for `busy` after the first row (a
/// reader task takes over and reads meanwhile).
pub fn drain_busy(client: &Client, query: &Query, busy: Duration) -> Outcome {
    let mut s = match client.execute(query) {
        Ok(s) => s,
        Err(e) => return Outcome::Execute(e.kind(), e.to_string()),
    };
    let mut rows = Vec::new();
    loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(r)) => {
                rows.push(String::from_utf8_lossy(r).into_owned());
                if rows.len() == 1 && !busy.is_zero() {
                    std::thread::sleep(busy);
                }
            }
            Ok(Next::Done) => return Outcome::Stream { rows, end: None },
            Ok(other) => panic!("next(Wait::Forever) returned {other:?}"),
            Err(e) => {
                return Outcome::Stream {
                    rows,
                    end: Some((e.kind(), e.to_string())),
                }
            }
        }
    }
}

/// This process's resident set size in bytes (VmRSS).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

/// Held by the cases that measure RSS and by those that use a lot of memory, so that a
/// measurement sees only its own case.
pub fn memory_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
