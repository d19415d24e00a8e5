/* The OpenCL backend: any OpenCL 1.2+ device (GPUs, PoCL on the CPU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_internal.h"

#define XM__CL(ctx, call)                                                                          \
  do {                                                                                             \
    cl_int e__ = (call);                                                                           \
    if (e__ != CL_SUCCESS) {                                                                       \
      st = xm__fail((ctx), xm__cl_status(e__), "%s failed: %s (%s:%d)", #call,                     \
                    xm__cl_errstr(e__), __FILE__, __LINE__);                                       \
      goto cleanup;                                                                                \
    }                                                                                              \
  } while (0)

static xm_status xm__build(xm_ctx *ctx, xm_precision prec) {
  xm__ocl *o = &ctx->ocl;
  cl_int e = CL_SUCCESS;
  const char *src = xm__kernel_xmargin;
  size_t len = xm__kernel_xmargin_len;
  cl_program prog = clCreateProgramWithSource(o->context, 1, &src, &len, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateProgramWithSource: %s", xm__cl_errstr(e));
  const char *opts = prec == XM_SINGLE ? "-cl-std=CL1.2 -DXM_SINGLE=1" : "-cl-std=CL1.2";
  e = clBuildProgram(prog, 1, &o->device, opts, NULL, NULL);
  if (e != CL_SUCCESS) {
    size_t loglen = 0;
    clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &loglen);
    char *log = malloc(loglen + 1);
    if (log) {
      log[0] = '\0';
      clGetProgramBuildInfo(prog, o->device, CL_PROGRAM_BUILD_LOG, loglen, log, NULL);
      log[loglen] = '\0';
    }
    xm__fail(ctx, XM_EBUILD, "building the %s kernels for %s failed (%s); build log:\n%s",
             prec == XM_SINGLE ? "single-precision" : "double-precision", ctx->dev.name,
             xm__cl_errstr(e), log ? log : "(no memory for the log)");
    free(log);
    clReleaseProgram(prog);
    return XM_EBUILD;
  }
  o->program[prec] = prog;
  return XM_OK;
}

static xm_status xm__ocl_open(xm_ctx *ctx) {
  xm__ocl *o = &ctx->ocl;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  st = xm__ocl_find(ctx->dev.platform_index, ctx->dev.device_index, &ctx->dev, &o->platform,
                    &o->device);
  if (st != XM_OK)
    return xm__fail(ctx, st, "OpenCL device %s is gone", ctx->dev.spec);
  if (!ctx->dev.fp64)
    return xm__fail(ctx, XM_EUNSUPPORTED,
                    "%s has no double precision (cl_khr_fp64), which the reduction needs",
                    ctx->dev.name);
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)o->platform, 0};
  o->context = clCreateContext(props, 1, &o->device, NULL, NULL, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateContext: %s", xm__cl_errstr(e));
  o->queue = clCreateCommandQueue(o->context, o->device, 0, &e);
  if (e != CL_SUCCESS)
    return xm__fail(ctx, xm__cl_status(e), "clCreateCommandQueue: %s", xm__cl_errstr(e));
  if ((st = xm__build(ctx, XM_DOUBLE)) != XM_OK)
    return st;
  return xm__build(ctx, XM_SINGLE);
}

static void xm__ocl_close(xm_ctx *ctx) {
  xm__ocl *o = &ctx->ocl;
  for (int i = 0; i < 2; i++)
    if (o->program[i])
      clReleaseProgram(o->program[i]);
  if (o->queue)
    clReleaseCommandQueue(o->queue);
  if (o->context)
    clReleaseContext(o->context);
  memset(o, 0, sizeof *o);
}

static xm_status xm__ocl_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c,
                               double *out) {
  xm__ocl *o = &ctx->ocl;
  xm_status st = XM_OK;
  cl_int e = CL_SUCCESS;
  cl_kernel k = NULL;
  cl_mem b[10] = {0};
  size_t n = c->n;
  const void *src[9] = {c->type,  c->underlying, c->strike, c->expiry,    c->rate,
                        c->dividend, c->vol,     c->call,   c->multiplier};
  size_t esz[9] = {4, 8, 8, 8, 8, 8, 8, 4, 8};
  for (int i = 0; i < 9; i++) {
    b[i] = clCreateBuffer(o->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * esz[i],
                          (void *)src[i], &e);
    XM__CL(ctx, e);
  }
  b[9] = clCreateBuffer(o->context, CL_MEM_WRITE_ONLY, n * sizeof(double), NULL, &e);
  XM__CL(ctx, e);
  k = clCreateKernel(o->program[prec], "xm_price_batch", &e);
  XM__CL(ctx, e);
  cl_long nn = (cl_long)n;
  XM__CL(ctx, clSetKernelArg(k, 0, sizeof nn, &nn));
  for (int i = 0; i < 10; i++)
    XM__CL(ctx, clSetKernelArg(k, (cl_uint)(i + 1), sizeof(cl_mem), &b[i]));
  size_t lws = 64, gws = (n + lws - 1) / lws * lws;
  XM__CL(ctx, clEnqueueNDRangeKernel(o->queue, k, 1, NULL, &gws, &lws, 0, NULL, NULL));
  XM__CL(ctx, clEnqueueReadBuffer(o->queue, b[9], CL_TRUE, 0, n * sizeof(double), out, 0, NULL,
                                  NULL));
cleanup:
  if (k)
    clReleaseKernel(k);
  for (int i = 9; i >= 0; i--)
    if (b[i])
      clReleaseMemObject(b[i]);
  return st;
}

const xm__backend xm__backend_opencl = {
    .name = "opencl",
    .kind = XM_BACKEND_OPENCL,
    .open = xm__ocl_open,
    .close = xm__ocl_close,
    .price = xm__ocl_price,
};
