#include <stdio.h>
#include <string.h>

#include "xm_internal.h"

const char *xm_strerror(xm_status code) {
  switch (code) {
#define XM__STATUS_TEXT(name, value, text)                                                         \
  case XM_##name:                                                                                  \
    return text;
    XM_STATUS_MAP(XM__STATUS_TEXT)
#undef XM__STATUS_TEXT
  }
  return "unknown status";
}

const char *xm_status_name(xm_status code) {
  switch (code) {
#define XM__STATUS_NAME(name, value, text)                                                         \
  case XM_##name:                                                                                  \
    return "XM_" #name;
    XM_STATUS_MAP(XM__STATUS_NAME)
#undef XM__STATUS_NAME
  }
  return "XM_UNKNOWN";
}

xm_status xm__fail(xm_ctx *ctx, xm_status st, const char *fmt, ...) {
  if (ctx) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
  }
  return st;
}

const char *xm__cl_errstr(cl_int err) {
  switch (err) {
#define C(x)                                                                                       \
  case x:                                                                                          \
    return #x;
    C(CL_SUCCESS)
    C(CL_DEVICE_NOT_FOUND)
    C(CL_DEVICE_NOT_AVAILABLE)
    C(CL_COMPILER_NOT_AVAILABLE)
    C(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    C(CL_OUT_OF_RESOURCES)
    C(CL_OUT_OF_HOST_MEMORY)
    C(CL_BUILD_PROGRAM_FAILURE)
    C(CL_INVALID_VALUE)
    C(CL_INVALID_DEVICE)
    C(CL_INVALID_PLATFORM)
    C(CL_INVALID_CONTEXT)
    C(CL_INVALID_COMMAND_QUEUE)
    C(CL_INVALID_MEM_OBJECT)
    C(CL_INVALID_PROGRAM)
    C(CL_INVALID_PROGRAM_EXECUTABLE)
    C(CL_INVALID_KERNEL_NAME)
    C(CL_INVALID_KERNEL)
    C(CL_INVALID_ARG_INDEX)
    C(CL_INVALID_ARG_VALUE)
    C(CL_INVALID_ARG_SIZE)
    C(CL_INVALID_KERNEL_ARGS)
    C(CL_INVALID_WORK_DIMENSION)
    C(CL_INVALID_WORK_GROUP_SIZE)
    C(CL_INVALID_WORK_ITEM_SIZE)
    C(CL_INVALID_GLOBAL_OFFSET)
    C(CL_INVALID_BUFFER_SIZE)
    C(CL_INVALID_BUILD_OPTIONS)
    C(CL_INVALID_OPERATION)
    C(CL_INVALID_GLOBAL_WORK_SIZE)
    C(CL_PLATFORM_NOT_FOUND_KHR)
#undef C
  }
  return "CL_UNKNOWN_ERROR";
}

xm_status xm__cl_status(cl_int err) {
  switch (err) {
  case CL_SUCCESS:
    return XM_OK;
  case CL_OUT_OF_RESOURCES:
  case CL_OUT_OF_HOST_MEMORY:
  case CL_MEM_OBJECT_ALLOCATION_FAILURE:
  case CL_INVALID_BUFFER_SIZE:
    return XM_ERESOURCE;
  case CL_BUILD_PROGRAM_FAILURE:
    return XM_EBUILD;
  case CL_DEVICE_NOT_FOUND:
  case CL_DEVICE_NOT_AVAILABLE:
  case CL_PLATFORM_NOT_FOUND_KHR:
    return XM_ENODEV;
  default:
    return XM_EOPENCL;
  }
}
