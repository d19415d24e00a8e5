/* Device enumeration and selection: xm_devices_list, xm_ctx_create with
 * xm_options.device ("auto" | "cpu" | "opencl" | "opencl:P.D") or XM_DEVICE.
 * The tests that need an OpenCL device are a group of their own
 * (`test_device opencl`, ctest's test_device_opencl: tests/xm_test_groups.h),
 * skipped where there is none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "xm_test_groups.h"
#include "xmargin.h"

typedef struct fixture {
  xm_device_info *list;
  size_t n;
  size_t n_opencl;      /* OpenCL devices in the list */
  size_t n_opencl_fp64; /* ... of which with double precision */
  int has_gpu_fp64;     /* a GPU with fp64: what auto must take */
  char *saved_env;      /* XM_DEVICE as the test run found it */
  xm_ctx *cpu;          /* a cpu context shared by the tests that need one */
} fixture;

static int group_setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  const char *env = getenv("XM_DEVICE");
  if (env) {
    f->saved_env = strdup(env);
    if (!f->saved_env) {
      free(f);
      return -1;
    }
  }
  unsetenv("XM_DEVICE"); /* the tests set it themselves */
  unsetenv("XM_AUTO_OPENCL_CPU");
  if (xm_devices_list(&f->list, &f->n) != XM_OK) {
    free(f->saved_env);
    free(f);
    return -1;
  }
  for (size_t i = 0; i < f->n; i++) {
    if (f->list[i].backend != XM_BACKEND_OPENCL)
      continue;
    f->n_opencl++;
    if (f->list[i].fp64) {
      f->n_opencl_fp64++;
      if (f->list[i].is_gpu)
        f->has_gpu_fp64 = 1;
    }
    print_message("  [device] %s: %s [%s] %s fp64=%d gpu=%d\n", f->list[i].spec, f->list[i].name,
                  f->list[i].platform, f->list[i].version, f->list[i].fp64, f->list[i].is_gpu);
  }
  xm_options o;
  xm_options_default(&o);
  o.device = "cpu";
  if (xm_ctx_create(&f->cpu, &o) != XM_OK) {
    xm_ctx_destroy(f->cpu);
    xm_devices_free(f->list);
    free(f->saved_env);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int group_teardown(void **state) {
  fixture *f = *state;
  if (!f)
    return 0;
  xm_ctx_destroy(f->cpu);
  xm_devices_free(f->list);
  if (f->saved_env)
    setenv("XM_DEVICE", f->saved_env, 1);
  else
    unsetenv("XM_DEVICE");
  free(f->saved_env);
  free(f);
  return 0;
}

/* Leaves XM_DEVICE unset after every test, whatever it did. */
static int clear_env(void **state) {
  (void)state;
  unsetenv("XM_DEVICE");
  unsetenv("XM_AUTO_OPENCL_CPU");
  return 0;
}

static int is_pocl(const xm_device_info *d) {
  return strstr(d->platform, "Portable Computing Language") != NULL ||
         strstr(d->platform, "PoCL") != NULL || strstr(d->platform, "pocl") != NULL;
}

/* Creates a context for spec, checks the status, and returns it (the caller
 * destroys it). On failure the context must still say why. */
static xm_ctx *create_expect(const char *spec, xm_status want) {
  xm_options o;
  xm_options_default(&o);
  o.device = spec;
  xm_options_from_env(&o); /* as the CLI does: XM_AUTO_OPENCL_CPU */
  xm_ctx *ctx = NULL;
  xm_status st = xm_ctx_create(&ctx, &o);
  if (st != want)
    fail_msg("xm_ctx_create(device=\"%s\") = %s (%s), expected %s; detail: %s",
             spec ? spec : "(null)", xm_status_name(st), xm_strerror(st), xm_status_name(want),
             ctx ? xm_ctx_last_error(ctx) : "(no context)");
  assert_non_null(ctx); /* set on failure too, so that last_error can say why */
  if (want != XM_OK) {
    const char *why = xm_ctx_last_error(ctx);
    assert_non_null(why);
    if (!why[0])
      fail_msg("device \"%s\": %s without detail in xm_ctx_last_error", spec, xm_status_name(st));
  }
  return ctx;
}

/* ---- xm_devices_list ------------------------------------------------------ */

static void list_cpu_last(void **state) {
  fixture *f = *state;
  assert_true(f->n >= 1);
  const xm_device_info *cpu = &f->list[f->n - 1];
  assert_int_equal(cpu->backend, XM_BACKEND_CPU);
  assert_string_equal(cpu->spec, "cpu");
  assert_int_equal(cpu->platform_index, -1);
  assert_int_equal(cpu->device_index, -1);
  assert_int_equal(cpu->fp64, 1);
  assert_true(cpu->compute_units >= 1);
  assert_true(cpu->name[0] != '\0');
  /* Exactly one cpu backend entry, and it is the last. */
  for (size_t i = 0; i + 1 < f->n; i++)
    assert_int_equal(f->list[i].backend, XM_BACKEND_OPENCL);
}

static void list_opencl_entries(void **state) {
  fixture *f = *state;
  if (f->n_opencl == 0)
    XM_T_SKIP("no OpenCL device");
  for (size_t i = 0; i + 1 < f->n; i++) {
    const xm_device_info *d = &f->list[i];
    char spec[32];
    snprintf(spec, sizeof spec, "opencl:%d.%d", d->platform_index, d->device_index);
    assert_string_equal(d->spec, spec);
    assert_true(d->platform_index >= 0);
    assert_true(d->device_index >= 0);
    assert_true(d->name[0] != '\0');
    assert_true(d->platform[0] != '\0');
    assert_int_equal(strncmp(d->version, "OpenCL C ", 9), 0);
    assert_true(d->compute_units >= 1);
    assert_true(d->global_mem > 0);
    assert_true(d->max_alloc > 0);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(d->spec, f->list[j].spec);
  }
  /* Platform by platform, devices counted from 0 without gaps. */
  assert_int_equal(f->list[0].platform_index, 0);
  assert_int_equal(f->list[0].device_index, 0);
}

/* PoCL is installed here (/etc/OpenCL/vendors/pocl.icd): its CPU device must be
 * listed. Skipped where PoCL's ICD is not registered. */
static void list_has_pocl(void **state) {
  fixture *f = *state;
  /* PoCL must show when it is registered and the registry is not overridden
   * (OCL_ICD_VENDORS, as on the GPU machine, names other drivers). */
  if (!xm_has_opencl())
    XM_T_SKIP("libxmargin was built without OpenCL (XM_WITH_OPENCL=OFF)");
  if (access("/etc/OpenCL/vendors/pocl.icd", F_OK) != 0)
    XM_T_SKIP("PoCL is not registered (/etc/OpenCL/vendors/pocl.icd)");
  if (getenv("OCL_ICD_VENDORS"))
    XM_T_SKIP("OCL_ICD_VENDORS overrides the registry");
  size_t n_pocl = 0;
  for (size_t i = 0; i < f->n; i++)
    if (f->list[i].backend == XM_BACKEND_OPENCL && is_pocl(&f->list[i]))
      n_pocl++;
  if (n_pocl == 0)
    fail_msg("PoCL is registered (/etc/OpenCL/vendors/pocl.icd) but xm_devices_list has no "
             "PoCL device (%zu OpenCL devices)",
             f->n_opencl);
}

static void list_bad_args(void **state) {
  (void)state;
  size_t n = 0;
  xm_device_info *list = NULL;
  assert_int_equal(xm_devices_list(NULL, &n), XM_EINVAL);
  assert_int_equal(xm_devices_list(&list, NULL), XM_EINVAL);
  xm_devices_free(NULL); /* no-op */
}

/* ---- xm_ctx_create ------------------------------------------------------- */

static void ctx_cpu(void **state) {
  fixture *f = *state;
  xm_ctx *ctx = create_expect("cpu", XM_OK);
  const xm_device_info *d = xm_ctx_device(ctx);
  assert_non_null(d);
  assert_int_equal(d->backend, XM_BACKEND_CPU);
  assert_string_equal(d->spec, "cpu");
  assert_true(xm_ctx_choice(ctx)[0] != '\0');
  assert_string_equal(xm_ctx_last_error(ctx), "");
  xm_ctx_destroy(ctx);
  /* The shared context from the group setup is a cpu one too. */
  assert_int_equal(xm_ctx_device(f->cpu)->backend, XM_BACKEND_CPU);
}

static void ctx_auto(void **state) {
  fixture *f = *state;
  xm_ctx *ctx = create_expect("auto", XM_OK);
  const xm_device_info *d = xm_ctx_device(ctx);
  const char *choice = xm_ctx_choice(ctx);
  print_message("  [auto] %s\n", choice);
  assert_true(choice[0] != '\0');
  assert_non_null(strstr(choice, d->spec));
  if (f->has_gpu_fp64) { /* a GPU with double precision when there is one */
    assert_int_equal(d->backend, XM_BACKEND_OPENCL);
    assert_int_equal(d->fp64, 1);
    assert_int_equal(d->is_gpu, 1);
  } else { /* else the cpu backend, not PoCL */
    assert_int_equal(d->backend, XM_BACKEND_CPU);
  }
  xm_ctx_destroy(ctx);
}

/* XM_AUTO_OPENCL_CPU=1: auto takes an OpenCL device with fp64 (PoCL here)
 * before the cpu backend; =0 is the default. */
static void ctx_auto_opencl_cpu(void **state) {
  fixture *f = *state;
  setenv("XM_AUTO_OPENCL_CPU", "1", 1);
  xm_ctx *ctx = create_expect("auto", XM_OK);
  const xm_device_info *d = xm_ctx_device(ctx);
  print_message("  [auto, XM_AUTO_OPENCL_CPU=1] %s\n", xm_ctx_choice(ctx));
  if (f->n_opencl_fp64 > 0) {
    assert_int_equal(d->backend, XM_BACKEND_OPENCL);
    assert_int_equal(d->fp64, 1);
    if (f->has_gpu_fp64)
      assert_int_equal(d->is_gpu, 1);
  } else {
    assert_int_equal(d->backend, XM_BACKEND_CPU);
  }
  xm_ctx_destroy(ctx);
  setenv("XM_AUTO_OPENCL_CPU", "0", 1);
  ctx = create_expect("auto", XM_OK);
  assert_int_equal(xm_ctx_device(ctx)->backend,
                   f->has_gpu_fp64 ? XM_BACKEND_OPENCL : XM_BACKEND_CPU);
  xm_ctx_destroy(ctx);
  unsetenv("XM_AUTO_OPENCL_CPU");
}

static void ctx_opencl(void **state) {
  fixture *f = *state;
  if (f->n_opencl_fp64 == 0)
    XM_T_SKIP("no OpenCL device with fp64");
  xm_ctx *ctx = create_expect("opencl", XM_OK);
  const xm_device_info *d = xm_ctx_device(ctx);
  assert_int_equal(d->backend, XM_BACKEND_OPENCL);
  assert_int_equal(strncmp(d->spec, "opencl:", 7), 0);
  assert_true(xm_ctx_choice(ctx)[0] != '\0');
  assert_string_equal(xm_ctx_last_error(ctx), "");
  xm_ctx_destroy(ctx);
}

static void ctx_opencl_0_0(void **state) {
  fixture *f = *state;
  if (f->n_opencl == 0)
    XM_T_SKIP("no OpenCL device");
  if (!f->list[0].fp64) /* it cannot run the double-precision reduction */
    XM_T_SKIP("opencl:0.0 has no fp64");
  xm_ctx *ctx = create_expect("opencl:0.0", XM_OK);
  const xm_device_info *d = xm_ctx_device(ctx);
  assert_int_equal(d->backend, XM_BACKEND_OPENCL);
  assert_string_equal(d->spec, "opencl:0.0");
  assert_int_equal(d->platform_index, 0);
  assert_int_equal(d->device_index, 0);
  assert_string_equal(d->name, f->list[0].name);
  assert_non_null(strstr(xm_ctx_choice(ctx), "opencl:0.0"));
  xm_ctx_destroy(ctx);
}

/* Every OpenCL device with fp64 opens by its own spec. */
static void ctx_every_listed_device(void **state) {
  fixture *f = *state;
  if (f->n_opencl_fp64 == 0)
    XM_T_SKIP("no OpenCL device with fp64");
  for (size_t i = 0; i < f->n; i++) {
    if (f->list[i].backend == XM_BACKEND_OPENCL && !f->list[i].fp64)
      continue;
    xm_ctx *ctx = create_expect(f->list[i].spec, XM_OK);
    assert_string_equal(xm_ctx_device(ctx)->spec, f->list[i].spec);
    xm_ctx_destroy(ctx);
  }
}

/* The library reads no environment variable; xm_options_from_env() takes
 * XM_DEVICE into options whose device is NULL, and an explicit device wins. */
static void ctx_env_device(void **state) {
  fixture *f = *state;
  xm_options o;
  xm_ctx *ctx = NULL;

  /* xm_ctx_create ignores XM_DEVICE: NULL options mean auto. */
  assert_int_equal(setenv("XM_DEVICE", "gpu", 1), 0); /* not even a valid device */
  assert_int_equal(xm_ctx_create(&ctx, NULL), XM_OK);
  assert_int_equal(xm_ctx_device(ctx)->backend,
                   f->has_gpu_fp64 ? XM_BACKEND_OPENCL : XM_BACKEND_CPU);
  xm_ctx_destroy(ctx);
  ctx = NULL;

  /* options.device NULL: xm_options_from_env takes XM_DEVICE. */
  xm_options_default(&o);
  assert_int_equal(setenv("XM_DEVICE", "cpu", 1), 0);
  xm_options_from_env(&o);
  assert_non_null(o.device);
  assert_string_equal(o.device, "cpu");
  assert_int_equal(xm_ctx_create(&ctx, &o), XM_OK);
  assert_int_equal(xm_ctx_device(ctx)->backend, XM_BACKEND_CPU);
  xm_ctx_destroy(ctx);
  ctx = NULL;

  /* A bad XM_DEVICE is reported like a bad option. */
  xm_options_default(&o);
  assert_int_equal(setenv("XM_DEVICE", "gpu", 1), 0);
  xm_options_from_env(&o);
  assert_int_equal(xm_ctx_create(&ctx, &o), XM_EINVAL);
  assert_non_null(ctx);
  assert_non_null(strstr(xm_ctx_last_error(ctx), "gpu"));
  xm_ctx_destroy(ctx);
  ctx = NULL;

  /* An explicit options.device wins over XM_DEVICE. */
  xm_options_default(&o);
  o.device = "cpu";
  xm_options_from_env(&o);
  assert_string_equal(o.device, "cpu");

  /* Unset (or empty) XM_DEVICE leaves the device NULL: auto. */
  xm_options_default(&o);
  assert_int_equal(setenv("XM_DEVICE", "", 1), 0);
  xm_options_from_env(&o);
  assert_null(o.device);
  unsetenv("XM_DEVICE");
  xm_options_default(&o);
  xm_options_from_env(&o);
  assert_null(o.device);
}

static void ctx_bad_specs(void **state) {
  (void)state;
  static const struct {
    const char *spec;
    xm_status want;
  } cases[] = {
      {"gpu", XM_EINVAL},          {"opencl:x", XM_EINVAL},     {"opencl:9.9", XM_ENODEV},
      {"opencl:999.0", XM_ENODEV}, {"opencl:0.999", XM_ENODEV}, {"opencl:", XM_EINVAL},
      {"opencl:0", XM_EINVAL},     {"opencl:0.", XM_EINVAL},    {"opencl:.0", XM_EINVAL},
      {"opencl:-1.0", XM_EINVAL},  {"opencl:0.-1", XM_EINVAL},  {"opencl:0.0x", XM_EINVAL},
      {"opencl:0.0.0", XM_EINVAL}, {"opencl0.0", XM_EINVAL},    {"CPU", XM_EINVAL},
      {"cpu ", XM_EINVAL},         {" auto", XM_EINVAL},        {"cuda", XM_EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    xm_ctx *ctx = create_expect(cases[i].spec, cases[i].want);
    const char *why = xm_ctx_last_error(ctx);
    /* The detail names what was asked for. */
    if (!strstr(why, cases[i].spec))
      fail_msg("device \"%s\": detail '%s' does not name it", cases[i].spec, why);
    /* A failed context cannot price. */
    double out = 0;
    const int32_t type = XM_SPOT, call = 1;
    const double one = 1;
    xm_contracts c = {1, &type, &one, &one, &one, &one, &one, &one, &call, &one};
    assert_int_not_equal(xm_price(ctx, XM_DOUBLE, &c, &out), XM_OK);
    xm_ctx_destroy(ctx);
  }
}

static void ctx_null_handling(void **state) {
  (void)state;
  xm_ctx_destroy(NULL); /* no-op */
  assert_int_equal(xm_ctx_create(NULL, NULL), XM_EINVAL);
  xm_options_default(NULL); /* no-op */
  assert_string_equal(xm_ctx_last_error(NULL), "");
  assert_string_equal(xm_ctx_choice(NULL), "");
  assert_null(xm_ctx_device(NULL));
}

static void ctx_null_options_are_defaults(void **state) {
  (void)state;
  xm_options o;
  memset(&o, 0xAB, sizeof o);
  xm_options_default(&o);
  assert_null(o.device);
  assert_int_equal(o.mem_limit, 0);
  assert_int_equal(o.threads, 0);
  assert_int_equal(o.verbose, 0);

  xm_ctx *a = NULL, *b = NULL;
  assert_int_equal(xm_ctx_create(&a, NULL), XM_OK);
  assert_int_equal(xm_ctx_create(&b, &o), XM_OK);
  assert_string_equal(xm_ctx_device(a)->spec, xm_ctx_device(b)->spec);
  assert_string_equal(xm_ctx_choice(a), xm_ctx_choice(b));
  assert_string_equal(xm_ctx_last_error(a), "");
  xm_ctx_destroy(b);
  xm_ctx_destroy(a);
}

/* Several contexts at once are independent. */
static void ctx_several(void **state) {
  fixture *f = *state;
  xm_ctx *c[3] = {NULL, NULL, NULL};
  const char *specs[3] = {"cpu", f->n_opencl_fp64 ? "opencl" : "cpu", "auto"};
  for (int i = 0; i < 3; i++) {
    xm_ctx *x = create_expect(specs[i], XM_OK);
    c[i] = x;
  }
  for (int i = 2; i >= 0; i--)
    xm_ctx_destroy(c[i]);
}

int main(int argc, char **argv) {
  /* Everywhere: with or without OpenCL devices (auto and the lists adapt). */
  const struct CMUnitTest base[] = {
      cmocka_unit_test(list_cpu_last),
      cmocka_unit_test(list_bad_args),
      cmocka_unit_test_teardown(ctx_cpu, clear_env),
      cmocka_unit_test_teardown(ctx_auto, clear_env),
      cmocka_unit_test_teardown(ctx_auto_opencl_cpu, clear_env),
      cmocka_unit_test_teardown(ctx_env_device, clear_env),
      cmocka_unit_test_teardown(ctx_bad_specs, clear_env),
      cmocka_unit_test_teardown(ctx_null_handling, clear_env),
      cmocka_unit_test_teardown(ctx_null_options_are_defaults, clear_env),
      cmocka_unit_test_teardown(ctx_several, clear_env),
  };
  /* Only with an OpenCL device: skipped without one. */
  const struct CMUnitTest opencl[] = {
      cmocka_unit_test(list_opencl_entries),
      cmocka_unit_test(list_has_pocl),
      cmocka_unit_test_teardown(ctx_opencl, clear_env),
      cmocka_unit_test_teardown(ctx_opencl_0_0, clear_env),
      cmocka_unit_test_teardown(ctx_every_listed_device, clear_env),
  };
  XM_T_MAIN_GROUPS(argc, argv, base, opencl, group_setup, group_teardown);
}
