#!/usr/bin/python3
"""CuPy version of the benchmark peer: the same code as numpy_peer.py
(tests/python/xm_reference.py with xp = cupy). Exits 0 with a message where
cupy cannot be imported or finds no GPU."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import cupy
    cupy.cuda.runtime.getDeviceCount()
    cupy.zeros(1).sum()
except Exception as e:  # ImportError, CUDARuntimeError, ...
    print("cupy not available (%s: %s): CuPy peer skipped" % (type(e).__name__, e))
    sys.exit(0)

from numpy_peer import run_peer  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_peer(cupy, "cupy", sync=lambda: cupy.cuda.Device().synchronize()))
