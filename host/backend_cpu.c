/* The cpu backend: plain C over the same shared headers as the kernels. */
#include <stdlib.h>

#include "xm_internal.h"

#define XM_REAL double
#define XM_FN(name) name##_d
#include "xm_pricing.h"
#undef XM_REAL
#undef XM_FN
#define XM_REAL float
#define XM_FN(name) name##_f
#include "xm_pricing.h"
#undef XM_REAL
#undef XM_FN

static xm_status xm__cpu_open(xm_ctx *ctx) {
  xm__cpu_info(&ctx->dev);
  return XM_OK;
}

static void xm__cpu_close(xm_ctx *ctx) { (void)ctx; }

static xm_status xm__cpu_price(xm_ctx *ctx, xm_precision prec, const xm_contracts *c,
                               double *out) {
  (void)ctx;
  long n = (long)c->n;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i++) {
    if (prec == XM_SINGLE) {
      float v = xm_unit_value_f(c->type[i], (float)c->underlying[i], (float)c->strike[i],
                                (float)c->expiry[i], (float)c->rate[i], (float)c->dividend[i],
                                (float)c->vol[i], c->call[i]);
      out[i] = (double)((float)c->multiplier[i] * v);
    } else {
      out[i] = c->multiplier[i] *
               xm_unit_value_d(c->type[i], c->underlying[i], c->strike[i], c->expiry[i],
                               c->rate[i], c->dividend[i], c->vol[i], c->call[i]);
    }
  }
  return XM_OK;
}

const xm__backend xm__backend_cpu = {
    .name = "cpu",
    .kind = XM_BACKEND_CPU,
    .open = xm__cpu_open,
    .close = xm__cpu_close,
    .price = xm__cpu_price,
};
