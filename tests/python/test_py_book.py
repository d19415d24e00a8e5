"""Books from pandas and from CSV (issue 16, item 2): Book.from_frames ->
to_hdf5 -> Book.read round trips every column; the blanks and dates become
what the format expects; `xmargin import` on the same tables as CSV files
writes the same file; bad names, NaN where a value is required and type rules
give their messages (the binding's own for names, the library's for the
contract, as `xmargin validate` prints them)."""

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

xm = H.setup()
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

T = H.T
t = T.Tally()
VD = "2024-06-28"


def same_tables(name, a, b):
    bad = []
    if sorted(a) != sorted(b):
        bad.append(("tables", sorted(a), sorted(b)))
    for tb in sorted(set(a) & set(b)):
        if sorted(a[tb]) != sorted(b[tb]):
            bad.append((tb, sorted(a[tb]), sorted(b[tb])))
            continue
        for c in a[tb]:
            x, y = a[tb][c], b[tb][c]
            if isinstance(x, list) or isinstance(y, list):
                eq = list(x) == list(y)
            else:
                eq = x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)
            if not eq:
                bad.append((tb, c, x, y))
    return t.check(name, not bad, bad[:3])


def write_csvs(tmp, fr, sub):
    d = os.path.join(tmp, sub)
    os.makedirs(d, exist_ok=True)
    paths = {}
    for k, v in fr.items():
        paths[k] = os.path.join(d, k + ".csv")
        v.to_csv(paths[k], index=False)
    return paths


def cli_import(paths, out, extra=()):
    args = ["import", "--factors", paths["factors"], "--instruments", paths["instruments"],
            "--accounts", paths["accounts"], "--positions", paths["positions"], "--valuation-date", VD, "-o", out]
    for k in ("collateral", "fx", "silos"):
        if k in paths:
            args += ["--" + k, paths[k]]
    return T.run_xm(args + list(extra))


def same_files(name, p, q):
    """Every dataset and root attribute of two HDF5 files equal."""
    bad = []
    with h5py.File(p, "r") as f, h5py.File(q, "r") as g:
        for k in set(f.attrs) | set(g.attrs):
            if k not in f.attrs or k not in g.attrs or T.attr_str(f.attrs[k]) != T.attr_str(g.attrs[k]):
                bad.append(("attr", k))
        names, other = [], []
        f.visit(names.append)
        g.visit(other.append)
        if sorted(names) != sorted(other):
            bad.append(("objects", sorted(set(names) ^ set(other))))
        for n in names:
            if isinstance(f[n], h5py.Dataset) and n in g:
                x, y = f[n][()], g[n][()]
                if x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                    bad.append((n, x[:4], y[:4]))
    return t.check(name + " (%d objects)" % len(names), not bad, bad[:4])


def test_round_trip(tmp):
    fr = H.frames_book()
    book = xm.Book.from_frames(**fr, valuation_date=VD)
    t.check("from_frames: the book validates", book.validate() == [])
    ins = book.tables["instruments"]
    i = {n: k for k, n in enumerate(ins["id"])}
    t.check("names became rows: underlying, vol_factor, silo",
            ins["underlying"][i["ES.C4500"]] == 2 and ins["vol_factor"][i["ES.C4500"]] == 1 and
            ins["silo"][i["BTC.perp"]] == 2 and book.tables["silos"]["name"] == ["securities", "futures", "crypto"])
    t.check("a blank vol_factor is -1; blank strike, expiry, call, implied_vol, rate on a spot / future are 0",
            ins["vol_factor"][i["SPX.spot"]] == -1 and
            all(ins[c][i[x]] == 0 for c in ("strike", "expiry", "call", "implied_vol", "rate")
                for x in ("SPX.spot", "ES.fut", "BTC.perp")))
    t.check("a blank dividend_yield on a type without carry (future_option) is 0",
            ins["dividend_yield"][i["ES.C4500"]] == 0.0 and ins["dividend_yield"][i["SPX.C4600"]] == 0.013)
    t.check("an expiry date is ACT/365 from the valuation date (84 days)",
            ins["expiry"][i["SPX.C4600"]] == 84 / 365.0 and ins["expiry"][i["SPX.P4300"]] == 0.5,
            ins["expiry"][:3])
    f2 = {k: v.copy() for k, v in fr.items()}
    for v in (pd.Timestamp("2024-09-20"), datetime.date(2024, 9, 20), datetime.datetime(2024, 9, 20),
              np.datetime64("2024-09-20")):
        e = f2["instruments"]["expiry"].astype(object)
        e[1] = v
        f2["instruments"]["expiry"] = e
        b2 = xm.Book.from_frames(**f2, valuation_date=datetime.date(2024, 6, 28))
        if not t.check("an expiry given as %s is the same year fraction" % type(v).__name__,
                       b2.tables["instruments"]["expiry"][1] == 84 / 365.0):
            break
    acc = book.tables["accounts"]
    t.check("a blank currency is the reporting one", acc["currency"][0] == "USD" and acc["currency"][-1] == "BTC")
    col = book.tables["collateral"]
    t.check("blank collateral factor (cash) and silo are -1",
            list(col["factor"]) == [-1, 0, 3, -1] and list(col["silo"]) == [-1, 0, 2, -1])
    t.check("a factor's blank half_spread is 0; absent version-2 columns stay absent",
            book.tables["factors"]["half_spread"][1] == 0.0 and "impact" not in book.tables["factors"])
    path = os.path.join(tmp, "book.h5")
    book.to_hdf5(path)
    back = xm.Book.read(path)
    same_tables("from_frames -> to_hdf5 -> Book.read: every column of every table", book.tables, back.tables)
    t.check("valuation date and currency kept", (back.valuation_date, back.currency) == (VD, "USD"))
    again = xm.Book.from_frames(**back.to_frames(), valuation_date=VD)
    same_tables("Book.read -> to_frames -> from_frames: the same tables", back.tables, again.tables)
    # the demo book: read -> to_frames -> from_frames -> to_hdf5 -> read
    demo = xm.Book.read(H.DEMO_P)
    fr_demo = demo.to_frames()
    d2 = xm.Book.from_frames(**{k: v for k, v in fr_demo.items() if k != "silos"}, silos=fr_demo["silos"],
                             valuation_date=demo.valuation_date, currency=demo.currency)
    same_tables("the demo book through to_frames / from_frames", demo.tables, d2.tables)
    try:
        back.to_hdf5(path)
        t.check("to_hdf5 over the book's own file is refused", False)
    except xm.Error as e:
        t.check("to_hdf5 over the book's own file is refused", "input" in str(e), str(e))


def test_import_equal(tmp):
    fr = H.frames_book()
    paths = write_csvs(tmp, fr, "csv")
    py = os.path.join(tmp, "py.h5")
    xm.Book.from_frames(**fr, valuation_date=VD).to_hdf5(py)
    cli = os.path.join(tmp, "cli.h5")
    rc, out, err, _ = cli_import(paths, cli)
    if not t.check("xmargin import of the same tables as CSV", rc == 0, err):
        return
    same_files("xmargin import == from_frames -> to_hdf5: every dataset and attribute", cli, py)
    # the CSVs read back by pandas (types inferred) give the same book
    rd = {k: pd.read_csv(p) for k, p in paths.items()}
    py2 = os.path.join(tmp, "py2.h5")
    xm.Book.from_frames(**rd, valuation_date=VD).to_hdf5(py2)
    same_files("pd.read_csv of the CSVs -> from_frames == xmargin import", cli, py2)
    # RFC 4180 quoting: ids with a comma and a quote, CRLF line ends
    q = {k: v.copy() for k, v in fr.items()}
    ren = {"A00": 'A,"00"'}
    q["accounts"]["id"] = q["accounts"]["id"].replace(ren)
    q["positions"]["account"] = q["positions"]["account"].replace(ren)
    q["collateral"]["account"] = q["collateral"]["account"].replace(ren)
    qp = write_csvs(tmp, q, "quoted")
    with open(qp["accounts"], "rb") as f:
        raw = f.read()
    with open(qp["accounts"], "wb") as f:
        f.write(raw.replace(b"\n", b"\r\n"))
    c2, p2 = os.path.join(tmp, "cli-q.h5"), os.path.join(tmp, "py-q.h5")
    rc, _, err, _ = cli_import(qp, c2)
    xm.Book.from_frames(**q, valuation_date=VD).to_hdf5(p2)
    if t.check("import of quoted fields (comma, doubled quote) and CRLF", rc == 0, err):
        same_files("quoted ids: import == from_frames", c2, p2)
        t.check("the quoted id is read as written", xm.Book.read(c2).tables["accounts"]["id"][0] == 'A,"00"')
    # the template book of examples/import/
    ex = os.path.join(H.SOURCE_DIR, "examples", "import")
    tp = {k: os.path.join(ex, k + ".csv") for k in ("factors", "instruments", "accounts", "positions",
                                                    "collateral", "fx")}
    c3 = os.path.join(tmp, "template.h5")
    rc, out, err, _ = cli_import(tp, c3)
    t.check("examples/import/ imports and validates", rc == 0 and xm.validate(c3) == "xmargin.portfolio", err)
    tf = {k: pd.read_csv(p) for k, p in tp.items()}
    p3 = os.path.join(tmp, "template-py.h5")
    xm.Book.from_frames(**tf, valuation_date=VD).to_hdf5(p3)
    same_files("examples/import/ through pandas == through xmargin import", c3, p3)
    # the demo book (every type, 2,276 positions) through CSV files and back
    demo = xm.Book.read(H.DEMO_P)
    dp = write_csvs(tmp, demo.to_frames(), "demo")
    c4 = os.path.join(tmp, "demo.h5")
    args = ["import", "--factors", dp["factors"], "--instruments", dp["instruments"], "--accounts", dp["accounts"],
            "--positions", dp["positions"], "--collateral", dp["collateral"], "--fx", dp["fx"],
            "--silos", dp["silos"], "--valuation-date", demo.valuation_date, "-q", "-o", c4]
    rc, _, err, _ = T.run_xm(args)
    if t.check("the demo book as CSV files imports", rc == 0, err[-1500:]):
        same_tables("the demo book: to_frames -> CSV -> xmargin import -> Book.read: every column",
                    demo.tables, xm.Book.read(c4).tables)
    sp = os.path.join(tmp, "s.h5")
    H.frames_scenarios(sp)
    a = xm.run(cli, sp, device="cpu", montecarlo__scenarios=500)
    b = xm.run(xm.Book.from_frames(**fr, valuation_date=VD), sp, device="cpu", montecarlo__scenarios=500)
    t.check("the imported file and the in-memory book give the same requirements",
            np.array_equal(a.requirement.values, b.requirement.values) and np.all(a.requirement.values > 0))


def expect_frames_error(name, fr, needles):
    try:
        xm.Book.from_frames(**fr, valuation_date=VD)
        return t.check(name, False, "no error")
    except xm.FormatError as e:
        return t.check(name, all(any(n in m for m in e.messages) for n in needles), e.messages)


def test_errors(tmp):
    fr = H.frames_book()
    # a bad name: the binding's message names frame, row and column; the CLI's file, row, column
    b = {k: v.copy() for k, v in fr.items()}
    b["instruments"].loc[3, "underlying"] = "ESX"
    expect_frames_error("an unknown factor name: frame, row, column, value",
                        b, ["instruments frame: row 3, column 'underlying' = 'ESX': unknown name"])
    paths = write_csvs(tmp, b, "badname")
    rc, _, err, _ = cli_import(paths, os.path.join(tmp, "x.h5"))
    t.check("xmargin import: exit 2, file, row, line, column and value of the unknown name",
            rc == 2 and "instruments.csv: row 3 (line 5), column 'underlying' = 'ESX': unknown name" in err and
            not os.path.exists(os.path.join(tmp, "x.h5")), err)
    b = {k: v.copy() for k, v in fr.items()}
    b["positions"].loc[5, "instrument"] = "nope"
    b["instruments"].loc[2, "type"] = "opton"
    expect_frames_error("an unknown instrument id and type, both reported",
                        b, ["positions frame: row 5, column 'instrument' = 'nope'",
                            "instruments frame: row 2, column 'type' = 'opton': unknown instrument type"])
    b = {k: v.copy() for k, v in fr.items()}
    b["instruments"].loc[1, "call"] = np.nan
    expect_frames_error("a blank call on an option", b, ["row 1, column 'call': blank: an option ('option')"])
    b = {k: v.copy() for k, v in fr.items()}
    del b["positions"]["quantity"]
    expect_frames_error("a missing required column", b, ["positions frame: column 'quantity': column is missing"])
    b = {k: v.copy() for k, v in fr.items()}
    b["accounts"]["cross_margin"] = b["accounts"]["cross_margin"].astype(object)
    b["accounts"].loc[2, "cross_margin"] = "yes"
    b["accounts"].loc[3, "cross_margin"] = 0.5
    expect_frames_error("cross_margin that is no whole number", b,
                        ["accounts frame: row 2, column 'cross_margin' = 'yes': not a number",
                         "accounts frame: row 3, column 'cross_margin' = 0.5: not a whole number"])
    try:
        xm.Book.from_frames(**fr, valuation_date="2024-13-01")
        t.check("a bad valuation date raises", False)
    except xm.FormatError as e:
        t.check("a bad valuation date raises FormatError", "2024-13-01" in str(e), str(e))

    # the contract's rules: the library's messages, as xmargin validate prints them for the file
    cases = [("a NaN strike on an option (a value is required)", ("instruments", 1, "strike", np.nan),
              "/instruments/strike[1]"),
             ("a negative strike", ("instruments", 2, "strike", -5.0), "/instruments/strike[2] = -5"),
             ("funding_rate on a future (a type rule)", ("instruments", 3, "funding_rate", 0.02),
              "/instruments/funding_rate[3] = 0.02"),
             ("an inverse type settled in the reporting currency", ("instruments", 6, "currency", "USD"),
              "/instruments/currency[6] = 'USD'"),
             ("a NaN quantity", ("positions", 4, "quantity", np.nan), "/positions/quantity[4]"),
             ("a haircut above 1", ("factors", 0, "haircut", 1.5), "/factors/haircut[0] = 1.5"),
             ("an expiry date before the valuation date", ("instruments", 1, "expiry", "2024-01-02"),
              "/instruments/expiry[1] = -0.48"),
             ("a call that is neither 1 nor 0", ("instruments", 2, "call", 2), "/instruments/call[2] = 2")]
    for name, (tb, row, col, val), needle in cases:
        b = {k: v.copy() for k, v in fr.items()}
        if b[tb][col].dtype != object and isinstance(val, str):
            b[tb][col] = b[tb][col].astype(object)
        b[tb].loc[row, col] = val
        book = xm.Book.from_frames(**b, valuation_date=VD)
        msgs = book.validate(raise_error=False)
        try:
            book.validate()
            raised = None
        except xm.FormatError as e:
            raised = e
        path = os.path.join(tmp, "bad.h5")
        book.to_hdf5(path, validate=False)
        rc, _, err, _ = T.run_xm(["validate", path])
        cli = [ln for ln in err.splitlines() if ln.startswith(path + ": /")]
        mine = [m.replace("portfolio: ", path + ": ", 1) for m in msgs]
        t.check("%s: Book.validate has xmargin validate's messages" % name,
                rc == 2 and raised is not None and cli and mine == cli and any(needle in m for m in msgs),
                (msgs, cli))
        paths = write_csvs(tmp, b, "bad")
        out = os.path.join(tmp, "bad-import.h5")
        rc, _, err, _ = cli_import(paths, out)
        t.check("%s: xmargin import exits 2 with Book.validate's messages" % name,
                rc == 2 and all(m in err.splitlines() for m in msgs) and not os.path.exists(out), err)

    # CSV syntax and usage
    d = os.path.join(tmp, "syntax")
    os.makedirs(d, exist_ok=True)
    paths = write_csvs(tmp, fr, "syntax")
    with open(paths["positions"], "a") as f:
        f.write('A01,"SPX.spot,3\n')
    rc, _, err, _ = cli_import(paths, os.path.join(d, "x.h5"))
    t.check("an unclosed quote: exit 2 naming file and line", rc == 2 and "positions.csv: line 26" in err and
            "not closed" in err, err)
    paths = write_csvs(tmp, fr, "syntax")
    with open(paths["positions"], "a") as f:
        f.write("A01,SPX.spot\n")
    rc, _, err, _ = cli_import(paths, os.path.join(d, "x.h5"))
    t.check("a short row: exit 2 naming file, line and field counts",
            rc == 2 and "line 26: 2 fields, the header has 3" in err, err)
    paths = write_csvs(tmp, fr, "syntax")
    with open(paths["positions"], "a") as f:
        f.write("A01,SPX.spot,lots\n")
    rc, _, err, _ = cli_import(paths, os.path.join(d, "x.h5"))
    t.check("text in a number column: exit 2 naming row, column and value",
            rc == 2 and "row 24 (line 26), column 'quantity' = 'lots': not a number" in err, err)
    paths = write_csvs(tmp, fr, "syntax")
    rc, _, err, _ = T.run_xm(["import", "--factors", paths["factors"], "--instruments", paths["instruments"],
                              "--accounts", paths["accounts"], "--positions", paths["positions"], "-o",
                              os.path.join(d, "x.h5")])
    t.check("no --valuation-date: exit 2", rc == 2 and "--valuation-date" in err, err)
    rc, _, err, _ = cli_import(paths, paths["factors"])
    t.check("an output over an input CSV: exit 2", rc == 2 and "input" in err, err)
    paths = write_csvs(tmp, fr, "syntax")
    rc, _, err, _ = cli_import(dict(paths, fx=d), os.path.join(d, "x.h5"))
    t.check("a folder as a CSV file: exit 2, not read", rc == 2 and "not a regular file" in err, err)
    with open(paths["accounts"], "rb") as f:
        raw = f.read()
    with open(paths["accounts"], "wb") as f:
        f.write(b"\xef\xbb\xbf" + raw + b"\n\n")
    good = os.path.join(d, "bom.h5")
    rc, _, err, _ = cli_import(paths, good)
    ref = os.path.join(d, "ref.h5")
    xm.Book.from_frames(**fr, valuation_date=VD).to_hdf5(ref)
    if t.check("a UTF-8 byte-order mark and blank lines at the end are read", rc == 0, err):
        same_files("a byte-order mark changes nothing", good, ref)
    with open(paths["accounts"], "wb") as f:
        f.write(raw.replace(b"id,cross_margin,currency", b"id,cross_margin,id", 1))
    rc, _, err, _ = cli_import(paths, os.path.join(d, "x.h5"))
    t.check("a column twice in the header: exit 2", rc == 2 and "column 'id' appears twice" in err, err)
    rc, out, _, _ = T.run_xm(["import", "--help"])
    t.check("xmargin import --help", rc == 0 and "usage: xmargin import" in out)
    rc, out, _, _ = T.run_xm(["--help"])
    t.check("xmargin --help lists import", rc == 0 and "import" in out)



if __name__ == "__main__":
    with T.TmpDir() as tmp:
        t.run(test_round_trip, tmp)
        t.run(test_import_equal, tmp)
        t.run(test_errors, tmp)
    t.finish()
