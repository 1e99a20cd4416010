"""Python binding for fraiseql-wire (ctypes, standard library only).

    import fraiseql_wire as fw

    with fw.Client("") as client:                       # libpq conninfo; PG* env as defaults
        q = client.query("v_user").where("(data->>'active')::boolean").limit(10)
        with q.stream() as stream:
            for row in stream:                          # row: str (JSON text)
                print(row)

The shared library is found through, in order: $FW_LIB (a file), $FW_LIB_DIR (a
directory), the repository's build tree (target/release), then the system's
library search path.

Blocking calls release the GIL (ctypes does so for every foreign call), so other
Python threads run while a stream waits for rows.
"""

import ctypes
import ctypes.util
import math
import os
import threading
import time
from collections import namedtuple

__all__ = [
    "Client", "Query", "Stream", "Stats", "metrics_dump", "version", "shutdown",
    "live_handles", "Error", "InvalidArgumentError", "NullPointerError",
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

# --------------------------------------------------------------------------
# loading the library
# --------------------------------------------------------------------------

_LIBNAME = "libfraiseql_wire.so"


def _candidates():
    if os.environ.get("FW_LIB"):
        yield os.environ["FW_LIB"]
        return
    if os.environ.get("FW_LIB_DIR"):
        yield os.path.join(os.environ["FW_LIB_DIR"], _LIBNAME)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    yield os.path.join(repo, "target", "release", _LIBNAME)
    found = ctypes.util.find_library("fraiseql_wire")
    if found:
        yield found
    yield _LIBNAME


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("cannot load %s (set FW_LIB or FW_LIB_DIR): %s"
                      % (_LIBNAME, "; ".join(errors)))


_lib = _load()

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_uint64 = ctypes.c_uint64
c_int64 = ctypes.c_int64
c_double = ctypes.c_double
c_bool = ctypes.c_bool


class _Row(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


_STATS_FIELDS = [
    "items_buffered", "bytes_buffered", "estimated_memory",
    "total_rows_received", "total_rows_yielded", "total_rows_filtered",
    "total_bytes_received", "current_chunk_size", "pause_count",
    "paused_ms_total", "time_to_first_row_us", "elapsed_us", "memory_limit",
    "peak_memory", "memory_warnings", "chunks_received", "pause_timeouts",
]


class _Stats(ctypes.Structure):
    _fields_ = ([("struct_size", c_size_t), ("state", c_int)]
                + [(name, c_uint64) for name in _STATS_FIELDS])


#: A snapshot of a stream (``state`` is a name such as ``"running"``).
Stats = namedtuple("Stats", ["state"] + _STATS_FIELDS)


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_client_new = _fn("fw_client_new", c_int, c_char_p, ctypes.POINTER(c_void_p))
_client_free = _fn("fw_client_free", None, c_void_p)
_last_error = _fn("fw_last_error", c_void_p)
_error_code = _fn("fw_error_code", c_int, c_void_p)
_error_message = _fn("fw_error_message", c_char_p, c_void_p)
_error_sqlstate = _fn("fw_error_sqlstate", c_char_p, c_void_p)
_error_detail = _fn("fw_error_detail", c_char_p, c_void_p)
_error_hint = _fn("fw_error_hint", c_char_p, c_void_p)
_error_position = _fn("fw_error_position", c_char_p, c_void_p)
_query_new = _fn("fw_query_new", c_int, c_void_p, c_char_p, ctypes.POINTER(c_void_p))
_query_where_sql = _fn("fw_query_where_sql", c_int, c_void_p, c_char_p)
_query_order_by = _fn("fw_query_order_by", c_int, c_void_p, c_char_p, c_char_p, c_int)
_query_limit = _fn("fw_query_limit", c_int, c_void_p, c_uint64)
_query_offset = _fn("fw_query_offset", c_int, c_void_p, c_uint64)
_query_chunk_size = _fn("fw_query_chunk_size", c_int, c_void_p, c_size_t)
_query_adaptive = _fn("fw_query_adaptive_chunking", c_int, c_void_p, c_bool, c_size_t, c_size_t)
_query_max_memory = _fn("fw_query_max_memory", c_int, c_void_p, c_size_t, c_double, c_double)
_query_read_ahead = _fn("fw_query_read_ahead", c_int, c_void_p, c_size_t)
_query_read_coalesce = _fn("fw_query_read_coalesce", c_int, c_void_p, ctypes.c_uint32)
_query_describe_wait = _fn("fw_query_describe_wait", c_int, c_void_p, ctypes.c_int64)
_query_execute = _fn("fw_query_execute", c_int, c_void_p, ctypes.POINTER(c_void_p))
_query_free = _fn("fw_query_free", None, c_void_p)
_version = _fn("fw_version", c_char_p)
_shutdown = _fn("fw_shutdown", c_int, c_uint64)
_string_free = _fn("fw_string_free", None, c_void_p)
_status_str = _fn("fw_status_str", c_char_p, c_int)
_stream_next_batch = _fn("fw_stream_next_batch", c_int, c_void_p, ctypes.POINTER(_Row),
                         c_size_t, ctypes.POINTER(c_size_t), c_int64)
_stream_pause = _fn("fw_stream_pause", c_int, c_void_p)
_stream_pause_with_reason = _fn("fw_stream_pause_with_reason", c_int, c_void_p, c_char_p)
_stream_resume = _fn("fw_stream_resume", c_int, c_void_p)
_stream_set_pause_timeout = _fn("fw_stream_set_pause_timeout", c_int, c_void_p, c_uint64)
_stream_state = _fn("fw_stream_state_snapshot", c_int, c_void_p)
_stream_stats = _fn("fw_stream_stats", c_int, c_void_p, ctypes.POINTER(_Stats))
_stream_cancel = _fn("fw_stream_cancel", c_int, c_void_p)
_stream_error = _fn("fw_stream_error", c_void_p, c_void_p)
_stream_free = _fn("fw_stream_free", None, c_void_p)
try:
    _metrics_dump = _fn("fw_metrics_dump", c_int, ctypes.POINTER(c_void_p),
                        ctypes.POINTER(c_size_t))
except AttributeError:  # a library built before the metrics dump existed
    _metrics_dump = None

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
    if _metrics_dump is None:
        raise NotImplementedError("this build of libfraiseql_wire has no fw_metrics_dump")
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

    def stream(self, source, where=None, limit=None):
        """Shortcut: ``client.query(source).where(where).limit(limit).stream()``."""
        with Query(self, source) as q:
            if where is not None:
                q.where(where)
            if limit is not None:
                q.limit(limit)
            return q.stream()


class Query(_Closeable):
    """A query builder; every setter returns the query so calls chain.
    A query may be streamed any number of times."""

    def __init__(self, client, source):
        self._client = client  # keeps the Python object alive too
        out = c_void_p()
        src = _enc(source, "source")
        client._h.call(lambda p: _query_new(p, src, ctypes.byref(out)))
        self._h = _Handle(out.value, "query", _query_free)

    def where(self, sql_predicate):
        """Add a trusted SQL predicate (parenthesised, ANDed with the others)."""
        self._h.call(_query_where_sql, _enc(sql_predicate, "sql_predicate"))
        return self

    def order_by(self, sql_expr, collation=None, desc=False):
        """Add an ORDER BY term (trusted SQL expression, optional collation)."""
        coll = None if collation is None else _enc(collation, "collation")
        self._h.call(_query_order_by, _enc(sql_expr, "sql_expr"), coll, 1 if desc else 0)
        return self

    def limit(self, n):
        self._h.call(_query_limit, n)
        return self

    def offset(self, n):
        self._h.call(_query_offset, n)
        return self

    def chunk_size(self, rows):
        self._h.call(_query_chunk_size, rows)
        return self

    def adaptive_chunking(self, on=True, min_rows=16, max_rows=1024):
        self._h.call(_query_adaptive, on, min_rows, max_rows)
        return self

    def max_memory(self, nbytes, warn_ratio=0.8, fail_ratio=1.0):
        self._h.call(_query_max_memory, nbytes, warn_ratio, fail_ratio)
        return self

    def read_ahead(self, nbytes):
        """How many bytes of chunks the reader queues ahead of a slower consumer
        before it stops reading the socket (default 512 KiB, at least 1)."""
        self._h.call(_query_read_ahead, _unsigned(nbytes, "read_ahead", 64))
        return self

    def read_coalesce(self, seconds):
        """The longest wait (seconds, precision 1 us) before a socket read on a
        steady server-bound stream, so that one read takes several packets
        (default 0.001; 0 reads every packet at once; at most 0.1)."""
        us = _unsigned(_seconds_to_us(seconds, "read_coalesce"), "read_coalesce", 32)
        self._h.call(_query_read_coalesce, us)
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
        self._h.call(_query_describe_wait, ms)
        return self

    def stream(self, batch_size=256):
        """Execute the query and return its Stream (raises on a missing relation,
        a wrong result shape or a connection failure)."""
        out = c_void_p()
        self._h.call(lambda p: _query_execute(p, ctypes.byref(out)))
        return Stream(out.value, self._client, batch_size)


class Stream(_Closeable):
    """A running query's rows. Iterate it (rows are ``str``), or use
    :meth:`next_row`. A context manager: leaving the block frees the stream
    (cancelling the query if it still runs). Rows are copied out of library
    memory before they are handed to Python.

    One thread consumes a stream at a time; ``pause``, ``resume``, ``cancel``,
    ``state``, ``stats`` and ``close`` may be called from any thread (closing
    wakes a consumer waiting in the library, which then raises).

    Iterating a paused stream yields the rows already buffered, then waits
    until the stream is resumed (from another thread or by its pause timeout).
    """

    def __init__(self, ptr, client, batch_size=256):
        self._h = _Handle(ptr, "stream", _stream_free, wake=_stream_cancel)
        self._client = client
        self._cap = max(1, int(batch_size))
        self._rows = (_Row * self._cap)()
        self._pending = []
        self._pos = 0
        self._done = False

    def _fill(self, timeout_ms):
        """Fetch the next batch; returns a status."""
        n = c_size_t()
        p = self._h.acquire()
        try:
            st = _stream_next_batch(p, self._rows, self._cap, ctypes.byref(n), timeout_ms)
            if st < 0:
                raise _error(st, _stream_error(p))
            if st == FW_OK:
                rows = self._rows
                self._pending = [ctypes.string_at(rows[i].data, rows[i].len).decode("utf-8")
                                 for i in range(n.value)]
                self._pos = 0
        finally:
            self._h.release()
        if st == FW_DONE:
            self._done = True
        return st

    def next_row(self, timeout=None):
        """The next row (str), or None at the end of the stream. With a timeout
        (seconds), raises TimeoutError when no row came in time. Waits while the
        stream is paused and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._pos < len(self._pending):
                row = self._pending[self._pos]
                self._pos += 1
                return row
            if self._done:
                return None
            if deadline is None:
                wait = -1
            else:
                wait = max(0, int((deadline - time.monotonic()) * 1000))
            st = self._fill(wait)
            if st == FW_PAUSED:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("the stream is paused")
                time.sleep(0.005)
            elif st == FW_TIMEOUT:
                raise TimeoutError("no row within %.3fs" % timeout)

    def __iter__(self):
        return self

    def __next__(self):
        row = self.next_row()
        if row is None:
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
