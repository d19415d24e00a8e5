/* Run configuration: defaults (METHODOLOGY.md), strict parsing of one key
 * (xm_config_set), INI files through inih (xm_config_load), and the INI text of
 * an effective configuration (xm_config_to_ini).
 *
 * Every key is one row of xm__cfg_keys: its section, name, type, place in
 * xm_config and allowed range. Setting, loading, printing and the messages all
 * read that one table, so a new key is one new row. */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xm_tables.h"
#include "xmargin.h"

/* Enums are written through an int: their storage must be an int's. */
_Static_assert(sizeof(xm_precision) == sizeof(int), "xm_precision is not int-sized");
_Static_assert(sizeof(xm_measure) == sizeof(int), "xm_measure is not int-sized");
_Static_assert(sizeof(xm_distribution) == sizeof(int), "xm_distribution is not int-sized");
_Static_assert(sizeof(xm_collateral_method) == sizeof(int),
               "xm_collateral_method is not int-sized");
_Static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "strtoull must cover uint64_t");

/* The longest value text accepted (after trimming); no valid value comes near. */
#define XM__CFG_VALUE_MAX 256
#define XM__CFG_MAX_BYTES (1 << 20) /* largest INI file read */
/* How much of a bad value a message echoes. */
#define XM__CFG_ECHO "%.64s"

typedef enum xm__cfg_type {
  XM__CFG_BOOL,   /* int, 0 or 1 */
  XM__CFG_INT,    /* int */
  XM__CFG_I64,    /* int64_t */
  XM__CFG_U64,    /* uint64_t, any value */
  XM__CFG_DOUBLE, /* double, finite */
  XM__CFG_ENUM,   /* an enum stored as int; value i is names[i] */
  XM__CFG_DATE    /* char[11]: an ISO date YYYY-MM-DD, or "" (none) */
} xm__cfg_type;

typedef struct xm__cfg_key {
  const char *section; /* "" for a top-level key */
  const char *name;
  xm__cfg_type type;
  size_t offset; /* of the field in xm_config */
  /* Numbers: lo <= v <= hi, with lo / hi excluded when *_open. */
  double lo, hi;
  int lo_open, hi_open;
  const char *range;        /* the allowed values, for messages: "> 2", "in [0, 1]" */
  const char *const *names; /* XM__CFG_ENUM: the value names, NULL-terminated */
} xm__cfg_key;

static const char *const xm__cfg_precisions[] = {"double", "single", NULL};
static const char *const xm__cfg_distributions[] = {"normal", "student_t", NULL};
static const char *const xm__cfg_collateral_methods[] = {"schedule", "scenario", NULL};

#define XM__OFF(field) offsetof(xm_config, field)
#define XM__NUM(sec, key, type, field, lo, hi, lo_open, hi_open, range)                            \
  { sec, key, type, XM__OFF(field), lo, hi, lo_open, hi_open, range, NULL }
#define XM__BOOL(sec, key, field)                                                                  \
  { sec, key, XM__CFG_BOOL, XM__OFF(field), 0, 1, 0, 0, NULL, NULL }
#define XM__ENUM(sec, key, field, names)                                                           \
  { sec, key, XM__CFG_ENUM, XM__OFF(field), 0, 0, 0, 0, NULL, names }
#define XM__DATE(sec, key, field)                                                                  \
  { sec, key, XM__CFG_DATE, XM__OFF(field), 0, 0, 0, 0, "an ISO date YYYY-MM-DD, or empty", NULL }

/* In the order xm_config_to_ini prints them; a section's keys are contiguous. */
static const xm__cfg_key xm__cfg_keys[] = {
    XM__NUM("", "horizon_days", XM__CFG_INT, horizon_days, 1, 250, 0, 0, "an integer in 1..250"),
    XM__NUM("", "confidence", XM__CFG_DOUBLE, confidence, 0, 1, 1, 1, "in (0, 1)"),
    XM__ENUM("", "precision", precision, xm__cfg_precisions),
    XM__BOOL("historical", "enabled", historical.enabled),
    XM__NUM("historical", "ewma_lambda", XM__CFG_DOUBLE, historical.ewma_lambda, 0, 1, 1, 1,
            "in (0, 1)"),
    XM__NUM("historical", "apc_floor", XM__CFG_DOUBLE, historical.apc_floor, 0, 1, 0, 0,
            "in [0, 1]"),
    XM__BOOL("historical", "filtered", historical.filtered),
    XM__NUM("historical", "lookback", XM__CFG_INT, historical.lookback, 2, 1e6, 0, 0,
            "an integer in 2..1000000"),
    XM__ENUM("historical", "measure", historical.measure, xm__measure_names),
    XM__BOOL("montecarlo", "enabled", montecarlo.enabled),
    XM__NUM("montecarlo", "scenarios", XM__CFG_I64, montecarlo.scenarios, 1, 1e8, 0, 0,
            "an integer in 1..100000000"),
    XM__ENUM("montecarlo", "distribution", montecarlo.distribution, xm__cfg_distributions),
    XM__NUM("montecarlo", "dof", XM__CFG_DOUBLE, montecarlo.dof, 2, INFINITY, 1, 0, "> 2"),
    XM__NUM("montecarlo", "seed", XM__CFG_U64, montecarlo.seed, 0, 0, 0, 0,
            "an integer in 0..18446744073709551615"),
    XM__NUM("montecarlo", "correlation_stress", XM__CFG_DOUBLE, montecarlo.correlation_stress, 0, 1,
            0, 0, "in [0, 1]"),
    XM__ENUM("montecarlo", "measure", montecarlo.measure, xm__measure_names),
    XM__NUM("pricing", "vol_floor", XM__CFG_DOUBLE, pricing.vol_floor, 0, INFINITY, 0, 0, ">= 0"),
    XM__NUM("pricing", "vol_term_power", XM__CFG_DOUBLE, pricing.vol_term_power, 0, 5, 0, 0,
            "in [0, 5]"),
    XM__NUM("cross_margin", "offset_cap", XM__CFG_DOUBLE, cross_margin.offset_cap, 0, 1, 0, 0,
            "in [0, 1]"),
    XM__NUM("minimum", "per_contract", XM__CFG_DOUBLE, minimum.per_contract, 0, INFINITY, 0, 0,
            ">= 0"),
    XM__NUM("apc", "buffer", XM__CFG_DOUBLE, apc.buffer, 0, INFINITY, 0, 0, ">= 0"),
    XM__DATE("apc", "stressed_start", apc.stressed_start),
    XM__DATE("apc", "stressed_end", apc.stressed_end),
    XM__NUM("apc", "stressed_weight", XM__CFG_DOUBLE, apc.stressed_weight, 0, 1, 0, 0, "in [0, 1]"),
    XM__ENUM("collateral", "method", collateral.method, xm__cfg_collateral_methods),
    XM__NUM("backtest", "days", XM__CFG_INT, backtest.days, 2, 1e6, 0, 0,
            "an integer in 2..1000000"),
    XM__NUM("backtest", "min_history", XM__CFG_INT, backtest.min_history, 2, 1e6, 0, 0,
            "an integer in 2..1000000"),
    XM__NUM("backtest", "mc_scenarios", XM__CFG_I64, backtest.mc_scenarios, 0, 1e8, 0, 0,
            "an integer in 0..100000000 (0: montecarlo.scenarios)"),
    XM__BOOL("backtest", "ready_sets", backtest.ready_sets),
    XM__NUM("backtest", "coverage", XM__CFG_DOUBLE, backtest.coverage, 0, 1, 1, 1, "in (0, 1)"),
    XM__NUM("backtest", "apc_window", XM__CFG_INT, backtest.apc_window, 1, 1e6, 0, 0,
            "an integer in 1..1000000"),
};
#define XM__CFG_NKEYS (sizeof xm__cfg_keys / sizeof xm__cfg_keys[0])

#undef XM__OFF
#undef XM__NUM
#undef XM__BOOL
#undef XM__ENUM
#undef XM__DATE

/* The sections, in print order, with the comment line xm_config_to_ini gives each.
 * "" holds the top-level keys, which a file may also put in [run]. */
static const struct {
  const char *name;
  const char *comment;
} xm__cfg_sections[] = {
    {"", "run: horizon in trading days, confidence of var/es, arithmetic (double|single)"},
    {"historical", "filtered historical simulation: EWMA-scaled daily changes over the lookback"},
    {"montecarlo", "Monte Carlo: Philox draws through the Cholesky factor of the covariance"},
    {"pricing", "revaluation: implied-vol floor and term-structure power of vol shocks"},
    {"cross_margin", "share of the diversification benefit that is credited (at most)"},
    {"minimum", "requirement floor per option contract (|quantity| x multiplier)"},
    {"apc", "anti-procyclicality: the buffer beta on the requirement, the stressed period and its "
            "weight"},
    {"collateral", "collateral valuation: haircut schedule, or priced inside the scenarios"},
    {"backtest", "xmargin backtest: days, history before the first, Monte Carlo size, the tests' "
                 "coverage, the procyclicality window"},
};
#define XM__CFG_NSECTIONS (sizeof xm__cfg_sections / sizeof xm__cfg_sections[0])

/* printf into buf[cap] when buf is not NULL and cap > 0; always terminated. */
static void xm__cfg_msg(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xm__cfg_msg(char *buf, size_t cap, const char *fmt, ...) {
  if (!buf || cap == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* "" and "run" both name the top-level keys. */
static const char *xm__cfg_section_norm(const char *section) {
  return strcmp(section, "run") == 0 ? "" : section;
}

static int xm__cfg_section_known(const char *section) {
  section = xm__cfg_section_norm(section);
  for (size_t i = 0; i < XM__CFG_NSECTIONS; i++)
    if (strcmp(xm__cfg_sections[i].name, section) == 0)
      return 1;
  return 0;
}

/* Writes "a, b, c" (the names of the keys of one section) into buf[cap]. */
static void xm__cfg_key_list(char *buf, size_t cap, const char *section) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < XM__CFG_NKEYS; i++) {
    if (strcmp(xm__cfg_keys[i].section, section) != 0)
      continue;
    int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", xm__cfg_keys[i].name);
    if (n < 0 || (size_t)n >= cap - used)
      return;
    used += (size_t)n;
  }
}

/* Writes "run, historical, ..." into buf[cap]. */
static void xm__cfg_section_list(char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < XM__CFG_NSECTIONS; i++) {
    const char *name = xm__cfg_sections[i].name[0] ? xm__cfg_sections[i].name : "run";
    int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", name);
    if (n < 0 || (size_t)n >= cap - used)
      return;
    used += (size_t)n;
  }
}

static const xm__cfg_key *xm__cfg_find(const char *section, const char *name) {
  section = xm__cfg_section_norm(section);
  for (size_t i = 0; i < XM__CFG_NKEYS; i++)
    if (strcmp(xm__cfg_keys[i].section, section) == 0 && strcmp(xm__cfg_keys[i].name, name) == 0)
      return &xm__cfg_keys[i];
  return NULL;
}

/* Why (section, name) is not a key, into why[cap]. */
static void xm__cfg_unknown(char *why, size_t cap, const char *section) {
  char list[256];
  if (!xm__cfg_section_known(section)) {
    xm__cfg_section_list(list, sizeof list);
    xm__cfg_msg(why, cap, "unknown section '%s' (sections: %s)", section, list);
    return;
  }
  section = xm__cfg_section_norm(section);
  xm__cfg_key_list(list, sizeof list, section);
  if (section[0])
    xm__cfg_msg(why, cap, "unknown key (keys of [%s]: %s)", section, list);
  else
    xm__cfg_msg(why, cap,
                "unknown key (top-level keys: %s; sections: historical, montecarlo, "
                "pricing, cross_margin, minimum, apc, collateral, backtest)",
                list);
}

static int xm__cfg_in_range(const xm__cfg_key *k, double v) {
  if (v < k->lo || (k->lo_open && v == k->lo))
    return 0;
  if (v > k->hi || (k->hi_open && v == k->hi))
    return 0;
  return 1;
}

/* Booleans: true/false, yes/no, on/off, 1/0 (any case). 1 when s is one. */
static int xm__cfg_parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 1;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 1;
    }
  }
  return 0;
}

/* A decimal integer, optionally signed, the whole string, in range of long long. */
static int xm__cfg_parse_ll(const char *s, long long *out) {
  const char *p = s[0] == '-' || s[0] == '+' ? s + 1 : s;
  if (*p < '0' || *p > '9')
    return 0;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return 0;
  *out = v;
  return 1;
}

/* A decimal unsigned integer (no sign), the whole string, in range of uint64_t. */
static int xm__cfg_parse_u64(const char *s, uint64_t *out) {
  if (*s < '0' || *s > '9')
    return 0;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return 0;
  *out = (uint64_t)v;
  return 1;
}

/* A finite number (strtod syntax), the whole string. */
static int xm__cfg_parse_double(const char *s, double *out) {
  if (*s == '\0' || *s == ' ' || *s == '\t')
    return 0;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(v))
    return 0;
  *out = v;
  return 1;
}

/* Writes "a, b, c" (an enum's value names) into buf[cap]. */
static void xm__cfg_name_list(char *buf, size_t cap, const char *const *names) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; names[i]; i++) {
    int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", names[i]);
    if (n < 0 || (size_t)n >= cap - used)
      return;
    used += (size_t)n;
  }
}

/* Parses value (already trimmed) for key k into the field of cfg. XM_ECONFIG
 * with the reason ("must be > 2") in why[cap] when it is not allowed; cfg is
 * then unchanged. */
static xm_status xm__cfg_assign(xm_config *cfg, const xm__cfg_key *k, const char *value, char *why,
                                size_t cap) {
  void *field = (char *)cfg + k->offset;
  if (k->type == XM__CFG_DATE) {
    int y, m, d, n = -1;
    if (value[0] && (strlen(value) != 10 || sscanf(value, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 ||
                     n != 10 || value[4] != '-' || value[7] != '-' || m < 1 || m > 12 || d < 1 ||
                     d > 31 || strspn(value, "0123456789-") != 10)) {
      xm__cfg_msg(why, cap, "must be %s", k->range);
      return XM_ECONFIG;
    }
    memcpy(field, value, strlen(value) + 1); /* at most 10 characters */
    return XM_OK;
  }
  if (value[0] == '\0') {
    xm__cfg_msg(why, cap, "empty value");
    return XM_ECONFIG;
  }
  switch (k->type) {
  case XM__CFG_BOOL: {
    int b = 0;
    if (!xm__cfg_parse_bool(value, &b)) {
      xm__cfg_msg(why, cap, "not a boolean (true/false, yes/no, on/off, 1/0)");
      return XM_ECONFIG;
    }
    memcpy(field, &b, sizeof b);
    return XM_OK;
  }
  case XM__CFG_INT:
  case XM__CFG_I64: {
    long long v = 0;
    if (!xm__cfg_parse_ll(value, &v)) {
      xm__cfg_msg(why, cap, "not an integer; must be %s", k->range);
      return XM_ECONFIG;
    }
    if (!xm__cfg_in_range(k, (double)v)) {
      xm__cfg_msg(why, cap, "must be %s", k->range);
      return XM_ECONFIG;
    }
    if (k->type == XM__CFG_INT) {
      int i = (int)v; /* the range fits an int */
      memcpy(field, &i, sizeof i);
    } else {
      int64_t i = (int64_t)v;
      memcpy(field, &i, sizeof i);
    }
    return XM_OK;
  }
  case XM__CFG_U64: {
    uint64_t v = 0;
    if (!xm__cfg_parse_u64(value, &v)) {
      xm__cfg_msg(why, cap, "must be %s", k->range);
      return XM_ECONFIG;
    }
    memcpy(field, &v, sizeof v);
    return XM_OK;
  }
  case XM__CFG_DOUBLE: {
    double v = 0;
    if (!xm__cfg_parse_double(value, &v)) {
      xm__cfg_msg(why, cap, "not a finite number; must be %s", k->range);
      return XM_ECONFIG;
    }
    if (!xm__cfg_in_range(k, v)) {
      xm__cfg_msg(why, cap, "must be %s", k->range);
      return XM_ECONFIG;
    }
    memcpy(field, &v, sizeof v);
    return XM_OK;
  }
  case XM__CFG_DATE:
    break; /* above */
  case XM__CFG_ENUM: {
    for (int i = 0; k->names[i]; i++) {
      if (strcasecmp(value, k->names[i]) == 0) {
        memcpy(field, &i, sizeof i);
        return XM_OK;
      }
    }
    char list[128];
    xm__cfg_name_list(list, sizeof list, k->names);
    xm__cfg_msg(why, cap, "must be one of %s", list);
    return XM_ECONFIG;
  }
  }
  xm__cfg_msg(why, cap, "internal error: bad key type");
  return XM_EINTERNAL;
}

/* Copies s without leading and trailing blanks into buf[cap]; 0 when too long. */
static int xm__cfg_trim(char *buf, size_t cap, const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    n--;
  if (n >= cap)
    return 0;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return 1;
}

/* Sets (section, name) from value. XM_ECONFIG with the reason in why[cap]. */
static xm_status xm__cfg_apply(xm_config *cfg, const char *section, const char *name,
                               const char *value, char *why, size_t cap) {
  const xm__cfg_key *k = xm__cfg_find(section, name);
  if (!k) {
    xm__cfg_unknown(why, cap, section);
    return XM_ECONFIG;
  }
  char v[XM__CFG_VALUE_MAX];
  if (!xm__cfg_trim(v, sizeof v, value)) {
    xm__cfg_msg(why, cap, "value longer than %d characters", XM__CFG_VALUE_MAX - 1);
    return XM_ECONFIG;
  }
  return xm__cfg_assign(cfg, k, v, why, cap);
}

void xm_config_default(xm_config *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof *cfg);
  cfg->horizon_days = 2;
  cfg->confidence = 0.99;
  cfg->precision = XM_DOUBLE;
  cfg->historical.enabled = 1;
  cfg->historical.ewma_lambda = 0.97;
  cfg->historical.apc_floor = 0.0;
  cfg->historical.filtered = 1;
  cfg->historical.lookback = 1260;
  cfg->historical.measure = XM_MEASURE_ES;
  cfg->montecarlo.enabled = 1;
  cfg->montecarlo.scenarios = 10000;
  cfg->montecarlo.distribution = XM_DIST_STUDENT_T;
  cfg->montecarlo.dof = 5.0;
  cfg->montecarlo.seed = 42;
  cfg->montecarlo.correlation_stress = 0.0;
  cfg->montecarlo.measure = XM_MEASURE_ES;
  cfg->pricing.vol_floor = 0.01;
  cfg->pricing.vol_term_power = 0.0;
  cfg->cross_margin.offset_cap = 0.80;
  cfg->minimum.per_contract = 0.375;
  cfg->apc.buffer = 0.0;
  cfg->collateral.method = XM_COLLATERAL_SCHEDULE;
  cfg->apc.stressed_weight = 0.0;
  cfg->backtest.days = 500;
  cfg->backtest.min_history = 250;
  cfg->backtest.mc_scenarios = 0;
  cfg->backtest.ready_sets = 1;
  cfg->backtest.coverage = 0.99;
  cfg->backtest.apc_window = 20;
}

xm_status xm_config_set(xm_config *cfg, const char *key, const char *value, char *err, size_t cap) {
  xm__cfg_msg(err, cap, "%s", "");
  if (!cfg || !key || !value) {
    xm__cfg_msg(err, cap, "xm_config_set: NULL argument");
    return XM_EINVAL;
  }
  /* "section.name", or a top-level "name" (also "run.name"). */
  char section[64] = "";
  const char *name = key;
  const char *dot = strchr(key, '.');
  if (dot) {
    size_t n = (size_t)(dot - key);
    if (n >= sizeof section) {
      xm__cfg_msg(err, cap, "%.64s: unknown key", key);
      return XM_ECONFIG;
    }
    memcpy(section, key, n);
    section[n] = '\0';
    name = dot + 1;
  }
  xm_config tmp = *cfg;
  char why[512];
  xm_status st = xm__cfg_apply(&tmp, section, name, value, why, sizeof why);
  if (st != XM_OK) {
    xm__cfg_msg(err, cap, "%.128s = " XM__CFG_ECHO ": %s", key, value, why);
    return st;
  }
  *cfg = tmp;
  return XM_OK;
}

/* ---- INI files ------------------------------------------------------------ */

/* State of one xm_config_load: the file, the working copy of the
 * configuration, and the first error found by the reader or the handler. */
typedef struct xm__ini_state {
  FILE *f;
  const char *path;
  xm_config cfg;
  int line;     /* lines read so far (the line inih is working on) */
  int err_line; /* line of the first error found here; 0 when none */
  xm_status err_st;
  char err[1024];
} xm__ini_state;

static void xm__ini_fail(xm__ini_state *s, xm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xm__ini_fail(xm__ini_state *s, xm_status st, const char *fmt, ...) {
  if (s->err_line)
    return; /* keep the first */
  s->err_line = s->line;
  s->err_st = st;
  int n = snprintf(s->err, sizeof s->err, "%s:%d: ", s->path, s->line);
  if (n < 0 || (size_t)n >= sizeof s->err)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err + n, sizeof s->err - (size_t)n, fmt, ap);
  va_end(ap);
}

/* inih's reader (fgets-like): counts lines for the messages, rejects lines
 * longer than inih's buffer (which it would split), strips leading blanks (so
 * that indented keys are keys, not inih's multi-line continuations), and checks
 * each line's shape, so that a syntax error gets a message of its own. */
static char *xm__ini_reader(char *str, int num, void *stream) {
  xm__ini_state *s = stream;
  char *line = fgets(str, num, s->f);
  if (!line)
    return NULL;
  s->line++;
  size_t n = strlen(line);
  if (n == 0 || line[n - 1] != '\n') {
    int c = getc(s->f);
    if (c != EOF && c != '\n') {
      xm__ini_fail(s, XM_ECONFIG, "line longer than %d characters", num - 1);
      /* skip the rest of the line, so that the line count stays right */
      while ((c = getc(s->f)) != EOF && c != '\n')
        ;
    }
  }
  size_t lead = strspn(line, " \t");
  if (lead)
    memmove(line, line + lead, strlen(line + lead) + 1);
  /* The line's content, without the end of line; comments and blanks are fine. */
  size_t len = strcspn(line, "\r\n");
  if (len == 0 || line[0] == ';' || line[0] == '#')
    return line;
  if (line[0] == '[') {
    const char *close = memchr(line, ']', len);
    if (!close) {
      xm__ini_fail(s, XM_ECONFIG, "%.*s: missing ']'", (int)len, line);
      return line;
    }
    char section[64];
    size_t sn = (size_t)(close - line - 1);
    if (sn >= sizeof section)
      sn = sizeof section - 1;
    memcpy(section, line + 1, sn);
    section[sn] = '\0';
    if (!xm__cfg_section_known(section)) {
      char why[512];
      xm__cfg_unknown(why, sizeof why, section);
      xm__ini_fail(s, XM_ECONFIG, "[%s]: %s", section, why);
    }
    return line;
  }
  if (!memchr(line, '=', len) && !memchr(line, ':', len))
    xm__ini_fail(s, XM_ECONFIG, "%.*s: expected 'key = value' or '[section]'",
                 (int)(len > 64 ? 64 : len), line);
  return line;
}

static int xm__ini_handler(void *user, const char *section, const char *name, const char *value) {
  xm__ini_state *s = user;
  if (s->err_line)
    return 1; /* the first error is the one reported; the working copy is dropped */
  char why[512];
  xm_status st = xm__cfg_apply(&s->cfg, section, name, value, why, sizeof why);
  if (st == XM_OK)
    return 1;
  xm__ini_fail(s, st, "%s%s%s%s = " XM__CFG_ECHO ": %s", section[0] ? "[" : "", section,
               section[0] ? "] " : "", name, value, why);
  return 0;
}

xm_status xm_config_load(xm_config *cfg, const char *path, char *err, size_t cap) {
  xm_status st = XM_OK;
  xm__ini_state *s = NULL;
  xm__cfg_msg(err, cap, "%s", "");
  if (!cfg || !path) {
    xm__cfg_msg(err, cap, "xm_config_load: NULL argument");
    return XM_EINVAL;
  }
  s = calloc(1, sizeof *s);
  if (!s) {
    xm__cfg_msg(err, cap, "%s: out of memory", path);
    return XM_ENOMEM;
  }
  s->path = path;
  s->cfg = *cfg;
  /* A regular file of at most XM__CFG_MAX_BYTES: a FIFO, a device such as
   * /dev/zero or a huge file would block or read without end. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    xm__cfg_msg(err, cap, "%s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    st = XM_EIO;
    goto cleanup;
  }
  if (!S_ISREG(sb.st_mode) || sb.st_size > XM__CFG_MAX_BYTES) {
    close(fd);
    if (S_ISREG(sb.st_mode))
      xm__cfg_msg(err, cap, "%s: a configuration file of %lld bytes: at most %d", path,
                  (long long)sb.st_size, XM__CFG_MAX_BYTES);
    else
      xm__cfg_msg(err, cap, "%s: not a regular file (a FIFO, device or folder): refused", path);
    st = S_ISREG(sb.st_mode) ? XM_ECONFIG : XM_EIO;
    goto cleanup;
  }
  s->f = fdopen(fd, "r");
  if (!s->f) {
    close(fd);
    xm__cfg_msg(err, cap, "%s: %s", path, strerror(errno));
    st = XM_EIO;
    goto cleanup;
  }
  int ret = ini_parse_stream(xm__ini_reader, s, xm__ini_handler, s);
  if (ferror(s->f)) {
    xm__cfg_msg(err, cap, "%s: read error: %s", path, strerror(errno));
    st = XM_EIO;
    goto cleanup;
  }
  if (s->err_line && (ret <= 0 || s->err_line <= ret)) {
    xm__cfg_msg(err, cap, "%s", s->err);
    st = s->err_st;
    goto cleanup;
  }
  if (ret > 0) {
    xm__cfg_msg(err, cap, "%s:%d: syntax error", path, ret);
    st = XM_ECONFIG;
    goto cleanup;
  }
  if (ret < 0) {
    xm__cfg_msg(err, cap, "%s: %s", path, ret == -2 ? "out of memory" : "cannot read");
    st = ret == -2 ? XM_ENOMEM : XM_EIO;
    goto cleanup;
  }
  *cfg = s->cfg;

cleanup:
  if (s && s->f)
    fclose(s->f);
  free(s);
  return st;
}

/* ---- INI text ------------------------------------------------------------- */

typedef struct xm__buf {
  char *p;
  size_t len, cap;
  int failed;
} xm__buf;

static void xm__buf_printf(xm__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xm__buf_printf(xm__buf *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if (b->p && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t want = b->cap ? b->cap * 2 : 1024;
    while (want < b->len + (size_t)n + 1)
      want *= 2;
    char *q = realloc(b->p, want);
    if (!q) {
      b->failed = 1;
      return;
    }
    b->p = q;
    b->cap = want;
  }
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v exactly. */
static void xm__cfg_fmt_double(char *buf, size_t cap, double v) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

/* The value text of key k in cfg. */
static void xm__cfg_fmt_value(char *buf, size_t cap, const xm_config *cfg, const xm__cfg_key *k) {
  const void *field = (const char *)cfg + k->offset;
  switch (k->type) {
  case XM__CFG_BOOL: {
    int b;
    memcpy(&b, field, sizeof b);
    snprintf(buf, cap, "%s", b ? "true" : "false");
    return;
  }
  case XM__CFG_INT: {
    int i;
    memcpy(&i, field, sizeof i);
    snprintf(buf, cap, "%d", i);
    return;
  }
  case XM__CFG_I64: {
    int64_t i;
    memcpy(&i, field, sizeof i);
    snprintf(buf, cap, "%lld", (long long)i);
    return;
  }
  case XM__CFG_U64: {
    uint64_t u;
    memcpy(&u, field, sizeof u);
    snprintf(buf, cap, "%llu", (unsigned long long)u);
    return;
  }
  case XM__CFG_DOUBLE: {
    double d;
    memcpy(&d, field, sizeof d);
    xm__cfg_fmt_double(buf, cap, d);
    return;
  }
  case XM__CFG_ENUM: {
    int e;
    memcpy(&e, field, sizeof e);
    int count = 0;
    while (k->names[count])
      count++;
    if (e >= 0 && e < count)
      snprintf(buf, cap, "%s", k->names[e]);
    else
      snprintf(buf, cap, "invalid(%d)", e); /* does not load back, on purpose */
    return;
  }
  case XM__CFG_DATE:
    snprintf(buf, cap, "%.10s", (const char *)field);
    return;
  }
  snprintf(buf, cap, "?");
}

char *xm_config_to_ini(const xm_config *cfg) {
  xm_config def;
  if (!cfg) {
    xm_config_default(&def);
    cfg = &def;
  }
  xm__buf b = {0};
  xm__buf_printf(&b,
                 "; xmargin %s configuration (keys and meaning: METHODOLOGY.md, "
                 "docs/config.md)\n",
                 XM_VERSION_STRING);
  for (size_t s = 0; s < XM__CFG_NSECTIONS; s++) {
    const char *sec = xm__cfg_sections[s].name;
    if (sec[0])
      xm__buf_printf(&b, "\n[%s]\n", sec);
    xm__buf_printf(&b, "; %s\n", xm__cfg_sections[s].comment);
    for (size_t i = 0; i < XM__CFG_NKEYS; i++) {
      if (strcmp(xm__cfg_keys[i].section, sec) != 0)
        continue;
      char v[64];
      xm__cfg_fmt_value(v, sizeof v, cfg, &xm__cfg_keys[i]);
      xm__buf_printf(&b, "%s = %s\n", xm__cfg_keys[i].name, v);
    }
  }
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
