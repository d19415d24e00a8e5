/* xm_types: the revaluation rate of each instrument type of the type table
 * (xmargin_types.h, XM_INSTRUMENT_TYPE_MAP) against `option`, on each backend
 * (issue 13 item 7; ARCHITECTURE.md convention 9: warm up, repeat, median and
 * spread, units of work, ratios to the peer measured in the same round).
 *
 * For every type a book of N instruments of that one type is built in memory
 * as a view (no file): random strikes 0.7-1.3 of spot, expiries 0.05-2 years,
 * implied vols 0.1-0.9, calls and puts, rates 0-5%, dividend yields 0-4%,
 * held by a few accounts (one position per instrument). Non-inverse types sit
 * on U underlyings (price factors with a vol factor each) and settle in the
 * reporting currency (USD), in USD accounts; inverse types sit on BTC, settle
 * in BTC (an /fx row BTC -> the BTC price factor) and are held in
 * BTC-margined accounts; perpetuals pay a funding rate of -20%..+20%. Every
 * book has the same factors (BTC and U-1 others, a vol factor each) and the
 * same /fx row, and the same positions and quantities. One scenario file view
 * holds one ready-made set of S scenarios (uniform random shocks of every
 * factor: log price -0.25..0.25, vol -0.10..0.10; measure es); historical and
 * Monte Carlo are disabled.
 *
 * american_option runs at its own, smaller size (--american N_AM S_AM, the
 * first S_AM scenarios of the same set): at ~8 us a revaluation a core on
 * the cpu backend, and with PoCL's xm_k_revalue8 revaluing, for an American
 * row, every scenario from its group to the end of the tile (time ~ tile^2;
 * kernels/xmargin.cl, the `cls == XM_CLASS_AMERICAN` branch), N x S would
 * take minutes. Its ratio is still rate / option's rate of the same round.
 *
 * Timed: xm_run's t_evaluate (revaluation, aggregation, risk measures,
 * requirement). Rounds are interleaved: in each round every backend runs every
 * type once (the type order rotates from round to round), so a type and
 * `option` on the same backend are measured minutes, not rounds, apart; the
 * ratio to `option` is taken per round, then its median and range.
 *
 * Usage:
 *   xm_types [--device SPEC]... [--threads T] [--instruments N] [--scenarios S]
 *            [--american N_AM S_AM] [--accounts A] [--underlyings U] [--warmup W]
 *            [--repeat R] [--precision double|single] [--type NAME]... [--seed X]
 *            [--jsonl FILE]
 * Defaults: --device cpu --device opencl, N 2000, S 20000, american 16 x 256,
 * A 4, U 4, W 1, R 5, double, every type (`option` is always run: the peer). Prints a markdown
 * table and one "XMTYPES {json}" line per (backend, type); exit 1 when a run fails or two backends'
 * requirements differ by more than 1e-6 relative (double) / 1e-3 (single). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>
#include <unistd.h>

#include "xmargin.h"

/* Reads exactly n bytes; 1 on success. */
static int xt_read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return 0;
    p += k;
    n -= (size_t)k;
  }
  return 1;
}

#define XT_MAX_DEV 8
#define XT_MAX_REPEAT 100

typedef struct xt_book {
  int type;
  xm_portfolio pf;
  /* the arrays the view points at */
  int32_t *itype, *isilo, *iund, *ivf, *icall, *pacct, *pinst;
  double *strike, *expiry, *iv, *rate, *div, *mult, *fund, *pqty;
  char **iid, **icur, **acur;
} xt_book;

static uint64_t xt_rng = 0x9e3779b97f4a7c15u;
static double xt_unif(double lo, double hi) { /* splitmix64 */
  uint64_t z = (xt_rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  z ^= z >> 31;
  return lo + (hi - lo) * ((double)(z >> 11) / 9007199254740992.0);
}

static int xt_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static void xt_stats(const double *v, int n, double out[3]) {
  double s[XT_MAX_REPEAT];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, xt_cmp);
  out[0] = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  out[1] = s[0];
  out[2] = s[n - 1];
}

static char *xt_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* ---- the shared parts of every book: factors, silos, accounts, /fx ---- */
static int64_t U_;
static char **f_name;
static int32_t *f_kind;
static double *f_level;
static char *silo_name[] = {"all"};
static char **acct_id;
static int32_t *acct_cross;
static char *fx_cur[] = {"BTC"};
static int32_t fx_fac[] = {0};

static int xt_factors(int64_t U, int64_t A) {
  U_ = U;
  f_name = calloc((size_t)(2 * U), sizeof *f_name);
  f_kind = malloc((size_t)(2 * U) * sizeof *f_kind);
  f_level = malloc((size_t)(2 * U) * sizeof *f_level);
  acct_id = calloc((size_t)A, sizeof *acct_id);
  acct_cross = malloc((size_t)A * sizeof *acct_cross);
  if (!f_name || !f_kind || !f_level || !acct_id || !acct_cross)
    return 1;
  char buf[64];
  for (int64_t k = 0; k < U; k++) {
    if (k == 0)
      snprintf(buf, sizeof buf, "BTC");
    else
      snprintf(buf, sizeof buf, "U%lld", (long long)k);
    f_name[k] = xt_strdup(buf);
    snprintf(buf, sizeof buf, "%s.vol", f_name[k] ? f_name[k] : "?");
    f_name[U + k] = xt_strdup(buf);
    if (!f_name[k] || !f_name[U + k])
      return 1;
    f_kind[k] = XM_FACTOR_PRICE;
    f_kind[U + k] = XM_FACTOR_VOL;
    f_level[k] = k == 0 ? 50000.0 : xt_unif(20.0, 500.0);
    f_level[U + k] = xt_unif(0.15, 0.8);
  }
  for (int64_t a = 0; a < A; a++) {
    snprintf(buf, sizeof buf, "ACC%lld", (long long)a);
    if (!(acct_id[a] = xt_strdup(buf)))
      return 1;
    acct_cross[a] = 1;
  }
  return 0;
}

static void xt_book_free(xt_book *b) {
  for (int64_t i = 0; b->iid && i < b->pf.n_instruments; i++)
    free(b->iid[i]);
  free(b->iid), free(b->icur), free(b->acur);
  free(b->itype), free(b->isilo), free(b->iund), free(b->ivf), free(b->icall);
  free(b->pacct), free(b->pinst), free(b->strike), free(b->expiry), free(b->iv);
  free(b->rate), free(b->div), free(b->mult), free(b->fund), free(b->pqty);
  memset(b, 0, sizeof *b);
}

/* The book of N instruments of one type. The random draws are the same for
 * every type (the generator restarts from seed): only the type, and for
 * inverse types the underlying and the currencies, differ. */
static int xt_book_build(xt_book *b, int type, int64_t N, int64_t A, uint64_t seed) {
  memset(b, 0, sizeof *b);
  b->type = type;
  xt_rng = seed;
  size_t n = (size_t)N;
#define XT_ALLOC(p) ((p) = calloc(n ? n : 1, sizeof *(p)))
  if (!XT_ALLOC(b->itype) || !XT_ALLOC(b->isilo) || !XT_ALLOC(b->iund) || !XT_ALLOC(b->ivf) ||
      !XT_ALLOC(b->icall) || !XT_ALLOC(b->pacct) || !XT_ALLOC(b->pinst) || !XT_ALLOC(b->strike) ||
      !XT_ALLOC(b->expiry) || !XT_ALLOC(b->iv) || !XT_ALLOC(b->rate) || !XT_ALLOC(b->div) ||
      !XT_ALLOC(b->mult) || !XT_ALLOC(b->fund) || !XT_ALLOC(b->pqty) || !XT_ALLOC(b->iid) ||
      !XT_ALLOC(b->icur))
    return 1;
#undef XT_ALLOC
  if (!(b->acur = calloc((size_t)A, sizeof *b->acur)))
    return 1;
  int inverse = XM_TYPE_IS_INVERSE(type), option = XM_TYPE_IS_OPTION(type);
  char buf[64];
  for (int64_t i = 0; i < N; i++) {
    int64_t k = i % U_;
    int32_t u = inverse ? 0 : (int32_t)k;
    double S0 = f_level[u];
    /* every draw made for every type, so that the sequences agree */
    double kk = xt_unif(0.7, 1.3), T = xt_unif(0.05, 2.0), vol = xt_unif(0.1, 0.9);
    double r = xt_unif(0.0, 0.05), q = xt_unif(0.0, 0.04), call = xt_unif(0.0, 1.0);
    double fr = xt_unif(-0.2, 0.2), mult = xt_unif(1.0, 100.0), qty = xt_unif(1.0, 10.0);
    double side = xt_unif(0.0, 1.0);
    b->itype[i] = type;
    b->isilo[i] = 0;
    b->iund[i] = u;
    b->ivf[i] = option ? (int32_t)(U_ + u) : -1;
    b->strike[i] = option ? kk * S0 : 0.0;
    b->expiry[i] = XM_TYPE_HAS_FUNDING(type) || type == XM_SPOT ? 0.0 : T;
    b->iv[i] = option ? vol : 0.0;
    b->rate[i] = r;
    b->div[i] = XM_TYPE_HAS_CARRY(type) ? q : 0.0;
    b->icall[i] = option ? call < 0.5 : 0;
    b->mult[i] = floor(mult);
    b->fund[i] = XM_TYPE_HAS_FUNDING(type) ? fr : 0.0;
    b->icur[i] = inverse ? "BTC" : "USD";
    snprintf(buf, sizeof buf, "%s_%lld", xm_type_name(type), (long long)i);
    if (!(b->iid[i] = xt_strdup(buf)))
      return 1;
    b->pacct[i] = (int32_t)(i % A);
    b->pinst[i] = (int32_t)i;
    b->pqty[i] = (side < 0.5 ? -1.0 : 1.0) * floor(qty);
  }
  for (int64_t a = 0; a < A; a++)
    b->acur[a] = inverse ? "BTC" : "USD";
  xm_portfolio *p = &b->pf;
  p->path = NULL;
  snprintf(p->valuation_date, sizeof p->valuation_date, "2026-12-01");
  snprintf(p->currency, sizeof p->currency, "USD");
  p->n_factors = 2 * U_;
  p->factor_name = f_name;
  p->factor_kind = f_kind;
  p->factor_level = f_level;
  p->n_silos = 1;
  p->silo_name = silo_name;
  p->n_instruments = N;
  p->inst_id = b->iid;
  p->inst_type = b->itype;
  p->inst_silo = b->isilo;
  p->inst_underlying = b->iund;
  p->inst_vol_factor = b->ivf;
  p->inst_strike = b->strike;
  p->inst_expiry = b->expiry;
  p->inst_call = b->icall;
  p->inst_implied_vol = b->iv;
  p->inst_rate = b->rate;
  p->inst_dividend_yield = b->div;
  p->inst_multiplier = b->mult;
  p->inst_currency = b->icur;
  p->inst_funding_rate = b->fund;
  p->n_accounts = A;
  p->account_id = acct_id;
  p->account_cross_margin = acct_cross;
  p->account_currency = b->acur;
  p->n_fx = 1;
  p->fx_currency = fx_cur;
  p->fx_factor = fx_fac;
  p->n_positions = N;
  p->pos_account = b->pacct;
  p->pos_instrument = b->pinst;
  p->pos_quantity = b->pqty;
  return 0;
}

static void xt_usage(FILE *f) {
  fprintf(
      f, "usage: xm_types [--device SPEC]... [--threads T] [--instruments N] [--scenarios S]\n"
         "                [--american N_AM S_AM] [--accounts A] [--underlyings U] [--warmup W]\n"
         "                [--repeat R] [--precision double|single] [--type NAME]... [--seed X]\n"
         "                [--jsonl FILE]\n"
         "defaults: --device cpu --device opencl, N 2000, S 20000, american 16 x 256, A 4, U 4,\n"
         "W 1, R 5, double, every type of the type table (xmargin_types.h); option always runs.\n");
}

int main(int argc, char **argv) {
  const char *devices[XT_MAX_DEV];
  int ndev = 0, threads = 0, warmup = 1, repeat = 5, ntypes = 0;
  int64_t N = 2000, S = 20000, A = 4, U = 4, N_am = 16, S_am = 256;
  uint64_t seed = 20261201u;
  xm_precision prec = XM_DOUBLE;
  int types[XM_TYPE_COUNT];
  const char *jsonl = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      xt_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--device") && more && ndev < XT_MAX_DEV) {
      devices[ndev++] = argv[++i];
    } else if (!strcmp(a, "--threads") && more) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(a, "--instruments") && more) {
      N = atoll(argv[++i]);
    } else if (!strcmp(a, "--scenarios") && more) {
      S = atoll(argv[++i]);
    } else if (!strcmp(a, "--american") && i + 2 < argc) {
      N_am = atoll(argv[++i]);
      S_am = atoll(argv[++i]);
    } else if (!strcmp(a, "--accounts") && more) {
      A = atoll(argv[++i]);
    } else if (!strcmp(a, "--underlyings") && more) {
      U = atoll(argv[++i]);
    } else if (!strcmp(a, "--warmup") && more) {
      warmup = atoi(argv[++i]);
    } else if (!strcmp(a, "--repeat") && more) {
      repeat = atoi(argv[++i]);
    } else if (!strcmp(a, "--seed") && more) {
      seed = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(a, "--jsonl") && more) {
      jsonl = argv[++i];
    } else if (!strcmp(a, "--precision") && more) {
      const char *p = argv[++i];
      if (!strcmp(p, "double"))
        prec = XM_DOUBLE;
      else if (!strcmp(p, "single"))
        prec = XM_SINGLE;
      else {
        fprintf(stderr, "xm_types: --precision %s: double or single\n", p);
        return 2;
      }
    } else if (!strcmp(a, "--type") && more && ntypes < XM_TYPE_COUNT) {
      const char *nm = argv[++i];
      int t = 0;
      while (t < XM_TYPE_COUNT && strcmp(xm_type_name(t), nm))
        t++;
      if (t == XM_TYPE_COUNT || !XM_TYPE_IN_BOOKS(t)) {
        fprintf(stderr, "xm_types: --type %s: not a type books may hold\n", nm);
        return 2;
      }
      types[ntypes++] = t;
    } else {
      fprintf(stderr, "xm_types: bad or incomplete argument '%s'\n", a);
      xt_usage(stderr);
      return 2;
    }
  }
  if (N < 1 || S < 2 || A < 1 || U < 1 || N_am < 1 || S_am < 2 || S_am > S || warmup < 0 ||
      repeat < 1 || repeat > XT_MAX_REPEAT) {
    xt_usage(stderr);
    return 2;
  }
  if (ndev == 0) {
    devices[ndev++] = "cpu";
    devices[ndev++] = "opencl";
  }
  if (ntypes == 0)
    for (int t = 0; t < XM_TYPE_COUNT; t++)
      if (XM_TYPE_IN_BOOKS(t))
        types[ntypes++] = t;
  int iopt = -1; /* `option`, the reference; always run */
  for (int k = 0; k < ntypes; k++)
    if (types[k] == XM_OPTION)
      iopt = k;
  if (iopt < 0) {
    if (ntypes == XM_TYPE_COUNT) {
      fprintf(stderr, "xm_types: too many --type\n");
      return 2;
    }
    types[ntypes] = types[0];
    types[0] = XM_OPTION;
    iopt = 0;
    ntypes++;
  }
  FILE *jf = NULL;
  if (jsonl && !(jf = fopen(jsonl, "a"))) {
    fprintf(stderr, "xm_types: cannot open %s: %s\n", jsonl, strerror(errno));
    return 1;
  }

  /* ---- inputs ---- */
  xt_rng = seed ^ 0x5bd1e995u;
  if (xt_factors(U, A)) {
    fprintf(stderr, "xm_types: out of memory\n");
    return 1;
  }
  xt_book books[XM_TYPE_COUNT];
  memset(books, 0, sizeof books);
  int failures = 0;
  for (int k = 0; k < ntypes; k++) {
    if (xt_book_build(&books[k], types[k], types[k] == XM_AMERICAN_OPTION ? N_am : N, A, seed)) {
      fprintf(stderr, "xm_types: out of memory\n");
      return 1;
    }
    xm_diag d = {0};
    xm_status st = xm_portfolio_validate(&books[k].pf, &d);
    if (st != XM_OK) {
      xm_diag_print(&d, stderr);
      fprintf(stderr, "xm_types: the %s book is not valid: %s\n", xm_type_name(types[k]),
              xm_strerror(st));
      return 1;
    }
    xm_diag_free(&d);
  }
  int64_t F = 2 * U;
  double *shock = malloc((size_t)(S * F) * sizeof *shock);
  char **label = calloc((size_t)S, sizeof *label);
  char *labbuf = malloc((size_t)S * 24);
  if (!shock || !label || !labbuf) {
    fprintf(stderr, "xm_types: out of memory\n");
    return 1;
  }
  xt_rng = seed ^ 0xa0761d6478bd642fu;
  for (int64_t s = 0; s < S; s++) {
    for (int64_t f = 0; f < F; f++)
      shock[s * F + f] = f < U ? xt_unif(-0.25, 0.25) : xt_unif(-0.10, 0.10);
    snprintf(labbuf + 24 * s, 24, "s%lld", (long long)s);
    label[s] = labbuf + 24 * s;
  }
  xm_scenario_set set = {"grid", S, F, f_name, shock, label, NULL, XM_MEASURE_ES, NAN};
  xm_scenario_file sf = {.n_sets = 1, .sets = &set};
  /* the American book's: the first S_am scenarios of the same set */
  xm_scenario_set set_am = set;
  set_am.n_scenarios = S_am;
  xm_scenario_file sf_am = {.n_sets = 1, .sets = &set_am};
  {
    xm_diag d = {0};
    xm_status st = xm_scenarios_validate(&sf, &d);
    if (st != XM_OK) {
      xm_diag_print(&d, stderr);
      fprintf(stderr, "xm_types: the scenario view is not valid: %s\n", xm_strerror(st));
      return 1;
    }
    xm_diag_free(&d);
  }
  xm_config cfg;
  xm_config_default(&cfg);
  cfg.historical.enabled = 0;
  cfg.montecarlo.enabled = 0;
  cfg.precision = prec;

  /* ---- one process per (round, backend) ----
   * Each (round, backend) is a child process: it opens the context (kernel
   * build out of the timing), warms it with an untimed short run of the
   * option book, runs every type once, sends the times and requirements
   * through a pipe and exits. So no backend runs beside another's idle
   * threads (OpenMP, OpenBLAS, PoCL), and every round starts from the same
   * state. The parent never opens a context (no OpenMP,
   * OpenBLAS or PoCL threads before a fork). */
  xm_scenario_set set_w = set;
  set_w.n_scenarios = S < 256 ? S : 256;
  xm_scenario_file sf_w = {.n_sets = 1, .sets = &set_w};
  int nctx = ndev;
  char spec[XT_MAX_DEV][32], name[XT_MAX_DEV][160];
  int nthr[XT_MAX_DEV];
  int R = repeat, rounds = warmup + repeat;
  double *tev = calloc((size_t)(nctx * ntypes * R), sizeof *tev);
  double *req0 = calloc((size_t)(ntypes * A), sizeof *req0); /* the first backend's */
  double *maxrel = calloc((size_t)(nctx * ntypes), sizeof *maxrel);
  double *lossmag = calloc((size_t)ntypes, sizeof *lossmag);
  double *msg = malloc((size_t)(ntypes * (2 + A)) * sizeof *msg); /* a child's report */
  if (!tev || !req0 || !maxrel || !lossmag || !msg)
    return 1;
#define TEV(d, k, r) tev[((size_t)(d)*ntypes + (k)) * R + (r)]
  double tall = xm_now();
  fflush(stdout);
  fflush(stderr);
  for (int rd = 0; rd < rounds; rd++) {
    for (int d = 0; d < nctx; d++) {
      int fd[2];
      if (pipe(fd) != 0) {
        fprintf(stderr, "xm_types: pipe: %s\n", strerror(errno));
        return 1;
      }
      pid_t pid = fork();
      if (pid < 0) {
        fprintf(stderr, "xm_types: fork: %s\n", strerror(errno));
        return 1;
      }
      if (pid == 0) { /* the child: one round on one backend */
        close(fd[0]);
        xm_options opt;
        xm_options_default(&opt);
        opt.device = devices[d];
        opt.threads = threads;
        xm_ctx *c = NULL;
        double tc = xm_now();
        xm_status st = xm_ctx_create(&c, &opt);
        tc = xm_now() - tc;
        xm_run_result res;
        xm_run_opts eo = {0, 0, NULL, NULL, 0, 0, 0, 0, NULL};
        if (st == XM_OK && (st = xm_run(c, &books[iopt].pf, &sf_w, &cfg, &eo, &res)) == XM_OK)
          xm_run_result_free(&res);
        if (st != XM_OK) {
          fprintf(stderr, "xm_types: %s: %s: %s\n", devices[d], xm_strerror(st),
                  xm_ctx_last_error(c));
          _exit(1);
        }
        const xm_device_info *dv = xm_ctx_device(c);
        if (dv->backend == XM_BACKEND_CPU && threads > 0)
          omp_set_num_threads(threads); /* as xm_bench: the engine does not apply opt.threads */
        char sp[32], nm[160];
        int nt =
            dv->backend == XM_BACKEND_CPU ? (threads > 0 ? threads : omp_get_max_threads()) : 0;
        snprintf(sp, sizeof sp, "%s", dv->spec);
        if (dv->backend == XM_BACKEND_CPU)
          snprintf(nm, sizeof nm, "cpu (%d thr)", nt);
        else
          snprintf(nm, sizeof nm, "%s %.60s", dv->spec, dv->platform);
        if (rd == 0)
          fprintf(stderr, "xm_types: %s: %s [%s]; context %.3f s\n", dv->spec, dv->name,
                  dv->platform, tc);
        for (int j = 0; j < ntypes; j++) {
          int k = (j + rd) % ntypes; /* rotate the order */
          st = xm_run(c, &books[k].pf, types[k] == XM_AMERICAN_OPTION ? &sf_am : &sf, &cfg, &eo,
                      &res);
          if (st != XM_OK) {
            fprintf(stderr, "xm_types: %s on %s: %s: %s\n", xm_type_name(types[k]), sp,
                    xm_strerror(st), xm_ctx_last_error(c));
            _exit(1);
          }
          msg[k * (2 + A)] = res.t_evaluate;
          msg[k * (2 + A) + 1] = res.t_prepare;
          for (int64_t a2 = 0; a2 < A; a2++)
            msg[k * (2 + A) + 2 + a2] = res.requirement[a2];
          fprintf(stderr, "xm_types: round %d%s %s %-17s evaluate %.4f s (prepare %.4f)\n", rd + 1,
                  rd < warmup ? " (warm-up)" : "", sp, xm_type_name(types[k]), res.t_evaluate,
                  res.t_prepare);
          xm_run_result_free(&res);
        }
        xm_ctx_destroy(c);
        size_t want = (size_t)(ntypes * (2 + A)) * sizeof *msg;
        int ok = write(fd[1], sp, sizeof sp) == (ssize_t)sizeof sp &&
                 write(fd[1], nm, sizeof nm) == (ssize_t)sizeof nm &&
                 write(fd[1], &nt, sizeof nt) == (ssize_t)sizeof nt &&
                 write(fd[1], msg, want) == (ssize_t)want;
        _exit(ok ? 0 : 1);
      }
      close(fd[1]);
      size_t want = (size_t)(ntypes * (2 + A)) * sizeof *msg;
      int ok = xt_read_all(fd[0], spec[d], sizeof spec[d]) &&
               xt_read_all(fd[0], name[d], sizeof name[d]) &&
               xt_read_all(fd[0], &nthr[d], sizeof nthr[d]) && xt_read_all(fd[0], msg, want);
      close(fd[0]);
      int wst = 0;
      waitpid(pid, &wst, 0);
      if (!ok || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        fprintf(stderr, "xm_types: round %d on %s failed\n", rd + 1, devices[d]);
        return 1;
      }
      for (int k = 0; k < ntypes; k++) {
        const double *m = msg + k * (2 + A);
        if (rd >= warmup)
          TEV(d, k, rd - warmup) = m[0];
        if (rd == 0) { /* the cross-check: every backend against the first */
          double mr = 0.0, mag = 0.0;
          for (int64_t a2 = 0; a2 < A; a2++) {
            double v = m[2 + a2];
            mag = fabs(v) > mag ? fabs(v) : mag;
            if (d == 0)
              req0[k * A + a2] = v;
            double den = fabs(req0[k * A + a2]) > 1e-300 ? fabs(req0[k * A + a2]) : 1e-300;
            double rel = fabs(v - req0[k * A + a2]) / den;
            if (!(rel <= mr))
              mr = rel;
            if (!isfinite(v))
              mr = NAN;
          }
          maxrel[d * ntypes + k] = mr;
          if (d == 0)
            lossmag[k] = mag;
        }
      }
    }
  }
  tall = xm_now() - tall;

  /* ---- report ---- */
  double rv[XM_TYPE_COUNT]; /* revaluations of each type's run */
  for (int k = 0; k < ntypes; k++)
    rv[k] = types[k] == XM_AMERICAN_OPTION ? (double)N_am * (double)S_am : (double)N * (double)S;
  printf("| type | loss family | backend | instruments × scenarios | evaluate s median (min–max) | "
         "Mreval/s | "
         "rate vs option, same round: median (min–max) | time / option's | "
         "max rel. diff of requirements vs %s |\n",
         spec[0]);
  printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  const char *fam[] = {"linear", "black", "american"};
  for (int d = 0; d < nctx; d++) {
    for (int k = 0; k < ntypes; k++) {
      double v[XT_MAX_REPEAT], ev[3], ra[3];
      for (int r = 0; r < R; r++)
        v[r] = TEV(d, k, r);
      xt_stats(v, R, ev);
      for (int r = 0; r < R; r++)
        v[r] = (rv[k] / TEV(d, k, r)) / (rv[iopt] / TEV(d, iopt, r)); /* rates, same round */
      xt_stats(v, R, ra);
      double mr = maxrel[d * ntypes + k];
      double tol = prec == XM_DOUBLE ? 1e-6 : 1e-3;
      int bad = !(mr <= tol);
      failures += bad;
      long long nk = types[k] == XM_AMERICAN_OPTION ? (long long)N_am : (long long)N;
      long long sk = types[k] == XM_AMERICAN_OPTION ? (long long)S_am : (long long)S;
      printf("| %s | %s | %s | %lld × %lld | %.4f (%.4f–%.4f) | %.3g | %.3g (%.3g–%.3g) | %.3g× | "
             "%.2g%s |\n",
             xm_type_name(types[k]), fam[XM_TYPE_LOSS(types[k])], name[d], nk, sk, ev[0], ev[1],
             ev[2], rv[k] / ev[0] / 1e6, ra[0], ra[1], ra[2], 1.0 / ra[0], mr, bad ? " FAIL" : "");
      FILE *outs[2] = {stdout, jf};
      for (int o = 0; o < 2; o++) {
        FILE *f = outs[o];
        if (!f)
          continue;
        fprintf(f, "%s{\"tool\":\"xm_types\",\"backend\":", f == stdout ? "XMTYPES " : "");
        xm_json_string(f, spec[d]);
        fprintf(f, ",\"type\":");
        xm_json_string(f, xm_type_name(types[k]));
        fprintf(f,
                ",\"precision\":\"%s\",\"threads\":%d,\"instruments\":%lld,\"scenarios\":%lld,"
                "\"accounts\":%lld,\"underlyings\":%lld,\"revaluations\":%.0f,\"warmup\":%d,"
                "\"repeat\":%d,\"evaluate_s\":[%.6f,%.6f,%.6f],\"reval_per_s\":%.6g,"
                "\"rate_vs_option\":[%.4f,%.4f,%.4f],\"max_rel_diff_vs_first\":%.3g,"
                "\"evaluate_s_all\":[",
                prec == XM_DOUBLE ? "double" : "single", nthr[d], nk, sk, (long long)A,
                (long long)U, rv[k], warmup, R, ev[0], ev[1], ev[2], rv[k] / ev[0], ra[0], ra[1],
                ra[2], mr);
        for (int r = 0; r < R; r++)
          fprintf(f, "%s%.6f", r ? "," : "", TEV(d, k, r));
        fprintf(f, "]}\n");
        fflush(f);
      }
    }
  }
  fprintf(stderr, "xm_types: %d rounds x %d backends x %d types in %.1f s\n", rounds, nctx, ntypes,
          tall);
  for (int k = 0; k < ntypes; k++)
    fprintf(stderr, "xm_types: %s: largest requirement %.6g (%s accounts)\n",
            xm_type_name(types[k]), lossmag[k], XM_TYPE_IS_INVERSE(types[k]) ? "BTC" : "USD");
  for (int k = 0; k < ntypes; k++)
    xt_book_free(&books[k]);
  free(tev), free(req0), free(maxrel), free(lossmag), free(msg);
  free(shock), free(label), free(labbuf);
  for (int64_t f = 0; f < 2 * U; f++)
    free(f_name[f]);
  for (int64_t a = 0; a < A; a++)
    free(acct_id[a]);
  free(f_name), free(f_kind), free(f_level), free(acct_id), free(acct_cross);
  if (jf)
    fclose(jf);
  return failures ? 1 : 0;
#undef TEV
}
