/* The names of the enumerations of xmargin_types.h as NULL-terminated arrays
 * indexed by value (host/types.c), for the readers, the writers and the
 * configuration. Static; internal to libxmargin. */
#ifndef XM_TABLES_H
#define XM_TABLES_H

#include "xmargin.h"

extern const char *const xm__type_names[XM_TYPE_COUNT + 1];
extern const char *const xm__factor_kind_names[XM_FACTOR_KIND_COUNT + 1];
extern const char *const xm__measure_names[XM_MEASURE_COUNT + 1];

#endif
