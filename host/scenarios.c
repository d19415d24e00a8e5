/* The scenario sets of a run (METHODOLOGY.md section 1): the historical set
 * filtered by EWMA volatility, the Monte Carlo sets' recipe (covariance of the
 * filtered history, its Cholesky factor with the jitter rule; the draws are
 * the backend's), and the ready-made sets of the scenario file mapped onto
 * the factors the book uses. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"
#include "xm_io.h"
#include "xm_names.h"
#include "xm_reduce.h"

/* C = R^T R / W (the full symmetric F x F) for R [W x F], row-major. On the
 * host for every backend: a W x F product is small against a run, the device
 * would cost a round trip per day of a backtest, and the backends then share
 * the Monte Carlo recipe bit for bit. On one OpenBLAS thread, as its
 * Cholesky factor: every rank of a job gets one process's bits. */
static void xm__second_moment(int64_t W, int64_t F, const double *R, double *C) {
  int nb = xm__blas_serial();
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)F, (int)W, 1.0 / (double)W, R, (int)F,
              0.0, C, (int)F);
  xm__blas_restore(nb);
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < i; j++)
      C[i * F + j] = C[j * F + i];
}

static void xm__note(char *notes, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xm__note(char *notes, size_t cap, const char *fmt, ...) {
  if (!notes || cap == 0)
    return;
  size_t len = strlen(notes);
  if (len + 2 >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(notes + len, cap - len, fmt, ap);
  va_end(ap);
  len = strlen(notes);
  if (len + 1 < cap) {
    notes[len] = '\n';
    notes[len + 1] = '\0';
  }
}

/* col[f] = the row of the book's factor used[f] in names[0..n), or -1: one
 * name index, built once (a linear search per factor was 92% of a 20,000-factor
 * run's instructions). */
static xm_status xm__match(xm_ctx *ctx, char *const *names, int64_t n, const xm_portfolio *pf,
                           const int64_t *used, int64_t F, int64_t *col) {
  xm__names *ix = NULL;
  xm_status st = xm__names_build(&ix, names, n);
  if (st != XM_OK)
    return xm__fail(ctx, st, "indexing %lld factor names", (long long)n);
  for (int64_t f = 0; f < F; f++)
    col[f] = xm__names_find(ix, pf->factor_name[used[f]]);
  xm__names_free(ix);
  return XM_OK;
}

xm_status xm__historical_set(const xm_scenario_file *sf, const int64_t *col, int64_t nf,
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

xm_status xm__cholesky_jitter(double *A, int64_t F, double *delta) {
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
    int nb = xm__blas_serial();
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)F, work, (lapack_int)F);
    xm__blas_restore(nb);
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

void xm__sets_free(xm__sets *s) {
  if (!s)
    return;
  for (int64_t i = 0; s->set && i < s->K; i++) {
    for (int64_t j = 0; s->set[i].labels && j < s->set[i].S; j++)
      free(s->set[i].labels[j]);
    free(s->set[i].labels);
    free(s->set[i].X);
    free(s->set[i].EX);
    free(s->set[i].w);
    free(s->set[i].chol);
  }
  free(s->set);
  free(s->hcol);
  free(s->used);
  free(s->fcol);
  memset(s, 0, sizeof *s);
}

/* The stressed period's set (METHODOLOGY.md section 1) into *s: the raw h-day
 * sums of the history columns hcol[0..F) for every window end t >= h whose
 * date lies in [apc.stressed_start, apc.stressed_end]; S may be 0. */
static xm_status xm__stressed_set(xm_ctx *ctx, const xm_scenario_file *sf, const int64_t *hcol,
                                  int64_t F, const xm_config *cfg, xm__set *s) {
  int64_t T = sf->n_days, Fh = sf->n_hfactors, h = cfg->horizon_days, S = 0;
  const char *lo = cfg->apc.stressed_start, *hi = cfg->apc.stressed_end;
  for (int64_t t = h; t <= T; t++)
    S += strcmp(sf->hist_date[t - 1], lo) >= 0 && strcmp(sf->hist_date[t - 1], hi) <= 0;
  snprintf(s->name, sizeof s->name, "stressed_period");
  s->measure = (int)cfg->historical.measure;
  s->confidence = cfg->confidence;
  s->S = S;
  s->X = calloc((size_t)(S * F + 1), sizeof *s->X);
  s->labels = calloc((size_t)S + 1, sizeof *s->labels);
  if (!s->X || !s->labels)
    return xm__fail(ctx, XM_ENOMEM, "out of memory for the stressed period");
  int64_t i = 0;
  for (int64_t t = h; t <= T; t++) {
    if (strcmp(sf->hist_date[t - 1], lo) < 0 || strcmp(sf->hist_date[t - 1], hi) > 0)
      continue;
    for (int64_t u = t - h; u < t; u++) /* rows t-h+1 .. t, 1-based */
      for (int64_t f = 0; f < F; f++)
        s->X[i * F + f] += sf->hist_return[u * Fh + hcol[f]];
    if (!(s->labels[i++] = xm__strdup(sf->hist_date[t - 1])))
      return xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
  return XM_OK;
}

/* The stressed period's keys, checked together (METHODOLOGY.md section 1). */
static xm_status xm__stressed_keys(xm_ctx *ctx, const xm_config *cfg) {
  const char *lo = cfg->apc.stressed_start, *hi = cfg->apc.stressed_end;
  double w = cfg->apc.stressed_weight;
  if (!lo[0] != !hi[0])
    return xm__fail(ctx, XM_ECONFIG,
                    "apc.stressed_start = '%s', apc.stressed_end = '%s': the stressed period "
                    "needs both dates, or neither",
                    lo, hi);
  if (w > 0.0 && !lo[0])
    return xm__fail(ctx, XM_ECONFIG,
                    "apc.stressed_weight = %g needs a stressed period: set apc.stressed_start and "
                    "apc.stressed_end",
                    w);
  if (w > 0.0 && !cfg->historical.enabled)
    return xm__fail(ctx, XM_ECONFIG,
                    "apc.stressed_weight = %g blends the stressed period into the historical "
                    "set, but historical.enabled = false",
                    w);
  return XM_OK;
}

xm_status xm__sets_build(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                         const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                         xm__sets *out, char *notes, size_t cap) {
  memset(out, 0, sizeof *out);
  out->sp = -1;
  xm_run_opts o = {0, 0, NULL, NULL, 0, 0, 0, 0, NULL};
  if (opts)
    o = *opts;
  xm_status st = XM_OK;
  int64_t *fcol = out->fcol = malloc((size_t)(pf->n_factors + 1) * sizeof *fcol);
  int64_t *used = out->used = malloc((size_t)(pf->n_factors + 1) * sizeof *used);
  int64_t *hcol = NULL; /* the history column of each shock column */
  int64_t *scol = malloc((size_t)(pf->n_factors + 1) * sizeof *scol); /* a set's column */
  xm__posref *held = NULL;
  int64_t n_held = 0;
  double *filtered = NULL, *sigma = NULL;
  xm__set *sets = NULL;
  int64_t K = 0, x = 0;
  char err[1024] = "";
  if (!fcol || !used || !scol) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  /* The factors the run moves, in portfolio order (METHODOLOGY.md section 1):
   * underlyings, vol factors and the /fx factors of the settlement
   * currencies of the instruments held (a non-zero net quantity), the /fx
   * factors of the accounts' currencies. */
  for (int64_t f = 0; f < pf->n_factors; f++)
    fcol[f] = -1;
  for (int64_t r = 0; r < pf->n_instruments + pf->n_accounts; r++) {
    int64_t c = r < pf->n_instruments ? xm__inst_fx(pf, r) : xm__acct_fx(pf, r - pf->n_instruments);
    if (c == -2) {
      const char *cur = r < pf->n_instruments ? pf->inst_currency[r]
                                              : pf->account_currency[r - pf->n_instruments];
      st = xm__fail(
          ctx, XM_EFORMAT,
          "%s: /%s/currency[%lld] = '%s': neither the reporting currency %s nor in /fx",
          pf->path ? pf->path : "portfolio", r < pf->n_instruments ? "instruments" : "accounts",
          (long long)(r < pf->n_instruments ? r : r - pf->n_instruments), cur, pf->currency);
      goto cleanup;
    }
    if (c >= 0 && r >= pf->n_instruments)
      fcol[pf->fx_factor[c]] = 0;
  }
  if ((st = xm__net_positions(ctx, pf, &held, &n_held)) != XM_OK)
    goto cleanup;
  for (int64_t p = 0; p < n_held; p++) {
    int32_t i = held[p].inst;
    int64_t c = xm__inst_fx(pf, i);
    fcol[pf->inst_underlying[i]] = 0;
    if (pf->inst_vol_factor[i] >= 0 && XM_TYPE_IS_OPTION(pf->inst_type[i]))
      fcol[pf->inst_vol_factor[i]] = 0;
    if (c >= 0)
      fcol[pf->fx_factor[c]] = 0;
  }
  int64_t F = 0;
  for (int64_t f = 0; f < pf->n_factors; f++)
    if (fcol[f] == 0) {
      used[F] = f;
      fcol[f] = F++;
    }
  out->F = F;

  /* The sets, in run order. */
  int hist = cfg->historical.enabled, mc = cfg->montecarlo.enabled;
  int stressed = mc && cfg->montecarlo.correlation_stress > 0.0;
  int sp = cfg->apc.stressed_start[0] != '\0';
  if ((st = xm__stressed_keys(ctx, cfg)) != XM_OK)
    goto cleanup;
  K = (hist ? 1 : 0) + (mc ? 1 : 0) + (stressed ? 1 : 0) + sp + sf->n_sets;
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
    double per = 48.0 + 8.0 * (double)F * (ctx->be->host_memory ? 2 : 0) +
                 (o.save_scenarios ? 8.0 * (double)F : 0.0) +
                 (o.save_pnl && !o.pnl_dir ? 4.0 * (double)pf->n_accounts : 0.0);
    double S_all = (hist + sp) * (double)sf->n_days +
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
                    ctx->be->host_memory ? ", shocks" : "",
                    o.save_scenarios ? ", --save-scenarios" : "",
                    o.save_pnl && !o.pnl_dir ? ", --save-pnl" : "", (unsigned long long)have);
      goto cleanup;
    }
  }
  sets = calloc((size_t)K, sizeof *sets);
  out->set = sets;
  if (!sets) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  out->K = K;
  x = 0;
  if (hist || mc || sp) {
    if (sf->n_days == 0) {
      st = xm__fail(ctx, XM_EFORMAT,
                    "%s: /history is missing, but the historical, Monte Carlo or stressed-period "
                    "set is enabled",
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
    hcol = out->hcol = malloc((size_t)(F + 1) * sizeof *hcol);
    if (!hcol) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    if ((st = xm__match(ctx, sf->hist_factor, sf->n_hfactors, pf, used, F, hcol)) != XM_OK)
      goto cleanup;
    for (int64_t f = 0; f < F; f++) {
      if (hcol[f] < 0) {
        st = xm__fail(ctx, XM_EFORMAT,
                      "%s: /history/factor has no column '%s', which positions of %s use "
                      "(needed by the historical, Monte Carlo and stressed-period sets)",
                      sf->path ? sf->path : "scenarios", pf->factor_name[used[f]],
                      pf->path ? pf->path : "the portfolio");
        goto cleanup;
      }
    }
    double *hx = NULL;
    int64_t S = 0, W = 0;
    if (hist || mc) {
      st = xm__historical_set(sf, hcol, F, cfg, &hx, &S, &filtered, &W, err, sizeof err);
      if (st != XM_OK) {
        xm__fail(ctx, st, "%s", err);
        goto cleanup;
      }
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
      xm__second_moment(W, F, filtered, sigma);
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
        st = xm__cholesky_jitter(s->chol, F, &delta);
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
          xm__note(notes, cap, "%s: added %.3g * I to the covariance to make it positive definite",
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
    if (sp) {
      out->sp = x;
      out->sp_w = cfg->apc.stressed_weight;
      if ((st = xm__stressed_set(ctx, sf, hcol, F, cfg, &sets[x++])) != XM_OK)
        goto cleanup;
      /* a backtest day before the period: it measures 0 (combine) */
      if (sets[x - 1].S == 0 && !(flags & XM__SETS_BACKTEST)) {
        st = xm__fail(ctx, XM_ECONFIG,
                      "apc.stressed_start = '%s', apc.stressed_end = '%s': no window of "
                      "horizon_days = %d in %s's /history ends in that range (%s .. %s)",
                      cfg->apc.stressed_start, cfg->apc.stressed_end, cfg->horizon_days,
                      sf->path ? sf->path : "the scenario file", sf->hist_date[0],
                      sf->hist_date[sf->n_days - 1]);
        goto cleanup;
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
    if ((st = xm__match(ctx, rs->factor, rs->n_factors, pf, used, F, scol)) != XM_OK)
      goto cleanup;
    for (int64_t f = 0; f < F; f++) {
      int64_t c = scol[f];
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
      xm__note(notes, cap, "set %s does not move %d factor%s the book uses (zero shock): %s%s",
               rs->name, n_missing, n_missing > 1 ? "s" : "", missing,
               n_missing > 8 ? ", ..." : "");
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
  for (x = 0; x < K; x++)
    out->bytes += (uint64_t)(sets[x].X ? sets[x].S * F * 8 : 0) +
                  (uint64_t)(sets[x].chol ? F * F * 8 : 0) +
                  (uint64_t)(sets[x].w ? sets[x].S * 8 : 0);
cleanup:
  free(held);
  free(sigma);
  free(filtered);
  free(scol);
  return st;
}
