/* The RFM stage: classifies each block of transactions through the filtering stages, aggregates
 * per customer with the partitioned kernel (kernels/aggregate.h), and at the end computes recency,
 * frequency, monetary value and tenure, quantile scores (kernels/quantile.h) and named segments. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "blocks.h"
#include "kseg/rfm.h"
#include "quantile.h"
#include "huge_pages.h"
#include "rfm_internal.h"

#define SECONDS_PER_DAY ((int64_t)86400)

/* Rows classified and aggregated at a time: a caller's block is processed in chunks of this many
 * rows, so the per-row buffers (two 56-byte records per row) stay bounded whatever the block
 * size. */
#define CHUNK_ROWS ((size_t)1 << 18)

/* Rows classified at a time on the column path (no dedupe): one stage byte per row (and a day key
 * with frequency by days) next to the caller's columns, which the kernel reads in place. */
#define COLUMN_CHUNK_ROWS ((size_t)1 << 20)

/* Scoring works on 32-bit positions. */
#define MAX_SCORED ((size_t)UINT32_MAX)

static const char *const stage_names[KSEG_RFM_MAX_STAGES] = {"no customer id", "dedupe", "where",
                                                             "min price", "returns"};

/* ---------------------------------------------------------------- options and tables */

void kseg_rfm_options_defaults(kseg_rfm_options *options)
{
    memset(options, 0, sizeof *options);
    options->reference_time = INT64_MIN;
    options->frequency = KSEG_FREQUENCY_INVOICES;
    options->frequency_explicit = 0;
    options->monetary = KSEG_MONETARY_SUM;
    options->returns = KSEG_RETURNS_DROP;
    options->min_price = NAN;
    options->dedupe = 0;
    options->filters = NULL;
    options->n_filters = 0;
    options->bins = 5;
    options->ties = KSEG_TIES_RANK;
    options->best = KSEG_BEST_HIGH;
    options->map = NULL;
    options->n_threads = 0;
    options->restartable = 0;
}

void kseg_rfm_table_init(kseg_rfm_table *table)
{
    memset(table, 0, sizeof *table);
}

void kseg_rfm_table_destroy(kseg_rfm_table *table)
{
    if (!table)
        return;
    free(table->customer_id);
    free(table->recency);
    free(table->frequency);
    free(table->monetary);
    free(table->tenure);
    free(table->rows);
    free(table->scores);
    free(table->segment);
    free(table->cuts);
    kseg_rfm_map_destroy(&table->map);
    memset(table, 0, sizeof *table);
}

static int copy_map(kseg_rfm_map *copy, const kseg_rfm_map *map)
{
    size_t cells = (size_t)map->bins * (size_t)map->bins;
    memset(copy, 0, sizeof *copy);
    copy->names = calloc(map->n_segments ? map->n_segments : 1, sizeof *copy->names);
    copy->cell_segment = malloc(cells * sizeof *copy->cell_segment);
    if (!copy->names || !copy->cell_segment) {
        kseg_rfm_map_destroy(copy);
        return -1;
    }
    copy->bins = map->bins;
    copy->n_segments = map->n_segments;
    for (size_t s = 0; s < map->n_segments; s++)
        if (!(copy->names[s] = strdup(map->names[s]))) {
            kseg_rfm_map_destroy(copy);
            return -1;
        }
    memcpy(copy->cell_segment, map->cell_segment, cells * sizeof *copy->cell_segment);
    return 0;
}

/* floor(a / b) for b > 0, also for negative a (times before 1970). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t quotient = a / b;
    return (a % b != 0 && a < 0) ? quotient - 1 : quotient;
}

/* ---------------------------------------------------------------- scoring */

/* Scratch for scoring n values: reused by the three features of a table. */
typedef struct score_scratch {
    uint64_t *keys, *scratch_keys;
    uint32_t *order, *scratch_order;
    size_t *histograms;
    size_t *bucket_counts; /* [KSEG_PARTIAL_SORT_BUCKETS + 1] */
    size_t *positions;     /* [KSEG_SCORING_POSITIONS_MAX] */
} score_scratch;

static void score_scratch_free(score_scratch *scratch)
{
    free(scratch->keys);
    free(scratch->scratch_keys);
    free(scratch->order);
    free(scratch->scratch_order);
    free(scratch->histograms);
    free(scratch->bucket_counts);
    free(scratch->positions);
    memset(scratch, 0, sizeof *scratch);
}

/* The partial sort's bucket counts and positions, for a scratch whose other arrays exist. */
static int score_scratch_alloc_buckets(score_scratch *scratch)
{
    scratch->bucket_counts =
        malloc((KSEG_PARTIAL_SORT_BUCKETS + 1) * sizeof *scratch->bucket_counts);
    scratch->positions = malloc(KSEG_SCORING_POSITIONS_MAX * sizeof *scratch->positions);
    return scratch->bucket_counts && scratch->positions ? 0 : -1;
}

static int score_scratch_alloc(score_scratch *scratch, size_t n, int threads)
{
    memset(scratch, 0, sizeof *scratch);
    scratch->keys = kseg_malloc_huge_pages(n * sizeof *scratch->keys);
    scratch->scratch_keys = kseg_malloc_huge_pages(n * sizeof *scratch->scratch_keys);
    scratch->order = kseg_malloc_huge_pages(n * sizeof *scratch->order);
    scratch->scratch_order = kseg_malloc_huge_pages(n * sizeof *scratch->scratch_order);
    scratch->histograms = malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *scratch->histograms);
    if (!scratch->keys || !scratch->scratch_keys || !scratch->order || !scratch->scratch_order ||
        !scratch->histograms || score_scratch_alloc_buckets(scratch)) {
        score_scratch_free(scratch);
        return -1;
    }
    return 0;
}

static int score_feature(const double *values, const int64_t *customer_id, size_t n,
                         int32_t bins, kseg_ties_mode ties, int32_t n_threads, int32_t *scores,
                         double *cuts, score_scratch *scratch, kseg_error *error);

int kseg_rfm_score_feature(const double *values, const int64_t *customer_id, size_t n,
                           int32_t bins, kseg_ties_mode ties, int32_t n_threads, int32_t *scores,
                           double *cuts, kseg_error *error)
{
    return score_feature(values, customer_id, n, bins, ties, n_threads, scores, cuts, NULL,
                         error);
}

/* kseg_rfm_score_feature with the caller's scratch (NULL: allocated here); scratch must be
 * allocated for n values and at least n_threads threads (or omp_get_max_threads() when
 * n_threads is 0). */
static int score_feature(const double *values, const int64_t *customer_id, size_t n,
                         int32_t bins, kseg_ties_mode ties, int32_t n_threads, int32_t *scores,
                         double *cuts, score_scratch *given, kseg_error *error)
{
    if (!values || !scores || !cuts)
        return kseg_error_set(error, KSEG_EINVAL, "score: values, scores and cuts are required");
    if (n == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "score: no values to score");
    if (n > MAX_SCORED)
        return kseg_error_set(error, KSEG_ETOOBIG, "score: %zu values exceed the limit of %zu", n,
                              MAX_SCORED);
    if (bins < 1 || bins > 1000)
        return kseg_error_set(error, KSEG_EINVAL, "score: bins must be in 1..1000, not %d",
                              (int)bins);
    if (ties != KSEG_TIES_RANK && ties != KSEG_TIES_VALUE)
        return kseg_error_set(error, KSEG_EINVAL, "score: unknown ties mode %d", (int)ties);
    int threads = n_threads > 0 ? n_threads : omp_get_max_threads();

    size_t first_bad = SIZE_MAX;
    int ids_increasing = 1;
#pragma omp parallel for schedule(static) num_threads(threads) \
    reduction(min : first_bad) reduction(&& : ids_increasing)
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(values[i]) && i < first_bad)
            first_bad = i;
        if (customer_id && i > 0 && customer_id[i - 1] >= customer_id[i])
            ids_increasing = 0;
    }
    if (first_bad != SIZE_MAX)
        return kseg_error_set(error, KSEG_ENONFINITE, "score: value %zu is %g", first_bad,
                              values[first_bad]);

    int status = 0;
    score_scratch own = {0};
    if (!given && score_scratch_alloc(&own, n, threads))
        return kseg_error_set(error, KSEG_ENOMEM, "score: out of memory for %zu values", n);
    score_scratch *scratch = given ? given : &own;
    uint64_t *keys = scratch->keys;
    uint64_t *scratch_keys = scratch->scratch_keys;
    uint32_t *order = scratch->order;
    uint32_t *scratch_order = scratch->scratch_order;
    size_t *histograms = scratch->histograms;
    /* Ties are broken by customer id: with the ids in increasing order the position already is
       that order; otherwise sort by id first, and the stable sort by value keeps it. */
    if (customer_id && !ids_increasing) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; i++) {
            keys[i] = kseg_int64_order_key(customer_id[i]);
            order[i] = (uint32_t)i;
        }
        kseg_radix_sort_pairs(keys, order, n, scratch_keys, scratch_order, histograms, threads);
    } else {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; i++)
            order[i] = (uint32_t)i;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t k = 0; k < n; k++)
        keys[k] = kseg_double_order_key(values[order[k]]);
    /* Only the positions the cut points and the rank scores read need the exact order; the
       other values need only be in the right bucket (kseg_scoring_positions). */
    size_t n_positions = kseg_scoring_positions(n, bins, ties == KSEG_TIES_RANK,
                                                scratch->positions);
    kseg_partial_sort_pairs(keys, order, n, scratch->positions, n_positions, scratch_keys,
                            scratch_order, scratch->bucket_counts, histograms);

    kseg_quantiles_linear(values, order, n, bins, cuts);
    if (ties == KSEG_TIES_RANK)
        kseg_scores_from_ranks(order, n, bins, scores, threads);
    else
        kseg_scores_from_cuts(values, n, cuts, bins, scores, threads);
    score_scratch_free(&own);
    return status;
}

/* ---------------------------------------------------------------- the aggregator */

/* One category column named by --where conditions, resolved against a block's dictionary. */
typedef struct where_column {
    const char *name;
    size_t category;        /* index into the block's categories */
    unsigned char *allowed; /* [allowed_capacity]: code allowed by some condition on the column */
    size_t allowed_capacity;
} where_column;

struct kseg_rfm_aggregator {
    kseg_rfm_options options; /* the caller's, with filters and map replaced by the copies below */
    kseg_rfm_filter *filters; /* owned copies of the conditions */
    kseg_rfm_map map;
    int n_threads;

    /* Fixed by the first block: later blocks must have the same columns. */
    int columns_known;
    int has_invoice;
    kseg_frequency_mode frequency;
    where_column *where;
    size_t n_where;

    kseg_agg_state state;
    uint8_t *stages;     /* [COLUMN_CHUNK_ROWS]: the column path's classification */
    int64_t *day_keys;   /* [COLUMN_CHUNK_ROWS]: frequency by days, the column path */
    kseg_agg_record *records;
    kseg_agg_record *partitioned;
    size_t *histograms;
    size_t *offsets;

    int64_t rows_read;
    int64_t rows_without_customer;
    /* The total amount is summed in row order within each block of KSEG_BLOCK_ROWS rows (counted
       from the first row), and the block sums in block order: the same bits when the rows are
       split among ranks at block boundaries (engine/rfm_distributed.c). */
    double amount_blocks; /* the completed blocks */
    double amount_block;  /* the block in progress */
    double *piece_sums;   /* [piece_capacity]: one add's sums per block piece */
    size_t piece_capacity;
    int failed; /* an add failed: the sums are incomplete, so finish refuses */
};

int kseg_rfm_aggregator_create(kseg_rfm_aggregator **aggregator_out,
                               const kseg_rfm_options *options, kseg_error *error)
{
    *aggregator_out = NULL;
    kseg_rfm_options defaults;
    if (!options) {
        kseg_rfm_options_defaults(&defaults);
        options = &defaults;
    }
    if (options->bins < 2 || options->bins > 100)
        return kseg_error_set(error, KSEG_EINVAL, "RFM bins must be in 2..100, not %d",
                              (int)options->bins);
    if (options->frequency < KSEG_FREQUENCY_INVOICES || options->frequency > KSEG_FREQUENCY_DAYS)
        return kseg_error_set(error, KSEG_EINVAL, "unknown frequency mode %d",
                              (int)options->frequency);
    if (options->monetary != KSEG_MONETARY_SUM && options->monetary != KSEG_MONETARY_MEAN)
        return kseg_error_set(error, KSEG_EINVAL, "unknown monetary mode %d",
                              (int)options->monetary);
    if (options->returns != KSEG_RETURNS_DROP && options->returns != KSEG_RETURNS_NET)
        return kseg_error_set(error, KSEG_EINVAL, "unknown returns mode %d",
                              (int)options->returns);
    if (options->ties != KSEG_TIES_RANK && options->ties != KSEG_TIES_VALUE)
        return kseg_error_set(error, KSEG_EINVAL, "unknown ties mode %d", (int)options->ties);
    if (options->best != KSEG_BEST_HIGH && options->best != KSEG_BEST_LOW)
        return kseg_error_set(error, KSEG_EINVAL, "unknown best mode %d", (int)options->best);
    if (isinf(options->min_price))
        return kseg_error_set(error, KSEG_EINVAL, "the minimum price must be finite (or NaN for "
                                                  "none)");
    if (options->n_filters && !options->filters)
        return kseg_error_set(error, KSEG_EINVAL, "%zu where conditions but no array",
                              options->n_filters);
    for (size_t f = 0; f < options->n_filters; f++)
        if (!options->filters[f].column || !options->filters[f].column[0] ||
            !options->filters[f].value)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "where condition %zu: a column name and a value are required",
                                  f + 1);
    /* Recency and tenure subtract times in whole days; inside years 0..9999 that never
       overflows, near the int64 limits it would. */
    if (options->reference_time != INT64_MIN &&
        (options->reference_time < KSEG_TIME_MIN || options->reference_time > KSEG_TIME_MAX))
        return kseg_error_set(error, KSEG_EINVAL,
                              "the reference time %lld is outside years 0 to 9999",
                              (long long)options->reference_time);
    if (options->map && options->map->bins != options->bins)
        return kseg_error_set(error, KSEG_EINVAL,
                              "the segment map is for %d bins but the scores have %d",
                              (int)options->map->bins, (int)options->bins);

    kseg_rfm_aggregator *aggregator = calloc(1, sizeof *aggregator);
    if (!aggregator)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    int status = 0;
    aggregator->options = *options;
    aggregator->n_threads = options->n_threads > 0 ? options->n_threads : omp_get_max_threads();
    if (options->map) {
        if (copy_map(&aggregator->map, options->map)) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory copying the map");
            goto fail;
        }
    } else if ((status = kseg_rfm_map_default(&aggregator->map, options->bins, error)))
        goto fail;
    aggregator->options.map = &aggregator->map;

    if (options->n_filters) {
        aggregator->filters = calloc(options->n_filters, sizeof *aggregator->filters);
        aggregator->where = calloc(options->n_filters, sizeof *aggregator->where);
        if (!aggregator->filters || !aggregator->where)
            goto out_of_memory;
        for (size_t f = 0; f < options->n_filters; f++) {
            aggregator->filters[f].column = strdup(options->filters[f].column);
            aggregator->filters[f].value = strdup(options->filters[f].value);
            if (!aggregator->filters[f].column || !aggregator->filters[f].value)
                goto out_of_memory;
        }
        /* Conditions on the same column are alternatives: one entry per distinct column. */
        for (size_t f = 0; f < options->n_filters; f++) {
            size_t w = 0;
            while (w < aggregator->n_where &&
                   strcmp(aggregator->where[w].name, aggregator->filters[f].column) != 0)
                w++;
            if (w == aggregator->n_where)
                aggregator->where[aggregator->n_where++].name = aggregator->filters[f].column;
        }
    }
    aggregator->options.filters = aggregator->filters;

    if (options->dedupe) {
        aggregator->records = malloc(CHUNK_ROWS * sizeof *aggregator->records);
        aggregator->partitioned = malloc(CHUNK_ROWS * sizeof *aggregator->partitioned);
        aggregator->histograms = malloc((size_t)aggregator->n_threads * KSEG_AGG_PARTITIONS *
                                        sizeof *aggregator->histograms);
        aggregator->offsets = malloc((KSEG_AGG_PARTITIONS + 1) * sizeof *aggregator->offsets);
        if (!aggregator->records || !aggregator->partitioned || !aggregator->histograms ||
            !aggregator->offsets)
            goto out_of_memory;
    } else {
        aggregator->stages = malloc(COLUMN_CHUNK_ROWS * sizeof *aggregator->stages);
        if (!aggregator->stages)
            goto out_of_memory;
        if (options->frequency_explicit && options->frequency == KSEG_FREQUENCY_DAYS &&
            !(aggregator->day_keys = malloc(COLUMN_CHUNK_ROWS * sizeof *aggregator->day_keys)))
            goto out_of_memory;
    }
    *aggregator_out = aggregator;
    return 0;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory setting up the RFM aggregation");
fail:
    kseg_rfm_aggregator_destroy(aggregator);
    return status;
}

void kseg_rfm_aggregator_destroy(kseg_rfm_aggregator *aggregator)
{
    if (!aggregator)
        return;
    if (aggregator->filters)
        for (size_t f = 0; f < aggregator->options.n_filters; f++) {
            free((char *)aggregator->filters[f].column);
            free((char *)aggregator->filters[f].value);
        }
    free(aggregator->filters);
    if (aggregator->where)
        for (size_t w = 0; w < aggregator->n_where; w++)
            free(aggregator->where[w].allowed);
    free(aggregator->where);
    kseg_rfm_map_destroy(&aggregator->map);
    kseg_agg_state_destroy(&aggregator->state);
    free(aggregator->stages);
    free(aggregator->day_keys);
    free(aggregator->records);
    free(aggregator->partitioned);
    free(aggregator->histograms);
    free(aggregator->offsets);
    free(aggregator->piece_sums);
    free(aggregator);
}

/* Appends "a, b, c" from names to buffer (at most capacity bytes), ending with "... (N in all)"
 * when they do not fit, so that an error message can list what is valid. */
static void list_names(char *buffer, size_t capacity, const char *const *names, size_t count)
{
    size_t length = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        size_t need = strlen(names[i]) + (i ? 2 : 0);
        if (length + need + 24 >= capacity) {
            snprintf(buffer + length, capacity - length, "%s... (%zu in all)", i ? ", " : "",
                     count);
            return;
        }
        length += (size_t)snprintf(buffer + length, capacity - length, "%s%s", i ? ", " : "",
                                   names[i]);
    }
}

/* Resolves the --where conditions against this block's categories and dictionaries. */
static int resolve_where(kseg_rfm_aggregator *aggregator, const kseg_transactions *block,
                         kseg_error *error)
{
    char listing[360];
    for (size_t w = 0; w < aggregator->n_where; w++) {
        where_column *column = &aggregator->where[w];
        size_t c = 0;
        while (c < block->n_categories &&
               !(block->categories[c].name &&
                 strcmp(block->categories[c].name, column->name) == 0))
            c++;
        if (c == block->n_categories) {
            if (block->n_categories == 0)
                return kseg_error_set(error, KSEG_ENOENT,
                                      "where %s=...: the transactions have no category columns",
                                      column->name);
            const char *names[64];
            size_t n_names = block->n_categories < 64 ? block->n_categories : 64;
            for (size_t i = 0; i < n_names; i++)
                names[i] = block->categories[i].name ? block->categories[i].name : "?";
            list_names(listing, sizeof listing, names, n_names);
            return kseg_error_set(error, KSEG_ENOENT,
                                  "where %s=...: no category column '%s' (category columns: %s)",
                                  column->name, column->name, listing);
        }
        const kseg_category_column *category = &block->categories[c];
        column->category = c;
        if (category->n_names > column->allowed_capacity) {
            unsigned char *grown = realloc(column->allowed, category->n_names);
            if (!grown)
                return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
            column->allowed = grown;
            column->allowed_capacity = category->n_names;
        }
        if (category->n_names)
            memset(column->allowed, 0, category->n_names);
        for (size_t f = 0; f < aggregator->options.n_filters; f++) {
            const kseg_rfm_filter *filter = &aggregator->filters[f];
            if (strcmp(filter->column, column->name) != 0)
                continue;
            size_t v = 0;
            while (v < category->n_names &&
                   !(category->names[v] && strcmp(category->names[v], filter->value) == 0))
                v++;
            if (v == category->n_names) {
                list_names(listing, sizeof listing, category->names, category->n_names);
                return kseg_error_set(error, KSEG_ENOENT,
                                      "where %s=%s: column '%s' has no value '%s' (values: %s)",
                                      filter->column, filter->value, filter->column,
                                      filter->value, category->n_names ? listing : "none");
            }
            column->allowed[v] = 1;
        }
    }
    return 0;
}

/* Fixes the columns from the first block: the frequency key and the aggregation state. */
static int configure(kseg_rfm_aggregator *aggregator, const kseg_transactions *block,
                     kseg_error *error)
{
    aggregator->has_invoice = block->invoice != NULL;
    if (aggregator->options.frequency_explicit)
        aggregator->frequency = aggregator->options.frequency;
    else
        aggregator->frequency =
            aggregator->has_invoice ? KSEG_FREQUENCY_INVOICES : KSEG_FREQUENCY_LINES;
    if (aggregator->frequency == KSEG_FREQUENCY_INVOICES && !aggregator->has_invoice)
        return kseg_error_set(error, KSEG_ENOENT,
                              "frequency by invoices needs the invoice column, which the "
                              "transactions lack (count lines or days instead)");
    if (kseg_agg_state_init(&aggregator->state, KSEG_AGG_PARTITIONS,
                            aggregator->frequency != KSEG_FREQUENCY_LINES,
                            aggregator->options.dedupe))
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    aggregator->state.restartable = aggregator->options.restartable && !aggregator->options.dedupe;
    aggregator->columns_known = 1;
    return 0;
}

static uint64_t double_bits(double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* Two independent 64-bit hashes over every column of row i (floats by their bits): two rows are
 * taken as duplicates only if all 128 bits agree. */
static void hash_row(const kseg_transactions *block, size_t i, uint64_t hash[2])
{
    uint64_t first = 0x243f6a8885a308d3ull, second = 0x13198a2e03707344ull;
#define KSEG_HASH_WORD(word)                                                              \
    do {                                                                                  \
        uint64_t word_ = (word);                                                          \
        first = kseg_mix64(first ^ word_);                                                \
        second = kseg_mix64(second + word_ * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull); \
    } while (0)
    KSEG_HASH_WORD((uint64_t)block->customer_id[i]);
    KSEG_HASH_WORD((uint64_t)block->time[i]);
    KSEG_HASH_WORD(double_bits(block->amount[i]));
    if (block->quantity)
        KSEG_HASH_WORD(double_bits(block->quantity[i]));
    if (block->price)
        KSEG_HASH_WORD(double_bits(block->price[i]));
    if (block->invoice)
        KSEG_HASH_WORD((uint64_t)block->invoice[i]);
    if (block->cancelled)
        KSEG_HASH_WORD(block->cancelled[i]);
    for (size_t c = 0; c < block->n_categories; c++)
        KSEG_HASH_WORD((uint64_t)(uint32_t)block->categories[c].codes[i]);
#undef KSEG_HASH_WORD
    hash[0] = first;
    hash[1] = second;
}

/* Classifies rows [begin, begin + rows) of block into records; returns the global index of the
 * first row whose amount is not finite, or -1. */
static int64_t classify(kseg_rfm_aggregator *aggregator, const kseg_transactions *block,
                        size_t begin, size_t rows, int64_t *without_customer)
{
    const kseg_rfm_options *options = &aggregator->options;
    const int filter_price = !isnan(options->min_price);
    const double *prices = block->price ? block->price : block->amount;
    const int net = options->returns == KSEG_RETURNS_NET;
    const int dedupe = options->dedupe;
    const kseg_frequency_mode frequency = aggregator->frequency;
    int64_t first_bad = INT64_MAX, missing = 0;
#pragma omp parallel for schedule(static) num_threads(aggregator->n_threads) \
    reduction(min : first_bad) reduction(+ : missing)
    for (size_t k = 0; k < rows; k++) {
        size_t i = begin + k;
        kseg_agg_record *record = &aggregator->records[k];
        record->customer_id = block->customer_id[i];
        record->time = block->time[i];
        record->amount = block->amount[i];
        record->key = 0;
        record->row_hash[0] = record->row_hash[1] = 0;
        record->unused = 0;
        if (!isfinite(block->amount[i]) && aggregator->rows_read + (int64_t)i < first_bad)
            first_bad = aggregator->rows_read + (int64_t)i;
        if (block->customer_valid && !block->customer_valid[i]) {
            record->stage = KSEG_AGG_NO_CUSTOMER;
            missing++;
            continue;
        }
        int passes = 1;
        for (size_t w = 0; w < aggregator->n_where && passes; w++) {
            const where_column *column = &aggregator->where[w];
            const kseg_category_column *category = &block->categories[column->category];
            int32_t code = category->codes[i];
            passes = code >= 0 && (size_t)code < category->n_names && column->allowed[code];
        }
        int is_return = (block->cancelled && block->cancelled[i]) ||
                        (block->quantity && block->quantity[i] < 0) || block->amount[i] < 0;
        if (!passes)
            record->stage = KSEG_AGG_WHERE;
        else if (filter_price && prices[i] < options->min_price)
            record->stage = KSEG_AGG_MIN_PRICE;
        else if (is_return)
            record->stage = net ? KSEG_AGG_KEPT_RETURN : KSEG_AGG_RETURNS;
        else
            record->stage = KSEG_AGG_KEPT_PURCHASE;
        if (frequency == KSEG_FREQUENCY_INVOICES)
            record->key = block->invoice[i];
        else if (frequency == KSEG_FREQUENCY_DAYS)
            record->key = floor_div(block->time[i], SECONDS_PER_DAY);
        if (dedupe)
            hash_row(block, i, record->row_hash);
    }
    *without_customer = missing;
    return first_bad == INT64_MAX ? -1 : first_bad;
}

/* The column path's classification of rows [begin, begin + rows): stages[k] (and day_keys[k] with
 * frequency by days), the same stages as classify. Returns the global index of the first row
 * whose amount is not finite, or -1. */
static int64_t classify_columns(kseg_rfm_aggregator *aggregator, const kseg_transactions *block,
                                size_t begin, size_t rows, int64_t *without_customer)
{
    const kseg_rfm_options *options = &aggregator->options;
    const int filter_price = !isnan(options->min_price);
    const double min_price = options->min_price;
    const double *prices = block->price ? block->price : block->amount;
    const uint8_t returns_stage = options->returns == KSEG_RETURNS_NET ? KSEG_AGG_KEPT_RETURN
                                                                       : KSEG_AGG_RETURNS;
    const int days = aggregator->frequency == KSEG_FREQUENCY_DAYS;
    const uint8_t *valid = block->customer_valid ? block->customer_valid + begin : NULL;
    const uint8_t *cancelled = block->cancelled ? block->cancelled + begin : NULL;
    const double *quantity = block->quantity ? block->quantity + begin : NULL;
    const double *amount = block->amount + begin;
    const int64_t *time = block->time + begin;
    uint8_t *stages = aggregator->stages;
    int64_t *day_keys = aggregator->day_keys;
    const size_t n_where = aggregator->n_where;
    int64_t first_bad = INT64_MAX, missing = 0;
    if (!valid && !n_where && !filter_price && !days) {
        /* The common case, without conditions: only returns are told apart, in a loop without
           branches that the compiler vectorizes; the first non-finite amount is looked for only
           when there is one. */
        const uint8_t purchase = KSEG_AGG_KEPT_PURCHASE;
        int finite = 1;
#pragma omp parallel for schedule(static) num_threads(aggregator->n_threads) \
    reduction(&& : finite)
        for (size_t k = 0; k < rows; k++) {
            int is_return = (cancelled ? cancelled[k] != 0 : 0) |
                            (quantity ? quantity[k] < 0 : 0) | (amount[k] < 0);
            stages[k] = is_return ? returns_stage : purchase;
            finite = finite && isfinite(amount[k]);
        }
        *without_customer = 0;
        if (finite)
            return -1;
        for (size_t k = 0; k < rows; k++)
            if (!isfinite(amount[k]))
                return aggregator->rows_read + (int64_t)(begin + k);
        return -1;
    }
#pragma omp parallel for schedule(static) num_threads(aggregator->n_threads) \
    reduction(min : first_bad) reduction(+ : missing)
    for (size_t k = 0; k < rows; k++) {
        if (!isfinite(amount[k]) && aggregator->rows_read + (int64_t)(begin + k) < first_bad)
            first_bad = aggregator->rows_read + (int64_t)(begin + k);
        if (days)
            day_keys[k] = floor_div(time[k], SECONDS_PER_DAY);
        if (valid && !valid[k]) {
            stages[k] = KSEG_AGG_NO_CUSTOMER;
            missing++;
            continue;
        }
        int passes = 1;
        for (size_t w = 0; w < n_where && passes; w++) {
            const where_column *column = &aggregator->where[w];
            const kseg_category_column *category = &block->categories[column->category];
            int32_t code = category->codes[begin + k];
            passes = code >= 0 && (size_t)code < category->n_names && column->allowed[code];
        }
        int is_return = (cancelled && cancelled[k]) || (quantity && quantity[k] < 0) ||
                        amount[k] < 0;
        uint8_t stage;
        if (!passes)
            stage = KSEG_AGG_WHERE;
        else if (filter_price && prices[begin + k] < min_price)
            stage = KSEG_AGG_MIN_PRICE;
        else if (is_return)
            stage = returns_stage;
        else
            stage = KSEG_AGG_KEPT_PURCHASE;
        stages[k] = stage;
    }
    *without_customer = missing;
    return first_bad == INT64_MAX ? -1 : first_bad;
}

/* A restartable aggregator whose kernel asked for a restart: back to its state before the first
 * block, not restartable any more, so that the caller's second pass keeps the key log. */
static int restart_with_key_log(kseg_rfm_aggregator *aggregator, kseg_error *error)
{
    kseg_agg_state_destroy(&aggregator->state); /* which zeroes it */
    aggregator->options.restartable = 0;
    aggregator->columns_known = 0;
    aggregator->rows_read = 0;
    aggregator->rows_without_customer = 0;
    aggregator->amount_blocks = 0.0;
    aggregator->amount_block = 0.0;
    return kseg_error_set(error, KSEG_ERESTART,
                          "RFM aggregation: a customer's frequency keys are not in increasing "
                          "order; add every block again from the first");
}

int kseg_rfm_aggregator_add(kseg_rfm_aggregator *aggregator, const kseg_transactions *block,
                            kseg_error *error)
{
    if (!aggregator || !block)
        return kseg_error_set(error, KSEG_EINVAL, "RFM aggregation: no aggregator or block");
    if (aggregator->failed)
        return kseg_error_set(error, KSEG_EINVAL,
                              "RFM aggregation: an earlier block failed; start again");
    if (block->rows == 0)
        return 0;
    if (!block->customer_id || !block->time || !block->amount)
        return kseg_error_set(error, KSEG_EINVAL,
                              "RFM aggregation: the block lacks the %s column",
                              !block->customer_id ? "customer_id"
                              : !block->time      ? "time"
                                                  : "amount");
    for (size_t c = 0; c < block->n_categories; c++)
        if (!block->categories[c].codes)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "RFM aggregation: category column %zu has no codes", c);
    /* One parallel pass over the block's pieces (the rows up to each KSEG_BLOCK_ROWS boundary,
       counted from the first row) checks the times and sums each piece's amounts in row order;
       the piece sums are added in order after the aggregation. */
    const size_t rows_before = (size_t)aggregator->rows_read;
    const size_t first_end = KSEG_BLOCK_ROWS - rows_before % KSEG_BLOCK_ROWS;
    const size_t n_pieces =
        block->rows <= first_end ? 1 : 1 + (block->rows - first_end + KSEG_BLOCK_ROWS - 1) /
                                               KSEG_BLOCK_ROWS;
    if (n_pieces > aggregator->piece_capacity) {
        double *grown = realloc(aggregator->piece_sums, n_pieces * sizeof *grown);
        if (!grown)
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        aggregator->piece_sums = grown;
        aggregator->piece_capacity = n_pieces;
    }
    double *piece_sums = aggregator->piece_sums;
    const double carried = aggregator->amount_block;
    int64_t first_bad_time = INT64_MAX;
#pragma omp parallel for schedule(static) num_threads(aggregator->n_threads) \
    reduction(min : first_bad_time)
    for (size_t piece = 0; piece < n_pieces; piece++) {
        size_t begin = piece == 0 ? 0 : first_end + (piece - 1) * KSEG_BLOCK_ROWS;
        size_t end = piece == 0 ? first_end : begin + KSEG_BLOCK_ROWS;
        if (end > block->rows)
            end = block->rows;
        /* The first piece continues the block the previous call left open. */
        double sum = piece == 0 ? carried : 0.0;
        for (size_t i = begin; i < end; i++) {
            sum += block->amount[i];
            /* A time outside years 0..9999 (a damaged file: the importer never writes one)
               would make the reference day and the recency and tenure subtractions overflow
               int64. */
            if ((block->time[i] < KSEG_TIME_MIN || block->time[i] > KSEG_TIME_MAX) &&
                (int64_t)i < first_bad_time)
                first_bad_time = (int64_t)i;
        }
        piece_sums[piece] = sum;
    }
    if (first_bad_time != INT64_MAX) {
        aggregator->failed = 1;
        return kseg_error_set(error, KSEG_EINVAL,
                              "transaction row %lld: time %lld is outside years 0 to 9999 "
                              "(seconds since 1970-01-01 UTC expected)",
                              (long long)(aggregator->rows_read + first_bad_time),
                              (long long)block->time[first_bad_time]);
    }
    int status;
    if (!aggregator->columns_known) {
        if ((status = configure(aggregator, block, error)))
            goto fail;
    } else if (aggregator->frequency == KSEG_FREQUENCY_INVOICES && !block->invoice) {
        status = kseg_error_set(error, KSEG_EINVAL,
                                "RFM aggregation: a block lacks the invoice column the first "
                                "one had");
        goto fail;
    }
    if ((status = resolve_where(aggregator, block, error)))
        goto fail;

    if (!aggregator->options.dedupe && aggregator->frequency == KSEG_FREQUENCY_DAYS &&
        !aggregator->day_keys &&
        !(aggregator->day_keys = malloc(COLUMN_CHUNK_ROWS * sizeof *aggregator->day_keys))) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t begin = 0; !aggregator->options.dedupe && begin < block->rows;
         begin += COLUMN_CHUNK_ROWS) {
        size_t rows =
            block->rows - begin < COLUMN_CHUNK_ROWS ? block->rows - begin : COLUMN_CHUNK_ROWS;
        int64_t without_customer = 0;
        int64_t bad_row = classify_columns(aggregator, block, begin, rows, &without_customer);
        if (bad_row >= 0) {
            status = kseg_error_set(error, KSEG_ENONFINITE, "transaction row %lld: amount is %g",
                                    (long long)bad_row,
                                    block->amount[bad_row - aggregator->rows_read]);
            goto fail;
        }
        aggregator->rows_without_customer += without_customer;
        kseg_agg_columns columns = {
            .customer_id = block->customer_id + begin,
            .time = block->time + begin,
            .amount = block->amount + begin,
            .key = aggregator->frequency == KSEG_FREQUENCY_INVOICES ? block->invoice + begin
                   : aggregator->frequency == KSEG_FREQUENCY_DAYS   ? aggregator->day_keys
                                                                    : NULL,
            .stage = aggregator->stages};
        int added = kseg_agg_add_columns(&aggregator->state, &columns, rows,
                                         aggregator->n_threads);
        if (added == KSEG_AGG_RESTART)
            return restart_with_key_log(aggregator, error);
        if (added) {
            status = kseg_error_set(error, KSEG_ENOMEM,
                                    "out of memory growing the customer table (%zu customers)",
                                    kseg_agg_customer_count(&aggregator->state));
            goto fail;
        }
    }
    for (size_t begin = 0; aggregator->options.dedupe && begin < block->rows;
         begin += CHUNK_ROWS) {
        size_t rows = block->rows - begin < CHUNK_ROWS ? block->rows - begin : CHUNK_ROWS;
        int64_t without_customer = 0;
        int64_t bad_row = classify(aggregator, block, begin, rows, &without_customer);
        if (bad_row >= 0) {
            status = kseg_error_set(error, KSEG_ENONFINITE, "transaction row %lld: amount is %g",
                                    (long long)bad_row,
                                    block->amount[bad_row - aggregator->rows_read]);
            goto fail;
        }
        aggregator->rows_without_customer += without_customer;
        if (kseg_agg_add_block(&aggregator->state, aggregator->records, rows,
                               aggregator->n_threads, aggregator->partitioned,
                               aggregator->histograms, aggregator->offsets)) {
            status = kseg_error_set(error, KSEG_ENOMEM,
                                    "out of memory growing the customer table (%zu customers)",
                                    kseg_agg_customer_count(&aggregator->state));
            goto fail;
        }
    }
    /* The total: each piece's sum was taken in row order, and the completed blocks' sums are
       added in block order, which gives the same bits for any thread count and (the ranks'
       rows split at block boundaries) for any rank count. */
    for (size_t piece = 0; piece < n_pieces; piece++) {
        size_t end = first_end + piece * KSEG_BLOCK_ROWS; /* rows of the block up to here */
        if (end <= block->rows) {
            aggregator->amount_blocks += piece_sums[piece]; /* the block is complete */
            aggregator->amount_block = 0.0;
        } else
            aggregator->amount_block = piece_sums[piece];
    }
    aggregator->rows_read += (int64_t)block->rows;
    return 0;
fail:
    aggregator->failed = 1;
    return status;
}

/* Frees the per-customer columns of a failed finish but keeps the statistics (stages, totals),
 * which say why nothing was left. */
static void drop_columns(kseg_rfm_table *table)
{
    free(table->customer_id);
    free(table->recency);
    free(table->frequency);
    free(table->monetary);
    free(table->tenure);
    free(table->rows);
    free(table->scores);
    free(table->segment);
    free(table->cuts);
    kseg_rfm_map_destroy(&table->map);
    table->customer_id = NULL;
    table->recency = table->frequency = table->monetary = table->tenure = table->cuts = NULL;
    table->rows = NULL;
    table->scores = table->segment = NULL;
    table->n_customers = 0;
}

/* The first dense-table offset of range p of n_ranges: floor(span * p / n_ranges), without
 * overflowing span * p. */
static size_t dense_range(size_t span, size_t p, size_t n_ranges)
{
    return span / n_ranges * p + span % n_ranges * p / n_ranges;
}

/* Per-partition counts gathered before the table is filled. */
typedef struct partition_summary {
    size_t included;
    int64_t last_time;        /* latest purchase of the included customers (dense layout only) */
    int64_t customers_removed[KSEG_RFM_MAX_STAGES];
    int64_t return_only_rows; /* net mode: kept rows of customers who never purchased */
} partition_summary;

/* The table's last purchase and reference time: the option's, or midnight UTC after the day of
 * the last purchase. */
static void set_reference(kseg_rfm_table *table, const kseg_rfm_options *options,
                          int64_t last_time)
{
    table->last_time = last_time;
    if (options->reference_time == INT64_MIN)
        table->reference_time = (floor_div(last_time, SECONDS_PER_DAY) + 1) * SECONDS_PER_DAY;
    else
        table->reference_before_last = options->reference_time < last_time;
}

static int describe_empty(const kseg_rfm_aggregator *aggregator, const kseg_rfm_table *table,
                          kseg_error *error)
{
    return kseg_rfm_describe_empty(&aggregator->options, aggregator->rows_read, table, error);
}

int kseg_rfm_describe_empty(const kseg_rfm_options *options, int64_t rows_read,
                            const kseg_rfm_table *table, kseg_error *error)
{
    static const char *const removed_as[KSEG_RFM_MAX_STAGES] = {
        "without customer id", "duplicates", "not matching the where conditions",
        "below the minimum price", "returns"};
    char detail[400];
    size_t length = 0;
    detail[0] = '\0';
    for (size_t s = 0; s < table->n_stages; s++)
        if (table->stages[s].rows_removed && length < sizeof detail)
            length += (size_t)snprintf(detail + length, sizeof detail - length, "%s%lld %s",
                                       length ? ", " : "",
                                       (long long)table->stages[s].rows_removed, removed_as[s]);
    if (rows_read == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "no transactions to aggregate");
    return kseg_error_set(error, KSEG_EEMPTY,
                          "no customer left after filtering: of %lld rows, %s%s",
                          (long long)rows_read, detail,
                          options->returns == KSEG_RETURNS_NET
                              ? " (with returns netted, a customer needs at least one purchase)"
                              : "");
}

/* Scores the table's three features (n_customers rows, in id order) and assigns the segments;
 * the scratch arrays hold n_customers entries (histograms: threads radix histograms, ascending:
 * 3 n_customers scores). */
static int score_table(kseg_rfm_table *table, const kseg_rfm_options *options, int threads,
                       uint64_t *keys, uint64_t *scratch_keys, uint32_t *order,
                       uint32_t *scratch_order, size_t *histograms, int32_t *ascending,
                       kseg_error *error)
{
    const size_t n = table->n_customers;
    const int32_t bins = options->bins;
    /* Scores: ascending values get ascending scores; recency is better when smaller, so its
       score is turned around for "best high", and all three are turned around for "best low". */
    /* With several threads the three features are scored at once, each on one thread with its
       own scratch: no barrier inside the sorts, which on a busy machine cost more than the
       sorts (each feature's scores do not depend on how it was computed). */
    const double *features[3] = {table->recency, table->frequency, table->monetary};
    const int concurrent = threads > 1;
    score_scratch scratch[3] = {{keys, scratch_keys, order, scratch_order, histograms, NULL,
                                 NULL}};
    if (score_scratch_alloc_buckets(&scratch[0])) {
        free(scratch[0].bucket_counts);
        free(scratch[0].positions);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory building the RFM table");
    }
    for (int f = 1; concurrent && f < 3; f++)
        if (score_scratch_alloc(&scratch[f], n, 1)) {
            for (int g = 1; g < f; g++)
                score_scratch_free(&scratch[g]);
            free(scratch[0].bucket_counts);
            free(scratch[0].positions);
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory building the RFM table");
        }
    int statuses[3] = {0, 0, 0};
    kseg_error errors[3];
#pragma omp parallel for schedule(dynamic, 1) num_threads(concurrent ? (threads < 3 ? threads : 3) : 1)
    for (int f = 0; f < 3; f++) {
        kseg_error_clear(&errors[f]);
        statuses[f] = score_feature(features[f], table->customer_id, n, bins, options->ties,
                                    concurrent ? 1 : threads, ascending + (size_t)f * n,
                                    table->cuts + (size_t)f * ((size_t)bins + 1),
                                    &scratch[concurrent ? f : 0], &errors[f]);
    }
    for (int f = 1; concurrent && f < 3; f++)
        score_scratch_free(&scratch[f]);
    free(scratch[0].bucket_counts);
    free(scratch[0].positions);
    for (int f = 0; f < 3; f++)
        if (statuses[f]) {
            if (error)
                *error = errors[f];
            return statuses[f];
        }
    /* Recency is better when smaller; the map is defined in "best high" orientation. */
    const int reverse_r = options->best != KSEG_BEST_LOW, reverse_fm = !reverse_r;
    const int flip = options->best == KSEG_BEST_LOW;
    const int32_t *ascending_r = ascending, *ascending_f = ascending + n,
                  *ascending_m = ascending + 2 * n;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        int32_t r = reverse_r ? bins + 1 - ascending_r[i] : ascending_r[i];
        int32_t f = reverse_fm ? bins + 1 - ascending_f[i] : ascending_f[i];
        int32_t m = reverse_fm ? bins + 1 - ascending_m[i] : ascending_m[i];
        table->scores[3 * i] = r;
        table->scores[3 * i + 1] = f;
        table->scores[3 * i + 2] = m;
        if (flip) {
            r = bins + 1 - r;
            f = bins + 1 - f;
        }
        table->segment[i] = table->map.cell_segment[(r - 1) * bins + (f - 1)];
    }
    return 0;
}

/* The result columns of an RFM table of n customers (the caller's destroy frees whatever was
 * allocated). Returns non-zero when any allocation failed. */
static int allocate_table_columns(kseg_rfm_table *table, size_t n, int32_t bins)
{
    table->customer_id = kseg_malloc_huge_pages(n * sizeof *table->customer_id);
    table->recency = kseg_malloc_huge_pages(n * sizeof *table->recency);
    table->frequency = kseg_malloc_huge_pages(n * sizeof *table->frequency);
    table->monetary = kseg_malloc_huge_pages(n * sizeof *table->monetary);
    table->tenure = kseg_malloc_huge_pages(n * sizeof *table->tenure);
    table->rows = kseg_malloc_huge_pages(n * sizeof *table->rows);
    table->scores = kseg_malloc_huge_pages(3 * n * sizeof *table->scores);
    table->segment = kseg_malloc_huge_pages(n * sizeof *table->segment);
    table->cuts = malloc(3 * ((size_t)bins + 1) * sizeof *table->cuts);
    return !table->customer_id || !table->recency || !table->frequency || !table->monetary ||
           !table->tenure || !table->rows || !table->scores || !table->segment || !table->cuts;
}

int kseg_rfm_aggregator_finish(kseg_rfm_aggregator *aggregator, kseg_rfm_table *table,
                               kseg_error *error)
{
    if (!aggregator || !table)
        return kseg_error_set(error, KSEG_EINVAL, "RFM finish: no aggregator or table");
    if (aggregator->failed)
        return kseg_error_set(error, KSEG_EINVAL,
                              "RFM finish: an earlier block failed; the sums are incomplete");
    kseg_rfm_table_destroy(table);
    const kseg_rfm_options *options = &aggregator->options;
    const int threads = aggregator->n_threads;
    const int32_t bins = options->bins;
    int status = 0;
    partition_summary *summaries = NULL;
    size_t *starts = NULL;
    /* The included customers' fields, in partition order (columns: the gather by id order then
       reads 8 bytes per field from arrays that mostly stay in cache, not a 72-byte record). */
    int64_t *included_id = NULL, *included_first = NULL, *included_last = NULL;
    int64_t *included_rows = NULL;
    double *included_amount = NULL, *included_count = NULL;
    uint64_t *keys = NULL, *scratch_keys = NULL;
    uint32_t *order = NULL, *scratch_order = NULL;
    size_t *histograms = NULL;
    int32_t *ascending = NULL;

    table->bins = bins;
    table->total_rows = aggregator->rows_read;
    table->total_amount = (size_t)aggregator->rows_read % KSEG_BLOCK_ROWS
                              ? aggregator->amount_blocks + aggregator->amount_block
                              : aggregator->amount_blocks;
    table->frequency_mode = aggregator->columns_known ? aggregator->frequency
                                                      : options->frequency;
    table->n_stages = KSEG_RFM_MAX_STAGES;
    table->reference_time = options->reference_time;
    for (size_t s = 0; s < KSEG_RFM_MAX_STAGES; s++)
        table->stages[s].name = stage_names[s];
    table->stages[0].rows_removed = aggregator->rows_without_customer;
    if (!aggregator->columns_known) {
        status = describe_empty(aggregator, table, error);
        goto done;
    }

    const kseg_agg_state *state = &aggregator->state;
    /* In the dense layout the table is cut into as many consecutive id ranges as there are
       partitions, and each range is handled like a partition. */
    const int dense = state->dense;
    const size_t n_partitions = state->n_partitions;
    const size_t dense_span = state->dense_span;
    const kseg_agg_dense_customer *dense_table = state->dense_table;
    const int net = options->returns == KSEG_RETURNS_NET;
    summaries = calloc(n_partitions, sizeof *summaries);
    starts = malloc((n_partitions + 1) * sizeof *starts);
    if (!summaries || !starts)
        goto out_of_memory;
    int64_t stage_rows[KSEG_AGG_STAGE_COUNT];
    kseg_agg_stage_rows(state, stage_rows);
    for (size_t s = 1; s < KSEG_RFM_MAX_STAGES; s++)
        table->stages[s].rows_removed += stage_rows[s];

    /* A customer whose rows got furthest to stage s (< kept) was lost at stage s: it had rows
       before that stage and none after it. With returns netted, one whose kept rows are all
       returns made no purchase and is lost at the returns stage, with those rows. */
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (size_t p = 0; p < n_partitions; p++) {
        partition_summary summary = {0}; /* counted locally: neighbours share cache lines */
        if (dense) {
            for (size_t d = dense_range(dense_span, p, n_partitions),
                        end = dense_range(dense_span, p + 1, n_partitions);
                 d < end; d++) {
                const kseg_agg_dense_customer *customer = &dense_table[d];
                if (!customer->reach)
                    continue;
                if (customer->reach < KSEG_AGG_KEPT_PURCHASE)
                    summary.customers_removed[customer->reach]++;
                else if (customer->purchases == 0) {
                    summary.customers_removed[KSEG_AGG_RETURNS]++;
                    summary.return_only_rows += customer->rows;
                } else {
                    summary.included++;
                    if (summary.included == 1 || customer->last_time > summary.last_time)
                        summary.last_time = customer->last_time;
                }
            }
            summaries[p] = summary;
            continue;
        }
        const kseg_agg_partition *partition = &state->partitions[p];
        for (size_t c = 0; c < partition->n_customers; c++) {
            const kseg_agg_customer *customer = &partition->customers[c];
            if (customer->reach < KSEG_AGG_KEPT_PURCHASE)
                summary.customers_removed[customer->reach]++;
            else if (customer->purchases == 0) {
                summary.customers_removed[KSEG_AGG_RETURNS]++;
                summary.return_only_rows += customer->rows;
            } else
                summary.included++;
        }
        summaries[p] = summary;
    }
    size_t n = 0;
    for (size_t p = 0; p < n_partitions; p++) {
        starts[p] = n;
        n += summaries[p].included;
        for (size_t s = 0; s < KSEG_RFM_MAX_STAGES; s++)
            table->stages[s].customers_removed += summaries[p].customers_removed[s];
        if (net)
            table->stages[KSEG_AGG_RETURNS].rows_removed += summaries[p].return_only_rows;
    }
    starts[n_partitions] = n;
    if (n == 0) {
        status = describe_empty(aggregator, table, error);
        goto done;
    }
    if (n > MAX_SCORED) {
        status = kseg_error_set(error, KSEG_ETOOBIG, "%zu customers exceed the limit of %zu", n,
                                MAX_SCORED);
        goto done;
    }

    /* The dense table is read straight into the result columns; the partitions go through
       per-customer columns that are then put in id order. */
    if (!dense) {
        included_id = kseg_malloc_huge_pages(n * sizeof *included_id);
        included_first = kseg_malloc_huge_pages(n * sizeof *included_first);
        included_last = kseg_malloc_huge_pages(n * sizeof *included_last);
        included_rows = kseg_malloc_huge_pages(n * sizeof *included_rows);
        included_amount = kseg_malloc_huge_pages(n * sizeof *included_amount);
        included_count = kseg_malloc_huge_pages(n * sizeof *included_count);
        if (!included_id || !included_first || !included_last || !included_rows ||
            !included_amount || !included_count)
            goto out_of_memory;
    }
    keys = kseg_malloc_huge_pages(n * sizeof *keys);
    scratch_keys = kseg_malloc_huge_pages(n * sizeof *scratch_keys);
    order = kseg_malloc_huge_pages(n * sizeof *order);
    scratch_order = kseg_malloc_huge_pages(n * sizeof *scratch_order);
    histograms = malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *histograms);
    ascending = kseg_malloc_huge_pages(3 * n * sizeof *ascending);
    int columns_missing = allocate_table_columns(table, n, bins);
    if (!keys || !scratch_keys || !order || !scratch_order || !histograms || !ascending ||
        columns_missing)
        goto out_of_memory;
    if (copy_map(&table->map, &aggregator->map))
        goto out_of_memory;

    const kseg_frequency_mode frequency = aggregator->frequency;
    const int mean = options->monetary == KSEG_MONETARY_MEAN;
    if (dense) {
        int64_t last_time = INT64_MIN;
        for (size_t p = 0; p < n_partitions; p++)
            if (summaries[p].included && summaries[p].last_time > last_time)
                last_time = summaries[p].last_time;
        set_reference(table, options, last_time);
        const int64_t reference = table->reference_time;
        const uint64_t base = (uint64_t)state->dense_base;
        /* Ranges in id order, ids in order within them: the table comes out sorted by id. */
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
        for (size_t p = 0; p < n_partitions; p++) {
            size_t k = starts[p];
            for (size_t d = dense_range(dense_span, p, n_partitions),
                        end = dense_range(dense_span, p + 1, n_partitions);
                 d < end; d++) {
                const kseg_agg_dense_customer *customer = &dense_table[d];
                if (customer->reach != KSEG_AGG_KEPT_PURCHASE || customer->purchases == 0)
                    continue;
                double count = frequency == KSEG_FREQUENCY_LINES
                                   ? (double)customer->purchases
                                   : (double)customer->distinct_keys;
                table->customer_id[k] = (int64_t)(base + d);
                table->recency[k] =
                    (double)floor_div(reference - customer->last_time, SECONDS_PER_DAY);
                table->tenure[k] =
                    (double)floor_div(reference - customer->first_time, SECONDS_PER_DAY);
                table->frequency[k] = count;
                table->monetary[k] = mean ? customer->amount / count : customer->amount;
                table->rows[k] = customer->rows;
                k++;
            }
        }
    } else {
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
        for (size_t p = 0; p < n_partitions; p++) {
            size_t next = starts[p];
            const kseg_agg_partition *partition = &state->partitions[p];
            for (size_t c = 0; c < partition->n_customers; c++) {
                const kseg_agg_customer *customer = &partition->customers[c];
                if (customer->reach == KSEG_AGG_KEPT_PURCHASE && customer->purchases > 0) {
                    included_id[next] = customer->customer_id;
                    included_first[next] = customer->first_time;
                    included_last[next] = customer->last_time;
                    included_rows[next] = customer->rows;
                    included_amount[next] = customer->amount;
                    included_count[next] = frequency == KSEG_FREQUENCY_LINES
                                               ? (double)customer->purchases
                                               : (double)customer->distinct_keys;
                    keys[next] = kseg_int64_order_key(customer->customer_id);
                    order[next] = (uint32_t)next;
                    next++;
                }
            }
        }
        /* The table is sorted by customer id (unique): a total order, whatever the partitions. */
        kseg_radix_sort_pairs(keys, order, n, scratch_keys, scratch_order, histograms, threads);

        int64_t last_time = INT64_MIN;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(max : last_time)
        for (size_t i = 0; i < n; i++)
            if (included_last[i] > last_time)
                last_time = included_last[i];
        set_reference(table, options, last_time);
        const int64_t reference = table->reference_time;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t k = 0; k < n; k++) {
            size_t c = order[k];
            double count = included_count[c];
            table->customer_id[k] = included_id[c];
            table->recency[k] = (double)floor_div(reference - included_last[c], SECONDS_PER_DAY);
            table->tenure[k] = (double)floor_div(reference - included_first[c], SECONDS_PER_DAY);
            table->frequency[k] = count;
            table->monetary[k] = mean ? included_amount[c] / count : included_amount[c];
            table->rows[k] = included_rows[c];
        }
    }
    table->n_customers = n;

    status = score_table(table, options, threads, keys, scratch_keys, order, scratch_order,
                         histograms, ascending, error);
    goto done;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory building the RFM table");
done:
    free(summaries);
    free(starts);
    free(included_id);
    free(included_first);
    free(included_last);
    free(included_rows);
    free(included_amount);
    free(included_count);
    free(keys);
    free(scratch_keys);
    free(order);
    free(scratch_order);
    free(histograms);
    free(ascending);
    if (status)
        drop_columns(table);
    return status;
}

/* ---------------------------------------------------------------- for the distributed driver */

const char *kseg_rfm_stage_name(size_t stage)
{
    return stage < KSEG_RFM_MAX_STAGES ? stage_names[stage] : "?";
}

int kseg_rfm_aggregator_prepare(kseg_rfm_aggregator *aggregator, const kseg_transactions *schema,
                                kseg_error *error)
{
    int status = 0;
    if (!aggregator->columns_known && (status = configure(aggregator, schema, error)))
        goto fail;
    if ((status = resolve_where(aggregator, schema, error)))
        goto fail;
    return 0;
fail:
    aggregator->failed = 1;
    return status;
}

kseg_frequency_mode kseg_rfm_aggregator_frequency(const kseg_rfm_aggregator *aggregator)
{
    return aggregator->columns_known ? aggregator->frequency : aggregator->options.frequency;
}

/* Counts one customer of the state the way kseg_rfm_aggregator_finish does, and appends it to
 * records when it is included. */
static void collect_customer(const kseg_rfm_aggregator *aggregator, int64_t customer_id,
                             int32_t reach, int64_t purchases, int64_t rows, int64_t first_time,
                             int64_t last_time, double amount, int64_t distinct_keys,
                             kseg_rfm_customer_record *records, size_t *n_records,
                             int64_t *rows_removed, int64_t *customers_removed)
{
    if (reach < KSEG_AGG_KEPT_PURCHASE) {
        customers_removed[reach]++;
        return;
    }
    if (purchases == 0) {
        /* With returns netted, a customer whose kept rows are all returns made no purchase and
           is lost at the returns stage, with those rows. */
        customers_removed[KSEG_AGG_RETURNS]++;
        if (aggregator->options.returns == KSEG_RETURNS_NET)
            rows_removed[KSEG_AGG_RETURNS] += rows;
        return;
    }
    records[*n_records] = (kseg_rfm_customer_record){
        .customer_id = customer_id,
        .first_time = first_time,
        .last_time = last_time,
        .rows = rows,
        .amount = amount,
        .count = aggregator->frequency == KSEG_FREQUENCY_LINES ? (double)purchases
                                                               : (double)distinct_keys};
    (*n_records)++;
}

int kseg_rfm_aggregator_collect(const kseg_rfm_aggregator *aggregator,
                                kseg_rfm_customer_record **records_out, size_t *n_records,
                                int64_t rows_removed[KSEG_RFM_MAX_STAGES],
                                int64_t customers_removed[KSEG_RFM_MAX_STAGES],
                                kseg_error *error)
{
    *records_out = NULL;
    *n_records = 0;
    for (size_t s = 0; s < KSEG_RFM_MAX_STAGES; s++)
        rows_removed[s] = customers_removed[s] = 0;
    if (aggregator->failed)
        return kseg_error_set(error, KSEG_EINVAL,
                              "RFM collect: an earlier block failed; the sums are incomplete");
    if (!aggregator->columns_known)
        return 0;
    const kseg_agg_state *state = &aggregator->state;
    int64_t stage_rows[KSEG_AGG_STAGE_COUNT];
    kseg_agg_stage_rows(state, stage_rows);
    for (size_t s = 1; s < KSEG_RFM_MAX_STAGES; s++)
        rows_removed[s] = stage_rows[s];
    size_t capacity = kseg_agg_customer_count(state);
    kseg_rfm_customer_record *records = malloc((capacity ? capacity : 1) * sizeof *records);
    if (!records)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for %zu customers", capacity);
    size_t n = 0;
    if (state->dense) {
        for (size_t d = 0; d < state->dense_span; d++) {
            const kseg_agg_dense_customer *customer = &state->dense_table[d];
            if (!customer->reach)
                continue; /* an id no row named */
            collect_customer(aggregator, (int64_t)((uint64_t)state->dense_base + d),
                             customer->reach, customer->purchases, customer->rows,
                             customer->first_time, customer->last_time, customer->amount,
                             customer->distinct_keys, records, &n, rows_removed,
                             customers_removed);
        }
    } else {
        for (size_t p = 0; p < state->n_partitions; p++) {
            const kseg_agg_partition *partition = &state->partitions[p];
            for (size_t c = 0; c < partition->n_customers; c++) {
                const kseg_agg_customer *customer = &partition->customers[c];
                collect_customer(aggregator, customer->customer_id, customer->reach,
                                 customer->purchases, customer->rows, customer->first_time,
                                 customer->last_time, customer->amount, customer->distinct_keys,
                                 records, &n, rows_removed, customers_removed);
            }
        }
    }
    *records_out = records;
    *n_records = n;
    return 0;
}

int kseg_rfm_table_from_records(const kseg_rfm_aggregator *aggregator,
                                const kseg_rfm_customer_record *records, size_t n,
                                kseg_rfm_table *table, kseg_error *error)
{
    const kseg_rfm_options *options = &aggregator->options;
    const int threads = aggregator->n_threads;
    const int32_t bins = options->bins;
    if (n == 0 || !records)
        return kseg_error_set(error, KSEG_EINVAL, "RFM table: no customers");
    if (n > MAX_SCORED)
        return kseg_error_set(error, KSEG_ETOOBIG, "%zu customers exceed the limit of %zu", n,
                              MAX_SCORED);
    int status = 0;
    uint64_t *keys = kseg_malloc_huge_pages(n * sizeof *keys);
    uint64_t *scratch_keys = kseg_malloc_huge_pages(n * sizeof *scratch_keys);
    uint32_t *order = kseg_malloc_huge_pages(n * sizeof *order);
    uint32_t *scratch_order = kseg_malloc_huge_pages(n * sizeof *scratch_order);
    size_t *histograms = malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *histograms);
    int32_t *ascending = kseg_malloc_huge_pages(3 * n * sizeof *ascending);
    table->bins = bins;
    table->reference_time = options->reference_time;
    int columns_missing = allocate_table_columns(table, n, bins);
    if (!keys || !scratch_keys || !order || !scratch_order || !histograms || !ascending ||
        columns_missing || copy_map(&table->map, &aggregator->map)) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory building the RFM table");
        goto done;
    }
    int64_t last_time = INT64_MIN;
    for (size_t i = 0; i < n; i++)
        if (records[i].last_time > last_time)
            last_time = records[i].last_time;
    set_reference(table, options, last_time);
    const int64_t reference = table->reference_time;
    const int mean = options->monetary == KSEG_MONETARY_MEAN;
    /* The same formulas as kseg_rfm_aggregator_finish, so the same bits. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t k = 0; k < n; k++) {
        const kseg_rfm_customer_record *record = &records[k];
        table->customer_id[k] = record->customer_id;
        table->recency[k] = (double)floor_div(reference - record->last_time, SECONDS_PER_DAY);
        table->tenure[k] = (double)floor_div(reference - record->first_time, SECONDS_PER_DAY);
        table->frequency[k] = record->count;
        table->monetary[k] = mean ? record->amount / record->count : record->amount;
        table->rows[k] = record->rows;
    }
    table->n_customers = n;
    status = score_table(table, options, threads, keys, scratch_keys, order, scratch_order,
                         histograms, ascending, error);
done:
    free(keys);
    free(scratch_keys);
    free(order);
    free(scratch_order);
    free(histograms);
    free(ascending);
    if (status)
        drop_columns(table);
    return status;
}
