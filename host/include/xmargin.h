/* xmargin: GPU-accelerated unified portfolio margin.
 * Public API of libxmargin. All names start with xm_. Objects are opaque;
 * every function returns an xm_status unless stated otherwise. */
#ifndef XMARGIN_H
#define XMARGIN_H

#include <stddef.h>
#include <stdint.h>

#include "xmargin_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XM_VERSION_STRING "0.1.0"

/* One list of status codes and their fixed text (libuv UV_ERRNO_MAP style).
 * X(name, value, text). XM_EFORMAT and XM_ECONFIG are the user's input errors
 * (the CLI exits with status 2 for them). */
#define XM_STATUS_MAP(X)                                                                           \
  X(OK, 0, "success")                                                                              \
  X(EINVAL, 1, "invalid argument")                                                                 \
  X(ENOMEM, 2, "out of memory")                                                                    \
  X(EIO, 3, "input/output error")                                                                  \
  X(EFORMAT, 4, "input violates the xmargin data contract")                                        \
  X(ECONFIG, 5, "invalid configuration")                                                           \
  X(ENODEV, 6, "no such compute device")                                                           \
  X(EOPENCL, 7, "OpenCL runtime error")                                                            \
  X(EBUILD, 8, "OpenCL program build failed")                                                      \
  X(ERESOURCE, 9, "device out of resources")                                                       \
  X(ENOTPD, 10, "matrix is not positive definite")                                                 \
  X(EUNSUPPORTED, 11, "operation not supported on this device")                                    \
  X(ENUMERIC, 12, "non-finite number in a result")                                                 \
  X(EINTERNAL, 13, "internal error")

typedef enum xm_status {
#define XM__STATUS_ENUM(name, value, text) XM_##name = value,
  XM_STATUS_MAP(XM__STATUS_ENUM)
#undef XM__STATUS_ENUM
} xm_status;

/* Number of status codes (one past the largest value: the values are 0, 1, ...). */
#define XM__STATUS_ONE(name, value, text) +1
#define XM_STATUS_COUNT (0 XM_STATUS_MAP(XM__STATUS_ONE))

/* Fixed, static text for a status code; "unknown status" for values not in the
 * list. Never NULL; the caller does not free it. */
const char *xm_strerror(xm_status code);
/* The status code's symbolic name, e.g. "XM_EFORMAT"; static, never NULL. */
const char *xm_status_name(xm_status code);

/* ---- Devices ----------------------------------------------------------- */

typedef enum xm_backend_kind { XM_BACKEND_CPU = 0, XM_BACKEND_OPENCL = 1 } xm_backend_kind;

typedef struct xm_device_info {
  xm_backend_kind backend;
  char spec[32];      /* what --device takes to pick it: "cpu", "opencl:0.1" */
  int platform_index; /* -1 for the cpu backend */
  int device_index;   /* -1 for the cpu backend */
  int is_gpu;
  char platform[128];
  char name[128];
  char vendor[128];
  char version[64]; /* OpenCL C version ("OpenCL C 1.2"), or "C11" */
  char driver[64];
  unsigned compute_units;
  uint64_t global_mem; /* bytes */
  uint64_t local_mem;  /* bytes */
  uint64_t max_alloc;  /* bytes */
  int fp64;            /* double precision supported */
} xm_device_info;

/* Lists every device xmargin can run on: each OpenCL device of every platform,
 * then the plain-C "cpu" backend (always present). On success *out is an array
 * of *n entries owned by the caller (free with xm_devices_free). A missing or
 * broken OpenCL runtime is not an error: the list then holds only "cpu". */
xm_status xm_devices_list(xm_device_info **out, size_t *n);
void xm_devices_free(xm_device_info *list);

/* ---- Context ----------------------------------------------------------- */

typedef struct xm_ctx xm_ctx;

typedef struct xm_options {
  /* "auto" | "cpu" | "opencl" | "opencl:<platform>.<device>"; NULL means the
   * environment variable XM_DEVICE, or "auto" when that is unset. auto takes a
   * GPU if there is one, else an OpenCL CPU device, else the cpu backend. */
  const char *device;
  /* Cap on device memory the engine plans with, bytes; 0 = the device's own. */
  uint64_t mem_limit;
  /* Threads for the cpu backend; 0 = all cores. */
  int threads;
  /* Print the device choice and warnings to stderr. */
  int verbose;
} xm_options;

/* Fills *opt with the defaults (the same as passing NULL options). */
void xm_options_default(xm_options *opt);

/* Creates a context on the chosen device and builds its kernels (once per
 * context). *out is owned by the caller (xm_ctx_destroy). On failure *out is
 * still set when it could be allocated, so that xm_ctx_last_error() can say why;
 * destroy it in any case. */
xm_status xm_ctx_create(xm_ctx **out, const xm_options *opt);
/* Releases everything; NULL is a no-op. */
void xm_ctx_destroy(xm_ctx *ctx);
/* Detail of the last failure on this context (build log, HDF5 path and row,
 * OpenCL call); "" if none. Owned by the context, valid until the next call. */
const char *xm_ctx_last_error(const xm_ctx *ctx);
/* The device the context runs on; owned by the context. */
const xm_device_info *xm_ctx_device(const xm_ctx *ctx);
/* One line saying which device was chosen and why (for auto). */
const char *xm_ctx_choice(const xm_ctx *ctx);

/* ---- Pricing (the shared pricing core, exposed for checks) ------------- */

typedef enum xm_precision { XM_DOUBLE = 0, XM_SINGLE = 1 } xm_precision;

/* A batch of contracts, struct of arrays, n entries each. */
typedef struct xm_contracts {
  size_t n;
  const int32_t *type;      /* xm_instrument_type */
  const double *underlying; /* S (spot) or F (futures price) */
  const double *strike;
  const double *expiry; /* years; <= 0 means intrinsic */
  const double *rate;
  const double *dividend; /* option only */
  const double *vol;
  const int32_t *call; /* 1 call, 0 put */
  const double *multiplier;
} xm_contracts;

/* Values of one contract each (multiplier included) on the context's device,
 * in the given precision, into out[n] (caller-owned). */
xm_status xm_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out);

/* ---- The enumerations' names (xmargin_types.h) -------------------------- */

/* The name of a value as the files and the configuration spell it
 * ("future_option", "price", "es"); static, never freed; NULL for a value
 * that is not in its table. */
const char *xm_type_name(int type);
const char *xm_factor_kind_name(int kind);
const char *xm_measure_name(int measure);

/* ---- Configuration (METHODOLOGY.md; keys and defaults there) ------------ */

typedef enum xm_distribution { XM_DIST_NORMAL = 0, XM_DIST_STUDENT_T = 1 } xm_distribution;

typedef struct xm_config {
  int horizon_days;       /* horizon_days = 2 */
  double confidence;      /* confidence = 0.99 */
  xm_precision precision; /* precision = double */
  struct {
    int enabled;        /* historical.enabled = true */
    double ewma_lambda; /* 0.97 */
    double apc_floor;   /* 0 */
    int filtered;       /* true */
    int lookback;       /* 1260 */
    xm_measure measure; /* es */
  } historical;
  struct {
    int enabled;                  /* montecarlo.enabled = true */
    int64_t scenarios;            /* 10000 */
    xm_distribution distribution; /* student_t */
    double dof;                   /* 5 */
    uint64_t seed;                /* 42 */
    double correlation_stress;    /* 0 */
    xm_measure measure;           /* es */
  } montecarlo;
  struct {
    double vol_floor;      /* 0.01 */
    double vol_term_power; /* 0 */
  } pricing;
  struct {
    double offset_cap; /* 0.80 */
  } cross_margin;
  struct {
    double per_contract; /* 0.375 */
  } minimum;
} xm_config;

/* Fills *cfg with METHODOLOGY.md's defaults. */
void xm_config_default(xm_config *cfg);
/* Sets one key ("section.key" or a top-level key) from its text value.
 * XM_ECONFIG for an unknown key or a value of the wrong type or out of range;
 * the message (naming the key, the value and the allowed range) goes to
 * err[cap] when err is not NULL. */
xm_status xm_config_set(xm_config *cfg, const char *key, const char *value, char *err, size_t cap);
/* Reads an INI file (sections [historical], [montecarlo], ...; top-level keys
 * before any section) over *cfg. XM_EIO when unreadable, XM_ECONFIG naming
 * file, line and key otherwise. */
xm_status xm_config_load(xm_config *cfg, const char *path, char *err, size_t cap);
/* Writes the effective configuration as INI text into a malloc'd string the
 * caller frees; NULL on out of memory. Loading that text gives back *cfg. */
char *xm_config_to_ini(const xm_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* XMARGIN_H */
