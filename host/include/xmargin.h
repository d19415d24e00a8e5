/* xmargin: GPU-accelerated unified portfolio margin.
 * Public API of libxmargin. All names start with xm_. The context is opaque;
 * books, scenario files and results are plain structs of arrays (the caller
 * may build a book or scenario file over its own arrays: a view). Every
 * function returns an xm_status unless stated otherwise and says who owns
 * what it hands back.
 *
 * A run: xm_ctx_create -> xm_portfolio_read / xm_scenarios_read (or views,
 * checked by xm_portfolio_validate / xm_scenarios_validate) -> xm_run ->
 * xm_run_result_write -> xm_run_result_free, xm_ctx_destroy. */
#ifndef XMARGIN_H
#define XMARGIN_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is the public API: exported from the shared
 * library, which is built with hidden visibility (nothing else is). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define XM_VERSION_STRING "0.1.0"

/* One list of status codes and their fixed text (libuv UV_ERRNO_MAP style).
 * X(name, value, text). XM_EFORMAT and XM_ECONFIG are the user's input errors
 * (the CLI exits with status 2 for them). */
#define XM_STATUS_MAP(X)                                                                           \
  X(OK, 0, "success")                                                                              \
  X(EINVAL, 1, "invalid argument")                                                                 \
  X(ENOMEM, 2, "out of memory")                                                                    \
  X(EIO, 3, "input/output error")                                                                  \
  X(EFORMAT, 4, "input violates the xmargin data contract")                                        \
  X(ECONFIG, 5, "invalid configuration")                                                           \
  X(ENODEV, 6, "no such compute device")                                                           \
  X(EOPENCL, 7, "OpenCL runtime error")                                                            \
  X(EBUILD, 8, "OpenCL program build failed")                                                      \
  X(ERESOURCE, 9, "device out of resources")                                                       \
  X(ENOTPD, 10, "matrix is not positive definite")                                                 \
  X(EUNSUPPORTED, 11, "operation not supported on this device")                                    \
  X(ENUMERIC, 12, "non-finite number in a result")                                                 \
  X(EINTERNAL, 13, "internal error")

typedef enum xm_status {
#define XM__STATUS_ENUM(name, value, text) XM_##name = value,
  XM_STATUS_MAP(XM__STATUS_ENUM)
#undef XM__STATUS_ENUM
} xm_status;

/* Number of status codes (one past the largest value: the values are 0, 1, ...). */
#define XM__STATUS_ONE(name, value, text) +1
#define XM_STATUS_COUNT (0 XM_STATUS_MAP(XM__STATUS_ONE))

/* Fixed, static text for a status code; "unknown status" for values not in the
 * list. Never NULL; the caller does not free it. */
const char *xm_strerror(xm_status code);
/* The status code's symbolic name, e.g. "XM_EFORMAT"; static, never NULL. */
const char *xm_status_name(xm_status code);

/* ---- Devices ----------------------------------------------------------- */

typedef enum xm_backend_kind { XM_BACKEND_CPU = 0, XM_BACKEND_OPENCL = 1 } xm_backend_kind;

typedef struct xm_device_info {
  xm_backend_kind backend;
  char spec[32];      /* what --device takes to pick it: "cpu", "opencl:0.1" */
  int platform_index; /* -1 for the cpu backend */
  int device_index;   /* -1 for the cpu backend */
  int is_gpu;
  char platform[128];
  char name[128];
  char vendor[128];
  char version[64]; /* OpenCL C version ("OpenCL C 1.2"), or "C11" */
  char driver[64];
  unsigned compute_units;
  uint64_t global_mem; /* bytes */
  uint64_t local_mem;  /* bytes */
  uint64_t max_alloc;  /* bytes */
  int fp64;            /* double precision supported */
} xm_device_info;

/* Lists every device xmargin can run on: each OpenCL device of every platform,
 * then the plain-C "cpu" backend (always present). On success *out is an array
 * of *n entries owned by the caller (free with xm_devices_free). A missing or
 * broken OpenCL runtime is not an error: the list then holds only "cpu". */
xm_status xm_devices_list(xm_device_info **out, size_t *n);
/* 1 when this library was built with the OpenCL backend (XM_WITH_OPENCL),
 * else 0: then only "cpu" is ever listed. */
int xm_has_opencl(void);
/* Frees a list from xm_devices_list; NULL is a no-op. */
void xm_devices_free(xm_device_info *list);

/* ---- Context ----------------------------------------------------------- */

typedef struct xm_ctx xm_ctx;

typedef struct xm_options {
  /* "auto" | "cpu" | "opencl" | "opencl:<platform>.<device>"; NULL means
   * "auto": a GPU with double precision if there is one, else the cpu backend
   * (auto_opencl_cpu: OpenCL CPU devices before it). Contexts and runs read
   * no environment variable: xm_options_from_env() is how a program (the
   * CLI) takes XM_DEVICE and the others. */
  const char *device;
  /* Cap on the memory the engine plans with (device buffers, and on the
   * cpu backend every host buffer of a run's loop), bytes; 0 = the device's
   * own. At least 1 MiB: a smaller cap is planned as 1 MiB. */
  uint64_t mem_limit;
  /* Threads for the cpu backend; 0 = all cores. */
  int threads;
  /* Print the device choice and warnings to stderr. */
  int verbose;
  /* Print each run's kernel times to stderr (OpenCL; XM_PROFILE). */
  int profile;
  /* auto may take an OpenCL device that is not a GPU (XM_AUTO_OPENCL_CPU). */
  int auto_opencl_cpu;
  /* Overrides of the tuning table; 0 (vec8: -1) = the table's value.
   * lws: work-group size (XM_LWS); mc_block: factors per block of the
   * Monte Carlo product, a multiple of 16 (XM_MC_BLOCK); vec8: 0/1 the
   * double8 kernels (XM_VEC8); mc_chunk: Monte Carlo scenarios per chunk
   * (XM_MC_CHUNK); bt_days: the most days a backtest batch holds
   * (XM_BT_DAYS; 0: 64); chunk: the scenarios of a streamed chunk of the
   * account losses (XM_CHUNK; 0: the plan's; -1: no streaming, the losses of
   * a whole group of sets at once; docs/engine.md). */
  struct {
    int lws, mc_block, vec8;
    long mc_chunk, bt_days, chunk;
  } tuning;
  /* Fault injection for tests (XM_TEST_FAIL_OPENCL): "build" makes the
   * OpenCL kernels fail to build, "run" an OpenCL run report out of
   * resources. NULL: none. */
  const char *fault;
} xm_options;

/* Fills *opt with the defaults (the same as passing NULL options). */
void xm_options_default(xm_options *opt);
/* Reads the environment once into *opt, over what it holds: XM_DEVICE (when
 * opt->device is NULL), XM_PROFILE, XM_AUTO_OPENCL_CPU, XM_LWS, XM_MC_BLOCK,
 * XM_VEC8, XM_MC_CHUNK, XM_BT_DAYS, XM_TEST_FAIL_OPENCL. Strings point into the
 * environment (valid while it is not changed). */
void xm_options_from_env(xm_options *opt);

/* Creates a context on the chosen device and builds its kernels (once per
 * context). *out is owned by the caller (xm_ctx_destroy). On failure *out is
 * still set when it could be allocated, so that xm_ctx_last_error() can say why;
 * destroy it in any case. */
xm_status xm_ctx_create(xm_ctx **out, const xm_options *opt);
/* Releases everything; NULL is a no-op. */
void xm_ctx_destroy(xm_ctx *ctx);
/* Detail of the last failure on this context (build log, HDF5 path and row,
 * OpenCL call); "" if none. Owned by the context, valid until the next call. */
const char *xm_ctx_last_error(const xm_ctx *ctx);
/* The device the context runs on; owned by the context. */
const xm_device_info *xm_ctx_device(const xm_ctx *ctx);
/* One line saying which device was chosen and why (for auto). */
const char *xm_ctx_choice(const xm_ctx *ctx);

/* ---- Pricing (the shared pricing core, exposed for checks) ------------- */

typedef enum xm_precision { XM_DOUBLE = 0, XM_SINGLE = 1 } xm_precision;

/* A batch of contracts, struct of arrays, n entries each. */
typedef struct xm_contracts {
  size_t n;
  const int32_t *type;      /* xm_instrument_type */
  const double *underlying; /* S (spot) or F (futures price) */
  const double *strike;
  const double *expiry; /* years; <= 0 means intrinsic */
  const double *rate;
  const double *dividend; /* option only */
  const double *vol;
  const int32_t *call; /* 1 call, 0 put */
  const double *multiplier;
} xm_contracts;

/* Values of one contract each (multiplier included) on the context's device,
 * in the given precision, into out[n] (caller-owned). */
xm_status xm_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out);

/* ---- The enumerations' names (xmargin_types.h) -------------------------- */

/* The name of a value as the files and the configuration spell it
 * ("future_option", "price", "es"); static, never freed; NULL for a value
 * that is not in its table. */
const char *xm_type_name(int type);
const char *xm_factor_kind_name(int kind);
const char *xm_measure_name(int measure);

/* ---- Configuration (METHODOLOGY.md; keys and defaults there) ------------ */

typedef enum xm_distribution { XM_DIST_NORMAL = 0, XM_DIST_STUDENT_T = 1 } xm_distribution;
/* collateral.method (METHODOLOGY.md section 6): haircut schedule, or the
 * holdings priced inside the scenarios. */
typedef enum xm_collateral_method {
  XM_COLLATERAL_SCHEDULE = 0,
  XM_COLLATERAL_SCENARIO = 1
} xm_collateral_method;

typedef struct xm_config {
  int horizon_days;       /* horizon_days = 2 */
  double confidence;      /* confidence = 0.99 */
  xm_precision precision; /* precision = double */
  struct {
    int enabled;        /* historical.enabled = true */
    double ewma_lambda; /* 0.97 */
    double apc_floor;   /* 0 */
    int filtered;       /* true */
    int lookback;       /* 1260 */
    xm_measure measure; /* es */
  } historical;
  struct {
    int enabled;                  /* montecarlo.enabled = true */
    int64_t scenarios;            /* 10000 */
    xm_distribution distribution; /* student_t */
    double dof;                   /* 5 */
    uint64_t seed;                /* 42 */
    double correlation_stress;    /* 0 */
    xm_measure measure;           /* es */
  } montecarlo;
  struct {
    double vol_floor;      /* 0.01 */
    double vol_term_power; /* 0 */
  } pricing;
  struct {
    double offset_cap; /* 0.80 */
  } cross_margin;
  struct {
    double per_contract; /* 0.375 */
  } minimum;
  struct {
    double buffer; /* apc.buffer = 0: beta, M = max((1 + beta) C, Min) */
    /* The stressed period (METHODOLOGY.md section 1): ISO dates, "" = none;
     * w = 0: the set stressed_period is a floor like any other set; w > 0:
     * the historical measure becomes (1 - w) R_hist + w R_stressed. */
    char stressed_start[11], stressed_end[11];
    double stressed_weight; /* 0 */
  } apc;
  struct {                /* xmargin backtest (METHODOLOGY.md section 7) */
    int days;             /* backtest.days = 500: N = min(days, T - h - min_history + 1) */
    int min_history;      /* 250 rows of /history up to a backtest day at least */
    int64_t mc_scenarios; /* 0: montecarlo.scenarios */
    int ready_sets;       /* true: the ready-made sets enter every day's margin */
    double coverage;      /* 0.99: p = 1 - coverage in the tests */
    int apc_window;       /* 20: n of the largest n-day increase */
  } backtest;
  struct {
    xm_collateral_method method; /* collateral.method = schedule */
  } collateral;
} xm_config;

/* Fills *cfg with METHODOLOGY.md's defaults. */
void xm_config_default(xm_config *cfg);
/* Sets one key ("section.key" or a top-level key) from its text value.
 * XM_ECONFIG for an unknown key or a value of the wrong type or out of range;
 * the message (naming the key, the value and the allowed range) goes to
 * err[cap] when err is not NULL. */
xm_status xm_config_set(xm_config *cfg, const char *key, const char *value, char *err, size_t cap);
/* Reads an INI file (sections [historical], [montecarlo], ...; top-level keys
 * before any section) over *cfg. XM_EIO when unreadable, XM_ECONFIG naming
 * file, line and key otherwise. */
xm_status xm_config_load(xm_config *cfg, const char *path, char *err, size_t cap);
/* Writes the effective configuration as INI text into a malloc'd string the
 * caller frees; NULL on out of memory. Loading that text gives back *cfg. */
char *xm_config_to_ini(const xm_config *cfg);

/* ---- Diagnostics -------------------------------------------------------- */

/* The bounded list of messages a validation or a write produces, each
 * "file: /dataset[row] = value: rule". Zero it before first use; the
 * functions that take one add to it; the caller frees it (xm_diag_free). */
#define XM_DIAG_MAX_SHOWN 20
typedef struct xm_diag {
  char **msg;   /* the first XM_DIAG_MAX_SHOWN messages (owned by the diag) */
  size_t shown; /* number stored in msg */
  size_t total; /* number reported (may exceed shown) */
} xm_diag;
/* Adds one message (printf-style); past XM_DIAG_MAX_SHOWN only counts it. */
void xm_diag_add(xm_diag *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints the stored messages and "... and N more errors" to file (a FILE *). */
void xm_diag_print(const xm_diag *d, void *file);
/* Frees the messages and zeroes *d; NULL is a no-op. */
void xm_diag_free(xm_diag *d);

/* ---- The book: a portfolio (FORMAT.md section 1) ------------------------- */

/* Struct of arrays, one array per column. Two ways to have one:
 * - xm_portfolio_read() allocates every array; xm_portfolio_free() frees them;
 * - a *view*: the caller points the fields at its own arrays (numpy arrays,
 *   say) and never calls xm_portfolio_free(). The library never writes
 *   through a portfolio's pointers and keeps none of them after a call
 *   returns (results copy what they need).
 * Indices are rows of the referenced table (0-based); codes are the values of
 * xmargin_types.h. path names the source in messages (may be NULL). */
typedef struct xm_portfolio {
  char *path;
  char valuation_date[16]; /* "YYYY-MM-DD" or "" */
  char currency[16];       /* the reporting currency */
  int64_t n_factors;
  char **factor_name;
  int32_t *factor_kind; /* xm_factor_kind */
  double *factor_level;
  /* Version-2 columns (FORMAT.md section 1) are optional: an array is NULL
   * when its column is absent, and every row then has the default. */
  double *factor_half_spread;      /* 0 */
  double *factor_impact;           /* 0 */
  double *factor_adv;              /* 0 = none */
  double *factor_haircut;          /* 0 */
  double *factor_collateral_limit; /* 0 = none */
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
  char **inst_currency;      /* settlement currency; NULL: the reporting one */
  double *inst_funding_rate; /* annualised, longs pay when > 0; NULL: 0 */
  int64_t n_accounts;
  char **account_id;
  int32_t *account_cross_margin;
  char **account_currency; /* margin currency; NULL: the reporting one */
  /* /fx (optional: n_fx = 0): the currencies other than the reporting one and
   * the price factor of each (one unit's value in the reporting currency). */
  int64_t n_fx;
  char **fx_currency;
  int32_t *fx_factor;
  /* /collateral (optional: n_collateral = 0). */
  int64_t n_collateral;
  int32_t *coll_account;
  int32_t *coll_factor;  /* a price factor, or -1 for cash */
  char **coll_currency;  /* NULL: the reporting one */
  double *coll_quantity; /* units of the factor, or the cash amount */
  int32_t *coll_silo;    /* -1: posted to no silo's pool */
  int64_t n_positions;
  int32_t *pos_account;
  int32_t *pos_instrument;
  double *pos_quantity;
} xm_portfolio;

/* ---- Scenarios (FORMAT.md section 2) ------------------------------------- */

#define XM_SET_NAME_MAX 64 /* characters of a set name (FORMAT.md section 2) */
typedef struct xm_scenario_set {
  char *name;
  int64_t n_scenarios; /* S */
  int64_t n_factors;   /* F_s */
  char **factor;       /* [F_s] */
  double *shock;       /* [S x F_s], row-major */
  char **label;        /* [S] */
  double *weight;      /* [S], or NULL (all 1) */
  int32_t measure;     /* xm_measure (XM_MEASURE_WORST when the file has none) */
  double confidence;   /* NaN when absent: the run's confidence */
} xm_scenario_set;

/* Owned or a view, as xm_portfolio. */
typedef struct xm_scenario_file {
  char *path;
  int64_t n_days;      /* T; 0 when there is no /history */
  int64_t n_hfactors;  /* F_h */
  char **hist_factor;  /* [F_h] */
  char **hist_date;    /* [T] "YYYY-MM-DD", oldest first */
  double *hist_return; /* [T x F_h], row-major */
  int64_t n_sets;
  xm_scenario_set *sets; /* sorted by name */
} xm_scenario_file;

/* Reads and validates a portfolio / scenario file into *out (zeroed first;
 * the arrays are owned by *out: free with xm_portfolio_free /
 * xm_scenarios_free, also after a failure). XM_EFORMAT with the messages
 * (file, dataset, row, rule) in *diag; XM_EIO when the file cannot be opened
 * or is not HDF5 (also in *diag); XM_ENOMEM. */
xm_status xm_portfolio_read(const char *path, xm_portfolio *out, xm_diag *diag);
void xm_portfolio_free(xm_portfolio *p);
xm_status xm_scenarios_read(const char *path, xm_scenario_file *out, xm_diag *diag);
void xm_scenarios_free(xm_scenario_file *s);

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

/* Reads the root attribute `format` of an HDF5 file into buf ("" if absent).
 * XM_EIO when the file cannot be opened as HDF5. */
xm_status xm_file_format(const char *path, char *buf, size_t cap, xm_diag *diag);
/* As xm_file_format, and the root attribute `format_version` into *version
 * (may be NULL): the whole number it holds, or 0 when it is absent, not a
 * number or not a whole number >= 1. In one read of the file. */
xm_status xm_file_kind(const char *path, char *buf, size_t cap, int *version, xm_diag *diag);

/* Writes a portfolio / scenario file (FORMAT.md) atomically; the struct may
 * be a view. XM_EINVAL for a struct the format cannot hold (messages in
 * *diag), XM_EIO. */
xm_status xm_portfolio_write(const char *path, const xm_portfolio *p, xm_diag *diag);
xm_status xm_scenarios_write(const char *path, const xm_scenario_file *s, xm_diag *diag);

/* Longest path and file name an output may have: its temporary file
 * ".NAME.tmp.HOST.PID.XXXXXX" must fit the file system's 255 bytes a name. */
#define XM_PATH_MAX 4096
#define XM_NAME_MAX 200

/* Checks, before any work, that path may receive an output file: a
 * non-empty file name under XM_PATH_MAX / XM_NAME_MAX in an existing
 * writable folder, and either nothing there yet or a regular file (not a
 * symbolic link, device, FIFO or folder) that is none of the n_inputs files
 * inputs[] (the same file however named: same device and inode; NULL entries
 * are skipped). XM_OK, or XM_EINVAL with the reason in err[cap]. */
xm_status xm_output_check(const char *path, const char *const *inputs, int n_inputs, char *err,
                          size_t cap);

/* ---- A run (METHODOLOGY.md sections 1-4) --------------------------------- */

/* Called after each (account block, set) is reduced: done of total steps, and
 * the set's name. From the calling thread; must be cheap. */
typedef void (*xm_progress_fn)(void *arg, int64_t done, int64_t total, const char *set);

typedef struct xm_run_opts {
  int save_pnl;            /* keep each set's [S x A] account losses */
  int save_scenarios;      /* keep each set's shocks [S x F] */
  xm_progress_fn progress; /* NULL: none */
  void *progress_arg;
  /* Accounts [account_begin, account_end) of the book only (0, 0: every
   * one): the sets are the whole book's (every scenario as a run of the book
   * makes it), the results hold those accounts alone (A = end - begin), each
   * bit for bit what a run of the whole book gives it. How the MPI build
   * splits a book across processes (docs/scaling.md). */
  int64_t account_begin, account_end;
  /* xm_backtest: days [day_begin, day_end) of its N only (0, 0: every one),
   * each bit for bit what the whole backtest gives it; the other days' rows
   * of the series are 0 and there are no statistics (NULL): gather the rows,
   * then xm_backtest_statistics. With save_scenarios the other days' shocks
   * are NaN and a set's S_max is the largest of the range's days (a gather
   * pads to the largest over the ranges). Not empty (XM_EINVAL). xm_run
   * ignores them. */
  int64_t day_begin, day_end;
  /* With save_pnl, a folder (NULL: none): each set's losses go, as the run
   * makes them, to a nameless temporary file there instead of memory
   * (xm_run_set.pnl stays NULL; xm_run_pnl_read reads them, and
   * xm_run_result_write copies them into /pnl), so that no [S x A] array is
   * held. The run refuses (XM_EIO) a folder without the 4 S A bytes free.
   * xm_run only. */
  const char *pnl_dir;
} xm_run_opts;

typedef struct xm_run_set {
  char *name;
  int measure; /* xm_measure */
  double confidence;
  int64_t S, k;  /* scenarios; the tail count of es/var */
  char **labels; /* [S] */
  double *shock; /* [S x F] when save_scenarios, else NULL */
  float *pnl;    /* [S x A] when save_pnl, else NULL */
} xm_run_set;

/* Where a run's losses are kept on disk (xm_run_opts.pnl_dir); opaque. */
typedef struct xm_pnl_spool xm_pnl_spool;

/* The results of a run; every array is owned by it (xm_run_result_free). */
typedef struct xm_run_result {
  int64_t A, G, K, F;
  int64_t account_begin; /* the book's row of account 0 (xm_run_opts.account_begin) */
  char **factor;         /* [F] the factors of the shock rows (those positions use) */
  xm_run_set *sets;
  double *requirement, *unified, *siloed, *diversification, *minimum; /* [A] */
  double *by_set;                                                     /* [A x K] */
  double *by_silo;     /* [A x G] S_{a,g} + LQ_{a,g}: each silo's core plus its add-on */
  double *attribution; /* [A x G] each silo's share of the core U_a = unified - liquidity */
  int32_t *binding;    /* [A] the set whose measure is the core U_a */
  /* METHODOLOGY.md sections 4 and 4.1, per account: */
  double *liquidity;           /* [A] LQ_a, included in unified */
  double *liquidity_by_silo;   /* [A x G] LQ_{a,g}, included in by_silo */
  double *requirement_by_silo; /* [A x G] M_{a,g}: what each silo alone would ask */
  double *hedge_credit;        /* [A] offset_cap x diversification (eligible accounts; else 0) */
  double *cross_margined;      /* [A] C_a: unified + (1 - offset_cap) D (eligible), else siloed */
  int32_t *minimum_binds;      /* [A] 1 where the minimum is the requirement */
  /* Section 6, per account; all NULL when the book has no /collateral. */
  double *collateral_value; /* [A] sum of CV_j, today's values */
  double *collateral;       /* [A] sum of ACV_j, after haircuts and limits */
  double *excess;           /* [A] E_a (negative: short of margin) */
  double *call;             /* [A] the margin call */
  double *call_siloed;      /* [A] the call if each silo were margined apart */
  /* [A] X_b: one unit of the account's currency in the reporting currency
   * today (1 for an account in the reporting currency): every money output
   * of account a is in its currency; times this, in the reporting one. */
  double *to_reporting;
  double jitter[2]; /* delta added to Sigma / Sigma_kappa before Cholesky */
  /* The plan (host memory on the cpu backend, device memory on OpenCL):
   * account blocks, scenarios per tile, whether each set's shocks stayed on
   * the device for the run (else they were made again per tile and block),
   * the budget (--mem-limit or the device's) and the bytes the loop's buffers
   * took of it; sets_host_bytes: the sets' arrays on the host (historical and
   * ready-made shocks, Cholesky factors), not in the budget. */
  int64_t n_blocks, tile;
  int shocks_resident;
  uint64_t mem_budget, mem_planned, sets_host_bytes;
  double t_prepare, t_scenarios, t_evaluate; /* seconds */
  char notes[4096];        /* one line per remark (factors a set does not move, jitter, fallback) */
  xm_pnl_spool *pnl_spool; /* save_pnl with pnl_dir: the losses on disk (xm_run_pnl_read) */
} xm_run_result;

/* Runs every set of the configuration (cfg NULL: the defaults) on ctx's
 * device for a book and its scenarios (read from files or views; neither is
 * written). *out is filled and owned by the caller (xm_run_result_free), also
 * on failure. Errors: XM_EFORMAT / XM_ECONFIG for inputs the methodology
 * cannot use (a factor missing from the history, history shorter than the
 * horizon, a non-finite loss: the message names set, scenario, account and
 * instrument), XM_ENOTPD, XM_ERESOURCE, ... with the detail in
 * xm_ctx_last_error(ctx). On a context made by --device auto, an OpenCL
 * device that fails with XM_ERESOURCE, XM_EOPENCL or XM_EBUILD is replaced
 * by the cpu backend and the run repeated there (said in out->notes and
 * xm_ctx_choice). */
xm_status xm_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                 const xm_config *cfg, const xm_run_opts *opts, xm_run_result *out);

/* xm_run split by scenarios across the ranks of an MPI communicator
 * (mpi_comm: the address of an MPI_Comm; docs/scaling.md): every rank
 * evaluates its part of each set's scenarios (part r of R: [S r / R, S (r +
 * 1) / R)) on the whole book, keeping per (account, component) the tail of
 * its losses (the k largest, the silo losses of the account's); rank 0
 * merges the ranks' tails in rank order, measures and combines them. *out on
 * rank 0 is bit for bit xm_run's in one process on the same backend; on the
 * other ranks it is empty (A = 0). Every rank returns the worst status of
 * all, a failure elsewhere named in xm_ctx_last_error ("rank r of R
 * failed"). Not with save_pnl, save_scenarios or an account range
 * (XM_EINVAL), nor collateral.method = scenario (XM_ECONFIG), nor
 * xm_options.tuning.chunk = -1; no cpu fallback of an OpenCL device.
 * XM_EUNSUPPORTED without XM_WITH_MPI. Collective: every rank calls it. */
xm_status xm_run_scenario_ranks(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                const xm_config *cfg, const xm_run_opts *opts, const void *mpi_comm,
                                xm_run_result *out);
/* Frees the arrays and zeroes *r; NULL is a no-op. */
void xm_run_result_free(xm_run_result *r);

/* Scenarios [s0, s0 + ns) x accounts [a0, a0 + na) of set x's losses (a
 * save_pnl run, in memory or on disk) into out[ns x na], scenario-major.
 * XM_EINVAL (no losses kept, or out of range), XM_EIO. */
xm_status xm_run_pnl_read(const xm_run_result *res, int64_t x, int64_t s0, int64_t ns, int64_t a0,
                          int64_t na, float *out);

/* What the results file records about a run besides its numbers. */
typedef struct xm_run_meta {
  const char *portfolio, *scenarios; /* input paths (hashed into the file) */
  const char *device;                /* backend, device and platform */
  const char *created_utc;           /* NULL: now */
  double elapsed_s;
} xm_run_meta;

/* Writes the results file of FORMAT.md section 3 for res atomically to path
 * (never over an input). XM_EINVAL, XM_EIO, XM_ENOMEM with messages in *diag. */
xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag);

/* The same file written by the processes of an MPI job together, each its
 * accounts' columns of /pnl with parallel HDF5 (a build with XM_WITH_MPI;
 * else XM_EUNSUPPORTED). Collective over mpi_comm, the address of an
 * MPI_Comm. Rank 0's res holds every account's rows (res->A the book's) but
 * for each set's pnl, which on every rank holds its own accounts' columns:
 * [S x pnl_count], scenario-major, of accounts [pnl_begin, pnl_begin +
 * pnl_count) (the ranks' ranges in rank order tiling the book: the layout
 * of xm_run on xm_run_opts.account_begin/end). Rank 0 writes everything else
 * into a temporary file, every rank its columns, and rank 0 renames the file
 * once all have closed it; on any failure no file is left. The other ranks'
 * res, pf, cfg and meta are read for the sets only. Every rank returns the
 * same status; each rank's messages are in its own *diag. */
xm_status xm_run_result_write_ranks(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                    const xm_run_result *res, const xm_run_meta *meta,
                                    int64_t pnl_begin, int64_t pnl_count, const void *mpi_comm,
                                    xm_diag *diag);

/* ---- Backtest (METHODOLOGY.md section 7, FORMAT.md section 4) ---------- */

/* The margins a backtest compares with the realised loss: enum constant,
 * name (the group of /stats and the suffix of /series/total_*). */
#define XM_BT_MARGIN_MAP(X)                                                                        \
  X(UNIFIED, "unified")                                                                            \
  X(CROSS_MARGINED, "cross_margined")                                                              \
  X(SILOED, "siloed")                                                                              \
  X(REQUIREMENT, "requirement")

typedef enum xm_bt_margin {
#define XM__BT_MARGIN_ENUM(NAME, name) XM_BT_##NAME,
  XM_BT_MARGIN_MAP(XM__BT_MARGIN_ENUM)
#undef XM__BT_MARGIN_ENUM
      XM_BT_NMARGIN
} xm_bt_margin;

/* "unified", ...; NULL outside the list. */
const char *xm_bt_margin_name(int margin);

/* The statistics of one exception sequence (an account's margin, a silo's,
 * the book's total). A silo in which the account holds nothing has none:
 * counts 0, the rest NaN, zone -1. */
typedef struct xm_bt_stats {
  int64_t exceptions_all; /* over the N days */
  int64_t exceptions;     /* over the N' test days */
  double observed_coverage, kupiec_lr, kupiec_p, christoffersen_lr, cc_lr, cc_p;
  int zone; /* -1 none, 0 green, 1 yellow, 2 red (xm_bt_zone_name) */
  /* procyclicality of the margin series (requirement and silo; NaN for the others),
   * and the days (series rows) of the largest increase, the first such pair (-1: none) */
  double peak_to_trough, max_increase;
  int64_t inc_from, inc_to;
} xm_bt_stats;

/* "green", "yellow", "red"; "" for -1; NULL otherwise. */
const char *xm_bt_zone_name(int zone);

/* A backtest; every array is owned by it (xm_backtest_result_free). Money in
 * each account's currency, totals (times X_b today) in the reporting one. */
typedef struct xm_backtest_result {
  int64_t N, n_tests, A, G, K, F;
  int64_t first_day;                   /* row d (1-based) of /history of the oldest backtest day */
  int horizon;                         /* h */
  char **day, **realised_end;          /* [N] the date of d, of d + h */
  int32_t *test_day;                   /* [N] 1 for the N' non-overlapping days of the tests */
  char **set;                          /* [K] the sets of every day, in run order */
  char **factor;                       /* [F] the factors the run moves */
  double *margin[XM_BT_NMARGIN];       /* each [N x A] */
  double *realised;                    /* [N x A] the realised h-day loss */
  double *silo_margin;                 /* [N x A x G] S_{a,g} + LQ_{a,g} */
  double *realised_by_silo;            /* [N x A x G] */
  int32_t *binding;                    /* [N x A] row of set */
  double *total_margin[XM_BT_NMARGIN]; /* each [N], reporting currency */
  double *total_realised;              /* [N] */
  xm_bt_stats *stats[XM_BT_NMARGIN];   /* each [A] */
  xm_bt_stats *silo_stats;             /* [A x G], against realised_by_silo */
  xm_bt_stats total_stats[XM_BT_NMARGIN];
  double *to_reporting; /* [A] X_b today */
  /* save_scenarios: per set, [N x S_max x F] (rows beyond a day's size NaN),
   * its largest size S_max over the days, and the jitter of a Monte Carlo
   * set per day [N] (NULL for the others). */
  double **shock;
  int64_t *shock_S;
  double **delta;
  double t_total; /* seconds */
  char notes[4096];
} xm_backtest_result;

/* Backtests today's book over the days of sf's /history (METHODOLOGY.md
 * section 7): for each day d the sets as of d (a run on the history
 * truncated at d), the margins of pf, the realised loss of the next h days,
 * and the statistics. opts->progress, when set, is called once per day
 * (done, N, the day's date). *out owned by the caller, also on failure.
 * Errors as xm_run's; XM_ECONFIG for the backtest keys. */
xm_status xm_backtest(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                      const xm_config *cfg, const xm_run_opts *opts, xm_backtest_result *out);

/* Every statistic of r (stats, silo_stats, total_stats) from its series, as
 * xm_backtest makes them: for a backtest run in day ranges (xm_run_opts
 * day_begin/end) whose rows were gathered into r. Replaces what r had.
 * XM_EINVAL (r not a backtest of pf and sf's days under cfg), XM_ENOMEM. */
xm_status xm_backtest_statistics(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                 const xm_config *cfg, xm_backtest_result *r);
void xm_backtest_result_free(xm_backtest_result *r);

/* Writes the backtest file of FORMAT.md section 4 atomically (never over an
 * input). XM_EINVAL, XM_EIO, XM_ENOMEM with messages in *diag. */
xm_status xm_backtest_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                   const xm_backtest_result *res, const xm_run_meta *meta,
                                   xm_diag *diag);

/* The backtest file written by the processes of an MPI job together, as
 * xm_run_result_write_ranks: rank 0's res holds every day's series and the
 * statistics; with --save-scenarios every rank's res->shock and delta hold
 * its days [day_begin, day_end) (the layout of xm_backtest on
 * xm_run_opts.day_begin/end, each set's rows padded with NaN to shock_S, the
 * set's largest size over every rank's days, the same on every rank), which
 * each rank writes with parallel HDF5. Without saved shocks rank 0 writes
 * the file alone. Collective; XM_EUNSUPPORTED without XM_WITH_MPI. */
xm_status xm_backtest_result_write_ranks(const char *path, const xm_portfolio *pf,
                                         const xm_config *cfg, const xm_backtest_result *res,
                                         const xm_run_meta *meta, int64_t day_begin,
                                         int64_t day_end, const void *mpi_comm, xm_diag *diag);

/* ---- Incremental (what-if) margin ------------------------------------------ */

/* A book prepared for what-ifs (host/whatif.c): its scenario sets made once,
 * the Monte Carlo sets drawn once on ctx's device and kept in host memory
 * (S x F doubles a set). Then an account's first what-if runs the account
 * and keeps its account and silo losses in every scenario (S x (G + 1)
 * doubles a set, host memory: up to 256 MiB of accounts, or a quarter of
 * xm_options.mem_limit; the least recently used go first), and each what-if
 * of it revalues only the trades and adds their losses to those (trades
 * that close a position, or leave less than 1/1024 of it, run the account
 * with them instead). Borrows
 * ctx, pf and sf, which must not change while it lives; owns the rest
 * (xm_prepared_free). Not for two threads at once. Errors as xm_run's. */
typedef struct xm_prepared xm_prepared;
xm_status xm_prepare(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                     const xm_config *cfg, xm_prepared **out);
void xm_prepared_free(xm_prepared *p);

/* A candidate trade: quantity added to the account's position in a row of
 * the book's /instruments (negative: a sale). */
typedef struct xm_trade {
  int32_t instrument;
  double quantity;
} xm_trade;

/* The outputs of account `account` of the prepared book with trades[0..n)
 * added to its positions: a run result of that one account (A = 1), equal to
 * the account's row of a full xm_run of the book so modified on the same
 * backend (to rounding: the kept losses and the trades' are summed in
 * another order). The sets are not made again; the account's own positions
 * are revalued once, at its first what-if. XM_EINVAL for an account or
 * instrument out of range or a quantity that is not finite; XM_ECONFIG when
 * the trades would change the factors the run moves (a first position on a
 * factor nothing held, or the last one closed: that changes every account's
 * Monte Carlo draws, so only a full run can say). *out owned by the caller
 * (xm_run_result_free), also on failure. */
xm_status xm_whatif(xm_prepared *p, int32_t account, const xm_trade *trades, int64_t n,
                    xm_run_result *out);

/* Each position's contribution to the account's binding-set measure with the
 * trades added (Euler allocation by the binding set's tail scenarios: for es
 * the position's mean loss over the k scenarios that make the account's ES,
 * ties by the lower scenario; for var its loss at the k-th; for worst its
 * weighted loss at the worst): the contributions add up to the binding set's
 * unfloored measure (its by_set entry when that is positive). One entry per
 * instrument the account holds after netting, by silo then instrument:
 * *out malloc'd [*n_out] (free()); 0 entries when it holds nothing. Priced on the
 * host with the shared pricing source. XM_ECONFIG with collateral.method =
 * scenario; errors otherwise as xm_whatif's. */
typedef struct xm_contribution {
  int32_t instrument; /* a row of /instruments */
  double quantity;    /* the net position */
  double contribution;
} xm_contribution;
xm_status xm_whatif_contributions(xm_prepared *p, int32_t account, const xm_trade *trades,
                                  int64_t n, xm_contribution **out, int64_t *n_out);

/* For a program that closes every file it opens (the CLI), called before
 * anything else: HDF5's exit handler is not run (HDF5 1.10's crashes on a file
 * whose write failed part way, a full disk). Not for programs that rely on
 * HDF5 closing their own files at exit (h5py). */
void xm_hdf5_skip_exit_handler(void);

/* Seconds on a monotonic clock (for timing runs). */
double xm_now(void);
/* Writes s as a JSON string, quotes and escapes included, to file (a FILE *). */
void xm_json_string(void *file, const char *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* XMARGIN_H */
