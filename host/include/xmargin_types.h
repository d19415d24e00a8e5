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

/* The loss families of the revaluation kernels (kernels/xm_engine_price.h):
 * one branch-free loss function each, and a block's instruments are ordered
 * by family (host/plan.c) so that each family is one vectorisable loop. */
#define XM_LOSS_LINEAR 0   /* the level moves: value m S (or m / S, inverse) */
#define XM_LOSS_BLACK 1    /* Black on a shocked forward and vol */
#define XM_LOSS_AMERICAN 2 /* Bjerksund-Stensland (2002) */

/* Instrument types (FORMAT.md section 1, /instruments/type).
 * X(NAME, "name in the file", loss, carry, settled, funding, inverse, pricing, version)
 *   loss:    the family above; an option is a type not XM_LOSS_LINEAR: it
 *            takes a vol factor and counts toward the minimum (METHODOLOGY.md
 *            section 4)
 *   carry:   the forward is S exp((r - q) T) (Black-Scholes-Merton on a spot,
 *            dividend_yield used); 0: the underlying is itself the forward
 *   settled: daily settled (METHODOLOGY.md section 2.1): only the change
 *            counts, converted at the scenario's rate (section 2.2); else a
 *            value type
 *   funding: pays funding_rate over the horizon (section 2.3)
 *   inverse: coin-settled on the quote price: valued in the coin, 1/F
 *            (section 2.1); its currency must be in /fx
 *   pricing: the unit-value function of kernels/xm_pricing.h (XM_FN(name))
 *   version: the FORMAT.md version that brought it; books (files and views)
 *            take the types of the versions the engine revalues
 *            (XM_FORMAT_BOOK_VERSION), xm_price takes every type */
#define XM_INSTRUMENT_TYPE_MAP(X)                                                                  \
  X(SPOT, "spot", XM_LOSS_LINEAR, 0, 0, 0, 0, xm_price_linear, 1)                                  \
  X(FUTURE, "future", XM_LOSS_LINEAR, 0, 1, 0, 0, xm_price_linear, 1)                              \
  X(OPTION, "option", XM_LOSS_BLACK, 1, 0, 0, 0, xm_price_black, 1)                                \
  X(FUTURE_OPTION, "future_option", XM_LOSS_BLACK, 0, 0, 0, 0, xm_price_black, 1)                  \
  X(AMERICAN_OPTION, "american_option", XM_LOSS_AMERICAN, 1, 0, 0, 0, xm_price_american, 2)        \
  X(PERPETUAL, "perpetual", XM_LOSS_LINEAR, 0, 1, 1, 0, xm_price_linear, 2)                        \
  X(INVERSE_FUTURE, "inverse_future", XM_LOSS_LINEAR, 0, 1, 0, 1, xm_price_inverse, 2)             \
  X(INVERSE_PERPETUAL, "inverse_perpetual", XM_LOSS_LINEAR, 0, 1, 1, 1, xm_price_inverse, 2)       \
  X(INVERSE_OPTION, "inverse_option", XM_LOSS_BLACK, 0, 0, 0, 1, xm_price_inverse_black, 2)

/* The newest FORMAT.md version whose instrument types the engine revalues
 * (METHODOLOGY.md section 2): a book with a type of a later version is
 * refused by validation, naming the row. */
#define XM_FORMAT_BOOK_VERSION 2

typedef enum xm_instrument_type {
#define XM__TYPE_ENUM(NAME, name, loss, carry, settled, funding, inverse, pricing, version)        \
  XM_##NAME,
  XM_INSTRUMENT_TYPE_MAP(XM__TYPE_ENUM)
#undef XM__TYPE_ENUM
      XM_TYPE_COUNT
} xm_instrument_type;

/* Bit t of each mask: the property of type t (expressions, valid on the device). */
#define XM__TYPE_BIT(NAME, cond) | ((cond) << XM_##NAME)
#define XM__TB_OPTION(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, (loss) != 0)
#define XM__TB_BLACK(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, (loss) == 1)
#define XM__TB_AMERICAN(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, (loss) == 2)
#define XM__TB_CARRY(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, ca)
#define XM__TB_SETTLED(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, se)
#define XM__TB_FUNDING(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, fu)
#define XM__TB_INVERSE(NAME, nm, loss, ca, se, fu, in, pr, v) XM__TYPE_BIT(NAME, in)
#define XM__TB_BOOK(NAME, nm, loss, ca, se, fu, in, pr, v)                                         \
  XM__TYPE_BIT(NAME, (v) <= XM_FORMAT_BOOK_VERSION)
#define XM_TYPES_OPTION (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_OPTION))
#define XM_TYPES_BLACK (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_BLACK))
#define XM_TYPES_AMERICAN (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_AMERICAN))
#define XM_TYPES_CARRY (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_CARRY))
#define XM_TYPES_SETTLED (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_SETTLED))
#define XM_TYPES_FUNDING (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_FUNDING))
#define XM_TYPES_INVERSE (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_INVERSE))
#define XM_TYPES_BOOK (0 XM_INSTRUMENT_TYPE_MAP(XM__TB_BOOK))
/* 1 when type t (a valid xm_instrument_type) has the property, else 0. */
#define XM_TYPE_IS_OPTION(t) ((XM_TYPES_OPTION >> (t)) & 1)
#define XM_TYPE_HAS_CARRY(t) ((XM_TYPES_CARRY >> (t)) & 1)
#define XM_TYPE_IS_SETTLED(t) ((XM_TYPES_SETTLED >> (t)) & 1)
#define XM_TYPE_HAS_FUNDING(t) ((XM_TYPES_FUNDING >> (t)) & 1)
#define XM_TYPE_IS_INVERSE(t) ((XM_TYPES_INVERSE >> (t)) & 1)
#define XM_TYPE_IN_BOOKS(t) ((XM_TYPES_BOOK >> (t)) & 1)
/* The loss family (XM_LOSS_*) of type t. */
#define XM_TYPE_LOSS(t) (((XM_TYPES_BLACK >> (t)) & 1) | (((XM_TYPES_AMERICAN >> (t)) & 1) << 1))

/* Factor kinds (FORMAT.md section 1, /factors/kind). X(NAME, "name")
 * price: S' = S exp(x); vol, rate: v' = v + x; logvol (version 2): a vol
 * factor whose shock moves linked options' vols relatively, v' = v exp(x)
 * (METHODOLOGY.md section 2). */
#define XM_FACTOR_KIND_MAP(X)                                                                      \
  X(PRICE, "price")                                                                                \
  X(VOL, "vol")                                                                                    \
  X(RATE, "rate")                                                                                  \
  X(LOGVOL, "logvol")

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
