/* The distributed RFM driver: ranks read transaction rows in rounds, send each row to the rank
 * that owns its customer, aggregate their customers with the serial aggregator (engine/rfm.c), and
 * gather the customers on every rank to score them: the result is that of one process, bit for
 * bit. Every collective step is preceded by an agreement on failures, so no rank waits forever. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "blocks.h"
#include "kseg/rfm.h"
#include "quantile.h"
#include "rfm_internal.h"

/* Block sums of the total amount one rank contributes per round. */
#define SUMS_PER_ROUND (KSEG_RFM_DISTRIBUTED_ROWS / KSEG_BLOCK_ROWS)

_Static_assert(KSEG_RFM_DISTRIBUTED_ROWS % KSEG_BLOCK_ROWS == 0,
               "a round's share must be whole row blocks");

/* What every rank tells the others after reading its share of a round. */
typedef struct round_report {
    int64_t status; /* 0, or the rank's error code */
    int64_t n_sums;
    double sums[SUMS_PER_ROUND]; /* the total amount of each row block read, in row order */
} round_report;

/* The columns a row carries to its owner, fixed by the first (row-less) read. */
typedef struct row_layout {
    int quantity, price, invoice, cancelled;
    size_t n_categories;
    size_t width; /* bytes per packed row */
} row_layout;

/* The rows an owner received in one round, as columns. */
typedef struct owner_rows {
    size_t capacity;
    int64_t *customer_id, *time, *invoice;
    double *amount, *quantity, *price;
    uint8_t *cancelled;
    int32_t *codes; /* [n_categories][capacity] */
    kseg_category_column *categories;
} owner_rows;

/* The rank that owns a customer: a fixed 64-bit mix of the id (independent of the aggregator's
 * partition hash, which uses the high half of kseg_mix64 of the id itself). */
static int owner_of(int64_t customer_id, int size)
{
    return (int)(kseg_mix64((uint64_t)customer_id ^ 0x5851f42d4c957f2dull) % (uint64_t)size);
}

static void owner_rows_free(owner_rows *rows)
{
    free(rows->customer_id);
    free(rows->time);
    free(rows->invoice);
    free(rows->amount);
    free(rows->quantity);
    free(rows->price);
    free(rows->cancelled);
    free(rows->codes);
    free(rows->categories);
    memset(rows, 0, sizeof *rows);
}

/* Makes room for n rows (the categories array is set up by the caller). */
static int owner_rows_reserve(owner_rows *rows, const row_layout *layout, size_t n)
{
    if (n <= rows->capacity)
        return 0;
    size_t capacity = n > 2 * rows->capacity ? n : 2 * rows->capacity;
    int failed = 0;
#define KSEG_GROW(field, present)                                                    \
    do {                                                                             \
        if (present) {                                                               \
            void *grown = realloc(rows->field, capacity * sizeof *rows->field);      \
            if (grown)                                                               \
                rows->field = grown;                                                 \
            else                                                                     \
                failed = 1;                                                          \
        }                                                                            \
    } while (0)
    KSEG_GROW(customer_id, 1);
    KSEG_GROW(time, 1);
    KSEG_GROW(amount, 1);
    KSEG_GROW(quantity, layout->quantity);
    KSEG_GROW(price, layout->price);
    KSEG_GROW(invoice, layout->invoice);
    KSEG_GROW(cancelled, layout->cancelled);
#undef KSEG_GROW
    if (!failed && layout->n_categories) {
        /* The codes are column-major, so they are not kept across a growth. */
        int32_t *codes = malloc(capacity * layout->n_categories * sizeof *codes);
        if (codes) {
            free(rows->codes);
            rows->codes = codes;
        } else
            failed = 1;
    }
    if (failed)
        return -1;
    rows->capacity = capacity;
    return 0;
}

static unsigned char *put(unsigned char *cursor, const void *value, size_t bytes)
{
    memcpy(cursor, value, bytes);
    return cursor + bytes;
}

static const unsigned char *get(const unsigned char *cursor, void *value, size_t bytes)
{
    memcpy(value, cursor, bytes);
    return cursor + bytes;
}

/* Packs row i of block at cursor in the layout's order; returns the end. */
static unsigned char *pack_row(unsigned char *cursor, const kseg_transactions *block, size_t i,
                               const row_layout *layout)
{
    cursor = put(cursor, &block->customer_id[i], 8);
    cursor = put(cursor, &block->time[i], 8);
    cursor = put(cursor, &block->amount[i], 8);
    if (layout->quantity)
        cursor = put(cursor, &block->quantity[i], 8);
    if (layout->price)
        cursor = put(cursor, &block->price[i], 8);
    if (layout->invoice)
        cursor = put(cursor, &block->invoice[i], 8);
    if (layout->cancelled)
        cursor = put(cursor, &block->cancelled[i], 1);
    for (size_t c = 0; c < layout->n_categories; c++)
        cursor = put(cursor, &block->categories[c].codes[i], 4);
    return cursor;
}

static void unpack_row(const unsigned char *cursor, owner_rows *rows, size_t i,
                       const row_layout *layout)
{
    cursor = get(cursor, &rows->customer_id[i], 8);
    cursor = get(cursor, &rows->time[i], 8);
    cursor = get(cursor, &rows->amount[i], 8);
    if (layout->quantity)
        cursor = get(cursor, &rows->quantity[i], 8);
    if (layout->price)
        cursor = get(cursor, &rows->price[i], 8);
    if (layout->invoice)
        cursor = get(cursor, &rows->invoice[i], 8);
    if (layout->cancelled)
        cursor = get(cursor, &rows->cancelled[i], 1);
    for (size_t c = 0; c < layout->n_categories; c++)
        cursor = get(cursor, &rows->codes[c * rows->capacity + i], 4);
}

/* Checks that a block read for rows [offset, offset + rows) has them and the layout's columns,
 * and that its times and amounts are usable, with the serial aggregator's messages and the global
 * row number. */
static int check_block(const kseg_transactions *block, size_t offset, size_t rows,
                       const row_layout *layout, kseg_error *error)
{
    if (block->rows != rows || !block->customer_id || !block->time || !block->amount ||
        (layout->quantity && !block->quantity) || (layout->price && !block->price) ||
        (layout->invoice && !block->invoice) || (layout->cancelled && !block->cancelled) ||
        block->n_categories != layout->n_categories)
        return kseg_error_set(error, KSEG_EINVAL,
                              "RFM: the block read for rows %zu to %zu has %zu rows or other "
                              "columns than the first read",
                              offset, offset + rows, block->rows);
    for (size_t c = 0; c < layout->n_categories; c++)
        if (!block->categories[c].codes)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "RFM aggregation: category column %zu has no codes", c);
    for (size_t i = 0; i < rows; i++) {
        if (block->time[i] < KSEG_TIME_MIN || block->time[i] > KSEG_TIME_MAX)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "transaction row %lld: time %lld is outside years 0 to 9999 "
                                  "(seconds since 1970-01-01 UTC expected)",
                                  (long long)(offset + i), (long long)block->time[i]);
        if (!isfinite(block->amount[i]))
            return kseg_error_set(error, KSEG_ENONFINITE, "transaction row %lld: amount is %g",
                                  (long long)(offset + i), block->amount[i]);
    }
    return 0;
}

/* After ranks found that some failed: the lowest failing rank (root) sends its error (code and
 * message) to all, and every rank returns it. */
static int share_error(const kseg_comm *comm, int root, int status, kseg_error *error)
{
    kseg_error shared;
    memset(&shared, 0, sizeof shared);
    if (comm->rank == root) {
        shared = *error;
        shared.code = status;
    }
    int transport = comm->ops->broadcast(comm, &shared, sizeof shared, root);
    if (transport)
        return kseg_error_set(error, transport, "RFM: sending the error between ranks failed");
    shared.message[KSEG_ERROR_MESSAGE_MAX - 1] = '\0';
    *error = shared;
    return shared.code ? shared.code : KSEG_EINTERNAL;
}

/* Agrees on a failure: every rank returns 0, or (when any rank has a non-zero status) the error
 * of the lowest failing rank. */
static int agree_all(const kseg_comm *comm, int status, kseg_error *error)
{
    int64_t flag = status ? (int64_t)(comm->size - comm->rank) : 0;
    int transport = comm->ops->allreduce_max_i64(comm, &flag, 1);
    if (transport)
        return kseg_error_set(error, transport, "RFM: the agreement between ranks failed");
    if (!flag)
        return 0;
    return share_error(comm, comm->size - (int)flag, status, error);
}

int kseg_rfm_distributed(const kseg_comm *comm, size_t n_rows, const kseg_rfm_options *options,
                         kseg_rfm_read_fn read, void *context, kseg_rfm_table *table,
                         kseg_error *error)
{
    kseg_error own_error;
    if (!error)
        error = &own_error;
    kseg_error_clear(error);
    if (!comm || !comm->ops || comm->size < 1 || !read || !table)
        return kseg_error_set(error, KSEG_EINVAL,
                              "distributed RFM: a communicator, a reader and a table are required");
    kseg_rfm_table_destroy(table);
    kseg_rfm_options defaults;
    if (!options) {
        kseg_rfm_options_defaults(&defaults);
        options = &defaults;
    }
    const int size = comm->size, rank = comm->rank;
    kseg_rfm_aggregator *aggregator = NULL;
    row_layout layout = {0};
    owner_rows received = {0};
    unsigned char *send = NULL;
    size_t send_capacity = 0;
    size_t *send_bytes = calloc((size_t)size, sizeof *send_bytes);
    size_t *recv_bytes = calloc((size_t)size, sizeof *recv_bytes);
    size_t *cursors = calloc((size_t)size, sizeof *cursors);
    size_t *lengths = calloc((size_t)size, sizeof *lengths);
    round_report *reports = calloc((size_t)size, sizeof *reports);
    int *destinations = malloc(KSEG_RFM_DISTRIBUTED_ROWS * sizeof *destinations);
    kseg_rfm_customer_record *records = NULL, *gathered = NULL, *sorted = NULL;
    uint64_t *keys = NULL, *scratch_keys = NULL;
    uint32_t *order = NULL, *scratch_order = NULL;
    size_t *histograms = NULL;
    int64_t rows_without_customer = 0;
    double total_amount = 0.0;

    int status = 0;
    if (!send_bytes || !recv_bytes || !cursors || !lengths || !reports || !destinations)
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for the RFM exchange");
    /* An owner's rows arrive round by round and cannot be asked for again. */
    kseg_rfm_options single_pass = *options;
    single_pass.restartable = 0;
    if (!status)
        status = kseg_rfm_aggregator_create(&aggregator, &single_pass, error);
    kseg_transactions schema = {0};
    if (!status)
        status = read(context, 0, 0, &schema, error);
    if (!status)
        status = kseg_rfm_aggregator_prepare(aggregator, &schema, error);
    if (!status) {
        /* The columns every row carries; the owner's aggregator sees the same columns as the
           serial one, so its filters and duplicate test are the same. */
        layout.quantity = schema.quantity != NULL;
        layout.price = schema.price != NULL;
        layout.invoice = schema.invoice != NULL;
        layout.cancelled = schema.cancelled != NULL;
        layout.n_categories = schema.n_categories;
        layout.width = 24 + 8 * (size_t)(layout.quantity + layout.price + layout.invoice) +
                       (size_t)layout.cancelled + 4 * layout.n_categories;
        if (layout.n_categories &&
            !(received.categories = calloc(layout.n_categories, sizeof *received.categories)))
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        for (size_t c = 0; !status && c < layout.n_categories; c++) {
            received.categories[c].name = schema.categories[c].name;
            received.categories[c].names = schema.categories[c].names;
            received.categories[c].n_names = schema.categories[c].n_names;
        }
    }
    if ((status = agree_all(comm, status, error)))
        goto done;

    /* The rounds: rank r reads the r-th share of each round, so that within a round rank order
       is row order, and an owner that appends what it receives in source-rank order adds every
       customer's rows in global row order, as the serial aggregator does. */
    const size_t share = KSEG_RFM_DISTRIBUTED_ROWS;
    const size_t per_round = share * (size_t)size;
    const size_t rounds = n_rows ? (n_rows - 1) / per_round + 1 : 0;
    int pending = 0; /* the previous round's receiving status, agreed on at the next step */
    for (size_t t = 0; t < rounds; t++) {
        size_t offset = t * per_round + (size_t)rank * share;
        size_t rows = offset < n_rows ? (n_rows - offset < share ? n_rows - offset : share) : 0;
        round_report mine;
        memset(&mine, 0, sizeof mine);
        kseg_transactions block = {0};
        status = pending;
        if (!status && rows)
            status = read(context, offset, rows, &block, error);
        if (!status && rows)
            status = check_block(&block, offset, rows, &layout, error);
        for (size_t d = 0; d < (size_t)size; d++)
            send_bytes[d] = 0;
        if (!status && rows) {
            for (size_t begin = 0; begin < rows; begin += KSEG_BLOCK_ROWS) {
                size_t end = rows - begin < KSEG_BLOCK_ROWS ? rows : begin + KSEG_BLOCK_ROWS;
                double sum = 0.0;
                for (size_t i = begin; i < end; i++)
                    sum += block.amount[i];
                mine.sums[mine.n_sums++] = sum;
            }
            for (size_t i = 0; i < rows; i++) {
                if (block.customer_valid && !block.customer_valid[i]) {
                    destinations[i] = -1;
                    rows_without_customer++;
                    continue;
                }
                destinations[i] = owner_of(block.customer_id[i], size);
                send_bytes[destinations[i]] += layout.width;
            }
            size_t total = 0;
            for (int d = 0; d < size; d++) {
                cursors[d] = total;
                total += send_bytes[d];
            }
            if (total > send_capacity) {
                unsigned char *grown = realloc(send, total);
                if (!grown)
                    status = kseg_error_set(error, KSEG_ENOMEM,
                                            "out of memory for %zu bytes of rows to send", total);
                else {
                    send = grown;
                    send_capacity = total;
                }
            }
            for (size_t i = 0; !status && i < rows; i++)
                if (destinations[i] >= 0)
                    cursors[destinations[i]] =
                        (size_t)(pack_row(send + cursors[destinations[i]], &block, i, &layout) -
                                 send);
        }
        mine.status = status;
        int transport = comm->ops->allgatherv(comm, &mine, sizeof mine, reports,
                                              (size_t)size * sizeof *reports, lengths);
        if (transport) {
            status = kseg_error_set(error, transport, "RFM: gathering the round reports failed");
            goto done;
        }
        for (int r = 0; r < size; r++)
            if (reports[r].status) {
                status = share_error(comm, r, status, error);
                goto done;
            }
        /* The total amount: the block sums in row order, as the serial aggregator adds them. */
        for (int r = 0; r < size; r++)
            for (int64_t j = 0; j < reports[r].n_sums; j++)
                total_amount += reports[r].sums[j];
        void *incoming = NULL;
        pending = comm->ops->alltoallv(comm, send, send_bytes, &incoming, recv_bytes);
        if (pending)
            kseg_error_set(error, pending, "RFM: exchanging the rows between ranks failed");
        size_t arrived = 0;
        for (int r = 0; !pending && r < size; r++)
            arrived += recv_bytes[r] / layout.width;
        if (!pending && arrived) {
            if (owner_rows_reserve(&received, &layout, arrived))
                pending = kseg_error_set(error, KSEG_ENOMEM,
                                         "out of memory for %zu received rows", arrived);
            for (size_t i = 0; !pending && i < arrived; i++)
                unpack_row((const unsigned char *)incoming + i * layout.width, &received, i,
                           &layout);
            for (size_t c = 0; !pending && c < layout.n_categories; c++)
                received.categories[c].codes = received.codes + c * received.capacity;
            kseg_transactions owned = {.rows = arrived,
                                       .customer_id = received.customer_id,
                                       .customer_valid = NULL,
                                       .time = received.time,
                                       .amount = received.amount,
                                       .quantity = layout.quantity ? received.quantity : NULL,
                                       .price = layout.price ? received.price : NULL,
                                       .invoice = layout.invoice ? received.invoice : NULL,
                                       .cancelled = layout.cancelled ? received.cancelled : NULL,
                                       .categories = received.categories,
                                       .n_categories = layout.n_categories};
            if (!pending)
                pending = kseg_rfm_aggregator_add(aggregator, &owned, error);
        }
        free(incoming);
    }
    if ((status = agree_all(comm, pending, error)))
        goto done;

    /* The owners' customers, gathered on every rank and put in id order. */
    int64_t counts[2 * KSEG_RFM_MAX_STAGES + 1];
    size_t n_local = 0;
    status = kseg_rfm_aggregator_collect(aggregator, &records, &n_local, counts,
                                         counts + KSEG_RFM_MAX_STAGES, error);
    counts[0] = rows_without_customer;
    counts[2 * KSEG_RFM_MAX_STAGES] = (int64_t)n_local;
    if ((status = agree_all(comm, status, error)))
        goto done;
    if ((status = comm->ops->allreduce_sum_i64(comm, counts, 2 * KSEG_RFM_MAX_STAGES + 1))) {
        status = kseg_error_set(error, status, "RFM: summing the stage counts failed");
        goto done;
    }
    table->bins = options->bins;
    table->total_rows = (int64_t)n_rows;
    table->total_amount = total_amount;
    table->frequency_mode = kseg_rfm_aggregator_frequency(aggregator);
    table->reference_time = options->reference_time;
    table->n_stages = KSEG_RFM_MAX_STAGES;
    for (size_t s = 0; s < KSEG_RFM_MAX_STAGES; s++) {
        table->stages[s].name = kseg_rfm_stage_name(s);
        table->stages[s].rows_removed = counts[s];
        table->stages[s].customers_removed = counts[KSEG_RFM_MAX_STAGES + s];
    }
    const size_t n = (size_t)counts[2 * KSEG_RFM_MAX_STAGES];
    if (n == 0) {
        status = kseg_rfm_describe_empty(options, (int64_t)n_rows, table, error);
        goto done;
    }
    const int threads = options->n_threads > 0 ? options->n_threads : omp_get_max_threads();
    gathered = malloc(n * sizeof *gathered);
    sorted = malloc(n * sizeof *sorted);
    keys = malloc(n * sizeof *keys);
    scratch_keys = malloc(n * sizeof *scratch_keys);
    order = malloc(n * sizeof *order);
    scratch_order = malloc(n * sizeof *scratch_order);
    histograms = malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *histograms);
    if (!gathered || !sorted || !keys || !scratch_keys || !order || !scratch_order ||
        !histograms)
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for %zu customers", n);
    if ((status = agree_all(comm, status, error)))
        goto done;
    if ((status = comm->ops->allgatherv(comm, records, n_local * sizeof *records, gathered,
                                        n * sizeof *gathered, lengths))) {
        status = kseg_error_set(error, status, "RFM: gathering the customers failed");
        goto done;
    }
    if (n > UINT32_MAX) {
        status = kseg_error_set(error, KSEG_ETOOBIG, "%zu customers exceed the limit of %zu", n,
                                (size_t)UINT32_MAX);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = kseg_int64_order_key(gathered[i].customer_id);
        order[i] = (uint32_t)i;
    }
    /* Ids are unique (each customer has one owner), so id order is a total order. */
    kseg_radix_sort_pairs(keys, order, n, scratch_keys, scratch_order, histograms, threads);
    for (size_t i = 0; i < n; i++)
        sorted[i] = gathered[order[i]];
    status = kseg_rfm_table_from_records(aggregator, sorted, n, table, error);
    /* Every rank computed the same thing; only running out of memory can differ. */
    status = agree_all(comm, status, error);

done:
    if (status) {
        /* Keep the statistics (they say why nothing was left), drop the columns. */
        kseg_rfm_table kept = *table;
        kseg_rfm_table_init(table);
        table->total_rows = kept.total_rows;
        table->total_amount = kept.total_amount;
        table->frequency_mode = kept.frequency_mode;
        table->bins = kept.bins;
        table->n_stages = kept.n_stages;
        memcpy(table->stages, kept.stages, sizeof kept.stages);
        kseg_rfm_table_destroy(&kept);
    }
    kseg_rfm_aggregator_destroy(aggregator);
    owner_rows_free(&received);
    free(send);
    free(send_bytes);
    free(recv_bytes);
    free(cursors);
    free(lengths);
    free(reports);
    free(destinations);
    free(records);
    free(gathered);
    free(sorted);
    free(keys);
    free(scratch_keys);
    free(order);
    free(scratch_order);
    free(histograms);
    return status;
}
