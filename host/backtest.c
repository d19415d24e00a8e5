/* xmargin backtest (METHODOLOGY.md section 7): today's book held static, the
 * margins of every backtest day from the history up to that day, the
 * realised loss of the h days after it, and the statistics of
 * host/backtest_stats.c per account, silo, margin and for the book. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_backtest.h"
#include "xm_engine.h"
#include "xm_internal.h"

const char *xm_bt_margin_name(int margin) {
  static const char *const names[] = {
#define XM__BT_MARGIN_NAME(NAME, name) name,
      XM_BT_MARGIN_MAP(XM__BT_MARGIN_NAME)
#undef XM__BT_MARGIN_NAME
  };
  return margin >= 0 && margin < XM_BT_NMARGIN ? names[margin] : NULL;
}

const char *xm_bt_zone_name(int zone) { return xm__zone_name(zone); }

static void xm__free_strings(char **s, int64_t n) {
  for (int64_t i = 0; s && i < n; i++)
    free(s[i]);
  free(s);
}

void xm_backtest_result_free(xm_backtest_result *r) {
  if (!r)
    return;
  xm__free_strings(r->day, r->N);
  xm__free_strings(r->realised_end, r->N);
  xm__free_strings(r->set, r->K);
  xm__free_strings(r->factor, r->F);
  free(r->test_day);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    free(r->margin[m]);
    free(r->total_margin[m]);
    free(r->stats[m]);
  }
  free(r->realised);
  free(r->silo_margin);
  free(r->realised_by_silo);
  free(r->binding);
  free(r->total_realised);
  free(r->silo_stats);
  free(r->to_reporting);
  for (int64_t x = 0; x < r->K; x++) {
    if (r->shock)
      free(r->shock[x]);
    if (r->delta)
      free(r->delta[x]);
  }
  free(r->shock);
  free(r->shock_S);
  free(r->delta);
  memset(r, 0, sizeof *r);
}

/* Which silos of which account hold something: a non-zero net quantity of an
 * instrument of the silo, or collateral posted to it (section 7: the others
 * have no statistics). holds [A x G]; XM_ENOMEM. */
static xm_status xm__bt_holds(xm_ctx *ctx, const xm_portfolio *pf, uint8_t *holds) {
  int64_t A = pf->n_accounts, G = pf->n_silos, P = pf->n_positions;
  memset(holds, 0, (size_t)(A * G));
  /* the positions by account (counting sort), then each account's net
   * quantity per instrument in one accumulator, reset after it */
  int64_t *start = calloc((size_t)(A + 2), sizeof *start);
  int64_t *ord = malloc((size_t)(P + 1) * sizeof *ord);
  double *net = calloc((size_t)(pf->n_instruments + 1), sizeof *net);
  if (!start || !ord || !net) {
    free(start);
    free(ord);
    free(net);
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
  for (int64_t p = 0; p < P; p++)
    start[pf->pos_account[p] + 2]++;
  for (int64_t a = 0; a < A; a++)
    start[a + 2] += start[a + 1];
  for (int64_t p = 0; p < P; p++)
    ord[start[pf->pos_account[p] + 1]++] = p; /* start[a + 1] ends as a's end */
  for (int64_t a = 0; a < A; a++) {
    for (int64_t q = start[a]; q < start[a + 1]; q++)
      net[pf->pos_instrument[ord[q]]] += pf->pos_quantity[ord[q]];
    for (int64_t q = start[a]; q < start[a + 1]; q++) {
      int32_t i = pf->pos_instrument[ord[q]];
      holds[a * G + pf->inst_silo[i]] |= net[i] != 0.0;
    }
    for (int64_t q = start[a]; q < start[a + 1]; q++)
      net[pf->pos_instrument[ord[q]]] = 0.0;
  }
  for (int64_t j = 0; j < pf->n_collateral; j++)
    if (pf->coll_silo[j] >= 0)
      holds[pf->coll_account[j] * G + pf->coll_silo[j]] = 1;
  free(start);
  free(ord);
  free(net);
  return XM_OK;
}

/* The statistics of one margin series against its realised losses, both
 * [N] with stride `stride` (series index j at j * stride). apc: also the
 * procyclicality of the margin. */
static void xm__bt_one(const xm__bt_dayset *days, const double *margin, const double *real,
                       int64_t stride, double p, int apc, int window, uint8_t *e,
                       xm_bt_stats *out) {
  int64_t all = 0;
  for (int64_t j = 0; j < days->n; j++)
    all += real[j * stride] > margin[j * stride];
  for (int64_t k = 0; k < days->n_tests; k++) {
    int64_t j = days->tests[k] - days->first;
    e[k] = real[j * stride] > margin[j * stride];
  }
  xm__bt_stats st;
  xm__bt_stats_compute(e, days->n_tests, p, &st);
  out->exceptions_all = all;
  out->exceptions = st.x;
  out->observed_coverage = days->n_tests > 0 ? 1.0 - (double)st.x / (double)days->n_tests : NAN;
  out->kupiec_lr = st.lr_pof;
  out->kupiec_p = st.p_pof;
  out->christoffersen_lr = st.lr_ind;
  out->cc_lr = st.lr_cc;
  out->cc_p = st.p_cc;
  out->zone = st.zone;
  out->peak_to_trough = out->max_increase = NAN;
  if (apc) {
    /* the series contiguous for xm__bt_procyclicality: e is too small, so
     * the margin is read in place when stride is 1, else copied */
    double *m = stride == 1 ? NULL : malloc((size_t)(days->n + 1) * sizeof *m);
    if (stride != 1 && !m)
      return;
    if (m)
      for (int64_t j = 0; j < days->n; j++)
        m[j] = margin[j * stride];
    xm__bt_apc pc;
    if (xm__bt_procyclicality(m ? m : margin, days->n, window, &pc) == XM_OK) {
      out->peak_to_trough = pc.peak_to_trough;
      out->max_increase = pc.max_increase;
    }
    free(m);
  }
}

static void xm__bt_none(xm_bt_stats *out) {
  xm__bt_stats st;
  xm__bt_stats_none(&st);
  memset(out, 0, sizeof *out);
  out->observed_coverage = out->kupiec_lr = out->kupiec_p = out->christoffersen_lr = NAN;
  out->cc_lr = out->cc_p = out->peak_to_trough = out->max_increase = NAN;
  out->zone = st.zone;
}

/* Every statistic of out from its series. */
static xm_status xm__bt_statistics(xm_ctx *ctx, const xm_portfolio *pf, const xm_config *cfg,
                                   const xm__bt_dayset *days, xm_backtest_result *out) {
  int64_t N = out->N, A = out->A, G = out->G;
  double p = 1.0 - cfg->backtest.coverage;
  int win = cfg->backtest.apc_window;
  uint8_t *e = malloc((size_t)(days->n_tests + 1));
  uint8_t *holds = malloc((size_t)(A * G + 1));
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    out->stats[m] = calloc((size_t)(A + 1), sizeof *out->stats[m]);
  out->silo_stats = calloc((size_t)(A * G + 1), sizeof *out->silo_stats);
  int ok = e && holds && out->silo_stats;
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    ok = ok && out->stats[m];
  if (!ok) {
    free(e);
    free(holds);
    return xm__fail(ctx, XM_ENOMEM, "out of memory for the backtest's statistics");
  }
  xm_status st = xm__bt_holds(ctx, pf, holds);
  if (st != XM_OK) {
    free(e);
    free(holds);
    return st;
  }
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    int apc = m == XM_BT_REQUIREMENT;
    for (int64_t a = 0; a < A; a++)
      xm__bt_one(days, out->margin[m] + a, out->realised + a, A, p, apc, win, e, &out->stats[m][a]);
    xm__bt_one(days, out->total_margin[m], out->total_realised, 1, p, apc, win, e,
               &out->total_stats[m]);
  }
  for (int64_t a = 0; a < A; a++)
    for (int64_t g = 0; g < G; g++) {
      if (holds[a * G + g])
        xm__bt_one(days, out->silo_margin + a * G + g, out->realised_by_silo + a * G + g, A * G, p,
                   1, win, e, &out->silo_stats[a * G + g]);
      else
        xm__bt_none(&out->silo_stats[a * G + g]);
    }
  (void)N;
  free(e);
  free(holds);
  return XM_OK;
}

/* Copies n strings. */
static char **xm__bt_strdup_all(char *const *s, int64_t n) {
  char **d = calloc((size_t)n + 1, sizeof *d);
  for (int64_t i = 0; d && i < n; i++)
    if (!(d[i] = xm__strdup(s[i]))) {
      xm__free_strings(d, i);
      return NULL;
    }
  return d;
}

/* The arrays of out for N days, after the first day's run r0. */
static xm_status xm__bt_alloc(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                              const xm__bt_dayset *days, int h, const xm_run_result *r0, int save,
                              xm_backtest_result *out) {
  int64_t N = days->n, A = r0->A, G = r0->G, K = r0->K;
  out->N = N;
  out->n_tests = days->n_tests;
  out->A = A;
  out->G = G;
  out->K = K;
  out->F = r0->F;
  out->first_day = days->first;
  out->horizon = h;
  out->day = calloc((size_t)N + 1, sizeof *out->day);
  out->realised_end = calloc((size_t)N + 1, sizeof *out->realised_end);
  out->test_day = calloc((size_t)N + 1, sizeof *out->test_day);
  out->set = calloc((size_t)K + 1, sizeof *out->set);
  out->factor = xm__bt_strdup_all(r0->factor, r0->F);
  int ok = out->day && out->realised_end && out->test_day && out->set && out->factor;
  for (int64_t x = 0; ok && x < K; x++)
    ok = (out->set[x] = xm__strdup(r0->sets[x].name)) != NULL;
  for (int64_t j = 0; ok && j < N; j++) {
    int64_t d = days->first + j;
    ok = (out->day[j] = xm__strdup(sf->hist_date[d - 1])) &&
         (out->realised_end[j] = xm__strdup(sf->hist_date[d + h - 1]));
  }
  for (int64_t k = 0; ok && k < days->n_tests; k++)
    out->test_day[days->tests[k] - days->first] = 1;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    out->margin[m] = malloc((size_t)(N * A + 1) * sizeof(double));
    out->total_margin[m] = calloc((size_t)N + 1, sizeof(double));
    ok = ok && out->margin[m] && out->total_margin[m];
  }
  out->realised = malloc((size_t)(N * A + 1) * sizeof(double));
  out->silo_margin = malloc((size_t)(N * A * G + 1) * sizeof(double));
  out->realised_by_silo = malloc((size_t)(N * A * G + 1) * sizeof(double));
  out->binding = malloc((size_t)(N * A + 1) * sizeof(int32_t));
  out->total_realised = calloc((size_t)N + 1, sizeof(double));
  out->to_reporting = malloc((size_t)(A + 1) * sizeof(double));
  ok = ok && out->realised && out->silo_margin && out->realised_by_silo && out->binding &&
       out->total_realised && out->to_reporting;
  if (ok)
    memcpy(out->to_reporting, r0->to_reporting, (size_t)A * sizeof(double));
  if (ok && save) {
    out->shock = calloc((size_t)K + 1, sizeof *out->shock);
    out->shock_S = calloc((size_t)K + 1, sizeof *out->shock_S);
    out->delta = calloc((size_t)K + 1, sizeof *out->delta);
    ok = out->shock && out->shock_S && out->delta;
  }
  (void)pf;
  return ok ? XM_OK
            : xm__fail(ctx, XM_ENOMEM, "out of memory for a backtest of %lld days", (long long)N);
}

/* Keeps day j's shocks of every set (--save-scenarios). Each set's largest
 * size is its size on the last day (the window and the stressed period only
 * grow with d), so the arrays are sized when the last day is known: here,
 * each day's rows are kept in a list until then. */
typedef struct xm__bt_saved {
  double **X; /* [N x K] each day's shocks of each set, [S x F] */
  int64_t *S; /* [N x K] */
} xm__bt_saved;

static xm_status xm__bt_keep(xm_ctx *ctx, xm__bt_saved *sv, int64_t j, xm_run_result *r,
                             xm_backtest_result *out) {
  int64_t K = out->K;
  for (int64_t x = 0; x < K; x++) {
    sv->X[j * K + x] = r->sets[x].shock;
    r->sets[x].shock = NULL;
    sv->S[j * K + x] = r->sets[x].S;
    if (!strcmp(out->set[x], "montecarlo") || !strcmp(out->set[x], "montecarlo_stressed")) {
      if (!out->delta[x] && !(out->delta[x] = calloc((size_t)out->N + 1, sizeof(double))))
        return xm__fail(ctx, XM_ENOMEM, "out of memory");
      out->delta[x][j] = r->jitter[strcmp(out->set[x], "montecarlo") ? 1 : 0];
    }
  }
  return XM_OK;
}

static xm_status xm__bt_assemble(xm_ctx *ctx, xm__bt_saved *sv, xm_backtest_result *out) {
  int64_t N = out->N, K = out->K, F = out->F;
  for (int64_t x = 0; x < K; x++) {
    int64_t Smax = 0;
    for (int64_t j = 0; j < N; j++)
      Smax = sv->S[j * K + x] > Smax ? sv->S[j * K + x] : Smax;
    out->shock_S[x] = Smax;
    double *X = out->shock[x] = malloc((size_t)(N * Smax * F + 1) * sizeof *X);
    if (!X)
      return xm__fail(ctx, XM_ENOMEM, "out of memory for --save-scenarios");
    for (int64_t j = 0; j < N; j++) {
      int64_t S = sv->S[j * K + x];
      double *row = X + j * Smax * F;
      if (S && sv->X[j * K + x])
        memcpy(row, sv->X[j * K + x], (size_t)(S * F) * sizeof *X);
      for (int64_t i = S * F; i < Smax * F; i++)
        row[i] = NAN;
      free(sv->X[j * K + x]);
      sv->X[j * K + x] = NULL;
    }
  }
  return XM_OK;
}

/* Every backtest day on ctx's current backend. */
static xm_status xm__bt_days_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                 const xm_config *cfg, const xm_run_opts *opts,
                                 const xm__bt_dayset *days, xm_backtest_result *out) {
  int h = cfg->horizon_days;
  int64_t Fh = sf->n_hfactors, N = days->n;
  xm_config cd = *cfg; /* a day's run: the backtest's Monte Carlo size */
  if (cfg->backtest.mc_scenarios > 0)
    cd.montecarlo.scenarios = cfg->backtest.mc_scenarios;
  xm_scenario_file sd = *sf; /* the history up to d; the ready-made sets or none */
  if (!cfg->backtest.ready_sets) {
    sd.n_sets = 0;
    sd.sets = NULL;
  }
  int save = opts && opts->save_scenarios;
  xm_run_opts o = {0, save, NULL, NULL};
  int64_t A = pf->n_accounts, G = pf->n_silos;
  double *move = malloc((size_t)(Fh + 1) * sizeof *move);
  double *loss = malloc((size_t)(A * (G + 1) + 1) * sizeof *loss);
  xm__bt_saved sv = {NULL, NULL};
  xm_status st = XM_OK;
  xm_run_result r;
  memset(&r, 0, sizeof r);
  if (!move || !loss) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  for (int64_t j = 0; j < N; j++) {
    int64_t d = days->first + j;
    /* the raw move of rows d+1 .. d+h (1-based) */
    for (int64_t f = 0; f < Fh; f++)
      move[f] = 0.0;
    for (int64_t u = d; u < d + h; u++)
      for (int64_t f = 0; f < Fh; f++)
        move[f] += sf->hist_return[u * Fh + f];
    sd.n_days = d;
    xm__run_ext ext = {XM__SETS_BACKTEST, move, loss};
    if ((st = xm__run_once(ctx, pf, &sd, &cd, &o, &ext, &r)) != XM_OK) {
      char why[1600];
      snprintf(why, sizeof why, "%.1500s", ctx->err);
      xm__fail(ctx, st, "backtest day %s (/history row %lld): %s", sf->hist_date[d - 1],
               (long long)d, why);
      goto cleanup;
    }
    if (j == 0) {
      if ((st = xm__bt_alloc(ctx, pf, sf, days, h, &r, save, out)) != XM_OK)
        goto cleanup;
      if (save) {
        sv.X = calloc((size_t)(N * out->K) + 1, sizeof *sv.X);
        sv.S = calloc((size_t)(N * out->K) + 1, sizeof *sv.S);
        if (!sv.X || !sv.S) {
          st = xm__fail(ctx, XM_ENOMEM, "out of memory for --save-scenarios");
          goto cleanup;
        }
      }
      snprintf(out->notes, sizeof out->notes, "%s", r.notes);
    }
    const double *mv[XM_BT_NMARGIN] = {r.unified, r.cross_margined, r.siloed, r.requirement};
    for (int64_t a = 0; a < A; a++) {
      double xb = out->to_reporting[a];
      for (int m = 0; m < XM_BT_NMARGIN; m++) {
        out->margin[m][j * A + a] = mv[m][a];
        out->total_margin[m][j] += mv[m][a] * xb;
      }
      const double *la = loss + a * (G + 1);
      if (!isfinite(la[0])) {
        st = xm__fail(ctx, XM_ENUMERIC,
                      "backtest day %s: account %s: the realised loss of the next %d days (to "
                      "%s) is not a finite number; check /history/return rows %lld..%lld",
                      sf->hist_date[d - 1], pf->account_id[a], h, sf->hist_date[d + h - 1],
                      (long long)d, (long long)(d + h - 1));
        goto cleanup;
      }
      out->realised[j * A + a] = la[0];
      out->total_realised[j] += la[0] * xb;
      out->binding[j * A + a] = r.binding[a];
      for (int64_t g = 0; g < G; g++) {
        out->silo_margin[(j * A + a) * G + g] = r.by_silo[a * G + g];
        out->realised_by_silo[(j * A + a) * G + g] = la[1 + g];
      }
    }
    if (save && (st = xm__bt_keep(ctx, &sv, j, &r, out)) != XM_OK)
      goto cleanup;
    xm_run_result_free(&r);
    if (opts && opts->progress)
      opts->progress(opts->progress_arg, j + 1, N, sf->hist_date[d - 1]);
  }
  if (save)
    st = xm__bt_assemble(ctx, &sv, out);
cleanup:
  xm_run_result_free(&r);
  if (sv.X)
    for (int64_t i = 0; i < N * out->K; i++)
      free(sv.X[i]);
  free(sv.X);
  free(sv.S);
  free(move);
  free(loss);
  return st;
}

xm_status xm_backtest(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                      const xm_config *cfg, const xm_run_opts *opts, xm_backtest_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  if (!ctx || !ctx->be || !pf || !sf)
    return XM_EINVAL;
  xm_config dflt;
  if (!cfg) {
    xm_config_default(&dflt);
    cfg = &dflt;
  }
  ctx->err[0] = '\0';
  double t0 = xm__now();
  xm__bt_dayset days;
  char msg[512];
  xm_status st = xm__bt_days(sf->n_days, cfg->horizon_days, cfg->backtest.min_history,
                             cfg->backtest.days, &days, msg, sizeof msg);
  if (st != XM_OK)
    return xm__fail(ctx, st, "%s: /history: %s", sf->path ? sf->path : "scenarios", msg);
  st = xm__bt_days_run(ctx, pf, sf, cfg, opts, &days, out);
  if (st != XM_OK) {
    /* auto took an OpenCL device that cannot do this: the cpu backend does all of it */
    char why[1400];
    if (xm__fallback_cpu(ctx, st, why, sizeof why) == XM_OK) {
      xm_backtest_result_free(out);
      st = xm__bt_days_run(ctx, pf, sf, cfg, opts, &days, out);
      size_t len = strlen(out->notes);
      snprintf(out->notes + len, sizeof out->notes - len,
               "warning: %s; ran on the cpu backend instead\n", why);
    }
  }
  if (st == XM_OK)
    st = xm__bt_statistics(ctx, pf, cfg, &days, out);
  out->t_total = xm__now() - t0;
  xm__bt_days_free(&days);
  return st;
}
