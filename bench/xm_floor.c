/* xm_floor: the floor of the cpu backend's evaluate on this machine (issue 18,
 * item 2): what a branch-free pricing loop with vector erfc, and an aggregation
 * of 8 scenarios per AVX-512 operation (4 per AVX2 one) into the per-account
 * layout, cost for a book of N instruments x S scenarios x P positions. It
 * uses none of the engine: synthetic inputs of the same shape (instruments
 * sorted by class, linear ones first; positions sorted by (silo, instrument)
 * within an account), built before the clock starts, every buffer allocated
 * and touched once (no page faults in the timing).
 *
 * Stages, each timed apart (median of --repeat runs after --warmup):
 *  price   the N x S contract losses, 8 scenarios of one instrument per vector
 *          (lanes = scenarios: the tile's shocks transposed to [F][8] first),
 *          linear rows one multiply, Black rows two erfc and a divide (exp(x) and
 *          log(F/K) hoisted, as the engine does), into a per-thread tile buffer;
 *          reported as revaluations (scenario, instrument) per second
 *  naive   the same with exp(x) and log(F/K) computed per revaluation
 *          (what the hoisting saves; not part of the floor)
 *  agg     aggregation alone: per 8-scenario tile (the buffer priced once), each
 *          account's positions q * l summed into the account total and the
 *          running silo part, stored to L[a][c][s] (per account, G + 1
 *          components, S scenarios contiguous: the layout the measures read);
 *          reported as positions x scenarios per second
 *  fused   price + aggregate per tile, all of L written: the floor of an
 *          evaluate without its risk measures (selection is not in it);
 *          reported as seconds and positions x scenarios per second.
 * Threads: OpenMP over scenario tiles (--threads, default all); run with
 * --threads 1 for the one-thread floor.
 *
 *   xm_floor --instruments 20000 --linear 6000 --scenarios 10016 --positions 100000 \
 *            --accounts 2000 --silos 3 --factors 100 [--threads T] [--repeat 3] [--json]
 *            [--isa scalar|avx2|avx512f]   (the aggregation's path, at most what the CPU has)
 *
 * --json prints one line "XMFLOOR {...}" with every median. Without glibc's
 * libmvec (or built by clang, which has no binding to it here) the erfc is
 * scalar: the line says "vector_math": false and the numbers are no floor. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(XM_HAVE_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma omp declare simd notinbranch
double erfc(double);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
double log(double);
#define XF_VECTOR_MATH 1
#define XF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define XF_SIMD _Pragma("omp simd")
#else
#define XF_VECTOR_MATH 0
#define XF_CLONES
#define XF_SIMD
#endif

#define XF_W 8 /* scenarios per tile: one AVX-512 vector of doubles */

typedef struct {
  int64_t n, nlin, S, P, A, F;
  int G;
  /* instruments, struct of arrays */
  double *s0, *k, *sqt, *df, *carry, *lfk, *sig, *mult, *v0, *w;
  int *und, *vf;
  /* positions, CSR by account */
  int *start, *pinst, *psilo;
  double *pqty;
  /* shocks x[S][F], ex = exp(x) */
  double *x, *ex;
  /* account losses L[a][c][s] */
  double *L;
} xf_book;

static double xf_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t xf_rng = 0x9E3779B97F4A7C15u;
static double xf_u01(void) { /* xorshift64*: inputs only, not statistics */
  xf_rng ^= xf_rng >> 12;
  xf_rng ^= xf_rng << 25;
  xf_rng ^= xf_rng >> 27;
  return (double)((xf_rng * 2685821657736338717u) >> 11) * (1.0 / 9007199254740992.0);
}
static double xf_normal(void) {
  double u = xf_u01() + 1e-300, v = xf_u01();
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void *xf_alloc(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) {
    fprintf(stderr, "xm_floor: out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  memset(p, 0, (bytes + 63) / 64 * 64); /* touched: no page fault in the timing */
  return p;
}

static int xf_cmp_pos(const void *a, const void *b) {
  const int *x = a, *y = b; /* (silo, instrument) */
  return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

static void xf_make(xf_book *b) {
  int64_t n = b->n, F = b->F, S = b->S, A = b->A, P = b->P;
  int64_t nu = F / 2 > 0 ? F / 2 : 1; /* price factors 0..nu, vol factors nu..2nu */
  b->s0 = xf_alloc(n * 8), b->k = xf_alloc(n * 8), b->sqt = xf_alloc(n * 8);
  b->df = xf_alloc(n * 8), b->carry = xf_alloc(n * 8), b->lfk = xf_alloc(n * 8);
  b->sig = xf_alloc(n * 8), b->mult = xf_alloc(n * 8), b->v0 = xf_alloc(n * 8);
  b->w = xf_alloc(n * 8);
  b->und = xf_alloc(n * 4), b->vf = xf_alloc(n * 4);
  for (int64_t i = 0; i < n; i++) {
    int u = (int)(xf_u01() * (double)nu);
    double S0 = 20.0 + 480.0 * xf_u01(), K = S0 * (0.7 + 0.6 * xf_u01());
    double T1 = 0.02 + 2.0 * xf_u01(), r = 0.045, q = 0.015 * (xf_u01() < 0.5);
    b->und[i] = u, b->vf[i] = (int)(nu + u < F ? nu + u : u);
    b->s0[i] = S0, b->k[i] = K, b->sqt[i] = sqrt(T1), b->df[i] = exp(-r * T1);
    b->carry[i] = exp((r - q) * T1), b->lfk[i] = log(S0 / K) + (r - q) * T1;
    b->sig[i] = 0.12 + 0.5 * xf_u01(), b->mult[i] = 100.0;
    b->v0[i] = i < b->nlin ? S0 : 0.1 * S0, b->w[i] = xf_u01() < 0.5 ? 1.0 : -1.0;
  }
  b->x = xf_alloc(S * F * 8), b->ex = xf_alloc(S * F * 8);
  for (int64_t j = 0; j < S * F; j++) {
    b->x[j] = 0.02 * xf_normal();
    b->ex[j] = exp(b->x[j]);
  }
  /* P positions over A accounts, P / A each (the remainder to the first) */
  b->start = xf_alloc((A + 1) * 4), b->pinst = xf_alloc(P * 4), b->psilo = xf_alloc(P * 4);
  b->pqty = xf_alloc(P * 8);
  int *tmp = malloc((size_t)P * 2 * sizeof *tmp);
  if (!tmp)
    exit(1);
  int64_t p = 0;
  for (int64_t a = 0; a < A; a++) {
    int64_t np = P / A + (a < P % A);
    b->start[a] = (int)p;
    for (int64_t j = 0; j < np; j++) {
      int i = (int)(xf_u01() * (double)n);
      tmp[2 * j] = (int)(xf_u01() * b->G), tmp[2 * j + 1] = i;
    }
    qsort(tmp, (size_t)np, 2 * sizeof *tmp, xf_cmp_pos);
    for (int64_t j = 0; j < np; j++, p++) {
      b->psilo[p] = tmp[2 * j], b->pinst[p] = tmp[2 * j + 1];
      b->pqty[p] = round(20.0 * xf_normal());
    }
  }
  b->start[A] = (int)p;
  free(tmp);
  b->L = xf_alloc((size_t)A * (b->G + 1) * S * 8);
}

/* ---- pricing: one tile of 8 scenarios s0 .. s0+8 into ell[i][8] ---- */

/* The tile's shocks, transposed: xt[f][j] = x[s0 + j][f] (rows past S: 0). */
static void xf_transpose(const xf_book *b, int64_t s0, double *xt, double *et) {
  for (int64_t f = 0; f < b->F; f++)
    for (int j = 0; j < XF_W; j++) {
      int64_t s = s0 + j < b->S ? s0 + j : b->S - 1;
      xt[f * XF_W + j] = b->x[s * b->F + f];
      et[f * XF_W + j] = b->ex[s * b->F + f];
    }
}

XF_CLONES static void xf_price_tile(const xf_book *b, const double *xt, const double *et,
                                    double *ell) {
  for (int64_t i = 0; i < b->nlin; i++) {
    const double *e = et + (int64_t)b->und[i] * XF_W;
    double m = b->mult[i], v0 = b->v0[i], s0 = b->s0[i];
    XF_SIMD for (int j = 0; j < XF_W; j++) ell[i * XF_W + j] = m * (v0 - s0 * e[j]);
  }
  for (int64_t i = b->nlin; i < b->n; i++) {
    const double *xs = xt + (int64_t)b->und[i] * XF_W, *e = et + (int64_t)b->und[i] * XF_W;
    const double *xv = xt + (int64_t)b->vf[i] * XF_W;
    double fc = b->s0[i] * b->carry[i], K = b->k[i], lfk = b->lfk[i], sq = b->sqt[i];
    double sig = b->sig[i], df = b->df[i], w = b->w[i], m = b->mult[i], v0 = b->v0[i];
    XF_SIMD for (int j = 0; j < XF_W; j++) {
      double vol = sig + xv[j];
      vol = vol > 0.01 ? vol : 0.01;
      double sv = vol * sq, F = fc * e[j];
      double d1 = (lfk + xs[j] + 0.5 * sv * sv) / sv, d2 = d1 - sv;
      double n1 = 0.5 * erfc(-w * d1 * 0.70710678118654752440);
      double n2 = 0.5 * erfc(-w * d2 * 0.70710678118654752440);
      double v = w * (F * n1 - K * n2);
      v = v > 0.0 ? v : 0.0;
      ell[i * XF_W + j] = m * (v0 - df * v);
    }
  }
}

/* The same with exp(x) and log(F/K) per revaluation (no hoisting). */
XF_CLONES static void xf_price_tile_naive(const xf_book *b, const double *xt, double *ell) {
  for (int64_t i = 0; i < b->nlin; i++) {
    const double *xs = xt + (int64_t)b->und[i] * XF_W;
    double m = b->mult[i], v0 = b->v0[i], s0 = b->s0[i];
    XF_SIMD for (int j = 0; j < XF_W; j++) ell[i * XF_W + j] = m * (v0 - s0 * exp(xs[j]));
  }
  for (int64_t i = b->nlin; i < b->n; i++) {
    const double *xs = xt + (int64_t)b->und[i] * XF_W, *xv = xt + (int64_t)b->vf[i] * XF_W;
    double fc = b->s0[i] * b->carry[i], K = b->k[i], sq = b->sqt[i];
    double sig = b->sig[i], df = b->df[i], w = b->w[i], m = b->mult[i], v0 = b->v0[i];
    XF_SIMD for (int j = 0; j < XF_W; j++) {
      double vol = sig + xv[j];
      vol = vol > 0.01 ? vol : 0.01;
      double sv = vol * sq, F = fc * exp(xs[j]);
      double d1 = (log(F / K) + 0.5 * sv * sv) / sv, d2 = d1 - sv;
      double n1 = 0.5 * erfc(-w * d1 * 0.70710678118654752440);
      double n2 = 0.5 * erfc(-w * d2 * 0.70710678118654752440);
      double v = w * (F * n1 - K * n2);
      v = v > 0.0 ? v : 0.0;
      ell[i * XF_W + j] = m * (v0 - df * v);
    }
  }
}

/* ---- aggregation: one tile's 8 scenarios into every account ----
 * out(a, c) = L + (a (G + 1) + c) S + s0: component 0 the total, 1 + g silo g. */

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void xf_agg_avx512(const xf_book *b, int64_t s0,
                                                             const double *ell) {
  int G = b->G;
  int64_t S = b->S;
  for (int64_t a = 0; a < b->A; a++) {
    double *out = b->L + a * (G + 1) * S + s0;
    __m512d total = _mm512_setzero_pd(), part = _mm512_setzero_pd();
    int cur = -1;
    for (int c = 1; c <= G; c++)
      _mm512_storeu_pd(out + c * S, _mm512_setzero_pd());
    for (int p = b->start[a]; p < b->start[a + 1]; p++) {
      __m512d l = _mm512_mul_pd(_mm512_set1_pd(b->pqty[p]),
                                _mm512_load_pd(ell + (int64_t)b->pinst[p] * XF_W));
      if (b->psilo[p] != cur) {
        if (cur >= 0)
          _mm512_storeu_pd(out + (1 + cur) * S, part);
        cur = b->psilo[p];
        part = _mm512_setzero_pd();
      }
      part = _mm512_add_pd(part, l);
      total = _mm512_add_pd(total, l);
    }
    if (cur >= 0)
      _mm512_storeu_pd(out + (1 + cur) * S, part);
    _mm512_storeu_pd(out, total);
  }
}

__attribute__((target("avx2"))) static void xf_agg_avx2(const xf_book *b, int64_t s0,
                                                        const double *ell) {
  int G = b->G;
  int64_t S = b->S;
  for (int64_t a = 0; a < b->A; a++) {
    double *out = b->L + a * (G + 1) * S + s0;
    __m256d t0 = _mm256_setzero_pd(), t1 = t0, p0 = t0, p1 = t0;
    int cur = -1;
    for (int c = 1; c <= G; c++) {
      _mm256_storeu_pd(out + c * S, _mm256_setzero_pd());
      _mm256_storeu_pd(out + c * S + 4, _mm256_setzero_pd());
    }
    for (int p = b->start[a]; p < b->start[a + 1]; p++) {
      const double *e = ell + (int64_t)b->pinst[p] * XF_W;
      __m256d q = _mm256_set1_pd(b->pqty[p]);
      __m256d l0 = _mm256_mul_pd(q, _mm256_load_pd(e)),
              l1 = _mm256_mul_pd(q, _mm256_load_pd(e + 4));
      if (b->psilo[p] != cur) {
        if (cur >= 0) {
          _mm256_storeu_pd(out + (1 + cur) * S, p0);
          _mm256_storeu_pd(out + (1 + cur) * S + 4, p1);
        }
        cur = b->psilo[p];
        p0 = p1 = _mm256_setzero_pd();
      }
      p0 = _mm256_add_pd(p0, l0), p1 = _mm256_add_pd(p1, l1);
      t0 = _mm256_add_pd(t0, l0), t1 = _mm256_add_pd(t1, l1);
    }
    if (cur >= 0) {
      _mm256_storeu_pd(out + (1 + cur) * S, p0);
      _mm256_storeu_pd(out + (1 + cur) * S + 4, p1);
    }
    _mm256_storeu_pd(out, t0);
    _mm256_storeu_pd(out + 4, t1);
  }
}
#endif

static void xf_agg_scalar(const xf_book *b, int64_t s0, const double *ell) {
  int G = b->G;
  int64_t S = b->S;
  for (int64_t a = 0; a < b->A; a++) {
    double *out = b->L + a * (G + 1) * S + s0;
    double total[XF_W] = {0}, part[XF_W] = {0};
    int cur = -1;
    for (int c = 1; c <= G; c++)
      memset(out + c * S, 0, XF_W * sizeof *out);
    for (int p = b->start[a]; p < b->start[a + 1]; p++) {
      const double *e = ell + (int64_t)b->pinst[p] * XF_W;
      if (b->psilo[p] != cur) {
        if (cur >= 0)
          memcpy(out + (1 + cur) * S, part, sizeof part);
        cur = b->psilo[p];
        memset(part, 0, sizeof part);
      }
      for (int j = 0; j < XF_W; j++) {
        double l = b->pqty[p] * e[j];
        part[j] += l, total[j] += l;
      }
    }
    if (cur >= 0)
      memcpy(out + (1 + cur) * S, part, sizeof part);
    memcpy(out, total, sizeof total);
  }
}

static int xf_isa; /* 2 AVX-512, 1 AVX2, 0 scalar */
static const char *xf_isa_name[] = {"scalar", "avx2", "avx512f"};

static void xf_agg(const xf_book *b, int64_t s0, const double *ell) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (xf_isa == 2)
    return xf_agg_avx512(b, s0, ell);
  if (xf_isa == 1)
    return xf_agg_avx2(b, s0, ell);
#endif
  xf_agg_scalar(b, s0, ell);
}

/* ---- the stages ---- */
enum { XF_PRICE, XF_NAIVE, XF_AGG, XF_FUSED, XF_NSTAGE };
static const char *xf_stage_name[] = {"price", "naive", "agg", "fused"};

/* One stage over every tile (main() has rounded S up to 8: the last tile's
 * extra scenarios repeat row S - 1 and have their own columns of L). */
static double xf_run(const xf_book *b, int stage, double **bufs, double *chk) {
  int64_t nt = (b->S + XF_W - 1) / XF_W;
  double sum = 0.0;
  double t0 = xf_now();
#pragma omp parallel reduction(+ : sum)
  {
    int t = omp_get_thread_num();
    double *ell = bufs[3 * t], *xt = bufs[3 * t + 1], *et = bufs[3 * t + 2];
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < nt; tile++) {
      int64_t s0 = tile * XF_W;
      if (stage != XF_AGG)
        xf_transpose(b, s0, xt, et);
      if (stage == XF_PRICE || stage == XF_FUSED)
        xf_price_tile(b, xt, et, ell);
      else if (stage == XF_NAIVE)
        xf_price_tile_naive(b, xt, ell);
      if (stage == XF_AGG || stage == XF_FUSED)
        xf_agg(b, s0, ell);
      sum += ell[(tile * 7919 % b->n) * XF_W]; /* keeps the pricing live */
    }
  }
  double dt = xf_now() - t0;
  *chk += sum;
  return dt;
}

static int xf_cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int64_t xf_arg(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "xm_floor: %s needs a value\n", argv[*i]);
    exit(2);
  }
  return strtoll(argv[++*i], NULL, 10);
}

int main(int argc, char **argv) {
  xf_book b = {.n = 20000, .nlin = 6000, .S = 10016, .P = 100000, .A = 2000, .F = 100, .G = 3};
  int threads = 0, repeat = 3, warmup = 1, json = 0;
  const char *label = "", *force_isa = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--instruments"))
      b.n = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--linear"))
      b.nlin = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--scenarios"))
      b.S = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--positions"))
      b.P = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--accounts"))
      b.A = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--factors"))
      b.F = xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--silos"))
      b.G = (int)xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--threads"))
      threads = (int)xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--repeat"))
      repeat = (int)xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--warmup"))
      warmup = (int)xf_arg(argc, argv, &i);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc)
      label = argv[++i];
    else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
      force_isa = argv[++i];
    } else if (!strcmp(argv[i], "--json"))
      json = 1;
    else {
      fprintf(stderr, "usage: see the comment at the top of bench/xm_floor.c (%s?)\n", argv[i]);
      return 2;
    }
  }
  if (b.n < 1 || b.nlin < 0 || b.nlin > b.n || b.S < 1 || b.A < 1 || b.P < b.A || b.F < 2 ||
      b.G < 1 || repeat < 1 || warmup < 0) {
    fprintf(stderr, "xm_floor: bad sizes\n");
    return 2;
  }
  if (threads > 0)
    omp_set_num_threads(threads);
  threads = omp_get_max_threads();
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  xf_isa = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
  for (int j = 0; force_isa && j < 3; j++)
    if (!strcmp(force_isa, xf_isa_name[j]) && j <= xf_isa)
      xf_isa = j;
  /* L's rows hold S rounded up to 8 (whole tiles: no store crosses a row). */
  int64_t S = b.S;
  b.S = (S + XF_W - 1) / XF_W * XF_W;
  xf_make(&b);
  double **bufs = malloc(sizeof *bufs * 3 * (size_t)threads);
  for (int t = 0; t < threads; t++) {
    bufs[3 * t] = xf_alloc((size_t)b.n * XF_W * 8);
    bufs[3 * t + 1] = xf_alloc((size_t)b.F * XF_W * 8);
    bufs[3 * t + 2] = xf_alloc((size_t)b.F * XF_W * 8);
  }
  /* the aggregation stage reads a tile buffer priced once */
  for (int t = 0; t < threads; t++) {
    xf_transpose(&b, 0, bufs[3 * t + 1], bufs[3 * t + 2]);
    xf_price_tile(&b, bufs[3 * t + 1], bufs[3 * t + 2], bufs[3 * t]);
  }
  double med[XF_NSTAGE], lo[XF_NSTAGE], hi[XF_NSTAGE], chk = 0.0;
  double *ts = malloc(sizeof *ts * (size_t)repeat);
  for (int st = 0; st < XF_NSTAGE; st++) {
    for (int r = 0; r < warmup; r++)
      xf_run(&b, st, bufs, &chk);
    for (int r = 0; r < repeat; r++)
      ts[r] = xf_run(&b, st, bufs, &chk);
    qsort(ts, (size_t)repeat, sizeof *ts, xf_cmp_d);
    med[st] = repeat % 2 ? ts[repeat / 2] : 0.5 * (ts[repeat / 2 - 1] + ts[repeat / 2]);
    lo[st] = ts[0], hi[st] = ts[repeat - 1];
  }
  double Sp = (double)b.S; /* scenarios computed: S rounded up to 8 */
  double reval = Sp * (double)b.n, posc = Sp * (double)b.P;
  printf("xm_floor %s: N %lld instruments (%lld linear, %lld Black), S %lld scenarios (%lld "
         "computed), P %lld positions, A %lld accounts, G %d, F %lld; %d threads; vector math %s; "
         "aggregation %s\n",
         label, (long long)b.n, (long long)b.nlin, (long long)(b.n - b.nlin), (long long)S,
         (long long)b.S, (long long)b.P, (long long)b.A, b.G, (long long)b.F, threads,
         XF_VECTOR_MATH ? "libmvec" : "none (scalar erfc)", xf_isa_name[xf_isa]);
  for (int st = 0; st < XF_NSTAGE; st++) {
    double work = st == XF_AGG || st == XF_FUSED ? posc : reval;
    printf("  %-6s %.4f s median (%.4f-%.4f)  %.4g %s/s\n", xf_stage_name[st], med[st], lo[st],
           hi[st], work / med[st], st == XF_AGG || st == XF_FUSED ? "pos-scen" : "reval");
  }
  double lsum = 0.0; /* L after the last fused run: equal bits on every --isa */
  for (int64_t j = 0; j < b.A * (b.G + 1) * b.S; j++)
    lsum += b.L[j];
  printf("  fused floor per 10^9 positions x scenarios: %.3f s (checksum %.6g, L sum %.17g)\n",
         med[XF_FUSED] * 1e9 / posc, chk, lsum);
  if (json)
    printf("XMFLOOR {\"size\": \"%s\", \"N\": %lld, \"N_linear\": %lld, \"S\": %lld, \"P\": %lld, "
           "\"A\": %lld, \"G\": %d, \"F\": %lld, \"threads\": %d, \"vector_math\": %s, \"isa\": "
           "\"%s\", \"price_s\": %.6f, \"naive_s\": %.6f, \"agg_s\": %.6f, \"fused_s\": %.6f, "
           "\"reval_per_s\": %.6g, \"agg_per_s\": %.6g, \"fused_per_s\": %.6g, \"repeat\": %d}\n",
           label, (long long)b.n, (long long)b.nlin, (long long)S, (long long)b.P, (long long)b.A,
           b.G, (long long)b.F, threads, XF_VECTOR_MATH ? "true" : "false", xf_isa_name[xf_isa],
           med[XF_PRICE], med[XF_NAIVE], med[XF_AGG], med[XF_FUSED], reval / med[XF_PRICE],
           posc / med[XF_AGG], posc / med[XF_FUSED], repeat);
  return 0;
}
