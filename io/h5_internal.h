/* Helpers shared by the HDF5 reader, the writer and the listing (io/ only, never installed):
 * opening files with precise error messages, walking paths, naming types, and recovering the
 * reason HDF5 gave for a failure so that it can go into a kseg_error message. */
#ifndef KSEG_IO_H5_INTERNAL_H
#define KSEG_IO_H5_INTERNAL_H

#include <stddef.h>

#include <hdf5.h>

#include "kseg/comm.h"
#include "kseg/error.h"

/* Turns off HDF5's automatic printing of its error stack: the library never prints, so every
 * public io function calls this before its first HDF5 call. */
void kseg_io_h5_silence(void);

/* Copies the most specific description on HDF5's error stack (or "unknown HDF5 error") into
 * buffer; call it right after the failing HDF5 call, before any other HDF5 call clears the stack. */
void kseg_io_h5_reason(char *buffer, size_t size);

/* Opens file read-only. Fails with KSEG_ENOENT ("cannot open FILE: no such file"), KSEG_EFORMAT
 * (not an HDF5 file), KSEG_EINVAL (a directory) or KSEG_EIO (permissions, I/O). */
int kseg_io_h5_open_read(const char *file, hid_t *file_id, kseg_error *error);

/* As kseg_io_h5_open_read; with an MPI communicator (MPI build) the file is opened with the
 * MPI-IO driver by every rank of comm (collective), and a failure there says so. */
int kseg_io_h5_open_read_comm(const char *file, const kseg_comm *comm, hid_t *file_id,
                              kseg_error *error);

/* A dataset transfer property list for collective MPI-IO transfers when comm is an MPI
 * communicator, else H5P_DEFAULT (0). Close a non-default one with H5Pclose. Negative on an
 * HDF5 failure. */
hid_t kseg_io_h5_transfer_list(const kseg_comm *comm);

/* 1 when every component of the absolute path exists as a link in file (H5Lexists alone fails
 * when an intermediate group is missing), 0 when not, negative on an HDF5 failure. "/" exists. */
int kseg_io_h5_path_exists(hid_t file_id, const char *path);

/* Writes a short name for a datatype ("float32", "int64", "uint8", "string", "compound", ...)
 * into buffer. */
void kseg_io_h5_type_name(hid_t type_id, char *buffer, size_t size);

/* Non-zero when the datatype is an integer or floating-point type HDF5 can convert to double. */
int kseg_io_h5_is_numeric(hid_t type_id);

/* Reads a string attribute, or every element of a string-array attribute, into a malloc'd
 * array of malloc'd strings (fixed or variable length; fixed-length values lose trailing NULs
 * and spaces). where names the object in messages ("FILE:/path"). *count receives the number of
 * strings. Fails with KSEG_ETYPE when the attribute does not hold strings. */
int kseg_io_h5_read_string_attribute(hid_t object_id, const char *name, const char *where,
                                     char ***values, size_t *count, kseg_error *error);

/* Reads every element of a 1-D string dataset (fixed or variable length) into a malloc'd array of
 * malloc'd strings; where names the dataset in messages. KSEG_ETYPE when it is not 1-D strings. */
int kseg_io_h5_read_strings(hid_t dataset, const char *where, char ***values, size_t *count,
                            kseg_error *error);

/* Frees an array of count malloc'd strings and the array itself; safe with NULL. */
void kseg_io_free_strings(char **values, size_t count);

/* The HDF5 file id behind an open atomic writer (borrowed: the writer closes it on commit or
 * abort), for io/ code that writes what the public kseg_h5_write_* calls do not cover (e.g.
 * uint8 datasets). H5I_INVALID_HID for NULL. */
struct kseg_h5_writer;
hid_t kseg_io_h5_writer_file(struct kseg_h5_writer *writer);

/* Reads rows [first, first + count) of the file columns columns[0..n_columns) (ascending, distinct)
 * of a chunked 2-D or 1-D dataset whose filters are deflate, or shuffle then deflate, and whose
 * file type equals memory_type: HDF5 hands over each chunk's stored bytes on this thread, and the
 * OpenMP threads inflate, unshuffle and copy them. Row r's value of columns[q] goes to element
 * (r - first) * destination_columns + q of destination. Returns 1 when it read the data, 0 when
 * the dataset does not qualify (nothing was read: use H5Dread), or a negative KSEG_E* code (a
 * corrupt chunk is KSEG_EFORMAT, named by its rows and columns); where ("FILE:/path") goes into
 * messages. The result does not depend on the thread count. */
int kseg_io_h5_read_deflated(hid_t dataset, hid_t memory_type, const char *where, size_t first,
                             size_t count, const size_t *columns, size_t n_columns,
                             void *destination, size_t destination_columns, kseg_error *error);

/* Where the rows of an unfiltered 1-D dataset lie in the file (io/h5_direct.c), for reading them
 * with pread on several threads outside HDF5. */
typedef struct kseg_io_direct kseg_io_direct;

/* Builds *plan for dataset when its rows can be read straight from the file: chunked (every chunk
 * allocated, none filtered) or contiguous storage, file type equal to memory_type (byte order
 * included), no external storage, read through the sec2 driver with no user block. Returns 1
 * with *plan set, 0 when the dataset does not qualify (read it with H5Dread), or a negative
 * KSEG_E* code. Call it on the thread that owns HDF5; the plan is valid while the file is open. */
int kseg_io_direct_open(hid_t dataset, hid_t memory_type, kseg_io_direct **plan,
                        kseg_error *error);
void kseg_io_direct_free(kseg_io_direct *plan);

/* Rows [first, first + count) of plan's dataset into destination; where ("FILE:/path") names it
 * in messages. */
typedef struct kseg_io_direct_request {
    const kseg_io_direct *plan;
    size_t first, count;
    void *destination;
    const char *where;
} kseg_io_direct_request;

/* Reads every request with pread on up to threads OpenMP threads (no HDF5 call). A failed or short
 * read is KSEG_EIO naming the first failing request in order and its row. */
int kseg_io_direct_read(const kseg_io_direct_request *requests, size_t n_requests, int threads,
                        kseg_error *error);

/* Tests only: whether the transaction reader may read directly (1, the default) or always goes
 * through H5Dread (0), and how many of its datasets its last read took directly. */
struct kseg_transaction_reader;
void kseg_io_transaction_reader_set_direct(struct kseg_transaction_reader *reader, int enabled);
size_t kseg_io_transaction_reader_direct_count(const struct kseg_transaction_reader *reader);

/* The normalized path of the table kseg_h5_read_table reads for path (NULL or "" = the default
 * table: /customers/features, else the only 2-D numeric dataset), malloc'd into *resolved. */
int kseg_io_h5_table_path(hid_t file_id, const char *file, const char *path, char **resolved,
                          kseg_error *error);

/* A malloc'd copy of text, or NULL when out of memory. */
char *kseg_io_strdup(const char *text);

#endif
