/* Transaction files (layout in kseg/transactions.h): the writer the CSV importer and the
 * synthetic generator share, built on the atomic HDF5 writer, and the block reader the RFM stage
 * uses, which checks the layout up front, converts any integer or float width on the way in and
 * reads unfiltered columns that need no conversion with pread on several threads (h5_direct.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "kseg/import.h"
#include "kseg/io.h"

#include "h5_internal.h"
#include "huge_pages.h"

#define DEFAULT_GROUP "/transactions"
#define DEFAULT_CHUNK_ROWS ((size_t)1 << 16)
#define MAX_CHUNK_ROWS ((size_t)1 << 24)

/* Dataset names the layout fixes; a category may not take one of them. */
static const char *const fixed_names[] = {"customer_id", "customer_valid", "time",  "amount",
                                          "quantity",    "price",          "invoice", "cancelled",
                                          "dictionaries"};

static int is_fixed_name(const char *name)
{
    for (size_t i = 0; i < sizeof fixed_names / sizeof fixed_names[0]; i++)
        if (strcmp(name, fixed_names[i]) == 0)
            return 1;
    return 0;
}

/* "group/name" (malloc'd), or NULL when out of memory. */
static char *join_path(const char *group, const char *name)
{
    size_t group_length = strlen(group), name_length = strlen(name);
    while (group_length > 1 && group[group_length - 1] == '/')
        group_length--;
    char *path = malloc(group_length + name_length + 2);
    if (!path)
        return NULL;
    memcpy(path, group, group_length);
    size_t at = group_length;
    if (!(group_length == 1 && group[0] == '/'))
        path[at++] = '/';
    memcpy(path + at, name, name_length + 1);
    return path;
}

/* An absolute, normalized group path ("/transactions" for NULL or ""), malloc'd. */
static char *group_path_of(const char *group)
{
    if (!group || !*group)
        group = DEFAULT_GROUP;
    size_t length = strlen(group);
    while (length > 1 && group[length - 1] == '/')
        length--;
    int relative = group[0] != '/';
    char *path = malloc(length + 2);
    if (!path)
        return NULL;
    path[0] = '/';
    memcpy(path + relative, group, length);
    path[length + relative] = '\0';
    return path;
}

/* ================================================================ writer */

struct kseg_transaction_writer {
    kseg_h5_writer *h5;
    hid_t file; /* borrowed from h5: owned and closed by the atomic writer */
    char *final_path;
    char *group;
    kseg_transaction_file_options options;
    char **categories;       /* [n_categories] owned copies */
    char **category_paths;   /* [n_categories] dataset paths */
    int *has_dictionary;     /* [n_categories] */
};

void kseg_transaction_file_options_defaults(kseg_transaction_file_options *options)
{
    memset(options, 0, sizeof *options);
    options->chunk_rows = DEFAULT_CHUNK_ROWS;
    options->gzip_level = 4;
    options->group = DEFAULT_GROUP;
}

/* The HDF5 file id behind the atomic writer, for the uint8 columns and array attributes its
   public API has no store type for. The id is borrowed: the atomic writer closes it. */
static int writer_file_id(kseg_transaction_writer *writer, kseg_error *error)
{
    writer->file = kseg_io_h5_writer_file(writer->h5);
    if (writer->file < 0)
        return kseg_error_set(error, KSEG_EINTERNAL, "%s: the writer has no open file",
                              writer->final_path);
    return 0;
}

/* A chunked, compressed uint8 dataset of rows values: the same storage kseg_h5_write_dataset
   gives the other columns (shuffle is pointless for single bytes). */
static int create_uint8_dataset(kseg_transaction_writer *writer, const char *path,
                                kseg_error *error)
{
    int status = 0;
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dataset = H5I_INVALID_HID;
    hsize_t dims = writer->options.rows;
    hsize_t chunk = writer->options.chunk_rows < dims ? writer->options.chunk_rows : dims;
    space = H5Screate_simple(1, &dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0)
        goto hdf5_failure;
    if (chunk > 0) {
        if (H5Pset_chunk(dcpl, 1, &chunk) < 0)
            goto hdf5_failure;
        if (writer->options.gzip_level > 0 &&
            H5Pset_deflate(dcpl, (unsigned)writer->options.gzip_level) < 0)
            goto hdf5_failure;
    }
    dataset = H5Dcreate2(writer->file, path, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dataset < 0)
        goto hdf5_failure;
    goto done;

hdf5_failure:;
    char reason[256];
    kseg_io_h5_reason(reason, sizeof reason);
    status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot create the dataset: %s",
                            writer->final_path, path, reason);
done:
    if (dataset >= 0)
        H5Dclose(dataset);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return status;
}

static int create_column(kseg_transaction_writer *writer, const char *name, kseg_store_type type,
                         int uint8, kseg_error *error)
{
    char *path = join_path(writer->group, name);
    if (!path)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    int status;
    if (uint8)
        status = create_uint8_dataset(writer, path, error);
    else
        status = kseg_h5_write_dataset(writer->h5, path, type, 1, &writer->options.rows, NULL,
                                       writer->options.rows ? writer->options.chunk_rows : 0,
                                       writer->options.rows ? writer->options.gzip_level : 0,
                                       error);
    free(path);
    return status;
}

static void writer_free(kseg_transaction_writer *writer)
{
    if (!writer)
        return;
    kseg_io_free_strings(writer->categories, writer->options.n_categories);
    kseg_io_free_strings(writer->category_paths, writer->options.n_categories);
    free(writer->has_dictionary);
    free(writer->group);
    free(writer->final_path);
    free(writer);
}

int kseg_transaction_writer_open(kseg_transaction_writer **writer_out, const char *path,
                                 const kseg_transaction_file_options *options, kseg_error *error)
{
    kseg_transaction_writer *writer = NULL;
    int status = 0;
    if (!writer_out || !options)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_transaction_writer_open: NULL argument");
    *writer_out = NULL;
    if (!path || !*path)
        return kseg_error_set(error, KSEG_EINVAL, "no output file given (expected FILE.h5)");
    if (options->gzip_level < 0 || options->gzip_level > 9)
        return kseg_error_set(error, KSEG_EINVAL, "gzip level %d (expected 0 to 9)",
                              options->gzip_level);
    if (options->n_categories > 0 && !options->categories)
        return kseg_error_set(error, KSEG_EINVAL, "category names missing");
    for (size_t c = 0; c < options->n_categories; c++) {
        const char *name = options->categories[c];
        if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "category column name '%s' cannot name a dataset (empty, '.' "
                                  "or containing '/')",
                                  name ? name : "");
        if (is_fixed_name(name))
            return kseg_error_set(error, KSEG_EINVAL,
                                  "category column name '%s' collides with the layout's dataset "
                                  "of that name",
                                  name);
        for (size_t other = 0; other < c; other++)
            if (strcmp(name, options->categories[other]) == 0)
                return kseg_error_set(error, KSEG_EINVAL, "category column '%s' given twice",
                                      name);
    }

    writer = calloc(1, sizeof *writer);
    if (!writer)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    writer->file = H5I_INVALID_HID;
    writer->options = *options;
    writer->options.categories = NULL;
    if (writer->options.chunk_rows == 0)
        writer->options.chunk_rows = DEFAULT_CHUNK_ROWS;
    if (writer->options.chunk_rows > MAX_CHUNK_ROWS)
        writer->options.chunk_rows = MAX_CHUNK_ROWS;
    writer->final_path = kseg_io_strdup(path);
    writer->group = group_path_of(options->group);
    if (options->n_categories > 0) {
        writer->categories = calloc(options->n_categories + 1, sizeof *writer->categories);
        writer->category_paths = calloc(options->n_categories + 1, sizeof *writer->category_paths);
        writer->has_dictionary = calloc(options->n_categories, sizeof *writer->has_dictionary);
    }
    if (!writer->final_path || !writer->group ||
        (options->n_categories > 0 &&
         (!writer->categories || !writer->category_paths || !writer->has_dictionary))) {
        writer->options.n_categories = 0;
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t c = 0; c < options->n_categories; c++) {
        writer->categories[c] = kseg_io_strdup(options->categories[c]);
        writer->category_paths[c] = join_path(writer->group, options->categories[c]);
        if (!writer->categories[c] || !writer->category_paths[c]) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
            goto fail;
        }
    }

    if ((status = kseg_h5_writer_open(&writer->h5, path, error)) ||
        (status = writer_file_id(writer, error)))
        goto fail;

    const kseg_transaction_file_options *o = &writer->options;
    if ((status = create_column(writer, "customer_id", KSEG_STORE_INT64, 0, error)) ||
        (o->customer_valid &&
         (status = create_column(writer, "customer_valid", 0, 1, error))) ||
        (status = create_column(writer, "time", KSEG_STORE_INT64, 0, error)) ||
        (status = create_column(writer, "amount", KSEG_STORE_FLOAT64, 0, error)) ||
        (o->quantity &&
         (status = create_column(writer, "quantity", KSEG_STORE_FLOAT64, 0, error))) ||
        (o->price && (status = create_column(writer, "price", KSEG_STORE_FLOAT64, 0, error))) ||
        (o->invoice && (status = create_column(writer, "invoice", KSEG_STORE_INT64, 0, error))) ||
        (o->cancelled && (status = create_column(writer, "cancelled", 0, 1, error))))
        goto fail;
    char *time_path = join_path(writer->group, "time");
    if (!time_path) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    status = kseg_h5_write_attribute_string(writer->h5, time_path, "unit", "s", error);
    free(time_path);
    if (status)
        goto fail;
    for (size_t c = 0; c < o->n_categories; c++)
        if ((status = create_column(writer, writer->categories[c], KSEG_STORE_INT32, 0, error)) ||
            (status = kseg_h5_write_attribute_string(writer->h5, writer->category_paths[c], "kind",
                                                     "category", error)))
            goto fail;
    *writer_out = writer;
    return 0;

fail:
    kseg_h5_writer_abort(writer->h5);
    writer_free(writer);
    return status;
}

static int write_column(kseg_transaction_writer *writer, const char *name, size_t row_offset,
                        size_t rows, const void *data, kseg_error *error)
{
    if (!data)
        return kseg_error_set(error, KSEG_EINVAL, "%s: the block has no %s column",
                              writer->final_path, name);
    char *path = join_path(writer->group, name);
    if (!path)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    int status = kseg_h5_write_rows(writer->h5, path, row_offset, rows, data, error);
    free(path);
    return status;
}

int kseg_transaction_writer_write(kseg_transaction_writer *writer, size_t row_offset,
                                  const kseg_transactions *block, kseg_error *error)
{
    if (!writer || !block)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_transaction_writer_write: NULL argument");
    const kseg_transaction_file_options *o = &writer->options;
    const size_t rows = block->rows;
    if (rows == 0)
        return 0;
    if (row_offset > o->rows || rows > o->rows - row_offset)
        return kseg_error_set(error, KSEG_EINVAL, "%s: rows [%zu, %zu) are outside the file's %zu",
                              writer->final_path, row_offset, row_offset + rows, o->rows);
    if (o->n_categories > 0 && (!block->categories || block->n_categories != o->n_categories))
        return kseg_error_set(error, KSEG_EINVAL, "%s: the block has %zu category columns, the "
                              "file %zu",
                              writer->final_path, block->categories ? block->n_categories : 0,
                              o->n_categories);
    int status;
    if ((status = write_column(writer, "customer_id", row_offset, rows, block->customer_id,
                               error)) ||
        (o->customer_valid && (status = write_column(writer, "customer_valid", row_offset, rows,
                                                     block->customer_valid, error))) ||
        (status = write_column(writer, "time", row_offset, rows, block->time, error)) ||
        (status = write_column(writer, "amount", row_offset, rows, block->amount, error)) ||
        (o->quantity &&
         (status = write_column(writer, "quantity", row_offset, rows, block->quantity, error))) ||
        (o->price &&
         (status = write_column(writer, "price", row_offset, rows, block->price, error))) ||
        (o->invoice &&
         (status = write_column(writer, "invoice", row_offset, rows, block->invoice, error))) ||
        (o->cancelled &&
         (status = write_column(writer, "cancelled", row_offset, rows, block->cancelled, error))))
        return status;
    for (size_t c = 0; c < o->n_categories; c++)
        if ((status = write_column(writer, writer->categories[c], row_offset, rows,
                                   block->categories[c].codes, error)))
            return status;
    return 0;
}

int kseg_transaction_writer_dictionary(kseg_transaction_writer *writer, const char *column,
                                       const char *const *names, size_t count, kseg_error *error)
{
    if (!writer || !column)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_transaction_writer_dictionary: NULL argument");
    size_t category = writer->options.n_categories;
    for (size_t c = 0; c < writer->options.n_categories; c++)
        if (strcmp(writer->categories[c], column) == 0)
            category = c;
    if (category == writer->options.n_categories && strcmp(column, "customer_id") != 0 &&
        strcmp(column, "invoice") != 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: no column '%s' to attach a dictionary to (expected "
                              "customer_id, invoice or a category)",
                              writer->final_path, column);
    char *dictionaries = join_path(writer->group, "dictionaries");
    char *path = dictionaries ? join_path(dictionaries, column) : NULL;
    int status = path ? kseg_h5_write_strings(writer->h5, path, names, count, error)
                      : kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    free(path);
    free(dictionaries);
    if (!status && category < writer->options.n_categories)
        writer->has_dictionary[category] = 1;
    return status;
}

int kseg_transaction_writer_attribute_string(kseg_transaction_writer *writer, const char *name,
                                             const char *value, kseg_error *error)
{
    if (!writer)
        return kseg_error_set(error, KSEG_EINVAL, "transaction writer is NULL");
    return kseg_h5_write_attribute_string(writer->h5, writer->group, name, value, error);
}

int kseg_transaction_writer_attribute_int64(kseg_transaction_writer *writer, const char *name,
                                            int64_t value, kseg_error *error)
{
    if (!writer)
        return kseg_error_set(error, KSEG_EINVAL, "transaction writer is NULL");
    return kseg_h5_write_attribute_int64(writer->h5, writer->group, name, value, error);
}

int kseg_transaction_writer_attribute_double(kseg_transaction_writer *writer, const char *name,
                                             double value, kseg_error *error)
{
    if (!writer)
        return kseg_error_set(error, KSEG_EINVAL, "transaction writer is NULL");
    return kseg_h5_write_attribute_double(writer->h5, writer->group, name, value, error);
}

int kseg_transaction_writer_attribute_int64s(kseg_transaction_writer *writer, const char *name,
                                             const int64_t *values, size_t count,
                                             kseg_error *error)
{
    if (!writer || !name || (count > 0 && !values))
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_transaction_writer_attribute_int64s: NULL argument");
    kseg_io_h5_silence();
    int status = 0;
    hid_t group = H5I_INVALID_HID, space = H5I_INVALID_HID, attribute = H5I_INVALID_HID;
    hsize_t dims = count;
    /* A zero-length array (not a null dataspace), so that h5py and numpy read an empty array. */
    space = H5Screate_simple(1, &dims, NULL);
    group = H5Oopen(writer->file, writer->group, H5P_DEFAULT);
    if (space < 0 || group < 0)
        goto hdf5_failure;
    if (H5Aexists(group, name) > 0 && H5Adelete(group, name) < 0)
        goto hdf5_failure;
    attribute = H5Acreate2(group, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute < 0 || (count > 0 && H5Awrite(attribute, H5T_NATIVE_INT64, values) < 0))
        goto hdf5_failure;
    goto done;

hdf5_failure:;
    char reason[256];
    kseg_io_h5_reason(reason, sizeof reason);
    status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot write attribute \"%s\": %s",
                            writer->final_path, writer->group, name, reason);
done:
    if (attribute >= 0)
        H5Aclose(attribute);
    if (group >= 0)
        H5Oclose(group);
    if (space >= 0)
        H5Sclose(space);
    return status;
}

int kseg_transaction_writer_commit(kseg_transaction_writer *writer, kseg_error *error)
{
    if (!writer)
        return kseg_error_set(error, KSEG_EINVAL, "transaction writer is NULL");
    int status = 0;
    for (size_t c = 0; c < writer->options.n_categories && !status; c++)
        if (!writer->has_dictionary[c])
            status = kseg_error_set(error, KSEG_EINVAL,
                                    "%s: category %s has no dictionary (internal error)",
                                    writer->final_path, writer->categories[c]);
    if (!status)
        status = kseg_h5_write_attribute_int64(writer->h5, writer->group, "rows",
                                               (int64_t)writer->options.rows, error);
    if (status) {
        kseg_h5_writer_abort(writer->h5);
    } else {
        /* The borrowed file id dies with the atomic writer's close. */
        writer->file = H5I_INVALID_HID;
        status = kseg_h5_writer_commit(writer->h5, error);
    }
    writer_free(writer);
    return status;
}

void kseg_transaction_writer_abort(kseg_transaction_writer *writer)
{
    if (!writer)
        return;
    kseg_h5_writer_abort(writer->h5);
    writer_free(writer);
}

/* ================================================================ reader */

/* What a column must hold. */
typedef enum column_kind { KIND_INTEGER, KIND_NUMBER } column_kind;

typedef struct column {
    const char *name;  /* dataset name in the group */
    hid_t dataset;     /* H5I_INVALID_HID when absent */
    void *buffer;      /* reader-owned, capacity rows */
    kseg_io_direct *direct; /* where its rows lie in the file, when they can be read directly */
    int direct_checked;     /* whether direct was looked for (on the first read) */
} column;

enum {
    COL_CUSTOMER_ID,
    COL_CUSTOMER_VALID,
    COL_TIME,
    COL_AMOUNT,
    COL_QUANTITY,
    COL_PRICE,
    COL_INVOICE,
    COL_CANCELLED,
    N_COLUMNS
};

static const struct {
    const char *name;
    column_kind kind;
    int required;
    size_t element_size;
} column_specs[N_COLUMNS] = {
    {"customer_id", KIND_INTEGER, 1, sizeof(int64_t)},
    {"customer_valid", KIND_INTEGER, 0, sizeof(uint8_t)},
    {"time", KIND_INTEGER, 1, sizeof(int64_t)},
    {"amount", KIND_NUMBER, 1, sizeof(double)},
    {"quantity", KIND_NUMBER, 0, sizeof(double)},
    {"price", KIND_NUMBER, 0, sizeof(double)},
    {"invoice", KIND_INTEGER, 0, sizeof(int64_t)},
    {"cancelled", KIND_INTEGER, 0, sizeof(uint8_t)},
};

typedef struct category {
    char *name;
    hid_t dataset;
    char **names;      /* the dictionary */
    size_t n_names;
    int32_t *codes;    /* buffer */
    kseg_io_direct *direct;
    int direct_checked;
} category;

/* Room for "FILE:/group/name" in a direct read's messages (longer names are cut). */
#define WHERE_SIZE 512

struct kseg_transaction_reader {
    char *file_name;
    char *group_path;
    hid_t file;
    hid_t group;
    size_t rows;
    int64_t time_divisor;   /* unit: 1 for s, 1000 for ms, ... */
    column columns[N_COLUMNS];
    category *categories;
    size_t n_categories;
    kseg_category_column *category_views;
    size_t capacity;        /* rows the buffers hold */
    unsigned selected;      /* KSEG_TX_* bits: the columns reads load */
    int threads;            /* OpenMP threads of direct reads: the opening thread's count */
    int direct_disabled;    /* tests: every read goes through H5Dread */
    size_t direct_count;    /* datasets the last read took directly */
    kseg_io_direct_request *requests; /* [N_COLUMNS + n_categories] scratch of a read */
    char (*where)[WHERE_SIZE]; /* scratch: "FILE:/group/name" of each request */
    char reason[256];
};

/* Whether fixed column c (COL_*, whose bit is 1 << c) or the categories are read. */
static int column_selected(const kseg_transaction_reader *reader, int c)
{
    return (reader->selected >> c) & 1u;
}

static int categories_selected(const kseg_transaction_reader *reader)
{
    return (reader->selected & KSEG_TX_CATEGORIES) != 0;
}

static int reader_hdf5_failure(kseg_transaction_reader *reader, kseg_error *error,
                               const char *what, const char *name)
{
    kseg_io_h5_reason(reader->reason, sizeof reader->reason);
    return kseg_error_set(error, KSEG_EIO, "%s:%s/%s: %s: %s", reader->file_name,
                          reader->group_path, name, what, reader->reason);
}

/* The kind of object name is (H5I_DATASET, H5I_GROUP, ...), or H5I_BADID when it cannot be
   opened. H5Oopen + H5Iget_type works alike in HDF5 1.10 and 1.12+, unlike H5Oget_info. */
static H5I_type_t object_kind(hid_t location, const char *name)
{
    hid_t object = H5Oopen(location, name, H5P_DEFAULT);
    if (object < 0)
        return H5I_BADID;
    H5I_type_t kind = H5Iget_type(object);
    H5Oclose(object);
    return kind;
}

/* Opens a 1-D dataset of the group, checks its class and length; *rows receives the length. */
static int open_column(kseg_transaction_reader *reader, const char *name, column_kind kind,
                       hid_t *dataset_out, size_t *rows, kseg_error *error)
{
    int status = 0;
    hid_t dataset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    *dataset_out = H5I_INVALID_HID;
    H5I_type_t kind_found = object_kind(reader->group, name);
    if (kind_found == H5I_BADID)
        return reader_hdf5_failure(reader, error, "cannot inspect", name);
    if (kind_found != H5I_DATASET)
        return kseg_error_set(error, KSEG_ETYPE, "%s:%s/%s: is a group (expected a 1-D dataset)",
                              reader->file_name, reader->group_path, name);
    dataset = H5Dopen2(reader->group, name, H5P_DEFAULT);
    if (dataset < 0)
        return reader_hdf5_failure(reader, error, "cannot open", name);
    type = H5Dget_type(dataset);
    space = H5Dget_space(dataset);
    if (type < 0 || space < 0) {
        status = reader_hdf5_failure(reader, error, "cannot inspect", name);
        goto done;
    }
    H5T_class_t type_class = H5Tget_class(type);
    if (type_class != H5T_INTEGER && (kind == KIND_INTEGER || type_class != H5T_FLOAT)) {
        char type_name[64];
        kseg_io_h5_type_name(type, type_name, sizeof type_name);
        status = kseg_error_set(error, KSEG_ETYPE, "%s:%s/%s: is %s (expected %s)",
                                reader->file_name, reader->group_path, name, type_name,
                                kind == KIND_INTEGER ? "an integer type"
                                                     : "an integer or floating-point type");
        goto done;
    }
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (rank < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        status = reader_hdf5_failure(reader, error, "cannot inspect", name);
        goto done;
    }
    if (rank != 1) {
        status = kseg_error_set(error, KSEG_ESHAPE, "%s:%s/%s: has %d dimensions (expected 1)",
                                reader->file_name, reader->group_path, name, rank);
        goto done;
    }
    *rows = (size_t)dims[0];
    /* A chunked dataset without filters is read straight into the caller's buffer when the chunk
       cache is off; through the cache (the default) every chunk is copied once more. With
       filters the cache stays: a chunk read in two blocks is then decompressed once. */
    hid_t dcpl = H5Dget_create_plist(dataset);
    if (dcpl >= 0) {
        if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 0) {
            hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
            if (dapl >= 0 &&
                H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0,
                                   H5D_CHUNK_CACHE_W0_DEFAULT) >= 0) {
                hid_t direct = H5Dopen2(reader->group, name, dapl);
                if (direct >= 0) {
                    H5Dclose(dataset);
                    dataset = direct;
                }
            }
            if (dapl >= 0)
                H5Pclose(dapl);
        }
        H5Pclose(dcpl);
    }
    *dataset_out = dataset;
    dataset = H5I_INVALID_HID;

done:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (dataset >= 0)
        H5Dclose(dataset);
    return status;
}

/* Reads a 1-D string dataset (variable or fixed length) into a malloc'd array of strings. */
static int read_strings(kseg_transaction_reader *reader, const char *path, char ***values_out,
                        size_t *count_out, kseg_error *error)
{
    *values_out = NULL;
    *count_out = 0;
    hid_t dataset = H5Dopen2(reader->group, path, H5P_DEFAULT);
    if (dataset < 0)
        return reader_hdf5_failure(reader, error, "cannot open", path);
    char where[1024];
    snprintf(where, sizeof where, "%s:%s/%s", reader->file_name, reader->group_path, path);
    int status = kseg_io_h5_read_strings(dataset, where, values_out, count_out, error);
    H5Dclose(dataset);
    return status;
}

typedef struct member_list {
    char **names;
    size_t count, capacity;
    int failed;
} member_list;

static herr_t collect_member(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    member_list *list = data;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 16;
        char **names = realloc(list->names, capacity * sizeof *names);
        if (!names) {
            list->failed = 1;
            return -1;
        }
        list->names = names;
        list->capacity = capacity;
    }
    if (!(list->names[list->count] = kseg_io_strdup(name))) {
        list->failed = 1;
        return -1;
    }
    list->count++;
    return 0;
}

/* Non-zero when the dataset carries the string attribute kind = "category". */
static int is_category_dataset(hid_t group, const char *name)
{
    if (object_kind(group, name) != H5I_DATASET)
        return 0;
    hid_t object = H5Oopen(group, name, H5P_DEFAULT);
    if (object < 0)
        return 0;
    int result = 0;
    char **values = NULL;
    size_t count = 0;
    if (H5Aexists(object, "kind") > 0 &&
        kseg_io_h5_read_string_attribute(object, "kind", name, &values, &count, NULL) == 0)
        result = count == 1 && strcmp(values[0], "category") == 0;
    kseg_io_free_strings(values, count);
    H5Oclose(object);
    return result;
}

/* The unit attribute of time as a divisor to seconds (absent = seconds). */
static int time_unit(kseg_transaction_reader *reader, kseg_error *error)
{
    reader->time_divisor = 1;
    hid_t dataset = reader->columns[COL_TIME].dataset;
    if (H5Aexists(dataset, "unit") <= 0)
        return 0;
    char **values = NULL;
    size_t count = 0;
    char where[512];
    snprintf(where, sizeof where, "%s:%s/time", reader->file_name, reader->group_path);
    int status = kseg_io_h5_read_string_attribute(dataset, "unit", where, &values, &count, error);
    if (status)
        return status;
    static const struct {
        const char *unit;
        int64_t divisor;
    } units[] = {{"s", 1}, {"ms", 1000}, {"us", 1000000}, {"ns", 1000000000}};
    status = -1;
    for (size_t i = 0; count == 1 && i < sizeof units / sizeof units[0]; i++)
        if (strcmp(values[0], units[i].unit) == 0) {
            reader->time_divisor = units[i].divisor;
            status = 0;
        }
    if (status)
        status = kseg_error_set(error, KSEG_EFORMAT,
                                "%s: unit \"%s\" is not supported (expected s, ms, us or ns)",
                                where, count == 1 ? values[0] : "?");
    kseg_io_free_strings(values, count);
    return status;
}

int kseg_transaction_reader_open(kseg_transaction_reader **reader_out, const char *file,
                                 const char *group, kseg_error *error)
{
    kseg_transaction_reader *reader = NULL;
    member_list members = {0};
    int status = 0;
    if (!reader_out)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_transaction_reader_open: reader is NULL");
    *reader_out = NULL;
    reader = calloc(1, sizeof *reader);
    if (!reader)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    reader->file = reader->group = H5I_INVALID_HID;
    reader->selected = KSEG_TX_ALL;
    /* Direct reads use the thread count of the thread that opens the reader (the CLI's --threads),
       not that of the thread that reads, which may be a helper thread with the default count. */
    reader->threads = omp_get_max_threads();
    for (int c = 0; c < N_COLUMNS; c++) {
        reader->columns[c].name = column_specs[c].name;
        reader->columns[c].dataset = H5I_INVALID_HID;
    }
    reader->file_name = kseg_io_strdup(file ? file : "");
    reader->group_path = group_path_of(group);
    if (!reader->file_name || !reader->group_path) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    if ((status = kseg_io_h5_open_read(file, &reader->file, error)))
        goto fail;
    int exists = kseg_io_h5_path_exists(reader->file, reader->group_path);
    if (exists != 1 || object_kind(reader->file, reader->group_path) != H5I_GROUP) {
        status = kseg_error_set(error, KSEG_ENOENT,
                                "%s: no group %s (a transaction file has one, e.g. written by "
                                "'kseg import transactions')",
                                reader->file_name, reader->group_path);
        goto fail;
    }
    reader->group = H5Gopen2(reader->file, reader->group_path, H5P_DEFAULT);
    if (reader->group < 0) {
        status = reader_hdf5_failure(reader, error, "cannot open the group", "");
        goto fail;
    }

    /* The fixed columns: required ones must exist; every present one must have the right class
       and the same length as customer_id. */
    const char *length_from = NULL;
    for (int c = 0; c < N_COLUMNS; c++) {
        const char *name = column_specs[c].name;
        htri_t present = H5Lexists(reader->group, name, H5P_DEFAULT);
        if (present <= 0) {
            if (column_specs[c].required) {
                status = kseg_error_set(error, KSEG_ENOENT,
                                        "%s:%s: missing dataset %s (a transaction group needs "
                                        "customer_id, time and amount)",
                                        reader->file_name, reader->group_path, name);
                goto fail;
            }
            continue;
        }
        size_t rows = 0;
        if ((status = open_column(reader, name, column_specs[c].kind, &reader->columns[c].dataset,
                                  &rows, error)))
            goto fail;
        if (!length_from) {
            reader->rows = rows;
            length_from = name;
        } else if (rows != reader->rows) {
            status = kseg_error_set(error, KSEG_ESHAPE,
                                    "%s:%s: %s has %zu rows but %s has %zu (columns must have "
                                    "equal lengths)",
                                    reader->file_name, reader->group_path, name, rows,
                                    length_from, reader->rows);
            goto fail;
        }
    }
    if ((status = time_unit(reader, error)))
        goto fail;

    /* Categories: every dataset marked kind = "category", in name order, with its dictionary. */
    hsize_t index = 0;
    if (H5Literate(reader->group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_member, &members) <
        0) {
        status = members.failed ? kseg_error_set(error, KSEG_ENOMEM, "out of memory")
                                : reader_hdf5_failure(reader, error, "cannot list", "");
        goto fail;
    }
    reader->categories = calloc(members.count + 1, sizeof *reader->categories);
    reader->category_views = calloc(members.count + 1, sizeof *reader->category_views);
    if (!reader->categories || !reader->category_views) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t m = 0; m < members.count; m++) {
        const char *name = members.names[m];
        if (is_fixed_name(name) || !is_category_dataset(reader->group, name))
            continue;
        category *cat = &reader->categories[reader->n_categories];
        cat->dataset = H5I_INVALID_HID;
        cat->name = kseg_io_strdup(name);
        reader->n_categories++;
        if (!cat->name) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
            goto fail;
        }
        size_t rows = 0;
        if ((status = open_column(reader, name, KIND_INTEGER, &cat->dataset, &rows, error)))
            goto fail;
        if (rows != reader->rows) {
            status = kseg_error_set(error, KSEG_ESHAPE,
                                    "%s:%s: category %s has %zu rows but %s has %zu (columns "
                                    "must have equal lengths)",
                                    reader->file_name, reader->group_path, name, rows,
                                    length_from, reader->rows);
            goto fail;
        }
        char *dictionary = join_path("dictionaries", name);
        if (!dictionary) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
            goto fail;
        }
        if (H5Lexists(reader->group, "dictionaries", H5P_DEFAULT) <= 0 ||
            H5Lexists(reader->group, dictionary, H5P_DEFAULT) <= 0) {
            status = kseg_error_set(error, KSEG_ENOENT,
                                    "%s:%s: category %s has no dictionary (expected dataset "
                                    "%s/%s)",
                                    reader->file_name, reader->group_path, name,
                                    reader->group_path, dictionary);
            free(dictionary);
            goto fail;
        }
        status = read_strings(reader, dictionary, &cat->names, &cat->n_names, error);
        free(dictionary);
        if (status)
            goto fail;
    }

    /* The rows attribute, where present, must agree: a mismatch means a damaged file. */
    if (H5Aexists(reader->group, "rows") > 0) {
        int64_t rows_attribute = -1;
        hid_t attribute = H5Aopen(reader->group, "rows", H5P_DEFAULT);
        herr_t read = attribute >= 0 ? H5Aread(attribute, H5T_NATIVE_INT64, &rows_attribute) : -1;
        if (attribute >= 0)
            H5Aclose(attribute);
        if (read >= 0 && rows_attribute != (int64_t)reader->rows) {
            status = kseg_error_set(error, KSEG_EFORMAT,
                                    "%s:%s: attribute rows says %lld but the datasets have %zu "
                                    "rows",
                                    reader->file_name, reader->group_path,
                                    (long long)rows_attribute, reader->rows);
            goto fail;
        }
    }
    kseg_io_free_strings(members.names, members.count);
    *reader_out = reader;
    return 0;

fail:
    kseg_io_free_strings(members.names, members.count);
    kseg_transaction_reader_close(reader);
    return status;
}

size_t kseg_transaction_reader_rows(const kseg_transaction_reader *reader)
{
    return reader ? reader->rows : 0;
}

/* Grows every buffer to hold count rows. */
static int reserve(kseg_transaction_reader *reader, size_t count, kseg_error *error)
{
    if (count <= reader->capacity)
        return 0;
    /* Every present column grows, selected or not (a later select may add it back): unselected
       ones by realloc of a buffer that was never touched, which costs no memory until read. */
    for (int c = 0; c < N_COLUMNS; c++) {
        if (reader->columns[c].dataset < 0)
            continue;
        void *buffer = realloc(reader->columns[c].buffer, count * column_specs[c].element_size);
        if (!buffer)
            goto out_of_memory;
        kseg_advise_huge_pages(buffer, count * column_specs[c].element_size);
        reader->columns[c].buffer = buffer;
    }
    for (size_t k = 0; k < reader->n_categories; k++) {
        int32_t *codes = realloc(reader->categories[k].codes, count * sizeof *codes);
        if (!codes)
            goto out_of_memory;
        kseg_advise_huge_pages(codes, count * sizeof *codes);
        reader->categories[k].codes = codes;
    }
    reader->capacity = count;
    return 0;
out_of_memory:
    return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for a block of %zu transactions",
                          reader->file_name, count);
}

static int read_block(kseg_transaction_reader *reader, hid_t dataset, const char *name,
                      hid_t memory_type, size_t offset, size_t count, void *buffer,
                      kseg_error *error)
{
    int status = 0;
    hid_t file_space = H5Dget_space(dataset), memory_space = H5I_INVALID_HID;
    hsize_t start = offset, length = count;
    memory_space = H5Screate_simple(1, &length, NULL);
    if (file_space < 0 || memory_space < 0 ||
        H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start, NULL, &length, NULL) < 0 ||
        H5Dread(dataset, memory_type, memory_space, file_space, H5P_DEFAULT, buffer) < 0)
        status = reader_hdf5_failure(reader, error, "cannot read rows", name);
    if (memory_space >= 0)
        H5Sclose(memory_space);
    if (file_space >= 0)
        H5Sclose(file_space);
    return status;
}

/* Looks once, on the first read of a dataset, for where its rows lie in the file. */
static int find_direct(kseg_transaction_reader *reader, hid_t dataset, hid_t memory_type,
                       kseg_io_direct **direct, int *checked, kseg_error *error)
{
    if (*checked)
        return 0;
    if (!reader->requests) {
        size_t most = N_COLUMNS + reader->n_categories;
        reader->requests = calloc(most, sizeof *reader->requests);
        reader->where = calloc(most, sizeof *reader->where);
        if (!reader->requests || !reader->where)
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    }
    int found = kseg_io_direct_open(dataset, memory_type, direct, error);
    if (found < 0)
        return found;
    *checked = 1;
    return 0;
}

static void add_request(kseg_transaction_reader *reader, size_t index,
                        const kseg_io_direct *direct, const char *name, size_t offset,
                        size_t count, void *buffer)
{
    snprintf(reader->where[index], WHERE_SIZE, "%s:%s/%s", reader->file_name, reader->group_path,
             name);
    reader->requests[index] = (kseg_io_direct_request){
        .plan = direct, .first = offset, .count = count, .destination = buffer,
        .where = reader->where[index]};
}

void kseg_io_transaction_reader_set_direct(struct kseg_transaction_reader *reader, int enabled)
{
    if (reader)
        reader->direct_disabled = !enabled;
}

size_t kseg_io_transaction_reader_direct_count(const struct kseg_transaction_reader *reader)
{
    return reader ? reader->direct_count : 0;
}

/* Floor division, so that negative times before the epoch round down like positive ones. */
static int64_t floor_divide(int64_t value, int64_t divisor)
{
    int64_t quotient = value / divisor;
    return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient;
}

int kseg_transaction_reader_read(kseg_transaction_reader *reader, size_t offset, size_t count,
                                 kseg_transactions *block, kseg_error *error)
{
    if (!reader || !block)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_transaction_reader_read: NULL argument");
    kseg_io_h5_silence();
    memset(block, 0, sizeof *block);
    if (offset > reader->rows || count > reader->rows - offset)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%s: rows [%zu, %zu) are outside the %zu transactions",
                              reader->file_name, reader->group_path, offset, offset + count,
                              reader->rows);
    int status = reserve(reader, count > 0 ? count : 1, error);
    if (status)
        return status;
    reader->direct_count = 0;
    if (count > 0) {
        /* Datasets that qualify are read with pread on several threads, after the others (read
           here by HDF5): no HDF5 call runs while those threads do. */
        size_t n_requests = 0;
        for (int c = 0; c < N_COLUMNS; c++) {
            if (reader->columns[c].dataset < 0 || !column_selected(reader, c))
                continue;
            hid_t memory_type = column_specs[c].element_size == 1 ? H5T_NATIVE_UINT8
                                : column_specs[c].kind == KIND_NUMBER ? H5T_NATIVE_DOUBLE
                                                                      : H5T_NATIVE_INT64;
            if ((status = find_direct(reader, reader->columns[c].dataset, memory_type,
                                      &reader->columns[c].direct,
                                      &reader->columns[c].direct_checked, error)))
                return status;
            if (reader->columns[c].direct && !reader->direct_disabled)
                add_request(reader, n_requests++, reader->columns[c].direct, column_specs[c].name,
                            offset, count, reader->columns[c].buffer);
            else if ((status = read_block(reader, reader->columns[c].dataset,
                                          column_specs[c].name, memory_type, offset, count,
                                          reader->columns[c].buffer, error)))
                return status;
        }
        for (size_t k = 0; categories_selected(reader) && k < reader->n_categories; k++) {
            category *cat = &reader->categories[k];
            if ((status = find_direct(reader, cat->dataset, H5T_NATIVE_INT32, &cat->direct,
                                      &cat->direct_checked, error)))
                return status;
            if (cat->direct && !reader->direct_disabled)
                add_request(reader, n_requests++, cat->direct, cat->name, offset, count,
                            cat->codes);
            else if ((status = read_block(reader, cat->dataset, cat->name, H5T_NATIVE_INT32,
                                          offset, count, cat->codes, error)))
                return status;
        }
        if (n_requests > 0 &&
            (status = kseg_io_direct_read(reader->requests, n_requests, reader->threads, error)))
            return status;
        reader->direct_count = n_requests;
        if (reader->time_divisor != 1 && column_selected(reader, COL_TIME)) {
            int64_t *time = reader->columns[COL_TIME].buffer;
            for (size_t i = 0; i < count; i++)
                time[i] = floor_divide(time[i], reader->time_divisor);
        }
        for (size_t k = 0; categories_selected(reader) && k < reader->n_categories; k++) {
            category *cat = &reader->categories[k];
            /* A code outside the dictionary would index past its names in every consumer. */
            for (size_t i = 0; i < count; i++)
                if (cat->codes[i] < 0 || (size_t)cat->codes[i] >= cat->n_names)
                    return kseg_error_set(error, KSEG_EFORMAT,
                                          "%s:%s/%s: row %zu has code %d but the dictionary has "
                                          "%zu names",
                                          reader->file_name, reader->group_path, cat->name,
                                          offset + i, (int)cat->codes[i], cat->n_names);
        }
    }
    block->rows = count;
#define KSEG_SELECTED_BUFFER(c) (column_selected(reader, (c)) ? reader->columns[(c)].buffer : NULL)
    block->customer_id = KSEG_SELECTED_BUFFER(COL_CUSTOMER_ID);
    block->customer_valid = KSEG_SELECTED_BUFFER(COL_CUSTOMER_VALID);
    block->time = KSEG_SELECTED_BUFFER(COL_TIME);
    block->amount = KSEG_SELECTED_BUFFER(COL_AMOUNT);
    block->quantity = KSEG_SELECTED_BUFFER(COL_QUANTITY);
    block->price = KSEG_SELECTED_BUFFER(COL_PRICE);
    block->invoice = KSEG_SELECTED_BUFFER(COL_INVOICE);
    block->cancelled = KSEG_SELECTED_BUFFER(COL_CANCELLED);
#undef KSEG_SELECTED_BUFFER
    if (!categories_selected(reader))
        return 0;
    for (size_t k = 0; k < reader->n_categories; k++) {
        kseg_category_column *view = &reader->category_views[k];
        view->name = reader->categories[k].name;
        view->codes = reader->categories[k].codes;
        view->names = (const char *const *)reader->categories[k].names;
        view->n_names = reader->categories[k].n_names;
    }
    block->categories = reader->n_categories ? reader->category_views : NULL;
    block->n_categories = reader->n_categories;
    return 0;
}

int kseg_transaction_reader_select(kseg_transaction_reader *reader, unsigned columns,
                                   kseg_error *error)
{
    if (!reader)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_transaction_reader_select: reader is NULL");
    if (columns & ~(unsigned)KSEG_TX_ALL)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_transaction_reader_select: unknown column bits 0x%x",
                              columns & ~(unsigned)KSEG_TX_ALL);
    reader->selected = columns;
    return 0;
}

void kseg_transaction_reader_close(kseg_transaction_reader *reader)
{
    if (!reader)
        return;
    kseg_io_h5_silence();
    for (int c = 0; c < N_COLUMNS; c++) {
        if (reader->columns[c].dataset >= 0)
            H5Dclose(reader->columns[c].dataset);
        free(reader->columns[c].buffer);
        kseg_io_direct_free(reader->columns[c].direct);
    }
    for (size_t k = 0; k < reader->n_categories; k++) {
        category *cat = &reader->categories[k];
        if (cat->dataset >= 0)
            H5Dclose(cat->dataset);
        free(cat->name);
        kseg_io_free_strings(cat->names, cat->n_names);
        free(cat->codes);
        kseg_io_direct_free(cat->direct);
    }
    free(reader->categories);
    free(reader->category_views);
    free(reader->requests);
    free(reader->where);
    if (reader->group >= 0)
        H5Gclose(reader->group);
    if (reader->file >= 0)
        H5Fclose(reader->file);
    free(reader->file_name);
    free(reader->group_path);
    free(reader);
}
