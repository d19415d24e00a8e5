/* The engine: METHODOLOGY.md sections 1-4 on a context's backend.
 * Internal to libxmargin and its CLI. */
#ifndef XM_ENGINE_H
#define XM_ENGINE_H

#include "xm_io.h"
#include "xmargin.h"

/* Called after each (account block, set) is reduced: done of total steps, and
 * the set's name. From the calling thread; must be cheap. */
typedef void (*xm_progress_fn)(void *arg, int64_t done, int64_t total, const char *set);

typedef struct xm_engine_opts {
  int save_pnl;            /* keep each set's [S x A] account losses */
  int save_scenarios;      /* keep each set's shocks [S x F] */
  xm_progress_fn progress; /* NULL: none */
  void *progress_arg;
} xm_engine_opts;

typedef struct xm_run_set {
  char *name;
  int measure;
  double confidence;
  int64_t S, k;
  char **labels; /* [S] */
  double *shock; /* [S x F] when save_scenarios, else NULL */
  float *pnl;    /* [S x A] when save_pnl, else NULL */
} xm_run_set;

typedef struct xm_run_result {
  int64_t A, G, K, F;
  char **factor; /* [F] the factors of the shock rows (those positions use) */
  xm_run_set *sets;
  double *requirement, *unified, *siloed, *diversification, *minimum; /* [A] */
  double *by_set;                                                     /* [A x K] */
  double *by_silo;                                                    /* [A x G] */
  double *attribution;                                                /* [A x G] */
  int32_t *binding;                                                   /* [A] */
  double jitter[2]; /* delta added to Sigma / Sigma_kappa before Cholesky */
  int64_t n_blocks;
  double t_prepare, t_scenarios, t_evaluate;
  char notes[4096]; /* one line per remark (factors a set does not move, jitter) */
} xm_run_result;

/* Runs every set of the configuration on ctx. *out is filled and owned by
 * the caller (xm_run_result_free), also on failure. Errors: XM_EFORMAT /
 * XM_ECONFIG for inputs the methodology cannot use (a factor missing from the
 * history, history shorter than the horizon), XM_ENOTPD, XM_ERESOURCE... with
 * the detail in xm_ctx_last_error(ctx). */
xm_status xm_engine_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                        const xm_config *cfg, const xm_engine_opts *opts, xm_run_result *out);
void xm_run_result_free(xm_run_result *r);

/* The historical set (double, host): shocks [S x nf] for the history columns
 * col[0..nf), labels = dates. Exposed for tests. Returns XM_ECONFIG when the
 * history is shorter than the horizon. *filtered_out, when not NULL, receives
 * the W most recent filtered daily changes [W x nf] (caller frees). */
xm_status xm_historical_set(const xm_scenario_file *sf, const int64_t *col, int64_t nf,
                            const xm_config *cfg, double **shock, int64_t *S, double **filtered_out,
                            int64_t *W, char *err, size_t cap);

/* Lower Cholesky factor of a symmetric F x F matrix (row-major) in place,
 * with the jitter rule: the smallest delta = 1e-12 * max diag * 10^j, j = 0..6,
 * that makes it positive definite (0 if none is needed). XM_ENOTPD when none. */
xm_status xm_cholesky_jitter(double *A, int64_t F, double *delta);

/* What the results file records about a run besides its numbers. */
typedef struct xm_run_meta {
  const char *portfolio, *scenarios; /* input paths (hashed into the file) */
  const char *device;                /* backend, device and platform */
  const char *created_utc;           /* NULL: now */
  double elapsed_s;
} xm_run_meta;

/* Writes the results file of FORMAT.md section 3 for res atomically to path.
 * XM_ENOMEM, or the writer's status with its messages in *diag. */
xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag);

#endif
