/* Synthetic books of any size: see xm_generate.h. The model, in short:
 *
 * Factors come in underlyings ("groups"): the demo's five (SPX/ES, BTC/BTCF,
 * CL, NDX/NQ, ETH, with the demo's levels) and then, cycling, stocks, equity
 * indices, commodities and cryptocurrencies, each a price factor, its implied
 * vol factor and (indices, crypto) a futures price factor, until F factors;
 * the last group may lack its vol or futures factor. Products per group:
 * an ETF / stock / coin (spot), a future, and option classes ("roots") on the
 * spot, the ETF and the future. The instruments are the linear products plus
 * a grid of options per root: expiries 1 day .. 2 years (futures and crypto
 * options <= 1 year), strikes -2.5 .. +2.5 ATM standard deviations around the
 * forward on a listed increment, implied vol = term-structure ATM - slope*k +
 * curvature*k^2 (k = ln(K/F)/sqrt(T)), as datasets/build_demo.py does.
 *
 * Version 2 (FORMAT.md section 1): ETF and single-stock options are
 * american_option (US equity options are American-style); every coin has a
 * linear USD-settled perpetual (1 coin a contract) and Deribit-style
 * inverse products settled in the coin: the perpetual COIN-PERPETUAL and
 * the quarterly COIN-29MAR19 (face value 10 USD a contract, ETH 1 USD, on
 * the coin's futures factor where it has one, else on its index) and
 * inverse options (1 coin each, r = 0); perpetuals fund at 10.95% a year
 * (0.01% per 8 hours). After the demo's five groups comes the Euro Stoxx 50
 * (SX5E, EURUSD, SX5E.iv, FESX): the future FESXH9 and index options OESX,
 * 10 EUR per point, in EUR, held in USD accounts. /fx maps every coin to its
 * price factor and EUR to EURUSD. Coin-margined accounts (currency BTC, ETH,
 * ...) hold their coin's inverse options hedged with the inverse perpetual or
 * future, or a perpetual-vs-future calendar basis.
 *
 * Accounts take the demo's templates in the demo's proportions; each gets a
 * number of positions (lognormal around N/A, larger for market makers, summing
 * to N) and fills it with "units" of its template (an option book and its
 * delta hedge, a basis pair, a covered write, ...). About 12% of the accounts
 * are not cross-margin eligible.
 *
 * History: T weekdays ending at the valuation date. A GARCH(1,1) market
 * factor, a factor per asset class and idiosyncratic noise, all Student-t
 * (4 d.o.f.), drive the price factors; vol factors mean-revert with shocks
 * correlated (negatively) with their price; futures factors are the price
 * plus an AR(1) basis change. */
#pragma STDC FP_CONTRACT OFF

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <Random123/philox.h>

#include "xm_generate.h"
#include "xm_portable.h"

/* ---- Portable math: only +, -, *, /, sqrt, floor, frexp, ldexp (exact or
 * correctly rounded in IEEE-754), so results do not depend on the libm. ---- */

#define XG_LN2_HI 6.93147180369123816490e-01 /* ln 2, upper bits (exact times |k| < 2^20) */
#define XG_LN2_LO 1.90821492927058770002e-10
#define XG_INV_LN2 1.44269504088896338700e+00

double xm_gen_exp(double x) {
  if (x != x)
    return x;
  if (x > 709.0)
    x = 709.0;
  if (x < -740.0)
    return 0.0;
  double k = floor(x * XG_INV_LN2 + 0.5);
  double r = (x - k * XG_LN2_HI) - k * XG_LN2_LO; /* |r| <= 0.35 */
  double p = 1.0;
  for (int n = 18; n >= 1; n--)
    p = 1.0 + p * r / (double)n;
  return ldexp(p, (int)k);
}

double xm_gen_log(double x) {
  if (!(x > 0.0))
    return x == 0.0 ? -INFINITY : NAN;
  int e;
  double m = frexp(x, &e); /* x = m 2^e, m in [0.5, 1) */
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e--;
  }
  double s = (m - 1.0) / (m + 1.0), s2 = s * s; /* |s| <= 0.1716 */
  double p = 1.0 / 27.0;
  for (int j = 12; j >= 0; j--)
    p = p * s2 + 1.0 / (double)(2 * j + 1);
  double de = (double)e;
  return de * XG_LN2_HI + (2.0 * s * p + de * XG_LN2_LO);
}

/* Zelen & Severo (Abramowitz & Stegun 26.2.17), |error| < 7.5e-8. */
double xm_gen_ncdf(double x) {
  double ax = x < 0.0 ? -x : x;
  if (ax > 40.0)
    return x < 0.0 ? 0.0 : 1.0;
  double t = 1.0 / (1.0 + 0.2316419 * ax);
  double poly = t * (0.319381530 +
                     t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
  double tail = 0.39894228040143267794 * xm_gen_exp(-0.5 * ax * ax) * poly;
  return x < 0.0 ? tail : 1.0 - tail;
}

/* Acklam's rational approximation of the normal quantile. */
double xm_gen_ninv(double p) {
  static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                              -2.759285104469687e+02, 1.383577518672690e+02,
                              -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                              6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                              -2.400758277161838e+00, -2.549732539343734e+00,
                              4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                              3.754408661907416e+00};
  const double plow = 0.02425;
  if (!(p > 0.0))
    return -INFINITY;
  if (!(p < 1.0))
    return INFINITY;
  if (p < plow || p > 1.0 - plow) {
    double q = sqrt(-2.0 * xm_gen_log(p < plow ? p : 1.0 - p));
    double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    return p < plow ? x : -x;
  }
  double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

#define xg_exp xm_gen_exp
#define xg_log xm_gen_log

static double xg_round_to(double x, double step) { return floor(x / step + 0.5) * step; }
static double xg_round4(double x) { return floor(x * 1e4 + 0.5) / 1e4; }
static double xg_clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* The 1-2-5 number nearest below-or-at x (x > 0). */
static double xg_nice(double x) {
  double p = 1.0;
  while (p * 10.0 <= x)
    p *= 10.0;
  while (p > x && p > 1e-12)
    p /= 10.0;
  if (5.0 * p <= x)
    return 5.0 * p;
  if (2.0 * p <= x)
    return 2.0 * p;
  return p;
}

/* ---- Random draws: Philox4x32-10 keyed by the seed; the counter names the
 * stream, the item (account, group, day) and the draw number. ---- */

enum {
  XG_S_LEVELS = 1, /* group parameters, id = group */
  XG_S_MARKET,     /* history market factor, id 0 */
  XG_S_CLASS,      /* history class factor, id = class */
  XG_S_IDIO,       /* history idiosyncratic price noise, id = group */
  XG_S_VOLN,       /* history vol noise, id = group */
  XG_S_BASIS,      /* history basis noise, id = group */
  XG_S_ACCOUNT,    /* template, eligibility, size, id = account */
  XG_S_UNITS,      /* the account's positions, id = account */
  XG_S_FX,         /* history of an FX factor (EURUSD), id = group */
  XG_S_LIQ,        /* liquidity and collateral columns of a group's factors, id = group */
  XG_S_COLL        /* the account's collateral holdings, id = account */
};

typedef struct xg_rng {
  uint64_t seed, id;
  uint32_t stream, n;
  int pos;
  double buf[2];
} xg_rng;

static void xg_rng_init(xg_rng *r, uint64_t seed, uint32_t stream, uint64_t id) {
  r->seed = seed;
  r->id = id;
  r->stream = stream;
  r->n = 0;
  r->pos = 2;
}

static double xg_u01(uint32_t hi, uint32_t lo) {
  return ((double)(hi >> 5) * 67108864.0 + (double)(lo >> 6) + 0.5) * (1.0 / 9007199254740992.0);
}

/* A uniform in (0, 1). */
static double xg_u(xg_rng *r) {
  if (r->pos >= 2) {
    philox4x32_ctr_t c;
    philox4x32_key_t k;
    c.v[0] = (uint32_t)r->id;
    c.v[1] = (uint32_t)(r->id >> 32);
    c.v[2] = r->n++;
    c.v[3] = r->stream;
    k.v[0] = (uint32_t)r->seed;
    k.v[1] = (uint32_t)(r->seed >> 32);
    philox4x32_ctr_t o = philox4x32(c, k);
    r->buf[0] = xg_u01(o.v[0], o.v[1]);
    r->buf[1] = xg_u01(o.v[2], o.v[3]);
    r->pos = 0;
  }
  return r->buf[r->pos++];
}

static double xg_unif(xg_rng *r, double lo, double hi) { return lo + (hi - lo) * xg_u(r); }
static double xg_norm(xg_rng *r) { return xm_gen_ninv(xg_u(r)); }
static int xg_chance(xg_rng *r, double p) { return xg_u(r) < p; }

/* An integer in [0, n). */
static int64_t xg_int(xg_rng *r, int64_t n) {
  int64_t k = (int64_t)(xg_u(r) * (double)n);
  return k >= n ? n - 1 : k;
}

/* Student-t with 4 degrees of freedom scaled to unit variance. */
static double xg_t4(xg_rng *r) {
  double z = xg_norm(r), c = 0.0;
  for (int i = 0; i < 4; i++) {
    double y = xg_norm(r);
    c += y * y;
  }
  return z / sqrt(c / 4.0) * 0.70710678118654752440;
}

static double xg_loguniform(xg_rng *r, double lo, double hi) {
  return xg_exp(xg_unif(r, xg_log(lo), xg_log(hi)));
}

/* ---- The market: groups of factors, products, option roots ---------------- */

enum { XG_INDEX = 0, XG_STOCK, XG_COMMOD, XG_CRYPTO, XG_NCLASS };
enum { XG_SECURITIES = 0, XG_FUTURES, XG_CRYPTO_SILO };
static const char *const xg_silos[3] = {"securities", "futures", "crypto"};

#define XG_RATE 0.0245
/* EUR 3-month Euribor at the end of 2018 (about -0.31%): the EUR products' rate */
#define XG_EUR_RATE (-0.0031)
/* Perpetual funding, annualised: the exchanges' baseline 0.01% per 8 hours
 * (BitMEX's and Binance's interest-rate component when the premium is
 * flat) = 0.0001 x 3 x 365 = 10.95% a year (datasets/README.md). */
#define XG_FUNDING 0.1095
#define XG_VALUATION_DATE "2018-12-31"
#define XG_T_QUARTERLY (74.0 / 365.0)

/* The demo book's underlyings (datasets/README.md), in the order F adds them. */
typedef struct xg_demo {
  int cls;
  const char *px, *iv, *fut;
  double px_l, iv_l, fut_l, q;
  const char *spot_id;
  double spot_mult;
  const char *fut_id;
  double fut_mult;
  const char *opt_root, *etf_root, *fopt_root;
  double opt_mult, opt_step, etf_mult, etf_step, fopt_step;
  double theta, slope, curv;
  /* version 2: the products' currency when not the reporting one, its /fx
   * factor and level (today's value of one unit in USD); the face value in
   * USD of one inverse future / perpetual contract (Deribit: BTC 10, ETH 1) */
  const char *ccy, *fx;
  double fx_l, inv_face;
} xg_demo;

static const xg_demo xg_demos[] = {
    {XG_INDEX, "SPX",  "SPX.iv", "ES",  2506.85, 0.2542, 2508.75, 0.021, "SPY",
     0.0997,   "ESH9", 50.0,     "SPX", "SPY",   "ESO",  100.0,   5.0,   10.0,
     10.0,     5.0,    0.19,     0.20,  0.05,    NULL,   NULL,    0.0,   0.0},
    {XG_CRYPTO, "BTC",   "BTC.iv", "BTCF", 3742.70, 0.75,   3770.0, 0.0,   "BTC-USD",
     1.0,       "BTCF9", 5.0,      "DBTC", NULL,    "BTCO", 1.0,    250.0, 0.0,
     0.0,       250.0,   0.70,     0.05,   0.10,    NULL,   NULL,   0.0,   10.0},
    {XG_COMMOD, "CL",   "CL.iv", NULL, 45.41, 0.50, 0.0,  0.0, NULL,
     0.0,       "CLG9", 1000.0,  NULL, NULL,  "LO", 0.0,  0.0, 0.0,
     0.0,       0.5,    0.38,    0.10, 0.06,  NULL, NULL, 0.0, 0.0},
    {XG_INDEX, "NDX",  "NDX.iv", "NQ",  6329.96, 0.305, 6347.25, 0.011, "QQQ",
     0.02437,  "NQH9", 20.0,     "NDX", NULL,    "NQO", 100.0,   25.0,  0.0,
     0.0,      25.0,   0.23,     0.18,  0.05,    NULL,  NULL,    0.0,   0.0},
    {XG_CRYPTO, "ETH", "ETH.iv", NULL,   133.37, 0.95, 0.0,  0.0,  "ETH-USD",
     1.0,       NULL,  0.0,      "DETH", NULL,   NULL, 1.0,  10.0, 0.0,
     0.0,       0.0,   0.85,     0.05,   0.10,   NULL, NULL, 0.0,  1.0},
    /* Euro Stoxx 50 (close 3001.42 on 2018-12-28), its vol (VSTOXX about 22, an
     * estimate), the March 2019 future FESXH9 at fair value (r -0.31%, q 3.5%,
     * 74 days) and Euro Stoxx 50 index options OESX, 10 EUR per index point
     * (Eurex), in EUR; EURUSD 1.1450 (ECB reference rate of 2018-12-31). No ETF. */
    {XG_INDEX, "SX5E",   "SX5E.iv", "FESX", 3001.42, 0.22,  2978.0,   0.035,  NULL,
     0.0,      "FESXH9", 10.0,      "OESX", NULL,    NULL,  10.0,     25.0,   0.0,
     0.0,      0.0,      0.18,      0.20,   0.05,    "EUR", "EURUSD", 1.1450, 0.0},
};
#define XG_NDEMO ((int)(sizeof xg_demos / sizeof xg_demos[0]))

/* After the demo's groups: S stock, I index, C commodity, X crypto. */
static const char xg_cycle[] = "SSSISSSCSSSXSSSISSSC";

typedef struct xg_group {
  int cls;
  char name[24];
  int32_t f_px, f_iv, f_fut; /* factor rows, -1 absent (a commodity's f_px is its futures) */
  int32_t f_fx;              /* the /fx factor of ccy (EURUSD), -1 for USD */
  char ccy[16];              /* the currency of the group's (non-inverse) products */
  int needs_fx;              /* its products need f_fx (none without it) */
  double rate, inv_face;
  int32_t i_perp, i_iperp, i_ifut; /* crypto: linear perpetual, inverse perpetual, future */
  int r_iopt;                      /* crypto: inverse (coin-settled) options root */
  double px, iv, fut, q;
  double spot_mult, fut_mult, etf_ratio;
  int32_t i_spot, i_fut;    /* instrument rows, -1 absent */
  int r_opt, r_etf, r_fopt; /* option roots, -1 absent */
  double theta, slope, curv;
  /* history */
  double load_m, load_c, rho_iv, volvol, b_mu, b_phi, b_s, beta;
  /* span scan ranges */
  double R, V;
} xg_group;

typedef struct xg_root {
  int group, type, silo;
  int32_t und, volf;
  double S, vol0, mult, q, step, id_scale, theta, slope, curv, weight, rate;
  int maxdays;
  char name[24];
  char ccy[16]; /* settlement currency */
  int64_t n;    /* options */
  int n_exp;
  int32_t *days; /* [n_exp] ascending */
  int64_t *base; /* [n_exp + 1]: first instrument row of each expiry; put, call per strike */
} xg_root;

/* Candidates (groups or roots) of a template; cum: cumulative weights
 * (roots: their number of options, so that big option classes trade more). */
typedef struct xg_list {
  int n;
  int *v;
  double *cum;
} xg_list;

typedef struct xg {
  const xm_gen_params *p;
  xm_portfolio *P;
  int n_groups, n_roots;
  xg_group *g;
  xg_root *r;
  int64_t n_linear;
  /* candidates per template */
  xg_list mm_eq, mm_fopt, mm_com, mm_cry, roots;   /* roots, weighted */
  xg_list basis, shares, cry_basis, coins, linear; /* groups / instruments */
  xg_list inv;                                     /* crypto groups (coin-margined accounts) */
  int32_t *linear_inst;
  signed char *linear_cls; /* class of each linear instrument */
} xg;

/* Adds a factor row; returns it. */
static int32_t xg_factor(xm_portfolio *P, const char *name, int kind, double level) {
  int32_t f = (int32_t)P->n_factors++;
  P->factor_name[f] = strdup(name);
  P->factor_kind[f] = kind;
  P->factor_level[f] = level;
  return f;
}

/* Futures level and contract size for a spot level: fair value with carry. */
static void xg_group_common(xg_group *gr) {
  switch (gr->cls) {
  case XG_INDEX:
    gr->load_m = 0.88, gr->load_c = 0.36, gr->rho_iv = -0.75, gr->volvol = 1.2;
    gr->b_mu = 0.0010, gr->b_phi = 0.95, gr->b_s = 0.0004;
    gr->R = 3.1, gr->V = 0.22;
    break;
  case XG_STOCK:
    gr->load_m = 0.55 * gr->beta, gr->load_c = 0.35, gr->rho_iv = -0.55, gr->volvol = 0.9;
    gr->R = 3.5, gr->V = 0.22;
    break;
  case XG_COMMOD:
    gr->load_m = 0.30, gr->load_c = 0.60, gr->rho_iv = -0.35, gr->volvol = 0.9;
    gr->R = 2.7, gr->V = 0.22;
    break;
  default:
    gr->load_m = 0.30, gr->load_c = 0.75, gr->rho_iv = -0.30, gr->volvol = 1.0;
    gr->b_mu = 0.0100, gr->b_phi = 0.90, gr->b_s = 0.0030;
    gr->R = 4.4, gr->V = 0.22;
    break;
  }
  /* scan ranges over a 2-day horizon, from the implied vol */
  double sd2 = gr->iv * sqrt(2.0 / 252.0);
  gr->R = floor(gr->R * sd2 * 1000.0 + 0.5) / 1000.0;
  gr->V = xg_round_to(gr->V * gr->iv, 0.005);
  if (gr->R < 0.005)
    gr->R = 0.005;
  if (gr->V < 0.005)
    gr->V = 0.005;
}

/* Lays out the factors: returns the number of groups, fills g[] and the
 * factor table of P (sized F). */
static int xg_plan_factors(xg *x, uint64_t seed) {
  xm_portfolio *P = x->P;
  int64_t F = x->p->factors;
  int ng = 0, ncls[XG_NCLASS] = {0, 0, 0, 0};
  for (int k = 0; P->n_factors < F; k++) {
    xg_group *gr = &x->g[ng];
    memset(gr, 0, sizeof *gr);
    gr->f_px = gr->f_iv = gr->f_fut = gr->f_fx = -1;
    gr->i_spot = gr->i_fut = gr->i_perp = gr->i_iperp = gr->i_ifut = -1;
    gr->r_opt = gr->r_etf = gr->r_fopt = gr->r_iopt = -1;
    gr->beta = 1.0;
    gr->rate = XG_RATE;
    gr->inv_face = 10.0;
    snprintf(gr->ccy, sizeof gr->ccy, "USD");
    char fut_name[32] = "";
    if (k < XG_NDEMO) {
      const xg_demo *d = &xg_demos[k];
      gr->cls = d->cls;
      snprintf(gr->name, sizeof gr->name, "%s", d->px);
      gr->px = d->px_l, gr->iv = d->iv_l, gr->fut = d->fut_l, gr->q = d->q;
      gr->spot_mult = d->spot_mult, gr->fut_mult = d->fut_mult;
      gr->etf_ratio = 0.1;
      gr->theta = d->theta, gr->slope = d->slope, gr->curv = d->curv;
      if (d->fut)
        snprintf(fut_name, sizeof fut_name, "%s", d->fut);
      if (d->inv_face > 0.0)
        gr->inv_face = d->inv_face;
      if (d->ccy) {
        snprintf(gr->ccy, sizeof gr->ccy, "%s", d->ccy);
        gr->needs_fx = 1;
        gr->rate = XG_EUR_RATE;
      }
    } else {
      xg_rng r;
      xg_rng_init(&r, seed, XG_S_LEVELS, (uint64_t)ng);
      char c = xg_cycle[(k - XG_NDEMO) % (int)(sizeof xg_cycle - 1)];
      gr->cls = c == 'I' ? XG_INDEX : c == 'S' ? XG_STOCK : c == 'C' ? XG_COMMOD : XG_CRYPTO;
      int num = ++ncls[gr->cls];
      switch (gr->cls) {
      case XG_INDEX:
        snprintf(gr->name, sizeof gr->name, "IX%03d", num);
        snprintf(fut_name, sizeof fut_name, "IX%03dF", num);
        gr->px = xg_round_to(xg_loguniform(&r, 800.0, 25000.0), 0.01);
        gr->iv = xg_round4(xg_unif(&r, 0.14, 0.30));
        gr->q = xg_round4(xg_unif(&r, 0.01, 0.03));
        gr->fut = xg_round_to(gr->px * xg_exp((XG_RATE - gr->q) * XG_T_QUARTERLY), 0.25);
        gr->spot_mult = 0.1;
        gr->etf_ratio = 0.1;
        gr->fut_mult = xg_nice(150000.0 / gr->px);
        gr->theta = xg_round4(0.8 * gr->iv);
        gr->slope = 0.20, gr->curv = 0.05;
        break;
      case XG_STOCK:
        snprintf(gr->name, sizeof gr->name, "ST%05d", num);
        gr->px = xg_round_to(xg_loguniform(&r, 5.0, 600.0), 0.01);
        gr->iv = xg_round4(xg_unif(&r, 0.18, 0.65));
        gr->q = xg_round4(xg_unif(&r, 0.0, 0.035));
        gr->beta = xg_unif(&r, 0.6, 1.3);
        gr->spot_mult = 1.0;
        gr->theta = gr->iv;
        gr->slope = 0.12, gr->curv = 0.04;
        break;
      case XG_COMMOD:
        snprintf(gr->name, sizeof gr->name, "CM%03d", num);
        gr->px = xg_loguniform(&r, 2.0, 2500.0);
        gr->px = xg_round_to(gr->px, xg_nice(gr->px * 1e-3));
        gr->iv = xg_round4(xg_unif(&r, 0.22, 0.55));
        gr->fut_mult = xg_nice(90000.0 / gr->px);
        gr->theta = xg_round4(0.8 * gr->iv + 0.05);
        gr->slope = 0.10, gr->curv = 0.06;
        break;
      default:
        snprintf(gr->name, sizeof gr->name, "CR%03d", num);
        snprintf(fut_name, sizeof fut_name, "CR%03dF", num);
        gr->px = xg_loguniform(&r, 0.2, 3000.0);
        gr->px = xg_round_to(gr->px, xg_nice(gr->px * 1e-4));
        gr->iv = xg_round4(xg_unif(&r, 0.65, 1.25));
        gr->fut = xg_round_to(gr->px * xg_exp(0.10 * 26.0 / 365.0), xg_nice(gr->px * 1e-3));
        gr->spot_mult = 1.0;
        gr->fut_mult = xg_nice(20000.0 / gr->px);
        gr->theta = xg_round4(0.9 * gr->iv);
        gr->slope = 0.05, gr->curv = 0.10;
        break;
      }
    }
    xg_group_common(gr);
    char buf[40];
    gr->f_px = xg_factor(P, gr->name, XM_FACTOR_PRICE, gr->px);
    if (k < XG_NDEMO && xg_demos[k].fx && P->n_factors < F)
      gr->f_fx = xg_factor(P, xg_demos[k].fx, XM_FACTOR_PRICE, xg_demos[k].fx_l);
    if (P->n_factors < F) {
      snprintf(buf, sizeof buf, "%s.iv", gr->name);
      gr->f_iv = xg_factor(P, buf, XM_FACTOR_VOL, gr->iv);
    }
    if (fut_name[0] && P->n_factors < F)
      gr->f_fut = xg_factor(P, fut_name, XM_FACTOR_PRICE, gr->fut);
    if (gr->cls == XG_COMMOD) /* the commodity's price is its futures price */
      gr->fut = gr->px;
    ng++;
  }
  return ng;
}

/* ---- Instruments ------------------------------------------------------------ */

static int xg_add_root(xg *x, int grp, int type, int silo, int32_t und, double S, double mult,
                       double q, double step, double id_scale, int maxdays, const char *name,
                       double weight) {
  xg_group *gr = &x->g[grp];
  xg_root *rt = &x->r[x->n_roots];
  memset(rt, 0, sizeof *rt);
  rt->group = grp;
  rt->type = type;
  rt->silo = silo;
  rt->und = und;
  rt->volf = gr->f_iv;
  rt->S = S;
  rt->vol0 = gr->iv;
  rt->mult = mult;
  rt->q = type == XM_OPTION || type == XM_AMERICAN_OPTION ? q : 0.0;
  rt->rate = gr->rate;
  snprintf(rt->ccy, sizeof rt->ccy, "%s", gr->ccy);
  if (type == XM_INVERSE_OPTION) { /* premium in the coin, priced off the index (r = 0) */
    rt->rate = 0.0;
    snprintf(rt->ccy, sizeof rt->ccy, "%.15s", gr->name);
  }
  rt->step = step;
  rt->id_scale = id_scale;
  rt->theta = gr->theta;
  rt->slope = gr->slope;
  rt->curv = gr->curv;
  rt->maxdays = maxdays;
  rt->weight = weight;
  snprintf(rt->name, sizeof rt->name, "%s", name);
  return x->n_roots++;
}

/* Sets one linear instrument row. */
static void xg_linear_row(xm_portfolio *P, int64_t i, const char *id, int type, int silo,
                          int32_t und, double level, double q, double mult, const char *ccy,
                          double rate, double funding) {
  P->inst_id[i] = strdup(id);
  P->inst_type[i] = type;
  P->inst_silo[i] = silo;
  P->inst_underlying[i] = und;
  P->inst_vol_factor[i] = -1;
  P->inst_strike[i] = level;
  P->inst_expiry[i] = 0.0;
  P->inst_call[i] = 0;
  P->inst_implied_vol[i] = 0.0;
  P->inst_rate[i] = rate;
  P->inst_dividend_yield[i] = type == XM_SPOT ? q : 0.0;
  P->inst_multiplier[i] = mult;
  P->inst_currency[i] = strdup(ccy);
  P->inst_funding_rate[i] = funding;
}

/* Linear products and option roots of every group (rows 0 .. n_linear-1). */
static void xg_products(xg *x) {
  xm_portfolio *P = x->P;
  int64_t i = 0;
  char id[48];
  for (int k = 0; k < x->n_groups; k++) {
    xg_group *gr = &x->g[k];
    const xg_demo *d = k < XG_NDEMO ? &xg_demos[k] : NULL;
    int ccy_ok = !gr->needs_fx || gr->f_fx >= 0; /* a EUR product needs EURUSD */
    /* spot: ETF, stock or coin */
    if (gr->cls != XG_COMMOD && !(d && !d->spot_id)) {
      int silo = gr->cls == XG_CRYPTO ? XG_CRYPTO_SILO : XG_SECURITIES;
      if (d)
        snprintf(id, sizeof id, "%s", d->spot_id);
      else if (gr->cls == XG_INDEX)
        snprintf(id, sizeof id, "%s.ETF", gr->name);
      else if (gr->cls == XG_CRYPTO)
        snprintf(id, sizeof id, "%s-USD", gr->name);
      else
        snprintf(id, sizeof id, "%s", gr->name);
      gr->i_spot = (int32_t)i;
      xg_linear_row(P, i++, id, XM_SPOT, silo, gr->f_px, gr->px, gr->q, gr->spot_mult, gr->ccy,
                    gr->rate, 0.0);
    }
    /* future */
    int32_t f_und = gr->cls == XG_COMMOD ? gr->f_px : gr->f_fut;
    if (f_und >= 0 && ccy_ok) {
      if (d)
        snprintf(id, sizeof id, "%s", d->fut_id);
      else if (gr->cls == XG_COMMOD)
        snprintf(id, sizeof id, "%sG9", gr->name);
      else
        snprintf(id, sizeof id, "%sH9", P->factor_name[f_und]);
      gr->i_fut = (int32_t)i;
      xg_linear_row(P, i++, id, XM_FUTURE, XG_FUTURES, f_und, gr->fut, 0.0, gr->fut_mult, gr->ccy,
                    gr->rate, 0.0);
    }
    /* crypto, version 2: a linear USD-settled perpetual (1 coin a contract,
     * Binance USD-M style), and Deribit-style inverse products settled in the
     * coin: the perpetual and a quarterly future (face value inv_face USD,
     * on the futures factor where the group has one, else on the index) */
    if (gr->cls == XG_CRYPTO) {
      snprintf(id, sizeof id, "%s-USD-PERP", gr->name);
      gr->i_perp = (int32_t)i;
      xg_linear_row(P, i++, id, XM_PERPETUAL, XG_CRYPTO_SILO, gr->f_px, gr->px, 0.0, 1.0, "USD",
                    XG_RATE, XG_FUNDING);
      snprintf(id, sizeof id, "%s-PERPETUAL", gr->name);
      gr->i_iperp = (int32_t)i;
      xg_linear_row(P, i++, id, XM_INVERSE_PERPETUAL, XG_CRYPTO_SILO, gr->f_px, gr->px, 0.0,
                    gr->inv_face, gr->name, 0.0, XG_FUNDING);
      snprintf(id, sizeof id, "%s-29MAR19", gr->name);
      gr->i_ifut = (int32_t)i;
      int32_t fu = gr->f_fut >= 0 ? gr->f_fut : gr->f_px;
      xg_linear_row(P, i++, id, XM_INVERSE_FUTURE, XG_CRYPTO_SILO, fu,
                    gr->f_fut >= 0 ? gr->fut : gr->px, 0.0, gr->inv_face, gr->name, 0.0, 0.0);
    }
    if (gr->f_iv < 0 || !ccy_ok)
      continue;
    /* option roots */
    switch (gr->cls) {
    case XG_INDEX:
      gr->r_opt = xg_add_root(
          x, k, XM_OPTION, XG_SECURITIES, gr->f_px, gr->px, d ? d->opt_mult : 100.0, gr->q,
          d ? d->opt_step : xg_nice(gr->px * 0.002), 1.0, 730, d ? d->opt_root : gr->name, 4.0);
      if (!d || d->etf_root) { /* ETF options are American-style (as SPY's, QQQ's) */
        snprintf(id, sizeof id, "%s.ETF", gr->name);
        gr->r_etf =
            xg_add_root(x, k, XM_AMERICAN_OPTION, XG_SECURITIES, gr->f_px, gr->px,
                        d ? d->etf_mult : 10.0, gr->q, d ? d->etf_step : xg_nice(gr->px * 0.004),
                        1.0 / gr->etf_ratio, 730, d ? d->etf_root : id, 2.0);
      }
      if (gr->f_fut >= 0 && (!d || d->fopt_root))
        gr->r_fopt = xg_add_root(x, k, XM_FUTURE_OPTION, XG_FUTURES, gr->f_fut, gr->fut,
                                 gr->fut_mult, 0.0, d ? d->fopt_step : xg_nice(gr->px * 0.002), 1.0,
                                 365, d ? d->fopt_root : P->factor_name[gr->f_fut], 2.0);
      break;
    case XG_STOCK:
      /* US single-stock options are American-style */
      gr->r_opt = xg_add_root(x, k, XM_AMERICAN_OPTION, XG_SECURITIES, gr->f_px, gr->px, 100.0,
                              gr->q, xg_nice(gr->px * 0.02), 1.0, 730, gr->name, 1.0);
      break;
    case XG_COMMOD:
      gr->r_fopt = xg_add_root(x, k, XM_FUTURE_OPTION, XG_FUTURES, gr->f_px, gr->px, gr->fut_mult,
                               0.0, d ? d->fopt_step : xg_nice(gr->px * 0.01), 1.0, 365,
                               d ? d->fopt_root : gr->name, 2.0);
      break;
    default:
      snprintf(id, sizeof id, "D%s", gr->name);
      gr->r_opt = xg_add_root(x, k, XM_OPTION, XG_CRYPTO_SILO, gr->f_px, gr->px, 1.0, 0.0,
                              d ? d->opt_step : xg_nice(gr->px * 0.05), 1.0, 365,
                              d ? d->opt_root : id, 2.0);
      if (gr->f_fut >= 0) {
        snprintf(id, sizeof id, "%sO", P->factor_name[gr->f_fut]);
        gr->r_fopt = xg_add_root(x, k, XM_FUTURE_OPTION, XG_FUTURES, gr->f_fut, gr->fut,
                                 gr->fut_mult, 0.0, d ? d->fopt_step : xg_nice(gr->px * 0.05), 1.0,
                                 365, d ? d->fopt_root : id, 1.0);
      }
      /* Deribit-style inverse options: on the index, premium in the coin, 1 coin each */
      gr->r_iopt = xg_add_root(x, k, XM_INVERSE_OPTION, XG_CRYPTO_SILO, gr->f_px, gr->px, 1.0, 0.0,
                               d ? d->opt_step : xg_nice(gr->px * 0.05), 1.0, 365, gr->name, 2.0);
      break;
    }
  }
  x->n_linear = i;
}

/* Counts linear products and roots of a factor plan without building it. */
static void xg_count_products(int64_t F, int64_t *n_linear, int64_t *n_roots) {
  int64_t nf = 0, nl = 0, nr = 0;
  for (int k = 0; nf < F; k++) {
    int cls;
    int has_fut_name, has_spot = 1, needs_fx = 0, etf = 1, fopt = 1;
    if (k < XG_NDEMO) {
      cls = xg_demos[k].cls;
      has_fut_name = xg_demos[k].fut != NULL;
      has_spot = xg_demos[k].spot_id != NULL || cls == XG_COMMOD;
      needs_fx = xg_demos[k].fx != NULL;
      etf = xg_demos[k].etf_root != NULL;
      fopt = xg_demos[k].fopt_root != NULL;
    } else {
      char c = xg_cycle[(k - XG_NDEMO) % (int)(sizeof xg_cycle - 1)];
      cls = c == 'I' ? XG_INDEX : c == 'S' ? XG_STOCK : c == 'C' ? XG_COMMOD : XG_CRYPTO;
      has_fut_name = cls == XG_INDEX || cls == XG_CRYPTO;
    }
    nf++;
    int ccy_ok = 1;
    if (needs_fx) {
      ccy_ok = nf < F;
      if (ccy_ok)
        nf++;
    }
    int has_iv = nf < F;
    if (has_iv)
      nf++;
    int has_fut = has_fut_name && nf < F;
    if (has_fut)
      nf++;
    nl += (cls != XG_COMMOD && has_spot) + ((cls == XG_COMMOD || has_fut) && ccy_ok);
    if (cls == XG_CRYPTO)
      nl += 3; /* linear perpetual, inverse perpetual, inverse future */
    if (has_iv && ccy_ok) {
      if (cls == XG_INDEX)
        nr += 1 + etf + (has_fut && fopt);
      else if (cls == XG_CRYPTO)
        nr += 2 + has_fut; /* USD options, options on the future, inverse options */
      else
        nr += 1;
    }
  }
  *n_linear = nl;
  *n_roots = nr;
}

int64_t xm_gen_min_instruments(int64_t factors) {
  if (factors < XM_GEN_MIN_FACTORS || factors > XM_GEN_MAX_FACTORS)
    return 0;
  int64_t nl, nr;
  xg_count_products(factors, &nl, &nr);
  return nl + 2 * nr;
}

static int xg_cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Expiries in order of preference: the demo's list, then weeklies, then every day. */
static const int32_t xg_pref_days[] = {30,  91, 7,   182, 60,  14, 365, 45,
                                       273, 21, 121, 2,   547, 5,  730, 1};

static int xg_root_expiries(xg_root *rt, int64_t pairs) {
  int n_cand = rt->maxdays;
  int64_t want = (int64_t)ceil(sqrt((double)pairs / 4.0));
  if (want < 1)
    want = 1;
  if (want > n_cand)
    want = n_cand;
  rt->n_exp = (int)want;
  rt->days = malloc((size_t)want * sizeof *rt->days);
  rt->base = malloc(((size_t)want + 1) * sizeof *rt->base);
  char *used = calloc((size_t)n_cand + 1, 1);
  if (!rt->days || !rt->base || !used) {
    free(used);
    return -1;
  }
  int n = 0;
  for (size_t j = 0; j < sizeof xg_pref_days / sizeof xg_pref_days[0] && n < want; j++)
    if (xg_pref_days[j] <= rt->maxdays && !used[xg_pref_days[j]]) {
      used[xg_pref_days[j]] = 1;
      rt->days[n++] = xg_pref_days[j];
    }
  for (int dd = 7; dd <= rt->maxdays && n < want; dd += 7)
    if (!used[dd]) {
      used[dd] = 1;
      rt->days[n++] = dd;
    }
  for (int dd = 1; dd <= rt->maxdays && n < want; dd++)
    if (!used[dd]) {
      used[dd] = 1;
      rt->days[n++] = dd;
    }
  free(used);
  qsort(rt->days, (size_t)n, sizeof *rt->days, xg_cmp_i32);
  return 0;
}

static double xg_forward(const xg_root *rt, double T) {
  return rt->type == XM_OPTION || rt->type == XM_AMERICAN_OPTION
             ? rt->S * xg_exp((rt->rate - rt->q) * T)
             : rt->S;
}

/* The demo's smile: term-structure ATM - slope*k + curvature*k^2. */
static double xg_smile(const xg_root *rt, double K, double T) {
  double atm = rt->theta + (rt->vol0 - rt->theta) * xg_exp(-2.0 * T);
  double tt = T > 7.0 / 365.0 ? T : 7.0 / 365.0;
  double k = xg_log(K / xg_forward(rt, T)) / sqrt(tt);
  k = xg_clamp(k, -3.0, 3.0);
  return xg_round4(xg_clamp(atm - rt->slope * k + rt->curv * k * k, 0.05, 3.0));
}

/* Fills the options of one root: rows rt->base[0] ... */
static int xg_root_options(xm_portfolio *P, const xg_root *rt) {
  char id[96];
  for (int e = 0; e < rt->n_exp; e++) {
    int64_t c = rt->base[e + 1] - rt->base[e];
    int64_t k = (c + 1) / 2;
    double T = (double)rt->days[e] / 365.0;
    double F = xg_forward(rt, T);
    double sd = rt->vol0 * sqrt(T);
    /* a strike increment fine enough for k distinct strikes on the grid */
    double step = rt->step, pw = 1.0;
    double k0 = F * xg_exp(-2.5 * sd);
    double gap = k > 1 ? k0 * (xg_exp(5.0 * sd / (double)k) - 1.0) : k0;
    while ((step / pw > gap || step / pw > 0.5 * k0) && pw < 1e8)
      pw *= 10.0;
    int64_t prev = 0;
    for (int64_t j = 0; j < k; j++) {
      double m = k > 1 ? -2.5 + 5.0 * ((double)j + 0.5) / (double)k : 0.0;
      int64_t units = (int64_t)floor(F * xg_exp(m * sd) / (step / pw) + 0.5);
      if (units <= prev)
        units = prev + 1;
      prev = units;
      double K = ((double)units * step) / pw;
      double iv = xg_smile(rt, K, T);
      for (int cp = 0; cp < 2; cp++) {
        int64_t i = rt->base[e] + 2 * j + cp;
        if (i >= rt->base[e + 1])
          break;
        if (rt->type == XM_INVERSE_OPTION) /* Deribit's style: BTC-30d-4000-C */
          snprintf(id, sizeof id, "%s-%dd-%.15g-%c", rt->name, rt->days[e], K, cp ? 'C' : 'P');
        else
          snprintf(id, sizeof id, "%s %c%.15g %dd", rt->name, cp ? 'C' : 'P', K / rt->id_scale,
                   rt->days[e]);
        P->inst_id[i] = strdup(id);
        P->inst_currency[i] = strdup(rt->ccy);
        if (!P->inst_id[i] || !P->inst_currency[i])
          return -1;
        P->inst_funding_rate[i] = 0.0;
        P->inst_type[i] = rt->type;
        P->inst_silo[i] = rt->silo;
        P->inst_underlying[i] = rt->und;
        P->inst_vol_factor[i] = rt->volf;
        P->inst_strike[i] = K;
        P->inst_expiry[i] = T;
        P->inst_call[i] = cp;
        P->inst_implied_vol[i] = iv;
        P->inst_rate[i] = rt->rate;
        P->inst_dividend_yield[i] = rt->q;
        P->inst_multiplier[i] = rt->mult;
      }
    }
  }
  return 0;
}

/* Shares the option budget over the roots (at least a put and a call each)
 * and builds every option. */
static int xg_options(xg *x) {
  xm_portfolio *P = x->P;
  int64_t budget = P->n_instruments - x->n_linear - 2 * (int64_t)x->n_roots;
  double wsum = 0.0;
  for (int k = 0; k < x->n_roots; k++)
    wsum += x->r[k].weight;
  double cum = 0.0;
  int64_t done = 0, row = x->n_linear;
  for (int k = 0; k < x->n_roots; k++) {
    xg_root *rt = &x->r[k];
    cum += rt->weight;
    int64_t upto = k == x->n_roots - 1 ? budget : (int64_t)floor((double)budget * cum / wsum);
    if (upto > budget)
      upto = budget;
    if (upto < done)
      upto = done;
    rt->n = 2 + (upto - done);
    done = upto;
    if (xg_root_expiries(rt, (rt->n + 1) / 2) != 0)
      return -1;
    for (int e = 0; e <= rt->n_exp; e++)
      rt->base[e] = row + rt->n * e / rt->n_exp;
    row += rt->n;
  }
  int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : fail)
  for (int k = 0; k < x->n_roots; k++)
    fail |= xg_root_options(P, &x->r[k]) != 0;
  return fail ? -1 : 0;
}

/* ---- Accounts and positions ------------------------------------------------ */

static const char *const xg_template_names[XM_GEN_T_COUNT] = {
    "index_mm",     "futures_options_mm", "basis",
    "covered_call", "protective_put",     "short_strangle",
    "crypto_basis", "crypto_options",     "commodity_options_mm",
    "directional",  "multi_asset",        "coin_margined"};
/* accounts per 300 (the demo's plan) and relative size (positions) */
static const double xg_template_share[XM_GEN_T_COUNT] = {45, 15, 35, 30, 25, 30,
                                                         20, 20, 15, 35, 30, 20};
static const double xg_template_size[XM_GEN_T_COUNT] = {8.0, 6.0, 0.6, 1.5, 1.2, 1.5,
                                                        0.8, 5.0, 5.0, 0.5, 3.0, 4.0};

const char *xm_gen_template_name(int t) {
  return t >= 0 && t < XM_GEN_T_COUNT ? xg_template_names[t] : "?";
}

/* One account's positions being written. */
typedef struct xg_acct {
  xg *x;
  xg_rng r;
  int32_t a;
  int grp;         /* coin-margined: the crypto group of the account's currency, else -1 */
  int64_t at, end; /* next row, one past the last */
} xg_acct;

static void xg_hold(xg_acct *c, int32_t inst, double q) {
  xm_portfolio *P = c->x->P;
  if (q == 0.0)
    q = 1.0;
  P->pos_account[c->at] = c->a;
  P->pos_instrument[c->at] = inst;
  P->pos_quantity[c->at] = q;
  c->at++;
}

static int64_t xg_left(const xg_acct *c) { return c->end - c->at; }

/* max(1, round(base * exp(0.8 z))), the demo's lot sizes */
static double xg_size(xg_rng *r, double base) {
  double v = floor(base * xg_exp(0.8 * xg_norm(r)) + 0.5);
  return v < 1.0 ? 1.0 : v;
}

/* Contracts for a notional on the root's underlying. */
static double xg_base_lots(const xg *x, const xg_root *rt) {
  static const double target[XG_NCLASS] = {5e6, 3e5, 2e6, 1e5};
  double v = floor(target[x->g[rt->group].cls] / (rt->S * rt->mult) + 0.5);
  return xg_clamp(v, 1.0, 1e5);
}

/* An option of root rt near (days, moneyness in ATM sd over the life). */
static int32_t xg_option_near(const xg_root *rt, const xm_portfolio *P, int days, int call,
                              double m) {
  int lo = 0, hi = rt->n_exp - 1;
  while (lo < hi) { /* the first expiry >= days, or the last */
    int mid = (lo + hi) / 2;
    if (rt->days[mid] < days)
      lo = mid + 1;
    else
      hi = mid;
  }
  int e = lo;
  if (e > 0 && days - rt->days[e - 1] < rt->days[e] - days)
    e--;
  double T = (double)rt->days[e] / 365.0;
  double sd = rt->vol0 * sqrt(T > 1.0 / 365.0 ? T : 1.0 / 365.0);
  double K = xg_forward(rt, T) * xg_exp(m * sd);
  int64_t c = rt->base[e + 1] - rt->base[e], k = (c + 1) / 2;
  int64_t a = 0, b = k - 1; /* the first strike >= K */
  while (a < b) {
    int64_t mid = (a + b) / 2;
    if (P->inst_strike[rt->base[e] + 2 * mid] < K)
      a = mid + 1;
    else
      b = mid;
  }
  if (a > 0 &&
      K - P->inst_strike[rt->base[e] + 2 * (a - 1)] < P->inst_strike[rt->base[e] + 2 * a] - K)
    a--;
  int64_t i = rt->base[e] + 2 * a + (call ? 1 : 0);
  if (i >= rt->base[e + 1])
    i--; /* an odd expiry's last strike has only its put */
  return (int32_t)i;
}

/* An option of root rt anywhere on its grid, mostly out of the money. */
static int32_t xg_option_any(const xg_root *rt, xg_rng *r, int call) {
  int e = (int)xg_int(r, rt->n_exp);
  int64_t c = rt->base[e + 1] - rt->base[e], k = (c + 1) / 2;
  double u = xg_u(r); /* 3 in 4 out of the money (at the trade), the rest anywhere */
  if (xg_chance(r, 0.75))
    u = call ? 0.4 + 0.6 * u : 0.6 * u;
  int64_t j = (int64_t)(u * (double)k);
  if (j >= k)
    j = k - 1;
  int64_t i = rt->base[e] + 2 * j + (call ? 1 : 0);
  if (i >= rt->base[e + 1])
    i--;
  return (int32_t)i;
}

/* Delta per contract in units of the underlying factor (of the USD value:
 * an inverse contract of face m USD is m / F0 coins; American options take
 * the European delta, close enough for a hedge). */
static double xg_delta(const xm_portfolio *P, int32_t i) {
  int t = P->inst_type[i];
  if (t == XM_SPOT || t == XM_FUTURE || t == XM_PERPETUAL)
    return P->inst_multiplier[i];
  double S = P->factor_level[P->inst_underlying[i]];
  if (t == XM_INVERSE_FUTURE || t == XM_INVERSE_PERPETUAL)
    return P->inst_multiplier[i] / S;
  double K = P->inst_strike[i], T = P->inst_expiry[i], v = P->inst_implied_vol[i];
  double r = P->inst_rate[i];
  double q = XM_TYPE_HAS_CARRY(t) ? P->inst_dividend_yield[i] : r;
  double sq = v * sqrt(T);
  double d1 = (xg_log(S / K) + (r - q + 0.5 * v * v) * T) / sq;
  double nd = P->inst_call[i] ? xm_gen_ncdf(d1) : xm_gen_ncdf(d1) - 1.0;
  return P->inst_multiplier[i] * xg_exp(-q * T) * nd;
}

/* Hedge: -delta of the lines in contracts of instrument h. */
static void xg_hedge(xg_acct *c, int32_t h, const int32_t *li, const double *lq, int n) {
  const xm_portfolio *P = c->x->P;
  double dl = 0.0;
  for (int j = 0; j < n; j++)
    dl += xg_delta(P, li[j]) * lq[j];
  double ratio =
      P->factor_level[P->inst_underlying[li[0]]] / P->factor_level[P->inst_underlying[h]];
  double q = -floor(dl * ratio / xg_delta(P, h) + 0.5);
  if (q == 0.0)
    q = dl > 0.0 ? -1.0 : 1.0;
  xg_hold(c, h, q);
}

#define XG_MAX_LINES 64

/* An option book of lo..hi lines on root rt, delta-hedged with h (-1: none). */
static void xg_unit_book(xg_acct *c, const xg_root *rt, int32_t h, int lo, int hi, double p_long) {
  int n = lo + (int)xg_int(&c->r, hi - lo + 1);
  int64_t left = xg_left(c) - (h >= 0 ? 1 : 0);
  if (left < 1)
    left = 1;
  if (n > left)
    n = (int)left;
  if (n > XG_MAX_LINES)
    n = XG_MAX_LINES;
  int32_t li[XG_MAX_LINES];
  double lq[XG_MAX_LINES];
  double base = xg_base_lots(c->x, rt);
  for (int j = 0; j < n; j++) {
    int call = xg_chance(&c->r, 0.5);
    li[j] = xg_option_any(rt, &c->r, call);
    double size = xg_size(&c->r, base); /* two draws: in this order (see xg_option_draw) */
    lq[j] = xg_chance(&c->r, p_long) ? size : -size;
    xg_hold(c, li[j], lq[j]);
  }
  if (h >= 0 && xg_left(c) > 0)
    xg_hedge(c, h, li, lq, n);
}

static int xg_pick(const xg_list *l, xg_rng *r) { return l->v[xg_int(r, l->n)]; }

/* A root of a weighted list, with probability proportional to its weight. */
static int xg_pick_w(const xg_list *l, xg_rng *r) {
  double u = xg_u(r) * l->cum[l->n - 1];
  int a = 0, b = l->n - 1;
  while (a < b) {
    int mid = (a + b) / 2;
    if (l->cum[mid] <= u)
      a = mid + 1;
    else
      b = mid;
  }
  return l->v[a];
}

/* The delta hedge of an option book of root rt. */
static int32_t xg_root_hedge(const xg *x, const xg_root *rt, xg_rng *r) {
  const xg_group *gr = &x->g[rt->group];
  if (rt->type == XM_FUTURE_OPTION)
    return gr->i_fut;
  if (gr->cls == XG_INDEX)
    return gr->i_fut >= 0 ? gr->i_fut : gr->i_spot;
  if (gr->cls == XG_CRYPTO && gr->i_fut >= 0 && xg_chance(r, 0.5))
    return gr->i_fut; /* hedged on CME: cross-silo */
  if (gr->cls == XG_CRYPTO && gr->i_perp >= 0 && xg_chance(r, 0.3))
    return gr->i_perp; /* hedged with the linear perpetual */
  return gr->i_spot;
}

/* A market maker's book on a root of list l. */
static void xg_unit_mm(xg_acct *c, const xg_list *l) {
  xg *x = c->x;
  const xg_root *rt = &x->r[xg_pick_w(l, &c->r)];
  int cls = x->g[rt->group].cls;
  int lo = 8, hi = 25;
  if (rt->type == XM_FUTURE_OPTION)
    lo = cls == XG_COMMOD ? 4 : 6, hi = cls == XG_COMMOD ? 11 : 19;
  else if (cls == XG_STOCK)
    lo = 6, hi = 17;
  else if (cls == XG_CRYPTO)
    lo = 4, hi = 13;
  xg_unit_book(c, rt, xg_root_hedge(x, rt, &c->r), lo, hi, cls == XG_CRYPTO ? 0.45 : 0.42);
}

/* Days uniformly in [lo, hi]. */
static int xg_days(xg_rng *r, int lo, int hi) { return lo + (int)xg_int(r, hi - lo + 1); }

/* An option of root rt near a random life (days in [dlo, dhi]) and moneyness
 * (in [mlo, mhi], ATM sd over the life). The two draws are separate
 * statements, moneyness first: as arguments of one call their order would be
 * unspecified (C11 6.5.2.2p10), and gcc (right to left) and clang (left to
 * right) drew them in opposite orders, giving different books. Moneyness
 * first is the order the golden hash of tests/test_generate.c was recorded
 * with (gcc). */
static int32_t xg_option_draw(const xg_root *rt, const xm_portfolio *P, xg_rng *r, int dlo, int dhi,
                              int call, double mlo, double mhi) {
  double m = xg_unif(r, mlo, mhi);
  int days = xg_days(r, dlo, dhi);
  return xg_option_near(rt, P, days, call, m);
}

static void xg_unit_directional(xg_acct *c);

/* One unit of template t; falls back to directional where the book has no
 * product the template needs. */
static void xg_unit(xg_acct *c, int t) {
  xg *x = c->x;
  xm_portfolio *P = x->P;
  xg_rng *r = &c->r;
  switch (t) {
  case XM_GEN_T_INDEX_MM:
  case XM_GEN_T_FUTOPT_MM:
  case XM_GEN_T_COMMODITY_OPTIONS:
  case XM_GEN_T_CRYPTO_OPTIONS: {
    const xg_list *l = t == XM_GEN_T_INDEX_MM            ? &x->mm_eq
                       : t == XM_GEN_T_FUTOPT_MM         ? &x->mm_fopt
                       : t == XM_GEN_T_COMMODITY_OPTIONS ? &x->mm_com
                                                         : &x->mm_cry;
    if (!l->n)
      break;
    xg_unit_mm(c, l);
    return;
  }
  case XM_GEN_T_BASIS: {
    if (!x->basis.n)
      break;
    xg_group *gr = &x->g[xg_pick(&x->basis, r)];
    double nfut = xg_size(r, gr->cls == XG_CRYPTO ? 20.0 : 40.0);
    double per = gr->fut_mult * gr->fut / (gr->spot_mult * gr->px);
    double sign = xg_chance(r, 0.85) ? 1.0 : -1.0; /* mostly long cash, short futures */
    double sq =
        gr->cls == XG_CRYPTO ? floor(nfut * per + 0.5) : floor(nfut * per / 100.0 + 0.5) * 100.0;
    xg_hold(c, gr->i_spot, sign * (sq > 0.0 ? sq : 1.0));
    if (xg_left(c) > 0)
      xg_hold(c, gr->i_fut, -sign * nfut);
    return;
  }
  case XM_GEN_T_COVERED_CALL:
  case XM_GEN_T_PROTECTIVE_PUT: {
    if (!x->shares.n)
      break;
    xg_group *gr = &x->g[xg_pick(&x->shares, r)];
    int etf = gr->cls == XG_INDEX;
    const xg_root *rt = &x->r[etf ? gr->r_etf : gr->r_opt];
    /* lots of 100 shares; one option covers 100 shares */
    double lots = xg_size(r, etf ? 20.0 : xg_clamp(floor(2e5 / (100.0 * gr->px) + 0.5), 1.0, 1e4));
    xg_hold(c, gr->i_spot, 100.0 * lots);
    if (t == XM_GEN_T_COVERED_CALL) {
      int legs = 1 + (int)xg_int(r, 2);
      for (int j = 0; j < legs && xg_left(c) > 0; j++) {
        int32_t i = xg_option_draw(rt, P, r, 14, 91, 1, 0.3, 1.2);
        double q = floor(lots / legs);
        xg_hold(c, i, -(q > 1.0 ? q : 1.0));
      }
    } else {
      const xg_root *pr = rt;
      double pq = lots;
      if (etf && gr->r_opt >= 0 && xg_chance(r, 0.3)) { /* index puts instead */
        pr = &x->r[gr->r_opt];
        pq = floor(lots / 10.0) > 1.0 ? floor(lots / 10.0) : 1.0;
      }
      if (xg_left(c) > 0)
        xg_hold(c, xg_option_draw(pr, P, r, 91, 730, 0, -1.2, -0.3), pq);
      if (xg_chance(r, 0.3) && xg_left(c) > 0) /* collar */
        xg_hold(c, xg_option_draw(rt, P, r, 30, 91, 1, 0.5, 1.2), -lots);
    }
    return;
  }
  case XM_GEN_T_SHORT_STRANGLE: {
    if (!x->roots.n)
      break;
    const xg_root *rt = &x->r[xg_pick_w(&x->roots, r)];
    double qty = xg_size(r, xg_clamp(floor(0.4 * xg_base_lots(x, rt) + 0.5), 1.0, 1e5));
    int pairs = 1 + (int)xg_int(r, 3);
    for (int j = 0; j < pairs && xg_left(c) > 0; j++) {
      int days = xg_days(r, 7, 91);
      double w = xg_unif(r, 0.8, 1.6);
      xg_hold(c, xg_option_near(rt, P, days, 0, -w), -qty);
      if (xg_left(c) > 0)
        xg_hold(c, xg_option_near(rt, P, days, 1, w * xg_unif(r, 0.7, 1.0)), -qty);
    }
    return;
  }
  case XM_GEN_T_CRYPTO_BASIS: {
    if (!x->cry_basis.n)
      break;
    xg_group *gr = &x->g[xg_pick(&x->cry_basis, r)];
    double nfut = xg_size(r, 20.0);
    if (gr->i_fut < 0 || xg_chance(r, 0.5)) { /* cash and carry against the perpetual */
      double coins = xg_size(r, xg_clamp(floor(1e5 / gr->px + 0.5), 1.0, 1e7));
      xg_hold(c, gr->i_spot, coins);
      if (xg_left(c) > 0)
        xg_hold(c, gr->i_perp, -coins); /* short perpetual: receives the funding */
      return;
    }
    xg_hold(c, gr->i_spot, floor(gr->fut_mult / gr->spot_mult * nfut + 0.5));
    if (xg_left(c) > 0)
      xg_hold(c, gr->i_fut, -nfut);
    if (gr->r_opt >= 0 && xg_chance(r, 0.5) && xg_left(c) > 0) { /* overwrite calls */
      double q = floor(gr->fut_mult * nfut / 5.0 + 0.5);
      xg_hold(c, xg_option_draw(&x->r[gr->r_opt], P, r, 7, 30, 1, 0.5, 1.5), -(q > 1.0 ? q : 1.0));
    }
    if (xg_chance(r, 0.3) && xg_left(c) > 0) { /* some other coin too */
      xg_group *o = &x->g[xg_pick(&x->coins, r)];
      xg_hold(c, o->i_spot, xg_size(r, xg_clamp(floor(7e4 / o->px + 0.5), 1.0, 1e7)));
    }
    return;
  }
  case XM_GEN_T_COIN_MARGINED: {
    if (c->grp < 0)
      break;
    xg_group *gr = &x->g[c->grp];
    if (gr->r_iopt >= 0 && xg_chance(r, 0.8)) { /* an inverse option book, delta-hedged */
      int32_t h = xg_chance(r, 0.6) ? gr->i_iperp : gr->i_ifut;
      xg_unit_book(c, &x->r[gr->r_iopt], h, 4, 13, 0.45);
      return;
    }
    /* a calendar basis: perpetual against the quarterly future, USD face notional */
    double n = xg_size(r, xg_clamp(floor(2e5 / gr->inv_face + 0.5), 1.0, 1e8));
    double sign = xg_chance(r, 0.6) ? -1.0 : 1.0; /* mostly short the perpetual */
    xg_hold(c, gr->i_iperp, sign * n);
    if (xg_left(c) > 0)
      xg_hold(c, gr->i_ifut, -sign * n);
    return;
  }
  case XM_GEN_T_DIRECTIONAL:
    xg_unit_directional(c);
    return;
  default:
    break;
  }
  xg_unit_directional(c);
}

static void xg_unit_directional(xg_acct *c) {
  xg *x = c->x;
  xm_portfolio *P = x->P;
  xg_rng *r = &c->r;
  int n = 1 + (int)xg_int(r, 4);
  for (int j = 0; j < n && xg_left(c) > 0; j++) {
    if (x->roots.n && xg_chance(r, 1.0 / 9.0)) { /* long premium */
      const xg_root *rt = &x->r[xg_pick_w(&x->roots, r)];
      int call = xg_chance(r, 0.5);
      int32_t i = xg_option_draw(rt, P, r, 30, 365, call, -1.0, 1.0);
      xg_hold(c, i, xg_size(r, xg_clamp(floor(0.2 * xg_base_lots(x, rt) + 0.5), 1.0, 1e5)));
    } else {
      int32_t i = x->linear_inst[xg_int(r, x->linear.n)];
      double unit = P->inst_multiplier[i] * P->inst_strike[i]; /* notional per contract */
      int cls = x->linear_cls[i];
      double target = cls == XG_CRYPTO ? 7e4 : (P->inst_type[i] == XM_FUTURE ? 1.25e6 : 5e5);
      double sgn = xg_chance(r, 0.65) ? 1.0 : -1.0;
      xg_hold(c, i, sgn * xg_size(r, xg_clamp(floor(target / unit + 0.5), 1.0, 1e7)));
    }
  }
}

static const int xg_multi_parts[8] = {XM_GEN_T_INDEX_MM,          XM_GEN_T_BASIS,
                                      XM_GEN_T_COVERED_CALL,      XM_GEN_T_SHORT_STRANGLE,
                                      XM_GEN_T_CRYPTO_BASIS,      XM_GEN_T_CRYPTO_OPTIONS,
                                      XM_GEN_T_COMMODITY_OPTIONS, XM_GEN_T_DIRECTIONAL};

/* Fills rows [start, end) of account a with template t (grp: see xg_acct). */
static void xg_account_positions(xg *x, int32_t a, int t, int grp, int64_t start, int64_t end) {
  xg_acct c;
  c.x = x;
  c.a = a;
  c.grp = grp;
  c.at = start;
  c.end = end;
  xg_rng_init(&c.r, x->p->seed, XG_S_UNITS, (uint64_t)a);
  while (c.at < c.end) {
    int64_t before = c.at;
    int u = t == XM_GEN_T_MULTI_ASSET ? xg_multi_parts[xg_int(&c.r, 8)] : t;
    xg_unit(&c, u);
    if (c.at == before) /* cannot happen; never loop forever */
      xg_hold(&c, grp >= 0 ? x->g[grp].i_iperp : x->linear_inst[0], 1.0);
  }
}

static int xg_list_alloc(xg_list *l, int cap) {
  l->n = 0;
  l->v = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->v);
  l->cum = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->cum);
  return l->v && l->cum ? 0 : -1;
}

static void xg_list_add(xg_list *l, int v, double w) {
  l->cum[l->n] = (l->n ? l->cum[l->n - 1] : 0.0) + w;
  l->v[l->n++] = v;
}

static int xg_candidates(xg *x) {
  xg_list *ls[] = {&x->mm_eq,  &x->mm_fopt,   &x->mm_com, &x->mm_cry, &x->roots, &x->basis,
                   &x->shares, &x->cry_basis, &x->coins,  &x->linear, &x->inv};
  for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++)
    if (xg_list_alloc(ls[k], x->n_groups + x->n_roots + 4 * x->n_groups) != 0)
      return -1;
  x->linear_inst = malloc((size_t)(x->n_linear > 0 ? x->n_linear : 1) * sizeof *x->linear_inst);
  x->linear_cls = malloc((size_t)(x->n_linear > 0 ? x->n_linear : 1));
  if (!x->linear_inst || !x->linear_cls)
    return -1;
  for (int k = 0; k < x->n_groups; k++) {
    xg_group *gr = &x->g[k];
    if (gr->i_spot >= 0)
      x->linear_cls[gr->i_spot] = (signed char)gr->cls;
    if (gr->i_fut >= 0)
      x->linear_cls[gr->i_fut] = (signed char)gr->cls;
    int32_t more[3] = {gr->i_perp, gr->i_iperp, gr->i_ifut};
    for (int j = 0; j < 3; j++)
      if (more[j] >= 0)
        x->linear_cls[more[j]] = (signed char)gr->cls;
    if (gr->cls == XG_CRYPTO && gr->i_iperp >= 0)
      xg_list_add(&x->inv, k, 1.0);
    if (gr->i_spot >= 0 && gr->i_fut >= 0 && gr->cls == XG_INDEX)
      xg_list_add(&x->basis, k, 1.0);
    if ((gr->cls == XG_INDEX && gr->r_etf >= 0) || (gr->cls == XG_STOCK && gr->r_opt >= 0))
      xg_list_add(&x->shares, k, 1.0);
    if (gr->cls == XG_CRYPTO && gr->i_spot >= 0 && (gr->i_fut >= 0 || gr->i_perp >= 0))
      xg_list_add(&x->cry_basis, k, 1.0);
    if (gr->cls == XG_CRYPTO)
      xg_list_add(&x->coins, k, 1.0);
  }
  for (int k = 0; k < x->n_roots; k++) {
    const xg_root *rt = &x->r[k];
    int cls = x->g[rt->group].cls;
    double w = (double)rt->n;
    if (rt->type == XM_INVERSE_OPTION)
      continue; /* held in coin-margined accounts only */
    xg_list_add(&x->roots, k, w);
    if ((rt->type == XM_OPTION || rt->type == XM_AMERICAN_OPTION) && cls != XG_CRYPTO)
      xg_list_add(&x->mm_eq, k, w); /* index, ETF and stock options */
    else if (rt->type == XM_FUTURE_OPTION && cls != XG_COMMOD)
      xg_list_add(&x->mm_fopt, k, w);
    else if (rt->type == XM_FUTURE_OPTION)
      xg_list_add(&x->mm_com, k, w);
    else
      xg_list_add(&x->mm_cry, k, w);
  }
  /* commodity books count as futures-options books where there is no other */
  if (!x->mm_fopt.n)
    for (int k = 0; k < x->mm_com.n; k++)
      xg_list_add(&x->mm_fopt, x->mm_com.v[k], x->r[x->mm_com.v[k]].n);
  /* directional lines: every linear product but the coin-settled ones */
  int64_t nl = 0;
  for (int64_t i = 0; i < x->n_linear; i++)
    if (!XM_TYPE_IS_INVERSE(x->P->inst_type[i]))
      x->linear_inst[nl++] = (int32_t)i;
  x->linear.n = (int)nl;
  return 0;
}

static int xg_accounts(xg *x, xm_gen_stats *stats) {
  xm_portfolio *P = x->P;
  int64_t A = x->p->accounts, N = x->p->positions;
  int *tmpl = malloc((size_t)A * sizeof *tmpl);
  int *grp = malloc((size_t)A * sizeof *grp);
  double *w = malloc((size_t)A * sizeof *w);
  int64_t *off = malloc(((size_t)A + 1) * sizeof *off);
  if (!tmpl || !grp || !w || !off) {
    free(tmpl);
    free(grp);
    free(w);
    free(off);
    return -1;
  }
  double share_sum = 0.0;
  for (int t = 0; t < XM_GEN_T_COUNT; t++)
    share_sum += xg_template_share[t];
  int width = 4;
  for (int64_t v = A; v >= 10000; v /= 10)
    width++;
  double wsum = 0.0;
  for (int64_t a = 0; a < A; a++) {
    xg_rng r;
    xg_rng_init(&r, x->p->seed, XG_S_ACCOUNT, (uint64_t)a);
    double u = xg_u(&r) * share_sum, cum = 0.0;
    int t = XM_GEN_T_COUNT - 1;
    for (int k = 0; k < XM_GEN_T_COUNT; k++) {
      cum += xg_template_share[k];
      if (u < cum) {
        t = k;
        break;
      }
    }
    tmpl[a] = t;
    P->account_cross_margin[a] = xg_chance(&r, 0.12) ? 0 : 1;
    w[a] = xg_template_size[t] * xg_exp(0.9 * xg_norm(&r));
    wsum += w[a];
    /* a coin-margined account: its currency is one coin's (BTC most often) */
    grp[a] = -1;
    if (t == XM_GEN_T_COIN_MARGINED && x->inv.n)
      grp[a] = xg_chance(&r, 0.6) ? x->inv.v[0] : xg_pick(&x->inv, &r);
    P->account_currency[a] = strdup(grp[a] >= 0 ? x->g[grp[a]].name : "USD");
    char num[24], id[48] = "ACC";
    int len = snprintf(num, sizeof num, "%lld", (long long)(a + 1));
    size_t at = 3;
    for (int z = len; z < width; z++)
      id[at++] = '0';
    memcpy(id + at, num, (size_t)len + 1);
    P->account_id[a] = strdup(id);
    if (!P->account_id[a] || !P->account_currency[a]) {
      free(tmpl);
      free(grp);
      free(w);
      free(off);
      return -1;
    }
  }
  /* positions per account: 1 + a share of N - A by weight, summing to N */
  int64_t extra = N - A;
  double cum = 0.0;
  int64_t prev = 0;
  off[0] = 0;
  for (int64_t a = 0; a < A; a++) {
    cum += w[a];
    int64_t upto = a == A - 1 ? extra : (int64_t)floor((double)extra * (cum / wsum) + 0.5);
    if (upto > extra)
      upto = extra;
    if (upto < prev)
      upto = prev;
    off[a + 1] = off[a] + 1 + (upto - prev);
    prev = upto;
  }
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t a = 0; a < A; a++)
    xg_account_positions(x, (int32_t)a, tmpl[a], grp[a], off[a], off[a + 1]);
  if (stats) {
    for (int64_t a = 0; a < A; a++) {
      stats->by_template[tmpl[a]]++;
      stats->coin_accounts += grp[a] >= 0;
      stats->non_cross += P->account_cross_margin[a] == 0;
      if (off[a + 1] - off[a] > stats->max_account_positions)
        stats->max_account_positions = off[a + 1] - off[a];
    }
  }
  free(tmpl);
  free(grp);
  free(w);
  free(off);
  return 0;
}

/* ---- Liquidity and collateral columns (METHODOLOGY 4.1 and 6) --------------- */

/* The demo book's figures (datasets/build_demo.py, sources in datasets/README.md):
 * half the quoted spread as a fraction of the price, the average daily traded
 * notional in USD, the collateral haircut and limit (USD). */
typedef struct xg_liq {
  const char *name;
  double hs, adv, haircut, limit;
} xg_liq;

static const xg_liq xg_demo_liq[] = {
    {"SPX", 0.5 * 0.01 / 249.92, 100e6 * 249.92, 0.30, 500e6},
    {"ES", 0.5 * 0.25 / 2508.75, 1.6e6 * 50 * 2508.75, 1.0, 0.0},
    {"NDX", 0.5 * 0.01 / 154.26, 45e6 * 154.26, 0.30, 500e6},
    {"NQ", 0.5 * 0.25 / 6347.25, 4.0e5 * 20 * 6347.25, 1.0, 0.0},
    {"CL", 0.5 * 0.01 / 45.41, 1.34e6 * 1000 * 45.41, 1.0, 0.0},
    {"BTC", 0.0005, 273e6, 0.15, 100e6},
    {"BTCF", 0.5 * 10.0 / 3770.0, 5053 * 5 * 3770.0, 1.0, 0.0},
    {"ETH", 0.0010, 90e6, 0.20, 45e6},
    {"FESX", 0.5 * 1.0 / 2978.0, 1.0e6 * 10 * 2978.0 * 1.1450, 1.0, 0.0},
    {"EURUSD", 0.5 * 0.00005 / 1.1450, 5.0e11, 0.05, 250e6},
    /* the Euro Stoxx 50 cash index (no product of its own here): estimates */
    {"SX5E", 1.0e-4, 8.0e9, 0.30, 500e6},
};
#define XG_NDEMO_LIQ ((int)(sizeof xg_demo_liq / sizeof xg_demo_liq[0]))

static const xg_liq *xg_demo_liq_of(const char *name) {
  for (int k = 0; k < XG_NDEMO_LIQ; k++)
    if (strcmp(xg_demo_liq[k].name, name) == 0)
      return &xg_demo_liq[k];
  return NULL;
}

/* Sets factor f's columns: the demo's figures as they are (d), or drawn ones
 * rounded (half-spreads to 1e-9, volumes to 3 and limits to 2 figures);
 * the impact to 1e-6. */
static void xg_set_liq(xm_portfolio *P, int32_t f, const xg_liq *d, double hs, double k, double adv,
                       double hc, double lim) {
  P->factor_impact[f] = floor(k * 1e6 + 0.5) / 1e6;
  if (d) {
    P->factor_half_spread[f] = d->hs;
    P->factor_adv[f] = d->adv;
    P->factor_haircut[f] = d->haircut;
    P->factor_collateral_limit[f] = d->limit;
    return;
  }
  P->factor_half_spread[f] = floor(hs * 1e9 + 0.5) / 1e9;
  P->factor_adv[f] = adv > 0.0 ? xg_round_to(adv, xg_nice(adv * 1e-3)) : 0.0;
  P->factor_haircut[f] = hc;
  P->factor_collateral_limit[f] = lim > 0.0 ? xg_round_to(lim, xg_nice(lim * 1e-2)) : 0.0;
}

/* Every factor's half_spread, impact, adv, haircut and collateral_limit.
 * Price factors: spreads and volumes drawn by class within the ranges of
 * datasets/README.md (the demo's groups take the demo's figures); impact
 * k = Y sigma_daily (the square-root law, Y in [0.5, 1], sigma from the
 * group's implied vol); haircuts: ETFs and stocks 30% (CME), coins 20-50%
 * (the demo's BTC 15%, ETH 20%: Bitnomial), EURUSD 5%, futures prices 1 (not
 * acceptable); a limit on half the spot factors. Vol factors: all 0. */
static int xg_liquidity(xg *x) {
  xm_portfolio *P = x->P;
  size_t F = (size_t)P->n_factors;
  P->factor_half_spread = calloc(F, sizeof(double));
  P->factor_impact = calloc(F, sizeof(double));
  P->factor_adv = calloc(F, sizeof(double));
  P->factor_haircut = calloc(F, sizeof(double));
  P->factor_collateral_limit = calloc(F, sizeof(double));
  if (!P->factor_half_spread || !P->factor_impact || !P->factor_adv || !P->factor_haircut ||
      !P->factor_collateral_limit)
    return -1;
  /* per class: spot half-spread and ADV ranges, then the futures' */
  static const double hs_px[XG_NCLASS][2] = {
      {1e-5, 1e-4}, {1e-4, 2e-3}, {5e-5, 5e-4}, {3e-4, 5e-3}};
  static const double adv_px[XG_NCLASS][2] = {{1e9, 5e10}, {2e7, 2e9}, {5e8, 5e10}, {5e6, 3e8}};
  static const double hs_fu[XG_NCLASS][2] = {{2e-5, 1.5e-4}, {0, 0}, {0, 0}, {5e-4, 5e-3}};
  static const double adv_fu[XG_NCLASS][2] = {{5e9, 2e11}, {0, 0}, {0, 0}, {1e6, 1e8}};
  for (int k = 0; k < x->n_groups; k++) {
    const xg_group *gr = &x->g[k];
    xg_rng r;
    xg_rng_init(&r, x->p->seed, XG_S_LIQ, (uint64_t)k);
    /* the draws, always all of them and in this order */
    double y = xg_unif(&r, 0.5, 1.0);
    double h1 = xg_loguniform(&r, hs_px[gr->cls][0], hs_px[gr->cls][1]);
    double a1 = xg_loguniform(&r, adv_px[gr->cls][0], adv_px[gr->cls][1]);
    double u2 = xg_u(&r);
    double u3 = xg_u(&r);
    int has_lim = xg_chance(&r, 0.5);
    double lim = xg_loguniform(&r, 1e5, 1e8);
    double hc_coin = xg_round_to(xg_unif(&r, 0.20, 0.50), 0.05);
    int cls = gr->cls;
    double h2 =
        cls == XG_INDEX || cls == XG_CRYPTO
            ? xg_exp(xg_log(hs_fu[cls][0]) + u2 * (xg_log(hs_fu[cls][1]) - xg_log(hs_fu[cls][0])))
            : 0.0;
    double a2 = cls == XG_INDEX || cls == XG_CRYPTO
                    ? xg_exp(xg_log(adv_fu[cls][0]) +
                             u3 * (xg_log(adv_fu[cls][1]) - xg_log(adv_fu[cls][0])))
                    : 0.0;
    double sd = gr->iv / sqrt(252.0);
    const int demo = k < XG_NDEMO;
    if (demo)
      y = 1.0;
    /* the spot (a commodity's: its futures price) */
    double hc = cls == XG_COMMOD ? 1.0 : cls == XG_CRYPTO ? hc_coin : 0.30;
    const xg_liq *d = demo ? xg_demo_liq_of(P->factor_name[gr->f_px]) : NULL;
    xg_set_liq(P, gr->f_px, d, h1, y * sd, a1, hc, has_lim && cls != XG_COMMOD ? lim : 0.0);
    if (gr->f_fut >= 0) {
      d = demo ? xg_demo_liq_of(P->factor_name[gr->f_fut]) : NULL;
      xg_set_liq(P, gr->f_fut, d, h2, y * sd, a2, 1.0, 0.0);
    }
    if (gr->f_fx >= 0) /* EURUSD: 7.5% a year, as its history */
      xg_set_liq(P, gr->f_fx, xg_demo_liq_of(P->factor_name[gr->f_fx]), 2e-5,
                 y * 0.075 / sqrt(252.0), 5e11, 0.05, 0.0);
  }
  return 0;
}

#define XG_COLL_PER_SILO 2
#define XG_COLL_MAX (3 * XG_COLL_PER_SILO)

/* The /collateral table: for each account and each silo it trades in, one or
 * two holdings worth about the silo's margin (a rough proxy: notional times a
 * rate per asset class, options at 40%) times a lognormal coverage (median
 * 1.2), so that some accounts are short and most have excess. USD accounts
 * post USD cash, ETF or stock units (securities), EUR cash or EURUSD units,
 * coins (BTC, also in the futures silo), or the coin of their crypto
 * products; coin-margined accounts mostly cash in their coin. mode MIXED
 * posts about 1 holding in 10 to no silo. */
static int xg_collateral(xg *x, xm_gen_stats *stats) {
  xm_portfolio *P = x->P;
  int mode = x->p->collateral;
  if (mode == XM_GEN_COLLATERAL_NONE)
    return 0;
  int64_t A = P->n_accounts, N = P->n_positions, F = P->n_factors;
  size_t cap = (size_t)A * XG_COLL_MAX;
  P->coll_account = malloc(cap * sizeof *P->coll_account);
  P->coll_factor = malloc(cap * sizeof *P->coll_factor);
  P->coll_currency = calloc(cap, sizeof *P->coll_currency);
  P->coll_quantity = malloc(cap * sizeof *P->coll_quantity);
  P->coll_silo = malloc(cap * sizeof *P->coll_silo);
  int32_t *fgroup = malloc((size_t)F * sizeof *fgroup);
  if (!P->coll_account || !P->coll_factor || !P->coll_currency || !P->coll_quantity ||
      !P->coll_silo || !fgroup) {
    free(fgroup);
    return -1;
  }
  P->n_collateral = (int64_t)cap; /* every row freed on failure; shrunk at the end */
  for (int64_t f = 0; f < F; f++)
    fgroup[f] = -1;
  int first_coin = -1, eur = -1;
  for (int k = 0; k < x->n_groups; k++) {
    const xg_group *gr = &x->g[k];
    fgroup[gr->f_px] = k;
    if (gr->f_fut >= 0)
      fgroup[gr->f_fut] = k;
    if (gr->cls == XG_CRYPTO && first_coin < 0)
      first_coin = k;
    if (gr->f_fx >= 0 && eur < 0)
      eur = k;
  }
  static const double rate[XG_NCLASS] = {0.08, 0.15, 0.12, 0.35};
  const double *lv = P->factor_level;
  int64_t n = 0, at = 0;
  for (int64_t a = 0; a < A; a++) {
    xg_rng r;
    xg_rng_init(&r, x->p->seed, XG_S_COLL, (uint64_t)a);
    double expo[3] = {0.0, 0.0, 0.0};
    int gsilo[3] = {-1, -1, -1};
    for (; at < N && P->pos_account[at] == a; at++) {
      int32_t i = P->pos_instrument[at];
      int t = P->inst_type[i];
      int g = fgroup[P->inst_underlying[i]];
      const xg_group *gr = &x->g[g];
      double S = lv[P->inst_underlying[i]], q = fabs(P->pos_quantity[at]);
      /* in USD: an inverse future's multiplier is its USD face, an inverse option's
       * one coin; EUR products at EURUSD */
      double xc = !XM_TYPE_IS_INVERSE(t) && gr->f_fx >= 0 ? lv[gr->f_fx] : 1.0;
      double notional = t == XM_INVERSE_FUTURE || t == XM_INVERSE_PERPETUAL
                            ? q * P->inst_multiplier[i]
                            : q * P->inst_multiplier[i] * S * xc;
      int s = P->inst_silo[i];
      expo[s] += notional * rate[gr->cls] * (XM_TYPE_IS_OPTION(t) ? 0.4 : 1.0);
      gsilo[s] = g;
    }
    /* the account's currency: the reporting one, or a coin of /fx */
    const char *cur = P->account_currency[a];
    double xb = 1.0;
    int coin_acct = strcmp(cur, P->currency) != 0;
    if (coin_acct)
      for (int64_t c = 0; c < P->n_fx; c++)
        if (strcmp(P->fx_currency[c], cur) == 0)
          xb = lv[P->fx_factor[c]];
    double cov = 1.2 * xg_exp(0.6 * xg_norm(&r));
    int any = 0;
    for (int s = 0; s < 3; s++) {
      double amount = expo[s] / xb * cov; /* after haircuts, in the account's currency */
      double split = xg_unif(&r, 0.3, 0.7);
      int two = xg_chance(&r, 0.4);
      for (int h = 0; h < XG_COLL_PER_SILO; h++) {
        double u = xg_u(&r);
        int unposted = xg_chance(&r, 0.1);
        if (!(amount > 0.0) || (h == 1 && !two))
          continue;
        double part = two ? (h == 0 ? split : 1.0 - split) * amount : amount;
        int32_t f = -1;      /* cash */
        const char *c = cur; /* in the account's currency */
        if (coin_acct) {
          if (u >= 0.85)
            c = P->currency; /* USD cash in a coin account */
          else if (u >= 0.7 && s == XG_CRYPTO_SILO && gsilo[s] >= 0 &&
                   x->g[gsilo[s]].cls == XG_CRYPTO)
            f = x->g[gsilo[s]].f_px, c = P->currency; /* its coin, as a factor */
        } else if (s == XG_SECURITIES) {
          if (u >= 0.5 && u < 0.9 && gsilo[s] >= 0 && x->g[gsilo[s]].cls != XG_CRYPTO)
            f = x->g[gsilo[s]].f_px; /* ETF or stock units */
          else if (u >= 0.9 && eur >= 0)
            c = x->g[eur].ccy; /* EUR cash: FX risk, no haircut */
        } else if (s == XG_FUTURES) {
          if (u >= 0.6 && u < 0.75 && eur >= 0)
            f = x->g[eur].f_fx; /* EUR as EURUSD units: the FX haircut */
          else if (u >= 0.75 && first_coin >= 0)
            f = x->g[first_coin].f_px; /* BTC: wrong-way against long coin futures */
        } else if (u >= 0.4) {
          int g = gsilo[s] >= 0 && x->g[gsilo[s]].cls == XG_CRYPTO ? gsilo[s] : first_coin;
          if (g >= 0)
            f = x->g[g].f_px; /* the coin */
        }
        double xcur = 1.0; /* X of the holding's currency, in the reporting one */
        if (strcmp(c, P->currency) != 0) {
          if (f < 0 && c == cur)
            xcur = xb;
          else if (f < 0 && eur >= 0 && c == x->g[eur].ccy)
            xcur = lv[x->g[eur].f_fx];
        }
        double qty;
        if (f < 0) /* cash: part X_b / X_c units */
          qty = part * xb / xcur;
        else
          qty = part * xb / (lv[f] * xcur * (1.0 - P->factor_haircut[f]));
        qty = floor(qty * 100.0 + 0.5) / 100.0;
        if (qty < 0.01)
          qty = 0.01;
        P->coll_account[n] = (int32_t)a;
        P->coll_factor[n] = f;
        P->coll_quantity[n] = qty;
        P->coll_silo[n] = mode == XM_GEN_COLLATERAL_MIXED && unposted ? -1 : s;
        if (!(P->coll_currency[n] = strdup(c))) {
          free(fgroup);
          return -1;
        }
        if (stats) {
          stats->collateral_cash += f < 0;
          stats->collateral_unposted += P->coll_silo[n] < 0;
        }
        n++;
        any = 1;
      }
    }
    if (stats)
      stats->collateral_accounts += any;
  }
  free(fgroup);
  /* shrink to the rows written (realloc to a smaller size may fail: keep the old block) */
  P->n_collateral = n;
  size_t m = n > 0 ? (size_t)n : 1;
  void *v;
  if ((v = realloc(P->coll_account, m * sizeof *P->coll_account)))
    P->coll_account = v;
  if ((v = realloc(P->coll_factor, m * sizeof *P->coll_factor)))
    P->coll_factor = v;
  if ((v = realloc(P->coll_currency, m * sizeof *P->coll_currency)))
    P->coll_currency = v;
  if ((v = realloc(P->coll_quantity, m * sizeof *P->coll_quantity)))
    P->coll_quantity = v;
  if ((v = realloc(P->coll_silo, m * sizeof *P->coll_silo)))
    P->coll_silo = v;
  return 0;
}

/* ---- Scenario file ----------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms). */
static int64_t xg_days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void xg_civil_from_days(int64_t z, char out[16]) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[80];
  snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", (long long)(y % 10000), (long long)m,
           (long long)d);
  memcpy(out, buf, 10);
  out[10] = '\0';
}

static int xg_history(xg *x, xm_scenario_file *S) {
  const xm_portfolio *P = x->P;
  int64_t T = x->p->history_days, F = P->n_factors;
  uint64_t seed = x->p->seed;
  S->n_days = T;
  S->n_hfactors = F;
  S->hist_factor = calloc((size_t)F, sizeof *S->hist_factor);
  S->hist_date = calloc((size_t)T, sizeof *S->hist_date);
  S->hist_return = malloc((size_t)T * (size_t)F * sizeof *S->hist_return);
  double *zm = malloc((size_t)T * sizeof *zm);
  double *sv = malloc((size_t)T * sizeof *sv);
  double *zc = malloc((size_t)T * XG_NCLASS * sizeof *zc);
  if (!S->hist_factor || !S->hist_date || !S->hist_return || !zm || !sv || !zc) {
    free(zm);
    free(sv);
    free(zc);
    return -1;
  }
  for (int64_t f = 0; f < F; f++)
    if (!(S->hist_factor[f] = strdup(P->factor_name[f])))
      goto oom;
  /* weekdays ending at the valuation date (a Monday) */
  int64_t day = xg_days_from_civil(2018, 12, 31);
  for (int64_t t = T - 1; t >= 0; t--) {
    char buf[16];
    xg_civil_from_days(day, buf);
    if (!(S->hist_date[t] = strdup(buf)))
      goto oom;
    do {
      day--;
    } while (((day + 4) % 7 + 7) % 7 == 0 || ((day + 4) % 7 + 7) % 7 == 6); /* Sun, Sat */
  }
  /* market factor with GARCH(1,1) variance, class factors */
  {
    xg_rng rm;
    xg_rng_init(&rm, seed, XG_S_MARKET, 0);
    double h = 1.0, alpha = 0.08, beta = 0.90;
    for (int64_t t = 0; t < T; t++) {
      sv[t] = sqrt(h);
      zm[t] = xg_t4(&rm);
      double e = sv[t] * zm[t];
      h = (1.0 - alpha - beta) + alpha * e * e + beta * h;
    }
    for (int c = 0; c < XG_NCLASS; c++) {
      xg_rng rc;
      xg_rng_init(&rc, seed, XG_S_CLASS, (uint64_t)c);
      for (int64_t t = 0; t < T; t++)
        zc[t * XG_NCLASS + c] = xg_t4(&rc);
    }
  }
  const double dt = 1.0 / 252.0, sdt = sqrt(dt);
#pragma omp parallel for schedule(dynamic, 4)
  for (int k = 0; k < x->n_groups; k++) {
    const xg_group *gr = &x->g[k];
    xg_rng ri, rv, rb;
    xg_rng_init(&ri, seed, XG_S_IDIO, (uint64_t)k);
    xg_rng_init(&rv, seed, XG_S_VOLN, (uint64_t)k);
    xg_rng_init(&rb, seed, XG_S_BASIS, (uint64_t)k);
    double a = gr->load_m, b = gr->load_c;
    double ia = sqrt(xg_clamp(1.0 - a * a - b * b, 0.0, 1.0));
    double sig = 0.85 * gr->iv * sdt;
    double rho = gr->rho_iv, irho = sqrt(1.0 - rho * rho);
    double iv = gr->theta > 0.05 ? gr->theta : gr->iv, basis = gr->b_mu;
    for (int64_t t = 0; t < T; t++) {
      double xs = a * zm[t] + b * zc[t * XG_NCLASS + gr->cls] + ia * xg_t4(&ri);
      double rpx = sig * sv[t] * xs;
      double *row = S->hist_return + t * F;
      row[gr->f_px] = rpx;
      if (gr->f_iv >= 0) {
        double u = rho * xg_clamp(xs, -6.0, 6.0) + irho * xg_norm(&rv);
        double d = 5.0 * (gr->theta - iv) * dt + gr->volvol * iv * sdt * sv[t] * u;
        if (iv + d < 0.05)
          d = 0.05 - iv;
        iv += d;
        row[gr->f_iv] = d;
      }
      if (gr->f_fut >= 0) {
        double nb = gr->b_phi * basis + (1.0 - gr->b_phi) * gr->b_mu + gr->b_s * xg_norm(&rb);
        row[gr->f_fut] = rpx + (nb - basis);
        basis = nb;
      }
    }
    /* the group's FX factor (EURUSD): 7.5% a year (EURUSD's realised vol,
     * 2014-2018, about 6-9%), loading 0.25 on the market factor, so that the
     * euro weakens a little in an equity sell-off; Student-t noise */
    if (gr->f_fx >= 0) {
      xg_rng rx;
      xg_rng_init(&rx, seed, XG_S_FX, (uint64_t)k);
      double sfx = 0.075 * sdt, l = 0.25, il = sqrt(1.0 - l * l);
      for (int64_t t = 0; t < T; t++) {
        double z = xg_t4(&rx);
        S->hist_return[t * F + gr->f_fx] = sfx * (l * sv[t] * zm[t] + il * z);
      }
    }
  }
  free(zm);
  free(sv);
  free(zc);
  return 0;
oom:
  free(zm);
  free(sv);
  free(zc);
  return -1;
}

static int xg_set_alloc(xm_scenario_set *s, const char *name, const xm_portfolio *P, int64_t n,
                        int weighted) {
  memset(s, 0, sizeof *s);
  s->measure = XM_MEASURE_WORST;
  s->confidence = NAN;
  s->name = strdup(name);
  s->n_scenarios = n;
  s->n_factors = P->n_factors;
  s->factor = calloc((size_t)P->n_factors, sizeof *s->factor);
  s->label = calloc((size_t)n, sizeof *s->label);
  s->shock = calloc((size_t)n * (size_t)P->n_factors, sizeof *s->shock);
  s->weight = weighted ? malloc((size_t)n * sizeof *s->weight) : NULL;
  if (!s->name || !s->factor || !s->label || !s->shock || (weighted && !s->weight))
    return -1;
  for (int64_t f = 0; f < P->n_factors; f++)
    if (!(s->factor[f] = strdup(P->factor_name[f])))
      return -1;
  return 0;
}

/* Stress scenarios: log-moves of price per class (index, stock, commodity,
 * crypto), vol moves at each class's reference vol, basis changes of index
 * and crypto futures. */
typedef struct xg_stress {
  const char *label;
  double px[XG_NCLASS], iv[XG_NCLASS], basis_idx, basis_cry;
} xg_stress;

static const xg_stress xg_stresses[] = {
    {"equity crash 1987-style: indices -20%, vol +30, futures -27%",
     {-0.223, -0.25, -0.05, -0.10},
     {0.30, 0.35, 0.10, 0.20},
     -0.09,
     0.0},
    {"GFC day: indices -9%, vol +16, commodities -6%",
     {-0.094, -0.11, -0.062, -0.05},
     {0.16, 0.20, 0.10, 0.10},
     0.0,
     0.0},
    {"COVID crash: indices -12%, vol +25, commodities -10%, crypto -35%",
     {-0.128, -0.15, -0.105, -0.431},
     {0.25, 0.30, 0.20, 0.40},
     0.0,
     -0.02},
    {"oil price war: commodities -25%, indices -7%",
     {-0.073, -0.08, -0.288, -0.05},
     {0.12, 0.15, 0.35, 0.05},
     0.0,
     0.0},
    {"crypto crash: crypto -40%, crypto vol +40",
     {-0.01, -0.01, 0.0, -0.511},
     {0.01, 0.01, 0.0, 0.40},
     0.0,
     -0.03},
    {"exchange collapse: crypto -15%, CME crypto futures 5% under spot",
     {-0.02, -0.025, -0.035, -0.163},
     {0.02, 0.02, 0.02, 0.10},
     0.0,
     -0.05},
    {"melt-up: indices +8%, vol -6",
     {0.077, 0.09, 0.02, 0.10},
     {-0.06, -0.08, -0.03, -0.10},
     0.0,
     0.0},
    {"vol crush: vol -8, prices +1%",
     {0.01, 0.01, 0.01, 0.01},
     {-0.08, -0.10, -0.10, -0.15},
     0.0,
     0.0},
    {"Volmageddon: indices -4%, vol +20",
     {-0.042, -0.05, -0.02, -0.03},
     {0.20, 0.15, 0.05, 0.05},
     0.0,
     0.0},
    {"cash falls more than futures: spot -8%, futures -6%",
     {-0.083, -0.083, -0.062, -0.083},
     {0.10, 0.12, 0.08, 0.15},
     0.021,
     0.021},
    {"commodity squeeze: commodities +20%, vol +15",
     {0.0, 0.0, 0.182, 0.0},
     {0.0, 0.0, 0.15, 0.0},
     0.0,
     0.0},
    {"crypto decoupling: crypto +25%, indices -5%",
     {-0.051, -0.06, -0.01, 0.223},
     {0.05, 0.06, 0.0, 0.10},
     0.0,
     0.0},
};
#define XG_NSTRESS ((int64_t)(sizeof xg_stresses / sizeof xg_stresses[0]))

static int xg_stress_set(const xg *x, xm_scenario_set *s) {
  static const double ref_iv[XG_NCLASS] = {0.20, 0.35, 0.40, 0.80};
  const xm_portfolio *P = x->P;
  if (xg_set_alloc(s, "stress", P, XG_NSTRESS, 0) != 0)
    return -1;
  int64_t F = P->n_factors;
  for (int64_t k = 0; k < XG_NSTRESS; k++) {
    const xg_stress *st = &xg_stresses[k];
    if (!(s->label[k] = strdup(st->label)))
      return -1;
    double *row = s->shock + k * F;
    for (int j = 0; j < x->n_groups; j++) {
      const xg_group *gr = &x->g[j];
      double px = st->px[gr->cls] * (gr->cls == XG_STOCK ? gr->beta : 1.0);
      row[gr->f_px] = px;
      if (gr->f_iv >= 0)
        row[gr->f_iv] = st->iv[gr->cls] * gr->iv / ref_iv[gr->cls];
      if (gr->f_fut >= 0)
        row[gr->f_fut] = px + (gr->cls == XG_CRYPTO ? st->basis_cry : st->basis_idx);
      if (gr->f_fx >= 0) /* stated rule: the euro moves a tenth of the index move */
        row[gr->f_fx] = 0.1 * st->px[XG_INDEX];
    }
  }
  return 0;
}

/* The SPAN risk array per scan group (16 scenarios: price 0 with vol +-V,
 * price +-1/3, 2/3, 3/3 R with vol +-V, price +-3 R at weight 0.35). Groups
 * beyond the cap share scan groups (moved together, each by its own R, V). */
static int xg_span_set(const xg *x, xm_scenario_set *s) {
  const xm_portfolio *P = x->P;
  int64_t F = P->n_factors;
  int64_t n_scan = x->n_groups;
  int64_t cap = 20000000 / (16 * F); /* at most 2e7 shocks */
  if (cap > 64)
    cap = 64;
  if (cap < 1)
    cap = 1;
  if (n_scan > cap)
    n_scan = cap;
  int64_t keep = n_scan / 2; /* groups 0 .. keep-1 alone, the rest bucketed */
  if (n_scan == x->n_groups)
    keep = n_scan;
  if (xg_set_alloc(s, "span_grid", P, 16 * n_scan, 1) != 0)
    return -1;
  static const double pm[16] = {0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3, 9, -9};
  static const double vm[16] = {1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 0, 0};
  static const char *const pl[16] = {
      "0",      "0",      "+1/3 R", "+1/3 R", "-1/3 R", "-1/3 R", "+2/3 R",        "+2/3 R",
      "-2/3 R", "-2/3 R", "+R",     "+R",     "-R",     "-R",     "+3R (extreme)", "-3R (extreme)"};
  for (int j = 0; j < x->n_groups; j++) {
    const xg_group *gr = &x->g[j];
    int64_t sg = j < keep ? j : keep + (j - keep) % (n_scan - keep);
    for (int m = 0; m < 16; m++) {
      double *row = s->shock + (sg * 16 + m) * F;
      double px = pm[m] / 3.0 * gr->R;
      row[gr->f_px] = px;
      if (gr->f_iv >= 0)
        row[gr->f_iv] = vm[m] * gr->V;
      if (gr->f_fut >= 0)
        row[gr->f_fut] = px;
    }
  }
  for (int64_t sg = 0; sg < n_scan; sg++) {
    char what[64];
    if (sg < keep) {
      const xg_group *gr = &x->g[sg];
      if (gr->f_fut >= 0)
        snprintf(what, sizeof what, "%s/%s", gr->name, P->factor_name[gr->f_fut]);
      else
        snprintf(what, sizeof what, "%s", gr->name);
    } else {
      snprintf(what, sizeof what, "scan group %lld", (long long)sg + 1);
    }
    for (int m = 0; m < 16; m++) {
      char lab[160];
      const char *v = vm[m] > 0 ? ", vol +V" : vm[m] < 0 ? ", vol -V" : "";
      if (sg < keep)
        snprintf(lab, sizeof lab, "%s: price %s (%+.1f%%)%s", what, pl[m],
                 100.0 * (xg_exp(pm[m] / 3.0 * x->g[sg].R) - 1.0), v);
      else
        snprintf(lab, sizeof lab, "%s: price %s%s", what, pl[m], v);
      int64_t row = sg * 16 + m;
      if (!(s->label[row] = strdup(lab)))
        return -1;
      s->weight[row] = m >= 14 ? 0.35 : 1.0;
    }
  }
  return 0;
}

/* ---- Entry points --------------------------------------------------------------- */

void xm_gen_defaults(xm_gen_params *p) {
  memset(p, 0, sizeof *p);
  p->factors = XM_GEN_DEFAULT_FACTORS;
  p->history_days = XM_GEN_DEFAULT_DAYS;
  p->seed = XM_GEN_DEFAULT_SEED;
  p->collateral = XM_GEN_COLLATERAL_NONE;
}

static const char *const xg_collateral_names[XM_GEN_COLLATERAL_COUNT] = {"none", "mixed", "siloed"};

const char *xm_gen_collateral_name(int mode) {
  return mode >= 0 && mode < XM_GEN_COLLATERAL_COUNT ? xg_collateral_names[mode] : "?";
}

int xm_gen_collateral_mode(const char *name) {
  for (int k = 0; name && k < XM_GEN_COLLATERAL_COUNT; k++)
    if (strcmp(name, xg_collateral_names[k]) == 0)
      return k;
  return -1;
}

xm_status xm_gen_check(const xm_gen_params *p, char *err, size_t cap) {
  char dummy[8];
  if (!err || cap == 0) {
    err = dummy;
    cap = sizeof dummy;
  }
  err[0] = '\0';
  if (!p) {
    snprintf(err, cap, "no parameters");
    return XM_EINVAL;
  }
  if (p->accounts < 1) {
    snprintf(err, cap, "--accounts must be at least 1 (got %lld)", (long long)p->accounts);
    return XM_EINVAL;
  }
  if (p->accounts > INT32_MAX) {
    snprintf(err, cap, "--accounts must be at most %d (got %lld)", INT32_MAX,
             (long long)p->accounts);
    return XM_EINVAL;
  }
  if (p->factors < XM_GEN_MIN_FACTORS || p->factors > XM_GEN_MAX_FACTORS) {
    snprintf(err, cap, "--factors must be between %d and %d (got %lld)", XM_GEN_MIN_FACTORS,
             XM_GEN_MAX_FACTORS, (long long)p->factors);
    return XM_EINVAL;
  }
  int64_t imin = xm_gen_min_instruments(p->factors);
  if (p->instruments < imin || p->instruments > XM_GEN_MAX_INSTRUMENTS) {
    snprintf(err, cap,
             "--instruments must be between %lld (every product of %lld factors, and a put "
             "and a call of every option class) and %lld (got %lld)",
             (long long)imin, (long long)p->factors, (long long)XM_GEN_MAX_INSTRUMENTS,
             (long long)p->instruments);
    return XM_EINVAL;
  }
  if (p->positions < p->accounts || p->positions > XM_GEN_MAX_POSITIONS) {
    snprintf(err, cap,
             "--positions must be at least --accounts (%lld: every account holds one) and at "
             "most %lld (got %lld)",
             (long long)p->accounts, (long long)XM_GEN_MAX_POSITIONS, (long long)p->positions);
    return XM_EINVAL;
  }
  if (p->history_days < XM_GEN_MIN_DAYS || p->history_days > XM_GEN_MAX_DAYS) {
    snprintf(err, cap, "--history-days must be between %d and %d (got %lld)", XM_GEN_MIN_DAYS,
             XM_GEN_MAX_DAYS, (long long)p->history_days);
    return XM_EINVAL;
  }
  if (p->collateral < 0 || p->collateral >= XM_GEN_COLLATERAL_COUNT) {
    snprintf(err, cap, "--collateral must be none, mixed or siloed (got %d)", p->collateral);
    return XM_EINVAL;
  }
  if (p->history_days * p->factors > XM_GEN_MAX_HISTORY_VALUES) {
    snprintf(err, cap,
             "--history-days x --factors must be at most %lld (got %lld x %lld): the history "
             "would not fit in memory",
             (long long)XM_GEN_MAX_HISTORY_VALUES, (long long)p->history_days,
             (long long)p->factors);
    return XM_EINVAL;
  }
  return XM_OK;
}

static int xg_alloc_portfolio(xm_portfolio *P, int64_t nf, int64_t ni, int64_t na, int64_t np) {
  size_t f = (size_t)nf, i = (size_t)ni, a = (size_t)na, n = (size_t)np;
  P->factor_name = calloc(f, sizeof *P->factor_name);
  P->factor_kind = calloc(f, sizeof *P->factor_kind);
  P->factor_level = calloc(f, sizeof *P->factor_level);
  P->n_silos = 3;
  P->silo_name = calloc(3, sizeof *P->silo_name);
  P->n_instruments = ni;
  P->inst_id = calloc(i, sizeof *P->inst_id);
  P->inst_type = malloc(i * sizeof *P->inst_type);
  P->inst_silo = malloc(i * sizeof *P->inst_silo);
  P->inst_underlying = malloc(i * sizeof *P->inst_underlying);
  P->inst_vol_factor = malloc(i * sizeof *P->inst_vol_factor);
  P->inst_strike = malloc(i * sizeof *P->inst_strike);
  P->inst_expiry = malloc(i * sizeof *P->inst_expiry);
  P->inst_call = malloc(i * sizeof *P->inst_call);
  P->inst_implied_vol = malloc(i * sizeof *P->inst_implied_vol);
  P->inst_rate = malloc(i * sizeof *P->inst_rate);
  P->inst_dividend_yield = malloc(i * sizeof *P->inst_dividend_yield);
  P->inst_multiplier = malloc(i * sizeof *P->inst_multiplier);
  P->inst_currency = calloc(i, sizeof *P->inst_currency);
  P->inst_funding_rate = calloc(i, sizeof *P->inst_funding_rate);
  P->n_accounts = na;
  P->account_id = calloc(a, sizeof *P->account_id);
  P->account_cross_margin = malloc(a * sizeof *P->account_cross_margin);
  P->account_currency = calloc(a, sizeof *P->account_currency);
  P->fx_currency = calloc(f, sizeof *P->fx_currency); /* at most a currency per group */
  P->fx_factor = calloc(f, sizeof *P->fx_factor);
  P->n_positions = np;
  P->pos_account = malloc(n * sizeof *P->pos_account);
  P->pos_instrument = malloc(n * sizeof *P->pos_instrument);
  P->pos_quantity = malloc(n * sizeof *P->pos_quantity);
  if (!P->factor_name || !P->factor_kind || !P->factor_level || !P->silo_name || !P->inst_id ||
      !P->inst_type || !P->inst_silo || !P->inst_underlying || !P->inst_vol_factor ||
      !P->inst_strike || !P->inst_expiry || !P->inst_call || !P->inst_implied_vol ||
      !P->inst_rate || !P->inst_dividend_yield || !P->inst_multiplier || !P->account_id ||
      !P->account_cross_margin || !P->pos_account || !P->pos_instrument || !P->pos_quantity ||
      !P->inst_currency || !P->inst_funding_rate || !P->account_currency || !P->fx_currency ||
      !P->fx_factor)
    return -1;
  for (int g = 0; g < 3; g++)
    if (!(P->silo_name[g] = strdup(xg_silos[g])))
      return -1;
  return 0;
}

xm_status xm_generate(const xm_gen_params *p, xm_portfolio *port, xm_scenario_file *scen,
                      xm_gen_stats *stats) {
  if (!port || !scen)
    return XM_EINVAL;
  memset(port, 0, sizeof *port);
  memset(scen, 0, sizeof *scen);
  if (stats)
    memset(stats, 0, sizeof *stats);
  if (xm_gen_check(p, NULL, 0) != XM_OK)
    return XM_EINVAL;
  xm_status st = XM_ENOMEM;
  xg x;
  memset(&x, 0, sizeof x);
  x.p = p;
  x.P = port;
  xm_portfolio *P = port;
  snprintf(P->valuation_date, sizeof P->valuation_date, "%s", XG_VALUATION_DATE);
  snprintf(P->currency, sizeof P->currency, "USD");
  /* A group takes at least one factor, at most three roots. */
  x.g = calloc((size_t)p->factors, sizeof *x.g);
  x.r = calloc((size_t)p->factors, sizeof *x.r);
  if (!x.g || !x.r ||
      xg_alloc_portfolio(P, p->factors, p->instruments, p->accounts, p->positions) != 0)
    goto done;
  x.n_groups = xg_plan_factors(&x, p->seed);
  for (int64_t f = 0; f < P->n_factors; f++)
    if (!P->factor_name[f])
      goto done;
  xg_products(&x);
  for (int64_t i = 0; i < x.n_linear; i++)
    if (!P->inst_id[i] || !P->inst_currency[i])
      goto done;
  /* /fx: every coin (its price factor) and EUR (EURUSD), in group order */
  for (int k = 0; k < x.n_groups; k++) {
    const xg_group *gr = &x.g[k];
    const char *c = gr->cls == XG_CRYPTO ? gr->name : gr->f_fx >= 0 ? gr->ccy : NULL;
    if (!c)
      continue;
    if (!(P->fx_currency[P->n_fx] = strdup(c)))
      goto done;
    P->fx_factor[P->n_fx++] = gr->cls == XG_CRYPTO ? gr->f_px : gr->f_fx;
  }
  if (xg_options(&x) != 0 || xg_candidates(&x) != 0 || xg_accounts(&x, stats) != 0)
    goto done;
  if (xg_liquidity(&x) != 0 || xg_collateral(&x, stats) != 0)
    goto done;
  if (xg_history(&x, scen) != 0)
    goto done;
  scen->n_sets = 2;
  scen->sets = calloc(2, sizeof *scen->sets);
  if (!scen->sets)
    goto done;
  /* sorted by name, as the reader returns them */
  if (xg_span_set(&x, &scen->sets[0]) != 0 || xg_stress_set(&x, &scen->sets[1]) != 0)
    goto done;
  if (stats) {
    stats->underlyings = x.n_groups;
    for (int k = 0; k < x.n_groups; k++)
      stats->by_class[x.g[k].cls]++;
    stats->option_classes = x.n_roots;
    unsigned char *held = calloc((size_t)P->n_instruments, 1);
    if (!held)
      goto done;
    for (int64_t n = 0; n < P->n_positions; n++)
      held[P->pos_instrument[n]] = 1;
    for (int64_t i = 0; i < P->n_instruments; i++)
      stats->held_instruments += held[i];
    free(held);
  }
  st = XM_OK;
done:
  for (int k = 0; k < x.n_roots; k++) {
    free(x.r[k].days);
    free(x.r[k].base);
  }
  xg_list *ls[] = {&x.mm_eq,  &x.mm_fopt,   &x.mm_com, &x.mm_cry, &x.roots, &x.basis,
                   &x.shares, &x.cry_basis, &x.coins,  &x.linear, &x.inv};
  for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) {
    free(ls[k]->v);
    free(ls[k]->cum);
  }
  free(x.linear_inst);
  free(x.linear_cls);
  free(x.g);
  free(x.r);
  if (st != XM_OK)
    xm_gen_free(port, scen);
  return st;
}

static void xg_free_strings(char ***v, int64_t n) {
  if (*v)
    for (int64_t k = 0; k < n; k++)
      free((*v)[k]);
  free(*v);
  *v = NULL;
}

void xm_gen_free(xm_portfolio *port, xm_scenario_file *scen) {
  if (port) {
    xg_free_strings(&port->inst_currency, port->n_instruments);
    xg_free_strings(&port->account_currency, port->n_accounts);
    xg_free_strings(&port->fx_currency, port->n_fx);
    free(port->inst_funding_rate);
    port->inst_funding_rate = NULL;
    free(port->fx_factor);
    port->fx_factor = NULL;
    port->n_fx = 0;
    xm_portfolio_free(port);
  }
  if (scen)
    xm_scenarios_free(scen);
}
