"""Tests of the Python binding against the throwaway PostgreSQL of scripts/with-pg
(PGHOST, PGPORT, PGDATABASE, PGUSER and FW_PG_* in the environment)."""

import ctypes
import gc
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fraiseql_wire as fw  # noqa: E402


def backends(client):
    """Client backends connected to the test database, counted through the library itself:
    v_user has n = 1..1000, so the number of rows with n <= count(*) is that count."""
    pred = ("(data->>'n')::int <= (SELECT count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND datname = current_database())")
    with client.stream("v_user", where=pred) as s:
        return sum(1 for _ in s)


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = fw.Client("")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_version(self):
        self.assertRegex(fw.version(), r"^\d+\.\d+\.\d+")

    def test_large_view_count_and_content(self):
        with self.client.query("v_user").stream() as s:
            rows = [json.loads(r) for r in s]
        self.assertEqual(len(rows), 1000)
        by_n = {r["n"]: r for r in rows}
        self.assertEqual(sorted(by_n), list(range(1, 1001)))
        for n in (1, 500, 1000):
            self.assertEqual(by_n[n]["email"], "user%d@example.com" % n)
            self.assertEqual(by_n[n]["neg"], -n)
            self.assertEqual(by_n[n]["unicode"], "Zoë 東京 🎉 ñ € 𝄞")

        with self.client.query("v_bench_10k").stream() as s:
            ids = [json.loads(r)["id"] for r in s]
        self.assertEqual(len(ids), 10000)
        self.assertEqual(sorted(ids), list(range(1, 10001)))

    def test_query_builder(self):
        q = (self.client.query("v_user").where("(data->>'n')::int > 10")
             .order_by("(data->>'n')::int", desc=True).limit(3).offset(1))
        with q:
            self.assertEqual([json.loads(r)["n"] for r in q.stream()], [999, 998, 997])
            # a query runs any number of times
            self.assertEqual(len(list(q.stream())), 3)
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.query("v_user; drop table t_guard")
        self.assertEqual(cm.exception.status, "FW_E_INVALID_ARGUMENT")

    def test_parallel(self):
        # A table split by block ranges: every row once.
        with self.client.stream("users", parallel=3) as s:
            ids = [json.loads(r)["id"] for r in s]
        self.assertEqual(sorted(ids), list(range(1, 1001)))
        # A view with a partition expression, merged in order with LIMIT/OFFSET.
        q = (self.client.query("v_user").parallel(2, partition_by="(data->>'id')::int")
             .order_by("(data->>'n')::int", desc=True).limit(3).offset(1))
        with q:
            self.assertEqual([json.loads(r)["n"] for r in q.stream()], [999, 998, 997])
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.stream("v_user", parallel=2)
        self.assertIn("fw_query_partition_by", str(cm.exception))

    def ids(self, q):
        """The "id" of each row of the query, in the order streamed."""
        with q:
            return [json.loads(r)["id"] for r in q.stream()]

    def hand(self, cond, source="v_filter"):
        """Ids of the rows matching a hand-written SQL condition (the expected set)."""
        return sorted(self.ids(self.client.query(source).where(cond)))

    def test_where_typed(self):
        from decimal import Decimal
        for src in ("v_filter", "v_filter_json"):
            q = lambda: self.client.query(src)  # noqa: E731
            cases = [
                (("/status", "eq", "active"), "data->>'status' = 'active'"),
                (("/address/city", "EQ", "Zürich"), "data->'address'->>'city' = 'Zürich'"),
                (("/score", "gt", 10), "(data->>'score')::numeric > 10"),
                (("/score", "le", 0.5), "(data->>'score')::numeric <= 0.5"),
                (("/score", "ge", Decimal("123456789012345678901234567890.123456789")),
                 "(data->>'score')::numeric >= 123456789012345678901234567890.123456789"),
                (("/score", "lt", 123456789012345678901234567890),
                 "(data->>'score')::numeric < 123456789012345678901234567890"),
                (("/status", "in", ["pending", "inactive"]),
                 "data->>'status' IN ('pending', 'inactive')"),
                (("/id", "not_in", (1, 2, 3)), "(data->>'id')::int NOT IN (1, 2, 3)"),
                (("/active", "eq", True), "(data->>'active')::boolean"),
                (("/email", "eq", None), "data->>'email' IS NULL"),
                (("/email", "exists"), "data::jsonb ? 'email'"),
                (("/email", "not_exists"), "NOT data::jsonb ? 'email'"),
                (("/tags", "json_contains", ["poet"]), "data::jsonb @> '{\"tags\": [\"poet\"]}'"),
                (("/name", "starts_with", "50%"), "data->>'name' LIKE '50\\%%'"),
            ]
            for (path, op, *value), cond in cases:
                with self.subTest(src=src, op=op, path=path):
                    want = self.hand(cond, src)
                    self.assertTrue(want, cond)
                    got = self.ids(q().where(path, op, *value))
                    self.assertEqual(sorted(got), want)
            # keyword and tuple forms
            want = self.hand("data->>'status' = 'active'", src)
            self.assertEqual(sorted(self.ids(q().where("/status", op="eq", value="active"))), want)
            self.assertEqual(sorted(self.ids(q().where(("/status", "eq", "active")))), want)
            self.assertEqual(sorted(self.ids(q().where(("/email", "not_exists")))),
                             self.hand("NOT data::jsonb ? 'email'", src))

    def test_order_by_path(self):
        got = self.ids(self.client.query("v_filter").order_by_path("/name", "text",
                       collation="C", desc=True).order_by("(data->>'id')::int"))
        want = self.ids(self.client.query("v_filter").order_by("data->>'name'", collation="C",
                        desc=True).order_by("(data->>'id')::int"))
        self.assertEqual(got, want)
        self.assertEqual(len(got), len(set(got)))
        got = self.ids(self.client.query("v_filter_json").order_by_path("/score", "numeric")
                       .order_by("(data->>'id')::int"))
        want = self.ids(self.client.query("v_filter_json").order_by("(data->>'score')::numeric")
                        .order_by("(data->>'id')::int"))
        self.assertEqual(got, want)
        self.assertEqual(got[:2], [3, 7])  # -3, then 0: numeric, not text, order
        with self.assertRaises(fw.InvalidArgumentError):
            self.client.query("v_filter").order_by_path("/score", "roman")
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.query("v_filter").order_by_path("/score", "numeric", collation="C")
        self.assertEqual(cm.exception.status, "FW_E_INVALID_ARGUMENT")

    def test_where_params(self):
        q = (self.client.query("v_filter").where_params("data->>'status' = $1", "inactive")
             .where_params("data->>'email' IS NOT DISTINCT FROM $1 AND (data->>'score')::numeric "
                           "<= $2", None, 0))
        want = self.hand("data->>'status' = 'inactive' AND data->>'email' IS NULL "
                         "AND (data->>'score')::numeric <= 0")
        self.assertEqual(want, [7])
        self.assertEqual(sorted(self.ids(q)), want)
        q = (self.client.query("v_filter").where_params("(data->>'score')::numeric > $1", 10)
             .where_params("data->>'active' = $1 OR $2::text IS NULL", False, "x"))
        self.assertEqual(sorted(self.ids(q)),
                         self.hand("(data->>'score')::numeric > 10 AND data->>'active' = 'false'"))

    def test_where_injection_stays_data(self):
        evil = "O'Brien $1 '); DROP TABLE t_guard; --"
        self.assertEqual(self.ids(self.client.query("v_filter").where("/name", "eq", evil)), [9])
        self.assertEqual(self.ids(self.client.query("v_filter")
                                  .where_params("data->>'name' = $1", evil)), [9])
        self.assertEqual(self.ids(self.client.query("v_filter")
                                  .where("/status", "eq", "x' OR '1'='1")), [])
        self.assertEqual(self.ids(self.client.query("v_filter")
                                  .where_params("data->>'status' = $1", "x' OR '1'='1")), [])
        # t_guard still exists
        self.assertEqual(len(self.ids(self.client.query("v_filter")
                                      .where("EXISTS (SELECT 1 FROM t_guard)"))),
                         len(self.hand("true")))

    def test_where_errors(self):
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.query("v_filter").where("/name", "like", 5)
        self.assertEqual(cm.exception.status, "FW_E_INVALID_ARGUMENT")
        self.assertIn("LIKE", cm.exception.message)
        self.assertIn("number", cm.exception.message)
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.query("v_filter").where("/name", "equals", "x")
        self.assertIn("'equals' is not an operator", str(cm.exception))
        with self.assertRaises(fw.InvalidArgumentError):
            self.client.query("v_filter").where("/name", "eq")
        with self.assertRaises(fw.InvalidArgumentError):
            self.client.query("v_filter").where("/score", "gt", float("nan"))
        with self.assertRaises(fw.InvalidArgumentError) as cm:
            self.client.query("v_filter").where_params("data->>'a' = $2", "x")
        self.assertEqual(cm.exception.status, "FW_E_INVALID_ARGUMENT")

    def test_missing_view_sqlstate(self):
        with self.assertRaises(fw.ServerError) as cm:
            self.client.query("v_does_not_exist").stream()
        e = cm.exception
        self.assertIsInstance(e, fw.Error)
        self.assertEqual(e.sqlstate, "42P01")
        self.assertEqual(e.code, -6)
        self.assertIn("v_does_not_exist", e.message)

    def test_error_after_rows(self):
        got = []
        with self.client.query("v_div_zero_after").stream() as s:
            with self.assertRaises(fw.ServerError) as cm:
                for r in s:
                    got.append(json.loads(r)["i"])
            self.assertEqual(s.state, "failed")
        self.assertEqual(got, list(range(1, 51)))
        self.assertEqual(cm.exception.sqlstate, "22012")

    def test_rows_as_str_bytes_and_json(self):
        with self.client.query("v_user").order_by("(data->>'n')::int") as q:
            texts = list(q.stream())
            raw = list(q.stream(rows="bytes"))
            parsed = list(q.stream(rows="json"))
        self.assertEqual(len(texts), 1000)
        self.assertTrue(all(isinstance(r, str) for r in texts))
        self.assertTrue(all(isinstance(r, bytes) for r in raw))
        self.assertEqual([r.encode("utf-8") for r in texts], raw)
        self.assertEqual([json.loads(r) for r in texts], parsed)
        self.assertEqual([p["n"] for p in parsed], list(range(1, 1001)))
        # len(str) counts characters, len(bytes) UTF-8 bytes: the unicode field differs
        self.assertLess(len(texts[0]), len(raw[0]))
        # str rows are held as bytes until handed out: next_row, batches() and iteration
        # mixed on one stream hand out every row once, in order, as str
        with self.client.query("v_user").order_by("(data->>'n')::int") as q:
            with q.stream(batch_size=64) as s:
                mixed = [s.next_row(), s.next_row()]
                mixed += next(iter(s.batches()))
                mixed.append(s.next_row())
                mixed += list(s)
        self.assertTrue(all(isinstance(r, str) for r in mixed))
        self.assertEqual(mixed, texts)
        # SQL NULL is the JSON null: None when parsed
        with self.client.query("v_null") as q:
            self.assertEqual(list(q.stream(rows="json")), [{"i": 1}, None, {"i": 3}])
            self.assertEqual(list(q.stream(rows="bytes")), [b'{"i": 1}', b"null", b'{"i": 3}'])
            with q.stream(rows="json") as s:
                end = object()
                self.assertEqual(s.next_row(), {"i": 1})
                self.assertIsNone(s.next_row(default=end))
                self.assertEqual(s.next_row(default=end), {"i": 3})
                self.assertIs(s.next_row(default=end), end)
            with self.assertRaises(fw.InvalidArgumentError):
                q.stream(rows="yaml")
        self.assertIn(fw.json_module, ("json", "orjson"))

    def test_batches(self):
        with self.client.query("v_user") as q:
            with q.stream(batch_size=64) as s:
                first = s.next_row()
                sizes = [len(b) for b in s.batches()]
        self.assertTrue(first)
        self.assertEqual(sum(sizes) + 1, 1000)
        self.assertTrue(all(1 <= n <= 64 for n in sizes), sizes)
        self.assertGreater(len(sizes), 1000 // 64 - 1)
        # a byte limit below one row: one row per batch
        with self.client.query("v_user").limit(10) as q:
            with q.stream(max_bytes=1) as s:
                self.assertEqual([len(b) for b in s.batches()], [1] * 10)

    def test_block_split_and_offsets(self):
        # A block as fw_stream_next_block lays it out, with a NUL inside row 1 (JSON text
        # from PostgreSQL never has one): the split finds 4 pieces for 3 rows, so the rows
        # are cut by the offsets instead.
        from fraiseql_wire import _native
        for data, want in ((b'{"a":1}\0"x\0y"\0[]\0', ['{"a":1}', '"x\0y"', "[]"]),
                           (b'{"a":1}\0""\0[]\0', ['{"a":1}', '""', "[]"])):
            buf = ctypes.create_string_buffer(data, len(data))
            ends = [i + 1 for i, c in enumerate(data) if c == 0]
            if len(ends) == 4:
                del ends[1]
            offs = (ctypes.c_size_t * 4)(0, *ends)
            b = _native.Block(ctypes.cast(buf, ctypes.c_void_p), len(data),
                              ctypes.cast(offs, ctypes.POINTER(ctypes.c_size_t)), 3)
            self.assertEqual(fw._rows_str(b), want)
            self.assertEqual(fw._rows_bytes(b), [w.encode() for w in want])
        b = _native.Block(ctypes.cast(buf, ctypes.c_void_p), len(data),
                          ctypes.cast(offs, ctypes.POINTER(ctypes.c_size_t)), 3)
        self.assertEqual(fw._rows_json(b), [{"a": 1}, "", []])
        # a raw NUL in a JSON string is not JSON: the row's own parse says so
        data = b'{"a":1}\0"x\0y"\0[]\0'
        buf = ctypes.create_string_buffer(data, len(data))
        offs = (ctypes.c_size_t * 4)(0, 8, 14, 17)
        b = _native.Block(ctypes.cast(buf, ctypes.c_void_p), len(data),
                          ctypes.cast(offs, ctypes.POINTER(ctypes.c_size_t)), 3)
        with self.assertRaises(ValueError):
            fw._rows_json(b)

    def test_error_fields(self):
        with self.assertRaises(fw.ServerError) as cm:
            self.client.query("v_user").where("(data->>'n')::int = 'x'").stream()
        e = cm.exception
        self.assertEqual((e.status, e.code, e.sqlstate), ("FW_E_SERVER", -6, "22P02"))
        self.assertIn("invalid input syntax", e.message)
        self.assertTrue(str(e).startswith("FW_E_SERVER: "))
        for field in ("detail", "hint", "position"):
            self.assertTrue(hasattr(e, field))
        self.assertIsNotNone(e.position)

    def test_schema_error(self):
        with self.assertRaises(fw.SchemaError):
            self.client.query("v_not_json").stream()

    def test_describe_wait(self):
        # v_slow_not_json describes itself after 0.5 s: past the default 0.02 s the
        # wrong shape is raised by the iteration; waiting longer (2 s, or without
        # limit), by stream() itself
        with self.client.query("v_slow_not_json") as q:
            with q.stream() as s:
                with self.assertRaises(fw.SchemaError):
                    list(s)
            for wait in (2, None):
                with self.assertRaises(fw.SchemaError, msg=repr(wait)):
                    q.describe_wait(wait).stream()
        # wait 0: stream() does not wait, so the missing relation is raised by the
        # iteration, unless the answer was already there when stream() looked once
        with self.client.query("v_does_not_exist").describe_wait(0) as q:
            with self.assertRaises(fw.ServerError) as cm:
                with q.stream() as s:
                    self.assertEqual(list(s), [])
        self.assertEqual(cm.exception.sqlstate, "42P01")
        # the client goes on
        with self.client.query("v_user").limit(5).describe_wait(3600) as q:
            with q.stream() as s:
                self.assertEqual(len(list(s)), 5)
            for bad in (3600.001, -1, -0.0004, float("nan"), float("inf"), True, "1"):
                with self.assertRaises(fw.InvalidArgumentError, msg=repr(bad)):
                    q.describe_wait(bad)

    def test_read_ahead_and_coalesce(self):
        for coalesce in (0, 0.1):
            with (self.client.query("v_user").order_by("(data->>'n')::int").read_ahead(1)
                  .read_coalesce(coalesce).chunk_size(1)) as q:
                with q.stream() as s:
                    ns = [json.loads(r)["n"] for r in s]
            self.assertEqual(ns, list(range(1, 1001)), coalesce)
        with self.client.query("v_user") as q:
            for bad in (lambda: q.read_ahead(0), lambda: q.read_ahead(-1),
                        lambda: q.read_coalesce(0.100001), lambda: q.read_coalesce(-0.000001),
                        lambda: q.read_coalesce(-4e-7), lambda: q.read_coalesce(float("nan"))):
                with self.assertRaises(fw.InvalidArgumentError):
                    bad()

    def test_auth(self):
        port = os.environ["FW_PG_PORT"]
        base = "host=127.0.0.1 port=%s dbname=fraiseql_test user=fw_scram" % port
        with self.assertRaises(fw.AuthError) as cm:
            fw.Client(base + " password=wrong")
        self.assertIsInstance(cm.exception, fw.ConnectError)
        self.assertEqual(cm.exception.sqlstate, "28P01")
        self.assertNotIn("wrong", str(cm.exception))
        with fw.Client(base + " password=scram-secret") as c:
            with c.stream("v_user", limit=5) as s:
                self.assertEqual(len(list(s)), 5)

    def test_cancel_mid_stream(self):
        # v_sleep30 sends its only row after 30 s: cancel from another thread.
        s = self.client.query("v_sleep30").stream()
        t0 = time.monotonic()
        timer = threading.Timer(0.3, s.cancel)
        timer.start()
        try:
            with self.assertRaises(fw.CancelledError):
                for _ in s:
                    pass
        finally:
            timer.join()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(s.state, "cancelled")
        s.close()

        # v_slow: a few rows, then cancel from the consuming thread.
        with self.client.query("v_slow").stream() as s:
            self.assertEqual(json.loads(next(s))["i"], 1)
            s.cancel()
            t0 = time.monotonic()
            with self.assertRaises(fw.CancelledError):
                next(s)
            self.assertLess(time.monotonic() - t0, 1)
        # the client is still usable
        self.assertEqual(len(list(self.client.stream("v_user", limit=2))), 2)

    def test_close_from_another_thread(self):
        # closing wakes the consumer waiting in the library, then frees the stream
        s = self.client.query("v_sleep30").stream()
        timer = threading.Timer(0.2, s.close)
        timer.start()
        t0 = time.monotonic()
        try:
            with self.assertRaises(fw.CancelledError):
                next(s)
        finally:
            timer.join()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertTrue(s.closed)
        with self.assertRaises(fw.StateError):
            next(s)

    def test_pause_resume(self):
        q = self.client.query("v_user").chunk_size(16)
        with q, q.stream(batch_size=8) as s:
            first = next(s)
            s.pause("test")
            s.pause()  # idempotent
            self.assertEqual(s.state, "paused")
            timer = threading.Timer(0.3, s.resume)
            timer.start()
            t0 = time.monotonic()
            rest = list(s)  # buffered rows, then waits for the resume
            timer.join()
            self.assertGreaterEqual(time.monotonic() - t0, 0.2)
            st = s.stats()
            self.assertEqual(len(rest) + 1, 1000)
            self.assertEqual(st.pause_count, 1)
            self.assertGreater(st.paused_ms_total, 100)
            self.assertEqual(st.state, "completed")
            with self.assertRaises(fw.StateError):
                s.pause()
        self.assertTrue(first.startswith("{"))

    def test_stats(self):
        with self.client.query("v_user").stream() as s:
            st0 = s.stats()
            self.assertIn(st0.state, ("running", "completed"))
            self.assertEqual(st0.total_rows_yielded, 0)
            n = sum(1 for _ in s)
            st = s.stats()
        self.assertEqual(n, 1000)
        self.assertEqual(st.state, "completed")
        self.assertEqual(st.total_rows_received, 1000)
        self.assertEqual(st.total_rows_yielded, 1000)
        self.assertEqual(st.total_rows_filtered, 0)
        self.assertGreater(st.total_bytes_received, 1000 * 100)
        self.assertGreater(st.elapsed_us, 0)
        self.assertGreater(st.memory_limit, 0)
        self.assertEqual(st.items_buffered, 0)

    def test_threads_run_while_waiting(self):
        # ctypes releases the GIL during foreign calls: a thread keeps counting
        # while the main thread waits on v_slow (~2 s for 20 rows).
        count = [0]
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                count[0] += 1
                time.sleep(0.001)

        t = threading.Thread(target=tick)
        t.start()
        try:
            with self.client.query("v_slow").stream() as s:
                self.assertEqual(sum(1 for _ in s), 20)
        finally:
            stop.set()
            t.join()
        self.assertGreater(count[0], 200)

    def test_metrics_dump(self):
        with self.client.stream("v_user", limit=1) as s:
            list(s)
        text = fw.metrics_dump()
        self.assertIn("fraiseql_queries_total", text)
        self.assertIn('entity="v_user"', text)

    def test_closed_handles(self):
        c = fw.Client("")
        s = c.query("v_user").stream()
        c.close()
        c.close()
        self.assertEqual(len(list(s)), 1000)  # streams outlive their client
        s.close()
        s.close()
        with self.assertRaises(fw.StateError):
            s.stats()
        with self.assertRaises(fw.StateError):
            c.query("v_user")

    def test_gc_frees_everything(self):
        gc.collect()
        base = fw.live_handles()
        before = backends(self.client)
        for _ in range(60):
            c = fw.Client("")
            q = c.query("v_bench_10k")
            s = q.stream()
            next(s)
            del c, q, s  # never closed: the finalizers free them
        gc.collect()
        self.assertEqual(fw.live_handles(), base)
        # the server side: dropped streams were cancelled and their connections closed
        deadline = time.monotonic() + 10
        while True:
            now = backends(self.client)
            if now <= before + 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertLessEqual(now, before + 2)


if __name__ == "__main__":
    unittest.main()
