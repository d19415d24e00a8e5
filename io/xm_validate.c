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

/* The longest currency plus its NUL (the root attribute's buffer). */
#define XM__CURRENCY_CAP sizeof(((xm_portfolio *)0)->currency)

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

/* idx[n] must be rows of a table of m rows; none: NULL, or what -1 means
 * ("none", "cash"), which is then allowed. */
static void xm__check_index(xm__check *c, const char *path, const int32_t *idx, int64_t n,
                            int64_t m, const char *table, const char *none) {
  if (!idx)
    return;
  for (int64_t i = 0; i < n; i++) {
    if (none && idx[i] == -1)
      continue;
    if (idx[i] < 0 || idx[i] >= m)
      xm__violation(c, "%s[%lld] = %d: index out of range: must be a row of %s (0..%lld)%s%s", path,
                    (long long)i, idx[i], table, (long long)m - 1, none ? " or -1 for " : "",
                    none ? none : "");
  }
}

/* Every finite v[i] must be >= 0 (name: the column's, for the rule). */
static void xm__check_nonneg(xm__check *c, const char *path, const char *name, const double *v,
                             int64_t n) {
  for (int64_t i = 0; v && i < n; i++)
    if (isfinite(v[i]) && v[i] < 0)
      xm__violation(c, "%s[%lld] = %g: %s must be >= 0", path, (long long)i, v[i], name);
}

/* A currency (FORMAT.md section 1): text of 1 to 15 characters, as the
 * root attribute's (xm__rule_currency). */
static int xm__currency_len_ok(const char *s) {
  return s[0] != '\0' && strlen(s) < XM__CURRENCY_CAP;
}

/* The currencies cur[n] of a version-2 column (NULL: every row is the
 * reporting one): each of 1 to 15 characters, and either the reporting
 * currency rep or a currency of /fx (fx: its index, NULL when /fx could not
 * be indexed, or rep NULL, the reporting currency not valid: that rule is
 * skipped). */
static void xm__check_currencies(xm__check *c, const char *rep, const xm__names *fx,
                                 const char *path, char *const *cur, int64_t n) {
  for (int64_t i = 0; cur && i < n; i++) {
    const char *s = cur[i];
    if (!s)
      continue;
    if (!xm__currency_len_ok(s))
      xm__violation(c, "%s[%lld] = '%.64s': a currency must be 1 to %zu characters", path,
                    (long long)i, s, XM__CURRENCY_CAP - 1);
    else if (fx && rep && strcmp(s, rep) != 0 && xm__names_find(fx, s) < 0)
      xm__violation(c,
                    "%s[%lld] = '%s': unknown currency: must be the reporting currency '%s' or "
                    "a currency of /fx",
                    path, (long long)i, s, rep);
  }
}

/* ---- Portfolio (FORMAT.md section 1) ---------------------------------------------- */

/* 1 when code t is an option type (an unknown code is not). */
static int xm__is_option(int32_t t) { return t >= 0 && t < XM_TYPE_COUNT && XM_TYPE_IS_OPTION(t); }

/* The name of factor f for messages. */
static const char *xm__factor_shown(const xm_portfolio *p, int32_t f) {
  return p->factor_name && p->factor_name[f] ? p->factor_name[f] : "?";
}

/* Factor f's kind when f is a row of /factors and the kinds are known, else -1. */
static int32_t xm__kind_of(const xm_portfolio *p, int32_t f) {
  return p->factor_kind && f >= 0 && f < p->n_factors ? p->factor_kind[f] : -1;
}

/* The version-2 columns of /factors (METHODOLOGY.md sections 4.1 and 6):
 * finite, the add-on and collateral numbers >= 0, haircut in [0, 1]. */
static void xm__factor_v2_check(xm__check *c, const xm_portfolio *p) {
  int64_t nf = p->n_factors;
  const struct {
    const char *path, *name;
    const double *v;
  } col[] = {
      {"/factors/half_spread", "half_spread", p->factor_half_spread},
      {"/factors/impact", "impact", p->factor_impact},
      {"/factors/adv", "adv", p->factor_adv},
      {"/factors/haircut", NULL, p->factor_haircut},
      {"/factors/collateral_limit", "collateral_limit", p->factor_collateral_limit},
  };
  for (size_t k = 0; k < sizeof col / sizeof col[0]; k++) {
    xm__check_finite(c, col[k].path, col[k].v, nf);
    if (col[k].name)
      xm__check_nonneg(c, col[k].path, col[k].name, col[k].v, nf);
  }
  for (int64_t i = 0; p->factor_haircut && i < nf; i++)
    if (isfinite(p->factor_haircut[i]) && (p->factor_haircut[i] < 0 || p->factor_haircut[i] > 1))
      xm__violation(c, "/factors/haircut[%lld] = %g: haircut must be in [0, 1]", (long long)i,
                    p->factor_haircut[i]);
}

/* The version-2 columns of /instruments (METHODOLOGY.md sections 2.1 to
 * 2.3): currencies known, an inverse type settled in a currency of /fx,
 * funding only on the types that pay it. rep: the reporting currency, NULL
 * when it is not valid (the rules that compare with it are skipped). */
static void xm__instrument_v2_check(xm__check *c, const xm_portfolio *p, const xm__names *fx,
                                    const char *rep) {
  int64_t ni = p->n_instruments;
  xm__check_currencies(c, rep, fx, "/instruments/currency", p->inst_currency, ni);
  for (int64_t i = 0; rep && p->inst_type && i < ni; i++) {
    int32_t t = p->inst_type[i];
    if (t < 0 || t >= XM_TYPE_COUNT || !XM_TYPE_IS_INVERSE(t))
      continue;
    if (!p->inst_currency)
      xm__violation(c,
                    "/instruments/type[%lld] = '%s': an inverse type settles in its coin, a "
                    "currency of /fx: /instruments/currency is absent, so it would settle in the "
                    "reporting currency '%s'",
                    (long long)i, xm_type_name(t), rep);
    else if (p->inst_currency[i] && strcmp(p->inst_currency[i], rep) == 0)
      xm__violation(c,
                    "/instruments/currency[%lld] = '%s': an inverse type ('%s') settles in its "
                    "coin: must be a currency of /fx, not the reporting currency",
                    (long long)i, rep, xm_type_name(t));
  }
  xm__check_finite(c, "/instruments/funding_rate", p->inst_funding_rate, ni);
  char funded[128];
  xm__names_list(xm__type_names, XM_TYPE_COUNT, (unsigned)XM_TYPES_FUNDING, funded, sizeof funded);
  for (int64_t i = 0; p->inst_funding_rate && p->inst_type && i < ni; i++) {
    int32_t t = p->inst_type[i];
    double f = p->inst_funding_rate[i];
    if (t >= 0 && t < XM_TYPE_COUNT && !XM_TYPE_HAS_FUNDING(t) && isfinite(f) && f != 0)
      xm__violation(c,
                    "/instruments/funding_rate[%lld] = %g: must be 0 for type '%s' (only %s pay "
                    "funding)",
                    (long long)i, f, xm_type_name(t), funded);
  }
}

/* /fx: currencies non-empty, unique, of at most 15 characters and not the
 * reporting currency; each factor a row of /factors that is a price factor. */
static void xm__fx_check(xm__check *c, const xm_portfolio *p, const char *rep) {
  int64_t n = p->n_fx;
  xm__check_names(c, "/fx/currency", p->fx_currency, n, "currency");
  for (int64_t i = 0; p->fx_currency && i < n; i++) {
    const char *s = p->fx_currency[i];
    if (!s || !s[0]) /* NULL: reported as such; "": by xm__check_names */
      continue;
    if (!xm__currency_len_ok(s))
      xm__violation(c, "/fx/currency[%lld] = '%.64s': a currency must be 1 to %zu characters",
                    (long long)i, s, XM__CURRENCY_CAP - 1);
    else if (rep && strcmp(s, rep) == 0)
      xm__violation(c,
                    "/fx/currency[%lld] = '%s': the reporting currency is not a row of /fx (one "
                    "unit of it is worth 1)",
                    (long long)i, s);
  }
  xm__check_index(c, "/fx/factor", p->fx_factor, n, p->n_factors, "/factors", NULL);
  for (int64_t i = 0; p->fx_factor && i < n; i++) {
    int32_t f = p->fx_factor[i], k = xm__kind_of(p, f);
    if (k >= 0 && k != XM_FACTOR_PRICE)
      xm__violation(c,
                    "/fx/factor[%lld] = %d: an /fx factor must be a price factor (factor '%.64s' "
                    "is not)",
                    (long long)i, f, xm__factor_shown(p, f));
  }
}

/* /collateral: rows of /accounts, /factors (a price factor, or -1 for cash)
 * and /silos (or -1), currencies known, quantities finite and >= 0. */
static void xm__collateral_check(xm__check *c, const xm_portfolio *p, const xm__names *fx,
                                 const char *rep) {
  int64_t n = p->n_collateral;
  xm__check_index(c, "/collateral/account", p->coll_account, n, p->n_accounts, "/accounts", NULL);
  xm__check_index(c, "/collateral/factor", p->coll_factor, n, p->n_factors, "/factors", "cash");
  for (int64_t i = 0; p->coll_factor && i < n; i++) {
    int32_t f = p->coll_factor[i], k = xm__kind_of(p, f);
    if (k >= 0 && k != XM_FACTOR_PRICE)
      xm__violation(c,
                    "/collateral/factor[%lld] = %d: a collateral factor must be a price factor or "
                    "-1 for cash (factor '%.64s' is not)",
                    (long long)i, f, xm__factor_shown(p, f));
  }
  xm__check_currencies(c, rep, fx, "/collateral/currency", p->coll_currency, n);
  xm__check_finite(c, "/collateral/quantity", p->coll_quantity, n);
  xm__check_nonneg(c, "/collateral/quantity", "quantity", p->coll_quantity, n);
  xm__check_index(c, "/collateral/silo", p->coll_silo, n, p->n_silos, "/silos/name", "none");
}

void xm__portfolio_check(xm__check *c, const xm_portfolio *p) {
  /* the reporting currency (NULL when it is not valid: reported with the
   * root attributes) and the index of /fx's currencies (NULL when the
   * column is broken: the rules that look currencies up are skipped) */
  const char *rep =
      memchr(p->currency, '\0', sizeof p->currency) && xm__currency_len_ok(p->currency)
          ? p->currency
          : NULL;
  xm__names *fx = NULL;
  if (p->fx_currency || p->n_fx == 0) {
    xm_status st = xm__names_build(&fx, p->fx_currency, p->n_fx);
    if (st == XM_ENOMEM)
      xm__check_nomem(c, "/fx/currency");
  }

  /* factors */
  xm__check_names(c, "/factors/name", p->factor_name, p->n_factors, "factor name");
  xm__check_finite(c, "/factors/level", p->factor_level, p->n_factors);
  if (p->factor_level && p->factor_kind)
    for (int64_t i = 0; i < p->n_factors; i++)
      if (p->factor_kind[i] == XM_FACTOR_PRICE && isfinite(p->factor_level[i]) &&
          p->factor_level[i] <= 0)
        xm__violation(c, "/factors/level[%lld] = %g: level must be > 0 for a price factor",
                      (long long)i, p->factor_level[i]);
  xm__factor_v2_check(c, p);
  xm__check_names(c, "/silos/name", p->silo_name, p->n_silos, "silo name");

  /* instruments */
  int64_t ni = p->n_instruments;
  xm__check_names(c, "/instruments/id", p->inst_id, ni, "instrument id");
  xm__check_index(c, "/instruments/silo", p->inst_silo, ni, p->n_silos, "/silos/name", NULL);
  xm__check_index(c, "/instruments/underlying", p->inst_underlying, ni, p->n_factors, "/factors",
                  NULL);
  xm__check_index(c, "/instruments/vol_factor", p->inst_vol_factor, ni, p->n_factors, "/factors",
                  "none");
  if (p->factor_kind) {
    for (int64_t i = 0; i < ni; i++) {
      int32_t u = p->inst_underlying ? p->inst_underlying[i] : -1;
      if (u >= 0 && u < p->n_factors && p->factor_kind[u] != XM_FACTOR_PRICE)
        xm__violation(c,
                      "/instruments/underlying[%lld] = %d: the underlying must be a price factor "
                      "(factor '%.64s' is not)",
                      (long long)i, u, xm__factor_shown(p, u));
      int32_t v = p->inst_vol_factor ? p->inst_vol_factor[i] : -1;
      if (v >= 0 && v < p->n_factors && p->factor_kind[v] != XM_FACTOR_VOL &&
          p->factor_kind[v] != XM_FACTOR_LOGVOL)
        xm__violation(c,
                      "/instruments/vol_factor[%lld] = %d: the vol factor must be a vol or logvol "
                      "factor (factor '%.64s' is not)",
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
  xm__instrument_v2_check(c, p, fx, rep);

  /* accounts and positions */
  xm__check_names(c, "/accounts/id", p->account_id, p->n_accounts, "account id");
  if (p->account_cross_margin)
    for (int64_t i = 0; i < p->n_accounts; i++)
      if (p->account_cross_margin[i] != 0 && p->account_cross_margin[i] != 1)
        xm__violation(c, "/accounts/cross_margin[%lld] = %d: cross_margin must be 0 or 1",
                      (long long)i, p->account_cross_margin[i]);
  xm__check_currencies(c, rep, fx, "/accounts/currency", p->account_currency, p->n_accounts);
  xm__fx_check(c, p, rep);
  xm__collateral_check(c, p, fx, rep);
  xm__check_index(c, "/positions/account", p->pos_account, p->n_positions, p->n_accounts,
                  "/accounts", NULL);
  xm__check_index(c, "/positions/instrument", p->pos_instrument, p->n_positions, p->n_instruments,
                  "/instruments", NULL);
  xm__check_finite(c, "/positions/quantity", p->pos_quantity, p->n_positions);
  xm__names_free(fx);
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

/* What the reader checks on the file, checked on the arrays of table t in
 * base (its group is named group): counts >= 0, no empty table or list (an
 * optional table of 0 rows is absent), required arrays given, strings that
 * are text, codes of the enumeration. Returns 0 when a count is unusable
 * (the values are not looked at). */
static int xm__memory_table(xm__check *c, const xm__table *t, const char *group, const void *base) {
  char path[XM__PATH_CAP + 64];
  if (t->layout == XM__TABLE) {
    int64_t n = xm__count_get(base, t->rows);
    if (t->optional && n == 0) /* absent: nothing to check */
      return 1;
    if (!xm__rows_rule(c, group, n, t->empty))
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
