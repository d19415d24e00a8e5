/* The shared reduction header (kernels/xm_reduce.h): radix selection of the
 * k-th largest loss and the risk measures, against a full sort, on fresh
 * random vectors with many ties, negative values and -0/+0; the streamed
 * tail (xm_tail_row, xm_tail_measure) against the whole rows' reduction
 * (xm_reduce_row, xm_attribute_account), bit for bit, in chunks of random
 * sizes, and in parts merged (xm_tail_merge). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "xm_reduce.h"

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? 1 : (x > y ? -1 : 0);
}

static double draw(unsigned *st, int kind) {
  *st = *st * 1103515245u + 12345u;
  unsigned r = (*st >> 8) & 0xffffu;
  switch (kind) {
  case 0:
    return ((double)r - 32768.0) * 1e3; /* distinct-ish, both signs */
  case 1:
    return (double)(r % 5) - 2.0; /* heavy ties */
  case 2:
    return (r & 1) ? 0.0 : -0.0; /* signed zeros only */
  default:
    return ((double)r / 65536.0) * 1e-300; /* tiny positives (subnormal scale) */
  }
}

static void selection_matches_sort(void **state) {
  (void)state;
  unsigned seed = (unsigned)time(NULL);
  print_message("seed %u\n", seed);
  unsigned st = seed;
  for (int trial = 0; trial < 400; trial++) {
    int kind = trial % 4;
    xm_i64 S = 1 + (xm_i64)(draw(&st, 1) + 2.0) * 300 + trial % 97;
    xm_i64 stride = 1 + trial % 3;
    double *v = calloc((size_t)(S * stride), sizeof *v), *sorted = malloc((size_t)S * sizeof *v);
    assert_non_null(v);
    assert_non_null(sorted);
    for (xm_i64 s = 0; s < S; s++)
      sorted[s] = v[s * stride] = draw(&st, kind);
    qsort(sorted, (size_t)S, sizeof *sorted, cmp_desc);
    for (xm_i64 k = 1; k <= S; k += 1 + S / 7) {
      xm_i64 n_gt = -1;
      xm_u64 key = xm_select_kth(v, stride, S, k, &n_gt);
      assert_true(key == xm_key(sorted[k - 1]));
      xm_i64 gt = 0;
      for (xm_i64 s = 0; s < S; s++)
        gt += sorted[s] + 0.0 > sorted[k - 1] + 0.0;
      assert_int_equal(n_gt, gt);
      /* ES and VaR through the measure */
      xm_i64 s_at = 0, ng = 0;
      xm_u64 kk = 0;
      double es = xm_risk_measure(v, stride, S, XM_MEASURE_ES, k, NULL, 0, &s_at, &kk, &ng);
      double sum = 0.0;
      for (xm_i64 j = 0; j < k; j++)
        sum += sorted[j];
      assert_true(fabs(es - sum / (double)k) <= 1e-12 * (fabs(sum / (double)k) + 1e-300));
      double var = xm_risk_measure(v, stride, S, XM_MEASURE_VAR, k, NULL, 0, &s_at, &kk, &ng);
      assert_true(var == sorted[k - 1]);
      assert_true(v[s_at * stride] == sorted[k - 1]);
    }
    free(sorted);
    free(v);
  }
}

/* One account's G + 1 rows of S losses (component-major, as both backends
 * lay L out), reduced whole and streamed in chunks of random sizes (1 ..
 * S + 2, a fresh size each chunk): by_set, silo_set and attr must have the
 * same bits, for es, var and worst (weighted or not), silos holding none,
 * some or all of the account's positions, heavy ties and signed zeros; a row
 * with a non-finite loss measures the first such loss on both paths (the
 * streamed attribution is then NaN: the engine refuses such a run). Fails
 * on a tie broken the other way, a sum in another order, a chunk boundary
 * that loses or doubles a candidate, or a record part overwritten; long
 * rising rows take both of the C fold's paths for a full tail. */
enum { TG = 3 };
/* Scenarios p0 .. p1 of an account's rows L [(TG + 1) x S] streamed into
 * rec in chunks of 1 .. most scenarios (sizes drawn from *st), each copied
 * into ch laid out for the chunk; returns the chunks. */
static xm_i64 stream(const double *L, xm_i64 S, xm_i64 p0, xm_i64 p1, xm_i64 most, unsigned *st,
                     double *ch, int measure, xm_i64 k, const double *w, int has_w,
                     const int *pos_start, const int *pos_silo, double *rec, xm_i64 tk) {
  xm_i64 chunks = 0;
  for (xm_i64 s0 = p0; s0 < p1; chunks++) {
    xm_i64 nc = 1 + (xm_i64)(*st % (unsigned)most);
    *st = *st * 1103515245u + 12345u;
    nc = nc < p1 - s0 ? nc : p1 - s0;
    xm_layout cl = {(TG + 1) * nc, nc, 1};
    for (int c = 0; c <= TG; c++)
      memcpy(ch + c * nc, L + c * S + s0, (size_t)nc * sizeof *ch);
    for (int c = 0; c <= TG; c++)
      xm_tail_row(0, c, TG, ch, cl, nc, measure, k, w + s0, has_w, s0 == p0, pos_start, pos_silo,
                  rec, tk);
    s0 += nc;
  }
  return chunks;
}
static void streamed_tail_matches_whole_rows(void **state) {
  (void)state;
  unsigned seed = (unsigned)time(NULL) ^ 0x5eedu;
  print_message("seed %u\n", seed);
  unsigned st = seed;
  /* position silos of the account: silo shares (0 none, 1 some, 2 all) */
  static const int silos[][4] = {{0, 1, 2, 2}, {1, 1, 1, 1}, {0, 0, 2, -1}, {2, -1, -1, -1}};
  for (int trial = 0; trial < 600; trial++) {
    int kind = trial % 4, measure = (trial / 4) % 3,
        has_w = measure == XM_MEASURE_WORST && trial % 2;
    /* every tenth trial long and rising (but signed zeros): a later chunk
     * then beats many of the held losses (the C fold's copy of a few, or
     * past XM__TAIL_FEW the selection with a floor) */
    int rising = trial % 10 == 3;
    xm_i64 S = rising ? 1500 + (xm_i64)(st % 1500u)
                      : 1 + (xm_i64)((draw(&st, 1) + 2.0) * 97.0) + trial % 13;
    xm_i64 k = measure == XM_MEASURE_WORST ? 1 : 1 + (xm_i64)(st % (unsigned)S);
    const int *ps = silos[trial % 4];
    int np = 0, pos_silo[4], pos_start[2] = {0, 0};
    while (np < 4 && ps[np] >= 0)
      pos_silo[np] = ps[np], np++;
    pos_start[1] = np;
    xm_layout lay = {(TG + 1) * S, S, 1};
    double *L = malloc((size_t)((TG + 1) * S) * sizeof *L), *w = malloc((size_t)S * sizeof *w);
    assert_non_null(L);
    assert_non_null(w);
    for (xm_i64 i = 0; i < (TG + 1) * S; i++)
      L[i] = draw(&st, kind) +
             (rising && kind != 2 ? (double)(i % S) * (kind == 3 ? 1e-303 : 1.0) : 0.0);
    for (xm_i64 s = 0; s < S; s++)
      w[s] = 0.5 + (double)(st % 7u) / 4.0, st = st * 1103515245u + 12345u;
    if (trial % 29 == 5) /* a non-finite loss in some row */
      L[(st % (TG + 1)) * S + st % (unsigned)S] = trial % 2 ? NAN : -INFINITY;
    double by0 = -1, silo0[TG], attr0[TG], tail[XM_TAIL] = {0};
    double by1 = -1, silo1[TG], attr1[TG];
    for (int g = 0; g < TG; g++)
      silo0[g] = silo1[g] = attr0[g] = attr1[g] = -1.0;
    for (int c = 0; c <= TG; c++)
      xm_reduce_row(0, c, S, lay, TG, L, measure, k, w, has_w, 1, 0, pos_start, pos_silo, &by0,
                    silo0, tail);
    xm_attribute_account(0, S, lay, TG, L, measure, k, w, has_w, 1, 0, pos_start, pos_silo, silo0,
                         attr0, tail);
    /* streamed: the chunk's rows copied into a buffer laid out for the chunk */
    xm_i64 tk = k, rec_n = XM_TREC(TG, tk);
    double *rec = malloc((size_t)(rec_n + 1) * sizeof *rec);
    double *ch = malloc((size_t)((TG + 1) * (S + 2)) * sizeof *ch);
    assert_non_null(rec);
    assert_non_null(ch);
    for (xm_i64 i = 0; i < rec_n; i++)
      rec[i] = 12345.0; /* garbage: the first chunk must start it empty */
    rec[rec_n] = 777.0; /* a guard past the record */
    xm_i64 chunks =
        stream(L, S, 0, S, S + 2, &st, ch, measure, k, w, has_w, pos_start, pos_silo, rec, tk);
    assert_true(rec[rec_n] == 777.0);
    /* the same scenarios in 1 .. 4 parts (processes), each streamed into a
     * record of its own (an empty part holds nothing), merged in order */
    int parts = 1 + trial % 4;
    double *mrec = calloc((size_t)(rec_n * parts), sizeof *mrec);
    assert_non_null(mrec);
    for (int q = 0; q < parts; q++) {
      stream(L, S, S * q / parts, S * (q + 1) / parts, 9, &st, ch, measure, k, w, has_w, pos_start,
             pos_silo, mrec + q * rec_n, tk);
      if (q > 0)
        xm_tail_merge(0, TG, mrec, mrec + q * rec_n, tk, measure, k, pos_start, pos_silo);
    }
    double by2 = -1, silo2[TG] = {-1, -1, -1}, attr2[TG] = {-1, -1, -1};
    for (int c = 0; c <= TG; c++)
      xm_tail_measure(0, c, TG, mrec, tk, measure, k, 1, 0, pos_start, pos_silo, &by2, silo2,
                      attr2);
    free(mrec);
    for (int c = 0; c <= TG; c++)
      xm_tail_measure(0, c, TG, rec, tk, measure, k, 1, 0, pos_start, pos_silo, &by1, silo1, attr1);
    int bad = 0;
    for (xm_i64 i = 0; i < (TG + 1) * S; i++)
      bad |= !isfinite(has_w ? w[i % S] * L[i] : L[i]);
    if (memcmp(&by0, &by1, sizeof by0) || memcmp(silo0, silo1, sizeof silo0) ||
        (!bad && memcmp(attr0, attr1, sizeof attr0)))
      print_message("trial %d (kind %d, measure %d, w %d, S %lld, k %lld, %lld chunks): by %.17g "
                    "/ %.17g, silo %.17g %.17g %.17g / %.17g %.17g %.17g, attr %.17g %.17g %.17g "
                    "/ %.17g %.17g %.17g\n",
                    trial, kind, measure, has_w, (long long)S, (long long)k, (long long)chunks, by0,
                    by1, silo0[0], silo0[1], silo0[2], silo1[0], silo1[1], silo1[2], attr0[0],
                    attr0[1], attr0[2], attr1[0], attr1[1], attr1[2]);
    assert_memory_equal(&by0, &by1, sizeof by0);
    assert_memory_equal(silo0, silo1, sizeof silo0);
    if (!bad)
      assert_memory_equal(attr0, attr1, sizeof attr0);
    if (memcmp(&by0, &by2, sizeof by0) || memcmp(silo0, silo2, sizeof silo0) ||
        (!bad && memcmp(attr0, attr2, sizeof attr0)))
      print_message("trial %d, %d parts merged: by %.17g / %.17g\n", trial, parts, by0, by2);
    assert_memory_equal(&by0, &by2, sizeof by0);
    assert_memory_equal(silo0, silo2, sizeof silo0);
    if (!bad)
      assert_memory_equal(attr0, attr2, sizeof attr0);
    free(ch);
    free(rec);
    free(w);
    free(L);
  }
}

/* The C paths that take a threshold from an evenly spaced sample (the
 * selection's and the streamed tail's first chunk): a row whose large
 * losses are exactly the sampled ones, fewer than k, makes every sample
 * point exceed the k-th loss; the threshold must then be refused (too few
 * reach it) and the full passes taken. Against a sort and the whole-row
 * reduction, bit for bit (fails if the count of those reaching the
 * threshold is not checked against k). */
static void sampled_threshold_refused(void **state) {
  (void)state;
  static const xm_i64 sizes[] = {4096, 5000, 1016, 777};
  for (size_t q = 0; q < sizeof sizes / sizeof sizes[0]; q++) {
    xm_i64 S = sizes[q], gap = S / 64;
    double *L = malloc((size_t)((TG + 1) * S) * sizeof *L), *sorted = malloc((size_t)S * sizeof *L);
    assert_true(L && sorted);
    for (xm_i64 i = 0; i < (TG + 1) * S; i++) {
      xm_i64 s = i % S;
      L[i] = s % gap == 0 && s / gap < 64 ? 1e6 + (double)s : 1e-3 * (double)((s * 7919) % S);
    }
    memcpy(sorted, L, (size_t)S * sizeof *L);
    qsort(sorted, (size_t)S, sizeof *sorted, cmp_desc);
    static const xm_i64 ks[] = {65, 100, 200};
    for (size_t kq = 0; kq < sizeof ks / sizeof ks[0]; kq++) {
      xm_i64 k = ks[kq], n_gt = -1;
      assert_true(xm_select_kth(L, 1, S, k, &n_gt) == xm_key(sorted[k - 1]));
      assert_int_equal(n_gt, k - 1);
      for (int measure = XM_MEASURE_ES; measure <= XM_MEASURE_VAR; measure++) {
        int pos_silo[2] = {0, 1}, pos_start[2] = {0, 2};
        xm_layout lay = {(TG + 1) * S, S, 1};
        double by0 = -1, silo0[TG], attr0[TG], tail[XM_TAIL] = {0};
        double by1 = -1, silo1[TG] = {-1, -1, -1}, attr1[TG] = {-1, -1, -1};
        for (int c = 0; c <= TG; c++)
          xm_reduce_row(0, c, S, lay, TG, L, measure, k, NULL, 0, 1, 0, pos_start, pos_silo, &by0,
                        silo0, tail);
        xm_attribute_account(0, S, lay, TG, L, measure, k, NULL, 0, 1, 0, pos_start, pos_silo,
                             silo0, attr0, tail);
        double *rec = calloc((size_t)XM_TREC(TG, k), sizeof *rec);
        assert_non_null(rec);
        for (int c = 0; c <= TG; c++) /* one chunk: the whole row */
          xm_tail_row(0, c, TG, L, lay, S, measure, k, NULL, 0, 1, pos_start, pos_silo, rec, k);
        for (int c = 0; c <= TG; c++)
          xm_tail_measure(0, c, TG, rec, k, measure, k, 1, 0, pos_start, pos_silo, &by1, silo1,
                          attr1);
        assert_memory_equal(&by0, &by1, sizeof by0);
        assert_memory_equal(silo0, silo1, sizeof silo0);
        assert_memory_equal(attr0, attr1, sizeof attr0);
        free(rec);
      }
    }
    free(sorted);
    free(L);
  }
}

/* The two-segment selection with a floor: the k-th largest of t and of v's
 * elements above the floor, against a sort of those (fails on a floor
 * applied to t, or one not applied to v). */
static void selection_two_segments(void **state) {
  (void)state;
  unsigned st = (unsigned)time(NULL) ^ 0xabcu;
  for (int trial = 0; trial < 300; trial++) {
    int kind = trial % 4;
    xm_i64 nt = trial % 40, S = 1 + trial % 150, n = 0;
    double *t = malloc((size_t)(nt + 1) * sizeof *t), *v = malloc((size_t)S * sizeof *v);
    double *all = malloc((size_t)(nt + S) * sizeof *all);
    assert_true(t && v && all);
    for (xm_i64 i = 0; i < nt; i++)
      all[n++] = t[i] = draw(&st, kind);
    double fl = draw(&st, kind);
    int use = trial % 3 != 0;
    for (xm_i64 s = 0; s < S; s++) {
      v[s] = draw(&st, kind);
      if (!use || xm_key(v[s]) > xm_key(fl))
        all[n++] = v[s];
    }
    qsort(all, (size_t)n, sizeof *all, cmp_desc);
    for (xm_i64 k = 1; k <= n; k += 1 + n / 5) {
      xm_i64 n_gt = -1;
      xm_u64 key = xm_select_kth2(t, nt, v, 1, S, use, xm_key(fl), k, &n_gt);
      assert_true(key == xm_key(all[k - 1]));
      xm_i64 gt = 0;
      for (xm_i64 i = 0; i < n; i++)
        gt += xm_key(all[i]) > key;
      assert_int_equal(n_gt, gt);
    }
    free(all);
    free(v);
    free(t);
  }
}

static void tail_count(void **state) {
  (void)state;
  assert_int_equal(xm_tail_count(100, 0.99), 1);
  assert_int_equal(xm_tail_count(1000, 0.99), 10);
  assert_int_equal(xm_tail_count(250, 0.99), 3);
  assert_int_equal(xm_tail_count(10, 0.8), 2);
  assert_int_equal(xm_tail_count(5, 0.999), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(selection_matches_sort),
      cmocka_unit_test(tail_count),
      cmocka_unit_test(selection_two_segments),
      cmocka_unit_test(sampled_threshold_refused),
      cmocka_unit_test(streamed_tail_matches_whole_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
