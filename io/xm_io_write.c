/* io/: writing portfolio, scenario and results files (FORMAT.md). Every file
 * is written atomically: a temporary file in the target's folder, fsync'd and
 * renamed over the target only when complete. The portfolio and scenario
 * files are written by the column tables of xm_schema.c. Strings are
 * variable-length UTF-8; numbers int32/uint64/float64 (float32 for /pnl). */
#define _GNU_SOURCE /* fallocate */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>
#ifdef XM_WITH_MPI
#include <mpi.h>
#endif

#include "xm_io.h"
#include "xm_schema.h"
#include "xm_tables.h"

/* /pnl/<set> chunk: up to this many scenarios x accounts (float32: 256 KiB),
 * so that one account's column reads S/XM__PNL_CHUNK_S chunks, not the file. */
#define XM__PNL_CHUNK_S 4096
#define XM__PNL_CHUNK_A 16
#define XM__PNL_DEFLATE 4

/* A group's path and a dataset's name ("/scenarios/<set>/shock"), for messages. */
#define XM__WHERE 640

/* The FORMAT.md version every writer writes (readers take 1 and 2). */
#define XM__FORMAT_VERSION 2

typedef struct xm__wr {
  const char *path; /* the target */
  char *dir;        /* its folder */
  char *tmp;        /* the temporary file, NULL once renamed or removed */
  hid_t fid;
  hid_t str_t; /* variable-length UTF-8 string type */
  xm_diag *diag;
  int failed;
  H5E_auto2_t old_fn;
  void *old_data;
} xm__wr;

static void xm__wfail(xm__wr *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xm__wfail(xm__wr *w, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  xm_diag_add(w->diag, "%s: %s", w->path, buf);
  w->failed++;
}

/* The temporary file being written, for the signal handler (one writer at a
 * time per process: xmargin writes its files one after the other). */
static char xm__tmp_live[4096];
static volatile sig_atomic_t xm__tmp_armed;

static void xm__on_signal(int sig) {
  if (xm__tmp_armed)
    unlink(xm__tmp_live);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* SIGINT, SIGTERM and SIGHUP remove the temporary file before the process
 * ends (SIGKILL cannot be caught: the next write to the same target removes
 * what it left, xm__remove_stale). Handlers the caller set are kept. */
static void xm__arm(const char *tmp) {
  if (strlen(tmp) >= sizeof xm__tmp_live)
    return;
  memcpy(xm__tmp_live, tmp, strlen(tmp) + 1);
  xm__tmp_armed = 1;
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction old;
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = xm__on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(sigs[i], &sa, NULL);
    }
  }
}

static void xm__disarm(void) { xm__tmp_armed = 0; }

/* This machine's name as it goes into temporary file names: letters, digits
 * and '-' only, at most 32 characters. */
static void xm__host_tag(char tag[33]) {
  char h[256] = "";
  if (gethostname(h, sizeof h - 1) != 0)
    h[0] = '\0';
  size_t k = 0;
  for (size_t i = 0; h[i] && k < 32; i++)
    if ((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
        (h[i] >= '0' && h[i] <= '9') || h[i] == '-')
      tag[k++] = h[i];
  if (k == 0)
    tag[k++] = 'h';
  tag[k] = '\0';
}

/* Removes temporary files ".BASE.tmp.HOST.PID.XXXXXX" in dir that a writer of
 * the same target on this machine left behind when it was killed: those whose
 * process is gone (a folder shared with other machines keeps theirs). */
static void xm__remove_stale(const char *dir, const char *base) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  char host[33];
  xm__host_tag(host);
  size_t bl = strlen(base), hl = strlen(host);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] != '.' || strncmp(n + 1, base, bl) != 0 || strncmp(n + 1 + bl, ".tmp.", 5) != 0 ||
        strncmp(n + 1 + bl + 5, host, hl) != 0 || n[1 + bl + 5 + hl] != '.')
      continue;
    char *end = NULL;
    long pid = strtol(n + 1 + bl + 5 + hl + 1, &end, 10);
    if (pid <= 0 || !end || *end != '.' || strlen(end) != 7)
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
      continue; /* alive (or not ours to ask): a writer at work */
    char full[4096];
    if (snprintf(full, sizeof full, "%s/%s", dir, n) < (int)sizeof full)
      unlink(full);
  }
  closedir(d);
}

/* Creates the temporary file next to path and opens it with HDF5. reserve:
 * bytes the file will need at most, allocated on the disk first (0: none),
 * so that a full disk is found before HDF5 writes a byte. */
static xm_status xm__wr_begin(xm__wr *w, const char *path, uint64_t reserve, xm_diag *diag) {
  memset(w, 0, sizeof *w);
  w->path = path;
  w->diag = diag;
  w->fid = -1;
  w->str_t = -1;
  H5Eget_auto2(H5E_DEFAULT, &w->old_fn, &w->old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dlen = slash ? (size_t)(slash - path) : 1;
  if (*base == '\0') {
    xm__wfail(w, "not a file name");
    return XM_EINVAL;
  }
  w->dir = malloc(dlen + 1);
  w->tmp = malloc(dlen + strlen(base) + 80);
  if (!w->dir || !w->tmp) {
    free(w->tmp);
    w->tmp = NULL;
    xm__wfail(w, "out of memory");
    return XM_ENOMEM;
  }
  if (slash)
    memcpy(w->dir, path, dlen);
  else
    w->dir[0] = '.';
  w->dir[dlen] = '\0';
  if (slash && dlen == 0) { /* "/name" */
    w->dir[0] = '/';
    w->dir[1] = '\0';
  }
  xm__remove_stale(w->dir, base);
  char host[33];
  xm__host_tag(host);
  sprintf(w->tmp, "%s/.%s.tmp.%s.%ld.XXXXXX", slash ? (dlen ? w->dir : "") : ".", base, host,
          (long)getpid());
  int fd = mkstemp(w->tmp);
  if (fd < 0) {
    xm__wfail(w, "cannot create a temporary file in %s: %s", w->dir, strerror(errno));
    free(w->tmp);
    w->tmp = NULL;
    return XM_EIO;
  }
  xm__arm(w->tmp);
  if (reserve > 0) {
    int e = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)reserve);
    if (e != 0 && (errno == ENOSPC || errno == EFBIG || errno == EDQUOT)) {
      xm__wfail(w, "%s: the results need up to %llu bytes: %s", w->dir, (unsigned long long)reserve,
                strerror(errno));
      close(fd);
      return XM_EIO;
    }
  }
  /* mkstemp makes it 0600: give it the permissions a new file would get */
  mode_t um = umask(0);
  umask(um);
  if (fchmod(fd, 0666 & ~um) != 0) {
    /* not fatal: the file is still ours */
  }
  close(fd);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0)
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  w->fid = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
  if (fapl >= 0)
    H5Pclose(fapl);
  if (w->fid < 0) {
    xm__wfail(w, "HDF5 cannot create %s", w->tmp);
    return XM_EIO;
  }
  w->str_t = H5Tcopy(H5T_C_S1);
  if (w->str_t < 0 || H5Tset_size(w->str_t, H5T_VARIABLE) < 0 ||
      H5Tset_cset(w->str_t, H5T_CSET_UTF8) < 0) {
    xm__wfail(w, "HDF5 cannot make the string type");
    return XM_EIO;
  }
  return XM_OK;
}

static int xm__fsync_path(const char *p, int flags) {
  int fd = open(p, flags);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  if (rc != 0 && (errno == EINVAL || errno == EROFS))
    rc = 0; /* a folder or file system that cannot be synced */
  close(fd);
  return rc;
}

/* Closes the file (HDF5's part of xm__wr_end): the temporary file stays. */
static xm_status xm__wr_close(xm__wr *w, xm_status st) {
  if (w->str_t >= 0)
    H5Tclose(w->str_t);
  w->str_t = -1;
  /* A write or the flush failed (a full disk, a file size limit): empty the
   * temporary file first, so that HDF5's close has room to write what it
   * still holds and closes cleanly. HDF5 1.10 leaves a file whose close
   * failed half torn down, and touching it again, or its exit handler, then
   * crashes (fixed in 1.14.1): so the close must not be the call that finds
   * the disk full. */
  errno = 0;
  if (w->fid >= 0 && !w->failed && st == XM_OK && H5Fflush(w->fid, H5F_SCOPE_LOCAL) < 0) {
    xm__wfail(w, "HDF5 cannot flush the file%s%s", errno ? ": " : "", errno ? strerror(errno) : "");
    st = XM_EIO;
  }
  if (w->fid >= 0 && (w->failed || st != XM_OK) && truncate(w->tmp, 0) != 0) {
    /* nothing more to free */
  }
  if (w->fid >= 0 && H5Fclose(w->fid) < 0 && st == XM_OK) {
    xm__wfail(w, "HDF5 cannot close the file");
    st = XM_EIO;
  }
  w->fid = -1;
  if (st == XM_OK && w->failed)
    st = XM_EIO;
  return st;
}

/* After xm__wr_close: when nothing failed, syncs the temporary file and
 * renames it over the target; otherwise (or when that fails) removes it. */
static xm_status xm__wr_commit(xm__wr *w, xm_status st) {
  if (!w->path) /* never begun */
    return st;
  struct stat sb; /* give back the blocks reserved past the end */
  if (st == XM_OK && stat(w->tmp, &sb) == 0 && truncate(w->tmp, sb.st_size) != 0) {
    /* not fatal */
  }
  if (st == XM_OK && xm__fsync_path(w->tmp, O_RDONLY) != 0) {
    xm__wfail(w, "fsync of %s failed: %s", w->tmp, strerror(errno));
    st = XM_EIO;
  }
  if (st == XM_OK && rename(w->tmp, w->path) != 0) {
    xm__wfail(w, "cannot rename %s to it: %s", w->tmp, strerror(errno));
    st = XM_EIO;
  }
  if (st == XM_OK) {
    free(w->tmp);
    w->tmp = NULL;
    if (xm__fsync_path(w->dir, O_RDONLY | O_DIRECTORY) != 0) {
      xm__wfail(w, "fsync of folder %s failed: %s", w->dir, strerror(errno));
      st = XM_EIO;
    }
  }
  if (w->tmp) {
    unlink(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
  }
  xm__disarm();
  free(w->dir);
  w->dir = NULL;
  H5Eset_auto2(H5E_DEFAULT, w->old_fn, w->old_data);
  return st;
}

/* Closes the file; when nothing failed, syncs and renames it over the target.
 * Otherwise (or when that fails) removes the temporary file. */
static xm_status xm__wr_end(xm__wr *w, xm_status st) {
  return xm__wr_commit(w, xm__wr_close(w, st));
}

/* ---- Datasets and attributes --------------------------------------------------- */

/* Creates dataset name in loc and writes buf (may be NULL when empty); rank
 * 0 is a scalar. Returns the open dataset (caller closes) or -1 after a
 * message. */
static hid_t xm__w_dset(xm__wr *w, hid_t loc, const char *where, const char *name, hid_t ftype,
                        hid_t mtype, int rank, const hsize_t *dims, const void *buf, hid_t dcpl) {
  hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
  hid_t did = -1;
  if (sp < 0) {
    xm__wfail(w, "%s/%s: HDF5 cannot make the dataspace", where, name);
    return -1;
  }
  /* No object times: the same inputs give the same bytes. */
  hid_t pl = dcpl == H5P_DEFAULT ? H5Pcreate(H5P_DATASET_CREATE) : H5Pcopy(dcpl);
  if (pl >= 0)
    H5Pset_obj_track_times(pl, 0);
  did = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, pl >= 0 ? pl : dcpl, H5P_DEFAULT);
  if (pl >= 0)
    H5Pclose(pl);
  if (did < 0) {
    xm__wfail(w, "%s/%s: HDF5 cannot create the dataset", where, name);
    goto fail;
  }
  hsize_t n = 1;
  for (int i = 0; i < rank; i++)
    n *= dims[i];
  errno = 0;
  if (n > 0 && buf && H5Dwrite(did, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    xm__wfail(w, "%s/%s: HDF5 cannot write the dataset%s%s", where, name, errno ? ": " : "",
              errno ? strerror(errno) : "");
    goto fail;
  }
  H5Sclose(sp);
  return did;
fail:
  if (did >= 0)
    H5Dclose(did);
  H5Sclose(sp);
  return -1;
}

/* Writes strings s[n] (NULL entries as "") as a 1-D variable-length UTF-8
 * dataset. Returns the open dataset or -1. */
static hid_t xm__w_strs(xm__wr *w, hid_t loc, const char *where, const char *name, char *const *s,
                        int64_t n) {
  const char **v = malloc((n > 0 ? (size_t)n : 1) * sizeof *v);
  if (!v) {
    xm__wfail(w, "%s/%s: out of memory", where, name);
    return -1;
  }
  for (int64_t i = 0; i < n; i++)
    v[i] = s && s[i] ? s[i] : "";
  hsize_t dims[1] = {(hsize_t)n};
  hid_t did = xm__w_dset(w, loc, where, name, w->str_t, w->str_t, 1, dims, v, H5P_DEFAULT);
  free(v);
  return did;
}

static void xm__close_d(hid_t did) {
  if (did >= 0)
    H5Dclose(did);
}

static void xm__w_strs_c(xm__wr *w, hid_t loc, const char *where, const char *name, char *const *s,
                         int64_t n) {
  xm__close_d(xm__w_strs(w, loc, where, name, s, n));
}

static void xm__w_f64(xm__wr *w, hid_t loc, const char *where, const char *name, int rank,
                      int64_t d0, int64_t d1, const double *v) {
  hsize_t dims[2] = {(hsize_t)d0, (hsize_t)d1};
  xm__close_d(xm__w_dset(w, loc, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, v,
                         H5P_DEFAULT));
}

static void xm__w_i32(xm__wr *w, hid_t loc, const char *where, const char *name, int64_t n,
                      const int32_t *v) {
  hsize_t dims[1] = {(hsize_t)n};
  xm__close_d(
      xm__w_dset(w, loc, where, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, v, H5P_DEFAULT));
}

/* Writes a scalar attribute. */
static void xm__w_attr(xm__wr *w, hid_t loc, const char *where, const char *name, hid_t ftype,
                       hid_t mtype, const void *buf) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t aid = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
  if (aid < 0 || H5Awrite(aid, mtype, buf) < 0)
    xm__wfail(w, "%s: attribute %s: HDF5 cannot write it", where, name);
  if (aid >= 0)
    H5Aclose(aid);
  if (sp >= 0)
    H5Sclose(sp);
}

static void xm__w_attr_str(xm__wr *w, hid_t loc, const char *where, const char *name,
                           const char *v) {
  const char *s = v ? v : "";
  xm__w_attr(w, loc, where, name, w->str_t, w->str_t, &s);
}

static void xm__w_attr_i32(xm__wr *w, hid_t loc, const char *where, const char *name, int32_t v) {
  xm__w_attr(w, loc, where, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v);
}

static void xm__w_attr_f64(xm__wr *w, hid_t loc, const char *where, const char *name, double v) {
  xm__w_attr(w, loc, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

/* Writes a 1-D int32 attribute of n values (n >= 1). */
static void xm__w_attr_i32v(xm__wr *w, hid_t loc, const char *where, const char *name,
                            const int32_t *v, int64_t n) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t aid = sp >= 0 ? H5Acreate2(loc, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
  if (aid < 0 || H5Awrite(aid, H5T_NATIVE_INT32, v) < 0)
    xm__wfail(w, "%s: attribute %s: HDF5 cannot write it", where, name);
  if (aid >= 0)
    H5Aclose(aid);
  if (sp >= 0)
    H5Sclose(sp);
}

static hid_t xm__w_group(xm__wr *w, hid_t loc, const char *name) {
  hid_t pl = H5Pcreate(H5P_GROUP_CREATE);
  if (pl >= 0)
    H5Pset_obj_track_times(pl, 0);
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, pl >= 0 ? pl : H5P_DEFAULT, H5P_DEFAULT);
  if (pl >= 0)
    H5Pclose(pl);
  if (g < 0)
    xm__wfail(w, "%s: HDF5 cannot create the group", name);
  return g;
}

static void xm__close_g(hid_t g) {
  if (g >= 0)
    H5Gclose(g);
}

/* 1 when name can be an HDF5 link name of a set. */
static int xm__set_name_ok(const char *name) {
  return name && name[0] && !strchr(name, '/') && strcmp(name, ".") != 0;
}

/* ---- Portfolio and scenario files --------------------------------------------- */

/* The arrays of table t in base: every required column given for its
 * counts (>= 0), every code of a coded column one of its enumeration.
 * 1 when they are. */
static int xm__table_given(const xm__table *t, const void *base) {
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    int64_t n = xm__count_get(base, col->rows);
    if (col->cols != XM__RANK1)
      n *= xm__count_get(base, col->cols);
    const void *a = xm__col_get(base, col->at);
    if (col->required && (n < 0 || (n > 0 && !a)))
      return 0;
    for (int64_t i = 0; col->codes && a && i < n; i++)
      if (((const int32_t *)a)[i] < 0 || ((const int32_t *)a)[i] >= col->codes->count)
        return 0;
  }
  return 1;
}

/* Writes the columns of table t from base into group g (named where); an
 * optional column that is NULL is not written. XM_OK, or XM_ENOMEM (the
 * message in the diag; HDF5 failures are counted in w). */
static xm_status xm__w_table(xm__wr *w, hid_t g, const char *where, const xm__table *t,
                             const void *base) {
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    const void *a = xm__col_get(base, col->at);
    int64_t n = xm__count_get(base, col->rows);
    if (!col->required && !a)
      continue;
    switch (col->elem) {
    case XM__STRING:
      if (col->codes) { /* codes (all valid: checked by the caller) as their names */
        const char **v = malloc((n > 0 ? (size_t)n : 1) * sizeof *v);
        if (!v) {
          xm__wfail(w, "out of memory");
          return XM_ENOMEM;
        }
        for (int64_t i = 0; i < n; i++)
          v[i] = col->codes->names[((const int32_t *)a)[i]];
        xm__w_strs_c(w, g, where, col->name, (char *const *)v, n);
        free(v);
      } else {
        xm__w_strs_c(w, g, where, col->name, a, n);
      }
      break;
    case XM__INT:
      xm__w_i32(w, g, where, col->name, n, a);
      break;
    case XM__FLOAT:
      if (col->cols == XM__RANK1)
        xm__w_f64(w, g, where, col->name, 1, n, 1, a);
      else
        xm__w_f64(w, g, where, col->name, 2, n, xm__count_get(base, col->cols), a);
      break;
    }
  }
  return XM_OK;
}

#define XM__NEED(ptr, n)                                                                           \
  do {                                                                                             \
    if ((n) < 0 || ((n) > 0 && !(ptr)))                                                            \
      return XM_EINVAL;                                                                            \
  } while (0)

xm_status xm_portfolio_write(const char *path, const xm_portfolio *p, xm_diag *diag) {
  if (!path || !p)
    return XM_EINVAL;
  for (int t = 0; t < XM__PORTFOLIO_TABLES; t++)
    if (!xm__table_given(&xm__portfolio_tables[t], p))
      return XM_EINVAL;

  xm__wr w;
  hid_t g = -1;
  xm_status st = xm__wr_begin(&w, path, 0, diag);
  if (st != XM_OK)
    goto cleanup;
  xm__w_attr_str(&w, w.fid, "/", "format", "xmargin.portfolio");
  xm__w_attr_i32(&w, w.fid, "/", "format_version", XM__FORMAT_VERSION);
  xm__w_attr_str(&w, w.fid, "/", "valuation_date", p->valuation_date);
  xm__w_attr_str(&w, w.fid, "/", "currency", p->currency);

  for (int t = 0; t < XM__PORTFOLIO_TABLES && st == XM_OK; t++) {
    const xm__table *tb = &xm__portfolio_tables[t];
    if (tb->optional && xm__count_get(p, tb->rows) == 0)
      continue; /* an optional table of no rows is an absent group */
    g = xm__w_group(&w, w.fid, tb->group);
    if (g < 0)
      goto cleanup;
    st = xm__w_table(&w, g, tb->group, tb, p);
    xm__close_g(g);
    g = -1;
  }

cleanup:
  xm__close_g(g);
  return xm__wr_end(&w, st);
}

xm_status xm_scenarios_write(const char *path, const xm_scenario_file *s, xm_diag *diag) {
  if (!path || !s)
    return XM_EINVAL;
  if (!xm__table_given(&xm__history_table, s))
    return XM_EINVAL;
  XM__NEED(s->sets, s->n_sets);
  for (int64_t k = 0; k < s->n_sets; k++) {
    const xm_scenario_set *set = &s->sets[k];
    if (!xm__set_name_ok(set->name) || set->measure < 0 || set->measure >= XM_MEASURE_COUNT)
      return XM_EINVAL;
    if (!xm__table_given(&xm__set_table, set))
      return XM_EINVAL;
    for (int64_t j = 0; j < k; j++)
      if (strcmp(s->sets[j].name, set->name) == 0)
        return XM_EINVAL;
  }

  xm__wr w;
  hid_t g = -1, sg = -1;
  xm_status st = xm__wr_begin(&w, path, 0, diag);
  if (st != XM_OK)
    goto cleanup;
  xm__w_attr_str(&w, w.fid, "/", "format", "xmargin.scenarios");
  xm__w_attr_i32(&w, w.fid, "/", "format_version", XM__FORMAT_VERSION);
  if (s->n_days > 0 || s->n_hfactors > 0) {
    g = xm__w_group(&w, w.fid, xm__history_table.group);
    if (g < 0)
      goto cleanup;
    st = xm__w_table(&w, g, xm__history_table.group, &xm__history_table, s);
    xm__close_g(g);
    g = -1;
  }
  if (s->n_sets > 0 && st == XM_OK) {
    g = xm__w_group(&w, w.fid, xm__set_table.group);
    if (g < 0)
      goto cleanup;
    for (int64_t k = 0; k < s->n_sets && st == XM_OK; k++) {
      const xm_scenario_set *set = &s->sets[k];
      char where[512];
      snprintf(where, sizeof where, "%s/%s", xm__set_table.group, set->name);
      sg = xm__w_group(&w, g, set->name);
      if (sg < 0)
        goto cleanup;
      st = xm__w_table(&w, sg, where, &xm__set_table, set);
      xm__w_attr_str(&w, sg, where, "measure", xm__measure_names[set->measure]);
      if (!isnan(set->confidence))
        xm__w_attr_f64(&w, sg, where, "confidence", set->confidence);
      xm__close_g(sg);
      sg = -1;
    }
  }

cleanup:
  xm__close_g(sg);
  xm__close_g(g);
  return xm__wr_end(&w, st);
}

/* ---- Results and backtest files (FORMAT.md sections 3 and 4) ----------------------- */

/* The attributes of a money dataset (FORMAT.md section 3): `units`, its
 * currency (or "account currency" where the accounts' differ), and
 * `long_name`. */
static void xm__w_money_attrs(xm__wr *w, hid_t did, const char *where, const char *units,
                              const char *long_name) {
  xm__w_attr_str(w, did, where, "units", units);
  xm__w_attr_str(w, did, where, "long_name", long_name);
}

/* Writes dataset name of group g (named where): rank dims of v, its
 * long_name, its units when it is money (units not NULL), and scales[i]
 * attached to dimension i (-1: none). Returns the open dataset (the caller
 * closes it) or -1 after a message. */
static hid_t xm__w_var(xm__wr *w, hid_t g, const char *where, const char *name, hid_t ftype,
                       hid_t mtype, int rank, const hsize_t *dims, const void *v,
                       const hid_t *scales, const char *units, const char *long_name) {
  hid_t did = xm__w_dset(w, g, where, name, ftype, mtype, rank, dims, v, H5P_DEFAULT);
  if (did < 0)
    return -1;
  char at[XM__WHERE];
  snprintf(at, sizeof at, "%s/%s", where, name);
  if (units)
    xm__w_money_attrs(w, did, at, units, long_name);
  else
    xm__w_attr_str(w, did, at, "long_name", long_name);
  for (int i = 0; i < rank; i++)
    if (scales[i] >= 0 && H5DSattach_scale(did, scales[i], (unsigned)i) < 0) {
      xm__wfail(w, "%s: HDF5 cannot attach the dimension scales", at);
      break;
    }
  return did;
}

/* A float64 dataset (xm__w_var), closed. */
static void xm__w_money(xm__wr *w, hid_t g, const char *where, const char *name, int rank,
                        const hsize_t *dims, const double *v, const hid_t *scales,
                        const char *units, const char *long_name) {
  xm__close_d(xm__w_var(w, g, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, v, scales,
                        units, long_name));
}

/* A [rows x cols] (rank 1: [rows]) float64 money dataset of /margin. */
static void xm__w_margin(xm__wr *w, hid_t g, const char *name, int rank, int64_t rows, int64_t cols,
                         const double *v, hid_t scale0, hid_t scale1, const char *units,
                         const char *long_name) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t scales[2] = {scale0, scale1};
  xm__w_money(w, g, "/margin", name, rank, dims, v, scales, units, long_name);
}

/* An int32 dataset (xm__w_var, not money) with the CF flag attributes:
 * flag_values 0..n_flags-1 and flag_meanings, the n_flags words meaning[]
 * joined by blanks (both left out when n_flags is 0 or a word is empty or
 * holds a blank, which CF cannot list). Closed. */
static void xm__w_flags(xm__wr *w, hid_t g, const char *where, const char *name, int rank,
                        const hsize_t *dims, const int32_t *v, const hid_t *scales,
                        const char *long_name, char *const *meaning, int64_t n_flags) {
  hid_t did = xm__w_var(w, g, where, name, H5T_STD_I32LE, H5T_NATIVE_INT32, rank, dims, v, scales,
                        NULL, long_name);
  if (did < 0)
    return;
  char at[XM__WHERE];
  snprintf(at, sizeof at, "%s/%s", where, name);
  size_t len = 1;
  int ok = n_flags > 0;
  for (int64_t k = 0; ok && k < n_flags; k++) {
    ok = meaning[k] && meaning[k][0] && !strpbrk(meaning[k], " \t\n\r\v\f");
    len += ok ? strlen(meaning[k]) + 1 : 0;
  }
  int32_t *fv = ok ? malloc((size_t)n_flags * sizeof *fv) : NULL;
  char *fm = ok ? malloc(len) : NULL;
  if (ok && (!fv || !fm)) {
    xm__wfail(w, "%s: out of memory", at);
  } else if (ok) {
    size_t pos = 0;
    for (int64_t k = 0; k < n_flags; k++) {
      fv[k] = (int32_t)k;
      size_t l = strlen(meaning[k]);
      if (k)
        fm[pos++] = ' ';
      memcpy(fm + pos, meaning[k], l);
      pos += l;
    }
    fm[pos] = '\0';
    xm__w_attr_i32v(w, did, at, "flag_values", fv, n_flags);
    xm__w_attr_str(w, did, at, "flag_meanings", fm);
  }
  free(fv);
  free(fm);
  H5Dclose(did);
}

/* /pnl/<set>'s values from set->pnl_read, in blocks of whole chunks
 * (XM__PNL_CHUNK_S scenarios x a multiple of XM__PNL_CHUNK_A accounts, 16
 * MiB at most): no chunk is written twice, nor the whole array held. */
static void xm__w_pnl_blocks(xm__wr *w, hid_t did, const xm_results_set *set, int64_t S,
                             int64_t A) {
  int64_t rs = S < XM__PNL_CHUNK_S ? S : XM__PNL_CHUNK_S;
  int64_t ca = ((int64_t)4 << 20) / (rs > 0 ? rs : 1) / XM__PNL_CHUNK_A * XM__PNL_CHUNK_A;
  ca = ca < XM__PNL_CHUNK_A ? XM__PNL_CHUNK_A : ca;
  ca = ca < A ? ca : A;
  float *buf = malloc((size_t)(rs * ca + 1) * sizeof *buf);
  hid_t fs = H5Dget_space(did);
  if (!buf || fs < 0) {
    xm__wfail(w, "/pnl/%s: out of memory", set->name);
    S = 0;
  }
  for (int64_t s0 = 0; s0 < S && !w->failed; s0 += rs) {
    int64_t ns = S - s0 < rs ? S - s0 : rs;
    for (int64_t a0 = 0; a0 < A && !w->failed; a0 += ca) {
      int64_t na = A - a0 < ca ? A - a0 : ca;
      hsize_t start[2] = {(hsize_t)s0, (hsize_t)a0}, count[2] = {(hsize_t)ns, (hsize_t)na};
      xm_status st = set->pnl_read(set->pnl_arg, set->pnl_set, s0, ns, a0, na, buf);
      hid_t ms = st == XM_OK ? H5Screate_simple(2, count, NULL) : -1;
      errno = 0;
      if (st != XM_OK)
        xm__wfail(w, "/pnl/%s: the losses cannot be read back (%s)", set->name, xm_status_name(st));
      else if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
               H5Dwrite(did, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0)
        xm__wfail(w, "/pnl/%s: HDF5 cannot write scenarios %lld.. accounts %lld..%s%s", set->name,
                  (long long)s0, (long long)a0, errno ? ": " : "", errno ? strerror(errno) : "");
      if (ms >= 0)
        H5Sclose(ms);
    }
  }
  if (fs >= 0)
    H5Sclose(fs);
  free(buf);
}

/* Writes /pnl/<set> float32 [S x A], chunked and compressed, a money
 * dataset in units, along the scales /pnl/<set>.scenario (its labels,
 * written here) and sa (/pnl/account). later: made, its values not written. */
static void xm__w_pnl(xm__wr *w, hid_t g, const xm_results_set *set, int64_t A, hid_t sa,
                      const char *units, int later) {
  const char *name = set->name;
  int64_t S = set->n_scenarios;
  const float *pnl = later ? NULL : set->pnl;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0) {
    xm__wfail(w, "/pnl/%s: HDF5 cannot make the creation properties", name);
    return;
  }
  if (S > 0 && A > 0) {
    hsize_t chunk[2] = {(hsize_t)(S < XM__PNL_CHUNK_S ? S : XM__PNL_CHUNK_S),
                        (hsize_t)(A < XM__PNL_CHUNK_A ? A : XM__PNL_CHUNK_A)};
    if (H5Pset_chunk(dcpl, 2, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Pset_deflate(dcpl, XM__PNL_DEFLATE) < 0))
      xm__wfail(w, "/pnl/%s: HDF5 cannot set chunking and compression", name);
  }
  hsize_t dims[2] = {(hsize_t)S, (hsize_t)A};
  char where[] = "/pnl";
  hid_t did = xm__w_dset(w, g, where, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, pnl, dcpl);
  if (did >= 0 && !later && !pnl && set->pnl_read)
    xm__w_pnl_blocks(w, did, set, S, A);
  if (did >= 0) {
    char at[XM__WHERE];
    snprintf(at, sizeof at, "/pnl/%s", name);
    xm__w_money_attrs(w, did, at, units, "loss of each account in each scenario (positive = loss)");
    char sname[XM__WHERE];
    snprintf(sname, sizeof sname, "%s.scenario", name);
    hid_t ss = xm__w_strs(w, g, "/pnl", sname, set->label, S);
    if (ss >= 0 && (H5DSset_scale(ss, sname) < 0 || H5DSattach_scale(did, ss, 0) < 0 ||
                    H5DSattach_scale(did, sa, 1) < 0))
      xm__wfail(w, "%s: HDF5 cannot attach the dimension scales", at);
    xm__close_d(ss);
  }
  xm__close_d(did);
  H5Pclose(dcpl);
}

static uint64_t xm__strs_bytes(char *const *s, int64_t n) {
  uint64_t b = 0;
  for (int64_t i = 0; s && i < n; i++)
    b += (s[i] ? strlen(s[i]) : 0) + 32; /* global heap object and reference */
  return b;
}

/* ---- What every output file has: the root attributes, the dimensions ---- */

/* head's arrays given for its counts: XM_OK, or XM_EINVAL. */
static xm_status xm__head_given(const xm_results_head *h) {
  XM__NEED(h->account, h->n_accounts);
  XM__NEED(h->silo, h->n_silos);
  XM__NEED(h->set, h->n_sets);
  return XM_OK;
}

/* Each account's currency into a fresh array (the caller frees it) and into
 * *units the units of the money datasets: the accounts' common currency,
 * else "account currency". NULL on out of memory (with a message). */
static const char **xm__head_currencies(const xm_results_head *h, const char *path,
                                        const char **units, xm_diag *diag) {
  int64_t A = h->n_accounts;
  const char *rep = h->reporting_currency ? h->reporting_currency : "";
  const char **cur = malloc((A > 0 ? (size_t)A : 1) * sizeof *cur);
  if (!cur) {
    xm_diag_add(diag, "%s: out of memory", path);
    return NULL;
  }
  *units = rep;
  for (int64_t a = 0; a < A; a++) {
    cur[a] = h->account_currency && h->account_currency[a] ? h->account_currency[a] : rep;
    if (a == 0)
      *units = cur[0];
    else if (strcmp(cur[a], *units) != 0)
      *units = "account currency";
  }
  return cur;
}

/* The root attributes of FORMAT.md section 3 (format and format_version
 * first). */
static void xm__w_head(xm__wr *w, const xm_results_head *h, const char *format) {
  hid_t f = w->fid;
  xm__w_attr_str(w, f, "/", "format", format);
  xm__w_attr_i32(w, f, "/", "format_version", XM__FORMAT_VERSION);
  xm__w_attr_str(w, f, "/", "software_version", h->software_version);
  xm__w_attr_str(w, f, "/", "created_utc", h->created_utc);
  xm__w_attr_str(w, f, "/", "valuation_date", h->valuation_date);
  xm__w_attr_str(w, f, "/", "reporting_currency", h->reporting_currency);
  xm__w_attr_str(w, f, "/", "portfolio", h->portfolio);
  xm__w_attr_str(w, f, "/", "scenarios", h->scenarios);
  xm__w_attr_str(w, f, "/", "portfolio_sha256", h->portfolio_sha256);
  xm__w_attr_str(w, f, "/", "scenarios_sha256", h->scenarios_sha256);
  xm__w_attr_str(w, f, "/", "config", h->config);
  xm__w_attr_str(w, f, "/", "device", h->device);
  xm__w_attr_str(w, f, "/", "precision", h->precision);
  xm__w_attr(w, f, "/", "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &h->seed);
  xm__w_attr_f64(w, f, "/", "elapsed_s", h->elapsed_s);
}

/* The dimensions of the output files, in the order of their scales. */
enum { XM__DIM_ACCOUNT, XM__DIM_SILO, XM__DIM_SET, XM__DIM_DAY, XM__DIM_COUNT };
#define XM__DIM(d) (1u << (d))

/* Writes in loc (named where: "" for the root) the dimension scales that
 * mask names (XM__DIM bits): /account, /silo, /set of head and /day (the
 * strings day[n_days]). sc[d] is each scale written, open; -1 for the
 * others. 0, or -1 after a message. */
static int xm__w_dims(xm__wr *w, hid_t loc, const char *where, const xm_results_head *h,
                      char *const *day, int64_t n_days, unsigned mask, hid_t sc[XM__DIM_COUNT]) {
  static const char *const names[XM__DIM_COUNT] = {"account", "silo", "set", "day"};
  char *const *s[XM__DIM_COUNT] = {h->account, h->silo, h->set, day};
  const int64_t n[XM__DIM_COUNT] = {h->n_accounts, h->n_silos, h->n_sets, n_days};
  for (int d = 0; d < XM__DIM_COUNT; d++)
    sc[d] = -1;
  for (int d = 0; d < XM__DIM_COUNT; d++) {
    if (!(mask & XM__DIM(d)))
      continue;
    sc[d] = xm__w_strs(w, loc, where, names[d], s[d], n[d]);
    if (sc[d] < 0)
      return -1;
    if (H5DSset_scale(sc[d], names[d]) < 0) {
      xm__wfail(w, "%s/%s: HDF5 cannot make it a dimension scale", where, names[d]);
      return -1;
    }
  }
  return 0;
}

static void xm__close_dims(hid_t sc[XM__DIM_COUNT]) {
  for (int d = XM__DIM_COUNT - 1; d >= 0; d--) {
    xm__close_d(sc[d]);
    sc[d] = -1;
  }
}

/* ---- Results (FORMAT.md section 3) ---- */

/* An upper bound of the results file's size: every dataset stored raw (the
 * compressed /pnl is smaller), the strings, and 256 KiB + 1/8 for metadata. */
static uint64_t xm__results_bytes(const xm_results *r) {
  const xm_results_head *h = &r->head;
  uint64_t A = (uint64_t)h->n_accounts, G = (uint64_t)h->n_silos, K = (uint64_t)h->n_sets;
  uint64_t b = 8 * A * (28 + 8 * G + K) + 4 * xm__strs_bytes(h->account, h->n_accounts) +
               2 * xm__strs_bytes(h->account_currency, h->account_currency ? h->n_accounts : 0) +
               48 * A + 8 * xm__strs_bytes(h->silo, h->n_silos) +
               8 * xm__strs_bytes(h->set, h->n_sets);
  for (int64_t k = 0; k < h->n_sets; k++) {
    const xm_results_set *s = &r->sets[k];
    uint64_t S = (uint64_t)s->n_scenarios;
    b += xm__strs_bytes(s->label, s->n_scenarios);
    if (s->pnl || s->pnl_read) /* and its scenario scale */
      b += 4 * S * A + 64 * (S / XM__PNL_CHUNK_S + 1) * (A / XM__PNL_CHUNK_A + 1) +
           xm__strs_bytes(s->label, s->n_scenarios);
    if (s->shock)
      b += 8 * S * (uint64_t)s->n_factors + xm__strs_bytes(s->factor, s->n_factors);
  }
  if (h->config)
    b += strlen(h->config);
  return b + b / 8 + ((uint64_t)256 << 10);
}

/* The results file into w's temporary file, closed, not yet renamed
 * (xm__wr_commit does that). pnl_later: each /pnl/<set> is made but not
 * written (the processes of an MPI job write their columns next,
 * xm_results_write_mpi). */
static xm_status xm__results_file(xm__wr *w, const char *path, const xm_results *r, int pnl_later,
                                  xm_diag *diag) {
  memset(w, 0, sizeof *w);
  if (!path || !r || xm__head_given(&r->head) != XM_OK)
    return XM_EINVAL;
  const xm_results_head *h = &r->head;
  int64_t A = h->n_accounts, G = h->n_silos, K = h->n_sets;
  XM__NEED(r->sets, K);
  XM__NEED(r->requirement, A);
  XM__NEED(r->unified, A);
  XM__NEED(r->siloed, A);
  XM__NEED(r->diversification, A);
  XM__NEED(r->minimum, A);
  XM__NEED(r->binding_set, A);
  XM__NEED(r->by_set, A * K);
  XM__NEED(r->by_silo, A * G);
  XM__NEED(r->attribution, A * G);
  for (int64_t k = 0; k < K; k++) {
    const xm_results_set *s = &r->sets[k];
    if (!xm__set_name_ok(s->name))
      return XM_EINVAL;
    XM__NEED(s->label, s->n_scenarios);
    if (s->shock)
      XM__NEED(s->factor, s->n_factors);
    for (int64_t j = 0; j < k; j++)
      if (strcmp(r->sets[j].name, s->name) == 0)
        return XM_EINVAL;
  }

  const char *units = NULL;
  const char **cur = xm__head_currencies(h, path, &units, diag);
  if (!cur)
    return XM_ENOMEM;

  hid_t sc[XM__DIM_COUNT] = {-1, -1, -1, -1}, scm[XM__DIM_COUNT] = {-1, -1, -1, -1}, g = -1,
        g2 = -1;
  xm_status st = xm__wr_begin(w, path, xm__results_bytes(r), diag);
  if (st != XM_OK)
    goto cleanup;
  xm__w_head(w, h, "xmargin.results");
  if (xm__w_dims(w, w->fid, "", h, NULL, 0,
                 XM__DIM(XM__DIM_ACCOUNT) | XM__DIM(XM__DIM_SILO) | XM__DIM(XM__DIM_SET), sc) < 0)
    goto cleanup;
  /* /margin carries its own scales (FORMAT.md section 3), so that xarray
   * opens the group alone labelled by account, silo and set */
  g = xm__w_group(w, w->fid, "/margin");
  if (g < 0 ||
      xm__w_dims(w, g, "/margin", h, NULL, 0,
                 XM__DIM(XM__DIM_ACCOUNT) | XM__DIM(XM__DIM_SILO) | XM__DIM(XM__DIM_SET), scm) < 0)
    goto cleanup;
  hid_t sa = scm[XM__DIM_ACCOUNT], sg = scm[XM__DIM_SILO], sk = scm[XM__DIM_SET];
  xm__w_margin(w, g, "requirement", 1, A, 1, r->requirement, sa, -1, units, "margin requirement");
  xm__w_margin(w, g, "unified", 1, A, 1, r->unified, sa, -1, units,
               "unified requirement: the whole account's worst set measure plus its add-on");
  xm__w_margin(w, g, "siloed", 1, A, 1, r->siloed, sa, -1, units,
               "siloed requirement: the sum over silos of each silo's core plus its add-on");
  xm__w_margin(w, g, "diversification", 1, A, 1, r->diversification, sa, -1, units,
               "diversification: max(0, siloed - unified)");
  xm__w_margin(w, g, "minimum", 1, A, 1, r->minimum, sa, -1, units,
               "minimum charge per option contract");
  xm__w_margin(w, g, "by_set", 2, A, K, r->by_set, sa, sk, units,
               "risk measure of the whole account in each scenario set");
  xm__w_margin(w, g, "by_silo", 2, A, G, r->by_silo, sa, sg, units,
               "each silo's core plus its add-on");
  xm__w_margin(w, g, "attribution", 2, A, G, r->attribution, sa, sg, units,
               "each silo's share of the unified core (unified - liquidity)");
  /* version 2 (METHODOLOGY.md sections 4, 4.1, 6): each only when given */
  static const struct {
    size_t at; /* offsetof the array in xm_results */
    int by_silo;
    const char *name, *long_name;
  } v2[] = {
      {offsetof(xm_results, liquidity), 0, "liquidity",
       "liquidity and concentration add-on of the whole account (in unified)"},
      {offsetof(xm_results, liquidity_by_silo), 1, "liquidity_by_silo",
       "each silo's liquidity and concentration add-on (in by_silo)"},
      {offsetof(xm_results, requirement_by_silo), 1, "requirement_by_silo",
       "each silo's requirement on its own: max((1 + buffer) by_silo, the silo's minimum)"},
      {offsetof(xm_results, hedge_credit), 0, "hedge_credit",
       "hedge credit: offset_cap x diversification (cross-margined accounts; else 0)"},
      {offsetof(xm_results, collateral_value), 0, "collateral_value",
       "collateral at today's value, before haircuts and limits"},
      {offsetof(xm_results, collateral), 0, "collateral",
       "collateral after haircuts and concentration limits"},
      {offsetof(xm_results, excess), 0, "excess",
       "collateral in excess of the requirement (negative: short of margin)"},
      {offsetof(xm_results, call), 0, "call", "margin call"},
      {offsetof(xm_results, call_siloed), 0, "call_siloed",
       "margin call if each silo were margined apart, with its own pool"},
  };
  for (size_t i = 0; i < sizeof v2 / sizeof v2[0]; i++) {
    const double *v = *(const double *const *)((const char *)r + v2[i].at);
    if (v)
      xm__w_margin(w, g, v2[i].name, v2[i].by_silo ? 2 : 1, A, G, v, sa, sg, units,
                   v2[i].long_name);
  }
  hid_t dc = xm__w_strs(w, g, "/margin", "currency", (char *const *)cur, A);
  if (dc >= 0) {
    if (H5DSattach_scale(dc, sa, 0) < 0)
      xm__wfail(w, "/margin/currency: HDF5 cannot attach the dimension scale");
    H5Dclose(dc);
  }
  hsize_t dA[1] = {(hsize_t)A};
  xm__w_flags(w, g, "/margin", "binding_set", 1, dA, r->binding_set, &sa,
              "the scenario set whose measure is the unified core (index into /set)", h->set, K);
  if (r->minimum_binds) {
    static char *const binds[] = {"risk_measure", "minimum"};
    xm__w_flags(w, g, "/margin", "minimum_binds", 1, dA, r->minimum_binds, &sa,
                "1 where the minimum charge is the requirement", binds, 2);
  }
  xm__close_g(g);
  g = -1;

  if (K > 0) {
    g = xm__w_group(w, w->fid, "/scenarios");
    if (g < 0)
      goto cleanup;
    for (int64_t k = 0; k < K; k++) {
      const xm_results_set *s = &r->sets[k];
      char where[XM__WHERE];
      snprintf(where, sizeof where, "/scenarios/%s", s->name);
      g2 = xm__w_group(w, g, s->name);
      if (g2 < 0)
        goto cleanup;
      xm__w_strs_c(w, g2, where, "label", s->label, s->n_scenarios);
      if (s->shock) {
        xm__w_f64(w, g2, where, "shock", 2, s->n_scenarios, s->n_factors, s->shock);
        xm__w_strs_c(w, g2, where, "factor", s->factor, s->n_factors);
      }
      xm__close_g(g2);
      g2 = -1;
    }
    xm__close_g(g);
    g = -1;
    int any_pnl = 0;
    for (int64_t k = 0; k < K; k++)
      any_pnl |= r->sets[k].pnl || r->sets[k].pnl_read;
    if (any_pnl) {
      xm__close_dims(scm);
      g = xm__w_group(w, w->fid, "/pnl");
      if (g < 0 || xm__w_dims(w, g, "/pnl", h, NULL, 0, XM__DIM(XM__DIM_ACCOUNT), scm) < 0)
        goto cleanup;
      for (int64_t k = 0; k < K; k++)
        if (r->sets[k].pnl || r->sets[k].pnl_read)
          xm__w_pnl(w, g, &r->sets[k], A, scm[XM__DIM_ACCOUNT], units, pnl_later);
    }
  }

cleanup:
  xm__close_g(g2);
  xm__close_dims(scm);
  xm__close_g(g);
  xm__close_dims(sc);
  free(cur);
  return xm__wr_close(w, st);
}

xm_status xm_results_write(const char *path, const xm_results *r, xm_diag *diag) {
  xm__wr w;
  return xm__wr_commit(&w, xm__results_file(&w, path, r, 0, diag));
}

/* ---- Backtest (FORMAT.md section 4) ---- */

/* The fields of xm_bt_stats that are datasets of /stats (each 8 bytes:
 * int64 counts, float64 statistics); apc: only for requirement and silo. */
static const struct {
  size_t at;
  int count, apc;
  const char *name, *long_name;
} xm__bt_fields[] = {
    {offsetof(xm_bt_stats, exceptions_all), 1, 0, "exceptions_all",
     "exceptions (realised loss > margin) over all the backtest days"},
    {offsetof(xm_bt_stats, exceptions), 1, 0, "exceptions",
     "exceptions (realised loss > margin) over the non-overlapping test days"},
    {offsetof(xm_bt_stats, observed_coverage), 0, 0, "observed_coverage",
     "1 - exceptions / test days"},
    {offsetof(xm_bt_stats, kupiec_lr), 0, 0, "kupiec_lr",
     "Kupiec proportion-of-failures likelihood ratio"},
    {offsetof(xm_bt_stats, kupiec_p), 0, 0, "kupiec_p",
     "p-value of the Kupiec test (chi-squared, 1 degree of freedom)"},
    {offsetof(xm_bt_stats, christoffersen_lr), 0, 0, "christoffersen_lr",
     "Christoffersen independence likelihood ratio"},
    {offsetof(xm_bt_stats, cc_lr), 0, 0, "cc_lr",
     "conditional coverage likelihood ratio (Kupiec + Christoffersen)"},
    {offsetof(xm_bt_stats, cc_p), 0, 0, "cc_p",
     "p-value of the conditional coverage test (chi-squared, 2 degrees of freedom)"},
    {offsetof(xm_bt_stats, peak_to_trough), 0, 1, "peak_to_trough",
     "peak-to-trough ratio of the margin: max / min over the days with margin > 0"},
    {offsetof(xm_bt_stats, max_increase), 0, 1, "max_increase",
     "largest increase of the margin within apc_window backtest days: M(d') / M(d) - 1"},
};
_Static_assert(sizeof(int64_t) == 8 && sizeof(double) == 8, "the stats' fields are 8 bytes");

/* Writes the statistics s[n] (n the product of dims; rank 0: one) into
 * group g (named where): every field of xm__bt_fields (the procyclicality
 * ones when apc) and the zone, along scales. */
static void xm__w_bt_stats(xm__wr *w, hid_t g, const char *where, const xm_bt_stats *s, int rank,
                           const hsize_t *dims, const hid_t *scales, int apc) {
  size_t n = 1;
  for (int i = 0; i < rank; i++)
    n *= (size_t)dims[i];
  unsigned char *buf = malloc((n ? n : 1) * 8);
  const char **zone = malloc((n ? n : 1) * sizeof *zone);
  if (!buf || !zone) {
    xm__wfail(w, "%s: out of memory", where);
    goto done;
  }
  for (size_t f = 0; f < sizeof xm__bt_fields / sizeof xm__bt_fields[0]; f++) {
    if (xm__bt_fields[f].apc && !apc)
      continue;
    for (size_t i = 0; i < n; i++)
      memcpy(buf + 8 * i, (const char *)&s[i] + xm__bt_fields[f].at, 8);
    int c = xm__bt_fields[f].count;
    xm__close_d(xm__w_var(w, g, where, xm__bt_fields[f].name, c ? H5T_STD_I64LE : H5T_IEEE_F64LE,
                          c ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, rank, dims, buf, scales, NULL,
                          xm__bt_fields[f].long_name));
  }
  for (size_t i = 0; i < n; i++) {
    const char *z = xm_bt_zone_name(s[i].zone);
    zone[i] = z ? z : "";
  }
  xm__close_d(xm__w_var(w, g, where, "zone", w->str_t, w->str_t, rank, dims, zone, scales, NULL,
                        "traffic-light zone (Basel): green, yellow, red; empty where undefined"));
done:
  free(zone);
  free(buf);
}

/* What each margin of /series is (by xm_bt_margin). */
static const char *const xm__bt_long[XM_BT_NMARGIN] = {
    [XM_BT_UNIFIED] = "unified margin: the whole account's worst set measure plus its add-on",
    [XM_BT_CROSS_MARGINED] = ("cross-margined margin: unified plus the uncredited share of the "
                              "diversification (siloed where the account is not eligible)"),
    [XM_BT_SILOED] = "siloed margin: the sum over silos of each silo's core plus its add-on",
    [XM_BT_REQUIREMENT] = "margin requirement: max((1 + buffer) cross-margined, minimum)",
};

/* An upper bound of the backtest file's size, as xm__results_bytes: /series
 * (7 [N x A] and 2 [N x A x G] arrays, 6 [N]), /stats, the scales and their
 * copies in the groups (/day in the root, /series and each /scenarios/<set>,
 * /account in 7 places, /silo in 3), /scenarios. */
static uint64_t xm__backtest_bytes(const xm_backtest_file *b) {
  const xm_results_head *h = &b->head;
  uint64_t N = (uint64_t)b->n_days, A = (uint64_t)h->n_accounts, G = (uint64_t)h->n_silos;
  uint64_t K = (uint64_t)h->n_sets;
  uint64_t bytes = 8 * N * A * (7 + 2 * G) + 8 * N * 6;
  bytes += (8 * 10 + 48) * (A * XM_BT_NMARGIN + A * G + XM_BT_NMARGIN);
  bytes += (3 + K) * xm__strs_bytes(b->day, b->n_days) +
           xm__strs_bytes(b->realised_end, b->n_days) +
           8 * xm__strs_bytes(h->account, h->n_accounts) + 4 * xm__strs_bytes(h->silo, h->n_silos) +
           8 * xm__strs_bytes(h->set, h->n_sets);
  for (int64_t k = 0; b->sets && k < h->n_sets; k++) {
    const xm_backtest_file_set *s = &b->sets[k];
    if (s->shock)
      bytes += 8 * N * (uint64_t)s->n_scenarios * (uint64_t)s->n_factors +
               xm__strs_bytes(s->factor, s->n_factors);
    if (s->delta)
      bytes += 8 * N;
  }
  if (h->config)
    bytes += strlen(h->config);
  return bytes + bytes / 8 + ((uint64_t)256 << 10);
}

/* The backtest file into w's temporary file, closed, not yet renamed (as
 * xm__results_file). later: each set's shock and delta are made but not
 * written (xm_backtest_write_mpi's ranks write their days next). */
static xm_status xm__backtest_file(xm__wr *w, const char *path, const xm_backtest_file *b,
                                   int later, xm_diag *diag) {
  memset(w, 0, sizeof *w);
  if (!path || !b || xm__head_given(&b->head) != XM_OK)
    return XM_EINVAL;
  const xm_results_head *h = &b->head;
  int64_t N = b->n_days, A = h->n_accounts, G = h->n_silos, K = h->n_sets;
  XM__NEED(b->day, N);
  XM__NEED(b->realised_end, N);
  XM__NEED(b->test_day, N);
  XM__NEED(b->realised, N * A);
  XM__NEED(b->silo_margin, N * A * G);
  XM__NEED(b->realised_by_silo, N * A * G);
  XM__NEED(b->binding, N * A);
  XM__NEED(b->total_realised, N);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    XM__NEED(b->margin[m], N * A);
    XM__NEED(b->total_margin[m], N);
    XM__NEED(b->stats[m], A);
  }
  XM__NEED(b->silo_stats, A * G);
  XM__NEED(b->total_stats, XM_BT_NMARGIN);
  for (int64_t k = 0; b->sets && k < K; k++) {
    const xm_backtest_file_set *s = &b->sets[k];
    if (!xm__set_name_ok(h->set[k]) || s->n_scenarios < 0 || s->n_factors < 0)
      return XM_EINVAL;
    if (s->shock)
      XM__NEED(s->factor, s->n_factors);
    for (int64_t j = 0; j < k; j++)
      if (strcmp(h->set[j], h->set[k]) == 0)
        return XM_EINVAL;
  }

  const char *units = NULL, *rep = h->reporting_currency ? h->reporting_currency : "";
  const char **cur = xm__head_currencies(h, path, &units, diag);
  if (!cur)
    return XM_ENOMEM;

  hid_t root[XM__DIM_COUNT] = {-1, -1, -1, -1}, sc[XM__DIM_COUNT] = {-1, -1, -1, -1};
  hid_t g = -1, g2 = -1, d = -1;
  char where[XM__WHERE];
  xm_status st = xm__wr_begin(w, path, xm__backtest_bytes(b), diag);
  if (st != XM_OK)
    goto cleanup;
  xm__w_head(w, h, "xmargin.backtest");
  hid_t f = w->fid;
  xm__w_attr_i32(w, f, "/", "backtest_days", (int32_t)N);
  xm__w_attr_i32(w, f, "/", "test_days", (int32_t)b->n_tests);
  xm__w_attr_f64(w, f, "/", "target_coverage", b->target_coverage);
  xm__w_attr_i32(w, f, "/", "apc_window", b->apc_window);
  const unsigned all = XM__DIM(XM__DIM_ACCOUNT) | XM__DIM(XM__DIM_SILO) | XM__DIM(XM__DIM_SET) |
                       XM__DIM(XM__DIM_DAY);
  if (xm__w_dims(w, f, "", h, b->day, N, all, root) < 0)
    goto cleanup;
  d = xm__w_strs(w, f, "", "realised_end", b->realised_end, N);
  if (d >= 0) {
    xm__w_attr_str(w, d, "/realised_end", "long_name",
                   "the date of the last day of the realised move (d + h)");
    if (H5DSattach_scale(d, root[XM__DIM_DAY], 0) < 0)
      xm__wfail(w, "/realised_end: HDF5 cannot attach the dimension scale");
  }
  xm__close_d(d);
  d = -1;

  /* /series: [day x account (x silo)], with the group's own scales */
  g = xm__w_group(w, f, "/series");
  if (g < 0 ||
      xm__w_dims(w, g, "/series", h, b->day, N,
                 XM__DIM(XM__DIM_DAY) | XM__DIM(XM__DIM_ACCOUNT) | XM__DIM(XM__DIM_SILO), sc) < 0)
    goto cleanup;
  {
    hsize_t dims[3] = {(hsize_t)N, (hsize_t)A, (hsize_t)G};
    hid_t s3[3] = {sc[XM__DIM_DAY], sc[XM__DIM_ACCOUNT], sc[XM__DIM_SILO]};
    char name[64], lname[256];
    xm__w_money(w, g, "/series", "realised", 2, dims, b->realised, s3, units,
                "realised loss of today's portfolio over the h days after d (positive = loss)");
    for (int m = 0; m < XM_BT_NMARGIN; m++)
      xm__w_money(w, g, "/series", xm_bt_margin_name(m), 2, dims, b->margin[m], s3, units,
                  xm__bt_long[m]);
    xm__w_money(w, g, "/series", "realised_by_silo", 3, dims, b->realised_by_silo, s3, units,
                "realised loss of each silo's positions over the h days after d");
    xm__w_money(w, g, "/series", "silo_margin", 3, dims, b->silo_margin, s3, units,
                "each silo's core plus its add-on");
    xm__w_flags(w, g, "/series", "binding_set", 2, dims, b->binding, s3,
                "the scenario set whose measure is the unified core (index into /set)", h->set, K);
    xm__w_money(w, g, "/series", "total_realised", 1, dims, b->total_realised, s3, rep,
                "the book's realised loss, each account's times today's rate of its currency");
    for (int m = 0; m < XM_BT_NMARGIN; m++) {
      snprintf(name, sizeof name, "total_%s", xm_bt_margin_name(m));
      snprintf(lname, sizeof lname, "the book's total (accounts at today's rates) of the %s",
               xm__bt_long[m]);
      xm__w_money(w, g, "/series", name, 1, dims, b->total_margin[m], s3, rep, lname);
    }
    static char *const test_flags[] = {"overlapping", "test"};
    xm__w_flags(w, g, "/series", "test_day", 1, dims, b->test_day, s3,
                "1 on the non-overlapping days the statistics use", test_flags, 2);
    /* extras (FORMAT.md section 4 has neither): what turns an account's
     * money into the reporting currency */
    xm__close_d(xm__w_var(w, g, "/series", "currency", w->str_t, w->str_t, 1, dims + 1, cur, s3 + 1,
                          NULL, "the account's currency: the units of its money datasets"));
    if (b->to_reporting)
      xm__w_money(w, g, "/series", "to_reporting", 1, dims + 1, b->to_reporting, s3 + 1, NULL,
                  "one unit of the account's currency in the reporting currency today (X_b)");
  }
  xm__close_dims(sc);
  xm__close_g(g);
  g = -1;

  /* /stats/<margin> [account], /stats/silo [account x silo], /stats/total/<margin> */
  g = xm__w_group(w, f, "/stats");
  if (g < 0)
    goto cleanup;
  for (int m = 0; m <= XM_BT_NMARGIN; m++) {
    int silo = m == XM_BT_NMARGIN;
    const char *name = silo ? "silo" : xm_bt_margin_name(m);
    snprintf(where, sizeof where, "/stats/%s", name);
    g2 = xm__w_group(w, g, name);
    if (g2 < 0 || xm__w_dims(w, g2, where, h, NULL, 0,
                             XM__DIM(XM__DIM_ACCOUNT) | (silo ? XM__DIM(XM__DIM_SILO) : 0), sc) < 0)
      goto cleanup;
    hsize_t dims[2] = {(hsize_t)A, (hsize_t)G};
    hid_t s2[2] = {sc[XM__DIM_ACCOUNT], sc[XM__DIM_SILO]};
    xm__w_bt_stats(w, g2, where, silo ? b->silo_stats : b->stats[m], silo ? 2 : 1, dims, s2,
                   silo || m == XM_BT_REQUIREMENT);
    xm__close_dims(sc);
    xm__close_g(g2);
    g2 = -1;
  }
  g2 = xm__w_group(w, g, "total");
  if (g2 < 0)
    goto cleanup;
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    snprintf(where, sizeof where, "/stats/total/%s", xm_bt_margin_name(m));
    hid_t g3 = xm__w_group(w, g2, xm_bt_margin_name(m));
    if (g3 < 0)
      goto cleanup;
    xm__w_bt_stats(w, g3, where, &b->total_stats[m], 0, NULL, NULL, m == XM_BT_REQUIREMENT);
    xm__close_g(g3);
  }
  xm__close_g(g2);
  g2 = -1;
  xm__close_g(g);
  g = -1;

  /* --save-scenarios: /scenarios/<set>/shock [day x scenario x factor], delta [day] */
  if (b->sets && K > 0) {
    g = xm__w_group(w, f, "/scenarios");
    if (g < 0)
      goto cleanup;
    for (int64_t k = 0; k < K; k++) {
      const xm_backtest_file_set *s = &b->sets[k];
      if (!s->shock && !s->delta)
        continue;
      snprintf(where, sizeof where, "/scenarios/%s", h->set[k]);
      g2 = xm__w_group(w, g, h->set[k]);
      if (g2 < 0 || xm__w_dims(w, g2, where, h, b->day, N, XM__DIM(XM__DIM_DAY), sc) < 0)
        goto cleanup;
      if (s->shock) {
        /* the scenario axis is labelled by its row (an extra: a set's scenarios
         * differ from day to day), so that xarray opens the group */
        int32_t *row = malloc((s->n_scenarios > 0 ? (size_t)s->n_scenarios : 1) * sizeof *row);
        if (!row) {
          xm__wfail(w, "%s: out of memory", where);
          goto cleanup;
        }
        for (int64_t i = 0; i < s->n_scenarios; i++)
          row[i] = (int32_t)i;
        hsize_t dims[3] = {(hsize_t)N, (hsize_t)s->n_scenarios, (hsize_t)s->n_factors};
        hid_t s3[3] = {sc[XM__DIM_DAY], -1, -1};
        const hid_t none = -1;
        s3[1] = xm__w_var(w, g2, where, "scenario", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims + 1,
                          row, &none, NULL, "row of the day's scenarios");
        free(row);
        s3[2] = xm__w_strs(w, g2, where, "factor", s->factor, s->n_factors);
        if (s3[1] >= 0 && s3[2] >= 0 &&
            (H5DSset_scale(s3[1], "scenario") < 0 || H5DSset_scale(s3[2], "factor") < 0))
          xm__wfail(w, "%s: HDF5 cannot make scenario and factor dimension scales", where);
        if (s3[1] >= 0 && s3[2] >= 0)
          xm__w_money(w, g2, where, "shock", 3, dims, later ? NULL : s->shock, s3, NULL,
                      "each day's scenarios: the h-day factor moves (rows past the day's count "
                      "NaN)");
        xm__close_d(s3[2]);
        xm__close_d(s3[1]);
      }
      if (s->delta) {
        hsize_t dims[1] = {(hsize_t)N};
        xm__w_money(w, g2, where, "delta", 1, dims, later ? NULL : s->delta, &sc[XM__DIM_DAY], NULL,
                    "jitter added to the covariance before its Cholesky factor, each day");
      }
      xm__close_dims(sc);
      xm__close_g(g2);
      g2 = -1;
    }
  }

cleanup:
  xm__close_d(d);
  xm__close_dims(sc);
  xm__close_g(g2);
  xm__close_g(g);
  xm__close_dims(root);
  free(cur);
  return xm__wr_close(w, st);
}

xm_status xm_backtest_write(const char *path, const xm_backtest_file *b, xm_diag *diag) {
  xm__wr w;
  return xm__wr_commit(&w, xm__backtest_file(&w, path, b, 0, diag));
}

#ifdef XM_WITH_MPI
/* ---- One file from the processes of an MPI job (docs/scaling.md) ---------------- */

/* A rank's block of one dataset: start[] and count[] along its rank
 * dimensions, from buf (those values, contiguous, of type mtype). */
typedef struct xm__part {
  char name[XM__WHERE];
  hid_t mtype;
  int rank;
  hsize_t start[3], count[3];
  const void *buf;
} xm__part;

/* Phase 2, on every rank: its block of each part into the closed temporary
 * file tmp, opened with the MPI-IO driver. Every rank makes the same HDF5
 * calls in the same order (the opening of the file and of each dataset and
 * the writes are collective) and they agree after each step, so that a rank
 * that fails cannot leave the others waiting; a block of no values selects
 * nothing. */
static xm_status xm__parts_write(const char *tmp, const char *path, const xm__part *parts,
                                 int64_t n, MPI_Comm comm, xm_diag *diag) {
  xm_status st = XM_OK;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), dx = H5Pcreate(H5P_DATASET_XFER), f = -1;
  if (fapl < 0 || dx < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
      H5Pset_dxpl_mpio(dx, H5FD_MPIO_COLLECTIVE) < 0 ||
      (f = H5Fopen(tmp, H5F_ACC_RDWR, fapl)) < 0) {
    xm_diag_add(diag, "%s: parallel HDF5 cannot open %s", path, tmp);
    st = XM_EIO;
  }
  int ok = st == XM_OK, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
  for (int64_t k = 0; all && k < n; k++) {
    const xm__part *p = &parts[k];
    hid_t d = H5Dopen2(f, p->name, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t m = 1, ext[3] = {0, 0, 0};
    for (int i = 0; i < p->rank; i++)
      m *= p->count[i];
    hid_t ms = m > 0 ? H5Screate_simple(p->rank, p->count, NULL) : H5Screate_simple(1, &m, NULL);
    ok = fs >= 0 && ms >= 0 && H5Sget_simple_extent_ndims(fs) == p->rank &&
         H5Sget_simple_extent_dims(fs, ext, NULL) == p->rank;
    for (int i = 0; ok && i < p->rank; i++)
      ok = p->start[i] + p->count[i] <= ext[i];
    if (ok && m > 0)
      ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, p->start, NULL, p->count, NULL) >= 0;
    else if (ok)
      ok = H5Sselect_none(fs) >= 0 && H5Sselect_none(ms) >= 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (all && H5Dwrite(d, p->mtype, ms, fs, dx, p->buf) < 0)
      ok = 0;
    if (!ok) {
      xm_diag_add(diag,
                  "%s: %s: parallel HDF5 cannot write this rank's part (from %llu, %llu "
                  "rows)",
                  path, p->name, (unsigned long long)p->start[0], (unsigned long long)p->count[0]);
      st = XM_EIO;
    }
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    if (ms >= 0)
      H5Sclose(ms);
    if (fs >= 0)
      H5Sclose(fs);
    if (d >= 0)
      H5Dclose(d);
  }
  if (!all && st == XM_OK)
    st = XM_EIO; /* another rank's failure: it says why */
  if (f >= 0 && H5Fclose(f) < 0 && st == XM_OK) {
    xm_diag_add(diag, "%s: parallel HDF5 cannot close %s", path, tmp);
    st = XM_EIO;
  }
  if (dx >= 0)
    H5Pclose(dx);
  if (fapl >= 0)
    H5Pclose(fapl);
  return st;
}

/* Phase 1 of a file: xm__results_file or xm__backtest_file. */
typedef xm_status (*xm__file_fn)(xm__wr *w, const char *path, const void *what, int later,
                                 xm_diag *diag);

static xm_status xm__results_fn(xm__wr *w, const char *path, const void *r, int later,
                                xm_diag *diag) {
  return xm__results_file(w, path, r, later, diag);
}

static xm_status xm__backtest_fn(xm__wr *w, const char *path, const void *b, int later,
                                 xm_diag *diag) {
  return xm__backtest_file(w, path, b, later, diag);
}

/* Every rank's statuses agreed (any failure: the worst, nothing written);
 * rank 0 writes all but the n parts' values (phase 1) into the temporary
 * file and closes it; every rank writes its parts (phase 2); rank 0 renames
 * the file, or removes it. Every rank returns the same status. n is the same
 * on every rank (0: rank 0 writes the whole file). */
static xm_status xm__write_mpi(const char *path, xm__file_fn file, const void *what, xm_status st,
                               const xm__part *parts, int64_t n, MPI_Comm comm, xm_diag *diag) {
  int rank = 0, worst = (int)st, bad = st != XM_OK, any = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
  if (any) { /* the worst status of those that failed */
    int mine = bad ? (int)st : 0;
    MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm);
    return (xm_status)worst;
  }
  xm__wr w;
  memset(&w, 0, sizeof w);
  if (rank == 0) {
    st = file(&w, path, what, n > 0, diag);
    if (n == 0 || st != XM_OK) /* renamed now, or removed */
      st = xm__wr_commit(&w, st);
  }
  char tmp[4096] = "";
  if (rank == 0 && st == XM_OK && n > 0)
    snprintf(tmp, sizeof tmp, "%s", w.tmp);
  int s0 = (int)st;
  MPI_Bcast(&s0, 1, MPI_INT, 0, comm);
  if (s0 != XM_OK || n == 0)
    return (xm_status)s0;
  MPI_Bcast(tmp, (int)sizeof tmp, MPI_CHAR, 0, comm);
  H5E_auto2_t fn;
  void *fd;
  H5Eget_auto2(H5E_DEFAULT, &fn, &fd);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  st = xm__parts_write(tmp, path, parts, n, comm, diag);
  H5Eset_auto2(H5E_DEFAULT, fn, fd);
  int e = (int)st;
  MPI_Allreduce(&e, &worst, 1, MPI_INT, MPI_MAX, comm);
  if (rank == 0)
    st = xm__wr_commit(&w, (xm_status)worst);
  s0 = (int)st;
  MPI_Bcast(&s0, 1, MPI_INT, 0, comm);
  return (xm_status)s0;
}

/* The parts list of n entries, or NULL (out of memory) after a message. */
static xm__part *xm__parts_new(int64_t n, const char *path, xm_diag *diag) {
  xm__part *p = calloc((size_t)n + 1, sizeof *p);
  if (!p)
    xm_diag_add(diag, "%s: out of memory", path);
  return p;
}

xm_status xm_results_write_mpi(const char *path, const xm_results *r, xm_status st,
                               int64_t pnl_begin, int64_t pnl_count, MPI_Comm comm, xm_diag *diag) {
  int64_t n = 0, K = r->head.n_sets;
  xm__part *parts = st == XM_OK ? xm__parts_new(K, path, diag) : NULL;
  if (st == XM_OK && !parts)
    st = XM_ENOMEM;
  for (int64_t k = 0; parts && k < K; k++) {
    const xm_results_set *s = &r->sets[k];
    if (!s->pnl && s->pnl_read && st == XM_OK) { /* each rank's columns are in memory */
      xm_diag_add(diag, "%s: /pnl/%s: a job's ranks write their losses from memory", path, s->name);
      st = XM_EINVAL;
    }
    if (!s->pnl || s->n_scenarios == 0)
      continue;
    xm__part *p = &parts[n++];
    snprintf(p->name, sizeof p->name, "/pnl/%s", s->name);
    p->mtype = H5T_NATIVE_FLOAT;
    p->rank = 2;
    p->start[1] = (hsize_t)pnl_begin;
    p->count[0] = (hsize_t)s->n_scenarios;
    p->count[1] = (hsize_t)pnl_count;
    p->buf = s->pnl;
  }
  st = xm__write_mpi(path, xm__results_fn, r, st, parts, n, comm, diag);
  free(parts);
  return st;
}

xm_status xm_backtest_write_mpi(const char *path, const xm_backtest_file *b, xm_status st,
                                int64_t day_begin, int64_t day_end, MPI_Comm comm, xm_diag *diag) {
  int64_t n = 0, K = b->sets ? b->head.n_sets : 0, nd = day_end - day_begin;
  xm__part *parts = st == XM_OK ? xm__parts_new(2 * K, path, diag) : NULL;
  if (st == XM_OK && !parts)
    st = XM_ENOMEM;
  for (int64_t k = 0; parts && k < K; k++) {
    const xm_backtest_file_set *s = &b->sets[k];
    hsize_t S = (hsize_t)s->n_scenarios, F = (hsize_t)s->n_factors;
    if (s->shock) {
      xm__part *p = &parts[n++];
      snprintf(p->name, sizeof p->name, "/scenarios/%s/shock", b->head.set[k]);
      p->mtype = H5T_NATIVE_DOUBLE;
      p->rank = 3;
      p->start[0] = (hsize_t)day_begin;
      p->count[0] = (hsize_t)nd, p->count[1] = S, p->count[2] = F;
      p->buf = s->shock + (size_t)day_begin * S * F;
    }
    if (s->delta) {
      xm__part *p = &parts[n++];
      snprintf(p->name, sizeof p->name, "/scenarios/%s/delta", b->head.set[k]);
      p->mtype = H5T_NATIVE_DOUBLE;
      p->rank = 1;
      p->start[0] = (hsize_t)day_begin;
      p->count[0] = (hsize_t)nd;
      p->buf = s->delta + day_begin;
    }
  }
  st = xm__write_mpi(path, xm__backtest_fn, b, st, parts, n, comm, diag);
  free(parts);
  return st;
}
#endif

/* ---- Where an output may go ----------------------------------------------------- */

static xm_status xm__out_msg(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static xm_status xm__out_msg(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && cap)
    vsnprintf(err, cap, fmt, ap);
  va_end(ap);
  return XM_EINVAL;
}

xm_status xm_output_check(const char *path, const char *const *inputs, int n_inputs, char *err,
                          size_t cap) {
  if (err && cap)
    err[0] = '\0';
  if (!path || !path[0])
    return xm__out_msg(err, cap, "the output file name is empty");
  size_t len = strlen(path);
  if (len >= XM_PATH_MAX)
    return xm__out_msg(err, cap, "%.64s...: an output path of %zu bytes is longer than %d", path,
                       len, XM_PATH_MAX - 1);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    return xm__out_msg(err, cap, "%s: not a file name", path);
  if (strlen(base) > XM_NAME_MAX)
    return xm__out_msg(err, cap,
                       "%.64s...: a file name of %zu bytes is longer than %d (its "
                       "temporary file needs the rest of the file system's 255)",
                       path, strlen(base), XM_NAME_MAX);
  char dir[XM_PATH_MAX];
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  struct stat sb, ib;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK) != 0)
    return xm__out_msg(err, cap, "%s: the folder %s does not exist or is not writable", path, dir);
  if (lstat(path, &sb) != 0)
    return errno == ENOENT
               ? XM_OK
               : xm__out_msg(err, cap, "%s: cannot check it: %s", path, strerror(errno));
  if (S_ISLNK(sb.st_mode))
    return xm__out_msg(err, cap,
                       "%s: is a symbolic link: refused (it would be replaced by a regular "
                       "file; give the path it points to)",
                       path);
  if (S_ISDIR(sb.st_mode))
    return xm__out_msg(err, cap, "%s: is a directory; give a file name", path);
  if (!S_ISREG(sb.st_mode))
    return xm__out_msg(err, cap,
                       "%s: exists and is not a regular file (a device, FIFO or "
                       "socket): refused",
                       path);
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] && stat(inputs[i], &ib) == 0 && ib.st_dev == sb.st_dev && ib.st_ino == sb.st_ino)
      return xm__out_msg(err, cap, "%s: is the input file %s: a run never writes over its inputs",
                         path, inputs[i]);
  return XM_OK;
}
