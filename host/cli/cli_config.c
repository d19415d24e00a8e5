/* xmargin config: print the effective configuration (defaults, then each
 * --config file in order, then each --set in order) as INI text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void xm_cli_config_usage(FILE *f) {
  fprintf(f, "usage: xmargin config [--config FILE]... [--set KEY=VALUE]... [--help]\n\n"
             "Prints the effective configuration as INI text: the defaults of\n"
             "METHODOLOGY.md, overridden by each --config file in order, then by each\n"
             "--set in order. KEY is 'section.key' (historical.ewma_lambda) or a top-level\n"
             "key (horizon_days, confidence, precision). The output loads back as a\n"
             "--config file. Keys, defaults and ranges: docs/config.md.\n\n"
             "Exit status: 0 success, 1 unreadable file, 2 invalid key, value or usage.\n");
}

/* The value of option opt at argv[*i] ("--opt VALUE" or "--opt=VALUE"), or NULL
 * when argv[*i] is not that option; *missing is set when the value is absent.
 * Advances *i past a separate value. */
static const char *xm_cli_config_opt(int argc, char **argv, int *i, const char *opt, int *missing) {
  size_t n = strlen(opt);
  const char *a = argv[*i];
  if (strncmp(a, opt, n) != 0)
    return NULL;
  if (a[n] == '=')
    return a + n + 1;
  if (a[n] != '\0')
    return NULL;
  if (*i + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  return argv[++*i];
}

int xm_cli_config(int argc, char **argv) {
  int rc = XM_EXIT_OK;
  const char **files = NULL, **sets = NULL;
  size_t nfiles = 0, nsets = 0;
  char *key = NULL, *ini = NULL;
  char err[1024];
  xm_config cfg;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      xm_cli_config_usage(stdout);
      return XM_EXIT_OK;
    }
  }
  files = calloc((size_t)argc, sizeof *files);
  sets = calloc((size_t)argc, sizeof *sets);
  if (!files || !sets) {
    fprintf(stderr, "xmargin config: out of memory\n");
    rc = XM_EXIT_FAIL;
    goto cleanup;
  }
  for (int i = 1; i < argc; i++) {
    int missing = 0;
    const char *v;
    if ((v = xm_cli_config_opt(argc, argv, &i, "--config", &missing)))
      files[nfiles++] = v;
    else if (!missing && (v = xm_cli_config_opt(argc, argv, &i, "--set", &missing)))
      sets[nsets++] = v;
    if (missing) {
      fprintf(stderr, "xmargin config: %s needs a value\n", argv[i]);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
    if (!v) {
      fprintf(stderr, "xmargin config: unknown argument '%s'\n", argv[i]);
      xm_cli_config_usage(stderr);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
  }

  xm_config_default(&cfg);
  for (size_t f = 0; f < nfiles; f++) {
    xm_status st = xm_config_load(&cfg, files[f], err, sizeof err);
    if (st != XM_OK) {
      fprintf(stderr, "xmargin config: %s\n", err);
      rc = xm_cli_exit_status(st);
      goto cleanup;
    }
  }
  for (size_t s = 0; s < nsets; s++) {
    const char *eq = strchr(sets[s], '=');
    if (!eq) {
      fprintf(stderr, "xmargin config: --set '%s': expected KEY=VALUE\n", sets[s]);
      rc = XM_EXIT_USAGE;
      goto cleanup;
    }
    /* the key without the blanks around it */
    const char *k0 = sets[s];
    while (*k0 == ' ' || *k0 == '\t')
      k0++;
    size_t kn = (size_t)(eq - k0);
    while (kn > 0 && (k0[kn - 1] == ' ' || k0[kn - 1] == '\t'))
      kn--;
    free(key);
    key = malloc(kn + 1);
    if (!key) {
      fprintf(stderr, "xmargin config: out of memory\n");
      rc = XM_EXIT_FAIL;
      goto cleanup;
    }
    memcpy(key, k0, kn);
    key[kn] = '\0';
    xm_status st = xm_config_set(&cfg, key, eq + 1, err, sizeof err);
    if (st != XM_OK) {
      fprintf(stderr, "xmargin config: --set: %s\n", err);
      rc = xm_cli_exit_status(st);
      goto cleanup;
    }
  }

  ini = xm_config_to_ini(&cfg);
  if (!ini) {
    fprintf(stderr, "xmargin config: out of memory\n");
    rc = XM_EXIT_FAIL;
    goto cleanup;
  }
  if (fputs(ini, stdout) == EOF || fflush(stdout) != 0) {
    fprintf(stderr, "xmargin config: cannot write the output\n");
    rc = XM_EXIT_FAIL;
  }

cleanup:
  free(ini);
  free(key);
  free(sets);
  free(files);
  return rc;
}
