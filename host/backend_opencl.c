/* The OpenCL backend: any OpenCL 1.2+ device (GPUs, PoCL on the CPU). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "xm_internal.h"
#include "xm_reduce.h"

#define XM__CL(ctx, call)                                                                          \
  do {                                                                                             \
    cl_int e__ = (call);                                                                           \
    if (e__ != CL_SUCCESS) {                                                                       \
      st = xm__fail((ctx), xm__cl_status(e__), "%s failed: %s (%s:%d)", #call, xm__cl_errstr(e__), \
                    __FILE__, __LINE__);                                                           \
      goto cleanup;                                                                                \
    }                                                                                              \
  } while (0)

static xm_status xm__build(xm_ctx *ctx, xm_precision prec) {
  xm__ocl *o = &ctx->ocl;
  cl_int e = CL_SUCCESS;
  const char *src = xm__kernel_xmargin;
  /* XM_TEST_FAIL_OPENCL=build: a source that does not compile (tests the build
   * log and the fallback). */
  const char *fault = getenv("XM_TEST_FAIL_OPENCL");
  if (fault && strcmp(fault, "build") == 0)
    src = "__kernel void xm_broken(void) { this is not OpenCL C; }";
  size_t len = strlen(src);
  cl_program prog = clCreateProgramWithSource(o->context, 1, &src, &len, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateProgramWithSource: %s", xm__cl_errstr(e));
  const char *opts =
      prec == XM_SINGLE ? (ctx->dev.is_gpu ? "-cl-std=CL1.2 -DXM_SINGLE=1"
                                           : "-cl-std=CL1.2 -DXM_SINGLE=1 -DXM_FORCE_INLINE=1")
                        : (ctx->dev.is_gpu ? "-cl-std=CL1.2" : "-cl-std=CL1.2 -DXM_FORCE_INLINE=1");
  e = clBuildProgram(prog, 1, &o->device, opts, NULL, NULL);
  if (e != CL_SUCCESS) {
    size_t loglen = 0;
    clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &loglen);
    char *log = malloc(loglen + 1);
    if (log) {
      log[0] = '\0';
      clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, loglen, log, NULL);
      log[loglen] = '\0';
    }
    xm__fail(ctx, XM_EBUILD, "building the %s kernels for %s failed (%s); build log:\n%s",
             prec == XM_SINGLE ? "single-precision" : "double-precision", ctx->dev.name,
             xm__cl_errstr(e), log ? log : "(no memory for the log)");
    free(log);
    clReleaseProgram(prog);
    return XM_EBUILD;
  }
  o->program[prec] = prog;
  return XM_OK;
}

static xm_status xm__ocl_open(xm_ctx *ctx) {
  xm__ocl *o = &ctx->ocl;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  st = xm__ocl_find(ctx->dev.platform_index, ctx->dev.device_index, &ctx->dev, &o->platform,
                    &o->device);
  if (st != XM_OK)
    return xm__fail(ctx, st, "OpenCL device %s is gone", ctx->dev.spec);
  if (!ctx->dev.fp64)
    return xm__fail(ctx, XM_EUNSUPPORTED,
                    "%s has no double precision (cl_khr_fp64), which the reduction needs",
                    ctx->dev.name);
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)o->platform, 0};
  o->context = clCreateContext(props, 1, &o->device, NULL, NULL, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateContext: %s", xm__cl_errstr(e));
  /* XM_PROFILE=1: kernel times from OpenCL events, printed after each run. */
  const char *prof = getenv("XM_PROFILE");
  o->queue = clCreateCommandQueue(
      o->context, o->device, prof && *prof && *prof != '0' ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateCommandQueue: %s", xm__cl_errstr(e));
  if ((st = xm__build(ctx, XM_DOUBLE)) != XM_OK)
    return st;
  if ((st = xm__apply_blas_tuning(ctx)) != XM_OK)
    return st;
  return xm__build(ctx, XM_SINGLE);
}

static void xm__ocl_close(xm_ctx *ctx) {
  xm__ocl *o = &ctx->ocl;
  /* CLBlast caches programs of this context; released now, not by its static
   * destructor at exit, which may run after the OpenCL runtime's own (under
   * oclgrind that freed the runtime's LLVM context twice). CLBlast has one
   * cache per process: another live context rebuilds its programs on use. */
  CLBlastClearCache();
  for (int i = 0; i < 2; i++)
    if (o->program[i])
      clReleaseProgram(o->program[i]);
  if (o->queue)
    clReleaseCommandQueue(o->queue);
  if (o->context)
    clReleaseContext(o->context);
  memset(o, 0, sizeof *o);
}

static xm_status xm__ocl_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out) {
  xm__ocl *o = &ctx->ocl;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  cl_kernel k = NULL;
  cl_mem b[10] = {0};
  size_t n = c->n;
  const void *src[9] = {c->type,     c->underlying, c->strike, c->expiry,    c->rate,
                        c->dividend, c->vol,        c->call,   c->multiplier};
  size_t esz[9] = {4, 8, 8, 8, 8, 8, 8, 4, 8};
  for (int i = 0; i < 9; i++) {
    b[i] = clCreateBuffer(o->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * esz[i],
                          (void *)src[i], &e);
    XM__CL(ctx, e);
  }
  b[9] = clCreateBuffer(o->context, CL_MEM_WRITE_ONLY, n * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  k = clCreateKernel(o->program[prec], "xm_price_batch", &e);
  XM__CL(ctx, e);
  cl_long nn = (cl_long)n;
  XM__CL(ctx, clSetKernelArg(k, 0, sizeof nn, &nn));
  for (int i = 0; i < 10; i++)
    XM__CL(ctx, clSetKernelArg(k, (cl_uint)(i + 1), sizeof(cl_mem), &b[i]));
  size_t lws = xm__tuned_lws(ctx), gws = (n + lws - 1) / lws * lws;
  XM__CL(ctx, clEnqueueNDRangeKernel(o->queue, k, 1, NULL, &gws, &lws, 0, NULL, NULL));
  XM__CL(ctx,
         clEnqueueReadBuffer(o->queue, b[9], CL_TRUE, 0, n * sizeof(double), out, 0, NULL, NULL));
cleanup:
  if (k)
    clReleaseKernel(k);
  for (int i = 9; i >= 0; i--)
    if (b[i])
      clReleaseMemObject(b[i]);
  return st;
}

static xm_status xm__blast(xm_ctx *ctx, CLBlastStatusCode c, const char *what) {
  if (c == CLBlastSuccess)
    return XM_OK;
  return xm__fail(ctx,
                  c == CLBlastOpenCLOutOfResources || c == CLBlastTempBufferAllocFailure
                      ? XM_ERESOURCE
                      : XM_EOPENCL,
                  "CLBlast %s failed with status %d", what, (int)c);
}

static cl_mem xm__buf(xm_ctx *ctx, size_t bytes, const void *host, cl_int *e) {
  if (bytes == 0)
    bytes = 8;
  return clCreateBuffer(ctx->ocl.context,
                        host ? CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE, bytes,
                        (void *)host, e);
}

static xm_status xm__ocl_syrk(xm_ctx *ctx, int64_t W, int64_t F, const double *R, double *C) {
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  cl_mem bR = NULL, bC = NULL;
  bR = xm__buf(ctx, (size_t)(W * F) * sizeof(double), R, &e);
  XM__CL(ctx, e);
  bC = xm__buf(ctx, (size_t)(F * F) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  st = xm__blast(ctx,
                 CLBlastDsyrk(CLBlastLayoutRowMajor, CLBlastTriangleUpper, CLBlastTransposeYes,
                              (size_t)F, (size_t)W, 1.0 / (double)W, bR, 0, (size_t)F, 0.0, bC, 0,
                              (size_t)F, &ctx->ocl.queue, NULL),
                 "DSYRK");
  if (st != XM_OK)
    goto cleanup;
  XM__CL(ctx, clEnqueueReadBuffer(ctx->ocl.queue, bC, CL_TRUE, 0, (size_t)(F * F) * sizeof(double),
                                  C, 0, NULL, NULL));
  for (int64_t i = 0; i < F; i++)
    for (int64_t j = 0; j < i; j++)
      C[i * F + j] = C[j * F + i];
cleanup:
  if (bC)
    clReleaseMemObject(bC);
  if (bR)
    clReleaseMemObject(bR);
  return st;
}

static size_t xm__round(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* Enqueues kernel kid; with profiling on, waits for it and adds its time. */
typedef struct xm__launcher {
  cl_command_queue q;
  int profile;
  double ms[16];
  double blas_ms; /* CLBlast's calls, timed on the host after a clFinish */
} xm__launcher;

static cl_int xm__launch(xm__launcher *ln, int kid, cl_kernel k, cl_uint dims, const size_t *g,
                         const size_t *l) {
  cl_event ev = NULL;
  cl_int e = clEnqueueNDRangeKernel(ln->q, k, dims, NULL, g, l, 0, NULL, ln->profile ? &ev : NULL);
  if (e != CL_SUCCESS || !ev)
    return e;
  e = clWaitForEvents(1, &ev);
  cl_ulong t0 = 0, t1 = 0;
  if (e == CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS)
    ln->ms[kid] += 1e-6 * (double)(t1 - t0);
  clReleaseEvent(ev);
  return e;
}

static cl_int xm__run1(xm__launcher *ln, int kid, cl_kernel k, size_t n, size_t lws) {
  size_t g = xm__round(n ? n : 1, lws);
  return xm__launch(ln, kid, k, 1, &g, &lws);
}
static cl_int xm__run2(xm__launcher *ln, int kid, cl_kernel k, size_t n0, size_t n1, size_t l0) {
  size_t g[2] = {xm__round(n0 ? n0 : 1, l0), n1 ? n1 : 1}, l[2] = {l0, 1};
  return xm__launch(ln, kid, k, 2, g, l);
}
/* Kernel arguments first, first + 1, ... from variables: XM__ARGS(k, 0,
 * XM__A(n), XM__A(buf)) sets each with its own size. */
typedef struct xm__arg {
  size_t size;
  const void *value;
} xm__arg;
#define XM__A(v) ((xm__arg){sizeof(v), &(v)})
static cl_int xm__args(cl_kernel k, cl_uint first, const xm__arg *a, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cl_int e = clSetKernelArg(k, first + (cl_uint)i, a[i].size, a[i].value);
    if (e != CL_SUCCESS)
      return e;
  }
  return CL_SUCCESS;
}
#define XM__ARGS(k, first, ...)                                                                    \
  xm__args((k), (first), (const xm__arg[]){__VA_ARGS__},                                           \
           sizeof((const xm__arg[]){__VA_ARGS__}) / sizeof(xm__arg))

enum {
  KT_TODAY,
  KT_REVALUE,
  KT_AGG,
  KT_REDUCE,
  KT_ATTR,
  KT_COMBINE,
  KT_SCALE,
  KT_NORMALS,
  KT_EXP,
  KT_GATHER,
  KT_REVALUE8,
  KT_AGG8,
  KT_N
};
static const char *const xm__knames[KT_N] = {
    "xm_k_today",     "xm_k_revalue",   "xm_k_aggregate", "xm_k_reduce",
    "xm_k_attribute", "xm_k_combine",   "xm_k_mc_scale",  "xm_k_mc_normals",
    "xm_k_exp",       "xm_k_mc_gather", "xm_k_revalue8",  "xm_k_aggregate8"};

/* Part [off, off + bytes) of buffer b as a buffer of its own (CLBlast copies
 * any operand with a non-zero offset into a temporary); *sub = NULL and the
 * offset in elements in *elems where the device's alignment forbids it. */
static cl_int xm__part(cl_mem b, size_t off, size_t bytes, cl_mem *sub, size_t *elems) {
  cl_buffer_region r = {off, bytes};
  cl_int e = CL_SUCCESS;
  *sub = clCreateSubBuffer(b, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &e);
  *elems = 0;
  if (e == CL_MISALIGNED_SUB_BUFFER_OFFSET) {
    *sub = NULL;
    *elems = off / sizeof(double);
    return CL_SUCCESS;
  }
  return e;
}

/* Largest Monte Carlo temporaries: ZT and Xp of one scenario chunk each. */
#define XM__MC_CHUNK_BYTES ((uint64_t)256 << 20)

/* Monte Carlo shocks of one set on the device (METHODOLOGY.md section 1),
 * X = diag(scale) Z L^T, into bX (S x F, row-major) and exp(X) into bEX:
 * - per chunk of Sc scenarios, the draws are written factor-major and
 *   zero-padded, ZT[f][s] (Fp x Sc, multiples of the block widths), the layout
 *   CLBlast's GEMM kernel reads as it is: no transpose or padding copies;
 * - the product runs in column blocks of bm factors: X[:, block b] needs only
 *   the first (b + 1) bm factors because L is lower triangular, so the GEMMs
 *   do (nb + 1) / (2 nb) of a full product's flops (like the cpu backend's
 *   TRMM); block b is Xp_b = A_b ZT[0 .. (b+1) bm), A_b = L[block b][0 .. (b+1) bm)
 *   stored column-major, in a part of Xp of its own;
 * - a gather kernel writes X[s0 + s][f] = Xp_{f / bm}[s][f % bm] and its exp. */
static xm_status xm__ocl_mc(xm_ctx *ctx, xm__launcher *ln, cl_kernel *kr, const xm_config *cfg,
                            const xm__set *set, cl_long F, cl_mem bX, cl_mem bEX) {
  xm__ocl *o = &ctx->ocl;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  const size_t lws = xm__tuned_lws(ctx);
  cl_long bm = (cl_long)xm__tuned_mc_block(ctx);
  cl_long S = set->S;
  if (S == 0 || F == 0) /* before any division by the widths below */
    return XM_OK;
  if (bm > (F + 15) / 16 * 16) /* few factors: one block, padded to 16 only */
    bm = (F + 15) / 16 * 16;
  cl_long Fp = (F + bm - 1) / bm * bm, nb = Fp / bm;
  /* Scenarios in chunks of Sc (a multiple of step, the least multiple of lws
   * that is >= 128): the temporaries ZT and Xp, 8 Fp Sc bytes each, stay under
   * XM__MC_CHUNK_BYTES and the device's largest buffer whatever S is. Scenario
   * s is the same in any chunking: the draws are keyed by (seed, s). */
  uint64_t cap = XM__MC_CHUNK_BYTES < ctx->dev.max_alloc ? XM__MC_CHUNK_BYTES : ctx->dev.max_alloc;
  cl_long step = (cl_long)xm__round(128, lws);
  cl_long Sc = (cl_long)(cap / ((uint64_t)Fp * sizeof(double))) / step * step;
  cl_long want = xm__env_long("XM_MC_CHUNK", 1, LONG_MAX, 1, 0); /* tests: several chunks */
  if (want > 0 && (cl_long)xm__round((size_t)want, (size_t)step) < Sc)
    Sc = (cl_long)xm__round((size_t)want, (size_t)step);
  cl_long Sall = (cl_long)xm__round((size_t)S, (size_t)step);
  if (Sc > Sall)
    Sc = Sall;
  cl_ulong seed = cfg->montecarlo.seed;
  cl_int dist = cfg->montecarlo.distribution == XM_DIST_STUDENT_T;
  cl_double nu = cfg->montecarlo.dof, h = (double)cfg->horizon_days;
  cl_mem bScale = NULL, bZT = NULL, bXp = NULL, bA = NULL;
  double *A = NULL;
  if (Sc < step)
    return xm__fail(ctx, XM_ERESOURCE,
                    "Monte Carlo set %s: %lld factors do not fit the device's largest buffer "
                    "(%llu bytes) for %lld scenarios at a time; use the cpu backend",
                    set->name, (long long)F, (unsigned long long)ctx->dev.max_alloc,
                    (long long)step);
  size_t abytes = (size_t)(bm * bm * nb * (nb + 1) / 2) * sizeof(double);
  size_t zbytes = (size_t)(Fp * Sc) * sizeof(double);
  if (!(A = calloc(1, abytes))) {
    st = xm__fail(ctx, XM_ENOMEM, "Cholesky blocks of %s", set->name);
    goto cleanup;
  }
  for (cl_long b = 0, off = 0; b < nb; off += bm * bm * (b + 1), b++)
    for (cl_long k = 0; k < (b + 1) * bm && k < F; k++)
      for (cl_long m = 0; m < bm && b * bm + m < F; m++)
        A[off + k * bm + m] = set->chol[(b * bm + m) * F + k];
  bScale = xm__buf(ctx, (size_t)Sc * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bZT = xm__buf(ctx, zbytes, NULL, &e);
  XM__CL(ctx, e);
  bXp = xm__buf(ctx, zbytes, NULL, &e);
  XM__CL(ctx, e);
  bA = xm__buf(ctx, abytes, A, &e);
  XM__CL(ctx, e);
  for (cl_long s0 = 0; s0 < S; s0 += Sc) {
    cl_long ns = S - s0 < Sc ? S - s0 : Sc;
    XM__CL(ctx, XM__ARGS(kr[KT_SCALE], 0, XM__A(ns), XM__A(s0), XM__A(seed), XM__A(dist), XM__A(nu),
                         XM__A(h), XM__A(bScale)));
    XM__CL(ctx, xm__run1(ln, KT_SCALE, kr[KT_SCALE], (size_t)ns, lws));
    XM__CL(ctx, XM__ARGS(kr[KT_NORMALS], 0, XM__A(ns), XM__A(s0), XM__A(F), XM__A(seed),
                         XM__A(bScale), XM__A(Sc), XM__A(bZT)));
    XM__CL(ctx, xm__run2(ln, KT_NORMALS, kr[KT_NORMALS], (size_t)Sc, (size_t)Fp / 16, lws));
    double tb = 0.0;
    if (ln->profile) {
      XM__CL(ctx, clFinish(o->queue));
      tb = xm__now();
    }
    for (cl_long b = 0, off = 0; b < nb; off += bm * bm * (b + 1), b++) {
      cl_mem a = NULL, c = NULL;
      size_t aoff = 0, coff = 0;
      cl_long kb = (b + 1) * bm;
      e = xm__part(bA, (size_t)off * sizeof(double), (size_t)(bm * kb) * sizeof(double), &a, &aoff);
      if (e == CL_SUCCESS)
        e = xm__part(bXp, (size_t)(b * bm * Sc) * sizeof(double),
                     (size_t)(bm * Sc) * sizeof(double), &c, &coff);
      if (e == CL_SUCCESS)
        st = xm__blast(ctx,
                       CLBlastDgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                    (size_t)bm, (size_t)Sc, (size_t)kb, 1.0, a ? a : bA, aoff,
                                    (size_t)bm, bZT, 0, (size_t)Sc, 0.0, c ? c : bXp, coff,
                                    (size_t)bm, &o->queue, NULL),
                       "DGEMM");
      if (a)
        clReleaseMemObject(a);
      if (c)
        clReleaseMemObject(c);
      XM__CL(ctx, e);
      if (st != XM_OK)
        goto cleanup;
    }
    if (ln->profile) {
      XM__CL(ctx, clFinish(o->queue));
      ln->blas_ms += 1e3 * (xm__now() - tb);
    }
    XM__CL(ctx, XM__ARGS(kr[KT_GATHER], 0, XM__A(ns), XM__A(s0), XM__A(F), XM__A(bm), XM__A(Sc),
                         XM__A(bXp), XM__A(bX), XM__A(bEX)));
    XM__CL(ctx, xm__run1(ln, KT_GATHER, kr[KT_GATHER], (size_t)(ns * ((F + 7) / 8)), lws));
  }
  XM__CL(ctx, clFinish(o->queue)); /* before the temporaries go */
cleanup:
  free(A);
  {
    cl_mem m[] = {bA, bXp, bZT, bScale};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
      if (m[i])
        clReleaseMemObject(m[i]);
  }
  return st;
}

static xm_status xm__ocl_evaluate(xm_ctx *ctx, xm__job *job) {
  xm__ocl *o = &ctx->ocl;
  const xm_config *cfg = job->cfg;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  int G = job->G;
  cl_long K = job->K, F = job->F;
  cl_kernel kr[KT_N] = {0};
  cl_mem *bX = calloc((size_t)K, sizeof *bX), *bW = calloc((size_t)K, sizeof *bW);
  cl_mem *bEX = calloc((size_t)K, sizeof *bEX);
  cl_mem bL = NULL, bEll = NULL, bBy = NULL, bSilo = NULL, bAttr = NULL, bTail = NULL;
  cl_mem bInstd = NULL, bInsti = NULL, bStart = NULL, bPi = NULL, bPs = NULL, bPq = NULL,
         bCross = NULL, bOutA = NULL, bOutS = NULL;
  double *Lhost = NULL;
  const size_t lws = xm__tuned_lws(ctx);
  const int vec8 = xm__tuned_vec8(ctx);
  const char *prof = getenv("XM_PROFILE");
  xm__launcher ln;
  memset(&ln, 0, sizeof ln);
  ln.q = o->queue;
  ln.profile = prof && *prof && *prof != '0';
  if (!bX || !bW || !bEX) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto cleanup;
  }
  xm_precision prec = cfg->precision == XM_SINGLE ? XM_SINGLE : XM_DOUBLE;
  /* Fault injection for the tests of the cpu fallback: XM_TEST_FAIL_OPENCL=run
   * makes this device report that it ran out of resources. */
  const char *fault = getenv("XM_TEST_FAIL_OPENCL");
  if (fault && strcmp(fault, "run") == 0) {
    st = xm__fail(ctx, XM_ERESOURCE, "out of resources (injected by XM_TEST_FAIL_OPENCL=run)");
    goto cleanup;
  }
  for (int i = 0; i < KT_N; i++) {
    int price_kernel = i == KT_TODAY || i == KT_REVALUE;
    kr[i] = clCreateKernel(o->program[price_kernel ? prec : XM_DOUBLE], xm__knames[i], &e);
    XM__CL(ctx, e);
  }
  /* Scenario sets on the device; Monte Carlo generated here. */
  double t0 = xm__now();
  for (cl_long x = 0; x < K; x++) {
    xm__set *set = &job->sets[x];
    size_t bytes = (size_t)(set->S * F) * sizeof(double);
    bX[x] = xm__buf(ctx, bytes, set->is_mc ? NULL : set->X, &e);
    XM__CL(ctx, e);
    bW[x] = xm__buf(ctx, (size_t)set->S * sizeof(double), set->w, &e);
    XM__CL(ctx, e);
    bEX[x] = xm__buf(ctx, bytes, NULL, &e);
    XM__CL(ctx, e);
    if (!set->is_mc)
      continue;
    if ((st = xm__ocl_mc(ctx, &ln, kr, cfg, set, F, bX[x], bEX[x])) != XM_OK)
      goto cleanup;
    if (job->keep_mc && !set->X) {
      set->X = malloc(bytes ? bytes : 1);
      if (!set->X) {
        st = xm__fail(ctx, XM_ENOMEM, "Monte Carlo shocks of %s", set->name);
        goto cleanup;
      }
      XM__CL(ctx, clEnqueueReadBuffer(o->queue, bX[x], CL_TRUE, 0, bytes, set->X, 0, NULL, NULL));
    }
  }
  for (cl_long x = 0; x < K; x++) { /* exp of every shock, once per set */
    cl_long m = job->sets[x].S * F;
    if (job->sets[x].is_mc)
      continue; /* xm__ocl_mc wrote it */
    XM__CL(ctx, XM__ARGS(kr[KT_EXP], 0, XM__A(m), XM__A(bX[x]), XM__A(bEX[x])));
    XM__CL(ctx, xm__run1(&ln, KT_EXP, kr[KT_EXP], (size_t)(m + 7) / 8, lws));
  }
  XM__CL(ctx, clFinish(o->queue));
  job->t_scen = xm__now() - t0;
  t0 = xm__now();

  int64_t maxS, maxtile, maxna, maxinst;
  xm__job_extents(job, &maxS, &maxtile, &maxna, &maxinst);
  bEll = xm__buf(ctx, (size_t)(maxtile * maxinst) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bL = xm__buf(ctx, (size_t)(maxS * maxna * (G + 1)) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bBy = xm__buf(ctx, (size_t)(maxna * K) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bSilo = xm__buf(ctx, (size_t)(maxna * G * K) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bAttr = xm__buf(ctx, (size_t)(maxna * G * K) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bTail = xm__buf(ctx, (size_t)(maxna * XM_TAIL) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bOutA = xm__buf(ctx, (size_t)(maxna * XM_NOUT) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  bOutS = xm__buf(ctx, (size_t)(maxna * G * 2) * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  if (job->pnl) {
    Lhost = malloc((size_t)(maxS * maxna * (G + 1)) * sizeof(double));
    if (!Lhost) {
      st = xm__fail(ctx, XM_ENOMEM, "--save-pnl buffer");
      goto cleanup;
    }
  }
  cl_double dt = (double)cfg->horizon_days / 252.0, p = cfg->pricing.vol_term_power,
            vfl = cfg->pricing.vol_floor, cap = cfg->cross_margin.offset_cap,
            pc = cfg->minimum.per_contract;
  for (int64_t b = 0; b < job->n_blocks; b++) {
    xm__block *bk = &job->blocks[b];
    cl_long n = bk->n_inst, na = bk->na, R = na * (G + 1);
    bInstd = xm__buf(ctx, (size_t)(XM_ND * n) * sizeof(double), bk->instd, &e);
    XM__CL(ctx, e);
    bInsti = xm__buf(ctx, (size_t)(XM_NI * n) * sizeof(int), bk->insti, &e);
    XM__CL(ctx, e);
    int np = bk->pos_start[na];
    bStart = xm__buf(ctx, (size_t)(na + 1) * sizeof(int), bk->pos_start, &e);
    XM__CL(ctx, e);
    bPi = xm__buf(ctx, (size_t)np * sizeof(int), bk->pos_inst, &e);
    XM__CL(ctx, e);
    bPs = xm__buf(ctx, (size_t)np * sizeof(int), bk->pos_silo, &e);
    XM__CL(ctx, e);
    bPq = xm__buf(ctx, (size_t)np * sizeof(double), bk->pos_qty, &e);
    XM__CL(ctx, e);
    bCross = xm__buf(ctx, (size_t)na * sizeof(int), bk->cross, &e);
    XM__CL(ctx, e);
    XM__CL(ctx,
           XM__ARGS(kr[KT_TODAY], 0, XM__A(n), XM__A(bInstd), XM__A(bInsti), XM__A(dt), XM__A(p)));
    XM__CL(ctx, xm__run1(&ln, KT_TODAY, kr[KT_TODAY], (size_t)n, lws));
    for (cl_long x = 0; x < K; x++) {
      const xm__set *set = &job->sets[x];
      cl_long S = set->S;
      /* account-row-major: each (account, component) row of S losses is
       * contiguous, written coalesced by aggregation */
      cl_long cs = S, ca = (G + 1) * S, ss = 1;
      for (cl_long s0 = 0; s0 < S; s0 += bk->tile) {
        cl_long ns = S - s0 < bk->tile ? S - s0 : bk->tile;
        int r8 = vec8 && prec == XM_DOUBLE;
        cl_kernel k = kr[r8 ? KT_REVALUE8 : KT_REVALUE];
        XM__CL(ctx, XM__ARGS(k, 0, XM__A(n), XM__A(ns), XM__A(s0), XM__A(F), XM__A(bInstd),
                             XM__A(bInsti), XM__A(bX[x]), XM__A(bEX[x]), XM__A(vfl), XM__A(bEll)));
        if (r8) /* instruments first: xm_k_revalue8 */
          XM__CL(ctx, xm__run2(&ln, KT_REVALUE8, k, (size_t)n, (size_t)(ns + 7) / 8, lws));
        else
          XM__CL(ctx, xm__run2(&ln, KT_REVALUE, k, (size_t)ns, (size_t)n, lws));
        k = kr[vec8 ? KT_AGG8 : KT_AGG];
        XM__CL(ctx, XM__ARGS(k, 0, XM__A(na), XM__A(ns), XM__A(s0), XM__A(G), XM__A(bEll),
                             XM__A(bStart), XM__A(bPi), XM__A(bPs), XM__A(bPq), XM__A(bL),
                             XM__A(ca), XM__A(cs), XM__A(ss)));
        if (vec8) /* 8 scenarios per work item (ss = 1 here) */
          XM__CL(ctx, xm__run2(&ln, KT_AGG8, k, (size_t)(ns + 7) / 8, (size_t)na, lws));
        else
          XM__CL(ctx, xm__run2(&ln, KT_AGG, k, (size_t)ns, (size_t)na, lws));
      }
      cl_int measure = set->measure, has_w = set->w != NULL;
      cl_long kk = set->k;
      /* xm_k_reduce and xm_k_attribute share their first 15 arguments */
      for (int which = KT_REDUCE; which <= KT_ATTR; which++) {
        cl_kernel k = kr[which];
        XM__CL(ctx, XM__ARGS(k, 0, XM__A(na), XM__A(S), XM__A(G), XM__A(bL), XM__A(ca), XM__A(cs),
                             XM__A(ss), XM__A(measure), XM__A(kk), XM__A(bW[x]), XM__A(has_w),
                             XM__A(K), XM__A(x), XM__A(bStart), XM__A(bPs)));
      }
      XM__CL(ctx, XM__ARGS(kr[KT_REDUCE], 15, XM__A(bBy), XM__A(bSilo), XM__A(bTail)));
      XM__CL(ctx, xm__run2(&ln, KT_REDUCE, kr[KT_REDUCE], (size_t)na, (size_t)(G + 1), lws));
      XM__CL(ctx, XM__ARGS(kr[KT_ATTR], 15, XM__A(bSilo), XM__A(bAttr), XM__A(bTail)));
      XM__CL(ctx, xm__run1(&ln, KT_ATTR, kr[KT_ATTR], (size_t)na, lws));
      if (job->pnl && job->pnl[x]) {
        XM__CL(ctx, clEnqueueReadBuffer(o->queue, bL, CL_TRUE, 0, (size_t)(S * R) * sizeof(double),
                                        Lhost, 0, NULL, NULL));
        for (cl_long s = 0; s < S; s++)
          for (cl_long a = 0; a < na; a++)
            job->pnl[x][s * job->A + bk->a0 + a] = (float)Lhost[a * ca + s * ss];
      }
      if (job->progress) {
        XM__CL(ctx, clFinish(o->queue));
        xm__progress(job, b, x);
      }
    }
    cl_kernel k = kr[KT_COMBINE];
    XM__CL(ctx,
           XM__ARGS(k, 0, XM__A(na), XM__A(G), XM__A(K), XM__A(bBy), XM__A(bSilo), XM__A(bAttr),
                    XM__A(bCross), XM__A(bStart), XM__A(bPi), XM__A(bPq), XM__A(n), XM__A(bInsti),
                    XM__A(bInstd), XM__A(cap), XM__A(pc), XM__A(bOutA), XM__A(bOutS)));
    XM__CL(ctx, xm__run1(&ln, KT_COMBINE, k, (size_t)na, lws));
    XM__CL(ctx, clEnqueueReadBuffer(o->queue, bOutA, CL_FALSE, 0,
                                    (size_t)(na * XM_NOUT) * sizeof(double),
                                    job->out_acct + bk->a0 * XM_NOUT, 0, NULL, NULL));
    XM__CL(ctx,
           clEnqueueReadBuffer(o->queue, bOutS, CL_FALSE, 0, (size_t)(na * G * 2) * sizeof(double),
                               job->out_silo + bk->a0 * G * 2, 0, NULL, NULL));
    XM__CL(ctx, clEnqueueReadBuffer(o->queue, bBy, CL_TRUE, 0, (size_t)(na * K) * sizeof(double),
                                    job->by_set + bk->a0 * K, 0, NULL, NULL));
    cl_mem *blk[] = {&bCross, &bPq, &bPs, &bPi, &bStart, &bInsti, &bInstd};
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
      clReleaseMemObject(*blk[i]);
      *blk[i] = NULL;
    }
  }
  job->t_eval = xm__now() - t0;
  if (ln.profile) {
    fprintf(stderr, "xmargin profile (%s, ms):", ctx->dev.name);
    for (int i = 0; i < KT_N; i++)
      fprintf(stderr, " %s %.3f", xm__knames[i] + 5, ln.ms[i]);
    fprintf(stderr, " mc_gemm(CLBlast) %.3f", ln.blas_ms);
    fprintf(stderr, "\n");
  }
cleanup:
  free(Lhost);
  {
    cl_mem m[] = {bTail,  bOutS,  bOutA, bCross, bPq, bPs, bPi, bStart,
                  bInsti, bInstd, bAttr, bSilo,  bBy, bL,  bEll};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
      if (m[i])
        clReleaseMemObject(m[i]);
  }
  for (cl_long x = 0; bX && bW && bEX && x < K; x++) {
    if (bEX[x])
      clReleaseMemObject(bEX[x]);
    if (bW[x])
      clReleaseMemObject(bW[x]);
    if (bX[x])
      clReleaseMemObject(bX[x]);
  }
  free(bEX);
  free(bW);
  free(bX);
  for (int i = KT_N - 1; i >= 0; i--)
    if (kr[i])
      clReleaseKernel(kr[i]);
  return st;
}

const xm__backend xm__backend_opencl = {
    .name = "opencl",
    .kind = XM_BACKEND_OPENCL,
    .open = xm__ocl_open,
    .close = xm__ocl_close,
    .price = xm__ocl_price,
    .syrk = xm__ocl_syrk,
    .evaluate = xm__ocl_evaluate,
};
