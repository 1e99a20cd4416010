//! The query builder: `SELECT data FROM <source> [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET m]`.
//!
//! The builder validates its input and generates one SQL statement with its bound
//! parameters ([`Statement`]). That statement is sent with the extended protocol as an
//! unnamed prepared statement, which the server refuses to split into several commands.
//!
//! WHERE predicates come in three kinds, each a [`Fragment`] with its own `$1..$n`: trusted
//! SQL ([`Query::where_sql`]), SQL with bound values ([`Query::where_params`]) and typed
//! predicates on a JSON path ([`Query::where_path`], compiled by [`predicate`]).

pub mod ident;
pub mod json_filter;
pub mod lexer;
pub mod params;
pub mod partition;
pub mod path;
pub mod predicate;
pub mod statement;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::stream::options::{AdaptiveChunking, MemoryLimits, StreamOptions};
pub use ident::Source;
pub use json_filter::{JsonFilter, JsonOp};
pub use params::{Fragment, MAX_PARAMS};
pub use path::JsonPath;
pub use predicate::Op;
pub use statement::Statement;

/// Sort direction of an ORDER BY term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

/// How [`Query::order_by_path`] compares the values at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKind {
    /// As text (`data->>'name'`), in the collation given or the column's.
    Text,
    /// As numbers (`(data->>'n')::numeric`).
    Numeric,
}

/// A client-side row predicate run on the consumer's thread: `true` keeps the row.
pub use crate::stream::RowFilter;

#[derive(Clone, Debug, PartialEq, Eq)]
struct OrderBy {
    expr: Fragment,
    collation: Option<String>,
    dir: SortDir,
}

/// Longest accepted [`Query::read_coalesce`] wait.
pub const MAX_READ_COALESCE: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest accepted bounded [`Query::describe_wait`].
pub const MAX_DESCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A query description. Cheap to clone; executing it does not consume it.
#[derive(Clone)]
pub struct Query {
    source: Source,
    wheres: Vec<Fragment>,
    order: Vec<OrderBy>,
    limit: Option<u64>,
    offset: Option<u64>,
    filters: Vec<RowFilter>,
    json_filters: Vec<Arc<JsonFilter>>,
    options: StreamOptions,
    /// Parts read at once by a parallel stream (1 = serial; see [`Query::parallel`]).
    parallel: u32,
    /// The integer expression that splits a non-table source (see [`Query::partition_by`]).
    partition_by: Option<Fragment>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("sql", &self.sql())
            .field("filters", &self.filters.len())
            .field("json_filters", &self.json_filters)
            .field("options", &self.options)
            .finish()
    }
}

fn check_bigint(what: &str, n: u64) -> Result<u64> {
    if n > i64::MAX as u64 {
        return Err(Error::invalid(format!(
            "{what} {n} is larger than PostgreSQL's bigint maximum {}",
            i64::MAX
        )));
    }
    Ok(n)
}

impl Query {
    /// A query over `source` (`name` or `schema.name`).
    pub fn new(source: &str) -> Result<Query> {
        Ok(Query {
            source: Source::parse(source)?,
            wheres: Vec::new(),
            order: Vec::new(),
            limit: None,
            offset: None,
            filters: Vec::new(),
            json_filters: Vec::new(),
            options: StreamOptions::default(),
            parallel: 1,
            partition_by: None,
        })
    }

    /// Read the result as `partitions` disjoint parts over as many connections at once,
    /// merged into one stream (1, the default, is a serial stream; at most
    /// [`partition::MAX_PARTITIONS`]). Run with [`crate::Client::execute_parallel`]; see
    /// docs/parallel.md.
    pub fn parallel(&mut self, partitions: u32) -> Result<&mut Self> {
        if partitions == 0 || partitions > partition::MAX_PARTITIONS {
            return Err(Error::invalid(format!(
                "parallel: {partitions} partitions; give 1 (serial) to {}",
                partition::MAX_PARTITIONS
            )));
        }
        self.parallel = partitions;
        Ok(self)
    }

    /// Parts of a parallel stream (1 = serial).
    pub fn partitions(&self) -> u32 {
        self.parallel
    }

    /// The integer SQL expression over the source's columns that splits a parallel stream's
    /// result into parts (`abs(expr % k)`; NULL goes to the first part). Needed for any source
    /// other than a plain table, which is split by block ranges without it. Trusted SQL,
    /// without parameters.
    pub fn partition_by(&mut self, expr: &str) -> Result<&mut Self> {
        self.partition_by = Some(Fragment::trusted("partition expression", expr)?);
        Ok(self)
    }

    /// The partition expression as SQL (a newline closes a trailing `--` comment).
    pub(crate) fn partition_sql(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.partition_by {
            f.write(&mut out, 0);
        }
        out
    }

    /// The partition expression, if one was given.
    pub fn partition_expr(&self) -> Option<&str> {
        self.partition_by.as_ref().map(Fragment::text)
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Add a trusted SQL predicate; predicates are parenthesised and ANDed. It may not refer
    /// to parameters (`$1`): bind values with [`Query::where_params`].
    pub fn where_sql(&mut self, predicate: &str) -> Result<&mut Self> {
        let f = Fragment::trusted("WHERE predicate", predicate)?;
        self.push_where(f)
    }

    /// Add a predicate with bound values: `$1..$n` in `predicate` are `params[0..n]`, this
    /// fragment's own (renumbered when fragments are combined; a `$1` in a literal, quoted
    /// identifier, dollar quote or comment is text). Each value is sent in text format
    /// (`None` is SQL NULL) and never becomes SQL text. Every `$1..$n` must be used, no other
    /// `$k`, and the fragment must be a complete expression: see [`Fragment::with_params`].
    pub fn where_params(&mut self, predicate: &str, params: &[Option<&str>]) -> Result<&mut Self> {
        let values = params.iter().map(|p| p.map(str::to_string)).collect();
        let f = Fragment::with_params(predicate, values)?;
        self.push_where(f)
    }

    /// Add a typed predicate: the value at the RFC 6901 JSON pointer `pointer` compared by
    /// `op` with the JSON constant `value_json` (`None` for [`Op::Exists`] /
    /// [`Op::NotExists`]), evaluated by the server with the constant bound as a parameter.
    /// A constant of the wrong JSON type for `op` is an error naming both. See
    /// [`predicate`] and docs/filtering.md for the SQL of each operator.
    pub fn where_path(
        &mut self,
        pointer: &str,
        op: Op,
        value_json: Option<&str>,
    ) -> Result<&mut Self> {
        let f = predicate::compile(pointer, op, value_json)?;
        self.push_where(f)
    }

    fn push_where(&mut self, f: Fragment) -> Result<&mut Self> {
        let total = self.param_count() + f.params().len();
        if total > MAX_PARAMS {
            return Err(Error::invalid(format!(
                "the query would have {total} parameters; at most {MAX_PARAMS} can be bound"
            )));
        }
        self.wheres.push(f);
        Ok(self)
    }

    /// How many parameters the query binds.
    pub fn param_count(&self) -> usize {
        self.wheres.iter().map(|w| w.params().len()).sum()
    }

    /// Add an ORDER BY term: a trusted SQL expression (without parameters), an optional
    /// collation (quoted), a direction.
    pub fn order_by(
        &mut self,
        expr: &str,
        collation: Option<&str>,
        dir: SortDir,
    ) -> Result<&mut Self> {
        let expr = Fragment::trusted("ORDER BY expression", expr)?;
        let collation = collation.map(ident::quote_collation).transpose()?;
        self.order.push(OrderBy {
            expr,
            collation,
            dir,
        });
        Ok(self)
    }

    /// Add an ORDER BY term on the value at a JSON pointer: as text (`data->>'name'`, with
    /// an optional collation) or as a number (`(data->>'n')::numeric`; no collation). Rows
    /// without a value there sort as NULL (last ascending, first descending).
    pub fn order_by_path(
        &mut self,
        pointer: &str,
        kind: OrderKind,
        collation: Option<&str>,
        dir: SortDir,
    ) -> Result<&mut Self> {
        let path = JsonPath::parse(pointer)?;
        let expr = match kind {
            OrderKind::Text => path.text(),
            OrderKind::Numeric => {
                if let Some(c) = collation {
                    return Err(Error::invalid(format!(
                        "collation {c:?} given for a numeric ordering of {pointer:?}: a \
                         collation only applies to text ordering"
                    )));
                }
                format!("({})::numeric", path.text())
            }
        };
        let expr = Fragment::trusted("ORDER BY expression", &expr)?;
        let collation = collation.map(ident::quote_collation).transpose()?;
        self.order.push(OrderBy {
            expr,
            collation,
            dir,
        });
        Ok(self)
    }

    pub fn limit(&mut self, n: u64) -> Result<&mut Self> {
        self.limit = Some(check_bigint("LIMIT", n)?);
        Ok(self)
    }

    pub fn offset(&mut self, n: u64) -> Result<&mut Self> {
        self.offset = Some(check_bigint("OFFSET", n)?);
        Ok(self)
    }

    /// Add a client-side predicate. Several filters AND together.
    pub fn filter(&mut self, f: RowFilter) -> &mut Self {
        self.filters.push(f);
        self
    }

    pub fn filters(&self) -> &[RowFilter] {
        &self.filters
    }

    /// Add a built-in predicate on the value at the JSON Pointer `pointer` (see
    /// [`JsonFilter`]), evaluated in the library's reader before rows enter the channel, with
    /// no host callback. `value_json` is the constant as JSON text (ignored for
    /// [`JsonOp::Exists`]). Several predicates AND together, and with [`Query::filter`].
    pub fn filter_json(
        &mut self,
        pointer: &str,
        op: JsonOp,
        value_json: Option<&str>,
    ) -> Result<&mut Self> {
        self.json_filters
            .push(Arc::new(JsonFilter::new(pointer, op, value_json)?));
        Ok(self)
    }

    pub fn json_filters(&self) -> &[Arc<JsonFilter>] {
        &self.json_filters
    }

    /// Rows per chunk handed from the reader to the consumer (the starting size when adaptive
    /// chunking is on; it is clamped into the adaptive bounds).
    pub fn chunk_size(&mut self, rows: usize) -> Result<&mut Self> {
        if rows == 0 {
            return Err(Error::invalid("chunk size must be at least 1 row"));
        }
        self.options.chunk_size = rows;
        Ok(self)
    }

    /// Turn adaptive chunk sizing on (within `[min_rows, max_rows]`) or off.
    pub fn adaptive_chunking(
        &mut self,
        on: bool,
        min_rows: usize,
        max_rows: usize,
    ) -> Result<&mut Self> {
        self.options.adaptive = if on {
            Some(AdaptiveChunking::new(min_rows, max_rows)?)
        } else {
            None
        };
        Ok(self)
    }

    /// Bound the stream's memory: see [`MemoryLimits`].
    pub fn max_memory(
        &mut self,
        bytes: usize,
        warn_ratio: f64,
        fail_ratio: f64,
    ) -> Result<&mut Self> {
        self.options.memory = MemoryLimits::new(bytes, warn_ratio, fail_ratio)?;
        Ok(self)
    }

    /// The longest wait before a socket read on a steady server-bound stream, so that one
    /// read takes several of the server's packets (default 1 ms; see
    /// [`crate::stream::coalesce`]). It is also the most a row can be delayed by it;
    /// `Duration::ZERO` reads every packet as it arrives. At most 100 ms.
    pub fn read_coalesce(&mut self, max: std::time::Duration) -> Result<&mut Self> {
        if max > MAX_READ_COALESCE {
            return Err(Error::invalid(
                "read coalescing wait must be at most 100 ms",
            ));
        }
        self.options.read_coalesce = max;
        Ok(self)
    }

    /// How far the reader reads ahead of a slower consumer: the most bytes of chunks queued
    /// before it stops reading the socket (default 512 KiB, at least 1). The memory budget
    /// ([`Query::max_memory`]) still bounds everything; a read-ahead at or above it lets the
    /// queue fill the whole budget.
    pub fn read_ahead(&mut self, bytes: usize) -> Result<&mut Self> {
        if bytes == 0 {
            return Err(Error::invalid("read-ahead must be at least 1 byte"));
        }
        self.options.read_ahead = bytes;
        Ok(self)
    }

    /// How long [`crate::Client::execute`] waits for the server's first answer before it
    /// returns the stream anyway (default 20 ms; `None`: as long as it takes; at most one
    /// hour). The server describes the result together with its first rows, so a query that
    /// takes longer to produce them is returned undescribed: a wrong result shape is then
    /// reported by the stream (`Schema` from `next`) rather than by `execute`. `Some(ZERO)`
    /// does not wait: `execute` looks once at what has already arrived (a fast server's
    /// refusal may be there) and returns (the stream's fd tells when rows arrive).
    pub fn describe_wait(&mut self, wait: Option<std::time::Duration>) -> Result<&mut Self> {
        if wait.is_some_and(|w| w > MAX_DESCRIBE_WAIT) {
            return Err(Error::invalid("describe wait must be at most one hour"));
        }
        self.options.describe_wait = wait;
        Ok(self)
    }

    /// The shortest time between two adaptive chunk-size changes (default 5 s). Rust-only,
    /// meant for tests and tuning; the C API keeps the default.
    pub fn adaptive_interval(&mut self, interval: std::time::Duration) -> &mut Self {
        self.options.adaptive_interval = interval;
        self
    }

    pub fn options(&self) -> &StreamOptions {
        &self.options
    }

    /// The statement this query sends: its SQL and the values of its parameters.
    pub fn statement(&self) -> Statement {
        Statement {
            sql: self.sql(),
            params: self.params(),
        }
    }

    /// The SQL this query sends (its parameters are [`Query::statement`]'s).
    pub fn sql(&self) -> String {
        self.sql_with("data", None, self.limit, self.offset)
    }

    /// The query's SQL with another select list, one more (parameterless) condition ANDed
    /// after the predicates, and the LIMIT/OFFSET given: the statement of one part of a
    /// parallel stream (see [`partition`]).
    pub(crate) fn sql_with(
        &self,
        select: &str,
        extra_where: Option<&str>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> String {
        use std::fmt::Write;
        let mut sql = format!("SELECT {select} FROM {}", self.source.quoted());
        let mut offset_params = 0;
        for (i, w) in self.wheres.iter().enumerate() {
            sql.push_str(if i == 0 { " WHERE (" } else { " AND (" });
            w.write(&mut sql, offset_params);
            offset_params += w.params().len();
            sql.push(')');
        }
        if let Some(cond) = extra_where {
            sql.push_str(if self.wheres.is_empty() {
                " WHERE ("
            } else {
                " AND ("
            });
            sql.push_str(cond);
            sql.push(')');
        }
        for (i, o) in self.order.iter().enumerate() {
            sql.push_str(if i == 0 { " ORDER BY " } else { ", " });
            // The expression is parenthesised so that a COLLATE clause applies to all of it.
            sql.push('(');
            o.expr.write(&mut sql, 0);
            sql.push(')');
            if let Some(c) = &o.collation {
                let _ = write!(sql, " COLLATE {c}");
            }
            sql.push_str(match o.dir {
                SortDir::Asc => " ASC",
                SortDir::Desc => " DESC",
            });
        }
        if let Some(n) = limit {
            let _ = write!(sql, " LIMIT {n}");
        }
        if let Some(n) = offset {
            let _ = write!(sql, " OFFSET {n}");
        }
        sql
    }

    /// The ORDER BY terms: expression SQL, quoted collation, direction.
    pub(crate) fn order_terms(&self) -> impl Iterator<Item = (String, Option<&str>, SortDir)> {
        self.order.iter().map(|o| {
            let mut e = String::new();
            o.expr.write(&mut e, 0);
            (e, o.collation.as_deref(), o.dir)
        })
    }

    pub(crate) fn limit_value(&self) -> Option<u64> {
        self.limit
    }

    pub(crate) fn offset_value(&self) -> Option<u64> {
        self.offset
    }

    /// The bound values of the predicates, `$1` first.
    pub(crate) fn params(&self) -> Vec<Option<String>> {
        self.wheres
            .iter()
            .flat_map(|w| w.params().iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_query() {
        assert_eq!(
            Query::new("v_user").unwrap().sql(),
            "SELECT data FROM \"v_user\""
        );
    }

    #[test]
    fn full_query_shape() {
        let mut q = Query::new("app.tv_order").unwrap();
        q.where_sql("data->>'a' = 'x'").unwrap();
        q.where_sql("true OR false").unwrap();
        q.order_by("data->>'name'", Some("C"), SortDir::Desc)
            .unwrap();
        q.order_by("(data->>'n')::int", None, SortDir::Asc).unwrap();
        q.limit(10).unwrap().offset(5).unwrap();
        assert_eq!(
            q.sql(),
            "SELECT data FROM \"app\".\"tv_order\" WHERE (data->>'a' = 'x') AND (true OR false) \
             ORDER BY (data->>'name') COLLATE \"C\" DESC, ((data->>'n')::int) ASC LIMIT 10 OFFSET 5"
        );
    }

    #[test]
    fn bad_fragments_are_rejected() {
        let mut q = Query::new("v").unwrap();
        assert!(q.where_sql("  ").is_err());
        assert!(q.where_sql("a\0b").is_err());
        assert!(q.order_by("", None, SortDir::Asc).is_err());
        assert!(q.order_by("x", Some(""), SortDir::Asc).is_err());
        assert!(q.limit(u64::MAX).is_err());
        assert!(q.offset(i64::MAX as u64 + 1).is_err());
        assert!(q.limit(i64::MAX as u64).is_ok());
        assert!(q.chunk_size(0).is_err());
        assert_eq!(q.sql(), "SELECT data FROM \"v\" LIMIT 9223372036854775807");
        // a parameter reference in trusted SQL would read another fragment's value
        assert!(q.where_sql("x = $1").is_err());
        assert!(q.order_by("$1", None, SortDir::Asc).is_err());
    }

    #[test]
    fn fragments_are_renumbered_in_order() {
        let mut q = Query::new("v").unwrap();
        q.where_params("a = $2 AND b = $1", &[Some("b1"), Some("a2")])
            .unwrap()
            .where_sql("c = '$1'")
            .unwrap()
            .where_path("/email", Op::Eq, Some("\"x@y\""))
            .unwrap()
            .where_params("d IS NOT DISTINCT FROM $1 -- $9", &[None])
            .unwrap();
        let st = q.statement();
        assert_eq!(
            st.sql,
            "SELECT data FROM \"v\" WHERE (a = $2 AND b = $1) AND (c = '$1') \
             AND ((data->>'email') = $3::text) AND (d IS NOT DISTINCT FROM $4 -- $9\n)"
        );
        assert_eq!(
            st.params,
            vec![
                Some("b1".into()),
                Some("a2".into()),
                Some("x@y".into()),
                None
            ]
        );
        assert_eq!(q.param_count(), 4);
        // A rejected fragment is not added.
        assert!(q.where_params("e = $2", &[Some("x")]).is_err());
        assert_eq!(q.statement(), st);
    }

    #[test]
    fn order_by_path_text_and_numeric() {
        let mut q = Query::new("v").unwrap();
        q.order_by_path("/address/city", OrderKind::Text, Some("C"), SortDir::Asc)
            .unwrap()
            .order_by_path("/n", OrderKind::Numeric, None, SortDir::Desc)
            .unwrap();
        assert_eq!(
            q.sql(),
            "SELECT data FROM \"v\" ORDER BY (data->'address'->>'city') COLLATE \"C\" ASC, \
             ((data->>'n')::numeric) DESC"
        );
        let e = q
            .order_by_path("/n", OrderKind::Numeric, Some("C"), SortDir::Asc)
            .unwrap_err();
        assert!(e.message().contains("only applies to text"), "{e}");
        assert!(q
            .order_by_path("n", OrderKind::Text, None, SortDir::Asc)
            .is_err());
        // a trailing comment in a trusted ORDER BY expression is closed by a newline
        let mut q = Query::new("v").unwrap();
        q.order_by("1 -- x", None, SortDir::Asc)
            .unwrap()
            .limit(1)
            .unwrap();
        assert_eq!(
            q.sql(),
            "SELECT data FROM \"v\" ORDER BY (1 -- x\n) ASC LIMIT 1"
        );
    }
}
