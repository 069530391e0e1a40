/* ThreadSanitizer driver for the kernels called directly: the block reduction (engine/blocks.c
 * over kernels/reduce.c), the radix sort and the two scoring rules (kernels/quantile.c), and both
 * aggregation paths (kernels/aggregate.c), at 1, 2 and 4 threads. Results must equal the plain
 * reference versions and, bit for bit, the 1-thread results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "blocks.h"
#include "quantile.h"
#include "reduce.h"
#include "tsan_driver.h"

/* ---------------------------------------------------------------- reductions */

#define REDUCE_BLOCKS 11
#define REDUCE_WIDTH 7

/* A block's payload: values of very different magnitudes, so that any change in the order of the
 * additions shows in the bits. */
static void reduce_payload(uint64_t block, double *payload)
{
    uint64_t state = 1000 + block;
    for (size_t j = 0; j < REDUCE_WIDTH; j++)
        payload[j] = (tsan_uniform(&state) - 0.5) * ldexp(1.0, (int)(tsan_next(&state) % 60) - 30);
}

static void reduce_block(void *context, size_t block, double *payload, int thread)
{
    (void)context;
    (void)thread;
    reduce_payload(block, payload);
}

static void check_reductions(void)
{
    /* The definition: every block a level-0 node, combined by the canonical tree on one thread. */
    double definition[REDUCE_WIDTH];
    double payloads[REDUCE_BLOCKS][REDUCE_WIDTH];
    kseg_tree_node nodes[REDUCE_BLOCKS];
    for (size_t b = 0; b < REDUCE_BLOCKS; b++) {
        reduce_payload(b, payloads[b]);
        nodes[b] = (kseg_tree_node){b, 0, payloads[b]};
    }
    double *scratch =
        malloc(kseg_tree_combine_scratch(REDUCE_BLOCKS, REDUCE_WIDTH) * sizeof *scratch);
    TSAN_CHECK(kseg_tree_combine(nodes, REDUCE_BLOCKS, REDUCE_BLOCKS, REDUCE_WIDTH, definition,
                                 scratch) == 0,
               "the canonical tree rejected a complete cover");
    free(scratch);

    size_t rows = REDUCE_BLOCKS * KSEG_BLOCK_ROWS - 123;
    kseg_comm serial;
    kseg_comm_serial(&serial, rows);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        kseg_blocks blocks;
        kseg_vector_reducer reducer;
        kseg_error error = {0};
        TSAN_OK(kseg_blocks_init(&blocks, &serial, rows, tsan_thread_counts[t], &error), &error);
        TSAN_OK(kseg_vector_reducer_init(&reducer, &blocks, REDUCE_WIDTH, &error), &error);
        /* Twice through the same reducer: the second pass must reset every thread's stack. */
        for (int pass = 0; pass < 2; pass++) {
            double out[REDUCE_WIDTH];
            TSAN_OK(kseg_reduce_vector(&reducer, &blocks, REDUCE_WIDTH, reduce_block, NULL, out,
                                       &error),
                    &error);
            TSAN_SAME(definition, out, sizeof out, tsan_thread_counts[t],
                      "block reduction (pass %d) against the canonical tree", pass + 1);
        }
        /* A third pass from inside an active parallel region, where OpenMP runs the reducer's
           region on a team of one (nested parallelism is off): a team smaller than the
           reducer's thread count must not leave the other threads' earlier stacks in the sum
           (OMP_DYNAMIC can shrink a team the same way). */
        omp_set_max_active_levels(1);
        double out[REDUCE_WIDTH];
        int status = 0;
#pragma omp parallel num_threads(2)
        {
#pragma omp master
            status = kseg_reduce_vector(&reducer, &blocks, REDUCE_WIDTH, reduce_block, NULL, out,
                                        &error);
        }
        TSAN_OK(status, &error);
        TSAN_SAME(definition, out, sizeof out, tsan_thread_counts[t],
                  "block reduction by a team of one after one of %d", tsan_thread_counts[t]);
        kseg_vector_reducer_destroy(&reducer);
    }
    printf("%s: block reductions equal the canonical tree at 1, 2 and 4 threads\n",
           tsan_driver_name);
}

/* ---------------------------------------------------------------- sorting and scores */

/* Above the radix sort's serial threshold (2^16), so the passes run in parallel. */
#define SORT_N 100000

static void check_sort_and_scores(void)
{
    uint64_t *keys = malloc(SORT_N * sizeof *keys);
    uint64_t *reference_keys = malloc(SORT_N * sizeof *keys);
    uint64_t *scratch_keys = malloc(SORT_N * sizeof *keys);
    uint32_t *index = malloc(SORT_N * sizeof *index);
    uint32_t *reference_index = malloc(SORT_N * sizeof *index);
    uint32_t *scratch_index = malloc(SORT_N * sizeof *index);
    size_t *histograms =
        malloc((size_t)tsan_max_threads() * KSEG_RADIX_BUCKETS * sizeof *histograms);
    double *values = malloc(SORT_N * sizeof *values);
    int32_t *scores = malloc(SORT_N * sizeof *scores);
    int32_t *expected = malloc(SORT_N * sizeof *scores);
    int32_t *rank_scores = malloc(SORT_N * sizeof *scores);
    int32_t *first_rank_scores = malloc(SORT_N * sizeof *scores);

    /* Doubles with many ties (the sort must be stable) and a sign, so that most digits vary. */
    uint64_t state = 42;
    for (size_t i = 0; i < SORT_N; i++)
        values[i] = (double)((int64_t)(tsan_next(&state) % 5000) - 2500) * 0.37;
    for (size_t i = 0; i < SORT_N; i++) {
        reference_keys[i] = kseg_double_order_key(values[i]);
        reference_index[i] = (uint32_t)i;
    }
    TSAN_CHECK(kseg_sort_pairs_reference(reference_keys, reference_index, SORT_N) == 0,
               "reference sort: out of memory");
    double cuts[6];
    kseg_quantiles_linear(values, reference_index, SORT_N, 5, cuts);
    kseg_scores_from_cuts_reference(values, SORT_N, cuts, 5, expected);

    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        for (size_t i = 0; i < SORT_N; i++) {
            keys[i] = kseg_double_order_key(values[i]);
            index[i] = (uint32_t)i;
        }
        kseg_radix_sort_pairs(keys, index, SORT_N, scratch_keys, scratch_index, histograms,
                              threads);
        TSAN_SAME(reference_keys, keys, SORT_N * sizeof *keys, threads, "radix sort keys");
        TSAN_SAME(reference_index, index, SORT_N * sizeof *index, threads, "radix sort order");

        kseg_scores_from_cuts(values, SORT_N, cuts, 5, scores, threads);
        TSAN_SAME(expected, scores, SORT_N * sizeof *scores, threads,
                  "value scores against the reference");
        kseg_scores_from_ranks(index, SORT_N, 7, rank_scores, threads);
        if (t == 0)
            memcpy(first_rank_scores, rank_scores, SORT_N * sizeof *rank_scores);
        TSAN_SAME(first_rank_scores, rank_scores, SORT_N * sizeof *rank_scores, threads,
                  "rank scores");
    }
    free(keys);
    free(reference_keys);
    free(scratch_keys);
    free(index);
    free(reference_index);
    free(scratch_index);
    free(histograms);
    free(values);
    free(scores);
    free(expected);
    free(rank_scores);
    free(first_rank_scores);
    printf("%s: radix sort, value and rank scores identical at 1, 2 and 4 threads\n",
           tsan_driver_name);
}

/* ---------------------------------------------------------------- aggregation */

#define AGG_ROWS 120000
#define AGG_CUSTOMERS 9000

/* A log with every stage, exact duplicates of earlier rows (for dedupe), and keys that mostly
 * increase per customer but sometimes fall back (so the column path moves its key log into the
 * key set). */
static kseg_agg_record *make_records(void)
{
    uint64_t state = 99;
    kseg_agg_record *records = calloc(AGG_ROWS, sizeof *records);
    for (size_t i = 0; i < AGG_ROWS; i++) {
        kseg_agg_record *record = &records[i];
        if (i > 10 && tsan_next(&state) % 12 == 0) {
            *record = records[tsan_next(&state) % i];
            continue;
        }
        record->customer_id = (int64_t)(tsan_next(&state) % AGG_CUSTOMERS) * 7919 - 100000;
        record->time = (int64_t)(tsan_next(&state) % 100000000);
        record->amount =
            (tsan_uniform(&state) - 0.1) * ldexp(1.0, (int)(tsan_next(&state) % 30) - 10);
        record->key = tsan_next(&state) % 9 == 0 ? (int64_t)(tsan_next(&state) % 50)
                                                 : (int64_t)(i / 16);
        record->row_hash[0] = tsan_next(&state) | 1;
        record->row_hash[1] = tsan_next(&state);
        unsigned draw = (unsigned)(tsan_next(&state) % 100);
        record->stage = draw < 5    ? KSEG_AGG_NO_CUSTOMER
                        : draw < 15 ? KSEG_AGG_WHERE
                        : draw < 20 ? KSEG_AGG_MIN_PRICE
                        : draw < 25 ? KSEG_AGG_RETURNS
                        : draw < 30 ? KSEG_AGG_KEPT_RETURN
                                    : KSEG_AGG_KEPT_PURCHASE;
    }
    return records;
}

/* The customers and stage counts of two states, partition by partition. max_key is kept by the
 * column path only, so it is compared only when both states come from the same path. */
static void compare_states(const kseg_agg_state *reference, const kseg_agg_state *state,
                           int same_path, int threads, const char *what)
{
    for (size_t p = 0; p < reference->n_partitions; p++) {
        const kseg_agg_partition *a = &reference->partitions[p], *b = &state->partitions[p];
        if (a->n_customers != b->n_customers) {
            tsan_fail(__FILE__, __LINE__, "%s: partition %zu has %zu customers with %d threads, "
                      "%zu in the reference", what, p, b->n_customers, threads, a->n_customers);
            return;
        }
        TSAN_SAME(a->stage_rows, b->stage_rows, sizeof a->stage_rows, threads,
                  "%s: stage rows of partition %zu", what, p);
        for (size_t c = 0; c < a->n_customers; c++) {
            kseg_agg_customer x = a->customers[c], y = b->customers[c];
            if (!same_path)
                x.max_key = y.max_key = 0;
            if (memcmp(&x, &y, sizeof x) != 0) {
                tsan_fail(__FILE__, __LINE__, "%s: customer %zu of partition %zu differs with %d "
                          "threads", what, c, p, threads);
                return;
            }
        }
    }
}

static void check_aggregation(void)
{
    kseg_agg_record *records = make_records();
    kseg_agg_record *partitioned = malloc(AGG_ROWS * sizeof *partitioned);
    size_t *histograms =
        malloc((size_t)tsan_max_threads() * KSEG_AGG_PARTITIONS * sizeof *histograms);
    size_t *offsets = malloc((KSEG_AGG_PARTITIONS + 1) * sizeof *offsets);
    /* The same rows as columns, for the column path. */
    int64_t *ids = malloc(AGG_ROWS * sizeof *ids), *times = malloc(AGG_ROWS * sizeof *times);
    int64_t *keys = malloc(AGG_ROWS * sizeof *keys);
    double *amounts = malloc(AGG_ROWS * sizeof *amounts);
    uint8_t *stages = malloc(AGG_ROWS * sizeof *stages);
    for (size_t i = 0; i < AGG_ROWS; i++) {
        ids[i] = records[i].customer_id;
        times[i] = records[i].time;
        keys[i] = records[i].key;
        amounts[i] = records[i].amount;
        stages[i] = (uint8_t)records[i].stage;
    }
    /* Two blocks of unequal size: the tables carry over and grow between them. */
    const size_t split = AGG_ROWS / 3;

    for (int dedupe = 0; dedupe < 2; dedupe++) {
        kseg_agg_state reference;
        TSAN_CHECK(kseg_agg_state_init(&reference, KSEG_AGG_PARTITIONS, 1, dedupe) == 0, "init");
        TSAN_CHECK(kseg_agg_add_block_reference(&reference, records, split) == 0 &&
                       kseg_agg_add_block_reference(&reference, records + split,
                                                    AGG_ROWS - split) == 0,
                   "reference aggregation: out of memory");
        kseg_agg_state first_columns;
        memset(&first_columns, 0, sizeof first_columns);
        for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
            int threads = tsan_thread_counts[t];
            /* The record path (partitioning, then whole partitions per thread). */
            kseg_agg_state state;
            TSAN_CHECK(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, dedupe) == 0, "init");
            TSAN_CHECK(kseg_agg_add_block(&state, records, split, threads, partitioned,
                                          histograms, offsets) == 0 &&
                           kseg_agg_add_block(&state, records + split, AGG_ROWS - split, threads,
                                              partitioned, histograms, offsets) == 0,
                       "record path: out of memory");
            compare_states(&reference, &state, 1, threads,
                           dedupe ? "record path with dedupe" : "record path");
            kseg_agg_state_destroy(&state);
            if (dedupe)
                continue; /* the column path does not dedupe */

            /* The column path (every thread scans the block, adds the partitions it owns). */
            TSAN_CHECK(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, 0) == 0, "init");
            kseg_agg_columns first = {ids, times, amounts, keys, stages};
            kseg_agg_columns second = {ids + split, times + split, amounts + split, keys + split,
                                       stages + split};
            TSAN_CHECK(kseg_agg_add_columns(&state, &first, split, threads) == 0 &&
                           kseg_agg_add_columns(&state, &second, AGG_ROWS - split, threads) == 0,
                       "column path: out of memory");
            compare_states(&reference, &state, 0, threads, "column path against the reference");
            if (t == 0)
                first_columns = state;
            else {
                compare_states(&first_columns, &state, 1, threads, "column path");
                kseg_agg_state_destroy(&state);
            }
        }
        kseg_agg_state_destroy(&first_columns);
        kseg_agg_state_destroy(&reference);
    }
    free(records);
    free(partitioned);
    free(histograms);
    free(offsets);
    free(ids);
    free(times);
    free(keys);
    free(amounts);
    free(stages);
    printf("%s: aggregation (records with and without dedupe, columns) identical at 1, 2 and 4 "
           "threads and equal to the reference\n",
           tsan_driver_name);
}

int main(void)
{
    tsan_start("tsan_kernels");
    check_reductions();
    check_sort_and_scores();
    check_aggregation();
    return tsan_finish();
}
