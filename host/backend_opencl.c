/* The OpenCL backend: any OpenCL 1.2+ device (GPUs, PoCL on the CPU). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "xm_opencl.h"
#include "xm_reduce.h"

/* Kernels of xmargin.cl (xm__knames: the same order). */
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
  KT_SENS,
  KT_LQ,
  KT_TAIL,
  KT_TAIL_REDUCE,
  KT_N
};
static const char *const xm__knames[KT_N] = {
    "xm_k_today",     "xm_k_revalue",   "xm_k_aggregate", "xm_k_reduce",
    "xm_k_attribute", "xm_k_combine",   "xm_k_mc_scale",  "xm_k_mc_normals",
    "xm_k_exp",       "xm_k_mc_gather", "xm_k_revalue8",  "xm_k_aggregate8",
    "xm_k_sens",      "xm_k_liquidity", "xm_k_tail",      "xm_k_tail_reduce"};
/* Kernels that price, built in each precision; the others in double only. */
#define XM__PRICES(k) ((k) == KT_TODAY || (k) == KT_REVALUE || (k) == KT_SENS)

/* The backend's state (ctx->state). */
typedef struct xm__ocl {
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  cl_program program[2];     /* [XM_DOUBLE], [XM_SINGLE] */
  cl_kernel kernel[2][KT_N]; /* [XM_SINGLE] only the pricing ones */
  xm_precision prec;         /* of the run in progress */
  int profile;
  double ms[KT_N]; /* kernel times of the run (profile) */
  double blas_ms;  /* CLBlast's calls, timed on the host after a clFinish */
} xm__ocl;
#define XM__OCL(ctx) ((xm__ocl *)(ctx)->state)
/* An xm__mem of this backend is a cl_mem. */
#define XM__M(m) ((cl_mem)(void *)(m))

/* The kernel k of the run's precision. */
static cl_kernel xm__k(const xm__ocl *o, int k) {
  return o->kernel[XM__PRICES(k) ? o->prec : XM_DOUBLE][k];
}

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
  xm__ocl *o = XM__OCL(ctx);
  cl_int e = CL_SUCCESS;
  const char *src = xm__kernel_xmargin;
  /* XM_TEST_FAIL_OPENCL=build: a source that does not compile (tests the build
   * log and the fallback). */
  const char *fault = ctx->opt.fault;
  if (fault && strcmp(fault, "build") == 0)
    src = "__kernel void xm_broken(void) { this is not OpenCL C; }";
  size_t len = strlen(src);
  const char *opts =
      prec == XM_SINGLE ? (ctx->dev.is_gpu ? "-cl-std=CL1.2 -DXM_SINGLE=1"
                                           : "-cl-std=CL1.2 -DXM_SINGLE=1 -DXM_FORCE_INLINE=1")
                        : (ctx->dev.is_gpu ? "-cl-std=CL1.2" : "-cl-std=CL1.2 -DXM_FORCE_INLINE=1");
  cl_program prog = NULL;
  /* A failed build is tried once more on a program of its own: PoCL's kernel
   * cache, shared by concurrent processes, can fail one build that the next
   * makes (pocl issue 1480); a source that does not compile fails twice. */
  for (int attempt = 0; attempt < 2; attempt++) {
    if (prog)
      clReleaseProgram(prog);
    prog = clCreateProgramWithSource(o->context, 1, &src, &len, &e);
    if (e != CL_SUCCESS)
      return xm__fail(ctx, xm__cl_status(e), "clCreateProgramWithSource: %s", xm__cl_errstr(e));
    if ((e = clBuildProgram(prog, 1, &o->device, opts, NULL, NULL)) == CL_SUCCESS)
      break;
  }
  if (e != CL_SUCCESS) {
    size_t loglen = 0;
    cl_int le = clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &loglen);
    char *log = le == CL_SUCCESS ? malloc(loglen + 1) : NULL;
    if (log) {
      log[0] = '\0';
      le = clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, loglen, log, NULL);
      log[le == CL_SUCCESS ? loglen : 0] = '\0';
    }
    xm__fail(ctx, XM_EBUILD, "building the %s kernels for %s failed (%s); build log:\n%s",
             prec == XM_SINGLE ? "single-precision" : "double-precision", ctx->dev.name,
             xm__cl_errstr(e),
             le != CL_SUCCESS ? "(the log could not be read)"
             : log            ? log
                              : "(no memory for the log)");
    free(log);
    clReleaseProgram(prog);
    return XM_EBUILD;
  }
  o->program[prec] = prog;
  return XM_OK;
}

static xm_status xm__ocl_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out) {
  xm__ocl *o = XM__OCL(ctx);
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
  if (bytes == 0) { /* OpenCL has no empty buffer: 8 bytes, nothing to copy into them */
    bytes = 8;
    host = NULL;
  }
  return clCreateBuffer(XM__OCL(ctx)->context,
                        host ? CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE, bytes,
                        (void *)host, e);
}

static size_t xm__round(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* Enqueues kernel kid; with profiling on, waits for it and adds its time. */
static cl_int xm__launch(xm__ocl *o, int kid, cl_uint dims, const size_t *g, const size_t *l) {
  cl_event ev = NULL;
  cl_int e = clEnqueueNDRangeKernel(o->queue, xm__k(o, kid), dims, NULL, g, l, 0, NULL,
                                    o->profile ? &ev : NULL);
  if (e != CL_SUCCESS || !ev)
    return e;
  e = clWaitForEvents(1, &ev);
  cl_ulong t0 = 0, t1 = 0;
  if (e == CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
      clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS)
    o->ms[kid] += 1e-6 * (double)(t1 - t0);
  clReleaseEvent(ev);
  return e;
}

static cl_int xm__run1(xm__ocl *o, int kid, size_t n, size_t lws) {
  size_t g = xm__round(n ? n : 1, lws);
  return xm__launch(o, kid, 1, &g, &lws);
}
static cl_int xm__run2(xm__ocl *o, int kid, size_t n0, size_t n1, size_t l0) {
  size_t g[2] = {xm__round(n0 ? n0 : 1, l0), n1 ? n1 : 1}, l[2] = {l0, 1};
  return xm__launch(o, kid, 2, g, l);
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

/* ---- open, close ---- */

/* CLBlast parameters of the tuning table for this device (none: CLBlast's
 * own database). */
static xm_status xm__apply_blas_tuning(xm_ctx *ctx) {
  const xm__tuning *t = xm__tuning_for(&ctx->dev);
  xm__ocl *o = XM__OCL(ctx);
  if (t->xgemm[1] == 0) /* MWG = 0: keep CLBlast's database */
    return XM_OK;
  CLBlastStatusCode c = CLBlastOverrideParameters(o->device, "Xgemm", CLBlastPrecisionDouble, 16,
                                                  (const char **)xm__xgemm_names, t->xgemm);
  if (c != CLBlastSuccess)
    return xm__fail(ctx, XM_EOPENCL, "CLBlast refused the Xgemm tuning for %s (status %d)",
                    ctx->dev.name, (int)c);
  if (t->min_indirect) { /* below m n k = this^3 CLBlast runs its (here untuned) direct kernel */
    const char *name = "XGEMM_MIN_INDIRECT_SIZE";
    size_t v = t->min_indirect;
    c = CLBlastOverrideParameters(o->device, "GemmRoutine", CLBlastPrecisionDouble, 1, &name, &v);
    if (c != CLBlastSuccess)
      return xm__fail(ctx, XM_EOPENCL, "CLBlast refused the GemmRoutine tuning for %s (status %d)",
                      ctx->dev.name, (int)c);
  }
  return XM_OK;
}

static xm_status xm__ocl_open(xm_ctx *ctx) {
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  xm__ocl *o = calloc(1, sizeof *o);
  if (!(ctx->state = o))
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  o->profile = ctx->profile;
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
  o->queue =
      clCreateCommandQueue(o->context, o->device, o->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateCommandQueue: %s", xm__cl_errstr(e));
  if ((st = xm__build(ctx, XM_DOUBLE)) != XM_OK || (st = xm__apply_blas_tuning(ctx)) != XM_OK ||
      (st = xm__build(ctx, XM_SINGLE)) != XM_OK)
    return st;
  for (int p = 0; p < 2; p++)
    for (int k = 0; k < KT_N; k++) {
      if (p == XM_SINGLE && !XM__PRICES(k))
        continue;
      o->kernel[p][k] = clCreateKernel(o->program[p], xm__knames[k], &e);
      if (e != CL_SUCCESS)
        return xm__fail(ctx, xm__cl_status(e), "clCreateKernel(%s): %s", xm__knames[k],
                        xm__cl_errstr(e));
    }
  return XM_OK;
}

static void xm__ocl_close(xm_ctx *ctx) {
  xm__ocl *o = XM__OCL(ctx);
  if (!o)
    return;
  /* CLBlast caches programs of this context; released now, not by its static
   * destructor at exit, which may run after the OpenCL runtime's own (under
   * oclgrind that freed the runtime's LLVM context twice). CLBlast has one
   * cache per process: another live context rebuilds its programs on use. */
  CLBlastClearCache();
  for (int p = 1; p >= 0; p--)
    for (int k = KT_N - 1; k >= 0; k--)
      if (o->kernel[p][k])
        clReleaseKernel(o->kernel[p][k]);
  for (int i = 0; i < 2; i++)
    if (o->program[i])
      clReleaseProgram(o->program[i]);
  if (o->queue)
    clReleaseCommandQueue(o->queue);
  if (o->context)
    clReleaseContext(o->context);
  free(o);
  ctx->state = NULL;
}

/* ---- one run ---- */

static xm_status xm__ocl_begin(xm_ctx *ctx, xm_precision prec) {
  xm__ocl *o = XM__OCL(ctx);
  o->prec = prec == XM_SINGLE ? XM_SINGLE : XM_DOUBLE;
  memset(o->ms, 0, sizeof o->ms);
  o->blas_ms = 0.0;
  /* XM_TEST_FAIL_OPENCL=run: the device reports that it ran out of
   * resources (tests of the cpu fallback). */
  if (ctx->opt.fault && strcmp(ctx->opt.fault, "run") == 0)
    return xm__fail(ctx, XM_ERESOURCE, "out of resources (injected by XM_TEST_FAIL_OPENCL=run)");
  return XM_OK;
}

static void xm__ocl_end(xm_ctx *ctx) {
  xm__ocl *o = XM__OCL(ctx);
  clFinish(o->queue); /* nothing of the run left in flight; errors were reported by the steps */
  if (!o->profile)
    return;
  fprintf(stderr, "xmargin profile (%s, ms):", ctx->dev.name);
  for (int i = 0; i < KT_N; i++)
    fprintf(stderr, " %s %.3f", xm__knames[i] + 5, o->ms[i]);
  fprintf(stderr, " mc_gemm(CLBlast) %.3f\n", o->blas_ms);
}

static xm_status xm__ocl_alloc(xm_ctx *ctx, size_t bytes, const void *init, xm__mem *out) {
  cl_int e = CL_SUCCESS;
  cl_mem m = xm__buf(ctx, bytes, init, &e);
  *out = (xm__mem)(void *)m;
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateBuffer(%zu bytes) on %s: %s", bytes,
                    ctx->dev.name, xm__cl_errstr(e));
  return XM_OK;
}

static xm_status xm__ocl_view(xm_ctx *ctx, const void *host, size_t bytes, xm__mem *out) {
  return xm__ocl_alloc(ctx, bytes, host, out); /* a copy on the device */
}

static void xm__ocl_release(xm_ctx *ctx, xm__mem m) {
  (void)ctx;
  if (m)
    clReleaseMemObject(XM__M(m));
}

static xm_status xm__ocl_upload(xm_ctx *ctx, xm__mem dst, size_t off, const void *src,
                                size_t bytes) {
  xm_status st = XM_OK;
  if (bytes)
    XM__CL(ctx, clEnqueueWriteBuffer(XM__OCL(ctx)->queue, XM__M(dst), CL_TRUE, off, bytes, src, 0,
                                     NULL, NULL));
cleanup:
  return st;
}

static xm_status xm__ocl_download(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t bytes) {
  xm_status st = XM_OK;
  if (bytes)
    XM__CL(ctx, clEnqueueReadBuffer(XM__OCL(ctx)->queue, XM__M(src), CL_TRUE, off, bytes, dst, 0,
                                    NULL, NULL));
cleanup:
  return st;
}

static xm_status xm__ocl_download_rows(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t row,
                                       size_t pitch, size_t n) {
  xm_status st = XM_OK;
  size_t bo[3] = {off, 0, 0}, ho[3] = {0, 0, 0}, region[3] = {row, n, 1};
  if (row && n)
    XM__CL(ctx, clEnqueueReadBufferRect(XM__OCL(ctx)->queue, XM__M(src), CL_TRUE, bo, ho, region,
                                        pitch, 0, row, 0, dst, 0, NULL, NULL));
cleanup:
  return st;
}

static xm_status xm__ocl_finish(xm_ctx *ctx) {
  xm_status st = XM_OK;
  XM__CL(ctx, clFinish(XM__OCL(ctx)->queue));
cleanup:
  return st;
}

/* Account-row-major: each (account, component) row of S losses is
 * contiguous, written coalesced by aggregation. */
static xm_layout xm__ocl_layout(int64_t S, int64_t na, int G) {
  (void)na;
  xm_layout lay = {(G + 1) * S, S, 1};
  return lay;
}

static uint64_t xm__ocl_reduce_scratch(const xm_ctx *ctx, int64_t S, int G) {
  (void)ctx, (void)S, (void)G;
  return 0;
}

/* Monte Carlo shocks of one set on the device (METHODOLOGY.md section 1),
 * X = diag(scale) Z L^T, scenarios S0 .. S0 + S into rows 0 .. S of X and
 * exp(X) into EX:
 * - per chunk of Sc scenarios, the draws are written factor-major and
 *   zero-padded, ZT[f][s] (Fp x Sc, multiples of the block widths), the layout
 *   CLBlast's GEMM kernel reads as it is: no transpose or padding copies;
 * - the product runs in column blocks of bm factors: X[:, block b] needs only
 *   the first (b + 1) bm factors because L is lower triangular, so the GEMMs
 *   do (nb + 1) / (2 nb) of a full product's flops (like the cpu backend's
 *   TRMM); block b is Xp_b = A_b ZT[0 .. (b+1) bm), A_b = L[block b][0 .. (b+1) bm)
 *   stored column-major, in a part of Xp of its own;
 * - a gather kernel writes X[s0 + s][f] = Xp_{f / bm}[s][f % bm] and its exp. */
/* The chunking of a Monte Carlo product: block width bm, padded factors Fp =
 * nb bm, and Sc scenarios a chunk (a multiple of step, the least multiple of
 * lws that is >= 128) so that the temporaries ZT and Xp, 8 Fp Sc bytes each,
 * stay within max_bytes together and under the device's largest buffer. A
 * scenario is the same in any chunking: the draws are keyed by (seed, s). */
typedef struct xm__mc_shape {
  cl_long bm, Fp, nb, Sc, step;
} xm__mc_shape;

static xm__mc_shape xm__mc_plan(const xm_ctx *ctx, int64_t ns, int64_t F, uint64_t max_bytes) {
  xm__mc_shape m;
  const size_t lws = xm__tuned_lws(ctx);
  m.bm = (cl_long)xm__tuned_mc_block(ctx);
  if (m.bm > (F + 15) / 16 * 16) /* few factors: one block, padded to 16 only */
    m.bm = (F + 15) / 16 * 16;
  if (m.bm < 16)
    m.bm = 16;
  m.Fp = (F + m.bm - 1) / m.bm * m.bm;
  m.nb = m.Fp / m.bm;
  uint64_t cap = max_bytes / 2 < ctx->dev.max_alloc ? max_bytes / 2 : ctx->dev.max_alloc;
  m.step = (cl_long)xm__round(128, lws);
  m.Sc = (cl_long)(cap / ((uint64_t)m.Fp * sizeof(double))) / m.step * m.step;
  long want = ctx->opt.tuning.mc_chunk; /* tests: several chunks */
  if (want > 0 && (cl_long)xm__round((size_t)want, (size_t)m.step) < m.Sc)
    m.Sc = (cl_long)xm__round((size_t)want, (size_t)m.step);
  cl_long all = (cl_long)xm__round((size_t)(ns > 0 ? ns : 1), (size_t)m.step);
  if (m.Sc > all)
    m.Sc = all;
  return m;
}

static uint64_t xm__ocl_mc_scratch(const xm_ctx *ctx, int64_t ns, int64_t F, uint64_t max_bytes) {
  if (ns == 0 || F == 0)
    return 0;
  xm__mc_shape m = xm__mc_plan(ctx, ns, F, max_bytes);
  cl_long Sc = m.Sc < m.step ? m.step : m.Sc;
  return (uint64_t)(m.bm * m.bm * m.nb * (m.nb + 1) / 2) * 8u + 2u * (uint64_t)(m.Fp * Sc) * 8u +
         (uint64_t)Sc * 8u;
}

static xm_status xm__ocl_mc(xm_ctx *ctx, const xm__mc_args *ma, int64_t S0, int64_t S, int64_t r0,
                            uint64_t max_bytes, xm__mem Xm, xm__mem EXm) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  const size_t lws = xm__tuned_lws(ctx);
  cl_long F = ma->F;
  cl_mem bX = XM__M(Xm), bEX = XM__M(EXm);
  if (S == 0 || F == 0) /* before any division by the widths below */
    return XM_OK;
  xm__mc_shape sh = xm__mc_plan(ctx, S, F, max_bytes);
  cl_long bm = sh.bm, Fp = sh.Fp, nb = sh.nb, Sc = sh.Sc, step = sh.step;
  cl_ulong seed = ma->seed;
  cl_int dist = ma->student_t;
  cl_double nu = ma->dof, h = ma->horizon;
  cl_mem bScale = NULL, bZT = NULL, bXp = NULL, bA = NULL;
  double *A = NULL;
  if (Sc < step)
    return xm__fail(ctx, XM_ERESOURCE,
                    "Monte Carlo set %s: %lld factors do not fit the device's largest buffer "
                    "(%llu bytes) or the plan's %llu bytes of temporaries for %lld scenarios at a "
                    "time; raise --mem-limit or use the cpu backend",
                    ma->set, (long long)F, (unsigned long long)ctx->dev.max_alloc,
                    (unsigned long long)max_bytes, (long long)step);
  size_t abytes = (size_t)(bm * bm * nb * (nb + 1) / 2) * sizeof(double);
  size_t zbytes = (size_t)(Fp * Sc) * sizeof(double);
  if (!(A = calloc(1, abytes))) {
    st = xm__fail(ctx, XM_ENOMEM, "Cholesky blocks of %s", ma->set);
    goto cleanup;
  }
  for (cl_long b = 0, off = 0; b < nb; off += bm * bm * (b + 1), b++)
    for (cl_long k = 0; k < (b + 1) * bm && k < F; k++)
      for (cl_long m = 0; m < bm && b * bm + m < F; m++)
        A[off + k * bm + m] = ma->chol[(b * bm + m) * F + k];
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
    cl_long g0 = (cl_long)S0 + s0; /* the draws' scenario index; s0: the row in X */
    XM__CL(ctx, XM__ARGS(xm__k(o, KT_SCALE), 0, XM__A(ns), XM__A(g0), XM__A(seed), XM__A(dist),
                         XM__A(nu), XM__A(h), XM__A(bScale)));
    XM__CL(ctx, xm__run1(o, KT_SCALE, (size_t)ns, lws));
    XM__CL(ctx, XM__ARGS(xm__k(o, KT_NORMALS), 0, XM__A(ns), XM__A(g0), XM__A(F), XM__A(seed),
                         XM__A(bScale), XM__A(Sc), XM__A(bZT)));
    XM__CL(ctx, xm__run2(o, KT_NORMALS, (size_t)Sc, (size_t)Fp / 16, lws));
    double tb = 0.0;
    if (o->profile) {
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
    if (o->profile) {
      XM__CL(ctx, clFinish(o->queue));
      o->blas_ms += 1e3 * (xm__now() - tb);
    }
    cl_long row = (cl_long)r0 + s0; /* the chunk's first row in X */
    XM__CL(ctx, XM__ARGS(xm__k(o, KT_GATHER), 0, XM__A(ns), XM__A(row), XM__A(F), XM__A(bm),
                         XM__A(Sc), XM__A(bXp), XM__A(bX), XM__A(bEX)));
    XM__CL(ctx, xm__run1(o, KT_GATHER, (size_t)(ns * ((F + 7) / 8)), lws));
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

static xm_status xm__ocl_exp(xm_ctx *ctx, int64_t off, int64_t m, xm__mem X, xm__mem EX) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_long mm = m, co = off;
  cl_mem bX = XM__M(X), bEX = XM__M(EX);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_EXP), 0, XM__A(co), XM__A(mm), XM__A(bX), XM__A(bEX)));
  XM__CL(ctx, xm__run1(o, KT_EXP, (size_t)(m + 7) / 8, xm__tuned_lws(ctx)));
cleanup:
  return st;
}

static xm_status xm__ocl_today(xm_ctx *ctx, const xm__dblock *b, double dt, double p) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_long n = b->n;
  cl_double cdt = dt, cp = p;
  cl_mem d = XM__M(b->instd), i = XM__M(b->insti);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_TODAY), 0, XM__A(n), XM__A(d), XM__A(i), XM__A(cdt), XM__A(cp)));
  XM__CL(ctx, xm__run1(o, KT_TODAY, (size_t)n, xm__tuned_lws(ctx)));
cleanup:
  return st;
}

/* ell[i][s], instrument-major, so that aggregation reads it coalesced. */
static xm_status xm__ocl_revalue(xm_ctx *ctx, const xm__dblock *b, xm__mem X, xm__mem EX, int64_t F,
                                 int64_t row0, int64_t ns, double vol_floor, xm__mem ell) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  const size_t lws = xm__tuned_lws(ctx);
  cl_long n = b->n, cns = ns, s0 = row0, nf = F;
  cl_double vfl = vol_floor;
  cl_mem d = XM__M(b->instd), i = XM__M(b->insti), bX = XM__M(X), bEX = XM__M(EX),
         bEll = XM__M(ell);
  int r8 = xm__tuned_vec8(ctx) && o->prec == XM_DOUBLE;
  int kid = r8 ? KT_REVALUE8 : KT_REVALUE;
  XM__CL(ctx, XM__ARGS(xm__k(o, kid), 0, XM__A(n), XM__A(cns), XM__A(s0), XM__A(nf), XM__A(d),
                       XM__A(i), XM__A(bX), XM__A(bEX), XM__A(vfl), XM__A(bEll)));
  if (r8) /* instruments first: xm_k_revalue8 */
    XM__CL(ctx, xm__run2(o, kid, (size_t)n, (size_t)(ns + 7) / 8, lws));
  else
    XM__CL(ctx, xm__run2(o, kid, (size_t)ns, (size_t)n, lws));
cleanup:
  return st;
}

static xm_status xm__ocl_aggregate(xm_ctx *ctx, const xm__dblock *b, int64_t s0, int64_t ns,
                                   const xm__dwork *w) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  const size_t lws = xm__tuned_lws(ctx);
  int vec8 = xm__tuned_vec8(ctx), G = w->G;
  int kid = vec8 ? KT_AGG8 : KT_AGG;
  cl_long na = b->na, cns = ns, cs0 = s0, ca = w->lay.ca, cs = w->lay.cs, ss = w->lay.ss;
  cl_mem bEll = XM__M(w->ell), bStart = XM__M(b->start), bPi = XM__M(b->pinst),
         bPs = XM__M(b->psilo), bPq = XM__M(b->pqty), bL = XM__M(w->L);
  XM__CL(ctx, XM__ARGS(xm__k(o, kid), 0, XM__A(na), XM__A(cns), XM__A(cs0), XM__A(G), XM__A(bEll),
                       XM__A(bStart), XM__A(bPi), XM__A(bPs), XM__A(bPq), XM__A(bL), XM__A(ca),
                       XM__A(cs), XM__A(ss)));
  if (vec8) /* 8 scenarios per work item (ss = 1 here) */
    XM__CL(ctx, xm__run2(o, kid, (size_t)(ns + 7) / 8, (size_t)na, lws));
  else
    XM__CL(ctx, xm__run2(o, kid, (size_t)ns, (size_t)na, lws));
cleanup:
  return st;
}

/* The group's sets as the kernels read them: XM__DSET_COLS longs a set. */
#define XM__DSET_COLS 6
static cl_mem xm__dset_table(xm_ctx *ctx, const xm__dset *ds, int n, cl_int *e) {
  cl_long tab[XM__GROUP_SETS * XM__DSET_COLS];
  for (int j = 0; j < n; j++) {
    cl_long *t = tab + j * XM__DSET_COLS;
    t[0] = ds[j].S, t[1] = ds[j].k, t[2] = ds[j].measure, t[3] = ds[j].row, t[4] = ds[j].x,
    t[5] = ds[j].w_off;
  }
  return xm__buf(ctx, (size_t)n * XM__DSET_COLS * sizeof(cl_long), tab, e);
}
static xm_status xm__ocl_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                                const xm__dwork *w) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  const size_t lws = xm__tuned_lws(ctx);
  int G = w->G;
  cl_int cn = n;
  cl_long na = b->na, K = w->K, ca = w->lay.ca, cs = w->lay.cs, ss = w->lay.ss;
  /* released at once: OpenCL keeps it until the kernels that read it ran */
  cl_mem bTab = xm__dset_table(ctx, ds, n, &e);
  XM__CL(ctx, e);
  /* without weights the kernels read none: any buffer stands in */
  cl_mem bL = XM__M(w->L), bW = w->W ? XM__M(w->W) : XM__M(w->tail), bStart = XM__M(b->start),
         bPs = XM__M(b->psilo), bBy = XM__M(w->by), bSilo = XM__M(w->silo), bAttr = XM__M(w->attr),
         bTail = XM__M(w->tail);
  /* xm_k_reduce and xm_k_attribute share their first 13 arguments */
  for (int kid = KT_REDUCE; kid <= KT_ATTR; kid++)
    XM__CL(ctx, XM__ARGS(xm__k(o, kid), 0, XM__A(na), XM__A(G), XM__A(bL), XM__A(ca), XM__A(cs),
                         XM__A(ss), XM__A(bTab), XM__A(cn), XM__A(bW), XM__A(K), XM__A(bStart),
                         XM__A(bPs), XM__A(bSilo)));
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_REDUCE), 13, XM__A(bBy), XM__A(bTail)));
  XM__CL(ctx, xm__run2(o, KT_REDUCE, (size_t)na, (size_t)(G + 1) * (size_t)n, lws));
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_ATTR), 13, XM__A(bAttr), XM__A(bTail)));
  XM__CL(ctx, xm__run2(o, KT_ATTR, (size_t)na, (size_t)n, lws));
cleanup:
  if (bTab)
    clReleaseMemObject(bTab);
  return st;
}

/* A streamed chunk's segments as xm_k_tail reads them: XM__TSEG_COLS longs each. */
#define XM__TSEG_COLS 7
static xm_status xm__ocl_tail(xm_ctx *ctx, const xm__dblock *b, const xm__tseg *seg, int n,
                              const xm__dwork *w) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  int G = w->G;
  cl_int cn = n;
  cl_long na = b->na, ca = w->lay.ca, cs = w->lay.cs, ss = w->lay.ss, tk = w->tk;
  cl_long tab[XM__GROUP_SETS * XM__TSEG_COLS];
  for (int j = 0; j < n; j++) {
    cl_long *t = tab + j * XM__TSEG_COLS;
    t[0] = seg[j].j, t[1] = seg[j].r0, t[2] = seg[j].ns, t[3] = seg[j].first, t[4] = seg[j].k,
    t[5] = seg[j].measure, t[6] = seg[j].w_off;
  }
  cl_mem bTab = xm__buf(ctx, (size_t)n * XM__TSEG_COLS * sizeof(cl_long), tab, &e);
  XM__CL(ctx, e);
  cl_mem bL = XM__M(w->L), bW = w->W ? XM__M(w->W) : XM__M(w->T), bStart = XM__M(b->start),
         bPs = XM__M(b->psilo), bT = XM__M(w->T);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_TAIL), 0, XM__A(na), XM__A(G), XM__A(bL), XM__A(ca), XM__A(cs),
                       XM__A(ss), XM__A(bTab), XM__A(cn), XM__A(bW), XM__A(bStart), XM__A(bPs),
                       XM__A(bT), XM__A(tk)));
  XM__CL(ctx, xm__run2(o, KT_TAIL, (size_t)na, (size_t)(G + 1) * (size_t)n, xm__tuned_lws(ctx)));
cleanup:
  if (bTab)
    clReleaseMemObject(bTab);
  return st;
}

static xm_status xm__ocl_tail_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                                     const xm__dwork *w) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  int G = w->G;
  cl_int cn = n;
  cl_long na = b->na, K = w->K, tk = w->tk;
  cl_mem bTab = xm__dset_table(ctx, ds, n, &e);
  XM__CL(ctx, e);
  cl_mem bT = XM__M(w->T), bStart = XM__M(b->start), bPs = XM__M(b->psilo), bBy = XM__M(w->by),
         bSilo = XM__M(w->silo), bAttr = XM__M(w->attr);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_TAIL_REDUCE), 0, XM__A(na), XM__A(G), XM__A(bT), XM__A(tk),
                       XM__A(bTab), XM__A(cn), XM__A(K), XM__A(bStart), XM__A(bPs), XM__A(bBy),
                       XM__A(bSilo), XM__A(bAttr)));
  XM__CL(ctx,
         xm__run2(o, KT_TAIL_REDUCE, (size_t)na, (size_t)(G + 1) * (size_t)n, xm__tuned_lws(ctx)));
cleanup:
  if (bTab)
    clReleaseMemObject(bTab);
  return st;
}

static xm_status xm__ocl_liquidity(xm_ctx *ctx, const xm__dblock *b, xm__mem sx, xm__mem sex,
                                   xm__mem fpar, int64_t F, double vol_floor, const xm__dwork *w) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  const size_t lws = xm__tuned_lws(ctx);
  int G = w->G;
  cl_long n = b->n, na = b->na, cF = F;
  cl_double vfl = vol_floor;
  cl_mem bD = XM__M(b->instd_s), bI = XM__M(b->insti_s), bSx = XM__M(sx), bSex = XM__M(sex),
         bSens = XM__M(b->sens), bLs = XM__M(b->lq_start), bLf = XM__M(b->lq_fac),
         bLc = XM__M(b->lq_cstart), bLt = XM__M(b->lq_contrib), bPi = XM__M(b->pinst),
         bPq = XM__M(b->pqty), bF = XM__M(fpar), bXb = XM__M(b->xb), bLq = XM__M(w->lq);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_SENS), 0, XM__A(n), XM__A(bD), XM__A(bI), XM__A(bSx),
                       XM__A(bSex), XM__A(vfl), XM__A(bSens)));
  XM__CL(ctx, xm__run1(o, KT_SENS, (size_t)n, lws));
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_LQ), 0, XM__A(na), XM__A(G), XM__A(bLs), XM__A(bLf), XM__A(bLc),
                       XM__A(bLt), XM__A(bPi), XM__A(bPq), XM__A(bSens), XM__A(n), XM__A(bF),
                       XM__A(cF), XM__A(bXb), XM__A(bLq)));
  XM__CL(ctx, xm__run1(o, KT_LQ, (size_t)na, lws));
cleanup:
  return st;
}

static xm_status xm__ocl_combine(xm_ctx *ctx, const xm__dblock *b, const xm__dwork *w,
                                 double offset_cap, double per_contract, double beta) {
  xm__ocl *o = XM__OCL(ctx);
  xm_status st = XM_OK;
  int G = w->G;
  cl_long na = b->na, K = w->kd, kst = w->K, x0 = w->x0, kown = w->kown, rx = w->rx, n = b->n;
  cl_double cap = offset_cap, pc = per_contract, cb = beta, spw = w->sp_w;
  cl_long sp = w->sp;
  cl_int spe = w->sp_empty;
  cl_mem bBy = XM__M(w->by), bSilo = XM__M(w->silo), bAttr = XM__M(w->attr),
         bCross = XM__M(b->cross), bStart = XM__M(b->start), bPi = XM__M(b->pinst),
         bPs = XM__M(b->psilo), bPq = XM__M(b->pqty), bInstd = XM__M(b->instd), bLq = XM__M(w->lq),
         bOutA = XM__M(w->out_acct), bOutS = XM__M(w->out_silo);
  XM__CL(ctx, XM__ARGS(xm__k(o, KT_COMBINE), 0, XM__A(na), XM__A(G), XM__A(K), XM__A(kst),
                       XM__A(x0), XM__A(kown), XM__A(rx), XM__A(bBy), XM__A(bSilo), XM__A(bAttr),
                       XM__A(bCross), XM__A(bStart), XM__A(bPi), XM__A(bPs), XM__A(bPq), XM__A(n),
                       XM__A(bInstd), XM__A(bLq), XM__A(cap), XM__A(pc), XM__A(cb), XM__A(sp),
                       XM__A(spw), XM__A(spe), XM__A(bOutA), XM__A(bOutS)));
  XM__CL(ctx, xm__run1(o, KT_COMBINE, (size_t)na, xm__tuned_lws(ctx)));
cleanup:
  return st;
}

static xm_status xm__ocl_add(xm_ctx *ctx, int64_t n, xm__mem src, xm__mem dst) {
  cl_mem bs = XM__M(src), bd = XM__M(dst);
  return xm__blast(
      ctx, CLBlastDaxpy((size_t)n, 1.0, bs, 0, 1, bd, 0, 1, &XM__OCL(ctx)->queue, NULL), "DAXPY");
}

const xm__backend xm__backend_opencl = {
    .name = "opencl",
    .kind = XM_BACKEND_OPENCL,
    .host_memory = 0,
    .list = xm__ocl_list,
    .open = xm__ocl_open,
    .close = xm__ocl_close,
    .price = xm__ocl_price,
    .begin = xm__ocl_begin,
    .end = xm__ocl_end,
    .alloc = xm__ocl_alloc,
    .view = xm__ocl_view,
    .release = xm__ocl_release,
    .upload = xm__ocl_upload,
    .download = xm__ocl_download,
    .download_rows = xm__ocl_download_rows,
    .finish = xm__ocl_finish,
    .layout = xm__ocl_layout,
    .reduce_scratch = xm__ocl_reduce_scratch,
    .mc_scratch = xm__ocl_mc_scratch,
    .preferred_tile = NULL,
    .mc = xm__ocl_mc,
    .exp_shocks = xm__ocl_exp,
    .today = xm__ocl_today,
    .revalue = xm__ocl_revalue,
    .aggregate = xm__ocl_aggregate,
    .reduce = xm__ocl_reduce,
    .tail = xm__ocl_tail,
    .tail_reduce = xm__ocl_tail_reduce,
    .liquidity = xm__ocl_liquidity,
    .add = xm__ocl_add,
    .combine = xm__ocl_combine,
};
