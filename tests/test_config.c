/* Tests of the configuration API: defaults, every key, every range, unknown
 * keys and sections, INI files with line numbers, booleans, and the
 * xm_config_to_ini -> xm_config_load round trip. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "xmargin.h"

/* ---- helpers -------------------------------------------------------------- */

/* Writes text to a fresh temporary file; returns its path (caller frees and
 * unlinks). */
static char *write_temp(const char *text) {
  char *path = strdup("/tmp/xm_test_config_XXXXXX");
  assert_non_null(path);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
  return path;
}

/* Loads text as an INI file over *cfg; returns the status, message in err. */
static xm_status load_text(xm_config *cfg, const char *text, char *err, size_t cap,
                           char **path_out) {
  char *path = write_temp(text);
  xm_status st = xm_config_load(cfg, path, err, cap);
  unlink(path);
  if (path_out)
    *path_out = path;
  else
    free(path);
  return st;
}

static int cfg_equal(const xm_config *a, const xm_config *b) {
  return a->horizon_days == b->horizon_days && a->confidence == b->confidence &&
         a->precision == b->precision && a->historical.enabled == b->historical.enabled &&
         a->historical.ewma_lambda == b->historical.ewma_lambda &&
         a->historical.apc_floor == b->historical.apc_floor &&
         a->historical.filtered == b->historical.filtered &&
         a->historical.lookback == b->historical.lookback &&
         a->historical.measure == b->historical.measure &&
         a->montecarlo.enabled == b->montecarlo.enabled &&
         a->montecarlo.scenarios == b->montecarlo.scenarios &&
         a->montecarlo.distribution == b->montecarlo.distribution &&
         a->montecarlo.dof == b->montecarlo.dof && a->montecarlo.seed == b->montecarlo.seed &&
         a->montecarlo.correlation_stress == b->montecarlo.correlation_stress &&
         a->montecarlo.measure == b->montecarlo.measure &&
         a->pricing.vol_floor == b->pricing.vol_floor &&
         a->pricing.vol_term_power == b->pricing.vol_term_power &&
         a->cross_margin.offset_cap == b->cross_margin.offset_cap &&
         a->minimum.per_contract == b->minimum.per_contract && a->apc.buffer == b->apc.buffer &&
         a->collateral.method == b->collateral.method && a->backtest.days == b->backtest.days &&
         a->backtest.min_history == b->backtest.min_history &&
         a->backtest.mc_scenarios == b->backtest.mc_scenarios &&
         a->backtest.ready_sets == b->backtest.ready_sets &&
         a->backtest.coverage == b->backtest.coverage &&
         a->backtest.apc_window == b->backtest.apc_window &&
         !strcmp(a->apc.stressed_start, b->apc.stressed_start) &&
         !strcmp(a->apc.stressed_end, b->apc.stressed_end) &&
         a->apc.stressed_weight == b->apc.stressed_weight;
}

/* Every key of METHODOLOGY.md, as --set spells it. */
static const char *const all_keys[] = {
    "horizon_days",
    "confidence",
    "precision",
    "historical.enabled",
    "historical.ewma_lambda",
    "historical.apc_floor",
    "historical.filtered",
    "historical.lookback",
    "historical.measure",
    "montecarlo.enabled",
    "montecarlo.scenarios",
    "montecarlo.distribution",
    "montecarlo.dof",
    "montecarlo.seed",
    "montecarlo.correlation_stress",
    "montecarlo.measure",
    "pricing.vol_floor",
    "pricing.vol_term_power",
    "cross_margin.offset_cap",
    "minimum.per_contract",
    "apc.buffer",
    "apc.stressed_start",
    "apc.stressed_end",
    "apc.stressed_weight",
    "collateral.method",
    "backtest.days",
    "backtest.min_history",
    "backtest.mc_scenarios",
    "backtest.ready_sets",
    "backtest.coverage",
    "backtest.apc_window",
};
#define N_KEYS (sizeof all_keys / sizeof all_keys[0])

/* ---- tests ---------------------------------------------------------------- */

static void test_defaults(void **state) {
  (void)state;
  xm_config c;
  memset(&c, 0xAB, sizeof c);
  xm_config_default(&c);
  assert_int_equal(c.horizon_days, 2);
  assert_true(c.confidence == 0.99);
  assert_int_equal(c.precision, XM_DOUBLE);
  assert_int_equal(c.historical.enabled, 1);
  assert_true(c.historical.ewma_lambda == 0.97);
  assert_true(c.historical.apc_floor == 0.0);
  assert_int_equal(c.historical.filtered, 1);
  assert_int_equal(c.historical.lookback, 1260);
  assert_int_equal(c.historical.measure, XM_MEASURE_ES);
  assert_int_equal(c.montecarlo.enabled, 1);
  assert_true(c.montecarlo.scenarios == 10000);
  assert_int_equal(c.montecarlo.distribution, XM_DIST_STUDENT_T);
  assert_true(c.montecarlo.dof == 5.0);
  assert_true(c.montecarlo.seed == 42);
  assert_true(c.montecarlo.correlation_stress == 0.0);
  assert_int_equal(c.montecarlo.measure, XM_MEASURE_ES);
  assert_true(c.pricing.vol_floor == 0.01);
  assert_true(c.pricing.vol_term_power == 0.0);
  assert_true(c.cross_margin.offset_cap == 0.80);
  assert_true(c.minimum.per_contract == 0.375);
  assert_true(c.apc.buffer == 0.0);
  assert_int_equal(c.collateral.method, XM_COLLATERAL_SCHEDULE);
  xm_config_default(NULL); /* a no-op */
}

static void test_set_every_key(void **state) {
  (void)state;
  xm_config c, d;
  char err[512];
  xm_config_default(&c);
  xm_config_default(&d);
#define SET(k, v)                                                                                  \
  do {                                                                                             \
    assert_int_equal(xm_config_set(&c, k, v, err, sizeof err), XM_OK);                             \
    assert_string_equal(err, "");                                                                  \
  } while (0)
  SET("horizon_days", "10");
  assert_int_equal(c.horizon_days, 10);
  SET("run.horizon_days", "250");
  assert_int_equal(c.horizon_days, 250);
  SET("confidence", "0.975");
  assert_true(c.confidence == 0.975);
  SET("precision", "single");
  assert_int_equal(c.precision, XM_SINGLE);
  SET("precision", "double");
  assert_int_equal(c.precision, XM_DOUBLE);
  SET("historical.enabled", "false");
  assert_int_equal(c.historical.enabled, 0);
  SET("historical.ewma_lambda", "0.94");
  assert_true(c.historical.ewma_lambda == 0.94);
  SET("historical.apc_floor", "0.25");
  assert_true(c.historical.apc_floor == 0.25);
  SET("historical.filtered", "no");
  assert_int_equal(c.historical.filtered, 0);
  SET("historical.lookback", "2520");
  assert_int_equal(c.historical.lookback, 2520);
  SET("historical.measure", "var");
  assert_int_equal(c.historical.measure, XM_MEASURE_VAR);
  SET("montecarlo.enabled", "off");
  assert_int_equal(c.montecarlo.enabled, 0);
  SET("montecarlo.scenarios", "100000000");
  assert_true(c.montecarlo.scenarios == 100000000);
  SET("montecarlo.distribution", "normal");
  assert_int_equal(c.montecarlo.distribution, XM_DIST_NORMAL);
  SET("montecarlo.dof", "3.5");
  assert_true(c.montecarlo.dof == 3.5);
  SET("montecarlo.seed", "18446744073709551615");
  assert_true(c.montecarlo.seed == UINT64_MAX);
  SET("montecarlo.seed", "0");
  assert_true(c.montecarlo.seed == 0);
  SET("montecarlo.correlation_stress", "1");
  assert_true(c.montecarlo.correlation_stress == 1.0);
  SET("montecarlo.measure", "worst");
  assert_int_equal(c.montecarlo.measure, XM_MEASURE_WORST);
  SET("pricing.vol_floor", "0");
  assert_true(c.pricing.vol_floor == 0.0);
  SET("pricing.vol_term_power", "5");
  assert_true(c.pricing.vol_term_power == 5.0);
  SET("cross_margin.offset_cap", "0.5e0");
  assert_true(c.cross_margin.offset_cap == 0.5);
  SET("minimum.per_contract", "12.5");
  assert_true(c.minimum.per_contract == 12.5);
  SET("apc.buffer", "0.25");
  assert_true(c.apc.buffer == 0.25);
  SET("apc.buffer", "0");
  assert_true(c.apc.buffer == 0.0);
  SET("apc.buffer", "3");
  assert_true(c.apc.buffer == 3.0);
  SET("apc.stressed_start", "2008-09-15");
  assert_string_equal(c.apc.stressed_start, "2008-09-15");
  SET("apc.stressed_end", " 2009-03-31 ");
  assert_string_equal(c.apc.stressed_end, "2009-03-31");
  SET("apc.stressed_end", ""); /* a date key may be emptied */
  assert_string_equal(c.apc.stressed_end, "");
  SET("apc.stressed_end", "2009-03-31");
  SET("apc.stressed_weight", "0.25");
  assert_true(c.apc.stressed_weight == 0.25);
  SET("backtest.days", "250");
  assert_int_equal(c.backtest.days, 250);
  SET("backtest.min_history", "500");
  assert_int_equal(c.backtest.min_history, 500);
  SET("backtest.mc_scenarios", "2000");
  assert_true(c.backtest.mc_scenarios == 2000);
  SET("backtest.ready_sets", "false");
  assert_int_equal(c.backtest.ready_sets, 0);
  SET("backtest.coverage", "0.975");
  assert_true(c.backtest.coverage == 0.975);
  SET("backtest.apc_window", "5");
  assert_int_equal(c.backtest.apc_window, 5);
  SET("collateral.method", "scenario");
  assert_int_equal(c.collateral.method, XM_COLLATERAL_SCENARIO);
  SET("collateral.method", "schedule");
  assert_int_equal(c.collateral.method, XM_COLLATERAL_SCHEDULE);
  SET("collateral.method", "Scenario");
  assert_int_equal(c.collateral.method, XM_COLLATERAL_SCENARIO);
  /* blanks around the value are trimmed, enum names and booleans take any case */
  SET("montecarlo.dof", "  7 ");
  assert_true(c.montecarlo.dof == 7.0);
  SET("historical.measure", "ES");
  assert_int_equal(c.historical.measure, XM_MEASURE_ES);
  SET("montecarlo.distribution", "Student_T");
  assert_int_equal(c.montecarlo.distribution, XM_DIST_STUDENT_T);
#undef SET
  /* each key differs from its default now or was set to a value in range */
  assert_false(cfg_equal(&c, &d));
  /* err may be NULL */
  assert_int_equal(xm_config_set(&c, "horizon_days", "3", NULL, 0), XM_OK);
  assert_int_equal(c.horizon_days, 3);
  /* every key listed is known (its default text loads) */
  char *ini = xm_config_to_ini(&d);
  assert_non_null(ini);
  for (size_t i = 0; i < N_KEYS; i++) {
    const char *dot = strchr(all_keys[i], '.');
    const char *name = dot ? dot + 1 : all_keys[i];
    char needle[64];
    snprintf(needle, sizeof needle, "\n%s = ", name);
    assert_non_null(strstr(ini, needle));
  }
  free(ini);
}

typedef struct bad_case {
  const char *key, *value, *why;
} bad_case;

static void test_range_errors(void **state) {
  (void)state;
  static const bad_case bad[] = {
      {"horizon_days", "0", "must be an integer in 1..250"},
      {"horizon_days", "251", "1..250"},
      {"horizon_days", "2.5", "not an integer"},
      {"horizon_days", "-1", "1..250"},
      {"horizon_days", "99999999999999999999", "not an integer"},
      {"horizon_days", "", "empty value"},
      {"horizon_days", "2x", "not an integer"},
      {"confidence", "0", "must be in (0, 1)"},
      {"confidence", "1", "(0, 1)"},
      {"confidence", "1.5", "(0, 1)"},
      {"confidence", "nan", "not a finite number"},
      {"confidence", "0.99%", "not a finite number"},
      {"precision", "float", "must be one of double, single"},
      {"historical.enabled", "maybe", "not a boolean"},
      {"historical.enabled", "2", "not a boolean"},
      {"historical.ewma_lambda", "0", "must be in (0, 1)"},
      {"historical.ewma_lambda", "1", "(0, 1)"},
      {"historical.apc_floor", "-0.1", "must be in [0, 1]"},
      {"historical.apc_floor", "1.01", "[0, 1]"},
      {"historical.filtered", "", "empty value"},
      {"historical.lookback", "1", "2..1000000"},
      {"historical.lookback", "1000001", "2..1000000"},
      {"historical.measure", "cvar", "must be one of worst, es, var"},
      {"montecarlo.enabled", "tru", "not a boolean"},
      {"montecarlo.scenarios", "0", "1..100000000"},
      {"montecarlo.scenarios", "100000001", "1..100000000"},
      {"montecarlo.scenarios", "1e4", "not an integer"},
      {"montecarlo.distribution", "t", "must be one of normal, student_t"},
      {"montecarlo.dof", "2", "must be > 2"},
      {"montecarlo.dof", "1.5", "must be > 2"},
      {"montecarlo.dof", "inf", "not a finite number"},
      {"montecarlo.seed", "-1", "0..18446744073709551615"},
      {"montecarlo.seed", "18446744073709551616", "0..18446744073709551615"},
      {"montecarlo.seed", "+5", "0..18446744073709551615"},
      {"montecarlo.seed", "0x10", "0..18446744073709551615"},
      {"montecarlo.correlation_stress", "-0.01", "[0, 1]"},
      {"montecarlo.correlation_stress", "1.01", "[0, 1]"},
      {"montecarlo.measure", "mean", "worst, es, var"},
      {"pricing.vol_floor", "-0.01", "must be >= 0"},
      {"pricing.vol_floor", "1e400", "not a finite number"},
      {"pricing.vol_term_power", "-1", "[0, 5]"},
      {"pricing.vol_term_power", "5.0001", "[0, 5]"},
      {"cross_margin.offset_cap", "1.2", "[0, 1]"},
      {"cross_margin.offset_cap", "-0.2", "[0, 1]"},
      {"minimum.per_contract", "-1", ">= 0"},
      {"minimum.per_contract", "abc", "not a finite number"},
      {"apc.buffer", "-0.1", "must be >= 0"},
      {"apc.buffer", "-1e-300", ">= 0"},
      {"apc.buffer", "inf", "not a finite number"},
      {"apc.buffer", "nan", "not a finite number"},
      {"apc.buffer", "", "empty value"},
      {"collateral.method", "bogus", "must be one of schedule, scenario"},
      {"collateral.method", "schedules", "schedule, scenario"},
      {"collateral.method", "", "empty value"},
      {"apc.stressed_start", "2008-9-15", "an ISO date YYYY-MM-DD"},
      {"apc.stressed_start", "2008-13-01", "YYYY-MM-DD"},
      {"apc.stressed_start", "2008-00-10", "YYYY-MM-DD"},
      {"apc.stressed_start", "2008-01-32", "YYYY-MM-DD"},
      {"apc.stressed_start", "15/09/2008", "YYYY-MM-DD"},
      {"apc.stressed_end", "2008-09-15T00", "YYYY-MM-DD"},
      {"apc.stressed_end", "+008-09-15", "YYYY-MM-DD"},
      {"apc.stressed_weight", "1.5", "[0, 1]"},
      {"apc.stressed_weight", "-0.1", "[0, 1]"},
      {"backtest.days", "1", "2..1000000"},
      {"backtest.min_history", "1", "2..1000000"},
      {"backtest.mc_scenarios", "-1", "0..100000000"},
      {"backtest.ready_sets", "maybe", "not a boolean"},
      {"backtest.coverage", "1", "(0, 1)"},
      {"backtest.apc_window", "0", "1..1000000"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    xm_config c, d;
    char err[512];
    xm_config_default(&c);
    d = c;
    xm_status st = xm_config_set(&c, bad[i].key, bad[i].value, err, sizeof err);
    if (st != XM_ECONFIG || !strstr(err, bad[i].key) || !strstr(err, bad[i].why))
      fail_msg("%s = '%s': status %d, message '%s' (expected '%s')", bad[i].key, bad[i].value,
               (int)st, err, bad[i].why);
    /* the message names the value too, and the configuration is unchanged */
    if (bad[i].value[0])
      assert_non_null(strstr(err, bad[i].value));
    assert_true(cfg_equal(&c, &d));
  }
  /* the exact form */
  xm_config c;
  char err[512];
  xm_config_default(&c);
  assert_int_equal(xm_config_set(&c, "montecarlo.dof", "1.5", err, sizeof err), XM_ECONFIG);
  assert_string_equal(err, "montecarlo.dof = 1.5: must be > 2");
  /* a short buffer is truncated, still terminated */
  char tiny[8];
  assert_int_equal(xm_config_set(&c, "montecarlo.dof", "1.5", tiny, sizeof tiny), XM_ECONFIG);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
  assert_int_equal(xm_config_set(&c, "montecarlo.dof", "1.5", NULL, 0), XM_ECONFIG);
}

static void test_unknown_keys(void **state) {
  (void)state;
  xm_config c, d;
  char err[512];
  xm_config_default(&c);
  d = c;
  assert_int_equal(xm_config_set(&c, "montecarlo.dofs", "5", err, sizeof err), XM_ECONFIG);
  assert_non_null(strstr(err, "montecarlo.dofs"));
  assert_non_null(strstr(err, "unknown key"));
  assert_non_null(strstr(err, "dof")); /* lists the keys of the section */
  assert_int_equal(xm_config_set(&c, "montecarl.dof", "5", err, sizeof err), XM_ECONFIG);
  assert_non_null(strstr(err, "montecarl.dof"));
  assert_non_null(strstr(err, "unknown section 'montecarl'"));
  assert_int_equal(xm_config_set(&c, "horizon", "5", err, sizeof err), XM_ECONFIG);
  assert_non_null(strstr(err, "horizon"));
  assert_non_null(strstr(err, "unknown key"));
  /* a section key given without its section, and a top-level key inside one */
  assert_int_equal(xm_config_set(&c, "ewma_lambda", "0.9", err, sizeof err), XM_ECONFIG);
  assert_int_equal(xm_config_set(&c, "historical.horizon_days", "5", err, sizeof err), XM_ECONFIG);
  assert_int_equal(xm_config_set(&c, "historical", "5", err, sizeof err), XM_ECONFIG);
  assert_int_equal(xm_config_set(&c, "historical.ewma_lambda.x", "0.9", err, sizeof err),
                   XM_ECONFIG);
  assert_int_equal(xm_config_set(&c, "", "5", err, sizeof err), XM_ECONFIG);
  /* key names are case-sensitive */
  assert_int_equal(xm_config_set(&c, "Horizon_Days", "5", err, sizeof err), XM_ECONFIG);
  assert_true(cfg_equal(&c, &d));
  /* NULL arguments */
  assert_int_equal(xm_config_set(NULL, "horizon_days", "5", err, sizeof err), XM_EINVAL);
  assert_int_equal(xm_config_set(&c, NULL, "5", err, sizeof err), XM_EINVAL);
  assert_int_equal(xm_config_set(&c, "horizon_days", NULL, err, sizeof err), XM_EINVAL);
  assert_int_equal(xm_config_load(NULL, "x.ini", err, sizeof err), XM_EINVAL);
  assert_int_equal(xm_config_load(&c, NULL, err, sizeof err), XM_EINVAL);
}

static void test_booleans(void **state) {
  (void)state;
  static const char *const yes[] = {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"};
  static const char *const no[] = {"false", "FALSE", "no", "NO", "off", "Off", "0"};
  static const char *const bad[] = {"", "t", "f", "y", "n", "2", "-1", "truee", "01", "enable"};
  xm_config c;
  char err[256];
  xm_config_default(&c);
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    c.historical.filtered = 0;
    assert_int_equal(xm_config_set(&c, "historical.filtered", yes[i], err, sizeof err), XM_OK);
    assert_int_equal(c.historical.filtered, 1);
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    c.montecarlo.enabled = 1;
    assert_int_equal(xm_config_set(&c, "montecarlo.enabled", no[i], err, sizeof err), XM_OK);
    assert_int_equal(c.montecarlo.enabled, 0);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(xm_config_set(&c, "historical.enabled", bad[i], err, sizeof err), XM_ECONFIG);
    assert_non_null(strstr(err, "historical.enabled"));
  }
}

static void test_load_file(void **state) {
  (void)state;
  xm_config c, d;
  char err[512];
  xm_config_default(&c);
  const char *text = "; a comment\n"
                     "# another comment\n"
                     "horizon_days = 5\n"
                     "\n"
                     "[historical]\n"
                     "ewma_lambda = 0.94 ; inline comment\n"
                     "  lookback = 500\n"
                     "  measure = var\n"
                     "filtered: off\n"
                     "\n"
                     "[montecarlo]\n"
                     "scenarios=20000\n"
                     "seed = 7\n"
                     "distribution = normal\r\n"
                     "[run]\n"
                     "precision = single\n"
                     "[pricing]\n"
                     "[cross_margin]\n"
                     "offset_cap = 0.6\n"
                     "[minimum]\n"
                     "per_contract = 1";
  assert_int_equal(load_text(&c, text, err, sizeof err, NULL), XM_OK);
  assert_string_equal(err, "");
  xm_config_default(&d);
  d.horizon_days = 5;
  d.historical.ewma_lambda = 0.94;
  d.historical.lookback = 500;
  d.historical.measure = XM_MEASURE_VAR;
  d.historical.filtered = 0;
  d.montecarlo.scenarios = 20000;
  d.montecarlo.seed = 7;
  d.montecarlo.distribution = XM_DIST_NORMAL;
  d.precision = XM_SINGLE;
  d.cross_margin.offset_cap = 0.6;
  d.minimum.per_contract = 1;
  assert_true(cfg_equal(&c, &d));

  /* a file overrides only what it names */
  assert_int_equal(load_text(&c, "[montecarlo]\nseed = 9\n", err, sizeof err, NULL), XM_OK);
  d.montecarlo.seed = 9;
  assert_true(cfg_equal(&c, &d));
  /* an empty file changes nothing */
  assert_int_equal(load_text(&c, "", err, sizeof err, NULL), XM_OK);
  assert_true(cfg_equal(&c, &d));
}

/* Loads text expecting an error whose message is "<path>:<tail>". */
static void expect_load_error(const char *text, xm_status want, const char *tail) {
  xm_config c, d;
  char err[1024], expect[1200];
  char *path = NULL;
  xm_config_default(&c);
  d = c;
  xm_status st = load_text(&c, text, err, sizeof err, &path);
  snprintf(expect, sizeof expect, "%s:%s", path, tail);
  if (st != want || strncmp(err, expect, strlen(expect)) != 0)
    fail_msg("status %d, message '%s'; expected %d, '%s...'", (int)st, err, (int)want, expect);
  assert_true(cfg_equal(&c, &d)); /* unchanged on error */
  free(path);
}

static void test_load_errors(void **state) {
  (void)state;
  expect_load_error("horizon_days = 3\n"
                    "\n"
                    "[historical]\n"
                    "ewma_lambda = 0.9\n"
                    "\n"
                    "[montecarlo]\n"
                    "dof = 1.5\n"
                    "seed = 1\n",
                    XM_ECONFIG, "7: [montecarlo] dof = 1.5: must be > 2");
  expect_load_error("[historical]\nlambda = 0.9\n", XM_ECONFIG,
                    "2: [historical] lambda = 0.9: unknown key");
  expect_load_error("; c\nconfidence = 0.99\n[hist]\nenabled = true\n", XM_ECONFIG,
                    "3: [hist]: unknown section 'hist'");
  /* an unknown section is an error even when it is empty */
  expect_load_error("[pricing]\n\n[extra]\n", XM_ECONFIG, "3: [extra]: unknown section");
  expect_load_error("[run]\nhorizon_days = 0\n", XM_ECONFIG,
                    "2: [run] horizon_days = 0: must be an integer in 1..250");
  expect_load_error("horizon_days = 1\nbogus = 1\n", XM_ECONFIG, "2: bogus = 1: unknown key");
  expect_load_error("[montecarlo]\nenabled = sometimes\n", XM_ECONFIG,
                    "2: [montecarlo] enabled = sometimes: not a boolean");
  /* syntax errors */
  expect_load_error("[historical]\nlookback 300\n", XM_ECONFIG,
                    "2: lookback 300: expected 'key = value'");
  expect_load_error("\n\n\n[historical\n", XM_ECONFIG, "4: [historical: missing ']'");
  /* the first error is the one reported */
  expect_load_error("[pricing]\nvol_floor = -1\nvol_term_power = 9\n", XM_ECONFIG,
                    "2: [pricing] vol_floor = -1: must be >= 0");
  /* a # after the value is not a comment (only ' ;' is) */
  expect_load_error("[montecarlo]\ndof = 5 # five\n", XM_ECONFIG,
                    "2: [montecarlo] dof = 5 # five: not a finite number");
  /* indented lines are keys, not inih's continuation lines */
  expect_load_error("[historical]\nenabled = true\n   ewma_lambda = 2\n", XM_ECONFIG,
                    "3: [historical] ewma_lambda = 2: must be in (0, 1)");
  /* a line too long for inih's buffer is refused, and the numbering holds */
  char text[1024];
  char longv[400];
  memset(longv, '1', sizeof longv - 1);
  longv[sizeof longv - 1] = '\0';
  snprintf(text, sizeof text, "[minimum]\nper_contract = %s\n", longv);
  expect_load_error(text, XM_ECONFIG, "2: line longer than");

  /* unreadable files */
  xm_config c;
  char err[512];
  xm_config_default(&c);
  assert_int_equal(xm_config_load(&c, "/nonexistent/xmargin.ini", err, sizeof err), XM_EIO);
  assert_non_null(strstr(err, "/nonexistent/xmargin.ini"));
  assert_int_equal(xm_config_load(&c, "/tmp", err, sizeof err), XM_EIO);
}

static void test_round_trip(void **state) {
  (void)state;
  xm_config cfgs[3];
  xm_config_default(&cfgs[0]);
  xm_config_default(&cfgs[1]);
  cfgs[1].horizon_days = 250;
  cfgs[1].confidence = 0.1 + 0.2; /* needs 17 digits */
  cfgs[1].precision = XM_SINGLE;
  cfgs[1].historical.enabled = 0;
  cfgs[1].historical.ewma_lambda = 1.0 / 3.0;
  cfgs[1].historical.apc_floor = 1e-300;
  cfgs[1].historical.filtered = 0;
  cfgs[1].historical.lookback = 1000000;
  cfgs[1].historical.measure = XM_MEASURE_WORST;
  cfgs[1].montecarlo.enabled = 0;
  cfgs[1].montecarlo.scenarios = 99999999;
  cfgs[1].montecarlo.distribution = XM_DIST_NORMAL;
  cfgs[1].montecarlo.dof = nextafter(2.0, 3.0);
  cfgs[1].montecarlo.seed = UINT64_MAX;
  cfgs[1].montecarlo.correlation_stress = 0.123456789012345678;
  cfgs[1].montecarlo.measure = XM_MEASURE_VAR;
  cfgs[1].pricing.vol_floor = 1e300;
  cfgs[1].pricing.vol_term_power = 4.999999999999999;
  cfgs[1].cross_margin.offset_cap = 0.0;
  cfgs[1].minimum.per_contract = 4.9e-324;
  cfgs[1].apc.buffer = 0.1 + 0.2; /* needs 17 digits */
  cfgs[1].collateral.method = XM_COLLATERAL_SCENARIO;
  xm_config_default(&cfgs[2]);
  cfgs[2].montecarlo.seed = 0;
  cfgs[2].confidence = 0.9999999999999999;
  cfgs[2].historical.ewma_lambda = 5e-324;
  for (size_t i = 0; i < 3; i++) {
    char *ini = xm_config_to_ini(&cfgs[i]);
    assert_non_null(ini);
    xm_config back;
    xm_config_default(&back);
    back.horizon_days = 77; /* every key is written, so this goes */
    back.montecarlo.seed = 1234;
    char err[512];
    xm_status st = load_text(&back, ini, err, sizeof err, NULL);
    if (st != XM_OK)
      fail_msg("round trip %zu: %s\n%s", i, err, ini);
    assert_true(cfg_equal(&back, &cfgs[i]));
    /* a comment line per section, every section present */
    const char *sections[] = {"[historical]\n;",   "[montecarlo]\n;", "[pricing]\n;",
                              "[cross_margin]\n;", "[minimum]\n;",    "[apc]\n;",
                              "[collateral]\n;"};
    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++)
      assert_non_null(strstr(ini, sections[s]));
    free(ini);
  }
  /* the defaults print as the short numbers of METHODOLOGY.md */
  char *ini = xm_config_to_ini(&cfgs[0]);
  assert_non_null(ini);
  assert_non_null(strstr(ini, "\nconfidence = 0.99\n"));
  assert_non_null(strstr(ini, "\newma_lambda = 0.97\n"));
  assert_non_null(strstr(ini, "\noffset_cap = 0.8\n"));
  assert_non_null(strstr(ini, "\nseed = 42\n"));
  assert_non_null(strstr(ini, "\ndistribution = student_t\n"));
  free(ini);
  /* every key settable through --set from the printed text */
  xm_config c;
  xm_config_default(&c);
  char err[256];
  assert_int_equal(xm_config_set(&c, "montecarlo.seed", "18446744073709551615", err, sizeof err),
                   XM_OK);
  assert_true(c.montecarlo.seed == UINT64_MAX);
}

static void test_example_file(void **state) {
  (void)state;
  /* examples/xmargin.ini holds every key at its default */
  xm_config c, d;
  char err[512];
  xm_config_default(&d);
  c = d;
  c.horizon_days = 99;
  c.montecarlo.seed = 1;
  assert_int_equal(xm_config_load(&c, XM_SOURCE_DIR "/examples/xmargin.ini", err, sizeof err),
                   XM_OK);
  assert_true(cfg_equal(&c, &d));
  /* and names every key: loading it over a changed configuration restores all */
  xm_config e;
  memset(&e, 0, sizeof e);
  e.historical.measure = XM_MEASURE_VAR;
  e.montecarlo.measure = XM_MEASURE_VAR;
  e.apc.buffer = 0.5;
  e.collateral.method = XM_COLLATERAL_SCENARIO;
  assert_int_equal(xm_config_load(&e, XM_SOURCE_DIR "/examples/xmargin.ini", err, sizeof err),
                   XM_OK);
  assert_true(cfg_equal(&e, &d));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),     cmocka_unit_test(test_set_every_key),
      cmocka_unit_test(test_range_errors), cmocka_unit_test(test_unknown_keys),
      cmocka_unit_test(test_booleans),     cmocka_unit_test(test_load_file),
      cmocka_unit_test(test_load_errors),  cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_example_file),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
