/* HDF5 input and output: reading customer matrices (a 2-D dataset or a group of 1-D columns) into
 * the engine's buffer, and writing result files atomically (temporary name, then rename).
 * Part of libkseg, used by the CLI; the engine itself never touches files. */
#ifndef KSEG_IO_H
#define KSEG_IO_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/comm.h"
#include "kseg/error.h"
#include "kseg/matrix.h"
#include "kseg/transactions.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For programs that exit right after their work (the kseg command): call before anything else.
 * It turns off HDF5's exit handler, which in HDF5 1.10 can crash re-closing a file whose close
 * already failed (a full disk, a file size limit). kseg closes every file it opens, so the
 * handler has nothing left to do. */
KSEG_API void kseg_io_skip_exit_cleanup(void);

/* ---------------------------------------------------------------- reading */

/* How kseg_h5_read_matrix chooses the element type of the returned buffer. */
typedef enum kseg_read_type {
    /* float64 for float64, int32, uint32, int64 and uint64 sources (exact); float32 otherwise. */
    KSEG_READ_NATIVE = 0,
    KSEG_READ_FLOAT32 = 1,
    KSEG_READ_FLOAT64 = 2
} kseg_read_type;

typedef struct kseg_read_options {
    /* Select and order columns by name (attribute "columns" on a 2-D dataset, dataset names in a
       group). NULL = all columns (in a group: every 1-D numeric dataset except "id", in name
       order). */
    const char *const *columns;
    size_t n_columns;
    kseg_read_type type;     /* Default KSEG_READ_NATIVE. */
    int check_finite;        /* Non-zero: fail with KSEG_ENONFINITE naming the first NaN/Inf by
                                row and column. Default 1. */
    /* Read only global rows [row_offset, row_offset + row_count); row_count 0 = to the end. */
    size_t row_offset;
    size_t row_count;
    /* A distributed read: non-NULL reads only this rank's rows of the file's total,
       kseg_comm_split_rows(total, comm->size, comm->rank) (a rank may get none), instead of
       row_offset/row_count; comm's own n_global and row_offset are not used, since the file
       tells the total (table->total_rows). With an MPI communicator (kseg_comm_mpi) the file is
       opened with MPI-IO and the data is read collectively: every rank of comm must call. */
    const kseg_comm *comm;
} kseg_read_options;

KSEG_API void kseg_read_options_defaults(kseg_read_options *options);

/* A matrix read from a file; owns its buffers. Initialize with kseg_table_init. */
typedef struct kseg_table {
    kseg_matrix matrix;      /* view of data, rows x cols */
    void *data;              /* owned, 64-byte aligned, free with kseg_table_destroy */
    char **column_names;     /* [cols] owned strings ("column0", ... when the file names none) */
    int64_t *ids;            /* [rows] the "id" dataset beside the data, or NULL */
    size_t total_rows;       /* rows in the file (before row_offset/row_count) */
    /* Set by kseg_h5_map_table instead of data: a read-only file mapping that matrix.data points
       into (aligned to the element size only, not to 64 bytes: the kernels load rows unaligned).
       kseg_table_destroy unmaps it. NULL for tables read into memory. */
    void *mapping;
    size_t mapping_bytes;
} kseg_table;

KSEG_API void kseg_table_init(kseg_table *table);
KSEG_API void kseg_table_destroy(kseg_table *table);

/* Reads FILE's object at path. path may be NULL or "": then "/customers/features" if it exists,
 * else the only 2-D numeric dataset in the file (an error lists the candidates otherwise).
 * Accepts any integer or floating type, chunked or contiguous, compressed or not. The "id"
 * dataset is looked up beside a 2-D dataset (same group) or inside a column group. */
KSEG_API int kseg_h5_read_table(const char *file, const char *path, const kseg_read_options *options,
                       kseg_table *table, kseg_error *error);

/* ---------------------------------------------------------------- rows larger than memory */

/* Where the rows of a table live. */
typedef enum kseg_rows_mode {
    KSEG_ROWS_MEMORY = 0, /* read into an owned buffer (kseg_h5_read_table) */
    KSEG_ROWS_MAPPED = 1, /* the input file's own bytes, mapped read-only */
    KSEG_ROWS_STAGED = 2  /* converted into an unlinked scratch file, mapped read-only */
} kseg_rows_mode;

typedef struct kseg_map_info {
    kseg_rows_mode mode;
    /* Mapped: "contiguous". Staged: why the input could not be mapped as it is, e.g.
       "gzip-compressed chunks", "big-endian float64", "int32 values converted to float64",
       "a column subset", "a group of column datasets". */
    char reason[128];
    uint64_t bytes;          /* the rows' size: rows x cols x element size */
} kseg_map_info;

/* The shape kseg_h5_read_table would return for the same arguments, from a read of one row:
 * shape->rows (after row_offset/row_count), cols and dtype, with shape->data NULL (usable with
 * kseg_kmeans_plan). *has_ids (may be NULL) is 1 when an "id" dataset would be read. Fails as
 * kseg_h5_read_table would on a missing object, column or a bad type. */
KSEG_API int kseg_h5_table_shape(const char *file, const char *path,
                                 const kseg_read_options *options, kseg_matrix *shape,
                                 int *has_ids, kseg_error *error);

/* Gives the rows kseg_h5_read_table would read (same arguments, same values bitwise, same
 * column names and ids) without holding them in process memory, so that passes over data larger
 * than memory go through the page cache:
 *   - mapped: a contiguous, little-endian float32/float64 2-D (or 1-D) dataset whose type is the
 *     requested one, all columns in file order, at an offset aligned to its element size: the
 *     file region of rows [row_offset, row_offset + row_count) is mapped read-only;
 *   - staged otherwise: the rows are read read_bytes at a time (0 = 64 MiB; at least one row; whole
 *     chunks of a chunked dataset, at least one, so that each chunk is decompressed once),
 *     converted, into a scratch file created in scratch_dir and unlinked at once (nothing is left
 *     behind on any exit), which is then mapped read-only. KSEG_ETOOBIG when scratch_dir lacks
 *     the space; KSEG_EIO when it cannot be written.
 * options->check_finite is honoured while staging; mapped rows are not scanned here (that would
 * be one more pass through the file): kseg_kmeans_fit scans its rows before it starts. ids, when
 * present, are read into memory (8 bytes a row). info (may be NULL) says which mode ran and
 * why. kseg_table_destroy unmaps. */
KSEG_API int kseg_h5_map_table(const char *file, const char *path,
                               const kseg_read_options *options, const char *scratch_dir,
                               uint64_t read_bytes, kseg_table *table, kseg_map_info *info,
                               kseg_error *error);

/* Reads a 1-D numeric dataset of exactly expected_length values (0 = any) as double. *values is
 * malloc'd; *length receives its length. */
KSEG_API int kseg_h5_read_vector(const char *file, const char *path, size_t expected_length,
                        double **values, size_t *length, kseg_error *error);

/* As kseg_h5_read_vector, but only this rank's rows of the expected_length values,
 * kseg_comm_split_rows(expected_length, comm->size, comm->rank); collective (MPI-IO) with an MPI
 * communicator, as kseg_read_options.comm. */
KSEG_API int kseg_h5_read_vector_split(const char *file, const char *path, size_t expected_length,
                                       const kseg_comm *comm, double **values, size_t *length,
                                       kseg_error *error);

/* As kseg_h5_read_vector for an integer dataset, read exactly as int64 (customer ids). */
KSEG_API int kseg_h5_read_int64_vector(const char *file, const char *path, size_t expected_length,
                                       int64_t **values, size_t *length, kseg_error *error);

/* Reads a 1-D dataset of strings (fixed or variable length); *values is a malloc'd array of
 * *count malloc'd strings, freed with kseg_h5_free_strings. */
KSEG_API int kseg_h5_read_strings(const char *file, const char *path, char ***values,
                                  size_t *count, kseg_error *error);
KSEG_API void kseg_h5_free_strings(char **values, size_t count);

/* Reads a string attribute (fixed or variable length) of object path; *value is malloc'd. */
KSEG_API int kseg_h5_read_attribute_string(const char *file, const char *object_path, const char *name,
                                  char **value, kseg_error *error);

/* "FILE.h5:/path" -> file and path (both malloc'd; *path NULL when there is no ':/' suffix). */
KSEG_API int kseg_split_location(const char *location, char **file, char **path, kseg_error *error);

/* Non-zero when both paths name the same existing file (device and inode). */
KSEG_API int kseg_same_file(const char *path_a, const char *path_b);

/* Writes a human-readable listing of every group and dataset (shape, type, columns attribute) to
 * a malloc'd string. */
KSEG_API int kseg_h5_describe(const char *file, char **listing, kseg_error *error);

/* ---------------------------------------------------------------- writing */

typedef enum kseg_store_type {
    KSEG_STORE_FLOAT32 = 1,
    KSEG_STORE_FLOAT64 = 2,
    KSEG_STORE_INT32 = 3,
    KSEG_STORE_INT64 = 4
} kseg_store_type;

/* A result file being written under a temporary name in the destination's directory. Nothing
 * appears under the final name until kseg_h5_writer_commit succeeds; _abort (or a crash) leaves
 * any existing file at the final name untouched. */
typedef struct kseg_h5_writer kseg_h5_writer;

KSEG_API int kseg_h5_writer_open(kseg_h5_writer **writer, const char *final_path, kseg_error *error);

#ifdef KSEG_WITH_MPI
/* The writer of a distributed run (MPI build): every rank of comm (an MPI communicator) calls
 * this and then every writer function below with the same arguments, in the same order, since
 * parallel HDF5's metadata calls are collective. The file is opened with MPI-IO under a
 * temporary name rank 0 chooses. kseg_h5_write_dataset's data is taken from rank 0 (the others
 * may pass anything, NULL included); kseg_h5_write_rows writes each rank's own rows (row_offset
 * and rows may differ between ranks, and rows may be 0). Commit closes the file on every rank,
 * then rank 0 renames it and every rank learns the outcome. */
KSEG_API int kseg_h5_writer_open_distributed(kseg_h5_writer **writer, const char *final_path,
                                             const kseg_comm *comm, kseg_error *error);
#endif

/* Creates dataset path (intermediate groups created) of rank 1 or 2 with dims, and writes all of
 * data (may be NULL to leave it for kseg_h5_write_rows). chunk_rows > 0 makes it chunked with
 * that many rows per chunk, gzip_level 1..9 compresses (0 = none). */
KSEG_API int kseg_h5_write_dataset(kseg_h5_writer *writer, const char *path, kseg_store_type type,
                          int rank, const size_t *dims, const void *data, size_t chunk_rows,
                          int gzip_level, kseg_error *error);

/* Writes rows [row_offset, row_offset + rows) of an existing dataset created above; data holds
 * rows x (dims[1] or 1) elements of the dataset's type. Used for streaming writes. */
KSEG_API int kseg_h5_write_rows(kseg_h5_writer *writer, const char *path, size_t row_offset, size_t rows,
                       const void *data, kseg_error *error);

/* Attributes on an existing object (group or dataset). */
KSEG_API int kseg_h5_write_attribute_string(kseg_h5_writer *writer, const char *object_path,
                                   const char *name, const char *value, kseg_error *error);
KSEG_API int kseg_h5_write_attribute_strings(kseg_h5_writer *writer, const char *object_path,
                                    const char *name, const char *const *values, size_t count,
                                    kseg_error *error);
KSEG_API int kseg_h5_write_attribute_double(kseg_h5_writer *writer, const char *object_path,
                                   const char *name, double value, kseg_error *error);
KSEG_API int kseg_h5_write_attribute_int64(kseg_h5_writer *writer, const char *object_path,
                                  const char *name, int64_t value, kseg_error *error);

/* A 1-D dataset of variable-length UTF-8 strings. */
KSEG_API int kseg_h5_write_strings(kseg_h5_writer *writer, const char *path, const char *const *values,
                          size_t count, kseg_error *error);

/* Closes, flushes to disk and renames the temporary file to the final name; frees writer. */
KSEG_API int kseg_h5_writer_commit(kseg_h5_writer *writer, kseg_error *error);

/* Closes and removes the temporary file; frees writer. Safe with NULL. */
KSEG_API void kseg_h5_writer_abort(kseg_h5_writer *writer);

/* ---------------------------------------------------------------- transactions */

/* Reads a transaction group (layout in kseg/transactions.h) block by block. */
typedef struct kseg_transaction_reader kseg_transaction_reader;

/* group NULL or "" = "/transactions". Checks the layout up front: required datasets present,
 * equal lengths, types as documented (any integer type for ids and times, any float or integer
 * for amounts), naming what is missing. */
KSEG_API int kseg_transaction_reader_open(kseg_transaction_reader **reader, const char *file,
                                          const char *group, kseg_error *error);
KSEG_API size_t kseg_transaction_reader_rows(const kseg_transaction_reader *reader);
/* Reads rows [offset, offset + count) into block; the buffers belong to the reader and stay
 * valid until the next read or close. Categories carry their dictionaries. */
KSEG_API int kseg_transaction_reader_read(kseg_transaction_reader *reader, size_t offset,
                                          size_t count, kseg_transactions *block,
                                          kseg_error *error);
/* Columns for kseg_transaction_reader_select, one bit each; KSEG_TX_CATEGORIES stands for every
 * category column. */
enum {
    KSEG_TX_CUSTOMER_ID = 1u << 0,
    KSEG_TX_CUSTOMER_VALID = 1u << 1,
    KSEG_TX_TIME = 1u << 2,
    KSEG_TX_AMOUNT = 1u << 3,
    KSEG_TX_QUANTITY = 1u << 4,
    KSEG_TX_PRICE = 1u << 5,
    KSEG_TX_INVOICE = 1u << 6,
    KSEG_TX_CANCELLED = 1u << 7,
    KSEG_TX_CATEGORIES = 1u << 8,
    KSEG_TX_ALL = (1u << 9) - 1
};
/* Chooses the columns later reads load (default KSEG_TX_ALL): a column outside columns is not
 * read and comes back NULL in the block (categories: none, n_categories 0), as if the file lacked
 * it; columns the file lacks stay NULL whatever is selected. Nothing else changes: the layout
 * checks of open, the row count and the dictionaries are the same. Unknown bits are refused
 * (KSEG_EINVAL). */
KSEG_API int kseg_transaction_reader_select(kseg_transaction_reader *reader, unsigned columns,
                                            kseg_error *error);
KSEG_API void kseg_transaction_reader_close(kseg_transaction_reader *reader);

#ifdef __cplusplus
}
#endif
#endif
