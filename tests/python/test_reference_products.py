#!/usr/bin/python3
"""The engine against the independent NumPy reference (xm_reference.py) on fresh
random version-2 books: every instrument type and several currencies
(METHODOLOGY §2, §2.1-2.3, the minimum of §4, the bounds of §5).

Every run draws a new book, history and ready-made sets from a seed taken from
the clock (printed; set XM_TEST_SEED to replay one). The book holds every type
(spot, future, option, future_option, american_option, perpetual with funding of
both signs, inverse_future, inverse_perpetual, inverse_option), settlement
currencies USD (reporting), BTC, ETH and EUR (/fx price factors, with history),
accounts in USD, BTC and EUR, eligible for cross-margining or not, vol and logvol
factors, ready-made sets plus historical and Monte Carlo. Checks, on --device cpu
and on opencl when `xmargin devices` lists one:
  * double precision: every /margin dataset agrees with xm_reference within
    1e-9 max(|x|, Lambda_a) (METHODOLOGY §5), two configurations;
  * --set precision=single: within 1e-4 M_a + 1e-6 G_a of the reference;
  * /margin/currency is each account's currency (skipped with a note when the
    results file has no such dataset);
  * the saved historical shocks move exactly the factors of METHODOLOGY §1 (the
    held instruments' underlyings and vol factors and the /fx factors of their
    currencies and of the accounts' currencies) and equal
    xm_reference.historical_set on them.
The price factors carry half spreads, impact coefficients and ADVs (FORMAT.md §1),
so the liquidity add-on of METHODOLOGY §4.1 is priced on every product type (its
central differences revalue each type at +-u); case B runs with apc.buffer > 0.
Every /margin dataset is compared, the version-2 ones included (liquidity,
liquidity_by_silo, requirement_by_silo, hedge_credit, minimum_binds) and the
requirement of an account not eligible (sum_g M_{a,g}, §4).  The book has no
/collateral (tests/python/test_reference_collateral.py has).

Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

import io
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

ALL_TYPES = tl.PRODUCTS_ALL_TYPES
random_book = tl.products_book    # the random book (xm_testlib.products_book)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def setargs(cfg):
    return ["%s=%s" % (k, v) for k, v in cfg.items()]


def run_ok(tag, book, scen, out, device, cfg, extra=()):
    rc, so, se, dt = tl.margin_run(book, scen, out, device, setargs(cfg), extra)
    return T.check("%s: run exits 0 (%.2f s)" % (tag, dt), rc == 0 and os.path.exists(out),
                   "rc %d: %s" % (rc, (se + so).strip()[-600:]))


def compare_reference(tag, book, scen, out, cfg, precision):
    rcfg = dict(cfg)
    rcfg.pop("precision", None)
    rcfg["reference.var_attribution"] = "kth"
    ref = xr.compute(book, scen, out, rcfg)
    buf = io.StringIO()
    ok, rep = xr.compare(ref, out, rtol=1e-9, out=buf, precision=precision)
    bound = ("1e-9 max(|x|, Lambda_a)" if precision == "double" else "1e-4 M_a + 1e-6 G_a")
    for name in xr.MARGIN_DATASETS:
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
    return ref


def currency_check(tag, out, curs):
    with h5py.File(out, "r") as f:
        if "margin/currency" not in f:
            T.skip("%s: /margin/currency == each account's currency" % tag,
                   "the results file has no /margin/currency")
            return
        got = tl.strings(f["margin/currency"])
    T.check("%s: /margin/currency == each account's currency" % tag, got == curs,
            "got %s expected %s" % (got, curs))


def moved_factor_checks(tag, out, book, scen, cfg):
    """The historical set moves exactly the factors of METHODOLOGY §1 and equals
    xm_reference.historical_set there."""
    p = xr.read_portfolio(book)
    moved = xr.moved_factors(p)
    names = p["factor_name"]
    fxrows = set(int(r) for r in p["fx_factor"])
    T.check("%s: the factors the run moves include every /fx factor" % tag, fxrows <= set(moved),
            str([names[i] for i in moved]))
    try:
        fac, sh = tl.read_shocks(out, "historical")
    except KeyError:
        T.check("%s: /scenarios/historical/shock saved" % tag, False)
        return
    full = xr.align_shocks(fac, sh, names)
    sc = xr.read_scenarios(scen)
    c = xr.make_config(cfg)
    hcol = [sc["history"]["factor"].index(names[i]) for i in moved]
    exp, _ = xr.historical_set(sc["history"]["return"][:, hcol], sc["history"]["date"], c["horizon_days"],
                               c["historical.ewma_lambda"], c["historical.apc_floor"], c["historical.filtered"],
                               c["historical.lookback"])
    got = full[:, moved]
    if got.shape != exp.shape:
        T.check("%s: historical shocks shape" % tag, False, "%s, expected %s" % (got.shape, exp.shape))
    else:
        dif = np.max(np.abs(got - exp), axis=0)
        worst = int(np.argmax(dif))
        T.check("%s: historical shocks of the moved factors (fx included) == historical_set (1e-12)" % tag,
                dif[worst] <= 1e-12 * max(np.max(np.abs(exp)), 1e-300),
                "worst %s: max |diff| %.2e" % (names[moved[worst]], dif[worst]))
    others = [i for i in range(len(names)) if i not in moved]
    T.check("%s: historical shocks of the other factors are 0" % tag, not np.any(full[:, others]),
            str([names[i] for i in others]))
    try:
        fac, sh = tl.read_shocks(out, "montecarlo")
        mc = xr.align_shocks(fac, sh, names)
        T.check("%s: Monte Carlo moves every moved factor (fx included)" % tag,
                all(np.any(mc[:, i] != 0) for i in moved),
                "still: %s" % [names[i] for i in moved if not np.any(mc[:, i] != 0)])
    except KeyError:
        T.check("%s: /scenarios/montecarlo/shock saved" % tag, False)


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------

def book_checks(tmp, devices):
    book, scen, names, curs = random_book(tmp, RNG)
    mcseed = int(RNG.integers(0, 2**32))
    p = xr.read_portfolio(book)
    held = sorted(set(xr.INSTRUMENT_TYPES[t] for t in ALL_TYPES))
    _, net_ins, net_q = xr._net_positions(p)
    net_ins = net_ins[net_q != 0]
    types = set(p["type"][net_ins].tolist())
    T.check("book holds every instrument type (non-zero net quantity)", set(held) <= types,
            "missing %s" % sorted(set(held) - types))
    fund = p["funding_rate"][net_ins]
    T.check("book holds perpetuals with funding of both signs", np.any(fund > 0) and np.any(fund < 0))
    print("# book: %d accounts (%s), %d instruments, %d positions, montecarlo.seed %d" %
          (len(p["account_id"]), ",".join(curs), len(p["instrument_id"]), len(p["pos_quantity"]), mcseed))

    cfg_a = {"montecarlo.scenarios": 500, "montecarlo.correlation_stress": 0.3, "montecarlo.seed": mcseed}
    cfg_b = {"horizon_days": 5, "confidence": 0.95, "historical.measure": "var", "historical.lookback": 250,
             "historical.apc_floor": 0.5, "historical.ewma_lambda": 0.94, "montecarlo.distribution": "normal",
             "montecarlo.scenarios": 400, "montecarlo.measure": "var", "montecarlo.seed": mcseed + 1,
             "pricing.vol_term_power": 0.5, "cross_margin.offset_cap": 0.6, "minimum.per_contract": 0.5,
             "apc.buffer": 0.25}
    for dev in devices:
        for case, cfg in (("A", cfg_a), ("B", cfg_b)):
            for prec in ("double", "single"):
                if prec == "single" and case == "B":
                    continue
                c = dict(cfg, precision=prec) if prec == "single" else cfg
                out = os.path.join(tmp, "%s_%s_%s.h5" % (case, dev, prec))
                tag = "%s case %s %s" % (dev, case, prec)
                if not run_ok(tag, book, scen, out, dev, c, ["--save-scenarios"]):
                    continue
                T.run(compare_reference, tag, book, scen, out, cfg, prec)
                T.run(currency_check, tag, out, curs)
                if prec == "double":
                    T.run(moved_factor_checks, tag, out, book, scen, cfg)


def main():
    devices = ["cpu"]
    if tl.opencl_available():
        devices.append("opencl")
    else:
        T.skip("the checks on --device opencl", "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        t0 = time.perf_counter()
        T.run(book_checks, tmp, devices)
        print("# version-2 book checks %.1f s" % (time.perf_counter() - t0))
    T.finish()


if __name__ == "__main__":
    main()
