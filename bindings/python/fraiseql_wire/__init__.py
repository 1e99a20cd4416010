"""Python binding for fraiseql-wire (ctypes, standard library only).

    import fraiseql_wire as fw

    with fw.Client("") as client:                       # libpq conninfo; PG* env as defaults
        q = client.query("v_user").where("(data->>'active')::boolean").limit(10)
        with q.stream() as stream:
            for row in stream:                          # row: str (JSON text)
                print(row)

Rows are ``str`` by default; ``stream(rows="bytes")`` gives ``bytes`` and
``stream(rows="json")`` parsed values (orjson when it is installed, else json).

The shared library is found through, in order: $FW_LIB (a file), $FW_LIB_DIR (a
directory), a copy inside the package (the wheel of ``make python-wheel``), the
system's dynamic loader, then pkg-config (see ``fraiseql_wire._native``).

Blocking calls release the GIL (ctypes does so for every foreign call), so other
Python threads run while a stream waits for rows.
"""

import ctypes
import decimal
import itertools
import json
import math
import os
import threading
import time
from collections import namedtuple

__all__ = [
    "Client", "Query", "Stream", "Stats", "metrics_dump", "version", "shutdown",
    "live_handles", "OPS", "Error", "InvalidArgumentError", "NullPointerError",
    "ConnectError", "AuthError", "TLSError", "ServerError", "ProtocolError",
    "SchemaError", "MemoryLimitError", "CancelledError", "ConnectionLostError",
    "StateError", "PanicError", "ShutdownError",
]

# --------------------------------------------------------------------------
# status codes and states (values from include/fraiseql_wire.h)
# --------------------------------------------------------------------------

FW_OK = 0
FW_DONE = 1
FW_WOULD_BLOCK = 2
FW_TIMEOUT = 3
FW_PAUSED = 4
FW_STOPPED = 5

STATES = {
    -1: "invalid",
    0: "running",
    1: "paused",
    2: "completed",
    3: "failed",
    4: "cancelled",
}

# --------------------------------------------------------------------------
# exceptions
# --------------------------------------------------------------------------


class Error(Exception):
    """A failed library call.

    Attributes: ``code`` (the negative fw_status), ``status`` (its name, e.g.
    ``"FW_E_SERVER"``), ``message``, and for server errors ``sqlstate``,
    ``detail``, ``hint`` and ``position`` (None when absent).
    """

    def __init__(self, code, status, message, sqlstate=None, detail=None,
                 hint=None, position=None):
        self.code = code
        self.status = status
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint
        self.position = position
        text = "%s: %s" % (status, message)
        if sqlstate and sqlstate not in message:
            text += " (SQLSTATE %s)" % sqlstate
        super().__init__(text)


class InvalidArgumentError(Error, ValueError):
    """FW_E_INVALID_ARGUMENT: bad input from the caller."""


class NullPointerError(InvalidArgumentError):
    """FW_E_NULL: a required pointer was NULL (a closed handle)."""


class ConnectError(Error, ConnectionError):
    """FW_E_CONNECT: could not connect."""


class AuthError(ConnectError):
    """FW_E_AUTH: authentication failed."""


class TLSError(ConnectError):
    """FW_E_TLS: could not secure the connection."""


class ServerError(Error):
    """FW_E_SERVER: the server sent an ErrorResponse (see ``sqlstate``)."""


class ProtocolError(Error):
    """FW_E_PROTOCOL: the server broke the protocol."""


class SchemaError(Error):
    """FW_E_SCHEMA: the result is not one json/jsonb column named data."""


class MemoryLimitError(Error):
    """FW_E_MEMORY_LIMIT: the stream's hard memory limit was exceeded."""


class CancelledError(Error):
    """FW_E_CANCELLED: the stream was cancelled."""


class ConnectionLostError(Error, ConnectionError):
    """FW_E_IO: the connection broke (reset, EOF, timeout)."""


class StateError(Error):
    """FW_E_STATE: the call is not allowed in the stream's state."""


class PanicError(Error):
    """FW_E_PANIC: an internal bug was caught at the boundary."""


class ShutdownError(Error):
    """FW_E_SHUTDOWN: the library was shut down."""


_ERRORS = {
    -1: InvalidArgumentError,
    -2: NullPointerError,
    -3: ConnectError,
    -4: AuthError,
    -5: TLSError,
    -6: ServerError,
    -7: ProtocolError,
    -8: SchemaError,
    -9: MemoryLimitError,
    -10: CancelledError,
    -11: ConnectionLostError,
    -12: StateError,
    -13: PanicError,
    -14: ShutdownError,
}

from . import _native as _n

#: The path (or name) the library was loaded from.
library_path = _n.path

_client_new = _n.client_new
_client_free = _n.client_free
_last_error = _n.last_error
_error_code = _n.error_code
_error_message = _n.error_message
_error_sqlstate = _n.error_sqlstate
_error_detail = _n.error_detail
_error_hint = _n.error_hint
_error_position = _n.error_position
_query_new = _n.query_new
_query_execute = _n.query_execute
_query_free = _n.query_free
_Q = _n.QUERY
_version = _n.version
_shutdown = _n.shutdown
_string_free = _n.string_free
_status_str = _n.status_str
_metrics_dump = _n.metrics_dump
_stream_next_block = _n.stream_next_block
_stream_pause = _n.stream_pause
_stream_pause_with_reason = _n.stream_pause_with_reason
_stream_resume = _n.stream_resume
_stream_set_pause_timeout = _n.stream_set_pause_timeout
_stream_state = _n.stream_state
_stream_stats = _n.stream_stats
_stream_cancel = _n.stream_cancel
_stream_error = _n.stream_error
_stream_free = _n.stream_free
_STATS_FIELDS = _n.STATS_FIELDS
_Stats = _n.Stats
c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t

#: A snapshot of a stream (``state`` is a name such as ``"running"``).
Stats = namedtuple("Stats", ["state"] + _STATS_FIELDS)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_live_lock = threading.Lock()
_live = {"client": 0, "query": 0, "stream": 0}


def _count(kind, delta):
    with _live_lock:
        _live[kind] += delta


def live_handles():
    """Native handles currently alive, by kind: ``{"client": n, "query": n, "stream": n}``."""
    with _live_lock:
        return dict(_live)


def _s(b):
    return None if b is None else b.decode("utf-8", "replace")


def _enc(text, what):
    if not isinstance(text, str):
        raise TypeError("%s must be a str" % what)
    return text.encode("utf-8")


def _status_name(code):
    return _s(_status_str(code))


def _error(code, err=None):
    """An exception for a failed call, from the error object `err`, else the
    calling thread's last error (same thread: ctypes calls run on this thread)."""
    if not err or _error_code(err) != code:
        err = _last_error()
    cls = _ERRORS.get(code, Error)
    name = _status_name(code)
    if not err or _error_code(err) != code:
        return cls(code, name, name)
    return cls(code, name, _s(_error_message(err)) or name,
               sqlstate=_s(_error_sqlstate(err)), detail=_s(_error_detail(err)),
               hint=_s(_error_hint(err)), position=_s(_error_position(err)))


def _seconds_to_us(seconds, what):
    """A non-negative finite number of seconds as whole microseconds (rounded), else
    InvalidArgumentError."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                   "%s: %r is not a number of seconds >= 0" % (what, seconds))
    return round(seconds * 1_000_000)


def _unsigned(n, what, bits):
    """`n` as an int in [0, 2**bits), else InvalidArgumentError (ctypes would wrap it)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << bits:
        raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                   "%s: %r is out of range" % (what, n))
    return n


def _check(code):
    if code < 0:
        raise _error(code)
    return code


def version():
    """The library version string, e.g. ``"0.1.0"``."""
    return _s(_version())


def shutdown(timeout_ms=5000):
    """Cancel every live stream and stop the library's runtime (irreversible)."""
    _check(_shutdown(timeout_ms))


def metrics_dump():
    """The library's metrics in the Prometheus text format (a str)."""
    out = c_void_p()
    n = c_size_t()
    _check(_metrics_dump(ctypes.byref(out), ctypes.byref(n)))
    try:
        return ctypes.string_at(out.value, n.value).decode("utf-8") if out.value else ""
    finally:
        _string_free(out)


# --------------------------------------------------------------------------
# handles
# --------------------------------------------------------------------------


class _Handle:
    """A native pointer that is freed only once no call is using it: closing
    from one thread while another waits in the library is safe (``wake`` is
    called first to make the waiting call return)."""

    def __init__(self, ptr, kind, free, wake=None):
        self.ptr = ptr
        self._kind = kind
        self._free = free
        self._wake = wake
        self._cv = threading.Condition(threading.Lock())
        self._busy = 0
        _count(kind, 1)

    def acquire(self):
        with self._cv:
            if not self.ptr:
                raise StateError(-12, "FW_E_STATE", "the %s is closed" % self._kind)
            self._busy += 1
            return self.ptr

    def release(self):
        with self._cv:
            self._busy -= 1
            if not self._busy:
                self._cv.notify_all()

    def call(self, fn, *args):
        """``_check(fn(ptr, *args))`` with the pointer held."""
        p = self.acquire()
        try:
            return _check(fn(p, *args))
        finally:
            self.release()

    @property
    def closed(self):
        return not self.ptr

    def close(self):
        with self._cv:
            p, self.ptr = self.ptr, None
            if not p:
                return
            if self._busy and self._wake is not None:
                self._wake(p)
            while self._busy:
                self._cv.wait()
        self._free(p)
        _count(self._kind, -1)


class _Closeable:
    _h = None

    def close(self):
        """Free the native handle. Idempotent; safe from any thread."""
        if self._h is not None:
            self._h.close()

    @property
    def closed(self):
        return self._h is None or self._h.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class Client(_Closeable):
    """A thread-safe client: connection settings plus a connection pool.

    ``conninfo`` is a libpq connection string (URI or ``key=value``); the
    ``PG*`` environment variables fill in what it leaves out. Connects once to
    check the settings (raises ConnectError/AuthError/... on failure).
    ``close()`` frees it and closes its idle connections; open streams keep
    working.
    """

    def __init__(self, conninfo=""):
        out = c_void_p()
        _check(_client_new(_enc(conninfo, "conninfo"), ctypes.byref(out)))
        self._h = _Handle(out.value, "client", _client_free)

    def query(self, source):
        """A query over a view or table (``"v_user"`` or ``"schema.name"``)."""
        return Query(self, source)

    def stream(self, source, where=None, limit=None, parallel=None, partition_by=None):
        """Shortcut: ``client.query(source).where(where).limit(limit).stream()``;
        ``parallel=k`` (with ``partition_by=`` for a view) reads k parts at once (see
        :meth:`Query.parallel`)."""
        with Query(self, source) as q:
            if where is not None:
                q.where(where)
            if limit is not None:
                q.limit(limit)
            if parallel is not None:
                q.parallel(parallel, partition_by=partition_by)
            return q.stream()


_UNSET = object()

#: Operators of :meth:`Query.where`, by name (the ``fw_op`` values of the C header).
OPS = {
    "eq": 0, "ne": 1, "lt": 2, "le": 3, "gt": 4, "ge": 5, "in": 6, "not_in": 7,
    "like": 8, "ilike": 9, "starts_with": 10, "ends_with": 11, "contains_text": 12,
    "icontains_text": 13, "exists": 14, "not_exists": 15, "json_contains": 16,
    "array_overlaps": 17, "array_length_eq": 18, "array_length_gt": 19,
    "array_length_lt": 20, "matches": 21,
}
_OP_EXISTS = OPS["exists"]
_OP_NOT_EXISTS = OPS["not_exists"]
_ORDER_KINDS = {"text": 0, "numeric": 1}


def _op_code(op):
    code = OPS.get(op.lower()) if isinstance(op, str) else None
    if code is None:
        raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                   "where: %r is not an operator (one of %s)"
                                   % (op, ", ".join(OPS)))
    return code


def _bad_value(value, why):
    return InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                "where: %r cannot be sent as JSON: %s" % (value, why))


def _to_json(value):
    """A Python value as JSON text: the json module's encoding, with decimal.Decimal as its
    exact number (not a float)."""
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise _bad_value(value, "not a finite number")
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad_value(value, "object keys must be str")
            parts.append(json.dumps(k, ensure_ascii=False) + ":" + _to_json(v))
        return "{" + ",".join(parts) + "}"
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _bad_value(value, str(e)) from None


def _param_text(value):
    """A where_params value as the text sent in Bind."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        return _to_json(value)
    raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                               "where_params: cannot send a %s (%r) as a parameter"
                               % (type(value).__name__, value))


class Query(_Closeable):
    """A query builder; every setter returns the query so calls chain.
    A query may be streamed any number of times."""

    def __init__(self, client, source):
        self._client = client  # keeps the Python object alive too
        out = c_void_p()
        src = _enc(source, "source")
        client._h.call(lambda p: _query_new(p, src, ctypes.byref(out)))
        self._h = _Handle(out.value, "query", _query_free)

    def where(self, sql_or_path, op=_UNSET, value=_UNSET):
        """Add a predicate (parenthesised, ANDed with the others).

        ``where(sql)``: a trusted SQL predicate, the application's own text, never built
        from user input (``fw_query_where_sql``).

        ``where(json_pointer, op, value)`` (or ``op=..., value=...``, or one tuple
        ``where((json_pointer, op, value))``): a typed predicate
        evaluated by the server (``fw_query_where``): the value at the RFC 6901 pointer
        compared by ``op`` (a name of :data:`OPS`, e.g. ``"eq"``, ``"in"``, ``"exists"``)
        with ``value``, a Python value (str, int, float, decimal.Decimal, bool, None, list,
        tuple, dict) encoded to JSON and sent as a bound parameter. ``exists`` and
        ``not_exists`` take no value."""
        if op is _UNSET and isinstance(sql_or_path, tuple):
            return self.where(*sql_or_path)
        if op is _UNSET:
            if value is not _UNSET:
                raise TypeError("where(sql) takes no value; use where(path, op, value)")
            self._h.call(_Q["where_sql"], _enc(sql_or_path, "sql_predicate"))
            return self
        code = _op_code(op)
        if value is _UNSET:
            if code not in (_OP_EXISTS, _OP_NOT_EXISTS):
                raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                           "where: operator %r needs a value" % op)
            vjson = None
        else:
            vjson = _to_json(value).encode("utf-8")
        self._h.call(_Q["where_path"], _enc(sql_or_path, "json_pointer"), code, vjson)
        return self

    def where_params(self, sql_predicate, *values):
        """Add a SQL predicate whose ``$1..$n`` are bound to ``values``
        (``fw_query_where_params``): each fragment numbers its own parameters. Values are
        sent as text: str as is, bool as ``true``/``false``, numbers (int, float, Decimal)
        as their decimal text, list/tuple/dict as JSON, None as SQL NULL; the server infers
        each parameter's type from the SQL around it."""
        texts = [None if v is None else _param_text(v).encode("utf-8") for v in values]
        arr = (_n.c_char_p * len(texts))(*texts) if texts else None
        self._h.call(_Q["where_params"], _enc(sql_predicate, "sql_predicate"), len(texts), arr)
        return self

    def parallel(self, partitions, partition_by=None):
        """Read the result as ``partitions`` disjoint parts over as many connections at
        once, merged into one stream (``fw_query_parallel``; 1 is serial). A plain table is
        split by block ranges; any other source (a view) needs ``partition_by``, an integer
        SQL expression over its columns such as its key. With :meth:`order_by` the parts are
        merged in order (text keys need ``collation="C"``). See the library's
        docs/parallel.md."""
        self._h.call(_Q["parallel"], _unsigned(partitions, "parallel", 32))
        if partition_by is not None:
            self._h.call(_Q["partition_by"], _enc(partition_by, "partition_by"))
        return self

    def order_by(self, sql_expr, collation=None, desc=False):
        """Add an ORDER BY term (trusted SQL expression, optional collation)."""
        coll = None if collation is None else _enc(collation, "collation")
        self._h.call(_Q["order_by"], _enc(sql_expr, "sql_expr"), coll, 1 if desc else 0)
        return self

    def order_by_path(self, json_pointer, kind="text", collation=None, desc=False):
        """Add an ORDER BY term on the value at a JSON pointer (``fw_query_order_by_path``):
        ``kind`` ``"text"`` (optionally in ``collation``) or ``"numeric"``. Rows without a
        value there sort as NULL (last ascending)."""
        if kind not in _ORDER_KINDS:
            raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                       "order_by_path: kind %r is not one of %s"
                                       % (kind, ", ".join(_ORDER_KINDS)))
        coll = None if collation is None else _enc(collation, "collation")
        self._h.call(_Q["order_by_path"], _enc(json_pointer, "json_pointer"),
                     _ORDER_KINDS[kind], coll, 1 if desc else 0)
        return self

    def limit(self, n):
        self._h.call(_Q["limit"], n)
        return self

    def offset(self, n):
        self._h.call(_Q["offset"], n)
        return self

    def chunk_size(self, rows):
        self._h.call(_Q["chunk_size"], rows)
        return self

    def adaptive_chunking(self, on=True, min_rows=16, max_rows=1024):
        self._h.call(_Q["adaptive_chunking"], on, min_rows, max_rows)
        return self

    def max_memory(self, nbytes, warn_ratio=0.8, fail_ratio=1.0):
        self._h.call(_Q["max_memory"], nbytes, warn_ratio, fail_ratio)
        return self

    def read_ahead(self, nbytes):
        """How many bytes of chunks the reader queues ahead of a slower consumer
        before it stops reading the socket (default 512 KiB, at least 1)."""
        self._h.call(_Q["read_ahead"], _unsigned(nbytes, "read_ahead", 64))
        return self

    def read_coalesce(self, seconds):
        """The longest wait (seconds, precision 1 us) before a socket read on a
        steady server-bound stream, so that one read takes several packets
        (default 0.001; 0 reads every packet at once; at most 0.1)."""
        us = _unsigned(_seconds_to_us(seconds, "read_coalesce"), "read_coalesce", 32)
        self._h.call(_Q["read_coalesce"], us)
        return self

    def describe_wait(self, seconds):
        """How long :meth:`stream` waits (seconds) for the server's first answer
        before it returns the stream anyway (default 0.02; None: as long as it
        takes; 0: no wait, one look at what has arrived; at most 3600). A query slower than
        that is returned undescribed: its errors (a missing relation, a wrong
        result shape) are then raised by the iteration."""
        if seconds is None:
            ms = -1
        else:  # whole microseconds, then milliseconds rounded up
            ms = _unsigned(-(-_seconds_to_us(seconds, "describe_wait") // 1000), "describe_wait", 63)
        self._h.call(_Q["describe_wait"], ms)
        return self

    def stream(self, batch_size=256, rows="str", max_bytes=1 << 20):
        """Execute the query and return its Stream (raises on a missing relation,
        a wrong result shape or a connection failure).

        ``rows``: ``"str"`` (JSON text, the default), ``"bytes"`` (the UTF-8
        bytes as received) or ``"json"`` (parsed values: orjson when installed,
        else the standard json module). ``batch_size`` and ``max_bytes`` bound
        the rows fetched per call into the library."""
        if rows not in _ROW_KINDS:
            raise InvalidArgumentError(-1, "FW_E_INVALID_ARGUMENT",
                                       "rows: %r is not one of %s" % (rows, ", ".join(_ROW_KINDS)))
        out = c_void_p()
        self._h.call(lambda p: _query_execute(p, ctypes.byref(out)))
        return Stream(out.value, self._client, batch_size, rows, max_bytes)


try:
    import orjson as _orjson

    #: The JSON module used by ``rows="json"``.
    json_module = "orjson"
except ImportError:
    _orjson = None
    json_module = "json"


_decode = bytes.decode

try:
    if os.environ.get("FW_PY_NO_EXT"):
        raise ImportError("FW_PY_NO_EXT is set")
    from . import _rows as _ext
except ImportError:
    _ext = None

#: Whether rows are made by the compiled accelerator (``fraiseql_wire._rows``, built by
#: ``pip install`` where a C compiler and Python's headers are found; ``FW_PY_NO_EXT=1``
#: turns it off). Without it the same rows are cut and decoded in Python.
accelerated = _ext is not None


def _ext_rows(b, as_str):
    """A block's rows as str or bytes, made by the accelerator from the library's memory."""
    return _ext.rows(b.data or 0, ctypes.cast(b.offsets, ctypes.c_void_p).value or 0, b.n, as_str)


def _ext_rows_str(b):
    return _ext_rows(b, True)


def _ext_rows_bytes(b):
    return _ext_rows(b, False)


def _rows_str(b):
    """A block's rows as str: its rows as bytes (one copy of the block, one split), each
    decoded by a C-level map. Decoding row by row is faster than decoding the block at once:
    a row gets the narrowest str kind its own characters allow. (A stream of str rows keeps
    the bytes and decodes each row when it hands it out: see Stream.__iter__.)"""
    return _rows_decoded(_rows_bytes(b))


def _rows_decoded(rows):
    return list(map(_decode, rows))


def _rows_bytes(b):
    """A block's rows as bytes: one copy of the block, one split on NUL (rows never hold a
    NUL byte; if one did, cut by the offsets instead)."""
    n = b.n
    rows = _n.string_at(b.data, b.len - 1).split(b"\0")
    if len(rows) != n:
        raw = _n.string_at(b.data, b.len)
        off = b.offsets
        rows = [raw[off[i]:off[i + 1] - 1] for i in range(n)]
    return rows


def _rows_json(b):
    """Parsed rows: the block as one JSON array (NULs turned into commas) in a single
    parse when the only NULs are the n - 1 separators; else row by row."""
    n = b.n
    if _orjson is not None:
        raw = _n.string_at(b.data, b.len - 1)
        if raw.count(b"\0") == n - 1:
            return _orjson.loads(b"[" + raw.replace(b"\0", b",") + b"]")
        return [_orjson.loads(r) for r in _rows_bytes(b)]
    raw = _n.string_at(b.data, b.len - 1)
    if raw.count(b"\0") == n - 1:
        return json.loads(b"[" + raw.replace(b"\0", b",") + b"]")
    return [json.loads(r) for r in _rows_bytes(b)]


_END = object()
_ROW_KINDS = {"str": _rows_str, "bytes": _rows_bytes, "json": _rows_json}


class Stream(_Closeable):
    """A running query's rows. Iterate it (rows are ``str``, or ``bytes`` or parsed
    values as :meth:`Query.stream` says), take them a batch at a time with
    :meth:`batches`, or use :meth:`next_row`. A context manager: leaving the block
    frees the stream (cancelling the query if it still runs).

    Each call into the library returns one block of rows (``fw_stream_next_block``),
    copied out once; the rows are cut from that copy by one split. str rows stay bytes
    until they are handed out, then are decoded one by one (a row that is not UTF-8 raises
    UnicodeDecodeError when its turn comes; PostgreSQL sends UTF-8).

    One thread consumes a stream at a time; ``pause``, ``resume``, ``cancel``,
    ``state``, ``stats`` and ``close`` may be called from any thread (closing
    wakes a consumer waiting in the library, which then raises).

    Iterating a paused stream yields the rows already buffered, then waits
    until the stream is resumed (from another thread or by its pause timeout).
    """

    def __init__(self, ptr, client, batch_size=256, rows="str", max_bytes=1 << 20):
        self._h = _Handle(ptr, "stream", _stream_free, wake=_stream_cancel)
        self._client = client
        self._cap = max(1, int(batch_size))
        self._max_bytes = max(0, int(max_bytes))
        # str rows are kept as their UTF-8 bytes until handed out (see __iter__), unless the
        # accelerator makes them at once.
        self._convert = _rows_bytes if rows == "str" else _ROW_KINDS[rows]
        self._str = rows == "str"
        if _ext is not None and rows in ("str", "bytes"):
            self._convert = _ext_rows_str if rows == "str" else _ext_rows_bytes
            self._str = False
        self._block = _n.Block()
        self._block_ref = ctypes.byref(self._block)
        self._pending = []
        self._pos = 0
        self._done = False

    def _fetch(self, timeout_ms):
        """One block: (status, rows or None)."""
        p = self._h.acquire()
        try:
            st = _stream_next_block(p, self._block_ref, self._cap, self._max_bytes, timeout_ms)
            if st < 0:
                raise _error(st, _stream_error(p))
            rows = self._convert(self._block) if st == FW_OK else None
        finally:
            self._h.release()
        if st == FW_DONE:
            self._done = True
        return st, rows

    def _next_batch(self, deadline):
        """The next list of rows, or None at the end; waits while paused."""
        if self._pos < len(self._pending):
            rows = self._pending[self._pos:] if self._pos else self._pending
            self._pending, self._pos = [], 0
            return rows
        while not self._done:
            if deadline is None:
                wait = -1
            else:
                wait = max(0, int((deadline - time.monotonic()) * 1000))
            st, rows = self._fetch(wait)
            if rows is not None:
                return rows
            if st == FW_PAUSED:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("the stream is paused")
                time.sleep(0.005)
            elif st == FW_TIMEOUT:
                raise TimeoutError("no row in time")
        return None

    def _raw_batches(self):
        """The blocks' rows as fetched (UTF-8 bytes for str rows), one list per call."""
        while True:
            rows = self._next_batch(None)
            if rows is None:
                return
            yield rows

    def batches(self):
        """An iterator over lists of rows, one list per call into the library."""
        decode = self._str
        for rows in self._raw_batches():
            yield _rows_decoded(rows) if decode else rows

    def next_row(self, timeout=None, default=None):
        """The next row, or ``default`` at the end of the stream (pass a sentinel
        with ``rows="json"``, where a JSON null row is None). With a timeout
        (seconds), raises TimeoutError when no row came in time. Waits while the
        stream is paused and drained."""
        if self._pos < len(self._pending):
            row = self._pending[self._pos]
            self._pos += 1
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            rows = self._next_batch(deadline)
            if rows is None:
                return default
            self._pending, self._pos = rows, 1
            row = rows[0]
        return _decode(row) if self._str else row

    def __iter__(self):
        # The rows of each batch are handed out by C-level iterators (no Python call per
        # row); str rows are decoded one at a time as they are handed out, so that each
        # row's str is made, read and freed while its memory is still in the cache.
        rows = itertools.chain.from_iterable(self._raw_batches())
        return map(_decode, rows) if self._str else rows

    def __next__(self):
        row = self.next_row(default=_END)
        if row is _END:
            raise StopIteration
        return row

    def pause(self, reason=None):
        """Stop reading the socket (the server blocks); buffered rows stay readable."""
        if reason is None:
            self._h.call(_stream_pause)
        else:
            self._h.call(_stream_pause_with_reason, _enc(reason, "reason"))

    def resume(self):
        self._h.call(_stream_resume)

    def set_pause_timeout(self, seconds):
        """A pause longer than this resumes by itself (None or 0: no limit)."""
        ms = 0 if not seconds else max(1, int(seconds * 1000))
        self._h.call(_stream_set_pause_timeout, ms)

    def cancel(self):
        """Cancel the query; callable from any thread, never blocks. Iteration
        then raises CancelledError."""
        self._h.call(_stream_cancel)

    @property
    def state(self):
        """``"running"``, ``"paused"``, ``"completed"``, ``"failed"`` or ``"cancelled"``."""
        p = self._h.acquire()
        try:
            return STATES.get(_stream_state(p), "invalid")
        finally:
            self._h.release()

    def stats(self):
        """A :class:`Stats` snapshot (callable from any thread)."""
        s = _Stats()
        s.struct_size = ctypes.sizeof(_Stats)
        self._h.call(_stream_stats, ctypes.byref(s))
        return Stats(STATES.get(s.state, "invalid"), *(getattr(s, f) for f in _STATS_FIELDS))
