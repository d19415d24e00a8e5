#!/usr/bin/python3
"""Times the NumPy (or CuPy) peer the way xm_bench times xmargin, and checks
its requirements against an xmargin results file.

Timed apart, each after --warmup untimed runs, --repeat times (median, min, max):
  read      reading the portfolio, scenario file and the Monte Carlo shocks
            (xmargin's results written with --save-scenarios: equal work)
  sets      building the scenario sets (historical FHS from /history; the
            Monte Carlo shocks are read, not generated)
  evaluate  xm_reference.compute() on the ready sets: revaluation, aggregation,
            risk measures and the cross-margined requirement, the same span as
            xmargin's t_evaluate (for CuPy: including host->device copies of the
            shocks and a final synchronize)
Prints a line "PEERBENCH {json}" and, with --compare RESULTS, checks
/margin/requirement to --rtol relative per account (and every /margin dataset
to --rtol of the account's loss scale, xm_reference.compare); exit 1 on a
mismatch, loudly.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))
import xm_reference as xr  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--results", required=True, help="xmargin results with /scenarios/<set>/shock")
    ap.add_argument("--compare", help="xmargin results whose /margin/* the peer must match")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--xp", choices=("numpy", "cupy"), default="numpy")
    ap.add_argument("--warmup", type=int, default=None, help="default 0 for numpy, 1 for cupy")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="", help="label for the output line")
    ap.add_argument("--jsonl", help="append the JSON line to this file")
    a = ap.parse_args(argv)
    cfg = dict(kv.split("=", 1) for kv in a.set)

    if a.xp == "cupy":
        try:
            import cupy as xp
            xp.zeros(1).sum()
        except Exception as e:  # ImportError, CUDARuntimeError
            print("peer_bench: cupy not available (%s: %s): skipped" % (type(e).__name__, e))
            return 0

        def sync():
            xp.cuda.Device().synchronize()
        warmup = 1 if a.warmup is None else a.warmup
    else:
        xp = np

        def sync():
            pass
        warmup = 0 if a.warmup is None else a.warmup

    t0 = time.perf_counter()
    p = xr.read_portfolio(a.portfolio)
    scen = xr.read_scenarios(a.scenarios)
    rscen = xr.read_results_scenarios(a.results)
    t_read = time.perf_counter() - t0

    t_sets, t_eval, ref = [], [], None
    for r in range(warmup + max(1, a.repeat)):
        t0 = time.perf_counter()
        mcfg = xr.make_config(cfg)
        sets = xr.build_sets(p, scen, mcfg, rscen)
        t1 = time.perf_counter()
        ref = xr.compute(None, None, config=cfg, xp=xp, portfolio=p, sets=sets)
        sync()
        t2 = time.perf_counter()
        if r >= warmup:
            t_sets.append(t1 - t0)
            t_eval.append(t2 - t1)
        print("peer_bench: %s %s run %d: sets %.4f evaluate %.4f s" %
              (a.xp, a.size, r + 1 - warmup, t1 - t0, t2 - t1), file=sys.stderr)

    S_total = int(ref["n_scenarios"].sum())
    N = int(ref["n_positions"])
    A = len(ref["accounts"])
    ev = statistics.median(t_eval)
    st = statistics.median(t_sets)
    tot = [t_read + s + e for s, e in zip(t_sets, t_eval)]
    out = {
        "tool": "peer_bench", "peer": a.xp, "size": a.size, "scenarios": S_total, "positions": N,
        "accounts": A, "revaluations": S_total * N, "warmup": warmup, "repeat": len(t_eval),
        "read_s": t_read, "sets_s": [st, min(t_sets), max(t_sets)],
        "evaluate_s": [ev, min(t_eval), max(t_eval)],
        "total_s": [statistics.median(tot), min(tot), max(tot)],
        "reval_per_s": S_total * N / ev, "accounts_per_s": A / statistics.median(tot),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    rc = 0
    if a.compare:
        import h5py
        with h5py.File(a.compare, "r") as f:
            got = np.asarray(f["margin/requirement"][()], dtype=np.float64)
        exp = ref["requirement"]
        den = np.maximum(np.abs(got), np.abs(exp))
        rel = np.where(den > 0, np.abs(got - exp) / np.where(den > 0, den, 1.0), 0.0)
        rel = np.where(np.isnan(rel), np.inf, rel)
        worst = float(rel.max()) if rel.size else 0.0
        ok_all, rep = xr.compare(ref, a.compare, a.rtol, out=sys.stderr)
        out["max_rel_diff_requirement"] = worst
        out["max_scaled_diff_margin"] = max([v for k, v in rep.items() if k != "binding_set"] or [0.0])
        out["compare_ok"] = bool(worst <= a.rtol and ok_all)
        if not out["compare_ok"]:
            i = int(np.argmax(rel))
            print("peer_bench: FAIL: %s: peer and xmargin disagree: requirement max rel diff %.3e "
                  "(account %s: xmargin %.10g, peer %.10g), /margin within %.1e of scale: %s" %
                  (a.size, worst, ref["accounts"][i], got[i], exp[i], a.rtol, ok_all), file=sys.stderr)
            rc = 1
    line = json.dumps(out)
    print("PEERBENCH " + line)
    if a.jsonl:
        with open(a.jsonl, "a") as f:
            f.write(line + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
