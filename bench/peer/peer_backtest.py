#!/usr/bin/python3
"""Times the NumPy peer's backtest (xm_reference.backtest(), METHODOLOGY §7) on
the inputs of an `xmargin backtest` run, and checks it against that run.

The same work as `xmargin backtest`: for each backtest day a full run on the
history up to that day (the filtered historical set, the Monte Carlo set, the
ready-made sets; revaluation, aggregation, risk measures, the cross-margined
requirement), the realised loss of the next h days, the book totals and the
§7 statistics. The Monte Carlo shocks of every day are read from the xmargin
file written with --save-scenarios (/scenarios/<set>/shock [N x S x F]), so
both sides price the same scenarios; the peer does not generate them (as in
peer_bench.py, which times compute() on saved shocks).

American options: by default the peer prices them with bench/peer/american_np.py
(BS2002 on arrays, the formulas of tests/python/xm_american.py); the reference's
own scalar loop (`--american scalar`) costs ~150 us a value, ~97% of a demo
backtest, and would time the interpreter rather than NumPy. american_np also
remembers its last result: the reference prices each scenario chunk once per
account currency, and an American value does not depend on it (the rest of the
pricing is redone per currency, as xm_reference does).

Timed, after --warmup untimed runs, --repeat times (median, min, max):
  read      the portfolio, the scenario file (once, before the runs) and,
            apart, the saved shocks (read_s, shocks_read_s)
  backtest  xm_reference.backtest() on the read inputs: the span of the
            `backtest` seconds of `xmargin backtest --json`
Prints "PEERBACKTEST {json}" (days per second = days / backtest median).
Single-threaded: OPENBLAS_NUM_THREADS defaults to 1 here (see below).

--compare FILE (repeatable; default the --results file): every /series dataset
of the xmargin file against the peer's, floats to --rtol of METHODOLOGY §5's
scale max(|x|, Lambda_a(d)) (Lambda_a: the account's largest |loss| of the day,
floored at 1e-5 of its gross value: what xm_reference.compare_backtest and the
tests bound; the plain |x - y| / max(|x|, |y|) is reported beside it, and it is
not bounded: an account whose margin is 0 on one side and 1.8e-15 on the other
is 1.0 there), to_reporting (X_b) to --rtol plainly, binding_set as a choice
(ties allowed, compare_backtest's rule), test_day exactly, currency against the
book. Exit 1 on a mismatch there, loudly. The rest of compare_backtest
(statistics, names, attributes) is run too; what differs there is printed as
NOTE lines and listed in the JSON ("other_differences"), without failing.
"""

import argparse
import ast
import json
import os
import resource
import statistics
import sys
import time

# The peer is single-threaded, as NumPy's own loops are: OpenBLAS's threads (the
# small products of american_np's bivariate normal) otherwise spin against each
# other on a 2-core machine, 4x slower there. Set OPENBLAS_NUM_THREADS to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))
import xm_reference as xr  # noqa: E402

# datasets of FORMAT §4 the reference's backtest() does not return (the engine
# writes them for xarray): checked here against the book, not by compare_backtest
SERIES_EXTRA = ("series/currency", "series/to_reporting")


def compare_series(ref, p, path, rtol):
    """[(name, ok, plain max rel, scaled max rel, detail)] for every /series dataset of path."""
    import h5py
    rows = []
    with h5py.File(path, "r") as f:
        if "series" not in f:
            return [("/series", False, float("inf"), float("inf"), "no /series group")]
        names = []
        f["series"].visititems(lambda n, o: names.append("series/" + n) if isinstance(o, h5py.Dataset) else None)
        for name in sorted(names):
            base = name.split("/", 1)[1]
            if base in ("day", "account", "silo"):       # dimension scales: compare_backtest checks them
                continue
            if name == "series/currency":
                got = xr._strings(f[name])
                exp = [str(c) for c in p["account_currency"]] if "account_currency" in p else None
                if exp is None:
                    rows.append((name, True, 0.0, 0.0, "not in the peer's book reading: skipped"))
                else:
                    rows.append((name, got == exp, 0.0, 0.0, "" if got == exp else "differs"))
                continue
            got = np.asarray(f[name][()])
            if name == "series/to_reporting":
                exp = ref["xb"]
            elif name in ref:
                exp = ref[name]
            else:
                rows.append((name, False, float("inf"), float("inf"), "not in the peer's backtest"))
                continue
            if got.shape != np.shape(exp):
                rows.append((name, False, float("inf"), float("inf"), "shape %s, peer %s" % (got.shape, np.shape(exp))))
                continue
            if name in ("series/test_day",):
                ok = np.array_equal(got.astype(np.int64), np.asarray(exp, dtype=np.int64))
                rows.append((name, ok, 0.0 if ok else float("inf"), 0.0, "exact"))
                continue
            if name == "series/binding_set":
                g, e = got.astype(np.int64), np.asarray(exp, dtype=np.int64)
                bad, ties = 0, 0
                for j, a in zip(*np.nonzero(g != e)):
                    k = int(g[j, a])
                    tol = rtol * max(ref["core"][j, a], ref["scale"][j, a])
                    if not (0 <= k < len(ref["set"])) or not ref["enters_max"][k] or \
                            abs(ref["by_set"][j, a, k] - ref["core"][j, a]) > tol:
                        bad += 1
                    else:
                        ties += 1
                rows.append((name, bad == 0, 0.0, 0.0, "%d ties, %d wrong sets" % (ties, bad)))
                continue
            g, e = got.astype(np.float64), np.asarray(exp, dtype=np.float64)
            den = np.maximum(np.abs(g), np.abs(e))
            d = np.where(den > 0, np.abs(g - e) / np.where(den > 0, den, 1.0), 0.0)
            d = np.where(np.isnan(d), np.inf, d)
            plain = float(d.max()) if d.size else 0.0
            scaled = 0.0
            if name != "series/to_reporting":
                sc = np.maximum(np.abs(e), xr._bt_scale(ref, name))
                ds = np.abs(g - e) / np.where(sc > 0, sc, 1.0)
                ds = np.where(np.isnan(ds), np.inf, ds)
                scaled = float(ds.max()) if ds.size else 0.0
            detail = ""
            if plain > rtol:
                w = np.unravel_index(int(np.argmax(d)), d.shape)
                detail = "plain worst at %s: xmargin %.17g peer %.17g" % (tuple(int(i) for i in w), float(g[w]),
                                                                         float(e[w]))
            ok = (plain if name == "series/to_reporting" else scaled) <= rtol
            rows.append((name, ok, plain, scaled, detail))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portfolio", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--results", required=True, help="xmargin backtest file written with --save-scenarios")
    ap.add_argument("--compare", action="append", default=[], metavar="BT.h5",
                    help="xmargin backtest files the peer must match (repeatable; default --results)")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="configuration, as given to xmargin backtest --set (repeatable)")
    ap.add_argument("--days", type=int, help="backtest.days (as xmargin backtest --days)")
    ap.add_argument("--american", choices=("vector", "scalar"), default="vector",
                    help="american_option pricing: american_np (default) or the reference's scalar loop")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--size", default="", help="label for the output line")
    ap.add_argument("--jsonl", help="append the JSON line to this file")
    a = ap.parse_args(argv)
    cfg = {}
    for kv in a.set:
        if "=" not in kv:
            ap.error("--set wants KEY=VALUE, got %r" % kv)
        k, v = kv.split("=", 1)
        cfg[k.strip()] = v
    american_np = None
    if a.american == "vector":
        import american_np
        american_np.install(xr)

    t0 = time.perf_counter()
    p = xr.read_portfolio(a.portfolio)
    scen = xr.read_scenarios(a.scenarios)
    t1 = time.perf_counter()
    saved = xr.read_backtest_scenarios(a.results)
    t2 = time.perf_counter()
    t_read, t_shocks = t1 - t0, t2 - t1

    t_bt, ref = [], None
    for r in range(a.warmup + max(1, a.repeat)):
        t0 = time.perf_counter()
        ref = xr.backtest(None, None, config=cfg, days=a.days, portfolio=p, scenarios=scen, saved=saved)
        dt = time.perf_counter() - t0
        if r >= a.warmup:
            t_bt.append(dt)
        print("peer_backtest: %s run %d: backtest %.3f s (%d days)" %
              (a.size, r + 1 - a.warmup, dt, len(ref["rows"])), file=sys.stderr)

    N = len(ref["rows"])
    med = statistics.median(t_bt)
    out = {
        "tool": "peer_backtest", "peer": "numpy", "american": a.american, "size": a.size, "days": N,
        "accounts": len(ref["account"]), "sets": list(ref["set"]),
        "scenarios_day0": {k: int(v[0].shape[0]) for k, v in ref["shocks"].items()},
        "warmup": a.warmup, "repeat": len(t_bt), "read_s": t_read, "shocks_read_s": t_shocks,
        "backtest_s": [med, min(t_bt), max(t_bt)], "backtest_runs_s": t_bt, "days_per_s": N / med,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if american_np is not None:
        out["american_calls"] = american_np._last["calls"]
        out["american_memo_hits"] = american_np._last["hits"]
    rc = 0
    notes = []
    worst_plain = worst_scaled = 0.0
    for path in (a.compare or [a.results]):
        rows = compare_series(ref, p, path, a.rtol)
        res = xr.compare_backtest(ref, path, rtol=a.rtol)
        for name, ok, plain, scaled, detail in rows:
            worst_plain = max(worst_plain, plain)
            worst_scaled = max(worst_scaled, scaled)
            print("peer_backtest: %-4s %s /%s: max rel %.2e (scaled %.2e) %s" %
                  ("ok" if ok else "FAIL", os.path.basename(path), name, plain, scaled, detail), file=sys.stderr)
            if not ok:
                rc = 1
        for what, ok, detail in res:
            if what.startswith("no dataset outside"):
                extra = [x for x in ast.literal_eval(detail) if x not in SERIES_EXTRA] if detail.startswith("[") else []
                ok = not extra
                detail = str(extra) if extra else "(%s checked above)" % ", ".join(SERIES_EXTRA)
            if what.startswith("/series/"):
                continue                                 # the per-dataset lines above
            if not ok:
                print("peer_backtest: NOTE %s %s: %s" % (os.path.basename(path), what, detail), file=sys.stderr)
                notes.append("%s: %s: %s" % (os.path.basename(path), what, detail))
        print("peer_backtest: %s: %d /series datasets %s; %d other checks of compare_backtest, %d differ" %
              (os.path.basename(path), len(rows), "ok" if rc == 0 else "FAILED", len(res),
               sum(1 for n in notes if n.startswith(os.path.basename(path) + ":"))), file=sys.stderr)
    out["compared"] = [os.path.basename(x) for x in (a.compare or [a.results])]
    out["max_rel_diff_series"] = worst_plain
    out["max_scaled_diff_series"] = worst_scaled
    out["compare_ok"] = rc == 0
    out["other_differences"] = notes
    if rc:
        print("peer_backtest: FAIL: %s: the peer and xmargin disagree beyond %.1e (see above)" % (a.size, a.rtol),
              file=sys.stderr)
    line = json.dumps(out)
    print("PEERBACKTEST " + line)
    if a.jsonl:
        with open(a.jsonl, "a") as f:
            f.write(line + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
