/* libFuzzer target: xm_scenarios_read on arbitrary bytes (FORMAT.md section 2).
 *
 * The reader's probe child (a fork that reads the file's structure and strings
 * first) stays on: that is what users run. Besides the sanitizers, the target
 * checks the reader's promises:
 *   - on success every array holds the number of elements its counts say
 *     (each element is read, so AddressSanitizer sees a short one);
 *   - on success the struct passes xm_*_validate (the checks of a struct
 *     built in memory find nothing in what the reader accepted);
 *   - on failure *out is left zeroed;
 *   - no HDF5 object is left open (a leaked handle keeps the file open, and
 *     the next read of the same path would see the old file). */
#include <hdf5.h>

#include "fuzz_hdf5.h"
#include "xm_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void xmf_touch_doubles(const double *v, int64_t n) {
  XMF_CHECK(n == 0 || v != NULL);
  for (int64_t i = 0; i < n; i++)
    xmf_sink += (size_t)(v[i] != 0);
}

static void xmf_check_ok(const xm_scenario_file *s) {
  XMF_CHECK(s->path != NULL);
  XMF_CHECK(s->n_days >= 0 && s->n_hfactors >= 0 && s->n_sets >= 0);
  XMF_CHECK(s->n_days > 0 || s->n_sets > 0);
  xmf_touch_strings(s->hist_factor, s->n_hfactors);
  xmf_touch_strings(s->hist_date, s->n_days);
  xmf_touch_doubles(s->hist_return, s->n_days * s->n_hfactors);
  XMF_CHECK(s->n_sets == 0 || s->sets != NULL);
  for (int64_t k = 0; k < s->n_sets; k++) {
    const xm_scenario_set *set = &s->sets[k];
    XMF_CHECK(set->name != NULL);
    XMF_CHECK(set->n_scenarios > 0 && set->n_factors > 0);
    XMF_CHECK(k == 0 || strcmp(s->sets[k - 1].name, set->name) < 0); /* sorted, unique */
    xmf_touch_strings(set->factor, set->n_factors);
    xmf_touch_strings(set->label, set->n_scenarios);
    xmf_touch_doubles(set->shock, set->n_scenarios * set->n_factors);
    if (set->weight)
      xmf_touch_doubles(set->weight, set->n_scenarios);
    XMF_CHECK(set->measure >= 0 && set->measure <= 2);
  }
  XMF_CHECK(xm_scenarios_validate(s, NULL) == XM_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = xmf_write(0, "scenarios", data, size);
  xm_scenario_file s;
  xm_diag diag = {0};
  xm_status st = xm_scenarios_read(path, &s, &diag);
  if (st == XM_OK)
    xmf_check_ok(&s);
  xmf_after_read("fuzz_scenarios", st, &s, sizeof s, &diag);
  xm_scenarios_free(&s);
  xm_diag_free(&diag);
  return 0;
}
