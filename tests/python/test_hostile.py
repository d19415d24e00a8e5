#!/usr/bin/python3
"""Hostile and broken inputs (issue 11): every one is refused with exit status
2 and a message naming the file or set, the dataset or scenario, and the rule;
never a crash, a hang, a silent number or a lost file."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
check = T.check
NO_GEN = ["historical.enabled=false", "montecarlo.enabled=false"]


def book(path, instruments=None, positions=None):
    tl.write_portfolio(
        path, [("SPX", "price", 5000.0), ("SPX.iv", "vol", 0.2)], ["securities", "futures"],
        instruments or [dict(id="SPY", type="spot", silo=0, underlying=0),
                        dict(id="ES", type="future", silo=1, underlying=0, multiplier=50),
                        dict(id="C1", type="option", silo=0, underlying=0, vol_factor=1,
                             strike=5000, expiry=0.5, call=1, implied_vol=0.2, rate=0.04)],
        [("A", 1), ("B", 0)], positions or [(0, 0, 100), (0, 1, -2), (1, 2, 10), (1, 0, 5)])


def stress(path, rows, labels, measure=None):
    tl.write_scenarios(path, sets={"stress": dict(factor=["SPX", "SPX.iv"], shock=rows,
                                                  label=labels, measure=measure)})


def refused(name, r, out, words):
    rc, _, err, _ = r
    check("%s: exit status 2" % name, rc == 2, "rc %d: %s" % (rc, err[-600:]))
    for w in words:
        check("%s: message names %r" % (name, w), w in err, err[-600:])
    check("%s: no results file written" % name, not os.path.exists(out))


def nonfinite(d, devices):
    """Item 3: a non-finite contract value or loss is an error naming the set,
    the scenario label and the instrument, on every backend; never a 0."""
    p, s, out = (os.path.join(d, n) for n in ("p.h5", "s.h5", "o.h5"))
    book(p)
    ok = os.path.join(d, "ok.h5")
    stress(ok, [[-0.1, 0.05], [0.05, -0.02]], ["down", "up"])
    r = tl.margin_run(p, ok, out, sets=NO_GEN)
    check("finite stress: exit 0", r[0] == 0, r[2][-400:])
    if os.path.exists(out):
        os.remove(out)
    for measure in ("worst", "es", "var"):
        # the boom row first and last: the result must not depend on the order
        for order in (0, 1):
            rows = [[-0.1, 0.05], [800.0, 0.0], [0.05, -0.02]]
            labels = ["down", "boom", "up"]
            if order:
                rows, labels = rows[::-1], labels[::-1]
            stress(s, rows, labels, measure=measure)
            for dev in devices:
                r = tl.margin_run(p, s, out, device=dev, sets=NO_GEN + ["confidence=0.6"])
                refused("price shock 800 (%s, order %d) on %s" % (measure, order, dev), r, out,
                        ["set stress", "'boom'", "instrument SPY"])
    stress(s, [[-0.1, 0.05], [0.05, -0.02]], ["down", "up"])
    p2 = os.path.join(d, "p2.h5")
    book(p2, [dict(id="SPY", type="spot", silo=0, underlying=0),
              dict(id="LONG", type="option", silo=0, underlying=0, vol_factor=1, strike=5000,
                   expiry=1e300, call=1, implied_vol=0.2, rate=0.04)],
         [(0, 0, 100), (0, 1, 10), (1, 0, 1)])
    for dev in devices:
        refused("expiry 1e300 on %s" % dev, tl.margin_run(p2, s, out, device=dev, sets=NO_GEN),
                out, ["instrument LONG", "set stress", "today's value"])
    book(p2, None, [(0, 0, 1e308), (1, 0, 1)])
    for dev in devices:
        refused("quantity 1e308 on %s" % dev, tl.margin_run(p2, s, out, device=dev, sets=NO_GEN),
                out, ["instrument SPY", "account A", "overflows"])
    # Monte Carlo shocks made on the device: one day of the history is absurd
    R = np.random.default_rng(1).normal(0, 0.01, (300, 2))
    R[150, 0] = 400.0
    h = os.path.join(d, "h.h5")
    tl.write_scenarios(h, history=(["SPX", "SPX.iv"], tl.dates(300), R))
    for dev in devices:
        refused("Monte Carlo shock overflow on %s" % dev,
                tl.margin_run(p, h, out, device=dev, sets=["historical.enabled=false"]), out,
                ["set montecarlo", "scenario 'mc", "instrument SPY"])


def main():
    devices = ["cpu"] + (["opencl"] if tl.opencl_available() else [])
    with tl.TmpDir() as d:
        T.run(nonfinite, d, devices)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
