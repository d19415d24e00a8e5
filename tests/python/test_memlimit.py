#!/usr/bin/env python3
"""--mem-limit is a bound, not a hint (issue 12): on a book of 600 factors with
two Monte Carlo sets of 20,000 scenarios (the shock buffers dominate: 2 x 2 x
20,000 x 600 doubles = 384 MB uncapped), `--mem-limit 64M`

  - splits the plan: shocks made per tile, and several account blocks when
    L holds a group's rows (XM_CHUNK=-1), fewer (one) when it streams (the
    default: a chunk of rows and each set's running tail, docs/engine.md);
  - keeps the loop's buffers within the limit (the plan's own count, in
    --json), on the cpu backend and on OpenCL;
  - keeps the cpu backend's peak RSS within 64 MiB + the stated fixed overhead
    (docs/architecture.md): the process with its inputs read (measured here by
    a run of no set), the scenario sets' host arrays (reported by the run as
    plan.sets_host_bytes) and 16 MiB of allocator and page slack;
  - and gives the results of the uncapped run, streamed or not: bit for bit,
    on each backend;
  - with --save-pnl (each account's loss in every scenario: 4 S A bytes, 33
    MB here, more than the slack) still streams, the losses going to a
    nameless file beside the output as the run makes them: /pnl and /margin
    are the unstreamed run's bit for bit, the peak RSS stays within the same
    bound, and it exceeds the streamed run's without --save-pnl by less than
    the losses' 4 S A bytes (they are not held).

Labelled slow: not in the sanitizer build.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

LIMIT = 64 << 20
SLACK = 16 << 20
MC = ["--set", "montecarlo.scenarios=20000", "--set", "montecarlo.correlation_stress=0.3",
      "--set", "historical.lookback=500"]


def run_measured(args):
    """xmargin args in a child whose peak RSS is read with wait4 (KiB on Linux)."""
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 2)
            out = os.open(args[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.execv(tl.xmargin_binary(), [tl.xmargin_binary()] + args[:-1])
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), ru.ru_maxrss * 1024


def main():
    T = tl.Tally()
    with tl.TmpDir("xm_memlimit_") as d:
        pre = os.path.join(d, "book")
        rc, _, err, _ = tl.run_xm(["generate", "--accounts", 200, "--instruments", 1100, "--positions",
                                   6000, "--factors", 600, "--history-days", 600, "-q", "-o", pre])
        if not T.check("generate a 600-factor book", rc == 0, err[-400:]):
            T.finish()
        P, S = pre + "-portfolio.h5", pre + "-scenarios.h5"
        base = ["run", "--portfolio", P, "--scenarios", S, "--device", "cpu", "--json"]

        # The process with its inputs read: a run of the ready-made sets only
        # (their shocks are inputs), with no historical or Monte Carlo set.
        rc, rss0 = run_measured(base + ["-o", os.path.join(d, "none.h5"), "--set", "historical.enabled=false",
                                        "--set", "montecarlo.enabled=false", os.path.join(d, "none.json")])
        T.check("baseline run exits 0", rc == 0)
        print("# baseline (libraries + inputs read): %.1f MiB" % (rss0 / 2**20))

        runs = {}
        for dev in ["cpu"] + (["opencl"] if tl.opencl_available() else []):
            for lim in (None, "64M", "64M-rows"):
                out = os.path.join(d, "%s-%s.h5" % (dev, lim))
                js = os.path.join(d, "%s-%s.json" % (dev, lim))
                args = [a if a != "cpu" else dev for a in base] + ["-o", out] + MC
                if lim:
                    args += ["--mem-limit", "64M"]
                os.environ["XM_CHUNK"] = "-1" if lim == "64M-rows" else "0"
                rc, rss = run_measured(args + [js])
                del os.environ["XM_CHUNK"]
                ok = T.check("%s --mem-limit %s: exit 0" % (dev, lim or "none"), rc == 0)
                if not ok:
                    continue
                with open(js) as f:
                    plan = json.load(f)["plan"]
                runs[(dev, lim)] = (out, plan, rss)
                print("# %s --mem-limit %s: peak RSS %.1f MiB, plan %s" % (dev, lim, rss / 2**20, plan))
            if (dev, "64M") not in runs:
                continue
            out, plan, rss = runs[(dev, "64M")]
            T.check("%s 64M: budget is the limit" % dev, plan["budget_bytes"] == LIMIT, str(plan))
            T.check("%s 64M: the loop's buffers fit the limit" % dev, plan["planned_bytes"] <= LIMIT,
                    str(plan))
            if (dev, "64M-rows") in runs:
                rows = runs[(dev, "64M-rows")]
                T.check("%s 64M, L a group's rows: several account blocks" % dev, rows[1]["blocks"] > 1,
                        str(rows[1]))
                T.check("%s 64M streamed: fewer blocks (%d < %d)" % (dev, plan["blocks"], rows[1]["blocks"]),
                        plan["blocks"] < rows[1]["blocks"])
                T.check("%s 64M, L a group's rows: within the limit" % dev,
                        rows[1]["planned_bytes"] <= LIMIT, str(rows[1]))
                a, b = tl.read_margin(rows[0]), tl.read_margin(out)
                T.check("%s 64M: streamed /margin bitwise == L a group's rows" % dev,
                        all(np.array_equal(a[k], b[k]) for k in a if not k.startswith("_")))
            T.check("%s 64M: shocks made per tile (they do not fit)" % dev, not plan["shocks_resident"],
                    str(plan))
            if dev == "cpu":
                bound = LIMIT + rss0 + plan["sets_host_bytes"] + SLACK
                if ("cpu", "64M-rows") in runs:
                    print("# cpu 64M peak RSS: streamed %.1f MiB, L a group's rows %.1f MiB"
                          % (rss / 2**20, runs[("cpu", "64M-rows")][2] / 2**20))
                T.check("cpu 64M: peak RSS %.1f MiB <= 64 MiB + baseline %.1f + sets %.1f + slack %.0f"
                        % (rss / 2**20, rss0 / 2**20, plan["sets_host_bytes"] / 2**20, SLACK / 2**20),
                        rss <= bound)
                if ("cpu", None) in runs:
                    T.check("cpu uncapped: more than the bound (the test can fail)",
                            runs[("cpu", None)][2] > bound, "%.1f MiB" % (runs[("cpu", None)][2] / 2**20))
            if (dev, None) in runs:
                a, b = tl.read_margin(runs[(dev, None)][0]), tl.read_margin(out)
                T.check("%s uncapped: one block, shocks made once" % dev,
                        runs[(dev, None)][1]["blocks"] == 1 and runs[(dev, None)][1]["shocks_resident"])
                for k in ("requirement", "unified", "siloed", "by_set", "by_silo", "attribution"):
                    sc = np.maximum(np.abs(a["requirement"]), 1e-300)
                    T.close("%s 64M: %s == uncapped" % (dev, k), b[k], a[k], 1e-12,
                            scale=sc if a[k].ndim == 1 else sc[:, None])
                # bitwise on both: a shock does not depend on its tile (the cpu
                # backend's Monte Carlo product in blocks aligned on the scenario
                # numbers, every exp in the vector code)
                T.check("%s 64M: /margin bitwise == uncapped" % dev,
                        all(np.array_equal(a[k], b[k]) for k in a if not k.startswith("_")))
        pnl_runs(T, d, base, rss0, runs)
    T.finish()


def pnl_sizes(path):
    """S x A of each /pnl/<set> of a results file."""
    import h5py
    with h5py.File(path, "r") as f:
        return [f["pnl"][n].shape[0] * f["pnl"][n].shape[1] for n in f["set"].asstr()[()]]


def pnl_runs(T, d, base, rss0, runs):
    """--save-pnl at 64M on the cpu backend, streamed and not."""
    got = {}
    for mode in ("streamed", "rows"):
        out, js = os.path.join(d, "pnl-%s.h5" % mode), os.path.join(d, "pnl-%s.json" % mode)
        os.environ["XM_CHUNK"] = "-1" if mode == "rows" else "0"
        rc, rss = run_measured(base + ["-o", out, "--save-pnl", "--mem-limit", "64M"] + MC + [js])
        del os.environ["XM_CHUNK"]
        if T.check("cpu 64M --save-pnl %s: exit 0" % mode, rc == 0):
            with open(js) as f:
                got[mode] = (out, json.load(f)["plan"], rss)
            print("# cpu 64M --save-pnl %s: peak RSS %.1f MiB, plan %s" % (mode, rss / 2**20, got[mode][1]))
    T.check("cpu 64M --save-pnl: no temporary file left beside the output",
            not [f for f in os.listdir(d) if f.startswith(".xmargin-pnl")], str(os.listdir(d)))
    if len(got) < 2:
        return
    (out, plan, rss), rows = got["streamed"], got["rows"]
    T.check("cpu 64M --save-pnl streamed: fewer blocks (%d < %d)" % (plan["blocks"], rows[1]["blocks"]),
            plan["blocks"] < rows[1]["blocks"])
    T.check("cpu 64M --save-pnl streamed: the loop's buffers fit the limit", plan["planned_bytes"] <= LIMIT,
            str(plan))
    bound = LIMIT + rss0 + plan["sets_host_bytes"] + SLACK
    T.check("cpu 64M --save-pnl streamed: peak RSS %.1f MiB <= the bound %.1f MiB (unstreamed: %.1f MiB)"
            % (rss / 2**20, bound / 2**20, rows[2] / 2**20), rss <= bound)
    a, b = tl.read_margin(rows[0]), tl.read_margin(out)
    if ("cpu", "64M") in runs:
        SA = 4 * sum(pnl_sizes(out))
        more = rss - runs[("cpu", "64M")][2]
        T.check("cpu 64M --save-pnl streamed: %.1f MiB more RSS than without, < the losses' %.1f MiB"
                % (more / 2**20, SA / 2**20), more < SA)
    T.check("cpu 64M --save-pnl: streamed /margin bitwise == unstreamed",
            all(np.array_equal(a[k], b[k]) for k in a if not k.startswith("_")))
    if ("cpu", None) in runs:
        c = tl.read_margin(runs[("cpu", None)][0])
        T.check("cpu 64M --save-pnl: /margin bitwise == the run without it",
                all(np.array_equal(c[k], b[k]) for k in c if not k.startswith("_")))
    import h5py
    with h5py.File(rows[0], "r") as fa, h5py.File(out, "r") as fb:
        names = list(fa["set"].asstr()[()])
        T.check("cpu 64M --save-pnl: a /pnl dataset per set", all(n in fb["pnl"] for n in names), str(names))
        for name in names:
            x, y = fa["pnl"][name][()], fb["pnl"][name][()]
            T.check("cpu 64M --save-pnl: /pnl/%s %s streamed bitwise == unstreamed" % (name, x.shape),
                    x.shape == y.shape and np.array_equal(x, y) and np.abs(x).max() > 0)


if __name__ == "__main__":
    main()
