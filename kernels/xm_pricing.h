/* The one pricing source (FORMAT.md section 1, METHODOLOGY.md section 2),
 * written in the common subset of C99 and OpenCL C.
 *
 * Templated on precision: the includer defines XM_REAL (float or double) and
 * XM_FN(name) (a suffix so that both precisions can live in one C translation
 * unit). No include guard on purpose: the C backend includes it twice. */
#include "xm_portable.h"

#ifndef XM_REAL
#error "define XM_REAL and XM_FN before including xm_pricing.h"
#endif

/* Standard normal CDF through erfc: accurate to the last bits in double
 * (C99 erfc, OpenCL C erfc <= 16 ulp), in the tails too. */
XM_INLINE XM_REAL XM_FN(xm_ncdf)(XM_REAL x) {
  return (XM_REAL)0.5 * erfc(-x * (XM_REAL)0.70710678118654752440);
}

/* Generalised Black-Scholes on a forward: e^{-rT} (F N(d1) - K N(d2)) for a
 * call, e^{-rT} (K N(-d2) - F N(-d1)) for a put, with total vol s = sigma sqrt(T).
 * When s is zero the value is the discounted intrinsic of the forward. */
XM_INLINE XM_REAL XM_FN(xm_black)(XM_REAL F, XM_REAL K, XM_REAL df, XM_REAL s, int call) {
  if (!(s > (XM_REAL)0)) {
    XM_REAL iv = call ? F - K : K - F;
    return df * (iv > (XM_REAL)0 ? iv : (XM_REAL)0);
  }
  XM_REAL d1 = (log(F / K) + (XM_REAL)0.5 * s * s) / s;
  XM_REAL d2 = d1 - s;
  /* Deep out of the money the two terms cancel in subnormals: floor at 0. */
  XM_REAL v = call ? F * XM_FN(xm_ncdf)(d1) - K * XM_FN(xm_ncdf)(d2)
                   : K * XM_FN(xm_ncdf)(-d2) - F * XM_FN(xm_ncdf)(-d1);
  return df * (v > (XM_REAL)0 ? v : (XM_REAL)0);
}

/* Value of one unit (multiplier not applied) of an instrument.
 * S: spot (option) or futures price (future_option); T: years to expiry;
 * r: rate; q: dividend yield (option only); sigma: vol; call: 1/0.
 * T <= 0: intrinsic value, undiscounted. */
XM_INLINE XM_REAL XM_FN(xm_unit_value)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                       XM_REAL q, XM_REAL sigma, int call) {
  if (type == XM_T_SPOT || type == XM_T_FUTURE)
    return S;
  if (!(T > (XM_REAL)0)) {
    XM_REAL iv = call ? S - K : K - S;
    return iv > (XM_REAL)0 ? iv : (XM_REAL)0;
  }
  XM_REAL s = sigma * sqrt(T);
  XM_REAL df = exp(-r * T);
  if (type == XM_T_OPTION) /* BSM: forward S e^{(r-q)T} */
    return XM_FN(xm_black)(S * exp((r - q) * T), K, df, s, call);
  return XM_FN(xm_black)(S, K, df, s, call); /* Black-76 */
}

/* Shocked implied vol (METHODOLOGY.md section 2):
 * max(sigma + xv * (30 / max(365 T, 1))^p, floor). */
XM_INLINE XM_REAL XM_FN(xm_shocked_vol)(XM_REAL sigma, XM_REAL xv, XM_REAL T, XM_REAL p,
                                        XM_REAL vol_floor) {
  XM_REAL days = (XM_REAL)365 * T;
  XM_REAL scale =
      p == (XM_REAL)0 ? (XM_REAL)1 : pow((XM_REAL)30 / (days > (XM_REAL)1 ? days : (XM_REAL)1), p);
  XM_REAL v = sigma + xv * scale;
  return v > vol_floor ? v : vol_floor;
}

/* Loss of one contract (multiplier included) under a scenario: today's value
 * v0 minus the value with the underlying moved to S*exp(xs) (price factor), the
 * vol moved by xv, and time moved forward to max(T - dt, 0). */
XM_INLINE XM_REAL XM_FN(xm_contract_loss)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                          XM_REAL q, XM_REAL sigma, int call, XM_REAL mult,
                                          XM_REAL v0, XM_REAL xs, XM_REAL xv, XM_REAL dt, XM_REAL p,
                                          XM_REAL vol_floor) {
  XM_REAL S1 = S * exp(xs);
  XM_REAL T1 = T - dt;
  T1 = T1 > (XM_REAL)0 ? T1 : (XM_REAL)0;
  XM_REAL sig1 = XM_FN(xm_shocked_vol)(sigma, xv, T, p, vol_floor);
  return mult * (v0 - XM_FN(xm_unit_value)(type, S1, K, T1, r, q, sig1, call));
}
