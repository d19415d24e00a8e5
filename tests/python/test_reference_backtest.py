#!/usr/bin/python3
"""`xmargin backtest` (METHODOLOGY §7, FORMAT.md §4) and the stressed period
(METHODOLOGY §1) against the independent NumPy reference (xm_reference.py:
backtest(), compute() with apc.stressed_*), on fresh random small books.

Every run draws new books, histories and ready-made sets from a seed taken from
the clock (printed; set XM_TEST_SEED to replay one). The books are the random
books of test_reference_products.py (every instrument type, USD / BTC / EUR
accounts) and test_reference_collateral.py (collateral, liquidity columns),
made small (xm_testlib.products_book / collateral_book), with a short history
(72 rows, an old crisis at rows 5-20 and a new one from row 61; backtest.min_history
30, backtest.days 20, horizon 2: 20 days, 10 of them test days; one case at
horizon 3, one with every row in the window and 41 days). Checks, on --device
cpu and on opencl when `xmargin devices` lists one:
  * a hand-computed book (one spot, a crash in the history): the realised
    losses, the margins, the exceptions, Kupiec, Christoffersen and the traffic
    light as written out by hand, a silo and an account that hold nothing;
  * every dataset of the backtest file (/series/*, /stats/<margin>/*,
    /stats/silo/*, /stats/total/<margin>/*, /day, /realised_end, the root
    attributes) equals the reference: series to 1e-9 max(|x|, Lambda_a(d)),
    ints exactly, statistics to 1e-9 relative (1e-12 absolute), NaN where NaN,
    zones equal (an exception where realised and margin tie within the bound
    may go either way; peak-to-trough and the largest increase are taken of the
    engine's own margin series); configurations with the stressed period at w = 0 and w > 0 on
    a range that is empty on the first days, collateral.method = scenario,
    backtest.ready_sets = false, Monte Carlo with correlation stress and
    without Monte Carlo, --days;
  * --precision single: the series within 1e-4 M_a(d) + 1e-6 G_a (§5);
  * the saved shocks of each day: historical and stressed_period == the
    reference's, and the Monte Carlo shocks of every day are sqrt(h) L_d y_s
    with the same y_s every day (L_d from the reference's Sigma of day d);
  * (a) the /series row of a day d == `xmargin run` on the scenario file
    whose /history is cut at d (montecarlo.scenarios = backtest.mc_scenarios,
    /sets dropped when ready_sets = false): requirement, unified, siloed,
    by_silo, binding_set, and the same Monte Carlo shocks; and a run cut
    before the stressed range exits 2 (no window in the range);
  * (b) `xmargin run` with the stressed period (w = 0 and w > 0) == the
    reference: by_set (the blend in the historical column, R_sp unblended),
    binding_set, requirement, attribution and every other /margin dataset, and
    the saved stressed_period shocks and labels;
  * (c) the errors of decision D3 (and the backtest's day count): exit 2, a
    message naming the keys, no output file; the reference refuses them too;
  * (d) xarray (h5netcdf) opens /series with the coordinates day and account
    (and silo), and /stats/<margin> along account.

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

N_ROWS = 72                        # rows of /history: days d = 51..70 (1-based), tests 52, 54, .., 70
MC = 120                           # backtest.mc_scenarios
STRESS_FROM, STRESS_MULT = 61, 4.0  # rows 61..72 of the books' histories: 4 times the moves
OLD_CRISIS = (5, 20, 3.0)           # rows 5..20: 3 times the moves (C_schedule's stressed period)
BASE = {"horizon_days": 2, "backtest.min_history": 30, "backtest.days": 20, "backtest.mc_scenarios": MC,
        "montecarlo.scenarios": 5000, "historical.lookback": 36, "backtest.apc_window": 5}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def write_config(path, cfg):
    """cfg {key: value} as the engine's INI file: top-level keys, then [section] key = value."""
    top = {k: v for k, v in cfg.items() if "." not in k}
    sec = {}
    for k, v in cfg.items():
        if "." in k:
            s, n = k.split(".", 1)
            sec.setdefault(s, {})[n] = v

    def fmt(v):
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    lines = ["%s = %s" % (k, fmt(v)) for k, v in top.items()]
    for s, kv in sec.items():
        lines += ["", "[%s]" % s] + ["%s = %s" % (k, fmt(v)) for k, v in kv.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def setargs(cfg):
    out = []
    for k, v in cfg.items():
        out += ["--set", "%s=%s" % (k, ("true" if v else "false") if isinstance(v, bool) else v)]
    return out


def run_backtest(book, scen, out, cfgfile, device, sets=None, extra=()):
    args = ["backtest", "--portfolio", book, "--scenarios", scen, "--config", cfgfile, "-o", out,
            "--device", device] + setargs(sets or {}) + list(extra)
    return tl.run_xm(args)


def backtest_ok(tag, book, scen, out, cfgfile, device, sets=None, extra=("--save-scenarios",)):
    rc, so, se, dt = run_backtest(book, scen, out, cfgfile, device, sets, list(extra) + ["-q"])
    ok = rc == 0 and os.path.exists(out)
    return T.check("%s: xmargin backtest exits 0 (%.2f s)" % (tag, dt), ok,
                   "" if ok else "rc %d: %s" % (rc, (se + so).strip()[-600:]))


def run_ok(tag, book, scen, out, cfgfile, device="cpu", sets=None, extra=()):
    args = ["run", "--portfolio", book, "--scenarios", scen, "--config", cfgfile, "-o", out, "--device", device,
            "-q"] + setargs(sets or {}) + list(extra)
    rc, so, se, dt = tl.run_xm(args)
    ok = rc == 0 and os.path.exists(out)
    return T.check("%s: xmargin run exits 0 (%.2f s)" % (tag, dt), ok,
                   "" if ok else "rc %d: %s" % (rc, (se + so).strip()[-600:]))


def report(tag, results):
    """T.check each (what, ok, detail) of xr.compare_backtest."""
    for what, ok, detail in results:
        T.check("%s: %s" % (tag, what), ok, detail)


def names_key(msg, key):
    """The message names the configuration key `section.name`: as such, or as the
    INI file writes it ([section] name)."""
    sec, name = key.split(".", 1) if "." in key else ("", key)
    return key in msg or ("[%s] %s" % (sec, name)) in msg or (sec in msg and name in msg)


def row_date(scen_path, row):
    with h5py.File(scen_path, "r") as f:
        return tl.strings(f["history/date"])[row - 1]


def cut_history(src, dst, d, keep_sets=True):
    """dst: the scenario file src with /history cut to rows 1..d (and /sets dropped
    unless keep_sets), written with h5py."""
    s = xr.read_scenarios(src)
    h = s["history"]
    sets = {}
    if keep_sets:
        for name, v in s["sets"].items():
            sets[name] = dict(factor=v["factor"], shock=v["shock"], label=v["label"], weight=v["weight"],
                              measure=v["measure"], confidence=v["confidence"])
    tl.write_scenarios(dst, (h["factor"], h["date"][:d], h["return"][:d]), sets)


def stressed_keys(scen, first_row, last_row, w):
    return {"apc.stressed_start": row_date(scen, first_row), "apc.stressed_end": row_date(scen, last_row),
            "apc.stressed_weight": w}


# --------------------------------------------------------------------------
# hand-computed book
# --------------------------------------------------------------------------

def hand_case(tmp, devices):
    """One spot (100 USD, q = 1) in silo 0 for account HOLD; account EMPTY holds
    nothing (+2 and -2 of the spot: a net quantity of 0); silo 1 holds nothing.
    Returns alternate +-1% (h-day sums 0) but a -10% day at row 31: the margin
    is 0 until the crash enters the window, the realised loss of the days d =
    29, 30 (rows 30-31, 31-32) is 100 (1 - e^-0.09)."""
    Tn = 40
    r = np.where(np.arange(Tn) % 2 == 1, 0.01, -0.01)
    r[30] = -0.10                                   # row 31
    book = os.path.join(tmp, "hand_book.h5")
    scen = os.path.join(tmp, "hand_scen.h5")
    tl.write_portfolio(book, [("X", "price", 100.0)], ["s", "t"], [dict(id="X", type="spot", silo=0, underlying=0)],
                       [("HOLD", 1), ("EMPTY", 1)], [(0, 0, 1.0), (1, 0, 2.0), (1, 0, -2.0)])
    tl.write_scenarios(scen, (["X"], tl.dates(Tn), r[:, None]))
    cfg = {"horizon_days": 2, "montecarlo.enabled": False, "historical.filtered": False,
           "historical.measure": "worst", "historical.lookback": 10, "backtest.min_history": 10,
           "backtest.days": 20, "minimum.per_contract": 0.0, "backtest.apc_window": 3}
    cfgfile = write_config(os.path.join(tmp, "hand.ini"), cfg)
    ref = xr.backtest(book, scen, cfg)
    # by hand: days 19..38, tests 20, 22, .., 38
    days = np.arange(19, 39)
    real = np.array([100.0 * (1.0 - math.exp(r[d] + r[d + 1])) for d in days])   # rows d+1, d+2
    marg = []
    for d in days:
        ends = range(max(2, d - 10 + 2), d + 1)                                     # window ends, lookback 10
        marg.append(max(0.0, max(100.0 * (1.0 - math.exp(r[t - 2] + r[t - 1])) for t in ends)))
    marg = np.array(marg)
    T.check("hand: the reference's days are 19..38", np.array_equal(ref["rows"], days), ref["rows"])
    T.close("hand: the reference's realised loss == 100 (1 - exp(r_{d+1} + r_{d+2}))",
            ref["series/realised"][:, 0], real, 1e-12, scale=100.0)
    T.close("hand: the reference's requirement == the worst window loss", ref["series/requirement"][:, 0], marg,
            1e-12, scale=100.0)
    T.check("hand: exceptions on days 29 and 30 only (the crash before it enters the window)",
            np.array_equal(days[real > marg], [29, 30]), days[real > marg])
    # Kupiec with x = 1 of N' = 10 (day 30), p = 0.01
    lr = 2 * (9 * math.log(0.9 / 0.99) + math.log(0.1 / 0.01))
    # Christoffersen: e = 0 0 0 0 0 1 0 0 0 0: n00 = 7, n01 = 1, n10 = 1, n11 = 0
    ind = -2 * (8 * math.log(8 / 9) + math.log(1 / 9)) + 2 * (7 * math.log(7 / 8) + math.log(1 / 8))
    B = 0.99 ** 10 + 10 * 0.01 * 0.99 ** 9
    hand = {"exceptions_all": 2, "exceptions": 1, "observed_coverage": 0.9, "kupiec_lr": lr,
            "kupiec_p": math.erfc(math.sqrt(lr / 2)), "christoffersen_lr": ind, "cc_lr": lr + ind,
            "cc_p": math.exp(-(lr + ind) / 2), "peak_to_trough": 1.0, "max_increase": 0.0}
    T.check("hand: B = P(X <= 1) = %.6f is yellow" % B, 0.95 <= B < 0.9999)
    bad = []
    for k, v in hand.items():
        for pre in ("stats/requirement/", "stats/silo/"):
            got = ref[pre + k]
            got = got[0] if pre == "stats/requirement/" else got[0, 0]
            if not abs(float(got) - v) <= 1e-12 * max(1.0, abs(v)):
                bad.append((pre + k, float(got), v))
        got = ref["stats/total/requirement/" + k]
        if not abs(float(got) - v) <= 1e-12 * max(1.0, abs(v)):
            bad.append(("total " + k, float(got), v))
    T.check("hand: the reference's statistics == the hand values (account, silo 0, total)", not bad, bad)
    T.check("hand: zone yellow", ref["stats/requirement/zone"][0] == "yellow" and
            ref["stats/silo/zone"][0, 0] == "yellow" and ref["stats/total/requirement/zone"] == "yellow")
    # the account that holds nothing: computed, 0 exceptions; the silo that holds nothing: none
    e_lr = -2 * 10 * math.log(0.99)
    T.check("hand: an account holding nothing: margins 0, 0 exceptions, LR_pof = -2 N' ln(1 - p), green, "
            "procyclicality NaN",
            np.all(ref["series/requirement"][:, 1] == 0) and ref["stats/requirement/exceptions"][1] == 0 and
            abs(ref["stats/requirement/kupiec_lr"][1] - e_lr) < 1e-12 and ref["stats/requirement/zone"][1] == "green"
            and np.isnan(ref["stats/requirement/peak_to_trough"][1]))
    T.check("hand: a silo holding nothing: counts 0, NaN, zone ''",
            ref["stats/silo/exceptions"][0, 1] == 0 and ref["stats/silo/exceptions_all"][0, 1] == 0 and
            np.isnan(ref["stats/silo/kupiec_lr"][0, 1]) and ref["stats/silo/zone"][0, 1] == "" and
            np.isnan(ref["stats/silo/peak_to_trough"][0, 1]))
    T.check("hand: a silo whose positions net to 0 holds nothing (NaN, zone '')",
            ref["stats/silo/zone"][1, 0] == "" and np.isnan(ref["stats/silo/cc_lr"][1, 0]) and
            ref["stats/requirement/zone"][1] == "green")
    for dev in devices:
        out = os.path.join(tmp, "hand_%s.h5" % dev)
        if backtest_ok("hand %s" % dev, book, scen, out, cfgfile, dev, extra=()):
            report("hand %s" % dev, xr.compare_backtest(ref, out))


# --------------------------------------------------------------------------
# the random books
# --------------------------------------------------------------------------

def stress_history(scen, from_row, to_row, mult):
    """Multiply the returns of rows from_row..to_row by mult: a sudden crisis
    inside the backtest days, so that the realised moves outrun the margins of
    the calm past somewhere (exceptions to count), and an old one that the
    filter deflates and a stressed period restores."""
    with h5py.File(scen, "r+") as f:
        r = np.asarray(f["history/return"][()])
        r[from_row - 1:to_row] *= mult
        f["history/return"][...] = r


def make_books(tmp):
    dp = os.path.join(tmp, "products")
    dc = os.path.join(tmp, "collateral")
    os.makedirs(dp)
    os.makedirs(dc)
    pbook, pscen, _, pcurs = tl.products_book(dp, RNG, n_accounts=8, n_extra=4, n_days=N_ROWS)
    cbook, cbook_s, cscen, info = tl.collateral_book(dc, RNG, n_accounts=11, n_extra=3, n_days=N_ROWS)
    for scen in (pscen, cscen):
        stress_history(scen, STRESS_FROM, N_ROWS, STRESS_MULT)
        stress_history(scen, *OLD_CRISIS)
    print("# products book: accounts %s; collateral book: accounts %s" % (",".join(pcurs), ",".join(info["curs"])))
    return {"products": (pbook, pscen), "schedule": (cbook, cscen), "scenario": (cbook_s, cscen)}


def cases(books, mcseed):
    """name: (book, scen, cfg). Days 51..70 (C_scenario 30..70, C_schedule 50..69); a stressed range
    from row 55 on is empty on days 51..54."""
    pb, ps = books["products"]
    sb, ss = books["schedule"]
    cb, cs = books["scenario"]
    out = {}
    out["P_w0"] = (pb, ps, dict(BASE, **{"montecarlo.seed": mcseed, "montecarlo.correlation_stress": 0.3,
                                         "apc.buffer": 0.2, "historical.apc_floor": 0.5},
                                **stressed_keys(ps, 55, 62, 0.0)))
    out["P_blend"] = (pb, ps, dict(BASE, **{"montecarlo.seed": mcseed + 1, "backtest.ready_sets": False,
                                            "historical.measure": "var", "confidence": 0.95,
                                            "montecarlo.distribution": "normal", "cross_margin.offset_cap": 0.6,
                                            "backtest.coverage": 0.95, "backtest.apc_window": 3},
                                   # the end date lies beyond /history: the dates not there are absent
                                   **{"apc.stressed_start": row_date(ps, 53), "apc.stressed_end": "2031-12-31",
                                      "apc.stressed_weight": 0.4}))
    # every row of history in the window (lookback > T), days limited by the history (N = 41), the
    # procyclicality window longer than the days
    # backtest.mc_scenarios = 0: montecarlo.scenarios
    out["C_scenario"] = (cb, cs, dict(BASE, **{"montecarlo.seed": mcseed + 2, "collateral.method": "scenario",
                                               "backtest.mc_scenarios": 0, "montecarlo.scenarios": MC,
                                               "apc.buffer": 0.1, "historical.lookback": 1260,
                                               "backtest.days": 100, "backtest.apc_window": 60},
                                      **stressed_keys(cs, 10, 30, 0.25)))
    # the stressed range is the old crisis (stress_history), outside the lookback: a floor that binds
    out["C_schedule"] = (sb, ss, dict(BASE, **{"montecarlo.enabled": False, "backtest.ready_sets": False,
                                               "historical.ewma_lambda": 0.94, "horizon_days": 3},
                                      **stressed_keys(ss, OLD_CRISIS[0], OLD_CRISIS[1], 0.0)))
    return out


def saved_shock_checks(tag, ref, out):
    """The saved per-day shocks: historical and stressed_period == the reference's;
    Monte Carlo: x_d = sqrt(h) s L_d z with the same draws every day."""
    saved = xr.read_backtest_scenarios(out)
    names = [ref["set"][k] for k in range(len(ref["set"]))]
    for name in ("historical", "stressed_period"):
        if name not in names:
            continue
        if name not in saved:
            T.check("%s: /scenarios/%s saved" % (tag, name), False)
            continue
        sv = saved[name]
        worst, shape_bad = 0.0, []
        pf = [ref["factor_names"][f] for f in ref["used"]]
        cols = [sv["factor"].index(n) if n in sv["factor"] else -1 for n in pf]
        if -1 in cols or len(sv["factor"]) != len(pf):
            T.check("%s: /scenarios/%s/factor == the factors the run moves" % (tag, name), False,
                    "%s vs %s" % (sv["factor"], pf))
            continue
        for j, exp in enumerate(ref["shocks"][name]):
            x = sv["shock"][j][:, cols]
            S = exp.shape[0]
            if x.shape[0] < S or not np.all(np.isnan(x[S:])) or np.any(np.isnan(x[:S])):
                shape_bad.append((j, x.shape[0], S))
                continue
            if S:
                worst = max(worst, float(np.max(np.abs(x[:S] - exp)) / max(np.max(np.abs(exp)), 1e-300)))
        T.check("%s: saved %s shocks of every day == the reference's (1e-12; NaN beyond a day's size)" % (tag, name),
                not shape_bad and worst <= 1e-12, "worst %.2e; (day, rows, size) %s" % (worst, shape_bad[:4]))
    for name in ("montecarlo", "montecarlo_stressed"):
        if name not in names or name not in saved:
            continue
        T.run(mc_consistency, tag, ref, saved, name)


def mc_consistency(tag, ref, saved, name):
    sv = saved[name]
    pf = [ref["factor_names"][f] for f in ref["used"]]
    cols = [sv["factor"].index(n) for n in pf]
    ys, deltas = [], []
    for j in range(len(ref["rows"])):
        L, delta = ref["mc_chol"][name][j]
        x = sv["shock"][j][:, cols]
        ys.append(np.linalg.solve(L, x.T).T)            # sqrt(h) s_s z_s, the same every day
        deltas.append(delta)
    y0 = ys[-1]
    worst = max(float(np.max(np.abs(y - y0))) for y in ys) / float(np.max(np.abs(y0)))
    T.check("%s: %s shocks of every day = L_d (sqrt(h) s z) with the same draws (rel %.1e)" % (tag, name, worst),
            worst <= 1e-8)
    if sv["delta"] is not None:
        T.check("%s: /scenarios/%s/delta == the reference's jitter" % (tag, name),
                np.allclose(sv["delta"], deltas, rtol=1e-9, atol=0), "%s vs %s" % (sv["delta"][:4], deltas[:4]))


def reference_mc_chol(ref, book, scen, cfg):
    """Per day and Monte Carlo set: the reference's Cholesky factor of Sigma of
    day d (the filtered window of rows 1..d) and its jitter."""
    p = xr.read_portfolio(book)
    s = xr.read_scenarios(scen)
    c = xr.make_config(cfg)
    names = p["factor_name"]
    col = [s["history"]["factor"].index(names[f]) for f in ref["used"]]
    R = s["history"]["return"][:, col]
    out = {"montecarlo": [], "montecarlo_stressed": []}
    kappa = float(c["montecarlo.correlation_stress"])
    for d in ref["rows"].tolist():
        w = xr.filtered_window(R[:d], c["historical.ewma_lambda"], c["historical.apc_floor"],
                               c["historical.filtered"], c["historical.lookback"])
        sig = xr.second_moment(w)
        out["montecarlo"].append(xr.cholesky_jitter(sig))
        out["montecarlo_stressed"].append(xr.cholesky_jitter(xr.stressed_moment(sig, kappa)))
    ref["mc_chol"] = out
    ref["factor_names"] = names


def backtest_case(tmp, name, book, scen, cfg, devices):
    cfgfile = write_config(os.path.join(tmp, name + ".ini"), cfg)
    ref = None
    for dev in devices:
        out = os.path.join(tmp, "%s_%s.h5" % (name, dev))
        tag = "%s %s" % (name, dev)
        if not backtest_ok(tag, book, scen, out, cfgfile, dev):
            continue
        if ref is None:
            t0 = time.perf_counter()
            ref = xr.backtest(book, scen, cfg, saved_path=out)
            print("# %s: reference %.1f s, sets %s, days %d..%d" % (name, time.perf_counter() - t0, ref["set"],
                                                                    ref["rows"][0], ref["rows"][-1]))
            reference_mc_chol(ref, book, scen, cfg)
            coverage_checks(name, ref, cfg)
        report(tag, xr.compare_backtest(ref, out))
        T.run(saved_shock_checks, tag, ref, out)
        if name == "P_blend" and dev == "cpu":
            T.run(comparator_bites, tmp, ref, out)
    return ref, cfgfile


def comparator_bites(tmp, ref, out):
    """compare_backtest is not vacuous: a copy of a matching file with a few values
    moved fails exactly there."""
    bad = os.path.join(tmp, "mutated.h5")
    with open(out, "rb") as src, open(bad, "wb") as dst:
        dst.write(src.read())
    with h5py.File(bad, "r+") as f:
        v = f["series/realised"][()]
        i = np.unravel_index(int(np.argmax(np.abs(v))), v.shape)
        v[i] *= 1 + 1e-7
        f["series/realised"][...] = v
        v = f["stats/requirement/kupiec_lr"][()]
        v[0] += 1e-6
        f["stats/requirement/kupiec_lr"][...] = v
        v = f["stats/silo/exceptions"][()]
        v[0, 0] += 1
        f["stats/silo/exceptions"][...] = v
        del f["stats/total/unified/zone"]
        f["stats/total/unified/zone"] = "purple"
        v = f["series/test_day"][()]
        v[0] = 1 - v[0]
        f["series/test_day"][...] = v
    failed = sorted(w.split(" ")[0] for w, ok, _ in xr.compare_backtest(ref, bad) if not ok)
    want = sorted(["/series/realised", "/stats/requirement/kupiec_lr", "/stats/silo/exceptions",
                   "/stats/total/unified/zone", "/series/test_day"])
    T.check("compare_backtest fails exactly on 5 moved values of a matching file", failed == want,
            "failed: %s" % failed)


def coverage_checks(name, ref, cfg):
    """The case exercises what it is meant to (on the reference)."""
    K = ref["set"]
    if cfg.get("apc.stressed_start"):
        isp = K.index("stressed_period")
        sizes = [s.shape[0] for s in ref["shocks"]["stressed_period"]]
        T.check("%s: stressed_period sizes per day %s" % (name, sizes), len(set(sizes)) > 1 or sizes[0] > 0)
        if cfg.get("apc.stressed_weight", 0) == 0 and sizes[0] == 0:
            T.check("%s: the stressed range is empty on the first days (by_set 0 there)" % name,
                    np.all(ref["by_set"][0, :, isp] == 0))
        if cfg.get("apc.stressed_weight", 0) > 0:
            T.check("%s: stressed_period never binds with w > 0" % name, not np.any(ref["series/binding_set"] == isp))
    real, req = ref["series/realised"], ref["series/requirement"]
    T.check("%s: the realised loss is a gain somewhere (not floored)" % name, np.any(real < 0))
    T.check("%s: a test day is marked for every %d-th day" % (name, int(cfg["horizon_days"])),
            int(ref["series/test_day"].sum()) == len(ref["test_idx"]))
    print("# %s: exceptions (requirement) per account %s, silo-level %d, zones %s" % (
        name, ref["stats/requirement/exceptions_all"].tolist(), int(ref["stats/silo/exceptions_all"].sum()),
        sorted(set(ref["stats/requirement/zone"].tolist()))))
    T.check("%s: the margins are not all 0" % name, np.any(req > 0))
    bind = ref["series/binding_set"]
    print("# %s: binding sets over the days and accounts %s" % (name, {K[k]: int(np.sum(bind == k))
                                                                      for k in range(len(K)) if np.any(bind == k)}))


def single_precision(tmp, name, book, scen, cfg, cfgfile):
    """--precision single: every series within the single-precision bound of §5,
    1e-4 M_a(d) + 1e-6 G_a, of the float64 reference."""
    out = os.path.join(tmp, "%s_single.h5" % name)
    if not backtest_ok("%s single" % name, book, scen, out, cfgfile, "cpu",
                       extra=("--save-scenarios", "--precision", "single")):
        return
    ref = xr.backtest(book, scen, cfg, saved_path=out)
    G = xr.compute(book, scen, None, dict({k: v for k, v in cfg.items() if not k.startswith("apc.stressed")},
                                          **{"montecarlo.enabled": False}))["gross_value"]
    bound = 1e-4 * ref["series/requirement"] + 1e-6 * G[None, :]
    with h5py.File(out, "r") as f:
        for k in xr.BT_SERIES:
            got = np.asarray(f["series/" + k][()])
            T.check("%s single: /series/%s within 1e-4 M_a + 1e-6 G_a" % (name, k),
                    got.shape == bound.shape and np.all(np.abs(got - ref["series/" + k]) <= bound),
                    "max %.2e of the bound" % float(np.max(np.abs(got - ref["series/" + k]) / bound)))
        got = np.asarray(f["series/silo_margin"][()])
        T.check("%s single: /series/silo_margin within 1e-4 M_a + 1e-6 G_a" % name,
                np.all(np.abs(got - ref["series/silo_margin"]) <= bound[:, :, None]))


# --------------------------------------------------------------------------
# (a) a backtest day == a run on the history cut at d
# --------------------------------------------------------------------------

def day_vs_run(tmp, name, book, scen, cfg, cfgfile, ref, j_list):
    bt = os.path.join(tmp, "%s_cpu.h5" % name)
    with h5py.File(bt, "r") as f:
        ser = {k: np.asarray(f["series"][k][()]) for k in ("requirement", "unified", "siloed", "silo_margin",
                                                           "binding_set")}
    saved = xr.read_backtest_scenarios(bt)
    for j in j_list:
        d = int(ref["rows"][j])
        cut = os.path.join(tmp, "%s_cut%d.h5" % (name, d))
        cut_history(scen, cut, d, keep_sets=cfg.get("backtest.ready_sets", True))
        out = os.path.join(tmp, "%s_run%d.h5" % (name, d))
        tag = "%s day %d (row %d)" % (name, j, d)
        if not run_ok(tag, book, cut, out, cfgfile, "cpu", {"montecarlo.scenarios": MC}, ["--save-scenarios"]):
            continue
        m = tl.read_margin(out)
        lam = ref["scale"][j]
        for key, sk in (("requirement", "requirement"), ("unified", "unified"), ("siloed", "siloed"),
                        ("by_silo", "silo_margin")):
            sc = lam[:, None] if m[key].ndim == 2 else lam
            T.close("%s: /series/%s[day] == run /margin/%s" % (tag, sk, key), ser[sk][j], m[key], 1e-9,
                    scale=np.maximum(np.abs(m[key]), sc))
        T.check("%s: /series/binding_set[day] == run /margin/binding_set" % tag,
                np.array_equal(ser["binding_set"][j], m["binding_set"]),
                "%s vs %s" % (ser["binding_set"][j].tolist(), m["binding_set"].tolist()))
        T.close("%s: run /margin/by_set == the reference's day" % tag, m["by_set"], ref["by_set"][j], 1e-9,
                scale=np.maximum(np.abs(ref["by_set"][j]), lam[:, None]))
        for sname in ("montecarlo", "montecarlo_stressed"):
            if sname in saved:
                fac, sh = tl.read_shocks(out, sname)
                x = saved[sname]["shock"][j]
                cols = [saved[sname]["factor"].index(n) for n in fac]
                T.close("%s: run /scenarios/%s == the backtest's of that day" % (tag, sname), sh, x[:, cols], 1e-12,
                        scale=np.max(np.abs(x)))


def run_before_range(tmp, name, book, scen, cfgfile, d):
    """A run on the history cut before the stressed range: no window in it, exit 2."""
    cut = os.path.join(tmp, "%s_precut%d.h5" % (name, d))
    cut_history(scen, cut, d)
    out = os.path.join(tmp, "%s_prerun%d.h5" % (name, d))
    args = ["run", "--portfolio", book, "--scenarios", cut, "--config", cfgfile, "-o", out, "--device", "cpu", "-q",
            "--set", "montecarlo.scenarios=%d" % MC]
    rc, so, se, _ = tl.run_xm(args)
    msg = (se + so).strip()
    T.check("%s: a run cut at row %d, before the stressed range: exit 2 naming apc.stressed_start/end" % (name, d),
            rc == 2 and names_key(msg, "apc.stressed_start") and names_key(msg, "apc.stressed_end") and
            not os.path.exists(out),
            "rc %d: %s" % (rc, msg[-300:]))


# --------------------------------------------------------------------------
# (b) xmargin run with the stressed period == the reference
# --------------------------------------------------------------------------

def run_vs_reference(tmp, name, book, scen, cfg, cfgfile):
    out = os.path.join(tmp, "%s_fullrun.h5" % name)
    tag = "%s run" % name
    if not run_ok(tag, book, scen, out, cfgfile, "cpu", {"montecarlo.scenarios": MC}, ["--save-scenarios"]):
        return
    rcfg = {k: v for k, v in cfg.items() if not k.startswith("backtest.")}
    rcfg["montecarlo.scenarios"] = MC
    rcfg["reference.var_attribution"] = "kth"
    ref = xr.compute(book, scen, out, rcfg)
    buf = io.StringIO()
    ok, rep = xr.compare(ref, out, rtol=1e-9, out=buf)
    for k in ("by_set", "binding_set", "requirement", "attribution", "unified", "siloed", "by_silo"):
        T.check("%s: reference %s" % (tag, k), k in rep and (rep[k] == 0 if k == "binding_set" else rep[k] <= 1e-9),
                rep.get(k))
    if not ok:
        print(buf.getvalue().rstrip())
    T.check("%s: reference compare overall (sets %s)" % (tag, ref["sets"]), ok)
    K = ref["sets"]
    w = float(cfg.get("apc.stressed_weight", 0))
    if "stressed_period" in K and w > 0:
        ih, isp = K.index("historical"), K.index("stressed_period")
        m = tl.read_margin(out)
        # the historical column is the blend of two measures the reference computes unblended
        unbl = xr.compute(book, scen, out, dict(rcfg, **{"apc.stressed_weight": 0.0}))
        exp = (1 - w) * unbl["by_set"][:, ih] + w * unbl["by_set"][:, isp]
        T.close("%s: by_set historical == (1 - w) R_hist + w R_sp" % tag, m["by_set"][:, ih], exp, 1e-9,
                scale=np.maximum(np.abs(exp), ref["gross_loss"]))
        T.close("%s: by_set stressed_period == R_sp unblended" % tag, m["by_set"][:, isp], unbl["by_set"][:, isp],
                1e-9, scale=np.maximum(np.abs(unbl["by_set"][:, isp]), ref["gross_loss"]))
        T.check("%s: stressed_period never binds (w > 0)" % tag, not np.any(m["binding_set"] == isp))
    # saved stressed_period shocks and labels
    with h5py.File(out, "r") as f:
        saved_sp = "scenarios/stressed_period/shock" in f
    if "stressed_period" in K and not saved_sp:
        T.check("%s: /scenarios/stressed_period saved" % tag, False)
    elif "stressed_period" in K:
        p = xr.read_portfolio(book)
        s = xr.read_scenarios(scen)
        used = xr.moved_factors(p, xr.make_config(rcfg)["collateral.method"])
        col = [s["history"]["factor"].index(p["factor_name"][f]) for f in used]
        exp, lab = xr.stressed_period_set(s["history"]["return"][:, col], s["history"]["date"], cfg["horizon_days"],
                                          cfg["apc.stressed_start"], cfg["apc.stressed_end"])
        fac, sh = tl.read_shocks(out, "stressed_period")
        full = xr.align_shocks(fac, sh, p["factor_name"])[:, used]
        T.check("%s: saved stressed_period shocks == the raw h-day sums of the range" % tag,
                full.shape == exp.shape and np.max(np.abs(full - exp)) <= 1e-12 * np.max(np.abs(exp)),
                "%s vs %s" % (full.shape, exp.shape))
        with h5py.File(out, "r") as f:
            got = tl.strings(f["scenarios/stressed_period/label"])
        T.check("%s: stressed_period labels are the dates of the window ends" % tag, got == lab,
                "%s vs %s" % (got[:3], lab[:3]))


# --------------------------------------------------------------------------
# (c) errors
# --------------------------------------------------------------------------

def error_checks(tmp, book, scen):
    base = dict(BASE, **{"montecarlo.scenarios": 50})
    d1, d2 = row_date(scen, 20), row_date(scen, 30)
    bad = [
        ("w > 0 with historical.enabled = false",
         {"apc.stressed_weight": 0.5, "historical.enabled": False, "apc.stressed_start": d1, "apc.stressed_end": d2},
         ("apc.stressed_weight", "historical.enabled")),
        ("w > 0 without the dates", {"apc.stressed_weight": 0.5}, ("apc.stressed_weight", "apc.stressed_")),
        ("a start without an end", {"apc.stressed_start": d1}, ("apc.stressed_start", "apc.stressed_end")),
        ("an end without a start", {"apc.stressed_end": d2, "apc.stressed_weight": 0.3},
         ("apc.stressed_start", "apc.stressed_end")),
        ("w outside [0, 1]", {"apc.stressed_weight": 1.5, "apc.stressed_start": d1, "apc.stressed_end": d2},
         ("apc.stressed_weight",)),
    ]
    for what, keys, named in bad + [("no window end in the range (run)", {"apc.stressed_start": "2030-01-01",
                                                                          "apc.stressed_end": "2030-12-31"},
                                     ("apc.stressed_start", "apc.stressed_end"))]:
        cfgfile = write_config(os.path.join(tmp, "err.ini"), dict(base, **keys))
        for cmd in ("run", "backtest"):
            if cmd == "backtest" and what.endswith("(run)"):
                continue
            out = os.path.join(tmp, "err_%s.h5" % cmd)
            args = [cmd, "--portfolio", book, "--scenarios", scen, "--config", cfgfile, "-o", out, "--device", "cpu"]
            rc, so, se, _ = tl.run_xm(args)
            msg = (se + so).strip()
            T.check("error %s: %s exits 2 naming %s, no output" % (what, cmd, ", ".join(named)),
                    rc == 2 and all(names_key(msg, n) for n in named) and not os.path.exists(out),
                    "rc %d: %s" % (rc, msg[-300:]))
        try:
            cfg = dict(base, **keys)
            if what.endswith("(run)"):
                xr.compute(book, scen, None, dict(cfg, **{"montecarlo.enabled": False}))
            else:
                xr.make_config(cfg)
            T.check("error %s: the reference refuses it" % what, False)
        except ValueError as e:
            T.check("error %s: the reference refuses it" % what, all(n in str(e) for n in named), str(e))
    # §7: min_history < h + 1, fewer than 2 days
    for what, keys, named in (("backtest.min_history < horizon_days + 1", {"backtest.min_history": 2},
                               ("backtest.min_history",)),
                              ("fewer than 2 backtest days", {"backtest.min_history": N_ROWS - 2},
                               ("backtest.min_history",))):
        cfgfile = write_config(os.path.join(tmp, "err.ini"), dict(base, **keys))
        out = os.path.join(tmp, "err_bt.h5")
        rc, so, se, _ = run_backtest(book, scen, out, cfgfile, "cpu")
        msg = (se + so).strip()
        T.check("error %s: backtest exits 2 naming %s, no output" % (what, ", ".join(named)),
                rc == 2 and all(names_key(msg, n) for n in named) and not os.path.exists(out),
                "rc %d: %s" % (rc, msg[-300:]))
        try:
            xr.backtest(book, scen, dict(base, **keys))
            T.check("error %s: the reference refuses it" % what, False)
        except ValueError as e:
            T.check("error %s: the reference refuses it" % what, all(n in str(e) for n in named), str(e))


# --------------------------------------------------------------------------
# (d) xarray
# --------------------------------------------------------------------------

def xarray_checks(path, ref):
    try:
        import xarray
    except ImportError:
        T.skip("xarray opens /series", "xarray is not installed")
        return
    try:
        ds = xarray.open_dataset(path, engine="h5netcdf", group="series")
    except Exception as e:  # noqa: BLE001 -- report any failure
        T.check("xarray opens group series with h5netcdf", False, repr(e))
        return
    with ds:
        T.check("xarray opens group series with h5netcdf", True)
        T.check("series/realised has dimensions (day, account)", ds["realised"].dims == ("day", "account"),
                ds["realised"].dims)
        T.check("series/silo_margin has dimensions (day, account, silo)",
                ds["silo_margin"].dims == ("day", "account", "silo"), ds["silo_margin"].dims)
        T.check("series/total_requirement has dimension day", ds["total_requirement"].dims == ("day",),
                ds["total_requirement"].dims)
        days = [str(v) for v in ds["day"].values]
        accs = [str(v) for v in ds["account"].values]
        T.check("series coordinates day and account are /day and /account",
                days == ref["day"] and accs == ref["account"],
                "%s / %s" % (days[:2], accs[:2]))
        a, d = ref["account"][-1], ref["day"][3]
        v = float(ds["requirement"].sel(day=d, account=a))
        T.check("series: .sel(day, account) reads the requirement of that day", v == ref["series/requirement"][3, -1] or
                abs(v - ref["series/requirement"][3, -1]) <= 1e-9 * max(abs(v), ref["scale"][3, -1]))
    try:
        ds = xarray.open_dataset(path, engine="h5netcdf", group="stats/requirement")
        with ds:
            T.check("xarray: stats/requirement/exceptions along account",
                    ds["exceptions"].dims == ("account",) and [str(x) for x in ds["account"].values] == ref["account"],
                    ds["exceptions"].dims)
    except Exception as e:  # noqa: BLE001
        T.check("xarray opens group stats/requirement", False, repr(e))


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------

def book_checks(tmp, devices):
    books = make_books(tmp)
    mcseed = int(RNG.integers(0, 2**32 - 4))
    print("# montecarlo.seed %d" % mcseed)
    cs = cases(books, mcseed)
    refs = {}
    for name, (book, scen, cfg) in cs.items():
        t0 = time.perf_counter()
        r = T.run(backtest_case, tmp, name, book, scen, cfg, devices)
        if r is not None and r[0] is not None:
            refs[name] = r
        print("# %s: %.1f s" % (name, time.perf_counter() - t0))
    # --days: the last 6 days
    if "P_w0" in refs:
        book, scen, cfg = cs["P_w0"]
        out = os.path.join(tmp, "P_w0_days6.h5")
        if backtest_ok("P_w0 --days 6", book, scen, out, refs["P_w0"][1], "cpu",
                       extra=("--save-scenarios", "--days", "6")):
            ref6 = xr.backtest(book, scen, cfg, saved_path=out, days=6)
            report("P_w0 --days 6", xr.compare_backtest(ref6, out))
    if "P_blend" in refs:
        book, scen, cfg = cs["P_blend"]
        T.run(single_precision, tmp, "P_blend", book, scen, cfg, refs["P_blend"][1])
    # (a) a day == a run on the history cut at d (the first day inside the stressed range, a middle one, the last)
    for name, js in (("P_w0", (4, 11, 19)), ("P_blend", (2, 19)), ("C_scenario", (7,))):
        if name in refs:
            book, scen, cfg = cs[name]
            T.run(day_vs_run, tmp, name, book, scen, cfg, refs[name][1], refs[name][0], js)
    if "P_w0" in refs:
        book, scen, cfg = cs["P_w0"]
        T.run(run_before_range, tmp, "P_w0", book, scen, refs["P_w0"][1], 54)
    # (b) runs with the stressed period
    for name in ("P_w0", "P_blend", "C_scenario"):
        book, scen, cfg = cs[name]
        cfgfile = write_config(os.path.join(tmp, name + "_run.ini"), cfg)
        T.run(run_vs_reference, tmp, name, book, scen, cfg, cfgfile)
    # (c) errors
    T.run(error_checks, tmp, *books["products"])
    # (d) xarray
    if "P_w0" in refs:
        T.run(xarray_checks, os.path.join(tmp, "P_w0_cpu.h5"), refs["P_w0"][0])


def main():
    devices = ["cpu"]
    if tl.opencl_available():
        devices.append("opencl")
    else:
        T.skip("the checks on --device opencl", "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        t0 = time.perf_counter()
        T.run(hand_case, tmp, devices)
        T.run(book_checks, tmp, devices)
        print("# backtest checks %.1f s" % (time.perf_counter() - t0))
    T.finish()


if __name__ == "__main__":
    main()
