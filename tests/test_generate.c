/* Tests of datasets/generator/xm_generate.c (xmargin generate): the argument
 * checks, exact sizes, the data contract, determinism, the template mix, and
 * the portable math against the libm. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "xm_generate.h"
#include "xm_io.h"
#include "xm_portable.h"

static xm_gen_params xm_t_params(int64_t a, int64_t i, int64_t n, int64_t f, int64_t t,
                                 uint64_t seed) {
  xm_gen_params p;
  xm_gen_defaults(&p);
  p.accounts = a;
  p.instruments = i;
  p.positions = n;
  p.factors = f;
  p.history_days = t;
  p.seed = seed;
  return p;
}

/* ---- portable math ---- */

static void test_math(void **state) {
  (void)state;
  for (double x = -700.0; x <= 700.0; x += 0.37) {
    double e = exp(x), g = xm_gen_exp(x);
    assert_true(fabs(g - e) <= 4e-16 * e);
  }
  assert_true(xm_gen_exp(0.0) == 1.0);
  for (double x = 1e-300; x < 1e300; x *= 1.7) {
    double l = log(x), g = xm_gen_log(x);
    assert_true(fabs(g - l) <= 4e-16 * fabs(l) + 1e-300);
  }
  assert_true(xm_gen_log(1.0) == 0.0);
  for (double x = -8.0; x <= 8.0; x += 0.01) {
    double c = 0.5 * erfc(-x / sqrt(2.0));
    assert_true(fabs(xm_gen_ncdf(x) - c) < 1e-7);
  }
  for (double p = 1e-12; p < 1.0; p = p < 0.5 ? p * 1.3 : 1.0 - (1.0 - p) / 1.3) {
    double z = xm_gen_ninv(p);
    double c = 0.5 * erfc(-z / sqrt(2.0));
    assert_true(fabs(c - p) <= 1e-7 * (p < 0.5 ? p : 1.0 - p) + 1e-300);
    if (1.0 - p < 1e-12)
      break;
  }
  assert_true(fabs(xm_gen_ninv(0.5)) < 1e-15);
}

/* ---- argument checks ---- */

static void test_check(void **state) {
  (void)state;
  char err[512];
  int64_t m13 = xm_gen_min_instruments(13);
  /* SPY, ESH9, BTC-USD, BTC-USD-PERP, BTC-PERPETUAL, BTC-29MAR19 + 3 roots x 2 */
  assert_int_equal(xm_gen_min_instruments(4), 12);
  /* the demo's 8 linear products, 3 perpetuals/inverse futures per coin, 9 roots
   * and the 2 coins' inverse option roots */
  assert_int_equal(m13, 36);
  assert_int_equal(xm_gen_min_instruments(3), 0);
  assert_true(xm_gen_min_instruments(64) > m13);
  xm_gen_params ok = xm_t_params(5, 40, 30, 13, 30, 1);
  assert_int_equal(xm_gen_check(&ok, err, sizeof err), XM_OK);
  struct {
    xm_gen_params p;
    const char *word;
  } bad[] = {
      {xm_t_params(0, 40, 30, 13, 30, 1), "--accounts"},
      {xm_t_params(-3, 40, 30, 13, 30, 1), "--accounts"},
      {xm_t_params(5, 40, 4, 13, 30, 1), "--positions"},
      {xm_t_params(5, 35, 30, 13, 30, 1), "--instruments"},
      {xm_t_params(5, 40, 30, 3, 30, 1), "--factors"},
      {xm_t_params(5, 40, 30, XM_GEN_MAX_FACTORS + 1, 30, 1), "--factors"},
      {xm_t_params(5, 40, 30, 13, 1, 1), "--history-days"},
      {xm_t_params(5, 40, 30, 13, 0, 1), "--history-days"},
      {xm_t_params(5, 400000, 30, 100000, 5000, 1), "--history-days x --factors"},
      {xm_t_params(5, 40, 30, 13, 30, 1), "--collateral"},
      {xm_t_params(5, 40, 30, 13, 30, 1), "--collateral"},
  };
  bad[9].p.collateral = XM_GEN_COLLATERAL_COUNT;
  bad[10].p.collateral = -1;
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    assert_int_equal(xm_gen_check(&bad[k].p, err, sizeof err), XM_EINVAL);
    assert_non_null(strstr(err, bad[k].word));
    xm_portfolio P;
    xm_scenario_file S;
    assert_int_equal(xm_generate(&bad[k].p, &P, &S, NULL), XM_EINVAL);
  }
  xm_gen_free(NULL, NULL);
  assert_int_equal(xm_gen_collateral_mode("none"), XM_GEN_COLLATERAL_NONE);
  assert_int_equal(xm_gen_collateral_mode("mixed"), XM_GEN_COLLATERAL_MIXED);
  assert_int_equal(xm_gen_collateral_mode("siloed"), XM_GEN_COLLATERAL_SILOED);
  assert_int_equal(xm_gen_collateral_mode("schedule"), -1);
  assert_int_equal(xm_gen_collateral_mode(NULL), -1);
  for (int m = 0; m < XM_GEN_COLLATERAL_COUNT; m++)
    assert_int_equal(xm_gen_collateral_mode(xm_gen_collateral_name(m)), m);
}

/* ---- the data contract, exact sizes ---- */

static int xm_t_cmpstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void xm_t_unique(char **s, int64_t n) {
  char **c = malloc((size_t)n * sizeof *c);
  assert_non_null(c);
  memcpy(c, s, (size_t)n * sizeof *c);
  qsort(c, (size_t)n, sizeof *c, xm_t_cmpstr);
  for (int64_t i = 1; i < n; i++)
    if (strcmp(c[i - 1], c[i]) == 0)
      fail_msg("duplicate id %s", c[i]);
  free(c);
}

static int xm_t_in_fx(const xm_portfolio *P, const char *c) {
  for (int64_t k = 0; k < P->n_fx; k++)
    if (strcmp(P->fx_currency[k], c) == 0)
      return 1;
  return 0;
}

static void xm_t_contract(const xm_gen_params *p, const xm_portfolio *P,
                          const xm_scenario_file *S) {
  assert_int_equal(P->n_factors, p->factors);
  assert_int_equal(P->n_instruments, p->instruments);
  assert_int_equal(P->n_accounts, p->accounts);
  assert_int_equal(P->n_positions, p->positions);
  assert_int_equal(P->n_silos, 3);
  assert_string_equal(P->silo_name[0], "securities");
  assert_string_equal(P->silo_name[1], "futures");
  assert_string_equal(P->silo_name[2], "crypto");
  xm_t_unique(P->factor_name, P->n_factors);
  xm_t_unique(P->inst_id, P->n_instruments);
  xm_t_unique(P->account_id, P->n_accounts);
  for (int64_t f = 0; f < P->n_factors; f++) {
    assert_true(P->factor_kind[f] == XM_FACTOR_PRICE || P->factor_kind[f] == XM_FACTOR_VOL ||
                P->factor_kind[f] == XM_FACTOR_LOGVOL);
    assert_true(isfinite(P->factor_level[f]) && P->factor_level[f] > 0.0);
    if (P->factor_kind[f] != XM_FACTOR_PRICE)
      assert_true(P->factor_level[f] < 2.0);
  }
  /* version 2: /fx, currencies, funding (FORMAT.md section 1) */
  assert_non_null(P->inst_currency);
  assert_non_null(P->inst_funding_rate);
  assert_non_null(P->account_currency);
  assert_true(P->n_fx >= 1); /* BTC at least: F >= 4 holds the BTC price factor */
  xm_t_unique(P->fx_currency, P->n_fx);
  for (int64_t c = 0; c < P->n_fx; c++) {
    assert_true(strcmp(P->fx_currency[c], P->currency) != 0);
    assert_true(strlen(P->fx_currency[c]) >= 1 && strlen(P->fx_currency[c]) < 16);
    assert_true(P->fx_factor[c] >= 0 && P->fx_factor[c] < P->n_factors);
    assert_int_equal(P->factor_kind[P->fx_factor[c]], XM_FACTOR_PRICE);
  }
  for (int64_t i = 0; i < P->n_instruments; i++) {
    int t = P->inst_type[i];
    assert_true(t >= 0 && t < XM_TYPE_COUNT);
    assert_true(P->inst_underlying[i] >= 0 && P->inst_underlying[i] < P->n_factors);
    assert_int_equal(P->factor_kind[P->inst_underlying[i]], XM_FACTOR_PRICE);
    assert_true(P->inst_multiplier[i] > 0.0 && isfinite(P->inst_multiplier[i]));
    assert_true(P->inst_strike[i] > 0.0 && isfinite(P->inst_strike[i]));
    /* EUR rates were negative at the end of 2018 */
    assert_true(P->inst_rate[i] > -0.01 && P->inst_rate[i] < 0.1);
    assert_true(P->inst_dividend_yield[i] >= 0.0);
    if (t == XM_FUTURE || t == XM_FUTURE_OPTION)
      assert_int_equal(P->inst_silo[i], 1);
    else
      assert_true(P->inst_silo[i] == 0 || P->inst_silo[i] == 2);
    if (XM_TYPE_IS_INVERSE(t) || t == XM_PERPETUAL)
      assert_int_equal(P->inst_silo[i], 2);
    /* its currency: the reporting one or in /fx; an inverse type's never the reporting one */
    const char *cur = P->inst_currency[i];
    assert_non_null(cur);
    int in_fx = xm_t_in_fx(P, cur);
    assert_true(strcmp(cur, P->currency) == 0 || in_fx);
    if (XM_TYPE_IS_INVERSE(t)) {
      assert_true(in_fx);
      /* settled in the coin whose price is its underlying (or the coin's future) */
      assert_true(strcmp(cur, P->currency) != 0);
    }
    /* funding only on perpetuals */
    assert_true(isfinite(P->inst_funding_rate[i]));
    if (!XM_TYPE_HAS_FUNDING(t))
      assert_true(P->inst_funding_rate[i] == 0.0);
    else
      assert_true(P->inst_funding_rate[i] > -1.0 && P->inst_funding_rate[i] < 1.0);
    if (XM_TYPE_IS_OPTION(t)) {
      assert_true(P->inst_vol_factor[i] >= 0 && P->inst_vol_factor[i] < P->n_factors);
      assert_true(P->factor_kind[P->inst_vol_factor[i]] == XM_FACTOR_VOL ||
                  P->factor_kind[P->inst_vol_factor[i]] == XM_FACTOR_LOGVOL);
      assert_true(P->inst_expiry[i] >= 1.0 / 365.0 - 1e-12 && P->inst_expiry[i] <= 2.0 + 1e-12);
      if (t == XM_FUTURE_OPTION || P->inst_silo[i] == 2)
        assert_true(P->inst_expiry[i] <= 1.0 + 1e-12);
      assert_true(P->inst_implied_vol[i] >= 0.05 && P->inst_implied_vol[i] <= 3.0);
      assert_true(P->inst_call[i] == 0 || P->inst_call[i] == 1);
    } else {
      assert_int_equal(P->inst_vol_factor[i], -1);
      assert_true(P->inst_expiry[i] == 0.0);
    }
  }
  /* the liquidity and collateral columns (METHODOLOGY 4.1, 6): every price factor
   * has a spread, an impact and a volume; vol factors none */
  assert_non_null(P->factor_half_spread);
  assert_non_null(P->factor_impact);
  assert_non_null(P->factor_adv);
  assert_non_null(P->factor_haircut);
  assert_non_null(P->factor_collateral_limit);
  for (int64_t f = 0; f < P->n_factors; f++) {
    double hs = P->factor_half_spread[f], k = P->factor_impact[f], adv = P->factor_adv[f];
    double hc = P->factor_haircut[f], lim = P->factor_collateral_limit[f];
    assert_true(isfinite(hs) && isfinite(k) && isfinite(adv) && isfinite(hc) && isfinite(lim));
    assert_true(hc >= 0.0 && hc <= 1.0 && lim >= 0.0);
    if (P->factor_kind[f] == XM_FACTOR_PRICE) {
      assert_true(hs > 0.0 && hs < 0.01);     /* under 1% of the price */
      assert_true(k > 0.0 && k < 0.2);        /* Y sigma_daily */
      assert_true(adv >= 1e6 && adv <= 1e12); /* USD a day */
    } else {
      assert_true(hs == 0.0 && k == 0.0 && adv == 0.0 && hc == 0.0 && lim == 0.0);
    }
  }
  int64_t *per = calloc((size_t)P->n_accounts, sizeof *per);
  assert_non_null(per);
  for (int64_t n = 0; n < P->n_positions; n++) {
    assert_true(P->pos_account[n] >= 0 && P->pos_account[n] < P->n_accounts);
    assert_true(P->pos_instrument[n] >= 0 && P->pos_instrument[n] < P->n_instruments);
    assert_true(isfinite(P->pos_quantity[n]) && P->pos_quantity[n] != 0.0);
    per[P->pos_account[n]]++;
  }
  for (int64_t a = 0; a < P->n_accounts; a++) {
    assert_true(per[a] >= 1);
    assert_true(P->account_cross_margin[a] == 0 || P->account_cross_margin[a] == 1);
    assert_non_null(P->account_currency[a]);
    assert_true(strcmp(P->account_currency[a], P->currency) == 0 ||
                xm_t_in_fx(P, P->account_currency[a]));
  }
  /* inverse products are held in coin-margined accounts of their own coin */
  for (int64_t n = 0; n < P->n_positions; n++) {
    int32_t i = P->pos_instrument[n], a = P->pos_account[n];
    if (XM_TYPE_IS_INVERSE(P->inst_type[i]))
      assert_string_equal(P->account_currency[a], P->inst_currency[i]);
  }
  /* /collateral: rows of /accounts, cash or price factors, known currencies, positive
   * quantities, a silo the account trades in (or none, in mode mixed only) */
  if (p->collateral == XM_GEN_COLLATERAL_NONE)
    assert_int_equal(P->n_collateral, 0);
  else
    assert_true(P->n_collateral >= 1);
  unsigned char *in_silo = calloc((size_t)P->n_accounts * 3, 1);
  assert_non_null(in_silo);
  for (int64_t n = 0; n < P->n_positions; n++)
    in_silo[(size_t)P->pos_account[n] * 3 + (size_t)P->inst_silo[P->pos_instrument[n]]] = 1;
  for (int64_t j = 0; j < P->n_collateral; j++) {
    int32_t a = P->coll_account[j], f = P->coll_factor[j], g = P->coll_silo[j];
    assert_true(a >= 0 && a < P->n_accounts);
    assert_true(f == -1 || (f >= 0 && f < P->n_factors));
    if (f >= 0)
      assert_int_equal(P->factor_kind[f], XM_FACTOR_PRICE);
    assert_non_null(P->coll_currency[j]);
    assert_true(strcmp(P->coll_currency[j], P->currency) == 0 ||
                xm_t_in_fx(P, P->coll_currency[j]));
    assert_true(isfinite(P->coll_quantity[j]) && P->coll_quantity[j] > 0.0);
    assert_true(g >= -1 && g < 3);
    if (p->collateral == XM_GEN_COLLATERAL_SILOED)
      assert_true(g >= 0);
    if (g >= 0)
      assert_true(in_silo[(size_t)a * 3 + (size_t)g]);
    if (f >= 0) /* a factor holding is acceptable collateral */
      assert_true(P->factor_haircut[f] < 1.0);
  }
  free(in_silo);
  free(per);
  /* scenarios */
  assert_int_equal(S->n_days, p->history_days);
  assert_int_equal(S->n_hfactors, P->n_factors);
  for (int64_t f = 0; f < P->n_factors; f++)
    assert_string_equal(S->hist_factor[f], P->factor_name[f]);
  assert_string_equal(S->hist_date[S->n_days - 1], "2018-12-31");
  for (int64_t t = 1; t < S->n_days; t++)
    assert_true(strcmp(S->hist_date[t - 1], S->hist_date[t]) < 0);
  for (int64_t k = 0; k < S->n_days * S->n_hfactors; k++)
    assert_true(isfinite(S->hist_return[k]) && fabs(S->hist_return[k]) < 2.0);
  assert_int_equal(S->n_sets, 2);
  assert_string_equal(S->sets[0].name, "span_grid");
  assert_string_equal(S->sets[1].name, "stress");
  const xm_scenario_set *sp = &S->sets[0], *st = &S->sets[1];
  assert_non_null(sp->weight);
  assert_null(st->weight);
  assert_int_equal(sp->n_scenarios % 16, 0);
  for (int64_t s = 0; s < sp->n_scenarios; s++)
    assert_true(sp->weight[s] == (s % 16 >= 14 ? 0.35 : 1.0));
  assert_int_equal(st->n_scenarios, 12);
  for (int k = 0; k < 2; k++) {
    const xm_scenario_set *set = &S->sets[k];
    assert_int_equal(set->measure, XM_MEASURE_WORST);
    assert_int_equal(set->n_factors, P->n_factors);
    for (int64_t j = 0; j < set->n_scenarios * set->n_factors; j++)
      assert_true(isfinite(set->shock[j]));
    for (int64_t s = 0; s < set->n_scenarios; s++)
      assert_true(set->label[s] && set->label[s][0]);
  }
}

static void test_contract_sizes(void **state) {
  (void)state;
  const xm_gen_params ps[] = {
      xm_t_params(1, 12, 1, 4, 2, 7),       /* the smallest book */
      xm_t_params(3, 12, 50, 4, 30, 7),     /* minimum instruments, many positions */
      xm_t_params(5, 40, 30, 13, 30, 1),    /* the demo's factors */
      xm_t_params(7, 36, 7, 13, 20, 2),     /* one position per account */
      xm_t_params(9, 60, 40, 14, 20, 2),    /* SX5E without EURUSD: no EUR product */
      xm_t_params(9, 60, 40, 15, 20, 2),    /* SX5E, EURUSD: FESX needs its factor too */
      xm_t_params(30, 200, 300, 17, 20, 2), /* the demo's and the EUR group */
      xm_t_params(40, 3001, 901, 37, 60, 3),  xm_t_params(100, 20000, 5000, 64, 40, 4),
      xm_t_params(10, 2000, 400, 401, 10, 5), /* many stocks */
  };
  for (size_t k = 0; k < 3 * (sizeof ps / sizeof ps[0]); k++) {
    xm_portfolio P;
    xm_scenario_file S;
    xm_gen_stats st;
    xm_gen_params pk = ps[k / 3];
    pk.collateral = (int)(k % 3); /* none, mixed, siloed */
    assert_int_equal(xm_generate(&pk, &P, &S, &st), XM_OK);
    xm_t_contract(&pk, &P, &S);
    int64_t na = 0;
    for (int t = 0; t < XM_GEN_T_COUNT; t++)
      na += st.by_template[t];
    assert_int_equal(na, P.n_accounts);
    assert_true(st.held_instruments >= 1 && st.held_instruments <= P.n_instruments);
    xm_gen_free(&P, &S);
  }
}

/* ---- determinism ---- */

static uint64_t xm_t_fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static uint64_t xm_t_hash(const xm_portfolio *P, const xm_scenario_file *S) {
  uint64_t h = 14695981039346656037ull;
  for (int64_t f = 0; f < P->n_factors; f++)
    h = xm_t_fnv(h, P->factor_name[f], strlen(P->factor_name[f]) + 1);
  h = xm_t_fnv(h, P->factor_level, (size_t)P->n_factors * sizeof(double));
  for (int64_t i = 0; i < P->n_instruments; i++)
    h = xm_t_fnv(h, P->inst_id[i], strlen(P->inst_id[i]) + 1);
  size_t ni = (size_t)P->n_instruments;
  h = xm_t_fnv(h, P->inst_type, ni * sizeof(int32_t));
  h = xm_t_fnv(h, P->inst_underlying, ni * sizeof(int32_t));
  h = xm_t_fnv(h, P->inst_vol_factor, ni * sizeof(int32_t));
  h = xm_t_fnv(h, P->inst_strike, ni * sizeof(double));
  h = xm_t_fnv(h, P->inst_expiry, ni * sizeof(double));
  h = xm_t_fnv(h, P->inst_implied_vol, ni * sizeof(double));
  h = xm_t_fnv(h, P->inst_multiplier, ni * sizeof(double));
  h = xm_t_fnv(h, P->account_cross_margin, (size_t)P->n_accounts * sizeof(int32_t));
  for (int64_t i = 0; i < P->n_instruments; i++)
    h = xm_t_fnv(h, P->inst_currency[i], strlen(P->inst_currency[i]) + 1);
  h = xm_t_fnv(h, P->inst_funding_rate, ni * sizeof(double));
  h = xm_t_fnv(h, P->inst_rate, ni * sizeof(double));
  for (int64_t a = 0; a < P->n_accounts; a++)
    h = xm_t_fnv(h, P->account_currency[a], strlen(P->account_currency[a]) + 1);
  for (int64_t c = 0; c < P->n_fx; c++)
    h = xm_t_fnv(h, P->fx_currency[c], strlen(P->fx_currency[c]) + 1);
  h = xm_t_fnv(h, P->fx_factor, (size_t)P->n_fx * sizeof(int32_t));
  size_t np = (size_t)P->n_positions;
  h = xm_t_fnv(h, P->pos_account, np * sizeof(int32_t));
  h = xm_t_fnv(h, P->pos_instrument, np * sizeof(int32_t));
  h = xm_t_fnv(h, P->pos_quantity, np * sizeof(double));
  h = xm_t_fnv(h, S->hist_return, (size_t)(S->n_days * S->n_hfactors) * sizeof(double));
  for (int64_t k = 0; k < S->n_sets; k++)
    h = xm_t_fnv(h, S->sets[k].shock,
                 (size_t)(S->sets[k].n_scenarios * S->sets[k].n_factors) * sizeof(double));
  return h;
}

static void test_deterministic(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(60, 4000, 2000, 64, 100, 12345);
  xm_portfolio P1, P2, P3;
  xm_scenario_file S1, S2, S3;
  assert_int_equal(xm_generate(&p, &P1, &S1, NULL), XM_OK);
  assert_int_equal(xm_generate(&p, &P2, &S2, NULL), XM_OK);
  uint64_t h1 = xm_t_hash(&P1, &S1);
  assert_true(h1 == xm_t_hash(&P2, &S2));
  p.seed = 12346;
  assert_int_equal(xm_generate(&p, &P3, &S3, NULL), XM_OK);
  assert_true(h1 != xm_t_hash(&P3, &S3));
  assert_memory_not_equal(S1.hist_return, S3.hist_return, 100 * sizeof(double));
  assert_memory_not_equal(P1.pos_quantity, P3.pos_quantity, 100 * sizeof(double));
  xm_gen_free(&P1, &S1);
  xm_gen_free(&P2, &S2);
  xm_gen_free(&P3, &S3);
}

/* The same numbers on any machine: this hash of seed 42's small book was
 * recorded when the generator was written (x86-64, glibc). The generator
 * uses no libm function but sqrt, floor, frexp and ldexp (exact in IEEE-754),
 * and never two random draws in one expression or in the arguments of one
 * call (their order is unspecified: gcc and clang differ, see xg_option_draw),
 * so it is the same under gcc and clang (CI builds both) and only changes when
 * the generator is changed on purpose: then record the new value (printed on
 * failure). */
#define XM_T_GOLDEN_HASH 0x928fedd569e20221ull

static void test_golden(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(20, 500, 300, 29, 50, 42);
  xm_portfolio P;
  xm_scenario_file S;
  assert_int_equal(xm_generate(&p, &P, &S, NULL), XM_OK);
  uint64_t h = xm_t_hash(&P, &S);
  if (h != XM_T_GOLDEN_HASH)
    fail_msg("golden hash 0x%016llxull, expected 0x%016llxull", (unsigned long long)h,
             (unsigned long long)XM_T_GOLDEN_HASH);
  xm_gen_free(&P, &S);
}

/* The liquidity and collateral columns (xm_t_hash leaves them out: its golden
 * value is the book's before they existed, and stays so). */
static uint64_t xm_t_hash_v2(const xm_portfolio *P) {
  uint64_t h = 14695981039346656037ull;
  size_t nf = (size_t)P->n_factors, nc = (size_t)P->n_collateral;
  h = xm_t_fnv(h, P->factor_half_spread, nf * sizeof(double));
  h = xm_t_fnv(h, P->factor_impact, nf * sizeof(double));
  h = xm_t_fnv(h, P->factor_adv, nf * sizeof(double));
  h = xm_t_fnv(h, P->factor_haircut, nf * sizeof(double));
  h = xm_t_fnv(h, P->factor_collateral_limit, nf * sizeof(double));
  h = xm_t_fnv(h, &P->n_collateral, sizeof P->n_collateral);
  if (nc) {
    h = xm_t_fnv(h, P->coll_account, nc * sizeof(int32_t));
    h = xm_t_fnv(h, P->coll_factor, nc * sizeof(int32_t));
    h = xm_t_fnv(h, P->coll_quantity, nc * sizeof(double));
    h = xm_t_fnv(h, P->coll_silo, nc * sizeof(int32_t));
    for (size_t j = 0; j < nc; j++)
      h = xm_t_fnv(h, P->coll_currency[j], strlen(P->coll_currency[j]) + 1);
  }
  return h;
}

/* Recorded when the columns were added (x86-64, gcc; the same rules as above). */
#define XM_T_GOLDEN_HASH_V2 0xbcb8b7c26c4ae238ull

static void test_golden_v2(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(20, 500, 300, 29, 50, 42);
  p.collateral = XM_GEN_COLLATERAL_MIXED;
  xm_portfolio P;
  xm_scenario_file S;
  assert_int_equal(xm_generate(&p, &P, &S, NULL), XM_OK);
  /* the collateral draws are a stream of their own: the rest of the book is the same */
  assert_true(xm_t_hash(&P, &S) == XM_T_GOLDEN_HASH);
  uint64_t h = xm_t_hash_v2(&P);
  if (h != XM_T_GOLDEN_HASH_V2)
    fail_msg("golden hash (v2 columns) 0x%016llxull, expected 0x%016llxull", (unsigned long long)h,
             (unsigned long long)XM_T_GOLDEN_HASH_V2);
  xm_gen_free(&P, &S);
}

/* ---- collateral and liquidity ---- */

static int64_t xm_t_factor(const xm_portfolio *P, const char *name);

static void test_collateral(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(800, 8000, 12000, 64, 60, 31);
  xm_portfolio P[3];
  xm_scenario_file S[3];
  xm_gen_stats st[3];
  for (int m = 0; m < 3; m++) {
    p.collateral = m;
    assert_int_equal(xm_generate(&p, &P[m], &S[m], &st[m]), XM_OK);
    xm_t_contract(&p, &P[m], &S[m]);
  }
  /* the mode changes only the table: the positions, liquidity columns and history agree */
  for (int m = 1; m < 3; m++) {
    assert_true(xm_t_hash(&P[m], &S[m]) == xm_t_hash(&P[0], &S[0]));
    assert_memory_equal(P[m].factor_half_spread, P[0].factor_half_spread,
                        (size_t)P[0].n_factors * sizeof(double));
    assert_memory_equal(P[m].factor_haircut, P[0].factor_haircut,
                        (size_t)P[0].n_factors * sizeof(double));
  }
  assert_int_equal(P[0].n_collateral, 0);
  assert_int_equal(st[0].collateral_accounts, 0);
  /* mixed and siloed: the same holdings; mixed posts about 1 in 10 to no silo */
  const xm_portfolio *M = &P[1], *Q = &P[2];
  assert_int_equal(M->n_collateral, Q->n_collateral);
  assert_memory_equal(M->coll_quantity, Q->coll_quantity, (size_t)M->n_collateral * sizeof(double));
  assert_memory_equal(M->coll_factor, Q->coll_factor, (size_t)M->n_collateral * sizeof(int32_t));
  int64_t none = 0, cash = 0, coin_cash = 0, eur_cash = 0, fx_units = 0, etf = 0, coins = 0;
  int64_t coins_futures = 0;
  for (int64_t j = 0; j < M->n_collateral; j++) {
    int32_t f = M->coll_factor[j], a = M->coll_account[j];
    if (M->coll_silo[j] < 0) {
      none++;
      assert_true(Q->coll_silo[j] >= 0);
    } else {
      assert_int_equal(M->coll_silo[j], Q->coll_silo[j]);
    }
    if (f < 0) {
      cash++;
      if (strcmp(M->coll_currency[j], M->account_currency[a]) != 0)
        eur_cash += strcmp(M->coll_currency[j], "EUR") == 0;
      else if (strcmp(M->account_currency[a], M->currency) != 0)
        coin_cash++; /* a coin-margined account's own coin */
      continue;
    }
    assert_string_equal(M->coll_currency[j], M->currency); /* factor prices are in USD */
    const char *nm = M->factor_name[f];
    if (strcmp(nm, "EURUSD") == 0)
      fx_units++;
    else if (M->factor_haircut[f] == 0.30)
      etf++;
    else {
      coins++;
      coins_futures += Q->coll_silo[j] == 1;
    }
  }
  double share = (double)none / (double)M->n_collateral;
  assert_true(share > 0.05 && share < 0.15);
  assert_int_equal(st[1].collateral_unposted, none);
  assert_int_equal(st[2].collateral_unposted, 0);
  assert_int_equal(st[1].collateral_cash, cash);
  assert_true(cash > M->n_collateral / 4 && cash < M->n_collateral);
  assert_true(coin_cash > 0 && eur_cash > 0 && fx_units > 0 && etf > 0 && coins > 0);
  assert_true(coins_futures > 0); /* coins posted against futures: the wrong-way case */
  /* every account holds collateral (each trades in some silo) */
  assert_int_equal(st[1].collateral_accounts, M->n_accounts);
  /* the demo's markets take the demo's figures (datasets/README.md) */
  int64_t spx = xm_t_factor(M, "SPX"), btc = xm_t_factor(M, "BTC"), eth = xm_t_factor(M, "ETH");
  int64_t es = xm_t_factor(M, "ES"), eur = xm_t_factor(M, "EURUSD");
  assert_true(spx >= 0 && btc >= 0 && eth >= 0 && es >= 0 && eur >= 0);
  assert_true(M->factor_half_spread[spx] == 0.5 * 0.01 / 249.92);
  assert_true(M->factor_adv[spx] == 100e6 * 249.92);
  assert_true(M->factor_haircut[spx] == 0.30 && M->factor_collateral_limit[spx] == 500e6);
  assert_true(M->factor_haircut[btc] == 0.15 && M->factor_collateral_limit[btc] == 100e6);
  assert_true(M->factor_haircut[eth] == 0.20 && M->factor_collateral_limit[eth] == 45e6);
  assert_true(M->factor_haircut[es] == 1.0 && M->factor_collateral_limit[es] == 0.0);
  assert_true(M->factor_haircut[eur] == 0.05);
  /* impact = Y sigma_daily, Y = 1 for the demo's markets: SPX.iv 0.2542 */
  assert_true(fabs(M->factor_impact[spx] - 0.2542 / sqrt(252.0)) < 1e-6);
  /* illiquid markets are wider and thinner: stocks against indices, crypto against both */
  double hs_stock = 0.0, hs_index = 0.0;
  int64_t n_stock = 0, n_index = 0;
  for (int64_t f = 0; f < M->n_factors; f++) {
    if (strncmp(M->factor_name[f], "ST", 2) == 0 && M->factor_kind[f] == XM_FACTOR_PRICE)
      hs_stock += M->factor_half_spread[f], n_stock++;
    if (strncmp(M->factor_name[f], "IX", 2) == 0 && M->factor_kind[f] == XM_FACTOR_PRICE)
      hs_index += M->factor_half_spread[f], n_index++;
  }
  assert_true(n_stock > 0 && n_index > 0 && hs_stock / n_stock > hs_index / n_index);
  for (int m = 0; m < 3; m++)
    xm_gen_free(&P[m], &S[m]);
}

/* ---- realism ---- */

static void test_template_mix(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(3000, 20000, 60000, 64, 300, 9);
  xm_portfolio P;
  xm_scenario_file S;
  xm_gen_stats st;
  assert_int_equal(xm_generate(&p, &P, &S, &st), XM_OK);
  for (int t = 0; t < XM_GEN_T_COUNT; t++) /* every template, near its demo share */
    assert_true(st.by_template[t] > 3000 / 20 / 3);
  double non = (double)st.non_cross / 3000.0;
  assert_true(non > 0.09 && non < 0.15);
  assert_true(st.max_account_positions > 5 * 20); /* sizes vary around N/A = 20 */
  assert_true(st.held_instruments > P.n_instruments / 2);
  assert_int_equal(st.by_class[0] + st.by_class[1] + st.by_class[2] + st.by_class[3],
                   st.underlyings);
  /* options dominate the instruments; puts carry the higher vols (skew) */
  int64_t opts = 0;
  double put_iv = 0.0, call_iv = 0.0;
  int64_t np = 0, nc = 0;
  for (int64_t i = 0; i < P.n_instruments; i++) {
    if (!XM_TYPE_IS_OPTION(P.inst_type[i]))
      continue;
    opts++;
    double S0 = P.factor_level[P.inst_underlying[i]];
    if (P.inst_call[i] == 0 && P.inst_strike[i] < 0.9 * S0)
      put_iv += P.inst_implied_vol[i], np++;
    if (P.inst_call[i] == 1 && P.inst_strike[i] > 1.1 * S0)
      call_iv += P.inst_implied_vol[i], nc++;
  }
  assert_true(opts > P.n_instruments * 9 / 10);
  assert_true(np > 0 && nc > 0 && put_iv / (double)np > call_iv / (double)nc);
  /* history: index returns strongly correlated; vol changes against price */
  int64_t spx = -1, ndx = -1, spxiv = -1, es = -1;
  for (int64_t f = 0; f < P.n_factors; f++) {
    if (strcmp(P.factor_name[f], "SPX") == 0)
      spx = f;
    if (strcmp(P.factor_name[f], "NDX") == 0)
      ndx = f;
    if (strcmp(P.factor_name[f], "SPX.iv") == 0)
      spxiv = f;
    if (strcmp(P.factor_name[f], "ES") == 0)
      es = f;
  }
  assert_true(spx >= 0 && ndx >= 0 && spxiv >= 0 && es >= 0);
  double c[3] = {0, 0, 0}, vx = 0, vy[3] = {0, 0, 0};
  int64_t F = S.n_hfactors;
  for (int64_t t = 0; t < S.n_days; t++) {
    double x = S.hist_return[t * F + spx];
    double y[3] = {S.hist_return[t * F + ndx], S.hist_return[t * F + spxiv],
                   S.hist_return[t * F + es]};
    vx += x * x;
    for (int k = 0; k < 3; k++)
      c[k] += x * y[k], vy[k] += y[k] * y[k];
  }
  assert_true(c[0] / sqrt(vx * vy[0]) > 0.6);  /* SPX ~ NDX */
  assert_true(c[1] / sqrt(vx * vy[1]) < -0.4); /* SPX vs its vol */
  assert_true(c[2] / sqrt(vx * vy[2]) > 0.95); /* SPX ~ ES */
  double ann = sqrt(vx / (double)S.n_days * 252.0);
  assert_true(ann > 0.08 && ann < 0.5);
  xm_gen_free(&P, &S);
}

/* ---- version 2: the new products, currencies and funding ---- */

static int64_t xm_t_factor(const xm_portfolio *P, const char *name) {
  for (int64_t f = 0; f < P->n_factors; f++)
    if (strcmp(P->factor_name[f], name) == 0)
      return f;
  return -1;
}

static int64_t xm_t_inst(const xm_portfolio *P, const char *id) {
  for (int64_t i = 0; i < P->n_instruments; i++)
    if (strcmp(P->inst_id[i], id) == 0)
      return i;
  return -1;
}

static void test_v2_products(void **state) {
  (void)state;
  xm_gen_params p = xm_t_params(600, 8000, 12000, 64, 120, 21);
  xm_portfolio P;
  xm_scenario_file S;
  xm_gen_stats st;
  assert_int_equal(xm_generate(&p, &P, &S, &st), XM_OK);
  xm_t_contract(&p, &P, &S);
  /* every type is in the book, and held */
  int64_t n_type[XM_TYPE_COUNT] = {0}, held_type[XM_TYPE_COUNT] = {0};
  for (int64_t i = 0; i < P.n_instruments; i++)
    n_type[P.inst_type[i]]++;
  for (int64_t n = 0; n < P.n_positions; n++)
    held_type[P.inst_type[P.pos_instrument[n]]]++;
  for (int t = 0; t < XM_TYPE_COUNT; t++) {
    if (n_type[t] == 0 || held_type[t] == 0)
      fail_msg("type %s: %lld instruments, %lld positions", xm_type_name(t), (long long)n_type[t],
               (long long)held_type[t]);
  }
  /* /fx: BTC and ETH to their price factors, EUR to EURUSD */
  int64_t btc = xm_t_factor(&P, "BTC"), eth = xm_t_factor(&P, "ETH");
  int64_t eurusd = xm_t_factor(&P, "EURUSD"), fesx = xm_t_factor(&P, "FESX");
  assert_true(btc >= 0 && eth >= 0 && eurusd >= 0 && fesx >= 0);
  assert_true(fabs(P.factor_level[eurusd] - 1.1450) < 1e-12);
  int found = 0;
  for (int64_t c = 0; c < P.n_fx; c++) {
    if (strcmp(P.fx_currency[c], "BTC") == 0)
      assert_int_equal(P.fx_factor[c], btc), found |= 1;
    if (strcmp(P.fx_currency[c], "ETH") == 0)
      assert_int_equal(P.fx_factor[c], eth), found |= 2;
    if (strcmp(P.fx_currency[c], "EUR") == 0)
      assert_int_equal(P.fx_factor[c], eurusd), found |= 4;
  }
  assert_int_equal(found, 7);
  /* the products' parameters (datasets/README.md) */
  int64_t i = xm_t_inst(&P, "BTC-PERPETUAL");
  assert_true(i >= 0);
  assert_int_equal(P.inst_type[i], XM_INVERSE_PERPETUAL);
  assert_true(P.inst_multiplier[i] == 10.0);
  assert_string_equal(P.inst_currency[i], "BTC");
  assert_true(P.inst_funding_rate[i] == 0.1095);
  i = xm_t_inst(&P, "ETH-PERPETUAL");
  assert_true(i >= 0 && P.inst_multiplier[i] == 1.0);
  i = xm_t_inst(&P, "BTC-29MAR19");
  assert_true(i >= 0 && P.inst_type[i] == XM_INVERSE_FUTURE && P.inst_multiplier[i] == 10.0);
  assert_true(P.inst_funding_rate[i] == 0.0);
  i = xm_t_inst(&P, "BTC-USD-PERP");
  assert_true(i >= 0 && P.inst_type[i] == XM_PERPETUAL && P.inst_multiplier[i] == 1.0);
  assert_string_equal(P.inst_currency[i], "USD");
  assert_true(P.inst_funding_rate[i] == 0.1095);
  i = xm_t_inst(&P, "FESXH9");
  assert_true(i >= 0 && P.inst_type[i] == XM_FUTURE && P.inst_multiplier[i] == 10.0);
  assert_string_equal(P.inst_currency[i], "EUR");
  assert_int_equal(P.inst_underlying[i], fesx);
  int64_t n_inv_opt = 0, n_amer = 0, n_eur_opt = 0;
  for (int64_t k = 0; k < P.n_instruments; k++) {
    if (P.inst_type[k] == XM_INVERSE_OPTION) {
      n_inv_opt++;
      assert_true(P.inst_multiplier[k] == 1.0);
      assert_true(strcmp(P.inst_currency[k], P.factor_name[P.inst_underlying[k]]) == 0);
    }
    if (P.inst_type[k] == XM_AMERICAN_OPTION) {
      n_amer++;
      assert_int_equal(P.inst_silo[k], 0); /* ETF and stock options */
    }
    if (P.inst_type[k] == XM_OPTION && strcmp(P.inst_currency[k], "EUR") == 0) {
      n_eur_opt++;
      assert_true(P.inst_multiplier[k] == 10.0 && P.inst_rate[k] < 0.0);
    }
  }
  assert_true(n_inv_opt > 0 && n_amer > 0 && n_eur_opt > 0);
  /* coin-margined accounts: BTC ones exist, each holds only its coin's inverse products */
  assert_true(st.coin_accounts > 0);
  assert_true(st.by_template[XM_GEN_T_COIN_MARGINED] == st.coin_accounts);
  int64_t btc_acc = 0, usd_eur = 0;
  for (int64_t a = 0; a < P.n_accounts; a++)
    btc_acc += strcmp(P.account_currency[a], "BTC") == 0;
  assert_true(btc_acc > 0);
  for (int64_t n = 0; n < P.n_positions; n++) {
    const char *ac = P.account_currency[P.pos_account[n]];
    const char *ic = P.inst_currency[P.pos_instrument[n]];
    if (strcmp(ac, P.currency) != 0)
      assert_string_equal(ac, ic);
    usd_eur += strcmp(ac, "USD") == 0 && strcmp(ic, "EUR") == 0;
  }
  assert_true(usd_eur > 0); /* EUR products held in USD accounts */
  /* history: EURUSD has a column with an FX-like vol */
  double v = 0.0;
  for (int64_t t = 0; t < S.n_days; t++) {
    double r = S.hist_return[t * S.n_hfactors + eurusd];
    v += r * r;
  }
  double ann = sqrt(v / (double)S.n_days * 252.0);
  assert_true(ann > 0.04 && ann < 0.12);
  xm_gen_free(&P, &S);
}

/* ---- through the writers and the readers ---- */

static void test_write_read(void **state) {
  (void)state;
  char dir[256], pp[300], sp[300];
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/xm_test_gen.XXXXXX", base && *base ? base : "/tmp");
  assert_non_null(mkdtemp(dir));
  snprintf(pp, sizeof pp, "%s/p.h5", dir);
  snprintf(sp, sizeof sp, "%s/s.h5", dir);
  xm_gen_params p = xm_t_params(30, 1000, 400, 20, 60, 77);
  p.collateral = XM_GEN_COLLATERAL_MIXED;
  xm_portfolio P, P2;
  xm_scenario_file S, S2;
  xm_diag d = {0};
  assert_int_equal(xm_generate(&p, &P, &S, NULL), XM_OK);
  /* the version-2 columns are written and read back by the io layer's
   * writers and readers (FORMAT.md version 2): until those know them, this
   * part fails */
  assert_int_equal(xm_portfolio_write(pp, &P, &d), XM_OK);
  assert_int_equal(xm_scenarios_write(sp, &S, &d), XM_OK);
  xm_status r1 = xm_portfolio_read(pp, &P2, &d);
  xm_status r2 = xm_scenarios_read(sp, &S2, &d);
  if (r1 != XM_OK || r2 != XM_OK)
    xm_diag_print(&d, stderr);
  assert_int_equal(r1, XM_OK);
  assert_int_equal(r2, XM_OK);
  assert_int_equal(P2.n_instruments, P.n_instruments);
  assert_int_equal(P2.n_positions, P.n_positions);
  assert_memory_equal(P2.pos_quantity, P.pos_quantity, (size_t)P.n_positions * sizeof(double));
  assert_memory_equal(P2.inst_strike, P.inst_strike, (size_t)P.n_instruments * sizeof(double));
  assert_memory_equal(P2.inst_type, P.inst_type, (size_t)P.n_instruments * sizeof(int32_t));
  assert_non_null(P2.inst_currency);
  assert_non_null(P2.account_currency);
  assert_non_null(P2.inst_funding_rate);
  assert_int_equal(P2.n_fx, P.n_fx);
  for (int64_t i = 0; i < P.n_instruments; i++)
    assert_string_equal(P2.inst_currency[i], P.inst_currency[i]);
  for (int64_t a = 0; a < P.n_accounts; a++)
    assert_string_equal(P2.account_currency[a], P.account_currency[a]);
  assert_memory_equal(P2.inst_funding_rate, P.inst_funding_rate,
                      (size_t)P.n_instruments * sizeof(double));
  for (int64_t c = 0; c < P.n_fx; c++) {
    assert_string_equal(P2.fx_currency[c], P.fx_currency[c]);
    assert_int_equal(P2.fx_factor[c], P.fx_factor[c]);
  }
  size_t nf = (size_t)P.n_factors * sizeof(double);
  assert_memory_equal(P2.factor_half_spread, P.factor_half_spread, nf);
  assert_memory_equal(P2.factor_impact, P.factor_impact, nf);
  assert_memory_equal(P2.factor_adv, P.factor_adv, nf);
  assert_memory_equal(P2.factor_haircut, P.factor_haircut, nf);
  assert_memory_equal(P2.factor_collateral_limit, P.factor_collateral_limit, nf);
  assert_true(P.n_collateral > 0);
  assert_int_equal(P2.n_collateral, P.n_collateral);
  size_t nc = (size_t)P.n_collateral;
  assert_memory_equal(P2.coll_account, P.coll_account, nc * sizeof(int32_t));
  assert_memory_equal(P2.coll_factor, P.coll_factor, nc * sizeof(int32_t));
  assert_memory_equal(P2.coll_quantity, P.coll_quantity, nc * sizeof(double));
  assert_memory_equal(P2.coll_silo, P.coll_silo, nc * sizeof(int32_t));
  assert_non_null(P2.coll_currency);
  for (size_t j = 0; j < nc; j++)
    assert_string_equal(P2.coll_currency[j], P.coll_currency[j]);
  assert_int_equal(S2.n_days, S.n_days);
  assert_memory_equal(S2.hist_return, S.hist_return,
                      (size_t)(S.n_days * S.n_hfactors) * sizeof(double));
  assert_int_equal(S2.n_sets, 2);
  assert_string_equal(S2.sets[0].name, "span_grid");
  xm_diag_free(&d);
  xm_gen_free(&P, &S);
  xm_portfolio_free(&P2);
  xm_scenarios_free(&S2);
  unlink(pp);
  unlink(sp);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_math),           cmocka_unit_test(test_check),
      cmocka_unit_test(test_contract_sizes), cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_golden),         cmocka_unit_test(test_template_mix),
      cmocka_unit_test(test_v2_products),    cmocka_unit_test(test_write_read),
      cmocka_unit_test(test_golden_v2),      cmocka_unit_test(test_collateral),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
