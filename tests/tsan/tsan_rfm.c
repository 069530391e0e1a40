/* ThreadSanitizer driver for the RFM stage: transaction generation, aggregation through the column
 * path (the dense table for the generated ids, and the partitions it moves into when rows arrive
 * out of key order; frequency by invoices, lines and days) and the dedupe record path, with
 * where, min-price and netted-returns filters, rank and value scoring, the scoring entry point on
 * its own, the distributed driver on one rank (kseg_rfm_distributed: gathering and scoring the
 * records), and the parallel compression of the result file, at 1, 2 and 4 threads; every table
 * (and file) must equal the 1-thread one bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/io.h"
#include "kseg/kseg.h"
#include "tsan_driver.h"

#define ROWS 150000
#define CUSTOMERS 40000
#define MAX_CATEGORIES 8

/* The generated log as columns, with its category columns. */
typedef struct transaction_log {
    int64_t *customer_id, *time, *invoice;
    double *amount, *quantity, *price;
    uint8_t *cancelled;
    int32_t *codes[MAX_CATEGORIES];
    const char *names[MAX_CATEGORIES][16];
    kseg_category_column categories[MAX_CATEGORIES];
    size_t n_categories;
} transaction_log;

static void log_alloc(transaction_log *log)
{
    memset(log, 0, sizeof *log);
    log->customer_id = malloc(ROWS * sizeof *log->customer_id);
    log->time = malloc(ROWS * sizeof *log->time);
    log->invoice = malloc(ROWS * sizeof *log->invoice);
    log->amount = malloc(ROWS * sizeof *log->amount);
    log->quantity = malloc(ROWS * sizeof *log->quantity);
    log->price = malloc(ROWS * sizeof *log->price);
    log->cancelled = malloc(ROWS * sizeof *log->cancelled);
    log->n_categories = kseg_generated_category_count();
    for (size_t c = 0; c < log->n_categories; c++) {
        log->codes[c] = malloc(ROWS * sizeof *log->codes[c]);
        size_t size = kseg_generated_category_size(c);
        for (size_t v = 0; v < size && v < 16; v++)
            log->names[c][v] = kseg_generated_category_value(c, v);
        log->categories[c] = (kseg_category_column){kseg_generated_category_name(c),
                                                    log->codes[c], log->names[c], size};
    }
}

static void log_free(transaction_log *log)
{
    free(log->customer_id);
    free(log->time);
    free(log->invoice);
    free(log->amount);
    free(log->quantity);
    free(log->price);
    free(log->cancelled);
    for (size_t c = 0; c < log->n_categories; c++)
        free(log->codes[c]);
}

static void generate(transaction_log *log, int threads)
{
    kseg_transaction_options options;
    kseg_transaction_options_defaults(&options);
    options.seed = 5;
    options.customers = CUSTOMERS;
    options.days = 400;
    options.return_rate = 0.05;
    kseg_error error = {0};
    tsan_set_threads(threads);
    TSAN_OK(kseg_generate_transactions(&options, ROWS, 0, ROWS, log->customer_id, log->time,
                                       log->amount, log->quantity, log->price, log->invoice,
                                       log->cancelled, log->codes, &error),
            &error);
}

/* The generator at every thread count: each row is a pure function of its index. */
static void check_generation(transaction_log *log)
{
    generate(log, 1);
    transaction_log other;
    log_alloc(&other);
    for (int t = 1; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        generate(&other, threads);
        TSAN_SAME(log->customer_id, other.customer_id, ROWS * sizeof(int64_t), threads, "ids");
        TSAN_SAME(log->time, other.time, ROWS * sizeof(int64_t), threads, "times");
        TSAN_SAME(log->invoice, other.invoice, ROWS * sizeof(int64_t), threads, "invoices");
        TSAN_SAME(log->amount, other.amount, ROWS * sizeof(double), threads, "amounts");
        TSAN_SAME(log->quantity, other.quantity, ROWS * sizeof(double), threads, "quantities");
        TSAN_SAME(log->price, other.price, ROWS * sizeof(double), threads, "prices");
        TSAN_SAME(log->cancelled, other.cancelled, ROWS, threads, "cancelled flags");
        for (size_t c = 0; c < log->n_categories; c++)
            TSAN_SAME(log->codes[c], other.codes[c], ROWS * sizeof(int32_t), threads,
                      "category %zu", c);
    }
    log_free(&other);
    printf("%s: transaction generation identical at 1, 2 and 4 threads\n", tsan_driver_name);
}

/* The log's rows [begin, begin + rows) as a block. */
static kseg_transactions block_of(const transaction_log *log, size_t begin, size_t rows,
                                  kseg_category_column *categories)
{
    for (size_t c = 0; c < log->n_categories; c++) {
        categories[c] = log->categories[c];
        categories[c].codes = log->codes[c] + begin;
    }
    kseg_transactions block = {rows,
                               log->customer_id + begin,
                               NULL,
                               log->time + begin,
                               log->amount + begin,
                               log->quantity + begin,
                               log->price + begin,
                               log->invoice + begin,
                               log->cancelled + begin,
                               categories,
                               log->n_categories};
    return block;
}

/* Aggregates the log in three blocks of unequal size and finishes the table. With more than one
 * thread the aggregator is restartable (as `kseg rfm` makes it), and the blocks are added again
 * when it asks for that. */
static void rfm(const transaction_log *log, const kseg_rfm_options *given, int threads,
                kseg_rfm_table *table)
{
    kseg_rfm_options options = *given;
    options.n_threads = given->n_threads ? threads : 0;
    options.restartable = threads > 1;
    tsan_set_threads(threads);
    kseg_rfm_aggregator *aggregator;
    kseg_error error = {0};
    TSAN_OK(kseg_rfm_aggregator_create(&aggregator, &options, &error), &error);
    const size_t splits[4] = {0, ROWS / 5, ROWS / 2, ROWS};
    int restarts = 0;
    for (int b = 0; b < 3; b++) {
        kseg_category_column categories[MAX_CATEGORIES];
        kseg_transactions block =
            block_of(log, splits[b], splits[b + 1] - splits[b], categories);
        int status = kseg_rfm_aggregator_add(aggregator, &block, &error);
        if (status == KSEG_ERESTART && restarts++ == 0) {
            b = -1;
            continue;
        }
        TSAN_OK(status, &error);
    }
    kseg_rfm_table_init(table);
    TSAN_OK(kseg_rfm_aggregator_finish(aggregator, table, &error), &error);
    kseg_rfm_aggregator_destroy(aggregator);
}

static void compare_tables(const kseg_rfm_table *a, const kseg_rfm_table *b, int threads,
                           const char *what);

/* The distributed driver's reader on one (serial) rank: row ranges of the log. */
static int read_log_rows(void *context, size_t offset, size_t rows, kseg_transactions *block,
                         kseg_error *error)
{
    (void)error;
    static kseg_category_column categories[MAX_CATEGORIES];
    *block = block_of(context, offset, rows, categories);
    return 0;
}

/* kseg_rfm_distributed on the single-process communicator: its exchange is a copy, but its
 * aggregation, gathering and scoring of the records (kseg_rfm_table_from_records) run on the
 * OpenMP threads; every table must equal the 1-thread serial aggregator's. */
static void check_distributed_path(const transaction_log *log, const kseg_rfm_options *given)
{
    kseg_rfm_table reference;
    rfm(log, given, 1, &reference);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        kseg_rfm_options options = *given;
        options.n_threads = threads;
        tsan_set_threads(threads);
        kseg_comm serial;
        kseg_comm_serial(&serial, ROWS);
        kseg_rfm_table table;
        kseg_rfm_table_init(&table);
        kseg_error error = {0};
        TSAN_OK(kseg_rfm_distributed(&serial, ROWS, &options, read_log_rows, (void *)log, &table,
                                     &error),
                &error);
        compare_tables(&reference, &table, threads, "distributed path");
        kseg_rfm_table_destroy(&table);
    }
    kseg_rfm_table_destroy(&reference);
    printf("%s: RFM, distributed path on one rank: identical at 1, 2 and 4 threads\n",
           tsan_driver_name);
}

static void compare_tables(const kseg_rfm_table *a, const kseg_rfm_table *b, int threads,
                           const char *what)
{
    if (a->n_customers != b->n_customers || a->bins != b->bins) {
        tsan_fail(__FILE__, __LINE__, "%s: %zu customers with %d threads, %zu with 1", what,
                  b->n_customers, threads, a->n_customers);
        return;
    }
    size_t n = a->n_customers;
    TSAN_SAME(a->customer_id, b->customer_id, n * sizeof(int64_t), threads, "%s: ids", what);
    TSAN_SAME(a->recency, b->recency, n * sizeof(double), threads, "%s: recency", what);
    TSAN_SAME(a->frequency, b->frequency, n * sizeof(double), threads, "%s: frequency", what);
    TSAN_SAME(a->monetary, b->monetary, n * sizeof(double), threads, "%s: monetary", what);
    TSAN_SAME(a->tenure, b->tenure, n * sizeof(double), threads, "%s: tenure", what);
    TSAN_SAME(a->rows, b->rows, n * sizeof(int64_t), threads, "%s: rows", what);
    TSAN_SAME(a->scores, b->scores, 3 * n * sizeof(int32_t), threads, "%s: scores", what);
    TSAN_SAME(a->segment, b->segment, n * sizeof(int32_t), threads, "%s: segments", what);
    TSAN_SAME(a->cuts, b->cuts, 3 * ((size_t)a->bins + 1) * sizeof(double), threads,
              "%s: cuts", what);
    TSAN_CHECK(a->reference_time == b->reference_time && a->last_time == b->last_time &&
                   a->total_rows == b->total_rows &&
                   memcmp(&a->total_amount, &b->total_amount, sizeof a->total_amount) == 0,
               "%s: totals differ with %d threads", what, threads);
    for (size_t s = 0; s < a->n_stages; s++)
        TSAN_CHECK(a->stages[s].rows_removed == b->stages[s].rows_removed &&
                       a->stages[s].customers_removed == b->stages[s].customers_removed,
                   "%s: stage '%s' differs with %d threads", what, a->stages[s].name, threads);
}

static void check_rfm(const transaction_log *log, const kseg_rfm_options *options,
                      const char *what)
{
    kseg_rfm_table reference;
    rfm(log, options, 1, &reference);
    TSAN_CHECK(reference.n_customers > 1000, "%s: only %zu customers", what,
               reference.n_customers);
    for (int t = 1; t < TSAN_THREAD_COUNTS; t++) {
        kseg_rfm_table table;
        rfm(log, options, tsan_thread_counts[t], &table);
        compare_tables(&reference, &table, tsan_thread_counts[t], what);
        kseg_rfm_table_destroy(&table);
    }
    kseg_rfm_table_destroy(&reference);
    printf("%s: RFM, %s: identical at 1, 2 and 4 threads\n", tsan_driver_name, what);
}

/* The log with rows swapped in pairs of distant positions: each customer's invoices and days then
 * arrive out of order, which sends the column path from its key log to the key set. */
static void shuffle_rows(transaction_log *log)
{
    uint64_t state = 17;
    for (size_t i = 0; i < ROWS; i += 3) {
        size_t j = (size_t)(tsan_next(&state) % ROWS);
#define SWAP(array)                                                                             \
    do {                                                                                        \
        __typeof__(log->array[0]) swap = log->array[i];                                         \
        log->array[i] = log->array[j];                                                          \
        log->array[j] = swap;                                                                   \
    } while (0)
        SWAP(customer_id);
        SWAP(time);
        SWAP(invoice);
        SWAP(amount);
        SWAP(quantity);
        SWAP(price);
        SWAP(cancelled);
        for (size_t c = 0; c < log->n_categories; c++) {
            int32_t swap = log->codes[c][i];
            log->codes[c][i] = log->codes[c][j];
            log->codes[c][j] = swap;
        }
#undef SWAP
    }
}

/* kseg_rfm_score_feature alone, on more values than the radix sort's serial threshold and with
 * ids out of order (the tie-breaking sort by id runs first). */
static void check_scoring(void)
{
    const size_t n = 100000;
    double *values = malloc(n * sizeof *values);
    int64_t *ids = malloc(n * sizeof *ids);
    int32_t *reference = malloc(n * sizeof *reference), *scores = malloc(n * sizeof *scores);
    uint64_t state = 23;
    for (size_t i = 0; i < n; i++) {
        values[i] = floor(tsan_uniform(&state) * 300.0); /* many ties */
        ids[i] = (int64_t)(tsan_next(&state) >> 1);
    }
    for (int ties = 0; ties < 2; ties++) {
        double reference_cuts[11], cuts[11];
        for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
            int threads = tsan_thread_counts[t];
            kseg_error error = {0};
            tsan_set_threads(threads);
            TSAN_OK(kseg_rfm_score_feature(values, ids, n, 10, (kseg_ties_mode)ties, 0,
                                           t == 0 ? reference : scores,
                                           t == 0 ? reference_cuts : cuts, &error),
                    &error);
            if (t == 0)
                continue;
            TSAN_SAME(reference, scores, n * sizeof *scores, threads, "scores (ties mode %d)",
                      ties);
            TSAN_SAME(reference_cuts, cuts, sizeof cuts, threads, "cuts (ties mode %d)", ties);
        }
    }
    free(values);
    free(ids);
    free(reference);
    free(scores);
    printf("%s: feature scoring identical at 1, 2 and 4 threads\n", tsan_driver_name);
}

/* The whole bytes of a file (malloc'ed); *size receives the length. */
static unsigned char *file_bytes(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    TSAN_CHECK(file != NULL, "cannot open %s", path);
    if (!file)
        return NULL;
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *bytes = malloc(length > 0 ? (size_t)length : 1);
    *size = fread(bytes, 1, length > 0 ? (size_t)length : 0, file);
    fclose(file);
    return bytes;
}

/* The result writer (io/h5_write.c) compresses the chunks of a dataset on OpenMP threads: an RFM
 * table written at 1, 2 and 4 threads must give the same file, byte for byte. */
static void check_result_writing(const transaction_log *log)
{
    char directory[] = "/tmp/tsan_rfm.XXXXXX";
    TSAN_CHECK(mkdtemp(directory) != NULL, "cannot create a scratch directory");
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    rfm(log, &options, 1, &table);
    unsigned char *reference = NULL;
    size_t reference_size = 0;
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        tsan_set_threads(threads);
        char path[64];
        snprintf(path, sizeof path, "%s/rfm%d.h5", directory, threads);
        kseg_error error;
        kseg_error_clear(&error);
        kseg_h5_writer *writer = NULL;
        const size_t dims[2] = {table.n_customers, 3};
        TSAN_OK(kseg_h5_writer_open(&writer, path, &error), &error);
        /* Chunks of 4096 rows: several per dataset, so that they are filtered in parallel. */
        TSAN_OK(kseg_h5_write_dataset(writer, "/rfm/monetary", KSEG_STORE_FLOAT64, 1, dims,
                                      table.monetary, 4096, 1, &error),
                &error);
        TSAN_OK(kseg_h5_write_dataset(writer, "/rfm/score", KSEG_STORE_INT32, 2, dims,
                                      table.scores, 4096, 4, &error),
                &error);
        TSAN_OK(kseg_h5_writer_commit(writer, &error), &error);
        size_t size = 0;
        unsigned char *bytes = file_bytes(path, &size);
        remove(path);
        if (t == 0) {
            reference = bytes;
            reference_size = size;
            continue;
        }
        TSAN_CHECK(size == reference_size, "result file of %zu bytes with %d threads, %zu with 1",
                   size, threads, reference_size);
        if (size == reference_size)
            TSAN_SAME(reference, bytes, size, threads, "result file");
        free(bytes);
    }
    free(reference);
    remove(directory);
    kseg_rfm_table_destroy(&table);
    printf("%s: result file identical at 1, 2 and 4 threads\n", tsan_driver_name);
}

int main(void)
{
    tsan_start("tsan_rfm");
    transaction_log log;
    log_alloc(&log);
    check_generation(&log);

    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    check_rfm(&log, &options, "defaults (invoices, column path)");

    /* Frequency by days with netted returns, a minimum price, a where condition on two values of
       one column, value ties and "best low"; the thread count passed explicitly. */
    kseg_rfm_filter filters[2] = {{"country", "Germany"}, {"country", "France"}};
    kseg_rfm_options filtered = options;
    filtered.frequency = KSEG_FREQUENCY_DAYS;
    filtered.frequency_explicit = 1;
    filtered.returns = KSEG_RETURNS_NET;
    filtered.min_price = 3.0;
    filtered.filters = filters;
    filtered.n_filters = 2;
    filtered.ties = KSEG_TIES_VALUE;
    filtered.best = KSEG_BEST_LOW;
    filtered.bins = 4;
    filtered.n_threads = 1; /* replaced by the thread count of the run */
    check_rfm(&log, &filtered, "days, net returns, min price, where, value ties");

    /* The record path: dedupe on, frequency by lines. */
    kseg_rfm_options dedupe = options;
    dedupe.dedupe = 1;
    dedupe.frequency = KSEG_FREQUENCY_LINES;
    dedupe.frequency_explicit = 1;
    check_rfm(&log, &dedupe, "dedupe (record path), lines");
    check_distributed_path(&log, &options);

    shuffle_rows(&log);
    check_rfm(&log, &options, "rows out of key order (key set)");
    kseg_rfm_options shuffled_dedupe = dedupe;
    shuffled_dedupe.frequency = KSEG_FREQUENCY_INVOICES;
    check_rfm(&log, &shuffled_dedupe, "rows out of key order, dedupe, invoices");

    check_scoring();
    check_result_writing(&log);
    log_free(&log);
    return tsan_finish();
}
