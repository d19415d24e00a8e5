#!/usr/bin/python3
"""End-to-end checks of the engine against the independent NumPy reference
(xm_reference.py) on fresh random books.

Every run draws a new small book, history and ready-made sets from a seed taken
from the clock (printed; set XM_TEST_SEED to replay one). Checks:
  * every /margin dataset agrees with xm_reference to 1e-9 of each account's gross
    loss scale, on the cpu backend and on OpenCL (when a device is listed), for
    two configurations (defaults + correlation stress; a changed configuration):
    the version-2 datasets too (liquidity 0 with the defaults, requirement_by_silo,
    hedge_credit, minimum_binds; an account not eligible owes sum_g M_{a,g},
    METHODOLOGY §4), and no collateral dataset (the book has no /collateral);
  * Monte Carlo shocks: cpu == OpenCL to 1e-12, and the prefix property (scenario
    s of a 200-scenario run == scenario s of a 500-scenario run);
  * saved historical shocks == xm_reference.historical_set to 1e-12;
  * --precision single: requirements within 1e-4 of double;
  * two identical runs give bitwise identical /margin datasets;
  * a --mem-limit that forces several account blocks and scenario tiles gives the
    uncapped results to 1e-12;
  * Student-t and normal Monte Carlo: sample covariance ~ h Sigma within 5%, and
    the t shocks have fat tails (kurtosis) where the normal ones do not;
  * bad inputs exit with status 2 and a message (missing history column, history
    shorter than the horizon, degenerate covariance, confidence out of range).

Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

import io
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_reference as xr  # noqa: E402
import xm_testlib as tl  # noqa: E402

h5py = tl.h5py
T = tl.Tally()

SEED = int(os.environ.get("XM_TEST_SEED", int(time.time() * 1000) % (2**31)))
print("# seed %d (replay: XM_TEST_SEED=%d)" % (SEED, SEED))
RNG = np.random.default_rng(SEED)

UNDERLYINGS = [("SPX", 5000.0, 0.18, 0), ("NDX", 18000.0, 0.22, 0), ("RTY", 2000.0, 0.25, 0),
               ("BTC", 60000.0, 0.60, 2)]          # name, level, implied vol, home silo of spot/option
SILOS = ["securities", "futures", "crypto"]


# --------------------------------------------------------------------------
# random book
# --------------------------------------------------------------------------

def random_book(tmp, rng, n_accounts=24, n_instruments=30, n_days=300):
    """Writes book.h5 / scen.h5 under tmp; returns their paths and the used factor names."""
    factors = []
    for name, lvl, iv, _ in UNDERLYINGS:
        factors.append((name, "price", lvl))
        factors.append((name + ".iv", "vol", iv))
    factors.append(("USD3M", "rate", 0.045))        # a factor no position uses: needs no history
    fidx = {n: i for i, (n, _, _) in enumerate(factors)}
    instruments = []
    for i in range(n_instruments):
        u = int(rng.integers(0, len(UNDERLYINGS))) if i >= len(UNDERLYINGS) else i
        name, lvl, iv, home = UNDERLYINGS[u]
        typ = str(rng.choice(["spot", "future", "option", "future_option"], p=[0.2, 0.2, 0.35, 0.25]))
        silo = home if home == 2 else (0 if typ in ("spot", "option") else 1)
        ins = dict(id="I%03d_%s_%s" % (i, name, typ), type=typ, silo=silo, underlying=fidx[name],
                   multiplier=float(rng.choice([1.0, 5.0, 10.0, 50.0])))
        if typ in ("option", "future_option"):
            ins.update(vol_factor=fidx[name + ".iv"] if rng.random() < 0.85 else -1,
                       strike=lvl * float(rng.uniform(0.8, 1.2)),
                       expiry=float(rng.choice([0.004, 0.03, 0.1, 0.25, 0.5, 1.5])),
                       call=int(rng.integers(0, 2)), implied_vol=iv * float(rng.uniform(0.85, 1.25)),
                       rate=0.04, dividend_yield=0.012 if typ == "option" else 0.0)
        instruments.append(ins)
    accounts = [("ACC%03d" % a, int(rng.random() < 0.75)) for a in range(n_accounts)]
    positions = []
    for a in range(n_accounts):
        for _ in range(int(rng.integers(1, 7))):
            q = float(np.round(rng.normal(0, 8)))
            positions.append((a, int(rng.integers(0, n_instruments)), q if q != 0 else 1.0))
    positions.append((0, positions[0][1], 3.0))     # a repeated (account, instrument) pair
    order = rng.permutation(len(positions))          # positions need not be sorted by account
    positions = [positions[i] for i in order]
    book = os.path.join(tmp, "book.h5")
    tl.write_portfolio(book, factors, SILOS, instruments, accounts, positions)

    # history: price log-returns and vol changes, fat-tailed, correlated; an extra column
    hnames = [n for n, k, _ in factors if k != "rate"] + ["EXTRA"]
    nf = len(hnames)
    C = np.full((nf, nf), 0.35) + 0.65 * np.eye(nf)
    for j in range(0, nf - 1, 2):                     # a price and its vol move against each other
        C[j, j + 1] = C[j + 1, j] = -0.6
    C = C @ C.T / nf + np.eye(nf) * 0.3
    d = np.sqrt(np.diag(C))
    C = C / np.outer(d, d)
    vol = np.array([0.012 if "." not in n else 0.008 for n in hnames])
    vol[hnames.index("BTC")] = 0.035
    z = rng.standard_t(5, (n_days, nf)) * math.sqrt(3 / 5)
    z[n_days // 2:] *= 1.6                           # a calmer then a stormier regime: EWMA has work
    R = z @ np.linalg.cholesky(C).T * vol
    sets = {}
    pf = [n for n, _, _ in factors[:8]]
    S = 16
    sets["grid"] = dict(factor=pf, shock=rng.normal(0, 0.06, (S, len(pf))),
                        weight=np.where(np.arange(S) < 12, 1.0, 0.35), measure="worst")
    sets["tail"] = dict(factor=pf[::-1], shock=rng.normal(0, 0.05, (40, len(pf))), measure="es",
                        confidence=0.9)
    sets["var95"] = dict(factor=["SPX", "NDX", "RTY", "SPX.iv"], shock=rng.normal(0, 0.04, (60, 4)),
                         measure="var", confidence=0.95)
    sets["esdef"] = dict(factor=pf, shock=rng.normal(0, 0.03, (100, len(pf))), measure="es")
    scen = os.path.join(tmp, "scen.h5")
    tl.write_scenarios(scen, (hnames, tl.dates(n_days), R), sets)
    return book, scen


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def setargs(cfg):
    return ["%s=%s" % (k, v) for k, v in cfg.items()]


def run_ok(tag, book, scen, out, device, cfg, extra=(), env=None):
    # "opencl-scalar": the OpenCL device with the one-scenario-per-work-item
    # revaluation and aggregation kernels (what GPUs run) instead of
    # xm_k_revalue8 and xm_k_aggregate8 (CPU devices)
    env = dict(env or {})
    if device == "opencl-scalar":
        env["XM_VEC8"] = "0"
        device = "opencl"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        rc, so, se, dt = tl.margin_run(book, scen, out, device, setargs(cfg), extra)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ok = T.check("%s: run exits 0 (%.2f s)" % (tag, dt), rc == 0 and os.path.exists(out),
                 "rc %d: %s" % (rc, se.strip()[-600:]))
    return ok


def compare_reference(tag, book, scen, out, cfg):
    rcfg = dict(cfg)
    rcfg["reference.var_attribution"] = "kth"
    ref = xr.compute(book, scen, out, rcfg)
    buf = io.StringIO()
    ok, rep = xr.compare(ref, out, rtol=1e-9, out=buf)
    for name in xr.MARGIN_DATASETS:
        if name not in rep:
            T.check("%s: reference %s compared" % (tag, name), False, "not in the comparison")
            continue
        if name in xr.FLAG_DATASETS:
            T.check("%s: reference %s" % (tag, name), rep[name] == 0,
                    "%d accounts differ beyond ties" % rep[name] if rep[name] >= 0 else "missing or misshapen")
        else:
            T.check("%s: reference %s" % (tag, name), rep[name] <= 1e-9, "max rel %.2e" % rep[name])
    # a version-1 book has no /collateral: no collateral outputs
    T.check("%s: no collateral outputs without /collateral" % tag, rep.get("collateral_absent", True))
    if not ok:
        print(buf.getvalue().rstrip())
    T.check("%s: reference compare overall (sets %s)" % (tag, ref["sets"]), ok)
    return ref


def margin_equal_bitwise(a, b):
    ma, mb = tl.read_margin(a), tl.read_margin(b)

    diff = [k for k in ma if k[0] != "_" and (k not in mb or not tl.same_bits(ma[k], mb[k]))]
    return set(ma) == set(mb) and not diff, diff


def shocks_close(tag, got, exp, tol):
    got = np.asarray(got)
    exp = np.asarray(exp)
    if got.shape != exp.shape:
        return T.check(tag, False, "shape %s, expected %s" % (got.shape, exp.shape))
    d = float(np.max(np.abs(got - exp))) if got.size else 0.0
    sc = float(np.max(np.abs(exp))) if exp.size else 1.0
    return T.check(tag, d <= tol * max(sc, 1e-300), "max |diff| %.2e of max |x| %.2e" % (d, sc))


# --------------------------------------------------------------------------
# the random-book checks
# --------------------------------------------------------------------------

def random_book_checks(tmp, devices):
    book, scen = random_book(tmp, RNG)
    mcseed = int(RNG.integers(0, 2**32))
    p = xr.read_portfolio(book)
    used_idx = sorted(set(p["underlying"][p["pos_instrument"]].tolist()) |
                      set(int(v) for v in p["vol_factor"][p["pos_instrument"]] if v >= 0))
    used = [p["factor_name"][i] for i in used_idx]
    print("# book: %d accounts, %d positions, used factors %s, montecarlo.seed %d" %
          (len(p["account_id"]), len(p["pos_quantity"]), used, mcseed))

    cfg_a = {"montecarlo.scenarios": 500, "montecarlo.correlation_stress": 0.3, "montecarlo.seed": mcseed}
    cfg_b = {"horizon_days": 5, "confidence": 0.95, "historical.measure": "var", "historical.lookback": 250,
             "historical.apc_floor": 0.5, "historical.ewma_lambda": 0.94, "montecarlo.distribution": "normal",
             "montecarlo.scenarios": 400, "montecarlo.measure": "var", "montecarlo.seed": mcseed + 1,
             "pricing.vol_term_power": 0.5, "cross_margin.offset_cap": 0.6, "minimum.per_contract": 0.5}
    res = {}
    for dev in devices:
        for case, cfg in (("A", cfg_a), ("B", cfg_b)):
            out = os.path.join(tmp, "%s_%s.h5" % (case, dev))
            tag = "%s case %s" % (dev, case)
            if run_ok(tag, book, scen, out, dev, cfg, ["--save-scenarios"]):
                res[(case, dev)] = out
                T.run(compare_reference, tag, book, scen, out, cfg)
    # set list of case A
    if ("A", "cpu") in res:
        with h5py.File(res[("A", "cpu")], "r") as f:
            got = tl.strings(f["set"])
        T.check("case A: /set run order", got == ["historical", "montecarlo", "montecarlo_stressed",
                                                 "esdef", "grid", "tail", "var95"], str(got))

    # historical shocks == xm_reference.historical_set
    sc = xr.read_scenarios(scen)
    hcol = [sc["history"]["factor"].index(n) for n in used]
    for case, cfg in (("A", cfg_a), ("B", cfg_b)):
        if (case, "cpu") not in res:
            continue
        c = xr.make_config(cfg)
        exp, lab = xr.historical_set(sc["history"]["return"][:, hcol], sc["history"]["date"],
                                     c["horizon_days"], c["historical.ewma_lambda"], c["historical.apc_floor"],
                                     c["historical.filtered"], c["historical.lookback"])
        for dev in devices:
            if (case, dev) not in res:
                continue
            fac, sh = tl.read_shocks(res[(case, dev)], "historical")
            full = xr.align_shocks(fac, sh, p["factor_name"])
            got = full[:, used_idx]
            shocks_close("%s case %s: historical shocks == historical_set (1e-12)" % (dev, case), got, exp, 1e-12)
            others = [i for i in range(len(p["factor_name"])) if i not in used_idx]
            T.check("%s case %s: historical shocks of unused factors are 0" % (dev, case),
                    not np.any(full[:, others]))
            with h5py.File(res[(case, dev)], "r") as f:
                T.check("%s case %s: historical labels are the window-end dates" % (dev, case),
                        tl.strings(f["scenarios/historical/label"]) == lab)

    # Monte Carlo shocks: cpu == OpenCL
    if "opencl" in devices:
        for case in ("A", "B"):
            if (case, "cpu") not in res or (case, "opencl") not in res:
                continue
            names = ["montecarlo"] + (["montecarlo_stressed"] if case == "A" else [])
            for name in names:
                fc, xc = tl.read_shocks(res[(case, "cpu")], name)
                fo, xo = tl.read_shocks(res[(case, "opencl")], name)
                T.check("case %s: %s factor columns cpu == opencl" % (case, name), fc == fo)
                shocks_close("case %s: %s shocks cpu == opencl (1e-12)" % (case, name), xo, xc, 1e-12)

    # prefix property: 200 scenarios are the first 200 of 500
    for dev in devices:
        if ("A", dev) not in res:
            continue
        out = os.path.join(tmp, "prefix_%s.h5" % dev)
        cfg = dict(cfg_a, **{"montecarlo.scenarios": 200})
        if run_ok("%s prefix (200 scenarios)" % dev, book, scen, out, dev, cfg, ["--save-scenarios"]):
            for name in ("montecarlo", "montecarlo_stressed"):
                f2, x2 = tl.read_shocks(out, name)
                f5, x5 = tl.read_shocks(res[("A", dev)], name)
                T.check("%s prefix: %s has 200 scenarios" % (dev, name), x2.shape[0] == 200, str(x2.shape))
                shocks_close("%s prefix: %s scenario s of 200 == of 500 (1e-12)" % (dev, name),
                             x2, x5[:x2.shape[0]], 1e-12)

    # the device's Monte Carlo generation in chunks of 128 scenarios (XM_MC_CHUNK;
    # the default chunk holds all 500) gives the same scenarios and requirements
    if ("A", "opencl") in res:
        out = os.path.join(tmp, "chunked_opencl.h5")
        if run_ok("opencl chunked Monte Carlo (XM_MC_CHUNK=128)", book, scen, out, "opencl", cfg_a,
                  ["--save-scenarios"], env={"XM_MC_CHUNK": "128"}):
            for name in ("montecarlo", "montecarlo_stressed"):
                _, xc = tl.read_shocks(out, name)
                _, xw = tl.read_shocks(res[("A", "opencl")], name)
                shocks_close("opencl chunked: %s == one chunk (1e-12)" % name, xc, xw, 1e-12)
            with h5py.File(out, "r") as fc, h5py.File(res[("A", "opencl")], "r") as fw:
                a, b = fc["margin/requirement"][:], fw["margin/requirement"][:]
                T.check("opencl chunked: requirements == one chunk (1e-12)",
                        np.allclose(a, b, rtol=1e-12, atol=0), "max diff %.3g" % np.max(np.abs(a - b)))

    # determinism: the same run twice is bitwise identical
    for dev in devices:
        if ("A", dev) not in res:
            continue
        out = os.path.join(tmp, "again_%s.h5" % dev)
        if run_ok("%s repeat of case A" % dev, book, scen, out, dev, cfg_a, ["--save-scenarios"]):
            same, diff = margin_equal_bitwise(res[("A", dev)], out)
            T.check("%s: identical inputs give bitwise identical /margin" % dev, same, "differ: %s" % diff)

    # single precision within 1e-4 of double
    for dev in devices:
        for case, cfg in (("A", cfg_a), ("B", cfg_b)):
            if (case, dev) not in res:
                continue
            out = os.path.join(tmp, "single_%s_%s.h5" % (case, dev))
            if run_ok("%s case %s --precision single" % (dev, case), book, scen, out, dev, cfg,
                      ["--precision", "single"]):
                with h5py.File(out, "r") as f:
                    T.check("%s case %s single: precision attribute" % (dev, case),
                            tl.attr_str(f.attrs.get("precision", "")) == "single")
                got = tl.read_margin(out)["requirement"]
                exp = tl.read_margin(res[(case, dev)])["requirement"]
                # METHODOLOGY.md section 5: relative to the account's scale -- its
                # gross notional (sum of |q| * multiplier * underlying level), so that an
                # account whose double requirement is 0 is not compared to 0 relatively.
                notional = np.zeros(len(p["account_id"]))
                inst = p["pos_instrument"]
                np.add.at(notional, p["pos_account"],
                          np.abs(p["pos_quantity"]) * p["multiplier"][inst] *
                          p["factor_level"][p["underlying"][inst]])
                T.close("%s case %s: single requirement within 1e-4 of double" % (dev, case), got, exp,
                        1e-4, scale=np.maximum(np.abs(exp), notional))

    # memory cap: several account blocks and scenario tiles, same results. The
    # plan counts every buffer of the loop (the cpu backend's reduction scratch,
    # 4 accounts x (G + 1) x S doubles a thread, and --save-pnl's host copy of
    # L included): 2M leaves room for a few accounts per block.
    cfg_m = dict(cfg_a, **{"montecarlo.scenarios": 3000})
    A, G = len(p["account_id"]), len(p["silo_name"])
    per_acct = 2 * 3000 * (G + 1) * 8
    print("# --mem-limit 2M: a few accounts per block (%d bytes of losses each, of %d accounts)"
          % (per_acct, A))
    for dev in devices:
        outs = []
        for lim in (None, "2M"):
            out = os.path.join(tmp, "mem_%s_%s.h5" % (dev, lim))
            extra = ["--save-pnl"] + (["--mem-limit", lim] if lim else [])
            if run_ok("%s mem-limit %s (3000 MC scenarios)" % (dev, lim or "none"), book, scen, out, dev, cfg_m,
                      extra):
                outs.append(out)
        if len(outs) == 2:
            ma, mb = tl.read_margin(outs[0]), tl.read_margin(outs[1])
            scale = np.maximum(np.abs(ma["requirement"]), 1e-300)
            for k in ("requirement", "unified", "siloed", "diversification", "minimum", "by_set", "by_silo",
                      "attribution", "requirement_by_silo", "hedge_credit"):
                if k not in ma or k not in mb:
                    T.check("%s --mem-limit 2M: %s in both results" % (dev, k), False)
                    continue
                sc_ = scale if ma[k].ndim == 1 else scale[:, None]
                T.close("%s --mem-limit 2M: %s == uncapped (1e-12)" % (dev, k), mb[k], ma[k], 1e-12, scale=sc_)
            T.check("%s --mem-limit 2M: binding_set == uncapped" % dev,
                    np.array_equal(ma["binding_set"], mb["binding_set"]))
            if dev == "opencl":  # xm_k_revalue8: every scenario takes the vector code, any tiling
                T.check("opencl --mem-limit 2M: /margin bitwise == uncapped",
                        all(np.array_equal(ma[k], mb[k]) for k in ma),
                        str([k for k in ma if not np.array_equal(ma[k], mb[k])]))
            with h5py.File(outs[0], "r") as fa, h5py.File(outs[1], "r") as fb:
                for name in fa["set"].asstr()[()]:  # /pnl/<set>, not its scales
                    a_, b_ = fa["pnl"][name][()], fb["pnl"][name][()]
                    T.close("%s --mem-limit 2M: /pnl/%s == uncapped" % (dev, name), b_, a_, 1e-6,
                            scale=np.maximum(np.abs(a_).max(axis=0), 1e-30)[None, :])


# --------------------------------------------------------------------------
# Monte Carlo moments
# --------------------------------------------------------------------------

def two_factor_book(tmp, rng, n_days=300, zero_column=False, drop_column=False, days=None, only_beta=False):
    """Two price factors ALPHA_IDX, BETA_FUT; accounts X (long ALPHA, short BETA) and
    Y (long BETA, short ALPHA): each has a factor with a real history, even when
    zero_column zeroes BETA_FUT's (an account moved only by ~1e-8 shocks would have
    losses at the rounding level of S(1 - exp(x)) and no meaningful 1e-9 comparison).
    only_beta: one account with BETA_FUT only, the only used factor."""
    factors = [("ALPHA_IDX", "price", 100.0), ("BETA_FUT", "price", 250.0)]
    instruments = [dict(id="ALPHA", type="spot", silo=0, underlying=0, multiplier=1.0),
                   dict(id="BETA", type="future", silo=1, underlying=1, multiplier=10.0)]
    book = os.path.join(tmp, "two.h5")
    if only_beta:
        tl.write_portfolio(book, factors, ["securities", "futures"], instruments, [("Y", 0)], [(0, 1, 2.0)])
    else:
        tl.write_portfolio(book, factors, ["securities", "futures"], instruments, [("X", 1), ("Y", 0)],
                           [(0, 0, 10.0), (0, 1, -1.0), (1, 1, 2.0), (1, 0, -3.0)])
    n = days if days is not None else n_days
    C = np.array([[1.0, 0.6], [0.6, 1.0]])
    R = rng.standard_normal((n, 2)) @ np.linalg.cholesky(C).T * np.array([0.01, 0.02])
    names = ["ALPHA_IDX", "BETA_FUT"]
    if zero_column:
        R[:, 1] = 0.0
    if drop_column:
        names, R = names[:1], R[:, :1]
    scen = os.path.join(tmp, "two_scen.h5")
    tl.write_scenarios(scen, (names, tl.dates(n), R), None)
    return book, scen, names, R


N_MOMENT = 200000  # issue 4: the sample covariance of 200k scenarios


def moment_checks(tmp):
    book, scen, names, R = two_factor_book(tmp, RNG)
    h = 2
    sigma = xr.second_moment(xr.filtered_window(R))
    L = np.linalg.cholesky(sigma)
    kurt = {}
    for dist in ("student_t", "normal"):
        out = os.path.join(tmp, "mc_%s.h5" % dist)
        cfg = {"montecarlo.scenarios": N_MOMENT, "montecarlo.distribution": dist, "historical.enabled": "false",
               "horizon_days": h}
        if not run_ok("%s %d scenarios" % (dist, N_MOMENT), book, scen, out, "cpu", cfg, ["--save-scenarios"]):
            continue
        fac, x = tl.read_shocks(out, "montecarlo")
        x = xr.align_shocks(fac, x, names)
        n = x.shape[0]
        T.check("%s: %d scenarios saved" % (dist, N_MOMENT), n == N_MOMENT, str(x.shape))
        # The zero-mean second moment against h Sigma, within 5 of its own
        # standard errors (estimated from the sample: x_i x_j has a heavy tail
        # under Student-t, so a fixed relative bound would be too loose or too tight).
        prod = x[:, :, None] * x[:, None, :]
        C = prod.mean(axis=0)
        se = prod.std(axis=0, ddof=1) / math.sqrt(n)
        z = np.abs(C - h * sigma) / se
        T.check("%s: second moment of %d scenarios = h Sigma within 5 standard errors" % (dist, n),
                np.all(z <= 5.0), "max %.2f se; C %s vs h Sigma %s" % (z.max(), C.ravel(), (h * sigma).ravel()))
        print("# %s: |C - h Sigma| in standard errors %s" % (dist, z.ravel()))
        w = np.linalg.solve(L, x.T).T / math.sqrt(h)   # whitened: iid, unit variance
        kurt[dist] = np.mean(w ** 4, axis=0) / np.mean(w ** 2, axis=0) ** 2
        print("# %s: kurtosis of the whitened shocks %s, means %s" % (dist, kurt[dist], w.mean(axis=0)))
        T.check("%s: mean of the shocks ~ 0" % dist, np.all(np.abs(w.mean(axis=0)) < 5 / math.sqrt(n)),
                str(w.mean(axis=0)))
    if len(kurt) == 2:
        T.check("normal: kurtosis ~ 3", np.all(np.abs(kurt["normal"] - 3.0) < 0.2), str(kurt["normal"]))
        T.check("student_t (dof 5): kurtosis clearly above normal's",
                np.all(kurt["student_t"] > kurt["normal"] + 1.5), "t %s vs normal %s" % (kurt["student_t"],
                                                                                        kurt["normal"]))


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------

def expect_exit2(tag, book, scen, out, cfg, must_contain):
    rc, so, se, dt = tl.margin_run(book, scen, out, "cpu", setargs(cfg))
    msg = (se + so).strip()
    T.check("%s: exit status 2" % tag, rc == 2, "rc %d: %s" % (rc, msg[-300:]))
    low = msg.lower()
    miss = [w for w in must_contain if w.lower() not in low]
    T.check("%s: message names %s" % (tag, must_contain), not miss, repr(msg[-300:]))
    T.check("%s: no results file written" % tag, not os.path.exists(out))
    if msg:
        print("#   message: %s" % msg.splitlines()[-1][:200])


def jitter_checks(tmp):
    """One used factor with an all-zero history among two: Sigma is singular but
    METHODOLOGY.md 1 adds the smallest delta*I (delta >= 1e-12 max diag) and reports
    delta: the run succeeds and still matches the reference."""
    book, scen, names, R = two_factor_book(tmp, RNG, zero_column=True)
    out = os.path.join(tmp, "jitter.h5")
    cfg = {"montecarlo.scenarios": 300, "montecarlo.correlation_stress": 0.5}
    rc, so, se, dt = tl.run_xm(["run", "--portfolio", book, "--scenarios", scen, "-o", out, "--device", "cpu",
                                "--save-scenarios"] + sum((["--set", kv] for kv in setargs(cfg)), []))
    if not T.check("singular Sigma (one all-zero history column): run exits 0 (%.2f s)" % dt, rc == 0,
                   "rc %d: %s" % (rc, se.strip()[-300:])):
        return
    sig = xr.second_moment(xr.filtered_window(R))
    _, delta = xr.cholesky_jitter(sig)
    T.check("singular Sigma: the run reports the jitter delta", "%.3g" % delta in se and "positive definite" in se,
            "expected delta %.3g in %r" % (delta, se.strip()[-200:]))
    fac, x = tl.read_shocks(out, "montecarlo")
    x = xr.align_shocks(fac, x, names)
    T.check("singular Sigma: Monte Carlo shocks of the zero-history factor are ~ sqrt(h delta)",
            0 < np.abs(x[:, 1]).max() < 50 * math.sqrt(2 * delta), "max |x| %.3g" % np.abs(x[:, 1]).max())
    compare_reference("singular Sigma", book, scen, out, cfg)


def error_checks(tmp):
    mc = {"montecarlo.scenarios": 200}
    book, scen, _, _ = two_factor_book(tmp, RNG, drop_column=True)
    expect_exit2("missing /history column", book, scen, os.path.join(tmp, "e1.h5"), mc, ["BETA_FUT"])
    book, scen, _, _ = two_factor_book(tmp, RNG, days=3)
    expect_exit2("history shorter than horizon_days", book, scen, os.path.join(tmp, "e2.h5"),
                 dict(mc, horizon_days=5), ["horizon_days"])
    book, scen, _, _ = two_factor_book(tmp, RNG, zero_column=True, only_beta=True)
    expect_exit2("Sigma not positive definite (the only used factor's history is all zeros)", book, scen,
                 os.path.join(tmp, "e3.h5"), mc, ["positive definite"])
    book, scen, _, _ = two_factor_book(tmp, RNG)
    expect_exit2("--set confidence=1.5", book, scen, os.path.join(tmp, "e4.h5"), dict(mc, confidence=1.5),
                 ["confidence"])
    expect_exit2("--set confidence=0", book, scen, os.path.join(tmp, "e5.h5"), dict(mc, confidence=0),
                 ["confidence"])


def main():
    devices = ["cpu"]
    if tl.opencl_available():
        devices += ["opencl", "opencl-scalar"]
    else:
        T.skip("the random book checks on --device opencl and opencl-scalar",
               "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        t0 = time.perf_counter()
        T.run(random_book_checks, tmp, devices)
        print("# random book checks %.1f s" % (time.perf_counter() - t0))
        t0 = time.perf_counter()
        T.run(moment_checks, tmp)
        print("# Monte Carlo moment checks %.1f s" % (time.perf_counter() - t0))
        t0 = time.perf_counter()
        T.run(jitter_checks, tmp)
        T.run(error_checks, tmp)
        print("# error checks %.1f s" % (time.perf_counter() - t0))
    T.finish()


if __name__ == "__main__":
    main()
