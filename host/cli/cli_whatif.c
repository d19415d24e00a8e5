/* xmargin whatif: pre-trade margin. The book is prepared once (xm_prepare:
 * its scenario sets, Monte Carlo drawn once); then, for each account of the
 * trades file, its outputs before and with its trades (xm_whatif), each as a
 * full run of the book so modified would give them, and the time each
 * what-if took. Writes no file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void xm_wi_usage(FILE *f) {
  fprintf(f,
          "usage: xmargin whatif --portfolio P.h5 --scenarios S.h5 --trades T.csv [options]\n\n"
          "Pre-trade margin: the book's scenario sets are made once, then for each account of\n"
          "the trades file its requirement before and with its trades added, as a full run of\n"
          "the modified book would give it (same backend), without running the book again:\n"
          "the account's positions are revalued once (its outputs before) and kept, and the\n"
          "what-if revalues only its trades (the seconds printed are that what-if's).\n"
          "The trades file is CSV (RFC 4180) with the columns account, instrument, quantity\n"
          "(ids of /accounts and /instruments; quantity added to the position, negative to\n"
          "sell); an account's rows are its trades, all applied together. A trade that would\n"
          "change the factors the run moves (the first position on a factor, or the last one\n"
          "closed) changes every account's Monte Carlo draws and is refused: run the book.\n"
          "Template: examples/whatif/trades.csv.\n\n"
          "options:\n"
          "  --portfolio FILE        the book (format xmargin.portfolio)\n"
          "  --scenarios FILE        history and scenario sets (format xmargin.scenarios)\n"
          "  --trades FILE           the candidate trades (CSV: account, instrument, quantity)\n"
          "  --config FILE           INI configuration (see xmargin config)\n"
          "  --set KEY=VALUE         override one configuration key (repeatable)\n"
          "  --device SPEC           auto|cpu|opencl|opencl:P.D (default $XM_DEVICE or auto)\n"
          "  --precision P           double (default) or single\n"
          "  --mem-limit BYTES       cap the memory the plan uses, 1M at least (K, M, G suffixes)\n"
          "  --threads N             threads of the cpu backend (default: all cores)\n"
          "  --contributions         also each position's contribution to the requirement with\n"
          "                          the trades (Euler allocation by the binding set's tail\n"
          "                          scenarios; they add up to that set's measure)\n"
          "  --json                  print the results as JSON\n"
          "  -q, --quiet             no output but errors\n"
          "Exit status: 0 success, 1 run failure, 2 bad input or usage.\n");
}

static int64_t xm_wi_find(char *const *ids, int64_t n, const char *s) {
  for (int64_t r = 0; r < n; r++)
    if (strcmp(ids[r], s) == 0)
      return r;
  return -1;
}

/* One account's what-if: its trades, the outputs before and after. */
typedef struct xm_wi_acct {
  int32_t account;
  int64_t n;
  xm_trade *t;
  xm_run_result before, after;
  double seconds;        /* of the what-if with the trades */
  double seconds_before; /* of the one before (an account's first: its positions revalued) */
  xm_contribution *c;    /* --contributions: [nc] */
  int64_t nc;
} xm_wi_acct;

/* The trades file into acc[*na] (accounts in order of first appearance).
 * Returns -1, or the exit status after the message. */
static int xm_wi_trades(const char *path, const xm_portfolio *pf, xm_wi_acct **acc, int64_t *na) {
  xm__csv c;
  memset(&c, 0, sizeof c);
  int rc = xm__csv_read(path, &c);
  if (rc != 0)
    return rc;
  const char *need[3] = {"account", "instrument", "quantity"};
  int col[3];
  for (int k = 0; k < 3; k++)
    if ((col[k] = xm__csv_col(&c, need[k])) < 0) {
      fprintf(stderr,
              "xmargin whatif: %s: no column '%s' (the columns: account, instrument, "
              "quantity)\n",
              path, need[k]);
      xm__csv_free(&c);
      return XM_EXIT_USAGE;
    }
  *acc = calloc((size_t)c.nrows + 1, sizeof **acc);
  if (!*acc) {
    xm__csv_free(&c);
    return XM_EXIT_FAIL;
  }
  *na = 0;
  rc = -1;
  for (int64_t r = 0; r < c.nrows && rc < 0; r++) {
    const char *as = xm__csv_at(&c, r, col[0]), *is = xm__csv_at(&c, r, col[1]);
    const char *qs = xm__csv_at(&c, r, col[2]);
    int64_t a = xm_wi_find(pf->account_id, pf->n_accounts, as);
    int64_t i = xm_wi_find(pf->inst_id, pf->n_instruments, is);
    char *end = NULL;
    double q = strtod(qs, &end);
    const char *bad = a < 0 ? "account" : i < 0 ? "instrument" : NULL;
    if (bad) {
      fprintf(stderr,
              "xmargin whatif: %s: row %lld (line %lld), column %s: '%s' is not an id of "
              "the book's /%s\n",
              path, (long long)r + 1, (long long)c.line[r], bad, a < 0 ? as : is,
              a < 0 ? "accounts" : "instruments");
      rc = XM_EXIT_USAGE;
      break;
    }
    if (!qs[0] || end == qs || *end || !isfinite(q)) {
      fprintf(stderr,
              "xmargin whatif: %s: row %lld (line %lld), column quantity: '%s' is not a "
              "finite number\n",
              path, (long long)r + 1, (long long)c.line[r], qs);
      rc = XM_EXIT_USAGE;
      break;
    }
    xm_wi_acct *w = NULL;
    for (int64_t k = 0; k < *na && !w; k++)
      if ((*acc)[k].account == (int32_t)a)
        w = &(*acc)[k];
    if (!w) {
      w = &(*acc)[(*na)++];
      w->account = (int32_t)a;
      if (!(w->t = calloc((size_t)c.nrows, sizeof *w->t))) {
        rc = XM_EXIT_FAIL;
        break;
      }
    }
    w->t[w->n++] = (xm_trade){(int32_t)i, q};
  }
  if (rc < 0 && *na == 0) {
    fprintf(stderr, "xmargin whatif: %s: no trades\n", path);
    rc = XM_EXIT_USAGE;
  }
  xm__csv_free(&c);
  return rc;
}

static void xm_wi_json_outputs(FILE *f, const xm_run_result *r, const xm_portfolio *pf) {
  fprintf(f,
          "{\"requirement\": %.17g, \"unified\": %.17g, \"siloed\": %.17g, "
          "\"cross_margined\": %.17g, \"minimum\": %.17g, \"liquidity\": %.17g, "
          "\"hedge_credit\": %.17g, \"binding\": ",
          r->requirement[0], r->unified[0], r->siloed[0], r->cross_margined[0], r->minimum[0],
          r->liquidity[0], r->hedge_credit[0]);
  xm_json_string(f, r->binding[0] >= 0 && r->binding[0] < r->K ? r->sets[r->binding[0]].name : "");
  fprintf(f, ", \"by_silo\": {");
  for (int64_t g = 0; g < r->G; g++) {
    fprintf(f, g ? ", " : "");
    xm_json_string(f, pf->silo_name[g]);
    fprintf(f, ": %.17g", r->by_silo[g]);
  }
  fprintf(f, "}}");
}

int xm_cli_whatif(int argc, char **argv) {
  xm_cli_job j;
  memset(&j, 0, sizeof j);
  j.cmd = "xmargin whatif";
  const char *trades = NULL;
  int contrib = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm_wi_usage(stdout);
      return XM_EXIT_OK;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strcmp(a, "--save-scenarios") == 0) {
      fprintf(stderr, "xmargin whatif: %s: a what-if writes no file\n", a);
      return XM_EXIT_USAGE;
    }
    if (strcmp(a, "--contributions") == 0) {
      contrib = 1;
      continue;
    }
    int took = xm_cli_job_option(&j, argc, argv, &i);
    if (took == 0 && strcmp(a, "--trades") == 0) {
      trades = xm_cli_job_value(&j, argc, argv, &i);
      took = trades ? 1 : -1;
    }
    if (took < 0)
      return XM_EXIT_USAGE;
    if (took)
      continue;
    fprintf(stderr, "xmargin whatif: unknown argument '%s' (see xmargin whatif --help)\n", a);
    return XM_EXIT_USAGE;
  }
  if (!j.portfolio || !j.scenarios || !trades) {
    fprintf(stderr, "xmargin whatif: give --portfolio, --scenarios and --trades\n");
    return XM_EXIT_USAGE;
  }
  xm_cli_inputs in;
  xm_prepared *p = NULL;
  xm_wi_acct *acc = NULL;
  int64_t na = 0;
  int rc = xm_cli_job_open(&j, &in);
  if (rc >= 0)
    goto cleanup;
  if ((rc = xm_wi_trades(trades, &in.pf, &acc, &na)) >= 0)
    goto cleanup;
  double t0 = xm_now();
  xm_status st = xm_prepare(in.ctx, &in.pf, &in.sf, &in.cfg, &p);
  double t_prep = xm_now() - t0;
  for (int64_t k = 0; k < na && st == XM_OK; k++) {
    double t1 = xm_now();
    if ((st = xm_whatif(p, acc[k].account, NULL, 0, &acc[k].before)) != XM_OK)
      break;
    acc[k].seconds_before = xm_now() - t1;
    t1 = xm_now();
    st = xm_whatif(p, acc[k].account, acc[k].t, acc[k].n, &acc[k].after);
    acc[k].seconds = xm_now() - t1;
    if (st == XM_OK && contrib)
      st = xm_whatif_contributions(p, acc[k].account, acc[k].t, acc[k].n, &acc[k].c, &acc[k].nc);
  }
  if ((rc = xm_cli_job_ran(&j, &in, st, "")) >= 0)
    goto cleanup;
  if (j.quiet) {
    rc = XM_EXIT_OK;
    goto cleanup;
  }
  if (j.json) {
    printf("{\"device\": ");
    xm_json_string(stdout, in.device);
    printf(", \"trades\": ");
    xm_json_string(stdout, trades);
    printf(", \"prepare_seconds\": %.6f, \"accounts\": [", t_prep);
    for (int64_t k = 0; k < na; k++) {
      printf(k ? ",\n  {\"account\": " : "\n  {\"account\": ");
      xm_json_string(stdout, in.pf.account_id[acc[k].account]);
      printf(", \"currency\": ");
      xm_json_string(stdout, in.pf.account_currency ? in.pf.account_currency[acc[k].account]
                                                    : in.pf.currency);
      printf(", \"trades\": %lld, \"seconds\": %.6f, \"seconds_before\": %.6f, \"before\": ",
             (long long)acc[k].n, acc[k].seconds, acc[k].seconds_before);
      xm_wi_json_outputs(stdout, &acc[k].before, &in.pf);
      printf(", \"after\": ");
      xm_wi_json_outputs(stdout, &acc[k].after, &in.pf);
      if (contrib) {
        printf(", \"contributions\": [");
        for (int64_t q = 0; q < acc[k].nc; q++) {
          printf(q ? ", {\"instrument\": " : "{\"instrument\": ");
          xm_json_string(stdout, in.pf.inst_id[acc[k].c[q].instrument]);
          printf(", \"quantity\": %.17g, \"contribution\": %.17g}", acc[k].c[q].quantity,
                 acc[k].c[q].contribution);
        }
        printf("]");
      }
      printf("}");
    }
    printf("\n]}\n");
  } else {
    printf("xmargin whatif: %lld account%s, trades from %s; the book prepared once in %.3f s "
           "on %s\n",
           (long long)na, na == 1 ? "" : "s", trades, t_prep, in.device);
    printf("%-16s %-4s %7s %16s %16s %16s  %-20s %8s\n", "account", "ccy", "trades", "requirement",
           "with trades", "change", "binding (with)", "ms");
    for (int64_t k = 0; k < na; k++) {
      const xm_run_result *b = &acc[k].before, *a = &acc[k].after;
      int32_t x = a->binding[0];
      printf("%-16s %-4s %7lld %16.2f %16.2f %+16.2f  %-20s %8.2f\n",
             in.pf.account_id[acc[k].account],
             in.pf.account_currency ? in.pf.account_currency[acc[k].account] : in.pf.currency,
             (long long)acc[k].n, b->requirement[0], a->requirement[0],
             a->requirement[0] - b->requirement[0],
             a->minimum_binds[0]  ? "minimum"
             : x >= 0 && x < a->K ? a->sets[x].name
                                  : "",
             1e3 * acc[k].seconds);
    }
    for (int64_t k = 0; contrib && k < na; k++) {
      printf("\n%s with its trades: each position's contribution to the %s measure\n",
             in.pf.account_id[acc[k].account],
             acc[k].after.K ? acc[k].after.sets[acc[k].after.binding[0]].name : "");
      for (int64_t q = 0; q < acc[k].nc; q++)
        printf("  %-32s %16.6g %16.2f\n", in.pf.inst_id[acc[k].c[q].instrument],
               acc[k].c[q].quantity, acc[k].c[q].contribution);
    }
  }
  rc = XM_EXIT_OK;
cleanup:
  for (int64_t k = 0; acc && k < na; k++) {
    free(acc[k].t);
    free(acc[k].c);
    xm_run_result_free(&acc[k].before);
    xm_run_result_free(&acc[k].after);
  }
  free(acc);
  xm_prepared_free(p);
  xm_cli_inputs_free(&in);
  return rc;
}
