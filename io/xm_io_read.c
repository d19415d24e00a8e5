/* io/: reading portfolio and scenario files (FORMAT.md sections 1 and 2)
 * into their structs. The groups and datasets are read by the column tables
 * of xm_schema.c, through the HDF5 plumbing of xm_hdf5.c (which bounds what
 * a file may make the reader do: docs/io.md); what only the file can show
 * is judged here (a missing or wrong object, columns of unequal length, an
 * empty table, a name that is no code, the root attributes, the set
 * groups), and what the struct can show by the checks of xm_validate.c,
 * which the reader runs on what it read: a struct built in memory is
 * checked by the same code (xm_portfolio_validate, xm_scenarios_validate).
 * Every violation becomes one message "file: /dataset[row] = value: rule"
 * in the caller's xm_diag. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "xm_hdf5.h"
#include "xm_io.h"
#include "xm_schema.h"
#include "xm_tables.h"
#include "xm_validate.h"

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
    xm__bad(r, "/: attribute format_version is missing (must be 1 or 2)");
  else if (got > 0 && v != 1.0 && v != 2.0)
    xm__bad(r, "/: attribute format_version = %g: must be 1 or 2 (the versions this xmargin reads)",
            v);
  return cont;
}

/* ---- Columns ----------------------------------------------------------------- */

/* Maps the names s[n] of a coded column to their codes; an unknown name is
 * reported (code -1). */
static int32_t *xm__map_names(xm__rd *r, const char *path, char **s, int64_t n,
                              const xm__codes *codes) {
  if (!s)
    return NULL;
  int32_t *code = malloc((n ? (size_t)n : 1) * sizeof *code);
  if (!code) {
    xm__nomem(r, path);
    return NULL;
  }
  char allowed[256];
  xm__names_list(codes->names, codes->count, codes->listed, allowed, sizeof allowed);
  for (int64_t i = 0; i < n; i++) {
    code[i] = -1;
    for (int k = 0; k < codes->count; k++)
      if (strcmp(s[i], codes->names[k]) == 0)
        code[i] = k;
    if (code[i] < 0)
      xm__bad(r, "%s[%lld] = '%.64s': unknown %s (must be one of %s)", path, (long long)i, s[i],
              codes->what, allowed);
  }
  return code;
}

/* Reads column col ([n x m] of dataset did) into its array in base; a coded
 * column's strings go to *text instead (mapped by the caller). Returns 1, or
 * 0 after a message (the array left NULL). */
static int xm__read_column(xm__rd *r, const char *path, hid_t did, hsize_t n, hsize_t m,
                           const xm__column *col, void *base, char ***text) {
  int ok = 0;
  switch (col->elem) {
  case XM__STRING: {
    char **s = NULL;
    ok = xm__read_strings(r, path, did, n, &s);
    if (col->codes)
      *text = s;
    else
      xm__col_set(base, col->at, s);
    break;
  }
  case XM__INT: {
    int32_t *v = NULL;
    ok = xm__read_i32(r, path, did, n, &v);
    xm__col_set(base, col->at, v);
    break;
  }
  case XM__FLOAT: {
    double *v = NULL;
    ok = xm__read_f64(r, path, did, n, m, &v);
    xm__col_set(base, col->at, v);
    break;
  }
  }
  return ok;
}

/* Reads table t (a group of 1-D columns of one length, the first column's)
 * into base. A required column that is missing, a column of the wrong type
 * or length is reported and left NULL (an optional column that is absent
 * stays NULL); an empty table is reported (unless t is optional, which may
 * also be absent: 0 rows); then the names of the coded columns are mapped to
 * codes. */
static void xm__read_table(xm__rd *r, const xm__table *t, void *base) {
  xm__count_set(base, t->rows, 0);
  int ex = xm__exists(r, t->group, H5I_GROUP);
  if (ex == -2 || (ex == 0 && t->optional))
    return;
  if (ex == 0) {
    xm__bad(r, "%s: required group is missing", t->group);
    return;
  }
  if (ex < 0) {
    xm__bad(r, "%s: must be a group", t->group);
    return;
  }
  char **text[XM__MAX_COLUMNS] = {NULL};
  const char *ref = NULL;
  hsize_t ref_rows = 0;
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t->group, col->name);
    if (!col->required) {
      int cx = xm__exists(r, path, H5I_DATASET);
      if (cx == -2) /* refused, with its message */
        continue;
      if (cx < 0) {
        xm__bad(r, "%s: must be a dataset, not a group or other object", path);
        continue;
      }
      if (cx == 0) /* absent: the default */
        continue;
    }
    hsize_t dims[2];
    hid_t did = xm__open_dset(r, path, 1, dims);
    if (did < 0)
      continue;
    if (!ref) {
      ref = col->name;
      ref_rows = dims[0];
    } else if (dims[0] != ref_rows) {
      xm__bad(r, "%s: has %llu rows, but %s/%s has %llu (columns must have equal lengths)", path,
              (unsigned long long)dims[0], t->group, ref, (unsigned long long)ref_rows);
      H5Dclose(did);
      continue;
    }
    xm__read_column(r, path, did, dims[0], 1, col, base, &text[k]);
    H5Dclose(did);
  }
  int64_t n = (int64_t)ref_rows;
  xm__count_set(base, t->rows, n);
  if (n == 0 && !t->optional)
    xm__bad(r, "%s: has no rows: %s", t->group, t->empty);
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    if (!col->codes)
      continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t->group, col->name);
    xm__col_set(base, col->at, xm__map_names(r, path, text[k], n, col->codes));
    xm__free_strings(text[k], n); /* read only with the table's length */
  }
}

/* Reads the datasets of table t (an XM__ARRAYS group, here named g) into
 * base: first the 1-D columns that own a count (their length is it; an
 * empty one is reported), then the others, whose shape must be the counts
 * they name (a count whose column is broken is unknown: nothing to check it
 * against, and the column is not read). A broken column is left NULL. */
static void xm__read_arrays(xm__rd *r, const xm__table *t, const char *g, void *base) {
  int known[XM__MAX_COLUMNS] = {0}; /* the count owned by column k was read */
  char path[XM__PATH_CAP + 64];
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    if (xm__count_owner(t, col->rows) != col)
      continue;
    snprintf(path, sizeof path, "%s/%s", g, col->name);
    hsize_t dims[2];
    hid_t did = xm__open_dset(r, path, 1, dims);
    if (did < 0)
      continue;
    int ok = xm__read_column(r, path, did, dims[0], 1, col, base, NULL);
    H5Dclose(did);
    if (!ok)
      continue;
    xm__count_set(base, col->rows, (int64_t)dims[0]);
    known[k] = 1;
    if (dims[0] == 0)
      xm__bad(r, "%s: has no rows: %s", path, col->empty);
  }
  for (int k = 0; k < t->ncols; k++) {
    const xm__column *col = &t->cols[k];
    const xm__column *ro = xm__count_owner(t, col->rows);
    const xm__column *co = col->cols == XM__RANK1 ? NULL : xm__count_owner(t, col->cols);
    if (ro == col)
      continue;
    int64_t n = known[ro - t->cols] ? xm__count_get(base, col->rows) : -1;
    int64_t m = !co ? 1 : known[co - t->cols] ? xm__count_get(base, col->cols) : -1;
    snprintf(path, sizeof path, "%s/%s", g, col->name);
    if (!col->required) {
      int ex = xm__exists(r, path, H5I_DATASET);
      if (ex == -2) /* refused, with its message */
        continue;
      if (ex < 0) {
        xm__bad(r, "%s: must be a dataset", path);
        continue;
      }
      if (ex == 0)
        continue;
    }
    hsize_t dims[2];
    hid_t did = xm__open_dset(r, path, co ? 2 : 1, dims);
    if (did < 0)
      continue;
    if (n < 0 || m < 0) {
      /* the columns it must match are broken: nothing to check it against */
    } else if (co && (dims[0] != (hsize_t)n || dims[1] != (hsize_t)m)) {
      xm__bad(r, "%s: has shape [%llu x %llu], must be %s = [%lld x %lld]", path,
              (unsigned long long)dims[0], (unsigned long long)dims[1], col->match, (long long)n,
              (long long)m);
    } else if (!co && dims[0] != (hsize_t)n) {
      xm__bad(r, "%s: has %llu rows, but %s/%s has %lld (%s)", path, (unsigned long long)dims[0], g,
              ro->name, (long long)n, col->match);
    } else {
      xm__read_column(r, path, did, dims[0], dims[1], col, base, NULL);
    }
    H5Dclose(did);
  }
}

/* ---- Portfolio --------------------------------------------------------------- */

void xm_portfolio_free(xm_portfolio *p) {
  if (!p)
    return;
  free(p->path);
  for (int t = 0; t < XM__PORTFOLIO_TABLES; t++)
    xm__table_free(&xm__portfolio_tables[t], p);
  memset(p, 0, sizeof *p);
}

/* Reads and validates the portfolio of r into *arg (an xm_portfolio). */
static void xm__portfolio_body(xm__rd *r, void *arg) {
  xm_portfolio *p = arg;
  char *s = NULL;
  if (!xm__check_format(r, "xmargin.portfolio"))
    return;
  p->path = xm__strdup(r->ck.file);
  if (!p->path) {
    xm__nomem(r, "path");
    return;
  }

  /* root attributes */
  int got = xm__attr_str(r, "/", "valuation_date", &s);
  if (got == 0)
    xm__bad(r, "/: attribute valuation_date is missing (ISO YYYY-MM-DD)");
  else if (got > 0 && xm__rule_valuation_date(&r->ck, s))
    snprintf(p->valuation_date, sizeof p->valuation_date, "%s", s);
  free(s);
  s = NULL;
  got = xm__attr_str(r, "/", "currency", &s);
  if (got == 0)
    xm__bad(r, "/: attribute currency is missing (e.g. USD)");
  else if (got > 0 && xm__rule_currency(&r->ck, s))
    snprintf(p->currency, sizeof p->currency, "%s", s);
  free(s);

  /* the tables, then what their values must satisfy */
  for (int t = 0; t < XM__PORTFOLIO_TABLES; t++)
    xm__read_table(r, &xm__portfolio_tables[t], p);
  if (!r->probe && !r->ck.nomem && !r->io)
    xm__portfolio_check(&r->ck, p);
}

static void xm__portfolio_free_v(void *p) { xm_portfolio_free(p); }

xm_status xm_portfolio_read(const char *path, xm_portfolio *out, xm_diag *diag) {
  return xm__read_file(path, out, sizeof *out, xm__portfolio_body, xm__portfolio_free_v, diag);
}

/* ---- Scenario file ------------------------------------------------------------ */

void xm_scenarios_free(xm_scenario_file *s) {
  if (!s)
    return;
  free(s->path);
  xm__table_free(&xm__history_table, s);
  if (s->sets)
    for (int64_t i = 0; i < s->n_sets; i++) {
      free(s->sets[i].name);
      xm__table_free(&xm__set_table, &s->sets[i]);
      memset(&s->sets[i], 0, sizeof s->sets[i]);
    }
  free(s->sets);
  memset(s, 0, sizeof *s);
}

/* Reads set->name's group: its datasets, their checks, then its
 * attributes (the order the messages come in). */
static void xm__read_set(xm__rd *r, xm_scenario_set *set) {
  char g[XM__PATH_CAP];
  snprintf(g, sizeof g, "/sets/%s", set->name);
  xm__read_arrays(r, &xm__set_table, g, set);
  set->measure = XM_MEASURE_WORST; /* the defaults, until the attributes are read */
  set->confidence = NAN;
  if (!r->probe)
    xm__set_check(&r->ck, set);

  char *m = NULL;
  if (xm__attr_str(r, g, "measure", &m) > 0) {
    int found = -1;
    for (int k = 0; k < XM_MEASURE_COUNT; k++)
      if (strcmp(m, xm__measure_names[k]) == 0)
        found = k;
    if (found < 0) {
      char allowed[128];
      xm__names_list(xm__measure_names, XM_MEASURE_COUNT, ~0u, allowed, sizeof allowed);
      xm__bad(r, "%s: attribute measure = '%.64s': must be one of %s", g, m, allowed);
    } else {
      set->measure = found;
    }
  }
  free(m);
  double c = NAN;
  if (xm__attr_f64(r, g, "confidence", &c) > 0 && xm__rule_confidence(&r->ck, g, c))
    set->confidence = c; /* the rule of xm__set_check, on the file's value (NaN included) */
}

/* The names of the links of a group. */
typedef struct xm__list {
  char **s;
  size_t n, cap;
  int nomem;
} xm__list;

static herr_t xm__collect(hid_t gid, const char *name, const H5L_info_t *info, void *op) {
  (void)gid;
  (void)info;
  xm__list *l = op;
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
  xm__list l = {0};
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
  /* keep the groups with valid names (other objects are ignored), sorted */
  size_t keep = 0;
  for (size_t i = 0; i < l.n; i++) {
    char path[XM__PATH_CAP];
    if (!xm__rule_set_name(&r->ck, l.s[i])) {
      free(l.s[i]);
      continue;
    }
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
  s->path = xm__strdup(r->ck.file);
  if (!s->path) {
    xm__nomem(r, "path");
    return;
  }
  int hist = xm__exists(r, "/history", H5I_GROUP);
  int sets = xm__exists(r, "/sets", H5I_GROUP);
  if (hist == -1)
    xm__bad(r, "/history: must be a group");
  if (sets == -1)
    xm__bad(r, "/sets: must be a group");
  if (hist == 0 && sets == 0)
    xm__bad(r, "/: has neither /history nor /sets: no scenarios to run");
  if (hist > 0) {
    xm__read_arrays(r, &xm__history_table, xm__history_table.group, s);
    if (!r->probe)
      xm__history_check(&r->ck, s);
  }
  if (sets > 0 && !r->ck.nomem)
    xm__read_sets(r, s);
}

static void xm__scenarios_free_v(void *s) { xm_scenarios_free(s); }

xm_status xm_scenarios_read(const char *path, xm_scenario_file *out, xm_diag *diag) {
  return xm__read_file(path, out, sizeof *out, xm__scenarios_body, xm__scenarios_free_v, diag);
}

/* ---- The kind of a file ----------------------------------------------------- */

typedef struct xm__kind {
  char *format;
  double version; /* NaN when absent or not a number */
} xm__kind;

/* Reads the root attributes format ("" if absent) and format_version into
 * *arg (an xm__kind). */
static void xm__format_body(xm__rd *r, void *arg) {
  xm__kind *k = arg;
  xm_diag *d = r->ck.diag;
  r->ck.diag = NULL; /* missing or not a string: "" (an unknown kind), no message */
  xm__attr_str(r, "/", "format", &k->format);
  k->version = NAN;
  double v = NAN;
  if (xm__attr_f64(r, "/", "format_version", &v) > 0)
    k->version = v;
  r->ck.diag = d;
  r->ck.nerr = 0;
}

static void xm__format_free(void *arg) {
  xm__kind *k = arg;
  free(k->format);
  k->format = NULL;
}

xm_status xm_file_kind(const char *path, char *buf, size_t cap, int *version, xm_diag *diag) {
  if (!path || !buf || cap == 0)
    return XM_EINVAL;
  buf[0] = '\0';
  if (version)
    *version = 0;
  xm__kind k = {NULL, NAN};
  xm_status st = xm__read_file(path, &k, sizeof k, xm__format_body, xm__format_free, diag);
  if (k.format)
    snprintf(buf, cap, "%s", k.format);
  if (version && k.version >= 1 && k.version <= INT32_MAX && k.version == floor(k.version))
    *version = (int)k.version;
  free(k.format);
  return st;
}

xm_status xm_file_format(const char *path, char *buf, size_t cap, xm_diag *diag) {
  return xm_file_kind(path, buf, cap, NULL, diag);
}
