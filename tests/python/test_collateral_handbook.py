#!/usr/bin/python3
"""End-to-end check of issue 14 (METHODOLOGY.md sections 4, 4.1 and 6) on a hand-computable book.

A second, independent oracle (it does NOT use xm_reference): every /margin output
of `xmargin run` -- requirement, unified, siloed, diversification, minimum,
minimum_binds, liquidity, by_set, by_silo, liquidity_by_silo, requirement_by_silo,
attribution, binding_set, collateral_value, collateral, excess, call, call_siloed
and hedge_credit -- is worked out here with plain Python arithmetic from the spec,
for three runs on --device cpu and --device opencl:
  schedule   collateral.method = schedule, apc.buffer = 0
  scenario   collateral.method = scenario, apc.buffer = 0 (the book's holdings of
             silo -1 are posted to a silo instead: that method refuses silo -1)
  buffer     collateral.method = schedule, apc.buffer = 0.25
Ready-made sets only, measure `worst` (historical and Monte Carlo disabled by --set).

The readings implemented (the team's decisions where the spec is silent):
- Losses (section 2, 2.2): price factors S' = S e^x, `vol` factors v' = v + x floored
  at 0.01; T' = max(T - 2/252, 0). Value types (spot, option): l = V(0) R(0) - V(x) R(x),
  settled (future): l = (V(0) - V(x)) R(x), R = X_c / X_b with X the /fx level.
- worst (section 3): max_s w_s L(s), the first argmax, floored at 0.
- Add-on (4.1): for account a (currency b) and J = all its instruments or silo g's
  (with collateral.method = scenario its holdings too, each in its posted silo), the
  price factors J depends on are each instrument's underlying, the /fx factor of its
  settlement currency and the /fx factor of b (a factor that is both moves once).
  E_f = [L_J(-u e_f) - L_J(+u e_f)] / (2u), u = 0.01, S' = S e^{+-u} for that factor
  alone, time not moved (T' = T), vols not moved. LQ = sum_f |E_f| (s_f + k_f
  sqrt(|E_f| X_b / A_f)), the sqrt term 0 where A_f = 0 or k_f = 0.
- Requirement (4): Uni = U + LQ_a; Sil = sum_g (S_g + LQ_g); D = max(0, Sil - Uni);
  C = Uni + (1 - c) D (eligible) else Sil; M_g = max((1 + beta)(S_g + LQ_g), Min_g) for
  every account (requirement_by_silo); eligible M = max((1 + beta) C, Min), not eligible
  M = sum_g M_g; minimum = Min_a; minimum_binds: eligible Min >= (1 + beta) C and Min > 0,
  not eligible some g with Min_g >= (1 + beta)(S_g + LQ_g) and Min_g > 0; hedge_credit =
  c D (eligible) else 0; attribution = w_s* L_g(s*) of the binding set (shares of U).
- Collateral (6): CV_j = q P X_c / X_b (P = 1 for cash); schedule: ACV = CV kappa_f
  (1 - h_f), kappa_f = min(1, (lim_f / X_b) / sum of the account's CV on f) (1 where
  lim_f = 0), cash ACV = CV; scenario: ACV = CV and each holding joins L_a and
  L_{a, its silo} as q units of a spot of multiplier 1 on its factor in c_j (cash: a
  constant q in c_j). Eligible: excess = sum ACV - M, call = max(0, -excess); not
  eligible: call = sum_g max(0, -E_g), excess = -call if call > 0 else sum_g E_g + the
  ACV of silo -1; call_siloed = sum_g max(0, -E_g), E_g = sum_{silo_j = g} ACV - M_g.

Book (reporting USD; /fx BTC -> BTC, EUR -> EURUSD). Factors, with their section 4.1 and
section 6 columns:
  SPX    price 5000   half_spread 0.0003 impact 0.1 adv 1e9  haircut 0.08
  SPX.iv vol   0.2
  SMALL  price 20     half_spread 0.004  impact 0.1 adv 1e5  (a thin stock)
  BTC    price 60000  half_spread 0.0005 impact 0.1 adv 2e9  haircut 0.15, limit 100000
  EURUSD price 1.1    half_spread 0.0001
Silos securities, futures, crypto. Accounts:
  HEDGE      eligible: +600 SPY (SPX spot, m 0.1, as 400 + 200; securities) vs -1 ES
             (SPX future, m 50; futures): 300000 vs 250000 of SPX, the add-on nets in
             the unified pool (50000) and not in the silos; 30000 cash posted to
             securities only: call 0, call_siloed = the futures silo's M > 0.
  SMALLCAP   eligible: +25000 SMALL (500000 notional, 5 ADVs): the sqrt impact term
             is most of the add-on; no collateral: call = M.
  BTCFUT     eligible: +1 BTC future (m 5) against 6 BTC and 20000 cash posted to
             crypto: schedule: 6 BTC = 360000 capped at 100000 and cut 15%; scenario:
             the coins fall with the future (wrong way) and the requirement rises.
  NOTELIG    not eligible: +2 SPX 7000 calls (securities: its minimum 75 binds),
             -2 ES 4800 puts and -1 ES (futures, minimum 37.5 that does not bind),
             +1 BTC future (crypto, unfunded: a call); M = sum_g M_g > max(Sil, Min).
  NOTELIG_OK not eligible, well funded: excess = sum_g E_g + the holdings of silo -1
             (schedule: 10000 EUR cash; scenario: in securities, with its FX risk).
  MINONLY    eligible: +4 SPX 7000 calls: the minimum 150 binds; 100 cash: call 50.
  BTCACCT    eligible, in BTC: +1 BTC future and +100 SPY, 2 BTC and 10000 USD cash:
             BTC is both the future's underlying and the account's currency factor
             (moves once); the BTC holding has no BTC risk in a BTC account.
Sets (run order = name order): grid (worst, 6 scenarios), stress (worst, weights
0.35 on the two extreme scenarios).

`--selfcheck` recomputes expected values a second way (closed forms) without the engine.
Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

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
U = 0.01                # the add-on's log-shock (METHODOLOGY 4.1)
RTOL = 1e-12            # relative, every output
ATOL_ZERO = 1e-9        # absolute, where the expected value is 0
VOL_FLOOR = 0.01
PER_CONTRACT = 0.375
OFFSET_CAP = 0.80
REPORTING = "USD"
OPTION_TYPES = ("option", "future_option", "american_option", "inverse_option")
SETTLED_TYPES = ("future",)

# ---------------------------------------------------------------- the book

FACTORS = [("SPX", "price", 5000.0, dict(half_spread=0.0003, impact=0.1, adv=1e9, haircut=0.08)),
           ("SPX.iv", "vol", 0.2, {}),
           ("SMALL", "price", 20.0, dict(half_spread=0.004, impact=0.1, adv=1e5)),
           ("BTC", "price", 60000.0, dict(half_spread=0.0005, impact=0.1, adv=2e9, haircut=0.15,
                                          collateral_limit=1e5)),
           ("EURUSD", "price", 1.1, dict(half_spread=0.0001))]
FIDX = {f[0]: i for i, f in enumerate(FACTORS)}
FX = [("BTC", FIDX["BTC"]), ("EUR", FIDX["EURUSD"])]
FX_ROW = dict(FX)
SILOS = ["securities", "futures", "crypto"]
SIL = {n: i for i, n in enumerate(SILOS)}
INSTRUMENTS = [
    dict(id="SPY", type="spot", silo=SIL["securities"], underlying=FIDX["SPX"], multiplier=0.1),
    dict(id="ES", type="future", silo=SIL["futures"], underlying=FIDX["SPX"], multiplier=50.0),
    dict(id="SPX_C7000", type="option", silo=SIL["securities"], underlying=FIDX["SPX"],
         vol_factor=FIDX["SPX.iv"], strike=7000.0, expiry=0.1, call=1, implied_vol=0.2, rate=0.04,
         dividend_yield=0.01, multiplier=100.0),
    dict(id="ES_P4800", type="future_option", silo=SIL["futures"], underlying=FIDX["SPX"],
         vol_factor=FIDX["SPX.iv"], strike=4800.0, expiry=0.25, call=0, implied_vol=0.22, rate=0.04,
         multiplier=50.0),
    dict(id="SMALL", type="spot", silo=SIL["securities"], underlying=FIDX["SMALL"], multiplier=1.0),
    dict(id="BTCF", type="future", silo=SIL["crypto"], underlying=FIDX["BTC"], multiplier=5.0),
]
IIDX = {ins["id"]: i for i, ins in enumerate(INSTRUMENTS)}
ACCOUNTS = [("HEDGE", 1, "USD"), ("SMALLCAP", 1, "USD"), ("BTCFUT", 1, "USD"), ("NOTELIG", 0, "USD"),
            ("NOTELIG_OK", 0, "USD"), ("MINONLY", 1, "USD"), ("BTCACCT", 1, "BTC")]
AIDX = {a[0]: i for i, a in enumerate(ACCOUNTS)}
_P = [("HEDGE", "SPY", 400.0), ("HEDGE", "ES", -1.0), ("HEDGE", "SPY", 200.0),
      ("SMALLCAP", "SMALL", 25000.0),
      ("BTCFUT", "BTCF", 1.0),
      ("NOTELIG", "SPX_C7000", 2.0), ("NOTELIG", "ES_P4800", -2.0), ("NOTELIG", "ES", -1.0),
      ("NOTELIG", "BTCF", 1.0),
      ("NOTELIG_OK", "SPY", 300.0), ("NOTELIG_OK", "ES", -1.0),
      ("MINONLY", "SPX_C7000", 4.0),
      ("BTCACCT", "BTCF", 1.0), ("BTCACCT", "SPY", 100.0)]
POSITIONS = [(AIDX[a], IIDX[i], q) for a, i, q in _P]
CASH = -1
NONE = -1
# /collateral rows: (account, factor, quantity, currency, silo under schedule, silo under scenario)
_C = [("HEDGE", CASH, 30000.0, "USD", "securities", "securities"),
      ("HEDGE", CASH, 1000.0, "USD", NONE, "futures"),
      ("BTCFUT", "BTC", 6.0, "USD", "crypto", "crypto"),
      ("BTCFUT", CASH, 20000.0, "USD", "crypto", "crypto"),
      ("NOTELIG", CASH, 60000.0, "USD", "futures", "futures"),
      ("NOTELIG", "BTC", 0.2, "USD", "crypto", "crypto"),
      ("NOTELIG", CASH, 5000.0, "USD", NONE, "securities"),
      ("NOTELIG_OK", CASH, 50000.0, "USD", "futures", "futures"),
      ("NOTELIG_OK", CASH, 5000.0, "USD", "securities", "securities"),
      ("NOTELIG_OK", "SPX", 4.0, "USD", "securities", "securities"),
      ("NOTELIG_OK", CASH, 10000.0, "EUR", NONE, "securities"),
      ("MINONLY", CASH, 100.0, "USD", "securities", "securities"),
      ("BTCACCT", "BTC", 2.0, "USD", "crypto", "crypto"),
      ("BTCACCT", CASH, 10000.0, "USD", "securities", "securities")]


def holdings(book):
    """The /collateral rows of the schedule book or of the scenario book, as dicts."""
    col = 4 if book == "schedule" else 5
    out = []
    for row in _C:
        s = row[col]
        out.append(dict(account=AIDX[row[0]], factor=CASH if row[1] == CASH else FIDX[row[1]],
                        quantity=row[2], currency=row[3], silo=NONE if s == NONE else SIL[s]))
    return out


SETS = {
    "grid": dict(
        factor=["SPX", "SPX.iv", "SMALL", "BTC", "EURUSD"],
        shock=[[-0.06, 0.05, -0.10, -0.12, -0.02],
               [0.05, -0.03, 0.08, 0.10, 0.015],
               [-0.03, 0.02, -0.15, 0.05, 0.01],
               [0.02, -0.01, 0.03, -0.20, -0.01],
               [-0.10, 0.10, -0.05, -0.05, 0.03],
               [0.08, 0.0, 0.12, 0.15, -0.03]],
        label=["g0", "g1", "g2", "g3", "g4", "g5"],
        measure="worst"),
    "stress": dict(
        factor=["BTC", "SPX", "SPX.iv", "SMALL", "EURUSD"],
        shock=[[-0.40, -0.25, 0.20, -0.35, -0.05],
               [0.35, 0.20, -0.05, 0.30, 0.04],
               [-0.09, -0.07, 0.06, -0.20, -0.01],
               [0.08, 0.04, 0.0, -0.12, 0.02]],
        label=["crash (35%)", "rally (35%)", "down", "split"],
        weight=[0.35, 0.35, 1.0, 1.0],
        measure="worst"),
}
SET_ORDER = sorted(SETS)           # run order of ready-made sets: by name

RUNS = [("schedule", "schedule", 0.0), ("scenario", "scenario", 0.0), ("buffer", "schedule", 0.25)]

# ---------------------------------------------------------------- hand pricing


def ncdf(x):
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


def level(row, x):
    """A price factor's level in scenario x (a dict factor name -> shock; {} today)."""
    name, _, s0 = FACTORS[row][:3]
    return s0 * math.exp(x.get(name, 0.0))


def fx_level(cur, x):
    """X_c(x): the value of one unit of currency c in USD."""
    return 1.0 if cur == REPORTING else level(FX_ROW[cur], x)


def unit_value(ins, S, t, vol):
    m, ty = ins["multiplier"], ins["type"]
    if ty == "spot":
        return m * S
    K, r, call = ins["strike"], ins.get("rate", 0.0), ins["call"]
    if ty == "option":
        return m * bsm(S, K, t, r, ins.get("dividend_yield", 0.0), vol, call)
    if ty == "future_option":
        return m * black76(S, K, t, r, vol, call)
    raise ValueError(ty)


def contract_loss(ins, x, b, move_time=True):
    """Loss of one contract in account currency b (section 2, 2.2). move_time=False is
    the add-on's revaluation (4.1): T' = T; its x moves one price factor only."""
    S0, S1 = level(ins["underlying"], {}), level(ins["underlying"], x)
    c = ins.get("currency", REPORTING)
    R0 = fx_level(c, {}) / fx_level(b, {})
    R1 = fx_level(c, x) / fx_level(b, x)
    if ins["type"] in SETTLED_TYPES:
        return ins["multiplier"] * (S0 - S1) * R1
    if ins["type"] == "spot":
        return unit_value(ins, S0, 0.0, 0.0) * R0 - unit_value(ins, S1, 0.0, 0.0) * R1
    t0 = ins["expiry"]
    t1 = max(t0 - DT, 0.0) if move_time else t0
    vname = FACTORS[ins["vol_factor"]][0]
    vol1 = max(ins["implied_vol"] + x.get(vname, 0.0), VOL_FLOOR)    # kind `vol`: additive
    return unit_value(ins, S0, t0, ins["implied_vol"]) * R0 - unit_value(ins, S1, t1, vol1) * R1


def holding_price(h, x):
    return 1.0 if h["factor"] == CASH else level(h["factor"], x)


def holding_loss(h, x, b):
    """Section 6, scenario method: q units of a spot of multiplier 1 on the holding's
    factor, settled in its currency (cash: the constant q in that currency)."""
    c = h["currency"]
    R0 = fx_level(c, {}) / fx_level(b, {})
    R1 = fx_level(c, x) / fx_level(b, x)
    return h["quantity"] * (holding_price(h, {}) * R0 - holding_price(h, x) * R1)


def account_losses(a, x, held, move_time=True):
    """[L_{a,g}(x) for g] from the positions and the holdings `held` (those in the losses)."""
    b = ACCOUNTS[a][2]
    lg = [0.0] * len(SILOS)
    for aa, i, q in POSITIONS:
        if aa == a:
            ins = INSTRUMENTS[i]
            lg[ins["silo"]] += q * contract_loss(ins, x, b, move_time)
    for h in held:
        if h["account"] == a:
            lg[h["silo"]] += holding_loss(h, x, b)
    return lg


# ---------------------------------------------------------------- section 4.1


def addon_factors(a, g, held):
    """The price factors that set J (silo g, or None: the whole account) depends on."""
    b = ACCOUNTS[a][2]
    fs = set()
    if b != REPORTING:
        fs.add(FX_ROW[b])
    for aa, i, _ in POSITIONS:
        ins = INSTRUMENTS[i]
        if aa == a and (g is None or ins["silo"] == g):
            fs.add(ins["underlying"])
            if ins.get("currency", REPORTING) != REPORTING:
                fs.add(FX_ROW[ins["currency"]])
    for h in held:
        if h["account"] == a and (g is None or h["silo"] == g):
            if h["factor"] != CASH:
                fs.add(h["factor"])
            if h["currency"] != REPORTING:
                fs.add(FX_ROW[h["currency"]])
    in_j = any(aa == a and (g is None or INSTRUMENTS[i]["silo"] == g) for aa, i, _ in POSITIONS) or \
        any(h["account"] == a and (g is None or h["silo"] == g) for h in held)
    return sorted(fs) if in_j else []


def delta_notional(a, g, held, f):
    """E_f = [L_J(-u e_f) - L_J(+u e_f)] / (2u), time not moved."""
    name = FACTORS[f][0]
    def lj(y):
        lg = account_losses(a, {name: y}, held, move_time=False)
        return sum(lg) if g is None else lg[g]
    return (lj(-U) - lj(U)) / (2.0 * U)


def addon(a, g, held):
    """LQ_J = sum_f |E_f| (s_f + k_f sqrt(|E_f| X_b / A_f)); {f: E_f} too."""
    xb = fx_level(ACCOUNTS[a][2], {})
    lq, es = 0.0, {}
    for f in addon_factors(a, g, held):
        e = abs(delta_notional(a, g, held, f))
        es[f] = e
        ext = FACTORS[f][3]
        s, k, A = ext.get("half_spread", 0.0), ext.get("impact", 0.0), ext.get("adv", 0.0)
        lq += e * (s + (k * math.sqrt(e * xb / A) if A > 0 and k > 0 else 0.0))
    return lq, es


# ---------------------------------------------------------------- sections 3, 4, 6


def worst(values, name):
    """(unfloored w_s* L(s*), s*, w_s*): the first largest weighted loss."""
    w = SETS[name].get("weight") or [1.0] * len(values)
    wl = [w[s] * values[s] for s in range(len(values))]
    s_star = max(range(len(values)), key=lambda s: (wl[s], -s))
    return wl[s_star], s_star, w[s_star]


def minimum_of(a, g=None):
    """0.375 sum |q| m over option positions (of silo g), USD, / X_b today."""
    usd = PER_CONTRACT * sum(abs(q) * INSTRUMENTS[i]["multiplier"] for aa, i, q in POSITIONS
                             if aa == a and INSTRUMENTS[i]["type"] in OPTION_TYPES
                             and (g is None or INSTRUMENTS[i]["silo"] == g))
    return usd / fx_level(ACCOUNTS[a][2], {})


def collateral_of(a, held, method):
    """[(holding, CV_j, ACV_j)] of account a (section 6)."""
    xb = fx_level(ACCOUNTS[a][2], {})
    mine = [h for h in held if h["account"] == a]
    cv = [h["quantity"] * holding_price(h, {}) * fx_level(h["currency"], {}) / xb for h in mine]
    out = []
    for h, v in zip(mine, cv):
        if method == "scenario" or h["factor"] == CASH:
            out.append((h, v, v))
            continue
        ext = FACTORS[h["factor"]][3]
        lim = ext.get("collateral_limit", 0.0)
        tot = sum(v2 for h2, v2 in zip(mine, cv) if h2["factor"] == h["factor"])
        kappa = 1.0 if lim == 0.0 or tot == 0.0 else min(1.0, (lim / xb) / tot)
        out.append((h, v, v * kappa * (1.0 - ext.get("haircut", 0.0))))
    return out


def hand_margin(book, method, beta):
    """Every /margin output of one run, worked out: {name: [per account]}."""
    A, G = len(ACCOUNTS), len(SILOS)
    held = holdings(book)
    in_losses = held if method == "scenario" else []
    keys = ("requirement", "unified", "siloed", "diversification", "minimum", "minimum_binds",
            "liquidity", "by_set", "by_silo", "liquidity_by_silo", "requirement_by_silo",
            "attribution", "binding_set", "collateral_value", "collateral", "excess", "call",
            "call_siloed", "hedge_credit", "core", "core_by_silo", "scale")
    r = {k: [] for k in keys}
    for a in range(A):
        by_set, attr, core_g, scale = [], [], [0.0] * G, 0.0
        for name in SET_ORDER:
            st = SETS[name]
            LG = [account_losses(a, dict(zip(st["factor"], row)), in_losses) for row in st["shock"]]
            L = [sum(lg) for lg in LG]
            scale = max([scale] + [abs(v) for v in L])
            raw, s_star, w = worst(L, name)
            by_set.append(max(raw, 0.0))
            attr.append([w * LG[s_star][g] for g in range(G)])          # unfloored shares
            for g in range(G):
                core_g[g] = max(core_g[g], max(worst([lg[g] for lg in LG], name)[0], 0.0))
        u = max(by_set)
        bind = by_set.index(u)                                          # the first set on a tie
        lq_a = addon(a, None, in_losses)[0]
        lq_g = [addon(a, g, in_losses)[0] for g in range(G)]
        silo_tot = [core_g[g] + lq_g[g] for g in range(G)]
        uni = u + lq_a
        sil = sum(silo_tot)
        d = max(0.0, sil - uni)
        eligible = ACCOUNTS[a][1] == 1
        cross = uni + (1.0 - OFFSET_CAP) * d if eligible else sil
        mn = minimum_of(a)
        mn_g = [minimum_of(a, g) for g in range(G)]
        m_g = [max((1.0 + beta) * silo_tot[g], mn_g[g]) for g in range(G)]
        if eligible:
            req = max((1.0 + beta) * cross, mn)
            binds = int(mn >= (1.0 + beta) * cross and mn > 0.0)
        else:
            req = sum(m_g)
            binds = int(any(mn_g[g] >= (1.0 + beta) * silo_tot[g] and mn_g[g] > 0.0 for g in range(G)))
        coll = collateral_of(a, held, method)
        pool_g = [sum(acv for h, _, acv in coll if h["silo"] == g) for g in range(G)]
        free = sum(acv for h, _, acv in coll if h["silo"] == NONE)
        e_g = [pool_g[g] - m_g[g] for g in range(G)]
        call_siloed = sum(max(0.0, -e) for e in e_g)
        if eligible:
            excess = sum(acv for _, _, acv in coll) - req
            call = max(0.0, -excess)
        else:
            call = call_siloed
            excess = -call if call > 0.0 else sum(e_g) + free
        for k, v in (("requirement", req), ("unified", uni), ("siloed", sil), ("diversification", d),
                     ("minimum", mn), ("minimum_binds", binds), ("liquidity", lq_a), ("by_set", by_set),
                     ("by_silo", silo_tot), ("liquidity_by_silo", lq_g), ("requirement_by_silo", m_g),
                     ("attribution", attr[bind]), ("binding_set", bind),
                     ("collateral_value", sum(cv for _, cv, _ in coll)),
                     ("collateral", sum(acv for _, _, acv in coll)), ("excess", excess), ("call", call),
                     ("call_siloed", call_siloed), ("hedge_credit", OFFSET_CAP * d if eligible else 0.0),
                     ("core", u), ("core_by_silo", core_g), ("scale", scale)):
            r[k].append(v)
    return r


# ---------------------------------------------------------------- self-check (no engine)


def selfcheck():
    """Expected values recomputed a second way, by closed forms."""
    sh = math.sinh(U) / U          # a linear exposure N on factor f has E_f = N sinh(u)/u
    spx = FACTORS[FIDX["SPX"]][3]
    # HEDGE: 600 x 0.1 x 5000 = 300000 long SPX in securities, 50 x 5000 = 250000 short in futures
    a = AIDX["HEDGE"]
    for g, n in ((None, 50000.0), (SIL["securities"], 300000.0), (SIL["futures"], 250000.0)):
        e = n * sh
        want = e * (spx["half_spread"] + spx["impact"] * math.sqrt(e / spx["adv"]))
        T.close("selfcheck: HEDGE LQ (%s) = N sinh(u)/u (s + k sqrt(E/A)), N = %g" % (g, n),
                addon(a, g, [])[0], want, 1e-13)
    # SMALLCAP: 25000 x 20 = 500000 = 5 ADVs; E = 500000 sinh(u)/u
    e = 500000.0 * sh
    sm = FACTORS[FIDX["SMALL"]][3]
    T.close("selfcheck: SMALLCAP LQ = E (0.004 + 0.1 sqrt(E / 1e5))", addon(AIDX["SMALLCAP"], None, [])[0],
            e * (0.004 + 0.1 * math.sqrt(e / sm["adv"])), 1e-13)
    # BTCACCT (in BTC): the USD future of m 5 loses 5 (e^-y - 1) BTC when BTC moves y (price and
    # currency at once): E = 5 sinh(u)/u; 100 SPY are 50000 USD = 5/6 BTC: E_SPX = 5/6 sinh(u)/u,
    # and their BTC value falls when BTC rises: E_BTC = -5/6 sinh(u)/u
    a = AIDX["BTCACCT"]
    held = holdings("scenario")
    T.close("selfcheck: BTCACCT crypto E_BTC = 5 sinh(u)/u (BTC moves once)",
            delta_notional(a, SIL["crypto"], [], FIDX["BTC"]), 5.0 * sh, 1e-13)
    T.close("selfcheck: BTCACCT securities E_SPX = 5/6 sinh(u)/u",
            delta_notional(a, SIL["securities"], [], FIDX["SPX"]), 5.0 / 6.0 * sh, 1e-13)
    T.close("selfcheck: BTCACCT securities E_BTC = -5/6 sinh(u)/u",
            delta_notional(a, SIL["securities"], [], FIDX["BTC"]), -5.0 / 6.0 * sh, 1e-13)
    T.close("selfcheck: BTCACCT unified E_BTC = (5 - 5/6) sinh(u)/u (nets)",
            delta_notional(a, None, [], FIDX["BTC"]), (5.0 - 5.0 / 6.0) * sh, 1e-13)
    btc_h = [h for h in held if h["account"] == a and h["factor"] == FIDX["BTC"]]
    T.check("selfcheck: 2 BTC held in a BTC account have no BTC exposure",
            abs(delta_notional(a, SIL["crypto"], btc_h, FIDX["BTC"]) - 5.0 * sh) < 1e-12 and
            all(abs(holding_loss(btc_h[0], {"BTC": y}, "BTC")) < 1e-15 for y in (-0.4, 0.1, 0.35)))
    cash = [h for h in held if h["account"] == a and h["factor"] == CASH]
    T.close("selfcheck: BTCACCT's 10000 USD cash: E_BTC = -(10000/60000) sinh(u)/u",
            delta_notional(a, SIL["securities"], cash, FIDX["BTC"]) - delta_notional(a, SIL["securities"], [],
                                                                                   FIDX["BTC"]),
            -10000.0 / 60000.0 * sh, 1e-12)
    # holdings: USD cash in a USD account carries no risk; EUR cash loses 11000 (1 - e^x)
    h_usd = dict(account=0, factor=CASH, quantity=30000.0, currency="USD", silo=0)
    h_eur = dict(account=0, factor=CASH, quantity=10000.0, currency="EUR", silo=0)
    for y in (-0.05, 0.02):
        T.check("selfcheck: USD cash in a USD account loses 0 (EURUSD %g)" % y,
                holding_loss(h_usd, {"EURUSD": y, "SPX": -0.2}, "USD") == 0.0)
        T.close("selfcheck: 10000 EUR cash loses 11000 (1 - e^x), x = %g" % y,
                holding_loss(h_eur, {"EURUSD": y}, "USD"), 11000.0 * (1.0 - math.exp(y)), 1e-12)
    # schedule: BTCFUT's 6 BTC = 360000 USD capped at 100000 and cut by 15%; NOTELIG's 0.2 BTC =
    # 12000 under the cap: 12000 x 0.85; BTCACCT's 2 BTC under a cap of 100000/60000 BTC
    sched = holdings("schedule")
    T.close("selfcheck: BTCFUT collateral = 100000 x 0.85 + 20000",
            sum(acv for _, _, acv in collateral_of(AIDX["BTCFUT"], sched, "schedule")), 85000.0 + 20000.0, 1e-15)
    T.close("selfcheck: BTCFUT collateral_value = 360000 + 20000",
            sum(cv for _, cv, _ in collateral_of(AIDX["BTCFUT"], sched, "schedule")), 380000.0, 1e-15)
    T.close("selfcheck: NOTELIG collateral = 60000 + 12000 x 0.85 + 5000",
            sum(acv for _, _, acv in collateral_of(AIDX["NOTELIG"], sched, "schedule")), 75200.0, 1e-15)
    T.close("selfcheck: NOTELIG_OK collateral = 50000 + 5000 + 20000 x 0.92 + 11000",
            sum(acv for _, _, acv in collateral_of(AIDX["NOTELIG_OK"], sched, "schedule")), 84400.0, 1e-15)
    T.close("selfcheck: BTCACCT collateral = (100000/60000) x 0.85 + 10000/60000 BTC",
            sum(acv for _, _, acv in collateral_of(AIDX["BTCACCT"], sched, "schedule")),
            (100000.0 / 60000.0) * 0.85 + 10000.0 / 60000.0, 1e-15)
    T.close("selfcheck: BTCACCT collateral_value = 2 + 1/6 BTC",
            sum(cv for _, cv, _ in collateral_of(AIDX["BTCACCT"], sched, "schedule")), 2.0 + 1.0 / 6.0, 1e-15)
    # minimum: NOTELIG 0.375 (2 x 100) in securities + 0.375 (2 x 50) in futures
    T.close("selfcheck: NOTELIG securities minimum 75", minimum_of(AIDX["NOTELIG"], SIL["securities"]), 75.0, 0.0)
    T.close("selfcheck: NOTELIG futures minimum 37.5", minimum_of(AIDX["NOTELIG"], SIL["futures"]), 37.5, 0.0)
    T.close("selfcheck: MINONLY minimum 150", minimum_of(AIDX["MINONLY"]), 150.0, 0.0)
    # Black-76 put-call parity for the ES put: C - P = e^{-rT}(F - K)
    p = INSTRUMENTS[IIDX["ES_P4800"]]
    F, K, t, r, v = 5000.0, p["strike"], p["expiry"], p["rate"], p["implied_vol"]
    T.close("selfcheck: Black-76 parity", black76(F, K, t, r, v, 1) - black76(F, K, t, r, v, 0),
            math.exp(-r * t) * (F - K), 1e-12)
    # a future and a spot: the loss of the hedge pair is 50000 (1 - e^x) for an SPX move x
    for y in (-0.25, 0.08):
        lg = account_losses(AIDX["HEDGE"], {"SPX": y}, [])
        T.close("selfcheck: HEDGE loss = 50000 (1 - e^x), x = %g" % y, sum(lg), 50000.0 * (1 - math.exp(y)),
                1e-12)
    # the option's add-on exposure is its delta notional to O(u^2): NOTELIG's futures silo holds -2
    # ES 4800 puts (Black-76 delta -e^{-rT} N(-d1)) and -1 ES: E_SPX = -2 x 50 x F x delta - 250000 sinh(u)/u,
    # the central difference off by about u^2 / (6 sigma^2 T) = 1.4e-3 of the puts' part
    d1 = (math.log(F / K) + 0.5 * v * v * t) / (v * math.sqrt(t))
    delta_n = -2.0 * 50.0 * F * (-math.exp(-r * t) * ncdf(-d1)) - 250000.0 * sh
    T.close("selfcheck: NOTELIG futures E_SPX = the puts' delta notional - 250000 (to O(u^2))",
            delta_notional(AIDX["NOTELIG"], SIL["futures"], [], FIDX["SPX"]), delta_n, 2e-3)


# ---------------------------------------------------------------- the book means something

def sanity_of_book(exp):
    ex = {name: exp[name] for name, _, _ in RUNS}
    s, c, b = ex["schedule"], ex["scenario"], ex["buffer"]
    A = len(ACCOUNTS)
    for name in SET_ORDER:
        st = SETS[name]
        w = st.get("weight") or [1.0] * len(st["shock"])
        for tag, method in (("schedule", "schedule"), ("scenario", "scenario")):
            held = holdings(tag) if method == "scenario" else []
            for a in range(A):
                LG = [account_losses(a, dict(zip(st["factor"], row)), held) for row in st["shock"]]
                for g in [None] + list(range(len(SILOS))):
                    vals = sorted((w[i] * (sum(lg) if g is None else lg[g]) for i, lg in enumerate(LG)),
                                  reverse=True)
                    if vals[0] <= 0.0:
                        continue
                    T.check("book: no tie at worst (%s, %s, %s, silo %s)" % (tag, name, ACCOUNTS[a][0], g),
                            vals[0] - vals[1] > 1e-6 * vals[0], "%.9g %.9g" % (vals[0], vals[1]))
    for tag, e in ex.items():
        for a in range(A):
            bs = sorted(e["by_set"][a], reverse=True)
            if bs[0] > 0:
                T.check("book: no near-tie between sets (%s, %s)" % (tag, ACCOUNTS[a][0]),
                        bs[0] - bs[1] > 1e-4 * bs[0], "%.6g vs %.6g" % (bs[0], bs[1]))
        T.check("book: both sets bind some account (%s)" % tag, sorted(set(e["binding_set"])) == [0, 1],
                str(e["binding_set"]))
    a = AIDX["HEDGE"]
    T.check("book: HEDGE's add-on nets in the unified pool, not in the silos",
            s["liquidity"][a] < 0.2 * sum(s["liquidity_by_silo"][a]),
            "%.6g vs %s" % (s["liquidity"][a], s["liquidity_by_silo"][a]))
    T.check("book: HEDGE diversifies (hedge credit > 0)", s["hedge_credit"][a] > 0.5 * s["siloed"][a])
    for tag, e in ex.items():
        T.check("book: HEDGE's cash in securities cannot cover futures: call_siloed > call = 0 (%s)" % tag,
                e["call"][a] == 0.0 and e["call_siloed"][a] > 1000.0, "%.6g" % e["call_siloed"][a])
    a = AIDX["SMALLCAP"]
    e_small = addon(a, None, [])[1][FIDX["SMALL"]]
    T.check("book: SMALLCAP holds more than its ADV", e_small > 4.0 * FACTORS[FIDX["SMALL"]][3]["adv"])
    T.check("book: SMALLCAP's sqrt term is most of its add-on",
            e_small * 0.004 < 0.1 * s["liquidity"][a], "%.6g of %.6g" % (e_small * 0.004, s["liquidity"][a]))
    T.check("book: SMALLCAP has no collateral: call = requirement",
            s["collateral_value"][a] == 0.0 and s["call"][a] == s["requirement"][a])
    a = AIDX["BTCFUT"]
    T.check("book: BTCFUT wrong-way: the scenario method raises the requirement",
            c["requirement"][a] > 1.5 * s["requirement"][a],
            "%.6g vs %.6g" % (c["requirement"][a], s["requirement"][a]))
    T.check("book: BTCFUT the schedule's cap and haircut cut the collateral",
            s["collateral"][a] < 0.3 * s["collateral_value"][a] and c["collateral"][a] == c["collateral_value"][a])
    a = AIDX["NOTELIG"]
    for tag, e in ex.items():
        T.check("book: NOTELIG's v2 requirement exceeds the v1 max(Sil, Min) (%s)" % tag,
                e["requirement"][a] > max((1 + (0.25 if tag == "buffer" else 0.0)) * e["siloed"][a],
                                          e["minimum"][a]) + 10.0,
                "%.9g vs %.9g" % (e["requirement"][a], e["siloed"][a]))
        T.check("book: NOTELIG securities minimum binds, futures minimum does not (%s)" % tag,
                e["requirement_by_silo"][a][0] == 75.0 and e["requirement_by_silo"][a][1] > 37.5 * 10
                and e["minimum_binds"][a] == 1)
        T.check("book: NOTELIG is called (excess = -call) (%s)" % tag,
                e["call"][a] > 0.0 and e["excess"][a] == -e["call"][a])
    a = AIDX["NOTELIG_OK"]
    for tag, e in ex.items():
        T.check("book: NOTELIG_OK is not called, its excess is positive (%s)" % tag,
                e["call"][a] == 0.0 and e["excess"][a] > 0.0 and e["call_siloed"][a] == 0.0)
    a = AIDX["MINONLY"]
    for tag, e in ex.items():
        T.check("book: MINONLY's minimum binds (%s)" % tag,
                e["minimum_binds"][a] == 1 and e["requirement"][a] == 150.0 and e["call"][a] == 50.0)
    for nm in ("HEDGE", "SMALLCAP", "BTCFUT", "BTCACCT"):
        a = AIDX[nm]
        T.close("book: %s's buffer run asks 1.25 x the schedule run" % nm, b["requirement"][a],
                1.25 * s["requirement"][a], 1e-15)
        T.check("book: %s owes more than its minimum" % nm, s["minimum_binds"][a] == 0)
    a = AIDX["BTCACCT"]
    T.check("book: BTCACCT's add-on nets BTC across silos",
            s["liquidity"][a] < sum(s["liquidity_by_silo"][a]))


# ---------------------------------------------------------------- checks

FLOAT_A = ("requirement", "unified", "siloed", "diversification", "minimum", "liquidity",
           "collateral_value", "collateral", "excess", "call", "call_siloed", "hedge_credit")
FLOAT_AG = ("by_silo", "liquidity_by_silo", "requirement_by_silo", "attribution")
INT_A = ("minimum_binds", "binding_set")


def near(tag, got, want):
    """1e-12 relative; 1e-9 absolute where the expected value is 0."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return T.check(tag, False, "shape %s, expected %s" % (got.shape, want.shape))
    lim = np.where(want == 0.0, ATOL_ZERO, RTOL * np.abs(want))
    d = np.abs(got - want)
    bad = ~(d <= lim)
    if not bad.any():
        rel = np.where(want != 0.0, d / np.where(want != 0.0, np.abs(want), 1.0), 0.0)
        return T.check(tag, True, "max rel %.2e" % (float(rel.max()) if rel.size else 0.0))
    i = np.unravel_index(int(np.argmax(np.where(bad, d - lim, -np.inf))), d.shape)
    return T.check(tag, False, "at %s got %.17g expected %.17g (diff %.3g)" % (i, got[i], want[i], d[i]))


def check_results(tag, path, exp):
    A, G, K = len(ACCOUNTS), len(SILOS), len(SET_ORDER)
    with h5py.File(path, "r") as f:
        for name, vals in (("account", [a[0] for a in ACCOUNTS]), ("silo", SILOS), ("set", SET_ORDER)):
            T.check("%s: /%s" % (tag, name), name in f and tl.strings(f[name]) == vals)
        g = f["margin"]
        for name in FLOAT_A + FLOAT_AG + ("by_set",) + INT_A:
            if not T.check("%s: /margin/%s present" % (tag, name), name in g):
                continue
            shape = (A,) if name in FLOAT_A + INT_A else ((A, K) if name == "by_set" else (A, G))
            kind = "i" if name in INT_A else "f"
            T.check("%s: /margin/%s is %s %s" % (tag, name, "int" if kind == "i" else "float64", shape),
                    g[name].shape == shape and g[name].dtype.kind == kind and
                    (kind == "i" or g[name].dtype == np.float64), "%s %s" % (g[name].dtype, g[name].shape))
            got = g[name][()]
            if name in INT_A:
                T.check("%s: /margin/%s" % (tag, name), np.asarray(got).astype(np.int64).tolist() == exp[name],
                        "got %s expected %s" % (np.asarray(got).tolist(), exp[name]))
            else:
                near("%s: /margin/%s" % (tag, name), got, exp[name])
        # per account, so that a failure names the account
        for a in range(A):
            nm = ACCOUNTS[a][0]
            for name in FLOAT_A + FLOAT_AG + ("by_set",):
                if name in g and g[name].shape[0] == A:
                    near("%s: %s %s" % (tag, nm, name), g[name][a], exp[name][a])
        if "attribution" in g and "liquidity" in g and "unified" in g:
            near("%s: attribution sums to unified - liquidity" % tag, np.asarray(g["attribution"][()]).sum(axis=1),
                 [sum(x) for x in exp["attribution"]])
        for name in ("liquidity", "by_silo", "collateral", "call", "requirement_by_silo", "hedge_credit"):
            if name in g:
                units = tl.attr_str(g[name].attrs.get("units", ""))
                T.check("%s: /margin/%s units = 'account currency' (USD and BTC accounts)" % (tag, name),
                        units == "account currency", units)


def show(tag, exp):
    print("# expected, %s run (account currency)" % tag)
    cols = ("requirement", "unified", "siloed", "liquidity", "minimum", "collateral_value", "collateral",
            "excess", "call", "call_siloed", "hedge_credit")
    print("#   %-10s %s" % ("account", " ".join("%14s" % c[:14] for c in cols)))
    for a, acc in enumerate(ACCOUNTS):
        print("#   %-10s %s  binds %d  set %s  M_g %s" % (
            acc[0], " ".join("%14.8g" % exp[c][a] for c in cols), exp["minimum_binds"][a],
            SET_ORDER[exp["binding_set"][a]], ["%.8g" % v for v in exp["requirement_by_silo"][a]]))


def main():
    exp = {tag: hand_margin(tag if method == "scenario" else "schedule", method, beta)
           for tag, method, beta in RUNS}
    for tag, _, _ in RUNS:
        show(tag, exp[tag])
    T.run(selfcheck)
    T.run(sanity_of_book, exp)
    if "--selfcheck" in sys.argv[1:]:
        T.finish()
    with tl.TmpDir() as tmp:
        books = {}
        for book in ("schedule", "scenario"):
            books[book] = os.path.join(tmp, "book_%s.h5" % book)
            tl.write_portfolio(books[book], FACTORS, SILOS, INSTRUMENTS, ACCOUNTS, POSITIONS,
                               currency=REPORTING, fx=FX, collateral=holdings(book))
        scen = os.path.join(tmp, "sets.h5")
        tl.write_scenarios(scen, None, SETS)
        devices = ["cpu"]
        if tl.opencl_available():
            devices.append("opencl")
        else:
            T.skip("the runs on --device opencl", "`xmargin devices` lists no OpenCL device")
        for dev in devices:
            for tag, method, beta in RUNS:
                book = books["scenario" if method == "scenario" else "schedule"]
                out = os.path.join(tmp, "r_%s_%s.h5" % (dev, tag))
                sets = ["historical.enabled=false", "montecarlo.enabled=false",
                        "collateral.method=%s" % method, "apc.buffer=%g" % beta]
                rc, so, se, dt = tl.margin_run(book, scen, out, dev, sets)
                name = "%s %s" % (dev, tag)
                if not T.check("%s: run exits 0 (%.2f s)" % (name, dt), rc == 0 and os.path.exists(out),
                               "rc %d: %s" % (rc, se.strip()[-500:])):
                    continue
                T.run(check_results, name, out, exp[tag])
    T.finish()


if __name__ == "__main__":
    main()
