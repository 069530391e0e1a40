/* Reading customer matrices from HDF5: a 2-D dataset [n, d] or a group of 1-D column datasets,
 * any integer or floating type, read by HDF5 straight into the engine's aligned float32/float64
 * buffer through hyperslab selections (no intermediate copy), with precise error messages. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kseg/io.h"
#include "kseg/memory.h"

#include "h5_internal.h"

#define DEFAULT_TABLE_PATH "/customers/features"

/* Groups nested deeper than this are not visited: hard links can form cycles, and no real
   customer file nests this deep. */
#define MAX_WALK_DEPTH 32

/* ---------------------------------------------------------------- small helpers */

void kseg_read_options_defaults(kseg_read_options *options)
{
    memset(options, 0, sizeof *options);
    options->type = KSEG_READ_NATIVE;
    options->check_finite = 1;
}

void kseg_table_init(kseg_table *table)
{
    memset(table, 0, sizeof *table);
}

void kseg_table_destroy(kseg_table *table)
{
    if (!table)
        return;
    free(table->data);
    if (table->mapping)
        munmap(table->mapping, table->mapping_bytes);
    kseg_io_free_strings(table->column_names, table->matrix.cols);
    free(table->ids);
    memset(table, 0, sizeof *table);
}

/* An absolute object path without repeated or trailing slashes ("customers//features/" ->
   "/customers/features"); NULL when out of memory. */
static char *normalize_path(const char *path)
{
    size_t length = strlen(path);
    char *normal = malloc(length + 2);
    if (!normal)
        return NULL;
    size_t used = 0;
    normal[used++] = '/';
    for (const char *c = path; *c; c++) {
        if (*c == '/' && normal[used - 1] == '/')
            continue;
        normal[used++] = *c;
    }
    if (used > 1 && normal[used - 1] == '/')
        used--;
    normal[used] = '\0';
    return normal;
}

/* The parent group of an absolute path ("/a/b" -> "/a", "/a" -> "/"), malloc'd. */
static char *parent_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t length = slash && slash != path ? (size_t)(slash - path) : 1;
    char *parent = malloc(length + 1);
    if (parent) {
        memcpy(parent, path, length);
        parent[length] = '\0';
    }
    return parent;
}

/* parent + "/" + name, malloc'd. */
static char *join_path(const char *parent, const char *name)
{
    size_t a = strlen(parent), b = strlen(name);
    int slash = a == 0 || parent[a - 1] != '/';
    char *joined = malloc(a + (size_t)slash + b + 1);
    if (joined) {
        memcpy(joined, parent, a);
        if (slash)
            joined[a] = '/';
        memcpy(joined + a + (size_t)slash, name, b + 1);
    }
    return joined;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A growable string for listings and for "available: a, b, c" lists in messages. */
typedef struct text_buffer {
    char *data;
    size_t length;
    size_t capacity;
    int failed;
} text_buffer;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void text_append(text_buffer *text, const char *format, ...)
{
    if (text->failed)
        return;
    for (;;) {
        size_t room = text->capacity - text->length;
        va_list arguments;
        va_start(arguments, format);
        int needed = vsnprintf(text->data ? text->data + text->length : NULL, room, format,
                               arguments);
        va_end(arguments);
        if (needed < 0) {
            text->failed = 1;
            return;
        }
        if ((size_t)needed < room) {
            text->length += (size_t)needed;
            return;
        }
        size_t capacity = text->capacity ? text->capacity : 256;
        while (capacity - text->length <= (size_t)needed)
            capacity *= 2;
        char *grown = realloc(text->data, capacity);
        if (!grown) {
            text->failed = 1;
            return;
        }
        text->data = grown;
        text->capacity = capacity;
    }
}

/* "a, b, c" of at most limit names, then ", ... (N more)". */
static void text_append_names(text_buffer *text, char *const *names, size_t count, size_t limit)
{
    for (size_t i = 0; i < count && i < limit; i++)
        text_append(text, "%s%s", i ? ", " : "", names[i]);
    if (count > limit)
        text_append(text, ", ... (%zu more)", count - limit);
    if (count == 0)
        text_append(text, "none");
}

/* Buffers from this size on are backed by transparent huge pages where the system allows it. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

static void *aligned_buffer(size_t bytes)
{
    void *buffer = NULL;
    /* Round up so that vectorized kernels may read whole 64-byte lines at the end. */
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0)
        rounded = 64;
    /* A large matrix is first touched while it is read: with 4 KiB pages that is one page fault
       per 4 KiB, which costs as much as reading an uncompressed file from the page cache. Huge
       pages (asked for, as numpy does, where THP is in "madvise" mode) cut the faults 512-fold;
       the advice is only a hint, so its failure changes nothing. */
    size_t alignment = rounded >= 2 * HUGE_PAGE_BYTES ? HUGE_PAGE_BYTES : 64;
    if (posix_memalign(&buffer, alignment, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (alignment == HUGE_PAGE_BYTES)
        madvise(buffer, rounded / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES, MADV_HUGEPAGE);
#endif
    return buffer;
}

/* ---------------------------------------------------------------- walking the file */

/* Called for each object reached by hard links; kind is H5I_GROUP, H5I_DATASET or
   H5I_DATATYPE. A negative return stops the walk and is passed on. */
typedef int (*visit_fn)(hid_t object, const char *path, H5I_type_t kind, void *data);

/* Where an object lives in its file: the same group reached through two hard links has one
   identity. */
typedef struct object_identity {
    unsigned long file;
    unsigned char address[16]; /* haddr_t up to HDF5 1.10, H5O_token_t from 1.12 */
} object_identity;

static int identify_object(hid_t object, object_identity *identity)
{
    memset(identity, 0, sizeof *identity);
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(object, &info, H5O_INFO_BASIC) < 0)
        return -1;
    memcpy(identity->address, &info.token, sizeof info.token);
#else
    H5O_info_t info;
    if (H5Oget_info2(object, &info, H5O_INFO_BASIC) < 0)
        return -1;
    memcpy(identity->address, &info.addr, sizeof info.addr);
#endif
    identity->file = info.fileno;
    return 0;
}

/* The groups a walk has entered: an open-addressing hash set of identities. */
typedef struct group_set {
    object_identity *slots;
    unsigned char *used;
    size_t count, capacity; /* capacity: a power of two, or 0 */
} group_set;

static void group_set_free(group_set *set)
{
    free(set->slots);
    free(set->used);
    memset(set, 0, sizeof *set);
}

static size_t identity_hash(const object_identity *identity)
{
    const unsigned char *bytes = (const unsigned char *)identity;
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof *identity; i++)
        hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    return (size_t)(hash ^ (hash >> 29));
}

/* Adds identity; 1 when it was new, 0 when already there, KSEG_ENOMEM. */
static int group_set_add(group_set *set, const object_identity *identity)
{
    if (2 * (set->count + 1) > set->capacity) {
        group_set grown = {NULL, NULL, 0, set->capacity ? 2 * set->capacity : 64};
        grown.slots = malloc(grown.capacity * sizeof *grown.slots);
        grown.used = calloc(grown.capacity, 1);
        if (!grown.slots || !grown.used) {
            group_set_free(&grown);
            return KSEG_ENOMEM;
        }
        for (size_t i = 0; i < set->capacity; i++)
            if (set->used[i])
                group_set_add(&grown, &set->slots[i]);
        group_set_free(set);
        *set = grown;
    }
    size_t i = identity_hash(identity) & (set->capacity - 1);
    for (; set->used[i]; i = (i + 1) & (set->capacity - 1))
        if (memcmp(&set->slots[i], identity, sizeof *identity) == 0)
            return 0;
    set->used[i] = 1;
    set->slots[i] = *identity;
    set->count++;
    return 1;
}

typedef struct walk_state {
    const char *group_path;
    int depth;
    visit_fn visit;
    void *data;
    group_set *entered;
    int status;
} walk_state;

static int walk_group(hid_t group, const char *group_path, int depth, visit_fn visit, void *data,
                      group_set *entered);

static herr_t walk_link(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    walk_state *state = data;
    /* Soft and external links are not followed: they may dangle or point outside the file, and
       the object they name is listed under its own hard-linked path anyway. */
    if (info->type != H5L_TYPE_HARD)
        return 0;
    char *path = join_path(state->group_path, name);
    if (!path) {
        state->status = KSEG_ENOMEM;
        return -1;
    }
    int status = 0;
    hid_t object = H5Oopen(group, name, H5P_DEFAULT);
    if (object >= 0) {
        H5I_type_t kind = H5Iget_type(object);
        status = state->visit(object, path, kind, state->data);
        /* A group is entered once, however many hard links reach it: two links back to the
           root (a cycle) or to a shared subgroup at each level made the walk exponential in
           the depth (found by fuzz_h5_input: kseg inspect never finished). A group reached
           again is listed under this path too, but its members only under the first. */
        object_identity identity;
        int first = 1;
        if (status >= 0 && kind == H5I_GROUP && identify_object(object, &identity) == 0)
            first = group_set_add(state->entered, &identity);
        if (first < 0)
            status = first;
        if (status >= 0 && first && kind == H5I_GROUP && state->depth + 1 < MAX_WALK_DEPTH)
            status = walk_group(object, path, state->depth + 1, state->visit, state->data,
                                state->entered);
        H5Oclose(object);
    }
    free(path);
    if (status < 0) {
        state->status = status;
        return -1;
    }
    return 0;
}

static int walk_group(hid_t group, const char *group_path, int depth, visit_fn visit, void *data,
                      group_set *entered)
{
    walk_state state = {group_path, depth, visit, data, entered, 0};
    hsize_t index = 0;
    /* Name order makes listings and candidate lists the same on every run. */
    herr_t result = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, walk_link, &state);
    if (state.status < 0)
        return state.status;
    return result < 0 ? KSEG_EIO : 0;
}

/* Walks every object below the root group of location (a file or its root group). */
static int walk_file(hid_t location, visit_fn visit, void *data)
{
    group_set entered = {NULL, NULL, 0, 0};
    object_identity root;
    int status = 0;
    hid_t group = H5Gopen2(location, "/", H5P_DEFAULT);
    if (group < 0)
        return KSEG_EIO;
    if (identify_object(group, &root) == 0)
        status = group_set_add(&entered, &root);
    if (status >= 0)
        status = walk_group(group, "/", 0, visit, data, &entered);
    H5Gclose(group);
    group_set_free(&entered);
    return status < 0 ? status : 0;
}

/* ---------------------------------------------------------------- the default dataset */

typedef struct candidates {
    char **paths;
    size_t count;
    size_t capacity;
} candidates;

static int collect_matrix(hid_t object, const char *path, H5I_type_t kind, void *data)
{
    candidates *found = data;
    if (kind != H5I_DATASET)
        return 0;
    hid_t type = H5Dget_type(object);
    hid_t space = H5Dget_space(object);
    int matches = type >= 0 && space >= 0 && kseg_io_h5_is_numeric(type) &&
                  H5Sget_simple_extent_ndims(space) == 2;
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (!matches)
        return 0;
    if (found->count == found->capacity) {
        size_t capacity = found->capacity ? found->capacity * 2 : 8;
        char **grown = realloc(found->paths, capacity * sizeof *grown);
        if (!grown)
            return KSEG_ENOMEM;
        found->paths = grown;
        found->capacity = capacity;
    }
    found->paths[found->count] = kseg_io_strdup(path);
    if (!found->paths[found->count])
        return KSEG_ENOMEM;
    found->count++;
    return 0;
}

/* The path read when the caller names none: /customers/features if present, else the only 2-D
   numeric dataset. */
static int default_table_path(hid_t file_id, const char *file, char **path, kseg_error *error)
{
    if (kseg_io_h5_path_exists(file_id, DEFAULT_TABLE_PATH) == 1) {
        *path = kseg_io_strdup(DEFAULT_TABLE_PATH);
        return *path ? 0 : kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    }
    candidates found = {NULL, 0, 0};
    text_buffer list = {NULL, 0, 0, 0};
    int status = walk_file(file_id, collect_matrix, &found);
    if (status < 0) {
        status = kseg_error_set(error, status, "%s: cannot list the file's datasets", file);
    } else if (found.count == 1) {
        *path = found.paths[0];
        found.paths[0] = NULL;
    } else if (found.count == 0) {
        status = kseg_error_set(error, KSEG_ENOENT,
                                "%s: no dataset " DEFAULT_TABLE_PATH " and no 2-D numeric dataset "
                                "(expected [rows, columns] features; name a group of columns as "
                                "%s:/group)",
                                file, file);
    } else {
        text_append_names(&list, found.paths, found.count, 10);
        status = kseg_error_set(error, KSEG_EINVAL,
                                "%s: no dataset " DEFAULT_TABLE_PATH " and %zu 2-D numeric datasets "
                                "(name one as %s:/path): %s",
                                file, found.count, file, list.failed ? "?" : list.data);
    }
    kseg_io_free_strings(found.paths, found.count);
    free(list.data);
    return status;
}

/* ---------------------------------------------------------------- reading a table */

/* Everything read_table works with; the ids here are closed by reader_close. */
typedef struct reader {
    const char *file;
    char *path;        /* the normalized object path */
    hid_t file_id;
    hid_t object;      /* the 2-D dataset or the column group */
    hid_t *columns;    /* group mode: the opened column datasets, [n_selected] */
    size_t n_columns_open;
    kseg_error *error;
    int narrowed;      /* float32 buffer, some source column wider than float32 */
    int checked;       /* the finiteness check was done while reading */
    char reason[256];
    /* A distributed read (kseg_read_options.comm): the transfer property list (collective under
       MPI-IO, else H5P_DEFAULT) and whether the reads are collective, in which case every rank
       makes exactly one H5Dread per dataset, whatever its row count. */
    hid_t transfer;
    int collective;
    const kseg_comm *comm;
} reader;

/* Under MPI-IO, the agreement before a collective read: a rank that failed on its own (memory
 * for its share, a NaN in its rows) must not leave the others waiting in the read or in the
 * collective close. Returns status, or on a rank that was fine while another failed, KSEG_EIO
 * with a message saying so; every rank then unwinds through the same collective calls. */
static int reader_agree(reader *r, int status)
{
    if (!r->collective)
        return status;
    int64_t failed[1] = {status != 0};
    if (r->comm->ops->allreduce_max_i64(r->comm, failed, 1) != 0 && !status)
        return kseg_error_set(r->error, KSEG_EIO, "%s: the ranks could not agree on the read",
                              r->file);
    if (failed[0] && !status)
        return kseg_error_set(r->error, KSEG_EIO,
                              "%s: another rank failed reading its rows (it names the reason)",
                              r->file);
    return status;
}

static int reader_hdf5_failure(reader *r, const char *what)
{
    kseg_io_h5_reason(r->reason, sizeof r->reason);
    return kseg_error_set(r->error, KSEG_EIO, "%s:%s: %s: %s", r->file, r->path, what, r->reason);
}

/* The element type KSEG_READ_NATIVE picks for a source type: float64 where float32 would lose
   precision (64-bit floats, 32- and 64-bit integers), float32 otherwise. */
static kseg_dtype native_dtype(hid_t type)
{
    size_t size = H5Tget_size(type);
    if (H5Tget_class(type) == H5T_FLOAT)
        return size >= 8 ? KSEG_FLOAT64 : KSEG_FLOAT32;
    return size >= 4 ? KSEG_FLOAT64 : KSEG_FLOAT32;
}

static int check_numeric(reader *r, hid_t type, const char *where_suffix)
{
    if (kseg_io_h5_is_numeric(type))
        return 0;
    char type_name[64];
    kseg_io_h5_type_name(type, type_name, sizeof type_name);
    return kseg_error_set(r->error, KSEG_ETYPE,
                          "%s:%s%s: data type is %s (expected a numeric type: integers or "
                          "floating point)",
                          r->file, r->path, where_suffix, type_name);
}

/* Resolves the caller's row_offset/row_count against total rows. */
static int row_range(reader *r, size_t total, const kseg_read_options *options, size_t *first,
                     size_t *count)
{
    if (options->row_offset > total ||
        (options->row_count > 0 && options->row_count > total - options->row_offset))
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%s: rows [%zu, %zu) requested but there are %zu rows", r->file,
                              r->path, options->row_offset,
                              options->row_offset + (options->row_count ? options->row_count
                                                                        : total - options->row_offset),
                              total);
    if (options->comm) {
        /* A rank of a distributed read may have no rows; it still joins the collective reads. */
        kseg_comm_split_rows(total, options->comm->size, options->comm->rank, first, count);
        return 0;
    }
    *first = options->row_offset;
    *count = options->row_count > 0 ? options->row_count : total - options->row_offset;
    if (*count == 0)
        return kseg_error_set(r->error, KSEG_EEMPTY,
                              "%s:%s: no rows from row %zu on (there are %zu rows)", r->file,
                              r->path, options->row_offset, total);
    return 0;
}

/* Checks the requested column names for duplicates. */
static int check_duplicates(reader *r, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return kseg_error_set(r->error, KSEG_EINVAL,
                                      "%s:%s: column \"%s\" requested twice (expected distinct "
                                      "column names)",
                                      r->file, r->path, names[i]);
    return 0;
}

static int missing_column(reader *r, const char *name, char *const *available, size_t count)
{
    text_buffer list = {NULL, 0, 0, 0};
    text_append_names(&list, available, count, 40);
    int status = kseg_error_set(r->error, KSEG_ENOENT, "%s:%s: no column \"%s\" (available: %s)",
                                r->file, r->path, name, list.failed ? "?" : list.data);
    free(list.data);
    return status;
}

/* Non-zero when some value of the block is a NaN or an infinity (all exponent bits set). A test
   of the bits without an early exit lets the compiler vectorize the scan; check_finite locates
   the value only in the block that has one. */
static int has_nonfinite_float32(const float *values, size_t count)
{
    unsigned found = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        found |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return found != 0;
}

static int has_nonfinite_float64(const double *values, size_t count)
{
    unsigned found = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        found |= (bits & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    }
    return found != 0;
}

/* Scans elements [begin, end) of the buffer in row-major order and fails on the first NaN or
   infinity, naming its global row and its column. After a whole read the scan is a second pass
   over data far larger than the caches, bound by memory bandwidth: with parallel set the threads
   split the blocks, and the first flagged block (a min reduction, so the same block for any
   thread count) is searched for the value. */
static int check_finite_range(reader *r, const kseg_table *table, size_t first_row,
                              size_t begin, size_t end, int parallel)
{
    const size_t cols = table->matrix.cols, total = end - begin;
    const size_t block = 4096, blocks = (total + block - 1) / block;
    const int single = table->matrix.dtype == KSEG_FLOAT32;
    const float *data32 = (const float *)table->data + begin;
    const double *data64 = (const double *)table->data + begin;
    size_t first_flagged = SIZE_MAX;
    #pragma omp parallel for schedule(static) reduction(min : first_flagged) if (parallel)
    for (size_t b = 0; b < blocks; b++) {
        const size_t start = b * block, length = total - start < block ? total - start : block;
        const int flagged = single ? has_nonfinite_float32(data32 + start, length)
                                   : has_nonfinite_float64(data64 + start, length);
        if (flagged && b < first_flagged)
            first_flagged = b;
    }
    size_t bad = SIZE_MAX;
    double value = 0.0;
    if (first_flagged != SIZE_MAX) {
        const size_t start = first_flagged * block;
        const size_t end = total - start < block ? total : start + block;
        for (size_t i = start; i < end && bad == SIZE_MAX; i++) {
            double candidate = single ? (double)data32[i] : data64[i];
            if (!isfinite(candidate)) {
                bad = i;
                value = candidate;
            }
        }
    }
    if (bad == SIZE_MAX)
        return 0;
    bad += begin;
    const char *what = isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf";
    /* An infinity in a float32 buffer read from wider data may be a finite value too large for
       float32; say so, since the file itself then holds no infinity. */
    const char *hint = !isnan(value) && r->narrowed
                           ? "; values beyond the float32 range read as Inf too: read them as float64"
                           : "";
    return kseg_error_set(r->error, KSEG_ENONFINITE,
                          "%s:%s: row %zu, column \"%s\": value is %s (expected a finite number%s)",
                          r->file, r->path, first_row + bad / cols, table->column_names[bad % cols],
                          what, hint);
}

static int check_finite(reader *r, const kseg_table *table, size_t first_row)
{
    return check_finite_range(r, table, first_row, 0, table->matrix.rows * table->matrix.cols, 1);
}

/* Reads rows [first, first + count) of the 1-D integer dataset at id_path into table->ids. */
static int read_ids(reader *r, const char *id_path, size_t total, size_t first, size_t count,
                    kseg_table *table)
{
    int status = 0;
    hid_t dataset = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t memory = H5I_INVALID_HID;
    hid_t object = H5Oopen(r->file_id, id_path, H5P_DEFAULT);
    if (object < 0)
        return reader_hdf5_failure(r, "cannot open the id dataset");
    if (H5Iget_type(object) != H5I_DATASET) {
        H5Oclose(object);
        return kseg_error_set(r->error, KSEG_ETYPE,
                              "%s:%s: \"id\" is not a dataset (expected a 1-D int64 dataset of "
                              "customer ids)",
                              r->file, id_path);
    }
    dataset = object;
    type = H5Dget_type(dataset);
    space = H5Dget_space(dataset);
    if (type < 0 || space < 0) {
        status = reader_hdf5_failure(r, "cannot inspect the id dataset");
        goto done;
    }
    if (H5Tget_class(type) != H5T_INTEGER) {
        char type_name[64];
        kseg_io_h5_type_name(type, type_name, sizeof type_name);
        status = kseg_error_set(r->error, KSEG_ETYPE,
                                "%s:%s: ids are %s (expected integers, e.g. int64)", r->file,
                                id_path, type_name);
        goto done;
    }
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (rank != 1 || H5Sget_simple_extent_dims(space, dims, NULL) != 1) {
        status = kseg_error_set(r->error, KSEG_ESHAPE,
                                "%s:%s: ids have rank %d (expected a 1-D dataset, one id per row)",
                                r->file, id_path, rank);
        goto done;
    }
    if ((size_t)dims[0] != total) {
        status = kseg_error_set(r->error, KSEG_ESHAPE,
                                "%s:%s: %zu ids but %s has %zu rows (expected one id per row)",
                                r->file, id_path, (size_t)dims[0], r->path, total);
        goto done;
    }
    table->ids = malloc((count ? count : 1) * sizeof *table->ids);
    if (!table->ids)
        status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory for %zu ids", r->file,
                                id_path, count);
    if ((status = reader_agree(r, status)))
        goto done;
    hsize_t start = first, block = count;
    memory = H5Screate_simple(1, &block, NULL);
    if (memory < 0 ||
        (count ? H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &block, NULL)
               : H5Sselect_none(space)) < 0 ||
        (!count && H5Sselect_none(memory) < 0) ||
        H5Dread(dataset, H5T_NATIVE_INT64, memory, space, r->transfer, table->ids) < 0) {
        kseg_io_h5_reason(r->reason, sizeof r->reason);
        status = kseg_error_set(r->error, KSEG_EIO, "%s:%s: cannot read ids: %s", r->file, id_path,
                                r->reason);
    }
done:
    if (memory >= 0)
        H5Sclose(memory);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    H5Dclose(dataset);
    return status;
}

static kseg_dtype requested_dtype(const kseg_read_options *options, kseg_dtype native)
{
    if (options->type == KSEG_READ_FLOAT32)
        return KSEG_FLOAT32;
    if (options->type == KSEG_READ_FLOAT64)
        return KSEG_FLOAT64;
    return native;
}

static int allocate_matrix_here(reader *r, kseg_table *table, size_t rows, size_t cols, kseg_dtype dtype)
{
    size_t element = kseg_dtype_size(dtype);
    if (cols != 0 && rows > SIZE_MAX / cols / element)
        return kseg_error_set(r->error, KSEG_ETOOBIG, "%s:%s: %zu x %zu values do not fit in memory",
                              r->file, r->path, rows, cols);
    /* The shape comes from the file: a declared [1e12, 16] dataset (chunked and never written,
       so the file itself is tiny) must be refused here, not allocated and paged in. */
    char what[1200];
    snprintf(what, sizeof what, "%s:%s (%zu x %zu %s)", r->file, r->path, rows, cols,
             dtype == KSEG_FLOAT32 ? "float32" : "float64");
    int status = kseg_memory_check((uint64_t)rows * cols * element, what, r->error);
    if (status)
        return status;
    /* A rank of a distributed read may have no rows: it still gets a (one-element) buffer. */
    table->data = aligned_buffer(rows ? rows * cols * element : element);
    if (!table->data)
        return kseg_error_set(r->error, KSEG_ENOMEM,
                              "%s:%s: out of memory for %zu x %zu values (%zu MiB)", r->file,
                              r->path, rows, cols, rows * cols * element >> 20);
    table->matrix.data = table->data;
    table->matrix.dtype = dtype;
    table->matrix.rows = rows;
    table->matrix.cols = cols;
    return 0;
}

/* Every rank of a collective read allocates its share here, right before the collective reads:
 * the ranks agree on the outcome. */
static int allocate_matrix(reader *r, kseg_table *table, size_t rows, size_t cols, kseg_dtype dtype)
{
    return reader_agree(r, allocate_matrix_here(r, table, rows, cols, dtype));
}

static int compare_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Rows of a contiguous dataset read (and checked) at a time. */
#define SLAB_BYTES ((size_t)4 << 20)

/* Selects rows [first, first + count) of the file columns sorted[0..cols) (ascending) in the
   dataset's space, one hyperslab per run of consecutive columns. Negative on an HDF5 failure. */
static int select_rows(hid_t space, size_t first, size_t count, const size_t *sorted,
                       size_t cols)
{
    if (H5Sselect_none(space) < 0)
        return -1;
    if (count == 0)
        return 0;
    for (size_t q = 0; q < cols;) {
        size_t run = 1;
        while (q + run < cols && sorted[q + run] == sorted[q] + run)
            run++;
        hsize_t start[2] = {first, sorted[q]}, block[2] = {count, run};
        if (H5Sselect_hyperslab(space, q == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL, block,
                                NULL) < 0)
            return -1;
        q += run;
    }
    return 0;
}

/* Non-zero for a dataset stored contiguously (not chunked, not compact). */
static int is_contiguous(hid_t dataset)
{
    hid_t plist = H5Dget_create_plist(dataset);
    if (plist < 0)
        return 0;
    int contiguous = H5Pget_layout(plist) == H5D_CONTIGUOUS;
    H5Pclose(plist);
    return contiguous;
}

/* Reads the selected columns of a 2-D dataset (or the single column of a 1-D one). */
static int read_matrix_dataset(reader *r, const kseg_read_options *options, kseg_table *table,
                               size_t *first_row)
{
    int status = 0;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, memory = H5I_INVALID_HID;
    char **file_names = NULL;
    size_t n_file_names = 0;
    size_t *selected = NULL, *sorted = NULL, *position = NULL;
    void *scratch = NULL;
    hsize_t dims[H5S_MAX_RANK];

    type = H5Dget_type(r->object);
    space = H5Dget_space(r->object);
    if (type < 0 || space < 0) {
        status = reader_hdf5_failure(r, "cannot inspect the dataset");
        goto done;
    }
    status = check_numeric(r, type, "");
    if (status)
        goto done;
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        status = reader_hdf5_failure(r, "cannot read the dataset's shape");
        goto done;
    }
    if (rank != 1 && rank != 2) {
        text_buffer shape = {NULL, 0, 0, 0};
        for (int i = 0; i < rank; i++)
            text_append(&shape, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
        status = kseg_error_set(r->error, KSEG_ESHAPE,
                                "%s:%s: dataset has rank %d [%s] (expected a 2-D [rows, columns] "
                                "dataset or a group of 1-D columns)",
                                r->file, r->path, rank, shape.data ? shape.data : "");
        free(shape.data);
        goto done;
    }
    const size_t total = (size_t)dims[0];
    const size_t d = rank == 2 ? (size_t)dims[1] : 1;
    if (total == 0 || d == 0) {
        status = kseg_error_set(r->error, KSEG_EEMPTY,
                                "%s:%s: dataset is empty [%zu, %zu] (expected at least one row and "
                                "one column)",
                                r->file, r->path, total, d);
        goto done;
    }

    /* Column names: the "columns" attribute, else the dataset's own name for a 1-D dataset, else
       column0, column1, ... */
    htri_t has_names = H5Aexists(r->object, "columns");
    if (has_names > 0) {
        char where[600];
        snprintf(where, sizeof where, "%s:%s", r->file, r->path);
        status = kseg_io_h5_read_string_attribute(r->object, "columns", where, &file_names,
                                                  &n_file_names, r->error);
        if (status)
            goto done;
        if (n_file_names != d) {
            status = kseg_error_set(r->error, KSEG_EFORMAT,
                                    "%s:%s: attribute \"columns\" has %zu names but the dataset has "
                                    "%zu columns (expected one name per column)",
                                    r->file, r->path, n_file_names, d);
            goto done;
        }
    } else {
        file_names = calloc(d + 1, sizeof *file_names);
        if (!file_names)
            goto out_of_memory;
        n_file_names = d;
        for (size_t j = 0; j < d; j++) {
            char name[32];
            snprintf(name, sizeof name, "column%zu", j);
            file_names[j] = kseg_io_strdup(rank == 1 ? base_name(r->path) : name);
            if (!file_names[j])
                goto out_of_memory;
        }
    }

    /* Which file columns go to which output position. */
    const size_t cols = options->columns ? options->n_columns : d;
    if (cols == 0) {
        status = kseg_error_set(r->error, KSEG_EEMPTY, "%s:%s: no columns requested", r->file,
                                r->path);
        goto done;
    }
    selected = malloc(cols * sizeof *selected);
    if (!selected)
        goto out_of_memory;
    if (options->columns) {
        status = check_duplicates(r, options->columns, cols);
        if (status)
            goto done;
        for (size_t p = 0; p < cols; p++) {
            size_t j = 0;
            while (j < d && strcmp(file_names[j], options->columns[p]) != 0)
                j++;
            if (j == d) {
                status = missing_column(r, options->columns[p], file_names, d);
                goto done;
            }
            selected[p] = j;
        }
    } else {
        for (size_t p = 0; p < cols; p++)
            selected[p] = p;
    }

    size_t first = 0, count = 0;
    status = row_range(r, total, options, &first, &count);
    if (status)
        goto done;
    status = allocate_matrix(r, table, count, cols, requested_dtype(options, native_dtype(type)));
    if (status)
        goto done;
    r->narrowed = table->matrix.dtype == KSEG_FLOAT32 && H5Tget_size(type) > 4;
    table->column_names = calloc(cols + 1, sizeof *table->column_names);
    if (!table->column_names)
        goto out_of_memory;
    for (size_t p = 0; p < cols; p++) {
        table->column_names[p] = kseg_io_strdup(file_names[selected[p]]);
        if (!table->column_names[p])
            goto out_of_memory;
    }
    table->total_rows = total;

    /* The selected file columns in file order, and where each output column sits among them. */
    sorted = malloc(cols * sizeof *sorted);
    position = malloc(cols * sizeof *position);
    if (!sorted || !position)
        goto out_of_memory;
    memcpy(sorted, selected, cols * sizeof *sorted);
    qsort(sorted, cols, sizeof *sorted, compare_size);
    int reordered = 0;
    for (size_t p = 0; p < cols; p++) {
        position[p] = (size_t)((size_t *)bsearch(&selected[p], sorted, cols, sizeof *sorted,
                                                 compare_size) -
                               sorted);
        reordered |= position[p] != p;
    }

    /* One read of the union of the selected column runs. HDF5 walks a selection in row-major
       order, so row i's selected values land, in file order, in row i of the buffer; each
       chunk is read and decompressed once, however many columns are selected. */
    hsize_t memory_dims[2] = {count, cols};
    memory = H5Screate_simple(2, memory_dims, NULL);
    if (memory < 0 || select_rows(space, first, count, sorted, cols) < 0 ||
        (!count && H5Sselect_none(memory) < 0)) {
        status = reader_hdf5_failure(r, "cannot select columns");
        goto done;
    }
    hid_t memory_type = table->matrix.dtype == KSEG_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    /* gzip-compressed chunks are inflated on all threads when nothing but deflate (and shuffle)
       stands between the file and the buffer; anything else is HDF5's single-threaded read. */
    char where[1100];
    snprintf(where, sizeof where, "%s:%s", r->file, r->path);
    /* Under MPI-IO every rank makes one collective H5Dread: the threaded gzip path reads chunks
       one by one and the slab loop makes a row-count-dependent number of calls. */
    status = r->collective ? 0
                           : kseg_io_h5_read_deflated(r->object, memory_type, where, first, count,
                                                      sorted, cols, table->data, cols, r->error);
    if (status < 0)
        goto done;
    if (status == 0 && !r->collective && options->check_finite && !reordered &&
        is_contiguous(r->object)) {
        /* A contiguous dataset is read in slabs of about 4 MiB, each checked for NaN and
           infinity right away while it is still in the cache: a check after the whole read would
           be a second pass through memory, a fifth of the time of the read itself. */
        const size_t row_bytes = cols * kseg_dtype_size(table->matrix.dtype);
        const size_t slab = row_bytes < SLAB_BYTES ? SLAB_BYTES / row_bytes : 1;
        for (size_t done_rows = 0; done_rows < count; done_rows += slab) {
            hsize_t rows_now = count - done_rows < slab ? count - done_rows : slab;
            hsize_t memory_start[2] = {done_rows, 0}, memory_block[2] = {rows_now, cols};
            if (select_rows(space, first + done_rows, rows_now, sorted, cols) < 0 ||
                H5Sselect_hyperslab(memory, H5S_SELECT_SET, memory_start, NULL, memory_block,
                                    NULL) < 0 ||
                H5Dread(r->object, memory_type, memory, space, H5P_DEFAULT, table->data) < 0) {
                status = reader_hdf5_failure(r, "cannot read the data");
                goto done;
            }
            /* One thread: a slab in the cache is scanned in far less time than it takes to
               wake a team, which on a loaded machine can cost milliseconds per slab. */
            status = check_finite_range(r, table, first, done_rows * cols,
                                        (done_rows + rows_now) * cols, 0);
            if (status)
                goto done;
        }
        r->checked = 1;
    } else if (status == 0 &&
               H5Dread(r->object, memory_type, memory, space, r->transfer, table->data) < 0) {
        status = reader_hdf5_failure(r, "cannot read the data");
        goto done;
    }
    status = 0;
    /* Reordered columns: permute each row in place through a row-sized scratch. This is much
       faster than one read per column, which would decompress every chunk once per column. */
    if (reordered) {
        scratch = malloc(cols * sizeof(double));
        if (!scratch)
            goto out_of_memory;
        if (table->matrix.dtype == KSEG_FLOAT32) {
            float *row = table->data, *held = scratch;
            for (size_t i = 0; i < count; i++, row += cols) {
                memcpy(held, row, cols * sizeof *row);
                for (size_t p = 0; p < cols; p++)
                    row[p] = held[position[p]];
            }
        } else {
            double *row = table->data, *held = scratch;
            for (size_t i = 0; i < count; i++, row += cols) {
                memcpy(held, row, cols * sizeof *row);
                for (size_t p = 0; p < cols; p++)
                    row[p] = held[position[p]];
            }
        }
    }
    *first_row = first;
    goto done;

out_of_memory:
    status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory", r->file, r->path);
done:
    kseg_io_free_strings(file_names, n_file_names);
    free(selected);
    free(sorted);
    free(position);
    free(scratch);
    if (memory >= 0)
        H5Sclose(memory);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

/* The names of a group's 1-D numeric datasets other than "id", in name order. */
typedef struct column_list {
    char **names;
    size_t count;
    size_t capacity;
    int status;
} column_list;

static herr_t list_column(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    column_list *list = data;
    if (info->type != H5L_TYPE_HARD || strcmp(name, "id") == 0)
        return 0;
    hid_t object = H5Oopen(group, name, H5P_DEFAULT);
    if (object < 0)
        return 0;
    int usable = 0;
    if (H5Iget_type(object) == H5I_DATASET) {
        hid_t type = H5Dget_type(object), space = H5Dget_space(object);
        usable = type >= 0 && space >= 0 && kseg_io_h5_is_numeric(type) &&
                 H5Sget_simple_extent_ndims(space) == 1;
        if (type >= 0)
            H5Tclose(type);
        if (space >= 0)
            H5Sclose(space);
    }
    H5Oclose(object);
    if (!usable)
        return 0;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **grown = realloc(list->names, (capacity + 1) * sizeof *grown);
        if (!grown) {
            list->status = KSEG_ENOMEM;
            return -1;
        }
        list->names = grown;
        list->capacity = capacity;
    }
    list->names[list->count] = kseg_io_strdup(name);
    if (!list->names[list->count]) {
        list->status = KSEG_ENOMEM;
        return -1;
    }
    list->count++;
    return 0;
}

/* Reads the selected 1-D column datasets of a group, each into its strided place in the buffer. */
static int read_column_group(reader *r, const kseg_read_options *options, kseg_table *table,
                             size_t *first_row)
{
    int status = 0;
    column_list available = {NULL, 0, 0, 0};
    hid_t memory = H5I_INVALID_HID;
    hid_t file_space = H5I_INVALID_HID;
    size_t total = 0;
    kseg_dtype native = KSEG_FLOAT32;
    int wide = 0;

    hsize_t index = 0;
    if (H5Literate(r->object, H5_INDEX_NAME, H5_ITER_INC, &index, list_column, &available) < 0) {
        if (available.status == KSEG_ENOMEM)
            status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory", r->file,
                                    r->path);
        else
            status = reader_hdf5_failure(r, "cannot list the group's datasets");
        goto done;
    }
    const char *const *names = options->columns ? options->columns
                                                : (const char *const *)available.names;
    const size_t cols = options->columns ? options->n_columns : available.count;
    if (cols == 0) {
        status = kseg_error_set(r->error, KSEG_EEMPTY,
                                options->columns ? "%s:%s: no columns requested"
                                                 : "%s:%s: group has no 1-D numeric datasets "
                                                   "(expected one dataset per column)",
                                r->file, r->path);
        goto done;
    }
    if (options->columns) {
        status = check_duplicates(r, names, cols);
        if (status)
            goto done;
    }
    r->columns = malloc(cols * sizeof *r->columns);
    if (!r->columns) {
        status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory", r->file, r->path);
        goto done;
    }

    /* Open and check every column before reading any, so that a bad column fails fast. */
    for (size_t p = 0; p < cols; p++) {
        const char *name = names[p];
        if (!*name || strchr(name, '/') || H5Lexists(r->object, name, H5P_DEFAULT) <= 0) {
            status = missing_column(r, name, available.names, available.count);
            goto done;
        }
        hid_t object = H5Oopen(r->object, name, H5P_DEFAULT);
        if (object < 0) {
            status = reader_hdf5_failure(r, "cannot open a column");
            goto done;
        }
        if (H5Iget_type(object) != H5I_DATASET) {
            H5Oclose(object);
            status = kseg_error_set(r->error, KSEG_ETYPE,
                                    "%s:%s/%s: is not a dataset (expected a 1-D numeric column)",
                                    r->file, r->path, name);
            goto done;
        }
        r->columns[r->n_columns_open++] = object;
        hid_t type = H5Dget_type(object), space = H5Dget_space(object);
        hsize_t dims[H5S_MAX_RANK] = {0};
        int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        int numeric = type >= 0 && kseg_io_h5_is_numeric(type);
        char type_name[64] = "";
        if (type >= 0) {
            kseg_io_h5_type_name(type, type_name, sizeof type_name);
            if (numeric && native_dtype(type) == KSEG_FLOAT64)
                native = KSEG_FLOAT64;
            if (numeric && H5Tget_size(type) > 4)
                wide = 1;
            H5Tclose(type);
        }
        if (rank >= 0)
            H5Sget_simple_extent_dims(space, dims, NULL);
        if (space >= 0)
            H5Sclose(space);
        if (type < 0 || rank < 0) {
            status = reader_hdf5_failure(r, "cannot inspect a column");
            goto done;
        }
        if (!numeric) {
            status = kseg_error_set(r->error, KSEG_ETYPE,
                                    "%s:%s: column \"%s\" has data type %s (expected a numeric "
                                    "type: integers or floating point)",
                                    r->file, r->path, name, type_name);
            goto done;
        }
        if (rank != 1) {
            status = kseg_error_set(r->error, KSEG_ESHAPE,
                                    "%s:%s: column \"%s\" has rank %d (expected 1-D columns)",
                                    r->file, r->path, name, rank);
            goto done;
        }
        if (p == 0) {
            total = (size_t)dims[0];
        } else if ((size_t)dims[0] != total) {
            status = kseg_error_set(r->error, KSEG_ESHAPE,
                                    "%s:%s: column \"%s\" has %zu rows but column \"%s\" has %zu "
                                    "(expected columns of equal length)",
                                    r->file, r->path, name, (size_t)dims[0], names[0], total);
            goto done;
        }
    }
    if (total == 0) {
        status = kseg_error_set(r->error, KSEG_EEMPTY,
                                "%s:%s: columns have no rows (expected at least one row)", r->file,
                                r->path);
        goto done;
    }

    size_t first = 0, count = 0;
    status = row_range(r, total, options, &first, &count);
    if (status)
        goto done;
    status = allocate_matrix(r, table, count, cols, requested_dtype(options, native));
    if (status)
        goto done;
    r->narrowed = table->matrix.dtype == KSEG_FLOAT32 && wide;
    table->column_names = calloc(cols + 1, sizeof *table->column_names);
    if (!table->column_names) {
        status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory", r->file, r->path);
        goto done;
    }
    for (size_t p = 0; p < cols; p++) {
        table->column_names[p] = kseg_io_strdup(names[p]);
        if (!table->column_names[p]) {
            status = kseg_error_set(r->error, KSEG_ENOMEM, "%s:%s: out of memory", r->file,
                                    r->path);
            goto done;
        }
    }
    table->total_rows = total;

    hid_t memory_type = table->matrix.dtype == KSEG_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    hsize_t memory_dims[2] = {count, cols};
    memory = H5Screate_simple(2, memory_dims, NULL);
    if (memory < 0) {
        status = reader_hdf5_failure(r, "cannot create a dataspace");
        goto done;
    }
    const size_t element = kseg_dtype_size(table->matrix.dtype), file_column = 0;
    for (size_t p = 0; p < cols; p++) {
        /* A gzip-compressed column is inflated on all threads (see read_matrix_dataset). */
        char where[1400];
        snprintf(where, sizeof where, "%s:%s/%s", r->file, r->path, names[p]);
        status = r->collective
                     ? 0
                     : kseg_io_h5_read_deflated(r->columns[p], memory_type, where, first, count,
                                                &file_column, 1, (char *)table->data + p * element,
                                                cols, r->error);
        if (status < 0)
            goto done;
        if (status == 1) {
            status = 0;
            continue;
        }
        hsize_t file_start = first, file_count = count;
        hsize_t memory_start[2] = {0, p}, memory_block[2] = {count, 1};
        file_space = H5Dget_space(r->columns[p]);
        if (file_space < 0 ||
            (count ? H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &file_start, NULL,
                                         &file_count, NULL)
                   : H5Sselect_none(file_space)) < 0 ||
            (count ? H5Sselect_hyperslab(memory, H5S_SELECT_SET, memory_start, NULL, memory_block,
                                         NULL)
                   : H5Sselect_none(memory)) < 0 ||
            H5Dread(r->columns[p], memory_type, memory, file_space, r->transfer, table->data) <
                0) {
            kseg_io_h5_reason(r->reason, sizeof r->reason);
            status = kseg_error_set(r->error, KSEG_EIO, "%s:%s: cannot read column \"%s\": %s",
                                    r->file, r->path, names[p], r->reason);
            goto done;
        }
        H5Sclose(file_space);
        file_space = H5I_INVALID_HID;
    }
    *first_row = first;

done:
    if (file_space >= 0)
        H5Sclose(file_space);
    if (memory >= 0)
        H5Sclose(memory);
    kseg_io_free_strings(available.names, available.count);
    return status;
}

static void reader_close(reader *r)
{
    if (r->transfer > 0)
        H5Pclose(r->transfer);
    r->transfer = H5P_DEFAULT;
    for (size_t p = 0; p < r->n_columns_open; p++)
        H5Dclose(r->columns[p]);
    free(r->columns);
    r->columns = NULL;
    r->n_columns_open = 0;
    if (r->object >= 0)
        H5Oclose(r->object);
    if (r->file_id >= 0)
        H5Fclose(r->file_id);
    free(r->path);
    r->object = r->file_id = H5I_INVALID_HID;
    r->path = NULL;
}

typedef struct name_list {
    char *names[21];
    size_t count;
} name_list;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    name_list *list = data;
    if (list->count == 21)
        return 1; /* enough to show; stop early */
    list->names[list->count] = kseg_io_strdup(name);
    if (list->names[list->count])
        list->count++;
    return 0;
}

/* The error for a missing object, listing what the deepest existing group on its path holds, so
   that a typo is easy to spot. */
static int missing_object(reader *r, const char *what)
{
    char *ancestor = parent_path(r->path);
    while (ancestor && strcmp(ancestor, "/") != 0 &&
           kseg_io_h5_path_exists(r->file_id, ancestor) != 1) {
        char *up = parent_path(ancestor);
        free(ancestor);
        ancestor = up;
    }
    name_list list = {{NULL}, 0};
    text_buffer text = {NULL, 0, 0, 0};
    hid_t group = ancestor ? H5Oopen(r->file_id, ancestor, H5P_DEFAULT) : H5I_INVALID_HID;
    if (group >= 0 && H5Iget_type(group) == H5I_GROUP) {
        hsize_t index = 0;
        H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &list);
        text_append(&text, " (%s holds: ", ancestor);
        text_append_names(&text, list.names, list.count < 20 ? list.count : 20, 20);
        text_append(&text, "%s)", list.count > 20 ? ", ..." : "");
    }
    if (group >= 0)
        H5Oclose(group);
    int status = kseg_error_set(r->error, KSEG_ENOENT, "%s: no %s %s%s", r->file, what, r->path,
                                text.data && !text.failed ? text.data : "");
    for (size_t i = 0; i < list.count; i++)
        free(list.names[i]);
    free(text.data);
    free(ancestor);
    return status;
}

/* Opens file and the object at path (normalized; NULL/"" = the default table). */
static int reader_open(reader *r, const char *file, const char *path, int default_table,
                       const char *what, const kseg_comm *comm)
{
    int status = kseg_io_h5_open_read_comm(file, comm, &r->file_id, r->error);
    if (status)
        return status;
    r->transfer = kseg_io_h5_transfer_list(comm);
    if (r->transfer < 0) {
        r->transfer = H5P_DEFAULT;
        return reader_hdf5_failure(r, "cannot set up collective reads");
    }
    r->collective = r->transfer != H5P_DEFAULT;
    r->comm = comm;
    if (!path || !*path) {
        if (default_table)
            status = default_table_path(r->file_id, file, &r->path, r->error);
        else
            status = kseg_error_set(r->error, KSEG_EINVAL, "%s: no %s path given", file, what);
        if (status)
            return status;
    } else {
        r->path = normalize_path(path);
        if (!r->path)
            return kseg_error_set(r->error, KSEG_ENOMEM, "out of memory");
    }
    if (kseg_io_h5_path_exists(r->file_id, r->path) != 1)
        return missing_object(r, what);
    r->object = H5Oopen(r->file_id, r->path, H5P_DEFAULT);
    if (r->object < 0) {
        kseg_io_h5_reason(r->reason, sizeof r->reason);
        return kseg_error_set(r->error, KSEG_ENOENT, "%s: cannot open %s %s: %s", file, what,
                              r->path, r->reason);
    }
    return 0;
}

int kseg_h5_read_table(const char *file, const char *path, const kseg_read_options *options,
                       kseg_table *table, kseg_error *error)
{
    kseg_read_options defaults;
    kseg_table result;
    reader r = {file, NULL, H5I_INVALID_HID, H5I_INVALID_HID, NULL, 0, error, 0, 0, "", H5P_DEFAULT, 0, NULL};
    size_t first_row = 0;
    char *id_path = NULL;
    int status;

    if (!table)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_table: table is NULL");
    kseg_table_init(table);
    kseg_table_init(&result);
    if (!options) {
        kseg_read_options_defaults(&defaults);
        options = &defaults;
    }
    if (options->columns && options->n_columns == 0)
        return kseg_error_set(error, KSEG_EINVAL, "%s: an empty column list was given", file);

    status = reader_open(&r, file, path, 1, "dataset or group", options->comm);
    if (status)
        goto done;

    H5I_type_t kind = H5Iget_type(r.object);
    if (kind == H5I_DATASET) {
        /* A rank can fail after the collective read (a scratch buffer for reordered columns):
           the ranks agree before the collective read of the ids. */
        status = reader_agree(&r, read_matrix_dataset(&r, options, &result, &first_row));
        if (status)
            goto done;
        /* The ids live beside a 2-D dataset: /customers/features -> /customers/id. */
        char *parent = parent_path(r.path);
        id_path = parent ? join_path(parent, "id") : NULL;
        free(parent);
    } else if (kind == H5I_GROUP) {
        status = reader_agree(&r, read_column_group(&r, options, &result, &first_row));
        if (status)
            goto done;
        id_path = join_path(r.path, "id");
    } else {
        status = kseg_error_set(error, KSEG_ETYPE,
                                "%s:%s: is a named datatype (expected a 2-D dataset or a group of "
                                "1-D columns)",
                                file, r.path);
        goto done;
    }
    if (!id_path) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto done;
    }
    /* The ids are read before the rows are checked: under MPI-IO their read is collective, and
       a rank that found a NaN in its rows must still take part in it. */
    if (strcmp(id_path, r.path) != 0 && kseg_io_h5_path_exists(r.file_id, id_path) == 1) {
        status = read_ids(&r, id_path, result.total_rows, first_row, result.matrix.rows, &result);
        if (status)
            goto done;
    }
    if (options->check_finite && !r.checked) {
        status = check_finite(&r, &result, first_row);
        if (status)
            goto done;
    }
    *table = result;
    kseg_table_init(&result);

done:
    free(id_path);
    kseg_table_destroy(&result);
    reader_close(&r);
    return status;
}

/* ---------------------------------------------------------------- vectors and attributes */

/* Reads a 1-D numeric dataset converted to memory_type (double or int64) into a malloc'd array. */
static int read_vector_as(const char *file, const char *path, size_t expected_length,
                          const kseg_comm *comm, hid_t memory_type, size_t element_size,
                          void **values, size_t *length, kseg_error *error)
{
    reader r = {file, NULL, H5I_INVALID_HID, H5I_INVALID_HID, NULL, 0, error, 0, 0, "", H5P_DEFAULT, 0, NULL};
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    void *result = NULL;
    int status;

    if (!values || !length)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_vector: NULL output");
    *values = NULL;
    *length = 0;
    status = reader_open(&r, file, path, 0, "dataset", comm);
    if (status)
        goto done;
    if (H5Iget_type(r.object) != H5I_DATASET) {
        status = kseg_error_set(error, KSEG_ETYPE, "%s:%s: is a group (expected a 1-D dataset)",
                                file, r.path);
        goto done;
    }
    type = H5Dget_type(r.object);
    space = H5Dget_space(r.object);
    if (type < 0 || space < 0) {
        status = reader_hdf5_failure(&r, "cannot inspect the dataset");
        goto done;
    }
    status = check_numeric(&r, type, "");
    if (status)
        goto done;
    if (memory_type == H5T_NATIVE_INT64 && H5Tget_class(type) != H5T_INTEGER) {
        status = kseg_error_set(error, KSEG_ETYPE, "%s:%s: holds floating-point values "
                                "(expected integers)", file, r.path);
        goto done;
    }
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK] = {0};
    if (rank != 1 || H5Sget_simple_extent_dims(space, dims, NULL) != 1) {
        status = kseg_error_set(error, KSEG_ESHAPE, "%s:%s: dataset has rank %d (expected 1-D)",
                                file, r.path, rank);
        goto done;
    }
    size_t n = (size_t)dims[0];
    if (expected_length && n != expected_length) {
        status = kseg_error_set(error, KSEG_ESHAPE, "%s:%s: %zu values (expected %zu)", file,
                                r.path, n, expected_length);
        goto done;
    }
    /* A distributed read takes this rank's rows only (possibly none). */
    size_t first = 0;
    if (comm)
        kseg_comm_split_rows(n, comm->size, comm->rank, &first, &n);
    char what[1200];
    snprintf(what, sizeof what, "%s:%s (%zu values)", file, r.path, n);
    status = kseg_memory_check(kseg_memory_multiply(n, element_size), what, error);
    if (!status && !(result = malloc((n ? n : 1) * element_size)))
        status = kseg_error_set(error, KSEG_ENOMEM, "%s:%s: out of memory for %zu values", file,
                                r.path, n);
    if ((status = reader_agree(&r, status)))
        goto done;
    if (comm) {
        hsize_t start = first, block = n;
        hid_t memory = H5Screate_simple(1, &block, NULL);
        int failed = memory < 0 ||
                     (n ? H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &block, NULL)
                        : H5Sselect_none(space)) < 0 ||
                     (!n && H5Sselect_none(memory) < 0) ||
                     H5Dread(r.object, memory_type, memory, space, r.transfer, result) < 0;
        if (failed)
            status = reader_hdf5_failure(&r, "cannot read the data");
        if (memory >= 0)
            H5Sclose(memory);
        if (failed)
            goto done;
    } else if (n > 0 &&
               H5Dread(r.object, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, result) < 0) {
        status = reader_hdf5_failure(&r, "cannot read the data");
        goto done;
    }
    *values = result;
    *length = n;
    result = NULL;

done:
    free(result);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    reader_close(&r);
    return status;
}

int kseg_h5_read_vector(const char *file, const char *path, size_t expected_length,
                        double **values, size_t *length, kseg_error *error)
{
    if (!values)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_vector: NULL output");
    void *result = NULL;
    int status = read_vector_as(file, path, expected_length, NULL, H5T_NATIVE_DOUBLE,
                                sizeof(double), &result, length, error);
    *values = result;
    return status;
}

int kseg_h5_read_vector_split(const char *file, const char *path, size_t expected_length,
                              const kseg_comm *comm, double **values, size_t *length,
                              kseg_error *error)
{
    if (!values || !comm)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_vector_split: NULL argument");
    void *result = NULL;
    int status = read_vector_as(file, path, expected_length, comm, H5T_NATIVE_DOUBLE,
                                sizeof(double), &result, length, error);
    *values = result;
    return status;
}

int kseg_h5_read_int64_vector(const char *file, const char *path, size_t expected_length,
                              int64_t **values, size_t *length, kseg_error *error)
{
    if (!values)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_int64_vector: NULL output");
    void *result = NULL;
    int status = read_vector_as(file, path, expected_length, NULL, H5T_NATIVE_INT64,
                                sizeof(int64_t), &result, length, error);
    *values = result;
    return status;
}

int kseg_h5_read_strings(const char *file, const char *path, char ***values, size_t *count,
                         kseg_error *error)
{
    reader r = {file, NULL, H5I_INVALID_HID, H5I_INVALID_HID, NULL, 0, error, 0, 0, "", H5P_DEFAULT, 0, NULL};
    if (!values || !count)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_strings: NULL output");
    *values = NULL;
    *count = 0;
    int status = reader_open(&r, file, path, 0, "dataset", NULL);
    if (!status && H5Iget_type(r.object) != H5I_DATASET)
        status = kseg_error_set(error, KSEG_ETYPE, "%s:%s: is a group (expected a 1-D dataset of "
                                "strings)", file, r.path);
    if (!status) {
        char where[1024];
        snprintf(where, sizeof where, "%s:%s", file, r.path);
        status = kseg_io_h5_read_strings(r.object, where, values, count, error);
    }
    reader_close(&r);
    return status;
}

/* Frees what kseg_h5_read_strings returned. */
void kseg_h5_free_strings(char **values, size_t count)
{
    kseg_io_free_strings(values, count);
}

int kseg_h5_read_attribute_string(const char *file, const char *object_path, const char *name,
                                  char **value, kseg_error *error)
{
    reader r = {file, NULL, H5I_INVALID_HID, H5I_INVALID_HID, NULL, 0, error, 0, 0, "", H5P_DEFAULT, 0, NULL};
    char **strings = NULL;
    size_t count = 0;
    int status;

    if (!value || !name)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_read_attribute_string: NULL argument");
    *value = NULL;
    status = reader_open(&r, file, object_path && *object_path ? object_path : "/", 0, "object", NULL);
    if (status)
        goto done;
    char where[600];
    snprintf(where, sizeof where, "%s:%s", file, r.path);
    status = kseg_io_h5_read_string_attribute(r.object, name, where, &strings, &count, error);
    if (status)
        goto done;
    if (count != 1) {
        status = kseg_error_set(error, KSEG_ESHAPE,
                                "%s: attribute \"%s\" holds %zu strings (expected one)", where, name,
                                count);
        goto done;
    }
    *value = strings[0];
    strings[0] = NULL;

done:
    kseg_io_free_strings(strings, count);
    reader_close(&r);
    return status;
}

/* ---------------------------------------------------------------- listing */

/* One listed object; the fields are aligned in columns when the listing is printed. */
typedef struct listing_entry {
    char *path;
    const char *kind;    /* "group", "dataset", "datatype" */
    char *type;          /* "float32", "" for groups */
    char *shape;         /* "[1000, 9]", "" for groups */
    char *details;       /* storage and attributes */
} listing_entry;

typedef struct listing {
    listing_entry *entries;
    size_t count;
    size_t capacity;
} listing;

typedef struct attribute_text {
    text_buffer *others;   /* name=value ... */
    text_buffer *columns;  /* the "columns" attribute, printed last */
} attribute_text;

static void append_attribute(text_buffer *text, hid_t location, const char *name)
{
    hid_t attribute = H5Aopen(location, name, H5P_DEFAULT);
    hid_t type = attribute >= 0 ? H5Aget_type(attribute) : H5I_INVALID_HID;
    hid_t space = attribute >= 0 ? H5Aget_space(attribute) : H5I_INVALID_HID;
    if (type < 0 || space < 0) {
        text_append(text, "%s (unreadable)", name);
        goto done;
    }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    int scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR;
    H5T_class_t type_class = H5Tget_class(type);
    if (type_class == H5T_STRING) {
        char **strings = NULL;
        size_t count = 0;
        if (kseg_io_h5_read_string_attribute(location, name, "", &strings, &count, NULL) != 0) {
            text_append(text, "%s (unreadable string)", name);
        } else if (scalar && count == 1) {
            size_t length = strlen(strings[0]);
            text_append(text, "%s=\"%.60s%s\"", name, strings[0], length > 60 ? "..." : "");
        } else {
            text_append(text, "%s: ", name);
            text_append_names(text, strings, count, 10);
        }
        kseg_io_free_strings(strings, count);
    } else if ((type_class == H5T_INTEGER || type_class == H5T_FLOAT) && points >= 1 &&
               points <= 8) {
        double values[8];
        long long integers[8];
        int is_integer = type_class == H5T_INTEGER;
        herr_t read = is_integer ? H5Aread(attribute, H5T_NATIVE_LLONG, integers)
                                 : H5Aread(attribute, H5T_NATIVE_DOUBLE, values);
        if (read < 0) {
            text_append(text, "%s (unreadable)", name);
            goto done;
        }
        text_append(text, "%s=%s", name, scalar ? "" : "[");
        for (hssize_t i = 0; i < points; i++) {
            if (is_integer)
                text_append(text, "%s%lld", i ? ", " : "", integers[i]);
            else
                text_append(text, "%s%.17g", i ? ", " : "", values[i]);
        }
        if (!scalar)
            text_append(text, "]");
    } else {
        char type_name[64];
        kseg_io_h5_type_name(type, type_name, sizeof type_name);
        text_append(text, "%s (%s, %lld values)", name, type_name, (long long)points);
    }
done:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (attribute >= 0)
        H5Aclose(attribute);
}

static herr_t describe_attribute(hid_t location, const char *name, const H5A_info_t *info,
                                 void *data)
{
    (void)info;
    attribute_text *text = data;
    if (strcmp(name, "columns") == 0) {
        append_attribute(text->columns, location, name);
    } else {
        text_append(text->others, "  ");
        append_attribute(text->others, location, name);
    }
    return 0;
}

/* Storage layout and filters of a dataset: "contiguous", "chunked [16384, 9] gzip 4". */
static void describe_storage(text_buffer *text, hid_t dataset)
{
    hid_t plist = H5Dget_create_plist(dataset);
    if (plist < 0)
        return;
    H5D_layout_t layout = H5Pget_layout(plist);
    if (layout == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        int rank = H5Pget_chunk(plist, H5S_MAX_RANK, chunk);
        text_append(text, "chunked [");
        for (int i = 0; i < rank; i++)
            text_append(text, "%s%llu", i ? ", " : "", (unsigned long long)chunk[i]);
        text_append(text, "]");
        int filters = H5Pget_nfilters(plist);
        for (int i = 0; i < filters; i++) {
            unsigned flags = 0, values[8] = {0};
            size_t n_values = 8;
            char filter_name[64] = "";
            H5Z_filter_t filter = H5Pget_filter2(plist, (unsigned)i, &flags, &n_values, values,
                                                 sizeof filter_name, filter_name, NULL);
            if (filter == H5Z_FILTER_DEFLATE)
                text_append(text, " gzip %u", n_values > 0 ? values[0] : 0u);
            else if (filter == H5Z_FILTER_SHUFFLE)
                text_append(text, " shuffle");
            else if (filter == H5Z_FILTER_FLETCHER32)
                text_append(text, " fletcher32");
            else if (filter >= 0)
                text_append(text, " filter %d", (int)filter);
        }
    } else if (layout == H5D_COMPACT) {
        text_append(text, "compact");
    } else {
        text_append(text, "contiguous");
    }
    H5Pclose(plist);
}

static int describe_object(hid_t object, const char *path, H5I_type_t kind, void *data)
{
    listing *list = data;
    text_buffer type = {NULL, 0, 0, 0}, shape = {NULL, 0, 0, 0}, details = {NULL, 0, 0, 0};
    text_buffer others = {NULL, 0, 0, 0}, columns = {NULL, 0, 0, 0};
    int status = 0;

    if (kind == H5I_DATASET) {
        hid_t type_id = H5Dget_type(object);
        hid_t space = H5Dget_space(object);
        if (type_id >= 0) {
            char type_name[64];
            kseg_io_h5_type_name(type_id, type_name, sizeof type_name);
            text_append(&type, "%s", type_name);
            H5Tclose(type_id);
        }
        if (space >= 0) {
            hsize_t dims[H5S_MAX_RANK];
            int rank = H5Sget_simple_extent_dims(space, dims, NULL);
            if (rank == 0) {
                text_append(&shape, "scalar");
            } else {
                text_append(&shape, "[");
                for (int i = 0; i < rank; i++)
                    text_append(&shape, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
                text_append(&shape, "]");
            }
            H5Sclose(space);
        }
        describe_storage(&details, object);
    }
    attribute_text attributes = {&others, &columns};
    hsize_t index = 0;
    H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &index, describe_attribute, &attributes);
    if (others.data)
        text_append(&details, "%s", others.data);
    if (columns.data)
        text_append(&details, "  %s", columns.data);

    if (type.failed || shape.failed || details.failed) {
        status = KSEG_ENOMEM;
        goto done;
    }
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        listing_entry *grown = realloc(list->entries, capacity * sizeof *grown);
        if (!grown) {
            status = KSEG_ENOMEM;
            goto done;
        }
        list->entries = grown;
        list->capacity = capacity;
    }
    listing_entry *entry = &list->entries[list->count];
    entry->path = kseg_io_strdup(path);
    entry->kind = kind == H5I_DATASET ? "dataset" : kind == H5I_GROUP ? "group" : "datatype";
    entry->type = kseg_io_strdup(type.data ? type.data : "");
    entry->shape = kseg_io_strdup(shape.data ? shape.data : "");
    /* Storage details start with two spaces when they come from attributes only. */
    const char *rest = details.data ? details.data : "";
    while (*rest == ' ')
        rest++;
    entry->details = kseg_io_strdup(rest);
    list->count++;
    if (!entry->path || !entry->type || !entry->shape || !entry->details)
        status = KSEG_ENOMEM;

done:
    free(type.data);
    free(shape.data);
    free(details.data);
    free(others.data);
    free(columns.data);
    return status;
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const listing_entry *)a)->path, ((const listing_entry *)b)->path);
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

int kseg_h5_describe(const char *file, char **listing_text, kseg_error *error)
{
    hid_t file_id = H5I_INVALID_HID, root = H5I_INVALID_HID;
    listing list = {NULL, 0, 0};
    text_buffer text = {NULL, 0, 0, 0};
    int status;

    if (!listing_text)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_describe: listing is NULL");
    *listing_text = NULL;
    status = kseg_io_h5_open_read(file, &file_id, error);
    if (status)
        goto done;
    root = H5Gopen2(file_id, "/", H5P_DEFAULT);
    if (root < 0) {
        char reason[256];
        kseg_io_h5_reason(reason, sizeof reason);
        status = kseg_error_set(error, KSEG_EIO, "%s: cannot open the root group: %s", file,
                                reason);
        goto done;
    }
    status = describe_object(root, "/", H5I_GROUP, &list);
    if (status == 0)
        status = walk_file(root, describe_object, &list);
    if (status) {
        status = kseg_error_set(error, status, "%s: cannot list the file's contents%s", file,
                                status == KSEG_ENOMEM ? ": out of memory" : "");
        goto done;
    }
    qsort(list.entries, list.count, sizeof *list.entries, compare_entries);

    size_t path_width = 0, kind_width = 0, type_width = 0, shape_width = 0;
    for (size_t i = 0; i < list.count; i++) {
        path_width = max_size(path_width, strlen(list.entries[i].path));
        kind_width = max_size(kind_width, strlen(list.entries[i].kind));
        type_width = max_size(type_width, strlen(list.entries[i].type));
        shape_width = max_size(shape_width, strlen(list.entries[i].shape));
    }
    for (size_t i = 0; i < list.count; i++) {
        const listing_entry *entry = &list.entries[i];
        size_t line_start = text.length;
        text_append(&text, "%-*s  %-*s  %-*s  %-*s  %s", (int)path_width, entry->path,
                    (int)kind_width, entry->kind, (int)type_width, entry->type, (int)shape_width,
                    entry->shape, entry->details);
        /* Groups have no type or shape: drop the padding that would trail them. */
        while (!text.failed && text.length > line_start && text.data[text.length - 1] == ' ')
            text.data[--text.length] = '\0';
        text_append(&text, "\n");
    }
    if (text.failed || !text.data) {
        status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory listing the file", file);
        goto done;
    }
    *listing_text = text.data;
    text.data = NULL;

done:
    for (size_t i = 0; i < list.count; i++) {
        free(list.entries[i].path);
        free(list.entries[i].type);
        free(list.entries[i].shape);
        free(list.entries[i].details);
    }
    free(list.entries);
    free(text.data);
    if (root >= 0)
        H5Gclose(root);
    if (file_id >= 0)
        H5Fclose(file_id);
    return status;
}

int kseg_io_h5_table_path(hid_t file_id, const char *file, const char *path, char **resolved,
                          kseg_error *error)
{
    if (!path || !*path)
        return default_table_path(file_id, file, resolved, error);
    *resolved = normalize_path(path);
    return *resolved ? 0 : kseg_error_set(error, KSEG_ENOMEM, "out of memory");
}
