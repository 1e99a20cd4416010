//! `fw_metrics_serve`: a tiny HTTP/1.1 endpoint serving `GET /metrics` on the library's
//! internal runtime, for services without an HTTP server of their own (cargo feature
//! `metrics-http`, on by default).
//!
//! One request per connection (`Connection: close`); the request head is limited to 8 KiB and
//! each connection to 10 seconds. `GET` and `HEAD /metrics` (query strings ignored) answer
//! `200` with the Prometheus text format; other paths `404`, other methods `405`.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::runtime;

const MAX_HEAD: usize = 8 * 1024;
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Server {
    task: JoinHandle<()>,
    addr: SocketAddr,
    pid: u32,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fn server() -> MutexGuard<'static, Option<Server>> {
    let mut g = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    // A server inherited across fork() belongs to the parent's (abandoned) runtime: forget it
    // without touching it.
    if g.as_ref().is_some_and(|s| s.pid != std::process::id()) {
        std::mem::forget(g.take());
    }
    g
}

/// Start serving `/metrics` on `addr` (`host:port`; port 0 picks a free port). Returns the
/// bound address. `State` error if already serving.
pub fn serve(addr: &str) -> Result<SocketAddr> {
    let mut g = server();
    if let Some(s) = g.as_ref() {
        return Err(Error::state(format!(
            "the metrics endpoint is already serving on {}",
            s.addr
        )));
    }
    let target = addr.to_string();
    let listener = runtime::block_on(async move {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target.as_str())
            .await
            .map_err(|e| Error::invalid(format!("invalid metrics address {target:?}: {e}")))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpListener::bind(a).await {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(Error::io(&format!("could not listen on {a}"), &e)),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::invalid(format!("metrics address {target:?} has no address"))
        }))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("could not read the listening address", &e))?;
    let task = runtime::handle()?.spawn(accept_loop(listener));
    *g = Some(Server {
        task,
        addr: local,
        pid: std::process::id(),
    });
    Ok(local)
}

/// Stop serving; the port is closed when this returns. Returns whether a server was running.
pub fn stop() -> Result<bool> {
    let Some(s) = server().take() else {
        return Ok(false);
    };
    s.task.abort();
    let task = s.task;
    match runtime::block_on(async move {
        let _ = task.await;
        Ok(())
    }) {
        Ok(()) => Ok(true),
        // The runtime is gone (fw_shutdown): its tasks, and the listener, are gone with it.
        Err(e) if e.kind() == ErrorKind::Shutdown => Ok(true),
        Err(e) => Err(e),
    }
}

/// The address being served, if any.
pub fn local_addr() -> Option<SocketAddr> {
    server().as_ref().map(|s| s.addr)
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONN_TIMEOUT, handle(sock)).await;
                });
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn handle(mut sock: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return respond(&mut sock, "431 Request Header Fields Too Large", "", "").await;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut sock, "200 OK", &super::render(), "").await,
        ("HEAD", "/metrics") => {
            let len = super::render().len();
            let extra = format!("Content-Length: {len}\r\n");
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\n{extra}Connection: close\r\n\r\n"
            );
            sock.write_all(head.as_bytes()).await?;
            sock.shutdown().await
        }
        (_, "/metrics") => {
            respond(
                &mut sock,
                "405 Method Not Allowed",
                "only GET and HEAD\n",
                "Allow: GET, HEAD\r\n",
            )
            .await
        }
        _ => respond(&mut sock, "404 Not Found", "try /metrics\n", "").await,
    }
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    body: &str,
    extra: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}
