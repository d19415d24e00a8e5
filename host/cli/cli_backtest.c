/* xmargin backtest (METHODOLOGY.md section 7): today's book held static
 * against the past days of the scenario file's history. Writes the backtest
 * file (FORMAT.md section 4) atomically and prints what a risk committee
 * reads: the book's exceptions, zones and tests per margin, cross-margined
 * against siloed, the worst days, the procyclicality of the requirement (or
 * the same as JSON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The worst days listed. */
#define XM_BT_WORST 5

static void xm_bt_usage(FILE *f) {
  fprintf(f,
          "usage: xmargin backtest --portfolio P.h5 --scenarios S.h5 [-o BT.h5] [options]\n\n"
          "Holds today's book static and replays the past (METHODOLOGY.md section 7): for each\n"
          "backtest day d, the margins from the history up to d alone (exactly `xmargin run` on\n"
          "that history), against the loss the next h days' moves would have caused. Writes\n"
          "the backtest file (FORMAT.md section 4: the series, the statistics per account,\n"
          "silo, margin and for the book) and prints a summary: the days, each margin's\n"
          "exceptions, traffic-light zone, Kupiec and conditional-coverage p-values for the\n"
          "book, cross-margined against siloed (does the hedge credit hold when it is needed),\n"
          "the zones across accounts, the worst days and the procyclicality of the requirement.\n"
          "The days: the last min(backtest.days, T - h - backtest.min_history + 1) rows of the\n"
          "history that have h days after them (see xmargin config, [backtest]).\n\n"
          "options:\n"
          "  --portfolio FILE        the book (format xmargin.portfolio)\n"
          "  --scenarios FILE        history and scenario sets (format xmargin.scenarios)\n"
          "  -o, --output FILE       backtest file (default xmargin-backtest.h5)\n"
          "  --config FILE           INI configuration (see xmargin config)\n"
          "  --set KEY=VALUE         override one configuration key (repeatable)\n"
          "  --days N                backtest days at most (backtest.days, default 500)\n"
          "  --device SPEC           auto|cpu|opencl|opencl:P.D (default $XM_DEVICE or auto)\n"
          "  --precision P           double (default) or single\n"
          "  --save-scenarios        write every day's shocks of every set (/scenarios/<set>)\n"
          "  --mem-limit BYTES       cap the memory the plan uses, 1M at least (K, M, G suffixes)\n"
          "  --threads N             threads of the cpu backend (default: all cores)\n"
          "  --json                  print the summary as JSON\n"
          "  -q, --quiet             no summary\n"
          "Under mpirun (a build with -DXM_WITH_MPI=ON) the ranks split the days (with\n"
          "--save-scenarios, their shocks too) and rank 0 writes the file, bit for bit one\n"
          "process's (docs/scaling.md).\n"
          "Exit status: 0 success, 1 run failure, 2 bad input or usage.\n");
}

/* ---- What the summary says, for the text and --json alike ---- */

typedef struct xm_bt_day {
  double v;
  int64_t j;
} xm_bt_day;

/* Larger first, ties in date order. */
static int xm_bt_cmp_day(const void *pa, const void *pb) {
  const xm_bt_day *a = pa, *b = pb;
  if (a->v != b->v)
    return a->v > b->v ? -1 : 1;
  return a->j < b->j ? -1 : (a->j > b->j);
}

static int xm_bt_cmp_f64(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return a < b ? -1 : (a > b);
}

typedef struct xm_bt_sum {
  /* accounts whose cross-margined exceptions are more / fewer / as many as
   * their siloed ones: [0] on the test days, [1] on all days */
  int64_t more[2], fewer[2], equal[2];
  int64_t zones[XM_BT_NMARGIN][4]; /* accounts per zone: green, yellow, red, none */
  xm_bt_day worst[XM_BT_WORST];    /* the book's realised loss - total cross-margined */
  int nworst;
  /* the total requirement: the days of its peak and trough (> 0), and of its
   * largest increase within apc_window days (-1: none) */
  int64_t peak, trough, inc_from, inc_to;
  double med_ptt, med_inc; /* medians over accounts (NaN: no account with both) */
  int64_t n_apc;           /* accounts with a peak-to-trough */
} xm_bt_sum;

/* The median of the finite v[0..n) (reordered); NaN when none is. */
static double xm_bt_median(double *v, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    if (isfinite(v[i]))
      v[m++] = v[i];
  if (m == 0)
    return NAN;
  qsort(v, (size_t)m, sizeof *v, xm_bt_cmp_f64);
  return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

static void xm_bt_sum_of(const xm_backtest_result *r, xm_bt_sum *s) {
  memset(s, 0, sizeof *s);
  const xm_bt_stats *cm = r->stats[XM_BT_CROSS_MARGINED], *sl = r->stats[XM_BT_SILOED];
  for (int64_t a = 0; a < r->A; a++) {
    int64_t c[2] = {cm[a].exceptions, cm[a].exceptions_all};
    int64_t q[2] = {sl[a].exceptions, sl[a].exceptions_all};
    for (int k = 0; k < 2; k++) {
      s->more[k] += c[k] > q[k];
      s->fewer[k] += c[k] < q[k];
      s->equal[k] += c[k] == q[k];
    }
    for (int m = 0; m < XM_BT_NMARGIN; m++) {
      int z = r->stats[m][a].zone;
      s->zones[m][z >= 0 && z < 3 ? z : 3]++;
    }
  }
  /* the worst days */
  xm_bt_day *d = malloc((size_t)(r->N + 1) * sizeof *d);
  if (d) {
    for (int64_t j = 0; j < r->N; j++)
      d[j] = (xm_bt_day){r->total_realised[j] - r->total_margin[XM_BT_CROSS_MARGINED][j], j};
    qsort(d, (size_t)r->N, sizeof *d, xm_bt_cmp_day);
    s->nworst = r->N < XM_BT_WORST ? (int)r->N : XM_BT_WORST;
    memcpy(s->worst, d, (size_t)s->nworst * sizeof *d);
    free(d);
  }
  /* the total requirement's peak and trough; the days of its largest increase */
  const double *M = r->total_margin[XM_BT_REQUIREMENT];
  s->peak = s->trough = -1;
  s->inc_from = r->total_stats[XM_BT_REQUIREMENT].inc_from;
  s->inc_to = r->total_stats[XM_BT_REQUIREMENT].inc_to;
  for (int64_t i = 0; i < r->N; i++) {
    if (!(M[i] > 0))
      continue;
    if (s->peak < 0 || M[i] > M[s->peak])
      s->peak = i;
    if (s->trough < 0 || M[i] < M[s->trough])
      s->trough = i;
  }
  /* medians over accounts */
  double *v = malloc((size_t)(r->A + 1) * sizeof *v);
  s->med_ptt = s->med_inc = NAN;
  if (v) {
    const xm_bt_stats *rq = r->stats[XM_BT_REQUIREMENT];
    for (int64_t a = 0; a < r->A; a++) {
      v[a] = rq[a].peak_to_trough;
      s->n_apc += isfinite(v[a]) != 0;
    }
    s->med_ptt = xm_bt_median(v, r->A);
    for (int64_t a = 0; a < r->A; a++)
      v[a] = rq[a].max_increase;
    s->med_inc = xm_bt_median(v, r->A);
    free(v);
  }
}

/* ---- JSON ---- */

/* sep "key": v, v a number or null where it is not finite. */
static void xm_bt_jnum(FILE *f, const char *sep, const char *key, double v) {
  fprintf(f, "%s\"%s\": ", sep, key);
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  else
    fprintf(f, "null");
}

/* sep "key": the date of day j (j >= 0), or null. */
static void xm_bt_jday(FILE *f, const char *sep, const char *key, const xm_backtest_result *r,
                       int64_t j) {
  fprintf(f, "%s\"%s\": ", sep, key);
  if (j >= 0)
    xm_json_string(f, r->day[j]);
  else
    fprintf(f, "null");
}

static void xm_bt_json_stats(FILE *f, const xm_bt_stats *st) {
  fprintf(f,
          "{\"exceptions\": %lld, \"exceptions_all\": %lld, \"zone\": ", (long long)st->exceptions,
          (long long)st->exceptions_all);
  xm_json_string(f, xm_bt_zone_name(st->zone));
  xm_bt_jnum(f, ", ", "observed_coverage", st->observed_coverage);
  xm_bt_jnum(f, ", ", "kupiec_p", st->kupiec_p);
  xm_bt_jnum(f, ", ", "cc_p", st->cc_p);
  fprintf(f, "}");
}

static void xm_bt_json(FILE *f, const xm_cli_inputs *in, const xm_backtest_result *r,
                       const xm_bt_sum *s, const char *outpath, double t_write, double t_total) {
  const xm_config *cfg = &in->cfg;
  fprintf(f, "{\n  \"output\": ");
  xm_json_string(f, outpath);
  fprintf(f, ",\n  \"device\": ");
  xm_json_string(f, in->device);
  fprintf(f, ",\n  \"reporting_currency\": ");
  xm_json_string(f, in->pf.currency);
  fprintf(f, ",\n  \"accounts\": %lld,\n  \"sets\": [", (long long)r->A);
  for (int64_t k = 0; k < r->K; k++) {
    fprintf(f, "%s", k ? ", " : "");
    xm_json_string(f, r->set[k]);
  }
  fprintf(f, "],\n  \"days\": {");
  xm_bt_jday(f, "", "first", r, r->N > 0 ? 0 : -1);
  xm_bt_jday(f, ", ", "last", r, r->N - 1);
  fprintf(f,
          ", \"n\": %lld, \"n_tests\": %lld, \"first_row\": %lld, \"horizon\": %d, "
          "\"coverage\": %.17g, \"apc_window\": %d},\n  \"book\": {",
          (long long)r->N, (long long)r->n_tests, (long long)r->first_day, r->horizon,
          cfg->backtest.coverage, cfg->backtest.apc_window);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    fprintf(f, "%s\n    \"%s\": ", m ? "," : "", xm_bt_margin_name(m));
    xm_bt_json_stats(f, &r->total_stats[m]);
  }
  const xm_bt_stats *tc = &r->total_stats[XM_BT_CROSS_MARGINED];
  const xm_bt_stats *ts = &r->total_stats[XM_BT_SILOED];
  fprintf(f,
          "},\n  \"cross_vs_siloed\": {\"book_exceptions\": {\"cross_margined\": %lld, "
          "\"siloed\": %lld}, \"book_exceptions_all\": {\"cross_margined\": %lld, \"siloed\": "
          "%lld},\n    \"accounts_more\": %lld, \"accounts_fewer\": %lld, \"accounts_equal\": "
          "%lld, \"accounts_more_all\": %lld, \"accounts_fewer_all\": %lld, "
          "\"accounts_equal_all\": %lld},\n  \"zones\": {",
          (long long)tc->exceptions, (long long)ts->exceptions, (long long)tc->exceptions_all,
          (long long)ts->exceptions_all, (long long)s->more[0], (long long)s->fewer[0],
          (long long)s->equal[0], (long long)s->more[1], (long long)s->fewer[1],
          (long long)s->equal[1]);
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    fprintf(f, "%s\"%s\": {\"green\": %lld, \"yellow\": %lld, \"red\": %lld, \"none\": %lld}",
            m ? ", " : "", xm_bt_margin_name(m), (long long)s->zones[m][0],
            (long long)s->zones[m][1], (long long)s->zones[m][2], (long long)s->zones[m][3]);
  fprintf(f, "},\n  \"worst_days\": [");
  for (int i = 0; i < s->nworst; i++) {
    int64_t j = s->worst[i].j;
    fprintf(f, "%s\n    {", i ? "," : "");
    xm_bt_jday(f, "", "day", r, j);
    fprintf(f, ", \"realised_end\": ");
    xm_json_string(f, r->realised_end[j]);
    xm_bt_jnum(f, ", ", "realised", r->total_realised[j]);
    xm_bt_jnum(f, ", ", "cross_margined", r->total_margin[XM_BT_CROSS_MARGINED][j]);
    xm_bt_jnum(f, ", ", "shortfall", s->worst[i].v);
    fprintf(f, "}");
  }
  const xm_bt_stats *tr = &r->total_stats[XM_BT_REQUIREMENT];
  fprintf(f, "],\n  \"procyclicality\": {\"total_requirement\": {");
  xm_bt_jnum(f, "", "peak_to_trough", tr->peak_to_trough);
  xm_bt_jday(f, ", ", "peak_day", r, s->peak);
  xm_bt_jday(f, ", ", "trough_day", r, s->trough);
  xm_bt_jnum(f, ", ", "max_increase", tr->max_increase);
  xm_bt_jday(f, ", ", "increase_from", r, s->inc_from);
  xm_bt_jday(f, ", ", "increase_to", r, s->inc_to);
  fprintf(f, "},\n    \"median_over_accounts\": {");
  xm_bt_jnum(f, "", "peak_to_trough", s->med_ptt);
  xm_bt_jnum(f, ", ", "max_increase", s->med_inc);
  fprintf(f, ", \"accounts\": %lld}},\n", (long long)s->n_apc);
  fprintf(f,
          "  \"seconds\": {\"read\": %.6f, \"backtest\": %.6f, \"write\": %.6f, \"total\": "
          "%.6f}\n}\n",
          in->t_read, r->t_total, t_write, t_total);
}

/* ---- Text ---- */

/* v with fmt, or "-" where it is not finite, into buf[cap]. */
static const char *xm_bt_num(char *buf, size_t cap, const char *fmt, double v) {
  if (isfinite(v))
    snprintf(buf, cap, fmt, v);
  else
    snprintf(buf, cap, "-");
  return buf;
}

static void xm_bt_text(FILE *f, const xm_cli_inputs *in, const xm_backtest_result *r,
                       const xm_bt_sum *s, const char *outpath, double t_write, double t_total) {
  const char *cu = in->pf.currency;
  const xm_config *cfg = &in->cfg;
  char b1[64], b2[64];
  fprintf(f, "xmargin backtest: %lld accounts, %lld sets on %s\n", (long long)r->A, (long long)r->K,
          in->device);
  if (r->N > 0)
    fprintf(f,
            "  days: %s .. %s, N = %lld (rows %lld..%lld of /history), horizon h = %d; "
            "N' = %lld non-overlapping test days\n",
            r->day[0], r->day[r->N - 1], (long long)r->N, (long long)r->first_day,
            (long long)(r->first_day + r->N - 1), r->horizon, (long long)r->n_tests);
  fprintf(f,
          "  coverage %g: an exception is a realised loss above the margin; a margin at exactly "
          "that level\n  would have p x N' = %.3g on the test days (ES-based margins with add-ons "
          "should have fewer)\n",
          cfg->backtest.coverage, (1.0 - cfg->backtest.coverage) * (double)r->n_tests);

  fprintf(f,
          "\n  the book (totals in %s)     exceptions: test days    all days   zone    "
          "Kupiec p      cc p\n",
          cu);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    const xm_bt_stats *st = &r->total_stats[m];
    fprintf(f, "    %-24s %14lld / %-5lld %5lld / %-5lld %-6s %9s %9s\n", xm_bt_margin_name(m),
            (long long)st->exceptions, (long long)r->n_tests, (long long)st->exceptions_all,
            (long long)r->N, st->zone >= 0 ? xm_bt_zone_name(st->zone) : "-",
            xm_bt_num(b1, sizeof b1, "%.4f", st->kupiec_p),
            xm_bt_num(b2, sizeof b2, "%.4f", st->cc_p));
  }

  const xm_bt_stats *tc = &r->total_stats[XM_BT_CROSS_MARGINED];
  const xm_bt_stats *ts = &r->total_stats[XM_BT_SILOED];
  fprintf(f, "\n  cross-margined against siloed: did the hedge credit hold when it was needed?\n");
  fprintf(f,
          "    the book's exceptions: cross-margined %lld, siloed %lld on the test days; %lld "
          "and %lld on all days\n",
          (long long)tc->exceptions, (long long)ts->exceptions, (long long)tc->exceptions_all,
          (long long)ts->exceptions_all);
  fprintf(f,
          "    accounts with more exceptions cross-margined than siloed: %lld, fewer: %lld, as "
          "many: %lld (all days: %lld, %lld, %lld)\n",
          (long long)s->more[0], (long long)s->fewer[0], (long long)s->equal[0],
          (long long)s->more[1], (long long)s->fewer[1], (long long)s->equal[1]);

  fprintf(f, "\n  zones across the %lld accounts    green  yellow     red    none\n",
          (long long)r->A);
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    fprintf(f, "    %-28s %7lld %7lld %7lld %7lld\n", xm_bt_margin_name(m),
            (long long)s->zones[m][0], (long long)s->zones[m][1], (long long)s->zones[m][2],
            (long long)s->zones[m][3]);

  fprintf(f,
          "\n  the %d worst days: the book's realised loss less its cross-margined margin (%s)\n",
          s->nworst, cu);
  for (int i = 0; i < s->nworst; i++) {
    int64_t j = s->worst[i].j;
    fprintf(f, "    %d. %s -> %s  realised %16.2f  cross-margined %16.2f  difference %16.2f\n",
            i + 1, r->day[j], r->realised_end[j], r->total_realised[j],
            r->total_margin[XM_BT_CROSS_MARGINED][j], s->worst[i].v);
  }

  const xm_bt_stats *tr = &r->total_stats[XM_BT_REQUIREMENT];
  const double *M = r->total_margin[XM_BT_REQUIREMENT];
  fprintf(f, "\n  procyclicality of the total requirement (%s), over the %lld days\n", cu,
          (long long)r->N);
  fprintf(f, "    peak-to-trough %s", xm_bt_num(b1, sizeof b1, "%.4g", tr->peak_to_trough));
  if (s->peak >= 0)
    fprintf(f, "  (peak %.2f on %s, trough %.2f on %s)", M[s->peak], r->day[s->peak], M[s->trough],
            r->day[s->trough]);
  fprintf(f, "\n    largest %d-day increase %s", cfg->backtest.apc_window,
          xm_bt_num(b1, sizeof b1, "%+.2f%%", 100.0 * tr->max_increase));
  if (s->inc_from >= 0)
    fprintf(f, "  (%.2f on %s to %.2f on %s)", M[s->inc_from], r->day[s->inc_from], M[s->inc_to],
            r->day[s->inc_to]);
  fprintf(f,
          "\n    median over the %lld accounts with a requirement: peak-to-trough %s, largest "
          "increase %s\n",
          (long long)s->n_apc, xm_bt_num(b1, sizeof b1, "%.4g", s->med_ptt),
          xm_bt_num(b2, sizeof b2, "%+.2f%%", 100.0 * s->med_inc));
  fprintf(f, "\n  time: read %.3fs, backtest %.3fs, write %.3fs, total %.3fs\n", in->t_read,
          r->t_total, t_write, t_total);
  fprintf(f, "  backtest: %s\n", outpath);
}

int xm_cli_backtest(int argc, char **argv) {
  xm_cli_job j;
  memset(&j, 0, sizeof j);
  j.cmd = "xmargin backtest";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm_bt_usage(stdout);
      return XM_EXIT_OK;
    }
    int took = xm_cli_job_option(&j, argc, argv, &i);
    if (took == 0 && strcmp(a, "--days") == 0) {
      const char *v = xm_cli_job_value(&j, argc, argv, &i);
      took = v ? xm_cli_job_key(&j, "--days", "backtest.days", v) : -1;
    }
    if (took < 0)
      return XM_EXIT_USAGE;
    if (took)
      continue;
    fprintf(stderr, "xmargin backtest: unknown argument '%s' (see xmargin backtest --help)\n", a);
    return XM_EXIT_USAGE;
  }
  if (!j.portfolio || !j.scenarios) {
    fprintf(stderr, "xmargin backtest: give --portfolio and --scenarios (a scenario file with a "
                    "/history)\n");
    return XM_EXIT_USAGE;
  }
  if (!j.output)
    j.output = "xmargin-backtest.h5";

  /* Under mpirun (an XM_WITH_MPI build) the ranks split the days, rank 0
   * gathers them, makes the statistics and writes (cli_procs.c). */
  const xm_cli_procs *procs = xm_cli_procs_get();
  char cmd[96];
  xm_cli_procs_job(&j, cmd, sizeof cmd);
  xm_cli_inputs in;
  xm_backtest_result res;
  memset(&res, 0, sizeof res);
  int rc = xm_cli_procs_agree(xm_cli_job_open(&j, &in));
  if (rc >= 0)
    goto cleanup;
  /* N = min(backtest.days, T - h - min_history + 1) (METHODOLOGY.md section
   * 7); fewer than 2 is the backtest's own error, on every rank */
  int64_t j0 = 0, j1 = 0;
  int64_t N = in.sf.n_days - in.cfg.horizon_days - in.cfg.backtest.min_history + 1;
  N = N < in.cfg.backtest.days ? N : in.cfg.backtest.days;
  if (procs->size > 1 && N >= 2) {
    if (N < procs->size) {
      if (procs->rank == 0)
        fprintf(stderr, "%s: %lld backtest days for %d ranks: run fewer ranks\n", j.cmd,
                (long long)N, procs->size);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
    xm_cli_procs_days(N, &j0, &j1);
  }
  xm_run_opts eo = {0, j.save_scenarios, xm_cli_progress_for(&j), NULL, 0, 0, j0, j1, NULL};
  xm_status st = xm_backtest(in.ctx, &in.pf, &in.sf, &in.cfg, &eo, &res);
  if ((rc = xm_cli_procs_ran(&j, &in, st, res.notes)) >= 0)
    goto cleanup;
  xm_cli_procs_fault("gather");
  char err[256] = "";
  int gathered = procs->size > 1 ? xm_cli_procs_gather_days(&res, j0, j1, err, sizeof err) : 0;
  if (!gathered && procs->size > 1 && procs->rank == 0 &&
      (st = xm_backtest_statistics(in.ctx, &in.pf, &in.sf, &in.cfg, &res)) != XM_OK)
    gathered = xm_cli_job_ran(&j, &in, st, NULL); /* prints the message */
  if ((rc = xm_cli_procs_gathered(&j, gathered, err)) >= 0)
    goto cleanup;

  double t_w0 = xm_now();
  xm_run_meta meta = xm_cli_job_meta(&j, &in);
  /* every rank takes part: its days of the saved shocks (cli_procs.c) */
  st = xm_cli_procs_write_days(j.output, &in.pf, &in.cfg, &res, &meta, j0, j1, &in.diag);
  if ((rc = xm_cli_procs_wrote(&j, &in, st)) >= 0)
    goto cleanup;
  double t_write = xm_now() - t_w0;
  if (!j.quiet) {
    xm_bt_sum s;
    xm_bt_sum_of(&res, &s);
    if (j.json)
      xm_bt_json(stdout, &in, &res, &s, j.output, t_write, xm_now() - in.t_start);
    else
      xm_bt_text(stdout, &in, &res, &s, j.output, t_write, xm_now() - in.t_start);
  }
  rc = XM_EXIT_OK;
cleanup:
  xm_backtest_result_free(&res);
  xm_cli_inputs_free(&in);
  return rc;
}
