/* The scenario split of an MPI job (docs/scaling.md, issue 17's second
 * mode): every rank evaluates its part of each set's scenarios on the whole
 * book, a streamed plan keeping per (account, component) only the tail of
 * its losses (kernels/xm_reduce.h); the ranks' tails are folded up a
 * binomial tree of adjacent parts (rank order is scenario order) into the
 * tails one process would hold, which rank 0 measures and combines (xm__run_sets on given tails:
 * nothing revalued). The results are one process's bit for bit: a tail does not depend on how its
 * scenarios were cut (tests/test_reduce.c), nor a scenario's losses on which process prices it
 * (draws keyed by (seed, scenario), every exp through the same vector code). Needs XM_WITH_MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"

#ifdef XM_WITH_MPI
#include <limits.h>
#include <mpi.h>

/* Part r of R of each set: scenarios [S r / R, S (r + 1) / R), a view of
 * the whole set's arrays (k stays the whole set's). *out's set array only
 * is its own (free it, not the sets). */
static xm_status xm__sets_part(xm_ctx *ctx, const xm__sets *all, int r, int R, xm__sets *out) {
  *out = *all;
  out->set = malloc((size_t)(all->K + 1) * sizeof *out->set);
  if (!out->set)
    return xm__fail(ctx, XM_ENOMEM, "the scenario split's sets");
  for (int64_t x = 0; x < all->K; x++) {
    xm__set s = all->set[x];
    int64_t lo = s.S * r / R, hi = s.S * (r + 1) / R, F = all->F;
    s.X = s.X ? s.X + lo * F : NULL;
    s.EX = s.EX ? s.EX + lo * F : NULL;
    s.w = s.w ? s.w + lo : NULL;
    s.labels = s.labels ? s.labels + lo : NULL;
    s.s_base = all->set[x].s_base + lo;
    s.S = hi - lo;
    out->set[x] = s;
  }
  return XM_OK;
}

/* The worst status of every rank, and the first failing rank (-1: none). */
static xm_status xm__agree(MPI_Comm comm, xm_status st, int *who) {
  int me = 0, mine[2], worst[2];
  MPI_Comm_rank(comm, &me);
  mine[0] = (int)st;
  mine[1] = st != XM_OK ? -me : INT_MIN; /* MAX of -rank: the lowest failing rank */
  MPI_Allreduce(mine, worst, 2, MPI_INT, MPI_MAX, comm);
  *who = worst[1] == INT_MIN ? -1 : -worst[1];
  return (xm_status)worst[0];
}
#endif

xm_status xm_run_scenario_ranks(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                                const xm_config *cfg, const xm_run_opts *opts, const void *mpi_comm,
                                xm_run_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  if (!ctx || !pf || !sf || !cfg)
    return ctx ? xm__fail(ctx, XM_EINVAL, "xm_run_scenario_ranks: a NULL argument") : XM_EINVAL;
#ifndef XM_WITH_MPI
  (void)opts, (void)mpi_comm;
  return xm__fail(ctx, XM_EUNSUPPORTED,
                  "the scenario split needs MPI: this libxmargin was built without it "
                  "(XM_WITH_MPI=OFF)");
#else
  int inited = 0;
  if (!mpi_comm || MPI_Initialized(&inited) != MPI_SUCCESS || !inited)
    return xm__fail(ctx, XM_EINVAL, "the scenario split: %s",
                    mpi_comm ? "MPI is not initialised (MPI_Init)" : "no MPI communicator");
  MPI_Comm comm = *(const MPI_Comm *)mpi_comm;
  int r = 0, R = 1, who = -1;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &R);
  xm_run_opts o = {0, 0, NULL, NULL, 0, 0, 0, 0, NULL};
  if (opts)
    o = *opts;
  xm_status st = XM_OK;
  if (o.save_pnl || o.save_scenarios || o.account_begin || o.account_end)
    st = xm__fail(ctx, XM_EINVAL,
                  "the scenario split keeps each rank's tails only: not with --save-pnl, "
                  "--save-scenarios or an account range");
  else if (cfg->collateral.method == XM_COLLATERAL_SCENARIO && pf->n_collateral > 0)
    st = xm__fail(ctx, XM_ECONFIG,
                  "the scenario split: not with collateral.method = scenario (split the "
                  "accounts instead)");
  xm__sets sets, part;
  memset(&sets, 0, sizeof sets);
  memset(&part, 0, sizeof part);
  double **tails = NULL, *buf = NULL;
  int *pstart = NULL, *psilo = NULL;
  xm__posref *pr = NULL;
  int64_t A = pf->n_accounts, G = pf->n_silos, K = 0, most = 0, N = 0;
  char notes[sizeof out->notes] = "";
  if (st == XM_OK)
    st = xm__sets_build(ctx, pf, sf, cfg, &o, 0, &sets, notes, sizeof notes);
  if (st == XM_OK)
    st = xm__sets_part(ctx, &sets, r, R, &part);
  K = sets.K;
  if (st == XM_OK && !(tails = calloc((size_t)K + 1, sizeof *tails)))
    st = xm__fail(ctx, XM_ENOMEM, "the scenario split's tails");
  for (int64_t x = 0; st == XM_OK && x < K; x++) {
    int64_t n = A * XM_TREC(G, xm__set_tk(&sets.set[x]));
    most = n > most ? n : most;
    if (!(tails[x] = calloc((size_t)n + 1, sizeof **tails)))
      st = xm__fail(ctx, XM_ENOMEM, "the tails of set %s (%lld doubles)", sets.set[x].name,
                    (long long)n);
  }
  /* this rank's part: its tails (its run's requirements are not made) */
  double tpart[2] = {0.0, 0.0}, tmax[2] = {0.0, 0.0}; /* its shocks', its evaluate's seconds */
  if (st == XM_OK) {
    xm_run_result mine;
    memset(&mine, 0, sizeof mine);
    xm__tails_io tio = {tails, NULL};
    st = xm__run_sets(ctx, pf, sf, cfg, &o, 0, &part, NULL, &tio, &mine);
    tpart[0] = mine.t_scenarios, tpart[1] = mine.t_evaluate;
    xm_run_result_free(&mine);
  }
  xm_status all = xm__agree(comm, st, &who);
  if (all != XM_OK) {
    if (st == XM_OK)
      st = xm__fail(ctx, all, "the scenario split: rank %d of %d failed (%s)", who, R,
                    xm_strerror(all));
    goto cleanup;
  }
  MPI_Reduce(tpart, tmax, 2, MPI_DOUBLE, MPI_MAX, 0, comm);
  double t_merge = MPI_Wtime();
  /* The tails merged up a binomial tree: at step d (1, 2, 4, ...) each rank
   * r that is a multiple of 2d folds the tails of rank r + d (which by then
   * hold parts r + d .. r + 2d - 1, the scenarios after all of r's) into its
   * own, a set at a time (MPI counts are ints: a set's tails in pieces of at
   * most INT_MAX). A tail is the k best of its scenarios, so the fold of two
   * adjacent parts' tails is the tail of both: rank 0 ends with the whole
   * set's, bit for bit the sequential fold's, in ceil(log2 R) steps of one
   * part's tails each (docs/scaling.md). */
  int folds = 0; /* whether this rank receives at any step */
  for (int d = 1; d < R; d *= 2)
    folds |= r % (2 * d) == 0 && r + d < R;
  if (folds && (st = xm__net_positions(ctx, pf, &pr, &N)) == XM_OK) {
    pstart = calloc((size_t)A + 1, sizeof *pstart);
    psilo = malloc(((size_t)N + 1) * sizeof *psilo);
    buf = malloc((size_t)most * sizeof *buf + 1);
    if (!pstart || !psilo || !buf)
      st = xm__fail(ctx, XM_ENOMEM, "merging the scenario split's tails");
    for (int64_t p = 0; st == XM_OK && p < N; p++)
      pstart[pr[p].acct + 1]++, psilo[p] = pr[p].silo;
    for (int64_t a = 0; st == XM_OK && a < A; a++)
      pstart[a + 1] += pstart[a];
  }
  for (int64_t x = 0; x < K; x++) {
    int64_t tk = xm__set_tk(&sets.set[x]), rec = XM_TREC(G, tk), n = A * rec;
    for (int d = 1; d < R && r % d == 0; d *= 2) {
      int up = r % (2 * d) == d, q = up ? r - d : r + d; /* sends to q, or folds q's */
      if (!up && q >= R)
        continue;
      for (int64_t off = 0; off < n; off += INT_MAX) {
        int c = (int)(n - off < INT_MAX ? n - off : INT_MAX);
        if (up)
          MPI_Send(tails[x] + off, c, MPI_DOUBLE, q, (int)x, comm);
        else
          MPI_Recv((buf ? buf : tails[x]) + off, c, MPI_DOUBLE, q, (int)x, comm, MPI_STATUS_IGNORE);
      }
      for (int64_t a = 0; !up && buf && st == XM_OK && a < A; a++)
        xm_tail_merge(a, (int)G, tails[x] + a * rec, buf + a * rec, tk, sets.set[x].measure,
                      sets.set[x].k, pstart, psilo);
      if (up)
        break; /* its part is in r - d's now */
    }
  }
  /* rank 0: the whole book's run from the merged tails */
  if (r == 0 && st == XM_OK) {
    xm__tails_io tio = {NULL, (const double *const *)tails};
    st = xm__run_sets(ctx, pf, sf, cfg, &o, 0, &sets, NULL, &tio, out);
    /* the job's times: the slowest part's, then the merge and this run */
    out->t_scenarios += tmax[0];
    out->t_evaluate = tmax[1] + (MPI_Wtime() - t_merge);
    for (int64_t x = 0; st == XM_OK && x < K; x++) { /* the labels go with the result */
      out->sets[x].labels = sets.set[x].labels;
      sets.set[x].labels = NULL;
    }
    if (st == XM_OK) { /* the sets' remarks (made here, not by that run) first */
      char run_notes[sizeof out->notes];
      snprintf(run_notes, sizeof run_notes, "%s", out->notes);
      snprintf(out->notes, sizeof out->notes, "%s%s", notes, run_notes);
    }
  }
  all = xm__agree(comm, st, &who);
  if (all != XM_OK && st == XM_OK)
    st = xm__fail(ctx, all, "the scenario split: rank %d of %d failed (%s)", who, R,
                  xm_strerror(all));
cleanup:
  if (st != XM_OK || r != 0)
    xm_run_result_free(out);
  for (int64_t x = 0; tails && x < K; x++)
    free(tails[x]);
  free(tails);
  free(buf);
  free(pstart);
  free(psilo);
  free(pr);
  free(part.set);
  xm__sets_free(&sets);
  return st;
#endif
}
