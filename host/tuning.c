/* Tuning numbers, one table per device class (ARCHITECTURE.md convention 6):
 * the work-group size of xmargin's kernels and CLBlast's GEMM parameters where
 * CLBlast's own database has none for the device. Overridable at run time:
 * XM_LWS sets the work-group size, XM_MC_BLOCK (a multiple of 16) the Monte
 * Carlo product's block width, XM_VEC8=0|1 the double8 kernels. */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_internal.h"

typedef struct xm__tuning {
  const char *platform; /* substring of the platform name; NULL matches any */
  int gpu;              /* -1 any, 0 not a GPU, 1 a GPU */
  size_t lws;           /* xmargin kernels' work-group size */
  size_t mc_block;      /* factors per GEMM block of the Monte Carlo product (xm__ocl_mc) */
  size_t min_indirect;  /* CLBlast's XGEMM_MIN_INDIRECT_SIZE (0: CLBlast's own) */
  int vec8; /* kernels on double8, 8 scenarios per work item (xm_k_revalue8, xm_k_aggregate8) */
  /* CLBlast Xgemm (double), in XM__XGEMM_NAMES order; all zero: CLBlast's own. */
  size_t xgemm[16];
} xm__tuning;

static const char *const xm__xgemm_names[16] = {"GEMMK", "MWG",   "NWG", "KWG", "MDIMC", "NDIMC",
                                                "MDIMA", "NDIMB", "KWI", "VWM", "VWN",   "STRM",
                                                "STRN",  "SA",    "SB",  "KREG"};

/* First match wins; the last row matches everything. The PoCL Xgemm row was
 * found by hand on a 2-core AVX-512 EPYC (2026-11-26) at the shapes of
 * xm__ocl_mc (column-major, B transposed, m = 64, n = 10,240, k <= 512, no
 * local memory, 8-wide vectors, 16 x 8 results per work item): ~90 GFLOP/s,
 * as fast as OpenBLAS's DGEMM on the same cores, against 33.6 for the best of
 * clblast_tuner_xgemm's fixed set (which never tries VWM = VWN = 8 without
 * local memory) and 11 with CLBlast's defaults; see bench/RESULTS.md. */
static const xm__tuning xm__tunings[] = {
    /* platform, gpu, lws, mc_block, min_indirect, vec8, xgemm */
    {"Portable Computing Language",
     0,
     16,
     64,
     64,
     1,
     {0, 64, 32, 16, 4, 4, 4, 4, 2, 8, 8, 0, 0, 0, 0, 1}},
    {NULL, 1, 128, 128, 0, 0, {0}},
    {NULL, -1, 16, 128, 0, 1, {0}},
};

static const xm__tuning *xm__find_tuning(const xm_device_info *d) {
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
  return (size_t)xm__env_long("XM_LWS", 1, 1024, 1, (long)xm__find_tuning(&ctx->dev)->lws);
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
  return xm__env_flag("XM_VEC8", xm__find_tuning(&ctx->dev)->vec8);
}

size_t xm__tuned_mc_block(const xm_ctx *ctx) {
  return (size_t)xm__env_long("XM_MC_BLOCK", 16, 4096, 16,
                              (long)xm__find_tuning(&ctx->dev)->mc_block);
}

xm_status xm__apply_blas_tuning(xm_ctx *ctx) {
  const xm__tuning *t = xm__find_tuning(&ctx->dev);
  if (t->xgemm[1] == 0) /* MWG = 0: keep CLBlast's database */
    return XM_OK;
  CLBlastStatusCode c = CLBlastOverrideParameters(ctx->ocl.device, "Xgemm", CLBlastPrecisionDouble,
                                                  16, (const char **)xm__xgemm_names, t->xgemm);
  if (c != CLBlastSuccess)
    return xm__fail(ctx, XM_EOPENCL, "CLBlast refused the Xgemm tuning for %s (status %d)",
                    ctx->dev.name, (int)c);
  if (t->min_indirect) { /* below m n k = this^3 CLBlast runs its (here untuned) direct kernel */
    const char *name = "XGEMM_MIN_INDIRECT_SIZE";
    size_t v = t->min_indirect;
    c = CLBlastOverrideParameters(ctx->ocl.device, "GemmRoutine", CLBlastPrecisionDouble, 1, &name,
                                  &v);
    if (c != CLBlastSuccess)
      return xm__fail(ctx, XM_EOPENCL, "CLBlast refused the GemmRoutine tuning for %s (status %d)",
                      ctx->dev.name, (int)c);
  }
  return XM_OK;
}
