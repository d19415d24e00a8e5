/* American options by Bjerksund and Stensland (2002), "Closed form valuation
 * of American options", as Haug, "The Complete Guide to Option Pricing
 * Formulas" (2nd ed., 2007, ch. 3) writes it (METHODOLOGY.md section 2.1):
 * the two-step flat exercise boundary, calls as given, puts by the put-call
 * transformation P(S, K, T, r, b, s) = C(K, S, T, r - b, -b, s).
 *
 * Templated on precision like xm_pricing.h, which includes it: no include guard on purpose.
 * In the common subset of C99 and OpenCL C. Written for the
 * revaluation loops: no loop or branch that depends on a value (the
 * Gauss-Legendre sum has a fixed count; the cases are selects), and every
 * power and exponential is taken in log space, so that no term overflows at
 * low vol (literally, an at-the-money put at sigma = 1% overflows to NaN).
 * The result is never below the European value nor the intrinsic value, nor
 * above the underlying (call) or the strike (put). */

/* log N(x): N by erfc where it is a normal number, the asymptotic series
 * N(x) ~ phi(x) / -x (1 - 1/x^2 + 3/x^4 - 15/x^6) below -20. */
XM_INLINE XM_REAL XM_FN(xm_log_ncdf)(XM_REAL x) {
  XM_REAL direct = log(XM_FN(xm_ncdf)(x));
  XM_REAL u = x < (XM_REAL)-20 ? x : (XM_REAL)-20, i2 = (XM_REAL)1 / (u * u);
  XM_REAL series = (XM_REAL)-0.5 * u * u - log(-u) - (XM_REAL)0.91893853320467274178 +
                   log((XM_REAL)1 - i2 + (XM_REAL)3 * i2 * i2 - (XM_REAL)15 * i2 * i2 * i2);
  return x < (XM_REAL)-20 ? series : direct;
}

/* The bivariate normal P(X < a, Y < b) with correlation rho, |rho| < 0.925
 * (here +-sqrt(t1 / T) = +-0.786 always): Drezner and Wesolowsky (1989) with
 * Genz's (2004) 20-point Gauss-Legendre rule for 0.75 <= |rho| < 0.925,
 * absolute error below 1e-15. */
XM_INLINE XM_REAL XM_FN(xm_bvn)(XM_REAL a, XM_REAL b, XM_REAL rho) {
  const XM_REAL x[10] = {(XM_REAL)0.9931285991850949, (XM_REAL)0.9639719272779138,
                         (XM_REAL)0.9122344282513259, (XM_REAL)0.8391169718222188,
                         (XM_REAL)0.7463319064601508, (XM_REAL)0.6360536807265150,
                         (XM_REAL)0.5108670019508271, (XM_REAL)0.3737060887154195,
                         (XM_REAL)0.2277858511416451, (XM_REAL)0.07652652113349734};
  const XM_REAL w[10] = {(XM_REAL)0.01761400713915212, (XM_REAL)0.04060142980038694,
                         (XM_REAL)0.06267204833410906, (XM_REAL)0.08327674157670475,
                         (XM_REAL)0.1019301198172404,  (XM_REAL)0.1181945319615184,
                         (XM_REAL)0.1316886384491766,  (XM_REAL)0.1420961093183821,
                         (XM_REAL)0.1491729864726037,  (XM_REAL)0.1527533871307259};
  XM_REAL hk = a * b, hs = (XM_REAL)0.5 * (a * a + b * b), asr = asin(rho), sum = (XM_REAL)0;
  for (int i = 0; i < 10; i++) {
    XM_REAL s1 = sin(asr * ((XM_REAL)1 - x[i]) * (XM_REAL)0.5);
    XM_REAL s2 = sin(asr * ((XM_REAL)1 + x[i]) * (XM_REAL)0.5);
    sum += w[i] * (exp((s1 * hk - hs) / ((XM_REAL)1 - s1 * s1)) +
                   exp((s2 * hk - hs) / ((XM_REAL)1 - s2 * s2)));
  }
  XM_REAL m = sum * asr * (XM_REAL)0.07957747154594766788 /* 1 / (4 pi) */ +
              XM_FN(xm_ncdf)(a) * XM_FN(xm_ncdf)(b);
  return m > (XM_REAL)0 ? m : (XM_REAL)0;
}

/* exp(lc) * N(d) - exp(lc + k) * N(d2), each product in log space. */
XM_INLINE XM_REAL XM_FN(xm_bs_pair)(XM_REAL lc, XM_REAL d, XM_REAL k, XM_REAL d2) {
  return exp(lc + XM_FN(xm_log_ncdf)(d)) - exp(lc + k + XM_FN(xm_log_ncdf)(d2));
}

/* coef * phi(S, T, gamma, H, I) of Haug's formula (I is Ib here: <complex.h>
 * names the imaginary unit I), coef > 0 given by its log lcoef:
 * coef exp(lambda) S^gamma [N(d) - (I/S)^kappa N(d - 2 ln(I/S) / (v sqrt T))]. */
XM_INLINE XM_REAL XM_FN(xm_bs_phi)(XM_REAL lcoef, XM_REAL S, XM_REAL T, XM_REAL g, XM_REAL H,
                                   XM_REAL Ib, XM_REAL r, XM_REAL b, XM_REAL v) {
  XM_REAL v2 = v * v, vt = v * sqrt(T);
  XM_REAL lambda = (-r + g * b + (XM_REAL)0.5 * g * (g - (XM_REAL)1) * v2) * T;
  XM_REAL d = -(log(S / H) + (b + (g - (XM_REAL)0.5) * v2) * T) / vt;
  XM_REAL kappa = (XM_REAL)2 * b / v2 + (XM_REAL)2 * g - (XM_REAL)1;
  XM_REAL lis = log(Ib / S);
  return XM_FN(xm_bs_pair)(lcoef + lambda + g * log(S), d, kappa * lis, d - (XM_REAL)2 * lis / vt);
}

/* exp(lc) * m for a probability m >= 0, in log space; a probability of 0
 * (underflow) is a term of 0, whatever exp(lc) would be. */
XM_INLINE XM_REAL XM_FN(xm_bs_term)(XM_REAL lc, XM_REAL m) {
  XM_REAL t = exp(lc + log(m > (XM_REAL)0 ? m : (XM_REAL)1));
  return m > (XM_REAL)0 ? t : (XM_REAL)0;
}

/* coef * psi(S, T, gamma, H, I2, I1, t1) of Haug's formula (the second step),
 * coef > 0 given by its log. */
XM_INLINE XM_REAL XM_FN(xm_bs_psi)(XM_REAL lcoef, XM_REAL S, XM_REAL T, XM_REAL g, XM_REAL H,
                                   XM_REAL I2, XM_REAL I1, XM_REAL t1, XM_REAL r, XM_REAL b,
                                   XM_REAL v) {
  XM_REAL v2 = v * v, mu = b + (g - (XM_REAL)0.5) * v2;
  XM_REAL st1 = v * sqrt(t1), sT = v * sqrt(T), rho = sqrt(t1 / T);
  XM_REAL e1 = (log(S / I1) + mu * t1) / st1, e2 = (log(I2 * I2 / (S * I1)) + mu * t1) / st1;
  XM_REAL e3 = (log(S / I1) - mu * t1) / st1, e4 = (log(I2 * I2 / (S * I1)) - mu * t1) / st1;
  XM_REAL f1 = (log(S / H) + mu * T) / sT, f2 = (log(I2 * I2 / (S * H)) + mu * T) / sT;
  XM_REAL f3 = (log(I1 * I1 / (S * H)) + mu * T) / sT;
  XM_REAL f4 = (log(S * I1 * I1 / (H * I2 * I2)) + mu * T) / sT;
  XM_REAL lambda = -r + g * b + (XM_REAL)0.5 * g * (g - (XM_REAL)1) * v2;
  XM_REAL kappa = (XM_REAL)2 * b / v2 + (XM_REAL)2 * g - (XM_REAL)1;
  XM_REAL lc = lcoef + lambda * T + g * log(S);
  XM_REAL m1 = XM_FN(xm_bvn)(-e1, -f1, rho), m2 = XM_FN(xm_bvn)(-e2, -f2, rho);
  XM_REAL m3 = XM_FN(xm_bvn)(-e3, -f3, -rho), m4 = XM_FN(xm_bvn)(-e4, -f4, -rho);
  return XM_FN(xm_bs_term)(lc, m1) - XM_FN(xm_bs_term)(lc + kappa * log(I2 / S), m2) -
         XM_FN(xm_bs_term)(lc + kappa * log(I1 / S), m3) +
         XM_FN(xm_bs_term)(lc + kappa * log(I1 / I2), m4);
}

/* The call of Bjerksund and Stensland (2002) for b < r (S, K > 0, T > 0, v > 0). */
XM_INLINE XM_REAL XM_FN(xm_bs2002_call)(XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r, XM_REAL b,
                                        XM_REAL v) {
  XM_REAL v2 = v * v;
  XM_REAL t1 = (XM_REAL)0.61803398874989484820 * T; /* (sqrt 5 - 1) / 2 T */
  XM_REAL beta = ((XM_REAL)0.5 - b / v2) +
                 sqrt((b / v2 - (XM_REAL)0.5) * (b / v2 - (XM_REAL)0.5) + (XM_REAL)2 * r / v2);
  XM_REAL binf = beta / (beta - (XM_REAL)1) * K;
  XM_REAL rb = r / (r - b) * K;
  XM_REAL b0 = K > rb ? K : rb;
  XM_REAL span = binf - b0;
  XM_REAL h1 = -(b * t1 + (XM_REAL)2 * v * sqrt(t1)) * K * K / (span * b0);
  XM_REAL h2 = -(b * T + (XM_REAL)2 * v * sqrt(T)) * K * K / (span * b0);
  /* h > 0 (b < 0, low vol, long T: b t + 2 v sqrt t < 0) would put the
   * trigger below the strike: the perpetual trigger B_inf then (a feasible
   * exercise strategy, so still a lower bound; not in Haug) */
  XM_REAL I1 = h1 > (XM_REAL)0 ? binf : b0 + span * ((XM_REAL)1 - exp(h1));
  XM_REAL I2 = h2 > (XM_REAL)0 ? binf : b0 + span * ((XM_REAL)1 - exp(h2));
  /* alpha_i S^beta = (I_i - K) (S / I_i)^beta: logs of the coefficients */
  XM_REAL la1 = log(I1 - K) - beta * log(I1), la2 = log(I2 - K) - beta * log(I2);
  XM_REAL lK = log(K), z = (XM_REAL)0;
  XM_REAL c = (I2 - K) * exp(beta * log(S / I2)) -
              XM_FN(xm_bs_phi)(la2, S, t1, beta, I2, I2, r, b, v) +
              XM_FN(xm_bs_phi)(z, S, t1, (XM_REAL)1, I2, I2, r, b, v) -
              XM_FN(xm_bs_phi)(z, S, t1, (XM_REAL)1, I1, I2, r, b, v) -
              XM_FN(xm_bs_phi)(lK, S, t1, z, I2, I2, r, b, v) +
              XM_FN(xm_bs_phi)(lK, S, t1, z, I1, I2, r, b, v) +
              XM_FN(xm_bs_phi)(la1, S, t1, beta, I1, I2, r, b, v) -
              XM_FN(xm_bs_psi)(la1, S, T, beta, I1, I2, I1, t1, r, b, v) +
              XM_FN(xm_bs_psi)(z, S, T, (XM_REAL)1, I1, I2, I1, t1, r, b, v) -
              XM_FN(xm_bs_psi)(z, S, T, (XM_REAL)1, K, I2, I1, t1, r, b, v) -
              XM_FN(xm_bs_psi)(lK, S, T, z, I1, I2, I1, t1, r, b, v) +
              XM_FN(xm_bs_psi)(lK, S, T, z, K, I2, I1, t1, r, b, v);
  return S >= I2 ? S - K : c; /* at or past the trigger: exercise now */
}

/* American option of type `type` (carry: b = r - q; without carry the
 * underlying is a futures price, b = 0), METHODOLOGY.md section 2.1. */
XM_INLINE XM_REAL XM_FN(xm_price_american)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                           XM_REAL q, XM_REAL sigma, int call) {
  XM_REAL b = XM_TYPE_HAS_CARRY(type) ? r - q : (XM_REAL)0;
  XM_REAL iv = XM_FN(xm_intrinsic)(S, K, call);
  XM_REAL s = sigma * sqrt(T > (XM_REAL)0 ? T : (XM_REAL)0);
  XM_REAL euro = XM_FN(xm_black)(S * exp(b * T), K, exp(-r * T), s, call);
  /* the put as the call of the transformation: S <-> K, r -> r - b, b -> -b */
  XM_REAL cs = call ? S : K, ck = call ? K : S, cr = call ? r : r - b, cb = call ? b : -b;
  int live = T > (XM_REAL)0 && sigma > (XM_REAL)0 && cb < cr;
  XM_REAL v = live ? sigma : (XM_REAL)1, tt = live ? T : (XM_REAL)1; /* any valid inputs */
  XM_REAL am =
      XM_FN(xm_bs2002_call)(cs, ck, tt, live ? cr : (XM_REAL)0.05, live ? cb : (XM_REAL)0, v);
  XM_REAL lo = euro > iv ? euro : iv, hi = call ? S : K;
  XM_REAL val = live && am > lo ? am : lo; /* a NaN fails the comparison: lo */
  val = val < hi ? val : hi;
  return T > (XM_REAL)0 ? val : iv;
}
