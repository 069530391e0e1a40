/* Transactions: the in-memory column view the RFM stage consumes, and the HDF5 layout kseg writes
 * on import. One row is one transaction line (an invoice line, a payment, a return).
 *
 * File layout (group /transactions, all 1-D datasets of equal length n):
 *   customer_id   int64    customer key: the id itself, or a dictionary code when ids are text
 *                          (then dictionaries/customer_id holds the texts, code i = text i)
 *   customer_valid uint8   1 when the row has a customer id; rows without one are kept (they count
 *                          for totals) but belong to no customer
 *   time          int64    seconds since 1970-01-01 UTC (attribute unit = "s")
 *   amount        float64  line amount (quantity x price when imported that way)
 *   quantity      float64  optional
 *   price         float64  optional
 *   invoice       int64    optional: the invoice number, or a dictionary code when invoice numbers
 *                          are not integers (dictionaries/invoice)
 *   cancelled     uint8    optional: 1 for cancellation lines (invoice starting with 'C', or
 *                          negative quantity)
 *   <category>    int32    optional, any number: dictionary-encoded text columns such as Country;
 *                          attribute kind = "category"; dictionaries/<category> holds the texts
 * Group attributes: rows, source (the imported file), rejected_rows (rows that did not parse). */
#ifndef KSEG_TRANSACTIONS_H
#define KSEG_TRANSACTIONS_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The transaction times kseg accepts: 0000-01-01 00:00:00 to 9999-12-31 23:59:59 UTC, in
 * seconds since the epoch. The importer rejects a time outside as malformed and RFM refuses it:
 * no real transaction is dated there, and near the int64 limits the day arithmetic of recency
 * and tenure would overflow. */
#define KSEG_TIME_MIN INT64_C(-62167219200)
#define KSEG_TIME_MAX INT64_C(253402300799)

/* A categorical column: codes [n] into names [n_names]. */
typedef struct kseg_category_column {
    const char *name;
    const int32_t *codes;
    const char *const *names;
    size_t n_names;
} kseg_category_column;

/* A block of transactions as column pointers (not owned). Optional columns may be NULL. */
typedef struct kseg_transactions {
    size_t rows;
    const int64_t *customer_id;
    const uint8_t *customer_valid; /* NULL: every row has a customer */
    const int64_t *time;           /* seconds since the epoch, UTC */
    const double *amount;
    const double *quantity;        /* NULL if absent */
    const double *price;           /* NULL if absent */
    const int64_t *invoice;        /* NULL if absent */
    const uint8_t *cancelled;      /* NULL if absent */
    const kseg_category_column *categories;
    size_t n_categories;
} kseg_transactions;

/* Options of the synthetic transaction generator. */
typedef struct kseg_transaction_options {
    uint64_t seed;          /* Default 1. */
    uint64_t customers;     /* Distinct customers. Default 100000. */
    int64_t start_time;     /* First possible transaction, seconds since the epoch. Default
                               2023-01-01T00:00:00Z. */
    int64_t days;           /* Length of the period in days. Default 730. */
    double return_rate;     /* Share of lines that are returns (cancelled, negative). Default
                               0.02. */
} kseg_transaction_options;

KSEG_API void kseg_transaction_options_defaults(kseg_transaction_options *options);

/* Names of the generator's category columns ("channel", "country", "category") and the texts of
 * each; static strings. */
KSEG_API size_t kseg_generated_category_count(void);
KSEG_API const char *kseg_generated_category_name(size_t category);
KSEG_API size_t kseg_generated_category_size(size_t category);
KSEG_API const char *kseg_generated_category_value(size_t category, size_t value);

/* Fills rows [row_begin, row_begin + rows) of a synthetic transaction log of total_rows rows:
 * Zipf-like purchase counts per customer, lognormal amounts, weekly and yearly seasonality,
 * returns, and the generator's categories (category_codes[c] is an int32 array of rows values,
 * for c < kseg_generated_category_count(); entries may be NULL to skip). Rows are in time order
 * and each row is a pure function of (seed, row index, total_rows), so blocks can be generated in
 * any order. Any output pointer may be NULL. */
KSEG_API int kseg_generate_transactions(const kseg_transaction_options *options,
                                        uint64_t total_rows, uint64_t row_begin, size_t rows,
                                        int64_t *customer_id, int64_t *time, double *amount,
                                        double *quantity, double *price, int64_t *invoice,
                                        uint8_t *cancelled, int32_t *const *category_codes,
                                        kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
