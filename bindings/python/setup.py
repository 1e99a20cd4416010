"""The optional accelerator and the wheel with the library inside. Metadata: pyproject.toml.

* ``fraiseql_wire._rows`` (fraiseql_wire/_rows.c) makes a block's rows into str or bytes in
  one call. It is optional: where it cannot be built (no C compiler or no Python headers) the
  package installs without it and cuts the rows in Python. ``FW_PY_NO_EXT=1`` skips it.
* ``make python-wheel``: when fraiseql_wire/libfraiseql_wire.so.* is present, the wheel is
  tagged for this platform (py3-none-<platform> without the accelerator; with it, for this
  Python, as any wheel with a compiled module). Without the library the package loads the
  installed one."""

import os

from setuptools import Extension, setup
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = any(f.startswith("libfraiseql_wire.so")
              for f in os.listdir(os.path.join(HERE, "fraiseql_wire")))
EXT = [] if os.environ.get("FW_PY_NO_EXT") else [
    Extension("fraiseql_wire._rows", sources=["fraiseql_wire/_rows.c"], optional=True)
]


class _Distribution(Distribution):
    def has_ext_modules(self):
        return BUNDLED or bool(EXT)


cmdclass = {}
if BUNDLED and not EXT:
    from setuptools.command.bdist_wheel import bdist_wheel

    class _PlatformWheel(bdist_wheel):
        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    cmdclass["bdist_wheel"] = _PlatformWheel

setup(distclass=_Distribution, cmdclass=cmdclass, ext_modules=EXT)
