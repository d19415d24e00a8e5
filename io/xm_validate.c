/* io/: the rules of FORMAT.md sections 1 and 2 that the structs in memory
 * can show, and xm_portfolio_validate / xm_scenarios_validate (xm_io.h).
 * xm_validate.h says who calls what. Every violation is one message "file:
 * /dataset[row] = value: rule" in the caller's xm_diag; checking goes on
 * after an error (a rule that needs a broken or NULL column is skipped).
 * No HDF5 here; nothing is written through a struct's pointers. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_io.h"
#include "xm_names.h"
#include "xm_schema.h"
#include "xm_tables.h"
#include "xm_validate.h"

/* ---- Messages ------------------------------------------------------------------ */

void xm__vreport(xm__check *c, const char *fmt, va_list ap) {
  char buf[XM__MSG_CAP];
  vsnprintf(buf, sizeof buf, fmt, ap);
  xm_diag_add(c->diag, "%s: %s", c->file, buf);
}

void xm__violation(xm__check *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  xm__vreport(c, fmt, ap);
  va_end(ap);
  c->nerr++;
}

void xm__check_nomem(xm__check *c, const char *what) {
  xm_diag_add(c->diag, "%s: %s: out of memory", c->file, what);
  c->nomem++;
}

xm_status xm__check_status(const xm__check *c) {
  if (c->nomem)
    return XM_ENOMEM;
  if (c->nerr)
    return XM_EFORMAT;
  return XM_OK;
}

void xm__names_list(const char *const *names, int n, unsigned listed, char *buf, size_t cap) {
  if (cap == 0)
    return;
  buf[0] = '\0';
  for (int k = 0; k < n; k++) {
    if (!((listed >> k) & 1u))
      continue;
    size_t l = strlen(buf);
    snprintf(buf + l, cap - l, "%s%s", l ? ", " : "", names[k]);
  }
}

/* ---- Rules on single values ------------------------------------------------------ */

int xm__iso_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return 0;
  int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  int m = (s[5] - '0') * 10 + (s[6] - '0');
  int d = (s[8] - '0') * 10 + (s[9] - '0');
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
    return 0;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 0;
  return 1;
}

/* Strings must be ASCII or UTF-8 (FORMAT.md) and hold no control character
 * (C0, DEL, C1): what h5py decodes, what JSON and a terminal show as written. */
const char *xm__text_rule(const char *s, size_t *at) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; p[i];) {
    *at = i;
    unsigned c = p[i];
    if (c < 0x20 || c == 0x7f)
      return "holds a control character";
    if (c < 0x80) {
      i++;
      continue;
    }
    int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : -1;
    if (n < 0 || c > 0xf4)
      return "is not valid UTF-8";
    unsigned cp = c & (0x3f >> n);
    for (int k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return "is not valid UTF-8";
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return "is not valid UTF-8";
    if (cp >= 0x80 && cp <= 0x9f)
      return "holds a control character";
    i += (size_t)n + 1;
  }
  return NULL;
}

int xm__rule_valuation_date(xm__check *c, const char *s) {
  if (xm__iso_date(s))
    return 1;
  xm__violation(c, "/: attribute valuation_date = '%.64s': must be an ISO date YYYY-MM-DD", s);
  return 0;
}

#define XM__CURRENCY_CAP sizeof(((xm_portfolio *)0)->currency)

int xm__rule_currency(xm__check *c, const char *s) {
  if (s[0] != '\0' && strlen(s) < XM__CURRENCY_CAP)
    return 1;
  xm__violation(c, "/: attribute currency = '%.64s': must be 1 to %zu characters", s,
                XM__CURRENCY_CAP - 1);
  return 0;
}

int xm__rule_set_name(xm__check *c, const char *name) {
  size_t n = strlen(name), bad = n;
  for (size_t i = 0; i < n && bad == n; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-'))
      bad = i;
  }
  if (n >= 1 && n <= XM_SET_NAME_MAX && bad == n && strcmp(name, "account") != 0)
    return 1;
  char shown[48];
  size_t k = 0;
  for (; k < 40 && name[k]; k++)
    shown[k] = name[k] > 0x20 && name[k] < 0x7f ? name[k] : '?';
  shown[k] = '\0';
  if (n == 0 || strcmp(name, "account") == 0)
    xm__violation(c, "/sets/%s: '%s' is not a set name: %s", shown, shown,
                  n ? "'account' names the account dimension" : "empty");
  else if (n > XM_SET_NAME_MAX)
    xm__violation(c, "/sets/%s%s: a set name of %zu characters: at most %d", shown,
                  n > 40 ? "..." : "", n, XM_SET_NAME_MAX);
  else
    xm__violation(c,
                  "/sets/%s%s: set name has %s%c%s (byte 0x%02x) at character %zu: only letters, "
                  "digits, _ and - are allowed",
                  shown, n > 40 ? "..." : "", "'",
                  name[bad] >= 0x20 && name[bad] < 0x7f ? name[bad] : '?', "'",
                  (unsigned)(unsigned char)name[bad], bad + 1);
  return 0;
}

int xm__rule_confidence(xm__check *c, const char *group, double conf) {
  if (conf > 0 && conf < 1)
    return 1;
  xm__violation(c, "%s: attribute confidence = %g: confidence must be in (0, 1)", group, conf);
  return 0;
}

/* ---- Rules on columns ------------------------------------------------------------ */

/* Names in s[n] must be non-empty and unique (NULL entries are skipped:
 * reported as such by the caller). Each repeat is reported at its row, in
 * row order, with the first row of its name. */
static void xm__check_names(xm__check *c, const char *path, char *const *s, int64_t n,
                            const char *what) {
  if (!s)
    return;
  for (int64_t i = 0; i < n; i++)
    if (s[i] && s[i][0] == '\0')
      xm__violation(c, "%s[%lld] = '': %s must not be empty", path, (long long)i, what);
  if (n < 2)
    return;
  xm__names *ix = NULL;
  if (xm__names_build(&ix, s, n) != XM_OK) { /* n <= INT32_MAX: checked before */
    xm__check_nomem(c, path);
    return;
  }
  if (xm__names_duplicates(ix, NULL, NULL) > 0)
    for (int64_t j = 0; j < n; j++) {
      int64_t i = s[j] && s[j][0] ? xm__names_find(ix, s[j]) : j;
      if (i != j)
        xm__violation(c, "%s[%lld] = '%.64s': duplicate %s (first at row %lld)", path, (long long)j,
                      s[j], what, (long long)i);
    }
  xm__names_free(ix);
}

static void xm__check_finite(xm__check *c, const char *path, const double *v, int64_t n) {
  if (!v)
    return;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      xm__violation(c, "%s[%lld] = %g: must be a finite number", path, (long long)i, v[i]);
}

/* Every element of a [rows x cols] matrix must be finite. */
static void xm__check_finite2(xm__check *c, const char *path, const double *v, int64_t rows,
                              int64_t cols) {
  if (!v)
    return;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      if (!isfinite(v[i * cols + j]))
        xm__violation(c, "%s[%lld, %lld] = %g: must be a finite number", path, (long long)i,
                      (long long)j, v[i * cols + j]);
}

/* idx[n] must be rows of a table of m rows (allow_none: -1 means none). */
static void xm__check_index(xm__check *c, const char *path, const int32_t *idx, int64_t n,
                            int64_t m, const char *table, int allow_none) {
  if (!idx)
    return;
  for (int64_t i = 0; i < n; i++) {
    if (allow_none && idx[i] == -1)
      continue;
    if (idx[i] < 0 || idx[i] >= m)
      xm__violation(c, "%s[%lld] = %d: index out of range: must be a row of %s (0..%lld)%s", path,
                    (long long)i, idx[i], table, (long long)m - 1,
                    allow_none ? " or -1 for none" : "");
  }
}

/* ---- Portfolio (FORMAT.md section 1) ---------------------------------------------- */

/* 1 when code t is an option type (an unknown code is not). */
static int xm__is_option(int32_t t) { return t >= 0 && t < XM_TYPE_COUNT && XM_TYPE_IS_OPTION(t); }

/* The name of factor f for messages. */
static const char *xm__factor_shown(const xm_portfolio *p, int32_t f) {
  return p->factor_name && p->factor_name[f] ? p->factor_name[f] : "?";
}

void xm__portfolio_check(xm__check *c, const xm_portfolio *p) {
  /* factors */
  xm__check_names(c, "/factors/name", p->factor_name, p->n_factors, "factor name");
  xm__check_finite(c, "/factors/level", p->factor_level, p->n_factors);
  if (p->factor_level && p->factor_kind)
    for (int64_t i = 0; i < p->n_factors; i++)
      if (p->factor_kind[i] == XM_FACTOR_PRICE && isfinite(p->factor_level[i]) &&
          p->factor_level[i] <= 0)
        xm__violation(c, "/factors/level[%lld] = %g: level must be > 0 for a price factor",
                      (long long)i, p->factor_level[i]);
  xm__check_names(c, "/silos/name", p->silo_name, p->n_silos, "silo name");

  /* instruments */
  int64_t ni = p->n_instruments;
  xm__check_names(c, "/instruments/id", p->inst_id, ni, "instrument id");
  xm__check_index(c, "/instruments/silo", p->inst_silo, ni, p->n_silos, "/silos/name", 0);
  xm__check_index(c, "/instruments/underlying", p->inst_underlying, ni, p->n_factors, "/factors",
                  0);
  xm__check_index(c, "/instruments/vol_factor", p->inst_vol_factor, ni, p->n_factors, "/factors",
                  1);
  if (p->factor_kind) {
    for (int64_t i = 0; i < ni; i++) {
      int32_t u = p->inst_underlying ? p->inst_underlying[i] : -1;
      if (u >= 0 && u < p->n_factors && p->factor_kind[u] != XM_FACTOR_PRICE)
        xm__violation(c,
                      "/instruments/underlying[%lld] = %d: the underlying must be a price factor "
                      "(factor '%.64s' is not)",
                      (long long)i, u, xm__factor_shown(p, u));
      int32_t v = p->inst_vol_factor ? p->inst_vol_factor[i] : -1;
      if (v >= 0 && v < p->n_factors && p->factor_kind[v] != XM_FACTOR_VOL)
        xm__violation(c,
                      "/instruments/vol_factor[%lld] = %d: the vol factor must be a vol factor "
                      "(factor '%.64s' is not)",
                      (long long)i, v, xm__factor_shown(p, v));
    }
  }
  /* a type of a later FORMAT.md version than the engine revalues */
  for (int64_t i = 0; p->inst_type && i < ni; i++)
    if (p->inst_type[i] >= 0 && p->inst_type[i] < XM_TYPE_COUNT &&
        !XM_TYPE_IN_BOOKS(p->inst_type[i]))
      xm__violation(c,
                    "/instruments/type[%lld] = '%s': a type of a later format version than this "
                    "xmargin margins (FORMAT.md version %d types only; xm_price prices it)",
                    (long long)i, xm_type_name(p->inst_type[i]), XM_FORMAT_BOOK_VERSION);
  xm__check_finite(c, "/instruments/strike", p->inst_strike, ni);
  xm__check_finite(c, "/instruments/expiry", p->inst_expiry, ni);
  xm__check_finite(c, "/instruments/implied_vol", p->inst_implied_vol, ni);
  xm__check_finite(c, "/instruments/rate", p->inst_rate, ni);
  xm__check_finite(c, "/instruments/dividend_yield", p->inst_dividend_yield, ni);
  xm__check_finite(c, "/instruments/multiplier", p->inst_multiplier, ni);
  for (int64_t i = 0; i < ni; i++) {
    if (p->inst_multiplier && isfinite(p->inst_multiplier[i]) && p->inst_multiplier[i] <= 0)
      xm__violation(c, "/instruments/multiplier[%lld] = %g: multiplier must be > 0", (long long)i,
                    p->inst_multiplier[i]);
    if (!p->inst_type || !xm__is_option(p->inst_type[i]))
      continue;
    if (p->inst_strike && isfinite(p->inst_strike[i]) && p->inst_strike[i] <= 0)
      xm__violation(c, "/instruments/strike[%lld] = %g: strike must be > 0", (long long)i,
                    p->inst_strike[i]);
    if (p->inst_expiry && isfinite(p->inst_expiry[i]) && p->inst_expiry[i] < 0)
      xm__violation(c, "/instruments/expiry[%lld] = %g: expiry must be >= 0", (long long)i,
                    p->inst_expiry[i]);
    if (p->inst_implied_vol && isfinite(p->inst_implied_vol[i]) && p->inst_implied_vol[i] < 0)
      xm__violation(c, "/instruments/implied_vol[%lld] = %g: implied_vol must be >= 0",
                    (long long)i, p->inst_implied_vol[i]);
    if (p->inst_call && p->inst_call[i] != 0 && p->inst_call[i] != 1)
      xm__violation(c, "/instruments/call[%lld] = %d: call must be 1 (call) or 0 (put)",
                    (long long)i, p->inst_call[i]);
  }

  /* accounts and positions */
  xm__check_names(c, "/accounts/id", p->account_id, p->n_accounts, "account id");
  if (p->account_cross_margin)
    for (int64_t i = 0; i < p->n_accounts; i++)
      if (p->account_cross_margin[i] != 0 && p->account_cross_margin[i] != 1)
        xm__violation(c, "/accounts/cross_margin[%lld] = %d: cross_margin must be 0 or 1",
                      (long long)i, p->account_cross_margin[i]);
  xm__check_index(c, "/positions/account", p->pos_account, p->n_positions, p->n_accounts,
                  "/accounts", 0);
  xm__check_index(c, "/positions/instrument", p->pos_instrument, p->n_positions, p->n_instruments,
                  "/instruments", 0);
  xm__check_finite(c, "/positions/quantity", p->pos_quantity, p->n_positions);
}

/* ---- Scenario file (FORMAT.md section 2) --------------------------------------------- */

void xm__history_check(xm__check *c, const xm_scenario_file *s) {
  xm__check_names(c, "/history/factor", s->hist_factor, s->n_hfactors, "factor name");
  for (int64_t t = 0; s->hist_date && t < s->n_days; t++) {
    const char *d = s->hist_date[t], *prev = t > 0 ? s->hist_date[t - 1] : NULL;
    if (!d)
      continue;
    if (!xm__iso_date(d))
      xm__violation(c, "/history/date[%lld] = '%.32s': must be an ISO date YYYY-MM-DD",
                    (long long)t, d);
    else if (prev && xm__iso_date(prev) && strcmp(prev, d) >= 0)
      xm__violation(c,
                    "/history/date[%lld] = '%s': dates must be strictly increasing (previous '%s')",
                    (long long)t, d, prev);
  }
  xm__check_finite2(c, "/history/return", s->hist_return, s->n_days, s->n_hfactors);
}

static const char *const xm__reserved_sets[] = {"historical", "montecarlo", "montecarlo_stressed"};

void xm__set_check(xm__check *c, const xm_scenario_set *set) {
  char g[XM__PATH_CAP], path[XM__PATH_CAP + 16];
  snprintf(g, sizeof g, "/sets/%s", set->name ? set->name : "?");
  for (size_t k = 0; set->name && k < sizeof xm__reserved_sets / sizeof xm__reserved_sets[0]; k++)
    if (strcmp(set->name, xm__reserved_sets[k]) == 0)
      xm__violation(c, "%s: set name '%s' is reserved for the sets xmargin generates", g,
                    set->name);
  snprintf(path, sizeof path, "%s/factor", g);
  xm__check_names(c, path, set->factor, set->n_factors, "factor name");
  snprintf(path, sizeof path, "%s/shock", g);
  xm__check_finite2(c, path, set->shock, set->n_scenarios, set->n_factors);
  snprintf(path, sizeof path, "%s/weight", g);
  for (int64_t i = 0; set->weight && i < set->n_scenarios; i++)
    if (!isfinite(set->weight[i]) || set->weight[i] < 0)
      xm__violation(c, "%s[%lld] = %g: weight must be finite and >= 0", path, (long long)i,
                    set->weight[i]);
  if (set->measure < 0 || set->measure >= XM_MEASURE_COUNT) {
    char allowed[128];
    xm__names_list(xm__measure_names, XM_MEASURE_COUNT, ~0u, allowed, sizeof allowed);
    xm__violation(c, "%s: attribute measure = code %d: must be one of %s", g, (int)set->measure,
                  allowed);
  }
  if (!isnan(set->confidence))
    xm__rule_confidence(c, g, set->confidence);
}

/* ---- Structs built in memory ------------------------------------------------------ */

/* What the reader checks on the file, checked on the arrays of table t in
 * base (its group is named group): counts >= 0, no empty table or list,
 * required arrays given, strings that are text, codes of the enumeration.
 * Returns 0 when a count is unusable (the values are not looked at). */
/* A table's or list's row count n at where: in 0..INT32_MAX (0 after a
 * message otherwise), and not 0 (a message, why empty says). */
static int xm__rows_rule(xm__check *c, const char *where, int64_t n, const char *empty) {
  if (n < 0 || n > INT32_MAX) {
    xm__violation(c, "%s: has %lld rows: a count must be in 0..%d (int32 indices)", where,
                  (long long)n, INT32_MAX);
    return 0;
  }
  if (n == 0)
    xm__violation(c, "%s: has no rows: %s", where, empty);
  return 1;
}

static int xm__memory_table(xm__check *c, const xm__table *t, const char *group, const void *base) {
  char path[XM__PATH_CAP + 64];
  if (t->layout == XM__TABLE) {
    if (!xm__rows_rule(c, group, xm__count_get(base, t->rows), t->empty))
      return 0;
  }
  for (int k = 0; k < t->ncols; k++) { /* the counts the lists own */
    const xm__column *col = &t->cols[k];
    if (t->layout != XM__ARRAYS || xm__count_owner(t, col->rows) != col)
      continue;
    snprintf(path, sizeof path, "%s/%s", group, col->name);
    if (!xm__rows_rule(c, path, xm__count_get(base, col->rows), col->empty))
      return 0;
  }
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    int64_t n = xm__count_get(base, col->rows);
    int64_t m = col->cols == XM__RANK1 ? 1 : xm__count_get(base, col->cols);
    snprintf(path, sizeof path, "%s/%s", group, col->name);
    if (m > 0 && n > INT64_MAX / m) {
      xm__violation(c, "%s: [%lld x %lld] elements: more than a count can hold", path, (long long)n,
                    (long long)m);
      return 0;
    }
    const void *a = xm__col_get(base, col->at);
    if (!a) {
      if (col->required && n * m > 0)
        xm__violation(c, "%s = NULL: a required column must hold its %lld values", path,
                      (long long)(n * m));
      continue;
    }
    if (col->codes) {
      char allowed[256];
      xm__names_list(col->codes->names, col->codes->count, col->codes->listed, allowed,
                     sizeof allowed);
      const int32_t *v = a;
      for (int64_t i = 0; i < n; i++)
        if (v[i] < 0 || v[i] >= col->codes->count)
          xm__violation(c, "%s[%lld] = %d: unknown %s (must be one of %s)", path, (long long)i,
                        v[i], col->codes->what, allowed);
    } else if (col->elem == XM__STRING) {
      char *const *s = a;
      for (int64_t i = 0; i < n; i++) {
        size_t at = 0;
        const char *rule = s[i] ? xm__text_rule(s[i], &at) : NULL;
        if (!s[i])
          xm__violation(c, "%s[%lld] = NULL: must be a string", path, (long long)i);
        else if (rule)
          xm__violation(c, "%s[%lld]: %s (byte %zu): must be ASCII or UTF-8 text", path,
                        (long long)i, rule, at);
      }
    }
  }
  return 1;
}

/* A root attribute held in a char[cap] of the struct: terminated and text. */
static int xm__memory_attr(xm__check *c, const char *name, const char *v, size_t cap) {
  size_t at = 0;
  const char *rule;
  if (!memchr(v, '\0', cap)) {
    xm__violation(c, "/: attribute %s: no NUL in its %zu bytes: must be a string of at most %zu",
                  name, cap, cap - 1);
    return 0;
  }
  if ((rule = xm__text_rule(v, &at)) != NULL) {
    xm__violation(c, "/: attribute %s: %s (byte %zu): must be ASCII or UTF-8 text", name, rule, at);
    return 0;
  }
  return 1;
}

xm_status xm_portfolio_validate(const xm_portfolio *p, xm_diag *diag) {
  if (!p)
    return XM_EINVAL;
  xm__check c = {.file = p->path ? p->path : "portfolio", .diag = diag};
  if (xm__memory_attr(&c, "valuation_date", p->valuation_date, sizeof p->valuation_date))
    xm__rule_valuation_date(&c, p->valuation_date);
  if (xm__memory_attr(&c, "currency", p->currency, sizeof p->currency))
    xm__rule_currency(&c, p->currency);
  int counts_ok = 1;
  for (int t = 0; t < XM__PORTFOLIO_TABLES; t++)
    counts_ok &= xm__memory_table(&c, &xm__portfolio_tables[t], xm__portfolio_tables[t].group, p);
  if (counts_ok)
    xm__portfolio_check(&c, p);
  return xm__check_status(&c);
}

/* The set names: each a set name (FORMAT.md section 2), no two equal. */
static void xm__memory_set_names(xm__check *c, const xm_scenario_set *sets, int64_t n) {
  char **names = malloc((n > 0 ? (size_t)n : 1) * sizeof *names);
  if (!names) {
    xm__check_nomem(c, "/sets");
    return;
  }
  for (int64_t k = 0; k < n; k++) {
    names[k] = NULL; /* only valid names are compared */
    if (!sets[k].name)
      xm__violation(c, "/sets[%lld] = NULL: a set must have a name", (long long)k);
    else if (xm__rule_set_name(c, sets[k].name))
      names[k] = sets[k].name;
  }
  xm__check_names(c, "/sets", names, n, "set name");
  free(names);
}

xm_status xm_scenarios_validate(const xm_scenario_file *s, xm_diag *diag) {
  if (!s)
    return XM_EINVAL;
  xm__check c = {.file = s->path ? s->path : "scenarios", .diag = diag};
  int hist = s->n_days != 0 || s->n_hfactors != 0; /* as the writer writes it */
  if (s->n_sets < 0 || s->n_sets > INT32_MAX) {
    xm__violation(&c, "/sets: has %lld sets: a count must be in 0..%d", (long long)s->n_sets,
                  INT32_MAX);
    return xm__check_status(&c);
  }
  if (!hist && s->n_sets == 0)
    xm__violation(&c, "/: has neither /history nor /sets: no scenarios to run");
  if (hist && xm__memory_table(&c, &xm__history_table, xm__history_table.group, s))
    xm__history_check(&c, s);
  if (s->n_sets > 0 && !s->sets) {
    xm__violation(&c, "/sets = NULL: must hold its %lld sets", (long long)s->n_sets);
  } else if (s->n_sets > 0) {
    xm__memory_set_names(&c, s->sets, s->n_sets);
    for (int64_t k = 0; k < s->n_sets; k++) {
      const xm_scenario_set *set = &s->sets[k];
      char g[XM__PATH_CAP];
      snprintf(g, sizeof g, "/sets/%s", set->name ? set->name : "?");
      if (xm__memory_table(&c, &xm__set_table, g, set))
        xm__set_check(&c, set);
    }
  }
  return xm__check_status(&c);
}
