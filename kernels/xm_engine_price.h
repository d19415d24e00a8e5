/* Revaluation of one (scenario, instrument) pair (METHODOLOGY.md section 2),
 * templated on precision like xm_pricing.h (define XM_REAL and XM_FN first;
 * no include guard on purpose).
 *
 * Instrument data of a block, struct of arrays with stride n:
 *   instd[XM_ID_* * n + i] (double) and insti[XM_II_* * n + i] (int). */
/* The includer has included xm_pricing.h for the same XM_REAL first. */



/* Today's value of one unit of instrument i (multiplier not applied), priced
 * in XM_REAL: the v0 of xm_contract_loss. */
XM_INLINE void XM_FN(xm_today)(xm_i64 i, xm_i64 n, XM_GLOBAL double *instd,
                               XM_GLOBAL const int *insti) {
  XM_REAL v = XM_FN(xm_unit_value)(
      insti[XM_II_TYPE * n + i], (XM_REAL)instd[XM_ID_S0 * n + i], (XM_REAL)instd[XM_ID_K * n + i],
      (XM_REAL)instd[XM_ID_T * n + i], (XM_REAL)instd[XM_ID_R * n + i],
      (XM_REAL)instd[XM_ID_Q * n + i], (XM_REAL)instd[XM_ID_SIG * n + i],
      insti[XM_II_CALL * n + i]);
  instd[XM_ID_V0 * n + i] = (double)v;
}

/* Loss of one contract of instrument i in the scenario whose shocks are
 * x[0..nf) (columns: the run's factors). dt = h/252; p, vol_floor: pricing.* */
XM_INLINE double XM_FN(xm_loss)(xm_i64 i, xm_i64 n, XM_GLOBAL const double *instd,
                                XM_GLOBAL const int *insti, XM_GLOBAL const double *x,
                                XM_REAL dt, XM_REAL p, XM_REAL vol_floor) {
  int vf = insti[XM_II_VOL * n + i];
  XM_REAL xs = (XM_REAL)x[insti[XM_II_UND * n + i]];
  XM_REAL xv = vf >= 0 ? (XM_REAL)x[vf] : (XM_REAL)0;
  return (double)XM_FN(xm_contract_loss)(
      insti[XM_II_TYPE * n + i], (XM_REAL)instd[XM_ID_S0 * n + i], (XM_REAL)instd[XM_ID_K * n + i],
      (XM_REAL)instd[XM_ID_T * n + i], (XM_REAL)instd[XM_ID_R * n + i],
      (XM_REAL)instd[XM_ID_Q * n + i], (XM_REAL)instd[XM_ID_SIG * n + i],
      insti[XM_II_CALL * n + i], (XM_REAL)instd[XM_ID_MULT * n + i],
      (XM_REAL)instd[XM_ID_V0 * n + i], xs, xv, dt, p, vol_floor);
}
