/* Common subset of C99 and OpenCL C used by every shared header: the same
 * source is compiled by the OpenCL compiler (kernels) and by the C compiler
 * (the cpu backend), so the two paths cannot drift apart. */
#ifndef XM_PORTABLE_H
#define XM_PORTABLE_H

#ifdef __OPENCL_VERSION__
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define XM_GLOBAL __global
#define XM_PRIVATE
/* The host builds for CPU devices with -DXM_FORCE_INLINE: PoCL otherwise keeps
 * big helpers such as Philox as calls, and does not vectorise a work-item loop
 * with a call in it (Philox alone went from 23 to 3.5 ms for 2.5e6 blocks).
 * GPU compilers decide for themselves. */
#if defined(XM_FORCE_INLINE) && defined(__clang__)
#define XM_INLINE inline __attribute__((always_inline))
#else
#define XM_INLINE inline
#endif
typedef long xm_i64;
typedef int xm_i32;
typedef uint xm_u32;
typedef ulong xm_u64;
#define XM_BITS_OF_DOUBLE(d) as_ulong(d)
/* sin(pi x) and cos(pi x): OpenCL's sinpi/cospi need no argument reduction
 * (PoCL: 7 ms against 90 ms for sin and cos of 2.5e6 doubles on 2 cores). */
#define XM_SINPI(x) sinpi(x)
#define XM_COSPI(x) cospi(x)
#else
#include <stdint.h>
#include <string.h>
#include <tgmath.h> /* exp(float) is expf, as in OpenCL C */
#define XM_GLOBAL
#define XM_PRIVATE
#define XM_INLINE static inline
typedef int64_t xm_i64;
typedef int32_t xm_i32;
typedef uint32_t xm_u32;
typedef uint64_t xm_u64;
static inline xm_u64 xm__bits_of_double(double d) {
  xm_u64 u;
  memcpy(&u, &d, sizeof u);
  return u;
}
#define XM_BITS_OF_DOUBLE(d) xm__bits_of_double(d)
/* C11 has no sinpi/cospi: the same values to a few ulp (|x| <= 2 here). */
#define XM_SINPI(x) sin(3.141592653589793238463 * (x))
#define XM_COSPI(x) cos(3.141592653589793238463 * (x))
#endif

/* The revaluation's helpers, inlined always: a call in a loop body stops the
 * cpu backend's loops over instruments from vectorising. */
#if defined(__OPENCL_VERSION__)
#define XM_INLINE_HOT XM_INLINE
#elif defined(__GNUC__)
#define XM_INLINE_HOT static inline __attribute__((always_inline))
#else
#define XM_INLINE_HOT static inline
#endif

/* The enumerations (instrument types, factor kinds, measures): one table each. */
#include "../host/include/xmargin_types.h"

/* Instrument data of a block, struct of arrays with stride n:
 * instd[XM_ID_* * n + i] (double), insti[XM_II_* * n + i] (int). A block's
 * row is an instrument as an account in one currency sees it (host/plan.c):
 * the same instrument held in accounts of two currencies has two rows. */
#define XM_ID_S0 0   /* today's level of the underlying factor */
#define XM_ID_K 1    /* strike */
#define XM_ID_T 2    /* years to expiry */
#define XM_ID_R 3    /* rate */
#define XM_ID_Q 4    /* dividend yield */
#define XM_ID_SIG 5  /* implied vol */
#define XM_ID_MULT 6 /* multiplier */
#define XM_ID_FR 7   /* funding rate (types with funding; else 0) */
#define XM_ID_R0 8   /* R_{c->b}(0) = X_c / X_b: settlement to account currency today */
#define XM_ID_MINW 9 /* weight in the minimum: multiplier / X_b (options), else 0 */
/* Scenario-independent terms of the revaluation, written by xm_today: */
#define XM_ID_V0 10    /* today's value of one unit, settlement currency */
#define XM_ID_SQT1 11  /* sqrt(T'), T' = max(T - h/252, 0) */
#define XM_ID_T1 12    /* T' */
#define XM_ID_DF1 13   /* exp(-r T') */
#define XM_ID_CARRY 14 /* exp((r - q) T') for options, 1 for futures options */
#define XM_ID_LFK 15   /* log(S / K) + log(carry) */
#define XM_ID_VSC 16   /* (30 / max(365 T, 1))^p, the vol shock's term scale */
#define XM_ID_PHI 17   /* funding of one unit over the horizon (METHODOLOGY.md 2.3) */
#define XM_ND 18
#define XM_II_TYPE 0  /* xm_instrument_type */
#define XM_II_CALL 1  /* 1 call, 0 put */
#define XM_II_UND 2   /* column of the underlying factor in the shock rows */
#define XM_II_VOL 3   /* column of the vol factor, or -1 */
#define XM_II_LOGV 4  /* 1: the vol factor is a logvol factor (relative moves) */
#define XM_II_FXC 5   /* column of the settlement currency's /fx factor, or -1 */
#define XM_II_FXB 6   /* column of the account currency's /fx factor, or -1 */
#define XM_II_CLASS 7 /* revaluation class (XM_CLASS_*) */
#define XM_NI 8

/* The revaluation classes: the loss families of the type table, the Black
 * one split by vol factor kind, so that each is one branch-free loop. A
 * block's rows are ordered by class (host/plan.c). */
#define XM_CLASS_LINEAR 0
#define XM_CLASS_BLACK 1
#define XM_CLASS_BLACK_LOGVOL 2
#define XM_CLASS_AMERICAN 3
#define XM_CLASS_COUNT 4
/* The class of a row of type t whose vol factor is logvol (1) or not (0). */
#define XM_CLASS_OF(t, logv)                                                                       \
  (XM_TYPE_LOSS(t) == XM_LOSS_LINEAR  ? XM_CLASS_LINEAR                                            \
   : XM_TYPE_LOSS(t) == XM_LOSS_BLACK ? XM_CLASS_BLACK + ((logv) != 0)                             \
                                      : XM_CLASS_AMERICAN)

/* The liquidity add-on's sensitivities (METHODOLOGY.md section 4.1): each
 * row depends on at most XM_NSLOT price factors (its underlying, then the
 * /fx factors of its settlement and of its account currency, each once), the
 * row's slots. For them the row is revalued on XM_SENS_COLS local shock
 * columns: slot j is column j, the vol factor column XM_SLOT_VOL; the shock
 * rows 2j and 2j + 1 move column j by -XM_LQ_U and +XM_LQ_U. */
#define XM_NSLOT 3
#define XM_SLOT_BITS 2 /* a contribution is position << XM_SLOT_BITS | slot */
#define XM_SLOT_VOL 3
#define XM_SENS_COLS 4
#define XM_LQ_U 0.01

#endif /* XM_PORTABLE_H */
