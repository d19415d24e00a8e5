/* Synthetic books of any size (`xmargin generate`): a portfolio and a scenario
 * file (FORMAT.md) built from the demo book's account templates
 * (datasets/README.md) over F factors, with a correlated daily history and
 * ready-made `stress` and `span_grid` sets. Not part of libxmargin: the
 * static library xm_generator (datasets/generator/CMakeLists.txt), linked by
 * the CLI and tests/test_generate.c, on top of libxmargin's io/ structs.
 *
 * Deterministic: every random draw is Philox4x32-10 keyed by the seed, with a
 * counter per (stream, item, draw), and every transcendental function is the
 * generator's own (+, *, / and sqrt only, IEEE-754 round to nearest), so the
 * same parameters give the same numbers on any machine and any thread count. */
#ifndef XM_GENERATE_H
#define XM_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin.h"

#define XM_GEN_DEFAULT_FACTORS 64
#define XM_GEN_DEFAULT_DAYS 750
#define XM_GEN_DEFAULT_SEED 1
#define XM_GEN_MIN_FACTORS 4
#define XM_GEN_MAX_FACTORS 100000
#define XM_GEN_MIN_DAYS 2
#define XM_GEN_MAX_DAYS 100000
#define XM_GEN_MAX_HISTORY_VALUES 250000000LL /* days x factors (2 GB of float64) */
#define XM_GEN_MAX_INSTRUMENTS 100000000LL
#define XM_GEN_MAX_POSITIONS 1000000000LL

/* The account templates of the demo book (datasets/README.md), generalised
 * to many underlyings. */
enum {
  XM_GEN_T_INDEX_MM = 0,      /* index options, delta-hedged with index futures */
  XM_GEN_T_FUTOPT_MM,         /* options on futures, hedged with the futures */
  XM_GEN_T_BASIS,             /* ETF (or coin) vs futures, notional-matched */
  XM_GEN_T_COVERED_CALL,      /* long ETF/stock, short calls */
  XM_GEN_T_PROTECTIVE_PUT,    /* long ETF/stock, long puts, some collars */
  XM_GEN_T_SHORT_STRANGLE,    /* short OTM puts and calls */
  XM_GEN_T_CRYPTO_BASIS,      /* long coin vs short CME futures, some short calls */
  XM_GEN_T_CRYPTO_OPTIONS,    /* Deribit-style books hedged with coin or CME futures */
  XM_GEN_T_COMMODITY_OPTIONS, /* commodity futures options hedged with the futures */
  XM_GEN_T_DIRECTIONAL,       /* 1-4 unhedged lines */
  XM_GEN_T_MULTI_ASSET,       /* several of the above in one account */
  XM_GEN_T_COIN_MARGINED,     /* coin-margined (account currency BTC, ...): Deribit-style
                                 inverse options hedged with inverse perpetuals or futures */
  XM_GEN_T_COUNT
};

/* The /collateral table (FORMAT.md section 1, METHODOLOGY.md section 6). */
enum {
  XM_GEN_COLLATERAL_NONE = 0, /* no /collateral table */
  XM_GEN_COLLATERAL_MIXED,    /* holdings per account, about 1 in 10 posted to no silo
                                 (silo -1): for collateral.method = schedule */
  XM_GEN_COLLATERAL_SILOED,   /* every holding posted to a silo: valid under both methods */
  XM_GEN_COLLATERAL_COUNT
};

typedef struct xm_gen_params {
  int64_t accounts;     /* A >= 1 */
  int64_t instruments;  /* I >= xm_gen_min_instruments(factors) */
  int64_t positions;    /* N >= A */
  int64_t factors;      /* F >= XM_GEN_MIN_FACTORS */
  int64_t history_days; /* T */
  uint64_t seed;
  int collateral; /* XM_GEN_COLLATERAL_*, default NONE */
} xm_gen_params;

typedef struct xm_gen_stats {
  int64_t underlyings;                 /* groups of factors: an index, a stock, ... */
  int64_t by_class[4];                 /* index, stock, commodity, crypto */
  int64_t option_classes;              /* option roots (SPX, SPY, ESO, ...) */
  int64_t by_template[XM_GEN_T_COUNT]; /* accounts per template */
  int64_t non_cross;                   /* accounts with cross_margin = 0 */
  int64_t max_account_positions;
  int64_t held_instruments;    /* instruments in at least one position */
  int64_t coin_accounts;       /* accounts whose currency is not the reporting one */
  int64_t collateral_accounts; /* accounts with at least one holding */
  int64_t collateral_cash;     /* holdings of cash (factor -1) */
  int64_t collateral_unposted; /* holdings posted to no silo (silo -1) */
} xm_gen_stats;

void xm_gen_defaults(xm_gen_params *p);
const char *xm_gen_template_name(int t);
/* "none", "mixed", "siloed"; xm_gen_collateral_mode: the mode of a name, -1 if none. */
const char *xm_gen_collateral_name(int mode);
int xm_gen_collateral_mode(const char *name);

/* The fewest instruments F factors need: every linear product plus a put and
 * a call of every option class. 0 when factors is out of range. */
int64_t xm_gen_min_instruments(int64_t factors);

/* Checks the parameters; on a bad one writes a message naming it into
 * err[cap] and returns XM_EINVAL. */
xm_status xm_gen_check(const xm_gen_params *p, char *err, size_t cap);

/* Builds the book and the scenario file in memory (free them with
 * xm_gen_free). The book is a version-2 one (FORMAT.md section 1): it fills
 * inst_currency and inst_funding_rate for every instrument, account_currency
 * for every account, the /fx table (n_fx, fx_currency, fx_factor), the
 * liquidity and collateral columns of every factor (factor_half_spread,
 * factor_impact, factor_adv, factor_haircut, factor_collateral_limit) and,
 * unless p->collateral is XM_GEN_COLLATERAL_NONE, the /collateral table.
 * stats may be NULL. XM_EINVAL for parameters xm_gen_check rejects,
 * XM_ENOMEM. */
xm_status xm_generate(const xm_gen_params *p, xm_portfolio *port, xm_scenario_file *scen,
                      xm_gen_stats *stats);

/* Frees what xm_generate made: the version-2 columns (currencies, funding,
 * /fx) first, then the rest with xm_portfolio_free / xm_scenarios_free (so
 * that nothing leaks whichever of them the io layer's free knows). Either
 * may be NULL. */
void xm_gen_free(xm_portfolio *port, xm_scenario_file *scen);

/* The generator's portable math, exposed for the tests: exp, log (x > 0),
 * the standard normal CDF (|error| < 1e-7) and its inverse (p in (0, 1),
 * relative error < 1.2e-9). */
double xm_gen_exp(double x);
double xm_gen_log(double x);
double xm_gen_ncdf(double x);
double xm_gen_ninv(double p);

#endif
