/* Assembles the results file (FORMAT.md section 3) from a run: the one place
 * that maps an xm_run_result onto the writer's xm_results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xm_io.h"

xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag) {
  if (!path || !pf || !cfg || !res || !meta)
    return XM_EINVAL;
  xm_status st = XM_ENOMEM;
  char psha[65] = "", ssha[65] = "", created[32] = "";
  char *cfg_text = xm_config_to_ini(cfg);
  char **set_names = calloc((size_t)res->K + 1, sizeof *set_names);
  xm_results_set *rsets = calloc((size_t)res->K + 1, sizeof *rsets);
  if (!cfg_text || !set_names || !rsets)
    goto cleanup;
  xm_file_sha256(meta->portfolio, psha);
  xm_file_sha256(meta->scenarios, ssha);
  if (meta->created_utc) {
    snprintf(created, sizeof created, "%s", meta->created_utc);
  } else {
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  }
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
  rr.software_version = XM_VERSION_STRING;
  rr.created_utc = created;
  rr.portfolio = meta->portfolio;
  rr.scenarios = meta->scenarios;
  rr.portfolio_sha256 = psha;
  rr.scenarios_sha256 = ssha;
  rr.config = cfg_text;
  rr.device = meta->device;
  rr.precision = cfg->precision == XM_SINGLE ? "single" : "double";
  rr.seed = cfg->montecarlo.seed;
  rr.elapsed_s = meta->elapsed_s;
  rr.n_accounts = res->A;
  rr.n_silos = res->G;
  rr.n_sets = res->K;
  rr.reporting_currency = pf->currency;
  rr.account = pf->account_id;
  rr.account_currency = pf->account_currency; /* NULL: every account in the reporting one */
  rr.silo = pf->silo_name;
  rr.set = set_names;
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
  const char *inputs[2] = {meta->portfolio, meta->scenarios};
  char why[1024];
  if ((st = xm_output_check(path, inputs, 2, why, sizeof why)) != XM_OK) {
    xm_diag_add(diag, "%s", why);
    goto cleanup;
  }
  st = xm_results_write(path, &rr, diag);
cleanup:
  free(rsets);
  free(set_names);
  free(cfg_text);
  return st;
}
