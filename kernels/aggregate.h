/* Per-customer aggregation of transaction rows for the RFM stage: rows are partitioned by a hash
 * of the customer id (stable, in parallel), and each thread then owns whole partitions, each with
 * its own open-addressing customer table, so there is no lock and every customer's rows are added
 * in row order: the sums are bitwise identical for any thread count. Customer ids in a small range
 * skip the hashing: a dense table indexed by id, split among the threads by id range. */
#ifndef KSEG_KERNELS_AGGREGATE_H
#define KSEG_KERNELS_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

/* The fate of a row, in the order of the filtering stages: a row is removed by the first stage
 * that applies. The numbering is the stage order, so the furthest stage any row of a customer
 * reached tells where the customer was lost. */
typedef enum kseg_agg_stage {
    KSEG_AGG_NO_CUSTOMER = 0,    /* no customer id: never reaches the kernel's tables */
    KSEG_AGG_DEDUPE = 1,         /* an exact duplicate of an earlier row (set by the kernel) */
    KSEG_AGG_WHERE = 2,          /* fails a category condition */
    KSEG_AGG_MIN_PRICE = 3,      /* price (or amount) below the minimum */
    KSEG_AGG_RETURNS = 4,        /* a return or cancellation, dropped */
    KSEG_AGG_KEPT_PURCHASE = 5,  /* kept: a purchase */
    KSEG_AGG_KEPT_RETURN = 6,    /* kept for the monetary sum only (returns netted) */
    KSEG_AGG_STAGE_COUNT = 7
} kseg_agg_stage;

/* One row as the kernel sees it, classified by the caller (every stage but dedupe, which needs
 * the rows seen before). 56 bytes. */
typedef struct kseg_agg_record {
    int64_t customer_id;
    int64_t time;         /* seconds since the epoch */
    double amount;
    int64_t key;          /* frequency key (invoice number or day); read only when keys are on */
    uint64_t row_hash[2]; /* hash of every column of the row, the customer id included (equal
                             rows must land in the same partition); read only when dedupe is on */
    uint32_t stage;       /* kseg_agg_stage */
    uint32_t unused;
} kseg_agg_record;

/* A customer's running aggregates. 72 bytes. */
typedef struct kseg_agg_customer {
    int64_t customer_id;
    int64_t first_time;    /* first kept purchase; INT64_MAX while there is none */
    int64_t last_time;     /* last kept purchase; INT64_MIN while there is none */
    double amount;         /* kept amounts (purchases, and returns when netted), in row order */
    int64_t rows;          /* kept rows */
    int64_t purchases;     /* kept purchase rows */
    int64_t distinct_keys; /* distinct keys among kept purchase rows (when keys are on) */
    int64_t max_key;       /* largest of those keys; meaningful while distinct_keys > 0 (kept by
                              the column path only) */
    int32_t reach;         /* furthest stage any row reached (kept rows count as KEPT_PURCHASE) */
    int32_t unused;
} kseg_agg_customer;

/* Entry of the distinct (customer, key) set; customer_plus_one 0 marks an empty slot. */
typedef struct kseg_agg_key_entry {
    int64_t key;
    uint32_t customer_plus_one;
    uint32_t unused;
} kseg_agg_key_entry;

/* Entry of the distinct row-hash set; low always has bit 0 set, so {0, 0} marks an empty slot. */
typedef struct kseg_agg_hash_entry {
    uint64_t low;
    uint64_t high;
} kseg_agg_hash_entry;

/* One partition: its customers (dense, in order of first appearance) behind an open-addressing
 * index, its distinct keys and row hashes, and its per-stage row counts. Tables stay at most half
 * full. */
typedef struct kseg_agg_partition {
    kseg_agg_customer *customers;
    size_t n_customers;
    size_t customer_capacity;
    uint32_t *customer_slots; /* dense index + 1; 0 = empty */
    size_t customer_slot_count;
    kseg_agg_key_entry *keys;
    size_t n_keys;
    size_t key_slot_count;
    /* Until keys_hashed, the column path keeps the distinct (customer, key) pairs as an
       append-only log instead of the set: while each customer's keys arrive in increasing order
       (invoice numbers usually do), a key above the customer's max_key is new and one equal to it
       is not, so no lookup is needed. The first key below its customer's max_key moves the log
       into the set (keys_hashed = 1) for good; the record paths do so before they add. */
    kseg_agg_key_entry *key_log;
    size_t n_key_log;
    size_t key_log_capacity;
    int keys_hashed;
    kseg_agg_hash_entry *row_hashes;
    size_t n_row_hashes;
    size_t row_hash_slot_count;
    int64_t stage_rows[KSEG_AGG_STAGE_COUNT];
} kseg_agg_partition;

/* A customer of the dense table, where customer ids fall in a small range and a customer is found
 * at (id - base) without hashing: the fields of kseg_agg_customer but the id, which the position
 * gives. 64 bytes, one cache line. reach 0 marks an id no row has named; the times are set on the
 * first row. */
typedef struct kseg_agg_dense_customer {
    int64_t first_time;
    int64_t last_time;
    double amount;
    int64_t rows;
    int64_t purchases;
    int64_t distinct_keys;
    int64_t max_key;
    int32_t reach;
    int32_t unused;
} kseg_agg_dense_customer;

/* One thread's key log in the dense layout: the distinct (customer, key) pairs it added, as in
 * kseg_agg_partition's key log but by customer id, which stays valid when the range grows. */
typedef struct kseg_agg_dense_key {
    int64_t key;
    int64_t customer_id;
} kseg_agg_dense_key;

typedef struct kseg_agg_dense_log {
    kseg_agg_dense_key *keys;
    size_t n_keys;
    size_t capacity;
    /* The thread's scratch for one block: the rows whose customer it owns, in row order. */
    uint32_t *owned_rows;
    size_t owned_capacity;
} kseg_agg_dense_log;

/* The aggregation state: n_partitions partitions (fixed for a run; results do not depend on it).
 *
 * The column path starts in the dense layout when the first block's customer ids span at most
 * KSEG_AGG_DENSE_MAX_SPAN ids (a small shop's ids, numbered from some base), or a wider range
 * that is dense enough (KSEG_AGG_DENSE_WIDE_SPAN below): one table indexed by
 * id - base, no hashing, no partition copies, and a table that is already in id order when the
 * run finishes. The state leaves it for the partitions for good (kseg_agg_to_partitions, called
 * by the kernel itself) when a later block widens the range too far, when a purchase's key is
 * below its customer's largest (the pairs are then needed in a set), and before any record-path
 * add. Either layout gives the
 * same per-customer values, bit for bit: each customer's rows are still added in row order. */
typedef struct kseg_agg_state {
    size_t n_partitions;
    int track_keys; /* count distinct record keys per customer */
    int dedupe;     /* remove rows whose row_hash was seen before */
    kseg_agg_partition *partitions;

    /* 0 (as kseg_agg_state_init leaves it): with keys on, the dense layout logs every new
       (customer, key) pair, so that it can move into the partitions at any row. 1: the caller can
       add every block again from the first, so the dense layout logs nothing (on the 1e7-row
       benchmark log the 3.1 million pairs cost a quarter of the dense pass); where the log would
       be needed, the kernel returns KSEG_AGG_RESTART instead (see kseg_agg_add_columns). */
    int restartable;
    int dense;            /* customers live in dense_table, the partitions are empty */
    int layout_decided;   /* the first block with a customer has chosen the layout */
    int64_t dense_base;   /* customer id of dense_table[0] */
    size_t dense_span;    /* ids base .. base + span - 1 */
    size_t dense_customers;
    kseg_agg_dense_customer *dense_table;
    kseg_agg_dense_log *dense_logs; /* [n_dense_logs]: one per thread of the widest team yet */
    size_t n_dense_logs;
    int64_t dense_stage_rows[KSEG_AGG_STAGE_COUNT];
} kseg_agg_state;

/* The id range the dense layout always takes: a 4 MiB table, which stays in cache. */
#define KSEG_AGG_DENSE_MAX_SPAN ((size_t)1 << 16)

/* Wider ranges, up to KSEG_AGG_DENSE_WIDE_SPAN ids (a 128 MiB table at most), are dense too while
 * they hold at most KSEG_AGG_DENSE_IDS_PER_CUSTOMER ids per customer known (the distinct ids of
 * the deciding block, or the table's customers if more), so the table never costs more than
 * 1 KiB per customer. Such tables are mapped with transparent huge pages. On the benchmark log
 * (1e7 rows, a million ids, 169 thousand of them in the first 2^20-row block), one thread,
 * blocks in memory, this took the aggregation from 0.53-0.59 s (the partitions) to 0.20-0.27 s:
 * one cache line per row, found without hashing, no table growth, and no TLB misses. The same
 * table in small pages took 0.30-0.34 s (an earlier attempt with such a table was measured no
 * faster than the partitions under heavy load; bench/RESULTS.md). */
#define KSEG_AGG_DENSE_WIDE_SPAN ((size_t)1 << 21)
#define KSEG_AGG_DENSE_IDS_PER_CUSTOMER 16

/* Partitions used by the engine: enough to spread any thread count, few enough that the
 * per-thread histograms stay small. */
#define KSEG_AGG_PARTITIONS ((size_t)256)

/* Rows added between two capacity checks: tables grow (the only allocation) before each batch of
 * this many rows, never inside the per-row loop, and over-reserve by at most this many entries. */
#define KSEG_AGG_RESERVE_BATCH ((size_t)512)

/* The 64-bit finalizer of splitmix64: a bijection that spreads nearby ids over all bits. */
static inline uint64_t kseg_mix64(uint64_t value)
{
    value ^= value >> 30;
    value *= 0xbf58476d1ce4e5b9ull;
    value ^= value >> 27;
    value *= 0x94d049bb133111ebull;
    value ^= value >> 31;
    return value;
}

/* The partition of a customer: the high half of its hash scaled to n_partitions (table slots use
 * the low bits, so the two choices are independent). */
static inline size_t kseg_agg_partition_of(int64_t customer_id, size_t n_partitions)
{
    uint64_t hash = kseg_mix64((uint64_t)customer_id);
    return (size_t)(((hash >> 32) * (uint64_t)n_partitions) >> 32);
}

/* Sets up empty partitions (allocates the partition array only). Returns 0 or -1 when out of
 * memory. n_partitions >= 1. */
int kseg_agg_state_init(kseg_agg_state *state, size_t n_partitions, int track_keys, int dedupe);
void kseg_agg_state_destroy(kseg_agg_state *state);

/* Customers over all partitions (or in the dense table). */
size_t kseg_agg_customer_count(const kseg_agg_state *state);

/* Rows per stage over the whole state (either layout). */
void kseg_agg_stage_rows(const kseg_agg_state *state, int64_t stage_rows[KSEG_AGG_STAGE_COUNT]);

/* Returned by the kernels of a restartable state (kseg_agg_state.restartable) whose dense layout
 * would need the key log it did not keep: a purchase whose key is below its customer's largest,
 * or a move into the partitions after keys were counted. The state then holds part of the rows
 * and is unusable except for destroy; the caller starts again from its first block with a state
 * that is not restartable. */
#define KSEG_AGG_RESTART 1

/* Moves a dense state into the partitions (customers inserted in id order, the key logs into the
 * partitions' logs) and keeps it there for the rest of the run; a state already in the
 * partitions is left alone. For callers that read the partitions directly. Returns 0, -1 when
 * out of memory, or KSEG_AGG_RESTART (a restartable state with keys counted); in both failures
 * the state is then unusable except for destroy. */
int kseg_agg_to_partitions(kseg_agg_state *state);

/* Bytes held by the tables (customers, indexes, keys and key logs, row hashes). */
size_t kseg_agg_state_bytes(const kseg_agg_state *state);

/* Adds a block of rows in row order. Records with stage KSEG_AGG_NO_CUSTOMER are skipped. For each
 * other record, in row order within its customer:
 *   - the customer gets a table entry (even if the row is removed, so that stage statistics can
 *     say where customers were lost);
 *   - with dedupe on, a record whose row_hash was seen before (stage > DEDUPE) becomes DEDUPE;
 *   - stage_rows[stage] of its partition is incremented, and the customer's reach raised;
 *   - a kept record (KEPT_PURCHASE or KEPT_RETURN) adds 1 to rows and its amount to amount;
 *   - a KEPT_PURCHASE record also adds 1 to purchases, updates first_time/last_time and, with keys
 *     on, adds 1 to distinct_keys if (customer, key) is new.
 * Parallel version: records are first copied, stable by partition, into partitioned[rows]; each
 * thread then processes whole partitions. Caller memory: partitioned[rows],
 * histograms[n_threads * n_partitions], offsets[n_partitions + 1]. The only allocation is table
 * growth between batches of KSEG_AGG_RESERVE_BATCH rows. Returns 0, -1 when a table could not
 * grow, or KSEG_AGG_RESTART when a restartable dense state with keys cannot move into the
 * partitions (in both failures the state is then unusable except for destroy). */
int kseg_agg_add_block(kseg_agg_state *state, const kseg_agg_record *records, size_t rows,
                       int n_threads, kseg_agg_record *partitioned, size_t *histograms,
                       size_t *offsets);

/* A block as columns, classified by the caller: the column form of kseg_agg_record, without the
 * per-row copies. stage[i] is a kseg_agg_stage (KSEG_AGG_NO_CUSTOMER rows are skipped); key is
 * read only when keys are on (then it is required), time only for KEPT_PURCHASE rows, amount only
 * for kept rows. Dedupe is not supported here (the state must have dedupe off). */
typedef struct kseg_agg_columns {
    const int64_t *customer_id;
    const int64_t *time;
    const double *amount;
    const int64_t *key;
    const uint8_t *stage;
} kseg_agg_columns;

/* Adds a block given as columns with the same contract (and the same results, bit for bit) as
 * kseg_agg_add_block. In the dense layout (see kseg_agg_state) each thread lists the rows of its
 * fixed contiguous range of ids (one scan of the ids, no branch per row) and adds them in order; a key below its customer's largest stops
 * the thread at that row, the state moves into the partitions, and the rows not yet added go
 * through the partition path below. In the partitions each thread scans the whole block and
 * adds the rows of the partitions it owns (a fixed contiguous range of partitions), in row order,
 * so nothing is copied and every customer's rows are still added in row order by one thread.
 * The dense table grows between blocks and its key logs while appending. In the partitions,
 * consecutive rows of the same customer reuse its table entry, and a purchase row with the same
 * customer and key as the previous one skips the key set (the pair is known to be there); see
 * kseg_agg_partition for the key log used while keys arrive in increasing order. Tables grow
 * when an insertion would make them more than half full. A restartable state keeps no key log
 * in the dense layout, and where the rows above would need it (a key below its customer's
 * largest, or a later block whose ids move the state into the partitions) returns
 * KSEG_AGG_RESTART instead. Returns 0, KSEG_AGG_RESTART, or -1 when a table could not grow or
 * the state has dedupe on (after a failure the state is unusable except for destroy). */
int kseg_agg_add_columns(kseg_agg_state *state, const kseg_agg_columns *columns, size_t rows,
                         int n_threads);

/* The reference: the same contract, one record at a time in row order, on one thread. */
int kseg_agg_add_block_reference(kseg_agg_state *state, const kseg_agg_record *records,
                                 size_t rows);

#endif
