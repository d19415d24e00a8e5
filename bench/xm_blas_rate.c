/* xm_blas_rate: the measured rate of the BLAS each backend's Monte Carlo
 * product runs on, at that product's shape (issue 18 item 3: "Monte Carlo
 * within 2x of the GEMM floor of each device"; bench/run_mc.sh).
 *
 * cpu (OpenBLAS, the library libxmargin links: cblas.h, PkgConfig::BLAS):
 *   dgemm  C = Z L^T, row-major, S x F times F x F, the full product:
 *          2 S F^2 flops (a multiply and an add each count one);
 *   dtrmm  the cpu backend's call (host/backend_cpu.c, xm__cpu_mc):
 *          cblas_dtrmm(RowMajor, Right, Lower, Trans, NonUnit, S, F, 1, L, F, X, F),
 *          X = Z L^T with L lower triangular: row s, column j is
 *          sum_{k <= j} Z[s][k] L[j][k], j + 1 multiplies and j adds, so
 *          sum_{j=1..F} (2j - 1) = F^2 flops a row, S F^2 in all.
 * opencl (CLBlast on the OpenCL device, built with -DXM_WITH_OPENCL=ON):
 *   the opencl backend's layout (host/backend_opencl.c, xm__ocl_mc): column-
 *   major, A not transposed, B transposed (ZT, Sc x Fp, factor-major);
 *   full   one DGEMM m = Fp, n = Sc, k = Fp: 2 Fp^2 Sc flops;
 *   blocks the backend's nb GEMMs, block b: m = bm, n = Sc, k = (b + 1) bm,
 *          2 bm Sc (b + 1) bm flops each (bm^2 Sc nb (nb + 1) in all);
 *   each with CLBlast's own parameters (its database) and then with the
 *   Xgemm override the backend applies on PoCL (the "Portable Computing
 *   Language" row of host/tuning.c, copied below: keep in step).
 *
 * Usage: xm_blas_rate [--scenarios S (10000)] [--factors F (2000)]
 *                     [--warmup W (1)] [--repeat R (3)] [--threads N]
 *                     [--no-cpu] [--opencl] [--cl-device P.D] [--bm BM (64)]
 *                     [--cl-params both|database|xmargin] [--cl-shapes both|full|blocks]
 * --threads sets OpenBLAS's threads (openblas_set_num_threads; default: its
 * own, OPENBLAS_NUM_THREADS or all cores, what libxmargin gets). Prints a
 * markdown row and one line "XMBLAS {json}" per measurement: seconds median,
 * min, max over R timed calls (after W untimed ones: CLBlast compiles its
 * kernels on the first), flops, GFLOP/s of the median. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if XM_WITH_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>
#endif

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

#define XR_MAX_REPEAT 50

static double xr_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t xr_rng = 0x9E3779B97F4A7C15u;
static double xr_u01(void) { /* xorshift64*: inputs only */
  xr_rng ^= xr_rng >> 12;
  xr_rng ^= xr_rng << 25;
  xr_rng ^= xr_rng >> 27;
  return (double)((xr_rng * 2685821657736338717u) >> 11) * (1.0 / 9007199254740992.0);
}

static double *xr_alloc(size_t n) {
  double *p = aligned_alloc(64, (n * sizeof(double) + 63) / 64 * 64);
  if (!p) {
    fprintf(stderr, "xm_blas_rate: out of memory (%zu doubles)\n", n);
    exit(1);
  }
  memset(p, 0, n * sizeof(double)); /* touched: no page fault in the timing */
  return p;
}

static int xr_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void xr_report(const char *backend, const char *what, const char *params, long long S,
                      long long F, long long m, long long n, long long k, int threads, double flops,
                      double *t, int R) {
  qsort(t, (size_t)R, sizeof *t, xr_cmp);
  double med = R % 2 ? t[R / 2] : 0.5 * (t[R / 2 - 1] + t[R / 2]);
  printf("| %s | %s | %s | %lld x %lld | %d | %.4g | %.4f (%.4f-%.4f) | %.1f |\n", backend, what,
         params, S, F, threads, flops, med, t[0], t[R - 1], 1e-9 * flops / med);
  printf("XMBLAS {\"backend\":\"%s\",\"what\":\"%s\",\"params\":\"%s\",\"S\":%lld,\"F\":%lld,"
         "\"m\":%lld,\"n\":%lld,\"k\":%lld,\"threads\":%d,\"flops\":%.6g,\"seconds\":%.6f,"
         "\"min\":%.6f,\"max\":%.6f,\"repeat\":%d,\"gflops\":%.3f}\n",
         backend, what, params, S, F, m, n, k, threads, flops, med, t[0], t[R - 1], R,
         1e-9 * flops / med);
  fflush(stdout);
}

/* ---- cpu: OpenBLAS ---- */

static void xr_cpu(long long S, long long F, int W, int R) {
  double *Z = xr_alloc((size_t)(S * F)), *X = xr_alloc((size_t)(S * F));
  double *L = xr_alloc((size_t)(F * F)), t[XR_MAX_REPEAT];
  for (long long j = 0; j < S * F; j++)
    Z[j] = xr_u01() - 0.5;
  for (long long i = 0; i < F; i++) /* a Cholesky factor's size: rows of norm ~ 0.02 */
    for (long long k = 0; k <= i; k++)
      L[i * F + k] = 0.02 * (xr_u01() - 0.5) / (double)(i + 1) * 2.0;
  int th = openblas_get_num_threads();
  for (int r = -W; r < R; r++) {
    double t0 = xr_now();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)F, (int)F, 1.0, Z, (int)F, L,
                (int)F, 0.0, X, (int)F);
    if (r >= 0)
      t[r] = xr_now() - t0;
  }
  xr_report("cpu", "dgemm", "OpenBLAS", S, F, S, F, F, th, 2.0 * (double)S * (double)F * (double)F,
            t, R);
  for (int r = -W; r < R; r++) {
    memcpy(X, Z, (size_t)(S * F) * sizeof *X);
    double t0 = xr_now();
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)S, (int)F,
                1.0, L, (int)F, X, (int)F);
    if (r >= 0)
      t[r] = xr_now() - t0;
  }
  xr_report("cpu", "dtrmm", "OpenBLAS", S, F, S, F, F, th, (double)S * (double)F * (double)F, t, R);
  free(Z), free(X), free(L);
}

/* ---- opencl: CLBlast ---- */

#if XM_WITH_OPENCL
/* The "Portable Computing Language" row of host/tuning.c (xm__tunings): its
 * Xgemm parameters and XGEMM_MIN_INDIRECT_SIZE. */
static const char *const xr_xgemm_names[16] = {"GEMMK", "MWG",   "NWG", "KWG", "MDIMC", "NDIMC",
                                               "MDIMA", "NDIMB", "KWI", "VWM", "VWN",   "STRM",
                                               "STRN",  "SA",    "SB",  "KREG"};
static const size_t xr_xgemm_pocl[16] = {0, 64, 32, 16, 4, 4, 4, 4, 2, 8, 8, 0, 0, 0, 0, 1};
static const size_t xr_min_indirect_pocl = 64;

#define XR_CL(call)                                                                                \
  do {                                                                                             \
    cl_int e_ = (call);                                                                            \
    if (e_ != CL_SUCCESS) {                                                                        \
      fprintf(stderr, "xm_blas_rate: %s: OpenCL error %d\n", #call, (int)e_);                      \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static void xr_blast(CLBlastStatusCode c, const char *what) {
  if (c != CLBlastSuccess) {
    fprintf(stderr, "xm_blas_rate: CLBlast %s: status %d\n", what, (int)c);
    exit(1);
  }
}

/* One pass of the measured GEMMs (full or blocks); returns the flops. */
static double xr_ocl_pass(cl_command_queue q, int blocks, cl_mem bA, cl_mem bZT, cl_mem bXp,
                          long long bm, long long nb, long long Fp, long long Sc) {
  double flops = 0.0;
  if (!blocks) {
    xr_blast(CLBlastDgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                          (size_t)Fp, (size_t)Sc, (size_t)Fp, 1.0, bA, 0, (size_t)Fp, bZT, 0,
                          (size_t)Sc, 0.0, bXp, 0, (size_t)Fp, &q, NULL),
             "DGEMM (full)");
    flops = 2.0 * (double)Fp * (double)Fp * (double)Sc;
  } else {
    for (long long b = 0, off = 0; b < nb; off += bm * bm * (b + 1), b++) {
      long long kb = (b + 1) * bm;
      xr_blast(CLBlastDgemm(CLBlastLayoutColMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                            (size_t)bm, (size_t)Sc, (size_t)kb, 1.0, bA, (size_t)off, (size_t)bm,
                            bZT, 0, (size_t)Sc, 0.0, bXp, (size_t)(b * bm * Sc), (size_t)bm, &q,
                            NULL),
               "DGEMM (block)");
      flops += 2.0 * (double)bm * (double)Sc * (double)kb;
    }
  }
  XR_CL(clFinish(q));
  return flops;
}

static void xr_opencl(long long S, long long F, int W, int R, int P, int D, long long bm,
                      int params, int shapes) {
  cl_uint np = 0, nd = 0;
  cl_platform_id plats[16];
  cl_device_id devs[16];
  XR_CL(clGetPlatformIDs(16, plats, &np));
  if (P < 0) { /* default: PoCL, else the first platform */
    P = 0;
    for (cl_uint i = 0; i < np; i++) {
      char name[256] = "";
      clGetPlatformInfo(plats[i], CL_PLATFORM_NAME, sizeof name, name, NULL);
      if (strstr(name, "Portable Computing Language")) {
        P = (int)i;
        break;
      }
    }
  }
  if ((cl_uint)P >= np) {
    fprintf(stderr, "xm_blas_rate: no OpenCL platform %d\n", P);
    exit(1);
  }
  XR_CL(clGetDeviceIDs(plats[P], CL_DEVICE_TYPE_ALL, 16, devs, &nd));
  if ((cl_uint)D >= nd) {
    fprintf(stderr, "xm_blas_rate: no OpenCL device %d.%d\n", P, D);
    exit(1);
  }
  cl_device_id dev = devs[D];
  char pname[256] = "", dname[256] = "";
  clGetPlatformInfo(plats[P], CL_PLATFORM_NAME, sizeof pname, pname, NULL);
  clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof dname, dname, NULL);
  cl_uint cus = 0;
  clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
  fprintf(stderr, "xm_blas_rate: opencl %d.%d: %s [%s]\n", P, D, dname, pname);
  cl_int e = CL_SUCCESS;
  cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
  XR_CL(e);
  cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &e);
  XR_CL(e);
  /* the backend's plan (xm__mc_plan): Fp = nb bm, Sc = S rounded up to 128 */
  long long Fp = (F + bm - 1) / bm * bm, nb = Fp / bm, Sc = (S + 127) / 128 * 128;
  size_t zn = (size_t)(Fp * Sc), an = (size_t)(Fp * Fp);
  double *h = xr_alloc(zn > an ? zn : an);
  for (size_t j = 0; j < zn; j++)
    h[j] = xr_u01() - 0.5;
  cl_mem bZT = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, zn * 8, h, &e);
  XR_CL(e);
  cl_mem bXp = clCreateBuffer(ctx, CL_MEM_READ_WRITE, zn * 8, NULL, &e);
  XR_CL(e);
  for (size_t j = 0; j < an; j++)
    h[j] = 0.02 * (xr_u01() - 0.5);
  cl_mem bA = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, an * 8, h, &e);
  XR_CL(e);
  free(h);
  double t[XR_MAX_REPEAT];
  for (int tuned = 0; tuned < 2; tuned++) {
    if (!(params >> tuned & 1))
      continue;
    const char *pname_ = tuned ? "xmargin PoCL Xgemm" : "CLBlast database";
    if (tuned) {
      xr_blast(CLBlastOverrideParameters(dev, "Xgemm", CLBlastPrecisionDouble, 16,
                                         (const char **)xr_xgemm_names, xr_xgemm_pocl),
               "OverrideParameters Xgemm");
      const char *name = "XGEMM_MIN_INDIRECT_SIZE";
      xr_blast(CLBlastOverrideParameters(dev, "GemmRoutine", CLBlastPrecisionDouble, 1, &name,
                                         &xr_min_indirect_pocl),
               "OverrideParameters GemmRoutine");
    }
    for (int blocks = 0; blocks < 2; blocks++) {
      if (!(shapes >> blocks & 1))
        continue;
      double flops = 0.0;
      for (int r = -W; r < R; r++) {
        double t0 = xr_now();
        flops = xr_ocl_pass(q, blocks, bA, bZT, bXp, bm, nb, Fp, Sc);
        if (r >= 0)
          t[r] = xr_now() - t0;
        else
          fprintf(stderr, "xm_blas_rate: opencl %s %s warm-up %.2f s\n", pname_,
                  blocks ? "blocks" : "full", xr_now() - t0);
      }
      xr_report("opencl", blocks ? "dgemm_blocks" : "dgemm_full", pname_, S, F, blocks ? bm : Fp,
                Sc, Fp, (int)cus, flops, t, R);
    }
  }
  clReleaseMemObject(bA), clReleaseMemObject(bXp), clReleaseMemObject(bZT);
  clReleaseCommandQueue(q), clReleaseContext(ctx);
}
#endif

int main(int argc, char **argv) {
  long long S = 10000, F = 2000, bm = 64;
  int W = 1, R = 3, threads = 0, cpu = 1, ocl = 0, P = -1, D = 0, params = 3, shapes = 3;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--no-cpu"))
      cpu = 0;
    else if (!strcmp(a, "--opencl"))
      ocl = 1;
    else if (v && !strcmp(a, "--scenarios"))
      S = atoll(v), i++;
    else if (v && !strcmp(a, "--factors"))
      F = atoll(v), i++;
    else if (v && !strcmp(a, "--warmup"))
      W = atoi(v), i++;
    else if (v && !strcmp(a, "--repeat"))
      R = atoi(v), i++;
    else if (v && !strcmp(a, "--threads"))
      threads = atoi(v), i++;
    else if (v && !strcmp(a, "--bm"))
      bm = atoll(v), i++;
    else if (v && !strcmp(a, "--cl-device") && sscanf(v, "%d.%d", &P, &D) == 2)
      i++;
    else if (v && !strcmp(a, "--cl-params") &&
             (params = !strcmp(v, "both")       ? 3
                       : !strcmp(v, "database") ? 1
                       : !strcmp(v, "xmargin")  ? 2
                                                : 0))
      i++;
    else if (v && !strcmp(a, "--cl-shapes") &&
             (shapes = !strcmp(v, "both")     ? 3
                       : !strcmp(v, "full")   ? 1
                       : !strcmp(v, "blocks") ? 2
                                              : 0))
      i++;
    else {
      fprintf(stderr, "usage: xm_blas_rate [--scenarios S] [--factors F] [--warmup W] "
                      "[--repeat R] [--threads N] [--no-cpu] [--opencl] [--cl-device P.D] "
                      "[--bm BM] [--cl-params both|database|xmargin] "
                      "[--cl-shapes both|full|blocks]\n");
      return 2;
    }
  }
  if (S < 1 || F < 1 || W < 0 || R < 1 || R > XR_MAX_REPEAT || bm < 16 || bm % 16) {
    fprintf(stderr, "xm_blas_rate: bad arguments\n");
    return 2;
  }
  if (threads > 0)
    openblas_set_num_threads(threads);
  printf("| backend | product | parameters | S x F | threads | flops | seconds median (min-max) | "
         "GFLOP/s |\n|---|---|---|---|---:|---:|---:|---:|\n");
  if (cpu)
    xr_cpu(S, F, W, R);
  if (ocl) {
#if XM_WITH_OPENCL
    xr_opencl(S, F, W, R, P, D, bm, params, shapes);
#else
    fprintf(stderr, "xm_blas_rate: built without OpenCL (XM_WITH_OPENCL=OFF)\n");
    return 2;
#endif
  }
  return 0;
}
