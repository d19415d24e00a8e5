/* xmargin backtest (METHODOLOGY.md section 7): today's book held static, the
 * margins of every backtest day from the history up to that day, the
 * realised loss of the h days after it, and the statistics of
 * host/backtest_stats.c per account, silo, margin and for the book. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_backtest.h"
#include "xm_engine.h"
#include "xm_internal.h"

const char *xm_bt_margin_name(int margin) {
  static const char *const names[] = {
#define XM__BT_MARGIN_NAME(NAME, name) name,
      XM_BT_MARGIN_MAP(XM__BT_MARGIN_NAME)
#undef XM__BT_MARGIN_NAME
  };
  return margin >= 0 && margin < XM_BT_NMARGIN ? names[margin] : NULL;
}

const char *xm_bt_zone_name(int zone) { return xm__zone_name(zone); }

static void xm__free_strings(char **s, int64_t n) {
  for (int64_t i = 0; s && i < n; i++)
    free(s[i]);
  free(s);
}

void xm_backtest_result_free(xm_backtest_result *r) {
  if (!r)
    return;
  xm__free_strings(r->day, r->N);
  xm__free_strings(r->realised_end, r->N);
  xm__free_strings(r->set, r->K);
  xm__free_strings(r->factor, r->F);
  free(r->test_day);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    free(r->margin[m]);
    free(r->total_margin[m]);
    free(r->stats[m]);
  }
  free(r->realised);
  free(r->silo_margin);
  free(r->realised_by_silo);
  free(r->binding);
  free(r->total_realised);
  free(r->silo_stats);
  free(r->to_reporting);
  for (int64_t x = 0; x < r->K; x++) {
    if (r->shock)
      free(r->shock[x]);
    if (r->delta)
      free(r->delta[x]);
  }
  free(r->shock);
  free(r->shock_S);
  free(r->delta);
  memset(r, 0, sizeof *r);
}

xm_status xm_backtest(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                      const xm_config *cfg, const xm_run_opts *opts, xm_backtest_result *out) {
  (void)pf;
  (void)sf;
  (void)cfg;
  (void)opts;
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  /* work in progress (this commit only): the driver follows */
  return xm__fail(ctx, XM_EINTERNAL, "xmargin backtest: not implemented yet");
}
