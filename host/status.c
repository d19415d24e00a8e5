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
