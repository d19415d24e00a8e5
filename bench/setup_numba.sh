#!/usr/bin/env bash
# bench/setup_numba.sh: a virtual environment with Numba (from PyPI) for the
# Numba peer (bench/peer/numba_peer.py, issue 18). The system's numpy, scipy and
# h5py stay visible (--system-site-packages); pip adds numba and llvmlite.
#
#   bench/setup_numba.sh            makes /work/.venv-numba (or $XM_NUMBA_VENV)
# Then: PYTHON_NUMBA=/work/.venv-numba/bin/python bench/run_floor.sh
# (run_floor.sh looks there by default and skips the peer, saying so, without it).
set -euo pipefail
VENV=${XM_NUMBA_VENV:-/work/.venv-numba}
PY=${PYTHON:-/usr/bin/python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV"
fi
# numba imports coverage.types when coverage is importable: the system's (Debian 6.x)
# has none, so a newer one goes into the venv too.
"$VENV/bin/python" -m pip install --quiet numba "coverage>=7.4"
"$VENV/bin/python" -c 'import numba, numpy, h5py; print("numba", numba.__version__, "numpy", numpy.__version__, "in", "'"$VENV"'")'
