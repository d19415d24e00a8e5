/* xmargin validate: checks portfolio and scenario files against the data
 * contract (FORMAT.md) and prints a one-screen summary of each. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define XM__CLI_LIST_MAX 12 /* silos / sets listed before "... and N more" */

static void xm__cli_validate_usage(FILE *f) {
  fprintf(f, "usage: xmargin validate FILE...\n\n"
             "Checks each portfolio (format \"xmargin.portfolio\") or scenario file\n"
             "(format \"xmargin.scenarios\") against the data contract (FORMAT.md) and\n"
             "prints a summary of it, or every violation with its dataset, row and rule.\n"
             "The kind of each file comes from its root attribute `format`.\n\n"
             "Exit status: 0 all files valid, 2 a file is invalid or unreadable,\n"
             "1 another failure (out of memory).\n");
}

/* "name n, name n, ..." over a table's values (the counts of each). */
static void xm__cli_counts(const char *(*name)(int), const int64_t *count, int n) {
  for (int v = 0; v < n; v++)
    printf("%s%s %lld", v ? ", " : "", name(v), (long long)count[v]);
}

static void xm__cli_portfolio_summary(const char *path, int version, const xm_portfolio *p) {
  int64_t kinds[XM_FACTOR_KIND_COUNT] = {0}, types[XM_TYPE_COUNT] = {0}, eligible = 0;
  for (int64_t i = 0; i < p->n_factors; i++)
    if (xm_factor_kind_name(p->factor_kind[i]))
      kinds[p->factor_kind[i]]++;
  for (int64_t i = 0; i < p->n_instruments; i++)
    if (xm_type_name(p->inst_type[i]))
      types[p->inst_type[i]]++;
  for (int64_t i = 0; i < p->n_accounts; i++)
    eligible += p->account_cross_margin[i] == 1;
  printf("%s: valid xmargin.portfolio (format_version %d)\n", path, version);
  printf("  valuation date  %s   currency %s\n", p->valuation_date, p->currency);
  printf("  factors      %8lld  (", (long long)p->n_factors);
  xm__cli_counts(xm_factor_kind_name, kinds, XM_FACTOR_KIND_COUNT);
  printf(")\n  instruments  %8lld  (", (long long)p->n_instruments);
  xm__cli_counts(xm_type_name, types, XM_TYPE_COUNT);
  printf(")\n");
  printf("  silos        %8lld\n", (long long)p->n_silos);
  for (int64_t g = 0; g < p->n_silos && g < XM__CLI_LIST_MAX; g++) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->n_instruments; i++)
      n += p->inst_silo[i] == g;
    printf("    %-24s %lld instruments\n", p->silo_name[g], (long long)n);
  }
  if (p->n_silos > XM__CLI_LIST_MAX)
    printf("    ... and %lld more silos\n", (long long)(p->n_silos - XM__CLI_LIST_MAX));
  printf("  accounts     %8lld  (cross-margin eligible %lld)\n", (long long)p->n_accounts,
         (long long)eligible);
  if (p->n_fx > 0) {
    printf("  fx           %8lld  (", (long long)p->n_fx);
    for (int64_t c = 0; c < p->n_fx && c < XM__CLI_LIST_MAX; c++)
      printf("%s%s", c ? ", " : "", p->fx_currency[c]);
    if (p->n_fx > XM__CLI_LIST_MAX)
      printf(", ... and %lld more", (long long)(p->n_fx - XM__CLI_LIST_MAX));
    printf(")\n");
  }
  if (p->n_collateral > 0)
    printf("  collateral   %8lld  holdings\n", (long long)p->n_collateral);
  printf("  positions    %8lld\n", (long long)p->n_positions);
}

static void xm__cli_scenarios_summary(const char *path, int version, const xm_scenario_file *s) {
  printf("%s: valid xmargin.scenarios (format_version %d)\n", path, version);
  if (s->n_days > 0)
    printf("  history      %8lld days, %s .. %s, %lld factors\n", (long long)s->n_days,
           s->hist_date[0], s->hist_date[s->n_days - 1], (long long)s->n_hfactors);
  else
    printf("  history      none\n");
  printf("  sets         %8lld\n", (long long)s->n_sets);
  for (int64_t k = 0; k < s->n_sets && k < XM__CLI_LIST_MAX; k++) {
    const xm_scenario_set *set = &s->sets[k];
    char conf[48] = "";
    if (set->measure != XM_MEASURE_WORST) {
      if (isnan(set->confidence))
        snprintf(conf, sizeof conf, " confidence (run's)");
      else
        snprintf(conf, sizeof conf, " confidence %g", set->confidence);
    }
    printf("    %-24s S=%lld F_s=%lld measure %s%s, %s\n", set->name, (long long)set->n_scenarios,
           (long long)set->n_factors,
           xm_measure_name(set->measure) ? xm_measure_name(set->measure) : "?", conf,
           set->weight ? "weighted" : "unweighted");
  }
  if (s->n_sets > XM__CLI_LIST_MAX)
    printf("    ... and %lld more sets\n", (long long)(s->n_sets - XM__CLI_LIST_MAX));
}

/* Validates one file; returns the CLI exit status for it. */
static int xm__cli_validate_one(const char *path) {
  xm_diag d = {0};
  char fmt[128];
  int rc = XM_EXIT_OK, version = 0;
  xm_status st = xm_file_kind(path, fmt, sizeof fmt, &version, &d);
  if (st == XM_OK && strcmp(fmt, "xmargin.portfolio") == 0) {
    xm_portfolio p;
    st = xm_portfolio_read(path, &p, &d);
    if (st == XM_OK)
      xm__cli_portfolio_summary(path, version, &p);
    xm_portfolio_free(&p);
  } else if (st == XM_OK && strcmp(fmt, "xmargin.scenarios") == 0) {
    xm_scenario_file s;
    st = xm_scenarios_read(path, &s, &d);
    if (st == XM_OK)
      xm__cli_scenarios_summary(path, version, &s);
    xm_scenarios_free(&s);
  } else if (st == XM_OK) {
    if (fmt[0] == '\0')
      xm_diag_add(&d,
                  "%s: /: attribute format is missing or not a string: cannot tell the kind of "
                  "file (must be \"xmargin.portfolio\" or \"xmargin.scenarios\")",
                  path);
    else
      xm_diag_add(&d,
                  "%s: /: attribute format = '%.64s': validate checks \"xmargin.portfolio\" and "
                  "\"xmargin.scenarios\" files",
                  path, fmt);
    st = XM_EFORMAT;
  }
  if (st != XM_OK) {
    fprintf(stderr, "%s: INVALID (%s)\n", path, xm_strerror(st));
    xm_diag_print(&d, stderr);
    /* an unreadable or non-HDF5 file is bad input too */
    rc = st == XM_EIO ? XM_EXIT_USAGE : xm_cli_exit_status(st);
  }
  xm_diag_free(&d);
  return rc;
}

int xm_cli_validate(int argc, char **argv) {
  int nfiles = 0, opts = 1;
  for (int i = 1; i < argc; i++) {
    if (opts && strcmp(argv[i], "--") == 0) {
      opts = 0;
    } else if (opts && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
      xm__cli_validate_usage(stdout);
      return XM_EXIT_OK;
    } else if (opts && argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "xmargin validate: unknown option '%s'\n\n", argv[i]);
      xm__cli_validate_usage(stderr);
      return XM_EXIT_USAGE;
    } else {
      nfiles++;
    }
  }
  if (nfiles == 0) {
    xm__cli_validate_usage(stderr);
    return XM_EXIT_USAGE;
  }
  int rc = XM_EXIT_OK;
  opts = 1;
  for (int i = 1; i < argc; i++) {
    if (opts && strcmp(argv[i], "--") == 0) {
      opts = 0;
      continue;
    }
    int one = xm__cli_validate_one(argv[i]);
    if (one > rc)
      rc = one;
  }
  return rc;
}
