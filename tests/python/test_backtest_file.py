#!/usr/bin/env python3
"""The backtest file (FORMAT.md section 4) that xm_backtest_result_write
makes of a result filled by hand opens in xarray through h5netcdf with named,
labelled dimensions in every group, and holds every dataset and attribute of
the format with its shape and type (h5py).

The file comes from `test_results --write-backtest PATH` (the cmocka test of
host/results.c, built next to the xmargin binary): N = 5 days, A = 3 accounts
(A1 USD, A2 EUR, A3 USD), G = 2 silos, K = 2 sets, --save-scenarios (the
historical set up to 3 scenarios a day, the Monte Carlo one 4, with its
jitter per day)."""
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
report = T.check

N, A, G, K, F = 5, 3, 2, 2, 2
S = {"historical": 3, "montecarlo": 4}
DAYS = ["2024-01-%02d" % (j + 1) for j in range(N)]
ACCOUNTS = ["A1", "A2", "A3"]
SILOS = ["securities", "futures"]
SETS = ["historical", "montecarlo"]
MARGINS = ["unified", "cross_margined", "siloed", "requirement"]
STAT_INT = ["exceptions_all", "exceptions"]
STAT_F64 = ["observed_coverage", "kupiec_lr", "kupiec_p", "christoffersen_lr", "cc_lr", "cc_p"]
APC = ["peak_to_trough", "max_increase"]
ROOT_ATTRS = ["format", "format_version", "software_version", "created_utc", "valuation_date",
              "reporting_currency", "portfolio", "scenarios", "portfolio_sha256",
              "scenarios_sha256", "config", "device", "precision", "seed", "elapsed_s",
              "backtest_days", "test_days", "target_coverage", "apc_window"]


def expected():
    """{path: (shape, kind)} of every dataset FORMAT.md section 4 names; kind
    'f' float64, 'i' integer, 'S' string; 'm' float64 money (units, long_name)."""
    e = {"day": ((N,), "S"), "account": ((A,), "S"), "silo": ((G,), "S"), "set": ((K,), "S"),
         "realised_end": ((N,), "S")}
    for k in ["realised"] + MARGINS:
        e["series/" + k] = ((N, A), "m")
    for k in ("realised_by_silo", "silo_margin"):
        e["series/" + k] = ((N, A, G), "m")
    e["series/binding_set"] = ((N, A), "i")
    e["series/test_day"] = ((N,), "i")
    for k in ["realised"] + MARGINS:
        e["series/total_" + k] = ((N,), "m")
    for group, shape in [(m, (A,)) for m in MARGINS] + [("silo", (A, G))] + \
                        [("total/" + m, ()) for m in MARGINS]:
        apc = group in ("requirement", "silo", "total/requirement")
        for k in STAT_INT:
            e["stats/%s/%s" % (group, k)] = (shape, "i")
        for k in STAT_F64 + (APC if apc else []):
            e["stats/%s/%s" % (group, k)] = (shape, "f")
        e["stats/%s/zone" % group] = (shape, "S")
    for s in SETS:
        e["scenarios/%s/shock" % s] = ((N, S[s], F), "f")
        e["scenarios/%s/factor" % s] = ((F,), "S")
    e["scenarios/montecarlo/delta"] = ((N,), "f")
    return e


def check_h5py(path):
    with h5py.File(path, "r") as f:
        missing = [a for a in ROOT_ATTRS if a not in f.attrs]
        report("every root attribute", not missing, missing)
        at = {k: (tl.attr_str(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
        report("root: format, version, days, coverage, window",
               at.get("format") == "xmargin.backtest" and int(at.get("format_version")) == 2
               and int(at.get("backtest_days")) == N and int(at.get("test_days")) == 3
               and float(at.get("target_coverage")) == 0.975 and int(at.get("apc_window")) == 3
               and at.get("valuation_date") == "2024-06-28" and int(at.get("seed")) == 42
               and at.get("reporting_currency") == "USD",
               {k: at.get(k) for k in ROOT_ATTRS if k != "config"})
        bad = []
        for p, (shape, kind) in expected().items():
            if p not in f:
                bad.append((p, "missing"))
                continue
            d = f[p]
            dt = d.dtype
            ok_kind = {"f": dt == np.float64, "m": dt == np.float64, "i": dt.kind == "i",
                       "S": h5py.check_string_dtype(dt) is not None
                       and h5py.check_string_dtype(dt).encoding == "utf-8"}[kind]
            if d.shape != shape or not ok_kind:
                bad.append((p, d.shape, str(dt)))
            if kind == "m" and not (tl.attr_str(d.attrs.get("units", "")) and
                                    tl.attr_str(d.attrs.get("long_name", ""))):
                bad.append((p, "units/long_name", dict(d.attrs)))
        report("every dataset of FORMAT.md section 4 with its shape and type (%d)"
               % len(expected()), not bad, bad)
        no_apc = [("stats/%s/%s" % (g, k)) for g in
                  ("unified", "cross_margined", "siloed", "total/unified", "total/siloed")
                  for k in APC if "stats/%s/%s" % (g, k) in f]
        report("procyclicality only for requirement and silo", not no_apc, no_apc)
        report("no total of silo", "stats/total/silo" not in f)
        units = {p: tl.attr_str(f[p].attrs["units"]) for p, (_, k) in expected().items()
                 if k == "m"}
        report("units: 'account currency' per account (USD, EUR, USD), USD for the totals",
               all(u == ("USD" if "/total_" in p else "account currency")
                   for p, u in units.items()), units)
        b = f["series/binding_set"]
        report("binding_set: CF flags naming the sets",
               list(b.attrs["flag_values"]) == [0, 1]
               and tl.attr_str(b.attrs["flag_meanings"]) == "historical montecarlo",
               dict(b.attrs))
        report("test_day: 1 on d = T-h, T-h-2, T-h-4",
               f["series/test_day"][:].tolist() == [1, 0, 1, 0, 1], f["series/test_day"][:])
        report("zone strings ('' for a silo with nothing in it)",
               tl.strings(f["stats/silo/zone"]) == ["green", "yellow", "yellow", "", "red",
                                                    "green"]
               and tl.strings(f["stats/requirement/zone"]) == ["green", "yellow", "red"],
               tl.strings(f["stats/silo/zone"]))
        kp = f["stats/silo/kupiec_p"][:]
        report("a silo without statistics: counts 0, NaN",
               np.isnan(kp[1, 1]) and int(f["stats/silo/exceptions_all"][1, 1]) == 0, kp)
        sh = f["scenarios/historical/shock"][:]
        report("saved shocks: a day's rows past its size are NaN",
               np.isnan(sh[0, 1:]).all() and not np.isnan(sh[2]).any(), sh[0])
        re_ = tl.strings(f["realised_end"])
        report("realised_end: the date of d + h", re_ == ["2024-01-%02d" % (j + 3)
                                                          for j in range(N)], re_)


def check_xarray(path):
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf", group="series") as s:
        report("series: coordinates day, account, silo with their labels",
               [str(x) for x in s["day"].values] == DAYS
               and [str(x) for x in s["account"].values] == ACCOUNTS
               and [str(x) for x in s["silo"].values] == SILOS,
               (list(s.coords), s["day"].values, s["account"].values))
        dims = {k: s[k].dims for k in s.data_vars}
        want = {k: ("day", "account") for k in ["realised", "binding_set"] + MARGINS}
        want.update({k: ("day", "account", "silo") for k in ("realised_by_silo", "silo_margin")})
        want.update({"total_" + k: ("day",) for k in ["realised"] + MARGINS})
        want["test_day"] = ("day",)
        report("series: the dimensions of every variable",
               all(dims.get(k) == v for k, v in want.items()), dims)
        v = float(s["cross_margined"].sel(day="2024-01-04", account="A2"))
        report("select by day and account id", v == 200.0 + 30.0 + 1.0, v)
        v = float(s["silo_margin"].sel(day="2024-01-05", account="A3", silo="futures"))
        report("select by day, account and silo", v == 20.0 + 4 + 1.0, v)
        report("series: units and long_name as attributes",
               s["requirement"].attrs.get("units") == "account currency"
               and s["total_requirement"].attrs.get("units") == "USD"
               and bool(s["requirement"].attrs.get("long_name")), dict(s["requirement"].attrs))
    for m in MARGINS + ["silo"]:
        with xr.open_dataset(path, engine="h5netcdf", group="stats/" + m) as st:
            want = ("account", "silo") if m == "silo" else ("account",)
            report("stats/%s: along %s, labelled" % (m, ", ".join(want)),
                   st["exceptions"].dims == want and st["zone"].dims == want
                   and [str(x) for x in st["account"].values] == ACCOUNTS, st["exceptions"].dims)
    with xr.open_dataset(path, engine="h5netcdf", group="stats/requirement") as st:
        v = float(st["peak_to_trough"].sel(account="A3"))
        report("stats/requirement: peak_to_trough of A3", v == 3.5, v)
    with xr.open_dataset(path, engine="h5netcdf", group="stats/total/requirement") as st:
        report("stats/total/requirement: scalars",
               st["kupiec_p"].dims == () and float(st["max_increase"]) == 0.375
               and str(st["zone"].values) == "red", dict(st.sizes))
    with xr.open_dataset(path, engine="h5netcdf", group="scenarios/montecarlo") as sc:
        report("scenarios/montecarlo: shock along (day, scenario, factor), delta along day",
               sc["shock"].dims == ("day", "scenario", "factor") and sc["delta"].dims == ("day",)
               and [str(x) for x in sc["factor"].values] == ["SPX", "SPX.iv"],
               (sc["shock"].dims, sc["delta"].dims))
    with xr.open_dataset(path, engine="h5netcdf") as root:
        report("root: /day labels /realised_end",
               root["realised_end"].dims == ("day",)
               and [str(x) for x in root["set"].values] == SETS, root["realised_end"].dims)


def main():
    with tempfile.TemporaryDirectory(prefix="xm_bt_file.") as tmp:
        path = os.path.join(tmp, "backtest.h5")
        if tl.write_sample(T, "test_results", "--write-backtest", path):
            T.run(check_h5py, path)
            T.run(check_xarray, path)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
