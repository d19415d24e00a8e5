#!/usr/bin/python3
"""End-to-end checks of `xmargin generate`.

Generates books of several sizes, validates them with `xmargin validate`,
checks that a seed gives byte-identical files (sha256) and another seed
different ones, runs the engine on the small ones, and checks the argument
errors. Plain script: env XMARGIN = the binary; prints 'N passed, M failed'
and exits 1 on a failure.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

try:
    import h5py
except ImportError:
    print("h5py not available: 0 passed, 1 failed")
    sys.exit(1)

XM = os.environ.get("XMARGIN")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
check = T.check


def xm(*args, timeout=600):
    return subprocess.run([XM] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def contents(path):
    """Every dataset and attribute of an HDF5 file, by name."""
    out = {}

    def norm(v):
        return v.decode() if isinstance(v, bytes) else v

    with h5py.File(path, "r") as f:
        out["/@"] = {k: norm(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            out[name + "@"] = {k: norm(v) for k, v in obj.attrs.items()}

        f.visititems(visit)
    return out


def same_contents(a, b):
    x, y = contents(a), contents(b)
    if x.keys() != y.keys():
        return False
    for k in x:
        if isinstance(x[k], dict):
            if x[k].keys() != y[k].keys() or not all(
                    np.array_equal(x[k][j], y[k][j]) for j in x[k]):
                return False
        elif x[k].dtype != y[k].dtype or not np.array_equal(x[k], y[k]):
            return False
    return True


def generate(prefix, a, i, n, f=None, t=None, seed=None, extra=()):
    args = ["generate", "--accounts", a, "--instruments", i, "--positions", n, "-o", prefix]
    if f is not None:
        args += ["--factors", f]
    if t is not None:
        args += ["--history-days", t]
    if seed is not None:
        args += ["--seed", seed]
    return xm(*(args + list(extra)))


def s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def test_sizes(tmp):
    sizes = [  # name, accounts, instruments, positions, factors, days
        ("tiny", 5, 40, 30, 13, None),
        ("k1", 50, 1000, 3000, None, 250),
        ("k50", 2000, 50000, 200000, None, None),
    ]
    for name, a, i, n, f, t in sizes:
        prefix = os.path.join(tmp, name)
        t0 = time.time()
        r = generate(prefix, a, i, n, f, t, seed=11)
        el = time.time() - t0
        if not check("generate %s exit 0" % name, r.returncode == 0, r.stderr):
            continue
        pp, sp = prefix + "-portfolio.h5", prefix + "-scenarios.h5"
        check("generate %s writes both files" % name, os.path.isfile(pp) and os.path.isfile(sp))
        check("generate %s summary" % name, "instruments" in r.stdout and "positions" in r.stdout,
              r.stdout)
        check("generate %s takes seconds, not minutes" % name, el < 60, "%.1f s" % el)
        r = xm("validate", pp, sp)
        check("validate %s exit 0" % name, r.returncode == 0, r.stdout + r.stderr)
        with h5py.File(pp, "r") as P, h5py.File(sp, "r") as S:
            check("%s exact sizes" % name,
                  len(P["accounts/id"]) == a and len(P["instruments/id"]) == i
                  and len(P["positions/quantity"]) == n,
                  "%d %d %d" % (len(P["accounts/id"]), len(P["instruments/id"]),
                                len(P["positions/quantity"])))
            F = len(P["factors/name"])
            check("%s factors" % name, F == (f if f else 64), F)
            check("%s attrs" % name, s(P.attrs["format"]) == "xmargin.portfolio"
                  and s(S.attrs["format"]) == "xmargin.scenarios"
                  and s(P.attrs["valuation_date"]) == "2018-12-31")
            T = S["history/return"].shape
            check("%s history" % name, T == ((t if t else 750), F), T)
            names = [s(x) for x in P["factors/name"][:]]
            check("%s history covers every factor" % name,
                  [s(x) for x in S["history/factor"][:]] == names)
            check("%s sets" % name, sorted(S["sets"].keys()) == ["span_grid", "stress"])
            w = S["sets/span_grid/weight"][:]
            check("%s span weights" % name, set(np.unique(w)) <= {0.35, 1.0} and (w == 0.35).any())
            check("%s stress measure" % name, s(S["sets/stress"].attrs["measure"]) == "worst")
            acc = P["positions/account"][:]
            per = np.bincount(acc, minlength=a)
            check("%s every account holds a position" % name, (per >= 1).all())
            silos = [s(x) for x in P["silos/name"][:]]
            check("%s silos" % name, silos == ["securities", "futures", "crypto"], silos)
            if a >= 50:
                cm = P["accounts/cross_margin"][:]
                check("%s ~12%% not cross-margin eligible" % name, 0.04 < (cm == 0).mean() < 0.22,
                      (cm == 0).mean())
                check("%s positions per account vary" % name, per.max() > 3 * per.mean(),
                      (per.max(), per.mean()))
                types = [s(x) for x in P["instruments/type"][:]]
                check("%s every instrument type" % name, set(types) == set(ALL_TYPES),
                      sorted(set(ALL_TYPES) - set(types)))
                check_v2(name, P, S)
                used = np.unique(P["positions/instrument"][:])
                check("%s instruments spread over accounts" % name, len(used) > 0.5 * i,
                      len(used))


ALL_TYPES = ["spot", "future", "option", "future_option", "american_option", "perpetual",
             "inverse_future", "inverse_perpetual", "inverse_option"]
INVERSE = {"inverse_future", "inverse_perpetual", "inverse_option"}


def check_v2(name, P, S):
    """The version-2 columns of a generated book (FORMAT.md section 1). They are written by
    libxmargin's writer: until it writes the version-2 columns, these checks fail."""
    check("%s format_version 2" % name, int(P.attrs["format_version"]) == 2,
          P.attrs["format_version"])
    ok = all(k in P for k in ("instruments/currency", "instruments/funding_rate",
                              "accounts/currency", "fx/currency", "fx/factor"))
    if not check("%s version-2 columns present" % name, ok, list(P.keys())):
        return
    rep = s(P.attrs["currency"])
    fx = [s(x) for x in P["fx/currency"][:]]
    fxf = P["fx/factor"][:]
    kinds = [s(x) for x in P["factors/kind"][:]]
    names = [s(x) for x in P["factors/name"][:]]
    check("%s /fx: not the reporting currency, unique, price factors" % name,
          rep not in fx and len(set(fx)) == len(fx) and all(kinds[f] == "price" for f in fxf))
    check("%s /fx has BTC, ETH, EUR" % name, {"BTC", "ETH", "EUR"} <= set(fx), fx)
    check("%s EUR -> EURUSD" % name, "EUR" in fx and names[fxf[fx.index("EUR")]] == "EURUSD")
    hist = [s(x) for x in S["history/factor"][:]]
    check("%s EURUSD in the history" % name, "EURUSD" in hist)
    types = [s(x) for x in P["instruments/type"][:]]
    cur = [s(x) for x in P["instruments/currency"][:]]
    acur = [s(x) for x in P["accounts/currency"][:]]
    check("%s every currency is the reporting one or in /fx" % name,
          all(c == rep or c in fx for c in cur + acur))
    check("%s inverse types never in the reporting currency" % name,
          all(c != rep for t, c in zip(types, cur) if t in INVERSE))
    fr = P["instruments/funding_rate"][:]
    check("%s funding only on perpetuals" % name,
          all(f == 0 for t, f in zip(types, fr) if t not in ("perpetual", "inverse_perpetual")))
    check("%s BTC accounts exist" % name, "BTC" in acur)


def test_determinism(tmp):
    args = (50, 1000, 3000, None, 100)
    a = os.path.join(tmp, "det_a")
    b = os.path.join(tmp, "det_b")
    c = os.path.join(tmp, "det_c")
    r1 = generate(a, *args, seed=2024)
    time.sleep(1.1)  # a timestamp in the files would differ now
    r2 = generate(b, *args, seed=2024)
    r3 = generate(c, *args, seed=2025)
    if not check("determinism runs", r1.returncode == r2.returncode == r3.returncode == 0,
                 r1.stderr + r2.stderr + r3.stderr):
        return
    for kind in ("portfolio", "scenarios"):
        fa, fb, fc = ("%s-%s.h5" % (p, kind) for p in (a, b, c))
        check("same seed, same %s contents" % kind, same_contents(fa, fb))
        check("same seed, same %s bytes (sha256)" % kind, sha(fa) == sha(fb),
              "(the contents are %s: the writer embeds something else, e.g. HDF5 object "
              "modification times)" % ("equal" if same_contents(fa, fb) else "different"))
        check("another seed, other %s bytes" % kind, sha(fa) != sha(fc))
        check("another seed, other %s contents" % kind, not same_contents(fa, fc))
    # the thread count does not change the numbers
    d = os.path.join(tmp, "det_d")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([XM, "generate", "--accounts", "50", "--instruments", "1000",
                        "--positions", "3000", "--history-days", "100", "--seed", "2024",
                        "-o", d], capture_output=True, text=True, env=env)
    if check("one thread exit 0", r.returncode == 0, r.stderr):
        check("one thread, same contents", same_contents(a + "-portfolio.h5", d + "-portfolio.h5")
              and same_contents(a + "-scenarios.h5", d + "-scenarios.h5"))


def test_run(tmp):
    for name in ("tiny", "k1"):
        prefix = os.path.join(tmp, name)
        pp, sp = prefix + "-portfolio.h5", prefix + "-scenarios.h5"
        if not os.path.isfile(pp):
            check("run %s: files generated" % name, False)
            continue
        out = os.path.join(tmp, name + "-out.h5")
        r = xm("run", "--portfolio", pp, "--scenarios", sp, "--set", "montecarlo.scenarios=200",
               "-q", "-o", out)
        if not check("run %s exit 0" % name, r.returncode == 0, r.stdout + r.stderr):
            continue
        with h5py.File(out, "r") as R, h5py.File(pp, "r") as P:
            check("run %s results" % name, s(R.attrs["format"]) == "xmargin.results")
            req = R["margin/requirement"][:]
            check("run %s one requirement per account" % name, len(req) == len(P["accounts/id"]))
            check("run %s requirements finite, positive" % name,
                  np.isfinite(req).all() and (req >= 0).all() and (req > 0).any())
            sets = [s(x) for x in R["set"][:]]
            check("run %s ran the generated sets" % name,
                  "span_grid" in sets and "stress" in sets and "historical" in sets, sets)


def schedule_values(P):
    """Each holding's CV_j and ACV_j under collateral.method = schedule (METHODOLOGY 6), in
    its account's currency, computed here from the file: CV = q P X_c / X_b; ACV = CV
    kappa (1 - h) for a factor holding (kappa = min(1, limit / the account's CV on the
    factor), 1 without a limit), ACV = CV for cash."""
    lv = P["factors/level"][:]
    hc, lim = P["factors/haircut"][:], P["factors/collateral_limit"][:]
    rep = s(P.attrs["currency"])
    X = {rep: 1.0}
    for c, k in zip(P["fx/currency"][:], P["fx/factor"][:]):
        X[s(c)] = lv[k]
    acur = [s(x) for x in P["accounts/currency"][:]]
    a, f = P["collateral/account"][:], P["collateral/factor"][:]
    q, ccur = P["collateral/quantity"][:], [s(x) for x in P["collateral/currency"][:]]
    xb = np.array([X[acur[k]] for k in a])
    cv = q * np.where(f >= 0, lv[np.maximum(f, 0)], 1.0) * np.array([X[c] for c in ccur]) / xb
    tot = {}
    for j in range(len(a)):
        if f[j] >= 0:
            tot[(a[j], f[j])] = tot.get((a[j], f[j]), 0.0) + cv[j]
    acv = cv.copy()
    for j in range(len(a)):
        if f[j] >= 0:
            L = lim[f[j]] / xb[j]
            kappa = min(1.0, L / tot[(a[j], f[j])]) if L > 0 else 1.0
            acv[j] = cv[j] * kappa * (1.0 - hc[f[j]])
    return cv, acv


def test_collateral(tmp):
    """--collateral: the /collateral table and the liquidity columns (FORMAT.md section 1),
    both modes through the engine (METHODOLOGY 6)."""
    paths = {}
    for mode in ("mixed", "siloed"):
        prefix = os.path.join(tmp, "coll_" + mode)
        r = generate(prefix, 200, 3000, 5000, None, 120, seed=5, extra=("--collateral", mode))
        if not check("generate --collateral %s exit 0" % mode, r.returncode == 0, r.stderr):
            return
        check("--collateral %s: the summary names the holdings" % mode,
              "collateral" in r.stdout and mode in r.stdout, r.stdout)
        pp, sp = prefix + "-portfolio.h5", prefix + "-scenarios.h5"
        paths[mode] = (pp, sp)
        r = xm("validate", pp, sp)
        check("--collateral %s: validate exit 0" % mode, r.returncode == 0, r.stdout + r.stderr)
        with h5py.File(pp, "r") as P:
            ok = all("factors/" + c in P for c in ("half_spread", "impact", "adv", "haircut",
                                                   "collateral_limit"))
            if not check("%s: the liquidity and collateral columns" % mode, ok):
                continue
            kinds = [s(x) for x in P["factors/kind"][:]]
            price = np.array([k == "price" for k in kinds])
            hs, adv = P["factors/half_spread"][:], P["factors/adv"][:]
            check("%s: every price factor has a spread and a volume, vol factors none" % mode,
                  (hs[price] > 0).all() and (adv[price] > 0).all() and (hs[~price] == 0).all())
            hc = P["factors/haircut"][:]
            check("%s: haircuts in [0, 1]" % mode, ((hc >= 0) & (hc <= 1)).all())
            silo = P["collateral/silo"][:]
            A = len(P["accounts/id"])
            check("%s: every account holds collateral" % mode,
                  len(np.unique(P["collateral/account"][:])) == A)
            if mode == "mixed":
                check("mixed: some holdings posted to no silo", 0.03 < (silo == -1).mean() < 0.2,
                      (silo == -1).mean())
            else:
                check("siloed: every holding posted to a silo", (silo >= 0).all())
            fac = P["collateral/factor"][:]
            check("%s: cash and factor holdings" % mode, (fac == -1).any() and (fac >= 0).any())
    if len(paths) < 2:
        return
    with h5py.File(paths["mixed"][0], "r") as A_, h5py.File(paths["siloed"][0], "r") as B_:
        check("mixed and siloed: the same holdings, only the silos differ",
              np.array_equal(A_["collateral/quantity"][:], B_["collateral/quantity"][:])
              and np.array_equal(A_["collateral/factor"][:], B_["collateral/factor"][:])
              and np.array_equal(A_["positions/quantity"][:], B_["positions/quantity"][:]))
    # the same seed, the same table
    prefix = os.path.join(tmp, "coll_again")
    r = generate(prefix, 200, 3000, 5000, None, 120, seed=5, extra=("--collateral", "mixed", "-q"))
    if check("generate --collateral mixed again exit 0", r.returncode == 0, r.stderr):
        check("--collateral mixed: the same seed, the same bytes",
              sha(prefix + "-portfolio.h5") == sha(paths["mixed"][0]))
    # through the engine
    runs = (("mixed", "schedule", 0), ("siloed", "schedule", 0), ("siloed", "scenario", 0),
            ("mixed", "scenario", 2))
    for mode, method, want in runs:
        pp, sp = paths[mode]
        out = os.path.join(tmp, "coll_%s_%s.h5" % (mode, method))
        r = xm("run", "--portfolio", pp, "--scenarios", sp, "--set", "montecarlo.scenarios=500",
               "--set", "collateral.method=" + method, "--device", "cpu", "-q", "-o", out)
        what = "run %s book, collateral.method = %s" % (mode, method)
        if want == 2:
            # METHODOLOGY 6: under the scenario method a holding of no silo is an input error
            check(what + ": exit 2 naming /collateral/silo",
                  r.returncode == 2 and "/collateral" in r.stderr and "silo" in r.stderr
                  and not os.path.exists(out), "rc %d %s" % (r.returncode, r.stderr[-600:]))
            continue
        if not check(what + ": exit 0", r.returncode == 0, r.stdout + r.stderr[-800:]):
            continue
        with h5py.File(out, "r") as R, h5py.File(pp, "r") as P:
            m = R["margin"]
            have = all(k in m for k in ("collateral_value", "collateral", "excess", "call",
                                        "call_siloed"))
            if not check(what + ": the collateral outputs", have, sorted(m.keys())):
                continue
            cv, acv = schedule_values(P)
            a = P["collateral/account"][:]
            A = len(P["accounts/id"])
            want_cv = np.bincount(a, weights=cv, minlength=A)
            want_acv = np.bincount(a, weights=(acv if method == "schedule" else cv), minlength=A)
            got_cv, got_acv = m["collateral_value"][:], m["collateral"][:]
            tol = 1e-9 * np.maximum(1.0, np.abs(want_cv))
            check(what + ": collateral_value = sum of q P X_c / X_b",
                  np.all(np.abs(got_cv - want_cv) <= tol),
                  "max diff %.3g" % np.max(np.abs(got_cv - want_cv)))
            check(what + ": collateral = the %s's adjusted values" % method,
                  np.all(np.abs(got_acv - want_acv) <= tol),
                  "max diff %.3g" % np.max(np.abs(got_acv - want_acv)))
            call, cs = m["call"][:], m["call_siloed"][:]
            check(what + ": call <= call_siloed for every account",
                  np.all(call <= cs + 1e-9 * np.maximum(1.0, cs)))
            req, exc = m["requirement"][:], m["excess"][:]
            cross = P["accounts/cross_margin"][:] == 1
            check(what + ": eligible accounts: excess = collateral - requirement, "
                  "call = max(0, -excess)",
                  np.allclose(exc[cross], got_acv[cross] - req[cross], rtol=1e-12, atol=1e-6)
                  and np.allclose(call[cross], np.maximum(0, -exc[cross]), rtol=1e-12, atol=1e-6))
            check(what + ": some accounts with a call, some with excess",
                  (call > 0).any() and (exc > 0).any(),
                  "%d calls, %d excess" % ((call > 0).sum(), (exc > 0).sum()))


def test_errors(tmp):
    p = os.path.join(tmp, "err")
    cases = [
        ("no arguments", []),
        ("missing -o", ["--accounts", 5, "--instruments", 40, "--positions", 30]),
        ("missing --positions", ["--accounts", 5, "--instruments", 40, "-o", p]),
        ("accounts 0", ["--accounts", 0, "--instruments", 40, "--positions", 30, "-o", p]),
        ("negative", ["--accounts", -5, "--instruments", 40, "--positions", 30, "-o", p]),
        ("not a number", ["--accounts", "5x", "--instruments", 40, "--positions", 30, "-o", p]),
        ("positions < accounts", ["--accounts", 50, "--instruments", 40, "--positions", 30,
                                  "-o", p]),
        ("instruments too few", ["--accounts", 5, "--instruments", 10, "--positions", 30,
                                 "--factors", 13, "-o", p]),
        ("factors 3", ["--accounts", 5, "--instruments", 40, "--positions", 30, "--factors", 3,
                       "-o", p]),
        ("history 1 day", ["--accounts", 5, "--instruments", 100, "--positions", 30,
                           "--history-days", 1, "-o", p]),
        ("bad seed", ["--accounts", 5, "--instruments", 100, "--positions", 30, "--seed", "-1",
                      "-o", p]),
        ("unknown option", ["--accounts", 5, "--instruments", 100, "--positions", 30, "--frob",
                            "-o", p]),
        ("value missing", ["--accounts", 5, "--instruments", 100, "--positions", 30, "-o"]),
        ("bad collateral mode", ["--accounts", 5, "--instruments", 100, "--positions", 30,
                                 "--collateral", "schedule", "-o", p]),
        ("collateral mode missing", ["--accounts", 5, "--instruments", 100, "--positions", 30,
                                     "-o", p, "--collateral"]),
    ]
    for name, args in cases:
        r = xm("generate", *args)
        check("error %s: exit 2" % name, r.returncode == 2, "rc %d %s" % (r.returncode, r.stderr))
        check("error %s: a message" % name, "xmargin generate:" in r.stderr, r.stderr)
    check("errors write nothing", not any(x.startswith("err") for x in os.listdir(tmp)))
    r = xm("generate", "--accounts", 5, "--instruments", 10, "--positions", 30, "--factors", 13,
           "-o", p)
    check("error names the minimum", "36" in r.stderr, r.stderr)
    r = xm("generate", "--accounts=5", "--instruments=40", "--positions=30", "--factors=13",
           "--output=" + os.path.join(tmp, "eq"), "-q")
    check("--opt=value form, -q", r.returncode == 0 and r.stdout == "", r.stdout + r.stderr)
    r = xm("generate", "--accounts", 5, "--instruments", 40, "--positions", 30, "--factors", 13,
           "-o", os.path.join(tmp, "no", "such", "dir", "x"))
    # checked before any work (issue 11): a usage error, exit 2, naming the folder
    check("unwritable prefix: exit 2 before the work",
          r.returncode == 2 and "no/such/dir" in r.stderr, "rc %d %s" % (r.returncode, r.stderr))
    r = xm("generate", "--help")
    check("--help exit 0", r.returncode == 0 and "usage: xmargin generate" in r.stdout)
    check("--help documents --collateral and the liquidity columns",
          "--collateral MODE" in r.stdout and "half_spread" in r.stdout, r.stdout)
    r = xm("--help")
    check("listed in xmargin --help", "generate" in r.stdout)


def main():
    if not XM or not os.path.isfile(XM):
        print("XMARGIN is not set to the xmargin binary: 0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory(prefix="xm_test_generate.") as tmp:
        for t in (test_sizes, test_determinism, test_run, test_collateral, test_errors):
            try:
                t(tmp)
            except Exception:
                traceback.print_exc()
                check(t.__name__, False, "raised")
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
