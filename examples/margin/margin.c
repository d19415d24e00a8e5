/* The smallest program that computes a book's margin through libxmargin's
 * public API: read the two input files, run every scenario set on the cpu
 * backend (or XM_DEVICE), print each account's requirement (in its currency)
 * and the book's total (in the reporting currency). Built in CI against an installed library, by
 * pkg-config and by CMake:
 *
 *   cc margin.c $(pkg-config --cflags --libs xmargin) -o margin
 *   ./margin PORTFOLIO.h5 SCENARIOS.h5
 */
#include <stdio.h>
#include <string.h>

#include <xmargin.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORTFOLIO.h5 SCENARIOS.h5\n", argv[0]);
    return 2;
  }
  int rc = 1;
  xm_portfolio pf;
  xm_scenario_file sf;
  xm_run_result res;
  xm_diag diag;
  xm_ctx *ctx = NULL;
  memset(&pf, 0, sizeof pf);
  memset(&sf, 0, sizeof sf);
  memset(&res, 0, sizeof res);
  memset(&diag, 0, sizeof diag);

  xm_status st = xm_portfolio_read(argv[1], &pf, &diag);
  if (st == XM_OK)
    st = xm_scenarios_read(argv[2], &sf, &diag);
  if (st != XM_OK) {
    xm_diag_print(&diag, stderr); /* file, dataset, row and rule */
    rc = 2;
    goto cleanup;
  }
  xm_options opt;
  xm_options_default(&opt);
  opt.device = "cpu";
  xm_options_from_env(&opt); /* XM_DEVICE, if set, does not override "cpu" */
  if ((st = xm_ctx_create(&ctx, &opt)) != XM_OK) {
    fprintf(stderr, "%s: %s\n", xm_strerror(st), xm_ctx_last_error(ctx));
    goto cleanup;
  }
  xm_config cfg;
  xm_config_default(&cfg); /* METHODOLOGY.md's defaults */
  if ((st = xm_run(ctx, &pf, &sf, &cfg, NULL, &res)) != XM_OK) {
    fprintf(stderr, "%s: %s\n", xm_strerror(st), xm_ctx_last_error(ctx));
    goto cleanup;
  }
  /* Each requirement is in its account's currency; the book's total adds
   * them at today's rate of each currency (to_reporting) in the reporting one. */
  double total = 0.0;
  for (int64_t a = 0; a < res.A; a++) {
    const char *cur = pf.account_currency ? pf.account_currency[a] : pf.currency;
    printf("%-16s %.6f %s\n", pf.account_id[a], res.requirement[a], cur);
    total += res.to_reporting[a] * res.requirement[a];
  }
  printf("total %.6f %s\n", total, pf.currency);
  rc = 0;
cleanup:
  xm_run_result_free(&res);
  xm_ctx_destroy(ctx);
  xm_diag_free(&diag);
  xm_scenarios_free(&sf);
  xm_portfolio_free(&pf);
  return rc;
}
