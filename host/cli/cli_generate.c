/* xmargin generate: writes a synthetic portfolio and scenario file of any
 * size (datasets/generator/), deterministic for a seed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "xm_generate.h"

static void xm__gen_usage(FILE *f) {
  fprintf(f,
          "usage: xmargin generate --accounts A --instruments I --positions N\n"
          "                        [--factors F] [--history-days T] [--seed S]\n"
          "                        [--collateral none|mixed|siloed] [-q] -o PREFIX\n\n"
          "Writes PREFIX-portfolio.h5 and PREFIX-scenarios.h5 (FORMAT.md): a synthetic\n"
          "book built from the demo book's account templates (index option market makers\n"
          "delta-hedged with futures, ETF-vs-futures basis, covered writers, protective\n"
          "puts, short strangles, crypto spot vs CME futures vs crypto options, commodity\n"
          "option books, unhedged directional, multi-asset, coin-margined Deribit-style\n"
          "books; about 12%% of the accounts not cross-margin eligible) over F factors in\n"
          "three silos (securities, futures, crypto), with American ETF and stock\n"
          "options, linear and inverse perpetuals, inverse futures and options settled in\n"
          "the coin, Euro Stoxx 50 futures and options in EUR (/fx: the coins, EURUSD),\n"
          "T days of correlated daily history and the ready-made sets\n"
          "`stress` (worst) and `span_grid` (weighted). Every price factor has a\n"
          "half_spread, impact and adv (the liquidity add-on, METHODOLOGY 4.1) and a\n"
          "haircut and collateral_limit (METHODOLOGY 6): the demo's figures for the\n"
          "demo's markets, values drawn by asset class for the others. The same\n"
          "arguments give the same files on any machine.\n\n"
          "options:\n"
          "  --accounts A        accounts (>= 1)\n"
          "  --instruments I     instruments, exactly (at least the products of F factors\n"
          "                      and a put and a call per option class: %lld for F = %d)\n"
          "  --positions N       positions, exactly (>= A); an account holds N/A on average,\n"
          "                      market makers more, directional accounts fewer\n"
          "  --factors F         risk factors, %d .. %d (default %d)\n"
          "  --history-days T    days of /history, %d .. %d (default %d)\n"
          "  --seed S            seed of every random draw (default %d)\n"
          "  --collateral MODE   the /collateral table (default none): 'mixed' gives each\n"
          "                      account one or two holdings per silo it trades in (cash\n"
          "                      in its currency, ETF or stock units, EUR, coins: BTC\n"
          "                      also against futures), worth about its margin, about 1\n"
          "                      in 10 posted to no silo (for collateral.method =\n"
          "                      schedule); 'siloed': the same holdings, each posted to\n"
          "                      its silo (valid under both methods)\n"
          "  -o, --output PREFIX the two files' common prefix\n"
          "  -q, --quiet         no summary\n\n"
          "Exit status: 0 success, 1 failure (memory, writing), 2 bad arguments.\n",
          (long long)xm_gen_min_instruments(XM_GEN_DEFAULT_FACTORS), XM_GEN_DEFAULT_FACTORS,
          XM_GEN_MIN_FACTORS, XM_GEN_MAX_FACTORS, XM_GEN_DEFAULT_FACTORS, XM_GEN_MIN_DAYS,
          XM_GEN_MAX_DAYS, XM_GEN_DEFAULT_DAYS, XM_GEN_DEFAULT_SEED);
}

/* A non-negative decimal integer, the whole string. */
static int xm__gen_int(const char *opt, const char *s, int64_t *out) {
  const char *p = s;
  if (!p || !*p)
    goto bad;
  uint64_t v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      goto bad;
    if (v > (UINT64_MAX - 9) / 10)
      goto bad;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v > (uint64_t)INT64_MAX)
    goto bad;
  *out = (int64_t)v;
  return 1;
bad:
  fprintf(stderr, "xmargin generate: %s needs a non-negative integer, not '%s'\n", opt, s ? s : "");
  return 0;
}

static void xm__gen_size(char *buf, size_t cap, const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    snprintf(buf, cap, "?");
  else if (sb.st_size >= (1 << 20))
    snprintf(buf, cap, "%.1f MiB", (double)sb.st_size / (double)(1 << 20));
  else
    snprintf(buf, cap, "%.1f KiB", (double)sb.st_size / 1024.0);
}

int xm_cli_generate(int argc, char **argv) {
  xm_gen_params p;
  xm_gen_defaults(&p);
  int have_a = 0, have_i = 0, have_n = 0, quiet = 0;
  const char *prefix = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      xm__gen_usage(stdout);
      return XM_EXIT_OK;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    char name[32];
    if (eq) {
      size_t len = (size_t)(eq - a);
      if (len >= sizeof name)
        len = sizeof name - 1;
      memcpy(name, a, len);
      name[len] = '\0';
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
    if (strcmp(name, "-q") == 0 || strcmp(name, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    static const char *const with_value[] = {"--accounts", "--instruments",  "--positions",
                                             "--factors",  "--history-days", "--seed",
                                             "-o",         "--output",       "--collateral"};
    int known = 0;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
      known |= strcmp(name, with_value[k]) == 0;
    if (!known) {
      fprintf(stderr, "xmargin generate: unknown argument '%s' (see xmargin generate --help)\n", a);
      return XM_EXIT_USAGE;
    }
    if (!val) {
      if (i + 1 >= argc) {
        fprintf(stderr, "xmargin generate: %s needs a value\n", name);
        return XM_EXIT_USAGE;
      }
      val = argv[++i];
    }
    int64_t v = 0;
    if (strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0) {
      if (!*val) {
        fprintf(stderr, "xmargin generate: %s needs a file name prefix\n", name);
        return XM_EXIT_USAGE;
      }
      prefix = val;
    } else if (strcmp(name, "--collateral") == 0) {
      int m = xm_gen_collateral_mode(val);
      if (m < 0) {
        fprintf(stderr, "xmargin generate: --collateral must be none, mixed or siloed, not '%s'\n",
                val);
        return XM_EXIT_USAGE;
      }
      p.collateral = m;
    } else if (strcmp(name, "--seed") == 0) {
      char *end = NULL;
      errno = 0;
      unsigned long long s = strtoull(val, &end, 10);
      if (!*val || *end || errno || val[0] == '-' || val[0] == '+' || val[0] == ' ') {
        fprintf(stderr,
                "xmargin generate: --seed needs a non-negative integer below 2^64, not "
                "'%s'\n",
                val);
        return XM_EXIT_USAGE;
      }
      p.seed = (uint64_t)s;
    } else {
      if (!xm__gen_int(name, val, &v))
        return XM_EXIT_USAGE;
      if (strcmp(name, "--accounts") == 0)
        p.accounts = v, have_a = 1;
      else if (strcmp(name, "--instruments") == 0)
        p.instruments = v, have_i = 1;
      else if (strcmp(name, "--positions") == 0)
        p.positions = v, have_n = 1;
      else if (strcmp(name, "--factors") == 0)
        p.factors = v;
      else
        p.history_days = v;
    }
  }
  if (!have_a || !have_i || !have_n || !prefix) {
    fprintf(stderr, "xmargin generate: missing %s (see xmargin generate --help)\n",
            !have_a   ? "--accounts"
            : !have_i ? "--instruments"
            : !have_n ? "--positions"
                      : "-o PREFIX");
    return XM_EXIT_USAGE;
  }
  char err[512];
  if (xm_gen_check(&p, err, sizeof err) != XM_OK) {
    fprintf(stderr, "xmargin generate: %s\n", err);
    return XM_EXIT_USAGE;
  }
  size_t plen = strlen(prefix) + 32;
  char *port_path = malloc(plen), *scen_path = malloc(plen);
  if (!port_path || !scen_path) {
    free(port_path);
    free(scen_path);
    fprintf(stderr, "xmargin generate: out of memory\n");
    return XM_EXIT_FAIL;
  }
  snprintf(port_path, plen, "%s-portfolio.h5", prefix);
  snprintf(scen_path, plen, "%s-scenarios.h5", prefix);
  {
    char why[1024];
    if (xm_output_check(port_path, NULL, 0, why, sizeof why) != XM_OK ||
        xm_output_check(scen_path, NULL, 0, why, sizeof why) != XM_OK) {
      fprintf(stderr, "xmargin generate: -o: %s\n", why);
      free(port_path);
      free(scen_path);
      return XM_EXIT_USAGE;
    }
  }

  double t0 = xm_now();
  xm_portfolio port;
  xm_scenario_file scen;
  xm_gen_stats stats;
  xm_status st = xm_generate(&p, &port, &scen, &stats);
  if (st != XM_OK) {
    fprintf(stderr, "xmargin generate: %s\n",
            st == XM_ENOMEM ? "out of memory (try fewer instruments, positions or factors)"
                            : xm_strerror(st));
    free(port_path);
    free(scen_path);
    return st == XM_EINVAL ? XM_EXIT_USAGE : XM_EXIT_FAIL;
  }
  double t1 = xm_now();
  xm_diag diag = {0};
  st = xm_portfolio_write(port_path, &port, &diag);
  if (st == XM_OK)
    st = xm_scenarios_write(scen_path, &scen, &diag);
  double t2 = xm_now();
  int rc = XM_EXIT_OK;
  if (st != XM_OK) {
    xm_diag_print(&diag, stderr);
    fprintf(stderr, "xmargin generate: cannot write the files: %s\n", xm_strerror(st));
    rc = XM_EXIT_FAIL;
  } else if (!quiet) {
    int64_t types[XM_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < port.n_instruments; i++)
      types[port.inst_type[i]]++;
    int64_t kinds[XM_FACTOR_KIND_COUNT] = {0};
    for (int64_t f = 0; f < port.n_factors; f++)
      kinds[port.factor_kind[f]]++;
    char ps[32], ss[32];
    xm__gen_size(ps, sizeof ps, port_path);
    xm__gen_size(ss, sizeof ss, scen_path);
    printf("xmargin generate: seed %llu, valuation date %s\n", (unsigned long long)p.seed,
           port.valuation_date);
    printf("  factors      %10lld  (price %lld, vol %lld) over %lld underlyings: %lld index, "
           "%lld stock, %lld commodity, %lld crypto\n",
           (long long)port.n_factors, (long long)kinds[0], (long long)kinds[1],
           (long long)stats.underlyings, (long long)stats.by_class[0], (long long)stats.by_class[1],
           (long long)stats.by_class[2], (long long)stats.by_class[3]);
    printf("  instruments  %10lld  (%lld option classes; %.1f%% held)\n",
           (long long)port.n_instruments, (long long)stats.option_classes,
           100.0 * (double)stats.held_instruments / (double)port.n_instruments);
    for (int t = 0; t < XM_TYPE_COUNT; t++)
      if (types[t])
        printf("    %-22s %lld\n", xm_type_name(t), (long long)types[t]);
    printf("  accounts     %10lld  (cross-margin eligible %lld; %lld in a coin: ",
           (long long)port.n_accounts, (long long)(port.n_accounts - stats.non_cross),
           (long long)stats.coin_accounts);
    printf("currencies %s", port.currency);
    for (int64_t c = 0; c < port.n_fx; c++)
      printf(", %s = %s", port.fx_currency[c], port.factor_name[port.fx_factor[c]]);
    printf(")\n");
    for (int t = 0; t < XM_GEN_T_COUNT; t++)
      if (stats.by_template[t])
        printf("    %-22s %lld\n", xm_gen_template_name(t), (long long)stats.by_template[t]);
    printf("  positions    %10lld  (%.1f per account, at most %lld)\n", (long long)port.n_positions,
           (double)port.n_positions / (double)port.n_accounts,
           (long long)stats.max_account_positions);
    if (p.collateral != XM_GEN_COLLATERAL_NONE)
      printf("  collateral   %10lld  holdings (%s) of %lld accounts: %lld cash, %lld posted to no "
             "silo\n",
             (long long)port.n_collateral, xm_gen_collateral_name(p.collateral),
             (long long)stats.collateral_accounts, (long long)stats.collateral_cash,
             (long long)stats.collateral_unposted);
    printf("  history      %10lld days, %s .. %s\n", (long long)scen.n_days, scen.hist_date[0],
           scen.hist_date[scen.n_days - 1]);
    for (int64_t k = 0; k < scen.n_sets; k++)
      printf("  set          %-10s S=%lld%s\n", scen.sets[k].name,
             (long long)scen.sets[k].n_scenarios, scen.sets[k].weight ? ", weighted" : "");
    printf("  wrote %s (%s), %s (%s)\n", port_path, ps, scen_path, ss);
    printf("  %.2f s (generate %.2f s, write %.2f s)\n", t2 - t0, t1 - t0, t2 - t1);
  }
  xm_diag_free(&diag);
  xm_gen_free(&port, &scen);
  free(port_path);
  free(scen_path);
  return rc;
}
