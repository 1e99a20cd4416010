//! The client: connection settings plus a pool of idle connections. Thread-safe; each stream
//! runs on a connection of its own, and a connection whose stream ended cleanly goes back to
//! the pool for the next stream.

use std::sync::Arc;
use std::time::Instant;

pub use crate::connection::pool::{Pool, MAX_IDLE};
use crate::connection::Connection;
use crate::conninfo::ConnConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::query::Query;
use crate::runtime;
use crate::stream::reader::Reader;
use crate::stream::shared::Shared;
use crate::stream::Stream;

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
        let pool = Arc::new(Pool::new(runtime::is_shut_down));
        let connects_on_caller = Connection::can_connect_inline(&config);
        let conn = if connects_on_caller {
            if runtime::is_shut_down() {
                return Err(Error::shutdown());
            }
            let conn = Connection::connect_inline(&config, runtime::is_shut_down)?;
            // Start the runtime now rather than in the first query (its threads take ~0.3 ms
            // to start; the first `LIMIT 10` on the fake server went from 0.5 to 0.2 ms).
            runtime::handle()?;
            conn
        } else {
            runtime::block_on({
                let config = config.clone();
                async move { Connection::connect(&config).await }
            })?
            .with_shutdown_check(runtime::is_shut_down)
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
        let mut pooled = self.pool.take().and_then(|c| self.requalify(c));
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
            let conn = Connection::connect_inline(&self.config, runtime::is_shut_down)?;
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
            let conn = Connection::connect(&config)
                .await?
                .with_shutdown_check(runtime::is_shut_down);
            start(conn, &pool, &entity, options, &json_filters, &msg)
                .await
                .inspect_err(query_phase_error)
        })
    }

    /// A pooled connection, checked again before a new stream uses it when the client asks
    /// for particular session attributes (see [`Connection::recheck`]): on this thread for a
    /// plain socket, on the runtime for TLS. `None` (the connection closed) when it no longer
    /// qualifies or does not answer; the caller then opens a new connection through host
    /// selection.
    fn requalify(&self, mut conn: Connection) -> Option<Connection> {
        if !conn.needs_recheck(&self.config) {
            return Some(conn);
        }
        let outcome = if conn.is_plain() {
            conn.recheck_blocking(&self.config)
                .map(|ok| ok.then_some(conn))
        } else {
            let config = self.config.clone();
            runtime::block_on(async move {
                let ok = conn.recheck(&config).await?;
                Ok(ok.then_some(conn))
            })
        };
        match outcome {
            Ok(Some(c)) => Some(c),
            Ok(None) => None,
            Err(e) => {
                crate::log::debug(format!(
                    "a pooled connection failed its session check and is dropped: {e}"
                ));
                None
            }
        }
    }
}

/// Hooks of the parallel streams (`crate::parallel`), which run their parts on connections of
/// this client prepared with a shared snapshot.
impl Client {
    /// A connection for a part of a parallel stream: an idle pooled one (requalified against
    /// the host rules) or a new one, and whether it came from the pool.
    pub(crate) async fn part_connection(&self) -> Result<(Connection, bool)> {
        if let Some(c) = self.pool.take().and_then(|c| self.requalify(c)) {
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
        if conn.is_plain() {
            // The merge reads parked parts on its own thread, as a serial consumer does.
            crate::stream::driver::let_task_park(&shared);
        }
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
