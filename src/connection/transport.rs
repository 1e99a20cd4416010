//! The byte transport under a connection: TCP or a Unix socket (TLS wraps TCP).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::event::{PollFd, PollFlags, Timespec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// How a connection reaches the server (also the `transport` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    Unix,
    Tls,
}

impl TransportKind {
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Unix => "unix",
            TransportKind::Tls => "tls",
        }
    }
}

/// A connected socket. Reads are large (the reader asks for hundreds of KiB at a time), so the
/// `match` per call costs nothing measurable.
pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A plain socket out of the runtime's epoll set: idle in the pool, or used by blocking
    /// calls on the caller's thread (see [`Transport::detach`]). Attached again by its first
    /// asynchronous read or write.
    Detached(Detached),
    /// Only while a socket changes between the two forms, or after that failed (the socket
    /// is then closed and every call fails).
    Gone(TransportKind),
}

/// A plain socket not registered with the runtime (still in non-blocking mode).
pub enum Detached {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Transport {
    pub fn kind(&self) -> TransportKind {
        match self {
            Transport::Tcp(_) | Transport::Detached(Detached::Tcp(_)) => TransportKind::Tcp,
            Transport::Unix(_) | Transport::Detached(Detached::Unix(_)) => TransportKind::Unix,
            Transport::Tls(_) => TransportKind::Tls,
            Transport::Gone(k) => *k,
        }
    }

    /// Take a plain socket out of the runtime's epoll set (TLS stays as it is). An idle
    /// socket in the set wakes a runtime thread for nothing on every readiness change, and a
    /// query run on the caller's thread (see [`crate::stream::inline`]) causes two such
    /// changes: detached, it costs no runtime thread anything.
    pub fn detach(&mut self) -> io::Result<()> {
        if !matches!(self, Transport::Tcp(_) | Transport::Unix(_)) {
            return Ok(());
        }
        *self = match std::mem::replace(self, Transport::Gone(self.kind())) {
            Transport::Tcp(s) => Transport::Detached(Detached::Tcp(s.into_std()?)),
            Transport::Unix(s) => Transport::Detached(Detached::Unix(s.into_std()?)),
            _ => unreachable!("checked above"),
        };
        Ok(())
    }

    /// Register a detached socket with the runtime again. Must run within the runtime
    /// (it does: only asynchronous reads and writes call it).
    fn attach(&mut self) -> io::Result<()> {
        match self {
            Transport::Detached(_) => {}
            Transport::Gone(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the socket was lost while leaving or joining the runtime",
                ))
            }
            _ => return Ok(()),
        }
        *self = match std::mem::replace(self, Transport::Gone(self.kind())) {
            Transport::Detached(Detached::Tcp(s)) => Transport::Tcp(TcpStream::from_std(s)?),
            Transport::Detached(Detached::Unix(s)) => Transport::Unix(UnixStream::from_std(s)?),
            _ => unreachable!("checked above"),
        };
        Ok(())
    }

    /// The transport ready for an asynchronous call (attached if it was detached).
    fn attached(self: Pin<&mut Self>) -> io::Result<&mut Self> {
        let this = self.get_mut();
        this.attach()?;
        Ok(this)
    }

    /// The socket itself when the transport is plain TCP or a Unix socket (not TLS), for
    /// blocking I/O from a thread outside the runtime: see [`crate::stream::inline`].
    ///
    /// Reading or writing through it bypasses tokio's cached readiness, which stays correct:
    /// tokio only ever turns readiness off after its own read or write saw `WouldBlock`, and
    /// an edge from the epoll set turns it on again, so at worst a task later tries a read
    /// that finds nothing and waits as usual.
    pub fn plain_socket(&self) -> Option<socket2::SockRef<'_>> {
        match self {
            Transport::Tcp(s) => Some(socket2::SockRef::from(s)),
            Transport::Unix(s) => Some(socket2::SockRef::from(s)),
            Transport::Detached(Detached::Tcp(s)) => Some(socket2::SockRef::from(s)),
            Transport::Detached(Detached::Unix(s)) => Some(socket2::SockRef::from(s)),
            Transport::Tls(_) | Transport::Gone(_) => None,
        }
    }

    /// Whether an idle connection has anything to say: bytes to read, the end of the stream
    /// or an error on the socket, or (TLS) data or a close already inside the TLS layer.
    /// Between queries the server has nothing to send, so any of these means the session
    /// ended (a FATAL error before the close, as when the backend is terminated or times out)
    /// or is out of step; its next query must not read them as the answer. Never waits and
    /// never reads from the socket: one poll(2) with a zero timeout, which stays correct for
    /// a socket registered with the runtime (nothing is consumed).
    pub fn idle_readable(&mut self) -> bool {
        if let Transport::Tls(s) = self {
            // Records already read from the socket are processed (`process_new_packets` only
            // looks at what the TLS layer holds): plaintext left over, a close_notify or a
            // failed record.
            match s.get_mut().1.process_new_packets() {
                Ok(io) if io.plaintext_bytes_to_read() == 0 && !io.peer_has_closed() => {}
                _ => return true,
            }
        }
        let Some(fd) = self.raw_fd() else {
            return true;
        };
        socket_readable_now(fd)
    }

    /// The OS file descriptor of the socket (used to abandon inherited sockets after fork).
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(match self {
            Transport::Tcp(s) => s.as_raw_fd(),
            Transport::Unix(s) => s.as_raw_fd(),
            Transport::Tls(s) => s.get_ref().0.as_raw_fd(),
            Transport::Detached(Detached::Tcp(s)) => s.as_raw_fd(),
            Transport::Detached(Detached::Unix(s)) => s.as_raw_fd(),
            Transport::Gone(_) => return None,
        })
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = match self.attached() {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match this {
            Transport::Detached(_) | Transport::Gone(_) => unreachable!("attached above"),
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = match self.attached() {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match this {
            Transport::Detached(_) | Transport::Gone(_) => unreachable!("attached above"),
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            // Nothing buffered in a plain socket.
            Transport::Detached(_) | Transport::Gone(_) => Poll::Ready(Ok(())),
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Unix(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = match self.attached() {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match this {
            Transport::Detached(_) | Transport::Gone(_) => unreachable!("attached above"),
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// ppoll(2) on `pfds` for at most `timeout` (`None`: no limit; nanosecond resolution,
/// which poll(2) lacks: rustix's `poll` is a single `ppoll` system call on Linux, with no
/// allocation). `Ok(false)` when nothing became ready in time or a signal interrupted the
/// wait; the `revents` fields say which did otherwise. Errors and hang-ups count as ready:
/// the read or write that follows reports them.
fn ppoll_fds(pfds: &mut [PollFd<'_>], timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match rustix::event::poll(pfds, ts.as_ref()) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `fd` borrowed for one wait. The callers pass the stream's interrupt eventfd, which its
/// `Shared` owns and keeps open while its consumer waits on it, a transport's own socket
/// (`idle_readable`, which holds the transport for the duration of the poll), or a parallel
/// stream's epoll instance and the sockets of its parked parts ([`wait_any_readable`]: a
/// part's socket may be handed to a task, and closed when that part ends, during the wait).
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the descriptor is open for the whole wait (see above), and the `BorrowedFd`
    // never leaves `ppoll_fds`' caller, which only polls it (never reads, writes or closes
    // it); even a stale number could only make ppoll report POLLNVAL, a spurious wake-up.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Wait until `sock` is readable (or writable when `write`), at most `timeout`. Returns
/// whether it is. Used by the inline start of a query, on the caller's thread.
pub fn wait_socket(
    sock: &socket2::SockRef<'_>,
    write: bool,
    timeout: std::time::Duration,
) -> io::Result<bool> {
    let events = if write { PollFlags::OUT } else { PollFlags::IN };
    ppoll_fds(&mut [PollFd::new(&**sock, events)], Some(timeout))
}

/// What [`wait_readable_or`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The socket is readable (or failed, or hung up: the read that follows reports it).
    pub socket: bool,
    /// The other descriptor is readable.
    pub other: bool,
}

/// Wait until `sock` or `other` is readable, at most `timeout` (`None`: no limit). Used by a
/// consumer that reads its stream's socket on its own thread, `other` being the stream's
/// interrupt eventfd (see [`crate::stream::shared::Shared::interrupt`]). A signal that
/// interrupts the wait counts as nothing ready.
pub fn wait_readable_or(
    sock: &socket2::SockRef<'_>,
    other: std::os::fd::RawFd,
    timeout: Option<std::time::Duration>,
) -> io::Result<Readiness> {
    let mut pfds = [
        PollFd::new(&**sock, PollFlags::IN),
        PollFd::from_borrowed_fd(borrow(other), PollFlags::IN),
    ];
    let any = ppoll_fds(&mut pfds, timeout)?;
    Ok(Readiness {
        socket: any && !pfds[0].revents().is_empty(),
        other: any && !pfds[1].revents().is_empty(),
    })
}

/// Wait until one of `fds` is readable (or failed, or hung up), at most `timeout` (`None`: no
/// limit). Used by a parallel stream's merge, which waits on its parts' readiness (an epoll
/// instance) and on the sockets of the parts it reads itself. Whether one was (a signal:
/// not).
pub fn wait_any_readable(
    fds: &[std::os::fd::RawFd],
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&fd| PollFd::from_borrowed_fd(borrow(fd), PollFlags::IN))
        .collect();
    ppoll_fds(&mut pfds, timeout)
}

/// Whether `fd` has bytes to read, has reached the end of its stream or has failed, right
/// now (an error of poll(2) itself counts as readable: the socket is then not trusted).
fn socket_readable_now(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = [PollFd::from_borrowed_fd(
        borrow(fd),
        PollFlags::IN | PollFlags::RDHUP,
    )];
    ppoll_fds(&mut pfd, Some(std::time::Duration::ZERO)).unwrap_or(true)
}

/// Wait at most `d` for `fd` to become readable; whether it did (a signal or an error: not).
pub fn wait_fd_readable(fd: std::os::fd::RawFd, d: std::time::Duration) -> bool {
    ppoll_fds(
        &mut [PollFd::from_borrowed_fd(borrow(fd), PollFlags::IN)],
        Some(d),
    )
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn idle(s: UnixStream) -> Transport {
        s.set_nonblocking(true).unwrap();
        Transport::Detached(Detached::Unix(s))
    }

    #[test]
    fn a_quiet_idle_socket_is_not_readable() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        assert!(!idle(ours).idle_readable());
    }

    #[test]
    fn a_byte_the_end_or_a_failure_makes_an_idle_socket_readable() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut t = idle(ours);
        peer.write_all(b"N").unwrap();
        assert!(t.idle_readable());
        // Checking reads nothing: the byte is still there.
        assert!(t.idle_readable());

        let (ours, peer) = UnixStream::pair().unwrap();
        let mut t = idle(ours);
        drop(peer);
        assert!(t.idle_readable(), "the peer closed");

        let (ours, peer) = UnixStream::pair().unwrap();
        let mut t = idle(ours);
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(t.idle_readable(), "the peer ended its side");

        assert!(Transport::Gone(TransportKind::Unix).idle_readable());
    }
}
