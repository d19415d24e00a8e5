/* The shared reduction header (kernels/xm_reduce.h): radix selection of the
 * k-th largest loss and the risk measures, against a full sort, on fresh
 * random vectors with many ties, negative values and -0/+0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
