/* io/: the HDF5 plumbing of the readers (xm_hdf5.c). What a file may make
 * the reader do is bounded here (docs/io.md, issue 11):
 *   - only regular files are opened, read-only, with HDF5's error printing
 *     and its filter plugins off;
 *   - every link on a path is checked before anything follows it (hard
 *     links, and soft links within the file, at most 8 in a chain); an
 *     external or user-defined link, external raw storage or a virtual
 *     dataset (bytes outside the file) is refused;
 *   - a dataset's rank and declared size are checked, and the memory the
 *     declared sizes need is added to an estimate and refused past what the
 *     process can have, before anything is allocated;
 *   - data is read in pieces of about 4 MiB (whole chunks), strings checked
 *     as text as they are copied;
 *   - xm__read_file first runs the reader's body in a child process that
 *     reads the whole file the same way, keeping nothing, under a memory
 *     limit and a no-progress watchdog (the probe), so that HDF5 crashing,
 *     looping or allocating without end on a corrupt file becomes a message.
 * Every function that reports does so in the reader's xm__check (a contract
 * violation: XM_EFORMAT) or as an I/O error (XM_EIO). Internal to io/. */
#ifndef XM_HDF5_H
#define XM_HDF5_H

#include <stdint.h>

#include <hdf5.h>

#include "xm_validate.h"

/* A reader: the open file and what went wrong so far. */
typedef struct xm__rd {
  xm__check ck; /* the file's name as given, the diag, violations, failed allocations */
  hid_t fid;
  int io;                       /* files or reads HDF5 could not do */
  int probe;                    /* in the probe child: read everything, keep nothing */
  int progress_fd;              /* the child's pipe to the parent, -1 when none */
  int too_big;                  /* the memory estimate passed the limit: read no more */
  uint64_t mem_limit, mem_need; /* bytes the host has; bytes the file needs so far */
  H5E_auto2_t old_fn;
  void *old_data;
  int old_plugins;
} xm__rd;

/* A contract violation (XM_EFORMAT). */
void xm__bad(xm__rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A read HDF5 could not do: a corrupt or truncated file (XM_EIO). */
void xm__ioerr(xm__rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An allocation failed while reading `what` (XM_ENOMEM). */
void xm__nomem(xm__rd *r, const char *what);

/* Opens path, runs body(r, out) on it (r->probe says whether it is the
 * probe child's run), closes it. *out (size bytes) is zeroed first; on
 * failure it is freed with free_out and left zeroed. Returns XM_ENOMEM,
 * XM_EIO, XM_EFORMAT or XM_OK (that order), XM_EINVAL for NULL arguments. */
xm_status xm__read_file(const char *path, void *out, size_t size,
                        void (*body)(xm__rd *r, void *out), void (*free_out)(void *out),
                        xm_diag *diag);

/* 1 when path names an existing object of type want (H5I_GROUP or
 * H5I_DATASET); 0 when it is missing; -1 when it exists but is something
 * else; -2 after a message (a link that is refused). */
int xm__exists(xm__rd *r, const char *path, H5I_type_t want);

/* Opens dataset path and checks its links, storage, rank and declared size.
 * dims[1] is 1 for rank 1. Returns the dataset (the caller closes it) or -1
 * after one message. */
hid_t xm__open_dset(xm__rd *r, const char *path, int rank, hsize_t dims[2]);

/* Typed reads of the n rows of dataset did (path names it in messages) into
 * a fresh array *out (malloc; NULL in the probe, which reads them all the
 * same). Each returns 1, or 0 after a message with *out NULL. */
/* Strings (fixed or variable length), each checked as text. */
int xm__read_strings(xm__rd *r, const char *path, hid_t did, hsize_t n, char ***out);
/* Numbers as double, n x cols of them (cols 1 for rank 1). */
int xm__read_f64(xm__rd *r, const char *path, hid_t did, hsize_t n, hsize_t cols, double **out);
/* Integers (or whole floats) that fit int32. */
int xm__read_i32(xm__rd *r, const char *path, hid_t did, hsize_t n, int32_t **out);

/* Attribute name of object obj ("/" for the root): a string into a fresh
 * *out / a number into *out. Each returns 1 when read, 0 when missing (no
 * message), -1 after a message. */
int xm__attr_str(xm__rd *r, const char *obj, const char *name, char **out);
int xm__attr_f64(xm__rd *r, const char *obj, const char *name, double *out);

#endif
