#!/usr/bin/python3
"""The benchmark peer: the unified margin computed the way a risk quant would
write it without xmargin (vectorised NumPy, chunked to a memory budget).

It times tests/python/xm_reference.compute on the given files and prints the
seconds and the revaluations per second (S_total x N_positions / seconds), then
writes its per-account results (.npz, or .h5 with /margin/* like xmargin's) so
the benchmark can compare them with xmargin's to 1e-6.

Monte Carlo shocks come from an xmargin results file written with
--save-scenarios (--results), so both sides price the same scenarios; the
peer's timing then excludes Monte Carlo generation. `--set montecarlo.source=numpy`
draws them with NumPy instead (end-to-end timing, numbers not comparable).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))
import xm_reference as xr  # noqa: E402


def write_output(ref, path):
    if path.endswith(".npz"):
        xr.save_npz(ref, path)
        return
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.peer"
        f.attrs["format_version"] = 1
        s = h5py.string_dtype()
        f["account"] = np.array(ref["accounts"], dtype=s)
        f["silo"] = np.array(ref["silos"], dtype=s)
        f["set"] = np.array(ref["sets"], dtype=s)
        for k in xr.MARGIN_DATASETS:
            f["margin/" + k] = ref[k]


def run_peer(xp, label, argv=None, sync=lambda: None):
    ap = argparse.ArgumentParser(description="%s peer of xmargin" % label)
    ap.add_argument("--portfolio", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--results", help="xmargin results with /scenarios/<set>/shock (--save-scenarios)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1 if xp is not np else 0)
    ap.add_argument("--out", help="write per-account results here (.npz or .h5)")
    a = ap.parse_args(argv)
    cfg = dict(kv.split("=", 1) for kv in a.set)

    t0 = time.perf_counter()
    p = xr.read_portfolio(a.portfolio)
    scen = xr.read_scenarios(a.scenarios)
    rscen = xr.read_results_scenarios(a.results) if a.results else {}
    t_read = time.perf_counter() - t0

    def once():
        t = time.perf_counter()
        mcfg = xr.make_config(cfg)
        sets = xr.build_sets(p, scen, mcfg, rscen)
        ref = xr.compute(None, None, config=cfg, xp=xp, portfolio=p, sets=sets)
        sync()
        return time.perf_counter() - t, ref

    for _ in range(a.warmup):
        once()
    times = []
    ref = None
    for _ in range(max(1, a.repeat)):
        dt, ref = once()
        times.append(dt)
    med = statistics.median(times)
    S_total = int(ref["n_scenarios"].sum())
    N = ref["n_positions"]
    print("peer %s: read %.3f s; compute median %.4f s (min %.4f, max %.4f, n=%d)" %
          (label, t_read, med, min(times), max(times), len(times)))
    print("sets %s scenarios %s positions %d accounts %d" %
          (ref["sets"], ref["n_scenarios"].tolist(), N, len(ref["accounts"])))
    print("revaluations/s %.4g  (S_total %d x N_positions %d / %.4f s)" % (S_total * N / med, S_total, N, med))
    print("seconds %.6f" % med)
    if a.out:
        write_output(ref, a.out)
        print("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_peer(np, "numpy"))
