//! CancelRequest: asks the server, on a fresh connection, to cancel a backend's running query.
//!
//! The request goes in plain text even when the connection it cancels uses TLS, as libpq's
//! `PQcancel` does: PostgreSQL handles a CancelRequest before it consults `pg_hba.conf`, so a
//! `hostssl`-only role can still be cancelled. Only the backend PID and the cancel key are on
//! the wire (see docs/tls.md).

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Where a cancel request must go: the exact address the connection used.
#[derive(Clone, Debug)]
pub enum CancelTarget {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// Everything needed to cancel the query running on one connection.
#[derive(Clone, Debug)]
pub struct CancelToken {
    pub target: CancelTarget,
    pub process_id: i32,
    pub secret_key: i32,
}

const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

impl CancelToken {
    fn message(&self) -> BytesMut {
        let mut msg = BytesMut::with_capacity(16);
        postgres_protocol::message::frontend::cancel_request(
            self.process_id,
            self.secret_key,
            &mut msg,
        );
        msg
    }

    /// Send the CancelRequest and wait until the server closes that connection (which it does
    /// after handling the request), at most a few seconds. Errors are returned for logging only:
    /// a cancel is best effort by protocol design.
    pub async fn send(&self) -> std::io::Result<()> {
        let msg = self.message();
        let work = async {
            let mut sink = [0u8; 64];
            match &self.target {
                CancelTarget::Tcp(addr) => {
                    let mut s = TcpStream::connect(addr).await?;
                    s.write_all(&msg).await?;
                    while s.read(&mut sink).await? > 0 {}
                }
                CancelTarget::Unix(path) => {
                    let mut s = UnixStream::connect(path).await?;
                    s.write_all(&msg).await?;
                    while s.read(&mut sink).await? > 0 {}
                }
            }
            Ok(())
        };
        tokio::time::timeout(CANCEL_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "cancel request timed out",
                ))
            })
    }

    /// Send the CancelRequest from the calling thread, without the runtime: connect, write
    /// the 16 bytes, close, all within `timeout` (the connect is bounded by it, then the
    /// write by what is left). Returns once the request is in the kernel's hands, which
    /// delivers it even if the process exits right after; unlike [`CancelToken::send`] it
    /// does not wait for the server to close the connection (the server forks a process to
    /// read the request: milliseconds, where the request itself takes about 0.1 ms over a
    /// local socket). Used when a running stream is freed (see
    /// [`crate::stream::FREE_CANCEL_TIMEOUT`]).
    pub fn send_blocking(&self, timeout: Duration) -> std::io::Result<()> {
        use socket2::{Domain, SockAddr, Socket, Type};
        let deadline = std::time::Instant::now() + timeout;
        let (domain, addr) = match &self.target {
            CancelTarget::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
            CancelTarget::Unix(path) => (Domain::UNIX, SockAddr::unix(path)?),
        };
        // Close-on-exec, as socket2 creates every socket.
        let sock = Socket::new(domain, Type::STREAM, None)?;
        sock.connect_timeout(&addr, timeout)?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        sock.set_write_timeout(Some(left.max(Duration::from_millis(1))))?;
        let msg = self.message();
        let mut rest = &msg[..];
        while !rest.is_empty() {
            // MSG_NOSIGNAL: a closed peer is an error here, never a SIGPIPE in the host.
            match sock.send_with_flags(rest, libc::MSG_NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn send_blocking_hands_the_request_over_before_returning() {
        let dir = std::env::temp_dir().join(format!("fw-cancel-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.1");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let token = CancelToken {
            target: CancelTarget::Unix(path.clone()),
            process_id: 4242,
            secret_key: -7,
        };
        // Nobody accepts yet: the connection waits in the backlog, the request in the kernel.
        token.send_blocking(Duration::from_millis(500)).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&16u32.to_be_bytes());
        want.extend_from_slice(&80877102u32.to_be_bytes());
        want.extend_from_slice(&4242i32.to_be_bytes());
        want.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(got, want);
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
        // Nothing listens any more: an error, at once.
        let t = std::time::Instant::now();
        assert!(token.send_blocking(Duration::from_millis(500)).is_err());
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
