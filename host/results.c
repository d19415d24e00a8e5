/* Assembles the output files of a run from its result: the one place that
 * maps an xm_run_result onto the writer's xm_results (FORMAT.md section 3)
 * and an xm_backtest_result onto its xm_backtest_file (section 4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xm_io.h"
#ifdef XM_WITH_MPI
#include <mpi.h>
#endif

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

/* io's reader of a set's losses kept on disk (xm_run_opts.pnl_dir). */
static xm_status xm__pnl_block(const void *res, int64_t x, int64_t s0, int64_t ns, int64_t a0,
                               int64_t na, float *out) {
  return xm_run_pnl_read(res, x, s0, ns, a0, na, out);
}

/* The writer's view of res (its arrays lent, not copied): *rr, with the set
 * names and sets in names[] and rsets[] (the caller frees both; they are
 * allocated even on failure). head: the root attributes and dimensions too
 * (xm__head_fill, which checks path), else only the sets. */
static xm_status xm__results_of(xm_results *rr, xm__head_text *text, char ***names,
                                xm_results_set **rsets, const char *path, const xm_portfolio *pf,
                                const xm_config *cfg, const xm_run_result *res,
                                const xm_run_meta *meta, int head, xm_diag *diag) {
  memset(rr, 0, sizeof *rr);
  *names = calloc((size_t)res->K + 1, sizeof **names);
  *rsets = calloc((size_t)res->K + 1, sizeof **rsets);
  if (!*names || !*rsets)
    return XM_ENOMEM;
  for (int64_t x = 0; x < res->K; x++) {
    xm_results_set *rs = &(*rsets)[x];
    (*names)[x] = res->sets[x].name;
    rs->name = res->sets[x].name;
    rs->n_scenarios = res->sets[x].S;
    rs->label = res->sets[x].labels;
    rs->pnl = res->sets[x].pnl;
    if (!rs->pnl && res->pnl_spool) { /* on disk: read back in blocks */
      rs->pnl_read = xm__pnl_block;
      rs->pnl_arg = res;
      rs->pnl_set = x;
    }
    rs->shock = res->sets[x].shock;
    rs->n_factors = res->F;
    rs->factor = res->factor;
  }
  rr->sets = *rsets;
  rr->head.n_sets = res->K;
  if (!head)
    return XM_OK;
  xm_status st = xm__head_fill(&rr->head, text, path, pf, cfg, meta, *names, res->K, diag);
  if (st != XM_OK)
    return st;
  rr->requirement = res->requirement;
  rr->unified = res->unified;
  rr->siloed = res->siloed;
  rr->diversification = res->diversification;
  rr->minimum = res->minimum;
  rr->by_set = res->by_set;
  rr->by_silo = res->by_silo;
  rr->attribution = res->attribution;
  rr->binding_set = res->binding;
  rr->liquidity = res->liquidity;
  rr->liquidity_by_silo = res->liquidity_by_silo;
  rr->requirement_by_silo = res->requirement_by_silo;
  rr->hedge_credit = res->hedge_credit;
  rr->minimum_binds = res->minimum_binds;
  rr->collateral_value = res->collateral_value;
  rr->collateral = res->collateral;
  rr->excess = res->excess;
  rr->call = res->call;
  rr->call_siloed = res->call_siloed;
  return XM_OK;
}

xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag) {
  if (!path || !pf || !cfg || !res || !meta || res->A != pf->n_accounts || res->G != pf->n_silos)
    return XM_EINVAL;
  xm__head_text text = {.config = NULL};
  char **names = NULL;
  xm_results_set *rsets = NULL;
  xm_results rr;
  xm_status st = xm__results_of(&rr, &text, &names, &rsets, path, pf, cfg, res, meta, 1, diag);
  if (st == XM_OK)
    st = xm_results_write(path, &rr, diag);
  xm__head_free(&text);
  free(rsets);
  free(names);
  return st;
}

#ifdef XM_WITH_MPI
/* The communicator behind mpi_comm (an MPI_Comm *) and this process's rank
 * in it: XM_OK, or XM_EINVAL with a message (none given, MPI not started). */
static xm_status xm__comm_of(const char *path, const void *mpi_comm, MPI_Comm *comm, int *rank,
                             xm_diag *diag) {
  int inited = 0;
  if (!mpi_comm || MPI_Initialized(&inited) != MPI_SUCCESS || !inited) {
    xm_diag_add(diag, "%s: %s", path ? path : "(no path)",
                mpi_comm ? "MPI is not initialised (MPI_Init)" : "no MPI communicator");
    return XM_EINVAL;
  }
  *comm = *(const MPI_Comm *)mpi_comm;
  MPI_Comm_rank(*comm, rank);
  return XM_OK;
}
#endif

xm_status xm_run_result_write_ranks(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                    const xm_run_result *res, const xm_run_meta *meta,
                                    int64_t pnl_begin, int64_t pnl_count, const void *mpi_comm,
                                    xm_diag *diag) {
#ifdef XM_WITH_MPI
  MPI_Comm comm;
  int rank = 0;
  if (xm__comm_of(path, mpi_comm, &comm, &rank, diag) != XM_OK)
    return XM_EINVAL;
  xm_status st = XM_OK;
  if (!path || !pf || !cfg || !res || !meta || res->G != pf->n_silos ||
      (rank == 0 && res->A != pf->n_accounts))
    st = XM_EINVAL;
  else if (pnl_begin < 0 || pnl_count < 0 || pnl_begin + pnl_count > pf->n_accounts) {
    xm_diag_add(diag, "%s: this rank's accounts [%lld, %lld) are not the book's (0 .. %lld)", path,
                (long long)pnl_begin, (long long)(pnl_begin + pnl_count),
                (long long)pf->n_accounts);
    st = XM_EINVAL;
  }
  xm__head_text text = {.config = NULL};
  char **names = NULL;
  xm_results_set *rsets = NULL;
  xm_results rr;
  memset(&rr, 0, sizeof rr);
  if (st == XM_OK)
    st = xm__results_of(&rr, &text, &names, &rsets, path, pf, cfg, res, meta, rank == 0, diag);
  rr.head.n_accounts = pf ? pf->n_accounts : 0;
  st = xm_results_write_mpi(path, &rr, st, pnl_begin, pnl_count, comm, diag);
  xm__head_free(&text);
  free(rsets);
  free(names);
  return st;
#else
  (void)path, (void)pf, (void)cfg, (void)res, (void)meta, (void)pnl_begin, (void)pnl_count;
  (void)mpi_comm;
  xm_diag_add(diag, "this libxmargin was built without MPI (XM_WITH_MPI=OFF)");
  return XM_EUNSUPPORTED;
#endif
}

/* The writer's view of a backtest result (arrays lent): *bf, its sets in
 * *sets (the caller frees them). head: the root attributes, dimensions and
 * series too (xm__head_fill, which checks path), else only head.set and the
 * sets. */
static xm_status xm__backtest_of(xm_backtest_file *bf, xm__head_text *text,
                                 xm_backtest_file_set **sets, const char *path,
                                 const xm_portfolio *pf, const xm_config *cfg,
                                 const xm_backtest_result *res, const xm_run_meta *meta, int head,
                                 xm_diag *diag) {
  memset(bf, 0, sizeof *bf);
  *sets = NULL;
  /* --save-scenarios: each set's shocks of every day (shock NULL: not saved) */
  if (res->shock && res->K > 0) {
    if (!(*sets = calloc((size_t)res->K, sizeof **sets)))
      return XM_ENOMEM;
    for (int64_t k = 0; k < res->K; k++) {
      (*sets)[k].n_scenarios = res->shock_S ? res->shock_S[k] : 0;
      (*sets)[k].n_factors = res->F;
      (*sets)[k].factor = res->factor;
      (*sets)[k].shock = res->shock[k];
      (*sets)[k].delta = res->delta ? res->delta[k] : NULL;
    }
    bf->sets = *sets;
  }
  bf->head.n_sets = res->K;
  bf->head.set = res->set;
  if (!head)
    return XM_OK;
  xm_status st = xm__head_fill(&bf->head, text, path, pf, cfg, meta, res->set, res->K, diag);
  if (st != XM_OK)
    return st;
  bf->n_days = res->N;
  bf->n_tests = res->n_tests;
  bf->target_coverage = cfg->backtest.coverage;
  bf->apc_window = cfg->backtest.apc_window;
  bf->day = res->day;
  bf->realised_end = res->realised_end;
  bf->test_day = res->test_day;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    bf->margin[m] = res->margin[m];
    bf->total_margin[m] = res->total_margin[m];
    bf->stats[m] = res->stats[m];
  }
  bf->realised = res->realised;
  bf->silo_margin = res->silo_margin;
  bf->realised_by_silo = res->realised_by_silo;
  bf->binding = res->binding;
  bf->to_reporting = res->to_reporting;
  bf->total_realised = res->total_realised;
  bf->silo_stats = res->silo_stats;
  bf->total_stats = res->total_stats;
  return XM_OK;
}

xm_status xm_backtest_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                   const xm_backtest_result *res, const xm_run_meta *meta,
                                   xm_diag *diag) {
  if (!path || !pf || !cfg || !res || !meta || res->A != pf->n_accounts || res->G != pf->n_silos)
    return XM_EINVAL;
  xm__head_text text = {.config = NULL};
  xm_backtest_file_set *sets = NULL;
  xm_backtest_file bf;
  xm_status st = xm__backtest_of(&bf, &text, &sets, path, pf, cfg, res, meta, 1, diag);
  if (st == XM_OK)
    st = xm_backtest_write(path, &bf, diag);
  free(sets);
  xm__head_free(&text);
  return st;
}

xm_status xm_backtest_result_write_ranks(const char *path, const xm_portfolio *pf,
                                         const xm_config *cfg, const xm_backtest_result *res,
                                         const xm_run_meta *meta, int64_t day_begin,
                                         int64_t day_end, const void *mpi_comm, xm_diag *diag) {
#ifdef XM_WITH_MPI
  MPI_Comm comm;
  int rank = 0;
  if (xm__comm_of(path, mpi_comm, &comm, &rank, diag) != XM_OK)
    return XM_EINVAL;
  xm_status st = XM_OK;
  if (!path || !pf || !cfg || !res || !meta || res->A != pf->n_accounts || res->G != pf->n_silos)
    st = XM_EINVAL;
  else if (day_begin < 0 || day_end < day_begin || day_end > res->N) {
    xm_diag_add(diag, "%s: this rank's days [%lld, %lld) are not the backtest's (0 .. %lld)", path,
                (long long)day_begin, (long long)day_end, (long long)res->N);
    st = XM_EINVAL;
  }
  xm__head_text text = {.config = NULL};
  xm_backtest_file_set *sets = NULL;
  xm_backtest_file bf;
  memset(&bf, 0, sizeof bf);
  if (st == XM_OK)
    st = xm__backtest_of(&bf, &text, &sets, path, pf, cfg, res, meta, rank == 0, diag);
  st = xm_backtest_write_mpi(path, &bf, st, day_begin, day_end, comm, diag);
  free(sets);
  xm__head_free(&text);
  return st;
#else
  (void)path, (void)pf, (void)cfg, (void)res, (void)meta, (void)day_begin, (void)day_end;
  (void)mpi_comm;
  xm_diag_add(diag, "this libxmargin was built without MPI (XM_WITH_MPI=OFF)");
  return XM_EUNSUPPORTED;
#endif
}
