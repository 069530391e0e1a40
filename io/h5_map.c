/* Rows larger than memory: a table whose rows stay in a file and reach the engine through a
 * read-only mapping (the input's own contiguous bytes, or a converted copy in an unlinked scratch
 * file), so that every pass reads them through the page cache instead of process memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kseg/io.h"
#include "kseg/output.h"

#include "h5_internal.h"

/* Rows staged per read when the caller names no size: large enough that HDF5's per-read costs
   vanish, small enough to sit beside any workspace. */
#define DEFAULT_READ_BYTES ((uint64_t)64 << 20)

/* Reads one row at options' row_offset (or 0) into probe: one row carries every check of a full
 * read (object, columns, types, ids) but its size. A probe is one rank's own read, never a
 * collective one of its whole share. probe_options gets the options the probe used. */
static int read_probe(const char *file, const char *path, const kseg_read_options *options,
                      kseg_read_options *probe_options, kseg_table *probe, kseg_error *error)
{
    if (options)
        *probe_options = *options;
    else
        kseg_read_options_defaults(probe_options);
    probe_options->check_finite = 0;
    probe_options->row_count = 1;
    probe_options->comm = NULL;
    kseg_table_init(probe);
    return kseg_h5_read_table(file, path, probe_options, probe, error);
}

int kseg_h5_table_shape(const char *file, const char *path, const kseg_read_options *options,
                        kseg_matrix *shape, int *has_ids, kseg_error *error)
{
    kseg_read_options probe_options;
    kseg_table probe;
    int status = read_probe(file, path, options, &probe_options, &probe, error);
    if (status)
        return status;
    const size_t total = probe.total_rows;
    const size_t first = options ? options->row_offset : 0;
    const size_t wanted = options ? options->row_count : 0;
    if (wanted > total - first) {
        status = kseg_error_set(error, KSEG_EINVAL, "%s: rows [%zu, %zu) requested but there are "
                                "%zu rows", file, first, first + wanted, total);
        goto done;
    }
    memset(shape, 0, sizeof *shape);
    shape->rows = wanted ? wanted : total - first;
    shape->cols = probe.matrix.cols;
    shape->dtype = probe.matrix.dtype;
    if (has_ids)
        *has_ids = probe.ids != NULL;
done:
    kseg_table_destroy(&probe);
    return status;
}

/* Everything the mapping decision learns about the dataset. */
typedef struct map_source {
    char *path;          /* the resolved object path */
    int mappable;        /* 1 when the rows can be mapped from the file as they are */
    uint64_t offset;     /* mappable: the file offset of row 0 */
    size_t chunk_rows;   /* rows per chunk of a chunked 2-D or 1-D dataset, else 0 */
} map_source;

/* Decides whether rows [first, first + count) of the table can be mapped straight from the file,
   and if not, writes the reason into reason. probe holds one row read with the caller's options
   (its column names and dtype). */
static int inspect_source(const char *file, const char *path, const kseg_read_options *options,
                          const kseg_table *probe, size_t first, map_source *source,
                          char *reason, size_t reason_size, kseg_error *error)
{
    hid_t file_id = H5I_INVALID_HID, object = H5I_INVALID_HID, type = H5I_INVALID_HID;
    hid_t plist = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int status = kseg_io_h5_open_read(file, &file_id, error);
    if (status)
        return status;
    status = kseg_io_h5_table_path(file_id, file, path, &source->path, error);
    if (status)
        goto done;
    object = H5Oopen(file_id, source->path, H5P_DEFAULT);
    if (object < 0) {
        char why[256];
        kseg_io_h5_reason(why, sizeof why);
        status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot open: %s", file, source->path, why);
        goto done;
    }
    if (H5Iget_type(object) != H5I_DATASET) {
        snprintf(reason, reason_size, "a group of column datasets");
        goto done;
    }
    type = H5Dget_type(object);
    plist = H5Dget_create_plist(object);
    space = H5Dget_space(object);
    if (type < 0 || plist < 0 || space < 0) {
        char why[256];
        kseg_io_h5_reason(why, sizeof why);
        status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot inspect the dataset: %s", file,
                                source->path, why);
        goto done;
    }
    H5D_layout_t layout = H5Pget_layout(plist);
    if (layout != H5D_CONTIGUOUS) {
        hsize_t chunk[H5S_MAX_RANK];
        if (layout == H5D_CHUNKED && H5Pget_chunk(plist, H5S_MAX_RANK, chunk) >= 1)
            source->chunk_rows = (size_t)chunk[0];
        int deflated = 0;
        int filters = layout == H5D_CHUNKED ? H5Pget_nfilters(plist) : 0;
        for (int f = 0; f < filters; f++) {
            unsigned flags;
            size_t elements = 0;
            if (H5Pget_filter2(plist, (unsigned)f, &flags, &elements, NULL, 0, NULL, NULL) ==
                H5Z_FILTER_DEFLATE)
                deflated = 1;
        }
        snprintf(reason, reason_size, "%s",
                 layout == H5D_COMPACT ? "compact storage"
                 : deflated            ? "gzip-compressed chunks"
                 : filters > 0         ? "filtered chunks"
                                       : "chunked storage");
        goto done;
    }
    char type_name[64];
    kseg_io_h5_type_name(type, type_name, sizeof type_name);
    const size_t element = kseg_dtype_size(probe->matrix.dtype);
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != element ||
        !(H5Tequal(type, element == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE) > 0)) {
        if (H5Tget_class(type) == H5T_FLOAT && H5Tget_order(type) == H5T_ORDER_BE)
            snprintf(reason, reason_size, "big-endian %s", type_name);
        else
            snprintf(reason, reason_size, "%s values converted to %s", type_name,
                     probe->matrix.dtype == KSEG_FLOAT32 ? "float32" : "float64");
        goto done;
    }
    /* Every column in file order: the probe's columns are the file's when no selection was
       asked for, or when the selection names every file column in order. */
    if (options && options->columns) {
        hsize_t dims[2] = {0, 1};
        int rank = H5Sget_simple_extent_dims(space, dims, NULL);
        int identity = rank >= 1 && options->n_columns == (rank == 2 ? (size_t)dims[1] : 1);
        if (identity) {
            kseg_read_options all = *options;
            all.columns = NULL;
            all.n_columns = 0;
            all.check_finite = 0;
            all.row_count = 1;
            all.comm = NULL;
            kseg_table every;
            kseg_table_init(&every);
            status = kseg_h5_read_table(file, path, &all, &every, error);
            if (status)
                goto done;
            for (size_t j = 0; j < every.matrix.cols && identity; j++)
                identity = strcmp(every.column_names[j], probe->column_names[j]) == 0;
            kseg_table_destroy(&every);
        }
        if (!identity) {
            snprintf(reason, reason_size, "a column subset or order");
            goto done;
        }
    }
    haddr_t offset = H5Dget_offset(object);
    if (offset == HADDR_UNDEF) {
        snprintf(reason, reason_size, "no storage written");
        goto done;
    }
    const uint64_t row_bytes = (uint64_t)probe->matrix.cols * element;
    if ((offset + first * row_bytes) % element != 0) {
        /* The engine reads elements as float/double: a misaligned one is undefined behaviour. */
        snprintf(reason, reason_size, "data at a file offset not aligned to %zu bytes", element);
        goto done;
    }
    source->mappable = 1;
    source->offset = offset;
    snprintf(reason, reason_size, "contiguous");
done:
    if (space >= 0)
        H5Sclose(space);
    if (plist >= 0)
        H5Pclose(plist);
    if (type >= 0)
        H5Tclose(type);
    if (object >= 0)
        H5Oclose(object);
    H5Fclose(file_id);
    return status;
}

/* Reads ids [first, first + count) of the 1-D id dataset beside a 2-D dataset at path (the
   probe read has already checked its type and length). */
static int read_mapped_ids(const char *file, const char *path, size_t first, size_t count,
                           int64_t **ids, kseg_error *error)
{
    char id_path[1100];
    const char *slash = strrchr(path, '/');
    int prefix = slash ? (int)(slash - path) : 0;
    snprintf(id_path, sizeof id_path, "%.*s/id", prefix, path);
    hid_t file_id = H5I_INVALID_HID, dataset = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t memory = H5I_INVALID_HID;
    int status = kseg_io_h5_open_read(file, &file_id, error);
    if (status)
        return status;
    *ids = malloc(count * sizeof **ids);
    if (!*ids) {
        status = kseg_error_set(error, KSEG_ENOMEM, "%s:%s: out of memory for %zu ids", file,
                                id_path, count);
        goto done;
    }
    hsize_t start = first, block = count;
    dataset = H5Dopen2(file_id, id_path, H5P_DEFAULT);
    space = dataset >= 0 ? H5Dget_space(dataset) : H5I_INVALID_HID;
    memory = H5Screate_simple(1, &block, NULL);
    if (dataset < 0 || space < 0 || memory < 0 ||
        H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &block, NULL) < 0 ||
        H5Dread(dataset, H5T_NATIVE_INT64, memory, space, H5P_DEFAULT, *ids) < 0) {
        char why[256];
        kseg_io_h5_reason(why, sizeof why);
        status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot read ids: %s", file, id_path, why);
        free(*ids);
        *ids = NULL;
    }
done:
    if (memory >= 0)
        H5Sclose(memory);
    if (space >= 0)
        H5Sclose(space);
    if (dataset >= 0)
        H5Dclose(dataset);
    H5Fclose(file_id);
    return status;
}

/* Maps bytes of fd from offset (any offset: the mapping starts at the page below it) read-only;
   *base and *length receive what to unmap, *rows the first byte asked for. */
static int map_region(int fd, uint64_t offset, uint64_t bytes, void **base, size_t *length,
                      const void **rows)
{
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t start = offset / page * page;
    *length = (size_t)(bytes + (offset - start));
    *base = mmap(NULL, *length, PROT_READ, MAP_SHARED, fd, (off_t)start);
    if (*base == MAP_FAILED) {
        *base = NULL;
        return -1;
    }
    /* Each engine pass walks the rows once, in order: sequential read-ahead fetches them ahead of
       the threads, and pages already passed are the first the kernel drops under pressure. */
    madvise(*base, *length, MADV_SEQUENTIAL);
    *rows = (const char *)*base + (offset - start);
    return 0;
}

/* Writes all of bytes to fd at offset, resuming after short writes. */
static int write_all(int fd, const void *data, size_t bytes, uint64_t offset)
{
    const char *cursor = data;
    while (bytes > 0) {
        ssize_t written = pwrite(fd, cursor, bytes, (off_t)offset);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        cursor += written;
        bytes -= (size_t)written;
        offset += (uint64_t)written;
    }
    return 0;
}

/* Stages rows [first, first + count) into an unlinked scratch file in scratch_dir, read_bytes at
   a time through kseg_h5_read_table (so every conversion, selection and check is the reader's),
   and maps it into table. */
static int stage_rows(const char *file, const char *path, const kseg_read_options *options,
                      const char *scratch_dir, uint64_t read_bytes, size_t chunk_rows,
                      size_t first, size_t count,
                      const kseg_table *probe, kseg_table *table, kseg_error *error)
{
    const size_t cols = probe->matrix.cols, element = kseg_dtype_size(probe->matrix.dtype);
    const uint64_t row_bytes = (uint64_t)cols * element, bytes = row_bytes * count;
    char scratch_path[4096];
    int fd = -1, status = 0;
    kseg_table block;
    kseg_table_init(&block);
    if (!scratch_dir || !*scratch_dir)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no scratch directory to stage the rows in",
                              file);
    int length = snprintf(scratch_path, sizeof scratch_path, "%s/.kseg-rows.XXXXXX", scratch_dir);
    if (length < 0 || (size_t)length >= sizeof scratch_path)
        return kseg_error_set(error, KSEG_EINVAL, "scratch directory name too long: %s",
                              scratch_dir);
    status = kseg_output_check_space(scratch_path, (double)bytes, 0, error);
    if (status)
        return status;
    fd = mkstemp(scratch_path);
    if (fd < 0)
        return kseg_error_set(error, KSEG_EIO, "cannot create a scratch file in %s: %s",
                              scratch_dir, strerror(errno));
    /* Unlinked right away: the space returns to the file system when the mapping and the
       descriptor go, whatever way the process ends. */
    unlink(scratch_path);
    int reserved = posix_fallocate(fd, 0, (off_t)bytes);
    if (reserved == EINVAL || reserved == EOPNOTSUPP)
        reserved = ftruncate(fd, (off_t)bytes) ? errno : 0;
    if (reserved) {
        status = kseg_error_set(error, reserved == ENOSPC ? KSEG_ETOOBIG : KSEG_EIO,
                                "cannot reserve %llu bytes for the staged rows in %s: %s",
                                (unsigned long long)bytes, scratch_dir, strerror(reserved));
        goto done;
    }
    if (probe->ids) {
        table->ids = malloc(count * sizeof *table->ids);
        if (!table->ids) {
            status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu ids", file,
                                    count);
            goto done;
        }
    }
    const uint64_t per_read = read_bytes ? read_bytes : DEFAULT_READ_BYTES;
    size_t rows_per_read = per_read / row_bytes > 0 ? (size_t)(per_read / row_bytes) : 1;
    /* Reads of whole chunks, starting on chunk boundaries: a chunk cut by a read boundary would
       be decompressed once for each read that touches it. A chunk larger than the read size is
       read alone (HDF5 holds it whole while decompressing anyway). */
    if (chunk_rows > 0)
        rows_per_read = rows_per_read < chunk_rows ? chunk_rows
                                                   : rows_per_read / chunk_rows * chunk_rows;
    kseg_read_options block_options;
    if (options)
        block_options = *options;
    else
        kseg_read_options_defaults(&block_options);
    for (size_t done_rows = 0, rows_now; done_rows < count; done_rows += rows_now) {
        rows_now = rows_per_read - (first + done_rows) % rows_per_read;
        if (rows_now > count - done_rows)
            rows_now = count - done_rows;
        block_options.row_offset = first + done_rows;
        block_options.row_count = rows_now;
        status = kseg_h5_read_table(file, path, &block_options, &block, error);
        if (status)
            goto done;
        if (write_all(fd, block.data, rows_now * (size_t)row_bytes, done_rows * row_bytes)) {
            status = kseg_error_set(error, errno == ENOSPC ? KSEG_ETOOBIG : KSEG_EIO,
                                    "cannot write the staged rows to %s: %s", scratch_dir,
                                    strerror(errno));
            goto done;
        }
        if (table->ids)
            memcpy(table->ids + done_rows, block.ids, rows_now * sizeof *table->ids);
        kseg_table_destroy(&block);
    }
    const void *rows;
    if (map_region(fd, 0, bytes, &table->mapping, &table->mapping_bytes, &rows)) {
        status = kseg_error_set(error, KSEG_EIO, "cannot map the staged rows in %s: %s",
                                scratch_dir, strerror(errno));
        goto done;
    }
    table->matrix.data = rows;
done:
    kseg_table_destroy(&block);
    close(fd);
    return status;
}

int kseg_h5_map_table(const char *file, const char *path, const kseg_read_options *options,
                      const char *scratch_dir, uint64_t read_bytes, kseg_table *table,
                      kseg_map_info *info, kseg_error *error)
{
    kseg_map_info scratch_info;
    if (!info)
        info = &scratch_info;
    memset(info, 0, sizeof *info);
    if (!table || !file)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_map_table: table and file are required");
    kseg_table_init(table);

    kseg_read_options probe_options;
    kseg_table probe;
    map_source source = {NULL, 0, 0, 0};
    int status = read_probe(file, path, options, &probe_options, &probe, error);
    if (status)
        return status;
    const size_t total = probe.total_rows, first = probe_options.row_offset;
    const size_t wanted = options ? options->row_count : 0;
    if (wanted > total - first) {
        status = kseg_error_set(error, KSEG_EINVAL, "%s: rows [%zu, %zu) requested but there are "
                                "%zu rows", file, first, first + wanted, total);
        goto done;
    }
    const size_t count = wanted ? wanted : total - first;
    const size_t cols = probe.matrix.cols, element = kseg_dtype_size(probe.matrix.dtype);
    if (count > SIZE_MAX / cols / element) {
        status = kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu x %zu values are too many to map",
                                file, count, cols);
        goto done;
    }
    const uint64_t bytes = (uint64_t)count * cols * element;
    info->bytes = bytes;

    status = inspect_source(file, path, options, &probe, first, &source, info->reason,
                            sizeof info->reason, error);
    if (status)
        goto done;
    if (source.mappable) {
        const uint64_t offset = source.offset + (uint64_t)first * cols * element;
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        struct stat file_status;
        if (fd < 0 || fstat(fd, &file_status) != 0) {
            status = kseg_error_set(error, KSEG_EIO, "cannot open %s: %s", file, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto done;
        }
        /* A file cut short would fault (SIGBUS) in the middle of the fit: refuse it now. */
        if ((uint64_t)file_status.st_size < offset + bytes) {
            close(fd);
            status = kseg_error_set(error, KSEG_EFORMAT,
                                    "%s:%s: the file ends at byte %lld but the rows end at byte "
                                    "%llu (a truncated file?)",
                                    file, source.path, (long long)file_status.st_size,
                                    (unsigned long long)(offset + bytes));
            goto done;
        }
        const void *rows;
        int mapped = map_region(fd, offset, bytes, &table->mapping, &table->mapping_bytes, &rows);
        int saved = errno;
        close(fd);
        if (mapped) {
            status = kseg_error_set(error, KSEG_EIO, "cannot map %s:%s: %s", file, source.path,
                                    strerror(saved));
            goto done;
        }
        table->matrix.data = rows;
        if (probe.ids) {
            status = read_mapped_ids(file, source.path, first, count, &table->ids, error);
            if (status)
                goto done;
        }
        info->mode = KSEG_ROWS_MAPPED;
    } else {
        status = stage_rows(file, path, options, scratch_dir, read_bytes, source.chunk_rows, first,
                            count, &probe,
                            table, error);
        if (status)
            goto done;
        info->mode = KSEG_ROWS_STAGED;
    }
    table->matrix.dtype = probe.matrix.dtype;
    table->matrix.rows = count;
    table->matrix.cols = cols;
    table->column_names = probe.column_names;
    probe.column_names = NULL;
    table->total_rows = total;
done:
    if (status)
        kseg_table_destroy(table);
    kseg_table_destroy(&probe);
    free(source.path);
    return status;
}
