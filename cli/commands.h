/* The kseg subcommands and the helpers they share. Each subcommand parses its own arguments
 * (argv[0] is the subcommand name), prints its own --help, and returns the process exit code. */
#ifndef KSEG_CLI_COMMANDS_H
#define KSEG_CLI_COMMANDS_H

#include <getopt.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "kseg/kseg.h"

/* Exit codes, documented in README.md and `kseg --help`. */
enum kseg_exit_code {
    KSEG_EXIT_OK = 0,
    KSEG_EXIT_FAILURE = 1, /* bad input or a failed run: the message says why */
    KSEG_EXIT_USAGE = 2,   /* bad command line */
    /* kseg cluster stopped by SIGUSR1 or SIGTERM after writing a checkpoint (--resume it);
       85 is outside the shell's signal range (128 + n) and the codes above */
    KSEG_EXIT_CHECKPOINTED = 85
};

int kseg_cmd_cluster(int argc, char **argv);
int kseg_cmd_predict(int argc, char **argv);
int kseg_cmd_inspect(int argc, char **argv);
int kseg_cmd_generate(int argc, char **argv);
int kseg_cmd_generate_transactions(int argc, char **argv);
int kseg_cmd_import(int argc, char **argv);
int kseg_cmd_rfm(int argc, char **argv);
int kseg_cmd_run(int argc, char **argv);
int kseg_cmd_report(int argc, char **argv);

/* The long options of 'kseg import transactions' and 'kseg rfm': 'kseg run' accepts exactly these
 * (less output, quiet and help) as keys of its import and rfm sections. */
extern const struct option kseg_import_long_options[];
extern const struct option kseg_rfm_long_options[];

/* Prints "kseg COMMAND: message" on stderr for a failed library call and returns
 * KSEG_EXIT_FAILURE. */
int cli_fail(const char *command, const kseg_error *error);

/* Prints "kseg COMMAND: <formatted>" on stderr and returns exit_code. */
int cli_failf(const char *command, int exit_code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* While a command runs as a step of 'kseg run', its error and warning lines read "kseg PARENT:
 * <message> (config section 'SECTION')": the user sees one line from the command they typed.
 * cli_set_step(NULL, NULL) ends the step. */
void cli_set_step(const char *parent, const char *section);

/* Prints a warning line "kseg COMMAND: warning: <formatted>" on stderr. */
void cli_warnf(const char *command, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for option values: the whole text must be a number in range.
 * They return 0 on success and print a usage error naming the option otherwise (returning -1). */
int cli_parse_int64(const char *command, const char *option, const char *text, int64_t min,
                    int64_t max, int64_t *value);
int cli_parse_uint64(const char *command, const char *option, const char *text, uint64_t *value);
int cli_parse_double(const char *command, const char *option, const char *text, double min,
                     double max, double *value);

/* Splits "a,b,c" into a NULL-terminated malloc'd array of malloc'd strings; *count gets the
 * number. Empty names are rejected (returns -1 after printing a usage error). */
int cli_split_list(const char *command, const char *option, const char *text, char ***items,
                   size_t *count);
void cli_free_list(char **items, size_t count);

/* Non-zero when stderr is a terminal (progress lines are shown only then, unless --quiet). */
int cli_stderr_is_terminal(void);

/* Reads a whole text file into a malloc'd NUL-terminated string; what names it in messages
 * ("map file", "config"). */
int cli_read_text_file(const char *path, const char *what, char **text, kseg_error *error);

/* Writes one CSV field, quoted as RFC 4180 when it holds a comma, quote or line break. */
void cli_csv_field(FILE *out, const char *text);

/* Crash-safe text output (kseg/output.h): opens file for path and returns its stream, or prints
 * the error and returns NULL. Commit renames it over path, or prints the error (a full disk
 * included) and returns -1; the temporary file never outlives a failure. */
FILE *cli_output_open(const char *command, kseg_output_file *file, const char *path);
int cli_output_commit(const char *command, kseg_output_file *file);

/* The process's place in a distributed run (cli/distributed.c): under mpirun with the MPI build,
 * this rank and the number of ranks; otherwise rank 0 of 1. Only rank 0 prints results. */
int cli_rank(void);
int cli_size(void);

/* A communicator over every rank for a dataset of n_global rows: this rank holds the contiguous
 * rows [comm->row_offset, comm->row_offset + *row_count) (kseg_comm_split_rows). The serial
 * build fills the single-process communicator. */
void cli_comm_for_rows(kseg_comm *comm, size_t n_global, size_t *row_count);

/* Collective agreement on failure: every rank calls it with its own outcome (non-zero = failed)
 * and all get the same answer, non-zero when any rank failed, so that no rank goes on into a
 * collective call that a failed rank will never make. */
int cli_any_failed(int failed);

/* MPI start and end (main.c): the MPI build initializes MPI (MPI_THREAD_FUNNELED) and finalizes
 * it; the serial build does nothing. Start returns -1 (having printed why) when MPI fails. */
int cli_distributed_start(int *argc, char ***argv);
void cli_distributed_finish(void);

/* Every rank of a distributed run must be started with the same arguments: compares them
 * across ranks and, when they differ, rank 0 prints which rank differs from it and in which
 * argument ("rank 1 was started with '--clusters 5', rank 0 with '--clusters 4'"); then every
 * rank gets -1. 0 in the serial build and on one rank. */
int cli_check_same_arguments(int argc, char **argv);

/* Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGPIPE that remove kseg's open temporary
 * files and then die of the same signal, so the exit status still tells the shell why. */
void cli_install_signal_cleanup(void);

#endif
