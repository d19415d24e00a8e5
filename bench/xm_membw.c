/* xm_membw: the machine's rough floors for the roofline of bench/RESULTS.md.
 *  - memory bandwidth: an OpenMP copy b[i] = a[i] of two 512 MiB double arrays
 *    (bytes counted: 16 per element, read + write; write-allocate not counted);
 *  - FP64 FMA throughput: independent FMA chains per thread (the compiler's
 *    vectorisation of it at -O2 decides what is measured: a floor, not the peak);
 *  - special functions: exp, log, erfc per second per thread (glibc libm, scalar),
 *    the calls an option revaluation makes.
 * Usage: xm_membw [MiB per array (512)] [repeats (5)]. Median of the repeats. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xmargin.h"

static int xb_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double xb_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, xb_cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define XB_CHAINS 32
/* One body, compiled twice: for the baseline x86-64 ISA the project builds with
 * (SSE2: no FMA instruction, so multiply + add) and for AVX-512F + FMA. */
#define XB_FLOPS_BODY(OP)                                                                          \
  double sink = 0.0;                                                                               \
  double t0 = xm_now();                                                                            \
  _Pragma("omp parallel reduction(+ : sink)") {                                                    \
    double acc[XB_CHAINS];                                                                         \
    for (int c = 0; c < XB_CHAINS; c++)                                                            \
      acc[c] = 1.0 + 1e-9 * c + 1e-6 * omp_get_thread_num();                                       \
    const double m = 0.999999999, a = 1e-9;                                                        \
    for (long i = 0; i < iters; i++)                                                               \
      _Pragma("omp simd") for (int c = 0; c < XB_CHAINS; c++) acc[c] = OP;                         \
    for (int c = 0; c < XB_CHAINS; c++)                                                            \
      sink += acc[c];                                                                              \
  }                                                                                                \
  double dt = xm_now() - t0;                                                                       \
  if (sink == 42.0)                                                                                \
    printf("#");                                                                                   \
  return 2.0 * XB_CHAINS * (double)iters * omp_get_max_threads() / dt / 1e9;

static double xb_gflops_base(long iters) { XB_FLOPS_BODY(acc[c] * m + a) }

#if defined(__x86_64__) && defined(__GNUC__)
/* 8 independent 8-wide FMA chains in registers (GCC vector extension). */
typedef double xb_v8d __attribute__((vector_size(64)));
__attribute__((target("avx512f,fma"))) static double xb_gflops_avx512(long iters) {
  double sink = 0.0;
  double t0 = xm_now();
#pragma omp parallel reduction(+ : sink)
  {
    xb_v8d a0 = {1, 2, 3, 4, 5, 6, 7, 8}, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4,
           a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7;
    const xb_v8d m = a0 * 0.0 + 0.999999999, c = a0 * 0.0 + 1e-9;
    for (long i = 0; i < iters; i++) {
      a0 = a0 * m + c;
      a1 = a1 * m + c;
      a2 = a2 * m + c;
      a3 = a3 * m + c;
      a4 = a4 * m + c;
      a5 = a5 * m + c;
      a6 = a6 * m + c;
      a7 = a7 * m + c;
    }
    xb_v8d t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    for (int k = 0; k < 8; k++)
      sink += t[k];
  }
  double dt = xm_now() - t0;
  if (sink == 42.0)
    printf("#");
  return 2.0 * 64.0 * (double)iters * omp_get_max_threads() / dt / 1e9;
}
#endif

int main(int argc, char **argv) {
  char *end1 = NULL, *end2 = NULL;
  long mibl = argc > 1 ? strtol(argv[1], &end1, 10) : 512;
  long repl = argc > 2 ? strtol(argv[2], &end2, 10) : 5;
  if (argc > 3 || (end1 && *end1) || (end2 && *end2) || mibl < 1 || mibl > (1L << 20) || repl < 1 ||
      repl > 1000) {
    fprintf(stderr, "usage: xm_membw [MiB per array, 1..1048576 (512)] [repeats, 1..1000 (5)]\n");
    return 2;
  }
  size_t mib = (size_t)mibl;
  int rep = (int)repl;
  if (rep < 1 || rep > 100)
    rep = 5;
  size_t n = mib * 1024 * 1024 / sizeof(double);
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  if (!a || !b) {
    fprintf(stderr, "xm_membw: out of memory\n");
    return 1;
  }
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    a[i] = (double)i;
    b[i] = 0.0;
  }
  double bw[100], fl[100], fz[100];
  int have512 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  have512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  for (int r = 0; r < rep; r++) {
    double t0 = xm_now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
      b[i] = a[i];
    bw[r] = 16.0 * (double)n / (xm_now() - t0) / 1e9;
    a[r] = b[n - 1 - (size_t)r];
  }
  for (int r = 0; r < rep; r++) {
    fl[r] = xb_gflops_base(20000000L);
    fz[r] = 0.0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (have512)
      fz[r] = xb_gflops_avx512(50000000L);
#endif
  }
  /* special functions, one thread */
  const long m = 4000000;
  double x = 0.0, t0 = xm_now();
  for (long i = 0; i < m; i++)
    x += exp(-1.0 + 1e-7 * (double)i);
  double t_exp = (xm_now() - t0) / (double)m;
  t0 = xm_now();
  for (long i = 0; i < m; i++)
    x += log(1.0 + 1e-7 * (double)i);
  double t_log = (xm_now() - t0) / (double)m;
  t0 = xm_now();
  for (long i = 0; i < m; i++)
    x += erfc(-2.0 + 1e-6 * (double)i);
  double t_erfc = (xm_now() - t0) / (double)m;
  printf("threads %d\n", omp_get_max_threads());
  printf("copy bandwidth %.1f GB/s (median of %d, %zu MiB arrays, read+write bytes)\n",
         xb_median(bw, rep), rep, mib);
  printf("fp64 mul+add, baseline ISA (the project's build flags) %.1f GFLOP/s\n",
         xb_median(fl, rep));
  if (have512)
    printf("fp64 fma, AVX-512F %.1f GFLOP/s (median of %d, 8 x 8-wide chains per thread)\n",
           xb_median(fz, rep), rep);
  printf("libm per call, one thread: exp %.1f ns, log %.1f ns, erfc %.1f ns%s\n", 1e9 * t_exp,
         1e9 * t_log, 1e9 * t_erfc, x == 0.123 ? "#" : "");
  free(a);
  free(b);
  return 0;
}
