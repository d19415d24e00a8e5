"""xmargin run and backtest under mpirun (a build with XM_WITH_MPI; tests/CMakeLists.txt
registers this script only there): the ranks split the book's accounts, rank 0
gathers the per-account rows and every rank writes its accounts' /pnl columns
with parallel HDF5. Checks, on fresh random books every run (the seed printed):

- mpirun -n 1, 2 and 3 (--oversubscribe) write a results file whose every
  dataset is bit for bit the single process's (--save-pnl and --save-scenarios
  included), on the cpu backend and on OpenCL where there is a device, for a
  book of every product and currency and a book with collateral (schedule and
  scenario methods);
- a rank whose run fails (XM_TEST_FAIL_RANK=1) makes every rank exit 1, the
  message names the rank, and no results file is left;
- a rank killed before the gather (XM_TEST_FAIL_RANK=1:kill) ends the job
  non-zero, within the time limit, and leaves no results file;
- the collective write: a rank whose part is refused (1:failwrite) makes every
  rank exit 1 with the rank named; a rank killed just before its part
  (1:killwrite) ends the job non-zero; neither leaves a file or a temporary one;
- xmargin backtest under mpirun -n 2 and 3 (the ranks take the days): every
  dataset, the statistics included, bit for bit the single process's, with
  and without --save-scenarios (every day's shocks and jitter, each rank
  writing its days: the historical set grows with the day here, so the ranks'
  days have different sizes and all but the last rank's are padded to the
  largest); a failing rank, and a rank whose part of the write fails;
- xmargin run --split scenarios under mpirun -n 2 and 3, and 4 for one book
  (the ranks take each set's scenarios, keep every account's loss tails,
  merged up a binomial tree of ranks into rank 0's): every
  dataset bit for bit the single process's on the cpu backend, for es and for
  var at 95% (larger tails, more ties), a book with collateral and a book of
  300 factors (the Monte Carlo product's blocks: a scenario's draw the same
  whatever part of the set a rank holds); a rank
  failing inside the split (1:failsplit) makes every rank exit with its
  status, the others naming it, and no file; a rank killed (1:kill) ends the job non-zero, no file;
  --save-pnl with it is refused (exit 2);
- an input error exits 2 on every rank, and a command other than run and
  backtest refuses to be split (exit 2).
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

h5py = tl.h5py
T = tl.Tally()
SEED = int(os.environ.get("XM_TEST_SEED", int(time.time() * 1000) % (2**31)))
print("# seed %d (replay: XM_TEST_SEED=%d)" % (SEED, SEED))
RNG = np.random.default_rng(SEED)
MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")


def mpirun(n, args, env=None, timeout=600):
    cmd = [MPIRUN, "-n", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [tl.xmargin_binary()] + [str(a) for a in args]
    e = dict(os.environ, **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=e)
    return (p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
            time.perf_counter() - t0)


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def run_args(book, scen, out, device, cfg):
    args = ["run", "--portfolio", book, "--scenarios", scen, "-o", out, "--device", device,
            "--save-pnl", "--save-scenarios", "-q", "--set", "montecarlo.scenarios=600"]
    for kv in cfg:
        args += ["--set", kv]
    return args


def bitwise(tmp, tag, book, scen, device, cfg=()):
    one = os.path.join(tmp, "%s_%s_1.h5" % (tag, device))
    rc, _, err, t1 = tl.run_xm(run_args(book, scen, one, device, cfg))
    if not T.check("%s %s: one process exits 0" % (tag, device), rc == 0, err.strip()[-300:]):
        return
    ref = datasets(one)
    for n in (1, 2, 3):
        out = os.path.join(tmp, "%s_%s_n%d.h5" % (tag, device, n))
        rc, _, err, tn = mpirun(n, run_args(book, scen, out, device, cfg))
        if not T.check("%s %s: mpirun -n %d exits 0 (%.1f s; one process %.1f s)" % (tag, device, n, tn, t1),
                       rc == 0, err.strip()[-400:]):
            continue
        got = datasets(out)
        bad = [k for k in ref if k not in got or not tl.same_bits(ref[k], got[k])]
        extra = [k for k in got if k not in ref]
        T.check("%s %s: mpirun -n %d: all %d datasets bit for bit the single process's" %
                (tag, device, n, len(ref)), not bad and not extra, "differ: %s; extra: %s" % (bad[:6], extra))


def bt_args(book, scen, out, device, cfg):
    args = ["backtest", "--portfolio", book, "--scenarios", scen, "-o", out, "--device", device, "-q",
            "--days", "12", "--set", "backtest.min_history=40", "--set", "backtest.mc_scenarios=150",
            "--set", "backtest.apc_window=3"]
    for kv in cfg:
        args += ["--set", kv]
    return args


def backtest_days(tmp, tag, book, scen, device, cfg=()):
    """xmargin backtest under mpirun: the ranks take the days; every dataset
    (series, statistics, the book's totals and, with --save-scenarios, every
    day's shocks and Monte Carlo jitter) bit for bit one process's."""
    for save in ([], ["--save-scenarios"]):
        what = "backtest %s %s%s" % (tag, device, " --save-scenarios" if save else "")
        one = os.path.join(tmp, "bt_%s_%s_%d_1.h5" % (tag, device, len(save)))
        rc, _, err, t1 = tl.run_xm(bt_args(book, scen, one, device, cfg) + save)
        if not T.check("%s: one process exits 0" % what, rc == 0, err.strip()[-300:]):
            continue
        ref = datasets(one)
        if save:
            shocks = [k for k in ref if k.startswith("scenarios/")]
            T.check("%s: the file holds saved shocks (%d datasets)" % (what, len(shocks)), len(shocks) > 0,
                    "" if shocks else "no /scenarios datasets: %s" % sorted(ref)[:8])
        for n in (2, 3):
            out = os.path.join(tmp, "bt_%s_%s_%d_n%d.h5" % (tag, device, len(save), n))
            rc, _, err, tn = mpirun(n, bt_args(book, scen, out, device, cfg) + save)
            if not T.check("%s: mpirun -n %d exits 0 (%.1f s; one process %.1f s)" % (what, n, tn, t1),
                           rc == 0, err.strip()[-400:]):
                continue
            got = datasets(out)
            bad = [k for k in ref if k not in got or not tl.same_bits(ref[k], got[k])]
            extra = [k for k in got if k not in ref]
            T.check("%s: mpirun -n %d: all %d datasets bit for bit the single process's" % (what, n, len(ref)),
                    not bad and not extra, "differ: %s; extra: %s" % (bad[:6], extra))
    out = os.path.join(tmp, "bt_fail.h5")
    rc, _, err, _ = mpirun(2, bt_args(book, scen, out, device, cfg), env={"XM_TEST_FAIL_RANK": "1"})
    T.check("backtest: a failing rank: exit 1, the rank named, no file",
            rc == 1 and "[rank 1 of 2]" in err and not os.path.exists(out), "rc %d: %s" % (rc, err.strip()[-300:]))
    out = os.path.join(tmp, "bt_failwrite.h5")
    rc, _, err, _ = mpirun(3, bt_args(book, scen, out, device, cfg) + ["--save-scenarios"],
                           env={"XM_TEST_FAIL_RANK": "2:failwrite"})
    T.check("backtest --save-scenarios: a rank whose part of the write fails: exit 1, the rank named, no file",
            rc == 1 and "[rank 2 of 3]" in err and "are not the backtest's" in err and
            not [f for f in os.listdir(tmp) if "bt_failwrite.h5" in f],
            "rc %d: %s; %s" % (rc, err.strip()[-300:], os.listdir(tmp)))


def split_args(book, scen, out, device, cfg):
    args = ["run", "--portfolio", book, "--scenarios", scen, "-o", out, "--device", device, "-q",
            "--set", "montecarlo.scenarios=600"]
    for kv in cfg:
        args += ["--set", kv]
    return args


def scenario_split(tmp, tag, book, scen, device, cfg=(), ranks=(2, 3)):
    """run --split scenarios: every dataset bit for bit one process's."""
    one = os.path.join(tmp, "sp_%s_%s_1.h5" % (tag, device))
    rc, _, err, t1 = tl.run_xm(split_args(book, scen, one, device, cfg))
    if not T.check("split scenarios %s %s: one process exits 0" % (tag, device), rc == 0, err.strip()[-300:]):
        return
    ref = datasets(one)
    for n in ranks:
        out = os.path.join(tmp, "sp_%s_%s_n%d.h5" % (tag, device, n))
        rc, _, err, tn = mpirun(n, split_args(book, scen, out, device, cfg) + ["--split", "scenarios"])
        if not T.check("split scenarios %s %s: mpirun -n %d exits 0 (%.1f s; one process %.1f s)"
                       % (tag, device, n, tn, t1), rc == 0, err.strip()[-400:]):
            continue
        got = datasets(out)
        bad = [k for k in ref if k not in got or not tl.same_bits(ref[k], got[k])]
        extra = [k for k in got if k not in ref]
        T.check("split scenarios %s %s: mpirun -n %d: all %d datasets bit for bit the single process's"
                % (tag, device, n, len(ref)), not bad and not extra, "differ: %s; extra: %s" % (bad[:6], extra))


def split_failures(tmp, book, scen):
    out = os.path.join(tmp, "sp_fail.h5")
    args = split_args(book, scen, out, "cpu", ()) + ["--split", "scenarios"]
    rc, _, err, _ = mpirun(3, args, env={"XM_TEST_FAIL_RANK": "1:failsplit"})
    # the injected failure is an option the split refuses on that rank (XM_EINVAL: exit 2)
    T.check("split scenarios: a rank failing inside the split: every rank exits 2, the rank named by all, no file",
            rc == 2 and err.count("rank 1 of 3 failed") == 2 and "[rank 1 of 3]" in err and "XM_TEST_FAIL_RANK" in err and "rank 1 of 3 failed" in err
            and not [f for f in os.listdir(tmp) if "sp_fail.h5" in f],
            "rc %d: %s; %s" % (rc, err.strip()[-400:], os.listdir(tmp)))
    out = os.path.join(tmp, "sp_killed.h5")
    try:
        rc, _, err, _ = mpirun(2, split_args(book, scen, out, "cpu", ()) + ["--split", "scenarios"],
                               env={"XM_TEST_FAIL_RANK": "1:kill"}, timeout=300)
    except subprocess.TimeoutExpired:
        rc, err = None, "timed out: the job hung"
    T.check("split scenarios: a killed rank: the job ends non-zero, no file",
            rc is not None and rc != 0 and not [f for f in os.listdir(tmp) if "sp_killed.h5" in f],
            "rc %s: %s" % (rc, err.strip()[-300:]))
    rc, _, err, _ = mpirun(2, split_args(book, scen, out, "cpu", ()) + ["--split", "scenarios", "--save-pnl"])
    T.check("split scenarios with --save-pnl: refused, exit 2", rc == 2 and "--save-pnl" in err,
            "rc %d: %s" % (rc, err.strip()[-300:]))


def failures(tmp, book, scen):
    out = os.path.join(tmp, "fail.h5")
    rc, _, err, _ = mpirun(3, run_args(book, scen, out, "cpu", ()), env={"XM_TEST_FAIL_RANK": "1"})
    T.check("a failing rank: the job exits 1", rc == 1, "rc %d: %s" % (rc, err.strip()[-300:]))
    T.check("a failing rank: the message names it", "[rank 1 of 3]" in err and "XM_TEST_FAIL_RANK" in err,
            err.strip()[-300:])
    T.check("a failing rank: no results file", not os.path.exists(out) and
            not [f for f in os.listdir(tmp) if f.startswith("fail.h5")], str(os.listdir(tmp)))
    out = os.path.join(tmp, "killed.h5")
    t0 = time.perf_counter()
    try:
        rc, _, err, _ = mpirun(2, run_args(book, scen, out, "cpu", ()), env={"XM_TEST_FAIL_RANK": "1:kill"},
                               timeout=300)
    except subprocess.TimeoutExpired:
        rc, err = None, "timed out: the job hung"
    T.check("a killed rank: the job ends non-zero (%.1f s)" % (time.perf_counter() - t0),
            rc is not None and rc != 0, "rc %s: %s" % (rc, err.strip()[-300:]))
    T.check("a killed rank: no results file", not [f for f in os.listdir(tmp) if f.startswith("killed.h5")],
            str(os.listdir(tmp)))
    # the collective write: rank 1 refused its part, or killed just before it
    # (rank 0 is then writing the temporary file, or waiting for the others)
    out = os.path.join(tmp, "failwrite.h5")
    rc, _, err, _ = mpirun(3, run_args(book, scen, out, "cpu", ()), env={"XM_TEST_FAIL_RANK": "1:failwrite"})
    T.check("a rank whose part of the write fails: exit 1, the rank named, no file",
            rc == 1 and "[rank 1 of 3]" in err and "are not the book's" in err and
            not [f for f in os.listdir(tmp) if "failwrite.h5" in f],
            "rc %d: %s; %s" % (rc, err.strip()[-300:], os.listdir(tmp)))
    out = os.path.join(tmp, "killwrite.h5")
    try:
        rc, _, err, _ = mpirun(3, run_args(book, scen, out, "cpu", ()),
                               env={"XM_TEST_FAIL_RANK": "1:killwrite"}, timeout=300)
    except subprocess.TimeoutExpired:
        rc, err = None, "timed out: the job hung"
    T.check("a rank killed before its part of the write: non-zero, no file, no temporary file",
            rc is not None and rc != 0 and not [f for f in os.listdir(tmp) if "killwrite.h5" in f],
            "rc %s: %s; %s" % (rc, err.strip()[-300:], os.listdir(tmp)))
    rc, _, err, _ = mpirun(2, ["run", "--portfolio", os.path.join(tmp, "nope.h5"), "--scenarios", scen,
                               "-o", os.path.join(tmp, "nope_out.h5"), "-q"])
    T.check("an unreadable input: every rank exits 2", rc == 2, "rc %d: %s" % (rc, err.strip()[-300:]))
    rc, _, err, _ = mpirun(2, ["validate", book])
    T.check("xmargin validate under mpirun -n 2: refused, exit 2", rc == 2 and "only 'xmargin run'" in err,
            "rc %d: %s" % (rc, err.strip()[-300:]))


def main():
    if not MPIRUN:
        T.check("mpirun is on PATH (an XM_WITH_MPI build needs it)", False)
        T.finish()
    devices = ["cpu"] + (["opencl"] if tl.opencl_available() else [])
    if len(devices) == 1:
        T.skip("the checks on --device opencl", "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        dp, dc = os.path.join(tmp, "products"), os.path.join(tmp, "collateral")
        os.makedirs(dp)
        os.makedirs(dc)
        pbook, pscen, _, _ = tl.products_book(dp, RNG, n_accounts=14, n_extra=10, n_days=120)
        cbook, cbook_s, cscen, _ = tl.collateral_book(dc, RNG, n_accounts=17, n_extra=8, n_days=120)
        for dev in devices:
            T.run(bitwise, tmp, "products", pbook, pscen, dev)
        T.run(bitwise, tmp, "collateral_schedule", cbook, cscen, "cpu")
        T.run(bitwise, tmp, "collateral_scenario", cbook_s, cscen, "cpu", ("collateral.method=scenario",))
        T.run(backtest_days, tmp, "products", pbook, pscen, "cpu")
        T.run(backtest_days, tmp, "collateral_scenario", cbook_s, cscen, devices[-1],
              ("collateral.method=scenario",))
        # 4 ranks: the tails' merge two levels deep (0 <- 1, 2 <- 3, then 0 <- 2)
        T.run(scenario_split, tmp, "products", pbook, pscen, "cpu", ranks=(2, 3, 4))
        T.run(scenario_split, tmp, "products_var95", pbook, pscen, "cpu",
              ("historical.measure=var", "montecarlo.measure=var", "confidence=0.95"))
        T.run(scenario_split, tmp, "collateral_schedule", cbook, cscen, "cpu")
        # 300 factors: the Monte Carlo product's blocks (OpenBLAS's TRMM gave a
        # call's last rows other bits past the 160th factor: the blocks are
        # aligned on the scenario numbers, whatever part a rank holds)
        wide = os.path.join(tmp, "wide")
        rc, _, err, _ = tl.run_xm(["generate", "--accounts", 24, "--instruments", 700, "--positions", 1400,
                                   "--factors", 300, "--history-days", 300, "--seed", SEED % 100000, "-q",
                                   "-o", wide])
        if T.check("generate a 300-factor book", rc == 0, err[-300:]):
            T.run(scenario_split, tmp, "300_factors", wide + "-portfolio.h5", wide + "-scenarios.h5", "cpu",
                  ("montecarlo.scenarios=1500", "historical.lookback=250"))
        T.run(split_failures, tmp, pbook, pscen)
        T.run(failures, tmp, pbook, pscen)
    T.finish()


if __name__ == "__main__":
    main()
