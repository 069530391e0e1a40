/* The per-customer aggregation kernel: stable parallel partitioning of a block by customer hash,
 * then lock-free accumulation where each thread owns whole partitions. Tables are open-addressing
 * with linear probing, kept at most half full, and grow only between batches of rows. Dense ids
 * go to a table indexed by id instead, each thread owning a range of it. */
#include <omp.h>
#include <sys/mman.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"

/* ---------------------------------------------------------------- state */

/* Dense tables of at least this many bytes are mapped directly, zeroed by the kernel, and asked
 * for transparent huge pages: rows reach their customers in random order, so with 4 KiB pages
 * nearly every row would also miss the TLB and first-touch a page of its own. */
#define DENSE_MAPPED_BYTES ((size_t)4 << 20)

static kseg_agg_dense_customer *dense_table_alloc(size_t span)
{
    size_t bytes = span * sizeof(kseg_agg_dense_customer);
    if (bytes < DENSE_MAPPED_BYTES)
        return calloc(span, sizeof(kseg_agg_dense_customer));
    void *table = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(table, bytes, MADV_HUGEPAGE); /* a hint: without it the table just has small pages */
#endif
    return table;
}

static void dense_table_free(kseg_agg_dense_customer *table, size_t span)
{
    if (!table)
        return;
    size_t bytes = span * sizeof(kseg_agg_dense_customer);
    if (bytes < DENSE_MAPPED_BYTES)
        free(table);
    else
        munmap(table, bytes);
}

int kseg_agg_state_init(kseg_agg_state *state, size_t n_partitions, int track_keys, int dedupe)
{
    memset(state, 0, sizeof *state);
    state->partitions = calloc(n_partitions ? n_partitions : 1, sizeof *state->partitions);
    if (!state->partitions)
        return -1;
    state->n_partitions = n_partitions ? n_partitions : 1;
    state->track_keys = track_keys != 0;
    state->dedupe = dedupe != 0;
    return 0;
}

void kseg_agg_state_destroy(kseg_agg_state *state)
{
    if (state->partitions)
        for (size_t p = 0; p < state->n_partitions; p++) {
            kseg_agg_partition *partition = &state->partitions[p];
            free(partition->customers);
            free(partition->customer_slots);
            free(partition->keys);
            free(partition->key_log);
            free(partition->row_hashes);
        }
    free(state->partitions);
    dense_table_free(state->dense_table, state->dense_span);
    for (size_t t = 0; t < state->n_dense_logs; t++) {
        free(state->dense_logs[t].keys);
        free(state->dense_logs[t].owned_rows);
    }
    free(state->dense_logs);
    memset(state, 0, sizeof *state);
}

size_t kseg_agg_customer_count(const kseg_agg_state *state)
{
    if (state->dense)
        return state->dense_customers;
    size_t count = 0;
    for (size_t p = 0; p < state->n_partitions; p++)
        count += state->partitions[p].n_customers;
    return count;
}

size_t kseg_agg_state_bytes(const kseg_agg_state *state)
{
    size_t bytes = state->n_partitions * sizeof *state->partitions;
    for (size_t p = 0; p < state->n_partitions; p++) {
        const kseg_agg_partition *partition = &state->partitions[p];
        bytes += partition->customer_capacity * sizeof *partition->customers;
        bytes += partition->customer_slot_count * sizeof *partition->customer_slots;
        bytes += partition->key_slot_count * sizeof *partition->keys;
        bytes += partition->key_log_capacity * sizeof *partition->key_log;
        bytes += partition->row_hash_slot_count * sizeof *partition->row_hashes;
    }
    if (state->dense)
        bytes += state->dense_span * sizeof *state->dense_table;
    for (size_t t = 0; t < state->n_dense_logs; t++)
        bytes += state->dense_logs[t].capacity * sizeof *state->dense_logs[t].keys +
                 state->dense_logs[t].owned_capacity * sizeof *state->dense_logs[t].owned_rows;
    return bytes;
}

void kseg_agg_stage_rows(const kseg_agg_state *state, int64_t stage_rows[KSEG_AGG_STAGE_COUNT])
{
    for (size_t s = 0; s < KSEG_AGG_STAGE_COUNT; s++) {
        stage_rows[s] = state->dense_stage_rows[s];
        for (size_t p = 0; p < state->n_partitions; p++)
            stage_rows[s] += state->partitions[p].stage_rows[s];
    }
}

/* ---------------------------------------------------------------- tables */

static size_t next_power_of_two(size_t value)
{
    size_t power = 16;
    while (power < value)
        power *= 2;
    return power;
}

/* The key set is hashed by customer id (not by the customer's table index) so that the slot of a
 * row still to come can be computed, and prefetched, before its customer is looked up. */
static uint64_t key_hash(int64_t customer_id, int64_t key)
{
    return kseg_mix64((uint64_t)key ^ kseg_mix64((uint64_t)customer_id + 0x9e3779b97f4a7c15ull));
}

static int grow_customer_index(kseg_agg_partition *partition, size_t slot_count)
{
    uint32_t *slots = calloc(slot_count, sizeof *slots);
    if (!slots)
        return -1;
    size_t mask = slot_count - 1;
    for (size_t c = 0; c < partition->n_customers; c++) {
        size_t slot = (size_t)kseg_mix64((uint64_t)partition->customers[c].customer_id) & mask;
        while (slots[slot])
            slot = (slot + 1) & mask;
        slots[slot] = (uint32_t)(c + 1);
    }
    free(partition->customer_slots);
    partition->customer_slots = slots;
    partition->customer_slot_count = slot_count;
    return 0;
}

static int grow_key_set(kseg_agg_partition *partition, size_t slot_count)
{
    kseg_agg_key_entry *entries = calloc(slot_count, sizeof *entries);
    if (!entries)
        return -1;
    size_t mask = slot_count - 1;
    for (size_t i = 0; i < partition->key_slot_count; i++) {
        const kseg_agg_key_entry *entry = &partition->keys[i];
        if (!entry->customer_plus_one)
            continue;
        int64_t customer_id = partition->customers[entry->customer_plus_one - 1].customer_id;
        size_t slot = (size_t)key_hash(customer_id, entry->key) & mask;
        while (entries[slot].customer_plus_one)
            slot = (slot + 1) & mask;
        entries[slot] = *entry;
    }
    free(partition->keys);
    partition->keys = entries;
    partition->key_slot_count = slot_count;
    return 0;
}

static int grow_row_hash_set(kseg_agg_partition *partition, size_t slot_count)
{
    kseg_agg_hash_entry *entries = calloc(slot_count, sizeof *entries);
    if (!entries)
        return -1;
    size_t mask = slot_count - 1;
    for (size_t i = 0; i < partition->row_hash_slot_count; i++) {
        const kseg_agg_hash_entry *entry = &partition->row_hashes[i];
        if (!entry->low)
            continue;
        size_t slot = (size_t)entry->high & mask;
        while (entries[slot].low)
            slot = (slot + 1) & mask;
        entries[slot] = *entry;
    }
    free(partition->row_hashes);
    partition->row_hashes = entries;
    partition->row_hash_slot_count = slot_count;
    return 0;
}

/* Moves the key log into the key set (the logged pairs are distinct); from then on the partition
 * uses the set only. Returns 0 or -1. */
static int hash_key_log(kseg_agg_partition *partition)
{
    if (partition->keys_hashed)
        return 0;
    size_t needed = partition->n_keys + partition->n_key_log;
    if (2 * (needed + 1) > partition->key_slot_count &&
        grow_key_set(partition, next_power_of_two(2 * (needed + 1))))
        return -1;
    size_t mask = partition->key_slot_count - 1;
    for (size_t i = 0; i < partition->n_key_log; i++) {
        const kseg_agg_key_entry *entry = &partition->key_log[i];
        int64_t customer_id = partition->customers[entry->customer_plus_one - 1].customer_id;
        size_t slot = (size_t)key_hash(customer_id, entry->key) & mask;
        while (partition->keys[slot].customer_plus_one)
            slot = (slot + 1) & mask;
        partition->keys[slot] = *entry;
    }
    partition->n_keys += partition->n_key_log;
    free(partition->key_log);
    partition->key_log = NULL;
    partition->n_key_log = partition->key_log_capacity = 0;
    partition->keys_hashed = 1;
    return 0;
}

/* Makes room for `rows` more rows in the worst case (each one a new customer, key and hash). */
static int reserve(kseg_agg_partition *partition, size_t rows, int track_keys, int dedupe)
{
    if (track_keys && hash_key_log(partition))
        return -1;
    size_t customers = partition->n_customers + rows;
    if (customers > partition->customer_capacity) {
        size_t capacity = partition->customer_capacity * 2;
        if (capacity < customers)
            capacity = customers < 64 ? 64 : customers;
        kseg_agg_customer *grown =
            realloc(partition->customers, capacity * sizeof *partition->customers);
        if (!grown)
            return -1;
        partition->customers = grown;
        partition->customer_capacity = capacity;
    }
    if (2 * customers > partition->customer_slot_count &&
        grow_customer_index(partition, next_power_of_two(2 * customers)))
        return -1;
    if (track_keys && 2 * (partition->n_keys + rows) > partition->key_slot_count &&
        grow_key_set(partition, next_power_of_two(2 * (partition->n_keys + rows))))
        return -1;
    if (dedupe && 2 * (partition->n_row_hashes + rows) > partition->row_hash_slot_count &&
        grow_row_hash_set(partition, next_power_of_two(2 * (partition->n_row_hashes + rows))))
        return -1;
    return 0;
}

static uint32_t find_or_insert_customer(kseg_agg_partition *partition, int64_t customer_id)
{
    size_t mask = partition->customer_slot_count - 1;
    size_t slot = (size_t)kseg_mix64((uint64_t)customer_id) & mask;
    for (;;) {
        uint32_t entry = partition->customer_slots[slot];
        if (!entry)
            break;
        if (partition->customers[entry - 1].customer_id == customer_id)
            return entry - 1;
        slot = (slot + 1) & mask;
    }
    uint32_t index = (uint32_t)partition->n_customers++;
    partition->customer_slots[slot] = index + 1;
    kseg_agg_customer *customer = &partition->customers[index];
    memset(customer, 0, sizeof *customer);
    customer->customer_id = customer_id;
    customer->first_time = INT64_MAX;
    customer->last_time = INT64_MIN;
    return index;
}

/* Inserts (customer, key); returns 1 if it was new. */
static int insert_key(kseg_agg_partition *partition, uint32_t customer, int64_t customer_id,
                      int64_t key)
{
    size_t mask = partition->key_slot_count - 1;
    size_t slot = (size_t)key_hash(customer_id, key) & mask;
    for (;;) {
        kseg_agg_key_entry *entry = &partition->keys[slot];
        if (!entry->customer_plus_one) {
            entry->key = key;
            entry->customer_plus_one = customer + 1;
            partition->n_keys++;
            return 1;
        }
        if (entry->customer_plus_one == customer + 1 && entry->key == key)
            return 0;
        slot = (slot + 1) & mask;
    }
}

/* Inserts a row hash; returns 1 if it was new. */
static int insert_row_hash(kseg_agg_partition *partition, const uint64_t row_hash[2])
{
    uint64_t low = row_hash[0] | 1u; /* bit 0 set: {0, 0} stays the empty marker */
    uint64_t high = row_hash[1];
    size_t mask = partition->row_hash_slot_count - 1;
    size_t slot = (size_t)high & mask;
    for (;;) {
        kseg_agg_hash_entry *entry = &partition->row_hashes[slot];
        if (!entry->low) {
            entry->low = low;
            entry->high = high;
            partition->n_row_hashes++;
            return 1;
        }
        if (entry->low == low && entry->high == high)
            return 0;
        slot = (slot + 1) & mask;
    }
}

/* A customer record is 72 bytes, so it always straddles two cache lines (the second holds
 * reach, which every row reads): both are fetched, for writing, or every owned row would still
 * wait for the second one. */
static inline __attribute__((always_inline)) void
prefetch_customer_lines(const kseg_agg_customer *customer)
{
    __builtin_prefetch(customer, 1);
    __builtin_prefetch((const char *)(customer + 1) - 1, 1);
}

/* ---------------------------------------------------------------- accumulation */

static inline void add_record(kseg_agg_partition *partition, const kseg_agg_record *record,
                              int track_keys, int dedupe)
{
    uint32_t index = find_or_insert_customer(partition, record->customer_id);
    kseg_agg_customer *customer = &partition->customers[index];
    uint32_t stage = record->stage;
    if (dedupe && stage > KSEG_AGG_DEDUPE && !insert_row_hash(partition, record->row_hash))
        stage = KSEG_AGG_DEDUPE;
    partition->stage_rows[stage]++;
    int32_t reach = stage >= KSEG_AGG_KEPT_PURCHASE ? KSEG_AGG_KEPT_PURCHASE : (int32_t)stage;
    if (reach > customer->reach)
        customer->reach = reach;
    if (stage < KSEG_AGG_KEPT_PURCHASE)
        return;
    customer->rows++;
    customer->amount += record->amount;
    if (stage != KSEG_AGG_KEPT_PURCHASE)
        return;
    customer->purchases++;
    if (record->time < customer->first_time)
        customer->first_time = record->time;
    if (record->time > customer->last_time)
        customer->last_time = record->time;
    if (track_keys && insert_key(partition, index, record->customer_id, record->key))
        customer->distinct_keys++;
}

/* Rows ahead whose table slots are prefetched: with a million customers the tables do not fit in
 * cache and nearly every row misses; the lookups of one row depend on each other, but those of
 * different rows do not, so fetching ahead overlaps the misses. The customer record is fetched
 * at half the distance, once its index slot has arrived. */
#define PREFETCH_SLOTS_AHEAD 16
#define PREFETCH_RECORD_AHEAD 8

/* Always inlined: as separate functions without side effects, gcc's interprocedural analysis
 * would find them "pure" and delete the calls, prefetches and all. */
static inline __attribute__((always_inline)) void
prefetch_slots(const kseg_agg_partition *partition, const kseg_agg_record *record, int track_keys,
               int dedupe)
{
    size_t slot = (size_t)kseg_mix64((uint64_t)record->customer_id) &
                  (partition->customer_slot_count - 1);
    __builtin_prefetch(&partition->customer_slots[slot]);
    if (track_keys && record->stage == KSEG_AGG_KEPT_PURCHASE)
        __builtin_prefetch(&partition->keys[key_hash(record->customer_id, record->key) &
                                            (partition->key_slot_count - 1)]);
    if (dedupe && record->stage > KSEG_AGG_DEDUPE)
        __builtin_prefetch(
            &partition->row_hashes[record->row_hash[1] & (partition->row_hash_slot_count - 1)]);
}

static inline __attribute__((always_inline)) void
prefetch_customer(const kseg_agg_partition *partition, const kseg_agg_record *record)
{
    size_t slot = (size_t)kseg_mix64((uint64_t)record->customer_id) &
                  (partition->customer_slot_count - 1);
    uint32_t entry = partition->customer_slots[slot];
    if (entry)
        prefetch_customer_lines(&partition->customers[entry - 1]);
}

/* Adds a partition's records (row order) in batches, growing the tables before each batch. The
 * partition is worked on as a copy on this thread's stack: neighbouring partitions belonging to
 * other threads share cache lines with it, and its counters change on every row. */
static int add_partition_records(kseg_agg_partition *shared, const kseg_agg_record *records,
                                 size_t rows, int track_keys, int dedupe)
{
    kseg_agg_partition partition = *shared;
    int status = 0;
    for (size_t begin = 0; begin < rows; begin += KSEG_AGG_RESERVE_BATCH) {
        size_t end = begin + KSEG_AGG_RESERVE_BATCH < rows ? begin + KSEG_AGG_RESERVE_BATCH : rows;
        if (reserve(&partition, end - begin, track_keys, dedupe)) {
            status = -1;
            break;
        }
        /* Prefetches never cross into the next batch: its tables may still grow. */
        for (size_t i = begin; i < end && i < begin + PREFETCH_SLOTS_AHEAD; i++)
            prefetch_slots(&partition, &records[i], track_keys, dedupe);
        for (size_t i = begin; i < end; i++) {
            if (i + PREFETCH_SLOTS_AHEAD < end)
                prefetch_slots(&partition, &records[i + PREFETCH_SLOTS_AHEAD], track_keys,
                               dedupe);
            if (i + PREFETCH_RECORD_AHEAD < end)
                prefetch_customer(&partition, &records[i + PREFETCH_RECORD_AHEAD]);
            add_record(&partition, &records[i], track_keys, dedupe);
        }
    }
    /* Written back on failure too: the grown tables belong to the state, which destroy frees. */
    *shared = partition;
    return status;
}

int kseg_agg_add_block(kseg_agg_state *state, const kseg_agg_record *records, size_t rows,
                       int n_threads, kseg_agg_record *partitioned, size_t *histograms,
                       size_t *offsets)
{
    int moved = kseg_agg_to_partitions(state);
    if (moved)
        return moved;
    const size_t n_partitions = state->n_partitions;
    if (n_threads < 1)
        n_threads = 1;
    int failed = 0;
#pragma omp parallel num_threads(n_threads)
    {
        int thread = omp_get_thread_num();
        int team = omp_get_num_threads();
        /* Stable counting sort by partition: thread t counts its contiguous range, partitions are
           laid out partition-major and thread-minor, so each partition keeps row order. */
        size_t begin = rows * (size_t)thread / (size_t)team;
        size_t end = rows * (size_t)(thread + 1) / (size_t)team;
        size_t *histogram = histograms + (size_t)thread * n_partitions;
        memset(histogram, 0, n_partitions * sizeof *histogram);
        for (size_t i = begin; i < end; i++)
            if (records[i].stage != KSEG_AGG_NO_CUSTOMER)
                histogram[kseg_agg_partition_of(records[i].customer_id, n_partitions)]++;
#pragma omp barrier
#pragma omp single
        {
            size_t running = 0;
            for (size_t p = 0; p < n_partitions; p++) {
                offsets[p] = running;
                for (int t = 0; t < team; t++) {
                    size_t count = histograms[(size_t)t * n_partitions + p];
                    histograms[(size_t)t * n_partitions + p] = running;
                    running += count;
                }
            }
            offsets[n_partitions] = running;
        }
        for (size_t i = begin; i < end; i++)
            if (records[i].stage != KSEG_AGG_NO_CUSTOMER)
                partitioned[histogram[kseg_agg_partition_of(records[i].customer_id,
                                                            n_partitions)]++] = records[i];
#pragma omp barrier
        /* Each partition belongs to one thread for the whole block: no two threads ever touch
           the same customer, and the schedule cannot change any result. */
#pragma omp for schedule(dynamic, 1)
        for (size_t p = 0; p < n_partitions; p++) {
            if (add_partition_records(&state->partitions[p], partitioned + offsets[p],
                                      offsets[p + 1] - offsets[p], state->track_keys,
                                      state->dedupe)) {
#pragma omp atomic write
                failed = 1;
            }
        }
    }
    return failed ? -1 : 0;
}

int kseg_agg_add_block_reference(kseg_agg_state *state, const kseg_agg_record *records,
                                 size_t rows)
{
    int moved = kseg_agg_to_partitions(state);
    if (moved)
        return moved;
    for (size_t i = 0; i < rows; i++) {
        if (records[i].stage == KSEG_AGG_NO_CUSTOMER)
            continue;
        kseg_agg_partition *partition =
            &state->partitions[kseg_agg_partition_of(records[i].customer_id, state->n_partitions)];
        if (reserve(partition, 1, state->track_keys, state->dedupe))
            return -1;
        add_record(partition, &records[i], state->track_keys, state->dedupe);
    }
    return 0;
}

/* ---------------------------------------------------------------- the column path */

/* The index of customer_id (hash = kseg_mix64(customer_id)) in the partition, added if new; the
 * tables grow here, when an insertion would make them more than half full. Returns 0 or -1. */
static int column_customer(kseg_agg_partition *partition, int64_t customer_id, uint64_t hash,
                           uint32_t *index_out)
{
    for (;;) {
        if (partition->customer_slot_count) {
            size_t mask = partition->customer_slot_count - 1;
            size_t slot = (size_t)hash & mask;
            for (;;) {
                uint32_t entry = partition->customer_slots[slot];
                if (!entry)
                    break;
                if (partition->customers[entry - 1].customer_id == customer_id) {
                    *index_out = entry - 1;
                    return 0;
                }
                slot = (slot + 1) & mask;
            }
            if (2 * (partition->n_customers + 1) <= partition->customer_slot_count &&
                partition->n_customers < partition->customer_capacity) {
                uint32_t index = (uint32_t)partition->n_customers++;
                partition->customer_slots[slot] = index + 1;
                kseg_agg_customer *customer = &partition->customers[index];
                memset(customer, 0, sizeof *customer);
                customer->customer_id = customer_id;
                customer->first_time = INT64_MAX;
                customer->last_time = INT64_MIN;
                *index_out = index;
                return 0;
            }
        }
        if (reserve(partition, 1, 0, 0))
            return -1;
    }
}

/* Inserts (customer, key) into the key set; *added receives 1 if it was new. Returns 0 or -1. */
static int column_key(kseg_agg_partition *partition, uint32_t customer, int64_t customer_id,
                      int64_t key, int *added)
{
    uint64_t hash = key_hash(customer_id, key);
    for (;;) {
        if (partition->key_slot_count) {
            size_t mask = partition->key_slot_count - 1;
            size_t slot = (size_t)hash & mask;
            for (;;) {
                kseg_agg_key_entry *entry = &partition->keys[slot];
                if (!entry->customer_plus_one)
                    break;
                if (entry->customer_plus_one == customer + 1 && entry->key == key) {
                    *added = 0;
                    return 0;
                }
                slot = (slot + 1) & mask;
            }
            if (2 * (partition->n_keys + 1) <= partition->key_slot_count) {
                kseg_agg_key_entry *entry = &partition->keys[slot];
                entry->key = key;
                entry->customer_plus_one = customer + 1;
                partition->n_keys++;
                *added = 1;
                return 0;
            }
        }
        if (grow_key_set(partition, next_power_of_two(2 * (partition->n_keys + 1))))
            return -1;
    }
}

/* Rows ahead (of the whole block, owned or not) whose slots are prefetched; the customer record
 * is fetched at half the distance. */
#ifndef COLUMN_PREFETCH_AHEAD
#define COLUMN_PREFETCH_AHEAD 24
#endif
#ifndef COLUMN_RECORD_AHEAD
#define COLUMN_RECORD_AHEAD 12
#endif

/* kseg_agg_add_columns in the partitions. */
static int add_columns_partitioned(kseg_agg_state *state, const kseg_agg_columns *columns,
                                   size_t rows, int n_threads)
{
    const size_t n_partitions = state->n_partitions;
    const int track_keys = state->track_keys;
    const int64_t *customer_ids = columns->customer_id;
    const int64_t *times = columns->time;
    const double *amounts = columns->amount;
    const int64_t *keys = columns->key;
    const uint8_t *stages = columns->stage;
    if (n_threads < 1)
        n_threads = 1;
    if ((size_t)n_threads > n_partitions)
        n_threads = (int)n_partitions;
    int failed = 0;
#pragma omp parallel num_threads(n_threads)
    {
        const size_t thread = (size_t)omp_get_thread_num();
        const size_t team = (size_t)omp_get_num_threads();
        /* This thread owns partitions [first, last): a fixed split, and each customer's rows are
           added in row order whatever it is. */
        const size_t first = n_partitions * thread / team;
        const size_t last = n_partitions * (thread + 1) / team;
        kseg_agg_partition *partitions = state->partitions;

        int64_t current_id = 0;
        int have_current = 0, current_owned = 0, key_known = 0;
        kseg_agg_partition *partition = NULL;
        uint32_t index = 0;
        int64_t known_key = 0;
        for (size_t i = 0; i < rows; i++) {
            /* Prefetch for a row ahead where a new customer (or key) starts. */
            size_t ahead = i + COLUMN_PREFETCH_AHEAD;
            if (ahead < rows && stages[ahead] != KSEG_AGG_NO_CUSTOMER) {
                int64_t id = customer_ids[ahead];
                int new_customer = id != customer_ids[ahead - 1];
                int new_key = track_keys && stages[ahead] == KSEG_AGG_KEPT_PURCHASE &&
                              (new_customer || keys[ahead] != keys[ahead - 1]);
                if (new_customer || new_key) {
                    uint64_t hash = kseg_mix64((uint64_t)id);
                    size_t p = (size_t)(((hash >> 32) * (uint64_t)n_partitions) >> 32);
                    if (p >= first && p < last) {
                        const kseg_agg_partition *target = &partitions[p];
                        if (new_customer && target->customer_slot_count)
                            __builtin_prefetch(&target->customer_slots
                                                   [hash & (target->customer_slot_count - 1)]);
                        if (new_key && target->keys_hashed && target->key_slot_count)
                            __builtin_prefetch(&target->keys[key_hash(id, keys[ahead]) &
                                                             (target->key_slot_count - 1)]);
                    }
                }
            }
            size_t near = i + COLUMN_RECORD_AHEAD;
            if (near < rows && stages[near] != KSEG_AGG_NO_CUSTOMER &&
                customer_ids[near] != customer_ids[near - 1]) {
                uint64_t hash = kseg_mix64((uint64_t)customer_ids[near]);
                size_t p = (size_t)(((hash >> 32) * (uint64_t)n_partitions) >> 32);
                if (p >= first && p < last && partitions[p].customer_slot_count) {
                    const kseg_agg_partition *target = &partitions[p];
                    uint32_t entry =
                        target->customer_slots[hash & (target->customer_slot_count - 1)];
                    if (entry)
                        prefetch_customer_lines(&target->customers[entry - 1]);
                }
            }

            uint32_t stage = stages[i];
            if (stage == KSEG_AGG_NO_CUSTOMER)
                continue;
            int64_t id = customer_ids[i];
            if (!have_current || id != current_id) {
                uint64_t hash = kseg_mix64((uint64_t)id);
                size_t p = (size_t)(((hash >> 32) * (uint64_t)n_partitions) >> 32);
                have_current = 1;
                current_id = id;
                key_known = 0;
                current_owned = p >= first && p < last;
                if (!current_owned)
                    continue;
                partition = &partitions[p];
                if (column_customer(partition, id, hash, &index)) {
#pragma omp atomic write
                    failed = 1;
                    break;
                }
            } else if (!current_owned)
                continue;
            kseg_agg_customer *customer = &partition->customers[index];
            partition->stage_rows[stage]++;
            int32_t reach = stage >= KSEG_AGG_KEPT_PURCHASE ? KSEG_AGG_KEPT_PURCHASE
                                                           : (int32_t)stage;
            if (reach > customer->reach)
                customer->reach = reach;
            if (stage < KSEG_AGG_KEPT_PURCHASE)
                continue;
            customer->rows++;
            customer->amount += amounts[i];
            if (stage != KSEG_AGG_KEPT_PURCHASE)
                continue;
            customer->purchases++;
            int64_t time = times[i];
            if (time < customer->first_time)
                customer->first_time = time;
            if (time > customer->last_time)
                customer->last_time = time;
            if (!track_keys)
                continue;
            int64_t key = keys[i];
            if (key_known && key == known_key)
                continue; /* the previous purchase of this customer had it: in the set */
            if (!partition->keys_hashed) {
                if (customer->distinct_keys == 0 || key > customer->max_key) {
                    if (partition->n_key_log == partition->key_log_capacity) {
                        size_t capacity = partition->key_log_capacity
                                              ? 2 * partition->key_log_capacity
                                              : 256;
                        kseg_agg_key_entry *grown =
                            realloc(partition->key_log, capacity * sizeof *grown);
                        if (!grown) {
#pragma omp atomic write
                            failed = 1;
                            break;
                        }
                        partition->key_log = grown;
                        partition->key_log_capacity = capacity;
                    }
                    kseg_agg_key_entry *entry = &partition->key_log[partition->n_key_log++];
                    entry->key = key;
                    entry->customer_plus_one = index + 1;
                    entry->unused = 0;
                    customer->distinct_keys++;
                    customer->max_key = key;
                    key_known = 1;
                    known_key = key;
                    continue;
                }
                if (key == customer->max_key) {
                    key_known = 1;
                    known_key = key;
                    continue;
                }
                /* A key below the customer's largest: only the set can tell. */
                if (hash_key_log(partition)) {
#pragma omp atomic write
                    failed = 1;
                    break;
                }
            }
            if (customer->distinct_keys == 0 || key > customer->max_key)
                customer->max_key = key;
            int added = 0;
            if (column_key(partition, index, id, key, &added)) {
#pragma omp atomic write
                failed = 1;
                break;
            }
            /* The table may have moved: customer is not used past this point. */
            if (added)
                partition->customers[index].distinct_keys++;
            key_known = 1;
            known_key = key;
        }
    }
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- the dense layout */

int kseg_agg_to_partitions(kseg_agg_state *state)
{
    state->layout_decided = 1;
    if (!state->dense)
        return 0;
    /* Without the key log the partitions could not tell a known pair from a new one. */
    if (state->restartable && state->track_keys && state->dense_customers)
        return KSEG_AGG_RESTART;
    /* From here on the state is in the partitions, also if this fails: destroy frees both. */
    state->dense = 0;
    const size_t n_partitions = state->n_partitions;
    for (size_t d = 0; d < state->dense_span; d++) {
        const kseg_agg_dense_customer *dense = &state->dense_table[d];
        if (!dense->reach)
            continue;
        int64_t customer_id = (int64_t)((uint64_t)state->dense_base + d);
        uint64_t hash = kseg_mix64((uint64_t)customer_id);
        kseg_agg_partition *partition =
            &state->partitions[kseg_agg_partition_of(customer_id, n_partitions)];
        uint32_t index;
        if (column_customer(partition, customer_id, hash, &index))
            return -1;
        kseg_agg_customer *customer = &partition->customers[index];
        customer->first_time = dense->first_time;
        customer->last_time = dense->last_time;
        customer->amount = dense->amount;
        customer->rows = dense->rows;
        customer->purchases = dense->purchases;
        customer->distinct_keys = dense->distinct_keys;
        customer->max_key = dense->max_key;
        customer->reach = dense->reach;
    }
    for (size_t s = 0; s < KSEG_AGG_STAGE_COUNT; s++) {
        state->partitions[0].stage_rows[s] += state->dense_stage_rows[s];
        state->dense_stage_rows[s] = 0;
    }
    /* The logged pairs are distinct, and the partitions are still in their key-log mode (they
       were empty): each pair goes into its customer's partition log. */
    for (size_t t = 0; t < state->n_dense_logs; t++) {
        kseg_agg_dense_log *log = &state->dense_logs[t];
        for (size_t k = 0; k < log->n_keys; k++) {
            int64_t customer_id = log->keys[k].customer_id;
            kseg_agg_partition *partition =
                &state->partitions[kseg_agg_partition_of(customer_id, n_partitions)];
            uint32_t index;
            if (column_customer(partition, customer_id, kseg_mix64((uint64_t)customer_id),
                                &index))
                return -1;
            if (partition->n_key_log == partition->key_log_capacity) {
                size_t capacity =
                    partition->key_log_capacity ? 2 * partition->key_log_capacity : 256;
                kseg_agg_key_entry *grown = realloc(partition->key_log, capacity * sizeof *grown);
                if (!grown)
                    return -1;
                partition->key_log = grown;
                partition->key_log_capacity = capacity;
            }
            kseg_agg_key_entry *entry = &partition->key_log[partition->n_key_log++];
            entry->key = log->keys[k].key;
            entry->customer_plus_one = index + 1;
            entry->unused = 0;
        }
        free(log->keys);
        log->keys = NULL;
        log->n_keys = log->capacity = 0;
    }
    dense_table_free(state->dense_table, state->dense_span);
    state->dense_table = NULL;
    state->dense_span = 0;
    state->dense_customers = 0;
    return 0;
}

/* The distinct customer ids of a block's rows (those with a customer), all of which lie in
 * [lowest, lowest + span), counted in a bitmap of span bits (256 KiB at most). Returns the count,
 * or SIZE_MAX when out of memory. */
static size_t count_block_customers(const kseg_agg_columns *columns, size_t rows, int64_t lowest,
                                    size_t span)
{
    size_t words = (span + 63) / 64;
    uint64_t *seen = calloc(words, sizeof *seen);
    if (!seen)
        return SIZE_MAX;
    size_t count = 0;
    for (size_t i = 0; i < rows; i++) {
        if (columns->stage[i] == KSEG_AGG_NO_CUSTOMER)
            continue;
        uint64_t offset = (uint64_t)columns->customer_id[i] - (uint64_t)lowest;
        uint64_t bit = (uint64_t)1 << (offset % 64);
        count += !(seen[offset / 64] & bit);
        seen[offset / 64] |= bit;
    }
    free(seen);
    return count;
}

/* Whether a dense table of span ids suits the state after the block: always up to
 * KSEG_AGG_DENSE_MAX_SPAN, and up to KSEG_AGG_DENSE_WIDE_SPAN while there are at least
 * span / KSEG_AGG_DENSE_IDS_PER_CUSTOMER customers (the block's distinct ids, or the table's
 * customers if more; both are lower bounds of the customers after the block). Sets *failed when
 * out of memory. */
static int dense_span_fits(const kseg_agg_state *state, const kseg_agg_columns *columns,
                           size_t rows, int64_t lowest, uint64_t span, int *failed)
{
    if (span == 0) /* the whole int64 range: 2^64 wrapped around */
        return 0;
    if (span <= KSEG_AGG_DENSE_MAX_SPAN)
        return 1;
    if (span > KSEG_AGG_DENSE_WIDE_SPAN)
        return 0;
    size_t customers = count_block_customers(columns, rows, lowest, (size_t)span);
    if (customers == SIZE_MAX) {
        *failed = 1;
        return 0;
    }
    if (state->dense && state->dense_customers > customers)
        customers = state->dense_customers;
    return span <= (uint64_t)customers * KSEG_AGG_DENSE_IDS_PER_CUSTOMER;
}

/* Chooses the layout for a block whose customer ids (of rows with a customer) lie in
 * [lowest, highest]: starts or widens the dense table while the range fits (dense_span_fits),
 * and otherwise moves the state into the partitions. Returns 0, -1, or KSEG_AGG_RESTART
 * (kseg_agg_to_partitions). */
static int dense_prepare(kseg_agg_state *state, const kseg_agg_columns *columns, size_t rows,
                         int64_t lowest, int64_t highest, int n_threads)
{
    if (state->layout_decided && !state->dense)
        return 0;
    if (state->dense) {
        if (state->dense_base < lowest)
            lowest = state->dense_base;
        int64_t top = (int64_t)((uint64_t)state->dense_base + state->dense_span - 1);
        if (top > highest)
            highest = top;
    }
    /* In unsigned arithmetic: the difference of two int64 can exceed INT64_MAX. */
    uint64_t span = (uint64_t)highest - (uint64_t)lowest + 1;
    /* A block inside the table's range needs no new decision. */
    const int same_range = state->dense && lowest == state->dense_base && span == state->dense_span;
    int failed = 0;
    if (!same_range && !dense_span_fits(state, columns, rows, lowest, span, &failed))
        return failed ? -1 : kseg_agg_to_partitions(state);
    state->layout_decided = 1;
    if ((size_t)n_threads > state->n_dense_logs) {
        kseg_agg_dense_log *logs =
            realloc(state->dense_logs, (size_t)n_threads * sizeof *state->dense_logs);
        if (!logs)
            return -1;
        memset(logs + state->n_dense_logs, 0,
               ((size_t)n_threads - state->n_dense_logs) * sizeof *logs);
        state->dense_logs = logs;
        state->n_dense_logs = (size_t)n_threads;
    }
    if (same_range)
        return 0;
    if (span > KSEG_AGG_DENSE_MAX_SPAN) {
        /* A wide table gets a sixteenth of its span of slack on either side (within
           KSEG_AGG_DENSE_WIDE_SPAN and the int64 range): ids drawn from a fixed range usually
           reach its ends only over several blocks, and each widening would copy the table and
           fault in a new one. Slack that no id reaches is never touched. */
        uint64_t slack = span / 16;
        if (slack > (KSEG_AGG_DENSE_WIDE_SPAN - span) / 2)
            slack = (KSEG_AGG_DENSE_WIDE_SPAN - span) / 2;
        uint64_t below = (uint64_t)lowest - (uint64_t)INT64_MIN; /* ids below lowest */
        uint64_t above = (uint64_t)INT64_MAX - (uint64_t)highest;
        uint64_t low_slack = below < slack ? below : slack;
        uint64_t high_slack = above < slack ? above : slack;
        lowest = (int64_t)((uint64_t)lowest - low_slack);
        span += low_slack + high_slack;
    }
    /* Zeroed on allocation (calloc or the kernel): the pages of ids never named are never
       touched. */
    kseg_agg_dense_customer *table = dense_table_alloc((size_t)span);
    if (!table)
        return -1;
    if (state->dense)
        memcpy(table + ((uint64_t)state->dense_base - (uint64_t)lowest), state->dense_table,
               state->dense_span * sizeof *table);
    dense_table_free(state->dense_table, state->dense_span);
    state->dense_table = table;
    state->dense_base = lowest;
    state->dense_span = (size_t)span;
    state->dense = 1;
    return 0;
}

/* Rows ahead whose customer entry is prefetched in the dense layout. A wide table lives in
 * memory, not cache: on the 1e7-row benchmark log (one thread, blocks in memory) 64 rows took the
 * aggregation from 0.158-0.163 s (16 rows) to 0.138-0.142 s; 128 rows gave 0.144-0.146 s. */
#ifndef DENSE_PREFETCH_AHEAD
#define DENSE_PREFETCH_AHEAD 64
#endif

/* One thread's pass over a block in the dense layout: adds, in row order, the rows whose customer
 * sits at dense offsets [first, end), and appends each new (customer, key) pair to log unless
 * keep_log is 0 (a restartable state). With owned_rows (n_owned of them, ascending) only those
 * rows are visited, all of them owned and with a customer; without, every row of the block is,
 * and the others skipped. Stops before the first purchase whose key is below its customer's
 * largest (only a set can tell whether it is new) and returns that row; returns rows when every
 * owned row was added, and sets *failed when the key log could not grow. */
static size_t add_columns_dense_range(kseg_agg_state *state, const kseg_agg_columns *columns,
                                      size_t rows, size_t first, size_t end,
                                      const uint32_t *owned_rows, size_t n_owned,
                                      kseg_agg_dense_log *log, int keep_log,
                                      int64_t *stage_rows_out, size_t *new_customers,
                                      int *failed)
{
    const int track_keys = state->track_keys;
    const uint64_t owned = end - first;
    kseg_agg_dense_customer *table = state->dense_table + first;
    const int64_t *customer_ids = columns->customer_id;
    const int64_t *times = columns->time;
    const double *amounts = columns->amount;
    const int64_t *keys = columns->key;
    const uint8_t *stages = columns->stage;
    const uint64_t offset_base = (uint64_t)state->dense_base + first;
    int64_t stage_rows[KSEG_AGG_STAGE_COUNT] = {0}; /* local: no aliasing with the table */
    size_t added_customers = 0;
    size_t stop = rows;
    const size_t visits = owned_rows ? n_owned : rows;
    const size_t prefetch_end = visits > DENSE_PREFETCH_AHEAD ? visits - DENSE_PREFETCH_AHEAD : 0;
    for (size_t visit = 0; visit < visits; visit++) {
        /* The entry of a row ahead, whatever its stage: an address inside the owned range is
           all a prefetch needs. */
        if (visit < prefetch_end) {
            size_t row_ahead = owned_rows ? owned_rows[visit + DENSE_PREFETCH_AHEAD]
                                          : visit + DENSE_PREFETCH_AHEAD;
            uint64_t ahead = (uint64_t)customer_ids[row_ahead] - offset_base;
            if (ahead < owned)
                __builtin_prefetch(&table[ahead], 1);
        }
        const size_t i = owned_rows ? owned_rows[visit] : visit;
        uint64_t offset = (uint64_t)customer_ids[i] - offset_base;
        uint32_t stage = stages[i];
        if (offset >= owned || stage == KSEG_AGG_NO_CUSTOMER)
            continue;
        kseg_agg_dense_customer *customer = &table[offset];
        int new_key = 0;
        int64_t key = 0;
        if (track_keys && stage == KSEG_AGG_KEPT_PURCHASE) {
            key = keys[i];
            if (!customer->distinct_keys)
                new_key = 1;
            else if (key != customer->max_key) {
                /* Checked before anything of the row is added: a key below the customer's
                   largest needs the set, and the partitions take the row from here. */
                if (key < customer->max_key) {
                    stop = i;
                    break;
                }
                new_key = 1;
            }
        }
        int32_t reach =
            stage >= KSEG_AGG_KEPT_PURCHASE ? KSEG_AGG_KEPT_PURCHASE : (int32_t)stage;
        if (reach > customer->reach) {
            if (!customer->reach) { /* the id's first row */
                customer->first_time = INT64_MAX;
                customer->last_time = INT64_MIN;
                added_customers++;
            }
            customer->reach = reach;
        }
        stage_rows[stage]++;
        if (stage < KSEG_AGG_KEPT_PURCHASE)
            continue;
        customer->rows++;
        customer->amount += amounts[i];
        if (stage != KSEG_AGG_KEPT_PURCHASE)
            continue;
        customer->purchases++;
        int64_t time = times[i];
        if (time < customer->first_time)
            customer->first_time = time;
        if (time > customer->last_time)
            customer->last_time = time;
        if (!new_key)
            continue;
        customer->distinct_keys++;
        customer->max_key = key;
        if (!keep_log)
            continue;
        if (log->n_keys == log->capacity) {
            size_t capacity = log->capacity ? 2 * log->capacity : 4096;
            kseg_agg_dense_key *grown = realloc(log->keys, capacity * sizeof *grown);
            if (!grown) {
                *failed = 1;
                stop = rows;
                break;
            }
            log->keys = grown;
            log->capacity = capacity;
        }
        log->keys[log->n_keys].key = key;
        log->keys[log->n_keys].customer_id = (int64_t)(offset_base + offset);
        log->n_keys++;
    }
    for (size_t s = 0; s < KSEG_AGG_STAGE_COUNT; s++)
        stage_rows_out[s] += stage_rows[s];
    *new_customers = added_customers;
    return stop;
}

/* Threads that share a dense pass (a larger team adds nothing on one node's memory bus). */
#define DENSE_MAX_TEAM 256

/* The first dense offset thread `thread` of team owns: floor(span * thread / team), a fixed split
 * of the table, computed without overflowing span * thread. */
static size_t dense_split(size_t span, size_t thread, size_t team)
{
    return span / team * thread + span % team * thread / team;
}

int kseg_agg_add_columns(kseg_agg_state *state, const kseg_agg_columns *columns, size_t rows,
                         int n_threads)
{
    if (state->dedupe)
        return -1;
    if (n_threads < 1)
        n_threads = 1;
    if (rows == 0)
        return 0;
    if (!state->layout_decided || state->dense) {
        const int64_t *customer_ids = columns->customer_id;
        const uint8_t *stages = columns->stage;
        int64_t lowest = INT64_MAX, highest = INT64_MIN;
        size_t customer_rows = 0;
#pragma omp parallel for schedule(static) num_threads(n_threads) \
    reduction(min : lowest) reduction(max : highest) reduction(+ : customer_rows)
        for (size_t i = 0; i < rows; i++)
            if (stages[i] != KSEG_AGG_NO_CUSTOMER) {
                int64_t id = customer_ids[i];
                lowest = id < lowest ? id : lowest;
                highest = id > highest ? id : highest;
                customer_rows++;
            }
        if (customer_rows == 0)
            return 0; /* nothing to add, and nothing to decide the layout by */
        int prepared = dense_prepare(state, columns, rows, lowest, highest, n_threads);
        if (prepared)
            return prepared;
    }
    if (!state->dense)
        return add_columns_partitioned(state, columns, rows, n_threads);

    const size_t span = state->dense_span;
    /* Each thread's results in its own slot, added up after the region (no lock). */
    size_t stops[DENSE_MAX_TEAM], new_customers[DENSE_MAX_TEAM];
    int64_t stage_rows[DENSE_MAX_TEAM][KSEG_AGG_STAGE_COUNT];
    int thread_failed[DENSE_MAX_TEAM];
    int team_size = n_threads < DENSE_MAX_TEAM ? n_threads : DENSE_MAX_TEAM;
    /* With several threads, each first lists the rows it owns, without a branch, and then
       visits only those: a test of every row against the thread's id range would be a branch
       taken at random (half the time with 2 threads), which on the 1e7-row benchmark log cost
       more than writing the lists. The lists are grown here, between blocks. */
    const int list_rows = team_size > 1 && rows <= UINT32_MAX;
    for (int t = 0; list_rows && t < team_size; t++) {
        kseg_agg_dense_log *log = &state->dense_logs[t];
        if (log->owned_capacity < rows) {
            uint32_t *grown = realloc(log->owned_rows, rows * sizeof *grown);
            if (!grown)
                return -1;
            log->owned_rows = grown;
            log->owned_capacity = rows;
        }
    }
#pragma omp parallel num_threads(team_size)
    {
        const size_t thread = (size_t)omp_get_thread_num();
        const size_t team = (size_t)omp_get_num_threads();
        if (thread == 0)
            team_size = (int)team; /* the team actually formed; read after the region */
        memset(stage_rows[thread], 0, sizeof stage_rows[thread]);
        thread_failed[thread] = 0;
        const size_t first = dense_split(span, thread, team);
        const size_t end = dense_split(span, thread + 1, team);
        kseg_agg_dense_log *log = &state->dense_logs[thread];
        /* The team formed may be smaller than asked, never larger: every thread has its list. */
        uint32_t *owned_rows = list_rows && team > 1 ? log->owned_rows : NULL;
        size_t n_owned = 0;
        if (owned_rows) {
            const uint64_t offset_base = (uint64_t)state->dense_base + first;
            const uint64_t owned = end - first;
            for (size_t i = 0; i < rows; i++) {
                owned_rows[n_owned] = (uint32_t)i;
                n_owned += ((uint64_t)columns->customer_id[i] - offset_base < owned) &
                           (columns->stage[i] != KSEG_AGG_NO_CUSTOMER);
            }
        }
        stops[thread] = add_columns_dense_range(
            state, columns, rows, first, end, owned_rows, n_owned, log, !state->restartable,
            stage_rows[thread], &new_customers[thread], &thread_failed[thread]);
    }
    int failed = 0, stopped = 0;
    for (int t = 0; t < team_size; t++) {
        for (size_t s = 0; s < KSEG_AGG_STAGE_COUNT; s++)
            state->dense_stage_rows[s] += stage_rows[t][s];
        state->dense_customers += new_customers[t];
        failed |= thread_failed[t];
        stopped |= stops[t] < rows;
    }
    if (failed)
        return -1;
    if (!stopped)
        return 0;
    if (state->restartable)
        return KSEG_AGG_RESTART;
    /* Some thread met a key below its customer's largest: the partitions take over, and add
       each thread's rows from the one it stopped at, in row order, so every customer's rows are
       still added in row order. The other rows are masked as "no customer" for that pass. */
    uint8_t *remaining = malloc(rows);
    if (!remaining)
        return -1;
    const uint64_t base = (uint64_t)state->dense_base;
    for (size_t i = 0; i < rows; i++) {
        remaining[i] = KSEG_AGG_NO_CUSTOMER;
        if (columns->stage[i] == KSEG_AGG_NO_CUSTOMER)
            continue;
        uint64_t offset = (uint64_t)columns->customer_id[i] - base;
        size_t thread = 0;
        while (thread + 1 < (size_t)team_size &&
               offset >= dense_split(span, thread + 1, (size_t)team_size))
            thread++;
        if (i >= stops[thread])
            remaining[i] = columns->stage[i];
    }
    int status = kseg_agg_to_partitions(state);
    if (!status) {
        kseg_agg_columns rest = *columns;
        rest.stage = remaining;
        status = add_columns_partitioned(state, &rest, rows, n_threads);
    }
    free(remaining);
    return status;
}
