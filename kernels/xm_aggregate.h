/* Aggregation of contract losses into account and silo losses (METHODOLOGY.md
 * section 4), in the common subset of C99 and OpenCL C, double precision.
 * Templated like xm_pricing.h, no include guard on purpose: xm_reduce.h
 * includes it for one scenario per call; an OpenCL kernel may include it again
 * with XM_AGG_VECTOR defined, XM_AGG_T double8, XM_AGG_LOAD(p) vload8(0, p),
 * XM_AGG_STORE(p, v) vstore8(v, 0, p) and XM_AGG_FN(name) a suffix, for 8
 * consecutive scenarios per call (contiguous in ell and in L: ss = 1); C's
 * vector types also define XM_AGG_ZERO (their zero), and a type without
 * arithmetic operators XM_AGG_MUL(q, v) and XM_AGG_ADD(x, y). Each scenario's sums are
 * the scalar function's, add for add. The includer has defined xm_layout
 * (xm_reduce.h). */
#include "xm_portable.h"

#ifndef XM_AGG_VECTOR
#define XM_AGG_T double
#define XM_AGG_LOAD(p) (*(p))
#define XM_AGG_STORE(p, v) (*(p) = (v))
#define XM_AGG_FN(name) name
#endif
#ifndef XM_AGG_ZERO /* C's vector extensions cannot cast a scalar to a vector */
#define XM_AGG_ZERO ((XM_AGG_T)0.0)
#endif
#ifndef XM_AGG_MUL /* a type without operators (a pair of vectors) defines both */
#define XM_AGG_MUL(q, v) ((q) * (v))
#define XM_AGG_ADD(x, y) ((x) + (y))
#endif

/* Positions of a block, CSR by account, sorted by (silo, instrument) within
 * an account: pos_start[a] .. pos_start[a+1]. */

/* Account a's losses in scenario s from the contract losses of that scenario,
 * instrument i's at ell[i * ell_stride]; written at L + a*ca + c*cs + s*ss. */
XM_INLINE void XM_AGG_FN(xm_aggregate)(xm_i64 a, xm_i64 s, int G, XM_GLOBAL const double *ell,
                                       xm_i64 ell_stride, XM_GLOBAL const int *pos_start,
                                       XM_GLOBAL const int *pos_inst, XM_GLOBAL const int *pos_silo,
                                       XM_GLOBAL const double *pos_qty, XM_GLOBAL double *L,
                                       xm_layout lay) {
  XM_GLOBAL double *out = L + a * lay.ca + s * lay.ss;
  XM_AGG_T total = XM_AGG_ZERO, part = XM_AGG_ZERO;
  int cur = -1;
  for (int c = 1; c <= G; c++)
    XM_AGG_STORE(out + c * lay.cs, XM_AGG_ZERO);
  for (int p = pos_start[a]; p < pos_start[a + 1]; p++) {
    XM_AGG_T l = XM_AGG_MUL(pos_qty[p], XM_AGG_LOAD(ell + pos_inst[p] * ell_stride));
    if (pos_silo[p] != cur) {
      if (cur >= 0)
        XM_AGG_STORE(out + (1 + cur) * lay.cs, part);
      cur = pos_silo[p];
      part = XM_AGG_ZERO;
    }
    part = XM_AGG_ADD(part, l);
    total = XM_AGG_ADD(total, l);
  }
  if (cur >= 0)
    XM_AGG_STORE(out + (1 + cur) * lay.cs, part);
  XM_AGG_STORE(out, total);
}

#undef XM_AGG_ZERO
#undef XM_AGG_MUL
#undef XM_AGG_ADD
#ifndef XM_AGG_VECTOR
#undef XM_AGG_T
#undef XM_AGG_LOAD
#undef XM_AGG_STORE
#undef XM_AGG_FN
#endif
