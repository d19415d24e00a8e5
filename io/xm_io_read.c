/* io/: reading and validating portfolio and scenario files (FORMAT.md sections
 * 1 and 2). Every violation becomes one message "file: /dataset[row] = value:
 * rule" in the caller's xm_diag; sizes are checked before anything is
 * allocated; HDF5's own error printing is off while we read. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "xm_io.h"
#include "xm_portable.h"

/* Limits on what a dataset may declare: checked before any allocation. */
#define XM__MAX_ROWS ((hsize_t)INT32_MAX)    /* rows of any table (int32 indices) */
#define XM__MAX_ELEMS ((hsize_t)INT32_MAX)   /* elements of any one dataset */
#define XM__MAX_STR_BYTES ((hsize_t)1 << 30) /* bytes of one fixed-length string column */
#define XM__MAX_VLEN_STR ((size_t)1 << 20)   /* bytes of one variable-length string */
#define XM__MAX_NUM_SIZE 16                  /* bytes of one integer or float */
#define XM__MSG_CAP 1024
/* The probe child is killed when it reports no progress for this long. */
#define XM__PROBE_IDLE_MS 20000

enum { XM__STR = 0, XM__I32 = 1, XM__F64 = 2 };

/* A reader: the open file and what went wrong so far. */
typedef struct xm__rd {
  const char *file; /* the path as given: every message starts with it */
  hid_t fid;
  xm_diag *diag;
  int nerr;        /* contract violations */
  int io;          /* files or reads HDF5 could not do */
  int nomem;       /* allocations that failed */
  int probe;       /* in the probe child: strings only, report progress */
  int progress_fd; /* the child's pipe to the parent, -1 when none */
  H5E_auto2_t old_fn;
  void *old_data;
} xm__rd;

static void xm__vmsg(xm__rd *r, const char *fmt, va_list ap) {
  char buf[XM__MSG_CAP];
  vsnprintf(buf, sizeof buf, fmt, ap);
  xm_diag_add(r->diag, "%s: %s", r->file, buf);
}

/* A contract violation. */
static void xm__bad(xm__rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xm__bad(xm__rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  xm__vmsg(r, fmt, ap);
  va_end(ap);
  r->nerr++;
}

/* A read HDF5 could not do (corrupt or truncated file). */
static void xm__ioerr(xm__rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xm__ioerr(xm__rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  xm__vmsg(r, fmt, ap);
  va_end(ap);
  r->io++;
}

static void xm__nomem(xm__rd *r, const char *what) {
  xm_diag_add(r->diag, "%s: %s: out of memory", r->file, what);
  r->nomem++;
}

static xm_status xm__rd_status(const xm__rd *r) {
  if (r->nomem)
    return XM_ENOMEM;
  if (r->io)
    return XM_EIO;
  if (r->nerr)
    return XM_EFORMAT;
  return XM_OK;
}

static char *xm__strdup(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d)
    memcpy(d, s, n + 1);
  return d;
}

static void xm__free_strings(char **s, int64_t n) {
  if (!s)
    return;
  for (int64_t i = 0; i < n; i++)
    free(s[i]);
  free(s);
}

/* Opens path read-only with HDF5's error printing off. On failure r->fid < 0
 * and the message is in the diag (XM_EIO). The caller calls xm__rd_close. */
static xm_status xm__rd_open(xm__rd *r, const char *path, xm_diag *diag) {
  memset(r, 0, sizeof *r);
  r->file = path;
  r->diag = diag;
  r->fid = -1;
  r->progress_fd = -1;
  H5Eget_auto2(H5E_DEFAULT, &r->old_fn, &r->old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  FILE *f = fopen(path, "rb");
  if (!f) {
    xm__ioerr(r, "cannot open: %s", strerror(errno));
    return XM_EIO;
  }
  fclose(f);
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0) {
    xm__ioerr(r, "not an HDF5 file");
    return XM_EIO;
  }
  r->fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (r->fid < 0) {
    xm__ioerr(r, "HDF5 cannot open it (truncated or corrupt file?)");
    return XM_EIO;
  }
  return XM_OK;
}

static void xm__rd_close(xm__rd *r) {
  if (r->fid >= 0)
    H5Fclose(r->fid);
  r->fid = -1;
  H5Eset_auto2(H5E_DEFAULT, r->old_fn, r->old_data);
}

/* 1 when path names an existing object of type want (H5I_GROUP/H5I_DATASET);
 * 0 when it is missing; -1 when it exists but is something else. */
static void xm__progress(xm__rd *r, const char *path) {
  if (r->progress_fd < 0)
    return;
  char line[600];
  int n = snprintf(line, sizeof line, "%s\n", path);
  if (n > 0 &&
      write(r->progress_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
    r->progress_fd = -1;
}

static int xm__exists(xm__rd *r, const char *path, H5I_type_t want) {
  xm__progress(r, path);
  if (H5LTpath_valid(r->fid, path, 1) <= 0)
    return 0;
  hid_t o = H5Oopen(r->fid, path, H5P_DEFAULT);
  if (o < 0)
    return 0;
  H5I_type_t t = H5Iget_type(o);
  H5Oclose(o);
  return t == want ? 1 : -1;
}

/* Opens dataset path and checks its rank and size. dims[1] is 1 for rank 1.
 * Returns the dataset (caller closes) or -1 after one message. */
static hid_t xm__open_dset(xm__rd *r, const char *path, int rank, hsize_t dims[2]) {
  hid_t did = -1, sp = -1;
  int ex = xm__exists(r, path, H5I_DATASET);
  if (ex == 0) {
    xm__bad(r, "%s: required dataset is missing", path);
    return -1;
  }
  if (ex < 0) {
    xm__bad(r, "%s: must be a dataset, not a group or other object", path);
    return -1;
  }
  did = H5Dopen2(r->fid, path, H5P_DEFAULT);
  if (did < 0) {
    xm__ioerr(r, "%s: HDF5 cannot open the dataset", path);
    return -1;
  }
  sp = H5Dget_space(did);
  if (sp < 0) {
    xm__ioerr(r, "%s: HDF5 cannot read the dataspace", path);
    goto fail;
  }
  if (H5Sget_simple_extent_type(sp) != H5S_SIMPLE) {
    xm__bad(r, "%s: must be a %d-D array, not a scalar or empty dataspace", path, rank);
    goto fail;
  }
  hsize_t d[H5S_MAX_RANK];
  int nd = H5Sget_simple_extent_dims(sp, d, NULL);
  if (nd != rank) {
    xm__bad(r, "%s: has rank %d, must be %d-D", path, nd, rank);
    goto fail;
  }
  dims[0] = d[0];
  dims[1] = rank == 2 ? d[1] : 1;
  if (dims[0] > XM__MAX_ROWS) {
    xm__bad(r, "%s: declares %llu rows, more than the limit %llu", path,
            (unsigned long long)dims[0], (unsigned long long)XM__MAX_ROWS);
    goto fail;
  }
  if (dims[1] > XM__MAX_ROWS) {
    xm__bad(r, "%s: declares %llu columns, more than the limit %llu", path,
            (unsigned long long)dims[1], (unsigned long long)XM__MAX_ROWS);
    goto fail;
  }
  if (dims[1] != 0 && dims[0] > XM__MAX_ELEMS / dims[1]) {
    xm__bad(r, "%s: declares [%llu x %llu] elements, more than the limit %llu", path,
            (unsigned long long)dims[0], (unsigned long long)dims[1],
            (unsigned long long)XM__MAX_ELEMS);
    goto fail;
  }
  if (dims[0] * dims[1] > 0 && H5Dget_storage_size(did) == 0) {
    xm__bad(r, "%s: declares %llu rows but stores no data (never written)", path,
            (unsigned long long)dims[0]);
    goto fail;
  }
  H5Sclose(sp);
  return did;
fail:
  if (sp >= 0)
    H5Sclose(sp);
  H5Dclose(did);
  return -1;
}

/* HDF5's allocator for variable-length strings: refuses absurd lengths (a
 * corrupt length would otherwise make HDF5 copy gigabytes). */
static void *xm__vlen_alloc(size_t size, void *info) {
  (void)info;
  return size > XM__MAX_VLEN_STR + 1 ? NULL : malloc(size);
}

static void xm__vlen_free(void *p, void *info) {
  (void)info;
  free(p);
}

/* Copies the strings of a read buffer (fixed or variable) into fresh strdup'd
 * strings. Reads n strings of dataset or attribute obj (is_attr) into *out. */
static int xm__read_strings_obj(xm__rd *r, const char *path, hid_t obj, int is_attr, hsize_t n,
                                char ***out) {
  int ok = 0;
  hid_t ft = -1, mt = -1, sp = -1, dxpl = -1;
  char **res = NULL, **vbuf = NULL;
  char *fbuf = NULL;
  size_t got = 0;
  int vlen_read = 0;

  *out = NULL;
  xm__progress(r, path);
  ft = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
  if (ft < 0) {
    xm__ioerr(r, "%s: HDF5 cannot read the datatype", path);
    goto cleanup;
  }
  if (H5Tget_class(ft) != H5T_STRING) {
    xm__bad(r, "%s: must be a string, found a %s", path,
            H5Tget_class(ft) == H5T_INTEGER || H5Tget_class(ft) == H5T_FLOAT ? "number"
                                                                             : "non-string type");
    goto cleanup;
  }
  res = calloc(n ? n : 1, sizeof *res);
  if (!res) {
    xm__nomem(r, path);
    goto cleanup;
  }
  mt = H5Tcopy(H5T_C_S1);
  H5Tset_cset(mt, H5Tget_cset(ft));
  sp = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
  if (H5Tis_variable_str(ft) > 0) {
    H5Tset_size(mt, H5T_VARIABLE);
    vbuf = calloc(n ? n : 1, sizeof *vbuf);
    if (!vbuf) {
      xm__nomem(r, path);
      goto cleanup;
    }
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl >= 0)
      H5Pset_vlen_mem_manager(dxpl, xm__vlen_alloc, NULL, xm__vlen_free, NULL);
    herr_t e = is_attr ? H5Aread(obj, mt, vbuf)
                       : H5Dread(obj, mt, H5S_ALL, H5S_ALL, dxpl >= 0 ? dxpl : H5P_DEFAULT, vbuf);
    if (e < 0) {
      xm__ioerr(r, "%s: HDF5 cannot read the strings (corrupt, or one longer than %zu bytes)", path,
                XM__MAX_VLEN_STR);
      goto cleanup;
    }
    vlen_read = 1;
    for (got = 0; got < n; got++) {
      res[got] = xm__strdup(vbuf[got] ? vbuf[got] : "");
      if (!res[got]) {
        xm__nomem(r, path);
        goto cleanup;
      }
    }
  } else {
    size_t sz = H5Tget_size(ft);
    if (sz == 0 || (hsize_t)sz + 1 > XM__MAX_STR_BYTES || n > XM__MAX_STR_BYTES / (sz + 1)) {
      xm__bad(r, "%s: fixed-length strings of %zu bytes x %llu rows exceed the limit of %llu bytes",
              path, sz, (unsigned long long)n, (unsigned long long)XM__MAX_STR_BYTES);
      goto cleanup;
    }
    H5Tset_size(mt, sz + 1);
    H5Tset_strpad(mt, H5T_STR_NULLTERM);
    fbuf = calloc(n ? n : 1, sz + 1);
    if (!fbuf) {
      xm__nomem(r, path);
      goto cleanup;
    }
    herr_t e =
        is_attr ? H5Aread(obj, mt, fbuf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, fbuf);
    if (e < 0) {
      xm__ioerr(r, "%s: HDF5 cannot read the strings", path);
      goto cleanup;
    }
    for (got = 0; got < n; got++) {
      char *s = fbuf + got * (sz + 1);
      s[sz] = '\0';
      res[got] = xm__strdup(s);
      if (!res[got]) {
        xm__nomem(r, path);
        goto cleanup;
      }
    }
  }
  ok = 1;

cleanup:
  if (vlen_read) {
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mt, sp, dxpl >= 0 ? dxpl : H5P_DEFAULT, vbuf);
#else
    H5Dvlen_reclaim(mt, sp, dxpl >= 0 ? dxpl : H5P_DEFAULT, vbuf);
#endif
  }
  free(vbuf);
  free(fbuf);
  if (!ok) {
    xm__free_strings(res, (int64_t)got);
    res = NULL;
  }
  *out = res;
  if (sp >= 0)
    H5Sclose(sp);
  if (dxpl >= 0)
    H5Pclose(dxpl);
  if (mt >= 0)
    H5Tclose(mt);
  if (ft >= 0)
    H5Tclose(ft);
  return ok;
}

/* Checks that the datatype ft (closed here; < 0 if HDF5 could not read it) is
 * an integer or float of a supported size; otherwise a message saying the
 * column must be `what`. Returns 1 when it is; *cls (if not NULL) gets the class. */
static int xm__check_numeric(xm__rd *r, const char *path, hid_t ft, const char *what,
                             H5T_class_t *cls) {
  if (ft < 0) {
    xm__ioerr(r, "%s: HDF5 cannot read the datatype", path);
    return 0;
  }
  H5T_class_t c = H5Tget_class(ft);
  size_t tsize = H5Tget_size(ft);
  H5Tclose(ft);
  if (cls)
    *cls = c;
  if (c != H5T_INTEGER && c != H5T_FLOAT) {
    xm__bad(r, "%s: must be %s, found a %s", path, what,
            c == H5T_STRING ? "string" : "non-numeric type");
    return 0;
  }
  if (tsize == 0 || tsize > XM__MAX_NUM_SIZE) {
    xm__bad(r, "%s: a number of %zu bytes is not supported (corrupt datatype?)", path, tsize);
    return 0;
  }
  return 1;
}

/* Reads n numbers of dataset/attribute obj as double into a fresh array. */
static int xm__read_f64_obj(xm__rd *r, const char *path, hid_t obj, int is_attr, hsize_t n,
                            double **out) {
  *out = NULL;
  if (!xm__check_numeric(r, path, is_attr ? H5Aget_type(obj) : H5Dget_type(obj),
                         "numeric (an integer or float type)", NULL))
    return 0;
  double *v = malloc((n ? n : 1) * sizeof *v);
  if (!v) {
    xm__nomem(r, path);
    return 0;
  }
  herr_t e = is_attr ? H5Aread(obj, H5T_NATIVE_DOUBLE, v)
                     : H5Dread(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (e < 0) {
    free(v);
    xm__ioerr(r, "%s: HDF5 cannot read the values", path);
    return 0;
  }
  *out = v;
  return 1;
}

/* Reads n integers of dataset obj into a fresh int32 array; integer types are
 * converted by HDF5 through int64 and range-checked, float types must hold
 * whole numbers. */
static int xm__read_i32_dset(xm__rd *r, const char *path, hid_t did, hsize_t n, int32_t **out) {
  int ok = 0;
  int64_t *v = NULL;
  double *dv = NULL;
  int32_t *res = NULL;
  *out = NULL;
  H5T_class_t c;
  if (!xm__check_numeric(r, path, H5Dget_type(did), "an integer column", &c))
    return 0;
  res = malloc((n ? n : 1) * sizeof *res);
  if (!res) {
    xm__nomem(r, path);
    goto cleanup;
  }
  int bad = 0;
  if (c == H5T_INTEGER) {
    v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
      xm__nomem(r, path);
      goto cleanup;
    }
    if (H5Dread(did, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
      xm__ioerr(r, "%s: HDF5 cannot read the values", path);
      goto cleanup;
    }
    for (hsize_t i = 0; i < n; i++) {
      if (v[i] < INT32_MIN || v[i] > INT32_MAX) {
        xm__bad(r, "%s[%llu] = %lld: out of the 32-bit integer range", path, (unsigned long long)i,
                (long long)v[i]);
        bad = 1;
        res[i] = -1;
      } else {
        res[i] = (int32_t)v[i];
      }
    }
  } else {
    if (!xm__read_f64_obj(r, path, did, 0, n, &dv))
      goto cleanup;
    for (hsize_t i = 0; i < n; i++) {
      if (!isfinite(dv[i]) || dv[i] != floor(dv[i])) {
        xm__bad(r, "%s[%llu] = %g: must be an integer", path, (unsigned long long)i, dv[i]);
        bad = 1;
        res[i] = -1;
      } else if (dv[i] < (double)INT32_MIN || dv[i] > (double)INT32_MAX) {
        xm__bad(r, "%s[%llu] = %g: out of the 32-bit integer range", path, (unsigned long long)i,
                dv[i]);
        bad = 1;
        res[i] = -1;
      } else {
        res[i] = (int32_t)dv[i];
      }
    }
  }
  if (bad)
    goto cleanup;
  ok = 1;
cleanup:
  free(v);
  free(dv);
  if (!ok) {
    free(res);
    res = NULL;
  }
  *out = res;
  return ok;
}

/* ---- Attributes ---------------------------------------------------------- */

/* Opens root/group attribute name of object path ("/" for the root). Returns
 * the attribute, -1 when missing (no message), -2 after a message. */
static hid_t xm__open_attr(xm__rd *r, const char *obj, const char *name) {
  htri_t ex = H5Aexists_by_name(r->fid, obj, name, H5P_DEFAULT);
  if (ex <= 0)
    return -1;
  hid_t aid = H5Aopen_by_name(r->fid, obj, name, H5P_DEFAULT, H5P_DEFAULT);
  if (aid < 0) {
    xm__ioerr(r, "%s: attribute %s: HDF5 cannot open it", obj, name);
    return -2;
  }
  hid_t sp = H5Aget_space(aid);
  hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  H5S_class_t cls = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
  if (sp >= 0)
    H5Sclose(sp);
  if (cls == H5S_NULL || np != 1) {
    xm__bad(r, "%s: attribute %s: must hold one value, holds %lld", obj, name,
            cls == H5S_NULL ? 0LL : (long long)np);
    H5Aclose(aid);
    return -2;
  }
  return aid;
}

/* Reads string attribute name of obj into a fresh string *out. Returns 1 when
 * read, 0 when missing (*out NULL, no message), -1 after a message. */
static int xm__attr_str(xm__rd *r, const char *obj, const char *name, char **out) {
  *out = NULL;
  hid_t aid = xm__open_attr(r, obj, name);
  if (aid == -1)
    return 0;
  if (aid < 0)
    return -1;
  char what[512];
  snprintf(what, sizeof what, "%s: attribute %s", obj, name);
  char **s = NULL;
  int ok = xm__read_strings_obj(r, what, aid, 1, 1, &s);
  H5Aclose(aid);
  if (!ok)
    return -1;
  *out = s[0];
  free(s);
  return 1;
}

/* Reads numeric attribute name of obj into *out. Returns 1, 0 when missing,
 * -1 after a message. */
static int xm__attr_f64(xm__rd *r, const char *obj, const char *name, double *out) {
  hid_t aid = xm__open_attr(r, obj, name);
  if (aid == -1)
    return 0;
  if (aid < 0)
    return -1;
  char what[512];
  snprintf(what, sizeof what, "%s: attribute %s", obj, name);
  double *v = NULL;
  int ok = xm__read_f64_obj(r, what, aid, 1, 1, &v);
  H5Aclose(aid);
  if (!ok)
    return -1;
  *out = v[0];
  free(v);
  return 1;
}

/* Checks format and format_version of the root. Returns 0 when the file is
 * another kind of file (format present but different): stop there. */
static int xm__check_format(xm__rd *r, const char *want) {
  char *fmt = NULL;
  int cont = 1;
  int got = xm__attr_str(r, "/", "format", &fmt);
  if (got == 0)
    xm__bad(r, "/: attribute format is missing (must be \"%s\")", want);
  else if (got > 0 && strcmp(fmt, want) != 0) {
    xm__bad(r, "/: attribute format = '%.64s': must be \"%s\"", fmt, want);
    cont = 0;
  }
  free(fmt);
  double v = 0;
  got = xm__attr_f64(r, "/", "format_version", &v);
  if (got == 0)
    xm__bad(r, "/: attribute format_version is missing (must be 1)");
  else if (got > 0 && v != 1.0)
    xm__bad(r, "/: attribute format_version = %g: must be 1 (the version this xmargin reads)", v);
  return cont;
}

/* ---- Generic checks -------------------------------------------------------- */

/* 1 when s is a valid ISO date YYYY-MM-DD. */
static int xm__iso_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return 0;
  int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  int m = (s[5] - '0') * 10 + (s[6] - '0');
  int d = (s[8] - '0') * 10 + (s[9] - '0');
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
    return 0;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 0;
  return 1;
}

typedef struct xm__keyed {
  const char *s;
  int64_t i;
} xm__keyed;

static int xm__keyed_cmp(const void *a, const void *b) {
  const xm__keyed *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  if (c)
    return c;
  return (x->i > y->i) - (x->i < y->i);
}

/* Names in s[n] must be non-empty and unique. */
static void xm__check_names(xm__rd *r, const char *path, char **s, int64_t n, const char *what) {
  if (!s)
    return;
  for (int64_t i = 0; i < n; i++)
    if (s[i][0] == '\0')
      xm__bad(r, "%s[%lld] = '': %s must not be empty", path, (long long)i, what);
  if (n < 2)
    return;
  xm__keyed *k = malloc((size_t)n * sizeof *k);
  if (!k) {
    xm__nomem(r, path);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    k[i].s = s[i];
    k[i].i = i;
  }
  qsort(k, (size_t)n, sizeof *k, xm__keyed_cmp);
  int64_t first = 0;
  for (int64_t i = 1; i < n; i++) {
    if (strcmp(k[i].s, k[first].s) != 0) {
      first = i;
      continue;
    }
    if (k[i].s[0] != '\0')
      xm__bad(r, "%s[%lld] = '%.64s': duplicate %s (first at row %lld)", path, (long long)k[i].i,
              k[i].s, what, (long long)k[first].i);
  }
  free(k);
}

static void xm__check_finite(xm__rd *r, const char *path, const double *v, int64_t n) {
  if (!v)
    return;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      xm__bad(r, "%s[%lld] = %g: must be a finite number", path, (long long)i, v[i]);
}

/* Every element of a [rows x cols] matrix must be finite. */
static void xm__check_finite2(xm__rd *r, const char *path, const double *v, int64_t rows,
                              int64_t cols) {
  if (!v)
    return;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      if (!isfinite(v[i * cols + j]))
        xm__bad(r, "%s[%lld, %lld] = %g: must be a finite number", path, (long long)i, (long long)j,
                v[i * cols + j]);
}

/* ---- Tables ------------------------------------------------------------------ */

typedef struct xm__col {
  const char *name; /* column within the group */
  int type;         /* XM__STR, XM__I32, XM__F64 */
  void *dst;        /* char ***, int32_t ** or double **; left NULL on failure */
} xm__col;

/* Reads the 1-D columns of table group; all must have the same length, *n.
 * A column that is missing, of the wrong type or length is reported and left
 * NULL. Returns 1 when the group exists. */
static int xm__read_table(xm__rd *r, const char *group, xm__col *cols, int ncol, int64_t *n) {
  *n = 0;
  int ex = xm__exists(r, group, H5I_GROUP);
  if (ex == 0) {
    xm__bad(r, "%s: required group is missing", group);
    return 0;
  }
  if (ex < 0) {
    xm__bad(r, "%s: must be a group", group);
    return 0;
  }
  const char *ref = NULL;
  hsize_t ref_rows = 0;
  for (int c = 0; c < ncol; c++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", group, cols[c].name);
    hsize_t dims[2];
    hid_t did = xm__open_dset(r, path, 1, dims);
    if (did < 0)
      continue;
    if (!ref) {
      ref = cols[c].name;
      ref_rows = dims[0];
    } else if (dims[0] != ref_rows) {
      xm__bad(r, "%s: has %llu rows, but %s/%s has %llu (columns must have equal lengths)", path,
              (unsigned long long)dims[0], group, ref, (unsigned long long)ref_rows);
      H5Dclose(did);
      continue;
    }
    if (r->probe && cols[c].type != XM__STR) {
      H5Dclose(did); /* the probe reads only the structure and the strings */
      continue;
    }
    switch (cols[c].type) {
    case XM__STR:
      xm__read_strings_obj(r, path, did, 0, dims[0], (char ***)cols[c].dst);
      break;
    case XM__I32:
      xm__read_i32_dset(r, path, did, dims[0], (int32_t **)cols[c].dst);
      break;
    default:
      xm__read_f64_obj(r, path, did, 0, dims[0], (double **)cols[c].dst);
      break;
    }
    H5Dclose(did);
  }
  *n = (int64_t)ref_rows;
  return 1;
}

/* Checks that idx[n] are rows of a table of m rows (allow_neg: -1 means none). */
static void xm__check_index(xm__rd *r, const char *path, const int32_t *idx, int64_t n, int64_t m,
                            const char *table, int allow_none) {
  if (!idx)
    return;
  for (int64_t i = 0; i < n; i++) {
    if (allow_none && idx[i] == -1)
      continue;
    if (idx[i] < 0 || idx[i] >= m)
      xm__bad(r, "%s[%lld] = %d: index out of range: must be a row of %s (0..%lld)%s", path,
              (long long)i, idx[i], table, (long long)m - 1, allow_none ? " or -1 for none" : "");
  }
}

/* HDF5 1.10 can crash (SIGSEGV in H5HG_read) on corrupt variable-length
 * data instead of returning an error. So body() first reads the structure and
 * every string of the file in a child process (numbers skipped); if the child
 * dies, the object it was reading is named in an XM_EIO message and the real
 * read is skipped. A child that reports no progress for XM__PROBE_IDLE_MS is
 * killed (corrupt lengths can make HDF5 copy gigabytes). XM_IO_NO_PROBE=1 in
 * the environment turns the probe off. Returns 0 to go on (also when fork is
 * not possible), -1 after a message. */
static int xm__probe(xm__rd *r, void (*body)(xm__rd *r, void *arg), size_t size) {
  int fds[2];
  const char *off = getenv("XM_IO_NO_PROBE");
  if (off && *off && strcmp(off, "0") != 0)
    return 0;
  if (pipe(fds) != 0)
    return 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  if (pid == 0) {
    close(fds[0]);
    xm__rd c = *r;
    c.diag = NULL;
    c.probe = 1;
    c.progress_fd = fds[1];
    void *tmp = calloc(1, size);
    if (tmp)
      body(&c, tmp);
    _exit(0); /* no atexit handlers, no flushing of the parent's buffers */
  }
  close(fds[1]);
  char last[600] = "", cur[600];
  size_t len = 0;
  char buf[4096];
  int stuck = 0;
  for (;;) {
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int pr = poll(&pfd, 1, XM__PROBE_IDLE_MS);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr == 0) { /* no progress: HDF5 loops or allocates without end */
      stuck = 1;
      kill(pid, SIGKILL);
      break;
    }
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] == '\n') {
        cur[len] = '\0';
        memcpy(last, cur, len + 1);
        len = 0;
      } else if (len + 1 < sizeof cur) {
        cur[len++] = buf[i];
      }
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return 0;
  }
  if (stuck) {
    xm__ioerr(r, "%s: HDF5 made no progress for %d s reading it: the file is corrupt",
              last[0] ? last : "/", XM__PROBE_IDLE_MS / 1000);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    xm__ioerr(r, "%s: HDF5 crashed (signal %d) reading it: the file is corrupt",
              last[0] ? last : "/", WTERMSIG(status));
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { /* e.g. a sanitizer caught it */
    xm__ioerr(r, "%s: HDF5 failed (exit status %d) reading it: the file is corrupt",
              last[0] ? last : "/", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
  }
  return 0;
}

/* ---- Portfolio --------------------------------------------------------------- */

static int xm__is_option(int32_t t) { return t == XM_T_OPTION || t == XM_T_FUTURE_OPTION; }

static void xm__portfolio_validate(xm__rd *r, xm_portfolio *p) {
  /* factors */
  xm__check_names(r, "/factors/name", p->factor_name, p->n_factors, "factor name");
  xm__check_finite(r, "/factors/level", p->factor_level, p->n_factors);
  if (p->factor_level && p->factor_kind)
    for (int64_t i = 0; i < p->n_factors; i++)
      if (p->factor_kind[i] == XM_K_PRICE && isfinite(p->factor_level[i]) &&
          p->factor_level[i] <= 0)
        xm__bad(r, "/factors/level[%lld] = %g: level must be > 0 for a price factor", (long long)i,
                p->factor_level[i]);
  xm__check_names(r, "/silos/name", p->silo_name, p->n_silos, "silo name");

  /* instruments */
  int64_t ni = p->n_instruments;
  xm__check_names(r, "/instruments/id", p->inst_id, ni, "instrument id");
  xm__check_index(r, "/instruments/silo", p->inst_silo, ni, p->n_silos, "/silos/name", 0);
  xm__check_index(r, "/instruments/underlying", p->inst_underlying, ni, p->n_factors, "/factors",
                  0);
  xm__check_index(r, "/instruments/vol_factor", p->inst_vol_factor, ni, p->n_factors, "/factors",
                  1);
  if (p->factor_kind) {
    for (int64_t i = 0; i < ni; i++) {
      int32_t u = p->inst_underlying ? p->inst_underlying[i] : -1;
      if (u >= 0 && u < p->n_factors && p->factor_kind[u] != XM_K_PRICE)
        xm__bad(r,
                "/instruments/underlying[%lld] = %d: the underlying must be a price factor "
                "(factor '%.64s' is not)",
                (long long)i, u, p->factor_name ? p->factor_name[u] : "?");
      int32_t v = p->inst_vol_factor ? p->inst_vol_factor[i] : -1;
      if (v >= 0 && v < p->n_factors && p->factor_kind[v] != XM_K_VOL)
        xm__bad(r,
                "/instruments/vol_factor[%lld] = %d: the vol factor must be a vol factor "
                "(factor '%.64s' is not)",
                (long long)i, v, p->factor_name ? p->factor_name[v] : "?");
    }
  }
  xm__check_finite(r, "/instruments/strike", p->inst_strike, ni);
  xm__check_finite(r, "/instruments/expiry", p->inst_expiry, ni);
  xm__check_finite(r, "/instruments/implied_vol", p->inst_implied_vol, ni);
  xm__check_finite(r, "/instruments/rate", p->inst_rate, ni);
  xm__check_finite(r, "/instruments/dividend_yield", p->inst_dividend_yield, ni);
  xm__check_finite(r, "/instruments/multiplier", p->inst_multiplier, ni);
  for (int64_t i = 0; i < ni; i++) {
    if (p->inst_multiplier && isfinite(p->inst_multiplier[i]) && p->inst_multiplier[i] <= 0)
      xm__bad(r, "/instruments/multiplier[%lld] = %g: multiplier must be > 0", (long long)i,
              p->inst_multiplier[i]);
    if (!p->inst_type || !xm__is_option(p->inst_type[i]))
      continue;
    if (p->inst_strike && isfinite(p->inst_strike[i]) && p->inst_strike[i] <= 0)
      xm__bad(r, "/instruments/strike[%lld] = %g: strike must be > 0", (long long)i,
              p->inst_strike[i]);
    if (p->inst_expiry && isfinite(p->inst_expiry[i]) && p->inst_expiry[i] < 0)
      xm__bad(r, "/instruments/expiry[%lld] = %g: expiry must be >= 0", (long long)i,
              p->inst_expiry[i]);
    if (p->inst_implied_vol && isfinite(p->inst_implied_vol[i]) && p->inst_implied_vol[i] < 0)
      xm__bad(r, "/instruments/implied_vol[%lld] = %g: implied_vol must be >= 0", (long long)i,
              p->inst_implied_vol[i]);
    if (p->inst_call && p->inst_call[i] != 0 && p->inst_call[i] != 1)
      xm__bad(r, "/instruments/call[%lld] = %d: call must be 1 (call) or 0 (put)", (long long)i,
              p->inst_call[i]);
  }

  /* accounts and positions */
  xm__check_names(r, "/accounts/id", p->account_id, p->n_accounts, "account id");
  if (p->account_cross_margin)
    for (int64_t i = 0; i < p->n_accounts; i++)
      if (p->account_cross_margin[i] != 0 && p->account_cross_margin[i] != 1)
        xm__bad(r, "/accounts/cross_margin[%lld] = %d: cross_margin must be 0 or 1", (long long)i,
                p->account_cross_margin[i]);
  xm__check_index(r, "/positions/account", p->pos_account, p->n_positions, p->n_accounts,
                  "/accounts", 0);
  xm__check_index(r, "/positions/instrument", p->pos_instrument, p->n_positions, p->n_instruments,
                  "/instruments", 0);
  xm__check_finite(r, "/positions/quantity", p->pos_quantity, p->n_positions);
}

/* Maps the kind/type strings to codes; unknown ones are reported (code -1). */
static int32_t *xm__map_names(xm__rd *r, const char *path, char **s, int64_t n,
                              const char *const *names, int nn, const char *what) {
  if (!s)
    return NULL;
  int32_t *code = malloc((n ? (size_t)n : 1) * sizeof *code);
  if (!code) {
    xm__nomem(r, path);
    return NULL;
  }
  char allowed[256] = "";
  for (int k = 0; k < nn; k++) {
    size_t l = strlen(allowed);
    snprintf(allowed + l, sizeof allowed - l, "%s%s", k ? ", " : "", names[k]);
  }
  for (int64_t i = 0; i < n; i++) {
    code[i] = -1;
    for (int k = 0; k < nn; k++)
      if (strcmp(s[i], names[k]) == 0)
        code[i] = k;
    if (code[i] < 0)
      xm__bad(r, "%s[%lld] = '%.64s': unknown %s (must be one of %s)", path, (long long)i, s[i],
              what, allowed);
  }
  return code;
}

static const char *const xm__kind_names[] = {"price", "vol", "rate"};
static const char *const xm__type_names[] = {"spot", "future", "option", "future_option"};

void xm_portfolio_free(xm_portfolio *p) {
  if (!p)
    return;
  free(p->path);
  xm__free_strings(p->factor_name, p->n_factors);
  free(p->factor_kind);
  free(p->factor_level);
  xm__free_strings(p->silo_name, p->n_silos);
  xm__free_strings(p->inst_id, p->n_instruments);
  free(p->inst_type);
  free(p->inst_silo);
  free(p->inst_underlying);
  free(p->inst_vol_factor);
  free(p->inst_strike);
  free(p->inst_expiry);
  free(p->inst_call);
  free(p->inst_implied_vol);
  free(p->inst_rate);
  free(p->inst_dividend_yield);
  free(p->inst_multiplier);
  xm__free_strings(p->account_id, p->n_accounts);
  free(p->account_cross_margin);
  free(p->pos_account);
  free(p->pos_instrument);
  free(p->pos_quantity);
  memset(p, 0, sizeof *p);
}

static void xm__empty_table(xm__rd *r, int present, int64_t n, const char *group, const char *why) {
  if (present && n == 0)
    xm__bad(r, "%s: has no rows: %s", group, why);
}

/* Reads and validates the portfolio of r into *arg (an xm_portfolio). */
static void xm__portfolio_body(xm__rd *r, void *arg) {
  xm_portfolio *p = arg;
  char **kind_s = NULL, **type_s = NULL;
  char *s = NULL;
  if (!xm__check_format(r, "xmargin.portfolio"))
    goto cleanup;
  p->path = xm__strdup(r->file);
  if (!p->path) {
    xm__nomem(r, "path");
    goto cleanup;
  }

  /* root attributes */
  int got = xm__attr_str(r, "/", "valuation_date", &s);
  if (got == 0)
    xm__bad(r, "/: attribute valuation_date is missing (ISO YYYY-MM-DD)");
  else if (got > 0 && !xm__iso_date(s))
    xm__bad(r, "/: attribute valuation_date = '%.64s': must be an ISO date YYYY-MM-DD", s);
  else if (got > 0)
    snprintf(p->valuation_date, sizeof p->valuation_date, "%s", s);
  free(s);
  s = NULL;
  got = xm__attr_str(r, "/", "currency", &s);
  if (got == 0)
    xm__bad(r, "/: attribute currency is missing (e.g. USD)");
  else if (got > 0 && (s[0] == '\0' || strlen(s) >= sizeof p->currency))
    xm__bad(r, "/: attribute currency = '%.64s': must be 1 to %zu characters", s,
            sizeof p->currency - 1);
  else if (got > 0)
    snprintf(p->currency, sizeof p->currency, "%s", s);
  free(s);
  s = NULL;

  /* the tables */
  xm__col fcols[] = {{"name", XM__STR, &p->factor_name},
                     {"kind", XM__STR, &kind_s},
                     {"level", XM__F64, &p->factor_level}};
  int has = xm__read_table(r, "/factors", fcols, 3, &p->n_factors);
  xm__empty_table(r, has, p->n_factors, "/factors", "at least one risk factor is required");
  p->factor_kind =
      xm__map_names(r, "/factors/kind", kind_s, p->n_factors, xm__kind_names, 3, "factor kind");

  xm__col scols[] = {{"name", XM__STR, &p->silo_name}};
  has = xm__read_table(r, "/silos", scols, 1, &p->n_silos);
  xm__empty_table(r, has, p->n_silos, "/silos", "at least one silo is required");

  xm__col icols[] = {{"id", XM__STR, &p->inst_id},
                     {"type", XM__STR, &type_s},
                     {"silo", XM__I32, &p->inst_silo},
                     {"underlying", XM__I32, &p->inst_underlying},
                     {"vol_factor", XM__I32, &p->inst_vol_factor},
                     {"strike", XM__F64, &p->inst_strike},
                     {"expiry", XM__F64, &p->inst_expiry},
                     {"call", XM__I32, &p->inst_call},
                     {"implied_vol", XM__F64, &p->inst_implied_vol},
                     {"rate", XM__F64, &p->inst_rate},
                     {"dividend_yield", XM__F64, &p->inst_dividend_yield},
                     {"multiplier", XM__F64, &p->inst_multiplier}};
  has = xm__read_table(r, "/instruments", icols, 12, &p->n_instruments);
  xm__empty_table(r, has, p->n_instruments, "/instruments", "nothing to margin");
  p->inst_type = xm__map_names(r, "/instruments/type", type_s, p->n_instruments, xm__type_names, 4,
                               "instrument type");

  xm__col acols[] = {{"id", XM__STR, &p->account_id},
                     {"cross_margin", XM__I32, &p->account_cross_margin}};
  has = xm__read_table(r, "/accounts", acols, 2, &p->n_accounts);
  xm__empty_table(r, has, p->n_accounts, "/accounts", "nothing to margin");

  xm__col pcols[] = {{"account", XM__I32, &p->pos_account},
                     {"instrument", XM__I32, &p->pos_instrument},
                     {"quantity", XM__F64, &p->pos_quantity}};
  has = xm__read_table(r, "/positions", pcols, 3, &p->n_positions);
  xm__empty_table(r, has, p->n_positions, "/positions", "nothing to margin");

  if (!r->nomem && !r->io)
    xm__portfolio_validate(r, p);

cleanup:
  /* kind_s/type_s columns have the table's row count when read */
  xm__free_strings(kind_s, p->n_factors);
  xm__free_strings(type_s, p->n_instruments);
}

/* One file read: open, probe, body into *out (size bytes, zeroed first),
 * close; on failure *out is freed with free_out and left zeroed. */
static xm_status xm__read_file(const char *path, void *out, size_t size,
                               void (*body)(xm__rd *r, void *arg), void (*free_out)(void *),
                               xm_diag *diag) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, size);
  if (!path)
    return XM_EINVAL;
  xm__rd r;
  if (xm__rd_open(&r, path, diag) == XM_OK && xm__probe(&r, body, size) == 0)
    body(&r, out);
  xm__rd_close(&r);
  xm_status st = xm__rd_status(&r);
  if (st != XM_OK)
    free_out(out);
  return st;
}

static void xm__portfolio_free_v(void *p) { xm_portfolio_free(p); }

xm_status xm_portfolio_read(const char *path, xm_portfolio *out, xm_diag *diag) {
  return xm__read_file(path, out, sizeof *out, xm__portfolio_body, xm__portfolio_free_v, diag);
}

/* ---- Scenario file ------------------------------------------------------------ */

static void xm__set_free(xm_scenario_set *s) {
  free(s->name);
  xm__free_strings(s->factor, s->n_factors);
  free(s->shock);
  xm__free_strings(s->label, s->n_scenarios);
  free(s->weight);
  memset(s, 0, sizeof *s);
}

void xm_scenarios_free(xm_scenario_file *s) {
  if (!s)
    return;
  free(s->path);
  xm__free_strings(s->hist_factor, s->n_hfactors);
  xm__free_strings(s->hist_date, s->n_days);
  free(s->hist_return);
  if (s->sets)
    for (int64_t i = 0; i < s->n_sets; i++)
      xm__set_free(&s->sets[i]);
  free(s->sets);
  memset(s, 0, sizeof *s);
}

/* Reads a 1-D string list (path) of any length into *out, *n. */
static int xm__read_str_list(xm__rd *r, const char *path, char ***out, int64_t *n) {
  *out = NULL;
  *n = 0;
  hsize_t dims[2];
  hid_t did = xm__open_dset(r, path, 1, dims);
  if (did < 0)
    return 0;
  int ok = xm__read_strings_obj(r, path, did, 0, dims[0], out);
  H5Dclose(did);
  if (ok)
    *n = (int64_t)dims[0];
  return ok;
}

/* Reads a [rows x cols] float matrix; rows/cols are the expected sizes from
 * the lists named rname/cname (negative: unknown, not checked or read). */
static double *xm__read_matrix(xm__rd *r, const char *path, int64_t rows, int64_t cols,
                               const char *what) {
  hsize_t dims[2];
  hid_t did = xm__open_dset(r, path, 2, dims);
  if (did < 0)
    return NULL;
  double *v = NULL;
  if (rows < 0 || cols < 0) {
    /* the lists it must match are broken: nothing to check it against */
  } else if (dims[0] != (hsize_t)rows || dims[1] != (hsize_t)cols) {
    xm__bad(r, "%s: has shape [%llu x %llu], must be %s = [%lld x %lld]", path,
            (unsigned long long)dims[0], (unsigned long long)dims[1], what, (long long)rows,
            (long long)cols);
  } else if (!r->probe) {
    xm__read_f64_obj(r, path, did, 0, dims[0] * dims[1], &v);
  }
  H5Dclose(did);
  return v;
}

static void xm__read_history(xm__rd *r, xm_scenario_file *s) {
  int64_t nf = -1, nd = -1;
  if (!xm__read_str_list(r, "/history/factor", &s->hist_factor, &nf))
    nf = -1;
  else
    s->n_hfactors = nf;
  if (!xm__read_str_list(r, "/history/date", &s->hist_date, &nd))
    nd = -1;
  else
    s->n_days = nd;
  s->hist_return =
      xm__read_matrix(r, "/history/return", nd, nf, "[T x F_h] (lengths of date and factor)");
  if (nf == 0)
    xm__bad(r, "/history/factor: has no rows: the history must have at least one factor");
  if (nd == 0)
    xm__bad(r, "/history/date: has no rows: the history must have at least one day");
  xm__check_names(r, "/history/factor", s->hist_factor, s->n_hfactors, "factor name");
  for (int64_t t = 0; s->hist_date && t < s->n_days; t++) {
    if (!xm__iso_date(s->hist_date[t]))
      xm__bad(r, "/history/date[%lld] = '%.32s': must be an ISO date YYYY-MM-DD", (long long)t,
              s->hist_date[t]);
    else if (t > 0 && xm__iso_date(s->hist_date[t - 1]) &&
             strcmp(s->hist_date[t - 1], s->hist_date[t]) >= 0)
      xm__bad(r, "/history/date[%lld] = '%s': dates must be strictly increasing (previous '%s')",
              (long long)t, s->hist_date[t], s->hist_date[t - 1]);
  }
  xm__check_finite2(r, "/history/return", s->hist_return, s->n_days, s->n_hfactors);
}

static const char *const xm__measure_names[] = {"worst", "es", "var"};
static const char *const xm__reserved_sets[] = {"historical", "montecarlo", "montecarlo_stressed"};

static void xm__read_set(xm__rd *r, xm_scenario_set *set) {
  char g[768], path[1024];
  snprintf(g, sizeof g, "/sets/%s", set->name);
  for (size_t k = 0; k < sizeof xm__reserved_sets / sizeof xm__reserved_sets[0]; k++)
    if (strcmp(set->name, xm__reserved_sets[k]) == 0)
      xm__bad(r, "%s: set name '%s' is reserved for the sets xmargin generates", g, set->name);
  int64_t nf = -1, ns = -1;
  snprintf(path, sizeof path, "%s/factor", g);
  if (xm__read_str_list(r, path, &set->factor, &nf)) {
    set->n_factors = nf;
    if (nf == 0)
      xm__bad(r, "%s: has no rows: a set must move at least one factor", path);
    xm__check_names(r, path, set->factor, nf, "factor name");
  } else {
    nf = -1;
  }
  snprintf(path, sizeof path, "%s/label", g);
  if (xm__read_str_list(r, path, &set->label, &ns)) {
    set->n_scenarios = ns;
    if (ns == 0)
      xm__bad(r, "%s: has no rows: a set must have at least one scenario", path);
  } else {
    ns = -1;
  }
  snprintf(path, sizeof path, "%s/shock", g);
  set->shock = xm__read_matrix(r, path, ns, nf, "[S x F_s] (lengths of label and factor)");
  xm__check_finite2(r, path, set->shock, set->n_scenarios, set->n_factors);

  snprintf(path, sizeof path, "%s/weight", g);
  int ex = xm__exists(r, path, H5I_DATASET);
  if (ex < 0) {
    xm__bad(r, "%s: must be a dataset", path);
  } else if (ex > 0) {
    hsize_t dims[2];
    hid_t did = xm__open_dset(r, path, 1, dims);
    if (did >= 0) {
      if (ns >= 0 && dims[0] != (hsize_t)ns)
        xm__bad(r, "%s: has %llu rows, but %s/label has %lld (one weight per scenario)", path,
                (unsigned long long)dims[0], g, (long long)ns);
      else if (ns >= 0 && !r->probe)
        xm__read_f64_obj(r, path, did, 0, dims[0], &set->weight);
      H5Dclose(did);
    }
    for (int64_t i = 0; set->weight && i < ns; i++)
      if (!isfinite(set->weight[i]) || set->weight[i] < 0)
        xm__bad(r, "%s[%lld] = %g: weight must be finite and >= 0", path, (long long)i,
                set->weight[i]);
  }

  set->measure = XM_M_WORST;
  char *m = NULL;
  if (xm__attr_str(r, g, "measure", &m) > 0) {
    int found = -1;
    for (int k = 0; k < 3; k++)
      if (strcmp(m, xm__measure_names[k]) == 0)
        found = k;
    if (found < 0)
      xm__bad(r, "%s: attribute measure = '%.64s': must be one of worst, es, var", g, m);
    else
      set->measure = found;
  }
  free(m);
  set->confidence = NAN;
  double c = NAN;
  if (xm__attr_f64(r, g, "confidence", &c) > 0) {
    if (!(c > 0 && c < 1))
      xm__bad(r, "%s: attribute confidence = %g: confidence must be in (0, 1)", g, c);
    else
      set->confidence = c;
  }
}

typedef struct xm__names {
  char **s;
  size_t n, cap;
  int nomem;
} xm__names;

static herr_t xm__collect(hid_t gid, const char *name, const H5L_info_t *info, void *op) {
  (void)gid;
  (void)info;
  xm__names *l = op;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **s = realloc(l->s, cap * sizeof *s);
    if (!s) {
      l->nomem = 1;
      return 1; /* stop */
    }
    l->s = s;
    l->cap = cap;
  }
  l->s[l->n] = xm__strdup(name);
  if (!l->s[l->n]) {
    l->nomem = 1;
    return 1;
  }
  l->n++;
  return 0;
}

static int xm__strcmp_p(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void xm__read_sets(xm__rd *r, xm_scenario_file *s) {
  xm__names l = {0};
  hid_t gid = H5Gopen2(r->fid, "/sets", H5P_DEFAULT);
  if (gid < 0) {
    xm__ioerr(r, "/sets: HDF5 cannot open the group");
    return;
  }
  hsize_t idx = 0;
  if (H5Literate(gid, H5_INDEX_NAME, H5_ITER_INC, &idx, xm__collect, &l) < 0 && !l.nomem)
    xm__ioerr(r, "/sets: HDF5 cannot list the group");
  H5Gclose(gid);
  if (l.nomem) {
    xm__nomem(r, "/sets");
    goto cleanup;
  }
  /* keep the groups (other objects are ignored), sorted by name */
  size_t keep = 0;
  for (size_t i = 0; i < l.n; i++) {
    char path[768];
    snprintf(path, sizeof path, "/sets/%s", l.s[i]);
    if (xm__exists(r, path, H5I_GROUP) == 1)
      l.s[keep++] = l.s[i];
    else
      free(l.s[i]);
  }
  l.n = keep;
  if (l.n)
    qsort(l.s, l.n, sizeof *l.s, xm__strcmp_p);
  s->sets = calloc(l.n ? l.n : 1, sizeof *s->sets);
  if (!s->sets) {
    xm__nomem(r, "/sets");
    goto cleanup;
  }
  for (size_t i = 0; i < l.n; i++) {
    s->sets[i].name = l.s[i];
    l.s[i] = NULL;
    s->n_sets = (int64_t)i + 1;
    xm__read_set(r, &s->sets[i]);
  }
  if (l.n == 0)
    xm__bad(r, "/sets: holds no set group");
cleanup:
  for (size_t i = 0; i < l.n; i++)
    free(l.s[i]);
  free(l.s);
}

/* Reads and validates the scenario file of r into *arg (an xm_scenario_file). */
static void xm__scenarios_body(xm__rd *r, void *arg) {
  xm_scenario_file *s = arg;
  if (!xm__check_format(r, "xmargin.scenarios"))
    return;
  s->path = xm__strdup(r->file);
  if (!s->path) {
    xm__nomem(r, "path");
    return;
  }
  int hist = xm__exists(r, "/history", H5I_GROUP);
  int sets = xm__exists(r, "/sets", H5I_GROUP);
  if (hist < 0)
    xm__bad(r, "/history: must be a group");
  if (sets < 0)
    xm__bad(r, "/sets: must be a group");
  if (hist == 0 && sets == 0)
    xm__bad(r, "/: has neither /history nor /sets: no scenarios to run");
  if (hist > 0)
    xm__read_history(r, s);
  if (sets > 0 && !r->nomem)
    xm__read_sets(r, s);
}

static void xm__scenarios_free_v(void *s) { xm_scenarios_free(s); }

xm_status xm_scenarios_read(const char *path, xm_scenario_file *out, xm_diag *diag) {
  return xm__read_file(path, out, sizeof *out, xm__scenarios_body, xm__scenarios_free_v, diag);
}

/* ---- The kind of a file ----------------------------------------------------- */

/* Reads the root attribute format into *arg (a char *), "" if absent. */
static void xm__format_body(xm__rd *r, void *arg) {
  char **out = arg;
  xm_diag *d = r->diag;
  r->diag = NULL; /* missing or not a string: "" (an unknown kind), no message */
  xm__attr_str(r, "/", "format", out);
  r->diag = d;
  r->nerr = 0;
}

xm_status xm_file_format(const char *path, char *buf, size_t cap, xm_diag *diag) {
  if (!path || !buf || cap == 0)
    return XM_EINVAL;
  buf[0] = '\0';
  xm__rd r;
  char *s = NULL;
  if (xm__rd_open(&r, path, diag) == XM_OK && xm__probe(&r, xm__format_body, sizeof s) == 0)
    xm__format_body(&r, &s);
  if (s)
    snprintf(buf, cap, "%s", s);
  free(s);
  xm__rd_close(&r);
  return xm__rd_status(&r);
}
