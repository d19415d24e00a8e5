/* The processes of a job. Built with XM_WITH_MPI and started by mpirun, the
 * ranks of `xmargin run` split the book's accounts (contiguous ranges,
 * balanced by positions), each runs its range on the whole book's scenario
 * sets (xm_run_opts.account_begin/end: the same bits as one process), the
 * per-account rows are gathered to rank 0 (its summary needs them), the file
 * is written by every rank together (rank 0 all but /pnl, each rank its
 * accounts' /pnl columns, with parallel HDF5), and every exit
 * status is agreed on by all (a rank that fails makes every rank exit with
 * the worst status; nothing is written). Otherwise, and when the process was
 * not started by a launcher, one process: rank 0 of 1, and every function
 * here does what one process needs (nothing to agree on, nothing to gather).
 * docs/scaling.md. */
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifdef XM_WITH_MPI
#include <mpi.h>
#endif

static xm_cli_procs xm__procs = {0, 1, 0, 1, 0};

const xm_cli_procs *xm_cli_procs_get(void) { return &xm__procs; }

/* Launched by mpirun (Open MPI, or a PMI/PMIx launcher such as srun)? A
 * process started alone stays out of MPI: the CLI is the same program then. */
static int xm__launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i]))
      return 1;
  return 0;
}

void xm_cli_procs_init(int *argc, char ***argv) {
#ifdef XM_WITH_MPI
  if (!xm__launched())
    return;
  if (MPI_Init(argc, argv) != MPI_SUCCESS)
    return;
  xm__procs.mpi = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &xm__procs.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &xm__procs.size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, xm__procs.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &xm__procs.local_rank);
  MPI_Comm_size(node, &xm__procs.local_size);
  MPI_Comm_free(&node);
#else
  (void)argc, (void)argv;
  (void)xm__launched;
#endif
}

void xm_cli_procs_end(void) {
#ifdef XM_WITH_MPI
  if (xm__procs.mpi)
    MPI_Finalize();
#endif
}

int xm_cli_procs_agree(int rc) {
#ifdef XM_WITH_MPI
  if (xm__procs.size > 1) {
    int worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return worst;
  }
#endif
  return rc;
}

void xm_cli_procs_job(xm_cli_job *j, char *cmd, size_t cap) {
  const xm_cli_procs *p = &xm__procs;
  if (p->size <= 1)
    return;
  snprintf(cmd, cap, "%s [rank %d of %d]", j->cmd, p->rank, p->size);
  j->cmd = cmd;
  if (p->rank != 0)
    j->quiet = 1, j->json = 0; /* rank 0 says what the job did */
  /* the cores of the node shared among its ranks */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (j->threads == 0 && cores > 0) {
    long t = cores / (p->local_size > 0 ? p->local_size : 1);
    j->threads = t > 0 ? (int)t : 1;
  }
  /* one GPU a rank by its rank on the node, when auto would take a GPU */
  const char *dev = j->device ? j->device : getenv("XM_DEVICE");
  if (dev && strcmp(dev, "auto") != 0)
    return;
  xm_device_info *list = NULL;
  size_t n = 0, ngpu = 0;
  if (xm_devices_list(&list, &n) != XM_OK)
    return;
  for (size_t i = 0; i < n; i++)
    ngpu += list[i].is_gpu && list[i].fp64;
  static char spec[32];
  for (size_t i = 0, k = 0; i < n && ngpu > 0; i++)
    if (list[i].is_gpu && list[i].fp64 && k++ == (size_t)p->local_rank % ngpu) {
      snprintf(spec, sizeof spec, "%s", list[i].spec);
      j->device = spec;
    }
  xm_devices_free(list);
}

int xm_cli_procs_fault(const char *when) {
  const char *f = getenv("XM_TEST_FAIL_RANK");
  if (!f || !*f || xm__procs.size <= 1)
    return 0;
  char *end;
  long r = strtol(f, &end, 10);
  if (r != xm__procs.rank)
    return 0;
  const char *what = *end == ':' ? end + 1 : "fail";
  if ((strcmp(what, "kill") == 0 && strcmp(when, "gather") == 0) ||
      (strcmp(what, "killwrite") == 0 && strcmp(when, "write") == 0))
    raise(SIGKILL);
  return (strcmp(what, "fail") == 0 && strcmp(when, "run") == 0) ||
         (strcmp(what, "failwrite") == 0 && strcmp(when, "write") == 0) ||
         (strcmp(what, "failsplit") == 0 && strcmp(when, "split") == 0);
}

xm_status xm_cli_procs_run_scenarios(const xm_cli_job *j, xm_cli_inputs *in, const xm_run_opts *eo,
                                     xm_run_result *res) {
  xm_run_opts o = *eo;
  xm_cli_procs_fault("gather"); /* XM_TEST_FAIL_RANK=R:kill: killed before the tails' merge */
  if (xm_cli_procs_fault("split")) {
    fprintf(stderr, "%s: a failure injected by XM_TEST_FAIL_RANK inside the scenario split\n",
            j->cmd);
    o.account_begin = -1; /* an option the split refuses, on this rank only */
  }
#ifdef XM_WITH_MPI
  MPI_Comm comm = MPI_COMM_WORLD;
  return xm_run_scenario_ranks(in->ctx, &in->pf, &in->sf, &in->cfg, &o, &comm, res);
#else
  return xm_run_scenario_ranks(in->ctx, &in->pf, &in->sf, &in->cfg, &o, NULL, res);
#endif
}

void xm_cli_procs_accounts(const xm_portfolio *pf, int64_t *a0, int64_t *a1) {
  const xm_cli_procs *p = &xm__procs;
  int64_t A = pf->n_accounts;
  *a0 = 0, *a1 = A;
  if (p->size <= 1 || A == 0)
    return;
  /* an account weighs its positions and 1: rank r takes the accounts whose
   * weight before them is in [r W / R, (r + 1) W / R) */
  int64_t *before = calloc((size_t)A + 1, sizeof *before);
  if (!before) { /* every rank the same split in any case: by accounts */
    *a0 = A * p->rank / p->size, *a1 = A * (p->rank + 1) / p->size;
    return;
  }
  for (int64_t j = 0; j < pf->n_positions; j++)
    before[pf->pos_account[j] + 1]++;
  for (int64_t a = 0; a < A; a++)
    before[a + 1] += before[a] + 1;
  int64_t W = before[A], lo = W * p->rank / p->size, hi = W * (p->rank + 1) / p->size;
  int64_t a = 0;
  while (a < A && before[a] < lo)
    a++;
  *a0 = a;
  while (a < A && before[a] < hi)
    a++;
  *a1 = p->rank == p->size - 1 ? A : a;
  free(before);
}

#ifdef XM_WITH_MPI
/* Every rank's range [begin, end) of 0 .. total, in rank order: *rg gets
 * [2 R] (begin, end pairs; the caller frees it). Collective. 0, or 1 with err
 * (out of memory on some rank, or ranges that do not cover 0 .. total once:
 * `what` names them). */
static int xm__ranges(int64_t begin, int64_t end, int64_t total, const char *what, int64_t **rg,
                      char *err, size_t cap) {
  int R = xm__procs.size, ok, all = 0;
  int64_t mine[2] = {begin, end};
  *rg = malloc((size_t)R * 2 * sizeof **rg);
  ok = *rg != NULL;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all) {
    free(*rg);
    *rg = NULL;
    snprintf(err, cap, "out of memory gathering the %s", what);
    return 1;
  }
  MPI_Allgather(mine, 2, MPI_INT64_T, *rg, 2, MPI_INT64_T, MPI_COMM_WORLD);
  int tiled = (*rg)[0] == 0 && (*rg)[2 * R - 1] == total;
  for (int q = 0; q < R; q++)
    tiled &= (*rg)[2 * q] <= (*rg)[2 * q + 1] && (q == 0 || (*rg)[2 * q] == (*rg)[2 * q - 1]);
  if (!tiled) {
    free(*rg);
    *rg = NULL;
    snprintf(err, cap, "internal error: the ranks' %s do not cover them once", what);
    return 1;
  }
  return 0;
}

/* The counts and displacements of rows rg of w values each. */
static void xm__counts(const int64_t *rg, int64_t w, int *counts, int *displs) {
  for (int q = 0; q < xm__procs.size; q++)
    counts[q] = (int)((rg[2 * q + 1] - rg[2 * q]) * w), displs[q] = (int)(rg[2 * q] * w);
}

/* rank 0's whole array of w values an account from each rank's rows rg (every
 * rank sends its compact rows; rank 0 takes the whole book's in rank order) */
static int xm__gather(void **field, size_t elem, int64_t w, const int64_t *rg, int64_t A,
                      MPI_Datatype type) {
  const xm_cli_procs *p = &xm__procs;
  int R = p->size, *counts = NULL, *displs = NULL, ok = 1;
  void *whole = NULL;
  if (p->rank == 0) {
    counts = malloc((size_t)R * sizeof *counts);
    displs = malloc((size_t)R * sizeof *displs);
    whole = malloc((size_t)(A * w) * elem + 1);
    ok = counts && displs && whole;
    if (ok)
      xm__counts(rg, w, counts, displs);
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD); /* rank 0 could not take them: none sends */
  int64_t na = rg[2 * p->rank + 1] - rg[2 * p->rank];
  if (ok)
    MPI_Gatherv(*field, (int)(na * w), type, whole, counts, displs, type, 0, MPI_COMM_WORLD);
  free(counts);
  free(displs);
  if (p->rank == 0 && ok) {
    free(*field);
    *field = whole;
  } else {
    free(whole);
  }
  return ok;
}
#endif

int xm_cli_procs_gather(const xm_portfolio *pf, xm_run_result *res, char *err, size_t cap) {
  err[0] = '\0';
#ifdef XM_WITH_MPI
  const xm_cli_procs *p = &xm__procs;
  if (p->size <= 1)
    return 0;
  int64_t A = pf->n_accounts, G = res->G, K = res->K, *rg;
  if (xm__ranges(res->account_begin, res->account_begin + res->A, A, "account ranges", &rg, err,
                 cap))
    return 1;
  /* MPI counts are ints: the widest array must fit (--save-pnl's [S x A]
   * floats are not gathered: each rank writes its columns,
   * xm_cli_procs_write) */
  int64_t widest = A * (K > G ? K : G);
  if (widest > INT_MAX) {
    free(rg);
    snprintf(err, cap,
             "%lld values of one array are more than one MPI message holds (%d): use fewer "
             "accounts a job",
             (long long)widest, INT_MAX);
    return 2;
  }
  int got = 1;
#define XM__GATHER_D(field, w)                                                                     \
  if (res->field)                                                                                  \
    got &= xm__gather((void **)&res->field, sizeof *res->field, (w), rg, A, MPI_DOUBLE);
#define XM__GATHER_I(field, w)                                                                     \
  got &= xm__gather((void **)&res->field, sizeof *res->field, (w), rg, A, MPI_INT32_T);
  XM_CLI_RESULT_ROWS(XM__GATHER_D, XM__GATHER_I)
#undef XM__GATHER_D
#undef XM__GATHER_I
  /* the plan as the job's: every rank's blocks, the largest memory */
  int64_t blocks = res->n_blocks;
  MPI_Reduce(&blocks, &res->n_blocks, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
  uint64_t planned = res->mem_planned;
  MPI_Reduce(&planned, &res->mem_planned, 1, MPI_UINT64_T, MPI_MAX, 0, MPI_COMM_WORLD);
  double t[3] = {res->t_prepare, res->t_scenarios, res->t_evaluate}, tmax[3];
  MPI_Reduce(t, tmax, 3, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  free(rg);
  if (p->rank == 0) {
    res->t_prepare = tmax[0], res->t_scenarios = tmax[1], res->t_evaluate = tmax[2];
    res->A = A;
    res->account_begin = 0;
  }
  if (!got) {
    snprintf(err, cap, "out of memory gathering the results");
    return 1;
  }
  return 0;
#else
  (void)pf, (void)res, (void)cap;
  return 0;
#endif
}

xm_status xm_cli_procs_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                             const xm_run_result *res, const xm_run_meta *meta, int64_t a0,
                             int64_t na, xm_diag *diag) {
#ifdef XM_WITH_MPI
  if (xm__procs.size > 1) {
    MPI_Comm comm = MPI_COMM_WORLD;
    if (xm_cli_procs_fault("write"))
      a0 = -1; /* a part the writer refuses */
    return xm_run_result_write_ranks(path, pf, cfg, res, meta, a0, na, &comm, diag);
  }
#endif
  (void)a0, (void)na;
  return xm_run_result_write(path, pf, cfg, res, meta, diag);
}

xm_status xm_cli_procs_write_days(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                  const xm_backtest_result *res, const xm_run_meta *meta,
                                  int64_t j0, int64_t j1, xm_diag *diag) {
#ifdef XM_WITH_MPI
  if (xm__procs.size > 1) {
    MPI_Comm comm = MPI_COMM_WORLD;
    if (xm_cli_procs_fault("write"))
      j0 = -1; /* a part the writer refuses */
    return xm_backtest_result_write_ranks(path, pf, cfg, res, meta, j0, j1, &comm, diag);
  }
#endif
  (void)j0, (void)j1;
  return xm_backtest_result_write(path, pf, cfg, res, meta, diag);
}

int xm_cli_procs_wrote(const xm_cli_job *j, xm_cli_inputs *in, xm_status st) {
  int rc = xm__procs.rank == 0 || in->diag.total > 0 ? xm_cli_job_wrote(j, in, st)
                                                     : (st == XM_OK ? -1 : XM_EXIT_FAIL);
  return xm_cli_procs_agree(rc);
}

void xm_cli_procs_days(int64_t N, int64_t *j0, int64_t *j1) {
  const xm_cli_procs *p = &xm__procs;
  *j0 = N * p->rank / p->size;
  *j1 = N * (p->rank + 1) / p->size;
}

#ifdef XM_WITH_MPI
/* Rows [j0, j1) of an [N x w] array from each rank into rank 0's, in place. */
static void xm__gather_rows(void *a, int64_t w, int64_t j0, int64_t j1, MPI_Datatype type,
                            const int *counts, const int *displs) {
  int size;
  MPI_Type_size(type, &size);
  char *base = a;
  if (xm__procs.rank == 0)
    MPI_Gatherv(MPI_IN_PLACE, 0, type, base, counts, displs, type, 0, MPI_COMM_WORLD);
  else
    MPI_Gatherv(base + (size_t)(j0 * w) * (size_t)size, (int)((j1 - j0) * w), type, NULL, NULL,
                NULL, type, 0, MPI_COMM_WORLD);
}
/* --save-scenarios: each set's [N x S_max x F] shocks, each rank's own days
 * filled (the others NaN), S_max the set's largest size over every rank's
 * days: a rank whose days are shorter pads its rows with NaN to it, as one
 * process lays the file out. The shocks are not gathered: each rank writes
 * its days (xm_cli_procs_write_days). 0, or 1 with err (out of memory). */
static int xm__pad_shocks(xm_backtest_result *r, int64_t j0, int64_t j1, char *err, size_t cap) {
  int64_t N = r->N, K = r->K, F = r->F;
  int64_t *Sg = malloc((size_t)(K + 1) * sizeof *Sg);
  int ok = Sg != NULL, every = 0;
  MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!every) {
    free(Sg);
    snprintf(err, cap, "out of memory padding the saved scenarios");
    return 1;
  }
  MPI_Allreduce(r->shock_S, Sg, (int)K, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  for (int64_t x = 0; ok && x < K; x++) {
    int64_t S = r->shock_S[x], w = Sg[x] * F;
    if (S == Sg[x])
      continue;
    double *X = malloc((size_t)(N * w + 1) * sizeof *X);
    if (!(ok = X != NULL))
      break;
    for (int64_t i = 0; i < N * w; i++)
      X[i] = NAN;
    for (int64_t j = j0; j < j1; j++)
      memcpy(X + j * w, r->shock[x] + j * S * F, (size_t)(S * F) * sizeof *X);
    free(r->shock[x]);
    r->shock[x] = X;
    r->shock_S[x] = Sg[x];
  }
  free(Sg);
  MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!every) {
    snprintf(err, cap, "out of memory padding the saved scenarios");
    return 1;
  }
  return 0;
}
#endif

int xm_cli_procs_gather_days(xm_backtest_result *r, int64_t j0, int64_t j1, char *err, size_t cap) {
  err[0] = '\0';
#ifdef XM_WITH_MPI
  const xm_cli_procs *p = &xm__procs;
  if (p->size <= 1)
    return 0;
  int R = p->size;
  int64_t N = r->N, A = r->A, G = r->G;
  if (N * A * (G > 1 ? G : 1) > INT_MAX) {
    snprintf(err, cap,
             "%lld values of one series are more than one MPI message holds (%d): split the "
             "book or the days into more jobs",
             (long long)(N * A * (G > 1 ? G : 1)), INT_MAX);
    return 2;
  }
  int64_t *rg;
  if (xm__ranges(j0, j1, N, "day ranges", &rg, err, cap))
    return 1;
  int *counts = malloc((size_t)R * sizeof *counts), *displs = malloc((size_t)R * sizeof *displs);
  int ok = counts && displs, every = 0;
  MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!every) {
    free(rg);
    free(counts);
    free(displs);
    snprintf(err, cap, "out of memory gathering the backtest");
    return 1;
  }
  /* one array shape at a time: [N x w] rows, rank q's rows rg[2q] .. rg[2q + 1] */
  const int64_t widths[3] = {A, A * G, 1};
  for (int k = 0; k < 3; k++) {
    int64_t w = widths[k];
    xm__counts(rg, w, counts, displs);
    if (k == 0) {
      for (int m = 0; m < XM_BT_NMARGIN; m++)
        xm__gather_rows(r->margin[m], w, j0, j1, MPI_DOUBLE, counts, displs);
      xm__gather_rows(r->realised, w, j0, j1, MPI_DOUBLE, counts, displs);
      xm__gather_rows(r->binding, w, j0, j1, MPI_INT32_T, counts, displs);
    } else if (k == 1) {
      xm__gather_rows(r->silo_margin, w, j0, j1, MPI_DOUBLE, counts, displs);
      xm__gather_rows(r->realised_by_silo, w, j0, j1, MPI_DOUBLE, counts, displs);
    } else {
      for (int m = 0; m < XM_BT_NMARGIN; m++)
        xm__gather_rows(r->total_margin[m], w, j0, j1, MPI_DOUBLE, counts, displs);
      xm__gather_rows(r->total_realised, w, j0, j1, MPI_DOUBLE, counts, displs);
    }
  }
  int shocks = r->shock ? xm__pad_shocks(r, j0, j1, err, cap) : 0;
  double t = r->t_total, tmax = t;
  MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  if (p->rank == 0)
    r->t_total = tmax;
  free(rg);
  free(counts);
  free(displs);
  return shocks;
#else
  (void)r, (void)j0, (void)j1, (void)cap;
  return 0;
#endif
}

int xm_cli_procs_ran(const xm_cli_job *j, xm_cli_inputs *in, xm_status st, const char *notes) {
  int rc;
  if (st == XM_OK && xm_cli_procs_fault("run")) {
    fprintf(stderr, "%s: %s: a failure injected by XM_TEST_FAIL_RANK\n", j->cmd,
            xm_strerror(XM_ERESOURCE));
    rc = XM_EXIT_FAIL;
  } else {
    rc = xm_cli_job_ran(j, in, st, notes);
  }
  return xm_cli_procs_agree(rc);
}

int xm_cli_procs_gathered(const xm_cli_job *j, int gathered, const char *err) {
  if (gathered && err && *err)
    fprintf(stderr, "%s: %s\n", j->cmd, err);
  return xm_cli_procs_agree(gathered ? (gathered == 2 ? XM_EXIT_USAGE : XM_EXIT_FAIL) : -1);
}
