/* The OpenCL runtime as xmargin sees it: platforms and devices (their
 * description for xm_devices_list and --device), and the error codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_io.h"
#include "xm_opencl.h"

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

static cl_int xm__platforms(cl_platform_id **out, cl_uint *n) {
  *out = NULL;
  *n = 0;
  cl_uint np = 0;
  cl_int e = clGetPlatformIDs(0, NULL, &np);
  if (e != CL_SUCCESS || np == 0)
    return e == CL_SUCCESS ? CL_DEVICE_NOT_FOUND : e;
  *out = calloc(np, sizeof **out);
  if (!*out)
    return CL_OUT_OF_HOST_MEMORY;
  e = clGetPlatformIDs(np, *out, NULL);
  if (e != CL_SUCCESS) {
    free(*out);
    *out = NULL;
    return e;
  }
  *n = np;
  return CL_SUCCESS;
}

static cl_int xm__devices(cl_platform_id p, cl_device_id **out, cl_uint *n) {
  *out = NULL;
  *n = 0;
  cl_uint nd = 0;
  cl_int e = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
  if (e != CL_SUCCESS || nd == 0)
    return e == CL_SUCCESS ? CL_DEVICE_NOT_FOUND : e;
  *out = calloc(nd, sizeof **out);
  if (!*out)
    return CL_OUT_OF_HOST_MEMORY;
  e = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, *out, NULL);
  if (e != CL_SUCCESS) {
    free(*out);
    *out = NULL;
    return e;
  }
  *n = nd;
  return CL_SUCCESS;
}

/* Describes device (p, d); every query checked (a device that does not
 * answer one is not listed). */
static cl_int xm__fill_ocl_info(xm_device_info *info, int p, int d, cl_platform_id pid,
                                cl_device_id did) {
  memset(info, 0, sizeof *info);
  info->backend = XM_BACKEND_OPENCL;
  snprintf(info->spec, sizeof info->spec, "opencl:%d.%d", p, d);
  info->platform_index = p;
  info->device_index = d;
  cl_device_type type = 0;
  cl_uint cu = 0;
  cl_ulong gmem = 0, lmem = 0, maxa = 0;
  cl_device_fp_config fp = 0;
  cl_int e =
      clGetPlatformInfo(pid, CL_PLATFORM_NAME, sizeof info->platform - 1, info->platform, NULL);
  struct {
    cl_device_info what;
    size_t size;
    void *out;
  } q[] = {
      {CL_DEVICE_NAME, sizeof info->name - 1, info->name},
      {CL_DEVICE_VENDOR, sizeof info->vendor - 1, info->vendor},
      {CL_DEVICE_OPENCL_C_VERSION, sizeof info->version - 1, info->version},
      {CL_DRIVER_VERSION, sizeof info->driver - 1, info->driver},
      {CL_DEVICE_TYPE, sizeof type, &type},
      {CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu},
      {CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem},
      {CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem},
      {CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxa, &maxa},
  };
  for (size_t i = 0; i < sizeof q / sizeof q[0] && e == CL_SUCCESS; i++)
    e = clGetDeviceInfo(did, q[i].what, q[i].size, q[i].out, NULL);
  if (e != CL_SUCCESS)
    return e;
  /* no double precision: a device without cl_khr_fp64 may refuse the query */
  if (clGetDeviceInfo(did, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp, &fp, NULL) != CL_SUCCESS)
    fp = 0;
  info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  info->compute_units = cu;
  info->global_mem = gmem;
  info->local_mem = lmem;
  info->max_alloc = maxa;
  info->fp64 = fp != 0;
  return CL_SUCCESS;
}

xm_status xm__ocl_find(int p, int d, xm_device_info *info, cl_platform_id *pid, cl_device_id *did) {
  cl_platform_id *plats = NULL;
  cl_device_id *devs = NULL;
  cl_uint np = 0, nd = 0;
  xm_status st = XM_ENODEV;
  if (xm__platforms(&plats, &np) != CL_SUCCESS || p < 0 || (cl_uint)p >= np)
    goto cleanup;
  if (xm__devices(plats[p], &devs, &nd) != CL_SUCCESS || d < 0 || (cl_uint)d >= nd)
    goto cleanup;
  if (xm__fill_ocl_info(info, p, d, plats[p], devs[d]) != CL_SUCCESS)
    goto cleanup;
  *pid = plats[p];
  *did = devs[d];
  st = XM_OK;
cleanup:
  free(devs);
  free(plats);
  return st;
}

xm_status xm__ocl_list(xm_device_info **list, size_t *n, size_t *cap) {
  cl_platform_id *plats = NULL;
  cl_uint np = 0;
  /* Under a tight ulimit -v an OpenCL runtime aborts or crashes as it loads
   * (PoCL's LLVM, a GPU driver's address-space reservations): it is not
   * asked at all then. */
  if (xm_address_space_room() < XM__OCL_MIN_ROOM || xm__platforms(&plats, &np) != CL_SUCCESS)
    return XM_OK;
  xm_status st = XM_OK;
  for (cl_uint p = 0; p < np && st == XM_OK; p++) {
    cl_device_id *devs = NULL;
    cl_uint nd = 0;
    if (xm__devices(plats[p], &devs, &nd) != CL_SUCCESS)
      continue;
    for (cl_uint d = 0; d < nd && st == XM_OK; d++) {
      if (*n + 1 > *cap) {
        xm_device_info *bigger = realloc(*list, (*cap * 2 + 1) * sizeof **list);
        if (!bigger) {
          st = XM_ENOMEM;
          break;
        }
        *list = bigger;
        *cap = *cap * 2 + 1;
      }
      if (xm__fill_ocl_info(&(*list)[*n], (int)p, (int)d, plats[p], devs[d]) == CL_SUCCESS)
        (*n)++;
    }
    free(devs);
  }
  free(plats);
  return st;
}
