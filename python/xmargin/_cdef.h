/* The declarations of host/include/xmargin.h that the binding calls, for cffi's
 * ABI mode (no compiler at install time). Enumerations are int (their C size).
 * Every struct is declared field for field, in order: tests/python/test_py_api.py
 * compiles a C program against the real header and checks that sizeof and
 * offsetof of each match ffi.sizeof / ffi.offsetof. Keep it in step with the
 * header. */
typedef int xm_status;
typedef int xm_backend_kind;
typedef int xm_precision;
typedef int xm_measure;
typedef int xm_distribution;
typedef int xm_collateral_method;

const char *xm_strerror(xm_status code);
const char *xm_status_name(xm_status code);

typedef struct xm_device_info {
  xm_backend_kind backend;
  char spec[32];
  int platform_index;
  int device_index;
  int is_gpu;
  char platform[128];
  char name[128];
  char vendor[128];
  char version[64];
  char driver[64];
  unsigned compute_units;
  uint64_t global_mem;
  uint64_t local_mem;
  uint64_t max_alloc;
  int fp64;
} xm_device_info;

xm_status xm_devices_list(xm_device_info **out, size_t *n);
int xm_has_opencl(void);
void xm_devices_free(xm_device_info *list);

typedef struct xm_ctx xm_ctx;

typedef struct xm_options {
  const char *device;
  uint64_t mem_limit;
  int threads;
  int verbose;
  int profile;
  int auto_opencl_cpu;
  struct {
    int lws, mc_block, vec8;
    long mc_chunk, bt_days, chunk;
  } tuning;
  const char *fault;
} xm_options;

void xm_options_default(xm_options *opt);
void xm_options_from_env(xm_options *opt);
xm_status xm_ctx_create(xm_ctx **out, const xm_options *opt);
void xm_ctx_destroy(xm_ctx *ctx);
const char *xm_ctx_last_error(const xm_ctx *ctx);
const xm_device_info *xm_ctx_device(const xm_ctx *ctx);
const char *xm_ctx_choice(const xm_ctx *ctx);

const char *xm_type_name(int type);
const char *xm_factor_kind_name(int kind);
const char *xm_measure_name(int measure);

typedef struct xm_config {
  int horizon_days;
  double confidence;
  xm_precision precision;
  struct {
    int enabled;
    double ewma_lambda;
    double apc_floor;
    int filtered;
    int lookback;
    xm_measure measure;
  } historical;
  struct {
    int enabled;
    int64_t scenarios;
    xm_distribution distribution;
    double dof;
    uint64_t seed;
    double correlation_stress;
    xm_measure measure;
  } montecarlo;
  struct {
    double vol_floor;
    double vol_term_power;
  } pricing;
  struct {
    double offset_cap;
  } cross_margin;
  struct {
    double per_contract;
  } minimum;
  struct {
    double buffer;
    char stressed_start[11], stressed_end[11];
    double stressed_weight;
  } apc;
  struct {
    int days;
    int min_history;
    int64_t mc_scenarios;
    int ready_sets;
    double coverage;
    int apc_window;
  } backtest;
  struct {
    xm_collateral_method method;
  } collateral;
} xm_config;

void xm_config_default(xm_config *cfg);
xm_status xm_config_set(xm_config *cfg, const char *key, const char *value, char *err, size_t cap);
xm_status xm_config_load(xm_config *cfg, const char *path, char *err, size_t cap);
char *xm_config_to_ini(const xm_config *cfg);

typedef struct xm_diag {
  char **msg;
  size_t shown;
  size_t total;
} xm_diag;
void xm_diag_free(xm_diag *d);

typedef struct xm_portfolio {
  char *path;
  char valuation_date[16];
  char currency[16];
  int64_t n_factors;
  char **factor_name;
  int32_t *factor_kind;
  double *factor_level;
  double *factor_half_spread;
  double *factor_impact;
  double *factor_adv;
  double *factor_haircut;
  double *factor_collateral_limit;
  int64_t n_silos;
  char **silo_name;
  int64_t n_instruments;
  char **inst_id;
  int32_t *inst_type;
  int32_t *inst_silo;
  int32_t *inst_underlying;
  int32_t *inst_vol_factor;
  double *inst_strike;
  double *inst_expiry;
  int32_t *inst_call;
  double *inst_implied_vol;
  double *inst_rate;
  double *inst_dividend_yield;
  double *inst_multiplier;
  char **inst_currency;
  double *inst_funding_rate;
  int64_t n_accounts;
  char **account_id;
  int32_t *account_cross_margin;
  char **account_currency;
  int64_t n_fx;
  char **fx_currency;
  int32_t *fx_factor;
  int64_t n_collateral;
  int32_t *coll_account;
  int32_t *coll_factor;
  char **coll_currency;
  double *coll_quantity;
  int32_t *coll_silo;
  int64_t n_positions;
  int32_t *pos_account;
  int32_t *pos_instrument;
  double *pos_quantity;
} xm_portfolio;

typedef struct xm_scenario_set {
  char *name;
  int64_t n_scenarios;
  int64_t n_factors;
  char **factor;
  double *shock;
  char **label;
  double *weight;
  int32_t measure;
  double confidence;
} xm_scenario_set;

typedef struct xm_scenario_file {
  char *path;
  int64_t n_days;
  int64_t n_hfactors;
  char **hist_factor;
  char **hist_date;
  double *hist_return;
  int64_t n_sets;
  xm_scenario_set *sets;
} xm_scenario_file;

xm_status xm_portfolio_read(const char *path, xm_portfolio *out, xm_diag *diag);
void xm_portfolio_free(xm_portfolio *p);
xm_status xm_scenarios_read(const char *path, xm_scenario_file *out, xm_diag *diag);
void xm_scenarios_free(xm_scenario_file *s);
xm_status xm_portfolio_validate(const xm_portfolio *p, xm_diag *diag);
xm_status xm_scenarios_validate(const xm_scenario_file *s, xm_diag *diag);
xm_status xm_file_kind(const char *path, char *buf, size_t cap, int *version, xm_diag *diag);
xm_status xm_portfolio_write(const char *path, const xm_portfolio *p, xm_diag *diag);
xm_status xm_scenarios_write(const char *path, const xm_scenario_file *s, xm_diag *diag);
xm_status xm_output_check(const char *path, const char *const *inputs, int n_inputs, char *err,
                          size_t cap);

typedef void (*xm_progress_fn)(void *arg, int64_t done, int64_t total, const char *set);

typedef struct xm_run_opts {
  int save_pnl;
  int save_scenarios;
  xm_progress_fn progress;
  void *progress_arg;
  int64_t account_begin, account_end;
  int64_t day_begin, day_end;
  const char *pnl_dir;
} xm_run_opts;

typedef struct xm_run_set {
  char *name;
  int measure;
  double confidence;
  int64_t S, k;
  char **labels;
  double *shock;
  float *pnl;
} xm_run_set;

typedef struct xm_run_result {
  int64_t A, G, K, F;
  int64_t account_begin;
  char **factor;
  xm_run_set *sets;
  double *requirement, *unified, *siloed, *diversification, *minimum;
  double *by_set;
  double *by_silo;
  double *attribution;
  int32_t *binding;
  double *liquidity;
  double *liquidity_by_silo;
  double *requirement_by_silo;
  double *hedge_credit;
  double *cross_margined;
  int32_t *minimum_binds;
  double *collateral_value;
  double *collateral;
  double *excess;
  double *call;
  double *call_siloed;
  double *to_reporting;
  double jitter[2];
  int64_t n_blocks, tile;
  int shocks_resident;
  uint64_t mem_budget, mem_planned, sets_host_bytes;
  double t_prepare, t_scenarios, t_evaluate;
  char notes[4096];
  void *pnl_spool;
} xm_run_result;

xm_status xm_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                 const xm_config *cfg, const xm_run_opts *opts, xm_run_result *out);
void xm_run_result_free(xm_run_result *r);
xm_status xm_run_pnl_read(const xm_run_result *res, int64_t x, int64_t s0, int64_t ns, int64_t a0,
                          int64_t na, float *out);

typedef struct xm_run_meta {
  const char *portfolio, *scenarios;
  const char *device;
  const char *created_utc;
  double elapsed_s;
} xm_run_meta;

xm_status xm_run_result_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                              const xm_run_result *res, const xm_run_meta *meta, xm_diag *diag);
typedef struct xm_prepared xm_prepared;
xm_status xm_prepare(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                     const xm_config *cfg, xm_prepared **out);
void xm_prepared_free(xm_prepared *p);
typedef struct xm_trade {
  int32_t instrument;
  double quantity;
} xm_trade;
xm_status xm_whatif(xm_prepared *p, int32_t account, const xm_trade *trades, int64_t n,
                    xm_run_result *out);
typedef struct xm_contribution {
  int32_t instrument;
  double quantity;
  double contribution;
} xm_contribution;
xm_status xm_whatif_contributions(xm_prepared *p, int32_t account, const xm_trade *trades,
                                  int64_t n, xm_contribution **out, int64_t *n_out);
double xm_now(void);
void free(void *);
