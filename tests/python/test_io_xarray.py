#!/usr/bin/env python3
"""A results file written by io/ (xm_results_write) opens in xarray through
h5netcdf with named dimensions, and one account's P&L column reads with h5py.

The sample file comes from `test_io --write-results PATH` (the cmocka test
binary of io/, built next to the xmargin binary: dirname($XMARGIN)/tests/)."""
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
report = T.check


# FORMAT.md section 3, version 2: money datasets of /margin (the last five only
# with /collateral), and those along (account, silo)
V2_MONEY = ("liquidity", "liquidity_by_silo", "requirement_by_silo", "hedge_credit",
            "collateral_value", "collateral", "excess", "call", "call_siloed")
V2_BY_SILO = ("liquidity_by_silo", "requirement_by_silo")


def check(path):
    import xarray as xr

    # /margin through h5netcdf: the dimension `account` by name
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", group="margin")
    except Exception as e:  # noqa: BLE001 -- report any failure
        report("xarray opens group margin with h5netcdf", False, repr(e))
        return
    with ds:
        report("xarray opens group margin with h5netcdf", True)
        report("requirement has dimension 'account'", ds["requirement"].dims == ("account",),
               ds["requirement"].dims)
        report("by_set has dimensions (account, set)", ds["by_set"].dims == ("account", "set"),
               ds["by_set"].dims)
        report("by_silo/attribution have dimensions (account, silo)",
               ds["by_silo"].dims == ("account", "silo")
               and ds["attribution"].dims == ("account", "silo"),
               (ds["by_silo"].dims, ds["attribution"].dims))
        report("dimension sizes", dict(ds.sizes) == {"account": 3, "set": 2, "silo": 2},
               dict(ds.sizes))
        req = ds["requirement"].values
        report("requirement values", np.array_equal(req, [100.0, 200.0, 300.0]), req)
        report("binding_set is int", ds["binding_set"].dtype.kind == "i", ds["binding_set"].dtype)
        cur = [str(c) for c in ds["currency"].values]
        report("currency has dimension 'account', the accounts' currencies",
               ds["currency"].dims == ("account",) and cur == ["USD", "USD", "USD"],
               (ds["currency"].dims, cur))
        money = ("requirement", "unified", "siloed", "diversification", "minimum", "by_set",
                 "by_silo", "attribution") + V2_MONEY
        missing = [k for k in money + ("minimum_binds",) if k not in ds]
        report("version-2 datasets present", not missing, missing)
        if missing:
            return
        bad = [(k, ds[k].attrs.get("units"), ds[k].attrs.get("long_name")) for k in money
               if ds[k].attrs.get("units") != "USD" or not ds[k].attrs.get("long_name")]
        report("every money dataset has units = USD and a long_name", not bad, bad)
        dims = {k: ds[k].dims for k in V2_MONEY + ("minimum_binds",)}
        want = {k: ("account", "silo") if k in V2_BY_SILO else ("account",) for k in dims}
        report("version-2 datasets along account (and silo)", dims == want, dims)
        report("minimum_binds is int 0/1 with CF flags",
               ds["minimum_binds"].dtype.kind == "i"
               and ds["minimum_binds"].values.tolist() == [0, 1, 0]
               and list(ds["minimum_binds"].attrs.get("flag_values")) == [0, 1]
               and ds["minimum_binds"].attrs.get("flag_meanings") == "risk_measure minimum",
               (ds["minimum_binds"].values, dict(ds["minimum_binds"].attrs)))
        report("binding_set's flags name the sets",
               list(ds["binding_set"].attrs.get("flag_values")) == [0, 1]
               and ds["binding_set"].attrs.get("flag_meanings") == "historical crises",
               dict(ds["binding_set"].attrs))
        v = {k: ds[k].values.tolist() for k in ("liquidity", "call", "call_siloed")}
        report("version-2 values (as test_io.c writes them)",
               v == {"liquidity": [4, 0, 10], "call": [0, 200, 100],
                     "call_siloed": [10, 200, 130]}, v)
        lq = ds["liquidity_by_silo"].values.tolist()
        report("liquidity_by_silo [account x silo]", lq == [[3, 2], [0, 0], [6, 5]], lq)

    # the root: the coordinate values (account ids, sets, silos) and attributes
    with xr.open_dataset(path, engine="h5netcdf") as root:
        acc = [str(a) for a in root["account"].values]
        report("account ids", acc == ["A1", "A2", "A3"], acc)
        sets = [str(a) for a in root["set"].values]
        report("set names in run order", sets == ["historical", "crises"], sets)
        report("root attributes", root.attrs.get("format") == "xmargin.results"
               and int(root.attrs.get("format_version")) == 2
               and root.attrs.get("reporting_currency") == "USD"
               and int(root.attrs.get("seed")) == 42, dict(root.attrs))
        # margin with its coordinates, the way a notebook joins them
        with xr.open_dataset(path, engine="h5netcdf", group="margin") as m:
            m = m.assign_coords(account=root["account"].values, set=root["set"].values)
            v = float(m["by_set"].sel(account="A2", set="crises"))
            report("select by account id and set name", v == 100.0, v)

    # /pnl/<set>: one account's column with h5py
    with h5py.File(path, "r") as f:
        d = f["pnl/historical"]
        report("pnl is float32 [S x A]", d.dtype == np.float32 and d.shape == (4, 3),
               (d.dtype, d.shape))
        report("pnl chunked and deflate+shuffle compressed",
               d.chunks is not None and d.compression == "gzip" and d.shuffle, (d.chunks,
                                                                                  d.compression))
        report("pnl has units and a long_name", tl.attr_str(d.attrs.get("units", "")) == "USD"
               and tl.attr_str(d.attrs.get("long_name", "")) != "", dict(d.attrs))
        col = d[:, 1]
        report("one account's column", np.array_equal(col, [2, 5, 8, 11]), col)
        report("scenario labels", [s.decode() if isinstance(s, bytes) else s
                                   for s in f["scenarios/historical/label"][:]]
               == ["2024-06-25", "2024-06-26", "2024-06-27", "2024-06-28"])
        report("saved scenarios: shock and factor",
               f["scenarios/crises/shock"].shape == (2, 2)
               and "factor" in f["scenarios/crises"] and "pnl" in f
               and "crises" not in f["pnl"])
        lab = f["account"]
        report("account is a string dimension scale",
               h5py.check_string_dtype(lab.dtype) is not None
               and h5py.check_string_dtype(lab.dtype).encoding == "utf-8"
               and lab.attrs.get("CLASS") == b"DIMENSION_SCALE")


def check_run(tmp):
    """`xmargin run` on a small single-currency book (reporting currency EUR,
    the accounts' currency column naming it): /margin/currency, the root's
    reporting_currency and the units of the money datasets. The case of
    accounts in different currencies is test_io.c's test_results_currency
    (the writer directly)."""
    book = os.path.join(tmp, "book.h5")
    scen = os.path.join(tmp, "scen.h5")
    out = os.path.join(tmp, "run.h5")
    tl.write_portfolio(book, [("SPX", "price", 4500.0), ("SPX.iv", "vol", 0.2)], ["securities"],
                       [dict(id="SPX", type="spot", silo=0, underlying=0),
                        dict(id="SPX.C", type="option", silo=0, underlying=0, vol_factor=1,
                             strike=4500, expiry=0.5, call=1, implied_vol=0.2, multiplier=100)],
                       [("A1", 1, "EUR"), ("A2", 0, "EUR")], [(0, 0, 10), (0, 1, -1), (1, 1, 2)],
                       currency="EUR")
    tl.write_scenarios(scen, sets={"grid": dict(factor=["SPX", "SPX.iv"],
                                                         shock=[[-0.1, 0.05], [0.1, -0.02]])})
    rc, o, e, _ = tl.margin_run(book, scen, out, sets=["historical.enabled=false",
                                                       "montecarlo.enabled=false"],
                                extra=["--save-pnl"])
    if not report("xmargin run on a single-currency book", rc == 0, "rc=%d %s%s" % (rc, o, e)):
        return
    with h5py.File(out, "r") as f:
        report("run: format_version 2, reporting_currency EUR",
               int(f.attrs["format_version"]) == 2
               and tl.attr_str(f.attrs.get("reporting_currency", "")) == "EUR",
               (f.attrs.get("format_version"), f.attrs.get("reporting_currency")))
        report("run: /margin/currency", tl.strings(f["margin/currency"]) == ["EUR", "EUR"],
               tl.strings(f["margin/currency"]))
        money = ["margin/" + k for k in ("requirement", "unified", "siloed", "diversification",
                                         "minimum", "by_set", "by_silo", "attribution")
                 + V2_MONEY[:4]]
        money += ["pnl/" + k for k in f["pnl"]  # the losses, not their dimension scales
                  if tl.attr_str(f["pnl"][k].attrs.get("CLASS", "")) != "DIMENSION_SCALE"]
        missing = [k for k in money + ["margin/minimum_binds"] if k not in f]
        report("run: the version-2 datasets of a book without /collateral", not missing, missing)
        money = [k for k in money if k in f]
        units = {k: tl.attr_str(f[k].attrs.get("units", "")) for k in money}
        report("run: units = EUR on every money dataset",
               all(u == "EUR" for u in units.values()) and len(money) == 13, units)
        coll = [k for k in V2_MONEY[4:] if "margin/" + k in f]
        report("run: no collateral datasets without /collateral", not coll, coll)
    import xarray as xr
    with xr.open_dataset(out, engine="h5netcdf", group="margin") as m:
        report("run: xarray sees margin/currency along account",
               m["currency"].dims == ("account",) and m["requirement"].attrs.get("units") == "EUR",
               m["currency"].dims)


def main():
    with tempfile.TemporaryDirectory(prefix="xm_io_xarray.") as tmp:
        path = os.path.join(tmp, "results.h5")
        if tl.write_sample(T, "test_io", "--write-results", path):
            check(path)
        check_run(tmp)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
