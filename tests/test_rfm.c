/* The RFM engine end to end on generated transaction logs: every option against a brute force
 * written here (classify each row by the first stage that removes it, sort rows by customer,
 * walk each customer's rows, sort customers by (value, id) to score), bitwise identity for any
 * thread count and block split, the stage accounting, and the bad-input errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/rfm.h"
#include "quantile.h"

#define DAY 86400

/* ---------------------------------------------------------------- generated logs */

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
    kseg_category_column categories[2];
} test_log;

static uint64_t rng_state;
static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* rows lines over `customers` customers from start_time over `days` days, with rows without
 * customer, returns (negative quantities), cancellations, zero and small prices, repeated
 * invoices, several lines per day, and exact duplicate rows. */
static test_log make_log(size_t rows, size_t customers, int64_t start_time, int64_t days,
                         uint64_t seed)
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
    int64_t *ids = malloc(customers * sizeof *ids);
    for (size_t c = 0; c < customers; c++)
        ids[c] = (int64_t)(next_random() % 2000000) - 1000000;
    for (size_t i = 0; i < rows; i++) {
        if (i > 0 && next_random() % 20 == 0) {
            size_t j = next_random() % i; /* an exact duplicate of an earlier row */
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
        /* Customers stick to a country, mostly. */
        log.country[i] = (int32_t)(next_random() % 10 == 0 ? next_random() % 4 : c % 4);
        log.channel[i] = (int32_t)(next_random() % 3);
        log.valid[i] = next_random() % 25 != 0;
        log.customer_id[i] = log.valid[i] ? ids[c] : 0;
        log.time[i] = start_time + (int64_t)(next_random() % (uint64_t)(days * DAY));
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
    free(ids);
    log.categories[0] = (kseg_category_column){"Country", log.country, country_names, 4};
    log.categories[1] = (kseg_category_column){"channel", log.channel, channel_names, 3};
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

/* The block view of rows [begin, begin + rows); has_invoice 0 drops the invoice column. */
static kseg_transactions block_of(const test_log *log, size_t begin, size_t rows, int has_invoice,
                                  kseg_category_column *categories)
{
    for (int c = 0; c < 2; c++) {
        categories[c] = log->categories[c];
        categories[c].codes += begin;
    }
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

/* Runs the engine over the log in blocks of block_rows. When the aggregator asks for the blocks
 * again (KSEG_ERESTART, options->restartable), adds them again from the first, as `kseg rfm`
 * does, and counts that in *restarts (when not NULL). */
static int run_engine_counting(const test_log *log, const kseg_rfm_options *options,
                               size_t block_rows, int has_invoice, kseg_rfm_table *table,
                               kseg_error *error, int *restarts)
{
    kseg_rfm_aggregator *aggregator = NULL;
    int status = kseg_rfm_aggregator_create(&aggregator, options, error);
    int restarted = 0;
    for (size_t begin = 0; !status && begin < log->rows; begin += block_rows) {
        kseg_category_column categories[2];
        size_t rows = log->rows - begin < block_rows ? log->rows - begin : block_rows;
        kseg_transactions block = block_of(log, begin, rows, has_invoice, categories);
        status = kseg_rfm_aggregator_add(aggregator, &block, error);
        if (status == KSEG_ERESTART && restarted < 2) { /* a third pass would be a bug */
            restarted++;
            status = 0;
            begin = 0 - block_rows; /* the loop's step wraps it to 0 */
        }
    }
    if (restarts)
        *restarts = restarted;
    if (!status)
        status = kseg_rfm_aggregator_finish(aggregator, table, error);
    kseg_rfm_aggregator_destroy(aggregator);
    return status;
}

static int run_engine(const test_log *log, const kseg_rfm_options *options, size_t block_rows,
                      int has_invoice, kseg_rfm_table *table, kseg_error *error)
{
    return run_engine_counting(log, options, block_rows, has_invoice, table, error, NULL);
}

/* ---------------------------------------------------------------- the brute force */

static int64_t floor_div(int64_t a, int64_t b)
{
    return (int64_t)floor((double)a / (double)b); /* exact for the magnitudes used here */
}

static int same_row(const test_log *log, size_t i, size_t j)
{
    return log->valid[i] == log->valid[j] && log->customer_id[i] == log->customer_id[j] &&
           log->time[i] == log->time[j] &&
           memcmp(&log->amount[i], &log->amount[j], sizeof(double)) == 0 &&
           memcmp(&log->quantity[i], &log->quantity[j], sizeof(double)) == 0 &&
           memcmp(&log->price[i], &log->price[j], sizeof(double)) == 0 &&
           log->invoice[i] == log->invoice[j] && log->cancelled[i] == log->cancelled[j] &&
           log->country[i] == log->country[j] && log->channel[i] == log->channel[j];
}

/* 0 no customer, 1 dedupe, 2 where, 3 min price, 4 returns (dropped), 5 purchase, 6 netted
 * return. */
static int row_stage(const test_log *log, size_t i, const kseg_rfm_options *options)
{
    if (!log->valid[i])
        return 0;
    if (options->dedupe)
        for (size_t j = 0; j < i; j++)
            if (log->valid[j] && same_row(log, i, j))
                return 1;
    for (size_t f = 0; f < options->n_filters; f++) {
        /* Conditions on one column: any may match; every column must have a match. */
        const char *column = options->filters[f].column;
        int matched = 0;
        for (size_t g = 0; g < options->n_filters; g++) {
            if (strcmp(options->filters[g].column, column) != 0)
                continue;
            const char *value = strcmp(column, "Country") == 0 ? country_names[log->country[i]]
                                                                : channel_names[log->channel[i]];
            matched |= strcmp(value, options->filters[g].value) == 0;
        }
        if (!matched)
            return 2;
    }
    if (!isnan(options->min_price) && log->price[i] < options->min_price)
        return 3;
    int is_return = log->cancelled[i] || log->quantity[i] < 0 || log->amount[i] < 0;
    if (is_return)
        return options->returns == KSEG_RETURNS_NET ? 6 : 4;
    return 5;
}

typedef struct ordered {
    double value;
    int64_t id;
    size_t index;
} ordered;

static int compare_ordered(const void *left, const void *right)
{
    const ordered *a = left, *b = right;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* pandas >= 3's qcut on ranks, per element (see test_quantile.c). */
static int32_t pandas_rank_score(size_t position, size_t n, int32_t bins)
{
    double rank = (double)position + 1.0;
    int32_t score = 1;
    for (int32_t j = 1; j < bins; j++) {
        double q = (double)j * (1.0 / (double)bins);
        if ((double)bins * q != (double)j)
            q = nextafter(q, 1.0);
        volatile double virtual_index = (double)(n - 1) * q;
        double edge;
        if (virtual_index >= (double)(n - 1))
            edge = (double)n;
        else {
            double below = floor(virtual_index);
            volatile double t = virtual_index - below;
            volatile double part = t >= 0.5 ? 1.0 - t : t;
            edge = t >= 0.5 ? (below + 2.0) - part : (below + 1.0) + part;
        }
        score += edge < rank;
    }
    return score;
}

/* Ascending scores of values (ties by id) and the cut points, as pandas and numpy define them. */
static void brute_scores(const double *values, const int64_t *ids, size_t n, int32_t bins,
                         kseg_ties_mode ties, int32_t *scores, double *cuts)
{
    ordered *sorted = malloc(n * sizeof *sorted);
    double *sorted_values = malloc(n * sizeof *sorted_values);
    for (size_t i = 0; i < n; i++)
        sorted[i] = (ordered){values[i], ids[i], i};
    qsort(sorted, n, sizeof *sorted, compare_ordered);
    for (size_t k = 0; k < n; k++)
        sorted_values[k] = sorted[k].value;
    kseg_quantiles_linear_reference(sorted_values, n, bins, cuts);
    for (size_t k = 0; k < n; k++) {
        if (ties == KSEG_TIES_RANK)
            scores[sorted[k].index] = pandas_rank_score(k, n, bins);
        else {
            int32_t score = 1;
            for (int32_t j = 1; j < bins; j++)
                score += cuts[j] < sorted[k].value;
            scores[sorted[k].index] = score;
        }
    }
    free(sorted);
    free(sorted_values);
}

typedef struct id_row {
    int64_t id;
    size_t row;
} id_row;

static int compare_id_rows(const void *left, const void *right)
{
    const id_row *a = left, *b = right;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static int compare_int64(const void *left, const void *right)
{
    int64_t a = *(const int64_t *)left, b = *(const int64_t *)right;
    return (a > b) - (a < b);
}

static const char *const grid[5][5] = {
    /* R=1 */ {"Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
    /* R=2 */ {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
    /* R=3 */ {"About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers",
               "Loyal Customers"},
    /* R=4 */ {"Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers",
               "Loyal Customers"},
    /* R=5 */ {"New Customers", "Potential Loyalists", "Potential Loyalists", "Champions",
               "Champions"}};

/* The expected table, filled like the engine's (segment as a name). */
typedef struct expected_table {
    kseg_rfm_table table;
    const char **segment_names;
} expected_table;

static void brute_force(const test_log *log, const kseg_rfm_options *options, int has_invoice,
                        expected_table *expected)
{
    kseg_rfm_table *table = &expected->table;
    memset(expected, 0, sizeof *expected);
    const size_t rows = log->rows;
    const int32_t bins = options->bins;
    int *stage = malloc(rows * sizeof *stage);
    id_row *sorted = malloc(rows * sizeof *sorted);
    int64_t *keys = malloc(rows * sizeof *keys);
    size_t n_sorted = 0;
    /* The total as the engine documents it: summed in row order within each block of 8192 rows
       (KSEG_BLOCK_ROWS), and the block sums in block order. */
    double block_sum = 0.0;
    for (size_t i = 0; i < rows; i++) {
        block_sum += log->amount[i];
        if ((i + 1) % 8192 == 0 || i + 1 == rows) {
            table->total_amount += block_sum;
            block_sum = 0.0;
        }
    }
    for (size_t i = 0; i < rows; i++) {
        stage[i] = row_stage(log, i, options);
        if (stage[i] != 0)
            sorted[n_sorted++] = (id_row){log->customer_id[i], i};
        else
            table->stages[0].rows_removed++;
        if (stage[i] >= 1 && stage[i] <= 4)
            table->stages[stage[i]].rows_removed++;
    }
    table->total_rows = (int64_t)rows;
    qsort(sorted, n_sorted, sizeof *sorted, compare_id_rows);
    kseg_frequency_mode frequency = options->frequency_explicit ? options->frequency
                                    : has_invoice              ? KSEG_FREQUENCY_INVOICES
                                                               : KSEG_FREQUENCY_LINES;
    table->frequency_mode = frequency;
    size_t capacity = n_sorted + 1, n = 0;
    table->customer_id = malloc(capacity * sizeof(int64_t));
    table->rows = malloc(capacity * sizeof(int64_t));
    table->frequency = malloc(capacity * sizeof(double));
    table->monetary = malloc(capacity * sizeof(double));
    table->recency = malloc(capacity * sizeof(double));
    table->tenure = malloc(capacity * sizeof(double));
    int64_t *first = malloc(capacity * sizeof *first), *last = malloc(capacity * sizeof *last);
    for (size_t begin = 0; begin < n_sorted;) {
        size_t end = begin;
        while (end < n_sorted && sorted[end].id == sorted[begin].id)
            end++;
        int reach = 0;
        int64_t kept = 0, purchases = 0, n_keys = 0, first_time = INT64_MAX,
                last_time = INT64_MIN;
        double amount = 0;
        for (size_t k = begin; k < end; k++) {
            size_t i = sorted[k].row;
            int s = stage[i] > 5 ? 5 : stage[i];
            reach = s > reach ? s : reach;
            if (stage[i] >= 5) {
                kept++;
                amount += log->amount[i];
            }
            if (stage[i] == 5) {
                purchases++;
                first_time = log->time[i] < first_time ? log->time[i] : first_time;
                last_time = log->time[i] > last_time ? log->time[i] : last_time;
                keys[n_keys++] = frequency == KSEG_FREQUENCY_INVOICES ? log->invoice[i]
                                                                       : floor_div(log->time[i], DAY);
            }
        }
        if (reach < 5)
            table->stages[reach].customers_removed++;
        else if (purchases == 0) {
            table->stages[4].customers_removed++;
            table->stages[4].rows_removed += kept;
        } else {
            qsort(keys, (size_t)n_keys, sizeof *keys, compare_int64);
            int64_t distinct = 1;
            for (int64_t k = 1; k < n_keys; k++)
                distinct += keys[k] != keys[k - 1];
            double count = frequency == KSEG_FREQUENCY_LINES ? (double)purchases : (double)distinct;
            table->customer_id[n] = sorted[begin].id;
            table->rows[n] = kept;
            table->frequency[n] = count;
            table->monetary[n] = options->monetary == KSEG_MONETARY_MEAN ? amount / count : amount;
            first[n] = first_time;
            last[n] = last_time;
            n++;
        }
        begin = end;
    }
    table->n_customers = n;
    table->bins = bins;
    table->last_time = INT64_MIN;
    for (size_t c = 0; c < n; c++)
        table->last_time = last[c] > table->last_time ? last[c] : table->last_time;
    table->reference_time = options->reference_time == INT64_MIN
                                ? (floor_div(table->last_time, DAY) + 1) * DAY
                                : options->reference_time;
    table->reference_before_last = table->reference_time < table->last_time;
    for (size_t c = 0; c < n; c++) {
        table->recency[c] = (double)floor_div(table->reference_time - last[c], DAY);
        table->tenure[c] = (double)floor_div(table->reference_time - first[c], DAY);
    }
    if (n) {
        table->scores = malloc(3 * n * sizeof(int32_t));
        table->cuts = malloc(3 * ((size_t)bins + 1) * sizeof(double));
        expected->segment_names = malloc(n * sizeof(char *));
        int32_t *ascending = malloc(n * sizeof *ascending);
        const double *features[3] = {table->recency, table->frequency, table->monetary};
        for (int f = 0; f < 3; f++) {
            brute_scores(features[f], table->customer_id, n, bins, options->ties, ascending,
                         table->cuts + f * (bins + 1));
            for (size_t c = 0; c < n; c++) {
                /* Fewer days is better: recency's ascending score is turned around. */
                int best_high_score = f == 0 ? bins + 1 - ascending[c] : ascending[c];
                table->scores[3 * c + (size_t)f] =
                    options->best == KSEG_BEST_HIGH ? best_high_score : bins + 1 - best_high_score;
            }
        }
        for (size_t c = 0; c < n; c++) {
            int r = table->scores[3 * c], f = table->scores[3 * c + 1];
            if (options->best == KSEG_BEST_LOW) {
                r = bins + 1 - r;
                f = bins + 1 - f;
            }
            if (options->map)
                expected->segment_names[c] =
                    options->map->names[options->map->cell_segment[(r - 1) * bins + (f - 1)]];
            else
                expected->segment_names[c] =
                    grid[(5 * r + bins - 1) / bins - 1][(5 * f + bins - 1) / bins - 1];
        }
        free(ascending);
    }
    free(stage);
    free(sorted);
    free(keys);
    free(first);
    free(last);
}

static void free_expected(expected_table *expected)
{
    kseg_rfm_table_destroy(&expected->table);
    free(expected->segment_names);
}

static void assert_arrays(const void *a, const void *b, size_t bytes, const char *what,
                          const char *column)
{
    cr_assert_eq(memcmp(a, b, bytes), 0, "%s: column %s differs", what, column);
}

static void assert_table(const kseg_rfm_table *got, const expected_table *expected,
                         const char *what)
{
    const kseg_rfm_table *want = &expected->table;
    size_t n = want->n_customers;
    cr_assert_eq(got->n_customers, n, "%s: %zu customers, expected %zu", what, got->n_customers,
                 n);
    cr_assert_eq(got->total_rows, want->total_rows, "%s", what);
    cr_assert_eq(got->total_amount, want->total_amount, "%s: total amount", what);
    cr_assert_eq(got->frequency_mode, want->frequency_mode, "%s", what);
    cr_assert_eq(got->n_stages, 5, "%s", what);
    for (int s = 0; s < 5; s++) {
        cr_assert_eq(got->stages[s].rows_removed, want->stages[s].rows_removed,
                     "%s: stage %s rows %lld, expected %lld", what, got->stages[s].name,
                     (long long)got->stages[s].rows_removed,
                     (long long)want->stages[s].rows_removed);
        cr_assert_eq(got->stages[s].customers_removed, want->stages[s].customers_removed,
                     "%s: stage %s customers %lld, expected %lld", what, got->stages[s].name,
                     (long long)got->stages[s].customers_removed,
                     (long long)want->stages[s].customers_removed);
    }
    cr_assert_eq(got->last_time, want->last_time, "%s", what);
    cr_assert_eq(got->reference_time, want->reference_time, "%s", what);
    cr_assert_eq(got->reference_before_last, want->reference_before_last, "%s", what);
    assert_arrays(got->customer_id, want->customer_id, n * sizeof(int64_t), what, "customer_id");
    assert_arrays(got->recency, want->recency, n * sizeof(double), what, "recency");
    assert_arrays(got->tenure, want->tenure, n * sizeof(double), what, "tenure");
    assert_arrays(got->frequency, want->frequency, n * sizeof(double), what, "frequency");
    assert_arrays(got->monetary, want->monetary, n * sizeof(double), what, "monetary");
    assert_arrays(got->rows, want->rows, n * sizeof(int64_t), what, "rows");
    assert_arrays(got->cuts, want->cuts, 3 * ((size_t)want->bins + 1) * sizeof(double), what,
                  "cuts");
    for (size_t c = 0; c < n; c++)
        for (int f = 0; f < 3; f++)
            cr_assert_eq(got->scores[3 * c + f], want->scores[3 * c + f],
                         "%s: customer %lld score %d: %d, expected %d", what,
                         (long long)want->customer_id[c], f, got->scores[3 * c + f],
                         want->scores[3 * c + f]);
    for (size_t c = 0; c < n; c++)
        cr_assert_str_eq(got->map.names[got->segment[c]], expected->segment_names[c],
                         "%s: customer %lld segment", what, (long long)want->customer_id[c]);
    /* Every row is either kept by a customer or removed by exactly one stage. */
    int64_t accounted = 0;
    for (size_t c = 0; c < n; c++)
        accounted += got->rows[c];
    for (int s = 0; s < 5; s++)
        accounted += got->stages[s].rows_removed;
    cr_assert_eq(accounted, got->total_rows, "%s: stage accounting", what);
}

static void check_options(const test_log *log, const kseg_rfm_options *options, int has_invoice,
                          const char *what)
{
    expected_table expected;
    brute_force(log, options, has_invoice, &expected);
    cr_assert_gt(expected.table.n_customers, 10, "%s: the case keeps customers", what);
    size_t blocks[] = {log->rows, 777, 64};
    for (size_t b = 0; b < 3; b++) {
        kseg_rfm_table table;
        kseg_rfm_table_init(&table);
        kseg_error error = {0};
        cr_assert_eq(run_engine(log, options, blocks[b], has_invoice, &table, &error), 0,
                     "%s: %s", what, error.message);
        char label[160];
        snprintf(label, sizeof label, "%s (blocks of %zu)", what, blocks[b]);
        assert_table(&table, &expected, label);
        kseg_rfm_table_destroy(&table);
    }
    free_expected(&expected);
}

/* ---------------------------------------------------------------- option sets */

static const int64_t start_2023 = 1672531200; /* 2023-01-01T00:00:00Z */

Test(rfm, defaults_match_brute_force)
{
    test_log log = make_log(4000, 150, start_2023, 400, 1);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.n_threads = 3;
    check_options(&log, &options, 1, "defaults");
    free_log(&log);
}

Test(rfm, days_net_value_where_match_brute_force)
{
    test_log log = make_log(4000, 150, start_2023, 400, 2);
    kseg_rfm_filter filters[] = {{"Country", "United Kingdom"}};
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency = KSEG_FREQUENCY_DAYS;
    options.frequency_explicit = 1;
    options.returns = KSEG_RETURNS_NET;
    options.ties = KSEG_TIES_VALUE;
    options.filters = filters;
    options.n_filters = 1;
    options.n_threads = 2;
    check_options(&log, &options, 1, "days/net/value/where");
    free_log(&log);
}

Test(rfm, lines_mean_best_low_dedupe_min_price_match_brute_force)
{
    test_log log = make_log(4000, 150, start_2023, 400, 3);
    for (int32_t bins = 2; bins <= 10; bins++) {
        kseg_rfm_options options;
        kseg_rfm_options_defaults(&options);
        options.frequency = KSEG_FREQUENCY_LINES;
        options.frequency_explicit = 1;
        options.monetary = KSEG_MONETARY_MEAN;
        options.best = KSEG_BEST_LOW;
        options.dedupe = 1;
        options.min_price = 1.0;
        options.bins = bins;
        options.ties = bins % 2 ? KSEG_TIES_VALUE : KSEG_TIES_RANK;
        options.n_threads = 4;
        char what[64];
        snprintf(what, sizeof what, "lines/mean/low/dedupe/min price, bins %d", bins);
        check_options(&log, &options, 1, what);
    }
    free_log(&log);
}

Test(rfm, where_or_and_given_reference_and_net_dedupe_match_brute_force)
{
    test_log log = make_log(5000, 200, start_2023, 400, 4);
    kseg_rfm_filter filters[] = {
        {"Country", "France"}, {"channel", "web"}, {"Country", "Germany"}, {"channel", "store"}};
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.filters = filters;
    options.n_filters = 4;
    options.dedupe = 1;
    options.returns = KSEG_RETURNS_NET;
    options.reference_time = start_2023 + 500 * DAY + 3600;
    options.bins = 10;
    options.n_threads = 2;
    check_options(&log, &options, 1, "where OR/AND, reference date, net, dedupe");
    free_log(&log);
}

Test(rfm, no_invoice_column_defaults_to_lines_and_days_work)
{
    test_log log = make_log(3000, 120, start_2023, 400, 5);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    check_options(&log, &options, 0, "no invoices");
    options.frequency = KSEG_FREQUENCY_DAYS;
    options.frequency_explicit = 1;
    check_options(&log, &options, 0, "no invoices, days");
    free_log(&log);
}

Test(rfm, times_before_1970_use_floor_days)
{
    /* Around the epoch, truncating division would put day -0.5 on day 0. */
    test_log log = make_log(3000, 120, -200 * DAY - 1234, 300, 6);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency = KSEG_FREQUENCY_DAYS;
    options.frequency_explicit = 1;
    check_options(&log, &options, 1, "negative times");
    free_log(&log);
}

Test(rfm, custom_map_is_used)
{
    test_log log = make_log(3000, 120, start_2023, 400, 7);
    kseg_rfm_map map;
    kseg_error error = {0};
    /* Best and Good share R=3 F=3: the parser refuses the map. */
    cr_assert_eq(kseg_rfm_map_parse(&map, "Best | 3 | 3\nGood | 2-3 | *\nRest | 1 | *\n", 3,
                                    "test map", &error),
                 KSEG_EINVAL);
    kseg_error_clear(&error);
    cr_assert_eq(kseg_rfm_map_parse(&map,
                                    "Best | 3 | 3\nGood | 2 | *\nGood | 3 | 1-2\nGood | 1 | 3\n"
                                    "Rest | 1 | 1-2\n",
                                    3, "test map", &error),
                 0, "%s", error.message);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.bins = 3;
    options.map = &map;
    check_options(&log, &options, 1, "custom map");
    options.bins = 4;
    kseg_rfm_aggregator *aggregator = NULL;
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, &options, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "map is for 3 bins"), "%s", error.message);
    kseg_rfm_map_destroy(&map);
    free_log(&log);
}

/* ---------------------------------------------------------------- determinism */

static void assert_bitwise_equal(const kseg_rfm_table *a, const kseg_rfm_table *b,
                                 const char *what)
{
    size_t n = a->n_customers;
    cr_assert_eq(b->n_customers, n, "%s", what);
    assert_arrays(a->customer_id, b->customer_id, n * sizeof(int64_t), what, "customer_id");
    assert_arrays(a->recency, b->recency, n * sizeof(double), what, "recency");
    assert_arrays(a->frequency, b->frequency, n * sizeof(double), what, "frequency");
    assert_arrays(a->monetary, b->monetary, n * sizeof(double), what, "monetary");
    assert_arrays(a->tenure, b->tenure, n * sizeof(double), what, "tenure");
    assert_arrays(a->rows, b->rows, n * sizeof(int64_t), what, "rows");
    assert_arrays(a->scores, b->scores, 3 * n * sizeof(int32_t), what, "scores");
    assert_arrays(a->segment, b->segment, n * sizeof(int32_t), what, "segment");
    assert_arrays(a->cuts, b->cuts, 3 * ((size_t)a->bins + 1) * sizeof(double), what, "cuts");
    cr_assert_eq(memcmp(a->stages, b->stages, sizeof a->stages), 0, "%s: stages", what);
    cr_assert_eq(memcmp(&a->total_amount, &b->total_amount, sizeof(double)), 0, "%s", what);
}

Test(rfm, results_are_bitwise_identical_for_1_2_4_threads)
{
    /* More rows than one internal chunk, many customers, amounts with cents. */
    test_log log = make_log(600000, 60000, start_2023, 700, 8);
    for (int variant = 0; variant < 2; variant++) {
        kseg_rfm_options options;
        kseg_rfm_options_defaults(&options);
        if (variant) {
            options.frequency = KSEG_FREQUENCY_DAYS;
            options.frequency_explicit = 1;
            options.returns = KSEG_RETURNS_NET;
            options.monetary = KSEG_MONETARY_MEAN;
            options.ties = KSEG_TIES_VALUE;
            options.dedupe = 1;
        }
        kseg_rfm_table tables[3];
        int threads[3] = {1, 2, 4};
        size_t blocks[3] = {log.rows, 100000, 300001};
        for (int t = 0; t < 3; t++) {
            kseg_error error = {0};
            kseg_rfm_table_init(&tables[t]);
            options.n_threads = threads[t];
            cr_assert_eq(run_engine(&log, &options, blocks[t], 1, &tables[t], &error), 0, "%s",
                         error.message);
        }
        assert_bitwise_equal(&tables[0], &tables[1], variant ? "net variant 1 vs 2 threads"
                                                             : "defaults 1 vs 2 threads");
        assert_bitwise_equal(&tables[0], &tables[2], variant ? "net variant 1 vs 4 threads"
                                                             : "defaults 1 vs 4 threads");
        for (int t = 0; t < 3; t++)
            kseg_rfm_table_destroy(&tables[t]);
    }
    free_log(&log);
}

/* make_log's rows with customer ids packed into [20000, 20000 + span) (the engine's table indexed
 * by id) and, with in_time_order, sorted by time with invoice numbers that grow with the hour, so
 * that every customer's invoices and days arrive in increasing order. */
static test_log make_dense_log(size_t rows, size_t customers, uint64_t seed, int64_t span,
                               int in_time_order)
{
    test_log log = make_log(rows, customers, start_2023, 300, seed);
    for (size_t i = 0; i < rows; i++)
        if (log.valid[i])
            log.customer_id[i] = 20000 + ((log.customer_id[i] % span) + span) % span;
    if (!in_time_order)
        return log;
    /* A counting sort by hour, stable, keeps duplicate rows duplicates. */
    size_t hours = 300 * 24;
    size_t *starts = calloc(hours + 1, sizeof *starts);
    size_t *order = malloc(rows * sizeof *order);
    for (size_t i = 0; i < rows; i++)
        starts[(size_t)(log.time[i] - start_2023) / 3600 + 1]++;
    for (size_t h = 0; h < hours; h++)
        starts[h + 1] += starts[h];
    for (size_t i = 0; i < rows; i++)
        order[starts[(size_t)(log.time[i] - start_2023) / 3600]++] = i;
    test_log sorted = make_log(rows, customers, start_2023, 300, seed); /* same sizes */
    for (size_t k = 0; k < rows; k++) {
        size_t i = order[k];
        sorted.customer_id[k] = log.customer_id[i];
        sorted.valid[k] = log.valid[i];
        sorted.time[k] = log.time[i];
        sorted.amount[k] = log.amount[i];
        sorted.quantity[k] = log.quantity[i];
        sorted.price[k] = log.price[i];
        sorted.cancelled[k] = log.cancelled[i];
        sorted.country[k] = log.country[i];
        sorted.channel[k] = log.channel[i];
        sorted.invoice[k] = (log.time[i] - start_2023) / 3600 * 100000 + log.customer_id[i] % 1000;
    }
    free(starts);
    free(order);
    free_log(&log);
    return sorted;
}

Test(rfm, restartable_aggregation_reads_twice_only_when_keys_are_out_of_order)
{
    /* With restartable on, an aggregator over ids in a dense range assumes each customer's
       invoices and days arrive in increasing order and keeps no record of them; a log in time
       order needs one pass, a shuffled one asks for a second (KSEG_ERESTART) exactly once, and
       both give the brute force's table, bit for bit the table without restartable. */
    for (int in_time_order = 1; in_time_order >= 0; in_time_order--) {
        test_log log = make_dense_log(30000, 2000, 77, 2500, in_time_order);
        for (int variant = 0; variant < 4; variant++) {
            kseg_rfm_options options;
            kseg_rfm_options_defaults(&options);
            options.frequency_explicit = variant > 0;
            options.frequency = variant == 1   ? KSEG_FREQUENCY_DAYS
                                : variant == 2 ? KSEG_FREQUENCY_LINES
                                               : KSEG_FREQUENCY_INVOICES;
            options.returns = variant == 1 ? KSEG_RETURNS_NET : KSEG_RETURNS_DROP;
            options.dedupe = variant == 3;
            const char *names[] = {"invoices", "days, net", "lines", "dedupe"};
            /* Lines count no keys and dedupe never uses the dense table: never a restart. */
            const int expected_restarts = !in_time_order && variant <= 1;
            expected_table expected;
            brute_force(&log, &options, 1, &expected);
            for (int threads = 1; threads <= 3; threads += 2)
                for (size_t block_rows = 777; block_rows <= 30000; block_rows += 30000 - 777) {
                    char what[160];
                    snprintf(what, sizeof what, "%s, %s, %d threads, blocks of %zu",
                             in_time_order ? "time order" : "shuffled", names[variant], threads,
                             block_rows);
                    options.n_threads = threads;
                    kseg_rfm_table single, restartable;
                    kseg_rfm_table_init(&single);
                    kseg_rfm_table_init(&restartable);
                    kseg_error error = {0};
                    int restarts = -1;
                    options.restartable = 0;
                    cr_assert_eq(run_engine_counting(&log, &options, block_rows, 1, &single,
                                                     &error, &restarts),
                                 0, "%s: %s", what, error.message);
                    cr_assert_eq(restarts, 0, "%s: a restart without restartable", what);
                    options.restartable = 1;
                    cr_assert_eq(run_engine_counting(&log, &options, block_rows, 1, &restartable,
                                                     &error, &restarts),
                                 0, "%s: %s", what, error.message);
                    cr_assert_eq(restarts, expected_restarts, "%s: %d restarts", what, restarts);
                    assert_table(&restartable, &expected, what);
                    assert_bitwise_equal(&single, &restartable, what);
                    kseg_rfm_table_destroy(&single);
                    kseg_rfm_table_destroy(&restartable);
                }
            free_expected(&expected);
        }
        free_log(&log);
    }
}

/* ---------------------------------------------------------------- bad input */

Test(rfm, everything_filtered_out_is_an_error_with_the_stages)
{
    test_log log = make_log(2000, 100, start_2023, 400, 9);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.min_price = 1e9;
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    kseg_error error = {0};
    cr_assert_eq(run_engine(&log, &options, 500, 1, &table, &error), KSEG_EEMPTY);
    cr_assert_not_null(strstr(error.message, "no customer left after filtering: of 2000 rows"),
                       "%s", error.message);
    cr_assert_not_null(strstr(error.message, "below the minimum price"), "%s", error.message);
    cr_assert_eq(table.n_customers, 0);
    cr_assert_null(table.customer_id);
    cr_assert_gt(table.stages[3].customers_removed, 0, "the statistics stay for reports");
    kseg_rfm_table_destroy(&table);

    /* Only returns, netted: no customer ever purchased. */
    for (size_t i = 0; i < log.rows; i++) {
        log.quantity[i] = -fabs(log.quantity[i]) - 1;
        log.amount[i] = log.quantity[i] * log.price[i];
    }
    kseg_rfm_options_defaults(&options);
    options.returns = KSEG_RETURNS_NET;
    cr_assert_eq(run_engine(&log, &options, 500, 1, &table, &error), KSEG_EEMPTY);
    cr_assert_not_null(strstr(error.message, "needs at least one purchase"), "%s", error.message);
    kseg_rfm_table_destroy(&table);

    /* No rows at all. */
    kseg_rfm_aggregator *aggregator = NULL;
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, NULL, &error), 0);
    cr_assert_eq(kseg_rfm_aggregator_finish(aggregator, &table, &error), KSEG_EEMPTY);
    cr_assert_str_eq(error.message, "no transactions to aggregate");
    kseg_rfm_aggregator_destroy(aggregator);
    kseg_rfm_table_destroy(&table);
    free_log(&log);
}

Test(rfm, reference_date_before_the_last_purchase_is_flagged)
{
    test_log log = make_log(2000, 100, start_2023, 400, 10);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.reference_time = start_2023 + 200 * DAY;
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    kseg_error error = {0};
    cr_assert_eq(run_engine(&log, &options, 2000, 1, &table, &error), 0, "%s", error.message);
    cr_assert_eq(table.reference_before_last, 1);
    cr_assert_gt(table.last_time, options.reference_time);
    int negative = 0;
    for (size_t c = 0; c < table.n_customers; c++)
        negative |= table.recency[c] < 0;
    cr_assert(negative, "purchases after the reference date give negative recency");
    kseg_rfm_table_destroy(&table);
    /* Exactly at the last purchase is fine. */
    options.reference_time = INT64_MIN;
    cr_assert_eq(run_engine(&log, &options, 2000, 1, &table, &error), 0);
    options.reference_time = table.last_time;
    kseg_rfm_table_destroy(&table);
    cr_assert_eq(run_engine(&log, &options, 2000, 1, &table, &error), 0);
    cr_assert_eq(table.reference_before_last, 0);
    kseg_rfm_table_destroy(&table);
    free_log(&log);
}

Test(rfm, unknown_where_column_or_value_names_the_valid_ones)
{
    test_log log = make_log(500, 50, start_2023, 100, 11);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    kseg_rfm_filter bad_column[] = {{"Contry", "France"}};
    options.filters = bad_column;
    options.n_filters = 1;
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    kseg_error error = {0};
    cr_assert_eq(run_engine(&log, &options, 500, 1, &table, &error), KSEG_ENOENT);
    cr_assert_str_eq(error.message,
                     "where Contry=...: no category column 'Contry' (category columns: Country, "
                     "channel)");
    kseg_rfm_filter bad_value[] = {{"Country", "France"}, {"Country", "Frnace"}};
    options.filters = bad_value;
    options.n_filters = 2;
    cr_assert_eq(run_engine(&log, &options, 500, 1, &table, &error), KSEG_ENOENT);
    cr_assert_str_eq(error.message,
                     "where Country=Frnace: column 'Country' has no value 'Frnace' (values: "
                     "United Kingdom, France, Germany, EIRE)");
    kseg_rfm_table_destroy(&table);
    free_log(&log);
}

Test(rfm, invoices_without_invoice_column_and_bad_amounts_are_errors)
{
    test_log log = make_log(500, 50, start_2023, 100, 12);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.frequency_explicit = 1; /* invoices, asked for */
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    kseg_error error = {0};
    cr_assert_eq(run_engine(&log, &options, 500, 0, &table, &error), KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "needs the invoice column"), "%s", error.message);
    kseg_rfm_options_defaults(&options);
    log.amount[321] = NAN;
    cr_assert_eq(run_engine(&log, &options, 100, 1, &table, &error), KSEG_ENONFINITE);
    cr_assert_str_eq(error.message, "transaction row 321: amount is nan");
    kseg_rfm_table_destroy(&table);
    free_log(&log);
}

Test(rfm, times_outside_years_0_to_9999_are_errors)
{
    /* fuzz_csv_import: a time of INT64_MAX (imported as Unix seconds) overflowed the reference
       day and the recency subtraction; such a time, and such a reference, are now refused. */
    test_log log = make_log(200, 20, start_2023, 100, 5);
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    kseg_error error = {0};
    log.time[77] = INT64_MAX;
    cr_assert_eq(run_engine(&log, &options, 50, 1, &table, &error), KSEG_EINVAL);
    cr_assert_str_eq(error.message, "transaction row 77: time 9223372036854775807 is outside "
                                    "years 0 to 9999 (seconds since 1970-01-01 UTC expected)");
    log.time[77] = KSEG_TIME_MIN - 1;
    cr_assert_eq(run_engine(&log, &options, 200, 1, &table, &error), KSEG_EINVAL);
    log.time[77] = KSEG_TIME_MIN;
    cr_assert_eq(run_engine(&log, &options, 200, 1, &table, &error), 0, "%s", error.message);
    kseg_rfm_aggregator *aggregator = NULL;
    options.reference_time = KSEG_TIME_MAX + 1;
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, &options, &error), KSEG_EINVAL);
    cr_assert_str_eq(error.message, "the reference time 253402300800 is outside years 0 to 9999");
    cr_assert_null(aggregator);
    kseg_rfm_table_destroy(&table);
    free_log(&log);
}

Test(rfm, options_are_checked)
{
    kseg_rfm_options options;
    kseg_rfm_aggregator *aggregator = NULL;
    kseg_error error = {0};
    kseg_rfm_options_defaults(&options);
    cr_assert_eq(options.bins, 5);
    cr_assert_eq(options.reference_time, INT64_MIN);
    cr_assert(isnan(options.min_price));
    options.bins = 11; /* the built-in map stops at 10 */
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, &options, &error), KSEG_EINVAL);
    cr_assert_null(aggregator);
    options.bins = 1;
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, &options, &error), KSEG_EINVAL);
    kseg_rfm_options_defaults(&options);
    kseg_rfm_filter empty[] = {{"", "x"}};
    options.filters = empty;
    options.n_filters = 1;
    cr_assert_eq(kseg_rfm_aggregator_create(&aggregator, &options, &error), KSEG_EINVAL);
}
