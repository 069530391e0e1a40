/* The distributed RFM driver on 1 to 4 ranks simulated with threads (tests/comm_threads.h):
 * every output column, the cut points, the stage counts and the totals bitwise equal to the
 * serial aggregator's for several option sets, on logs whose customers have rows on every rank
 * and in several rounds; fewer rows than ranks; and errors that every rank reports alike. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_threads.h"
#include "kseg/rfm.h"

#define DAY 86400
static const int64_t start_2023 = 1672531200; /* 2023-01-01T00:00:00Z */

static const char *const country_names[] = {"United Kingdom", "France", "Germany", "EIRE"};
static const char *const channel_names[] = {"web", "store", "phone"};

typedef struct test_log {
    size_t rows;
    int64_t *customer_id;
    uint8_t *valid;
    int64_t *time;
    double *amount, *quantity, *price;
    int64_t *invoice;
    uint8_t *cancelled;
    int32_t *country, *channel;
} test_log;

static uint64_t rng_state;
static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* rows lines over `customers` customers (ids spread over a wide range, so the owners' tables
 * are hashed, or a narrow one when dense_ids is set), with rows without customer id, returns,
 * cancellations, zero prices, repeated invoices, amounts in cents and exact duplicates of
 * earlier rows (often far earlier: on another rank or in another round). */
static test_log make_log(size_t rows, size_t customers, int dense_ids, uint64_t seed)
{
    rng_state = seed;
    test_log log = {.rows = rows};
    log.customer_id = malloc(rows * sizeof *log.customer_id);
    log.valid = malloc(rows);
    log.time = malloc(rows * sizeof *log.time);
    log.amount = malloc(rows * sizeof *log.amount);
    log.quantity = malloc(rows * sizeof *log.quantity);
    log.price = malloc(rows * sizeof *log.price);
    log.invoice = malloc(rows * sizeof *log.invoice);
    log.cancelled = malloc(rows);
    log.country = malloc(rows * sizeof *log.country);
    log.channel = malloc(rows * sizeof *log.channel);
    cr_assert(log.customer_id && log.valid && log.time && log.amount && log.quantity &&
              log.price && log.invoice && log.cancelled && log.country && log.channel);
    for (size_t i = 0; i < rows; i++) {
        if (i > 0 && next_random() % 20 == 0) {
            size_t j = next_random() % i;
            log.customer_id[i] = log.customer_id[j];
            log.valid[i] = log.valid[j];
            log.time[i] = log.time[j];
            log.amount[i] = log.amount[j];
            log.quantity[i] = log.quantity[j];
            log.price[i] = log.price[j];
            log.invoice[i] = log.invoice[j];
            log.cancelled[i] = log.cancelled[j];
            log.country[i] = log.country[j];
            log.channel[i] = log.channel[j];
            continue;
        }
        size_t c = next_random() % customers;
        log.country[i] = (int32_t)(next_random() % 10 == 0 ? next_random() % 4 : c % 4);
        log.channel[i] = (int32_t)(next_random() % 3);
        log.valid[i] = next_random() % 25 != 0;
        log.customer_id[i] =
            log.valid[i] ? (dense_ids ? 5000 + (int64_t)c : (int64_t)(c * 7919) - 3000000) : 0;
        log.time[i] = start_2023 + (int64_t)(next_random() % (uint64_t)(500 * DAY));
        log.quantity[i] = (double)(int64_t)(next_random() % 12 + 1);
        log.price[i] = next_random() % 30 == 0 ? 0.0 : (double)(next_random() % 5000) / 100.0;
        log.cancelled[i] = 0;
        if (next_random() % 12 == 0) {
            log.quantity[i] = -log.quantity[i];
            log.cancelled[i] = next_random() % 2;
        }
        log.amount[i] = log.quantity[i] * log.price[i];
        log.invoice[i] = log.cancelled[i] ? 900000 + (int64_t)(next_random() % 1000)
                                          : (int64_t)c * 1000 + (int64_t)(next_random() % 25);
    }
    return log;
}

static void free_log(test_log *log)
{
    free(log->customer_id);
    free(log->valid);
    free(log->time);
    free(log->amount);
    free(log->quantity);
    free(log->price);
    free(log->invoice);
    free(log->cancelled);
    free(log->country);
    free(log->channel);
}

/* The block view of rows [begin, begin + rows), categories filled into the caller's array. */
static kseg_transactions block_of(const test_log *log, size_t begin, size_t rows, int has_invoice,
                                  kseg_category_column *categories)
{
    categories[0] = (kseg_category_column){"Country", log->country + begin, country_names, 4};
    categories[1] = (kseg_category_column){"channel", log->channel + begin, channel_names, 3};
    return (kseg_transactions){.rows = rows,
                               .customer_id = log->customer_id + begin,
                               .customer_valid = log->valid + begin,
                               .time = log->time + begin,
                               .amount = log->amount + begin,
                               .quantity = log->quantity + begin,
                               .price = log->price + begin,
                               .invoice = has_invoice ? log->invoice + begin : NULL,
                               .cancelled = log->cancelled + begin,
                               .categories = categories,
                               .n_categories = 2};
}

/* The serial path: the whole log through one aggregator, in blocks of block_rows. */
static int run_serial(const test_log *log, const kseg_rfm_options *options, size_t block_rows,
                      int has_invoice, kseg_rfm_table *table, kseg_error *error)
{
    kseg_rfm_aggregator *aggregator = NULL;
    int status = kseg_rfm_aggregator_create(&aggregator, options, error);
    for (size_t begin = 0; !status && begin < log->rows; begin += block_rows) {
        kseg_category_column categories[2];
        size_t rows = log->rows - begin < block_rows ? log->rows - begin : block_rows;
        kseg_transactions block = block_of(log, begin, rows, has_invoice, categories);
        status = kseg_rfm_aggregator_add(aggregator, &block, error);
    }
    if (!status)
        status = kseg_rfm_aggregator_finish(aggregator, table, error);
    kseg_rfm_aggregator_destroy(aggregator);
    return status;
}

/* One simulated rank: its reader state, and what the driver returned. */
typedef struct rank_run {
    const test_log *log;
    const kseg_rfm_options *options;
    int has_invoice;
    kseg_category_column categories[2];
    size_t reads;      /* rows read, to check that each rank read only its share */
    size_t fail_at;    /* a read of rows starting here fails (0: none) */
    kseg_rfm_table table;
    kseg_error error;
    int status;
} rank_run;

static int read_rows(void *context, size_t offset, size_t rows, kseg_transactions *block,
                     kseg_error *error)
{
    rank_run *run = context;
    if (run->fail_at && offset == run->fail_at)
        return kseg_error_set(error, KSEG_EIO, "test reader: rows from %zu are unreadable", offset);
    if (offset + rows > run->log->rows)
        return kseg_error_set(error, KSEG_EINVAL, "test reader: rows %zu + %zu out of range",
                              offset, rows);
    *block = block_of(run->log, offset, rows, run->has_invoice, run->categories);
    run->reads += rows;
    return 0;
}

static void rank_body(const kseg_comm *comm, size_t rows, void *argument)
{
    (void)rows;
    rank_run *run = argument;
    kseg_rfm_table_init(&run->table);
    kseg_error_clear(&run->error);
    run->status = kseg_rfm_distributed(comm, run->log->rows, run->options, read_rows, run,
                                       &run->table, &run->error);
}

static void assert_arrays(const void *a, const void *b, size_t bytes, const char *what,
                          const char *column)
{
    cr_assert((a == NULL) == (b == NULL), "%s: %s present on one side only", what, column);
    if (bytes)
        cr_assert_eq(memcmp(a, b, bytes), 0, "%s: %s differs", what, column);
}

static void assert_bitwise_equal(const kseg_rfm_table *a, const kseg_rfm_table *b,
                                 const char *what)
{
    size_t n = a->n_customers;
    cr_assert_eq(b->n_customers, n, "%s: %zu customers, not %zu", what, b->n_customers, n);
    assert_arrays(a->customer_id, b->customer_id, n * sizeof(int64_t), what, "customer_id");
    assert_arrays(a->recency, b->recency, n * sizeof(double), what, "recency");
    assert_arrays(a->frequency, b->frequency, n * sizeof(double), what, "frequency");
    assert_arrays(a->monetary, b->monetary, n * sizeof(double), what, "monetary");
    assert_arrays(a->tenure, b->tenure, n * sizeof(double), what, "tenure");
    assert_arrays(a->rows, b->rows, n * sizeof(int64_t), what, "rows");
    assert_arrays(a->scores, b->scores, 3 * n * sizeof(int32_t), what, "scores");
    assert_arrays(a->segment, b->segment, n * sizeof(int32_t), what, "segment");
    cr_assert_eq(a->bins, b->bins, "%s: bins", what);
    assert_arrays(a->cuts, b->cuts, 3 * ((size_t)a->bins + 1) * sizeof(double), what, "cuts");
    cr_assert_eq(a->map.n_segments, b->map.n_segments, "%s: segments", what);
    for (size_t s = 0; s < a->map.n_segments; s++)
        cr_assert_str_eq(a->map.names[s], b->map.names[s], "%s: segment %zu", what, s);
    cr_assert_eq(a->reference_time, b->reference_time, "%s: reference time", what);
    cr_assert_eq(a->last_time, b->last_time, "%s: last time", what);
    cr_assert_eq(a->total_rows, b->total_rows, "%s: total rows", what);
    cr_assert_eq(memcmp(&a->total_amount, &b->total_amount, sizeof(double)), 0,
                 "%s: total amount %.17g, not %.17g", what, b->total_amount, a->total_amount);
    cr_assert_eq(a->frequency_mode, b->frequency_mode, "%s: frequency mode", what);
    cr_assert_eq(a->reference_before_last, b->reference_before_last, "%s: early reference",
                 what);
    cr_assert_eq(a->n_stages, b->n_stages, "%s: stages", what);
    for (size_t s = 0; s < a->n_stages; s++) {
        cr_assert_str_eq(a->stages[s].name, b->stages[s].name, "%s: stage %zu", what, s);
        cr_assert_eq(a->stages[s].rows_removed, b->stages[s].rows_removed,
                     "%s: stage %s rows removed %lld, not %lld", what, a->stages[s].name,
                     (long long)b->stages[s].rows_removed, (long long)a->stages[s].rows_removed);
        cr_assert_eq(a->stages[s].customers_removed, b->stages[s].customers_removed,
                     "%s: stage %s customers removed", what, a->stages[s].name);
    }
}

/* Runs the driver on `size` ranks; runs[r] gets rank r's result. */
static void run_distributed(const test_log *log, const kseg_rfm_options *options,
                            int has_invoice, int size, rank_run *runs)
{
    void *arguments[THREAD_COMM_MAX_RANKS];
    for (int r = 0; r < size; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        runs[r].log = log;
        runs[r].options = options;
        runs[r].has_invoice = has_invoice;
        arguments[r] = &runs[r];
    }
    cr_assert_eq(thread_comm_run(size, log->rows, rank_body, arguments), 0);
}

/* The serial result against 1, 2, 3 and 4 ranks, every rank's table. */
static void check_against_serial(const test_log *log, const kseg_rfm_options *options,
                                 int has_invoice, const char *name)
{
    kseg_rfm_table serial;
    kseg_rfm_table_init(&serial);
    kseg_error error = {0};
    kseg_rfm_options serial_options = *options;
    serial_options.n_threads = 2;
    cr_assert_eq(run_serial(log, &serial_options, 100000, has_invoice, &serial, &error), 0,
                 "%s: serial: %s", name, error.message);
    cr_assert_gt(serial.n_customers, 0);
    for (int size = 1; size <= 4; size++) {
        rank_run runs[4];
        run_distributed(log, options, has_invoice, size, runs);
        size_t reads = 0;
        for (int r = 0; r < size; r++) {
            char what[160];
            snprintf(what, sizeof what, "%s, rank %d of %d", name, r, size);
            cr_assert_eq(runs[r].status, 0, "%s: %s", what, runs[r].error.message);
            assert_bitwise_equal(&serial, &runs[r].table, what);
            reads += runs[r].reads;
            kseg_rfm_table_destroy(&runs[r].table);
        }
        cr_assert_eq(reads, log->rows, "%s on %d ranks: every row is read once", name, size);
    }
    kseg_rfm_table_destroy(&serial);
}

/* More rows than one round of 4 ranks (4 x 65536), so every rank reads in several rounds. */
#define ROWS 300000

Test(rfm_distributed, invoices_drop_rank_ties_match_serial)
{
    test_log log = make_log(ROWS, 20000, 0, 1);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.n_threads = 1;
    check_against_serial(&log, &options, 1, "invoices, returns drop, ties rank");
    free_log(&log);
}

Test(rfm_distributed, days_net_value_dedupe_where_match_serial)
{
    test_log log = make_log(ROWS, 20000, 0, 2);
    kseg_rfm_filter filters[] = {{"Country", "United Kingdom"}, {"Country", "France"},
                                 {"channel", "web"}, {"channel", "store"}};
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency = KSEG_FREQUENCY_DAYS;
    options.frequency_explicit = 1;
    options.returns = KSEG_RETURNS_NET;
    options.ties = KSEG_TIES_VALUE;
    options.dedupe = 1;
    options.filters = filters;
    options.n_filters = 4;
    options.n_threads = 2;
    check_against_serial(&log, &options, 1, "days, net, value, dedupe, where");
    free_log(&log);
}

Test(rfm_distributed, lines_mean_min_price_best_low_dense_ids_match_serial)
{
    /* Few ids in a narrow range: the owners' aggregators take the dense layout. */
    test_log log = make_log(ROWS, 3000, 1, 3);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency = KSEG_FREQUENCY_LINES;
    options.frequency_explicit = 1;
    options.monetary = KSEG_MONETARY_MEAN;
    options.min_price = 1.0;
    options.best = KSEG_BEST_LOW;
    options.bins = 4;
    options.reference_time = start_2023 + 400 * DAY; /* before the last purchase */
    options.n_threads = 1;
    check_against_serial(&log, &options, 1, "lines, mean, min price, best low, dense ids");
    free_log(&log);
}

Test(rfm_distributed, no_invoice_column_dedupe_net_rank_ties_match_serial)
{
    test_log log = make_log(ROWS, 50000, 0, 4);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.dedupe = 1;
    options.returns = KSEG_RETURNS_NET;
    options.n_threads = 1;
    check_against_serial(&log, &options, 0, "no invoices (lines), dedupe, net");
    free_log(&log);
}

Test(rfm_distributed, fewer_rows_than_ranks)
{
    test_log log = make_log(3, 2, 0, 5);
    log.valid[0] = log.valid[1] = log.valid[2] = 1;
    log.amount[0] = log.amount[1] = log.amount[2] = 10.25;
    log.quantity[0] = log.quantity[1] = log.quantity[2] = 1.0;
    log.cancelled[0] = log.cancelled[1] = log.cancelled[2] = 0;
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency = KSEG_FREQUENCY_LINES;
    options.frequency_explicit = 1;
    options.n_threads = 1;
    check_against_serial(&log, &options, 1, "3 rows");
    free_log(&log);
}

/* Every rank fails with the serial path's error (same code, same message). */
static void check_same_error(const test_log *log, const kseg_rfm_options *options,
                             const char *name)
{
    kseg_rfm_table serial;
    kseg_rfm_table_init(&serial);
    kseg_error expected = {0};
    int code = run_serial(log, options, log->rows, 1, &serial, &expected);
    cr_assert_neq(code, 0, "%s: the serial path should fail", name);
    for (int size = 1; size <= 4; size++) {
        rank_run runs[4];
        run_distributed(log, options, 1, size, runs);
        for (int r = 0; r < size; r++) {
            cr_assert_eq(runs[r].status, code, "%s, rank %d of %d: status %d (%s), not %d", name,
                         r, size, runs[r].status, runs[r].error.message, code);
            cr_assert_str_eq(runs[r].error.message, expected.message, "%s, rank %d of %d", name,
                             r, size);
            cr_assert_eq(runs[r].table.n_customers, 0);
            kseg_rfm_table_destroy(&runs[r].table);
        }
    }
    kseg_rfm_table_destroy(&serial);
}

Test(rfm_distributed, errors_are_the_serial_ones_on_every_rank)
{
    test_log log = make_log(ROWS, 2000, 0, 6);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.n_threads = 1;

    /* A non-finite amount in the last round, read by the last rank of most splits. */
    double saved = log.amount[ROWS - 10];
    log.amount[ROWS - 10] = NAN;
    check_same_error(&log, &options, "NaN amount");
    log.amount[ROWS - 10] = saved;

    kseg_rfm_filter unknown[] = {{"Country", "Atlantis"}};
    options.filters = unknown;
    options.n_filters = 1;
    check_same_error(&log, &options, "unknown where value");

    /* Everything filtered out: the stage counts are in the message. */
    options.filters = NULL;
    options.n_filters = 0;
    options.min_price = 1e9;
    check_same_error(&log, &options, "everything below the minimum price");
    free_log(&log);
}

Test(rfm_distributed, a_read_failure_stops_every_rank_with_the_lowest_ranks_error)
{
    test_log log = make_log(ROWS, 2000, 0, 7);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.n_threads = 1;
    const size_t share = KSEG_RFM_DISTRIBUTED_ROWS;
    for (int size = 2; size <= 4; size++) {
        rank_run runs[4];
        void *arguments[4];
        for (int r = 0; r < size; r++) {
            memset(&runs[r], 0, sizeof runs[r]);
            runs[r].log = &log;
            runs[r].options = &options;
            runs[r].has_invoice = 1;
            arguments[r] = &runs[r];
        }
        /* Rank 1 fails in the first round; the last rank, too, when there are more than 2. */
        runs[1].fail_at = share;
        if (size > 2)
            runs[size - 1].fail_at = (size_t)(size - 1) * share;
        cr_assert_eq(thread_comm_run(size, log.rows, rank_body, arguments), 0);
        char expected[128];
        snprintf(expected, sizeof expected, "test reader: rows from %zu are unreadable", share);
        for (int r = 0; r < size; r++) {
            cr_assert_eq(runs[r].status, KSEG_EIO, "rank %d of %d: %d (%s)", r, size,
                         runs[r].status, runs[r].error.message);
            cr_assert_str_eq(runs[r].error.message, expected, "rank %d of %d", r, size);
            kseg_rfm_table_destroy(&runs[r].table);
        }
    }
    free_log(&log);
}
