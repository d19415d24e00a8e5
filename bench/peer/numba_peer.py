#!/usr/bin/env python3
"""The Numba peer of xmargin's evaluate (issue 18, item 2): the code a quant
writes when NumPy is too slow, `numba.njit(parallel=True)` with fastmath off
(error_model="numpy": no Python-style zero-division checks in the loops), on
the same saved shocks as the engine, computing the same requirements.

  numba_peer.py --portfolio P.h5 --scenarios S.h5 --results R.h5 [--set KEY=VALUE ...]
                [--threads T] [--warmup 1] [--repeat 3] [--rtol 1e-12] [--size LABEL]

R.h5 is an `xmargin run --save-scenarios` output: its /scenarios/<set>/shock are
the shocks priced (FORMAT.md section 3; sets built by tests/python/xm_reference
build_sets, untimed, as the engine's scenario generation is not in its
evaluate), and its /margin/* what the peer must reproduce: requirement, unified,
siloed and by_set to --rtol relative per account (exit 1, loudly, if not).

Covers the book bench/peer/synth_book.py writes: `spot`, `future`, `option`,
`future_option` in the reporting currency, `vol`/`logvol` factors, no /fx, no
liquidity columns, no /collateral (anything else: exit 2, said). The measures
(METHODOLOGY sections 3-4): ES, VaR or worst (weighted) per set of the account
and of each silo, floored at 0, the max over sets; unified, siloed, the
cross-margin offset cap, the per-contract minimum and the buffer.

Timed (median of --repeat after compiling on 64 scenarios and --warmup full
runs; numba caches the compiled code in bench/peer/__pycache__): today's
values, exp of the shocks, every (scenario, instrument) loss, aggregation into
L[account, component, scenario], the measures and the requirement. Prints a
line "NUMBAPEER {json}". Without numba it says so and exits 0 (skipped).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))

try:
    import numba
    from numba import njit, prange
except ImportError as e:  # pragma: no cover - the skip path
    numba = None
    _NUMBA_ERR = e


def _kernels():
    SQ1_2 = 0.70710678118654752440

    @njit(inline="always", cache=True)
    def ncdf(x):
        return 0.5 * math.erfc(-x * SQ1_2)

    @njit(inline="always", cache=True)
    def black_lfk(F, K, lfk, df, s, call):
        # xm_pricing.h xm_black_lfk: the same expression, case by case
        if s > 0.0:
            d1 = (lfk + 0.5 * s * s) / s
            d2 = d1 - s
            if call:
                v = F * ncdf(d1) - K * ncdf(d2)
            else:
                v = K * ncdf(-d2) - F * ncdf(-d1)
            return df * (v if v > 0.0 else 0.0)
        iv = F - K if call else K - F
        return df * (iv if iv > 0.0 else 0.0)

    @njit(inline="always", cache=True)
    def intrinsic(S, K, call):
        iv = S - K if call else K - S
        return iv if iv > 0.0 else 0.0

    @njit(inline="always", cache=True)
    def unit_value(typ, S, K, T, r, q, sig, call):
        if typ <= 1:
            return S
        if not T > 0.0:
            return intrinsic(S, K, call)
        s = sig * math.sqrt(T)
        df = math.exp(-r * T)
        F = S * math.exp((r - q) * T) if typ == 2 else S
        lfk = math.log(F / K) if s > 0.0 else 0.0
        return black_lfk(F, K, lfk, df, s, call)

    @njit(parallel=True, error_model="numpy", cache=True)
    def today(typ, S0, K, T, r, q, sig, call, h, v0, sqt1, df1, carry, lfk):
        dt = h / 252.0
        for i in prange(typ.shape[0]):
            v0[i] = unit_value(typ[i], S0[i], K[i], T[i], r[i], q[i], sig[i], call[i])
            T1 = T[i] - dt if T[i] - dt > 0.0 else 0.0
            c = math.exp((r[i] - q[i]) * T1) if typ[i] == 2 else 1.0
            sqt1[i] = math.sqrt(T1)
            df1[i] = math.exp(-r[i] * T1)
            carry[i] = c
            if typ[i] >= 2:
                lfk[i] = math.log(S0[i] / K[i]) + ((r[i] - q[i]) * T1 if typ[i] == 2 else 0.0)
            else:
                lfk[i] = 0.0

    @njit(parallel=True, error_model="numpy", cache=True)
    def losses(X, typ, und, vf, islog, S0, K, sig, call, mult, v0, sqt1, df1, carry, lfk,
               vol_floor, start, pinst, psilo, pqty, G, L):
        """L[a, c, s]: c = 0 the account, 1 + g silo g (positions sorted by
        (silo, instrument) within an account, as the engine's)."""
        S, F = X.shape
        N = typ.shape[0]
        A = start.shape[0] - 1
        for s in prange(S):
            ex = np.empty(F)
            for f in range(F):
                ex[f] = math.exp(X[s, f])
            ell = np.empty(N)
            for i in range(N):
                u = und[i]
                S1 = S0[i] * ex[u]
                if typ[i] <= 1:
                    v1 = S1
                else:
                    xv = X[s, vf[i]] if vf[i] >= 0 else 0.0
                    if islog[i]:
                        sg = sig[i] * math.exp(xv)
                    else:
                        sg = sig[i] + xv
                    sg = sg if sg > vol_floor else vol_floor
                    if sqt1[i] > 0.0:
                        v1 = black_lfk(S1 * carry[i], K[i], lfk[i] + X[s, u], df1[i], sg * sqt1[i],
                                       call[i])
                    else:
                        v1 = intrinsic(S1, K[i], call[i])
                ell[i] = mult[i] * (v0[i] - v1)
            for a in range(A):
                for c in range(1, G + 1):
                    L[a, c, s] = 0.0
                tot = 0.0
                part = 0.0
                cur = -1
                for p in range(start[a], start[a + 1]):
                    l = pqty[p] * ell[pinst[p]]
                    if psilo[p] != cur:
                        if cur >= 0:
                            L[a, 1 + cur, s] = part
                        cur = psilo[p]
                        part = 0.0
                    part += l
                    tot += l
                if cur >= 0:
                    L[a, 1 + cur, s] = part
                L[a, 0, s] = tot

    @njit(parallel=True, error_model="numpy", cache=True)
    def measures(L, r0, r1, kind, kk, w, out):
        """out[a, c]: the floored measure of L[a, c, r0:r1] (kind 0 ES, 1 VaR,
        2 worst with weights w[r0:r1]; kk: the tail's k)."""
        A, C, _ = L.shape
        for a in prange(A):
            for c in range(C):
                row = L[a, c, r0:r1]
                if kind == 2:
                    v = -np.inf
                    for j in range(r1 - r0):
                        x = w[j] * row[j]
                        v = x if x > v else v
                else:
                    # the k largest, unordered (a partition, not a sort); l_(k) is their minimum
                    top = np.partition(-row, kk - 1)[:kk]
                    v = -top.max() if kind == 1 else -top.sum() / kk
                out[a, c] = v if v > 0.0 else 0.0

    return today, losses, measures


def _k_of(S, alpha):
    return max(1, int(math.ceil((1.0 - float(alpha)) * int(S) - 1e-9)))


def prepare(p, sets, cfg):
    """Everything outside the timed span: arrays in the kernels' layout."""
    typ = np.asarray(p["type"], dtype=np.int64)
    bad = sorted(set(typ.tolist()) - {0, 1, 2, 3})
    if bad:
        raise SystemExit("numba_peer: instrument types %s not covered (spot, future, option, "
                         "future_option only)" % bad)
    if len(p["fx_currency"]) or any(c != p["currency"] for c in p["account_currency"]):
        raise SystemExit("numba_peer: /fx or accounts in other currencies: not covered")
    if any(np.any(p["factor_" + c] != 0) for c in ("half_spread", "impact")) or len(p["coll_account"]):
        raise SystemExit("numba_peer: liquidity columns or /collateral: not covered")
    kinds = p["factor_kind"]
    vf = np.asarray(p["vol_factor"], dtype=np.int64)
    islog = np.where(vf >= 0, kinds[np.maximum(vf, 0)] == 3, False)
    I = len(typ)
    key = p["pos_account"] * I + p["pos_instrument"]
    uk, inv = np.unique(key, return_inverse=True)
    q = np.zeros(len(uk))
    np.add.at(q, inv, p["pos_quantity"])
    acc, ins = uk // I, uk % I
    silo = np.asarray(p["silo"], dtype=np.int64)[ins]
    order = np.lexsort((ins, silo, acc))          # by account, then (silo, instrument)
    acc, ins, silo, q = acc[order], ins[order], silo[order], q[order]
    A, G = len(p["account_id"]), len(p["silo_name"])
    start = np.zeros(A + 1, dtype=np.int64)
    np.add.at(start, acc + 1, 1)
    start = np.cumsum(start)
    X = np.ascontiguousarray(np.concatenate([s["shocks"] for s in sets], axis=0), dtype=np.float64)
    rows = np.cumsum([0] + [s["shocks"].shape[0] for s in sets])
    kind = {"es": 0, "var": 1, "worst": 2}
    W = np.concatenate([np.ones(s["shocks"].shape[0]) if s.get("weights") is None
                        else np.asarray(s["weights"], dtype=np.float64) for s in sets])
    isopt = np.isin(typ[ins], (2, 3))
    mpc = float(cfg["minimum.per_contract"])
    minimum = np.zeros(A)
    np.add.at(minimum, acc[isopt], np.abs(q[isopt]) * p["multiplier"][ins[isopt]])
    min_silo = np.zeros((A, G))
    np.add.at(min_silo, (acc[isopt], silo[isopt]), np.abs(q[isopt]) * p["multiplier"][ins[isopt]])
    lev = np.asarray(p["factor_level"], dtype=np.float64)
    und = np.asarray(p["underlying"], dtype=np.int64)
    return dict(
        typ=typ, und=und, vf=vf, islog=islog, S0=lev[und], K=np.asarray(p["strike"], dtype=np.float64),
        T=np.asarray(p["expiry"], dtype=np.float64), r=np.asarray(p["rate"], dtype=np.float64),
        q=np.where(typ == 2, p["dividend_yield"], 0.0).astype(np.float64),
        sig=np.asarray(p["implied_vol"], dtype=np.float64), call=np.asarray(p["call"], dtype=np.int64) != 0,
        mult=np.asarray(p["multiplier"], dtype=np.float64), start=start, pinst=ins.astype(np.int64),
        psilo=silo, pqty=q, A=A, G=G, X=X, rows=rows, W=W,
        kinds=[kind[str(s["measure"]).lower()] for s in sets],
        ks=[_k_of(s["shocks"].shape[0], s["confidence"]) for s in sets],
        eligible=np.asarray(p["cross_margin"]) == 1, minimum=minimum * mpc, min_silo=min_silo * mpc,
        n_positions=int(len(p["pos_quantity"])))


def evaluate(k, d, cfg, L):
    today, losses, measures = k
    I = len(d["typ"])
    v0, sqt1, df1, carry, lfk = (np.empty(I) for _ in range(5))
    today(d["typ"], d["S0"], d["K"], d["T"], d["r"], d["q"], d["sig"], d["call"],
          float(cfg["horizon_days"]), v0, sqt1, df1, carry, lfk)
    losses(d["X"], d["typ"], d["und"], d["vf"], d["islog"], d["S0"], d["K"], d["sig"], d["call"],
           d["mult"], v0, sqt1, df1, carry, lfk, float(cfg["pricing.vol_floor"]), d["start"],
           d["pinst"], d["psilo"], d["pqty"], d["G"], L)
    A, G, rows = d["A"], d["G"], d["rows"]
    K = len(rows) - 1
    m = np.empty((K, A, G + 1))
    for j in range(K):
        measures(L, rows[j], rows[j + 1], d["kinds"][j], d["ks"][j], d["W"][rows[j]:rows[j + 1]], m[j])
    by_set = m[:, :, 0].T                                     # [A, K], floored
    core = by_set.max(axis=1)
    silo_core = m[:, :, 1:].max(axis=0)                       # [A, G]
    unified = core                                            # no liquidity add-on in this book
    siloed = silo_core.sum(axis=1)
    div = np.maximum(0.0, siloed - unified)
    c = float(cfg["cross_margin.offset_cap"])
    beta = float(cfg["apc.buffer"])
    cross = np.where(d["eligible"], unified + (1.0 - c) * div, siloed)
    req_silo = np.maximum((1.0 + beta) * silo_core, d["min_silo"])
    requirement = np.where(d["eligible"], np.maximum((1.0 + beta) * cross, d["minimum"]),
                           req_silo.sum(axis=1))
    return {"requirement": requirement, "unified": unified, "siloed": siloed, "by_set": by_set}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--results", required=True, help="xmargin results with /scenarios/<set>/shock and /margin")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=0, help="numba threads (default: all cores)")
    ap.add_argument("--warmup", type=int, default=1, help="full untimed runs after compiling (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rtol", type=float, default=1e-12)
    ap.add_argument("--size", default="")
    a = ap.parse_args(argv)
    if numba is None:
        print("numba_peer: numba is not installed (%s): skipped; bench/setup_numba.sh installs it" % _NUMBA_ERR)
        return 0
    import h5py
    import xm_reference as xr
    if a.threads > 0:
        numba.set_num_threads(a.threads)
    cfg = xr.make_config(dict(kv.split("=", 1) for kv in a.set))
    t0 = time.perf_counter()
    p = xr.read_portfolio(a.portfolio)
    scen = xr.read_scenarios(a.scenarios)
    rscen = xr.read_results_scenarios(a.results)
    sets = xr.build_sets(p, scen, cfg, rscen)
    d = prepare(p, sets, cfg)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = _kernels()
    L = np.zeros((d["A"], d["G"] + 1, d["X"].shape[0]))        # allocated once (and touched)
    # the first call compiles (or loads numba's cache, __pycache__): on the first
    # 64 scenarios as one ES set and as one worst set, then --warmup full runs
    m = min(64, d["X"].shape[0])
    small = dict(d, X=np.ascontiguousarray(d["X"][:m]), rows=[0, m, m], kinds=[0, 2], ks=[1, 1])
    evaluate(k, small, cfg, np.zeros((d["A"], d["G"] + 1, m)))
    for _ in range(a.warmup):
        evaluate(k, d, cfg, L)
    t_warm = time.perf_counter() - t0
    times, out = [], None
    for _ in range(max(1, a.repeat)):
        t = time.perf_counter()
        out = evaluate(k, d, cfg, L)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    # the check against the engine's results
    with h5py.File(a.results, "r") as f:
        eng = {n: f["margin/" + n][()] for n in ("requirement", "unified", "siloed", "by_set")}
        eng_sets = [x.decode() if isinstance(x, bytes) else str(x) for x in f["set"][()]]
    worst, fails = 0.0, []
    if eng_sets != [s["name"] for s in sets]:
        fails.append("sets %s, engine %s" % ([s["name"] for s in sets], eng_sets))
    for n, e in eng.items():
        v = out[n]
        den = np.maximum(np.abs(e), 1e-300)
        rel = np.where((v == e), 0.0, np.abs(v - e) / den)
        worst = max(worst, float(rel.max()))
        if rel.max() > a.rtol:
            i = np.unravel_index(int(rel.argmax()), rel.shape)
            fails.append("%s%s: peer %.17g, engine %.17g (rel %.3g)" % (n, list(i), v[i], e[i], rel[i]))
    S_total = int(d["X"].shape[0])
    rec = {"size": a.size, "threads": numba.get_num_threads(), "numba": numba.__version__,
           "S": S_total, "positions": d["n_positions"], "instruments": len(d["typ"]), "accounts": d["A"],
           "read_s": t_read, "warmup_s": t_warm, "warmup": a.warmup, "evaluate_s": med, "min_s": min(times), "max_s": max(times),
           "repeat": len(times), "reval_per_s": S_total * d["n_positions"] / med,
           "max_rel_diff": worst, "ok": not fails}
    print("numba peer %s: %d threads, evaluate median %.4f s (min %.4f, max %.4f, n=%d); compile + "
          "%d warm-up runs %.1f s; %.4g revaluations/s; max rel. diff from the engine %.2g (rtol %g) %s" %
          (a.size, rec["threads"], med, min(times), max(times), len(times), a.warmup, t_warm,
           rec["reval_per_s"], worst, a.rtol, "ok" if not fails else "FAIL"))
    for m in fails:
        print("FAIL numba_peer: " + m)
    print("NUMBAPEER " + json.dumps(rec))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
