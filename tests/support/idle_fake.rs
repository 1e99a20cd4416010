//! A small scripted PostgreSQL stand-in for the pool's tests
//! (`support::idle_fake`): trust authentication, and every query answered with one row
//! `{"conn": N, "query": M}` (the connection's number, from 1 in the order they were opened,
//! and the query's number on that connection). What a connection does besides, while idle or
//! on its queries, is scripted per connection number. It listens on 127.0.0.1 and on a Unix
//! socket at once; plain text only (an SSLRequest is declined).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a connection does after it sent ReadyForQuery (after the start-up, or after the
/// answer to a query), before it reads the next query.
#[derive(Clone, Debug, Default)]
pub enum Idle {
    /// Wait for the next query.
    #[default]
    Nothing,
    /// Sleep, write these bytes (e.g. an unsolicited message), then wait for the next query.
    Send(Duration, Vec<u8>),
    /// Sleep, write these bytes, then close the connection (as PostgreSQL does when it ends
    /// an idle session: a FATAL ErrorResponse, then the end of the stream).
    SendAndClose(Duration, Vec<u8>),
    /// Stop reading (`shutdown(SHUT_RD)`) and keep the socket open: over a Unix socket the
    /// client's next write fails at once (EPIPE) while its socket shows nothing to read.
    StopReading,
}

/// How a connection answers a query.
#[derive(Clone, Debug, Default)]
pub enum Answer {
    /// The row, CommandComplete, ReadyForQuery.
    #[default]
    Row,
    /// The answer, followed in the same write by these bytes; then, after the pause, the
    /// second part (an unsolicited message split across two packets).
    RowThen(Vec<u8>, Duration, Vec<u8>),
    /// Close the connection without answering (the server died while running the query).
    Close,
}

/// The script of one connection.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// After the start-up's ReadyForQuery.
    pub after_startup: Idle,
    /// For the connection's first query.
    pub first_answer: Answer,
    /// After the first query's answer.
    pub after_first: Idle,
}

pub struct IdleFake {
    pub port: u16,
    pub dir: PathBuf,
    /// Queries received (Sync messages), over all connections.
    queries: Arc<AtomicUsize>,
    /// Connections that completed the start-up.
    sessions: Arc<AtomicUsize>,
    /// CancelRequests received.
    cancels: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl IdleFake {
    /// Trust over TCP on 127.0.0.1.
    pub fn tcp_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=fake dbname=fake sslmode=disable connect_timeout=5",
            self.port
        )
    }

    /// Trust over the Unix socket.
    pub fn unix_conninfo(&self) -> String {
        format!(
            "host={} port={} user=fake dbname=fake connect_timeout=5",
            self.dir.display(),
            self.port
        )
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    pub fn cancels(&self) -> usize {
        self.cancels.load(Ordering::SeqCst)
    }
}

impl Drop for IdleFake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake both accept loops.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        let _ = std::os::unix::net::UnixStream::connect(socket_path(&self.dir, self.port));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn socket_path(dir: &std::path::Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// Start a server whose connection number `n` (from 1) follows `script(n)`.
pub fn start(script: impl Fn(usize) -> Script + Send + Sync + 'static) -> IdleFake {
    static N: AtomicUsize = AtomicUsize::new(0);
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = tcp.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!(
        "fw-idle-fake-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let unix = UnixListener::bind(socket_path(&dir, port)).expect("bind the Unix socket");
    let fake = IdleFake {
        port,
        dir,
        queries: Arc::default(),
        sessions: Arc::default(),
        cancels: Arc::default(),
        stop: Arc::default(),
    };
    let shared = Arc::new(Server {
        script: Box::new(script),
        next_conn: Mutex::new(0),
        queries: fake.queries.clone(),
        sessions: fake.sessions.clone(),
        cancels: fake.cancels.clone(),
    });
    {
        let (server, stop) = (shared.clone(), fake.stop.clone());
        std::thread::spawn(move || {
            for s in tcp.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = s {
                    let _ = s.set_nodelay(true);
                    let server = server.clone();
                    std::thread::spawn(move || server.session(Box::new(Tcp(s))));
                }
            }
        });
    }
    {
        let (server, stop) = (shared, fake.stop.clone());
        std::thread::spawn(move || {
            for s in unix.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = s {
                    let server = server.clone();
                    std::thread::spawn(move || server.session(Box::new(Unix(s))));
                }
            }
        });
    }
    fake
}

trait Sock: Read + Write + Send {
    fn shutdown_read(&self);
}

struct Tcp(std::net::TcpStream);
struct Unix(std::os::unix::net::UnixStream);

impl Read for Tcp {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}
impl Write for Tcp {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
impl Sock for Tcp {
    fn shutdown_read(&self) {
        let _ = self.0.shutdown(Shutdown::Read);
    }
}
impl Read for Unix {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}
impl Write for Unix {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
impl Sock for Unix {
    fn shutdown_read(&self) {
        let _ = self.0.shutdown(Shutdown::Read);
    }
}

type ScriptFn = Box<dyn Fn(usize) -> Script + Send + Sync>;

struct Server {
    script: ScriptFn,
    next_conn: Mutex<usize>,
    queries: Arc<AtomicUsize>,
    sessions: Arc<AtomicUsize>,
    cancels: Arc<AtomicUsize>,
}

/// One backend message.
pub use super::fault::msg as message;

/// An ErrorResponse (or, with tag `N`, a NoticeResponse) with these fields.
pub fn error_fields(tag: u8, severity: &str, code: &str, text: &str) -> Vec<u8> {
    super::fault::error_fields(
        tag,
        &[
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', text),
        ],
    )
}

fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

fn answer(conn: usize, query: usize) -> Vec<u8> {
    let mut out = message(b'1', b"");
    out.extend(message(b'2', b""));
    let mut desc = Vec::new();
    desc.extend_from_slice(&1i16.to_be_bytes());
    desc.extend_from_slice(b"data\0");
    desc.extend_from_slice(&0i32.to_be_bytes());
    desc.extend_from_slice(&0i16.to_be_bytes());
    desc.extend_from_slice(&3802u32.to_be_bytes()); // jsonb
    desc.extend_from_slice(&(-1i16).to_be_bytes());
    desc.extend_from_slice(&(-1i32).to_be_bytes());
    desc.extend_from_slice(&0i16.to_be_bytes());
    out.extend(message(b'T', &desc));
    let json = format!("{{\"conn\": {conn}, \"query\": {query}}}");
    let mut row = Vec::new();
    row.extend_from_slice(&1i16.to_be_bytes());
    row.extend_from_slice(&(json.len() as i32).to_be_bytes());
    row.extend_from_slice(json.as_bytes());
    out.extend(message(b'D', &row));
    out.extend(message(b'C', b"SELECT 1\0"));
    out.extend(ready());
    out
}

fn read_exact(s: &mut dyn Sock, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

impl Server {
    fn session(&self, mut s: Box<dyn Sock>) {
        // Start-up: an SSLRequest is declined, a CancelRequest counted.
        let body = loop {
            let Some(len) = read_exact(&mut *s, 4) else {
                return;
            };
            let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
            if !(8..=10_000).contains(&len) {
                return;
            }
            let Some(body) = read_exact(&mut *s, len - 4) else {
                return;
            };
            match u32::from_be_bytes(body[..4].try_into().unwrap()) {
                80877103 => {
                    if s.write_all(b"N").is_err() {
                        return;
                    }
                }
                80877102 => {
                    self.cancels.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                _ => break body,
            }
        };
        drop(body);
        let conn = {
            let mut n = self.next_conn.lock().unwrap();
            *n += 1;
            *n
        };
        let script = (self.script)(conn);
        let mut hello = message(b'R', &0u32.to_be_bytes());
        let mut key = (conn as u32).to_be_bytes().to_vec();
        key.extend_from_slice(&7u32.to_be_bytes());
        hello.extend(message(b'K', &key));
        hello.extend(ready());
        // Counted before the client can see its session start: a test that reads the count
        // after `Client::connect` returns must see this session.
        self.sessions.fetch_add(1, Ordering::SeqCst);
        if s.write_all(&hello).is_err() {
            return;
        }
        if !idle(&mut *s, &script.after_startup) {
            return;
        }
        let mut query = 0;
        loop {
            // Messages up to Sync; Terminate or the end of the stream ends the session.
            loop {
                let Some(head) = read_exact(&mut *s, 5) else {
                    return;
                };
                let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
                if len < 4 || read_exact(&mut *s, len - 4).is_none() {
                    return;
                }
                match head[0] {
                    b'X' => return,
                    b'S' => break,
                    _ => {}
                }
            }
            self.queries.fetch_add(1, Ordering::SeqCst);
            query += 1;
            let first = query == 1;
            let how = if first {
                script.first_answer.clone()
            } else {
                Answer::Row
            };
            match how {
                Answer::Row => {
                    if s.write_all(&answer(conn, query)).is_err() {
                        return;
                    }
                }
                Answer::RowThen(tail, pause, rest) => {
                    let mut out = answer(conn, query);
                    out.extend(tail);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                    if s.write_all(&rest).is_err() {
                        return;
                    }
                }
                Answer::Close => return,
            }
            if first && !idle(&mut *s, &script.after_first) {
                return;
            }
        }
    }
}

/// Do `what` on an idle connection; false when the session ends.
fn idle(s: &mut dyn Sock, what: &Idle) -> bool {
    match what {
        Idle::Nothing => true,
        Idle::Send(pause, bytes) => {
            std::thread::sleep(*pause);
            s.write_all(bytes).is_ok()
        }
        Idle::SendAndClose(pause, bytes) => {
            std::thread::sleep(*pause);
            let _ = s.write_all(bytes);
            false
        }
        Idle::StopReading => {
            s.shutdown_read();
            // Keep the socket open until the client goes away (a read now returns 0).
            std::thread::sleep(Duration::from_secs(30));
            false
        }
    }
}
