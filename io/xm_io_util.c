/* io/: the bounded diagnostics list and the SHA-256 of a file. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "xm_io.h"

void xm_diag_add(xm_diag *d, const char *fmt, ...) {
  if (!d || !fmt)
    return;
  d->total++;
  if (d->shown >= XM_DIAG_MAX_SHOWN)
    return;
  if (!d->msg) {
    d->msg = calloc(XM_DIAG_MAX_SHOWN, sizeof *d->msg);
    if (!d->msg)
      return; /* counted, not stored */
  }
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0)
    return;
  char *m = malloc((size_t)len + 1);
  if (!m)
    return;
  va_start(ap, fmt);
  vsnprintf(m, (size_t)len + 1, fmt, ap);
  va_end(ap);
  d->msg[d->shown++] = m;
}

void xm_diag_print(const xm_diag *d, void *file) {
  FILE *f = file ? (FILE *)file : stderr;
  if (!d)
    return;
  for (size_t i = 0; i < d->shown; i++)
    fprintf(f, "%s\n", d->msg[i]);
  if (d->total > d->shown)
    fprintf(f, "... and %zu more errors\n", d->total - d->shown);
}

void xm_diag_free(xm_diag *d) {
  if (!d)
    return;
  if (d->msg) {
    for (size_t i = 0; i < d->shown; i++)
      free(d->msg[i]);
    free(d->msg);
  }
  d->msg = NULL;
  d->shown = 0;
  d->total = 0;
}

xm_status xm_file_sha256(const char *path, char hex[65]) {
  if (!path || !hex)
    return XM_EINVAL;
  hex[0] = '\0';
  xm_status st = XM_OK;
  FILE *f = NULL;
  EVP_MD_CTX *md = NULL;
  unsigned char *buf = NULL;
  unsigned char dig[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;

  f = fopen(path, "rb");
  if (!f) {
    st = XM_EIO;
    goto cleanup;
  }
  buf = malloc(1 << 16);
  md = EVP_MD_CTX_new();
  if (!buf || !md) {
    st = XM_ENOMEM;
    goto cleanup;
  }
  if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    st = XM_EINTERNAL;
    goto cleanup;
  }
  for (;;) {
    size_t got = fread(buf, 1, 1 << 16, f);
    if (got > 0 && EVP_DigestUpdate(md, buf, got) != 1) {
      st = XM_EINTERNAL;
      goto cleanup;
    }
    if (got < (1 << 16)) {
      if (ferror(f)) {
        st = XM_EIO;
        goto cleanup;
      }
      break;
    }
  }
  if (EVP_DigestFinal_ex(md, dig, &dlen) != 1 || dlen != 32) {
    st = XM_EINTERNAL;
    goto cleanup;
  }
  for (unsigned int i = 0; i < dlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", dig[i]);

cleanup:
  EVP_MD_CTX_free(md);
  free(buf);
  if (f)
    fclose(f);
  return st;
}
