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

/* Maps a library status to the CLI's exit status. */
int xm_cli_exit_status(xm_status st);

#endif
