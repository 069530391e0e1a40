/* The CLI's view of a distributed run: rank, size, the per-dataset communicator and collective
 * agreement on failures. The serial build is rank 0 of 1 with the single-process communicator;
 * the MPI build (KSEG_WITH_MPI) starts MPI in main and answers from MPI_COMM_WORLD. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"

#ifndef KSEG_WITH_MPI

int cli_distributed_start(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

void cli_distributed_finish(void)
{
}

int cli_check_same_arguments(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int cli_rank(void)
{
    return 0;
}

int cli_size(void)
{
    return 1;
}

void cli_comm_for_rows(kseg_comm *comm, size_t n_global, size_t *row_count)
{
    kseg_comm_serial(comm, n_global);
    *row_count = n_global;
}

int cli_any_failed(int failed)
{
    return failed != 0;
}

#else

#include <mpi.h>
#include <stdio.h>

static int mpi_started, world_rank, world_size = 1;

int cli_distributed_start(int *argc, char ***argv)
{
    /* Only the main thread calls MPI (OpenMP threads never do), so FUNNELED suffices. */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "kseg: MPI_Init_thread failed\n");
        return -1;
    }
    mpi_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "kseg: the MPI library does not support MPI_THREAD_FUNNELED\n");
        return -1;
    }
    return 0;
}

void cli_distributed_finish(void)
{
    if (mpi_started)
        MPI_Finalize();
    mpi_started = 0;
}

int cli_rank(void)
{
    return world_rank;
}

int cli_size(void)
{
    return world_size;
}

void cli_comm_for_rows(kseg_comm *comm, size_t n_global, size_t *row_count)
{
    size_t offset;
    /* kseg_comm_mpi only fails when MPI cannot report rank and size, which MPI_Init already
       did; the fallback keeps comm usable as a single rank. */
    if (kseg_comm_mpi(comm, MPI_COMM_WORLD, n_global, NULL)) {
        kseg_comm_serial(comm, n_global);
        *row_count = n_global;
        return;
    }
    kseg_comm_split_rows(n_global, comm->size, comm->rank, &offset, row_count);
}

int cli_any_failed(int failed)
{
    int local = failed != 0, any = 1;
    if (world_size == 1)
        return local;
    if (MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return 1;
    return any;
}

/* The arguments joined with NUL separators (argv[0], the program path, is left out: it may
   differ between nodes without changing the run). */
static char *join_arguments(int argc, char **argv, int *bytes)
{
    size_t total = 0;
    for (int i = 1; i < argc; i++)
        total += strlen(argv[i]) + 1;
    if (total > (size_t)1 << 30)
        return NULL;
    char *joined = malloc(total ? total : 1), *cursor = joined;
    if (!joined)
        return NULL;
    for (int i = 1; i < argc; i++) {
        size_t length = strlen(argv[i]) + 1;
        memcpy(cursor, argv[i], length);
        cursor += length;
    }
    *bytes = (int)total;
    return joined;
}

/* The argument at index in a joined list (NULL past its end). */
static const char *argument_at(const char *joined, int bytes, int index)
{
    const char *cursor = joined, *end = joined + bytes;
    for (int i = 0; cursor < end; i++) {
        if (i == index)
            return cursor;
        cursor += strlen(cursor) + 1;
    }
    return NULL;
}

/* "'--clusters 5'": the argument with the option it is the value of, when it is one. */
static void describe_argument(const char *joined, int bytes, int index, char *text, size_t size)
{
    const char *argument = argument_at(joined, bytes, index);
    const char *before = index > 0 ? argument_at(joined, bytes, index - 1) : NULL;
    if (!argument)
        snprintf(text, size, "no argument %d", index + 1);
    else if (before && before[0] == '-' && argument[0] != '-' && !strchr(before, '='))
        snprintf(text, size, "'%s %s'", before, argument);
    else
        snprintf(text, size, "'%s'", argument);
}

int cli_check_same_arguments(int argc, char **argv)
{
    if (world_size == 1)
        return 0;
    int bytes = 0, failed = 0;
    char *joined = join_arguments(argc, argv, &bytes);
    int *lengths = malloc((size_t)world_size * sizeof *lengths);
    int *offsets = malloc((size_t)world_size * sizeof *offsets);
    char *all = NULL;
    if (!joined || !lengths || !offsets)
        failed = 1;
    if (cli_any_failed(failed)) {
        if (failed)
            fprintf(stderr, "kseg: rank %d: out of memory comparing the arguments\n", world_rank);
        goto done;
    }
    failed = MPI_Allgather(&bytes, 1, MPI_INT, lengths, 1, MPI_INT, MPI_COMM_WORLD) != MPI_SUCCESS;
    long long total = 0;
    for (int r = 0; !failed && r < world_size; r++) {
        offsets[r] = (int)total;
        total += lengths[r];
    }
    if (!failed && (total > (long long)1 << 30 || !(all = malloc((size_t)total + 1))))
        failed = 1;
    if (cli_any_failed(failed)) {
        if (failed)
            fprintf(stderr, "kseg: rank %d: cannot compare the arguments of the ranks\n",
                    world_rank);
        failed = 1;
        goto done;
    }
    if (MPI_Allgatherv(joined, bytes, MPI_CHAR, all, lengths, offsets, MPI_CHAR,
                       MPI_COMM_WORLD) != MPI_SUCCESS) {
        failed = 1;
        goto done;
    }
    /* Every rank holds every list: the first rank that differs from rank 0, and the first
       argument where it does, are the same answer everywhere; rank 0 says it. */
    for (int r = 1; r < world_size; r++) {
        if (lengths[r] == lengths[0] && memcmp(all + offsets[r], all, (size_t)lengths[0]) == 0)
            continue;
        int index = 0;
        for (;; index++) {
            const char *a = argument_at(all, lengths[0], index);
            const char *b = argument_at(all + offsets[r], lengths[r], index);
            if (!a || !b || strcmp(a, b) != 0)
                break;
        }
        if (world_rank == 0) {
            char mine[512], theirs[512];
            describe_argument(all, lengths[0], index, mine, sizeof mine);
            describe_argument(all + offsets[r], lengths[r], index, theirs, sizeof theirs);
            fprintf(stderr,
                    "kseg: the ranks were started with different arguments: rank %d was started "
                    "with %s, rank 0 with %s (every rank must run the same command)\n",
                    r, theirs, mine);
        }
        failed = 1;
        break;
    }
done:
    free(joined);
    free(lengths);
    free(offsets);
    free(all);
    return failed ? -1 : 0;
}

#endif
