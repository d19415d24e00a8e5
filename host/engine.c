/* The engine: builds the scenario sets, plans the work to fit the device
 * (account blocks x scenario tiles), hands it to the backend, and collects
 * the per-account results. Never knows which backend runs. */
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xm_engine.h"
#include "xm_internal.h"
#include "xm_reduce.h"

#include "xm_price_host.h"

double xm__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void xm__mem_budget(const xm_ctx *ctx, uint64_t *total, uint64_t *max_buf) {
  uint64_t t = ctx->dev.global_mem / 2, m = ctx->dev.max_alloc;
  if (ctx->dev.backend == XM_BACKEND_CPU)
    t = ctx->dev.global_mem / 4; /* host memory: leave room for the rest */
  if (ctx->opt.mem_limit && ctx->opt.mem_limit < t)
    t = ctx->opt.mem_limit;
  if (m == 0 || m > t)
    m = t;
  if (t < (1u << 20))
    t = 1u << 20;
  if (m < (1u << 18))
    m = 1u << 18;
  *total = t;
  *max_buf = m;
}

static void xm__note(xm_run_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xm__note(xm_run_result *r, const char *fmt, ...) {
  size_t len = strlen(r->notes);
  if (len + 2 >= sizeof r->notes)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->notes + len, sizeof r->notes - len, fmt, ap);
  va_end(ap);
  len = strlen(r->notes);
  if (len + 1 < sizeof r->notes) {
    r->notes[len] = '\n';
    r->notes[len + 1] = '\0';
  }
}

static char *xm__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

xm_status xm_historical_set(const xm_scenario_file *sf, const int64_t *col, int64_t nf,
                            const xm_config *cfg, double **shock, int64_t *S_out,
                            double **filtered_out, int64_t *W_out, char *err, size_t cap) {
  int64_t T = sf->n_days, Fh = sf->n_hfactors, h = cfg->horizon_days;
  *shock = NULL;
  *S_out = 0;
  if (filtered_out)
    *filtered_out = NULL;
  int64_t W = T < cfg->historical.lookback ? T : cfg->historical.lookback;
  if (T < h || W < h) {
    snprintf(err, cap,
             "%s: /history has %lld days (window %lld), fewer than horizon_days = %lld: no "
             "historical or Monte Carlo scenario can be made",
             sf->path ? sf->path : "scenarios", (long long)T, (long long)W, (long long)h);
    return XM_ECONFIG;
  }
  int64_t S = W - h + 1;
  double *rt = malloc((size_t)(W * nf + 1) * sizeof *rt); /* filtered, last W days */
  double *x = calloc((size_t)(S * nf + 1), sizeof *x);
  double *sig = malloc((size_t)(T + 1) * sizeof *sig);
  if (!rt || !x || !sig) {
    free(rt);
    free(x);
    free(sig);
    snprintf(err, cap, "out of memory for the historical set");
    return XM_ENOMEM;
  }
  double lam = cfg->historical.ewma_lambda;
  for (int64_t f = 0; f < nf; f++) {
    const double *r = sf->hist_return + col[f];
    double m2 = 0.0;
    for (int64_t t = 0; t < T; t++)
      m2 += r[t * Fh] * r[t * Fh];
    sig[0] = m2 / (double)T; /* sigma^2_1 */
    for (int64_t t = 0; t < T; t++)
      sig[t + 1] = lam * sig[t] + (1.0 - lam) * r[t * Fh] * r[t * Fh];
    double now = sqrt(sig[T]);
    double floor_ = cfg->historical.apc_floor * sqrt(sig[0]);
    if (now < floor_)
      now = floor_;
    for (int64_t t = T - W; t < T; t++) {
      double st = sqrt(sig[t]);
      double v = r[t * Fh];
      if (cfg->historical.filtered && st > 0.0)
        v = v * now / st;
      rt[(t - (T - W)) * nf + f] = v;
    }
  }
  free(sig);
  /* window ends t = T-W+h .. T (1-based): rows of rt (h-1) .. W-1 */
  for (int64_t s = 0; s < S; s++)
    for (int64_t u = s; u < s + h; u++)
      for (int64_t f = 0; f < nf; f++)
        x[s * nf + f] += rt[u * nf + f];
  *shock = x;
  *S_out = S;
  if (W_out)
    *W_out = W;
  if (filtered_out)
    *filtered_out = rt;
  else
    free(rt);
  return XM_OK;
}

xm_status xm_cholesky_jitter(double *A, int64_t F, double *delta) {
  double maxd = 0.0;
  for (int64_t i = 0; i < F; i++)
    maxd = A[i * F + i] > maxd ? A[i * F + i] : maxd;
  *delta = 0.0;
  if (F == 0)
    return XM_OK;
  if (!(maxd > 0.0) || !isfinite(maxd))
    return XM_ENOTPD;
  double *work = malloc((size_t)(F * F) * sizeof *work);
  if (!work)
    return XM_ENOMEM;
  xm_status st = XM_ENOTPD;
  for (int j = -1; j <= 6; j++) {
    double d = j < 0 ? 0.0 : 1e-12 * maxd * pow(10.0, j);
    memcpy(work, A, (size_t)(F * F) * sizeof *work);
    for (int64_t i = 0; i < F; i++)
      work[i * F + i] += d;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)F, work, (lapack_int)F);
    if (info == 0) {
      for (int64_t i = 0; i < F; i++)
        for (int64_t k = i + 1; k < F; k++)
          work[i * F + k] = 0.0;
      memcpy(A, work, (size_t)(F * F) * sizeof *work);
      *delta = d;
      st = XM_OK;
      break;
    }
  }
  free(work);
  return st;
}

void xm_run_result_free(xm_run_result *r) {
  if (!r)
    return;
  for (int64_t x = 0; r->sets && x < r->K; x++) {
    xm_run_set *s = &r->sets[x];
    for (int64_t i = 0; s->labels && i < s->S; i++)
      free(s->labels[i]);
    free(s->labels);
    free(s->shock);
    free(s->pnl);
    free(s->name);
  }
  free(r->sets);
  for (int64_t f = 0; r->factor && f < r->F; f++)
    free(r->factor[f]);
  free(r->factor);
  free(r->requirement);
  free(r->unified);
  free(r->siloed);
  free(r->diversification);
  free(r->minimum);
  free(r->by_set);
  free(r->by_silo);
  free(r->attribution);
  free(r->binding);
  memset(r, 0, sizeof *r);
}

/* Position order inside an account: by silo, then instrument. */
typedef struct xm__posref {
  int32_t acct, silo, inst;
  double qty;
} xm__posref;

static int xm__cmp_posref(const void *pa, const void *pb) {
  const xm__posref *a = pa, *b = pb;
  if (a->acct != b->acct)
    return a->acct < b->acct ? -1 : 1;
  if (a->silo != b->silo)
    return a->silo < b->silo ? -1 : 1;
  if (a->inst != b->inst)
    return a->inst < b->inst ? -1 : 1;
  return 0;
}

/* qsort has no context argument in C11: the portfolio being planned. The
 * engine plans one run at a time per thread of the caller. */
static _Thread_local const xm_portfolio *xm__sort_pf;

static int xm__cmp_inst(const void *pa, const void *pb) {
  const xm_portfolio *pf = xm__sort_pf;
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  int oa = XM_TYPE_IS_OPTION(pf->inst_type[a]), ob = XM_TYPE_IS_OPTION(pf->inst_type[b]);
  if (oa != ob) /* the linear instruments first (the cpu backend's two loops) */
    return oa < ob ? -1 : 1;
  if (pf->inst_type[a] != pf->inst_type[b])
    return pf->inst_type[a] < pf->inst_type[b] ? -1 : 1;
  if (pf->inst_call[a] != pf->inst_call[b])
    return pf->inst_call[a] < pf->inst_call[b] ? -1 : 1;
  if (pf->inst_underlying[a] != pf->inst_underlying[b])
    return pf->inst_underlying[a] < pf->inst_underlying[b] ? -1 : 1;
  return a < b ? -1 : (a > b);
}

void xm__job_extents(const xm__job *job, int64_t *max_s, int64_t *max_tile, int64_t *max_na,
                     int64_t *max_inst) {
  *max_s = *max_tile = *max_na = *max_inst = 0;
  for (int64_t x = 0; x < job->K; x++)
    *max_s = job->sets[x].S > *max_s ? job->sets[x].S : *max_s;
  for (int64_t b = 0; b < job->n_blocks; b++) {
    const xm__block *bk = &job->blocks[b];
    *max_tile = bk->tile > *max_tile ? bk->tile : *max_tile;
    *max_na = bk->na > *max_na ? bk->na : *max_na;
    *max_inst = bk->n_inst > *max_inst ? bk->n_inst : *max_inst;
  }
}

static void xm__free_blocks(xm__job *job) {
  for (int64_t b = 0; job->blocks && b < job->n_blocks; b++) {
    xm__block *bk = &job->blocks[b];
    free(bk->instd);
    free(bk->insti);
    free(bk->pos_start);
    free(bk->pos_inst);
    free(bk->pos_silo);
    free(bk->pos_qty);
    free(bk->cross);
    free(bk->inst_row);
  }
  free(job->blocks);
  job->blocks = NULL;
}

/* Account blocks sized so that a block's loss buffer [S x na x (G+1)] fits
 * the device, and scenario tiles so that [tile x n_inst] contract losses fit. */
static xm_status xm__plan(xm_ctx *ctx, const xm_portfolio *pf, const int64_t *fcol, xm__job *job) {
  int64_t A = pf->n_accounts, N = pf->n_positions, G = job->G;
  xm__posref *pr = malloc((size_t)(N + 1) * sizeof *pr);
  int64_t *mark = malloc((size_t)(pf->n_instruments + 1) * sizeof *mark);
  int32_t *local = malloc((size_t)(pf->n_instruments + 1) * sizeof *local);
  int32_t *order = malloc((size_t)(pf->n_instruments + 1) * sizeof *order);
  xm_status st = XM_OK;
  if (!pr || !mark || !local || !order) {
    st = xm__fail(ctx, XM_ENOMEM, "planning %lld positions", (long long)N);
    goto cleanup;
  }
  for (int64_t p = 0; p < N; p++) {
    pr[p].acct = pf->pos_account[p];
    pr[p].inst = pf->pos_instrument[p];
    pr[p].silo = pf->inst_silo[pr[p].inst];
    pr[p].qty = pf->pos_quantity[p];
  }
  qsort(pr, (size_t)N, sizeof *pr, xm__cmp_posref);
  /* merge repeated (account, instrument): quantities add */
  int64_t m = 0;
  for (int64_t p = 0; p < N; p++) {
    if (m > 0 && pr[m - 1].acct == pr[p].acct && pr[m - 1].inst == pr[p].inst)
      pr[m - 1].qty += pr[p].qty;
    else
      pr[m++] = pr[p];
  }
  N = m;
  int64_t maxS = 1;
  for (int64_t x = 0; x < job->K; x++)
    maxS = job->sets[x].S > maxS ? job->sets[x].S : maxS;
  uint64_t total = 0, maxbuf = 0;
  xm__mem_budget(ctx, &total, &maxbuf);
  uint64_t lbudget = total / 2 < maxbuf ? total / 2 : maxbuf;
  int64_t na_max = (int64_t)(lbudget / ((uint64_t)maxS * (uint64_t)(G + 1) * 8u));
  if (na_max < 1) {
    st = xm__fail(ctx, XM_ERESOURCE,
                  "device memory budget %llu bytes cannot hold one account's %lld scenario "
                  "losses; raise --mem-limit",
                  (unsigned long long)total, (long long)maxS);
    goto cleanup;
  }
  if (na_max > (int64_t)1 << 24)
    na_max = (int64_t)1 << 24;
  job->n_blocks = (A + na_max - 1) / na_max;
  job->blocks = calloc((size_t)job->n_blocks, sizeof *job->blocks);
  if (!job->blocks) {
    st = xm__fail(ctx, XM_ENOMEM, "planning blocks");
    goto cleanup;
  }
  for (int64_t i = 0; i < pf->n_instruments; i++)
    mark[i] = -1;
  int64_t p0 = 0;
  for (int64_t b = 0; b < job->n_blocks; b++) {
    xm__block *bk = &job->blocks[b];
    bk->a0 = b * na_max;
    bk->na = A - bk->a0 < na_max ? A - bk->a0 : na_max;
    int64_t p1 = p0;
    while (p1 < N && pr[p1].acct < bk->a0 + bk->na)
      p1++;
    int64_t ni = 0;
    for (int64_t p = p0; p < p1; p++)
      if (mark[pr[p].inst] != b) {
        mark[pr[p].inst] = b;
        order[ni++] = pr[p].inst;
      }
    /* Local order by (type, call, underlying): neighbouring work items take the
     * same branch of the pricing (no divergence on GPUs, vectorisable on CPUs). */
    xm__sort_pf = pf;
    qsort(order, (size_t)ni, sizeof *order, xm__cmp_inst);
    for (int64_t j = 0; j < ni; j++)
      local[order[j]] = (int32_t)j;
    int64_t np = p1 - p0;
    bk->n_inst = ni;
    bk->instd = malloc((size_t)(XM_ND * ni + 1) * sizeof(double));
    bk->insti = malloc((size_t)(XM_NI * ni + 1) * sizeof(int));
    bk->pos_start = calloc((size_t)(bk->na + 1), sizeof(int));
    bk->pos_inst = malloc((size_t)(np + 1) * sizeof(int));
    bk->pos_silo = malloc((size_t)(np + 1) * sizeof(int));
    bk->pos_qty = malloc((size_t)(np + 1) * sizeof(double));
    bk->cross = malloc((size_t)(bk->na + 1) * sizeof(int));
    bk->inst_row = malloc((size_t)(ni + 1) * sizeof(int32_t));
    if (!bk->instd || !bk->insti || !bk->pos_start || !bk->pos_inst || !bk->pos_silo ||
        !bk->pos_qty || !bk->cross || !bk->inst_row) {
      st = xm__fail(ctx, XM_ENOMEM, "planning block %lld", (long long)b);
      goto cleanup;
    }
    for (int64_t p = p0; p < p1; p++) {
      int32_t i = pr[p].inst, li = local[i];
      int64_t q = p - p0;
      bk->pos_inst[q] = li;
      bk->pos_silo[q] = pr[p].silo;
      bk->pos_qty[q] = pr[p].qty;
      bk->pos_start[pr[p].acct - bk->a0 + 1]++;
      if (mark[i] == b) {
        mark[i] = -2 - b; /* filled */
        bk->inst_row[li] = i;
        int32_t und = pf->inst_underlying[i], vf = pf->inst_vol_factor[i];
        double *d = bk->instd;
        int *n = bk->insti;
        d[XM_ID_S0 * ni + li] = pf->factor_level[und];
        d[XM_ID_K * ni + li] = pf->inst_strike[i];
        d[XM_ID_T * ni + li] = pf->inst_expiry[i];
        d[XM_ID_R * ni + li] = pf->inst_rate[i];
        d[XM_ID_Q * ni + li] = XM_TYPE_HAS_CARRY(pf->inst_type[i]) ? pf->inst_dividend_yield[i] : 0.0;
        d[XM_ID_SIG * ni + li] = pf->inst_implied_vol[i];
        d[XM_ID_MULT * ni + li] = pf->inst_multiplier[i];
        d[XM_ID_V0 * ni + li] = 0.0;
        n[XM_II_TYPE * ni + li] = pf->inst_type[i];
        n[XM_II_CALL * ni + li] = pf->inst_call[i];
        n[XM_II_UND * ni + li] = (int)fcol[und];
        n[XM_II_VOL * ni + li] = (vf >= 0 && XM_TYPE_IS_OPTION(pf->inst_type[i])) ? (int)fcol[vf] : -1;
      }
    }
    for (int64_t a = 0; a < bk->na; a++) {
      bk->pos_start[a + 1] += bk->pos_start[a];
      bk->cross[a] = pf->account_cross_margin[bk->a0 + a];
    }
    uint64_t tb = (total / 4 < maxbuf ? total / 4 : maxbuf) / ((uint64_t)(ni > 0 ? ni : 1) * 8u);
    bk->tile = tb < 1 ? 1 : (tb > (uint64_t)maxS ? maxS : (int64_t)tb);
    p0 = p1;
  }
cleanup:
  free(order);
  free(local);
  free(mark);
  free(pr);
  return st;
}

static int64_t xm__find(char *const *names, int64_t n, const char *want) {
  for (int64_t i = 0; i < n; i++)
    if (strcmp(names[i], want) == 0)
      return i;
  return -1;
}

/* Why account a's requirement is not finite: the first (set, scenario,
 * instrument) whose contract value, loss or sum is not a finite number,
 * recomputed on the host with the shared pricing source in the run's
 * precision. by_set: the account's K measures (a non-finite one is looked at
 * first). Returns 0 after recording the message in ctx (XM_EFORMAT: the
 * inputs cannot be margined), 1 when the shocks it needs are not on the host
 * (Monte Carlo sets generated on the device), 2 when nothing explains it. */
static int xm__explain_nonfinite(xm_ctx *ctx, const xm_portfolio *pf, const xm__job *job, int64_t a,
                                 const double *by_set) {
  const xm_config *cfg = job->cfg;
  const xm__block *bk = NULL;
  for (int64_t b = 0; b < job->n_blocks && !bk; b++)
    if (a >= job->blocks[b].a0 && a < job->blocks[b].a0 + job->blocks[b].na)
      bk = &job->blocks[b];
  if (!bk)
    return 2;
  int64_t F = job->F, n = bk->n_inst, la = a - bk->a0;
  int single = cfg->precision == XM_SINGLE;
  double dt = (double)cfg->horizon_days / 252.0, p = cfg->pricing.vol_term_power;
  double *ex = malloc((size_t)(F + 1) * sizeof *ex);
  double *ssum = malloc((size_t)(job->G + 1) * sizeof *ssum); /* each silo's loss */
  if (!ex || !ssum) {
    free(ex);
    free(ssum);
    return 2;
  }
  int need_mc = 0, found = 0;
  /* the sets whose measure is not finite first, then the others */
  for (int pass = 0; pass < 2 && !found; pass++)
    for (int64_t x = 0; x < job->K && !found; x++) {
      const xm__set *set = &job->sets[x];
      if ((pass == 0) == isfinite(by_set[x]))
        continue;
      if (!set->X) {
        need_mc = 1;
        continue;
      }
      for (int64_t s = 0; s < set->S && !found; s++) {
        const double *xr = set->X + s * F;
        for (int64_t f = 0; f < F; f++)
          ex[f] = exp(xr[f]);
        double sum = 0.0;
        for (int g = 0; g < job->G; g++)
          ssum[g] = 0.0;
        for (int q = bk->pos_start[la]; q < bk->pos_start[la + 1] && !found; q++) {
          int li = bk->pos_inst[q];
          double d1[XM_ND];
          int i1[XM_NI];
          for (int c = 0; c < XM_ND; c++)
            d1[c] = bk->instd[c * n + li];
          for (int c = 0; c < XM_NI; c++)
            i1[c] = bk->insti[c * n + li];
          double v0, l;
          if (single) {
            xm_today_f(0, 1, d1, i1, (float)dt, (float)p);
            v0 = d1[XM_ID_V0];
            l = (double)xm_loss_f(0, 1, d1, i1, xr, ex, 1, (float)cfg->pricing.vol_floor);
          } else {
            xm_today_d(0, 1, d1, i1, dt, p);
            v0 = d1[XM_ID_V0];
            l = xm_loss_d(0, 1, d1, i1, xr, ex, 1, cfg->pricing.vol_floor);
          }
          double ql = bk->pos_qty[q] * l;
          sum += ql;
          ssum[bk->pos_silo[q]] += ql;
          const char *why = !isfinite(v0)   ? "today's value of one contract is not a finite number"
                            : !isfinite(l)  ? "the revalued contract is not a finite number"
                            : !isfinite(ql) ? "quantity x loss overflows"
                            : !isfinite(sum) ? "the account's loss overflows adding this position"
                                             : NULL;
          if (!why)
            continue;
          int32_t row = bk->inst_row[li];
          int u = i1[XM_II_UND];
          xm__fail(ctx, XM_EFORMAT,
                   "set %s, scenario '%s' (row %lld), account %s, instrument %s "
                   "(/instruments row %d): %s (underlying shock %g, quantity %g, loss per "
                   "contract %g); a non-finite loss cannot be margined: check the shock, "
                   "level, expiry and multiplier",
                   set->name, set->labels ? set->labels[s] : "?", (long long)s, pf->account_id[a],
                   pf->inst_id[row], row, why, u >= 0 ? xr[u] : 0.0, bk->pos_qty[q], l);
          found = 1;
        }
        /* the whole account's and each silo's loss, times the set's weight */
        double w = set->w ? set->w[s] : 1.0;
        for (int g = -1; g < job->G && !found; g++) {
          double part = g < 0 ? sum : ssum[g];
          if (isfinite(w * part))
            continue;
          xm__fail(
              ctx, XM_EFORMAT,
              "set %s, scenario '%s' (row %lld), account %s: the loss of %s%s, %g, times the set's "
              "weight %g is not a finite number; a non-finite loss cannot be margined",
              set->name, set->labels ? set->labels[s] : "?", (long long)s, pf->account_id[a],
              g < 0 ? "the account" : "silo ", g < 0 ? "" : pf->silo_name[g], part, w);
          found = 1;
        }
      }
    }
  free(ssum);
  free(ex);
  return found ? 0 : need_mc ? 1 : 2;
}

xm_status xm_engine_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                        const xm_config *cfg, const xm_engine_opts *opts, xm_run_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  if (!ctx || !ctx->be || !pf || !sf || !cfg)
    return XM_EINVAL;
  xm_engine_opts o = {0, 0, NULL, NULL};
  if (opts)
    o = *opts;
  ctx->err[0] = '\0';
  double t0 = xm__now();
  xm_status st = XM_OK;
  xm__job job;
  memset(&job, 0, sizeof job);
  job.cfg = cfg;
  job.G = (int)pf->n_silos;
  job.A = pf->n_accounts;
  int64_t *fcol = malloc((size_t)(pf->n_factors + 1) * sizeof *fcol); /* portfolio -> shock col */
  int64_t *used = malloc((size_t)(pf->n_factors + 1) * sizeof *used); /* shock col -> portfolio */
  int64_t *hcol = NULL;
  double *filtered = NULL, *sigma = NULL;
  xm__set *sets = NULL;
  int64_t K = 0, x = 0;
  char err[1024] = "";
  if (!fcol || !used) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  /* The factors positions use, in portfolio order. */
  for (int64_t f = 0; f < pf->n_factors; f++)
    fcol[f] = -1;
  for (int64_t p = 0; p < pf->n_positions; p++) {
    int32_t i = pf->pos_instrument[p];
    fcol[pf->inst_underlying[i]] = 0;
    if (pf->inst_vol_factor[i] >= 0 && XM_TYPE_IS_OPTION(pf->inst_type[i]))
      fcol[pf->inst_vol_factor[i]] = 0;
  }
  int64_t F = 0;
  for (int64_t f = 0; f < pf->n_factors; f++)
    if (fcol[f] == 0) {
      used[F] = f;
      fcol[f] = F++;
    }
  job.F = F;
  out->F = F;
  out->factor = calloc((size_t)(F + 1), sizeof *out->factor);
  if (!out->factor) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  for (int64_t f = 0; f < F; f++)
    if (!(out->factor[f] = xm__strdup(pf->factor_name[used[f]]))) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }

  /* The sets, in run order. */
  int hist = cfg->historical.enabled, mc = cfg->montecarlo.enabled;
  int stressed = mc && cfg->montecarlo.correlation_stress > 0.0;
  K = (hist ? 1 : 0) + (mc ? 1 : 0) + (stressed ? 1 : 0) + sf->n_sets;
  if (K == 0) {
    st = xm__fail(ctx, XM_ECONFIG,
                  "no scenario set to run: historical and Monte Carlo are disabled and %s has no "
                  "/sets",
                  sf->path ? sf->path : "the scenario file");
    goto cleanup;
  }
  /* Host memory the sets will take (labels, shocks and their exponentials on
   * the host, --save-pnl), estimated before any of it is allocated. */
  {
    double per = 48.0 + 8.0 * (double)F * (ctx->dev.backend == XM_BACKEND_CPU ? 2 : 0) +
                 (o.save_scenarios ? 8.0 * (double)F : 0.0) +
                 (o.save_pnl ? 4.0 * (double)pf->n_accounts : 0.0);
    double S_all = (hist ? (double)sf->n_days : 0.0) +
                   (double)(mc + stressed) * (double)cfg->montecarlo.scenarios;
    for (int64_t r = 0; r < sf->n_sets; r++)
      S_all += (double)sf->sets[r].n_scenarios;
    double need = per * S_all;
    uint64_t have = xm_host_memory_limit();
    if (need > (double)have) {
      st = xm__fail(ctx, XM_ECONFIG,
                    "%.0f scenarios (montecarlo.scenarios = %lld) need an estimated %.3g bytes of "
                    "host memory (labels%s%s%s), more than the %llu bytes this process can have "
                    "(the least of MemAvailable, the cgroup limit and ulimit -v)",
                    S_all, (long long)cfg->montecarlo.scenarios, need,
                    ctx->dev.backend == XM_BACKEND_CPU ? ", shocks" : "",
                    o.save_scenarios ? ", --save-scenarios" : "", o.save_pnl ? ", --save-pnl" : "",
                    (unsigned long long)have);
      goto cleanup;
    }
  }
  sets = calloc((size_t)K, sizeof *sets);
  out->sets = calloc((size_t)K, sizeof *out->sets);
  if (!sets || !out->sets) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  out->K = job.K = K;
  job.sets = sets;
  x = 0;
  if (hist || mc) {
    if (sf->n_days == 0) {
      st = xm__fail(ctx, XM_EFORMAT,
                    "%s: /history is missing, but the historical or Monte Carlo set is enabled",
                    sf->path ? sf->path : "scenarios");
      goto cleanup;
    }
    const char *last = sf->hist_date[sf->n_days - 1];
    if (pf->valuation_date[0] && strcmp(last, pf->valuation_date) > 0) {
      st = xm__fail(ctx, XM_EFORMAT,
                    "%s: /history/date[%lld] = '%s' is after the valuation_date '%s' of %s: the "
                    "history must end on or before the day the book is valued (data from the "
                    "future)",
                    sf->path ? sf->path : "scenarios", (long long)(sf->n_days - 1), last,
                    pf->valuation_date, pf->path ? pf->path : "the portfolio");
      goto cleanup;
    }
    hcol = malloc((size_t)(F + 1) * sizeof *hcol);
    if (!hcol) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    for (int64_t f = 0; f < F; f++) {
      hcol[f] = xm__find(sf->hist_factor, sf->n_hfactors, pf->factor_name[used[f]]);
      if (hcol[f] < 0) {
        st = xm__fail(ctx, XM_EFORMAT,
                      "%s: /history/factor has no column '%s', which positions of %s use "
                      "(needed by the historical and Monte Carlo sets)",
                      sf->path ? sf->path : "scenarios", pf->factor_name[used[f]],
                      pf->path ? pf->path : "the portfolio");
        goto cleanup;
      }
    }
    double *hx = NULL;
    int64_t S = 0, W = 0;
    st = xm_historical_set(sf, hcol, F, cfg, &hx, &S, &filtered, &W, err, sizeof err);
    if (st != XM_OK) {
      xm__fail(ctx, st, "%s", err);
      goto cleanup;
    }
    if (hist) {
      xm__set *s = &sets[x++];
      snprintf(s->name, sizeof s->name, "historical");
      s->measure = (int)cfg->historical.measure;
      s->confidence = cfg->confidence;
      s->S = S;
      s->X = hx;
      s->labels = calloc((size_t)S, sizeof *s->labels);
      if (!s->labels) {
        st = xm__fail(ctx, XM_ENOMEM, "out of memory");
        goto cleanup;
      }
      int64_t T = sf->n_days, Wn = W;
      for (int64_t i = 0; i < S; i++) /* window end t = T - W + h + i (1-based) */
        if (!(s->labels[i] = xm__strdup(sf->hist_date[T - Wn + cfg->horizon_days - 1 + i]))) {
          st = xm__fail(ctx, XM_ENOMEM, "out of memory");
          goto cleanup;
        }
    } else {
      free(hx);
    }
    if (mc) {
      sigma = malloc((size_t)(F * F + 1) * sizeof *sigma);
      if (!sigma) {
        st = xm__fail(ctx, XM_ENOMEM, "out of memory");
        goto cleanup;
      }
      if ((st = ctx->be->syrk(ctx, W, F, filtered, sigma)) != XM_OK)
        goto cleanup;
      for (int v = 0; v < 1 + stressed; v++) {
        xm__set *s = &sets[x++];
        snprintf(s->name, sizeof s->name, v ? "montecarlo_stressed" : "montecarlo");
        s->measure = (int)cfg->montecarlo.measure;
        s->confidence = cfg->confidence;
        s->S = cfg->montecarlo.scenarios;
        s->is_mc = 1;
        s->chol = malloc((size_t)(F * F + 1) * sizeof *s->chol);
        s->labels = calloc((size_t)s->S, sizeof *s->labels);
        if (!s->chol || !s->labels) {
          st = xm__fail(ctx, XM_ENOMEM, "out of memory for %lld Monte Carlo scenarios",
                        (long long)s->S);
          goto cleanup;
        }
        double kap = v ? cfg->montecarlo.correlation_stress : 0.0;
        for (int64_t i = 0; i < F; i++)
          for (int64_t j = 0; j < F; j++)
            s->chol[i * F + j] = i == j ? sigma[i * F + j] : (1.0 - kap) * sigma[i * F + j];
        double delta = 0.0;
        st = xm_cholesky_jitter(s->chol, F, &delta);
        if (st != XM_OK) {
          char zero[512] = "", huge[512] = "";
          for (int64_t i = 0; i < F; i++) {
            double var = sigma[i * F + i];
            char *list = isfinite(var) ? (var > 0.0 ? NULL : zero) : huge;
            if (list) {
              size_t len = strlen(list);
              snprintf(list + len, sizeof zero - len, "%s%s", len ? ", " : "",
                       pf->factor_name[used[i]]);
            }
          }
          xm__fail(
              ctx, st,
              "%s: /history/return: the %s covariance of %lld factors is not positive "
              "definite and a jitter up to 1e-6 x its largest variance does not fix it%s%s%s%s",
              sf->path ? sf->path : "scenarios", s->name, (long long)F,
              zero[0] ? "; factors with zero variance over the window: " : "", zero,
              huge[0] ? "; factors whose variance is not a finite number (returns too "
                        "large): "
                      : "",
              huge);
          goto cleanup;
        }
        out->jitter[v] = delta;
        if (delta > 0.0)
          xm__note(out, "%s: added %.3g * I to the covariance to make it positive definite",
                   s->name, delta);
        for (int64_t i = 0; i < s->S; i++) {
          char lab[32];
          snprintf(lab, sizeof lab, "mc%lld", (long long)i);
          if (!(s->labels[i] = xm__strdup(lab))) {
            st = xm__fail(ctx, XM_ENOMEM, "out of memory");
            goto cleanup;
          }
        }
      }
    }
  }
  for (int64_t r = 0; r < sf->n_sets; r++) {
    const xm_scenario_set *rs = &sf->sets[r];
    xm__set *s = &sets[x++];
    snprintf(s->name, sizeof s->name, "%s", rs->name);
    s->measure = rs->measure;
    s->confidence = isnan(rs->confidence) ? cfg->confidence : rs->confidence;
    s->S = rs->n_scenarios;
    s->X = calloc((size_t)(s->S * F + 1), sizeof *s->X);
    s->labels = calloc((size_t)s->S, sizeof *s->labels);
    if (rs->weight)
      s->w = malloc((size_t)s->S * sizeof *s->w);
    if (!s->X || !s->labels || (rs->weight && !s->w)) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory for set %s", rs->name);
      goto cleanup;
    }
    char missing[512] = "";
    int n_missing = 0;
    for (int64_t f = 0; f < F; f++) {
      int64_t c = xm__find(rs->factor, rs->n_factors, pf->factor_name[used[f]]);
      if (c < 0) {
        if (n_missing++ < 8) {
          size_t len = strlen(missing);
          snprintf(missing + len, sizeof missing - len, "%s%s", len ? ", " : "",
                   pf->factor_name[used[f]]);
        }
        continue;
      }
      for (int64_t i = 0; i < s->S; i++)
        s->X[i * F + f] = rs->shock[i * rs->n_factors + c];
    }
    if (n_missing)
      xm__note(out, "set %s does not move %d factor%s the book uses (zero shock): %s%s", rs->name,
               n_missing, n_missing > 1 ? "s" : "", missing, n_missing > 8 ? ", ..." : "");
    for (int64_t i = 0; i < s->S; i++) {
      if (s->w)
        s->w[i] = rs->weight[i];
      if (!(s->labels[i] = xm__strdup(rs->label[i]))) {
        st = xm__fail(ctx, XM_ENOMEM, "out of memory");
        goto cleanup;
      }
    }
  }
  for (x = 0; x < K; x++)
    sets[x].k = xm_tail_count(sets[x].S, sets[x].confidence);

  /* Plan and evaluate. */
  if ((st = xm__plan(ctx, pf, fcol, &job)) != XM_OK)
    goto cleanup;
  int64_t A = pf->n_accounts, G = job.G;
  out->A = A;
  out->G = G;
  out->n_blocks = job.n_blocks;
  job.out_acct = malloc((size_t)(A * XM_NOUT + 1) * sizeof(double));
  job.out_silo = malloc((size_t)(A * G * 2 + 1) * sizeof(double));
  job.by_set = malloc((size_t)(A * K + 1) * sizeof(double));
  job.keep_mc = o.save_scenarios;
  job.progress = o.progress;
  job.progress_arg = o.progress_arg;
  if (!job.out_acct || !job.out_silo || !job.by_set) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory for %lld accounts", (long long)A);
    goto cleanup;
  }
  if (o.save_pnl) {
    job.pnl = calloc((size_t)K, sizeof *job.pnl);
    if (!job.pnl) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    for (x = 0; x < K; x++)
      if (!(job.pnl[x] = malloc((size_t)(sets[x].S * A + 1) * sizeof(float)))) {
        st = xm__fail(ctx, XM_ENOMEM, "out of memory for --save-pnl (%lld x %lld)",
                      (long long)sets[x].S, (long long)A);
        goto cleanup;
      }
  }
  out->t_prepare = xm__now() - t0;
  if ((st = ctx->be->evaluate(ctx, &job)) != XM_OK)
    goto cleanup;
  out->t_scenarios = job.t_scen;
  out->t_evaluate = job.t_eval;

  /* Collect. */
  out->requirement = malloc((size_t)(A + 1) * sizeof(double));
  out->unified = malloc((size_t)(A + 1) * sizeof(double));
  out->siloed = malloc((size_t)(A + 1) * sizeof(double));
  out->diversification = malloc((size_t)(A + 1) * sizeof(double));
  out->minimum = malloc((size_t)(A + 1) * sizeof(double));
  out->binding = malloc((size_t)(A + 1) * sizeof(int32_t));
  out->by_silo = malloc((size_t)(A * G + 1) * sizeof(double));
  out->attribution = malloc((size_t)(A * G + 1) * sizeof(double));
  if (!out->requirement || !out->unified || !out->siloed || !out->diversification ||
      !out->minimum || !out->binding || !out->by_silo || !out->attribution) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  out->by_set = job.by_set;
  job.by_set = NULL;
  for (int64_t a = 0; a < A; a++) {
    const double *oa = job.out_acct + a * XM_NOUT;
    out->requirement[a] = oa[XM_O_REQUIREMENT];
    out->unified[a] = oa[XM_O_UNIFIED];
    out->siloed[a] = oa[XM_O_SILOED];
    out->diversification[a] = oa[XM_O_DIVERSIFICATION];
    out->minimum[a] = oa[XM_O_MINIMUM];
    out->binding[a] = (int32_t)oa[XM_O_BINDING];
    for (int64_t g = 0; g < G; g++) {
      out->by_silo[a * G + g] = job.out_silo[(a * G + g) * 2];
      out->attribution[a * G + g] = job.out_silo[(a * G + g) * 2 + 1];
    }
    if (!isfinite(out->requirement[a])) {
      int why = xm__explain_nonfinite(ctx, pf, &job, a, out->by_set + a * K);
      if (why == 0) {
        st = XM_EFORMAT;
      } else if (why == 1 && !o.save_scenarios) {
        /* The Monte Carlo shocks stayed on the device: run again keeping
         * them, so that the message can name the scenario and instrument. */
        xm_run_result again;
        o.save_scenarios = 1;
        st = xm_engine_run(ctx, pf, sf, cfg, &o, &again);
        xm_run_result_free(&again);
        if (st == XM_OK)
          st = xm__fail(ctx, XM_ENUMERIC, "account %s: the requirement is not a finite number",
                        pf->account_id[a]);
      } else {
        st = xm__fail(ctx, XM_ENUMERIC, "account %s: the requirement is not a finite number",
                      pf->account_id[a]);
      }
      goto cleanup;
    }
  }
  for (x = 0; x < K; x++) {
    xm_run_set *rs = &out->sets[x];
    xm__set *s = &sets[x];
    rs->name = xm__strdup(s->name);
    if (!rs->name) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    rs->measure = s->measure;
    rs->confidence = s->confidence;
    rs->S = s->S;
    rs->k = s->k;
    rs->labels = s->labels;
    s->labels = NULL;
    if (o.save_scenarios) {
      rs->shock = s->X;
      s->X = NULL;
    }
    if (job.pnl) {
      rs->pnl = job.pnl[x];
      job.pnl[x] = NULL;
    }
  }
cleanup:
  if (job.pnl)
    for (x = 0; x < K; x++)
      free(job.pnl[x]);
  free(job.pnl);
  free(job.out_acct);
  free(job.out_silo);
  free(job.by_set);
  xm__free_blocks(&job);
  for (int64_t i = 0; sets && i < K; i++) {
    for (int64_t j = 0; sets[i].labels && j < sets[i].S; j++)
      free(sets[i].labels[j]);
    free(sets[i].labels);
    free(sets[i].X);
    free(sets[i].w);
    free(sets[i].chol);
  }
  free(sets);
  free(sigma);
  free(filtered);
  free(hcol);
  free(used);
  free(fcol);
  return st;
}
