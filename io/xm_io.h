/* io/: the only code that touches HDF5 (FORMAT.md): the results writer and
 * the host's memory limits. Internal to libxmargin; the readers and writers of
 * the input files are public (host/include/xmargin.h). */
#ifndef XM_IO_H
#define XM_IO_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin.h"

/* The portfolio and scenario file structs, xm_diag and the readers/writers
 * are public: host/include/xmargin.h. */

/* ---- Results (FORMAT.md section 3) ---- */
typedef struct xm_results_set {
  const char *name;
  int64_t n_scenarios;
  char *const *label; /* [S] */
  const float *pnl;   /* [S x A] or NULL (--save-pnl) */
  /* Or, pnl NULL, its blocks from a reader: scenarios [s0, s0 + ns) x
   * accounts [a0, a0 + na) of set pnl_set into out[ns x na] (XM_OK or an
   * error); NULL: no /pnl for the set. */
  xm_status (*pnl_read)(const void *arg, int64_t set, int64_t s0, int64_t ns, int64_t a0,
                        int64_t na, float *out);
  const void *pnl_arg;
  int64_t pnl_set;
  const double *shock; /* [S x n_factors] or NULL (--save-scenarios) */
  int64_t n_factors;
  char *const *factor; /* [n_factors] */
} xm_results_set;

/* What every output file of a run carries besides its numbers (FORMAT.md
 * sections 3 and 4): the root attributes and the dimensions /account, /silo,
 * /set with each account's currency. */
typedef struct xm_results_head {
  /* root attributes */
  const char *software_version, *created_utc, *portfolio, *scenarios;
  const char *portfolio_sha256, *scenarios_sha256, *config, *device, *precision;
  const char *valuation_date;     /* the portfolio's (NULL: "") */
  const char *reporting_currency; /* the portfolio's `currency` (NULL: "") */
  uint64_t seed;
  double elapsed_s;
  /* dimensions */
  int64_t n_accounts, n_silos, n_sets;
  char *const *account; /* [A] */
  char *const *silo;    /* [G] */
  char *const *set;     /* [K] */
  /* each account's currency (/margin/currency, the `units` of the money
   * datasets): [A], or NULL; a NULL array or entry is the reporting one */
  char *const *account_currency;
} xm_results_head;

typedef struct xm_results {
  xm_results_head head;
  /* /margin, float64 per account */
  const double *requirement, *unified, *siloed, *diversification, *minimum;
  const double *by_set;      /* [A x K] */
  const double *by_silo;     /* [A x G] */
  const double *attribution; /* [A x G] */
  const int32_t *binding_set;
  /* Version-2 outputs (METHODOLOGY.md sections 4, 4.1, 6), each optional: a
   * NULL array is not written (a caller that does not compute it; the five
   * collateral arrays are NULL when the book has no /collateral). */
  const double *liquidity;           /* [A] LQ_a */
  const double *liquidity_by_silo;   /* [A x G] LQ_{a,g} */
  const double *requirement_by_silo; /* [A x G] M_{a,g} */
  const double *hedge_credit;        /* [A] c x D_a (eligible accounts; else 0) */
  const int32_t *minimum_binds;      /* [A] 0 or 1 */
  const double *collateral_value;    /* [A] sum of CV_j */
  const double *collateral;          /* [A] sum of ACV_j */
  const double *excess;              /* [A] E_a */
  const double *call;                /* [A] */
  const double *call_siloed;         /* [A] */
  const xm_results_set *sets;        /* [K] */
} xm_results;

/* Writes atomically: a temporary file in the same folder, fsync'd, renamed
 * over path only when complete. An existing file at path survives a failure. */
xm_status xm_results_write(const char *path, const xm_results *r, xm_diag *diag);

#ifdef XM_WITH_MPI
#include <mpi.h>
/* The results file written by the processes of comm together (collective;
 * docs/scaling.md). Every rank passes st, its status so far (the worst of
 * them is every rank's answer when one is not XM_OK: nothing is written).
 * Rank 0's r is the whole file's but for each set's pnl; on every rank a
 * set's pnl holds the rank's accounts' columns [pnl_begin, pnl_begin +
 * pnl_count) of /pnl/<set>, [S x pnl_count] scenario-major (the ranks'
 * ranges tile the accounts in rank order; a set's pnl NULL on every rank or
 * on none). Rank 0 writes the rest into the temporary file and closes it;
 * every rank then writes its columns with parallel HDF5 (collective
 * transfers); rank 0 renames the file once every rank has closed it, or
 * removes it. On the other ranks only r->head.n_sets and each set's name,
 * n_scenarios and pnl are read. Every rank returns the same status. */
xm_status xm_results_write_mpi(const char *path, const xm_results *r, xm_status st,
                               int64_t pnl_begin, int64_t pnl_count, MPI_Comm comm, xm_diag *diag);
#endif

/* ---- Backtest (FORMAT.md section 4) ---- */

/* --save-scenarios: one set's shocks of every day. */
typedef struct xm_backtest_file_set {
  int64_t n_scenarios; /* S: the set's largest size over the days */
  int64_t n_factors;   /* F */
  char *const *factor; /* [F] */
  const double *shock; /* [N x S x F] (a day's rows beyond its size NaN), or NULL: not written */
  const double *delta; /* [N] the jitter of a Monte Carlo set, or NULL */
} xm_backtest_file_set;

typedef struct xm_backtest_file {
  xm_results_head head;      /* head.set: the sets of every day, in run order */
  int64_t n_days, n_tests;   /* N, N' */
  double target_coverage;    /* backtest.coverage */
  int32_t apc_window;        /* backtest.apc_window */
  char *const *day;          /* [N] the date of d */
  char *const *realised_end; /* [N] the date of d + h */
  const int32_t *test_day;   /* [N] 1 on the N' days of the tests */
  /* /series, each account's currency: [N x A] ([N x A x G] by silo) */
  const double *margin[XM_BT_NMARGIN];
  const double *realised, *silo_margin, *realised_by_silo;
  const int32_t *binding; /* [N x A] rows of head.set */
  /* [A] X_b: one unit of the account's currency in the reporting one today
   * (the totals' rate), or NULL: not written (an extra of FORMAT.md) */
  const double *to_reporting;
  /* the book's totals, reporting currency: [N] */
  const double *total_margin[XM_BT_NMARGIN];
  const double *total_realised;
  /* /stats */
  const xm_bt_stats *stats[XM_BT_NMARGIN]; /* each [A] */
  const xm_bt_stats *silo_stats;           /* [A x G] */
  const xm_bt_stats *total_stats;          /* [XM_BT_NMARGIN] */
  const xm_backtest_file_set *sets;        /* [K] (--save-scenarios), or NULL: no /scenarios */
} xm_backtest_file;

/* Writes the backtest file atomically, as xm_results_write. XM_EINVAL for a
 * NULL array with a non-zero count or a set name HDF5 cannot hold. */
xm_status xm_backtest_write(const char *path, const xm_backtest_file *b, xm_diag *diag);

#ifdef XM_WITH_MPI
/* The backtest file written by the processes of comm together, as
 * xm_results_write_mpi: rank 0's b is the whole file's but for each set's
 * shock and delta (--save-scenarios), whose days [day_begin, day_end) every
 * rank writes from its own (b->sets' arrays are [N x S x F] and [N] on
 * every rank, S the set's largest size over all ranks' days; the ranks' days
 * tile 0 .. N in rank order; sets NULL on every rank or on none). On the
 * other ranks only head.n_sets, head.set and sets are read. */
xm_status xm_backtest_write_mpi(const char *path, const xm_backtest_file *b, xm_status st,
                                int64_t day_begin, int64_t day_end, MPI_Comm comm, xm_diag *diag);
#endif

/* Bytes of memory this process can still have: the least of MemAvailable
 * (/proc/meminfo), the cgroup's memory.max less its memory.current, and
 * ulimit -v (RLIMIT_AS) less the address space in use. UINT64_MAX when none
 * is known. Readers refuse files whose declared sizes need more. */
uint64_t xm_host_memory_limit(void);
/* Address space left under ulimit -v (RLIMIT_AS less what is mapped);
 * UINT64_MAX when there is no limit. */
uint64_t xm_address_space_room(void);
/* Address space this process has mapped (/proc/self/statm), bytes; 0 if unknown. */
uint64_t xm_address_space_used(void);

/* SHA-256 of a file's bytes as 64 hex characters (+NUL) into hex[65]. */
xm_status xm_file_sha256(const char *path, char hex[65]);

#endif
