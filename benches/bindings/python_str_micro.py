#!/usr/bin/env python3
"""Ways to make Python str rows out of one block, per row, in CPU time (best of 3).

    python3 benches/bindings/python_str_micro.py

A block of 256 documents like the bindings benchmark's (the fake server's names and cities:
3 rows in 8 hold characters beyond U+00FF, the others Latin-1 letters), laid out as
fw_stream_next_block does (each row followed by a NUL), in a ctypes buffer:

    split+decode   what the binding does: one string_at, one bytes.split, map(bytes.decode)
    split bytes    the same without the decode (rows="bytes")
    block decode   one decode of the whole block, then str.split (a str kind wide enough for
                   every row, then narrowed again row by row)
    transcoded     the rows as fw_block_transcode would give them (Latin-1 or UTF-16LE),
                   decoded with map(bytes.decode, rows, encodings) (already cut: the floor)
    transcoded+cut the same cut from one buffer by the ends in a Python loop
"""
import ctypes
import itertools
import time

NAMES = ["Zoë Ångström", "José Núñez", "東京 太郎", "Ada Lovelace", "Søren Ålund", "Олег Петров",
         "Chloé Dubois", "Ali 🚀"]
CITIES = ["Zürich", "São Paulo", "Kraków", "Reykjavík", "Montréal"]


def doc(i):
    return ('{"id": %d, "uuid": "%032x", "name": "%s", "email": "user%d@example.com", "active": true, '
            '"role": "member", "score": 12.34, "visits": 77, "address": {"street": "%d Rue de la Paix", '
            '"city": "%s", "zip": "01234", "geo": {"lat": 1.5, "lng": -2.25}}, "tags": ["tag1", "grp2", '
            '"célèbre"], "prefs": {"theme": "dark", "lang": "fr-CH", "notify": false}, '
            '"created_at": "2024-01-02T12:34:56Z"}') % (i, i * 2654435761, NAMES[i % 8], i, i, CITIES[i % 5])


ROWS = [doc(i) for i in range(256)]
RAW = b"".join(r.encode() + b"\0" for r in ROWS)
BUF = ctypes.create_string_buffer(RAW, len(RAW))
ADDR = ctypes.addressof(BUF)
DEC = bytes.decode

PIECES, KINDS = [], []
for r in ROWS:
    try:
        PIECES.append(r.encode("latin-1"))
        KINDS.append(1)
    except UnicodeEncodeError:
        PIECES.append(r.encode("utf-16-le"))
        KINDS.append(2)
OUT = memoryview(b"".join(PIECES))
ENDS = list(itertools.accumulate(map(len, PIECES)))
CODEC = ("", "latin-1", "utf-16-le")
ENCS = [CODEC[k] for k in KINDS]


def split_decode():
    return list(map(DEC, ctypes.string_at(ADDR, len(RAW) - 1).split(b"\0")))


def split_bytes():
    return ctypes.string_at(ADDR, len(RAW) - 1).split(b"\0")


def block_decode():
    return ctypes.string_at(ADDR, len(RAW) - 1).decode().split("\0")


def transcoded():
    return list(map(DEC, PIECES, ENCS))


def transcoded_cut():
    start, rows = 0, []
    for end, k in zip(ENDS, KINDS):
        rows.append(str(OUT[start:end], CODEC[k]))
        start = end
    return rows


def per_row_us(f, n=2000):
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - t) / n / len(ROWS) * 1e6)
    return best


for name, f in [("split+decode", split_decode), ("split bytes", split_bytes),
                ("block decode", block_decode), ("transcoded", transcoded),
                ("transcoded+cut", transcoded_cut)]:
    got = f()
    assert [x if isinstance(x, str) else x.decode() for x in got] == ROWS, name
    print("%-15s %.3f us/row" % (name, per_row_us(f)))
