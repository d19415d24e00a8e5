/* The cpu backend: plain C over the same shared headers as the kernels. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* glibc's libmvec (>= 2.35, checked by CMakeLists.txt) has vector erfc, exp,
 * log, log2, sin and cos (SSE2, AVX, AVX2, AVX-512 variants): with these
 * declarations, -fno-math-errno and -fno-trapping-math (CMakeLists.txt) the
 * compiler calls it from the vectorised loops of xm__cpu_losses_* and of the
 * Monte Carlo normals (xm__cpu_normals). Without libmvec they call the scalar
 * functions. */
#if defined(XM_HAVE_LIBMVEC)
#include <math.h>
#pragma omp declare simd notinbranch
double erfc(double);
#pragma omp declare simd notinbranch
float erfcf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
double log2(double);
#pragma omp declare simd notinbranch
double sin(double);
#pragma omp declare simd notinbranch
double cos(double);
#endif
/* One clone of the loss loops per instruction set, chosen at load time
 * (ifunc): the build stays portable (no -march) and AVX-512 machines get
 * 8-wide vectors. */
#if defined(XM_HAVE_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define XM__SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define XM__SIMD_CLONES
#endif

#include "xm_internal.h"
#include "xm_io.h"
#include "xm_price_host.h"
#include "xm_reduce.h"
#include "xm_rng.h"

/* The steps XM_PROFILE times (one list: the enumeration and the names). */
#define XM__CPU_STEPS(X)                                                                           \
  X(mc)                                                                                            \
  X(exp) X(today) X(revalue) X(aggregate) X(reduce) X(tail) X(tail_reduce) X(liquidity) X(combine)
enum {
#define XM__CPU_STEP_ENUM(name) XM__CPU_S_##name,
  XM__CPU_STEPS(XM__CPU_STEP_ENUM)
#undef XM__CPU_STEP_ENUM
      XM__CPU_NSTEP
};

typedef struct xm__cpu_state {
  xm_precision prec;         /* of the run in progress */
  double sec[XM__CPU_NSTEP]; /* each step's seconds in the run (XM_PROFILE) */
  double *tile;              /* the revaluation's per-thread scratch (owned; grows, kept) */
  size_t tile_n;             /* its doubles */
} xm__cpu_state;

/* XM__CPU_CLOCK(ctx, step) at a step's start adds its time, to whichever
 * return, to the run's profile (gcc and clang: a cleanup; else nothing). */
typedef struct xm__cpu_clock {
  xm_ctx *ctx; /* NULL: not profiling */
  int step;
  double t0;
} xm__cpu_clock;
static void xm__cpu_clock_stop(const xm__cpu_clock *c) {
  if (c->ctx)
    ((xm__cpu_state *)c->ctx->state)->sec[c->step] += xm__now() - c->t0;
}
#if defined(__GNUC__)
#define XM__CPU_CLOCK(ctx, name)                                                                   \
  xm__cpu_clock xm__clock __attribute__((cleanup(xm__cpu_clock_stop), unused)) = {                 \
      (ctx)->profile ? (ctx) : NULL, XM__CPU_S_##name, (ctx)->profile ? xm__now() : 0.0}
#else
#define XM__CPU_CLOCK(ctx, name) (void)0
#endif

/* The vectorisation request of the loss loops. clang cannot vectorise their
 * calls to erfc (no vector math library binding) and would warn that it
 * failed (-Wpass-failed): it gets none, and vectorises what it can itself. */
#if defined(__clang__)
#define XM__OMP_SIMD
#else
#define XM__OMP_SIMD _Pragma("omp simd")
#endif

/* The losses again with lanes = scenarios (name##_td, name##_tf): the shock
 * columns of XM__CPU_TW scenarios transposed into a tile xt[f][j] (column f
 * of scenario j at xt[f * XM__CPU_TW + j]), so that the loop over a row's
 * scenarios loads each shock column as one vector and the row's terms once
 * (the OpenCL kernels' double8 losses, in C's scalar code under omp simd). */
#define XM_SHOCK(p, col) ((XM_REAL)(p)[(col)*XM__CPU_TW])
#define XM_REAL double
#define XM_FN(name) name##_td
#include "xm_pricing.h"
#include "xm_engine_price.h"
#undef XM_REAL
#undef XM_FN
#define XM_REAL float
#define XM_FN(name) name##_tf
#define XM_AMERICAN_F64 xm_price_american_d
#include "xm_pricing.h"
#include "xm_engine_price.h"
#undef XM_AMERICAN_F64
#undef XM_REAL
#undef XM_FN
#undef XM_SHOCK

/* Contract losses of the XM__CPU_TW scenarios of a transposed tile (xt, et:
 * the shocks and their exp) for rows lo .. hi of a block's n, row i's
 * scenario j at out[i * os + j]: one loop per revaluation class (xm__plan's
 * order: rows cls[c] .. cls[c + 1]), each row's scenarios one vector. Every
 * scenario takes a lane of the same vector code (a short tile's last lanes
 * repeat its last scenario), so that a loss does not depend on where in a
 * tile its scenario falls. */
#define XM__CPU_CLASS(c, call)                                                                     \
  for (int64_t i = cls[c] > lo ? cls[c] : lo; i < (cls[(c) + 1] < hi ? cls[(c) + 1] : hi); i++)    \
    XM__OMP_SIMD for (int j = 0; j < XM__CPU_TW; j++) out[i * os + j] = call;
#define XM__CPU_LOSSES(suf, real)                                                                  \
  XM__SIMD_CLONES static void xm__cpu_losses_##suf(                                                \
      const int64_t *cls, int64_t n, int64_t lo, int64_t hi, const double *instd,                  \
      const int *insti, const double *xt, const double *et, real vol_floor, double *out,           \
      int64_t os) {                                                                                \
    XM__CPU_CLASS(XM_CLASS_LINEAR, xm_loss_linear_##suf(i, n, instd, insti, et + j, 0))            \
    XM__CPU_CLASS(XM_CLASS_BLACK,                                                                  \
                  xm_loss_black_##suf(i, n, instd, insti, xt + j, et + j, 0, vol_floor, 0))        \
    XM__CPU_CLASS(XM_CLASS_BLACK_LOGVOL,                                                           \
                  xm_loss_black_##suf(i, n, instd, insti, xt + j, et + j, 0, vol_floor, 1))        \
  }
XM__CPU_LOSSES(td, double)
XM__CPU_LOSSES(tf, float)

/* American rows (Bjerksund-Stensland) the other way round: one scenario (x,
 * ex: its shock row) across the rows, XM__ROW_ALIGN rows a vector (the class
 * is a multiple of it: every row in the vector code), row i's loss at
 * out[i * os]. gcc does not vectorise their body over a row's scenarios
 * ("evolution of base is not affine"): that way each exp, log and erfc of it
 * was a scalar call, 4 times the time. */
#define XM__CPU_AMERICAN(suf, real)                                                                \
  XM__SIMD_CLONES static void xm__cpu_american_##suf(                                              \
      const int64_t *cls, int64_t n, const double *instd, const int *insti, const double *x,       \
      const double *ex, real vol_floor, double *out, int64_t os) {                                 \
    for (int64_t i0 = cls[XM_CLASS_AMERICAN]; i0 < cls[XM_CLASS_AMERICAN + 1];                     \
         i0 += XM__ROW_ALIGN)                                                                      \
      XM__OMP_SIMD for (int64_t i = i0; i < i0 + XM__ROW_ALIGN; i++) out[i * os] =                 \
          xm_loss_american_##suf(i, n, instd, insti, x, ex, 0, vol_floor);                         \
  }
XM__CPU_AMERICAN(d, double)
XM__CPU_AMERICAN(f, float)

/* Under ulimit -v, OpenBLAS retries forever when it cannot map a thread's
 * buffer: its threads are cut to what the address space holds (with 256 MiB
 * left for the engine), the plan's memory less their buffers, and a limit
 * too tight for one thread is an error. */
static xm_status xm__cpu_open(xm_ctx *ctx) {
  xm__cpu_info(&ctx->dev);
  if (!(ctx->state = calloc(1, sizeof(xm__cpu_state))))
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  uint64_t room = xm_address_space_room();
  if (room == UINT64_MAX)
    return XM_OK;
  uint64_t keep = (uint64_t)256 << 20;
  if (room < keep + 2 * XM__BLAS_BUFFER)
    return xm__fail(ctx, XM_ERESOURCE,
                    "ulimit -v leaves %llu MiB of address space: the cpu backend needs at least "
                    "%llu MiB (OpenBLAS maps %llu MiB a thread)",
                    (unsigned long long)(room >> 20),
                    (unsigned long long)((keep + 2 * XM__BLAS_BUFFER) >> 20),
                    (unsigned long long)(XM__BLAS_BUFFER >> 20));
  uint64_t fit = (room - keep) / XM__BLAS_BUFFER - 1; /* the caller's thread has one too */
  int bt = ctx->threads < (int)(fit < 4096 ? fit : 4096) ? ctx->threads : (int)fit;
  int now = openblas_get_num_threads(); /* never more: a new thread would spin */
  bt = bt < now ? bt : now;
  openblas_set_num_threads(bt < 1 ? 1 : bt);
  uint64_t blas = (uint64_t)(bt + 1) * XM__BLAS_BUFFER;
  ctx->dev.global_mem = ctx->dev.global_mem > blas + keep ? ctx->dev.global_mem - blas - keep : 0;
  ctx->dev.max_alloc = ctx->dev.global_mem;
  return XM_OK;
}

static void xm__cpu_close(xm_ctx *ctx) {
  if (ctx->state)
    free(((xm__cpu_state *)ctx->state)->tile);
  free(ctx->state);
  ctx->state = NULL;
}

static xm_status xm__cpu_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out) {
  long n = (long)c->n;
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (long i = 0; i < n; i++) {
    if (prec == XM_SINGLE) {
      float v = xm_unit_value_f(c->type[i], (float)c->underlying[i], (float)c->strike[i],
                                (float)c->expiry[i], (float)c->rate[i], (float)c->dividend[i],
                                (float)c->vol[i], c->call[i]);
      out[i] = (double)((float)c->multiplier[i] * v);
    } else {
      out[i] = c->multiplier[i] * xm_unit_value_d(c->type[i], c->underlying[i], c->strike[i],
                                                  c->expiry[i], c->rate[i], c->dividend[i],
                                                  c->vol[i], c->call[i]);
    }
  }
  return XM_OK;
}

/* ---- one run ---- */

/* The cpu backend's buffer: host memory, owned or a view of the engine's. */
struct xm__mem_s {
  void *p;
  int owned;
};
#define XM__P(m, type) ((type *)(m)->p)

static xm_status xm__cpu_begin(xm_ctx *ctx, xm_precision prec) {
  xm__cpu_state *st = ctx->state;
  st->prec = prec;
  memset(st->sec, 0, sizeof st->sec);
  return XM_OK;
}
/* XM_PROFILE: the run's seconds by step, as the OpenCL backend prints its
 * kernels' (wall time of each step: all threads together). */
static void xm__cpu_end(xm_ctx *ctx) {
  static const char *const names[XM__CPU_NSTEP] = {
#define XM__CPU_STEP_NAME(name) #name,
      XM__CPU_STEPS(XM__CPU_STEP_NAME)
#undef XM__CPU_STEP_NAME
  };
  const xm__cpu_state *st = ctx->state;
  if (!ctx->profile)
    return;
  fprintf(stderr, "xmargin profile (%s, ms):", ctx->dev.name);
  for (int i = 0; i < XM__CPU_NSTEP; i++)
    fprintf(stderr, " %s %.3f", names[i], 1e3 * st->sec[i]);
  fprintf(stderr, "\n");
}

/* A buffer of XM__HUGE_MIN bytes or more is aligned to 2 MiB and offered to
 * the kernel for transparent huge pages (Linux's default THP mode is
 * `madvise`: only advised memory gets them): the loop's loss buffers are
 * written afresh every evaluate, and in 4 KiB pages that was one page fault
 * per 4 KiB touched. Advice only: where it is not taken the buffer is an
 * ordinary one. */
#define XM__HUGE ((size_t)2 << 20)
#define XM__HUGE_MIN (4 * XM__HUGE)
static void *xm__cpu_mem(size_t bytes) {
#if defined(MADV_HUGEPAGE)
  if (bytes >= XM__HUGE_MIN) {
    void *p = NULL;
    size_t n = (bytes + XM__HUGE - 1) / XM__HUGE * XM__HUGE;
    if (posix_memalign(&p, XM__HUGE, n) != 0)
      return NULL;
    (void)madvise(p, n, MADV_HUGEPAGE);
    return p;
  }
#endif
  return malloc(bytes ? bytes : 1);
}

static xm_status xm__cpu_alloc(xm_ctx *ctx, size_t bytes, const void *init, xm__mem *out) {
  xm__mem m = malloc(sizeof *m);
  void *p = xm__cpu_mem(bytes);
  if (!m || !p) {
    free(m);
    free(p);
    *out = NULL;
    return xm__fail(ctx, XM_ENOMEM, "out of memory for a buffer of %zu bytes", bytes);
  }
  if (init && bytes)
    memcpy(p, init, bytes);
  m->p = p;
  m->owned = 1;
  *out = m;
  return XM_OK;
}

static xm_status xm__cpu_view(xm_ctx *ctx, const void *host, size_t bytes, xm__mem *out) {
  (void)bytes;
  xm__mem m = malloc(sizeof *m);
  if (!(*out = m))
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  m->p = (void *)host; /* read only: no step writes a view */
  m->owned = 0;
  return XM_OK;
}

static void xm__cpu_release(xm_ctx *ctx, xm__mem m) {
  (void)ctx;
  if (m && m->owned)
    free(m->p);
  free(m);
}

static xm_status xm__cpu_upload(xm_ctx *ctx, xm__mem dst, size_t off, const void *src,
                                size_t bytes) {
  (void)ctx;
  if (bytes)
    memcpy((char *)dst->p + off, src, bytes);
  return XM_OK;
}

static xm_status xm__cpu_download(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t bytes) {
  (void)ctx;
  if (bytes)
    memcpy(dst, (const char *)src->p + off, bytes);
  return XM_OK;
}

static xm_status xm__cpu_download_rows(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t row,
                                       size_t pitch, size_t n) {
  (void)ctx;
  for (size_t j = 0; j < n && row; j++)
    memcpy((char *)dst + j * row, (const char *)src->p + off + j * pitch, row);
  return XM_OK;
}

static xm_status xm__cpu_finish(xm_ctx *ctx) {
  (void)ctx;
  return XM_OK;
}

/* L account-major, each (account, component) row's scenarios contiguous (the
 * OpenCL backend's layout): aggregation writes XM__CPU_TW scenarios at once
 * and the reduction reads its rows in place. */
static xm_layout xm__cpu_layout(int64_t S, int64_t na, int G) {
  (void)na;
  xm_layout lay = {(G + 1) * S, S, 1};
  return lay;
}

/* Accounts per reduction work item (xm__cpu_reduce). */
#define XM__REDUCE_TILE 4

static uint64_t xm__cpu_reduce_scratch(const xm_ctx *ctx, int64_t S, int G) {
  (void)ctx, (void)S, (void)G;
  return 0; /* the rows are read in place */
}

static uint64_t xm__cpu_mc_scratch(const xm_ctx *ctx, int64_t ns, int64_t F, uint64_t max_bytes) {
  (void)ctx, (void)ns, (void)F, (void)max_bytes;
  return 0; /* in place: the draws in X, then TRMM */
}

static int64_t xm__cpu_preferred_tile(const xm_ctx *ctx, int64_t n) {
  return xm__tuned_cpu_tile(ctx, n);
}

/* The Box-Muller pairs of a row, padded to a multiple of this (the widest
 * vector), so that no pair is left to a scalar remainder loop, whose log2,
 * sin and cos differ from libmvec's in the last bits: every row's draws go
 * through the same code whatever its factor count. */
#define XM__MC_PAIR_ALIGN 8
static int64_t xm__mc_pairs(int64_t F) {
  return ((F + 1) / 2 + XM__MC_PAIR_ALIGN - 1) / XM__MC_PAIR_ALIGN * XM__MC_PAIR_ALIGN;
}

/* Row g of sc Z (Z ~ N(0, 1)) into x[F]: the Philox blocks and Box-Muller of
 * xm_mc_normal_pair (XM_BOX_MULLER's formula), with the math in vector loops
 * over the row's pairs (libmvec; the scalar functions' last bits differ: the
 * cpu backend's draws are its own, as every device's are). sin and cos in
 * loops of their own: in one loop gcc fuses them into a sincos that has no
 * vector variant to call. u1, u2, zs: xm__mc_pairs(F) doubles each. */
XM__SIMD_CLONES
static void xm__cpu_normals(xm_u64 seed, xm_u64 g, int64_t F, double sc, double *restrict x,
                            double *restrict u1, double *restrict u2, double *restrict zs) {
  int64_t np = xm__mc_pairs(F);
  for (int64_t i = 0; i < np; i++) {
    philox4x32_ctr_t r = xm_philox(seed, g, (xm_u32)i, XM_STREAM_NORMAL);
    u1[i] = xm_u01(r.v[0], r.v[1]);
    u2[i] = xm_u01(r.v[2], r.v[3]);
  }
  XM__OMP_SIMD
  for (int64_t i = 0; i < np; i++)
    zs[i] = XM_BM_SIN(u2[i]);
  XM__OMP_SIMD
  for (int64_t i = 0; i < np; i++) {
    double rad = XM_BM_RADIUS(u1[i]);
    u1[i] = rad * XM_BM_COS(u2[i]);
    zs[i] = rad * zs[i];
  }
  for (int64_t f = 0; f < F; f += 2) {
    x[f] = sc * u1[f / 2];
    if (f + 1 < F)
      x[f + 1] = sc * zs[f / 2];
  }
}

/* y = exp(x), 8 elements through the vector code. */
XM__SIMD_CLONES
static void xm__cpu_exp8(const double *restrict x, double *restrict y) {
  XM__OMP_SIMD
  for (int i = 0; i < 8; i++)
    y[i] = exp(x[i]);
}

/* y[0 .. m) = exp(x[0 .. m)), every element through the vector code, 8 at a
 * time (the last 8 padded): a scalar remainder's exp differs from libmvec's
 * in the last bit, and which elements a remainder takes depends on the call's
 * length and its threads' split, so a shock's exp depended on its tile (a
 * plan's budget, a rank's scenario range). */
static void xm__cpu_exp_all(xm_ctx *ctx, const double *x, double *y, int64_t m) {
  int64_t m8 = m / 8 * 8;
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (int64_t j = 0; j < m8; j += 8)
    xm__cpu_exp8(x + j, y + j);
  if (m8 < m) {
    double t[8] = {0}, u[8];
    memcpy(t, x + m8, (size_t)(m - m8) * sizeof *t);
    xm__cpu_exp8(t, u);
    memcpy(y + m8, u, (size_t)(m - m8) * sizeof *u);
  }
}

/* Monte Carlo shocks X = diag(scale) Z L^T, Z ~ N(0, 1), the product in place
 * by TRMM (L is lower triangular: half the flops of GEMM), and EX = exp(X). */
static xm_status xm__cpu_mc(xm_ctx *ctx, const xm__mc_args *a, int64_t s0, int64_t ns, int64_t r0,
                            uint64_t max_bytes, xm__mem Xm, xm__mem EXm) {
  XM__CPU_CLOCK(ctx, mc);
  (void)max_bytes;
  int64_t F = a->F;
  double *X = XM__P(Xm, double) + r0 * F, *EX = XM__P(EXm, double) + r0 * F;
  int failed = 0;
  size_t np = (size_t)xm__mc_pairs(F);
#pragma omp parallel num_threads(ctx->threads) reduction(| : failed)
  {
    double *u = aligned_alloc(64, 3 * np * sizeof *u); /* np: a multiple of 8 */
    failed = !u;
#pragma omp for schedule(static)
    for (int64_t s = 0; s < ns; s++) {
      xm_u64 g = (xm_u64)(s0 + s);
      double sc = xm_mc_scale(a->seed, g, a->student_t, a->dof, a->horizon);
      if (u)
        xm__cpu_normals(a->seed, g, F, sc, X + s * F, u, u + np, u + 2 * np);
    }
    free(u);
  }
  if (failed)
    return xm__fail(ctx, XM_ENOMEM, "Monte Carlo: the normals of %lld factors", (long long)F);
  /* X = Z L^T in blocks of XM__MC_ROWS rows aligned on the whole set's
   * scenario numbers (block j: scenarios j R .. (j + 1) R), each one call of
   * OpenBLAS on one thread, a block this call holds only part of computed in
   * a zero-padded copy with its rows where the whole block has them, every
   * block in a copy of the same 64-byte alignment: every scenario then goes
   * through the same kernel at the same row of a call on the same alignment,
   * whatever the tile, the part or the thread. OpenBLAS gives a call's last
   * rows, the rows where its threads split M, and (it seems) another
   * alignment of the matrix other kernels (other bits in the 17th digit): a
   * draw depended on the tile (--mem-limit), a rank's part, and OpenBLAS's
   * thread count. */
  enum { XM__MC_ROWS = 256 };
  int64_t j0 = s0 / XM__MC_ROWS, j1 = (s0 + ns + XM__MC_ROWS - 1) / XM__MC_ROWS;
  int nb = xm__blas_serial();
#pragma omp parallel num_threads(ctx->threads) reduction(| : failed)
  {
    double *pad = NULL;
#pragma omp for schedule(static)
    for (int64_t j = j0; j < j1; j++) {
      int64_t b0 = j * XM__MC_ROWS, lo = b0 > s0 ? b0 : s0;
      int64_t hi = b0 + XM__MC_ROWS < s0 + ns ? b0 + XM__MC_ROWS : s0 + ns;
      double *blk = X + (lo - s0) * F;
      if (!pad && !(pad = aligned_alloc(64, (size_t)(XM__MC_ROWS * F) * sizeof *pad))) {
        failed = 1;
        continue;
      }
      if (hi - lo < XM__MC_ROWS)
        memset(pad, 0, (size_t)(XM__MC_ROWS * F) * sizeof *pad);
      memcpy(pad + (lo - b0) * F, blk, (size_t)((hi - lo) * F) * sizeof *pad);
      cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, XM__MC_ROWS,
                  (int)F, 1.0, a->chol, (int)F, pad, (int)F);
      memcpy(blk, pad + (lo - b0) * F, (size_t)((hi - lo) * F) * sizeof *pad);
    }
    free(pad);
  }
  xm__blas_restore(nb);
  if (failed)
    return xm__fail(ctx, XM_ENOMEM, "Monte Carlo: a block of %d scenarios x %lld factors",
                    (int)XM__MC_ROWS, (long long)F);
  xm__cpu_exp_all(ctx, X, EX, ns * F);
  return XM_OK;
}

static xm_status xm__cpu_exp(xm_ctx *ctx, int64_t off, int64_t m, xm__mem Xm, xm__mem EXm) {
  XM__CPU_CLOCK(ctx, exp);
  xm__cpu_exp_all(ctx, XM__P(Xm, const double) + off, XM__P(EXm, double) + off, m);
  return XM_OK;
}

static xm_status xm__cpu_today(xm_ctx *ctx, const xm__dblock *b, double dt, double p) {
  XM__CPU_CLOCK(ctx, today);
  int single = ((xm__cpu_state *)ctx->state)->prec == XM_SINGLE;
  double *instd = XM__P(b->instd, double);
  const int *insti = XM__P(b->insti, const int);
  for (int64_t i = 0; i < b->n; i++) {
    if (single)
      xm_today_f(i, b->n, instd, insti, (float)dt, (float)p);
    else
      xm_today_d(i, b->n, instd, insti, dt, p);
  }
  return XM_OK;
}

/* ell[i][s], instrument-major (row i of the tile's ns scenarios), so that
 * aggregation reads XM__CPU_TW scenarios of an instrument at once. A thread
 * takes XM__CPU_TW scenarios at a time, transposes their shocks
 * (xm__cpu_losses_t*) and writes each row's XM__CPU_TW losses as two lines of
 * ell; a tile's short last group goes through a window of XM__CPU_ROWS rows,
 * copied out; the American rows go a scenario at a time (xm__cpu_american_*). */
#define XM__CPU_ROWS 512
static xm_status xm__cpu_revalue(xm_ctx *ctx, const xm__dblock *b, xm__mem Xm, xm__mem EXm,
                                 int64_t F, int64_t row0, int64_t ns, double vol_floor,
                                 xm__mem ellm) {
  XM__CPU_CLOCK(ctx, revalue);
  xm__cpu_state *st = ctx->state;
  int single = st->prec == XM_SINGLE;
  const double *X = XM__P(Xm, const double), *EX = XM__P(EXm, const double);
  const double *instd = XM__P(b->instd, const double);
  const int *insti = XM__P(b->insti, const int);
  double *ell = XM__P(ellm, double);
  int64_t n = b->n, tw = XM__CPU_TW;
  /* each thread's transposed shocks and exps and the short group's window,
   * kept from call to call (no fresh pages a tile) */
  size_t per = (size_t)(2 * F * tw + XM__CPU_ROWS * tw), want = per * (size_t)ctx->threads;
  if (st->tile_n < want) {
    free(st->tile);
    st->tile_n = 0;
    if (!(st->tile = xm__cpu_mem(want * sizeof(double))))
      return xm__fail(ctx, XM_ENOMEM, "the revaluation's shock tiles (%zu bytes)",
                      want * sizeof(double));
    st->tile_n = want;
  }
#pragma omp parallel num_threads(ctx->threads)
  {
    double *xt = st->tile + per * (size_t)omp_get_thread_num(), *et = xt + F * tw;
    double *win = et + F * tw;
#pragma omp for schedule(static)
    for (int64_t s8 = 0; s8 < ns; s8 += tw) {
      int64_t m = ns - s8 < tw ? ns - s8 : tw;
      for (int64_t f = 0; f < F; f++)
        for (int64_t j = 0; j < tw; j++) {
          int64_t r = (row0 + s8 + (j < m ? j : m - 1)) * F + f;
          xt[f * tw + j] = X[r], et[f * tw + j] = EX[r];
        }
      for (int64_t lo = 0; lo < n; lo += m == tw ? n : XM__CPU_ROWS) {
        int64_t hi = m == tw || n - lo < XM__CPU_ROWS ? n : lo + XM__CPU_ROWS;
        double *out = m == tw ? ell + s8 : win - lo * tw;
        int64_t os = m == tw ? ns : tw;
        if (single)
          xm__cpu_losses_tf(b->cls, n, lo, hi, instd, insti, xt, et, (float)vol_floor, out, os);
        else
          xm__cpu_losses_td(b->cls, n, lo, hi, instd, insti, xt, et, vol_floor, out, os);
        for (int64_t i = lo; m < tw && i < hi; i++)
          memcpy(ell + i * ns + s8, win + (i - lo) * tw, (size_t)m * sizeof(double));
      }
      for (int64_t s = s8; s < s8 + m && b->cls[XM_CLASS_AMERICAN + 1] > b->cls[XM_CLASS_AMERICAN];
           s++) {
        const double *xs = X + (row0 + s) * F, *es = EX + (row0 + s) * F;
        if (single)
          xm__cpu_american_f(b->cls, n, instd, insti, xs, es, (float)vol_floor, ell + s, ns);
        else
          xm__cpu_american_d(b->cls, n, instd, insti, xs, es, vol_floor, ell + s, ns);
      }
    }
  }
  return XM_OK;
}

/* The aggregation XM__CPU_TW (16) scenarios at a time: xm_aggregate.h on a
 * pair of C's 8-double vectors (two OpenCL double8), or where the machine
 * has no 512-bit vectors on four of 4 doubles (one 8- or 16-double vector's
 * sums lived on gcc's stack there: the AVX2 aggregation ran at 1/8 of its
 * floor), each lane the scalar sums add for add; a tile's last ns % 16
 * scenarios by the scalar function (the same bits at any width). A position's
 * index, silo and quantity are read once for its 16 scenarios (two lines of
 * ell). Loads and stores through vector types of the elements' alignment (a
 * vector type aliases its element type); the operations as macros, not
 * functions: gcc notes how a struct of vectors would be passed out of line
 * (-Wpsabi) even for an inlined one. */
typedef double xm__d8 __attribute__((vector_size(64)));
typedef double xm__d8u __attribute__((vector_size(64), aligned(8)));
typedef struct xm__d8x2 {
  xm__d8 lo, hi;
} xm__d8x2;
#define XM_AGG_VECTOR 1
#define XM_AGG_T xm__d8x2
#define XM_AGG_ZERO                                                                                \
  ((xm__d8x2){{0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}})
#define XM_AGG_LOAD(p) ((xm__d8x2){*(const xm__d8u *)(p), *(const xm__d8u *)((p) + 8)})
#define XM_AGG_STORE(p, v) (*(xm__d8u *)(p) = (v).lo, *(xm__d8u *)((p) + 8) = (v).hi)
#define XM_AGG_MUL(q, v) ((xm__d8x2){(q) * (v).lo, (q) * (v).hi})
#define XM_AGG_ADD(x, y) ((xm__d8x2){(x).lo + (y).lo, (x).hi + (y).hi})
#define XM_AGG_FN(name) name##_v8x2
#include "xm_aggregate.h"
#undef XM_AGG_FN
#undef XM_AGG_STORE
#undef XM_AGG_LOAD
#undef XM_AGG_T
typedef double xm__d4 __attribute__((vector_size(32)));
typedef double xm__d4u __attribute__((vector_size(32), aligned(8)));
typedef struct xm__d4x4 {
  xm__d4 a, b, c, d;
} xm__d4x4;
#define XM_AGG_T xm__d4x4
#define XM__D4Z                                                                                    \
  { 0.0, 0.0, 0.0, 0.0 }
#define XM_AGG_ZERO ((xm__d4x4){XM__D4Z, XM__D4Z, XM__D4Z, XM__D4Z})
#define XM__D4L(p, j) (*(const xm__d4u *)((p) + 4 * (j)))
#define XM_AGG_LOAD(p) ((xm__d4x4){XM__D4L(p, 0), XM__D4L(p, 1), XM__D4L(p, 2), XM__D4L(p, 3)})
#define XM_AGG_STORE(p, v)                                                                         \
  (*(xm__d4u *)(p) = (v).a, *(xm__d4u *)((p) + 4) = (v).b, *(xm__d4u *)((p) + 8) = (v).c,          \
   *(xm__d4u *)((p) + 12) = (v).d)
#define XM_AGG_MUL(q, v) ((xm__d4x4){(q) * (v).a, (q) * (v).b, (q) * (v).c, (q) * (v).d})
#define XM_AGG_ADD(x, y) ((xm__d4x4){(x).a + (y).a, (x).b + (y).b, (x).c + (y).c, (x).d + (y).d})
#define XM_AGG_FN(name) name##_v4x4
#include "xm_aggregate.h"
#undef XM_AGG_FN
#undef XM_AGG_STORE
#undef XM__D4L
#undef XM_AGG_LOAD
#undef XM__D4Z
#undef XM_AGG_T
#undef XM_AGG_VECTOR

/* Whether the aggregation takes 512-bit vectors: the machine has them and
 * XM_CPU_NARROW=1 does not ask for the 256-bit ones (test_engine compares
 * the two). */
static int xm__cpu_wide(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") != 0 && !xm__env_flag("XM_CPU_NARROW", 0);
#else
  return 0;
#endif
}

/* Accounts a0 .. a1's losses in the tile's scenarios s .. s + m (m <=
 * XM__CPU_TW; ell[i][s], stride ns): 16 at once, fewer one at a time. */
XM__SIMD_CLONES
static void xm__cpu_aggregate_block(int64_t a0, int64_t a1, int64_t s0, int64_t s, int64_t m,
                                    int64_t ns, int G, const double *ell, const int *start,
                                    const int *pinst, const int *psilo, const double *pqty,
                                    double *L, xm_layout lay, int wide) {
  for (int64_t a = a0; a < a1; a++) {
    if (m == XM__CPU_TW && wide)
      xm_aggregate_v8x2(a, s0 + s, G, ell + s, ns, start, pinst, psilo, pqty, L, lay);
    else if (m == XM__CPU_TW)
      xm_aggregate_v4x4(a, s0 + s, G, ell + s, ns, start, pinst, psilo, pqty, L, lay);
    else
      for (int64_t j = s; j < s + m; j++)
        xm_aggregate(a, s0 + j, G, ell + j, ns, start, pinst, psilo, pqty, L, lay);
  }
}

static xm_status xm__cpu_aggregate(xm_ctx *ctx, const xm__dblock *b, int64_t s0, int64_t ns,
                                   const xm__dwork *w) {
  XM__CPU_CLOCK(ctx, aggregate);
  const double *ell = XM__P(w->ell, const double);
  const int *start = XM__P(b->start, const int), *pinst = XM__P(b->pinst, const int);
  const int *psilo = XM__P(b->psilo, const int);
  const double *pqty = XM__P(b->pqty, const double);
  double *L = XM__P(w->L, double);
  int64_t na = b->na, tw = XM__CPU_TW, nb = (ns + tw - 1) / tw;
  int wide = xm__cpu_wide();
  /* Each thread the XM__CPU_TW-scenario blocks it priced (xm__cpu_revalue's static
   * split of the same blocks), into every account: its part of ell is still
   * in its cache. When the tile has fewer blocks than threads, every block
   * by account ranges. */
  int64_t parts = nb >= ctx->threads ? 1 : (ctx->threads + nb - 1) / nb;
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (int64_t q = 0; q < nb * parts; q++) {
    int64_t blk = q / parts, part = q % parts, s = blk * tw;
    int64_t a0 = na * part / parts, a1 = na * (part + 1) / parts;
    xm__cpu_aggregate_block(a0, a1, s0, s, ns - s < tw ? ns - s : tw, ns, w->G, ell, start, pinst,
                            psilo, pqty, L, w->lay, wide);
  }
  return XM_OK;
}

/* The reductions of a tile of XM__REDUCE_TILE accounts a work item, on L's
 * rows in place (account-major: each row's scenarios contiguous). */
static xm_status xm__cpu_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                                const xm__dwork *w) {
  XM__CPU_CLOCK(ctx, reduce);
  int G = w->G;
  int64_t K = w->K, na = b->na, ta = XM__REDUCE_TILE;
  int64_t nt = (na + ta - 1) / ta; /* account tiles; the work is (set, tile) pairs */
  const double *L = XM__P(w->L, const double), *W = w->W ? XM__P(w->W, const double) : NULL;
  const int *start = XM__P(b->start, const int), *psilo = XM__P(b->psilo, const int);
  double *by = XM__P(w->by, double), *silo = XM__P(w->silo, double);
  double *attr = XM__P(w->attr, double);
  xm_layout lay = w->lay;
#pragma omp parallel num_threads(ctx->threads)
  {
    double tail[XM__REDUCE_TILE * XM_TAIL]; /* between a row's measure and its attribution */
#pragma omp for schedule(dynamic, 1)
    for (int64_t q = 0; q < nt * n; q++) {
      const xm__dset *d = &ds[q / nt];
      int64_t a0 = (q % nt) * ta, S = d->S, x = d->x;
      int64_t nta = na - a0 < ta ? na - a0 : ta, nr = nta * (G + 1);
      const double *wt = d->w_off >= 0 && W ? W + d->w_off : NULL;
      const double *src = L + a0 * lay.ca + d->row * lay.ss; /* set d's rows of the tile */
      for (int64_t r = 0; r < nr; r++)
        xm_reduce_row(r / (G + 1), (int)(r % (G + 1)), S, lay, G, src, (int)d->measure, d->k, wt,
                      wt != NULL, K, x, start + a0, psilo, by + a0 * K, silo + a0 * G * K, tail);
      for (int64_t a = 0; a < nta; a++)
        xm_attribute_account(a, S, lay, G, src, (int)d->measure, d->k, wt, wt != NULL, K, x,
                             start + a0, psilo, silo + a0 * G * K, attr + a0 * G * K, tail);
    }
  }
  return XM_OK;
}

/* The streamed tails: a work item per (segment, account), its G + 1 rows. */
static xm_status xm__cpu_tail(xm_ctx *ctx, const xm__dblock *b, const xm__tseg *seg, int n,
                              const xm__dwork *w) {
  XM__CPU_CLOCK(ctx, tail);
  int G = w->G;
  int64_t na = b->na, tk = w->tk, rec = XM_TREC(G, tk);
  const double *L = XM__P(w->L, const double), *W = w->W ? XM__P(w->W, const double) : NULL;
  const int *start = XM__P(b->start, const int), *psilo = XM__P(b->psilo, const int);
  double *T = XM__P(w->T, double);
#pragma omp parallel for schedule(dynamic, 4) num_threads(ctx->threads)
  for (int64_t q = 0; q < na * n; q++) {
    const xm__tseg *d = &seg[q / na];
    int64_t a = q % na;
    const double *wt = d->w_off >= 0 && W ? W + d->w_off : NULL;
    for (int c = 0; c <= G; c++)
      xm_tail_row(a, c, G, L + d->r0 * w->lay.ss, w->lay, d->ns, (int)d->measure, d->k, wt,
                  wt != NULL, (int)d->first, start, psilo, T + (d->j * na + a) * rec, tk);
  }
  return XM_OK;
}

static xm_status xm__cpu_tail_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                                     const xm__dwork *w) {
  XM__CPU_CLOCK(ctx, tail_reduce);
  int G = w->G;
  int64_t na = b->na, tk = w->tk, rec = XM_TREC(G, tk), K = w->K;
  const int *start = XM__P(b->start, const int), *psilo = XM__P(b->psilo, const int);
  const double *T = XM__P(w->T, const double);
  double *by = XM__P(w->by, double), *silo = XM__P(w->silo, double);
  double *attr = XM__P(w->attr, double);
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (int64_t q = 0; q < na * n; q++) {
    int64_t j = q / na, a = q % na;
    for (int c = 0; c <= G; c++)
      xm_tail_measure(a, c, G, T + (j * na + a) * rec, tk, (int)ds[j].measure, ds[j].k, K, ds[j].x,
                      start, psilo, by, silo, attr);
  }
  return XM_OK;
}

static xm_status xm__cpu_liquidity(xm_ctx *ctx, const xm__dblock *b, xm__mem sxm, xm__mem sexm,
                                   xm__mem fparm, int64_t F, double vol_floor, const xm__dwork *w) {
  XM__CPU_CLOCK(ctx, liquidity);
  int single = ((xm__cpu_state *)ctx->state)->prec == XM_SINGLE;
  const double *instd = XM__P(b->instd_s, const double), *sx = XM__P(sxm, const double);
  const double *sex = XM__P(sexm, const double), *fpar = XM__P(fparm, const double);
  const int *insti = XM__P(b->insti_s, const int);
  double *sens = XM__P(b->sens, double), *lq = XM__P(w->lq, double);
  int64_t n = b->n, na = b->na;
#pragma omp parallel num_threads(ctx->threads)
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) {
      if (single)
        xm_sens_row_f(i, n, instd, insti, sx, sex, (float)vol_floor, sens);
      else
        xm_sens_row_d(i, n, instd, insti, sx, sex, vol_floor, sens);
    }
#pragma omp for schedule(static)
    for (int64_t a = 0; a < na; a++)
      xm_liquidity_account(a, w->G, XM__P(b->lq_start, const int), XM__P(b->lq_fac, const int),
                           XM__P(b->lq_cstart, const int), XM__P(b->lq_contrib, const int),
                           XM__P(b->pinst, const int), XM__P(b->pqty, const double), sens, n, fpar,
                           F, XM__P(b->xb, const double), lq);
  }
  return XM_OK;
}

static xm_status xm__cpu_combine(xm_ctx *ctx, const xm__dblock *b, const xm__dwork *w,
                                 double offset_cap, double per_contract, double beta) {
  XM__CPU_CLOCK(ctx, combine);
  double *by = XM__P(w->by, double), *silo = XM__P(w->silo, double);
  double *attr = XM__P(w->attr, double);
  const double *lq = XM__P(w->lq, const double);
  const int *cross = XM__P(b->cross, const int), *start = XM__P(b->start, const int);
  const int *pinst = XM__P(b->pinst, const int), *psilo = XM__P(b->psilo, const int);
  const double *pqty = XM__P(b->pqty, const double), *instd = XM__P(b->instd, const double);
  double *oa = XM__P(w->out_acct, double), *os = XM__P(w->out_silo, double);
  int64_t na = b->na;
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (int64_t a = 0; a < na; a++)
    xm_combine_account(a, w->G, w->kd, w->K, w->kown, w->rx, by + w->x0, silo + w->x0, attr + w->x0,
                       cross, start, pinst, psilo, pqty, b->n, instd, lq, offset_cap, per_contract,
                       beta, w->sp, w->sp_w, w->sp_empty, oa, os);
  return XM_OK;
}

static xm_status xm__cpu_add(xm_ctx *ctx, int64_t n, xm__mem src, xm__mem dst) {
  (void)ctx;
  const double *x = XM__P(src, const double);
  double *y = XM__P(dst, double);
  for (int64_t i = 0, c = 1 << 30; i < n; i += c) /* BLAS counts in int */
    cblas_daxpy((int)(n - i < c ? n - i : c), 1.0, x + i, 1, y + i, 1);
  return XM_OK;
}

static xm_status xm__cpu_list(xm_device_info **list, size_t *n, size_t *cap) {
  if (*n + 1 > *cap) {
    xm_device_info *bigger = realloc(*list, (*cap * 2 + 1) * sizeof **list);
    if (!bigger)
      return XM_ENOMEM;
    *list = bigger;
    *cap = *cap * 2 + 1;
  }
  xm__cpu_info(&(*list)[(*n)++]);
  return XM_OK;
}

const xm__backend xm__backend_cpu = {
    .name = "cpu",
    .kind = XM_BACKEND_CPU,
    .host_memory = 1,
    .list = xm__cpu_list,
    .open = xm__cpu_open,
    .close = xm__cpu_close,
    .price = xm__cpu_price,
    .begin = xm__cpu_begin,
    .end = xm__cpu_end,
    .alloc = xm__cpu_alloc,
    .view = xm__cpu_view,
    .release = xm__cpu_release,
    .upload = xm__cpu_upload,
    .download = xm__cpu_download,
    .download_rows = xm__cpu_download_rows,
    .finish = xm__cpu_finish,
    .layout = xm__cpu_layout,
    .reduce_scratch = xm__cpu_reduce_scratch,
    .mc_scratch = xm__cpu_mc_scratch,
    .preferred_tile = xm__cpu_preferred_tile,
    .mc = xm__cpu_mc,
    .exp_shocks = xm__cpu_exp,
    .today = xm__cpu_today,
    .revalue = xm__cpu_revalue,
    .aggregate = xm__cpu_aggregate,
    .reduce = xm__cpu_reduce,
    .tail = xm__cpu_tail,
    .tail_reduce = xm__cpu_tail_reduce,
    .liquidity = xm__cpu_liquidity,
    .add = xm__cpu_add,
    .combine = xm__cpu_combine,
};
