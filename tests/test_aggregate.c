/* The aggregation kernel: the parallel partitioned version and the one-row-at-a-time reference
 * against a brute force written here (sort the rows by customer, then walk each customer's rows
 * in row order), for every thread count, partition count, block split and option; and table
 * growth far past the first reservation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"

static uint64_t rng_state;
static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A log of `rows` records over `customers` customers with every stage, repeated keys, amounts of
 * very different magnitudes (so that the summation order shows in the bits) and exact copies of
 * earlier rows (duplicates for dedupe). */
static kseg_agg_record *make_records(size_t rows, size_t customers, uint64_t seed)
{
    rng_state = seed;
    int64_t *ids = malloc(customers * sizeof *ids);
    for (size_t c = 0; c < customers; c++)
        ids[c] = (int64_t)next_random(); /* any int64, negative ones too */
    kseg_agg_record *records = calloc(rows, sizeof *records);
    for (size_t i = 0; i < rows; i++) {
        kseg_agg_record *record = &records[i];
        if (i > 10 && next_random() % 10 == 0) {
            *record = records[next_random() % i];
            continue;
        }
        record->customer_id = ids[next_random() % customers];
        record->time = (int64_t)(next_random() % 100000000) - 50000000;
        double mantissa = (double)(next_random() % 1000000) / 1000.0;
        int exponent = (int)(next_random() % 30) - 10;
        record->amount = (next_random() % 7 == 0 ? -1.0 : 1.0) * mantissa * (double)(1 << 10) *
                         (exponent >= 0 ? (double)(1u << exponent) : 1.0 / (double)(1u << -exponent));
        record->key = (int64_t)(next_random() % 40);
        record->row_hash[0] = next_random();
        record->row_hash[1] = next_random();
        unsigned draw = (unsigned)(next_random() % 100);
        record->stage = draw < 5    ? KSEG_AGG_NO_CUSTOMER
                        : draw < 15 ? KSEG_AGG_WHERE
                        : draw < 20 ? KSEG_AGG_MIN_PRICE
                        : draw < 25 ? KSEG_AGG_RETURNS
                        : draw < 30 ? KSEG_AGG_KEPT_RETURN
                                    : KSEG_AGG_KEPT_PURCHASE;
    }
    free(ids);
    return records;
}

typedef struct customer_row {
    int64_t customer_id;
    size_t row;
} customer_row;

static int compare_customer_rows(const void *left, const void *right)
{
    const customer_row *a = left, *b = right;
    if (a->customer_id != b->customer_id)
        return a->customer_id < b->customer_id ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static int compare_int64(const void *left, const void *right)
{
    int64_t a = *(const int64_t *)left, b = *(const int64_t *)right;
    return (a > b) - (a < b);
}

static int compare_customers(const void *left, const void *right)
{
    const kseg_agg_customer *a = left, *b = right;
    return (a->customer_id > b->customer_id) - (a->customer_id < b->customer_id);
}

/* The brute force: customers sorted by id, stage_rows[KSEG_AGG_STAGE_COUNT]. Returns the count. */
static size_t brute_force(const kseg_agg_record *records, size_t rows, int track_keys,
                          int dedupe, kseg_agg_customer **customers_out, int64_t *stage_rows)
{
    customer_row *sorted = malloc((rows + 1) * sizeof *sorted);
    size_t n = 0;
    memset(stage_rows, 0, KSEG_AGG_STAGE_COUNT * sizeof *stage_rows);
    for (size_t i = 0; i < rows; i++)
        if (records[i].stage != KSEG_AGG_NO_CUSTOMER)
            sorted[n++] = (customer_row){records[i].customer_id, i};
    qsort(sorted, n, sizeof *sorted, compare_customer_rows);
    kseg_agg_customer *customers = calloc(n + 1, sizeof *customers);
    int64_t *keys = malloc((n + 1) * sizeof *keys);
    const kseg_agg_record **seen = malloc((n + 1) * sizeof *seen);
    size_t n_customers = 0;
    for (size_t begin = 0; begin < n;) {
        size_t end = begin;
        while (end < n && sorted[end].customer_id == sorted[begin].customer_id)
            end++;
        kseg_agg_customer *customer = &customers[n_customers++];
        customer->customer_id = sorted[begin].customer_id;
        customer->first_time = INT64_MAX;
        customer->last_time = INT64_MIN;
        size_t n_keys = 0, n_seen = 0;
        for (size_t k = begin; k < end; k++) {
            const kseg_agg_record *record = &records[sorted[k].row];
            uint32_t stage = record->stage;
            if (dedupe) {
                int duplicate = 0;
                for (size_t s = 0; s < n_seen; s++)
                    duplicate |= seen[s]->row_hash[0] == record->row_hash[0] &&
                                 seen[s]->row_hash[1] == record->row_hash[1];
                if (duplicate)
                    stage = KSEG_AGG_DEDUPE;
                else
                    seen[n_seen++] = record;
            }
            stage_rows[stage]++;
            int32_t reach = stage > KSEG_AGG_KEPT_PURCHASE ? KSEG_AGG_KEPT_PURCHASE : (int32_t)stage;
            if (reach > customer->reach)
                customer->reach = reach;
            if (stage == KSEG_AGG_KEPT_PURCHASE || stage == KSEG_AGG_KEPT_RETURN) {
                customer->rows++;
                customer->amount += record->amount;
            }
            if (stage == KSEG_AGG_KEPT_PURCHASE) {
                customer->purchases++;
                if (record->time < customer->first_time)
                    customer->first_time = record->time;
                if (record->time > customer->last_time)
                    customer->last_time = record->time;
                keys[n_keys++] = record->key;
            }
        }
        if (track_keys && n_keys) {
            qsort(keys, n_keys, sizeof *keys, compare_int64);
            customer->distinct_keys = 1;
            for (size_t k = 1; k < n_keys; k++)
                customer->distinct_keys += keys[k] != keys[k - 1];
        }
        begin = end;
    }
    free(sorted);
    free(keys);
    free(seen);
    *customers_out = customers;
    return n_customers;
}

/* Every customer of the state, sorted by id (a dense state is moved into the partitions first,
 * which the comparison then covers too). */
static size_t collect(kseg_agg_state *state, kseg_agg_customer **customers_out,
                      int64_t *stage_rows)
{
    size_t n = kseg_agg_customer_count(state), next = 0;
    int64_t totals[KSEG_AGG_STAGE_COUNT];
    kseg_agg_stage_rows(state, totals);
    cr_assert_eq(kseg_agg_to_partitions(state), 0);
    cr_assert_eq(kseg_agg_customer_count(state), n, "the move into the partitions kept every "
                                                    "customer");
    kseg_agg_customer *customers = malloc((n + 1) * sizeof *customers);
    memset(stage_rows, 0, KSEG_AGG_STAGE_COUNT * sizeof *stage_rows);
    for (size_t p = 0; p < state->n_partitions; p++) {
        const kseg_agg_partition *partition = &state->partitions[p];
        for (size_t c = 0; c < partition->n_customers; c++)
            customers[next++] = partition->customers[c];
        for (int s = 0; s < KSEG_AGG_STAGE_COUNT; s++)
            stage_rows[s] += partition->stage_rows[s];
    }
    qsort(customers, n, sizeof *customers, compare_customers);
    for (int s = 0; s < KSEG_AGG_STAGE_COUNT; s++)
        cr_assert_eq(stage_rows[s], totals[s], "stage %d rows before and after the move", s);
    *customers_out = customers;
    return n;
}

static void assert_same(const kseg_agg_customer *expected, size_t n_expected,
                        const int64_t *expected_stages, kseg_agg_state *state,
                        int track_keys, const char *what)
{
    kseg_agg_customer *got;
    int64_t stages[KSEG_AGG_STAGE_COUNT];
    size_t n = collect(state, &got, stages);
    cr_assert_eq(n, n_expected, "%s: %zu customers, expected %zu", what, n, n_expected);
    for (int s = 0; s < KSEG_AGG_STAGE_COUNT; s++)
        cr_assert_eq(stages[s], expected_stages[s], "%s: stage %d rows", what, s);
    for (size_t c = 0; c < n; c++) {
        const kseg_agg_customer *a = &got[c], *b = &expected[c];
        cr_assert_eq(a->customer_id, b->customer_id, "%s: customer %zu", what, c);
        cr_assert_eq(memcmp(&a->amount, &b->amount, sizeof a->amount), 0,
                     "%s: customer %lld amount %a, expected %a (summation order?)", what,
                     (long long)a->customer_id, a->amount, b->amount);
        cr_assert_eq(a->rows, b->rows, "%s: rows", what);
        cr_assert_eq(a->purchases, b->purchases, "%s: purchases", what);
        cr_assert_eq(a->first_time, b->first_time, "%s: first time", what);
        cr_assert_eq(a->last_time, b->last_time, "%s: last time", what);
        cr_assert_eq(a->reach, b->reach, "%s: reach", what);
        if (track_keys)
            cr_assert_eq(a->distinct_keys, b->distinct_keys, "%s: customer %lld distinct keys",
                         what, (long long)a->customer_id);
    }
    free(got);
}

/* Adds records in blocks of block_rows with the parallel kernel. */
static void run_parallel(kseg_agg_state *state, const kseg_agg_record *records, size_t rows,
                         size_t block_rows, int threads)
{
    kseg_agg_record *partitioned = malloc((block_rows + 1) * sizeof *partitioned);
    size_t *histograms = malloc((size_t)threads * state->n_partitions * sizeof *histograms);
    size_t *offsets = malloc((state->n_partitions + 1) * sizeof *offsets);
    for (size_t begin = 0; begin < rows; begin += block_rows) {
        size_t count = rows - begin < block_rows ? rows - begin : block_rows;
        cr_assert_eq(kseg_agg_add_block(state, records + begin, count, threads, partitioned,
                                        histograms, offsets),
                     0);
    }
    free(partitioned);
    free(histograms);
    free(offsets);
}

Test(aggregate, matches_brute_force_for_every_split)
{
    const size_t rows = 20000, customers = 300;
    kseg_agg_record *records = make_records(rows, customers, 12345);
    int thread_counts[] = {1, 2, 3, 4};
    size_t partition_counts[] = {1, 7, KSEG_AGG_PARTITIONS};
    size_t block_sizes[] = {rows, 1000, 333};
    for (int track_keys = 0; track_keys < 2; track_keys++)
        for (int dedupe = 0; dedupe < 2; dedupe++) {
            kseg_agg_customer *expected;
            int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
            size_t n_expected =
                brute_force(records, rows, track_keys, dedupe, &expected, expected_stages);
            if (dedupe)
                cr_assert_gt(expected_stages[KSEG_AGG_DEDUPE], 0, "the log has duplicates");

            kseg_agg_state state;
            cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, dedupe), 0);
            cr_assert_eq(kseg_agg_add_block_reference(&state, records, rows), 0);
            assert_same(expected, n_expected, expected_stages, &state, track_keys, "reference");
            kseg_agg_state_destroy(&state);

            for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++)
                for (size_t p = 0; p < sizeof partition_counts / sizeof partition_counts[0]; p++)
                    for (size_t b = 0; b < sizeof block_sizes / sizeof block_sizes[0]; b++) {
                        char what[128];
                        snprintf(what, sizeof what,
                                 "keys %d dedupe %d threads %d partitions %zu block %zu",
                                 track_keys, dedupe, thread_counts[t], partition_counts[p],
                                 block_sizes[b]);
                        cr_assert_eq(kseg_agg_state_init(&state, partition_counts[p], track_keys,
                                                         dedupe),
                                     0);
                        run_parallel(&state, records, rows, block_sizes[b], thread_counts[t]);
                        assert_same(expected, n_expected, expected_stages, &state, track_keys,
                                    what);
                        kseg_agg_state_destroy(&state);
                    }
            free(expected);
        }
    free(records);
}

Test(aggregate, tables_grow_far_past_the_first_reservation)
{
    /* Many customers with few rows each: every table rehashes many times. */
    const size_t rows = 400000, customers = 150000;
    kseg_agg_record *records = make_records(rows, customers, 777);
    kseg_agg_customer *expected;
    int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
    size_t n_expected = brute_force(records, rows, 1, 1, &expected, expected_stages);
    kseg_agg_state state;
    cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, 1), 0);
    run_parallel(&state, records, rows, 65536, 4);
    assert_same(expected, n_expected, expected_stages, &state, 1, "growth");
    cr_assert_gt(kseg_agg_state_bytes(&state), n_expected * sizeof(kseg_agg_customer));
    kseg_agg_state_destroy(&state);
    free(expected);
    free(records);
}

Test(aggregate, empty_blocks_and_rows_without_customer)
{
    kseg_agg_record records[3];
    memset(records, 0, sizeof records);
    for (int i = 0; i < 3; i++)
        records[i].stage = KSEG_AGG_NO_CUSTOMER;
    kseg_agg_state state;
    cr_assert_eq(kseg_agg_state_init(&state, 16, 1, 1), 0);
    kseg_agg_record partitioned[3];
    size_t histograms[2 * 16], offsets[17];
    cr_assert_eq(kseg_agg_add_block(&state, records, 0, 2, partitioned, histograms, offsets), 0);
    cr_assert_eq(kseg_agg_add_block(&state, records, 3, 2, partitioned, histograms, offsets), 0);
    cr_assert_eq(kseg_agg_customer_count(&state), 0);
    kseg_agg_state_destroy(&state);
}

/* ---------------------------------------------------------------- the column path */

/* A log shaped like real invoices: customers in runs of consecutive rows (the lines of a visit),
 * keys mostly increasing with the row (invoice numbers), and with probability out_of_order_percent
 * a key below the customer's earlier ones (which moves its partition's key log into the set). */
static kseg_agg_record *make_visit_records(size_t rows, size_t customers, uint64_t seed,
                                           unsigned out_of_order_percent)
{
    kseg_agg_record *records = make_records(rows, customers, seed);
    rng_state = seed ^ 0x5bd1e995u;
    records[0].key = 0; /* below every later key, which are i / 2 and copies */
    for (size_t i = 1; i < rows; i++) {
        kseg_agg_record *record = &records[i];
        if (next_random() % 100 < 65) {
            record->customer_id = records[i - 1].customer_id; /* same visit */
            record->key = records[i - 1].key;
        } else
            record->key = (int64_t)(i / 2);
        if (next_random() % 100 < out_of_order_percent)
            record->key = (int64_t)(next_random() % (i + 1)) - 5;
    }
    return records;
}

/* Adds records as columns in blocks of block_rows with kseg_agg_add_columns; returns the first
 * status that is not 0 (and adds no block after it), or 0. */
static int add_columns_in_blocks(kseg_agg_state *state, const kseg_agg_record *records,
                                 size_t rows, size_t block_rows, int threads)
{
    int64_t *customer_id = malloc(rows * sizeof *customer_id);
    int64_t *time = malloc(rows * sizeof *time);
    double *amount = malloc(rows * sizeof *amount);
    int64_t *key = malloc(rows * sizeof *key);
    uint8_t *stage = malloc(rows * sizeof *stage);
    for (size_t i = 0; i < rows; i++) {
        customer_id[i] = records[i].customer_id;
        time[i] = records[i].time;
        amount[i] = records[i].amount;
        key[i] = records[i].key;
        stage[i] = (uint8_t)records[i].stage;
    }
    int status = 0;
    for (size_t begin = 0; begin < rows && !status; begin += block_rows) {
        size_t count = rows - begin < block_rows ? rows - begin : block_rows;
        kseg_agg_columns columns = {customer_id + begin, time + begin, amount + begin,
                                    state->track_keys ? key + begin : NULL, stage + begin};
        status = kseg_agg_add_columns(state, &columns, count, threads);
    }
    free(customer_id);
    free(time);
    free(amount);
    free(key);
    free(stage);
    return status;
}

static void run_columns(kseg_agg_state *state, const kseg_agg_record *records, size_t rows,
                        size_t block_rows, int threads)
{
    cr_assert_eq(add_columns_in_blocks(state, records, rows, block_rows, threads), 0);
}

Test(aggregate, columns_match_brute_force_for_every_split)
{
    const size_t rows = 20000, customers = 300;
    unsigned out_of_order[] = {0, 1, 100};
    int thread_counts[] = {1, 2, 3, 4};
    size_t partition_counts[] = {1, 7, KSEG_AGG_PARTITIONS};
    size_t block_sizes[] = {rows, 1000, 333};
    for (size_t o = 0; o < sizeof out_of_order / sizeof out_of_order[0]; o++) {
        kseg_agg_record *records = make_visit_records(rows, customers, 4242 + o, out_of_order[o]);
        for (int track_keys = 0; track_keys < 2; track_keys++) {
            kseg_agg_customer *expected;
            int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
            size_t n_expected =
                brute_force(records, rows, track_keys, 0, &expected, expected_stages);
            for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++)
                for (size_t p = 0; p < sizeof partition_counts / sizeof partition_counts[0]; p++)
                    for (size_t b = 0; b < sizeof block_sizes / sizeof block_sizes[0]; b++) {
                        char what[160];
                        snprintf(what, sizeof what,
                                 "columns: out of order %u%% keys %d threads %d partitions %zu "
                                 "block %zu",
                                 out_of_order[o], track_keys, thread_counts[t],
                                 partition_counts[p], block_sizes[b]);
                        kseg_agg_state state;
                        cr_assert_eq(kseg_agg_state_init(&state, partition_counts[p], track_keys,
                                                         0),
                                     0);
                        run_columns(&state, records, rows, block_sizes[b], thread_counts[t]);
                        assert_same(expected, n_expected, expected_stages, &state, track_keys,
                                    what);
                        kseg_agg_state_destroy(&state);
                    }
            free(expected);
        }
        free(records);
    }
}

Test(aggregate, columns_then_records_share_the_state)
{
    /* The column path's key log must be moved into the set before the record path adds to it. */
    const size_t rows = 30000, customers = 2000;
    kseg_agg_record *records = make_visit_records(rows, customers, 99, 0);
    kseg_agg_customer *expected;
    int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
    size_t n_expected = brute_force(records, rows, 1, 0, &expected, expected_stages);
    kseg_agg_state state;
    cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, 0), 0);
    run_columns(&state, records, rows / 2, 4096, 2);
    run_parallel(&state, records + rows / 2, rows - rows / 2, 4096, 2);
    assert_same(expected, n_expected, expected_stages, &state, 1, "columns then records");
    kseg_agg_state_destroy(&state);
    free(expected);
    free(records);
}

Test(aggregate, columns_grow_far_and_refuse_dedupe)
{
    const size_t rows = 400000, customers = 150000;
    kseg_agg_record *records = make_visit_records(rows, customers, 31337, 2);
    kseg_agg_customer *expected;
    int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
    size_t n_expected = brute_force(records, rows, 1, 0, &expected, expected_stages);
    kseg_agg_state state;
    cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, 0), 0);
    run_columns(&state, records, rows, 65536, 4);
    assert_same(expected, n_expected, expected_stages, &state, 1, "columns growth");
    kseg_agg_state_destroy(&state);

    cr_assert_eq(kseg_agg_state_init(&state, 16, 1, 1), 0);
    uint8_t stage = KSEG_AGG_KEPT_PURCHASE;
    int64_t zero = 0;
    double amount = 1.0;
    kseg_agg_columns columns = {&zero, &zero, &amount, &zero, &stage};
    cr_assert_eq(kseg_agg_add_columns(&state, &columns, 1, 1), -1, "dedupe is not supported");
    kseg_agg_state_destroy(&state);
    free(expected);
    free(records);
}

/* Customer ids moved into [base, base + range): the dense layout's input, with ids near either
 * end of int64 and negative ones. */
static void densify(kseg_agg_record *records, size_t rows, int64_t base, uint64_t range)
{
    for (size_t i = 0; i < rows; i++)
        records[i].customer_id =
            (int64_t)((uint64_t)base + (uint64_t)records[i].customer_id % range);
}

Test(aggregate, dense_ids_match_brute_force_for_every_split)
{
    const size_t rows = 12000, customers = 300;
    const int64_t bases[] = {0, -150, 1000000, INT64_MAX - 399, INT64_MIN};
    unsigned out_of_order[] = {0, 1, 100};
    int thread_counts[] = {1, 2, 3, 4};
    size_t block_sizes[] = {rows, 1000, 333};
    for (size_t o = 0; o < sizeof out_of_order / sizeof out_of_order[0]; o++)
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            kseg_agg_record *records =
                make_visit_records(rows, customers, 777 + o, out_of_order[o]);
            densify(records, rows, bases[b], 400);
            for (int track_keys = 0; track_keys < 2; track_keys++) {
                kseg_agg_customer *expected;
                int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
                size_t n_expected =
                    brute_force(records, rows, track_keys, 0, &expected, expected_stages);
                for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++)
                    for (size_t k = 0; k < sizeof block_sizes / sizeof block_sizes[0]; k++) {
                        char what[160];
                        snprintf(what, sizeof what,
                                 "dense: out of order %u%% base %lld keys %d threads %d block %zu",
                                 out_of_order[o], (long long)bases[b], track_keys,
                                 thread_counts[t], block_sizes[k]);
                        kseg_agg_state state;
                        cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS,
                                                         track_keys, 0),
                                     0);
                        run_columns(&state, records, rows, block_sizes[k], thread_counts[t]);
                        /* Keys in order keep the dense layout to the end; a key below its
                           customer's largest moves the state into the partitions. */
                        if (out_of_order[o] == 0 || !track_keys)
                            cr_assert(state.dense, "%s: the dense layout was not used", what);
                        if (out_of_order[o] == 100 && track_keys)
                            cr_assert(!state.dense, "%s: still dense", what);
                        assert_same(expected, n_expected, expected_stages, &state, track_keys,
                                    what);
                        kseg_agg_state_destroy(&state);
                    }
                free(expected);
            }
            free(records);
        }
}

Test(aggregate, dense_and_partitions_agree_on_the_same_data)
{
    /* The same dense ids through the dense table and through the partitions (a state moved there
       before its first block): every customer bit for bit. */
    const size_t rows = 50000, customers = 5000;
    kseg_agg_record *records = make_visit_records(rows, customers, 2024, 0);
    densify(records, rows, -2500, 6000);
    kseg_agg_state dense, partitioned;
    cr_assert_eq(kseg_agg_state_init(&dense, KSEG_AGG_PARTITIONS, 1, 0), 0);
    cr_assert_eq(kseg_agg_state_init(&partitioned, KSEG_AGG_PARTITIONS, 1, 0), 0);
    cr_assert_eq(kseg_agg_to_partitions(&partitioned), 0);
    run_columns(&dense, records, rows, 4096, 2);
    run_columns(&partitioned, records, rows, 4096, 3);
    cr_assert(dense.dense && !partitioned.dense);
    kseg_agg_customer *from_dense, *from_partitions;
    int64_t dense_stages[KSEG_AGG_STAGE_COUNT], partition_stages[KSEG_AGG_STAGE_COUNT];
    size_t n = collect(&dense, &from_dense, dense_stages);
    cr_assert_eq(collect(&partitioned, &from_partitions, partition_stages), n);
    cr_assert_arr_eq(dense_stages, partition_stages, sizeof dense_stages);
    for (size_t c = 0; c < n; c++) {
        from_dense[c].unused = from_partitions[c].unused = 0;
        cr_assert_arr_eq(&from_dense[c], &from_partitions[c], sizeof from_dense[c],
                         "customer %lld differs", (long long)from_dense[c].customer_id);
    }
    free(from_dense);
    free(from_partitions);
    kseg_agg_state_destroy(&dense);
    kseg_agg_state_destroy(&partitioned);
    free(records);
}

Test(aggregate, dense_range_widens_then_gives_way_to_the_partitions)
{
    /* Blocks whose ids widen the range below and above (the table grows and keeps what it had),
       then a block with a far-away id (too wide: the partitions take over), then more blocks in
       the partitions; and a first block whose range is too wide starts in the partitions. */
    const size_t rows = 24000, customers = 800;
    kseg_agg_record *records = make_visit_records(rows, customers, 4711, 0);
    for (size_t i = 0; i < rows; i++) {
        uint64_t draw = (uint64_t)records[i].customer_id % 700;
        int64_t id = i < 6000 ? 1000 + (int64_t)(draw % 100)         /* [1000, 1100) */
                     : i < 12000 ? -200 + (int64_t)draw               /* widens below */
                     : i < 18000 ? 1000 + (int64_t)draw * 30          /* widens above */
                                 : (int64_t)draw * 1000003;           /* far: partitions */
        if (i == 20000)
            id = INT64_MIN; /* the widest span there is */
        records[i].customer_id = id;
    }
    for (int track_keys = 0; track_keys < 2; track_keys++) {
        kseg_agg_customer *expected;
        int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
        size_t n_expected = brute_force(records, rows, track_keys, 0, &expected, expected_stages);
        for (int threads = 1; threads <= 3; threads++) {
            kseg_agg_state state;
            cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
            run_columns(&state, records, 18000, 6000, threads);
            cr_assert(state.dense, "three blocks of nearby ids stay dense");
            cr_assert_eq(state.dense_base, -200);
            run_columns(&state, records + 18000, rows - 18000, 3000, threads);
            cr_assert(!state.dense, "a far-away id leaves the dense layout");
            assert_same(expected, n_expected, expected_stages, &state, track_keys,
                        "widening dense range");
            kseg_agg_state_destroy(&state);

            cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
            run_columns(&state, records + 18000, rows - 18000, rows, threads);
            cr_assert(!state.dense && state.layout_decided, "a sparse first block");
            kseg_agg_state_destroy(&state);
        }
        free(expected);
    }
    free(records);
}

Test(aggregate, restartable_state_asks_for_a_restart_only_where_it_needs_the_key_log)
{
    /* A restartable state keeps no key log in the dense layout. Keys in order (or no keys) give
       the same customers as one at a time; a key below its customer's largest, or a far-away id
       after keys were counted, returns KSEG_AGG_RESTART instead of moving into the partitions. */
    const size_t rows = 12000, customers = 300;
    for (unsigned out_of_order = 0; out_of_order <= 100; out_of_order += 100) {
        kseg_agg_record *records = make_visit_records(rows, customers, 515 + out_of_order,
                                                      out_of_order);
        densify(records, rows, -40, 400);
        for (int track_keys = 0; track_keys < 2; track_keys++) {
            kseg_agg_customer *expected;
            int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
            size_t n_expected =
                brute_force(records, rows, track_keys, 0, &expected, expected_stages);
            for (int threads = 1; threads <= 3; threads++) {
                char what[120];
                snprintf(what, sizeof what, "restartable: out of order %u%% keys %d threads %d",
                         out_of_order, track_keys, threads);
                kseg_agg_state state;
                cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
                state.restartable = 1;
                int status = add_columns_in_blocks(&state, records, rows, 1000, threads);
                if (out_of_order && track_keys)
                    cr_assert_eq(status, KSEG_AGG_RESTART, "%s: status %d", what, status);
                else {
                    cr_assert_eq(status, 0, "%s", what);
                    cr_assert(state.dense, "%s: the dense layout was not used", what);
                    for (size_t t = 0; t < state.n_dense_logs; t++)
                        cr_assert_eq(state.dense_logs[t].n_keys, 0, "%s: a key was logged", what);
                    /* assert_same reads the customers through the partitions; the key sets it
                       does not read are what the restartable state left out. */
                    state.restartable = 0;
                    assert_same(expected, n_expected, expected_stages, &state, track_keys, what);
                }
                kseg_agg_state_destroy(&state);
            }
            free(expected);
        }
        free(records);
    }

    /* Dense blocks, then a block with a far-away id: only a state with keys needs the log. */
    kseg_agg_record *records = make_visit_records(rows, customers, 616, 0);
    densify(records, rows, 1000, 400);
    records[rows - 10].customer_id = INT64_MAX;
    records[rows - 10].stage = KSEG_AGG_KEPT_PURCHASE;
    for (int track_keys = 0; track_keys < 2; track_keys++) {
        kseg_agg_customer *expected;
        int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
        size_t n_expected = brute_force(records, rows, track_keys, 0, &expected, expected_stages);
        kseg_agg_state state;
        cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
        state.restartable = 1;
        int status = add_columns_in_blocks(&state, records, rows, 4000, 2);
        if (track_keys)
            cr_assert_eq(status, KSEG_AGG_RESTART, "a far-away id after keys: status %d", status);
        else {
            cr_assert_eq(status, 0);
            cr_assert(!state.dense, "a far-away id leaves the dense layout");
            assert_same(expected, n_expected, expected_stages, &state, 0, "restartable, no keys");
        }
        kseg_agg_state_destroy(&state);
        free(expected);
    }
    /* kseg_agg_to_partitions says the same to a caller that asks for the partitions. */
    kseg_agg_state state;
    cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, 1, 0), 0);
    state.restartable = 1;
    run_columns(&state, records, 1000, 1000, 1);
    cr_assert(state.dense);
    cr_assert_eq(kseg_agg_to_partitions(&state), KSEG_AGG_RESTART);
    kseg_agg_state_destroy(&state);
    free(records);
}

/* The distinct customer ids among records with a customer. */
static size_t distinct_customers(const kseg_agg_record *records, size_t rows)
{
    int64_t *ids = malloc((rows + 1) * sizeof *ids);
    size_t n = 0, distinct = 0;
    for (size_t i = 0; i < rows; i++)
        if (records[i].stage != KSEG_AGG_NO_CUSTOMER)
            ids[n++] = records[i].customer_id;
    qsort(ids, n, sizeof *ids, compare_int64);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || ids[i] != ids[i - 1];
    free(ids);
    return distinct;
}

Test(aggregate, wide_dense_range_matches_brute_force)
{
    /* Ids over a range wider than KSEG_AGG_DENSE_MAX_SPAN but with at most
       KSEG_AGG_DENSE_IDS_PER_CUSTOMER ids per customer: a mapped dense table, the same customers
       bit for bit as one at a time; then a second part whose ids widen the range (the mapped
       table is copied into a wider one) and stay dense enough. With a few keys out of order
       the mapped table moves into the partitions in the middle of a block. */
    const size_t rows = 100000, customers = 40000;
    const uint64_t range = 250000, wider = 265000;
    const size_t first_part = 70000;
    for (unsigned out_of_order = 0; out_of_order < 2; out_of_order++) {
        kseg_agg_record *records = make_visit_records(rows, customers, 9090, out_of_order);
        densify(records, rows, -77777, range);
        for (size_t i = first_part; i < rows; i++)
            if (records[i].customer_id % 3 == 0)
                records[i].customer_id += (int64_t)(wider - range);
        cr_assert_gt(range, KSEG_AGG_DENSE_MAX_SPAN);
        cr_assert_leq(wider,
                      distinct_customers(records, first_part) * KSEG_AGG_DENSE_IDS_PER_CUSTOMER,
                      "the test data must be dense enough (%zu customers)",
                      distinct_customers(records, first_part));
        for (int track_keys = 0; track_keys < 2; track_keys++) {
            kseg_agg_customer *expected;
            int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
            size_t n_expected =
                brute_force(records, rows, track_keys, 0, &expected, expected_stages);
            const int stays_dense = !out_of_order || !track_keys;
            for (int threads = 1; threads <= 3; threads++) {
                char what[120];
                snprintf(what, sizeof what, "wide dense: out of order %u%% keys %d threads %d",
                         out_of_order, track_keys, threads);
                kseg_agg_state state;
                cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0),
                             0);
                run_columns(&state, records, first_part, first_part, threads);
                if (stays_dense) {
                    cr_assert(state.dense, "%s: the wide range was not dense", what);
                    cr_assert_gt(state.dense_span, KSEG_AGG_DENSE_MAX_SPAN);
                }
                run_columns(&state, records + first_part, rows - first_part, 10000, threads);
                if (stays_dense) {
                    cr_assert(state.dense, "%s: the widened range left the dense layout", what);
                    cr_assert_gt(state.dense_span, range, "%s: the range did not widen", what);
                } else
                    cr_assert(!state.dense, "%s: keys out of order stayed dense", what);
                assert_same(expected, n_expected, expected_stages, &state, track_keys, what);
                kseg_agg_state_destroy(&state);
            }
            free(expected);
        }
        free(records);
    }
}

Test(aggregate, sparse_wide_range_goes_to_the_partitions)
{
    /* 500 customers over a million ids: within KSEG_AGG_DENSE_WIDE_SPAN but far more than
       KSEG_AGG_DENSE_IDS_PER_CUSTOMER ids per customer, so the partitions take them; and a
       dense first block followed by one that widens the range past the density limit. */
    const size_t rows = 20000, customers = 500;
    const uint64_t range = 1000000;
    kseg_agg_record *records = make_visit_records(rows, customers, 3131, 0);
    densify(records, rows, 5, range);
    cr_assert_leq(range, KSEG_AGG_DENSE_WIDE_SPAN);
    cr_assert_gt(range, distinct_customers(records, rows) * KSEG_AGG_DENSE_IDS_PER_CUSTOMER);
    kseg_agg_record *narrow = malloc(rows * sizeof *narrow);
    memcpy(narrow, records, rows * sizeof *narrow);
    for (size_t i = 0; i < rows / 2; i++)
        narrow[i].customer_id = 5 + narrow[i].customer_id % 1000; /* [5, 1005): dense */
    for (int track_keys = 0; track_keys < 2; track_keys++) {
        kseg_agg_customer *expected;
        int64_t expected_stages[KSEG_AGG_STAGE_COUNT];
        size_t n_expected = brute_force(records, rows, track_keys, 0, &expected, expected_stages);
        for (int threads = 1; threads <= 2; threads++) {
            kseg_agg_state state;
            cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
            run_columns(&state, records, rows, rows, threads);
            cr_assert(!state.dense && state.layout_decided, "a sparse wide range stayed dense");
            assert_same(expected, n_expected, expected_stages, &state, track_keys,
                        "sparse wide range");
            kseg_agg_state_destroy(&state);
        }
        free(expected);
        n_expected = brute_force(narrow, rows, track_keys, 0, &expected, expected_stages);
        kseg_agg_state state;
        cr_assert_eq(kseg_agg_state_init(&state, KSEG_AGG_PARTITIONS, track_keys, 0), 0);
        run_columns(&state, narrow, rows / 2, rows / 2, 2);
        cr_assert(state.dense, "a narrow first block is dense");
        run_columns(&state, narrow + rows / 2, rows - rows / 2, rows, 2);
        cr_assert(!state.dense, "widening past the density limit leaves the dense layout");
        assert_same(expected, n_expected, expected_stages, &state, track_keys,
                    "dense, then too sparse");
        kseg_agg_state_destroy(&state);
        free(expected);
    }
    free(narrow);
    free(records);
}
