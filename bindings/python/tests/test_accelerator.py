"""The optional accelerator (fraiseql_wire._rows): whether it is in use as test.sh says
(FW_PY_EXPECT_EXT), and the rows it makes from a block laid out as fw_block_t's."""

import ctypes
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fraiseql_wire as fw  # noqa: E402


def block(rows):
    """A block's buffers (rows back to back, each followed by a NUL; n + 1 offsets)."""
    data = b"".join(r + b"\0" for r in rows)
    offsets = [0]
    for r in rows:
        offsets.append(offsets[-1] + len(r) + 1)
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    offs = (ctypes.c_size_t * len(offsets))(*offsets)
    return buf, offs


class AcceleratorTest(unittest.TestCase):
    def test_in_use_as_expected(self):
        expect = os.environ.get("FW_PY_EXPECT_EXT")
        if expect is None:
            self.skipTest("FW_PY_EXPECT_EXT is not set (test.sh sets it)")
        self.assertEqual(fw.accelerated, expect == "1")

    def test_rows_as_str_and_bytes(self):
        try:
            from fraiseql_wire import _rows
        except ImportError:
            if os.environ.get("FW_PY_EXPECT_EXT") == "1":
                raise
            self.skipTest("the accelerator is not built")
        rows = ['{"a": 1}', "", '{"city": "Zürich", "name": "東京 太郎", "x": "🚀"}', "null"]
        raw = [r.encode("utf-8") for r in rows]
        buf, offs = block(raw)
        addr, oaddr = ctypes.addressof(buf), ctypes.addressof(offs)
        got = _rows.rows(addr, oaddr, len(rows), True)
        self.assertEqual(got, rows)
        self.assertEqual([len(r) for r in got], [len(r) for r in rows])  # characters
        self.assertEqual(_rows.rows(addr, oaddr, len(rows), False), raw)
        self.assertEqual(_rows.rows(0, 0, 0, True), [])
        # Not UTF-8: the error bytes.decode raises; bytes rows are still given as they are.
        buf, offs = block([b"ok", b"\xff\xfe"])
        with self.assertRaises(UnicodeDecodeError):
            _rows.rows(ctypes.addressof(buf), ctypes.addressof(offs), 2, True)
        self.assertEqual(_rows.rows(ctypes.addressof(buf), ctypes.addressof(offs), 2, False),
                         [b"ok", b"\xff\xfe"])
        # Offsets that do not increase, a block without its buffers: refused.
        bad = (ctypes.c_size_t * 3)(0, 3, 3)
        with self.assertRaises(ValueError):
            _rows.rows(ctypes.addressof(buf), ctypes.addressof(bad), 2, True)
        with self.assertRaises(ValueError):
            _rows.rows(0, 0, 1, True)


if __name__ == "__main__":
    unittest.main()
