/* The engine's modules (internal to libxmargin):
 *   host/scenarios.c  the scenario sets of a run (historical, Monte Carlo,
 *                     ready-made): shocks on the host, or the Monte Carlo
 *                     recipe (Cholesky factor, seed) the device draws from;
 *   host/plan.c       account blocks and scenario tiles that fit the memory
 *                     budget, and the block arrays the device gets;
 *   host/engine.c     the loop nest over them on a backend (xm_run).
 * Each is callable alone (tests/test_engine.c). */
#ifndef XM_ENGINE_H
#define XM_ENGINE_H

#include <string.h>

#include "xm_backend.h"
#include "xmargin.h"

/* ---- currencies (METHODOLOGY.md section 2.2) ---- */

/* The /fx row of currency cur: -1 for the reporting currency (and for NULL:
 * a column that is absent), -2 for a currency that is neither (validation
 * refuses it). */
static inline int64_t xm__fx_row(const xm_portfolio *pf, const char *cur) {
  if (!cur || !strcmp(cur, pf->currency))
    return -1;
  for (int64_t c = 0; c < pf->n_fx; c++)
    if (pf->fx_currency[c] && !strcmp(pf->fx_currency[c], cur))
      return c;
  return -2;
}
/* The settlement currency's /fx row of instrument i, the margin currency's of account a. */
static inline int64_t xm__inst_fx(const xm_portfolio *pf, int64_t i) {
  return pf->inst_currency ? xm__fx_row(pf, pf->inst_currency[i]) : -1;
}
static inline int64_t xm__acct_fx(const xm_portfolio *pf, int64_t a) {
  return pf->account_currency ? xm__fx_row(pf, pf->account_currency[a]) : -1;
}
/* X_c: today's value of one unit of the currency of /fx row c in the
 * reporting currency (1 for the reporting currency, c = -1). */
static inline double xm__fx_level(const xm_portfolio *pf, int64_t c) {
  return c >= 0 ? pf->factor_level[pf->fx_factor[c]] : 1.0;
}

/* ---- scenario sets ---- */

/* One scenario set of a run. */
typedef struct xm__set {
  char name[128];
  int measure; /* xm_measure */
  double confidence;
  int64_t S;
  int64_t k;      /* tail count for es/var */
  double *X;      /* [S x F] host shocks (NULL for Monte Carlo until kept) */
  double *w;      /* [S] weights, or NULL */
  char **labels;  /* [S] */
  int is_mc;      /* drawn by the backend: X = scale .* Z L^T */
  double *EX;     /* [S x F] exp(X) made before (a prepared what-if book), or NULL */
  double *chol;   /* [F x F] lower Cholesky factor (row-major), Monte Carlo only */
  int64_t s_base; /* its first scenario in the whole set (a part of it: xm__sets_part) */
} xm__set;

/* A set's tail in a streamed plan: its k, 1 for worst; and the doubles of
 * one account's tail record of it (kernels/xm_reduce.h). */
static inline int64_t xm__set_tk(const xm__set *s) {
  return s->measure == XM_MEASURE_WORST ? 1 : (s->k > 1 ? s->k : 1);
}

/* The sets of a run and the factor columns of their shock rows. */
typedef struct xm__sets {
  int64_t F;     /* factors in the shock rows: those positions use */
  int64_t *fcol; /* [n_factors] portfolio factor -> shock column, or -1 */
  int64_t *used; /* [F] shock column -> portfolio factor */
  int64_t *hcol; /* [F] shock column -> /history column (NULL when no set uses the history) */
  int64_t K;
  xm__set *set;     /* [K], in run order */
  int solo;         /* one set a group (host/plan.c): their X and EX lent as views */
  double jitter[2]; /* added to Sigma / Sigma_kappa before Cholesky */
  /* the stressed period (METHODOLOGY.md section 1): its set (of a day), or
   * -1, and apc.stressed_weight (> 0: blended into the historical set, 0) */
  int64_t sp;
  double sp_w;
  /* a backtest's batch: the sets of `days` days, day after day, combined
   * per day (0 or 1: a run). The last `shared` sets of day 0 are every
   * day's (the ready-made sets: the same shocks on the static book) and are
   * not repeated: day j > 0 holds only its (K - shared) / days own sets. */
  int64_t days, shared;
  uint64_t bytes; /* host memory they hold (shocks, Cholesky factors) */
} xm__sets;

/* Builds the sets of cfg for pf from sf (METHODOLOGY.md section 1), on the
 * host alone (ctx is only read, and takes the message): a backtest builds
 * the next batch's sets on a thread of its own. Remarks (jitter, factors a set
 * does not move) are appended to notes[cap]. XM_EFORMAT / XM_ECONFIG /
 * XM_ENOTPD with the detail in ctx. *out is owned by the caller
 * (xm__sets_free), also on failure. */
#define XM__SETS_BACKTEST 1u /* flags: a backtest day (an empty stressed period measures 0) */
xm_status xm__sets_build(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                         const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                         xm__sets *out, char *notes, size_t cap);
void xm__sets_free(xm__sets *s);

/* The historical set (double, host): shocks [S x nf] for the history columns
 * col[0..nf), labels = dates. XM_ECONFIG when the history is shorter than the
 * horizon. *filtered_out, when not NULL, receives the W most recent filtered
 * daily changes [W x nf] (caller frees). */
xm_status xm__historical_set(const xm_scenario_file *sf, const int64_t *col, int64_t nf,
                             const xm_config *cfg, double **shock, int64_t *S,
                             double **filtered_out, int64_t *W, char *err, size_t cap);

/* Lower Cholesky factor of a symmetric F x F matrix (row-major) in place,
 * with the jitter rule: the smallest delta = 1e-12 * max diag * 10^j, j = 0..6,
 * that makes it positive definite (0 if none is needed). XM_ENOTPD when none. */
xm_status xm__cholesky_jitter(double *A, int64_t F, double *delta);

/* ---- the plan ---- */

/* Host side of one account block: accounts a0 .. a0 + na and the
 * instruments they hold as rows (block-local: one per instrument and account
 * currency, ordered by revaluation class: rows cls[c] .. cls[c + 1] are of
 * class c, XM_CLASS_*). */
typedef struct xm__block {
  int64_t a0, na;
  int64_t n_inst, cls[XM_CLASS_COUNT + 1];
  double *instd;  /* [XM_ND x n_inst] */
  int *insti;     /* [XM_NI x n_inst] */
  int *pos_start; /* [na + 1] */
  int *pos_inst;  /* block-local instrument */
  int *pos_silo;
  double *pos_qty;
  int *cross;        /* [na] */
  int32_t *inst_row; /* [n_inst] the portfolio row of each block-local row's instrument */
  /* The liquidity add-on (host/liquidity.c; NULL when the plan has none):
   * insti with the columns renumbered to the rows' slots, the exposures of
   * each (account, component) (xm_liquidity_account), X_b of each account. */
  int *insti_s;                         /* [XM_NI x n_inst] */
  int *lq_start;                        /* [na x (G + 1) + 1] */
  int *lq_fac, *lq_cstart, *lq_contrib; /* [n_exp], [n_exp + 1], [n_contrib] */
  int64_t n_exp, n_contrib;
  double *xb; /* [na] */
} xm__block;

/* Sets x0 .. x1 (run order) whose scenarios are revalued, aggregated and
 * reduced together: their rows one after the other in one loss buffer, tiles
 * that cross from one set into the next, one reduce step for all of them
 * (a backtest batch's small sets of many days in a few launches). */
typedef struct xm__group {
  int64_t x0, x1;
  int64_t S;  /* their scenarios */
  int64_t tk; /* streamed: its sets' largest tail (1 for worst): its records' size */
} xm__group;

typedef struct xm__plan {
  int G;
  int64_t A, K, F;
  int64_t n_blocks;
  xm__block *blocks;
  int64_t max_na, max_inst, max_pos, max_S;
  int64_t rows; /* scenarios of a group at most (>= max_S): L's rows, unless streamed */
  /* Streamed (docs/engine.md): L holds `chunk` rows of a group at a time
   * (a multiple of the tile, or a group's last), each chunk's losses folded
   * into every set's running tails (tk entries: the largest k, 1 for worst)
   * that the reduce step measures (--save-pnl: each chunk's account rows
   * also go to the host); not in an incremental run, which reads or keeps
   * a group's rows. 0: L holds a group's rows. trec: the doubles
   * of an account's records in the largest group (members x XM_TREC(G, its tk)). */
  int64_t chunk, trec;
  int64_t n_groups; /* the sets with scenarios, grouped in run order */
  xm__group *groups;
  int64_t *row;     /* [K] a set's first row in its group */
  int64_t tile;     /* scenarios per revaluation tile (tiles run over a group's rows) */
  int resident;     /* 1: every set's shocks stay on the device for the run;
                       0: each tile's are made again per block (a tight budget) */
  uint64_t budget;  /* bytes the plan may use */
  uint64_t planned; /* bytes it does use (device buffers; on cpu all the run's) */
  uint64_t mc_temp; /* bytes of Monte Carlo temporaries allowed */
  /* The liquidity add-on: 1 when some factor of the shock rows has a
   * half_spread or an impact (else every LQ is 0 and nothing is computed);
   * fpar [3 x F]: half_spread, impact, adv by shock column. */
  int liquidity;
  double *fpar;
} xm__plan;

/* A position that counts (METHODOLOGY.md section 1, "held": a non-zero net
 * quantity): pf's rows of one (account, instrument) added in row order. */
typedef struct xm__posref {
  int32_t acct, silo, inst;
  int32_t cur; /* the account currency's /fx row + 1 (0: the reporting currency) */
  int64_t row; /* the first /positions row of the pair */
  double qty;  /* the net quantity, never 0 */
} xm__posref;

/* pf's positions netted, pairs that net to zero dropped, sorted by account,
 * silo, instrument: *out malloc'd [*n] (the caller frees it, also on
 * failure); XM_ENOMEM. The one definition of "held" for the sets, the plan
 * and the backtest. */
xm_status xm__net_positions(xm_ctx *ctx, const xm_portfolio *pf, xm__posref **out, int64_t *n);

/* Plans the run of sets over pf's accounts within ctx's memory budget
 * (xm__mem_budget): every buffer of the loop is counted (on the cpu backend
 * they are host memory); the inputs, the sets' host arrays and the results
 * are not. XM_ERESOURCE when even one account and one scenario do not fit.
 * It streams (chunk > 0) unless flags or xm_options.tuning.chunk < 0 say not.
 * *out owned by the caller (xm__plan_free). */
xm_status xm__plan_build(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets, int flags,
                         xm__plan *out);
#define XM__PLAN_PNL 1u  /* flags: L's account rows go to the host (--save-pnl) */
#define XM__PLAN_ROWS 2u /* L holds a group's rows (an incremental run reads or keeps them) */
void xm__plan_free(xm__plan *p);

/* ---- --save-pnl on disk (host/spool.c) ---- */

/* A nameless file in dir for K sets of S[x] x A float32 losses, sized
 * (XM_EIO, also when dir has not the room). */
xm_status xm__spool_open(xm_ctx *ctx, const char *dir, int64_t K, const int64_t *S, int64_t A,
                         xm_pnl_spool **out);
/* Scenarios [s0, s0 + ns) x accounts [a0, a0 + na) of set x from rows [ns x na]. */
xm_status xm__spool_put(xm_ctx *ctx, xm_pnl_spool *sp, int64_t x, int64_t s0, int64_t ns,
                        int64_t a0, int64_t na, const float *rows);
void xm__spool_close(xm_pnl_spool *sp); /* NULL: a no-op */

/* ---- the liquidity add-on (host/liquidity.c, METHODOLOGY.md section 4.1) ---- */

/* Whether pf's factors in the shock rows have a spread or an impact, and
 * their parameters by shock column into *fpar [3 x F] (malloc'd; NULL when
 * there is no add-on). */
xm_status xm__liquidity_params(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets,
                               double **fpar);
/* Fills block bk's liquidity arrays from its rows and positions (after
 * xm__fill_block); fpar as above. */
xm_status xm__liquidity_block(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets, int G,
                              const double *fpar, xm__block *bk);
/* The 2 XM_NSLOT sensitivity shock rows of XM_SENS_COLS columns and their
 * exp (xm_portable.h). */
void xm__liquidity_shocks(double sx[2 * XM_NSLOT * XM_SENS_COLS],
                          double sex[2 * XM_NSLOT * XM_SENS_COLS]);

/* ---- collateral (host/collateral.c, METHODOLOGY.md section 6) ---- */

/* collateral.method = scenario: *out is pf with each holding as a position
 * of its account on a new instrument (a spot of multiplier 1 on its factor,
 * settled in its currency; cash in another currency than the account's as
 * that currency's value, and without risk in its own), in its silo. *owned
 * holds the new arrays (free with xm__collateral_book_free). XM_EFORMAT for
 * a holding of no silo (named in ctx). */
xm_status xm__collateral_book(xm_ctx *ctx, const xm_portfolio *pf, xm_portfolio *out, void **owned);
void xm__collateral_book_free(void *owned);
/* The collateral outputs of res (collateral_value, collateral, excess,
 * call, call_siloed) from its requirements; nothing when the book has no
 * /collateral (`any`: whether it has; pf may be some of its accounts, which
 * hold none). */
xm_status xm__collateral_results(xm_ctx *ctx, const xm_portfolio *pf, int any, const xm_config *cfg,
                                 xm_run_result *res);

/* ---- the loop ---- */

/* What the loop fills: [days x A x XM_NOUT], [days x A x G x XM_NSILO],
 * [A x K] (days: sets->days, 1 for a run). */
typedef struct xm__outputs {
  double *acct, *silo, *by_set;
  float **pnl;         /* [K] each [S x A], or NULL */
  xm_pnl_spool *spool; /* or the losses to disk (host/spool.c), or NULL */
  double t_scen, t_eval;
  /* A part of a scenario split (host/split.c; a streamed plan): each set's
   * tails, [K] arrays of A x XM_TREC(G, xm__set_tk) doubles (zeroed by the
   * caller), filled from the loop (tails_out), or given (tails_in: nothing
   * is revalued, the measures come from them). NULL: neither. */
  double **tails_out;
  const double *const *tails_in;
} xm__outputs;

/* What xm__run_sets passes to xm__outputs' tails (NULL: a plain run). */
typedef struct xm__tails_io {
  double **out;
  const double *const *in;
} xm__tails_io;

/* An incremental run (host/whatif.c): one account on sets of one a group
 * (xm__sets.solo), whose account and silo losses L of each set x are kept
 * (keep[x], the caller's S x (G + 1) doubles, in the backend's layout of L
 * for one account), or are made from losses kept before: base[x] + the
 * losses of the trades' positions alone, the account's own rows not revalued.
 * The measures, the add-on and the combination are the block's (the account
 * with its trades). */
typedef struct xm__increment {
  double **keep;              /* [K], or NULL */
  const double *const *base;  /* [K], or NULL */
  const xm_portfolio *trades; /* with base: the trades as the positions of a book of the account
                                 (xm__run_sets plans it), or NULL: none */
  const xm__block *delta;     /* its block (xm__evaluate's; NULL: no position survives netting) */
} xm__increment;

/* The loop nest of a run on ctx's backend (host/engine.c): for each block,
 * upload; today; for each set, for each tile: (make the shocks,) revalue,
 * aggregate; reduce; then combine and download. keep_mc: Monte Carlo shocks
 * are copied to sets->set[x].X. inc: an incremental run, or NULL. */
xm_status xm__evaluate(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets, const xm__plan *plan,
                       int keep_mc, const xm_run_opts *opts, const xm__increment *inc,
                       xm__outputs *out);

/* ---- a run ---- */

/* One run on ctx's current backend (xm_run without the fallback); flags as
 * xm__sets_build's. */
xm_status xm__run_once(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                       const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                       xm_run_result *out);

/* xm__run_once on sets made before (given, not NULL: lent for the call,
 * its labels and shocks stay with the caller; sf is then unread but for
 * messages), incremental when inc is not NULL. The what-if path
 * (host/whatif.c). */
xm_status xm__run_sets(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                       const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                       const xm__sets *given, const xm__increment *inc, const xm__tails_io *tio,
                       xm_run_result *out);

/* The loss of each account and silo of the plan's blocks under one move
 * x[F] of the shock columns (a backtest's realised move), on the host with
 * the shared pricing and aggregation source in cfg's precision: today at the
 * horizon, one revaluation per row, the positions summed as the device sums
 * them; not floored. loss [A x (G + 1)]: account, then its silos. */
xm_status xm__move_loss(xm_ctx *ctx, const xm_config *cfg, const xm__plan *plan, const double *x,
                        int64_t F, double *loss);
/* After a failure st of a context made by --device auto on an OpenCL
 * device: when st is XM_ERESOURCE, XM_EOPENCL or XM_EBUILD, switches ctx to
 * the cpu backend (said in xm_ctx_choice; why[cap] gets the reason) and
 * returns XM_OK, so that the caller runs again; otherwise returns st. */
xm_status xm__fallback_cpu(xm_ctx *ctx, xm_status st, char *why, size_t cap);
/* A job of the public API (a run, a backtest): again = 1 when it runs a
 * second time, on the cpu backend (it first frees what the first try left). */
typedef xm_status (*xm__job_fn)(xm_ctx *ctx, void *arg, int again);
/* Runs job; when it fails as xm__fallback_cpu says, switches ctx to the cpu
 * backend, runs it again and appends the warning to notes[cap]. */
xm_status xm__with_fallback(xm_ctx *ctx, xm__job_fn job, void *arg, char *notes, size_t cap);

#endif
