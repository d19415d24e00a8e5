/* io/: the columns of the portfolio and scenario files (FORMAT.md sections 1
 * and 2), one table per group: each column's dataset name, what its elements
 * are in the file (string, integer, float), whether it is required, and
 * where it lands in xm_portfolio / xm_scenario_file / xm_scenario_set
 * (offsetof its array and of the counts of its shape). The reader
 * (xm_io_read.c) reads by these tables, the writer (xm_io_write.c) writes by
 * them, the frees and the in-memory validation (xm_validate.c) walk them: a
 * column's name is spelled here only. Attributes are not columns: their
 * handling is the reader's and the writer's. No HDF5 here; static tables;
 * internal to io/. */
#ifndef XM_SCHEMA_H
#define XM_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xm_internal.h" /* xm__strdup */
#include "xm_io.h"

/* What a column's elements are in the file, and the array in memory. */
typedef enum xm__elem {
  XM__STRING, /* a string; memory: char ** (a coded column: int32_t *, see codes) */
  XM__INT,    /* an integer, or a float holding whole numbers; memory: int32_t * */
  XM__FLOAT,  /* an integer or a float; memory: double * */
} xm__elem;

/* The enumeration a string column names (xmargin_types.h, by xm_tables.h):
 * in memory each value is its row in names[], an int32 code. */
typedef struct xm__codes {
  const char *const *names; /* [count] */
  int count;
  const char *what; /* "factor kind", for messages */
  unsigned listed;  /* bit k: names[k] is offered in messages ("must be one of") */
} xm__codes;

#define XM__RANK1 ((size_t)-1) /* cols of a 1-D column */

typedef struct xm__column {
  const char *name; /* the dataset in the group */
  xm__elem elem;
  int required;           /* 0: optional; when absent its array stays NULL */
  size_t at;              /* offsetof its array in the struct */
  size_t rows;            /* offsetof the int64_t count of its rows */
  size_t cols;            /* offsetof the int64_t count of its columns (row-major
                             [rows x cols]; XM__FLOAT only), or XM__RANK1 */
  const xm__codes *codes; /* XM__STRING of an XM__TABLE: the enumeration its
                             values name (stored as codes), or NULL (stored as
                             strings) */
  const char *empty;      /* XM__ARRAYS, a column that owns its count: the rule a
                             count of 0 breaks */
  const char *match;      /* XM__ARRAYS, the other columns: the shape they must
                             have, for messages */
} xm__column;

typedef enum xm__layout {
  XM__TABLE,  /* a FORMAT.md table: 1-D columns of one length, the count `rows` */
  XM__ARRAYS, /* datasets of their own shapes: the first 1-D column with a
                 count owns it (its length is the count); every other column
                 must have the shape of the counts it names */
} xm__layout;

/* Columns of one table at most (xm_schema.c checks its tables). */
#define XM__MAX_COLUMNS 16

typedef struct xm__table {
  const char *group; /* "/factors"; a set's is "/sets/" and its name */
  xm__layout layout;
  const xm__column *cols;
  int ncols;
  size_t rows;       /* XM__TABLE: offsetof the count of rows */
  const char *empty; /* XM__TABLE, not optional: the rule an empty table breaks */
  int optional;      /* XM__TABLE: an absent group is 0 rows (version 2's /fx,
                        /collateral); present, it is read and checked as any
                        table, and may be empty */
} xm__table;

/* /factors, /silos, /instruments, /accounts, /fx, /collateral, /positions,
 * in FORMAT.md's order, into xm_portfolio. */
#define XM__PORTFOLIO_TABLES 7
extern const xm__table xm__portfolio_tables[XM__PORTFOLIO_TABLES];
/* /history, into xm_scenario_file. */
extern const xm__table xm__history_table;
/* /sets/<name>, into one xm_scenario_set. */
extern const xm__table xm__set_table;

/* The first 1-D column of an XM__ARRAYS table with count `rows` (the one
 * that owns it), or NULL. */
const xm__column *xm__count_owner(const xm__table *t, size_t rows);

/* Frees the arrays of t's columns in base (the strings of a string column
 * with them) and sets them to NULL; the counts are left as they are. */
void xm__table_free(const xm__table *t, void *base);
/* Frees s[0..n) and s; NULL is a no-op. */
void xm__free_strings(char **s, int64_t n);

/* Access to a column's array and its counts in a struct, by offset (memcpy:
 * the arrays have different pointer types). */
static inline void *xm__col_get(const void *base, size_t at) {
  void *v;
  memcpy(&v, (const char *)base + at, sizeof v);
  return v;
}
static inline void xm__col_set(void *base, size_t at, void *v) {
  memcpy((char *)base + at, &v, sizeof v);
}
static inline int64_t xm__count_get(const void *base, size_t at) {
  int64_t n;
  memcpy(&n, (const char *)base + at, sizeof n);
  return n;
}
static inline void xm__count_set(void *base, size_t at, int64_t n) {
  memcpy((char *)base + at, &n, sizeof n);
}

#endif
