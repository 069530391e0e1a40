/* Writing result files atomically: everything goes to a temporary file in the destination's
 * directory, which commit flushes to disk and renames over the final name, so a reader (or a
 * crash) never sees a half-written file and an existing file is replaced only when complete. */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libdeflate.h>

#include "kseg/io.h"

#include "h5_internal.h"
#include "output_internal.h"

/* Chunks are kept well below HDF5's 4 GiB limit and near the size of the default chunk cache. */
#define DEFAULT_CHUNK_BYTES ((size_t)1 << 20)
#define MAX_CHUNK_BYTES ((size_t)1 << 30)

struct kseg_h5_writer {
    char *final_path;
    char *temp_path;
    hid_t file;
    char reason[256];
    /* A distributed writer (kseg_h5_writer_open_distributed): its communicator, the collective
       transfer list, and this rank; NULL, H5P_DEFAULT and 0 otherwise. Only rank 0 owns (and
       removes or publishes) the temporary file. */
    const kseg_comm *comm;
    hid_t transfer;
    int rank;
};

/* Whether any rank of a distributed writer failed (failed != 0 here): every rank gets the same
   answer, so that all go on to the next collective HDF5 call or none does. */
static int any_rank_failed(const kseg_h5_writer *writer, int failed)
{
    if (!writer->comm)
        return failed;
    int64_t flag = failed != 0;
    if (writer->comm->ops->allreduce_max_i64(writer->comm, &flag, 1))
        return 1;
    return flag != 0;
}

/* ---------------------------------------------------------------- helpers */

static int writer_hdf5_failure(kseg_h5_writer *writer, kseg_error *error, const char *what,
                               const char *path)
{
    kseg_io_h5_reason(writer->reason, sizeof writer->reason);
    return kseg_error_set(error, KSEG_EIO, "%s:%s: %s: %s", writer->final_path, path, what,
                          writer->reason);
}

static hid_t file_type_of(kseg_store_type type)
{
    switch (type) {
    case KSEG_STORE_FLOAT32:
        return H5T_IEEE_F32LE;
    case KSEG_STORE_FLOAT64:
        return H5T_IEEE_F64LE;
    case KSEG_STORE_INT32:
        return H5T_STD_I32LE;
    case KSEG_STORE_INT64:
        return H5T_STD_I64LE;
    default:
        return H5I_INVALID_HID;
    }
}

static hid_t memory_type_of(kseg_store_type type)
{
    switch (type) {
    case KSEG_STORE_FLOAT32:
        return H5T_NATIVE_FLOAT;
    case KSEG_STORE_FLOAT64:
        return H5T_NATIVE_DOUBLE;
    case KSEG_STORE_INT32:
        return H5T_NATIVE_INT32;
    case KSEG_STORE_INT64:
        return H5T_NATIVE_INT64;
    default:
        return H5I_INVALID_HID;
    }
}

static hid_t utf8_string_type(void)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0)
        return type;
    if (H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        H5Tclose(type);
        return H5I_INVALID_HID;
    }
    return type;
}

static int check_writer(kseg_h5_writer *writer, const char *path, kseg_error *error)
{
    if (!writer || writer->file < 0)
        return kseg_error_set(error, KSEG_EINVAL, "HDF5 writer is not open");
    if (!path || !*path)
        return kseg_error_set(error, KSEG_EINVAL, "%s: empty object path", writer->final_path);
    kseg_io_h5_silence();
    return 0;
}

/* Non-zero when the object exists; relative paths are taken from the root group, as HDF5 does
   for paths given to the file. */
static int object_exists(kseg_h5_writer *writer, const char *path)
{
    if (path[0] == '/')
        return kseg_io_h5_path_exists(writer->file, path) == 1;
    size_t length = strlen(path);
    char *absolute = malloc(length + 2);
    if (!absolute)
        return 0;
    absolute[0] = '/';
    memcpy(absolute + 1, path, length + 1);
    int exists = kseg_io_h5_path_exists(writer->file, absolute) == 1;
    free(absolute);
    return exists;
}

/* Creates the missing groups above path (without timestamps, like everything kseg writes);
   returns 0 or -1. */
static int create_parent_groups(hid_t file, const char *path)
{
    char *prefix = strdup(path);
    if (!prefix)
        return -1;
    int status = 0;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0)
        status = -1;
    for (char *slash = strchr(prefix + 1, '/'); !status && slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        htri_t exists = H5Lexists(file, prefix, H5P_DEFAULT);
        if (exists < 0) {
            status = -1;
        } else if (!exists) {
            hid_t group = H5Gcreate2(file, prefix, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (group < 0)
                status = -1;
            else
                H5Gclose(group);
        }
        *slash = '/';
    }
    if (gcpl >= 0)
        H5Pclose(gcpl);
    free(prefix);
    return status;
}

hid_t kseg_io_h5_writer_file(struct kseg_h5_writer *writer)
{
    return writer ? writer->file : H5I_INVALID_HID;
}

/* ---------------------------------------------------------------- open, commit, abort */

static int writer_open(kseg_h5_writer **writer_out, const char *final_path,
                       const kseg_comm *comm, kseg_error *error);

int kseg_h5_writer_open(kseg_h5_writer **writer_out, const char *final_path, kseg_error *error)
{
    return writer_open(writer_out, final_path, NULL, error);
}

#ifdef KSEG_WITH_MPI
int kseg_h5_writer_open_distributed(kseg_h5_writer **writer_out, const char *final_path,
                                    const kseg_comm *comm, kseg_error *error)
{
    if (kseg_comm_mpi_handle(comm) == MPI_COMM_NULL)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_h5_writer_open_distributed: not an MPI communicator");
    return writer_open(writer_out, final_path, comm, error);
}

/* Rank 0 creates the temporary file; every rank learns its name, or that creating it failed
   (then each rank's error says so). */
static int share_temporary_path(kseg_h5_writer *writer, const char *final_path,
                                kseg_error *error)
{
    const kseg_comm *comm = writer->comm;
    int64_t length = -1;
    int status = 0;
    if (writer->rank == 0) {
        int fd = -1;
        status = kseg_io_temporary_create(final_path, &writer->temp_path, &fd, error);
        if (!status) {
            close(fd);
            length = (int64_t)strlen(writer->temp_path);
        }
    }
    if (comm->ops->broadcast(comm, &length, sizeof length, 0))
        return kseg_error_set(error, KSEG_EIO, "cannot write %s: MPI broadcast failed", final_path);
    if (length < 0)
        return writer->rank == 0 ? status
                                 : kseg_error_set(error, KSEG_EIO,
                                                  "cannot write %s: rank 0 could not create the "
                                                  "temporary file", final_path);
    if (writer->rank != 0 && !(writer->temp_path = malloc((size_t)length + 1)))
        status = KSEG_ENOMEM; /* still joins the broadcast below, with a scratch buffer */
    char scratch[1];
    char *target = writer->temp_path ? writer->temp_path : scratch;
    if (comm->ops->broadcast(comm, target, writer->temp_path ? (size_t)length + 1 : 0, 0) &&
        !status)
        status = KSEG_EIO;
    if (status)
        return kseg_error_set(error, status, "cannot write %s: sharing the temporary name failed",
                              final_path);
    return 0;
}
#endif

static void discard_temporary(kseg_h5_writer *writer)
{
    if (writer->temp_path && writer->rank == 0)
        kseg_io_temporary_discard(writer->temp_path);
}

static int writer_open(kseg_h5_writer **writer_out, const char *final_path,
                       const kseg_comm *comm, kseg_error *error)
{
    kseg_h5_writer *writer = NULL;
    hid_t fapl = H5I_INVALID_HID;
    int status = 0;

    if (!writer_out)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_writer_open: writer is NULL");
    *writer_out = NULL;
    if (!final_path || !*final_path)
        return kseg_error_set(error, KSEG_EINVAL, "no output file given (expected FILE.h5)");
    kseg_io_h5_silence();

    writer = calloc(1, sizeof *writer);
    if (!writer) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }
    writer->file = H5I_INVALID_HID;
    writer->transfer = H5P_DEFAULT;
    writer->comm = comm;
    writer->rank = comm ? comm->rank : 0;
    /* The temporary file is created (and registered for removal on a signal) by the protocol
       that text outputs share; HDF5 then truncates and writes it. */
#ifdef KSEG_WITH_MPI
    if (comm) {
        status = share_temporary_path(writer, final_path, error);
        if (status)
            goto fail;
    } else
#endif
    {
        int fd = -1;
        status = kseg_io_temporary_create(final_path, &writer->temp_path, &fd, error);
        if (status)
            goto fail;
        close(fd);
    }
    if (!(writer->final_path = kseg_io_strdup(final_path))) {
        discard_temporary(writer);
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto fail;
    }

    /* Version bounds 1.8: large attributes (many column names) are stored densely, and every
       HDF5 1.8+ reader, h5py and pandas included, can read the file. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        kseg_io_h5_reason(writer->reason, sizeof writer->reason);
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: %s", final_path, writer->reason);
        discard_temporary(writer);
        goto fail;
    }
#ifdef KSEG_WITH_MPI
    /* A distributed writer: every rank opens the file with MPI-IO and writes collectively. */
    if (comm) {
        writer->transfer = kseg_io_h5_transfer_list(comm);
        if (writer->transfer < 0 ||
            H5Pset_fapl_mpio(fapl, kseg_comm_mpi_handle(comm), MPI_INFO_NULL) < 0) {
            if (writer->transfer < 0)
                writer->transfer = H5P_DEFAULT;
            kseg_io_h5_reason(writer->reason, sizeof writer->reason);
            status = kseg_error_set(error, KSEG_EIO, "cannot write %s: cannot set up MPI-IO: %s",
                                    final_path, writer->reason);
            discard_temporary(writer);
            goto fail;
        }
    }
#endif
    /* No modification times in object headers (root group here, other groups in
       create_parent_groups, datasets at creation): identical runs write identical bytes. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0)
        writer->file = H5Fcreate(writer->temp_path, H5F_ACC_TRUNC, fcpl, fapl);
    else
        writer->file = H5I_INVALID_HID;
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (writer->file < 0) {
        kseg_io_h5_reason(writer->reason, sizeof writer->reason);
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: cannot create %s%s: %s",
                                final_path, writer->temp_path,
                                comm ? " with MPI-IO (does its file system support MPI-IO?)" : "",
                                writer->reason);
        discard_temporary(writer);
        goto fail;
    }
    H5Pclose(fapl);
    *writer_out = writer;
    return 0;

fail:
    if (fapl >= 0)
        H5Pclose(fapl);
    if (writer) {
        if (writer->transfer > 0)
            H5Pclose(writer->transfer);
        free(writer->final_path);
        free(writer->temp_path);
        free(writer);
    }
    return status;
}

int kseg_h5_writer_commit(kseg_h5_writer *writer, kseg_error *error)
{
    int status = 0;
    if (!writer)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_h5_writer_commit: writer is NULL");
    kseg_io_h5_silence();

    /* H5Fclose writes the metadata; only then is the file complete and worth syncing. */
    herr_t closed = H5Fclose(writer->file);
    writer->file = H5I_INVALID_HID;
    if (writer->transfer > 0)
        H5Pclose(writer->transfer);
    writer->transfer = H5P_DEFAULT;
    if (closed < 0)
        kseg_io_h5_reason(writer->reason, sizeof writer->reason);
    if (any_rank_failed(writer, closed < 0)) {
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: closing %s failed: %s",
                                writer->final_path, writer->temp_path,
                                closed < 0 ? writer->reason : "on another rank");
        goto fail;
    }
    /* Rank 0 publishes the file; then every rank learns whether that worked. */
    if (writer->rank == 0)
        status = kseg_io_temporary_publish(writer->temp_path, writer->final_path, error);
    if (writer->comm) {
        int64_t published = status;
        if (writer->comm->ops->broadcast(writer->comm, &published, sizeof published, 0))
            published = KSEG_EIO;
        if (published && !status)
            status = kseg_error_set(error, (int)published,
                                    "cannot write %s: rank 0 could not rename %s over it",
                                    writer->final_path, writer->temp_path);
    }
    free(writer->final_path);
    free(writer->temp_path);
    free(writer);
    return status;

fail:
    discard_temporary(writer);
    free(writer->final_path);
    free(writer->temp_path);
    free(writer);
    return status;
}

void kseg_h5_writer_abort(kseg_h5_writer *writer)
{
    if (!writer)
        return;
    kseg_io_h5_silence();
    if (writer->file >= 0)
        H5Fclose(writer->file);
    if (writer->transfer > 0)
        H5Pclose(writer->transfer);
    discard_temporary(writer);
    free(writer->final_path);
    free(writer->temp_path);
    free(writer);
}

/* ---------------------------------------------------------------- datasets */

/* Chunks compressed at once by write_chunks_in_parallel, at most: the batch's output buffers
 * are also held to PARALLEL_BATCH_BYTES, and chunks beyond PARALLEL_CHUNK_MAX_BYTES (far above
 * kseg's own, which stay near 1 MiB) go through H5Dwrite, so that the memory of the parallel
 * path stays bounded whatever chunk size a library caller chooses. */
#define PARALLEL_CHUNK_BATCH ((size_t)64)
#define PARALLEL_BATCH_BYTES ((size_t)64 << 20)
#define PARALLEL_CHUNK_MAX_BYTES ((size_t)16 << 20)

/* HDF5's shuffle filter, byte for byte: byte b of element i goes to b * elements + i (the bytes
 * past the last whole element, none for our types, stay in place). */
static void shuffle_bytes(const unsigned char *source, unsigned char *target, size_t bytes,
                          size_t element_size)
{
    size_t elements = bytes / element_size;
    for (size_t b = 0; b < element_size; b++)
        for (size_t i = 0; i < elements; i++)
            target[b * elements + i] = source[i * element_size + b];
    memcpy(target + elements * element_size, source + elements * element_size,
           bytes - elements * element_size);
}

/* Writes a whole shuffled and deflated dataset chunk by chunk, with the chunks filtered on
 * OpenMP threads instead of one after the other inside H5Dwrite: the shuffle step of HDF5's own
 * filter, byte for byte (the edge chunk padded with the fill value 0 as HDF5 pads it), then a
 * zlib stream at the dataset's level from libdeflate instead of zlib, then H5Dwrite_chunk from
 * this thread only, since HDF5 is not thread-safe. HDF5's deflate filter (any zlib inflater)
 * reads the streams; they are not the bytes zlib would have made: at level 1 on RFM results
 * libdeflate took 0.42 of zlib's time for a 7 % smaller output. Returns 0, 1 when the buffers or
 * compressors could not be allocated (the caller then writes with H5Dwrite), or a negative
 * error. */
static int write_chunks_in_parallel(kseg_h5_writer *writer, hid_t dataset, const char *path,
                                    const unsigned char *data, size_t rows, size_t row_bytes,
                                    size_t element_size, size_t chunk_rows, int gzip_level,
                                    kseg_error *error)
{
    const size_t chunk_bytes = chunk_rows * row_bytes;
    if (chunk_bytes > PARALLEL_CHUNK_MAX_BYTES)
        return 1;
    const size_t n_chunks = (rows + chunk_rows - 1) / chunk_rows;
    int threads = omp_get_max_threads();
    if ((size_t)threads > n_chunks)
        threads = (int)n_chunks; /* a thread without a chunk would only hold scratch */
    /* One compressor per thread: a compressor holds its own hash tables. */
    const int n_compressors = threads;
    struct libdeflate_compressor **compressors = calloc((size_t)n_compressors, sizeof *compressors);
    int have_compressors = compressors != NULL;
    for (int t = 0; have_compressors && t < n_compressors; t++)
        have_compressors = (compressors[t] = libdeflate_alloc_compressor(gzip_level)) != NULL;
    const size_t bound =
        have_compressors ? libdeflate_zlib_compress_bound(compressors[0], chunk_bytes) : 1;
    size_t batch = PARALLEL_BATCH_BYTES / bound;
    if (batch < 1)
        batch = 1;
    if (batch > PARALLEL_CHUNK_BATCH)
        batch = PARALLEL_CHUNK_BATCH;
    if (batch > n_chunks)
        batch = n_chunks;
    if ((size_t)threads > batch)
        threads = (int)batch;
    unsigned char *compressed = have_compressors ? malloc(batch * bound) : NULL;
    size_t *sizes = malloc(batch * sizeof *sizes);
    unsigned char *scratch = malloc((size_t)threads * 2 * chunk_bytes);
    if (!have_compressors || !compressed || !sizes || !scratch) {
        free(compressed);
        free(sizes);
        free(scratch);
        for (int t = 0; compressors && t < n_compressors; t++)
            libdeflate_free_compressor(compressors[t]); /* NULL is allowed */
        free(compressors);
        return 1;
    }
    int status = 0;
    for (size_t first = 0; first < n_chunks && !status; first += batch) {
        size_t count = n_chunks - first < batch ? n_chunks - first : batch;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t c = 0; c < count; c++) {
            unsigned char *padded = scratch + (size_t)omp_get_thread_num() * 2 * chunk_bytes;
            unsigned char *shuffled = padded + chunk_bytes;
            size_t row = (first + c) * chunk_rows;
            size_t used = (rows - row < chunk_rows ? rows - row : chunk_rows) * row_bytes;
            const unsigned char *source = data + row * row_bytes;
            if (used < chunk_bytes) {
                memcpy(padded, source, used);
                memset(padded + used, 0, chunk_bytes - used);
                source = padded;
            }
            shuffle_bytes(source, shuffled, chunk_bytes, element_size);
            /* 0 only when the stream would not fit the bound, which cannot happen. */
            sizes[c] = libdeflate_zlib_compress(compressors[omp_get_thread_num()], shuffled,
                                                chunk_bytes, compressed + c * bound, bound);
        }
        for (size_t c = 0; c < count && !status; c++) {
            if (sizes[c] == 0) {
                status = kseg_error_set(error, KSEG_EINTERNAL,
                                        "%s:%s: chunk %zu: the compressed chunk exceeded its "
                                        "bound", writer->final_path, path, first + c);
                break;
            }
            hsize_t offset[2] = {(hsize_t)((first + c) * chunk_rows), 0};
            if (H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, offset, sizes[c],
                               compressed + c * bound) < 0)
                status = writer_hdf5_failure(writer, error, "cannot write the data", path);
        }
    }
    free(compressed);
    free(sizes);
    free(scratch);
    for (int t = 0; t < n_compressors; t++)
        libdeflate_free_compressor(compressors[t]);
    free(compressors);
    return status;
}

int kseg_h5_write_dataset(kseg_h5_writer *writer, const char *path, kseg_store_type type,
                          int rank, const size_t *dims, const void *data, size_t chunk_rows,
                          int gzip_level, kseg_error *error)
{
    hid_t space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t dataset = H5I_INVALID_HID;
    int status = check_writer(writer, path, error);
    if (status)
        return status;
    const char *where = writer->final_path;
    hid_t file_type = file_type_of(type), memory_type = memory_type_of(type);
    if (file_type < 0)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: unknown store type %d", where, path,
                              (int)type);
    if ((rank != 1 && rank != 2) || !dims)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: rank %d (expected 1 or 2)", where, path,
                              rank);
    if (gzip_level < 0 || gzip_level > 9)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: gzip level %d (expected 0 to 9)", where,
                              path, gzip_level);

    if (object_exists(writer, path))
        return kseg_error_set(error, KSEG_EEXIST, "%s:%s: already written (each dataset is created "
                              "once; use kseg_h5_write_rows to add rows)",
                              where, path);

    hsize_t h5_dims[2] = {dims[0], rank == 2 ? dims[1] : 1};
    const size_t row_bytes = (rank == 2 ? dims[1] : 1) * H5Tget_size(file_type);
    if (gzip_level > 0 && chunk_rows == 0)
        chunk_rows = row_bytes ? DEFAULT_CHUNK_BYTES / row_bytes : 1;
    if (chunk_rows > dims[0])
        chunk_rows = dims[0];
    if (chunk_rows == 0 && gzip_level > 0)
        gzip_level = 0; /* an empty dataset cannot be chunked: nothing to compress anyway */
    if (chunk_rows > 0 && row_bytes > 0 && chunk_rows > MAX_CHUNK_BYTES / row_bytes)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%s: chunks of %zu rows would exceed %zu MiB (use fewer rows per "
                              "chunk)",
                              where, path, chunk_rows, MAX_CHUNK_BYTES >> 20);
    if (rank == 2 && chunk_rows > 0 && dims[1] == 0)
        chunk_rows = 0;

    space = H5Screate_simple(rank, h5_dims, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* No creation timestamps in object headers: the same run writes byte-identical files. */
    if (space < 0 || lcpl < 0 || dcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot prepare the dataset", path);
        goto done;
    }
    if (chunk_rows > 0) {
        hsize_t chunk[2] = {chunk_rows, h5_dims[1]};
        if (H5Pset_chunk(dcpl, rank, chunk) < 0) {
            status = writer_hdf5_failure(writer, error, "cannot set the chunk size", path);
            goto done;
        }
        if (gzip_level > 0) {
            if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) {
                status = kseg_error_set(error, KSEG_ENOTSUP,
                                        "%s:%s: gzip compression is not available in this HDF5",
                                        where, path);
                goto done;
            }
            /* Byte shuffling groups the exponents of neighbouring values, which typically makes
               float columns compress much better at little cost. */
            if (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)gzip_level) < 0) {
                status = writer_hdf5_failure(writer, error, "cannot set compression", path);
                goto done;
            }
        }
    }
    if (create_parent_groups(writer->file, path) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot create the groups above", path);
        goto done;
    }
    dataset = H5Dcreate2(writer->file, path, file_type, space, lcpl, dcpl, H5P_DEFAULT);
    if (dataset < 0) {
        status = writer_hdf5_failure(writer, error, "cannot create the dataset", path);
        goto done;
    }
    /* Compressed datasets of several chunks are filtered in parallel when the memory layout is
       the file's (little-endian hosts): filtering is most of the cost of writing them. */
    if (writer->comm && data && dims[0] > 0 && h5_dims[1] > 0) {
        /* Distributed: the data is alike on every rank, so rank 0 writes all of it and the other
           ranks join the collective write with nothing selected. */
        hid_t file_space = H5Dget_space(dataset), memory = H5Scopy(space);
        int failed = file_space < 0 || memory < 0 ||
                     (writer->rank != 0 &&
                      (H5Sselect_none(file_space) < 0 || H5Sselect_none(memory) < 0)) ||
                     H5Dwrite(dataset, memory_type, memory, file_space, writer->transfer, data) < 0;
        if (failed)
            status = writer_hdf5_failure(writer, error, "cannot write the data", path);
        if (file_space >= 0)
            H5Sclose(file_space);
        if (memory >= 0)
            H5Sclose(memory);
        goto done;
    }
    if (data && dims[0] > 0 && h5_dims[1] > 0 && gzip_level > 0 &&
        H5Tequal(file_type, memory_type) > 0) {
        status = write_chunks_in_parallel(writer, dataset, path, data, dims[0], row_bytes,
                                          H5Tget_size(file_type), chunk_rows, gzip_level, error);
        if (status <= 0)
            goto done;
        status = 0;
    }
    if (data && dims[0] > 0 && h5_dims[1] > 0 &&
        H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot write the data", path);
        goto done;
    }

done:
    if (dataset >= 0)
        H5Dclose(dataset);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (space >= 0)
        H5Sclose(space);
    return status;
}

int kseg_h5_write_rows(kseg_h5_writer *writer, const char *path, size_t row_offset, size_t rows,
                       const void *data, kseg_error *error)
{
    hid_t dataset = H5I_INVALID_HID, space = H5I_INVALID_HID, memory = H5I_INVALID_HID;
    hid_t file_type = H5I_INVALID_HID, memory_type = H5I_INVALID_HID;
    int status = check_writer(writer, path, error);
    if (status)
        return status;
    /* A distributed writer's rank with no rows still joins the collective write. */
    if (rows == 0 && !writer->comm)
        return 0;
    if (!data && rows > 0)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: no data to write", writer->final_path,
                              path);
    if (!object_exists(writer, path))
        return kseg_error_set(error, KSEG_ENOENT,
                              "%s:%s: no such dataset (create it with kseg_h5_write_dataset first)",
                              writer->final_path, path);
    dataset = H5Dopen2(writer->file, path, H5P_DEFAULT);
    if (dataset < 0) {
        status = writer_hdf5_failure(writer, error, "cannot open the dataset", path);
        goto done;
    }
    space = H5Dget_space(dataset);
    file_type = H5Dget_type(dataset);
    if (space < 0 || file_type < 0) {
        status = writer_hdf5_failure(writer, error, "cannot inspect the dataset", path);
        goto done;
    }
    /* The data is in the native form of the dataset's own type (what write_dataset created). */
    memory_type = H5Tget_native_type(file_type, H5T_DIR_ASCEND);
    hsize_t dims[2] = {0, 1};
    int rank = H5Sget_simple_extent_ndims(space);
    if (memory_type < 0 || (rank != 1 && rank != 2) ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot inspect the dataset", path);
        goto done;
    }
    if (row_offset > dims[0] || rows > dims[0] - row_offset) {
        status = kseg_error_set(error, KSEG_EINVAL,
                                "%s:%s: rows [%zu, %zu) are outside the dataset's %llu rows",
                                writer->final_path, path, row_offset, row_offset + rows,
                                (unsigned long long)dims[0]);
        goto done;
    }
    hsize_t start[2] = {row_offset, 0}, count[2] = {rows, rank == 2 ? dims[1] : 1};
    memory = H5Screate_simple(rank, count, NULL);
    static const int64_t nothing = 0; /* a non-NULL buffer for an empty selection */
    if (memory < 0 ||
        (rows ? H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL)
              : H5Sselect_none(space)) < 0 ||
        (!rows && H5Sselect_none(memory) < 0) ||
        H5Dwrite(dataset, memory_type, memory, space, writer->transfer, rows ? data : &nothing) <
            0) {
        status = writer_hdf5_failure(writer, error, "cannot write rows", path);
        goto done;
    }

done:
    if (memory >= 0)
        H5Sclose(memory);
    if (memory_type >= 0)
        H5Tclose(memory_type);
    if (file_type >= 0)
        H5Tclose(file_type);
    if (space >= 0)
        H5Sclose(space);
    if (dataset >= 0)
        H5Dclose(dataset);
    return status;
}

int kseg_h5_write_strings(kseg_h5_writer *writer, const char *path, const char *const *values,
                          size_t count, kseg_error *error)
{
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
    hid_t dataset = H5I_INVALID_HID;
    int status = check_writer(writer, path, error);
    if (status)
        return status;
    if (count > 0 && !values)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: no strings given", writer->final_path,
                              path);
    for (size_t i = 0; i < count; i++)
        if (!values[i])
            return kseg_error_set(error, KSEG_EINVAL, "%s:%s: string %zu is NULL",
                                  writer->final_path, path, i);
    if (object_exists(writer, path))
        return kseg_error_set(error, KSEG_EEXIST, "%s:%s: already written", writer->final_path,
                              path);
    /* Parallel HDF5 cannot write variable-length data. */
    if (writer->comm)
        return kseg_error_set(error, KSEG_ENOTSUP,
                              "%s:%s: string datasets cannot be written by a distributed run",
                              writer->final_path, path);
    hsize_t dims = count;
    type = utf8_string_type();
    space = H5Screate_simple(1, &dims, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (type < 0 || space < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot prepare the dataset", path);
        goto done;
    }
    hid_t string_dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (string_dcpl < 0 || H5Pset_obj_track_times(string_dcpl, 0) < 0 ||
        create_parent_groups(writer->file, path) < 0) {
        if (string_dcpl >= 0)
            H5Pclose(string_dcpl);
        status = writer_hdf5_failure(writer, error, "cannot prepare the dataset", path);
        goto done;
    }
    dataset = H5Dcreate2(writer->file, path, type, space, lcpl, string_dcpl, H5P_DEFAULT);
    H5Pclose(string_dcpl);
    if (dataset < 0) {
        status = writer_hdf5_failure(writer, error, "cannot create the dataset", path);
        goto done;
    }
    if (count > 0 && H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot write the strings", path);
        goto done;
    }

done:
    if (dataset >= 0)
        H5Dclose(dataset);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

/* ---------------------------------------------------------------- attributes */

/* Creates (replacing any existing one) attribute name on object_path and writes value. */
static int write_attribute(kseg_h5_writer *writer, const char *object_path, const char *name,
                           hid_t file_type, hid_t memory_type, hid_t space, const void *value,
                           kseg_error *error)
{
    hid_t object = H5I_INVALID_HID, attribute = H5I_INVALID_HID;
    if (!object_path || !*object_path)
        object_path = "/"; /* attributes of the file itself live on the root group */
    int status = check_writer(writer, object_path, error);
    if (status)
        return status;
    if (!name || !*name)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%s: empty attribute name",
                              writer->final_path, object_path);
    if (!object_exists(writer, object_path))
        return kseg_error_set(error, KSEG_ENOENT,
                              "%s:%s: no such object for attribute \"%s\" (create it first)",
                              writer->final_path, object_path, name);
    object = H5Oopen(writer->file, object_path, H5P_DEFAULT);
    if (object < 0) {
        status = writer_hdf5_failure(writer, error, "cannot open the object", object_path);
        goto done;
    }
    htri_t exists = H5Aexists(object, name);
    if (exists > 0 && H5Adelete(object, name) < 0) {
        status = writer_hdf5_failure(writer, error, "cannot replace an attribute", object_path);
        goto done;
    }
    attribute = H5Acreate2(object, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute < 0 || H5Awrite(attribute, memory_type, value) < 0) {
        kseg_io_h5_reason(writer->reason, sizeof writer->reason);
        status = kseg_error_set(error, KSEG_EIO, "%s:%s: cannot write attribute \"%s\": %s",
                                writer->final_path, object_path, name, writer->reason);
        goto done;
    }

done:
    if (attribute >= 0)
        H5Aclose(attribute);
    if (object >= 0)
        H5Oclose(object);
    return status;
}

int kseg_h5_write_attribute_string(kseg_h5_writer *writer, const char *object_path,
                                   const char *name, const char *value, kseg_error *error)
{
    if (!value)
        return kseg_error_set(error, KSEG_EINVAL, "attribute \"%s\": NULL value",
                              name ? name : "?");
    /* A variable-length UTF-8 scalar: h5py reads it as str, not bytes. */
    hid_t type = utf8_string_type();
    hid_t space = H5Screate(H5S_SCALAR);
    int status;
    if (type < 0 || space < 0)
        status = kseg_error_set(error, KSEG_EIO, "cannot create a string type");
    else
        status = write_attribute(writer, object_path, name, type, type, space, &value, error);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

int kseg_h5_write_attribute_strings(kseg_h5_writer *writer, const char *object_path,
                                    const char *name, const char *const *values, size_t count,
                                    kseg_error *error)
{
    if (count > 0 && !values)
        return kseg_error_set(error, KSEG_EINVAL, "attribute \"%s\": NULL values",
                              name ? name : "?");
    for (size_t i = 0; i < count; i++)
        if (!values[i])
            return kseg_error_set(error, KSEG_EINVAL, "attribute \"%s\": string %zu is NULL",
                                  name ? name : "?", i);
    hsize_t dims = count;
    hid_t type = utf8_string_type();
    hid_t space = H5Screate_simple(1, &dims, NULL);
    int status;
    if (type < 0 || space < 0)
        status = kseg_error_set(error, KSEG_EIO, "cannot create a string type");
    else
        status = write_attribute(writer, object_path, name, type, type, space, values, error);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

int kseg_h5_write_attribute_double(kseg_h5_writer *writer, const char *object_path,
                                   const char *name, double value, kseg_error *error)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0)
        return kseg_error_set(error, KSEG_EIO, "cannot create a dataspace");
    int status = write_attribute(writer, object_path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                 space, &value, error);
    H5Sclose(space);
    return status;
}

int kseg_h5_write_attribute_int64(kseg_h5_writer *writer, const char *object_path,
                                  const char *name, int64_t value, kseg_error *error)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0)
        return kseg_error_set(error, KSEG_EIO, "cannot create a dataspace");
    int status = write_attribute(writer, object_path, name, H5T_STD_I64LE, H5T_NATIVE_INT64,
                                 space, &value, error);
    H5Sclose(space);
    return status;
}
