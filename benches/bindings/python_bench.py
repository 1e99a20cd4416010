"""Python contenders of benches/bindings/run: stream SOURCE once, touch every row (its
length), print one RESULT line. Wall and CPU (time.process_time: every thread) from just
before the query is sent (after connecting) to the last row.

    python_bench.py MODE CONNINFO SOURCE

    fw        fraiseql_wire: for row in stream (str rows), with its compiled accelerator
    fw-bytes  fraiseql_wire: rows="bytes", with its accelerator
    fw-pure   fraiseql_wire: str rows, without the accelerator (FW_PY_NO_EXT=1: cut and
              decoded in Python)
    psycopg   psycopg 3: cursor.stream(sql) (single-row mode)
    psycopg-named   psycopg 3: a named (server-side) cursor, itersize 2000
"""
import sys
import time

mode, conninfo, source = sys.argv[1:4]
sql = "SELECT data FROM %s" % source


# The loop of every contender, in a function (its variables are locals, as in a user's
# function; at module level each would be a dict lookup and store per row).
def count(it):
    rows = chars = 0
    for row in it:
        rows += 1
        chars += len(row)
    return rows, chars


def count_tuples(it):  # psycopg's rows are tuples
    rows = chars = 0
    for (row,) in it:
        rows += 1
        chars += len(row)
    return rows, chars


if mode in ("fw", "fw-bytes", "fw-pure"):
    import os
    if mode == "fw-pure":
        os.environ["FW_PY_NO_EXT"] = "1"
    import fraiseql_wire as fw
    if fw.accelerated != (mode != "fw-pure"):
        sys.exit("python_bench: mode %s but fraiseql_wire.accelerated is %s" % (mode, fw.accelerated))
    client = fw.Client(conninfo)
    t0, c0 = time.perf_counter(), time.process_time()
    with client.query(source).stream(rows="bytes" if mode == "fw-bytes" else "str") as s:
        rows, chars = count(s)
elif mode in ("psycopg", "psycopg-named"):
    import psycopg
    conn = psycopg.connect(conninfo, autocommit=(mode == "psycopg"))
    # json/jsonb as text, as fraiseql_wire hands them (no parse in either).
    conn.adapters.register_loader("json", psycopg.types.string.TextLoader)
    conn.adapters.register_loader("jsonb", psycopg.types.string.TextLoader)
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "psycopg":
        cur = conn.cursor()
        rows, chars = count_tuples(cur.stream(sql))
    else:
        with conn.transaction():
            cur = conn.cursor(name="fw_bench")
            cur.itersize = 2000
            cur.execute(sql)
            rows, chars = count_tuples(cur)
            cur.close()
else:
    sys.exit("python_bench: unknown mode %s" % mode)

wall = time.perf_counter() - t0
cpu = time.process_time() - c0
print("RESULT rows=%d chars=%d wall_us=%d cpu_us=%d" % (rows, chars, wall * 1e6, cpu * 1e6))
