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
    /// Send the CancelRequest and wait until the server closes that connection (which it does
    /// after handling the request), at most a few seconds. Errors are returned for logging only:
    /// a cancel is best effort by protocol design.
    pub async fn send(&self) -> std::io::Result<()> {
        let mut msg = BytesMut::with_capacity(16);
        postgres_protocol::message::frontend::cancel_request(
            self.process_id,
            self.secret_key,
            &mut msg,
        );
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
}
