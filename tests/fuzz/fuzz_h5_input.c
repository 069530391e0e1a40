/* Structure-aware libFuzzer target for kseg's HDF5 readers (io/h5_read.c, io/h5_common.c,
 * io/transactions_io.c). The bytes are not an HDF5 file (libhdf5's own parser is not ours to fix):
 * they decode into a list of objects (datasets of rank 0-3 with any dims, integer, float, string,
 * compound or enum types and chosen values, groups, attributes of every shape, hard and soft
 * links) that are written with the HDF5 API. Then every reader kseg's commands use runs on that
 * file: the customer table (2-D dataset or column group, column selection, row ranges, ids),
 * the vectors, strings and attributes predict reads from a model, the listing of `kseg inspect`,
 * and the transaction reader followed by the RFM aggregation. */
#define _GNU_SOURCE /* mkdtemp, nftw (fuzz_common.h) */
#include <float.h>

#include <hdf5.h>

#include "fuzz_common.h"

/* Bounds that keep one run fast: elements per dataset and in the whole file, and objects. */
#define MAX_ELEMENTS 4096
#define MAX_FILE_ELEMENTS 16384
#define MAX_OPERATIONS 32

static const char *const groups[] = {"/",     "/customers",    "/transactions",
                                     "/transactions/dictionaries", "/model", "/model/prepare",
                                     "/rfm",  "/labels"};
static const char *const leaves[] = {
    "features", "id",       "customer_id", "customer_valid", "time",          "amount",
    "quantity", "price",    "invoice",     "cancelled",      "Country",       "channel",
    "recency",  "frequency", "monetary",   "tenure",         "centroids",     "center",
    "scale",    "segment_names", "cluster_segment", "feature_mean", "customers",
    "transactions", "dictionaries", "a"};
static const char *const attribute_names[] = {"columns", "unit", "kind", "rows", "scaling",
                                              "kernel"};
static const char *const words[] = {"category", "s",        "ms",       "us",      "ns",
                                    "h",        "standard", "robust",   "none",    "recency",
                                    "frequency", "monetary", "tenure",  "a",       "id",
                                    "Country",  "features", "",         "x/y",     "Germany"};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* Element types a dataset or attribute can have. */
enum {
    T_INT8, T_INT16, T_INT32, T_INT64, T_UINT8, T_UINT16, T_UINT32, T_UINT64, T_FLOAT32,
    T_FLOAT64, T_INT32_BE, T_FLOAT64_BE, T_FIXED_STRING, T_STRING, T_COMPOUND, T_BOOL_ENUM,
    N_TYPES
};

typedef struct compound_element {
    int32_t a;
    double b;
} compound_element;

/* The file type of an element type (created: the caller closes it). */
static hid_t file_type_of(int type, size_t string_size)
{
    switch (type) {
    case T_INT8: return H5Tcopy(H5T_STD_I8LE);
    case T_INT16: return H5Tcopy(H5T_STD_I16LE);
    case T_INT32: return H5Tcopy(H5T_STD_I32LE);
    case T_INT64: return H5Tcopy(H5T_STD_I64LE);
    case T_UINT8: return H5Tcopy(H5T_STD_U8LE);
    case T_UINT16: return H5Tcopy(H5T_STD_U16LE);
    case T_UINT32: return H5Tcopy(H5T_STD_U32LE);
    case T_UINT64: return H5Tcopy(H5T_STD_U64LE);
    case T_FLOAT32: return H5Tcopy(H5T_IEEE_F32LE);
    case T_FLOAT64: return H5Tcopy(H5T_IEEE_F64LE);
    case T_INT32_BE: return H5Tcopy(H5T_STD_I32BE);
    case T_FLOAT64_BE: return H5Tcopy(H5T_IEEE_F64BE);
    case T_FIXED_STRING:
    case T_STRING: {
        hid_t string = H5Tcopy(H5T_C_S1);
        H5Tset_size(string, type == T_STRING ? H5T_VARIABLE : string_size);
        H5Tset_cset(string, H5T_CSET_UTF8);
        return string;
    }
    case T_COMPOUND: {
        hid_t compound = H5Tcreate(H5T_COMPOUND, sizeof(compound_element));
        H5Tinsert(compound, "a", HOFFSET(compound_element, a), H5T_NATIVE_INT32);
        H5Tinsert(compound, "b", HOFFSET(compound_element, b), H5T_NATIVE_DOUBLE);
        return compound;
    }
    default: { /* h5py's bool */
        hid_t enumeration = H5Tenum_create(H5T_NATIVE_INT8);
        int8_t no = 0, yes = 1;
        H5Tenum_insert(enumeration, "FALSE", &no);
        H5Tenum_insert(enumeration, "TRUE", &yes);
        return enumeration;
    }
    }
}

/* The memory type the values are written from, for numeric types. */
static hid_t memory_type_of(int type)
{
    switch (type) {
    case T_INT8: return H5T_NATIVE_INT8;
    case T_INT16: return H5T_NATIVE_INT16;
    case T_INT32:
    case T_INT32_BE: return H5T_NATIVE_INT32;
    case T_INT64: return H5T_NATIVE_INT64;
    case T_UINT8: return H5T_NATIVE_UINT8;
    case T_UINT16: return H5T_NATIVE_UINT16;
    case T_UINT32: return H5T_NATIVE_UINT32;
    case T_UINT64: return H5T_NATIVE_UINT64;
    case T_FLOAT32: return H5T_NATIVE_FLOAT;
    default: return H5T_NATIVE_DOUBLE;
    }
}

static int is_string_type(int type)
{
    return type == T_FIXED_STRING || type == T_STRING;
}

/* Values that break readers: extremes, NaN, infinities, subnormals, times in seconds and in
   nanoseconds. */
static const double special_doubles[] = {0,     1,         -1,      NAN,     INFINITY, -INFINITY,
                                         1e300, -1e300,    0.5,     4.9e-324, DBL_MAX, -DBL_MAX,
                                         86400, 1.29e9,    1.3e18,  -1.3e18, 9.3e18,   -9.3e18,
                                         2.5,   1e15};
static const int64_t special_integers[] = {0,         1,          -1,         2,
                                           3,         127,        -128,       255,
                                           32767,     65535,      INT32_MAX,  INT32_MIN,
                                           INT64_MAX, INT64_MIN,  1291161960, 1323433000,
                                           86400,     -86400,     1000000000000000000,
                                           -1000000000000000000};

/* Fills n elements of a numeric type (in its memory type) from the cursor: zeros, row numbers,
   raw input bytes, special values, small codes, or times. */
static void fill_numeric(fuzz_cursor *c, int type, void *buffer, size_t n)
{
    const size_t size = H5Tget_size(memory_type_of(type));
    const int floating = type == T_FLOAT32 || type == T_FLOAT64 || type == T_FLOAT64_BE;
    const uint8_t mode = fuzz_u8(c) % 6;
    const uint8_t parameter = fuzz_u8(c);
    unsigned char *bytes = buffer;
    for (size_t i = 0; i < n; i++) {
        double real = 0;
        int64_t integer = 0;
        switch (mode) {
        case 0:
            break;
        case 1:
            real = (double)i;
            integer = (int64_t)i;
            break;
        case 2:
            for (size_t b = 0; b < size; b++)
                bytes[i * size + b] = fuzz_u8(c);
            continue;
        case 3: {
            uint8_t pick = fuzz_u8(c);
            real = special_doubles[pick % COUNT(special_doubles)];
            integer = special_integers[pick % COUNT(special_integers)];
            break;
        }
        case 4:
            real = (double)(i % (1u + parameter % 7u)) - (parameter & 0x80 ? 1 : 0);
            integer = (int64_t)(i % (1u + parameter % 7u)) - (parameter & 0x80 ? 1 : 0);
            break;
        default:
            integer = 1291161960 + (int64_t)i * 3600 * (1 + parameter);
            real = (double)integer;
            break;
        }
        if (floating) {
            if (type == T_FLOAT32) {
                float narrow = (float)real;
                memcpy(bytes + i * size, &narrow, sizeof narrow);
            } else {
                memcpy(bytes + i * size, &real, sizeof real);
            }
        } else {
            /* Keep the low bytes (little-endian): wrapping is what a narrow type does. */
            memcpy(bytes + i * size, &integer, size);
        }
    }
}

/* Strings for a string dataset or attribute: words, or raw bytes (fixed strings) / raw
   NUL-terminated runs (variable strings). *storage is malloc'd when needed. */
static void fill_strings(fuzz_cursor *c, int type, size_t string_size, size_t n,
                         const char **pointers, char *fixed)
{
    const uint8_t mode = fuzz_u8(c) % 3;
    static char raw[8][17];
    for (size_t i = 0; i < n; i++) {
        const char *word = words[fuzz_u8(c) % COUNT(words)];
        if (mode == 2 && i < 8) {
            size_t length = fuzz_u8(c) % 17;
            for (size_t b = 0; b < length; b++)
                raw[i][b] = (char)fuzz_u8(c);
            raw[i][length] = '\0';
            word = raw[i];
        } else if (mode == 1) {
            word = leaves[fuzz_u8(c) % COUNT(leaves)];
        }
        if (type == T_STRING) {
            pointers[i] = word;
        } else {
            memset(fixed + i * string_size, mode == 2 ? ' ' : 0, string_size);
            size_t length = strlen(word) < string_size ? strlen(word) : string_size;
            memcpy(fixed + i * string_size, word, length);
        }
    }
}

/* The dataspace of a rank chosen from the cursor: scalar, null, or 1-3 dims (extendible, so
   that any chunk shape is allowed). *n receives the number of elements. */
static hid_t make_space(fuzz_cursor *c, size_t limit, size_t *n, int *rank_out)
{
    static const hsize_t special_dims[] = {0, 1, 2, 3, 64, 100, 257, 4096};
    uint8_t shape = fuzz_u8(c);
    int rank = shape % 5;
    *rank_out = rank;
    if (rank == 0) {
        *n = 1;
        return H5Screate(H5S_SCALAR);
    }
    if (rank == 4) {
        *n = 0;
        *rank_out = 0;
        return H5Screate(H5S_NULL);
    }
    hsize_t dims[3], maximum[3];
    size_t total = 1;
    for (int k = 0; k < rank; k++) {
        uint8_t b = fuzz_u8(c);
        dims[k] = b < 224 ? b % 9 : special_dims[b % COUNT(special_dims)];
        maximum[k] = shape & 0x80 ? H5S_UNLIMITED : dims[k];
    }
    for (;;) {
        total = 1;
        for (int k = 0; k < rank; k++)
            total *= (size_t)dims[k];
        if (total <= limit)
            break;
        int largest = 0;
        for (int k = 1; k < rank; k++)
            if (dims[k] > dims[largest])
                largest = k;
        dims[largest] /= 2;
    }
    *n = total;
    return H5Screate_simple(rank, dims, maximum);
}

/* Creates a dataset (and its parent groups) at path, shape, type, layout and values from the
   cursor. Failures (a name taken, a parent that is a dataset) just skip the object. */
static void make_dataset(hid_t file, const char *path, fuzz_cursor *c, size_t *budget)
{
    const int type = fuzz_u8(c) % N_TYPES;
    const size_t string_size = 1 + fuzz_u8(c) % 12;
    size_t n = 0;
    int rank = 0;
    hid_t space = make_space(c, *budget < MAX_ELEMENTS ? *budget : MAX_ELEMENTS, &n, &rank);
    hid_t file_type = file_type_of(type, string_size);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    /* Layout byte: 0 contiguous, 1 chunked, 2 chunked gzip, 3 compact; for gzip, bit 2 leaves
       out the shuffle and bit 3 overwrites the first chunk with bytes from the input (stored
       with filter mask bits 4-5), which the parallel inflater (io/h5_chunks.c) must refuse
       cleanly. The high bits are new: seeds written before them keep their meaning. */
    const uint8_t layout_byte = fuzz_u8(c), layout = layout_byte % 4;
    int damage_chunk = 0, shuffled = 0;
    size_t chunk_bytes = H5Tget_size(file_type);
    if (layout && rank > 0 && H5Sget_simple_extent_type(space) == H5S_SIMPLE) {
        hsize_t dims[3], maximum[3], chunk[3];
        H5Sget_simple_extent_dims(space, dims, maximum);
        int extendible = 0;
        for (int k = 0; k < rank; k++) {
            chunk[k] = 1 + fuzz_u8(c) % 5;
            chunk_bytes *= chunk[k];
            extendible |= maximum[k] == H5S_UNLIMITED;
        }
        if (layout == 3 && !extendible) {
            H5Pset_layout(dcpl, H5D_COMPACT);
        } else {
            H5Pset_chunk(dcpl, rank, chunk);
            if (layout == 2) {
                shuffled = !(layout_byte & 4);
                if (shuffled)
                    H5Pset_shuffle(dcpl);
                H5Pset_deflate(dcpl, 1);
                damage_chunk = (layout_byte & 8) != 0;
            }
        }
    }
    hid_t dataset = H5Dcreate2(file, path, file_type, space, lcpl, dcpl, H5P_DEFAULT);
    if (dataset >= 0 && n > 0) {
        *budget -= n < *budget ? n : *budget;
        if (is_string_type(type)) {
            const char **pointers = calloc(n, sizeof *pointers);
            char *fixed = calloc(n, string_size);
            FUZZ_CHECK(pointers && fixed);
            fill_strings(c, type, string_size, n, pointers, fixed);
            H5Dwrite(dataset, file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                     type == T_STRING ? (const void *)pointers : (const void *)fixed);
            free(pointers);
            free(fixed);
        } else if (type == T_COMPOUND || type == T_BOOL_ENUM) {
            size_t element = H5Tget_size(file_type);
            unsigned char *values = calloc(n, element);
            FUZZ_CHECK(values != NULL);
            for (size_t i = 0; i < n * element && fuzz_left(c) > 0; i++)
                values[i] = type == T_BOOL_ENUM ? fuzz_u8(c) & 1 : fuzz_u8(c);
            H5Dwrite(dataset, file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
            free(values);
        } else {
            void *values = calloc(n, 8);
            FUZZ_CHECK(values != NULL);
            fill_numeric(c, type, values, n);
            H5Dwrite(dataset, memory_type_of(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
            free(values);
        }
    }
    if (dataset >= 0 && damage_chunk && n > 0) {
        /* Any bytes as a deflate stream; a chunk stored with deflate skipped gets exactly its
           size, since HDF5 1.10's own read of a shorter one overruns its buffer (libhdf5, not
           kseg: H5VM_memcpyvv from H5Dread). The kseg reader refuses that case itself. Only
           into a dataset with values: H5Dwrite_chunk crashes in an empty one's chunk index. */
        const uint32_t mask = (uint32_t)(layout_byte >> 4) & 3u;
        const int deflate_skipped = (mask >> (shuffled ? 1 : 0)) & 1u;
        uint8_t stored[5 * 5 * 5 * 8];
        const size_t length = deflate_skipped ? chunk_bytes : 1 + fuzz_u8(c) % 64;
        for (size_t i = 0; i < length && i < sizeof stored; i++)
            stored[i] = fuzz_u8(c);
        const hsize_t origin[3] = {0, 0, 0};
        if (length <= sizeof stored)
            H5Dwrite_chunk(dataset, H5P_DEFAULT, mask, origin, length, stored);
    }
    if (dataset >= 0)
        H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Tclose(file_type);
    H5Sclose(space);
}

/* Writes (or replaces) an attribute on the object at path: a string, an array of strings of
   any rank, integers, floats, or nothing (a null dataspace). */
static void make_attribute(hid_t file, const char *path, fuzz_cursor *c)
{
    const char *name = attribute_names[fuzz_u8(c) % COUNT(attribute_names)];
    const uint8_t kind = fuzz_u8(c) % 5;
    static const int types[] = {T_STRING, T_FIXED_STRING, T_INT64, T_FLOAT64, T_INT8};
    const int type = types[kind];
    const size_t string_size = 1 + fuzz_u8(c) % 12;
    hid_t object = H5Oopen(file, path, H5P_DEFAULT);
    if (object < 0)
        return;
    if (H5Aexists(object, name) > 0)
        H5Adelete(object, name);
    size_t n = 0;
    int rank = 0;
    hid_t space = make_space(c, 64, &n, &rank);
    hid_t file_type = file_type_of(type, string_size);
    hid_t attribute = H5Acreate2(object, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute >= 0 && n > 0) {
        if (is_string_type(type)) {
            const char *pointers[64];
            char fixed[64 * 12];
            fill_strings(c, type, string_size, n, pointers, fixed);
            H5Awrite(attribute, file_type,
                     type == T_STRING ? (const void *)pointers : (const void *)fixed);
        } else {
            unsigned char values[64 * 8];
            fill_numeric(c, type, values, n);
            H5Awrite(attribute, memory_type_of(type), values);
        }
    }
    if (attribute >= 0)
        H5Aclose(attribute);
    H5Tclose(file_type);
    H5Sclose(space);
    H5Oclose(object);
}

/* A path: one of the groups, or a group and a leaf name. */
static void choose_path(fuzz_cursor *c, char *path, size_t size)
{
    const uint8_t choice = fuzz_u8(c);
    const char *group = groups[(choice >> 5) % COUNT(groups)];
    if ((choice & 31) >= COUNT(leaves)) {
        snprintf(path, size, "%s", group);
        return;
    }
    snprintf(path, size, "%s%s%s", group, strcmp(group, "/") == 0 ? "" : "/",
             leaves[choice & 31]);
}

/* Builds the file from the front of the input; the cursor is left where reading choices
   begin. */
static void build_file(const char *file_name, fuzz_cursor *c)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    /* Creation order tracked on some files: the readers must not depend on the index kind. */
    if (fuzz_u8(c) & 1)
        H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t file = H5Fcreate(file_name, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    FUZZ_CHECK(file >= 0);
    size_t budget = MAX_FILE_ELEMENTS;
    const size_t operations = fuzz_u8(c) % MAX_OPERATIONS;
    for (size_t o = 0; o < operations && fuzz_left(c) > 0; o++) {
        char path[128], target[128];
        const uint8_t operation = fuzz_u8(c) % 8;
        choose_path(c, path, sizeof path);
        switch (operation) {
        case 0:
        case 1:
        case 2:
            make_dataset(file, path, c, &budget);
            break;
        case 3:
        case 4:
            make_attribute(file, path, c);
            break;
        case 5: {
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lcpl, 1);
            hid_t group = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            if (group >= 0)
                H5Gclose(group);
            H5Pclose(lcpl);
            break;
        }
        case 6: /* a hard link: an object reachable twice, or a cycle of groups */
            choose_path(c, target, sizeof target);
            H5Lcreate_hard(file, target, file, path, H5P_DEFAULT, H5P_DEFAULT);
            break;
        default: /* a soft link, which may dangle */
            choose_path(c, target, sizeof target);
            H5Lcreate_soft(target, file, path, H5P_DEFAULT, H5P_DEFAULT);
            break;
        }
    }
    FUZZ_CHECK(H5Fclose(file) >= 0);
}

/* ---------------------------------------------------------------- the readers */

static const char *const table_paths[] = {NULL,   "",           "/customers/features",
                                          "/customers", "/",        "/rfm",
                                          "/features", "/model/centroids", "customers//features/"};

static void read_table(const char *file, fuzz_cursor *c)
{
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    char path[128];
    const uint8_t path_choice = fuzz_u8(c);
    const char *chosen = NULL;
    if (path_choice < 128) {
        chosen = table_paths[path_choice % COUNT(table_paths)];
    } else {
        choose_path(c, path, sizeof path);
        chosen = path;
    }
    const char *columns[3];
    const uint8_t flags = fuzz_u8(c);
    const size_t n_columns = flags & 3;
    for (size_t k = 0; k < n_columns; k++) {
        uint8_t pick = fuzz_u8(c);
        columns[k] = pick & 1 ? words[(pick >> 1) % COUNT(words)] : leaves[(pick >> 1) % COUNT(leaves)];
    }
    if (n_columns) {
        options.columns = columns;
        options.n_columns = n_columns;
    }
    options.type = (kseg_read_type)((flags >> 2) % 3);
    options.check_finite = (flags & 16) == 0;
    if (flags & 32) {
        options.row_offset = fuzz_u8(c) % 6;
        options.row_count = fuzz_u8(c) % 6;
    }

    kseg_table table;
    kseg_error error = {0};
    if (kseg_h5_read_table(file, chosen, &options, &table, &error) != 0) {
        FUZZ_CHECK(error.message[0] != '\0');
        FUZZ_CHECK(table.data == NULL && table.column_names == NULL && table.ids == NULL);
        return;
    }
    const size_t rows = table.matrix.rows, cols = table.matrix.cols;
    FUZZ_CHECK(rows > 0 && cols > 0 && table.data != NULL && table.matrix.data == table.data);
    FUZZ_CHECK(table.total_rows >= rows + options.row_offset);
    if (options.row_count)
        FUZZ_CHECK(rows == options.row_count);
    if (n_columns) {
        FUZZ_CHECK(cols == n_columns);
        for (size_t k = 0; k < n_columns; k++)
            FUZZ_CHECK(strcmp(table.column_names[k], columns[k]) == 0);
    }
    for (size_t k = 0; k < cols; k++)
        FUZZ_CHECK(table.column_names[k] != NULL);
    /* Touch every value (the sanitizers check the buffer is as large as it says). */
    for (size_t i = 0; i < rows * cols; i++) {
        double value = table.matrix.dtype == KSEG_FLOAT32 ? ((const float *)table.data)[i]
                                                          : ((const double *)table.data)[i];
        if (options.check_finite)
            FUZZ_CHECK(isfinite(value));
    }
    if (table.ids)
        for (size_t i = 0; i < rows; i++)
            (void)*(volatile int64_t *)&table.ids[i];
    kseg_table_destroy(&table);
}

/* The model and RFM pieces predict and run read one by one. */
static void read_pieces(const char *file, fuzz_cursor *c)
{
    char path[128];
    kseg_error error = {0};
    const uint8_t which = fuzz_u8(c);
    choose_path(c, path, sizeof path);
    const size_t expected = which & 8 ? fuzz_u8(c) % 8 : 0;
    size_t length = 0;
    switch (which % 5) {
    case 0: {
        double *values = NULL;
        if (kseg_h5_read_vector(file, path, expected, &values, &length, &error) == 0) {
            FUZZ_CHECK(values != NULL && (!expected || length == expected));
            for (size_t i = 0; i < length; i++)
                (void)*(volatile double *)&values[i];
        }
        free(values);
        break;
    }
    case 1: {
        int64_t *values = NULL;
        if (kseg_h5_read_int64_vector(file, path, expected, &values, &length, &error) == 0) {
            FUZZ_CHECK(values != NULL && (!expected || length == expected));
            for (size_t i = 0; i < length; i++)
                (void)*(volatile int64_t *)&values[i];
        }
        free(values);
        break;
    }
    case 2: {
        char **strings = NULL;
        if (kseg_h5_read_strings(file, path, &strings, &length, &error) == 0)
            for (size_t i = 0; i < length; i++)
                FUZZ_CHECK(strings[i] != NULL && strlen(strings[i]) < 4096);
        kseg_h5_free_strings(strings, length);
        break;
    }
    case 3: {
        char *value = NULL;
        const char *name = attribute_names[fuzz_u8(c) % COUNT(attribute_names)];
        if (kseg_h5_read_attribute_string(file, which & 16 ? path : "", name, &value, &error) ==
            0)
            FUZZ_CHECK(value != NULL);
        free(value);
        break;
    }
    default: {
        char *listing = NULL;
        if (kseg_h5_describe(file, &listing, &error) == 0)
            FUZZ_CHECK(listing != NULL && listing[0] == '/');
        free(listing);
        break;
    }
    }
}

static const char *const transaction_groups[] = {NULL, "/transactions", "transactions/", "/",
                                                 "/customers", "/rfm"};

static void read_transactions(const char *file, fuzz_cursor *c)
{
    kseg_transaction_reader *reader = NULL;
    kseg_error error = {0};
    const uint8_t choice = fuzz_u8(c);
    if (kseg_transaction_reader_open(&reader, file,
                                     transaction_groups[choice % COUNT(transaction_groups)],
                                     &error) != 0) {
        FUZZ_CHECK(reader == NULL && error.message[0] != '\0');
        return;
    }
    const size_t rows = kseg_transaction_reader_rows(reader);
    FUZZ_CHECK(rows <= MAX_ELEMENTS);
    if (choice & 0x40) {
        unsigned columns = fuzz_u16(c) & 0x3ff; /* bit 9 is not a column: refused */
        int status = kseg_transaction_reader_select(reader, columns, &error);
        FUZZ_CHECK((status == 0) == ((columns & ~(unsigned)KSEG_TX_ALL) == 0));
    }
    if (choice & 0x80) {
        /* Plain reads of a window, as `kseg run` does for the revenue per customer. */
        size_t offset = fuzz_u8(c) % (rows + 2), count = fuzz_u8(c) % (rows + 2);
        kseg_transactions block;
        int status = kseg_transaction_reader_read(reader, offset, count, &block, &error);
        FUZZ_CHECK((status == 0) == (offset <= rows && count <= rows - offset));
        if (status == 0) {
            FUZZ_CHECK(block.rows == count);
            for (size_t k = 0; k < block.n_categories; k++)
                for (size_t i = 0; i < count; i++)
                    FUZZ_CHECK(block.categories[k].codes[i] >= 0 &&
                               (size_t)block.categories[k].codes[i] < block.categories[k].n_names);
        }
    } else {
        fuzz_rfm_pass(reader, c);
    }
    kseg_transaction_reader_close(reader);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    if (!initialized) {
        /* The target never prints: HDF5's error stack printing is off for the building too. */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        initialized = 1;
    }
    fuzz_cursor c = {data, size, 0};
    const char *file = fuzz_path("in.h5");
    build_file(file, &c);
    /* The reading choices come from the rest; a short input reads with zeros (defaults). */
    const uint8_t readers = fuzz_u8(&c);
    for (int round = 0; round < 2; round++) {
        if (readers & (1 << round) || fuzz_left(&c) == 0)
            read_table(file, &c);
        if (readers & (4 << round))
            read_pieces(file, &c);
        if (readers & (16 << round) || fuzz_left(&c) == 0)
            read_transactions(file, &c);
    }
    if (readers & 64)
        read_pieces(file, &c);
    unlink(file);
    return 0;
}
