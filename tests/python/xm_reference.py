#!/usr/bin/python3
"""Independent float64 NumPy reference of the xmargin methodology (versions 1 and 2).

Written from /work/shared/spec/METHODOLOGY.md and FORMAT.md alone; it shares no
code with the C engine.  It is both the test oracle (the engine must agree to a
relative 1e-9 of each account's gross loss scale) and the "peer" of the
benchmarks: the vectorised, chunked code a risk quant would write without
xmargin.  Every array computation takes an array-module parameter ``xp`` (numpy
by default, cupy on a GPU) so the CuPy peer reuses this code.

Readings of points the spec leaves open (each also noted where it is coded):

* Rate shocks.  A portfolio ``rate`` factor is shocked additively (level + x),
  but FORMAT.md links an instrument to a rate only through its own ``rate``
  column, never to a rate factor; so an instrument's rate is NOT shocked.  A rate
  factor only matters if some instrument uses it as ``underlying`` (then the
  contract value follows the factor level + x).
* Underlying of spot/future: shocked by its factor's kind (price: S*exp(x),
  vol/rate: S + x).  Options require a price underlying (validation rule).
* Option vol today is the instrument's ``implied_vol`` unfloored; in a scenario
  sigma' = max(sigma + x_v * (30/max(365*T,1))**p, vol_floor), T = expiry today,
  x_v = 0 when vol_factor = -1 (so the floor still applies in every scenario).
* Time to expiry: T' = max(T - h/252, 0) with h = horizon_days for every set,
  ready-made ones included.  T <= 0 (today or after the horizon): intrinsic,
  undiscounted.  A zero total vol (sigma*sqrt(T) = 0, T > 0) gives the
  discounted intrinsic value of the forward.
* Repeated (account, instrument) pairs: quantities are netted first.  The
  per-contract minimum counts |net q| * multiplier over positions of type
  ``option`` AND ``future_option``.
* Risk measures: weights apply to ``worst`` only (w_s * L(s)); ``es``/``var``
  ignore them.  Every measure is floored at 0 (by_set, by_silo).
* Attribution: taken from the binding set's *unfloored* measure.  For ``es`` and
  (literally per the spec text) ``var``: the mean of L_{a,g} over the k scenarios
  with the largest L_a (ties -> lower scenario index).  NOTE: for ``var`` that mean
  sums to the ES of the top k, not to VaR = l_(k); config key
  ``reference.var_attribution = kth`` switches to L_{a,g} at the k-th scenario
  (which does sum to VaR).  Default ``mean`` (the literal text).
  ``worst``: w_s * L_{a,g}(s*) at the first argmax s*.
* binding_set: argmax of the floored by_set, first set in run order on a tie (so an
  account that gains everywhere binds to set 0).
* Set run order: historical, montecarlo, montecarlo_stressed, then /sets/<name>
  sorted by name (Python str order == UTF-8 byte order == strcmp).
* Monte Carlo shocks cannot be reproduced without the engine's Philox mapping to
  normals/chi-squares (unspecified), so they are read from a results file written
  with ``--save-scenarios`` (/scenarios/<set>/shock, /scenarios/<set>/factor).
  ``montecarlo.source = numpy`` instead draws them with numpy's generator (same
  law, different numbers) for timing the peer end to end.
* Historical set: computed per factor only for the factors the run moves (the
  others get a zero shock); a moved factor missing from /history is an error.

Version 2 (METHODOLOGY §2.1-2.3, §4, §4.1, §5, §6; FORMAT.md §1, §3): products,
currencies, the liquidity add-on, the buffer, the version-2 requirement of an
account that is not eligible, collateral and calls; the stressed period (§1)
and backtesting (§7, FORMAT.md §4: backtest(), compare_backtest()), readings at
the end of this list.
Readings (fixed with the session that asked for this; each noted where coded):

* Factors the run moves (§1): the underlyings and vol factors of the instruments
  held with a non-zero *net* quantity, the /fx factors of their settlement
  currencies, and the /fx factors of every account's currency (whether or not
  the account holds anything).  Each needs a /history column.  (Version 1 took
  every netted pair, zero nets included; only the "missing column" error and the
  numpy Monte Carlo's Sigma can tell the difference.)
* A vol factor is read only by the option types (option, future_option,
  american_option, inverse_option); a ``logvol`` one moves the vol relatively:
  sigma' = max(sigma * exp(x_v * (30/max(365T,1))**p), vol_floor).
* spot / future / perpetual follow their underlying's kind as version 1 does
  (price, and here logvol, S*exp(x); vol/rate S + x); the other types (options
  and inverse types) need a price underlying (an error here otherwise).
* perpetual: value m*S, settled; funding Phi = f * m*S0 * h/252 per contract.
* inverse_future: value in coins relative to today m*(1/F0 - 1/F), so the coin
  loss of one contract is m*(1/F1 - 1/F0); settled.  inverse_perpetual: the same
  plus Phi = f * (m/S0) * h/252 coins.  Phi is added to the loss of one contract
  (a loss for a long, a gain for a short).
* inverse_option: V = m * Black76(F, K, T, r, sigma) / F coins; at T (or T')
  <= 0 m * max(+-(F - K), 0) / F.  A value type.
* american_option: m * BS2002 on the spot with carry b = r - q (the independent
  module xm_american.bs2002); at T (or T') <= 0 the intrinsic value.
* Currencies (§2.2): R_{c->b}(x) = X_c(x)/X_b(x), X the level of the currency's
  /fx price factor shocked S*exp(x), 1 for the reporting currency; value types
  l = V_c(today) R(0) - V_c(x, T') R(x), settled types (future, perpetual,
  inverse_future, inverse_perpetual) l = (V_c(today) - V_c(x, T') + Phi) R(x).
  Where c == b the rate is exactly 1 and the version-1 formula is used as is, so
  a one-currency version-1 book gives bit for bit what it gave before.
* Minimum (§4): 0.375 * sum |net q| * multiplier over the option types (option,
  future_option, american_option, inverse_option), in the reporting currency,
  divided by X_b (today's level) for an account in currency b.
* §4.1 add-on (issue 14's decisions): for account a and J (all its positions, or
  silo g's; with ``collateral.method = scenario`` its holdings too, each in the silo
  it is posted to), E_f = [L_J(-u e_f) - L_J(+u e_f)] / (2u), u = 0.01, for each
  price factor f the positions depend on (underlyings, the /fx factors of the
  settlement currencies and of the account's currency; a factor that is several
  of these moves once), computed by revaluing every position with the §2 code at
  horizon 0: T' = T, funding Phi = f N h/252 = 0, vol factors not moved (so
  sigma' = max(sigma, vol_floor) in both, as in any scenario), losses in the
  account's currency b. LQ = sum_f |E_f| (s_f + k_f sqrt(|E_f| X_b / A_f)), X_b
  today's level of b's /fx factor, the root 0 where A_f = 0 or k_f = 0; a factor
  whose s_f and k_f are both 0 adds exactly 0 and is not revalued.
* §4: U_a and S_{a,g} the cores as before; Uni = U + LQ_a, Sil = sum_g (S_{a,g} +
  LQ_{a,g}), D = max(0, Sil - Uni), C = Uni + (1 - c) D (eligible) else Sil;
  M_{a,g} = max((1 + beta)(S_{a,g} + LQ_{a,g}), Min_{a,g}) for every account
  (requirement_by_silo), Min_{a,g} = the minimum over silo g's option positions;
  eligible M_a = max((1 + beta) C, Min_a), not eligible M_a = sum_g M_{a,g};
  minimum_binds as §4 writes it; hedge_credit = c D for an eligible account, else
  0; by_silo = S_{a,g} + LQ_{a,g}; unified / siloed / diversification with the
  add-ons; attribution = shares of U_a, by_set / binding_set of the cores.
* §6: CV_j = q_j P_j X_{c_j} / X_b (P_j today's level, 1 for cash; the rate
  exactly 1 where c_j = b).  schedule: ACV_j = CV_j kappa_f (1 - h_f), kappa_f =
  min(1, (lim_f / X_b) / sum of the account's CV on f, all silos and none), 1
  where lim_f = 0 or the sum is 0; cash ACV = CV.  scenario: ACV = CV, and each
  holding is a value-type `spot` of multiplier 1 on its factor settled in c_j
  (cash: constant q_j in c_j) inside L_a and in L_{a,g} of its silo, so in every
  measure, Lambda_a and the add-on; a holding of silo -1 is then an error.  Pools:
  E_a = sum ACV - M_a, E_{a,g} = sum_{silo g} ACV - M_{a,g}; call = max(0, -E_a)
  (eligible) else sum_g max(0, -E_{a,g}); excess = E_a (eligible), else -call
  when call > 0, else sum_g E_{a,g} + the ACV of no silo; call_siloed =
  sum_g max(0, -E_{a,g}) for every account.  The collateral outputs exist when
  /collateral has rows (a table with none means the same as none, FORMAT.md).
* Factors moved (§1) with ``scenario``: also the factors of holdings of non-zero
  quantity and the /fx factors of their currencies.
* §5 G_a also counts each holding as a spot of multiplier 1: |V| + N = 2 |CV_j|
  (both methods: the engine's single precision prices them too).
* §5 in double, version 2: Lambda_a is floored at 1e-5 G_a in ``compare``, so an
  account whose losses are exactly 0 but for rounding (a BTC account holding BTC
  spot only) is held to 1e-14 of its gross value, not to its rounding noise.
* minimum_binds is compared as a choice: a differing flag is wrong only where the
  minimum and the buffered margin it is compared with differ by more than the
  bound of §5 (like binding_set's ties).
* Tolerances (§5), in ``compare``: version-1 books as before (1e-9 of Lambda_a +
  Min_a); version-2 books in double 1e-9 * max(|x|, Lambda_a), x the reference's
  value, Lambda_a the account's largest |L_a(s)|; single precision (either
  version) 1e-4 * M_a + 1e-6 * G_a, G_a = sum_i |q| (|V_i(today)| [value type] +
  N_i) R_{c_i->b}(0), N_i = m*S0 (m/S0 for inverse_future / inverse_perpetual, m
  for inverse_option), M_a the reference's requirement.

The stressed period and backtesting (issue 15, decisions D1-D11 of that session):

* stressed_period (§1, D1): the raw h-day sums at every window end t >= h whose
  /history date is in [apc.stressed_start, apc.stressed_end] (ISO strings compared
  as strings, both included), all of /history (not limited by the lookback), on
  the factors the run moves; measure historical.measure, confidence `confidence`;
  run order historical, montecarlo, montecarlo_stressed, stressed_period, then the
  ready-made sets.  No window end in the range is an error (ValueError) in a run.
* w = apc.stressed_weight (D2): 0, a set like any other (in the max); > 0, it
  is outside the max and the historical column becomes (1 - w) R_hist + w R_sp,
  both floored first, for the account and for every silo (so S_{a,g} uses the
  blend), attribution (1 - w) attr_hist + w attr_sp; by_set keeps R_sp
  unblended in its own column; binding_set is the argmax over the sets in the
  max.  Lambda_a (§5) still counts the stressed_period losses.
* Errors (D3, make_config): w outside [0, 1]; one date without the other; w > 0
  without the dates; w > 0 with historical.enabled = false.
* Backtest day d (§7, D4): compute() on the history cut at rows 1..d (the EWMA
  seed, the APC floor, the lookback window and Sigma all of rows 1..d only), with
  montecarlo.scenarios = backtest.mc_scenarios when > 0, without /sets when
  backtest.ready_sets = false; an empty stressed_period (no window end <= d in the
  range) measures 0 for the account and every silo, and with w > 0 the
  historical measure is then unblended.  Monte Carlo shocks of day d are read from
  a backtest file written with --save-scenarios (/scenarios/<set>/shock [N x S x
  F], rows of NaN beyond a day's size dropped).
* Realised loss (D5): x = the sum of the raw returns of rows d+1..d+h on the moved
  factors, priced by §2 exactly as a ready-made scenario (h/252 of time decay,
  funding, today's levels; `scenario` collateral inside the losses), not floored;
  per silo the L_{a,g} of that move.
* Margins (D6): unified, cross_margined (C_a), siloed, requirement, silo_margin =
  by_silo; totals sum_a x_a X_b with X_b today's level of the account's currency.
* Exceptions (D7) realised > margin strictly; test days d_k = T - h - k h; Kupiec
  LR regrouped as 2[(N'-x) ln((1-x/N')/(1-p)) + x ln((x/N')/p)] (0 ln 0 = 0),
  p-value erfc(sqrt(LR/2)); Christoffersen n_ij over consecutive test days
  (earlier i, later j), a term whose pi has an empty denominator 0; cc_p =
  exp(-LR_cc/2); traffic light on B = P(X <= x) summed term by term.
* Holding nothing (D8): no instrument of the silo with a non-zero net quantity
  and no /collateral row of the account posted to that silo (any quantity, either
  collateral method): counts 0, the rest NaN, zone "".  Accounts always have
  statistics.
* Procyclicality (D9) of requirement (account, total) and of silo_margin:
  max/min over days with M > 0; max over 0 < j' - j <= apc_window of M(j')/M(j) - 1
  over j with M(j) > 0; NaN where there is no such day (pair).
* compare_backtest: a day where realised and margin tie within the §5 bound may
  count an exception either way; the statistics are then recomputed with the
  engine's side of that tie.
"""

import argparse
import functools
import math
import os
import sys
import time

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover
    h5py = None

try:
    from scipy.special import ndtr as _np_ndtr
except ImportError:  # pragma: no cover
    _np_ndtr = None

try:
    import scipy.sparse as _np_sparse
except ImportError:  # pragma: no cover
    _np_sparse = None

try:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import xm_american as _xa          # independent BS2002 (Haug), tests/python/xm_american.py
except ImportError:  # pragma: no cover
    _xa = None


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------

DEFAULTS = {
    "horizon_days": 2,
    "confidence": 0.99,
    "historical.enabled": True,
    "historical.ewma_lambda": 0.97,
    "historical.apc_floor": 0.0,
    "historical.filtered": True,
    "historical.lookback": 1260,
    "historical.measure": "es",
    "montecarlo.enabled": True,
    "montecarlo.scenarios": 10000,
    "montecarlo.distribution": "student_t",
    "montecarlo.dof": 5,
    "montecarlo.seed": 0,
    "montecarlo.measure": "es",
    "montecarlo.correlation_stress": 0.0,
    "montecarlo.source": "results",      # reference only: results | numpy | none
    "pricing.vol_floor": 0.01,
    "pricing.vol_term_power": 0.0,
    "cross_margin.offset_cap": 0.80,
    "minimum.per_contract": 0.375,
    "apc.buffer": 0.0,                       # beta of §4
    "apc.stressed_start": "",                # §1 stressed period: ISO dates, "" = none
    "apc.stressed_end": "",
    "apc.stressed_weight": 0.0,              # w: 0 = a set of its own, > 0 = blended into historical
    "backtest.days": 500,                    # §7
    "backtest.min_history": 250,
    "backtest.mc_scenarios": 0,              # 0 = montecarlo.scenarios
    "backtest.ready_sets": True,
    "backtest.coverage": 0.99,
    "backtest.apc_window": 20,
    "collateral.method": "schedule",         # §6: schedule | scenario
    "reference.shocks_from_results": "mc",   # mc | all
    "reference.var_attribution": "mean",     # mean (literal spec) | kth
    "reference.memory_budget": 512 * 2**20,  # bytes: scenario chunk of the S x I losses
    "reference.loss_budget": 4 * 2**30,      # bytes: L[S, accounts, silos] of one account block
    "reference.chunk_elems": 1 << 18,        # scenario x instrument elements priced at once
}


def parse_value(text):
    """Parse a --set value: bool, int, float, else string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t.strip('"').strip("'")


def make_config(config=None):
    cfg = dict(DEFAULTS)
    for key, val in (config or {}).items():
        cfg[key] = parse_value(val) if isinstance(val, str) else val
    for key in ("historical.enabled", "historical.filtered", "montecarlo.enabled", "backtest.ready_sets"):
        v = cfg[key]
        cfg[key] = bool(v) if not isinstance(v, str) else parse_value(v)
    cfg["apc.buffer"] = float(cfg["apc.buffer"])
    if not (math.isfinite(cfg["apc.buffer"]) and cfg["apc.buffer"] >= 0):
        raise ValueError("apc.buffer = %r: must be >= 0" % cfg["apc.buffer"])
    cfg["collateral.method"] = str(cfg["collateral.method"]).strip().lower()
    if cfg["collateral.method"] not in ("schedule", "scenario"):
        raise ValueError("collateral.method = %r: schedule or scenario" % cfg["collateral.method"])
    _check_stressed(cfg)
    return cfg


def _check_stressed(cfg):
    """§1 stressed period keys (decision D3): the dates are ISO strings or empty;
    w in [0, 1]; one date without the other, w > 0 without both dates and w > 0
    with historical.enabled = false are errors naming the keys."""
    for k in ("apc.stressed_start", "apc.stressed_end"):
        v = cfg[k]
        cfg[k] = "" if v is None else str(v).strip()
    w = cfg["apc.stressed_weight"] = float(cfg["apc.stressed_weight"])
    start, end = cfg["apc.stressed_start"], cfg["apc.stressed_end"]
    if not (math.isfinite(w) and 0.0 <= w <= 1.0):
        raise ValueError("apc.stressed_weight = %r: must be in [0, 1]" % w)
    if bool(start) != bool(end):
        raise ValueError("apc.stressed_start = %r and apc.stressed_end = %r: give both dates or neither"
                         % (start, end))
    if w > 0 and not start:
        raise ValueError("apc.stressed_weight = %g > 0 needs apc.stressed_start and apc.stressed_end" % w)
    if w > 0 and not cfg["historical.enabled"]:
        raise ValueError("apc.stressed_weight = %g > 0 blends into the historical set, but "
                         "historical.enabled = false" % w)


# --------------------------------------------------------------------------
# HDF5 reading
# --------------------------------------------------------------------------

def _to_str(v):
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("utf-8")
    if isinstance(v, np.ndarray):
        if v.size == 1:
            return _to_str(v.reshape(-1)[0])
        raise ValueError("expected a scalar string attribute")
    return str(v)


def _strings(ds):
    """Read a 1-D string dataset (fixed or variable length, bytes or str)."""
    raw = ds[()]
    if isinstance(raw, (bytes, str, np.bytes_)):
        raw = [raw]
    return [_to_str(x) for x in np.asarray(raw, dtype=object).reshape(-1)]


def _num(ds, dtype=np.float64):
    return np.asarray(ds[()]).astype(dtype)


INSTRUMENT_TYPES = {"spot": 0, "future": 1, "option": 2, "future_option": 3,
                    # version 2 (METHODOLOGY §2.1)
                    "american_option": 4, "perpetual": 5, "inverse_future": 6,
                    "inverse_perpetual": 7, "inverse_option": 8}
FACTOR_KINDS = {"price": 0, "vol": 1, "rate": 2, "logvol": 3}
OPTION_TYPES = (2, 3, 4, 8)        # the minimum's option types; the only readers of a vol factor
SETTLED_TYPES = (1, 5, 6, 7)       # future, perpetual, inverse_future, inverse_perpetual
FUNDING_TYPES = (5, 7)             # perpetual, inverse_perpetual
INVERSE_TYPES = (6, 7, 8)          # settled in a coin (must be in /fx)
LINEAR_TYPES = (0, 1, 5)           # spot, future, perpetual: follow the underlying's kind
FACTOR_V2_COLUMNS = ("half_spread", "impact", "adv", "haircut", "collateral_limit")   # /factors, §4.1 and §6
LIQUIDITY_BUMP = 0.01              # u of METHODOLOGY §4.1: the log-shock of the central differences


def _root_attr(f, name, default=None):
    if name not in f.attrs:
        return default
    v = f.attrs[name]
    if isinstance(v, (bytes, str, np.bytes_)) or (isinstance(v, np.ndarray) and v.dtype.kind in "SUO"):
        return _to_str(v)
    return v


def read_portfolio(path):
    """Read a FORMAT.md §1 portfolio. Returns a dict of numpy arrays / lists."""
    with h5py.File(path, "r") as f:
        fac = f["factors"]
        ins = f["instruments"]
        acc = f["accounts"]
        pos = f["positions"]
        p = {
            "path": str(path),
            "factor_name": _strings(fac["name"]),
            "factor_kind": np.array([FACTOR_KINDS[k] for k in _strings(fac["kind"])], dtype=np.int64),
            "factor_level": _num(fac["level"]),
            "silo_name": _strings(f["silos"]["name"]),
            "instrument_id": _strings(ins["id"]),
            "type": np.array([INSTRUMENT_TYPES[t] for t in _strings(ins["type"])], dtype=np.int64),
            "silo": _num(ins["silo"], np.int64),
            "underlying": _num(ins["underlying"], np.int64),
            "vol_factor": _num(ins["vol_factor"], np.int64),
            "strike": _num(ins["strike"]),
            "expiry": _num(ins["expiry"]),
            "call": _num(ins["call"], np.int64),
            "implied_vol": _num(ins["implied_vol"]),
            "rate": _num(ins["rate"]),
            "dividend_yield": _num(ins["dividend_yield"]),
            "multiplier": _num(ins["multiplier"]),
            "account_id": _strings(acc["id"]),
            "cross_margin": _num(acc["cross_margin"], np.int64),
            "pos_account": _num(pos["account"], np.int64),
            "pos_instrument": _num(pos["instrument"], np.int64),
            "pos_quantity": _num(pos["quantity"]),
        }
        fv = _root_attr(f, "format_version", 1)
        p["format_version"] = int(np.asarray(fv).reshape(-1)[0])
        if p["format_version"] not in (1, 2):
            raise ValueError("%s: format_version %r not 1 or 2" % (path, fv))
        rep = _root_attr(f, "currency", "")
        p["currency"] = rep
        I, A = len(p["instrument_id"]), len(p["account_id"])
        # version-2 optional columns (FORMAT.md §1), with their defaults
        p["instrument_currency"] = _strings(ins["currency"]) if "currency" in ins else [rep] * I
        p["funding_rate"] = _num(ins["funding_rate"]) if "funding_rate" in ins else np.zeros(I)
        p["account_currency"] = _strings(acc["currency"]) if "currency" in acc else [rep] * A
        if "fx" in f:
            p["fx_currency"] = _strings(f["fx"]["currency"])
            p["fx_factor"] = _num(f["fx"]["factor"], np.int64)
        else:
            p["fx_currency"], p["fx_factor"] = [], np.zeros(0, dtype=np.int64)
        # version 2: the factors' liquidity and collateral columns (FORMAT.md §1, 0 when absent)
        F = len(p["factor_name"])
        for c in FACTOR_V2_COLUMNS:
            p["factor_" + c] = _num(fac[c]) if c in fac else np.zeros(F)
        # /collateral (FORMAT.md §1): present with no rows means the same as absent
        p["collateral_table"] = "collateral" in f
        if "collateral" in f and "account" in f["collateral"]:
            c = f["collateral"]
            p["coll_account"] = _num(c["account"], np.int64).reshape(-1)
            H = len(p["coll_account"])
            p["coll_factor"] = _num(c["factor"], np.int64).reshape(-1)
            p["coll_quantity"] = _num(c["quantity"]).reshape(-1)
            p["coll_silo"] = _num(c["silo"], np.int64).reshape(-1)
            p["coll_currency"] = _strings(c["currency"]) if "currency" in c else [rep] * H
        else:
            p["coll_account"] = np.zeros(0, dtype=np.int64)
            p["coll_factor"] = np.zeros(0, dtype=np.int64)
            p["coll_quantity"] = np.zeros(0)
            p["coll_silo"] = np.zeros(0, dtype=np.int64)
            p["coll_currency"] = []
    _check_portfolio(p)
    # the /fx factor row of each instrument's settlement currency and each
    # account's currency; -1 for the reporting currency (X = 1)
    fxrow = dict(zip(p["fx_currency"], p["fx_factor"].tolist()))
    p["instrument_fx"] = np.array([-1 if c == p["currency"] else fxrow[c] for c in p["instrument_currency"]],
                                  dtype=np.int64)
    p["account_fx"] = np.array([-1 if c == p["currency"] else fxrow[c] for c in p["account_currency"]],
                               dtype=np.int64)
    p["coll_fx"] = np.array([-1 if c == p["currency"] else fxrow[c] for c in p["coll_currency"]],
                            dtype=np.int64)
    return p


def _v1_defaults(p):
    """Fill the version-2 keys of a portfolio dict made without read_portfolio."""
    I, A = len(p["instrument_id"]), len(p["account_id"])
    p.setdefault("format_version", 1)
    p.setdefault("currency", "")
    p.setdefault("instrument_currency", [p["currency"]] * I)
    p.setdefault("funding_rate", np.zeros(I))
    p.setdefault("account_currency", [p["currency"]] * A)
    p.setdefault("fx_currency", [])
    p.setdefault("fx_factor", np.zeros(0, dtype=np.int64))
    p.setdefault("instrument_fx", np.full(I, -1, dtype=np.int64))
    p.setdefault("account_fx", np.full(A, -1, dtype=np.int64))
    F = len(p["factor_name"])
    for c in FACTOR_V2_COLUMNS:
        p.setdefault("factor_" + c, np.zeros(F))
    p.setdefault("collateral_table", False)
    p.setdefault("coll_account", np.zeros(0, dtype=np.int64))
    p.setdefault("coll_factor", np.zeros(0, dtype=np.int64))
    p.setdefault("coll_quantity", np.zeros(0))
    p.setdefault("coll_silo", np.zeros(0, dtype=np.int64))
    p.setdefault("coll_currency", [p["currency"]] * len(p["coll_account"]))
    p.setdefault("coll_fx", np.full(len(p["coll_account"]), -1, dtype=np.int64))
    return p


def _check_portfolio(p):
    F, I, A, G = len(p["factor_name"]), len(p["instrument_id"]), len(p["account_id"]), len(p["silo_name"])
    if np.any((p["underlying"] < 0) | (p["underlying"] >= F)):
        raise ValueError("instrument underlying out of range")
    if np.any((p["vol_factor"] < -1) | (p["vol_factor"] >= F)):
        raise ValueError("instrument vol_factor out of range")
    if np.any((p["silo"] < 0) | (p["silo"] >= G)):
        raise ValueError("instrument silo out of range")
    if np.any((p["pos_account"] < 0) | (p["pos_account"] >= A)):
        raise ValueError("position account out of range")
    if np.any((p["pos_instrument"] < 0) | (p["pos_instrument"] >= I)):
        raise ValueError("position instrument out of range")
    if "fx_currency" not in p:
        return
    kind, typ = p["factor_kind"], p["type"]
    rep = p["currency"]
    if len(set(p["fx_currency"])) != len(p["fx_currency"]):
        raise ValueError("/fx: duplicate currency")
    if rep in p["fx_currency"]:
        raise ValueError("/fx: the reporting currency %r is listed" % rep)
    for c, fr in zip(p["fx_currency"], p["fx_factor"].tolist()):
        if not (0 <= fr < F) or kind[fr] != 0:
            raise ValueError("/fx %s: factor %d is not a price factor" % (c, fr))
    known = set(p["fx_currency"]) | {rep}
    for i, c in enumerate(p["instrument_currency"]):
        if c not in known:
            raise ValueError("instrument %s: currency %r neither reporting nor in /fx" % (p["instrument_id"][i], c))
        if typ[i] in INVERSE_TYPES and c == rep:
            raise ValueError("instrument %s: an inverse type settled in the reporting currency"
                             % p["instrument_id"][i])
    for a, c in enumerate(p["account_currency"]):
        if c not in known:
            raise ValueError("account %s: currency %r neither reporting nor in /fx" % (p["account_id"][a], c))
    bad = (p["funding_rate"] != 0) & ~np.isin(typ, FUNDING_TYPES)
    if np.any(bad):
        raise ValueError("instrument %s: a funding_rate on a type without funding"
                         % p["instrument_id"][int(np.nonzero(bad)[0][0])])
    # reading: options and inverse types need a price underlying
    need_price = np.isin(typ, OPTION_TYPES + INVERSE_TYPES)
    if np.any(need_price & (kind[p["underlying"]] != 0)):
        raise ValueError("an option's or inverse type's underlying must be a price factor")
    vf = p["vol_factor"]
    isopt = np.isin(typ, OPTION_TYPES) & (vf >= 0)
    if np.any(isopt & ~np.isin(kind[np.where(vf >= 0, vf, 0)], (1, 3))):
        raise ValueError("an option's vol factor must be a vol or logvol factor")
    for c in FACTOR_V2_COLUMNS:
        v = p.get("factor_" + c)
        if v is None:
            continue
        if len(v) != F or not np.all(np.isfinite(v)) or np.any(v < 0) or (c == "haircut" and np.any(v > 1)):
            raise ValueError("/factors/%s: must be finite and >= 0%s" % (c, " and <= 1" if c == "haircut" else ""))
    if "coll_account" in p and len(p["coll_account"]):
        ca, cf, cs, cq = p["coll_account"], p["coll_factor"], p["coll_silo"], p["coll_quantity"]
        if not (len(cf) == len(cs) == len(cq) == len(ca) == len(p["coll_currency"])):
            raise ValueError("/collateral: columns of unequal length")
        if np.any((ca < 0) | (ca >= A)):
            raise ValueError("/collateral/account out of range")
        if np.any((cf < -1) | (cf >= F)) or np.any((cf >= 0) & (kind[np.where(cf >= 0, cf, 0)] != 0)):
            raise ValueError("/collateral/factor: a price factor or -1 for cash")
        if np.any((cs < -1) | (cs >= G)):
            raise ValueError("/collateral/silo out of range")
        if not np.all(np.isfinite(cq)) or np.any(cq < 0):
            raise ValueError("/collateral/quantity: must be finite and >= 0")
        for j, c in enumerate(p["coll_currency"]):
            if c not in known:
                raise ValueError("/collateral/currency[%d] = %r: neither reporting nor in /fx" % (j, c))


def read_scenarios(path):
    """Read a FORMAT.md §2 scenario file: history (optional) and ready-made sets."""
    out = {"path": str(path), "history": None, "sets": {}}
    with h5py.File(path, "r") as f:
        if "history" in f:
            h = f["history"]
            out["history"] = {
                "factor": _strings(h["factor"]),
                "date": _strings(h["date"]),
                "return": np.atleast_2d(_num(h["return"])),
            }
        if "sets" in f:
            for name in f["sets"]:
                g = f["sets"][name]
                shock = np.asarray(g["shock"][()], dtype=np.float64)
                factors = _strings(g["factor"])
                shock = shock.reshape(-1, len(factors)) if shock.ndim != 2 else shock
                S = shock.shape[0]
                labels = _strings(g["label"]) if "label" in g else [str(i) for i in range(S)]
                weight = _num(g["weight"]) if "weight" in g else np.ones(S)
                measure = _to_str(g.attrs["measure"]).strip().lower() if "measure" in g.attrs else "worst"
                conf = float(np.asarray(g.attrs["confidence"]).reshape(-1)[0]) if "confidence" in g.attrs else None
                out["sets"][name] = {"factor": factors, "shock": shock, "label": labels,
                                     "weight": weight, "measure": measure, "confidence": conf}
    return out


def read_results_scenarios(path):
    """Read /set and /scenarios/<set>/{shock,factor,label} from a results file."""
    out = {}
    with h5py.File(path, "r") as f:
        if "scenarios" not in f:
            return out
        for name in f["scenarios"]:
            g = f["scenarios"][name]
            if "shock" not in g or "factor" not in g:
                continue
            factors = _strings(g["factor"])
            shock = np.asarray(g["shock"][()], dtype=np.float64).reshape(-1, len(factors))
            labels = _strings(g["label"]) if "label" in g else [str(i) for i in range(shock.shape[0])]
            out[name] = {"factor": factors, "shock": shock, "label": labels}
    return out


def align_shocks(set_factors, shock, portfolio_factors):
    """Map a set's columns onto portfolio factors: unknown columns are ignored,
    portfolio factors the set does not list get 0."""
    col = {n: j for j, n in enumerate(set_factors)}
    out = np.zeros((shock.shape[0], len(portfolio_factors)))
    for fi, n in enumerate(portfolio_factors):
        j = col.get(n)
        if j is not None:
            out[:, fi] = shock[:, j]
    return out


# --------------------------------------------------------------------------
# §1 scenarios
# --------------------------------------------------------------------------

def ewma_filter(r, ewma_lambda=0.97, apc_floor=0.0, filtered=True):
    """Filtered daily changes r~[T,F] and the EWMA vols sigma[T+1,F] (sigma[0] is
    sigma_1, sigma[T] is sigma_{T+1} before the floor), plus sigma_now[F]."""
    r = np.asarray(r, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    T, F = r.shape
    var = np.empty((T + 1, F))
    var[0] = np.mean(r * r, axis=0)
    lam = float(ewma_lambda)
    for t in range(T):
        var[t + 1] = lam * var[t] + (1.0 - lam) * r[t] * r[t]
    sig = np.sqrt(var)
    sig_now = np.maximum(sig[T], float(apc_floor) * sig[0])
    if not filtered:
        return r.copy(), sig, sig_now
    st = sig[:T]
    safe = np.where(st > 0, st, 1.0)
    rt = np.where(st > 0, r * sig_now / safe, r)
    return rt, sig, sig_now


def filtered_window(history_returns, ewma_lambda=0.97, apc_floor=0.0, filtered=True, lookback=1260):
    """The W = min(T, lookback) most recent filtered daily changes [W,F]."""
    rt, _, _ = ewma_filter(history_returns, ewma_lambda, apc_floor, filtered)
    T = rt.shape[0]
    W = min(T, int(lookback))
    return rt[T - W:]


def historical_set(history_returns, dates, horizon=2, ewma_lambda=0.97, apc_floor=0.0,
                   filtered=True, lookback=1260):
    """§1 filtered historical simulation. Returns (shocks[S,F], labels[S]) with
    S = W - h + 1, one scenario per window end t = T-W+h..T (1-based), x = the
    sum of r~_u over u = t-h+1..t, labelled by the date of t."""
    rt, _, _ = ewma_filter(history_returns, ewma_lambda, apc_floor, filtered)
    T = rt.shape[0]
    h = int(horizon)
    W = min(T, int(lookback))
    S = W - h + 1
    if h < 1 or S < 1:
        raise ValueError("historical set: window W=%d shorter than horizon h=%d" % (W, h))
    win = rt[T - W:]
    shocks = np.zeros((S, rt.shape[1]))
    for j in range(h):          # u ascending inside each window
        shocks += win[j:j + S]
    ends = np.arange(T - W + h, T + 1)   # 1-based t
    labels = [dates[t - 1] for t in ends] if dates is not None else [str(t) for t in ends]
    return shocks, labels


def stressed_period_set(history_returns, dates, horizon, start, end, last=None):
    """§1 stressed period (decision D1): the raw (unfiltered) h-day sums
    x = sum_{u=t-h+1..t} r_u for every window end t (1-based, h <= t <= last,
    last = T by default) whose date lies in [start, end] (ISO strings, both
    included, compared as strings), labelled by the date of t. Not limited by
    historical.lookback. Returns (shocks[S, F], labels[S]); S may be 0."""
    r = np.asarray(history_returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    T = r.shape[0] if last is None else int(last)
    h = int(horizon)
    ends = [t for t in range(h, T + 1) if start <= dates[t - 1] <= end]
    shocks = np.zeros((len(ends), r.shape[1]))
    for i, t in enumerate(ends):
        shocks[i] = r[t - h:t].sum(axis=0)          # rows t-h+1..t (1-based), ascending
    return shocks, [dates[t - 1] for t in ends]


def second_moment(window):
    """Sigma = (1/W) sum_t r~_t r~_t^T over a filtered window [W,F]."""
    w = np.asarray(window, dtype=np.float64)
    return (w.T @ w) / w.shape[0]


def stressed_moment(sigma, kappa):
    """Sigma_kappa = (1 - kappa) Sigma + kappa diag(Sigma)."""
    s = np.asarray(sigma, dtype=np.float64)
    return (1.0 - kappa) * s + kappa * np.diag(np.diag(s))


def cholesky_jitter(sigma):
    """Cholesky of Sigma + delta*I with the smallest delta tried (0, then
    1e-12*max diag, x10 each step) that is positive definite. Returns (L, delta)."""
    s = np.asarray(sigma, dtype=np.float64)
    n = s.shape[0]
    if n == 0:
        return np.zeros((0, 0)), 0.0
    md = float(np.max(np.diag(s))) if n else 0.0
    delta = 0.0
    step = 1e-12 * md if md > 0 else 1e-300
    for _ in range(400):
        try:
            return np.linalg.cholesky(s + delta * np.eye(n)), delta
        except np.linalg.LinAlgError:
            delta = step if delta == 0.0 else delta * 10.0
    raise np.linalg.LinAlgError("cannot make Sigma positive definite")


def montecarlo_moments(portfolio, scenarios, config=None):
    """Sigma of §1 Monte Carlo over the factors that positions use (portfolio
    order), its stressed version, and the jittered Cholesky factor.
    Returns dict(factor=[names], sigma, sigma_kappa, chol, delta)."""
    cfg = make_config(config)
    p, hist = portfolio, scenarios["history"]
    used = moved_factors(p, cfg["collateral.method"])
    names = [p["factor_name"][f] for f in used]
    col = {n: j for j, n in enumerate(hist["factor"])}
    R = hist["return"][:, [col[n] for n in names]]
    w = filtered_window(R, cfg["historical.ewma_lambda"], cfg["historical.apc_floor"],
                        cfg["historical.filtered"], cfg["historical.lookback"])
    sig = second_moment(w)
    L, delta = cholesky_jitter(sig)
    return {"factor": names, "sigma": sig,
            "sigma_kappa": stressed_moment(sig, float(cfg["montecarlo.correlation_stress"])),
            "chol": L, "delta": delta}


def numpy_montecarlo(window, used, F, horizon, n, distribution="student_t", dof=5, seed=0, kappa=0.0):
    """Monte Carlo sets drawn with numpy's generator (same law as §1, not the
    engine's Philox numbers). Returns {name: shocks[S,F]}."""
    sig = second_moment(window[:, used])
    rng = np.random.Generator(np.random.Philox(int(seed)))
    z = rng.standard_normal((int(n), len(used)))
    scale = np.full(int(n), math.sqrt(horizon))
    if distribution == "student_t":
        nu = float(dof)
        scale *= np.sqrt((nu - 2.0) / rng.chisquare(nu, int(n)))
    out = {}
    mats = [("montecarlo", sig)]
    if kappa > 0:
        mats.append(("montecarlo_stressed", stressed_moment(sig, kappa)))
    for name, m in mats:
        L, _ = cholesky_jitter(m)
        x = np.zeros((int(n), F))
        x[:, used] = (z @ L.T) * scale[:, None]
        out[name] = x
    return out


# --------------------------------------------------------------------------
# §2 pricing
# --------------------------------------------------------------------------

class _Backend:
    """Array module + its normal CDF + its sparse module."""

    def __init__(self, xp=np):
        self.xp = xp
        if xp is np:
            if _np_ndtr is not None:
                self.ndtr = _np_ndtr
            else:
                erfc = np.vectorize(math.erfc, otypes=[np.float64])
                self.ndtr = lambda x: 0.5 * erfc(-np.asarray(x) / math.sqrt(2.0))
            self.sparse = _np_sparse
            self.to_host = lambda a: np.asarray(a)
        else:
            import cupyx.scipy.special as cs
            import cupyx.scipy.sparse as csp
            self.ndtr = cs.ndtr
            self.sparse = csp
            self.to_host = lambda a: xp.asnumpy(a)


def norm_cdf(x, xp=np):
    return _Backend(xp).ndtr(x)


def bsm(S, K, T, r, q, sigma, call, xp=np, ndtr=None):
    """Black-Scholes-Merton value of one unit (T > 0 assumed; where T <= 0 use
    intrinsic()). Arguments broadcast; ``call`` is boolean/int."""
    ndtr = ndtr or _Backend(xp).ndtr
    S, K, T, r, q, sigma = (xp.asarray(a, dtype=xp.float64) for a in (S, K, T, r, q, sigma))
    call = xp.asarray(call).astype(bool)
    Tp = xp.where(T > 0, T, 1.0)
    v = sigma * xp.sqrt(Tp)
    pos = v > 0
    vs = xp.where(pos, v, 1.0)
    dfq = xp.exp(-q * Tp)
    dfr = xp.exp(-r * Tp)
    d1 = (xp.log(S / K) + (r - q + 0.5 * sigma * sigma) * Tp) / vs
    d2 = d1 - vs
    c = S * dfq * ndtr(d1) - K * dfr * ndtr(d2)
    p = K * dfr * ndtr(-d2) - S * dfq * ndtr(-d1)
    fwd = S * dfq - K * dfr
    c = xp.where(pos, c, xp.maximum(fwd, 0.0))
    p = xp.where(pos, p, xp.maximum(-fwd, 0.0))
    return xp.where(call, c, p)


def black76(F, K, T, r, sigma, call, xp=np, ndtr=None):
    """Black-76 value of one unit option on a future (T > 0 assumed)."""
    ndtr = ndtr or _Backend(xp).ndtr
    F, K, T, r, sigma = (xp.asarray(a, dtype=xp.float64) for a in (F, K, T, r, sigma))
    call = xp.asarray(call).astype(bool)
    Tp = xp.where(T > 0, T, 1.0)
    v = sigma * xp.sqrt(Tp)
    pos = v > 0
    vs = xp.where(pos, v, 1.0)
    df = xp.exp(-r * Tp)
    d1 = (xp.log(F / K) + 0.5 * sigma * sigma * Tp) / vs
    d2 = d1 - vs
    c = df * (F * ndtr(d1) - K * ndtr(d2))
    p = df * (K * ndtr(-d2) - F * ndtr(-d1))
    c = xp.where(pos, c, df * xp.maximum(F - K, 0.0))
    p = xp.where(pos, p, df * xp.maximum(K - F, 0.0))
    return xp.where(call, c, p)


def intrinsic(S, K, call, xp=np):
    call = xp.asarray(call).astype(bool)
    return xp.where(call, xp.maximum(S - K, 0.0), xp.maximum(K - S, 0.0))


def contract_values(type_code, S, K, T, r, q, sigma, call, multiplier, xp=np, ndtr=None):
    """Value of one contract (FORMAT.md §1). type_code: 0 spot, 1 future, 2 option
    (BSM with dividend yield), 3 future_option (Black-76), 4 american_option
    (BS2002, b = r - q; numpy), 5 perpetual (m S, without funding), 8
    inverse_option (m Black76 / F, coins); options at T <= 0 are worth their
    undiscounted intrinsic value. All arguments broadcast. 6/7 (inverse future /
    perpetual) need F0: not here."""
    ndtr = ndtr or _Backend(xp).ndtr
    if xp is np:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _contract_values(type_code, S, K, T, r, q, sigma, call, multiplier, xp, ndtr)
    return _contract_values(type_code, S, K, T, r, q, sigma, call, multiplier, xp, ndtr)


def _contract_values(type_code, S, K, T, r, q, sigma, call, multiplier, xp, ndtr):
    tc = xp.asarray(type_code)
    S = xp.asarray(S, dtype=xp.float64)
    T = xp.asarray(T, dtype=xp.float64)
    if bool(xp.any((tc == 6) | (tc == 7))):
        raise ValueError("contract_values: an inverse future's value needs F0 (m (1/F0 - 1/F))")
    opt = bsm(S, K, T, r, q, sigma, call, xp, ndtr)
    fop = black76(S, K, T, r, sigma, call, xp, ndtr)
    val = xp.where(tc == 2, opt, xp.where((tc == 3) | (tc == 8), fop, S))
    if bool(xp.any(tc == 4)):
        amv = xp.asarray(american_values(*(np.broadcast_to(np.asarray(a, dtype=np.float64), np.shape(val))
                                           for a in (S, K, T, r, q, sigma, call))))
        val = xp.where(tc == 4, amv, val)
    val = xp.where(((tc == 2) | (tc == 3) | (tc == 4) | (tc == 8)) & (T <= 0), intrinsic(S, K, call, xp), val)
    val = xp.where(tc == 8, val / S, val)          # inverse_option: in coins, m B76 / F
    return multiplier * val


@functools.lru_cache(maxsize=1 << 20)
def _american_unit(S, K, T, r, b, sigma, is_call):
    """One unit of an American option (BS2002, xm_american); memoised because the
    same scenario is priced again by every comparison of one book."""
    return _xa.bs2002(S, K, T, r, b, sigma, is_call)


def american_values(S, K, T, r, q, sigma, call):
    """American option values of one unit, BS2002 with carry b = r - q; T <= 0:
    intrinsic. Arguments broadcast (numpy only: scalar loop)."""
    if _xa is None:
        raise ImportError("xm_american.py (BS2002) is needed for american_option")
    S, K, T, r, q, sigma, call = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in
                                                        (S, K, T, r, q, sigma, call)))
    out = np.empty(S.shape)
    for ix in np.ndindex(S.shape):
        s, k, t, c = float(S[ix]), float(K[ix]), float(T[ix]), bool(call[ix] != 0)
        if t <= 0:
            out[ix] = max(s - k, 0.0) if c else max(k - s, 0.0)
        else:
            out[ix] = _american_unit(s, k, t, float(r[ix]), float(r[ix] - q[ix]), float(sigma[ix]), c)
    return out


def _shocked_vol(x, vf, vscale, sig, islog, floor, xp):
    """sigma' [Sc, n]: vol factor additive (sigma + x_v s) or logvol relative
    (sigma exp(x_v s)), floored; x_v = 0 without a vol factor (vscale 0)."""
    xv = x[:, vf] * vscale
    v = xp.where(islog, sig * xp.exp(xv), sig + xv)
    return xp.maximum(v, floor)


class _Instruments:
    """Instrument parameters (a subset of the book) laid out for chunked pricing.

    loss(x, bfx) gives the per-contract losses in the currency of an account whose
    /fx factor row is bfx (-1: the reporting currency), METHODOLOGY §2-§2.3."""

    def __init__(self, p, idx, horizon, vol_floor, vol_term_power, be):
        xp = be.xp
        self.be = be
        p = _v1_defaults(p)
        idx = np.asarray(idx, dtype=np.int64)
        self.n = len(idx)
        typ = p["type"][idx]
        und = p["underlying"][idx]
        kind = p["factor_kind"][und]
        level = p["factor_level"][und]
        mult = p["multiplier"][idx]
        h = float(horizon)
        self.fac_level = np.asarray(p["factor_level"], dtype=np.float64)
        self.cfx = p["instrument_fx"][idx]                 # settlement currency's /fx row, -1 reporting
        self.settled = np.isin(typ, SETTLED_TYPES)
        # today's value per contract in c (value types; what G_a of §5 counts) and
        # the notional N_i of §5
        self.V0 = np.zeros(self.n)
        self.notional = np.where(np.isin(typ, (6, 7)), mult / level,
                                 np.where(typ == 8, mult, mult * level))
        # funding per contract over the horizon (§2.3): f N h/252, N = m S0 (perpetual),
        # m/S0 coins (inverse_perpetual); 0 for every other type
        fund = np.where(np.isin(typ, FUNDING_TYPES), p["funding_rate"][idx] * self.notional * h / 252.0, 0.0)
        vf_all = p["vol_factor"][idx]
        vscale_all = np.where(vf_all >= 0, (30.0 / np.maximum(365.0 * p["expiry"][idx], 1.0)) **
                              float(vol_term_power), 0.0)
        islog_all = (vf_all >= 0) & (p["factor_kind"][np.where(vf_all >= 0, vf_all, 0)] == 3)
        # linear instruments: spot (value), future and perpetual (settled); they
        # follow the underlying's kind (price and logvol: S exp(x); vol/rate: S + x)
        lin = np.nonzero(np.isin(typ, LINEAR_TYPES))[0]
        self.lin = xp.asarray(lin)
        self.lin_und = xp.asarray(und[lin])
        self.lin_price = xp.asarray((kind[lin] == 0) | (kind[lin] == 3))
        self.lin_level = xp.asarray(level[lin])
        self.lin_mult = xp.asarray(mult[lin])
        self.lin_fund = xp.asarray(fund[lin]) if np.any(fund[lin] != 0) else None
        self.V0[lin] = mult[lin] * level[lin]
        # inverse futures / perpetuals: coin loss m (1/F1 - 1/F0) (+ funding)
        inv = np.nonzero(np.isin(typ, (6, 7)))[0]
        self.inv = None
        if len(inv):
            self.inv = {"cols": xp.asarray(inv), "und": xp.asarray(und[inv]), "level": xp.asarray(level[inv]),
                        "mult": xp.asarray(mult[inv]), "fund": xp.asarray(fund[inv])}
        # options: today's value once (contract_values, textbook formulas); in a
        # scenario the live ones in one vectorised pass, the expired ones intrinsic
        opt = np.nonzero((typ == 2) | (typ == 3))[0]
        self.n_opt = len(opt)
        self.vol_floor = float(vol_floor)
        if len(opt):
            if np.any(kind[opt] != 0):
                raise ValueError("an option's underlying must be a price factor")
            oi = idx[opt]
            T = p["expiry"][oi]
            q = np.where(typ[opt] == 2, p["dividend_yield"][oi], 0.0)  # option only
            V0 = contract_values(typ[opt], level[opt], p["strike"][oi], T, p["rate"][oi], q,
                                 p["implied_vol"][oi], p["call"][oi] != 0, mult[opt], np,
                                 _Backend(np).ndtr)
            self.V0[opt] = V0
            T1 = np.maximum(T - float(horizon) / 252.0, 0.0)
            # vol term scaling uses T = the option's expiry today
            vscale = (30.0 / np.maximum(365.0 * T, 1.0)) ** float(vol_term_power)
            # Live options (T' > 0) are priced in one pass, written as
            #   V' = w (aS e^x N(w d1) - bK N(w d2)),  w = +1 call, -1 put,
            #   d1 = (ln(S/K) + x + drift) / v + v/2,  d2 = d1 - v,  v = sigma' sqrt(T'),
            # BSM: aS = S e^{-qT'}, drift = (r - q) T';  Black-76: aS = F e^{-rT'}, drift = 0;
            # bK = K e^{-rT'}. Options expired by the horizon take the intrinsic value.
            live = np.nonzero(T1 > 0)[0]
            dead = np.nonzero(T1 <= 0)[0]
            if len(live):
                c = opt[live]
                o = oi[live]
                T1l = T1[live]
                r, K = p["rate"][o], p["strike"][o]
                isb = typ[c] == 2
                ql = q[live]
                vf = p["vol_factor"][o]
                omega = np.where(p["call"][o] != 0, 1.0, -1.0)
                islog = islog_all[c]
                g = {"cols": xp.asarray(c), "und": xp.asarray(und[c]),
                     "omega": xp.asarray(omega),
                     "lnSK": xp.asarray(np.log(level[c] / K) + np.where(isb, (r - ql) * T1l, 0.0)),
                     "aS": xp.asarray(omega * mult[c] * level[c] * np.exp(-np.where(isb, ql, r) * T1l)),
                     "bK": xp.asarray(omega * mult[c] * K * np.exp(-r * T1l)),
                     "sqT": xp.asarray(np.sqrt(T1l)), "sig": xp.asarray(p["implied_vol"][o]),
                     "V0": xp.asarray(V0[live]), "has_vf": bool(np.any(vf >= 0)),
                     "vf": xp.asarray(np.where(vf >= 0, vf, 0)),
                     "vfscale": xp.asarray(np.where(vf >= 0, vscale[live], 0.0)),
                     # logvol (version 2): sigma' = sigma exp(x_v s) where the vol factor is one
                     "has_log": bool(np.any(islog)), "islog": xp.asarray(islog)}
                self.live = g
            if len(dead):
                c = opt[dead]
                self.dead = {"cols": xp.asarray(c), "und": xp.asarray(und[c]),
                             "level": xp.asarray(level[c]), "K": xp.asarray(p["strike"][oi[dead]]),
                             "call": xp.asarray(p["call"][oi[dead]] != 0),
                             "mult": xp.asarray(mult[c]), "V0": xp.asarray(V0[dead])}
        # american options: BS2002 on the spot, carry b = r - q (scalar, host)
        am = np.nonzero(typ == 4)[0]
        self.amer = None
        if len(am):
            ai = idx[am]
            T = p["expiry"][ai]
            g = {"cols": am, "und": und[am], "level": level[am], "mult": mult[am], "K": p["strike"][ai],
                 "T": T, "T1": np.maximum(T - h / 252.0, 0.0), "r": p["rate"][ai],
                 "q": p["dividend_yield"][ai], "sig": p["implied_vol"][ai], "call": p["call"][ai] != 0,
                 "vf": np.where(vf_all[am] >= 0, vf_all[am], 0), "vfscale": vscale_all[am],
                 "islog": islog_all[am]}
            g["V0"] = mult[am] * american_values(level[am], g["K"], T, g["r"], g["q"], g["sig"], g["call"])
            self.V0[am] = g["V0"]
            self.amer = g
        # inverse options: m Black76(F, K, T, r, sigma) / F coins; T <= 0: m max(+-(F-K), 0) / F
        io = np.nonzero(typ == 8)[0]
        self.iopt = None
        if len(io):
            ii = idx[io]
            T = p["expiry"][ii]
            K, r, sig, call = p["strike"][ii], p["rate"][ii], p["implied_vol"][ii], p["call"][ii] != 0
            nd = _Backend(np).ndtr
            with np.errstate(divide="ignore", invalid="ignore"):
                u0 = np.where(T > 0, black76(level[io], K, T, r, sig, call, np, nd),
                              intrinsic(level[io], K, call, np))
            V0 = mult[io] * u0 / level[io]
            self.V0[io] = V0
            T1 = np.maximum(T - h / 252.0, 0.0)
            self.iopt = {"cols": xp.asarray(io), "und": xp.asarray(und[io]), "level": xp.asarray(level[io]),
                         "mult": xp.asarray(mult[io]), "K": xp.asarray(K), "T1": xp.asarray(T1),
                         "live": xp.asarray(T1 > 0), "r": xp.asarray(r), "sig": xp.asarray(sig),
                         "call": xp.asarray(call), "vf": xp.asarray(np.where(vf_all[io] >= 0, vf_all[io], 0)),
                         "vfscale": xp.asarray(vscale_all[io]), "islog": xp.asarray(islog_all[io]),
                         "V0": xp.asarray(V0)}
        self.dev_V0 = xp.asarray(self.V0)

    live = None
    dead = None

    def rates_today(self, bfx):
        """R_{c->b}(0) per instrument, host [n] (exactly 1 where c == b)."""
        xc = np.where(self.cfx >= 0, self.fac_level[np.where(self.cfx >= 0, self.cfx, 0)], 1.0)
        xb = self.fac_level[bfx] if bfx >= 0 else 1.0
        return np.where(self.cfx == bfx, 1.0, xc / xb)

    def loss(self, x, bfx=-1):
        """x: [Sc, F] shocks (xp array). Returns per-contract losses [Sc, n] in the
        currency whose /fx factor row is bfx (-1: reporting)."""
        xp = self.be.xp
        ndtr = self.be.ndtr
        out = xp.empty((x.shape[0], self.n), dtype=xp.float64)
        conv = self.cfx != bfx                                   # host: instruments needing a rate
        # scenario values V_c(x, T') of the value types, only where a rate applies
        vx = xp.zeros((x.shape[0], self.n), dtype=xp.float64) if np.any(conv & ~self.settled) else None
        if self.lin.size:
            xu = x[:, self.lin_und]
            # price factor: S' = S exp(x); vol/rate factor: S' = S + x
            s1 = xp.where(self.lin_price, self.lin_level * xp.exp(xu), self.lin_level + xu)
            out[:, self.lin] = self.lin_mult * (self.lin_level - s1)
            if self.lin_fund is not None:
                out[:, self.lin] += self.lin_fund                # Phi: a loss for a long
            if vx is not None:
                vx[:, self.lin] = self.lin_mult * s1
        g = self.inv
        if g is not None:
            f1 = g["level"] * xp.exp(x[:, g["und"]])
            out[:, g["cols"]] = g["mult"] * (1.0 / f1 - 1.0 / g["level"]) + g["fund"]
        g = self.live
        if g is not None:
            xu = x[:, g["und"]]
            # sigma' = max(sigma + x_v (30/max(365T,1))^p, floor); x_v = 0 without a vol factor
            if g["has_vf"]:
                v = x[:, g["vf"]]
                v *= g["vfscale"]
                if g["has_log"]:
                    v = xp.where(g["islog"], g["sig"] * xp.exp(v), v + g["sig"])
                else:
                    v += g["sig"]
            else:
                v = xp.empty_like(xu)
                v[...] = g["sig"]
            xp.maximum(v, self.vol_floor, out=v)
            v *= g["sqT"]                                   # v = sigma' sqrt(T')
            zero = None
            if self.vol_floor <= 0:
                zero = v <= 0
                v[zero] = 1.0
            d1 = xu + g["lnSK"]
            d1 /= v
            d2 = d1 - 0.5 * v                              # d2 = d1 - v after the += below
            d1 += 0.5 * v
            om = g["omega"]
            d1 *= om
            d2 *= om
            ex = xp.exp(xu)
            n1 = ndtr(d1)
            n1 *= ex
            n1 *= g["aS"]
            n2 = ndtr(d2)
            n2 *= g["bK"]
            n1 -= n2                                        # V' (times multiplier)
            if zero is not None and bool(zero.any()):
                # zero total vol: discounted intrinsic value of the forward
                intr = xp.maximum(ex * g["aS"] - g["bK"], 0.0)
                n1 = xp.where(zero, intr, n1)
            out[:, g["cols"]] = g["V0"] - n1
            if vx is not None:
                vx[:, g["cols"]] = n1
        g = self.dead
        if g is not None:
            s1 = g["level"] * xp.exp(x[:, g["und"]])
            v1 = g["mult"] * intrinsic(s1, g["K"], g["call"], xp)
            out[:, g["cols"]] = g["V0"] - v1
            if vx is not None:
                vx[:, g["cols"]] = v1
        g = self.amer
        if g is not None:
            xh = self.be.to_host(x)
            s1 = g["level"] * np.exp(xh[:, g["und"]])
            sig = _shocked_vol(xh, g["vf"], g["vfscale"], g["sig"], g["islog"], self.vol_floor, np)
            v1 = g["mult"] * american_values(s1, g["K"], g["T1"], g["r"], g["q"], sig, g["call"])
            v1 = xp.asarray(v1)
            out[:, xp.asarray(g["cols"])] = xp.asarray(g["V0"]) - v1
            if vx is not None:
                vx[:, xp.asarray(g["cols"])] = v1
        g = self.iopt
        if g is not None:
            f1 = g["level"] * xp.exp(x[:, g["und"]])
            sig = _shocked_vol(x, g["vf"], g["vfscale"], g["sig"], g["islog"], self.vol_floor, xp)
            T1 = xp.broadcast_to(g["T1"], f1.shape)
            if xp is np:
                with np.errstate(divide="ignore", invalid="ignore"):
                    b76 = black76(f1, g["K"], T1, g["r"], sig, g["call"], xp, ndtr)
            else:
                b76 = black76(f1, g["K"], T1, g["r"], sig, g["call"], xp, ndtr)
            u1 = xp.where(g["live"], b76, intrinsic(f1, g["K"], g["call"], xp))
            v1 = g["mult"] * u1 / f1
            out[:, g["cols"]] = g["V0"] - v1
            if vx is not None:
                vx[:, g["cols"]] = v1
        if np.any(conv):
            # §2.2: R_{c->b}(x) = X_c(x) / X_b(x), X = the /fx factor's level S exp(x), 1 reporting
            cols = np.nonzero(conv)[0]
            cfx = self.cfx[cols]
            lvl = self.fac_level[np.where(cfx >= 0, cfx, 0)]
            xcx = xp.where(xp.asarray(cfx >= 0), xp.asarray(lvl) * xp.exp(x[:, xp.asarray(np.where(cfx >= 0, cfx, 0))]),
                           1.0)
            xbx = self.fac_level[bfx] * xp.exp(x[:, bfx:bfx + 1]) if bfx >= 0 else 1.0
            rx = xcx / xbx
            r0 = xp.asarray(self.rates_today(bfx)[cols])
            st = xp.asarray(self.settled[cols])
            dc = xp.asarray(cols)
            # settled: (V0 - V' + Phi) R(x); value: V0 R(0) - V' R(x)
            val = self.dev_V0[dc] * r0 - (vx[:, dc] if vx is not None else 0.0) * rx
            out[:, dc] = xp.where(st, out[:, dc] * rx, val)
        return out


def revalue(portfolio, shocks, horizon=2, vol_floor=0.01, vol_term_power=0.0, xp=np, account_fx=-1):
    """§2: per-contract losses l[S, I] (all instruments) for shocks[S, F_portfolio],
    in the currency whose /fx factor row is account_fx (-1: reporting).
    Unchunked; the chunked path is inside compute()."""
    be = _Backend(xp)
    ins = _Instruments(portfolio, np.arange(len(portfolio["instrument_id"])), horizon,
                       vol_floor, vol_term_power, be)
    return ins.loss(xp.asarray(np.asarray(shocks, dtype=np.float64)), account_fx)


class _Holdings:
    """Collateral holdings (§6) of some accounts, revalued as the method `scenario`
    asks: holding j, q_j units of price factor f_j (cash: f_j = -1, a constant)
    in currency c_j, is a `spot` of multiplier 1 on f_j settled in c_j, a value
    type: its loss in the account's currency b is (§2.2)
        l_j(x) = V_j(0) R_{c->b}(0) - V_j(x) R_{c->b}(x),
        V_j(x) = q_j P_j exp(x_f) (cash: q_j),  R_{c->b}(x) = X_c(x) / X_b(x),
    the rate exactly 1 where c_j = b (so cash in the account's own currency has no
    risk).  Time does not matter to a spot, so the same code serves the §4.1
    central differences."""

    def __init__(self, p, idx, a0, G):
        idx = np.asarray(idx, dtype=np.int64)
        self.n = len(idx)
        lv = np.asarray(p["factor_level"], dtype=np.float64)
        self.fac = p["coll_factor"][idx]
        self.cfx = p["coll_fx"][idx]
        self.bfx = p["account_fx"][p["coll_account"][idx]]
        self.q = p["coll_quantity"][idx]
        self.P0 = np.where(self.fac >= 0, lv[np.where(self.fac >= 0, self.fac, 0)], 1.0)
        self.Xc0 = np.where(self.cfx >= 0, lv[np.where(self.cfx >= 0, self.cfx, 0)], 1.0)
        self.Xb0 = np.where(self.bfx >= 0, lv[np.where(self.bfx >= 0, self.bfx, 0)], 1.0)
        self.same = self.cfx == self.bfx
        self.rows = (p["coll_account"][idx] - a0) * G + p["coll_silo"][idx]

    def values_today(self):
        """CV_j = q_j P_j X_c / X_b (§6), in the account's currency."""
        return self.q * self.P0 * np.where(self.same, 1.0, self.Xc0 / self.Xb0)

    def loss(self, x):
        """x [S, F] (numpy) -> losses [S, n] in each holding's account currency."""
        x = np.asarray(x, dtype=np.float64)
        S = x.shape[0]

        def col(rows):                       # x[:, rows], 0 where rows = -1
            return np.where(rows >= 0, x[:, np.where(rows >= 0, rows, 0)], 0.0) if self.n else np.zeros((S, 0))
        v0 = self.q * self.P0
        v1 = v0 * np.exp(col(self.fac))
        r0 = np.where(self.same, 1.0, self.Xc0 / self.Xb0)
        r1 = np.where(self.same, 1.0, (self.Xc0 * np.exp(col(self.cfx))) / (self.Xb0 * np.exp(col(self.bfx))))
        return v0 * r0 - v1 * r1


def collateral_values(p, config=None):
    """§6 per holding: CV_j (today's value in the account's currency) and ACV_j
    (schedule: CV_j kappa_f (1 - h_f), kappa_f = min(1, (lim_f / X_b) / sum of the
    account's CV on f), 1 where lim_f = 0 or that sum is 0, cash CV_j; scenario:
    CV_j).  Returns (CV [H], ACV [H])."""
    cfg = make_config(config)
    p = _v1_defaults(p)
    H = len(p["coll_account"])
    hold = _Holdings(p, np.arange(H), 0, 1)
    cv = hold.values_today()
    if cfg["collateral.method"] == "scenario" or H == 0:
        return cv, cv.copy()
    fac, acc = p["coll_factor"], p["coll_account"]
    acv = cv.copy()
    sec = fac >= 0
    lim = p["factor_collateral_limit"]
    hc = p["factor_haircut"]
    # the account's total CV on each factor (all its holdings of f, whatever their silo)
    key = acc * len(p["factor_name"]) + np.where(sec, fac, 0)
    tot = {}
    for j in np.nonzero(sec)[0]:
        tot[int(key[j])] = tot.get(int(key[j]), 0.0) + cv[j]
    for j in np.nonzero(sec)[0]:
        f = int(fac[j])
        t = tot[int(key[j])]
        kappa = 1.0
        if lim[f] > 0 and t > 0:
            kappa = min(1.0, (lim[f] / hold.Xb0[j]) / t)
        acv[j] = cv[j] * kappa * (1.0 - hc[f])
    return cv, acv


def liquidity_factors(p, idx_instruments, accounts, collateral_method="schedule"):
    """§4.1: the price factors that the positions of these instruments and accounts
    depend on (underlyings, the /fx factors of the settlement currencies and of the
    accounts' currencies; with `scenario` collateral the holdings' factors and the
    /fx factors of their currencies), ascending."""
    p = _v1_defaults(p)
    fs = set(p["underlying"][idx_instruments].tolist())
    fs |= set(int(v) for v in p["instrument_fx"][idx_instruments] if v >= 0)
    fs |= set(int(v) for v in p["account_fx"][accounts] if v >= 0)
    if collateral_method == "scenario":
        m = np.isin(p["coll_account"], accounts)
        fs |= set(int(v) for v in p["coll_factor"][m] if v >= 0)
        fs |= set(int(v) for v in p["coll_fx"][m] if v >= 0)
    return sorted(f for f in fs if p["factor_kind"][f] == 0)


def liquidity_addon(E, xb, half_spread, impact, adv):
    """§4.1 LQ = sum_f |E_f| (s_f + k_f sqrt(|E_f| X_b / A_f)), the sqrt term 0
    where A_f = 0 or k_f = 0. E [nf, ...] (delta-notionals, account currency),
    xb broadcastable to E[0] (X_b today), s, k, A [nf]."""
    E = np.abs(np.asarray(E, dtype=np.float64))
    sh = (-1,) + (1,) * (E.ndim - 1)
    s = np.asarray(half_spread, dtype=np.float64).reshape(sh)
    k = np.asarray(impact, dtype=np.float64).reshape(sh)
    A = np.asarray(adv, dtype=np.float64).reshape(sh)
    on = (k > 0) & (A > 0)
    root = np.sqrt(E * np.asarray(xb, dtype=np.float64) / np.where(on, A, 1.0))
    term = s + np.where(on, k * root, 0.0)
    return np.sum(E * term, axis=0)


# --------------------------------------------------------------------------
# §3 risk measures
# --------------------------------------------------------------------------

def k_of(S, alpha):
    """k = max(1, ceil((1 - alpha) S - 1e-9))."""
    return max(1, int(math.ceil((1.0 - float(alpha)) * int(S) - 1e-9)))


def risk_measure(L, measure, alpha=0.99, weights=None):
    """Floored §3 measure of a loss vector L[S] (or of each column of L[S, n])."""
    L = np.asarray(L, dtype=np.float64)
    one = L.ndim == 1
    L2 = L[:, None] if one else L
    if measure == "worst":
        w = np.ones(L2.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        v = np.max(w[:, None] * L2, axis=0)
    else:
        k = k_of(L2.shape[0], alpha)
        top = -np.sort(-L2, axis=0)[:k]
        v = top[k - 1] if measure == "var" else top.sum(axis=0) / k
    v = np.maximum(v, 0.0)
    return float(v[0]) if one else v


def _topk_mask(LA, k, xp):
    """Boolean [S, n]: the k largest of each column, ties -> lower index."""
    kth = -xp.partition(-LA, k - 1, axis=0)[k - 1]          # l_(k) per column
    gt = LA > kth
    eq = LA == kth
    need = k - gt.sum(axis=0)
    sel = gt | (eq & (xp.cumsum(eq, axis=0) <= need))
    return sel, kth


def _set_measures(LA, LAG, measure, alpha, weights, var_attr, xp):
    """Raw (unfloored) account measure [A], attribution [A, G] and raw silo
    measures [A, G] of one set, losses LA [S, A], LAG [S, A, G]."""
    S = LA.shape[0]
    if measure == "worst":
        w = xp.asarray(weights)
        wl = w[:, None] * LA
        s_star = xp.argmax(wl, axis=0)                       # first on ties
        cols = xp.arange(LA.shape[1])
        raw = wl[s_star, cols]
        attr = w[s_star][:, None] * LAG[s_star, cols, :]
        silo = xp.max(w[:, None, None] * LAG, axis=0)
        return raw, attr, silo
    if measure not in ("es", "var"):
        raise ValueError("unknown measure %r" % measure)
    k = k_of(S, alpha)
    sel, kth = _topk_mask(LA, k, xp)
    if measure == "var":
        raw = kth
        if var_attr == "kth":
            # the k-th scenario of the stable descending order
            # = the selected scenario with value l_(k) and the highest index
            last = sel & (LA == kth)
            cs = xp.cumsum(last, axis=0)
            pick = last & (cs == last.sum(axis=0))
            attr = xp.einsum("sa,sag->ag", pick.astype(xp.float64), LAG)
        else:
            attr = xp.einsum("sa,sag->ag", sel.astype(xp.float64), LAG) / k
        silo = -xp.partition(-LAG, k - 1, axis=0)[k - 1]
    else:
        raw = xp.sum(xp.where(sel, LA, 0.0), axis=0) / k
        attr = xp.einsum("sa,sag->ag", sel.astype(xp.float64), LAG) / k
        top = -xp.partition(-LAG, k - 1, axis=0)[:k]
        silo = top.sum(axis=0) / k
    return raw, attr, silo


# --------------------------------------------------------------------------
# §1-§4 driver
# --------------------------------------------------------------------------

def moved_factors(p, collateral_method="schedule"):
    """§1: the factor rows the run moves, ascending: underlyings and vol factors of
    the instruments held with a non-zero net quantity, the /fx factors of their
    settlement currencies and of every account's currency; with collateral_method
    'scenario' also the factors of the collateral holdings (non-zero quantity) and
    the /fx factors of their currencies."""
    p = _v1_defaults(p)
    _, ins, q = _net_positions(p)
    held = ins[q != 0]
    used = set(p["underlying"][held].tolist()) | set(int(v) for v in p["vol_factor"][held] if v >= 0)
    used |= set(int(v) for v in p["instrument_fx"][held] if v >= 0)
    used |= set(int(v) for v in p["account_fx"] if v >= 0)
    if collateral_method == "scenario":
        hq = p["coll_quantity"] != 0
        used |= set(int(v) for v in p["coll_factor"][hq] if v >= 0)
        used |= set(int(v) for v in p["coll_fx"][hq] if v >= 0)
    return sorted(used)


def _net_positions(p):
    I = len(p["instrument_id"])
    key = p["pos_account"] * I + p["pos_instrument"]
    uk, inv = np.unique(key, return_inverse=True)
    q = np.zeros(len(uk))
    np.add.at(q, inv, p["pos_quantity"])
    return uk // I, uk % I, q


def build_sets(p, scen, cfg, results_scen=None, stressed_empty_ok=False):
    """The scenario sets in run order: list of dicts with name, shocks[S,F]
    (portfolio columns), labels, measure, confidence, weights, enters_max (False
    only for stressed_period with apc.stressed_weight > 0: it is blended into the
    historical measure instead, §1 / D2). stressed_empty_ok: a stressed_period
    with no window end in the range is a set of 0 scenarios (a backtest day,
    D4: it measures 0) instead of an error."""
    names = p["factor_name"]
    F = len(names)
    h = int(cfg["horizon_days"])
    alpha = float(cfg["confidence"])
    results_scen = results_scen or {}
    from_results_all = cfg["reference.shocks_from_results"] == "all"
    sets = []

    used = moved_factors(p, cfg["collateral.method"])

    stressed = bool(cfg["apc.stressed_start"])
    need_hist = cfg["historical.enabled"] or (cfg["montecarlo.enabled"] and cfg["montecarlo.source"] == "numpy") \
        or stressed
    window = None
    hset = None
    hist = scen["history"]
    if need_hist and (hist is not None or not from_results_all):
        if hist is None:
            raise ValueError("%s: /history is required for historical / Monte Carlo / stressed sets" % scen["path"])
        col = {n: j for j, n in enumerate(hist["factor"])}
        missing = [names[f] for f in used if names[f] not in col]
        if missing:
            raise ValueError("%s: /history has no column for factor %s" % (scen["path"], missing[0]))
        R = hist["return"][:, [col[names[f]] for f in used]]
        if cfg["historical.enabled"]:
            sh, lab = historical_set(R, hist["date"], h, cfg["historical.ewma_lambda"],
                                     cfg["historical.apc_floor"], cfg["historical.filtered"],
                                     cfg["historical.lookback"])
            x = np.zeros((sh.shape[0], F))
            x[:, used] = sh
            hset = {"name": "historical", "shocks": x, "labels": lab}
        window = filtered_window(R, cfg["historical.ewma_lambda"], cfg["historical.apc_floor"],
                                 cfg["historical.filtered"], cfg["historical.lookback"])

    def from_results(name):
        if name not in results_scen:
            return None
        r = results_scen[name]
        return {"name": name, "shocks": align_shocks(r["factor"], r["shock"], names), "labels": r["label"]}

    if cfg["historical.enabled"]:
        s = from_results("historical") if from_results_all else None
        if s is None:
            s = hset
        if s is None:
            raise ValueError("no history and no saved historical shocks")
        s.update(measure=str(cfg["historical.measure"]).lower(), confidence=alpha, weights=None)
        sets.append(s)

    if cfg["montecarlo.enabled"] and cfg["montecarlo.source"] != "none":
        kappa = float(cfg["montecarlo.correlation_stress"])
        mc_names = ["montecarlo"] + (["montecarlo_stressed"] if kappa > 0 else [])
        if cfg["montecarlo.source"] == "numpy":
            gen = numpy_montecarlo(window, np.arange(len(used)), len(used), h, cfg["montecarlo.scenarios"],
                                   cfg["montecarlo.distribution"], cfg["montecarlo.dof"],
                                   cfg["montecarlo.seed"], kappa)
            got = {}
            for n_, xs in gen.items():
                x = np.zeros((xs.shape[0], F))
                x[:, used] = xs
                got[n_] = {"name": n_, "shocks": x, "labels": [str(i) for i in range(xs.shape[0])]}
        else:
            got = {n_: from_results(n_) for n_ in mc_names}
        for n_ in mc_names:
            s = got.get(n_)
            if s is None:
                print("xm_reference: warning: no shocks for set %r (give --results written with "
                      "--save-scenarios); set skipped" % n_, file=sys.stderr)
                continue
            s.update(measure=str(cfg["montecarlo.measure"]).lower(), confidence=alpha, weights=None)
            sets.append(s)

    if stressed:
        # §1 / D1: raw h-day sums at every window end dated in [start, end], all of
        # /history (not limited by the lookback); the historical set's measure
        start, end = cfg["apc.stressed_start"], cfg["apc.stressed_end"]
        sh, lab = stressed_period_set(R, hist["date"], h, start, end)
        if sh.shape[0] == 0 and not stressed_empty_ok:
            raise ValueError("%s: no window end of /history dated in [apc.stressed_start, apc.stressed_end] = "
                             "[%s, %s]" % (scen["path"], start, end))
        x = np.zeros((sh.shape[0], F))
        x[:, used] = sh
        sets.append({"name": "stressed_period", "shocks": x, "labels": lab,
                     "measure": str(cfg["historical.measure"]).lower(), "confidence": alpha, "weights": None,
                     "enters_max": not float(cfg["apc.stressed_weight"]) > 0})

    for name in sorted(scen["sets"]):
        rs = scen["sets"][name]
        s = from_results(name) if from_results_all else None
        if s is None:
            s = {"name": name, "shocks": align_shocks(rs["factor"], rs["shock"], names), "labels": rs["label"]}
        s.update(measure=rs["measure"], confidence=rs["confidence"] if rs["confidence"] is not None else alpha,
                 weights=rs["weight"])
        sets.append(s)
    for s in sets:
        s.setdefault("enters_max", True)
        if s["shocks"].shape[0] < 1 and not (s["name"] == "stressed_period" and stressed_empty_ok):
            raise ValueError("set %r has no scenarios" % s["name"])
        if s["measure"] not in ("es", "var", "worst"):
            raise ValueError("set %r: unknown measure %r" % (s["name"], s["measure"]))
    return sets


def compute(portfolio_path, scenarios_path, results_path=None, config=None, xp=np,
            keep_pnl=False, portfolio=None, scenarios=None, sets=None):
    """Run §1-§4, §4.1 and §6. Returns a dict of numpy arrays keyed like /margin/*
    plus accounts, silos, sets, scale, core (U_a), silo_core (S_{a,g}),
    cross_margined (C_a), minimum_by_silo, n_scenarios (and pnl / pnl_silo per set
    when keep_pnl; with `scenario` collateral they include the holdings)."""
    cfg = make_config(config)
    be = _Backend(xp)
    p = portfolio if portfolio is not None else read_portfolio(portfolio_path)
    p = _v1_defaults(p)
    method = cfg["collateral.method"]
    beta = float(cfg["apc.buffer"])
    H = len(p["coll_account"])
    scen_coll = method == "scenario" and H > 0
    if scen_coll and np.any(p["coll_silo"] < 0):
        j = int(np.nonzero(p["coll_silo"] < 0)[0][0])
        raise ValueError("%s: /collateral/silo[%d] = %d: with collateral.method = scenario every holding must "
                         "name a silo" % (p.get("path", "portfolio"), j, int(p["coll_silo"][j])))
    if sets is None:
        scen = scenarios if scenarios is not None else read_scenarios(scenarios_path)
        rscen = read_results_scenarios(results_path) if results_path else {}
        sets = build_sets(p, scen, cfg, rscen)
    A, G, K = len(p["account_id"]), len(p["silo_name"]), len(sets)
    h = int(cfg["horizon_days"])
    budget = int(cfg["reference.memory_budget"])
    var_attr = cfg["reference.var_attribution"]
    lv = np.asarray(p["factor_level"], dtype=np.float64)

    acc, ins, q = _net_positions(p)
    afx = p["account_fx"]                                   # account currency's /fx row, -1 reporting
    xb0 = np.where(afx >= 0, lv[np.where(afx >= 0, afx, 0)], 1.0)   # X_b today
    gross = np.zeros(A)                                     # G_a of §5
    by_set = np.zeros((A, K))
    raw_set = np.zeros((A, K))
    attr_set = np.zeros((K, A, G))
    silo_set = np.zeros((K, A, G))
    maxabs = np.zeros(A)
    lq_acc = np.zeros(A)                                    # LQ_a, §4.1
    lq_silo = np.zeros((A, G))                              # LQ_{a,g}
    pnl = [np.zeros((s["shocks"].shape[0], A)) for s in sets] if keep_pnl else None
    pnl_silo = [np.zeros((s["shocks"].shape[0], A, G)) for s in sets] if keep_pnl else None
    # §4.1 needs a factor's E_f only where s_f or k_f is not 0 (LQ = 0 exactly otherwise)
    liq_on = (p["factor_kind"] == 0) & ((p["factor_half_spread"] > 0) | (p["factor_impact"] > 0))
    u = LIQUIDITY_BUMP

    S_max = max(s["shocks"].shape[0] for s in sets) if sets else 0
    # account blocks so that L[S, Ab, G+1] and its temporaries fit the budget
    per_acc = max(1, S_max * (G + 1) * 8 * 4)
    Ab = max(1, min(A, int(cfg["reference.loss_budget"]) // per_acc)) if A else 1
    dev_shocks = [None] * K
    if Ab >= A:
        dev_shocks = [xp.asarray(s["shocks"]) for s in sets]

    def positions_matrix(gq, gr, gj, nrows, ncols):
        if _np_sparse is not None:
            P = _np_sparse.csr_matrix((gq, (gr, gj)), shape=(nrows, ncols))
            if xp is not np:
                P = be.sparse.csr_matrix(P)
        elif xp is not np:
            P = be.sparse.coo_matrix((xp.asarray(gq), (xp.asarray(gr), xp.asarray(gj))),
                                     shape=(nrows, ncols)).tocsr()
        else:
            P = (gr, gj, gq)
        return P

    def apply(P, ell, nrows):
        """[sc, ncols] losses -> [sc, nrows] by the positions matrix P."""
        if not isinstance(P, tuple):
            return (P @ ell.T).T
        lg = np.zeros((ell.shape[0], nrows))
        np.add.at(lg.T, P[0], (ell[:, P[1]] * P[2]).T)
        return lg

    for a0 in range(0, A, Ab):
        a1 = min(A, a0 + Ab)
        na = a1 - a0
        m = (acc >= a0) & (acc < a1)
        b_acc, b_ins, b_q = acc[m] - a0, ins[m], q[m]
        u_ins, j = np.unique(b_ins, return_inverse=True)
        nI = len(u_ins)
        groups = []                                         # (account currency row, positions matrix)
        instr = instr0 = None
        if nI:
            instr = _Instruments(p, u_ins, h, cfg["pricing.vol_floor"], cfg["pricing.vol_term_power"], be)
            rows = b_acc * G + p["silo"][b_ins]
            b_fx = afx[b_acc + a0]
            value = ~instr.settled
            for bfx in sorted(set(b_fx.tolist())):
                gm = b_fx == bfx
                # §5 G_a: |q| (|V0| [value type] + N) R_{c->b}(0)
                r0 = instr.rates_today(bfx)
                np.add.at(gross, b_acc[gm] + a0, np.abs(b_q[gm]) *
                          (np.abs(instr.V0[j[gm]]) * value[j[gm]] + instr.notional[j[gm]]) * r0[j[gm]])
                # positions matrix [accounts x silos, instruments] of the accounts in
                # this currency (pairs already netted)
                groups.append((int(bfx), positions_matrix(b_q[gm], rows[gm], j[gm], na * G, nI)))
        # collateral holdings of the block's accounts
        hidx = np.nonzero((p["coll_account"] >= a0) & (p["coll_account"] < a1))[0]
        hold = _Holdings(p, hidx, a0, G) if len(hidx) else None
        if hold is not None:
            # reading: G_a counts each holding as a spot, |V| + N = 2 |CV_j|
            np.add.at(gross, p["coll_account"][hidx], 2.0 * np.abs(hold.values_today()))
        hold_in_losses = hold if scen_coll else None
        Ph = None
        if hold_in_losses is not None:
            Ph = positions_matrix(np.ones(hold.n), hold.rows, np.arange(hold.n), na * G, hold.n)

        def block_losses(xc, instr_):
            """[sc, na*G] losses of the block's accounts by silo, holdings included
            with `scenario` collateral."""
            lag = None
            for bfx, P in groups:
                ell = instr_.loss(xc, bfx)                   # [sc, nI], in currency b
                lg = apply(P, ell, na * G)
                # each row belongs to one currency group: the others add exact zeros
                lag = lg if lag is None else lag + lg
            if Ph is not None:
                lh = apply(Ph, xp.asarray(hold_in_losses.loss(be.to_host(xc))), na * G)
                lag = lh if lag is None else lag + lh
            return lag

        # §4.1: central differences at +-u on each price factor the block depends on,
        # T' = T (horizon 0) and no funding (Phi = f N h / 252 = 0 at h = 0), vol not moved
        lf = [f for f in liquidity_factors(p, u_ins, np.arange(a0, a1), method) if liq_on[f]]
        if lf and (nI or Ph is not None):
            nf = len(lf)
            Y = np.zeros((2 * nf, len(p["factor_name"])))
            for r, f in enumerate(lf):
                Y[2 * r, f] = -u
                Y[2 * r + 1, f] = +u
            if nI:
                instr0 = _Instruments(p, u_ins, 0, cfg["pricing.vol_floor"], cfg["pricing.vol_term_power"], be)
            lagu = block_losses(xp.asarray(Y), instr0)
            lagu = be.to_host(xp.asarray(lagu)).reshape(2 * nf, na, G)
            Lm, Lp = lagu[0::2], lagu[1::2]                      # L_J(-u e_f), L_J(+u e_f): [nf, na, G]
            Eg = (Lm - Lp) / (2.0 * u)                           # E_f of each silo's positions
            Ea = (Lm.sum(axis=2) - Lp.sum(axis=2)) / (2.0 * u)   # E_f of the whole account
            s_, k_, A_ = (p["factor_" + c][lf] for c in ("half_spread", "impact", "adv"))
            lq_acc[a0:a1] = liquidity_addon(Ea, xb0[a0:a1][None, :], s_, k_, A_)
            lq_silo[a0:a1] = liquidity_addon(Eg, xb0[a0:a1][None, :, None], s_, k_, A_)

        # scenario chunk so that ~16 temporaries of [Sc, nI] fit the budget
        Sc = max(1, min(budget // max(1, nI * 8 * 16), int(cfg["reference.chunk_elems"]) // max(1, nI)))
        for kx, s in enumerate(sets):
            S = s["shocks"].shape[0]
            if S == 0:
                # an empty stressed_period on a backtest day (D4): measure 0 for
                # the account and every silo, no attribution
                continue
            LAG = xp.zeros((S, na, G))
            if nI or Ph is not None:
                X = dev_shocks[kx] if dev_shocks[kx] is not None else None
                for s0 in range(0, S, Sc):
                    s1 = min(S, s0 + Sc)
                    xc = X[s0:s1] if X is not None else xp.asarray(s["shocks"][s0:s1])
                    LAG[s0:s1] = xp.asarray(block_losses(xc, instr)).reshape(s1 - s0, na, G)
            LA = LAG.sum(axis=2)
            w = s["weights"]
            w = xp.asarray(np.ones(S) if w is None else np.asarray(w, dtype=np.float64))
            raw, attr, silo = _set_measures(LA, LAG, s["measure"], s["confidence"], w, var_attr, xp)
            raw_set[a0:a1, kx] = be.to_host(raw)
            attr_set[kx, a0:a1] = be.to_host(attr)
            silo_set[kx, a0:a1] = be.to_host(silo)
            maxabs[a0:a1] = np.maximum(maxabs[a0:a1], be.to_host(xp.max(xp.abs(LA), axis=0)))
            if keep_pnl:
                pnl[kx][:, a0:a1] = be.to_host(LA)
                pnl_silo[kx][:, a0:a1] = be.to_host(LAG)
            del LAG, LA

    # §4: cores
    by_set = np.maximum(raw_set, 0.0)
    silo_meas = np.maximum(silo_set, 0.0)                     # each set's floored silo measures [K, A, G]
    enters = np.array([bool(s.get("enters_max", True)) for s in sets], dtype=bool)
    names_k = [s["name"] for s in sets]
    w_sp = float(cfg["apc.stressed_weight"])
    if w_sp > 0 and "historical" in names_k and "stressed_period" in names_k:
        # §1 / D2: the historical measure becomes (1 - w) R_hist + w R_sp (each already
        # floored) for the account and each silo; attribution likewise. An empty
        # stressed_period (a backtest day before the range, D4): R_hist alone.
        ih, isp = names_k.index("historical"), names_k.index("stressed_period")
        if sets[isp]["shocks"].shape[0] > 0:
            by_set[:, ih] = (1.0 - w_sp) * by_set[:, ih] + w_sp * by_set[:, isp]
            silo_meas[ih] = (1.0 - w_sp) * silo_meas[ih] + w_sp * silo_meas[isp]
            attr_set[ih] = (1.0 - w_sp) * attr_set[ih] + w_sp * attr_set[isp]
    if K and enters.any():
        # the max of §4 over the sets that enter it (stressed_period does not when w > 0)
        binding = np.argmax(np.where(enters[None, :], by_set, -np.inf), axis=1)   # first on ties
        core = by_set[np.arange(A), binding]                  # U_a
        silo_core = np.max(silo_meas[enters], axis=0)         # S_{a,g} [A, G]
        attribution = attr_set[binding, np.arange(A), :]
    else:
        binding = np.zeros(A, dtype=np.int64)
        core = np.zeros(A)
        silo_core = np.zeros((A, G))
        attribution = np.zeros((A, G))
    # §4 with the add-ons of §4.1
    unified = core + lq_acc                                   # Uni_a
    by_silo = silo_core + lq_silo                             # S_{a,g} + LQ_{a,g}
    siloed = by_silo.sum(axis=1)                              # Sil_a
    div = np.maximum(0.0, siloed - unified)
    c = float(cfg["cross_margin.offset_cap"])
    eligible = p["cross_margin"] == 1
    cross = np.where(eligible, unified + (1.0 - c) * div, siloed)
    # minimum: |net q| * multiplier over the option types (option, future_option,
    # american_option, inverse_option), in the reporting currency, / X_b today;
    # per silo over that silo's options
    isopt = np.isin(p["type"][ins], OPTION_TYPES)
    mpc = float(cfg["minimum.per_contract"])
    minimum = np.zeros(A)
    np.add.at(minimum, acc[isopt], np.abs(q[isopt]) * p["multiplier"][ins[isopt]])
    minimum = minimum * mpc / xb0
    min_silo = np.zeros((A, G))
    np.add.at(min_silo, (acc[isopt], p["silo"][ins[isopt]]), np.abs(q[isopt]) * p["multiplier"][ins[isopt]])
    min_silo = min_silo * mpc / xb0[:, None]
    req_silo = np.maximum((1.0 + beta) * by_silo, min_silo)  # M_{a,g}, every account
    requirement = np.where(eligible, np.maximum((1.0 + beta) * cross, minimum), req_silo.sum(axis=1))
    binds = np.where(eligible, (minimum >= (1.0 + beta) * cross) & (minimum > 0),
                     np.any((min_silo >= (1.0 + beta) * by_silo) & (min_silo > 0), axis=1))
    hedge = np.where(eligible, c * div, 0.0)
    scale = maxabs + minimum
    scale = np.where(scale > 0, scale, 1.0)
    out = {
        "accounts": list(p["account_id"]), "silos": list(p["silo_name"]),
        "sets": [s["name"] for s in sets],
        "n_scenarios": np.array([s["shocks"].shape[0] for s in sets], dtype=np.int64),
        "requirement": requirement, "unified": unified, "siloed": siloed,
        "diversification": div, "minimum": minimum, "by_set": by_set, "by_silo": by_silo,
        "attribution": attribution, "binding_set": binding.astype(np.int64),
        "cross_margined": cross, "scale": scale, "n_positions": int(len(p["pos_quantity"])),
        "enters_max": enters,
        # version 2 / §5
        "format_version": int(p["format_version"]), "currency": list(p["account_currency"]),
        "reporting_currency": p["currency"], "eligible": eligible,
        "gross_loss": maxabs, "gross_value": gross,
        # §4 / §4.1 (version 2)
        "core": core, "silo_core": silo_core, "liquidity": lq_acc, "liquidity_by_silo": lq_silo,
        "requirement_by_silo": req_silo, "minimum_by_silo": min_silo,
        "minimum_binds": binds.astype(np.int64), "hedge_credit": hedge, "buffer": beta,
        "collateral_method": method, "collateral_table": bool(p["collateral_table"]) or H > 0,
    }
    # §6
    if H:
        cv, acv = collateral_values(p, cfg)
        ha, hs = p["coll_account"], p["coll_silo"]
        cvalue = np.zeros(A)
        np.add.at(cvalue, ha, cv)
        cadj = np.zeros(A)
        np.add.at(cadj, ha, acv)
        pool = np.zeros((A, G))                                # ACV posted to each silo
        np.add.at(pool, (ha[hs >= 0], hs[hs >= 0]), acv[hs >= 0])
        free = np.zeros(A)                                     # ACV posted to no silo
        np.add.at(free, ha[hs < 0], acv[hs < 0])
        e_uni = cadj - requirement                             # E_a (eligible)
        e_silo = pool - req_silo                               # E_{a,g}
        call_siloed = np.sum(np.maximum(0.0, -e_silo), axis=1)
        call = np.where(eligible, np.maximum(0.0, -e_uni), call_siloed)
        excess = np.where(eligible, e_uni, np.where(call_siloed > 0, -call_siloed, e_silo.sum(axis=1) + free))
        out.update({"collateral_value": cvalue, "collateral": cadj, "excess": excess, "call": call,
                    "call_siloed": call_siloed, "holding_value": cv, "holding_adjusted": acv,
                    "excess_by_silo": e_silo})
    if keep_pnl:
        out["pnl"] = {s["name"]: pnl[i] for i, s in enumerate(sets)}
        out["pnl_silo"] = {s["name"]: pnl_silo[i] for i, s in enumerate(sets)}
        out["labels"] = {s["name"]: s["labels"] for s in sets}
    return out


# --------------------------------------------------------------------------
# comparison with an engine results file
# --------------------------------------------------------------------------

MARGIN_DATASETS = ("requirement", "unified", "siloed", "diversification", "minimum",
                   "by_set", "by_silo", "attribution", "binding_set",
                   # version 2: §4 and §4.1
                   "liquidity", "liquidity_by_silo", "requirement_by_silo", "hedge_credit", "minimum_binds")
# §6: only when the portfolio has /collateral (rows)
COLLATERAL_DATASETS = ("collateral_value", "collateral", "excess", "call", "call_siloed")
FLAG_DATASETS = ("binding_set", "minimum_binds")      # integers: compared as choices, ties allowed


def tolerance_scale(ref, precision="double", rtol=1e-9):
    """Per-account pieces of the agreement bound. Returns (rtol_eff, scale_fn):
    |got - x| <= rtol_eff * scale_fn(x) with x the reference's values [A] or [A, n].
    Version-1 book in double: the version-1 rule (rtol of Lambda_a + Min_a, as
    before); version 2 in double (§5): rtol * max(|x|, Lambda_a); single (§5, any
    version): 1e-4 M_a + 1e-6 G_a = 1e-4 (M_a + 0.01 G_a). (Version 2 in double:
    Lambda_a floored at 1e-5 G_a, below.)"""
    A = len(ref["accounts"])
    if precision == "single":
        base = np.abs(ref["requirement"]) + 0.01 * ref.get("gross_value", np.zeros(A))
        base = np.where(base > 0, base, 1.0)
        return 1e-4, lambda x: base[:, None] if np.ndim(x) == 2 else base
    if ref.get("format_version", 1) >= 2:
        # Lambda_a floored at 1e-5 G_a: an account whose losses are 0 but for rounding
        # (a BTC account holding only BTC spot: m S0/X_BTC - m S0 e^x/(X_BTC e^x)) has a
        # Lambda_a of rounding noise (1e-18 BTC seen) that no two implementations share;
        # the floor makes its bound 1e-14 G_a, still far below any real error
        lam = np.maximum(ref["gross_loss"], 1e-5 * ref.get("gross_value", np.zeros(A)))

        def sc(x):
            x = np.abs(np.asarray(x, dtype=np.float64))
            v = np.maximum(x, lam[:, None] if x.ndim == 2 else lam)
            return np.where(v > 0, v, 1.0)
        return rtol, sc
    scale = ref["scale"]
    return rtol, lambda x: scale[:, None] if np.ndim(x) == 2 else scale


def minimum_binds_range(ref, tol_of):
    """(lo, hi) [A] int: minimum_binds may be anything in [lo, hi] -- the minimum
    and the (buffered) margin it is compared with are equal within the bound
    tol_of(x) of §5 where lo < hi."""
    b = 1.0 + float(ref.get("buffer", 0.0))
    elig = np.asarray(ref["eligible"], dtype=bool)
    mn, cm = ref["minimum"], b * ref["cross_margined"]
    tm = tol_of(mn)
    lo_e = (mn > cm + tm) & (mn > tm)
    hi_e = (mn >= cm - tm) & (mn > 0)
    ms, bs = ref["minimum_by_silo"], b * ref["by_silo"]
    ts = tol_of(ms)
    lo_s = np.any((ms > bs + ts) & (ms > ts), axis=1)
    hi_s = np.any((ms >= bs - ts) & (ms > 0), axis=1)
    lo = np.where(elig, lo_e, lo_s).astype(np.int64)
    hi = np.where(elig, hi_e, hi_s).astype(np.int64)
    return lo, hi


def compare(ref, results_path, rtol=1e-9, out=sys.stdout, precision=None, rows=None):
    """Compare ref (from compute) with a results file's /margin/*: every dataset of
    MARGIN_DATASETS, and COLLATERAL_DATASETS when the book has collateral (they
    must be absent when it has no /collateral table). Returns
    (ok, {dataset: max difference / scale}; 'rtol': the bound those are held to;
    binding_set and minimum_binds: the number of accounts that differ beyond a tie).
    precision: 'double' or 'single' (default: the results file's `precision`
    attribute, else double) picks the §5 bound (tolerance_scale). rows: {dataset:
    boolean [A]}: compare that dataset on those accounts only."""
    ok = True
    rep = {}
    rows = rows or {}
    with h5py.File(results_path, "r") as f:
        if precision is None:
            precision = _to_str(f.attrs["precision"]).strip().lower() if "precision" in f.attrs else "double"
        rt, scale_of = tolerance_scale(ref, precision, rtol)
        rep["rtol"] = rt
        acc = _strings(f["account"]) if "account" in f else ref["accounts"]
        sets = _strings(f["set"]) if "set" in f else ref["sets"]
        if acc != ref["accounts"]:
            print("account list differs from the portfolio's", file=out)
            return False, rep
        if sets != ref["sets"]:
            print("set list differs: results %s, reference %s" % (sets, ref["sets"]), file=out)
            ok = False
        g = f["margin"]
        names = list(MARGIN_DATASETS)
        if "collateral_value" in ref:
            names += list(COLLATERAL_DATASETS)
        elif not ref.get("collateral_table", False):
            extra = [n for n in COLLATERAL_DATASETS if n in g]
            if extra:
                print("%-16s in the results but the book has no /collateral FAIL" % ",".join(extra), file=out)
                rep["collateral_absent"] = False
                ok = False
        for name in names:
            if name not in g:
                print("%-16s missing in results FAIL" % name, file=out)
                rep[name] = float("inf") if name not in FLAG_DATASETS else -1
                ok = False
                continue
            got = np.asarray(g[name][()])
            if name in FLAG_DATASETS:
                continue
            exp = ref[name]
            if name == "by_set" and sets != ref["sets"]:
                common = [s for s in sets if s in ref["sets"]]
                got = got[:, [sets.index(s) for s in common]]
                exp = exp[:, [ref["sets"].index(s) for s in common]]
            if got.shape != exp.shape:
                print("%-16s shape %s, expected %s FAIL" % (name, got.shape, exp.shape), file=out)
                rep[name] = float("inf")
                ok = False
                continue
            d = np.abs(got.astype(np.float64) - exp)
            d = d / scale_of(exp)
            d = np.where(np.isnan(d), np.inf, d)
            note = ""
            if name in rows:
                m = np.asarray(rows[name], dtype=bool)
                d = np.where(m[:, None] if d.ndim == 2 else m, d, 0.0)
                note = " (%d of %d accounts)" % (int(m.sum()), len(m))
            worst = float(d.max()) if d.size else 0.0
            rep[name] = worst
            where = np.unravel_index(int(np.argmax(d)), d.shape) if d.size else ()
            flag = "FAIL" if worst > rt else "ok"
            ok &= worst <= rt
            detail = ""
            if worst > rt:
                detail = "  at %s: got %.17g expected %.17g" % (where, float(got[where]), float(exp[where]))
            print("%-16s max rel diff %.3e %s%s%s" % (name, worst, flag, note, detail), file=out)
        if "binding_set" in g:
            got = np.asarray(g["binding_set"][()]).astype(np.int64)
            bad = 0
            if sets == ref["sets"] and got.shape == ref["binding_set"].shape:
                core = ref.get("core", ref["unified"])
                tol = rt * scale_of(core)
                enters = ref.get("enters_max", np.ones(len(sets), dtype=bool))
                for a in np.nonzero(got != ref["binding_set"])[0]:
                    # a different choice is only wrong if it is not a tie within the bound
                    # (and never a set outside the max: stressed_period with w > 0)
                    if not (0 <= got[a] < len(sets)) or not enters[got[a]] or \
                       abs(ref["by_set"][a, got[a]] - core[a]) > tol[a]:
                        bad += 1
            else:
                bad = -1
            rep["binding_set"] = bad
            flag = "ok" if bad == 0 else "FAIL"
            ok &= bad == 0
            if bad < 0:
                print("%-16s not compared (set lists or shapes differ) FAIL" % "binding_set", file=out)
            else:
                print("%-16s %d accounts differ beyond ties %s" % ("binding_set", bad, flag), file=out)
        if "minimum_binds" in g and "minimum_binds" in ref:
            got = np.asarray(g["minimum_binds"][()]).astype(np.int64).reshape(-1)
            if got.shape != ref["minimum_binds"].shape:
                bad = -1
            else:
                lo, hi = minimum_binds_range(ref, lambda x: rt * scale_of(x))
                badm = (got < lo) | (got > hi) | ((got != 0) & (got != 1))
                if "minimum_binds" in rows:
                    badm &= np.asarray(rows["minimum_binds"], dtype=bool)
                bad = int(badm.sum())
            rep["minimum_binds"] = bad
            ok &= bad == 0
            if bad < 0:
                print("%-16s shape %s, expected %s FAIL" % ("minimum_binds", got.shape,
                                                              ref["minimum_binds"].shape), file=out)
            else:
                print("%-16s %d accounts differ beyond ties %s%s" % (
                    "minimum_binds", bad, "ok" if bad == 0 else "FAIL",
                    "" if bad == 0 else "  at %s: got %s expected %s" % (
                        np.nonzero(badm)[0][:8].tolist(), got[badm][:8].tolist(),
                        ref["minimum_binds"][badm][:8].tolist())), file=out)
    return ok, rep


# --------------------------------------------------------------------------
# §7 backtesting and procyclicality (FORMAT.md §4)
# --------------------------------------------------------------------------

BT_MARGINS = ("unified", "cross_margined", "siloed", "requirement")   # /stats/<margin>, /series/total_<margin>
BT_COUNTS = ("exceptions_all", "exceptions")                          # int
BT_FLOATS = ("observed_coverage", "kupiec_lr", "kupiec_p", "christoffersen_lr", "cc_lr", "cc_p")
BT_APC = ("peak_to_trough", "max_increase")                           # requirement and silo only
BT_STATS = BT_COUNTS + BT_FLOATS + ("zone",)
BT_SERIES = ("realised",) + BT_MARGINS                                # [N x A]
BT_SERIES_SILO = ("realised_by_silo", "silo_margin")                  # [N x A x G]


def backtest_days(T, horizon, min_history, days):
    """§7 / D10: the backtest days d = T-h-N+1 .. T-h (1-based rows of /history),
    N = min(days, T - h - min_history + 1), and the non-overlapping test days
    d_k = T - h - k h (k = 0, 1, ... while d_k is a backtest day), ascending.
    Fewer than 2 days or min_history < h + 1 is an error naming the keys."""
    T, h, mh, nd = int(T), int(horizon), int(min_history), int(days)
    if mh < h + 1:
        raise ValueError("backtest.min_history = %d is below horizon_days + 1 = %d" % (mh, h + 1))
    N = min(nd, T - h - mh + 1)
    if N < 2:
        raise ValueError("%d backtest days (backtest.days = %d, backtest.min_history = %d, horizon_days = %d, "
                         "%d rows of /history): at least 2 are needed" % (N, nd, mh, h, T))
    first = T - h - N + 1
    rows = np.arange(first, T - h + 1, dtype=np.int64)
    tests = []
    d = T - h
    while d >= first:
        tests.append(d)
        d -= h
    return rows, np.array(tests[::-1], dtype=np.int64)


def _xlogy(n, prob):
    """n ln(prob) with 0 ln(anything) = 0 (the 0 ln 0 = 0 of §7)."""
    return 0.0 if n == 0 else n * math.log(prob)


def chi2_sf(x, dof):
    """Survival function of chi^2 with 1 or 2 degrees of freedom, without
    cancellation: erfc(sqrt(x/2)) and exp(-x/2). x < 0 (rounding of a 0) -> 1."""
    x = max(float(x), 0.0)
    if dof == 1:
        return math.erfc(math.sqrt(0.5 * x))
    if dof == 2:
        return math.exp(-0.5 * x)
    raise ValueError("chi2_sf: dof %r" % dof)


def binom_cdf(x, n, p):
    """P(X <= x), X ~ Binomial(n, p), summed term by term in log space."""
    x, n = int(x), int(n)
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    tot = 0.0
    for k in range(x + 1):
        tot += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
    return min(tot, 1.0)


def kupiec(x, n, p):
    """§7 Kupiec proportion of failures: (LR_pof, its chi^2(1) p-value), written
    as 2[(N'-x) ln((1 - x/N')/(1 - p)) + x ln((x/N')/p)], the same sum regrouped."""
    x, n = int(x), int(n)
    if n == 0:
        return float("nan"), float("nan")
    ph = x / n
    lr = 2.0 * ((_xlogy(n - x, 1.0 - ph) - _xlogy(n - x, 1.0 - p)) + (_xlogy(x, ph) - _xlogy(x, p)))
    return lr, chi2_sf(lr, 1)


def christoffersen(e):
    """§7 Christoffersen independence LR of an exception sequence e (date order):
    n_ij = pairs (earlier, later) = (i, j); a term whose pi has an empty
    denominator is 0. Returns (LR_ind, (n00, n01, n10, n11))."""
    e = [int(bool(v)) for v in e]
    n = [[0, 0], [0, 0]]
    for a, b in zip(e[:-1], e[1:]):
        n[a][b] += 1
    n00, n01, n10, n11 = n[0][0], n[0][1], n[1][0], n[1][1]
    lr = 0.0
    tot = n00 + n01 + n10 + n11
    if tot > 0:
        pi = (n01 + n11) / tot
        lr -= 2.0 * (_xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi))
    if n00 + n01 > 0:
        pi01 = n01 / (n00 + n01)
        lr += 2.0 * (_xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01))
    if n10 + n11 > 0:
        pi11 = n11 / (n10 + n11)
        lr += 2.0 * (_xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11))
    return lr, (n00, n01, n10, n11)


def traffic_light(x, n, p):
    """§7 Basel traffic light: (zone, B) with B = P(X <= x), X ~ Bin(N', p):
    green B < 0.95, yellow B < 0.9999, red otherwise."""
    B = binom_cdf(x, n, p)
    return ("green" if B < 0.95 else "yellow" if B < 0.9999 else "red"), B


def exception_stats(e_all, test_idx, p):
    """The statistics of one exception sequence: e_all bool [N] (all backtest
    days, date order), test_idx the series indices of the N' test days.
    Returns a dict of BT_STATS (ints, floats, zone string) plus binom_cdf."""
    e_all = np.asarray(e_all, dtype=bool)
    et = e_all[np.asarray(test_idx, dtype=np.int64)]
    n, x = len(et), int(et.sum())
    lr_pof, p_pof = kupiec(x, n, p)
    lr_ind, _ = christoffersen(et)
    lr_cc = lr_pof + lr_ind
    zone, B = traffic_light(x, n, p)
    return {"exceptions_all": int(e_all.sum()), "exceptions": x, "observed_coverage": 1.0 - x / n,
            "kupiec_lr": lr_pof, "kupiec_p": p_pof, "christoffersen_lr": lr_ind, "cc_lr": lr_cc,
            "cc_p": chi2_sf(lr_cc, 2), "zone": zone, "binom_cdf": B}


def no_stats():
    """A silo in which the account holds nothing (§7 / D8): counts 0, the rest NaN, zone ""."""
    out = {k: 0 for k in BT_COUNTS}
    out.update({k: float("nan") for k in BT_FLOATS + BT_APC})
    out.update(zone="", binom_cdf=float("nan"))
    return out


def procyclicality(M, window):
    """§7 / D9 over the N days of one margin series M [N]: peak-to-trough
    max M / min M over the days with M > 0, and the largest n-day increase
    max_{0 < j' - j <= n} (M[j'] / M[j] - 1) over j with M[j] > 0 (n = window,
    in backtest days); NaN where there is no such day (pair)."""
    M = np.asarray(M, dtype=np.float64)
    pos = M > 0
    ptt = float(M[pos].max() / M[pos].min()) if pos.any() else float("nan")
    best = None
    N = len(M)
    for j in range(N):
        if not M[j] > 0:
            continue
        for j2 in range(j + 1, min(N, j + int(window) + 1)):
            v = M[j2] / M[j] - 1.0
            best = v if best is None or v > best else best
    return ptt, (float("nan") if best is None else float(best))


def silos_held(p):
    """[A, G] bool (D8): the account holds an instrument of the silo with a
    non-zero net quantity, or has a /collateral holding posted to that silo."""
    p = _v1_defaults(p)
    A, G = len(p["account_id"]), len(p["silo_name"])
    held = np.zeros((A, G), dtype=bool)
    acc, ins, q = _net_positions(p)
    nz = q != 0
    held[acc[nz], p["silo"][ins[nz]]] = True
    cs = p["coll_silo"]
    held[p["coll_account"][cs >= 0], cs[cs >= 0]] = True
    return held


def read_backtest_scenarios(path):
    """/scenarios/<set>/{shock [N x S x F], factor [F], delta [N]} of a backtest
    file written with --save-scenarios. Returns {set: dict(factor, shock, delta)}."""
    out = {}
    with h5py.File(path, "r") as f:
        if "scenarios" not in f:
            return out
        for name in f["scenarios"]:
            g = f["scenarios"][name]
            if "shock" not in g or "factor" not in g:
                continue
            factors = _strings(g["factor"])
            shock = np.asarray(g["shock"][()], dtype=np.float64)
            shock = shock.reshape(shock.shape[0], -1, len(factors))
            delta = np.asarray(g["delta"][()], dtype=np.float64) if "delta" in g else None
            out[name] = {"factor": factors, "shock": shock, "delta": delta}
    return out


def backtest_statistics(series, held, test_idx, coverage, window, flags=None):
    """/stats/* of §7 from the series of a backtest (a dict keyed like the file,
    'series/<name>'). flags: {name: bool array} overrides the exceptions
    realised > margin of 'unified', ..., 'silo', 'total/<margin>' (to take the
    engine's side of a tie). Returns {'stats/...': array or scalar}."""
    p = 1.0 - float(coverage)
    flags = flags or {}
    real = series["series/realised"]
    N, A = real.shape
    G = held.shape[1]
    out = {}

    def put(prefix, stats_list, shape, apc):
        keys = BT_STATS + (BT_APC if apc else ())
        for k in keys:
            vals = [s[k] for s in stats_list]
            if k == "zone":
                arr = np.array(vals, dtype=object).reshape(shape)
            elif k in BT_COUNTS:
                arr = np.array(vals, dtype=np.int64).reshape(shape)
            else:
                arr = np.array(vals, dtype=np.float64).reshape(shape)
            out[prefix + "/" + k] = arr if shape else arr.reshape(()).item() if k != "zone" else vals[0]

    for m in BT_MARGINS:
        M = series["series/" + m]
        E = flags.get(m, real > M)
        lst = []
        for a in range(A):
            s = exception_stats(E[:, a], test_idx, p)
            if m == "requirement":
                s["peak_to_trough"], s["max_increase"] = procyclicality(M[:, a], window)
            lst.append(s)
        put("stats/" + m, lst, (A,), m == "requirement")
        tm = series["series/total_" + m]
        Et = flags.get("total/" + m, series["series/total_realised"] > tm)
        s = exception_stats(Et, test_idx, p)
        if m == "requirement":
            s["peak_to_trough"], s["max_increase"] = procyclicality(tm, window)
        put("stats/total/" + m, [s], (), m == "requirement")
    SM, RS = series["series/silo_margin"], series["series/realised_by_silo"]
    E = flags.get("silo", RS > SM)
    lst = []
    for a in range(A):
        for g in range(G):
            if not held[a, g]:
                lst.append(no_stats())
                continue
            s = exception_stats(E[:, a, g], test_idx, p)
            s["peak_to_trough"], s["max_increase"] = procyclicality(SM[:, a, g], window)
            lst.append(s)
    put("stats/silo", lst, (A, G), True)
    return out


def backtest(portfolio_path, scenarios_path, config=None, saved_path=None, days=None,
             portfolio=None, scenarios=None, saved=None):
    """§7 backtest of today's book over the history (decisions D4-D11). Each day d
    is a run (compute) on the history truncated at rows 1..d, with
    montecarlo.scenarios = backtest.mc_scenarios (when > 0) and without the
    ready-made sets when backtest.ready_sets = false; an empty stressed_period
    measures 0 that day. The Monte Carlo shocks of each day come from a backtest
    file written with --save-scenarios (saved_path, or saved =
    read_backtest_scenarios(...)): /scenarios/<set>/shock [N x S x F].
    Returns a dict keyed like the file: 'series/...', 'stats/...', 'day',
    'realised_end', 'account', 'silo', 'set', 'attrs' (root attributes), plus
    the reference's own: 'by_set' [N, A, K], 'core' [N, A], 'scale' [N, A]
    (Lambda_a of the day: its largest |L_a| over the day's sets and the realised
    loss, floored at 1e-5 G_a), 'enters_max' [K], 'rows' (the days d),
    'test_idx', 'held' [A, G], 'xb' [A] (X_b today), 'shocks' {set: [per day
    shocks [S, F]]}."""
    cfg = make_config(config)
    if days is not None:
        cfg["backtest.days"] = int(days)
    p = portfolio if portfolio is not None else read_portfolio(portfolio_path)
    p = _v1_defaults(p)
    scen = scenarios if scenarios is not None else read_scenarios(scenarios_path)
    hist = scen["history"]
    if hist is None:
        raise ValueError("%s: a backtest needs /history" % scen.get("path", "scenarios"))
    T = hist["return"].shape[0]
    h = int(cfg["horizon_days"])
    rows, tests = backtest_days(T, h, cfg["backtest.min_history"], cfg["backtest.days"])
    N, first = len(rows), int(rows[0])
    test_idx = tests - first
    A, G = len(p["account_id"]), len(p["silo_name"])
    names = p["factor_name"]
    F = len(names)
    dcfg = dict(cfg)
    if int(cfg["backtest.mc_scenarios"]) > 0:
        dcfg["montecarlo.scenarios"] = int(cfg["backtest.mc_scenarios"])
    if saved is None:
        saved = read_backtest_scenarios(saved_path) if saved_path else {}
    mc_on = cfg["montecarlo.enabled"] and cfg["montecarlo.source"] == "results"
    if mc_on and "montecarlo" not in saved:
        raise ValueError("the Monte Carlo shocks of each day are read from a backtest file written with "
                         "--save-scenarios (or set montecarlo.enabled = false / montecarlo.source = numpy)")
    from_all = cfg["reference.shocks_from_results"] == "all"
    used = moved_factors(p, cfg["collateral.method"])
    col = {n: j for j, n in enumerate(hist["factor"])}
    missing = [names[f] for f in used if names[f] not in col]
    if missing:
        raise ValueError("%s: /history has no column for factor %s" % (scen.get("path", "scenarios"), missing[0]))
    R = hist["return"][:, [col[names[f]] for f in used]]

    ser = {k: np.zeros((N, A)) for k in BT_SERIES}
    ser["silo_margin"] = np.zeros((N, A, G))
    binding = np.zeros((N, A), dtype=np.int64)
    by_set = core = None
    gross = np.zeros((N, A))
    shocks = {}
    set_names = None
    enters = None
    for j, d in enumerate(rows.tolist()):
        scen_d = {"path": scen.get("path", "scenarios"),
                  "history": {"factor": hist["factor"], "date": hist["date"][:d], "return": hist["return"][:d]},
                  "sets": scen["sets"] if cfg["backtest.ready_sets"] else {}}
        rs = {}
        for name, sv in saved.items():
            if from_all or name in ("montecarlo", "montecarlo_stressed"):
                x = sv["shock"][j]
                keep = ~np.all(np.isnan(x), axis=1)        # a day's rows beyond its own size are NaN
                rs[name] = {"factor": sv["factor"], "shock": x[keep], "label": [str(i) for i in range(int(keep.sum()))]}
        sets = build_sets(p, scen_d, dcfg, rs, stressed_empty_ok=True)
        r = compute(None, None, None, dcfg, portfolio=p, sets=sets)
        if set_names is None:
            set_names = r["sets"]
            enters = r["enters_max"]
            by_set = np.zeros((N, A, len(set_names)))
            core = np.zeros((N, A))
        elif r["sets"] != set_names:
            raise ValueError("day %d: sets %s, the first day's %s" % (d, r["sets"], set_names))
        for s in sets:
            if s["name"] in ("historical", "stressed_period") or s["name"].startswith("montecarlo"):
                shocks.setdefault(s["name"], []).append(s["shocks"][:, used])
        for m in BT_MARGINS:
            ser[m][j] = r[m]
        ser["silo_margin"][j] = r["by_silo"]
        binding[j] = r["binding_set"]
        by_set[j] = r["by_set"]
        core[j] = r["core"]
        gross[j] = np.maximum(r["gross_loss"], 1e-5 * r["gross_value"])

    # D5: the realised loss, the raw move of rows d+1..d+h on the moved factors
    X = np.zeros((N, F))
    for j, d in enumerate(rows.tolist()):
        X[j, used] = R[d:d + h].sum(axis=0)
    rset = [{"name": "realised", "shocks": X, "labels": [hist["date"][d - 1] for d in rows.tolist()],
             "measure": "worst", "confidence": float(cfg["confidence"]), "weights": None}]
    rr = compute(None, None, None, cfg, portfolio=p, sets=rset, keep_pnl=True)
    ser["realised"] = rr["pnl"]["realised"]
    ser["realised_by_silo"] = rr["pnl_silo"]["realised"]
    gross = np.maximum(gross, np.abs(ser["realised"]))

    # D6: the book's totals in the reporting currency, X_b today
    lv = np.asarray(p["factor_level"], dtype=np.float64)
    afx = p["account_fx"]
    xb = np.where(afx >= 0, lv[np.where(afx >= 0, afx, 0)], 1.0)
    out = {"series/" + k: v for k, v in ser.items()}
    out["series/binding_set"] = binding
    for k in BT_SERIES:
        out["series/total_" + k] = (ser[k] * xb[None, :]).sum(axis=1)
    td = np.zeros(N, dtype=np.int64)
    td[test_idx] = 1
    out["series/test_day"] = td
    held = silos_held(p)
    out.update(backtest_statistics(out, held, test_idx, cfg["backtest.coverage"], cfg["backtest.apc_window"]))
    out.update({
        "day": [hist["date"][d - 1] for d in rows.tolist()],
        "realised_end": [hist["date"][d + h - 1] for d in rows.tolist()],
        "account": list(p["account_id"]), "silo": list(p["silo_name"]), "set": list(set_names),
        "currency": list(p["account_currency"]),
        "attrs": {"format": "xmargin.backtest", "format_version": 2, "backtest_days": N,
                  "test_days": len(test_idx), "target_coverage": float(cfg["backtest.coverage"]),
                  "apc_window": int(cfg["backtest.apc_window"])},
        "by_set": by_set, "core": core, "scale": gross, "enters_max": enters, "rows": rows,
        "test_idx": test_idx, "held": held, "xb": xb, "shocks": shocks, "used": used,
        "coverage": float(cfg["backtest.coverage"]), "apc_window": int(cfg["backtest.apc_window"]),
    })
    return out


def _bt_scale(ref, name):
    """The §5 scale of a backtest dataset: max(|x|, Lambda_a(d)) per account and
    day, totals sum_a Lambda_a(d) X_b."""
    lam = ref["scale"]
    if name.startswith("series/total_"):
        return (lam * ref["xb"][None, :]).sum(axis=1)
    if name in ("series/realised_by_silo", "series/silo_margin"):
        return lam[:, :, None]
    return lam


def compare_backtest(ref, path, rtol=1e-9, atol_stats=1e-12):
    """Compare a backtest reference (backtest()) with an engine backtest file,
    every dataset of FORMAT.md §4. Returns a list of (what, ok, detail).
    Series to rtol max(|x|, Lambda_a(d)); binding_set as a choice (ties within
    that bound allowed, never a set outside the max); ints exactly; stats
    floats to rtol |x| + atol_stats, NaN where NaN; zones equal. The exceptions
    behind the statistics are the engine's (its realised > its margin) where
    the reference's realised and margin tie within the bound, else the
    reference's: a tie may go either way, nothing else may. Peak-to-trough and
    the largest increase are the reference's formulas on the engine's margin
    series (which are compared themselves): a ratio of two margins is only as
    well defined as the smaller one, and §5 bounds a margin by Lambda_a, not by
    itself."""
    res = []

    def add(what, ok, detail=""):
        res.append((what, bool(ok), detail))

    with h5py.File(path, "r") as f:
        fmt = _root_attr(f, "format", "")
        add("root format = xmargin.backtest", fmt == "xmargin.backtest", repr(fmt))
        for k, v in ref["attrs"].items():
            if k == "format":
                continue
            got = _root_attr(f, k, None)
            ok = got is not None and (abs(float(np.asarray(got).reshape(-1)[0]) - float(v)) <= 1e-15 * abs(float(v)))
            add("root attribute %s = %s" % (k, v), ok, "got %r" % (got,))
        for k in ("day", "realised_end", "account", "silo", "set"):
            got = _strings(f[k]) if k in f else None
            add("/%s" % k, got == ref[k], "got %s expected %s" % (got, ref[k]) if got != ref[k] else "")
        # every group's own dimension scales (FORMAT §4: each also in every group that uses it)
        for gname in [g for g in ("series", "stats") if g in f]:
            def visit(name, obj):
                base = name.rsplit("/", 1)[-1]
                if isinstance(obj, h5py.Dataset) and base in ("day", "account", "silo", "set"):
                    got = _strings(obj)
                    add("/%s/%s (dimension scale)" % (gname, name), got == ref[base],
                        "" if got == ref[base] else "got %s" % got)
            f[gname].visititems(visit)
        sets_ok = "set" in f and _strings(f["set"]) == ref["set"]

        # series
        eng = {}
        for name in [k for k in ref if k.startswith("series/")]:
            if name not in f:
                add("/%s present" % name, False)
                continue
            got = np.asarray(f[name][()])
            exp = ref[name]
            eng[name] = got
            if got.shape != exp.shape:
                add("/%s shape" % name, False, "%s, expected %s" % (got.shape, exp.shape))
                continue
            if name == "series/test_day":
                add("/%s" % name, np.array_equal(got.astype(np.int64), exp), "got %s expected %s" %
                    (got.tolist(), exp.tolist()))
                continue
            if name == "series/binding_set":
                got = got.astype(np.int64)
                bad = []
                if not sets_ok:
                    add("/%s (sets differ: not compared)" % name, False)
                    continue
                K = len(ref["set"])
                for j, a in zip(*np.nonzero(got != exp)):
                    g = int(got[j, a])
                    tol = rtol * max(ref["core"][j, a], ref["scale"][j, a])
                    if not (0 <= g < K) or not ref["enters_max"][g] or \
                            abs(ref["by_set"][j, a, g] - ref["core"][j, a]) > tol:
                        bad.append((int(j), int(a), g, int(exp[j, a])))
                add("/%s (ties allowed)" % name, not bad, "(day, account, got, expected): %s" % bad[:6] if bad else
                    "%d ties" % int(np.sum(got != exp)))
                continue
            sc = np.maximum(np.abs(exp), _bt_scale(ref, name))
            sc = np.where(sc > 0, sc, 1.0)
            d = np.abs(got.astype(np.float64) - exp) / sc
            d = np.where(np.isnan(d), np.inf, d)
            worst = float(d.max()) if d.size else 0.0
            detail = "max rel %.2e" % worst
            if worst > rtol:
                w = np.unravel_index(int(np.argmax(d)), d.shape)
                detail += " at (day %s, %s) %s: got %.17g expected %.17g" % (
                    ref["day"][w[0]], ", ".join(str(int(i)) for i in w[1:]), name, float(got[w]), float(exp[w]))
            add("/%s within %g of max(|x|, Lambda_a)" % (name, rtol), worst <= rtol, detail)

        # the exceptions behind the statistics: the engine's side of a tie
        flags, ties = {}, 0
        if all(k in eng and eng[k].shape == ref[k].shape for k in ref if k.startswith("series/")):
            pairs = [(m, "series/realised", "series/" + m) for m in BT_MARGINS] + \
                    [("total/" + m, "series/total_realised", "series/total_" + m) for m in BT_MARGINS] + \
                    [("silo", "series/realised_by_silo", "series/silo_margin")]
            for key, rn, mn in pairs:
                e_ref = ref[rn] > ref[mn]
                e_eng = eng[rn] > eng[mn]
                sc = np.maximum(np.maximum(np.abs(ref[rn]), np.abs(ref[mn])), _bt_scale(ref, mn))
                tie = np.abs(ref[rn] - ref[mn]) <= 2 * rtol * sc
                flags[key] = np.where(tie, e_eng, e_ref)
                ties += int(np.sum(tie & (e_eng != e_ref)))
            # procyclicality from the engine's margin series (compared above to the §5 bound): a ratio
            # of a margin near 0 (a deep out-of-the-money option's silo) magnifies that bound
            # without limit, so the ratios are held to rtol on the series they were taken of
            stats = backtest_statistics(eng, ref["held"], ref["test_idx"], ref["coverage"], ref["apc_window"], flags)
        else:
            stats = {k: v for k, v in ref.items() if k.startswith("stats/")}
        add("exceptions: the engine and the reference differ only at ties", True,
            "%d ties taken the engine's way" % ties)

        # statistics
        for name in sorted(stats):
            exp = stats[name]
            stat = name.rsplit("/", 1)[1]
            if stat == "binom_cdf":
                continue
            if name not in f:
                add("/%s present" % name, False)
                continue
            raw = f[name][()]
            if stat == "zone":
                got = _strings(f[name])
                expl = list(np.asarray(exp, dtype=object).reshape(-1))
                add("/%s" % name, got == expl, "" if got == expl else "got %s expected %s" % (got, expl))
                continue
            got = np.asarray(raw)
            expa = np.asarray(exp)
            if got.shape != expa.shape:
                add("/%s shape" % name, False, "%s, expected %s" % (got.shape, expa.shape))
                continue
            if stat in BT_COUNTS:
                ok = got.dtype.kind in "iu" and np.array_equal(got.astype(np.int64), expa.astype(np.int64))
                add("/%s (int, exact)" % name, ok, "" if ok else "got %s expected %s (dtype %s)" %
                    (got.tolist(), expa.tolist(), got.dtype))
                continue
            g64, e64 = got.astype(np.float64), expa.astype(np.float64)
            nan_ok = np.array_equal(np.isnan(g64), np.isnan(e64))
            d = np.where(np.isnan(e64), 0.0, np.abs(g64 - e64) - rtol * np.abs(e64) - atol_stats)
            d = np.where(np.isnan(d), np.inf, d)
            ok = nan_ok and not np.any(d > 0)
            detail = ""
            if not ok:
                w = np.unravel_index(int(np.argmax(np.where(np.isnan(g64) != np.isnan(e64), np.inf, d))), d.shape) \
                    if d.ndim else ()
                detail = "at %s got %.17g expected %.17g" % (w, float(g64[w]), float(e64[w]))
            add("/%s" % name, ok, detail)
        # unified, cross_margined, siloed: no procyclicality (D9); absent or NaN
        for m in ("unified", "cross_margined", "siloed"):
            for k in BT_APC:
                for pre in ("stats/%s/%s" % (m, k), "stats/total/%s/%s" % (m, k)):
                    if pre in f:
                        v = np.asarray(f[pre][()], dtype=np.float64)
                        add("/%s is NaN (D9)" % pre, np.all(np.isnan(v)), str(v))
        # datasets of the file the reference does not know
        known = set(k for k in ref if k.startswith("series/")) | set(stats) | \
            set(["day", "realised_end", "account", "silo", "set"])
        extra = []

        def walk(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("scenarios/") and name not in known and \
                    name.rsplit("/", 1)[-1] not in ("day", "account", "silo", "set") and \
                    not (name.rsplit("/", 1)[-1] in BT_APC and name.split("/")[1] in ("unified", "cross_margined",
                                                                                       "siloed", "total")):
                extra.append(name)
        f.visititems(walk)
        # extras the engine writes beside FORMAT.md §4 (allowed: extra datasets are
        # ignored, FORMAT.md's general rules), checked where their meaning is plain
        if "series/currency" in f:
            got = _strings(f["series/currency"])
            add("/series/currency (an extra) == each account's currency", got == ref["currency"],
                "got %s expected %s" % (got, ref["currency"]))
        if "series/to_reporting" in f:
            got = np.asarray(f["series/to_reporting"][()], dtype=np.float64)
            ok = got.shape == ref["xb"].shape and np.allclose(got, ref["xb"], rtol=1e-15, atol=0)
            add("/series/to_reporting (an extra) == X_b today", ok, "got %s expected %s" % (got, ref["xb"]))
        extra = [n for n in extra if n not in ("series/currency", "series/to_reporting")]
        add("no dataset outside FORMAT.md §4 (but the extras checked above)", not extra, str(extra))
    return res


def save_npz(ref, path):
    keys = [k for k in ref if k not in ("pnl", "pnl_silo", "labels", "accounts", "silos", "sets",
                                        "currency", "reporting_currency")]
    np.savez(path, accounts=np.array(ref["accounts"]), silos=np.array(ref["silos"]),
             sets=np.array(ref["sets"]), currency=np.array(ref["currency"]), **{k: np.asarray(ref[k]) for k in keys})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent float64 reference of the xmargin methodology")
    ap.add_argument("--portfolio", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--results", help="results file with /scenarios/<set>/shock (Monte Carlo shocks)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="configuration, METHODOLOGY.md names (repeatable)")
    ap.add_argument("--compare", metavar="RESULTS", help="compare with this results file's /margin/*")
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--precision", choices=("double", "single"),
                    help="the bound of METHODOLOGY §5 (default: the results file's precision attribute)")
    ap.add_argument("--out", help="write the reference's arrays to this .npz")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    cfg = {}
    for kv in a.set:
        if "=" not in kv:
            ap.error("--set wants KEY=VALUE, got %r" % kv)
        k, v = kv.split("=", 1)
        k = k.strip()
        if k not in DEFAULTS:
            print("xm_reference: warning: unknown key %r" % k, file=sys.stderr)
        cfg[k] = v
    results = a.results or a.compare
    t0 = time.perf_counter()
    ref = compute(a.portfolio, a.scenarios, results, cfg)
    dt = time.perf_counter() - t0
    if a.out:
        save_npz(ref, a.out)
    if not a.quiet:
        print("sets: %s  scenarios: %s  accounts: %d  (%.3f s)" %
              (ref["sets"], ref["n_scenarios"].tolist(), len(ref["accounts"]), dt))
        if not a.compare:
            n = len(ref["accounts"])
            for i in range(min(n, 20)):
                print("%-12s req %.6f unified %.6f siloed %.6f min %.6f liquidity %.6f binding %s%s" % (
                    ref["accounts"][i], ref["requirement"][i], ref["unified"][i], ref["siloed"][i],
                    ref["minimum"][i], ref["liquidity"][i],
                    ref["sets"][ref["binding_set"][i]] if ref["sets"] else "-",
                    "  collateral %.6f call %.6f call_siloed %.6f" % (ref["collateral"][i], ref["call"][i],
                                                                       ref["call_siloed"][i])
                    if "call" in ref else ""))
            if n > 20:
                print("... %d more accounts" % (n - 20))
    if a.compare:
        ok, rep = compare(ref, a.compare, a.rtol, precision=a.precision)
        print("compare: %s (rtol %.1e)" % ("PASS" if ok else "FAIL", rep.get("rtol", a.rtol)))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
