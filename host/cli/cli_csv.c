/* A small RFC 4180 reader for the CLI's CSV inputs (xmargin import, xmargin
 * whatif): the whole file in memory, cells NUL-terminated in place. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define XM__CSV_MAX_BYTES ((size_t)1 << 30) /* 1 GiB a file */
#define XM__CSV_MAX_COLS 256

void xm__csv_free(xm__csv *c) {
  free(c->buf);
  free(c->head);
  free(c->cell);
  free(c->line);
  memset(c, 0, sizeof *c);
}

/* Reads path into c. Returns 0, 2 (bad input, message printed) or 1 (memory). */
int xm__csv_read(const char *path, xm__csv *c) {
  memset(c, 0, sizeof *c);
  c->path = path;
  struct stat sb;
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "xmargin import: %s: cannot open: %s\n", path, strerror(errno));
    return 2;
  }
  if (!S_ISREG(sb.st_mode)) {
    fprintf(stderr, "xmargin import: %s: not a regular file\n", path);
    return 2;
  }
  if ((uint64_t)sb.st_size > XM__CSV_MAX_BYTES) {
    fprintf(stderr, "xmargin import: %s: %lld bytes: larger than the 1 GiB a CSV file may have\n",
            path, (long long)sb.st_size);
    return 2;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "xmargin import: %s: cannot open: %s\n", path, strerror(errno));
    return 2;
  }
  size_t cap = (size_t)sb.st_size + 1, n = 0;
  c->buf = malloc(cap + 1);
  if (!c->buf) {
    fclose(f);
    return 1;
  }
  n = fread(c->buf, 1, cap, f);
  int rerr = ferror(f);
  fclose(f);
  if (rerr || n == cap) {
    fprintf(stderr, "xmargin import: %s: read error (or the file grew while read)\n", path);
    return 2;
  }
  c->buf[n] = '\0';
  if (memchr(c->buf, '\0', n)) {
    fprintf(stderr, "xmargin import: %s: a NUL byte: not a text file\n", path);
    return 2;
  }
  /* Upper bound of the cells: one per comma or line end, plus one. */
  size_t ncells = 1;
  for (size_t i = 0; i < n; i++)
    ncells += c->buf[i] == ',' || c->buf[i] == '\n';
  char **cells = malloc(ncells * sizeof *cells);
  int64_t *lines = malloc(ncells * sizeof *lines);
  if (!cells || !lines) {
    free(cells);
    free(lines);
    return 1;
  }
  char *p = c->buf, *end = c->buf + n;
  if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte-order mark */
    p += 3;
  int64_t line = 1, nrec = 0, ntot = 0;
  int rc = 0, fields = 0;
  while (p < end) {
    /* one record */
    int64_t rec_line = line;
    fields = 0;
    if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) { /* a blank line */
      p += *p == '\r' ? 2 : 1;
      line++;
      continue;
    }
    for (;;) {
      /* a quoted field is copied left in place (from start + 1 onto start) */
      char *start = p, *out = p;
      if (*p == '"') {
        p++;
        for (;;) {
          if (p >= end) {
            fprintf(stderr, "xmargin import: %s: line %lld: a quoted field is not closed\n", path,
                    (long long)rec_line);
            rc = 2;
            goto done;
          }
          if (*p == '"') {
            if (p + 1 < end && p[1] == '"') {
              *out++ = '"';
              p += 2;
              continue;
            }
            p++;
            break;
          }
          if (*p == '\n')
            line++;
          *out++ = *p++;
        }
        if (p < end && *p != ',' && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
          fprintf(stderr,
                  "xmargin import: %s: line %lld: text after a closing quote (RFC 4180: a "
                  "quote in a field is written \"\")\n",
                  path, (long long)line);
          rc = 2;
          goto done;
        }
      } else {
        while (p < end && *p != ',' && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n')) {
          if (*p == '"') {
            fprintf(stderr,
                    "xmargin import: %s: line %lld: a quote inside an unquoted field (RFC "
                    "4180: quote the whole field)\n",
                    path, (long long)line);
            rc = 2;
            goto done;
          }
          p++;
        }
        out = p;
      }
      char sep = p < end ? *p : '\n';
      *out = '\0';                  /* out <= p: the separator was read first */
      if ((size_t)ntot >= ncells) { /* cannot happen: a cell per separator, plus one */
        rc = 2;
        goto done;
      }
      cells[ntot] = start;
      lines[ntot] = rec_line;
      ntot++;
      fields++;
      if (sep == ',') {
        p++;
        continue;
      }
      if (p < end)
        p += *p == '\r' ? 2 : 1;
      line++;
      break;
    }
    if (nrec == 0) {
      if (fields > XM__CSV_MAX_COLS) {
        fprintf(stderr, "xmargin import: %s: line 1: %d columns: at most %d\n", path, fields,
                XM__CSV_MAX_COLS);
        rc = 2;
        goto done;
      }
      c->ncols = fields;
    } else if (fields != c->ncols) {
      fprintf(stderr, "xmargin import: %s: line %lld: %d fields, the header has %d\n", path,
              (long long)rec_line, fields, c->ncols);
      rc = 2;
      goto done;
    }
    nrec++;
  }
  if (nrec == 0) {
    fprintf(stderr, "xmargin import: %s: empty: no header row\n", path);
    rc = 2;
    goto done;
  }
  c->nrows = nrec - 1;
  c->head = malloc((size_t)c->ncols * sizeof *c->head);
  c->line = malloc(((size_t)c->nrows + 1) * sizeof *c->line);
  if (!c->head || !c->line) {
    rc = 1;
    goto done;
  }
  for (int j = 0; j < c->ncols; j++)
    c->head[j] = cells[j];
  for (int64_t r = 0; r < c->nrows; r++)
    c->line[r] = lines[(r + 1) * c->ncols];
  for (int j = 0; j < c->ncols; j++)
    for (int k = 0; k < j; k++)
      if (strcmp(c->head[j], c->head[k]) == 0) {
        fprintf(stderr, "xmargin import: %s: line 1: column '%s' appears twice\n", path,
                c->head[j]);
        rc = 2;
        goto done;
      }
  c->cell = cells;
  cells = NULL;
done:
  free(cells);
  free(lines);
  return rc;
}

/* The column index of name, or -1. */
int xm__csv_col(const xm__csv *c, const char *name) {
  for (int j = 0; j < c->ncols; j++)
    if (strcmp(c->head[j], name) == 0)
      return j;
  return -1;
}

/* The cell (row r, column j); "" for an absent column (j < 0). */
const char *xm__csv_at(const xm__csv *c, int64_t r, int j) {
  return j < 0 ? "" : c->cell[(r + 1) * c->ncols + j];
}
