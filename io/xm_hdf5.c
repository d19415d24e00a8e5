/* io/: the HDF5 plumbing of the readers (xm_hdf5.h says what is bounded
 * here and how). Everything that opens, walks or reads an HDF5 file for
 * xm_io_read.c is here; what the file must hold is the reader's
 * (xm_io_read.c, by the tables of xm_schema.c) and the validation's
 * (xm_validate.c). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <H5PLpublic.h>
#include <hdf5.h>

#include "xm_hdf5.h"
#include "xm_io.h"
#include "xm_schema.h"
#include "xm_validate.h"

/* Limits on what a dataset may declare: checked before any allocation. */
#define XM__MAX_ROWS ((hsize_t)INT32_MAX)    /* rows of any table (int32 indices) */
#define XM__MAX_ELEMS ((hsize_t)INT32_MAX)   /* elements of any one dataset */
#define XM__MAX_STR_BYTES ((hsize_t)1 << 30) /* bytes of one fixed-length string column */
#define XM__MAX_VLEN_STR ((size_t)1 << 20)   /* bytes of one variable-length string */
#define XM__MAX_NUM_SIZE 16                  /* bytes of one integer or float */
/* Rows read per H5Dread: about this many bytes (a whole number of chunks). */
#define XM__PIECE_BYTES ((hsize_t)4 << 20)
/* Variable-length strings per H5Dread: their bytes are not known before the
 * read, and each may have up to XM__MAX_VLEN_STR (512 MiB a piece at most). */
#define XM__VLEN_PIECE_ROWS ((hsize_t)512)
/* The probe child is killed when it reports no progress for this long. */
#define XM__PROBE_IDLE_MS 20000
/* Address space the probe child may add to what it has (HDF5's metadata,
 * chunk cache, one decompressed chunk, one piece). */
#define XM__PROBE_MEM ((uint64_t)1 << 30)
/* Bytes counted per string besides its characters (pointer, allocation). */
#define XM__STR_OVERHEAD 40

#if defined(__SANITIZE_ADDRESS__)
#define XM__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XM__ASAN 1
#endif
#endif

/* ---- Messages --------------------------------------------------------------------- */

void xm__bad(xm__rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  xm__vreport(&r->ck, fmt, ap);
  va_end(ap);
  r->ck.nerr++;
}

void xm__ioerr(xm__rd *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  xm__vreport(&r->ck, fmt, ap);
  va_end(ap);
  r->io++;
}

void xm__nomem(xm__rd *r, const char *what) { xm__check_nomem(&r->ck, what); }

static xm_status xm__rd_status(const xm__rd *r) {
  if (r->ck.nomem)
    return XM_ENOMEM;
  if (r->io)
    return XM_EIO;
  if (r->ck.nerr)
    return XM_EFORMAT;
  return XM_OK;
}

/* ---- The memory estimate ---------------------------------------------------------- */

/* Counts bytes the file's declared sizes need in memory before they are
 * allocated; past the host's memory a contract violation (exit 2) with the
 * estimate and the limit, and nothing more is read. Returns 1 to go on. */
static int xm__reserve(xm__rd *r, const char *path, hsize_t rows, uint64_t bytes) {
  if (r->too_big)
    return 0;
  r->mem_need += bytes;
  if (r->mem_need <= r->mem_limit)
    return 1;
  xm__bad(r,
          "%s: declares %llu rows: reading the file needs at least %llu bytes of memory, more "
          "than the %llu bytes this process can have (the least of MemAvailable, the cgroup "
          "limit and ulimit -v)",
          path, (unsigned long long)rows, (unsigned long long)r->mem_need,
          (unsigned long long)r->mem_limit);
  r->too_big = 1;
  return 0;
}

/* ---- Opening a file --------------------------------------------------------------- */

/* Sets up r for path: HDF5's error printing and plugin loading (a filter of a
 * file must never load a shared library) off until xm__rd_close. */
static void xm__rd_init(xm__rd *r, const char *path, xm_diag *diag) {
  memset(r, 0, sizeof *r);
  r->ck.file = path;
  r->ck.diag = diag;
  r->fid = -1;
  r->progress_fd = -1;
  r->mem_limit = xm_host_memory_limit();
  H5Eget_auto2(H5E_DEFAULT, &r->old_fn, &r->old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  unsigned state = 0;
  r->old_plugins = H5PLget_loading_state(&state) >= 0 ? (int)state : -1;
  H5PLset_loading_state(0);
}

/* 0 when path is a regular file that can be opened; else -1 after an XM_EIO
 * message (a FIFO, a device or a folder is refused before it is opened for
 * HDF5, which would block or read without end). */
static int xm__regular_file(xm__rd *r) {
  int fd = open(r->ck.file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    xm__ioerr(r, "cannot open: %s", strerror(errno));
    return -1;
  }
  struct stat st;
  int ok = fstat(fd, &st) == 0;
  close(fd);
  if (!ok || !S_ISREG(st.st_mode)) {
    xm__ioerr(r, "not a regular file (%s): refused",
              !ok                                          ? strerror(errno)
              : S_ISFIFO(st.st_mode)                       ? "a FIFO"
              : S_ISDIR(st.st_mode)                        ? "a folder"
              : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                           : "a socket or other special file");
    return -1;
  }
  return 0;
}

/* Opens r->ck.file read-only. On failure r->fid < 0 and the message is in the
 * diag (XM_EIO). The caller calls xm__rd_close. */
static xm_status xm__rd_open(xm__rd *r) {
  htri_t is = H5Fis_hdf5(r->ck.file);
  if (is <= 0) {
    xm__ioerr(r, "not an HDF5 file");
    return XM_EIO;
  }
  r->fid = H5Fopen(r->ck.file, H5F_ACC_RDONLY, H5P_DEFAULT);
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
  if (r->old_plugins >= 0)
    H5PLset_loading_state((unsigned)r->old_plugins);
}

/* ---- Links, objects, storage ------------------------------------------------------ */

/* In the probe child: tells the parent which object is being read now. */
static void xm__progress(xm__rd *r, const char *path) {
  if (r->progress_fd < 0)
    return;
  char line[XM__PATH_CAP + 4];
  int n = snprintf(line, sizeof line, "P %s\n", path);
  if (n > 0 &&
      write(r->progress_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
    r->progress_fd = -1;
}

/* Checks every link on path before anything follows it: hard links pass, a
 * soft link passes when its target (a path in the same file) does, an
 * external or user-defined link is refused with a message (its bytes live
 * in another file: reading them would let a portfolio read any local file).
 * Returns 1 when every link exists and passes, 0 when one is missing, -1
 * after a message. */
static int xm__links_ok(xm__rd *r, const char *path, int depth) {
  if (depth > 8) {
    xm__bad(r, "%s: more than 8 soft links in a chain: refused", path);
    return -1;
  }
  size_t len = strlen(path);
  if (len >= XM__PATH_CAP) {
    xm__bad(r, "%.64s...: an object path of %zu bytes is longer than %d", path, len,
            XM__PATH_CAP - 1);
    return -1;
  }
  char pre[XM__PATH_CAP];
  for (size_t i = 1; i <= len; i++) {
    if (i < len && path[i] != '/')
      continue;
    memcpy(pre, path, i);
    pre[i] = '\0';
    if (pre[i - 1] == '/')
      continue; /* "//" or a trailing "/" */
    if (H5Lexists(r->fid, pre, H5P_DEFAULT) <= 0)
      return 0;
    H5L_info_t li;
    if (H5Lget_info(r->fid, pre, &li, H5P_DEFAULT) < 0) {
      xm__ioerr(r, "%s: HDF5 cannot read the link", pre);
      return -1;
    }
    if (li.type == H5L_TYPE_HARD)
      continue;
    char val[XM__PATH_CAP] = "";
    size_t vs = li.u.val_size < sizeof val ? li.u.val_size : sizeof val;
    if (li.type == H5L_TYPE_SOFT) {
      if (li.u.val_size >= sizeof val || H5Lget_val(r->fid, pre, val, vs, H5P_DEFAULT) < 0) {
        xm__bad(r, "%s: a soft link whose target cannot be read: refused", pre);
        return -1;
      }
      val[sizeof val - 1] = '\0';
      char target[XM__PATH_CAP];
      if (val[0] == '/') {
        snprintf(target, sizeof target, "%s", val);
      } else { /* relative to the group that holds the link */
        const char *slash = strrchr(pre, '/');
        int plen = (int)(slash - pre);
        if (snprintf(target, sizeof target, "%.*s/%s", plen, pre, val) >= (int)sizeof target) {
          xm__bad(r, "%s: a soft link target longer than %d bytes: refused", pre, XM__PATH_CAP - 1);
          return -1;
        }
      }
      int ok = xm__links_ok(r, target, depth + 1);
      if (ok <= 0)
        return ok;
      continue;
    }
    const char *file = NULL, *obj = NULL;
    unsigned flags = 0;
    if (li.type == H5L_TYPE_EXTERNAL && H5Lget_val(r->fid, pre, val, vs, H5P_DEFAULT) >= 0 &&
        H5Lunpack_elink_val(val, vs, &flags, &file, &obj) >= 0 && file && obj)
      xm__bad(r,
              "%s: an external link to %.128s in file '%.200s': data outside the file is "
              "refused",
              pre, obj, file);
    else
      xm__bad(r, "%s: an %s link (data outside the file): refused", pre,
              li.type == H5L_TYPE_EXTERNAL ? "external" : "user-defined");
    return -1;
  }
  return 1;
}

/* 1 when path names an existing object of type want (H5I_GROUP/H5I_DATASET);
 * 0 when it is missing; -1 when it exists but is something else; -2 after a
 * message (a link that is refused). */
int xm__exists(xm__rd *r, const char *path, H5I_type_t want) {
  xm__progress(r, path);
  int ok = xm__links_ok(r, path, 0);
  if (ok < 0)
    return -2;
  if (ok == 0)
    return 0;
  hid_t o = H5Oopen(r->fid, path, H5P_DEFAULT);
  if (o < 0)
    return 0;
  H5I_type_t t = H5Iget_type(o);
  H5Oclose(o);
  return t == want ? 1 : -1;
}

/* The dataset's bytes must live in the file: no external raw storage, no
 * virtual dataset. 1 when they do, 0 after a message. */
static int xm__storage_local(xm__rd *r, const char *path, hid_t did) {
  hid_t dcpl = H5Dget_create_plist(did);
  if (dcpl < 0) {
    xm__ioerr(r, "%s: HDF5 cannot read the dataset's creation properties", path);
    return 0;
  }
  int ok = 1;
  H5D_layout_t lay = H5Pget_layout(dcpl);
  int next = H5Pget_external_count(dcpl);
  if (lay == H5D_VIRTUAL) {
    xm__bad(r, "%s: a virtual dataset (its data lives in other files): refused", path);
    ok = 0;
  } else if (next != 0) {
    char name[256] = "";
    off_t off = 0;
    hsize_t size = 0;
    if (next > 0)
      H5Pget_external(dcpl, 0, sizeof name, name, &off, &size);
    name[sizeof name - 1] = '\0';
    xm__bad(r,
            "%s: stores its data in the external file '%.200s': data outside the file is "
            "refused",
            path, name);
    ok = 0;
  } else if (lay < 0) {
    xm__ioerr(r, "%s: HDF5 cannot read the dataset's layout", path);
    ok = 0;
  }
  H5Pclose(dcpl);
  return ok;
}

/* Opens dataset path and checks its links, storage, rank and size. dims[1]
 * is 1 for rank 1. Returns the dataset (caller closes) or -1 after one
 * message. */
hid_t xm__open_dset(xm__rd *r, const char *path, int rank, hsize_t dims[2]) {
  hid_t did = -1, sp = -1;
  int ex = xm__exists(r, path, H5I_DATASET);
  if (ex == -2)
    return -1;
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
  if (!xm__storage_local(r, path, did))
    goto fail;
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

/* ---- Reading a dataset in pieces -------------------------------------------------- */

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

/* Rows of a dataset per read: about XM__PIECE_BYTES, rounded up to whole
 * chunks (no chunk decompressed twice) while that stays under 64 pieces. */
static hsize_t xm__piece_rows(hid_t did, hsize_t rows, hsize_t row_bytes) {
  hsize_t per = row_bytes ? XM__PIECE_BYTES / row_bytes : rows;
  if (per < 1)
    per = 1;
  hid_t dcpl = H5Dget_create_plist(did);
  if (dcpl >= 0) {
    hsize_t cd[H5S_MAX_RANK];
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, H5S_MAX_RANK, cd) >= 1 &&
        cd[0] > 0 && cd[0] * row_bytes <= 64 * XM__PIECE_BYTES)
      per = (per + cd[0] - 1) / cd[0] * cd[0];
    H5Pclose(dcpl);
  }
  return per < rows ? per : rows;
}

/* Called after each piece of rows [r0, r0 + n) was read into buf (failed: the
 * read failed part way; buf holds what HDF5 allocated). 0 to go on. */
typedef int (*xm__piece_fn)(void *arg, void *buf, hsize_t r0, hsize_t n, int failed);

/* Reads the rows of dataset did ([rows x cols], rank 1 or 2) as memory type mt,
 * row_bytes a row, in pieces (at most per_cap rows when not 0): into dst when
 * not NULL, else into a scratch piece handed to each (or dropped: the probe).
 * Reports progress before every piece. Returns 1, or 0 after a message. */
static int xm__read_rows(xm__rd *r, const char *path, hid_t did, hid_t mt, hid_t dxpl, hsize_t rows,
                         hsize_t cols, size_t row_bytes, void *dst, xm__piece_fn each, void *arg,
                         hsize_t per_cap) {
  int ok = 0;
  hid_t fsp = H5Dget_space(did);
  void *scratch = NULL;
  int rank = fsp >= 0 ? H5Sget_simple_extent_ndims(fsp) : -1;
  if (rank < 1 || rank > 2) {
    xm__ioerr(r, "%s: HDF5 cannot read the dataspace", path);
    goto cleanup;
  }
  hsize_t per = xm__piece_rows(did, rows, row_bytes);
  if (per_cap && per > per_cap)
    per = per_cap;
  if (!dst && rows > 0) {
    scratch = malloc((size_t)(per * row_bytes));
    if (!scratch) {
      xm__nomem(r, path);
      goto cleanup;
    }
  }
  for (hsize_t r0 = 0; r0 < rows; r0 += per) {
    hsize_t n = rows - r0 < per ? rows - r0 : per;
    hsize_t start[2] = {r0, 0}, count[2] = {n, cols};
    void *buf = dst ? (char *)dst + r0 * row_bytes : scratch;
    xm__progress(r, path);
    if (each)
      memset(buf, 0, (size_t)(n * row_bytes));
    hid_t msp = H5Screate_simple(rank, count, NULL);
    herr_t e = msp < 0 || H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0
                   ? -1
                   : H5Dread(did, mt, msp, fsp, dxpl, buf);
    if (msp >= 0)
      H5Sclose(msp);
    if (e < 0) {
      if (each)
        each(arg, buf, r0, n, 1);
      xm__ioerr(r, "%s: HDF5 cannot read rows %llu..%llu (corrupt file?)", path,
                (unsigned long long)r0, (unsigned long long)(r0 + n - 1));
      goto cleanup;
    }
    if (each && each(arg, buf, r0, n, 0) != 0)
      goto cleanup;
  }
  ok = 1;
cleanup:
  free(scratch);
  if (fsp >= 0)
    H5Sclose(fsp);
  return ok;
}

/* ---- Strings ---------------------------------------------------------------------- */

/* One string of a read: copied (parent) after its text is checked. */
typedef struct xm__strs {
  xm__rd *r;
  const char *path;
  char **res;     /* [n] or NULL in the probe */
  size_t sz;      /* fixed length, 0 for variable-length */
  hsize_t n_done; /* strings copied */
  int is_attr;
} xm__strs;

static int xm__take_string(xm__strs *t, hsize_t row, const char *s) {
  size_t at = 0;
  const char *rule = xm__text_rule(s, &at);
  if (rule) {
    if (t->is_attr)
      xm__bad(t->r, "%s: %s (byte %zu): must be ASCII or UTF-8 text", t->path, rule, at);
    else
      xm__bad(t->r, "%s[%llu]: %s (byte %zu): must be ASCII or UTF-8 text", t->path,
              (unsigned long long)row, rule, at);
    s = "?"; /* never shown or used: the file is refused */
  }
  if (!t->res)
    return 0;
  if (!(t->res[row] = xm__strdup(s))) {
    xm__nomem(t->r, t->path);
    return -1;
  }
  t->n_done = row + 1;
  return 0;
}

static int xm__piece_vlen(void *arg, void *buf, hsize_t r0, hsize_t n, int failed) {
  xm__strs *t = arg;
  char **v = buf;
  int st = 0;
  for (hsize_t i = 0; i < n; i++) {
    if (!failed && st == 0 && t->res)
      st = xm__take_string(t, r0 + i, v[i] ? v[i] : "");
    free(v[i]); /* allocated by xm__vlen_alloc (also when the read failed part way) */
    v[i] = NULL;
  }
  return st;
}

static int xm__piece_fixed(void *arg, void *buf, hsize_t r0, hsize_t n, int failed) {
  xm__strs *t = arg;
  if (failed || !t->res)
    return 0;
  for (hsize_t i = 0; i < n; i++) {
    char *s = (char *)buf + i * (t->sz + 1);
    s[t->sz] = '\0';
    if (xm__take_string(t, r0 + i, s) != 0)
      return -1;
  }
  return 0;
}

/* Reads the n strings of dataset or attribute obj (is_attr) into fresh
 * strings *out (NULL in the probe, which reads them all the same). */
static int xm__read_strings_obj(xm__rd *r, const char *path, hid_t obj, int is_attr, hsize_t n,
                                char ***out) {
  int ok = 0;
  hid_t ft = -1, mt = -1, dxpl = -1;
  void *abuf = NULL;
  xm__strs t = {r, path, NULL, 0, 0, is_attr};

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
  int vlen = H5Tis_variable_str(ft) > 0;
  t.sz = vlen ? 0 : H5Tget_size(ft);
  if (!vlen &&
      (t.sz == 0 || (hsize_t)t.sz + 1 > XM__MAX_STR_BYTES || n > XM__MAX_STR_BYTES / (t.sz + 1))) {
    xm__bad(r, "%s: fixed-length strings of %zu bytes x %llu rows exceed the limit of %llu bytes",
            path, t.sz, (unsigned long long)n, (unsigned long long)XM__MAX_STR_BYTES);
    goto cleanup;
  }
  if (!xm__reserve(r, path, n, n * (XM__STR_OVERHEAD + t.sz)))
    goto cleanup;
  if (!r->probe || is_attr) { /* the probe keeps attributes: the body uses them */
    t.res = calloc(n ? n : 1, sizeof *t.res);
    if (!t.res) {
      xm__nomem(r, path);
      goto cleanup;
    }
  }
  mt = H5Tcopy(H5T_C_S1);
  H5Tset_cset(mt, H5Tget_cset(ft));
  if (vlen) {
    H5Tset_size(mt, H5T_VARIABLE);
  } else {
    H5Tset_size(mt, t.sz + 1);
    H5Tset_strpad(mt, H5T_STR_NULLTERM);
  }
  size_t row_bytes = vlen ? sizeof(char *) : t.sz + 1;
  if (is_attr) { /* one value (xm__open_attr checked) */
    abuf = calloc(1, row_bytes);
    if (!abuf) {
      xm__nomem(r, path);
      goto cleanup;
    }
    herr_t e = H5Aread(obj, mt, abuf);
    if ((vlen ? xm__piece_vlen : xm__piece_fixed)(&t, abuf, 0, 1, e < 0) != 0)
      goto cleanup;
    if (e < 0) {
      xm__ioerr(r, "%s: HDF5 cannot read the string", path);
      goto cleanup;
    }
  } else {
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0 || H5Pset_vlen_mem_manager(dxpl, xm__vlen_alloc, NULL, xm__vlen_free, NULL) < 0) {
      xm__ioerr(r, "%s: HDF5 cannot set up the read", path);
      goto cleanup;
    }
    if (!xm__read_rows(r, path, obj, mt, dxpl, n, 1, row_bytes, NULL,
                       vlen ? xm__piece_vlen : xm__piece_fixed, &t,
                       vlen ? XM__VLEN_PIECE_ROWS : 0)) {
      if (vlen && !r->io)
        xm__ioerr(r, "%s: (or a string longer than %zu bytes)", path, XM__MAX_VLEN_STR);
      goto cleanup;
    }
  }
  ok = 1;

cleanup:
  free(abuf);
  if (!ok) {
    xm__free_strings(t.res, (int64_t)t.n_done);
    t.res = NULL;
  }
  *out = t.res;
  if (dxpl >= 0)
    H5Pclose(dxpl);
  if (mt >= 0)
    H5Tclose(mt);
  if (ft >= 0)
    H5Tclose(ft);
  return ok;
}

/* ---- Numbers ---------------------------------------------------------------------- */

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

/* Reads n x cols numbers of a dataset (cols 1: rank 1) or the one of an
 * attribute as double into a fresh array (NULL in the probe). */
static int xm__read_f64_obj(xm__rd *r, const char *path, hid_t obj, int is_attr, hsize_t n,
                            hsize_t cols, double **out) {
  *out = NULL;
  if (!xm__check_numeric(r, path, is_attr ? H5Aget_type(obj) : H5Dget_type(obj),
                         "numeric (an integer or float type)", NULL))
    return 0;
  if (!xm__reserve(r, path, n, n * cols * sizeof(double)))
    return 0;
  double *v = NULL;
  if (!r->probe || is_attr) {
    v = malloc((size_t)(n * cols > 0 ? n * cols : 1) * sizeof *v);
    if (!v) {
      xm__nomem(r, path);
      return 0;
    }
  }
  int ok = is_attr ? H5Aread(obj, H5T_NATIVE_DOUBLE, v) >= 0
                   : xm__read_rows(r, path, obj, H5T_NATIVE_DOUBLE, H5P_DEFAULT, n, cols,
                                   (size_t)cols * sizeof(double), v, NULL, NULL, 0);
  if (!ok) {
    free(v);
    if (is_attr)
      xm__ioerr(r, "%s: HDF5 cannot read the value", path);
    return 0;
  }
  if (r->probe && !is_attr) {
    free(v);
    v = NULL;
  }
  *out = v;
  return 1;
}

int xm__read_strings(xm__rd *r, const char *path, hid_t did, hsize_t n, char ***out) {
  return xm__read_strings_obj(r, path, did, 0, n, out);
}

int xm__read_f64(xm__rd *r, const char *path, hid_t did, hsize_t n, hsize_t cols, double **out) {
  return xm__read_f64_obj(r, path, did, 0, n, cols, out);
}

/* Integer columns, piece by piece: HDF5 converts integer types to int64 and
 * float types to double; values are range-checked into int32. */
typedef struct xm__i32s {
  xm__rd *r;
  const char *path;
  int32_t *res;
  int is_int, bad;
} xm__i32s;

static int xm__piece_i32(void *arg, void *buf, hsize_t r0, hsize_t n, int failed) {
  xm__i32s *t = arg;
  if (failed || !t->res)
    return 0;
  for (hsize_t k = 0; k < n; k++) {
    hsize_t i = r0 + k;
    int32_t v = -1;
    const char *rule = NULL;
    if (t->is_int) {
      int64_t x = ((const int64_t *)buf)[k];
      if (x < INT32_MIN || x > INT32_MAX)
        xm__bad(t->r, "%s[%llu] = %lld: %s", t->path, (unsigned long long)i, (long long)x,
                rule = "out of the 32-bit integer range");
      else
        v = (int32_t)x;
    } else {
      double x = ((const double *)buf)[k];
      if (!isfinite(x) || x != floor(x) || x < (double)INT32_MIN || x > (double)INT32_MAX)
        xm__bad(t->r, "%s[%llu] = %g: %s", t->path, (unsigned long long)i, x,
                rule = !isfinite(x) || x != floor(x) ? "must be an integer"
                                                     : "out of the 32-bit integer range");
      else
        v = (int32_t)x;
    }
    t->bad |= rule != NULL;
    t->res[i] = v;
  }
  return 0;
}

/* Reads n integers of dataset did into a fresh int32 array (NULL in the
 * probe); a value out of range or not whole is reported. */
int xm__read_i32(xm__rd *r, const char *path, hid_t did, hsize_t n, int32_t **out) {
  *out = NULL;
  H5T_class_t c;
  if (!xm__check_numeric(r, path, H5Dget_type(did), "an integer column", &c))
    return 0;
  if (!xm__reserve(r, path, n, n * sizeof(int32_t)))
    return 0;
  xm__i32s t = {r, path, NULL, c == H5T_INTEGER, 0};
  if (!r->probe) {
    t.res = malloc((n ? n : 1) * sizeof *t.res);
    if (!t.res) {
      xm__nomem(r, path);
      return 0;
    }
  }
  int ok = xm__read_rows(r, path, did, t.is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, H5P_DEFAULT,
                         n, 1, 8, NULL, xm__piece_i32, &t, 0);
  if (!ok || t.bad) {
    free(t.res);
    return 0;
  }
  *out = t.res;
  return 1;
}
/* ---- Attributes -------------------------------------------------------------------- */

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
int xm__attr_str(xm__rd *r, const char *obj, const char *name, char **out) {
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
int xm__attr_f64(xm__rd *r, const char *obj, const char *name, double *out) {
  hid_t aid = xm__open_attr(r, obj, name);
  if (aid == -1)
    return 0;
  if (aid < 0)
    return -1;
  char what[512];
  snprintf(what, sizeof what, "%s: attribute %s", obj, name);
  double *v = NULL;
  int ok = xm__read_f64_obj(r, what, aid, 1, 1, 1, &v);
  H5Aclose(aid);
  if (!ok)
    return -1;
  *out = v[0];
  free(v);
  return 1;
}

/* ---- The probe -------------------------------------------------------------------- */

/* The probe child's address space: what it has plus XM__PROBE_MEM, so that a
 * corrupt size making HDF5 allocate without end fails there. Not under
 * AddressSanitizer, whose shadow memory needs terabytes of address space. */
static void xm__probe_limit_memory(void) {
#ifndef XM__ASAN
  uint64_t used = xm_address_space_used();
  struct rlimit rl;
  if (used == 0 || getrlimit(RLIMIT_AS, &rl) != 0)
    return;
  rlim_t want = (rlim_t)(used + XM__PROBE_MEM);
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_AS, &rl);
  }
#endif
}

/* HDF5 1.10 can crash (SIGSEGV in H5HG_read), loop or allocate without end on
 * a corrupt file instead of returning an error. So body() first runs in a
 * child process that opens the file itself and reads all of it, piece by
 * piece as the real read will, keeping nothing, under a memory limit
 * (xm__probe_limit_memory); it reports each piece it starts ("P path") and,
 * when a read failed, the first message ("E text", exit status 3). The child
 * is killed when it reports nothing for XM__PROBE_IDLE_MS. A child that died,
 * hung or failed becomes an XM_EIO message naming the object it was reading,
 * and the real read is skipped; a child that read everything means the real
 * read (the same reads of the same bytes) cannot crash or hang either.
 * XM_IO_NO_PROBE=1 in the environment turns the probe off. Returns 0 to go on
 * (also when fork is not possible), -1 after a message. */
static int xm__probe(xm__rd *r, void (*body)(xm__rd *r, void *arg), size_t size) {
  int fds[2];
  const char *off = getenv("XM_IO_NO_PROBE");
  if (off && *off && strcmp(off, "0") != 0)
    return 0;
  if (pipe(fds) != 0)
    return 0;
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  if (pid == 0) {
    /* never outlive the reader: a child stuck in HDF5 dies with its parent */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(5);
    close(fds[0]);
    xm_diag d = {0};
    xm__rd c = *r;
    c.ck.diag = &d;
    c.probe = 1;
    c.progress_fd = fds[1];
    xm__probe_limit_memory();
    xm__progress(&c, "/");
    void *tmp = calloc(1, size);
    if (tmp && xm__rd_open(&c) == XM_OK)
      body(&c, tmp);
    if (c.io || c.ck.nomem) {
      /* the message less its "file: " (the parent adds it), on one line */
      const char *m = d.shown ? d.msg[0] : "read failed";
      size_t fl = strlen(r->ck.file);
      if (strncmp(m, r->ck.file, fl) == 0 && m[fl] == ':' && m[fl + 1] == ' ')
        m += fl + 2;
      char line[XM__MSG_CAP + 4];
      size_t n = 0;
      line[n++] = 'E';
      line[n++] = ' ';
      for (; *m && n + 2 < sizeof line; m++)
        line[n++] = *m == '\n' ? ' ' : *m;
      line[n++] = '\n';
      if (write(fds[1], line, n) < 0)
        _exit(4);
      _exit(3);
    }
    _exit(0); /* no atexit handlers, no flushing of the parent's buffers */
  }
  close(fds[1]);
  char last[XM__MSG_CAP + 4] = "", err[XM__MSG_CAP + 4] = "", cur[XM__MSG_CAP + 4];
  size_t len = 0;
  char buf[4096];
  int stuck = 0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double deadline = (double)now.tv_sec + 1e-9 * (double)now.tv_nsec + XM__PROBE_IDLE_MS / 1000.0;
  for (;;) {
    /* a signal (EINTR) does not restart the wait: the deadline stays */
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = deadline - ((double)now.tv_sec + 1e-9 * (double)now.tv_nsec);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int pr = left > 0 ? poll(&pfd, 1, (int)(left * 1000.0) + 1) : 0;
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
    clock_gettime(CLOCK_MONOTONIC, &now); /* progress: a new idle period */
    deadline = (double)now.tv_sec + 1e-9 * (double)now.tv_nsec + XM__PROBE_IDLE_MS / 1000.0;
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] != '\n') {
        if (len + 1 < sizeof cur)
          cur[len++] = buf[i];
        continue;
      }
      cur[len] = '\0';
      if (len > 2 && cur[0] == 'P')
        snprintf(last, sizeof last, "%s", cur + 2);
      else if (len > 2 && cur[0] == 'E' && !err[0])
        snprintf(err, sizeof err, "%s", cur + 2);
      len = 0;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return 0;
  }
  const char *at = last[0] ? last : "/";
  if (stuck) {
    xm__ioerr(r, "%s: HDF5 made no progress for %d s reading it: the file is corrupt", at,
              XM__PROBE_IDLE_MS / 1000);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    xm__ioerr(r, "%s: HDF5 crashed (signal %d) reading it: the file is corrupt", at,
              WTERMSIG(status));
    return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3 && err[0]) {
    xm__ioerr(r, "%s", err); /* the child's own message */
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { /* e.g. a sanitizer caught it */
    xm__ioerr(r, "%s: HDF5 failed (exit status %d) reading it: the file is corrupt", at,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
  }
  return 0;
}

/* ---- One file read ---------------------------------------------------------------- */

/* One file read: open, probe, body into *out (size bytes, zeroed first),
 * close; on failure *out is freed with free_out and left zeroed. */
xm_status xm__read_file(const char *path, void *out, size_t size,
                        void (*body)(xm__rd *r, void *out), void (*free_out)(void *out),
                        xm_diag *diag) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, size);
  if (!path)
    return XM_EINVAL;
  xm__rd r;
  xm__rd_init(&r, path, diag);
  if (xm__regular_file(&r) == 0 && xm__probe(&r, body, size) == 0 && xm__rd_open(&r) == XM_OK)
    body(&r, out);
  xm__rd_close(&r);
  xm_status st = xm__rd_status(&r);
  if (st != XM_OK)
    free_out(out);
  return st;
}
