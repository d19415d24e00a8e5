/* Internal declarations of libxmargin (not installed): the context, the
 * error detail, the tuning table. No OpenCL here: host/xm_opencl.h is the
 * OpenCL backend's own header. */
#ifndef XM_INTERNAL_H
#define XM_INTERNAL_H

#include <stdarg.h>

#include "xm_backend.h"
#include "xmargin.h"

#define XM__ERR_CAP 16384
/* Address space (ulimit -v) an OpenCL runtime needs to load and build: below
 * it, OpenCL is not touched (PoCL 3.1 aborts in LLVM at 512 MiB). */
#define XM__OCL_MIN_ROOM ((uint64_t)1 << 30)
/* OpenBLAS maps a buffer of this size for each thread that runs a BLAS call. */
#define XM__BLAS_BUFFER ((uint64_t)128 << 20)

struct xm_ctx {
  xm_options opt;
  xm_device_info dev;
  const xm__backend *be;
  void *state; /* the backend's own (owned by it: open allocates, close frees) */
  int threads;
  int is_auto; /* chosen by --device auto: a failing OpenCL run falls back to cpu */
  int profile; /* XM_PROFILE: kernel times after each run */
  char choice[512];
  char err[XM__ERR_CAP];
};

/* Records detail for xm_ctx_last_error and returns st (printf-style). */
xm_status xm__fail(xm_ctx *ctx, xm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opens the backend of device info on ctx (ctx->dev, ctx->be); on failure
 * ctx->be is NULL again. */
xm_status xm__open_backend(xm_ctx *ctx, const xm_device_info *info);
void xm__cpu_info(xm_device_info *info);

/* Tuning table (host/tuning.c): one row per device class, first match wins;
 * the environment overrides (read once, into xm_options, by the caller that
 * wants it: XM_LWS, XM_MC_BLOCK, XM_VEC8, XM_MC_CHUNK, XM_BT_DAYS). */
typedef struct xm__tuning {
  const char *platform; /* substring of the platform name; NULL matches any */
  int gpu;              /* -1 any, 0 not a GPU, 1 a GPU */
  size_t lws;           /* xmargin kernels' work-group size */
  size_t mc_block;      /* factors per GEMM block of the Monte Carlo product */
  size_t min_indirect;  /* CLBlast's XGEMM_MIN_INDIRECT_SIZE (0: CLBlast's own) */
  int vec8;             /* kernels on double8, 8 scenarios per work item */
  size_t xgemm[16];     /* CLBlast Xgemm (double), xm__xgemm_names order; 0: CLBlast's */
  uint64_t tile_bytes;  /* contract losses a thread keeps in cache (cpu backend's tile); 0: none */
  uint64_t mc_temp;     /* most bytes of Monte Carlo temporaries at once */
} xm__tuning;
extern const char *const xm__xgemm_names[16];
const xm__tuning *xm__tuning_for(const xm_device_info *d);
size_t xm__tuned_lws(const xm_ctx *ctx);
size_t xm__tuned_mc_block(const xm_ctx *ctx);
int xm__tuned_vec8(const xm_ctx *ctx);
/* Most bytes of Monte Carlo temporaries a backend may use at once. */
uint64_t xm__tuned_mc_temp(const xm_ctx *ctx);
/* The cpu backend's revaluation tile: scenarios whose contract losses stay
 * in cache between revaluation and aggregation, whole blocks of 8 a thread. */
int64_t xm__tuned_cpu_tile(const xm_ctx *ctx, int64_t n_inst);
/* An environment switch: unset or empty gives dflt; 0, false, off, no (any
 * case of those spellings) give 0; anything else 1. */
int xm__env_flag(const char *name, int dflt);
/* An environment number: dflt unless set to an integer in [lo, hi] that is a
 * multiple of `multiple`. */
long xm__env_long(const char *name, long lo, long hi, long multiple, long dflt);

/* Memory the engine may plan with on ctx's device, and the largest single
 * buffer, bytes. */
void xm__mem_budget(const xm_ctx *ctx, uint64_t *total, uint64_t *max_buf);
/* Seconds on a monotonic clock (the one now() of the library and its CLI). */
double xm__now(void);
/* A malloc'd copy of s; NULL on out of memory or for NULL. */
char *xm__strdup(const char *s);
/* OpenBLAS on one thread until xm__blas_restore(the count returned): a
 * threaded call's bits follow its thread count, which OpenBLAS takes from
 * the CPU affinity (one core a rank under mpirun's binding), so the calls
 * whose bits a run must keep (Sigma, its Cholesky factor, the Monte Carlo
 * product) make them on one (docs/scaling.md). */
int xm__blas_serial(void);
void xm__blas_restore(int threads);

#endif
