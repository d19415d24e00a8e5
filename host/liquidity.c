/* The host side of the liquidity and concentration add-on (METHODOLOGY.md
 * section 4.1): which rows move which price factors (their slots), and for
 * each (account, component) the exposures it nets, so that the device
 * computes the delta-notionals of every row once (xm_sens_row: 2 XM_NSLOT
 * revaluations a row, not 2F full scenarios) and sums them per account
 * (xm_liquidity_account). Owns nothing past the block it fills. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"

xm_status xm__liquidity_params(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets,
                               double **fpar) {
  int64_t F = sets->F;
  int any = 0;
  *fpar = NULL;
  for (int64_t f = 0; f < F; f++) {
    int64_t pf_row = sets->used[f];
    any |= (pf->factor_half_spread && pf->factor_half_spread[pf_row] > 0.0) ||
           (pf->factor_impact && pf->factor_impact[pf_row] > 0.0);
  }
  if (!any)
    return XM_OK;
  double *p = calloc((size_t)(3 * F + 1), sizeof *p);
  if (!p)
    return xm__fail(ctx, XM_ENOMEM, "liquidity parameters of %lld factors", (long long)F);
  for (int64_t f = 0; f < F; f++) {
    int64_t r = sets->used[f];
    p[f] = pf->factor_half_spread ? pf->factor_half_spread[r] : 0.0;
    p[F + f] = pf->factor_impact ? pf->factor_impact[r] : 0.0;
    p[2 * F + f] = pf->factor_adv ? pf->factor_adv[r] : 0.0;
  }
  *fpar = p;
  return XM_OK;
}

void xm__liquidity_shocks(double sx[2 * XM_NSLOT * XM_SENS_COLS],
                          double sex[2 * XM_NSLOT * XM_SENS_COLS]) {
  for (int e = 0; e < 2 * XM_NSLOT * XM_SENS_COLS; e++)
    sx[e] = 0.0;
  for (int j = 0; j < XM_NSLOT; j++) {
    sx[2 * j * XM_SENS_COLS + j] = -XM_LQ_U;
    sx[(2 * j + 1) * XM_SENS_COLS + j] = XM_LQ_U;
  }
  for (int e = 0; e < 2 * XM_NSLOT * XM_SENS_COLS; e++)
    sex[e] = exp(sx[e]);
}

/* One contribution: a shock column and position << XM_SLOT_BITS | slot. */
typedef struct xm__contrib {
  int f, c;
} xm__contrib;

static int xm__cmp_contrib(const void *pa, const void *pb) {
  const xm__contrib *a = pa, *b = pb;
  if (a->f != b->f)
    return a->f < b->f ? -1 : 1;
  return a->c < b->c ? -1 : (a->c > b->c);
}

/* The slot of shock column c among a row's cols[0 .. *ns), added when new;
 * -1 for no column. */
static int xm__slot(int *cols, int *ns, int c) {
  if (c < 0)
    return -1;
  for (int k = 0; k < *ns; k++)
    if (cols[k] == c)
      return k;
  cols[*ns] = c;
  return (*ns)++;
}

xm_status xm__liquidity_block(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets, int G,
                              const double *fpar, xm__block *bk) {
  int64_t n = bk->n_inst, na = bk->na, np = bk->pos_start[na], F = sets->F;
  if (np > (INT32_MAX >> XM_SLOT_BITS) / 2)
    return xm__fail(ctx, XM_ERESOURCE,
                    "a block of %lld positions is too large for the liquidity add-on's int "
                    "indices: lower --mem-limit so that the plan cuts smaller blocks",
                    (long long)np);
  /* rows: slot j is shock column slot[j * n + i] (-1: none); insti_s the
   * same row with its columns renumbered to the slots */
  int *slot = malloc((size_t)(XM_NSLOT * n + 1) * sizeof *slot);
  xm__contrib *buf = malloc((size_t)(XM_NSLOT * np + 1) * sizeof *buf);
  bk->insti_s = malloc((size_t)(XM_NI * n + 1) * sizeof(int));
  bk->lq_start = calloc((size_t)(na * (G + 1) + 1), sizeof(int));
  bk->lq_fac = malloc((size_t)(XM_NSLOT * np * 2 + 1) * sizeof(int));
  bk->lq_cstart = malloc((size_t)(XM_NSLOT * np * 2 + 2) * sizeof(int));
  bk->lq_contrib = malloc((size_t)(XM_NSLOT * np * 2 + 1) * sizeof(int));
  bk->xb = malloc((size_t)(na + 1) * sizeof(double));
  if (!slot || !buf || !bk->insti_s || !bk->lq_start || !bk->lq_fac || !bk->lq_cstart ||
      !bk->lq_contrib || !bk->xb) {
    free(slot);
    free(buf);
    return xm__fail(ctx, XM_ENOMEM, "liquidity arrays of a block of %lld positions", (long long)np);
  }
  memcpy(bk->insti_s, bk->insti, (size_t)(XM_NI * n) * sizeof(int));
  for (int64_t i = 0; i < n; i++) {
    int cols[XM_NSLOT], ns = 0;
    int vol = bk->insti[XM_II_VOL * n + i];
    xm__slot(cols, &ns, bk->insti[XM_II_UND * n + i]);
    int lc = xm__slot(cols, &ns, bk->insti[XM_II_FXC * n + i]);
    int lb = xm__slot(cols, &ns, bk->insti[XM_II_FXB * n + i]);
    for (int j = 0; j < XM_NSLOT; j++)
      slot[j * n + i] = j < ns ? cols[j] : -1;
    bk->insti_s[XM_II_UND * n + i] = 0;
    bk->insti_s[XM_II_FXC * n + i] = lc;
    bk->insti_s[XM_II_FXB * n + i] = lb;
    bk->insti_s[XM_II_VOL * n + i] = vol >= 0 ? XM_SLOT_VOL : -1;
  }
  /* per (account, component): its contributions on factors with a spread or
   * an impact, sorted by factor; a run of one factor is one exposure */
  int64_t ne = 0, nt = 0;
  for (int64_t a = 0; a < na; a++) {
    bk->xb[a] = xm__fx_level(pf, xm__acct_fx(pf, bk->a0 + a));
    for (int c = 0; c <= G; c++) {
      int64_t m = 0;
      for (int q = bk->pos_start[a]; q < bk->pos_start[a + 1]; q++) {
        if (c > 0 && bk->pos_silo[q] != c - 1)
          continue;
        for (int j = 0; j < XM_NSLOT; j++) {
          int f = slot[j * n + bk->pos_inst[q]];
          if (f >= 0 && (fpar[f] > 0.0 || fpar[F + f] > 0.0))
            buf[m++] = (xm__contrib){f, q << XM_SLOT_BITS | j};
        }
      }
      qsort(buf, (size_t)m, sizeof *buf, xm__cmp_contrib);
      for (int64_t t = 0; t < m; t++) {
        if (t == 0 || buf[t].f != buf[t - 1].f) {
          bk->lq_fac[ne] = buf[t].f;
          bk->lq_cstart[ne++] = (int)nt;
        }
        bk->lq_contrib[nt++] = buf[t].c;
      }
      bk->lq_start[a * (G + 1) + c + 1] = (int)ne;
    }
  }
  bk->lq_cstart[ne] = (int)nt;
  bk->n_exp = ne;
  bk->n_contrib = nt;
  free(slot);
  free(buf);
  return XM_OK;
}
