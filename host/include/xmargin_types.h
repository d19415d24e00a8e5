/* xmargin: the enumerations of the data contract, one table each (FORMAT.md,
 * METHODOLOGY.md). Every property of a value lives in its row; code asks the
 * table (XM_TYPE_IS_OPTION(t), xm_type_name(t), ...), never the order of the
 * values. Adding an instrument type is one row here and one pricing function
 * (kernels/xm_pricing.h).
 *
 * Installed with xmargin.h, which includes it. Written in the common subset
 * of C99 and OpenCL C: the kernels include it too (kernels/xm_portable.h), so
 * the host and the device read the same table. Nothing here allocates. */
#ifndef XMARGIN_TYPES_H
#define XMARGIN_TYPES_H

/* Instrument types (FORMAT.md section 1, /instruments/type).
 * X(NAME, "name in the file", option, carry, settled, pricing, version)
 *   option:  priced by Black on a shocked forward and vol; takes a vol factor
 *            and counts toward the minimum (METHODOLOGY.md section 4)
 *   carry:   the forward is S exp((r - q) T) (Black-Scholes-Merton on a spot,
 *            dividend_yield used); 0: the underlying is itself the forward
 *   settled: daily settled (METHODOLOGY.md section 2.1): only the change counts
 *   pricing: the unit-value function of kernels/xm_pricing.h (XM_FN(name))
 *   version: the FORMAT.md version that brought it; books (files and views)
 *            take the types of the versions the engine revalues
 *            (XM_FORMAT_BOOK_VERSION), xm_price takes every type */
#define XM_INSTRUMENT_TYPE_MAP(X)                                                                  \
  X(SPOT, "spot", 0, 0, 0, xm_price_linear, 1)                                                     \
  X(FUTURE, "future", 0, 0, 1, xm_price_linear, 1)                                                 \
  X(OPTION, "option", 1, 1, 0, xm_price_black, 1)                                                  \
  X(FUTURE_OPTION, "future_option", 1, 0, 0, xm_price_black, 1)                                    \
  X(AMERICAN_OPTION, "american_option", 1, 1, 0, xm_price_american, 2)

/* The newest FORMAT.md version whose instrument types the engine revalues
 * (METHODOLOGY.md section 2): a book with a type of a later version is
 * refused by validation, naming the row. */
#define XM_FORMAT_BOOK_VERSION 1

typedef enum xm_instrument_type {
#define XM__TYPE_ENUM(NAME, name, option, carry, settled, pricing, version) XM_##NAME,
  XM_INSTRUMENT_TYPE_MAP(XM__TYPE_ENUM)
#undef XM__TYPE_ENUM
      XM_TYPE_COUNT
} xm_instrument_type;

/* Bit t of each mask: the property of type t (expressions, valid on the device). */
#define XM__TYPE_BIT_OPTION(NAME, name, option, carry, settled, pricing, v)                        \
  | ((option) << XM_##NAME)
#define XM__TYPE_BIT_CARRY(NAME, name, option, carry, settled, pricing, v) | ((carry) << XM_##NAME)
#define XM__TYPE_BIT_SETTLED(NAME, name, option, carry, settled, pricing, v)                       \
  | ((settled) << XM_##NAME)
#define XM__TYPE_BIT_BOOK(NAME, name, option, carry, settled, pricing, v)                          \
  | (((v) <= XM_FORMAT_BOOK_VERSION) << XM_##NAME)
#define XM_TYPES_OPTION (0 XM_INSTRUMENT_TYPE_MAP(XM__TYPE_BIT_OPTION))
#define XM_TYPES_CARRY (0 XM_INSTRUMENT_TYPE_MAP(XM__TYPE_BIT_CARRY))
#define XM_TYPES_SETTLED (0 XM_INSTRUMENT_TYPE_MAP(XM__TYPE_BIT_SETTLED))
#define XM_TYPES_BOOK (0 XM_INSTRUMENT_TYPE_MAP(XM__TYPE_BIT_BOOK))
/* 1 when type t (a valid xm_instrument_type) has the property, else 0. */
#define XM_TYPE_IS_OPTION(t) ((XM_TYPES_OPTION >> (t)) & 1)
#define XM_TYPE_HAS_CARRY(t) ((XM_TYPES_CARRY >> (t)) & 1)
#define XM_TYPE_IS_SETTLED(t) ((XM_TYPES_SETTLED >> (t)) & 1)
#define XM_TYPE_IN_BOOKS(t) ((XM_TYPES_BOOK >> (t)) & 1)

/* Factor kinds (FORMAT.md section 1, /factors/kind). X(NAME, "name") */
#define XM_FACTOR_KIND_MAP(X)                                                                      \
  X(PRICE, "price")                                                                                \
  X(VOL, "vol")                                                                                    \
  X(RATE, "rate")

typedef enum xm_factor_kind {
#define XM__KIND_ENUM(NAME, name) XM_FACTOR_##NAME,
  XM_FACTOR_KIND_MAP(XM__KIND_ENUM)
#undef XM__KIND_ENUM
      XM_FACTOR_KIND_COUNT
} xm_factor_kind;

/* Risk measures (METHODOLOGY.md section 3; a set's `measure`, the
 * configuration's historical.measure and montecarlo.measure). X(NAME, "name") */
#define XM_MEASURE_MAP(X)                                                                          \
  X(WORST, "worst")                                                                                \
  X(ES, "es")                                                                                      \
  X(VAR, "var")

typedef enum xm_measure {
#define XM__MEASURE_ENUM(NAME, name) XM_MEASURE_##NAME,
  XM_MEASURE_MAP(XM__MEASURE_ENUM)
#undef XM__MEASURE_ENUM
      XM_MEASURE_COUNT
} xm_measure;

#endif /* XMARGIN_TYPES_H */
