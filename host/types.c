/* The name columns of the enumeration tables (xmargin_types.h). */
#include <stddef.h>

#include "xm_tables.h"

#define XM__TYPE_NAME(NAME, name, loss, carry, settled, funding, inverse, pricing, version) name,
const char *const xm__type_names[XM_TYPE_COUNT + 1] = {XM_INSTRUMENT_TYPE_MAP(XM__TYPE_NAME) NULL};
#undef XM__TYPE_NAME

#define XM__PAIR_NAME(NAME, name) name,
const char *const xm__factor_kind_names[XM_FACTOR_KIND_COUNT + 1] = {
    XM_FACTOR_KIND_MAP(XM__PAIR_NAME) NULL};
const char *const xm__measure_names[XM_MEASURE_COUNT + 1] = {XM_MEASURE_MAP(XM__PAIR_NAME) NULL};
#undef XM__PAIR_NAME

const char *xm_type_name(int type) {
  return type >= 0 && type < XM_TYPE_COUNT ? xm__type_names[type] : NULL;
}
const char *xm_factor_kind_name(int kind) {
  return kind >= 0 && kind < XM_FACTOR_KIND_COUNT ? xm__factor_kind_names[kind] : NULL;
}
const char *xm_measure_name(int measure) {
  return measure >= 0 && measure < XM_MEASURE_COUNT ? xm__measure_names[measure] : NULL;
}
