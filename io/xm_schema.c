/* io/: the column tables of the portfolio and scenario files (xm_schema.h):
 * FORMAT.md sections 1 and 2, one table per group, in FORMAT.md's order
 * (the order the reader reads, the writer writes and the messages come). */
#include <stdlib.h>
#include <string.h>

#include "xm_schema.h"
#include "xm_tables.h"

static const xm__codes xm__factor_kinds = {xm__factor_kind_names, XM_FACTOR_KIND_COUNT,
                                           "factor kind", ~0u};
/* Types the engine does not revalue yet are read (validation names them) but
 * not offered. */
static const xm__codes xm__instrument_types = {xm__type_names, XM_TYPE_COUNT, "instrument type",
                                               (unsigned)XM_TYPES_BOOK};

/* A column of a portfolio table (one length: the table's count n); XM__O
 * an optional one (version 2: NULL when absent, every row the default). */
#define XM__COL(name, elem, req, field, n, codes)                                                  \
  {                                                                                                \
    name, elem, req, offsetof(xm_portfolio, field), offsetof(xm_portfolio, n), XM__RANK1, codes,   \
        NULL, NULL                                                                                 \
  }
#define XM__P(name, elem, field, n, codes) XM__COL(name, elem, 1, field, n, codes)
#define XM__O(name, elem, field, n) XM__COL(name, elem, 0, field, n, NULL)

static const xm__column xm__factor_cols[] = {
    XM__P("name", XM__STRING, factor_name, n_factors, NULL),
    XM__P("kind", XM__STRING, factor_kind, n_factors, &xm__factor_kinds),
    XM__P("level", XM__FLOAT, factor_level, n_factors, NULL),
    XM__O("half_spread", XM__FLOAT, factor_half_spread, n_factors),
    XM__O("impact", XM__FLOAT, factor_impact, n_factors),
    XM__O("adv", XM__FLOAT, factor_adv, n_factors),
    XM__O("haircut", XM__FLOAT, factor_haircut, n_factors),
    XM__O("collateral_limit", XM__FLOAT, factor_collateral_limit, n_factors),
};

static const xm__column xm__silo_cols[] = {
    XM__P("name", XM__STRING, silo_name, n_silos, NULL),
};

static const xm__column xm__instrument_cols[] = {
    XM__P("id", XM__STRING, inst_id, n_instruments, NULL),
    XM__P("type", XM__STRING, inst_type, n_instruments, &xm__instrument_types),
    XM__P("silo", XM__INT, inst_silo, n_instruments, NULL),
    XM__P("underlying", XM__INT, inst_underlying, n_instruments, NULL),
    XM__P("vol_factor", XM__INT, inst_vol_factor, n_instruments, NULL),
    XM__P("strike", XM__FLOAT, inst_strike, n_instruments, NULL),
    XM__P("expiry", XM__FLOAT, inst_expiry, n_instruments, NULL),
    XM__P("call", XM__INT, inst_call, n_instruments, NULL),
    XM__P("implied_vol", XM__FLOAT, inst_implied_vol, n_instruments, NULL),
    XM__P("rate", XM__FLOAT, inst_rate, n_instruments, NULL),
    XM__P("dividend_yield", XM__FLOAT, inst_dividend_yield, n_instruments, NULL),
    XM__P("multiplier", XM__FLOAT, inst_multiplier, n_instruments, NULL),
    XM__O("currency", XM__STRING, inst_currency, n_instruments),
    XM__O("funding_rate", XM__FLOAT, inst_funding_rate, n_instruments),
};

static const xm__column xm__account_cols[] = {
    XM__P("id", XM__STRING, account_id, n_accounts, NULL),
    XM__P("cross_margin", XM__INT, account_cross_margin, n_accounts, NULL),
    XM__O("currency", XM__STRING, account_currency, n_accounts),
};

/* Version 2's optional tables: an absent group is 0 rows. */
static const xm__column xm__fx_cols[] = {
    XM__P("currency", XM__STRING, fx_currency, n_fx, NULL),
    XM__P("factor", XM__INT, fx_factor, n_fx, NULL),
};

static const xm__column xm__collateral_cols[] = {
    XM__P("account", XM__INT, coll_account, n_collateral, NULL),
    XM__P("factor", XM__INT, coll_factor, n_collateral, NULL),
    XM__O("currency", XM__STRING, coll_currency, n_collateral),
    XM__P("quantity", XM__FLOAT, coll_quantity, n_collateral, NULL),
    XM__P("silo", XM__INT, coll_silo, n_collateral, NULL),
};

static const xm__column xm__position_cols[] = {
    XM__P("account", XM__INT, pos_account, n_positions, NULL),
    XM__P("instrument", XM__INT, pos_instrument, n_positions, NULL),
    XM__P("quantity", XM__FLOAT, pos_quantity, n_positions, NULL),
};
#undef XM__O
#undef XM__P
#undef XM__COL

#define XM__NCOLS(c) ((int)(sizeof c / sizeof c[0]))
_Static_assert(XM__NCOLS(xm__instrument_cols) <= XM__MAX_COLUMNS, "the widest table");
#define XM__T(group, cols, n, empty)                                                               \
  { group, XM__TABLE, cols, XM__NCOLS(cols), offsetof(xm_portfolio, n), empty, 0 }
/* An optional table (empty NULL: it may have no rows). */
#define XM__TO(group, cols, n)                                                                     \
  { group, XM__TABLE, cols, XM__NCOLS(cols), offsetof(xm_portfolio, n), NULL, 1 }

const xm__table xm__portfolio_tables[XM__PORTFOLIO_TABLES] = {
    XM__T("/factors", xm__factor_cols, n_factors, "at least one risk factor is required"),
    XM__T("/silos", xm__silo_cols, n_silos, "at least one silo is required"),
    XM__T("/instruments", xm__instrument_cols, n_instruments, "nothing to margin"),
    XM__T("/accounts", xm__account_cols, n_accounts, "nothing to margin"),
    XM__TO("/fx", xm__fx_cols, n_fx),
    XM__TO("/collateral", xm__collateral_cols, n_collateral),
    XM__T("/positions", xm__position_cols, n_positions, "nothing to margin"),
};
#undef XM__TO
#undef XM__T

/* /history (into xm_scenario_file): factor [F_h], date [T], return [T x F_h]. */
#define XM__H(f) offsetof(xm_scenario_file, f)
static const xm__column xm__history_cols[] = {
    {"factor", XM__STRING, 1, XM__H(hist_factor), XM__H(n_hfactors), XM__RANK1, NULL,
     "the history must have at least one factor", NULL},
    {"date", XM__STRING, 1, XM__H(hist_date), XM__H(n_days), XM__RANK1, NULL,
     "the history must have at least one day", NULL},
    {"return", XM__FLOAT, 1, XM__H(hist_return), XM__H(n_days), XM__H(n_hfactors), NULL, NULL,
     "[T x F_h] (lengths of date and factor)"},
};
#undef XM__H

const xm__table xm__history_table = {
    "/history", XM__ARRAYS, xm__history_cols, XM__NCOLS(xm__history_cols), 0, NULL, 0};

/* /sets/<name> (into xm_scenario_set): factor [F_s], shock [S x F_s], label
 * [S], weight [S] (optional). */
#define XM__S(f) offsetof(xm_scenario_set, f)
static const xm__column xm__set_cols[] = {
    {"factor", XM__STRING, 1, XM__S(factor), XM__S(n_factors), XM__RANK1, NULL,
     "a set must move at least one factor", NULL},
    {"shock", XM__FLOAT, 1, XM__S(shock), XM__S(n_scenarios), XM__S(n_factors), NULL, NULL,
     "[S x F_s] (lengths of label and factor)"},
    {"label", XM__STRING, 1, XM__S(label), XM__S(n_scenarios), XM__RANK1, NULL,
     "a set must have at least one scenario", NULL},
    {"weight", XM__FLOAT, 0, XM__S(weight), XM__S(n_scenarios), XM__RANK1, NULL, NULL,
     "one weight per scenario"},
};
#undef XM__S

const xm__table xm__set_table = {"/sets", XM__ARRAYS, xm__set_cols, XM__NCOLS(xm__set_cols), 0,
                                 NULL,    0};
#undef XM__NCOLS

const xm__column *xm__count_owner(const xm__table *t, size_t rows) {
  for (int k = 0; k < t->ncols; k++)
    if (t->cols[k].rows == rows && t->cols[k].cols == XM__RANK1)
      return &t->cols[k];
  return NULL;
}

void xm__table_free(const xm__table *t, void *base) {
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *c = &t->cols[k];
    void *a = xm__col_get(base, c->at);
    if (c->elem == XM__STRING && !c->codes)
      xm__free_strings(a, xm__count_get(base, c->rows));
    else
      free(a);
    xm__col_set(base, c->at, NULL);
  }
}

void xm__free_strings(char **s, int64_t n) {
  if (!s)
    return;
  for (int64_t i = 0; i < n; i++)
    free(s[i]);
  free(s);
}
