#!/usr/bin/python3
"""The engine against the independent NumPy reference (xm_reference.py) on fresh
random books with collateral: METHODOLOGY §4 (Uni/Sil with the add-ons, the buffer
beta, the requirement of an account not eligible sum_g M_{a,g}, minimum_binds,
hedge_credit), §4.1 (the liquidity and concentration add-on) and §6 (collateral,
both methods, pools, excess, calls), FORMAT.md §1 columns and §3 outputs.

Every run draws a new book, history and ready-made sets from a seed taken from
the clock (printed; set XM_TEST_SEED to replay one). The book: instruments of
every type on equity, gold, coin and FX factors; accounts in USD (reporting),
EUR and BTC, eligible for cross-margining or not, in three silos; price factors
with half spreads, impact coefficients, ADVs (some positions large against them),
haircuts and collateral limits (some binding); a /collateral table of
securities (USD and EUR), coins, gold and cash in USD, EUR and BTC, posted to
silos and to none, among them coins posted against long coin futures (wrong-way),
cash posted to one silo of an account that is not eligible while its positions
sit in another, a BTC account posting BTC, an account with collateral and no
positions. Checks, on --device cpu and on opencl when `xmargin devices` lists
one, for collateral.method = schedule and = scenario (the latter on a copy of
the book whose every holding names a silo), both with apc.buffer > 0:
  * double precision: every /margin dataset (the collateral ones included) agrees
    with xm_reference within 1e-9 max(|x|, Lambda_a) (METHODOLOGY §5);
  * --set precision=single: within 1e-4 M_a + 1e-6 G_a of the reference;
  * scenario: /pnl (the holdings inside the losses) agrees with the reference's
    losses to float32 rounding, and the saved historical shocks move the factors
    of the holdings and of their currencies too (§1) -- schedule does not move
    a factor held only as collateral;
  * scenario on the book with holdings of no silo: exit status 2, a message naming
    the file, /collateral/silo and the row, no results file.
The book's own coverage (calls and excesses, binding concentration caps, the
square-root term, a non-eligible account short in one silo while another has
cash) is checked on the reference first, so that a quiet book cannot pass.

Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

import io
import os
import re
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

ALL_TYPES = tl.COLLATERAL_ALL_TYPES
random_book = tl.collateral_book    # the random book (xm_testlib.collateral_book)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def setargs(cfg):
    return ["%s=%s" % (k, v) for k, v in cfg.items()]


def run_ok(tag, book, scen, out, device, cfg, extra=()):
    rc, so, se, dt = tl.margin_run(book, scen, out, device, setargs(cfg), extra)
    return T.check("%s: run exits 0 (%.2f s)" % (tag, dt), rc == 0 and os.path.exists(out),
                   "rc %d: %s" % (rc, (se + so).strip()[-600:]))


def reference(book, scen, out, cfg, keep_pnl=False):
    rcfg = dict(cfg)
    rcfg.pop("precision", None)
    rcfg["reference.var_attribution"] = "kth"
    return xr.compute(book, scen, out, rcfg, keep_pnl=keep_pnl)


def compare_reference(tag, ref, out, precision):
    buf = io.StringIO()
    ok, rep = xr.compare(ref, out, rtol=1e-9, out=buf, precision=precision)
    bound = ("1e-9 max(|x|, Lambda_a)" if precision == "double" else "1e-4 M_a + 1e-6 G_a")
    for name in xr.MARGIN_DATASETS + xr.COLLATERAL_DATASETS:
        if name not in rep:
            T.check("%s: reference %s compared" % (tag, name), False, "not in the comparison")
            continue
        if name in xr.FLAG_DATASETS:
            T.check("%s: reference %s" % (tag, name), rep[name] == 0,
                    "%d accounts differ beyond ties" % rep[name] if rep[name] >= 0 else "missing or misshapen")
        else:
            T.check("%s: reference %s within %s" % (tag, name, bound), rep[name] <= rep["rtol"],
                    "max %.2e of the scale (bound %.0e)" % (rep[name], rep["rtol"]))
    if not ok:
        print(buf.getvalue().rstrip())
    T.check("%s: reference compare overall (sets %s)" % (tag, ref["sets"]), ok)


def coverage_checks(ref_sched, ref_scen, book, book_s, scen):
    """The random book exercises what it is meant to (on the reference)."""
    for tag, r in (("schedule", ref_sched), ("scenario", ref_scen)):
        T.check("book (%s): some account has a call, some an excess" % tag,
                np.any(r["call"] > 0) and np.any(r["excess"] > 0),
                "calls %d, excesses %d" % (int(np.sum(r["call"] > 0)), int(np.sum(r["excess"] > 0))))
        T.check("book (%s): the add-on is not 0 for most accounts" % tag,
                np.mean(r["liquidity"] > 0) > 0.5, "%d of %d" % (int(np.sum(r["liquidity"] > 0)),
                                                                   len(r["liquidity"])))
        ne = ~np.asarray(r["eligible"])
        T.check("book (%s): a non-eligible account is called in one silo while another has excess" % tag,
                np.any(ne & np.any(r["excess_by_silo"] < 0, axis=1) & np.any(r["excess_by_silo"] > 0, axis=1)))
        T.check("book (%s): the minimum binds somewhere and not everywhere" % tag,
                0 < int(np.sum(r["minimum_binds"])) < len(r["minimum_binds"]), str(r["minimum_binds"]))
    p = xr.read_portfolio(book)
    cv, acv = ref_sched["holding_value"], ref_sched["holding_adjusted"]
    hc = p["factor_haircut"][np.where(p["coll_factor"] >= 0, p["coll_factor"], 0)]
    plain = np.where(p["coll_factor"] >= 0, cv * (1 - hc), cv)
    T.check("book: some concentration limit binds (ACV < CV (1 - h))", np.any(acv < plain * (1 - 1e-12)))
    T.check("book: a holding in a currency other than its account's",
            np.any(p["coll_fx"] != p["account_fx"][p["coll_account"]]))
    # the square-root term matters: without impact the add-on is smaller somewhere
    z = dict(p)
    z["factor_impact"] = np.zeros(len(p["factor_name"]))
    r0 = xr.compute(None, None, None, {"collateral.method": "schedule"}, portfolio=z, sets=[])
    T.check("book: the square-root impact term adds to the add-on",
            np.any(ref_sched["liquidity"] > r0["liquidity"] * (1 + 1e-6)))
    # wrong-way: on the ready-made sets alone, the coins posted (to crypto) against
    # long coin futures raise that account's crypto silo measure when priced inside
    # the scenarios. (Not its whole core: that can be bound by its SPX option in a
    # scenario where the coin rallies, and the coins then lower it -- seed 879193102.)
    rs = [xr.compute(book_s, scen, None, {"historical.enabled": False, "montecarlo.enabled": False,
                                          "collateral.method": m}) for m in ("schedule", "scenario")]
    g = list(rs[0]["silos"]).index("crypto")
    T.check("book: wrong-way (coins against long coin futures) costs the crypto silo more under scenario",
            rs[1]["by_silo"][0][g] > rs[0]["by_silo"][0][g],
            "%g vs %g" % (rs[1]["by_silo"][0][g], rs[0]["by_silo"][0][g]))


def pnl_checks(tag, ref, out):
    """/pnl/<set> (float32) against the reference's L_a, holdings included."""
    with h5py.File(out, "r") as f:
        if "pnl" not in f:
            T.check("%s: /pnl saved" % tag, False)
            return
        lam = np.maximum(ref["gross_loss"], 1e-300)
        worst = 0.0
        for name in ref["sets"]:
            got = np.asarray(f["pnl"][name][()], dtype=np.float64)
            exp = ref["pnl"][name]
            if got.shape != exp.shape:
                T.check("%s: /pnl/%s shape" % (tag, name), False, "%s vs %s" % (got.shape, exp.shape))
                return
            worst = max(worst, float(np.max(np.abs(got - exp) / lam[None, :])))
    T.check("%s: /pnl (holdings in the losses) == reference to float32 rounding of Lambda_a" % tag,
            worst <= 1e-6, "max %.2e of Lambda_a" % worst)


def moved_factor_checks(tag, out, book, scen, cfg, method):
    """§1: the historical set moves the factors the run's losses depend on, with
    `scenario` the holdings' factors and their currencies' /fx factors too."""
    p = xr.read_portfolio(book)
    moved = xr.moved_factors(p, method)
    names = p["factor_name"]
    fac, sh = tl.read_shocks(out, "historical")
    full = xr.align_shocks(fac, sh, names)
    movedset = [i for i in range(len(names)) if np.any(full[:, i] != 0)]
    T.check("%s: historical shocks move exactly the factors of §1 (%s)" % (tag, method), movedset == moved,
            "moved %s, expected %s" % ([names[i] for i in movedset], [names[i] for i in moved]))
    bund = names.index("BUND")
    if method == "scenario":
        T.check("%s: a factor held only as collateral moves" % tag, bund in movedset)
    else:
        T.check("%s: a factor held only as collateral does not move" % tag, bund not in movedset)
    sc = xr.read_scenarios(scen)
    c = xr.make_config(cfg)
    hcol = [sc["history"]["factor"].index(names[i]) for i in moved]
    exp, _ = xr.historical_set(sc["history"]["return"][:, hcol], sc["history"]["date"], c["horizon_days"],
                               c["historical.ewma_lambda"], c["historical.apc_floor"], c["historical.filtered"],
                               c["historical.lookback"])
    got = full[:, moved]
    d = float(np.max(np.abs(got - exp))) if got.shape == exp.shape else float("inf")
    T.check("%s: historical shocks == historical_set (1e-12)" % tag, d <= 1e-12 * np.max(np.abs(exp)),
            "max |diff| %.2e" % d)


def silo_error_check(tmp, book, scen, info, cfg):
    out = os.path.join(tmp, "must_not_exist.h5")
    rc, so, se, dt = tl.margin_run(book, scen, out, "cpu", setargs(dict(cfg, **{"collateral.method": "scenario"})))
    msg = (se + so).strip()
    T.check("scenario with holdings of no silo: exit status 2", rc == 2, "rc %d: %s" % (rc, msg[-300:]))
    rows = [int(m_) for m_ in re.findall(r"collateral/silo\[(\d+)\]", msg)]
    T.check("scenario with holdings of no silo: the message names the file, /collateral/silo and a row of silo -1",
            os.path.basename(book) in msg and rows and all(r in info["no_silo_rows"] for r in rows),
            "%r (rows of silo -1: %s)" % (msg[-300:], info["no_silo_rows"]))
    T.check("scenario with holdings of no silo: no results file", not os.path.exists(out))
    try:
        xr.compute(book, scen, None, {"collateral.method": "scenario", "montecarlo.enabled": False})
        T.check("reference: scenario with holdings of no silo refused", False)
    except ValueError as e:
        T.check("reference: scenario with holdings of no silo refused", "/collateral/silo[" in str(e), str(e))


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------

def book_checks(tmp, devices):
    book, book_s, scen, info = random_book(tmp, RNG)
    mcseed = int(RNG.integers(0, 2**32))
    p = xr.read_portfolio(book)
    _, net_ins, net_q = xr._net_positions(p)
    types = set(p["type"][net_ins[net_q != 0]].tolist())
    T.check("book holds every instrument type", set(xr.INSTRUMENT_TYPES[t] for t in ALL_TYPES) <= types)
    print("# book: %d accounts (%s), %d instruments, %d positions, %d holdings (%d of no silo), "
          "montecarlo.seed %d" % (len(p["account_id"]), ",".join(info["curs"]), len(p["instrument_id"]),
                                  len(p["pos_quantity"]), len(p["coll_account"]), len(info["no_silo_rows"]),
                                  mcseed))
    cfgs = {
        "schedule": (book, {"montecarlo.scenarios": 400, "montecarlo.correlation_stress": 0.3,
                            "montecarlo.seed": mcseed, "apc.buffer": 0.25, "collateral.method": "schedule"}),
        "scenario": (book_s, {"horizon_days": 5, "confidence": 0.95, "historical.measure": "var",
                              "historical.lookback": 250, "historical.ewma_lambda": 0.94,
                              "montecarlo.distribution": "normal", "montecarlo.scenarios": 300,
                              "montecarlo.measure": "es", "montecarlo.seed": mcseed + 1,
                              "pricing.vol_term_power": 0.5, "cross_margin.offset_cap": 0.6,
                              "minimum.per_contract": 0.5, "apc.buffer": 0.1, "collateral.method": "scenario"}),
    }
    refs = {}
    for dev in devices:
        for method, (bk, cfg) in cfgs.items():
            for prec in ("double", "single"):
                c = dict(cfg, precision=prec) if prec == "single" else cfg
                out = os.path.join(tmp, "%s_%s_%s.h5" % (method, dev, prec))
                tag = "%s %s %s" % (dev, method, prec)
                extra = ["--save-scenarios"] + (["--save-pnl"] if method == "scenario" and prec == "double" else [])
                if not run_ok(tag, bk, scen, out, dev, c, extra):
                    continue
                ref = T.run(reference, bk, scen, out, cfg, keep_pnl=method == "scenario")
                if ref is None:
                    continue
                refs.setdefault(method, ref)
                T.run(compare_reference, tag, ref, out, prec)
                if prec == "double":
                    T.run(moved_factor_checks, tag, out, bk, scen, cfg, method)
                    if method == "scenario":
                        T.run(pnl_checks, tag, ref, out)
    if len(refs) == 2:
        T.run(coverage_checks, refs["schedule"], refs["scenario"], book, book_s, scen)
    T.run(silo_error_check, tmp, book, scen, info, cfgs["schedule"][1])


def main():
    devices = ["cpu"]
    if tl.opencl_available():
        devices.append("opencl")
    else:
        T.skip("the checks on --device opencl", "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        t0 = time.perf_counter()
        T.run(book_checks, tmp, devices)
        print("# collateral book checks %.1f s" % (time.perf_counter() - t0))
    T.finish()


if __name__ == "__main__":
    main()
