#!/usr/bin/env python3
"""`xmargin validate` on files written the way a notebook writes them (h5py
defaults: fixed-length bytes strings, variable-length str, int64/float64/int8/
float32 columns), and on malformed files: each must be rejected with exit
status 2 and a message naming the dataset and the rule, never a crash.

Environment: XMARGIN (the binary), XM_SOURCE_DIR (the repository root)."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
report = T.check

XMARGIN = os.environ.get("XMARGIN", "xmargin")
SRC = os.environ.get("XM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def run_validate(*paths, env=None):
    p = subprocess.run([XMARGIN, "validate", *paths], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---- the files -------------------------------------------------------------

def good_portfolio():
    """A small valid book as {group: {column: values}} plus root attributes."""
    return {
        "attrs": {"format": "xmargin.portfolio", "format_version": 1,
                  "valuation_date": "2024-06-28", "currency": "USD"},
        "factors": {
            "name": ["SPX", "SPX.iv", "ES", "USD.r"],
            "kind": ["price", "vol", "price", "rate"],
            "level": np.array([4500.0, 0.2, 4510.0, 0.045]),
        },
        "silos": {"name": ["securities", "futures"]},
        "instruments": {
            "id": ["SPX", "ES.Z5", "SPX.C4500", "ES.P4400"],
            "type": ["spot", "future", "option", "future_option"],
            "silo": np.array([0, 1, 0, 1], dtype=np.int64),
            "underlying": np.array([0, 2, 0, 2], dtype=np.int64),
            "vol_factor": np.array([-1, -1, 1, 1], dtype=np.int64),
            "strike": np.array([0, 0, 4500, 4400], dtype=np.float32),
            "expiry": np.array([0, 0.25, 0.5, 0.25]),
            "call": np.array([0, 0, 1, 0], dtype=np.int8),
            "implied_vol": np.array([0, 0, 0.18, 0.21]),
            "rate": np.array([0.045] * 4),
            "dividend_yield": np.array([0.013, 0, 0.013, 0]),
            "multiplier": np.array([1, 50, 100, 50], dtype=np.int64),
        },
        "accounts": {
            "id": ["A1", "A2", "A3"],
            "cross_margin": np.array([1, 0, 1], dtype=np.int64),
            "note": ["extra", "columns", "ignored"],
        },
        "positions": {
            "account": np.array([0, 0, 1, 2, 2], dtype=np.int64),
            "instrument": np.array([0, 2, 1, 3, 3], dtype=np.int64),
            "quantity": np.array([100, -2, 3, -1, -1.5]),
        },
        "extra_group": {"whatever": np.arange(3)},
    }


def good_scenarios():
    return {
        "attrs": {"format": "xmargin.scenarios", "format_version": np.int64(1),
                  "description": "ignored"},
        "history": {
            "factor": ["SPX", "SPX.iv", "ES"],
            "date": ["2024-06-25", "2024-06-26", "2024-06-27", "2024-06-28"],
            "return": np.arange(12, dtype=np.float64).reshape(4, 3) / 100.0,
        },
        "sets": {
            "grid": {
                "factor": ["SPX", "SPX.iv"],
                "shock": np.array([[-0.1, 0.05], [0.1, -0.02], [-0.3, 0.2]]),
                "label": ["down", "up", "extreme down"],
                "weight": np.array([1.0, 1.0, 0.35], dtype=np.float32),
                "@measure": "worst",
            },
            "stress": {
                "factor": ["SPX"],
                "shock": np.array([[-0.2], [-0.09]]),
                "label": ["1987-10-19", "2008-10-15"],
                "@measure": "es",
                "@confidence": 0.9,
            },
        },
    }


def write_value(g, name, v, strings):
    if isinstance(v, list) and (len(v) == 0 or isinstance(v[0], str)):
        if strings == "fixed":
            arr = np.array([s.encode("utf-8") for s in v], dtype="S") if v else np.array([], "S1")
            g.create_dataset(name, data=arr)
        else:
            g.create_dataset(name, data=np.array(v, dtype=object), dtype=h5py.string_dtype())
    else:
        g.create_dataset(name, data=v)


def write_tree(g, tree, strings):
    for key, v in tree.items():
        if key == "attrs":
            for a, av in v.items():
                if isinstance(av, str) and strings == "fixed":
                    g.attrs[a] = np.bytes_(av.encode("utf-8"))
                else:
                    g.attrs[a] = av
        elif key.startswith("@"):
            g.attrs[key[1:]] = v
        elif isinstance(v, dict):
            write_tree(g.create_group(key), v, strings)
        elif v is None:
            continue
        else:
            write_value(g, key, v, strings)


def write_file(path, tree, strings="vlen"):
    with h5py.File(path, "w") as f:
        write_tree(f, tree, strings)
    return path


# ---- valid files -------------------------------------------------------------

def check_valid(tmp):
    for strings in ("vlen", "fixed"):
        p = write_file(os.path.join(tmp, "book_%s.h5" % strings), good_portfolio(), strings)
        rc, out, err = run_validate(p)
        want = ["valid xmargin.portfolio", "2024-06-28", "USD", "price 2, vol 1, rate 1",
                "spot 1, future 1, option 1, future_option 1", "securities", "futures",
                "cross-margin eligible 2", "positions", "5"]
        ok = rc == 0 and all(w in out for w in want)
        report("valid portfolio (%s strings)" % strings, ok, "rc=%d\n%s%s" % (rc, out, err))

        s = write_file(os.path.join(tmp, "scen_%s.h5" % strings), good_scenarios(), strings)
        rc, out, err = run_validate(s)
        want = ["valid xmargin.scenarios", "4 days", "2024-06-25 .. 2024-06-28", "3 factors",
                "grid", "S=3 F_s=2 measure worst, weighted", "stress",
                "S=2 F_s=1 measure es confidence 0.9, unweighted"]
        ok = rc == 0 and all(w in out for w in want)
        report("valid scenario file (%s strings)" % strings, ok, "rc=%d\n%s%s" % (rc, out, err))

    demo = [os.path.join(SRC, "datasets", n) for n in ("demo-portfolio.h5", "demo-scenarios.h5")]
    if all(os.path.exists(d) for d in demo):
        rc, out, err = run_validate(*demo)
        report("demo files validate", rc == 0 and out.count(": valid ") == 2,
               "rc=%d\n%s%s" % (rc, out, err))

    rc, out, err = run_validate("--help")
    report("validate --help", rc == 0 and "usage: xmargin validate" in out, out + err)
    rc, out, err = run_validate()
    report("validate without files is a usage error", rc == 2, out + err)


# ---- malformed files -----------------------------------------------------------

def P(edit):
    def make():
        t = good_portfolio()
        edit(t)
        return t
    return make


def S(edit):
    def make():
        t = good_scenarios()
        edit(t)
        return t
    return make


def setv(path, value):
    def edit(t):
        node = t
        keys = path.split("/")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


def setrow(path, row, value):
    def edit(t):
        node = t
        keys = path.split("/")
        for k in keys[:-1]:
            node = node[k]
        col = node[keys[-1]]
        if isinstance(col, list):
            col[row] = value
        else:
            col = col.astype(np.float64) if isinstance(value, float) else col
            col[row] = value
            node[keys[-1]] = col
    return edit


def delete(path):
    def edit(t):
        node = t
        keys = path.split("/")
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return edit


def many(*edits):
    def edit(t):
        for e in edits:
            e(t)
    return edit


class Huge:
    """A chunked dataset declaring 2**40 rows (no data written)."""


def write_with_huge(path, tree, strings, where):
    write_file(path, tree, strings)
    with h5py.File(path, "a") as f:
        del f[where]
        f.create_dataset(where, shape=(2 ** 40,), dtype="f8", chunks=(1024,))


BAD_PORTFOLIO = [
    ("missing column", P(delete("instruments/multiplier")),
     ["/instruments/multiplier", "required dataset is missing"]),
    ("missing group", P(delete("accounts")), ["/accounts", "required group is missing"]),
    ("wrong column length", P(setv("instruments/strike", np.array([0.0, 0, 4500]))),
     ["/instruments/strike", "has 3 rows", "columns must have equal lengths"]),
    ("NaN quantity", P(setrow("positions/quantity", 1, float("nan"))),
     ["/positions/quantity[1] = nan", "must be a finite number"]),
    ("Inf level", P(setrow("factors/level", 0, float("inf"))),
     ["/factors/level[0] = inf", "must be a finite number"]),
    ("NaN rate", P(setrow("instruments/rate", 3, float("nan"))),
     ["/instruments/rate[3] = nan", "must be a finite number"]),
    ("instrument index out of range", P(setrow("positions/instrument", 0, 9)),
     ["/positions/instrument[0] = 9", "index out of range"]),
    ("account index out of range", P(setrow("positions/account", 4, -1)),
     ["/positions/account[4] = -1", "index out of range"]),
    ("silo index out of range", P(setrow("instruments/silo", 0, 5)),
     ["/instruments/silo[0] = 5", "index out of range"]),
    ("underlying out of range", P(setrow("instruments/underlying", 1, 4)),
     ["/instruments/underlying[1] = 4", "index out of range"]),
    ("vol_factor -2", P(setrow("instruments/vol_factor", 2, -2)),
     ["/instruments/vol_factor[2] = -2", "index out of range"]),
    ("duplicate instrument id", P(setrow("instruments/id", 3, "SPX")),
     ["/instruments/id[3] = 'SPX'", "duplicate instrument id"]),
    ("duplicate account id", P(setrow("accounts/id", 1, "A1")),
     ["/accounts/id[1] = 'A1'", "duplicate account id"]),
    ("duplicate factor name", P(setrow("factors/name", 2, "SPX")),
     ["/factors/name[2] = 'SPX'", "duplicate factor name"]),
    ("unknown instrument type", P(setrow("instruments/type", 2, "swaption")),
     ["/instruments/type[2] = 'swaption'", "unknown instrument type"]),
    ("unknown factor kind", P(setrow("factors/kind", 3, "fx")),
     ["/factors/kind[3] = 'fx'", "unknown factor kind"]),
    ("option on a vol factor", P(setrow("instruments/underlying", 2, 1)),
     ["/instruments/underlying[2] = 1", "the underlying must be a price factor"]),
    ("vol factor that is a price factor", P(setrow("instruments/vol_factor", 3, 0)),
     ["/instruments/vol_factor[3] = 0", "the vol factor must be a vol factor"]),
    ("negative strike", P(setrow("instruments/strike", 2, -5.0)),
     ["/instruments/strike[2] = -5", "strike must be > 0"]),
    ("multiplier 0", P(setrow("instruments/multiplier", 1, 0)),
     ["/instruments/multiplier[1] = 0", "multiplier must be > 0"]),
    ("negative expiry", P(setrow("instruments/expiry", 3, -0.1)),
     ["/instruments/expiry[3] = -0.1", "expiry must be >= 0"]),
    ("negative implied vol", P(setrow("instruments/implied_vol", 2, -0.2)),
     ["/instruments/implied_vol[2] = -0.2", "implied_vol must be >= 0"]),
    ("call 2", P(setrow("instruments/call", 2, 2)),
     ["/instruments/call[2] = 2", "call must be 1 (call) or 0 (put)"]),
    ("cross_margin 2", P(setrow("accounts/cross_margin", 0, 2)),
     ["/accounts/cross_margin[0] = 2", "cross_margin must be 0 or 1"]),
    ("price level <= 0", P(setrow("factors/level", 2, -1.0)),
     ["/factors/level[2] = -1", "level must be > 0 for a price factor"]),
    ("zero positions", P(many(setv("positions/account", np.zeros(0, np.int64)),
                              setv("positions/instrument", np.zeros(0, np.int64)),
                              setv("positions/quantity", np.zeros(0)))),
     ["/positions", "has no rows: nothing to margin"]),
    ("zero factors", P(many(setv("factors/name", []), setv("factors/kind", []),
                            setv("factors/level", np.zeros(0)))),
     ["/factors", "has no rows"]),
    ("rank-2 column", P(setv("instruments/strike", np.zeros((4, 2)))),
     ["/instruments/strike", "has rank 2, must be 1-D"]),
    ("scalar column", P(setv("positions/quantity", np.float64(3))),
     ["/positions/quantity", "must be a 1-D array"]),
    ("string where a number goes", P(setv("instruments/strike", ["a", "b", "c", "d"])),
     ["/instruments/strike", "must be numeric"]),
    ("number where a string goes", P(setv("instruments/type", np.arange(4))),
     ["/instruments/type", "must be a string"]),
    ("fractional index", P(setv("instruments/silo", np.array([0, 1.5, 0, 1]))),
     ["/instruments/silo[1] = 1.5", "must be an integer"]),
    ("index beyond int32", P(setv("instruments/silo", np.array([0, 2 ** 40, 0, 1]))),
     ["/instruments/silo[1] = 1099511627776", "out of the 32-bit integer range"]),
    ("group where a column goes", P(setv("positions/quantity", {"x": np.arange(2)})),
     ["/positions/quantity", "must be a dataset"]),
    ("bad format attribute", P(setv("attrs/format", "xmargin.portfolo")),
     ["/: attribute format = 'xmargin.portfolo'"]),
    ("missing format attribute", P(delete("attrs/format")), ["/: attribute format is missing"]),
    ("missing format_version", P(delete("attrs/format_version")),
     ["/: attribute format_version is missing"]),
    ("format_version 2", P(setv("attrs/format_version", 2)),
     ["/: attribute format_version = 2", "must be 1"]),
    ("bad valuation_date", P(setv("attrs/valuation_date", "28/06/2024")),
     ["/: attribute valuation_date = '28/06/2024'", "must be an ISO date"]),
    ("missing currency", P(delete("attrs/currency")), ["/: attribute currency is missing"]),
]

BAD_SCENARIOS = [
    ("set label length mismatch", S(setv("sets/grid/label", ["down", "up"])),
     ["/sets/grid/shock", "has shape [3 x 2]", "must be [S x F_s]"]),
    ("set factor length mismatch", S(setv("sets/grid/factor", ["SPX"])),
     ["/sets/grid/shock", "has shape [3 x 2]", "must be [S x F_s]"]),
    ("set weight length mismatch", S(setv("sets/grid/weight", np.ones(2))),
     ["/sets/grid/weight", "one weight per scenario"]),
    ("bad measure", S(setv("sets/grid/@measure", "cvar")),
     ["/sets/grid: attribute measure = 'cvar'", "must be one of worst, es, var"]),
    ("confidence 1.5", S(setv("sets/stress/@confidence", 1.5)),
     ["/sets/stress: attribute confidence = 1.5", "confidence must be in (0, 1)"]),
    ("negative weight", S(setrow("sets/grid/weight", 1, -1.0)),
     ["/sets/grid/weight[1] = -1", "weight must be finite and >= 0"]),
    ("NaN shock", S(setrow("sets/stress/shock", 1, np.array([np.nan]))),
     ["/sets/stress/shock[1, 0] = nan", "must be a finite number"]),
    ("duplicate factor in a set", S(setv("sets/grid/factor", ["SPX", "SPX"])),
     ["/sets/grid/factor[1] = 'SPX'", "duplicate factor name"]),
    ("zero-row set", S(many(setv("sets/grid/label", []), setv("sets/grid/shock", np.zeros((0, 2))),
                            setv("sets/grid/weight", np.zeros(0)))),
     ["/sets/grid/label", "has no rows"]),
    ("rank-1 shock", S(setv("sets/stress/shock", np.array([-0.2, -0.09]))),
     ["/sets/stress/shock", "has rank 1, must be 2-D"]),
    ("history dates not increasing",
     S(setv("history/date", ["2024-06-25", "2024-06-27", "2024-06-26", "2024-06-28"])),
     ["/history/date[2] = '2024-06-26'", "dates must be strictly increasing"]),
    ("history repeated date",
     S(setv("history/date", ["2024-06-25", "2024-06-26", "2024-06-26", "2024-06-28"])),
     ["/history/date[2] = '2024-06-26'", "dates must be strictly increasing"]),
    ("history bad date", S(setrow("history/date", 1, "2024-13-01")),
     ["/history/date[1] = '2024-13-01'", "must be an ISO date"]),
    ("history return shape", S(setv("history/return", np.zeros((4, 2)))),
     ["/history/return", "has shape [4 x 2]", "must be [T x F_h]"]),
    ("history duplicate factor", S(setv("history/factor", ["SPX", "ES", "ES"])),
     ["/history/factor[2] = 'ES'", "duplicate factor name"]),
    ("history Inf return", S(setrow("history/return", 2, np.array([0, np.inf, 0]))),
     ["/history/return[2, 1] = inf", "must be a finite number"]),
    ("reserved set name", S(lambda t: t["sets"].update({"historical": t["sets"]["stress"]})),
     ["/sets/historical", "reserved"]),
    ("no history and no sets", S(many(delete("history"), delete("sets"))),
     ["neither /history nor /sets"]),
    ("scenario format attribute", S(setv("attrs/format", "xmargin.scenario")),
     ["/: attribute format = 'xmargin.scenario'"]),
]


def check_bad(tmp):
    n = 0
    for group, cases in (("portfolio", BAD_PORTFOLIO), ("scenarios", BAD_SCENARIOS)):
        for name, make, want in cases:
            for strings in ("vlen", "fixed"):
                n += 1
                path = os.path.join(tmp, "bad%03d.h5" % n)
                try:
                    write_file(path, make(), strings)
                except Exception as e:  # the case itself is broken
                    report("%s: %s (%s)" % (group, name, strings), False, "writing: %r" % e)
                    continue
                expect(name + " (%s strings)" % strings, path, want)

    # a dataset declaring 2**40 rows: rejected before any allocation
    path = os.path.join(tmp, "huge.h5")
    write_with_huge(path, good_portfolio(), "vlen", "positions/quantity")
    expect("dataset declaring 2**40 rows", path,
           ["/positions/quantity", "declares 1099511627776 rows", "more than the limit"])
    path = os.path.join(tmp, "huge_set.h5")
    write_file(path, good_scenarios())
    with h5py.File(path, "a") as f:
        del f["sets/grid/label"]
        f.create_dataset("sets/grid/label", shape=(2 ** 40,), dtype=h5py.string_dtype(),
                         chunks=(1024,))
    expect("set label declaring 2**40 rows", path,
           ["/sets/grid/label", "declares 1099511627776 rows"])
    path = os.path.join(tmp, "huge_2d.h5")
    write_file(path, good_scenarios())
    with h5py.File(path, "a") as f:
        del f["history/return"]
        f.create_dataset("history/return", shape=(2 ** 30, 2 ** 30), dtype="f8",
                         chunks=(64, 64))
    expect("2-D dataset whose rows x cols overflow the limit", path,
           ["/history/return", "declares [1073741824 x 1073741824] elements"])

    # not HDF5, empty, truncated, missing
    path = os.path.join(tmp, "text.h5")
    with open(path, "w") as f:
        f.write("id,strike\nSPX,4500\n")
    expect("not HDF5 at all", path, ["text.h5", "not an HDF5 file"])
    path = os.path.join(tmp, "empty.h5")
    open(path, "w").close()
    expect("empty file", path, ["empty.h5", "not an HDF5 file"])
    good = write_file(os.path.join(tmp, "good_for_trunc.h5"), good_portfolio())
    data = open(good, "rb").read()
    for frac in (0.9, 0.5, 0.1):
        path = os.path.join(tmp, "trunc%d.h5" % int(frac * 100))
        with open(path, "wb") as f:
            f.write(data[: int(len(data) * frac)])
        expect("truncated file (%d%%)" % int(frac * 100), path, [os.path.basename(path)])
    expect("missing file", os.path.join(tmp, "no-such.h5"), ["no-such.h5", "cannot open"])

    # a results file is not something validate checks
    path = os.path.join(tmp, "other.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.results"
    expect("other format", path, ["attribute format = 'xmargin.results'"])

    # many errors: bounded output
    t = good_portfolio()
    t["positions"]["account"] = np.full(60, 7, dtype=np.int64)
    t["positions"]["instrument"] = np.zeros(60, dtype=np.int64)
    t["positions"]["quantity"] = np.ones(60)
    path = write_file(os.path.join(tmp, "many.h5"), t)
    rc, out, err = run_validate(path)
    lines = [l for l in err.splitlines() if "index out of range" in l]
    ok = rc == 2 and len(lines) == 20 and "... and 40 more errors" in err
    report("many errors: first 20 shown, the rest counted", ok, "rc=%d\n%s" % (rc, err[-800:]))

    # several files: one bad one makes the exit status 2, the good one is still summarised
    good_s = write_file(os.path.join(tmp, "good_s.h5"), good_scenarios())
    rc, out, err = run_validate(good_s, os.path.join(tmp, "text.h5"))
    report("good + bad file: exit 2, good one summarised",
           rc == 2 and "valid xmargin.scenarios" in out and "not an HDF5 file" in err,
           "rc=%d\n%s%s" % (rc, out, err))


def check_corrupt(tmp):
    """Random bytes overwritten in valid files (variable-length strings: HDF5
    1.10 itself crashes on some of these): always exit 0 or 2, never a crash."""
    import random
    rng = random.Random(20240628)
    # HDF5 1.10 itself leaks a few bytes on some corrupt-file error paths: in a
    # sanitizer build, those (and only those: frames inside libhdf5) are not ours
    supp = os.path.join(tmp, "lsan.supp")
    with open(supp, "w") as f:
        f.write("leak:libhdf5\n")
    env = dict(os.environ)
    env["LSAN_OPTIONS"] = (env.get("LSAN_OPTIONS", "") + ":suppressions=" + supp).lstrip(":")
    for label, tree in (("portfolio", good_portfolio()), ("scenarios", good_scenarios())):
        src = open(write_file(os.path.join(tmp, "corrupt_src.h5"), tree), "rb").read()
        codes = {}
        crashes = []
        for i in range(30):
            b = bytearray(src)
            for _ in range(rng.choice([1, 4, 16])):
                b[rng.randrange(len(b))] = rng.randrange(256)
            path = os.path.join(tmp, "corrupt.h5")
            with open(path, "wb") as f:
                f.write(b)
            rc, out, err = run_validate(path, env=env)
            codes[rc] = codes.get(rc, 0) + 1
            if rc not in (0, 2):
                crashes.append((i, rc, err[-300:]))
        report("corrupted %s files: exit 0 or 2, never a crash %r" % (label, codes),
               not crashes, repr(crashes[:3]))


def expect(name, path, want):
    rc, out, err = run_validate(path)
    crashed = rc < 0 or rc >= 128
    missing = [w for w in want if w not in err]
    ok = rc == 2 and not crashed and not missing
    detail = "rc=%d%s; missing %r\nstderr: %s" % (rc, " (CRASH)" if crashed else "", missing,
                                                   err[-1500:])
    report(name, ok, detail)


def main():
    with tempfile.TemporaryDirectory(prefix="xm_io_validate.") as tmp:
        check_valid(tmp)
        check_bad(tmp)
        check_corrupt(tmp)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
