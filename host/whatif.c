/* Incremental (what-if) margin: a book prepared once (its scenario sets made,
 * Monte Carlo drawn on the context's device and kept on the host), then the
 * outputs of one account with candidate trades added, as a full run of the
 * book so modified would give them, without running the book again. An
 * account's outputs depend on its own positions and on the sets alone; the
 * sets depend on the book only through the factors the run moves
 * (METHODOLOGY.md section 1), so a trade that would change those (hold a
 * factor nothing held, or close the last holding of one) is refused: it
 * needs a full run.
 *
 * The increment: an account's first what-if runs the account on the prepared
 * sets (host/engine.c's xm__run_sets) and keeps its account and silo losses
 * of every set (xm__increment.keep); every what-if of it is then those kept
 * losses plus the trades' alone (their rows revalued, their quantities
 * aggregated, the sum added by the backend's add step), measured, with the
 * add-on and the combination of the account with its trades, on the
 * prepared context's backend. The kept losses of up to XM__KEPT_BYTES of
 * accounts stay, the least recently used going first.
 *
 * Owns: the xm_prepared (its sets, its indexes, the kept losses); borrows the
 * book, the scenario file and the context, which must outlive it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xm_engine.h"
#include "xm_internal.h"
#include "xm_price_host.h"
#include "xm_reduce.h"

/* The kept losses of accounts, in bytes at most, and at most a quarter of
 * --mem-limit (xm_options.mem_limit) where one is given; one account's are
 * kept whatever their size. Host memory on every backend. */
#define XM__KEPT_BYTES ((uint64_t)256 << 20)

/* One account's kept losses: set x's S_x x (G + 1) doubles from L[off[x]]. */
typedef struct xm__kept {
  int32_t account;
  uint64_t used; /* the what-if count when last used */
  double *L;
} xm__kept;

struct xm_prepared {
  xm_ctx *ctx;
  const xm_portfolio *pf;
  const xm_scenario_file *sf;
  xm_config cfg;
  xm__sets sets;       /* every set with host shocks (Monte Carlo drawn once) */
  int64_t *pos_start;  /* [A + 1] the book's positions by account (CSR) ... */
  int64_t *pos_rows;   /* ... their rows */
  int64_t *coll_start; /* [A + 1] the collateral holdings by account ... */
  int64_t *coll_rows;  /* ... their rows */
  int64_t *refs;       /* [n_factors] the held pairs that make the run move it */
  uint8_t *fixed;      /* [n_factors] moved whatever is held: an account's currency, a
                          holding revalued in the scenarios (collateral.method = scenario) */
  int64_t *off;        /* [K + 1] a set's first element in an account's kept losses */
  xm__kept *kept;      /* [n_kept] of at most max_kept */
  int64_t n_kept, max_kept;
  uint64_t uses;
};

void xm_prepared_free(xm_prepared *p) {
  if (!p)
    return;
  xm__sets_free(&p->sets);
  for (int64_t j = 0; j < p->n_kept; j++)
    free(p->kept[j].L);
  free(p->kept);
  free(p->off);
  free(p->pos_start);
  free(p->pos_rows);
  free(p->coll_start);
  free(p->coll_rows);
  free(p->refs);
  free(p->fixed);
  free(p);
}

/* rows [n] grouped by key[row] < A into CSR start [A + 1], order kept. */
static int xm__csr(const int32_t *key, int64_t n, int64_t A, int64_t **start, int64_t **rows) {
  *start = calloc((size_t)A + 2, sizeof **start);
  *rows = malloc((size_t)n * sizeof **rows + 1);
  if (!*start || !*rows)
    return 0;
  for (int64_t r = 0; r < n; r++)
    (*start)[key[r] + 2]++;
  for (int64_t a = 0; a < A; a++)
    (*start)[a + 2] += (*start)[a + 1];
  for (int64_t r = 0; r < n; r++)
    (*rows)[(*start)[key[r] + 1]++] = r;
  return 1;
}

/* The factors held instrument i makes the run move (section 1): its
 * underlying, an option's vol factor, its settlement currency's /fx factor. */
static int xm__inst_factors(const xm_portfolio *pf, int32_t i, int32_t f[3]) {
  int n = 0;
  f[n++] = pf->inst_underlying[i];
  if (pf->inst_vol_factor[i] >= 0 && XM_TYPE_IS_OPTION(pf->inst_type[i]))
    f[n++] = pf->inst_vol_factor[i];
  int64_t c = xm__inst_fx(pf, i);
  if (c >= 0)
    f[n++] = pf->fx_factor[c];
  return n;
}

/* Adds sign x the factor references of account a's held pairs: its position
 * rows rows[0..n) of the book, then trades[0..nt) (net per instrument, in that
 * order). net: scratch [n_instruments], all 0 on entry and on return. */
static void xm__account_refs(const xm_portfolio *pf, const int64_t *rows, int64_t n,
                             const xm_trade *trades, int64_t nt, double *net, int64_t sign,
                             int64_t *refs) {
  for (int pass = 0; pass < 3; pass++)
    for (int64_t j = 0; j < n + nt; j++) {
      int32_t i = j < n ? pf->pos_instrument[rows[j]] : trades[j - n].instrument;
      if (pass == 0) {
        net[i] += j < n ? pf->pos_quantity[rows[j]] : trades[j - n].quantity;
      } else if (pass == 1 && net[i] != 0.0 && !isnan(net[i])) {
        int32_t f[3];
        int m = xm__inst_factors(pf, i, f);
        for (int k = 0; k < m; k++)
          refs[f[k]] += sign;
        net[i] = NAN; /* counted once */
      } else if (pass == 2) {
        net[i] = 0.0;
      }
    }
}

/* The Monte Carlo sets' draws on ctx's device, kept as host shocks: the set
 * is then read as a ready-made one (the same rows a run draws: scenario s
 * depends only on (seed, s)). */
static xm_status xm__draw_kept(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets) {
  const xm__backend *be = ctx->be;
  int64_t F = sets->F, chunk = 8192;
  uint64_t total = 0, maxbuf = 0;
  xm__mem_budget(ctx, &total, &maxbuf);
  xm_status st = be->begin(ctx, cfg->precision);
  if (st != XM_OK)
    return st;
  xm__mem X = NULL, EX = NULL;
  size_t bytes = (size_t)(chunk * (F > 0 ? F : 1)) * sizeof(double);
  if ((st = be->alloc(ctx, bytes, NULL, &X)) || (st = be->alloc(ctx, bytes, NULL, &EX)))
    goto cleanup;
  for (int64_t x = 0; x < sets->K && st == XM_OK; x++) {
    xm__set *set = &sets->set[x];
    if (!set->is_mc)
      continue;
    if (!(set->X = malloc((size_t)(set->S * F) * sizeof(double) + 1))) {
      st = xm__fail(ctx, XM_ENOMEM, "the draws of %s (%lld scenarios)", set->name,
                    (long long)set->S);
      break;
    }
    xm__mc_args a = {cfg->montecarlo.seed,
                     cfg->montecarlo.distribution == XM_DIST_STUDENT_T,
                     cfg->montecarlo.dof,
                     (double)cfg->horizon_days,
                     F,
                     set->chol,
                     set->name};
    for (int64_t s0 = 0; s0 < set->S && st == XM_OK; s0 += chunk) {
      int64_t ns = set->S - s0 < chunk ? set->S - s0 : chunk;
      if ((st = be->mc(ctx, &a, s0, ns, 0, total / 8, X, EX)) == XM_OK)
        st = be->download(ctx, set->X + s0 * F, X, 0, (size_t)(ns * F) * sizeof(double));
    }
    set->is_mc = 0;
  }
  /* a device: its add step now, so that the first what-if does not wait for
   * CLBlast to build its kernel */
  if (!be->host_memory && st == XM_OK)
    st = be->add(ctx, 1, X, EX);
  /* on the host's memory: exp(X) once, by the backend's own step (the bits a
   * run makes), lent to every what-if */
  for (int64_t x = 0; be->host_memory && x < sets->K && st == XM_OK; x++) {
    xm__set *set = &sets->set[x];
    xm__mem v = NULL, e = NULL;
    size_t b = (size_t)(set->S * F) * sizeof(double);
    if (set->S == 0 || F == 0)
      continue;
    if (!(set->EX = malloc(b))) {
      st = xm__fail(ctx, XM_ENOMEM, "exp of the shocks of %s", set->name);
      break;
    }
    if ((st = be->view(ctx, set->X, b, &v)) == XM_OK &&
        (st = be->alloc(ctx, b, NULL, &e)) == XM_OK &&
        (st = be->exp_shocks(ctx, 0, set->S * F, v, e)) == XM_OK)
      st = be->download(ctx, set->EX, e, 0, b);
    if (e)
      be->release(ctx, e);
    if (v)
      be->release(ctx, v);
  }
cleanup:
  if (EX)
    be->release(ctx, EX);
  if (X)
    be->release(ctx, X);
  be->end(ctx);
  return st;
}

xm_status xm_prepare(xm_ctx *ctx, const xm_portfolio *pf, const xm_scenario_file *sf,
                     const xm_config *cfg, xm_prepared **out) {
  if (!out)
    return XM_EINVAL;
  *out = NULL;
  if (!ctx || !ctx->be || !pf || !sf)
    return XM_EINVAL;
  xm_prepared *p = calloc(1, sizeof *p);
  if (!p)
    return xm__fail(ctx, XM_ENOMEM, "out of memory");
  p->ctx = ctx;
  p->pf = pf;
  p->sf = sf;
  if (cfg)
    p->cfg = *cfg;
  else
    xm_config_default(&p->cfg);
  xm_status st = XM_OK;
  int64_t A = pf->n_accounts;
  double *net = calloc((size_t)pf->n_instruments + 1, sizeof *net);
  p->refs = calloc((size_t)pf->n_factors + 1, sizeof *p->refs);
  p->fixed = calloc((size_t)pf->n_factors + 1, 1);
  if (!net || !p->refs || !p->fixed ||
      !xm__csr(pf->pos_account, pf->n_positions, A, &p->pos_start, &p->pos_rows) ||
      !xm__csr(pf->coll_account, pf->n_collateral, A, &p->coll_start, &p->coll_rows)) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto done;
  }
  for (int64_t a = 0; a < A; a++) {
    xm__account_refs(pf, p->pos_rows + p->pos_start[a], p->pos_start[a + 1] - p->pos_start[a], NULL,
                     0, net, 1, p->refs);
    int64_t c = xm__acct_fx(pf, a);
    if (c >= 0)
      p->fixed[pf->fx_factor[c]] = 1;
  }
  for (int64_t j = 0; p->cfg.collateral.method == XM_COLLATERAL_SCENARIO && j < pf->n_collateral;
       j++) {
    int64_t c = pf->coll_currency ? xm__fx_row(pf, pf->coll_currency[j]) : -1;
    if (pf->coll_quantity[j] != 0.0 && pf->coll_factor[j] >= 0)
      p->fixed[pf->coll_factor[j]] = 1;
    if (pf->coll_quantity[j] != 0.0 && c >= 0)
      p->fixed[pf->fx_factor[c]] = 1;
  }
  /* the sets, on the book a run sees (with scenario collateral: the holdings
   * as positions) */
  {
    const xm_portfolio *book = pf;
    xm_portfolio aug;
    void *owned = NULL;
    char notes[2048] = "";
    if (p->cfg.collateral.method == XM_COLLATERAL_SCENARIO && pf->n_collateral > 0) {
      if ((st = xm__collateral_book(ctx, pf, &aug, &owned)) != XM_OK)
        goto done;
      book = &aug;
    }
    st = xm__sets_build(ctx, book, sf, &p->cfg, NULL, 0, &p->sets, notes, sizeof notes);
    xm__collateral_book_free(owned);
    if (st == XM_OK)
      st = xm__draw_kept(ctx, &p->cfg, &p->sets);
    p->sets.solo = 1;
  }
  /* the kept losses' layout and how many accounts' fit */
  if (st == XM_OK && !(p->off = malloc((size_t)(p->sets.K + 1) * sizeof *p->off)))
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
  if (st == XM_OK) {
    p->off[0] = 0;
    for (int64_t x = 0; x < p->sets.K; x++)
      p->off[x + 1] = p->off[x] + p->sets.set[x].S * (pf->n_silos + 1);
    uint64_t one = (uint64_t)p->off[p->sets.K] * sizeof(double) + 1, cap = XM__KEPT_BYTES;
    if (ctx->opt.mem_limit && ctx->opt.mem_limit / 4 < cap)
      cap = ctx->opt.mem_limit / 4;
    p->max_kept = (int64_t)(cap / one) > 0 ? (int64_t)(cap / one) : 1;
    if (p->max_kept > A)
      p->max_kept = A > 0 ? A : 1;
    if (!(p->kept = calloc((size_t)p->max_kept, sizeof *p->kept)))
      st = xm__fail(ctx, XM_ENOMEM, "out of memory");
  }
done:
  free(net);
  if (st != XM_OK) {
    xm_prepared_free(p);
    return st;
  }
  *out = p;
  return XM_OK;
}

/* The book of one account with its trades (its positions, then the trades;
 * its holdings), on the prepared book's other tables. */
typedef struct xm__wi_book {
  xm_portfolio one;
  int32_t *pa, *pi, *cf, *cs;
  double *pq, *cq;
  char **cc;
} xm__wi_book;

static void xm__wi_book_free(xm__wi_book *b) {
  free(b->pa);
  free(b->pi);
  free(b->pq);
  free(b->cf);
  free(b->cs);
  free(b->cq);
  free(b->cc);
  memset(b, 0, sizeof *b);
}

/* Checks the trades (XM_EINVAL), refuses those that change the factors the
 * run moves (XM_ECONFIG), makes *b (xm__wi_book_free, also on failure). */
static xm_status xm__wi_book_make(xm_prepared *p, int32_t account, const xm_trade *trades,
                                  int64_t n, xm__wi_book *b) {
  memset(b, 0, sizeof *b);
  if (!p || (n > 0 && !trades) || n < 0)
    return XM_EINVAL;
  xm_ctx *ctx = p->ctx;
  const xm_portfolio *pf = p->pf;
  if (account < 0 || account >= pf->n_accounts)
    return xm__fail(ctx, XM_EINVAL, "what-if: account %d is not a row of /accounts (%lld rows)",
                    account, (long long)pf->n_accounts);
  for (int64_t t = 0; t < n; t++) {
    if (trades[t].instrument < 0 || trades[t].instrument >= pf->n_instruments)
      return xm__fail(ctx, XM_EINVAL,
                      "what-if: trade %lld: instrument %d is not a row of /instruments (%lld rows)",
                      (long long)t, trades[t].instrument, (long long)pf->n_instruments);
    if (!isfinite(trades[t].quantity))
      return xm__fail(ctx, XM_EINVAL, "what-if: trade %lld (%s): quantity %g is not finite",
                      (long long)t, pf->inst_id[trades[t].instrument], trades[t].quantity);
  }
  const int64_t *rows = p->pos_rows + p->pos_start[account];
  int64_t nr = p->pos_start[account + 1] - p->pos_start[account];
  const int64_t *crows = p->coll_rows + p->coll_start[account];
  int64_t nc = p->coll_start[account + 1] - p->coll_start[account];
  xm_status st = XM_OK;
  double *net = calloc((size_t)pf->n_instruments + 1, sizeof *net);
  int64_t *refs = malloc((size_t)pf->n_factors * sizeof *refs + 1);
  int32_t *pa = b->pa = calloc((size_t)(nr + n + nc) + 1, sizeof *pa); /* account 0: both */
  int32_t *pi = b->pi = malloc((size_t)(nr + n) * sizeof *pi + 1);
  double *pq = b->pq = malloc((size_t)(nr + n) * sizeof *pq + 1);
  int32_t *cf = b->cf = malloc((size_t)nc * sizeof *cf + 1);
  int32_t *cs = b->cs = malloc((size_t)nc * sizeof *cs + 1);
  double *cq = b->cq = malloc((size_t)nc * sizeof *cq + 1);
  char **cc = b->cc = pf->coll_currency ? malloc((size_t)nc * sizeof *cc + 1) : NULL;
  if (!net || !refs || !pa || !pi || !pq || !cf || !cs || !cq || (pf->coll_currency && !cc)) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto done;
  }
  /* the factors the modified book's run would move: the same, or refused */
  memcpy(refs, p->refs, (size_t)pf->n_factors * sizeof *refs);
  xm__account_refs(pf, rows, nr, NULL, 0, net, -1, refs);
  xm__account_refs(pf, rows, nr, trades, n, net, 1, refs);
  for (int64_t f = 0; f < pf->n_factors; f++)
    if (!p->fixed[f] && (refs[f] > 0) != (p->refs[f] > 0)) {
      st = xm__fail(ctx, XM_ECONFIG,
                    "what-if for account %s: the trades %s factor %s, which changes the factors "
                    "the run moves (METHODOLOGY.md section 1) and with them the Monte Carlo "
                    "draws of every account: run the modified book in full",
                    pf->account_id[account],
                    refs[f] > 0 ? "hold the first instrument on" : "close the last holding of",
                    pf->factor_name[f]);
      goto done;
    }
  /* the book of one account: its positions, then the trades; its holdings */
  for (int64_t j = 0; j < nr; j++)
    pi[j] = pf->pos_instrument[rows[j]], pq[j] = pf->pos_quantity[rows[j]];
  for (int64_t t = 0; t < n; t++)
    pi[nr + t] = trades[t].instrument, pq[nr + t] = trades[t].quantity;
  for (int64_t j = 0; j < nc; j++) {
    cf[j] = pf->coll_factor[crows[j]], cs[j] = pf->coll_silo[crows[j]];
    cq[j] = pf->coll_quantity[crows[j]];
    if (cc)
      cc[j] = pf->coll_currency[crows[j]];
  }
  xm_portfolio one = *pf;
  one.n_accounts = 1;
  one.account_id = pf->account_id + account;
  one.account_cross_margin = pf->account_cross_margin + account;
  one.account_currency = pf->account_currency ? pf->account_currency + account : NULL;
  one.n_positions = nr + n;
  one.pos_account = pa;
  one.pos_instrument = pi;
  one.pos_quantity = pq;
  one.n_collateral = nc;
  one.coll_account = pa;
  one.coll_factor = cf;
  one.coll_silo = cs;
  one.coll_quantity = cq;
  one.coll_currency = cc;
  b->one = one;
done:
  free(net);
  free(refs);
  return st;
}

/* Account a's kept losses: found, or made by a run of the account alone
 * (into the least recently used entry when every one is taken), whose
 * result then goes to *run when run is not NULL (else it is dropped). */
static xm_status xm__kept_get(xm_prepared *p, int32_t a, const xm_portfolio *alone,
                              const double **L, xm_run_result *run) {
  xm__kept *e = NULL;
  p->uses++;
  for (int64_t j = 0; j < p->n_kept && !e; j++)
    if (p->kept[j].account == a)
      e = &p->kept[j];
  if (e) {
    e->used = p->uses;
    *L = e->L;
    return XM_OK;
  }
  if (p->n_kept < p->max_kept) {
    e = &p->kept[p->n_kept++];
  } else {
    e = &p->kept[0];
    for (int64_t j = 1; j < p->n_kept; j++)
      if (p->kept[j].used < e->used)
        e = &p->kept[j];
  }
  int64_t K = p->sets.K;
  double **keep = calloc((size_t)K + 1, sizeof *keep);
  double *buf = e->account >= 0 && e->L ? e->L : NULL;
  e->L = NULL;
  if (!buf)
    buf = malloc((size_t)p->off[K] * sizeof *buf + 1);
  if (!keep || !buf) {
    free(keep);
    free(buf);
    e->account = -1;
    return xm__fail(p->ctx, XM_ENOMEM, "the kept losses of account %s (%lld doubles)",
                    p->pf->account_id[a], (long long)p->off[K]);
  }
  for (int64_t x = 0; x < K; x++)
    keep[x] = buf + p->off[x];
  xm__increment inc = {keep, NULL, NULL, NULL};
  xm_run_result r;
  memset(&r, 0, sizeof r);
  xm_status st = xm__run_sets(p->ctx, alone, p->sf, &p->cfg, NULL, 0, &p->sets, &inc, NULL, &r);
  if (run && st == XM_OK)
    *run = r;
  else
    xm_run_result_free(&r);
  free(keep);
  if (st != XM_OK) {
    free(buf);
    e->account = -1;
    return st;
  }
  e->account = a;
  e->used = p->uses;
  e->L = buf;
  *L = buf;
  return XM_OK;
}

/* Whether trades b->pi/pq[nr .. nr + n) close one of the account's
 * positions rows [0, nr), or leave less than 1/1024 of it: the kept losses
 * hold that position's, and their sum with the trades' would keep its
 * rounding (1e-16 of its loss) where the full run has none. */
static int xm__wi_closes(const xm__wi_book *b, int64_t nr, int64_t n) {
  for (int64_t t = 0; t < n; t++) {
    int32_t i = b->pi[nr + t];
    double q = 0.0, d = 0.0;
    for (int64_t j = 0; j < nr + n; j++)
      if (b->pi[j] == i)
        *(j < nr ? &q : &d) += b->pq[j];
    if (q != 0.0 && fabs(q + d) < fabs(q) / 1024.0)
      return 1;
  }
  return 0;
}

/* The what-if of b (xm__wi_book_make's, trades[0..n) after the account's nr
 * positions): the kept losses + the trades'. A run of the account with its
 * trades instead when they close a position (xm__wi_closes) or when the
 * account alone does not run (its positions may fail where the trades mend
 * them: a non-finite requirement). */
static xm_status xm__wi_run(xm_prepared *p, int32_t account, const xm__wi_book *b, int64_t n,
                            xm_run_result *out) {
  xm_portfolio alone = b->one, trades = b->one;
  int64_t nr = b->one.n_positions - n;
  alone.n_positions = nr;
  trades.n_positions = n;
  trades.pos_instrument = b->pi + nr;
  trades.pos_quantity = b->pq + nr;
  trades.n_collateral = 0;
  const double *L = NULL;
  xm_run_result made;
  memset(&made, 0, sizeof made);
  int full = xm__wi_closes(b, nr, n);
  if (full || xm__kept_get(p, account, &alone, &L, &made) != XM_OK)
    return xm__run_sets(p->ctx, &b->one, p->sf, &p->cfg, NULL, 0, &p->sets, NULL, NULL, out);
  if (n == 0 && made.A == 1) { /* no trade: the run that kept the losses */
    *out = made;
    return XM_OK;
  }
  xm_run_result_free(&made);
  const double **base = malloc((size_t)(p->sets.K + 1) * sizeof *base);
  if (!base)
    return xm__fail(p->ctx, XM_ENOMEM, "out of memory");
  for (int64_t x = 0; x < p->sets.K; x++)
    base[x] = L + p->off[x];
  xm__increment inc = {NULL, base, n > 0 ? &trades : NULL, NULL};
  xm_status st = xm__run_sets(p->ctx, &b->one, p->sf, &p->cfg, NULL, 0, &p->sets, &inc, NULL, out);
  free(base);
  return st;
}

xm_status xm_whatif(xm_prepared *p, int32_t account, const xm_trade *trades, int64_t n,
                    xm_run_result *out) {
  if (!out)
    return XM_EINVAL;
  memset(out, 0, sizeof *out);
  xm__wi_book b;
  xm_status st = xm__wi_book_make(p, account, trades, n, &b);
  if (st == XM_OK)
    st = xm__wi_run(p, account, &b, n, out);
  xm__wi_book_free(&b);
  return st;
}

xm_status xm_whatif_contributions(xm_prepared *p, int32_t account, const xm_trade *trades,
                                  int64_t n, xm_contribution **out, int64_t *n_out) {
  if (!out || !n_out)
    return XM_EINVAL;
  *out = NULL;
  *n_out = 0;
  xm__wi_book b;
  xm_run_result r;
  xm__plan plan;
  memset(&r, 0, sizeof r);
  memset(&plan, 0, sizeof plan);
  double *d = NULL, *ell = NULL, *ex = NULL, *lp = NULL, *L = NULL;
  xm_status st = xm__wi_book_make(p, account, trades, n, &b);
  if (st != XM_OK)
    goto done;
  xm_ctx *ctx = p->ctx;
  const xm_config *cfg = &p->cfg;
  if (cfg->collateral.method == XM_COLLATERAL_SCENARIO && b.one.n_collateral > 0) {
    st = xm__fail(ctx, XM_ECONFIG,
                  "what-if contributions: not with collateral.method = scenario (the holdings "
                  "are positions of the run there)");
    goto done;
  }
  if ((st = xm__wi_run(p, account, &b, n, &r)) != XM_OK ||
      (st = xm__plan_build(ctx, &b.one, &p->sets, 0, &plan)) != XM_OK)
    goto done;
  if (plan.n_blocks == 0 || plan.blocks[0].pos_start[1] == 0)
    goto done; /* nothing held: no contribution */
  const xm__block *bk = &plan.blocks[0];
  const xm__set *set = &p->sets.set[r.binding[0]];
  int64_t ni = bk->n_inst, np = bk->pos_start[1], S = set->S, F = p->sets.F, G = plan.G;
  int single = cfg->precision == XM_SINGLE;
  double dt = (double)cfg->horizon_days / 252.0, pw = cfg->pricing.vol_term_power;
  d = malloc((size_t)(XM_ND * ni) * sizeof *d);
  ell = malloc((size_t)ni * sizeof *ell);
  ex = malloc((size_t)(F + 1) * sizeof *ex);
  lp = malloc((size_t)(S * np + 1) * sizeof *lp); /* each position's loss, every scenario */
  L = malloc((size_t)(S + 1) * (size_t)(G + 2) * sizeof *L);
  *out = calloc((size_t)np, sizeof **out);
  if (!d || !ell || !ex || !lp || !L || !*out) {
    st = xm__fail(ctx, XM_ENOMEM, "out of memory");
    goto done;
  }
  memcpy(d, bk->instd, (size_t)(XM_ND * ni) * sizeof *d);
  for (int64_t i = 0; i < ni; i++) {
    if (single)
      xm_today_f(i, ni, d, bk->insti, (float)dt, (float)pw);
    else
      xm_today_d(i, ni, d, bk->insti, dt, pw);
  }
  /* the account's loss L(s) as the device sums it, and each position's part */
  double *row = L + S; /* [G + 1] one scenario's account and silo losses */
  xm_layout lay = {G + 1, 1, 0};
  for (int64_t s = 0; s < S; s++) {
    const double *x = set->X + s * F, *e = set->EX ? set->EX + s * F : ex;
    for (int64_t f = 0; !set->EX && f < F; f++)
      ex[f] = exp(x[f]);
    for (int64_t i = 0; i < ni; i++)
      ell[i] = single
                   ? (double)xm_loss_f(i, ni, d, bk->insti, x, e, 1, (float)cfg->pricing.vol_floor)
                   : xm_loss_d(i, ni, d, bk->insti, x, e, 1, cfg->pricing.vol_floor);
    xm_aggregate(0, 0, (int)G, ell, 1, bk->pos_start, bk->pos_inst, bk->pos_silo, bk->pos_qty, row,
                 lay);
    L[s] = row[0];
    for (int64_t q = 0; q < np; q++)
      lp[s * np + q] = bk->pos_qty[q] * ell[bk->pos_inst[q]];
  }
  /* the binding set's tail (METHODOLOGY.md sections 3-4: ties by the lower
   * scenario), and each position's mean over it (es), its loss at the k-th
   * (var) or its weighted loss at the worst (worst) */
  xm_i64 s_at = 0, n_gt = 0;
  xm_u64 kk = 0;
  (void)xm_risk_measure(L, 1, S, set->measure, set->k, set->w, set->w != NULL, &s_at, &kk, &n_gt);
  for (int64_t q = 0; q < np; q++) {
    (*out)[q].instrument = bk->inst_row[bk->pos_inst[q]];
    (*out)[q].quantity = bk->pos_qty[q];
  }
  if (set->measure != XM_MEASURE_ES) {
    double w = set->measure == XM_MEASURE_WORST && set->w ? set->w[s_at] : 1.0;
    for (int64_t q = 0; q < np; q++)
      (*out)[q].contribution = w * lp[s_at * np + q];
  } else {
    xm_i64 ties = set->k - n_gt, seen = 0;
    for (int64_t s = 0; s < S; s++) {
      xm_u64 key = xm_key(L[s]);
      if (key > kk || (key == kk && seen++ < ties))
        for (int64_t q = 0; q < np; q++)
          (*out)[q].contribution += lp[s * np + q];
    }
    for (int64_t q = 0; q < np; q++)
      (*out)[q].contribution /= (double)set->k;
  }
  *n_out = np;
done:
  if (st != XM_OK) {
    free(*out);
    *out = NULL;
  }
  free(d);
  free(ell);
  free(ex);
  free(lp);
  free(L);
  xm__plan_free(&plan);
  xm_run_result_free(&r);
  xm__wi_book_free(&b);
  return st;
}
