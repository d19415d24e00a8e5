/* Tuning numbers, one table per device class (ARCHITECTURE.md convention 6):
 * the work-group size of xmargin's kernels and CLBlast's GEMM parameters where
 * CLBlast's own database has none for the device. Overridable at run time:
 * XM_LWS sets the work-group size, XM_MC_BLOCK (a multiple of 16) the Monte
 * Carlo product's block width, XM_VEC8=0|1 the double8 kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_internal.h"

const char *const xm__xgemm_names[16] = {"GEMMK", "MWG",   "NWG", "KWG", "MDIMC", "NDIMC",
                                         "MDIMA", "NDIMB", "KWI", "VWM", "VWN",   "STRM",
                                         "STRN",  "SA",    "SB",  "KREG"};

/* First match wins; the last row matches everything. The PoCL Xgemm row was
 * found by hand on a 2-core AVX-512 EPYC (2026-11-26) at the shapes of
 * xm__ocl_mc (column-major, B transposed, m = 64, n = 10,240, k <= 512, no
 * local memory, 8-wide vectors, 16 x 8 results per work item): ~90 GFLOP/s,
 * as fast as OpenBLAS's DGEMM on the same cores, against 33.6 for the best of
 * clblast_tuner_xgemm's fixed set (which never tries VWM = VWN = 8 without
 * local memory) and 11 with CLBlast's defaults; see bench/RESULTS.md. */
#define XM__MIB ((uint64_t)1 << 20)
static const xm__tuning xm__tunings[] = {
    /* platform, gpu, lws, mc_block, min_indirect, vec8, xgemm, tile_bytes, mc_temp */
    /* The cpu backend: about 1 MiB of contract losses a thread (its share of
     * L2 and L3), still in cache when aggregation reads them. */
    {"xmargin", 0, 0, 0, 0, 0, {0}, 1 * XM__MIB, 0},
    {"Portable Computing Language",
     0,
     16,
     64,
     64,
     1,
     {0, 64, 32, 16, 4, 4, 4, 4, 2, 8, 8, 0, 0, 0, 0, 1},
     0,
     512 * XM__MIB},
    /* mc_temp: the Monte Carlo draws and their product, 256 MiB each */
    {NULL, 1, 128, 128, 0, 0, {0}, 0, 512 * XM__MIB},
    {NULL, -1, 16, 128, 0, 1, {0}, 0, 512 * XM__MIB},
};

const xm__tuning *xm__tuning_for(const xm_device_info *d) {
  for (size_t i = 0; i < sizeof xm__tunings / sizeof xm__tunings[0]; i++) {
    const xm__tuning *t = &xm__tunings[i];
    if (t->platform && !strstr(d->platform, t->platform))
      continue;
    if (t->gpu >= 0 && t->gpu != d->is_gpu)
      continue;
    return t;
  }
  return &xm__tunings[sizeof xm__tunings / sizeof xm__tunings[0] - 1];
}

long xm__env_long(const char *name, long lo, long hi, long multiple, long dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end = NULL;
  long x = strtol(v, &end, 10);
  return *end == '\0' && x >= lo && x <= hi && x % multiple == 0 ? x : dflt;
}

size_t xm__tuned_lws(const xm_ctx *ctx) {
  return ctx->opt.tuning.lws > 0 ? (size_t)ctx->opt.tuning.lws : xm__tuning_for(&ctx->dev)->lws;
}

int xm__env_flag(const char *name, int dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  static const char *const off[] = {"0",   "false", "off",   "no",  "FALSE",
                                    "OFF", "NO",    "False", "Off", "No"};
  for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
    if (strcmp(v, off[i]) == 0)
      return 0;
  return 1;
}

int xm__tuned_vec8(const xm_ctx *ctx) {
  return ctx->opt.tuning.vec8 >= 0 ? ctx->opt.tuning.vec8 != 0 : xm__tuning_for(&ctx->dev)->vec8;
}

uint64_t xm__tuned_mc_temp(const xm_ctx *ctx) {
  uint64_t t = xm__tuning_for(&ctx->dev)->mc_temp;
  return t ? t : 512 * XM__MIB;
}

size_t xm__tuned_mc_block(const xm_ctx *ctx) {
  return ctx->opt.tuning.mc_block > 0 ? (size_t)ctx->opt.tuning.mc_block
                                      : xm__tuning_for(&ctx->dev)->mc_block;
}

int64_t xm__tuned_cpu_tile(const xm_ctx *ctx, int64_t n_inst) {
  uint64_t bytes = xm__tuning_for(&ctx->dev)->tile_bytes;
  if (bytes == 0)
    return 0;
  int64_t per = (int64_t)(bytes / (8u * (uint64_t)(n_inst > 0 ? n_inst : 1)));
  per = (per + XM__CPU_TW - 1) / XM__CPU_TW * XM__CPU_TW; /* a thread's whole blocks */
  if (per < XM__CPU_TW)
    per = XM__CPU_TW;
  return per * (ctx->threads > 0 ? ctx->threads : 1);
}

void xm_options_from_env(xm_options *opt) {
  if (!opt)
    return;
  const char *dev = getenv("XM_DEVICE");
  if (!opt->device && dev && *dev)
    opt->device = dev;
  opt->profile = xm__env_flag("XM_PROFILE", opt->profile);
  opt->auto_opencl_cpu = xm__env_flag("XM_AUTO_OPENCL_CPU", opt->auto_opencl_cpu);
  opt->tuning.lws = (int)xm__env_long("XM_LWS", 1, 1024, 1, opt->tuning.lws);
  opt->tuning.mc_block = (int)xm__env_long("XM_MC_BLOCK", 16, 4096, 16, opt->tuning.mc_block);
  opt->tuning.vec8 =
      getenv("XM_VEC8") && *getenv("XM_VEC8") ? xm__env_flag("XM_VEC8", 1) : opt->tuning.vec8;
  opt->tuning.mc_chunk = xm__env_long("XM_MC_CHUNK", 1, 1L << 40, 1, opt->tuning.mc_chunk);
  opt->tuning.bt_days = xm__env_long("XM_BT_DAYS", 1, 1L << 20, 1, opt->tuning.bt_days);
  opt->tuning.chunk = xm__env_long("XM_CHUNK", -1, 1L << 40, 1, opt->tuning.chunk);
  const char *fault = getenv("XM_TEST_FAIL_OPENCL");
  if (fault && *fault)
    opt->fault = fault;
}
