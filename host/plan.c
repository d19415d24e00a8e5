/* The plan of a run: account blocks and scenario tiles sized so that every
 * buffer of the loop fits the memory budget, and the block arrays the device
 * gets (instrument rows of the block by revaluation class; positions CSR by account,
 * by silo then instrument within an account; repeated pairs merged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"

void xm__mem_budget(const xm_ctx *ctx, uint64_t *total, uint64_t *max_buf) {
  uint64_t t = ctx->dev.global_mem / 2, m = ctx->dev.max_alloc;
  if (ctx->be && ctx->be->host_memory)
    t = ctx->dev.global_mem / 4; /* host memory: leave room for the rest */
  if (ctx->opt.mem_limit && ctx->opt.mem_limit < t)
    t = ctx->opt.mem_limit;
  if (m == 0 || m > t)
    m = t;
  if (t < (1u << 20))
    t = 1u << 20;
  if (m < (1u << 18))
    m = 1u << 18;
  *total = t;
  *max_buf = m;
}

static int xm__cmp_posref(const void *pa, const void *pb) {
  const xm__posref *a = pa, *b = pb;
  if (a->acct != b->acct)
    return a->acct < b->acct ? -1 : 1;
  if (a->silo != b->silo)
    return a->silo < b->silo ? -1 : 1;
  if (a->inst != b->inst)
    return a->inst < b->inst ? -1 : 1;
  return (a->row > b->row) - (a->row < b->row); /* a pair's rows add in row order */
}

xm_status xm__net_positions(xm_ctx *ctx, const xm_portfolio *pf, xm__posref **out, int64_t *n) {
  int64_t N = pf->n_positions, m = 0;
  xm__posref *pr = *out = malloc((size_t)(N + 1) * sizeof *pr);
  *n = 0;
  if (!pr)
    return xm__fail(ctx, XM_ENOMEM, "netting %lld positions", (long long)N);
  for (int64_t p = 0; p < N; p++) {
    int32_t i = pf->pos_instrument[p];
    pr[p] = (xm__posref){.acct = pf->pos_account[p],
                         .silo = pf->inst_silo[i],
                         .inst = i,
                         .cur = (int32_t)(xm__acct_fx(pf, pf->pos_account[p]) + 1),
                         .row = p,
                         .qty = pf->pos_quantity[p]};
  }
  qsort(pr, (size_t)N, sizeof *pr, xm__cmp_posref);
  for (int64_t p = 0; p < N; p++) {
    if (m > 0 && pr[m - 1].acct == pr[p].acct && pr[m - 1].inst == pr[p].inst)
      pr[m - 1].qty += pr[p].qty;
    else
      pr[m++] = pr[p];
  }
  for (int64_t p = 0; p < m; p++) /* a pair that nets to zero holds nothing */
    if (pr[p].qty != 0.0)
      pr[(*n)++] = pr[p];
  return XM_OK;
}

/* What the row order needs of the portfolio being planned (qsort has no
 * context argument in C11). A row key is instrument x (n_fx + 1) + cur. */
static _Thread_local struct {
  const xm_portfolio *pf;
  int64_t nc; /* currencies: n_fx + 1 */
} xm__sort;

/* The revaluation class of instrument i (XM_CLASS_*). */
static int xm__row_class(const xm_portfolio *pf, int64_t i) {
  int t = pf->inst_type[i];
  int32_t vf = pf->inst_vol_factor[i];
  return XM_CLASS_OF(t, XM_TYPE_IS_OPTION(t) && vf >= 0 && pf->factor_kind[vf] == XM_FACTOR_LOGVOL);
}

/* A block's rows by (class, type, call, underlying, instrument, currency):
 * neighbouring work items take the same branch of the pricing (no divergence
 * on GPUs, vectorisable loops on CPUs), one loop per class. */
static int xm__cmp_row(const void *pa, const void *pb) {
  const xm_portfolio *pf = xm__sort.pf;
  int64_t ka = *(const int64_t *)pa, kb = *(const int64_t *)pb;
  int64_t a = ka / xm__sort.nc, b = kb / xm__sort.nc;
  int ca = xm__row_class(pf, a), cb = xm__row_class(pf, b);
  if (ca != cb)
    return ca < cb ? -1 : 1;
  if (pf->inst_type[a] != pf->inst_type[b])
    return pf->inst_type[a] < pf->inst_type[b] ? -1 : 1;
  if (pf->inst_call[a] != pf->inst_call[b])
    return pf->inst_call[a] < pf->inst_call[b] ? -1 : 1;
  if (pf->inst_underlying[a] != pf->inst_underlying[b])
    return pf->inst_underlying[a] < pf->inst_underlying[b] ? -1 : 1;
  return ka < kb ? -1 : (ka > kb);
}

void xm__plan_free(xm__plan *p) {
  if (!p)
    return;
  for (int64_t b = 0; p->blocks && b < p->n_blocks; b++) {
    xm__block *bk = &p->blocks[b];
    free(bk->instd);
    free(bk->insti);
    free(bk->pos_start);
    free(bk->pos_inst);
    free(bk->pos_silo);
    free(bk->pos_qty);
    free(bk->cross);
    free(bk->inst_row);
    free(bk->insti_s);
    free(bk->lq_start);
    free(bk->lq_fac);
    free(bk->lq_cstart);
    free(bk->lq_contrib);
    free(bk->xb);
  }
  free(p->blocks);
  free(p->fpar);
  free(p->groups);
  free(p->row);
  memset(p, 0, sizeof *p);
}

/* Device bytes of one block's arrays (with the liquidity add-on's). */
static uint64_t xm__block_bytes(const xm__block *bk, int64_t np, int G) {
  int64_t n_inst = bk->n_inst, na = bk->na;
  uint64_t b = (uint64_t)n_inst * (XM_ND * 8 + XM_NI * 4) + (uint64_t)np * (4 + 4 + 8) +
               (uint64_t)(na + 1) * 4 + (uint64_t)na * 4;
  if (bk->lq_start)
    b += (uint64_t)n_inst * (XM_ND * 8 + XM_NI * 4 + XM_NSLOT * 8) +
         (uint64_t)(na * (G + 1) + 1) * 4 + (uint64_t)bk->n_exp * 8 + 4 +
         (uint64_t)bk->n_contrib * 4 + (uint64_t)na * 8;
  return b;
}

/* Device bytes per account of the work buffers other than L (trec: a
 * streamed plan's tail records of an account, doubles). */
static uint64_t xm__acct_bytes(int G, int64_t K, int64_t trec) {
  int64_t tails = K < XM__GROUP_SETS ? K : XM__GROUP_SETS;
  return 8u * (uint64_t)(K + 2 * G * K + XM_TAIL * tails + XM_NOUT + XM_NSILO * G + G + 1 + trec);
}

/* The groups of xm__group: the sets with scenarios in run order, packed
 * while their rows fit R and they are at most XM__GROUP_SETS (one when
 * solo), each with its tk (the largest k of its sets, 1 for worst), into
 * g[] and row[] when not NULL. Returns the largest group's tail records of
 * one account, members x XM_TREC(G, tk) doubles (a streamed plan's). */
static int64_t xm__group_sets(const xm__sets *sets, int64_t R, int G, xm__group *g, int64_t *n,
                              int64_t *row) {
  int64_t most = 0, ng = 0, members = 0;
  xm__group cur = {0, 0, 0, 1};
  for (int64_t x = 0; x <= sets->K; x++) {
    const xm__set *set = x < sets->K ? &sets->set[x] : NULL;
    if (set && set->S == 0)
      continue; /* a backtest day before the stressed period: in no group */
    if (members > 0 &&
        (!set || cur.S + set->S > R || members == (sets->solo ? 1 : XM__GROUP_SETS))) {
      if (g)
        g[ng] = cur;
      ng++;
      most = members * XM_TREC(G, cur.tk) > most ? members * XM_TREC(G, cur.tk) : most;
      members = 0;
    }
    if (!set)
      break;
    if (members++ == 0)
      cur = (xm__group){x, x, 0, 1};
    if (row)
      row[x] = cur.S;
    cur.S += set->S;
    cur.x1 = x + 1;
    cur.tk = xm__set_tk(set) > cur.tk ? xm__set_tk(set) : cur.tk;
  }
  if (n)
    *n = ng;
  return most;
}

/* The blocks of na accounts that A accounts make (na 0: A, one each at best). */
static int64_t xm__nblocks(int64_t A, int64_t na) {
  return (A + (na > 0 ? na : 1) - 1) / (na > 0 ? na : 1);
}

/* --save-pnl's host buffers per account when L has R rows: its account
 * rows, in double and in float32 (engine.c, xm__pnl_out). */
static uint64_t xm__pnl_bytes(int64_t R) { return (uint64_t)R * 12u; }

/* Accounts a block may hold when L has R rows (0: not one). */
static int64_t xm__na_max(uint64_t rest, uint64_t maxbuf, int64_t R, int G, int64_t K, int64_t trec,
                          int save_pnl) {
  uint64_t lrow = (uint64_t)R * (uint64_t)(G + 1) * 8u;
  uint64_t per_acct = lrow + (save_pnl ? xm__pnl_bytes(R) : 0u) + xm__acct_bytes(G, K, trec);
  int64_t na = (int64_t)((rest / 2) / per_acct);
  if ((uint64_t)na * lrow > maxbuf)
    na = (int64_t)(maxbuf / lrow);
  if (trec > 0 && (uint64_t)na * (uint64_t)trec * 8u > maxbuf) /* the tails: one buffer too */
    na = (int64_t)(maxbuf / ((uint64_t)trec * 8u));
  return na > (int64_t)1 << 24 ? (int64_t)1 << 24 : na;
}

static xm_status xm__groups(xm_ctx *ctx, const xm__sets *sets, int64_t R, xm__plan *out) {
  int64_t K = sets->K;
  out->groups = calloc((size_t)K + 1, sizeof *out->groups);
  out->row = calloc((size_t)K + 1, sizeof *out->row);
  if (!out->groups || !out->row)
    return xm__fail(ctx, XM_ENOMEM, "planning %lld sets", (long long)K);
  xm__group_sets(sets, R, out->G, out->groups, &out->n_groups, out->row);
  return XM_OK;
}

/* Fills block b's arrays from the sorted positions pr[p0, p1). mark, local:
 * [n_instruments x nc] by row key; order: room for the block's keys. */
static xm_status xm__fill_block(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets,
                                const xm__posref *pr, int64_t p0, int64_t p1, int64_t b, int64_t nc,
                                int64_t *mark, int32_t *local, int64_t *order, xm__block *bk) {
  const int64_t *fcol = sets->fcol;
  int64_t ni = 0;
  for (int64_t p = p0; p < p1; p++) {
    int64_t key = (int64_t)pr[p].inst * nc + pr[p].cur;
    if (mark[key] != b) {
      mark[key] = b;
      order[ni++] = key;
    }
  }
  xm__sort.pf = pf;
  xm__sort.nc = nc;
  qsort(order, (size_t)ni, sizeof *order, xm__cmp_row);
  /* each class's rows padded to a multiple of XM__ROW_ALIGN with copies of
   * its last row (src[r]: the row a copy is made from; r itself otherwise) */
  int64_t nr = 0;
  int64_t *src = malloc((size_t)(ni + XM__ROW_ALIGN * XM_CLASS_COUNT + 1) * sizeof *src);
  if (!src)
    return xm__fail(ctx, XM_ENOMEM, "planning block %lld", (long long)b);
  for (int64_t j = 0; j < ni; j++) {
    int64_t row = nr++;
    local[order[j]] = (int32_t)row;
    src[row] = row;
    int last =
        j + 1 == ni || xm__row_class(pf, order[j + 1] / nc) != xm__row_class(pf, order[j] / nc);
    while (last && nr % XM__ROW_ALIGN != 0)
      src[nr++] = row;
  }
  ni = nr;
  int64_t np = p1 - p0;
  bk->n_inst = ni;
  bk->instd = malloc((size_t)(XM_ND * ni + 1) * sizeof(double));
  bk->insti = malloc((size_t)(XM_NI * ni + 1) * sizeof(int));
  bk->pos_start = calloc((size_t)(bk->na + 1), sizeof(int));
  bk->pos_inst = malloc((size_t)(np + 1) * sizeof(int));
  bk->pos_silo = malloc((size_t)(np + 1) * sizeof(int));
  bk->pos_qty = malloc((size_t)(np + 1) * sizeof(double));
  bk->cross = malloc((size_t)(bk->na + 1) * sizeof(int));
  bk->inst_row = malloc((size_t)(ni + 1) * sizeof(int32_t));
  if (!bk->instd || !bk->insti || !bk->pos_start || !bk->pos_inst || !bk->pos_silo ||
      !bk->pos_qty || !bk->cross || !bk->inst_row) {
    free(src);
    return xm__fail(ctx, XM_ENOMEM, "planning block %lld", (long long)b);
  }
  for (int64_t p = p0; p < p1; p++) {
    int32_t i = pr[p].inst;
    int64_t key = (int64_t)i * nc + pr[p].cur, q = p - p0;
    int32_t li = local[key];
    bk->pos_inst[q] = li;
    bk->pos_silo[q] = pr[p].silo;
    bk->pos_qty[q] = pr[p].qty;
    bk->pos_start[pr[p].acct - bk->a0 + 1]++;
    if (mark[key] != b)
      continue;
    mark[key] = -2 - b; /* filled */
    bk->inst_row[li] = i;
    int32_t und = pf->inst_underlying[i], vf = pf->inst_vol_factor[i], t = pf->inst_type[i];
    int64_t cc = xm__inst_fx(pf, i), cb = (int64_t)pr[p].cur - 1;
    double xb = xm__fx_level(pf, cb), m = pf->inst_multiplier[i];
    double *d = bk->instd;
    int *n = bk->insti;
    d[XM_ID_S0 * ni + li] = pf->factor_level[und];
    d[XM_ID_K * ni + li] = pf->inst_strike[i];
    d[XM_ID_T * ni + li] = pf->inst_expiry[i];
    d[XM_ID_R * ni + li] = pf->inst_rate[i];
    d[XM_ID_Q * ni + li] = XM_TYPE_HAS_CARRY(t) ? pf->inst_dividend_yield[i] : 0.0;
    d[XM_ID_SIG * ni + li] = pf->inst_implied_vol[i];
    d[XM_ID_MULT * ni + li] = m;
    d[XM_ID_FR * ni + li] =
        XM_TYPE_HAS_FUNDING(t) && pf->inst_funding_rate ? pf->inst_funding_rate[i] : 0.0;
    /* X_c / X_b: exactly 1 in one currency (the version-1 loss, bit for bit) */
    d[XM_ID_R0 * ni + li] = cc == cb ? 1.0 : xm__fx_level(pf, cc) / xb;
    d[XM_ID_MINW * ni + li] = XM_TYPE_IS_OPTION(t) ? (cb < 0 ? m : m / xb) : 0.0;
    for (int c = XM_ID_V0; c < XM_ND; c++)
      d[c * ni + li] = 0.0; /* written by the today step */
    int opt = XM_TYPE_IS_OPTION(t) && vf >= 0;
    n[XM_II_TYPE * ni + li] = t;
    n[XM_II_CALL * ni + li] = pf->inst_call[i];
    n[XM_II_UND * ni + li] = (int)fcol[und];
    n[XM_II_VOL * ni + li] = opt ? (int)fcol[vf] : -1;
    n[XM_II_LOGV * ni + li] = opt && pf->factor_kind[vf] == XM_FACTOR_LOGVOL;
    n[XM_II_FXC * ni + li] = cc == cb ? -1 : cc >= 0 ? (int)fcol[pf->fx_factor[cc]] : -1;
    n[XM_II_FXB * ni + li] = cc == cb ? -1 : cb >= 0 ? (int)fcol[pf->fx_factor[cb]] : -1;
    n[XM_II_CLASS * ni + li] = xm__row_class(pf, i);
  }
  for (int64_t r = 0; r < ni; r++) /* the copies */
    if (src[r] != r) {
      for (int c = 0; c < XM_ND; c++)
        bk->instd[c * ni + r] = bk->instd[c * ni + src[r]];
      for (int c = 0; c < XM_NI; c++)
        bk->insti[c * ni + r] = bk->insti[c * ni + src[r]];
      bk->inst_row[r] = bk->inst_row[src[r]];
    }
  free(src);
  bk->cls[0] = 0;
  for (int c = 0; c < XM_CLASS_COUNT; c++) {
    int64_t j = bk->cls[c];
    while (j < ni && bk->insti[XM_II_CLASS * ni + j] == c)
      j++;
    bk->cls[c + 1] = j; /* sorted by class: the rows of class c end here */
  }
  for (int64_t a = 0; a < bk->na; a++) {
    bk->pos_start[a + 1] += bk->pos_start[a];
    bk->cross[a] = pf->account_cross_margin[bk->a0 + a];
  }
  return XM_OK;
}

/* A streamed plan's chunk when the tuning asks for none: rows enough that
 * the tails' merge (O(k) a chunk) is small beside a chunk's pass. */
#define XM__CHUNK_MIN 2048
#define XM__CHUNK_FLOOR 256

xm_status xm__plan_build(xm_ctx *ctx, const xm_portfolio *pf, const xm__sets *sets, int flags,
                         xm__plan *out) {
  memset(out, 0, sizeof *out);
  int save_pnl = (flags & XM__PLAN_PNL) != 0;
  const xm__backend *be = ctx->be;
  int64_t A = pf->n_accounts, N = pf->n_positions, F = sets->F, K = sets->K;
  int G = (int)pf->n_silos;
  out->G = G;
  out->A = A;
  out->K = K;
  out->F = F;
  xm__posref *pr = NULL;
  int64_t nc = pf->n_fx + 1, nkeys = pf->n_instruments * nc;
  xm_status st = xm__net_positions(ctx, pf, &pr, &N);
  if (st != XM_OK)
    return st;
  int64_t *mark = malloc((size_t)(nkeys + 1) * sizeof *mark);
  int32_t *local = malloc((size_t)(nkeys + 1) * sizeof *local);
  int64_t *order = malloc((size_t)(N + 1) * sizeof *order);
  if (!mark || !local || !order) {
    st = xm__fail(ctx, XM_ENOMEM, "planning %lld positions", (long long)N);
    goto cleanup;
  }

  /* The budget holds every buffer of the loop. Not in it (the fixed
   * overhead of docs/architecture.md): the inputs as read, the sets' host
   * arrays made from them (historical and ready-made shocks, labels,
   * Cholesky factors) and the per-account results. */
  uint64_t total = 0, maxbuf = 0;
  xm__mem_budget(ctx, &total, &maxbuf);
  out->budget = total;
  int64_t maxS = 1, all_rows = 0;
  uint64_t resident = 0;
  for (int64_t x = 0; x < K; x++) {
    const xm__set *s = &sets->set[x];
    maxS = s->S > maxS ? s->S : maxS;
    /* X (a view of the host's on host memory, unless drawn) and EX */
    /* X and EX: a group's own copy (a set alone in its group and on the
     * host may be a view: counted all the same) */
    resident += 2u * (uint64_t)s->S * (uint64_t)F * 8u;
    all_rows += s->S;
  }
  out->max_S = maxS;
  uint64_t fixed = 0;
  uint64_t scratch = be->reduce_scratch(ctx, maxS, G);
  uint64_t wbytes = 0; /* weights, on the device for the run */
  for (int64_t x = 0; x < K; x++)
    wbytes += sets->set[x].w ? (uint64_t)sets->set[x].S * 8u : 0;
  fixed += scratch + wbytes;
  if (fixed >= total) {
    st = xm__fail(ctx, XM_ERESOURCE,
                  "the memory budget of %llu bytes is taken by the reduction's scratch and the "
                  "sets' weights (%llu bytes) before any work: raise --mem-limit",
                  (unsigned long long)total, (unsigned long long)fixed);
    goto cleanup;
  }
  uint64_t avail = total - fixed;
  uint64_t mc_cap = avail / 8 < xm__tuned_mc_temp(ctx) ? avail / 8 : xm__tuned_mc_temp(ctx);
  uint64_t mc_temp = 0;
  for (int64_t x = 0; x < K; x++)
    if (sets->set[x].is_mc) {
      uint64_t t = be->mc_scratch(ctx, sets->set[x].S, F, mc_cap);
      mc_temp = t > mc_temp ? t : mc_temp;
    }
  out->resident = resident + mc_temp <= avail / 2;
  int any_streamed_x = 0;
  for (int64_t x = 0; x < K; x++)
    any_streamed_x |= (uint64_t)sets->set[x].S * (uint64_t)F * 8u > maxbuf;
  if (any_streamed_x)
    out->resident = 0;
  out->mc_temp = mc_cap;
  uint64_t rest = avail - (out->resident ? resident : 0) - mc_temp;

  /* Account blocks: L [R x na x (G + 1)] (and its host copy for
   * --save-pnl) with the per-account buffers in half of the rest. R is the
   * largest set's scenarios; on a device (not the host's memory) it grows,
   * doubling up to every set's, while that costs no block: fewer, larger
   * launches for the same passes over the book. */
  /* Streamed: L's rows are a chunk's, the tails per account beside them
   * (the largest group's records: XM__TREC(R) doubles when groups hold R rows). */
  int64_t tk = 0, chunk = 0;
  int streamed = !(flags & XM__PLAN_ROWS) && ctx->opt.tuning.chunk >= 0;
  if (streamed) {
    tk = 1;
    for (int64_t x = 0; x < K; x++)
      if (sets->set[x].S > 0 && xm__set_tk(&sets->set[x]) > tk)
        tk = xm__set_tk(&sets->set[x]);
    chunk = ctx->opt.tuning.chunk > 0 ? ctx->opt.tuning.chunk
                                      : (8 * tk > XM__CHUNK_MIN ? 8 * tk : XM__CHUNK_MIN);
  }
#define XM__LROWS(r) (chunk > 0 && chunk < (r) ? chunk : (r))
#define XM__TREC(r) (streamed ? xm__group_sets(sets, (r), G, NULL, NULL, NULL) : 0)
  /* the plan's chunk halves (not below XM__CHUNK_FLOOR or 2 tk) while that
   * saves blocks: a block more reprices its instruments, a smaller chunk
   * only merges the tails more often */
  if (ctx->opt.tuning.chunk == 0 && chunk > maxS)
    chunk = maxS; /* L's rows are a group's at most */
  int64_t trec = XM__TREC(maxS), na_max = xm__na_max(rest, maxbuf, chunk, G, K, trec, save_pnl);
  while (ctx->opt.tuning.chunk == 0 && chunk > 0 && chunk / 2 >= XM__CHUNK_FLOOR &&
         chunk / 2 >= 2 * tk && na_max < A) {
    int64_t n2 = xm__na_max(rest, maxbuf, chunk / 2, G, K, trec, save_pnl);
    if (n2 < 1 || xm__nblocks(A, n2) >= xm__nblocks(A, na_max))
      break;
    chunk /= 2;
    na_max = n2;
  }
  int64_t R = maxS;
  na_max = xm__na_max(rest, maxbuf, XM__LROWS(maxS), G, K, trec, save_pnl);
  if (na_max < 1) {
    st = xm__fail(ctx, XM_ERESOURCE,
                  "device memory budget %llu bytes cannot hold one account's %lld scenario "
                  "losses; raise --mem-limit",
                  (unsigned long long)total, (long long)maxS);
    goto cleanup;
  }
  if (na_max > A && A > 0)
    na_max = A;
  out->n_blocks = A > 0 ? (A + na_max - 1) / na_max : 0;
  for (int64_t c = 2 * maxS; !be->host_memory && A > 0 && R < all_rows; c *= 2) {
    int64_t rc = c < all_rows ? c : all_rows;
    int64_t nc_ = xm__na_max(rest, maxbuf, XM__LROWS(rc), G, K, XM__TREC(rc), save_pnl);
    if (nc_ > A)
      nc_ = A;
    if (nc_ < 1 || (A + nc_ - 1) / nc_ > out->n_blocks ||
        (out->resident && (uint64_t)rc * (uint64_t)F * 8u > maxbuf))
      break;
    R = rc;
    na_max = nc_;
  }
  out->rows = R;
  out->trec = XM__TREC(R);
  int64_t lr = XM__LROWS(R); /* L's rows */
#undef XM__TREC
#undef XM__LROWS
  if ((st = xm__groups(ctx, sets, R, out)) != XM_OK)
    goto cleanup;
  out->blocks = calloc((size_t)out->n_blocks + 1, sizeof *out->blocks);
  if (!out->blocks) {
    st = xm__fail(ctx, XM_ENOMEM, "planning blocks");
    goto cleanup;
  }
  if ((st = xm__liquidity_params(ctx, pf, sets, &out->fpar)) != XM_OK)
    goto cleanup;
  out->liquidity = out->fpar != NULL;
  for (int64_t k = 0; k < nkeys; k++)
    mark[k] = -1;
  int64_t p0 = 0;
  uint64_t bmax = 0;
  for (int64_t b = 0; b < out->n_blocks; b++) {
    xm__block *bk = &out->blocks[b];
    bk->a0 = b * na_max;
    bk->na = A - bk->a0 < na_max ? A - bk->a0 : na_max;
    int64_t p1 = p0;
    while (p1 < N && pr[p1].acct < bk->a0 + bk->na)
      p1++;
    if ((st = xm__fill_block(ctx, pf, sets, pr, p0, p1, b, nc, mark, local, order, bk)) ||
        (out->fpar && (st = xm__liquidity_block(ctx, pf, sets, G, out->fpar, bk))))
      goto cleanup;
    uint64_t bb = xm__block_bytes(bk, p1 - p0, G);
    bmax = bb > bmax ? bb : bmax;
    out->max_na = bk->na > out->max_na ? bk->na : out->max_na;
    out->max_inst = bk->n_inst > out->max_inst ? bk->n_inst : out->max_inst;
    out->max_pos = p1 - p0 > out->max_pos ? p1 - p0 : out->max_pos;
    p0 = p1;
  }
  uint64_t lbytes = ((uint64_t)lr * (uint64_t)(G + 1) * 8u + (save_pnl ? xm__pnl_bytes(lr) : 0u) +
                     xm__acct_bytes(G, K, out->trec)) *
                    (uint64_t)out->max_na;
  /* Tiles: the contract losses of a tile (and, when the shocks are made per
   * tile, its X and EX) in what is left. */
  uint64_t left = rest > lbytes + bmax ? rest - lbytes - bmax : 0;
  uint64_t per_s = (uint64_t)(out->max_inst > 0 ? out->max_inst : 1) * 8u +
                   (out->resident ? 0 : 2u * (uint64_t)F * 8u);
  int64_t tile = (int64_t)(left / per_s);
  uint64_t tmax = maxbuf / ((uint64_t)(out->max_inst > 0 ? out->max_inst : 1) * 8u);
  if ((uint64_t)tile > tmax)
    tile = (int64_t)tmax;
  if (tile < 1) {
    st = xm__fail(ctx, XM_ERESOURCE,
                  "device memory budget %llu bytes cannot hold one scenario's %lld contract "
                  "losses next to %lld accounts' losses; raise --mem-limit",
                  (unsigned long long)total, (long long)out->max_inst, (long long)out->max_na);
    goto cleanup;
  }
  int64_t pref = be->preferred_tile ? be->preferred_tile(ctx, out->max_inst) : 0;
  if (pref > 0 && pref < tile)
    tile = pref;
  /* no tile past the largest set: a group's rows make more tiles, not larger
   * ones (a contract-loss buffer that outgrows the caches costs more than the
   * launches it saves) */
  out->tile = tile < maxS ? tile : maxS;
  if (chunk > 0) { /* a chunk is whole tiles (but a group's last) */
    out->tile = out->tile < lr ? out->tile : lr;
    out->chunk = lr / out->tile * out->tile;
  }
  out->planned = fixed + (out->resident ? resident : 0) + mc_temp + lbytes + bmax +
                 (uint64_t)out->tile * per_s;
cleanup:
  free(order);
  free(local);
  free(mark);
  free(pr);
  return st;
}
