/* Monte Carlo draws (METHODOLOGY.md section 1) from Philox4x32-10 (Random123),
 * keyed by (seed, scenario, factor): scenario s is the same on every device and
 * for every tiling or scenario count. Double precision only. */
#ifndef XM_RNG_H
#define XM_RNG_H

#include "xm_portable.h"
#include <Random123/philox.h>

/* Streams, in counter word 3. */
#define XM_STREAM_NORMAL 0u
#define XM_STREAM_CHI2 1u

/* A uniform in (0, 1) with 53 random bits from two 32-bit words. */
XM_INLINE double xm_u01(xm_u32 hi, xm_u32 lo) {
  return ((double)(hi >> 5) * 67108864.0 + (double)(lo >> 6) + 0.5) * (1.0 / 9007199254740992.0);
}

XM_INLINE philox4x32_ctr_t xm_philox(xm_u64 seed, xm_u64 s, xm_u32 j, xm_u32 stream) {
  philox4x32_ctr_t c;
  philox4x32_key_t k;
  c.v[0] = (xm_u32)s;
  c.v[1] = (xm_u32)(s >> 32);
  c.v[2] = j;
  c.v[3] = stream;
  k.v[0] = (xm_u32)seed;
  k.v[1] = (xm_u32)(seed >> 32);
  return philox4x32(c, k);
}

/* Box-Muller, one formula for C scalars and OpenCL scalars or vectors (the
 * kernel draws 8 pairs at once with double8 built-ins, which PoCL vectorises):
 * -2 ln u1 = -2 ln 2 log2 u1 (log2 is the faster built-in: PoCL 2x). Its three
 * parts apart for the cpu backend's vector loops (xm__cpu_normals). */
#define XM_BM_RADIUS(u1) sqrt(-1.386294361119890618834 * log2(u1))
#define XM_BM_COS(u2) XM_COSPI(2.0 * (u2))
#define XM_BM_SIN(u2) XM_SINPI(2.0 * (u2))
#define XM_BOX_MULLER(T, u1, u2, z0, z1)                                                           \
  do {                                                                                             \
    T xm_rad_ = XM_BM_RADIUS(u1);                                                                  \
    (z0) = xm_rad_ * XM_BM_COS(u2);                                                                \
    (z1) = xm_rad_ * XM_BM_SIN(u2);                                                                \
  } while (0)

/* Box-Muller on one Philox block of stream `stream`: the pair
 * (rad cos, rad sin) for index pair j of scenario s. */
XM_INLINE void xm_normal_pair(xm_u64 seed, xm_u64 s, xm_u32 j, xm_u32 stream, XM_PRIVATE double *z0,
                              XM_PRIVATE double *z1) {
  philox4x32_ctr_t r = xm_philox(seed, s, j, stream);
  double u1 = xm_u01(r.v[0], r.v[1]);
  double u2 = xm_u01(r.v[2], r.v[3]);
  XM_BOX_MULLER(double, u1, u2, *z0, *z1);
}

/* z_s[2j] and z_s[2j+1]: the standard normals of scenario s, factors 2j, 2j+1. */
XM_INLINE void xm_mc_normal_pair(xm_u64 seed, xm_u64 s, xm_u32 j, XM_PRIVATE double *z0,
                                 XM_PRIVATE double *z1) {
  xm_normal_pair(seed, s, j, XM_STREAM_NORMAL, z0, z1);
}

/* W_s ~ chi-square with nu > 2 degrees of freedom: 2 * Gamma(nu/2) by
 * Marsaglia-Tsang (shape >= 1), each try drawing from its own counters. */
XM_INLINE double xm_mc_chi2(xm_u64 seed, xm_u64 s, double nu) {
  double a = 0.5 * nu;
  double d = a - 1.0 / 3.0;
  double c = 1.0 / sqrt(9.0 * d);
  double g = d;
  for (xm_u32 it = 0; it < 256u; it++) {
    double z, unused;
    xm_normal_pair(seed, s, 2u * it, XM_STREAM_CHI2, &z, &unused);
    double v = 1.0 + c * z;
    if (v <= 0.0)
      continue;
    v = v * v * v;
    philox4x32_ctr_t r = xm_philox(seed, s, 2u * it + 1u, XM_STREAM_CHI2);
    double u = xm_u01(r.v[0], r.v[1]);
    if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) {
      g = d * v;
      break;
    }
  }
  return 2.0 * g;
}

/* Row scale of scenario s: sqrt(h) for normal; sqrt(h) sqrt((nu-2)/W_s) for
 * Student-t (dist 1), so that Cov(x) = h Sigma. */
XM_INLINE double xm_mc_scale(xm_u64 seed, xm_u64 s, int dist, double nu, double h) {
  if (dist == 0)
    return sqrt(h);
  return sqrt(h) * sqrt((nu - 2.0) / xm_mc_chi2(seed, s, nu));
}

#endif
