/* What `xmargin run` and `xmargin backtest` share: their common options, the
 * checks of the paths before any work, the configuration (file, --set, the
 * options that set one key), reading the two input files, the context on the
 * chosen device, the run's remarks and the progress bar. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The largest --mem-limit: 1 PiB, more than any one device or host has. */
#define XM_CLI_MEM_LIMIT_MAX ((uint64_t)1 << 50)
/* Most threads the cpu backend takes. */
#define XM_CLI_THREADS_MAX 4096

static int xm_cli_parse_bytes(const char *s, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !(v > 0) || !isfinite(v))
    return 0;
  double m = 1;
  if (*end == 'K' || *end == 'k')
    m = 1024.0, end++;
  else if (*end == 'M' || *end == 'm')
    m = 1048576.0, end++;
  else if (*end == 'G' || *end == 'g')
    m = 1073741824.0, end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end || v * m > (double)XM_CLI_MEM_LIMIT_MAX || v * m < 1.0)
    return 0;
  *out = (uint64_t)(v * m);
  return 1;
}

/* A whole number in [lo, hi], all of s (no sign, space or suffix). */
static int xm_cli_parse_int(const char *s, long lo, long hi, int *out) {
  char *end = NULL;
  errno = 0;
  if (!s || s[0] < '0' || s[0] > '9')
    return 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return 0;
  *out = (int)v;
  return 1;
}

int xm_cli_job_key(xm_cli_job *j, const char *option, const char *key, const char *value) {
  if (j->nkeys >= XM_CLI_KEYS_MAX) {
    fprintf(stderr, "%s: %s given too often\n", j->cmd, option);
    return -1;
  }
  j->keys[j->nkeys++] = (xm_cli_key){option, key, value};
  return 1;
}

const char *xm_cli_job_value(const xm_cli_job *j, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", j->cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

int xm_cli_job_option(xm_cli_job *j, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char *has = *i + 1 < argc ? argv[*i + 1] : NULL;
  static const struct {
    const char *name;
    size_t at; /* offsetof the string in xm_cli_job */
  } paths[] = {
      {"--portfolio", offsetof(xm_cli_job, portfolio)},
      {"--scenarios", offsetof(xm_cli_job, scenarios)},
      {"-o", offsetof(xm_cli_job, output)},
      {"--output", offsetof(xm_cli_job, output)},
      {"--config", offsetof(xm_cli_job, config)},
      {"--device", offsetof(xm_cli_job, device)},
  };
  for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++)
    if (strcmp(a, paths[k].name) == 0) {
      const char *v = xm_cli_job_value(j, argc, argv, i);
      if (!v)
        return -1;
      *(const char **)((char *)j + paths[k].at) = v;
      return 1;
    }
  if (strcmp(a, "--precision") == 0) {
    const char *v = xm_cli_job_value(j, argc, argv, i);
    return v ? xm_cli_job_key(j, a, "precision", v) : -1;
  }
  if (strcmp(a, "--set") == 0) {
    if (!has || j->nsets >= XM_CLI_SETS_MAX) {
      fprintf(stderr, "%s: --set needs KEY=VALUE (at most %d)\n", j->cmd, XM_CLI_SETS_MAX);
      return -1;
    }
    j->sets[j->nsets++] = argv[++*i];
    return 1;
  }
  if (strcmp(a, "--mem-limit") == 0) {
    if (!has || !xm_cli_parse_bytes(argv[++*i], &j->mem_limit) || j->mem_limit < (1u << 20)) {
      fprintf(stderr, "%s: --mem-limit needs a size such as 64M (1M to 1P)%s%s\n", j->cmd,
              has ? ", not " : "", has ? has : "");
      return -1;
    }
    return 1;
  }
  if (strcmp(a, "--threads") == 0) {
    if (!has || !xm_cli_parse_int(argv[++*i], 1, XM_CLI_THREADS_MAX, &j->threads)) {
      fprintf(stderr, "%s: --threads needs a whole number from 1 to %d%s%s\n", j->cmd,
              XM_CLI_THREADS_MAX, has ? ", not " : "", has ? has : "");
      return -1;
    }
    return 1;
  }
  static const struct {
    const char *name;
    size_t at; /* offsetof the flag in xm_cli_job */
  } flags[] = {
      {"--save-scenarios", offsetof(xm_cli_job, save_scenarios)},
      {"--json", offsetof(xm_cli_job, json)},
      {"-q", offsetof(xm_cli_job, quiet)},
      {"--quiet", offsetof(xm_cli_job, quiet)},
  };
  for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
    if (strcmp(a, flags[k].name) == 0) {
      *(int *)((char *)j + flags[k].at) = 1;
      return 1;
    }
  return 0;
}

/* Fail before the work, not after it: the output must be writable and none
 * of the inputs; every input path must name a file. -1, or the exit status. */
static int xm_cli_job_paths(const xm_cli_job *j) {
  const char *inputs[3] = {j->portfolio, j->scenarios, j->config};
  char why[1024];
  if (j->output && xm_output_check(j->output, inputs, 3, why, sizeof why) != XM_OK) {
    fprintf(stderr, "%s: -o: %s\n", j->cmd, why);
    return XM_EXIT_USAGE;
  }
  for (int i = 0; i < 3; i++)
    if (inputs[i] && (!inputs[i][0] || strlen(inputs[i]) >= XM_PATH_MAX)) {
      fprintf(stderr, "%s: %s: a file name of %zu bytes (1 to %d)\n", j->cmd,
              i == 0   ? "--portfolio"
              : i == 1 ? "--scenarios"
                       : "--config",
              strlen(inputs[i]), XM_PATH_MAX - 1);
      return XM_EXIT_USAGE;
    }
  return -1;
}

/* The configuration: defaults, --config, each --set, the key options. */
static int xm_cli_job_config(const xm_cli_job *j, xm_config *cfg) {
  char err[1024] = "";
  xm_config_default(cfg);
  if (j->config && xm_config_load(cfg, j->config, err, sizeof err) != XM_OK) {
    fprintf(stderr, "%s: %s\n", j->cmd, err);
    return XM_EXIT_USAGE;
  }
  for (int i = 0; i < j->nsets; i++) {
    char key[256];
    const char *s = j->sets[i], *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= sizeof key) {
      fprintf(stderr, "%s: --set '%s': expected KEY=VALUE\n", j->cmd, s);
      return XM_EXIT_USAGE;
    }
    memcpy(key, s, (size_t)(eq - s));
    key[eq - s] = '\0';
    if (xm_config_set(cfg, key, eq + 1, err, sizeof err) != XM_OK) {
      fprintf(stderr, "%s: --set %s\n", j->cmd, err);
      return XM_EXIT_USAGE;
    }
  }
  for (int i = 0; i < j->nkeys; i++)
    if (xm_config_set(cfg, j->keys[i].key, j->keys[i].value, err, sizeof err) != XM_OK) {
      fprintf(stderr, "%s: %s: %s\n", j->cmd, j->keys[i].option, err);
      return XM_EXIT_USAGE;
    }
  return -1;
}

int xm_cli_job_open(const xm_cli_job *j, xm_cli_inputs *in) {
  memset(in, 0, sizeof *in);
  in->t_start = xm_now();
  int rc = xm_cli_job_paths(j);
  if (rc < 0)
    rc = xm_cli_job_config(j, &in->cfg);
  if (rc >= 0)
    return rc;
  xm_status st;
  if ((st = xm_portfolio_read(j->portfolio, &in->pf, &in->diag)) != XM_OK ||
      (st = xm_scenarios_read(j->scenarios, &in->sf, &in->diag)) != XM_OK) {
    xm_diag_print(&in->diag, stderr);
    if (in->diag.total == 0)
      fprintf(stderr, "%s: %s\n", j->cmd, xm_strerror(st));
    return st == XM_ENOMEM ? XM_EXIT_FAIL : XM_EXIT_USAGE;
  }
  in->t_read = xm_now() - in->t_start;

  xm_options opt;
  xm_options_default(&opt);
  opt.device = j->device;
  xm_options_from_env(&opt);
  opt.mem_limit = j->mem_limit;
  opt.threads = j->threads;
  if ((st = xm_ctx_create(&in->ctx, &opt)) != XM_OK) {
    fprintf(stderr, "%s: %s: %s\n", j->cmd, xm_strerror(st), xm_ctx_last_error(in->ctx));
    return xm_cli_exit_status(st);
  }
  if (strstr(xm_ctx_choice(in->ctx), "after failing")) /* auto left a failing device: say so */
    fprintf(stderr, "xmargin: warning: %s\n", xm_ctx_choice(in->ctx));
  else if (!j->quiet && !j->json)
    fprintf(stderr, "xmargin: %s\n", xm_ctx_choice(in->ctx));
  return -1;
}

void xm_cli_inputs_free(xm_cli_inputs *in) {
  xm_ctx_destroy(in->ctx);
  xm_diag_free(&in->diag);
  xm_scenarios_free(&in->sf);
  xm_portfolio_free(&in->pf);
  memset(in, 0, sizeof *in);
}

/* The device ctx runs on, "cpu: NAME [PLATFORM]" or "opencl: ...", into buf[cap]. */
static void xm_cli_device_text(const xm_ctx *ctx, char *buf, size_t cap) {
  const xm_device_info *dv = xm_ctx_device(ctx);
  snprintf(buf, cap, "%s: %s [%s]", dv->backend == XM_BACKEND_CPU ? "cpu" : "opencl", dv->name,
           dv->platform);
}

/* A run's remarks (one a line) to stderr: all of them unless quiet; its
 * warnings always. */
static void xm_cli_notes(const char *notes, int quiet) {
  for (const char *line = notes; *line;) {
    const char *end = strchr(line, '\n');
    int len = end ? (int)(end - line) : (int)strlen(line);
    int warning = strncmp(line, "warning:", 8) == 0;
    if (!quiet || warning)
      fprintf(stderr, "%s%.*s\n", warning ? "xmargin: " : "", len, line);
    line += len + (end ? 1 : 0);
  }
}

int xm_cli_job_ran(const xm_cli_job *j, xm_cli_inputs *in, xm_status st, const char *notes) {
  if (st != XM_OK) {
    fprintf(stderr, "%s: %s: %s\n", j->cmd, xm_strerror(st), xm_ctx_last_error(in->ctx));
    return xm_cli_exit_status(st);
  }
  xm_cli_notes(notes, j->quiet);
  xm_cli_device_text(in->ctx, in->device, sizeof in->device);
  return -1;
}

xm_run_meta xm_cli_job_meta(const xm_cli_job *j, const xm_cli_inputs *in) {
  xm_run_meta m = {j->portfolio, j->scenarios, in->device, NULL, xm_now() - in->t_start};
  return m;
}

int xm_cli_job_wrote(const xm_cli_job *j, xm_cli_inputs *in, xm_status st) {
  if (st == XM_OK)
    return -1;
  xm_diag_print(&in->diag, stderr);
  fprintf(stderr, "%s: cannot write %s: %s\n", j->cmd, j->output, xm_strerror(st));
  return XM_EXIT_FAIL;
}

/* A progress bar on stderr: done of total, and what is at work (a set, a day). */
static void xm_cli_progress(void *arg, int64_t done, int64_t total, const char *label) {
  (void)arg;
  int width = 30, fill = total > 0 ? (int)(width * done / total) : width;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r  [%s] %3d%%  %-24.24s", bar, total > 0 ? (int)(100 * done / total) : 100,
          label ? label : "");
  if (done >= total)
    fprintf(stderr, "\r%*s\r", width + 40, "");
  fflush(stderr);
}

xm_progress_fn xm_cli_progress_for(const xm_cli_job *j) {
  return !j->quiet && !j->json && isatty(STDERR_FILENO) ? xm_cli_progress : NULL;
}
