/* Status codes (ARCHITECTURE.md convention 3): one X-macro list, XM_STATUS_MAP,
 * gives every code, its value and its fixed text; xm_strerror and
 * xm_status_name must agree with it. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "xmargin.h"

typedef struct status_entry {
  const char *name; /* "XM_EFORMAT" */
  int value;
  const char *text; /* the text in the list */
} status_entry;

#define ENTRY(n, v, t) {"XM_" #n, (v), (t)},
static const status_entry status_table[] = {XM_STATUS_MAP(ENTRY)};
#undef ENTRY
#define N_STATUS (sizeof status_table / sizeof status_table[0])

/* The enum constants themselves, in list order, to check they match the values. */
#define CONSTANT(n, v, t) XM_##n,
static const xm_status status_constants[] = {XM_STATUS_MAP(CONSTANT)};
#undef CONSTANT

static void values_contiguous(void **state) {
  (void)state;
  int seen[XM_STATUS_COUNT] = {0};
  for (size_t i = 0; i < N_STATUS; i++) {
    int v = status_table[i].value;
    if (v < 0 || v >= XM_STATUS_COUNT)
      fail_msg("%s = %d is outside 0..XM_STATUS_COUNT-1 (%d)", status_table[i].name, v,
               XM_STATUS_COUNT - 1);
    if (seen[v])
      fail_msg("value %d used twice (%s)", v, status_table[i].name);
    seen[v] = 1;
    assert_int_equal((int)status_constants[i], v);
  }
  for (int v = 0; v < XM_STATUS_COUNT; v++)
    if (!seen[v])
      fail_msg("value %d has no status: the list is not contiguous", v);
}

static void strings_nonempty_distinct(void **state) {
  (void)state;
  for (size_t i = 0; i < N_STATUS; i++) {
    xm_status code = (xm_status)status_table[i].value;
    const char *s = xm_strerror(code);
    assert_non_null(s);
    if (!s[0])
      fail_msg("xm_strerror(%s) is empty", status_table[i].name);
    assert_string_equal(s, status_table[i].text);
    assert_string_not_equal(s, "unknown status");
    for (size_t j = 0; j < i; j++)
      if (strcmp(s, xm_strerror((xm_status)status_table[j].value)) == 0)
        fail_msg("%s and %s share the text '%s'", status_table[i].name, status_table[j].name, s);
    /* The same pointer every time: static text. */
    assert_ptr_equal(s, xm_strerror(code));
  }
}

static void names_match(void **state) {
  (void)state;
  for (size_t i = 0; i < N_STATUS; i++) {
    const char *nm = xm_status_name((xm_status)status_table[i].value);
    assert_non_null(nm);
    assert_string_equal(nm, status_table[i].name);
    assert_int_equal(strncmp(nm, "XM_", 3), 0);
    assert_true(strlen(nm) > 3);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(nm, xm_status_name((xm_status)status_table[j].value));
  }
  assert_string_equal(xm_status_name(XM_OK), "XM_OK");
  assert_string_equal(xm_status_name(XM_EFORMAT), "XM_EFORMAT");
  assert_string_equal(xm_status_name(XM_EINTERNAL), "XM_EINTERNAL");
}

static void unknown_codes(void **state) {
  (void)state;
  const int bad[] = {XM_STATUS_COUNT, XM_STATUS_COUNT + 1, 100, 1000, INT_MAX, -1, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    xm_status code = (xm_status)bad[i];
    const char *s = xm_strerror(code);
    assert_non_null(s);
    assert_string_equal(s, "unknown status");
    const char *nm = xm_status_name(code);
    assert_non_null(nm);
    assert_true(nm[0] != '\0');
    for (size_t j = 0; j < N_STATUS; j++)
      assert_string_not_equal(nm, status_table[j].name);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(values_contiguous),
      cmocka_unit_test(strings_nonempty_distinct),
      cmocka_unit_test(names_match),
      cmocka_unit_test(unknown_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
