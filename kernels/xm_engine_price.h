/* Revaluation of one (scenario, instrument) pair (METHODOLOGY.md section 2),
 * templated on precision like xm_pricing.h (define XM_REAL and XM_FN first;
 * no include guard on purpose).
 *
 * Instrument data of a block, struct of arrays with stride n:
 *   instd[XM_ID_* * n + i] (double) and insti[XM_II_* * n + i] (int). */
/* The includer has included xm_pricing.h for the same XM_REAL first. */

/* Defaults for scalars. An OpenCL kernel that instantiates the losses on
 * double8 (8 scenarios of one instrument) defines XM_VECTOR, XM_LOSS_T (double8)
 * and XM_SHOCK(p, col), the column col of the 8 shock rows from p, stride apart. */
#ifndef XM_VECTOR
#define XM_LOSS_T double
#define XM_SHOCK(p, col) ((XM_REAL)(p)[col])
#endif

#ifndef XM_VECTOR
/* Today's value of one unit of instrument i (multiplier not applied), priced
 * in XM_REAL, and the terms of its revaluation that no scenario changes (so a
 * scenario costs one exp and two erfc, not seven special functions). dt = h/252,
 * p = pricing.vol_term_power. */
XM_INLINE void XM_FN(xm_today)(xm_i64 i, xm_i64 n, XM_GLOBAL double *instd,
                               XM_GLOBAL const int *insti, XM_REAL dt, XM_REAL p) {
  int type = insti[XM_II_TYPE * n + i];
  XM_REAL S = (XM_REAL)instd[XM_ID_S0 * n + i], K = (XM_REAL)instd[XM_ID_K * n + i];
  XM_REAL T = (XM_REAL)instd[XM_ID_T * n + i], r = (XM_REAL)instd[XM_ID_R * n + i];
  XM_REAL q = (XM_REAL)instd[XM_ID_Q * n + i];
  XM_REAL v = XM_FN(xm_unit_value)(type, S, K, T, r, q, (XM_REAL)instd[XM_ID_SIG * n + i],
                                   insti[XM_II_CALL * n + i]);
  instd[XM_ID_V0 * n + i] = (double)v;
  XM_REAL T1 = T - dt > (XM_REAL)0 ? T - dt : (XM_REAL)0;
  XM_REAL carry = XM_TYPE_HAS_CARRY(type) ? exp((r - q) * T1) : (XM_REAL)1;
  instd[XM_ID_SQT1 * n + i] = (double)sqrt(T1);
  instd[XM_ID_DF1 * n + i] = (double)exp(-r * T1);
  instd[XM_ID_CARRY * n + i] = (double)carry;
  instd[XM_ID_LFK * n + i] =
      XM_TYPE_IS_OPTION(type)
          ? (double)(log(S / K) + (XM_TYPE_HAS_CARRY(type) ? (r - q) * T1 : (XM_REAL)0))
          : 0.0;
  instd[XM_ID_VSC * n + i] = (double)XM_FN(xm_vol_term_scale)(T, p);
}

#endif /* XM_VECTOR */

/* Loss of one contract of instrument i in the scenario whose shocks are
 * x[0..nf) (columns: the run's factors) and ex = exp(x) (computed once per
 * scenario and factor, not per instrument), from the terms xm_today prepared:
 * METHODOLOGY.md section 2 with the pricing of xm_pricing.h. Two halves, each
 * without branches on values, so that the cpu backend vectorises a loop of
 * one over a block's instruments (which xm__plan orders linear first). */

/* Spot and future: the level moves, nothing else. */
XM_INLINE_HOT XM_LOSS_T XM_FN(xm_loss_linear)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                              XM_GLOBAL const int *insti,
                                              XM_GLOBAL const double *ex, xm_i64 stride) {
  XM_REAL S1 = (XM_REAL)instd[XM_ID_S0 * n + i] * XM_SHOCK(ex, insti[XM_II_UND * n + i]);
  (void)stride; /* used by the vector XM_SHOCK */
  return (XM_LOSS_T)((XM_REAL)instd[XM_ID_MULT * n + i] * ((XM_REAL)instd[XM_ID_V0 * n + i] - S1));
}

/* Option and future option: Black on the shocked forward and vol; at or past
 * expiry after the horizon (T' <= 0) the undiscounted intrinsic value. */
XM_INLINE_HOT XM_LOSS_T XM_FN(xm_loss_option)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                              XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                              XM_GLOBAL const double *ex, xm_i64 stride,
                                              XM_REAL vol_floor) {
  int vf = insti[XM_II_VOL * n + i], u = insti[XM_II_UND * n + i];
  int call = insti[XM_II_CALL * n + i];
  XM_REAL xs = XM_SHOCK(x, u);
  XM_REAL S1 = (XM_REAL)instd[XM_ID_S0 * n + i] * XM_SHOCK(ex, u);
  (void)stride;
  XM_REAL K = (XM_REAL)instd[XM_ID_K * n + i];
  XM_REAL sq = (XM_REAL)instd[XM_ID_SQT1 * n + i];
  /* x[vf], or 0 without a vol factor: loaded always, from column u then (an
   * index by arithmetic, not a select, which compilers turn into a branch) */
  int has_vf = vf >= 0;
  XM_REAL xvl = XM_SHOCK(x, u + has_vf * (vf - u));
  XM_REAL xv = has_vf ? xvl : (XM_REAL)0;
  XM_REAL sig = XM_FN(xm_shocked_vol)((XM_REAL)instd[XM_ID_SIG * n + i], xv,
                                      (XM_REAL)instd[XM_ID_VSC * n + i], vol_floor);
  /* log(F'/K) = log(S/K) + log(carry) + x: no log per scenario */
  XM_REAL black = XM_FN(xm_black_lfk)(S1 * (XM_REAL)instd[XM_ID_CARRY * n + i], K,
                                      (XM_REAL)instd[XM_ID_LFK * n + i] + xs,
                                      (XM_REAL)instd[XM_ID_DF1 * n + i], sig * sq, call);
  XM_REAL v1 = sq > (XM_REAL)0 ? black : XM_FN(xm_intrinsic)(S1, K, call);
  return (XM_LOSS_T)((XM_REAL)instd[XM_ID_MULT * n + i] * ((XM_REAL)instd[XM_ID_V0 * n + i] - v1));
}

/* The loss of one contract in one scenario (x, ex: that scenario's row), or
 * with XM_VECTOR in 8 scenarios (rows stride apart). */
XM_INLINE XM_LOSS_T XM_FN(xm_loss)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                   XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                   XM_GLOBAL const double *ex, xm_i64 stride, XM_REAL vol_floor) {
  return !XM_TYPE_IS_OPTION(insti[XM_II_TYPE * n + i])
             ? XM_FN(xm_loss_linear)(i, n, instd, insti, ex, stride)
             : XM_FN(xm_loss_option)(i, n, instd, insti, x, ex, stride, vol_floor);
}

#ifndef XM_VECTOR
#undef XM_LOSS_T
#undef XM_SHOCK
#endif
