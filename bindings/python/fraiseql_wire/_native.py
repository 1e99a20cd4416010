"""Loading libfraiseql_wire and declaring its C functions (ctypes).

The library is looked up in this order (the same in the Ruby and Node bindings):

1. ``$FW_LIB``: the path of the library file;
2. ``$FW_LIB_DIR``: a directory holding ``libfraiseql_wire.so``;
3. a copy inside this package (the wheel ``make python-wheel`` builds);
4. the system's dynamic loader: ``libfraiseql_wire.so.<major>`` through
   ``LD_LIBRARY_PATH``, the ld.so cache (``make install`` into /usr/local, then
   ``ldconfig``) and the default directories;
5. pkg-config: ``libdir`` of ``fraiseql-wire.pc`` (``make install PREFIX=...`` with
   ``PKG_CONFIG_PATH`` pointing at ``$PREFIX/lib/pkgconfig``).
"""

import ctypes
import os
import subprocess

MAJOR = 0
LIBNAME = "libfraiseql_wire.so"
SONAME = "%s.%d" % (LIBNAME, MAJOR)


def _pkg_config_libdir():
    try:
        out = subprocess.run(["pkg-config", "--variable=libdir", "fraiseql-wire"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = out.stdout.strip()
    return libdir if out.returncode == 0 and libdir else None


def candidates():
    """(where, path-or-name) pairs in lookup order; the first is lazy for pkg-config."""
    if os.environ.get("FW_LIB"):
        return [("FW_LIB", os.environ["FW_LIB"])]
    if os.environ.get("FW_LIB_DIR"):
        return [("FW_LIB_DIR", os.path.join(os.environ["FW_LIB_DIR"], LIBNAME))]
    here = os.path.dirname(os.path.abspath(__file__))
    return [("package", os.path.join(here, SONAME)), ("system loader", SONAME),
            ("pkg-config", None)]


def load():
    errors = []
    for where, path in candidates():
        if where == "pkg-config":
            libdir = _pkg_config_libdir()
            if libdir is None:
                errors.append("pkg-config: no fraiseql-wire.pc found")
                continue
            path = os.path.join(libdir, SONAME)
        if os.path.sep in path and not os.path.exists(path):
            if where != "package":
                errors.append("%s: %s: no such file" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append("%s: %s" % (where, e))
    raise ImportError("cannot load %s (install it with `make install`, or set FW_LIB to its "
                      "path): %s" % (SONAME, "; ".join(errors)))


lib, path = load()

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_uint64 = ctypes.c_uint64
c_int64 = ctypes.c_int64
c_double = ctypes.c_double
c_bool = ctypes.c_bool
POINTER = ctypes.POINTER


class Block(ctypes.Structure):
    """fw_block: rows back to back, each followed by a NUL; n + 1 offsets."""
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("offsets", POINTER(c_size_t)),
                ("n", c_size_t)]


STATS_FIELDS = [
    "items_buffered", "bytes_buffered", "estimated_memory",
    "total_rows_received", "total_rows_yielded", "total_rows_filtered",
    "total_bytes_received", "current_chunk_size", "pause_count",
    "paused_ms_total", "time_to_first_row_us", "elapsed_us", "memory_limit",
    "peak_memory", "memory_warnings", "chunks_received", "pause_timeouts",
]


class Stats(ctypes.Structure):
    _fields_ = ([("struct_size", c_size_t), ("state", c_int)]
                + [(name, c_uint64) for name in STATS_FIELDS])


def fn(name, restype, *argtypes, optional=False):
    try:
        f = getattr(lib, name)
    except AttributeError:
        if optional:
            return None
        raise
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


client_new = fn("fw_client_new", c_int, c_char_p, POINTER(c_void_p))
client_free = fn("fw_client_free", None, c_void_p)
last_error = fn("fw_last_error", c_void_p)
error_code = fn("fw_error_code", c_int, c_void_p)
error_message = fn("fw_error_message", c_char_p, c_void_p)
error_sqlstate = fn("fw_error_sqlstate", c_char_p, c_void_p)
error_detail = fn("fw_error_detail", c_char_p, c_void_p)
error_hint = fn("fw_error_hint", c_char_p, c_void_p)
error_position = fn("fw_error_position", c_char_p, c_void_p)
version = fn("fw_version", c_char_p)
shutdown = fn("fw_shutdown", c_int, c_uint64)
string_free = fn("fw_string_free", None, c_void_p)
status_str = fn("fw_status_str", c_char_p, c_int)
metrics_dump = fn("fw_metrics_dump", c_int, POINTER(c_void_p), POINTER(c_size_t))

# Query builder calls: (name in the binding, C function, argument types after the query).
# A new builder call is one line here and one method on Query.
query_new = fn("fw_query_new", c_int, c_void_p, c_char_p, POINTER(c_void_p))
query_execute = fn("fw_query_execute", c_int, c_void_p, POINTER(c_void_p))
query_free = fn("fw_query_free", None, c_void_p)
QUERY = {
    "where_sql": fn("fw_query_where_sql", c_int, c_void_p, c_char_p),
    "order_by": fn("fw_query_order_by", c_int, c_void_p, c_char_p, c_char_p, c_int),
    "limit": fn("fw_query_limit", c_int, c_void_p, c_uint64),
    "offset": fn("fw_query_offset", c_int, c_void_p, c_uint64),
    "chunk_size": fn("fw_query_chunk_size", c_int, c_void_p, c_size_t),
    "adaptive_chunking": fn("fw_query_adaptive_chunking", c_int, c_void_p, c_bool, c_size_t,
                            c_size_t),
    "max_memory": fn("fw_query_max_memory", c_int, c_void_p, c_size_t, c_double, c_double),
    "read_ahead": fn("fw_query_read_ahead", c_int, c_void_p, c_size_t),
    "parallel": fn("fw_query_parallel", c_int, c_void_p, ctypes.c_uint),
    "partition_by": fn("fw_query_partition_by", c_int, c_void_p, c_char_p),
    "read_coalesce": fn("fw_query_read_coalesce", c_int, c_void_p, ctypes.c_uint32),
    "describe_wait": fn("fw_query_describe_wait", c_int, c_void_p, c_int64),
    "where_params": fn("fw_query_where_params", c_int, c_void_p, c_char_p, c_size_t,
                       POINTER(c_char_p)),
    "where_path": fn("fw_query_where", c_int, c_void_p, c_char_p, c_int, c_char_p),
    "order_by_path": fn("fw_query_order_by_path", c_int, c_void_p, c_char_p, c_int, c_char_p,
                        c_int),
}

stream_next_block = fn("fw_stream_next_block", c_int, c_void_p, POINTER(Block), c_size_t,
                       c_size_t, c_int64)
stream_pause = fn("fw_stream_pause", c_int, c_void_p)
stream_pause_with_reason = fn("fw_stream_pause_with_reason", c_int, c_void_p, c_char_p)
stream_resume = fn("fw_stream_resume", c_int, c_void_p)
stream_set_pause_timeout = fn("fw_stream_set_pause_timeout", c_int, c_void_p, c_uint64)
stream_state = fn("fw_stream_state_snapshot", c_int, c_void_p)
stream_stats = fn("fw_stream_stats", c_int, c_void_p, POINTER(Stats))
stream_cancel = fn("fw_stream_cancel", c_int, c_void_p)
stream_error = fn("fw_stream_error", c_void_p, c_void_p)
stream_free = fn("fw_stream_free", None, c_void_p)

string_at = ctypes.string_at
