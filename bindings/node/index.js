'use strict';
// Node binding for fraiseql-wire (koffi).
//
//   const { Client } = require('fraiseql-wire');
//   const client = new Client('');                 // libpq conninfo; PG* env as defaults
//   const stream = client.query('v_user').where("(data->>'active')::boolean").limit(10).stream();
//   for await (const row of stream) console.log(JSON.parse(row));
//   client.close();
//
// Rows are fetched by fw_stream_next_block running on koffi's worker threads (async
// calls), so waiting for rows never blocks the event loop. Connecting and executing are
// synchronous calls (see the README).
//
// The shared library is found through, in order: $FW_LIB (a file), $FW_LIB_DIR (a
// directory), the system's dynamic loader, then pkg-config (see load() below).

const { execFileSync } = require('child_process');
const path = require('path');
const koffi = require('koffi');
const os = require('os');

// ---------------------------------------------------------------------------
// loading
// ---------------------------------------------------------------------------

const LIBNAME = 'libfraiseql_wire.so';
const MAJOR = 0;
const SONAME = `${LIBNAME}.${MAJOR}`;

// [where, path] in lookup order (the same as the Python and Ruby bindings): $FW_LIB (a file),
// $FW_LIB_DIR (a directory), the system's dynamic loader (LD_LIBRARY_PATH, the ld.so cache,
// the default directories), then pkg-config's libdir of fraiseql-wire.pc.
function candidates() {
  if (process.env.FW_LIB) return [['FW_LIB', process.env.FW_LIB]];
  if (process.env.FW_LIB_DIR) return [['FW_LIB_DIR', path.join(process.env.FW_LIB_DIR, LIBNAME)]];
  return [['system loader', SONAME], ['pkg-config', null]];
}

function pkgConfigLibdir() {
  try {
    const out = execFileSync('pkg-config', ['--variable=libdir', 'fraiseql-wire'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return out || null;
  } catch (e) {
    return null;
  }
}

function load() {
  const errors = [];
  for (const [where, p0] of candidates()) {
    let p = p0;
    if (where === 'pkg-config') {
      const libdir = pkgConfigLibdir();
      if (!libdir) {
        errors.push('pkg-config: no fraiseql-wire.pc found');
        continue;
      }
      p = path.join(libdir, SONAME);
    }
    try {
      return [koffi.load(p), p];
    } catch (e) {
      errors.push(`${where}: ${e.message}`);
    }
  }
  throw new Error(`cannot load ${SONAME} (install it with \`make install\`, or set FW_LIB to its path): ${errors.join('; ')}`);
}

const [lib, libraryPath] = load();

koffi.opaque('fw_client');
koffi.opaque('fw_query');
koffi.opaque('fw_stream');
koffi.opaque('fw_error');
const Block = koffi.struct('fw_block', {
  data: 'void *', len: 'size_t', offsets: 'void *', n: 'size_t',
});
const STATS_FIELDS = [
  'items_buffered', 'bytes_buffered', 'estimated_memory', 'total_rows_received',
  'total_rows_yielded', 'total_rows_filtered', 'total_bytes_received', 'current_chunk_size',
  'pause_count', 'paused_ms_total', 'time_to_first_row_us', 'elapsed_us', 'memory_limit',
  'peak_memory', 'memory_warnings', 'chunks_received', 'pause_timeouts',
];
const StatsStruct = koffi.struct('fw_stats', Object.assign(
  { struct_size: 'size_t', state: 'int' },
  Object.fromEntries(STATS_FIELDS.map((f) => [f, 'uint64_t'])),
));

const C = {
  client_new: lib.func('int fw_client_new(const char *conninfo, _Out_ fw_client **out)'),
  client_free: lib.func('void fw_client_free(fw_client *client)'),
  last_error: lib.func('fw_error *fw_last_error(void)'),
  error_code: lib.func('int fw_error_code(fw_error *e)'),
  error_message: lib.func('const char *fw_error_message(fw_error *e)'),
  error_sqlstate: lib.func('const char *fw_error_sqlstate(fw_error *e)'),
  error_detail: lib.func('const char *fw_error_detail(fw_error *e)'),
  error_hint: lib.func('const char *fw_error_hint(fw_error *e)'),
  error_position: lib.func('const char *fw_error_position(fw_error *e)'),
  query_new: lib.func('int fw_query_new(fw_client *client, const char *source, _Out_ fw_query **out)'),
  query_where_sql: lib.func('int fw_query_where_sql(fw_query *q, const char *sql)'),
  query_order_by: lib.func('int fw_query_order_by(fw_query *q, const char *expr, const char *collation, int dir)'),
  query_limit: lib.func('int fw_query_limit(fw_query *q, uint64_t n)'),
  query_offset: lib.func('int fw_query_offset(fw_query *q, uint64_t n)'),
  query_chunk_size: lib.func('int fw_query_chunk_size(fw_query *q, size_t rows)'),
  query_adaptive: lib.func('int fw_query_adaptive_chunking(fw_query *q, bool on, size_t min_rows, size_t max_rows)'),
  query_max_memory: lib.func('int fw_query_max_memory(fw_query *q, size_t bytes, double warn, double fail)'),
  query_read_ahead: lib.func('int fw_query_read_ahead(fw_query *q, size_t bytes)'),
  query_parallel: lib.func('int fw_query_parallel(fw_query *q, unsigned int partitions)'),
  query_partition_by: lib.func('int fw_query_partition_by(fw_query *q, const char *sql_expr)'),
  query_read_coalesce: lib.func('int fw_query_read_coalesce(fw_query *q, uint32_t max_us)'),
  query_describe_wait: lib.func('int fw_query_describe_wait(fw_query *q, int64_t timeout_ms)'),
  query_where_params: lib.func('int fw_query_where_params(fw_query *q, const char *sql, size_t n, const char **params)'),
  query_where: lib.func('int fw_query_where(fw_query *q, const char *json_pointer, int op, const char *value_json)'),
  query_order_by_path: lib.func('int fw_query_order_by_path(fw_query *q, const char *json_pointer, int kind, const char *collation, int dir)'),
  query_execute: lib.func('int fw_query_execute(fw_query *q, _Out_ fw_stream **out)'),
  query_free: lib.func('void fw_query_free(fw_query *q)'),
  version: lib.func('const char *fw_version(void)'),
  shutdown: lib.func('int fw_shutdown(uint64_t timeout_ms)'),
  string_free: lib.func('void fw_string_free(void *s)'),
  status_str: lib.func('const char *fw_status_str(int status)'),
  next_block: lib.func('int fw_stream_next_block(fw_stream *s, void *out, size_t max_rows, size_t max_bytes, int64_t timeout_ms)'),
  block_transcode: lib.func('int fw_block_transcode(void *block, void *out, size_t out_cap, void *ends, void *kinds)'),
  pause: lib.func('int fw_stream_pause(fw_stream *s)'),
  pause_with_reason: lib.func('int fw_stream_pause_with_reason(fw_stream *s, const char *reason)'),
  resume: lib.func('int fw_stream_resume(fw_stream *s)'),
  set_pause_timeout: lib.func('int fw_stream_set_pause_timeout(fw_stream *s, uint64_t ms)'),
  state: lib.func('int fw_stream_state_snapshot(fw_stream *s)'),
  stats: lib.func('int fw_stream_stats(fw_stream *s, _Inout_ fw_stats *out)'),
  cancel: lib.func('int fw_stream_cancel(fw_stream *s)'),
  stream_error: lib.func('fw_error *fw_stream_error(fw_stream *s)'),
  stream_free: lib.func('void fw_stream_free(fw_stream *s)'),
  metrics_dump: lib.func('int fw_metrics_dump(_Out_ void **out, _Out_ size_t *len)'),
};

// ---------------------------------------------------------------------------
// status codes, states, errors
// ---------------------------------------------------------------------------

const OK = 0;
const DONE = 1;
const WOULD_BLOCK = 2;
const TIMEOUT = 3;
const PAUSED = 4;
const LITTLE_ENDIAN = os.endianness() === 'LE';
const STATES = { [-1]: 'invalid', 0: 'running', 1: 'paused', 2: 'completed', 3: 'failed', 4: 'cancelled' };

/** A failed library call. As in node-postgres, `.code` is the server's SQLSTATE for server
 * errors ('42P01'); for the others it is the library status name ('FW_E_CONNECT'). `.status`
 * is the status name ('FW_E_SERVER') and `.errno` its number (-6); `.message` is the library's
 * or the server's message; `.sqlstate`, `.detail`, `.hint`, `.position` are set for server
 * errors (else null). The same fields as in the Python, Ruby and Go bindings. */
class FwError extends Error {
  constructor(errno, message, fields = {}) {
    const status = C.status_str(errno);
    super(message || status);
    this.name = this.constructor.name;
    this.status = status;
    this.errno = errno;
    this.sqlstate = fields.sqlstate || null;
    this.code = this.sqlstate || status;
    this.detail = fields.detail || null;
    this.hint = fields.hint || null;
    this.position = fields.position || null;
  }
}
class InvalidArgumentError extends FwError {}
class NullPointerError extends InvalidArgumentError {}
class ConnectError extends FwError {}
class AuthError extends ConnectError {}
class TLSError extends ConnectError {}
class ServerError extends FwError {}
class ProtocolError extends FwError {}
class SchemaError extends FwError {}
class MemoryLimitError extends FwError {}
class CancelledError extends FwError {}
class ConnectionLostError extends FwError {}
class StateError extends FwError {}
class PanicError extends FwError {}
class ShutdownError extends FwError {}

const ERRORS = {
  [-1]: InvalidArgumentError, [-2]: NullPointerError, [-3]: ConnectError, [-4]: AuthError,
  [-5]: TLSError, [-6]: ServerError, [-7]: ProtocolError, [-8]: SchemaError,
  [-9]: MemoryLimitError, [-10]: CancelledError, [-11]: ConnectionLostError,
  [-12]: StateError, [-13]: PanicError, [-14]: ShutdownError,
};

// An error for a failed call from `err` (a stream's error) or, for synchronous calls, the
// main thread's last error. Calls made on worker threads leave their thread-local last
// error there: only the status is known then.
function makeError(status, err, useLastError) {
  if ((!err || C.error_code(err) !== status) && useLastError) err = C.last_error();
  const Cls = ERRORS[status] || FwError;
  if (!err || C.error_code(err) !== status) return new Cls(status, null);
  return new Cls(status, C.error_message(err), {
    sqlstate: C.error_sqlstate(err),
    detail: C.error_detail(err),
    hint: C.error_hint(err),
    position: C.error_position(err),
  });
}

function check(status) {
  if (status < 0) throw makeError(status, null, true);
  return status;
}

// `n` if it is an integer in 0..max, else InvalidArgumentError (koffi would wrap it).
function nonNegativeInteger(n, what, max) {
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new InvalidArgumentError(-1, `${what}: ${n} is out of range`);
  }
  return n;
}

function closedError(what) {
  const e = new StateError(-12, `the ${what} is closed`);
  return e;
}

// ---------------------------------------------------------------------------
// handle bookkeeping (finalizers)
// ---------------------------------------------------------------------------

const live = { client: 0, stream: 0 };

/** Native handles alive now: `{ client, stream }`. */
function liveHandles() {
  return { ...live };
}

// Held values are small state objects that do not refer to the wrapper, so a wrapper the
// program drops can be collected; the registry then frees its handle.
const clientRegistry = new FinalizationRegistry((h) => freeClient(h));
const streamRegistry = new FinalizationRegistry((h) => freeStream(h));

function freeClient(h) {
  if (h.ptr) {
    C.client_free(h.ptr);
    h.ptr = null;
    live.client--;
  }
}

function freeStream(h) {
  if (!h.ptr) return;
  if (h.busy) {
    // A fetch runs on a worker thread: wake it, free when it is back.
    C.cancel(h.ptr);
    h.freeWhenIdle = true;
    return;
  }
  C.stream_free(h.ptr);
  h.ptr = null;
  koffi.free(h.block);
  live.stream--;
}

// ---------------------------------------------------------------------------
// Client, Query
// ---------------------------------------------------------------------------

/** A client: connection settings plus a connection pool. */
class Client {
  /** Connects once with `conninfo` (libpq URI or key=value; PG* env vars fill in the rest).
   * Synchronous. Throws ConnectError / AuthError / ... */
  constructor(conninfo = '') {
    const out = [null];
    check(C.client_new(conninfo, out));
    live.client++;
    this._h = { ptr: out[0] };
    clientRegistry.register(this, this._h, this);
  }

  /** A query over a view or table ('v_user', 'app.tv_order'). */
  query(source) {
    return new Query(this, source);
  }

  _ptr() {
    if (!this._h.ptr) throw closedError('client');
    return this._h.ptr;
  }

  /** Free the client and close its idle connections (open streams keep working). */
  close() {
    clientRegistry.unregister(this);
    freeClient(this._h);
  }
}

/** A query builder; setters return the query so calls chain. Nothing is sent before
 * `stream()`, which can be called any number of times. */
/** Operators of `Query#where` (the fw_op values of the C header). */
const OPS = Object.freeze({
  eq: 0, ne: 1, lt: 2, le: 3, gt: 4, ge: 5, in: 6, not_in: 7, like: 8, ilike: 9,
  starts_with: 10, ends_with: 11, contains_text: 12, icontains_text: 13, exists: 14,
  not_exists: 15, json_contains: 16, array_overlaps: 17, array_length_eq: 18,
  array_length_gt: 19, array_length_lt: 20, matches: 21,
});
const ORDER_KINDS = Object.freeze({ text: 0, numeric: 1 });

// A JS value as JSON text: JSON.stringify's encoding, with bigints as their exact number and
// what JSON.stringify would turn silently into null or drop (NaN, undefined) refused.
function toJson(v) {
  const bad = (why) => new InvalidArgumentError(-1, `where: ${String(v)} cannot be sent as JSON: ${why}`);
  switch (typeof v) {
    case 'bigint': return v.toString();
    case 'number':
      if (!Number.isFinite(v)) throw bad('not a finite number');
      return JSON.stringify(v);
    case 'string': case 'boolean': return JSON.stringify(v);
    case 'object':
      if (v === null) return 'null';
      if (typeof v.toJSON === 'function') return toJson(v.toJSON());
      if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
      return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${toJson(v[k])}`).join(',')}}`;
    default: throw bad(`a ${typeof v}`);
  }
}

// A whereParams value as the text sent in Bind (null: SQL NULL).
function paramText(v) {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'string': return v;
    case 'boolean': case 'bigint': return String(v);
    case 'number': return Number.isFinite(v) || Number.isNaN(v) ? String(v) : (v > 0 ? 'Infinity' : '-Infinity');
    case 'object':
      if (v instanceof Date) return v.toISOString();
      return toJson(v);
    default:
      throw new InvalidArgumentError(-1, `whereParams: cannot send a ${typeof v} as a parameter`);
  }
}

class Query {
  constructor(client, source) {
    this._client = client;
    this._source = source;
    this._ops = [];
  }

  /** Add a predicate (parenthesised, ANDed with the others).
   *
   * `where(sql)`: a trusted SQL predicate, the application's own text, never built from user
   * input (fw_query_where_sql).
   *
   * `where(jsonPointer, op, value)` or `where({ path, op, value })`: a typed predicate
   * evaluated by the server (fw_query_where): the value at the RFC 6901 pointer compared by
   * `op` (a name of `OPS`: 'eq', 'in', 'exists', ...) with `value`, a JS value (string,
   * number, bigint, boolean, null, array, plain object) encoded to JSON and sent as a bound
   * parameter. 'exists' and 'not_exists' take no value. Errors of the library (a value of
   * the wrong type for the operator) are thrown by `stream()`, as for every builder call. */
  where(sqlOrPath, op, value) {
    let path = sqlOrPath;
    let hasValue = arguments.length >= 3;
    if (sqlOrPath !== null && typeof sqlOrPath === 'object') {
      ({ path, op, value } = sqlOrPath);
      hasValue = 'value' in sqlOrPath;
    } else if (arguments.length === 1) {
      this._ops.push((q) => C.query_where_sql(q, sqlOrPath));
      return this;
    }
    const code = typeof op === 'string' ? OPS[op.toLowerCase()] : undefined;
    if (code === undefined) {
      throw new InvalidArgumentError(-1, `where: ${JSON.stringify(op)} is not an operator ` +
        `(one of ${Object.keys(OPS).join(', ')})`);
    }
    let json = null;
    if (hasValue) {
      json = toJson(value);
    } else if (code !== OPS.exists && code !== OPS.not_exists) {
      throw new InvalidArgumentError(-1, `where: operator '${op}' needs a value`);
    }
    this._ops.push((q) => C.query_where(q, path, code, json));
    return this;
  }

  /** Add a SQL predicate whose `$1..$n` are bound to `values` (fw_query_where_params): each
   * fragment numbers its own parameters. Values are sent as text: a string as is, booleans
   * as true/false, numbers and bigints as their decimal text, a Date as its ISO text, arrays
   * and objects as JSON, null/undefined as SQL NULL; the server infers each parameter's type
   * from the SQL around it. */
  whereParams(sqlPredicate, values = []) {
    if (!Array.isArray(values)) {
      throw new InvalidArgumentError(-1, 'whereParams: values must be an array');
    }
    const texts = values.map(paramText);
    this._ops.push((q) => C.query_where_params(q, sqlPredicate, texts.length, texts));
    return this;
  }

  /** Read the result as `partitions` disjoint parts over as many connections at once,
   * merged into one stream (fw_query_parallel; 1 is serial). A plain table is split by block
   * ranges; any other source (a view) needs `{ partitionBy }`, an integer SQL expression over
   * its columns such as its key. With orderBy the parts are merged in order (text keys need
   * `collation: 'C'`). See the library's docs/parallel.md. */
  parallel(partitions, { partitionBy = null } = {}) {
    const k = nonNegativeInteger(partitions, 'parallel', 0xffffffff);
    this._ops.push((q) => C.query_parallel(q, k));
    if (partitionBy !== null) this._ops.push((q) => C.query_partition_by(q, partitionBy));
    return this;
  }

  /** Add an ORDER BY term: a trusted SQL expression; options `{ desc, collation }`. */
  orderBy(sqlExpr, { desc = false, collation = null } = {}) {
    this._ops.push((q) => C.query_order_by(q, sqlExpr, collation, desc ? 1 : 0));
    return this;
  }

  /** Add an ORDER BY term on the value at a JSON pointer (fw_query_order_by_path); options
   * `{ kind: 'text' | 'numeric', collation, desc }` (text, the column's collation,
   * ascending by default). Rows without a value there sort as NULL (last ascending). */
  orderByPath(jsonPointer, { kind = 'text', collation = null, desc = false } = {}) {
    const k = ORDER_KINDS[kind];
    if (k === undefined) {
      throw new InvalidArgumentError(-1, `orderByPath: kind ${JSON.stringify(kind)} is not ` +
        "'text' or 'numeric'");
    }
    this._ops.push((q) => C.query_order_by_path(q, jsonPointer, k, collation, desc ? 1 : 0));
    return this;
  }

  limit(n) { this._ops.push((q) => C.query_limit(q, n)); return this; }

  offset(n) { this._ops.push((q) => C.query_offset(q, n)); return this; }

  chunkSize(rows) { this._ops.push((q) => C.query_chunk_size(q, rows)); return this; }

  adaptiveChunking(minRows = 16, maxRows = 1024) {
    this._ops.push((q) => C.query_adaptive(q, true, minRows, maxRows));
    return this;
  }

  maxMemory(bytes, warnRatio = 0.8, failRatio = 1.0) {
    this._ops.push((q) => C.query_max_memory(q, bytes, warnRatio, failRatio));
    return this;
  }

  /** How many bytes of chunks the reader queues ahead of a slower consumer before it stops
   * reading the socket (default 524288, at least 1). */
  readAhead(bytes) {
    const n = nonNegativeInteger(bytes, 'readAhead', Number.MAX_SAFE_INTEGER);
    this._ops.push((q) => C.query_read_ahead(q, n));
    return this;
  }

  /** The longest wait, in microseconds, before a socket read on a steady server-bound
   * stream, so that one read takes several packets (default 1000; 0 reads every packet at
   * once; at most 100000). */
  readCoalesce(microseconds) {
    const n = nonNegativeInteger(microseconds, 'readCoalesce', 0xffffffff);
    this._ops.push((q) => C.query_read_coalesce(q, n));
    return this;
  }

  /** How long `stream()` waits, in milliseconds, for the server's first answer before it
   * returns the stream anyway (default 20; null: as long as it takes; 0: no wait, one
   * look at what has arrived; at most 3600000). A query slower than that is returned undescribed: its
   * errors (a missing relation, a wrong result shape) then come from the iteration. */
  describeWait(ms) {
    const n = ms === null ? -1 : nonNegativeInteger(ms, 'describeWait', Number.MAX_SAFE_INTEGER);
    this._ops.push((q) => C.query_describe_wait(q, n));
    return this;
  }

  /** Execute the query (synchronously: returns once the server described the result, or
   * after the describe wait) and
   * return its Stream. Options: `batchSize` (rows per fetch, default 256), `maxBytes` (bytes
   * per fetch, default 1 MiB), `pollMs` (while rows flow, how long a consumer that caught up
   * with the server waits on a timer before a worker thread waits for rows; default 1, 0: at
   * once), `parse` (rows parsed with JSON.parse instead of JSON text),
   * `signal` (an AbortSignal that cancels the stream). Throws ServerError (e.g. sqlstate 42P01),
   * SchemaError, ... */
  stream({ batchSize = 256, signal = null, parse = false, maxBytes = 1 << 20, pollMs = 1 } = {}) {
    if (signal && signal.aborted) throw new CancelledError(-10, 'the signal was aborted');
    const out = [null];
    check(C.query_new(this._client._ptr(), this._source, out));
    const q = out[0];
    try {
      for (const op of this._ops) check(op(q));
      const so = [null];
      check(C.query_execute(q, so));
      return new Stream(so[0], batchSize, signal, parse, maxBytes, pollMs);
    } finally {
      C.query_free(q);
    }
  }
}

// ---------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------

const FETCH_SLICE_MS = 100; // a worker thread never waits longer than this per call
const END = Symbol('end of stream'); // what a row-at-a-time fetch gives after the last row

// The rows of one block handed out one at a time (`next()`, `for await`), each made into a
// string only when it is taken. Until then a row stays in the stream's re-encoded text (off
// the V8 heap), so a scavenge that comes mid-block finds no rows to copy: the young
// generation stays at its smallest size instead of growing (see docs/bindings.md, "Node's
// peak RSS"). Valid until the stream's next fetch, which always drains it first (`rest()`).
class BlockRows {
  constructor(text, ends, kinds, n) {
    this.text = text;
    this.ends = ends;
    this.kinds = kinds;
    this.length = n;
    this.i = 0;
    this.start = 0;
  }

  take() {
    const i = this.i++;
    const end = this.ends[2 * i];
    const row = this.kinds[i] === 1 ? this.text.latin1Slice(this.start, end) : this.text.ucs2Slice(this.start, end);
    this.start = end;
    return row;
  }

  rest() {
    const rows = new Array(this.length - this.i);
    for (let k = 0; k < rows.length; k++) rows[k] = this.take();
    return rows;
  }
}

// An array of rows (parsed rows, or rows cut by their offsets) behind the same interface.
class ArrayRows {
  constructor(rows) {
    this.rows = rows;
    this.length = rows.length;
    this.i = 0;
  }

  take() {
    const row = this.rows[this.i];
    this.rows[this.i++] = undefined; // handed out: the stream no longer holds it
    return row;
  }

  rest() {
    return this.i === 0 ? this.rows : this.rows.slice(this.i);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A running query's rows: `for await (const row of stream)` (rows are strings of JSON text,
 * or parsed values with `stream({ parse: true })`), `for await (const rows of
 * stream.batches())` (an array per call into the library: the fastest), or
 * `await stream.next()`. Breaking out of the loop closes the stream. While the stream is
 * paused and drained, iteration waits (without blocking the event loop) until it is resumed
 * or its pause timeout ends the pause.
 *
 * Rows ready in the library come from fw_stream_next_block called on the main thread without
 * waiting; only a wait runs on a koffi worker thread. Each block's rows are re-encoded by the
 * library (fw_block_transcode) and copied into JS strings on the main thread. */
class Stream {
  constructor(ptr, batchSize, signal, parse = false, maxBytes = 1 << 20, pollMs = 1) {
    const cap = Math.max(1, batchSize | 0);
    this._h = {
      ptr, cap, maxBytes: Math.max(0, maxBytes | 0), busy: false, freeWhenIdle: false, closed: false,
      block: koffi.alloc(Block, 1),
      // The current block's rows re-encoded by fw_block_transcode: the text, each row's end
      // and kind; grown to the largest block.
      text: Buffer.allocUnsafeSlow(1 << 17),
      ends: new Uint32Array(2 * 256),
      kinds: Buffer.allocUnsafeSlow(256),
    };
    live.stream++;
    streamRegistry.register(this, this._h, this);
    this._parse = parse;
    this._pollMs = Math.max(0, Number(pollMs) || 0);
    this._flowing = false;
    this._pending = null; // a BlockRows or ArrayRows with rows left, or null
    this._queued = 0;
    this._done = false;
    this._error = null;
    this._tail = Promise.resolve();
    if (signal) {
      const h = this._h;
      const onAbort = () => { if (h.ptr) C.cancel(h.ptr); };
      signal.addEventListener('abort', onAbort, { once: true });
      this._unlisten = () => signal.removeEventListener('abort', onAbort);
    }
  }

  // Closed by close() (the library's stream may still be freed later, once a fetch in
  // flight is back).
  _open() {
    return this._h.ptr !== null && !this._h.closed;
  }

  _ptr() {
    if (!this._open()) throw closedError('stream');
    return this._h.ptr;
  }

  // The rows of the block just filled. The library re-encodes them (fw_block_transcode)
  // into this stream's buffer: a row whose characters are all below U+0100 (ASCII, and most
  // Western European text) as Latin-1, any other as UTF-16; each row is then a latin1Slice
  // or ucs2Slice of the buffer, a copy into a V8 string, where decoding UTF-8 that is not
  // ASCII is V8's slowest string path (about 8x the time of these copies).
  //
  // `one`: the rows as a BlockRows (or ArrayRows) cursor, for one-at-a-time consumers; else
  // an array.
  _rowsOfBlock(one = false) {
    const h = this._h;
    const b = koffi.decode(h.block, Block);
    const n = Number(b.n);
    const len = Number(b.len);
    // The ends are size_t, read as their low 32 bits: little-endian, under 4 GiB.
    if (!LITTLE_ENDIAN || 2 * len > 0xffffffff) {
      const rows = this._parsed(this._rowsByOffsets(b, Buffer.from(koffi.view(b.data, len)), n));
      return one ? new ArrayRows(rows) : rows;
    }
    if (h.text.length < 2 * len) h.text = Buffer.allocUnsafeSlow(Math.max(2 * len, 2 * h.text.length));
    if (h.kinds.length < n) {
      const m = Math.max(n, 2 * h.kinds.length);
      h.kinds = Buffer.allocUnsafeSlow(m);
      h.ends = new Uint32Array(2 * m); // size_t entries, read as their low 32 bits
    }
    const text = h.text;
    const kinds = h.kinds;
    const ends = h.ends;
    check(C.block_transcode(h.block, text, text.length, ends, kinds));
    const rows = new BlockRows(text, ends, kinds, n);
    if (!one) return this._parsed(rows.rest());
    return this._parse ? new ArrayRows(this._parsed(rows.rest())) : rows;
  }

  // Parsed (`parse`): the block as one JSON array, in one JSON.parse (the rows are whole
  // JSON texts separated by commas); else the rows.
  _parsed(rows) {
    return this._parse ? JSON.parse(`[${rows.join(',')}]`) : rows;
  }

  _rowsByOffsets(b, bytes, n) {
    const off = Array.from(koffi.decode(b.offsets, 'size_t', n + 1), Number);
    const rows = new Array(n);
    for (let i = 0; i < n; i++) rows[i] = bytes.utf8Slice(off[i], off[i + 1] - 1);
    return rows;
  }

  // One fw_stream_next_block on this thread that does not wait (timeout 0): { status, rows }
  // or { error } when it produced something, null when nothing was ready.
  _fetchReady(one) {
    const h = this._h;
    const status = C.next_block(this._ptr(), h.block, h.cap, h.maxBytes, 0);
    if (status === TIMEOUT || status === WOULD_BLOCK) return null;
    if (status < 0) return { error: makeError(status, C.stream_error(h.ptr), true) };
    if (status !== OK) return { status, rows: null };
    try {
      return { status, rows: this._rowsOfBlock(one) };
    } catch (e) {
      return { error: e };
    }
  }

  // One fw_stream_next_block on a worker thread: { status, rows } or { error }.
  _fetch(one) {
    const h = this._h;
    const ptr = this._ptr();
    h.busy = true;
    return new Promise((resolve) => {
      C.next_block.async(ptr, h.block, h.cap, h.maxBytes, FETCH_SLICE_MS, (err, status) => {
        h.busy = false;
        if (err) {
          resolve({ error: err });
        } else if (status < 0) {
          // the stream's error lives on the stream (readable from this thread)
          resolve({ error: makeError(status, h.ptr ? C.stream_error(h.ptr) : null, false) });
        } else {
          let rows = null;
          if (status === OK) {
            try {
              rows = this._rowsOfBlock(one);
            } catch (e) {
              resolve({ error: e });
              if (h.freeWhenIdle) freeStream(h);
              return;
            }
          }
          resolve({ status, rows });
        }
        if (h.freeWhenIdle) freeStream(h);
      });
    });
  }

  // The next array of rows (null at the end); one caller at a time.
  _nextBatch() {
    return this._nextRows(false);
  }

  // The next rows (null at the end): an array, or with `one` a cursor (BlockRows or
  // ArrayRows). Rows still pending from next() or iteration come first, so a fetch never
  // overwrites a cursor's text. One caller at a time.
  async _nextRows(one) {
    if (!this._open()) throw closedError('stream');
    if (this._pending !== null) {
      const p = this._pending;
      this._pending = null;
      return one ? p : p.rest();
    }
    for (;;) {
      // Closed while this call waited (between two fetch slices, or during one): the wait
      // was cancelled, as when close() lands during a fetch.
      if (!this._open()) throw new CancelledError(-10, 'the stream was closed while waiting for rows');
      if (this._error) throw this._error;
      if (this._done) return null;
      // Rows that are ready come from a call on this thread that does not wait (no thread
      // hop: the common case while the library reads ahead of the consumer); only when there
      // are none does a call wait for them on a worker thread.
      let r = this._fetchReady(one);
      // While rows flow, the consumer that catches up with the server first waits one
      // timer tick (`pollMs`) on the event loop and tries again: one wake-up of this thread
      // instead of three thread switches of a worker call (to the worker, the library's
      // reader waking it, back to the loop), and the rows of that millisecond in one block.
      // Only when that finds nothing either does a worker wait.
      if (r === null && this._flowing && this._pollMs > 0) {
        await sleep(this._pollMs);
        if (!this._open()) continue; // closed meanwhile: the wait was cancelled (above)
        r = this._fetchReady(one);
      }
      this._flowing = r !== null;
      if (r === null) r = await this._fetch(one);
      if (r.error) {
        this._error = r.error;
        throw r.error;
      }
      if (r.status === OK && r.rows.length > 0) return r.rows;
      if (r.status === DONE) {
        this._done = true;
      } else if (r.status === PAUSED) {
        await sleep(5);
      } // TIMEOUT: fetch again
    }
  }

  /** The next row, or null at the end of the stream (with `parse`, a JSON null row is null
   * too: use iteration). Calls are served in order, one fetch at a time. */
  next() {
    if (this._queued === 0 && this._pending !== null && this._open()) return Promise.resolve(this._take());
    return this._queue((row) => (row === END ? null : row));
  }

  // The next pending row; the pending cursor is dropped once taken to its end.
  _take() {
    const p = this._pending;
    const row = p.take();
    if (p.i === p.length) this._pending = null;
    return row;
  }

  // A row-at-a-time call that waits: served after the calls before it.
  _queue(map) {
    this._queued++;
    const p = this._tail.then(() => this._nextSlow()).then(map).finally(() => { this._queued--; });
    this._tail = p.then(() => undefined, () => undefined);
    return p;
  }

  // The next row, or END.
  async _nextSlow() {
    if (this._pending !== null) return this._take();
    const rows = await this._nextRows(true);
    if (rows === null) return END;
    this._pending = rows;
    return this._take();
  }

  /** An async iterator over arrays of rows, one array per call into the library. Breaking
   * out of the loop closes the stream. */
  batches() {
    const self = this;
    let tail = this._tail;
    return {
      [Symbol.asyncIterator]() { return this; },
      next() {
        const p = tail.then(() => self._nextBatch()).then((rows) => {
          if (rows === null) {
            self.close();
            return { value: undefined, done: true };
          }
          return { value: rows, done: false };
        });
        tail = p.then(() => undefined, () => undefined);
        self._tail = tail;
        return p;
      },
      return() {
        self.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  [Symbol.asyncIterator]() {
    const self = this;
    const end = (row) => {
      if (row !== END) return { value: row, done: false };
      self.close();
      return { value: undefined, done: true };
    };
    return {
      next() {
        if (self._queued === 0 && self._pending !== null && self._open()) {
          return Promise.resolve({ value: self._take(), done: false });
        }
        return self._queue(end).catch((e) => {
          self.close();
          throw e;
        });
      },
      return() {
        self.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** Stop reading the socket (the server blocks); buffered rows can still be read. */
  pause(reason = null) {
    check(reason === null ? C.pause(this._ptr()) : C.pause_with_reason(this._ptr(), reason));
  }

  resume() { check(C.resume(this._ptr())); }

  /** A pause longer than `ms` milliseconds resumes by itself (0: no limit). */
  setPauseTimeout(ms) { check(C.set_pause_timeout(this._ptr(), ms)); }

  /** Cancel the query (never blocks); iteration then throws CancelledError. */
  cancel() { check(C.cancel(this._ptr())); }

  /** 'running', 'paused', 'completed', 'failed' or 'cancelled' ('closed' once closed). */
  get state() {
    if (!this._open()) return 'closed';
    return STATES[C.state(this._h.ptr)] || 'invalid';
  }

  /** A snapshot: `{ state, total_rows_received, total_rows_yielded, pause_count, ... }`
   * (numbers; the fw_stats field names). */
  stats() {
    const s = { struct_size: StatsStruct.size, state: 0 };
    for (const f of STATS_FIELDS) s[f] = 0;
    check(C.stats(this._ptr(), s));
    const out = { state: STATES[s.state] || 'invalid' };
    for (const f of STATS_FIELDS) out[f] = Number(s[f]);
    return out;
  }

  /** Free the stream (cancelling the query if it still runs). Idempotent. */
  close() {
    if (this._unlisten) {
      this._unlisten();
      this._unlisten = null;
    }
    this._pending = null;
    if (this._open()) {
      this._h.closed = true;
      streamRegistry.unregister(this);
      freeStream(this._h);
    }
  }
}

// ---------------------------------------------------------------------------
// module functions
// ---------------------------------------------------------------------------

/** The library version ('0.1.0'). */
function version() {
  return C.version();
}

/** The library's metrics in the Prometheus text format. */
function metricsDump() {
  const out = [null];
  const len = [0];
  check(C.metrics_dump(out, len));
  if (!out[0]) return '';
  try {
    return koffi.decode.string(out[0], Number(len[0]));
  } finally {
    C.string_free(out[0]);
  }
}

/** Cancel every live stream and stop the library's runtime (irreversible). */
function shutdown(timeoutMs = 5000) {
  check(C.shutdown(timeoutMs));
}

module.exports = {
  libraryPath, Client, Query, Stream, OPS, version, metricsDump, shutdown, liveHandles,
  FwError, InvalidArgumentError, NullPointerError, ConnectError, AuthError, TLSError,
  ServerError, ProtocolError, SchemaError, MemoryLimitError, CancelledError,
  ConnectionLostError, StateError, PanicError, ShutdownError,
};
