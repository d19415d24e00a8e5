"""setuptools build of the xmargin package: pure Python (cffi ABI mode), plus
_paths.py recording the checkout it was built from, so that an installed
package finds <checkout>/build/libxmargin.so (xmargin/_lib.py)."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPy(build_py):
    def run(self):
        super().run()
        checkout = os.path.dirname(HERE)
        target = os.path.join(self.build_lib, "xmargin", "_paths.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write('"""Written by setup.py: the checkout this package was installed from."""\n')
            f.write("CHECKOUT = %r\n" % checkout)


setup(cmdclass={"build_py": BuildPy})
