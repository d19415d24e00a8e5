/* The shared pricing source (kernels/xm_pricing.h, kernels/xm_engine_price.h)
 * instantiated for the host in both precisions: name##_d and name##_f (whose
 * American price is the double one's). Included by the cpu backend and by the
 * engine's diagnosis of non-finite losses. */
#ifndef XM_PRICE_HOST_H
#define XM_PRICE_HOST_H

#define XM_REAL double
#define XM_FN(name) name##_d
#include "xm_pricing.h"
#include "xm_engine_price.h"
#undef XM_REAL
#undef XM_FN
#define XM_REAL float
#define XM_FN(name) name##_f
#define XM_AMERICAN_F64 xm_price_american_d /* kernels/xm_american.h */
#include "xm_pricing.h"
#include "xm_engine_price.h"
#undef XM_AMERICAN_F64
#undef XM_REAL
#undef XM_FN

#endif
