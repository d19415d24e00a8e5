"""Scenarios in memory (xmargin.Scenarios): a history and ready-made sets
built in a session, run without a file. Checked: a Scenarios read from the
demo's file, and one built from DataFrames (a datetime index, sets as
DataFrames and as arrays with weights, measures and confidences), give the
run of the file bit for bit (every variable); the history reaches the
library without a copy; prepare() takes one (what-ifs equal the file's);
malformed scenarios get the library's rule, the one `xmargin validate` prints
for the same content written as a file (the file's name aside), and the
binding's own checks (shapes, measure names) name the set."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

xm = H.setup()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

T = H.T
t = T.Tally()


def same_runs(name, a, b):
    num = [v for v in a.data_vars if a[v].dtype.kind in "fiu"]
    bad = [v for v in num if not np.array_equal(a[v].values, b[v].values, equal_nan=True)]
    t.check("%s: bit for bit the file's run (%d variables)" % (name, len(num)), len(num) >= 15 and not bad, bad)


def test_demo_read():
    s = xm.Scenarios.read(H.DEMO_S)
    t.check("Scenarios.read: the demo's history and sets", len(s.date) > 1000 and len(s.sets) >= 3,
            (len(s.date), list(s.sets)))
    a = xm.run(H.DEMO_P, H.DEMO_S, device="cpu", montecarlo__scenarios=500)
    b = xm.run(H.DEMO_P, s, device="cpu", montecarlo__scenarios=500)
    same_runs("Scenarios.read(demo)", a, b)
    c = xm.run(H.DEMO_P, xm.Scenarios(history=s.history_frame(), sets=s.sets), device="cpu",
               montecarlo__scenarios=500)
    same_runs("Scenarios(history_frame(), sets) of the demo", a, c)
    sf, keep = s._view()
    t.check("the history is passed without a copy",
            int(ffi_addr(sf.hist_return)) == s.ret.__array_interface__["data"][0])
    del keep


def ffi_addr(p):
    from xmargin._lib import ffi

    return ffi.cast("uintptr_t", p)


def frames(days=300, seed=5):
    rng = np.random.default_rng(seed)
    names = ["SPX", "SPX.iv", "ES", "BTC", "BTC.iv", "EURUSD"]
    vol = np.array([0.01, 0.004, 0.01, 0.03, 0.03, 0.004])
    R = rng.standard_normal((days, len(names))) * vol
    idx = pd.to_datetime(T.dates(days))
    hist = pd.DataFrame(R, index=idx, columns=names)
    grid = pd.DataFrame([[-0.2, -0.4, 0.1], [0.1, 0.3, -0.05], [0.0, -0.1, 0.2]],
                        index=["down", "up", "vol"], columns=["SPX", "BTC", "SPX.iv"])
    sets = {"stress": grid,
            "span": dict(shock=np.array([[0.05, 0.02], [-0.05, -0.02]]), factor=["ES", "SPX.iv"],
                         label=["+5", "-5"], weight=[1.0, 0.35], measure="worst"),
            "tail": dict(shock=rng.standard_normal((50, 2)) * 0.05, factor=["SPX", "BTC"],
                         label=["t%d" % i for i in range(50)], measure="es", confidence=0.9)}
    return hist, sets


def write_file(path, hist, sets):
    out = {}
    for k, v in sets.items():
        if isinstance(v, pd.DataFrame):
            out[k] = dict(factor=list(v.columns), shock=v.to_numpy(), label=list(v.index))
        else:
            out[k] = {x: v[x] for x in ("factor", "shock", "label", "weight", "measure", "confidence") if x in v}
    T.write_scenarios(path, history=(list(hist.columns), [d.strftime("%Y-%m-%d") for d in hist.index],
                                     hist.to_numpy()), sets=out)


def test_frames(tmp):
    hist, sets = frames()
    path = os.path.join(tmp, "s.h5")
    write_file(path, hist, sets)
    book = xm.Book.from_frames(**H.frames_book(), valuation_date="2024-06-28")
    s = xm.Scenarios(history=hist, sets=sets)
    t.check("validate() of a Scenarios names its kind", xm.validate(s) == "xmargin.scenarios")
    runs = {}
    for dev in ["cpu"] + (["opencl"] if "opencl:" in T.run_xm(["devices"])[1] else []):
        a = xm.run(book, path, device=dev, montecarlo__scenarios=400)
        b = runs[dev] = xm.run(book, s, device=dev, montecarlo__scenarios=400)
        same_runs("%s: Scenarios from DataFrames" % dev, a, b)
        t.check("%s: the run's sets are the history's and the three in memory" % dev,
                {"stress", "span", "tail"} <= set(b.set.values), list(b.set.values))
    p1 = xm.prepare(book, path, device="cpu", montecarlo__scenarios=400)
    p2 = xm.prepare(book, s, device="cpu", montecarlo__scenarios=400)
    w1 = p1.whatif("A01", [("ES.fut", 3)])
    w2 = p2.whatif("A01", [("ES.fut", 3)])
    t.check("prepare(Scenarios): a what-if equals the file's", np.array_equal(w1.requirement.values,
                                                                             w2.requirement.values))
    written = os.path.join(tmp, "written.h5")
    s.to_hdf5(written)
    rc, o, e, _ = T.run_xm(["validate", written])
    back = xm.Scenarios.read(written)
    t.check("to_hdf5: a file `xmargin validate` accepts, read back equal (history, sets, in order)",
            rc == 0 and back.date == s.date and back.factor == s.factor and np.array_equal(back.ret, s.ret)
            and list(back.sets) == list(s.sets)
            and all(np.array_equal(back.sets[k]["shock"], s.sets[k]["shock"]) and
                    back.sets[k]["label"] == s.sets[k]["label"] and back.sets[k]["measure"] == s.sets[k]["measure"]
                    and back.sets[k]["confidence"] == s.sets[k]["confidence"] for k in s.sets), (rc, e[-300:]))
    same_runs("to_hdf5's file", runs["cpu"], xm.run(book, written, device="cpu", montecarlo__scenarios=400))
    try:
        back.to_hdf5(written)
        t.check("to_hdf5 over the file it was read from is refused", False)
    except xm.Error as ex:
        t.check("to_hdf5 over the file it was read from is refused", "input" in str(ex), str(ex))
    out = os.path.join(tmp, "r.h5")
    xm.run(book, s, device="cpu", montecarlo__scenarios=400, output=out)
    r = xm.read_results(out)
    t.check("output= with scenarios in memory: a results file, its scenarios attribute empty",
            np.array_equal(r.requirement.values, runs["cpu"].requirement.values) and r.attrs.get("scenarios") == "",
            r.attrs.get("scenarios"))


def test_provenance(tmp):
    """A results file names an input file (and its SHA-256) only when the
    Book / Scenarios is still that file's contents; an output over the file
    it came from is refused either way."""
    book, scen = xm.Book.read(H.DEMO_P), xm.Scenarios.read(H.DEMO_S)
    out = os.path.join(tmp, "r.h5")
    xm.run(book, scen, device="cpu", montecarlo__scenarios=200, output=out)
    a = xm.read_results(out).attrs
    t.check("read and unchanged: the results name both files, with their SHA-256",
            a["portfolio"] == H.DEMO_P and a["scenarios"] == H.DEMO_S and len(a["portfolio_sha256"]) == 64
            and len(a["scenarios_sha256"]) == 64, {k: a[k] for k in ("portfolio", "scenarios")})
    book.tables["positions"]["quantity"][0] += 1.0
    scen.ret[0, 0] += 1e-4
    xm.run(book, scen, device="cpu", montecarlo__scenarios=200, output=out)
    a = xm.read_results(out).attrs
    t.check("changed after reading: the results name neither file",
            a["portfolio"] == "" and a["scenarios"] == "" and a["portfolio_sha256"] == ""
            and a["scenarios_sha256"] == "" and book.source() is None and scen.source() is None,
            {k: a[k] for k in ("portfolio", "scenarios", "portfolio_sha256")})
    for name, path in (("portfolio", H.DEMO_P), ("scenarios", H.DEMO_S)):
        try:
            xm.run(book, scen, device="cpu", montecarlo__scenarios=200, output=path)
            t.check("changed: output= over the %s file it came from is refused" % name, False)
        except xm.Error as e:
            t.check("changed: output= over the %s file it came from is refused" % name, "input" in str(e), str(e))


def test_errors(tmp):
    hist, sets = frames(days=60)
    h_nan = hist.copy()
    h_nan.iloc[7, 3] = np.nan
    h_back = hist.iloc[::-1]
    bad_name = dict(sets)
    bad_name["two words"] = bad_name.pop("stress")
    for name, h, ss in (("a NaN return", h_nan, sets), ("dates not increasing", h_back, sets),
                        ("a set name with a space", hist, bad_name)):
        path = os.path.join(tmp, "bad.h5")
        write_file(path, h, ss)
        rc, _, err, _ = T.run_xm(["validate", path])
        cli = [ln.replace(path, "scenarios") for ln in err.splitlines() if ln and not ln.startswith(path + ": INVALID")]
        try:
            xm.Scenarios(history=h, sets=ss).validate()
            t.check("%s: validate() raises" % name, False)
        except xm.FormatError as e:
            t.check("%s: the messages `xmargin validate` prints for it (%d)" % (name, len(cli)),
                    rc == 2 and cli and e.messages == cli, (e.messages, cli))
        try:
            xm.run(H.DEMO_P, xm.Scenarios(history=h, sets=ss), device="cpu")
            t.check("%s: run() raises" % name, False)
        except xm.FormatError as e:
            t.check("%s: run() raises FormatError with them" % name, e.messages == cli, e.messages)
    for name, spec, needles in (
            ("a shock array without names", {"x": dict(shock=np.zeros((2, 2)))}, ["set x", "factor=", "label="]),
            ("an unknown measure", {"x": dict(shock=np.zeros((1, 1)), factor=["SPX"], label=["a"], measure="cvar")},
             ["set x", "'cvar'", "worst, es, var"]),
            ("labels that do not match the shock", {"x": dict(shock=np.zeros((3, 1)), factor=["SPX"], label=["a"])},
             ["set x", "(3, 1)", "1 labels x 1 factors"])):
        try:
            xm.Scenarios(sets=spec).validate()
            t.check("%s: raises" % name, False)
        except xm.FormatError as e:
            t.check("%s: FormatError naming the set and the rule" % name, all(n in str(e) for n in needles), str(e))


if __name__ == "__main__":
    with T.TmpDir() as tmp:
        t.run(test_demo_read)
        t.run(test_frames, tmp)
        t.run(test_provenance, tmp)
        t.run(test_errors, tmp)
    t.finish()
