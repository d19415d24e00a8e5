/* io/: the bounded diagnostics list and the SHA-256 of a file. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <hdf5.h>

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

/* The first number after key in file (e.g. "MemAvailable:" in /proc/meminfo,
 * in kB there), or the first number of the file when key is NULL. 0 when
 * absent; UINT64_MAX for "max". */
static uint64_t xm__file_number(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[256];
  uint64_t v = 0;
  while (fgets(line, sizeof line, f)) {
    const char *p = line;
    if (key) {
      if (strncmp(line, key, strlen(key)) != 0)
        continue;
      p += strlen(key);
    }
    while (*p == ' ' || *p == '\t')
      p++;
    if (strncmp(p, "max", 3) == 0)
      v = UINT64_MAX;
    else
      v = strtoull(p, NULL, 10);
    break;
  }
  fclose(f);
  return v;
}

uint64_t xm_address_space_used(void) {
  long page = sysconf(_SC_PAGESIZE);
  return xm__file_number("/proc/self/statm", NULL) * (uint64_t)(page > 0 ? page : 4096);
}

uint64_t xm_address_space_room(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return UINT64_MAX;
  uint64_t used = xm_address_space_used();
  return (uint64_t)rl.rlim_cur > used ? (uint64_t)rl.rlim_cur - used : 0;
}

uint64_t xm_host_memory_limit(void) {
  uint64_t lim = UINT64_MAX;
  uint64_t avail = xm__file_number("/proc/meminfo", "MemAvailable:");
  if (avail && avail < UINT64_MAX / 1024)
    lim = avail * 1024;
  /* cgroup v2: this process's group from /proc/self/cgroup ("0::/path") */
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f) {
    char line[512], path[700];
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "0::", 3) != 0)
        continue;
      line[strcspn(line, "\n")] = '\0';
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
      uint64_t max = xm__file_number(path, NULL);
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
      uint64_t cur = xm__file_number(path, NULL);
      if (max && max != UINT64_MAX && cur < max && max - cur < lim)
        lim = max - cur;
      break;
    }
    fclose(f);
  }
  uint64_t room = xm_address_space_room();
  return room < lim ? room : lim;
}

void xm_hdf5_skip_exit_handler(void) { H5dont_atexit(); }
