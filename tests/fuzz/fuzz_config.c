/* libFuzzer target: the INI reader (xm_config_load, host/config.c) on
 * arbitrary bytes, and xm_config_set on the input's "key = value" lines.
 *
 * Besides the sanitizers, the target checks the promise of xm_config_to_ini:
 * loading its text gives back the configuration. Both the configuration a
 * successful load gave and the one the xm_config_set calls built are printed,
 * loaded again over the defaults and printed again: the two texts must be
 * equal, and the load must succeed. */
#include "fuzz_common.h"
#include "xmargin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define XMF_SET_LINES 64
#define XMF_LINE_MAX 512

static void xmf_fail(const char *what, const char *detail, const char *a, const char *b) {
  fprintf(stderr, "fuzz_config: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  if (a)
    fprintf(stderr, "---- first text ----\n%s\n", a);
  if (b)
    fprintf(stderr, "---- second text ----\n%s\n", b);
  abort();
}

/* xm_config_to_ini(cfg), loaded over the defaults, must print the same text. */
static void xmf_roundtrip(const xm_config *cfg) {
  char err[1024];
  char *ini = xm_config_to_ini(cfg);
  if (!ini)
    xmf_fail("xm_config_to_ini returned NULL", NULL, NULL, NULL);
  const char *path = xmf_write(1, "config-ini", ini, strlen(ini));
  xm_config back;
  xm_config_default(&back);
  xm_status st = xm_config_load(&back, path, err, sizeof err);
  if (st != XM_OK)
    xmf_fail("the text of xm_config_to_ini does not load", err, ini, NULL);
  char *again = xm_config_to_ini(&back);
  if (!again)
    xmf_fail("xm_config_to_ini returned NULL", NULL, NULL, NULL);
  if (strcmp(ini, again) != 0)
    xmf_fail("loading the text of xm_config_to_ini does not give back the configuration", NULL, ini,
             again);
  free(again);
  free(ini);
}

/* Copies s[0..n) into buf[cap] without leading/trailing blanks. */
static void xmf_trim(char *buf, size_t cap, const char *s, size_t n) {
  while (n && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
    n--;
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[1024];

  /* 1. The whole input as an INI file. */
  const char *path = xmf_write(0, "config", data, size);
  xm_config cfg;
  xm_config_default(&cfg);
  xm_status st = xm_config_load(&cfg, path, err, sizeof err);
  if (memchr(err, '\0', sizeof err) == NULL)
    xmf_fail("xm_config_load left err unterminated", NULL, NULL, NULL);
  if (xmf_verbose())
    fprintf(stderr, "fuzz_config: xm_config_load: status %d%s%s\n", (int)st, err[0] ? ": " : "",
            err);
  if (st == XM_OK)
    xmf_roundtrip(&cfg);

  /* 2. Each "key = value" line (the first XMF_SET_LINES) through xm_config_set,
   * the way --set key=value passes it. */
  xm_config set;
  xm_config_default(&set);
  const char *p = (const char *)data, *end = p + size;
  for (int lines = 0; p < end && lines < XMF_SET_LINES; lines++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *eq = memchr(p, '=', (size_t)(le - p));
    if (eq) {
      char key[XMF_LINE_MAX], value[XMF_LINE_MAX];
      xmf_trim(key, sizeof key, p, (size_t)(eq - p));
      xmf_trim(value, sizeof value, eq + 1, (size_t)(le - eq - 1));
      /* embedded NULs end the strings early, as they would on a command line */
      xm_config_set(&set, key, value, err, sizeof err);
      if (memchr(err, '\0', sizeof err) == NULL)
        xmf_fail("xm_config_set left err unterminated", NULL, NULL, NULL);
      /* a tiny message buffer must be handled too */
      char small[8];
      xm_config tmp = set;
      xm_config_set(&tmp, key, value, small, sizeof small);
      if (memchr(small, '\0', sizeof small) == NULL)
        xmf_fail("xm_config_set overran a small err buffer", NULL, NULL, NULL);
    }
    p = nl ? nl + 1 : end;
  }
  xmf_roundtrip(&set);
  return 0;
}
