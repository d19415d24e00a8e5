/* The losses of a --save-pnl run on disk (xm_run_opts.pnl_dir): one unlinked
 * temporary file in the caller's folder, each set's [S x A] float32 rows one
 * after the other, written as the streamed loop makes them (xm__spool_put)
 * and read back in blocks (xm_run_pnl_read, the results writer). Nothing is
 * left behind: the file has no name from the moment it is made. */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xm_engine.h"
#include "xm_internal.h"

struct xm_pnl_spool {
  int fd;
  int64_t K, A;
  int64_t *S;   /* [K] each set's scenarios */
  uint64_t *at; /* [K] each set's first byte */
  char dir[4096];
};

xm_status xm__spool_open(xm_ctx *ctx, const char *dir, int64_t K, const int64_t *S, int64_t A,
                         xm_pnl_spool **out) {
  *out = NULL;
  xm_pnl_spool *sp = calloc(1, sizeof *sp);
  if (!sp || !(sp->S = calloc((size_t)K + 1, sizeof *sp->S)) ||
      !(sp->at = calloc((size_t)K + 1, sizeof *sp->at))) {
    xm__spool_close(sp);
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
  sp->fd = -1;
  sp->K = K;
  sp->A = A;
  snprintf(sp->dir, sizeof sp->dir, "%s", dir && *dir ? dir : ".");
  uint64_t bytes = 0;
  for (int64_t x = 0; x < K; x++) {
    sp->S[x] = S[x];
    sp->at[x] = bytes;
    bytes += (uint64_t)S[x] * (uint64_t)A * sizeof(float);
  }
  char path[sizeof sp->dir + 32];
  snprintf(path, sizeof path, "%s/.xmargin-pnl-XXXXXX", sp->dir);
  if ((sp->fd = mkstemp(path)) < 0) {
    xm_status st = xm__fail(ctx, XM_EIO, "--save-pnl: cannot make a temporary file in %s: %s",
                            sp->dir, strerror(errno));
    xm__spool_close(sp);
    return st;
  }
  (void)unlink(path); /* nameless from now on: gone when closed, whatever happens */
  /* Its blocks taken now, as the results writer takes its own
   * (xm__wr_begin): a full disk or a file size limit is found before the
   * run, not after it. Where the file system cannot, only sized. */
  int e = bytes ? fallocate(sp->fd, 0, 0, (off_t)bytes) : 0;
  if (e != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
    e = ftruncate(sp->fd, (off_t)bytes);
  if (e != 0) {
    xm_status st = xm__fail(ctx, XM_EIO,
                            "--save-pnl: the losses need %llu bytes of disk in %s while the run "
                            "is made: %s",
                            (unsigned long long)bytes, sp->dir, strerror(errno));
    xm__spool_close(sp);
    return st;
  }
  *out = sp;
  return XM_OK;
}

void xm__spool_close(xm_pnl_spool *sp) {
  if (!sp)
    return;
  if (sp->fd >= 0)
    close(sp->fd);
  free(sp->S);
  free(sp->at);
  free(sp);
}

/* The whole of n bytes at offset off, to (put) or from the file. */
static int xm__spool_io(int fd, int put, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n > 0) {
    ssize_t k = put ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      if (k == 0)
        errno = EIO;
      return -1;
    }
    p += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return 0;
}

/* Rows [s0, s0 + ns) x accounts [a0, a0 + na) of set x, [ns x na], to or
 * from the file: one call a row (one for all when na is every account). */
static int xm__spool_rows(const xm_pnl_spool *sp, int put, int64_t x, int64_t s0, int64_t ns,
                          int64_t a0, int64_t na, float *rows) {
  uint64_t at = sp->at[x] + ((uint64_t)s0 * (uint64_t)sp->A + (uint64_t)a0) * sizeof(float);
  if (na == sp->A)
    return xm__spool_io(sp->fd, put, rows, (size_t)(ns * na) * sizeof(float), at);
  for (int64_t s = 0; s < ns; s++, at += (uint64_t)sp->A * sizeof(float))
    if (xm__spool_io(sp->fd, put, rows + s * na, (size_t)na * sizeof(float), at) != 0)
      return -1;
  return 0;
}

static int xm__spool_in(const xm_pnl_spool *sp, int64_t x, int64_t s0, int64_t ns, int64_t a0,
                        int64_t na) {
  return x >= 0 && x < sp->K && s0 >= 0 && ns >= 0 && s0 + ns <= sp->S[x] && a0 >= 0 && na >= 0 &&
         a0 + na <= sp->A;
}

xm_status xm__spool_put(xm_ctx *ctx, xm_pnl_spool *sp, int64_t x, int64_t s0, int64_t ns,
                        int64_t a0, int64_t na, const float *rows) {
  if (!xm__spool_in(sp, x, s0, ns, a0, na))
    return xm__fail(ctx, XM_EINVAL, "--save-pnl: rows outside set %lld's", (long long)x);
  if (xm__spool_rows(sp, 1, x, s0, ns, a0, na, (float *)rows) != 0)
    return xm__fail(ctx, XM_EIO,
                    "--save-pnl: cannot write the losses to a temporary file in %s: %s", sp->dir,
                    strerror(errno));
  return XM_OK;
}

xm_status xm_run_pnl_read(const xm_run_result *res, int64_t x, int64_t s0, int64_t ns, int64_t a0,
                          int64_t na, float *out) {
  if (!res || x < 0 || x >= res->K || !out || s0 < 0 || ns < 0 || s0 + ns > res->sets[x].S ||
      a0 < 0 || na < 0 || a0 + na > res->A)
    return XM_EINVAL;
  const float *P = res->sets[x].pnl;
  if (P) {
    for (int64_t s = 0; s < ns; s++)
      memcpy(out + s * na, P + (s0 + s) * res->A + a0, (size_t)na * sizeof *out);
    return XM_OK;
  }
  const xm_pnl_spool *sp = res->pnl_spool;
  if (!sp || sp->A != res->A || !xm__spool_in(sp, x, s0, ns, a0, na))
    return XM_EINVAL;
  return xm__spool_rows(sp, 0, x, s0, ns, a0, na, out) == 0 ? XM_OK : XM_EIO;
}
