"""Book.from_frames: one DataFrame per FORMAT.md table, names where the file
has row indices, expiries as dates or year fractions, blanks where a column
does not apply. The rules (docs/python.md) are the same as `xmargin import`'s
(host/cli/cli_import.c): a blank cell is empty, whitespace, NaN/None/NaT, or
the text NaN, nan or NA."""

import datetime
import math
import numbers

import numpy as np

from ._book import CARRY_TYPES, FACTOR_V2, KINDS, OPTION_TYPES, TYPES
from ._core import FormatError

_BLANK_TEXT = {"", "nan", "NaN", "NA"}


def _blank(v):
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() in _BLANK_TEXT
    if isinstance(v, float):
        return math.isnan(v)
    try:
        import pandas as pd

        if v is pd.NaT or v is pd.NA:
            return True
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, np.floating):
        return bool(np.isnan(v))
    if isinstance(v, np.datetime64):
        return bool(np.isnat(v))
    return False


class _Frame:
    """One input frame: its columns as lists, and the messages of its cells."""

    def __init__(self, name, df, required, errors):
        self.name = name
        self.errors = errors
        self.cols = {}
        self.n = 0
        if df is None:
            return
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(df)
        self.n = len(df)
        for c in df.columns:
            self.cols[str(c)] = df[c].tolist()
        for c in required:
            if c not in self.cols:
                self.err(None, c, None, "column is missing (FORMAT.md section 1: /%s/%s)" % (name, c))

    def has(self, c):
        return c in self.cols

    def get(self, c):
        return self.cols.get(c, [None] * self.n)

    def err(self, row, col, value, rule):
        where = "%s frame" % self.name
        if row is not None:
            where += ": row %d" % row
        if col is not None:
            where += ", column '%s'" % col if row is not None else ": column '%s'" % col
        if value is not None:
            where += " = %r" % (value,)
        self.errors.append("%s: %s" % (where, rule))

    # value conversions ------------------------------------------------
    def text(self, c, default=None, what=None):
        out = []
        for i, v in enumerate(self.get(c)):
            if _blank(v):
                if default is None:
                    self.err(i, c, None, "blank: %s is required" % (what or c))
                    out.append("")
                else:
                    out.append(default)
            else:
                out.append(str(v))
        return out

    def number(self, c, blank_value, i, v):
        if _blank(v):
            return blank_value
        if isinstance(v, (bool, np.bool_)):
            return 1.0 if v else 0.0
        if isinstance(v, numbers.Number):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        self.err(i, c, v, "not a number")
        return math.nan

    def whole(self, c, i, v, blank_rule):
        """An int column: a whole number (bools are 1 / 0); blank: the message."""
        if _blank(v):
            self.err(i, c, None, "blank: " + blank_rule)
            return 0
        if isinstance(v, (bool, np.bool_)):
            return int(bool(v))
        x = None
        if isinstance(v, numbers.Number):
            x = float(v)
        elif isinstance(v, str):
            try:
                x = float(v.strip())
            except ValueError:
                x = None
        if x is None:
            self.err(i, c, v, "not a number")
            return 0
        if not (math.isfinite(x) and x == math.floor(x) and -2**31 <= x < 2**31):
            self.err(i, c, v, "not a whole number (int32)")
            return 0
        return int(x)

    def lookup(self, c, index, table, i, v, allow_blank):
        if _blank(v):
            if allow_blank:
                return -1
            self.err(i, c, None, "blank: a name of the %s is required" % table)
            return 0
        r = index.get(str(v))
        if r is None:
            self.err(i, c, v, "unknown name: not in the %s" % table)
            return 0
        return r


def _index(names):
    d = {}
    for i, n in enumerate(names):
        d.setdefault(n, i)  # a duplicate is the library's error; references take the first
    return d


def _days(iso):
    return datetime.date.fromisoformat(iso).toordinal()


def _expiry(fr, i, v, blank_value, vdays):
    """A year fraction, or a date: ACT/365 from the valuation date
    (docs/methodology-notes.md note 32)."""
    if _blank(v):
        return blank_value
    if isinstance(v, (bool, np.bool_)):
        fr.err(i, "expiry", v, "not a year fraction or a date")
        return math.nan
    if isinstance(v, numbers.Number):
        return float(v)
    d = None
    if isinstance(v, str):
        s = v.strip()
        try:
            return float(s)
        except ValueError:
            pass
        try:
            d = datetime.date.fromisoformat(s) if len(s) == 10 else None
        except ValueError:
            d = None
    elif isinstance(v, datetime.datetime):
        d = v.date()
    elif isinstance(v, datetime.date):
        d = v
    elif isinstance(v, np.datetime64):
        d = datetime.date.fromisoformat(str(v.astype("datetime64[D]")))
    if d is None:
        fr.err(i, "expiry", v, "not a year fraction or a date (YYYY-MM-DD)")
        return math.nan
    return (d.toordinal() - vdays) / 365.0


def book_tables(factors, instruments, accounts, positions, collateral, fx, silos, vd, currency):
    errors = []
    F = _Frame("factors", factors, ("name", "kind", "level"), errors)
    I = _Frame("instruments", instruments, ("id", "type", "silo", "underlying"), errors)
    A = _Frame("accounts", accounts, ("id", "cross_margin"), errors)
    P = _Frame("positions", positions, ("account", "instrument", "quantity"), errors)
    X = _Frame("fx", fx, ("currency", "factor"), errors) if fx is not None else None
    C = _Frame("collateral", collateral, ("account", "quantity"), errors) if collateral is not None else None
    if errors:
        raise FormatError("Book.from_frames: %d error(s)" % len(errors), "", errors)
    vdays = _days(vd)
    t = {}

    # factors
    names = F.text("name", what="a factor name")
    kinds = []
    for i, v in enumerate(F.get("kind")):
        s = "" if _blank(v) else str(v)
        if s not in KINDS:
            F.err(i, "kind", v, "unknown kind (one of %s)" % ", ".join(KINDS))
            kinds.append(0)
        else:
            kinds.append(KINDS.index(s))
    f = {"name": names, "kind": np.array(kinds, np.int32),
         "level": np.array([F.number("level", math.nan, i, v) for i, v in enumerate(F.get("level"))])}
    for c in FACTOR_V2:
        if F.has(c):
            f[c] = np.array([F.number(c, 0.0, i, v) for i, v in enumerate(F.get(c))])
    t["factors"] = f
    fidx = _index(names)

    # silos: given, else in order of first use (instruments, then collateral)
    if silos is not None:
        import pandas as pd

        if isinstance(silos, pd.DataFrame):
            sn = _Frame("silos", silos, ("name",), errors).text("name", what="a silo name")
        else:
            sn = [str(s) for s in list(silos)]
    else:
        sn = []
        seen = set()
        for v in I.get("silo") + (C.get("silo") if C is not None else []):
            if not _blank(v) and str(v) not in seen:
                seen.add(str(v))
                sn.append(str(v))
    t["silos"] = {"name": sn}
    sidx = _index(sn)

    # instruments
    ids = I.text("id", what="an instrument id")
    types = []
    for i, v in enumerate(I.get("type")):
        s = "" if _blank(v) else str(v)
        if s not in TYPES:
            I.err(i, "type", v, "unknown instrument type (one of %s)" % ", ".join(TYPES))
            types.append(0)
        else:
            types.append(TYPES.index(s))
    names_t = [TYPES[k] for k in types]
    ins = {"id": ids, "type": np.array(types, np.int32),
           "silo": np.array([I.lookup("silo", sidx, "silos", i, v, False) for i, v in enumerate(I.get("silo"))], np.int32),
           "underlying": np.array([I.lookup("underlying", fidx, "factors frame", i, v, False)
                                   for i, v in enumerate(I.get("underlying"))], np.int32),
           "vol_factor": np.array([I.lookup("vol_factor", fidx, "factors frame", i, v, True)
                                   for i, v in enumerate(I.get("vol_factor"))], np.int32)}
    opt = [tn in OPTION_TYPES for tn in names_t]
    carry = [tn in CARRY_TYPES for tn in names_t]
    for c in ("strike", "implied_vol", "rate"):
        ins[c] = np.array([I.number(c, math.nan if opt[i] else 0.0, i, v) for i, v in enumerate(I.get(c))])
    ins["expiry"] = np.array([_expiry(I, i, v, math.nan if opt[i] else 0.0, vdays)
                              for i, v in enumerate(I.get("expiry"))])
    calls = []
    for i, v in enumerate(I.get("call")):
        if _blank(v) and not opt[i]:
            calls.append(0)
        else:
            calls.append(I.whole("call", i, v, "an option ('%s') needs call = 1 (call) or 0 (put)" % names_t[i]))
    ins["call"] = np.array(calls, np.int32)
    ins["dividend_yield"] = np.array([I.number("dividend_yield", math.nan if carry[i] else 0.0, i, v)
                                      for i, v in enumerate(I.get("dividend_yield"))])
    ins["multiplier"] = np.array([I.number("multiplier", math.nan, i, v) for i, v in enumerate(I.get("multiplier"))])
    if I.has("currency"):
        ins["currency"] = I.text("currency", default=currency)
    if I.has("funding_rate"):
        ins["funding_rate"] = np.array([I.number("funding_rate", 0.0, i, v) for i, v in enumerate(I.get("funding_rate"))])
    t["instruments"] = {k: ins[k] for k in ("id", "type", "silo", "underlying", "vol_factor", "strike", "expiry",
                                            "call", "implied_vol", "rate", "dividend_yield", "multiplier",
                                            "currency", "funding_rate") if k in ins}
    iidx = _index(ids)

    # accounts
    aids = A.text("id", what="an account id")
    acc = {"id": aids,
           "cross_margin": np.array([A.whole("cross_margin", i, v, "cross_margin is 1 (eligible) or 0")
                                     for i, v in enumerate(A.get("cross_margin"))], np.int32)}
    if A.has("currency"):
        acc["currency"] = A.text("currency", default=currency)
    t["accounts"] = acc
    aidx = _index(aids)

    # fx
    if X is not None and X.n > 0:
        t["fx"] = {"currency": X.text("currency", what="a currency"),
                   "factor": np.array([X.lookup("factor", fidx, "factors frame", i, v, False)
                                       for i, v in enumerate(X.get("factor"))], np.int32)}

    # collateral
    if C is not None and C.n > 0:
        c = {"account": np.array([C.lookup("account", aidx, "accounts frame", i, v, False)
                                  for i, v in enumerate(C.get("account"))], np.int32),
             "factor": np.array([C.lookup("factor", fidx, "factors frame", i, v, True)
                                 for i, v in enumerate(C.get("factor"))], np.int32)}
        if C.has("currency"):
            c["currency"] = C.text("currency", default=currency)
        c["quantity"] = np.array([C.number("quantity", math.nan, i, v) for i, v in enumerate(C.get("quantity"))])
        c["silo"] = np.array([C.lookup("silo", sidx, "silos", i, v, True) for i, v in enumerate(C.get("silo"))], np.int32)
        t["collateral"] = c

    # positions
    t["positions"] = {
        "account": np.array([P.lookup("account", aidx, "accounts frame", i, v, False)
                             for i, v in enumerate(P.get("account"))], np.int32),
        "instrument": np.array([P.lookup("instrument", iidx, "instruments frame", i, v, False)
                                for i, v in enumerate(P.get("instrument"))], np.int32),
        "quantity": np.array([P.number("quantity", math.nan, i, v) for i, v in enumerate(P.get("quantity"))]),
    }
    if errors:
        raise FormatError("Book.from_frames: %d error(s)" % len(errors), "", errors)
    return t
