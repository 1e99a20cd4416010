//! The idle connections of one client: taken by the next stream, given back by a stream that
//! ended cleanly (see `stream::reader`). Whether the library is shut down is asked of the
//! check the pool was made with (the client passes the runtime's), so that this module needs
//! nothing from the runtime.

use std::sync::Mutex;

use super::{Connection, IDLE_TIMEOUT};

/// Most idle connections kept per client.
pub const MAX_IDLE: usize = 16;

/// Idle connections of one client.
pub struct Pool {
    idle: Mutex<Vec<Connection>>,
    /// Whether the library was shut down: a connection given back then is not kept.
    shut_down: fn() -> bool,
}

impl Default for Pool {
    /// A pool that is never shut down (a client passes its runtime's check: [`Pool::new`]).
    fn default() -> Pool {
        Pool::new(|| false)
    }
}

impl Pool {
    pub(crate) fn new(shut_down: fn() -> bool) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            shut_down,
        }
    }

    /// An idle connection usable by this process, if any. Dropped here: connections
    /// inherited across fork, connections idle for too long, and connections the server
    /// wrote to or closed while they sat idle (see [`Connection::is_clean_idle`]: a
    /// terminated or timed-out backend's FATAL error, a message out of turn), whose bytes
    /// would otherwise be read as the next query's answer.
    pub(crate) fn take(&self) -> Option<Connection> {
        let pid = std::process::id();
        loop {
            let mut c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if c.owner_pid != pid {
                c.abandon_after_fork();
                continue;
            }
            if c.created.elapsed() > IDLE_TIMEOUT * 12 {
                c.close();
                continue;
            }
            if !c.is_clean_idle() {
                crate::log::debug(format!(
                    "dropping a pooled connection (backend {}): the server sent something or \
                     closed it while it was idle",
                    c.backend_pid()
                ));
                c.close();
                continue;
            }
            return Some(c);
        }
    }

    pub(crate) fn put(&self, mut conn: Connection) {
        if conn.owner_pid != std::process::id() || (self.shut_down)() {
            return;
        }
        // Idle plain sockets leave the runtime's epoll set (see `Transport::detach`); one
        // that cannot is not kept.
        if conn.transport.detach().is_err() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        } else {
            conn.close();
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drop the pool's connections; after fork they are abandoned instead of closed.
    pub(crate) fn clear(&self) {
        let pid = std::process::id();
        let conns: Vec<Connection> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            if c.owner_pid != pid || ((self.shut_down)() && c.is_attached()) {
                // After fork, or once the runtime is gone (for a socket registered with it):
                // never touch the reactor.
                c.abandon_after_fork();
            } else {
                c.close();
            }
        }
    }
}
