#!/usr/bin/python3
"""Write a synthetic portfolio, scenario file and a fake results file holding
Monte Carlo shocks (/scenarios/montecarlo/shock), for timing and exercising the
peer without the engine. Usage:
  synth_book.py OUTDIR [--underlyings 50] [--instruments 20000] [--accounts 2000]
                [--positions 100000] [--history 1500] [--mc 10000] [--seed 1]
"""
import argparse
import os

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--underlyings", type=int, default=50)
    ap.add_argument("--instruments", type=int, default=20000)
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--positions", type=int, default=100000)
    ap.add_argument("--history", type=int, default=1500)
    ap.add_argument("--mc", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.outdir, exist_ok=True)
    s = h5py.string_dtype()
    U = a.underlyings
    names = sum([["U%d" % u, "U%d.iv" % u] for u in range(U)], [])
    kinds = ["price", "vol"] * U
    levels = np.ravel([[lv, iv] for lv, iv in zip(rng.uniform(20, 500, U), rng.uniform(0.12, 0.6, U))])
    I = a.instruments
    typ = rng.choice(["spot", "future", "option", "future_option"], I, p=[0.15, 0.15, 0.4, 0.3])
    und = rng.integers(0, U, I)
    silo = np.where(typ == "spot", 0, np.where(typ == "option", 0, 1))
    silo[rng.random(I) < 0.1] = 2
    lev = levels[2 * und]
    with h5py.File(os.path.join(a.outdir, "portfolio.h5"), "w") as f:
        f.attrs["format"] = "xmargin.portfolio"
        f.attrs["format_version"] = 1
        f.attrs["valuation_date"] = "2024-06-28"
        f.attrs["currency"] = "USD"
        f["factors/name"] = np.array(names, dtype=s)
        f["factors/kind"] = np.array(kinds, dtype=s)
        f["factors/level"] = levels
        f["silos/name"] = np.array(["securities", "futures", "crypto"], dtype=s)
        g = f.create_group("instruments")
        g["id"] = np.array(["I%d" % i for i in range(I)], dtype=s)
        g["type"] = np.array(typ, dtype=s)
        g["silo"] = silo.astype(np.int32)
        g["underlying"] = (2 * und).astype(np.int32)
        isopt = (typ == "option") | (typ == "future_option")
        g["vol_factor"] = np.where(isopt, 2 * und + 1, -1).astype(np.int32)
        g["strike"] = lev * rng.uniform(0.7, 1.3, I)
        g["expiry"] = rng.choice([0.005, 0.02, 0.1, 0.25, 0.5, 1.0, 2.0], I)
        g["call"] = rng.integers(0, 2, I).astype(np.int32)
        g["implied_vol"] = levels[2 * und + 1] * rng.uniform(0.8, 1.3, I)
        g["rate"] = np.full(I, 0.045)
        g["dividend_yield"] = np.where(typ == "option", 0.015, 0.0)
        g["multiplier"] = rng.choice([1.0, 10.0, 50.0, 100.0], I)
        A = a.accounts
        f["accounts/id"] = np.array(["A%d" % i for i in range(A)], dtype=s)
        f["accounts/cross_margin"] = (rng.random(A) < 0.8).astype(np.int32)
        N = a.positions
        f["positions/account"] = np.sort(rng.integers(0, A, N)).astype(np.int64)
        f["positions/instrument"] = rng.integers(0, I, N).astype(np.int64)
        f["positions/quantity"] = np.round(rng.normal(0, 20, N))
    T = a.history
    C = np.full((2 * U, 2 * U), 0.3) + 0.7 * np.eye(2 * U)
    vol = np.ravel([[0.015, 0.01]] * U)
    R = rng.standard_t(5, (T, 2 * U)) @ np.linalg.cholesky(C).T * vol * np.sqrt(3 / 5)
    with h5py.File(os.path.join(a.outdir, "scenarios.h5"), "w") as f:
        f.attrs["format"] = "xmargin.scenarios"
        f.attrs["format_version"] = 1
        f["history/factor"] = np.array(names, dtype=s)
        # ISO business dates ending on the valuation date (FORMAT.md: /history/date is ISO)
        days = np.busday_offset(np.datetime64("2024-06-28"), np.arange(-T + 1, 1), roll="backward")
        f["history/date"] = np.array([str(d) for d in days], dtype=s)
        f["history/return"] = R
        f["sets/stress/factor"] = np.array(names[::2], dtype=s)
        f["sets/stress/shock"] = rng.normal(0, 0.1, (16, U))
        f["sets/stress/label"] = np.array(["s%d" % i for i in range(16)], dtype=s)
        f["sets/stress/weight"] = np.where(np.arange(16) < 14, 1.0, 0.35)
        f["sets/stress"].attrs["measure"] = "worst"
    L = np.linalg.cholesky(C) * vol
    mc = np.sqrt(2) * rng.standard_normal((a.mc, 2 * U)) @ L.T
    with h5py.File(os.path.join(a.outdir, "mc_results.h5"), "w") as f:
        f.attrs["format"] = "xmargin.results"
        f.attrs["format_version"] = 1
        f["scenarios/montecarlo/factor"] = np.array(names, dtype=s)
        f["scenarios/montecarlo/shock"] = mc
        f["scenarios/montecarlo_stressed/factor"] = np.array(names, dtype=s)
        f["scenarios/montecarlo_stressed/shock"] = mc * 0.9
    print("wrote", a.outdir)


if __name__ == "__main__":
    main()
