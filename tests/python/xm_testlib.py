"""Small shared helpers of the Python end-to-end tests.

Temporary folders, writing portfolio / scenario files with h5py (FORMAT.md
sections 1 and 2), running the engine ($XMARGIN), reading a results file, and the
'N passed, M failed' tally that every test script ends with, and the exit
status 77 (SKIP_RC) of a script that cannot run here at all, which ctest reports
as skipped (tests/CMakeLists.txt: SKIP_RETURN_CODE).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover
    h5py = None

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("XM_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))


def xmargin_binary():
    """$XMARGIN, else the first built binary found under the source tree."""
    b = os.environ.get("XMARGIN")
    if b:
        return b
    for d in ("build", "build-e2e"):
        p = os.path.join(SOURCE_DIR, d, "xmargin")
        if os.access(p, os.X_OK):
            return p
    return "xmargin"


def test_binary(name):
    """The cmocka test executable `name` (e.g. "test_io"), built next to the
    xmargin binary (dirname($XMARGIN)/tests/); None when there is none."""
    xm = os.environ.get("XMARGIN", "")
    d = os.path.dirname(os.path.abspath(xm)) if xm else os.getcwd()
    for cand in (os.path.join(d, "tests", name), os.path.join(d, name)):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def write_sample(tally, name, flag, path):
    """Runs `name flag path` (a test executable that writes a sample file,
    e.g. `test_io --write-results PATH`), as one check of tally. True when
    the file was written."""
    exe = test_binary(name)
    if not exe:
        return tally.check("%s binary found next to xmargin" % name, False,
                           "looked in dirname($XMARGIN)/tests and dirname($XMARGIN)")
    p = subprocess.run([exe, flag, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    return tally.check("%s %s writes %s" % (name, flag, os.path.basename(path)),
                       p.returncode == 0 and os.path.exists(path),
                       "rc=%d %s" % (p.returncode, p.stdout.decode(errors="replace")))


# --------------------------------------------------------------------------
# tally
# --------------------------------------------------------------------------

SKIP_RC = 77  # tests/CMakeLists.txt: SKIP_RETURN_CODE of the Python tests


def skip_script(why):
    """The whole script cannot run here (no OpenCL device, a tool missing):
    says why and exits SKIP_RC, which ctest reports as skipped, not passed.
    Only for a script none of whose checks can run: where some can, run them
    and report the rest with Tally.skip."""
    print("SKIPPED: %s" % why)
    print("0 passed, 0 failed, all skipped")
    sys.stdout.flush()
    sys.exit(SKIP_RC)


class Tally:
    """One line per check; finish() prints 'N passed, M failed' and exits."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = []  # (what, why) of the checks that could not run here
        self.t0 = time.perf_counter()

    def skip(self, what, why):
        """Checks that cannot run here (the script runs the rest): one line
        now, and a list before the tally."""
        self.skipped.append((what, why))
        print("skip %s  (%s)" % (what, why))
        sys.stdout.flush()

    def check(self, name, cond, detail=""):
        cond = bool(cond)
        text = "" if detail is None else str(detail)  # any object: a tuple, an array
        if cond:
            self.passed += 1
            print("ok   %s%s" % (name, ("  (%s)" % text) if text else ""))
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, ("  %s" % text) if text else ""))
        sys.stdout.flush()
        return cond

    def close(self, name, got, exp, rtol, scale=None, atol=0.0):
        """|got - exp| <= rtol * scale + atol elementwise; scale defaults to |exp|
        (elementwise) and may be a scalar or broadcastable array."""
        got = np.asarray(got, dtype=np.float64)
        exp = np.asarray(exp, dtype=np.float64)
        if got.shape != exp.shape:
            return self.check(name, False, "shape %s, expected %s" % (got.shape, exp.shape))
        sc = np.abs(exp) if scale is None else np.broadcast_to(np.asarray(scale, dtype=np.float64), exp.shape)
        d = np.abs(got - exp)
        lim = rtol * sc + atol
        bad = ~(d <= lim)
        if not bad.any():
            rel = float(np.max(d / np.where(sc > 0, sc, 1.0))) if d.size else 0.0
            return self.check(name, True, "max rel %.2e" % rel)
        i = np.unravel_index(int(np.argmax(np.where(bad, d - lim, -np.inf))), d.shape)
        return self.check(name, False, "at %s got %.17g expected %.17g (rtol %g)" %
                          (i, got[i], exp[i], rtol))

    def run(self, fn, *args, **kw):
        """Run one test function; an exception counts as a failure."""
        try:
            return fn(*args, **kw)
        except Exception:
            self.failed += 1
            print("FAIL %s raised:" % getattr(fn, "__name__", "test"))
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            return None

    def finish(self):
        """Exits 1 on a failure, SKIP_RC when nothing ran but skips, else 0."""
        print("# %.1f s" % (time.perf_counter() - self.t0))
        for what, why in self.skipped:
            print("# skipped: %s (%s)" % (what, why))
        print("%d passed, %d failed%s" % (self.passed, self.failed,
                                          ", %d skipped" % len(self.skipped) if self.skipped else ""))
        sys.stdout.flush()
        if self.failed:
            sys.exit(1)
        sys.exit(SKIP_RC if self.skipped and not self.passed else 0)


# --------------------------------------------------------------------------
# temporary folders
# --------------------------------------------------------------------------

class TmpDir:
    """with TmpDir() as d: ... (removed afterwards unless $XM_KEEP_TMP is set)."""

    def __init__(self, prefix="xm_e2e_"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("XM_KEEP_TMP"):
            print("# kept %s" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


# --------------------------------------------------------------------------
# writing input files (FORMAT.md 1 and 2)
# --------------------------------------------------------------------------

def _strs(values):
    return np.array(list(values), dtype=h5py.string_dtype())


INSTRUMENT_DEFAULTS = {"vol_factor": -1, "strike": 0.0, "expiry": 0.0, "call": 0, "implied_vol": 0.0,
                       "rate": 0.0, "dividend_yield": 0.0, "multiplier": 1.0}


FACTOR_V2_COLUMNS = ("half_spread", "impact", "adv", "haircut", "collateral_limit")


def write_portfolio(path, factors, silos, instruments, accounts, positions,
                    valuation_date="2024-06-28", currency="USD", fx=None, collateral=None,
                    format_version=None):
    """factors: [(name, kind, level)] or [(name, kind, level, {version-2 columns})];
    silos: [name]; instruments: [dict with id, type, silo, underlying and
    optionally the other FORMAT.md columns, version 2's `currency` and
    `funding_rate` included]; accounts: [(id, cross_margin)] or [(id,
    cross_margin, currency)]; positions: [(account, instrument, quantity)];
    fx: [(currency, factor row)] or None; collateral: [dict(account, factor,
    quantity, silo, currency optional)] or None.  A version-2 column is written
    only when some row gives it (so a version-1 book stays version 1);
    format_version defaults to 2 when any version-2 data is present, else 1."""
    full = [dict(INSTRUMENT_DEFAULTS, **ins) for ins in instruments]
    fext = [f[3] if len(f) > 3 else {} for f in factors]
    fcols = [c for c in FACTOR_V2_COLUMNS if any(c in e for e in fext)]
    icur = any("currency" in i for i in full)
    ifund = any("funding_rate" in i for i in full)
    acur = any(len(a) > 2 for a in accounts)
    v2 = bool(fcols or icur or ifund or acur or fx is not None or collateral is not None)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.portfolio"
        f.attrs["format_version"] = format_version if format_version is not None else (2 if v2 else 1)
        f.attrs["valuation_date"] = valuation_date
        f.attrs["currency"] = currency
        f["factors/name"] = _strs(x[0] for x in factors)
        f["factors/kind"] = _strs(x[1] for x in factors)
        f["factors/level"] = np.array([float(x[2]) for x in factors], dtype=np.float64)
        for c in fcols:
            f["factors/" + c] = np.array([float(e.get(c, 0.0)) for e in fext], dtype=np.float64)
        f["silos/name"] = _strs(silos)
        g = f.create_group("instruments")
        g["id"] = _strs(i["id"] for i in full)
        g["type"] = _strs(i["type"] for i in full)
        for col in ("silo", "underlying", "vol_factor", "call"):
            g[col] = np.array([int(i[col]) for i in full], dtype=np.int32)
        for col in ("strike", "expiry", "implied_vol", "rate", "dividend_yield", "multiplier"):
            g[col] = np.array([float(i[col]) for i in full], dtype=np.float64)
        if icur:
            g["currency"] = _strs(i.get("currency", currency) for i in full)
        if ifund:
            g["funding_rate"] = np.array([float(i.get("funding_rate", 0.0)) for i in full])
        f["accounts/id"] = _strs(a[0] for a in accounts)
        f["accounts/cross_margin"] = np.array([int(a[1]) for a in accounts], dtype=np.int32)
        if acur:
            f["accounts/currency"] = _strs(a[2] if len(a) > 2 else currency for a in accounts)
        if fx is not None:
            f["fx/currency"] = _strs(c for c, _ in fx)
            f["fx/factor"] = np.array([int(r) for _, r in fx], dtype=np.int32)
        if collateral is not None:
            c = f.create_group("collateral")
            c["account"] = np.array([int(h["account"]) for h in collateral], dtype=np.int32)
            c["factor"] = np.array([int(h["factor"]) for h in collateral], dtype=np.int32)
            c["quantity"] = np.array([float(h["quantity"]) for h in collateral])
            c["silo"] = np.array([int(h.get("silo", -1)) for h in collateral], dtype=np.int32)
            if any("currency" in h for h in collateral):
                c["currency"] = _strs(h.get("currency", currency) for h in collateral)
        f["positions/account"] = np.array([int(p[0]) for p in positions], dtype=np.int64)
        f["positions/instrument"] = np.array([int(p[1]) for p in positions], dtype=np.int64)
        f["positions/quantity"] = np.array([float(p[2]) for p in positions], dtype=np.float64)


def write_scenarios(path, history=None, sets=None):
    """history: (factor names, dates, returns[T x F_h]) or None; sets: {name:
    dict(factor=[...], shock=[[...]], label=[...], weight=[...] optional,
    measure=... optional, confidence=... optional)}."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.scenarios"
        f.attrs["format_version"] = 1
        if history is not None:
            names, dates, R = history
            f["history/factor"] = _strs(names)
            f["history/date"] = _strs(dates)
            f["history/return"] = np.asarray(R, dtype=np.float64).reshape(len(dates), len(names))
        for name, s in (sets or {}).items():
            g = f.create_group("sets/" + name)
            g["factor"] = _strs(s["factor"])
            g["shock"] = np.asarray(s["shock"], dtype=np.float64).reshape(-1, len(s["factor"]))
            S = g["shock"].shape[0]
            g["label"] = _strs(s.get("label", ["%s-%d" % (name, i) for i in range(S)]))
            if s.get("weight") is not None:
                g["weight"] = np.asarray(s["weight"], dtype=np.float64)
            if s.get("measure") is not None:
                g.attrs["measure"] = s["measure"]
            if s.get("confidence") is not None:
                g.attrs["confidence"] = float(s["confidence"])


def dates(n, start="2019-01-01"):
    """n consecutive ISO dates (calendar days; the engine only labels with them)."""
    d0 = np.datetime64(start)
    return [str(d0 + np.timedelta64(i, "D")) for i in range(n)]


# --------------------------------------------------------------------------
# running the engine, reading results
# --------------------------------------------------------------------------

def run_xm(args, timeout=300):
    """Run $XMARGIN with args (list). Returns (returncode, stdout, stderr, seconds)."""
    cmd = [xmargin_binary()] + [str(a) for a in args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return (p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
            time.perf_counter() - t0)


def margin_run(portfolio, scenarios, out, device="cpu", sets=(), extra=()):
    """xmargin run ... -q; sets: ['key=value', ...]. Returns run_xm's tuple."""
    args = ["run", "--portfolio", portfolio, "--scenarios", scenarios, "-o", out,
            "--device", device, "-q"]
    for kv in sets:
        args += ["--set", kv]
    return run_xm(args + list(extra))


def strings(ds):
    raw = ds[()]
    if isinstance(raw, (bytes, str)):
        raw = [raw]
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in np.asarray(raw, dtype=object).ravel()]


def attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.size == 1:
        return attr_str(v.ravel()[0])
    return str(v)


def read_margin(path):
    """/margin/* as numpy arrays, plus 'account', 'silo', 'set' name lists."""
    out = {}
    with h5py.File(path, "r") as f:
        for k in f["margin"]:
            out[k] = np.asarray(f["margin"][k][()])
        for k in ("account", "silo", "set"):
            if k in f:
                out["_" + k] = strings(f[k])
    return out


def read_shocks(path, name):
    """(/scenarios/<name>/factor, shock[S x F]) of a results file."""
    with h5py.File(path, "r") as f:
        g = f["scenarios"][name]
        return strings(g["factor"]), np.asarray(g["shock"][()], dtype=np.float64)


def opencl_available():
    """True when `xmargin devices` lists an OpenCL device."""
    try:
        rc, out, _, _ = run_xm(["devices"], timeout=60)
    except Exception:
        return False
    return rc == 0 and any(line.startswith("opencl:") for line in out.splitlines())
