//! One client connection: startup, simple and extended query, cursors, cancel, faults.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::proto;
use crate::workload::{self, Faults, Workload, JSONB_OID, TEXT_OID};

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
const PROTOCOL_3: u32 = 196608;
const SLOW_PIECE: usize = 8192;

#[derive(Clone, Debug)]
pub enum Auth {
    Trust,
    /// Cleartext password (AuthenticationCleartextPassword).
    Password(String),
}

#[derive(Debug)]
pub struct Config {
    pub faults: Faults,
    pub write_size: usize,
    pub auth: Auth,
    pub verbose: bool,
    /// `--ignore-flush`: Flush sends nothing (the answer goes out at Sync).
    pub ignore_flush: bool,
    /// `--cpu-file`: where the sessions' CPU time is totalled.
    pub cpu: Option<crate::cpu::CpuLog>,
}

pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }
    fn shutdown(&self) {
        let _ = match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(b),
            Sock::Unix(s) => s.read(b),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(b),
            Sock::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Live sessions by backend pid: (secret, cancel flag), for CancelRequest.
type Registry = Mutex<HashMap<i32, (i32, Arc<AtomicBool>)>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

static NEXT_PID: AtomicI32 = AtomicI32::new(10_000);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tx {
    Idle,
    /// In a transaction block.
    Open,
    Failed,
}

/// How sending a result ended.
enum Sent {
    /// All rows sent; the caller sends the completion.
    Done,
    /// An ErrorResponse was queued; the query is over.
    Error,
    /// The connection is to be closed (cut, or a protocol violation was sent).
    Closed,
}

struct Portal {
    sql: String,
    /// Rows already sent (for Execute with a row limit).
    pos: u64,
}

struct Cursor {
    wl: Workload,
    pos: u64,
}

enum Cmd {
    Begin,
    Commit,
    Rollback,
    Set(String),
    Declare { name: String, query: String },
    Fetch { count: Option<u64>, name: String },
    Close { name: String },
    Select,
    Empty,
    Other(String),
}

fn classify(sql: &str) -> Cmd {
    let t = sql.trim().trim_end_matches(';').trim();
    if t.is_empty() {
        return Cmd::Empty;
    }
    let lower = t.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words[0] {
        "begin" | "start" => Cmd::Begin,
        "commit" | "end" => Cmd::Commit,
        "rollback" | "abort" => Cmd::Rollback,
        "set" | "reset" | "discard" => Cmd::Set(words[0].to_ascii_uppercase()),
        "select" | "with" | "table" => Cmd::Select,
        "declare" if words.len() >= 2 => {
            let name = words[1].trim_matches('"').to_string();
            match lower.find(" for ") {
                Some(p) => Cmd::Declare {
                    name,
                    query: t[p + 5..].to_string(),
                },
                None => Cmd::Other(t.to_string()),
            }
        }
        "fetch" | "move" if words.len() >= 2 => {
            // FETCH [FORWARD] [n | ALL | NEXT] [FROM | IN] name
            let mut rest: Vec<&str> = words[1..].to_vec();
            let name = rest.pop().unwrap_or_default().trim_matches('"').to_string();
            rest.retain(|w| !matches!(*w, "from" | "in" | "forward"));
            let count = match rest.first() {
                None | Some(&"next") => Some(1),
                Some(&"all") => None,
                Some(n) => match n.parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => return Cmd::Other(t.to_string()),
                },
            };
            Cmd::Fetch { count, name }
        }
        "close" if words.len() >= 2 => Cmd::Close {
            name: words[1].trim_matches('"').to_string(),
        },
        _ => Cmd::Other(t.to_string()),
    }
}

/// The relation a SELECT names, for error messages.
fn relation_of(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    match lower.find(" from ") {
        Some(p) => sql[p + 6..]
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .trim_matches('"')
            .to_string(),
        None => "?".to_string(),
    }
}

fn columns(f: &Faults) -> Vec<(&'static str, u32)> {
    let name = if f.rename { "doc" } else { "data" };
    let oid = f.type_oid.unwrap_or(JSONB_OID);
    if f.two_cols {
        vec![(name, oid), ("extra", TEXT_OID)]
    } else {
        vec![(name, oid)]
    }
}

pub struct Session {
    cfg: Arc<Config>,
    r: BufReader<Sock>,
    w: Sock,
    out: Vec<u8>,
    pid: i32,
    cancel: Arc<AtomicBool>,
    stmts: HashMap<String, String>,
    portals: HashMap<String, Portal>,
    cursors: HashMap<String, Cursor>,
    tx: Tx,
    skip_to_sync: bool,
}

/// Reports a session's end to `--cpu-file` when dropped: whether the session ends normally,
/// early or by a panic, a started session is counted as ended once.
struct CpuGuard(Arc<Config>);

impl Drop for CpuGuard {
    fn drop(&mut self) {
        if let Some(cpu) = &self.0.cpu {
            cpu.session_ended();
        }
    }
}

/// Serve one connection until it ends.
pub fn serve(sock: Sock, cfg: Arc<Config>) {
    if let Some(cpu) = &cfg.cpu {
        cpu.session_started();
    }
    let _cpu = CpuGuard(cfg.clone());
    if let Sock::Tcp(s) = &sock {
        let _ = s.set_nodelay(true);
    }
    let w = match sock.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut s = Session {
        cfg,
        r: BufReader::with_capacity(64 * 1024, sock),
        w,
        out: Vec::with_capacity(64 * 1024),
        pid: 0,
        cancel: Arc::new(AtomicBool::new(false)),
        stmts: HashMap::new(),
        portals: HashMap::new(),
        cursors: HashMap::new(),
        tx: Tx::Idle,
        skip_to_sync: false,
    };
    let r = s.run();
    if s.pid != 0 {
        registry().lock().unwrap().remove(&s.pid);
    }
    if let Err(e) = r {
        if s.cfg.verbose {
            eprintln!("fakepg: session {} ended: {e}", s.pid);
        }
    }
}

impl Session {
    fn run(&mut self) -> io::Result<()> {
        if !self.startup()? {
            return Ok(());
        }
        loop {
            let mut hdr = [0u8; 5];
            if let Err(e) = self.r.read_exact(&mut hdr) {
                return if e.kind() == io::ErrorKind::UnexpectedEof {
                    if self.cfg.verbose {
                        eprintln!("fakepg: session {} closed without Terminate", self.pid);
                    }
                    Ok(())
                } else {
                    Err(e)
                };
            }
            let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
            if !(4..=(1 << 30)).contains(&len) {
                return Err(io::Error::other("bad frontend message length"));
            }
            let mut body = vec![0u8; len - 4];
            self.r.read_exact(&mut body)?;
            if !self.message(hdr[0], &body)? {
                self.flush()?;
                return Ok(());
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.w.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// The startup phase. `Ok(false)`: the connection is done (cancel request, bad auth).
    fn startup(&mut self) -> io::Result<bool> {
        loop {
            let mut hdr = [0u8; 8];
            self.r.read_exact(&mut hdr)?;
            let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let code = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            if !(8..=10_000).contains(&len) {
                return Ok(false);
            }
            let mut body = vec![0u8; len - 8];
            self.r.read_exact(&mut body)?;
            match code {
                SSL_REQUEST | GSSENC_REQUEST => {
                    self.w.write_all(b"N")?;
                }
                CANCEL_REQUEST if body.len() >= 8 => {
                    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    if let Some((s, flag)) = registry().lock().unwrap().get(&pid) {
                        if *s == secret {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                    return Ok(false);
                }
                PROTOCOL_3 => break,
                _ => {
                    proto::error_fields(
                        &mut self.out,
                        b'E',
                        "FATAL",
                        "0A000",
                        "unsupported frontend protocol",
                    );
                    self.flush()?;
                    return Ok(false);
                }
            }
        }
        if let Auth::Password(pw) = self.cfg.auth.clone() {
            proto::auth_cleartext(&mut self.out);
            self.flush()?;
            let mut hdr = [0u8; 5];
            self.r.read_exact(&mut hdr)?;
            let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            self.r.read_exact(&mut body)?;
            let given = body.split(|b| *b == 0).next().unwrap_or_default();
            if hdr[0] != b'p' || given != pw.as_bytes() {
                proto::error_fields(
                    &mut self.out,
                    b'E',
                    "FATAL",
                    "28P01",
                    "password authentication failed for user",
                );
                self.flush()?;
                return Ok(false);
            }
        }
        self.pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
        let secret = (self.pid as u32).wrapping_mul(2_654_435_761) as i32;
        registry()
            .lock()
            .unwrap()
            .insert(self.pid, (secret, self.cancel.clone()));
        let o = &mut self.out;
        proto::auth_ok(o);
        for (k, v) in [
            ("server_version", "15.0 (fakepg)"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("TimeZone", "UTC"),
            ("is_superuser", "off"),
            ("application_name", ""),
        ] {
            proto::parameter_status(o, k, v);
        }
        proto::backend_key(o, self.pid, secret);
        proto::ready(o, b'I');
        self.flush()?;
        Ok(true)
    }

    fn tx_status(&self) -> u8 {
        match self.tx {
            Tx::Idle => b'I',
            Tx::Open => b'T',
            Tx::Failed => b'E',
        }
    }

    fn fail(&mut self, code: &str, message: &str) {
        proto::error(&mut self.out, code, message);
        self.query_failed();
    }

    fn query_failed(&mut self) {
        if self.tx == Tx::Open {
            self.tx = Tx::Failed;
        }
    }

    /// Handle one frontend message. `Ok(false)`: close the connection.
    fn message(&mut self, tag: u8, body: &[u8]) -> io::Result<bool> {
        if tag == b'X' {
            if self.cfg.verbose {
                eprintln!("fakepg: session {} terminated by the client", self.pid);
            }
            return Ok(false);
        }
        if self.skip_to_sync && tag != b'S' {
            return Ok(true);
        }
        let mut p = Parser { b: body, i: 0 };
        match tag {
            b'Q' => {
                let sql = p.cstr();
                return self.simple_query(&sql);
            }
            b'P' => {
                let name = p.cstr();
                let sql = p.cstr();
                self.stmts.insert(name, sql);
                proto::msg(&mut self.out, b'1', &[]);
            }
            b'B' => {
                let portal = p.cstr();
                let stmt = p.cstr();
                match self.stmts.get(&stmt) {
                    Some(sql) => {
                        let sql = sql.clone();
                        self.portals.insert(portal, Portal { sql, pos: 0 });
                        proto::msg(&mut self.out, b'2', &[]);
                    }
                    None => {
                        self.fail(
                            "26000",
                            &format!("prepared statement \"{stmt}\" does not exist"),
                        );
                        self.skip_to_sync = true;
                    }
                }
            }
            b'D' => {
                let kind = p.byte();
                let name = p.cstr();
                let sql = if kind == b'S' {
                    self.stmts.get(&name).cloned()
                } else if let (None, Some(c)) = (self.portals.get(&name), self.cursors.get(&name)) {
                    // A cursor opened with DECLARE is a portal too (psycopg's named cursors
                    // describe it so).
                    let cols = columns(&c.wl.faults);
                    proto::row_description(&mut self.out, &cols);
                    return Ok(true);
                } else {
                    self.portals.get(&name).map(|p| p.sql.clone())
                };
                match sql {
                    None => {
                        self.fail("34000", &format!("unknown statement or portal \"{name}\""));
                        self.skip_to_sync = true;
                    }
                    Some(sql) => {
                        if kind == b'S' {
                            proto::msg(&mut self.out, b't', &0u16.to_be_bytes());
                        }
                        if !self.describe(&sql) {
                            self.skip_to_sync = true;
                        }
                    }
                }
            }
            b'E' => {
                let portal = p.cstr();
                let max = p.i32().max(0) as u64;
                match self.execute(&portal, max)? {
                    Sent::Done => {}
                    Sent::Error => self.skip_to_sync = true,
                    Sent::Closed => return Ok(false),
                }
            }
            b'S' => {
                self.skip_to_sync = false;
                let st = self.tx_status();
                proto::ready(&mut self.out, st);
                self.flush()?;
            }
            b'H' if self.cfg.ignore_flush => {}
            b'H' => self.flush()?,
            b'C' => {
                let kind = p.byte();
                let name = p.cstr();
                if kind == b'S' {
                    self.stmts.remove(&name);
                } else {
                    self.portals.remove(&name);
                }
                proto::msg(&mut self.out, b'3', &[]);
            }
            other => {
                proto::error_fields(
                    &mut self.out,
                    b'E',
                    "FATAL",
                    "08P01",
                    &format!("invalid frontend message type {}", other as char),
                );
                return Ok(false);
            }
        }
        if self.out.len() >= self.cfg.write_size {
            self.flush()?;
        }
        Ok(true)
    }

    /// Describe a statement's result: RowDescription, NoData, or an error (false).
    fn describe(&mut self, sql: &str) -> bool {
        match classify(sql) {
            Cmd::Select => match workload::resolve(sql, &self.cfg.faults) {
                Ok(Some(wl)) => {
                    proto::row_description(&mut self.out, &columns(&wl.faults));
                    true
                }
                Ok(None) => {
                    let rel = relation_of(sql);
                    self.fail("42P01", &format!("relation \"{rel}\" does not exist"));
                    false
                }
                Err(m) => {
                    self.fail("42602", &m);
                    false
                }
            },
            Cmd::Fetch { name, .. } => match self.cursors.get(&name) {
                Some(c) => {
                    let cols = columns(&c.wl.faults);
                    proto::row_description(&mut self.out, &cols);
                    true
                }
                None => {
                    self.fail("34000", &format!("cursor \"{name}\" does not exist"));
                    false
                }
            },
            _ => {
                proto::msg(&mut self.out, b'n', &[]);
                true
            }
        }
    }

    fn execute(&mut self, portal: &str, max: u64) -> io::Result<Sent> {
        let Some(p) = self.portals.get(portal) else {
            self.fail("34000", &format!("portal \"{portal}\" does not exist"));
            return Ok(Sent::Error);
        };
        let sql = p.sql.clone();
        let pos = p.pos;
        self.cancel.store(false, Ordering::SeqCst);
        if self.tx == Tx::Failed && !matches!(classify(&sql), Cmd::Commit | Cmd::Rollback) {
            self.fail(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            );
            return Ok(Sent::Error);
        }
        match classify(&sql) {
            Cmd::Select => {
                let wl = match workload::resolve(&sql, &self.cfg.faults) {
                    Ok(Some(wl)) => wl,
                    Ok(None) => {
                        let rel = relation_of(&sql);
                        self.fail("42P01", &format!("relation \"{rel}\" does not exist"));
                        return Ok(Sent::Error);
                    }
                    Err(m) => {
                        self.fail("42602", &m);
                        return Ok(Sent::Error);
                    }
                };
                let left = wl.rows - pos.min(wl.rows);
                let n = if max > 0 { left.min(max) } else { left };
                let r = self.stream(&wl, pos, n)?;
                if let Sent::Done = r {
                    if let Some(p) = self.portals.get_mut(portal) {
                        p.pos = pos + n;
                    }
                    if pos + n < wl.rows {
                        proto::msg(&mut self.out, b's', &[]);
                    } else {
                        proto::command_complete(&mut self.out, &format!("SELECT {n}"));
                    }
                }
                Ok(r)
            }
            _ => self.run_other(&sql, false),
        }
    }

    fn simple_query(&mut self, sql: &str) -> io::Result<bool> {
        self.cancel.store(false, Ordering::SeqCst);
        let stmts: Vec<String> = sql
            .split(';')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if stmts.is_empty() {
            proto::msg(&mut self.out, b'I', &[]);
        }
        for st in stmts {
            let cmd = classify(&st);
            if self.tx == Tx::Failed && !matches!(cmd, Cmd::Commit | Cmd::Rollback) {
                self.fail(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                );
                break;
            }
            let r = match cmd {
                Cmd::Select => match workload::resolve(&st, &self.cfg.faults) {
                    Ok(Some(wl)) => {
                        proto::row_description(&mut self.out, &columns(&wl.faults));
                        let r = self.stream(&wl, 0, wl.rows)?;
                        if let Sent::Done = r {
                            proto::command_complete(&mut self.out, &format!("SELECT {}", wl.rows));
                        }
                        r
                    }
                    Ok(None) => {
                        let rel = relation_of(&st);
                        self.fail("42P01", &format!("relation \"{rel}\" does not exist"));
                        Sent::Error
                    }
                    Err(m) => {
                        self.fail("42602", &m);
                        Sent::Error
                    }
                },
                _ => self.run_other(&st, true)?,
            };
            match r {
                Sent::Done => {}
                Sent::Error => break,
                Sent::Closed => return Ok(false),
            }
        }
        let st = self.tx_status();
        proto::ready(&mut self.out, st);
        self.flush()?;
        Ok(true)
    }

    /// Everything but a plain SELECT: transaction control, SET, cursors.
    fn run_other(&mut self, sql: &str, simple: bool) -> io::Result<Sent> {
        match classify(sql) {
            Cmd::Begin => {
                if self.tx == Tx::Idle {
                    self.tx = Tx::Open;
                }
                proto::command_complete(&mut self.out, "BEGIN");
            }
            Cmd::Commit => {
                let tag = if self.tx == Tx::Failed {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                self.tx = Tx::Idle;
                self.cursors.clear();
                proto::command_complete(&mut self.out, tag);
            }
            Cmd::Rollback => {
                self.tx = Tx::Idle;
                self.cursors.clear();
                proto::command_complete(&mut self.out, "ROLLBACK");
            }
            Cmd::Set(tag) => proto::command_complete(&mut self.out, &tag),
            Cmd::Empty => proto::msg(&mut self.out, b'I', &[]),
            Cmd::Declare { name, query } => match workload::resolve(&query, &self.cfg.faults) {
                Ok(Some(wl)) => {
                    self.cursors.insert(name, Cursor { wl, pos: 0 });
                    proto::command_complete(&mut self.out, "DECLARE CURSOR");
                }
                Ok(None) => {
                    let rel = relation_of(&query);
                    self.fail("42P01", &format!("relation \"{rel}\" does not exist"));
                    return Ok(Sent::Error);
                }
                Err(m) => {
                    self.fail("42602", &m);
                    return Ok(Sent::Error);
                }
            },
            Cmd::Fetch { count, name } => {
                let Some(c) = self.cursors.get(&name) else {
                    self.fail("34000", &format!("cursor \"{name}\" does not exist"));
                    return Ok(Sent::Error);
                };
                let wl = c.wl.clone();
                let pos = c.pos;
                let left = wl.rows - pos.min(wl.rows);
                let n = count.map_or(left, |c| c.min(left));
                if simple {
                    proto::row_description(&mut self.out, &columns(&wl.faults));
                }
                let r = self.stream(&wl, pos, n)?;
                if let Sent::Done = r {
                    if let Some(c) = self.cursors.get_mut(&name) {
                        c.pos = pos + n;
                    }
                    proto::command_complete(&mut self.out, &format!("FETCH {n}"));
                }
                return Ok(r);
            }
            Cmd::Close { name } => {
                if name == "all" {
                    self.cursors.clear();
                } else if self.cursors.remove(&name).is_none() {
                    self.fail("34000", &format!("cursor \"{name}\" does not exist"));
                    return Ok(Sent::Error);
                }
                proto::command_complete(&mut self.out, "CLOSE CURSOR");
            }
            Cmd::Select => unreachable!("handled by the caller"),
            Cmd::Other(s) => {
                let word = s.split_whitespace().next().unwrap_or("").to_string();
                self.fail(
                    "42601",
                    &format!("fakepg does not understand this statement: {word} ..."),
                );
                return Ok(Sent::Error);
            }
        }
        Ok(Sent::Done)
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn cancel_error(&mut self) -> Sent {
        self.fail("57014", "canceling statement due to user request");
        Sent::Error
    }

    /// Send rows `from..from + n` of the workload's result (row indices count from the first
    /// row of the result), firing the faults whose row index falls in that range.
    fn stream(&mut self, wl: &Workload, from: u64, n: u64) -> io::Result<Sent> {
        let f = wl.faults.clone();
        let end = from + n;
        let is_last = end == wl.rows;
        if from == 0 {
            if let Some(ms) = f.stall_ms {
                self.flush()?;
                let until = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < until {
                    if self.cancelled() {
                        return Ok(self.cancel_error());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        let interrupt = f.first_interrupt();
        let block = workload::block(wl.size);
        let mut i = from;
        loop {
            // Events at row index i (an event at the very end fires only at the result's end).
            if i < end || is_last {
                if interrupt == Some(i) {
                    return self.interrupt(&f, i);
                }
                if f.notice_after == Some(i) {
                    proto::error_fields(
                        &mut self.out,
                        b'N',
                        "NOTICE",
                        "01000",
                        &format!("fakepg: notice after {i} rows{}", pad(&f)),
                    );
                    proto::parameter_status(&mut self.out, "application_name", "fakepg-notice");
                }
            }
            if i >= end {
                break;
            }
            let mut next = end;
            for e in [interrupt, f.notice_after].into_iter().flatten() {
                if e > i && e < next {
                    next = e;
                }
            }
            let cancelled = if f.per_row() {
                self.send_rows_slow(wl, &block, i, next)?
            } else {
                self.send_rows_fast(wl, &block, i, next)?
            };
            if cancelled {
                return Ok(self.cancel_error());
            }
            i = next;
        }
        Ok(Sent::Done)
    }

    /// Rows `a..b` replayed from the block. Returns true when cancelled.
    fn send_rows_fast(
        &mut self,
        wl: &Workload,
        block: &workload::Block,
        a: u64,
        b: u64,
    ) -> io::Result<bool> {
        let nb = block.rows() as u64;
        let mut i = a;
        while i < b {
            let bi = ((wl.offset + i) % nb) as usize;
            let run = (b - i).min(nb - bi as u64) as usize;
            if self.send_bytes(block.range(bi, bi + run), wl.faults.slow_us)? {
                return Ok(true);
            }
            i += run as u64;
        }
        Ok(false)
    }

    /// Rows `a..b` encoded one by one (NULL rows, NUL bytes, two columns).
    fn send_rows_slow(
        &mut self,
        wl: &Workload,
        block: &workload::Block,
        a: u64,
        b: u64,
    ) -> io::Result<bool> {
        let nb = block.rows() as u64;
        let mut buf = Vec::with_capacity(64 * 1024);
        for i in a..b {
            let doc = block.doc(((wl.offset + i) % nb) as usize);
            let null = wl.faults.nulls_every.is_some_and(|k| (i + 1) % k == 0);
            let nul_byte = wl.faults.nul_byte_every.is_some_and(|k| (i + 1) % k == 0);
            let with_nul;
            let v = if null {
                None
            } else if nul_byte {
                // A NUL byte in the middle of the document.
                let mut d = doc.to_vec();
                let mid = d.len() / 2;
                d[mid] = 0;
                with_nul = d;
                Some(&with_nul[..])
            } else {
                Some(doc)
            };
            if wl.faults.two_cols {
                proto::data_row(&mut buf, &[v, Some(b"x")]);
            } else {
                proto::data_row(&mut buf, &[v]);
            }
            if buf.len() >= self.cfg.write_size.min(256 * 1024) {
                if self.send_bytes(&buf, wl.faults.slow_us)? {
                    return Ok(true);
                }
                buf.clear();
            }
        }
        self.send_bytes(&buf, wl.faults.slow_us)
    }

    /// Queue or write `data`: small amounts are coalesced with the surrounding messages, large
    /// ones written straight from the block in `write_size` pieces. Returns true when cancelled.
    fn send_bytes(&mut self, data: &[u8], slow_us: Option<u64>) -> io::Result<bool> {
        if slow_us.is_none() && self.out.len() + data.len() <= self.cfg.write_size {
            self.out.extend_from_slice(data);
            return Ok(false);
        }
        if self.cancelled() {
            return Ok(true);
        }
        self.flush()?;
        let piece = if slow_us.is_some() {
            SLOW_PIECE
        } else {
            self.cfg.write_size
        };
        for p in data.chunks(piece) {
            if self.cancelled() {
                return Ok(true);
            }
            self.w.write_all(p)?;
            if let Some(us) = slow_us {
                std::thread::sleep(Duration::from_micros(us));
            }
        }
        Ok(false)
    }

    fn interrupt(&mut self, f: &Faults, i: u64) -> io::Result<Sent> {
        if f.cut_after == Some(i) {
            self.flush()?;
            self.w.shutdown();
            return Ok(Sent::Closed);
        }
        if f.error_after == Some(i) {
            let message = format!("fakepg: injected error after {i} rows{}", pad(f));
            self.fail("22012", &message);
            return Ok(Sent::Error);
        }
        if f.malformed_after == Some(i) {
            // A DataRow whose length field (2) is below the minimum of 4.
            self.out.extend_from_slice(&[b'D', 0, 0, 0, 2, 0, 1]);
        } else if f.badrow_after == Some(i) {
            let doc: &[u8] = b"{}";
            proto::data_row(&mut self.out, &[Some(doc), Some(doc)]);
        } else {
            proto::msg(&mut self.out, b'~', &[]);
        }
        self.flush()?;
        // The stream is out of sync now: wait for the client to hang up.
        let mut sink = [0u8; 4096];
        while let Ok(n) = self.r.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        Ok(Sent::Closed)
    }
}

/// The padding `bigmsg<SIZE>` adds to an injected error's or notice's message.
fn pad(f: &Faults) -> String {
    f.msg_pad
        .map_or_else(String::new, |n| format!(": {}", "x".repeat(n)))
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn cstr(&mut self) -> String {
        let rest = &self.b[self.i.min(self.b.len())..];
        let end = rest.iter().position(|c| *c == 0).unwrap_or(rest.len());
        self.i += end + 1;
        String::from_utf8_lossy(&rest[..end]).into_owned()
    }
    fn byte(&mut self) -> u8 {
        let v = self.b.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        v
    }
    fn i32(&mut self) -> i32 {
        let mut v = [0u8; 4];
        for (k, x) in v.iter_mut().enumerate() {
            *x = self.b.get(self.i + k).copied().unwrap_or(0);
        }
        self.i += 4;
        i32::from_be_bytes(v)
    }
}
