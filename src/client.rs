//! The client: connection settings plus a pool of idle connections. Thread-safe; each stream
//! runs on a connection of its own, and a connection whose stream ended cleanly goes back to
//! the pool for the next stream.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::connection::{Connection, IDLE_TIMEOUT};
use crate::conninfo::ConnConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::query::Query;
use crate::runtime;
use crate::stream::reader::Reader;
use crate::stream::shared::Shared;
use crate::stream::Stream;

/// Most idle connections kept per client.
pub const MAX_IDLE: usize = 16;

/// Idle connections of one client.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
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
        if conn.owner_pid != std::process::id() || runtime::is_shut_down() {
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
    fn clear(&self) {
        let pid = std::process::id();
        let conns: Vec<Connection> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            if c.owner_pid != pid || (runtime::is_shut_down() && c.is_attached()) {
                // After fork, or once the runtime is gone (for a socket registered with it):
                // never touch the reactor.
                c.abandon_after_fork();
            } else {
                c.close();
            }
        }
    }
}

/// A thread-safe client. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Client {
    config: Arc<ConnConfig>,
    /// New connections are opened on the calling thread (see [`Connection::connect_inline`]).
    connects_on_caller: bool,
    pool: Arc<Pool>,
    _closer: Arc<PoolCloser>,
}

/// Closes the idle connections when the last clone of a client goes away.
struct PoolCloser(Arc<Pool>);

impl Drop for PoolCloser {
    fn drop(&mut self) {
        self.0.clear();
    }
}

impl Client {
    /// Parse `conninfo`, connect once to check the settings, and keep that connection.
    pub fn connect(conninfo: &str) -> Result<Client> {
        let config = ConnConfig::parse(conninfo).map_err(|e| Error::invalid(e.message))?;
        Self::with_config(config)
    }

    pub fn with_config(config: ConnConfig) -> Result<Client> {
        let config = Arc::new(config);
        let pool = Arc::new(Pool::default());
        let connects_on_caller = Connection::can_connect_inline(&config);
        let conn = if connects_on_caller {
            if runtime::is_shut_down() {
                return Err(Error::shutdown());
            }
            let conn = Connection::connect_inline(&config)?;
            // Start the runtime now rather than in the first query (its threads take ~0.3 ms
            // to start; the first `LIMIT 10` on the fake server went from 0.5 to 0.2 ms).
            runtime::handle()?;
            conn
        } else {
            runtime::block_on({
                let config = config.clone();
                async move { Connection::connect(&config).await }
            })?
        };
        pool.put(conn);
        Ok(Client {
            config,
            connects_on_caller,
            _closer: Arc::new(PoolCloser(pool.clone())),
            pool,
        })
    }

    pub fn config(&self) -> &ConnConfig {
        &self.config
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Run `query`: take (or open) a connection, send the query, and return the stream once
    /// the server has described the result, or after the query's
    /// [`describe_wait`](Query::describe_wait). Errors known at that point (a missing
    /// relation, a wrong result shape, a connection failure) are returned here; later ones
    /// by the stream.
    pub fn execute(&self, query: &Query) -> Result<Stream> {
        if query.partitions() > 1 {
            return Err(Error::invalid(format!(
                "the query is parallel ({} partitions): run it with Client::execute_parallel",
                query.partitions()
            )));
        }
        let entity = query.source().as_str();
        crate::metrics::query_started(entity);
        let t0 = Instant::now();
        match self.start(query) {
            Ok(shared) => {
                crate::stream::registry::register(&shared);
                Ok(Stream::new(shared, query.filters().to_vec()))
            }
            Err(e) => {
                crate::metrics::query_finished(
                    entity,
                    "error",
                    Some(e.kind().category()),
                    t0.elapsed(),
                    0,
                    0,
                );
                Err(e)
            }
        }
    }

    /// Start `query` on a connection and return the stream's shared state once the result
    /// is described.
    fn start(&self, query: &Query) -> Result<Arc<Shared>> {
        // Encoded before a connection is taken: a statement that cannot be sent costs none.
        let msg = query.statement().encode()?;
        let entity = query.source().as_str().to_string();
        let options = *query.options();
        let json_filters = query.json_filters().to_vec();
        // The usual case, an idle pooled connection on a plain socket: the query starts on
        // this thread (see `Reader::start_on_caller`); a small result is read here whole.
        // With target_session_attrs, a pooled session is checked again first (its host may
        // have changed role since); one that no longer qualifies is closed.
        let mut pooled = self.pool.take().and_then(|c| c.requalify(&self.config));
        if pooled.as_ref().is_some_and(Connection::is_plain) {
            runtime::handle()?;
            let conn = pooled.take().expect("checked above");
            let shared = new_shared(&conn, &entity, options, &json_filters);
            match Reader::new(conn, shared.clone(), self.pool.clone()).start_on_caller(&msg) {
                Ok(()) => return Ok(shared),
                // The request could not be sent: retried once below, on a new connection.
                Err(e) if may_retry(&e) => {}
                Err(e) => {
                    query_phase_error(&e);
                    return Err(e);
                }
            }
        }
        // A new connection on a plain socket: opened and started here too.
        if pooled.is_none() && self.connects_on_caller {
            runtime::handle()?;
            let conn = Connection::connect_inline(&self.config)?;
            let shared = new_shared(&conn, &entity, options, &json_filters);
            return Reader::new(conn, shared.clone(), self.pool.clone())
                .start_on_caller(&msg)
                .map(|()| shared)
                .inspect_err(query_phase_error);
        }
        let config = self.config.clone();
        let pool = self.pool.clone();
        runtime::block_on(async move {
            if let Some(conn) = pooled {
                let sent = start(conn, &pool, &entity, options, &json_filters, &msg).await;
                match sent {
                    Err(e) if may_retry(&e) => {}
                    other => return other.inspect_err(query_phase_error),
                }
            }
            let conn = Connection::connect(&config).await?;
            start(conn, &pool, &entity, options, &json_filters, &msg)
                .await
                .inspect_err(query_phase_error)
        })
    }
}

/// Hooks of the parallel streams (`crate::parallel`), which run their parts on connections of
/// this client prepared with a shared snapshot.
impl Client {
    /// A connection for a part of a parallel stream: an idle pooled one (requalified against
    /// the host rules) or a new one, and whether it came from the pool.
    pub(crate) async fn part_connection(&self) -> Result<(Connection, bool)> {
        if let Some(c) = self.pool.take().and_then(|c| c.requalify(&self.config)) {
            return Ok((c, true));
        }
        Ok((Connection::connect(&self.config).await?, false))
    }

    /// A new connection (after a pooled one failed before its first request went out).
    pub(crate) async fn new_connection(&self) -> Result<Connection> {
        Connection::connect(&self.config).await
    }

    /// Start one part of a parallel stream on `conn`, already inside its transaction, with
    /// the encoded statement `msg`; returns the part's stream once the result is described
    /// (or after the describe wait). The part's connection goes back to the pool when its
    /// statement ended the transaction (see `query::partition::encode_with_commit`).
    pub(crate) async fn start_part(
        &self,
        conn: Connection,
        entity: &str,
        options: crate::stream::options::StreamOptions,
        json_filters: &[Arc<crate::query::JsonFilter>],
        filters: Vec<crate::query::RowFilter>,
        msg: &bytes::Bytes,
    ) -> Result<Stream> {
        let shared = Arc::new(
            Arc::into_inner(new_shared(&conn, entity, options, json_filters))
                .expect("a new stream's state has one owner")
                .without_query_metrics(),
        );
        let shared = start_shared(conn, &self.pool, shared, msg)
            .await
            .inspect_err(query_phase_error)?;
        crate::stream::registry::register(&shared);
        Ok(Stream::new(shared, filters))
    }
}

/// Whether a query that failed with `e` on a pooled connection is retried, once, on a new
/// connection: only when its request could not be sent at all (not one byte reached the
/// socket, see [`Error::request_unsent`]), so the server cannot have started it. A pooled
/// connection the server closed or wrote to while idle is dropped before use (see
/// [`Pool::take`]); one that dies after the request went out is never retried, since the
/// server may have run the query (docs/reliability.md).
fn may_retry(e: &Error) -> bool {
    e.is_request_unsent()
}

/// An error of the query phase (after a connection was obtained): `fraiseql_errors_total`.
/// Connection failures are counted where the connection fails.
fn query_phase_error(e: &Error) {
    crate::metrics::error(e.kind().category(), "query");
}

/// Hand `conn` to a new reader task for the encoded statement `msg` and wait until the server
/// described the result.
async fn start(
    conn: Connection,
    pool: &Arc<Pool>,
    entity: &str,
    options: crate::stream::options::StreamOptions,
    json_filters: &[Arc<crate::query::JsonFilter>],
    msg: &bytes::Bytes,
) -> Result<Arc<Shared>> {
    let shared = new_shared(&conn, entity, options, json_filters);
    start_shared(conn, pool, shared, msg).await
}

/// [`start`] with the stream's shared state given.
async fn start_shared(
    conn: Connection,
    pool: &Arc<Pool>,
    shared: Arc<Shared>,
    msg: &bytes::Bytes,
) -> Result<Arc<Shared>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(Reader::new(conn, shared.clone(), pool.clone()).run(msg.clone(), tx));
    match rx.await {
        Ok(Ok(())) => Ok(shared),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::new(
            ErrorKind::Panic,
            "the stream's reader task ended before the query started",
        )),
    }
}

fn new_shared(
    conn: &Connection,
    entity: &str,
    options: crate::stream::options::StreamOptions,
    json_filters: &[Arc<crate::query::JsonFilter>],
) -> Arc<Shared> {
    Arc::new(
        Shared::new(entity.to_string(), options, conn.cancel_token().clone()).with_json_filters(
            json_filters
                .iter()
                .map(|f| f.clone() as Arc<dyn crate::stream::RowPredicate>)
                .collect(),
        ),
    )
}
