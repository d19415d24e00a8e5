/* Collateral and margin calls (METHODOLOGY.md section 6): the holdings as
 * positions when they are priced inside the scenarios (collateral.method =
 * scenario), and, after a run, each account's collateral value, its value
 * after haircuts and limits, the pools' excess and the calls. The holdings'
 * values are today's (per account, O(H)): the host computes them for every
 * backend. Owns nothing past the arrays it hands back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"

/* The arrays a scenario book adds to the portfolio's (one allocation each). */
typedef struct xm__coll_book {
  int32_t *type, *silo, *und, *vf, *call, *pacct, *pinst;
  double *strike, *expiry, *vol, *rate, *div, *mult, *fund, *pqty;
  char **ids, **cur; /* ids: pf's I ids, then the n_new rows' own (owned) */
  int64_t i0, n_new;
} xm__coll_book;

void xm__collateral_book_free(void *owned) {
  xm__coll_book *b = owned;
  if (!b)
    return;
  for (int64_t j = 0; b->ids && j < b->n_new; j++)
    free(b->ids[b->i0 + j]);
  void *arr[] = {b->type,  b->silo,   b->und,    b->vf,  b->call, b->pacct,
                 b->pinst, b->strike, b->expiry, b->vol, b->rate, b->div,
                 b->mult,  b->fund,   b->pqty,   b->ids, b->cur};
  for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)
    free(arr[i]);
  free(b);
}

/* Copies n old entries of size sz and leaves room for extra more. */
static void *xm__grow(const void *old, int64_t n, int64_t extra, size_t sz) {
  char *p = malloc((size_t)(n + extra + 1) * sz);
  if (p && old && n > 0)
    memcpy(p, old, (size_t)n * sz);
  return p;
}

xm_status xm__collateral_book(xm_ctx *ctx, const xm_portfolio *pf, xm_portfolio *out,
                              void **owned) {
  *out = *pf;
  *owned = NULL;
  const char *path = pf->path ? pf->path : "portfolio";
  int64_t H = pf->n_collateral, ni = pf->n_instruments, np = pf->n_positions;
  for (int64_t j = 0; j < H; j++)
    if (pf->coll_silo[j] < 0)
      return xm__fail(ctx, XM_EFORMAT,
                      "%s: /collateral/silo[%lld] = %d: with collateral.method = scenario every "
                      "holding must be posted to a silo (its risk is carried in that silo's "
                      "losses; METHODOLOGY.md section 6)",
                      path, (long long)j, pf->coll_silo[j]);
  xm__coll_book *b = calloc(1, sizeof *b);
  if (!b)
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  *owned = b;
  b->type = xm__grow(pf->inst_type, ni, H, sizeof(int32_t));
  b->silo = xm__grow(pf->inst_silo, ni, H, sizeof(int32_t));
  b->und = xm__grow(pf->inst_underlying, ni, H, sizeof(int32_t));
  b->vf = xm__grow(pf->inst_vol_factor, ni, H, sizeof(int32_t));
  b->call = xm__grow(pf->inst_call, ni, H, sizeof(int32_t));
  b->strike = xm__grow(pf->inst_strike, ni, H, sizeof(double));
  b->expiry = xm__grow(pf->inst_expiry, ni, H, sizeof(double));
  b->vol = xm__grow(pf->inst_implied_vol, ni, H, sizeof(double));
  b->rate = xm__grow(pf->inst_rate, ni, H, sizeof(double));
  b->div = xm__grow(pf->inst_dividend_yield, ni, H, sizeof(double));
  b->mult = xm__grow(pf->inst_multiplier, ni, H, sizeof(double));
  b->fund = calloc((size_t)(ni + H + 1), sizeof(double));
  b->cur = calloc((size_t)(ni + H + 1), sizeof(char *));
  b->ids = xm__grow(pf->inst_id, ni, H, sizeof(char *));
  b->i0 = ni;
  b->pacct = xm__grow(pf->pos_account, np, H, sizeof(int32_t));
  b->pinst = xm__grow(pf->pos_instrument, np, H, sizeof(int32_t));
  b->pqty = xm__grow(pf->pos_quantity, np, H, sizeof(double));
  if (!b->type || !b->silo || !b->und || !b->vf || !b->call || !b->strike || !b->expiry ||
      !b->vol || !b->rate || !b->div || !b->mult || !b->fund || !b->cur || !b->ids || !b->pacct ||
      !b->pinst || !b->pqty)
    return xm__fail(ctx, XM_ENOMEM, "out of memory for %lld holdings", (long long)H);
  for (int64_t i = 0; i < ni; i++) {
    b->fund[i] = pf->inst_funding_rate ? pf->inst_funding_rate[i] : 0.0;
    b->cur[i] = pf->inst_currency ? pf->inst_currency[i] : NULL;
  }
  int64_t n = 0; /* holdings with risk */
  for (int64_t j = 0; j < H; j++) {
    int32_t a = pf->coll_account[j], f = pf->coll_factor[j];
    const char *cj = pf->coll_currency && pf->coll_currency[j] ? pf->coll_currency[j] : NULL;
    int64_t c = cj ? xm__fx_row(pf, cj) : -1, ab = xm__acct_fx(pf, a);
    int64_t i = ni + n;
    int32_t type = XM_SPOT, und = f;
    double qty = pf->coll_quantity[j];
    const char *settle = cj;
    if (f < 0) {
      if (c == ab)
        continue; /* cash in the account's own currency: no risk */
      if (c >= 0) {
        und = pf->fx_factor[c]; /* one unit of c is worth its /fx factor in the reporting one */
        settle = NULL;
      } else {
        /* reporting-currency cash in an account of currency b: worth 1 / X_b
         * units of b, a short inverse perpetual on X_b settled in b */
        type = XM_INVERSE_PERPETUAL;
        und = pf->fx_factor[ab];
        settle = pf->account_currency[a];
        qty = -qty;
      }
    }
    b->type[i] = type;
    b->silo[i] = pf->coll_silo[j];
    b->und[i] = und;
    b->vf[i] = -1;
    b->call[i] = 0;
    b->strike[i] = b->expiry[i] = b->vol[i] = b->rate[i] = b->div[i] = 0.0;
    b->mult[i] = 1.0;
    b->fund[i] = 0.0;
    b->cur[i] = (char *)settle;
    char name[64];
    snprintf(name, sizeof name, "/collateral[%lld]", (long long)j);
    if (!(b->ids[i] = xm__strdup(name)))
      return xm__fail(ctx, XM_ENOMEM, "out of memory");
    b->n_new = n + 1;
    b->pacct[np + n] = a;
    b->pinst[np + n] = (int32_t)i;
    b->pqty[np + n] = qty;
    n++;
  }
  out->n_instruments = ni + n;
  out->inst_id = b->ids;
  out->inst_type = b->type;
  out->inst_silo = b->silo;
  out->inst_underlying = b->und;
  out->inst_vol_factor = b->vf;
  out->inst_call = b->call;
  out->inst_strike = b->strike;
  out->inst_expiry = b->expiry;
  out->inst_implied_vol = b->vol;
  out->inst_rate = b->rate;
  out->inst_dividend_yield = b->div;
  out->inst_multiplier = b->mult;
  out->inst_funding_rate = b->fund;
  out->inst_currency = b->cur;
  out->n_positions = np + n;
  out->pos_account = b->pacct;
  out->pos_instrument = b->pinst;
  out->pos_quantity = b->pqty;
  return XM_OK;
}

/* Holdings sorted by (account, factor), for the concentration caps. */
static _Thread_local const xm_portfolio *xm__coll_pf;
static int xm__cmp_holding(const void *pa, const void *pb) {
  const xm_portfolio *pf = xm__coll_pf;
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  if (pf->coll_account[a] != pf->coll_account[b])
    return pf->coll_account[a] < pf->coll_account[b] ? -1 : 1;
  if (pf->coll_factor[a] != pf->coll_factor[b])
    return pf->coll_factor[a] < pf->coll_factor[b] ? -1 : 1;
  return a < b ? -1 : (a > b);
}

xm_status xm__collateral_results(xm_ctx *ctx, const xm_portfolio *pf, int any, const xm_config *cfg,
                                 xm_run_result *res) {
  int64_t H = pf->n_collateral > 0 && pf->coll_account ? pf->n_collateral : 0;
  int64_t A = res->A, G = res->G;
  if (!any)
    return XM_OK;
  int scen = cfg->collateral.method == XM_COLLATERAL_SCENARIO;
  double *cv = malloc((size_t)(H + 1) * sizeof *cv), *acv = malloc((size_t)(H + 1) * sizeof *acv);
  double *pool = calloc((size_t)(A * G + 1), sizeof *pool); /* each silo's ACV */
  int64_t *ord = malloc((size_t)(H + 1) * sizeof *ord);
  double **outs[] = {&res->collateral_value, &res->collateral, &res->excess, &res->call,
                     &res->call_siloed};
  int ok = cv && acv && pool && ord;
  for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++)
    ok = ok && (*outs[k] = calloc((size_t)(A + 1), sizeof(double)));
  if (!ok) {
    free(cv);
    free(acv);
    free(pool);
    free(ord);
    return xm__fail(ctx, XM_ENOMEM, "collateral of %lld holdings", (long long)H);
  }
  /* CV_j = q P X_c / X_b, today's */
  for (int64_t j = 0; j < H; j++) {
    int32_t a = pf->coll_account[j], f = pf->coll_factor[j];
    const char *cj = pf->coll_currency ? pf->coll_currency[j] : NULL;
    double xc = xm__fx_level(pf, cj ? xm__fx_row(pf, cj) : -1);
    double xb = xm__fx_level(pf, xm__acct_fx(pf, a));
    double p = f >= 0 ? pf->factor_level[f] : 1.0;
    cv[j] = pf->coll_quantity[j] * p * (xc / xb);
    acv[j] = cv[j];
    ord[j] = j;
  }
  /* schedule: haircut and the account's cap on each factor, pro rata */
  if (!scen) {
    xm__coll_pf = pf;
    qsort(ord, (size_t)H, sizeof *ord, xm__cmp_holding);
    for (int64_t t0 = 0, t1; t0 < H; t0 = t1) {
      int32_t a = pf->coll_account[ord[t0]], f = pf->coll_factor[ord[t0]];
      double sum = 0.0;
      for (t1 = t0; t1 < H && pf->coll_account[ord[t1]] == a && pf->coll_factor[ord[t1]] == f; t1++)
        sum += cv[ord[t1]];
      if (f < 0)
        continue; /* cash: no haircut, no cap */
      double lim = pf->factor_collateral_limit ? pf->factor_collateral_limit[f] : 0.0;
      double h = pf->factor_haircut ? pf->factor_haircut[f] : 0.0;
      double xb = xm__fx_level(pf, xm__acct_fx(pf, a));
      double kappa = lim > 0.0 && sum > 0.0 && lim / xb < sum ? (lim / xb) / sum : 1.0;
      for (int64_t t = t0; t < t1; t++)
        acv[ord[t]] = cv[ord[t]] * kappa * (1.0 - h);
    }
  }
  double *free_of_silo = res->excess; /* holdings of no silo, until the excess is known */
  for (int64_t j = 0; j < H; j++) {
    int32_t a = pf->coll_account[j], g = pf->coll_silo[j];
    res->collateral_value[a] += cv[j];
    res->collateral[a] += acv[j];
    if (g >= 0)
      pool[a * G + g] += acv[j];
    else
      free_of_silo[a] += acv[j];
  }
  for (int64_t a = 0; a < A; a++) {
    double call_s = 0.0, esum = 0.0;
    for (int64_t g = 0; g < G; g++) {
      double e = pool[a * G + g] - res->requirement_by_silo[a * G + g];
      call_s += e < 0.0 ? -e : 0.0;
      esum += e;
    }
    res->call_siloed[a] = call_s;
    if (pf->account_cross_margin[a]) {
      double e = res->collateral[a] - res->requirement[a];
      res->excess[a] = e;
      res->call[a] = e < 0.0 ? -e : 0.0;
    } else {
      res->call[a] = call_s;
      res->excess[a] = call_s > 0.0 ? -call_s : esum + free_of_silo[a];
    }
  }
  free(cv);
  free(acv);
  free(pool);
  free(ord);
  return XM_OK;
}
