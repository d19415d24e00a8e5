/* Shared by the libFuzzer targets: the input bytes go to a temporary file
 * (the readers take a path), created once per process with mkstemp under
 * /dev/shm (or /tmp), rewritten for every input and removed at exit. */
#ifndef XM_FUZZ_COMMON_H
#define XM_FUZZ_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define XMF_MAX_FILES 2

typedef struct xmf_file {
  char path[128];
  int fd;
} xmf_file;

static xmf_file xmf_files[XMF_MAX_FILES];
static int xmf_nfiles;
static pid_t xmf_owner; /* the process that created the files removes them */

static inline void xmf_cleanup(void) {
  if (getpid() != xmf_owner)
    return;
  for (int i = 0; i < xmf_nfiles; i++) {
    if (xmf_files[i].fd >= 0)
      close(xmf_files[i].fd);
    unlink(xmf_files[i].path);
  }
  xmf_nfiles = 0;
}

/* Creates temporary file number slot (0 .. XMF_MAX_FILES-1) on first use. */
static inline xmf_file *xmf_get(int slot, const char *tag) {
  if (slot < 0 || slot >= XMF_MAX_FILES)
    abort();
  while (xmf_nfiles <= slot) {
    xmf_file *f = &xmf_files[xmf_nfiles];
    const char *dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(f->path, sizeof f->path, "%s/xm-fuzz-%s-%ld-%d.XXXXXX", dir, tag, (long)getpid(),
             xmf_nfiles);
    f->fd = mkstemp(f->path);
    if (f->fd < 0) {
      fprintf(stderr, "fuzz: mkstemp %s: %s\n", f->path, strerror(errno));
      abort();
    }
    if (xmf_nfiles == 0 && xmf_owner == 0) {
      xmf_owner = getpid();
      atexit(xmf_cleanup);
    }
    xmf_nfiles++;
  }
  return &xmf_files[slot];
}

/* Replaces the content of temporary file slot with data[size]; returns its path. */
static inline const char *xmf_write(int slot, const char *tag, const void *data, size_t size) {
  xmf_file *f = xmf_get(slot, tag);
  if (ftruncate(f->fd, 0) != 0) {
    fprintf(stderr, "fuzz: ftruncate %s: %s\n", f->path, strerror(errno));
    abort();
  }
  const char *p = data;
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(f->fd, p + done, size - done, (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      fprintf(stderr, "fuzz: write %s: %s\n", f->path, strerror(errno));
      abort();
    }
    done += (size_t)n;
  }
  return f->path;
}

/* XM_FUZZ_VERBOSE=1: the targets print each input's status and messages
 * (to see why a seed is rejected: ./fuzz_portfolio -runs=0 FILE). */
static inline int xmf_verbose(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("XM_FUZZ_VERBOSE");
    v = e && *e && strcmp(e, "0") != 0;
  }
  return v;
}

static inline void xmf_report(const char *target, int status, char **msg, size_t shown,
                              size_t total) {
  if (!xmf_verbose())
    return;
  fprintf(stderr, "%s: status %d, %zu message(s)\n", target, status, total);
  for (size_t i = 0; i < shown; i++)
    fprintf(stderr, "  %s\n", msg[i]);
}

#endif
