/* Internal declarations of libxmargin (not installed). */
#ifndef XM_INTERNAL_H
#define XM_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <stdarg.h>

#include "xmargin.h"

#define XM__ERR_CAP 16384

/* A backend: one small table of function pointers (ARCHITECTURE.md). */
typedef struct xm__backend {
  const char *name;
  xm_backend_kind kind;
  /* Sets up the device of ctx->dev (builds programs etc.). */
  xm_status (*open)(xm_ctx *ctx);
  void (*close)(xm_ctx *ctx);
  xm_status (*price)(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out);
} xm__backend;

extern const xm__backend xm__backend_cpu;
extern const xm__backend xm__backend_opencl;

typedef struct xm__ocl {
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  cl_program program[2]; /* [XM_DOUBLE], [XM_SINGLE] */
} xm__ocl;

struct xm_ctx {
  xm_options opt;
  xm_device_info dev;
  const xm__backend *be;
  xm__ocl ocl;
  int threads;
  char choice[512];
  char err[XM__ERR_CAP];
};

/* Records detail for xm_ctx_last_error and returns st (printf-style). */
xm_status xm__fail(xm_ctx *ctx, xm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Text of an OpenCL error code, e.g. "CL_OUT_OF_RESOURCES". */
const char *xm__cl_errstr(cl_int err);
/* Maps an OpenCL error to a status (out of resources/memory -> XM_ERESOURCE). */
xm_status xm__cl_status(cl_int err);

/* OpenCL enumeration shared by xm_devices_list and the backend. Fills info
 * for device (p, d) and its handles. */
xm_status xm__ocl_find(int p, int d, xm_device_info *info, cl_platform_id *pid, cl_device_id *did);
void xm__cpu_info(xm_device_info *info);

/* Embedded kernel source (generated). */
extern const char xm__kernel_xmargin[];
extern const size_t xm__kernel_xmargin_len;

#endif
