"""Stream v_user through the installed package (run from outside the repository)."""
import os
import sys

import fraiseql_wire as fw

where = sys.argv[1]  # a directory the library must have been loaded from
assert os.path.realpath(fw.library_path).startswith(os.path.realpath(where)), \
    "library from %s, expected under %s" % (fw.library_path, where)
assert os.path.realpath(fw.__file__).startswith(os.path.realpath(sys.prefix)), fw.__file__
# pip built the optional accelerator (a compiler and Python's headers are on this machine).
assert fw.accelerated, "the accelerator (fraiseql_wire._rows) was not installed"
with fw.Client("") as client:
    with client.query("v_user").stream(rows="json") as s:
        ns = [r["n"] for r in s]
    assert sorted(ns) == list(range(1, 1001)), len(ns)
    with client.query("v_user").stream() as s:
        texts = list(s)
    assert len(texts) == 1000 and all(isinstance(t, str) for t in texts), len(texts)
    try:
        client.query("v_missing").stream()
        raise AssertionError("no error for a missing view")
    except fw.ServerError as e:
        assert (e.status, e.code, e.sqlstate) == ("FW_E_SERVER", -6, "42P01"), e
print("python: %d rows, library %s" % (len(ns), fw.library_path))
