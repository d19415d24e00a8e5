"""The book (FORMAT.md section 1) in Python: numpy columns in the file's form
(row indices, enumeration codes), handed to libxmargin as an xm_portfolio
view (numeric columns without copies where their dtype and layout allow)."""

import datetime
import os

import numpy as np

from ._core import (Diag, Error, FormatError, XM_OK, array_in, array_out, cstr, ffi, lib,
                    fingerprint, raise_status, string, strings, strings_in, write_checked)


def _names(fn):
    out = []
    while True:
        p = fn(len(out))
        if p == ffi.NULL:
            return out
        out.append(ffi.string(p).decode())


TYPES = _names(lib.xm_type_name)          # code -> name, the library's table
KINDS = _names(lib.xm_factor_kind_name)
# The two properties of XM_INSTRUMENT_TYPE_MAP (xmargin_types.h) that say which
# columns apply to a type: `option` (a loss family other than linear: strike,
# expiry, call, implied_vol, rate apply) and `carry` (dividend_yield applies).
# test_py_api.py checks this table against the header's macros.
OPTION_TYPES = {"option", "future_option", "american_option", "inverse_option"}
CARRY_TYPES = {"option", "american_option"}

FACTOR_V2 = ("half_spread", "impact", "adv", "haircut", "collateral_limit")
INST_FLOATS = ("strike", "expiry", "implied_vol", "rate", "dividend_yield", "multiplier")

# (table, column): (struct field, kind) -- kind "s" strings, "i" int32, "f" float64
FIELDS = {
    "factors": [("name", "factor_name", "s"), ("kind", "factor_kind", "i"), ("level", "factor_level", "f"),
                ("half_spread", "factor_half_spread", "f"), ("impact", "factor_impact", "f"),
                ("adv", "factor_adv", "f"), ("haircut", "factor_haircut", "f"),
                ("collateral_limit", "factor_collateral_limit", "f")],
    "silos": [("name", "silo_name", "s")],
    "instruments": [("id", "inst_id", "s"), ("type", "inst_type", "i"), ("silo", "inst_silo", "i"),
                    ("underlying", "inst_underlying", "i"), ("vol_factor", "inst_vol_factor", "i"),
                    ("strike", "inst_strike", "f"), ("expiry", "inst_expiry", "f"), ("call", "inst_call", "i"),
                    ("implied_vol", "inst_implied_vol", "f"), ("rate", "inst_rate", "f"),
                    ("dividend_yield", "inst_dividend_yield", "f"), ("multiplier", "inst_multiplier", "f"),
                    ("currency", "inst_currency", "s"), ("funding_rate", "inst_funding_rate", "f")],
    "accounts": [("id", "account_id", "s"), ("cross_margin", "account_cross_margin", "i"),
                 ("currency", "account_currency", "s")],
    "fx": [("currency", "fx_currency", "s"), ("factor", "fx_factor", "i")],
    "collateral": [("account", "coll_account", "i"), ("factor", "coll_factor", "i"),
                   ("currency", "coll_currency", "s"), ("quantity", "coll_quantity", "f"),
                   ("silo", "coll_silo", "i")],
    "positions": [("account", "pos_account", "i"), ("instrument", "pos_instrument", "i"),
                  ("quantity", "pos_quantity", "f")],
}
COUNTS = {"factors": "n_factors", "silos": "n_silos", "instruments": "n_instruments",
          "accounts": "n_accounts", "fx": "n_fx", "collateral": "n_collateral",
          "positions": "n_positions"}
REQUIRED = {
    "factors": ("name", "kind", "level"), "silos": ("name",),
    "instruments": ("id", "type", "silo", "underlying", "vol_factor", "strike", "expiry", "call",
                    "implied_vol", "rate", "dividend_yield", "multiplier"),
    "accounts": ("id", "cross_margin"), "fx": ("currency", "factor"),
    "collateral": ("account", "factor", "quantity", "silo"),
    "positions": ("account", "instrument", "quantity"),
}
_DT = {"i": np.int32, "f": np.float64}


class Book:
    """A portfolio. `tables` holds {table: {column: array}} in the file's form
    (FORMAT.md section 1): string columns as lists of str, index and code
    columns int32, the rest float64; an optional column or table that is absent
    is missing from its dict (the file's default applies)."""

    def __init__(self, tables, valuation_date, currency="USD", path=None):
        self.tables = tables
        self.valuation_date = str(valuation_date)
        self.currency = str(currency)
        self.path = path

    def _fingerprint(self):
        return fingerprint(self.tables, self.valuation_date, self.currency)

    def source(self):
        """The file this book is exactly the contents of: its path when it was
        read (Book.read) and has not changed since, else None. A results file
        records it (with its SHA-256) as the run's portfolio."""
        same = self.path is not None and getattr(self, "_read_as", None) == self._fingerprint()
        return self.path if same else None

    # ------------------------------------------------------------ the C view
    def _view(self):
        """(xm_portfolio *, keepalive): a view over the columns."""
        p = ffi.new("xm_portfolio *")
        keep = [p]
        if self.path is not None:
            keep.append(cstr(self.path))
            p.path = keep[-1]
        vd = self.valuation_date.encode("utf-8")
        cur = self.currency.encode("utf-8")
        if len(vd) > 15 or len(cur) > 15:
            raise FormatError("book: valuation_date %r / currency %r: at most 15 bytes each"
                              % (self.valuation_date, self.currency), "")
        p.valuation_date = vd
        p.currency = cur
        for table, cols in FIELDS.items():
            t = self.tables.get(table)
            if not t:
                continue
            n = None
            for col, field, kind in cols:
                if col not in t or t[col] is None:
                    continue
                v = t[col]
                n = len(v) if n is None else n
                if kind == "s":
                    setattr(p, field, strings_in(v, keep))
                else:
                    setattr(p, field, array_in(v, _DT[kind], keep))
            setattr(p, COUNTS[table], n or 0)
        return p, keep

    def validate(self, raise_error=True):
        """xm_portfolio_validate on the book: [] when valid; else raises
        FormatError with the library's messages (or returns them with
        raise_error=False)."""
        p, keep = self._view()
        with Diag() as d:
            st = lib.xm_portfolio_validate(p, d.ptr)
            msgs = d.messages()
        if st != XM_OK:
            if raise_error:
                raise_status(st, "book %s" % (self.path or "(in memory)"), msgs)
            return msgs
        return []

    def to_hdf5(self, path, validate=True):
        """Writes the book (FORMAT.md section 1) with xm_portfolio_write, atomically,
        never over the file it was read from; validated first unless validate=False."""
        if validate:
            self.validate()
        write_checked(path, self.path, self._view, lib.xm_portfolio_write)

    @classmethod
    def read(cls, path):
        """Reads and validates a portfolio file (xm_portfolio_read)."""
        p = ffi.new("xm_portfolio *")
        with Diag() as d:
            st = lib.xm_portfolio_read(cstr(path), p, d.ptr)
            msgs = d.messages()
        try:
            if st != XM_OK:
                raise_status(st, "reading %s" % os.fspath(path), msgs)
            b = cls._from_struct(p, os.fspath(path))
            b._read_as = b._fingerprint()
            return b
        finally:
            lib.xm_portfolio_free(p)

    @classmethod
    def _from_struct(cls, p, path):
        tables = {}
        for table, cols in FIELDS.items():
            n = getattr(p, COUNTS[table])
            t = {}
            for col, field, kind in cols:
                ptr = getattr(p, field)
                if ptr == ffi.NULL:
                    continue
                t[col] = strings(ptr, n) if kind == "s" else array_out(ptr, n, _DT[kind])
            if table in ("fx", "collateral") and n == 0:
                continue
            tables[table] = t
        return cls(tables, string(p.valuation_date), string(p.currency), path=path)

    # ------------------------------------------------------------ pandas
    @classmethod
    def from_frames(cls, factors, instruments, accounts, positions, collateral=None, fx=None,
                    silos=None, valuation_date=None, currency="USD"):
        """A book from one DataFrame per FORMAT.md table (docs/python.md)."""
        from ._frames import book_tables

        if valuation_date is None:
            raise Error("Book.from_frames: valuation_date is required (ISO YYYY-MM-DD, a date)")
        try:
            vd = _iso_date(valuation_date)
        except ValueError as e:
            raise FormatError("Book.from_frames: valuation_date %r: not a date YYYY-MM-DD (%s)"
                              % (valuation_date, e), "")
        tables = book_tables(factors, instruments, accounts, positions, collateral, fx, silos, vd, currency)
        return cls(tables, vd, currency)

    def to_frames(self):
        """{table: DataFrame} with names where the file has row indices."""
        import pandas as pd

        t = self.tables
        fac = t["factors"]["name"]
        silo = t["silos"]["name"]
        acc = t["accounts"]["id"]
        ins = t["instruments"]["id"]
        out = {}
        f = dict(t["factors"])
        f["kind"] = [KINDS[k] for k in f["kind"]]
        out["factors"] = pd.DataFrame(f)
        out["silos"] = pd.DataFrame({"name": silo})
        i = dict(t["instruments"])
        i["type"] = [TYPES[k] for k in i["type"]]
        i["silo"] = [silo[k] for k in i["silo"]]
        i["underlying"] = [fac[k] for k in i["underlying"]]
        i["vol_factor"] = [fac[k] if k >= 0 else None for k in i["vol_factor"]]
        out["instruments"] = pd.DataFrame(i)
        out["accounts"] = pd.DataFrame(t["accounts"])
        p = dict(t["positions"])
        p["account"] = [acc[k] for k in p["account"]]
        p["instrument"] = [ins[k] for k in p["instrument"]]
        out["positions"] = pd.DataFrame(p)
        if "fx" in t:
            x = dict(t["fx"])
            x["factor"] = [fac[k] for k in x["factor"]]
            out["fx"] = pd.DataFrame(x)
        if "collateral" in t:
            c = dict(t["collateral"])
            c["account"] = [acc[k] for k in c["account"]]
            c["factor"] = [fac[k] if k >= 0 else None for k in c["factor"]]
            c["silo"] = [silo[k] if k >= 0 else None for k in c["silo"]]
            out["collateral"] = pd.DataFrame(c)
        return out

    def __repr__(self):
        n = {k: len(next(iter(v.values()))) for k, v in self.tables.items() if v}
        return "<xmargin.Book %s %s %s>" % (self.valuation_date, self.currency,
                                            " ".join("%s=%d" % kv for kv in n.items()))


def _iso_date(v):
    import pandas as pd

    if isinstance(v, str):
        d = datetime.date.fromisoformat(v)
    else:
        d = pd.Timestamp(v).date()
    return d.isoformat()
