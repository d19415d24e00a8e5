/* xmargin run: the main job. Reads a portfolio and a scenario file, runs every
 * scenario set on the chosen device, writes the results file atomically and
 * prints a summary (or JSON). With no arguments: the shipped demo files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void xm_run_usage(FILE *f) {
  fprintf(f,
          "usage: xmargin run [--portfolio P.h5 --scenarios S.h5] [-o OUT.h5] [options]\n\n"
          "Computes every account's siloed, unified and cross-margined requirement over the\n"
          "historical, Monte Carlo and ready-made scenario sets, with the liquidity add-on,\n"
          "and its collateral and margin calls with unified and siloed pools (METHODOLOGY.md),\n"
          "writes the results file (FORMAT.md section 3) and prints a summary: the book's\n"
          "totals in the reporting currency (the collateral a unified framework frees among\n"
          "them) and what bound each large requirement (a set, or the minimum).\n"
          "With no --portfolio/--scenarios it runs the shipped demo files (datasets/) and\n"
          "writes xmargin-demo.h5 in the current folder.\n\n"
          "options:\n"
          "  --portfolio FILE        the book (format xmargin.portfolio)\n"
          "  --scenarios FILE        history and scenario sets (format xmargin.scenarios)\n"
          "  -o, --output FILE       results file (default xmargin-results.h5)\n"
          "  --config FILE           INI configuration (see xmargin config)\n"
          "  --set KEY=VALUE         override one configuration key (repeatable)\n"
          "  --device SPEC           auto|cpu|opencl|opencl:P.D (default $XM_DEVICE or auto;\n"
          "                          auto: a GPU with fp64, else cpu; opencl: the best OpenCL\n"
          "                          device, PoCL included; 'xmargin devices' lists them)\n"
          "  --precision P           double (default) or single\n"
          "  --save-pnl              write every account's loss per scenario (/pnl/<set>);\n"
          "                          kept on disk beside the output while the run goes\n"
          "                          (4 bytes a scenario and account), not in memory\n"
          "  --save-scenarios        write every set's shocks (/scenarios/<set>/shock)\n"
          "  --mem-limit BYTES       cap the memory the plan uses, 1M at least (K, M, G suffixes)\n"
          "  --threads N             threads of the cpu backend (default: all cores)\n"
          "  --split WHAT            under mpirun: accounts (default) or scenarios\n"
          "  --json                  print the summary as JSON\n"
          "  -q, --quiet             no summary\n"
          "Under mpirun (a build with -DXM_WITH_MPI=ON) the ranks split the accounts (and\n"
          "write the file together) or, with --split scenarios, each set's scenarios (each\n"
          "rank keeps every account's loss tails, rank 0 merges them and writes the file;\n"
          "not with --save-pnl or --save-scenarios): bit for bit one process's results\n"
          "(docs/scaling.md).\n"
          "Exit status: 0 success, 1 run failure, 2 bad input or usage.\n");
}

/* Finds the demo data folder: $XM_DATA_DIR, the source tree's datasets/. */
static const char *xm_run_demo_dir(void) {
  const char *env = getenv("XM_DATA_DIR");
  if (env && *env)
    return env;
  return XM_SOURCE_DIR "/datasets";
}

typedef struct xm_run_top {
  double v;
  int64_t a;
} xm_run_top;

static int xm_run_cmp_top(const void *pa, const void *pb) {
  const xm_run_top *a = pa, *b = pb;
  if (a->v != b->v)
    return a->v > b->v ? -1 : 1;
  return a->a < b->a ? -1 : (a->a > b->a);
}

/* The account's currency code. */
static const char *xm_run_cur(const xm_portfolio *pf, int64_t a) {
  return pf->account_currency ? pf->account_currency[a] : pf->currency;
}

/* What the book holds: positions by instrument type, accounts by currency
 * (up to XM_RUN_CUR_MAX currencies listed). */
#define XM_RUN_CUR_MAX 8
typedef struct xm_run_book {
  int64_t by_type[XM_TYPE_COUNT];
  int ncur;
  const char *cur[XM_RUN_CUR_MAX];
  int64_t cur_accounts[XM_RUN_CUR_MAX];
  int64_t other_accounts; /* in currencies past the list */
} xm_run_book;

static void xm_run_book_of(const xm_portfolio *pf, xm_run_book *bk) {
  memset(bk, 0, sizeof *bk);
  for (int64_t p = 0; p < pf->n_positions; p++) {
    int t = pf->inst_type[pf->pos_instrument[p]];
    if (t >= 0 && t < XM_TYPE_COUNT)
      bk->by_type[t]++;
  }
  for (int64_t a = 0; a < pf->n_accounts; a++) {
    const char *c = xm_run_cur(pf, a);
    int k = 0;
    while (k < bk->ncur && strcmp(bk->cur[k], c))
      k++;
    if (k == bk->ncur && k < XM_RUN_CUR_MAX)
      bk->cur[bk->ncur++] = c;
    if (k < bk->ncur)
      bk->cur_accounts[k]++;
    else
      bk->other_accounts++;
  }
}

/* One account's explanation (METHODOLOGY.md sections 4, 4.1, 6), with what
 * an older result leaves out: the version-2 arrays may be NULL. */
static int xm_run_min_binds(const xm_run_result *r, int64_t a) {
  if (r->minimum_binds)
    return r->minimum_binds[a] != 0;
  return r->minimum[a] > 0 && r->requirement[a] <= r->minimum[a];
}

/* What set the requirement: "minimum" where the minimum binds, else the set
 * whose measure is the unified core. */
static const char *xm_run_binds(const xm_run_result *r, int64_t a) {
  return xm_run_min_binds(r, a) ? "minimum" : r->sets[r->binding[a]].name;
}

/* v[a] or NULL, as JSON. */
static void xm_run_json_num(FILE *f, const char *key, const double *v, int64_t a) {
  fprintf(f, ", \"%s\": ", key);
  if (v)
    fprintf(f, "%.17g", v[a]);
  else
    fprintf(f, "null");
}

/* One entry of the per-account lists of --json: every money value in the
 * account's currency (`currency`; times `to_reporting` in the reporting
 * one), requirement_reporting and call_reporting in the reporting one. */
static void xm_run_json_account(FILE *f, const xm_portfolio *pf, const xm_run_result *r,
                                int64_t a) {
  fprintf(f, "{\"account\": ");
  xm_json_string(f, pf->account_id[a]);
  fprintf(f, ", \"currency\": ");
  xm_json_string(f, xm_run_cur(pf, a));
  fprintf(f, ", \"to_reporting\": %.17g, \"cross_margin\": %s", r->to_reporting[a],
          pf->account_cross_margin[a] ? "true" : "false");
  fprintf(f, ", \"requirement\": %.17g, \"requirement_reporting\": %.17g", r->requirement[a],
          r->to_reporting[a] * r->requirement[a]);
  fprintf(f, ", \"binds\": ");
  xm_json_string(f, xm_run_binds(r, a));
  fprintf(f, ", \"binding_set\": ");
  xm_json_string(f, r->sets[r->binding[a]].name);
  fprintf(f, ", \"minimum_binds\": %s", xm_run_min_binds(r, a) ? "true" : "false");
  xm_run_json_num(f, "minimum", r->minimum, a);
  xm_run_json_num(f, "unified", r->unified, a);
  xm_run_json_num(f, "siloed", r->siloed, a);
  xm_run_json_num(f, "liquidity", r->liquidity, a);
  xm_run_json_num(f, "diversification", r->diversification, a);
  xm_run_json_num(f, "hedge_credit", r->hedge_credit, a);
  xm_run_json_num(f, "collateral_value", r->collateral_value, a);
  xm_run_json_num(f, "collateral", r->collateral, a);
  xm_run_json_num(f, "excess", r->excess, a);
  xm_run_json_num(f, "call", r->call, a);
  xm_run_json_num(f, "call_siloed", r->call_siloed, a);
  fprintf(f, ", \"call_reporting\": ");
  if (r->call)
    fprintf(f, "%.17g", r->to_reporting[a] * r->call[a]);
  else
    fprintf(f, "null");
  fprintf(f, "}");
}

/* ", key: v", or null when the result has no such array. */
static void xm_run_json_total(FILE *f, const char *key, int have, double v) {
  if (have)
    fprintf(f, ", \"%s\": %.17g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* The book's totals, each account's value times to_reporting[a]. */
typedef struct xm_run_totals {
  double req, sil, uni, liq, liq_sil, div, hedge, sil_req;
  double cv, col, call, call_sil;
  int64_t min_binds, called;
} xm_run_totals;

static void xm_run_totals_of(const xm_run_result *r, xm_run_totals *t) {
  memset(t, 0, sizeof *t);
  for (int64_t a = 0; a < r->A; a++) {
    double x = r->to_reporting[a];
    double lq = r->liquidity ? r->liquidity[a] : 0, lqs = 0, rs = 0;
    for (int64_t g = 0; g < r->G; g++) {
      lqs += r->liquidity_by_silo ? r->liquidity_by_silo[a * r->G + g] : 0;
      rs += r->requirement_by_silo ? r->requirement_by_silo[a * r->G + g] : 0;
    }
    t->req += x * r->requirement[a];
    t->sil += x * (r->siloed[a] - lqs);
    t->uni += x * (r->unified[a] - lq);
    t->liq += x * lq;
    t->liq_sil += x * lqs;
    t->div += x * r->diversification[a];
    t->hedge += r->hedge_credit ? x * r->hedge_credit[a] : 0;
    /* what the account would post margined silo by silo: the sum of its
     * silos' requirements (each with its own buffer and minimum); an older
     * result without requirement_by_silo: max(siloed, minimum) */
    t->sil_req += x * (r->requirement_by_silo
                           ? rs
                           : (r->siloed[a] > r->minimum[a] ? r->siloed[a] : r->minimum[a]));
    t->min_binds += xm_run_min_binds(r, a);
    if (r->collateral_value)
      t->cv += x * r->collateral_value[a];
    if (r->collateral)
      t->col += x * r->collateral[a];
    if (r->call) {
      t->call += x * r->call[a];
      t->called += r->call[a] > 0;
    }
    if (r->call_siloed)
      t->call_sil += x * r->call_siloed[a];
  }
}

/* The largest n of key[a] (descending, ties by account order) into top. */
static int64_t xm_run_largest(const xm_run_result *r, const double *key, int positive,
                              xm_run_top *top, int64_t n) {
  int64_t m = 0;
  for (int64_t a = 0; a < r->A; a++)
    if (!positive || key[a] > 0) {
      top[m].v = r->to_reporting[a] * key[a];
      top[m].a = a;
      m++;
    }
  qsort(top, (size_t)m, sizeof *top, xm_run_cmp_top);
  return m < n ? m : n;
}

static void xm_run_summary(FILE *f, int json, const xm_portfolio *pf, const xm_config *cfg,
                           const xm_run_result *r, const char *device, const char *outpath,
                           double t_read, double t_write, double t_total) {
  int64_t A = r->A;
  xm_run_totals t;
  xm_run_totals_of(r, &t);
  double saving = t.sil_req > 0 ? 100.0 * (1.0 - t.req / t.sil_req) : 0.0;
  int coll = r->call && r->call_siloed && r->collateral_value && r->collateral;
  xm_run_top *top = malloc((size_t)(A + 1) * sizeof *top);
  xm_run_top *ctop = coll ? malloc((size_t)(A + 1) * sizeof *ctop) : NULL;
  int64_t ntop = top ? xm_run_largest(r, r->requirement, 0, top, 10) : 0;
  int64_t nctop = ctop ? xm_run_largest(r, r->call, 1, ctop, 10) : 0;
  const char *method = cfg->collateral.method == XM_COLLATERAL_SCENARIO ? "scenario" : "schedule";
  xm_run_book bk;
  xm_run_book_of(pf, &bk);
  if (json) {
    fprintf(f, "{\n  \"output\": ");
    xm_json_string(f, outpath);
    fprintf(f, ",\n  \"device\": ");
    xm_json_string(f, device);
    fprintf(f, ",\n  \"reporting_currency\": ");
    xm_json_string(f, pf->currency);
    fprintf(f, ",\n  \"accounts\": %lld,\n  \"positions\": %lld,\n  \"positions_by_type\": {",
            (long long)A, (long long)pf->n_positions);
    for (int tp = 0, n = 0; tp < XM_TYPE_COUNT; tp++)
      if (bk.by_type[tp])
        fprintf(f, "%s\"%s\": %lld", n++ ? ", " : "", xm_type_name(tp), (long long)bk.by_type[tp]);
    fprintf(f, "},\n  \"accounts_by_currency\": {");
    for (int k = 0; k < bk.ncur; k++) {
      fprintf(f, "%s", k ? ", " : "");
      xm_json_string(f, bk.cur[k]);
      fprintf(f, ": %lld", (long long)bk.cur_accounts[k]);
    }
    fprintf(f,
            "},\n  \"rule\": {\"offset_cap\": %.17g, \"buffer\": %.17g, \"minimum_per_contract\": "
            "%.17g, \"collateral_method\": \"%s\"},\n",
            cfg->cross_margin.offset_cap, cfg->apc.buffer, cfg->minimum.per_contract, method);
    fprintf(f, "  \"totals\": {\"currency\": ");
    xm_json_string(f, pf->currency);
    fprintf(f, ", \"siloed_core\": %.17g, \"unified_core\": %.17g", t.sil, t.uni);
    xm_run_json_total(f, "liquidity", r->liquidity != NULL, t.liq);
    xm_run_json_total(f, "liquidity_siloed", r->liquidity_by_silo != NULL, t.liq_sil);
    fprintf(f, ", \"diversification\": %.17g", t.div);
    xm_run_json_total(f, "hedge_credit", r->hedge_credit != NULL, t.hedge);
    fprintf(f,
            ", \"siloed_requirement\": %.17g, \"requirement\": %.17g, \"saving_pct\": %.17g, "
            "\"minimum_binds\": %lld",
            t.sil_req, t.req, saving, (long long)t.min_binds);
    if (coll)
      fprintf(f,
              ", \"collateral_value\": %.17g, \"collateral\": %.17g, \"call\": %.17g, "
              "\"call_siloed\": %.17g, \"collateral_freed\": %.17g, \"accounts_called\": %lld",
              t.cv, t.col, t.call, t.call_sil, t.call_sil - t.call, (long long)t.called);
    else
      fprintf(f, ", \"collateral_value\": null, \"collateral\": null, \"call\": null, "
                 "\"call_siloed\": null, \"collateral_freed\": null, \"accounts_called\": null");
    fprintf(f, "},\n");
    fprintf(f,
            "  \"plan\": {\"blocks\": %lld, \"tile\": %lld, \"shocks_resident\": %s, "
            "\"budget_bytes\": %llu, \"planned_bytes\": %llu, \"sets_host_bytes\": %llu},\n",
            (long long)r->n_blocks, (long long)r->tile, r->shocks_resident ? "true" : "false",
            (unsigned long long)r->mem_budget, (unsigned long long)r->mem_planned,
            (unsigned long long)r->sets_host_bytes);
    fprintf(f, "  \"sets\": [");
    for (int64_t x = 0; x < r->K; x++) {
      fprintf(f, "%s{\"name\": ", x ? ", " : "");
      xm_json_string(f, r->sets[x].name);
      fprintf(f, ", \"scenarios\": %lld, \"measure\": \"%s\", \"confidence\": %.17g}",
              (long long)r->sets[x].S, xm_measure_name(r->sets[x].measure), r->sets[x].confidence);
    }
    fprintf(f, "],\n  \"largest\": [");
    for (int64_t i = 0; i < ntop; i++) {
      fprintf(f, "%s", i ? ",\n    " : "\n    ");
      xm_run_json_account(f, pf, r, top[i].a);
    }
    fprintf(f, "],\n  \"largest_calls\": ");
    if (coll) {
      fprintf(f, "[");
      for (int64_t i = 0; i < nctop; i++) {
        fprintf(f, "%s", i ? ",\n    " : "\n    ");
        xm_run_json_account(f, pf, r, ctop[i].a);
      }
      fprintf(f, "]");
    } else {
      fprintf(f, "null");
    }
    fprintf(f,
            ",\n  \"seconds\": {\"read\": %.6f, \"prepare\": %.6f, \"scenarios\": %.6f, "
            "\"evaluate\": %.6f, \"write\": %.6f, \"total\": %.6f}\n}\n",
            t_read, r->t_prepare, r->t_scenarios, r->t_evaluate, t_write, t_total);
  } else {
    fprintf(f, "xmargin: %lld accounts, %lld positions, %lld sets on %s\n", (long long)A,
            (long long)pf->n_positions, (long long)r->K, device);
    fprintf(f, "  positions by type:");
    for (int tp = 0, n = 0; tp < XM_TYPE_COUNT; tp++)
      if (bk.by_type[tp])
        fprintf(f, "%s %s %lld", n++ ? "," : "", xm_type_name(tp), (long long)bk.by_type[tp]);
    fprintf(f, "\n  accounts by currency:");
    for (int k = 0; k < bk.ncur; k++)
      fprintf(f, "%s %s %lld", k ? "," : "", bk.cur[k], (long long)bk.cur_accounts[k]);
    if (bk.other_accounts)
      fprintf(f, ", other %lld", (long long)bk.other_accounts);
    fprintf(f, " (reporting currency %s)\n", pf->currency);
    for (int64_t x = 0; x < r->K; x++)
      fprintf(f, "  set %-22s %8lld scenarios  %-5s\n", r->sets[x].name, (long long)r->sets[x].S,
              xm_measure_name(r->sets[x].measure));
    fprintf(f,
            "  requirement: max((1 + buffer %g) x cross-margined, minimum); not cross-margined: "
            "the sum of its silos' own\n"
            "  minimum: %g %s a unit of option (|q| x multiplier); hedge credit: %g%% of the "
            "diversification\n",
            cfg->apc.buffer, cfg->minimum.per_contract, pf->currency,
            100.0 * cfg->cross_margin.offset_cap);
    int multi = bk.ncur > 1 || (bk.ncur == 1 && strcmp(bk.cur[0], pf->currency));
    const char *cu = pf->currency;
    fprintf(f, "\n  totals in %s%s\n", cu,
            multi ? " (each account's at today's rate of its currency)" : "");
    fprintf(f, "  %-42s %20.2f %s\n", "siloed requirement (sum)", t.sil_req, cu);
    fprintf(f, "  %-42s %20.2f %s\n", "unified core (sum)", t.uni, cu);
    if (r->liquidity) {
      fprintf(f, "  %-42s %20.2f %s\n", "liquidity add-on, unified (sum)", t.liq, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "liquidity add-on, silo by silo (sum)", t.liq_sil, cu);
    }
    fprintf(f, "  %-42s %20.2f %s\n", "diversification (sum)", t.div, cu);
    if (r->hedge_credit)
      fprintf(f, "  %-42s %20.2f %s\n", "hedge credit (sum)", t.hedge, cu);
    fprintf(f, "  %-42s %20.2f %s\n", "cross-margined requirement (sum)", t.req, cu);
    fprintf(f, "  %-42s %19.2f%%\n", "saving from cross-margining", saving);
    fprintf(f, "  %-42s %20lld of %lld\n", "accounts where the minimum binds",
            (long long)t.min_binds, (long long)A);
    if (coll) {
      fprintf(f, "\n  collateral (method %s), in %s\n", method, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "collateral at today's value (sum)", t.cv, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "collateral after haircuts and limits (sum)", t.col, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "margin call, unified pools (sum)", t.call, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "margin call, siloed pools (sum)", t.call_sil, cu);
      fprintf(f, "  %-42s %20.2f %s\n", "collateral freed by a unified framework",
              t.call_sil - t.call, cu);
      fprintf(f, "  %-42s %20lld of %lld\n", "accounts with a margin call", (long long)t.called,
              (long long)A);
    }
    fprintf(f,
            "\n  largest requirements (in %s; binding: the set that sets the core, or "
            "\"minimum\"):\n",
            cu);
    for (int64_t i = 0; i < ntop; i++) {
      int64_t a = top[i].a;
      double x = r->to_reporting[a];
      const char *c = xm_run_cur(pf, a);
      char own[64] = "", more[256] = "";
      if (strcmp(c, pf->currency))
        snprintf(own, sizeof own, "  (%.6g %s)", r->requirement[a], c);
      int at = 0;
      if (r->liquidity)
        at += snprintf(more + at, sizeof more - (size_t)at, "  add-on %.2f", x * r->liquidity[a]);
      if (r->hedge_credit && at >= 0 && (size_t)at < sizeof more)
        at += snprintf(more + at, sizeof more - (size_t)at, "  hedge credit %.2f",
                       x * r->hedge_credit[a]);
      if (coll && at >= 0 && (size_t)at < sizeof more)
        snprintf(more + at, sizeof more - (size_t)at, "  call %.2f", x * r->call[a]);
      fprintf(f, "  %3lld. %-24s %18.2f  binding: %-*s%s%s\n", (long long)(i + 1),
              pf->account_id[a], top[i].v, more[0] || own[0] ? 20 : 0, xm_run_binds(r, a), more,
              own);
    }
    if (coll && nctop > 0) {
      fprintf(f, "\n  largest margin calls (in %s):\n", cu);
      for (int64_t i = 0; i < nctop; i++) {
        int64_t a = ctop[i].a;
        double x = r->to_reporting[a];
        fprintf(f, "  %3lld. %-24s %18.2f  if siloed %.2f  collateral %.2f  requirement %.2f\n",
                (long long)(i + 1), pf->account_id[a], ctop[i].v, x * r->call_siloed[a],
                x * r->collateral[a], x * r->requirement[a]);
      }
    }
    fprintf(f,
            "\n  time: read %.3fs, prepare %.3fs, scenarios %.3fs, revalue+reduce %.3fs, write "
            "%.3fs, total %.3fs\n",
            t_read, r->t_prepare, r->t_scenarios, r->t_evaluate, t_write, t_total);
    fprintf(f,
            "  plan: %lld account block%s, %lld scenarios a tile, shocks %s; buffers %.1f of "
            "%.1f MiB\n",
            (long long)r->n_blocks, r->n_blocks == 1 ? "" : "s", (long long)r->tile,
            r->shocks_resident ? "made once" : "made again per tile (memory)",
            (double)r->mem_planned / 1048576.0, (double)r->mem_budget / 1048576.0);
    fprintf(f, "  results: %s\n", outpath);
  }
  free(ctop);
  free(top);
}

int xm_cli_run(int argc, char **argv) {
  xm_cli_job j;
  memset(&j, 0, sizeof j);
  j.cmd = "xmargin run";
  int save_pnl = 0, split_scenarios = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm_run_usage(stdout);
      return XM_EXIT_OK;
    }
    int took = xm_cli_job_option(&j, argc, argv, &i);
    if (took < 0)
      return XM_EXIT_USAGE;
    if (took)
      continue;
    if (strcmp(a, "--save-pnl") == 0) {
      save_pnl = 1;
      continue;
    }
    if (strcmp(a, "--split") == 0) {
      const char *v = i + 1 < argc ? argv[++i] : "";
      if (strcmp(v, "accounts") != 0 && strcmp(v, "scenarios") != 0) {
        fprintf(stderr, "xmargin run: --split takes accounts or scenarios, not '%s'\n", v);
        return XM_EXIT_USAGE;
      }
      split_scenarios = strcmp(v, "scenarios") == 0;
      continue;
    }
    fprintf(stderr, "xmargin run: unknown argument '%s' (see xmargin run --help)\n", a);
    return XM_EXIT_USAGE;
  }
  static char demo_p[4096], demo_s[4096];
  if (!j.portfolio && !j.scenarios) {
    snprintf(demo_p, sizeof demo_p, "%s/demo-portfolio.h5", xm_run_demo_dir());
    snprintf(demo_s, sizeof demo_s, "%s/demo-scenarios.h5", xm_run_demo_dir());
    j.portfolio = demo_p;
    j.scenarios = demo_s;
    if (!j.output)
      j.output = "xmargin-demo.h5";
  } else if (!j.portfolio || !j.scenarios) {
    fprintf(stderr, "xmargin run: give both --portfolio and --scenarios (or neither for the "
                    "demo)\n");
    return XM_EXIT_USAGE;
  }
  if (!j.output)
    j.output = "xmargin-results.h5";
  if (split_scenarios && (save_pnl || j.save_scenarios)) {
    fprintf(stderr, "xmargin run: --split scenarios keeps every account's loss tails only, not "
                    "its losses or the shocks: not with --save-pnl or --save-scenarios\n");
    return XM_EXIT_USAGE;
  }

  /* Under mpirun (an XM_WITH_MPI build) every rank runs its accounts, rank 0
   * gathers the rows and every rank writes its part of the file; each step's
   * exit status is every rank's (cli_procs.c). */
  const xm_cli_procs *procs = xm_cli_procs_get();
  char cmd[96];
  xm_cli_procs_job(&j, cmd, sizeof cmd);
  xm_cli_inputs in;
  xm_run_result res;
  memset(&res, 0, sizeof res);
  int rc = xm_cli_procs_agree(xm_cli_job_open(&j, &in));
  if (rc >= 0)
    goto cleanup;
  int64_t a0 = 0, a1 = 0;
  int by_scen = split_scenarios && procs->size > 1;
  if (procs->size > 1 && !by_scen)
    xm_cli_procs_accounts(&in.pf, &a0, &a1);
  xm_run_opts eo = {save_pnl, j.save_scenarios, xm_cli_progress_for(&j), NULL, a0, a1, 0, 0, NULL};
  /* One process: the losses stream to a nameless file in the output's
   * folder (a job's ranks each keep their accounts' columns in memory). */
  char pdir[4096] = ".";
  const char *sl = strrchr(j.output, '/');
  if (sl)
    snprintf(pdir, sizeof pdir, "%.*s", sl == j.output ? 1 : (int)(sl - j.output), j.output);
  if (save_pnl && procs->size == 1)
    eo.pnl_dir = pdir;
  xm_status st = by_scen ? xm_cli_procs_run_scenarios(&j, &in, &eo, &res)
                         : xm_run(in.ctx, &in.pf, &in.sf, &in.cfg, &eo, &res);
  if ((rc = xm_cli_procs_ran(&j, &in, st, res.notes)) >= 0)
    goto cleanup;
  if (by_scen) { /* rank 0 holds the whole result and writes the file alone */
    double t_w0 = xm_now();
    xm_run_meta meta = xm_cli_job_meta(&j, &in);
    st = procs->rank == 0 ? xm_run_result_write(j.output, &in.pf, &in.cfg, &res, &meta, &in.diag)
                          : XM_OK;
    if ((rc = xm_cli_procs_wrote(&j, &in, st)) >= 0)
      goto cleanup;
    if (!j.quiet)
      xm_run_summary(stdout, j.json, &in.pf, &in.cfg, &res, in.device, j.output, in.t_read,
                     xm_now() - t_w0, xm_now() - in.t_start);
    rc = XM_EXIT_OK;
    goto cleanup;
  }
  xm_cli_procs_fault("gather");
  char err[256];
  int64_t p0 = res.account_begin, pn = res.A; /* this rank's /pnl columns */
  int gathered = xm_cli_procs_gather(&in.pf, &res, err, sizeof err);
  if ((rc = xm_cli_procs_gathered(&j, gathered, err)) >= 0)
    goto cleanup;

  /* The results file: every rank takes part (cli_procs.c). */
  double t_w0 = xm_now();
  xm_run_meta meta = xm_cli_job_meta(&j, &in);
  st = xm_cli_procs_write(j.output, &in.pf, &in.cfg, &res, &meta, p0, pn, &in.diag);
  if ((rc = xm_cli_procs_wrote(&j, &in, st)) >= 0)
    goto cleanup;
  double t_write = xm_now() - t_w0;
  if (!j.quiet)
    xm_run_summary(stdout, j.json, &in.pf, &in.cfg, &res, in.device, j.output, in.t_read, t_write,
                   xm_now() - in.t_start);
  rc = XM_EXIT_OK;
cleanup:
  xm_run_result_free(&res);
  xm_cli_inputs_free(&in);
  return rc;
}
