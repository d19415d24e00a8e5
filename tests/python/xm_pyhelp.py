"""What the tests of the Python package (test_py_*.py) share: the package
from this checkout's python/ on sys.path, and the library of the build that
ctest runs ($XMARGIN's folder: XMARGIN_LIBRARY), so that each build tests its
own libxmargin.so.

A sanitizer build's library needs the ASan runtime loaded first: the script
then re-executes itself with LD_PRELOAD set to the compiler's libasan and
libubsan (leak detection off: CPython's own allocations are not the library's
leaks; the C tests check those)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("XM_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, HERE)
import xm_testlib as T  # noqa: E402

XMARGIN = T.xmargin_binary()


def library():
    env = os.environ.get("XMARGIN_LIBRARY")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(XMARGIN)), "libxmargin.so")


def _needed(lib):
    try:
        p = subprocess.run(["readelf", "-d", lib], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        return p.stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""


def _runtime(name):
    for cc in ("gcc", "clang"):
        try:
            p = subprocess.run([cc, "-print-file-name=" + name], stdout=subprocess.PIPE, timeout=30)
            f = p.stdout.decode().strip()
            if p.returncode == 0 and os.path.isabs(f) and os.path.exists(f):
                return f
        except OSError:
            continue
    return None


def _python_asan(opts):
    kept = [o for o in opts.split(":") if o and not o.startswith("detect_leaks=")]
    return ":".join(["detect_leaks=0"] + kept)


def python_env(env):
    """env for a Python child that loads the library (a venv, a kernel): under
    the sanitizer build, ASan without leak detection (CPython's, not ours)."""
    env = dict(env)
    if "XM_PY_ASAN" in os.environ:
        env["ASAN_OPTIONS"] = _python_asan(os.environ.get("XM_PY_ASAN_ORIG", ""))
    return env


def _run_xm_asan(args, timeout=300):
    """T.run_xm with the caller's ASAN_OPTIONS and no preloaded runtime."""
    import time

    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("XM_PY_ASAN_ORIG", ""))
    env.pop("LD_PRELOAD", None)
    cmd = [T.xmargin_binary()] + [str(a) for a in args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
    return (p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
            time.perf_counter() - t0)


def setup():
    """Call first: sets XMARGIN_LIBRARY, re-executes under the ASan runtime when
    the library needs it, puts python/ first on sys.path; returns the module."""
    lib = library()
    os.environ["XMARGIN_LIBRARY"] = lib
    needed = _needed(lib)
    if "libasan" in needed and "XM_PY_ASAN" not in os.environ:
        pre = [x for x in (_runtime("libasan.so"), _runtime("libubsan.so") if "libubsan" in needed else None) if x]
        orig = os.environ.get("ASAN_OPTIONS", "")
        env = dict(os.environ, XM_PY_ASAN="1", XM_PY_ASAN_ORIG=orig, LD_PRELOAD=":".join(pre),
                   ASAN_OPTIONS=_python_asan(orig))
        sys.stdout.flush()
        argv = sys.argv
        if argv and argv[0].endswith(os.path.join("pytest", "__main__.py")):
            argv = ["-m", "pytest"] + argv[1:]  # python3 -m pytest ...
        os.execve(sys.executable, [sys.executable] + argv, env)
    if "XM_PY_ASAN" in os.environ:
        # this process and its Python children run with leak detection off; the
        # CLI (T.run_xm) gets the caller's options back: its leaks are errors
        T.run_xm = _run_xm_asan
    sys.path.insert(0, os.path.join(SOURCE_DIR, "python"))
    import xmargin

    return xmargin


DEMO_P = os.path.join(SOURCE_DIR, "datasets", "demo-portfolio.h5")
DEMO_S = os.path.join(SOURCE_DIR, "datasets", "demo-scenarios.h5")


def frames_book(rng=None, n_accounts=6):
    """A small book as DataFrames (names, dates, blanks where a column does not
    apply): the inputs of from_frames and, written as CSV, of `xmargin import`."""
    import numpy as np
    import pandas as pd

    rng = rng or np.random.default_rng(7)
    factors = pd.DataFrame({
        "name": ["SPX", "SPX.iv", "ES", "BTC", "BTC.iv", "EURUSD"],
        "kind": ["price", "vol", "price", "price", "logvol", "price"],
        "level": [4500.0, 0.18, 4510.0, 60000.0, 0.6, 1.08],
        "half_spread": [0.0002, np.nan, 0.0001, 0.0005, np.nan, 0.0],
        "haircut": [0.15, 0.0, 0.0, 0.4, 0.0, 0.02],
    })
    instruments = pd.DataFrame({
        "id": ["SPX.spot", "SPX.C4600", "SPX.P4300", "ES.fut", "ES.C4500", "BTC.perp", "BTC.inv", "BTC.C70k"],
        "type": ["spot", "option", "option", "future", "future_option", "perpetual", "inverse_future",
                 "inverse_option"],
        "silo": ["securities", "securities", "securities", "futures", "futures", "crypto", "crypto", "crypto"],
        "underlying": ["SPX", "SPX", "SPX", "ES", "ES", "BTC", "BTC", "BTC"],
        "vol_factor": [None, "SPX.iv", "SPX.iv", None, "SPX.iv", None, None, "BTC.iv"],
        "strike": [np.nan, 4600.0, 4300.0, np.nan, 4500.0, np.nan, np.nan, 70000.0],
        "expiry": [None, "2024-09-20", 0.5, None, "2024-12-20", None, None, "2024-09-27"],
        "call": [np.nan, 1, 0, np.nan, 1, np.nan, np.nan, 1],
        "implied_vol": [np.nan, 0.17, 0.21, np.nan, 0.19, np.nan, np.nan, 0.65],
        "rate": [np.nan, 0.05, 0.05, np.nan, 0.05, np.nan, np.nan, 0.0],
        "dividend_yield": [np.nan, 0.013, 0.013, np.nan, np.nan, np.nan, np.nan, np.nan],
        "multiplier": [1.0, 100.0, 100.0, 50.0, 50.0, 1.0, 100.0, 1.0],
        "currency": [None, None, None, None, None, None, "BTC", "BTC"],
        "funding_rate": [np.nan, np.nan, np.nan, np.nan, np.nan, 0.08, np.nan, np.nan],
    })
    accounts = pd.DataFrame({"id": ["A%02d" % i for i in range(n_accounts)],
                             "cross_margin": [1 if i % 3 else 0 for i in range(n_accounts)],
                             "currency": ["BTC" if i == n_accounts - 1 else "" for i in range(n_accounts)]})
    rows = []
    for a in accounts.id:
        for ins in rng.choice(instruments.id, size=4, replace=False):
            rows.append((a, ins, float(rng.integers(-20, 21) or 1)))
    positions = pd.DataFrame(rows, columns=["account", "instrument", "quantity"])
    fx = pd.DataFrame({"currency": ["BTC", "EUR"], "factor": ["BTC", "EURUSD"]})
    collateral = pd.DataFrame({"account": ["A00", "A01", "A01", accounts.id.iloc[-1]],
                               "factor": [None, "SPX", "BTC", None],
                               "currency": ["USD", None, None, "BTC"],
                               "quantity": [1.0e5, 200.0, 1.5, 2.0],
                               "silo": [None, "securities", "crypto", None]})
    return dict(factors=factors, instruments=instruments, accounts=accounts, positions=positions, fx=fx,
                collateral=collateral)


def frames_scenarios(path, days=300, seed=3):
    """A scenario file for frames_book: a history of every factor and one set."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = ["SPX", "SPX.iv", "ES", "BTC", "BTC.iv", "EURUSD"]
    vol = np.array([0.01, 0.004, 0.01, 0.03, 0.03, 0.004])
    R = rng.standard_normal((days, len(names))) * vol
    R[:, 2] = R[:, 0] + 0.001 * rng.standard_normal(days)
    T.write_scenarios(path, history=(names, T.dates(days), R),
                      sets={"stress": dict(factor=["SPX", "BTC"], shock=[[-0.2, -0.4], [0.1, 0.3]],
                                           label=["down", "up"])})
