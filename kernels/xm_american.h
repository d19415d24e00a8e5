/* American options by Bjerksund and Stensland (2002), "Closed form valuation
 * of American options", as Haug, "The Complete Guide to Option Pricing
 * Formulas" (2nd ed., 2007, ch. 3) writes it (METHODOLOGY.md section 2.1):
 * the two-step flat exercise boundary, calls as given, puts by the put-call
 * transformation P(S, K, T, r, b, s) = C(K, S, T, r - b, -b, s).
 *
 * Templated on precision like xm_pricing.h, which includes it: no include guard on purpose.
 * In the common subset of C99 and OpenCL C. Written for the
 * revaluation loops: no loop or branch that depends on a value (the
 * Gauss-Legendre sum is written out; the cases are selects), and every
 * power and exponential is taken in log space, so that no term overflows at
 * low vol (literally, an at-the-money put at sigma = 1% overflows to NaN).
 * The result is never below the European value nor the intrinsic value, nor
 * above the underlying (call) or the strike (put). */

/* Always in float64. In float32 the formula's dozen terms, each of the size
 * of the strike and each an exponential of a sum like beta ln S, cancel to
 * about 2e-6 S (30 ulp of the spot), beyond the single-precision bound of
 * section 5 (1e-6 of the notional): an includer that instantiates float
 * defines XM_AMERICAN_F64 as the name of the double instantiation, and the
 * float one converts (docs/methodology-notes.md, note 10). */
#ifdef XM_AMERICAN_F64
/* American option of type `type` (carry: b = r - q; without carry the
 * underlying is a futures price, b = 0), METHODOLOGY.md section 2.1. */
XM_INLINE_HOT XM_REAL XM_FN(xm_price_american)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                               XM_REAL q, XM_REAL sigma, int call) {
  return (XM_REAL)XM_AMERICAN_F64(type, (double)S, (double)K, (double)T, (double)r, (double)q,
                                  (double)sigma, call);
}
#else
/* log N(x): N by erfc where it is a normal number, the asymptotic series
 * N(x) ~ phi(x) / -x (1 - 1/x^2 + 3/x^4 - 15/x^6) below -20. */
XM_INLINE_HOT XM_REAL XM_FN(xm_log_ncdf)(XM_REAL x) {
  XM_REAL direct = log(XM_FN(xm_ncdf)(x));
  XM_REAL u = x < (XM_REAL)-20 ? x : (XM_REAL)-20, i2 = (XM_REAL)1 / (u * u);
  XM_REAL series = (XM_REAL)-0.5 * u * u - log(-u) - (XM_REAL)0.91893853320467274178 +
                   log((XM_REAL)1 - i2 + (XM_REAL)3 * i2 * i2 - (XM_REAL)15 * i2 * i2 * i2);
  return x < (XM_REAL)-20 ? series : direct;
}

/* The bivariate normal P(X < a, Y < b) with correlation sg * rho, sg = +-1,
 * rho = sqrt(t1 / T) = sqrt((sqrt 5 - 1) / 2) = 0.786..., the only
 * correlation of Bjerksund-Stensland (2002): Drezner and Wesolowsky (1989)
 * with Genz's (2004) 20-point Gauss-Legendre rule for 0.75 <= |rho| < 0.925,
 * absolute error below 1e-15. The rule's nodes depend on rho alone, so they
 * are constants: s_i = sin(asin(rho) (1 -+ x_i) / 2) (for -rho: -s_i), its
 * weight w_i and 1 / (1 - s_i^2), written out (no loop: each lane of a
 * vectorised revaluation loop takes the same 20 exponentials). */
#define XM__BVN_T(s, w, c) (XM_REAL)(w) * exp((XM_REAL)(c) * (sg * (XM_REAL)(s)*hk - hs))
XM_INLINE_HOT XM_REAL XM_FN(xm_bvn_bs)(XM_REAL a, XM_REAL b, XM_REAL sg) {
  XM_REAL hk = a * b, hs = (XM_REAL)0.5 * (a * a + b * b);
  XM_REAL sum = XM__BVN_T(0.00310778148764632, 0.017614007139152121, 1.0000096583990588) +
                XM__BVN_T(0.016293999704091955, 0.040601429800386939, 1.0002655649323664) +
                XM__BVN_T(0.039684053215025404, 0.062672048334109054, 1.0015773080622903) +
                XM__BVN_T(0.072699733973249997, 0.083276741576704755, 1.0053133336233264) +
                XM__BVN_T(0.11447708818931851, 0.1019301198172404, 1.0132790253975419) +
                XM__BVN_T(0.16386275803491718, 0.1181945319615184, 1.0275918729470779) +
                XM__BVN_T(0.21942426297223605, 0.13168863844917661, 1.0505823982738265) +
                XM__BVN_T(0.27948648328202275, 0.1420961093183821, 1.0847312831596108) +
                XM__BVN_T(0.34219864653391818, 0.14917298647260371, 1.1326309913265575) +
                XM__BVN_T(0.40562924682346296, 0.15275338713072589, 1.1969383550374391) +
                XM__BVN_T(0.78422686671408737, 0.017614007139152121, 2.5974820633263627) +
                XM__BVN_T(0.77597676579545038, 0.040601429800386939, 2.5134465687510725) +
                XM__BVN_T(0.76100601509325216, 0.062672048334109054, 2.3760314783761056) +
                XM__BVN_T(0.73914021507488503, 0.083276741576704755, 2.2042369105460815) +
                XM__BVN_T(0.71023239964366169, 0.1019301198172404, 2.0178786530798662) +
                XM__BVN_T(0.6742523300826021, 0.1181945319615184, 1.833571163049641) +
                XM__BVN_T(0.63138085195917781, 0.13168863844917661, 1.6629023552168254) +
                XM__BVN_T(0.58209080582330897, 0.1420961093183821, 1.5124696457382543) +
                XM__BVN_T(0.52719916280123846, 0.14917298647260371, 1.3849244604071003) +
                XM__BVN_T(0.46787933456224073, 0.15275338713072589, 1.2802639543102603);
  /* asin(rho) / (4 pi), signed as the correlation */
  XM_REAL m = sg * (XM_REAL)0.071982350518038532 * sum + XM_FN(xm_ncdf)(a) * XM_FN(xm_ncdf)(b);
  return m > (XM_REAL)0 ? m : (XM_REAL)0;
}
#undef XM__BVN_T

/* exp(lc) * N(d) - exp(lc + k) * N(d2), each product in log space. */
XM_INLINE_HOT XM_REAL XM_FN(xm_bs_pair)(XM_REAL lc, XM_REAL d, XM_REAL k, XM_REAL d2) {
  return exp(lc + XM_FN(xm_log_ncdf)(d)) - exp(lc + k + XM_FN(xm_log_ncdf)(d2));
}

/* coef * phi(S, T, gamma, H, I) of Haug's formula (I is Ib here: <complex.h>
 * names the imaginary unit I), coef > 0 given by its log lcoef:
 * coef exp(lambda) S^gamma [N(d) - (I/S)^kappa N(d - 2 ln(I/S) / (v sqrt T))]. */
XM_INLINE_HOT XM_REAL XM_FN(xm_bs_phi)(XM_REAL lcoef, XM_REAL S, XM_REAL T, XM_REAL g, XM_REAL H,
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
XM_INLINE_HOT XM_REAL XM_FN(xm_bs_term)(XM_REAL lc, XM_REAL m) {
  XM_REAL t = exp(lc + log(m > (XM_REAL)0 ? m : (XM_REAL)1));
  return m > (XM_REAL)0 ? t : (XM_REAL)0;
}

/* coef * psi(S, T, gamma, H, I2, I1, t1) of Haug's formula (the second step),
 * coef > 0 given by its log. */
XM_INLINE_HOT XM_REAL XM_FN(xm_bs_psi)(XM_REAL lcoef, XM_REAL S, XM_REAL T, XM_REAL g, XM_REAL H,
                                       XM_REAL I2, XM_REAL I1, XM_REAL t1, XM_REAL r, XM_REAL b,
                                       XM_REAL v) {
  XM_REAL v2 = v * v, mu = b + (g - (XM_REAL)0.5) * v2;
  XM_REAL st1 = v * sqrt(t1), sT = v * sqrt(T);
  XM_REAL e1 = (log(S / I1) + mu * t1) / st1, e2 = (log(I2 * I2 / (S * I1)) + mu * t1) / st1;
  XM_REAL e3 = (log(S / I1) - mu * t1) / st1, e4 = (log(I2 * I2 / (S * I1)) - mu * t1) / st1;
  XM_REAL f1 = (log(S / H) + mu * T) / sT, f2 = (log(I2 * I2 / (S * H)) + mu * T) / sT;
  XM_REAL f3 = (log(I1 * I1 / (S * H)) + mu * T) / sT;
  XM_REAL f4 = (log(S * I1 * I1 / (H * I2 * I2)) + mu * T) / sT;
  XM_REAL lambda = -r + g * b + (XM_REAL)0.5 * g * (g - (XM_REAL)1) * v2;
  XM_REAL kappa = (XM_REAL)2 * b / v2 + (XM_REAL)2 * g - (XM_REAL)1;
  XM_REAL lc = lcoef + lambda * T + g * log(S);
  /* correlation rho = sqrt(t1 / T) (t1 = 0.618... T) for m1, m2; -rho for m3, m4 */
  XM_REAL m1 = XM_FN(xm_bvn_bs)(-e1, -f1, (XM_REAL)1), m2 = XM_FN(xm_bvn_bs)(-e2, -f2, (XM_REAL)1);
  XM_REAL m3 = XM_FN(xm_bvn_bs)(-e3, -f3, (XM_REAL)-1);
  XM_REAL m4 = XM_FN(xm_bvn_bs)(-e4, -f4, (XM_REAL)-1);
  return XM_FN(xm_bs_term)(lc, m1) - XM_FN(xm_bs_term)(lc + kappa * log(I2 / S), m2) -
         XM_FN(xm_bs_term)(lc + kappa * log(I1 / S), m3) +
         XM_FN(xm_bs_term)(lc + kappa * log(I1 / I2), m4);
}

/* The call of Bjerksund and Stensland (2002) for b < r (S, K > 0, T > 0, v > 0). */
XM_INLINE_HOT XM_REAL XM_FN(xm_bs2002_call)(XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r, XM_REAL b,
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
XM_INLINE_HOT XM_REAL XM_FN(xm_price_american)(int type, XM_REAL S, XM_REAL K, XM_REAL T, XM_REAL r,
                                               XM_REAL q, XM_REAL sigma, int call) {
  XM_REAL b = XM_TYPE_HAS_CARRY(type) ? r - q : (XM_REAL)0;
  XM_REAL iv = XM_FN(xm_intrinsic)(S, K, call);
  XM_REAL s = sigma * sqrt(T > (XM_REAL)0 ? T : (XM_REAL)0);
  XM_REAL euro = XM_FN(xm_black)(S * exp(b * T), K, exp(-r * T), s, call);
  /* the put as the call of the transformation: S <-> K, r -> r - b, b -> -b */
  XM_REAL cs = call ? S : K, ck = call ? K : S, cr = call ? r : r - b, cb = call ? b : -b;
  /* & not &&: no control flow, the loop stays one vectorisable block */
  XM_MASK live = (T > (XM_REAL)0) & (sigma > (XM_REAL)0) & (cb < cr);
  XM_REAL v = live ? sigma : (XM_REAL)1, tt = live ? T : (XM_REAL)1; /* any valid inputs */
  XM_REAL am =
      XM_FN(xm_bs2002_call)(cs, ck, tt, live ? cr : (XM_REAL)0.05, live ? cb : (XM_REAL)0, v);
  XM_REAL lo = euro > iv ? euro : iv, hi = call ? S : K;
  XM_REAL val = (live & (am > lo)) ? am : lo; /* a NaN fails the comparison: lo */
  val = val < hi ? val : hi;
  return T > (XM_REAL)0 ? val : iv;
}
#endif /* XM_AMERICAN_F64 */
