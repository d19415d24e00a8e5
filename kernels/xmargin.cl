/* xmargin OpenCL kernels. Valid OpenCL C 1.2 on its own; the host embeds it
 * at build time (cmake/embed_kernels.cmake) and builds it once per context and
 * precision: -DXM_SINGLE prices in float, otherwise in double. Every formula is
 * in the shared headers, which the cpu backend compiles too. */
#include "xm_portable.h"

#ifdef XM_SINGLE
/* the pricing in double too, suffixed _f64, for the American price
 * (kernels/xm_american.h: in float it would miss the bound of section 5) */
#define XM_REAL double
#define XM_FN(name) name##_f64
#include "xm_pricing.h"
#undef XM_FN
#undef XM_REAL
#define XM_AMERICAN_F64 xm_price_american_f64
#define XM_REAL float
#else
#define XM_REAL double
#endif
#define XM_FN(name) name
#include "xm_pricing.h"

/* Values of n contracts (multiplier included); inputs in double, priced in
 * XM_REAL. */
__kernel void xm_price_batch(const long n, __global const int *type, __global const double *S,
                             __global const double *K, __global const double *T,
                             __global const double *r, __global const double *q,
                             __global const double *sigma, __global const int *call,
                             __global const double *mult, __global double *out) {
  long i = get_global_id(0);
  if (i >= n)
    return;
  XM_REAL v = xm_unit_value(type[i], (XM_REAL)S[i], (XM_REAL)K[i], (XM_REAL)T[i], (XM_REAL)r[i],
                            (XM_REAL)q[i], (XM_REAL)sigma[i], call[i]);
  out[i] = (double)((XM_REAL)mult[i] * v);
}

/* ---- engine kernels: thin wrappers over the shared headers ---- */
#include "xm_engine_price.h"
#include "xm_reduce.h"
#include "xm_rng.h"

__kernel void xm_k_today(const long n, __global double *instd, __global const int *insti,
                         const double dt, const double p) {
  long i = get_global_id(0);
  if (i < n)
    xm_today(i, n, instd, insti, (XM_REAL)dt, (XM_REAL)p);
}

/* ell[i][s] (instrument-major, so that aggregation reads it coalesced) for
 * scenarios s0 .. s0+ns of the set's shocks X[s][nf], EX = exp(X). */
__kernel void xm_k_revalue(const long n, const long ns, const long s0, const long nf,
                           __global const double *instd, __global const int *insti,
                           __global const double *X, __global const double *EX,
                           const double vol_floor, __global double *ell) {
  long s = get_global_id(0), i = get_global_id(1);
  if (i >= n || s >= ns)
    return;
  ell[i * ns + s] =
      xm_loss(i, n, instd, insti, X + (s0 + s) * nf, EX + (s0 + s) * nf, 0, (XM_REAL)vol_floor);
}

#ifndef XM_SINGLE
/* The losses again, instantiated on double8: 8 scenarios of one instrument
 * per work item, so that a CPU device's compiler (PoCL) calls its vector erfc
 * (a scalar call in the work-item loop is not vectorised). The same helpers,
 * the same formulas. */
XM_INLINE double8 xm_shock8(__global const double *p, long col, long stride) {
  return (double8)(p[col], p[stride + col], p[2 * stride + col], p[3 * stride + col],
                   p[4 * stride + col], p[5 * stride + col], p[6 * stride + col],
                   p[7 * stride + col]);
}
#define XM_VECTOR 1
#undef XM_REAL
#undef XM_FN
#define XM_REAL double8
#define XM_MASK long8
#define XM_FN(name) name##_v8
#define XM_LOSS_T double8
#define XM_SHOCK(p, col) xm_shock8((p), (col), stride)
#include "xm_pricing.h"
#include "xm_engine_price.h"
#undef XM_SHOCK
#undef XM_LOSS_T
#undef XM_FN
#undef XM_MASK
#undef XM_REAL
#undef XM_VECTOR
#define XM_REAL double
#define XM_FN(name) name

/* xm_k_revalue with 8 scenarios per work item: dims (n, ceil(ns / 8)), the
 * instruments first, so that consecutive work groups reuse the same 8 shock
 * rows from cache (scenario-first, each instrument streamed the whole X and
 * EX: 2.3x slower on PoCL). */
__kernel void xm_k_revalue8(const long n, const long ns, const long s0, const long nf,
                            __global const double *instd, __global const int *insti,
                            __global const double *X, __global const double *EX,
                            const double vol_floor, __global double *ell) {
  long i = get_global_id(0), s = 8 * get_global_id(1);
  if (i >= n || s >= ns)
    return;
  /* The tile's last group, when short, is the 8 scenarios ending at the tile's
   * end (overlapping the group before: the same values, lane by lane), so that
   * every scenario takes the same vector code whatever the tiling; only tiles
   * of fewer than 8 scenarios take the scalar code. */
  long sb = s + 8 <= ns ? s : ns - 8;
  int cls = insti[XM_II_CLASS * n + i];
  if (sb < 0) {
    for (long t = s; t < ns; t++)
      ell[i * ns + t] =
          xm_loss(i, n, instd, insti, X + (s0 + t) * nf, EX + (s0 + t) * nf, 0, vol_floor);
    return;
  }
  __global const double *x8 = X + (s0 + sb) * nf, *ex8 = EX + (s0 + sb) * nf;
  double8 v = cls == XM_CLASS_LINEAR ? xm_loss_linear_v8(i, n, instd, insti, ex8, nf)
              : cls == XM_CLASS_AMERICAN
                  ? xm_loss_american_v8(i, n, instd, insti, x8, ex8, nf, vol_floor)
                  : xm_loss_black_v8(i, n, instd, insti, x8, ex8, nf, vol_floor,
                                     cls == XM_CLASS_BLACK_LOGVOL);
  if (sb == s) {
    vstore8(v, 0, ell + i * ns + s);
    return;
  }
  double t[8];
  vstore8(v, 0, t);
  for (long k = s - sb; k < 8; k++)
    ell[i * ns + sb + k] = t[k];
}
#endif

/* EX = exp(X), elementwise over m shocks, 8 per work item (double8 exp is
 * vectorised on PoCL). */
__kernel void xm_k_exp(const long off, const long m, __global const double *X,
                       __global double *EX) {
  long j = 8 * get_global_id(0);
  X += off;
  EX += off;
  if (j + 8 <= m) {
    vstore8(exp(vload8(0, X + j)), 0, EX + j);
    return;
  }
  for (; j < m; j++)
    EX[j] = exp(X[j]);
}

__kernel void xm_k_aggregate(const long na, const long ns, const long s0, const int G,
                             __global const double *ell, __global const int *pos_start,
                             __global const int *pos_inst, __global const int *pos_silo,
                             __global const double *pos_qty, __global double *L, const long ca,
                             const long cs, const long ss) {
  long s = get_global_id(0), a = get_global_id(1);
  if (a >= na || s >= ns)
    return;
  xm_layout lay = {ca, cs, ss};
  xm_aggregate(a, s0 + s, G, ell + s, ns, pos_start, pos_inst, pos_silo, pos_qty, L, lay);
}

/* xm_k_aggregate with 8 scenarios per work item (dims (ceil(ns / 8), na);
 * needs ss = 1): the same xm_aggregate.h on double8, for CPU devices. */
#define XM_AGG_VECTOR 1
#define XM_AGG_T double8
#define XM_AGG_LOAD(p) vload8(0, (p))
#define XM_AGG_STORE(p, v) vstore8((v), 0, (p))
#define XM_AGG_FN(name) name##_v8
#include "xm_aggregate.h"
#undef XM_AGG_FN
#undef XM_AGG_STORE
#undef XM_AGG_LOAD
#undef XM_AGG_T
#undef XM_AGG_VECTOR
__kernel void xm_k_aggregate8(const long na, const long ns, const long s0, const int G,
                              __global const double *ell, __global const int *pos_start,
                              __global const int *pos_inst, __global const int *pos_silo,
                              __global const double *pos_qty, __global double *L, const long ca,
                              const long cs, const long ss) {
  long s = 8 * get_global_id(0), a = get_global_id(1);
  if (a >= na || s >= ns)
    return;
  xm_layout lay = {ca, cs, ss};
  if (s + 8 <= ns) {
    xm_aggregate_v8(a, s0 + s, G, ell + s, ns, pos_start, pos_inst, pos_silo, pos_qty, L, lay);
    return;
  }
  for (long t = s; t < ns; t++)
    xm_aggregate(a, s0 + t, G, ell + t, ns, pos_start, pos_inst, pos_silo, pos_qty, L, lay);
}

/* The sets of a group: tab[j * 6 ..] = S, k, measure, first row in L, set
 * index x, first weight (-1: none) of its set j (host/backend_opencl.c). */
#define XM_TAB(j, c) tab[(j)*6 + (c)]

/* One work item per (account, component, set of the group): dims (na,
 * (G + 1) n). Each set's tail scratch is its own [na x XM_TAIL]. */
__kernel void xm_k_reduce(const long na, const int G, __global const double *L, const long ca,
                          const long cs, const long ss, __global const long *tab, const int n,
                          __global const double *w, const long K, __global const int *pos_start,
                          __global const int *pos_silo, __global double *silo_set,
                          __global double *by_set, __global double *tail) {
  long a = get_global_id(0), q = get_global_id(1);
  int j = (int)(q / (G + 1)), c = (int)(q - (long)j * (G + 1));
  xm_layout lay = {ca, cs, ss};
  if (a >= na || j >= n)
    return;
  long w0 = XM_TAB(j, 5);
  xm_reduce_row(a, c, XM_TAB(j, 0), lay, G, L + XM_TAB(j, 3) * ss, (int)XM_TAB(j, 2), XM_TAB(j, 1),
                w + (w0 >= 0 ? w0 : 0), w0 >= 0, K, XM_TAB(j, 4), pos_start, pos_silo, by_set,
                silo_set, tail + j * na * XM_TAIL);
}

/* One work item per (account, set of the group): dims (na, n). */
__kernel void xm_k_attribute(const long na, const int G, __global const double *L, const long ca,
                             const long cs, const long ss, __global const long *tab, const int n,
                             __global const double *w, const long K, __global const int *pos_start,
                             __global const int *pos_silo, __global double *silo_set,
                             __global double *attr_set, __global const double *tail) {
  long a = get_global_id(0);
  int j = (int)get_global_id(1);
  xm_layout lay = {ca, cs, ss};
  if (a >= na || j >= n)
    return;
  long w0 = XM_TAB(j, 5);
  xm_attribute_account(a, XM_TAB(j, 0), lay, G, L + XM_TAB(j, 3) * ss, (int)XM_TAB(j, 2),
                       XM_TAB(j, 1), w + (w0 >= 0 ? w0 : 0), w0 >= 0, K, XM_TAB(j, 4), pos_start,
                       pos_silo, silo_set, attr_set, tail + j * na * XM_TAIL);
}

/* The streamed tails (xm_tail_row): tab[j * 7 ..] = the record's set j, first
 * row, rows, first, k, measure, first weight (-1: none) of segment j
 * (xm__tseg); dims (na, (G + 1) n). */
__kernel void xm_k_tail(const long na, const int G, __global const double *L, const long ca,
                        const long cs, const long ss, __global const long *tab, const int n,
                        __global const double *w, __global const int *pos_start,
                        __global const int *pos_silo, __global double *T, const long tk) {
  long a = get_global_id(0), q = get_global_id(1);
  int j = (int)(q / (G + 1)), c = (int)(q - (long)j * (G + 1));
  xm_layout lay = {ca, cs, ss};
  if (a >= na || j >= n)
    return;
  __global const long *t = tab + j * 7;
  long w0 = t[6];
  xm_tail_row(a, c, G, L + t[1] * ss, lay, t[2], (int)t[5], t[4], w + (w0 >= 0 ? w0 : 0), w0 >= 0,
              (int)t[3], pos_start, pos_silo, T + (t[0] * na + a) * XM_TREC(G, tk), tk);
}

/* The measures and attributions from the tails (xm_tail_measure): tab as
 * xm_k_reduce's, set j's records the j-th; dims (na, (G + 1) n). */
__kernel void xm_k_tail_reduce(const long na, const int G, __global const double *T, const long tk,
                               __global const long *tab, const int n, const long K,
                               __global const int *pos_start, __global const int *pos_silo,
                               __global double *by_set, __global double *silo_set,
                               __global double *attr_set) {
  long a = get_global_id(0), q = get_global_id(1);
  int j = (int)(q / (G + 1)), c = (int)(q - (long)j * (G + 1));
  if (a >= na || j >= n)
    return;
  xm_tail_measure(a, c, G, T + (j * na + a) * XM_TREC(G, tk), tk, (int)XM_TAB(j, 2), XM_TAB(j, 1),
                  K, XM_TAB(j, 4), pos_start, pos_silo, by_set, silo_set, attr_set);
}

__kernel void xm_k_combine(const long na, const int G, const long K, const long kst, const long x0,
                           const long kown, const long rx, __global double *by_set,
                           __global double *silo_set, __global double *attr_set,
                           __global const int *cross, __global const int *pos_start,
                           __global const int *pos_inst, __global const int *pos_silo,
                           __global const double *pos_qty, const long n,
                           __global const double *instd, __global const double *lq,
                           const double offset_cap, const double per_contract, const double beta,
                           const long sp, const double spw, const int sp_empty,
                           __global double *out_acct, __global double *out_silo) {
  long a = get_global_id(0);
  if (a < na)
    xm_combine_account(a, G, K, kst, kown, rx, by_set + x0, silo_set + x0, attr_set + x0, cross,
                       pos_start, pos_inst, pos_silo, pos_qty, n, instd, lq, offset_cap,
                       per_contract, beta, sp, spw, sp_empty, out_acct, out_silo);
}

/* The liquidity add-on (METHODOLOGY.md section 4.1): each row's
 * delta-notionals on its slots, then each account's add-ons. */
__kernel void xm_k_sens(const long n, __global const double *instd, __global const int *insti,
                        __global const double *sx, __global const double *sex,
                        const double vol_floor, __global double *sens) {
  long i = get_global_id(0);
  if (i < n)
    xm_sens_row(i, n, instd, insti, sx, sex, (XM_REAL)vol_floor, sens);
}

__kernel void xm_k_liquidity(const long na, const int G, __global const int *lq_start,
                             __global const int *lq_fac, __global const int *lq_cstart,
                             __global const int *lq_contrib, __global const int *pos_inst,
                             __global const double *pos_qty, __global const double *sens,
                             const long n, __global const double *fpar, const long F,
                             __global const double *xb, __global double *lq) {
  long a = get_global_id(0);
  if (a < na)
    xm_liquidity_account(a, G, lq_start, lq_fac, lq_cstart, lq_contrib, pos_inst, pos_qty, sens, n,
                         fpar, F, xb, lq);
}

/* Row scales of scenarios s0 .. s0+ns. */
__kernel void xm_k_mc_scale(const long ns, const long s0, const ulong seed, const int dist,
                            const double nu, const double h, __global double *scale) {
  long s = get_global_id(0);
  if (s < ns)
    scale[s] = xm_mc_scale(seed, (ulong)(s0 + s), dist, nu, h);
}

/* The Monte Carlo draws factor-major for the device's GEMM (backend_opencl.c,
 * xm__ocl_mc): ZT[f][s] = scale[s] * z_{s0+s}[f] for f < nf, s < ns, and 0 in
 * the padding up to ZT's np (row length) x 16 get_global_size(1) rows. Work
 * item (s, i) draws the XM_MC_PAIRS = 8 pairs of factors (2j, 2j+1),
 * j = 8 i .. 8 i + 7, of scenario s: the Philox blocks one by one, Box-Muller
 * on double8 (vector built-ins: 3x faster on PoCL, the same on GPUs). The
 * values are those of xm_mc_normal_pair. */
#define XM_MC_PAIRS 8
__kernel void xm_k_mc_normals(const long ns, const long s0, const long nf, const ulong seed,
                              __global const double *scale, const long np, __global double *ZT) {
  long s = get_global_id(0), i = get_global_id(1);
  long j0 = XM_MC_PAIRS * i;
  if (s >= np)
    return;
  __global double *col = ZT + 2 * j0 * np + s;
  if (s >= ns || 2 * j0 >= nf) {
    for (int f = 0; f < 2 * XM_MC_PAIRS; f++)
      col[f * np] = 0.0;
    return;
  }
  double a[XM_MC_PAIRS], b[XM_MC_PAIRS];
  for (int k = 0; k < XM_MC_PAIRS; k++) {
    philox4x32_ctr_t r = xm_philox(seed, (ulong)(s0 + s), (uint)(j0 + k), XM_STREAM_NORMAL);
    a[k] = xm_u01(r.v[0], r.v[1]);
    b[k] = xm_u01(r.v[2], r.v[3]);
  }
  double8 z0, z1;
  XM_BOX_MULLER(double8, vload8(0, a), vload8(0, b), z0, z1);
  double t[2 * XM_MC_PAIRS];
  vstore16(scale[s] *
               shuffle2(z0, z1, (ulong16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)),
           0, t);
  for (int f = 0; f < 2 * XM_MC_PAIRS; f++)
    col[f * np] = 2 * j0 + f < nf ? t[f] : 0.0;
}

/* X[s0 + s][f] = Xp_{f / bm}[s][f % bm], EX = exp(X): the row-major shocks from
 * the GEMM's column blocks (block b at Xp + b bm np, column-major bm x np;
 * bm is a multiple of 16). 8 factors per work item, work item i taking
 * scenario i / ceil(nf / 8); exp on double8 (PoCL vectorises the vector
 * built-in, not a scalar call in a loop). */
__kernel void xm_k_mc_gather(const long ns, const long s0, const long nf, const long bm,
                             const long np, __global const double *Xp, __global double *X,
                             __global double *EX) {
  long n8 = (nf + 7) / 8, i = get_global_id(0); /* one dimension: no idle lanes for small nf */
  long s = i / n8, f = 8 * (i - s * n8);        /* not i % n8: clang then emits an LLVM freeze,
                                                   which oclgrind's --uninitialized cannot run */
  if (s >= ns)
    return;
  __global const double *src = Xp + (f / bm) * bm * np + s * bm + f % bm;
  long o = (s0 + s) * nf + f;
  if (f + 8 <= nf) {
    double8 x = vload8(0, src);
    vstore8(x, 0, X + o);
    vstore8(exp(x), 0, EX + o);
    return;
  }
  for (long t = 0; t < nf - f; t++) {
    X[o + t] = src[t];
    EX[o + t] = exp(src[t]);
  }
}
