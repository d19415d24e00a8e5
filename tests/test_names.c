/* Tests of the name index (host/names.c): every answer compared with a
 * linear scan of the names, on fixed cases, random names with many repeats,
 * 100k distinct names, names that differ in one byte, long names, empty
 * strings, NULL entries and absent names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xm_names.h"

/* The first row of name in s[n] by a linear scan, or -1. */
static int64_t xm_t_scan(char *const *s, int64_t n, const char *name) {
  for (int64_t i = 0; i < n; i++)
    if (s[i] && strcmp(s[i], name) == 0)
      return i;
  return -1;
}

/* The number of rows repeating an earlier one, and the first repeat (i, j),
 * by scanning. */
static int64_t xm_t_scan_dups(char *const *s, int64_t n, int64_t *fi, int64_t *fj) {
  int64_t count = 0;
  *fi = *fj = -1;
  for (int64_t j = 0; j < n; j++) {
    if (!s[j])
      continue;
    int64_t i = xm_t_scan(s, j, s[j]);
    if (i >= 0 && count++ == 0) {
      *fi = i;
      *fj = j;
    }
  }
  return count;
}

/* The index of s[n] against the scan: every name, and the duplicates. */
static void xm_t_check_all(char *const *s, int64_t n) {
  xm__names *ix = NULL;
  assert_int_equal(xm__names_build(&ix, s, n), XM_OK);
  assert_non_null(ix);
  for (int64_t j = 0; j < n; j++)
    if (s[j])
      assert_int_equal(xm__names_find(ix, s[j]), xm_t_scan(s, n, s[j]));
  int64_t fi, fj, i = -7, j = -7;
  int64_t want = xm_t_scan_dups(s, n, &fi, &fj);
  assert_int_equal(xm__names_duplicates(ix, &i, &j), want);
  if (want) {
    assert_int_equal(i, fi);
    assert_int_equal(j, fj);
  } else {
    assert_int_equal(i, -7); /* untouched */
    assert_int_equal(j, -7);
  }
  xm__names_free(ix);
}

/* A deterministic generator (xorshift64*). */
static uint64_t xm_t_rng = 0x9e3779b97f4a7c15ull;
static uint64_t xm_t_next(void) {
  xm_t_rng ^= xm_t_rng >> 12;
  xm_t_rng ^= xm_t_rng << 25;
  xm_t_rng ^= xm_t_rng >> 27;
  return xm_t_rng * 2685821657736338717ull;
}

/* A fresh random string of len characters from the first k of alphabet. */
static char *xm_t_random_name(size_t len, size_t k) {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
  char *s = malloc(len + 1);
  assert_non_null(s);
  for (size_t i = 0; i < len; i++)
    s[i] = alphabet[xm_t_next() % k];
  s[len] = '\0';
  return s;
}

static void xm_t_free_names(char **s, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    free(s[i]);
  free(s);
}

static void test_args(void **state) {
  (void)state;
  xm__names *ix = (xm__names *)&ix;
  char *one[] = {"a"};
  assert_int_equal(xm__names_build(NULL, one, 1), XM_EINVAL);
  assert_int_equal(xm__names_build(&ix, one, -1), XM_EINVAL);
  assert_null(ix);
  assert_int_equal(xm__names_build(&ix, NULL, 1), XM_EINVAL);
  assert_int_equal(xm__names_build(&ix, one, (int64_t)INT32_MAX + 1), XM_EINVAL);
  assert_int_equal(xm__names_find(NULL, "a"), -1);
  assert_int_equal(xm__names_duplicates(NULL, NULL, NULL), 0);
  xm__names_free(NULL);
  /* no names at all */
  assert_int_equal(xm__names_build(&ix, NULL, 0), XM_OK);
  assert_int_equal(xm__names_find(ix, ""), -1);
  assert_int_equal(xm__names_find(ix, "a"), -1);
  assert_int_equal(xm__names_duplicates(ix, NULL, NULL), 0);
  xm__names_free(ix);
}

static void test_fixed(void **state) {
  (void)state;
  char *s[] = {"SPX", "SPX.iv", "", "ES", "spx", "SPX ", NULL, "SPX.iv", "", "ES", "x", NULL};
  int64_t n = (int64_t)(sizeof s / sizeof s[0]);
  xm__names *ix;
  assert_int_equal(xm__names_build(&ix, s, n), XM_OK);
  assert_int_equal(xm__names_find(ix, "SPX"), 0);
  assert_int_equal(xm__names_find(ix, "spx"), 4); /* case matters */
  assert_int_equal(xm__names_find(ix, "SPX "), 5);
  assert_int_equal(xm__names_find(ix, "SPX.iv"), 1); /* the first of a repeated name */
  assert_int_equal(xm__names_find(ix, ""), 2);
  assert_int_equal(xm__names_find(ix, "ES"), 3);
  assert_int_equal(xm__names_find(ix, "x"), 10);
  assert_int_equal(xm__names_find(ix, "SP"), -1);
  assert_int_equal(xm__names_find(ix, "SPX.i"), -1);
  assert_int_equal(xm__names_find(ix, "SPX.ivv"), -1);
  assert_int_equal(xm__names_find(ix, NULL), -1);
  int64_t i, j;
  assert_int_equal(xm__names_duplicates(ix, &i, &j), 3); /* rows 7, 8, 9 */
  assert_int_equal(i, 1);
  assert_int_equal(j, 7);
  assert_int_equal(xm__names_duplicates(ix, NULL, NULL), 3);
  xm__names_free(ix);
  xm_t_check_all(s, n);

  char *two_empty[] = {"", ""};
  assert_int_equal(xm__names_build(&ix, two_empty, 2), XM_OK);
  assert_int_equal(xm__names_duplicates(ix, &i, &j), 1);
  assert_true(i == 0 && j == 1);
  xm__names_free(ix);
  char *nulls[] = {NULL, NULL, NULL};
  xm_t_check_all(nulls, 3);
}

/* Random short names from a small alphabet: many repeats, many lengths
 * (the hash's 8-byte blocks and every tail length). */
static void test_random_repeats(void **state) {
  (void)state;
  for (int round = 0; round < 20; round++) {
    int64_t n = 1 + (int64_t)(xm_t_next() % 3000);
    size_t k = 1 + xm_t_next() % 4, maxlen = 1 + xm_t_next() % 20;
    char **s = malloc((size_t)n * sizeof *s);
    assert_non_null(s);
    for (int64_t i = 0; i < n; i++)
      s[i] = xm_t_random_name(xm_t_next() % (maxlen + 1), k);
    xm_t_check_all(s, n);
    /* absent names: built from letters the names never use */
    xm__names *ix;
    assert_int_equal(xm__names_build(&ix, s, n), XM_OK);
    for (int q = 0; q < 200; q++) {
      char *a = xm_t_random_name(1 + xm_t_next() % 24, 26);
      assert_int_equal(xm__names_find(ix, a), xm_t_scan(s, n, a));
      free(a);
    }
    xm__names_free(ix);
    xm_t_free_names(s, n);
  }
}

/* 100k distinct names: each found at its row, absent names not found, and
 * repeats planted at known rows reported. */
static void test_100k(void **state) {
  (void)state;
  const int64_t n = 100000;
  char **s = malloc((size_t)n * sizeof *s);
  assert_non_null(s);
  for (int64_t i = 0; i < n; i++) { /* distinct: the row's number, then random text */
    char head[24];
    int h = snprintf(head, sizeof head, "%lld:", (long long)i);
    char *tail = xm_t_random_name(xm_t_next() % 40, 65);
    s[i] = malloc((size_t)h + strlen(tail) + 1);
    assert_non_null(s[i]);
    memcpy(s[i], head, (size_t)h);
    strcpy(s[i] + h, tail);
    free(tail);
  }
  xm__names *ix;
  assert_int_equal(xm__names_build(&ix, s, n), XM_OK);
  for (int64_t i = 0; i < n; i++)
    assert_int_equal(xm__names_find(ix, s[i]), i);
  assert_int_equal(xm__names_duplicates(ix, NULL, NULL), 0);
  for (int q = 0; q < 2000; q++) { /* absent: a row's name plus one byte, or random */
    char buf[128];
    int64_t r = (int64_t)(xm_t_next() % (uint64_t)n);
    snprintf(buf, sizeof buf, "%s~", s[r]);
    assert_int_equal(xm__names_find(ix, buf), -1);
    char *a = xm_t_random_name(xm_t_next() % 30, 65); /* no ':': never a name */
    assert_int_equal(xm__names_find(ix, a), -1);
    free(a);
  }
  for (int q = 0; q < 300; q++) { /* sampled lookups against the scan */
    int64_t r = (int64_t)(xm_t_next() % (uint64_t)n);
    assert_int_equal(xm__names_find(ix, s[r]), xm_t_scan(s, n, s[r]));
  }
  xm__names_free(ix);

  /* plant repeats: row 70000 repeats row 123, row 90000 repeats row 5 */
  free(s[70000]);
  s[70000] = strdup(s[123]);
  free(s[90000]);
  s[90000] = strdup(s[5]);
  assert_int_equal(xm__names_build(&ix, s, n), XM_OK);
  int64_t i, j;
  assert_int_equal(xm__names_duplicates(ix, &i, &j), 2);
  assert_int_equal(i, 123);
  assert_int_equal(j, 70000);
  assert_int_equal(xm__names_find(ix, s[90000]), 5);
  xm__names_free(ix);
  xm_t_free_names(s, n);
}

/* Names that differ only in their last byte, or only in length, and long
 * names (many hash blocks). */
static void test_near_names(void **state) {
  (void)state;
  enum { N = 2000 };
  char **s = malloc(N * sizeof *s);
  assert_non_null(s);
  char base[1100];
  memset(base, 'q', sizeof base - 1);
  base[sizeof base - 1] = '\0';
  for (int i = 0; i < N; i++) {
    size_t len = i < 1000 ? 1024 : (size_t)(i - 1000) % 1025; /* 1000 long names, then lengths */
    s[i] = malloc(len + 1);
    assert_non_null(s[i]);
    memcpy(s[i], base, len);
    s[i][len] = '\0';
    if (i < 1000 && len) { /* the last two bytes tell them apart */
      s[i][len - 2] = (char)('A' + i / 40);
      s[i][len - 1] = (char)('A' + i % 40);
    }
  }
  xm_t_check_all(s, N);
  xm_t_free_names(s, N);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_args),           cmocka_unit_test(test_fixed),
      cmocka_unit_test(test_random_repeats), cmocka_unit_test(test_100k),
      cmocka_unit_test(test_near_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
