/* Reading unfiltered 1-D datasets outside HDF5: HDF5 says once, on the calling thread, where each
 * chunk (or the contiguous data) lies in the file, and the OpenMP threads then pread the rows
 * straight into the caller's buffer. Used by the transaction reader (io/transactions_io.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "h5_internal.h"

/* A read is cut into pieces of at most this many bytes, so that a block of a few chunks still
   keeps every thread busy; a 1 MiB piece costs far more than its scheduling. */
#define PIECE_BYTES ((size_t)1 << 20)

struct kseg_io_direct {
    int fd;                 /* borrowed from HDF5's sec2 driver: valid while the file is open */
    size_t element_size;
    size_t rows;
    size_t chunk_rows;      /* rows per chunk; the whole dataset for contiguous storage */
    size_t n_chunks;
    uint64_t *offsets;      /* [n_chunks]: each chunk's first byte in the file */
};

void kseg_io_direct_free(kseg_io_direct *plan)
{
    if (!plan)
        return;
    free(plan->offsets);
    free(plan);
}

/* The POSIX descriptor HDF5 reads file_id through, or -1 when the file is not read by the sec2
   driver (MPI-IO, core, family, ...) or has a user block (whose addresses HDF5 reports relative to
   the block's end in some versions and to the file's start in others). */
static int sec2_descriptor(hid_t file_id)
{
    int fd = -1;
    hid_t fapl = H5Fget_access_plist(file_id), fcpl = H5Fget_create_plist(file_id);
    hsize_t userblock = 1;
    void *handle = NULL;
    if (fapl >= 0 && fcpl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
        H5Pget_userblock(fcpl, &userblock) >= 0 && userblock == 0 &&
        H5Fget_vfd_handle(file_id, fapl, &handle) >= 0 && handle)
        fd = *(int *)handle;
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return fd;
}

int kseg_io_direct_open(hid_t dataset, hid_t memory_type, kseg_io_direct **plan_out,
                        kseg_error *error)
{
    *plan_out = NULL;
    int status = 0;
    kseg_io_direct *plan = NULL;
    hid_t type = H5Dget_type(dataset), space = H5Dget_space(dataset);
    hid_t dcpl = H5Dget_create_plist(dataset), file_id = H5Iget_file_id(dataset);
    if (type < 0 || space < 0 || dcpl < 0 || file_id < 0)
        goto done;
    /* Only bytes that need no conversion: the file type must be the memory type, byte order
       included, so a big-endian or narrower column takes HDF5's converting path. */
    hsize_t dims = 0;
    if (H5Tequal(type, memory_type) <= 0 || H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, &dims, NULL) != 1 || dims == 0)
        goto done;
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if ((layout != H5D_CHUNKED && layout != H5D_CONTIGUOUS) || H5Pget_nfilters(dcpl) != 0 ||
        H5Pget_external_count(dcpl) != 0)
        goto done;
    int fd = sec2_descriptor(file_id);
    if (fd < 0)
        goto done;
    plan = calloc(1, sizeof *plan);
    if (!plan)
        goto out_of_memory;
    plan->fd = fd;
    plan->element_size = H5Tget_size(memory_type);
    plan->rows = (size_t)dims;
    if (layout == H5D_CONTIGUOUS) {
        haddr_t offset = H5Dget_offset(dataset);
        if (offset == HADDR_UNDEF)
            goto not_direct; /* never written: HDF5 supplies the fill value */
        plan->chunk_rows = plan->rows;
        plan->n_chunks = 1;
        if (!(plan->offsets = malloc(sizeof *plan->offsets)))
            goto out_of_memory;
        plan->offsets[0] = offset;
        goto found;
    }
    hsize_t chunk = 0;
    if (H5Pget_chunk(dcpl, 1, &chunk) != 1 || chunk == 0)
        goto not_direct;
    plan->chunk_rows = (size_t)chunk;
    plan->n_chunks = (plan->rows + plan->chunk_rows - 1) / plan->chunk_rows;
    if (!(plan->offsets = malloc(plan->n_chunks * sizeof *plan->offsets)))
        goto out_of_memory;
    /* Every chunk must be allocated at full size with no filter skipped: a missing chunk reads as
       the fill value, which only HDF5 knows how to supply. */
    const hsize_t chunk_bytes = chunk * plan->element_size;
    for (size_t c = 0; c < plan->n_chunks; c++) {
        hsize_t coordinate = (hsize_t)c * chunk, size = 0;
        unsigned filter_mask = 0;
        haddr_t address = HADDR_UNDEF;
        if (H5Dget_chunk_info_by_coord(dataset, &coordinate, &filter_mask, &address, &size) < 0 ||
            address == HADDR_UNDEF || size != chunk_bytes || filter_mask != 0)
            goto not_direct;
        plan->offsets[c] = address;
    }
found:
    *plan_out = plan;
    plan = NULL;
    status = 1;
    goto done;
out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for a dataset's chunk offsets");
not_direct:
    kseg_io_h5_silence();
done:
    kseg_io_direct_free(plan);
    if (file_id >= 0)
        H5Fclose(file_id);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}

/* One pread of the current read: bytes of request's rows from the file offset to destination. */
typedef struct piece {
    size_t request;
    int fd;
    uint64_t offset;
    size_t bytes;
    unsigned char *destination;
} piece;

/* Appends the pieces of one request (rows [first, first + count) of its plan). */
static size_t add_pieces(const kseg_io_direct_request *request, size_t index, piece *pieces,
                         size_t n_pieces)
{
    const kseg_io_direct *plan = request->plan;
    unsigned char *destination = request->destination;
    size_t row = request->first, end = request->first + request->count;
    while (row < end) {
        size_t c = row / plan->chunk_rows;
        size_t chunk_end = (c + 1) * plan->chunk_rows;
        size_t rows = (chunk_end < end ? chunk_end : end) - row;
        size_t max_rows = PIECE_BYTES / plan->element_size;
        if (rows > max_rows)
            rows = max_rows;
        piece *p = &pieces[n_pieces++];
        p->request = index;
        p->fd = plan->fd;
        p->offset = plan->offsets[c] + (uint64_t)(row - c * plan->chunk_rows) * plan->element_size;
        p->bytes = rows * plan->element_size;
        p->destination = destination + (row - request->first) * plan->element_size;
        row += rows;
    }
    return n_pieces;
}

/* The most pieces a request can need: one per chunk it touches, each cut into pieces. */
static size_t pieces_bound(const kseg_io_direct_request *request)
{
    const kseg_io_direct *plan = request->plan;
    if (request->count == 0)
        return 0;
    size_t chunks = (request->first + request->count - 1) / plan->chunk_rows -
                    request->first / plan->chunk_rows + 1;
    return chunks + request->count * plan->element_size / PIECE_BYTES + 1;
}

/* Reads a piece whole; 0, or the errno of the failure (EIO for an early end of file). */
static int read_piece(const piece *p)
{
    size_t done = 0;
    while (done < p->bytes) {
        ssize_t got = pread(p->fd, p->destination + done, p->bytes - done,
                            (off_t)(p->offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return errno ? errno : EIO;
        if (got == 0)
            return EIO;
        done += (size_t)got;
    }
    return 0;
}

int kseg_io_direct_read(const kseg_io_direct_request *requests, size_t n_requests, int threads,
                        kseg_error *error)
{
    size_t bound = 0;
    for (size_t r = 0; r < n_requests; r++) {
        const kseg_io_direct *plan = requests[r].plan;
        if (requests[r].first > plan->rows || requests[r].count > plan->rows - requests[r].first)
            return kseg_error_set(error, KSEG_EINVAL, "%s: rows [%zu, %zu) are outside the %zu "
                                  "rows", requests[r].where, requests[r].first,
                                  requests[r].first + requests[r].count, plan->rows);
        bound += pieces_bound(&requests[r]);
    }
    if (bound == 0)
        return 0;
    piece *pieces = malloc(bound * sizeof *pieces);
    if (!pieces)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for a read of %zu datasets",
                              n_requests);
    size_t n_pieces = 0;
    for (size_t r = 0; r < n_requests; r++)
        n_pieces = add_pieces(&requests[r], r, pieces, n_pieces);
    /* The first failing piece in order is reported, whatever the thread that met it, so the
       message does not depend on the thread count. */
    size_t failed = n_pieces;
    int failed_errno = 0;
    if (threads < 1)
        threads = 1;
    const int parallel = threads > 1 && n_pieces > 1;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
    for (size_t i = 0; i < n_pieces; i++) {
        int code = read_piece(&pieces[i]);
        if (code) {
            #pragma omp critical(kseg_io_direct_failure)
            if (i < failed) {
                failed = i;
                failed_errno = code;
            }
        }
    }
    int status = 0;
    if (failed < n_pieces) {
        const piece *p = &pieces[failed];
        const kseg_io_direct_request *request = &requests[p->request];
        size_t row = request->first +
                     (size_t)(p->destination - (unsigned char *)request->destination) /
                         request->plan->element_size;
        status = kseg_error_set(error, KSEG_EIO,
                                "%s: cannot read rows from %zu at file offset %llu: %s",
                                request->where, row, (unsigned long long)p->offset,
                                failed_errno == EIO ? "the file ends early (a truncated copy?)"
                                                    : strerror(failed_errno));
    }
    free(pieces);
    return status;
}
