/* Context, device enumeration and selection (--device / XM_DEVICE). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xm_internal.h"
#include "xm_io.h"

/* The registry of backends: one array, not parallel arrays; the order of
 * xm_devices_list. */
static const xm__backend *const xm__backends[] = {
#if XM_WITH_OPENCL
    &xm__backend_opencl,
#endif
    &xm__backend_cpu};
#define XM__N_BACKENDS (sizeof xm__backends / sizeof xm__backends[0])

void xm_options_default(xm_options *opt) {
  if (!opt)
    return;
  memset(opt, 0, sizeof *opt);
  opt->tuning.vec8 = -1;
}

int xm_has_opencl(void) { return XM_WITH_OPENCL ? 1 : 0; }

xm_status xm_devices_list(xm_device_info **out, size_t *n) {
  if (!out || !n)
    return XM_EINVAL;
  *out = NULL;
  *n = 0;
  size_t cap = 8, cnt = 0;
  xm_device_info *list = calloc(cap, sizeof *list);
  if (!list)
    return XM_ENOMEM;
  for (size_t b = 0; b < XM__N_BACKENDS; b++) {
    xm_status st = xm__backends[b]->list(&list, &cnt, &cap);
    if (st != XM_OK) {
      free(list);
      return st;
    }
  }
  *out = list;
  *n = cnt;
  return XM_OK;
}

static void xm__copy(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

void xm__cpu_info(xm_device_info *info) {
  memset(info, 0, sizeof *info);
  info->backend = XM_BACKEND_CPU;
  xm__copy(info->spec, sizeof info->spec, "cpu");
  info->platform_index = -1;
  info->device_index = -1;
  xm__copy(info->platform, sizeof info->platform, "xmargin");
  xm__copy(info->name, sizeof info->name, "plain-C backend (threads)");
  xm__copy(info->vendor, sizeof info->vendor, "xmargin");
  xm__copy(info->version, sizeof info->version, "C11");
  xm__copy(info->driver, sizeof info->driver, XM_VERSION_STRING);
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  info->compute_units = nproc > 0 ? (unsigned)nproc : 1u;
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  info->global_mem = (pages > 0 && psize > 0) ? (uint64_t)pages * (uint64_t)psize : 0;
  /* what this process can really have: MemAvailable, a cgroup, ulimit -v */
  uint64_t avail = xm_host_memory_limit();
  if (avail < info->global_mem)
    info->global_mem = avail;
  info->local_mem = 0;
  info->max_alloc = info->global_mem;
  info->fp64 = 1;
}

void xm_devices_free(xm_device_info *list) { free(list); }

/* Parses "opencl:P.D"; returns 1 on success. */
static int xm__parse_pd(const char *s, int *p, int *d) {
  char *end = NULL;
  if (!isdigit((unsigned char)*s))
    return 0;
  long a = strtol(s, &end, 10);
  if (*end != '.' || !isdigit((unsigned char)end[1]))
    return 0;
  long b = strtol(end + 1, &end, 10);
  if (*end != '\0' || a > 1000 || b > 1000)
    return 0;
  *p = (int)a;
  *d = (int)b;
  return 1;
}

xm_status xm__open_backend(xm_ctx *ctx, const xm_device_info *info) {
  ctx->dev = *info;
  for (size_t i = 0; i < XM__N_BACKENDS; i++)
    if (xm__backends[i]->kind == info->backend)
      ctx->be = xm__backends[i];
  if (!ctx->be)
    return xm__fail(ctx, XM_EINTERNAL, "no backend for device %s", info->spec);
  xm_status st = ctx->be->open(ctx);
  if (st != XM_OK) {
    ctx->be->close(ctx);
    ctx->be = NULL;
  }
  return st;
}

/* auto may take OpenCL devices that are not GPUs (PoCL on the CPU) before the
 * cpu backend when XM_AUTO_OPENCL_CPU is set (not 0): the tests use it to run
 * the OpenCL path, and its fallback, on machines without a GPU. */

/* Ranks a device for auto and opencl (-1: not a candidate). opencl: a GPU with
 * double precision, then other OpenCL devices with it, then those without
 * (single precision only). auto: a GPU with double precision, then the cpu
 * backend, which on the same cores is as fast as an OpenCL CPU device or
 * faster (bench/RESULTS.md: PoCL at 0.79-0.97 of its speed) and compiles no
 * kernels; with
 * XM_AUTO_OPENCL_CPU, the other OpenCL devices before it. */
static int xm__auto_rank(const xm_device_info *d, int is_auto, int opencl_cpu) {
  if (d->backend == XM_BACKEND_CPU)
    return is_auto ? 0 : -1;
  if (d->fp64 && d->is_gpu)
    return 3;
  if (is_auto && !opencl_cpu)
    return -1;
  return d->fp64 ? 2 : 1;
}

xm_status xm_ctx_create(xm_ctx **out, const xm_options *opt) {
  if (!out)
    return XM_EINVAL;
  *out = NULL;
  xm_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return XM_ENOMEM;
  *out = ctx;
  if (opt)
    ctx->opt = *opt;
  else
    xm_options_default(&ctx->opt);
  const char *want = ctx->opt.device;
  if (!want || !*want)
    want = "auto";
  ctx->is_auto = strcmp(want, "auto") == 0;
  ctx->profile = ctx->opt.profile;
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  ctx->threads = ctx->opt.threads > 0 ? ctx->opt.threads : (nproc > 0 ? (int)nproc : 1);

  xm_device_info *list = NULL;
  size_t n = 0;
  xm_status st = XM_OK;
  uint64_t room = xm_address_space_room();
  if (strcmp(want, "cpu") == 0) { /* no OpenCL runtime loaded for the cpu backend */
    list = calloc(1, sizeof *list);
    if (!list)
      return xm__fail(ctx, XM_ENOMEM, "out of memory");
    xm__cpu_info(&list[0]);
    n = 1;
  } else if ((st = xm_devices_list(&list, &n)) != XM_OK) {
    return xm__fail(ctx, st, "cannot list devices");
  }
  if (room < XM__OCL_MIN_ROOM && strncmp(want, "opencl", 6) == 0) {
    free(list);
    return xm__fail(ctx, XM_ERESOURCE,
                    "ulimit -v leaves %llu MiB of address space, less than the %llu MiB an OpenCL "
                    "runtime needs to load: raise the limit or run with --device cpu",
                    (unsigned long long)(room >> 20), (unsigned long long)(XM__OCL_MIN_ROOM >> 20));
  }

  if (strcmp(want, "cpu") == 0) {
    st = xm__open_backend(ctx, &list[n - 1]);
    snprintf(ctx->choice, sizeof ctx->choice, "device: cpu backend (%u threads), as asked",
             (unsigned)ctx->threads);
  } else if (strcmp(want, "auto") == 0 || strcmp(want, "opencl") == 0) {
    int is_auto = strcmp(want, "auto") == 0;
    /* Try candidates from best to worst; auto ends with the cpu backend. */
    char tried[1024] = "";
    st = XM_ENODEV;
    for (int rank = 3; rank >= (is_auto ? 0 : 1) && st != XM_OK; rank--) {
      for (size_t i = 0; i < n && st != XM_OK; i++) {
        if (xm__auto_rank(&list[i], is_auto, ctx->opt.auto_opencl_cpu) != rank)
          continue;
        st = xm__open_backend(ctx, &list[i]);
        if (st != XM_OK) {
          size_t len = strlen(tried);
          snprintf(tried + len, sizeof tried - len, "%s%s (%s): %s", len ? "; " : "", list[i].spec,
                   list[i].name, xm_strerror(st));
        } else {
          snprintf(ctx->choice, sizeof ctx->choice, "device: %s %s [%s]%s%s", list[i].spec,
                   list[i].name, list[i].platform,
                   list[i].backend == XM_BACKEND_CPU && !tried[0]
                       ? " -- no OpenCL GPU with double precision (XM_AUTO_OPENCL_CPU=1 "
                         "lets auto take OpenCL on the CPU)"
                       : "",
                   tried[0] ? ", after failing " : "");
          if (tried[0]) {
            size_t len = strlen(ctx->choice);
            snprintf(ctx->choice + len, sizeof ctx->choice - len, "%s", tried);
          }
        }
      }
    }
    if (st != XM_OK && !ctx->err[0])
      xm__fail(ctx, XM_ENODEV, "no OpenCL device found%s%s", tried[0] ? ": " : "", tried);
  } else if (strncmp(want, "opencl:", 7) == 0) {
    int p = 0, d = 0;
    st = XM_ENODEV;
    if (!xm__parse_pd(want + 7, &p, &d)) {
      st = xm__fail(ctx, XM_EINVAL,
                    "bad device '%s': expected auto, cpu, opencl or opencl:<platform>.<device>",
                    want);
    } else {
      for (size_t i = 0; i < n; i++)
        if (list[i].backend == XM_BACKEND_OPENCL && list[i].platform_index == p &&
            list[i].device_index == d)
          st = xm__open_backend(ctx, &list[i]);
      if (st == XM_ENODEV && !ctx->err[0])
        xm__fail(ctx, XM_ENODEV, "no OpenCL device %s (see 'xmargin devices')", want);
      if (st == XM_OK)
        snprintf(ctx->choice, sizeof ctx->choice, "device: %s %s [%s], as asked", ctx->dev.spec,
                 ctx->dev.name, ctx->dev.platform);
    }
  } else {
    st =
        xm__fail(ctx, XM_EINVAL,
                 "bad device '%s': expected auto, cpu, opencl or opencl:<platform>.<device>", want);
  }
  xm_devices_free(list);
  if (st == XM_OK)
    ctx->err[0] = '\0';
  if (st == XM_OK && ctx->opt.verbose)
    fprintf(stderr, "xmargin: %s\n", ctx->choice);
  return st;
}

void xm_ctx_destroy(xm_ctx *ctx) {
  if (!ctx)
    return;
  if (ctx->be)
    ctx->be->close(ctx);
  free(ctx);
}

const char *xm_ctx_last_error(const xm_ctx *ctx) { return ctx ? ctx->err : ""; }
const xm_device_info *xm_ctx_device(const xm_ctx *ctx) { return ctx ? &ctx->dev : NULL; }
const char *xm_ctx_choice(const xm_ctx *ctx) { return ctx ? ctx->choice : ""; }

xm_status xm_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out) {
  if (!ctx || !ctx->be || !c || (c->n && !out))
    return XM_EINVAL;
  if (prec != XM_DOUBLE && prec != XM_SINGLE)
    return xm__fail(ctx, XM_EINVAL, "precision must be XM_DOUBLE or XM_SINGLE");
  if (c->n == 0)
    return XM_OK;
  if (!c->type || !c->underlying || !c->strike || !c->expiry || !c->rate || !c->dividend ||
      !c->vol || !c->call || !c->multiplier)
    return xm__fail(ctx, XM_EINVAL, "xm_price: a contract column is NULL");
  ctx->err[0] = '\0';
  return ctx->be->price(ctx, prec, c, out);
}
