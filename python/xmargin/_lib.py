"""Loading libxmargin through cffi in ABI mode (no compiler needed to install).

The declarations are _cdef.h, a transcription of the public header
host/include/xmargin.h; the library is found, in order, at
  1. $XMARGIN_LIBRARY (a path to the shared library),
  2. next to this package (libxmargin.so copied beside it),
  3. the build tree of the checkout the package was installed from
     (<checkout>/build/libxmargin.so; _paths.py records the checkout),
     or of the checkout this file lies in (an uninstalled python/),
  4. an installed prefix: pkg-config's libdir of `xmargin`, then the system
     loader (ldconfig's libxmargin.so).
"""

import ctypes.util
import os
import subprocess

from cffi import FFI

ffi = FFI()
_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "_cdef.h"), encoding="utf-8") as _f:
    _src = _f.read()
# cffi's parser takes no comments and no preprocessor lines
import re as _re

_src = _re.sub(r"/\*.*?\*/", "", _src, flags=_re.S)
ffi.cdef(_src)

_LIBNAME = "libxmargin.so"


def _checkouts():
    """The checkout folders to look in for build/libxmargin.so."""
    out = []
    try:
        from . import _paths  # written by setup.py at install time

        if getattr(_paths, "CHECKOUT", None):
            out.append(_paths.CHECKOUT)
    except ImportError:
        pass
    # python/xmargin/_lib.py in a checkout: the checkout is two levels up
    up = os.path.dirname(os.path.dirname(_HERE))
    if os.path.isfile(os.path.join(up, "host", "include", "xmargin.h")):
        out.append(up)
    return out


def candidates():
    """Where the library is looked for, in order: [(how, path)]."""
    c = []
    env = os.environ.get("XMARGIN_LIBRARY")
    if env:
        c.append(("$XMARGIN_LIBRARY", env))
        return c  # an explicit choice is the only one
    c.append(("next to the package", os.path.join(_HERE, _LIBNAME)))
    for root in _checkouts():
        c.append(("the build tree", os.path.join(root, "build", _LIBNAME)))
    try:
        p = subprocess.run(["pkg-config", "--variable=libdir", "xmargin"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=10)
        d = p.stdout.decode().strip()
        if p.returncode == 0 and d:
            c.append(("pkg-config", os.path.join(d, _LIBNAME)))
    except (OSError, subprocess.SubprocessError):
        pass
    found = ctypes.util.find_library("xmargin")
    if found:
        c.append(("the system loader", found))
    return c


def _load():
    # OpenMP threads that wait spin by default, which costs 10-40x on a small
    # run or a what-if when another process holds a core (bench/RESULTS.md);
    # the OpenMP runtime reads the policy when it loads, so it is set before the
    # library (and with it the runtime) is, unless the caller chose one. A
    # runtime some other module loaded first keeps its own.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    tried = []
    for how, path in candidates():
        if how not in ("the system loader",) and not os.path.isfile(path):
            tried.append("%s: %s (absent)" % (how, path))
            continue
        try:
            return ffi.dlopen(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (how, path, e))
    raise ImportError("xmargin: cannot find libxmargin.so; set XMARGIN_LIBRARY to its path. Tried:\n  "
                      + "\n  ".join(tried))


lib, path = _load()
