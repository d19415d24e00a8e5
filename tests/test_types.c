/* The enumeration tables (host/include/xmargin_types.h): each row's
 * properties agree with what the code does with the type, so that a row added
 * with a wrong flag fails here, not in a margin. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "xmargin.h"

static double price(xm_ctx *ctx, int type, double S, double T, double q, double vol) {
  int32_t t = type, call = 1;
  double K = 100.0, r = 0.03, m = 1.0, out = NAN;
  xm_contracts c = {1, &t, &S, &K, &T, &r, &q, &vol, &call, &m};
  assert_int_equal(xm_price(ctx, XM_DOUBLE, &c, &out), XM_OK);
  return out;
}

/* option: the value moves with the vol; carry: with the dividend yield (a
 * forward S e^{(r-q)T}); neither for a linear type, whose value is S (-1/S
 * for an inverse one). */
static void properties_match_pricing(void **state) {
  xm_ctx *ctx = *state;
  for (int t = 0; t < XM_TYPE_COUNT; t++) {
    double v = price(ctx, t, 100.0, 0.5, 0.02, 0.2);
    int vol_moves = price(ctx, t, 100.0, 0.5, 0.02, 0.4) != v;
    int carry_moves = price(ctx, t, 100.0, 0.5, 0.05, 0.2) != v;
    if (vol_moves != XM_TYPE_IS_OPTION(t) || carry_moves != XM_TYPE_HAS_CARRY(t))
      fail_msg("type %s: option = %d, carry = %d in the table, but the vol %s and the dividend "
               "yield %s its value",
               xm_type_name(t), XM_TYPE_IS_OPTION(t), XM_TYPE_HAS_CARRY(t),
               vol_moves ? "moves" : "does not move", carry_moves ? "moves" : "does not move");
    if (!XM_TYPE_IS_OPTION(t))
      assert_true(v == (XM_TYPE_IS_INVERSE(t) ? -0.01 : 100.0));
  }
}

/* Names: every value has one, distinct, and none past the end. */
static void names_distinct(void **state) {
  (void)state;
  struct {
    const char *(*name)(int);
    int count;
  } tables[] = {{xm_type_name, XM_TYPE_COUNT},
                {xm_factor_kind_name, XM_FACTOR_KIND_COUNT},
                {xm_measure_name, XM_MEASURE_COUNT}};
  for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
    for (int i = 0; i < tables[k].count; i++) {
      assert_non_null(tables[k].name(i));
      assert_true(tables[k].name(i)[0] != '\0');
      for (int j = 0; j < i; j++)
        assert_string_not_equal(tables[k].name(i), tables[k].name(j));
    }
    assert_null(tables[k].name(tables[k].count));
    assert_null(tables[k].name(-1));
  }
}

static int setup(void **state) {
  xm_options o;
  xm_options_default(&o);
  o.device = "cpu";
  xm_ctx *ctx = NULL;
  if (xm_ctx_create(&ctx, &o) != XM_OK) {
    xm_ctx_destroy(ctx);
    return -1;
  }
  *state = ctx;
  return 0;
}

static int teardown(void **state) {
  xm_ctx_destroy(*state);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(properties_match_pricing),
      cmocka_unit_test(names_distinct),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
