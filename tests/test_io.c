/* Tests of io/: round trips of portfolio, scenario and results files, the
 * validation messages, the bounded diagnostics, atomic writes, and the
 * validation of structs built in memory (the same messages as their files).
 *
 * `test_io --write-results PATH` writes a small sample results file to PATH
 * and exits (used by tests/python/test_io_xarray.py). */
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

#include "xm_io.h"
#include "xm_portable.h"
#include "xm_schema.h"

static char xm_t_dir[256];

static void xm_t_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", xm_t_dir, name);
}

static int xm_t_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR");
  snprintf(xm_t_dir, sizeof xm_t_dir, "%s/xm_test_io.XXXXXX", base && *base ? base : "/tmp");
  return mkdtemp(xm_t_dir) ? 0 : -1;
}

static void xm_t_rmtree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      xm_t_rmtree(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static int xm_t_teardown(void **state) {
  (void)state;
  xm_t_rmtree(xm_t_dir);
  return 0;
}

/* Number of entries of the test folder whose name starts with ".": temp files. */
static int xm_t_count_temps(void) {
  DIR *d = opendir(xm_t_dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  if (d)
    closedir(d);
  return n;
}

/* 1 when some message of d contains s. */
static int xm_t_has(const xm_diag *d, const char *s) {
  for (size_t i = 0; i < d->shown; i++)
    if (strstr(d->msg[i], s))
      return 1;
  return 0;
}

static void xm_t_dump(const xm_diag *d) {
  for (size_t i = 0; i < d->shown; i++)
    print_message("  diag: %s\n", d->msg[i]);
}

/* ---- A small valid portfolio --------------------------------------------------- */

static char *xm_t_fname[] = {"SPX", "SPX.iv", "ES", "USD.r"};
static int32_t xm_t_fkind[] = {XM_FACTOR_PRICE, XM_FACTOR_VOL, XM_FACTOR_PRICE, XM_FACTOR_RATE};
static double xm_t_flevel[] = {4500.0, 0.2, 4510.0, 0.045};
static char *xm_t_silo[] = {"securities", "futures"};
static char *xm_t_iid[] = {"SPX", "ES.Z5", "SPX.C4500", "ES.P4400"};
static int32_t xm_t_itype[] = {XM_SPOT, XM_FUTURE, XM_OPTION, XM_FUTURE_OPTION};
static int32_t xm_t_isilo[] = {0, 1, 0, 1};
static int32_t xm_t_iund[] = {0, 2, 0, 2};
static int32_t xm_t_ivol[] = {-1, -1, 1, 1};
static double xm_t_istrike[] = {0, 0, 4500, 4400};
static double xm_t_iexp[] = {0, 0.25, 0.5, 0.25};
static int32_t xm_t_icall[] = {0, 0, 1, 0};
static double xm_t_iiv[] = {0, 0, 0.18, 0.21};
static double xm_t_irate[] = {0.045, 0.045, 0.045, 0.045};
static double xm_t_idiv[] = {0.013, 0, 0.013, 0};
static double xm_t_imult[] = {1, 50, 100, 50};
static char *xm_t_acc[] = {"A1", "A2", "A3"};
static int32_t xm_t_across[] = {1, 0, 1};
static int32_t xm_t_pacc[] = {0, 0, 1, 2, 2};
static int32_t xm_t_pinst[] = {0, 2, 1, 3, 3};
static double xm_t_pq[] = {100, -2, 3, -1, -1.5};

static void xm_t_portfolio(xm_portfolio *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->valuation_date, sizeof p->valuation_date, "2024-06-28");
  snprintf(p->currency, sizeof p->currency, "USD");
  p->n_factors = 4;
  p->factor_name = xm_t_fname;
  p->factor_kind = xm_t_fkind;
  p->factor_level = xm_t_flevel;
  p->n_silos = 2;
  p->silo_name = xm_t_silo;
  p->n_instruments = 4;
  p->inst_id = xm_t_iid;
  p->inst_type = xm_t_itype;
  p->inst_silo = xm_t_isilo;
  p->inst_underlying = xm_t_iund;
  p->inst_vol_factor = xm_t_ivol;
  p->inst_strike = xm_t_istrike;
  p->inst_expiry = xm_t_iexp;
  p->inst_call = xm_t_icall;
  p->inst_implied_vol = xm_t_iiv;
  p->inst_rate = xm_t_irate;
  p->inst_dividend_yield = xm_t_idiv;
  p->inst_multiplier = xm_t_imult;
  p->n_accounts = 3;
  p->account_id = xm_t_acc;
  p->account_cross_margin = xm_t_across;
  p->n_positions = 5;
  p->pos_account = xm_t_pacc;
  p->pos_instrument = xm_t_pinst;
  p->pos_quantity = xm_t_pq;
}

static void test_diag_bounded(void **state) {
  (void)state;
  xm_diag d = {0};
  for (int i = 0; i < 25; i++)
    xm_diag_add(&d, "f.h5: /x[%d] = %d: rule", i, i);
  assert_int_equal(d.shown, XM_DIAG_MAX_SHOWN);
  assert_int_equal(d.total, 25);
  assert_string_equal(d.msg[0], "f.h5: /x[0] = 0: rule");
  assert_string_equal(d.msg[19], "f.h5: /x[19] = 19: rule");
  char path[512];
  xm_t_path(path, sizeof path, "diag.txt");
  FILE *f = fopen(path, "w+");
  assert_non_null(f);
  xm_diag_print(&d, f);
  rewind(f);
  char line[256], last[256] = "";
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    snprintf(last, sizeof last, "%s", line);
  }
  fclose(f);
  assert_int_equal(n, 21);
  assert_string_equal(last, "... and 5 more errors\n");
  xm_diag_free(&d);
  assert_null(d.msg);
  assert_int_equal(d.total, 0);
  xm_diag_free(&d);       /* twice is fine */
  xm_diag_add(NULL, "x"); /* no-op */
}

static void test_portfolio_round_trip(void **state) {
  (void)state;
  xm_portfolio p, q;
  xm_diag d = {0};
  char path[512];
  xm_t_path(path, sizeof path, "book.h5");
  xm_t_portfolio(&p);
  assert_int_equal(xm_portfolio_write(path, &p, &d), XM_OK);
  assert_int_equal(xm_t_count_temps(), 0);
  xm_status st = xm_portfolio_read(path, &q, &d);
  xm_t_dump(&d);
  assert_int_equal(st, XM_OK);
  assert_int_equal(d.total, 0);
  assert_string_equal(q.path, path);
  assert_string_equal(q.valuation_date, "2024-06-28");
  assert_string_equal(q.currency, "USD");
  assert_int_equal(q.n_factors, 4);
  assert_int_equal(q.n_silos, 2);
  assert_int_equal(q.n_instruments, 4);
  assert_int_equal(q.n_accounts, 3);
  assert_int_equal(q.n_positions, 5);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(q.factor_name[i], p.factor_name[i]);
    assert_int_equal(q.factor_kind[i], p.factor_kind[i]);
    assert_true(q.factor_level[i] == p.factor_level[i]);
    assert_string_equal(q.inst_id[i], p.inst_id[i]);
    assert_int_equal(q.inst_type[i], p.inst_type[i]);
    assert_int_equal(q.inst_silo[i], p.inst_silo[i]);
    assert_int_equal(q.inst_underlying[i], p.inst_underlying[i]);
    assert_int_equal(q.inst_vol_factor[i], p.inst_vol_factor[i]);
    assert_true(q.inst_strike[i] == p.inst_strike[i]);
    assert_true(q.inst_expiry[i] == p.inst_expiry[i]);
    assert_int_equal(q.inst_call[i], p.inst_call[i]);
    assert_true(q.inst_implied_vol[i] == p.inst_implied_vol[i]);
    assert_true(q.inst_rate[i] == p.inst_rate[i]);
    assert_true(q.inst_dividend_yield[i] == p.inst_dividend_yield[i]);
    assert_true(q.inst_multiplier[i] == p.inst_multiplier[i]);
  }
  for (int i = 0; i < 3; i++) {
    assert_string_equal(q.account_id[i], p.account_id[i]);
    assert_int_equal(q.account_cross_margin[i], p.account_cross_margin[i]);
  }
  for (int i = 0; i < 5; i++) {
    assert_int_equal(q.pos_account[i], p.pos_account[i]);
    assert_int_equal(q.pos_instrument[i], p.pos_instrument[i]);
    assert_true(q.pos_quantity[i] == p.pos_quantity[i]);
  }
  assert_int_equal(xm_portfolio_validate(&q, &d), XM_OK); /* what the reader accepts */
  xm_portfolio_free(&q);
  xm_portfolio_free(&q); /* zeroed: twice is fine */

  char fmt[64];
  assert_int_equal(xm_file_format(path, fmt, sizeof fmt, &d), XM_OK);
  assert_string_equal(fmt, "xmargin.portfolio");
  xm_diag_free(&d);
}

/* Writes a variant of the valid book changed by edit() and expects EFORMAT
 * with a message containing want. */
static void xm_t_expect_bad(const xm_portfolio *p, const char *name, const char *want) {
  char path[512];
  xm_portfolio q;
  xm_diag d = {0};
  xm_t_path(path, sizeof path, name);
  assert_int_equal(xm_portfolio_write(path, p, NULL), XM_OK);
  xm_status st = xm_portfolio_read(path, &q, &d);
  if (st != XM_EFORMAT || !xm_t_has(&d, want)) {
    print_message("expected '%s' (status %d):\n", want, (int)st);
    xm_t_dump(&d);
  }
  assert_int_equal(st, XM_EFORMAT);
  assert_true(xm_t_has(&d, want));
  assert_null(q.inst_id); /* zeroed on failure */
  assert_int_equal(q.n_positions, 0);
  xm_diag_free(&d);
}

static void test_portfolio_bad_structs(void **state) {
  (void)state;
  xm_portfolio p;
  char msg[512];

  double strike[4];
  memcpy(strike, xm_t_istrike, sizeof strike);
  strike[2] = -5;
  xm_t_portfolio(&p);
  p.inst_strike = strike;
  snprintf(msg, sizeof msg, "bad1.h5: /instruments/strike[2] = -5: strike must be > 0");
  xm_t_expect_bad(&p, "bad1.h5", msg);

  int32_t pacc[5];
  memcpy(pacc, xm_t_pacc, sizeof pacc);
  pacc[4] = 3;
  xm_t_portfolio(&p);
  p.pos_account = pacc;
  xm_t_expect_bad(&p, "bad2.h5", "/positions/account[4] = 3: index out of range");

  double q[5];
  memcpy(q, xm_t_pq, sizeof q);
  q[1] = NAN;
  xm_t_portfolio(&p);
  p.pos_quantity = q;
  xm_t_expect_bad(&p, "bad3.h5", "/positions/quantity[1] = nan: must be a finite number");

  char *acc[3] = {"A1", "A2", "A1"};
  xm_t_portfolio(&p);
  p.account_id = acc;
  xm_t_expect_bad(&p, "bad4.h5", "/accounts/id[2] = 'A1': duplicate account id (first at row 0)");

  int32_t und[4];
  memcpy(und, xm_t_iund, sizeof und);
  und[2] = 1; /* an option on the vol factor */
  xm_t_portfolio(&p);
  p.inst_underlying = und;
  xm_t_expect_bad(&p, "bad5.h5", "/instruments/underlying[2] = 1: the underlying must be a price");

  double lvl[4];
  memcpy(lvl, xm_t_flevel, sizeof lvl);
  lvl[0] = 0;
  xm_t_portfolio(&p);
  p.factor_level = lvl;
  xm_t_expect_bad(&p, "bad6.h5", "/factors/level[0] = 0: level must be > 0 for a price factor");

  xm_t_portfolio(&p);
  p.n_positions = 0;
  xm_t_expect_bad(&p, "bad7.h5", "/positions: has no rows: nothing to margin");

  xm_t_portfolio(&p);
  snprintf(p.valuation_date, sizeof p.valuation_date, "2024-02-30");
  xm_t_expect_bad(&p, "bad8.h5", "attribute valuation_date = '2024-02-30'");
}

/* Edits a valid book with HDF5 directly. */
static void xm_t_edit(const char *path, void (*edit)(hid_t fid)) {
  hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  assert_true(fid >= 0);
  edit(fid);
  assert_true(H5Fclose(fid) >= 0);
}

static void xm_t_edit_type(hid_t fid) {
  assert_true(H5Ldelete(fid, "/instruments/type", H5P_DEFAULT) >= 0);
  const char *v[4] = {"spot", "future", "swaption", "option"};
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 8); /* fixed-length, NUL-padded, like numpy 'S8' */
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  char buf[4][8];
  memset(buf, 0, sizeof buf);
  for (int i = 0; i < 4; i++)
    memcpy(buf[i], v[i], strlen(v[i]));
  hsize_t n = 4;
  assert_true(H5LTmake_dataset(fid, "/instruments/type", 1, &n, t, buf) >= 0);
  H5Tclose(t);
}

static void xm_t_edit_missing(hid_t fid) {
  assert_true(H5Ldelete(fid, "/instruments/multiplier", H5P_DEFAULT) >= 0);
}

static void xm_t_edit_format(hid_t fid) {
  assert_true(H5Adelete(fid, "format") >= 0);
  assert_true(H5LTset_attribute_string(fid, "/", "format", "xmargin.portfolioX") >= 0);
}

static void xm_t_edit_huge(hid_t fid) {
  assert_true(H5Ldelete(fid, "/positions/quantity", H5P_DEFAULT) >= 0);
  hsize_t dims[1] = {(hsize_t)1 << 40}, chunk[1] = {1024};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, chunk);
  hid_t did =
      H5Dcreate2(fid, "/positions/quantity", H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  assert_true(did >= 0);
  H5Dclose(did);
  H5Pclose(dcpl);
  H5Sclose(sp);
}

static void xm_t_edit_narrow(hid_t fid) {
  /* int8 silo and float32 strike: converted, still valid */
  assert_true(H5Ldelete(fid, "/instruments/silo", H5P_DEFAULT) >= 0);
  assert_true(H5Ldelete(fid, "/instruments/strike", H5P_DEFAULT) >= 0);
  int8_t silo[4] = {0, 1, 0, 1};
  float strike[4] = {0, 0, 4500, 4400};
  hsize_t n = 4;
  assert_true(H5LTmake_dataset(fid, "/instruments/silo", 1, &n, H5T_STD_I8LE, silo) >= 0);
  assert_true(H5LTmake_dataset_float(fid, "/instruments/strike", 1, &n, strike) >= 0);
}

static void test_portfolio_bad_hdf5(void **state) {
  (void)state;
  xm_portfolio p, q;
  xm_diag d = {0};
  char path[512];
  struct {
    const char *name;
    void (*edit)(hid_t);
    xm_status want_st;
    const char *want;
  } cases[] = {
      {"e1.h5", xm_t_edit_type, XM_EFORMAT,
       "/instruments/type[2] = 'swaption': unknown instrument type"},
      {"e2.h5", xm_t_edit_missing, XM_EFORMAT,
       "/instruments/multiplier: required dataset is missing"},
      {"e3.h5", xm_t_edit_format, XM_EFORMAT,
       "/: attribute format = 'xmargin.portfolioX': must be \"xmargin.portfolio\""},
      {"e4.h5", xm_t_edit_huge, XM_EFORMAT,
       "/positions/quantity: declares 1099511627776 rows, more than the limit"},
      {"e5.h5", xm_t_edit_narrow, XM_OK, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    xm_t_path(path, sizeof path, cases[i].name);
    xm_t_portfolio(&p);
    assert_int_equal(xm_portfolio_write(path, &p, NULL), XM_OK);
    xm_t_edit(path, cases[i].edit);
    xm_status st = xm_portfolio_read(path, &q, &d);
    if (st != cases[i].want_st || (cases[i].want && !xm_t_has(&d, cases[i].want))) {
      print_message("case %s: status %d\n", cases[i].name, (int)st);
      xm_t_dump(&d);
    }
    assert_int_equal(st, cases[i].want_st);
    if (cases[i].want)
      assert_true(xm_t_has(&d, cases[i].want));
    else
      assert_true(q.inst_strike[3] == 4400.0 && q.inst_silo[3] == 1);
    xm_portfolio_free(&q);
    xm_diag_free(&d);
  }

  /* not HDF5, missing file, truncated HDF5 */
  xm_t_path(path, sizeof path, "text.h5");
  FILE *f = fopen(path, "w");
  fputs("not an hdf5 file\n", f);
  fclose(f);
  assert_int_equal(xm_portfolio_read(path, &q, &d), XM_EIO);
  assert_true(xm_t_has(&d, "not an HDF5 file"));
  xm_diag_free(&d);
  xm_t_path(path, sizeof path, "nope.h5");
  assert_int_equal(xm_portfolio_read(path, &q, &d), XM_EIO);
  assert_true(xm_t_has(&d, "cannot open"));
  xm_diag_free(&d);
  char full[512];
  xm_t_path(full, sizeof full, "book.h5");
  xm_t_path(path, sizeof path, "trunc.h5");
  xm_t_portfolio(&p);
  assert_int_equal(xm_portfolio_write(full, &p, NULL), XM_OK);
  struct stat sb;
  assert_int_equal(stat(full, &sb), 0);
  FILE *in = fopen(full, "rb"), *out = fopen(path, "wb");
  char *buf = malloc((size_t)sb.st_size);
  assert_int_equal(fread(buf, 1, (size_t)sb.st_size, in), (size_t)sb.st_size);
  fwrite(buf, 1, (size_t)sb.st_size / 2, out);
  fclose(in);
  fclose(out);
  free(buf);
  xm_status st = xm_portfolio_read(path, &q, &d);
  assert_true(st == XM_EIO || st == XM_EFORMAT);
  assert_true(d.total > 0);
  xm_diag_free(&d);
}

/* ---- Scenario files --------------------------------------------------------------- */

static char *xm_t_hf[] = {"SPX", "SPX.iv"};
static char *xm_t_hd[] = {"2024-06-26", "2024-06-27", "2024-06-28"};
static double xm_t_hr[] = {0.01, 0.002, -0.02, 0.01, 0.005, -0.001};
static char *xm_t_s1f[] = {"SPX"};
static double xm_t_s1s[] = {-0.2, 0.1};
static char *xm_t_s1l[] = {"down", "up"};
static double xm_t_s1w[] = {1.0, 0.35};
static char *xm_t_s2f[] = {"SPX", "SPX.iv", "ES"};
static double xm_t_s2s[] = {-0.1, 0.15, -0.1};
static char *xm_t_s2l[] = {"1987-10-19"};

static void xm_t_scenarios(xm_scenario_file *s, xm_scenario_set sets[2]) {
  memset(s, 0, sizeof *s);
  memset(sets, 0, 2 * sizeof *sets);
  s->n_days = 3;
  s->n_hfactors = 2;
  s->hist_factor = xm_t_hf;
  s->hist_date = xm_t_hd;
  s->hist_return = xm_t_hr;
  sets[0] = (xm_scenario_set){.name = "zgrid",
                              .n_scenarios = 2,
                              .n_factors = 1,
                              .factor = xm_t_s1f,
                              .shock = xm_t_s1s,
                              .label = xm_t_s1l,
                              .weight = xm_t_s1w,
                              .measure = XM_MEASURE_WORST,
                              .confidence = NAN};
  sets[1] = (xm_scenario_set){.name = "crises",
                              .n_scenarios = 1,
                              .n_factors = 3,
                              .factor = xm_t_s2f,
                              .shock = xm_t_s2s,
                              .label = xm_t_s2l,
                              .weight = NULL,
                              .measure = XM_MEASURE_ES,
                              .confidence = 0.975};
  s->n_sets = 2;
  s->sets = sets;
}

static void test_scenarios_round_trip(void **state) {
  (void)state;
  xm_scenario_file s, q;
  xm_scenario_set sets[2];
  xm_diag d = {0};
  char path[512];
  xm_t_path(path, sizeof path, "scen.h5");
  xm_t_scenarios(&s, sets);
  assert_int_equal(xm_scenarios_write(path, &s, &d), XM_OK);
  xm_status st = xm_scenarios_read(path, &q, &d);
  xm_t_dump(&d);
  assert_int_equal(st, XM_OK);
  assert_int_equal(q.n_days, 3);
  assert_int_equal(q.n_hfactors, 2);
  for (int i = 0; i < 3; i++)
    assert_string_equal(q.hist_date[i], xm_t_hd[i]);
  for (int i = 0; i < 6; i++)
    assert_true(q.hist_return[i] == xm_t_hr[i]);
  assert_int_equal(q.n_sets, 2);
  /* sorted by name */
  assert_string_equal(q.sets[0].name, "crises");
  assert_string_equal(q.sets[1].name, "zgrid");
  assert_int_equal(q.sets[0].measure, XM_MEASURE_ES);
  assert_true(q.sets[0].confidence == 0.975);
  assert_null(q.sets[0].weight);
  assert_int_equal(q.sets[0].n_factors, 3);
  assert_string_equal(q.sets[0].factor[2], "ES");
  assert_string_equal(q.sets[0].label[0], "1987-10-19");
  assert_int_equal(q.sets[1].measure, XM_MEASURE_WORST);
  assert_true(isnan(q.sets[1].confidence));
  assert_non_null(q.sets[1].weight);
  assert_true(q.sets[1].weight[1] == 0.35);
  assert_true(q.sets[1].shock[0] == -0.2 && q.sets[1].shock[1] == 0.1);
  assert_int_equal(xm_scenarios_validate(&q, &d), XM_OK); /* what the reader accepts */
  xm_scenarios_free(&q);

  char fmt[64];
  assert_int_equal(xm_file_format(path, fmt, sizeof fmt, &d), XM_OK);
  assert_string_equal(fmt, "xmargin.scenarios");
  /* a scenario file is not a portfolio */
  xm_portfolio p;
  assert_int_equal(xm_portfolio_read(path, &p, &d), XM_EFORMAT);
  assert_true(xm_t_has(&d, "attribute format = 'xmargin.scenarios': must be"));
  xm_diag_free(&d);
}

static void test_scenarios_bad(void **state) {
  (void)state;
  xm_scenario_file s, q;
  xm_scenario_set sets[2];
  xm_diag d = {0};
  char path[512];
  xm_t_path(path, sizeof path, "scen_bad.h5");

  char *dates[] = {"2024-06-26", "2024-06-28", "2024-06-27"};
  double w[] = {1.0, -1.0};
  char *dupf[] = {"SPX", "SPX.iv", "SPX"};
  xm_t_scenarios(&s, sets);
  s.hist_date = dates;
  sets[0].weight = w;
  sets[1].factor = dupf;
  sets[1].confidence = 1.5;
  assert_int_equal(xm_scenarios_write(path, &s, NULL), XM_OK);
  assert_int_equal(xm_scenarios_read(path, &q, &d), XM_EFORMAT);
  xm_t_dump(&d);
  assert_true(xm_t_has(&d, "/history/date[2] = '2024-06-27': dates must be strictly increasing"));
  assert_true(xm_t_has(&d, "/sets/zgrid/weight[1] = -1: weight must be finite and >= 0"));
  assert_true(xm_t_has(&d, "/sets/crises/factor[2] = 'SPX': duplicate factor name"));
  assert_true(
      xm_t_has(&d, "/sets/crises: attribute confidence = 1.5: confidence must be in (0, 1)"));
  assert_int_equal(q.n_sets, 0);
  assert_null(q.sets);
  xm_diag_free(&d);
}

/* ---- Validation of structs in memory ----------------------------------------------- */

/* A checksum of every byte the struct's arrays hold (the validation must
 * never write through them). */
static uint64_t xm_t_mix(uint64_t h, const void *v, size_t n) {
  const unsigned char *c = v;
  for (size_t i = 0; c && i < n; i++)
    h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static uint64_t xm_t_strs_sum(uint64_t h, char *const *s, int64_t n) {
  for (int64_t i = 0; s && i < n; i++)
    h = xm_t_mix(h, s[i], s[i] ? strlen(s[i]) + 1 : 0);
  return h;
}

static uint64_t xm_t_portfolio_sum(const xm_portfolio *p) {
  uint64_t h = 14695981039346656037ull;
  int64_t nf = p->n_factors, ni = p->n_instruments, na = p->n_accounts, np = p->n_positions;
  nf = nf < 0 ? 0 : nf; /* a negative count is a case of its own */
  ni = ni < 0 ? 0 : ni;
  na = na < 0 ? 0 : na;
  np = np < 0 ? 0 : np;
  h = xm_t_mix(h, p, sizeof *p);
  h = xm_t_strs_sum(h, p->factor_name, nf);
  h = xm_t_mix(h, p->factor_kind, (size_t)nf * 4);
  h = xm_t_mix(h, p->factor_level, (size_t)nf * 8);
  h = xm_t_strs_sum(h, p->silo_name, p->n_silos); /* >= 0 in every case */
  h = xm_t_strs_sum(h, p->inst_id, ni);
  const int32_t *ic[] = {p->inst_type, p->inst_silo, p->inst_underlying, p->inst_vol_factor,
                         p->inst_call};
  for (size_t k = 0; k < 5; k++)
    h = xm_t_mix(h, ic[k], (size_t)ni * 4);
  const double *fc[] = {p->inst_strike, p->inst_expiry,         p->inst_implied_vol,
                        p->inst_rate,   p->inst_dividend_yield, p->inst_multiplier};
  for (size_t k = 0; k < 6; k++)
    h = xm_t_mix(h, fc[k], (size_t)ni * 8);
  h = xm_t_strs_sum(h, p->account_id, na);
  h = xm_t_mix(h, p->account_cross_margin, (size_t)na * 4);
  h = xm_t_mix(h, p->pos_account, (size_t)np * 4);
  h = xm_t_mix(h, p->pos_instrument, (size_t)np * 4);
  h = xm_t_mix(h, p->pos_quantity, (size_t)np * 8);
  /* version 2 (a count is >= 0 in every case that has the column) */
  const double *f2[] = {p->factor_half_spread, p->factor_haircut, p->factor_impact, p->factor_adv,
                        p->factor_collateral_limit};
  for (size_t k = 0; k < 5; k++)
    h = xm_t_mix(h, f2[k], (size_t)nf * 8);
  h = xm_t_strs_sum(h, p->inst_currency, ni);
  h = xm_t_mix(h, p->inst_funding_rate, (size_t)ni * 8);
  h = xm_t_strs_sum(h, p->account_currency, na);
  int64_t nx = p->n_fx < 0 ? 0 : p->n_fx, nc = p->n_collateral < 0 ? 0 : p->n_collateral;
  h = xm_t_strs_sum(h, p->fx_currency, nx);
  h = xm_t_mix(h, p->fx_factor, (size_t)nx * 4);
  h = xm_t_mix(h, p->coll_account, (size_t)nc * 4);
  h = xm_t_mix(h, p->coll_factor, (size_t)nc * 4);
  h = xm_t_strs_sum(h, p->coll_currency, nc);
  h = xm_t_mix(h, p->coll_quantity, (size_t)nc * 8);
  return xm_t_mix(h, p->coll_silo, (size_t)nc * 4);
}

static uint64_t xm_t_scenarios_sum(const xm_scenario_file *s) {
  uint64_t h = 14695981039346656037ull;
  h = xm_t_mix(h, s, sizeof *s);
  h = xm_t_strs_sum(h, s->hist_factor, s->n_hfactors);
  h = xm_t_strs_sum(h, s->hist_date, s->n_days);
  h = xm_t_mix(h, s->hist_return, (size_t)(s->n_days * s->n_hfactors) * 8);
  for (int64_t k = 0; k < s->n_sets; k++) {
    const xm_scenario_set *set = &s->sets[k];
    h = xm_t_mix(h, set, sizeof *set);
    h = xm_t_mix(h, set->name, strlen(set->name) + 1);
    h = xm_t_strs_sum(h, set->factor, set->n_factors);
    h = xm_t_strs_sum(h, set->label, set->n_scenarios);
    h = xm_t_mix(h, set->shock, (size_t)(set->n_scenarios * set->n_factors) * 8);
    h = xm_t_mix(h, set->weight, set->weight ? (size_t)set->n_scenarios * 8 : 0);
  }
  return h;
}

/* Message i of d without its "file: " prefix. */
static const char *xm_t_unprefixed(const xm_diag *d, size_t i, const char *file) {
  size_t n = strlen(file);
  assert_true(strncmp(d->msg[i], file, n) == 0 && d->msg[i][n] == ':' && d->msg[i][n + 1] == ' ');
  return d->msg[i] + n + 2;
}

/* The file's messages (path) are the memory's (prefix "portfolio" or
 * "scenarios"), one for one, in the same order. */
static void xm_t_same_messages(const xm_diag *mem, const char *mem_file, const xm_diag *file,
                               const char *path) {
  if (mem->total != file->total) {
    print_message("in memory:\n");
    xm_t_dump(mem);
    print_message("from the file:\n");
    xm_t_dump(file);
  }
  assert_int_equal(mem->total, file->total);
  for (size_t i = 0; i < mem->shown; i++)
    assert_string_equal(xm_t_unprefixed(mem, i, mem_file), xm_t_unprefixed(file, i, path));
}

/* xm_portfolio_validate(p) fails with the message "portfolio: <want>" (p has
 * no path), and writes nothing through p; when file_too, the file the writer
 * makes of p gets the same messages from the reader. */
static void xm_t_validate_bad(const xm_portfolio *p, const char *want, int file_too) {
  xm_diag d = {0};
  char full[512];
  snprintf(full, sizeof full, "portfolio: %s", want);
  uint64_t before = xm_t_portfolio_sum(p);
  xm_status st = xm_portfolio_validate(p, &d);
  int found = 0;
  for (size_t i = 0; i < d.shown; i++)
    found |= strcmp(d.msg[i], full) == 0;
  if (st != XM_EFORMAT || !found) {
    print_message("expected '%s' (status %d):\n", full, (int)st);
    xm_t_dump(&d);
  }
  assert_int_equal(st, XM_EFORMAT);
  assert_true(found);
  assert_true(xm_t_portfolio_sum(p) == before);
  if (file_too) {
    char path[512];
    xm_portfolio q;
    xm_diag df = {0};
    xm_t_path(path, sizeof path, "validate.h5");
    assert_int_equal(xm_portfolio_write(path, p, NULL), XM_OK);
    assert_int_equal(xm_portfolio_read(path, &q, &df), XM_EFORMAT);
    xm_t_same_messages(&d, "portfolio", &df, path);
    xm_diag_free(&df);
  }
  xm_diag_free(&d);
}

static void test_validate_portfolio(void **state) {
  (void)state;
  xm_portfolio p;
  xm_diag d = {0};

  /* a valid one: no message; with a path, messages would carry it */
  xm_t_portfolio(&p);
  uint64_t before = xm_t_portfolio_sum(&p);
  assert_int_equal(xm_portfolio_validate(&p, &d), XM_OK);
  assert_int_equal(d.total, 0);
  assert_int_equal(xm_portfolio_validate(&p, NULL), XM_OK);
  assert_true(xm_t_portfolio_sum(&p) == before);
  assert_int_equal(xm_portfolio_validate(NULL, &d), XM_EINVAL);
  char path[] = "mem.h5";
  p.path = path;
  p.factor_level = (double[]){4500.0, 0.2, -1.0, 0.045};
  assert_int_equal(xm_portfolio_validate(&p, &d), XM_EFORMAT);
  assert_true(xm_t_has(&d, "mem.h5: /factors/level[2] = -1: level must be > 0 for a price factor"));
  xm_diag_free(&d);

  /* one broken value each: the rule, in memory and from the file */
  xm_t_portfolio(&p);
  p.inst_strike = (double[]){0, 0, -5, 4400};
  xm_t_validate_bad(&p, "/instruments/strike[2] = -5: strike must be > 0", 1);
  /* every type is of a FORMAT.md version books take (XM_FORMAT_BOOK_VERSION
   * 2): the version rule refuses none, american_option included */
  xm_t_portfolio(&p);
  p.inst_type = (int32_t[]){XM_SPOT, XM_FUTURE, XM_AMERICAN_OPTION, XM_FUTURE_OPTION};
  assert_int_equal(xm_portfolio_validate(&p, &d), XM_OK);
  assert_int_equal(d.total, 0);
  for (int t = 0; t < XM_TYPE_COUNT; t++)
    assert_true(XM_TYPE_IN_BOOKS(t));
  xm_t_portfolio(&p);
  p.inst_expiry = (double[]){0, 0.25, 0.5, -0.25};
  xm_t_validate_bad(&p, "/instruments/expiry[3] = -0.25: expiry must be >= 0", 1);
  xm_t_portfolio(&p);
  p.inst_implied_vol = (double[]){0, 0, -0.18, 0.21};
  xm_t_validate_bad(&p, "/instruments/implied_vol[2] = -0.18: implied_vol must be >= 0", 1);
  xm_t_portfolio(&p);
  p.inst_multiplier = (double[]){1, 0, 100, 50};
  xm_t_validate_bad(&p, "/instruments/multiplier[1] = 0: multiplier must be > 0", 1);
  xm_t_portfolio(&p);
  p.inst_call = (int32_t[]){0, 0, 2, 0};
  xm_t_validate_bad(&p, "/instruments/call[2] = 2: call must be 1 (call) or 0 (put)", 1);
  xm_t_portfolio(&p);
  p.factor_level = (double[]){0, 0.2, 4510.0, 0.045};
  xm_t_validate_bad(&p, "/factors/level[0] = 0: level must be > 0 for a price factor", 1);
  xm_t_portfolio(&p);
  p.inst_underlying = (int32_t[]){0, 3, 0, 2};
  xm_t_validate_bad(&p,
                    "/instruments/underlying[1] = 3: the underlying must be a price factor "
                    "(factor 'USD.r' is not)",
                    1);
  xm_t_portfolio(&p);
  p.inst_vol_factor = (int32_t[]){-1, -1, 1, 2};
  xm_t_validate_bad(&p,
                    "/instruments/vol_factor[3] = 2: the vol factor must be a vol or logvol "
                    "factor (factor 'ES' is not)",
                    1);
  xm_t_portfolio(&p);
  p.inst_silo = (int32_t[]){0, 1, 2, 1};
  xm_t_validate_bad(&p,
                    "/instruments/silo[2] = 2: index out of range: must be a row of /silos/name "
                    "(0..1)",
                    1);
  xm_t_portfolio(&p);
  p.inst_vol_factor = (int32_t[]){-1, -2, 1, 1};
  xm_t_validate_bad(&p,
                    "/instruments/vol_factor[1] = -2: index out of range: must be a row of "
                    "/factors (0..3) or -1 for none",
                    1);
  xm_t_portfolio(&p);
  p.pos_instrument = (int32_t[]){0, 2, 1, 4, 3};
  xm_t_validate_bad(&p,
                    "/positions/instrument[3] = 4: index out of range: must be a row of "
                    "/instruments (0..3)",
                    1);
  xm_t_portfolio(&p);
  p.pos_quantity = (double[]){100, -2, 3, INFINITY, -1.5};
  xm_t_validate_bad(&p, "/positions/quantity[3] = inf: must be a finite number", 1);
  xm_t_portfolio(&p);
  p.inst_rate = (double[]){0.045, NAN, 0.045, 0.045};
  xm_t_validate_bad(&p, "/instruments/rate[1] = nan: must be a finite number", 1);
  xm_t_portfolio(&p);
  p.inst_id = (char *[]){"SPX", "ES.Z5", "SPX", "ES.P4400"};
  xm_t_validate_bad(&p, "/instruments/id[2] = 'SPX': duplicate instrument id (first at row 0)", 1);
  /* repeats are reported in row order, each with the first row of its name */
  xm_t_portfolio(&p);
  p.inst_id = (char *[]){"B", "A", "B", "A"};
  xm_t_validate_bad(&p, "/instruments/id[3] = 'A': duplicate instrument id (first at row 1)", 1);
  assert_int_equal(xm_portfolio_validate(&p, &d), XM_EFORMAT);
  assert_int_equal(d.total, 2);
  assert_string_equal(
      d.msg[0], "portfolio: /instruments/id[2] = 'B': duplicate instrument id (first at row 0)");
  assert_string_equal(
      d.msg[1], "portfolio: /instruments/id[3] = 'A': duplicate instrument id (first at row 1)");
  xm_diag_free(&d);
  xm_t_portfolio(&p);
  p.factor_name = (char *[]){"SPX", "", "ES", "USD.r"};
  xm_t_validate_bad(&p, "/factors/name[1] = '': factor name must not be empty", 1);
  xm_t_portfolio(&p);
  p.account_cross_margin = (int32_t[]){1, 0, -1};
  xm_t_validate_bad(&p, "/accounts/cross_margin[2] = -1: cross_margin must be 0 or 1", 1);
  xm_t_portfolio(&p);
  snprintf(p.valuation_date, sizeof p.valuation_date, "2023-02-29");
  xm_t_validate_bad(
      &p, "/: attribute valuation_date = '2023-02-29': must be an ISO date YYYY-MM-DD", 1);
  xm_t_portfolio(&p);
  p.currency[0] = '\0';
  xm_t_validate_bad(&p, "/: attribute currency = '': must be 1 to 15 characters", 1);
  xm_t_portfolio(&p);
  p.n_positions = 0;
  xm_t_validate_bad(&p, "/positions: has no rows: nothing to margin", 1);
  xm_t_portfolio(&p);
  p.account_id = (char *[]){"A1", "A\x01", "A3"};
  xm_t_validate_bad(&p,
                    "/accounts/id[1]: holds a control character (byte 1): must be ASCII or "
                    "UTF-8 text",
                    1);

  /* what only a struct can hold (the writer refuses it or HDF5 cannot) */
  xm_t_portfolio(&p);
  p.inst_type = (int32_t[]){XM_SPOT, XM_FUTURE, XM_TYPE_COUNT, XM_FUTURE_OPTION};
  xm_t_validate_bad(&p,
                    "/instruments/type[2] = 9: unknown instrument type (must be one of spot, "
                    "future, option, future_option, american_option, perpetual, inverse_future, "
                    "inverse_perpetual, inverse_option)",
                    0);
  xm_t_portfolio(&p);
  p.factor_kind = (int32_t[]){XM_FACTOR_PRICE, -1, XM_FACTOR_PRICE, XM_FACTOR_RATE};
  xm_t_validate_bad(
      &p, "/factors/kind[1] = -1: unknown factor kind (must be one of price, vol, rate, logvol)",
      0);
  xm_t_portfolio(&p);
  p.inst_strike = NULL;
  xm_t_validate_bad(&p, "/instruments/strike = NULL: a required column must hold its 4 values", 0);
  xm_t_portfolio(&p);
  p.silo_name = (char *[]){"securities", NULL};
  xm_t_validate_bad(&p, "/silos/name[1] = NULL: must be a string", 0);
  xm_t_portfolio(&p);
  p.n_accounts = -1;
  xm_t_validate_bad(&p, "/accounts: has -1 rows: a count must be in 0..2147483647 (int32 indices)",
                    0);
  xm_t_portfolio(&p);
  p.n_factors = (int64_t)INT32_MAX + 1; /* never read: the count stops the checks */
  p.factor_name = NULL;
  p.factor_kind = NULL;
  p.factor_level = NULL;
  xm_t_validate_bad(&p,
                    "/factors: has 2147483648 rows: a count must be in 0..2147483647 (int32 "
                    "indices)",
                    0);
  xm_t_portfolio(&p);
  memset(p.currency, 'X', sizeof p.currency);
  xm_t_validate_bad(
      &p, "/: attribute currency: no NUL in its 16 bytes: must be a string of at most 15", 0);
}

/* ---- Version 2 (FORMAT.md section 1): currencies, funding, /fx, /collateral ---- */

static char *xm_t2_fname[] = {"SPX", "SPX.iv", "ES", "USD.r", "BTC", "BTC.iv", "EURUSD"};
static int32_t xm_t2_fkind[] = {XM_FACTOR_PRICE, XM_FACTOR_VOL,    XM_FACTOR_PRICE, XM_FACTOR_RATE,
                                XM_FACTOR_PRICE, XM_FACTOR_LOGVOL, XM_FACTOR_PRICE};
static double xm_t2_flevel[] = {4500.0, 0.2, 4510.0, 0.045, 60000.0, 0.6, 1.08};
static double xm_t2_fspread[] = {0.0001, 0, 0.0002, 0, 0.0005, 0, 0.00005};
static double xm_t2_fimpact[] = {0.1, 0, 0.1, 0, 0.3, 0, 0};
static double xm_t2_fadv[] = {5e10, 0, 1e11, 0, 2e10, 0, 0};
static double xm_t2_fhair[] = {0.15, 0, 0, 0, 0.5, 0, 0.02};
static double xm_t2_flimit[] = {1e7, 0, 0, 0, 2e6, 0, 0};
static char *xm_t2_silo[] = {"securities", "futures", "crypto"};
static char *xm_t2_iid[] = {"SPX",      "ES.Z5",    "SPX.A4500", "ES.P4400",
                            "BTC-PERP", "BTC-INVP", "BTC-INVF",  "BTC-C60000"};
static int32_t xm_t2_itype[] = {XM_SPOT,           XM_FUTURE,        XM_AMERICAN_OPTION,
                                XM_FUTURE_OPTION,  XM_PERPETUAL,     XM_INVERSE_PERPETUAL,
                                XM_INVERSE_FUTURE, XM_INVERSE_OPTION};
static int32_t xm_t2_isilo[] = {0, 1, 0, 1, 2, 2, 2, 2};
static int32_t xm_t2_iund[] = {0, 2, 0, 2, 4, 4, 4, 4};
static int32_t xm_t2_ivol[] = {-1, -1, 1, 1, -1, -1, -1, 5};
static double xm_t2_istrike[] = {0, 0, 4500, 4400, 0, 0, 0, 60000};
static double xm_t2_iexp[] = {0, 0.25, 0.5, 0.25, 0, 0, 0.25, 0.1};
static int32_t xm_t2_icall[] = {0, 0, 0, 0, 0, 0, 0, 1};
static double xm_t2_iiv[] = {0, 0, 0.18, 0.21, 0, 0, 0, 0.6};
static double xm_t2_irate[] = {0.045, 0.045, 0.045, 0.045, 0, 0, 0, 0};
static double xm_t2_idiv[] = {0.013, 0, 0.013, 0, 0, 0, 0, 0};
static double xm_t2_imult[] = {1, 50, 100, 50, 0.001, 10, 10, 1};
static char *xm_t2_icur[] = {"USD", "USD", "USD", "USD", "USD", "BTC", "BTC", "BTC"};
static double xm_t2_ifund[] = {0, 0, 0, 0, 0.1, -0.05, 0, 0};
static char *xm_t2_acc[] = {"A1", "A2", "A3"};
static int32_t xm_t2_across[] = {1, 0, 1};
static char *xm_t2_acur[] = {"USD", "EUR", "BTC"};
static char *xm_t2_fxcur[] = {"EUR", "BTC"};
static int32_t xm_t2_fxf[] = {6, 4};
static int32_t xm_t2_cacc[] = {0, 1, 1, 2};
static int32_t xm_t2_cfac[] = {-1, 0, -1, 4};
static char *xm_t2_ccur[] = {"USD", "USD", "EUR", "USD"};
static double xm_t2_cq[] = {1e6, 100, 5000, 2};
static int32_t xm_t2_csilo[] = {0, -1, 1, 2};
static int32_t xm_t2_pacc[] = {0, 0, 1, 2, 2, 2, 2};
static int32_t xm_t2_pinst[] = {0, 2, 1, 3, 4, 5, 7};
static double xm_t2_pq[] = {100, -2, 3, -1, 1.5, -200, 3};

/* A valid book with every version-2 column and table. */
static void xm_t_portfolio2(xm_portfolio *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->valuation_date, sizeof p->valuation_date, "2024-06-28");
  snprintf(p->currency, sizeof p->currency, "USD");
  p->n_factors = 7;
  p->factor_name = xm_t2_fname;
  p->factor_kind = xm_t2_fkind;
  p->factor_level = xm_t2_flevel;
  p->factor_half_spread = xm_t2_fspread;
  p->factor_impact = xm_t2_fimpact;
  p->factor_adv = xm_t2_fadv;
  p->factor_haircut = xm_t2_fhair;
  p->factor_collateral_limit = xm_t2_flimit;
  p->n_silos = 3;
  p->silo_name = xm_t2_silo;
  p->n_instruments = 8;
  p->inst_id = xm_t2_iid;
  p->inst_type = xm_t2_itype;
  p->inst_silo = xm_t2_isilo;
  p->inst_underlying = xm_t2_iund;
  p->inst_vol_factor = xm_t2_ivol;
  p->inst_strike = xm_t2_istrike;
  p->inst_expiry = xm_t2_iexp;
  p->inst_call = xm_t2_icall;
  p->inst_implied_vol = xm_t2_iiv;
  p->inst_rate = xm_t2_irate;
  p->inst_dividend_yield = xm_t2_idiv;
  p->inst_multiplier = xm_t2_imult;
  p->inst_currency = xm_t2_icur;
  p->inst_funding_rate = xm_t2_ifund;
  p->n_accounts = 3;
  p->account_id = xm_t2_acc;
  p->account_cross_margin = xm_t2_across;
  p->account_currency = xm_t2_acur;
  p->n_fx = 2;
  p->fx_currency = xm_t2_fxcur;
  p->fx_factor = xm_t2_fxf;
  p->n_collateral = 4;
  p->coll_account = xm_t2_cacc;
  p->coll_factor = xm_t2_cfac;
  p->coll_currency = xm_t2_ccur;
  p->coll_quantity = xm_t2_cq;
  p->coll_silo = xm_t2_csilo;
  p->n_positions = 7;
  p->pos_account = xm_t2_pacc;
  p->pos_instrument = xm_t2_pinst;
  p->pos_quantity = xm_t2_pq;
}

static void xm_t_same_f64(const double *a, const double *b, int64_t n) {
  assert_true((a == NULL) == (b == NULL));
  for (int64_t i = 0; a && i < n; i++)
    assert_true(a[i] == b[i]);
}

static void xm_t_same_i32(const int32_t *a, const int32_t *b, int64_t n) {
  assert_true((a == NULL) == (b == NULL));
  for (int64_t i = 0; a && i < n; i++)
    assert_int_equal(a[i], b[i]);
}

static void xm_t_same_strs(char *const *a, char *const *b, int64_t n) {
  assert_true((a == NULL) == (b == NULL));
  for (int64_t i = 0; a && i < n; i++)
    assert_string_equal(a[i], b[i]);
}

/* Every column of p and q holds the same (both NULL for an absent one). */
static void xm_t_same_portfolio(const xm_portfolio *p, const xm_portfolio *q) {
  assert_string_equal(q->valuation_date, p->valuation_date);
  assert_string_equal(q->currency, p->currency);
  for (int t = 0; t < XM__PORTFOLIO_TABLES; t++) {
    const xm__table *tb = &xm__portfolio_tables[t];
    int64_t n = xm__count_get(p, tb->rows);
    assert_int_equal(xm__count_get(q, tb->rows), n);
    for (int k = 0; k < tb->ncols; k++) {
      const xm__column *col = &tb->cols[k];
      const void *a = xm__col_get(p, col->at), *b = xm__col_get(q, col->at);
      if (col->elem == XM__FLOAT)
        xm_t_same_f64(a, b, n);
      else if (col->elem == XM__INT || col->codes)
        xm_t_same_i32(a, b, n);
      else
        xm_t_same_strs((char *const *)a, (char *const *)b, n);
    }
  }
}

/* The file's root attribute format_version (xm_file_kind). */
static int xm_t_version(const char *path) {
  char fmt[64];
  int v = -1;
  assert_int_equal(xm_file_kind(path, fmt, sizeof fmt, &v, NULL), XM_OK);
  return v;
}

static void test_portfolio_v2_round_trip(void **state) {
  (void)state;
  xm_portfolio p, q, r;
  xm_diag d = {0};
  char path[512], path2[512];
  xm_t_path(path, sizeof path, "book2.h5");
  xm_t_path(path2, sizeof path2, "book2b.h5");
  xm_t_portfolio2(&p);
  assert_int_equal(xm_portfolio_validate(&p, &d), XM_OK);
  xm_t_dump(&d);
  assert_int_equal(d.total, 0);
  assert_int_equal(xm_portfolio_write(path, &p, &d), XM_OK);
  assert_int_equal(xm_t_version(path), 2);
  xm_status st = xm_portfolio_read(path, &q, &d);
  xm_t_dump(&d);
  assert_int_equal(st, XM_OK);
  xm_t_same_portfolio(&p, &q);
  /* read -> write -> read: the same struct */
  assert_int_equal(xm_portfolio_write(path2, &q, &d), XM_OK);
  assert_int_equal(xm_portfolio_read(path2, &r, &d), XM_OK);
  xm_t_same_portfolio(&q, &r);
  xm_portfolio_free(&r);
  xm_portfolio_free(&q);

  /* the optional columns and tables absent: NULL and 0 rows after the read,
   * and a version-1 book written so reads the same */
  xm_t_portfolio(&p);
  assert_int_equal(xm_portfolio_write(path, &p, &d), XM_OK);
  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(H5LTpath_valid(fid, "/fx", 0) == 0 && H5LTpath_valid(fid, "/collateral", 0) == 0);
  assert_true(H5LTpath_valid(fid, "/accounts/currency", 0) == 0);
  H5Fclose(fid);
  assert_int_equal(xm_portfolio_read(path, &q, &d), XM_OK);
  xm_t_same_portfolio(&p, &q);
  assert_null(q.factor_haircut);
  assert_null(q.inst_currency);
  assert_null(q.account_currency);
  assert_int_equal(q.n_fx, 0);
  assert_null(q.fx_currency);
  assert_int_equal(q.n_collateral, 0);
  xm_portfolio_free(&q);

  /* /collateral without its optional currency column */
  xm_t_portfolio2(&p);
  p.coll_currency = NULL;
  assert_int_equal(xm_portfolio_write(path, &p, &d), XM_OK);
  assert_int_equal(xm_portfolio_read(path, &q, &d), XM_OK);
  xm_t_same_portfolio(&p, &q);
  xm_portfolio_free(&q);
  xm_diag_free(&d);
}

static void test_validate_portfolio_v2(void **state) {
  (void)state;
  xm_portfolio p;
  /* a currency neither the reporting one nor in /fx */
  xm_t_portfolio2(&p);
  p.account_currency = (char *[]){"USD", "GBP", "BTC"};
  xm_t_validate_bad(&p,
                    "/accounts/currency[1] = 'GBP': unknown currency: must be the reporting "
                    "currency 'USD' or a currency of /fx",
                    1);
  xm_t_portfolio2(&p);
  p.inst_currency = (char *[]){"USD", "USD", "USD", "USD", "USD", "BTC", "BTC", "ETH"};
  xm_t_validate_bad(&p,
                    "/instruments/currency[7] = 'ETH': unknown currency: must be the reporting "
                    "currency 'USD' or a currency of /fx",
                    1);
  /* an inverse type in the reporting currency, given and by default */
  xm_t_portfolio2(&p);
  p.inst_currency = (char *[]){"USD", "USD", "USD", "USD", "USD", "BTC", "USD", "BTC"};
  xm_t_validate_bad(&p,
                    "/instruments/currency[6] = 'USD': an inverse type ('inverse_future') "
                    "settles in its coin: must be a currency of /fx, not the reporting currency",
                    1);
  xm_t_portfolio2(&p);
  p.inst_currency = NULL;
  xm_t_validate_bad(&p,
                    "/instruments/type[5] = 'inverse_perpetual': an inverse type settles in its "
                    "coin, a currency of /fx: /instruments/currency is absent, so it would settle "
                    "in the reporting currency 'USD'",
                    1);
  /* funding on a type without it */
  xm_t_portfolio2(&p);
  p.inst_funding_rate = (double[]){0, 0.01, 0, 0, 0.1, -0.05, 0, 0};
  xm_t_validate_bad(&p,
                    "/instruments/funding_rate[1] = 0.01: must be 0 for type 'future' (only "
                    "perpetual, inverse_perpetual pay funding)",
                    1);
  /* /fx */
  xm_t_portfolio2(&p);
  p.fx_factor = (int32_t[]){6, 5};
  xm_t_validate_bad(&p,
                    "/fx/factor[1] = 5: an /fx factor must be a price factor (factor 'BTC.iv' is "
                    "not)",
                    1);
  xm_t_portfolio2(&p);
  p.fx_currency = (char *[]){"EUR", "USD"};
  p.inst_currency = NULL; /* only the /fx rule */
  p.inst_type = (int32_t[]){XM_SPOT,      XM_FUTURE,    XM_OPTION, XM_FUTURE_OPTION,
                            XM_PERPETUAL, XM_PERPETUAL, XM_FUTURE, XM_OPTION};
  p.account_currency = NULL;
  p.coll_currency = NULL;
  xm_t_validate_bad(&p,
                    "/fx/currency[1] = 'USD': the reporting currency is not a row of /fx (one "
                    "unit of it is worth 1)",
                    1);
  xm_t_portfolio2(&p);
  p.fx_currency = (char *[]){"BTC", "BTC"};
  xm_t_validate_bad(&p, "/fx/currency[1] = 'BTC': duplicate currency (first at row 0)", 1);
  xm_t_portfolio2(&p);
  p.fx_factor = (int32_t[]){6, 7};
  xm_t_validate_bad(&p, "/fx/factor[1] = 7: index out of range: must be a row of /factors (0..6)",
                    1);
  /* /collateral */
  xm_t_portfolio2(&p);
  p.coll_factor = (int32_t[]){-1, 0, -2, 4};
  xm_t_validate_bad(&p,
                    "/collateral/factor[2] = -2: index out of range: must be a row of /factors "
                    "(0..6) or -1 for cash",
                    1);
  xm_t_portfolio2(&p);
  p.coll_factor = (int32_t[]){-1, 3, -1, 4};
  xm_t_validate_bad(&p,
                    "/collateral/factor[1] = 3: a collateral factor must be a price factor or -1 "
                    "for cash (factor 'USD.r' is not)",
                    1);
  xm_t_portfolio2(&p);
  p.coll_silo = (int32_t[]){0, -1, 3, 2};
  xm_t_validate_bad(&p,
                    "/collateral/silo[2] = 3: index out of range: must be a row of /silos/name "
                    "(0..2) or -1 for none",
                    1);
  xm_t_portfolio2(&p);
  p.coll_quantity = (double[]){1e6, -100, 5000, 2};
  xm_t_validate_bad(&p, "/collateral/quantity[1] = -100: quantity must be >= 0", 1);
  /* the factors' add-on and collateral columns */
  xm_t_portfolio2(&p);
  p.factor_haircut = (double[]){0.15, 0, 0, 0, 1.5, 0, 0.02};
  xm_t_validate_bad(&p, "/factors/haircut[4] = 1.5: haircut must be in [0, 1]", 1);
  xm_t_portfolio2(&p);
  p.factor_adv = (double[]){5e10, 0, -1, 0, 2e10, 0, 0};
  xm_t_validate_bad(&p, "/factors/adv[2] = -1: adv must be >= 0", 1);
  xm_t_portfolio2(&p);
  p.factor_impact = (double[]){0.1, 0, 0.1, 0, NAN, 0, 0};
  xm_t_validate_bad(&p, "/factors/impact[4] = nan: must be a finite number", 1);
  /* a currency string of more than 15 characters */
  xm_t_portfolio2(&p);
  p.account_currency = (char *[]){"USD", "EUR", "BTCBTCBTCBTCBTCB"};
  xm_t_validate_bad(
      &p, "/accounts/currency[2] = 'BTCBTCBTCBTCBTCB': a currency must be 1 to 15 characters", 1);
  /* an option's vol factor may be a logvol factor, not a price factor */
  xm_t_portfolio2(&p);
  p.inst_vol_factor = (int32_t[]){-1, -1, 1, 1, -1, -1, -1, 4};
  xm_t_validate_bad(&p,
                    "/instruments/vol_factor[7] = 4: the vol factor must be a vol or logvol "
                    "factor (factor 'BTC' is not)",
                    1);
  /* the reporting currency not valid: reported once, the rules that compare
   * with it skipped (the same in memory and from the file) */
  xm_t_portfolio2(&p);
  p.currency[0] = '\0';
  xm_t_validate_bad(&p, "/: attribute currency = '': must be 1 to 15 characters", 1);
  /* an optional table of no rows is absent; given rows, its columns are required */
  xm_t_portfolio2(&p);
  p.n_collateral = 0;
  assert_int_equal(xm_portfolio_validate(&p, NULL), XM_OK);
  xm_t_portfolio2(&p);
  p.coll_quantity = NULL;
  xm_t_validate_bad(&p, "/collateral/quantity = NULL: a required column must hold its 4 values", 0);
  xm_t_portfolio2(&p);
  p.n_fx = -1;
  xm_t_validate_bad(&p, "/fx: has -1 rows: a count must be in 0..2147483647 (int32 indices)", 0);
}

/* As xm_t_validate_bad, for a scenario file. */
static void xm_t_validate_bad_s(const xm_scenario_file *s, const char *want, int file_too) {
  xm_diag d = {0};
  char full[512];
  snprintf(full, sizeof full, "scenarios: %s", want);
  uint64_t before = xm_t_scenarios_sum(s);
  xm_status st = xm_scenarios_validate(s, &d);
  int found = 0;
  for (size_t i = 0; i < d.shown; i++)
    found |= strcmp(d.msg[i], full) == 0;
  if (st != XM_EFORMAT || !found) {
    print_message("expected '%s' (status %d):\n", full, (int)st);
    xm_t_dump(&d);
  }
  assert_int_equal(st, XM_EFORMAT);
  assert_true(found);
  assert_true(xm_t_scenarios_sum(s) == before);
  if (file_too) {
    char path[512];
    xm_scenario_file q;
    xm_diag df = {0};
    xm_t_path(path, sizeof path, "validate_s.h5");
    assert_int_equal(xm_scenarios_write(path, s, NULL), XM_OK);
    assert_int_equal(xm_scenarios_read(path, &q, &df), XM_EFORMAT);
    xm_t_same_messages(&d, "scenarios", &df, path);
    xm_diag_free(&df);
  }
  xm_diag_free(&d);
}

static void test_validate_scenarios(void **state) {
  (void)state;
  xm_scenario_file s;
  xm_scenario_set sets[2];
  xm_diag d = {0};

  xm_t_scenarios(&s, sets);
  uint64_t before = xm_t_scenarios_sum(&s);
  assert_int_equal(xm_scenarios_validate(&s, &d), XM_OK);
  assert_int_equal(d.total, 0);
  assert_true(xm_t_scenarios_sum(&s) == before);
  assert_int_equal(xm_scenarios_validate(NULL, &d), XM_EINVAL);
  /* the sets need not be sorted in memory; history alone, sets alone */
  xm_t_scenarios(&s, sets);
  s.n_sets = 0;
  s.sets = NULL;
  assert_int_equal(xm_scenarios_validate(&s, NULL), XM_OK);
  xm_t_scenarios(&s, sets);
  s.n_days = s.n_hfactors = 0;
  s.hist_factor = s.hist_date = NULL;
  s.hist_return = NULL;
  assert_int_equal(xm_scenarios_validate(&s, NULL), XM_OK);

  xm_t_scenarios(&s, sets);
  s.hist_date = (char *[]){"2024-06-26", "2024-06-28", "2024-06-28"};
  xm_t_validate_bad_s(&s,
                      "/history/date[2] = '2024-06-28': dates must be strictly increasing "
                      "(previous '2024-06-28')",
                      1);
  xm_t_scenarios(&s, sets);
  s.hist_date = (char *[]){"2024-06-26", "2024-6-27", "2024-06-28"};
  xm_t_validate_bad_s(&s, "/history/date[1] = '2024-6-27': must be an ISO date YYYY-MM-DD", 1);
  xm_t_scenarios(&s, sets);
  s.hist_factor = (char *[]){"SPX", "SPX"};
  xm_t_validate_bad_s(&s, "/history/factor[1] = 'SPX': duplicate factor name (first at row 0)", 1);
  xm_t_scenarios(&s, sets);
  s.hist_return = (double[]){0.01, 0.002, -0.02, NAN, 0.005, -0.001};
  xm_t_validate_bad_s(&s, "/history/return[1, 1] = nan: must be a finite number", 1);
  xm_t_scenarios(&s, sets);
  sets[0].weight = (double[]){1.0, -0.5};
  xm_t_validate_bad_s(&s, "/sets/zgrid/weight[1] = -0.5: weight must be finite and >= 0", 1);
  xm_t_scenarios(&s, sets);
  sets[1].shock = (double[]){-0.1, INFINITY, -0.1};
  xm_t_validate_bad_s(&s, "/sets/crises/shock[0, 1] = inf: must be a finite number", 1);
  xm_t_scenarios(&s, sets);
  sets[1].factor = (char *[]){"SPX", "ES", "ES"};
  xm_t_validate_bad_s(&s, "/sets/crises/factor[2] = 'ES': duplicate factor name (first at row 1)",
                      1);
  xm_t_scenarios(&s, sets);
  sets[1].confidence = 1.0;
  xm_t_validate_bad_s(&s, "/sets/crises: attribute confidence = 1: confidence must be in (0, 1)",
                      1);
  xm_t_scenarios(&s, sets);
  sets[0].name = "montecarlo";
  xm_t_validate_bad_s(&s,
                      "/sets/montecarlo: set name 'montecarlo' is reserved for the sets xmargin "
                      "generates",
                      1);
  xm_t_scenarios(&s, sets);
  sets[0].name = "z grid";
  xm_t_validate_bad_s(&s,
                      "/sets/z?grid: set name has ' ' (byte 0x20) at character 2: only letters, "
                      "digits, _ and - are allowed",
                      1);
  xm_t_scenarios(&s, sets);
  sets[1].n_scenarios = 0;
  xm_t_validate_bad_s(&s, "/sets/crises/label: has no rows: a set must have at least one scenario",
                      1);
  xm_t_scenarios(&s, sets);
  s.n_days = s.n_hfactors = s.n_sets = 0;
  xm_t_validate_bad_s(&s, "/: has neither /history nor /sets: no scenarios to run", 1);

  /* what only a struct can hold */
  xm_t_scenarios(&s, sets);
  sets[1].name = "zgrid";
  xm_t_validate_bad_s(&s, "/sets[1] = 'zgrid': duplicate set name (first at row 0)", 0);
  xm_t_scenarios(&s, sets);
  sets[0].measure = XM_MEASURE_COUNT;
  xm_t_validate_bad_s(&s, "/sets/zgrid: attribute measure = code 3: must be one of worst, es, var",
                      0);
  xm_t_scenarios(&s, sets);
  sets[1].label = NULL;
  xm_t_validate_bad_s(&s, "/sets/crises/label = NULL: a required column must hold its 1 values", 0);
  xm_t_scenarios(&s, sets);
  s.hist_factor = (char *[]){"SPX", NULL};
  xm_t_validate_bad_s(&s, "/history/factor[1] = NULL: must be a string", 0);
}

/* ---- Results ---------------------------------------------------------------------- */

static char *xm_t_racc[] = {"A1", "A2", "A3"};
static char *xm_t_rsilo[] = {"securities", "futures"};
static char *xm_t_rset[] = {"historical", "crises"};
static double xm_t_rreq[] = {100, 200, 300};
static double xm_t_runi[] = {90, 180, 290};
static double xm_t_rsil[] = {120, 180, 330};
static double xm_t_rdiv[] = {30, 0, 40};
static double xm_t_rmin[] = {1, 2, 3};
static double xm_t_rbyset[] = {90, 50, 180, 100, 290, 10};
static double xm_t_rbysilo[] = {60, 60, 90, 90, 200, 130};
static double xm_t_rattr[] = {45, 45, 90, 90, 180, 110};
static int32_t xm_t_rbind[] = {0, 0, 0};
static double xm_t_rliq[] = {4, 0, 10};
static double xm_t_rliqs[] = {3, 2, 0, 0, 6, 5};
static double xm_t_rreqs[] = {60, 60, 90, 90, 200, 130};
static double xm_t_rhedge[] = {24, 0, 32};
static int32_t xm_t_rmb[] = {0, 1, 0};
static double xm_t_rcv[] = {150, 0, 250};
static double xm_t_rcol[] = {120, 0, 200};
static double xm_t_rexc[] = {20, -200, -100};
static double xm_t_rcall[] = {0, 200, 100};
static double xm_t_rcalls[] = {10, 200, 130};
static char *xm_t_rl0[] = {"2024-06-25", "2024-06-26", "2024-06-27", "2024-06-28"};
static float xm_t_rp0[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static char *xm_t_rl1[] = {"1987-10-19", "2008-10-15"};
static double xm_t_rs1[] = {-0.2, 0.5, -0.09, 0.3};
static char *xm_t_rf1[] = {"SPX", "SPX.iv"};

static void xm_t_results(xm_results *r, xm_results_set sets[2]) {
  memset(r, 0, sizeof *r);
  sets[0] =
      (xm_results_set){.name = "historical", .n_scenarios = 4, .label = xm_t_rl0, .pnl = xm_t_rp0};
  sets[1] = (xm_results_set){.name = "crises",
                             .n_scenarios = 2,
                             .label = xm_t_rl1,
                             .shock = xm_t_rs1,
                             .n_factors = 2,
                             .factor = xm_t_rf1};
  r->head.software_version = "0.1.0";
  r->head.created_utc = "2024-06-28T12:00:00Z";
  r->head.portfolio = "book.h5";
  r->head.scenarios = "scen.h5";
  r->head.portfolio_sha256 = "00";
  r->head.scenarios_sha256 = "11";
  r->head.config = "[run]\nconfidence = 0.99\n";
  r->head.device = "cpu";
  r->head.precision = "double";
  r->head.reporting_currency = "USD";
  r->head.seed = 42;
  r->head.elapsed_s = 0.5;
  r->head.n_accounts = 3;
  r->head.n_silos = 2;
  r->head.n_sets = 2;
  r->head.account = xm_t_racc;
  r->head.silo = xm_t_rsilo;
  r->head.set = xm_t_rset;
  r->requirement = xm_t_rreq;
  r->unified = xm_t_runi;
  r->siloed = xm_t_rsil;
  r->diversification = xm_t_rdiv;
  r->minimum = xm_t_rmin;
  r->by_set = xm_t_rbyset;
  r->by_silo = xm_t_rbysilo;
  r->attribution = xm_t_rattr;
  r->binding_set = xm_t_rbind;
  r->liquidity = xm_t_rliq;
  r->liquidity_by_silo = xm_t_rliqs;
  r->requirement_by_silo = xm_t_rreqs;
  r->hedge_credit = xm_t_rhedge;
  r->minimum_binds = xm_t_rmb;
  r->collateral_value = xm_t_rcv;
  r->collateral = xm_t_rcol;
  r->excess = xm_t_rexc;
  r->call = xm_t_rcall;
  r->call_siloed = xm_t_rcalls;
  r->sets = sets;
}

/* The version-2 datasets of /margin: money ones (units, long_name, the scales)
 * and the two flagged int ones. */
static const char *xm_t_rv2_money[] = {"/margin/liquidity",
                                       "/margin/liquidity_by_silo",
                                       "/margin/requirement_by_silo",
                                       "/margin/hedge_credit",
                                       "/margin/collateral_value",
                                       "/margin/collateral",
                                       "/margin/excess",
                                       "/margin/call",
                                       "/margin/call_siloed"};

static void test_results_write(void **state) {
  (void)state;
  xm_results r;
  xm_results_set sets[2];
  xm_diag d = {0};
  char path[512];
  xm_t_path(path, sizeof path, "results.h5");
  xm_t_results(&r, sets);
  assert_int_equal(xm_results_write(path, &r, &d), XM_OK);
  assert_int_equal(d.total, 0);
  assert_int_equal(xm_t_count_temps(), 0);

  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(fid >= 0);
  char buf[256];
  const char *dsets[] = {"/account",
                         "/silo",
                         "/set",
                         "/margin/requirement",
                         "/margin/unified",
                         "/margin/siloed",
                         "/margin/diversification",
                         "/margin/minimum",
                         "/margin/by_set",
                         "/margin/by_silo",
                         "/margin/attribution",
                         "/margin/binding_set",
                         "/margin/currency",
                         "/margin/minimum_binds",
                         "/scenarios/historical/label",
                         "/scenarios/crises/label",
                         "/scenarios/crises/shock",
                         "/scenarios/crises/factor",
                         "/pnl/historical"};
  for (size_t i = 0; i < sizeof dsets / sizeof dsets[0]; i++) {
    if (H5LTpath_valid(fid, dsets[i], 1) <= 0)
      print_message("missing %s\n", dsets[i]);
    assert_true(H5LTpath_valid(fid, dsets[i], 1) > 0);
  }
  assert_true(H5LTpath_valid(fid, "/pnl/crises", 1) == 0);
  assert_true(H5LTpath_valid(fid, "/scenarios/historical/shock", 1) == 0);
  const char *attrs[] = {"format",
                         "format_version",
                         "software_version",
                         "created_utc",
                         "reporting_currency",
                         "portfolio",
                         "scenarios",
                         "portfolio_sha256",
                         "scenarios_sha256",
                         "config",
                         "device",
                         "precision",
                         "seed",
                         "elapsed_s"};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
    assert_true(H5Aexists(fid, attrs[i]) > 0);
  unsigned long long seed = 0;
  assert_true(H5LTget_attribute(fid, "/", "seed", H5T_NATIVE_ULLONG, &seed) >= 0);
  assert_int_equal(seed, 42);

  /* scales and attachments */
  hid_t sa = H5Dopen2(fid, "/margin/account", H5P_DEFAULT); /* each group has its scales */
  hid_t sk = H5Dopen2(fid, "/margin/set", H5P_DEFAULT);
  hid_t bs = H5Dopen2(fid, "/margin/by_set", H5P_DEFAULT);
  hid_t req = H5Dopen2(fid, "/margin/requirement", H5P_DEFAULT);
  assert_true(H5DSis_scale(sa) > 0);
  assert_true(H5DSis_scale(sk) > 0);
  ssize_t nl = H5DSget_scale_name(sa, buf, sizeof buf);
  assert_true(nl > 0);
  assert_string_equal(buf, "account");
  assert_true(H5DSis_attached(bs, sa, 0) > 0);
  assert_true(H5DSis_attached(bs, sk, 1) > 0);
  assert_true(H5DSis_attached(req, sa, 0) > 0);
  double v[3];
  assert_true(H5Dread(req, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
  assert_true(v[2] == 300.0);
  H5Dclose(req);
  H5Dclose(bs);
  /* the version-2 datasets: values, the scales of their dimensions */
  hid_t sg = H5Dopen2(fid, "/margin/silo", H5P_DEFAULT);
  for (size_t i = 0; i < sizeof xm_t_rv2_money / sizeof xm_t_rv2_money[0]; i++) {
    hid_t d2 = H5Dopen2(fid, xm_t_rv2_money[i], H5P_DEFAULT);
    if (d2 < 0)
      print_message("missing %s\n", xm_t_rv2_money[i]);
    assert_true(d2 >= 0);
    hid_t sp2 = H5Dget_space(d2);
    int rank = H5Sget_simple_extent_ndims(sp2);
    H5Sclose(sp2);
    assert_true(H5DSis_attached(d2, sa, 0) > 0);
    if (rank == 2)
      assert_true(H5DSis_attached(d2, sg, 1) > 0);
    else
      assert_int_equal(rank, 1);
    H5Dclose(d2);
  }
  H5Dclose(sg);
  double lq[6], cs[3];
  assert_true(H5LTread_dataset_double(fid, "/margin/liquidity_by_silo", lq) >= 0);
  assert_true(lq[0] == 3 && lq[1] == 2 && lq[4] == 6 && lq[5] == 5);
  assert_true(H5LTread_dataset_double(fid, "/margin/call_siloed", cs) >= 0);
  assert_true(cs[0] == 10 && cs[1] == 200 && cs[2] == 130);
  int mb[3] = {-1, -1, -1}, fl[3] = {-1, -1, -1};
  assert_true(H5LTread_dataset_int(fid, "/margin/minimum_binds", mb) >= 0);
  assert_true(mb[0] == 0 && mb[1] == 1 && mb[2] == 0);
  /* CF flags: binding_set names the sets, minimum_binds its two values */
  assert_true(H5LTget_attribute_int(fid, "/margin/binding_set", "flag_values", fl) >= 0);
  assert_true(fl[0] == 0 && fl[1] == 1);
  assert_true(H5LTget_attribute_int(fid, "/margin/minimum_binds", "flag_values", fl) >= 0);
  assert_true(fl[0] == 0 && fl[1] == 1);
  H5Dclose(sk);
  H5Dclose(sa);

  /* /pnl: float32, chunked, shuffle + deflate */
  hid_t pd = H5Dopen2(fid, "/pnl/historical", H5P_DEFAULT);
  hid_t pt = H5Dget_type(pd);
  assert_true(H5Tequal(pt, H5T_IEEE_F32LE) > 0);
  H5Tclose(pt);
  hid_t dcpl = H5Dget_create_plist(pd);
  assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
  int nf = H5Pget_nfilters(dcpl);
  assert_int_equal(nf, 2);
  H5Pclose(dcpl);
  float pnl[12];
  assert_true(H5Dread(pd, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pnl) >= 0);
  assert_true(pnl[11] == 12.0f && pnl[4] == 5.0f);
  H5Dclose(pd);
  H5Fclose(fid);

  /* a failed write leaves the target untouched and no temp file */
  struct stat before, after;
  assert_int_equal(stat(path, &before), 0);
  xm_results bad = r;
  xm_results_set bsets[2] = {sets[0], sets[1]};
  bsets[1].name = "historical"; /* duplicate set name */
  bad.sets = bsets;
  assert_int_equal(xm_results_write(path, &bad, &d), XM_EINVAL);
  /* rename over a folder fails after the file was written */
  char dirpath[512];
  xm_t_path(dirpath, sizeof dirpath, "adir");
  assert_int_equal(mkdir(dirpath, 0755), 0);
  char inner[600];
  snprintf(inner, sizeof inner, "%s/keep", dirpath);
  FILE *kf = fopen(inner, "w");
  fclose(kf);
  assert_int_equal(xm_results_write(dirpath, &r, &d), XM_EIO);
  assert_true(d.total > 0);
  assert_int_equal(xm_t_count_temps(), 0);
  assert_int_equal(stat(inner, &after), 0);
  assert_int_equal(stat(path, &after), 0);
  assert_int_equal(before.st_size, after.st_size);
  /* a folder that does not exist */
  xm_t_path(dirpath, sizeof dirpath, "no/such/dir/r.h5");
  assert_int_equal(xm_results_write(dirpath, &r, &d), XM_EIO);
  xm_diag_free(&d);
}

/* A variable-length string attribute of object obj, into buf. */
static void xm_t_attr_vstr(hid_t fid, const char *obj, const char *name, char *buf, size_t cap) {
  hid_t a = H5Aopen_by_name(fid, obj, name, H5P_DEFAULT, H5P_DEFAULT);
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

/* The results of xm_t_results with the accounts' currencies cur (may be
 * NULL): /margin/currency, the root's reporting_currency, and the units
 * and long_name of every money dataset. */
static void xm_t_results_units(char *const *cur, const char *want_units,
                               const char *const want[3]) {
  xm_results r;
  xm_results_set sets[2];
  xm_diag d = {0};
  char path[512], buf[256];
  xm_t_path(path, sizeof path, "results_units.h5");
  xm_t_results(&r, sets);
  r.head.account_currency = cur;
  assert_int_equal(xm_results_write(path, &r, &d), XM_OK);
  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(fid >= 0);
  int v = 0;
  assert_true(H5LTget_attribute_int(fid, "/", "format_version", &v) >= 0);
  assert_int_equal(v, 2);
  xm_t_attr_vstr(fid, "/", "reporting_currency", buf, sizeof buf);
  assert_string_equal(buf, "USD");
  const char *money[] = {"/margin/requirement",     "/margin/unified",     "/margin/siloed",
                         "/margin/diversification", "/margin/minimum",     "/margin/by_set",
                         "/margin/by_silo",         "/margin/attribution", "/pnl/historical"};
  size_t n1 = sizeof money / sizeof money[0], n2 = sizeof xm_t_rv2_money / sizeof *xm_t_rv2_money;
  for (size_t i = 0; i < n1 + n2; i++) {
    const char *m = i < n1 ? money[i] : xm_t_rv2_money[i - n1];
    xm_t_attr_vstr(fid, m, "units", buf, sizeof buf);
    if (strcmp(buf, want_units) != 0)
      print_message("%s: units '%s'\n", m, buf);
    assert_string_equal(buf, want_units);
    xm_t_attr_vstr(fid, m, "long_name", buf, sizeof buf);
    assert_true(strlen(buf) > 0);
  }
  xm_t_attr_vstr(fid, "/margin/binding_set", "flag_meanings", buf, sizeof buf);
  assert_string_equal(buf, "historical crises");
  xm_t_attr_vstr(fid, "/margin/minimum_binds", "flag_meanings", buf, sizeof buf);
  assert_string_equal(buf, "risk_measure minimum");
  xm_t_attr_vstr(fid, "/margin/minimum_binds", "long_name", buf, sizeof buf);
  assert_true(strlen(buf) > 0);
  hid_t dc = H5Dopen2(fid, "/margin/currency", H5P_DEFAULT),
        sa = H5Dopen2(fid, "/margin/account", H5P_DEFAULT);
  assert_true(dc >= 0 && sa >= 0);
  assert_true(H5DSis_attached(dc, sa, 0) > 0);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char *c[3] = {NULL, NULL, NULL};
  assert_true(H5Dread(dc, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, c) >= 0);
  for (int a = 0; a < 3; a++) {
    assert_string_equal(c[a], want[a]);
    H5free_memory(c[a]);
  }
  H5Tclose(t);
  H5Dclose(sa);
  H5Dclose(dc);
  H5Fclose(fid);
  xm_diag_free(&d);
}

static void test_results_currency(void **state) {
  (void)state;
  /* no account currencies: all in the reporting currency */
  xm_t_results_units(NULL, "USD", (const char *const[]){"USD", "USD", "USD"});
  /* one common currency other than the reporting one */
  xm_t_results_units((char *[]){"EUR", "EUR", "EUR"}, "EUR",
                     (const char *const[]){"EUR", "EUR", "EUR"});
  /* the accounts' currencies differ (a NULL entry: the reporting one) */
  xm_t_results_units((char *[]){"USD", "BTC", NULL}, "account currency",
                     (const char *const[]){"USD", "BTC", "USD"});
  xm_t_results_units((char *[]){"EUR", NULL, "EUR"}, "account currency",
                     (const char *const[]){"EUR", "USD", "EUR"});
}

/* A caller that leaves the version-2 arrays NULL (one written before them,
 * or a book without /collateral): the file is written without those
 * datasets; the rest is as before. A set name CF flags cannot list (a blank)
 * leaves binding_set without flag attributes. */
static void test_results_optional(void **state) {
  (void)state;
  xm_results r;
  xm_results_set sets[2];
  xm_diag d = {0};
  char path[512];
  xm_t_path(path, sizeof path, "results_v1.h5");
  for (int pass = 0; pass < 3; pass++) {
    xm_t_results(&r, sets);
    /* pass 0: no collateral; pass 1: none of the version-2 arrays; pass 2:
     * only the collateral ones and a set name with a blank */
    if (pass <= 1)
      r.collateral_value = r.collateral = r.excess = r.call = r.call_siloed = NULL;
    if (pass >= 1) {
      r.liquidity = r.liquidity_by_silo = r.requirement_by_silo = r.hedge_credit = NULL;
      r.minimum_binds = NULL;
    }
    char *blank[] = {"historical", "my crises"};
    if (pass == 2) {
      r.head.set = blank;
      sets[1].name = "my crises";
    }
    assert_int_equal(xm_results_write(path, &r, &d), XM_OK);
    assert_int_equal(d.total, 0);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fid >= 0);
    for (size_t i = 0; i < sizeof xm_t_rv2_money / sizeof xm_t_rv2_money[0]; i++) {
      int coll = i >= 4; /* collateral_value ... call_siloed */
      int want = pass == 0 ? !coll : pass == 1 ? 0 : coll;
      if ((H5LTpath_valid(fid, xm_t_rv2_money[i], 1) > 0) != want)
        print_message("pass %d: %s %s\n", pass, xm_t_rv2_money[i], want ? "missing" : "written");
      assert_int_equal(H5LTpath_valid(fid, xm_t_rv2_money[i], 1) > 0, want);
    }
    assert_int_equal(H5LTpath_valid(fid, "/margin/minimum_binds", 1) > 0, pass == 0);
    assert_true(H5LTpath_valid(fid, "/margin/requirement", 1) > 0);
    assert_true(H5LTpath_valid(fid, "/margin/binding_set", 1) > 0);
    assert_int_equal(H5Aexists_by_name(fid, "/margin/binding_set", "flag_meanings", H5P_DEFAULT),
                     pass != 2);
    assert_int_equal(H5Aexists_by_name(fid, "/margin/binding_set", "flag_values", H5P_DEFAULT),
                     pass != 2);
    H5Fclose(fid);
  }
  xm_diag_free(&d);
}

static void test_sha256(void **state) {
  (void)state;
  char path[512], hex[65];
  xm_t_path(path, sizeof path, "abc.txt");
  FILE *f = fopen(path, "w");
  fputs("abc", f);
  fclose(f);
  assert_int_equal(xm_file_sha256(path, hex), XM_OK);
  assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  xm_t_path(path, sizeof path, "nope.txt");
  assert_int_equal(xm_file_sha256(path, hex), XM_EIO);
  assert_int_equal(xm_file_sha256(NULL, hex), XM_EINVAL);
}

static void test_args(void **state) {
  (void)state;
  xm_portfolio p;
  xm_scenario_file s;
  char buf[8];
  assert_int_equal(xm_portfolio_read(NULL, &p, NULL), XM_EINVAL);
  assert_int_equal(xm_portfolio_read("x", NULL, NULL), XM_EINVAL);
  assert_int_equal(xm_scenarios_read(NULL, &s, NULL), XM_EINVAL);
  assert_int_equal(xm_file_format(NULL, buf, sizeof buf, NULL), XM_EINVAL);
  assert_int_equal(xm_portfolio_write("x", NULL, NULL), XM_EINVAL);
  assert_int_equal(xm_results_write("x", NULL, NULL), XM_EINVAL);
  xm_portfolio_free(NULL);
  xm_scenarios_free(NULL);
  xm_diag_free(NULL);
}

static int xm_t_write_results(const char *path) {
  xm_results r;
  xm_results_set sets[2];
  xm_diag d = {0};
  xm_t_results(&r, sets);
  xm_status st = xm_results_write(path, &r, &d);
  xm_diag_print(&d, stderr);
  xm_diag_free(&d);
  if (st != XM_OK) {
    fprintf(stderr, "test_io: writing %s: %s\n", path, xm_strerror(st));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-results") == 0)
    return xm_t_write_results(argv[2]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diag_bounded),
      cmocka_unit_test(test_portfolio_round_trip),
      cmocka_unit_test(test_portfolio_bad_structs),
      cmocka_unit_test(test_portfolio_bad_hdf5),
      cmocka_unit_test(test_scenarios_round_trip),
      cmocka_unit_test(test_scenarios_bad),
      cmocka_unit_test(test_validate_portfolio),
      cmocka_unit_test(test_validate_scenarios),
      cmocka_unit_test(test_portfolio_v2_round_trip),
      cmocka_unit_test(test_validate_portfolio_v2),
      cmocka_unit_test(test_results_write),
      cmocka_unit_test(test_results_currency),
      cmocka_unit_test(test_results_optional),
      cmocka_unit_test(test_sha256),
      cmocka_unit_test(test_args),
  };
  return cmocka_run_group_tests(tests, xm_t_setup, xm_t_teardown);
}
