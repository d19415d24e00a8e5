/* The part of the two HDF5 reader targets after the read: what every result
 * must satisfy whatever the input, the report, and HDF5's state reset. */
#ifndef XM_FUZZ_HDF5_H
#define XM_FUZZ_HDF5_H

#include <hdf5.h>

#include "fuzz_common.h"
#include "xm_io.h"

static volatile size_t xmf_sink; /* reads the optimiser must keep */

#define XMF_CHECK(cond)                                                                            \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* Reads every string of s[n] (AddressSanitizer sees a short or missing one). */
static inline void xmf_touch_strings(char **s, int64_t n) {
  XMF_CHECK(n == 0 || s != NULL);
  for (int64_t i = 0; i < n; i++) {
    XMF_CHECK(s[i] != NULL);
    xmf_sink += strlen(s[i]);
  }
}

static inline int xmf_is_zero(const void *v, size_t n) {
  const unsigned char *c = v;
  for (size_t i = 0; i < n; i++)
    if (c[i])
      return 0;
  return 1;
}

/* After a read into out (size bytes) with status st: a failure leaves *out
 * zeroed, the diagnostics are bounded and readable, and no HDF5 object is
 * left open. HDF5's error stack and free lists are emptied, so that
 * libFuzzer's per-input malloc/free balance (its leak check) holds. The
 * caller frees out and diag after. */
static inline void xmf_after_read(const char *target, xm_status st, const void *out, size_t size,
                                  const xm_diag *diag) {
  if (st != XM_OK && !xmf_is_zero(out, size)) {
    fprintf(stderr, "%s: output not zeroed after a failed read\n", target);
    abort();
  }
  if (diag->shown > diag->total || diag->shown > XM_DIAG_MAX_SHOWN) {
    fprintf(stderr, "%s: %zu messages shown of %zu\n", target, diag->shown, diag->total);
    abort();
  }
  xmf_report(target, (int)st, diag->msg, diag->shown, diag->total);
  for (size_t i = 0; i < diag->shown; i++)
    xmf_sink += strlen(diag->msg[i]);
  H5Eclear2(H5E_DEFAULT);
  H5garbage_collect();
  ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open != 0) {
    fprintf(stderr, "%s: %zd HDF5 object(s) left open after the read\n", target, open);
    abort();
  }
}

#endif
