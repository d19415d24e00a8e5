#!/usr/bin/python3
"""Self-check of xm_reference.py against hand-computed and published values
(version 1; and version 2: one contract of each new type, accounts in USD, BTC,
EUR and JPY, funding of long and short, the minimum, the §5 tolerances).

Plain script: exit 0 when every check passes, 1 otherwise; prints
'N passed, N failed' at the end.
"""

import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_reference as xr  # noqa: E402
import xm_testlib as tl  # noqa: E402
import xm_american  # noqa: E402

try:
    import h5py
except ImportError:
    print("h5py not available: 0 passed, 1 failed")
    sys.exit(1)


T = tl.Tally()
check = T.check


def close(name, got, exp, tol):
    got = np.asarray(got, dtype=float)
    exp = np.asarray(exp, dtype=float)
    ok = got.shape == exp.shape and np.all(np.abs(got - exp) <= tol)
    check(name, ok, "got %s expected %s (tol %g)" % (got, exp, tol))


def ncdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def bs_scalar(S, K, T, r, q, v, call):
    d1 = (math.log(S / K) + (r - q + 0.5 * v * v) * T) / (v * math.sqrt(T))
    d2 = d1 - v * math.sqrt(T)
    if call:
        return S * math.exp(-q * T) * ncdf(d1) - K * math.exp(-r * T) * ncdf(d2)
    return K * math.exp(-r * T) * ncdf(-d2) - S * math.exp(-q * T) * ncdf(-d1)


# ----------------------------------------------------------------- pricing

def test_published_values():
    # Hull, Options Futures and Other Derivatives, example 15.6
    close("hull call", xr.bsm(42, 40, 0.5, 0.10, 0.0, 0.2, 1), 4.76, 0.005)
    close("hull put", xr.bsm(42, 40, 0.5, 0.10, 0.0, 0.2, 0), 0.81, 0.005)
    # Haug, The Complete Guide to Option Pricing Formulas: generalized BSM put
    close("haug gbs put", xr.bsm(75, 70, 0.5, 0.10, 0.05, 0.35, 0), 4.0870, 5e-5)
    # Haug: Merton (1973) dividend-yield put
    close("haug merton put", xr.bsm(100, 95, 0.5, 0.10, 0.05, 0.20, 0), 2.4648, 5e-5)
    # Haug: Black-76 (F=19, X=19, T=0.75, r=10%, v=28%): call = put = 1.7011
    close("haug black76 call", xr.black76(19, 19, 0.75, 0.10, 0.28, 1), 1.7011, 5e-5)
    close("haug black76 put", xr.black76(19, 19, 0.75, 0.10, 0.28, 0), 1.7011, 5e-5)


def test_put_call_parity():
    rng = np.random.default_rng(1)
    S = rng.uniform(50, 150, 200)
    K = rng.uniform(50, 150, 200)
    T = rng.uniform(0.01, 3, 200)
    r = rng.uniform(-0.01, 0.08, 200)
    q = rng.uniform(0, 0.05, 200)
    v = rng.uniform(0.05, 0.9, 200)
    c = xr.bsm(S, K, T, r, q, v, np.ones(200))
    p = xr.bsm(S, K, T, r, q, v, np.zeros(200))
    close("bsm parity", c - p, S * np.exp(-q * T) - K * np.exp(-r * T), 1e-10)
    c = xr.black76(S, K, T, r, v, np.ones(200))
    p = xr.black76(S, K, T, r, v, np.zeros(200))
    close("black76 parity", c - p, np.exp(-r * T) * (S - K), 1e-10)
    # scalar textbook formula agrees
    close("bsm scalar", xr.bsm(S[:5], K[:5], T[:5], r[:5], q[:5], v[:5], 1),
          [bs_scalar(*a, True) for a in zip(S[:5], K[:5], T[:5], r[:5], q[:5], v[:5])], 1e-10)


def test_contract_values():
    # type codes: 0 spot, 1 future, 2 option, 3 future_option
    close("spot value", xr.contract_values(0, 100.0, 0, 1, 0, 0, 0, 1, 10.0), 1000.0, 1e-12)
    close("future value", xr.contract_values(1, 100.0, 0, 1, 0, 0, 0, 1, 50.0), 5000.0, 1e-12)
    close("option value", xr.contract_values(2, 42.0, 40.0, 0.5, 0.1, 0.0, 0.2, 1, 100.0),
          100 * bs_scalar(42, 40, 0.5, 0.1, 0.0, 0.2, True), 1e-9)
    # T <= 0: undiscounted intrinsic value
    close("expired call", xr.contract_values(2, 42.0, 40.0, 0.0, 0.1, 0.0, 0.2, 1, 100.0), 200.0, 1e-12)
    close("expired put", xr.contract_values(3, 42.0, 45.0, 0.0, 0.1, 0.0, 0.2, 0, 2.0), 6.0, 1e-12)
    # zero vol: discounted forward intrinsic
    close("zero vol call", xr.bsm(100.0, 90.0, 1.0, 0.05, 0.0, 0.0, 1), 100 - 90 * math.exp(-0.05), 1e-12)


# ----------------------------------------------------------- risk measures

def test_k_and_measures():
    check("k S=100", xr.k_of(100, 0.99) == 1)
    check("k S=1000", xr.k_of(1000, 0.99) == 10)
    check("k S=1", xr.k_of(1, 0.99) == 1)
    check("k S=250", xr.k_of(250, 0.99) == 3)
    check("k S=200 exact", xr.k_of(200, 0.99) == 2)
    L = np.array([3.0, -1.0, 10.0, 7.0, 0.5, 7.0, -4.0, 2.0, 1.0, 0.0])
    # alpha 0.8, S 10 -> k = 2: top two are 10, 7
    close("var", xr.risk_measure(L, "var", 0.8), 7.0, 0)
    close("es", xr.risk_measure(L, "es", 0.8), 8.5, 1e-15)
    # alpha 0.7 -> k = 3: 10, 7, 7
    close("es k3", xr.risk_measure(L, "es", 0.7), 8.0, 1e-15)
    close("worst", xr.risk_measure(L, "worst"), 10.0, 0)
    w = np.ones(10)
    w[2] = 0.35
    close("worst weighted", xr.risk_measure(L, "worst", weights=w), 7.0, 0)
    close("floor", xr.risk_measure(-np.abs(L) - 1, "es", 0.8), 0.0, 0)
    close("floor worst", xr.risk_measure(-np.abs(L) - 1, "worst"), 0.0, 0)


def test_ewma_historical():
    rng = np.random.default_rng(7)
    T, h, lam, lb = 40, 3, 0.9, 25
    r = rng.normal(0, 0.02, (T, 2))
    r[5, 1] = 0.1
    dates = ["d%02d" % t for t in range(1, T + 1)]
    for apc in (0.0, 1.5):
        sh, lab = xr.historical_set(r, dates, h, lam, apc, True, lb)
        # scalar loop straight from METHODOLOGY §1
        exp = np.zeros((lb - h + 1, 2))
        for f in range(2):
            s2 = [None, sum(x * x for x in r[:, f]) / T]      # 1-based
            for t in range(1, T + 1):
                s2.append(lam * s2[t] + (1 - lam) * r[t - 1, f] ** 2)
            now = max(math.sqrt(s2[T + 1]), apc * math.sqrt(s2[1]))
            rt = [None] + [r[t - 1, f] * now / math.sqrt(s2[t]) for t in range(1, T + 1)]
            for j, t in enumerate(range(T - lb + h, T + 1)):
                exp[j, f] = sum(rt[u] for u in range(t - h + 1, t + 1))
        close("fhs apc=%g" % apc, sh, exp, 1e-14)
        check("fhs labels", lab == dates[T - lb + h - 1:], str(lab[:3]))
    sh, _ = xr.historical_set(r, dates, 2, lam, 0.0, False, 1000)
    close("unfiltered", sh, r[1:] + r[:-1], 1e-15)
    check("S = W - h + 1", sh.shape == (T - 1, 2))
    # second moment and its stressed version
    w = xr.filtered_window(r, lam, 0.0, True, lb)
    sig = xr.second_moment(w)
    close("sigma", sig, sum(np.outer(x, x) for x in w) / lb, 1e-15)
    sk = xr.stressed_moment(sig, 0.25)
    close("sigma kappa diag", np.diag(sk), np.diag(sig), 0)
    close("sigma kappa off", sk[0, 1], 0.75 * sig[0, 1], 1e-18)
    L, d = xr.cholesky_jitter(np.ones((2, 2)))
    check("cholesky jitter", d > 0 and d < 1e-9, str(d))


# ------------------------------------------------------------- full book

def _s(lst):
    return np.array(lst, dtype=h5py.string_dtype())


def write_portfolio(path, factors, silos, instruments, accounts, positions, fixed_strings=False):
    sd = (lambda l: np.array(l, dtype="S")) if fixed_strings else _s
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.portfolio"
        f.attrs["format_version"] = 1
        f.attrs["valuation_date"] = "2024-06-28"
        f.attrs["currency"] = "USD"
        g = f.create_group("factors")
        g["name"] = sd([x[0] for x in factors])
        g["kind"] = sd([x[1] for x in factors])
        g["level"] = np.array([x[2] for x in factors], dtype=np.float32 if fixed_strings else np.float64)
        f.create_group("silos")["name"] = sd(silos)
        g = f.create_group("instruments")
        cols = ["id", "type", "silo", "underlying", "vol_factor", "strike", "expiry", "call",
                "implied_vol", "rate", "dividend_yield", "multiplier"]
        for j, c in enumerate(cols):
            vals = [ins[j] for ins in instruments]
            if c in ("id", "type"):
                g[c] = sd(vals)
            elif c in ("silo", "underlying", "vol_factor", "call"):
                g[c] = np.array(vals, dtype=np.int16 if fixed_strings else np.int32)
            else:
                g[c] = np.array(vals, dtype=np.float64)
        g = f.create_group("accounts")
        g["id"] = sd([a[0] for a in accounts])
        g["cross_margin"] = np.array([a[1] for a in accounts], dtype=np.int8)
        g = f.create_group("positions")
        g["account"] = np.array([p[0] for p in positions], dtype=np.int64)
        g["instrument"] = np.array([p[1] for p in positions], dtype=np.int32)
        g["quantity"] = np.array([p[2] for p in positions], dtype=np.float64)


def write_scenarios(path, hist_factors, dates, returns, sets):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "xmargin.scenarios"
        f.attrs["format_version"] = 1
        g = f.create_group("history")
        g["factor"] = _s(hist_factors)
        g["date"] = np.array(dates, dtype="S10")
        g["return"] = returns
        for name, s in sets.items():
            g = f.create_group("sets/" + name)
            g["factor"] = _s(s["factor"])
            g["shock"] = np.asarray(s["shock"], dtype=np.float64)
            g["label"] = _s(["s%d" % i for i in range(len(s["shock"]))])
            if "weight" in s:
                g["weight"] = np.asarray(s["weight"], dtype=np.float64)
            if "measure" in s:
                g.attrs["measure"] = s["measure"]
            if "confidence" in s:
                g.attrs["confidence"] = s["confidence"]


def make_book(tmp, fixed_strings=False):
    factors = [("SPX", "price", 100.0), ("SPX.iv", "vol", 0.2), ("ES", "price", 100.0),
               ("BTC", "price", 60000.0), ("USD.r", "rate", 0.05)]
    silos = ["securities", "futures", "crypto"]
    #  id, type, silo, und, vf, K, T, call, iv, r, q, mult
    instruments = [
        ("SPX.spot", "spot", 0, 0, -1, 0, 0, 0, 0, 0, 0, 10.0),
        ("ES.fut", "future", 1, 2, -1, 0, 0, 0, 0, 0, 0, 10.0),
        ("SPX.c100", "option", 0, 0, 1, 100.0, 0.25, 1, 0.2, 0.05, 0.01, 100.0),
        ("ES.p95", "future_option", 1, 2, 1, 95.0, 0.5, 0, 0.22, 0.05, 0.0, 50.0),
        ("BTC.spot", "spot", 2, 3, -1, 0, 0, 0, 0, 0, 0, 1.0),
        ("SPX.p90.exp", "option", 0, 0, -1, 90.0, 0.004, 0, 0.3, 0.05, 0.0, 100.0),
    ]
    accounts = [("hedged", 1), ("hedged_nocm", 0), ("options", 1), ("empty", 1)]
    positions = [(0, 0, 5.0), (0, 1, -3.0), (0, 1, -2.0),         # repeated pair adds: -5
                 (1, 0, 5.0), (1, 1, -5.0),
                 (2, 2, -4.0), (2, 3, 6.0), (2, 4, 0.5), (2, 5, 2.0), (2, 0, 1.0)]
    port = os.path.join(tmp, "p%d.h5" % fixed_strings)
    write_portfolio(port, factors, silos, instruments, accounts, positions, fixed_strings)
    rng = np.random.default_rng(3)
    T = 300
    spx = rng.normal(0, 0.012, T)
    hist = np.column_stack([spx, rng.normal(0, 0.004, T), spx,   # ES moves exactly like SPX
                            rng.normal(0, 0.03, T), rng.normal(0, 1e-4, T)])
    dates = ["2023-%03d" % t for t in range(T)]
    sets = {
        "stress": {"factor": ["SPX", "ES", "BTC", "SPX.iv", "GOLD"],
                   "shock": [[-0.2, -0.2, -0.3, 0.15, 0.5], [0.1, 0.1, 0.2, -0.05, -0.5],
                             [-0.05, -0.05, 0.0, 0.3, 0.0]],
                   "weight": [1.0, 0.35, 1.0], "measure": "worst"},
        "another": {"factor": ["BTC"], "shock": [[-0.5], [0.1]], "measure": "es", "confidence": 0.5},
    }
    scen = os.path.join(tmp, "s%d.h5" % fixed_strings)
    write_scenarios(scen, [f[0] for f in factors], dates, hist, sets)
    return port, scen


def by_hand_losses(port, sets_shocks, h=2, vol_floor=0.01):
    """Per-instrument losses written out scalar by scalar from §2."""
    p = xr.read_portfolio(port)
    out = []
    for x in sets_shocks:
        row = []
        for i in range(len(p["instrument_id"])):
            typ, u, vf = p["type"][i], p["underlying"][i], p["vol_factor"][i]
            S0 = p["factor_level"][u]
            S1 = S0 * math.exp(x[u])
            m = p["multiplier"][i]
            if typ < 2:
                row.append(m * (S0 - S1))
                continue
            K, T, call = p["strike"][i], p["expiry"][i], bool(p["call"][i])
            r, q, iv = p["rate"][i], (p["dividend_yield"][i] if typ == 2 else 0.0), p["implied_vol"][i]
            T1 = max(T - h / 252.0, 0.0)
            v1 = max(iv + (x[vf] if vf >= 0 else 0.0), vol_floor)

            def val(S, TT, v):
                if TT <= 0:
                    return max(S - K, 0) if call else max(K - S, 0)
                if typ == 2:
                    return bs_scalar(S, K, TT, r, q, v, call)
                return math.exp(-r * TT) * bs_scalar(S, K, TT, 0.0, 0.0, v, call)
            row.append(m * (val(S0, T, iv) - val(S1, T1, v1)))
        out.append(row)
    return np.array(out)


def test_revalue_by_hand(tmp):
    port, _ = make_book(tmp)
    p = xr.read_portfolio(port)
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.05, (7, 5))
    x[0] = 0.0
    ell = xr.revalue(p, x, 2, 0.01, 0.0)
    close("revalue by hand", ell, by_hand_losses(port, x), 1e-8)
    check("unshocked option time decay", ell[0, 2] > 0 and ell[0, 0] == 0)
    # vol term power: 30/max(365 T, 1) with T the expiry today
    ell_p = xr.revalue(p, np.array([[0, 0.1, 0, 0, 0]]), 2, 0.01, 0.5)
    p2 = dict(p)
    p2["implied_vol"] = p["implied_vol"].copy()
    scale = (30.0 / (365.0 * 0.25)) ** 0.5
    # same loss as a parallel shift of 0.1*scale on the SPX option
    ell_q = xr.revalue(p, np.array([[0, 0.1 * scale, 0, 0, 0]]), 2, 0.01, 0.0)
    close("vol term power", ell_p[0, 2], ell_q[0, 2], 1e-9)
    # vol floor: a -1.0 vol shock floors sigma' at vol_floor
    ell_f = xr.revalue(p, np.array([[0, -1.0, 0, 0, 0]]), 2, 0.01, 0.0)
    ph = by_hand_losses(port, [[0, -1.0, 0, 0, 0]])
    close("vol floor", ell_f, ph, 1e-8)
    # expired-by-horizon option: intrinsic at S'
    ell_e = xr.revalue(p, np.array([[-0.2, 0, 0, 0, 0]]), 2, 0.01, 0.0)
    v0 = 100 * bs_scalar(100, 90, 0.004, 0.05, 0.0, 0.3, False)
    close("expired by horizon", ell_e[0, 5], v0 - 100 * (90 - 100 * math.exp(-0.2)), 1e-9)
    # zero vol with vol_floor = 0: the discounted forward's intrinsic value
    p0 = dict(p)
    p0["implied_vol"] = p["implied_vol"] * 0.0
    x0 = np.array([[0.01, 0, 0, 0, 0], [-0.3, 0, 0.2, 0, 0]])
    l0 = xr.revalue(p0, x0, 2, 0.0, 0.0)
    T1 = 0.25 - 2 / 252.0
    S1 = 100 * np.exp(x0[:, 0])
    v0 = 100 * max(100 * math.exp(-0.01 * 0.25) - 100 * math.exp(-0.05 * 0.25), 0)
    close("zero vol scenario", l0[:, 2],
          v0 - 100 * np.maximum(S1 * math.exp(-0.01 * T1) - 100 * math.exp(-0.05 * T1), 0), 1e-9)
    T1 = 0.5 - 2 / 252.0
    F1 = 100 * np.exp(x0[:, 2])
    close("zero vol black76 put", l0[:, 3],
          -50 * math.exp(-0.05 * T1) * np.maximum(95 - F1, 0), 1e-9)
    # a rate factor's shock does not move instruments (their own rate column)
    ell_r = xr.revalue(p, np.array([[0, 0, 0, 0, 0.5]]), 2, 0.01, 0.0)
    close("rate factor unlinked", ell_r, xr.revalue(p, np.zeros((1, 5)), 2, 0.01, 0.0), 0)


def test_book(tmp):
    for fixed in (False, True):
        port, scen = make_book(tmp, fixed)
        ref = xr.compute(port, scen, None, {"montecarlo.enabled": False}, keep_pnl=True)
        tag = " fixed" if fixed else ""
        check("sets order" + tag, ref["sets"] == ["historical", "another", "stress"], str(ref["sets"]))
        check("hist scenarios", ref["n_scenarios"][0] == 300 - 2 + 1)
        # hedged account: spot long 5 x 10 vs future short 5 x 10 on identical moves
        close("hedged unified ~0" + tag, ref["unified"][0], 0.0, 1e-9)
        sil = ref["siloed"][0]
        check("hedged siloed large" + tag, sil > 100.0, str(sil))
        close("hedged diversification", ref["diversification"][0], sil, 1e-9)
        close("cross-margined U+0.2D" + tag, ref["requirement"][0],
              ref["unified"][0] + 0.2 * ref["diversification"][0], 1e-9)
        close("cross_margin=0 gets siloed" + tag, ref["requirement"][1], ref["siloed"][1], 1e-12)
        close("same book same siloed", ref["siloed"][1], sil, 1e-9)
        # the minimum counts option and future_option positions: 0.375*(4*100 + 6*50 + 2*100)
        close("minimum", ref["minimum"], [0, 0, 0.375 * 900, 0], 1e-12)
        close("empty account", [ref["requirement"][3], ref["unified"][3]], [0, 0], 0)
        check("empty binds first", ref["binding_set"][3] == 0)
        close("attribution sums", ref["attribution"].sum(axis=1)[:3], ref["unified"][:3], 1e-9)
        # every set's measure recomputed from the saved P&L
        for kx, name in enumerate(ref["sets"]):
            L = ref["pnl"][name]
            if name == "historical":
                exp = [xr.risk_measure(L[:, a], "es", 0.99) for a in range(4)]
            elif name == "stress":
                exp = [xr.risk_measure(L[:, a], "worst", weights=[1, 0.35, 1]) for a in range(4)]
            else:
                exp = [xr.risk_measure(L[:, a], "es", 0.5) for a in range(4)]
            close("by_set %s%s" % (name, tag), ref["by_set"][:, kx], exp, 1e-9)
        # the stress set ignores GOLD; "another" moves BTC only: account 2 holds 0.5 BTC
        # whole-account P&L equals the by-hand revaluation times quantities
        p = xr.read_portfolio(port)
        Q = np.zeros((4, 6))
        for a, i, qq in zip(p["pos_account"], p["pos_instrument"], p["pos_quantity"]):
            Q[a, i] += qq
        xb = xr.align_shocks(["BTC"], np.array([[-0.5]]), p["factor_name"])
        x0 = np.zeros((1, 5))
        decay = (by_hand_losses(port, x0) @ Q.T)[0, 2]
        close("another set", ref["by_set"][2, 1], (by_hand_losses(port, xb) @ Q.T)[0, 2], 1e-8)
        close("another set = btc + decay", ref["by_set"][2, 1], 0.5 * 60000 * (1 - math.exp(-0.5)) + decay, 1e-8)
        x = xr.align_shocks(["SPX", "ES", "BTC", "SPX.iv", "GOLD"],
                            np.array([[-0.2, -0.2, -0.3, 0.15, 0.5], [0.1, 0.1, 0.2, -0.05, -0.5],
                                      [-0.05, -0.05, 0.0, 0.3, 0.0]]), p["factor_name"])
        ell = by_hand_losses(port, x)
        Q = np.zeros((4, 6))
        for a, i, qq in zip(p["pos_account"], p["pos_instrument"], p["pos_quantity"]):
            Q[a, i] += qq
        close("pnl by hand" + tag, ref["pnl"]["stress"], ell @ Q.T, 1e-7)
        # silo core / attribution for the worst set at the argmax scenario
        la = ref["pnl"]["stress"][:, 2] * np.array([1, 0.35, 1])
        s_star = int(np.argmax(la))
        if ref["binding_set"][2] == 2:
            close("worst attribution", ref["attribution"][2],
                  np.array([1, 0.35, 1])[s_star] * ref["pnl_silo"]["stress"][s_star, 2], 1e-9)
        by_silo = np.zeros(3)
        for kx, name in enumerate(ref["sets"]):
            Lg = ref["pnl_silo"][name][:, 2, :]
            meas, conf, w = {"historical": ("es", 0.99, None), "stress": ("worst", 0.99, [1, 0.35, 1]),
                             "another": ("es", 0.5, None)}[name]
            by_silo = np.maximum(by_silo, [xr.risk_measure(Lg[:, g], meas, conf, w) for g in range(3)])
        close("by_silo", ref["by_silo"][2], by_silo, 1e-9)
        # chunking: tiny memory budget forces account blocks and scenario chunks
        small = xr.compute(port, scen, None, {"montecarlo.enabled": False,
                                              "reference.memory_budget": 20000,
                                              "reference.loss_budget": 20000})
        for k in ("requirement", "by_set", "by_silo", "attribution", "binding_set"):
            close("chunked %s%s" % (k, tag), small[k], ref[k], 1e-9)


def test_attribution_es_ties():
    # two accounts, one silo each side; L_a has a tie at the k-th place
    LA = np.array([[5.0], [9.0], [5.0], [1.0]])
    LAG = np.array([[[2.0, 3.0]], [[9.0, 0.0]], [[4.0, 1.0]], [[0.0, 1.0]]])
    raw, attr, silo = xr._set_measures(LA, LAG, "es", 0.5, np.ones(4), "mean", np)   # k = 2
    close("es tie value", raw, [7.0], 1e-15)
    close("es tie attribution lower index", attr, [[5.5, 1.5]], 1e-15)
    raw, attr, silo = xr._set_measures(LA, LAG, "var", 0.5, np.ones(4), "kth", np)
    close("var kth attribution", attr, [[2.0, 3.0]], 0)
    close("var value", raw, [5.0], 0)
    raw, attr, silo = xr._set_measures(LA, LAG, "worst", 0.5, np.array([1, 0.5, 1, 1.0]), "mean", np)
    close("worst weighted attr", (raw[0], attr[0, 0], attr[0, 1]), (5.0, 2.0, 3.0), 0)
    close("worst silo", silo, [[4.5, 3.0]], 0)


def test_results_shocks_and_compare(tmp):
    port, scen = make_book(tmp)
    p = xr.read_portfolio(port)
    rng = np.random.default_rng(5)
    mc = rng.normal(0, 0.02, (500, 3))
    res = os.path.join(tmp, "r.h5")
    ref0 = xr.compute(port, scen, None, {"montecarlo.enabled": False})
    with h5py.File(res, "w") as f:
        f.attrs["format"] = "xmargin.results"
        f.attrs["format_version"] = 1
        g = f.create_group("scenarios/montecarlo")
        g["factor"] = _s(["ES", "SPX", "SPX.iv"])          # another column order
        g["shock"] = mc
        g["label"] = _s([str(i) for i in range(500)])
    ref = xr.compute(port, scen, res, {}, keep_pnl=True)
    check("mc set from results", ref["sets"] == ["historical", "montecarlo", "another", "stress"],
          str(ref["sets"]))
    x = xr.align_shocks(["ES", "SPX", "SPX.iv"], mc, p["factor_name"])
    close("mc shock mapping", x[:, 0], mc[:, 1], 0)
    Q = np.zeros((4, 6))
    for a, i, qq in zip(p["pos_account"], p["pos_instrument"], p["pos_quantity"]):
        Q[a, i] += qq
    close("mc pnl", ref["pnl"]["montecarlo"], xr.revalue(p, x) @ Q.T, 1e-8)
    close("mc k=5 es", ref["by_set"][2, 1],
          max(0.0, np.sort(ref["pnl"]["montecarlo"][:, 2])[::-1][:5].mean()), 1e-9)
    # write the reference itself as a results file: compare passes; perturb: fails
    with h5py.File(res, "a") as f:
        f["account"] = _s(ref["accounts"])
        f["set"] = _s(ref["sets"])
        f["silo"] = _s(ref["silos"])
        for k in xr.MARGIN_DATASETS:
            f["margin/" + k] = ref[k]
    import io
    buf = io.StringIO()
    ok, rep = xr.compare(ref, res, 1e-9, buf)
    check("compare self", ok, buf.getvalue())
    with h5py.File(res, "a") as f:
        d = f["margin/requirement"]
        v = d[()]
        v[2] *= 1 + 1e-6
        d[...] = v
    ok, rep = xr.compare(ref, res, 1e-9, io.StringIO())
    check("compare catches a 1e-6 error", not ok and rep["requirement"] > 1e-9, str(rep))
    rc = xr.main(["--portfolio", port, "--scenarios", scen, "--compare", res, "--quiet"])
    check("cli compare exit 1", rc == 1)
    with h5py.File(res, "a") as f:
        f["margin/requirement"][...] = ref["requirement"]
    rc = xr.main(["--portfolio", port, "--scenarios", scen, "--compare", res, "--quiet"])
    check("cli compare exit 0", rc == 0)
    # correlation stress: stressed set read too when kappa > 0
    with h5py.File(res, "a") as f:
        g = f.create_group("scenarios/montecarlo_stressed")
        g["factor"] = _s(["ES", "SPX", "SPX.iv"])
        g["shock"] = mc * 0.5
    ref2 = xr.compute(port, scen, res, {"montecarlo.correlation_stress": 0.3})
    check("stressed set order", ref2["sets"][:3] == ["historical", "montecarlo", "montecarlo_stressed"])
    mm = xr.montecarlo_moments(p, xr.read_scenarios(scen), {"montecarlo.correlation_stress": 0.5})
    check("mc moments factors", mm["factor"] == ["SPX", "SPX.iv", "ES", "BTC"], str(mm["factor"]))
    close("mc moments spx=es", mm["sigma"][0, 0], mm["sigma"][2, 2], 1e-18)
    close("mc moments kappa", mm["sigma_kappa"][0, 2], 0.5 * mm["sigma"][0, 2], 1e-18)
    # numpy Monte Carlo runs end to end
    ref3 = xr.compute(port, scen, None, {"montecarlo.source": "numpy", "montecarlo.scenarios": 2000})
    check("numpy mc", ref3["sets"][1] == "montecarlo" and ref3["n_scenarios"][1] == 2000)
    close("historical unchanged by mc", ref3["by_set"][:, 0], ref0["by_set"][:, 0], 0)


# ------------------------------------------------- version 2: products and currencies

def b76_scalar(F, K, T, r, v, call):
    return math.exp(-r * T) * bs_scalar(F, K, T, 0.0, 0.0, v, call)


V2_FACTORS = [("SPX", "price", 100.0), ("SPX.iv", "vol", 0.2), ("BTC", "price", 50000.0),
              ("BTC.iv", "logvol", 0.6), ("BTCF", "price", 50500.0), ("ETH", "price", 2500.0),
              ("EUR", "price", 1.1), ("SX", "price", 4000.0), ("SX.iv", "logvol", 0.18),
              ("JPY", "price", 0.0065), ("GOLD", "price", 2300.0)]
V2_FX = [("BTC", 2), ("ETH", 5), ("EUR", 6), ("JPY", 9)]
V2_INSTRUMENTS = [
    dict(id="amer", type="american_option", silo=0, underlying=0, vol_factor=1, strike=105.0, expiry=0.5,
         call=0, implied_vol=0.25, rate=0.05, dividend_yield=0.01, multiplier=100.0),
    dict(id="perp", type="perpetual", silo=2, underlying=2, multiplier=0.5, funding_rate=0.10),
    dict(id="perp_neg", type="perpetual", silo=2, underlying=5, multiplier=2.0, funding_rate=-0.05),
    dict(id="invfut", type="inverse_future", silo=2, underlying=4, multiplier=10.0, currency="BTC"),
    dict(id="invperp", type="inverse_perpetual", silo=2, underlying=2, multiplier=10.0, currency="BTC",
         funding_rate=0.2),
    dict(id="invopt", type="inverse_option", silo=2, underlying=2, vol_factor=3, strike=52000.0, expiry=0.1,
         call=1, implied_vol=0.6, rate=0.01, multiplier=1.0, currency="BTC"),
    dict(id="invopt_dead", type="inverse_option", silo=2, underlying=2, vol_factor=3, strike=51000.0,
         expiry=0.004, call=0, implied_vol=0.6, multiplier=1.0, currency="BTC"),
    dict(id="sx_spot", type="spot", silo=0, underlying=7, multiplier=10.0, currency="EUR"),
    dict(id="sx_call", type="option", silo=0, underlying=7, vol_factor=8, strike=4000.0, expiry=0.25, call=1,
         implied_vol=0.18, rate=0.03, dividend_yield=0.02, multiplier=10.0, currency="EUR"),
    dict(id="sx_fut", type="future", silo=1, underlying=7, multiplier=10.0, currency="EUR"),
    dict(id="eth_invfut", type="inverse_future", silo=2, underlying=5, multiplier=10.0, currency="ETH"),
    dict(id="gold_amer_call", type="american_option", silo=0, underlying=10, strike=2200.0, expiry=0.004,
         call=1, implied_vol=0.15, rate=0.05, dividend_yield=0.0, multiplier=1.0),
]
# accounts: USD (cross), BTC (cross), EUR (not eligible), JPY (empty), USD short perp
V2_ACCOUNTS = [("usd", 1, "USD"), ("btc", 1, "BTC"), ("eur", 0, "EUR"), ("jpy_empty", 1, "JPY"),
               ("usd_short", 1, "USD")]
V2_POSITIONS = [(0, 0, 2.0), (0, 1, 3.0), (0, 3, -4.0), (0, 5, 1.0), (0, 7, 1.0), (0, 11, 1.0),
                (1, 4, 5.0), (1, 5, -2.0), (1, 6, 3.0), (1, 2, 1.0), (1, 10, 2.0),
                (2, 7, 2.0), (2, 8, -1.0), (2, 9, -2.0), (2, 0, 1.0),
                (4, 1, -3.0), (4, 2, -1.0), (4, 6, 2.0), (4, 6, -2.0)]      # last pair nets to 0


def v2_book(tmp):
    port = os.path.join(tmp, "v2.h5")
    tl.write_portfolio(port, V2_FACTORS, ["securities", "futures", "crypto"], V2_INSTRUMENTS, V2_ACCOUNTS,
                       V2_POSITIONS, fx=V2_FX)
    return port


def v2_by_hand(p, x, bcur, h=2, floor=0.01, power=0.0):
    """One contract of every instrument, loss in currency bcur, each formula written
    out from METHODOLOGY §2.1-2.3 scalar by scalar."""
    lv = p["factor_level"]
    fxrow = {"BTC": 2, "ETH": 5, "EUR": 6, "JPY": 9}
    X0 = lambda c: 1.0 if c == "USD" else lv[fxrow[c]]
    X1 = lambda c: 1.0 if c == "USD" else lv[fxrow[c]] * math.exp(x[fxrow[c]])
    row = []
    for ins in V2_INSTRUMENTS:
        d = dict(tl.INSTRUMENT_DEFAULTS, **ins)
        c = d.get("currency", "USD")
        u, m = d["underlying"], d["multiplier"]
        S0 = lv[u]
        S1 = S0 * math.exp(x[u])
        K, T, r, q, iv, call = d["strike"], d["expiry"], d["rate"], d["dividend_yield"], d["implied_vol"], \
            bool(d["call"])
        T1 = max(T - h / 252.0, 0.0)
        vf = d["vol_factor"]
        sc = (30.0 / max(365.0 * T, 1.0)) ** power
        if vf >= 0 and V2_FACTORS[vf][1] == "logvol":
            iv1 = max(iv * math.exp(x[vf] * sc), floor)
        else:
            iv1 = max(iv + (x[vf] * sc if vf >= 0 else 0.0), floor)
        intr = lambda S: max(S - K, 0.0) if call else max(K - S, 0.0)
        t = d["type"]
        settled = t in ("future", "perpetual", "inverse_future", "inverse_perpetual")
        phi = 0.0
        if t == "spot":
            v0, v1 = m * S0, m * S1
        elif t in ("future", "perpetual"):
            dl = m * (S0 - S1)
            if t == "perpetual":
                phi = d["funding_rate"] * m * S0 * h / 252.0
        elif t in ("inverse_future", "inverse_perpetual"):
            dl = m * (1.0 / S1 - 1.0 / S0)
            if t == "inverse_perpetual":
                phi = d["funding_rate"] * (m / S0) * h / 252.0
        elif t == "option":
            v0 = m * bs_scalar(S0, K, T, r, q, iv, call)
            v1 = m * (bs_scalar(S1, K, T1, r, q, iv1, call) if T1 > 0 else intr(S1))
        elif t == "american_option":
            v0 = m * xm_american.bs2002(S0, K, T, r, r - q, iv, call)
            v1 = m * (xm_american.bs2002(S1, K, T1, r, r - q, iv1, call) if T1 > 0 else intr(S1))
        elif t == "inverse_option":
            v0 = m * b76_scalar(S0, K, T, r, iv, call) / S0
            v1 = m * (b76_scalar(S1, K, T1, r, iv1, call) if T1 > 0 else intr(S1)) / S1
        R0 = X0(c) / X0(bcur)
        R1 = X1(c) / X1(bcur)
        row.append((dl + phi) * R1 if settled else v0 * R0 - v1 * R1)
    return np.array(row)


def test_v2_products(tmp):
    port = v2_book(tmp)
    p = xr.read_portfolio(port)
    check("v2 read: format_version 2", p["format_version"] == 2)
    check("v2 read: currencies", p["account_currency"] == ["USD", "BTC", "EUR", "JPY", "USD"] and
          p["instrument_currency"][3] == "BTC" and p["instrument_currency"][0] == "USD",
          str(p["account_currency"]))
    check("v2 read: fx rows", list(p["instrument_fx"][[0, 3, 7, 10]]) == [-1, 2, 6, 5] and
          list(p["account_fx"]) == [-1, 2, 6, 9, -1])
    # moved factors: the held instruments' underlyings and vol factors, their currencies'
    # /fx factors, every account's /fx factor (JPY: an empty account); instrument 6 is
    # held by account 4 with a net 0 but by account 1 with 3
    mv = [p["factor_name"][i] for i in xr.moved_factors(p)]
    check("v2 moved factors", mv == ["SPX", "SPX.iv", "BTC", "BTC.iv", "BTCF", "ETH", "EUR", "SX", "SX.iv",
                                      "JPY", "GOLD"], str(mv))
    rng = np.random.default_rng(21)
    F = len(V2_FACTORS)
    x = rng.normal(0, 0.05, (6, F))
    x[0] = 0.0
    x[1, :] = 0.0
    x[1, 2] = -0.3                      # BTC -30%: the perp, invperp and inverse options, the BTC rate
    x[1, 3] = 0.4                       # BTC.iv logvol +0.4: sigma 0.6 -> 0.6 e^0.4
    x[2, 6] = 0.1                       # EURUSD +10% alone
    for bcur, bfx in (("USD", -1), ("BTC", 2), ("EUR", 6), ("JPY", 9)):
        for power in (0.0, 0.5):
            got = xr.revalue(p, x, 2, 0.01, power, account_fx=bfx)
            exp = np.array([v2_by_hand(p, xs, bcur, 2, 0.01, power) for xs in x])
            sc = np.maximum(np.abs(exp), 1e-300)
            ok = np.all(np.abs(got - exp) <= 1e-9 * sc + 1e-14 * np.abs(exp).max(axis=0))
            check("v2 revalue by hand, account in %s, vol power %g" % (bcur, power), ok,
                  "max rel %.2e" % float(np.max(np.abs(got - exp) / sc)))
    # unshocked: a perpetual's loss is its funding, f m S0 h/252 (a loss for a long)
    l0 = xr.revalue(p, np.zeros((1, F)), 5, 0.01, 0.0)[0]
    close("perpetual funding, f > 0: long pays", l0[1], 0.10 * 0.5 * 50000 * 5 / 252, 1e-12)
    close("perpetual funding, f < 0: long receives", l0[2], -0.05 * 2.0 * 2500 * 5 / 252, 1e-12)
    l0b = xr.revalue(p, np.zeros((1, F)), 5, 0.01, 0.0, account_fx=2)[0]
    close("inverse perpetual funding in coins: f m/S0 h/252", l0b[4], 0.2 * 10 / 50000 * 5 / 252, 1e-18)
    close("inverse future unshocked: 0", l0b[3], 0.0, 0)
    # inverse future: coin loss m (1/F1 - 1/F0); in USD times X_BTC(x)
    xs = np.zeros((1, F))
    xs[0, 4] = math.log(55000 / 50500)     # BTCF to 55000
    xs[0, 2] = math.log(0.9)               # BTC to 45000
    lb = xr.revalue(p, xs, 2, 0.01, 0.0, account_fx=2)[0]
    lu = xr.revalue(p, xs, 2, 0.01, 0.0)[0]
    close("inverse future coin loss", lb[3], 10 * (1 / 55000 - 1 / 50500), 1e-17)
    close("inverse future USD loss at the scenario's rate", lu[3], 10 * (1 / 55000 - 1 / 50500) * 45000, 1e-11)
    # settled type in another currency: no FX risk on the notional -- an EUR future
    # in a USD account with only EURUSD moving loses nothing
    xe = np.zeros((1, F))
    xe[0, 6] = 0.1
    close("EUR future in USD, EURUSD +10%: no loss", xr.revalue(p, xe)[0, 9], 0.0, 0)
    # a value type does carry it: the EUR spot loses (1.1 - 1.1 e^0.1) * 10 * 4000
    close("EUR spot in USD, EURUSD +10%", xr.revalue(p, xe)[0, 7], 10 * 4000 * 1.1 * (1 - math.exp(0.1)), 1e-8)
    # and in the EUR account the same spot has no FX loss
    close("EUR spot in EUR, EURUSD +10%: 0", xr.revalue(p, xe, account_fx=6)[0, 7], 0.0, 0)
    # a USD perpetual in a BTC account: (m (S0 - S1) + Phi) X_USD / X_BTC(x)
    xb = np.zeros((1, F))
    xb[0, 2] = 0.05
    close("USD perpetual in BTC account", xr.revalue(p, xb, 2, 0.01, 0.0, account_fx=2)[0, 1],
          (0.5 * 50000 * (1 - math.exp(0.05)) + 0.1 * 0.5 * 50000 * 2 / 252) / (50000 * math.exp(0.05)), 1e-15)
    # inverse option expired by the horizon: m max(K - F, 0) / F coins
    close("inverse option intrinsic at T' <= 0", xr.revalue(p, xb, 2, 0.01, 0.0, account_fx=2)[0, 6],
          b76_scalar(50000, 51000, 0.004, 0.0, 0.6, False) / 50000 - max(51000 - 50000 * math.exp(0.05), 0) /
          (50000 * math.exp(0.05)), 1e-15)
    # contract_values of the new types agree with the loss path's today values
    close("contract_values american", xr.contract_values(4, 100.0, 105.0, 0.5, 0.05, 0.01, 0.25, 0, 100.0),
          100 * xm_american.bs2002(100.0, 105.0, 0.5, 0.05, 0.04, 0.25, False), 1e-12)
    close("contract_values inverse_option", xr.contract_values(8, 50000.0, 52000.0, 0.1, 0.01, 0.0, 0.6, 1, 1.0),
          b76_scalar(50000, 52000, 0.1, 0.01, 0.6, True) / 50000, 1e-15)
    prem = float(xr.contract_values(4, 100.0, 105.0, 0.5, 0.05, 0.01, 0.25, 0, 1.0) -
                 xr.contract_values(2, 100.0, 105.0, 0.5, 0.05, 0.01, 0.25, 0, 1.0))
    check("american put worth more than the european (early exercise premium)", prem > 0, str(prem))
    lp0 = xr.revalue(p, x, 2, 0.01, 0.0)
    lp5 = xr.revalue(p, x, 2, 0.01, 0.5)
    check("vol term power moves the options linked to a vol factor only",
          np.all(np.abs(lp5 - lp0)[3:, [0, 5, 8]] > 0) and np.all(lp5[:, [1, 2, 3, 7, 9, 11]] == lp0[:, [1, 2, 3, 7, 9, 11]]))

    # the whole run on ready-made sets: P&L = positions x by-hand losses, minimum, G_a
    sets = {"moves": {"factor": [f[0] for f in V2_FACTORS], "shock": x, "measure": "worst"},
            "zero": {"factor": ["SPX"], "shock": [[0.0]], "measure": "worst"}}
    scen = os.path.join(tmp, "v2s.h5")
    tl.write_scenarios(scen, None, sets)
    ref = xr.compute(port, scen, None, {"historical.enabled": False, "montecarlo.enabled": False},
                     keep_pnl=True)
    Q = np.zeros((5, len(V2_INSTRUMENTS)))
    for a, i, qq in V2_POSITIONS:
        Q[a, i] += qq
    curs = [a[2] for a in V2_ACCOUNTS]
    exp = np.array([[v2_by_hand(p, xs, curs[a]) @ Q[a] for a in range(5)] for xs in x])
    got = ref["pnl"]["moves"]
    close("v2 pnl by hand (every account in its currency)", got / np.maximum(np.abs(exp), 1e-6),
          exp / np.maximum(np.abs(exp), 1e-6), 1e-9)
    # funding sign, whole accounts, unshocked: account 4 is short 3 perp (f > 0) and 1
    # perp_neg (f < 0): both receive
    zl = ref["pnl"]["zero"][0]
    close("funding sign: short perp receives, short perp_neg pays",
          zl[4], -3 * 0.10 * 0.5 * 50000 * 2 / 252 + 1 * 0.05 * 2.0 * 2500 * 2 / 252, 1e-10)
    check("funding sign: account 4 gains unshocked", zl[4] < 0, str(zl[4]))
    # minimum: option types incl. american_option and inverse_option, / X_b
    mn = [0.375 * (2 * 100 + 1 * 1 + 1 * 1), 0.375 * (2 + 3) / 50000, 0.375 * (1 * 10 + 1 * 100) / 1.1, 0.0,
          0.375 * 0.0]
    close("v2 minimum (option types, / X_b today)", ref["minimum"], mn, 1e-12)
    check("v2 currency output", ref["currency"] == curs and ref["format_version"] == 2)
    # G_a of the BTC account by hand: |q| (|V0| [value] + N) R(0)
    g1 = (5 * (10 / 50000) * 1.0                                           # invperp: N = m/S0, settled
          + 2 * (b76_scalar(50000, 52000, 0.1, 0.01, 0.6, True) / 50000 + 1.0)   # invopt: |V0| + m
          + 3 * (b76_scalar(50000, 51000, 0.004, 0.0, 0.6, False) / 50000 + 1.0)
          + 1 * (2.0 * 2500) / 50000                                       # perp_neg: N = m S0, USD -> BTC
          + 2 * (10 / 2500) * 2500 / 50000)                                # ETH inverse future: ETH -> BTC
    close("G_a of the BTC account", ref["gross_value"][1], g1, 1e-15)
    close("Lambda_a = max |L_a|", ref["gross_loss"],
          np.max(np.abs(np.vstack([ref["pnl"]["moves"], ref["pnl"]["zero"]])), axis=0), 0)
    return port, scen, ref


def test_v2_compare(tmp):
    """§5 tolerances in compare: double 1e-9 max(|x|, Lambda_a) for version 2,
    single 1e-4 M_a + 1e-6 G_a; requirement masked for non-eligible accounts."""
    import io
    port = v2_book(tmp)
    rng = np.random.default_rng(8)
    sets = {"moves": {"factor": [f[0] for f in V2_FACTORS], "shock": rng.normal(0, 0.05, (40, len(V2_FACTORS))),
                      "measure": "es", "confidence": 0.9}}
    scen = os.path.join(tmp, "v2c.h5")
    tl.write_scenarios(scen, None, sets)
    ref = xr.compute(port, scen, None, {"historical.enabled": False, "montecarlo.enabled": False})
    res = os.path.join(tmp, "v2r.h5")

    def write(prec, bump=None):
        with h5py.File(res, "w") as f:
            f.attrs["format"] = "xmargin.results"
            f.attrs["format_version"] = 2
            f.attrs["precision"] = prec
            f["account"] = _s(ref["accounts"])
            f["set"] = _s(ref["sets"])
            for k in xr.MARGIN_DATASETS:
                v = np.array(ref[k], copy=True)
                if bump and k == bump[0]:
                    v[bump[1]] += bump[2]
                f["margin/" + k] = v
    write("double")
    ok, rep = xr.compare(ref, res, out=io.StringIO())
    check("v2 compare self (double)", ok, str(rep))
    a = 1                                                   # the BTC account
    lam = ref["gross_loss"][a]
    for k, within in (("unified", True), ("unified", False)):
        x = ref[k][a]
        tol = 1e-9 * max(abs(x), lam)
        write("double", (k, a, 0.5 * tol if within else 3 * tol))
        ok, rep = xr.compare(ref, res, out=io.StringIO())
        check("v2 double tolerance 1e-9 max(|x|, Lambda_a): %s" % ("within passes" if within else "3x fails"),
              ok == within, str(rep.get(k)))
    M, G = ref["requirement"][a], ref["gross_value"][a]
    tol = 1e-4 * M + 1e-6 * G
    for within in (True, False):
        write("single", ("by_silo", (a, 2), 0.5 * tol if within else 3 * tol))
        ok, rep = xr.compare(ref, res, out=io.StringIO())
        check("single tolerance 1e-4 M_a + 1e-6 G_a: %s" % ("within passes" if within else "3x fails"),
              ok == within, str(rep.get("by_silo")))
    # requirement masked where the account is not eligible (account 2)
    write("double", ("requirement", 2, 1.0))
    ok, _ = xr.compare(ref, res, out=io.StringIO())
    check("requirement of a non-eligible account compared by default", not ok)
    ok, rep = xr.compare(ref, res, out=io.StringIO(), rows={"requirement": ref["eligible"]})
    check("requirement masked to eligible accounts", ok, str(rep))



# ------------------------------------- version 2: §4 add-on, buffer, non-eligible rule, §6 collateral

LQ_FACTORS = [("SPX", "price", 5000.0, {"half_spread": 0.0005, "impact": 0.1, "adv": 2e9}),
              ("BTC", "price", 60000.0, {"half_spread": 0.001, "impact": 0.2, "adv": 5e8, "haircut": 0.15,
                                          "collateral_limit": 120000.0}),
              ("EURUSD", "price", 1.1, {"half_spread": 0.0001}),
              ("UST", "price", 100.0, {"haircut": 0.02}),
              ("SPX.iv", "vol", 0.2)]
LQ_INSTRUMENTS = [dict(id="spx_spot", type="spot", silo=0, underlying=0, multiplier=1.0),
                  dict(id="spx_fut", type="future", silo=1, underlying=0, multiplier=50.0),
                  dict(id="btc_fut", type="future", silo=2, underlying=1, multiplier=1.0),
                  dict(id="spx_otm_call", type="option", silo=0, underlying=0, vol_factor=4, strike=10000.0,
                       expiry=0.5, call=1, implied_vol=0.2, rate=0.03, multiplier=100.0)]
LQ_ACCOUNTS = [("hedge", 1, "USD"), ("hedge_silo", 0, "USD"), ("btc", 1, "BTC"), ("usd_btc", 1, "USD"),
               ("otm_silo", 0, "USD"), ("otm", 1, "USD"), ("cash_only", 0, "USD")]
LQ_POSITIONS = [(0, 0, 100.0), (0, 1, -2.0), (1, 0, 100.0), (1, 1, -2.0), (2, 2, 2.0), (3, 2, 1.0),
                (4, 3, 2.0), (5, 3, 2.0)]
LQ_MOVES = np.array([[-0.05, -0.10, 0.02], [0.03, 0.05, -0.03], [-0.01, -0.20, 0.0]])   # SPX, BTC, EURUSD


def lq_collateral(free_ust=True):
    c = [dict(account=1, factor=-1, quantity=400000.0, silo=0),                    # USD cash: securities
         dict(account=2, factor=1, quantity=3.0, silo=2),                          # 3 BTC (price in USD)
         dict(account=3, factor=1, quantity=2.0, silo=2),                          # 2 BTC against a long future
         dict(account=3, factor=-1, quantity=5000.0, silo=1, currency="EUR"),       # EUR cash: futures
         dict(account=6, factor=-1, quantity=1000.0, silo=1)]                      # an account with no positions
    c.append(dict(account=1, factor=3, quantity=1000.0, silo=-1 if free_ust else 0))   # UST: no silo
    return c


def test_v2_liquidity_collateral(tmp):
    """§4 (Uni/Sil with add-ons, beta, the non-eligible sum of M_{a,g}, minimum_binds,
    hedge_credit), §4.1 and §6 on a small book worked out by hand, both methods."""
    port = os.path.join(tmp, "lq.h5")
    tl.write_portfolio(port, LQ_FACTORS, ["securities", "futures", "crypto"], LQ_INSTRUMENTS, LQ_ACCOUNTS,
                       LQ_POSITIONS, fx=[("BTC", 1), ("EUR", 2)], collateral=lq_collateral())
    port_s = os.path.join(tmp, "lq_scen.h5")
    tl.write_portfolio(port_s, LQ_FACTORS, ["securities", "futures", "crypto"], LQ_INSTRUMENTS, LQ_ACCOUNTS,
                       LQ_POSITIONS, fx=[("BTC", 1), ("EUR", 2)], collateral=lq_collateral(False))
    scen = os.path.join(tmp, "lq_sets.h5")
    tl.write_scenarios(scen, None, {"moves": {"factor": ["SPX", "BTC", "EURUSD"], "shock": LQ_MOVES,
                                              "measure": "worst"}})
    p = xr.read_portfolio(port)
    check("v2 read: factor columns", list(p["factor_half_spread"]) == [0.0005, 0.001, 0.0001, 0.0, 0.0] and
          list(p["factor_collateral_limit"]) == [0.0, 120000.0, 0.0, 0.0, 0.0])
    check("v2 read: /collateral", list(p["coll_fx"]) == [-1, -1, -1, 2, -1, -1] and
          list(p["coll_silo"]) == [0, 2, 2, 1, 1, -1], str(p["coll_fx"]))
    u = 0.01
    sh = math.sinh(u) / u                       # [L(-u) - L(+u)] / (2u) of a linear unit: S sinh(u)/u
    beta, c = 0.25, 0.8
    x_spx, x_btc, x_eur = LQ_MOVES[:, 0], LQ_MOVES[:, 1], LQ_MOVES[:, 2]

    def lq(E, s, k=0.0, A=0.0, xb=1.0):
        E = abs(E)
        return E * (s + (k * math.sqrt(E * xb / A) if k > 0 and A > 0 else 0.0))

    def rel(name, got, exp, tol=1e-12, scale=None):
        got, exp = np.asarray(got, dtype=float), np.asarray(exp, dtype=float)
        sc = np.maximum(np.abs(exp), 1e-300) if scale is None else scale
        ok = got.shape == exp.shape and np.all(np.abs(got - exp) <= tol * sc)
        check(name, ok, "got %s expected %s" % (got, exp))

    # the OTM call: 2 contracts of 100; losses over the 3 moves (time moves 2 days)
    C0 = bs_scalar(5000.0, 10000.0, 0.5, 0.03, 0.0, 0.2, True)
    T1 = 0.5 - 2 / 252.0
    Lopt = np.array([200 * (C0 - bs_scalar(5000 * math.exp(x), 10000.0, T1, 0.03, 0.0, 0.2, True)) for x in x_spx])
    Eopt = 200 * (bs_scalar(5000 * math.exp(u), 10000.0, 0.5, 0.03, 0.0, 0.2, True) -
                  bs_scalar(5000 * math.exp(-u), 10000.0, 0.5, 0.03, 0.0, 0.2, True)) / (2 * u)
    for method in ("schedule", "scenario"):
        book = port if method == "schedule" else port_s
        cfg = {"historical.enabled": False, "montecarlo.enabled": False, "apc.buffer": beta,
               "collateral.method": method}
        ref = xr.compute(book, scen, None, cfg)
        tag = "v2 %s:" % method
        scn = method == "scenario"
        # --- hedge (eligible): 100 SPX spot (securities) against 2 x 50 SPX futures (futures)
        Lsec = 100 * 5000 * (1 - np.exp(x_spx))
        Ssec, Sfut = max(Lsec.max(), 0), max((-Lsec).max(), 0)
        Eh = 500000 * sh
        LQh = lq(Eh, 0.0005, 0.1, 2e9)
        rel(tag + " hedge: the add-on nets in the unified pool (LQ_a = 0)", ref["liquidity"][0], 0.0,
            scale=1e-9 * LQh)
        rel(tag + " hedge: LQ by silo, not netted", ref["liquidity_by_silo"][0], [LQh, LQh, 0.0])
        rel(tag + " hedge: by_silo = core + add-on", ref["by_silo"][0], [Ssec + LQh, Sfut + LQh, 0.0])
        Sil = Ssec + Sfut + 2 * LQh
        rel(tag + " hedge: unified ~ 0", ref["unified"][0], 0.0, scale=1e-9 * Sil)
        rel(tag + " hedge: siloed", ref["siloed"][0], Sil)
        rel(tag + " hedge: diversification, hedge credit c D", [ref["diversification"][0], ref["hedge_credit"][0]],
            [Sil, c * Sil], 1e-9)
        rel(tag + " hedge: requirement (1 + beta)(Uni + (1 - c) D)", ref["requirement"][0],
            (1 + beta) * (1 - c) * Sil, 1e-9)
        rel(tag + " hedge: requirement_by_silo (1 + beta)(S + LQ)", ref["requirement_by_silo"][0],
            [(1 + beta) * (Ssec + LQh), (1 + beta) * (Sfut + LQh), 0.0])
        # --- hedge_silo (not eligible): sum of the silos' requirements; cash in one silo
        Mg = [(1 + beta) * (Ssec + LQh), (1 + beta) * (Sfut + LQh), 0.0]
        rel(tag + " not eligible: requirement = sum_g M_{a,g}", ref["requirement"][1], sum(Mg))
        rel(tag + " not eligible: hedge credit 0", ref["hedge_credit"][1], 0.0)
        # UST 1000 x 100: no silo (schedule, haircut 2%) or securities (scenario, no haircut)
        ust = 98000.0 if not scn else 100000.0
        pool0 = 400000.0 + (ust if scn else 0.0)
        rel(tag + " not eligible: collateral value / adjusted", [ref["collateral_value"][1], ref["collateral"][1]],
            [500000.0, 400000.0 + ust])
        rel(tag + " not eligible: cash in securities cannot cover futures: call = M_fut",
            [ref["call"][1], ref["call_siloed"][1], ref["excess"][1]], [Mg[1], Mg[1], -Mg[1]])
        rel(tag + " E_{a,g}", ref["excess_by_silo"][1], [pool0 - Mg[0], -Mg[1], 0.0])
        # --- btc (BTC account): 2 BTC-settled-in-USD futures, 3 BTC posted to crypto
        Lb = 2 * (np.exp(-x_btc) - 1)                             # in BTC: 2 x 60000 (1 - e^x) / (60000 e^x)
        Eb = 2 * sh
        LQb = lq(Eb, 0.001, 0.2, 5e8, 60000.0)
        rel(tag + " btc: unified (BTC) = worst + LQ with X_b", ref["unified"][2], Lb.max() + LQb, 1e-10)
        rel(tag + " btc: liquidity", [ref["liquidity"][2], ref["liquidity_by_silo"][2, 2]], [LQb, LQb], 1e-10)
        Mb = (1 + beta) * (Lb.max() + LQb)
        rel(tag + " btc: requirement (one silo: no diversification)", ref["requirement"][2], Mb, 1e-10)
        acvb = 3 * (2.0 / 3.0) * 0.85 if not scn else 3.0         # kappa = (120000/60000)/3; 15% haircut
        rel(tag + " btc: collateral in coins (limit / X_b, haircut)",
            [ref["collateral_value"][2], ref["collateral"][2]], [3.0, acvb])
        rel(tag + " btc: excess, no call", [ref["excess"][2], ref["call"][2]], [acvb - Mb, 0.0], 1e-10,
            scale=np.array([3.0, 3.0]))
        rel(tag + " btc: call_siloed", ref["call_siloed"][2], max(0.0, Mb - acvb), 1e-10, scale=3.0)
        # --- usd_btc (USD): 1 BTC future, 2 BTC (crypto), 5000 EUR cash (futures)
        if not scn:
            La, Lcr, Lfu = 60000 * (1 - np.exp(x_btc)), 60000 * (1 - np.exp(x_btc)), np.zeros(3)
            Ea, Eeur = 60000 * sh, 0.0
        else:   # wrong-way: the coins fall with the long future; the EUR cash carries FX risk
            Lcr = 180000 * (1 - np.exp(x_btc))
            Lfu = 5500 * (1 - np.exp(x_eur))
            La = Lcr + Lfu
            Ea, Eeur = 180000 * sh, 5500 * sh
        LQa = lq(Ea, 0.001, 0.2, 5e8) + lq(Eeur, 0.0001)
        U = max(La.max(), 0)
        Scr, Sfu = max(Lcr.max(), 0), max(Lfu.max(), 0)
        Sil3 = Scr + lq(Ea, 0.001, 0.2, 5e8) + Sfu + lq(Eeur, 0.0001)
        D3 = max(0.0, Sil3 - (U + LQa))
        M3 = (1 + beta) * (U + LQa + (1 - c) * D3)
        rel(tag + " usd_btc: liquidity (the EUR cash pays the EURUSD spread in scenario)",
            ref["liquidity"][3], LQa, 1e-10)
        rel(tag + " usd_btc: unified, siloed", [ref["unified"][3], ref["siloed"][3]], [U + LQa, Sil3], 1e-10)
        rel(tag + " usd_btc: requirement", ref["requirement"][3], M3, 1e-10)
        cv3 = [120000.0, 5500.0]
        acv3 = [102000.0, 5500.0] if not scn else cv3             # kappa = 1 (limit = value), haircut 15%
        rel(tag + " usd_btc: collateral (EUR cash at X_EUR)", [ref["collateral_value"][3], ref["collateral"][3]],
            [sum(cv3), sum(acv3)])
        rel(tag + " usd_btc: excess = collateral - M (unified pool)", ref["excess"][3], sum(acv3) - M3, 1e-10,
            scale=sum(acv3))
        Mg3 = [0.0, (1 + beta) * (Sfu + lq(Eeur, 0.0001)), (1 + beta) * (Scr + lq(Ea, 0.001, 0.2, 5e8))]
        rel(tag + " usd_btc: call_siloed", ref["call_siloed"][3],
            max(0.0, Mg3[1] - acv3[1]) + max(0.0, Mg3[2] - acv3[0]), 1e-10, scale=sum(acv3))
        # --- the OTM calls: the minimum binds (eligible and not)
        Sopt = max(Lopt.max(), 0)
        LQo = lq(Eopt, 0.0005, 0.1, 2e9)
        mino = 0.375 * 2 * 100
        check(tag + " otm: the minimum is above (1 + beta)(S + LQ)", mino > (1 + beta) * (Sopt + LQo),
              "%g vs %g" % (mino, (1 + beta) * (Sopt + LQo)))
        rel(tag + " otm: requirement = minimum; minimum_by_silo",
            [ref["requirement"][4], ref["requirement"][5], ref["minimum_by_silo"][4, 0], ref["minimum"][4]],
            [mino] * 4)
        rel(tag + " otm: liquidity of the option's delta-notional (revalued at +-u)", ref["liquidity"][5], LQo, 1e-8)
        check(tag + " minimum_binds", list(ref["minimum_binds"]) == [0, 0, 0, 0, 1, 1, 0],
              str(ref["minimum_binds"]))
        # --- cash_only: no positions, 1000 USD in futures
        rel(tag + " cash only: requirement 0, excess 1000", [ref["requirement"][6], ref["excess"][6],
                                                             ref["call"][6]], [0.0, 1000.0, 0.0], scale=1000.0)
        # G_a counts the holdings as spots (|V| + N = 2 CV)
        rel(tag + " G_a of the cash-only account: 2 CV", ref["gross_value"][6], 2000.0)
    # scenario: a holding of no silo is an error naming the row
    try:
        xr.compute(port, scen, None, {"historical.enabled": False, "montecarlo.enabled": False,
                                      "collateral.method": "scenario"})
        check("scenario with a holding of silo -1: an error", False)
    except ValueError as e:
        check("scenario with a holding of silo -1: an error naming /collateral/silo[5]",
              "/collateral/silo[5]" in str(e), str(e))
    # defaults: no add-on, the version-1 requirement of an eligible account
    ref0 = xr.compute(port, scen, None, {"historical.enabled": False, "montecarlo.enabled": False})
    z = xr.read_portfolio(port)
    for c_ in ("half_spread", "impact"):
        z["factor_" + c_] = np.zeros(len(z["factor_name"]))
    refz = xr.compute(None, scen, None, {"historical.enabled": False, "montecarlo.enabled": False}, portfolio=z)
    check("no spread, no impact: liquidity exactly 0", not np.any(refz["liquidity"]) and
          not np.any(refz["liquidity_by_silo"]))
    check("no spread, no impact: unified = core, by_silo = silo core",
          np.array_equal(refz["unified"], refz["core"]) and np.array_equal(refz["by_silo"], refz["silo_core"]))
    check("buffer 0 by default", ref0["buffer"] == 0.0 and ref0["collateral_method"] == "schedule")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for fn in (test_published_values, test_put_call_parity, test_contract_values,
                   test_k_and_measures, test_ewma_historical, test_attribution_es_ties):
            T.run(fn)
        for fn in (test_revalue_by_hand, test_book, test_results_shocks_and_compare, test_v2_products,
                   test_v2_compare, test_v2_liquidity_collateral):
            T.run(lambda fn=fn: fn(tmp))
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
