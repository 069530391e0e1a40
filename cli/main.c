/* The kseg command: dispatches to subcommands, prints the top-level help and version. The CLI
 * owns printing and exit codes; the library only returns errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"run", kseg_cmd_run,
     "the whole pipeline from a YAML config: RFM, k-means, named segments, report"},
    {"cluster", kseg_cmd_cluster, "cluster customer features with k-means and write a model"},
    {"predict", kseg_cmd_predict, "assign new customers to the clusters of a saved model"},
    {"rfm", kseg_cmd_rfm,
     "score customers by recency, frequency and monetary value; name RFM segments"},
    {"import", kseg_cmd_import, "import a CSV transaction log into HDF5 (kseg import transactions)"},
    {"generate", kseg_cmd_generate,
     "write synthetic customers, transactions, or test blobs"},
    {"report", kseg_cmd_report, "print or redraw (HTML, JSON, CSV) the report of a 'kseg run'"},
    {"inspect", kseg_cmd_inspect, "list the groups, datasets, shapes and columns of an HDF5 file"},
};

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: kseg COMMAND [OPTIONS]\n"
            "\n"
            "kseg turns a customer base into named, mutually exclusive segments.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out,
            "\n"
            "Run 'kseg COMMAND --help' for the options of a command.\n"
            "\n"
            "exit status: 0 success, 1 bad input or failed run (one line on stderr says why),\n"
            "             2 bad command line, 85 'kseg cluster' stopped by SIGUSR1 or SIGTERM after\n"
            "             writing its checkpoint (continue with --resume).\n"
            "environment: OMP_NUM_THREADS sets the default thread count (--threads overrides).\n"
            "             KSEG_MEMORY_LIMIT caps the memory kseg plans to use (e.g. 8G): a job that\n"
            "             needs more is refused before it allocates, with both amounts named.\n"
            "             OPENBLAS_NUM_THREADS is set to 1 (kseg re-executes itself once to do so).\n"
            "signals:     SIGINT, SIGTERM, SIGHUP remove the temporary files of unfinished outputs;\n"
            "             existing outputs are replaced only by complete new ones. 'kseg cluster'\n"
            "             writes a checkpoint instead (exit 85) on SIGTERM during the fit and on\n"
            "             SIGUSR1 before the fit ends (SIGUSR1 is ignored while it writes).\n");
}

/* Whether /proc/self/exe is the file this code was loaded from. It is not when kseg was started
 * through the dynamic loader ("ld-linux.so ./kseg ..."), and executing /proc/self/exe would then
 * run the loader with kseg's arguments. The file holding this function is found in
 * /proc/self/maps and compared with /proc/self/exe by device and inode. */
static int executable_is_this_program(void)
{
    uintptr_t here = (uintptr_t)&executable_is_this_program;
    char line[4096 + 128], path[4096] = "";
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return 0;
    while (!path[0] && fgets(line, sizeof line, maps)) {
        unsigned long long start, end;
        int offset = 0;
        if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &start, &end, &offset) < 2 || !offset)
            continue;
        if (here >= start && here < end && line[offset] == '/') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(path, sizeof path, "%s", line + offset);
        }
    }
    fclose(maps);
    struct stat mapped, executable;
    return path[0] && stat(path, &mapped) == 0 && stat("/proc/self/exe", &executable) == 0 &&
           mapped.st_dev == executable.st_dev && mapped.st_ino == executable.st_ino;
}

/* OpenBLAS starts a pool of threads (one per core) when it is loaded, before main, unless
 * OPENBLAS_NUM_THREADS says otherwise. kseg calls BLAS only from inside its own OpenMP regions,
 * one call per thread, so that pool never does any work; worse, under an address-space limit
 * (ulimit -v, as some batch systems set) its threads fail to allocate their buffers, spin, and
 * hang the process at exit. So the first thing kseg does is to set OPENBLAS_NUM_THREADS=1 and
 * execute itself again, once (the variable is set before the exec, so there is no loop); if
 * that is not possible it simply goes on with the pool. */
static void start_without_blas_thread_pool(char **argv)
{
    if (getenv("OPENBLAS_NUM_THREADS") || !executable_is_this_program())
        return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

/* The commands, after MPI has started (the MPI build) and before it ends. */
static int run_command(int argc, char **argv);

int main(int argc, char **argv)
{
    /* The re-execution comes first: MPI must be initialized by the process that stays. */
    start_without_blas_thread_pool(argv);
    if (cli_distributed_start(&argc, &argv)) {
        cli_distributed_finish();
        return KSEG_EXIT_FAILURE;
    }
    int exit_code = run_command(argc, argv);
    cli_distributed_finish();
    return exit_code;
}

static int run_command(int argc, char **argv)
{
    kseg_io_skip_exit_cleanup();
    cli_install_signal_cleanup();
    /* Ranks of one run that were started differently would split at the first collective call
       and wait for each other forever: they are refused together instead. */
    if (cli_check_same_arguments(argc, argv))
        return KSEG_EXIT_USAGE;
    if (argc < 2) {
        print_help(stderr);
        return KSEG_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return KSEG_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kseg %s\n", kseg_version_string());
        return KSEG_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kseg: unknown command '%s' (run 'kseg --help' for the list)\n", argv[1]);
    return KSEG_EXIT_USAGE;
}
