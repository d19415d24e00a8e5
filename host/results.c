/* Assembles the output files of a run from its result: the one place that
 * maps an xm_run_result onto the writer's xm_results (FORMAT.md section 3)
 * and an xm_backtest_result onto its xm_backtest_file (section 4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xm_io.h"

/* What the head of a file points at besides the inputs: the hashes, the
 * time, the configuration's text (owned: xm__head_free). */
typedef struct xm__head_text {
  char psha[65], ssha[65], created[32];
  char *config;
} xm__head_text;

/* Fills *h (root attributes, /account, /silo, /set) for a run of cfg on pf
 * with the K sets set[] and the inputs of meta, and checks that path may
 * receive it (xm_output_check: never an input). XM_OK, XM_ENOMEM, or
 * XM_EINVAL with the reason in *diag. */
static xm_status xm__head_fill(xm_results_head *h, xm__head_text *t, const char *path,
                               const xm_portfolio *pf, const xm_config *cfg,
                               const xm_run_meta *meta, char *const *set, int64_t K,
                               xm_diag *diag) {
  memset(h, 0, sizeof *h);
  memset(t, 0, sizeof *t);
  if (!(t->config = xm_config_to_ini(cfg)))
    return XM_ENOMEM;
  xm_file_sha256(meta->portfolio, t->psha);
  xm_file_sha256(meta->scenarios, t->ssha);
  if (meta->created_utc) {
    snprintf(t->created, sizeof t->created, "%s", meta->created_utc);
  } else {
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(t->created, sizeof t->created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  }
  h->software_version = XM_VERSION_STRING;
  h->created_utc = t->created;
  h->portfolio = meta->portfolio;
  h->scenarios = meta->scenarios;
  h->portfolio_sha256 = t->psha;
  h->scenarios_sha256 = t->ssha;
  h->config = t->config;
  h->device = meta->device;
  h->precision = cfg->precision == XM_SINGLE ? "single" : "double";
  h->seed = cfg->montecarlo.seed;
  h->elapsed_s = meta->elapsed_s;
  h->valuation_date = pf->valuation_date;
  h->reporting_currency = pf->currency;
  h->n_accounts = pf->n_accounts;
  h->n_silos = pf->n_silos;
  h->n_sets = K;
  h->account = pf->account_id;
  h->account_currency = pf->account_currency; /* NULL: every account in the reporting one */
  h->silo = pf->silo_name;
  h->set = set;
  const char *inputs[2] = {meta->portfolio, meta->scenarios};
  char why[1024];
  xm_status st = xm_output_check(path, inputs, 2, why, sizeof why);
  if (st != XM_OK)
    xm_diag_add(diag, "%s", why);
  return st;
}

static void xm__head_free(xm__head_text *t) {
  free(t->config);
  t->config = NULL;
}

xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag) {
  if (!path || !pf || !cfg || !res || !meta || res->A != pf->n_accounts || res->G != pf->n_silos)
    return XM_EINVAL;
  xm_status st = XM_ENOMEM;
  xm__head_text text = {.config = NULL};
  char **set_names = calloc((size_t)res->K + 1, sizeof *set_names);
  xm_results_set *rsets = calloc((size_t)res->K + 1, sizeof *rsets);
  if (!set_names || !rsets)
    goto cleanup;
  for (int64_t x = 0; x < res->K; x++) {
    set_names[x] = res->sets[x].name;
    rsets[x].name = res->sets[x].name;
    rsets[x].n_scenarios = res->sets[x].S;
    rsets[x].label = res->sets[x].labels;
    rsets[x].pnl = res->sets[x].pnl;
    rsets[x].shock = res->sets[x].shock;
    rsets[x].n_factors = res->F;
    rsets[x].factor = res->factor;
  }
  xm_results rr;
  memset(&rr, 0, sizeof rr);
  if ((st = xm__head_fill(&rr.head, &text, path, pf, cfg, meta, set_names, res->K, diag)) != XM_OK)
    goto cleanup;
  rr.requirement = res->requirement;
  rr.unified = res->unified;
  rr.siloed = res->siloed;
  rr.diversification = res->diversification;
  rr.minimum = res->minimum;
  rr.by_set = res->by_set;
  rr.by_silo = res->by_silo;
  rr.attribution = res->attribution;
  rr.binding_set = res->binding;
  rr.liquidity = res->liquidity;
  rr.liquidity_by_silo = res->liquidity_by_silo;
  rr.requirement_by_silo = res->requirement_by_silo;
  rr.hedge_credit = res->hedge_credit;
  rr.minimum_binds = res->minimum_binds;
  rr.collateral_value = res->collateral_value;
  rr.collateral = res->collateral;
  rr.excess = res->excess;
  rr.call = res->call;
  rr.call_siloed = res->call_siloed;
  rr.sets = rsets;
  st = xm_results_write(path, &rr, diag);
cleanup:
  xm__head_free(&text);
  free(rsets);
  free(set_names);
  return st;
}

xm_status xm_backtest_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                   const xm_backtest_result *res, const xm_run_meta *meta,
                                   xm_diag *diag) {
  if (!path || !pf || !cfg || !res || !meta || res->A != pf->n_accounts || res->G != pf->n_silos)
    return XM_EINVAL;
  xm__head_text text = {.config = NULL};
  xm_backtest_file_set *sets = NULL;
  xm_backtest_file bf;
  memset(&bf, 0, sizeof bf);
  xm_status st = xm__head_fill(&bf.head, &text, path, pf, cfg, meta, res->set, res->K, diag);
  if (st != XM_OK)
    goto cleanup;
  bf.n_days = res->N;
  bf.n_tests = res->n_tests;
  bf.target_coverage = cfg->backtest.coverage;
  bf.apc_window = cfg->backtest.apc_window;
  bf.day = res->day;
  bf.realised_end = res->realised_end;
  bf.test_day = res->test_day;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    bf.margin[m] = res->margin[m];
    bf.total_margin[m] = res->total_margin[m];
    bf.stats[m] = res->stats[m];
  }
  bf.realised = res->realised;
  bf.silo_margin = res->silo_margin;
  bf.realised_by_silo = res->realised_by_silo;
  bf.binding = res->binding;
  bf.to_reporting = res->to_reporting;
  bf.total_realised = res->total_realised;
  bf.silo_stats = res->silo_stats;
  bf.total_stats = res->total_stats;
  /* --save-scenarios: each set's shocks of every day (shock NULL: not saved) */
  if (res->shock && res->K > 0) {
    st = XM_ENOMEM;
    if (!(sets = calloc((size_t)res->K, sizeof *sets)))
      goto cleanup;
    for (int64_t k = 0; k < res->K; k++) {
      sets[k].n_scenarios = res->shock_S ? res->shock_S[k] : 0;
      sets[k].n_factors = res->F;
      sets[k].factor = res->factor;
      sets[k].shock = res->shock[k];
      sets[k].delta = res->delta ? res->delta[k] : NULL;
    }
    bf.sets = sets;
  }
  st = xm_backtest_write(path, &bf, diag);
cleanup:
  free(sets);
  xm__head_free(&text);
  return st;
}
