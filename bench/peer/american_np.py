#!/usr/bin/python3
"""Bjerksund-Stensland (2002) American values, vectorised with NumPy: the
benchmark peer's pricer of american_option rows.

tests/python/xm_reference.py prices American options one scalar at a time
(xm_american.bs2002 in a Python loop, ~150 us a value): correct, but a NumPy
peer that did that would be timing the interpreter, not NumPy (the demo
backtest of 20 days took the reference 672 s, 97% of it in that loop). This
module is the same formulas as tests/python/xm_american.py (Haug 2007; the
log-space terms, the h > 0 trigger guard, the floors, Genz's BVNU with the
same Gauss-Legendre nodes), written on arrays; `values()` has the signature
of xm_reference.american_values, so the peer scripts install it with
`install(xr)`. The peer's outputs are still checked against xmargin's to
1e-6 (bench/peer/peer_backtest.py), and `self_check()` compares it with the
scalar reference on random inputs (run this file: it prints the largest
difference and exits 1 above 1e-13 of max(S, K)).
"""

import functools
import math
import os
import sys

import numpy as np
from scipy.special import log_ndtr, ndtr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))
import xm_american as xa  # noqa: E402

_NEG_INF = -np.inf
_CHUNK = 8192                  # rows of the [rows x nodes] exponentials at once (cache)
# exp() of arguments from about -708 down (results at or below the smallest
# normal number) takes NumPy's slow path, ~10x a normal one, and deep in- or
# out-of-the-money terms land there all the time: every exponential here is of
# max(x, -700) instead (a final term changes by less than 1e-304), except the
# bivariate normal's nodes, whose results below the floor are set to 0 (they
# underflow to 0 or a subnormal in the scalar version): _lexp scales a
# probability by up to e^2000, where 0 must stay 0.
_EXP_FLOOR = -700.0


def _exp(x):
    return np.exp(np.maximum(x, _EXP_FLOOR))


@functools.lru_cache(maxsize=64)
def _gl(g, r):
    """The constants of Genz's sum for one r: sum_i w_i exp((sn_i hk - hs) / (1 - sn_i^2))
    = exp([hk, hs] @ M) @ w, and asr = asin(r)."""
    asr = math.asin(r)
    sn = np.array([math.sin(asr * s / 2.0) for xi in xa._GL_X[g] for s in (1.0 - xi, 1.0 + xi)])
    w = np.repeat(np.asarray(xa._GL_W[g]), 2)
    inv = 1.0 / (1.0 - sn * sn)
    return np.stack([sn * inv, -inv]), w, asr


def _bvnu_finite(h, k, r):
    """_bvnu for finite h, k (1-d) and one r, |r| < 0.925."""
    ar = abs(r)
    g = 0 if ar < 0.3 else (1 if ar < 0.75 else 2)
    M, w, asr = _gl(g, r)
    n = h.size
    acc = np.empty(n)
    X = np.empty((min(n, _CHUNK), 2))
    for c0 in range(0, n, _CHUNK):
        c1 = min(c0 + _CHUNK, n)
        hc, kc = h[c0:c1], k[c0:c1]
        Xc = X[:c1 - c0]
        np.multiply(hc, kc, out=Xc[:, 0])
        Xc[:, 1] = 0.5 * (hc * hc + kc * kc)
        e = Xc @ M
        low = e < _EXP_FLOOR
        np.maximum(e, _EXP_FLOOR, out=e)
        np.exp(e, out=e)
        np.copyto(e, 0.0, where=low)         # 0, not e^-708: _lexp may scale it by e^2000
        acc[c0:c1] = e @ w
    bvn = acc * (asr / (4.0 * math.pi)) + ndtr(-h) * ndtr(-k)
    return np.minimum(1.0, np.maximum(0.0, bvn))


def _bvnu(h, k, r):
    """P(X > h, Y > k), standard bivariate normal, correlation r (one float; h, k
    arrays that broadcast). Genz's BVNU as xm_american._bvnu; the |r| >= 0.925
    branch is not written here (BS2002's correlation is +-sqrt((sqrt 5 - 1)/2)
    = +-0.786 for every input), so such an r raises. NaN h or k give 0, as the
    scalar version's min(1, max(0, nan))."""
    r = float(r)
    if abs(r) >= 0.925:
        raise ValueError("american_np._bvnu: |r| >= 0.925 is not implemented (BS2002 never needs it)")
    h, k = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float))
    shape = h.shape
    h, k = h.reshape(-1), k.reshape(-1)
    fin = np.isfinite(h) & np.isfinite(k)
    if bool(fin.all()):
        return _bvnu_finite(h, k, r).reshape(shape)
    out = np.zeros(h.shape)
    # the infinite cases, as the scalar version orders them
    hinf = (h == np.inf) | (k == np.inf)
    m = ~hinf & (h == -np.inf)
    out[m] = np.where(k[m] == -np.inf, 1.0, ndtr(-k[m]))
    m = ~hinf & (h != -np.inf) & (k == -np.inf)
    out[m] = ndtr(-h[m])
    if np.any(fin):
        out[fin] = _bvnu_finite(h[fin], k[fin], r)
    return out.reshape(shape)


def _gbs(S, K, T, r, b, sigma, is_call):
    """Generalised Black-Scholes (xm_american.gbs) on arrays."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vt = sigma * np.sqrt(np.maximum(T, 0.0))
        fwd = S * np.exp(b * T)
        df = np.exp(-r * T)
        d1 = (np.log(S / K) + (b + 0.5 * sigma * sigma) * T) / vt
        d2 = d1 - vt
        c = df * (fwd * ndtr(d1) - K * ndtr(d2))
        p = df * (K * ndtr(-d2) - fwd * ndtr(-d1))
        v = np.where(is_call, c, p)
        v = np.where(vt <= 0.0, df * np.where(is_call, np.maximum(fwd - K, 0.0), np.maximum(K - fwd, 0.0)), v)
    intr = np.where(is_call, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))
    return np.where(T <= 0.0, intr, v)


def _lexp(logmag, prob):
    with np.errstate(divide="ignore"):
        return np.where(prob <= 0.0, 0.0, _exp(logmag + np.log(np.where(prob > 0.0, prob, 1.0))))


def _phi(logc, S, T, gamma, H, I, r, b, sigma):
    v2 = sigma * sigma
    vt = sigma * np.sqrt(T)
    lam = (-r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2) * T
    d = -(np.log(S / H) + (b + (gamma - 0.5) * v2) * T) / vt
    kappa = 2.0 * b / v2 + 2.0 * gamma - 1.0
    lis = np.log(I / S)
    L = logc + lam
    t1 = _exp(L + log_ndtr(d))
    t2 = _exp(L + kappa * lis + log_ndtr(d - 2.0 * lis / vt))
    return t1 - t2


def _psi(logc, S, T2, gamma, H, I2, I1, t1, r, b, sigma):
    v2 = sigma * sigma
    bg = b + (gamma - 0.5) * v2
    vs1 = sigma * np.sqrt(t1)
    vs2 = sigma * np.sqrt(T2)
    lSI1 = np.log(S / I1)
    lI2SI1 = np.log(I2 * I2 / (S * I1))
    e1 = (lSI1 + bg * t1) / vs1
    e2 = (lI2SI1 + bg * t1) / vs1
    e3 = (lSI1 - bg * t1) / vs1
    e4 = (lI2SI1 - bg * t1) / vs1
    f1 = (np.log(S / H) + bg * T2) / vs2
    f2 = (np.log(I2 * I2 / (S * H)) + bg * T2) / vs2
    f3 = (np.log(I1 * I1 / (S * H)) + bg * T2) / vs2
    f4 = (np.log(S * I1 * I1 / (H * I2 * I2)) + bg * T2) / vs2
    rho = np.sqrt(t1 / T2)
    rho0 = float(rho.flat[0]) if np.size(rho) else 0.0
    if np.size(rho) and not np.all(rho == rho0):
        # t1 / T2 is (sqrt 5 - 1) / 2 up to rounding: the rounding of one element is ignored
        if np.max(np.abs(rho - rho0)) > 1e-15:
            raise ValueError("american_np._psi: rho differs across elements")
    rho = rho0
    lam = (-r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2) * T2
    kappa = 2.0 * b / v2 + 2.0 * gamma - 1.0
    L = logc + lam
    # cbnd(-e, -f, rho) = _bvnu(e, f, rho)
    return (_lexp(L, _bvnu(e1, f1, rho))
            - _lexp(L + kappa * np.log(I2 / S), _bvnu(e2, f2, rho))
            - _lexp(L + kappa * np.log(I1 / S), _bvnu(e3, f3, -rho))
            + _lexp(L + kappa * np.log(I1 / I2), _bvnu(e4, f4, -rho)))


def _call_raw(S, K, T, r, b, sigma):
    """xm_american._call_raw on arrays (b < r, T > 0, sigma > 0 everywhere)."""
    v2 = sigma * sigma
    beta = (0.5 - b / v2) + np.sqrt((b / v2 - 0.5) ** 2 + 2.0 * r / v2)
    b_inf = beta / (beta - 1.0) * K
    b0 = np.maximum(K, r / (r - b) * K)
    t1 = 0.5 * (math.sqrt(5.0) - 1.0) * T
    scale = K * K / ((b_inf - b0) * b0)
    h1 = -(b * t1 + 2.0 * sigma * np.sqrt(t1)) * scale
    h2 = -(b * T + 2.0 * sigma * np.sqrt(T)) * scale
    I1 = np.where(h1 > 0.0, b_inf, b0 - (b_inf - b0) * np.expm1(np.minimum(h1, 0.0)))
    I2 = np.where(h2 > 0.0, b_inf, b0 - (b_inf - b0) * np.expm1(np.minimum(h2, 0.0)))
    out = S - K                                   # S >= I2: exercise
    m = S < I2
    if not np.any(m):
        return out
    S, K, T, r, b, sigma, beta, t1, I1, I2 = (a[m] for a in (S, K, T, r, b, sigma, beta, t1, I1, I2))
    lS = np.log(S)
    lK = np.log(K)
    lA1 = np.where(I1 > K, np.log(np.where(I1 > K, I1 - K, 1.0)) + beta * np.log(S / I1), _NEG_INF)
    lA2 = np.where(I2 > K, np.log(np.where(I2 > K, I2 - K, 1.0)) + beta * np.log(S / I2), _NEG_INF)
    one, zero = 1.0, 0.0
    v = (_exp(lA2)
         - _phi(lA2, S, t1, beta, I2, I2, r, b, sigma)
         + _phi(lS, S, t1, one, I2, I2, r, b, sigma)
         - _phi(lS, S, t1, one, I1, I2, r, b, sigma)
         - _phi(lK, S, t1, zero, I2, I2, r, b, sigma)
         + _phi(lK, S, t1, zero, I1, I2, r, b, sigma)
         + _phi(lA1, S, t1, beta, I1, I2, r, b, sigma)
         - _psi(lA1, S, T, beta, I1, I2, I1, t1, r, b, sigma)
         + _psi(lS, S, T, one, I1, I2, I1, t1, r, b, sigma)
         - _psi(lS, S, T, one, K, I2, I1, t1, r, b, sigma)
         - _psi(lK, S, T, zero, I1, I2, I1, t1, r, b, sigma)
         + _psi(lK, S, T, zero, K, I2, I1, t1, r, b, sigma))
    out[m] = v
    return out


def _bs2002_call(S, K, T, r, b, sigma):
    euro = _gbs(S, K, T, r, b, sigma, True)
    intr = np.maximum(S - K, 0.0)
    floor = np.maximum(euro, intr)
    out = floor.copy()
    early = (T > 0.0) & (sigma > 0.0) & (b < r)
    if np.any(early):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            raw = _call_raw(*(a[early] for a in (S, K, T, r, b, sigma)))
        out[early] = np.maximum(np.maximum(raw, euro[early]), intr[early])
    return out


def bs2002(S, K, T, r, b, sigma, is_call):
    """xm_american.bs2002 on arrays (broadcast; 1-d result of the broadcast shape)."""
    S, K, T, r, b, sigma, is_call = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in
                                                          (S, K, T, r, b, sigma, is_call)))
    shape = S.shape
    S, K, T, r, b, sigma = (a.reshape(-1) for a in (S, K, T, r, b, sigma))
    c = is_call.reshape(-1) != 0
    out = np.empty(S.shape)
    if np.any(c):
        out[c] = _bs2002_call(S[c], K[c], T[c], r[c], b[c], sigma[c])
    p = ~c
    if np.any(p):
        Sp, Kp, Tp, rp, bp, sp = S[p], K[p], T[p], r[p], b[p], sigma[p]
        v = _bs2002_call(Kp, Sp, Tp, rp - bp, -bp, sp)
        out[p] = np.maximum(np.maximum(v, _gbs(Sp, Kp, Tp, rp, bp, sp, False)), np.maximum(Kp - Sp, 0.0))
    return out.reshape(shape)


_last = {"args": None, "out": None, "hits": 0, "calls": 0}


def values(S, K, T, r, q, sigma, call):
    """Drop-in for xm_reference.american_values: one unit, carry b = r - q, T <= 0 intrinsic.

    A one-entry memo: xm_reference's compute() prices a scenario chunk once per
    account currency (block_losses: loss(x, b) for each currency b in turn, 5
    times on a generated book), and American values do not depend on b, so a
    call with the same inputs as the last one returns the last result (a copy)."""
    args = [np.asarray(a, dtype=np.float64) for a in (S, K, T, r, q, sigma, call)]
    _last["calls"] += 1
    prev = _last["args"]
    if prev is not None and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(args, prev)):
        _last["hits"] += 1
        return _last["out"].copy()
    out = _values(*args)
    _last["args"], _last["out"] = [a.copy() for a in args], out.copy()
    return out


def _values(S, K, T, r, q, sigma, call):
    S, K, T, r, q, sigma, call = np.broadcast_arrays(S, K, T, r, q, sigma, call)
    c = call != 0
    intr = np.where(c, np.maximum(S - K, 0.0), np.maximum(K - S, 0.0))
    live = T > 0
    out = intr.copy()
    if np.any(live):
        out[live] = bs2002(S[live], K[live], T[live], r[live], r[live] - q[live], sigma[live], c[live])
    return out


def install(xr):
    """Make xm_reference price American rows with values() (returns the old function)."""
    old = xr.american_values
    xr.american_values = values
    return old


def self_check(n=4000, seed=7, verbose=True):
    """values() against the scalar xm_american.bs2002 on random inputs (calls and
    puts, b < r, b >= r, b < 0, expired, deep in and out of the money, low vols).
    Returns the largest |difference| / max(S, K, |value|) (the size of BS2002's
    terms, whose rounding the difference is)."""
    rng = np.random.default_rng(seed)
    S = 100.0 * np.exp(rng.normal(0, 0.4, n))
    K = 100.0 * np.exp(rng.normal(0, 0.3, n))
    T = np.where(rng.random(n) < 0.05, 0.0, rng.uniform(0.01, 3.0, n))
    r = rng.uniform(-0.01, 0.12, n)
    q = rng.uniform(-0.05, 0.15, n)
    sig = np.exp(rng.uniform(np.log(0.01), np.log(1.5), n))
    call = rng.random(n) < 0.5
    got = values(S, K, T, r, q, sig, call)
    exp = np.array([(max(S[i] - K[i], 0.0) if call[i] else max(K[i] - S[i], 0.0)) if T[i] <= 0 else
                    xa.bs2002(float(S[i]), float(K[i]), float(T[i]), float(r[i]), float(r[i] - q[i]),
                              float(sig[i]), bool(call[i])) for i in range(n)])
    d = np.abs(got - exp) / np.maximum(np.maximum(S, K), np.abs(exp))
    d = np.where(np.isnan(d), np.inf, d)
    worst = float(d.max())
    if verbose:
        i = int(np.argmax(d))
        print("american_np.self_check: %d values, largest |diff|/max(S,K,|v|) %.3e (S %.6g K %.6g T %.4g r %.4g q %.4g "
              "sigma %.4g call %d: %.17g vs %.17g)" % (n, worst, S[i], K[i], T[i], r[i], q[i], sig[i], call[i],
                                                      got[i], exp[i]))
    return worst


if __name__ == "__main__":
    sys.exit(0 if self_check() <= 1e-13 else 1)
