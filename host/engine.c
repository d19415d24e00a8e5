/* The engine: the loop nest of a run, written once (as BLIS's frame/ owns
 * its loops and its kernels do one thing). The scenario sets
 * (host/scenarios.c) and the plan (host/plan.c) are made first; then, on the
 * context's backend,
 *
 *   for each set whose shocks stay on the device: make them (draw or upload, exp)
 *   for each account block:  upload its arrays; today's values
 *     for each set:  for each tile of scenarios:
 *                      (make the tile's shocks when they do not stay)
 *                      revalue the tile; aggregate it into L
 *                    reduce the set (measures, attribution)
 *     combine the block's sets; download its results
 *
 * and the per-account results are collected. The engine never knows which
 * backend runs: it asks the backend table for buffers and steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"
#include "xm_io.h"
#include "xm_reduce.h"

#include "xm_price_host.h"

void xm_run_result_free(xm_run_result *r) {
  if (!r)
    return;
  for (int64_t x = 0; r->sets && x < r->K; x++) {
    xm_run_set *s = &r->sets[x];
    for (int64_t i = 0; s->labels && i < s->S; i++)
      free(s->labels[i]);
    free(s->labels);
    free(s->shock);
    free(s->pnl);
    free(s->name);
  }
  free(r->sets);
  xm__spool_close(r->pnl_spool);
  for (int64_t f = 0; r->factor && f < r->F; f++)
    free(r->factor[f]);
  free(r->factor);
  free(r->requirement);
  free(r->unified);
  free(r->siloed);
  free(r->diversification);
  free(r->minimum);
  free(r->by_set);
  free(r->by_silo);
  free(r->attribution);
  free(r->binding);
  free(r->to_reporting);
  double *more[] = {
      r->liquidity,      r->liquidity_by_silo, r->requirement_by_silo, r->hedge_credit,
      r->cross_margined, r->collateral_value,  r->collateral,          r->excess,
      r->call,           r->call_siloed};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
    free(more[i]);
  free(r->minimum_binds);
  memset(r, 0, sizeof *r);
}

/* ---- the loop ---- */

/* The device buffers of a run, released in reverse by xm__loop_release. */
typedef struct xm__loop {
  xm__mem *X, *EX;       /* [n_groups]: resident shocks */
  xm__mem sx, sex, fpar; /* the liquidity add-on's shock rows and factor parameters */
  xm__mem Xt, EXt;       /* one tile's shocks when they do not stay */
  xm__dwork w;           /* w.W: every set's weights, one after the other */
  xm__dblock db;
  xm__dblock dd; /* an incremental run's trades (xm__increment.delta) */
  xm__mem Lb;    /* ... and the kept losses they are added to */
  double *Lhost; /* --save-pnl: L's account rows (a chunk's or a group's), [na x rows] */
  float *Ph;     /* ... and a set's part of it, [rows x na] float32 (to the spool) */
  double *Th;    /* a scenario split's tails of a block, on the host */
} xm__loop;

static void xm__rel(xm_ctx *ctx, xm__mem *m) {
  if (*m)
    ctx->be->release(ctx, *m);
  *m = NULL;
}

static void xm__block_release(xm_ctx *ctx, xm__dblock *d) {
  xm__mem *m[] = {&d->xb,    &d->lq_contrib, &d->lq_cstart, &d->lq_fac, &d->lq_start,
                  &d->sens,  &d->insti_s,    &d->instd_s,   &d->cross,  &d->pqty,
                  &d->psilo, &d->pinst,      &d->start,     &d->insti,  &d->instd};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    xm__rel(ctx, m[i]);
}

static void xm__loop_release(xm_ctx *ctx, xm__loop *lp, int64_t n_groups) {
  xm__block_release(ctx, &lp->db);
  xm__block_release(ctx, &lp->dd);
  xm__mem *m[] = {&lp->w.T,    &lp->Lb,     &lp->w.lq,   &lp->w.out_silo, &lp->w.out_acct,
                  &lp->w.tail, &lp->w.attr, &lp->w.silo, &lp->w.by,       &lp->w.L,
                  &lp->w.ell,  &lp->EXt,    &lp->Xt,     &lp->fpar,       &lp->sex,
                  &lp->sx,     &lp->w.W};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    xm__rel(ctx, m[i]);
  for (int64_t g = n_groups - 1; g >= 0; g--) {
    if (lp->EX)
      xm__rel(ctx, &lp->EX[g]);
    if (lp->X)
      xm__rel(ctx, &lp->X[g]);
  }
  free(lp->EX);
  free(lp->X);
  free(lp->Lhost);
  free(lp->Ph);
  free(lp->Th);
}

/* --save-pnl: the account losses of a group's rows c0 .. c0 + len, which L
 * holds (a chunk's, or the group's), into each set's [S x A] rows: in
 * memory (out->pnl), or through a float32 block of the set's part to the
 * spool (out->spool). */
static xm_status xm__pnl_out(xm_ctx *ctx, const xm__dset *ds, int nds, const xm__block *bk,
                             int64_t A, int64_t c0, int64_t len, xm__loop *lp,
                             const xm__outputs *out) {
  const xm_layout *lay = &lp->w.lay;
  int64_t na = bk->na;
  if (na == 0 || len == 0)
    return XM_OK;
  /* component 0's rows alone (the backends' layouts: ss = 1), [na x len] */
  xm_status st =
      lay->ss != 1
          ? xm__fail(ctx, XM_EINTERNAL, "--save-pnl: L's rows are strided")
          : ctx->be->download_rows(ctx, lp->Lhost, lp->w.L, 0, (size_t)len * sizeof(double),
                                   (size_t)lay->ca * sizeof(double), (size_t)na);
  for (int j = 0; j < nds && st == XM_OK; j++) {
    int64_t r0 = ds[j].row > c0 ? ds[j].row : c0;
    int64_t r1 = ds[j].row + ds[j].S < c0 + len ? ds[j].row + ds[j].S : c0 + len;
    if (r1 <= r0)
      continue;
    float *P = out->pnl ? out->pnl[ds[j].x] : NULL;
    for (int64_t r = r0; r < r1; r++) {
      const double *src = lp->Lhost + (r - c0);
      float *dst = P ? P + (r - ds[j].row) * A + bk->a0 : lp->Ph + (r - r0) * na;
      for (int64_t a = 0; a < na; a++)
        dst[a] = (float)src[a * len];
    }
    if (!P)
      st = xm__spool_put(ctx, out->spool, ds[j].x, r0 - ds[j].row, r1 - r0, bk->a0, na, lp->Ph);
  }
  return st;
}

/* Shocks of scenarios s0 .. s0 + ns of set x into rows r0 .. r0 + ns of X
 * and EX: drawn on the device (Monte Carlo) or copied from the host, then exp. */
static xm_status xm__make_shocks(xm_ctx *ctx, const xm_config *cfg, const xm__sets *sets,
                                 const xm__plan *plan, int64_t x, int64_t s0, int64_t ns,
                                 int64_t r0, xm__mem X, xm__mem EX) {
  const xm__set *set = &sets->set[x];
  int64_t F = sets->F;
  if (set->is_mc) {
    xm__mc_args a = {cfg->montecarlo.seed,
                     cfg->montecarlo.distribution == XM_DIST_STUDENT_T,
                     cfg->montecarlo.dof,
                     (double)cfg->horizon_days,
                     F,
                     set->chol,
                     set->name};
    return ctx->be->mc(ctx, &a, set->s_base + s0, ns, r0, plan->mc_temp, X, EX);
  }
  xm_status st = ctx->be->upload(ctx, X, (size_t)(r0 * F) * sizeof(double), set->X + s0 * F,
                                 (size_t)(ns * F) * sizeof(double));
  return st != XM_OK ? st : ctx->be->exp_shocks(ctx, r0 * F, ns * F, X, EX);
}

/* Keeps scenarios s0 .. s0 + ns of a Monte Carlo set, rows r0 .. of X, on the host. */
static xm_status xm__keep_shocks(xm_ctx *ctx, xm__set *set, int64_t F, int64_t s0, int64_t ns,
                                 int64_t r0, xm__mem X) {
  if (!set->X && !(set->X = malloc((size_t)(set->S * F + 1) * sizeof(double))))
    return xm__fail(ctx, XM_ENOMEM, "Monte Carlo shocks of %s (--save-scenarios)", set->name);
  return ctx->be->download(ctx, set->X + s0 * F, X, (size_t)(r0 * F) * sizeof(double),
                           (size_t)(ns * F) * sizeof(double));
}

/* The shocks of rows t0 .. t0 + ns of group g into rows 0 .. ns of X / EX:
 * the part of each of its sets that the rows cover. */
static xm_status xm__group_shocks(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets,
                                  const xm__plan *plan, const xm__group *g, int64_t t0, int64_t ns,
                                  int keep_mc, xm__mem X, xm__mem EX) {
  xm_status st = XM_OK;
  for (int64_t x = g->x0; x < g->x1 && st == XM_OK; x++) {
    xm__set *set = &sets->set[x];
    int64_t lo = plan->row[x] > t0 ? plan->row[x] : t0;
    int64_t hi = plan->row[x] + set->S < t0 + ns ? plan->row[x] + set->S : t0 + ns;
    if (set->S == 0 || hi <= lo)
      continue;
    st = xm__make_shocks(ctx, cfg, sets, plan, x, lo - plan->row[x], hi - lo, lo - t0, X, EX);
    if (st == XM_OK && keep_mc && set->is_mc)
      st = xm__keep_shocks(ctx, set, sets->F, lo - plan->row[x], hi - lo, lo - t0, X);
  }
  return st;
}

/* Group g's shocks for the whole run into *X, *EX. A group of one host set
 * is a view of it. On a device, the host sets' rows go over in one transfer
 * (the Monte Carlo rows, 0 there, drawn after); on the host's memory each
 * set is copied to its rows. */
static xm_status xm__group_resident(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets,
                                    const xm__plan *plan, int64_t g, int keep_mc, xm__mem *X,
                                    xm__mem *EX) {
  const xm__backend *be = ctx->be;
  const xm__group *gr = &plan->groups[g];
  const xm__set *one = gr->x1 - gr->x0 == 1 ? &sets->set[gr->x0] : NULL;
  int64_t F = sets->F;
  size_t bytes = (size_t)(gr->S * F) * sizeof(double);
  xm_status st = XM_OK;
  if (one && !one->is_mc) {
    if ((st = be->view(ctx, one->X, bytes, X)))
      return st;
    if (one->EX && be->host_memory) /* made before: lent too */
      return be->view(ctx, one->EX, bytes, EX);
    if ((st = be->alloc(ctx, bytes, NULL, EX)))
      return st;
    return be->exp_shocks(ctx, 0, gr->S * F, *X, *EX);
  }
  if (be->host_memory) {
    if ((st = be->alloc(ctx, bytes, NULL, X)) || (st = be->alloc(ctx, bytes, NULL, EX)))
      return st;
    return xm__group_shocks(ctx, cfg, sets, plan, gr, 0, gr->S, keep_mc, *X, *EX);
  }
  double *h = calloc(1, bytes + 1);
  if (!h)
    return xm__fail(ctx, XM_ENOMEM, "the shocks of %lld scenarios", (long long)gr->S);
  for (int64_t x = gr->x0; x < gr->x1; x++)
    if (!sets->set[x].is_mc && sets->set[x].S > 0)
      memcpy(h + plan->row[x] * F, sets->set[x].X, (size_t)(sets->set[x].S * F) * sizeof *h);
  st = be->alloc(ctx, bytes, h, X);
  free(h);
  if (st || (st = be->alloc(ctx, bytes, NULL, EX)))
    return st;
  for (int64_t x = gr->x0; x < gr->x1 && st == XM_OK; x++) {
    xm__set *set = &sets->set[x];
    if (set->S == 0)
      continue;
    if (!set->is_mc)
      st = be->exp_shocks(ctx, plan->row[x] * F, set->S * F, *X, *EX);
    else if ((st = xm__make_shocks(ctx, cfg, sets, plan, x, 0, set->S, plan->row[x], *X, *EX)) ==
                 XM_OK &&
             keep_mc)
      st = xm__keep_shocks(ctx, set, F, 0, set->S, plan->row[x], *X);
  }
  return st;
}

/* Block bk's arrays onto the device (with_lq: and its liquidity add-on's). */
static xm_status xm__upload_block(xm_ctx *ctx, const xm__block *bk, int G, int with_lq,
                                  xm__dblock *d) {
  const xm__backend *be = ctx->be;
  int64_t n = bk->n_inst, na = bk->na, np = bk->pos_start[na];
  xm_status st = XM_OK;
  d->n = n;
  memcpy(d->cls, bk->cls, sizeof d->cls);
  d->na = na;
  if ((st = be->alloc(ctx, (size_t)(XM_ND * n) * sizeof(double), bk->instd, &d->instd)) ||
      (st = be->alloc(ctx, (size_t)(XM_NI * n) * sizeof(int), bk->insti, &d->insti)) ||
      (st = be->alloc(ctx, (size_t)(na + 1) * sizeof(int), bk->pos_start, &d->start)) ||
      (st = be->alloc(ctx, (size_t)np * sizeof(int), bk->pos_inst, &d->pinst)) ||
      (st = be->alloc(ctx, (size_t)np * sizeof(int), bk->pos_silo, &d->psilo)) ||
      (st = be->alloc(ctx, (size_t)np * sizeof(double), bk->pos_qty, &d->pqty)) ||
      (st = be->alloc(ctx, (size_t)na * sizeof(int), bk->cross, &d->cross)))
    return st;
  if (!bk->lq_start || !with_lq)
    return XM_OK;
  /* the liquidity add-on's (one element more: none is empty) */
  size_t ne = (size_t)bk->n_exp, nt = (size_t)bk->n_contrib, nr = (size_t)(na * (G + 1));
  if ((st = be->alloc(ctx, (size_t)(XM_ND * n) * sizeof(double), bk->instd, &d->instd_s)) ||
      (st = be->alloc(ctx, (size_t)(XM_NI * n) * sizeof(int), bk->insti_s, &d->insti_s)) ||
      (st = be->alloc(ctx, (size_t)(XM_NSLOT * n + 1) * sizeof(double), NULL, &d->sens)) ||
      (st = be->alloc(ctx, (nr + 1) * sizeof(int), bk->lq_start, &d->lq_start)) ||
      (st = be->alloc(ctx, (ne + 1) * sizeof(int), bk->lq_fac, &d->lq_fac)) ||
      (st = be->alloc(ctx, (ne + 1) * sizeof(int), bk->lq_cstart, &d->lq_cstart)) ||
      (st = be->alloc(ctx, (nt + 1) * sizeof(int), bk->lq_contrib, &d->lq_contrib)) ||
      (st = be->alloc(ctx, (size_t)na * sizeof(double), bk->xb, &d->xb)))
    return st;
  return XM_OK;
}

/* A streamed chunk, a group's rows c0 .. c0 + nc in L's rows 0 .. nc,
 * folded into the tails of each of its sets ds[j] that it covers. */
static xm_status xm__fold_chunk(xm_ctx *ctx, const xm__dblock *db, const xm__dset *ds, int nds,
                                int64_t c0, int64_t nc, const xm__dwork *w) {
  xm__tseg seg[XM__GROUP_SETS];
  int n = 0;
  for (int j = 0; j < nds; j++) {
    int64_t lo = ds[j].row > c0 ? ds[j].row : c0;
    int64_t hi = ds[j].row + ds[j].S < c0 + nc ? ds[j].row + ds[j].S : c0 + nc;
    if (hi > lo)
      seg[n++] = (xm__tseg){j,
                            lo - c0,
                            hi - lo,
                            lo == ds[j].row,
                            ds[j].measure == XM_MEASURE_WORST ? 1 : ds[j].k,
                            ds[j].measure,
                            ds[j].w_off >= 0 ? ds[j].w_off + (lo - ds[j].row) : -1};
  }
  return n ? ctx->be->tail(ctx, db, seg, n, w) : XM_OK;
}

/* A tail record from the layout of tks into that of tkd (xm_reduce.h:
 * each component's entries, at most the smaller of the two: a record never
 * holds more than its set's k). */
static void xm__tail_relayout(const double *src, int64_t tks, double *dst, int64_t tkd, int G) {
  int64_t m = tks < tkd ? tks : tkd;
  memcpy(dst, src, (size_t)(3 * (G + 1)) * sizeof *dst);
  for (int c = 0; c <= G; c++)
    memcpy(dst + XM__TV(G, tkd, c), src + XM__TV(G, tks, c), (size_t)m * sizeof *dst);
  memcpy(dst + XM__TS(G, tkd), src + XM__TS(G, tks), (size_t)(m * G) * sizeof *dst);
}

/* A scenario split's tails of group gr's sets for block bk: out of the
 * backend's records (tails_out, into each set's array at the block's
 * accounts) or into them (tails_in), through the host buffer th. */
static xm_status xm__tails_move(xm_ctx *ctx, const xm__sets *sets, const xm__group *gr,
                                const xm__dset *ds, int nds, const xm__block *bk,
                                const xm__dwork *w, double *th, const xm__outputs *out) {
  int G = w->G;
  int64_t na = bk->na, tg = XM_TREC(G, gr->tk);
  size_t bytes = (size_t)(nds * na * tg) * sizeof *th;
  xm_status st = out->tails_out ? ctx->be->download(ctx, th, w->T, 0, bytes) : XM_OK;
  for (int j = 0; st == XM_OK && j < nds; j++) {
    int64_t x = ds[j].x, tx = xm__set_tk(&sets->set[x]), rx = XM_TREC(G, tx);
    for (int64_t a = 0; a < na; a++) {
      double *rec = th + (j * na + a) * tg;
      if (out->tails_out)
        xm__tail_relayout(rec, gr->tk, out->tails_out[x] + (bk->a0 + a) * rx, tx, G);
      else
        xm__tail_relayout(out->tails_in[x] + (bk->a0 + a) * rx, tx, rec, gr->tk, G);
    }
  }
  return st == XM_OK && out->tails_in ? ctx->be->upload(ctx, w->T, 0, th, bytes) : st;
}

static void xm__progress(const xm_run_opts *o, const xm__plan *plan, int64_t b, int64_t x,
                         const char *name) {
  if (o && o->progress)
    o->progress(o->progress_arg, b * plan->K + x + 1, plan->n_blocks * plan->K, name);
}

xm_status xm__evaluate(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets, const xm__plan *plan,
                       int keep_mc, const xm_run_opts *opts, const xm__increment *inc,
                       xm__outputs *out) {
  const xm__backend *be = ctx->be;
  int64_t K = sets->K, F = sets->F, A = plan->A, tile = plan->tile, NG = plan->n_groups;
  int G = plan->G;
  xm_status st = XM_OK;
  /* an incremental run revalues the trades' rows alone (none: nothing) and
   * adds the kept losses of the account's positions */
  int incr = inc && inc->base;
  const xm__block *dk = incr ? inc->delta : NULL;
  /* rows to revalue: the block's, or the trades'; none from given tails */
  int reprice = (!incr || dk) && !out->tails_in;
  int tio = out->tails_out || out->tails_in;
  if (tio && !plan->chunk)
    return xm__fail(ctx, XM_EINVAL, "a scenario split's tails need a streamed plan");
  if (inc && (plan->n_blocks != 1 || plan->blocks[0].na != 1 || !sets->solo || (dk && dk->na != 1)))
    return xm__fail(ctx, XM_EINVAL, "an incremental run is of one account on sets of one a group");
  if (inc && plan->chunk)
    return xm__fail(ctx, XM_EINVAL, "an incremental run reads L's rows: plan it unstreamed");
  xm__loop lp;
  memset(&lp, 0, sizeof lp);
  lp.X = calloc((size_t)NG + 1, sizeof *lp.X);
  lp.EX = calloc((size_t)NG + 1, sizeof *lp.EX);
  int64_t *woff = malloc((size_t)K * sizeof *woff + 1); /* a set's first weight, or -1 */
  if (!lp.X || !lp.EX || !woff) {
    free(lp.X);
    free(lp.EX);
    free(woff);
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
  if ((st = be->begin(ctx, cfg->precision)) != XM_OK) {
    free(lp.X);
    free(lp.EX);
    free(woff);
    return st;
  }
  double t0 = xm__now();
  /* The sets' weights in one buffer (for the reduce step of a group). */
  {
    int64_t nw = 0;
    for (int64_t x = 0; x < K; x++) {
      woff[x] = sets->set[x].w ? nw : -1;
      nw += sets->set[x].w ? sets->set[x].S : 0;
    }
    double *w = nw ? malloc((size_t)nw * sizeof *w) : NULL;
    if (nw && !w) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    for (int64_t x = 0; x < K; x++)
      if (woff[x] >= 0)
        memcpy(w + woff[x], sets->set[x].w, (size_t)sets->set[x].S * sizeof *w);
    st = nw ? be->alloc(ctx, (size_t)nw * sizeof *w, w, &lp.w.W) : XM_OK;
    free(w);
    if (st)
      goto cleanup;
  }
  /* The groups' shocks, when they stay for the run. */
  for (int64_t g = 0; plan->resident && reprice && g < NG; g++)
    if ((st = xm__group_resident(ctx, cfg, sets, plan, g, keep_mc, &lp.X[g], &lp.EX[g])))
      goto cleanup;
  if ((st = be->finish(ctx)) != XM_OK)
    goto cleanup;
  out->t_scen = xm__now() - t0;
  t0 = xm__now();

  /* The work buffers, for the largest block. */
  int64_t na = plan->max_na, ni = plan->max_inst, R = plan->chunk ? plan->chunk : plan->rows;
  if (dk && dk->n_inst > ni) { /* the trades close positions: their rows are only theirs; */
    tile = tile * (ni > 0 ? ni : 1) / dk->n_inst; /* their tiles hold the plan's losses */
    tile = tile > 0 ? tile : 1;
    ni = dk->n_inst;
  }
  int64_t tails = K < XM__GROUP_SETS ? K : XM__GROUP_SETS;
  size_t lbytes = (size_t)(R * na * (G + 1)) * sizeof(double);
  if ((st = be->alloc(ctx, (size_t)(tile * ni) * sizeof(double), NULL, &lp.w.ell)) ||
      (st = be->alloc(ctx, lbytes, NULL, &lp.w.L)) ||
      (st = be->alloc(ctx, (size_t)(na * K) * sizeof(double), NULL, &lp.w.by)) ||
      (st = be->alloc(ctx, (size_t)(na * G * K) * sizeof(double), NULL, &lp.w.silo)) ||
      (st = be->alloc(ctx, (size_t)(na * G * K) * sizeof(double), NULL, &lp.w.attr)) ||
      (st = be->alloc(ctx, (size_t)(tails * na * XM_TAIL) * sizeof(double), NULL, &lp.w.tail)) ||
      (st = be->alloc(ctx, (size_t)(na * XM_NOUT) * sizeof(double), NULL, &lp.w.out_acct)) ||
      (st = be->alloc(ctx, (size_t)(na * G * XM_NSILO) * sizeof(double), NULL, &lp.w.out_silo)))
    goto cleanup;
  if (plan->chunk &&
      (st = be->alloc(ctx, (size_t)(na * plan->trec) * sizeof(double), NULL, &lp.w.T)))
    goto cleanup;
  /* The liquidity add-ons: 0 without (uploaded once), else each block's. */
  {
    double *zero = calloc((size_t)(na * (G + 1) + 1), sizeof *zero);
    st = zero ? be->alloc(ctx, (size_t)(na * (G + 1)) * sizeof(double), zero, &lp.w.lq)
              : xm__fail(ctx, XM_ENOMEM, "out of memory");
    free(zero);
    if (st)
      goto cleanup;
  }
  if (plan->liquidity) {
    double sx[2 * XM_NSLOT * XM_SENS_COLS], sex[2 * XM_NSLOT * XM_SENS_COLS];
    xm__liquidity_shocks(sx, sex);
    if ((st = be->alloc(ctx, sizeof sx, sx, &lp.sx)) ||
        (st = be->alloc(ctx, sizeof sex, sex, &lp.sex)) ||
        (st = be->alloc(ctx, (size_t)(3 * F) * sizeof(double), plan->fpar, &lp.fpar)))
      goto cleanup;
  }
  if (!plan->resident &&
      ((st = be->alloc(ctx, (size_t)(tile * F) * sizeof(double), NULL, &lp.Xt)) ||
       (st = be->alloc(ctx, (size_t)(tile * F) * sizeof(double), NULL, &lp.EXt))))
    goto cleanup;
  if (dk && (st = be->alloc(ctx, lbytes, NULL, &lp.Lb)))
    goto cleanup;
  if (tio && !(lp.Th = malloc((size_t)(na * plan->trec + 1) * sizeof(double)))) {
    st = xm__fail(ctx, XM_ENOMEM, "the tails of %lld accounts", (long long)na);
    goto cleanup;
  }
  if ((out->pnl || out->spool) && (!(lp.Lhost = malloc((size_t)(R * na + 1) * sizeof(double))) ||
                                   !(lp.Ph = malloc((size_t)(R * na + 1) * sizeof(float))))) {
    st = xm__fail(ctx, XM_ENOMEM, "--save-pnl buffers (%lld x %lld)", (long long)R, (long long)na);
    goto cleanup;
  }
  lp.w.G = G;
  lp.w.K = K;
  lp.w.sp = sets->sp;
  lp.w.sp_w = sets->sp_w;
  int64_t ndays = sets->days > 0 ? sets->days : 1, nsh = sets->shared;
  int64_t ko = (K - nsh) / ndays; /* a day's own sets; then the shared ones */
  double t_scen = 0.0;            /* tiles' shocks made inside the loop */
  for (int64_t b = 0; b < plan->n_blocks; b++) {
    const xm__block *bk = &plan->blocks[b];
    double dt = (double)cfg->horizon_days / 252.0, pw = cfg->pricing.vol_term_power;
    if ((st = xm__upload_block(ctx, bk, G, 1, &lp.db)) || (st = be->today(ctx, &lp.db, dt, pw)))
      goto cleanup;
    if (dk &&
        ((st = xm__upload_block(ctx, dk, G, 0, &lp.dd)) || (st = be->today(ctx, &lp.dd, dt, pw))))
      goto cleanup;
    const xm__dblock *rb = incr ? &lp.dd : &lp.db; /* the rows revalued and aggregated */
    if (plan->liquidity) {
      /* the add-on's rows: today at dt = 0 (T' = T, no funding), slot columns */
      xm__dblock sb = lp.db;
      sb.instd = lp.db.instd_s;
      sb.insti = lp.db.insti_s;
      if ((st = be->today(ctx, &sb, 0.0, cfg->pricing.vol_term_power)) ||
          (st = be->liquidity(ctx, &lp.db, lp.sx, lp.sex, lp.fpar, F, cfg->pricing.vol_floor,
                              &lp.w)))
        goto cleanup;
    }
    /* Each group: tiles over its rows (crossing from set to set), then one
     * reduce step for its sets. A set without scenarios (a backtest day
     * before the stressed period) is in none: combine makes it 0. */
    for (int64_t g = 0; g < NG; g++) {
      const xm__group *gr = &plan->groups[g];
      xm__dset ds[XM__GROUP_SETS];
      int nds = 0;
      for (int64_t x = gr->x0; x < gr->x1; x++)
        if (sets->set[x].S > 0)
          ds[nds++] = (xm__dset){
              sets->set[x].S, sets->set[x].k, sets->set[x].measure, plan->row[x], x, woff[x]};
      /* L holds the group's rows, or a chunk's at a time (streamed): tiles
       * over them, then (streamed) each chunk folded into its sets' tails */
      int64_t ch = plan->chunk ? plan->chunk : gr->S;
      lp.w.lay = be->layout(ch, bk->na, G);
      lp.w.tk = gr->tk; /* the size of its records */
      for (int64_t s0 = 0; reprice && s0 < gr->S; s0 += tile) {
        int64_t ns = gr->S - s0 < tile ? gr->S - s0 : tile, c0 = s0 / ch * ch;
        xm__mem X = lp.X[g], EX = lp.EX[g];
        int64_t row0 = s0;
        if (!plan->resident) {
          double ts = xm__now();
          X = lp.Xt;
          EX = lp.EXt;
          row0 = 0;
          if ((st = xm__group_shocks(ctx, cfg, sets, plan, gr, s0, ns, keep_mc && b == 0, X, EX)))
            goto cleanup;
          t_scen += xm__now() - ts;
        }
        if ((st = be->revalue(ctx, rb, X, EX, F, row0, ns, cfg->pricing.vol_floor, lp.w.ell)) ||
            (st = be->aggregate(ctx, rb, s0 - c0, ns, &lp.w)))
          goto cleanup;
        int end = s0 + ns == gr->S || s0 + ns == c0 + ch; /* of L's rows */
        if (end && plan->chunk &&
            (st = xm__fold_chunk(ctx, &lp.db, ds, nds, c0, s0 + ns - c0, &lp.w)))
          goto cleanup;
        if (end && (out->pnl || out->spool) && !incr &&
            (st = xm__pnl_out(ctx, ds, nds, bk, A, c0, s0 + ns - c0, &lp, out)))
          goto cleanup;
      }
      /* the increment (one set a group, one account): L = the kept losses
       * (+ the trades'); or L kept */
      size_t gbytes = (size_t)(gr->S * bk->na * (G + 1)) * sizeof(double);
      if (incr && !dk)
        st = be->upload(ctx, lp.w.L, 0, inc->base[gr->x0], gbytes);
      else if (incr && (st = be->upload(ctx, lp.Lb, 0, inc->base[gr->x0], gbytes)) == XM_OK)
        st = be->add(ctx, gr->S * bk->na * (G + 1), lp.Lb, lp.w.L);
      if (st == XM_OK && inc && inc->keep)
        st = be->download(ctx, inc->keep[gr->x0], lp.w.L, 0, gbytes);
      if (st != XM_OK)
        goto cleanup;
      if (tio && (st = xm__tails_move(ctx, sets, gr, ds, nds, bk, &lp.w, lp.Th, out)) != XM_OK)
        goto cleanup;
      if (out->tails_out) /* a part: its tails are what it gives */
        continue;
      st = plan->chunk ? be->tail_reduce(ctx, &lp.db, ds, nds, &lp.w)
                       : be->reduce(ctx, &lp.db, ds, nds, &lp.w);
      if (st != XM_OK)
        goto cleanup;
      if (opts && opts->progress) {
        if ((st = be->finish(ctx)) != XM_OK)
          goto cleanup;
        xm__progress(opts, plan, b, gr->x1 - 1, sets->set[gr->x1 - 1].name);
      }
    }
    /* each day's sets (a run: one day of all K) */
    for (int64_t j = 0; j < ndays && !out->tails_out; j++) {
      lp.w.x0 = j * ko + (j > 0 ? nsh : 0);
      lp.w.kd = ko + nsh;
      lp.w.kown = ko;
      lp.w.rx = nsh > 0 ? -lp.w.x0 : 0;
      lp.w.sp_empty = sets->sp >= 0 && sets->set[lp.w.x0 + sets->sp].S == 0;
      if ((st = be->combine(ctx, &lp.db, &lp.w, cfg->cross_margin.offset_cap,
                            cfg->minimum.per_contract, cfg->apc.buffer)) ||
          (st = be->download(ctx, out->acct + (j * A + bk->a0) * XM_NOUT, lp.w.out_acct, 0,
                             (size_t)(bk->na * XM_NOUT) * sizeof(double))) ||
          (st = be->download(ctx, out->silo + (j * A + bk->a0) * G * XM_NSILO, lp.w.out_silo, 0,
                             (size_t)(bk->na * G * XM_NSILO) * sizeof(double))))
        goto cleanup;
    }
    if (!out->tails_out && (st = be->download(ctx, out->by_set + bk->a0 * K, lp.w.by, 0,
                                              (size_t)(bk->na * K) * sizeof(double))))
      goto cleanup;
    xm__block_release(ctx, &lp.db);
    xm__block_release(ctx, &lp.dd);
  }
  out->t_eval = xm__now() - t0 - t_scen;
  out->t_scen += t_scen;
cleanup:
  xm__loop_release(ctx, &lp, NG);
  free(woff);
  be->end(ctx);
  return st;
}

/* Why account a's requirement is not finite: the first (set, scenario,
 * instrument) whose contract value, loss or sum is not a finite number,
 * recomputed on the host with the shared pricing source in the run's
 * precision. by_set: the account's K measures (a non-finite one is looked at
 * first). Returns 0 after recording the message in ctx (XM_EFORMAT: the
 * inputs cannot be margined), 1 when the shocks it needs are not on the host
 * (Monte Carlo sets generated on the device), 2 when nothing explains it. */
static int xm__explain_nonfinite(xm_ctx *ctx, const xm_portfolio *pf, const xm_config *cfg,
                                 const xm__sets *sets, const xm__plan *plan, int64_t a,
                                 const double *by_set) {
  const xm__block *bk = NULL;
  for (int64_t b = 0; b < plan->n_blocks && !bk; b++)
    if (a >= plan->blocks[b].a0 && a < plan->blocks[b].a0 + plan->blocks[b].na)
      bk = &plan->blocks[b];
  if (!bk)
    return 2;
  int64_t F = sets->F, n = bk->n_inst, la = a - bk->a0;
  int single = cfg->precision == XM_SINGLE;
  double dt = (double)cfg->horizon_days / 252.0, p = cfg->pricing.vol_term_power;
  double *ex = malloc((size_t)(F + 1) * sizeof *ex);
  double *ssum = malloc((size_t)(plan->G + 1) * sizeof *ssum); /* each silo's loss */
  if (!ex || !ssum) {
    free(ex);
    free(ssum);
    return 2;
  }
  int need_mc = 0, found = 0;
  /* the sets whose measure is not finite first, then the others */
  for (int pass = 0; pass < 2 && !found; pass++)
    for (int64_t x = 0; x < sets->K && !found; x++) {
      const xm__set *set = &sets->set[x];
      if ((pass == 0) == isfinite(by_set[x]))
        continue;
      if (!set->X) {
        need_mc = 1;
        continue;
      }
      for (int64_t s = 0; s < set->S && !found; s++) {
        const double *xr = set->X + s * F;
        for (int64_t f = 0; f < F; f++)
          ex[f] = exp(xr[f]);
        double sum = 0.0;
        for (int g = 0; g < plan->G; g++)
          ssum[g] = 0.0;
        for (int q = bk->pos_start[la]; q < bk->pos_start[la + 1] && !found; q++) {
          int li = bk->pos_inst[q];
          double d1[XM_ND];
          int i1[XM_NI];
          for (int c = 0; c < XM_ND; c++)
            d1[c] = bk->instd[c * n + li];
          for (int c = 0; c < XM_NI; c++)
            i1[c] = bk->insti[c * n + li];
          double v0, l;
          if (single) {
            xm_today_f(0, 1, d1, i1, (float)dt, (float)p);
            v0 = d1[XM_ID_V0];
            l = (double)xm_loss_f(0, 1, d1, i1, xr, ex, 1, (float)cfg->pricing.vol_floor);
          } else {
            xm_today_d(0, 1, d1, i1, dt, p);
            v0 = d1[XM_ID_V0];
            l = xm_loss_d(0, 1, d1, i1, xr, ex, 1, cfg->pricing.vol_floor);
          }
          double ql = bk->pos_qty[q] * l;
          sum += ql;
          ssum[bk->pos_silo[q]] += ql;
          const char *why = !isfinite(v0)   ? "today's value of one contract is not a finite number"
                            : !isfinite(l)  ? "the revalued contract is not a finite number"
                            : !isfinite(ql) ? "quantity x loss overflows"
                            : !isfinite(sum) ? "the account's loss overflows adding this position"
                                             : NULL;
          if (!why)
            continue;
          int32_t row = bk->inst_row[li];
          int u = i1[XM_II_UND];
          xm__fail(ctx, XM_EFORMAT,
                   "set %s, scenario '%s' (row %lld), account %s, instrument %s "
                   "(/instruments row %d): %s (underlying shock %g, quantity %g, loss per "
                   "contract %g); a non-finite loss cannot be margined: check the shock, "
                   "level, expiry and multiplier",
                   set->name, set->labels ? set->labels[s] : "?", (long long)s, pf->account_id[a],
                   pf->inst_id[row], row, why, u >= 0 ? xr[u] : 0.0, bk->pos_qty[q], l);
          found = 1;
        }
        /* the whole account's and each silo's loss, times the set's weight */
        double w = set->w ? set->w[s] : 1.0;
        for (int g = -1; g < plan->G && !found; g++) {
          double part = g < 0 ? sum : ssum[g];
          if (isfinite(w * part))
            continue;
          xm__fail(
              ctx, XM_EFORMAT,
              "set %s, scenario '%s' (row %lld), account %s: the loss of %s%s, %g, times the set's "
              "weight %g is not a finite number; a non-finite loss cannot be margined",
              set->name, set->labels ? set->labels[s] : "?", (long long)s, pf->account_id[a],
              g < 0 ? "the account" : "silo ", g < 0 ? "" : pf->silo_name[g], part, w);
          found = 1;
        }
      }
    }
  free(ssum);
  free(ex);
  return found ? 0 : need_mc ? 1 : 2;
}
/* ---- a run ---- */

xm_status xm__move_loss(xm_ctx *ctx, const xm_config *cfg, const xm__plan *plan, const double *x,
                        int64_t F, double *loss) {
  int single = cfg->precision == XM_SINGLE;
  double dt = (double)cfg->horizon_days / 252.0, p = cfg->pricing.vol_term_power;
  double *ex = malloc((size_t)(F + 1) * sizeof *ex);
  double *d = malloc((size_t)(XM_ND * plan->max_inst + 1) * sizeof *d);
  double *ell = malloc((size_t)(plan->max_inst + 1) * sizeof *ell);
  if (!ex || !d || !ell) {
    free(ex);
    free(d);
    free(ell);
    return xm__fail(ctx, XM_ENOMEM, "out of memory for the realised loss");
  }
  for (int64_t f = 0; f < F; f++)
    ex[f] = exp(x[f]);
  xm_layout lay = {plan->G + 1, 1, 0};
  for (int64_t b = 0; b < plan->n_blocks; b++) {
    const xm__block *bk = &plan->blocks[b];
    int64_t n = bk->n_inst;
    memcpy(d, bk->instd, (size_t)(XM_ND * n) * sizeof *d);
    for (int64_t i = 0; i < n; i++) {
      if (single) {
        xm_today_f(i, n, d, bk->insti, (float)dt, (float)p);
        ell[i] = (double)xm_loss_f(i, n, d, bk->insti, x, ex, 1, (float)cfg->pricing.vol_floor);
      } else {
        xm_today_d(i, n, d, bk->insti, dt, p);
        ell[i] = xm_loss_d(i, n, d, bk->insti, x, ex, 1, cfg->pricing.vol_floor);
      }
    }
    for (int64_t a = 0; a < bk->na; a++)
      xm_aggregate(a, 0, plan->G, ell, 1, bk->pos_start, bk->pos_inst, bk->pos_silo, bk->pos_qty,
                   loss + bk->a0 * (plan->G + 1), lay);
  }
  free(ex);
  free(d);
  free(ell);
  return XM_OK;
}

/* A book's accounts [a0, a1) as a book of their own: their positions and
 * holdings in the book's order, the accounts renumbered from 0, the other
 * tables the book's. What xm_run_opts.account_begin/end run. */
typedef struct xm__part {
  xm_portfolio view;
  int32_t *pa, *pi, *ca, *cf, *cs;
  double *pq, *cq;
  char **cc;
} xm__part;

static void xm__part_free(xm__part *p) {
  free(p->pa);
  free(p->pi);
  free(p->pq);
  free(p->ca);
  free(p->cf);
  free(p->cs);
  free(p->cq);
  free(p->cc);
  memset(p, 0, sizeof *p);
}

static xm_status xm__part_make(xm_ctx *ctx, const xm_portfolio *pf, int64_t a0, int64_t a1,
                               xm__part *p) {
  memset(p, 0, sizeof *p);
  int64_t np = 0, nc = 0;
  for (int64_t j = 0; j < pf->n_positions; j++)
    np += pf->pos_account[j] >= a0 && pf->pos_account[j] < a1;
  for (int64_t j = 0; j < pf->n_collateral; j++)
    nc += pf->coll_account[j] >= a0 && pf->coll_account[j] < a1;
  p->pa = malloc((size_t)np * sizeof *p->pa + 1);
  p->pi = malloc((size_t)np * sizeof *p->pi + 1);
  p->pq = malloc((size_t)np * sizeof *p->pq + 1);
  p->ca = malloc((size_t)nc * sizeof *p->ca + 1);
  p->cf = malloc((size_t)nc * sizeof *p->cf + 1);
  p->cs = malloc((size_t)nc * sizeof *p->cs + 1);
  p->cq = malloc((size_t)nc * sizeof *p->cq + 1);
  p->cc = pf->coll_currency ? malloc((size_t)nc * sizeof *p->cc + 1) : NULL;
  if (!p->pa || !p->pi || !p->pq || !p->ca || !p->cf || !p->cs || !p->cq ||
      (pf->coll_currency && !p->cc)) {
    xm__part_free(p);
    return xm__fail(ctx, XM_ENOMEM, "out of memory for accounts %lld..%lld", (long long)a0,
                    (long long)a1 - 1);
  }
  np = nc = 0;
  for (int64_t j = 0; j < pf->n_positions; j++)
    if (pf->pos_account[j] >= a0 && pf->pos_account[j] < a1) {
      p->pa[np] = (int32_t)(pf->pos_account[j] - a0);
      p->pi[np] = pf->pos_instrument[j];
      p->pq[np++] = pf->pos_quantity[j];
    }
  for (int64_t j = 0; j < pf->n_collateral; j++)
    if (pf->coll_account[j] >= a0 && pf->coll_account[j] < a1) {
      p->ca[nc] = (int32_t)(pf->coll_account[j] - a0);
      p->cf[nc] = pf->coll_factor[j];
      p->cs[nc] = pf->coll_silo[j];
      p->cq[nc] = pf->coll_quantity[j];
      if (p->cc)
        p->cc[nc] = pf->coll_currency[j];
      nc++;
    }
  xm_portfolio v = *pf;
  v.n_accounts = a1 - a0;
  v.account_id = pf->account_id + a0;
  v.account_cross_margin = pf->account_cross_margin + a0;
  v.account_currency = pf->account_currency ? pf->account_currency + a0 : NULL;
  v.n_positions = np;
  v.pos_account = p->pa;
  v.pos_instrument = p->pi;
  v.pos_quantity = p->pq;
  v.n_collateral = nc;
  v.coll_account = p->ca;
  v.coll_factor = p->cf;
  v.coll_silo = p->cs;
  v.coll_quantity = p->cq;
  v.coll_currency = p->cc;
  p->view = v;
  return XM_OK;
}

xm_status xm__run_once(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                       const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                       xm_run_result *out) {
  return xm__run_sets(ctx, pf, sf, cfg, opts, flags, NULL, NULL, NULL, out);
}

xm_status xm__run_sets(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                       const xm_config *cfg, const xm_run_opts *opts, unsigned flags,
                       const xm__sets *given, const xm__increment *inc, const xm__tails_io *tio,
                       xm_run_result *out) {
  xm_run_opts o = {0, 0, NULL, NULL, 0, 0, 0, 0, NULL};
  if (opts)
    o = *opts;
  double t0 = xm__now();
  xm_status st = XM_OK;
  xm__sets sets;
  xm__plan plan, dplan; /* dplan: an incremental run's trades */
  xm__outputs ev;
  xm__part part, bpart;
  xm__increment incr;
  memset(&plan, 0, sizeof plan);
  memset(&dplan, 0, sizeof dplan);
  memset(&ev, 0, sizeof ev);
  memset(&part, 0, sizeof part);
  memset(&bpart, 0, sizeof bpart);
  const xm_portfolio *whole = pf;
  int64_t A = pf->n_accounts, G = pf->n_silos, K = 0;
  int64_t a0 = o.account_begin, a1 = o.account_end;
  int ranged = a0 != 0 || a1 != 0;
  /* collateral.method = scenario: the holdings are positions of the book
   * the sets and the plan see (METHODOLOGY.md section 6) */
  const xm_portfolio *book = pf;
  xm_portfolio aug;
  void *aug_owned = NULL;
  memset(&sets, 0, sizeof sets);
  if (ranged && !(a0 >= 0 && a0 <= a1 && a1 <= A)) {
    st = xm__fail(ctx, XM_EINVAL, "accounts %lld..%lld: the book has accounts 0..%lld",
                  (long long)a0, (long long)a1 - 1, (long long)A - 1);
    goto cleanup;
  }
  if (cfg->collateral.method == XM_COLLATERAL_SCENARIO && pf->n_collateral > 0) {
    if ((st = xm__collateral_book(ctx, pf, &aug, &aug_owned)) != XM_OK)
      goto cleanup;
    book = &aug;
  }
  if (given)
    sets = *given; /* lent: nothing of it is kept or freed below */
  else if ((st = xm__sets_build(ctx, book, sf, cfg, &o, flags, &sets, out->notes,
                                sizeof out->notes)) != XM_OK)
    goto cleanup;
  /* the sets are the whole book's; the rest sees the accounts asked for */
  if (ranged) {
    if ((st = xm__part_make(ctx, pf, a0, a1, &part)) != XM_OK ||
        (book != pf && (st = xm__part_make(ctx, book, a0, a1, &bpart)) != XM_OK))
      goto cleanup;
    book = book != pf ? &bpart.view : &part.view;
    pf = &part.view;
    A = a1 - a0;
  }
  out->account_begin = ranged ? a0 : 0;
  K = sets.K;
  out->F = sets.F;
  out->jitter[0] = sets.jitter[0];
  out->jitter[1] = sets.jitter[1];
  out->factor = calloc((size_t)(sets.F + 1), sizeof *out->factor);
  out->sets = calloc((size_t)K + 1, sizeof *out->sets);
  if (!out->factor || !out->sets) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  out->K = K;
  for (int64_t f = 0; f < sets.F; f++)
    if (!(out->factor[f] = xm__strdup(pf->factor_name[sets.used[f]]))) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
  unsigned pflags = (o.save_pnl ? XM__PLAN_PNL : 0u) | (inc ? XM__PLAN_ROWS : 0u);
  if ((st = xm__plan_build(ctx, book, &sets, (int)pflags, &plan)) != XM_OK)
    goto cleanup;
  if (inc) {
    incr = *inc;
    incr.delta = NULL;
    if (inc->base && inc->trades) {
      if ((st = xm__plan_build(ctx, inc->trades, &sets, XM__PLAN_ROWS, &dplan)) != XM_OK)
        goto cleanup;
      if (dplan.n_blocks == 1 && dplan.blocks[0].pos_start[dplan.blocks[0].na] > 0)
        incr.delta = &dplan.blocks[0];
    }
  }
  out->A = A;
  out->G = G;
  out->n_blocks = plan.n_blocks;
  out->tile = plan.tile;
  out->shocks_resident = plan.resident;
  out->mem_budget = plan.budget;
  out->mem_planned = plan.planned;
  out->sets_host_bytes = sets.bytes;
  ev.acct = malloc((size_t)(A * XM_NOUT + 1) * sizeof(double));
  ev.silo = malloc((size_t)(A * G * XM_NSILO + 1) * sizeof(double));
  ev.by_set = malloc((size_t)(A * K + 1) * sizeof(double));
  if (!ev.acct || !ev.silo || !ev.by_set) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory for %lld accounts", (long long)A);
    goto cleanup;
  }
  if (o.save_pnl && o.pnl_dir) {
    int64_t *S = malloc((size_t)(K + 1) * sizeof *S);
    for (int64_t x = 0; S && x < K; x++)
      S[x] = sets.set[x].S;
    st = S ? xm__spool_open(ctx, o.pnl_dir, K, S, A, &ev.spool)
           : xm__fail(ctx, XM_ENOMEM, "out of memory");
    free(S);
    if (st != XM_OK)
      goto cleanup;
  } else if (o.save_pnl) {
    if (!(ev.pnl = calloc((size_t)K, sizeof *ev.pnl))) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    for (int64_t x = 0; x < K; x++)
      if (!(ev.pnl[x] = malloc((size_t)(sets.set[x].S * A + 1) * sizeof(float)))) {
        st = xm__fail(ctx, XM_ENOMEM, "out of memory for --save-pnl (%lld x %lld)",
                      (long long)sets.set[x].S, (long long)A);
        goto cleanup;
      }
  }
  out->t_prepare = xm__now() - t0;
  if (tio) {
    ev.tails_out = tio->out;
    ev.tails_in = tio->in;
  }
  if ((st = xm__evaluate(ctx, cfg, &sets, &plan, o.save_scenarios, &o, inc ? &incr : NULL, &ev)) !=
      XM_OK)
    goto cleanup;
  out->t_scenarios = ev.t_scen;
  out->t_evaluate = ev.t_eval;
  out->pnl_spool = ev.spool; /* the result's from now on */
  ev.spool = NULL;
  if (ev.tails_out) /* a part of a scenario split: its tails (and times) are its result */
    goto cleanup;

  /* Collect. */
  out->requirement = malloc((size_t)(A + 1) * sizeof(double));
  out->unified = malloc((size_t)(A + 1) * sizeof(double));
  out->siloed = malloc((size_t)(A + 1) * sizeof(double));
  out->diversification = malloc((size_t)(A + 1) * sizeof(double));
  out->minimum = malloc((size_t)(A + 1) * sizeof(double));
  out->binding = malloc((size_t)(A + 1) * sizeof(int32_t));
  out->by_silo = malloc((size_t)(A * G + 1) * sizeof(double));
  out->attribution = malloc((size_t)(A * G + 1) * sizeof(double));
  out->to_reporting = malloc((size_t)(A + 1) * sizeof(double));
  out->liquidity = malloc((size_t)(A + 1) * sizeof(double));
  out->hedge_credit = malloc((size_t)(A + 1) * sizeof(double));
  out->cross_margined = malloc((size_t)(A + 1) * sizeof(double));
  out->minimum_binds = malloc((size_t)(A + 1) * sizeof(int32_t));
  out->liquidity_by_silo = malloc((size_t)(A * G + 1) * sizeof(double));
  out->requirement_by_silo = malloc((size_t)(A * G + 1) * sizeof(double));
  if (!out->requirement || !out->unified || !out->siloed || !out->diversification ||
      !out->minimum || !out->binding || !out->by_silo || !out->attribution || !out->to_reporting ||
      !out->liquidity || !out->hedge_credit || !out->cross_margined || !out->minimum_binds ||
      !out->liquidity_by_silo || !out->requirement_by_silo) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  out->by_set = ev.by_set;
  ev.by_set = NULL;
  for (int64_t a = 0; a < A; a++) {
    const double *oa = ev.acct + a * XM_NOUT;
    out->requirement[a] = oa[XM_O_REQUIREMENT];
    out->unified[a] = oa[XM_O_UNIFIED];
    out->siloed[a] = oa[XM_O_SILOED];
    out->diversification[a] = oa[XM_O_DIVERSIFICATION];
    out->minimum[a] = oa[XM_O_MINIMUM];
    out->binding[a] = (int32_t)oa[XM_O_BINDING];
    out->cross_margined[a] = oa[XM_O_CROSSED];
    out->liquidity[a] = oa[XM_O_LIQUIDITY];
    out->hedge_credit[a] = oa[XM_O_HEDGE];
    out->minimum_binds[a] = (int32_t)oa[XM_O_MINBINDS];
    out->to_reporting[a] = xm__fx_level(pf, xm__acct_fx(pf, a));
    for (int64_t g = 0; g < G; g++) {
      const double *os = ev.silo + (a * G + g) * XM_NSILO;
      out->by_silo[a * G + g] = os[XM_S_BYSILO];
      out->attribution[a * G + g] = os[XM_S_ATTR];
      out->liquidity_by_silo[a * G + g] = os[XM_S_LQ];
      out->requirement_by_silo[a * G + g] = os[XM_S_REQ];
    }
    if (!isfinite(out->requirement[a])) {
      int why = xm__explain_nonfinite(ctx, book, cfg, &sets, &plan, a, out->by_set + a * K);
      if (why == 0) {
        st = XM_EFORMAT;
      } else if (why == 1 && !o.save_scenarios) {
        /* The Monte Carlo shocks stayed on the device: run again keeping
         * them, so that the message can name the scenario and instrument. */
        xm_run_result again;
        memset(&again, 0, sizeof again);
        o.save_scenarios = 1;
        st = xm__run_once(ctx, whole, sf, cfg, &o, flags, &again);
        xm_run_result_free(&again);
        if (st == XM_OK)
          st = xm__fail(ctx, XM_ENUMERIC, "account %s: the requirement is not a finite number",
                        pf->account_id[a]);
      } else {
        st = xm__fail(ctx, XM_ENUMERIC, "account %s: the requirement is not a finite number",
                      pf->account_id[a]);
      }
      goto cleanup;
    }
  }
  if ((st = xm__collateral_results(ctx, pf, whole->n_collateral > 0 && whole->coll_account, cfg,
                                   out)) != XM_OK)
    goto cleanup;

  for (int64_t x = 0; x < K; x++) {
    xm_run_set *rs = &out->sets[x];
    xm__set *s = &sets.set[x];
    if (!(rs->name = xm__strdup(s->name))) {
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
      goto cleanup;
    }
    rs->measure = s->measure;
    rs->confidence = s->confidence;
    rs->S = s->S;
    rs->k = s->k;
    if (given)
      continue; /* the labels and shocks stay with their owner */
    rs->labels = s->labels;
    s->labels = NULL;
    if (o.save_scenarios) {
      rs->shock = s->X;
      s->X = NULL;
    }
    if (ev.pnl) {
      rs->pnl = ev.pnl[x];
      ev.pnl[x] = NULL;
    }
  }
cleanup:
  xm__spool_close(ev.spool);
  if (ev.pnl)
    for (int64_t x = 0; x < K; x++)
      free(ev.pnl[x]);
  free(ev.pnl);
  free(ev.acct);
  free(ev.silo);
  free(ev.by_set);
  xm__plan_free(&plan);
  xm__plan_free(&dplan);
  if (!given)
    xm__sets_free(&sets);
  xm__collateral_book_free(aug_owned);
  xm__part_free(&part);
  xm__part_free(&bpart);
  return st;
}

xm_status xm__fallback_cpu(xm_ctx *ctx, xm_status st, char *why, size_t cap) {
  if (!ctx->is_auto || ctx->be->kind == XM_BACKEND_CPU ||
      (st != XM_ERESOURCE && st != XM_EOPENCL && st != XM_EBUILD))
    return st;
  snprintf(why, cap, "%s failed (%s: %.900s)", ctx->dev.name, xm_strerror(st), ctx->err);
  ctx->be->close(ctx);
  ctx->be = NULL;
  xm_device_info cpu;
  xm__cpu_info(&cpu);
  xm_status s2 = xm__open_backend(ctx, &cpu);
  if (s2 != XM_OK)
    return s2;
  size_t len = strlen(ctx->choice);
  snprintf(ctx->choice + len, sizeof ctx->choice - len, "; %s: now on the cpu backend", why);
  ctx->err[0] = '\0';
  return XM_OK;
}

xm_status xm__with_fallback(xm_ctx *ctx, xm__job_fn job, void *arg, char *notes, size_t cap) {
  ctx->err[0] = '\0';
  xm_status st = job(ctx, arg, 0);
  if (st == XM_OK)
    return st;
  /* auto took an OpenCL device that cannot do this: the cpu backend does it
   * (decided on the status, not on the message) */
  char why[1400];
  xm_status fb = xm__fallback_cpu(ctx, st, why, sizeof why);
  if (fb != XM_OK)
    return fb;
  st = job(ctx, arg, 1);
  size_t len = strlen(notes);
  snprintf(notes + len, cap - len, "warning: %s; ran on the cpu backend instead\n", why);
  return st;
}

/* xm_run as a job of xm__with_fallback. */
typedef struct xm__run_job {
  const xm_portfolio *pf;
  const xm_scenario_file *sf;
  const xm_config *cfg;
  const xm_run_opts *opts;
  xm_run_result *out;
} xm__run_job;

static xm_status xm__run_job_fn(xm_ctx *ctx, void *arg, int again) {
  xm__run_job *j = arg;
  if (again)
    xm_run_result_free(j->out);
  return xm__run_once(ctx, j->pf, j->sf, j->cfg, j->opts, 0, j->out);
}

xm_status xm_run(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                 const xm_config *cfg, const xm_run_opts *opts, xm_run_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  if (!ctx || !ctx->be || !pf || !sf)
    return XM_EINVAL;
  xm_config dflt;
  if (!cfg) {
    xm_config_default(&dflt);
    cfg = &dflt;
  }
  xm__run_job j = {pf, sf, cfg, opts, out};
  return xm__with_fallback(ctx, xm__run_job_fn, &j, out->notes, sizeof out->notes);
}
