/* Revaluation of one (scenario, instrument) pair (METHODOLOGY.md section 2,
 * 2.1-2.3), templated on precision like xm_pricing.h (define XM_REAL and
 * XM_FN first; no include guard on purpose).
 *
 * Instrument data of a block, struct of arrays with stride n:
 *   instd[XM_ID_* * n + i] (double) and insti[XM_II_* * n + i] (int);
 * a row is an instrument as accounts of one currency see it (xm_portable.h). */
/* The includer has included xm_pricing.h for the same XM_REAL first. */

/* Defaults for scalars. An OpenCL kernel that instantiates the losses on
 * double8 (8 scenarios of one instrument) defines XM_VECTOR, XM_LOSS_T (double8)
 * and XM_SHOCK(p, col), the column col of the 8 shock rows from p, stride apart;
 * a scalar includer may define XM_SHOCK alone (the cpu backend's transposed
 * tile: column col of a scenario at p[col * 8]). */
#ifndef XM_VECTOR
#define XM_LOSS_T double
#ifndef XM_SHOCK
#define XM_SHOCK(p, col) ((XM_REAL)(p)[col])
#define XM__SHOCK_DEFAULT
#endif
#endif

#ifndef XM_VECTOR
/* Today's value of one unit of instrument i (multiplier not applied), priced
 * in XM_REAL, in its settlement currency, and the terms of its revaluation that
 * no scenario changes (so a scenario costs one exp and two erfc, not seven
 * special functions). dt = h/252, p = pricing.vol_term_power. */
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
  instd[XM_ID_T1 * n + i] = (double)T1;
  instd[XM_ID_DF1 * n + i] = (double)exp(-r * T1);
  instd[XM_ID_CARRY * n + i] = (double)carry;
  instd[XM_ID_LFK * n + i] =
      XM_TYPE_IS_OPTION(type)
          ? (double)(log(S / K) + (XM_TYPE_HAS_CARRY(type) ? (r - q) * T1 : (XM_REAL)0))
          : 0.0;
  instd[XM_ID_VSC * n + i] = (double)XM_FN(xm_vol_term_scale)(T, p);
  /* funding f N h/252 per unit: N = S0 (perpetual), 1/S0 coins (inverse) */
  XM_REAL notional = XM_TYPE_IS_INVERSE(type) ? (XM_REAL)1 / S : S;
  instd[XM_ID_PHI * n + i] =
      XM_TYPE_HAS_FUNDING(type) ? (double)((XM_REAL)instd[XM_ID_FR * n + i] * notional * dt) : 0.0;
}

#endif /* XM_VECTOR */

/* Loss of one contract of instrument i in the scenario whose shocks are
 * x[0..nf) (columns: the run's factors) and ex = exp(x) (computed once per
 * scenario and factor, not per instrument), from the terms xm_today prepared,
 * in the account's currency: METHODOLOGY.md section 2 with the pricing of
 * xm_pricing.h. One function per revaluation class, each without branches on
 * values, so that the cpu backend vectorises a loop of one over a block's
 * rows of that class (xm__plan orders them by class). */

/* The move of the settlement-to-account rate, R(x) / R(0) = X_c(x) X_b /
 * (X_c X_b(x)) = ex[fxc] / ex[fxb] (1 for a currency without an /fx factor:
 * its column is loaded from u then, an index by arithmetic, not a select). */
XM_INLINE_HOT XM_REAL XM_FN(xm_fx_move)(xm_i64 i, xm_i64 n, XM_GLOBAL const int *insti,
                                        XM_GLOBAL const double *ex, xm_i64 stride, int u) {
  int c = insti[XM_II_FXC * n + i], b = insti[XM_II_FXB * n + i];
  int hc = c >= 0, hb = b >= 0;
  XM_REAL ec = XM_SHOCK(ex, u + hc * (c - u)), eb = XM_SHOCK(ex, u + hb * (b - u));
  (void)stride; /* used by the vector XM_SHOCK */
  return (hc ? ec : (XM_REAL)1) / (hb ? eb : (XM_REAL)1);
}

/* The loss of one contract from its unit values today (v0) and in the
 * scenario (v1), both in the settlement currency, and the rate's move e
 * (section 2.2): a value type pays v0 at today's rate and is worth v1 at the
 * scenario's; a settled type settles v0 - v1 plus the funding phi, converted
 * at the scenario's rate. mr = multiplier x R(0). */
XM_INLINE_HOT XM_REAL XM_FN(xm_currency_loss)(int type, XM_REAL mr, XM_REAL v0, XM_REAL v1,
                                              XM_REAL e, XM_REAL phi) {
  XM_REAL settled = mr * ((v0 - v1) + phi) * e;
  XM_REAL value = mr * (v0 - v1 * e);
  return XM_TYPE_IS_SETTLED(type) ? settled : value;
}

/* Linear types (spot, future, perpetual and their inverse kin): the level
 * moves; an inverse type is worth -1/S a unit (xm_price_inverse). */
XM_INLINE_HOT XM_LOSS_T XM_FN(xm_loss_linear)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                              XM_GLOBAL const int *insti,
                                              XM_GLOBAL const double *ex, xm_i64 stride) {
  int type = insti[XM_II_TYPE * n + i], u = insti[XM_II_UND * n + i];
  XM_REAL S1 = (XM_REAL)instd[XM_ID_S0 * n + i] * XM_SHOCK(ex, u);
  XM_REAL v1 = XM_TYPE_IS_INVERSE(type) ? (XM_REAL)-1 / S1 : S1;
  XM_REAL e = XM_FN(xm_fx_move)(i, n, insti, ex, stride, u);
  XM_REAL mr = (XM_REAL)instd[XM_ID_MULT * n + i] * (XM_REAL)instd[XM_ID_R0 * n + i];
  return (XM_LOSS_T)XM_FN(xm_currency_loss)(type, mr, (XM_REAL)instd[XM_ID_V0 * n + i], v1, e,
                                            (XM_REAL)instd[XM_ID_PHI * n + i]);
}

/* The shocked vol of option row i (x[vf], or 0 without a vol factor: loaded
 * always, from column u then); logv: relative moves (a logvol factor). */
XM_INLINE_HOT XM_REAL XM_FN(xm_row_vol)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                        XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                        xm_i64 stride, int u, int logv, XM_REAL vol_floor) {
  int vf = insti[XM_II_VOL * n + i];
  int has_vf = vf >= 0;
  XM_REAL xvl = XM_SHOCK(x, u + has_vf * (vf - u));
  XM_REAL xv = has_vf ? xvl : (XM_REAL)0;
  XM_REAL sig = (XM_REAL)instd[XM_ID_SIG * n + i], sc = (XM_REAL)instd[XM_ID_VSC * n + i];
  (void)stride;
  return logv ? XM_FN(xm_shocked_logvol)(sig, xv, sc, vol_floor)
              : XM_FN(xm_shocked_vol)(sig, xv, sc, vol_floor);
}

/* Option, future option, inverse option: Black on the shocked forward and
 * vol; at or past expiry after the horizon (T' <= 0) the undiscounted
 * intrinsic value; an inverse option's value is over the quote price, in the
 * coin. logv: the row's vol factor is logvol (a constant in the cpu loops). */
XM_INLINE_HOT XM_LOSS_T XM_FN(xm_loss_black)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                             XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                             XM_GLOBAL const double *ex, xm_i64 stride,
                                             XM_REAL vol_floor, int logv) {
  int type = insti[XM_II_TYPE * n + i], u = insti[XM_II_UND * n + i];
  int call = insti[XM_II_CALL * n + i];
  XM_REAL xs = XM_SHOCK(x, u);
  XM_REAL S1 = (XM_REAL)instd[XM_ID_S0 * n + i] * XM_SHOCK(ex, u);
  XM_REAL K = (XM_REAL)instd[XM_ID_K * n + i];
  XM_REAL sq = (XM_REAL)instd[XM_ID_SQT1 * n + i];
  XM_REAL sig = XM_FN(xm_row_vol)(i, n, instd, insti, x, stride, u, logv, vol_floor);
  /* log(F'/K) = log(S/K) + log(carry) + x: no log per scenario */
  XM_REAL black = XM_FN(xm_black_lfk)(S1 * (XM_REAL)instd[XM_ID_CARRY * n + i], K,
                                      (XM_REAL)instd[XM_ID_LFK * n + i] + xs,
                                      (XM_REAL)instd[XM_ID_DF1 * n + i], sig * sq, call);
  XM_REAL v = sq > (XM_REAL)0 ? black : XM_FN(xm_intrinsic)(S1, K, call);
  XM_REAL v1 = XM_TYPE_IS_INVERSE(type) ? v / S1 : v;
  XM_REAL e = XM_FN(xm_fx_move)(i, n, insti, ex, stride, u);
  XM_REAL mr = (XM_REAL)instd[XM_ID_MULT * n + i] * (XM_REAL)instd[XM_ID_R0 * n + i];
  return (XM_LOSS_T)XM_FN(xm_currency_loss)(type, mr, (XM_REAL)instd[XM_ID_V0 * n + i], v1, e,
                                            (XM_REAL)0);
}

/* American options: Bjerksund-Stensland (2002) at the shocked spot and vol
 * and T'. */
XM_INLINE_HOT XM_LOSS_T XM_FN(xm_loss_american)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                                XM_GLOBAL const int *insti,
                                                XM_GLOBAL const double *x,
                                                XM_GLOBAL const double *ex, xm_i64 stride,
                                                XM_REAL vol_floor) {
  int type = insti[XM_II_TYPE * n + i], u = insti[XM_II_UND * n + i];
  XM_REAL S1 = (XM_REAL)instd[XM_ID_S0 * n + i] * XM_SHOCK(ex, u);
  XM_REAL sig =
      XM_FN(xm_row_vol)(i, n, instd, insti, x, stride, u, insti[XM_II_LOGV * n + i], vol_floor);
  XM_REAL v1 =
      XM_FN(xm_price_american)(type, S1, (XM_REAL)instd[XM_ID_K * n + i],
                               (XM_REAL)instd[XM_ID_T1 * n + i], (XM_REAL)instd[XM_ID_R * n + i],
                               (XM_REAL)instd[XM_ID_Q * n + i], sig, insti[XM_II_CALL * n + i]);
  XM_REAL e = XM_FN(xm_fx_move)(i, n, insti, ex, stride, u);
  XM_REAL mr = (XM_REAL)instd[XM_ID_MULT * n + i] * (XM_REAL)instd[XM_ID_R0 * n + i];
  return (XM_LOSS_T)XM_FN(xm_currency_loss)(type, mr, (XM_REAL)instd[XM_ID_V0 * n + i], v1, e,
                                            (XM_REAL)0);
}

#ifndef XM_VECTOR
/* The loss of one contract in one scenario (x, ex: that scenario's row), any
 * class (the class of the row chooses). */
XM_INLINE XM_LOSS_T XM_FN(xm_loss)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                   XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                   XM_GLOBAL const double *ex, xm_i64 stride, XM_REAL vol_floor) {
  switch (insti[XM_II_CLASS * n + i]) {
  case XM_CLASS_LINEAR:
    return XM_FN(xm_loss_linear)(i, n, instd, insti, ex, stride);
  case XM_CLASS_BLACK:
    return XM_FN(xm_loss_black)(i, n, instd, insti, x, ex, stride, vol_floor, 0);
  case XM_CLASS_BLACK_LOGVOL:
    return XM_FN(xm_loss_black)(i, n, instd, insti, x, ex, stride, vol_floor, 1);
  default:
    return XM_FN(xm_loss_american)(i, n, instd, insti, x, ex, stride, vol_floor);
  }
}

/* The delta-notionals of one contract of row i on its slots (METHODOLOGY.md
 * section 4.1): sens[j * n + i] = [l(-u on slot j) - l(+u on slot j)] / (2u)
 * for j < XM_NSLOT (0 for a slot the row does not have: nothing reads its
 * column), from rows prepared for it: xm_today with dt = 0 (T' = T, no
 * funding) and columns renumbered to the slots (xm_portable.h); sx / sex:
 * the 2 XM_NSLOT shock rows of XM_SENS_COLS columns and their exp. */
XM_INLINE void XM_FN(xm_sens_row)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                  XM_GLOBAL const int *insti, XM_GLOBAL const double *sx,
                                  XM_GLOBAL const double *sex, XM_REAL vol_floor,
                                  XM_GLOBAL double *sens) {
  for (int j = 0; j < XM_NSLOT; j++) {
    xm_i64 dn = 2 * j * XM_SENS_COLS, up = dn + XM_SENS_COLS;
    XM_REAL ldn = XM_FN(xm_loss)(i, n, instd, insti, sx + dn, sex + dn, 1, vol_floor);
    XM_REAL lup = XM_FN(xm_loss)(i, n, instd, insti, sx + up, sex + up, 1, vol_floor);
    sens[j * n + i] = ((double)ldn - (double)lup) / (2.0 * XM_LQ_U);
  }
}
#endif /* XM_VECTOR */

#ifndef XM_VECTOR
#undef XM_LOSS_T
#endif
#ifdef XM__SHOCK_DEFAULT
#undef XM_SHOCK
#undef XM__SHOCK_DEFAULT
#endif
