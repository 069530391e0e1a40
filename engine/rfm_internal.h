/* What the distributed RFM driver (engine/rfm_distributed.c) needs from the serial aggregator
 * (engine/rfm.c): set it up from the columns alone, take out its customers and stage counts, and
 * build the scored table from customers gathered from every rank. Internal to the engine. */
#ifndef KSEG_ENGINE_RFM_INTERNAL_H
#define KSEG_ENGINE_RFM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kseg/rfm.h"

/* One customer with at least one kept purchase, as ranks exchange it. 48 bytes. */
typedef struct kseg_rfm_customer_record {
    int64_t customer_id;
    int64_t first_time; /* first kept purchase */
    int64_t last_time;  /* last kept purchase */
    int64_t rows;       /* kept rows */
    double amount;      /* kept amounts, summed in row order */
    double count;       /* the frequency: purchases, distinct invoices or distinct days */
} kseg_rfm_customer_record;

/* Fixes the aggregator's columns (frequency key, --where columns and values) from a block that
 * may have no rows, with the checks and messages of the first kseg_rfm_aggregator_add. */
int kseg_rfm_aggregator_prepare(kseg_rfm_aggregator *aggregator, const kseg_transactions *schema,
                                kseg_error *error);

/* The aggregator's included customers (any order) in *records (malloc'd; NULL when none) and, per
 * stage, the rows and customers it removed (stage 0, rows without customer id, is left at 0:
 * those rows never reach it). */
int kseg_rfm_aggregator_collect(const kseg_rfm_aggregator *aggregator,
                                kseg_rfm_customer_record **records, size_t *n_records,
                                int64_t rows_removed[KSEG_RFM_MAX_STAGES],
                                int64_t customers_removed[KSEG_RFM_MAX_STAGES],
                                kseg_error *error);

/* Fills table's customer columns, reference time, scores and segments from records sorted by
 * customer id (n >= 1), exactly as kseg_rfm_aggregator_finish computes them. The caller has set
 * the table's statistics (totals, stages, frequency mode). */
int kseg_rfm_table_from_records(const kseg_rfm_aggregator *aggregator,
                                const kseg_rfm_customer_record *records, size_t n,
                                kseg_rfm_table *table, kseg_error *error);

/* The frequency the aggregator counts (after kseg_rfm_aggregator_prepare). */
kseg_frequency_mode kseg_rfm_aggregator_frequency(const kseg_rfm_aggregator *aggregator);

/* The name of filtering stage s (< KSEG_RFM_MAX_STAGES), as kseg_rfm_table.stages names it. */
const char *kseg_rfm_stage_name(size_t stage);

/* The KSEG_EEMPTY error of a run that kept no customer, naming what each stage removed. */
int kseg_rfm_describe_empty(const kseg_rfm_options *options, int64_t rows_read,
                            const kseg_rfm_table *table, kseg_error *error);

#endif
