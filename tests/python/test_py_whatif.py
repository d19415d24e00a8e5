"""Incremental (what-if) margin (issue 16, item 3) through the CLI and the
binding: `xmargin whatif` on the demo book with trades from CSV, and
xmargin.prepare(...).whatif(...), each equal (1e-12) to the account's row of
a full `xmargin run` of the book with the trades added, on the cpu backend
and on an OpenCL device where there is one; the same on fresh random books
(every product type and currency, collateral by schedule and in the
scenarios) with random trades, each after a what-if of other trades on the
same account (the increment: the account's kept losses + the trades'), every
seed new (replay: XM_TEST_SEED); the contributions add up to the binding set's measure; bad trade files exit 2
naming the file, row and column."""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

xm = H.setup()
import time  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

T = H.T
t = T.Tally()
TRADES = [("ACC0001", "ESH9", -2.0), ("ACC0001", "SPY", 500.0), ("ACC0002", "BTC-PERPETUAL", 10000.0),
          ("ACC0003", "SPX P2425 14d", 5.0)]
OUTS = ("requirement", "unified", "siloed", "minimum", "liquidity", "hedge_credit")


def modified_book(src, dst, trades):
    """A copy of book src with the trades appended to /positions."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        acc = [x.decode() for x in f["accounts/id"][:]]
        ins = [x.decode() for x in f["instruments/id"][:]]
        cols = {"account": [acc.index(a) for a, _, _ in trades],
                "instrument": [ins.index(i) for _, i, _ in trades], "quantity": [q for _, _, q in trades]}
        for c, add in cols.items():
            old = f["positions/" + c][:]
            attrs = dict(f["positions/" + c].attrs)
            del f["positions/" + c]
            d = f.create_dataset("positions/" + c, data=np.concatenate([old, np.array(add, dtype=old.dtype)]))
            for k, v in attrs.items():
                d.attrs[k] = v
    return acc


def full_run(tmp, book, device, scen=H.DEMO_S, sets=(), extra=()):
    out = os.path.join(tmp, "full-%s.h5" % device.replace(":", "_"))
    args = ["run", "--portfolio", book, "--scenarios", scen, "--device", device, "-q", "-o", out] + list(extra)
    for kv in sets:
        args += ["--set", kv]
    r = T.run_xm(args)
    t.check("full run of the modified book (%s) exits 0" % device, r[0] == 0, r[2][-400:])
    with h5py.File(out, "r") as f:
        return {k: f["margin/" + k][:] for k in OUTS}


def random_books(tmp, devices):
    """Fresh random books and trades: each what-if the binding accepts equals
    the account's row of one full run of the book with every accepted trade
    added (an account's outputs depend on its own positions and the sets
    alone); a refused one must name a factor."""
    seed = int(os.environ.get("XM_TEST_SEED", int(time.time() * 1000) % (2**31)))
    print("# seed %d (replay: XM_TEST_SEED=%d)" % (seed, seed))
    rng = np.random.default_rng(seed)
    books = []
    b, sc, _, _ = T.products_book(os.path.join(tmp, "p"), rng) if _mk(tmp, "p") else (None,) * 4
    books.append(("products", b, sc, "schedule"))
    cb, cbs, csc, _ = T.collateral_book(os.path.join(tmp, "c"), rng) if _mk(tmp, "c") else (None,) * 4
    books += [("collateral (schedule)", cb, csc, "schedule"), ("collateral (scenario)", cbs, csc, "scenario")]
    for name, book, scen, method in books:
        sets = ["montecarlo.scenarios=300", "collateral.method=" + method]
        with h5py.File(book, "r") as f:
            acc = [x.decode() for x in f["accounts/id"][:]]
            ins = [x.decode() for x in f["instruments/id"][:]]
        for dev in devices:
            pre = xm.prepare(book, scen, device=dev, montecarlo__scenarios=300, collateral__method=method)
            accepted, refused, want = [], 0, {}
            for a in rng.choice(len(acc), size=min(6, len(acc)), replace=False):
                tr = [(ins[int(i)], float(rng.choice([-1, 1]) * rng.integers(1, 50)))
                      for i in rng.choice(len(ins), size=int(rng.integers(1, 4)))]
                try:  # a what-if before on other trades: the kept losses stay the account's own
                    pre.whatif(acc[a], [(ins[int(rng.integers(len(ins)))], 7.0)])
                except xm.ConfigError:
                    pass
                try:
                    want[acc[a]] = pre.whatif(acc[a], tr)
                    accepted += [(acc[a], i, q) for i, q in tr]
                    if method == "schedule":
                        c = pre.contributions(acc[a], tr)
                        ds = want[acc[a]]
                        m = float(ds.by_set[0, int(ds.binding_set[0])])
                        if m > 0:
                            t.check("%s %s %s: contributions add up to the measure" % (name, dev, acc[a]),
                                    abs(c.contribution.sum() - m) <= 1e-10 * m, (c.contribution.sum(), m))
                except xm.ConfigError as e:
                    refused += 1
                    t.check("%s %s: a refused what-if names the factor" % (name, dev), "factor" in str(e), str(e))
            mod = os.path.join(tmp, "mod.h5")
            modified_book(book, mod, accepted)
            full = full_run(tmp, mod, dev, scen, sets)
            worst = 0.0
            for a, ds in want.items():
                r = acc.index(a)
                for k in OUTS:
                    worst = max(worst, abs(float(ds[k][0]) - full[k][r]) / (abs(full["siloed"][r]) + 1.0))
            t.check("%s %s: %d random what-ifs (%d refused) == the full run's rows (1e-12)"
                    % (name, dev, len(want), refused), len(want) > 0 and worst <= 1e-12, "worst %.3g" % worst)


def _mk(tmp, sub):
    os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    return True


def trades_csv(tmp):
    csv = os.path.join(tmp, "trades.csv")
    with open(csv, "w") as f:
        f.write("account,instrument,quantity\n")
        for a, i, q in TRADES:
            f.write('%s,"%s",%r\n' % (a, i, q))
    return csv


def devices():
    return ["cpu"] + (["opencl"] if "opencl:" in T.run_xm(["devices"])[1] else [])


def test_demo_whatifs(tmp):
    """The demo's three what-ifs: the CLI and the binding against full runs of
    the modified book, the contributions, an unknown instrument."""
    csv = trades_csv(tmp)
    mod = os.path.join(tmp, "mod.h5")
    acc = modified_book(H.DEMO_P, mod, TRADES)
    for dev in devices():
        # single precision: the trades' float32 losses added to the kept ones are the full run's sum
        # in another order (1e-12 holds as in double)
        full = full_run(tmp, mod, dev, extra=["--precision", "single"])
        r = T.run_xm(["whatif", "--portfolio", H.DEMO_P, "--scenarios", H.DEMO_S, "--trades", csv,
                      "--device", dev, "--precision", "single", "--json"])
        t.check("xmargin whatif --device %s --precision single exits 0" % dev, r[0] == 0, r[2][-400:])
        worst = max((abs(e["after"][k] - full[k][acc.index(e["account"])]) /
                     (abs(full["siloed"][acc.index(e["account"])]) + 1.0)
                     for e in json.loads(r[1])["accounts"] for k in OUTS), default=1.0) if r[0] == 0 else 1.0
        t.check("%s single: CLI what-if == the full run's row, every output (1e-12)" % dev, worst <= 1e-12,
                "worst %.3g" % worst)
        full = full_run(tmp, mod, dev)
        r = T.run_xm(["whatif", "--portfolio", H.DEMO_P, "--scenarios", H.DEMO_S, "--trades", csv,
                      "--device", dev, "--json"])
        t.check("xmargin whatif --device %s exits 0" % dev, r[0] == 0, r[2][-400:])
        if r[0] != 0:
            continue
        j = json.loads(r[1])
        t.check("%s: one entry per account of the trades, in order" % dev,
                [e["account"] for e in j["accounts"]] == ["ACC0001", "ACC0002", "ACC0003"])
        worst = 0.0
        for e in j["accounts"]:
            a = acc.index(e["account"])
            for k in OUTS:
                sc = abs(full["siloed"][a]) + 1.0
                worst = max(worst, abs(e["after"][k] - full[k][a]) / sc)
        t.check("%s: CLI what-if == the full run's row, every output (1e-12)" % dev, worst <= 1e-12,
                "worst %.3g" % worst)
        t.check("%s: the trades change the requirement" % dev,
                all(e["after"]["requirement"] != e["before"]["requirement"] for e in j["accounts"]))
        print("# %s: what-if seconds %s" % (dev, [e["seconds"] for e in j["accounts"]]))
        # the binding: the same numbers
        pre = xm.prepare(H.DEMO_P, H.DEMO_S, device=dev)
        worst = 0.0
        for e in j["accounts"]:
            tr = [(i, q) for a2, i, q in TRADES if a2 == e["account"]]
            ds = pre.whatif(e["account"], tr)
            t.check("%s: Prepared.whatif labels its account" % dev, list(ds.account.values) == [e["account"]])
            a = acc.index(e["account"])
            for k in OUTS:
                worst = max(worst, abs(float(ds[k][0]) - full[k][a]) / (abs(full["siloed"][a]) + 1.0))
        t.check("%s: Prepared.whatif == the full run's row (1e-12)" % dev, worst <= 1e-12, "worst %.3g" % worst)
        # the contributions add up to the binding set's measure
        tr = [(i, q) for a2, i, q in TRADES if a2 == "ACC0001"]
        c = pre.contributions("ACC0001", tr)
        ds = pre.whatif("ACC0001", tr)
        m = float(ds.by_set[0, int(ds.binding_set[0])])
        t.check("%s: contributions add up to the binding set's measure (1e-12)" % dev,
                abs(c.contribution.sum() - m) <= 1e-12 * abs(m), (c.contribution.sum(), m))
        t.check("%s: one contribution per net position, the trades in" % dev,
                "SPY" in set(c.instrument) and len(c) == len(set(c.instrument)), list(c.instrument))
        try:
            pre.whatif("ACC0001", [("NO-SUCH", 1)])
            t.check("%s: an unknown instrument raises" % dev, False)
        except xm.Error as ex:
            t.check("%s: an unknown instrument raises, naming it" % dev, "NO-SUCH" in str(ex), str(ex))


def test_random_whatifs(tmp):
    random_books(tmp, devices())


def test_bad_trades(tmp):
    csv = trades_csv(tmp)
    # bad trade files: exit 2, file, row and column named
    for name, body, want in (
            ("unknown instrument", "account,instrument,quantity\nACC0001,NOPE,1\n", ["row 1", "instrument", "NOPE"]),
            ("unknown account", "account,instrument,quantity\nZZZ,ESH9,1\n", ["row 1", "account", "ZZZ"]),
            ("bad quantity", "account,instrument,quantity\nACC0001,ESH9,1\nACC0001,ESH9,x2\n",
             ["row 2", "quantity", "x2"]),
            ("no quantity column", "account,instrument\nACC0001,ESH9\n", ["quantity"]),
            ("no trades", "account,instrument,quantity\n", ["no trades"])):
        bad = os.path.join(tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write(body)
        r = T.run_xm(["whatif", "--portfolio", H.DEMO_P, "--scenarios", H.DEMO_S, "--trades", bad,
                      "--device", "cpu"])
        t.check("bad trades (%s): exit 2 naming %s" % (name, want),
                r[0] == 2 and bad in r[2] and all(w in r[2] for w in want), (r[0], r[2][-300:]))
    r = T.run_xm(["whatif", "--help"])
    t.check("xmargin whatif --help", r[0] == 0 and "--trades" in r[1])
    r = T.run_xm(["whatif", "--portfolio", H.DEMO_P, "--scenarios", H.DEMO_S, "--trades", csv, "-o", "x.h5"])
    t.check("xmargin whatif -o: refused (it writes no file)", r[0] == 2, r[2][-200:])


def main():
    with T.TmpDir("xm_whatif_") as tmp:
        for fn in (test_demo_whatifs, test_random_whatifs, test_bad_trades):
            t.run(fn, tmp)
    t.finish()


if __name__ == "__main__":
    main()
