//! `fw_query`: the query builder.

use std::ffi::{c_char, c_void};
use std::os::raw::c_int;
use std::sync::Arc;

use super::client::fw_client;
use super::stream::fw_stream;
use super::{cstr, fw_status, guard, null, obj, obj_mut, write_out};
use crate::client::Client;
use crate::error::Error;
use crate::query::{JsonOp, Query, SortDir};

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

/// Add a trusted SQL predicate; each is parenthesised and the predicates are ANDed.
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
        let dir = match dir {
            0 => SortDir::Asc,
            1 => SortDir::Desc,
            d => {
                return Err(Error::invalid(format!(
                    "sort direction {d} is not FW_ASC or FW_DESC"
                )))
            }
        };
        q.order_by(expr, collation, dir).map(|_| ())
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
        let stream = q.client.execute(&q.query)?;
        let s = Box::into_raw(Box::new(fw_stream::new(stream)));
        // SAFETY: `out` checked non-null.
        unsafe { write_out(out, s) };
        Ok(fw_status::FW_OK)
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
