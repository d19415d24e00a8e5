/* The cpu backend: plain C over the same shared headers as the kernels. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "xm_internal.h"
#include "xm_io.h"

/* glibc's libmvec (>= 2.35, checked by CMakeLists.txt) has vector erfc (SSE2,
 * AVX, AVX2, AVX-512 variants): with these declarations, -fno-math-errno and
 * -fno-trapping-math (CMakeLists.txt) the compiler calls it from the vectorised
 * loops of xm__cpu_losses_*. Without libmvec they call the scalar erfc. */
#if defined(XM_HAVE_LIBMVEC)
#include <math.h>
#pragma omp declare simd notinbranch
double erfc(double);
#pragma omp declare simd notinbranch
float erfcf(float);
#endif
/* One clone of the loss loops per instruction set, chosen at load time
 * (ifunc): the build stays portable (no -march) and AVX-512 machines get
 * 8-wide vectors. */
#if defined(XM_HAVE_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define XM__SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define XM__SIMD_CLONES
#endif

#include "xm_price_host.h"
#include "xm_reduce.h"
#include "xm_rng.h"

/* Accounts per reduction tile: their rows (G + 1 of S doubles each) are
 * copied together into a per-thread scratch (backend_cpu.c, xm__cpu_evaluate). */
#define XM__REDUCE_TILE 4

/* The vectorisation request of the loss loops. clang cannot vectorise their
 * calls to erfc (no vector math library binding) and would warn that it
 * failed (-Wpass-failed): it gets none, and vectorises what it can itself. */
#if defined(__clang__)
#define XM__OMP_SIMD
#else
#define XM__OMP_SIMD _Pragma("omp simd")
#endif

/* Contract losses of one scenario for a block's n instruments, the linear
 * ones [0, nlin) and then the options [nlin, n) (xm__plan's order): two loops
 * of branch-free code, one instrument per vector lane. */
#define XM__CPU_LOSSES(suf, real)                                                                  \
  XM__SIMD_CLONES static void xm__cpu_losses_##suf(                                                \
      int64_t n, int64_t nlin, const double *instd, const int *insti, const double *x,             \
      const double *ex, real vol_floor, double *out) {                                             \
    XM__OMP_SIMD for (int64_t i = 0; i < nlin; i++) out[i] =                                       \
        xm_loss_linear_##suf(i, n, instd, insti, ex, 0);                                           \
    XM__OMP_SIMD for (int64_t i = nlin; i < n; i++) out[i] =                                       \
        xm_loss_option_##suf(i, n, instd, insti, x, ex, 0, vol_floor);                             \
  }
XM__CPU_LOSSES(d, double)
XM__CPU_LOSSES(f, float)

/* Under ulimit -v, OpenBLAS retries forever when it cannot map a thread's
 * buffer: its threads are cut to what the address space holds (with 256 MiB
 * left for the engine), the plan's memory less their buffers, and a limit
 * too tight for one thread is an error. */
static xm_status xm__cpu_open(xm_ctx *ctx) {
  xm__cpu_info(&ctx->dev);
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
  openblas_set_num_threads(bt < 1 ? 1 : bt);
  uint64_t blas = (uint64_t)(bt + 1) * XM__BLAS_BUFFER;
  ctx->dev.global_mem = ctx->dev.global_mem > blas + keep ? ctx->dev.global_mem - blas - keep : 0;
  ctx->dev.max_alloc = ctx->dev.global_mem;
  return XM_OK;
}

static void xm__cpu_close(xm_ctx *ctx) { (void)ctx; }

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

static xm_status xm__cpu_syrk(xm_ctx *ctx, int64_t W, int64_t F, const double *R, double *C) {
  (void)ctx;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)F, (int)W, 1.0 / (double)W, R, (int)F,
              0.0, C, (int)F);
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < i; j++)
      C[i * F + j] = C[j * F + i];
  return XM_OK;
}

/* Monte Carlo shocks of one set: X = diag(scale) Z L^T, Z ~ N(0, 1), the
 * product in place by TRMM (L is lower triangular: half the flops of GEMM). */
static xm_status xm__cpu_mc(xm_ctx *ctx, const xm__job *job, const xm__set *set, double *X) {
  const xm_config *cfg = job->cfg;
  int64_t S = set->S, F = job->F;
  (void)ctx;
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
  for (int64_t s = 0; s < S; s++) {
    double sc = xm_mc_scale(cfg->montecarlo.seed, (xm_u64)s,
                            cfg->montecarlo.distribution == XM_DIST_STUDENT_T, cfg->montecarlo.dof,
                            (double)cfg->horizon_days);
    for (int64_t f = 0; f < F; f += 2) {
      double z0, z1;
      xm_mc_normal_pair(cfg->montecarlo.seed, (xm_u64)s, (xm_u32)(f / 2), &z0, &z1);
      X[s * F + f] = sc * z0;
      if (f + 1 < F)
        X[s * F + f + 1] = sc * z1;
    }
  }
  if (S > 0 && F > 0)
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)S, (int)F,
                1.0, set->chol, (int)F, X, (int)F);
  return XM_OK;
}

static xm_status xm__cpu_evaluate(xm_ctx *ctx, xm__job *job) {
  const xm_config *cfg = job->cfg;
  xm_status st = XM_OK;
  int G = job->G;
  int64_t K = job->K, F = job->F;
  double **X = calloc((size_t)K, sizeof *X), **EX = calloc((size_t)K, sizeof *EX);
  double *ell = NULL, *L = NULL, *silo_set = NULL, *attr_set = NULL, *by_set = NULL, *tail = NULL;
  if (!X || !EX) {
    free(X);
    free(EX);
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
  double t0 = xm__now();
  for (int64_t x = 0; x < K; x++) {
    xm__set *set = &job->sets[x];
    if (!set->is_mc) {
      X[x] = set->X;
      continue;
    }
    X[x] = malloc((size_t)(set->S * F) * sizeof(double));
    if (!X[x]) {
      st = xm__fail(ctx, XM_ENOMEM, "Monte Carlo shocks of set %s", set->name);
      goto cleanup;
    }
    if ((st = xm__cpu_mc(ctx, job, set, X[x])) != XM_OK)
      goto cleanup;
    if (job->keep_mc && !set->X) {
      set->X = X[x];
      X[x] = NULL; /* now owned by the set; still read below through set->X */
    }
  }
  /* exp of every shock, once per set (price factors move by S exp(x)). */
  for (int64_t x = 0; x < K; x++) {
    const double *Xs = X[x] ? X[x] : job->sets[x].X;
    int64_t m = job->sets[x].S * F;
    if (!(EX[x] = malloc((size_t)(m + 1) * sizeof(double)))) {
      st = xm__fail(ctx, XM_ENOMEM, "exp of the shocks of set %s", job->sets[x].name);
      goto cleanup;
    }
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
    for (int64_t j = 0; j < m; j++)
      EX[x][j] = exp(Xs[j]);
  }
  job->t_scen = xm__now() - t0;
  t0 = xm__now();
  int64_t maxS, maxtile, maxna, maxinst;
  xm__job_extents(job, &maxS, &maxtile, &maxna, &maxinst);
  ell = malloc((size_t)(maxtile * maxinst + 1) * sizeof *ell);
  L = malloc((size_t)(maxS * maxna * (G + 1) + 1) * sizeof *L);
  by_set = malloc((size_t)(maxna * K + 1) * sizeof *by_set);
  silo_set = malloc((size_t)(maxna * G * K + 1) * sizeof *silo_set);
  attr_set = malloc((size_t)(maxna * G * K + 1) * sizeof *attr_set);
  tail = malloc((size_t)(maxna * XM_TAIL + 1) * sizeof *tail);
  if (!ell || !L || !by_set || !silo_set || !attr_set || !tail) {
    st = xm__fail(ctx, XM_ENOMEM, "engine buffers (%lld scenarios x %lld accounts)",
                  (long long)maxS, (long long)maxna);
    goto cleanup;
  }
  int single = cfg->precision == XM_SINGLE;
  double dt = (double)cfg->horizon_days / 252.0;
  for (int64_t b = 0; b < job->n_blocks; b++) {
    xm__block *bk = &job->blocks[b];
    int64_t n = bk->n_inst, na = bk->na, R = na * (G + 1);
    /* scenario-major: one scenario's losses of every account are adjacent */
    xm_layout lay = {G + 1, 1, R};
    /* xm__plan puts the linear instruments first: [0, nlin) */
    int64_t nlin = 0;
    while (nlin < n && !XM_TYPE_IS_OPTION(bk->insti[XM_II_TYPE * n + nlin]))
      nlin++;
    for (int64_t i = nlin; i < n; i++)
      if (!XM_TYPE_IS_OPTION(bk->insti[XM_II_TYPE * n + i])) {
        st = xm__fail(ctx, XM_EINTERNAL, "block %lld: instruments not in type order", (long long)b);
        goto cleanup;
      }
    for (int64_t i = 0; i < n; i++) {
      if (single)
        xm_today_f(i, n, bk->instd, bk->insti, (float)dt, (float)cfg->pricing.vol_term_power);
      else
        xm_today_d(i, n, bk->instd, bk->insti, dt, cfg->pricing.vol_term_power);
    }
    for (int64_t x = 0; x < K; x++) {
      const xm__set *set = &job->sets[x];
      const double *Xs = X[x] ? X[x] : set->X;
      for (int64_t s0 = 0; s0 < set->S; s0 += bk->tile) {
        int64_t ns = set->S - s0 < bk->tile ? set->S - s0 : bk->tile;
        /* One scenario per iteration: no index division in the inner loops. */
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
        for (int64_t s = 0; s < ns; s++) {
          const double *xrow = Xs + (s0 + s) * F, *erow = EX[x] + (s0 + s) * F;
          double *out = ell + s * n;
          if (single)
            xm__cpu_losses_f(n, nlin, bk->instd, bk->insti, xrow, erow,
                             (float)cfg->pricing.vol_floor, out);
          else
            xm__cpu_losses_d(n, nlin, bk->instd, bk->insti, xrow, erow, cfg->pricing.vol_floor,
                             out);
          for (int64_t a = 0; a < na; a++)
            xm_aggregate(a, s0 + s, G, out, 1, bk->pos_start, bk->pos_inst, bk->pos_silo,
                         bk->pos_qty, L, lay);
        }
      }
      int has_w = set->w != NULL;
      int64_t S = set->S, ta = XM__REDUCE_TILE;
      int failed = 0;
      /* The reductions read each (account, component) row several times: a
       * tile of ta accounts' rows is first copied out of the scenario-major L
       * (one pass, contiguous runs) into a row-major scratch that stays in
       * cache, and reduced there. */
#pragma omp parallel num_threads(ctx->threads) reduction(| : failed)
      {
        double *scr = malloc((size_t)(ta * (G + 1) * S + 1) * sizeof *scr);
        xm_layout tl = {(G + 1) * S, S, 1};
#pragma omp for schedule(dynamic, 1)
        for (int64_t a0 = 0; a0 < na; a0 += ta) {
          if (!scr) {
            failed = 1;
            continue;
          }
          int64_t nt = na - a0 < ta ? na - a0 : ta, nr = nt * (G + 1);
          const double *src = L + a0 * (G + 1);
          for (int64_t s = 0; s < S; s++)
            for (int64_t r = 0; r < nr; r++)
              scr[r * S + s] = src[s * lay.ss + r];
          for (int64_t q = 0; q < nr; q++)
            xm_reduce_row(q / (G + 1), (int)(q % (G + 1)), S, tl, G, scr, set->measure, set->k,
                          set->w, has_w, K, x, bk->pos_start + a0, bk->pos_silo, by_set + a0 * K,
                          silo_set + a0 * G * K, tail + a0 * XM_TAIL);
          for (int64_t a = 0; a < nt; a++)
            xm_attribute_account(a, S, tl, G, scr, set->measure, set->k, set->w, has_w, K, x,
                                 bk->pos_start + a0, bk->pos_silo, silo_set + a0 * G * K,
                                 attr_set + a0 * G * K, tail + a0 * XM_TAIL);
        }
        free(scr);
      }
      if (failed) {
        st = xm__fail(ctx, XM_ENOMEM, "reduction scratch (%lld accounts x %lld scenarios)",
                      (long long)ta, (long long)S);
        goto cleanup;
      }
      if (job->pnl && job->pnl[x]) {
        for (int64_t s = 0; s < set->S; s++)
          for (int64_t a = 0; a < na; a++)
            job->pnl[x][s * job->A + bk->a0 + a] = (float)L[s * R + a * (G + 1)];
      }
      xm__progress(job, b, x);
    }
#pragma omp parallel for schedule(static) num_threads(ctx->threads)
    for (int64_t a = 0; a < na; a++)
      xm_combine_account(a, G, K, by_set, silo_set, attr_set, bk->cross, bk->pos_start,
                         bk->pos_inst, bk->pos_qty, n, bk->insti, bk->instd,
                         cfg->cross_margin.offset_cap, cfg->minimum.per_contract,
                         job->out_acct + bk->a0 * XM_NOUT, job->out_silo + bk->a0 * G * 2);
    memcpy(job->by_set + bk->a0 * K, by_set, (size_t)(na * K) * sizeof *by_set);
  }
  job->t_eval = xm__now() - t0;
cleanup:
  for (int64_t x = 0; x < K; x++) {
    if (X[x] && X[x] != job->sets[x].X)
      free(X[x]);
    free(EX[x]);
  }
  free(EX);
  free(X);
  free(tail);
  free(attr_set);
  free(silo_set);
  free(by_set);
  free(L);
  free(ell);
  return st;
}

const xm__backend xm__backend_cpu = {
    .name = "cpu",
    .kind = XM_BACKEND_CPU,
    .open = xm__cpu_open,
    .close = xm__cpu_close,
    .price = xm__cpu_price,
    .syrk = xm__cpu_syrk,
    .evaluate = xm__cpu_evaluate,
};
