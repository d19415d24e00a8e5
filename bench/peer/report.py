#!/usr/bin/python3
"""Joins xm_bench's and peer_bench's JSON lines (one run of bench/run.sh) into
the markdown tables of bench/RESULTS.md: per (size, backend) the medians, the
spread and the ratios to the peers and to the cpu backend measured in the same
run. Usage: report.py XM.jsonl PEER.jsonl"""

import json
import sys


def load(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


def fmt_s(v):
    return "%.3f (%.3f–%.3f)" % tuple(v)


def main():
    xm = load(sys.argv[1])
    peers = load(sys.argv[2]) if len(sys.argv) > 2 else []
    peer = {(p["size"], p["peer"]): p for p in peers}
    sizes = []
    for r in xm:
        if r["size"] not in sizes:
            sizes.append(r["size"])
    for p in peers:
        if p["size"] not in sizes:
            sizes.append(p["size"])
    print("Evaluate = revaluation + aggregation + risk measures + requirement (xmargin's "
          "t_evaluate; the peer's compute() on ready sets). Times in seconds: median (min–max) "
          "of the repeats. Ratio = peer seconds / xmargin seconds in the same run (> 1: xmargin "
          "faster).\n")
    print("| size | scen. × positions = revaluations | backend | scen. gen. s | evaluate s | "
          "Mreval/s | vs NumPy (evaluate) | vs cpu backend (evaluate) | end-to-end s | "
          "vs NumPy (end-to-end) | accounts/s | peak RSS MiB | runs |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        rows = [r for r in xm if r["size"] == s]
        cpu = next((r for r in rows if r["backend"] == "cpu" and r.get("threads", 0) != 1), None)
        npk = peer.get((s, "numpy"))
        for r in rows:
            name = r["backend"] + ("" if r["backend"] != "cpu" else " (%d thr)" % r["threads"])
            if r["backend"] != "cpu":
                name += " " + r["device"][:32]
            work = "%d × %d = %.2g" % (r["scenarios"], r["positions"], r["revaluations"])
            vs_np = "%.2f×" % (npk["evaluate_s"][0] / r["evaluate_s"][0]) if npk else "–"
            vs_np_e2e = "%.2f×" % (npk["total_s"][0] / r["total_s"][0]) if npk else "–"
            vs_cpu = ("%.2f×" % (cpu["evaluate_s"][0] / r["evaluate_s"][0])
                      if cpu and r is not cpu else "1")
            print("| %s | %s | %s | %.3f | %s | %.1f | %s | %s | %s | %s | %.0f | %.0f | %d+%d |" % (
                s, work, name, r["scenarios_s"][0], fmt_s(r["evaluate_s"]), r["reval_per_s"] / 1e6,
                vs_np, vs_cpu, fmt_s(r["total_s"]), vs_np_e2e, r["accounts_per_s"],
                r["peak_rss_mib"], r["warmup"], r["repeat"]))
        for kind in ("numpy", "cupy"):
            p = peer.get((s, kind))
            if not p:
                continue
            work = "%d × %d = %.2g" % (p["scenarios"], p["positions"], p["revaluations"])
            chk = ("req. max rel. diff %.1e %s" % (p["max_rel_diff_requirement"],
                                                   "ok" if p["compare_ok"] else "FAIL")
                   if "compare_ok" in p else "")
            print("| %s | %s | %s peer (%s) | (read) | %s | %.1f | 1 | – | %s | 1 | %.0f | %.0f | %d+%d |" % (
                s, work, kind, chk, fmt_s(p["evaluate_s"]), p["reval_per_s"] / 1e6,
                fmt_s(p["total_s"]), p["accounts_per_s"], p["peak_rss_mib"], p["warmup"],
                p["repeat"]))
    bad = [p for p in peers if p.get("compare_ok") is False]
    bad += [r for r in xm if r.get("max_rel_diff_vs_first", 0) > 1e-6]
    if bad:
        print("\n**FAIL**: %d comparison(s) above 1e-6 relative (see the lines above)." % len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
