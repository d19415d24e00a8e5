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
/* XM_MASK: the type of a comparison of two XM_REAL (int for scalars; an
 * OpenCL kernel that instantiates the helpers on double8 defines it as long8
 * and XM_VECTOR, and gets only the branch-free ones). */
#ifndef XM_MASK
#define XM_MASK int
#define XM__MASK_DEFAULT
#endif

/* Standard normal CDF through erfc: accurate to the last bits in double
 * (C99 erfc, OpenCL C erfc <= 16 ulp), in the tails too. Past XM_ERFC_ZERO
 * erfc is 0 in double (its last non-zero value is at 27.2264), and 0 is
 * returned without calling it: glibc's vector erfc (libmvec) takes a slow
 * path there, 5-15 times a call, for every lane of a vector with one such
 * argument (deep out of the money rows near expiry: every scenario of the
 * row). */
#define XM_ERFC_ZERO 27.3
XM_INLINE_HOT XM_REAL XM_FN(xm_ncdf)(XM_REAL x) {
  XM_REAL z = -x * (XM_REAL)0.70710678118654752440;
  XM_MASK zero = z > (XM_REAL)XM_ERFC_ZERO;
  return (XM_REAL)0.5 * (zero ? (XM_REAL)0 : erfc(zero ? (XM_REAL)0 : z));
}

/* Intrinsic value, undiscounted: max(S - K, 0) for a call, max(K - S, 0) for a put. */
XM_INLINE_HOT XM_REAL XM_FN(xm_intrinsic)(XM_REAL S, XM_REAL K, int call) {
  XM_REAL iv = call ? S - K : K - S;
  return iv > (XM_REAL)0 ? iv : (XM_REAL)0;
}

/* Generalised Black-Scholes on a forward with log(F/K) given (lfk): e^{-rT}
 * (F N(d1) - K N(d2)) for a call, e^{-rT} (K N(-d2) - F N(-d1)) for a put, with
 * total vol s = sigma sqrt(T) and discount df. When s is zero the value is the
 * discounted intrinsic of the forward. Written without branches on values (the
 * choices are selects, both Phi evaluated once each: N(-x) = 1 - N(x) is not
 * used, it loses the tail), so that a C compiler can vectorise a loop of it
 * over instruments (backend_cpu.c). */
XM_INLINE_HOT XM_REAL XM_FN(xm_black_lfk)(XM_REAL F, XM_REAL K, XM_REAL lfk, XM_REAL df, XM_REAL s,
                                          int call) {
  XM_MASK live = s > (XM_REAL)0;
  XM_REAL sg = live ? s : (XM_REAL)1; /* any positive value: its result is not used */
  XM_REAL d1 = (lfk + (XM_REAL)0.5 * sg * sg) / sg;
  XM_REAL d2 = d1 - sg;
  XM_REAL sgn = call ? (XM_REAL)1 : (XM_REAL)-1; /* call: N(d1), N(d2); put: N(-d1), N(-d2) */
  XM_REAL n1 = XM_FN(xm_ncdf)(sgn * d1), n2 = XM_FN(xm_ncdf)(sgn * d2);
  /* each case's own expression (not sgn * (F n1 - K n2)), so that the value is
   * the same bits whether or not the compiler contracts it into an FMA */
  XM_REAL v = call ? F * n1 - K * n2 : K * n2 - F * n1;
  /* Deep out of the money the two terms cancel in subnormals: floor at 0. */
  XM_REAL black = v > (XM_REAL)0 ? v : (XM_REAL)0;
  return df * (live ? black : XM_FN(xm_intrinsic)(F, K, call));
}

/* The same with log(F/K) computed here. */
XM_INLINE XM_REAL XM_FN(xm_black)(XM_REAL F, XM_REAL K, XM_REAL df, XM_REAL s, int call) {
  return XM_FN(xm_black_lfk)(F, K, s > (XM_REAL)0 ? log(F / K) : (XM_REAL)0, df, s, call);
}

/* American options (Bjerksund and Stensland 2002): xm_price_american (also
 * on double8: the OpenCL kernels revalue 8 scenarios of a row at once). */
#include "xm_american.h"

#ifndef XM_VECTOR

/* The unit-value functions of the type table (xmargin_types.h, column
 * `pricing`): value of one unit (multiplier not applied). S: spot, or the
 * futures price for a type without carry; T: years to expiry; r: rate; q:
 * dividend yield (types with carry only); sigma: vol; call: 1/0. */
XM_INLINE XM_REAL XM_FN(xm_price_linear)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                         XM_REAL q, XM_REAL sigma, int call) {
  (void)type, (void)K, (void)T, (void)r, (void)q, (void)sigma, (void)call;
  return S;
}

/* Black-Scholes-Merton on a spot (forward S e^{(r-q)T}) for a type with
 * carry, Black-76 on a futures price otherwise. T <= 0: intrinsic value,
 * undiscounted. */
XM_INLINE XM_REAL XM_FN(xm_price_black)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                        XM_REAL q, XM_REAL sigma, int call) {
  if (!(T > (XM_REAL)0))
    return XM_FN(xm_intrinsic)(S, K, call);
  XM_REAL s = sigma * sqrt(T);
  XM_REAL df = exp(-r * T);
  XM_REAL F = XM_TYPE_HAS_CARRY(type) ? S * exp((r - q) * T) : S;
  return XM_FN(xm_black)(F, K, df, s, call);
}

/* Inverse (coin-settled) futures and perpetuals (METHODOLOGY.md section
 * 2.1): worth m (1/F0 - 1/F) coins relative to today, i.e. -1/F a unit up to
 * the constant that daily settlement removes (as a future's S is). */
XM_INLINE XM_REAL XM_FN(xm_price_inverse)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                          XM_REAL q, XM_REAL sigma, int call) {
  (void)type, (void)K, (void)T, (void)r, (void)q, (void)sigma, (void)call;
  return (XM_REAL)-1 / S;
}

/* Inverse options: Black-76 on the quote price F, paid in the coin: Black / F
 * (T <= 0: the intrinsic value over F). */
XM_INLINE XM_REAL XM_FN(xm_price_inverse_black)(int type, XM_REAL S, XM_REAL K, XM_REAL T,
                                                XM_REAL r, XM_REAL q, XM_REAL sigma, int call) {
  return XM_FN(xm_price_black)(type, S, K, T, r, q, sigma, call) / S;
}

/* Value of one unit of an instrument of any type: the pricing function of
 * its row of the type table; NaN for a value that is not a type. */
XM_INLINE XM_REAL XM_FN(xm_unit_value)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                       XM_REAL q, XM_REAL sigma, int call) {
  switch (type) {
#define XM__PRICE_CASE(NAME, name, loss, carry, settled, funding, inverse, pricing, version)       \
  case XM_##NAME:                                                                                  \
    return XM_FN(pricing)(type, S, K, T, r, q, sigma, call);
    XM_INSTRUMENT_TYPE_MAP(XM__PRICE_CASE)
#undef XM__PRICE_CASE
  default:
    return (XM_REAL)NAN;
  }
}

/* The vol shock's term scale of METHODOLOGY.md section 2: (30 / max(365 T, 1))^p
 * (1 for p = 0: a parallel shift). */
XM_INLINE XM_REAL XM_FN(xm_vol_term_scale)(XM_REAL T, XM_REAL p) {
  XM_REAL days = (XM_REAL)365 * T;
  return p == (XM_REAL)0 ? (XM_REAL)1
                         : pow((XM_REAL)30 / (days > (XM_REAL)1 ? days : (XM_REAL)1), p);
}

#endif /* XM_VECTOR */

/* Shocked implied vol: max(sigma + xv * scale, floor), scale = xm_vol_term_scale. */
XM_INLINE_HOT XM_REAL XM_FN(xm_shocked_vol)(XM_REAL sigma, XM_REAL xv, XM_REAL scale,
                                            XM_REAL vol_floor) {
  XM_REAL v = sigma + xv * scale;
  return v > vol_floor ? v : vol_floor;
}

/* The same for a logvol factor (relative moves): max(sigma exp(xv * scale), floor). */
XM_INLINE_HOT XM_REAL XM_FN(xm_shocked_logvol)(XM_REAL sigma, XM_REAL xv, XM_REAL scale,
                                               XM_REAL vol_floor) {
  XM_REAL v = sigma * exp(xv * scale);
  return v > vol_floor ? v : vol_floor;
}

#ifdef XM__MASK_DEFAULT
#undef XM_MASK
#undef XM__MASK_DEFAULT
#endif
