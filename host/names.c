/* The name index (xm__names.h). Slots hold row + 1 (0: empty) and 32 bits of
 * the name's hash, so that a probe compares strings only when the tags
 * agree; the slot is chosen by the hash's low bits. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xm_names.h"

typedef struct xm__slot {
  uint32_t tag;  /* the hash's high 32 bits */
  uint32_t row1; /* row + 1; 0 when the slot is empty */
} xm__slot;

struct xm__names {
  char *const *names;
  xm__slot *slot; /* [mask + 1] */
  uint64_t mask;
  uint64_t k0, k1;            /* the hash's key */
  int64_t ndup, dup_i, dup_j; /* repeated rows; the first repeat */
};

/* ---- SipHash-1-3 (Aumasson and Bernstein; Python's and Rust's string hash) --- */

#define XM__ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define XM__SIPROUND                                                                               \
  do {                                                                                             \
    v0 += v1;                                                                                      \
    v1 = XM__ROTL(v1, 13);                                                                         \
    v1 ^= v0;                                                                                      \
    v0 = XM__ROTL(v0, 32);                                                                         \
    v2 += v3;                                                                                      \
    v3 = XM__ROTL(v3, 16);                                                                         \
    v3 ^= v2;                                                                                      \
    v0 += v3;                                                                                      \
    v3 = XM__ROTL(v3, 21);                                                                         \
    v3 ^= v0;                                                                                      \
    v2 += v1;                                                                                      \
    v1 = XM__ROTL(v1, 17);                                                                         \
    v1 ^= v2;                                                                                      \
    v2 = XM__ROTL(v2, 32);                                                                         \
  } while (0)

static uint64_t xm__le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint64_t xm__siphash13(const char *s, uint64_t k0, uint64_t k1) {
  const unsigned char *in = (const unsigned char *)s;
  size_t len = strlen(s);
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = xm__le64(in + i);
    v3 ^= m;
    XM__SIPROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < len % 8; i++)
    b |= (uint64_t)in[whole + i] << (8 * i);
  v3 ^= b;
  XM__SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  XM__SIPROUND;
  XM__SIPROUND;
  XM__SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* splitmix64: the fallback key's mixer. */
static uint64_t xm__mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* A fresh key for ix: from the kernel, else from the clock and addresses. */
static void xm__new_key(xm__names *ix) {
  uint64_t k[2];
  if (getentropy(k, sizeof k) != 0) {
    struct timespec t = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &t);
    k[0] = xm__mix64((uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 32) ^ (uint64_t)(uintptr_t)ix);
    k[1] = xm__mix64(k[0] ^ (uint64_t)(uintptr_t)&t ^ (uint64_t)getpid());
  }
  ix->k0 = k[0];
  ix->k1 = k[1];
}

/* ---- The index ------------------------------------------------------------------ */

/* The slot of name: its own, or the empty one where it would go; *tag
 * gets its tag. Writes nothing (lookups may run concurrently). */
static uint64_t xm__probe(const xm__names *ix, const char *name, uint32_t *tag) {
  uint64_t h = xm__siphash13(name, ix->k0, ix->k1);
  *tag = (uint32_t)(h >> 32);
  for (uint64_t at = h & ix->mask;; at = (at + 1) & ix->mask) {
    const xm__slot *e = &ix->slot[at];
    if (e->row1 == 0 || (e->tag == *tag && strcmp(ix->names[e->row1 - 1], name) == 0))
      return at;
  }
}

xm_status xm__names_build(xm__names **out, char *const *names, int64_t n) {
  if (!out)
    return XM_EINVAL;
  *out = NULL;
  if (n < 0 || n > INT32_MAX || (n > 0 && !names))
    return XM_EINVAL;
  uint64_t want = (uint64_t)n + (uint64_t)n / 2 + 1, cap = 8; /* at most 2/3 full */
  while (cap < want)
    cap <<= 1;
  if (cap > SIZE_MAX / sizeof(xm__slot))
    return XM_ENOMEM;
  xm__names *ix = calloc(1, sizeof *ix);
  if (!ix)
    return XM_ENOMEM;
  ix->slot = calloc((size_t)cap, sizeof *ix->slot);
  if (!ix->slot) {
    free(ix);
    return XM_ENOMEM;
  }
  ix->names = names;
  ix->mask = cap - 1;
  ix->dup_i = ix->dup_j = -1;
  xm__new_key(ix);
  for (int64_t j = 0; j < n; j++) {
    if (!names[j])
      continue;
    uint32_t tag;
    xm__slot *e = &ix->slot[xm__probe(ix, names[j], &tag)];
    if (e->row1 == 0) {
      e->tag = tag;
      e->row1 = (uint32_t)j + 1;
      continue;
    }
    if (ix->ndup++ == 0) {
      ix->dup_i = (int64_t)e->row1 - 1;
      ix->dup_j = j;
    }
  }
  *out = ix;
  return XM_OK;
}

int64_t xm__names_find(const xm__names *ix, const char *name) {
  if (!ix || !name)
    return -1;
  uint32_t tag;
  const xm__slot *e = &ix->slot[xm__probe(ix, name, &tag)];
  return e->row1 ? (int64_t)e->row1 - 1 : -1;
}

int64_t xm__names_duplicates(const xm__names *ix, int64_t *first, int64_t *second) {
  if (!ix)
    return 0;
  if (ix->ndup > 0) {
    if (first)
      *first = ix->dup_i;
    if (second)
      *second = ix->dup_j;
  }
  return ix->ndup;
}

void xm__names_free(xm__names *ix) {
  if (!ix)
    return;
  free(ix->slot);
  free(ix);
}
