/* xmargin command-line interface: dispatches to one subcommand. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct xm_cli_cmd {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} xm_cli_cmd;

static const xm_cli_cmd xm_cli_cmds[] = {
    {"run", xm_cli_run, "compute the margin requirements (no arguments: the demo)"},
    {"backtest", xm_cli_backtest,
     "backtest today's book against the past days of the history (METHODOLOGY.md 7)"},
    {"devices", xm_cli_devices, "list the compute devices (OpenCL and the cpu backend)"},
    {"validate", xm_cli_validate, "check portfolio and scenario files against the data contract"},
    {"config", xm_cli_config, "print the effective configuration"},
    {"generate", xm_cli_generate, "write a synthetic portfolio and scenario file of any size"},
    {"whatif", xm_cli_whatif,
     "pre-trade margin: accounts with candidate trades, the book prepared once"},
    {"import", xm_cli_import,
     "write a portfolio file from CSV files, one per table (names, dates)"},
};

int xm_cli_exit_status(xm_status st) {
  switch (st) {
  case XM_OK:
    return XM_EXIT_OK;
  case XM_EINVAL:
  case XM_EFORMAT:
  case XM_ECONFIG:
  case XM_ENOTPD: /* a covariance the history makes singular: the input's fault */
    return XM_EXIT_USAGE;
  default:
    return XM_EXIT_FAIL;
  }
}

static void xm_cli_usage(FILE *f) {
  fprintf(f,
          "xmargin %s -- unified portfolio margin on GPUs and CPUs\n\n"
          "usage: xmargin [COMMAND] [OPTIONS]\n\n"
          "commands:\n",
          XM_VERSION_STRING);
  for (size_t i = 0; i < sizeof xm_cli_cmds / sizeof xm_cli_cmds[0]; i++)
    fprintf(f, "  %-10s %s\n", xm_cli_cmds[i].name, xm_cli_cmds[i].summary);
  fprintf(f, "\n'xmargin COMMAND --help' describes each command.\n"
             "Exit status: 0 success, 1 run failure, 2 bad input or usage.\n");
}

static int xm_cli_main(int argc, char **argv);

int main(int argc, char **argv) {
  /* OpenMP threads that wait spin by default: with another process on a core
   * a barrier then lasts until the spinner is preempted, 10 to 40 times the
   * work of a small run or a what-if (bench/RESULTS.md), while sleeping costs
   * nothing measurable on a quiet machine. OpenBLAS's threads, which the
   * engine never uses (each of its BLAS calls runs on one thread, inside its
   * own OpenMP loops), spin for some 0.1 s when the library loads: a third of
   * a small evaluate's time on 2 cores (bench/RESULTS.md 2026-12-04). Both
   * runtimes read their settings once, when they are loaded: the CLI sets
   * OMP_WAIT_POLICY=passive and OPENBLAS_NUM_THREADS=1 and starts itself
   * again, each unless the caller chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT;
   * OPENBLAS_NUM_THREADS). */
  int again = 0;
  if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"))
    again = setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
  if (!getenv("OPENBLAS_NUM_THREADS"))
    again |= setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0;
  if (again && argc > 0)
    execv("/proc/self/exe", argv); /* returns only on failure: go on as we are */
  /* HDF5 1.10's exit handler crashes on a file whose write failed part way
   * (a full disk; fixed in 1.14.1): every file is closed explicitly, so the
   * handler has nothing to do. And a file size limit (ulimit -f) makes
   * writes fail with EFBIG, reported, instead of killing the process. */
  xm_hdf5_skip_exit_handler();
  signal(SIGXFSZ, SIG_IGN);
  xm_cli_procs_init(&argc, &argv);
  int rc = xm_cli_main(argc, argv);
  xm_cli_procs_end();
  return rc;
}

/* The command of argv[1] (after the process set-up of main). */
static int xm_cli_main(int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                    strcmp(argv[1], "help") == 0)) {
    xm_cli_usage(stdout);
    return XM_EXIT_OK;
  }
  if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
    printf("xmargin %s\n", XM_VERSION_STRING);
    return XM_EXIT_OK;
  }
  const char *cmd = argc >= 2 ? argv[1] : NULL;
  /* several ranks split `run` (accounts) and `backtest` (days) alone:
   * anything else would be done R times */
  const xm_cli_procs *procs = xm_cli_procs_get();
  if (procs->size > 1 && cmd && cmd[0] != '-' && strcmp(cmd, "run") != 0 &&
      strcmp(cmd, "backtest") != 0) {
    if (procs->rank == 0)
      fprintf(stderr,
              "xmargin %s: not split across processes (%d ranks): only 'xmargin run' and "
              "'xmargin backtest' are; run it as one process\n",
              cmd, procs->size);
    return XM_EXIT_USAGE;
  }
  if (!cmd || cmd[0] == '-') {
    /* No command: the main job on the demo data, once 'run' exists. */
    for (size_t i = 0; i < sizeof xm_cli_cmds / sizeof xm_cli_cmds[0]; i++)
      if (strcmp(xm_cli_cmds[i].name, "run") == 0)
        return xm_cli_cmds[i].fn(argc, argv);
    xm_cli_usage(stderr);
    return XM_EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof xm_cli_cmds / sizeof xm_cli_cmds[0]; i++)
    if (strcmp(xm_cli_cmds[i].name, cmd) == 0)
      return xm_cli_cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "xmargin: unknown command '%s'\n\n", cmd);
  xm_cli_usage(stderr);
  return XM_EXIT_USAGE;
}
