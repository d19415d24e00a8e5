/* xm_bench: times the engine on every backend over a sweep of problem sizes
 * (ARCHITECTURE.md convention 9: warm up, repeat, median and spread, units of
 * work). One context per backend is created first (kernel compilation out of
 * every timing) and reused for all sizes, so a size run with --warmup 0 still
 * finds CLBlast's kernels compiled by the sizes before it.
 *
 * Usage:
 *   xm_bench [--device SPEC]... [--threads N] [--out-dir DIR] [--jsonl FILE]
 *            [--warmup W] [--repeat R] [--set KEY=VALUE]... [--clear-sets]
 *            --size LABEL PORTFOLIO SCENARIOS  [more --warmup/--repeat/--set/--size ...]
 * --warmup, --repeat and --set apply to the --size entries that follow them.
 * Without --device: every device xm_devices_list finds (cpu and each OpenCL
 * device). Per (backend, size) it prints one markdown row and one line
 * "XMBENCH {json}" for scripts (bench/run.sh). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "xmargin.h"

#define XB_MAX_SIZES 64
#define XB_MAX_SETS 32
#define XB_MAX_DEVICES 16
#define XB_MAX_REPEAT 100

typedef struct xb_size {
  const char *label, *portfolio, *scenarios;
  int warmup, repeat;
  int nsets;
  const char *sets[XB_MAX_SETS];
  double *req_ref; /* requirements of the first backend, for the cross-check */
  int64_t n_ref;
  const char *ref_backend;
} xb_size;

typedef struct xb_times {
  double read, prepare, scen, eval, write, total;
  long hwm_kib;
} xb_times;

static int xb_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median, min, max of v[n] (n >= 1). */
static void xb_stats(const double *v, int n, double *med, double *mn, double *mx) {
  double s[XB_MAX_REPEAT];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, xb_cmp_double);
  *med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  *mn = s[0];
  *mx = s[n - 1];
}

/* Peak resident set: reset the kernel's high-water mark before a run
 * (/proc/self/clear_refs, "5"), read VmHWM after it. Where that cannot be
 * done, getrusage's process-wide maximum (monotone over the whole program). */
static int xb_hwm_reset(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0)
    return 0;
  int ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

static long xb_hwm_kib(int was_reset) {
  if (was_reset) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
      char line[256];
      long v = -1;
      while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
          v = strtol(line + 6, NULL, 10);
          break;
        }
      fclose(f);
      if (v >= 0)
        return v;
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss; /* KiB on Linux */
}

static void xb_usage(FILE *f) {
  fprintf(f, "usage: xm_bench [--device SPEC]... [--threads N] [--out-dir DIR] [--jsonl FILE]\n"
             "                [--warmup W] [--repeat R] [--set KEY=VALUE]... [--clear-sets]\n"
             "                --size LABEL PORTFOLIO SCENARIOS [...]\n"
             "--warmup/--repeat/--set apply to the --size entries after them (defaults 1 / 3).\n"
             "--device: cpu, opencl, opencl:P.D (repeatable; default every device found).\n"
             "--threads: OpenMP threads of the cpu backend (default all cores).\n");
}

/* One timed run: read, engine, write the results file (as `xmargin run`).
 * On success *req (malloc'd [A]) holds the requirements when req != NULL. */
static int xb_run_once(xm_ctx *ctx, const xb_size *sz, const xm_config *cfg, const char *out_path,
                       xb_times *t, int64_t *S_total, int64_t *n_pos, int64_t *n_acc,
                       double **req) {
  xm_portfolio pf;
  xm_scenario_file sf;
  xm_run_result res;
  xm_diag diag;
  memset(&pf, 0, sizeof pf);
  memset(&sf, 0, sizeof sf);
  memset(&res, 0, sizeof res);
  memset(&diag, 0, sizeof diag);
  int rc = 1, reset = xb_hwm_reset();
  double t0 = xm_now();
  xm_status st;
  if ((st = xm_portfolio_read(sz->portfolio, &pf, &diag)) != XM_OK ||
      (st = xm_scenarios_read(sz->scenarios, &sf, &diag)) != XM_OK) {
    xm_diag_print(&diag, stderr);
    fprintf(stderr, "xm_bench: %s: cannot read inputs: %s\n", sz->label, xm_strerror(st));
    goto cleanup;
  }
  t->read = xm_now() - t0;
  xm_run_opts eo = {0, 0, NULL, NULL, 0, 0, 0, 0, NULL};
  if ((st = xm_run(ctx, &pf, &sf, cfg, &eo, &res)) != XM_OK) {
    fprintf(stderr, "xm_bench: %s on %s: %s: %s\n", sz->label, xm_ctx_device(ctx)->spec,
            xm_strerror(st), xm_ctx_last_error(ctx));
    goto cleanup;
  }
  t->prepare = res.t_prepare;
  t->scen = res.t_scenarios;
  t->eval = res.t_evaluate;
  /* The results file, as the CLI writes it (checksums of the inputs included). */
  double tw = xm_now();
  char devdesc[512];
  const xm_device_info *dv = xm_ctx_device(ctx);
  snprintf(devdesc, sizeof devdesc, "%s: %s [%s]", dv->backend == XM_BACKEND_CPU ? "cpu" : "opencl",
           dv->name, dv->platform);
  *S_total = 0;
  for (int64_t x = 0; x < res.K; x++)
    *S_total += res.sets[x].S;
  xm_run_meta meta = {sz->portfolio, sz->scenarios, devdesc, "1970-01-01T00:00:00Z", xm_now() - t0};
  if ((st = xm_run_result_write(out_path, &pf, cfg, &res, &meta, &diag)) != XM_OK) {
    xm_diag_print(&diag, stderr);
    fprintf(stderr, "xm_bench: cannot write %s: %s\n", out_path, xm_strerror(st));
    goto cleanup;
  }
  t->write = xm_now() - tw;
  t->total = xm_now() - t0;
  t->hwm_kib = xb_hwm_kib(reset);
  *n_pos = pf.n_positions;
  *n_acc = pf.n_accounts;
  if (req) {
    *req = malloc((size_t)(res.A + 1) * sizeof **req);
    if (*req)
      memcpy(*req, res.requirement, (size_t)res.A * sizeof **req);
  }
  rc = 0;
cleanup:
  unlink(out_path);
  xm_run_result_free(&res);
  xm_diag_free(&diag);
  xm_scenarios_free(&sf);
  xm_portfolio_free(&pf);
  return rc;
}

int main(int argc, char **argv) {
  xb_size sizes[XB_MAX_SIZES];
  int nsizes = 0;
  const char *devices[XB_MAX_DEVICES];
  int ndev = 0, threads = 0, warmup = 1, repeat = 3, nsets = 0;
  const char *sets[XB_MAX_SETS];
  const char *out_dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  const char *jsonl = NULL;
  memset(sizes, 0, sizeof sizes);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      xb_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--device") && more && ndev < XB_MAX_DEVICES) {
      devices[ndev++] = argv[++i];
    } else if (!strcmp(a, "--threads") && more) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(a, "--out-dir") && more) {
      out_dir = argv[++i];
    } else if (!strcmp(a, "--jsonl") && more) {
      jsonl = argv[++i];
    } else if (!strcmp(a, "--warmup") && more) {
      warmup = atoi(argv[++i]);
    } else if (!strcmp(a, "--repeat") && more) {
      repeat = atoi(argv[++i]);
    } else if (!strcmp(a, "--set") && more && nsets < XB_MAX_SETS) {
      sets[nsets++] = argv[++i];
    } else if (!strcmp(a, "--clear-sets")) {
      nsets = 0;
    } else if (!strcmp(a, "--size") && i + 3 < argc && nsizes < XB_MAX_SIZES) {
      xb_size *s = &sizes[nsizes++];
      s->label = argv[i + 1];
      s->portfolio = argv[i + 2];
      s->scenarios = argv[i + 3];
      s->warmup = warmup < 0 ? 0 : warmup;
      s->repeat = repeat < 1 ? 1 : (repeat > XB_MAX_REPEAT ? XB_MAX_REPEAT : repeat);
      s->nsets = nsets;
      memcpy(s->sets, sets, (size_t)nsets * sizeof *sets);
      i += 3;
    } else {
      fprintf(stderr, "xm_bench: bad or incomplete argument '%s'\n", a);
      xb_usage(stderr);
      return 2;
    }
  }
  if (nsizes == 0) {
    xb_usage(stderr);
    return 2;
  }
  /* Backends: those asked for, else every device found (cpu first). */
  xm_device_info *list = NULL;
  size_t nlist = 0;
  char specs[XB_MAX_DEVICES][32];
  if (ndev == 0) {
    if (xm_devices_list(&list, &nlist) != XM_OK) {
      fprintf(stderr, "xm_bench: cannot list devices\n");
      return 1;
    }
    for (size_t d = 0; d < nlist && ndev < XB_MAX_DEVICES; d++)
      if (list[d].backend == XM_BACKEND_CPU)
        snprintf(specs[ndev], sizeof specs[ndev], "%s", list[d].spec), ndev++;
    for (size_t d = 0; d < nlist && ndev < XB_MAX_DEVICES; d++)
      if (list[d].backend == XM_BACKEND_OPENCL)
        snprintf(specs[ndev], sizeof specs[ndev], "%s", list[d].spec), ndev++;
    xm_devices_free(list);
  } else {
    for (int d = 0; d < ndev; d++)
      snprintf(specs[d], sizeof specs[d], "%s", devices[d]);
  }
  FILE *jf = NULL;
  if (jsonl && !(jf = fopen(jsonl, "a"))) {
    fprintf(stderr, "xm_bench: cannot open %s: %s\n", jsonl, strerror(errno));
    return 1;
  }
  char out_path[4096];
  snprintf(out_path, sizeof out_path, "%s/xm_bench_%ld.h5", out_dir, (long)getpid());

  printf("| backend | device | size | scenarios | positions | accounts | revaluations | "
         "scen. gen. s | evaluate s (min-max) | end-to-end s | Mreval/s | accounts/s | "
         "peak RSS MiB | runs | max rel. diff of requirement vs %s |\n",
         specs[0]);
  printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  fflush(stdout);
  int failures = 0;
  for (int d = 0; d < ndev; d++) {
    xm_options opt;
    xm_options_default(&opt);
    opt.device = specs[d];
    opt.threads = threads;
    xm_ctx *ctx = NULL;
    double tc = xm_now();
    xm_status st = xm_ctx_create(&ctx, &opt);
    tc = xm_now() - tc;
    if (st != XM_OK) {
      fprintf(stderr, "xm_bench: device %s: %s: %s (skipped)\n", specs[d], xm_strerror(st),
              xm_ctx_last_error(ctx));
      xm_ctx_destroy(ctx);
      failures++;
      continue;
    }
    const xm_device_info *dv = xm_ctx_device(ctx);
    if (dv->backend == XM_BACKEND_CPU && threads > 0)
      omp_set_num_threads(threads); /* the engine does not apply opt.threads itself */
    int nthr = dv->backend == XM_BACKEND_CPU ? (threads > 0 ? threads : omp_get_max_threads()) : 0;
    fprintf(stderr, "xm_bench: %s: %s [%s]%s; context (kernel build) %.3f s\n", dv->spec, dv->name,
            dv->platform, nthr ? "" : "", tc);
    for (int z = 0; z < nsizes; z++) {
      xb_size *sz = &sizes[z];
      xm_config cfg;
      xm_config_default(&cfg);
      char err[512];
      int bad = 0;
      for (int k = 0; k < sz->nsets && !bad; k++) {
        char key[128];
        const char *eq = strchr(sz->sets[k], '=');
        if (!eq || (size_t)(eq - sz->sets[k]) >= sizeof key) {
          fprintf(stderr, "xm_bench: --set %s: expected KEY=VALUE\n", sz->sets[k]);
          bad = 1;
          break;
        }
        memcpy(key, sz->sets[k], (size_t)(eq - sz->sets[k]));
        key[eq - sz->sets[k]] = '\0';
        if (xm_config_set(&cfg, key, eq + 1, err, sizeof err) != XM_OK) {
          fprintf(stderr, "xm_bench: --set %s\n", err);
          bad = 1;
        }
      }
      if (bad) {
        failures++;
        continue;
      }
      xb_times t[XB_MAX_REPEAT];
      int64_t S_total = 0, n_pos = 0, n_acc = 0;
      double *req = NULL;
      int ok = 1;
      for (int w = 0; w < sz->warmup && ok; w++) {
        xb_times tw;
        ok = xb_run_once(ctx, sz, &cfg, out_path, &tw, &S_total, &n_pos, &n_acc, NULL) == 0;
      }
      for (int r = 0; r < sz->repeat && ok; r++) {
        ok = xb_run_once(ctx, sz, &cfg, out_path, &t[r], &S_total, &n_pos, &n_acc,
                         r == sz->repeat - 1 ? &req : NULL) == 0;
        fprintf(stderr, "xm_bench: %s %s run %d/%d: scen %.4f eval %.4f total %.4f s\n", dv->spec,
                sz->label, r + 1, sz->repeat, t[r].scen, t[r].eval, t[r].total);
      }
      if (!ok) {
        failures++;
        free(req);
        continue;
      }
      int R = sz->repeat;
      double v[XB_MAX_REPEAT], sc[3], ev[3], tot[3], rd[3], pr[3], wr[3];
      long hwm = 0;
#define XB_STAT(field, out)                                                                        \
  for (int r = 0; r < R; r++)                                                                      \
    v[r] = t[r].field;                                                                             \
  xb_stats(v, R, &out[0], &out[1], &out[2]);
      XB_STAT(scen, sc)
      XB_STAT(eval, ev)
      XB_STAT(total, tot)
      XB_STAT(read, rd)
      XB_STAT(prepare, pr)
      XB_STAT(write, wr)
#undef XB_STAT
      for (int r = 0; r < R; r++)
        hwm = t[r].hwm_kib > hwm ? t[r].hwm_kib : hwm;
      double revals = (double)S_total * (double)n_pos;
      /* Cross-check against the first backend that ran this size. */
      double maxrel = -1.0;
      if (req && !sz->req_ref) {
        sz->req_ref = req;
        sz->n_ref = n_acc;
        sz->ref_backend = specs[d];
        req = NULL;
        maxrel = 0.0;
      } else if (req && sz->n_ref == n_acc) {
        maxrel = 0.0;
        for (int64_t a = 0; a < n_acc; a++) {
          double den = fabs(sz->req_ref[a]) > 1e-300 ? fabs(sz->req_ref[a]) : 1e-300;
          double rel = fabs(req[a] - sz->req_ref[a]) / den;
          if (!(rel <= maxrel))
            maxrel = rel; /* NaN sticks */
        }
      }
      free(req);
      printf("| %s | %s | %s | %lld | %lld | %lld | %.3g | %.4f | %.4f (%.4f-%.4f) | %.4f | %.2f | "
             "%.4g | %.0f | %d+%d | %.2g |\n",
             dv->spec, dv->name, sz->label, (long long)S_total, (long long)n_pos, (long long)n_acc,
             revals, sc[0], ev[0], ev[1], ev[2], tot[0], revals / ev[0] / 1e6,
             (double)n_acc / tot[0], (double)hwm / 1024.0, sz->warmup, R, maxrel);
      fflush(stdout);
      FILE *outs[2] = {stdout, jf};
      for (int o = 0; o < 2; o++) {
        FILE *f = outs[o];
        if (!f)
          continue;
        fprintf(f, "%s{\"tool\":\"xm_bench\",\"backend\":", f == stdout ? "XMBENCH " : "");
        xm_json_string(f, dv->spec);
        fprintf(f, ",\"device\":");
        xm_json_string(f, dv->name);
        fprintf(f, ",\"platform\":");
        xm_json_string(f, dv->platform);
        fprintf(f, ",\"size\":");
        xm_json_string(f, sz->label);
        fprintf(f,
                ",\"threads\":%d,\"scenarios\":%lld,\"positions\":%lld,\"accounts\":%lld,"
                "\"revaluations\":%.0f,\"warmup\":%d,\"repeat\":%d,"
                "\"read_s\":[%.6f,%.6f,%.6f],\"prepare_s\":[%.6f,%.6f,%.6f],"
                "\"scenarios_s\":[%.6f,%.6f,%.6f],\"evaluate_s\":[%.6f,%.6f,%.6f],"
                "\"write_s\":[%.6f,%.6f,%.6f],\"total_s\":[%.6f,%.6f,%.6f],"
                "\"reval_per_s\":%.6g,\"accounts_per_s\":%.6g,\"peak_rss_mib\":%.1f,"
                "\"context_s\":%.4f,\"max_rel_diff_vs_first\":%.3g}\n",
                nthr, (long long)S_total, (long long)n_pos, (long long)n_acc, revals, sz->warmup, R,
                rd[0], rd[1], rd[2], pr[0], pr[1], pr[2], sc[0], sc[1], sc[2], ev[0], ev[1], ev[2],
                wr[0], wr[1], wr[2], tot[0], tot[1], tot[2], revals / ev[0], (double)n_acc / tot[0],
                (double)hwm / 1024.0, tc, maxrel);
        fflush(f);
      }
      if (maxrel > 1e-6 || maxrel != maxrel) {
        fprintf(stderr, "xm_bench: FAIL: %s on %s: requirements differ from %s by %.3g relative\n",
                sz->label, dv->spec, sz->ref_backend, maxrel);
        failures++;
      }
    }
    xm_ctx_destroy(ctx);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  fprintf(stderr, "xm_bench: process peak RSS %.1f MiB (getrusage)\n",
          (double)ru.ru_maxrss / 1024.0);
  for (int z = 0; z < nsizes; z++)
    free(sizes[z].req_ref);
  if (jf)
    fclose(jf);
  return failures ? 1 : 0;
}
