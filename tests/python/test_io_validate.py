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
     ["/instruments/vol_factor[3] = 0", "the vol factor must be a vol or logvol factor"]),
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
    ("format_version 3", P(setv("attrs/format_version", 3)),
     ["/: attribute format_version = 3", "must be 1 or 2"]),
    ("format_version 1.5", P(setv("attrs/format_version", 1.5)),
     ["/: attribute format_version = 1.5", "must be 1 or 2"]),
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
    ("scenario format_version 3", S(setv("attrs/format_version", 3)),
     ["/: attribute format_version = 3", "must be 1 or 2"]),
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


# ---- version 2 (FORMAT.md section 1): currencies, funding, /fx, /collateral ----

def v2_book():
    """The arguments of xm_testlib.write_portfolio for a valid version-2 book
    with every version-2 column and table."""
    return dict(
        factors=[("SPX", "price", 4500.0, {"half_spread": 1e-4, "impact": 0.1, "adv": 5e10,
                                           "haircut": 0.15, "collateral_limit": 1e7}),
                 ("SPX.iv", "vol", 0.2),
                 ("ES", "price", 4510.0, {"half_spread": 2e-4}),
                 ("BTC", "price", 60000.0, {"half_spread": 5e-4, "impact": 0.3, "adv": 2e10,
                                            "haircut": 0.5, "collateral_limit": 2e6}),
                 ("BTC.iv", "logvol", 0.6),
                 ("EURUSD", "price", 1.08, {"haircut": 0.02})],
        silos=["securities", "futures", "crypto"],
        instruments=[
            dict(id="SPX", type="spot", silo=0, underlying=0),
            dict(id="ES.Z5", type="future", silo=1, underlying=2, expiry=0.25, multiplier=50),
            dict(id="SPX.A4500", type="american_option", silo=0, underlying=0, vol_factor=1,
                 strike=4500, expiry=0.5, implied_vol=0.18, rate=0.045, dividend_yield=0.013,
                 multiplier=100),
            dict(id="BTC-PERP", type="perpetual", silo=2, underlying=3, multiplier=0.001,
                 funding_rate=0.1),
            dict(id="BTC-INVP", type="inverse_perpetual", silo=2, underlying=3, multiplier=10,
                 currency="BTC", funding_rate=-0.05),
            dict(id="BTC-INVF", type="inverse_future", silo=2, underlying=3, expiry=0.25,
                 multiplier=10, currency="BTC"),
            dict(id="BTC-C60000", type="inverse_option", silo=2, underlying=3, vol_factor=4,
                 strike=60000, expiry=0.1, call=1, implied_vol=0.6, currency="BTC"),
        ],
        accounts=[("A1", 1, "USD"), ("A2", 0, "EUR"), ("A3", 1, "BTC")],
        fx=[("EUR", 5), ("BTC", 3)],
        collateral=[dict(account=0, factor=-1, quantity=1e6, silo=0),
                    dict(account=1, factor=0, quantity=100, silo=-1, currency="USD"),
                    dict(account=1, factor=-1, quantity=5000, silo=1, currency="EUR"),
                    dict(account=2, factor=3, quantity=2, silo=2)],
        positions=[(0, 0, 100), (0, 2, -2), (1, 1, 3), (2, 3, 1.5), (2, 4, -200), (2, 5, 5),
                   (2, 6, 3)],
    )


def B(edit):
    """A version-2 book changed by edit(book) (a function of the dict)."""
    def make():
        b = v2_book()
        edit(b)
        return b
    return make


def fcol(row, col, v):
    """Factor row's version-2 column col set to v."""
    def edit(b):
        f = b["factors"][row]
        ext = dict(f[3]) if len(f) > 3 else {}
        ext[col] = v
        b["factors"][row] = (f[0], f[1], f[2], ext)
    return edit


def icol(row, col, v):
    def edit(b):
        b["instruments"][row][col] = v
    return edit


def ccol(row, col, v):
    def edit(b):
        b["collateral"][row][col] = v
    return edit


def acur(row, v):
    def edit(b):
        a = b["accounts"][row]
        b["accounts"][row] = (a[0], a[1], v)
    return edit


def fxrow(row, v):
    def edit(b):
        if row < len(b["fx"]):
            b["fx"][row] = v
        else:
            b["fx"].append(v)
    return edit


def no_inst_currency(b):
    for i in b["instruments"]:
        i.pop("currency", None)


UNKNOWN = "unknown currency: must be the reporting currency 'USD' or a currency of /fx"
BAD_V2 = [
    ("unknown account currency", B(acur(1, "GBP")),
     ["/accounts/currency[1] = 'GBP'", UNKNOWN]),
    ("unknown instrument currency", B(icol(6, "currency", "ETH")),
     ["/instruments/currency[6] = 'ETH'", UNKNOWN]),
    ("unknown collateral currency", B(ccol(2, "currency", "JPY")),
     ["/collateral/currency[2] = 'JPY'", UNKNOWN]),
    ("inverse type settled in the reporting currency", B(icol(5, "currency", "USD")),
     ["/instruments/currency[5] = 'USD'", "an inverse type ('inverse_future') settles in its coin:"
      " must be a currency of /fx, not the reporting currency"]),
    ("inverse type, currency column absent (the reporting currency)", B(no_inst_currency),
     ["/instruments/type[4] = 'inverse_perpetual': an inverse type settles in its coin, a "
      "currency of /fx: /instruments/currency is absent, so it would settle in the reporting "
      "currency 'USD'", "/instruments/type[5] = 'inverse_future'",
      "/instruments/type[6] = 'inverse_option'"]),
    ("/fx factor not a price factor", B(fxrow(1, ("BTC", 4))),
     ["/fx/factor[1] = 4", "an /fx factor must be a price factor (factor 'BTC.iv' is not)"]),
    ("/collateral factor not a price factor", B(ccol(1, "factor", 1)),
     ["/collateral/factor[1] = 1",
      "a collateral factor must be a price factor or -1 for cash (factor 'SPX.iv' is not)"]),
    ("/fx currency repeated", B(fxrow(1, ("EUR", 3))),
     ["/fx/currency[1] = 'EUR'", "duplicate currency (first at row 0)"]),
    ("/fx currency empty", B(fxrow(0, ("", 5))),
     ["/fx/currency[0] = ''", "currency must not be empty"]),
    ("/fx currency is the reporting currency", B(fxrow(2, ("USD", 0))),
     ["/fx/currency[2] = 'USD'", "the reporting currency is not a row of /fx"]),
    ("/fx currency of 16 characters", B(fxrow(2, ("EUREUREUREUREURX", 0))),
     ["/fx/currency[2] = 'EUREUREUREUREURX'", "a currency must be 1 to 15 characters"]),
    ("/fx factor out of range", B(fxrow(0, ("EUR", 6))),
     ["/fx/factor[0] = 6", "index out of range: must be a row of /factors (0..5)"]),
    ("/collateral account out of range", B(ccol(0, "account", 3)),
     ["/collateral/account[0] = 3", "index out of range: must be a row of /accounts (0..2)"]),
    ("/collateral factor -2", B(ccol(0, "factor", -2)),
     ["/collateral/factor[0] = -2",
      "index out of range: must be a row of /factors (0..5) or -1 for cash"]),
    ("/collateral silo out of range", B(ccol(3, "silo", 3)),
     ["/collateral/silo[3] = 3",
      "index out of range: must be a row of /silos/name (0..2) or -1 for none"]),
    ("negative half_spread", B(fcol(0, "half_spread", -1e-4)),
     ["/factors/half_spread[0] = -0.0001", "half_spread must be >= 0"]),
    ("negative impact", B(fcol(3, "impact", -0.3)),
     ["/factors/impact[3] = -0.3", "impact must be >= 0"]),
    ("negative adv", B(fcol(3, "adv", -1.0)), ["/factors/adv[3] = -1", "adv must be >= 0"]),
    ("negative collateral_limit", B(fcol(0, "collateral_limit", -5.0)),
     ["/factors/collateral_limit[0] = -5", "collateral_limit must be >= 0"]),
    ("negative collateral quantity", B(ccol(3, "quantity", -2.0)),
     ["/collateral/quantity[3] = -2", "quantity must be >= 0"]),
    ("haircut above 1", B(fcol(3, "haircut", 1.5)),
     ["/factors/haircut[3] = 1.5", "haircut must be in [0, 1]"]),
    ("haircut below 0", B(fcol(5, "haircut", -0.1)),
     ["/factors/haircut[5] = -0.1", "haircut must be in [0, 1]"]),
    ("funding_rate on a future", B(icol(1, "funding_rate", 0.02)),
     ["/instruments/funding_rate[1] = 0.02",
      "must be 0 for type 'future' (only perpetual, inverse_perpetual pay funding)"]),
    ("funding_rate on an inverse_future", B(icol(5, "funding_rate", -0.01)),
     ["/instruments/funding_rate[5] = -0.01", "must be 0 for type 'inverse_future'"]),
    ("NaN half_spread", B(fcol(2, "half_spread", float("nan"))),
     ["/factors/half_spread[2] = nan", "must be a finite number"]),
    ("NaN impact", B(fcol(0, "impact", float("nan"))),
     ["/factors/impact[0] = nan", "must be a finite number"]),
    ("Inf adv", B(fcol(0, "adv", float("inf"))),
     ["/factors/adv[0] = inf", "must be a finite number"]),
    ("Inf haircut", B(fcol(0, "haircut", float("inf"))),
     ["/factors/haircut[0] = inf", "must be a finite number"]),
    ("NaN collateral_limit", B(fcol(3, "collateral_limit", float("nan"))),
     ["/factors/collateral_limit[3] = nan", "must be a finite number"]),
    ("NaN funding_rate", B(icol(3, "funding_rate", float("nan"))),
     ["/instruments/funding_rate[3] = nan", "must be a finite number"]),
    ("-Inf collateral quantity", B(ccol(0, "quantity", float("-inf"))),
     ["/collateral/quantity[0] = -inf", "must be a finite number"]),
    ("account currency of 16 characters", B(acur(2, "BTCBTCBTCBTCBTCB")),
     ["/accounts/currency[2] = 'BTCBTCBTCBTCBTCB'", "a currency must be 1 to 15 characters"]),
    ("empty instrument currency", B(icol(0, "currency", "")),
     ["/instruments/currency[0] = ''", "a currency must be 1 to 15 characters"]),
    ("option vol factor that is a price factor", B(icol(6, "vol_factor", 3)),
     ["/instruments/vol_factor[6] = 3",
      "the vol factor must be a vol or logvol factor (factor 'BTC' is not)"]),
]


def write_v2(path, book, edit_file=None):
    tl.write_portfolio(path, **book)
    if edit_file:
        with h5py.File(path, "a") as f:
            edit_file(f)
    return path


def check_v2(tmp):
    # accepted: a version-2 book with every new column and table
    path = write_v2(os.path.join(tmp, "v2.h5"), v2_book())
    rc, out, err = run_validate(path)
    want = ["valid xmargin.portfolio (format_version 2)", "logvol 1", "american_option 1",
            "perpetual 1", "inverse_future 1", "inverse_perpetual 1", "inverse_option 1",
            "fx                  2  (EUR, BTC)", "collateral          4  holdings"]
    report("v2: a valid version-2 book with every new column", rc == 0 and all(w in out for w in want),
           "rc=%d\n%s%s" % (rc, out, err))
    # /collateral without its optional currency column; an empty /fx group is 0 rows
    b = v2_book()
    for h in b["collateral"]:
        h.pop("currency", None)
    path = write_v2(os.path.join(tmp, "v2_nocur.h5"), b)
    rc, out, err = run_validate(path)
    report("v2: /collateral without its currency column", rc == 0, "rc=%d\n%s%s" % (rc, out, err))
    b = tl.write_portfolio  # noqa: F841 (documentation: the writer used)
    path = os.path.join(tmp, "v2_emptyfx.h5")
    tl.write_portfolio(path, [("SPX", "price", 4500.0)], ["s"],
                       [dict(id="SPX", type="spot", silo=0, underlying=0)], [("A", 1)],
                       [(0, 0, 1)], fx=[])
    rc, out, err = run_validate(path)
    report("v2: an empty /fx group is 0 rows", rc == 0 and "fx " not in out
           and "format_version 2" in out, "rc=%d\n%s%s" % (rc, out, err))
    # a version-1 book is still valid and reads as before
    path = write_file(os.path.join(tmp, "v1.h5"), good_portfolio())
    rc, out, err = run_validate(path)
    report("v1: a version-1 book is still valid (format_version 1, no /fx, /collateral)",
           rc == 0 and "(format_version 1)" in out and "fx " not in out
           and "collateral " not in out, "rc=%d\n%s%s" % (rc, out, err))
    t = good_portfolio()
    t["attrs"]["format_version"] = 2
    path = write_file(os.path.join(tmp, "v1as2.h5"), t)
    rc, out, err = run_validate(path)
    report("v1 content under format_version 2 is valid", rc == 0 and "(format_version 2)" in out,
           "rc=%d\n%s%s" % (rc, out, err))
    t = good_scenarios()
    t["attrs"]["format_version"] = np.int8(2)
    path = write_file(os.path.join(tmp, "scen2.h5"), t)
    rc, out, err = run_validate(path)
    report("a scenario file of format_version 2 is valid",
           rc == 0 and "valid xmargin.scenarios (format_version 2)" in out,
           "rc=%d\n%s%s" % (rc, out, err))

    # rejected: one rule each
    for k, (name, make, want) in enumerate(BAD_V2):
        path = os.path.join(tmp, "bad_v2_%02d.h5" % k)
        try:
            write_v2(path, make())
        except Exception as e:  # the case itself is broken
            report("v2: %s" % name, False, "writing: %r" % e)
            continue
        expect("v2: " + name, path, [os.path.basename(path) + ": "] + want)

    # the table rules on the optional tables, when present
    cases = [
        ("/fx without its factor column", lambda f: f.__delitem__("fx/factor"),
         ["/fx/factor: required dataset is missing"]),
        ("/collateral columns of unequal length",
         lambda f: (f.__delitem__("collateral/quantity"),
                    f.create_dataset("collateral/quantity", data=np.ones(3))),
         ["/collateral/quantity: has 3 rows", "columns must have equal lengths"]),
        ("/fx that is a dataset", lambda f: (f.__delitem__("fx"), f.create_dataset("fx", data=1)),
         ["/fx: must be a group"]),
        ("/accounts/currency that is a group",
         lambda f: (f.__delitem__("accounts/currency"), f.create_group("accounts/currency")),
         ["/accounts/currency: must be a dataset"]),
        ("/instruments/currency of numbers",
         lambda f: (f.__delitem__("instruments/currency"),
                    f.create_dataset("instruments/currency", data=np.arange(7))),
         ["/instruments/currency", "must be a string"]),
    ]
    for k, (name, edit, want) in enumerate(cases):
        path = write_v2(os.path.join(tmp, "bad_v2_table_%d.h5" % k), v2_book(), edit)
        expect("v2: " + name, path, want)


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
        check_v2(tmp)
        check_corrupt(tmp)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
