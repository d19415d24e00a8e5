/* io/: the rules of FORMAT.md that the structs in memory can show
 * (xm_validate.c), without HDF5. Internal to io/.
 *
 * Two callers run the same checks:
 *   - the reader (xm_io_read.c), on what it read: it has judged the file's
 *     structure itself (a missing group or column, a wrong type or shape, an
 *     empty table, a name that is no code, a string that is not text, a bad
 *     root attribute or set name: xm_hdf5.c and xm_io_read.c, with the
 *     file's words) and leaves a broken column NULL, so these checks skip it;
 *   - xm_portfolio_validate / xm_scenarios_validate (xm_io.h), on a struct a
 *     caller built: they first check in memory what the reader checks on the
 *     file (counts, NULL columns, empty tables, codes, text, root attributes,
 *     set names), then run the same checks.
 * Nothing here writes through a struct's pointers. */
#ifndef XM_VALIDATE_H
#define XM_VALIDATE_H

#include <stdarg.h>
#include <stddef.h>

#include "xm_io.h"

/* Message buffer of one rule (a longer message is cut there). */
#define XM__MSG_CAP 1024
/* An object path inside a file (set names are at most XM_SET_NAME_MAX). */
#define XM__PATH_CAP 512

/* Where the messages of one validation go, and what went wrong. */
typedef struct xm__check {
  const char *file; /* every message starts with "file: " */
  xm_diag *diag;    /* may be NULL: counted, not kept */
  int nerr;         /* contract violations reported */
  int nomem;        /* allocations that failed */
} xm__check;

/* Adds "file: <message>" to c->diag (no count). */
void xm__vreport(xm__check *c, const char *fmt, va_list ap);
/* A contract violation: the message, and c->nerr + 1. */
void xm__violation(xm__check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An allocation failed while checking `what`: the message, and c->nomem + 1. */
void xm__check_nomem(xm__check *c, const char *what);
/* XM_ENOMEM, XM_EFORMAT or XM_OK, in that order. */
xm_status xm__check_status(const xm__check *c);

/* ---- Rules the reader applies to a file's values before it stores them ---- */

/* 1 when s is a real ISO date YYYY-MM-DD. */
int xm__iso_date(const char *s);
/* NULL when s is ASCII or UTF-8 text with no control character (C0, DEL,
 * C1); else the rule it breaks, and *at the byte where. */
const char *xm__text_rule(const char *s, size_t *at);
/* Root attributes: each returns 1 when s is valid, else 0 after a message. */
int xm__rule_valuation_date(xm__check *c, const char *s);
int xm__rule_currency(xm__check *c, const char *s);
/* A set name (FORMAT.md section 2: letters, digits, _ and -, at most
 * XM_SET_NAME_MAX characters, not "account"): 1, or 0 after a message. */
int xm__rule_set_name(xm__check *c, const char *name);
/* A set's confidence (not NaN) must be in (0, 1); group is "/sets/<name>".
 * 1, or 0 after a message. */
int xm__rule_confidence(xm__check *c, const char *group, double conf);
/* "a, b, c": the names[0..n) of an enumeration table whose bit is set in
 * listed, for messages. */
void xm__names_list(const char *const *names, int n, unsigned listed, char *buf, size_t cap);

/* ---- The checks of the values, in the order the reader reports them ---- */

/* Names unique and non-empty, levels, indices in range, the kinds the
 * instruments refer to, option fields, cross_margin, positions. */
void xm__portfolio_check(xm__check *c, const xm_portfolio *p);
/* /history: factor names, dates real and increasing, returns finite. */
void xm__history_check(xm__check *c, const xm_scenario_file *s);
/* One set: reserved name, factor names, shocks finite, weights, measure,
 * confidence. */
void xm__set_check(xm__check *c, const xm_scenario_set *set);

#endif
