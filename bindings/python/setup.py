"""Only for the wheel with the library inside (`make python-wheel`): when
fraiseql_wire/libfraiseql_wire.so.* is present, the wheel is tagged for this platform
(py3-none-<platform>: the code is pure Python, the library is native). Without it the
package is pure (py3-none-any) and loads the installed library. Metadata: pyproject.toml."""

import os

from setuptools import setup
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = any(f.startswith("libfraiseql_wire.so")
              for f in os.listdir(os.path.join(HERE, "fraiseql_wire")))


class _Distribution(Distribution):
    def has_ext_modules(self):
        return BUNDLED


cmdclass = {}
if BUNDLED:
    from setuptools.command.bdist_wheel import bdist_wheel

    class _PlatformWheel(bdist_wheel):
        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    cmdclass["bdist_wheel"] = _PlatformWheel

setup(distclass=_Distribution, cmdclass=cmdclass)
