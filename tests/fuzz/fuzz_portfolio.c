/* libFuzzer target: xm_portfolio_read on arbitrary bytes (FORMAT.md section 1).
 *
 * The reader's probe child (a fork that reads the file's structure and strings
 * first) stays on: that is what users run. Besides the sanitizers, the target
 * checks the reader's promises:
 *   - on success every array holds the number of rows its count says (each
 *     element is read, so AddressSanitizer sees a short one) and every index
 *     is in range;
 *   - on success the struct passes xm_*_validate (the checks of a struct
 *     built in memory find nothing in what the reader accepted);
 *   - on failure *out is left zeroed;
 *   - no HDF5 object is left open (a leaked handle keeps the file open, and
 *     the next read of the same path would see the old file). */
#include <hdf5.h>

#include "fuzz_hdf5.h"
#include "xm_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define XMF_TOUCH(arr, n)                                                                          \
  do {                                                                                             \
    XMF_CHECK((n) == 0 || (arr) != NULL);                                                          \
    for (int64_t i_ = 0; i_ < (n); i_++)                                                           \
      xmf_sink += (size_t)((arr)[i_] != 0);                                                        \
  } while (0)

static void xmf_check_ok(const xm_portfolio *p) {
  XMF_CHECK(p->n_factors > 0 && p->n_silos > 0 && p->n_instruments > 0 && p->n_accounts > 0 &&
            p->n_positions > 0);
  XMF_CHECK(p->path != NULL);
  XMF_CHECK(memchr(p->valuation_date, '\0', sizeof p->valuation_date) != NULL);
  XMF_CHECK(memchr(p->currency, '\0', sizeof p->currency) != NULL);
  xmf_touch_strings(p->factor_name, p->n_factors);
  XMF_TOUCH(p->factor_kind, p->n_factors);
  XMF_TOUCH(p->factor_level, p->n_factors);
  xmf_touch_strings(p->silo_name, p->n_silos);
  int64_t ni = p->n_instruments;
  xmf_touch_strings(p->inst_id, ni);
  XMF_TOUCH(p->inst_type, ni);
  XMF_TOUCH(p->inst_strike, ni);
  XMF_TOUCH(p->inst_expiry, ni);
  XMF_TOUCH(p->inst_call, ni);
  XMF_TOUCH(p->inst_implied_vol, ni);
  XMF_TOUCH(p->inst_rate, ni);
  XMF_TOUCH(p->inst_dividend_yield, ni);
  XMF_TOUCH(p->inst_multiplier, ni);
  XMF_CHECK(p->inst_silo && p->inst_underlying && p->inst_vol_factor);
  for (int64_t i = 0; i < ni; i++) {
    XMF_CHECK(p->inst_silo[i] >= 0 && p->inst_silo[i] < p->n_silos);
    XMF_CHECK(p->inst_underlying[i] >= 0 && p->inst_underlying[i] < p->n_factors);
    XMF_CHECK(p->inst_vol_factor[i] >= -1 && p->inst_vol_factor[i] < p->n_factors);
  }
  xmf_touch_strings(p->account_id, p->n_accounts);
  XMF_TOUCH(p->account_cross_margin, p->n_accounts);
  XMF_TOUCH(p->pos_quantity, p->n_positions);
  XMF_CHECK(p->pos_account && p->pos_instrument);
  for (int64_t i = 0; i < p->n_positions; i++) {
    XMF_CHECK(p->pos_account[i] >= 0 && p->pos_account[i] < p->n_accounts);
    XMF_CHECK(p->pos_instrument[i] >= 0 && p->pos_instrument[i] < ni);
  }
  XMF_CHECK(xm_portfolio_validate(p, NULL) == XM_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = xmf_write(0, "portfolio", data, size);
  xm_portfolio p;
  xm_diag diag = {0};
  xm_status st = xm_portfolio_read(path, &p, &diag);
  if (st == XM_OK)
    xmf_check_ok(&p);
  xmf_after_read("fuzz_portfolio", st, &p, sizeof p, &diag);
  xm_portfolio_free(&p);
  xm_diag_free(&diag);
  return 0;
}
