#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer targets (tests/fuzz/corpus/).

    python3 tests/fuzz/make_seeds.py          # (re)writes the seeds in place

Portfolio and scenario seeds are tiny HDF5 files that follow FORMAT.md (the
data contract, version 1 as the reader reads it now): a few valid ones, written in the different ways real writers produce them
(variable- and fixed-length strings, int64/float32 numbers, chunked + gzip +
shuffle storage, the newest HDF5 file format), and deliberately broken
variants (a missing group or column, wrong types, unequal lengths, an index
out of range, a scalar where a column belongs, a dataset that was never
written, a truncated file). Config seeds are small INI files, starting from
examples/xmargin.ini. Every seed stays under 64 KB; the whole corpus under 1 MB.

The files are checked in (they are the corpus); rerun this script only when
the format changes, and check the result in. h5py and numpy are needed. The
output is byte-identical from run to run (no object records a time).
"""
import ctypes
import os
import shutil
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
MAX_SEED = 64 * 1024

VSTR = h5py.string_dtype("utf-8")  # variable-length UTF-8 (what xmargin writes)


def _libhdf5():
    """The HDF5 library h5py runs on, for the few property-list calls h5py lacks."""
    with open("/proc/self/maps") as m:
        for line in m:
            name = line.split()[-1]
            if "libhdf5" in name and "_hl" not in name and ".so" in name:
                return ctypes.CDLL(name)
    return None


H5 = _libhdf5()


def _h5call(fn, *args):
    if H5 is None or getattr(H5, fn, None) is None:
        return False
    return getattr(H5, fn)(*args) >= 0


# Storage styles of the seeds:
#   "h5py"    what h5py writes by default (the earliest file format);
#   "latest"  libver="latest" (version-2 object headers, compact link storage);
#   "compact" the newest format with everything packed: no spare room in the
#             metadata blocks, small group and dataset headers, compact
#             dataset layout (the data inside the object header). A few KB a
#             file, so that the fuzzer's mutations land on structure, not on
#             zero padding.
def h5open(path, style):
    # Low-level creation everywhere, so that no object records a modification
    # time: the seeds come out byte-identical on every run.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if style != "h5py":
        fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    if style == "compact":
        _h5call("H5Pset_meta_block_size", ctypes.c_int64(fapl.id), ctypes.c_uint64(0))
        _h5call("H5Pset_small_data_block_size", ctypes.c_int64(fapl.id), ctypes.c_uint64(0))
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def mkgroup(parent, name, style, nlinks=12):
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    if style == "compact":
        _h5call("H5Pset_est_link_info", ctypes.c_int64(gcpl.id), ctypes.c_uint(nlinks),
                ctypes.c_uint(8))
    h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    return parent[name]


def mkdset(grp, name, data, dtype, style, chunked=False):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    opts = {}
    if chunked:
        opts = dict(chunks=tuple(max(1, min(2, n)) for n in np.shape(data)),
                    compression="gzip", compression_opts=4, shuffle=True)
    elif style == "compact":
        _h5call("H5Pset_dset_no_attrs_hint", ctypes.c_int64(dcpl.id), ctypes.c_uint(1))
        dcpl.set_layout(h5py.h5d.COMPACT)
    return grp.create_dataset(name, data=data, dtype=dtype, dcpl=dcpl, **opts)


def fixed(strings, n=None):
    """Fixed-length ASCII strings (numpy 'S'), NUL-padded."""
    b = [s.encode() for s in strings]
    n = n or max(1, max((len(x) for x in b), default=1))
    return np.array(b, dtype="S%d" % n)


def vlen(strings):
    return np.array(strings, dtype=object)


def attr_str(v, strings):
    """A string attribute as h5py writes a str (variable-length) or, with
    fixed-length strings, as a fixed-length one; other values unchanged."""
    return np.bytes_(v.encode()) if strings == "fixed" and isinstance(v, str) else v


# ---- a tiny valid book ---------------------------------------------------------

BOOK = {
    "factors": {
        "name": ["SPX", "SPX.iv", "ES", "US.rate"],
        "kind": ["price", "vol", "price", "rate"],
        "level": [4000.0, 0.2, 4010.0, 0.045],
    },
    "silos": {"name": ["securities", "futures"]},
    "instruments": {
        "id": ["SPX", "SPX-C-4000", "ES-F", "ES-P-3900"],
        "type": ["spot", "option", "future", "future_option"],
        "silo": [0, 0, 1, 1],
        "underlying": [0, 0, 2, 2],
        "vol_factor": [-1, 1, -1, 1],
        "strike": [0.0, 4000.0, 0.0, 3900.0],
        "expiry": [0.0, 0.25, 0.0, 0.5],
        "call": [0, 1, 0, 0],
        "implied_vol": [0.0, 0.2, 0.0, 0.22],
        "rate": [0.045, 0.045, 0.045, 0.045],
        "dividend_yield": [0.0, 0.015, 0.0, 0.0],
        "multiplier": [1.0, 100.0, 50.0, 50.0],
    },
    "accounts": {"id": ["acct-1", "acct-2"], "cross_margin": [1, 0]},
    "positions": {
        "account": [0, 0, 1, 1, 1],
        "instrument": [0, 1, 2, 3, 3],
        "quantity": [100.0, -2.0, 1.0, -3.0, 1.0],
    },
}
STRING_COLS = {"name", "kind", "id", "type"}
INT_COLS = {"silo", "underlying", "vol_factor", "call", "cross_margin", "account", "instrument"}


def write_portfolio(path, book=BOOK, strings="fixed", ints="i4", floats="f8", chunked=False,
                    style="compact", attrs=None, drop=(), mutate=None, version=1):
    """Writes book as a portfolio; drop: "group" or "group/column" left out;
    mutate(f): a last change on the open file."""
    with h5open(path, style) as f:
        a = {"format": "xmargin.portfolio", "format_version": np.int32(version),
             "valuation_date": "2018-12-31", "currency": "USD"}
        a.update(attrs or {})
        for k, v in a.items():
            if v is not None:
                f.attrs[k] = attr_str(v, strings)
        for g, cols in book.items():
            if g in drop:
                continue
            grp = mkgroup(f, g, style)
            for c, vals in cols.items():
                if "%s/%s" % (g, c) in drop:
                    continue
                if c in STRING_COLS and strings == "vlen-ascii":
                    data, dt = vlen(vals), h5py.string_dtype("ascii")
                elif c in STRING_COLS:
                    data = vlen(vals) if strings == "vlen" else fixed(vals)
                    dt = VSTR if strings == "vlen" else data.dtype
                else:
                    data = np.array(vals, dtype=ints if c in INT_COLS else floats)
                    dt = data.dtype
                mkdset(grp, c, data, dt, style, chunked)
        if mutate:
            mutate(f)


# ---- a tiny valid scenario file -------------------------------------------------

HIST_FACTORS = ["SPX", "SPX.iv", "ES", "US.rate"]
HIST_DATES = ["2018-12-24", "2018-12-26", "2018-12-27", "2018-12-28", "2018-12-31"]
RNG = np.random.default_rng(11)
HIST_RET = np.round(RNG.normal(0, 0.01, (len(HIST_DATES), len(HIST_FACTORS))), 6)


def write_scenarios(path, strings="fixed", floats="f8", chunked=False, style="compact",
                    history=True, sets=("crises", "span"), weight=True, attrs=None, mutate=None,
                    version=1):
    def ds(grp, name, vals, is_str=False):
        if is_str:
            data = vlen(vals) if strings == "vlen" else fixed(vals)
            dt = VSTR if strings == "vlen" else data.dtype
        else:
            data = np.asarray(vals, dtype=floats)
            dt = data.dtype
        return mkdset(grp, name, data, dt, style, chunked)

    with h5open(path, style) as f:
        a = {"format": "xmargin.scenarios", "format_version": np.int32(version)}
        a.update(attrs or {})
        for k, v in a.items():
            if v is not None:
                f.attrs[k] = attr_str(v, strings)
        if history:
            h = mkgroup(f, "history", style)
            ds(h, "factor", HIST_FACTORS, True)
            ds(h, "date", HIST_DATES, True)
            ds(h, "return", HIST_RET)
        if sets:
            g = mkgroup(f, "sets", style)
            if "crises" in sets:
                c = mkgroup(g, "crises", style)
                ds(c, "factor", ["SPX", "SPX.iv"], True)
                ds(c, "label", ["1987-10-19", "2008-10-15", "2020-03-16"], True)
                ds(c, "shock", [[-0.229, 0.15], [-0.095, 0.12], [-0.127, 0.2]])
                c.attrs["measure"] = attr_str("worst", strings)
            if "span" in sets:
                c = mkgroup(g, "span", style)
                ds(c, "factor", ["ES", "US.rate"], True)
                ds(c, "label", ["up 3R", "down 3R", "flat"], True)
                ds(c, "shock", [[0.15, 0.0], [-0.15, 0.001], [0.0, -0.001]])
                if weight:
                    ds(c, "weight", [0.35, 0.35, 1.0])
                c.attrs["measure"] = attr_str("es", strings)
                c.attrs["confidence"] = 0.975
        if mutate:
            mutate(f)


# ---- broken variants ---------------------------------------------------------------

def replace(f, path, data, **kw):
    del f[path]
    f.create_dataset(path, data=data, **kw)


def never_written(f, path, n, dtype="f8"):
    del f[path]
    f.create_dataset(path, shape=(n,), dtype=dtype)  # no data: storage never allocated


def truncate_copy(src, dst, keep):
    with open(src, "rb") as a, open(dst, "wb") as b:
        b.write(a.read()[:keep])


def portfolio_seeds(d):
    P = lambda n: os.path.join(d, n)
    write_portfolio(P("valid-h5py-vlen.h5"), style="h5py", strings="vlen")
    write_portfolio(P("valid-h5py-fixed-int64-float32.h5"), style="h5py", strings="fixed",
                    ints="i8", floats="f4")
    write_portfolio(P("valid-latest-int16-fixed.h5"), style="latest", ints="i2", strings="fixed")
    write_portfolio(P("valid-vlen.h5"), strings="vlen")
    utf8 = dict(BOOK, accounts={"id": ["Zürich-1", "東京-2"], "cross_margin": [1, 0]})
    write_portfolio(P("valid-vlen-utf8.h5"), book=utf8, strings="vlen")
    write_portfolio(P("valid-vlen-ascii.h5"), strings="vlen-ascii")
    write_portfolio(P("valid-fixed.h5"))
    write_portfolio(P("valid-int-as-float.h5"), ints="f8")
    write_portfolio(P("valid-chunked-gzip-vlen.h5"), chunked=True, strings="vlen")
    write_portfolio(P("version2.h5"), version=2)
    # one of each contract violation
    write_portfolio(P("missing-group-positions.h5"), drop=("positions",))
    write_portfolio(P("missing-column-strike.h5"), drop=("instruments/strike",))
    write_portfolio(P("missing-format.h5"), attrs={"format": None, "format_version": None})
    write_portfolio(P("other-format.h5"), attrs={"format": "xmargin.scenarios"})
    write_portfolio(P("bad-date-currency.h5"),
                    attrs={"valuation_date": "2018-02-30", "currency": "A-VERY-LONG-CURRENCY"})
    write_portfolio(P("wrong-type-strings.h5"),
                    mutate=lambda f: (replace(f, "instruments/strike", vlen(["1", "2", "3", "4"]),
                                              dtype=VSTR),
                                      replace(f, "factors/name", np.arange(4, dtype="i4"))))
    write_portfolio(P("wrong-type-compound.h5"),
                    mutate=lambda f: replace(f, "positions/quantity",
                                             np.zeros(5, dtype=[("a", "i4"), ("b", "f8")])))
    write_portfolio(P("unequal-lengths.h5"),
                    mutate=lambda f: replace(f, "instruments/multiplier", np.ones(3)))
    write_portfolio(P("index-out-of-range.h5"),
                    mutate=lambda f: (replace(f, "positions/account",
                                              np.array([0, 0, 1, 7, -1], dtype="i8")),
                                      replace(f, "instruments/underlying",
                                              np.array([0, 1, 2, 2**40], dtype="i8"))))
    write_portfolio(P("bad-values.h5"),
                    mutate=lambda f: (replace(f, "instruments/strike",
                                              np.array([0.0, -1.0, np.nan, np.inf])),
                                      replace(f, "factors/kind", vlen(["price", "vol", "zzz", ""]),
                                              dtype=VSTR),
                                      replace(f, "accounts/id", vlen(["a", "a"]), dtype=VSTR)))
    write_portfolio(P("scalar-and-2d.h5"),
                    mutate=lambda f: (replace(f, "silos/name", "securities", dtype=VSTR),
                                      replace(f, "positions/quantity", np.ones((5, 2)))))
    write_portfolio(P("never-written.h5"),
                    mutate=lambda f: never_written(f, "positions/quantity", 5))
    write_portfolio(P("group-as-dataset.h5"),
                    mutate=lambda f: (f.__delitem__("silos"),
                                      f.create_dataset("silos", data=np.ones(2))))
    write_portfolio(P("empty-tables.h5"),
                    book={g: {c: [] for c in cols} for g, cols in BOOK.items()})
    truncate_copy(P("valid-vlen.h5"), P("truncated.h5"), 4200)


def scenario_seeds(d):
    P = lambda n: os.path.join(d, n)
    write_scenarios(P("valid-h5py-vlen.h5"), style="h5py", strings="vlen")
    write_scenarios(P("valid-h5py-fixed-float32.h5"), style="h5py", strings="fixed", floats="f4")
    write_scenarios(P("valid-latest.h5"), style="latest")
    write_scenarios(P("valid-vlen.h5"), strings="vlen")
    write_scenarios(P("valid-fixed.h5"))
    write_scenarios(P("valid-chunked-gzip-vlen.h5"), chunked=True, strings="vlen")
    write_scenarios(P("valid-history-only.h5"), sets=())
    write_scenarios(P("valid-sets-only.h5"), history=False)
    write_scenarios(P("version2.h5"), version=2)
    write_scenarios(P("missing-history-and-sets.h5"), history=False, sets=())
    write_scenarios(P("missing-format.h5"), attrs={"format": None})
    write_scenarios(P("shape-mismatch.h5"),
                    mutate=lambda f: (replace(f, "history/return", np.zeros((4, 4))),
                                      replace(f, "sets/crises/shock", np.zeros(6))))
    write_scenarios(P("bad-dates.h5"),
                    mutate=lambda f: replace(f, "history/date",
                                             vlen(["2018-12-24", "2018-12-24", "2018-13-01",
                                                   "x", "2019-02-29"]), dtype=VSTR))
    write_scenarios(P("bad-set-attrs.h5"),
                    mutate=lambda f: (f["sets/crises"].attrs.__setitem__("measure", "median"),
                                      f["sets/span"].attrs.__setitem__("confidence", 1.5),
                                      replace(f, "sets/span/weight", np.array([-1.0, np.nan, 1]))))
    write_scenarios(P("reserved-and-odd-set-names.h5"),
                    mutate=lambda f: (f.move("sets/crises", "sets/historical"),
                                      f.create_dataset("sets/not-a-group", data=np.ones(1)),
                                      mkgroup(f, "sets/" + "x" * 80, "latest")))
    write_scenarios(P("wrong-types.h5"),
                    mutate=lambda f: (replace(f, "history/factor", np.arange(4)),
                                      replace(f, "sets/span/label", np.ones(3)),
                                      replace(f, "sets/span/shock",
                                              vlen(["a"] * 6).reshape(3, 2), dtype=VSTR)))
    write_scenarios(P("never-written.h5"),
                    mutate=lambda f: never_written(f, "sets/span/weight", 3))
    write_scenarios(P("weight-as-group.h5"),
                    mutate=lambda f: (f.__delitem__("sets/span/weight"),
                                      mkgroup(f, "sets/span/weight", "latest")))
    truncate_copy(P("valid-vlen.h5"), P("truncated.h5"), 2600)


CONFIG_SEEDS = {
    "minimal.ini": "horizon_days = 5\n",
    "sections.ini": ("[run]\nconfidence = 0.975\nprecision = single\n"
                     "[historical]\nenabled = no\nlookback = 250\nmeasure = var\n"
                     "[montecarlo]\nscenarios = 100\ndistribution = normal\nseed = 18446744073709551615\n"
                     "correlation_stress = 0.5\n[pricing]\nvol_floor = 0\nvol_term_power = 5\n"
                     "[cross_margin]\noffset_cap = 1\n[minimum]\nper_contract = 1e-3\n"),
    "comments-and-blanks.ini": ("; comment\n# another\n\n   horizon_days = 3 ; trailing\n"
                                "\t[montecarlo]\n  dof = 2.5\r\n  enabled : off\n"),
    "bad-unknown-key.ini": "[historical]\nnot_a_key = 1\n",
    "bad-unknown-section.ini": "[nope]\nx = 1\n",
    "bad-range.ini": "horizon_days = 0\nconfidence = 1\n[montecarlo]\ndof = 2\n",
    "bad-syntax.ini": "[historical\nhorizon_days\n= 3\n",
    "bad-types.ini": "horizon_days = 2.5\n[historical]\nenabled = maybe\newma_lambda = nan\n",
    "long-line.ini": "confidence = 0." + "9" * 300 + "\n",
    "set-lines.txt": "montecarlo.seed=7\nrun.confidence=0.95\nhistorical.measure=worst\n"
                     "pricing.vol_floor=-1\nx.y.z=1\n=\n",
}


def config_seeds(d):
    shutil.copyfile(os.path.join(ROOT, "examples", "xmargin.ini"), os.path.join(d, "xmargin.ini"))
    for name, text in CONFIG_SEEDS.items():
        with open(os.path.join(d, name), "w", newline="") as f:
            f.write(text)


def main():
    for sub, fn in (("portfolio", portfolio_seeds), ("scenarios", scenario_seeds),
                    ("config", config_seeds)):
        d = os.path.join(CORPUS, sub)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            os.unlink(os.path.join(d, old))
        fn(d)
    total = 0
    for sub in ("portfolio", "scenarios", "config"):
        d = os.path.join(CORPUS, sub)
        for n in sorted(os.listdir(d)):
            size = os.path.getsize(os.path.join(d, n))
            total += size
            if size > MAX_SEED:
                sys.exit("make_seeds: %s/%s is %d bytes, more than %d" % (sub, n, size, MAX_SEED))
    if total > 1024 * 1024:
        sys.exit("make_seeds: the corpus is %d bytes, more than 1 MB" % total)
    print("make_seeds: %d bytes in %s" % (total, CORPUS))


if __name__ == "__main__":
    main()
