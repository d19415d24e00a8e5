/* The statistics of a backtest (METHODOLOGY.md section 7, host/backtest_stats.c):
 * which rows of /history are backtest days and which of them the tests use,
 * the Kupiec and Christoffersen tests and the Basel traffic light of one
 * exception sequence, and the procyclicality of one margin series. Pure
 * functions of their arguments: no context, no global state, no HDF5, no
 * allocation except the day list (owned by the caller). Internal to libxmargin;
 * `xmargin backtest` calls them per account, silo, margin and for the book.
 *
 *   xm__bt_dayset days;
 *   char msg[256];
 *   if (xm__bt_days(T, h, min_history, n_days, &days, msg, sizeof msg) != XM_OK) ...
 *   // e[j] = exception on day days.tests[j] (series index days.tests[j] - days.first)
 *   xm__bt_stats st;
 *   xm__bt_stats_compute(e, days.n_tests, 1.0 - coverage, &st);
 *   xm__bt_days_free(&days);
 */
#ifndef XM_BACKTEST_H
#define XM_BACKTEST_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin.h"

/* The traffic-light zones (Basel): enum constant, name. XM_ZONE_NONE ("") is
 * "no statistics" (a silo in which the account holds nothing, no test day). */
#define XM_ZONE_MAP(X)                                                                             \
  X(GREEN, "green")                                                                                \
  X(YELLOW, "yellow")                                                                              \
  X(RED, "red")

typedef enum xm__zone {
  XM_ZONE_NONE = -1,
#define XM__ZONE_ENUM(NAME, name) XM_ZONE_##NAME,
  XM_ZONE_MAP(XM__ZONE_ENUM)
#undef XM__ZONE_ENUM
      XM_ZONE_COUNT
} xm__zone;

/* The zone's name: "green", "yellow", "red"; "" for XM_ZONE_NONE; NULL for a
 * value that is neither. Static; the caller does not free it. */
const char *xm__zone_name(int zone);

/* The backtest days: rows first .. first + n - 1 of /history (1-based, as
 * METHODOLOGY section 7 numbers them), and the non-overlapping days
 * d_k = T - h - k*h that the tests use, oldest first. */
typedef struct xm__bt_dayset {
  int64_t first;   /* d of the oldest backtest day: T - h - n + 1 */
  int64_t n;       /* N, at least 2 */
  int64_t n_tests; /* N' = floor((N - 1) / h) + 1 */
  int64_t *tests;  /* [n_tests], ascending, the last one T - h; owned by the caller */
} xm__bt_dayset;

/* Selects the days for a history of T rows, horizon h (horizon_days),
 * backtest.min_history and backtest.days: N = min(days, T - h - min_history + 1).
 * Returns XM_OK with *out filled (free out->tests with xm__bt_days_free);
 * XM_ECONFIG when min_history < h + 1 or N < 2; XM_EINVAL for out NULL, T
 * outside [0, INT32_MAX] or h outside [1, INT32_MAX]; XM_ENOMEM. On failure
 * *out is zeroed and, when msg is not NULL, msg[0..msg_cap) gets a sentence
 * naming the keys and values (truncated to fit, always terminated). */
xm_status xm__bt_days(int64_t T, int64_t h, int64_t min_history, int64_t days, xm__bt_dayset *out,
                      char *msg, size_t msg_cap);

/* Frees days->tests and zeroes *days; NULL is a no-op. */
void xm__bt_days_free(xm__bt_dayset *days);

/* The tests of one exception sequence on the N' non-overlapping days. */
typedef struct xm__bt_stats {
  int64_t n; /* N' */
  int64_t x; /* exceptions among them */
  /* n_ij: consecutive pairs with e[t] = i (the earlier day, section 7's d_{k+1})
   * and e[t+1] = j (d_k); they sum to N' - 1 */
  int64_t n00, n01, n10, n11;
  double lr_pof, p_pof; /* Kupiec LR and its chi2(1) p-value */
  double lr_ind;        /* Christoffersen independence LR */
  double lr_cc, p_cc;   /* LR_pof + LR_ind and its chi2(2) p-value */
  double binom_cdf;     /* B = P(X <= x), X ~ Binomial(N', p) */
  xm__zone zone;        /* green B < 0.95, yellow B < 0.9999, red otherwise */
} xm__bt_stats;

/* The statistics of e[0..n) (date order, oldest first; non-zero is an
 * exception) at p = 1 - backtest.coverage. The likelihood ratios are clamped
 * at 0 (they are >= 0; rounding may take them just below). n = 0 gives
 * xm__bt_stats_none's values. Returns XM_OK, or XM_EINVAL (out NULL, n < 0, e
 * NULL with n > 0, p not in (0, 1); *out is then left unchanged). */
xm_status xm__bt_stats_compute(const uint8_t *e, int64_t n, double p, xm__bt_stats *out);

/* "No statistics": counts 0, the rest NaN, zone XM_ZONE_NONE. */
void xm__bt_stats_none(xm__bt_stats *out);

/* Procyclicality of a margin series M[0..n) over the backtest days. */
typedef struct xm__bt_apc {
  double peak_to_trough; /* max M / min M over days with M > 0; NaN when none */
  /* max of M[j] / M[i] - 1 over 0 < j - i <= window with M[i] > 0 (negative when
   * M only falls); NaN when there is no such pair */
  double max_increase;
  int64_t inc_from, inc_to; /* the pair (i, j) attaining it, smallest i then j; -1 when none */
} xm__bt_apc;

/* Fills *out for M[0..n) and window = backtest.apc_window (a window < 1 has no
 * pair). O(n * window). Returns XM_OK, or XM_EINVAL (out NULL, n < 0, M NULL
 * with n > 0). */
xm_status xm__bt_procyclicality(const double *M, int64_t n, int64_t window, xm__bt_apc *out);

#endif
