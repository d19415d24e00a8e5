/* xmargin import: a portfolio file (FORMAT.md section 1) from CSV files, one
 * per table, with names where the file has row indices, expiries as dates or
 * year fractions and blanks where a column does not apply to a type. The
 * rules are those of the Python binding's Book.from_frames (docs/python.md):
 * the two give the same file. The book is checked by xm_portfolio_validate
 * and written by xm_portfolio_write (atomically, never over an input). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void xm__import_usage(FILE *f) {
  fprintf(f, "usage: xmargin import --factors F.csv --instruments I.csv --accounts A.csv\n"
             "                      --positions P.csv [--collateral C.csv] [--fx X.csv]\n"
             "                      [--silos S.csv] --valuation-date YYYY-MM-DD\n"
             "                      [--currency USD] [-q] -o BOOK.h5\n\n"
             "Writes a portfolio file (FORMAT.md section 1) from one CSV file per table\n"
             "(RFC 4180: a header row of FORMAT.md's column names, comma-separated,\n"
             "\"quoted\" fields with \"\" for a quote). References are names, not rows:\n"
             "instruments' silo, underlying and vol_factor, positions' account and\n"
             "instrument, collateral's account, factor and silo, fx's factor. The silos are\n"
             "those of --silos (a column `name`), else the instruments' silos in order of\n"
             "first use, then the collateral's. An expiry is a year fraction or a date\n"
             "(YYYY-MM-DD: ACT/365 from the valuation date). A blank cell (empty, NaN, NA)\n"
             "where a column does not apply takes the value the format ignores there:\n"
             "vol_factor, collateral factor and silo -1; strike, expiry, implied_vol, rate\n"
             "and call 0 on a type that is not an option; dividend_yield 0 on a type\n"
             "without carry; the optional columns (half_spread, ..., funding_rate) 0;\n"
             "currencies the reporting one. Where a column applies, a blank is an error.\n"
             "Templates: examples/import/. The book is then checked against the data\n"
             "contract (as `xmargin validate`).\n\n"
             "options:\n"
             "  --valuation-date D  the book's valuation date (root attribute)\n"
             "  --currency C        the reporting currency (default USD)\n"
             "  -o, --output BOOK   the portfolio file to write (never one of the inputs)\n"
             "  -q, --quiet         no summary\n\n"
             "Exit status: 0 written, 2 bad input (file, row, column and rule named),\n"
             "1 another failure (memory, writing).\n");
}

/* Blank: empty, whitespace, NaN, nan or NA (what pandas reads as missing). */
static int xm__blank(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  return n == 0 || (n == 3 && (strncmp(s, "nan", 3) == 0 || strncmp(s, "NaN", 3) == 0)) ||
         (n == 2 && strncmp(s, "NA", 2) == 0);
}

/* ---- The state of one import -------------------------------------------- */

typedef struct xm__imp {
  int errors;    /* messages printed */
  int64_t vdays; /* the valuation date, days since 1970-01-01 */
} xm__imp;

static void xm__bad(xm__imp *im, const xm__csv *c, int64_t r, const char *col, const char *value,
                    const char *rule) {
  if (im->errors < XM_DIAG_MAX_SHOWN) {
    if (value)
      fprintf(stderr, "%s: row %lld (line %lld), column '%s' = '%s': %s\n", c->path, (long long)r,
              (long long)c->line[r], col, value, rule);
    else
      fprintf(stderr, "%s: row %lld (line %lld), column '%s': %s\n", c->path, (long long)r,
              (long long)c->line[r], col, rule);
  }
  im->errors++;
}

/* Required columns present: 0, else the messages and -1. */
static int xm__need_cols(xm__imp *im, const xm__csv *c, const char *table,
                         const char *const *cols) {
  int ok = 0;
  for (int i = 0; cols[i]; i++)
    if (xm__csv_col(c, cols[i]) < 0) {
      fprintf(stderr, "%s: column '%s' is missing (FORMAT.md section 1: /%s/%s)\n", c->path,
              cols[i], table, cols[i]);
      im->errors++;
      ok = -1;
    }
  return ok;
}

/* A decimal number, the whole cell (spaces around allowed). */
static int xm__parse_double(const char *s, double *out) {
  char *e;
  errno = 0;
  double v = strtod(s, &e);
  if (e == s)
    return -1;
  while (*e == ' ' || *e == '\t')
    e++;
  if (*e)
    return -1;
  *out = v;
  return 0;
}

/* A number cell: blank -> blank_value; text that is no number: a message, NaN. */
static double xm__num(xm__imp *im, const xm__csv *c, int64_t r, int j, const char *col,
                      double blank_value) {
  const char *s = xm__csv_at(c, r, j);
  if (xm__blank(s))
    return blank_value;
  double v;
  if (xm__parse_double(s, &v) != 0) {
    xm__bad(im, c, r, col, s, "not a number");
    return NAN;
  }
  return v;
}

/* A whole-number cell (int32); blank: the message blank_rule. */
static int32_t xm__whole(xm__imp *im, const xm__csv *c, int64_t r, int j, const char *col,
                         const char *blank_rule) {
  const char *s = xm__csv_at(c, r, j);
  char msg[256];
  if (xm__blank(s)) {
    snprintf(msg, sizeof msg, "blank: %s", blank_rule);
    xm__bad(im, c, r, col, NULL, msg);
    return 0;
  }
  double v;
  if (xm__parse_double(s, &v) != 0) {
    xm__bad(im, c, r, col, s, "not a number");
    return 0;
  }
  if (!(isfinite(v) && v == floor(v) && v >= -2147483648.0 && v < 2147483648.0)) {
    xm__bad(im, c, r, col, s, "not a whole number (int32)");
    return 0;
  }
  return (int32_t)v;
}

/* Days since 1970-01-01 of a strict YYYY-MM-DD, or -1 (H. Hinnant's days_from_civil). */
static int xm__iso_days(const char *s, int64_t *out) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return -1;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return -1;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap))
    return -1;
  int64_t yy = m <= 2 ? y - 1 : y;
  int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *out = era * 146097 + doe - 719468;
  return 0;
}

/* An expiry: a year fraction, or a date (ACT/365 from the valuation date;
 * docs/methodology-notes.md note 32). */
static double xm__expiry(xm__imp *im, const xm__csv *c, int64_t r, int j, double blank_value) {
  const char *s = xm__csv_at(c, r, j);
  if (xm__blank(s))
    return blank_value;
  double v;
  if (xm__parse_double(s, &v) == 0)
    return v;
  while (*s == ' ' || *s == '\t')
    s++;
  char d[16];
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  int64_t days;
  if (n < sizeof d) {
    memcpy(d, s, n);
    d[n] = '\0';
    if (xm__iso_days(d, &days) == 0)
      return (double)(days - im->vdays) / 365.0;
  }
  xm__bad(im, c, r, "expiry", xm__csv_at(c, r, j), "not a year fraction or a date (YYYY-MM-DD)");
  return NAN;
}

/* ---- Names: a small open-addressing index (first row of each name) ------ */

typedef struct xm__index {
  char **name;
  int64_t n;
  int64_t cap;   /* a power of two >= 2n */
  int64_t *slot; /* row or -1 */
} xm__index;

static uint64_t xm__hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int xm__index_build(xm__index *ix, char **name, int64_t n) {
  ix->name = name;
  ix->n = n;
  ix->cap = 16;
  while (ix->cap < 2 * n)
    ix->cap *= 2;
  ix->slot = malloc((size_t)ix->cap * sizeof *ix->slot);
  if (!ix->slot)
    return -1;
  for (int64_t i = 0; i < ix->cap; i++)
    ix->slot[i] = -1;
  for (int64_t r = 0; r < n; r++) {
    uint64_t h = xm__hash(name[r]) & (uint64_t)(ix->cap - 1);
    while (ix->slot[h] >= 0 && strcmp(name[ix->slot[h]], name[r]) != 0)
      h = (h + 1) & (uint64_t)(ix->cap - 1);
    if (ix->slot[h] < 0)
      ix->slot[h] = r;
  }
  return 0;
}

static int64_t xm__index_find(const xm__index *ix, const char *s) {
  uint64_t h = xm__hash(s) & (uint64_t)(ix->cap - 1);
  while (ix->slot[h] >= 0) {
    if (strcmp(ix->name[ix->slot[h]], s) == 0)
      return ix->slot[h];
    h = (h + 1) & (uint64_t)(ix->cap - 1);
  }
  return -1;
}

/* A reference cell: the row of its name in ix; blank -> -1 when allowed. */
static int32_t xm__ref(xm__imp *im, const xm__csv *c, int64_t r, int j, const char *col,
                       const xm__index *ix, const char *table, int allow_blank) {
  const char *s = xm__csv_at(c, r, j);
  char msg[256];
  if (xm__blank(s)) {
    if (allow_blank)
      return -1;
    snprintf(msg, sizeof msg, "blank: a name of %s is required", table);
    xm__bad(im, c, r, col, NULL, msg);
    return 0;
  }
  int64_t k = xm__index_find(ix, s);
  if (k < 0) {
    snprintf(msg, sizeof msg, "unknown name: not in %s", table);
    xm__bad(im, c, r, col, s, msg);
    return 0;
  }
  return (int32_t)k;
}

/* The text cells of a column (pointers into the file), blank -> dflt (NULL:
 * a blank is an error named what). */
static char **xm__texts(xm__imp *im, const xm__csv *c, const char *col, const char *dflt,
                        const char *what) {
  int j = xm__csv_col(c, col);
  char **out = malloc(((size_t)c->nrows + 1) * sizeof *out);
  if (!out)
    return NULL;
  for (int64_t r = 0; r < c->nrows; r++) {
    const char *s = xm__csv_at(c, r, j);
    if (xm__blank(s)) {
      if (!dflt) {
        char msg[128];
        snprintf(msg, sizeof msg, "blank: %s is required", what);
        xm__bad(im, c, r, col, NULL, msg);
        s = "";
      } else {
        s = dflt;
      }
    }
    out[r] = (char *)s;
  }
  return out;
}

/* A code of a name table (xm_type_name, xm_factor_kind_name): its value, or -1. */
static int32_t xm__code(const char *(*name)(int), const char *s) {
  for (int v = 0; name(v); v++)
    if (strcmp(name(v), s) == 0)
      return v;
  return -1;
}

static void xm__code_list(const char *(*name)(int), char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  for (int v = 0; name(v) && at < cap; v++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%s", v ? ", " : "", name(v));
}

#define XM__ALLOC(p, n) ((p) = calloc((size_t)(n) + 1, sizeof *(p)))

int xm_cli_import(int argc, char **argv) {
  const char *path[7] = {NULL}; /* factors instruments accounts positions collateral fx silos */
  static const char *const opt[7] = {"--factors",    "--instruments", "--accounts", "--positions",
                                     "--collateral", "--fx",          "--silos"};
  const char *vdate = NULL, *currency = "USD", *output = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm__import_usage(stdout);
      return XM_EXIT_OK;
    }
    if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    const char **slot = NULL;
    for (int k = 0; k < 7; k++)
      if (strcmp(a, opt[k]) == 0)
        slot = &path[k];
    if (!slot && strcmp(a, "--valuation-date") == 0)
      slot = &vdate;
    if (!slot && strcmp(a, "--currency") == 0)
      slot = &currency;
    if (!slot && (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0))
      slot = &output;
    if (!slot) {
      fprintf(stderr, "xmargin import: unknown argument '%s'\n\n", a);
      xm__import_usage(stderr);
      return XM_EXIT_USAGE;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "xmargin import: %s needs a value\n", a);
      return XM_EXIT_USAGE;
    }
    *slot = argv[++i];
  }
  for (int k = 0; k < 4; k++)
    if (!path[k]) {
      fprintf(stderr, "xmargin import: %s is required ('xmargin import --help')\n", opt[k]);
      return XM_EXIT_USAGE;
    }
  if (!output || !vdate) {
    fprintf(stderr, "xmargin import: %s is required ('xmargin import --help')\n",
            output ? "--valuation-date" : "-o BOOK.h5");
    return XM_EXIT_USAGE;
  }
  xm__imp im = {0, 0};
  if (xm__iso_days(vdate, &im.vdays) != 0) {
    fprintf(stderr, "xmargin import: --valuation-date '%s': not a date YYYY-MM-DD\n", vdate);
    return XM_EXIT_USAGE;
  }
  if (strlen(currency) < 1 || strlen(currency) > 15) {
    fprintf(stderr, "xmargin import: --currency '%s': a currency must be 1 to 15 characters\n",
            currency);
    return XM_EXIT_USAGE;
  }
  char why[1024];
  if (xm_output_check(output, path, 7, why, sizeof why) != XM_OK) {
    fprintf(stderr, "xmargin import: %s\n", why);
    return XM_EXIT_USAGE;
  }

  int rc = XM_EXIT_OK;
  xm__csv csv[7];
  memset(csv, 0, sizeof csv);
  xm_portfolio p;
  memset(&p, 0, sizeof p);
  xm__index fix = {0}, six = {0}, iix = {0}, aix = {0};
  char **silo_names = NULL;
  xm_diag d = {0};
  for (int k = 0; k < 7; k++)
    if (path[k] && (rc = xm__csv_read(path[k], &csv[k])) != 0)
      goto cleanup;
  xm__csv *F = &csv[0], *I = &csv[1], *A = &csv[2], *P = &csv[3], *C = path[4] ? &csv[4] : NULL,
          *X = path[5] ? &csv[5] : NULL, *S = path[6] ? &csv[6] : NULL;
  {
    static const char *const fcols[] = {"name", "kind", "level", NULL};
    static const char *const icols[] = {"id", "type", "silo", "underlying", NULL};
    static const char *const acols[] = {"id", "cross_margin", NULL};
    static const char *const pcols[] = {"account", "instrument", "quantity", NULL};
    static const char *const ccols[] = {"account", "quantity", NULL};
    static const char *const xcols[] = {"currency", "factor", NULL};
    static const char *const scols[] = {"name", NULL};
    xm__need_cols(&im, F, "factors", fcols);
    xm__need_cols(&im, I, "instruments", icols);
    xm__need_cols(&im, A, "accounts", acols);
    xm__need_cols(&im, P, "positions", pcols);
    if (C)
      xm__need_cols(&im, C, "collateral", ccols);
    if (X)
      xm__need_cols(&im, X, "fx", xcols);
    if (S)
      xm__need_cols(&im, S, "silos", scols);
    if (im.errors) {
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
  }
  rc = XM_EXIT_FAIL; /* until everything is allocated */
  snprintf(p.valuation_date, sizeof p.valuation_date, "%s", vdate);
  snprintf(p.currency, sizeof p.currency, "%s", currency);
  p.path = (char *)output;

  /* factors */
  p.n_factors = F->nrows;
  if (!(p.factor_name = xm__texts(&im, F, "name", NULL, "a factor name")) ||
      !XM__ALLOC(p.factor_kind, F->nrows) || !XM__ALLOC(p.factor_level, F->nrows))
    goto cleanup;
  {
    int jk = xm__csv_col(F, "kind"), jl = xm__csv_col(F, "level");
    char list[256];
    xm__code_list(xm_factor_kind_name, list, sizeof list);
    for (int64_t r = 0; r < F->nrows; r++) {
      const char *s = xm__csv_at(F, r, jk);
      int32_t v = xm__code(xm_factor_kind_name, s);
      if (v < 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "unknown kind (one of %s)", list);
        xm__bad(&im, F, r, "kind", s, msg);
        v = 0;
      }
      p.factor_kind[r] = v;
      p.factor_level[r] = xm__num(&im, F, r, jl, "level", NAN);
    }
    static const char *const v2[] = {"half_spread", "impact", "adv", "haircut", "collateral_limit"};
    double **dst[] = {&p.factor_half_spread, &p.factor_impact, &p.factor_adv, &p.factor_haircut,
                      &p.factor_collateral_limit};
    for (int k = 0; k < 5; k++) {
      int j = xm__csv_col(F, v2[k]);
      if (j < 0)
        continue;
      if (!XM__ALLOC(*dst[k], F->nrows))
        goto cleanup;
      for (int64_t r = 0; r < F->nrows; r++)
        (*dst[k])[r] = xm__num(&im, F, r, j, v2[k], 0.0);
    }
  }
  if (xm__index_build(&fix, p.factor_name, p.n_factors) != 0)
    goto cleanup;

  /* silos: --silos, else the instruments' in order of first use, then the collateral's */
  if (S) {
    if (!(silo_names = xm__texts(&im, S, "name", NULL, "a silo name")))
      goto cleanup;
    p.n_silos = S->nrows;
  } else {
    int64_t cap = I->nrows + (C ? C->nrows : 0);
    xm__index seen = {0};
    if (!XM__ALLOC(silo_names, cap))
      goto cleanup;
    const xm__csv *src[2] = {I, C};
    for (int k = 0; k < 2; k++) {
      if (!src[k])
        continue;
      int j = xm__csv_col(src[k], "silo");
      for (int64_t r = 0; r < src[k]->nrows; r++) {
        const char *s = xm__csv_at(src[k], r, j);
        if (xm__blank(s))
          continue;
        int found = 0;
        if (seen.slot)
          found = xm__index_find(&seen, s) >= 0;
        if (!found) {
          silo_names[p.n_silos++] = (char *)s;
          free(seen.slot);
          seen.slot = NULL;
          /* rebuilt at doubling sizes would be faster; silos are few */
          if (xm__index_build(&seen, silo_names, p.n_silos) != 0)
            goto cleanup;
        }
      }
    }
    free(seen.slot);
  }
  p.silo_name = silo_names;
  if (xm__index_build(&six, p.silo_name, p.n_silos) != 0)
    goto cleanup;

  /* instruments */
  int64_t n = I->nrows;
  p.n_instruments = n;
  if (!(p.inst_id = xm__texts(&im, I, "id", NULL, "an instrument id")) ||
      !XM__ALLOC(p.inst_type, n) || !XM__ALLOC(p.inst_silo, n) ||
      !XM__ALLOC(p.inst_underlying, n) || !XM__ALLOC(p.inst_vol_factor, n) ||
      !XM__ALLOC(p.inst_strike, n) || !XM__ALLOC(p.inst_expiry, n) || !XM__ALLOC(p.inst_call, n) ||
      !XM__ALLOC(p.inst_implied_vol, n) || !XM__ALLOC(p.inst_rate, n) ||
      !XM__ALLOC(p.inst_dividend_yield, n) || !XM__ALLOC(p.inst_multiplier, n))
    goto cleanup;
  {
    int jt = xm__csv_col(I, "type"), js = xm__csv_col(I, "silo"), ju = xm__csv_col(I, "underlying"),
        jv = xm__csv_col(I, "vol_factor"), jk = xm__csv_col(I, "strike"),
        je = xm__csv_col(I, "expiry"), jc = xm__csv_col(I, "call"),
        ji = xm__csv_col(I, "implied_vol"), jr = xm__csv_col(I, "rate"),
        jq = xm__csv_col(I, "dividend_yield"), jm = xm__csv_col(I, "multiplier"),
        jf = xm__csv_col(I, "funding_rate");
    char list[512];
    xm__code_list(xm_type_name, list, sizeof list);
    for (int64_t r = 0; r < n; r++) {
      const char *s = xm__csv_at(I, r, jt);
      int32_t t = xm__code(xm_type_name, s);
      if (t < 0) {
        char msg[640];
        snprintf(msg, sizeof msg, "unknown instrument type (one of %s)", list);
        xm__bad(&im, I, r, "type", s, msg);
        t = 0;
      }
      int opt_ = XM_TYPE_IS_OPTION(t), carry = XM_TYPE_HAS_CARRY(t);
      p.inst_type[r] = t;
      p.inst_silo[r] = xm__ref(&im, I, r, js, "silo", &six, "the silos", 0);
      p.inst_underlying[r] = xm__ref(&im, I, r, ju, "underlying", &fix, "--factors", 0);
      p.inst_vol_factor[r] = xm__ref(&im, I, r, jv, "vol_factor", &fix, "--factors", 1);
      p.inst_strike[r] = xm__num(&im, I, r, jk, "strike", opt_ ? NAN : 0.0);
      p.inst_implied_vol[r] = xm__num(&im, I, r, ji, "implied_vol", opt_ ? NAN : 0.0);
      p.inst_rate[r] = xm__num(&im, I, r, jr, "rate", opt_ ? NAN : 0.0);
      p.inst_expiry[r] = xm__expiry(&im, I, r, je, opt_ ? NAN : 0.0);
      if (!opt_ && xm__blank(xm__csv_at(I, r, jc))) {
        p.inst_call[r] = 0;
      } else {
        char rule[128];
        snprintf(rule, sizeof rule, "an option ('%s') needs call = 1 (call) or 0 (put)",
                 xm_type_name(t));
        p.inst_call[r] = xm__whole(&im, I, r, jc, "call", rule);
      }
      p.inst_dividend_yield[r] = xm__num(&im, I, r, jq, "dividend_yield", carry ? NAN : 0.0);
      p.inst_multiplier[r] = xm__num(&im, I, r, jm, "multiplier", NAN);
    }
    if (xm__csv_col(I, "currency") >= 0 &&
        !(p.inst_currency = xm__texts(&im, I, "currency", currency, "a currency")))
      goto cleanup;
    if (jf >= 0) {
      if (!XM__ALLOC(p.inst_funding_rate, n))
        goto cleanup;
      for (int64_t r = 0; r < n; r++)
        p.inst_funding_rate[r] = xm__num(&im, I, r, jf, "funding_rate", 0.0);
    }
  }
  if (xm__index_build(&iix, p.inst_id, p.n_instruments) != 0)
    goto cleanup;

  /* accounts */
  p.n_accounts = A->nrows;
  if (!(p.account_id = xm__texts(&im, A, "id", NULL, "an account id")) ||
      !XM__ALLOC(p.account_cross_margin, A->nrows))
    goto cleanup;
  {
    int j = xm__csv_col(A, "cross_margin");
    for (int64_t r = 0; r < A->nrows; r++)
      p.account_cross_margin[r] =
          xm__whole(&im, A, r, j, "cross_margin", "cross_margin is 1 (eligible) or 0");
    if (xm__csv_col(A, "currency") >= 0 &&
        !(p.account_currency = xm__texts(&im, A, "currency", currency, "a currency")))
      goto cleanup;
  }
  if (xm__index_build(&aix, p.account_id, p.n_accounts) != 0)
    goto cleanup;

  /* fx */
  if (X && X->nrows > 0) {
    p.n_fx = X->nrows;
    if (!(p.fx_currency = xm__texts(&im, X, "currency", NULL, "a currency")) ||
        !XM__ALLOC(p.fx_factor, X->nrows))
      goto cleanup;
    int j = xm__csv_col(X, "factor");
    for (int64_t r = 0; r < X->nrows; r++)
      p.fx_factor[r] = xm__ref(&im, X, r, j, "factor", &fix, "--factors", 0);
  }

  /* collateral */
  if (C && C->nrows > 0) {
    int64_t h = C->nrows;
    p.n_collateral = h;
    if (!XM__ALLOC(p.coll_account, h) || !XM__ALLOC(p.coll_factor, h) ||
        !XM__ALLOC(p.coll_quantity, h) || !XM__ALLOC(p.coll_silo, h))
      goto cleanup;
    int ja = xm__csv_col(C, "account"), jf = xm__csv_col(C, "factor"),
        jq = xm__csv_col(C, "quantity"), js = xm__csv_col(C, "silo");
    for (int64_t r = 0; r < h; r++) {
      p.coll_account[r] = xm__ref(&im, C, r, ja, "account", &aix, "--accounts", 0);
      p.coll_factor[r] = xm__ref(&im, C, r, jf, "factor", &fix, "--factors", 1);
      p.coll_quantity[r] = xm__num(&im, C, r, jq, "quantity", NAN);
      p.coll_silo[r] = xm__ref(&im, C, r, js, "silo", &six, "the silos", 1);
    }
    if (xm__csv_col(C, "currency") >= 0 &&
        !(p.coll_currency = xm__texts(&im, C, "currency", currency, "a currency")))
      goto cleanup;
  }

  /* positions */
  p.n_positions = P->nrows;
  if (!XM__ALLOC(p.pos_account, P->nrows) || !XM__ALLOC(p.pos_instrument, P->nrows) ||
      !XM__ALLOC(p.pos_quantity, P->nrows))
    goto cleanup;
  {
    int ja = xm__csv_col(P, "account"), ji = xm__csv_col(P, "instrument"),
        jq = xm__csv_col(P, "quantity");
    for (int64_t r = 0; r < P->nrows; r++) {
      p.pos_account[r] = xm__ref(&im, P, r, ja, "account", &aix, "--accounts", 0);
      p.pos_instrument[r] = xm__ref(&im, P, r, ji, "instrument", &iix, "--instruments", 0);
      p.pos_quantity[r] = xm__num(&im, P, r, jq, "quantity", NAN);
    }
  }

  if (im.errors) {
    if (im.errors > XM_DIAG_MAX_SHOWN)
      fprintf(stderr, "... and %d more errors\n", im.errors - XM_DIAG_MAX_SHOWN);
    rc = XM_EXIT_USAGE;
    goto cleanup;
  }
  /* the messages name the table and its row ("portfolio: /instruments/strike[3]"), the
   * same rows as the CSV files' data rows; nothing is written */
  p.path = NULL;
  xm_status st = xm_portfolio_validate(&p, &d);
  p.path = (char *)output;
  if (st != XM_OK) {
    fprintf(stderr,
            "xmargin import: the book is INVALID (%s); nothing written to %s (rows: the data "
            "rows of each table's CSV file, from 0):\n",
            xm_strerror(st), output);
    xm_diag_print(&d, stderr);
    rc = xm_cli_exit_status(st);
    goto cleanup;
  }
  st = xm_portfolio_write(output, &p, &d);
  if (st != XM_OK) {
    fprintf(stderr, "xmargin import: writing %s: %s\n", output, xm_strerror(st));
    xm_diag_print(&d, stderr);
    rc = XM_EXIT_FAIL;
    goto cleanup;
  }
  if (!quiet)
    printf("%s: %lld factors, %lld silos, %lld instruments, %lld accounts, %lld positions, "
           "%lld fx, %lld collateral holdings\n",
           output, (long long)p.n_factors, (long long)p.n_silos, (long long)p.n_instruments,
           (long long)p.n_accounts, (long long)p.n_positions, (long long)p.n_fx,
           (long long)p.n_collateral);
  rc = XM_EXIT_OK;

cleanup:
  xm_diag_free(&d);
  free(fix.slot);
  free(six.slot);
  free(iix.slot);
  free(aix.slot);
  /* the struct's arrays are this function's (strings point into the files) */
  free(p.factor_name);
  free(p.factor_kind);
  free(p.factor_level);
  free(p.factor_half_spread);
  free(p.factor_impact);
  free(p.factor_adv);
  free(p.factor_haircut);
  free(p.factor_collateral_limit);
  free(silo_names);
  free(p.inst_id);
  free(p.inst_type);
  free(p.inst_silo);
  free(p.inst_underlying);
  free(p.inst_vol_factor);
  free(p.inst_strike);
  free(p.inst_expiry);
  free(p.inst_call);
  free(p.inst_implied_vol);
  free(p.inst_rate);
  free(p.inst_dividend_yield);
  free(p.inst_multiplier);
  free(p.inst_currency);
  free(p.inst_funding_rate);
  free(p.account_id);
  free(p.account_cross_margin);
  free(p.account_currency);
  free(p.fx_currency);
  free(p.fx_factor);
  free(p.coll_account);
  free(p.coll_factor);
  free(p.coll_currency);
  free(p.coll_quantity);
  free(p.coll_silo);
  free(p.pos_account);
  free(p.pos_instrument);
  free(p.pos_quantity);
  for (int k = 0; k < 7; k++)
    xm__csv_free(&csv[k]);
  return rc;
}
