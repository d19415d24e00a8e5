#!/usr/bin/python3
"""The engine against the independent NumPy reference (xm_reference.py) on fresh
random books with collateral: METHODOLOGY §4 (Uni/Sil with the add-ons, the buffer
beta, the requirement of an account not eligible sum_g M_{a,g}, minimum_binds,
hedge_credit), §4.1 (the liquidity and concentration add-on) and §6 (collateral,
both methods, pools, excess, calls), FORMAT.md §1 columns and §3 outputs.

Every run draws a new book, history and ready-made sets from a seed taken from
the clock (printed; set XM_TEST_SEED to replay one). The book: instruments of
every type on equity, gold, coin and FX factors; accounts in USD (reporting),
EUR and BTC, eligible for cross-margining or not, in three silos; price factors
with half spreads, impact coefficients, ADVs (some positions large against them),
haircuts and collateral limits (some binding); a /collateral table of
securities (USD and EUR), coins, gold and cash in USD, EUR and BTC, posted to
silos and to none, among them coins posted against long coin futures (wrong-way),
cash posted to one silo of an account that is not eligible while its positions
sit in another, a BTC account posting BTC, an account with collateral and no
positions. Checks, on --device cpu and on opencl when `xmargin devices` lists
one, for collateral.method = schedule and = scenario (the latter on a copy of
the book whose every holding names a silo), both with apc.buffer > 0:
  * double precision: every /margin dataset (the collateral ones included) agrees
    with xm_reference within 1e-9 max(|x|, Lambda_a) (METHODOLOGY §5);
  * --set precision=single: within 1e-4 M_a + 1e-6 G_a of the reference;
  * scenario: /pnl (the holdings inside the losses) agrees with the reference's
    losses to float32 rounding, and the saved historical shocks move the factors
    of the holdings and of their currencies too (§1) -- schedule does not move
    a factor held only as collateral;
  * scenario on the book with holdings of no silo: exit status 2, a message naming
    the file, /collateral/silo and the row, no results file.
The book's own coverage (calls and excesses, binding concentration caps, the
square-root term, a non-eligible account short in one silo while another has
cash) is checked on the reference first, so that a quiet book cannot pass.

Plain script: one line per check, ends with 'N passed, M failed', exit 1 on failure.
"""

import io
import math
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_reference as xr  # noqa: E402
import xm_testlib as tl  # noqa: E402

h5py = tl.h5py
T = tl.Tally()

SEED = int(os.environ.get("XM_TEST_SEED", int(time.time() * 1000) % (2**31)))
print("# seed %d (replay: XM_TEST_SEED=%d)" % (SEED, SEED))
RNG = np.random.default_rng(SEED)

SILOS = ["securities", "futures", "crypto"]
# name, kind, level, daily vol of its history, version-2 columns (None: drawn)
FACTORS = [("SPX", "price", 5000.0, 0.012), ("SPX.iv", "vol", 0.18, 0.008),
           ("SX5E", "price", 4900.0, 0.012), ("SX5E.iv", "logvol", 0.16, 0.04),
           ("BTC", "price", 60000.0, 0.035), ("BTC.iv", "logvol", 0.60, 0.05),
           ("BTC.fut", "price", 60600.0, 0.035), ("ETH", "price", 3000.0, 0.045),
           ("ETH.iv", "vol", 0.70, 0.02), ("EURUSD", "price", 1.08, 0.005),
           ("GOLD", "price", 2300.0, 0.01), ("GOLD.iv", "vol", 0.15, 0.006),
           ("UST10", "price", 98.0, 0.004),          # a USD bond: collateral, and a spot position
           ("BUND", "price", 131.0, 0.004),          # an EUR bond held only as collateral
           ("USD3M", "rate", 0.045, 0.0)]            # a factor nothing uses: needs no history
FX = [("BTC", "BTC"), ("ETH", "ETH"), ("EUR", "EURUSD")]
# haircuts as clearing houses publish them (coins 15% / 20%, bonds a few %)
HAIRCUT = {"BTC": 0.15, "ETH": 0.20, "GOLD": 0.10, "UST10": 0.02, "BUND": 0.03, "SX5E": 0.25, "SPX": 0.25,
           "EURUSD": 0.0}

# (type, underlying, vol factor or None, currency, silo); every type appears at least once
TEMPLATES = [
    ("spot", "SPX", None, "USD", 0), ("spot", "SX5E", None, "EUR", 0), ("spot", "BTC", None, "USD", 2),
    ("spot", "UST10", None, "USD", 0),
    ("future", "SPX", None, "USD", 1), ("future", "SX5E", None, "EUR", 1), ("future", "BTC.fut", None, "USD", 2),
    ("future", "BTC", None, "USD", 2),
    ("option", "SPX", "SPX.iv", "USD", 0), ("option", "SX5E", "SX5E.iv", "EUR", 0),
    ("future_option", "SPX", "SPX.iv", "USD", 1), ("future_option", "BTC.fut", "BTC.iv", "USD", 2),
    ("american_option", "GOLD", "GOLD.iv", "USD", 0),
    ("perpetual", "BTC", None, "USD", 2), ("perpetual", "ETH", None, "USD", 2),
    ("inverse_future", "BTC.fut", None, "BTC", 2), ("inverse_future", "ETH", None, "ETH", 2),
    ("inverse_perpetual", "BTC", None, "BTC", 2),
    ("inverse_option", "BTC", "BTC.iv", "BTC", 2), ("inverse_option", "ETH", "ETH.iv", "ETH", 2),
]
ALL_TYPES = sorted(set(t[0] for t in TEMPLATES))
# collateral menu: (factor or None for cash, currency, low, high quantity)
MENU = [("BTC", "USD", 0.1, 3.0), ("ETH", "USD", 1.0, 40.0), ("UST10", "USD", 100.0, 3000.0),
        ("BUND", "EUR", 100.0, 2000.0), ("SX5E", "EUR", 1.0, 20.0), ("GOLD", "USD", 1.0, 40.0),
        (None, "USD", 1e3, 2e5), (None, "EUR", 1e3, 1e5), (None, "BTC", 0.05, 2.0)]


# --------------------------------------------------------------------------
# random book
# --------------------------------------------------------------------------

def factor_columns(rng, name, kind):
    """FORMAT.md §1 version-2 columns of one factor."""
    if kind != "price":
        return {}
    ext = {"half_spread": float(rng.uniform(1e-4, 1.5e-3))}
    r = rng.random()
    if r < 0.85:
        ext["impact"] = float(rng.uniform(0.05, 0.3))
    if r < 0.7:
        # ADV in USD: small enough that the larger positions pay the square-root term
        ext["adv"] = float(10 ** rng.uniform(6.0, 8.5))
    if name in HAIRCUT:
        ext["haircut"] = HAIRCUT[name]
    if name in ("BTC", "ETH", "GOLD", "SX5E"):
        # per-account concentration limit (USD); BTC's binds for the larger holdings
        ext["collateral_limit"] = float(rng.uniform(5e4, 1.5e5)) if name == "BTC" else \
            float(rng.choice([0.0, rng.uniform(2e4, 1e5)]))
    return ext


def random_book(tmp, rng, n_accounts=30, n_extra=24, n_days=300):
    """Writes book_sched.h5 (holdings posted to silos and to none), book_scen.h5
    (the same, each holding of no silo posted to a random silo) and scen.h5.
    Returns (book_sched, book_scen, scen, info)."""
    factors = [(n, k, lvl, factor_columns(rng, n, k)) for n, k, lvl, _ in FACTORS]
    fidx = {f[0]: i for i, f in enumerate(factors)}
    level = {n: lvl for n, _, lvl, _ in FACTORS}
    fx = [(c, fidx[f]) for c, f in FX]
    picks = list(range(len(TEMPLATES))) + [int(rng.integers(0, len(TEMPLATES))) for _ in range(n_extra)]
    instruments = []
    for i, t in enumerate(picks):
        typ, und, vol, cur, silo = TEMPLATES[t]
        lvl = level[und]
        ins = dict(id="I%03d_%s_%s_%s" % (i, typ, und, cur), type=typ, silo=silo, underlying=fidx[und],
                   currency=cur)
        if typ in ("inverse_future", "inverse_perpetual"):
            ins["multiplier"] = float(rng.choice([1.0, 10.0, 100.0]))
        elif typ == "inverse_option":
            ins["multiplier"] = float(rng.choice([1.0, 0.1]))
        elif und in ("BTC", "BTC.fut", "ETH"):
            ins["multiplier"] = float(rng.choice([0.01, 0.1, 1.0]))
        elif und == "UST10":
            ins["multiplier"] = 100.0
        else:
            ins["multiplier"] = float(rng.choice([1.0, 5.0, 10.0, 50.0]))
        if typ in ("perpetual", "inverse_perpetual"):
            ins["funding_rate"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.3))
        if typ in ("option", "future_option", "american_option", "inverse_option"):
            iv = level[vol]
            ins.update(vol_factor=fidx[vol] if rng.random() < 0.85 else -1,
                       strike=lvl * float(rng.uniform(0.8, 1.2)),
                       expiry=float(rng.choice([0.004, 0.03, 0.1, 0.25, 0.5, 1.5])),
                       call=int(rng.integers(0, 2)), implied_vol=iv * float(rng.uniform(0.85, 1.25)),
                       rate=float(rng.choice([0.0, 0.03, 0.05])),
                       dividend_yield=float(rng.choice([0.0, 0.01, 0.04]))
                       if typ in ("option", "american_option") else 0.0)
        instruments.append(ins)
    # a deep out-of-the-money call: the per-contract minimum binds for whoever holds only it
    instruments.append(dict(id="OTM_SPX_CALL", type="option", silo=0, underlying=fidx["SPX"],
                            vol_factor=fidx["SPX.iv"], strike=10000.0, expiry=0.25, call=1, implied_vol=0.18,
                            rate=0.03, multiplier=10.0, currency="USD"))
    otm = len(instruments) - 1
    iid = {ins["id"]: i for i, ins in enumerate(instruments)}

    def first(typ, und, cur):
        return next(i for i, ins in enumerate(instruments)
                    if ins["type"] == typ and instruments[i]["underlying"] == fidx[und] and ins["currency"] == cur)

    # accounts: the special ones first, then random ones in USD, EUR, BTC
    special = [("WRONGWAY_USD", 1, "USD"),       # long BTC futures, BTC coins posted to crypto
               ("BTCACCT_BTC", 1, "BTC"),        # a BTC-margined account posting BTC and USD cash
               ("SILOCASH_USD", 0, "USD"),       # not eligible: futures positions, cash in securities
               ("COLLONLY_EUR", 0, "EUR"),       # collateral and no positions
               ("BIGBTC_USD", 1, "USD"),         # 5 BTC against a limit below their value
               ("ADVHEAVY_EUR", 0, "EUR"),       # positions large against the factor's ADV
               ("OTMMIN_USD", 1, "USD"),         # the minimum binds (eligible)
               ("OTMMIN_EUR", 0, "EUR")]         # the minimum binds (not eligible: in its silo)
    ns = len(special)
    curs = [a[2] for a in special] + [str(rng.choice(["USD", "EUR", "BTC"])) for _ in range(n_accounts - ns)]
    elig = [a[1] for a in special] + [int(rng.random() < 0.55) for _ in range(n_accounts - ns)]
    accounts = [(special[a][0] if a < ns else "ACC%03d_%s" % (a, curs[a]), elig[a], curs[a])
                for a in range(n_accounts)]
    nI = len(instruments)
    positions = []
    # the special accounts
    btc_fut = first("future", "BTC", "USD")
    positions += [(0, btc_fut, 3.0), (0, first("option", "SPX", "USD"), 2.0)]
    positions += [(1, first("perpetual", "BTC", "USD"), 2.0), (1, first("inverse_option", "BTC", "BTC"), -3.0)]
    positions += [(2, first("future", "SPX", "USD"), 4.0), (2, first("future", "SX5E", "EUR"), -3.0)]
    positions += [(4, first("spot", "SPX", "USD"), 10.0), (4, btc_fut, -0.5)]
    positions += [(5, first("perpetual", "ETH", "USD"), 400.0), (5, first("spot", "SX5E", "EUR"), 300.0)]
    positions += [(6, otm, 3.0), (7, otm, 5.0)]
    # every instrument held by some random account, long or short
    for i in range(nI):
        q = float(rng.choice([-1.0, 1.0]) * rng.integers(1, 10))
        positions.append((int(rng.integers(ns, n_accounts)), i, q))
    for a in range(ns, n_accounts):
        for _ in range(int(rng.integers(1, 5))):
            q = float(np.round(rng.normal(0, 6)))
            positions.append((a, int(rng.integers(0, nI)), q if q != 0 else 1.0))
    positions.append((ns, positions[-1][1], 2.0))      # a repeated (account, instrument) pair
    order = rng.permutation(len(positions))
    positions = [positions[i] for i in order]

    # collateral
    coll = [dict(account=0, factor=fidx["BTC"], quantity=2.0, silo=2),
            dict(account=0, factor=-1, quantity=20000.0, silo=-1),
            dict(account=1, factor=fidx["BTC"], quantity=1.5, silo=2),
            dict(account=1, factor=-1, quantity=30000.0, silo=2),                 # USD cash, a BTC account
            dict(account=2, factor=-1, quantity=5e5, silo=0),                     # cash in the wrong silo
            dict(account=2, factor=fidx["UST10"], quantity=500.0, silo=-1),
            dict(account=3, factor=fidx["BUND"], quantity=800.0, silo=0, currency="EUR"),
            dict(account=3, factor=-1, quantity=1e4, silo=1, currency="EUR"),
            dict(account=4, factor=fidx["BTC"], quantity=3.0, silo=2),            # 5 BTC in two silos
            dict(account=4, factor=fidx["BTC"], quantity=2.0, silo=0),
            dict(account=5, factor=-1, quantity=0.5, silo=2, currency="BTC"),      # BTC cash
            dict(account=5, factor=fidx["SX5E"], quantity=10.0, silo=0, currency="EUR")]
    for a in range(ns, n_accounts):
        for _ in range(int(rng.integers(0, 4))):
            fname, cur, lo, hi = MENU[int(rng.integers(0, len(MENU)))]
            qty = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
            h = dict(account=a, factor=fidx[fname] if fname else -1, quantity=qty,
                     silo=int(rng.integers(-1, len(SILOS))))
            if cur != "USD" or rng.random() < 0.5:     # the column's default is the reporting currency
                h["currency"] = cur
            coll.append(h)
    coll = [coll[i] for i in rng.permutation(len(coll))]
    # the scenario copy: each holding of no silo posted to a random silo (the
    # not-eligible account's bond to securities, with its cash, away from its futures)
    coll_scen = [dict(h, silo=h["silo"] if h["silo"] >= 0 else
                      (0 if h["account"] == 2 else int(rng.integers(0, len(SILOS))))) for h in coll]
    book = os.path.join(tmp, "book_sched.h5")
    tl.write_portfolio(book, factors, SILOS, instruments, accounts, positions, fx=fx, collateral=coll)
    book_s = os.path.join(tmp, "book_scen.h5")
    tl.write_portfolio(book_s, factors, SILOS, instruments, accounts, positions, fx=fx, collateral=coll_scen)

    # history of every factor but the rate, fat-tailed, correlated
    hnames = [n for n, k, _, _ in FACTORS if k != "rate"]
    vol = np.array([v for n, k, _, v in FACTORS if k != "rate"])
    nf = len(hnames)
    C = np.full((nf, nf), 0.3) + 0.7 * np.eye(nf)
    for a_, b_ in (("BTC", "BTC.fut"), ("BTC", "ETH"), ("SPX", "SX5E"), ("UST10", "BUND")):
        i, j = hnames.index(a_), hnames.index(b_)
        C[i, j] = C[j, i] = 0.9
    for p_, v_ in (("SPX", "SPX.iv"), ("SX5E", "SX5E.iv"), ("BTC", "BTC.iv"), ("ETH", "ETH.iv")):
        i, j = hnames.index(p_), hnames.index(v_)
        C[i, j] = C[j, i] = -0.5
    w, V = np.linalg.eigh(C)
    C = V @ np.diag(np.maximum(w, 0.05)) @ V.T
    d = np.sqrt(np.diag(C))
    C = C / np.outer(d, d)
    z = rng.standard_t(5, (n_days, nf)) * math.sqrt(3 / 5)
    z[n_days // 2:] *= 1.5
    R = z @ np.linalg.cholesky(C).T * vol
    sc = vol * 6
    sets = {}
    S = 16
    sets["grid"] = dict(factor=hnames, shock=rng.normal(0, 1, (S, nf)) * sc,
                        weight=np.where(np.arange(S) < 12, 1.0, 0.35), measure="worst")
    sets["tail"] = dict(factor=hnames[::-1], shock=(rng.normal(0, 1, (40, nf)) * sc)[:, ::-1], measure="es",
                        confidence=0.9)
    fxcols = ["BTC", "ETH", "EURUSD", "BUND", "SX5E.iv"]
    sets["fx_var"] = dict(factor=fxcols, shock=rng.normal(0, 0.05, (60, len(fxcols))), measure="var",
                          confidence=0.95)
    scen = os.path.join(tmp, "scen.h5")
    tl.write_scenarios(scen, (hnames, tl.dates(n_days), R), sets)
    info = {"curs": curs, "no_silo_rows": [j for j, h in enumerate(coll) if h["silo"] < 0], "iid": iid}
    return book, book_s, scen, info


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def setargs(cfg):
    return ["%s=%s" % (k, v) for k, v in cfg.items()]


def run_ok(tag, book, scen, out, device, cfg, extra=()):
    rc, so, se, dt = tl.margin_run(book, scen, out, device, setargs(cfg), extra)
    return T.check("%s: run exits 0 (%.2f s)" % (tag, dt), rc == 0 and os.path.exists(out),
                   "rc %d: %s" % (rc, (se + so).strip()[-600:]))


def reference(book, scen, out, cfg, keep_pnl=False):
    rcfg = dict(cfg)
    rcfg.pop("precision", None)
    rcfg["reference.var_attribution"] = "kth"
    return xr.compute(book, scen, out, rcfg, keep_pnl=keep_pnl)


def compare_reference(tag, ref, out, precision):
    buf = io.StringIO()
    ok, rep = xr.compare(ref, out, rtol=1e-9, out=buf, precision=precision)
    bound = ("1e-9 max(|x|, Lambda_a)" if precision == "double" else "1e-4 M_a + 1e-6 G_a")
    for name in xr.MARGIN_DATASETS + xr.COLLATERAL_DATASETS:
        if name not in rep:
            T.check("%s: reference %s compared" % (tag, name), False, "not in the comparison")
            continue
        if name in xr.FLAG_DATASETS:
            T.check("%s: reference %s" % (tag, name), rep[name] == 0,
                    "%d accounts differ beyond ties" % rep[name] if rep[name] >= 0 else "missing or misshapen")
        else:
            T.check("%s: reference %s within %s" % (tag, name, bound), rep[name] <= rep["rtol"],
                    "max %.2e of the scale (bound %.0e)" % (rep[name], rep["rtol"]))
    if not ok:
        print(buf.getvalue().rstrip())
    T.check("%s: reference compare overall (sets %s)" % (tag, ref["sets"]), ok)


def coverage_checks(ref_sched, ref_scen, book, book_s, scen):
    """The random book exercises what it is meant to (on the reference)."""
    for tag, r in (("schedule", ref_sched), ("scenario", ref_scen)):
        T.check("book (%s): some account has a call, some an excess" % tag,
                np.any(r["call"] > 0) and np.any(r["excess"] > 0),
                "calls %d, excesses %d" % (int(np.sum(r["call"] > 0)), int(np.sum(r["excess"] > 0))))
        T.check("book (%s): the add-on is not 0 for most accounts" % tag,
                np.mean(r["liquidity"] > 0) > 0.5, "%d of %d" % (int(np.sum(r["liquidity"] > 0)),
                                                                   len(r["liquidity"])))
        ne = ~np.asarray(r["eligible"])
        T.check("book (%s): a non-eligible account is called in one silo while another has excess" % tag,
                np.any(ne & np.any(r["excess_by_silo"] < 0, axis=1) & np.any(r["excess_by_silo"] > 0, axis=1)))
        T.check("book (%s): the minimum binds somewhere and not everywhere" % tag,
                0 < int(np.sum(r["minimum_binds"])) < len(r["minimum_binds"]), str(r["minimum_binds"]))
    p = xr.read_portfolio(book)
    cv, acv = ref_sched["holding_value"], ref_sched["holding_adjusted"]
    hc = p["factor_haircut"][np.where(p["coll_factor"] >= 0, p["coll_factor"], 0)]
    plain = np.where(p["coll_factor"] >= 0, cv * (1 - hc), cv)
    T.check("book: some concentration limit binds (ACV < CV (1 - h))", np.any(acv < plain * (1 - 1e-12)))
    T.check("book: a holding in a currency other than its account's",
            np.any(p["coll_fx"] != p["account_fx"][p["coll_account"]]))
    # the square-root term matters: without impact the add-on is smaller somewhere
    z = dict(p)
    z["factor_impact"] = np.zeros(len(p["factor_name"]))
    r0 = xr.compute(None, None, None, {"collateral.method": "schedule"}, portfolio=z, sets=[])
    T.check("book: the square-root impact term adds to the add-on",
            np.any(ref_sched["liquidity"] > r0["liquidity"] * (1 + 1e-6)))
    # wrong-way: on the ready-made sets alone, the coins posted against long coin
    # futures raise the core of that account when priced inside the scenarios
    rs = [xr.compute(book_s, scen, None, {"historical.enabled": False, "montecarlo.enabled": False,
                                          "collateral.method": m}) for m in ("schedule", "scenario")]
    T.check("book: wrong-way (coins against long coin futures) costs more under scenario",
            rs[1]["core"][0] > rs[0]["core"][0], "%g vs %g" % (rs[1]["core"][0], rs[0]["core"][0]))


def pnl_checks(tag, ref, out):
    """/pnl/<set> (float32) against the reference's L_a, holdings included."""
    with h5py.File(out, "r") as f:
        if "pnl" not in f:
            T.check("%s: /pnl saved" % tag, False)
            return
        lam = np.maximum(ref["gross_loss"], 1e-300)
        worst = 0.0
        for name in ref["sets"]:
            got = np.asarray(f["pnl"][name][()], dtype=np.float64)
            exp = ref["pnl"][name]
            if got.shape != exp.shape:
                T.check("%s: /pnl/%s shape" % (tag, name), False, "%s vs %s" % (got.shape, exp.shape))
                return
            worst = max(worst, float(np.max(np.abs(got - exp) / lam[None, :])))
    T.check("%s: /pnl (holdings in the losses) == reference to float32 rounding of Lambda_a" % tag,
            worst <= 1e-6, "max %.2e of Lambda_a" % worst)


def moved_factor_checks(tag, out, book, scen, cfg, method):
    """§1: the historical set moves the factors the run's losses depend on, with
    `scenario` the holdings' factors and their currencies' /fx factors too."""
    p = xr.read_portfolio(book)
    moved = xr.moved_factors(p, method)
    names = p["factor_name"]
    fac, sh = tl.read_shocks(out, "historical")
    full = xr.align_shocks(fac, sh, names)
    movedset = [i for i in range(len(names)) if np.any(full[:, i] != 0)]
    T.check("%s: historical shocks move exactly the factors of §1 (%s)" % (tag, method), movedset == moved,
            "moved %s, expected %s" % ([names[i] for i in movedset], [names[i] for i in moved]))
    bund = names.index("BUND")
    if method == "scenario":
        T.check("%s: a factor held only as collateral moves" % tag, bund in movedset)
    else:
        T.check("%s: a factor held only as collateral does not move" % tag, bund not in movedset)
    sc = xr.read_scenarios(scen)
    c = xr.make_config(cfg)
    hcol = [sc["history"]["factor"].index(names[i]) for i in moved]
    exp, _ = xr.historical_set(sc["history"]["return"][:, hcol], sc["history"]["date"], c["horizon_days"],
                               c["historical.ewma_lambda"], c["historical.apc_floor"], c["historical.filtered"],
                               c["historical.lookback"])
    got = full[:, moved]
    d = float(np.max(np.abs(got - exp))) if got.shape == exp.shape else float("inf")
    T.check("%s: historical shocks == historical_set (1e-12)" % tag, d <= 1e-12 * np.max(np.abs(exp)),
            "max |diff| %.2e" % d)


def silo_error_check(tmp, book, scen, info, cfg):
    out = os.path.join(tmp, "must_not_exist.h5")
    rc, so, se, dt = tl.margin_run(book, scen, out, "cpu", setargs(dict(cfg, **{"collateral.method": "scenario"})))
    msg = (se + so).strip()
    T.check("scenario with holdings of no silo: exit status 2", rc == 2, "rc %d: %s" % (rc, msg[-300:]))
    rows = [int(m_) for m_ in re.findall(r"collateral/silo\[(\d+)\]", msg)]
    T.check("scenario with holdings of no silo: the message names the file, /collateral/silo and a row of silo -1",
            os.path.basename(book) in msg and rows and all(r in info["no_silo_rows"] for r in rows),
            "%r (rows of silo -1: %s)" % (msg[-300:], info["no_silo_rows"]))
    T.check("scenario with holdings of no silo: no results file", not os.path.exists(out))
    try:
        xr.compute(book, scen, None, {"collateral.method": "scenario", "montecarlo.enabled": False})
        T.check("reference: scenario with holdings of no silo refused", False)
    except ValueError as e:
        T.check("reference: scenario with holdings of no silo refused", "/collateral/silo[" in str(e), str(e))


# --------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------

def book_checks(tmp, devices):
    book, book_s, scen, info = random_book(tmp, RNG)
    mcseed = int(RNG.integers(0, 2**32))
    p = xr.read_portfolio(book)
    _, net_ins, net_q = xr._net_positions(p)
    types = set(p["type"][net_ins[net_q != 0]].tolist())
    T.check("book holds every instrument type", set(xr.INSTRUMENT_TYPES[t] for t in ALL_TYPES) <= types)
    print("# book: %d accounts (%s), %d instruments, %d positions, %d holdings (%d of no silo), "
          "montecarlo.seed %d" % (len(p["account_id"]), ",".join(info["curs"]), len(p["instrument_id"]),
                                  len(p["pos_quantity"]), len(p["coll_account"]), len(info["no_silo_rows"]),
                                  mcseed))
    cfgs = {
        "schedule": (book, {"montecarlo.scenarios": 400, "montecarlo.correlation_stress": 0.3,
                            "montecarlo.seed": mcseed, "apc.buffer": 0.25, "collateral.method": "schedule"}),
        "scenario": (book_s, {"horizon_days": 5, "confidence": 0.95, "historical.measure": "var",
                              "historical.lookback": 250, "historical.ewma_lambda": 0.94,
                              "montecarlo.distribution": "normal", "montecarlo.scenarios": 300,
                              "montecarlo.measure": "es", "montecarlo.seed": mcseed + 1,
                              "pricing.vol_term_power": 0.5, "cross_margin.offset_cap": 0.6,
                              "minimum.per_contract": 0.5, "apc.buffer": 0.1, "collateral.method": "scenario"}),
    }
    refs = {}
    for dev in devices:
        for method, (bk, cfg) in cfgs.items():
            for prec in ("double", "single"):
                c = dict(cfg, precision=prec) if prec == "single" else cfg
                out = os.path.join(tmp, "%s_%s_%s.h5" % (method, dev, prec))
                tag = "%s %s %s" % (dev, method, prec)
                extra = ["--save-scenarios"] + (["--save-pnl"] if method == "scenario" and prec == "double" else [])
                if not run_ok(tag, bk, scen, out, dev, c, extra):
                    continue
                ref = T.run(reference, bk, scen, out, cfg, keep_pnl=method == "scenario")
                if ref is None:
                    continue
                refs.setdefault(method, ref)
                T.run(compare_reference, tag, ref, out, prec)
                if prec == "double":
                    T.run(moved_factor_checks, tag, out, bk, scen, cfg, method)
                    if method == "scenario":
                        T.run(pnl_checks, tag, ref, out)
    if len(refs) == 2:
        T.run(coverage_checks, refs["schedule"], refs["scenario"], book, book_s, scen)
    T.run(silo_error_check, tmp, book, scen, info, cfgs["schedule"][1])


def main():
    devices = ["cpu"]
    if tl.opencl_available():
        devices.append("opencl")
    else:
        T.skip("the checks on --device opencl", "`xmargin devices` lists no OpenCL device")
    with tl.TmpDir() as tmp:
        t0 = time.perf_counter()
        T.run(book_checks, tmp, devices)
        print("# collateral book checks %.1f s" % (time.perf_counter() - t0))
    T.finish()


if __name__ == "__main__":
    main()
