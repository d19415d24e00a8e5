/* Test groups that ctest runs as entries of their own, and skips that ctest
 * sees. A test executable with an OpenCL group (test_device, test_pricing)
 * takes the group to run as its argument:
 *   test_x base     the tests that run everywhere (the cpu backend, the API)
 *   test_x opencl   the tests that need an OpenCL device
 *   test_x          both, one after the other
 * tests/CMakeLists.txt registers `test_x base` as test_x and `test_x opencl`
 * as test_x_opencl, both with SKIP_RETURN_CODE 77.
 *
 * cmocka 1.1 returns the number of failed tests only, and skip() counts as a
 * pass, so skips go through XM_T_SKIP (a plain skip() too, redefined below),
 * which counts them. A group exits with
 *   1   when a test failed (whatever else was skipped),
 *   77  when no test failed and every test skipped: ctest shows "Skipped",
 *   0   otherwise; the skipped tests are listed at the end of the output
 *       (cmocka's "[  SKIPPED ]" lines and a line of ours).
 * Include after <cmocka.h>. */
#ifndef XM_TEST_GROUPS_H
#define XM_TEST_GROUPS_H

#include <stdio.h>
#include <string.h>

#define XM_T_SKIP_RC 77 /* tests/CMakeLists.txt: SKIP_RETURN_CODE */

static int xm_t_skips;                    /* XM_T_SKIPs in the group running */
static const char *xm_t_group = "";       /* the group running: "base" or "opencl" */
static const char *xm_t_last_skip = NULL; /* the reason of the last skip */

/* skip(), counted, with its reason in the test's output. */
#define XM_T_SKIP(why)                                                                             \
  do {                                                                                             \
    xm_t_skips++;                                                                                  \
    xm_t_last_skip = (why);                                                                        \
    print_message("  [skip] %s\n", xm_t_last_skip);                                                \
    _skip(__FILE__, __LINE__);                                                                     \
  } while (0)
/* A plain skip() is counted too. */
#undef skip
#define skip() XM_T_SKIP("no reason given")

static inline int xm_t_group_result(const char *group, int failed, size_t n) {
  if (failed)
    return 1; /* never 77, whatever the count: a failure is never a skip */
  if (n > 0 && xm_t_skips == (int)n) {
    print_message("[  SKIPPED ] group %s: all %zu test(s) skipped (the last: %s): exit %d\n", group,
                  n, xm_t_last_skip ? xm_t_last_skip : "no reason given", XM_T_SKIP_RC);
    return XM_T_SKIP_RC;
  }
  if (xm_t_skips > 0)
    print_message("[  SKIPPED ] group %s: %d of %zu test(s) skipped (listed above), the rest "
                  "passed\n",
                  group, xm_t_skips, n);
  return 0;
}

/* Runs the cmocka array `tests` as the group `name` and returns 0, 1 or 77. */
#define XM_T_RUN_GROUP(name, tests, setup, teardown)                                               \
  (xm_t_group = (name), xm_t_skips = 0, xm_t_last_skip = NULL,                                     \
   xm_t_group_result((name), cmocka_run_group_tests_name((name), (tests), (setup), (teardown)),    \
                     sizeof(tests) / sizeof((tests)[0])))

/* The group the command line asks for: "base", "opencl", or NULL for both;
 * anything else prints the usage and returns "" (the caller exits 2). */
static inline const char *xm_t_group_arg(int argc, char **argv) {
  if (argc < 2)
    return NULL;
  if (argc == 2 && (strcmp(argv[1], "base") == 0 || strcmp(argv[1], "opencl") == 0))
    return argv[1];
  fprintf(stderr, "usage: %s [base|opencl]   (no argument: both groups)\n", argv[0]);
  return "";
}

/* The exit status of both groups run one after the other. */
static inline int xm_t_both(int base, int opencl) {
  if (base == 1 || opencl == 1)
    return 1;
  return base == XM_T_SKIP_RC && opencl == XM_T_SKIP_RC ? XM_T_SKIP_RC : 0;
}

/* main() of a test with a "base" and an "opencl" group: the one the command
 * line names, or both. */
#define XM_T_MAIN_GROUPS(argc, argv, base, opencl, setup, teardown)                                \
  do {                                                                                             \
    const char *g_ = xm_t_group_arg((argc), (argv));                                               \
    if (g_ && !*g_)                                                                                \
      return 2;                                                                                    \
    if (g_ && strcmp(g_, "base") == 0)                                                             \
      return XM_T_RUN_GROUP("base", base, setup, teardown);                                        \
    if (g_)                                                                                        \
      return XM_T_RUN_GROUP("opencl", opencl, setup, teardown);                                    \
    int rb_ = XM_T_RUN_GROUP("base", base, setup, teardown);                                       \
    return xm_t_both(rb_, XM_T_RUN_GROUP("opencl", opencl, setup, teardown));                      \
  } while (0)

#endif
