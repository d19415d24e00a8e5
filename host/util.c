/* Small things the library and its programs share: the clock, a string
 * copy, JSON text. One of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "xm_internal.h"

int xm__blas_serial(void) {
  int n = openblas_get_num_threads();
  openblas_set_num_threads(1);
  return n;
}

void xm__blas_restore(int threads) { openblas_set_num_threads(threads); }

double xm__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double xm_now(void) { return xm__now(); }

char *xm__strdup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

void xm_json_string(void *file, const char *s) {
  FILE *f = file;
  fputc('"', f);
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(f, "\\u%04x", (unsigned char)*s);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}
