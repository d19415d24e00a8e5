/* xmargin backtest (METHODOLOGY.md section 7): today's book held static, the
 * margins of every backtest day from the history up to that day, the
 * realised loss of the h days after it, and the statistics of
 * host/backtest_stats.c per account, silo, margin and for the book. */
#include <math.h>
#include <pthread.h>
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
  int64_t A = pf->n_accounts, G = pf->n_silos, n = 0;
  memset(holds, 0, (size_t)(A * G));
  xm__posref *held = NULL;
  xm_status st = xm__net_positions(ctx, pf, &held, &n);
  for (int64_t p = 0; p < n; p++)
    holds[held[p].acct * G + held[p].silo] = 1;
  free(held);
  if (st != XM_OK)
    return st;
  for (int64_t j = 0; j < pf->n_collateral; j++)
    if (pf->coll_silo[j] >= 0)
      holds[pf->coll_account[j] * G + pf->coll_silo[j]] = 1;
  return XM_OK;
}

/* The statistics of one margin series against its realised losses, both
 * [N] with stride `stride` (series index j at j * stride). apc: also the
 * procyclicality of the margin. Scratch: e [N'], col [N]. */
static void xm__bt_one(const xm__bt_dayset *days, const double *margin, const double *real,
                       int64_t stride, double p, int apc, int window, uint8_t *e, double *col,
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
  out->inc_from = out->inc_to = -1;
  if (apc) {
    for (int64_t j = 0; j < days->n; j++) /* contiguous for xm__bt_procyclicality */
      col[j] = margin[j * stride];
    xm__bt_apc pc;
    if (xm__bt_procyclicality(col, days->n, window, &pc) == XM_OK) {
      out->peak_to_trough = pc.peak_to_trough;
      out->max_increase = pc.max_increase;
      out->inc_from = pc.inc_from;
      out->inc_to = pc.inc_to;
    }
  }
}

static void xm__bt_none(xm_bt_stats *out) {
  xm__bt_stats st;
  xm__bt_stats_none(&st);
  memset(out, 0, sizeof *out);
  out->observed_coverage = out->kupiec_lr = out->kupiec_p = out->christoffersen_lr = NAN;
  out->cc_lr = out->cc_p = out->peak_to_trough = out->max_increase = NAN;
  out->inc_from = out->inc_to = -1;
  out->zone = st.zone;
}

/* Every statistic of out from its series. */
static xm_status xm__bt_statistics(xm_ctx *ctx, const xm_portfolio *pf, const xm_config *cfg,
                                   const xm__bt_dayset *days, xm_backtest_result *out) {
  int64_t A = out->A, G = out->G;
  double p = 1.0 - cfg->backtest.coverage;
  int win = cfg->backtest.apc_window;
  uint8_t *e = malloc((size_t)(days->n_tests + 1));
  double *col = malloc((size_t)(days->n + 1) * sizeof *col);
  uint8_t *holds = malloc((size_t)(A * G + 1));
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    out->stats[m] = calloc((size_t)(A + 1), sizeof *out->stats[m]);
  out->silo_stats = calloc((size_t)(A * G + 1), sizeof *out->silo_stats);
  int ok = e && col && holds && out->silo_stats;
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    ok = ok && out->stats[m];
  xm_status st = ok ? xm__bt_holds(ctx, pf, holds)
                    : xm__fail(ctx, XM_ENOMEM, "out of memory for the backtest's statistics");
  if (st != XM_OK)
    goto cleanup;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    int apc = m == XM_BT_REQUIREMENT;
    for (int64_t a = 0; a < A; a++)
      xm__bt_one(days, out->margin[m] + a, out->realised + a, A, p, apc, win, e, col,
                 &out->stats[m][a]);
    xm__bt_one(days, out->total_margin[m], out->total_realised, 1, p, apc, win, e, col,
               &out->total_stats[m]);
  }
  for (int64_t a = 0; a < A; a++)
    for (int64_t g = 0; g < G; g++) {
      if (holds[a * G + g])
        xm__bt_one(days, out->silo_margin + a * G + g, out->realised_by_silo + a * G + g, A * G, p,
                   1, win, e, col, &out->silo_stats[a * G + g]);
      else
        xm__bt_none(&out->silo_stats[a * G + g]);
    }
cleanup:
  free(e);
  free(col);
  free(holds);
  return st;
}

/* The arrays of out for the N days, from the first day's sets. */
static xm_status xm__bt_alloc(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                              const xm__bt_dayset *days, int h, const xm__sets *one, int save,
                              xm_backtest_result *out) {
  int64_t N = days->n, A = pf->n_accounts, G = pf->n_silos, K = one->K, F = one->F;
  out->N = N;
  out->n_tests = days->n_tests;
  out->A = A;
  out->G = G;
  out->K = K;
  out->F = F;
  out->first_day = days->first;
  out->horizon = h;
  out->day = calloc((size_t)N + 1, sizeof *out->day);
  out->realised_end = calloc((size_t)N + 1, sizeof *out->realised_end);
  out->test_day = calloc((size_t)N + 1, sizeof *out->test_day);
  out->set = calloc((size_t)K + 1, sizeof *out->set);
  out->factor = calloc((size_t)F + 1, sizeof *out->factor);
  int ok = out->day && out->realised_end && out->test_day && out->set && out->factor;
  for (int64_t x = 0; ok && x < K; x++)
    ok = (out->set[x] = xm__strdup(one->set[x].name)) != NULL;
  for (int64_t f = 0; ok && f < F; f++)
    ok = (out->factor[f] = xm__strdup(pf->factor_name[one->used[f]])) != NULL;
  for (int64_t j = 0; ok && j < N; j++) {
    int64_t d = days->first + j;
    ok = (out->day[j] = xm__strdup(sf->hist_date[d - 1])) &&
         (out->realised_end[j] = xm__strdup(sf->hist_date[d + h - 1]));
  }
  for (int64_t k = 0; ok && k < days->n_tests; k++)
    out->test_day[days->tests[k] - days->first] = 1;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    out->margin[m] = calloc((size_t)(N * A + 1), sizeof(double));
    out->total_margin[m] = calloc((size_t)N + 1, sizeof(double));
    ok = ok && out->margin[m] && out->total_margin[m];
  }
  out->realised = calloc((size_t)(N * A + 1), sizeof(double));
  out->silo_margin = calloc((size_t)(N * A * G + 1), sizeof(double));
  out->realised_by_silo = calloc((size_t)(N * A * G + 1), sizeof(double));
  out->binding = calloc((size_t)(N * A + 1), sizeof(int32_t));
  out->total_realised = calloc((size_t)N + 1, sizeof(double));
  out->to_reporting = malloc((size_t)(A + 1) * sizeof(double));
  ok = ok && out->realised && out->silo_margin && out->realised_by_silo && out->binding &&
       out->total_realised && out->to_reporting;
  for (int64_t a = 0; ok && a < A; a++)
    out->to_reporting[a] = xm__fx_level(pf, xm__acct_fx(pf, a));
  if (ok && save) {
    out->shock = calloc((size_t)K + 1, sizeof *out->shock);
    out->shock_S = calloc((size_t)K + 1, sizeof *out->shock_S);
    out->delta = calloc((size_t)K + 1, sizeof *out->delta);
    ok = out->shock && out->shock_S && out->delta;
    for (int64_t x = 0; ok && x < K; x++)
      if (one->set[x].is_mc)
        ok = (out->delta[x] = calloc((size_t)N + 1, sizeof(double))) != NULL;
  }
  return ok ? XM_OK
            : xm__fail(ctx, XM_ENOMEM, "out of memory for a backtest of %lld days", (long long)N);
}

/* --save-scenarios: each day's shocks of each set, kept until the last day
 * gives each set's largest size (the window and the stressed period only
 * grow with d), then laid out as FORMAT.md section 4's [N x S_max x F]. */
typedef struct xm__bt_saved {
  double **X; /* [N x K] each day's shocks of each set, [S x F] */
  int64_t *S; /* [N x K] */
} xm__bt_saved;

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

/* A batch's progress (the loop's, per set and block) as the backtest's, per day. */
typedef struct xm__bt_progress {
  const xm_run_opts *user;
  const xm_scenario_file *sf;
  int64_t first, j0, nb, N; /* the batch is days j0 .. j0 + nb of N */
} xm__bt_progress;

static void xm__bt_progress_fn(void *arg, int64_t done, int64_t total, const char *set) {
  const xm__bt_progress *p = arg;
  (void)set;
  int64_t j = p->j0 + (total > 0 ? done * p->nb / total : p->nb);
  if (j > p->j0)
    p->user->progress(p->user->progress_arg, j, p->N, p->sf->hist_date[p->first + j - 2]);
}

/* The most days a batch holds (xm_options.tuning.bt_days overrides it), and
 * the host memory their sets may take. */
#define XM__BT_BATCH_DAYS 64
#define XM__BT_BATCH_BYTES ((uint64_t)256 << 20)

/* Everything one backtest needs across its batches. */
typedef struct xm__bt_job {
  const xm_portfolio *pf, *book; /* book: pf, or with its collateral as positions */
  const xm_scenario_file *sf;
  xm_scenario_file sd; /* the history up to d; the ready-made sets or none */
  xm_config cd;        /* a day's run: the backtest's Monte Carlo size */
  const xm__bt_dayset *days;
  const xm_run_opts *opts;
  int save;
  xm__bt_saved sv;
  double *move, *x, *loss; /* [F_h], [F], [A x (G + 1)] */
  int64_t j_begin, j_end;  /* the days run (xm_run_opts.day_begin/end) */
} xm__bt_job;

/* Prefixes ctx's message with the day it is about. */
static void xm__bt_day_fail(xm_ctx *ctx, xm_status st, const xm_scenario_file *sf, int64_t d) {
  char why[1600];
  snprintf(why, sizeof why, "%.1500s", ctx->err);
  xm__fail(ctx, st, "backtest day %s (/history row %lld): %s", sf->hist_date[d - 1], (long long)d,
           why);
}

/* Day j's results from the batch's outputs (day b of it) and its realised loss. */
static xm_status xm__bt_collect(xm_ctx *ctx, xm__bt_job *jb, const xm__sets *comb,
                                const xm__plan *plan, const xm__outputs *ev, int64_t b, int64_t j,
                                xm_backtest_result *out) {
  const xm_portfolio *pf = jb->pf;
  const xm_scenario_file *sf = jb->sf;
  int64_t A = pf->n_accounts, G = pf->n_silos, Fh = sf->n_hfactors, d = jb->days->first + j;
  int h = jb->cd.horizon_days;
  /* the raw move of rows d+1 .. d+h (1-based) */
  for (int64_t f = 0; f < Fh; f++)
    jb->move[f] = 0.0;
  for (int64_t u = d; u < d + h; u++)
    for (int64_t f = 0; f < Fh; f++)
      jb->move[f] += sf->hist_return[u * Fh + f];
  for (int64_t f = 0; f < comb->F; f++)
    jb->x[f] = jb->move[comb->hcol[f]];
  xm_status st = xm__move_loss(ctx, &jb->cd, plan, jb->x, comb->F, jb->loss);
  if (st != XM_OK)
    return st;
  for (int64_t a = 0; a < A; a++) {
    const double *oa = ev->acct + (b * A + a) * XM_NOUT;
    const double *la = jb->loss + a * (G + 1);
    double xb = out->to_reporting[a];
    if (!isfinite(oa[XM_O_REQUIREMENT])) {
      /* the day alone, for the message that names the set, scenario and instrument */
      xm_run_result r;
      memset(&r, 0, sizeof r);
      jb->sd.n_days = d;
      st = xm__run_once(ctx, pf, &jb->sd, &jb->cd, NULL, XM__SETS_BACKTEST, &r);
      xm_run_result_free(&r);
      return st != XM_OK
                 ? st
                 : xm__fail(ctx, XM_ENUMERIC, "account %s: the requirement is not a finite number",
                            pf->account_id[a]);
    }
    if (!isfinite(la[0]))
      return xm__fail(ctx, XM_ENUMERIC,
                      "account %s: the realised loss of the %d days to %s is not a finite number; "
                      "check /history/return rows %lld..%lld",
                      pf->account_id[a], h, sf->hist_date[d + h - 1], (long long)d,
                      (long long)(d + h - 1));
    const double mv[XM_BT_NMARGIN] = {oa[XM_O_UNIFIED], oa[XM_O_CROSSED], oa[XM_O_SILOED],
                                      oa[XM_O_REQUIREMENT]};
    for (int m = 0; m < XM_BT_NMARGIN; m++) {
      out->margin[m][j * A + a] = mv[m];
      out->total_margin[m][j] += mv[m] * xb;
    }
    out->realised[j * A + a] = la[0];
    out->total_realised[j] += la[0] * xb;
    out->binding[j * A + a] = (int32_t)oa[XM_O_BINDING];
    for (int64_t g = 0; g < G; g++) {
      out->silo_margin[(j * A + a) * G + g] =
          ev->silo[((b * A + a) * G + g) * XM_NSILO + XM_S_BYSILO];
      out->realised_by_silo[(j * A + a) * G + g] = la[1 + g];
    }
  }
  if (jb->save) {
    int64_t Kd = out->K;
    for (int64_t x = 0; x < Kd; x++) {
      xm__set *s = &comb->set[b * Kd + x];
      jb->sv.X[j * Kd + x] = s->X; /* the Monte Carlo ones kept by the loop */
      s->X = NULL;
      jb->sv.S[j * Kd + x] = s->S;
    }
  }
  return XM_OK;
}

/* A batch: the sets of days j0 .. j0 + comb.days - 1, one day's after
 * another. */
typedef struct xm__bt_sets {
  int64_t j0;
  xm__sets comb;
} xm__bt_sets;

/* The sets of days j0 .. : as many as a batch holds, made one day at a time
 * (the history up to d in *sd) and appended to bs->comb. Only the host: the
 * next batch's are made on a thread of their own while the device evaluates
 * this one (xm__bt_ahead). On failure the message names the day. */
static xm_status xm__bt_build(xm_ctx *ctx, xm__bt_job *jb, xm_scenario_file *sd, int64_t j0,
                              xm__bt_sets *bs, char *notes, size_t cap, xm_backtest_result *out) {
  const xm__bt_dayset *days = jb->days;
  xm__sets *comb = &bs->comb;
  int64_t Kd = 0, nb = 0;
  memset(bs, 0, sizeof *bs);
  comb->sp = -1;
  bs->j0 = j0;
  xm_run_opts o = {0, jb->save, NULL, NULL, 0, 0, 0, 0, NULL};
  xm_status st = XM_OK;
  int64_t most = ctx->opt.tuning.bt_days > 0 ? ctx->opt.tuning.bt_days : XM__BT_BATCH_DAYS;
  /* the ready-made sets (the last of a day's, xm__sets_build) are the same
   * every day on the static book: day 0's are kept for the batch and the
   * others' dropped (xm__sets.shared), except with --save-scenarios, which
   * keeps every day's shocks */
  int64_t nr = jb->save ? 0 : sd->n_sets, own = 0;
  while (j0 + nb < jb->j_end && nb < most && (nb == 0 || comb->bytes < XM__BT_BATCH_BYTES)) {
    int64_t j = j0 + nb, d = days->first + j;
    xm__sets one;
    sd->n_days = d;
    st = xm__sets_build(ctx, jb->book, sd, &jb->cd, &o, XM__SETS_BACKTEST, &one, notes,
                        j == jb->j_begin ? cap : 0);
    if (st == XM_OK && !out->day) { /* the first day (never on the thread) */
      st = xm__bt_alloc(ctx, jb->pf, jb->sf, days, jb->cd.horizon_days, &one, jb->save, out);
      if (st == XM_OK && jb->save) {
        jb->sv.X = calloc((size_t)(days->n * one.K) + 1, sizeof *jb->sv.X);
        jb->sv.S = calloc((size_t)(days->n * one.K) + 1, sizeof *jb->sv.S);
        if (!jb->sv.X || !jb->sv.S)
          st = xm__fail(ctx, XM_ENOMEM, "out of memory for --save-scenarios");
      }
    }
    if (st == XM_OK && nb == 0) {
      Kd = one.K;
      own = Kd - nr;
      *comb = one; /* the columns, the stressed period's place; the sets follow */
      comb->set = calloc((size_t)(most * Kd), sizeof *comb->set);
      comb->K = 0;
      comb->bytes = 0;
      comb->shared = nr;
      one.fcol = one.used = one.hcol = NULL;
      if (!comb->set)
        st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    } else if (st == XM_OK && (one.K != Kd || one.F != comb->F)) {
      st = xm__fail(ctx, XM_EINTERNAL,
                    "backtest day %s: %lld sets of %lld factors, not %lld of %lld",
                    jb->sf->hist_date[d - 1], (long long)one.K, (long long)one.F, (long long)Kd,
                    (long long)comb->F);
    }
    if (st == XM_OK) {
      for (int64_t x = 0; jb->save && x < Kd; x++)
        if (out->delta[x]) /* this day's own element: the threads write apart */
          out->delta[x][j] = one.jitter[strcmp(one.set[x].name, "montecarlo") ? 1 : 0];
      int64_t take = nb == 0 ? Kd : own;
      for (int64_t x = take; x < Kd; x++)
        if (strcmp(one.set[x].name, sd->sets[x - own].name) != 0)
          st = xm__fail(ctx, XM_EINTERNAL, "backtest day %s: set %lld is '%s', not '%s'",
                        jb->sf->hist_date[d - 1], (long long)x, one.set[x].name,
                        sd->sets[x - own].name);
      memcpy(comb->set + comb->K, one.set, (size_t)take * sizeof *one.set);
      memset(one.set, 0, (size_t)take * sizeof *one.set);
      comb->K += take;
      comb->bytes += one.bytes;
      nb++;
    }
    if (st != XM_OK)
      xm__bt_day_fail(ctx, st, jb->sf, d);
    xm__sets_free(&one);
    if (st != XM_OK)
      return st;
  }
  comb->days = nb;
  return XM_OK;
}

/* A batch run in one loop (one plan, each block uploaded and priced today
 * once, every day's sets revalued and reduced, each day combined), then each
 * day's results and realised loss. */
static xm_status xm__bt_evaluate(xm_ctx *ctx, xm__bt_job *jb, xm__bt_sets *bs,
                                 xm_backtest_result *out) {
  const xm__bt_dayset *days = jb->days;
  int64_t A = jb->pf->n_accounts, G = jb->pf->n_silos, j0 = bs->j0, nb = bs->comb.days;
  xm__plan plan;
  xm__outputs ev;
  memset(&plan, 0, sizeof plan);
  memset(&ev, 0, sizeof ev);
  xm_run_opts o = {0, jb->save, NULL, NULL, 0, 0, 0, 0, NULL};
  xm_status st = xm__plan_build(ctx, jb->book, &bs->comb, 0, &plan);
  if (st != XM_OK)
    goto cleanup;
  ev.acct = malloc((size_t)(nb * A * XM_NOUT + 1) * sizeof(double));
  ev.silo = malloc((size_t)(nb * A * G * XM_NSILO + 1) * sizeof(double));
  ev.by_set = malloc((size_t)(A * bs->comb.K + 1) * sizeof(double));
  if (!ev.acct || !ev.silo || !ev.by_set) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory for %lld days of %lld accounts", (long long)nb,
                  (long long)A);
    goto cleanup;
  }
  xm__bt_progress pg = {jb->opts, jb->sf, days->first, j0, nb, days->n};
  if (jb->opts && jb->opts->progress) {
    o.progress = xm__bt_progress_fn;
    o.progress_arg = &pg;
  }
  if ((st = xm__evaluate(ctx, &jb->cd, &bs->comb, &plan, jb->save, &o, NULL, &ev)) != XM_OK)
    goto cleanup;
  for (int64_t b = 0; b < nb; b++) {
    int64_t j = j0 + b;
    if ((st = xm__bt_collect(ctx, jb, &bs->comb, &plan, &ev, b, j, out)) != XM_OK) {
      xm__bt_day_fail(ctx, st, jb->sf, days->first + j);
      goto cleanup;
    }
  }
cleanup:
  free(ev.acct);
  free(ev.silo);
  free(ev.by_set);
  xm__plan_free(&plan);
  return st;
}

/* The next batch's sets, made on a thread while the device evaluates this
 * batch: the host and the device do not take turns. The thread has a copy
 * of the context (its own message; it calls no backend) and of the history's
 * view; it writes only its own days' elements of out. */
typedef struct xm__bt_ahead {
  pthread_t thread;
  xm_ctx ctx;
  xm__bt_job *jb;
  xm_scenario_file sd;
  xm__bt_sets bs;
  xm_backtest_result *out;
  xm_status st;
} xm__bt_ahead;

static void *xm__bt_ahead_fn(void *arg) {
  xm__bt_ahead *w = arg;
  w->st = xm__bt_build(&w->ctx, w->jb, &w->sd, w->bs.j0, &w->bs, NULL, 0, w->out);
  return NULL;
}

/* Starts building the sets of days j0 .. on a thread; 0 if none was started
 * (the caller builds them itself). */
static int xm__bt_ahead_start(xm_ctx *ctx, xm__bt_job *jb, int64_t j0, xm_backtest_result *out,
                              xm__bt_ahead *w) {
  w->ctx = *ctx;
  w->ctx.err[0] = '\0';
  w->jb = jb;
  w->sd = jb->sd;
  w->bs.j0 = j0; /* xm__bt_build fills the rest */
  w->out = out;
  return pthread_create(&w->thread, NULL, xm__bt_ahead_fn, w) == 0;
}

/* Whether opts asks for some of the days (xm_run_opts.day_begin/end). */
static int xm__bt_ranged(const xm_run_opts *opts) {
  return opts && (opts->day_begin != 0 || opts->day_end != 0);
}

/* Every backtest day on ctx's current backend. */
static xm_status xm__bt_days_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                 const xm_config *cfg, const xm_run_opts *opts,
                                 const xm__bt_dayset *days, xm_backtest_result *out) {
  xm__bt_job jb;
  memset(&jb, 0, sizeof jb);
  jb.pf = jb.book = pf;
  jb.sf = sf;
  jb.sd = *sf;
  if (!cfg->backtest.ready_sets) {
    jb.sd.n_sets = 0;
    jb.sd.sets = NULL;
  }
  jb.cd = *cfg;
  if (cfg->backtest.mc_scenarios > 0)
    jb.cd.montecarlo.scenarios = cfg->backtest.mc_scenarios;
  jb.days = days;
  jb.opts = opts;
  jb.save = opts && opts->save_scenarios;
  jb.j_begin = 0;
  jb.j_end = days->n;
  if (xm__bt_ranged(opts))
    jb.j_begin = opts->day_begin, jb.j_end = opts->day_end;
  int64_t A = pf->n_accounts, G = pf->n_silos, N = days->n;
  xm_portfolio aug;
  void *aug_owned = NULL;
  xm_status st = XM_OK;
  jb.move = malloc((size_t)(sf->n_hfactors + 1) * sizeof *jb.move);
  jb.x = malloc((size_t)(pf->n_factors + 1) * sizeof *jb.x);
  jb.loss = malloc((size_t)(A * (G + 1) + 1) * sizeof *jb.loss);
  if (!jb.move || !jb.x || !jb.loss) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  /* the book is static: its collateral becomes positions once */
  if (cfg->collateral.method == XM_COLLATERAL_SCENARIO && pf->n_collateral > 0) {
    if ((st = xm__collateral_book(ctx, pf, &aug, &aug_owned)) != XM_OK)
      goto cleanup;
    jb.book = &aug;
  }
  /* the first batch's sets here (with the notes and out's arrays); each
   * next batch's on a thread while this one is evaluated, on a device */
  xm__bt_sets cur;
  char notes[4096] = "";
  st = xm__bt_build(ctx, &jb, &jb.sd, jb.j_begin, &cur, notes, sizeof notes, out);
  snprintf(out->notes, sizeof out->notes, "%s", notes);
  if (st != XM_OK)
    xm__sets_free(&cur.comb);
  int ahead_ok = !ctx->be->host_memory;
  while (st == XM_OK) {
    int64_t next = cur.j0 + cur.comb.days;
    xm__bt_ahead w;
    int ahead = ahead_ok && next < jb.j_end && xm__bt_ahead_start(ctx, &jb, next, out, &w);
    st = xm__bt_evaluate(ctx, &jb, &cur, out);
    xm__sets_free(&cur.comb);
    if (ahead) {
      pthread_join(w.thread, NULL);
      if (st == XM_OK && w.st != XM_OK)
        st = xm__fail(ctx, w.st, "%s", w.ctx.err);
      cur = w.bs;
      if (st != XM_OK)
        xm__sets_free(&cur.comb);
    } else if (st == XM_OK && next < jb.j_end) {
      st = xm__bt_build(ctx, &jb, &jb.sd, next, &cur, NULL, 0, out);
    }
    if (st != XM_OK || next >= jb.j_end)
      break;
  }
  if (st != XM_OK)
    goto cleanup;
  if (jb.save)
    st = xm__bt_assemble(ctx, &jb.sv, out);
cleanup:
  if (jb.sv.X)
    for (int64_t i = 0; i < N * out->K; i++)
      free(jb.sv.X[i]);
  free(jb.sv.X);
  free(jb.sv.S);
  free(jb.move);
  free(jb.x);
  free(jb.loss);
  xm__collateral_book_free(aug_owned);
  return st;
}

/* xm_backtest as a job of xm__with_fallback. */
typedef struct xm__bt_run {
  const xm_portfolio *pf;
  const xm_scenario_file *sf;
  const xm_config *cfg;
  const xm_run_opts *opts;
  const xm__bt_dayset *days;
  xm_backtest_result *out;
} xm__bt_run;

static xm_status xm__bt_job_fn(xm_ctx *ctx, void *arg, int again) {
  xm__bt_run *j = arg;
  if (again)
    xm_backtest_result_free(j->out);
  xm_status st = xm__bt_days_run(ctx, j->pf, j->sf, j->cfg, j->opts, j->days, j->out);
  int part = xm__bt_ranged(j->opts);
  return st != XM_OK || part ? st : xm__bt_statistics(ctx, j->pf, j->cfg, j->days, j->out);
}

/* The backtest's days of sf under *cfg (NULL: the defaults, in *dflt). */
static xm_status xm__bt_days_of(xm_ctx *ctx, const xm_scenario_file *sf, const xm_config **cfg,
                                xm_config *dflt, xm__bt_dayset *days) {
  if (!*cfg) {
    xm_config_default(dflt);
    *cfg = dflt;
  }
  char msg[512];
  xm_status st = xm__bt_days(sf->n_days, (*cfg)->horizon_days, (*cfg)->backtest.min_history,
                             (*cfg)->backtest.days, days, msg, sizeof msg);
  return st == XM_OK
             ? st
             : xm__fail(ctx, st, "%s: /history: %s", sf->path ? sf->path : "scenarios", msg);
}

xm_status xm_backtest(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                      const xm_config *cfg, const xm_run_opts *opts, xm_backtest_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  if (!ctx || !ctx->be || !pf || !sf)
    return XM_EINVAL;
  xm_config dflt;
  double t0 = xm__now();
  xm__bt_dayset days;
  xm_status st = xm__bt_days_of(ctx, sf, &cfg, &dflt, &days);
  if (st != XM_OK)
    return st;
  if (xm__bt_ranged(opts) &&
      !(opts->day_begin >= 0 && opts->day_begin < opts->day_end && opts->day_end <= days.n)) {
    st = xm__fail(ctx, XM_EINVAL,
                  "backtest days %lld..%lld: the backtest has days 0..%lld (a range is not empty)",
                  (long long)opts->day_begin, (long long)opts->day_end - 1, (long long)days.n - 1);
    xm__bt_days_free(&days);
    return st;
  }
  xm__bt_run j = {pf, sf, cfg, opts, &days, out};
  st = xm__with_fallback(ctx, xm__bt_job_fn, &j, out->notes, sizeof out->notes);
  out->t_total = xm__now() - t0;
  xm__bt_days_free(&days);
  return st;
}

xm_status xm_backtest_statistics(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                 const xm_config *cfg, xm_backtest_result *r) {
  if (!ctx || !pf || !sf || !r)
    return XM_EINVAL;
  xm_config dflt;
  xm__bt_dayset days;
  xm_status st = xm__bt_days_of(ctx, sf, &cfg, &dflt, &days);
  if (st != XM_OK)
    return st;
  if (r->N != days.n || r->A != pf->n_accounts || r->G != pf->n_silos || !r->realised) {
    xm__bt_days_free(&days);
    return xm__fail(ctx, XM_EINVAL,
                    "xm_backtest_statistics: the result is not a backtest of "
                    "this book's days");
  }
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    free(r->stats[m]);
    r->stats[m] = NULL;
  }
  free(r->silo_stats);
  r->silo_stats = NULL;
  st = xm__bt_statistics(ctx, pf, cfg, &days, r);
  xm__bt_days_free(&days);
  return st;
}
