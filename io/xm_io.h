/* io/: the only code that touches HDF5 (FORMAT.md). Plain structs of arrays
 * for the engine and the kernels. Internal to libxmargin. */
#ifndef XM_IO_H
#define XM_IO_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin.h"

/* ---- Diagnostics: the bounded list of messages a validation produces. ---- */
#define XM_DIAG_MAX_SHOWN 20
typedef struct xm_diag {
  char **msg;   /* the first XM_DIAG_MAX_SHOWN messages */
  size_t shown; /* number stored in msg */
  size_t total; /* number reported (may exceed shown) */
} xm_diag;
/* Adds "file: /dataset[row] = value: rule" style message (printf-style). */
void xm_diag_add(xm_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the stored messages and "... and N more errors" to f. */
void xm_diag_print(const xm_diag *d, void *file /* FILE* */);
void xm_diag_free(xm_diag *d);

/* ---- Portfolio (FORMAT.md section 1) ---- */
typedef struct xm_portfolio {
  char *path;
  char valuation_date[16];
  char currency[16];
  int64_t n_factors;
  char **factor_name;
  int32_t *factor_kind; /* XM_FACTOR_PRICE, XM_FACTOR_VOL, XM_FACTOR_RATE (kernels/xm_portable.h) */
  double *factor_level;
  int64_t n_silos;
  char **silo_name;
  int64_t n_instruments;
  char **inst_id;
  int32_t *inst_type; /* xm_instrument_type */
  int32_t *inst_silo;
  int32_t *inst_underlying;
  int32_t *inst_vol_factor; /* -1 for none */
  double *inst_strike;
  double *inst_expiry;
  int32_t *inst_call;
  double *inst_implied_vol;
  double *inst_rate;
  double *inst_dividend_yield;
  double *inst_multiplier;
  int64_t n_accounts;
  char **account_id;
  int32_t *account_cross_margin;
  int64_t n_positions;
  int32_t *pos_account;
  int32_t *pos_instrument;
  double *pos_quantity;
} xm_portfolio;

/* ---- Scenario file (FORMAT.md section 2) ---- */
#define XM_SET_NAME_MAX 64 /* characters of a set name (FORMAT.md section 2) */
typedef struct xm_scenario_set {
  char *name;
  int64_t n_scenarios; /* S */
  int64_t n_factors;   /* F_s */
  char **factor;       /* [F_s] */
  double *shock;       /* [S x F_s], row-major */
  char **label;        /* [S] */
  double *weight;      /* [S], or NULL (all 1) */
  int32_t measure;     /* XM_MEASURE_WORST (default), XM_MEASURE_ES, XM_MEASURE_VAR */
  double confidence;   /* NaN when absent: the run's confidence */
} xm_scenario_set;

typedef struct xm_scenario_file {
  char *path;
  int64_t n_days;      /* T; 0 when there is no /history */
  int64_t n_hfactors;  /* F_h */
  char **hist_factor;  /* [F_h] */
  char **hist_date;    /* [T] */
  double *hist_return; /* [T x F_h] */
  int64_t n_sets;
  xm_scenario_set *sets; /* sorted by name */
} xm_scenario_file;

/* Reads and validates a portfolio / scenario file. On XM_EFORMAT the
 * messages are in *diag (file, dataset, row, rule); on XM_EIO the file could
 * not be opened or is not HDF5 (also in *diag). *out is zeroed on failure. */
xm_status xm_portfolio_read(const char *path, xm_portfolio *out, xm_diag *diag);
void xm_portfolio_free(xm_portfolio *p);
xm_status xm_scenarios_read(const char *path, xm_scenario_file *out, xm_diag *diag);
void xm_scenarios_free(xm_scenario_file *s);

/* Reads the root attribute `format` of an HDF5 file into buf ("" if absent).
 * XM_EIO when the file cannot be opened as HDF5. */
xm_status xm_file_format(const char *path, char *buf, size_t cap, xm_diag *diag);

/* ---- Writers (used by `xmargin generate` and by tests) ---- */
xm_status xm_portfolio_write(const char *path, const xm_portfolio *p, xm_diag *diag);
xm_status xm_scenarios_write(const char *path, const xm_scenario_file *s, xm_diag *diag);

/* ---- Results (FORMAT.md section 3) ---- */
typedef struct xm_results_set {
  const char *name;
  int64_t n_scenarios;
  char *const *label;  /* [S] */
  const float *pnl;    /* [S x A] or NULL (--save-pnl) */
  const double *shock; /* [S x n_factors] or NULL (--save-scenarios) */
  int64_t n_factors;
  char *const *factor; /* [n_factors] */
} xm_results_set;

typedef struct xm_results {
  /* root attributes */
  const char *software_version, *created_utc, *portfolio, *scenarios;
  const char *portfolio_sha256, *scenarios_sha256, *config, *device, *precision;
  uint64_t seed;
  double elapsed_s;
  /* dimensions */
  int64_t n_accounts, n_silos, n_sets;
  char *const *account; /* [A] */
  char *const *silo;    /* [G] */
  char *const *set;     /* [K] */
  /* /margin, float64 per account */
  const double *requirement, *unified, *siloed, *diversification, *minimum;
  const double *by_set;      /* [A x K] */
  const double *by_silo;     /* [A x G] */
  const double *attribution; /* [A x G] */
  const int32_t *binding_set;
  const xm_results_set *sets; /* [K] */
} xm_results;

/* Writes atomically: a temporary file in the same folder, fsync'd, renamed
 * over path only when complete. An existing file at path survives a failure. */
xm_status xm_results_write(const char *path, const xm_results *r, xm_diag *diag);

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

/* Longest path and file name an output may have: its temporary file
 * ".NAME.tmp.PID.XXXXXX" must fit the file system's 255 bytes a name. */
#define XM_PATH_MAX 4096
#define XM_NAME_MAX 200

/* Checks, before any work, that path may receive an output file: a
 * non-empty file name under XM_PATH_MAX / XM_NAME_MAX in an existing
 * writable folder, and either nothing there yet or a regular file (not a
 * symbolic link, device, FIFO or folder) that is none of the n_inputs files
 * inputs[] (the same file however named: same device and inode; NULL entries
 * are skipped). XM_OK, or XM_EINVAL with the reason in err. */
xm_status xm_output_check(const char *path, const char *const *inputs, int n_inputs, char *err,
                          size_t cap);

/* SHA-256 of a file's bytes as 64 hex characters (+NUL) into hex[65]. */
xm_status xm_file_sha256(const char *path, char hex[65]);

/* ---- Validation of structs in memory (FORMAT.md sections 1 and 2) ---- */
/* Checks p / s against every rule of the data contract that the arrays can
 * show, with the messages a file with the same content gets from the
 * readers (which run the same checks on what they read): counts, columns
 * given for their counts, no empty table, codes of the enumerations, strings
 * that are text, the root attributes, names unique and non-empty, indices in
 * range, kinds, finite numbers, the value rules, set names, dates, weights.
 * The struct and its arrays stay the caller's: nothing is written through
 * them, and the arrays must hold what the counts say. Messages go to *diag
 * (may be NULL) as "file: /dataset[row] = value: rule", file being p->path /
 * s->path, or "portfolio" / "scenarios" when it is NULL. Returns XM_OK,
 * XM_EFORMAT (a violation), XM_ENOMEM, or XM_EINVAL when p / s is NULL. */
xm_status xm_portfolio_validate(const xm_portfolio *p, xm_diag *diag);
xm_status xm_scenarios_validate(const xm_scenario_file *s, xm_diag *diag);

#endif
