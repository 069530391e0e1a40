/* RFM: per-customer recency, frequency and monetary value from transactions, quantile scores, and
 * named segments from an exact partition of the R x F score grid. Aggregation streams blocks of
 * transactions (memory: the customer table plus distinct invoice/day keys, not the row count);
 * scoring is exact (sorting on value, then customer id). */
#ifndef KSEG_RFM_H
#define KSEG_RFM_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/comm.h"
#include "kseg/error.h"
#include "kseg/transactions.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kseg_frequency_mode {
    KSEG_FREQUENCY_INVOICES = 0, /* distinct invoices (needs the invoice column) */
    KSEG_FREQUENCY_LINES = 1,    /* transaction lines */
    KSEG_FREQUENCY_DAYS = 2      /* distinct purchase days (UTC) */
} kseg_frequency_mode;

typedef enum kseg_monetary_mode {
    KSEG_MONETARY_SUM = 0,  /* total amount */
    KSEG_MONETARY_MEAN = 1  /* total amount / frequency */
} kseg_monetary_mode;

typedef enum kseg_returns_mode {
    KSEG_RETURNS_DROP = 0, /* cancellations and negative quantities/amounts are removed */
    KSEG_RETURNS_NET = 1   /* they stay in the monetary sum (netted); they never count as purchases
                              for frequency, recency or tenure */
} kseg_returns_mode;

typedef enum kseg_ties_mode {
    /* Equal-count bins: rank by (value, customer id), then bins as pandas
       qcut(rank(method="first"), bins) computes them on that order. */
    KSEG_TIES_RANK = 0,
    /* Cut points at the sample quantiles with linear interpolation (numpy's default), right-closed
       bins as pandas.qcut: score = 1 + number of interior cut points strictly below the value, so
       equal values share a score. */
    KSEG_TIES_VALUE = 1
} kseg_ties_mode;

typedef enum kseg_best_mode {
    KSEG_BEST_HIGH = 0, /* score `bins` is best: most recent, most frequent, highest monetary */
    KSEG_BEST_LOW = 1   /* score 1 is best */
} kseg_best_mode;

/* One --where COL=VALUE condition. Conditions on the same column are alternatives (OR); conditions
 * on different columns must all hold (AND). */
typedef struct kseg_rfm_filter {
    const char *column;
    const char *value;
} kseg_rfm_filter;

/* The segment map: each cell (r, f) of the bins x bins score grid (1-based scores in "best high"
 * orientation) belongs to exactly one segment. */
typedef struct kseg_rfm_map {
    int32_t bins;
    size_t n_segments;
    char **names;          /* [n_segments] owned */
    int32_t *cell_segment; /* [bins * bins]: segment of (r, f) at (r - 1) * bins + (f - 1) */
} kseg_rfm_map;

/* The built-in map for 2 <= bins <= 10: Champions, Loyal Customers, Potential Loyalists,
 * New Customers, Promising, Need Attention, About to Sleep, At Risk, Can't Lose Them,
 * Hibernating, Lost, defined on the 5 x 5 grid and applied to other bin counts by quantile
 * position (score s of b bins sits at grid level ceil(5 s / b)). */
KSEG_API int kseg_rfm_map_default(kseg_rfm_map *map, int32_t bins, kseg_error *error);

/* Parses a map file (see README: one line per segment, "Name | R scores | F scores", ranges like
 * 4-5 or lists like 1,3). Rejects overlaps and holes, naming the cells. source names the file in
 * messages. */
KSEG_API int kseg_rfm_map_parse(kseg_rfm_map *map, const char *text, int32_t bins,
                                const char *source, kseg_error *error);
KSEG_API void kseg_rfm_map_destroy(kseg_rfm_map *map);

typedef struct kseg_rfm_options {
    int64_t reference_time;     /* seconds since the epoch; INT64_MIN = midnight UTC after the
                                   last kept transaction's day. Default INT64_MIN. */
    kseg_frequency_mode frequency;  /* Default KSEG_FREQUENCY_INVOICES if the data has invoices,
                                       else lines (resolved at the first block). */
    int frequency_explicit;         /* non-zero: frequency was chosen by the user */
    kseg_monetary_mode monetary;    /* Default KSEG_MONETARY_SUM. */
    kseg_returns_mode returns;      /* Default KSEG_RETURNS_DROP. */
    double min_price;               /* Drop rows with price (or amount when there is no price)
                                       below it; NaN = no filter. Default NaN. */
    int dedupe;                     /* Drop exact duplicate rows (all columns equal). Default 0. */
    const kseg_rfm_filter *filters; /* --where conditions. Default none. */
    size_t n_filters;
    int32_t bins;                   /* Default 5. */
    kseg_ties_mode ties;            /* Default KSEG_TIES_RANK. */
    kseg_best_mode best;            /* Default KSEG_BEST_HIGH. */
    const kseg_rfm_map *map;        /* NULL = kseg_rfm_map_default(bins). */
    int32_t n_threads;              /* 0 = OpenMP default. */
    int restartable;                /* The caller can add every block again from the first:
                                       see kseg_rfm_aggregator_add. Ignored with dedupe and by
                                       kseg_rfm_distributed. Default 0. */
} kseg_rfm_options;

KSEG_API void kseg_rfm_options_defaults(kseg_rfm_options *options);

/* Rows and customers removed by one filtering stage. */
typedef struct kseg_rfm_stage {
    const char *name;          /* "no customer id", "dedupe", "where", "min price", "returns" */
    int64_t rows_removed;
    int64_t customers_removed; /* customers left with no row after this stage */
} kseg_rfm_stage;

enum { KSEG_RFM_MAX_STAGES = 5 };

/* The per-customer result, sorted by customer id. Owned; kseg_rfm_table_init / _destroy. */
typedef struct kseg_rfm_table {
    size_t n_customers;
    int64_t *customer_id;
    double *recency;      /* days from the last purchase to the reference time (whole days) */
    double *frequency;
    double *monetary;
    double *tenure;       /* days from the first purchase to the reference time (whole days) */
    int64_t *rows;        /* kept transaction lines behind each customer */
    int32_t *scores;      /* [n x 3]: R, F, M scores in 1..bins */
    int32_t *segment;     /* index into the map's names */
    int32_t bins;
    double *cuts;         /* [3 x (bins + 1)]: R, F, M cut points (value mode: the quantiles;
                             rank mode: the quantiles of the values at the rank cut points) */
    kseg_rfm_map map;     /* the map used (a copy) */
    int64_t reference_time;
    int64_t last_time;    /* last kept transaction */
    int64_t total_rows;   /* rows read */
    double total_amount;  /* sum of all amounts read, customers or not */
    kseg_frequency_mode frequency_mode;
    kseg_rfm_stage stages[KSEG_RFM_MAX_STAGES];
    size_t n_stages;
    int reference_before_last; /* the given reference time precedes the last transaction */
} kseg_rfm_table;

KSEG_API void kseg_rfm_table_init(kseg_rfm_table *table);
KSEG_API void kseg_rfm_table_destroy(kseg_rfm_table *table);

typedef struct kseg_rfm_aggregator kseg_rfm_aggregator;

KSEG_API int kseg_rfm_aggregator_create(kseg_rfm_aggregator **aggregator,
                                        const kseg_rfm_options *options, kseg_error *error);
/* Adds a block of transactions; blocks must come in file order (sums are then identical however
 * the work is split among threads).
 *
 * With options.restartable the aggregator first assumes that each customer's frequency keys
 * (invoices or days) never decrease, and keeps no record of the keys it has counted; that makes
 * the common case, a log in time order, faster. When a block breaks the assumption (or its
 * customer ids leave the range the fast table covers, after keys were counted), the call returns
 * KSEG_ERESTART: the aggregator has then reset itself to its state before the first block, with
 * the assumption off, and the caller adds every block again from the first. That happens at
 * most once per aggregator, and the result is bitwise the same as without restartable. */
KSEG_API int kseg_rfm_aggregator_add(kseg_rfm_aggregator *aggregator,
                                     const kseg_transactions *block, kseg_error *error);
/* Computes features, scores and segments into table. Fails with KSEG_EEMPTY when no customer is
 * left after filtering. */
KSEG_API int kseg_rfm_aggregator_finish(kseg_rfm_aggregator *aggregator, kseg_rfm_table *table,
                                        kseg_error *error);
KSEG_API void kseg_rfm_aggregator_destroy(kseg_rfm_aggregator *aggregator);

/* Reads global transaction rows [offset, offset + rows) into *block, which must stay valid until
 * the next call; the category dictionaries (names) must stay valid for the whole run. rows is 0
 * for the first call on every rank: the block then only shows which columns exist and the
 * dictionaries. Returns 0 or a negative KSEG_E* code with error filled. */
typedef int (*kseg_rfm_read_fn)(void *context, size_t offset, size_t rows,
                                kseg_transactions *block, kseg_error *error);

/* RFM over n_rows transactions (the same count on every rank) spread over the ranks of comm,
 * with the result of one process: every rank calls it, and every rank gets the same table (or
 * the same error) as kseg_rfm_aggregator_add over all rows in order and _finish.
 *
 * The rows go in rounds: round t covers global rows [t R B, (t + 1) R B) for R ranks and
 * B = KSEG_RFM_DISTRIBUTED_ROWS, and rank r reads the r-th B rows of it, so that rank order is
 * row order within a round. Each row with a customer id goes (comm->ops->alltoallv) to the rank
 * that owns its customer by a fixed hash of the id, which aggregates its customers' rows in row
 * order. At the end the owners' customers (48 bytes each) are gathered on every rank and scored
 * there, exactly as the serial path scores them. Memory per rank: the customers it owns, the
 * gathered customer table, and a few round buffers. comm's row split is not used. */
KSEG_API int kseg_rfm_distributed(const kseg_comm *comm, size_t n_rows,
                                  const kseg_rfm_options *options, kseg_rfm_read_fn read,
                                  void *context, kseg_rfm_table *table, kseg_error *error);

/* Rows a rank reads per round of kseg_rfm_distributed: a multiple of 8192 (the engine's row
 * block), so that the total amount's block sums fall on one rank each. */
#define KSEG_RFM_DISTRIBUTED_ROWS ((size_t)65536)

/* Scores one feature: scores[i] in 1..bins (ascending values get ascending scores), ties broken
 * by customer id in rank mode; cuts[bins + 1] receives the cut points. Exposed for tests. */
KSEG_API int kseg_rfm_score_feature(const double *values, const int64_t *customer_id, size_t n,
                                    int32_t bins, kseg_ties_mode ties, int32_t n_threads,
                                    int32_t *scores, double *cuts, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
