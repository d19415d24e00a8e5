#!/usr/bin/env python3
"""Check datasets/demo-portfolio.h5 and datasets/demo-scenarios.h5 against FORMAT.md.

    /usr/bin/python3 datasets/check_demo.py [portfolio.h5 scenarios.h5] [--summary]

Asserts the data contract (format attributes, columnar tables of equal length,
unique ids, indices in range, known types/kinds, option underlying/vol factor kinds,
finite numbers, level/strike/implied_vol/multiplier/expiry rules, history and set
shapes, every used factor present in /history) and its version-2 rules (currencies in
/fx or the reporting one, inverse types never in the reporting currency, /fx factors
price factors, funding only on perpetuals, logvol factors, the liquidity and collateral
columns of /factors, the /collateral table).  With --summary it also prints a small
independent revaluation (worst loss per template over the ready-made sets), a sanity
check on magnitudes, not a reference for the engine, and each template's collateral
(METHODOLOGY 6, the schedule: value, after haircuts and limits, by silo).
Needs only numpy and h5py.  Exit status 0 when every check passes.
"""

import math
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PRICE_TYPES = {"spot", "future", "option", "future_option", "american_option", "perpetual",
               "inverse_future", "inverse_perpetual", "inverse_option"}
OPTION_TYPES = {"option", "future_option", "american_option", "inverse_option"}
INVERSE_TYPES = {"inverse_future", "inverse_perpetual", "inverse_option"}
FUNDED_TYPES = {"perpetual", "inverse_perpetual"}
SETTLED_TYPES = {"future", "perpetual", "inverse_future", "inverse_perpetual"}
KINDS = {"price", "vol", "rate", "logvol"}
FACTOR_V2 = ("half_spread", "impact", "adv", "haircut", "collateral_limit")


def s(arr):
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in arr]


def fail(path, where, msg):
    raise SystemExit("%s: %s: %s" % (path, where, msg))


def table(f, path, group, cols):
    if group not in f:
        fail(path, "/" + group, "missing group")
    g = f[group]
    out, n = {}, None
    for c in cols:
        if c not in g:
            fail(path, "/%s/%s" % (group, c), "missing column")
        d = g[c]
        if d.ndim != 1:
            fail(path, "/%s/%s" % (group, c), "not 1-D")
        if n is not None and d.shape[0] != n:
            fail(path, "/%s/%s" % (group, c), "length %d != %d" % (d.shape[0], n))
        n = d.shape[0]
        v = d[()]
        out[c] = s(v) if d.dtype.kind in "OS" else np.asarray(v)
    return out, n


def finite(path, where, arr):
    a = np.asarray(arr, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)) if a.size else []
    if len(bad):
        fail(path, where, "non-finite number at row %d" % bad[0])


def unique(path, where, ids):
    seen = {}
    for i, x in enumerate(ids):
        if x in seen:
            fail(path, where, "duplicate id %r at rows %d and %d" % (x, seen[x], i))
        seen[x] = i


def check_root(path, f, fmt):
    if f.attrs.get("format") is None or s([f.attrs["format"]])[0] != fmt:
        fail(path, "/", "attribute format != %r" % fmt)
    v = f.attrs.get("format_version")
    if v is None or not np.issubdtype(np.asarray(v).dtype, np.integer) or int(v) not in (1, 2):
        fail(path, "/", "format_version must be the integer 1 or 2")


def check_portfolio(path):
    with h5py.File(path, "r") as f:
        check_root(path, f, "xmargin.portfolio")
        for a in ("valuation_date", "currency"):
            if a not in f.attrs:
                fail(path, "/", "missing attribute " + a)
        vd = s([f.attrs["valuation_date"]])[0]
        if len(vd) != 10 or vd[4] != "-" or vd[7] != "-":
            fail(path, "/", "valuation_date not ISO: %r" % vd)
        fac, F = table(f, path, "factors", ["name", "kind", "level"])
        sil, G = table(f, path, "silos", ["name"])
        ins, I = table(f, path, "instruments",
                       ["id", "type", "silo", "underlying", "vol_factor", "strike", "expiry",
                        "call", "implied_vol", "rate", "dividend_yield", "multiplier"])
        acc, A = table(f, path, "accounts", ["id", "cross_margin"])
        pos, N = table(f, path, "positions", ["account", "instrument", "quantity"])
        rep = s([f.attrs["currency"]])[0]
        # version 2, optional columns with their defaults
        g = f["instruments"]
        ins["currency"] = s(g["currency"][()]) if "currency" in g else [rep] * I
        ins["funding_rate"] = (np.asarray(g["funding_rate"][()], dtype=np.float64)
                               if "funding_rate" in g else np.zeros(I))
        for c in ("currency", "funding_rate"):
            if c in g and g[c].shape != (I,):
                fail(path, "/instruments/" + c, "length != %d" % I)
        ga = f["accounts"]
        acc["currency"] = s(ga["currency"][()]) if "currency" in ga else [rep] * A
        if "currency" in ga and ga["currency"].shape != (A,):
            fail(path, "/accounts/currency", "length != %d" % A)
        if "fx" in f:
            fx, C = table(f, path, "fx", ["currency", "factor"])
        else:
            fx, C = {"currency": [], "factor": np.zeros(0, dtype=int)}, 0
        gf = f["factors"]
        for c in FACTOR_V2:  # optional, default 0
            if c in gf and gf[c].shape != (F,):
                fail(path, "/factors/" + c, "length != %d" % F)
            fac[c] = np.asarray(gf[c][()], dtype=np.float64) if c in gf else np.zeros(F)
        if "collateral" in f:
            col, H = table(f, path, "collateral", ["account", "factor", "quantity", "silo"])
            gc = f["collateral"]
            if "currency" in gc and gc["currency"].shape != (H,):
                fail(path, "/collateral/currency", "length != %d" % H)
            col["currency"] = s(gc["currency"][()]) if "currency" in gc else [rep] * H
            col["label"] = s(gc["label"][()]) if "label" in gc else [""] * H
        else:
            col, H = None, 0
    unique(path, "/factors/name", fac["name"])
    unique(path, "/silos/name", sil["name"])
    unique(path, "/instruments/id", ins["id"])
    unique(path, "/accounts/id", acc["id"])
    finite(path, "/factors/level", fac["level"])
    for i, (k, lv) in enumerate(zip(fac["kind"], fac["level"])):
        if k not in KINDS:
            fail(path, "/factors/kind", "row %d: unknown kind %r" % (i, k))
        if k == "price" and not lv > 0:
            fail(path, "/factors/level", "row %d: price level <= 0" % i)
    for c in FACTOR_V2:
        finite(path, "/factors/" + c, fac[c])
        bad = np.flatnonzero(fac[c] < 0)
        if len(bad):
            fail(path, "/factors/" + c, "row %d: negative" % bad[0])
    bad = np.flatnonzero(fac["haircut"] > 1)
    if len(bad):
        fail(path, "/factors/haircut", "row %d: above 1" % bad[0])
    for c in ("strike", "expiry", "implied_vol", "rate", "dividend_yield", "multiplier",
              "funding_rate"):
        finite(path, "/instruments/" + c, ins[c])
    unique(path, "/fx/currency", fx["currency"])
    for k, (c, fi) in enumerate(zip(fx["currency"], fx["factor"])):
        if c == rep:
            fail(path, "/fx/currency", "row %d: the reporting currency %r" % (k, c))
        if not 0 <= int(fi) < F or fac["kind"][int(fi)] != "price":
            fail(path, "/fx/factor", "row %d: not a price factor" % k)
    known = set(fx["currency"]) | {rep}
    for a, c in enumerate(acc["currency"]):
        if c not in known:
            fail(path, "/accounts/currency", "row %d: %r neither %s nor in /fx" % (a, c, rep))
    for i in range(I):
        t = ins["type"][i]
        w = "/instruments row %d (%s)" % (i, ins["id"][i])
        if t not in PRICE_TYPES:
            fail(path, w, "unknown type %r" % t)
        if not 0 <= ins["silo"][i] < G:
            fail(path, w, "silo out of range")
        u, v = int(ins["underlying"][i]), int(ins["vol_factor"][i])
        if not 0 <= u < F:
            fail(path, w, "underlying out of range")
        if fac["kind"][u] != "price":
            fail(path, w, "underlying is not a price factor")
        if v != -1 and not 0 <= v < F:
            fail(path, w, "vol_factor out of range")
        if ins["currency"][i] not in known:
            fail(path, w, "currency %r neither %s nor in /fx" % (ins["currency"][i], rep))
        if t in INVERSE_TYPES and ins["currency"][i] == rep:
            fail(path, w, "an inverse type settled in the reporting currency")
        if t not in FUNDED_TYPES and ins["funding_rate"][i] != 0:
            fail(path, w, "funding_rate on a type that has no funding")
        if t in OPTION_TYPES:
            if v == -1 or fac["kind"][v] not in ("vol", "logvol"):
                fail(path, w, "option vol_factor is not a vol or logvol factor")
            if ins["call"][i] not in (0, 1):
                fail(path, w, "call must be 0 or 1")
        if not ins["strike"][i] > 0:
            fail(path, w, "strike <= 0")
        if ins["implied_vol"][i] < 0:
            fail(path, w, "implied_vol < 0")
        if not ins["multiplier"][i] > 0:
            fail(path, w, "multiplier <= 0")
        if ins["expiry"][i] < 0:
            fail(path, w, "expiry < 0")
    if col is not None:
        finite(path, "/collateral/quantity", col["quantity"])
        for k in range(H):
            w = "/collateral row %d" % k
            if not 0 <= int(col["account"][k]) < A:
                fail(path, w, "account out of range")
            fk = int(col["factor"][k])
            if fk != -1 and not (0 <= fk < F and fac["kind"][fk] == "price"):
                fail(path, w, "factor is neither -1 (cash) nor a price factor")
            if col["currency"][k] not in known:
                fail(path, w, "currency %r neither %s nor in /fx" % (col["currency"][k], rep))
            if not col["quantity"][k] >= 0:
                fail(path, w, "quantity < 0")
            if not -1 <= int(col["silo"][k]) < G:
                fail(path, w, "silo out of range")
    if not set(np.unique(acc["cross_margin"]).tolist()) <= {0, 1}:
        fail(path, "/accounts/cross_margin", "must be 0 or 1")
    finite(path, "/positions/quantity", pos["quantity"])
    if N and not ((pos["account"] >= 0) & (pos["account"] < A)).all():
        fail(path, "/positions/account", "index out of range")
    if N and not ((pos["instrument"] >= 0) & (pos["instrument"] < I)).all():
        fail(path, "/positions/instrument", "index out of range")
    return dict(fac=fac, sil=sil, ins=ins, acc=acc, pos=pos, fx=fx, rep=rep, F=F, G=G, I=I,
                A=A, N=N, C=C, col=col, H=H)


def check_scenarios(path, book):
    out = {}
    with h5py.File(path, "r") as f:
        check_root(path, f, "xmargin.scenarios")
        if "history" in f:
            h = f["history"]
            for c in ("factor", "date", "return"):
                if c not in h:
                    fail(path, "/history/" + c, "missing")
            names, dates, R = s(h["factor"][()]), s(h["date"][()]), h["return"][()]
            unique(path, "/history/factor", names)
            if R.shape != (len(dates), len(names)):
                fail(path, "/history/return", "shape %r != [T x F_h]" % (R.shape,))
            finite(path, "/history/return", R)
            if dates != sorted(dates) or len(set(dates)) != len(dates):
                fail(path, "/history/date", "not strictly increasing")
            for d in dates:
                if len(d) != 10 or d[4] != "-" or d[7] != "-":
                    fail(path, "/history/date", "not ISO: %r" % d)
            out["history"] = (names, dates, R)
            if book is not None:
                # every factor of the demo book (not only those used) must have history
                missing = [x for x in book["fac"]["name"] if x not in names]
                if missing:
                    fail(path, "/history/factor", "portfolio factor(s) missing: %s" % missing)
        sets = {}
        for name in (f["sets"] if "sets" in f else []):
            g = f["sets"][name]
            w = "/sets/" + name
            for c in ("factor", "shock", "label"):
                if c not in g:
                    fail(path, w + "/" + c, "missing")
            fn, X, lab = s(g["factor"][()]), g["shock"][()], s(g["label"][()])
            unique(path, w + "/factor", fn)
            if X.ndim != 2 or X.shape != (len(lab), len(fn)):
                fail(path, w + "/shock", "shape %r != [S x F_s]" % (X.shape,))
            finite(path, w + "/shock", X)
            wt = g["weight"][()] if "weight" in g else np.ones(len(lab))
            if wt.shape != (len(lab),):
                fail(path, w + "/weight", "length != S")
            finite(path, w + "/weight", wt)
            meas = s([g.attrs.get("measure", "worst")])[0]
            if meas not in ("worst", "es", "var"):
                fail(path, w, "measure %r unknown" % meas)
            if meas in ("es", "var") and "confidence" in g.attrs:
                c = float(g.attrs["confidence"])
                if not 0 < c < 1:
                    fail(path, w, "confidence out of (0,1)")
            if book is not None:
                unknown = [x for x in fn if x not in book["fac"]["name"]]
                if unknown:
                    fail(path, w + "/factor", "not portfolio factors: %s" % unknown)
            sets[name] = (fn, X, lab, wt, meas)
        out["sets"] = sets
    return out


# --------------------------------------------------------------------------- summary
def _ncdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def value(typ, S, K, T, r, q, v, call, mult, S0=None):
    """Value per contract in its settlement currency. american_option is valued European
    here (a lower bound: a sanity check, not the engine's Bjerksund-Stensland)."""
    S, K, T, v = map(np.asarray, (S, K, T, v))
    S0 = S if S0 is None else np.asarray(S0)
    lin = np.isin(typ, ["spot", "future", "perpetual"])
    inv = np.isin(typ, ["inverse_future", "inverse_perpetual"])
    out = np.where(lin, S, 0.0) + np.where(inv, 1.0 / S0 - 1.0 / S, 0.0)
    opt = np.isin(typ, list(OPTION_TYPES))
    b76 = np.isin(typ, ["future_option", "inverse_option"])
    qq = np.where(b76, r, q)
    Tp = np.maximum(T, 1e-12)
    sv = np.maximum(v, 1e-12) * np.sqrt(Tp)
    d1 = (np.log(S / K) + (r - qq + 0.5 * v * v) * Tp) / sv
    d2 = d1 - sv
    c = S * np.exp(-qq * Tp) * _ncdf(d1) - K * np.exp(-r * Tp) * _ncdf(d2)
    p = K * np.exp(-r * Tp) * _ncdf(-d2) - S * np.exp(-qq * Tp) * _ncdf(-d1)
    bs = np.where(call == 1, c, p)
    intr = np.where(call == 1, np.maximum(S - K, 0), np.maximum(K - S, 0))
    bs = np.where(T <= 0, intr, bs)
    bs = np.where(typ == "inverse_option", bs / S, bs)
    return mult * np.where(opt, bs, out)


def summary(book, scen, h=2):
    fac, ins, pos = book["fac"], book["ins"], book["pos"]
    fidx = {n: i for i, n in enumerate(fac["name"])}
    lv = np.asarray(fac["level"], dtype=np.float64)
    typ = np.array(ins["type"])
    u, vf = ins["underlying"].astype(int), ins["vol_factor"].astype(int)
    K, T, iv = ins["strike"], ins["expiry"], ins["implied_vol"]
    r, q, call, mult = ins["rate"], ins["dividend_yield"], ins["call"], ins["multiplier"]
    v0 = value(typ, lv[u], K, T, r, q, iv, call, mult)
    Tn = np.maximum(T - h / 252.0, 0.0)
    # currencies (METHODOLOGY 2.2): X_c of each instrument's currency; losses in USD here
    fxi = {c: int(k) for c, k in zip(book["fx"]["currency"], book["fx"]["factor"])}
    cf = np.array([fxi.get(c, -1) for c in ins["currency"]])
    settled = np.isin(typ, list(SETTLED_TYPES))
    # funding over the horizon (2.3): m S0 (perpetual), m / S0 coins (inverse_perpetual)
    notional = np.where(typ == "perpetual", mult * lv[u],
                        np.where(typ == "inverse_perpetual", mult / lv[u], 0.0))
    phi = ins["funding_rate"] * notional * h / 252.0
    logvol = np.array([vf_ >= 0 and fac["kind"][vf_] == "logvol" for vf_ in vf])
    A = book["A"]
    tmpl = None
    with h5py.File(os.path.join(HERE, "demo-portfolio.h5"), "r") as f:
        if "template" in f["accounts"]:
            tmpl = s(f["accounts/template"][()])
    for name, (fn, X, lab, wt, meas) in sorted(scen["sets"].items()):
        full = np.zeros((X.shape[0], len(lv)))
        for j, n in enumerate(fn):
            full[:, fidx[n]] = X[:, j]
        L = np.zeros((X.shape[0], A))
        for si in range(X.shape[0]):
            x = full[si]
            kinds = np.array(fac["kind"])
            lvs = np.where(kinds == "price", lv * np.exp(x), lv + x)
            xv = np.where(vf >= 0, x[vf], 0.0)
            ivs = np.where(logvol, iv * np.exp(xv), iv + xv)
            ivs = np.where(vf >= 0, np.maximum(ivs, 0.01), iv)
            ivs = np.where(np.isin(typ, list(OPTION_TYPES)), ivs, iv)
            v1 = value(typ, lvs[u], K, Tn, r, q, ivs, call, mult, S0=lv[u])
            X0 = np.where(cf >= 0, lv[np.maximum(cf, 0)], 1.0)
            X1 = np.where(cf >= 0, lvs[np.maximum(cf, 0)], 1.0)
            loss = np.where(settled, (v0 - v1 + phi) * X1, v0 * X0 - v1 * X1)
            np.add.at(L[si], pos["account"], pos["quantity"] * loss[pos["instrument"]])
        worst = np.maximum((wt[:, None] * L).max(axis=0), 0.0)
        print("set %-22s S=%3d  worst loss (USD) over accounts: median %12.0f  max %14.0f"
              % (name, X.shape[0], np.median(worst), worst.max()))
        if tmpl is not None:
            for t in sorted(set(tmpl)):
                m = np.array([x == t for x in tmpl])
                print("    %-16s n=%3d median worst %12.0f" % (t, m.sum(), np.median(worst[m])))


def collateral_values(book):
    """CV_j and ACV_j of every holding (METHODOLOGY 6, collateral.method = schedule), in its
    account's currency: CV = q P X_c / X_b; ACV = CV kappa (1 - h) for a factor holding,
    kappa = min(1, limit / the account's CV on that factor) (1 without a limit), ACV = CV
    for cash."""
    fac, col, acc = book["fac"], book["col"], book["acc"]
    lv = np.asarray(fac["level"], dtype=np.float64)
    X = {book["rep"]: 1.0}
    for c, k in zip(book["fx"]["currency"], book["fx"]["factor"]):
        X[c] = lv[int(k)]
    a = col["account"].astype(int)
    f = col["factor"].astype(int)
    xb = np.array([X[acc["currency"][k]] for k in a])
    P = np.where(f >= 0, lv[np.maximum(f, 0)], 1.0)
    cv = col["quantity"] * P * np.array([X[c] for c in col["currency"]]) / xb
    tot = {}
    for j in range(len(a)):
        if f[j] >= 0:
            tot[(a[j], f[j])] = tot.get((a[j], f[j]), 0.0) + cv[j]
    acv = cv.copy()
    for j in range(len(a)):
        if f[j] < 0:
            continue
        lim, kappa = fac["collateral_limit"][f[j]] / xb[j], 1.0
        if lim > 0 and tot[(a[j], f[j])] > 0:
            kappa = min(1.0, lim / tot[(a[j], f[j])])
        acv[j] = cv[j] * kappa * (1.0 - fac["haircut"][f[j]])
    return cv, acv


def collateral_summary(book, tmpl):
    fac, col = book["fac"], book["col"]
    print("liquidity and collateral schedule (/factors):")
    print("    %-12s %11s %9s %10s %8s %10s" % ("factor", "half_spread", "impact", "adv (bn)",
                                               "haircut", "limit (m)"))
    for k, n in enumerate(fac["name"]):
        if fac["kind"][k] != "price":
            continue
        print("    %-12s %11.6f %9.5f %10.3f %8.2f %10.0f" % (
            n, fac["half_spread"][k], fac["impact"][k], fac["adv"][k] / 1e9,
            fac["haircut"][k], fac["collateral_limit"][k] / 1e6))
    if col is None:
        print("no /collateral table")
        return
    cv, acv = collateral_values(book)
    a = col["account"].astype(int)
    xr = np.ones(book["A"])  # each account's currency in the reporting one, today
    lv = np.asarray(fac["level"], dtype=np.float64)
    fxi = {c: int(k) for c, k in zip(book["fx"]["currency"], book["fx"]["factor"])}
    for i, c in enumerate(book["acc"]["currency"]):
        if c in fxi:
            xr[i] = lv[fxi[c]]
    G = book["G"]
    print("collateral (%s, today's rates): value, after haircuts and limits; by silo and none"
          % book["rep"])
    groups = sorted(set(tmpl)) if tmpl is not None else ["all"]
    for t in groups:
        m = np.array([tmpl is None or tmpl[k] == t for k in a])
        n = len({int(x) for x in a[m]})
        by = [(acv[m] * xr[a[m]])[col["silo"][m] == g].sum() for g in list(range(G)) + [-1]]
        print("    %-16s accounts %3d  value %13.0f  adjusted %13.0f  %s" % (
            t, n, (cv[m] * xr[a[m]]).sum(), (acv[m] * xr[a[m]]).sum(),
            " ".join("%s %.0f" % (nm, v) for nm, v in zip(book["sil"]["name"] + ["none"], by))))


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    port = args[0] if args else os.path.join(HERE, "demo-portfolio.h5")
    scen = args[1] if len(args) > 1 else os.path.join(HERE, "demo-scenarios.h5")
    book = check_portfolio(port)
    sc = check_scenarios(scen, book)
    names, dates, R = sc["history"]
    print("portfolio ok: %d factors, %d silos, %d instruments, %d accounts (%d not cross-margined),"
          " %d positions" % (book["F"], book["G"], book["I"], book["A"],
                              int((book["acc"]["cross_margin"] == 0).sum()), book["N"]))
    types = {}
    for t in book["ins"]["type"]:
        types[t] = types.get(t, 0) + 1
    print("  types: " + ", ".join("%s %d" % (t, types[t]) for t in sorted(types)))
    accc = {}
    for c in book["acc"]["currency"]:
        accc[c] = accc.get(c, 0) + 1
    print("  account currencies: %s; /fx: %s" % (
        ", ".join("%s %d" % kv for kv in sorted(accc.items())),
        ", ".join("%s -> %s" % (c, book["fac"]["name"][int(k)])
                  for c, k in zip(book["fx"]["currency"], book["fx"]["factor"]))))
    print("scenarios ok: history %d days (%s .. %s) x %d factors; sets: %s"
          % (len(dates), dates[0], dates[-1], len(names),
             ", ".join("%s[%d]" % (k, len(v[2])) for k, v in sorted(sc["sets"].items()))))
    if book["col"] is not None:
        col = book["col"]
        print("collateral ok: %d holdings of %d accounts (%d cash, %d posted to no silo)"
              % (book["H"], len(set(col["account"].tolist())), int((col["factor"] == -1).sum()),
                 int((col["silo"] == -1).sum())))
    if "--summary" in argv:
        summary(book, sc)
        tmpl = None
        with h5py.File(port, "r") as f:
            if "template" in f["accounts"]:
                tmpl = s(f["accounts/template"][()])
        collateral_summary(book, tmpl)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
