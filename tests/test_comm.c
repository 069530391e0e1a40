/* The distributed engine without MPI: the row split, the thread-simulated communicator's
 * collectives, and k-means on 1 to 4 simulated ranks, which must give bitwise the centroids,
 * inertia, iteration count and (gathered) labels of the serial fit, for every algorithm. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kernels.h"
#include "comm_threads.h"
#include "kmeans_test_support.h"
#include "kseg/kseg.h"

Test(comm, split_rows_is_contiguous_block_aligned_and_covers_every_row)
{
    size_t totals[] = {0, 1, 8191, 8192, 8193, 3 * 8192, 100000, 1000003};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++)
        for (int size = 1; size <= 7; size++) {
            size_t expected_offset = 0;
            for (int rank = 0; rank < size; rank++) {
                size_t offset, count;
                kseg_comm_split_rows(totals[t], size, rank, &offset, &count);
                cr_assert_eq(offset, expected_offset, "n %zu size %d rank %d", totals[t], size,
                             rank);
                cr_assert(offset % KSEG_BLOCK_ROWS == 0 || count == 0);
                expected_offset = offset + count;
            }
            cr_assert_eq(expected_offset, totals[t]);
        }
}

typedef struct collective_check {
    int failures;
} collective_check;

static void collectives_body(const kseg_comm *comm, size_t rows, void *argument)
{
    (void)rows;
    collective_check *check = argument;
    int size = comm->size, rank = comm->rank;
    int64_t values[2] = {rank + 1, 10 * (rank + 1)};
    if (comm->ops->allreduce_sum_i64(comm, values, 2) || values[0] != size * (size + 1) / 2)
        check->failures++;
    int64_t maximum[1] = {rank == 1 ? 99 : rank};
    if (comm->ops->allreduce_max_i64(comm, maximum, 1) || maximum[0] != (size > 1 ? 99 : 0))
        check->failures++;
    /* Rank r sends r + 1 bytes of value (10 r + destination) to each destination. */
    unsigned char send[64];
    size_t send_bytes[THREAD_COMM_MAX_RANKS], recv_bytes[THREAD_COMM_MAX_RANKS];
    size_t cursor = 0;
    for (int destination = 0; destination < size; destination++) {
        send_bytes[destination] = (size_t)rank + 1;
        memset(send + cursor, 10 * rank + destination, (size_t)rank + 1);
        cursor += (size_t)rank + 1;
    }
    void *recv = NULL;
    if (comm->ops->alltoallv(comm, send, send_bytes, &recv, recv_bytes))
        check->failures++;
    cursor = 0;
    for (int source = 0; source < size; source++) {
        if (recv_bytes[source] != (size_t)source + 1)
            check->failures++;
        for (size_t i = 0; i < recv_bytes[source]; i++)
            if (((unsigned char *)recv)[cursor + i] != 10 * source + rank)
                check->failures++;
        cursor += recv_bytes[source];
    }
    free(recv);
    char word[8] = "";
    if (rank == 0)
        strcpy(word, "kseg");
    if (comm->ops->broadcast(comm, word, sizeof word, 0) || strcmp(word, "kseg") != 0)
        check->failures++;
}

Test(comm, thread_collectives_combine_every_rank)
{
    for (int size = 1; size <= 4; size++) {
        collective_check checks[4] = {{0}};
        void *arguments[4] = {&checks[0], &checks[1], &checks[2], &checks[3]};
        cr_assert_eq(thread_comm_run(size, 0, collectives_body, arguments), 0);
        for (int r = 0; r < size; r++)
            cr_assert_eq(checks[r].failures, 0, "size %d rank %d", size, r);
    }
}

/* One rank's k-means fit on its rows of the shared data. */
typedef struct rank_fit {
    const double *data;
    size_t d;
    kseg_kmeans_options options;
    kseg_kmeans_result result;
    int32_t *all_labels; /* [n_global], each rank fills its range */
    int status;
    char message[KSEG_ERROR_MESSAGE_MAX];
} rank_fit;

static void fit_body(const kseg_comm *comm, size_t rows, void *argument)
{
    rank_fit *fit = argument;
    kseg_matrix local = view(fit->data + comm->row_offset * fit->d, KSEG_FLOAT64, rows,
                             fit->d);
    kseg_kmeans_options options = fit->options;
    options.comm = comm;
    kseg_error error;
    kseg_error_clear(&error);
    kseg_kmeans_result_init(&fit->result);
    fit->status = kseg_kmeans_fit(&local, &options, &fit->result, &error);
    snprintf(fit->message, sizeof fit->message, "%s", error.message);
    if (!fit->status && rows)
        memcpy(fit->all_labels + comm->row_offset, fit->result.labels, rows * sizeof(int32_t));
}

static void expect_rank_invariance_upto(kseg_kmeans_algorithm algorithm, kseg_init_method init,
                                        size_t n, int n_threads, int max_ranks)
{
    size_t d = 5, k = 7;
    double *data = malloc(n * d * sizeof *data);
    uint64_t state = 42;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            data[i * d + j] = (double)((i * 7) % k) + 0.6 * gaussian(&state);
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = (int64_t)k;
    options.algorithm = algorithm;
    options.init = init;
    options.n_init = 2;
    options.max_iter = 30;
    options.seed = 11;
    options.n_threads = n_threads;
    options.kernel = "reference";

    kseg_matrix all = view(data, KSEG_FLOAT64, n, d);
    kseg_kmeans_result serial;
    kseg_kmeans_result_init(&serial);
    fit_or_fail(&all, &options, &serial);

    for (int size = 1; size <= max_ranks; size++) {
        rank_fit fits[THREAD_COMM_MAX_RANKS];
        void *arguments[THREAD_COMM_MAX_RANKS];
        int32_t *labels = malloc(n * sizeof *labels);
        for (int r = 0; r < size; r++) {
            memset(&fits[r], 0, sizeof fits[r]);
            fits[r].data = data;
            fits[r].d = d;
            fits[r].options = options;
            fits[r].all_labels = labels;
            arguments[r] = &fits[r];
        }
        cr_assert_eq(thread_comm_run(size, n, fit_body, arguments), 0);
        for (int r = 0; r < size; r++) {
            cr_assert_eq(fits[r].status, 0, "%s, %d ranks, rank %d: %s",
                         kseg_kmeans_algorithm_name(algorithm), size, r, fits[r].message);
            kseg_kmeans_result *result = &fits[r].result;
            cr_assert_eq(memcmp(result->centroids, serial.centroids, k * d * sizeof(double)), 0,
                         "%s: centroids differ on %d ranks (rank %d)",
                         kseg_kmeans_algorithm_name(algorithm), size, r);
            cr_assert_eq(memcmp(&result->inertia, &serial.inertia, sizeof(double)), 0);
            cr_assert_eq(result->n_iter, serial.n_iter);
            cr_assert_eq(result->best_init, serial.best_init);
            cr_assert_str_eq(result->algorithm, serial.algorithm);
        }
        cr_assert_eq(memcmp(labels, serial.labels, n * sizeof *labels), 0,
                     "%s: labels differ on %d ranks", kseg_kmeans_algorithm_name(algorithm), size);
        for (int r = 0; r < size; r++)
            kseg_kmeans_result_destroy(&fits[r].result);
        free(labels);
    }
    kseg_kmeans_result_destroy(&serial);
    free(data);
}

static void expect_rank_invariance(kseg_kmeans_algorithm algorithm, kseg_init_method init,
                                   size_t n, int n_threads)
{
    expect_rank_invariance_upto(algorithm, init, n, n_threads, 4);
}

/* 5 blocks of rows: 4 ranks get 1 or 2 blocks each, and the last block is partial. */
#define ROWS (4 * 8192 + 3000)

Test(comm, lloyd_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
Test(comm, lloyd_two_threads_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 2); }
Test(comm, hamerly_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_HAMERLY, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
Test(comm, elkan_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_ELKAN, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
Test(comm, yinyang_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_YINYANG, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
Test(comm, minibatch_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_MINIBATCH, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
Test(comm, kmeans_parallel_init_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PARALLEL, ROWS, 1); }
Test(comm, random_init_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_RANDOM, ROWS, 1); }
/* Fewer blocks than ranks: ranks 2 and 3 hold no rows but join every collective. */
Test(comm, ranks_without_rows_join_the_fit) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PLUSPLUS, 8192 + 500, 1); }
Test(comm, auto_decides_the_same_on_every_rank) { expect_rank_invariance(KSEG_ALGORITHM_AUTO, KSEG_INIT_KMEANS_PLUSPLUS, ROWS, 1); }
/* Three threads split each rank's blocks unevenly, so neighbouring threads' nodes are siblings
   that the rank merges before sending (engine/blocks.c): the bits must not change. */
Test(comm, lloyd_three_threads_is_rank_count_invariant) { expect_rank_invariance(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PLUSPLUS, 11 * 8192 + 77, 3); }
/* Up to 8 ranks: three rounds of the ranks' binomial tree, with odd rank counts leaving a rank
   without a partner in some rounds. */
Test(comm, lloyd_up_to_eight_ranks_is_rank_count_invariant) { expect_rank_invariance_upto(KSEG_ALGORITHM_LLOYD, KSEG_INIT_KMEANS_PLUSPLUS, 13 * 8192 + 5, 1, 8); }

/* A bad weight in one rank's rows fails the fit on every rank, with the row's global index,
   instead of leaving the other ranks waiting in a collective call. */
typedef struct weighted_fit {
    const double *data;
    const double *weights; /* [n_global] */
    int status;
    char message[KSEG_ERROR_MESSAGE_MAX];
} weighted_fit;

static void weighted_body(const kseg_comm *comm, size_t rows, void *argument)
{
    weighted_fit *fit = argument;
    kseg_matrix local = view(fit->data + comm->row_offset * 2, KSEG_FLOAT64, rows, 2);
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = 3;
    options.n_threads = 1;
    options.comm = comm;
    options.sample_weight = fit->weights + comm->row_offset;
    kseg_kmeans_result result;
    kseg_kmeans_result_init(&result);
    kseg_error error;
    kseg_error_clear(&error);
    fit->status = kseg_kmeans_fit(&local, &options, &result, &error);
    snprintf(fit->message, sizeof fit->message, "%s", error.message);
    kseg_kmeans_result_destroy(&result);
}

Test(comm, a_bad_weight_on_one_rank_fails_every_rank)
{
    size_t n = 3 * 8192;
    double *data = malloc(n * 2 * sizeof *data), *weights = malloc(n * sizeof *weights);
    for (size_t i = 0; i < n; i++) {
        data[2 * i] = (double)(i % 5);
        data[2 * i + 1] = (double)(i % 7);
        weights[i] = 1.0;
    }
    weights[2 * 8192 + 17] = -1.0; /* on rank 2 of 3 */
    weighted_fit fits[3];
    void *arguments[3];
    for (int r = 0; r < 3; r++) {
        memset(&fits[r], 0, sizeof fits[r]);
        fits[r].data = data;
        fits[r].weights = weights;
        arguments[r] = &fits[r];
    }
    cr_assert_eq(thread_comm_run(3, n, weighted_body, arguments), 0);
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(fits[r].status, KSEG_EINVAL, "rank %d: %s", r, fits[r].message);
        cr_assert(strstr(fits[r].message, "row 16401") != NULL, "rank %d: %s", r, fits[r].message);
    }
    free(data);
    free(weights);
}

/* Ranks whose CPUs lead them to different kernels (simulated by naming different kernels) are
   refused on every rank before any collective step depends on the kernel, instead of diverging
   or leaving a rank waiting. */
typedef struct kernel_fit {
    const double *data;
    const char *kernel;
    int status;
    char message[KSEG_ERROR_MESSAGE_MAX];
} kernel_fit;

static void kernel_body(const kseg_comm *comm, size_t rows, void *argument)
{
    kernel_fit *fit = argument;
    kseg_matrix local = view(fit->data + comm->row_offset * 4, KSEG_FLOAT64, rows, 4);
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = 3;
    options.n_threads = 1;
    options.comm = comm;
    options.kernel = fit->kernel;
    options.algorithm = KSEG_ALGORITHM_AUTO;
    kseg_kmeans_result result;
    kseg_kmeans_result_init(&result);
    kseg_error error;
    kseg_error_clear(&error);
    fit->status = kseg_kmeans_fit(&local, &options, &result, &error);
    snprintf(fit->message, sizeof fit->message, "%s", error.message);
    kseg_kmeans_result_destroy(&result);
}

Test(comm, ranks_with_different_kernels_are_refused_on_every_rank)
{
    if (!kseg_assign_kernel_select(KSEG_FLOAT64, 3, 4, "avx2"))
        cr_skip("this CPU has no AVX2 kernel to differ from the reference");
    size_t n = 2 * 8192;
    double *data = malloc(n * 4 * sizeof *data);
    for (size_t i = 0; i < n * 4; i++)
        data[i] = (double)(i % 13);
    kernel_fit fits[2] = {{data, "reference", 0, ""}, {data, "avx2", 0, ""}};
    void *arguments[2] = {&fits[0], &fits[1]};
    cr_assert_eq(thread_comm_run(2, n, kernel_body, arguments), 0);
    for (int r = 0; r < 2; r++) {
        cr_assert_eq(fits[r].status, KSEG_ENOTSUP, "rank %d: %s", r, fits[r].message);
        cr_assert(strstr(fits[r].message, "different assignment kernels") != NULL, "%s",
                  fits[r].message);
    }
    free(data);
}
