/* The statistics of a backtest (host/backtest_stats.c, METHODOLOGY.md section 7):
 * the day selection, Kupiec, Christoffersen, the traffic light and the
 * procyclicality figures, against values worked out here and numbers from
 * scipy (the one-liner that gave each is in the comment next to it), and
 * against a literal transcription of the section's formulas on random
 * sequences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "xm_backtest.h"

/* |got - want| <= tol * max(1, |want|). */
static void near(double got, double want, double tol, const char *what) {
  double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
  if (!(fabs(got - want) <= tol * scale))
    fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

static xm__bt_stats stats_of(const char *bits, double p) {
  uint8_t e[512];
  int64_t n = (int64_t)strlen(bits);
  assert_true(n <= (int64_t)sizeof e);
  for (int64_t t = 0; t < n; t++)
    e[t] = (uint8_t)(bits[t] == '1');
  xm__bt_stats s;
  assert_int_equal(xm__bt_stats_compute(e, n, p, &s), XM_OK);
  return s;
}

/* x exceptions among n days (spread out, no two adjacent while x <= n / 2). */
static xm__bt_stats stats_count(int64_t n, int64_t x, double p) {
  uint8_t *e = calloc((size_t)n, 1);
  assert_non_null(e);
  for (int64_t k = 0; k < x; k++)
    e[k * n / x] = 1;
  xm__bt_stats s;
  assert_int_equal(xm__bt_stats_compute(e, n, p, &s), XM_OK);
  free(e);
  assert_int_equal(s.x, x);
  return s;
}

static void zone_names(void **state) {
  (void)state;
  int count = 0;
#define CHECK(NAME, name)                                                                          \
  assert_string_equal(xm__zone_name(XM_ZONE_##NAME), name);                                        \
  assert_int_equal(XM_ZONE_##NAME, count);                                                         \
  count++;
  XM_ZONE_MAP(CHECK)
#undef CHECK
  assert_int_equal(count, XM_ZONE_COUNT);
  assert_int_equal(XM_ZONE_COUNT, 3);
  assert_string_equal(xm__zone_name(XM_ZONE_NONE), "");
  assert_null(xm__zone_name(XM_ZONE_COUNT));
  assert_null(xm__zone_name(-2));
}

static void days_of(int64_t T, int64_t h, int64_t mh, int64_t days, int64_t first, int64_t n,
                    const int64_t *tests, int64_t n_tests) {
  xm__bt_dayset d;
  char msg[256] = "untouched";
  assert_int_equal(xm__bt_days(T, h, mh, days, &d, msg, sizeof msg), XM_OK);
  assert_string_equal(msg, "untouched");
  assert_int_equal(d.first, first);
  assert_int_equal(d.n, n);
  assert_int_equal(d.n_tests, n_tests);
  for (int64_t j = 0; j < n_tests; j++)
    assert_int_equal(d.tests[j], tests[j]);
  /* every test day is a backtest day, with at least mh rows up to it and h after it */
  for (int64_t j = 0; j < n_tests; j++) {
    assert_true(d.tests[j] >= d.first && d.tests[j] <= d.first + d.n - 1);
    assert_true(d.tests[j] >= mh && d.tests[j] + h <= T);
  }
  xm__bt_days_free(&d);
  assert_null(d.tests);
  assert_int_equal(d.n, 0);
}

static void day_selection(void **state) {
  (void)state;
  /* T = 10, h = 2, min_history = 3: N = min(500, 10 - 2 - 3 + 1 = 6) = 6, days
   * 3..8 (day 3 has rows 1..3, day 8 rows 9 and 10 after it); d_k = 8, 6, 4
   * (2 < 3 is not a backtest day). */
  days_of(10, 2, 3, 500, 3, 6, (const int64_t[]){4, 6, 8}, 3);
  /* the same with backtest.days = 4: days 5..8, d_k = 8, 6 */
  days_of(10, 2, 3, 4, 5, 4, (const int64_t[]){6, 8}, 2);
  /* h = 1: every backtest day is a test day; T = 5, min_history = 2: days 2..4 */
  days_of(5, 1, 2, 100, 2, 3, (const int64_t[]){2, 3, 4}, 3);
  /* h = 3, T = 20, min_history = 5, days = 7: days 11..17, d_k = 17, 14, 11 */
  days_of(20, 3, 5, 7, 11, 7, (const int64_t[]){11, 14, 17}, 3);
  /* h = 3, days = 6: days 12..17, d_k = 17, 14 (11 is not one) */
  days_of(20, 3, 5, 6, 12, 6, (const int64_t[]){14, 17}, 2);
  /* exactly 2 days (T = 10, h = 2, min_history = 7: days 7, 8): N' = 1 */
  days_of(10, 2, 7, 500, 7, 2, (const int64_t[]){8}, 1);
  /* min_history = h + 1 is allowed: T = 6, h = 2, min_history = 3: days 3, 4 */
  days_of(6, 2, 3, 500, 3, 2, (const int64_t[]){4}, 1);
  /* the defaults with T = 751: N = 500 (days 250..749), N' = 250 at h = 2 */
  xm__bt_dayset d;
  assert_int_equal(xm__bt_days(751, 2, 250, 500, &d, NULL, 0), XM_OK);
  assert_int_equal(d.first, 250);
  assert_int_equal(d.n, 500);
  assert_int_equal(d.n_tests, 250);
  assert_int_equal(d.tests[0], 251);
  assert_int_equal(d.tests[249], 749);
  for (int64_t j = 1; j < d.n_tests; j++)
    assert_int_equal(d.tests[j] - d.tests[j - 1], 2);
  xm__bt_days_free(&d);
  xm__bt_days_free(NULL);
}

static void day_selection_errors(void **state) {
  (void)state;
  xm__bt_dayset d;
  char msg[512];
  /* min_history < h + 1 */
  msg[0] = 0;
  assert_int_equal(xm__bt_days(100, 2, 2, 10, &d, msg, sizeof msg), XM_ECONFIG);
  assert_non_null(strstr(msg, "backtest.min_history"));
  assert_null(d.tests);
  assert_int_equal(xm__bt_days(100, 2, -5, 10, &d, msg, sizeof msg), XM_ECONFIG);
  /* one day only: T = 10, h = 2, min_history = 8 leave 1 */
  msg[0] = 0;
  assert_int_equal(xm__bt_days(10, 2, 8, 500, &d, msg, sizeof msg), XM_ECONFIG);
  assert_non_null(strstr(msg, "backtest.days"));
  assert_non_null(strstr(msg, "backtest.min_history"));
  assert_int_equal(d.n, 0);
  /* backtest.days = 1 with a long history */
  assert_int_equal(xm__bt_days(1000, 2, 250, 1, &d, msg, sizeof msg), XM_ECONFIG);
  assert_non_null(strstr(msg, "backtest.days = 1"));
  assert_int_equal(xm__bt_days(1000, 2, 250, 0, &d, msg, sizeof msg), XM_ECONFIG);
  assert_int_equal(xm__bt_days(1000, 2, 250, INT64_MIN, &d, msg, sizeof msg), XM_ECONFIG);
  /* a history shorter than min_history + h: none left; a huge min_history */
  assert_int_equal(xm__bt_days(100, 2, 250, 500, &d, msg, sizeof msg), XM_ECONFIG);
  assert_int_equal(xm__bt_days(100, 2, INT64_MAX, 500, &d, msg, sizeof msg), XM_ECONFIG);
  assert_int_equal(xm__bt_days(0, 1, 2, 500, &d, msg, sizeof msg), XM_ECONFIG);
  /* arguments */
  assert_int_equal(xm__bt_days(100, 0, 10, 10, &d, msg, sizeof msg), XM_EINVAL);
  assert_int_equal(xm__bt_days(-1, 2, 10, 10, &d, msg, sizeof msg), XM_EINVAL);
  assert_int_equal(xm__bt_days((int64_t)INT32_MAX + 1, 2, 10, 10, &d, msg, sizeof msg), XM_EINVAL);
  assert_int_equal(xm__bt_days(100, 2, 10, 10, NULL, msg, sizeof msg), XM_EINVAL);
  /* a short buffer is terminated; no buffer at all is fine */
  char small[8];
  memset(small, 'x', sizeof small);
  assert_int_equal(xm__bt_days(10, 2, 8, 500, &d, small, sizeof small), XM_ECONFIG);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_int_equal(xm__bt_days(10, 2, 8, 500, &d, NULL, 0), XM_ECONFIG);
}

static void kupiec(void **state) {
  (void)state;
  /* N' = 250, x = 5, p = 0.01 (q = 0.02):
   * LR_pof = -2[245 ln 0.99 + 5 ln 0.01] + 2[245 ln 0.98 + 5 ln 0.02]
   *        = 2[245 ln(0.98/0.99) + 5 ln 2] = 2[-2.487331 + 3.465736] = 1.956810 */
  xm__bt_stats s = stats_count(250, 5, 0.01);
  near(s.lr_pof, 2.0 * (245.0 * log(0.98 / 0.99) + 5.0 * log(2.0)), 1e-13, "LR_pof 5/250");
  near(s.lr_pof, 1.956809788230652, 1e-12, "LR_pof 5/250 (literal)");
  /* python3 -c "import scipy.stats as s,math;
   * print(repr(s.chi2.sf(2*(245*math.log(.98/.99)+5*math.log(2)),1)))" */
  near(s.p_pof, 0.1618549171960355, 1e-12, "p_pof 5/250");
  /* x = 0: LR_pof = -2 * 250 ln 0.99 = 5.025168 (the x ln q term is 0 ln 0 = 0) */
  s = stats_count(250, 0, 0.01);
  near(s.lr_pof, -500.0 * log(0.99), 1e-13, "LR_pof 0/250");
  /* python3 -c "import scipy.stats as s,math; print(repr(s.chi2.sf(-500*math.log(.99),1)))" */
  near(s.p_pof, 0.02498150305344973, 1e-12, "p_pof 0/250");
  /* x = pN' exactly: LR_pof = 0 (up to rounding, clamped at 0), p-value 1 */
  s = stats_count(200, 2, 0.01);
  assert_true(s.lr_pof >= 0.0 && s.lr_pof < 1e-12);
  near(s.p_pof, 1.0, 1e-6, "p_pof at x = pN'");
  /* x = N' = 3: LR_pof = -2 * 3 ln 0.01 = 27.631021 (the (N' - x) term is 0 ln 0) */
  s = stats_of("111", 0.01);
  near(s.lr_pof, -6.0 * log(0.01), 1e-13, "LR_pof 3/3");
  near(s.p_pof, erfc(sqrt(-3.0 * log(0.01))), 1e-15, "p_pof 3/3");
  assert_true(s.p_pof > 0.0 && s.p_pof < 1e-6);
  /* a p-value far in the tail is not 1 - (something near 1): x = 60 of 250 */
  s = stats_count(250, 60, 0.01);
  assert_true(s.p_pof > 0.0 && s.p_pof < 1e-40);
}

static void christoffersen(void **state) {
  (void)state;
  /* 0000111000 at p = 0.05: x = 3, pairs (e[t], e[t+1]): 00 00 00 01 11 11 10 00 00,
   * n00 = 5, n01 = 1, n10 = 1, n11 = 2; pi_01 = 1/6, pi_11 = 2/3, pi = 3/9 = 1/3:
   * LR_ind = -2[6 ln(2/3) + 3 ln(1/3)] + 2[5 ln(5/6) + ln(1/6) + ln(1/3) + 2 ln(2/3)]
   *        = 2[5 ln(5/4) + ln(1/2) + ln(1/2) + 2 ln 2] = 10 ln 1.25 = 2.231436
   * LR_pof = 2[7 ln(0.7/0.95) + 3 ln(0.3/0.05)] = 6.475214 */
  xm__bt_stats s = stats_of("0000111000", 0.05);
  assert_int_equal(s.n, 10);
  assert_int_equal(s.x, 3);
  assert_int_equal(s.n00, 5);
  assert_int_equal(s.n01, 1);
  assert_int_equal(s.n10, 1);
  assert_int_equal(s.n11, 2);
  near(s.lr_ind, 10.0 * log(1.25), 1e-13, "LR_ind clustered");
  near(s.lr_pof, 2.0 * (7.0 * log(0.7 / 0.95) + 3.0 * log(6.0)), 1e-13, "LR_pof clustered");
  near(s.lr_cc, s.lr_pof + s.lr_ind, 1e-15, "LR_cc = LR_pof + LR_ind");
  /* python3 -c "import scipy.stats as s,math;
   * print(repr(s.chi2.sf(2*(7*math.log(.7/.95)+3*math.log(6))+10*math.log(1.25),2)))" */
  near(s.p_cc, 0.012863973617874466, 1e-12, "p_cc clustered");
  /* python3 -c "import scipy.stats as s,math;
   * print(repr(s.chi2.sf(2*(7*math.log(.7/.95)+3*math.log(6)),1)))" */
  near(s.p_pof, 0.010938915908123166, 1e-12, "p_pof clustered");

  /* 0011000100: n00 = 4, n01 = 2, n10 = 2, n11 = 1: pi_01 = pi_11 = pi = 1/3, LR_ind = 0 */
  s = stats_of("0011000100", 0.05);
  assert_int_equal(s.n00, 4);
  assert_int_equal(s.n01, 2);
  assert_int_equal(s.n10, 2);
  assert_int_equal(s.n11, 1);
  assert_true(s.lr_ind >= 0.0 && s.lr_ind < 1e-14);

  /* alternating 0101010101: n01 = 5, n10 = 4, n00 = n11 = 0; pi_01 = 1, pi_11 = 0,
   * pi = 5/9: LR_ind = 2[5 ln(9/5) + 4 ln(9/4)] = 12.365308 (0 ln 0 = 0) */
  s = stats_of("0101010101", 0.05);
  assert_int_equal(s.n01, 5);
  assert_int_equal(s.n10, 4);
  assert_int_equal(s.n00 + s.n11, 0);
  near(s.lr_ind, 2.0 * (5.0 * log(9.0 / 5.0) + 4.0 * log(9.0 / 4.0)), 1e-13, "LR_ind 0101");
  near(s.lr_ind, 12.36530837875182, 1e-12, "LR_ind 0101 (literal)");
}

static void corner_cases(void **state) {
  (void)state;
  /* all pairs one kind: each gives LR_ind = 0 (pi_11 or pi_01 has an empty denominator) */
  const char *one_kind[] = {"00000000", "11111111", "10", "01"};
  for (size_t c = 0; c < sizeof one_kind / sizeof *one_kind; c++) {
    xm__bt_stats s = stats_of(one_kind[c], 0.01);
    assert_int_equal(s.n00 + s.n01 + s.n10 + s.n11, s.n - 1);
    assert_true(s.n00 == s.n - 1 || s.n11 == s.n - 1 || s.n01 == 1 || s.n10 == 1);
    if (!(s.lr_ind == 0.0))
      fail_msg("%s: LR_ind = %g", one_kind[c], s.lr_ind);
    near(s.lr_cc, s.lr_pof, 0.0, "LR_cc = LR_pof");
    near(s.p_cc, exp(-s.lr_pof / 2.0), 1e-15, "p_cc");
    assert_true(isfinite(s.lr_pof) && isfinite(s.p_pof) && isfinite(s.binom_cdf));
  }
  /* x = N' = 8: B = 1, red; n11 = 7 */
  xm__bt_stats s = stats_of("11111111", 0.01);
  assert_int_equal(s.n11, 7);
  near(s.binom_cdf, 1.0, 0.0, "B at x = N'");
  assert_int_equal(s.zone, XM_ZONE_RED);
  /* N' = 1: no pairs, LR_ind = 0; e = 1: LR_pof = -2 ln p, B = 1; e = 0: LR_pof =
   * -2 ln(1 - p), B = 1 - p = 0.99 >= 0.95, which the rule calls yellow */
  s = stats_of("1", 0.01);
  assert_int_equal(s.n00 + s.n01 + s.n10 + s.n11, 0);
  assert_true(s.lr_ind == 0.0);
  near(s.lr_pof, -2.0 * log(0.01), 1e-14, "LR_pof N' = 1, e = 1");
  assert_int_equal(s.zone, XM_ZONE_RED);
  s = stats_of("0", 0.01);
  near(s.lr_pof, -2.0 * log(0.99), 1e-14, "LR_pof N' = 1, e = 0");
  near(s.binom_cdf, 0.99, 1e-15, "B N' = 1, x = 0");
  assert_int_equal(s.zone, XM_ZONE_YELLOW);
  /* x = 0: B = 0.99^N'; green from N' = 6 (0.99^5 = 0.95099, 0.99^6 = 0.94148) */
  s = stats_of("00000", 0.01);
  near(s.binom_cdf, 0.9509900499, 1e-14, "B 0/5");
  assert_int_equal(s.zone, XM_ZONE_YELLOW);
  s = stats_of("000000", 0.01);
  near(s.binom_cdf, 0.941480149401, 1e-14, "B 0/6");
  assert_int_equal(s.zone, XM_ZONE_GREEN);
  /* N' = 0: no statistics */
  assert_int_equal(xm__bt_stats_compute(NULL, 0, 0.01, &s), XM_OK);
  assert_int_equal(s.n, 0);
  assert_int_equal(s.x, 0);
  assert_int_equal(s.n00 + s.n01 + s.n10 + s.n11, 0);
  assert_true(isnan(s.lr_pof) && isnan(s.p_pof) && isnan(s.lr_ind) && isnan(s.lr_cc) &&
              isnan(s.p_cc) && isnan(s.binom_cdf));
  assert_int_equal(s.zone, XM_ZONE_NONE);
  assert_string_equal(xm__zone_name(s.zone), "");
  /* arguments: out unchanged on failure */
  uint8_t e[2] = {0, 1};
  s = stats_of("01", 0.01);
  xm__bt_stats keep = s;
  assert_int_equal(xm__bt_stats_compute(e, 2, 0.0, &s), XM_EINVAL);
  assert_int_equal(xm__bt_stats_compute(e, 2, 1.0, &s), XM_EINVAL);
  assert_int_equal(xm__bt_stats_compute(e, 2, NAN, &s), XM_EINVAL);
  assert_int_equal(xm__bt_stats_compute(e, -1, 0.01, &s), XM_EINVAL);
  assert_int_equal(xm__bt_stats_compute(NULL, 2, 0.01, &s), XM_EINVAL);
  assert_int_equal(xm__bt_stats_compute(e, 2, 0.01, NULL), XM_EINVAL);
  assert_memory_equal(&s, &keep, sizeof s);
  /* any non-zero byte is an exception */
  uint8_t e2[3] = {0, 7, 255};
  assert_int_equal(xm__bt_stats_compute(e2, 3, 0.01, &s), XM_OK);
  assert_int_equal(s.x, 2);
  assert_int_equal(s.n11, 1);
}

static void traffic_light(void **state) {
  (void)state;
  /* N' = 250, p = 0.01 (Basel): green 0-4, yellow 5-9, red from 10.
   * python3 -c "import scipy.stats as s; print([repr(s.binom.cdf(x,250,.01)) for x in
   * (0,4,5,9,10)])" */
  static const struct {
    int64_t x;
    double b;
    xm__zone zone;
  } rows[] = {{0, 0.08105851616218143, XM_ZONE_GREEN},
              {4, 0.8921876269036252, XM_ZONE_GREEN},
              {5, 0.9588168159301517, XM_ZONE_YELLOW},
              {9, 0.9997498099312595, XM_ZONE_YELLOW},
              {10, 0.999946101370953, XM_ZONE_RED}};
  for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
    xm__bt_stats s = stats_count(250, rows[r].x, 0.01);
    char what[64];
    snprintf(what, sizeof what, "B %lld/250", (long long)rows[r].x);
    near(s.binom_cdf, rows[r].b, 1e-13, what);
    if (s.zone != rows[r].zone)
      fail_msg("%lld exceptions of 250: zone %s, want %s", (long long)rows[r].x,
               xm__zone_name(s.zone), xm__zone_name(rows[r].zone));
  }
  /* every x from 0 to 250: the zone changes exactly at 5 and at 10, B rises to 1 */
  double prev = 0.0;
  for (int64_t x = 0; x <= 250; x++) {
    xm__bt_stats s = stats_count(250, x, 0.01);
    xm__zone want = x <= 4 ? XM_ZONE_GREEN : x <= 9 ? XM_ZONE_YELLOW : XM_ZONE_RED;
    if (s.zone != want)
      fail_msg("%lld exceptions of 250: zone %s", (long long)x, xm__zone_name(s.zone));
    assert_true(s.binom_cdf >= prev && s.binom_cdf <= 1.0);
    prev = s.binom_cdf;
  }
  near(prev, 1.0, 0.0, "B at x = N'");
  /* the closest B to each threshold at p = 0.01 for N' < 1200 (other than the
   * exact tie 1 - p^2 = 0.9999 at N' = 2, x = 1, which rounding decides):
   * python3 -c "import scipy.stats as s; print([repr(s.binom.cdf(x,n,.01)) for n,x in
   * ((1086,16),(927,14),(750,19),(1121,25))])" */
  static const struct {
    int64_t n, x;
    double b;
    xm__zone zone;
  } edges[] = {{1086, 16, 0.9499340785463515, XM_ZONE_GREEN},
               {927, 14, 0.9500067377044912, XM_ZONE_YELLOW},
               {750, 19, 0.9998999230771934, XM_ZONE_YELLOW},
               {1121, 25, 0.9999000230782162, XM_ZONE_RED}};
  for (size_t r = 0; r < sizeof edges / sizeof *edges; r++) {
    xm__bt_stats s = stats_count(edges[r].n, edges[r].x, 0.01);
    char what[64];
    snprintf(what, sizeof what, "B %lld/%lld", (long long)edges[r].x, (long long)edges[r].n);
    near(s.binom_cdf, edges[r].b, 1e-13, what);
    if (s.zone != edges[r].zone)
      fail_msg("%s: zone %s, want %s", what, xm__zone_name(s.zone), xm__zone_name(edges[r].zone));
  }
  /* N' = 100000: (0.99)^N' underflows, the log-space sum does not.
   * python3 -c "import scipy.stats as s; print(repr(s.binom.cdf(1000,100000,.01)),
   * repr(s.binom.cdf(950,100000,.01)))" */
  xm__bt_stats s = stats_count(100000, 1000, 0.01);
  near(s.binom_cdf, 0.5084094733514333, 1e-10, "B 1000/100000");
  s = stats_count(100000, 950, 0.01);
  near(s.binom_cdf, 0.05692783456624997, 1e-10, "B 950/100000");
  assert_int_equal(s.zone, XM_ZONE_GREEN);
  /* python3 -c "import scipy.stats as s; print(repr(s.binom.cdf(3,10,.05)))" */
  s = stats_of("0000111000", 0.05);
  near(s.binom_cdf, 0.9989715020621094, 1e-13, "B 3/10 at p = 0.05");
  assert_int_equal(s.zone, XM_ZONE_YELLOW);
}

/* METHODOLOGY section 7 as written, for the random comparison. */
static double xlny(double a, double b) { return a == 0.0 ? 0.0 : a * log(b); }

static void against_formulas(void **state) {
  (void)state;
  unsigned seed = (unsigned)time(NULL), st = seed;
  print_message("seed %u\n", seed);
  uint8_t e[400];
  for (int trial = 0; trial < 2000; trial++) {
    st = st * 1103515245u + 12345u;
    int64_t n = 1 + (int64_t)((st >> 8) % 400);
    st = st * 1103515245u + 12345u;
    unsigned rate = 1 + (st >> 8) % 60; /* exceptions per 100 */
    double p = trial % 2 ? 0.01 : 0.05;
    int64_t x = 0, nij[2][2] = {{0, 0}, {0, 0}};
    for (int64_t t = 0; t < n; t++) {
      st = st * 1103515245u + 12345u;
      e[t] = (uint8_t)((st >> 8) % 100 < rate);
      x += e[t];
      if (t > 0)
        nij[e[t - 1]][e[t]]++;
    }
    double N = (double)n, X = (double)x;
    double pof = -2.0 * (xlny(N - X, 1.0 - p) + xlny(X, p)) +
                 2.0 * (xlny(N - X, 1.0 - X / N) + xlny(X, X / N));
    double n00 = (double)nij[0][0], n01 = (double)nij[0][1], n10 = (double)nij[1][0],
           n11 = (double)nij[1][1], tot = n00 + n01 + n10 + n11;
    double ind = 0.0;
    if (tot > 0) {
      double pi = (n01 + n11) / tot;
      ind = -2.0 * (xlny(n00 + n10, 1.0 - pi) + xlny(n01 + n11, pi));
      if (n00 + n01 > 0) {
        double p01 = n01 / (n00 + n01);
        ind += 2.0 * (xlny(n00, 1.0 - p01) + xlny(n01, p01));
      }
      if (n10 + n11 > 0) {
        double p11 = n11 / (n10 + n11);
        ind += 2.0 * (xlny(n10, 1.0 - p11) + xlny(n11, p11));
      }
    }
    double b = 0.0; /* P(X <= x) by direct terms (n <= 400: no underflow at these p) */
    for (int64_t k = 0; k <= x; k++)
      b += exp(lgamma(N + 1) - lgamma((double)k + 1) - lgamma(N - (double)k + 1) +
               (double)k * log(p) + (N - (double)k) * log1p(-p));
    xm__bt_stats s;
    assert_int_equal(xm__bt_stats_compute(e, n, p, &s), XM_OK);
    assert_int_equal(s.x, x);
    assert_int_equal(s.n00, nij[0][0]);
    assert_int_equal(s.n01, nij[0][1]);
    assert_int_equal(s.n10, nij[1][0]);
    assert_int_equal(s.n11, nij[1][1]);
    /* the literal formulas cancel large terms: absolute tolerance on their scale */
    double scale = 1e-12 * (N + 1.0);
    if (!(fabs(s.lr_pof - fmax(pof, 0.0)) <= scale && fabs(s.lr_ind - fmax(ind, 0.0)) <= scale))
      fail_msg("trial %d (n %lld, x %lld): LR_pof %.17g vs %.17g, LR_ind %.17g vs %.17g", trial,
               (long long)n, (long long)x, s.lr_pof, pof, s.lr_ind, ind);
    near(s.p_pof, erfc(sqrt(s.lr_pof / 2.0)), 0.0, "p_pof");
    near(s.p_cc, exp(-(s.lr_pof + s.lr_ind) / 2.0), 1e-15, "p_cc");
    near(s.binom_cdf, b > 1.0 ? 1.0 : b, 1e-11, "B");
  }
}

static void procyclicality(void **state) {
  (void)state;
  xm__bt_apc a;
  /* positive days 100, 120, 90, 150, 60 (0 skipped): peak-to-trough 150 / 60 = 2.5;
   * window 2: increases 0.2, -0.1 | -0.25, 0.25 | 150/90 - 1 = 2/3, -1 | -1, -0.6 |
   * (M = 0: none) | (last day: none): the largest 2/3, from day 2 to day 3 */
  const double m1[] = {100, 120, 90, 150, 0, 60};
  assert_int_equal(xm__bt_procyclicality(m1, 6, 2, &a), XM_OK);
  near(a.peak_to_trough, 2.5, 1e-15, "peak-to-trough m1");
  near(a.max_increase, 150.0 / 90.0 - 1.0, 1e-15, "max increase m1");
  assert_int_equal(a.inc_from, 2);
  assert_int_equal(a.inc_to, 3);
  /* the window bounds d' - d: 50, 100, 100, 100, 200 gives 1 (first at 0 -> 1)
   * within 2 days and 3 (0 -> 4) within 4 */
  const double m2[] = {50, 100, 100, 100, 200};
  assert_int_equal(xm__bt_procyclicality(m2, 5, 2, &a), XM_OK);
  near(a.max_increase, 1.0, 0.0, "max increase m2, window 2");
  assert_int_equal(a.inc_from, 0);
  assert_int_equal(a.inc_to, 1);
  near(a.peak_to_trough, 4.0, 0.0, "peak-to-trough m2");
  assert_int_equal(xm__bt_procyclicality(m2, 5, 3, &a), XM_OK);
  near(a.max_increase, 1.0, 0.0, "max increase m2, window 3");
  assert_int_equal(xm__bt_procyclicality(m2, 5, 4, &a), XM_OK);
  near(a.max_increase, 3.0, 0.0, "max increase m2, window 4");
  assert_int_equal(a.inc_from, 0);
  assert_int_equal(a.inc_to, 4);
  assert_int_equal(xm__bt_procyclicality(m2, 5, INT64_MAX, &a), XM_OK);
  near(a.max_increase, 3.0, 0.0, "max increase m2, huge window");
  /* only falling: negative, the smallest fall -0.2 (0 -> 1; 80 -> 60 is -0.25) */
  const double m3[] = {100, 80, 60};
  assert_int_equal(xm__bt_procyclicality(m3, 3, 20, &a), XM_OK);
  near(a.max_increase, -0.2, 1e-15, "max increase, falling");
  assert_true(a.max_increase < 0.0);
  assert_int_equal(a.inc_from, 0);
  near(a.peak_to_trough, 100.0 / 60.0, 1e-15, "peak-to-trough, falling");
  /* a zero day is no base, but is a target: 0, 50, 100, 0 (window 1): 1 (1 -> 2) */
  const double m4[] = {0, 50, 100, 0};
  assert_int_equal(xm__bt_procyclicality(m4, 4, 1, &a), XM_OK);
  near(a.max_increase, 1.0, 0.0, "max increase m4");
  assert_int_equal(a.inc_from, 1);
  near(a.peak_to_trough, 2.0, 0.0, "peak-to-trough m4");
  /* no positive day: both NaN */
  const double m5[] = {0, 0, -1};
  assert_int_equal(xm__bt_procyclicality(m5, 3, 20, &a), XM_OK);
  assert_true(isnan(a.peak_to_trough) && isnan(a.max_increase));
  assert_int_equal(a.inc_from, -1);
  assert_int_equal(a.inc_to, -1);
  /* one day: ratio 1, no pair; window 0: no pair; positive only on the last day */
  assert_int_equal(xm__bt_procyclicality(m1, 1, 20, &a), XM_OK);
  near(a.peak_to_trough, 1.0, 0.0, "peak-to-trough, one day");
  assert_true(isnan(a.max_increase));
  assert_int_equal(xm__bt_procyclicality(m1, 6, 0, &a), XM_OK);
  assert_true(isnan(a.max_increase));
  near(a.peak_to_trough, 2.5, 1e-15, "peak-to-trough, window 0");
  const double m6[] = {0, 0, 7};
  assert_int_equal(xm__bt_procyclicality(m6, 3, 20, &a), XM_OK);
  near(a.peak_to_trough, 1.0, 0.0, "peak-to-trough m6");
  assert_true(isnan(a.max_increase));
  assert_int_equal(xm__bt_procyclicality(NULL, 0, 20, &a), XM_OK);
  assert_true(isnan(a.peak_to_trough) && isnan(a.max_increase));
  assert_int_equal(xm__bt_procyclicality(NULL, 2, 20, &a), XM_EINVAL);
  assert_int_equal(xm__bt_procyclicality(m1, -1, 20, &a), XM_EINVAL);
  assert_int_equal(xm__bt_procyclicality(m1, 6, 20, NULL), XM_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(zone_names),           cmocka_unit_test(day_selection),
      cmocka_unit_test(day_selection_errors), cmocka_unit_test(kupiec),
      cmocka_unit_test(christoffersen),       cmocka_unit_test(corner_cases),
      cmocka_unit_test(traffic_light),        cmocka_unit_test(against_formulas),
      cmocka_unit_test(procyclicality),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
