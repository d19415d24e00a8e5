/* Tests of host/results.c: the backtest file (FORMAT.md section 4) that
 * xm_backtest_result_write makes of a result filled by hand (N = 5 days,
 * A = 3 accounts, G = 2 silos, K = 2 sets), read back with HDF5: the root
 * attributes, every dataset's shape, type and values, the dimension scales
 * of each group, the units; and the refusals (an output over an input, bad
 * arguments). The results file of a run is tested in test_io.c.
 *
 * `test_results --write-backtest PATH` writes the same backtest file to PATH
 * and exits (used by tests/python/test_backtest_file.py). */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include "xmargin.h"

enum { XM_T_N = 5, XM_T_A = 3, XM_T_G = 2, XM_T_K = 2, XM_T_F = 2 };
static const int64_t xm_t_S[XM_T_K] = {3, 4}; /* each set's largest size over the days */

static char xm_t_dir[256];

static void xm_t_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", xm_t_dir, name);
}

static int xm_t_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(xm_t_dir, sizeof xm_t_dir, "%s/xm_test_results.XXXXXX", base && *base ? base : "/tmp");
  return mkdtemp(xm_t_dir) ? 0 : -1;
}

/* Two small files in the test folder that stand for a run's inputs. */
static void xm_t_inputs(char *in_p, char *in_s, size_t cap, const char *tag) {
  char name[64];
  const char *text[2] = {"the book", "the scenarios"};
  char *path[2] = {in_p, in_s};
  for (int i = 0; i < 2; i++) {
    snprintf(name, sizeof name, "%s%s.h5", i ? "scen" : "book", tag);
    xm_t_path(path[i], cap, name);
    FILE *fp = fopen(path[i], "w");
    assert_non_null(fp);
    fputs(text[i], fp);
    fclose(fp);
  }
}

static int xm_t_teardown(void **state) {
  (void)state;
  DIR *d = opendir(xm_t_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", xm_t_dir, e->d_name);
    if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")))
      unlink(p);
  }
  if (d)
    closedir(d);
  rmdir(xm_t_dir);
  return 0;
}

/* ---- the book (a view) and a result filled by hand ---- */

static char *xm_t_acc[] = {"A1", "A2", "A3"};
static char *xm_t_acur[] = {"USD", "EUR", "USD"};
static char *xm_t_silo[] = {"securities", "futures"};

static void xm_t_book(xm_portfolio *pf) {
  memset(pf, 0, sizeof *pf);
  snprintf(pf->valuation_date, sizeof pf->valuation_date, "2024-06-28");
  snprintf(pf->currency, sizeof pf->currency, "USD");
  pf->n_accounts = XM_T_A;
  pf->account_id = xm_t_acc;
  pf->account_currency = xm_t_acur;
  pf->n_silos = XM_T_G;
  pf->silo_name = xm_t_silo;
}

static char **xm_t_strs(int64_t n, const char *fmt, int from) {
  char **s = calloc((size_t)n, sizeof *s);
  assert_non_null(s);
  for (int64_t i = 0; i < n; i++) {
    char b[64];
    snprintf(b, sizeof b, fmt, (int)i + from);
    s[i] = strdup(b);
    assert_non_null(s[i]);
  }
  return s;
}

static double *xm_t_f64(int64_t n) {
  double *v = calloc((size_t)n, sizeof *v);
  assert_non_null(v);
  return v;
}

/* The values every check below knows: */
static double xm_t_margin_v(int m, int j, int a) { return 100.0 * (m + 1) + 10.0 * j + a; }
static double xm_t_realised_v(int j, int a) { return 50.0 + 60.0 * j - a; }
static double xm_t_silo_v(int j, int a, int g) { return 10.0 * (g + 1) + j + 0.5 * a; }
static double xm_t_total_v(int m, int j) { return 1000.0 * (m + 1) + j; }
/* silo 1 of account 1 holds nothing: no statistics */
static int xm_t_empty_silo(int a, int g) { return a == 1 && g == 1; }

static void xm_t_stats_of(xm_bt_stats *s, int m, int a, int apc) {
  s->exceptions_all = m + a + 1;
  s->exceptions = a;
  s->observed_coverage = 1.0 - a / 3.0;
  s->kupiec_lr = 0.25 * a;
  s->kupiec_p = 1.0 - 0.125 * a;
  s->christoffersen_lr = 0.5 * m;
  s->cc_lr = 0.25 * a + 0.5 * m;
  s->cc_p = 0.75;
  s->zone = a % 3;
  s->peak_to_trough = apc ? 1.5 + a : NAN;
  s->max_increase = apc ? 0.125 * (a + 1) : NAN;
}

static void xm_t_fill(xm_backtest_result *r, int save_scenarios) {
  memset(r, 0, sizeof *r);
  const int N = XM_T_N, A = XM_T_A, G = XM_T_G, K = XM_T_K, F = XM_T_F;
  r->N = N;
  r->n_tests = 3; /* h = 2: d = T - h, T - h - 2, T - h - 4 */
  r->A = A;
  r->G = G;
  r->K = K;
  r->F = F;
  r->first_day = 251;
  r->horizon = 2;
  r->day = xm_t_strs(N, "2024-01-%02d", 1);
  r->realised_end = xm_t_strs(N, "2024-01-%02d", 3);
  r->test_day = calloc(N, sizeof *r->test_day);
  assert_non_null(r->test_day);
  for (int j = 0; j < N; j++)
    r->test_day[j] = j % 2 == 0;
  r->set = calloc(K, sizeof *r->set);
  r->factor = calloc(F, sizeof *r->factor);
  assert_true(r->set && r->factor);
  r->set[0] = strdup("historical");
  r->set[1] = strdup("montecarlo");
  r->factor[0] = strdup("SPX");
  r->factor[1] = strdup("SPX.iv");
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    r->margin[m] = xm_t_f64(N * A);
    r->total_margin[m] = xm_t_f64(N);
    r->stats[m] = calloc(A, sizeof *r->stats[m]);
    assert_non_null(r->stats[m]);
    for (int j = 0; j < N; j++) {
      r->total_margin[m][j] = xm_t_total_v(m, j);
      for (int a = 0; a < A; a++)
        r->margin[m][j * A + a] = xm_t_margin_v(m, j, a);
    }
    for (int a = 0; a < A; a++)
      xm_t_stats_of(&r->stats[m][a], m, a, m == XM_BT_REQUIREMENT);
    xm_t_stats_of(&r->total_stats[m], m, 2, m == XM_BT_REQUIREMENT);
  }
  r->realised = xm_t_f64(N * A);
  r->silo_margin = xm_t_f64(N * A * G);
  r->realised_by_silo = xm_t_f64(N * A * G);
  r->binding = calloc(N * A, sizeof *r->binding);
  r->total_realised = xm_t_f64(N);
  r->silo_stats = calloc(A * G, sizeof *r->silo_stats);
  r->to_reporting = xm_t_f64(A);
  assert_true(r->binding && r->silo_stats);
  for (int j = 0; j < N; j++) {
    r->total_realised[j] = 900.0 + 100.0 * j;
    for (int a = 0; a < A; a++) {
      r->realised[j * A + a] = xm_t_realised_v(j, a);
      r->binding[j * A + a] = (j + a) % 2;
      for (int g = 0; g < G; g++) {
        r->silo_margin[(j * A + a) * G + g] = xm_t_silo_v(j, a, g);
        r->realised_by_silo[(j * A + a) * G + g] = xm_t_empty_silo(a, g) ? 0 : 12.0 + j - g;
      }
    }
  }
  for (int a = 0; a < A; a++) {
    r->to_reporting[a] = a == 1 ? 1.08 : 1.0;
    for (int g = 0; g < G; g++) {
      xm_bt_stats *s = &r->silo_stats[a * G + g];
      xm_t_stats_of(s, 0, a + g, 1);
      if (xm_t_empty_silo(a, g)) /* what the driver gives a silo with nothing in it */
        *s = (xm_bt_stats){0, 0, NAN, NAN, NAN, NAN, NAN, NAN, -1, NAN, NAN, -1, -1};
    }
  }
  if (save_scenarios) {
    r->shock = calloc(K, sizeof *r->shock);
    r->shock_S = calloc(K, sizeof *r->shock_S);
    r->delta = calloc(K, sizeof *r->delta);
    assert_true(r->shock && r->shock_S && r->delta);
    for (int k = 0; k < K; k++) {
      int64_t S = xm_t_S[k];
      r->shock_S[k] = S;
      r->shock[k] = xm_t_f64(N * S * F);
      for (int j = 0; j < N; j++)
        for (int64_t s = 0; s < S; s++)
          for (int f = 0; f < F; f++) /* the historical set grows by a row a day */
            r->shock[k][(j * S + s) * F + f] =
                k == 0 && s > j ? NAN : 0.01 * (double)(k + 1) * (double)(s + 1) - 0.001 * f;
    }
    r->delta[1] = xm_t_f64(N); /* Monte Carlo only */
    for (int j = 0; j < N; j++)
      r->delta[1][j] = j == 3 ? 1e-10 : 0.0;
  }
}

static xm_status xm_t_write(const char *path, const xm_backtest_result *r, const char *in_p,
                            const char *in_s, xm_diag *d) {
  xm_portfolio pf;
  xm_t_book(&pf);
  xm_config cfg;
  xm_config_default(&cfg);
  cfg.backtest.coverage = 0.975;
  cfg.backtest.apc_window = 3;
  xm_run_meta meta = {in_p, in_s, "cpu: test [none]", "2024-06-28T12:00:00Z", 1.25};
  return xm_backtest_result_write(path, &pf, &cfg, r, &meta, d);
}

/* ---- reading it back ---- */

static hid_t xm_t_open(hid_t fid, const char *path) {
  hid_t d = H5Dopen2(fid, path, H5P_DEFAULT);
  if (d < 0)
    print_message("missing %s\n", path);
  assert_true(d >= 0);
  return d;
}

/* Dataset path has rank dims[] (rank 0: a scalar) and type class cls
 * (H5T_INTEGER: of `bytes` bytes; H5T_STRING: variable length). */
static void xm_t_shape(hid_t fid, const char *path, H5T_class_t cls, size_t bytes, int rank,
                       const hsize_t *dims) {
  hid_t d = xm_t_open(fid, path);
  hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
  hsize_t got[3] = {0, 0, 0};
  int r = H5Sget_simple_extent_dims(sp, got, NULL);
  if (r != rank)
    print_message("%s: rank %d, want %d\n", path, r, rank);
  assert_int_equal(r, rank);
  for (int i = 0; i < rank; i++)
    assert_int_equal(got[i], dims[i]);
  if (rank == 0)
    assert_int_equal(H5Sget_simple_extent_type(sp), H5S_SCALAR);
  assert_int_equal(H5Tget_class(t), cls);
  if (cls == H5T_STRING)
    assert_true(H5Tis_variable_str(t) > 0);
  else
    assert_int_equal(H5Tget_size(t), bytes);
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(d);
}

static void xm_t_vstr(hid_t loc, const char *obj, const char *name, char *buf, size_t cap) {
  hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0)
    print_message("missing attribute %s of %s\n", name, obj);
  assert_true(a >= 0);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char *v = NULL;
  assert_true(H5Aread(a, t, &v) >= 0);
  snprintf(buf, cap, "%s", v ? v : "");
  H5free_memory(v);
  H5Tclose(t);
  H5Aclose(a);
}

/* The n strings of dataset path, each compared with want[i]. */
static void xm_t_strings(hid_t fid, const char *path, const char *const *want, size_t n) {
  hid_t d = xm_t_open(fid, path);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char **v = calloc(n, sizeof *v);
  assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(v[i], want[i]))
      print_message("%s[%zu] = '%s', want '%s'\n", path, i, v[i], want[i]);
    assert_string_equal(v[i], want[i]);
    H5free_memory(v[i]);
  }
  free(v);
  H5Tclose(t);
  H5Dclose(d);
}

/* Scale path_scale is a dimension scale and is attached to dimension dim of
 * dataset path. */
static void xm_t_attached(hid_t fid, const char *path, const char *scale, unsigned dim) {
  hid_t d = xm_t_open(fid, path), s = xm_t_open(fid, scale);
  assert_true(H5DSis_scale(s) > 0);
  if (H5DSis_attached(d, s, dim) <= 0)
    print_message("%s: %s not attached to dimension %u\n", path, scale, dim);
  assert_true(H5DSis_attached(d, s, dim) > 0);
  H5Dclose(s);
  H5Dclose(d);
}

static void xm_t_units(hid_t fid, const char *path, const char *want) {
  char buf[256];
  xm_t_vstr(fid, path, "units", buf, sizeof buf);
  if (strcmp(buf, want))
    print_message("%s: units '%s', want '%s'\n", path, buf, want);
  assert_string_equal(buf, want);
  xm_t_vstr(fid, path, "long_name", buf, sizeof buf);
  assert_true(buf[0] != '\0');
}

static const char *const xm_t_stat_f64[] = {"observed_coverage", "kupiec_lr", "kupiec_p",
                                            "christoffersen_lr", "cc_lr",     "cc_p"};

/* Every dataset of /stats/<group>: shape [A] (silo: [A x G]; total: scalar),
 * the procyclicality ones only where apc. */
static void xm_t_stats_shapes(hid_t fid, const char *group, int rank, int apc) {
  const hsize_t dims[2] = {XM_T_A, XM_T_G};
  char p[256];
  snprintf(p, sizeof p, "%s/exceptions_all", group);
  xm_t_shape(fid, p, H5T_INTEGER, 8, rank, dims);
  snprintf(p, sizeof p, "%s/exceptions", group);
  xm_t_shape(fid, p, H5T_INTEGER, 8, rank, dims);
  for (size_t i = 0; i < sizeof xm_t_stat_f64 / sizeof xm_t_stat_f64[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", group, xm_t_stat_f64[i]);
    xm_t_shape(fid, p, H5T_FLOAT, 8, rank, dims);
  }
  snprintf(p, sizeof p, "%s/zone", group);
  xm_t_shape(fid, p, H5T_STRING, 0, rank, dims);
  const char *apc_names[] = {"peak_to_trough", "max_increase"};
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s/%s", group, apc_names[i]);
    if (apc)
      xm_t_shape(fid, p, H5T_FLOAT, 8, rank, dims);
    else
      assert_true(H5LTpath_valid(fid, p, 1) == 0);
  }
  if (rank >= 1) {
    snprintf(p, sizeof p, "%s/zone", group);
    char sc[256];
    snprintf(sc, sizeof sc, "%s/account", group);
    xm_t_attached(fid, p, sc, 0);
    if (rank == 2) {
      snprintf(sc, sizeof sc, "%s/silo", group);
      xm_t_attached(fid, p, sc, 1);
    }
  }
}

static void test_backtest_write(void **state) {
  (void)state;
  char path[512], in_p[512], in_s[512], buf[16384];
  xm_t_path(path, sizeof path, "bt.h5");
  xm_t_inputs(in_p, in_s, sizeof in_p, "");
  xm_backtest_result r;
  xm_t_fill(&r, 1);
  xm_diag d = {0};
  assert_int_equal(xm_t_write(path, &r, in_p, in_s, &d), XM_OK);
  assert_int_equal(d.total, 0);

  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(fid >= 0);
  /* root attributes: those of a results file and the backtest's */
  xm_t_vstr(fid, "/", "format", buf, sizeof buf);
  assert_string_equal(buf, "xmargin.backtest");
  const char *attrs[] = {"format_version",
                         "software_version",
                         "created_utc",
                         "valuation_date",
                         "reporting_currency",
                         "portfolio",
                         "scenarios",
                         "portfolio_sha256",
                         "scenarios_sha256",
                         "config",
                         "device",
                         "precision",
                         "seed",
                         "elapsed_s",
                         "backtest_days",
                         "test_days",
                         "target_coverage",
                         "apc_window"};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
    if (H5Aexists(fid, attrs[i]) <= 0)
      print_message("missing root attribute %s\n", attrs[i]);
    assert_true(H5Aexists(fid, attrs[i]) > 0);
  }
  int iv = 0;
  double dv = 0;
  assert_true(H5LTget_attribute_int(fid, "/", "format_version", &iv) >= 0);
  assert_int_equal(iv, 2);
  assert_true(H5LTget_attribute_int(fid, "/", "backtest_days", &iv) >= 0);
  assert_int_equal(iv, XM_T_N);
  assert_true(H5LTget_attribute_int(fid, "/", "test_days", &iv) >= 0);
  assert_int_equal(iv, 3);
  assert_true(H5LTget_attribute_int(fid, "/", "apc_window", &iv) >= 0);
  assert_int_equal(iv, 3);
  assert_true(H5LTget_attribute_double(fid, "/", "target_coverage", &dv) >= 0);
  assert_true(dv == 0.975);
  xm_t_vstr(fid, "/", "valuation_date", buf, sizeof buf);
  assert_string_equal(buf, "2024-06-28");
  xm_t_vstr(fid, "/", "portfolio_sha256", buf, sizeof buf);
  assert_int_equal(strlen(buf), 64);
  xm_t_vstr(fid, "/", "config", buf, sizeof buf);
  assert_non_null(strstr(buf, "coverage = 0.975"));

  /* dimension scales and their values */
  const char *days[] = {"2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"};
  const char *ends[] = {"2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06", "2024-01-07"};
  const char *sets[] = {"historical", "montecarlo"};
  xm_t_strings(fid, "/day", days, XM_T_N);
  xm_t_strings(fid, "/series/day", days, XM_T_N);
  xm_t_strings(fid, "/realised_end", ends, XM_T_N);
  xm_t_strings(fid, "/account", (const char *const *)xm_t_acc, XM_T_A);
  xm_t_strings(fid, "/series/account", (const char *const *)xm_t_acc, XM_T_A);
  xm_t_strings(fid, "/stats/unified/account", (const char *const *)xm_t_acc, XM_T_A);
  xm_t_strings(fid, "/silo", (const char *const *)xm_t_silo, XM_T_G);
  xm_t_strings(fid, "/stats/silo/silo", (const char *const *)xm_t_silo, XM_T_G);
  xm_t_strings(fid, "/set", sets, XM_T_K);
  xm_t_attached(fid, "/realised_end", "/day", 0);

  /* /series: shapes, types, scales, units, values */
  const hsize_t na[2] = {XM_T_N, XM_T_A}, nag[3] = {XM_T_N, XM_T_A, XM_T_G}, n1[1] = {XM_T_N};
  const char *per_account[] = {"/series/realised", "/series/unified", "/series/cross_margined",
                               "/series/siloed", "/series/requirement"};
  for (size_t i = 0; i < sizeof per_account / sizeof per_account[0]; i++) {
    xm_t_shape(fid, per_account[i], H5T_FLOAT, 8, 2, na);
    xm_t_attached(fid, per_account[i], "/series/day", 0);
    xm_t_attached(fid, per_account[i], "/series/account", 1);
    xm_t_units(fid, per_account[i], "account currency");
  }
  const char *by_silo[] = {"/series/realised_by_silo", "/series/silo_margin"};
  for (size_t i = 0; i < 2; i++) {
    xm_t_shape(fid, by_silo[i], H5T_FLOAT, 8, 3, nag);
    xm_t_attached(fid, by_silo[i], "/series/silo", 2);
    xm_t_units(fid, by_silo[i], "account currency");
  }
  const char *totals[] = {"/series/total_realised", "/series/total_unified",
                          "/series/total_cross_margined", "/series/total_siloed",
                          "/series/total_requirement"};
  for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
    xm_t_shape(fid, totals[i], H5T_FLOAT, 8, 1, n1);
    xm_t_attached(fid, totals[i], "/series/day", 0);
    xm_t_units(fid, totals[i], "USD");
  }
  xm_t_shape(fid, "/series/binding_set", H5T_INTEGER, 4, 2, na);
  xm_t_shape(fid, "/series/test_day", H5T_INTEGER, 4, 1, n1);
  xm_t_vstr(fid, "/series/binding_set", "flag_meanings", buf, sizeof buf);
  assert_string_equal(buf, "historical montecarlo");
  xm_t_strings(fid, "/series/currency", (const char *const *)xm_t_acur, XM_T_A);
  double v[XM_T_N * XM_T_A * XM_T_G];
  assert_true(H5LTread_dataset_double(fid, "/series/cross_margined", v) >= 0);
  for (int j = 0; j < XM_T_N; j++)
    for (int a = 0; a < XM_T_A; a++)
      assert_true(v[j * XM_T_A + a] == xm_t_margin_v(XM_BT_CROSS_MARGINED, j, a));
  assert_true(H5LTread_dataset_double(fid, "/series/silo_margin", v) >= 0);
  assert_true(v[(4 * XM_T_A + 2) * XM_T_G + 1] == xm_t_silo_v(4, 2, 1));
  assert_true(H5LTread_dataset_double(fid, "/series/total_siloed", v) >= 0);
  assert_true(v[3] == xm_t_total_v(XM_BT_SILOED, 3));
  int td[XM_T_N], bd[XM_T_N * XM_T_A];
  assert_true(H5LTread_dataset_int(fid, "/series/test_day", td) >= 0);
  assert_true(td[0] == 1 && td[1] == 0 && td[4] == 1);
  assert_true(H5LTread_dataset_int(fid, "/series/binding_set", bd) >= 0);
  assert_true(bd[1 * XM_T_A + 1] == 0 && bd[1 * XM_T_A + 2] == 1);

  /* /stats */
  xm_t_stats_shapes(fid, "/stats/unified", 1, 0);
  xm_t_stats_shapes(fid, "/stats/cross_margined", 1, 0);
  xm_t_stats_shapes(fid, "/stats/siloed", 1, 0);
  xm_t_stats_shapes(fid, "/stats/requirement", 1, 1);
  xm_t_stats_shapes(fid, "/stats/silo", 2, 1);
  xm_t_stats_shapes(fid, "/stats/total/unified", 0, 0);
  xm_t_stats_shapes(fid, "/stats/total/cross_margined", 0, 0);
  xm_t_stats_shapes(fid, "/stats/total/siloed", 0, 0);
  xm_t_stats_shapes(fid, "/stats/total/requirement", 0, 1);
  assert_true(H5LTpath_valid(fid, "/stats/total/silo", 1) == 0);
  long long ex[XM_T_A * XM_T_G];
  assert_true(H5LTread_dataset(fid, "/stats/siloed/exceptions_all", H5T_NATIVE_LLONG, ex) >= 0);
  assert_true(ex[0] == 3 && ex[2] == 5);
  const char *zones[] = {"green", "yellow", "red"};
  xm_t_strings(fid, "/stats/requirement/zone", zones, XM_T_A);
  const char *silo_zones[] = {"green", "yellow", "yellow", "", "red", "green"};
  xm_t_strings(fid, "/stats/silo/zone", silo_zones, XM_T_A * XM_T_G);
  assert_true(H5LTread_dataset_double(fid, "/stats/silo/kupiec_p", v) >= 0);
  assert_true(isnan(v[3]) && v[2] == 1.0 - 0.125);
  assert_true(H5LTread_dataset(fid, "/stats/silo/exceptions", H5T_NATIVE_LLONG, ex) >= 0);
  assert_true(ex[3] == 0 && ex[2] == 1);
  assert_true(H5LTread_dataset_double(fid, "/stats/requirement/peak_to_trough", v) >= 0);
  assert_true(v[0] == 1.5 && v[2] == 3.5);
  assert_true(H5LTread_dataset_double(fid, "/stats/total/requirement/max_increase", v) >= 0);
  assert_true(v[0] == 0.375);
  const char *red[] = {"red"};
  xm_t_strings(fid, "/stats/total/unified/zone", red, 1);

  /* --save-scenarios */
  for (int k = 0; k < XM_T_K; k++) {
    char p[256], sc[256];
    hsize_t dims[3] = {XM_T_N, (hsize_t)xm_t_S[k], XM_T_F};
    snprintf(p, sizeof p, "/scenarios/%s/shock", sets[k]);
    xm_t_shape(fid, p, H5T_FLOAT, 8, 3, dims);
    snprintf(sc, sizeof sc, "/scenarios/%s/day", sets[k]);
    xm_t_attached(fid, p, sc, 0);
    snprintf(sc, sizeof sc, "/scenarios/%s/factor", sets[k]);
    xm_t_attached(fid, p, sc, 2);
    snprintf(p, sizeof p, "/scenarios/%s/delta", sets[k]);
    assert_int_equal(H5LTpath_valid(fid, p, 1) > 0, k == 1);
  }
  double sh[XM_T_N * 3 * XM_T_F];
  assert_true(H5LTread_dataset_double(fid, "/scenarios/historical/shock", sh) >= 0);
  assert_true(isnan(sh[(0 * 3 + 1) * XM_T_F]) &&
              sh[(2 * 3 + 2) * XM_T_F + 1] == 0.01 * 1.0 * 3.0 - 0.001 * 1);
  xm_t_shape(fid, "/scenarios/montecarlo/delta", H5T_FLOAT, 8, 1, n1);
  H5Fclose(fid);

  /* without --save-scenarios: no /scenarios */
  xm_backtest_result_free(&r);
  xm_t_fill(&r, 0);
  assert_int_equal(xm_t_write(path, &r, in_p, in_s, &d), XM_OK);
  fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(fid >= 0);
  assert_true(H5LTpath_valid(fid, "/scenarios", 1) == 0);
  assert_true(H5LTpath_valid(fid, "/series/requirement", 1) > 0);
  H5Fclose(fid);
  xm_backtest_result_free(&r);
  xm_diag_free(&d);
}

/* An output over an input is refused (XM_EINVAL, the message naming the
 * input) and the input is left as it was; so are bad arguments. */
static void test_backtest_refusals(void **state) {
  (void)state;
  char in_p[512], in_s[512], out[512];
  xm_t_inputs(in_p, in_s, sizeof in_p, "2");
  xm_t_path(out, sizeof out, "bt2.h5");
  xm_backtest_result r;
  xm_t_fill(&r, 0);
  xm_diag d = {0};
  const char *inputs[] = {in_p, in_s};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(xm_t_write(inputs[i], &r, in_p, in_s, &d), XM_EINVAL);
    assert_true(d.shown > 0 && strstr(d.msg[d.shown - 1], "input file"));
    struct stat sb;
    assert_int_equal(stat(inputs[i], &sb), 0);
    assert_int_equal(sb.st_size, i == 0 ? 8 : 13);
  }
  xm_portfolio pf;
  xm_t_book(&pf);
  xm_config cfg;
  xm_config_default(&cfg);
  xm_run_meta meta = {in_p, in_s, "cpu", NULL, 0};
  assert_int_equal(xm_backtest_result_write(NULL, &pf, &cfg, &r, &meta, &d), XM_EINVAL);
  assert_int_equal(xm_backtest_result_write(out, &pf, &cfg, NULL, &meta, &d), XM_EINVAL);
  pf.n_accounts = 2; /* not the result's accounts */
  assert_int_equal(xm_backtest_result_write(out, &pf, &cfg, &r, &meta, &d), XM_EINVAL);
  xm_t_book(&pf);
  double *keep = r.realised;
  r.realised = NULL; /* a missing array */
  assert_int_equal(xm_backtest_result_write(out, &pf, &cfg, &r, &meta, &d), XM_EINVAL);
  r.realised = keep;
  /* the MPI job's writers: without MPI they refuse (nothing written); with
   * it, a NULL communicator is a bad argument */
  int comm = 0;
  xm_status want = XM_EUNSUPPORTED;
#ifdef XM_WITH_MPI
  want = XM_EINVAL;
#endif
  assert_int_equal(xm_backtest_result_write_ranks(out, &pf, &cfg, &r, &meta, 0, r.N,
                                                  want == XM_EINVAL ? NULL : &comm, &d),
                   want);
  assert_int_equal(xm_run_result_write_ranks(out, &pf, &cfg, NULL, &meta, 0, 0,
                                             want == XM_EINVAL ? NULL : &comm, &d),
                   want);
  struct stat sb;
  assert_true(stat(out, &sb) != 0);
  /* a result after xm_backtest_result_free is empty; freeing twice is fine */
  xm_backtest_result_free(&r);
  assert_null(r.day);
  xm_backtest_result_free(&r);
  xm_backtest_result_free(NULL);
  xm_diag_free(&d);
}

static int xm_t_write_backtest(const char *path) {
  xm_backtest_result r;
  xm_t_fill(&r, 1);
  xm_diag d = {0};
  xm_status st = xm_t_write(path, &r, "book.h5", "scen.h5", &d);
  xm_diag_print(&d, stderr);
  xm_diag_free(&d);
  xm_backtest_result_free(&r);
  if (st != XM_OK) {
    fprintf(stderr, "test_results: writing %s: %s\n", path, xm_strerror(st));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-backtest") == 0)
    return xm_t_write_backtest(argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backtest_write),
      cmocka_unit_test(test_backtest_refusals),
  };
  return cmocka_run_group_tests(tests, xm_t_setup, xm_t_teardown);
}
