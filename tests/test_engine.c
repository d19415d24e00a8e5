/* The engine's modules (host/xm_engine.h) alone and together, on a book and a
 * scenario file built in memory as views (no HDF5 file):
 *   the plan (host/plan.c): blocks and tiles within the memory budget, the
 *     block arrays (positions merged, instruments linear first);
 *   the loop (host/engine.c): a mock backend, the cpu backend's table with
 *     every step recorded, checks the exact loop nest, that every buffer is
 *     released and that no step writes a view;
 *   the combination: a tight budget gives the same bits as no budget, and the
 *     results match a float64 reference written here from METHODOLOGY.md
 *     sections 2-4;
 *   faults: a step that fails is reported and leaks nothing (run under ASan);
 *   the stressed period and the backtest (host/backtest.c): each day a run on
 *     the truncated history, the realised move, a tight budget. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "xm_engine.h"
#include "xm_internal.h"
#include "xm_reduce.h"

/* ---- the book: 6 factors (SILVER held by nobody), 3 silos, 7 instruments,
 * 7 accounts, 3 of them options. The cpu backend prices every (scenario,
 * row) in a lane of the same vector code whatever the plan, so
 * tight_equals_unlimited may ask for the same bits (docs/engine.md 4). */
// clang-format off
static char *factor_name[] = {"EQ", "EQ.vol", "OIL", "OIL.vol", "GOLD", "SILVER"};
static int32_t factor_kind[] = {XM_FACTOR_PRICE, XM_FACTOR_VOL, XM_FACTOR_PRICE, XM_FACTOR_VOL,
                                XM_FACTOR_PRICE, XM_FACTOR_PRICE};
static double factor_level[] = {100.0, 0.2, 80.0, 0.35, 1900.0, 24.0};
static char *silo_name[] = {"equity", "energy", "metals"};
enum { EQC, EQS, CLF, CLP, GCF, SIS, EQP, N_INST };
static char *inst_id[] = {"EQ_C100", "EQ_SPOT", "CL_FUT", "CL_P75", "GC_FUT", "SI_SPOT", "EQ_P70"};
static int32_t inst_type[] = {XM_OPTION, XM_SPOT, XM_FUTURE, XM_FUTURE_OPTION, XM_FUTURE, XM_SPOT,
                              XM_OPTION};
/*                              EQ_C100 EQ_SPOT CL_FUT  CL_P75  GC_FUT  SI_SPOT EQ_P70 */
static int32_t inst_silo[] = {  0,      0,      1,      1,      2,      2,      0};
static int32_t inst_und[] = {   0,      0,      2,      2,      4,      5,      0};
static int32_t inst_vf[] = {    1,      -1,     -1,     3,      -1,     -1,     1};
static double inst_strike[] = { 100,    0,      0,      75,     0,      0,      70};
static double inst_expiry[] = { 0.5,    0,      0.75,   0.25,   0.5,    0,      0.25};
static int32_t inst_call[] = {  1,      0,      0,      0,      0,      0,      0};
static double inst_iv[] = {     0.25,   0,      0,      0.35,   0,      0,      0.3};
static double inst_rate[] = {   0.03,   0,      0,      0.04,   0,      0,      0.03};
static double inst_div[] = {    0.01,   0,      0,      0.02,   0,      0,      0.01}; /* CL_P75's unused */
static double inst_mult[] = {   100,    1,      1000,   1000,   100,    5000,   100};
enum { N_ACCT = 7, N_POS = 20, NOTELIG = 2, MINACCT = 4, ONESILO = 5, EMPTY = 6 };
static char *account_id[] = {"A-MIX", "B-HEDGE", "C-NOTELIG", "D-OPT", "E-MIN", "F-ONESILO",
                             "G-EMPTY"};
static int32_t account_cross[] = {1, 1, 0, 1, 1, 1, 1};
/* (account, instrument, quantity), accounts interleaved; (A-MIX, EQ_SPOT),
 * (C-NOTELIG, CL_FUT) and (F-ONESILO, GC_FUT) twice */
static const struct { int32_t acct, inst; double qty; } POS[N_POS] = {
    {0, EQS, 200}, {1, CLF, -4}, {0, EQC, -3},  {2, EQS, 500}, {3, EQC, 10},
    {0, CLF, 2},   {4, EQP, 2},  {1, CLP, 6},   {0, GCF, -5},  {2, CLF, -3},
    {5, GCF, -10}, {0, EQS, 100}, {3, EQP, -4}, {2, GCF, 2},   {1, GCF, 3},
    {3, CLP, -2},  {2, CLF, -1}, {5, GCF, 4},   {2, EQP, 1},   {4, EQS, 1}};
static int32_t pos_acct[N_POS], pos_inst[N_POS]; /* the book's columns, from POS */
static double pos_qty[N_POS];
static xm_portfolio book = {.currency = "USD", .n_factors = 6, .factor_name = factor_name,
    .factor_kind = factor_kind, .factor_level = factor_level, .n_silos = 3, .silo_name = silo_name,
    .n_instruments = N_INST, .inst_id = inst_id, .inst_type = inst_type, .inst_silo = inst_silo,
    .inst_underlying = inst_und, .inst_vol_factor = inst_vf, .inst_strike = inst_strike,
    .inst_expiry = inst_expiry, .inst_call = inst_call, .inst_implied_vol = inst_iv,
    .inst_rate = inst_rate, .inst_dividend_yield = inst_div, .inst_multiplier = inst_mult,
    .n_accounts = N_ACCT, .account_id = account_id, .account_cross_margin = account_cross,
    .n_positions = N_POS, .pos_account = pos_acct, .pos_instrument = pos_inst,
    .pos_quantity = pos_qty};
// clang-format on

/* ---- the scenarios: a_stress (worst, weighted; does not move OIL.vol, moves
 * COPPER, which the book lacks), b_grid (es, 6,000 scenarios), a history ---- */
enum { S_A = 6, S_B = 6000, F_B = 6, T_H = 80, F_H = 6 };
static char *a_factor[] = {"OIL", "EQ", "GOLD", "EQ.vol", "COPPER"};
static double a_shock[S_A * 5] = {-0.20, -0.15, 0.05,  0.10,  0.3,  /* crash */
                                  0.15,  0.10,  -0.04, -0.05, 0.0,  /* rally */
                                  0.25,  -0.03, 0.0,   0.0,   0.0,  /* oil spike */
                                  0.0,   0.0,   -0.08, 0.0,   0.0,  /* gold drop */
                                  0.0,   0.0,   0.0,   0.15,  0.0,  /* vol up */
                                  0.0,   0.0,   0.0,   0.0,   0.0}; /* flat: time decay only */
static char *a_label[] = {"crash", "rally", "oil_spike", "gold_drop", "vol_up", "flat"};
static double a_weight[] = {1.0, 1.0, 0.8, 1.0, 0.5, 1.0};
static char *b_factor[] = {"EQ", "EQ.vol", "OIL", "OIL.vol", "GOLD", "SILVER"};
static double b_shock[S_B * F_B], h_return[T_H * F_H];
static char b_lab[S_B][8], h_day[T_H][11], *b_label[S_B], *h_date[T_H];
static xm_scenario_set sets2[2];
static xm_scenario_file scen;

static uint64_t lcg = 12345u;
static double unif(double half) { /* uniform in [-half, half), a fixed sequence */
  lcg = lcg * 6364136223846793005u + 1442695040888963407u;
  return half * ((double)(lcg >> 11) / 4503599627370496.0 - 1.0);
}

/* FNV-1a of n bytes, chained. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211u;
  return h;
}

/* Every array the caller lends the library through book and scen. */
static uint64_t inputs_sum(void) {
  uint64_t h = 14695981039346656037u;
#define H(arr) h = fnv(h, arr, sizeof arr)
  H(factor_level), H(inst_strike), H(inst_expiry), H(inst_iv), H(inst_rate), H(inst_div);
  H(inst_mult), H(inst_type), H(inst_und), H(inst_vf), H(inst_silo), H(account_cross);
  H(pos_acct), H(pos_inst), H(pos_qty), H(a_shock), H(a_weight), H(b_shock), H(h_return), H(b_lab);
#undef H
  return h;
}

/* Contexts on the cpu backend, 2 threads (the plan depends on the count):
 * no memory limit, a middle one (several blocks, shocks resident) and a tight
 * one (300 KB, raised to the planner's 1 MiB floor: shocks made per tile).
 * Their plans hold a group's rows of L at once (tuning.chunk = -1); the
 * streamed plan of the default has tests of its own (streamed_*). */
static xm_ctx *ctx_free, *ctx_mid, *ctx_tight;
static xm_config cfg_full, cfg_ready;
#define MID_LIMIT (1536u << 10)
#define TIGHT_LIMIT (300u << 10)

static xm_ctx *make_ctx_on(const char *device, uint64_t limit, long chunk, int vec8) {
  xm_options o;
  xm_options_default(&o);
  o.device = device;
  o.threads = 2;
  o.mem_limit = limit;
  o.tuning.chunk = chunk;
  o.tuning.vec8 = vec8;
  xm_ctx *c = NULL;
  xm_status st = xm_ctx_create(&c, &o);
  if (st != XM_OK)
    fprintf(stderr, "xm_ctx_create: %s\n", xm_ctx_last_error(c));
  if (st != XM_OK)
    xm_ctx_destroy(c);
  return st == XM_OK ? c : NULL;
}
static xm_ctx *make_ctx(uint64_t limit) { return make_ctx_on("cpu", limit, -1, -1); }

static int setup(void **state) {
  (void)state;
  for (int q = 0; q < N_POS; q++)
    pos_acct[q] = POS[q].acct, pos_inst[q] = POS[q].inst, pos_qty[q] = POS[q].qty;
  for (int64_t i = 0; i < S_B * F_B; i++)
    b_shock[i] = unif(i % F_B == 1 || i % F_B == 3 ? 0.06 : 0.08);
  for (int64_t s = 0; s < S_B; s++)
    snprintf(b_lab[s], sizeof b_lab[s], "g%lld", (long long)s), b_label[s] = b_lab[s];
  for (int64_t i = 0; i < T_H * F_H; i++)
    h_return[i] = unif(0.02);
  for (int t = 0; t < T_H; t++)
    snprintf(h_day[t], sizeof h_day[t], "2024-%02d-%02d", 1 + t / 28, 1 + t % 28),
        h_date[t] = h_day[t];
  sets2[0] = (xm_scenario_set){"a_stress",       S_A, 5, a_factor, a_shock, a_label, a_weight,
                               XM_MEASURE_WORST, NAN};
  sets2[1] =
      (xm_scenario_set){"b_grid", S_B, F_B, b_factor, b_shock, b_label, NULL, XM_MEASURE_ES, NAN};
  scen = (xm_scenario_file){NULL, T_H, F_H, factor_name, h_date, h_return, 2, sets2};
  xm_config_default(&cfg_full); /* historical, montecarlo, montecarlo_stressed, a_stress, b_grid */
  cfg_full.montecarlo.scenarios = 400;
  cfg_full.montecarlo.correlation_stress = 0.3;
  cfg_ready = cfg_full; /* a_stress, b_grid */
  cfg_ready.historical.enabled = 0;
  cfg_ready.montecarlo.enabled = 0;
  ctx_free = make_ctx(0);
  ctx_mid = make_ctx(MID_LIMIT);
  ctx_tight = make_ctx(TIGHT_LIMIT);
  return ctx_free && ctx_mid && ctx_tight ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  xm_ctx_destroy(ctx_free);
  xm_ctx_destroy(ctx_mid);
  xm_ctx_destroy(ctx_tight);
  return 0;
}

/* The sets and the plan of cfg on ctx, as xm_run makes them. */
static void plan_of(xm_ctx *ctx, const xm_scenario_file *sf, const xm_config *cfg, xm__sets *sets,
                    xm__plan *plan) {
  char notes[1024] = "";
  assert_int_equal(xm__sets_build(ctx, &book, sf, cfg, NULL, 0, sets, notes, sizeof notes), XM_OK);
  xm_status st = xm__plan_build(ctx, &book, sets, 0, plan);
  if (st != XM_OK)
    print_message("plan: %s\n", xm_ctx_last_error(ctx));
  assert_int_equal(st, XM_OK);
}

/* ---- the plan ---------------------------------------------------------- */

/* The block arrays against the book: accounts 0..A in order, each in one
 * block; per account one entry per instrument held with the summed quantity
 * (repeated pairs merged), sorted by silo; a block's instruments exactly
 * those its accounts hold, linear ones first, with the book's terms. Fails on
 * a lost or doubled account, an unmerged pair, a missing or extra
 * instrument, an option before a linear one, a wrong strike or factor column. */
/* Row j of a block is a padding copy (XM__ROW_ALIGN): the previous row again,
 * every column, in the same class. Padding comes only at the end of a class,
 * whose rows then number a multiple of XM__ROW_ALIGN (checked here too). */
static int is_copy(const xm__block *bk, int64_t j) {
  int64_t n = bk->n_inst;
  for (int c = 0; c < XM_CLASS_COUNT; c++)
    assert_true((bk->cls[c + 1] - bk->cls[c]) % XM__ROW_ALIGN == 0);
  if (j == 0 || bk->inst_row[j] != bk->inst_row[j - 1])
    return 0;
  for (int c = 0; c < XM_NI; c++)
    if (bk->insti[c * n + j] != bk->insti[c * n + j - 1])
      return 0;
  for (int c = 0; c < XM_ND; c++)
    if (memcmp(&bk->instd[c * n + j], &bk->instd[c * n + j - 1], sizeof(double)) != 0)
      return 0;
  return 1;
}

/* The rows of a block that are not padding copies. */
static int64_t real_rows(const xm__block *bk) {
  int64_t m = 0;
  for (int64_t j = 0; j < bk->n_inst; j++)
    m += !is_copy(bk, j);
  return m;
}

static void check_blocks(const xm__plan *p, const xm__sets *sets) {
  int64_t next = 0;
  for (int64_t b = 0; b < p->n_blocks; b++) {
    const xm__block *bk = &p->blocks[b];
    int64_t n = bk->n_inst;
    assert_int_equal(bk->a0, next);
    assert_true(bk->na >= 1 && bk->na <= p->max_na && n <= p->max_inst);
    next += bk->na;
    int held[N_INST] = {0};
    for (int64_t la = 0; la < bk->na; la++) {
      int64_t a = bk->a0 + la;
      double want[N_INST] = {0};
      int has[N_INST] = {0};
      for (int q = 0; q < N_POS; q++)
        if (pos_acct[q] == a)
          want[pos_inst[q]] += pos_qty[q], has[pos_inst[q]] = held[pos_inst[q]] = 1;
      int count = 0;
      for (int i = 0; i < N_INST; i++)
        count += has[i];
      assert_int_equal(bk->pos_start[la + 1] - bk->pos_start[la], count);
      assert_int_equal(bk->cross[la], account_cross[a]);
      for (int q = bk->pos_start[la]; q < bk->pos_start[la + 1]; q++) {
        int32_t row = bk->inst_row[bk->pos_inst[q]];
        assert_true(has[row]); /* once each: cleared below */
        has[row] = 0;
        assert_true(bk->pos_qty[q] == want[row]);
        assert_int_equal(bk->pos_silo[q], inst_silo[row]);
        if (q > bk->pos_start[la])
          assert_true(bk->pos_silo[q - 1] <= bk->pos_silo[q]);
      }
    }
    int count = 0;
    for (int i = 0; i < N_INST; i++)
      count += held[i];
    assert_int_equal(real_rows(bk), count);
    for (int64_t j = 0; j < n; j++) {
      int32_t row = bk->inst_row[j];
      if (is_copy(bk, j)) { /* after its class's last row, and no position reads it */
        assert_true(j + 1 == bk->cls[bk->insti[XM_II_CLASS * n + j] + 1] || is_copy(bk, j + 1));
        for (int q = 0; q < bk->pos_start[bk->na]; q++)
          assert_true(bk->pos_inst[q] != j);
        continue;
      }
      assert_true(held[row]);
      held[row] = 0;
      int opt = XM_TYPE_IS_OPTION(bk->insti[XM_II_TYPE * n + j]);
      int cls = bk->insti[XM_II_CLASS * n + j];
      assert_true(j >= bk->cls[cls] && j < bk->cls[cls + 1]);
      assert_int_equal(cls, XM_CLASS_OF(inst_type[row], 0)); /* no logvol factor here */
      assert_int_equal(bk->insti[XM_II_TYPE * n + j], inst_type[row]);
      assert_int_equal(bk->insti[XM_II_UND * n + j], sets->fcol[inst_und[row]]);
      assert_int_equal(bk->insti[XM_II_VOL * n + j], opt ? sets->fcol[inst_vf[row]] : -1);
      assert_true(bk->instd[XM_ID_K * n + j] == inst_strike[row]);
      assert_true(bk->instd[XM_ID_MULT * n + j] == inst_mult[row]);
      assert_true(bk->instd[XM_ID_S0 * n + j] == factor_level[inst_und[row]]);
    }
  }
  assert_int_equal(next, N_ACCT);
}

/* Tight budget: several blocks, tiles shorter than the largest set, shocks
 * made per tile, and the plan within its budget (fails if the planner
 * ignores mem_limit or counts past it). */
static void plan_tight(void **state) {
  (void)state;
  xm__sets sets;
  xm__plan p;
  plan_of(ctx_tight, &scen, &cfg_full, &sets, &p);
  print_message("tight: %lld blocks, tile %lld of %lld, resident %d, %llu of %llu bytes\n",
                (long long)p.n_blocks, (long long)p.tile, (long long)p.max_S, p.resident,
                (unsigned long long)p.planned, (unsigned long long)p.budget);
  assert_int_equal(sets.F, 5); /* SILVER is held by nobody */
  assert_int_equal(sets.fcol[5], -1);
  assert_true(p.n_blocks > 1);
  assert_true(p.tile >= 1 && p.tile < p.max_S);
  assert_int_equal(p.max_S, S_B);
  assert_int_equal(p.resident, 0);
  assert_true(p.planned <= p.budget);
  assert_true(p.budget <= (uint64_t)1 << 20); /* 300 KB, raised to the 1 MiB floor only */
  check_blocks(&p, &sets);
  xm__plan_free(&p);
  xm__sets_free(&sets);
}

/* No limit: one block of every account, shocks resident, one tile a set
 * (fails if the planner splits or streams a run that fits). */
static void plan_unlimited(void **state) {
  (void)state;
  xm__sets sets;
  xm__plan p;
  plan_of(ctx_free, &scen, &cfg_full, &sets, &p);
  assert_int_equal(p.n_blocks, 1);
  assert_int_equal(p.max_na, N_ACCT);
  assert_int_equal(p.resident, 1);
  assert_int_equal(p.tile, p.max_S);
  assert_true(p.planned <= p.budget);
  check_blocks(&p, &sets);
  xm__plan_free(&p);
  xm__sets_free(&sets);
}

/* A set too large for the tight budget (its reduction scratch alone): the
 * plan and xm_run refuse it with XM_ERESOURCE and say what to raise (fails
 * if the planner returns a plan that cannot fit, or no message). */
static void plan_impossible(void **state) {
  (void)state;
  enum { S_H = 40000 }; /* one account's L alone: 40,000 x 4 doubles, 1.28 MB */
  double *zero = calloc(S_H, sizeof *zero);
  char **lab = malloc(S_H * sizeof *lab);
  assert_non_null(zero);
  assert_non_null(lab);
  for (int s = 0; s < S_H; s++)
    lab[s] = "z";
  xm_scenario_set big = {"huge", S_H, 1, factor_name, zero, lab, NULL, XM_MEASURE_WORST, NAN};
  xm_scenario_file sf = {NULL, 0, 0, NULL, NULL, NULL, 1, &big};
  xm__sets sets;
  xm__plan p;
  char notes[1024] = "";
  assert_int_equal(
      xm__sets_build(ctx_tight, &book, &sf, &cfg_ready, NULL, 0, &sets, notes, sizeof notes),
      XM_OK);
  assert_int_equal(xm__plan_build(ctx_tight, &book, &sets, 0, &p), XM_ERESOURCE);
  assert_non_null(strstr(xm_ctx_last_error(ctx_tight), "mem-limit"));
  xm__plan_free(&p);
  xm__sets_free(&sets);
  xm_run_result r;
  assert_int_equal(xm_run(ctx_tight, &book, &sf, &cfg_ready, NULL, &r), XM_ERESOURCE);
  assert_non_null(strstr(xm_ctx_last_error(ctx_tight), "mem-limit"));
  xm_run_result_free(&r);
  assert_int_equal(xm_run(ctx_free, &book, &sf, &cfg_ready, NULL, &r), XM_OK); /* fits there */
  xm_run_result_free(&r);
  free(lab);
  free(zero);
}

/* ---- the mock backend: the cpu backend's steps, recorded ----------------- */

// clang-format off
enum { OP_BEGIN, OP_END, OP_ALLOC, OP_VIEW, OP_RELEASE, OP_UPLOAD, OP_DOWNLOAD, OP_MC, OP_EXP,
       OP_TODAY, OP_REVALUE, OP_AGGREGATE, OP_REDUCE, OP_LIQUIDITY, OP_COMBINE, OP_TAIL,
       OP_TAIL_REDUCE };
static const char *const op_name[] = {"begin", "end", "alloc", "view", "release", "upload",
                                      "download", "mc", "exp_shocks", "today", "revalue",
                                      "aggregate", "reduce", "liquidity", "combine", "tail",
                                      "tail_reduce"};
// clang-format on
typedef struct ev {
  int op;
  int64_t a, b, c;     /* the step's numbers (see the wrappers) */
  int set;             /* expected list only: the set a shock step or revalue belongs to */
  const void *m1, *m2; /* recorded only: the buffers it used */
} ev;
enum { MAX_EV = 8192, MAX_LIVE = 128 };
static xm__backend mock;
typedef struct live_buf {
  xm__mem m;
  size_t bytes;
  const void *view; /* the host array of a view */
  uint64_t sum;     /* its checksum when made */
} live_buf;
static struct {
  ev ev[MAX_EV];
  int n, begins, ends, bad;
  char why[256];
  live_buf live[MAX_LIVE];
  int nlive, allocs, releases;
  size_t bytes, peak;          /* of live allocations (views are the host's memory) */
  int fail_op, fail_at, calls; /* fault: call fail_at (1-based) of fail_op fails */
} mk;

static void mk_bad(const char *what, const char *op) {
  if (!mk.bad++)
    snprintf(mk.why, sizeof mk.why, "%s: %s", op, what);
}
static ev *rec(int op, int64_t a, int64_t b, int64_t c, const void *m1, const void *m2) {
  static ev spill;
  if (mk.n == MAX_EV) {
    mk_bad("trace full", op_name[op]);
    return &spill;
  }
  mk.ev[mk.n] = (ev){op, a, b, c, -1, m1, m2};
  return &mk.ev[mk.n++];
}
static int find(xm__mem m) {
  for (int i = 0; i < mk.nlive; i++)
    if (mk.live[i].m == m)
      return i;
  return -1;
}
/* A buffer a step reads (write: writes) must be live (and not a view). */
static void uses(xm__mem m, int write, int op) {
  int i = find(m);
  if (i < 0)
    mk_bad("a buffer not allocated or already released", op_name[op]);
  else if (write && mk.live[i].view)
    mk_bad("writes a view", op_name[op]);
}
static int inject(int op) { return mk.fail_op == op && ++mk.calls == mk.fail_at; }
static xm_status injected(xm_ctx *ctx, int op) {
  return xm__fail(ctx, XM_ERESOURCE, "mock: injected failure of %s call %d", op_name[op], mk.calls);
}
static void track(xm__mem m, size_t bytes, const void *view) {
  if (mk.nlive == MAX_LIVE) {
    mk_bad("too many live buffers", "alloc");
    return;
  }
  mk.live[mk.nlive++] = (live_buf){m, bytes, view, view ? fnv(0, view, bytes) : 0};
  mk.allocs++;
  mk.bytes += view ? 0 : bytes;
  mk.peak = mk.bytes > mk.peak ? mk.bytes : mk.peak;
}

static xm_status mk_begin(xm_ctx *ctx, xm_precision prec) {
  rec(OP_BEGIN, 0, 0, 0, NULL, NULL);
  mk.begins++;
  return xm__backend_cpu.begin(ctx, prec);
}
static void mk_end(xm_ctx *ctx) {
  rec(OP_END, 0, 0, 0, NULL, NULL);
  mk.ends++;
  xm__backend_cpu.end(ctx);
}
/* alloc: a = bytes, b = 1 with init data; view: a = bytes. m1 = the buffer. */
static xm_status mk_alloc(xm_ctx *ctx, size_t bytes, const void *init, xm__mem *out) {
  ev *e = rec(OP_ALLOC, (int64_t)bytes, init != NULL, 0, NULL, NULL);
  *out = NULL;
  if (inject(OP_ALLOC))
    return injected(ctx, OP_ALLOC);
  xm_status st = xm__backend_cpu.alloc(ctx, bytes, init, out);
  if (st == XM_OK)
    track(*out, bytes, NULL), e->m1 = *out;
  return st;
}
static xm_status mk_view(xm_ctx *ctx, const void *host, size_t bytes, xm__mem *out) {
  ev *e = rec(OP_VIEW, (int64_t)bytes, 0, 0, NULL, NULL);
  *out = NULL;
  if (inject(OP_ALLOC)) /* counted with alloc */
    return injected(ctx, OP_ALLOC);
  xm_status st = xm__backend_cpu.view(ctx, host, bytes, out);
  if (st == XM_OK)
    track(*out, bytes, host), e->m1 = *out;
  return st;
}
static void mk_release(xm_ctx *ctx, xm__mem m) {
  rec(OP_RELEASE, 0, 0, 0, m, NULL);
  int i = find(m);
  if (i < 0) {
    mk_bad("not live (double release?)", "release");
    return;
  }
  if (mk.live[i].view && fnv(0, mk.live[i].view, mk.live[i].bytes) != mk.live[i].sum)
    mk_bad("a view's array changed while lent", "release");
  mk.bytes -= mk.live[i].view ? 0 : mk.live[i].bytes;
  mk.live[i] = mk.live[--mk.nlive];
  mk.releases++;
  xm__backend_cpu.release(ctx, m);
}
/* upload / download: a = bytes, b = offset, m1 = the device buffer. */
static xm_status mk_upload(xm_ctx *ctx, xm__mem dst, size_t off, const void *src, size_t bytes) {
  rec(OP_UPLOAD, (int64_t)bytes, (int64_t)off, 0, dst, NULL);
  uses(dst, 1, OP_UPLOAD);
  return xm__backend_cpu.upload(ctx, dst, off, src, bytes);
}
static xm_status mk_download(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t bytes) {
  rec(OP_DOWNLOAD, (int64_t)bytes, (int64_t)off, 0, src, NULL);
  uses(src, 0, OP_DOWNLOAD);
  return xm__backend_cpu.download(ctx, dst, src, off, bytes);
}
/* mc: a = s0, b = ns, c = r0; exp_shocks: a = elements, b = offset. m1, m2 = X, EX. */
static xm_status mk_mc(xm_ctx *ctx, const xm__mc_args *a, int64_t s0, int64_t ns, int64_t r0,
                       uint64_t max_bytes, xm__mem X, xm__mem EX) {
  rec(OP_MC, s0, ns, r0, X, EX);
  uses(X, 1, OP_MC), uses(EX, 1, OP_MC);
  return xm__backend_cpu.mc(ctx, a, s0, ns, r0, max_bytes, X, EX);
}
static xm_status mk_exp(xm_ctx *ctx, int64_t off, int64_t m, xm__mem X, xm__mem EX) {
  rec(OP_EXP, m, off, 0, X, EX);
  uses(X, 0, OP_EXP), uses(EX, 1, OP_EXP);
  return xm__backend_cpu.exp_shocks(ctx, off, m, X, EX);
}
static void uses_block(const xm__dblock *b, int op) {
  uses(b->instd, op == OP_TODAY, op), uses(b->insti, 0, op), uses(b->start, 0, op);
  uses(b->pinst, 0, op), uses(b->psilo, 0, op), uses(b->pqty, 0, op), uses(b->cross, 0, op);
}
/* today: a = accounts, b = instruments; combine: a = accounts. */
static xm_status mk_today(xm_ctx *ctx, const xm__dblock *b, double dt, double p) {
  rec(OP_TODAY, b->na, b->n, 0, NULL, NULL);
  uses_block(b, OP_TODAY);
  return xm__backend_cpu.today(ctx, b, dt, p);
}
/* revalue: a = row0, b = ns, c = F, m1, m2 = X, EX. */
static xm_status mk_revalue(xm_ctx *ctx, const xm__dblock *b, xm__mem X, xm__mem EX, int64_t F,
                            int64_t row0, int64_t ns, double vol_floor, xm__mem ell) {
  rec(OP_REVALUE, row0, ns, F, X, EX);
  uses_block(b, OP_REVALUE), uses(X, 0, OP_REVALUE), uses(EX, 0, OP_REVALUE),
      uses(ell, 1, OP_REVALUE);
  if (inject(OP_REVALUE))
    return injected(ctx, OP_REVALUE);
  return xm__backend_cpu.revalue(ctx, b, X, EX, F, row0, ns, vol_floor, ell);
}
/* aggregate: a = s0, b = ns; reduce: a = its first set, b = sets, c = their scenarios. */
static xm_status mk_aggregate(xm_ctx *ctx, const xm__dblock *b, int64_t s0, int64_t ns,
                              const xm__dwork *w) {
  rec(OP_AGGREGATE, s0, ns, 0, NULL, NULL);
  uses_block(b, OP_AGGREGATE), uses(w->ell, 0, OP_AGGREGATE), uses(w->L, 1, OP_AGGREGATE);
  return xm__backend_cpu.aggregate(ctx, b, s0, ns, w);
}
static xm_status mk_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                           const xm__dwork *w) {
  int64_t S = 0;
  for (int j = 0; j < n; j++) {
    S += ds[j].S;
    if (ds[j].w_off >= 0)
      uses(w->W, 0, OP_REDUCE);
  }
  rec(OP_REDUCE, n > 0 ? ds[0].x : -1, n, S, NULL, NULL);
  uses_block(b, OP_REDUCE), uses(w->L, 0, OP_REDUCE);
  uses(w->by, 1, OP_REDUCE), uses(w->silo, 1, OP_REDUCE), uses(w->attr, 1, OP_REDUCE);
  uses(w->tail, 1, OP_REDUCE);
  return xm__backend_cpu.reduce(ctx, b, ds, n, w);
}
/* tail: a = segments, b = their rows, c = how many are their set's first;
 * tail_reduce as reduce. */
static xm_status mk_tail(xm_ctx *ctx, const xm__dblock *b, const xm__tseg *seg, int n,
                         const xm__dwork *w) {
  int64_t rows = 0, firsts = 0;
  for (int j = 0; j < n; j++) {
    rows += seg[j].ns, firsts += seg[j].first;
    if (seg[j].w_off >= 0)
      uses(w->W, 0, OP_TAIL);
  }
  rec(OP_TAIL, n, rows, firsts, NULL, NULL);
  uses_block(b, OP_TAIL), uses(w->L, 0, OP_TAIL), uses(w->T, 1, OP_TAIL);
  return xm__backend_cpu.tail(ctx, b, seg, n, w);
}
static xm_status mk_tail_reduce(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                                const xm__dwork *w) {
  int64_t S = 0;
  for (int j = 0; j < n; j++)
    S += ds[j].S;
  rec(OP_TAIL_REDUCE, n > 0 ? ds[0].x : -1, n, S, NULL, NULL);
  uses_block(b, OP_TAIL_REDUCE), uses(w->T, 0, OP_TAIL_REDUCE);
  uses(w->by, 1, OP_TAIL_REDUCE), uses(w->silo, 1, OP_TAIL_REDUCE);
  uses(w->attr, 1, OP_TAIL_REDUCE);
  return xm__backend_cpu.tail_reduce(ctx, b, ds, n, w);
}
/* liquidity: a = accounts, b = instruments, c = F. */
static xm_status mk_liquidity(xm_ctx *ctx, const xm__dblock *b, xm__mem sx, xm__mem sex,
                              xm__mem fpar, int64_t F, double vol_floor, const xm__dwork *w) {
  rec(OP_LIQUIDITY, b->na, b->n, F, NULL, NULL);
  uses_block(b, OP_LIQUIDITY), uses(sx, 0, OP_LIQUIDITY), uses(sex, 0, OP_LIQUIDITY);
  uses(fpar, 0, OP_LIQUIDITY), uses(b->instd_s, 0, OP_LIQUIDITY), uses(b->insti_s, 0, OP_LIQUIDITY);
  uses(b->sens, 1, OP_LIQUIDITY), uses(b->lq_start, 0, OP_LIQUIDITY), uses(b->xb, 0, OP_LIQUIDITY);
  uses(w->lq, 1, OP_LIQUIDITY);
  return xm__backend_cpu.liquidity(ctx, b, sx, sex, fpar, F, vol_floor, w);
}
static xm_status mk_combine(xm_ctx *ctx, const xm__dblock *b, const xm__dwork *w, double cap,
                            double per_contract, double beta) {
  rec(OP_COMBINE, b->na, 0, 0, NULL, NULL);
  uses_block(b, OP_COMBINE), uses(w->by, 0, OP_COMBINE), uses(w->silo, 0, OP_COMBINE);
  uses(w->attr, 0, OP_COMBINE), uses(w->lq, 0, OP_COMBINE);
  uses(w->out_acct, 1, OP_COMBINE), uses(w->out_silo, 1, OP_COMBINE);
  return xm__backend_cpu.combine(ctx, b, w, cap, per_contract, beta);
}

static void mock_install(xm_ctx *ctx, int fail_op, int fail_at) {
  memset(&mk, 0, sizeof mk);
  mk.fail_op = fail_op;
  mk.fail_at = fail_at;
  mock = xm__backend_cpu;
  mock.name = "mock";
  mock.begin = mk_begin, mock.end = mk_end, mock.alloc = mk_alloc, mock.view = mk_view;
  mock.release = mk_release, mock.upload = mk_upload, mock.download = mk_download;
  mock.mc = mk_mc, mock.exp_shocks = mk_exp, mock.today = mk_today;
  mock.revalue = mk_revalue, mock.aggregate = mk_aggregate, mock.reduce = mk_reduce;
  mock.liquidity = mk_liquidity, mock.combine = mk_combine;
  mock.tail = mk_tail, mock.tail_reduce = mk_tail_reduce;
  ctx->be = &mock;
}
static void mock_remove(xm_ctx *ctx) { ctx->be = &xm__backend_cpu; }

/* Every buffer released, each once; begin and end paired; nothing used
 * after release, no view written (fails on a leak or a bad use). */
static void check_resources(void) {
  if (mk.bad)
    print_message("mock: %d violation(s), first: %s\n", mk.bad, mk.why);
  assert_int_equal(mk.bad, 0);
  assert_int_equal(mk.nlive, 0);
  assert_int_equal(mk.allocs, mk.releases);
  assert_int_equal(mk.begins, 1);
  assert_int_equal(mk.ends, 1);
}

/* ---- the loop nest ------------------------------------------------------- */

static ev want_ev[MAX_EV];
static int n_want;
static void want(int op, int64_t a, int64_t b, int64_t c, int set) {
  assert_true(n_want < MAX_EV);
  want_ev[n_want++] = (ev){op, a, b, c, set, NULL, NULL};
}

/* The shocks of group g's rows t0 .. t0 + ns into rows r .. of a buffer
 * (r = t0 - r0): each member's part, drawn or uploaded and exp'd. */
static void want_shocks(const xm__sets *sets, const xm__plan *p, int64_t g, int64_t t0, int64_t ns,
                        int64_t r0) {
  const xm__group *gr = &p->groups[g];
  int64_t F = sets->F;
  for (int64_t x = gr->x0; x < gr->x1; x++) {
    const xm__set *s = &sets->set[x];
    int64_t lo = p->row[x] > t0 ? p->row[x] : t0;
    int64_t hi = p->row[x] + s->S < t0 + ns ? p->row[x] + s->S : t0 + ns;
    if (s->S == 0 || hi <= lo)
      continue;
    if (s->is_mc)
      want(OP_MC, lo - p->row[x], hi - lo, lo - r0, (int)g);
    else
      want(OP_UPLOAD, (hi - lo) * F * 8, (lo - r0) * F * 8, 0, (int)g),
          want(OP_EXP, (hi - lo) * F, (lo - r0) * F, 0, (int)g);
  }
}

/* The steps host/engine.c documents for plan and sets (buffers with initial
 * data included: the weights, then each block's 7 arrays; plain allocations,
 * releases to check_resources; finish is not recorded):
 *   resident groups' shocks (a lone host set: exp of its view; else each
 *   member's mc, or upload and exp, at its rows)
 *   for each block: its arrays; today
 *     for each group: for each tile t0 .. t0 + ns covering its rows once:
 *                       (streamed: the members' parts) revalue, aggregate
 *                     one reduce for its sets
 *     combine; download requirements, silo results, set measures */
static void expect_loop(const xm__sets *sets, const xm__plan *p) {
  int64_t F = sets->F, K = sets->K, G = p->G, nw = 0, covered = 0;
  n_want = 0;
  want(OP_BEGIN, 0, 0, 0, -1);
  for (int x = 0; x < K; x++)
    nw += sets->set[x].w ? sets->set[x].S : 0;
  if (nw)
    want(OP_ALLOC, nw * 8, 1, 0, -1);
  for (int64_t g = 0; g < p->n_groups; g++) {
    const xm__group *gr = &p->groups[g];
    covered += gr->S;
    assert_true(gr->S <= p->rows && gr->x1 - gr->x0 <= XM__GROUP_SETS);
    if (!p->resident)
      continue;
    if (gr->x1 - gr->x0 == 1 && !sets->set[gr->x0].is_mc) {
      want(OP_EXP, gr->S * F, 0, 0, (int)g);
    } else if (mock.host_memory) {
      want_shocks(sets, p, g, 0, gr->S, 0);
    } else { /* a device: the host sets' rows in one transfer, then exp or mc each */
      want(OP_ALLOC, gr->S * F * 8, 1, 0, -1);
      for (int64_t x = gr->x0; x < gr->x1; x++) {
        const xm__set *s = &sets->set[x];
        if (s->S > 0 && s->is_mc)
          want(OP_MC, 0, s->S, p->row[x], (int)g);
        else if (s->S > 0)
          want(OP_EXP, s->S * F, p->row[x] * F, 0, (int)g);
      }
    }
  }
  for (int x = 0; x < K; x++)
    covered -= sets->set[x].S;
  assert_int_equal(covered, 0);                      /* every set's scenarios in one group */
  want(OP_ALLOC, p->max_na * (G + 1) * 8, 1, 0, -1); /* the add-ons, 0 until computed */
  if (p->liquidity) /* its shock rows, their exp, the factors' parameters */
    want(OP_ALLOC, 2 * XM_NSLOT * XM_SENS_COLS * 8, 1, 0, -1),
        want(OP_ALLOC, 2 * XM_NSLOT * XM_SENS_COLS * 8, 1, 0, -1),
        want(OP_ALLOC, 3 * F * 8, 1, 0, -1);
  for (int64_t b = 0; b < p->n_blocks; b++) {
    const xm__block *bk = &p->blocks[b];
    int64_t n = bk->n_inst, na = bk->na, np = bk->pos_start[na];
    int64_t bytes[7] = {XM_ND * n * 8, XM_NI * n * 4, (na + 1) * 4, np * 4, np * 4, np * 8, na * 4};
    for (int j = 0; j < 7; j++)
      want(OP_ALLOC, bytes[j], 1, 0, -1);
    if (p->liquidity) { /* the add-on's rows and exposures (sens: a plain allocation) */
      int64_t lb[7] = {XM_ND * n * 8,
                       XM_NI * n * 4,
                       (na * (G + 1) + 1) * 4,
                       (bk->n_exp + 1) * 4,
                       (bk->n_exp + 1) * 4,
                       (bk->n_contrib + 1) * 4,
                       na * 8};
      for (int j = 0; j < 7; j++)
        want(OP_ALLOC, lb[j], 1, 0, -1);
    }
    want(OP_TODAY, na, n, 0, -1);
    if (p->liquidity)
      want(OP_TODAY, na, n, 0, -1), want(OP_LIQUIDITY, na, n, F, -1);
    for (int64_t g = 0; g < p->n_groups; g++) {
      const xm__group *gr = &p->groups[g];
      int64_t members = 0, ch = p->chunk ? p->chunk : gr->S;
      for (int64_t t0 = 0; t0 < gr->S; t0 += p->tile) {
        int64_t ns = gr->S - t0 < p->tile ? gr->S - t0 : p->tile, c0 = t0 / ch * ch;
        if (!p->resident)
          want_shocks(sets, p, g, t0, ns, t0);
        want(OP_REVALUE, p->resident ? t0 : 0, ns, F, (int)g);
        want(OP_AGGREGATE, t0 - c0, ns, 0, (int)g); /* L's rows: the chunk's */
        if (p->chunk && (t0 + ns == gr->S || t0 + ns == c0 + ch)) {
          int64_t segs = 0, firsts = 0; /* the chunk's sets, and those it starts */
          for (int64_t x = gr->x0; x < gr->x1; x++) {
            int64_t r0 = p->row[x], r1 = r0 + sets->set[x].S;
            segs += sets->set[x].S > 0 && r0 < t0 + ns && r1 > c0;
            firsts += sets->set[x].S > 0 && r0 >= c0 && r0 < t0 + ns;
          }
          want(OP_TAIL, segs, t0 + ns - c0, firsts, (int)g);
        }
      }
      for (int64_t x = gr->x0; x < gr->x1; x++)
        members += sets->set[x].S > 0;
      want(p->chunk ? OP_TAIL_REDUCE : OP_REDUCE, gr->x0, members, gr->S, (int)g);
    }
    want(OP_COMBINE, na, 0, 0, -1);
    want(OP_DOWNLOAD, na * XM_NOUT * 8, 0, 0, -1);
    want(OP_DOWNLOAD, na * G * XM_NSILO * 8, 0, 0, -1);
    want(OP_DOWNLOAD, na * K * 8, 0, 0, -1);
  }
  want(OP_END, 0, 0, 0, -1);
}

/* The recorded steps against expect_loop's, one by one; revalue must read
 * the shocks the group's resident steps made, or the tile's own just made.
 * Fails at the first step out of place (printed). */
static void check_loop(const xm__sets *sets, const xm__plan *p) {
  expect_loop(sets, p);
  const void *X[8] = {0}, *EX[8] = {0}, *tX = NULL, *tEX = NULL;
  int j = 0, blocks = 0, live = 0, live_at_today = -1;
  for (int i = 0; i < mk.n; i++) {
    const ev *r = &mk.ev[i];
    live += (r->op == OP_ALLOC || r->op == OP_VIEW) - (r->op == OP_RELEASE);
    if (r->op == OP_TODAY && live_at_today < 0)
      live_at_today = live;
    if (r->op == OP_TODAY) /* the block before released its arrays */
      assert_int_equal(live, live_at_today);
    if (r->op == OP_VIEW || r->op == OP_RELEASE || (r->op == OP_ALLOC && !r->b))
      continue;
    const ev *w = j < n_want ? &want_ev[j] : NULL;
    if (!w || w->op != r->op || w->a != r->a || w->b != r->b || w->c != r->c) {
      print_message("step %d (trace %d): got %s(%lld, %lld, %lld), want %s(%lld, %lld, %lld)\n", j,
                    i, op_name[r->op], (long long)r->a, (long long)r->b, (long long)r->c,
                    w ? op_name[w->op] : "nothing", w ? (long long)w->a : 0,
                    w ? (long long)w->b : 0, w ? (long long)w->c : 0);
      fail();
    }
    j++;
    if (r->op == OP_TODAY)
      blocks++;
    if ((r->op == OP_MC || r->op == OP_EXP) && blocks == 0 && p->resident) {
      if (X[w->set]) /* every member of a group into the group's buffers */
        assert_true(X[w->set] == r->m1 && EX[w->set] == r->m2);
      X[w->set] = r->m1, EX[w->set] = r->m2;
    }
    if (r->op == OP_MC || r->op == OP_EXP) /* streamed: an upload's buffer is exp's input */
      tX = r->m1, tEX = r->m2;
    if (r->op == OP_UPLOAD)
      tX = r->m1;
    if (r->op == OP_REVALUE) {
      assert_ptr_equal(r->m1, p->resident ? X[w->set] : tX);
      assert_ptr_equal(r->m2, p->resident ? EX[w->set] : tEX);
    }
  }
  assert_int_equal(j, n_want);
}

/* One xm_run with the mock on ctx; its sets and plan rebuilt alongside. */
static void run_mocked(xm_ctx *ctx, const xm_config *cfg, xm__sets *sets, xm__plan *plan,
                       xm_run_result *r) {
  plan_of(ctx, &scen, cfg, sets, plan);
  uint64_t before = inputs_sum();
  mock_install(ctx, -1, 0);
  xm_status st = xm_run(ctx, &book, &scen, cfg, NULL, r);
  mock_remove(ctx);
  if (st != XM_OK)
    print_message("xm_run: %s\n", xm_ctx_last_error(ctx));
  assert_int_equal(st, XM_OK);
  assert_true(inputs_sum() == before); /* the caller's arrays are never written */
  check_resources();
  print_message("%d steps, %d buffers, peak %zu of %llu planned bytes\n", mk.n, mk.allocs, mk.peak,
                (unsigned long long)plan->planned);
  assert_true(mk.peak <= plan->planned); /* the plan counts every buffer of the loop */
}

/* Resident shocks, several blocks (ctx_mid): xm_run's steps are the loop
 * nest; then the loop alone (xm__evaluate) with tiles of 97 scenarios, the
 * last one short, gives the same steps for that tile and the same measures.
 * Fails on a step missing, doubled or out of order, a tile range that does
 * not cover 0..S once, shocks read from the wrong buffer, a buffer leaked or
 * used after release, a view written, or more memory than the plan says. */
static void loop_resident(void **state) {
  (void)state;
  xm__sets sets;
  xm__plan p;
  xm_run_result r;
  run_mocked(ctx_mid, &cfg_full, &sets, &p, &r);
  assert_true(p.resident && p.n_blocks > 1);
  check_loop(&sets, &p);

  p.tile = 97;
  double *acct = malloc(N_ACCT * XM_NOUT * sizeof *acct);
  double *silo = malloc(N_ACCT * 3 * XM_NSILO * sizeof *silo),
         *by = malloc(N_ACCT * 8 * sizeof *by);
  assert_true(acct && silo && by && sets.K <= 8);
  xm__outputs out = {acct, silo, by, NULL, NULL, 0.0, 0.0, NULL, NULL};
  mock_install(ctx_mid, -1, 0);
  xm_status st = xm__evaluate(ctx_mid, &cfg_full, &sets, &p, 0, NULL, NULL, &out);
  mock_remove(ctx_mid);
  assert_int_equal(st, XM_OK);
  check_resources();
  check_loop(&sets, &p);
  assert_memory_equal(by, r.by_set, N_ACCT * sets.K * sizeof *by);
  for (int a = 0; a < N_ACCT; a++)
    assert_true(acct[a * XM_NOUT + XM_O_REQUIREMENT] == r.requirement[a]);
  free(acct), free(silo), free(by);
  xm_run_result_free(&r);
  xm__plan_free(&p);
  xm__sets_free(&sets);
}

/* Tight budget (ctx_tight): the shocks of each tile are made again in each
 * block (mc per tile for the Monte Carlo sets, upload and exp for the others);
 * fails as loop_resident does, or if a tile's shocks are not made before it
 * is revalued. */
static void loop_streamed(void **state) {
  (void)state;
  xm__sets sets;
  xm__plan p;
  xm_run_result r;
  run_mocked(ctx_tight, &cfg_full, &sets, &p, &r);
  assert_true(!p.resident && p.n_blocks > 1 && p.tile < p.max_S);
  check_loop(&sets, &p);
  xm_run_result_free(&r);
  xm__plan_free(&p);
  xm__sets_free(&sets);
}

/* ---- results ------------------------------------------------------------- */

static void assert_same(const xm_run_result *a, const xm_run_result *b) {
  int64_t A = a->A, G = a->G, K = a->K;
  assert_true(A == b->A && G == b->G && K == b->K);
  assert_memory_equal(a->requirement, b->requirement, A * sizeof(double));
  assert_memory_equal(a->unified, b->unified, A * sizeof(double));
  assert_memory_equal(a->siloed, b->siloed, A * sizeof(double));
  assert_memory_equal(a->diversification, b->diversification, A * sizeof(double));
  assert_memory_equal(a->minimum, b->minimum, A * sizeof(double));
  assert_memory_equal(a->binding, b->binding, A * sizeof(int32_t));
  assert_memory_equal(a->by_set, b->by_set, A * K * sizeof(double));
  assert_memory_equal(a->by_silo, b->by_silo, A * G * sizeof(double));
  assert_memory_equal(a->attribution, b->attribution, A * G * sizeof(double));
}

/* A device's plan (the mock with host_memory = 0, ctx_free's budget): L's
 * rows grow past the largest set and every set lands in one group: one
 * transfer of the host sets' rows, tiles that cross from set to set, one
 * reduce step. The steps are the loop nest's and the bits the cpu plan's
 * (fails if a tile crossing a set, a set's row offset or the grouped
 * reduction changes a number). */
static void loop_grouped(void **state) {
  (void)state;
  xm__sets sets;
  xm__plan p;
  xm_run_result r0, r;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &cfg_full, NULL, &r0), XM_OK);
  mock_install(ctx_free, -1, 0);
  mock.host_memory = 0;
  plan_of(ctx_free, &scen, &cfg_full, &sets, &p);
  int64_t with_rows = 0;
  for (int64_t x = 0; x < sets.K; x++)
    with_rows += sets.set[x].S > 0;
  print_message("device plan: %lld groups of %lld sets, %lld rows (largest set %lld), tile %lld\n",
                (long long)p.n_groups, (long long)with_rows, (long long)p.rows, (long long)p.max_S,
                (long long)p.tile);
  assert_true(p.resident && p.rows > p.max_S && p.n_groups == 1 && with_rows > 2);
  xm_status st = xm_run(ctx_free, &book, &scen, &cfg_full, NULL, &r);
  mock_remove(ctx_free);
  assert_int_equal(st, XM_OK);
  check_resources();
  check_loop(&sets, &p);
  assert_true(mk.peak <= p.planned);
  assert_same(&r0, &r);
  xm_run_result_free(&r0);
  xm_run_result_free(&r);
  xm__plan_free(&p);
  xm__sets_free(&sets);
}

/* The same bits whatever the plan: blocks and tiles only split the work
 * (fails if a tile boundary, a block's renumbering or the streamed shocks
 * change a number). */
static void tight_equals_unlimited(void **state) {
  (void)state;
  xm_run_result r0, r1, r2;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &cfg_full, NULL, &r0), XM_OK);
  assert_int_equal(xm_run(ctx_mid, &book, &scen, &cfg_full, NULL, &r1), XM_OK);
  assert_int_equal(xm_run(ctx_tight, &book, &scen, &cfg_full, NULL, &r2), XM_OK);
  assert_true(r0.n_blocks == 1 && r1.n_blocks > 1 && r2.n_blocks > r1.n_blocks);
  assert_int_equal(r0.K, 5);
  assert_same(&r0, &r1);
  assert_same(&r0, &r2);
  xm_run_result_free(&r0);
  xm_run_result_free(&r1);
  xm_run_result_free(&r2);
}

/* The cpu aggregation on 512-bit vectors and on 256-bit ones
 * (XM_CPU_NARROW=1): the same adds in each lane, the same bits (fails if a
 * lane of either width sums another scenario or in another order). On a
 * machine without AVX-512 both runs take the 256-bit path. */
static void aggregation_widths(void **state) {
  (void)state;
  xm_run_result r0, r1;
  print_message("AVX-512: %s\n", __builtin_cpu_supports("avx512f") ? "yes, both widths compared"
                                                                   : "no, one width twice");
  assert_int_equal(xm_run(ctx_free, &book, &scen, &cfg_full, NULL, &r0), XM_OK);
  setenv("XM_CPU_NARROW", "1", 1);
  xm_status st = xm_run(ctx_free, &book, &scen, &cfg_full, NULL, &r1);
  unsetenv("XM_CPU_NARROW");
  assert_int_equal(st, XM_OK);
  assert_same(&r0, &r1);
  xm_run_result_free(&r0);
  xm_run_result_free(&r1);
}

/* ---- the streamed tail (xm__plan.chunk, docs/engine.md) ---------------- */

static void bt_config(xm_config *c, int sp_row);

/* The streamed plan at the middle budget: L holds a chunk, not a group's
 * rows, so its blocks are fewer than the unstreamed plan's (one here: every
 * (scenario, instrument) priced once), within the budget; the chunk is whole
 * tiles. Fails if the plan does not stream by default or gains nothing. */
static void streamed_plan(void **state) {
  (void)state;
  xm_ctx *cs = make_ctx_on("cpu", MID_LIMIT, 0, -1);
  assert_non_null(cs);
  xm__sets s0, s1;
  xm__plan p0, p1;
  plan_of(ctx_mid, &scen, &cfg_full, &s0, &p0);
  plan_of(cs, &scen, &cfg_full, &s1, &p1);
  print_message("unstreamed: %lld blocks, L rows %lld; streamed: %lld blocks, chunk %lld, "
                "tail records %lld doubles, tile %lld, planned %llu of %llu\n",
                (long long)p0.n_blocks, (long long)p0.rows, (long long)p1.n_blocks,
                (long long)p1.chunk, (long long)p1.trec, (long long)p1.tile,
                (unsigned long long)p1.planned, (unsigned long long)p1.budget);
  assert_int_equal(p0.chunk, 0);
  assert_true(p0.n_blocks > 1 && p1.n_blocks == 1);
  assert_true(p1.chunk > 0 && p1.chunk % p1.tile == 0 && p1.planned <= p1.budget);
  check_blocks(&p1, &s1);
  xm__plan_free(&p0), xm__plan_free(&p1);
  xm__sets_free(&s0), xm__sets_free(&s1);
  xm_ctx_destroy(cs);
}

/* Streamed runs are the unstreamed run bit for bit: every budget (one block
 * or several, shocks resident or made per tile) and chunk (the plan's; 1, 7
 * and 64 scenarios: chunks that split sets, hold fewer scenarios than the
 * tail, or several sets of a group), for es, var and worst (the weighted
 * stress set), on the cpu backend (the loop's steps checked by the mock,
 * within the plan's bytes) and on an OpenCL device (its own unstreamed run;
 * chunks of whole 8-scenario vectors, and 7 without the double8 kernels,
 * whose remainder scenarios take the scalar path), and a backtest. Fails on
 * any bit that a chunk boundary, a tail merge or the tails' measure changes. */
static void streamed_equals_unstreamed(void **state) {
  (void)state;
  xm_config cv = cfg_full; /* var, with a larger tail */
  cv.historical.measure = cv.montecarlo.measure = XM_MEASURE_VAR;
  cv.confidence = 0.9;
  const xm_config *cfgs[] = {&cfg_full, &cv};
  const uint64_t limits[] = {0, MID_LIMIT, TIGHT_LIMIT};
  const long chunks[] = {0, 1, 7, 64};
  for (int c = 0; c < 2; c++) {
    xm_run_result r0, r;
    assert_int_equal(xm_run(ctx_free, &book, &scen, cfgs[c], NULL, &r0), XM_OK);
    for (int l = 0; l < 3; l++)
      for (int h = 0; h < 4; h++) {
        xm_ctx *cs = make_ctx_on("cpu", limits[l], chunks[h], -1);
        assert_non_null(cs);
        if (chunks[h] == 0 || chunks[h] == 64) { /* the others' steps outgrow the trace */
          xm__sets sets;
          xm__plan p;
          run_mocked(cs, cfgs[c], &sets, &p, &r);
          assert_true(p.chunk > 0);
          check_loop(&sets, &p);
          xm__plan_free(&p);
          xm__sets_free(&sets);
        } else {
          assert_int_equal(xm_run(cs, &book, &scen, cfgs[c], NULL, &r), XM_OK);
        }
        assert_same(&r0, &r);
        xm_run_result_free(&r);
        xm_ctx_destroy(cs);
      }
    xm_run_result_free(&r0);
    xm_ctx *o0 = make_ctx_on("opencl", 0, -1, -1);
    if (!xm_has_opencl() || !o0) {
      print_message("streamed on OpenCL: no device here\n");
      continue;
    }
    xm_ctx *ov = make_ctx_on("opencl", 0, -1, 0);
    assert_non_null(ov);
    xm_run_result q0, qv;
    assert_int_equal(xm_run(o0, &book, &scen, cfgs[c], NULL, &q0), XM_OK);
    assert_int_equal(xm_run(ov, &book, &scen, cfgs[c], NULL, &qv), XM_OK);
    const long ochunks[] = {0, 64, 7};
    for (int h = 0; h < 3; h++) {
      xm_ctx *os = make_ctx_on("opencl", h == 1 ? MID_LIMIT : 0, ochunks[h], h == 2 ? 0 : -1);
      assert_non_null(os);
      assert_int_equal(xm_run(os, &book, &scen, cfgs[c], NULL, &r), XM_OK);
      assert_same(h == 2 ? &qv : &q0, &r);
      xm_run_result_free(&r);
      xm_ctx_destroy(os);
    }
    xm_run_result_free(&q0), xm_run_result_free(&qv);
    xm_ctx_destroy(o0), xm_ctx_destroy(ov);
  }
  /* a backtest: its batch's groups of many days' sets, streamed in chunks */
  xm_config bc;
  bt_config(&bc, 61);
  xm_ctx *cs = make_ctx_on("cpu", TIGHT_LIMIT, 7, -1);
  assert_non_null(cs);
  xm_backtest_result b0, b1;
  assert_int_equal(xm_backtest(ctx_free, &book, &scen, &bc, NULL, &b0), XM_OK);
  assert_int_equal(xm_backtest(cs, &book, &scen, &bc, NULL, &b1), XM_OK);
  int64_t n = b0.N * b0.A;
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    assert_memory_equal(b0.margin[m], b1.margin[m], (size_t)n * sizeof(double));
  assert_memory_equal(b0.silo_margin, b1.silo_margin, (size_t)(n * b0.G) * sizeof(double));
  assert_memory_equal(b0.binding, b1.binding, (size_t)n * sizeof(int32_t));
  xm_backtest_result_free(&b0), xm_backtest_result_free(&b1);
  xm_ctx_destroy(cs);
}

/* --save-pnl streams (issue 18 item 1): each chunk's account rows go to
 * the sets' [S x A] losses as the run makes them, in memory or, with
 * xm_run_opts.pnl_dir, to a nameless file there (read back by
 * xm_run_pnl_read). Under every budget and chunk both are the unstreamed
 * run's losses and results bit for bit, the streamed plan takes less memory
 * than the unstreamed one, no file is left in the folder, and reads outside
 * the losses are refused. */
static void pnl_same(const xm_run_result *r0, const xm_run_result *r, const char *what) {
  assert_int_equal(r->K, r0->K);
  assert_int_equal(r->A, r0->A);
  int64_t A = r0->A;
  for (int64_t x = 0; x < r0->K; x++) {
    int64_t S = r0->sets[x].S;
    float *got = malloc((size_t)(S * A + 1) * sizeof *got);
    assert_non_null(got);
    assert_int_equal(xm_run_pnl_read(r, x, 0, S, 0, A, got), XM_OK);
    if (memcmp(got, r0->sets[x].pnl, (size_t)(S * A) * sizeof *got) != 0)
      fail_msg("%s: set %lld's losses differ from the unstreamed run's", what, (long long)x);
    /* a block inside: scenarios [S/3, S/3 + S/2), accounts [1, A - 1) */
    int64_t s0 = S / 3, ns = S / 2, a0 = 1, na = A - 2;
    assert_int_equal(xm_run_pnl_read(r, x, s0, ns, a0, na, got), XM_OK);
    for (int64_t s = 0; s < ns; s++)
      if (memcmp(got + s * na, r0->sets[x].pnl + (s0 + s) * A + a0, (size_t)na * sizeof *got))
        fail_msg("%s: a block of set %lld's losses differs", what, (long long)x);
    assert_int_equal(xm_run_pnl_read(r, x, S - 1, 2, 0, 1, got), XM_EINVAL);
    assert_int_equal(xm_run_pnl_read(r, x, 0, 1, A - 1, 2, got), XM_EINVAL);
    assert_int_equal(xm_run_pnl_read(r, x, -1, 1, 0, 1, got), XM_EINVAL);
    free(got);
  }
  float one;
  assert_int_equal(xm_run_pnl_read(r, r0->K, 0, 1, 0, 1, &one), XM_EINVAL);
}

static int dir_empty(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  if (d)
    closedir(d);
  return d && n == 0;
}

static void streamed_pnl(void **state) {
  (void)state;
  char dir[] = "/tmp/xm_test_pnl_XXXXXX";
  assert_non_null(mkdtemp(dir));
  xm_run_opts mem = {1, 0, NULL, NULL, 0, 0, 0, 0, NULL}, disk = mem;
  disk.pnl_dir = dir;
  xm_run_result r0, r;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &cfg_full, &mem, &r0), XM_OK);
  assert_null(r0.pnl_spool);
  const uint64_t limits[] = {0, MID_LIMIT, TIGHT_LIMIT};
  const long chunks[] = {0, 7};
  for (int l = 0; l < 3; l++)
    for (int h = 0; h < 2; h++)
      for (int where = 0; where < 2; where++) {
        xm_ctx *cs = make_ctx_on("cpu", limits[l], chunks[h], -1);
        assert_non_null(cs);
        assert_int_equal(xm_run(cs, &book, &scen, &cfg_full, where ? &disk : &mem, &r), XM_OK);
        char what[96];
        snprintf(what, sizeof what, "limit %llu, chunk %ld, %s", (unsigned long long)limits[l],
                 chunks[h], where ? "on disk" : "in memory");
        assert_same(&r0, &r);
        pnl_same(&r0, &r, what);
        if (where) {
          assert_non_null(r.pnl_spool);
          for (int64_t x = 0; x < r.K; x++)
            assert_null(r.sets[x].pnl);
        }
        if (l == 0) /* streamed: L a chunk's rows, not a group's */
          assert_true(r.mem_planned < r0.mem_planned);
        xm_run_result_free(&r);
        assert_true(dir_empty(dir)); /* nameless from the start */
        xm_ctx_destroy(cs);
      }
  /* a folder that is not there: refused before anything is revalued */
  char gone[sizeof dir + 8];
  snprintf(gone, sizeof gone, "%s/absent", dir);
  disk.pnl_dir = gone;
  xm_ctx *cs = make_ctx_on("cpu", 0, 0, -1);
  assert_non_null(cs);
  assert_int_equal(xm_run(cs, &book, &scen, &cfg_full, &disk, &r), XM_EIO);
  assert_non_null(strstr(xm_ctx_last_error(cs), "absent"));
  xm_run_result_free(&r);
  xm_ctx_destroy(cs);
  /* OpenCL streamed, in memory and on disk: its unstreamed run's losses */
  xm_ctx *o0 = make_ctx_on("opencl", 0, -1, -1), *os = make_ctx_on("opencl", MID_LIMIT, 7, -1);
  if (xm_has_opencl() && o0 && os) {
    xm_run_result q0;
    disk.pnl_dir = dir;
    assert_int_equal(xm_run(o0, &book, &scen, &cfg_full, &mem, &q0), XM_OK);
    for (int where = 0; where < 2; where++) {
      assert_int_equal(xm_run(os, &book, &scen, &cfg_full, where ? &disk : &mem, &r), XM_OK);
      assert_same(&q0, &r);
      pnl_same(&q0, &r, where ? "OpenCL on disk" : "OpenCL in memory");
      xm_run_result_free(&r);
    }
    xm_run_result_free(&q0);
  } else {
    print_message("streamed --save-pnl on OpenCL: no device here\n");
  }
  xm_ctx_destroy(o0), xm_ctx_destroy(os);
  xm_run_result_free(&r0);
  assert_true(dir_empty(dir));
  assert_int_equal(rmdir(dir), 0);
}

/* xm_run_scenario_ranks outside mpirun: XM_EUNSUPPORTED in a build without
 * MPI; in an MPI build, XM_EINVAL naming what is missing (no communicator,
 * MPI not started); NULL arguments refused; *out empty either way
 * (tests/python/mpi_split.py runs it under mpirun). */
static void scenario_ranks_refusals(void **state) {
  (void)state;
  xm_run_result r;
  xm_status st = xm_run_scenario_ranks(ctx_free, &book, &scen, &cfg_full, NULL, NULL, &r);
#ifdef XM_WITH_MPI
  assert_int_equal(st, XM_EINVAL);
  assert_non_null(strstr(xm_ctx_last_error(ctx_free), "no MPI communicator"));
#else
  assert_int_equal(st, XM_EUNSUPPORTED);
  assert_non_null(strstr(xm_ctx_last_error(ctx_free), "XM_WITH_MPI"));
#endif
  assert_null(r.requirement);
  assert_int_equal(r.A, 0);
  assert_int_equal(xm_run_scenario_ranks(ctx_free, NULL, &scen, &cfg_full, NULL, NULL, &r),
                   XM_EINVAL);
  assert_int_equal(xm_run_scenario_ranks(NULL, &book, &scen, &cfg_full, NULL, NULL, &r), XM_EINVAL);
  assert_int_equal(xm_run_scenario_ranks(ctx_free, &book, &scen, &cfg_full, NULL, NULL, NULL),
                   XM_EINVAL);
}

/* A float64 reference, METHODOLOGY.md sections 2-4, for the ready-made sets. */
static double ncdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
/* Value of one unit of instrument i at level S, vol sig, T years left. */
static double unit_value(int i, double S, double sig, double T) {
  if (!XM_TYPE_IS_OPTION(inst_type[i]))
    return S;
  double K = inst_strike[i], r = inst_rate[i], q = inst_div[i];
  if (T <= 0.0)
    return fmax(inst_call[i] ? S - K : K - S, 0.0);
  double F = XM_TYPE_HAS_CARRY(inst_type[i]) ? S * exp((r - q) * T) : S; /* option: on the spot */
  double s = sig * sqrt(T), d1 = (log(F / K) + 0.5 * s * s) / s, d2 = d1 - s;
  return exp(-r * T) * (inst_call[i] ? F * ncdf(d1) - K * ncdf(d2) : K * ncdf(-d2) - F * ncdf(-d1));
}
/* Loss of one contract in scenario x (shocks by book factor): prices move by
 * exp(x), vols by +x (floored), time by the horizon. */
static double loss(int i, const double *x, const xm_config *cfg) {
  double S = factor_level[inst_und[i]], T = inst_expiry[i];
  double sig1 = fmax(inst_iv[i] + (inst_vf[i] >= 0 ? x[inst_vf[i]] : 0.0), cfg->pricing.vol_floor);
  double T1 = fmax(T - cfg->horizon_days / 252.0, 0.0);
  return inst_mult[i] *
         (unit_value(i, S, inst_iv[i], T) - unit_value(i, S * exp(x[inst_und[i]]), sig1, T1));
}
static const double *sort_key;
static int by_loss(const void *pa, const void *pb) { /* larger loss first, then lower index */
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  if (sort_key[a] != sort_key[b])
    return sort_key[a] > sort_key[b] ? -1 : 1;
  return a < b ? -1 : 1;
}
/* R(L) unfloored; tail[0..*k) the scenarios that make it (worst: the first
 * largest w L; es: the k largest L, ties by index). */
static double wt(const xm_scenario_set *set, int64_t s) {
  return set->weight ? set->weight[s] : 1.0;
}
static double measure(const xm_scenario_set *set, const double *L, int64_t *tail, int64_t *k) {
  int64_t S = set->n_scenarios;
  if (set->measure == XM_MEASURE_WORST) {
    *k = 1, tail[0] = 0;
    for (int64_t s = 1; s < S; s++)
      if (wt(set, s) * L[s] > wt(set, tail[0]) * L[tail[0]])
        tail[0] = s;
    return wt(set, tail[0]) * L[tail[0]];
  }
  double alpha = isnan(set->confidence) ? cfg_ready.confidence : set->confidence;
  *k = (int64_t)fmax(1.0, ceil((1.0 - alpha) * (double)S - 1e-9));
  for (int64_t s = 0; s < S; s++)
    tail[s] = s;
  sort_key = L;
  qsort(tail, (size_t)S, sizeof *tail, by_loss);
  double sum = 0.0;
  for (int64_t j = 0; j < *k; j++)
    sum += L[tail[j]];
  return sum / (double)*k;
}

typedef struct ref {
  double req, uni, sil, div, min, by_set[2], by_silo[3], attr[3], scale;
  int bind;
} ref;

static void reference(int a, ref *o) {
  static double L[4][S_B]; /* the account's, then each silo's losses */
  static int64_t tail[S_B];
  double silo_x[3][2], attr_x[3][2], qnet[N_INST] = {0}, min_g[3] = {0};
  memset(o, 0, sizeof *o);
  for (int x = 0; x < 2; x++) {
    const xm_scenario_set *set = &sets2[x];
    for (int64_t s = 0; s < set->n_scenarios; s++) {
      double sh[6] = {0}; /* by book factor; 0 where the set does not move it */
      for (int f = 0; f < 6; f++)
        for (int c = 0; c < set->n_factors; c++)
          if (strcmp(set->factor[c], factor_name[f]) == 0)
            sh[f] = set->shock[s * set->n_factors + c];
      for (int c = 0; c < 4; c++)
        L[c][s] = 0.0;
      for (int q = 0; q < N_POS; q++)
        if (pos_acct[q] == a) {
          double l = pos_qty[q] * loss(pos_inst[q], sh, &cfg_ready);
          L[0][s] += l, L[1 + inst_silo[pos_inst[q]]][s] += l;
        }
      o->scale = fmax(o->scale, fabs(L[0][s]));
    }
    int64_t k = 0;
    double m = measure(set, L[0], tail, &k);
    o->by_set[x] = fmax(m, 0.0);
    for (int g = 0; g < 3; g++) { /* silo g's share of m: its losses over m's scenarios */
      attr_x[g][x] = 0.0;
      for (int64_t j = 0; j < k; j++) /* worst: w_s L_g(s); es: the mean over the tail */
        attr_x[g][x] += (set->measure == XM_MEASURE_WORST ? wt(set, tail[j]) : 1.0) *
                        L[1 + g][tail[j]] / (double)k;
    }
    for (int g = 0; g < 3; g++)
      silo_x[g][x] = fmax(measure(set, L[1 + g], tail, &k), 0.0);
  }
  o->bind = o->by_set[1] > o->by_set[0];
  o->uni = o->by_set[o->bind];
  for (int g = 0; g < 3; g++) {
    o->by_silo[g] = fmax(silo_x[g][0], silo_x[g][1]);
    o->attr[g] = attr_x[g][o->bind];
    o->sil += o->by_silo[g];
  }
  o->div = fmax(0.0, o->sil - o->uni);
  for (int q = 0; q < N_POS; q++)
    if (pos_acct[q] == a)
      qnet[pos_inst[q]] += pos_qty[q];
  for (int i = 0; i < N_INST; i++)
    if (XM_TYPE_IS_OPTION(inst_type[i])) {
      o->min += cfg_ready.minimum.per_contract * fabs(qnet[i]) * inst_mult[i];
      min_g[inst_silo[i]] += cfg_ready.minimum.per_contract * fabs(qnet[i]) * inst_mult[i];
    }
  if (account_cross[a]) {
    o->req = fmax(o->uni + (1.0 - cfg_ready.cross_margin.offset_cap) * o->div, o->min);
  } else { /* version 2 (METHODOLOGY.md section 4): each silo at its own clearing house, with
            * its own minimum, M = sum_g max(S_g, Min_g) (no add-on, beta = 0). C-NOTELIG's
            * only option, 1 EQ_P70 (equity), gives Min_equity = 0.375 x 100 = 37.5, below
            * its equity core (500 EQ_SPOT): M = Sil, as version 1's max(Sil, Min) was */
    for (int g = 0; g < 3; g++)
      o->req += fmax(o->by_silo[g], min_g[g]);
  }
}

/* Within METHODOLOGY.md section 5: 1e-9 max(|x|, the account's loss scale). */
#define assert_near(got, want, scale)                                                              \
  do {                                                                                             \
    double g_ = (got), w_ = (want), tol_ = 1e-9 * fmax(fabs(w_), (scale));                         \
    if (!(fabs(g_ - w_) <= tol_)) {                                                                \
      print_message("account %d: %s = %.17g, want %.17g\n", a, #got, g_, w_);                      \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

/* Every output of every account against the reference (fails on a wrong
 * loss, measure, tail, weight, cap, minimum or silo rule); and the book
 * exercises each rule: a binding minimum, a non-eligible account, a
 * diversification credit, one silo only, no position at all. */
static void matches_methodology(void **state) {
  (void)state;
  xm_run_result r;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &cfg_ready, NULL, &r), XM_OK);
  assert_int_equal(r.K, 2);
  assert_string_equal(r.sets[0].name, "a_stress");
  assert_int_equal(r.sets[1].k, S_B / 100); /* 1% */
  assert_non_null(strstr(r.notes, "OIL.vol"));
  int credited = 0, binds[2] = {0};
  for (int a = 0; a < N_ACCT; a++) {
    ref o;
    reference(a, &o);
    double sc = o.scale;
    assert_near(r.requirement[a], o.req, sc);
    assert_near(r.unified[a], o.uni, sc);
    assert_near(r.siloed[a], o.sil, sc);
    assert_near(r.diversification[a], o.div, sc);
    assert_near(r.minimum[a], o.min, sc);
    assert_int_equal(r.binding[a], o.bind);
    for (int x = 0; x < 2; x++)
      assert_near(r.by_set[a * 2 + x], o.by_set[x], sc);
    for (int g = 0; g < 3; g++) {
      assert_near(r.by_silo[a * 3 + g], o.by_silo[g], sc);
      assert_near(r.attribution[a * 3 + g], o.attr[g], sc);
    }
    credited += account_cross[a] && o.div > 0.0 && o.req > o.min;
    binds[o.bind]++;
  }
  assert_true(credited > 0 && binds[0] > 0 && binds[1] > 0); /* both sets bind somewhere */
  assert_true(r.requirement[MINACCT] == r.minimum[MINACCT] &&
              r.minimum[MINACCT] > r.unified[MINACCT]);
  assert_true(r.requirement[NOTELIG] == r.siloed[NOTELIG] && r.diversification[NOTELIG] > 0.0);
  assert_true(r.diversification[ONESILO] == 0.0 && r.requirement[ONESILO] == r.unified[ONESILO]);
  assert_true(r.requirement[EMPTY] == 0.0 && r.siloed[EMPTY] == 0.0);
  xm_run_result_free(&r);
}

/* ---- currencies (METHODOLOGY.md sections 2.1-2.3) --------------------------
 * A second book: factors BTC, EURUSD, SX5E, BTC.iv (logvol); /fx BTC -> BTC,
 * EUR -> EURUSD; accounts in USD, BTC and EUR; one scenario that moves BTC by
 * -10%, EURUSD by -5% and SX5E by -2%, measure worst. Every loss below is
 * worked out by hand from the spec. */
enum { C_INV, C_SPOT, C_PERP, C_FESX, C_IOPT, C_N };
static char *c_factor[] = {"BTC", "EURUSD", "SX5E", "BTC.iv"};
static int32_t c_kind[] = {XM_FACTOR_PRICE, XM_FACTOR_PRICE, XM_FACTOR_PRICE, XM_FACTOR_LOGVOL};
static double c_level[] = {50000.0, 1.1, 5000.0, 0.6};
static char *c_silo[] = {"crypto", "futures"};
static char *c_inst_id[] = {"BTC-INV", "BTC", "BTC-PERP", "FESX", "BTC-C60K"};
static int32_t c_type[] = {XM_INVERSE_FUTURE, XM_SPOT, XM_PERPETUAL, XM_FUTURE, XM_INVERSE_OPTION};
static int32_t c_isilo[] = {0, 0, 0, 1, 0};
static int32_t c_und[] = {0, 0, 0, 2, 0};
static int32_t c_vf[] = {-1, -1, -1, -1, 3};
static double c_strike[] = {0, 0, 0, 0, 60000}, c_expiry[] = {0.25, 0, 0, 0.25, 0.25};
static int32_t c_call[] = {0, 0, 0, 0, 1};
static double c_iv[] = {0, 0, 0, 0, 0.6}, c_rate[] = {0, 0, 0, 0, 0.0}, c_div[] = {0, 0, 0, 0, 0};
static double c_mult[] = {10.0, 1.0, 0.5, 10.0, 1.0};
static char *c_icur[] = {"BTC", "USD", "USD", "EUR", "BTC"};
static double c_fund[] = {0, 0, 0.1095, 0, 0};
static char *c_acct[] = {"USD-HEDGE", "BTC-HEDGE", "EUR-FESX", "USD-PERP-SHORT"};
static int32_t c_cross[] = {1, 1, 1, 1};
static char *c_acur[] = {"USD", "BTC", "EUR", "USD"};
static char *c_fxcur[] = {"BTC", "EUR"};
static int32_t c_fxf[] = {0, 1};
/* USD-HEDGE: +100 inverse futures, +0.02 BTC spot, +1 perpetual (long funding),
 * +1 FESX; BTC-HEDGE: +100 inverse futures, -2 inverse calls; EUR-FESX: +1
 * FESX; USD-PERP-SHORT: -1 perpetual, -2 inverse calls. */
static int32_t c_pa[] = {0, 0, 0, 0, 1, 1, 2, 3, 3};
static int32_t c_pi[] = {C_INV, C_SPOT, C_PERP, C_FESX, C_INV, C_IOPT, C_FESX, C_PERP, C_IOPT};
static double c_pq[] = {100, 0.02, 1, 1, 100, -2, 1, -1, -2};
static char *c_sfac[] = {"BTC", "EURUSD", "SX5E"};
static double c_shock[] = {-0.1, -0.05, -0.02};
static char *c_slab[] = {"down"};

/* The currencies book: accounts USD, BTC, EUR, USD. */
static xm_portfolio c_book(void) {
  xm_portfolio cb = {.valuation_date = "2024-06-28",
                     .currency = "USD",
                     .n_factors = 4,
                     .factor_name = c_factor,
                     .factor_kind = c_kind,
                     .factor_level = c_level,
                     .n_silos = 2,
                     .silo_name = c_silo,
                     .n_instruments = C_N,
                     .inst_id = c_inst_id,
                     .inst_type = c_type,
                     .inst_silo = c_isilo,
                     .inst_underlying = c_und,
                     .inst_vol_factor = c_vf,
                     .inst_strike = c_strike,
                     .inst_expiry = c_expiry,
                     .inst_call = c_call,
                     .inst_implied_vol = c_iv,
                     .inst_rate = c_rate,
                     .inst_dividend_yield = c_div,
                     .inst_multiplier = c_mult,
                     .inst_currency = c_icur,
                     .inst_funding_rate = c_fund,
                     .n_accounts = 4,
                     .account_id = c_acct,
                     .account_cross_margin = c_cross,
                     .account_currency = c_acur,
                     .n_fx = 2,
                     .fx_currency = c_fxcur,
                     .fx_factor = c_fxf,
                     .n_positions = 9,
                     .pos_account = c_pa,
                     .pos_instrument = c_pi,
                     .pos_quantity = c_pq};
  return cb;
}

static void currencies(void **state) {
  (void)state;
  xm_portfolio cb = c_book();
  xm_scenario_set one = {"down", 1, 3, c_sfac, c_shock, c_slab, NULL, XM_MEASURE_WORST, NAN};
  xm_scenario_file sf = {.n_sets = 1, .sets = &one};
  xm_diag d = {0};
  xm_status vst = xm_portfolio_validate(&cb, &d);
  for (size_t k = 0; k < d.shown; k++)
    print_message("%s\n", d.msg[k]);
  assert_int_equal(vst, XM_OK);
  xm_diag_free(&d);

  /* the plan: a row per (instrument, account currency) held; classes in order */
  xm__sets sets;
  xm__plan plan;
  char notes[1024] = "";
  assert_int_equal(
      xm__sets_build(ctx_free, &cb, &sf, &cfg_ready, NULL, 0, &sets, notes, sizeof notes), XM_OK);
  assert_int_equal(sets.F, 4); /* BTC, EURUSD (the EUR account, FESX), SX5E, BTC.iv */
  assert_int_equal(xm__plan_build(ctx_free, &cb, &sets, 0, &plan), XM_OK);
  assert_int_equal(plan.n_blocks, 1);
  const xm__block *bk = &plan.blocks[0];
  int64_t n = bk->n_inst;
  /* INV x {USD, BTC}, SPOT, PERP, FESX x {USD, EUR}, IOPT x {BTC, USD}; each
   * class padded to 8 rows */
  assert_int_equal(real_rows(bk), 8);
  assert_int_equal(n, 16);
  assert_int_equal(bk->cls[1], 8);  /* 6 linear rows and 2 copies */
  assert_int_equal(bk->cls[2], 8);  /* no Black row on a vol factor */
  assert_int_equal(bk->cls[3], 16); /* the inverse calls: logvol, 2 and 6 copies */
  for (int64_t j = 0; j < n; j++) {
    int32_t i = bk->inst_row[j];
    double r0 = bk->instd[XM_ID_R0 * n + j], minw = bk->instd[XM_ID_MINW * n + j];
    int fxc = bk->insti[XM_II_FXC * n + j], fxb = bk->insti[XM_II_FXB * n + j];
    if (i == C_INV && fxc == -1 && fxb == -1) /* in the BTC account: coin to coin */
      assert_true(r0 == 1.0);
    else if (i == C_INV)
      assert_true(r0 == 50000.0 && fxc == 0 && fxb == -1);
    if (i == C_FESX && fxb == 1) /* EUR in a EUR account */
      fail_msg("a EUR future in a EUR account has no rate move");
    if (i == C_FESX && fxc == 1)
      assert_true(fabs(r0 - 1.1) < 1e-15);
    if (i == C_IOPT)
      assert_true(minw == (fxb == -1 && fxc == 0 ? 1.0 : 1.0 / 50000.0));
    if (i == C_SPOT || i == C_PERP)
      assert_true(r0 == 1.0 && fxc == -1 && fxb == -1 && minw == 0.0);
  }
  xm__plan_free(&plan);
  xm__sets_free(&sets);

  /* the losses, by hand: e = exp(-0.1), F1 = 50000 e */
  xm_run_result r;
  assert_int_equal(xm_run(ctx_free, &cb, &sf, &cfg_ready, NULL, &r), XM_OK);
  double e = exp(-0.1), F0 = 50000.0, F1 = F0 * e, dt = 2.0 / 252.0;
  double inv_coin = 10.0 * (1.0 / F1 - 1.0 / F0);              /* a long's coin loss per contract */
  double fesx = 10.0 * 5000.0 * (1.0 - exp(-0.02));            /* EUR, settled */
  double perp = 0.5 * F0 * (1.0 - e) + 0.1095 * 0.5 * F0 * dt; /* a long's, with funding */
  double usd = 100.0 * inv_coin * F1 + 0.02 * F0 * (1.0 - e) + perp + fesx * 1.1 * exp(-0.05);
  double scale = 100.0 * 10.0 + 0.02 * F0 + 0.5 * F0 + fesx * 1.1;
  assert_true(fabs(r.unified[0] - usd) <= 1e-12 * scale);
  assert_true(fabs(r.by_silo[0 * 2 + 1] - fesx * 1.1 * exp(-0.05)) <= 1e-12 * scale);
  assert_true(fabs(r.unified[2] - fesx) <= 1e-12 * fesx); /* EUR account: no rate move */
  /* USD-PERP-SHORT gains everywhere (the short perpetual gains the fall and
   * receives the funding, the short calls lose value) and BTC-HEDGE too (the
   * calls' coin value falls more than 100 inverse futures lose): 0, and the
   * minimum, in each account's currency, is the requirement */
  assert_true(r.unified[3] == 0.0 && r.unified[1] == 0.0 && r.by_silo[1 * 2] == 0.0);
  assert_true(fabs(r.minimum[1] - 0.375 * 2.0 / F0) <= 1e-18);
  assert_true(r.minimum[3] == 0.375 * 2.0);
  assert_true(r.requirement[1] == r.minimum[1] && r.requirement[3] == r.minimum[3]);
  assert_true(r.minimum[0] == 0.0 && r.minimum[2] == 0.0);
  /* the same on an OpenCL device, where there is one, in double and single */
  xm_options o;
  xm_options_default(&o);
  o.device = "opencl";
  xm_ctx *ocl = NULL;
  if (xm_has_opencl() && xm_ctx_create(&ocl, &o) == XM_OK) {
    for (int prec = 0; prec < 2; prec++) {
      xm_config c = cfg_ready;
      c.precision = prec ? XM_SINGLE : XM_DOUBLE;
      xm_run_result q, h;
      assert_int_equal(xm_run(ocl, &cb, &sf, &c, NULL, &q), XM_OK);
      assert_int_equal(xm_run(ctx_free, &cb, &sf, &c, NULL, &h), XM_OK);
      for (int a = 0; a < 4; a++) {
        double tol = prec ? 1e-4 * fabs(r.requirement[a]) + 1e-6 * scale : 1e-12 * scale;
        assert_true(fabs(q.unified[a] - h.unified[a]) <= (prec ? tol : 1e-12 * scale));
        assert_true(fabs(q.requirement[a] - r.requirement[a]) <= tol);
        assert_true(fabs(h.requirement[a] - r.requirement[a]) <= tol);
      }
      xm_run_result_free(&q);
      xm_run_result_free(&h);
    }
  }
  xm_ctx_destroy(ocl);
  xm_run_result_free(&r);
}

/* METHODOLOGY.md section 1: held = a non-zero net quantity. FESX's rows net
 * to zero in both its accounts (1 - 0.25 - 0.75 in row order, 1 - 1): it
 * moves no factor (SX5E drops out of the sets), gets no plan row, and the
 * losses are the currencies book's without it. */
static int32_t z_pa[] = {0, 0, 0, 0, 1, 1, 2, 3, 3, 0, 2, 0};
static int32_t z_pi[] = {C_INV,  C_SPOT, C_PERP, C_FESX, C_INV,  C_IOPT,
                         C_FESX, C_PERP, C_IOPT, C_FESX, C_FESX, C_FESX};
static double z_pq[] = {100, 0.02, 1, 1, 100, -2, 1, -1, -2, -0.25, -1, -0.75};
static void net_zero_pairs(void **state) {
  (void)state;
  xm_portfolio zb = c_book();
  zb.n_positions = 12;
  zb.pos_account = z_pa;
  zb.pos_instrument = z_pi;
  zb.pos_quantity = z_pq;
  xm_scenario_set one = {"down", 1, 3, c_sfac, c_shock, c_slab, NULL, XM_MEASURE_WORST, NAN};
  xm_scenario_file sf = {.n_sets = 1, .sets = &one};
  xm__sets sets;
  xm__plan plan;
  char notes[1024] = "";
  assert_int_equal(
      xm__sets_build(ctx_free, &zb, &sf, &cfg_ready, NULL, 0, &sets, notes, sizeof notes), XM_OK);
  assert_int_equal(sets.F, 3); /* BTC, EURUSD (the EUR account's currency), BTC.iv */
  for (int64_t f = 0; f < sets.F; f++)
    assert_string_not_equal(zb.factor_name[sets.used[f]], "SX5E");
  assert_int_equal(xm__plan_build(ctx_free, &zb, &sets, 0, &plan), XM_OK);
  assert_int_equal(real_rows(&plan.blocks[0]), 6); /* the currencies book's 8 less FESX x 2 */
  xm__plan_free(&plan);
  xm__sets_free(&sets);
  xm_run_result r;
  assert_int_equal(xm_run(ctx_free, &zb, &sf, &cfg_ready, NULL, &r), XM_OK);
  double e = exp(-0.1), F0 = 50000.0, F1 = F0 * e, dt = 2.0 / 252.0;
  double inv_coin = 10.0 * (1.0 / F1 - 1.0 / F0);
  double perp = 0.5 * F0 * (1.0 - e) + 0.1095 * 0.5 * F0 * dt;
  double usd = 100.0 * inv_coin * F1 + 0.02 * F0 * (1.0 - e) + perp;
  assert_true(fabs(r.unified[0] - usd) <= 1e-12 * (1000.0 + 0.52 * F0));
  assert_true(r.by_silo[0 * 2 + 1] == 0.0 && r.unified[2] == 0.0 && r.requirement[2] == 0.0);
  xm_run_result_free(&r);
}

/* ---- incremental (what-if) margin ---------------------------------------- */

/* One account's row of two run results (a what-if's A = 1 against a full
 * run's row a): every output to 1e-12 of the account's scale. */
static void same_row(const xm_run_result *w, const xm_run_result *f, int a) {
  int64_t G = f->G, K = f->K;
  assert_true(w->A == 1 && w->G == G && w->K == K);
  double sc = fabs(f->siloed[a]) + fabs(f->unified[a]) + 1.0, worst = 0.0;
  const double *pw[] = {w->requirement,    w->unified,   w->siloed,       w->minimum,
                        w->cross_margined, w->liquidity, w->hedge_credit, w->diversification};
  const double *pf[] = {f->requirement + a,  f->unified + a,        f->siloed + a,
                        f->minimum + a,      f->cross_margined + a, f->liquidity + a,
                        f->hedge_credit + a, f->diversification + a};
  for (size_t j = 0; j < sizeof pw / sizeof pw[0]; j++)
    worst = fmax(worst, fabs(pw[j][0] - pf[j][0]));
  for (int64_t x = 0; x < K; x++)
    worst = fmax(worst, fabs(w->by_set[x] - f->by_set[a * K + x]));
  for (int64_t g = 0; g < G; g++)
    worst = fmax(worst, fmax(fabs(w->by_silo[g] - f->by_silo[a * G + g]),
                             fabs(w->attribution[g] - f->attribution[a * G + g])));
  assert_int_equal(w->binding[0], f->binding[a]);
  assert_int_equal(w->minimum_binds[0], f->minimum_binds[a]);
  if (worst > 1e-12 * sc)
    print_message("account %d: what-if differs by %.3g (scale %.3g)\n", a, worst, sc);
  assert_true(worst <= 1e-12 * sc);
}

/* A what-if equals the full run of the book with the trades added (account
 * D-OPT buys EQ_SPOT and sells CL_FUT, instruments others hold; C-NOTELIG
 * closes its EQ_P70), with Monte Carlo drawn once at the prepare; no trade
 * equals the book's own row; a first holding of SILVER (nobody holds it: the
 * run would move one factor more, every account's draws change) and bad
 * trades are refused. */
static void whatif_on(xm_ctx *ctx) {
  xm_prepared *p = NULL;
  assert_int_equal(xm_prepare(ctx, &book, &scen, &cfg_full, &p), XM_OK);
  xm_run_result base, w, f;
  assert_int_equal(xm_run(ctx, &book, &scen, &cfg_full, NULL, &base), XM_OK);
  for (int a = 0; a < N_ACCT; a++) {
    assert_int_equal(xm_whatif(p, a, NULL, 0, &w), XM_OK);
    same_row(&w, &base, a);
    xm_run_result_free(&w);
  }
  static const struct {
    int32_t acct;
    xm_trade t[2];
    int n;
  } cases[] = {{3, {{EQS, 5.0}, {CLF, -2.0}}, 2}, {2, {{EQP, -1.0}}, 1}, {6, {{GCF, 1.5}}, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int32_t pa[N_POS + 2], pi[N_POS + 2];
    double pq[N_POS + 2];
    memcpy(pa, pos_acct, sizeof pos_acct), memcpy(pi, pos_inst, sizeof pos_inst);
    memcpy(pq, pos_qty, sizeof pos_qty);
    for (int t = 0; t < cases[c].n; t++)
      pa[N_POS + t] = cases[c].acct, pi[N_POS + t] = cases[c].t[t].instrument,
                 pq[N_POS + t] = cases[c].t[t].quantity;
    xm_portfolio mod = book;
    mod.n_positions = N_POS + cases[c].n;
    mod.pos_account = pa, mod.pos_instrument = pi, mod.pos_quantity = pq;
    assert_int_equal(xm_run(ctx, &mod, &scen, &cfg_full, NULL, &f), XM_OK);
    assert_int_equal(xm_whatif(p, cases[c].acct, cases[c].t, cases[c].n, &w), XM_OK);
    same_row(&w, &f, cases[c].acct);
    assert_true(w.requirement[0] != base.requirement[cases[c].acct]); /* the trades count */
    xm_run_result_free(&w);
    xm_run_result_free(&f);
  }
  /* the contributions (Euler, by the binding set's tail) add up to its
   * measure; F-ONESILO's one net position (GC_FUT -10 + 4) is all of it */
  for (int a = 0; a < N_ACCT; a++) {
    xm_contribution *c = NULL;
    int64_t nc = -1;
    xm_trade buy = {EQS, 3.0};
    assert_int_equal(xm_whatif_contributions(p, a, a == 3 ? &buy : NULL, a == 3, &c, &nc), XM_OK);
    assert_int_equal(xm_whatif(p, a, a == 3 ? &buy : NULL, a == 3, &w), XM_OK);
    double sum = 0.0, m = w.by_set[w.binding[0]];
    for (int64_t q = 0; q < nc; q++)
      sum += c[q].contribution;
    if (m > 0.0)
      assert_true(fabs(sum - m) <= 1e-12 * (fabs(m) + 1.0));
    if (a == ONESILO)
      assert_true(nc == 1 && c[0].instrument == GCF && c[0].quantity == -6.0 &&
                  fabs(c[0].contribution - m) <= 1e-12 * fabs(m));
    if (a == EMPTY)
      assert_int_equal(nc, 0);
    free(c);
    xm_run_result_free(&w);
  }
  /* a trade that closes a dominant position (1e12 EQ_SPOT more on account 1,
   * then sold): the account's row without it, as the full run nets it away,
   * not the kept losses' rounding of it (a run of the account, not the
   * increment) */
  {
    int32_t pa[N_POS + 1], pi[N_POS + 1];
    double pq[N_POS + 1];
    memcpy(pa, pos_acct, sizeof pos_acct), memcpy(pi, pos_inst, sizeof pos_inst);
    memcpy(pq, pos_qty, sizeof pos_qty);
    pa[N_POS] = 1, pi[N_POS] = EQS, pq[N_POS] = 1e12;
    xm_portfolio big = book;
    big.n_positions = N_POS + 1;
    big.pos_account = pa, big.pos_instrument = pi, big.pos_quantity = pq;
    xm_prepared *pb = NULL;
    xm_trade close = {EQS, -1e12};
    assert_int_equal(xm_prepare(ctx, &big, &scen, &cfg_full, &pb), XM_OK);
    assert_int_equal(xm_whatif(pb, 1, NULL, 0, &w), XM_OK); /* its losses kept */
    xm_run_result_free(&w);
    assert_int_equal(xm_whatif(pb, 1, &close, 1, &w), XM_OK);
    same_row(&w, &base, 1);
    xm_run_result_free(&w);
    xm_prepared_free(pb);
  }
  xm_trade silver = {SIS, 10.0}, bad = {N_INST, 1.0}, nan_q = {EQS, NAN};
  assert_int_equal(xm_whatif(p, 0, &silver, 1, &w), XM_ECONFIG);
  assert_non_null(strstr(xm_ctx_last_error(ctx), "SILVER"));
  xm_run_result_free(&w);
  assert_int_equal(xm_whatif(p, 0, &bad, 1, &w), XM_EINVAL);
  assert_int_equal(xm_whatif(p, 0, &nan_q, 1, &w), XM_EINVAL);
  assert_int_equal(xm_whatif(p, N_ACCT, NULL, 0, &w), XM_EINVAL);
  xm_run_result_free(&w);
  xm_run_result_free(&base);
  xm_prepared_free(p);
}
static void whatif_equals_full_run(void **state) {
  (void)state;
  whatif_on(ctx_free);
  xm_options o; /* and on an OpenCL device, where there is one (its own draws) */
  xm_options_default(&o);
  o.device = "opencl";
  xm_ctx *ocl = NULL;
  if (xm_has_opencl() && xm_ctx_create(&ocl, &o) == XM_OK)
    whatif_on(ocl);
  else
    print_message("what-if on OpenCL: no device here\n");
  xm_ctx_destroy(ocl);
}

/* The kept losses are a cache: with --mem-limit 1M (a quarter of it for
 * them: fewer accounts than the book's) a round of what-ifs over every
 * account, twice, evicts and makes them again, and each what-if is the same
 * bits every time it is asked and the same as without the limit (1e-12);
 * the same trades asked twice give the same bits. */
static void whatif_kept_evicted(void **state) {
  (void)state;
  xm_options o;
  xm_options_default(&o);
  o.device = "cpu";
  o.mem_limit = 1u << 20;
  xm_ctx *small = NULL;
  assert_int_equal(xm_ctx_create(&small, &o), XM_OK);
  xm_prepared *p = NULL, *q = NULL;
  assert_int_equal(xm_prepare(small, &book, &scen, &cfg_full, &p), XM_OK);
  assert_int_equal(xm_prepare(ctx_free, &book, &scen, &cfg_full, &q), XM_OK);
  xm_run_result first[N_ACCT], w, u;
  xm_trade t = {EQS, 2.0};
  int64_t kept_bytes = 0;
  for (int round = 0; round < 2; round++)
    for (int a = 0; a < N_ACCT; a++) {
      assert_int_equal(xm_whatif(p, a, &t, 1, round ? &w : &first[a]), XM_OK);
      if (round == 0) {
        for (int64_t x = 0; x < first[a].K; x++)
          kept_bytes += a == 0 ? first[a].sets[x].S * (first[a].G + 1) * 8 : 0;
        assert_int_equal(xm_whatif(q, a, &t, 1, &u), XM_OK);
        same_row(&first[a], &u, 0);
        xm_run_result_free(&u);
        continue;
      }
      assert_memory_equal(w.requirement, first[a].requirement, sizeof(double));
      assert_memory_equal(w.by_set, first[a].by_set, (size_t)w.K * sizeof(double));
      assert_memory_equal(w.by_silo, first[a].by_silo, (size_t)w.G * sizeof(double));
      xm_run_result_free(&w);
    }
  /* fewer accounts than the book's fit the cache: the second round evicted */
  assert_true(kept_bytes > 0 && (int64_t)(o.mem_limit / 4) / kept_bytes < N_ACCT);
  for (int a = 0; a < N_ACCT; a++)
    xm_run_result_free(&first[a]);
  xm_prepared_free(q);
  xm_prepared_free(p);
  xm_ctx_destroy(small);
}

/* xm_run_opts.account_begin/end (how the MPI build splits a book): every
 * range's results are the whole run's rows bit for bit, --save-pnl's columns
 * too; an empty range runs nothing, a range outside the book is refused. */
static void same_bits(const void *a, const void *b, size_t n, const char *what, int64_t a0) {
  if (n && memcmp(a, b, n) != 0)
    fail_msg("accounts from %lld: %s differs from the whole run's", (long long)a0, what);
}

static void ranges_on(xm_ctx *ctx) {
  xm_run_opts o = {1, 0, NULL, NULL, 0, 0, 0, 0, NULL};
  xm_run_result whole, r;
  assert_int_equal(xm_run(ctx, &book, &scen, &cfg_full, &o, &whole), XM_OK);
  const int64_t G = whole.G, K = whole.K;
  static const int64_t cuts[][2] = {{0, 1}, {1, 4}, {4, N_ACCT}, {2, 3}, {0, N_ACCT}, {5, 5}};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    int64_t a0 = cuts[c][0], n = cuts[c][1] - a0;
    o.account_begin = a0, o.account_end = cuts[c][1];
    assert_int_equal(xm_run(ctx, &book, &scen, &cfg_full, &o, &r), XM_OK);
    assert_int_equal(r.A, n);
    assert_int_equal(r.account_begin, a0);
    assert_int_equal(r.K, K);
#define XM_T_SAME(field, w)                                                                        \
  same_bits(r.field, whole.field + a0 * (w), (size_t)(n * (w)) * sizeof *r.field, #field, a0)
    XM_T_SAME(requirement, 1), XM_T_SAME(unified, 1), XM_T_SAME(siloed, 1);
    XM_T_SAME(diversification, 1), XM_T_SAME(minimum, 1), XM_T_SAME(binding, 1);
    XM_T_SAME(liquidity, 1), XM_T_SAME(hedge_credit, 1), XM_T_SAME(cross_margined, 1);
    XM_T_SAME(minimum_binds, 1), XM_T_SAME(to_reporting, 1), XM_T_SAME(by_set, K);
    XM_T_SAME(by_silo, G), XM_T_SAME(attribution, G), XM_T_SAME(liquidity_by_silo, G);
    XM_T_SAME(requirement_by_silo, G);
#undef XM_T_SAME
    for (int64_t x = 0; x < K; x++)
      for (int64_t s = 0; s < r.sets[x].S; s++)
        same_bits(r.sets[x].pnl + s * n, whole.sets[x].pnl + s * whole.A + a0,
                  (size_t)n * sizeof(float), "a pnl row", a0);
    xm_run_result_free(&r);
  }
  o.account_begin = 2, o.account_end = N_ACCT + 1;
  assert_int_equal(xm_run(ctx, &book, &scen, &cfg_full, &o, &r), XM_EINVAL);
  xm_run_result_free(&r);
  o.account_begin = 3, o.account_end = 2;
  assert_int_equal(xm_run(ctx, &book, &scen, &cfg_full, &o, &r), XM_EINVAL);
  xm_run_result_free(&r);
  xm_run_result_free(&whole);
}

static void account_ranges_bitwise(void **state) {
  (void)state;
  ranges_on(ctx_free);
  ranges_on(ctx_mid); /* other blocks and tiles */
  xm_options o;
  xm_options_default(&o);
  o.device = "opencl";
  xm_ctx *ocl = NULL;
  if (xm_has_opencl() && xm_ctx_create(&ocl, &o) == XM_OK)
    ranges_on(ocl);
  else
    print_message("account ranges on OpenCL: no device here\n");
  xm_ctx_destroy(ocl);
}

/* ---- faults -------------------------------------------------------------- */

/* Every allocation (alloc or view) in turn, then the first and the last
 * revalue, fails with XM_ERESOURCE: xm_run returns it with the backend's
 * message, every buffer is released and end is called (fails on a status
 * swallowed or replaced, or a leak on any cleanup path; ASan sees the host
 * side). */
static void faults(void **state) {
  (void)state;
  xm_run_result r;
  mock_install(ctx_tight, -1, 0);
  assert_int_equal(xm_run(ctx_tight, &book, &scen, &cfg_full, NULL, &r), XM_OK);
  mock_remove(ctx_tight);
  xm_run_result_free(&r);
  int n_alloc = 0, n_reval = 0;
  for (int i = 0; i < mk.n; i++)
    n_alloc += mk.ev[i].op == OP_ALLOC || mk.ev[i].op == OP_VIEW,
        n_reval += mk.ev[i].op == OP_REVALUE;
  int tries[][2] = {{OP_REVALUE, 1}, {OP_REVALUE, n_reval}};
  for (int t = -n_alloc; t < 2; t++) {
    int op = t < 0 ? OP_ALLOC : tries[t][0], at = t < 0 ? n_alloc + t + 1 : tries[t][1];
    mock_install(ctx_tight, op, at);
    xm_status st = xm_run(ctx_tight, &book, &scen, &cfg_full, NULL, &r);
    mock_remove(ctx_tight);
    if (st != XM_ERESOURCE || !strstr(xm_ctx_last_error(ctx_tight), "mock: injected"))
      print_message("%s call %d: %s, '%s'\n", op_name[op], at, xm_status_name(st),
                    xm_ctx_last_error(ctx_tight));
    assert_int_equal(st, XM_ERESOURCE);
    assert_non_null(strstr(xm_ctx_last_error(ctx_tight), "mock: injected"));
    assert_int_equal(mk.calls, at);
    check_resources();
    assert_null(r.requirement); /* no results from a failed run */
    xm_run_result_free(&r);
  }
}

/* ---- the backtest (host/backtest.c, METHODOLOGY.md section 7) ---------- */

/* 6 days (rows 73..78 of 80), every set, the stressed period blended at 0.3
 * from row `sp_row` on. */
static void bt_config(xm_config *c, int sp_row) {
  *c = cfg_full;
  c->backtest.days = 6;
  c->backtest.min_history = 60;
  c->backtest.mc_scenarios = 300;
  snprintf(c->apc.stressed_start, sizeof c->apc.stressed_start, "%s", h_date[sp_row - 1]);
  snprintf(c->apc.stressed_end, sizeof c->apc.stressed_end, "%s", h_date[T_H - 1]);
  c->apc.stressed_weight = 0.3;
}

static int near(double a, double b, double rel) {
  return fabs(a - b) <= rel * fmax(1.0, fmax(fabs(a), fabs(b)));
}

/* Day d of a backtest is xmargin run on the history truncated at d, bit for
 * bit (the batch's plan and loop are not the run's); the realised loss is the
 * loss of the raw move of rows d+1..d+h as a ready-made set of one scenario
 * (measure worst: by_set = max(0, L), attribution = each silo's L); a day
 * before the stressed period has the margins of a run without it. Fails on
 * a day off by one, a set of another day combined, an unfiltered or shifted
 * move, a blend applied to an empty period. */
static void backtest_days_are_runs(void **state) {
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    xm_config c;
    bt_config(&c, pass ? 76 : 61); /* pass 1: empty on days 73..75 */
    xm_backtest_result bt;
    xm_status st = xm_backtest(ctx_free, &book, &scen, &c, NULL, &bt);
    if (st != XM_OK)
      print_message("backtest: %s\n", xm_ctx_last_error(ctx_free));
    assert_int_equal(st, XM_OK);
    assert_true(bt.N == 6 && bt.first_day == 73 && bt.n_tests == 3 && bt.K == 6);
    assert_true(bt.test_day[1] && bt.test_day[3] && bt.test_day[5] && !bt.test_day[0]);
    assert_string_equal(bt.day[0], h_date[72]);
    assert_string_equal(bt.realised_end[5], h_date[79]);
    int64_t A = bt.A, G = bt.G;
    for (int64_t j = 0; j < bt.N; j++) {
      int64_t d = bt.first_day + j;
      xm_config cr = c;
      cr.montecarlo.scenarios = c.backtest.mc_scenarios;
      if (pass && d < 76)
        cr.apc.stressed_start[0] = cr.apc.stressed_end[0] = '\0', cr.apc.stressed_weight = 0.0;
      xm_scenario_file sd = scen;
      sd.n_days = d;
      xm_run_result r;
      assert_int_equal(xm_run(ctx_free, &book, &sd, &cr, NULL, &r), XM_OK);
      /* the realised move as a set of one scenario */
      double mv[F_H] = {0};
      for (int64_t u = d; u < d + 2; u++)
        for (int f = 0; f < F_H; f++)
          mv[f] += h_return[u * F_H + f];
      char *lab[] = {"realised"};
      xm_scenario_set one = {"realised", 1, F_H, factor_name, mv, lab, NULL, XM_MEASURE_WORST, NAN};
      xm_scenario_file sr = {NULL, 0, 0, NULL, NULL, NULL, 1, &one};
      xm_config cz = cfg_ready;
      xm_run_result z;
      assert_int_equal(xm_run(ctx_free, &book, &sr, &cz, NULL, &z), XM_OK);
      double total = 0.0;
      for (int64_t a = 0; a < A; a++) {
        assert_true(bt.margin[XM_BT_REQUIREMENT][j * A + a] == r.requirement[a]);
        assert_true(bt.margin[XM_BT_UNIFIED][j * A + a] == r.unified[a]);
        assert_true(bt.margin[XM_BT_SILOED][j * A + a] == r.siloed[a]);
        assert_true(bt.margin[XM_BT_CROSS_MARGINED][j * A + a] == r.cross_margined[a]);
        /* without the period, the ready-made sets are one row earlier */
        int nosp = pass && d < 76;
        assert_int_equal(bt.binding[j * A + a], r.binding[a] + (nosp && r.binding[a] >= 3));
        total += r.requirement[a];
        double L = bt.realised[j * A + a], sum = 0.0;
        assert_true(near(z.by_set[a], fmax(L, 0.0), 1e-12));
        for (int64_t g = 0; g < G; g++) {
          assert_true(bt.silo_margin[(j * A + a) * G + g] == r.by_silo[a * G + g]);
          double Lg = bt.realised_by_silo[(j * A + a) * G + g];
          assert_true(near(z.attribution[a * G + g], Lg, 1e-12));
          sum += Lg;
        }
        assert_true(near(sum, L, 1e-12));
      }
      assert_true(near(bt.total_margin[XM_BT_REQUIREMENT][j], total, 1e-15));
      xm_run_result_free(&r);
      xm_run_result_free(&z);
    }
    /* the counts over all days, per account */
    for (int64_t a = 0; a < A; a++) {
      int64_t n = 0;
      for (int64_t j = 0; j < bt.N; j++)
        n += bt.realised[j * A + a] > bt.margin[XM_BT_REQUIREMENT][j * A + a];
      assert_int_equal(bt.stats[XM_BT_REQUIREMENT][a].exceptions_all, n);
    }
    /* G-EMPTY holds nothing: no silo statistics; its account ones exist */
    for (int64_t g = 0; g < G; g++) {
      assert_int_equal(bt.silo_stats[EMPTY * G + g].zone, -1);
      assert_true(isnan(bt.silo_stats[EMPTY * G + g].kupiec_lr));
    }
    assert_true(bt.stats[XM_BT_REQUIREMENT][EMPTY].zone >= 0);
    xm_backtest_result_free(&bt);
  }
}

/* The stressed period (METHODOLOGY.md section 1): at w = 0 a set like any
 * other, the raw h-day sums of its window ends (set 3, after the Monte Carlo
 * ones); at w > 0 the historical measure becomes (1 - w) R_hist + w R_sp for
 * the account, each silo and the attribution, and the period never binds.
 * Fails on a filtered, shifted or lookback-limited period, a blend of the
 * wrong sets or weights, a blended set left in the max. */
static void stressed_period_blend(void **state) {
  (void)state;
  xm_config c0;
  bt_config(&c0, 61); /* rows 61..80 */
  c0.apc.stressed_weight = 0.0;
  c0.historical.lookback = 10; /* does not bound the period */
  xm_config c1 = c0;
  c1.apc.stressed_weight = 0.3;
  xm_run_result r0, r1;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &c0, NULL, &r0), XM_OK);
  assert_int_equal(xm_run(ctx_free, &book, &scen, &c1, NULL, &r1), XM_OK);
  assert_int_equal(r0.K, 6);
  assert_string_equal(r0.sets[3].name, "stressed_period");
  assert_int_equal(r0.sets[3].S, 20); /* window ends 61..80 (1-based), the lookback aside */
  assert_string_equal(r0.sets[3].labels[0], h_date[60]);
  int64_t A = r0.A, K = r0.K;
  for (int64_t a = 0; a < A; a++) {
    const double *b0 = r0.by_set + a * K, *b1 = r1.by_set + a * K;
    assert_true(near(b1[0], 0.7 * b0[0] + 0.3 * b0[3], 1e-14));
    assert_true(b1[3] == b0[3] && b1[1] == b0[1] && b1[4] == b0[4]);
    assert_true(r1.binding[a] != 3);
    double U = 0.0;
    for (int64_t x = 0; x < K; x++)
      U = x != 3 && b1[x] > U ? b1[x] : U;
    assert_true(near(r1.unified[a] - r1.liquidity[a], U, 1e-14));
  }
  /* the period's shocks: the raw sums, by hand for window end 61 (rows 60, 61) */
  double x0 = h_return[59 * F_H + 0] + h_return[60 * F_H + 0];
  xm_run_opts keep = {0, 1, NULL, NULL, 0, 0, 0, 0, NULL};
  xm_run_result rk;
  assert_int_equal(xm_run(ctx_free, &book, &scen, &c0, &keep, &rk), XM_OK);
  assert_true(rk.sets[3].shock[0] == x0); /* EQ is the book's first factor */
  xm_run_result_free(&r0);
  xm_run_result_free(&r1);
  xm_run_result_free(&rk);
}

/* A backtest under a tight memory budget (blocks, shocks made per tile) gives
 * the same series as with none. */
static void backtest_tight_equals_unlimited(void **state) {
  (void)state;
  xm_config c;
  bt_config(&c, 61);
  xm_backtest_result b0, b1;
  assert_int_equal(xm_backtest(ctx_free, &book, &scen, &c, NULL, &b0), XM_OK);
  assert_int_equal(xm_backtest(ctx_tight, &book, &scen, &c, NULL, &b1), XM_OK);
  int64_t n = b0.N * b0.A;
  for (int m = 0; m < XM_BT_NMARGIN; m++)
    assert_memory_equal(b0.margin[m], b1.margin[m], (size_t)n * sizeof(double));
  assert_memory_equal(b0.realised, b1.realised, (size_t)n * sizeof(double));
  assert_memory_equal(b0.silo_margin, b1.silo_margin, (size_t)(n * b0.G) * sizeof(double));
  assert_memory_equal(b0.binding, b1.binding, (size_t)n * sizeof(int32_t));
  xm_backtest_result_free(&b0);
  xm_backtest_result_free(&b1);
}

/* Batches of 2 days (xm_options.tuning.bt_days): on an OpenCL device each
 * next batch's sets are made on a thread while the device evaluates this one
 * (host/backtest.c, xm__bt_ahead), on the cpu backend in turn. Every day is
 * that backend's one-batch backtest bit for bit, and on the device its
 * xmargin run on the history truncated at d too. A day the thread cannot
 * build (the book valued before it: data from the future) fails the
 * backtest with that day's date and the rule, on both. */
static void backtest_batches(void **state) {
  (void)state;
  xm_config c;
  bt_config(&c, 61);
  for (int dev = 0; dev < 2; dev++) {
    xm_options o;
    xm_options_default(&o);
    o.device = dev ? "opencl" : "cpu";
    o.threads = 2;
    xm_ctx *one = NULL, *two = NULL;
    if (dev && (!xm_has_opencl() || xm_ctx_create(&one, &o) != XM_OK)) {
      xm_ctx_destroy(one);
      print_message("backtest_batches: no OpenCL device, the cpu backend only\n");
      break;
    }
    if (!dev)
      assert_int_equal(xm_ctx_create(&one, &o), XM_OK);
    o.tuning.bt_days = 2;
    assert_int_equal(xm_ctx_create(&two, &o), XM_OK);
    xm_backtest_result b1, b2;
    assert_int_equal(xm_backtest(one, &book, &scen, &c, NULL, &b1), XM_OK);
    assert_int_equal(xm_backtest(two, &book, &scen, &c, NULL, &b2), XM_OK);
    int64_t A = b1.A, n = b1.N * A;
    for (int m = 0; m < XM_BT_NMARGIN; m++)
      assert_memory_equal(b1.margin[m], b2.margin[m], (size_t)n * sizeof(double));
    assert_memory_equal(b1.realised, b2.realised, (size_t)n * sizeof(double));
    assert_memory_equal(b1.silo_margin, b2.silo_margin, (size_t)(n * b1.G) * sizeof(double));
    assert_memory_equal(b1.binding, b2.binding, (size_t)n * sizeof(int32_t));
    for (int64_t j = 0; dev && j < b2.N; j++) {
      xm_config cr = c;
      cr.montecarlo.scenarios = c.backtest.mc_scenarios;
      xm_scenario_file sd = scen;
      sd.n_days = b2.first_day + j;
      xm_run_result r;
      assert_int_equal(xm_run(two, &book, &sd, &cr, NULL, &r), XM_OK);
      for (int64_t a = 0; a < A; a++)
        assert_true(b2.margin[XM_BT_REQUIREMENT][j * A + a] == r.requirement[a] &&
                    b2.margin[XM_BT_UNIFIED][j * A + a] == r.unified[a]);
      xm_run_result_free(&r);
    }
    /* valued on day 74's date: days 75.. (the second and third batches) have
     * history after it */
    xm_portfolio early = book;
    snprintf(early.valuation_date, sizeof early.valuation_date, "%s", h_date[73]);
    xm_backtest_result bad;
    assert_int_equal(xm_backtest(two, &early, &scen, &c, NULL, &bad), XM_EFORMAT);
    const char *e = xm_ctx_last_error(two);
    assert_non_null(strstr(e, h_date[74]));
    assert_non_null(strstr(e, "after the valuation_date"));
    xm_backtest_result_free(&bad);
    xm_backtest_result_free(&b1);
    xm_backtest_result_free(&b2);
    xm_ctx_destroy(one);
    xm_ctx_destroy(two);
  }
}

/* xm_run_opts.day_begin/end (how the MPI build splits a backtest's days):
 * each range's days are the whole backtest's rows bit for bit (margins,
 * realised losses, silos, binding sets, the book's totals), the others 0 and
 * no statistics; the ranges' rows put together, xm_backtest_statistics gives
 * the whole backtest's statistics bit for bit. With save_scenarios a range's
 * days keep the whole backtest's shocks and jitter bit for bit (padded with
 * NaN to the range's largest set), the other days NaN. Empty, reversed or too
 * long ranges are refused. */
static void backtest_day_ranges(void **state) {
  (void)state;
  xm_config c;
  bt_config(&c, 61);
  xm_backtest_result whole, part, sum;
  assert_int_equal(xm_backtest(ctx_free, &book, &scen, &c, NULL, &whole), XM_OK);
  const int64_t N = whole.N, A = whole.A, G = whole.G;
  assert_int_equal(xm_backtest(ctx_free, &book, &scen, &c, NULL, &sum), XM_OK);
  static const int64_t cut[] = {0, 1, 4, 6}; /* 6 days: ranges 0..0, 1..3, 4..5 */
  for (int r = 0; r < 3; r++) {
    xm_run_opts o = {0, 0, NULL, NULL, 0, 0, cut[r], cut[r + 1], NULL};
    assert_int_equal(xm_backtest(ctx_mid, &book, &scen, &c, &o, &part), XM_OK);
    assert_int_equal(part.N, N);
    assert_null(part.stats[0]);
    assert_null(part.silo_stats);
    int64_t j0 = cut[r], nj = cut[r + 1] - j0;
#define XM_T_ROWS(field, w)                                                                        \
  do {                                                                                             \
    assert_memory_equal(part.field + j0 * (w), whole.field + j0 * (w),                             \
                        (size_t)(nj * (w)) * sizeof *part.field);                                  \
    memset(sum.field + j0 * (w), 0, (size_t)(nj * (w)) * sizeof *sum.field);                       \
    memcpy(sum.field + j0 * (w), part.field + j0 * (w), (size_t)(nj * (w)) * sizeof *sum.field);   \
  } while (0)
    for (int m = 0; m < XM_BT_NMARGIN; m++) {
      XM_T_ROWS(margin[m], A);
      XM_T_ROWS(total_margin[m], 1);
    }
    XM_T_ROWS(realised, A);
    XM_T_ROWS(total_realised, 1);
    XM_T_ROWS(silo_margin, A * G);
    XM_T_ROWS(realised_by_silo, A * G);
    XM_T_ROWS(binding, A);
#undef XM_T_ROWS
    for (int64_t j = 0; j < N; j++) /* the days not run are 0 */
      if (j < j0 || j >= j0 + nj)
        assert_true(part.realised[j * A] == 0.0 && part.total_margin[0][j] == 0.0);
    xm_backtest_result_free(&part);
  }
  assert_int_equal(xm_backtest_statistics(ctx_free, &book, &scen, &c, &sum), XM_OK);
  for (int m = 0; m < XM_BT_NMARGIN; m++) {
    assert_memory_equal(sum.stats[m], whole.stats[m], (size_t)A * sizeof *sum.stats[m]);
    assert_memory_equal(&sum.total_stats[m], &whole.total_stats[m], sizeof sum.total_stats[m]);
  }
  assert_memory_equal(sum.silo_stats, whole.silo_stats, (size_t)(A * G) * sizeof *sum.silo_stats);
  /* save_scenarios in ranges: each range's rows are the whole's */
  xm_backtest_result saved;
  xm_run_opts so = {0, 1, NULL, NULL, 0, 0, 0, 0, NULL};
  assert_int_equal(xm_backtest(ctx_free, &book, &scen, &c, &so, &saved), XM_OK);
  assert_non_null(saved.shock);
  const int64_t K = saved.K, F = saved.F;
  for (int r = 0; r < 3; r++) {
    xm_run_opts o = {0, 1, NULL, NULL, 0, 0, cut[r], cut[r + 1], NULL};
    assert_int_equal(xm_backtest(ctx_mid, &book, &scen, &c, &o, &part), XM_OK);
    assert_int_equal(part.K, K);
    for (int64_t x = 0; x < K; x++) {
      int64_t Sp = part.shock_S[x], Sw = saved.shock_S[x];
      assert_true(Sp > 0 && Sp <= Sw);
      for (int64_t j = 0; j < N; j++) {
        const double *pr = part.shock[x] + j * Sp * F, *wr = saved.shock[x] + j * Sw * F;
        if (j >= cut[r] && j < cut[r + 1]) {
          assert_memory_equal(pr, wr, (size_t)(Sp * F) * sizeof *pr);
          for (int64_t i = Sp * F; i < Sw * F; i++)
            assert_true(isnan(wr[i]));
          if (saved.delta[x])
            assert_memory_equal(&part.delta[x][j], &saved.delta[x][j], sizeof(double));
        } else {
          for (int64_t i = 0; i < Sp * F; i++)
            assert_true(isnan(pr[i]));
        }
      }
    }
    xm_backtest_result_free(&part);
  }
  xm_backtest_result_free(&saved);
  static const int64_t bad[][3] = {{2, 2, 0}, {3, 1, 0}, {0, 7, 0}, {5, 9, 1}};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    xm_run_opts o = {0, (int)bad[k][2], NULL, NULL, 0, 0, bad[k][0], bad[k][1], NULL};
    assert_int_equal(xm_backtest(ctx_free, &book, &scen, &c, &o, &part), XM_EINVAL);
    xm_backtest_result_free(&part);
  }
  xm_backtest_result_free(&sum);
  xm_backtest_result_free(&whole);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plan_tight),
      cmocka_unit_test(plan_unlimited),
      cmocka_unit_test(plan_impossible),
      cmocka_unit_test(loop_resident),
      cmocka_unit_test(loop_streamed),
      cmocka_unit_test(loop_grouped),
      cmocka_unit_test(tight_equals_unlimited),
      cmocka_unit_test(aggregation_widths),
      cmocka_unit_test(streamed_plan),
      cmocka_unit_test(streamed_equals_unstreamed),
      cmocka_unit_test(streamed_pnl),
      cmocka_unit_test(scenario_ranks_refusals),
      cmocka_unit_test(matches_methodology),
      cmocka_unit_test(currencies),
      cmocka_unit_test(net_zero_pairs),
      cmocka_unit_test(whatif_equals_full_run),
      cmocka_unit_test(whatif_kept_evicted),
      cmocka_unit_test(account_ranges_bitwise),
      cmocka_unit_test(faults),
      cmocka_unit_test(stressed_period_blend),
      cmocka_unit_test(backtest_days_are_runs),
      cmocka_unit_test(backtest_tight_equals_unlimited),
      cmocka_unit_test(backtest_day_ranges),
      cmocka_unit_test(backtest_batches),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
