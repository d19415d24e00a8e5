/* xmargin OpenCL kernels. Valid OpenCL C 1.2 on its own; the host embeds it
 * at build time (cmake/embed_kernels.cmake) and builds it once per context and
 * precision: -DXM_SINGLE prices in float, otherwise in double. Every formula is
 * in the shared headers, which the cpu backend compiles too. */
#include "xm_portable.h"

#ifdef XM_SINGLE
#define XM_REAL float
#else
#define XM_REAL double
#endif
#define XM_FN(name) name
#include "xm_pricing.h"

/* Values of n contracts (multiplier included); inputs in double, priced in
 * XM_REAL. */
__kernel void xm_price_batch(const long n, __global const int *type, __global const double *S,
                             __global const double *K, __global const double *T,
                             __global const double *r, __global const double *q,
                             __global const double *sigma, __global const int *call,
                             __global const double *mult, __global double *out) {
  long i = get_global_id(0);
  if (i >= n)
    return;
  XM_REAL v = xm_unit_value(type[i], (XM_REAL)S[i], (XM_REAL)K[i], (XM_REAL)T[i], (XM_REAL)r[i],
                            (XM_REAL)q[i], (XM_REAL)sigma[i], call[i]);
  out[i] = (double)((XM_REAL)mult[i] * v);
}
