#!/usr/bin/env python3
"""`xmargin backtest` (METHODOLOGY.md section 7) through the CLI: its options,
its exit statuses, the backtest file it writes (FORMAT.md section 4) and its
summary, text and --json, against that file.

A small book on a 60-day history that ends in a crash (so that margins are
breached), four accounts in two currencies:
- HEDGED (cross-margined): long SPX shares against short SPX futures;
- SILOED (not eligible): the same positions, margined silo by silo;
- LONG (cross-margined): long SPX shares and one BTC future;
- BTCACC (cross-margined, margined in BTC): one BTC future.
min_history 30, so at most 29 days (h = 2); a Monte Carlo set of 200.

Checked: --json's every number equal to the file's (the book's statistics per
margin; cross-margined against siloed per account; the zones across accounts;
the five worst days by total realised loss less total cross-margined margin;
the total requirement's peak-to-trough and largest apc_window-day increase
with their days, worked out here from /series; the medians over accounts);
the text's book table equal to --json's; --days N sets backtest.days; exit 2
with the library's message for a bad --days, a min_history the history
cannot give, an output over an input, a missing --scenarios; --save-scenarios
writes the shocks; a progress bar naming the days when stderr is a terminal;
-q prints nothing."""
import json
import os
import pty
import re
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
check = T.check

MARGINS = ["unified", "cross_margined", "siloed", "requirement"]
T_DAYS, MIN_HISTORY, H, WINDOW = 60, 30, 2, 5
BASE = ["--set", "backtest.min_history=%d" % MIN_HISTORY, "--set", "backtest.mc_scenarios=200",
        "--set", "backtest.apc_window=%d" % WINDOW, "--device", "cpu"]


def write_inputs(tmp):
    book = os.path.join(tmp, "book.h5")
    scen = os.path.join(tmp, "scen.h5")
    tl.write_portfolio(
        book, [("SPX", "price", 5000.0), ("BTC", "price", 60000.0)],
        ["securities", "futures", "crypto"],
        [dict(id="SPX", type="spot", silo=0, underlying=0),
         dict(id="SPX.F", type="future", silo=1, underlying=0),
         dict(id="BTC.F", type="future", silo=2, underlying=1)],
        [("HEDGED", 1, "USD"), ("SILOED", 0, "USD"), ("LONG", 1, "USD"), ("BTCACC", 1, "BTC")],
        [(0, 0, 100), (0, 1, -100), (1, 0, 100), (1, 1, -100), (2, 0, 50), (2, 2, 1),
         (3, 2, 1)],
        fx=[("BTC", 1)])
    rng = np.random.default_rng(7)
    R = rng.normal(0.0, [0.01, 0.03], size=(T_DAYS, 2))
    R[-6] = [-0.07, -0.12]  # a crash a few days before the end
    R[-5] = [-0.04, -0.08]
    tl.write_scenarios(scen, history=(["SPX", "BTC"], tl.dates(T_DAYS), R))
    return book, scen


def backtest(book, scen, out, *extra):
    return tl.run_xm(["backtest", "--portfolio", book, "--scenarios", scen, "-o", out] + BASE +
                     list(extra))


def read_file(path):
    d = {}
    with h5py.File(path, "r") as f:
        d["attrs"] = {k: f.attrs[k] for k in f.attrs}
        d["day"] = tl.strings(f["day"])
        d["realised_end"] = tl.strings(f["realised_end"])
        d["series"] = {k: f["series"][k][()] for k in f["series"]
                       if h5py.check_string_dtype(f["series"][k].dtype) is None}
        d["stats"] = {}
        for g in MARGINS + ["silo"]:
            d["stats"][g] = {k: (tl.strings(f["stats"][g][k]) if k in ("zone", "account", "silo")
                                 else f["stats"][g][k][()]) for k in f["stats"][g]}
        d["total"] = {m: {k: (tl.strings(f["stats/total"][m][k])[0] if k == "zone"
                              else f["stats/total"][m][k][()]) for k in f["stats/total"][m]}
                      for m in MARGINS}
        d["has_scenarios"] = "scenarios" in f
    return d


def nan_eq(a, b):
    return (a is None and not np.isfinite(b)) or (a is not None and a == b)


def increase_days(M, window):
    """METHODOLOGY section 7's largest n-day increase: the first pair (i, j),
    0 < j - i <= window, M[i] > 0, in (i, j) order, with the largest
    M[j]/M[i] - 1."""
    best, at = None, (None, None)
    for i in range(len(M)):
        if not M[i] > 0:
            continue
        for j in range(i + 1, min(i + window, len(M) - 1) + 1):
            v = M[j] / M[i] - 1.0
            if best is None or v > best:
                best, at = v, (i, j)
    return best, at


def check_json(js, d):
    N = int(d["attrs"]["backtest_days"])
    n_tests = int(d["attrs"]["test_days"])
    check("json: the days (first, last, N, N')",
          js["days"]["first"] == d["day"][0] and js["days"]["last"] == d["day"][-1]
          and js["days"]["n"] == N and js["days"]["n_tests"] == n_tests
          and js["days"]["horizon"] == H and js["days"]["apc_window"] == WINDOW, js["days"])
    bad = []
    for m in MARGINS:
        b, t = js["book"][m], d["total"][m]
        if not (b["exceptions"] == int(t["exceptions"])
                and b["exceptions_all"] == int(t["exceptions_all"]) and b["zone"] == t["zone"]
                and nan_eq(b["kupiec_p"], float(t["kupiec_p"]))
                and nan_eq(b["cc_p"], float(t["cc_p"]))):
            bad.append((m, b, t))
    check("json: the book's exceptions, zone, Kupiec and cc p per margin = /stats/total",
          not bad, bad)
    cs = js["cross_vs_siloed"]
    c, s = d["stats"]["cross_margined"], d["stats"]["siloed"]
    want = {"accounts_more": int(np.sum(c["exceptions"] > s["exceptions"])),
            "accounts_fewer": int(np.sum(c["exceptions"] < s["exceptions"])),
            "accounts_equal": int(np.sum(c["exceptions"] == s["exceptions"])),
            "accounts_more_all": int(np.sum(c["exceptions_all"] > s["exceptions_all"])),
            "accounts_fewer_all": int(np.sum(c["exceptions_all"] < s["exceptions_all"])),
            "accounts_equal_all": int(np.sum(c["exceptions_all"] == s["exceptions_all"]))}
    check("json: accounts breaching more / fewer / as often cross-margined as siloed",
          all(cs[k] == v for k, v in want.items()), (cs, want))
    check("json: the book's exceptions cross-margined against siloed",
          cs["book_exceptions"] == {"cross_margined": int(d["total"]["cross_margined"]["exceptions"]),
                                    "siloed": int(d["total"]["siloed"]["exceptions"])}, cs)
    zones = {m: {z: d["stats"][m]["zone"].count(z) for z in ("green", "yellow", "red")}
             for m in MARGINS}
    check("json: zones across accounts = /stats/<margin>/zone",
          all(js["zones"][m][z] == zones[m][z] for m in MARGINS for z in zones[m]),
          (js["zones"], zones))
    ser = d["series"]
    diff = ser["total_realised"] - ser["total_cross_margined"]
    order = sorted(range(N), key=lambda j: (-diff[j], j))[:5]
    got = [(w["day"], w["realised_end"], w["realised"], w["cross_margined"], w["shortfall"])
           for w in js["worst_days"]]
    exp = [(d["day"][j], d["realised_end"][j], float(ser["total_realised"][j]),
            float(ser["total_cross_margined"][j]), float(diff[j])) for j in order]
    check("json: the 5 worst days (total realised - total cross-margined) with their dates",
          got == exp, (got, exp))
    M = ser["total_requirement"]
    best, (i, j) = increase_days(M, WINDOW)
    pr = js["procyclicality"]["total_requirement"]
    tr = d["total"]["requirement"]
    pos = [k for k in range(N) if M[k] > 0]
    check("json: the total requirement's procyclicality = /stats/total/requirement",
          nan_eq(pr["peak_to_trough"], float(tr["peak_to_trough"]))
          and nan_eq(pr["max_increase"], float(tr["max_increase"])), (pr, tr))
    check("json: ... and its days (peak, trough, the increase's), worked out from /series",
          pr["max_increase"] == best and pr["increase_from"] == d["day"][i]
          and pr["increase_to"] == d["day"][j]
          and pr["peak_day"] == d["day"][max(pos, key=lambda k: (M[k], -k))]
          and pr["trough_day"] == d["day"][min(pos, key=lambda k: (M[k], k))],
          (pr, best, i, j))
    med = js["procyclicality"]["median_over_accounts"]
    rq = d["stats"]["requirement"]
    check("json: medians over accounts of peak-to-trough and max increase",
          nan_eq(med["peak_to_trough"], float(np.nanmedian(rq["peak_to_trough"])))
          and nan_eq(med["max_increase"], float(np.nanmedian(rq["max_increase"]))), med)
    return js


def check_text(text, js):
    bad = []
    for m in MARGINS:
        b = js["book"][m]
        want = r"^\s+%s\s+%d / %d\s+%d / %d\s+%s\s" % (m, b["exceptions"], js["days"]["n_tests"],
                                                       b["exceptions_all"], js["days"]["n"],
                                                       b["zone"] or "-")
        if not re.search(want, text, re.M):
            bad.append(want)
    check("text: the book's table = --json's", not bad, (bad, text))
    check("text: the days, the worst days' dates, the increase's days",
          js["days"]["first"] in text and js["days"]["last"] in text
          and all(w["day"] in text for w in js["worst_days"])
          and (js["procyclicality"]["total_requirement"]["increase_from"] or "") in text, text)
    cs = js["cross_vs_siloed"]
    check("text: accounts more / fewer / as many",
          "cross-margined than siloed: %d, fewer: %d, as many: %d" %
          (cs["accounts_more"], cs["accounts_fewer"], cs["accounts_equal"]) in text, text)


def progress_on_tty(book, scen, out):
    """stderr a terminal: a progress bar whose label is each day's date."""
    master, slave = pty.openpty()
    cmd = [tl.xmargin_binary(), "backtest", "--portfolio", book, "--scenarios", scen, "-o", out,
           "--days", "4"] + BASE
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    p.wait(timeout=120)
    return p.returncode, err.decode("utf-8", "replace")


def main():
    with tl.TmpDir("xm_cli_backtest.") as tmp:
        book, scen = write_inputs(tmp)
        out = os.path.join(tmp, "bt.h5")
        rc, o, e, t = backtest(book, scen, out)
        if not check("xmargin backtest runs (%.1fs)" % t, rc == 0 and os.path.exists(out),
                     "rc=%d %s%s" % (rc, o, e)):
            T.finish()
        d = read_file(out)
        N = int(d["attrs"]["backtest_days"])
        check("N = min(backtest.days, T - h - min_history + 1)", N == T_DAYS - H - MIN_HISTORY + 1,
              N)
        check("the crash breaches some margin of the book",
              any(int(d["total"][m]["exceptions_all"]) > 0 for m in MARGINS),
              {m: int(d["total"][m]["exceptions_all"]) for m in MARGINS})
        check("no /scenarios without --save-scenarios", not d["has_scenarios"])
        outj = os.path.join(tmp, "bt-json.h5")
        rc, oj, e, _ = backtest(book, scen, outj, "--json")
        js = None
        try:
            js = json.loads(oj)
        except ValueError as ex:
            check("--json prints one JSON object", False, "%s: %r" % (ex, oj[:400]))
        if js is not None and check("--json prints one JSON object", rc == 0, e):
            T.run(check_json, js, read_file(outj))
            T.run(check_text, o, js)

        out7 = os.path.join(tmp, "bt7.h5")
        rc, o, e, _ = backtest(book, scen, out7, "--days", "7", "--save-scenarios", "-q")
        with h5py.File(out7, "r") as f:
            check("--days 7: seven days; -q: nothing on stdout; --save-scenarios: the shocks",
                  rc == 0 and o == "" and int(f.attrs["backtest_days"]) == 7
                  and f["scenarios/historical/shock"].shape[0] == 7
                  and f["scenarios/montecarlo/delta"].shape == (7,),
                  (rc, o, e, dict(f.attrs).get("backtest_days")))
        for name, extra, words in (
                ("--days 1", ["--days", "1"], ["--days", "backtest.days"]),
                ("--days x", ["--days", "x"], ["--days", "backtest.days"]),
                ("--days without a value", ["--days"], ["--days needs a value"]),
                ("min_history past the history", ["--set", "backtest.min_history=100"],
                 ["min_history"])):
            rc, o, e, _ = backtest(book, scen, os.path.join(tmp, "bad.h5"), *extra)
            check("exit 2 for %s, the message naming it" % name,
                  rc == 2 and all(w in e for w in words), "rc=%d %s" % (rc, e))
        rc, o, e, _ = backtest(book, scen, book)
        check("exit 2 for -o over the portfolio, which is left as it was",
              rc == 2 and "input file" in e and tl.attr_str(
                  h5py.File(book, "r").attrs["format"]) == "xmargin.portfolio", (rc, e))
        rc, o, e, _ = tl.run_xm(["backtest", "--portfolio", book, "-o", out])
        check("exit 2 without --scenarios", rc == 2 and "--scenarios" in e, (rc, e))
        rc, o, e, _ = tl.run_xm(["backtest", "--help"])
        check("--help", rc == 0 and "usage: xmargin backtest" in o and "--days" in o, rc)
        rc, err = progress_on_tty(book, scen, os.path.join(tmp, "bt-tty.h5"))
        with h5py.File(os.path.join(tmp, "bt-tty.h5"), "r") as f:
            days = tl.strings(f["day"])
        check("a progress bar on a terminal, labelled by the day's date",
              rc == 0 and "[" in err and "%" in err and all(x in err for x in days[1:]),
              repr(err[-300:]))
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
