#!/usr/bin/python3
"""End-to-end check of the engine on a hand-computable book.

No history: the run uses three ready-made sets only (historical and Monte Carlo
disabled), so every number of FORMAT.md section 3 /margin can be worked out with
plain Python arithmetic (option prices by the BSM closed form with math.erf).
This script does NOT use xm_reference: it is a second, independent oracle.

Book (factors ETF, ETF.iv, ES, BTC; silos securities, futures, crypto):
  HEDGE       cross_margin=1: +100 ETF spot (as two positions 60 + 40) vs -1 ES
              future (multiplier 25): a hedged pair across silos securities/futures
  SHORTPUT    cross_margin=1: -10 ETF puts (multiplier 100, BSM) and -1 ES future
  HEDGE_NOCM  cross_margin=0: the HEDGE pair, margined silo by silo
  GAINER      cross_margin=1: +0.2 BTC; every set moves BTC up or not at all
  MINONLY     cross_margin=1: +2 deep out-of-the-money ETF calls: the
              per-contract minimum binds
  REVHEDGE    cross_margin=1: the HEDGE pair reversed; binds to the var set
Sets (run order = name order): stress (worst, weights, one 0.35), tail (es,
S=10, confidence 0.8 -> k=2), var8 (var, S=8, confidence 0.75 -> k=2, moves
only ES and ETF, columns in another order than the portfolio's).

Version 2 (METHODOLOGY 4, 4.1, 6): the book has no half_spread / impact columns, so
every liquidity add-on is exactly 0 and /margin/liquidity, liquidity_by_silo are 0;
requirement_by_silo M_g = max(S_g, Min_g), hedge_credit = 0.8 D for an eligible account,
minimum_binds, and no collateral outputs (no /collateral). The account that is not
eligible, HEDGE_NOCM, is margined as sum_g M_g (version 2), which equals version 1's
max(Sil, Min) = Sil here because it holds no option (every Min_g = 0).

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
RTOL = 1e-9

# ---------------------------------------------------------------- the book

FACTORS = [("ETF", "price", 50.0), ("ETF.iv", "vol", 0.25), ("ES", "price", 200.0), ("BTC", "price", 60000.0)]
FIDX = {n: i for i, (n, _, _) in enumerate(FACTORS)}
SILOS = ["securities", "futures", "crypto"]
INSTRUMENTS = [
    dict(id="ETF", type="spot", silo=0, underlying=FIDX["ETF"], multiplier=1.0),
    dict(id="ESU4", type="future", silo=1, underlying=FIDX["ES"], multiplier=25.0),
    dict(id="ETF_P48", type="option", silo=0, underlying=FIDX["ETF"], vol_factor=FIDX["ETF.iv"],
         strike=48.0, expiry=0.25, call=0, implied_vol=0.25, rate=0.04, dividend_yield=0.01,
         multiplier=100.0),
    dict(id="BTC", type="spot", silo=2, underlying=FIDX["BTC"], multiplier=1.0),
    dict(id="ETF_C80", type="option", silo=0, underlying=FIDX["ETF"], vol_factor=FIDX["ETF.iv"],
         strike=80.0, expiry=0.1, call=1, implied_vol=0.25, rate=0.04, dividend_yield=0.01,
         multiplier=100.0),
]
ACCOUNTS = [("HEDGE", 1), ("SHORTPUT", 1), ("HEDGE_NOCM", 0), ("GAINER", 1), ("MINONLY", 1), ("REVHEDGE", 1)]
POSITIONS = [(0, 0, 60.0), (0, 1, -1.0), (0, 0, 40.0),
             (1, 2, -10.0), (1, 1, -1.0),
             (2, 0, 100.0), (2, 1, -1.0),
             (3, 3, 0.2),
             (4, 4, 2.0),
             (5, 1, 1.0), (5, 0, -100.0)]

SETS = {
    "stress": dict(
        factor=["ETF", "ES", "ETF.iv", "BTC"],
        shock=[[-0.08, -0.077, 0.05, 0.02],
               [0.06, 0.058, -0.02, 0.01],
               [-0.03, -0.033, 0.02, 0.05],
               [0.02, 0.022, -0.01, 0.03],
               [-0.20, -0.19, 0.15, 0.10],
               [0.15, 0.14, -0.05, 0.08]],
        label=["down 8", "up 6", "down 3", "up 2", "crash (35%)", "melt-up (35%)"],
        weight=[1.0, 1.0, 1.0, 1.0, 0.35, 0.35],
        measure="worst"),
    "tail": dict(
        factor=["ETF", "ES", "ETF.iv", "BTC"],
        shock=np.array([[-0.05, 0.03, -0.01, 0.04, -0.07, 0.02, -0.03, 0.01, -0.02, 0.05],
                        [-0.046, 0.034, -0.013, 0.037, -0.064, 0.025, -0.035, 0.006, -0.018, 0.052],
                        [0.04, -0.02, 0.01, -0.03, 0.06, -0.01, 0.02, 0.0, 0.015, -0.04],
                        [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10]]).T.tolist(),
        label=["t%d" % i for i in range(10)],
        measure="es", confidence=0.8),
    "var8": dict(
        factor=["ES", "ETF"],
        shock=np.array([[-0.04, 0.05, -0.02, 0.01, -0.09, 0.03, -0.01, 0.06],
                        [-0.045, 0.047, -0.024, 0.016, -0.085, 0.028, -0.006, 0.061]]).T.tolist(),
        label=["v%d" % i for i in range(8)],
        measure="var", confidence=0.75),
}
SET_ORDER = sorted(SETS)           # run order of ready-made sets: by name
K_OF = {"tail": 2, "var8": 2}      # k = max(1, ceil((1 - alpha) S - 1e-9)): 0.2*10, 0.25*8

# ---------------------------------------------------------------- hand pricing


def ncdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bsm(S, K, t, r, q, vol, call):
    if t <= 0:
        return max(S - K, 0.0) if call else max(K - S, 0.0)
    d1 = (math.log(S / K) + (r - q + 0.5 * vol * vol) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if call:
        return S * math.exp(-q * t) * ncdf(d1) - K * math.exp(-r * t) * ncdf(d2)
    return K * math.exp(-r * t) * ncdf(-d2) - S * math.exp(-q * t) * ncdf(-d1)


def contract_loss(ins, x):
    """Loss of one contract for the shock dict x (factor name -> shock)."""
    und = FACTORS[ins["underlying"]]
    S0 = und[2]
    xs = x.get(und[0], 0.0)
    S1 = S0 * math.exp(xs)
    m = ins["multiplier"]
    if ins["type"] in ("spot", "future"):
        return m * (S0 - S1)
    # option: vol shifted in parallel (vol_term_power 0), floored at 0.01; time moves h/252
    xv = x.get(FACTORS[ins["vol_factor"]][0], 0.0)
    vol1 = max(ins["implied_vol"] + xv, 0.01)
    t1 = max(ins["expiry"] - HORIZON / 252.0, 0.0)
    v0 = bsm(S0, ins["strike"], ins["expiry"], ins["rate"], ins["dividend_yield"], ins["implied_vol"], ins["call"])
    v1 = bsm(S1, ins["strike"], t1, ins["rate"], ins["dividend_yield"], vol1, ins["call"])
    return m * (v0 - v1)


def hand_losses():
    """{set: (L[s][a], Lg[s][a][g])} by plain loops."""
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
                lg[a][ins["silo"]] += q * contract_loss(ins, x)
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
        # version 1 book: no half_spread / impact, so every add-on LQ is 0 (METHODOLOGY 4.1),
        # and apc.buffer beta = 0: Uni = U, Sil = sum_g S_g, M_g = max(S_g, Min_g)
        mn_g = [0.375 * sum(abs(q) * INSTRUMENTS[i]["multiplier"] for aa, i, q in POSITIONS
                            if aa == a and INSTRUMENTS[i]["silo"] == g
                            and INSTRUMENTS[i]["type"] in ("option", "future_option")) for g in range(G)]
        mn = sum(mn_g)
        m_g = [max(by_silo[a][g], mn_g[g]) for g in range(G)]
        if ACCOUNTS[a][1] == 1:
            cross = u + (1.0 - 0.8) * d
            req = max(cross, mn)
            binds = int(mn >= cross and mn > 0.0)
        else:
            # version 2 (METHODOLOGY 4): not eligible, M = sum_g M_{a,g}, each silo with its own
            # minimum. HEDGE_NOCM holds no option (every Min_g = 0): M = S_sec + S_fut = Sil, the
            # same number as version 1's max(Sil, Min), and minimum_binds = 0
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
        res["hedge_credit"].append(0.8 * d if ACCOUNTS[a][1] == 1 else 0.0)
        scale[a] += mn
    res["by_set"] = by_set
    res["by_silo"] = by_silo
    res["cross"] = None
    return res, losses, [s if s > 0 else 1.0 for s in scale]


# ---------------------------------------------------------------- checks

def sanity_of_book(exp, losses):
    """The book is built so that the checks mean something: no near-ties at the
    k-th boundary, a hedge that diversifies, a minimum that binds, a gainer."""
    A = len(ACCOUNTS)
    for name in ("tail", "var8"):
        L, _ = losses[name]
        k = K_OF[name]
        for a in range(A):
            col = sorted((L[s][a] for s in range(len(L))), reverse=True)
            if len({INSTRUMENTS[i]["silo"] for aa, i, _ in POSITIONS if aa == a}) < 2:
                continue    # one silo: attribution does not depend on which tied scenario
            gap = abs(col[k - 1] - col[k])
            T.check("book: no tie at k-th loss (%s, %s)" % (name, ACCOUNTS[a][0]), gap > 1e-6 * (abs(col[0]) + 1),
                    "gap %.3g" % gap)
    T.check("book: HEDGE diversifies", exp["diversification"][0] > 0.5 * exp["siloed"][0],
            "D %.4g of siloed %.4g" % (exp["diversification"][0], exp["siloed"][0]))
    T.check("book: MINONLY's minimum binds", exp["minimum"][4] > exp["unified"][4] + 0.2 * exp["diversification"][4])
    T.check("book: GAINER owes 0", exp["unified"][3] == 0.0 and exp["requirement"][3] == 0.0)
    T.check("book: every set binds some two-silo account",
            sorted(set(exp["binding_set"][a] for a in (0, 1, 5))) == [0, 1, 2], str(exp["binding_set"]))
    T.check("book: SHORTPUT minimum", exp["minimum"][1] == 375.0, str(exp["minimum"][1]))
    T.check("book: HEDGE_NOCM is not eligible, holds no option: M = Sil (version 1 and 2 agree)",
            exp["requirement"][2] == exp["siloed"][2] and exp["minimum"][2] == 0.0)
    T.check("book: the minimum binds for MINONLY only", exp["minimum_binds"] == [0, 0, 0, 0, 1, 0],
            str(exp["minimum_binds"]))


def check_results(tag, path, exp, scale, losses, with_pnl):
    A = len(ACCOUNTS)
    sc = np.array(scale)
    with h5py.File(path, "r") as f:
        # root attributes (FORMAT.md 3)
        need = ["format", "format_version", "software_version", "created_utc", "portfolio", "scenarios",
                "portfolio_sha256", "scenarios_sha256", "config", "device", "precision", "seed", "elapsed_s"]
        missing = [k for k in need if k not in f.attrs]
        T.check("%s: root attributes present" % tag, not missing, "missing %s" % missing)
        T.check("%s: format = xmargin.results" % tag, tl.attr_str(f.attrs.get("format", "")) == "xmargin.results")
        T.check("%s: format_version = 2" % tag, int(np.asarray(f.attrs.get("format_version", 0)).ravel()[0]) == 2)
        T.check("%s: precision attribute = double" % tag, tl.attr_str(f.attrs.get("precision", "")) == "double",
                tl.attr_str(f.attrs.get("precision", "")))
        dev = tl.attr_str(f.attrs.get("device", ""))
        T.check("%s: device attribute names the backend" % tag, tag.split()[0] in dev.lower(), dev)
        for key, src in (("portfolio_sha256", PORT), ("scenarios_sha256", SCEN)):
            with open(src, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            got = tl.attr_str(f.attrs.get(key, "")).lower()
            T.check("%s: %s matches the file" % (tag, key), got == digest, got)
        cfg = tl.attr_str(f.attrs.get("config", ""))
        T.check("%s: config attribute shows the --set overrides" % tag,
                "enabled = false" in cfg.replace("enabled=false", "enabled = false"), cfg[:80])
        # dimension scales
        for name, vals in (("account", [a for a, _ in ACCOUNTS]), ("silo", SILOS), ("set", SET_ORDER)):
            ok = name in f and tl.strings(f[name]) == vals
            T.check("%s: /%s = %s" % (tag, name, vals), ok, tl.strings(f[name]) if name in f else "missing")
            if name in f:
                T.check("%s: /%s is a dimension scale" % (tag, name), h5py.h5ds.is_scale(f[name].id))
        # /margin
        g = f["margin"]
        for name in ("requirement", "unified", "siloed", "diversification", "minimum"):
            T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL, scale=sc)
            T.check("%s: /margin/%s is float64 [A]" % (tag, name),
                    g[name].dtype == np.float64 and g[name].shape == (A,))
        for name in ("by_set", "by_silo", "attribution"):
            T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL, scale=sc[:, None])
        # version 2 outputs (FORMAT.md 3) on a version-1 book: every add-on exactly 0, no
        # collateral outputs (the book has no /collateral)
        for name in ("liquidity", "liquidity_by_silo"):
            if T.check("%s: /margin/%s present" % (tag, name), name in g):
                T.check("%s: /margin/%s = 0 exactly (no spreads, no impact)" % (tag, name),
                        np.all(np.asarray(g[name][()]) == 0.0) and g[name].dtype == np.float64,
                        str(np.asarray(g[name][()]).ravel()[:6]))
        for name in ("requirement_by_silo", "hedge_credit"):
            if T.check("%s: /margin/%s present" % (tag, name), name in g):
                T.close("%s: /margin/%s" % (tag, name), g[name][()], exp[name], RTOL,
                        scale=sc[:, None] if name == "requirement_by_silo" else sc)
        if T.check("%s: /margin/minimum_binds present" % tag, "minimum_binds" in g):
            T.check("%s: /margin/minimum_binds" % tag,
                    np.asarray(g["minimum_binds"][()]).astype(np.int64).tolist() == exp["minimum_binds"],
                    "got %s expected %s" % (np.asarray(g["minimum_binds"][()]).tolist(), exp["minimum_binds"]))
        present = [n for n in ("collateral_value", "collateral", "excess", "call", "call_siloed") if n in g]
        T.check("%s: no collateral outputs without /collateral" % tag, not present, str(present))
        bs = np.asarray(g["binding_set"][()]).astype(np.int64)
        T.check("%s: /margin/binding_set" % tag, bs.tolist() == exp["binding_set"],
                "got %s expected %s" % (bs.tolist(), exp["binding_set"]))
        attr_sum = np.asarray(g["attribution"][()]).sum(axis=1)
        unfloored = [sum(exp["attribution"][a]) for a in range(A)]
        T.close("%s: attribution sums to unified (before the floor)" % tag, attr_sum, unfloored, RTOL, scale=sc)
        pos = [a for a in range(A) if exp["unified"][a] > 0]
        T.close("%s: attribution sums to /margin/unified where it is > 0" % tag, attr_sum[pos],
                np.asarray(g["unified"][()])[pos], RTOL, scale=sc[pos])
        # labels
        for name in SET_ORDER:
            p = "scenarios/%s/label" % name
            ok = p in f and tl.strings(f[p]) == SETS[name]["label"]
            T.check("%s: /%s" % (tag, p), ok)
        if with_pnl:
            for name in SET_ORDER:
                p = "pnl/%s" % name
                if not T.check("%s: /%s present" % (tag, p), p in f):
                    continue
                d = f[p]
                L = np.array(losses[name][0])
                T.check("%s: /%s is float32 [S x A]" % (tag, p), d.dtype == np.float32 and d.shape == L.shape,
                        "%s %s" % (d.dtype, d.shape))
                # float32 storage: a relative 2^-24 of each value (+ float32 pricing is not used)
                T.close("%s: /%s equals the hand losses" % (tag, p), d[()], L, 1.2e-7, atol=1e-6 * sc.max())


def main():
    global PORT, SCEN
    exp, losses, scale = hand_margin()
    T.run(sanity_of_book, exp, losses)
    with tl.TmpDir() as tmp:
        PORT = os.path.join(tmp, "book.h5")
        SCEN = os.path.join(tmp, "sets.h5")
        tl.write_portfolio(PORT, FACTORS, SILOS, INSTRUMENTS, ACCOUNTS, POSITIONS)
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
