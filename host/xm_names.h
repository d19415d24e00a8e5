/* A name index (host/names.c): maps the strings of an array to their rows,
 * built once in O(n) expected time, looked up in O(1). Open addressing
 * (linear probing, at most 2/3 full) on SipHash-1-3 under a random key
 * drawn per index, so that names chosen by a file cannot make every name
 * collide. No global state; no HDF5. Internal to libxmargin (the readers'
 * duplicate checks, the engine's factor matching).
 *
 *   xm__names *ix;
 *   if (xm__names_build(&ix, names, n) != XM_OK) ...
 *   int64_t row = xm__names_find(ix, "SPX");   // -1 when absent
 *   xm__names_free(ix);
 */
#ifndef XM_NAMES_H
#define XM_NAMES_H

#include <stdint.h>

#include "xmargin.h"

typedef struct xm__names xm__names;

/* Builds the index of names[0..n) into *out, which the caller owns (free it
 * with xm__names_free). The index refers to the strings, not copies: they
 * must stay unchanged while it is used. A name that repeats an earlier one
 * maps to the earlier row (xm__names_duplicates tells); a NULL entry is
 * skipped (never found); "" is a name like any other. Returns XM_OK,
 * XM_EINVAL (out NULL, n < 0 or more than INT32_MAX rows, names NULL with
 * n > 0; *out is then NULL) or XM_ENOMEM. */
xm_status xm__names_build(xm__names **out, char *const *names, int64_t n);

/* The first row of name, or -1 when it is not one of the names (also for
 * NULL). */
int64_t xm__names_find(const xm__names *ix, const char *name);

/* The number of rows whose name repeats an earlier row's (0: all distinct).
 * When there is one, *first and *second (each may be NULL) get the rows
 * i < j of the first repeat: the smallest such j, and i the first row of
 * its name. */
int64_t xm__names_duplicates(const xm__names *ix, int64_t *first, int64_t *second);

/* Frees the index (not the names); NULL is a no-op. */
void xm__names_free(xm__names *ix);

#endif
