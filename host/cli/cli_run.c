/* xmargin run: the main job. Reads a portfolio and a scenario file, runs every
 * scenario set on the chosen device, writes the results file atomically and
 * prints a summary (or JSON). With no arguments: the shipped demo files. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void xm_run_usage(FILE *f) {
  fprintf(f,
          "usage: xmargin run [--portfolio P.h5 --scenarios S.h5] [-o OUT.h5] [options]\n\n"
          "Computes every account's siloed, unified and cross-margined requirement over the\n"
          "historical, Monte Carlo and ready-made scenario sets (METHODOLOGY.md) and writes\n"
          "the results file (FORMAT.md section 3). With no --portfolio/--scenarios it runs the\n"
          "shipped demo files (datasets/) and writes xmargin-demo.h5 in the current folder.\n\n"
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
          "  --save-pnl              write every account's loss per scenario (/pnl/<set>)\n"
          "  --save-scenarios        write every set's shocks (/scenarios/<set>/shock)\n"
          "  --mem-limit BYTES       cap the memory the plan uses, 1M at least (K, M, G suffixes)\n"
          "  --threads N             threads of the cpu backend (default: all cores)\n"
          "  --json                  print the summary as JSON\n"
          "  -q, --quiet             no summary\n"
          "Exit status: 0 success, 1 run failure, 2 bad input or usage.\n");
}

/* The largest --mem-limit: 1 PiB, more than any one device or host has. */
#define XM_RUN_MEM_LIMIT_MAX ((uint64_t)1 << 50)
/* Most threads the cpu backend takes. */
#define XM_RUN_THREADS_MAX 4096

static int xm_run_parse_bytes(const char *s, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !(v > 0) || !isfinite(v))
    return 0;
  double m = 1;
  if (*end == 'K' || *end == 'k')
    m = 1024.0, end++;
  else if (*end == 'M' || *end == 'm')
    m = 1048576.0, end++;
  else if (*end == 'G' || *end == 'g')
    m = 1073741824.0, end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end || v * m > (double)XM_RUN_MEM_LIMIT_MAX || v * m < 1.0)
    return 0;
  *out = (uint64_t)(v * m);
  return 1;
}

/* A whole number in [lo, hi], all of s (no sign, space or suffix). */
static int xm_run_parse_int(const char *s, long lo, long hi, int *out) {
  char *end = NULL;
  errno = 0;
  if (!s || s[0] < '0' || s[0] > '9')
    return 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return 0;
  *out = (int)v;
  return 1;
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

static void xm_run_summary(FILE *f, int json, const xm_portfolio *pf, const xm_run_result *r,
                           const char *device, const char *outpath, double t_read, double t_write,
                           double t_total) {
  /* the book's totals in the reporting currency: each account's at today's rate */
  double sum_req = 0, sum_sil = 0, sum_uni = 0, sum_sil_req = 0, sum_div = 0;
  int64_t A = r->A;
  xm_run_top *top = malloc((size_t)(A + 1) * sizeof *top);
  for (int64_t a = 0; a < A; a++) {
    double x = r->to_reporting[a];
    sum_req += x * r->requirement[a];
    sum_sil += x * r->siloed[a];
    sum_uni += x * r->unified[a];
    sum_div += x * r->diversification[a];
    sum_sil_req += x * (r->siloed[a] > r->minimum[a] ? r->siloed[a] : r->minimum[a]);
    if (top) {
      top[a].v = x * r->requirement[a];
      top[a].a = a;
    }
  }
  double saving = sum_sil_req > 0 ? 100.0 * (1.0 - sum_req / sum_sil_req) : 0.0;
  int64_t ntop = A < 10 ? A : 10;
  if (top)
    qsort(top, (size_t)A, sizeof *top, xm_run_cmp_top);
  else
    ntop = 0;
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
    for (int t = 0, n = 0; t < XM_TYPE_COUNT; t++)
      if (bk.by_type[t])
        fprintf(f, "%s\"%s\": %lld", n++ ? ", " : "", xm_type_name(t), (long long)bk.by_type[t]);
    fprintf(f, "},\n  \"accounts_by_currency\": {");
    for (int k = 0; k < bk.ncur; k++) {
      fprintf(f, "%s", k ? ", " : "");
      xm_json_string(f, bk.cur[k]);
      fprintf(f, ": %lld", (long long)bk.cur_accounts[k]);
    }
    fprintf(f,
            "},\n  \"totals\": {\"siloed_core\": "
            "%.17g, \"unified_core\": %.17g, \"diversification\": %.17g, "
            "\"siloed_requirement\": %.17g, \"requirement\": %.17g, \"saving_pct\": %.17g},\n",
            sum_sil, sum_uni, sum_div, sum_sil_req, sum_req, saving);
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
      int64_t a = top[i].a;
      fprintf(f, "%s{\"account\": ", i ? ", " : "");
      xm_json_string(f, pf->account_id[a]);
      fprintf(f, ", \"requirement\": %.17g, \"currency\": ", r->requirement[a]);
      xm_json_string(f, xm_run_cur(pf, a));
      fprintf(f, ", \"requirement_reporting\": %.17g, \"binding_set\": ", top[i].v);
      xm_json_string(f, r->sets[r->binding[a]].name);
      fprintf(f, "}");
    }
    fprintf(f,
            "],\n  \"seconds\": {\"read\": %.6f, \"prepare\": %.6f, \"scenarios\": %.6f, "
            "\"evaluate\": %.6f, \"write\": %.6f, \"total\": %.6f}\n}\n",
            t_read, r->t_prepare, r->t_scenarios, r->t_evaluate, t_write, t_total);
  } else {
    fprintf(f, "xmargin: %lld accounts, %lld positions, %lld sets on %s\n", (long long)A,
            (long long)pf->n_positions, (long long)r->K, device);
    fprintf(f, "  positions by type:");
    for (int t = 0, n = 0; t < XM_TYPE_COUNT; t++)
      if (bk.by_type[t])
        fprintf(f, "%s %s %lld", n++ ? "," : "", xm_type_name(t), (long long)bk.by_type[t]);
    fprintf(f, "\n  accounts by currency:");
    for (int k = 0; k < bk.ncur; k++)
      fprintf(f, "%s %s %lld", k ? "," : "", bk.cur[k], (long long)bk.cur_accounts[k]);
    if (bk.other_accounts)
      fprintf(f, ", other %lld", (long long)bk.other_accounts);
    fprintf(f, " (reporting currency %s)\n", pf->currency);
    for (int64_t x = 0; x < r->K; x++)
      fprintf(f, "  set %-22s %8lld scenarios  %-5s\n", r->sets[x].name, (long long)r->sets[x].S,
              xm_measure_name(r->sets[x].measure));
    int multi = bk.ncur > 1 || (bk.ncur == 1 && strcmp(bk.cur[0], pf->currency));
    fprintf(f, "\n  totals in %s%s\n", pf->currency,
            multi ? " (each account's at today's rate of its currency)" : "");
    fprintf(f, "  %-34s %20.2f\n", "siloed requirement (sum)", sum_sil_req);
    fprintf(f, "  %-34s %20.2f\n", "unified core (sum)", sum_uni);
    fprintf(f, "  %-34s %20.2f\n", "diversification (sum)", sum_div);
    fprintf(f, "  %-34s %20.2f\n", "cross-margined requirement (sum)", sum_req);
    fprintf(f, "  %-34s %19.2f%%\n", "saving from cross-margining", saving);
    fprintf(f, "\n  largest requirements (in %s):\n", pf->currency);
    for (int64_t i = 0; i < ntop; i++) {
      int64_t a = top[i].a;
      const char *c = xm_run_cur(pf, a);
      char own[64] = "";
      if (strcmp(c, pf->currency))
        snprintf(own, sizeof own, "  (%.6g %s)", r->requirement[a], c);
      fprintf(f, "  %3lld. %-24s %18.2f%s  binding: %s\n", (long long)(i + 1), pf->account_id[a],
              top[i].v, own, r->sets[r->binding[a]].name);
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
  free(top);
}

/* A progress bar on stderr (only when stderr is a terminal). */
static void xm_run_progress(void *arg, int64_t done, int64_t total, const char *set) {
  (void)arg;
  int width = 30, fill = total > 0 ? (int)(width * done / total) : width;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r  [%s] %3d%%  %-24.24s", bar, total > 0 ? (int)(100 * done / total) : 100,
          set);
  if (done >= total)
    fprintf(stderr, "\r%*s\r", width + 40, "");
  fflush(stderr);
}

int xm_cli_run(int argc, char **argv) {
  const char *portfolio = NULL, *scenarios = NULL, *output = NULL, *config = NULL;
  const char *device = NULL, *precision = NULL;
  const char *sets[64];
  int nsets = 0, save_pnl = 0, save_scen = 0, json = 0, quiet = 0, threads = 0;
  uint64_t mem_limit = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
#define XM_ARG(name, var)                                                                          \
  if (strcmp(a, name) == 0) {                                                                      \
    if (i + 1 >= argc) {                                                                           \
      fprintf(stderr, "xmargin run: %s needs a value\n", name);                                    \
      return XM_EXIT_USAGE;                                                                        \
    }                                                                                              \
    var = argv[++i];                                                                               \
    continue;                                                                                      \
  }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm_run_usage(stdout);
      return XM_EXIT_OK;
    }
    XM_ARG("--portfolio", portfolio)
    XM_ARG("--scenarios", scenarios)
    XM_ARG("-o", output)
    XM_ARG("--output", output)
    XM_ARG("--config", config)
    XM_ARG("--device", device)
    XM_ARG("--precision", precision)
    if (strcmp(a, "--set") == 0) {
      if (i + 1 >= argc || nsets >= 64) {
        fprintf(stderr, "xmargin run: --set needs KEY=VALUE (at most 64)\n");
        return XM_EXIT_USAGE;
      }
      sets[nsets++] = argv[++i];
      continue;
    }
    if (strcmp(a, "--mem-limit") == 0) {
      if (i + 1 >= argc || !xm_run_parse_bytes(argv[++i], &mem_limit) || mem_limit < (1u << 20)) {
        fprintf(stderr, "xmargin run: --mem-limit needs a size such as 64M (1M to 1P)%s%s\n",
                i < argc ? ", not " : "", i < argc ? argv[i] : "");
        return XM_EXIT_USAGE;
      }
      continue;
    }
    if (strcmp(a, "--threads") == 0) {
      if (i + 1 >= argc || !xm_run_parse_int(argv[++i], 1, XM_RUN_THREADS_MAX, &threads)) {
        fprintf(stderr, "xmargin run: --threads needs a whole number from 1 to %d%s%s\n",
                XM_RUN_THREADS_MAX, i < argc ? ", not " : "", i < argc ? argv[i] : "");
        return XM_EXIT_USAGE;
      }
      continue;
    }
    if (strcmp(a, "--save-pnl") == 0) {
      save_pnl = 1;
      continue;
    }
    if (strcmp(a, "--save-scenarios") == 0) {
      save_scen = 1;
      continue;
    }
    if (strcmp(a, "--json") == 0) {
      json = 1;
      continue;
    }
    if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
#undef XM_ARG
    fprintf(stderr, "xmargin run: unknown argument '%s' (see xmargin run --help)\n", a);
    return XM_EXIT_USAGE;
  }
  static char demo_p[4096], demo_s[4096];
  if (!portfolio && !scenarios) {
    snprintf(demo_p, sizeof demo_p, "%s/demo-portfolio.h5", xm_run_demo_dir());
    snprintf(demo_s, sizeof demo_s, "%s/demo-scenarios.h5", xm_run_demo_dir());
    portfolio = demo_p;
    scenarios = demo_s;
    if (!output)
      output = "xmargin-demo.h5";
  } else if (!portfolio || !scenarios) {
    fprintf(stderr, "xmargin run: give both --portfolio and --scenarios (or neither for the "
                    "demo)\n");
    return XM_EXIT_USAGE;
  }
  if (!output)
    output = "xmargin-results.h5";
  /* Fail before the work, not after it: the output must be writable and none
   * of the inputs; every input path must name a regular file. */
  {
    const char *inputs[3] = {portfolio, scenarios, config};
    char why[1024];
    if (xm_output_check(output, inputs, 3, why, sizeof why) != XM_OK) {
      fprintf(stderr, "xmargin run: -o: %s\n", why);
      return XM_EXIT_USAGE;
    }
    for (int i = 0; i < 3; i++)
      if (inputs[i] && (!inputs[i][0] || strlen(inputs[i]) >= XM_PATH_MAX)) {
        fprintf(stderr, "xmargin run: %s: a file name of %zu bytes (1 to %d)\n",
                i == 0   ? "--portfolio"
                : i == 1 ? "--scenarios"
                         : "--config",
                strlen(inputs[i]), XM_PATH_MAX - 1);
        return XM_EXIT_USAGE;
      }
  }

  int rc = XM_EXIT_FAIL;
  char err[1024] = "";
  xm_config cfg;
  xm_config_default(&cfg);
  xm_portfolio pf;
  xm_scenario_file sf;
  xm_run_result res;
  xm_diag diag;
  xm_ctx *ctx = NULL;
  memset(&pf, 0, sizeof pf);
  memset(&sf, 0, sizeof sf);
  memset(&res, 0, sizeof res);
  memset(&diag, 0, sizeof diag);
  xm_status st = XM_OK;
  double t_start = xm_now();

  if (config && (st = xm_config_load(&cfg, config, err, sizeof err)) != XM_OK) {
    fprintf(stderr, "xmargin run: %s\n", err);
    rc = XM_EXIT_USAGE;
    goto cleanup;
  }
  for (int i = 0; i < nsets; i++) {
    char key[256];
    const char *eq = strchr(sets[i], '=');
    if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof key) {
      fprintf(stderr, "xmargin run: --set '%s': expected KEY=VALUE\n", sets[i]);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
    memcpy(key, sets[i], (size_t)(eq - sets[i]));
    key[eq - sets[i]] = '\0';
    if ((st = xm_config_set(&cfg, key, eq + 1, err, sizeof err)) != XM_OK) {
      fprintf(stderr, "xmargin run: --set %s\n", err);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
  }
  if (precision && (st = xm_config_set(&cfg, "precision", precision, err, sizeof err)) != XM_OK) {
    fprintf(stderr, "xmargin run: --precision: %s\n", err);
    rc = XM_EXIT_USAGE;
    goto cleanup;
  }
  if ((st = xm_portfolio_read(portfolio, &pf, &diag)) != XM_OK ||
      (st = xm_scenarios_read(scenarios, &sf, &diag)) != XM_OK) {
    xm_diag_print(&diag, stderr);
    if (diag.total == 0)
      fprintf(stderr, "xmargin run: %s\n", xm_strerror(st));
    rc = st == XM_ENOMEM ? XM_EXIT_FAIL : XM_EXIT_USAGE;
    goto cleanup;
  }
  double t_read = xm_now() - t_start;

  xm_options opt;
  xm_options_default(&opt);
  opt.device = device;
  xm_options_from_env(&opt);
  opt.mem_limit = mem_limit;
  opt.threads = threads;
  st = xm_ctx_create(&ctx, &opt);
  if (st != XM_OK) {
    fprintf(stderr, "xmargin run: %s: %s\n", xm_strerror(st), xm_ctx_last_error(ctx));
    rc = xm_cli_exit_status(st);
    goto cleanup;
  }
  if (strstr(xm_ctx_choice(ctx), "after failing")) /* auto left a failing device: always say so */
    fprintf(stderr, "xmargin: warning: %s\n", xm_ctx_choice(ctx));
  else if (!quiet && !json)
    fprintf(stderr, "xmargin: %s\n", xm_ctx_choice(ctx));
  xm_run_opts eo = {save_pnl, save_scen, NULL, NULL};
  if (!quiet && !json && isatty(STDERR_FILENO))
    eo.progress = xm_run_progress;
  st = xm_run(ctx, &pf, &sf, &cfg, &eo, &res);
  if (st != XM_OK) {
    fprintf(stderr, "xmargin run: %s: %s\n", xm_strerror(st), xm_ctx_last_error(ctx));
    rc = xm_cli_exit_status(st);
    goto cleanup;
  }
  /* The run's remarks; its warnings (a device left for the cpu backend) also
   * under -q. */
  for (const char *line = res.notes; *line;) {
    const char *end = strchr(line, '\n');
    int len = end ? (int)(end - line) : (int)strlen(line);
    if (!quiet || strncmp(line, "warning:", 8) == 0)
      fprintf(stderr, "%s%.*s\n", strncmp(line, "warning:", 8) == 0 ? "xmargin: " : "", len, line);
    line += len + (end ? 1 : 0);
  }

  /* The results file. */
  double t_w0 = xm_now();
  char devdesc[512];
  const xm_device_info *dv = xm_ctx_device(ctx);
  snprintf(devdesc, sizeof devdesc, "%s: %s [%s]", dv->backend == XM_BACKEND_CPU ? "cpu" : "opencl",
           dv->name, dv->platform);
  xm_run_meta meta = {portfolio, scenarios, devdesc, NULL, xm_now() - t_start};
  st = xm_run_result_write(output, &pf, &cfg, &res, &meta, &diag);
  if (st != XM_OK) {
    xm_diag_print(&diag, stderr);
    fprintf(stderr, "xmargin run: cannot write %s: %s\n", output, xm_strerror(st));
    goto cleanup;
  }
  double t_write = xm_now() - t_w0;
  if (!quiet)
    xm_run_summary(stdout, json, &pf, &res, devdesc, output, t_read, t_write, xm_now() - t_start);
  rc = XM_EXIT_OK;
cleanup:
  xm_ctx_destroy(ctx);
  xm_run_result_free(&res);
  xm_diag_free(&diag);
  xm_scenarios_free(&sf);
  xm_portfolio_free(&pf);
  return rc;
}
