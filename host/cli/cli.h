/* Subcommands of the xmargin CLI: each one in its own file. Exit status:
 * 0 success, 1 a failure of the run (device, I/O), 2 bad input or usage. */
#ifndef XM_CLI_H
#define XM_CLI_H

#include "xmargin.h"

#define XM_EXIT_OK 0
#define XM_EXIT_FAIL 1
#define XM_EXIT_USAGE 2

int xm_cli_run(int argc, char **argv);
int xm_cli_devices(int argc, char **argv);
int xm_cli_validate(int argc, char **argv);
int xm_cli_config(int argc, char **argv);
int xm_cli_generate(int argc, char **argv);
int xm_cli_backtest(int argc, char **argv);
int xm_cli_import(int argc, char **argv);
int xm_cli_whatif(int argc, char **argv);

/* ---- CSV files (cli_csv.c: RFC 4180) ---- */

typedef struct xm__csv {
  const char *path; /* as given on the command line */
  char *buf;        /* the file, the cells written into it NUL-terminated */
  int ncols;
  char **head;   /* [ncols] */
  int64_t nrows; /* data rows */
  char **cell;   /* [nrows x ncols] */
  int64_t *line; /* [nrows] the line each row starts on (1-based) */
} xm__csv;

/* Reads path into c. Returns 0, 2 (bad input, message printed) or 1 (memory). */
int xm__csv_read(const char *path, xm__csv *c);
void xm__csv_free(xm__csv *c);
/* The column index of name, or -1. */
int xm__csv_col(const xm__csv *c, const char *name);
/* The cell (row r, column j); "" for an absent column (j < 0). */
const char *xm__csv_at(const xm__csv *c, int64_t r, int j);

/* Maps a library status to the CLI's exit status. */
int xm_cli_exit_status(xm_status st);

/* ---- What `run` and `backtest` share (cli_job.c) ---- */

#define XM_CLI_SETS_MAX 64
#define XM_CLI_KEYS_MAX 8

/* A configuration key an option of its own sets (--precision, --days),
 * applied after every --set. */
typedef struct xm_cli_key {
  const char *option, *key, *value;
} xm_cli_key;

/* A job's command line. The strings point into argv. */
typedef struct xm_cli_job {
  const char *cmd; /* "xmargin run": what messages start with */
  const char *portfolio, *scenarios, *output, *config, *device;
  const char *sets[XM_CLI_SETS_MAX]; /* --set KEY=VALUE, in order */
  int nsets;
  xm_cli_key keys[XM_CLI_KEYS_MAX];
  int nkeys;
  int save_scenarios, json, quiet, threads;
  uint64_t mem_limit;
} xm_cli_job;

/* Takes argv[*i] when it is an option both commands have: --portfolio,
 * --scenarios, -o/--output, --config, --device, --precision, --set,
 * --mem-limit, --threads, --save-scenarios, --json, -q/--quiet. Returns 1
 * (taken; *i is moved past its value), 0 (not one of them), -1 (a missing or
 * bad value: the message is printed; exit status 2). */
int xm_cli_job_option(xm_cli_job *j, int argc, char **argv, int *i);
/* The value of option argv[*i] (*i moved to it), or NULL after the message
 * that it needs one. */
const char *xm_cli_job_value(const xm_cli_job *j, int argc, char **argv, int *i);
/* Adds a key option (option names it in messages): 1, or -1 when there are
 * too many (message printed). */
int xm_cli_job_key(xm_cli_job *j, const char *option, const char *key, const char *value);

/* A job's inputs. */
typedef struct xm_cli_inputs {
  xm_config cfg;
  xm_portfolio pf;
  xm_scenario_file sf;
  xm_diag diag; /* the readers' messages; a writer may add its own */
  xm_ctx *ctx;
  double t_start, t_read; /* xm_now() at the start; seconds to read the inputs */
  char device[512];       /* "cpu: NAME [PLATFORM]": set by xm_cli_job_ran */
} xm_cli_inputs;

/* Before any work: the output may be written and is none of the inputs, the
 * input names fit. Then the configuration (the defaults, --config, --set,
 * the key options), both files read, the context on the chosen device (the
 * choice said on stderr unless quiet or json). Returns -1 when everything is
 * ready, else the exit status, after the message. *in is freed with
 * xm_cli_inputs_free in either case. */
int xm_cli_job_open(const xm_cli_job *j, xm_cli_inputs *in);
void xm_cli_inputs_free(xm_cli_inputs *in);
/* After the engine ran with status st: on failure the message (with the
 * context's detail) and the exit status; else the run's remarks (notes, one a
 * line: all unless quiet, warnings always) to stderr, in->device set to the
 * device it ran on (auto may have left a failing one), and -1. */
int xm_cli_job_ran(const xm_cli_job *j, xm_cli_inputs *in, xm_status st, const char *notes);
/* What the output file records about the job: its inputs, the device, the
 * seconds since the start. */
xm_run_meta xm_cli_job_meta(const xm_cli_job *j, const xm_cli_inputs *in);
/* After the writer returned st: -1 on success, else the messages and exit
 * status 1. */
int xm_cli_job_wrote(const xm_cli_job *j, xm_cli_inputs *in, xm_status st);
/* The progress callback of a job: a bar on stderr when it is a terminal and
 * the job prints a text summary; else NULL. */
xm_progress_fn xm_cli_progress_for(const xm_cli_job *j);

/* ---- The processes of a job (cli_procs.c; docs/scaling.md) ---- */

/* Rank and size in MPI_COMM_WORLD and on the node; mpi: MPI was started
 * (an XM_WITH_MPI build launched by mpirun). Else rank 0 of 1. */
typedef struct xm_cli_procs {
  int rank, size, local_rank, local_size, mpi;
} xm_cli_procs;

/* Starts MPI when the build has it and a launcher started the process. */
void xm_cli_procs_init(int *argc, char ***argv);
void xm_cli_procs_end(void);
const xm_cli_procs *xm_cli_procs_get(void);
/* Every rank's rc (-1: fine, else an exit status): the worst, on every rank. */
int xm_cli_procs_agree(int rc);
/* A rank's job: its messages name it (cmd, a buffer of cap bytes), ranks
 * other than 0 print no summary, the node's cores shared (unless --threads),
 * one GPU a rank by its rank on the node (unless --device names one). */
void xm_cli_procs_job(xm_cli_job *j, char *cmd, size_t cap);
/* Fault injection for tests, XM_TEST_FAIL_RANK=R[:fail|:kill|:failwrite|
 * :killwrite|:failsplit] in a job of several ranks: rank R's run fails
 * ("run": returns 1, the caller fails it with XM_ERESOURCE), the rank is
 * killed (SIGKILL) before the gather ("gather") or before its part of the
 * write ("write"), its part of the write is refused ("write": returns 1, the
 * caller passes an invalid range), or its part of a scenario split fails
 * inside the collective run ("split": returns 1, the caller passes an
 * invalid option). 0 elsewhere. */
int xm_cli_procs_fault(const char *when);
/* run --split scenarios under mpirun: xm_run_scenario_ranks on
 * MPI_COMM_WORLD (res: the whole book's on rank 0, empty elsewhere);
 * XM_TEST_FAIL_RANK=R:failsplit makes rank R's part fail inside it. */
xm_status xm_cli_procs_run_scenarios(const xm_cli_job *j, xm_cli_inputs *in, const xm_run_opts *eo,
                                     xm_run_result *res);
/* After the engine ran with st: xm_cli_job_ran (or XM_TEST_FAIL_RANK's
 * failure), agreed by every rank: -1 to go on, else the exit status. */
int xm_cli_procs_ran(const xm_cli_job *j, xm_cli_inputs *in, xm_status st, const char *notes);
/* After a gather returned g (0, or 1 / 2 with err; err "" when the message
 * was printed already): agreed by every rank, -1 to go on, else the status. */
int xm_cli_procs_gathered(const xm_cli_job *j, int g, const char *err);
/* This rank's accounts [a0, a1): contiguous ranges in rank order, each of
 * about the same positions (an account weighs its positions and 1). */
void xm_cli_procs_accounts(const xm_portfolio *pf, int64_t *a0, int64_t *a1);
/* Gathers every rank's rows of res into rank 0's (the whole book's, as one
 * process would have them). 0, or 1 (a failure) / 2 (too large) with err. */
int xm_cli_procs_gather(const xm_portfolio *pf, xm_run_result *res, char *err, size_t cap);

/* The results file of a run: one process's writer, or under mpirun every
 * rank's part (xm_run_result_write_ranks: rank 0's res gathered, each
 * rank's /pnl columns those of its accounts [a0, a0 + na); XM_TEST_FAIL_RANK's
 * "write" fault gives the writer a range it refuses). Collective. */
xm_status xm_cli_procs_write(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                             const xm_run_result *res, const xm_run_meta *meta, int64_t a0,
                             int64_t na, xm_diag *diag);
/* The backtest file, as xm_cli_procs_write: under mpirun each rank writes its
 * days [j0, j1) of the saved shocks (xm_backtest_result_write_ranks). */
xm_status xm_cli_procs_write_days(const char *path, const xm_portfolio *pf, const xm_config *cfg,
                                  const xm_backtest_result *res, const xm_run_meta *meta,
                                  int64_t j0, int64_t j1, xm_diag *diag);
/* After either write with st, agreed by every rank: -1 to go on, else the
 * exit status. Rank 0, and a rank with messages of its own, says why. */
int xm_cli_procs_wrote(const xm_cli_job *j, xm_cli_inputs *in, xm_status st);
/* A backtest's days split: this rank's [j0, j1) of N, contiguous in rank order. */
void xm_cli_procs_days(int64_t N, int64_t *j0, int64_t *j1);
/* Gathers every rank's days of r's series (margins, realised losses, silos,
 * binding sets, the book's totals) into rank 0's r; its statistics are then
 * xm_backtest_statistics'. 0, or 1 / 2 with err, as xm_cli_procs_gather. */
int xm_cli_procs_gather_days(xm_backtest_result *r, int64_t j0, int64_t j1, char *err, size_t cap);

/* The per-account arrays of an xm_run_result, each with its values an
 * account: D(field, width) double, I(field, width) int32 (never NULL); the
 * widths name G (silos) and K (sets) of the place that expands it. */
/* clang-format off: a list, one entry a line (clang-format is not stable on it) */
#define XM_CLI_RESULT_ROWS(D, I)                                                                   \
  D(requirement, 1)                                                                                \
  D(unified, 1)                                                                                    \
  D(siloed, 1)                                                                                     \
  D(diversification, 1)                                                                            \
  D(minimum, 1)                                                                                    \
  D(by_set, K)                                                                                     \
  D(by_silo, G)                                                                                    \
  D(attribution, G)                                                                                \
  I(binding, 1)                                                                                    \
  D(liquidity, 1)                                                                                  \
  D(liquidity_by_silo, G)                                                                          \
  D(requirement_by_silo, G)                                                                        \
  D(hedge_credit, 1)                                                                               \
  D(cross_margined, 1)                                                                             \
  I(minimum_binds, 1)                                                                              \
  D(collateral_value, 1)                                                                           \
  D(collateral, 1)                                                                                 \
  D(excess, 1)                                                                                     \
  D(call, 1)                                                                                       \
  D(call_siloed, 1)                                                                                \
  D(to_reporting, 1)
/* clang-format on */

#endif
