/* The MPI communicator's collectives on real MPI ranks (run under mpirun by ctest in the
 * mpi build): sums and maxima of int64 values, allgatherv of unequal (and empty) contributions,
 * broadcast from a non-zero root, and alltoallv with messages of several MiB, which go through
 * the whole-unit plus remainder path, and the rank-ordered tree reduction (each rank's text
 * merged in rank order onto rank 0). Prints one line per failed check; exit status 1 if any. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/comm.h"
#include "kseg/error.h"

static int failures;

static void check(int condition, int rank, const char *what)
{
    if (!condition) {
        fprintf(stderr, "comm_mpi_check: rank %d: %s\n", rank, what);
        failures++;
    }
}

/* reduce_ordered's merge for the check: concatenation, which is associative, so rank 0 must end
 * with every rank's text in rank order. */
static int append(void *context, void **left, size_t *left_bytes, size_t *left_capacity,
                  const void *right, size_t right_bytes)
{
    (void)context;
    if (*left_bytes + right_bytes > *left_capacity) {
        void *grown = realloc(*left, *left_bytes + right_bytes);
        if (!grown)
            return KSEG_ENOMEM;
        *left = grown;
        *left_capacity = *left_bytes + right_bytes;
    }
    memcpy((unsigned char *)*left + *left_bytes, right, right_bytes);
    *left_bytes += right_bytes;
    return 0;
}

/* The byte rank `source` sends to `destination` at position i. */
static unsigned char pattern(int source, int destination, size_t i)
{
    return (unsigned char)(source * 31 + destination * 7 + i % 251);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    kseg_comm comm;
    kseg_error error;
    kseg_error_clear(&error);
    if (kseg_comm_mpi(&comm, MPI_COMM_WORLD, 100000, &error)) {
        fprintf(stderr, "comm_mpi_check: %s\n", error.message);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank = comm.rank, size = comm.size;
    check(kseg_comm_mpi_handle(&comm) == MPI_COMM_WORLD, rank, "handle");
    size_t expected_offset, count;
    kseg_comm_split_rows(100000, size, rank, &expected_offset, &count);
    check(comm.row_offset == expected_offset && comm.n_global == 100000, rank, "row split");

    int64_t sums[3] = {rank + 1, -rank, (int64_t)1 << 40};
    check(!comm.ops->allreduce_sum_i64(&comm, sums, 3), rank, "allreduce_sum_i64 status");
    check(sums[0] == size * (size + 1) / 2 && sums[1] == -(size * (size - 1) / 2) &&
              sums[2] == ((int64_t)size << 40),
          rank, "allreduce_sum_i64 values");
    int64_t maximum[2] = {rank == size - 1 ? 99 : rank, -rank};
    check(!comm.ops->allreduce_max_i64(&comm, maximum, 2), rank, "allreduce_max_i64 status");
    check(maximum[0] == 99 && maximum[1] == 0, rank, "allreduce_max_i64 values");

    /* allgatherv: rank r contributes 3 r bytes of value r (rank 0 nothing). */
    size_t total = 0, lengths[64];
    for (int r = 0; r < size; r++)
        total += 3 * (size_t)r;
    unsigned char send[3 * 64], *gathered = malloc(total + 1);
    memset(send, rank, 3 * (size_t)rank);
    check(!comm.ops->allgatherv(&comm, send, 3 * (size_t)rank, gathered, total, lengths), rank,
          "allgatherv status");
    size_t cursor = 0;
    for (int r = 0; r < size; r++) {
        check(lengths[r] == 3 * (size_t)r, rank, "allgatherv lengths");
        for (size_t i = 0; i < lengths[r]; i++)
            check(gathered[cursor + i] == r, rank, "allgatherv bytes");
        cursor += lengths[r];
    }
    free(gathered);

    char word[16] = "";
    int root = size - 1;
    if (rank == root)
        strcpy(word, "from the root");
    check(!comm.ops->broadcast(&comm, word, sizeof word, root) && strcmp(word, "from the root") == 0,
          rank, "broadcast");

    /* alltoallv: rank r sends (r + 1) MiB + destination bytes to each destination. */
    size_t send_bytes[64], recv_bytes[64], send_total = 0;
    for (int destination = 0; destination < size; destination++) {
        send_bytes[destination] = ((size_t)rank + 1) * ((size_t)1 << 20) + (size_t)destination;
        send_total += send_bytes[destination];
    }
    unsigned char *outgoing = malloc(send_total);
    cursor = 0;
    for (int destination = 0; destination < size; destination++)
        for (size_t i = 0; i < send_bytes[destination]; i++)
            outgoing[cursor++] = pattern(rank, destination, i);
    void *incoming = NULL;
    check(!comm.ops->alltoallv(&comm, outgoing, send_bytes, &incoming, recv_bytes), rank,
          "alltoallv status");
    cursor = 0;
    for (int source = 0; source < size && incoming; source++) {
        size_t expected = ((size_t)source + 1) * ((size_t)1 << 20) + (size_t)rank;
        check(recv_bytes[source] == expected, rank, "alltoallv lengths");
        int same = 1;
        for (size_t i = 0; i < recv_bytes[source]; i++)
            same &= ((unsigned char *)incoming)[cursor + i] == pattern(source, rank, i);
        check(same, rank, "alltoallv bytes");
        cursor += recv_bytes[source];
    }
    free(outgoing);
    free(incoming);

    /* Rank r contributes "r," (ranks above 9 write two digits; the expected text is built the
       same way). */
    char text[16];
    int length = snprintf(text, sizeof text, "%d,", rank);
    size_t bytes = (size_t)length, capacity = (size_t)length;
    void *buffer = malloc(capacity);
    memcpy(buffer, text, bytes);
    check(comm.ops->reduce_ordered(&comm, &buffer, &bytes, &capacity, append, NULL) == 0, rank,
          "reduce_ordered status");
    if (rank == 0) {
        char expected[4096] = "";
        for (int r = 0; r < size; r++)
            snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%d,", r);
        check(bytes == strlen(expected) && memcmp(buffer, expected, bytes) == 0, rank,
              "reduce_ordered merges every rank's text in rank order on rank 0");
    }
    free(buffer);

    int local = failures, any = 0;
    MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
