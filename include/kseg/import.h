/* Importing transaction logs: a CSV (or gzip-compressed CSV) file streamed into the transaction
 * layout of kseg/transactions.h, and the transaction file writer the importer and the synthetic
 * generator share. Memory is bounded by one block of rows plus the dictionaries (distinct texts).
 */
#ifndef KSEG_IMPORT_H
#define KSEG_IMPORT_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"
#include "kseg/transactions.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- transaction file writer */

/* Which columns a transaction file has, how many rows, and how they are stored. */
typedef struct kseg_transaction_file_options {
    size_t rows;                   /* Rows of every dataset, fixed when the file is opened. */
    int customer_valid;            /* Non-zero: write customer_valid (uint8). Default 0. */
    int quantity;                  /* Non-zero: write quantity (float64). Default 0. */
    int price;                     /* Non-zero: write price (float64). Default 0. */
    int invoice;                   /* Non-zero: write invoice (int64). Default 0. */
    int cancelled;                 /* Non-zero: write cancelled (uint8). Default 0. */
    const char *const *categories; /* Names of the int32 category datasets, in the order of
                                      kseg_transactions.categories. Default none. */
    size_t n_categories;
    size_t chunk_rows;             /* Rows per HDF5 chunk. Default 65536. */
    int gzip_level;                /* 0 (none) to 9. Default 4. */
    const char *group;             /* Default "/transactions". */
} kseg_transaction_file_options;

KSEG_API void kseg_transaction_file_options_defaults(kseg_transaction_file_options *options);

/* A transaction file being written through the atomic HDF5 writer (temporary file + rename). */
typedef struct kseg_transaction_writer kseg_transaction_writer;

/* Creates the group and every dataset (chunked, compressed) for options->rows rows. Category
 * names must be valid HDF5 link names (no '/') and must not collide with the fixed columns. */
KSEG_API int kseg_transaction_writer_open(kseg_transaction_writer **writer, const char *path,
                                          const kseg_transaction_file_options *options,
                                          kseg_error *error);

/* Writes block->rows rows at row_offset. Every column the file has must be present in block
 * (categories in the order given at open); columns the file does not have are ignored. */
KSEG_API int kseg_transaction_writer_write(kseg_transaction_writer *writer, size_t row_offset,
                                           const kseg_transactions *block, kseg_error *error);

/* Writes dictionaries/<column> (strings, code i = names[i]) for "customer_id", "invoice" or a
 * category. Every category needs one before commit; an empty dictionary is allowed. */
KSEG_API int kseg_transaction_writer_dictionary(kseg_transaction_writer *writer,
                                                const char *column, const char *const *names,
                                                size_t count, kseg_error *error);

/* Group attributes (beside rows, which commit writes). */
KSEG_API int kseg_transaction_writer_attribute_string(kseg_transaction_writer *writer,
                                                      const char *name, const char *value,
                                                      kseg_error *error);
KSEG_API int kseg_transaction_writer_attribute_int64(kseg_transaction_writer *writer,
                                                     const char *name, int64_t value,
                                                     kseg_error *error);
KSEG_API int kseg_transaction_writer_attribute_double(kseg_transaction_writer *writer,
                                                      const char *name, double value,
                                                      kseg_error *error);
/* A 1-D int64 array attribute (count may be 0). */
KSEG_API int kseg_transaction_writer_attribute_int64s(kseg_transaction_writer *writer,
                                                      const char *name, const int64_t *values,
                                                      size_t count, kseg_error *error);

/* Checks that every category has its dictionary, writes the rows attribute, and renames the
 * temporary file to its final name. Frees writer whether it succeeds or not. */
KSEG_API int kseg_transaction_writer_commit(kseg_transaction_writer *writer, kseg_error *error);

/* Removes the temporary file and frees writer; safe with NULL. */
KSEG_API void kseg_transaction_writer_abort(kseg_transaction_writer *writer);

/* ---------------------------------------------------------------- CSV import */

/* The most --category columns one import maps. */
#define KSEG_IMPORT_MAX_CATEGORIES 32
/* How many rejected line numbers the statistics (and the file) keep. */
#define KSEG_IMPORT_SAMPLE_LINES 5

/* Called between blocks of rows: pass is 1 (scanning) or 2 (writing), fraction the share of
 * the input consumed in this pass (0 to 1). A non-zero return cancels the import
 * (KSEG_ECANCELED); nothing is written then. */
typedef int (*kseg_import_progress_fn)(void *data, int pass, double fraction);

/* Which CSV columns (by header name) hold what, and how to read them. */
typedef struct kseg_import_options {
    const char *customer;    /* Customer id column. Required. */
    const char *time;        /* Time column. Required. */
    const char *amount;      /* Line amount. Either amount, or quantity and price. */
    const char *quantity;    /* Quantity; stored as a column when given. */
    const char *price;       /* Unit price; stored as a column when given. */
    const char *invoice;     /* Invoice number. Optional. */
    const char *const *categories; /* Text columns to dictionary-encode (e.g. Country). */
    size_t n_categories;
    /* strptime(3) format of the time column, read as UTC (%z offsets are applied); NULL = auto:
       YYYY-MM-DD, YYYY-MM-DD[ T]HH:MM[:SS[.fff]][Z|+HH:MM|-HH:MM], or Unix seconds. */
    const char *time_format;
    char delimiter;          /* Field separator. Default ','. */
    size_t block_rows;       /* Rows buffered per HDF5 write. Default 1 << 20. */
    size_t chunk_rows;       /* Rows per HDF5 chunk. Default 65536. */
    int gzip_level;          /* HDF5 compression level 0 to 9. Default 4. */
    kseg_import_progress_fn progress; /* Default NULL. */
    void *progress_data;
} kseg_import_options;

KSEG_API void kseg_import_options_defaults(kseg_import_options *options);

/* What an import read, wrote and rejected. */
typedef struct kseg_import_stats {
    uint64_t lines;                   /* physical lines in the file (header included) */
    uint64_t rows_read;               /* data records (blank lines are not records) */
    uint64_t rows_written;
    uint64_t rows_rejected;           /* records whose mapped fields did not parse */
    uint64_t rejected_lines[KSEG_IMPORT_SAMPLE_LINES]; /* first ones, 1-based, header = 1 */
    size_t n_rejected_lines;
    char first_rejection[256];        /* why the first rejected record was rejected */
    uint64_t rows_without_customer;   /* written with customer_valid = 0 */
    uint64_t distinct_customers;
    int customer_ids_text;            /* 1: ids were text, dictionary-encoded */
    uint64_t distinct_invoices;       /* 0 without an invoice column */
    uint64_t rows_without_invoice;    /* empty invoice: stored as -1 */
    int invoices_text;                /* 1: invoice numbers were text, dictionary-encoded */
    uint64_t cancelled_rows;          /* cancelled = 1: either of the two below */
    uint64_t cancelled_invoice_rows;  /* invoice starting with 'C' */
    uint64_t negative_quantity_rows;
    int64_t time_min, time_max;       /* seconds since the epoch, UTC, over written rows */
    size_t n_categories;
    uint64_t category_levels[KSEG_IMPORT_MAX_CATEGORIES]; /* distinct values per category */
} kseg_import_stats;

/* Streams csv_path (plain or gzip-compressed; a UTF-8 byte order mark is skipped) into the
 * transaction group of output_path, written atomically. The file is read twice: the first pass
 * validates every row and decides whether customer ids and invoices are integers or text (text
 * ones are dictionary-encoded in first-seen order), the second writes fixed-size datasets block by
 * block. Rows whose mapped fields do not parse are not written; they are counted in stats (and in
 * the group attributes rejected_rows and rejected_lines_sample). stats may be NULL; when the
 * import fails after the first pass, it still holds what that pass found. */
KSEG_API int kseg_import_transactions(const char *csv_path, const char *output_path,
                                      const kseg_import_options *options,
                                      kseg_import_stats *stats, kseg_error *error);

/* Parses one time text as the importer does (format NULL = auto-detect); 0 or KSEG_EINVAL. */
KSEG_API int kseg_import_parse_time(const char *text, const char *format, int64_t *seconds);

#ifdef __cplusplus
}
#endif
#endif
