/* The backend interface: one small table of operations per kind of device
 * (ARCHITECTURE.md). The engine (host/engine.c) owns the loop nest and every
 * buffer; a backend only allocates, moves bytes and runs one step of the
 * computation over buffers the engine hands it. A backend never writes a
 * buffer the engine did not give it as an output, and never the engine's host
 * arrays. Internal to libxmargin. */
#ifndef XM_BACKEND_H
#define XM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "xm_reduce.h" /* xm_layout */
#include "xmargin.h"

/* A buffer on the backend's device: host memory for the cpu backend, an
 * OpenCL buffer for opencl. Opaque to the engine. */
typedef struct xm__mem_s *xm__mem;

/* One account block on the device (host/plan.c builds its host side). */
typedef struct xm__dblock {
  int64_t n;                         /* instrument rows, by revaluation class: */
  int64_t cls[XM_CLASS_COUNT + 1];   /* rows [cls[c], cls[c + 1]) are of class c */
  int64_t na;                        /* accounts */
  xm__mem instd, insti;              /* [XM_ND x n], [XM_NI x n] */
  xm__mem start, pinst, psilo, pqty; /* positions, CSR by account */
  xm__mem cross;                     /* [na] */
  /* The liquidity add-on (when the plan has one, else NULL): the rows for
   * the sensitivities (instd_s: today at dt = 0; insti_s: slot columns),
   * their delta-notionals [XM_NSLOT x n], the exposures and X_b [na]. */
  xm__mem instd_s, insti_s, sens;
  xm__mem lq_start, lq_fac, lq_cstart, lq_contrib, xb;
} xm__dblock;

/* Sets a group (host/plan.c) has at most: the reduce step's tail scratch. */
#define XM__GROUP_SETS 32

/* A block's rows of one revaluation class come in multiples of this many
 * (host/plan.c pads each class with copies of its last row, which no
 * position reads): the cpu backend revalues them 8 at a time, every row in
 * the vector code (the widest vector, AVX-512's 8 doubles), so that a row's
 * loss does not depend on where in its block it falls: a run of some of a
 * book's accounts gives each the bits of the whole book's run. */
#define XM__ROW_ALIGN 8

/* Scenarios the cpu backend revalues and aggregates at a time (a row's are
 * two 8-double vectors): its tiles are whole blocks of them a thread
 * (host/tuning.c). */
#define XM__CPU_TW 16

/* One scenario set of a group as the reduction sees it. */
typedef struct xm__dset {
  int64_t S, k;    /* scenarios, tail count */
  int64_t measure; /* xm_measure */
  int64_t row;     /* its first row in L */
  int64_t x;       /* its index among the K sets (of by, silo, attr) */
  int64_t w_off;   /* its weights from w->W[w_off] on, or -1 (all 1) */
} xm__dset;

/* A streamed chunk's part of one set (xm__plan.streamed): its rows r0 ..
 * r0 + ns of L update the tails of set j of the group (its xm__dset). */
typedef struct xm__tseg {
  int64_t j;
  int64_t r0, ns;
  int64_t first;   /* 1: the set's first scenarios (its tails start empty) */
  int64_t k;       /* its tail count */
  int64_t measure; /* xm_measure */
  int64_t w_off;   /* the weight of its first scenario in w->W, or -1 (all 1) */
} xm__tseg;

/* The per-block work buffers (sized by the plan for its largest block). */
typedef struct xm__dwork {
  int G;                  /* silos */
  int64_t K;              /* sets */
  xm_layout lay;          /* of L for the group's rows, from the backend's layout op */
  xm__mem ell;            /* [tile x n] contract losses */
  xm__mem L;              /* [rows x na x (G + 1)] account and silo losses of a group */
  xm__mem W;              /* every set's weights (xm__dset.w_off), or NULL */
  xm__mem by, silo, attr; /* [na x K], [na x G x K] x 2 */
  xm__mem tail;           /* [min(K, XM__GROUP_SETS) x na x XM_TAIL] reduce's scratch */
  /* streamed (L holds a chunk of a group's rows): every set of the group's
   * running tails, set j's account a at T[(j * na + a) * XM_TREC(G, tk)];
   * tk the group's largest k (1 for worst: xm__group.tk). NULL: L holds the
   * group's rows. */
  xm__mem T;
  int64_t tk;
  xm__mem out_acct, out_silo; /* [na x XM_NOUT], [na x G x XM_NSILO] */
  xm__mem lq;                 /* [na x (G + 1)] liquidity add-ons (0 without) */
  /* what combine combines (xm_combine_account): the kd sets from set x0 on
   * (a backtest's day; a run: all K from 0), the first kown its own and the
   * rest rx further (xm_combine_col: a batch's shared sets), and among them
   * the stressed period (-1: none), its weight, 1 when it has no scenario (a
   * backtest day before it) */
  int64_t x0, kd, kown, rx;
  int64_t sp;
  double sp_w;
  int sp_empty;
} xm__dwork;

/* The Monte Carlo draws of METHODOLOGY.md section 1: X = diag(scale) Z L^T. */
typedef struct xm__mc_args {
  uint64_t seed;
  int student_t;
  double dof, horizon;
  int64_t F;
  const double *chol; /* [F x F] lower Cholesky factor, row-major (host) */
  const char *set;    /* its name, for messages */
} xm__mc_args;

typedef struct xm__backend {
  const char *name;
  xm_backend_kind kind;
  int host_memory; /* its buffers are this process's memory (the plan counts the host's too) */
  /* Appends this backend's devices to list[*n..] (growing it by realloc;
   * *cap its capacity). */
  xm_status (*list)(xm_device_info **list, size_t *n, size_t *cap);
  /* Sets up the device of ctx->dev (builds programs); close undoes it, also
   * after a failed open. */
  xm_status (*open)(xm_ctx *ctx);
  void (*close)(xm_ctx *ctx);
  xm_status (*price)(xm_ctx *ctx, xm_precision prec, const xm_contracts *c, double *out);

  /* ---- one run: begin, the steps, end ---- */
  xm_status (*begin)(xm_ctx *ctx, xm_precision prec);
  void (*end)(xm_ctx *ctx);
  /* Buffers. alloc: bytes, a copy of init when init is not NULL. view: a
   * read-only buffer of the host array (the cpu backend does not copy; it
   * must stay alive until released). */
  xm_status (*alloc)(xm_ctx *ctx, size_t bytes, const void *init, xm__mem *out);
  xm_status (*view)(xm_ctx *ctx, const void *host, size_t bytes, xm__mem *out);
  void (*release)(xm_ctx *ctx, xm__mem m);
  xm_status (*upload)(xm_ctx *ctx, xm__mem dst, size_t off, const void *src, size_t bytes);
  xm_status (*download)(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t bytes);
  /* n rows of row bytes, pitch bytes apart from off, to dst one after the other. */
  xm_status (*download_rows)(xm_ctx *ctx, void *dst, xm__mem src, size_t off, size_t row,
                             size_t pitch, size_t n);
  /* Waits until every step asked for has run. */
  xm_status (*finish)(xm_ctx *ctx);
  /* The layout of L its kernels write, and the bytes its reduce step
   * allocates for a set of S scenarios (the plan counts them). */
  xm_layout (*layout)(int64_t S, int64_t na, int G);
  uint64_t (*reduce_scratch)(const xm_ctx *ctx, int64_t S, int G);
  /* Bytes of device temporaries mc needs for ns scenarios of F factors,
   * at most max_bytes (it works in chunks that fit). */
  uint64_t (*mc_scratch)(const xm_ctx *ctx, int64_t ns, int64_t F, uint64_t max_bytes);
  /* The tile it runs best with for n instruments, or 0 for "as large as fits". */
  int64_t (*preferred_tile)(const xm_ctx *ctx, int64_t n);

  /* Monte Carlo scenarios s0 .. s0 + ns of a set into rows r0 .. r0 + ns of
   * X and EX = exp(X) [. x F], within max_bytes of temporaries. */
  xm_status (*mc)(xm_ctx *ctx, const xm__mc_args *a, int64_t s0, int64_t ns, int64_t r0,
                  uint64_t max_bytes, xm__mem X, xm__mem EX);
  /* EX = exp(X), elements off .. off + m. */
  xm_status (*exp_shocks)(xm_ctx *ctx, int64_t off, int64_t m, xm__mem X, xm__mem EX);
  /* Today's values and the scenario-independent terms of the block's
   * instruments (into its instd: a copy the engine made for the device). */
  xm_status (*today)(xm_ctx *ctx, const xm__dblock *b, double dt, double p);
  /* Contract losses of scenarios in rows row0 .. row0 + ns of X / EX [. x F]
   * into ell. */
  xm_status (*revalue)(xm_ctx *ctx, const xm__dblock *b, xm__mem X, xm__mem EX, int64_t F,
                       int64_t row0, int64_t ns, double vol_floor, xm__mem ell);
  /* Account and silo losses of scenarios s0 .. s0 + ns from ell into L. */
  xm_status (*aggregate)(xm_ctx *ctx, const xm__dblock *b, int64_t s0, int64_t ns,
                         const xm__dwork *w);
  /* The measures (by, silo) and attributions (attr) of the n sets of one
   * group from their rows of L, in one step (n <= XM__GROUP_SETS). */
  xm_status (*reduce)(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                      const xm__dwork *w);
  /* Streamed: the tails of the n segments' sets from their rows of L (one
   * chunk's; n <= XM__GROUP_SETS), then (tail_reduce) the n sets' measures
   * and attributions from their tails, as reduce makes them from L. */
  xm_status (*tail)(xm_ctx *ctx, const xm__dblock *b, const xm__tseg *seg, int n,
                    const xm__dwork *w);
  xm_status (*tail_reduce)(xm_ctx *ctx, const xm__dblock *b, const xm__dset *ds, int n,
                           const xm__dwork *w);
  /* The block's liquidity add-ons into w->lq: the delta-notionals of its
   * rows (xm_sens_row on instd_s / insti_s, which today has prepared at
   * dt = 0) into b->sens, then each account's (xm_liquidity_account). sx,
   * sex: the sensitivity shock rows; fpar [3 x F]. */
  xm_status (*liquidity)(xm_ctx *ctx, const xm__dblock *b, xm__mem sx, xm__mem sex, xm__mem fpar,
                         int64_t F, double vol_floor, const xm__dwork *w);
  /* dst[0..n) += src[0..n) (doubles): an incremental run's kept losses
   * onto the trades' (xm__increment). */
  xm_status (*add)(xm_ctx *ctx, int64_t n, xm__mem src, xm__mem dst);
  /* The block's requirements (out_acct, out_silo) from every set's measures
   * and w->lq. */
  xm_status (*combine)(xm_ctx *ctx, const xm__dblock *b, const xm__dwork *w, double offset_cap,
                       double per_contract, double beta);
} xm__backend;

/* The registry (host/ctx.c): every backend compiled in, best first. */
extern const xm__backend xm__backend_cpu;
#if XM_WITH_OPENCL
extern const xm__backend xm__backend_opencl;
#endif

#endif
