#!/usr/bin/python3
"""End-to-end check of the version-2 products and currencies on a hand-computable book.

A second, independent oracle (it does NOT use xm_reference): every /margin output
of `xmargin run` on a small version-2 book is worked out here with plain Python
arithmetic (normal CDFs by math.erfc, i.e. 0.5 (1 + erf(x/sqrt 2))), from METHODOLOGY.md sections 2, 2.1-2.3, 3
and 4 and FORMAT.md sections 1 and 3. Ready-made sets only: historical and Monte
Carlo are disabled with --set.

The readings implemented (per contract, m = multiplier, h = 2 days,
T' = max(T - h/252, 0)):
- price factors S' = S*exp(x); `vol` factors v' = v + x; `logvol` factors
  v' = v*exp(x) (term scale (30/max(365T,1))^p with p = 0: 1), floored at 0.01.
- value types (spot, option, american_option, inverse_option): loss in the
  account's currency b: l = V_c(today)*R(0) - V_c(x,T')*R(x), R_{c->b}(x) =
  X_c(x)/X_b(x), X the /fx factor level (shocked S*exp(x)), 1 for USD.
- settled types (future, perpetual, inverse_future, inverse_perpetual):
  l = (V_c(today) - V_c(x,T') + Phi)*R(x); future/perpetual V = m*F;
  inverse V(F) = m*(1/F0 - 1/F) coins, so V(today) - V(x) = m*(1/F1 - 1/F0);
  Phi = f*N*h/252, N = m*S0 (perpetual) or m/S0 (inverse_perpetual), 0 otherwise.
- inverse_option: V = m*Black76(F, K, T, r, sigma)/F coins.
- american_option: the book's one is a call with q = 0 and r >= 0, so b = r - q
  >= r: never exercised early (METHODOLOGY 2.1), its value is the European BSM
  value (which is also >= intrinsic, so the max of the three is the European).
- minimum: 0.375 * sum over option-type positions of |q|*m, in USD, divided by
  X_b (today) for an account in currency b.
- measures (section 3), cross-margined requirement (section 4, beta = 0, no add-ons: the
  book has no half_spread / impact columns, so /margin/liquidity and liquidity_by_silo
  are exactly 0): eligible M = max(U + 0.2 D, Min), not eligible M = sum_g M_g with
  M_g = max(S_g, Min_g) (requirement_by_silo, every account), Min_g silo g's minimum;
  minimum_binds; hedge_credit = 0.8 D for an eligible account, else 0. No /collateral:
  no collateral outputs.

Book: factors BTC (60000), BTC.iv (logvol 0.6), EURUSD (1.25), SX5E (5000),
SPX (4000), SPX.iv (vol 0.2); /fx BTC -> BTC, EUR -> EURUSD; reporting USD;
silos spot, futures, crypto, options. Accounts (all cross_margin = 1):
  USD_COIN   USD  +1 BTC spot, -500 BTC inverse futures (face 100 USD)
  BTC_COIN   BTC  the same pair in a BTC account
  PERP_LONG  USD  +2 BTC perpetual (funding 0.10), -1 BTC spot
  PERP_SHORT USD  -2 BTC perpetual, +1 BTC spot, -200 inverse perpetuals (funding 0.05)
  EUR_FUT    USD  +2 SX5E futures (EUR, m 10), -1 SPX future (m 50), +0.5 BTC spot
  BTC_OPT    BTC  -3 coin-settled BTC calls (inverse_option), +300 inverse perpetuals
  OPTS       USD  -2 SPX american calls (m 100), +1 SPX future, -5 BTC puts (logvol)
  MINONLY    USD  +2 far out-of-the-money SPX calls: the minimum binds
  MINBTC     BTC  the same in a BTC account: the minimum divided by X_BTC binds
  NOCM_BTC   BTC  not eligible: +2 SPX calls (options: its own minimum 75/60000 BTC
                  binds) and +1 SX5E future (futures): version 2's M = sum_g M_g
                  = 75/60000 + S_futures, above version 1's max(Sil, Min) = Sil
Sets (run order = name order): stress (worst, weights 0.35 on two), tail (es, S=10,
confidence 0.8 -> k=2), var8 (var, S=8, confidence 0.75 -> k=2, three factors in
another order than the portfolio's).

`--selfcheck` recomputes a few expected values a second way (no engine run).
Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

import hashlib
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

h5py = tl.h5py
T = tl.Tally()

HORIZON = 2
DT = HORIZON / 252.0
RTOL = 1e-9
VOL_FLOOR = 0.01
PER_CONTRACT = 0.375
OFFSET_CAP = 0.80
REPORTING = "USD"
OPTION_TYPES = ("option", "future_option", "american_option", "inverse_option")
SETTLED_TYPES = ("future", "perpetual", "inverse_future", "inverse_perpetual")

# ---------------------------------------------------------------- the book

FACTORS = [("BTC", "price", 60000.0), ("BTC.iv", "logvol", 0.6), ("EURUSD", "price", 1.25),
           ("SX5E", "price", 5000.0), ("SPX", "price", 4000.0), ("SPX.iv", "vol", 0.2)]
FIDX = {n: i for i, (n, _, _) in enumerate(FACTORS)}
FX = [("BTC", FIDX["BTC"]), ("EUR", FIDX["EURUSD"])]
FX_ROW = dict(FX)
SILOS = ["spot", "futures", "crypto", "options"]
SIL = {n: i for i, n in enumerate(SILOS)}
INSTRUMENTS = [
    dict(id="BTC", type="spot", silo=SIL["spot"], underlying=FIDX["BTC"], multiplier=1.0),
    dict(id="BTC_INVF", type="inverse_future", silo=SIL["crypto"], underlying=FIDX["BTC"],
         multiplier=100.0, currency="BTC"),
    dict(id="BTC_PERP", type="perpetual", silo=SIL["crypto"], underlying=FIDX["BTC"],
         multiplier=1.0, funding_rate=0.10),
    dict(id="BTC_INVP", type="inverse_perpetual", silo=SIL["crypto"], underlying=FIDX["BTC"],
         multiplier=100.0, currency="BTC", funding_rate=0.05),
    dict(id="SX5E_FUT", type="future", silo=SIL["futures"], underlying=FIDX["SX5E"],
         multiplier=10.0, currency="EUR"),
    dict(id="SPX_FUT", type="future", silo=SIL["futures"], underlying=FIDX["SPX"], multiplier=50.0),
    dict(id="BTC_INVC65", type="inverse_option", silo=SIL["options"], underlying=FIDX["BTC"],
         vol_factor=FIDX["BTC.iv"], strike=65000.0, expiry=0.25, call=1, implied_vol=0.6,
         rate=0.02, multiplier=1.0, currency="BTC"),
    dict(id="BTC_P55", type="option", silo=SIL["options"], underlying=FIDX["BTC"],
         vol_factor=FIDX["BTC.iv"], strike=55000.0, expiry=0.1, call=0, implied_vol=0.6,
         rate=0.04, dividend_yield=0.0, multiplier=0.1),
    dict(id="SPX_AC4100", type="american_option", silo=SIL["options"], underlying=FIDX["SPX"],
         vol_factor=FIDX["SPX.iv"], strike=4100.0, expiry=0.5, call=1, implied_vol=0.2,
         rate=0.03, dividend_yield=0.0, multiplier=100.0),
    dict(id="SPX_C6000", type="option", silo=SIL["options"], underlying=FIDX["SPX"],
         vol_factor=FIDX["SPX.iv"], strike=6000.0, expiry=0.1, call=1, implied_vol=0.2,
         rate=0.03, dividend_yield=0.01, multiplier=100.0),
]
IIDX = {ins["id"]: i for i, ins in enumerate(INSTRUMENTS)}
ACCOUNTS = [("USD_COIN", 1, "USD"), ("BTC_COIN", 1, "BTC"), ("PERP_LONG", 1, "USD"),
            ("PERP_SHORT", 1, "USD"), ("EUR_FUT", 1, "USD"), ("BTC_OPT", 1, "BTC"),
            ("OPTS", 1, "USD"), ("MINONLY", 1, "USD"), ("MINBTC", 1, "BTC"), ("NOCM_BTC", 0, "BTC")]
AIDX = {a[0]: i for i, a in enumerate(ACCOUNTS)}
_P = [("USD_COIN", "BTC", 1.0), ("USD_COIN", "BTC_INVF", -500.0),
      ("BTC_COIN", "BTC", 1.0), ("BTC_COIN", "BTC_INVF", -300.0), ("BTC_COIN", "BTC_INVF", -200.0),
      ("PERP_LONG", "BTC_PERP", 2.0), ("PERP_LONG", "BTC", -1.0),
      ("PERP_SHORT", "BTC_PERP", -2.0), ("PERP_SHORT", "BTC", 1.0), ("PERP_SHORT", "BTC_INVP", -200.0),
      ("EUR_FUT", "SX5E_FUT", 2.0), ("EUR_FUT", "SPX_FUT", -1.0), ("EUR_FUT", "BTC", 0.5),
      ("BTC_OPT", "BTC_INVC65", -3.0), ("BTC_OPT", "BTC_INVP", 300.0),
      ("OPTS", "SPX_AC4100", -2.0), ("OPTS", "SPX_FUT", 1.0), ("OPTS", "BTC_P55", -5.0),
      ("MINONLY", "SPX_C6000", 2.0),
      ("MINBTC", "SPX_C6000", 2.0),
      ("NOCM_BTC", "SPX_C6000", 2.0), ("NOCM_BTC", "SX5E_FUT", 1.0)]
POSITIONS = [(AIDX[a], IIDX[i], q) for a, i, q in _P]

SETS = {
    "stress": dict(
        factor=["BTC", "BTC.iv", "EURUSD", "SX5E", "SPX", "SPX.iv"],
        shock=[[-0.10, 0.20, -0.02, -0.05, -0.06, 0.05],
               [0.10, -0.10, 0.02, 0.04, 0.05, -0.03],
               [-0.05, 0.10, 0.01, -0.02, -0.03, 0.02],
               [0.05, 0.0, -0.01, 0.03, 0.02, -0.01],
               [-0.30, 0.50, -0.05, -0.15, -0.20, 0.15],
               [0.25, 0.30, 0.04, 0.12, 0.15, -0.05]],
        label=["down", "up", "dip", "rally", "crash (35%)", "melt-up (35%)"],
        weight=[1.0, 1.0, 1.0, 1.0, 0.35, 0.35],
        measure="worst"),
    "tail": dict(
        factor=["BTC", "BTC.iv", "EURUSD", "SX5E", "SPX", "SPX.iv"],
        shock=np.array([[-0.08, 0.06, -0.03, 0.09, -0.12, 0.04, 0.02, -0.05, 0.07, 0.11],
                        [0.15, -0.05, 0.10, -0.10, 0.25, 0.0, 0.05, 0.12, -0.08, -0.02],
                        [-0.01, 0.015, 0.005, -0.02, 0.03, -0.005, 0.01, -0.015, 0.02, 0.0],
                        [-0.04, 0.03, -0.02, 0.05, -0.06, 0.01, 0.025, -0.035, 0.015, 0.045],
                        [-0.05, 0.02, -0.01, 0.04, -0.07, 0.03, 0.015, -0.025, 0.01, 0.06],
                        [0.04, -0.01, 0.02, -0.03, 0.06, 0.0, -0.02, 0.03, -0.01, -0.04]]).T.tolist(),
        label=["t%d" % i for i in range(10)],
        measure="es", confidence=0.8),
    "var8": dict(
        factor=["SPX", "EURUSD", "BTC"],
        shock=np.array([[-0.04, 0.05, -0.02, 0.01, -0.09, 0.03, -0.01, 0.06],
                        [0.01, -0.02, 0.03, -0.01, 0.02, 0.0, -0.03, 0.015],
                        [0.06, -0.07, 0.03, -0.02, 0.09, -0.04, 0.12, 0.02]]).T.tolist(),
        label=["v%d" % i for i in range(8)],
        measure="var", confidence=0.75),
}
SET_ORDER = sorted(SETS)           # run order of ready-made sets: by name
K_OF = {"tail": 2, "var8": 2}      # k = max(1, ceil((1 - alpha) S - 1e-9)): 0.2*10, 0.25*8

# ---------------------------------------------------------------- hand pricing


def ncdf(x):
    # 0.5 (1 + erf(x/sqrt 2)) written with erfc, which keeps its relative accuracy in the
    # far tail (MINONLY's call is worth ~1e-9 of the underlying)
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def bsm(S, K, t, r, q, vol, call):
    if t <= 0:
        return max(S - K, 0.0) if call else max(K - S, 0.0)
    d1 = (math.log(S / K) + (r - q + 0.5 * vol * vol) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if call:
        return S * math.exp(-q * t) * ncdf(d1) - K * math.exp(-r * t) * ncdf(d2)
    return K * math.exp(-r * t) * ncdf(-d2) - S * math.exp(-q * t) * ncdf(-d1)


def black76(F, K, t, r, vol, call):
    if t <= 0:
        return max(F - K, 0.0) if call else max(K - F, 0.0)
    d1 = (math.log(F / K) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    df = math.exp(-r * t)
    if call:
        return df * (F * ncdf(d1) - K * ncdf(d2))
    return df * (K * ncdf(-d2) - F * ncdf(-d1))


def fx_level(cur, x):
    """X_c(x): value of one unit of currency c in USD in scenario x (x = {} today)."""
    if cur == REPORTING:
        return 1.0
    row = FX_ROW[cur]
    return FACTORS[row][2] * math.exp(x.get(FACTORS[row][0], 0.0))


def shocked_vol(ins, x):
    vname, vkind, _ = FACTORS[ins["vol_factor"]]
    xv = x.get(vname, 0.0)
    scale = 1.0   # (30 / max(365 T, 1))^p with pricing.vol_term_power p = 0
    v = ins["implied_vol"]
    v1 = v * math.exp(xv * scale) if vkind == "logvol" else v + xv * scale
    return max(v1, VOL_FLOOR)


def unit_value(ins, S, t, vol):
    """V_c of one contract of a value type, in its settlement currency c."""
    m, ty = ins["multiplier"], ins["type"]
    K, r, q, call = ins.get("strike"), ins.get("rate", 0.0), ins.get("dividend_yield", 0.0), ins.get("call")
    if ty == "spot":
        return m * S
    if ty == "option":
        return m * bsm(S, K, t, r, q, vol, call)
    if ty == "american_option":
        # the book's american_option is a call with q = 0, r >= 0: b = r - q >= r, never
        # exercised early (METHODOLOGY 2.1): the European BSM value (>= intrinsic).
        assert call == 1 and q == 0.0 and r >= 0.0
        return m * max(bsm(S, K, t, r, q, vol, call), S - K, 0.0)
    if ty == "inverse_option":
        return m * black76(S, K, t, r, vol, call) / S
    raise ValueError(ty)


def contract_loss(ins, x, b):
    """Loss of one contract in account currency b for the shock dict x (factor name -> shock)."""
    name, _, S0 = FACTORS[ins["underlying"]]
    S1 = S0 * math.exp(x.get(name, 0.0))
    m, ty = ins["multiplier"], ins["type"]
    c = ins.get("currency", REPORTING)
    R0 = fx_level(c, {}) / fx_level(b, {})
    R1 = fx_level(c, x) / fx_level(b, x)
    if ty in SETTLED_TYPES:
        if ty in ("future", "perpetual"):
            dv = m * (S0 - S1)
            notional = m * S0
        else:   # inverse: V(F) = m (1/F0 - 1/F) coins
            dv = m * (1.0 / S1 - 1.0 / S0)
            notional = m / S0
        phi = ins.get("funding_rate", 0.0) * notional * DT if ty in ("perpetual", "inverse_perpetual") else 0.0
        return (dv + phi) * R1
    if ty == "spot":
        v0, v1 = unit_value(ins, S0, 0.0, 0.0), unit_value(ins, S1, 0.0, 0.0)
    else:
        t0 = ins["expiry"]
        t1 = max(t0 - DT, 0.0)
        v0 = unit_value(ins, S0, t0, ins["implied_vol"])
        v1 = unit_value(ins, S1, t1, shocked_vol(ins, x))
    return v0 * R0 - v1 * R1


def hand_losses():
    """{set: (L[s][a], Lg[s][a][g])} by plain loops, each in the account's currency."""
    A, G = len(ACCOUNTS), len(SILOS)
    out = {}
    for name in SET_ORDER:
        st = SETS[name]
        L, LG = [], []
        for row in st["shock"]:
            x = dict(zip(st["factor"], row))
            lg = [[0.0] * G for _ in range(A)]
            for a, i, q in POSITIONS:
                ins = INSTRUMENTS[i]
                lg[a][ins["silo"]] += q * contract_loss(ins, x, ACCOUNTS[a][2])
            LG.append(lg)
            L.append([sum(lg[a]) for a in range(A)])
        out[name] = (L, LG)
    return out


def measure_of(values, name):
    """Unfloored measure of one loss list for set `name`, plus the scenario weights
    used for attribution: a list of (scenario, factor) pairs."""
    st = SETS[name]
    S = len(values)
    if st["measure"] == "worst":
        w = st.get("weight") or [1.0] * S
        wl = [w[s] * values[s] for s in range(S)]
        s_star = max(range(S), key=lambda s: (wl[s], -s))        # first argmax
        return wl[s_star], [(s_star, w[s_star])]
    k = K_OF[name]
    order = sorted(range(S), key=lambda s: (-values[s], s))       # largest first, ties -> lower index
    top = order[:k]
    if st["measure"] == "es":
        return sum(values[s] for s in top) / k, [(s, 1.0 / k) for s in top]
    return values[order[k - 1]], [(order[k - 1], 1.0)]           # var: the k-th scenario


def minimum_of(a, g=None):
    """METHODOLOGY 4: 0.375 * sum |q| m over option positions (of silo g), USD, / X_b today."""
    usd = PER_CONTRACT * sum(abs(q) * INSTRUMENTS[i]["multiplier"] for aa, i, q in POSITIONS
                             if aa == a and INSTRUMENTS[i]["type"] in OPTION_TYPES
                             and (g is None or INSTRUMENTS[i]["silo"] == g))
    return usd / fx_level(ACCOUNTS[a][2], {})


def hand_margin():
    A, G, K = len(ACCOUNTS), len(SILOS), len(SET_ORDER)
    losses = hand_losses()
    by_set = [[0.0] * K for _ in range(A)]
    raw_attr = [[None] * K for _ in range(A)]
    by_silo = [[0.0] * G for _ in range(A)]
    scale = [0.0] * A
    for kx, name in enumerate(SET_ORDER):
        L, LG = losses[name]
        S = len(L)
        for a in range(A):
            col = [L[s][a] for s in range(S)]
            scale[a] = max(scale[a], max(abs(v) for v in col))
            raw, picks = measure_of(col, name)
            by_set[a][kx] = max(raw, 0.0)
            raw_attr[a][kx] = [sum(w * LG[s][a][g] for s, w in picks) for g in range(G)]
            for g in range(G):
                sm, _ = measure_of([LG[s][a][g] for s in range(S)], name)
                by_silo[a][g] = max(by_silo[a][g], max(sm, 0.0))
    res = {k: [] for k in ("unified", "binding_set", "siloed", "diversification", "minimum",
                           "requirement", "attribution", "requirement_by_silo", "minimum_binds",
                           "hedge_credit")}
    for a in range(A):
        u = max(by_set[a])
        b = by_set[a].index(u)                                    # first set on a tie
        sil = sum(by_silo[a])
        d = max(0.0, sil - u)
        mn = minimum_of(a)
        mn_g = [minimum_of(a, g) for g in range(G)]
        m_g = [max(by_silo[a][g], mn_g[g]) for g in range(G)]     # beta = 0, LQ = 0
        if ACCOUNTS[a][1] == 1:
            cross = u + (1.0 - OFFSET_CAP) * d
            req = max(cross, mn)
            binds = int(mn >= cross and mn > 0.0)
        else:
            # version 2: each silo at its own clearing house, with its own minimum
            req = sum(m_g)
            binds = int(any(mn_g[g] >= by_silo[a][g] and mn_g[g] > 0.0 for g in range(G)))
        res["unified"].append(u)
        res["binding_set"].append(b)
        res["siloed"].append(sil)
        res["diversification"].append(d)
        res["minimum"].append(mn)
        res["requirement"].append(req)
        res["attribution"].append(raw_attr[a][b])
        res["requirement_by_silo"].append(m_g)
        res["minimum_binds"].append(binds)
        res["hedge_credit"].append(OFFSET_CAP * d if ACCOUNTS[a][1] == 1 else 0.0)
        scale[a] += mn
    res["by_set"] = by_set
    res["by_silo"] = by_silo
    return res, losses, [s if s > 0 else 1.0 for s in scale]


# ---------------------------------------------------------------- self-check (no engine)

def crr_american_call(S, K, t, r, q, vol, n=1500):
    """Cox-Ross-Rubinstein binomial tree with early exercise: an independent American value."""
    dt = t / n
    u = math.exp(vol * math.sqrt(dt))
    d = 1.0 / u
    p = (math.exp((r - q) * dt) - d) / (u - d)
    disc = math.exp(-r * dt)
    vals = [max(S * u ** j * d ** (n - j) - K, 0.0) for j in range(n + 1)]
    early = False
    for step in range(n - 1, -1, -1):
        nxt = []
        for j in range(step + 1):
            cont = disc * (p * vals[j + 1] + (1.0 - p) * vals[j])
            ex = S * u ** j * d ** (step - j) - K
            if ex > cont + 1e-12:
                early = True
            nxt.append(max(cont, ex))
        vals = nxt
    return vals[0], early


def selfcheck():
    """Recompute some expected values a second way."""
    inv = INSTRUMENTS[IIDX["BTC_INVF"]]
    invp = INSTRUMENTS[IIDX["BTC_INVP"]]
    F0 = FACTORS[FIDX["BTC"]][2]
    m = inv["multiplier"]
    for xb in (-0.3, -0.05, 0.0, 0.1, 0.25):
        x = {"BTC": xb, "EURUSD": 0.03}
        F1 = F0 * math.exp(xb)
        # an inverse future of face m is, in USD, a long m/F0 coins bought at F0: its USD
        # loss is (m/F0)(F0 - F1); in coins, that USD loss valued at the new price F1
        usd = (m / F0) * (F0 - F1)
        T.close("selfcheck: inverse future USD loss = (m/F0)(F0-F1), x=%g" % xb,
                contract_loss(inv, x, "USD"), usd, 1e-12, scale=m)
        T.close("selfcheck: inverse future coin loss = USD loss / F1, x=%g" % xb,
                contract_loss(inv, x, "BTC"), usd / F1, 1e-12, scale=m / F0)
        # the same face in an EUR-free world: the coin loss m/F1 - m/F0 by subtraction of values
        T.close("selfcheck: inverse future coin loss = V(F1) - V(F0) with V = -m/F, x=%g" % xb,
                contract_loss(inv, x, "BTC"), (-m / F0) - (-m / F1), 1e-12, scale=m / F0)
        # BTC spot held in a BTC account: worth 1 coin whatever the price
        T.check("selfcheck: BTC spot in a BTC account loses nothing, x=%g" % xb,
                abs(contract_loss(INSTRUMENTS[IIDX["BTC"]], x, "BTC")) < 1e-15)
        # inverse perpetual: funding in coins m/S0 f h/252, converted at F1 in USD
        fund = invp["funding_rate"] * (m / F0) * DT
        T.close("selfcheck: inverse perpetual USD loss = USD loss of the future + funding*F1, x=%g" % xb,
                contract_loss(invp, x, "USD"), usd + fund * F1, 1e-12, scale=m)
    # a perpetual's funding: the unshocked loss of a long is Phi = f m S0 h/252 (0.1*60000*2/252)
    perp = INSTRUMENTS[IIDX["BTC_PERP"]]
    T.close("selfcheck: perpetual funding at zero shock = 0.1*60000*2/252",
            contract_loss(perp, {}, "USD"), 0.1 * 60000.0 * 2.0 / 252.0, 1e-14)
    # long + short perpetual accounts: the perp and spot legs cancel, only -200 BTC_INVP is left
    L, _ = hand_losses()["tail"]
    for s, row in enumerate(SETS["tail"]["shock"]):
        x = dict(zip(SETS["tail"]["factor"], row))
        rest = -200.0 * contract_loss(invp, x, "USD")
        T.close("selfcheck: PERP_LONG + PERP_SHORT = the -200 inverse perpetuals (tail %d)" % s,
                L[s][AIDX["PERP_LONG"]] + L[s][AIDX["PERP_SHORT"]], rest, 1e-12, scale=20000.0)
    # EUR future in USD: the EUR settlement converted at the shocked EURUSD
    fut = INSTRUMENTS[IIDX["SX5E_FUT"]]
    x = {"SX5E": -0.05, "EURUSD": -0.02}
    T.close("selfcheck: EUR future USD loss = 10*5000*(1-e^-0.05)*1.25e^-0.02",
            contract_loss(fut, x, "USD"), 10 * 5000 * (1 - math.exp(-0.05)) * 1.25 * math.exp(-0.02), 1e-13)
    # inverse option: coin value written directly, and put-call parity in coins
    io = INSTRUMENTS[IIDX["BTC_INVC65"]]
    F, K, t, r, v = F0, io["strike"], io["expiry"], io["rate"], io["implied_vol"]
    d1 = (math.log(F / K) + 0.5 * v * v * t) / (v * math.sqrt(t))
    direct = math.exp(-r * t) * (ncdf(d1) - K / F * ncdf(d1 - v * math.sqrt(t)))
    T.close("selfcheck: inverse call in coins = e^-rT (N(d1) - K/F N(d2))", unit_value(io, F, t, v), direct, 1e-13)
    put = black76(F, K, t, r, v, 0) / F
    T.close("selfcheck: inverse option put-call parity C - P = e^-rT (1 - K/F)",
            unit_value(io, F, t, v) - put, math.exp(-r * t) * (1 - K / F), 1e-12)
    # logvol: a +0.2 log shock multiplies the vol by e^0.2; vol: +0.05 adds
    T.close("selfcheck: logvol shock 0.2 -> 0.6 e^0.2", shocked_vol(io, {"BTC.iv": 0.2}), 0.6 * math.exp(0.2), 1e-15)
    T.close("selfcheck: logvol shock -10 -> vol floor", shocked_vol(io, {"BTC.iv": -10.0}), VOL_FLOOR, 0.0)
    am = INSTRUMENTS[IIDX["SPX_AC4100"]]
    T.close("selfcheck: vol shock 0.05 -> 0.25", shocked_vol(am, {"SPX.iv": 0.05}), 0.25, 1e-15)
    # american call with q = 0: a binomial tree with early exercise never exercises and agrees
    # with the European BSM value to its discretisation error
    S = FACTORS[FIDX["SPX"]][2]
    tree, early = crr_american_call(S, am["strike"], am["expiry"], am["rate"], 0.0, am["implied_vol"])
    euro = bsm(S, am["strike"], am["expiry"], am["rate"], 0.0, am["implied_vol"], 1)
    T.check("selfcheck: the CRR tree never exercises the q = 0 call early", not early)
    T.close("selfcheck: CRR american call = European BSM (tree error)", tree, euro, 2e-3)
    T.close("selfcheck: american_option value = European", unit_value(am, S, am["expiry"], 0.2) / 100.0, euro, 1e-15)
    # minimum: MINBTC's is 0.375*2*100 USD / 60000
    T.close("selfcheck: MINBTC minimum = 75/60000 BTC", minimum_of(AIDX["MINBTC"]), 75.0 / 60000.0, 1e-15)
    T.close("selfcheck: NOCM_BTC options minimum = 75/60000 BTC, futures 0",
            [minimum_of(AIDX["NOCM_BTC"], SIL["options"]), minimum_of(AIDX["NOCM_BTC"], SIL["futures"])],
            [75.0 / 60000.0, 0.0], 1e-15, scale=1.0)
    T.close("selfcheck: OPTS minimum = 0.375*(200 + 0.5)", minimum_of(AIDX["OPTS"]), 75.1875, 1e-15)
    T.close("selfcheck: BTC_OPT minimum = 0.375*3/60000", minimum_of(AIDX["BTC_OPT"]), 1.125 / 60000.0, 1e-15)
    # measures a second way (numpy), on every account's and silo's losses
    losses = hand_losses()
    bad = 0
    for name in SET_ORDER:
        L, LG = losses[name]
        arr = np.array(L)
        st = SETS[name]
        for a in range(len(ACCOUNTS)):
            col = arr[:, a]
            if st["measure"] == "worst":
                alt = float(np.max(np.array(st["weight"]) * col))
            elif st["measure"] == "es":
                alt = float(np.mean(np.sort(col)[::-1][:K_OF[name]]))
            else:
                alt = float(np.sort(col)[::-1][K_OF[name] - 1])
            got = measure_of(list(col), name)[0]
            if abs(got - alt) > 1e-12 * (np.abs(col).max() + 1):
                bad += 1
    T.check("selfcheck: measures by numpy sort agree", bad == 0, "%d differ" % bad)
    # the k of section 3
    for name, k in K_OF.items():
        S, alpha = len(SETS[name]["shock"]), SETS[name]["confidence"]
        T.check("selfcheck: k of %s" % name, max(1, math.ceil((1 - alpha) * S - 1e-9)) == k)


# ---------------------------------------------------------------- checks

def sanity_of_book(exp, losses):
    """The book is built so that the checks mean something."""
    A = len(ACCOUNTS)
    for name in ("tail", "var8"):
        L, _ = losses[name]
        k = K_OF[name]
        for a in range(A):
            col = sorted((L[s][a] for s in range(len(L))), reverse=True)
            gap = abs(col[k - 1] - col[k])
            T.check("book: no tie at k-th loss (%s, %s)" % (name, ACCOUNTS[a][0]), gap > 1e-6 * (abs(col[0]) + 1e-9),
                    "gap %.3g" % gap)
    # worst: no tie for the first place among weighted losses
    L, _ = losses["stress"]
    w = SETS["stress"]["weight"]
    for a in range(A):
        wl = sorted((w[s] * L[s][a] for s in range(len(L))), reverse=True)
        T.check("book: no tie at worst (%s)" % ACCOUNTS[a][0], wl[0] - wl[1] > 1e-6 * (abs(wl[0]) + 1e-9))
    for a in range(A):
        bs = sorted(exp["by_set"][a], reverse=True)
        T.check("book: no near-tie between sets (%s)" % ACCOUNTS[a][0], bs[0] - bs[1] > 1e-4 * bs[0],
                "%.6g vs %.6g" % (bs[0], bs[1]))
    a = AIDX["USD_COIN"]
    T.check("book: USD_COIN's hedge diversifies", exp["diversification"][a] > 0.5 * exp["siloed"][a],
            "D %.6g of siloed %.6g" % (exp["diversification"][a], exp["siloed"][a]))
    for nm in ("MINONLY", "MINBTC"):
        a = AIDX[nm]
        T.check("book: %s's minimum binds" % nm,
                exp["minimum"][a] > exp["unified"][a] + 0.2 * exp["diversification"][a])
    T.check("book: every set binds some account", sorted(set(exp["binding_set"])) == [0, 1, 2],
            str(exp["binding_set"]))
    for nm in ("USD_COIN", "BTC_COIN", "PERP_LONG", "PERP_SHORT", "EUR_FUT", "BTC_OPT", "OPTS"):
        a = AIDX[nm]
        T.check("book: %s owes more than its minimum" % nm, exp["requirement"][a] > exp["minimum"][a])
    a = AIDX["NOCM_BTC"]
    T.check("book: NOCM_BTC's options minimum binds, and sum_g M_g > version 1's max(Sil, Min)",
            exp["requirement_by_silo"][a][SIL["options"]] == 75.0 / 60000.0 and exp["minimum_binds"][a] == 1
            and exp["requirement"][a] > max(exp["siloed"][a], exp["minimum"][a]) + 1e-4,
            "%.9g vs Sil %.9g" % (exp["requirement"][a], exp["siloed"][a]))
    T.check("book: minimum_binds for MINONLY, MINBTC, NOCM_BTC only",
            [ACCOUNTS[i][0] for i in range(A) if exp["minimum_binds"][i]] == ["MINONLY", "MINBTC", "NOCM_BTC"])


def check_results(tag, path, exp, scale, losses, with_pnl):
    A = len(ACCOUNTS)
    sc = np.array(scale)
    with h5py.File(path, "r") as f:
        T.check("%s: format = xmargin.results" % tag, tl.attr_str(f.attrs.get("format", "")) == "xmargin.results")
        fv = f.attrs.get("format_version", None)
        T.check("%s: format_version = 2" % tag, fv is not None and int(np.asarray(fv).ravel()[0]) == 2, str(fv))
        rc = tl.attr_str(f.attrs.get("reporting_currency", ""))
        T.check("%s: reporting_currency = USD" % tag, rc == "USD", rc)
        for key, src in (("portfolio_sha256", PORT), ("scenarios_sha256", SCEN)):
            with open(src, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            got = tl.attr_str(f.attrs.get(key, "")).lower()
            T.check("%s: %s matches the file" % (tag, key), got == digest, got)
        for name, vals in (("account", [a[0] for a in ACCOUNTS]), ("silo", SILOS), ("set", SET_ORDER)):
            ok = name in f and tl.strings(f[name]) == vals
            T.check("%s: /%s = %s" % (tag, name, vals), ok, tl.strings(f[name]) if name in f else "missing")
        g = f["margin"]
        for name in ("requirement", "unified", "siloed", "diversification", "minimum"):
            if not T.check("%s: /margin/%s present" % (tag, name), name in g):
                continue
            T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL, scale=sc)
            T.check("%s: /margin/%s is float64 [A]" % (tag, name),
                    g[name].dtype == np.float64 and g[name].shape == (A,))
        for name in ("by_set", "by_silo", "attribution"):
            if T.check("%s: /margin/%s present" % (tag, name), name in g):
                T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL, scale=sc[:, None])
        # version 2 outputs (FORMAT.md 3): no spreads, no impact: every add-on exactly 0; no
        # /collateral: no collateral outputs
        for name in ("liquidity", "liquidity_by_silo"):
            if T.check("%s: /margin/%s present" % (tag, name), name in g):
                T.check("%s: /margin/%s = 0 exactly" % (tag, name),
                        np.all(np.asarray(g[name][()]) == 0.0) and g[name].dtype == np.float64)
        for name in ("requirement_by_silo", "hedge_credit"):
            if T.check("%s: /margin/%s present" % (tag, name), name in g):
                T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL,
                        scale=sc[:, None] if name == "requirement_by_silo" else sc)
        if T.check("%s: /margin/minimum_binds present" % tag, "minimum_binds" in g):
            got = np.asarray(g["minimum_binds"][()]).astype(np.int64).tolist()
            T.check("%s: /margin/minimum_binds" % tag, got == exp["minimum_binds"],
                    "got %s expected %s" % (got, exp["minimum_binds"]))
        present = [n for n in ("collateral_value", "collateral", "excess", "call", "call_siloed") if n in g]
        T.check("%s: no collateral outputs without /collateral" % tag, not present, str(present))
        if T.check("%s: /margin/binding_set present" % tag, "binding_set" in g):
            bs = np.asarray(g["binding_set"][()]).astype(np.int64)
            T.check("%s: /margin/binding_set" % tag, bs.tolist() == exp["binding_set"],
                    "got %s expected %s" % (bs.tolist(), exp["binding_set"]))
        if "attribution" in g:
            attr_sum = np.asarray(g["attribution"][()]).sum(axis=1)
            unfloored = [sum(exp["attribution"][a]) for a in range(A)]
            T.close("%s: attribution sums to unified (before the floor)" % tag, attr_sum, unfloored, RTOL, scale=sc)
        # per-account details, so that a failure names the account
        for a in range(A):
            nm = ACCOUNTS[a][0]
            for name in ("requirement", "unified", "siloed", "diversification", "minimum"):
                if name in g:
                    T.close("%s: %s %s" % (tag, nm, name), g[name][a], exp[name][a], RTOL, scale=sc[a])
        # currencies (FORMAT.md 3)
        if T.check("%s: /margin/currency present" % tag, "currency" in g):
            T.check("%s: /margin/currency = the accounts' currencies" % tag,
                    tl.strings(g["currency"]) == [a[2] for a in ACCOUNTS], tl.strings(g["currency"]))
        money = ("requirement", "unified", "siloed", "diversification", "minimum", "by_set", "by_silo",
                 "attribution")
        with_units = [n for n in money if n in g and "units" in g[n].attrs]
        if with_units:
            wrong = [(n, tl.attr_str(g[n].attrs["units"])) for n in with_units
                     if tl.attr_str(g[n].attrs["units"]) != "account currency"]
            T.check("%s: units = 'account currency' (accounts' currencies differ)" % tag, not wrong, str(wrong))
        else:
            T.skip("%s: the units attribute" % tag, "the /margin datasets carry none")
        for name in SET_ORDER:
            p = "scenarios/%s/label" % name
            T.check("%s: /%s" % (tag, p), p in f and tl.strings(f[p]) == SETS[name]["label"])
        if with_pnl:
            for name in SET_ORDER:
                p = "pnl/%s" % name
                if not T.check("%s: /%s present" % (tag, p), p in f):
                    continue
                d = f[p]
                L = np.array(losses[name][0])
                T.check("%s: /%s is float32 [S x A]" % (tag, p), d.dtype == np.float32 and d.shape == L.shape,
                        "%s %s" % (d.dtype, d.shape))
                T.close("%s: /%s equals the hand losses" % (tag, p), d[()], L, 1.2e-7,
                        atol=1e-6 * sc[None, :] * np.ones_like(L))


def show(exp):
    """The expected key outputs, for the log."""
    print("# expected (account currency): requirement unified siloed diversification minimum binding_set")
    for a, acc in enumerate(ACCOUNTS):
        print("#   %-10s %s  %.10g  %.10g  %.10g  %.10g  %.10g  %s" % (
            acc[0], acc[2], exp["requirement"][a], exp["unified"][a], exp["siloed"][a],
            exp["diversification"][a], exp["minimum"][a], SET_ORDER[exp["binding_set"][a]]))


def main():
    global PORT, SCEN
    if "--selfcheck" in sys.argv[1:]:
        T.run(selfcheck)
        exp, losses, _ = hand_margin()
        T.run(sanity_of_book, exp, losses)
        show(exp)
        T.finish()
    exp, losses, scale = hand_margin()
    show(exp)
    T.run(sanity_of_book, exp, losses)
    with tl.TmpDir() as tmp:
        PORT = os.path.join(tmp, "book.h5")
        SCEN = os.path.join(tmp, "sets.h5")
        tl.write_portfolio(PORT, FACTORS, SILOS, INSTRUMENTS, ACCOUNTS, POSITIONS, currency=REPORTING, fx=FX)
        tl.write_scenarios(SCEN, None, SETS)
        off = ["historical.enabled=false", "montecarlo.enabled=false"]
        devices = ["cpu"]
        if tl.opencl_available():
            devices.append("opencl")
        else:
            T.skip("the runs on --device opencl", "`xmargin devices` lists no OpenCL device")
        for dev in devices:
            for with_pnl in (False, True):
                out = os.path.join(tmp, "r_%s_%d.h5" % (dev, with_pnl))
                rc, so, se, dt = tl.margin_run(PORT, SCEN, out, dev, off, ["--save-pnl"] if with_pnl else [])
                tag = "%s%s" % (dev, " --save-pnl" if with_pnl else "")
                if not T.check("%s: run exits 0 (%.2f s)" % (tag, dt), rc == 0 and os.path.exists(out),
                               "rc %d: %s" % (rc, se.strip()[-500:])):
                    continue
                T.run(check_results, tag, out, exp, scale, losses, with_pnl)
    T.finish()


if __name__ == "__main__":
    main()
