/* The statistics of METHODOLOGY.md section 7 (host/xm_backtest.h): the
 * backtest days, Kupiec, Christoffersen, the traffic light and the
 * procyclicality figures. Owns nothing but the day list it returns. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_backtest.h"

/* The traffic light's thresholds on B = P(X <= x) (Basel). */
#define XM__ZONE_GREEN_BELOW 0.95
#define XM__ZONE_YELLOW_BELOW 0.9999

#define XM__ZONE_NAME(NAME, name) name,
static const char *const xm__zone_names[XM_ZONE_COUNT] = {XM_ZONE_MAP(XM__ZONE_NAME)};
#undef XM__ZONE_NAME

const char *xm__zone_name(int zone) {
  if (zone == XM_ZONE_NONE)
    return "";
  return zone >= 0 && zone < XM_ZONE_COUNT ? xm__zone_names[zone] : NULL;
}

static xm_status xm__bt_msg(char *msg, size_t cap, xm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static xm_status xm__bt_msg(char *msg, size_t cap, xm_status st, const char *fmt, ...) {
  if (msg && cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return st;
}

xm_status xm__bt_days(int64_t T, int64_t h, int64_t min_history, int64_t days, xm__bt_dayset *out,
                      char *msg, size_t msg_cap) {
  if (!out)
    return xm__bt_msg(msg, msg_cap, XM_EINVAL, "backtest days: no output");
  memset(out, 0, sizeof *out);
  if (T < 0 || T > INT32_MAX)
    return xm__bt_msg(msg, msg_cap, XM_EINVAL, "backtest days: a history of %lld rows",
                      (long long)T);
  if (h < 1 || h > INT32_MAX)
    return xm__bt_msg(msg, msg_cap, XM_EINVAL, "backtest days: horizon_days = %lld", (long long)h);
  if (min_history <= h)
    return xm__bt_msg(msg, msg_cap, XM_ECONFIG,
                      "backtest.min_history = %lld is below horizon_days + 1 = %lld",
                      (long long)min_history, (long long)h + 1);
  /* T - h - min_history + 1, without overflow (min_history > T leaves none). */
  int64_t avail = min_history > T ? 0 : T - h - min_history + 1;
  int64_t n = days < avail ? days : avail;
  if (n < 2)
    return xm__bt_msg(msg, msg_cap, XM_ECONFIG,
                      "%lld backtest days (backtest.days = %lld; a history of %lld rows, "
                      "horizon_days = %lld and backtest.min_history = %lld leave %lld): "
                      "at least 2 are needed",
                      (long long)(n < 0 ? 0 : n), (long long)days, (long long)T, (long long)h,
                      (long long)min_history, (long long)(avail < 0 ? 0 : avail));
  int64_t nt = (n - 1) / h + 1;
  int64_t *tests = malloc((size_t)nt * sizeof *tests);
  if (!tests)
    return xm__bt_msg(msg, msg_cap, XM_ENOMEM, "backtest days: %lld test days", (long long)nt);
  /* d_k = T - h - k h for k = nt - 1 .. 0, oldest first. */
  for (int64_t j = 0; j < nt; j++)
    tests[j] = T - h - (nt - 1 - j) * h;
  out->first = T - h - n + 1;
  out->n = n;
  out->n_tests = nt;
  out->tests = tests;
  return XM_OK;
}

void xm__bt_days_free(xm__bt_dayset *days) {
  if (!days)
    return;
  free(days->tests);
  memset(days, 0, sizeof *days);
}

void xm__bt_stats_none(xm__bt_stats *out) {
  if (!out)
    return;
  memset(out, 0, sizeof *out);
  out->lr_pof = out->p_pof = out->lr_ind = out->lr_cc = out->p_cc = out->binom_cdf = NAN;
  out->zone = XM_ZONE_NONE;
}

/* count * ln(num / den): 0 when count is 0 (0 ln 0 = 0, and a term whose
 * probability has an empty denominator has count 0); otherwise num, den > 0. */
static double xm__xlog(int64_t count, double num, double den) {
  return count == 0 ? 0.0 : (double)count * log(num / den);
}

/* P(X <= x) for X ~ Binomial(n, p), 0 <= x <= n: the terms by the recurrence
 * t_{k+1} = t_k (n - k) / (k + 1) * p / (1 - p) in logarithms (no underflow of
 * (1 - p)^n), summed scaled by the largest so far. */
static double xm__binom_cdf(int64_t x, int64_t n, double p) {
  if (x >= n)
    return 1.0;
  double lodds = log(p) - log1p(-p), l = (double)n * log1p(-p);
  double top = l, sum = 1.0;
  for (int64_t k = 0; k < x; k++) {
    l += log((double)(n - k) / (double)(k + 1)) + lodds;
    if (l > top) {
      sum = sum * exp(top - l) + 1.0;
      top = l;
    } else {
      sum += exp(l - top);
    }
  }
  double b = exp(top) * sum;
  return b > 1.0 ? 1.0 : b;
}

xm_status xm__bt_stats_compute(const uint8_t *e, int64_t n, double p, xm__bt_stats *out) {
  if (!out || n < 0 || (!e && n > 0) || !(p > 0.0 && p < 1.0))
    return XM_EINVAL;
  if (n == 0) {
    xm__bt_stats_none(out);
    return XM_OK;
  }
  xm__bt_stats s;
  memset(&s, 0, sizeof s);
  s.n = n;
  for (int64_t t = 0; t < n; t++) {
    int j = e[t] != 0;
    s.x += j;
    if (t > 0) {
      int i = e[t - 1] != 0;
      s.n00 += !i && !j;
      s.n01 += !i && j;
      s.n10 += i && !j;
      s.n11 += i && j;
    }
  }
  /* Kupiec: 2 [(N' - x) ln((1 - q) / (1 - p)) + x ln(q / p)], q = x / N'. */
  double dn = (double)n, dx = (double)s.x;
  double lr = 2.0 * (xm__xlog(n - s.x, (dn - dx) / dn, 1.0 - p) + xm__xlog(s.x, dx / dn, p));
  s.lr_pof = lr > 0.0 ? lr : 0.0;
  s.p_pof = erfc(sqrt(s.lr_pof / 2.0));
  /* Christoffersen, each term against the pooled pi: n_0j ln(pi_0j / pi_j) +
   * n_1j ln(pi_1j / pi_j), which is the section's formula regrouped. */
  double m = (double)(n - 1), r0 = (double)(s.n00 + s.n01), r1 = (double)(s.n10 + s.n11);
  double c0 = (double)(s.n00 + s.n10), c1 = (double)(s.n01 + s.n11);
  lr = 2.0 *
       (xm__xlog(s.n00, (double)s.n00 * m, r0 * c0) + xm__xlog(s.n01, (double)s.n01 * m, r0 * c1) +
        xm__xlog(s.n10, (double)s.n10 * m, r1 * c0) + xm__xlog(s.n11, (double)s.n11 * m, r1 * c1));
  s.lr_ind = lr > 0.0 ? lr : 0.0;
  s.lr_cc = s.lr_pof + s.lr_ind;
  s.p_cc = exp(-s.lr_cc / 2.0);
  s.binom_cdf = xm__binom_cdf(s.x, n, p);
  s.zone = s.binom_cdf < XM__ZONE_GREEN_BELOW    ? XM_ZONE_GREEN
           : s.binom_cdf < XM__ZONE_YELLOW_BELOW ? XM_ZONE_YELLOW
                                                 : XM_ZONE_RED;
  *out = s;
  return XM_OK;
}

xm_status xm__bt_procyclicality(const double *M, int64_t n, int64_t window, xm__bt_apc *out) {
  if (!out || n < 0 || (!M && n > 0))
    return XM_EINVAL;
  double lo = INFINITY, hi = -INFINITY, best = NAN;
  int64_t from = -1, to = -1;
  for (int64_t i = 0; i < n; i++) {
    if (!(M[i] > 0.0))
      continue;
    lo = M[i] < lo ? M[i] : lo;
    hi = M[i] > hi ? M[i] : hi;
    int64_t last = window < n - 1 - i ? i + window : n - 1;
    for (int64_t j = i + 1; j <= last; j++) {
      double inc = M[j] / M[i] - 1.0;
      if (from < 0 || inc > best) {
        if (isnan(inc))
          continue;
        best = inc;
        from = i;
        to = j;
      }
    }
  }
  out->peak_to_trough = hi > 0.0 ? hi / lo : NAN;
  out->max_increase = best;
  out->inc_from = from;
  out->inc_to = to;
  return XM_OK;
}
