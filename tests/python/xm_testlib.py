"""Small shared helpers of the Python end-to-end tests.

Temporary folders, writing portfolio / scenario files with h5py (FORMAT.md
sections 1 and 2), running the engine ($XMARGIN), reading a results file, and the
'N passed, M failed' tally that every test script ends with, and the exit
status 77 (SKIP_RC) of a script that cannot run here at all, which ctest reports
as skipped (tests/CMakeLists.txt: SKIP_RETURN_CODE).
"""

import math
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
    if "_pytest" in sys.modules:  # a module pytest imports (tests/python/conftest.py)
        import pytest

        pytest.skip(why, allow_module_level=True)
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
        self.failures = []  # the FAIL lines, repeated before the tally (a log cut
        # in its middle, as CI's is, still shows what failed)
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
            line = "FAIL %s%s" % (name, ("  %s" % text) if text else "")
            self.failures.append(line[:1000])
            print(line)
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
            line = "FAIL %s raised:" % getattr(fn, "__name__", "test")
            print(line)
            tb = traceback.format_exc()
            print(tb, end="")
            self.failures.append(line + " " + tb.strip().splitlines()[-1][:500])
            sys.stdout.flush()
            return None

    def finish(self):
        """Exits 1 on a failure, SKIP_RC when nothing ran but skips, else 0."""
        print("# %.1f s" % (time.perf_counter() - self.t0))
        for what, why in self.skipped:
            print("# skipped: %s (%s)" % (what, why))
        for line in self.failures:
            print("# failed: %s" % line)
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


def same_bits(x, y):
    """x and y the same arrays bit for bit: numbers by their bytes (NaNs and
    signed zeros too), strings (object arrays) by value."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind == "O" or y.dtype.kind == "O":
        return x.shape == y.shape and x.tolist() == y.tolist()
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


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


# --------------------------------------------------------------------------
# random version-2 books shared by the reference tests: products_book
# (test_reference_products.py: every instrument type, currencies, no
# collateral) and collateral_book (test_reference_collateral.py: collateral,
# liquidity columns, special accounts); test_reference_backtest.py backtests
# small ones. Moved here unchanged: the same seed draws the same book.
# --------------------------------------------------------------------------

PRODUCTS_SILOS = ["securities", "futures", "crypto"]
# name, kind, level, daily vol of its history
PRODUCTS_FACTORS = [("SPX", "price", 5000.0, 0.012), ("SPX.iv", "vol", 0.18, 0.008),
           ("SX5E", "price", 4900.0, 0.012), ("SX5E.iv", "logvol", 0.16, 0.04),
           ("BTC", "price", 60000.0, 0.035), ("BTC.iv", "logvol", 0.60, 0.05),
           ("BTC.fut", "price", 60600.0, 0.035), ("ETH", "price", 3000.0, 0.045),
           ("ETH.iv", "vol", 0.70, 0.02), ("EURUSD", "price", 1.08, 0.005),
           ("GOLD", "price", 2300.0, 0.01), ("GOLD.iv", "vol", 0.15, 0.006),
           ("USD3M", "rate", 0.045, 0.0)]          # a factor no position uses: needs no history
PRODUCTS_FX = [("BTC", "BTC"), ("ETH", "ETH"), ("EUR", "EURUSD")]

# (type, underlying, vol factor or None, currency, silo); every type appears at least once
PRODUCTS_TEMPLATES = [
    ("spot", "SPX", None, "USD", 0), ("spot", "SX5E", None, "EUR", 0), ("spot", "BTC", None, "USD", 2),
    ("future", "SPX", None, "USD", 1), ("future", "SX5E", None, "EUR", 1), ("future", "BTC.fut", None, "USD", 2),
    ("option", "SPX", "SPX.iv", "USD", 0), ("option", "SX5E", "SX5E.iv", "EUR", 0),
    ("future_option", "SPX", "SPX.iv", "USD", 1), ("future_option", "BTC.fut", "BTC.iv", "USD", 2),
    ("american_option", "GOLD", "GOLD.iv", "USD", 0), ("american_option", "SX5E", "SX5E.iv", "EUR", 0),
    ("perpetual", "BTC", None, "USD", 2), ("perpetual", "ETH", None, "USD", 2),
    ("inverse_future", "BTC.fut", None, "BTC", 2), ("inverse_future", "ETH", None, "ETH", 2),
    ("inverse_perpetual", "BTC", None, "BTC", 2), ("inverse_perpetual", "ETH", None, "ETH", 2),
    ("inverse_option", "BTC", "BTC.iv", "BTC", 2), ("inverse_option", "ETH", "ETH.iv", "ETH", 2),
]
PRODUCTS_ALL_TYPES = sorted(set(t[0] for t in PRODUCTS_TEMPLATES))


def products_book(tmp, rng, n_accounts=18, n_extra=22, n_days=300):
    """Writes book.h5 / scen.h5 under tmp. Returns (book, scen, factor names,
    account currencies)."""
    # §4.1 columns on the price factors: some with a spread only, some with impact
    # and no ADV (no square-root term), most with all three
    factors = []
    for n, k, lvl, _ in PRODUCTS_FACTORS:
        ext = {}
        if k == "price":
            r = rng.random()
            ext["half_spread"] = float(rng.uniform(1e-4, 2e-3))
            if r < 0.8:
                ext["impact"] = float(rng.uniform(0.05, 0.3))
            if r < 0.65:
                ext["adv"] = float(10 ** rng.uniform(6, 9))      # some positions are large against it
        factors.append((n, k, lvl, ext))
    fidx = {f[0]: i for i, f in enumerate(factors)}
    level = {n: lvl for n, _, lvl, _ in PRODUCTS_FACTORS}
    fx = [(c, fidx[f]) for c, f in PRODUCTS_FX]
    picks = list(range(len(PRODUCTS_TEMPLATES))) + [int(rng.integers(0, len(PRODUCTS_TEMPLATES)))
                                              for _ in range(n_extra)]
    instruments = []
    perp_signs = []
    for i, t in enumerate(picks):
        typ, und, vol, cur, silo = PRODUCTS_TEMPLATES[t]
        lvl = level[und]
        ins = dict(id="I%03d_%s_%s_%s" % (i, typ, und, cur), type=typ, silo=silo, underlying=fidx[und],
                   currency=cur)
        if typ in ("inverse_future", "inverse_perpetual"):
            ins["multiplier"] = float(rng.choice([1.0, 10.0, 100.0]))          # face value, USD
        elif typ == "inverse_option":
            ins["multiplier"] = float(rng.choice([1.0, 0.1]))                  # coins
        elif und in ("BTC", "BTC.fut", "ETH"):
            ins["multiplier"] = float(rng.choice([0.01, 0.1, 1.0]))
        else:
            ins["multiplier"] = float(rng.choice([1.0, 5.0, 10.0, 50.0]))
        if typ in ("perpetual", "inverse_perpetual"):
            # funding of both signs: the first two perpetuals of each kind pay one way each
            k = sum(1 for s in perp_signs if s[0] == typ)
            sign = (1.0 if k % 2 == 0 else -1.0) if k < 2 else float(rng.choice([-1.0, 1.0]))
            perp_signs.append((typ, sign))
            ins["funding_rate"] = sign * float(rng.uniform(0.02, 0.3))
        if typ in ("option", "future_option", "american_option", "inverse_option"):
            iv = level[vol] if vol else 0.2
            ins.update(vol_factor=fidx[vol] if rng.random() < 0.85 else -1,
                       strike=lvl * float(rng.uniform(0.8, 1.2)),
                       expiry=float(rng.choice([0.004, 0.03, 0.1, 0.25, 0.5, 1.5])),
                       call=int(rng.integers(0, 2)), implied_vol=iv * float(rng.uniform(0.85, 1.25)),
                       rate=float(rng.choice([0.0, 0.03, 0.05])),
                       dividend_yield=float(rng.choice([0.0, 0.01, 0.04]))
                       if typ in ("option", "american_option") else 0.0)
        instruments.append(ins)
    # accounts: USD, BTC and EUR (each at least twice), eligible or not (both of each)
    curs = ["USD", "BTC", "EUR"] * 2 + [str(rng.choice(["USD", "BTC", "EUR"])) for _ in range(n_accounts - 6)]
    elig = [1, 1, 1, 0, 0, 0] + [int(rng.random() < 0.6) for _ in range(n_accounts - 6)]
    accounts = [("ACC%03d_%s" % (a, curs[a]), elig[a], curs[a]) for a in range(n_accounts)]
    nI = len(instruments)
    positions = []
    # every instrument is held by some account, long or short
    for i in range(nI):
        q = float(rng.choice([-1.0, 1.0]) * rng.integers(1, 10))
        positions.append((int(rng.integers(0, n_accounts)), i, q))
    # both funding signs held long and short
    for i, ins in enumerate(instruments):
        if "funding_rate" in ins:
            positions.append((int(rng.integers(0, n_accounts)), i, float(rng.integers(1, 6))))
            positions.append((int(rng.integers(0, n_accounts)), i, -float(rng.integers(1, 6))))
    for a in range(n_accounts):
        for _ in range(int(rng.integers(1, 6))):
            q = float(np.round(rng.normal(0, 6)))
            positions.append((a, int(rng.integers(0, nI)), q if q != 0 else 1.0))
    positions.append((0, positions[0][1], 3.0))     # a repeated (account, instrument) pair
    order = rng.permutation(len(positions))
    positions = [positions[i] for i in order]
    book = os.path.join(tmp, "book.h5")
    write_portfolio(book, factors, PRODUCTS_SILOS, instruments, accounts, positions, fx=fx)

    # history of every factor but the rate, fat-tailed, correlated; an extra column
    hnames = [n for n, k, _, _ in PRODUCTS_FACTORS if k != "rate"] + ["EXTRA"]
    vol = np.array([v for n, k, _, v in PRODUCTS_FACTORS if k != "rate"] + [0.01])
    nf = len(hnames)
    C = np.full((nf, nf), 0.3) + 0.7 * np.eye(nf)
    for a_, b_ in (("BTC", "BTC.fut"), ("BTC", "ETH"), ("SPX", "SX5E")):
        i, j = hnames.index(a_), hnames.index(b_)
        C[i, j] = C[j, i] = 0.9
    for p_, v_ in (("SPX", "SPX.iv"), ("SX5E", "SX5E.iv"), ("BTC", "BTC.iv"), ("ETH", "ETH.iv")):
        i, j = hnames.index(p_), hnames.index(v_)
        C[i, j] = C[j, i] = -0.5
    w, V = np.linalg.eigh(C)
    C = V @ np.diag(np.maximum(w, 0.05)) @ V.T
    d = np.sqrt(np.diag(C))
    C = C / np.outer(d, d)
    z = rng.standard_t(5, (n_days, nf)) * math.sqrt(3 / 5)
    z[n_days // 2:] *= 1.5
    R = z @ np.linalg.cholesky(C).T * vol
    # ready-made sets, PRODUCTS_FX factors among their columns
    pf = [n for n, k, _, _ in PRODUCTS_FACTORS if k != "rate"]
    sc = np.array([v for n, k, _, v in PRODUCTS_FACTORS if k != "rate"]) * 6
    sets = {}
    S = 16
    sets["grid"] = dict(factor=pf, shock=rng.normal(0, 1, (S, len(pf))) * sc,
                        weight=np.where(np.arange(S) < 12, 1.0, 0.35), measure="worst")
    sets["tail"] = dict(factor=pf[::-1], shock=(rng.normal(0, 1, (40, len(pf))) * sc)[:, ::-1], measure="es",
                        confidence=0.9)
    fxcols = ["BTC", "ETH", "EURUSD", "SPX.iv", "SX5E.iv"]
    sets["fx_var"] = dict(factor=fxcols, shock=rng.normal(0, 0.05, (60, len(fxcols))), measure="var",
                          confidence=0.95)
    scen = os.path.join(tmp, "scen.h5")
    write_scenarios(scen, (hnames, dates(n_days), R), sets)
    return book, scen, [f[0] for f in factors], curs


COLLATERAL_SILOS = ["securities", "futures", "crypto"]
# name, kind, level, daily vol of its history, version-2 columns (None: drawn)
COLLATERAL_FACTORS = [("SPX", "price", 5000.0, 0.012), ("SPX.iv", "vol", 0.18, 0.008),
           ("SX5E", "price", 4900.0, 0.012), ("SX5E.iv", "logvol", 0.16, 0.04),
           ("BTC", "price", 60000.0, 0.035), ("BTC.iv", "logvol", 0.60, 0.05),
           ("BTC.fut", "price", 60600.0, 0.035), ("ETH", "price", 3000.0, 0.045),
           ("ETH.iv", "vol", 0.70, 0.02), ("EURUSD", "price", 1.08, 0.005),
           ("GOLD", "price", 2300.0, 0.01), ("GOLD.iv", "vol", 0.15, 0.006),
           ("UST10", "price", 98.0, 0.004),          # a USD bond: collateral, and a spot position
           ("BUND", "price", 131.0, 0.004),          # an EUR bond held only as collateral
           ("USD3M", "rate", 0.045, 0.0)]            # a factor nothing uses: needs no history
COLLATERAL_FX = [("BTC", "BTC"), ("ETH", "ETH"), ("EUR", "EURUSD")]
# haircuts as clearing houses publish them (coins 15% / 20%, bonds a few %)
COLLATERAL_HAIRCUT = {"BTC": 0.15, "ETH": 0.20, "GOLD": 0.10, "UST10": 0.02, "BUND": 0.03, "SX5E": 0.25, "SPX": 0.25,
           "EURUSD": 0.0}

# (type, underlying, vol factor or None, currency, silo); every type appears at least once
COLLATERAL_TEMPLATES = [
    ("spot", "SPX", None, "USD", 0), ("spot", "SX5E", None, "EUR", 0), ("spot", "BTC", None, "USD", 2),
    ("spot", "UST10", None, "USD", 0),
    ("future", "SPX", None, "USD", 1), ("future", "SX5E", None, "EUR", 1), ("future", "BTC.fut", None, "USD", 2),
    ("future", "BTC", None, "USD", 2),
    ("option", "SPX", "SPX.iv", "USD", 0), ("option", "SX5E", "SX5E.iv", "EUR", 0),
    ("future_option", "SPX", "SPX.iv", "USD", 1), ("future_option", "BTC.fut", "BTC.iv", "USD", 2),
    ("american_option", "GOLD", "GOLD.iv", "USD", 0),
    ("perpetual", "BTC", None, "USD", 2), ("perpetual", "ETH", None, "USD", 2),
    ("inverse_future", "BTC.fut", None, "BTC", 2), ("inverse_future", "ETH", None, "ETH", 2),
    ("inverse_perpetual", "BTC", None, "BTC", 2),
    ("inverse_option", "BTC", "BTC.iv", "BTC", 2), ("inverse_option", "ETH", "ETH.iv", "ETH", 2),
]
COLLATERAL_ALL_TYPES = sorted(set(t[0] for t in COLLATERAL_TEMPLATES))
# collateral menu: (factor or None for cash, currency, low, high quantity)
COLLATERAL_MENU = [("BTC", "USD", 0.1, 3.0), ("ETH", "USD", 1.0, 40.0), ("UST10", "USD", 100.0, 3000.0),
        ("BUND", "EUR", 100.0, 2000.0), ("SX5E", "EUR", 1.0, 20.0), ("GOLD", "USD", 1.0, 40.0),
        (None, "USD", 1e3, 2e5), (None, "EUR", 1e3, 1e5), (None, "BTC", 0.05, 2.0)]



def collateral_factor_columns(rng, name, kind):
    """FORMAT.md §1 version-2 columns of one factor."""
    if kind != "price":
        return {}
    ext = {"half_spread": float(rng.uniform(1e-4, 1.5e-3))}
    r = rng.random()
    if r < 0.85:
        ext["impact"] = float(rng.uniform(0.05, 0.3))
    if r < 0.7:
        # ADV in USD: small enough that the larger positions pay the square-root term
        ext["adv"] = float(10 ** rng.uniform(6.0, 8.5))
    if name in COLLATERAL_HAIRCUT:
        ext["haircut"] = COLLATERAL_HAIRCUT[name]
    if name in ("BTC", "ETH", "GOLD", "SX5E"):
        # per-account concentration limit (USD); BTC's binds for the larger holdings
        ext["collateral_limit"] = float(rng.uniform(5e4, 1.5e5)) if name == "BTC" else \
            float(rng.choice([0.0, rng.uniform(2e4, 1e5)]))
    return ext


def collateral_book(tmp, rng, n_accounts=30, n_extra=24, n_days=300):
    """Writes book_sched.h5 (holdings posted to silos and to none), book_scen.h5
    (the same, each holding of no silo posted to a random silo) and scen.h5.
    Returns (book_sched, book_scen, scen, info)."""
    factors = [(n, k, lvl, collateral_factor_columns(rng, n, k)) for n, k, lvl, _ in COLLATERAL_FACTORS]
    fidx = {f[0]: i for i, f in enumerate(factors)}
    level = {n: lvl for n, _, lvl, _ in COLLATERAL_FACTORS}
    fx = [(c, fidx[f]) for c, f in COLLATERAL_FX]
    picks = list(range(len(COLLATERAL_TEMPLATES))) + [int(rng.integers(0, len(COLLATERAL_TEMPLATES)))
                                              for _ in range(n_extra)]
    instruments = []
    for i, t in enumerate(picks):
        typ, und, vol, cur, silo = COLLATERAL_TEMPLATES[t]
        lvl = level[und]
        ins = dict(id="I%03d_%s_%s_%s" % (i, typ, und, cur), type=typ, silo=silo, underlying=fidx[und],
                   currency=cur)
        if typ in ("inverse_future", "inverse_perpetual"):
            ins["multiplier"] = float(rng.choice([1.0, 10.0, 100.0]))
        elif typ == "inverse_option":
            ins["multiplier"] = float(rng.choice([1.0, 0.1]))
        elif und in ("BTC", "BTC.fut", "ETH"):
            ins["multiplier"] = float(rng.choice([0.01, 0.1, 1.0]))
        elif und == "UST10":
            ins["multiplier"] = 100.0
        else:
            ins["multiplier"] = float(rng.choice([1.0, 5.0, 10.0, 50.0]))
        if typ in ("perpetual", "inverse_perpetual"):
            ins["funding_rate"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.3))
        if typ in ("option", "future_option", "american_option", "inverse_option"):
            iv = level[vol]
            ins.update(vol_factor=fidx[vol] if rng.random() < 0.85 else -1,
                       strike=lvl * float(rng.uniform(0.8, 1.2)),
                       expiry=float(rng.choice([0.004, 0.03, 0.1, 0.25, 0.5, 1.5])),
                       call=int(rng.integers(0, 2)), implied_vol=iv * float(rng.uniform(0.85, 1.25)),
                       rate=float(rng.choice([0.0, 0.03, 0.05])),
                       dividend_yield=float(rng.choice([0.0, 0.01, 0.04]))
                       if typ in ("option", "american_option") else 0.0)
        instruments.append(ins)
    # a deep out-of-the-money call: the per-contract minimum binds for whoever holds only it
    instruments.append(dict(id="OTM_SPX_CALL", type="option", silo=0, underlying=fidx["SPX"],
                            vol_factor=fidx["SPX.iv"], strike=10000.0, expiry=0.25, call=1, implied_vol=0.18,
                            rate=0.03, multiplier=10.0, currency="USD"))
    otm = len(instruments) - 1
    iid = {ins["id"]: i for i, ins in enumerate(instruments)}

    def first(typ, und, cur):
        return next(i for i, ins in enumerate(instruments)
                    if ins["type"] == typ and instruments[i]["underlying"] == fidx[und] and ins["currency"] == cur)

    # accounts: the special ones first, then random ones in USD, EUR, BTC
    special = [("WRONGWAY_USD", 1, "USD"),       # long BTC futures, BTC coins posted to crypto
               ("BTCACCT_BTC", 1, "BTC"),        # a BTC-margined account posting BTC and USD cash
               ("SILOCASH_USD", 0, "USD"),       # not eligible: futures positions, cash in securities
               ("COLLONLY_EUR", 0, "EUR"),       # collateral and no positions
               ("BIGBTC_USD", 1, "USD"),         # 5 BTC against a limit below their value
               ("ADVHEAVY_EUR", 0, "EUR"),       # positions large against the factor's ADV
               ("OTMMIN_USD", 1, "USD"),         # the minimum binds (eligible)
               ("OTMMIN_EUR", 0, "EUR")]         # the minimum binds (not eligible: in its silo)
    ns = len(special)
    curs = [a[2] for a in special] + [str(rng.choice(["USD", "EUR", "BTC"])) for _ in range(n_accounts - ns)]
    elig = [a[1] for a in special] + [int(rng.random() < 0.55) for _ in range(n_accounts - ns)]
    accounts = [(special[a][0] if a < ns else "ACC%03d_%s" % (a, curs[a]), elig[a], curs[a])
                for a in range(n_accounts)]
    nI = len(instruments)
    positions = []
    # the special accounts
    btc_fut = first("future", "BTC", "USD")
    positions += [(0, btc_fut, 3.0), (0, first("option", "SPX", "USD"), 2.0)]
    positions += [(1, first("perpetual", "BTC", "USD"), 2.0), (1, first("inverse_option", "BTC", "BTC"), -3.0)]
    positions += [(2, first("future", "SPX", "USD"), 4.0), (2, first("future", "SX5E", "EUR"), -3.0)]
    positions += [(4, first("spot", "SPX", "USD"), 10.0), (4, btc_fut, -0.5)]
    positions += [(5, first("perpetual", "ETH", "USD"), 400.0), (5, first("spot", "SX5E", "EUR"), 300.0)]
    positions += [(6, otm, 3.0), (7, otm, 5.0)]
    # every instrument held by some random account, long or short
    for i in range(nI):
        q = float(rng.choice([-1.0, 1.0]) * rng.integers(1, 10))
        positions.append((int(rng.integers(ns, n_accounts)), i, q))
    for a in range(ns, n_accounts):
        for _ in range(int(rng.integers(1, 5))):
            q = float(np.round(rng.normal(0, 6)))
            positions.append((a, int(rng.integers(0, nI)), q if q != 0 else 1.0))
    positions.append((ns, positions[-1][1], 2.0))      # a repeated (account, instrument) pair
    order = rng.permutation(len(positions))
    positions = [positions[i] for i in order]

    # collateral
    coll = [dict(account=0, factor=fidx["BTC"], quantity=2.0, silo=2),
            dict(account=0, factor=-1, quantity=20000.0, silo=-1),
            dict(account=1, factor=fidx["BTC"], quantity=1.5, silo=2),
            dict(account=1, factor=-1, quantity=30000.0, silo=2),                 # USD cash, a BTC account
            dict(account=2, factor=-1, quantity=5e5, silo=0),                     # cash in the wrong silo
            dict(account=2, factor=fidx["UST10"], quantity=500.0, silo=-1),
            dict(account=3, factor=fidx["BUND"], quantity=800.0, silo=0, currency="EUR"),
            dict(account=3, factor=-1, quantity=1e4, silo=1, currency="EUR"),
            dict(account=4, factor=fidx["BTC"], quantity=3.0, silo=2),            # 5 BTC in two silos
            dict(account=4, factor=fidx["BTC"], quantity=2.0, silo=0),
            dict(account=5, factor=-1, quantity=0.5, silo=2, currency="BTC"),      # BTC cash
            dict(account=5, factor=fidx["SX5E"], quantity=10.0, silo=0, currency="EUR")]
    for a in range(ns, n_accounts):
        for _ in range(int(rng.integers(0, 4))):
            fname, cur, lo, hi = COLLATERAL_MENU[int(rng.integers(0, len(COLLATERAL_MENU)))]
            qty = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
            h = dict(account=a, factor=fidx[fname] if fname else -1, quantity=qty,
                     silo=int(rng.integers(-1, len(COLLATERAL_SILOS))))
            if cur != "USD" or rng.random() < 0.5:     # the column's default is the reporting currency
                h["currency"] = cur
            coll.append(h)
    coll = [coll[i] for i in rng.permutation(len(coll))]
    # the scenario copy: each holding of no silo posted to a random silo (the
    # not-eligible account's bond to securities, with its cash, away from its futures)
    coll_scen = [dict(h, silo=h["silo"] if h["silo"] >= 0 else
                      (0 if h["account"] == 2 else int(rng.integers(0, len(COLLATERAL_SILOS))))) for h in coll]
    book = os.path.join(tmp, "book_sched.h5")
    write_portfolio(book, factors, COLLATERAL_SILOS, instruments, accounts, positions, fx=fx, collateral=coll)
    book_s = os.path.join(tmp, "book_scen.h5")
    write_portfolio(book_s, factors, COLLATERAL_SILOS, instruments, accounts, positions, fx=fx, collateral=coll_scen)

    # history of every factor but the rate, fat-tailed, correlated
    hnames = [n for n, k, _, _ in COLLATERAL_FACTORS if k != "rate"]
    vol = np.array([v for n, k, _, v in COLLATERAL_FACTORS if k != "rate"])
    nf = len(hnames)
    C = np.full((nf, nf), 0.3) + 0.7 * np.eye(nf)
    for a_, b_ in (("BTC", "BTC.fut"), ("BTC", "ETH"), ("SPX", "SX5E"), ("UST10", "BUND")):
        i, j = hnames.index(a_), hnames.index(b_)
        C[i, j] = C[j, i] = 0.9
    for p_, v_ in (("SPX", "SPX.iv"), ("SX5E", "SX5E.iv"), ("BTC", "BTC.iv"), ("ETH", "ETH.iv")):
        i, j = hnames.index(p_), hnames.index(v_)
        C[i, j] = C[j, i] = -0.5
    w, V = np.linalg.eigh(C)
    C = V @ np.diag(np.maximum(w, 0.05)) @ V.T
    d = np.sqrt(np.diag(C))
    C = C / np.outer(d, d)
    z = rng.standard_t(5, (n_days, nf)) * math.sqrt(3 / 5)
    z[n_days // 2:] *= 1.5
    R = z @ np.linalg.cholesky(C).T * vol
    sc = vol * 6
    sets = {}
    S = 16
    sets["grid"] = dict(factor=hnames, shock=rng.normal(0, 1, (S, nf)) * sc,
                        weight=np.where(np.arange(S) < 12, 1.0, 0.35), measure="worst")
    sets["tail"] = dict(factor=hnames[::-1], shock=(rng.normal(0, 1, (40, nf)) * sc)[:, ::-1], measure="es",
                        confidence=0.9)
    fxcols = ["BTC", "ETH", "EURUSD", "BUND", "SX5E.iv"]
    sets["fx_var"] = dict(factor=fxcols, shock=rng.normal(0, 0.05, (60, len(fxcols))), measure="var",
                          confidence=0.95)
    scen = os.path.join(tmp, "scen.h5")
    write_scenarios(scen, (hnames, dates(n_days), R), sets)
    info = {"curs": curs, "no_silo_rows": [j for j, h in enumerate(coll) if h["silo"] < 0], "iid": iid}
    return book, book_s, scen, info

