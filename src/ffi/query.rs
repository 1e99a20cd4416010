//! `fw_query`: the query builder.

use std::ffi::{c_char, c_void};
use std::os::raw::c_int;
use std::sync::Arc;

use super::client::fw_client;
use super::stream::fw_stream;
use super::{cstr, fw_status, guard, null, obj, obj_mut, write_out};
use crate::client::Client;
use crate::error::Error;
use crate::query::predicate::ALL_OPS;
use crate::query::{JsonOp, Op, OrderKind, Query, SortDir};

/// A query (opaque). Built by `fw_query_new` and the setters; executed any number of times.
#[allow(non_camel_case_types)]
pub struct fw_query {
    pub(crate) client: Client,
    pub(crate) query: Query,
}

/// Sort direction for `fw_query_order_by`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_sort {
    FW_ASC = 0,
    FW_DESC = 1,
}

/// A client-side row filter, run on the consumer's thread: return true to keep the row.
/// `json` is NUL-terminated and `len` bytes long; valid during the call only. It must not
/// unwind (throw) into the library. Every stream executed from the query calls the same
/// predicate with the same `userdata`, each on the thread that consumes it: when streams of
/// one query are consumed on several threads at once, the predicate (and what `userdata`
/// points to) must be thread-safe.
#[allow(non_camel_case_types)]
pub type fw_row_predicate =
    Option<unsafe extern "C" fn(userdata: *mut c_void, json: *const c_char, len: usize) -> bool>;

/// Create a query over `source` (`name` or `schema.name`; anything else is
/// `FW_E_INVALID_ARGUMENT`). The query keeps the client alive.
#[no_mangle]
pub extern "C" fn fw_query_new(
    client: *mut fw_client,
    source: *const c_char,
    out: *mut *mut fw_query,
) -> fw_status {
    guard(|| {
        // SAFETY: pointers from the caller; NULL is checked by the helpers.
        let client = unsafe { obj(client, "client") }?;
        // SAFETY: as above.
        let source = unsafe { cstr(source, "source") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        let q = fw_query {
            client: client.inner.clone(),
            query: Query::new(source)?,
        };
        // SAFETY: `out` checked non-null.
        unsafe { write_out(out, Box::into_raw(Box::new(q))) };
        Ok(fw_status::FW_OK)
    })
}

fn with_query(q: *mut fw_query, f: impl FnOnce(&mut Query) -> Result<(), Error>) -> fw_status {
    guard(|| {
        // SAFETY: `q` comes from fw_query_new; queries are not shared across threads while
        // being modified (documented).
        let q = unsafe { obj_mut(q, "query") }?;
        f(&mut q.query)?;
        Ok(fw_status::FW_OK)
    })
}

/// Add a trusted SQL predicate; each is parenthesised and the predicates are ANDed. It may
/// not refer to a parameter (`$1` outside literals and comments is `FW_E_INVALID_ARGUMENT`):
/// bind values with `fw_query_where_params`.
#[no_mangle]
pub extern "C" fn fw_query_where_sql(q: *mut fw_query, sql_predicate: *const c_char) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C string from the caller, checked.
        let p = unsafe { cstr(sql_predicate, "sql_predicate") }?;
        q.where_sql(p).map(|_| ())
    })
}

/// Add an ORDER BY term: a trusted SQL expression, an optional collation (NULL for none;
/// quoted as an identifier), and `FW_ASC`/`FW_DESC` (an `int` so that out-of-range values
/// are reported as `FW_E_INVALID_ARGUMENT` rather than being undefined behaviour).
#[no_mangle]
pub extern "C" fn fw_query_order_by(
    q: *mut fw_query,
    sql_expr: *const c_char,
    collation: *const c_char,
    dir: c_int,
) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C strings from the caller, checked.
        let expr = unsafe { cstr(sql_expr, "sql_expr") }?;
        let collation = if collation.is_null() {
            None
        } else {
            // SAFETY: non-null C string from the caller.
            Some(unsafe { cstr(collation, "collation") }?)
        };
        q.order_by(expr, collation, sort_dir(dir)?).map(|_| ())
    })
}

/// LIMIT n (at most INT64_MAX).
#[no_mangle]
pub extern "C" fn fw_query_limit(q: *mut fw_query, n: u64) -> fw_status {
    with_query(q, |q| q.limit(n).map(|_| ()))
}

/// OFFSET n (at most INT64_MAX).
#[no_mangle]
pub extern "C" fn fw_query_offset(q: *mut fw_query, n: u64) -> fw_status {
    with_query(q, |q| q.offset(n).map(|_| ()))
}

/// Rows per chunk handed from the reader to the consumer (the starting size when adaptive
/// chunking is on). At least 1.
#[no_mangle]
pub extern "C" fn fw_query_chunk_size(q: *mut fw_query, rows: usize) -> fw_status {
    with_query(q, |q| q.chunk_size(rows).map(|_| ()))
}

/// Turn adaptive chunk sizing on (bounds `min_rows..=max_rows`, min >= 1) or off.
#[no_mangle]
pub extern "C" fn fw_query_adaptive_chunking(
    q: *mut fw_query,
    on: bool,
    min_rows: usize,
    max_rows: usize,
) -> fw_status {
    with_query(q, |q| {
        q.adaptive_chunking(on, min_rows, max_rows).map(|_| ())
    })
}

/// Bound the stream's memory to `bytes`; see the README for `warn_ratio` and `fail_ratio`
/// (`0 < warn_ratio <= fail_ratio <= 1`).
#[no_mangle]
pub extern "C" fn fw_query_max_memory(
    q: *mut fw_query,
    bytes: usize,
    warn_ratio: f64,
    fail_ratio: f64,
) -> fw_status {
    with_query(q, |q| {
        q.max_memory(bytes, warn_ratio, fail_ratio).map(|_| ())
    })
}

/// The longest wait, in microseconds, before a socket read on a steady server-bound stream,
/// so that one read takes several of the server's 8 KiB packets (far fewer wake-ups of the
/// library's thread and of the consumer). Also the most a row can be delayed by it. Default
/// 1000 (1 ms); 0 reads every packet as it arrives; at most 100000.
#[no_mangle]
pub extern "C" fn fw_query_read_coalesce(q: *mut fw_query, max_us: u32) -> fw_status {
    with_query(q, |q| {
        q.read_coalesce(std::time::Duration::from_micros(max_us.into()))
            .map(|_| ())
    })
}

/// How far the reader reads ahead of a slower consumer: the most bytes of chunks queued
/// before it stops reading the socket. Default 524288 (512 KiB); at least 1. The memory
/// budget (`fw_query_max_memory`) still bounds everything; a read-ahead at or above it lets
/// the queue fill the whole budget.
#[no_mangle]
pub extern "C" fn fw_query_read_ahead(q: *mut fw_query, bytes: usize) -> fw_status {
    with_query(q, |q| q.read_ahead(bytes).map(|_| ()))
}

/// How long `fw_query_execute` waits, in milliseconds, for the server's first answer before
/// it returns the stream anyway. Default 20; -1 waits as long as it takes; 0 does not wait
/// (what has already arrived is still looked at once); at most 3600000 (one hour). The server describes the result
/// together with its first rows (one packet for a small result), so a query slower than this
/// is returned undescribed: its errors, a wrong result shape (`FW_E_SCHEMA`) included, then
/// come from the stream's first `next` instead of from `fw_query_execute`.
#[no_mangle]
pub extern "C" fn fw_query_describe_wait(q: *mut fw_query, timeout_ms: i64) -> fw_status {
    with_query(q, |q| {
        let wait = match timeout_ms {
            -1 => None,
            ms if ms >= 0 => Some(std::time::Duration::from_millis(ms as u64)),
            _ => {
                return Err(Error::invalid(
                    "describe wait must be -1 (no limit) or at least 0 ms",
                ))
            }
        };
        q.describe_wait(wait).map(|_| ())
    })
}

struct CPredicate {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> bool,
    userdata: *mut c_void,
}

impl CPredicate {
    fn call(&self, row: &[u8]) -> bool {
        // SAFETY: `row` is followed by a NUL byte in memory (chunk invariant) and valid during
        // the call; the C predicate and its userdata are the caller's.
        unsafe { (self.f)(self.userdata, row.as_ptr().cast(), row.len()) }
    }
}

// SAFETY: the predicate is only ever called on a thread that consumes a stream (a host
// thread), never on the library's own; the library itself never touches `userdata`.
unsafe impl Send for CPredicate {}
// SAFETY: one stream calls it from one thread at a time, but every stream executed from the
// query shares it, so streams consumed on several threads call it concurrently: the header
// (`fw_row_predicate`, `fw_query_filter`) requires a thread-safe predicate and userdata then.
unsafe impl Sync for CPredicate {}

/// Add a client-side predicate (several AND together). Rows it rejects are counted as
/// filtered and never handed out. It runs on the thread that consumes each stream; the
/// streams of this query share it, so if the query is executed and consumed on several
/// threads at once, `pred` is called concurrently and must be thread-safe (a predicate with
/// per-stream state needs a query per stream).
#[no_mangle]
pub extern "C" fn fw_query_filter(
    q: *mut fw_query,
    pred: fw_row_predicate,
    userdata: *mut c_void,
) -> fw_status {
    with_query(q, |q| {
        let f = pred.ok_or_else(|| null("pred"))?;
        let p = CPredicate { f, userdata };
        q.filter(Arc::new(move |row: &[u8]| p.call(row)));
        Ok(())
    })
}

/// Execute the query: returns once the server has described the result (it does so with the
/// first rows), or after the query's describe wait (`fw_query_describe_wait`, 20 ms by
/// default) if that comes first, with the stream in `*out`. A connection failure, and what
/// the server has reported by then (a missing relation, a wrong result shape), is reported
/// here; anything later by the stream.
#[no_mangle]
pub extern "C" fn fw_query_execute(q: *const fw_query, out: *mut *mut fw_stream) -> fw_status {
    guard(|| {
        // SAFETY: `q` comes from fw_query_new.
        let q = unsafe { obj(q, "query") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        let s = if q.query.partitions() > 1 {
            fw_stream::new_parallel(q.client.execute_parallel(&q.query)?)
        } else {
            fw_stream::new(q.client.execute(&q.query)?)
        };
        let s = Box::into_raw(Box::new(s));
        // SAFETY: `out` checked non-null.
        unsafe { write_out(out, s) };
        Ok(fw_status::FW_OK)
    })
}

/// Read the result as `partitions` disjoint parts over as many connections at once, merged
/// into one stream (1, the default, turns it off; at most 64). All parts read one snapshot
/// (the first connection exports it, the others import it). A plain table is split by block
/// ranges (PostgreSQL 14 or later); any other source needs `fw_query_partition_by`, without
/// which `fw_query_execute` fails with `FW_E_INVALID_ARGUMENT`. Without ORDER BY rows arrive
/// as the parts send them; with ORDER BY the parts are merged in order (every ORDER BY key
/// must be a type the merge compares exactly: integers, numeric, floats, dates and
/// timestamps, booleans, uuids, or text with `COLLATE "C"`; otherwise `fw_query_execute`
/// fails with `FW_E_INVALID_ARGUMENT` naming the key). LIMIT and OFFSET apply to the merged
/// stream. The memory budget is shared: each part gets `max_memory / partitions`. Stats are
/// the sum of the parts; pause, resume, cancel and free act on every part; an error in one
/// part cancels the others and ends the stream after the rows already delivered.
/// See docs/parallel.md.
#[no_mangle]
pub extern "C" fn fw_query_parallel(
    q: *mut fw_query,
    partitions: std::os::raw::c_uint,
) -> fw_status {
    with_query(q, |q| q.parallel(partitions).map(|_| ()))
}

/// The integer SQL expression over the source's columns that splits a parallel query into
/// parts (part `i` of `k` reads the rows where `coalesce(abs((expr) % k), 0) = i`). Needed for
/// any source other than a plain table (a view, the usual case): use a column the view
/// exposes as it is (its key), so that the planner applies the condition to the base table
/// before the view's JSON is built. Trusted SQL without parameters.
#[no_mangle]
pub extern "C" fn fw_query_partition_by(q: *mut fw_query, sql_expr: *const c_char) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C string from the caller; NULL is checked.
        let e = unsafe { cstr(sql_expr, "sql_expr") }?;
        q.partition_by(e).map(|_| ())
    })
}

/// Free a query. NULL is a no-op. Streams already executed are not affected.
#[no_mangle]
pub extern "C" fn fw_query_free(q: *mut fw_query) {
    if q.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a non-null `q` was created by fw_query_new and is freed once.
        let q = unsafe { Box::from_raw(q) };
        // The query may hold the client's last handle (see `close_idle_after_shutdown`).
        super::client::close_idle_after_shutdown(&q.client);
        drop(q);
        Ok(fw_status::FW_OK)
    });
}

/// Operators of the built-in JSON predicate (`fw_query_filter_json`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_json_op {
    /// JSON equality (numbers by exact value, objects ignoring key order).
    FW_JSON_EQ = 0,
    /// The pointer resolves and the value is not equal.
    FW_JSON_NE = 1,
    /// Numbers numerically, strings by code point; other types never match.
    FW_JSON_LT = 2,
    FW_JSON_LE = 3,
    FW_JSON_GT = 4,
    FW_JSON_GE = 5,
    /// The pointer resolves (also to `null`); `value_json` is ignored and may be NULL.
    FW_JSON_EXISTS = 6,
    /// String: substring; array: has an equal element; object: has the (string) key.
    FW_JSON_CONTAINS = 7,
}

/// Add a built-in predicate evaluated inside the library (no callback): the value at the
/// RFC 6901 JSON Pointer `json_pointer` (`""` = the whole row, e.g. `"/address/city"`) is
/// compared with the constant `value_json` (JSON text, e.g. `"42"`, `"\"Zürich\""`) by `op`
/// (an `fw_json_op`). Rows are filtered by the reader before they reach the channel and count
/// as filtered; a pointer that does not resolve rejects the row (for every op). Several
/// predicates AND together, and with `fw_query_filter`. A bad pointer, op or value is
/// `FW_E_INVALID_ARGUMENT`. See docs/streaming.md for the exact semantics.
#[no_mangle]
pub extern "C" fn fw_query_filter_json(
    q: *mut fw_query,
    json_pointer: *const c_char,
    op: c_int,
    value_json: *const c_char,
) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C strings from the caller, checked.
        let pointer = unsafe { cstr(json_pointer, "json_pointer") }?;
        let op = match op {
            0 => JsonOp::Eq,
            1 => JsonOp::Ne,
            2 => JsonOp::Lt,
            3 => JsonOp::Le,
            4 => JsonOp::Gt,
            5 => JsonOp::Ge,
            6 => JsonOp::Exists,
            7 => JsonOp::Contains,
            other => {
                return Err(Error::invalid(format!(
                    "JSON predicate operator {other} is not an fw_json_op"
                )))
            }
        };
        let value = if value_json.is_null() {
            if op != JsonOp::Exists {
                return Err(null("value_json"));
            }
            None
        } else {
            // SAFETY: non-null C string from the caller.
            Some(unsafe { cstr(value_json, "value_json") }?)
        };
        q.filter_json(pointer, op, value).map(|_| ())
    })
}

/// Operators of the typed server-side predicate (`fw_query_where`). The constant's JSON type
/// picks the comparison where it matters; see docs/filtering.md for the SQL of each.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_op {
    /// Comparisons: a string compares as text (`data->>'k'`), a number as numeric
    /// (`(data->>'k')::numeric`), a boolean as boolean; `null` with EQ/NE is IS [NOT] NULL
    /// (a missing key is NULL too).
    FW_OP_EQ = 0,
    FW_OP_NE = 1,
    FW_OP_LT = 2,
    FW_OP_LE = 3,
    FW_OP_GT = 4,
    FW_OP_GE = 5,
    /// A JSON array of strings, numbers or booleans (one type); empty IN matches nothing,
    /// empty NOT IN everything.
    FW_OP_IN = 6,
    FW_OP_NOT_IN = 7,
    /// A string pattern, used as given (`%`, `_`, `\` escape).
    FW_OP_LIKE = 8,
    FW_OP_ILIKE = 9,
    /// A string; `%`, `_` and `\` in it match literally.
    FW_OP_STARTS_WITH = 10,
    FW_OP_ENDS_WITH = 11,
    FW_OP_CONTAINS_TEXT = 12,
    /// Case-insensitive CONTAINS_TEXT.
    FW_OP_ICONTAINS_TEXT = 13,
    /// No value (NULL): the key is present (also with a JSON null) / absent.
    FW_OP_EXISTS = 14,
    FW_OP_NOT_EXISTS = 15,
    /// Any JSON: jsonb containment (`@>`) at the path.
    FW_OP_JSON_CONTAINS = 16,
    /// A JSON array: the array at the path shares an element with it.
    FW_OP_ARRAY_OVERLAPS = 17,
    /// An integer: the length of the array at the path (not an array: no match).
    FW_OP_ARRAY_LENGTH_EQ = 18,
    FW_OP_ARRAY_LENGTH_GT = 19,
    FW_OP_ARRAY_LENGTH_LT = 20,
    /// A string in `websearch_to_tsquery` syntax: full-text match of the text at the path
    /// (text search configuration `simple`).
    FW_OP_MATCHES = 21,
}

/// How `fw_query_order_by_path` compares the values at a path.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_order_kind {
    /// As text (`data->>'k'`), in the given collation or the column's.
    FW_ORDER_TEXT = 0,
    /// As numbers (`(data->>'k')::numeric`).
    FW_ORDER_NUMERIC = 1,
}

fn sort_dir(dir: c_int) -> Result<SortDir, Error> {
    match dir {
        0 => Ok(SortDir::Asc),
        1 => Ok(SortDir::Desc),
        d => Err(Error::invalid(format!(
            "sort direction {d} is not FW_ASC or FW_DESC"
        ))),
    }
}

/// Add a predicate with bound values: `$1..$n` in `sql_predicate` are `params[0..n-1]`
/// (n = `nparams`), numbered for this fragment alone (the library renumbers them when it
/// ANDs fragments; a `$1` in a string literal, quoted identifier, dollar quote or comment is
/// text). Values are sent in text format as bound parameters, never spliced into the SQL; a
/// NULL element is SQL NULL. Each must be valid UTF-8 (PostgreSQL's text format; anything
/// else is `FW_E_INVALID_ARGUMENT`). `params` may be NULL when `nparams` is 0. `FW_E_INVALID_ARGUMENT` (nothing added) when the fragment uses `$k` with
/// k > nparams or `$0`, does not use every `$1..$n`, ends inside a literal or comment, or has
/// unbalanced parentheses; the message names the problem.
#[no_mangle]
pub extern "C" fn fw_query_where_params(
    q: *mut fw_query,
    sql_predicate: *const c_char,
    nparams: usize,
    params: *const *const c_char,
) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C string from the caller, checked.
        let sql = unsafe { cstr(sql_predicate, "sql_predicate") }?;
        if nparams > crate::query::MAX_PARAMS {
            return Err(Error::invalid(format!(
                "nparams {nparams} is more than the {} parameters a statement can bind",
                crate::query::MAX_PARAMS
            )));
        }
        let ptrs: &[*const c_char] = if nparams == 0 {
            &[]
        } else if params.is_null() {
            return Err(null("params"));
        } else {
            // SAFETY: the caller passes an array of `nparams` pointers (checked non-null).
            unsafe { std::slice::from_raw_parts(params, nparams) }
        };
        let mut values = Vec::with_capacity(nparams);
        for (i, &p) in ptrs.iter().enumerate() {
            values.push(if p.is_null() {
                None
            } else {
                // SAFETY: a non-null element is a NUL-terminated string from the caller.
                Some(unsafe { cstr(p, &format!("parameter ${}", i + 1)) }?)
            });
        }
        q.where_params(sql, &values).map(|_| ())
    })
}

/// Add a typed predicate evaluated by the server: the value at the RFC 6901 JSON pointer
/// `json_pointer` (`""` is the whole document, `/address/city` a nested member, `/tags/0` an
/// array element, `~1` is `/` and `~0` is `~`) compared by `op` (an `fw_op`) with the JSON
/// text `value_json` (NULL for `FW_OP_EXISTS` / `FW_OP_NOT_EXISTS`, required otherwise:
/// `FW_E_NULL`), which is sent as a bound parameter. A value of the wrong JSON type for `op` is `FW_E_INVALID_ARGUMENT`, its
/// message naming both. The path's keys are quoted literals in the SQL, which is therefore
/// the expression an index must be created on (`(data->>'email')`): see docs/filtering.md.
#[no_mangle]
pub extern "C" fn fw_query_where(
    q: *mut fw_query,
    json_pointer: *const c_char,
    op: c_int,
    value_json: *const c_char,
) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C strings from the caller, checked.
        let pointer = unsafe { cstr(json_pointer, "json_pointer") }?;
        let op = usize::try_from(op)
            .ok()
            .and_then(|i| ALL_OPS.get(i).copied())
            .ok_or_else(|| Error::invalid(format!("predicate operator {op} is not an fw_op")))?;
        let value = if value_json.is_null() {
            if !matches!(op, Op::Exists | Op::NotExists) {
                return Err(null("value_json"));
            }
            None
        } else {
            // SAFETY: non-null C string from the caller.
            Some(unsafe { cstr(value_json, "value_json") }?)
        };
        q.where_path(pointer, op, value).map(|_| ())
    })
}

/// Add an ORDER BY term on the value at a JSON pointer: `kind` `FW_ORDER_TEXT` (with an
/// optional `collation`, NULL for the column's) or `FW_ORDER_NUMERIC` (`collation` must be
/// NULL); `dir` `FW_ASC` / `FW_DESC`. Rows without a value there sort as NULL (last when
/// ascending). `kind` and `dir` are `int`s: out-of-range values are `FW_E_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn fw_query_order_by_path(
    q: *mut fw_query,
    json_pointer: *const c_char,
    kind: c_int,
    collation: *const c_char,
    dir: c_int,
) -> fw_status {
    with_query(q, |q| {
        // SAFETY: C strings from the caller, checked.
        let pointer = unsafe { cstr(json_pointer, "json_pointer") }?;
        let collation = if collation.is_null() {
            None
        } else {
            // SAFETY: non-null C string from the caller.
            Some(unsafe { cstr(collation, "collation") }?)
        };
        let kind = match kind {
            0 => OrderKind::Text,
            1 => OrderKind::Numeric,
            k => {
                return Err(Error::invalid(format!(
                    "order kind {k} is not FW_ORDER_TEXT or FW_ORDER_NUMERIC"
                )))
            }
        };
        q.order_by_path(pointer, kind, collation, sort_dir(dir)?)
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fw_op_values_are_the_positions_of_op_all() {
        let c = [
            fw_op::FW_OP_EQ,
            fw_op::FW_OP_NE,
            fw_op::FW_OP_LT,
            fw_op::FW_OP_LE,
            fw_op::FW_OP_GT,
            fw_op::FW_OP_GE,
            fw_op::FW_OP_IN,
            fw_op::FW_OP_NOT_IN,
            fw_op::FW_OP_LIKE,
            fw_op::FW_OP_ILIKE,
            fw_op::FW_OP_STARTS_WITH,
            fw_op::FW_OP_ENDS_WITH,
            fw_op::FW_OP_CONTAINS_TEXT,
            fw_op::FW_OP_ICONTAINS_TEXT,
            fw_op::FW_OP_EXISTS,
            fw_op::FW_OP_NOT_EXISTS,
            fw_op::FW_OP_JSON_CONTAINS,
            fw_op::FW_OP_ARRAY_OVERLAPS,
            fw_op::FW_OP_ARRAY_LENGTH_EQ,
            fw_op::FW_OP_ARRAY_LENGTH_GT,
            fw_op::FW_OP_ARRAY_LENGTH_LT,
            fw_op::FW_OP_MATCHES,
        ];
        assert_eq!(c.len(), ALL_OPS.len());
        for (i, (c, op)) in c.iter().zip(ALL_OPS).enumerate() {
            assert_eq!(*c as usize, i);
            // The C name ends with the operator's name used in messages.
            assert_eq!(format!("{c:?}"), format!("FW_OP_{}", op.name()));
        }
    }
}
