/* Reading gzip-compressed chunked datasets in parallel: HDF5 hands over each chunk's stored bytes
 * (H5Dread_chunk, always on the calling thread, since HDF5 is not thread-safe) and zlib inflates,
 * unshuffles and places the chunks on all OpenMP threads. Used by io/h5_read.c for matrices. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <zlib.h>

#include "kseg/memory.h"

#include "h5_internal.h"

/* Chunks are read in batches: while the threads inflate one batch, the main thread reads the
   next one into a second buffer, then joins them. A batch holds at most this many stored bytes
   (or one chunk, when a single chunk is larger), so the extra memory of a load is two batch
   buffers plus one or two raw chunks per thread, whatever the size of the dataset. 32 MiB is
   dozens of typical (1 MiB) chunks: enough to keep every thread busy while the next is read. */
#define BATCH_BYTES ((size_t)32 << 20)

/* Chunks larger than this (uncompressed) go through H5Dread instead: each thread keeps two raw
   chunks of scratch, and a few hundred MiB per thread is more than a load should cost. */
#define MAX_CHUNK_BYTES ((size_t)16 << 20)

/* At most this many chunks per batch, however small they are. */
#define BATCH_CHUNKS 4096

/* The most stored bytes a deflated chunk of chunk_bytes may take. Looser than zlib's own
 * compressBound: HDF5's deflate filter allows its output up to about 0.1 % past the input, and
 * other writers (zlib-ng, H5Dwrite_chunk callers) more, all of which HDF5 reads; the limit only
 * keeps a damaged size from claiming unbounded memory. */
static uint64_t stored_limit_of(size_t chunk_bytes)
{
    return (uint64_t)chunk_bytes + chunk_bytes / 8 + 4096;
}

/* One chunk of the current batch: where its stored bytes sit in the batch buffer and what
   happened when it was decoded. */
typedef struct batch_chunk {
    size_t first_row;      /* the chunk's first dataset row and column */
    size_t first_column;
    size_t stored_offset;  /* its stored bytes in the batch buffer */
    size_t stored_bytes;
    uint32_t filter_mask;  /* bit i set: filter i of the pipeline was skipped for this chunk */
    int failed;            /* set by the decoding thread */
    char reason[96];
} batch_chunk;

/* A batch: the stored bytes of some chunks, read by the main thread, and the chunks. */
typedef struct batch {
    unsigned char *bytes;
    size_t capacity;
    batch_chunk *chunks;   /* [BATCH_CHUNKS] */
    size_t count;
} batch;

/* What every thread needs to decode a chunk, fixed for the whole read. */
typedef struct chunk_plan {
    size_t chunk_rows, chunk_columns;   /* the chunk shape (the file's, also at the edges) */
    size_t element_size;
    size_t chunk_bytes;                 /* chunk_rows * chunk_columns * element_size */
    int shuffled;                       /* the pipeline is shuffle, deflate */
    size_t dataset_columns;             /* d */
    size_t first, count;                /* the rows read */
    const size_t *columns;              /* the file columns read, ascending, [n_columns] */
    size_t n_columns;
    unsigned char *destination;         /* (r - first, q) at destination_columns per row */
    size_t destination_columns;
    size_t rows;                        /* n, the dataset's rows */
} chunk_plan;

/* The next chunk to read: its row block, and the first selected column it holds. */
typedef struct chunk_cursor {
    size_t block, end_block;
    size_t column_position;
} chunk_cursor;

/* Undoes HDF5's shuffle filter: the stored bytes hold byte 0 of every element, then byte 1 of
   every element, and so on. The element sizes kseg reads (4 and 8) get a loop with a constant
   size so that the compiler unrolls it. HDF5 leaves a chunk of one element unshuffled. */
static void unshuffle(const unsigned char *shuffled, unsigned char *out, size_t elements,
                      size_t element_size)
{
    if (elements <= 1) {
        memcpy(out, shuffled, elements * element_size);
        return;
    }
    if (element_size == 4) {
        const unsigned char *p0 = shuffled, *p1 = p0 + elements, *p2 = p1 + elements,
                            *p3 = p2 + elements;
        for (size_t i = 0; i < elements; i++) {
            out[4 * i] = p0[i];
            out[4 * i + 1] = p1[i];
            out[4 * i + 2] = p2[i];
            out[4 * i + 3] = p3[i];
        }
    } else if (element_size == 8) {
        for (size_t i = 0; i < elements; i++)
            for (size_t b = 0; b < 8; b++)
                out[8 * i + b] = shuffled[b * elements + i];
    } else {
        for (size_t i = 0; i < elements; i++)
            for (size_t b = 0; b < element_size; b++)
                out[element_size * i + b] = shuffled[b * elements + i];
    }
}

/* Inflates stored into out, which must come out exactly bytes long. 0 or a reason. */
static const char *inflate_chunk(z_stream *stream, const unsigned char *stored,
                                 size_t stored_bytes, unsigned char *out, size_t bytes)
{
    if (inflateReset(stream) != Z_OK)
        return "zlib cannot reset its stream";
    stream->next_in = (Bytef *)stored;
    stream->avail_in = (uInt)stored_bytes;
    stream->next_out = out;
    stream->avail_out = (uInt)bytes;
    int result = inflate(stream, Z_FINISH);
    if (result == Z_STREAM_END)
        return stream->total_out == bytes ? NULL : "inflates to fewer bytes than a chunk holds";
    if (result == Z_BUF_ERROR && stream->avail_out == 0)
        return "inflates to more bytes than a chunk holds";
    if (result == Z_BUF_ERROR)
        return "compressed stream ends early";
    return stream->msg ? stream->msg : "zlib cannot inflate it";
}

/* Decodes one chunk of the batch and copies its part of the selection into the destination.
   scratch and unshuffled are chunk_bytes each; the chunk goes straight into the destination
   (inflated or unshuffled there) when it covers whole destination rows (the common case of all
   columns in full-width chunks). A chunk that cannot be decoded sets chunk->failed and
   chunk->reason. */
static void decode_chunk(const chunk_plan *plan, const unsigned char *stored_batch,
                         batch_chunk *chunk, z_stream *stream, unsigned char *scratch,
                         unsigned char *unshuffled)
{
    const size_t element = plan->element_size;
    const unsigned char *stored = stored_batch + chunk->stored_offset;
    /* The deflate filter is the last one of the pipeline; its mask bit says whether it ran. */
    const int deflated = !(chunk->filter_mask & (plan->shuffled ? 2u : 1u));
    const int shuffled = plan->shuffled && !(chunk->filter_mask & 1u);
    const size_t row_end = chunk->first_row + plan->chunk_rows;
    const int whole = plan->chunk_columns == plan->dataset_columns &&
                      plan->n_columns == plan->dataset_columns &&
                      plan->destination_columns == plan->dataset_columns &&
                      chunk->first_row >= plan->first && row_end <= plan->first + plan->count;
    unsigned char *in_place = whole ? plan->destination + (chunk->first_row - plan->first) *
                                                              plan->destination_columns * element
                                    : NULL;
    const unsigned char *raw;
    const char *reason = NULL;

    if (deflated) {
        unsigned char *target = in_place && !shuffled ? in_place : scratch;
        reason = inflate_chunk(stream, stored, chunk->stored_bytes, target, plan->chunk_bytes);
        raw = target;
    } else if (chunk->stored_bytes != plan->chunk_bytes) {
        reason = "stored uncompressed with the wrong size";
        raw = stored;
    } else {
        raw = stored;
    }
    if (reason) {
        chunk->failed = 1;
        snprintf(chunk->reason, sizeof chunk->reason, "%s", reason);
        return;
    }
    if (shuffled) {
        unsigned char *target = in_place ? in_place : unshuffled;
        unshuffle(raw, target, plan->chunk_bytes / element, element);
        raw = target;
    }
    if (in_place) {
        if (raw != in_place)
            memcpy(in_place, raw, plan->chunk_bytes);
        return;
    }

    /* Clip to the rows read and to the dataset's edge, then copy the selected columns that fall
       in this chunk; they are a contiguous run of positions since columns[] is ascending. */
    size_t row_begin = chunk->first_row > plan->first ? chunk->first_row : plan->first;
    size_t row_stop = row_end < plan->first + plan->count ? row_end : plan->first + plan->count;
    size_t column_end = chunk->first_column + plan->chunk_columns;
    size_t q_begin = 0;
    while (q_begin < plan->n_columns && plan->columns[q_begin] < chunk->first_column)
        q_begin++;
    size_t q_end = q_begin;
    while (q_end < plan->n_columns && plan->columns[q_end] < column_end)
        q_end++;
    /* A run of consecutive file columns is one memcpy per row. */
    const int consecutive =
        q_end > q_begin && plan->columns[q_end - 1] - plan->columns[q_begin] == q_end - 1 - q_begin;
    for (size_t row = row_begin; row < row_stop; row++) {
        const unsigned char *source =
            raw + (row - chunk->first_row) * plan->chunk_columns * element;
        unsigned char *target = plan->destination +
                                ((row - plan->first) * plan->destination_columns) * element;
        if (consecutive) {
            memcpy(target + q_begin * element,
                   source + (plan->columns[q_begin] - chunk->first_column) * element,
                   (q_end - q_begin) * element);
        } else {
            for (size_t q = q_begin; q < q_end; q++)
                memcpy(target + q * element,
                       source + (plan->columns[q] - chunk->first_column) * element, element);
        }
    }
}

/* Messages name a chunk by the rows and columns it holds, clipped to the dataset's edge. */
static size_t clip(size_t end, size_t limit)
{
    return end < limit ? end : limit;
}

/* The pipeline the fast path handles: deflate alone, or shuffle (of this element size) then
   deflate. Anything else (fletcher32, szip, n-bit, scale-offset, a plugin) is HDF5's to apply. */
static int supported_pipeline(hid_t plist, size_t element_size, int *shuffled)
{
    int filters = H5Pget_nfilters(plist);
    if (filters != 1 && filters != 2)
        return 0;
    for (int i = 0; i < filters; i++) {
        unsigned flags = 0, values[8] = {0};
        size_t n_values = 8;
        H5Z_filter_t filter = H5Pget_filter2(plist, (unsigned)i, &flags, &n_values, values, 0,
                                             NULL, NULL);
        if (i == filters - 1 && filter != H5Z_FILTER_DEFLATE)
            return 0;
        if (i < filters - 1 &&
            (filter != H5Z_FILTER_SHUFFLE || n_values < 1 || values[0] != element_size))
            return 0;
    }
    *shuffled = filters == 2;
    return 1;
}

/* Fills next with the stored bytes of the chunks from the cursor on, as many as fit. HDF5 calls
   happen here only, and only ever on the main thread. 0 or a negative KSEG_E* code. */
static int read_batch(hid_t dataset, const chunk_plan *plan, chunk_cursor *cursor, batch *next,
                      const char *where, kseg_error *error)
{
    const size_t chunk_rows = plan->chunk_rows, chunk_columns = plan->chunk_columns;
    const size_t n = plan->rows, d = plan->dataset_columns;
    const uint64_t stored_limit = stored_limit_of(plan->chunk_bytes);
    char reason[256];
    size_t used = 0;
    next->count = 0;
    while (cursor->block < cursor->end_block && next->count < BATCH_CHUNKS) {
        const size_t first_row = cursor->block * chunk_rows;
        const size_t first_column = plan->columns[cursor->column_position] / chunk_columns *
                                    chunk_columns;
        hsize_t offset[2] = {(hsize_t)first_row, (hsize_t)first_column};
        hsize_t stored = 0;
        if (H5Dget_chunk_storage_size(dataset, offset, &stored) < 0) {
            kseg_io_h5_reason(reason, sizeof reason);
            return kseg_error_set(error, KSEG_EIO,
                                  "%s: cannot locate the chunk at rows [%zu, %zu): %s", where,
                                  first_row, clip(first_row + chunk_rows, n), reason);
        }
        /* A chunk whose stored size is beyond what deflate can make of it is damaged: say so
           before allocating for it. */
        if (stored == 0 || (uint64_t)stored > stored_limit)
            return kseg_error_set(error, KSEG_EFORMAT,
                                  "%s: chunk at rows [%zu, %zu), columns [%zu, %zu) is corrupt: "
                                  "%llu stored bytes for %zu bytes of data",
                                  where, first_row, clip(first_row + chunk_rows, n), first_column,
                                  clip(first_column + chunk_columns, d),
                                  (unsigned long long)stored, plan->chunk_bytes);
        if (used + (size_t)stored > next->capacity) {
            if (next->count > 0)
                break;
            unsigned char *grown = realloc(next->bytes, (size_t)stored);
            if (!grown)
                return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for a chunk", where);
            next->bytes = grown;
            next->capacity = (size_t)stored;
        }
        batch_chunk *chunk = &next->chunks[next->count];
        chunk->first_row = first_row;
        chunk->first_column = first_column;
        chunk->stored_offset = used;
        chunk->stored_bytes = (size_t)stored;
        chunk->filter_mask = 0;
        chunk->failed = 0;
        if (H5Dread_chunk(dataset, H5P_DEFAULT, offset, &chunk->filter_mask, next->bytes + used) <
            0) {
            kseg_io_h5_reason(reason, sizeof reason);
            return kseg_error_set(error, KSEG_EIO,
                                  "%s: cannot read the chunk at rows [%zu, %zu): %s", where,
                                  first_row, clip(first_row + chunk_rows, n), reason);
        }
        used += (size_t)stored;
        next->count++;
        /* Next: the next column block holding a selected column, else the next row block from
           the first selected column on. */
        while (cursor->column_position < plan->n_columns &&
               plan->columns[cursor->column_position] < first_column + chunk_columns)
            cursor->column_position++;
        if (cursor->column_position == plan->n_columns) {
            cursor->column_position = 0;
            cursor->block++;
        }
    }
    return 0;
}

int kseg_io_h5_read_deflated(hid_t dataset, hid_t memory_type, const char *where, size_t first,
                             size_t count, const size_t *columns, size_t n_columns,
                             void *destination, size_t destination_columns, kseg_error *error)
{
    int status = 0;
    hid_t plist = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    batch batches[2] = {{NULL, 0, NULL, 0}, {NULL, 0, NULL, 0}};
    unsigned char *scratch = NULL;
    z_stream *streams = NULL;
    int threads = omp_get_max_threads(), streams_ready = 0;

    /* Qualify: chunked, 2-D or 1-D, deflate (after shuffle), the file type equal to the memory
       type (so no byte swapping or conversion is needed), every chunk written. */
    plist = H5Dget_create_plist(dataset);
    type = H5Dget_type(dataset);
    space = H5Dget_space(dataset);
    if (plist < 0 || type < 0 || space < 0 || H5Pget_layout(plist) != H5D_CHUNKED ||
        H5Tequal(type, memory_type) <= 0)
        goto done;
    hsize_t dims[2] = {0, 1}, chunk_dims[2] = {0, 1};
    int rank = H5Sget_simple_extent_ndims(space);
    if ((rank != 1 && rank != 2) || H5Sget_simple_extent_dims(space, dims, NULL) != rank ||
        H5Pget_chunk(plist, rank, chunk_dims) != rank)
        goto done;
    /* HDF5 can be told to store partial edge chunks unfiltered without marking them in the
       chunk's filter mask; only HDF5 knows which those are. */
    unsigned chunk_options = 0;
    if (H5Pget_chunk_opts(plist, &chunk_options) < 0 ||
        (chunk_options & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS))
        goto done;
    const size_t element = H5Tget_size(type);
    int shuffled = 0;
    if (!supported_pipeline(plist, element, &shuffled))
        goto done;
    const size_t chunk_rows = (size_t)chunk_dims[0], chunk_columns = (size_t)chunk_dims[1];
    const size_t d = (size_t)dims[1];
    if (chunk_rows == 0 || chunk_columns == 0 ||
        chunk_rows > MAX_CHUNK_BYTES / element / chunk_columns)
        goto done;
    const size_t chunk_bytes = chunk_rows * chunk_columns * element;
    const size_t row_blocks = ((size_t)dims[0] + chunk_rows - 1) / chunk_rows;
    const size_t column_blocks = (d + chunk_columns - 1) / chunk_columns;
    /* A chunk never written reads as the fill value, which only HDF5 knows how to produce. */
    hsize_t allocated = 0;
    if (H5Dget_num_chunks(dataset, space, &allocated) < 0 ||
        (uint64_t)allocated != kseg_memory_multiply(row_blocks, column_blocks))
        goto done;

    /* A small dataset needs less than two full batch buffers. */
    const size_t per_thread = (shuffled ? 2 : 1) * chunk_bytes;
    const uint64_t touched = kseg_memory_multiply(
        (uint64_t)((first + count - 1) / chunk_rows - first / chunk_rows + 1), column_blocks);
    const uint64_t stored_bound =
        kseg_memory_multiply(touched, stored_limit_of(chunk_bytes));
    const size_t batch_capacity = stored_bound < BATCH_BYTES ? (size_t)stored_bound : BATCH_BYTES;
    /* Buffers that do not fit leave the read to HDF5, which needs about one chunk, rather than
       failing a load that H5Dread would finish. */
    if (kseg_memory_add(kseg_memory_multiply(2, batch_capacity),
                        kseg_memory_multiply((uint64_t)threads, per_thread)) >
        kseg_memory_available())
        goto done;
    /* From here on the fast path is taken: failures are errors, not fallbacks. */
    for (int b = 0; b < 2; b++) {
        batches[b].bytes = malloc(batch_capacity);
        batches[b].capacity = batch_capacity;
        batches[b].chunks = malloc(BATCH_CHUNKS * sizeof *batches[b].chunks);
    }
    scratch = malloc((size_t)threads * per_thread);
    streams = calloc((size_t)threads, sizeof *streams);
    if (!batches[0].bytes || !batches[0].chunks || !batches[1].bytes || !batches[1].chunks ||
        !scratch || !streams) {
        status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for decompression buffers",
                                where);
        goto done;
    }
    for (; streams_ready < threads; streams_ready++)
        if (inflateInit(&streams[streams_ready]) != Z_OK) {
            status = kseg_error_set(error, KSEG_ENOMEM, "%s: zlib cannot start", where);
            goto done;
        }

    const chunk_plan plan = {chunk_rows, chunk_columns, element,          chunk_bytes,
                             shuffled,   d,             first,            count,
                             columns,    n_columns,     destination,      destination_columns,
                             (size_t)dims[0]};
    /* The chunks touched: the row blocks of [first, first + count), and the column blocks that
       hold a selected column, in file order. */
    chunk_cursor cursor = {first / chunk_rows, (first + count - 1) / chunk_rows + 1, 0};
    status = read_batch(dataset, &plan, &cursor, &batches[0], where, error);
    for (int current = 0; status == 0 && batches[current].count > 0; current = 1 - current) {
        batch *now = &batches[current], *next = &batches[1 - current];
        next->count = 0;
        int read_status = 0;
        /* The main thread reads the next batch (so HDF5 runs on one thread only) while the
           others inflate this one; then it joins them. Every chunk goes to its own part of the
           destination, so the result does not depend on the thread count or the schedule. */
        #pragma omp parallel num_threads(threads)
        {
            if (omp_get_thread_num() == 0 && cursor.block < cursor.end_block)
                read_status = read_batch(dataset, &plan, &cursor, next, where, error);
            #pragma omp for schedule(dynamic, 1)
            for (size_t i = 0; i < now->count; i++) {
                const int thread = omp_get_thread_num();
                unsigned char *own = scratch + (size_t)thread * per_thread;
                decode_chunk(&plan, now->bytes, &now->chunks[i], &streams[thread], own,
                             shuffled ? own + chunk_bytes : NULL);
            }
        }
        /* This batch's damage comes before any failure reading the next one. */
        for (size_t i = 0; i < now->count; i++) {
            const batch_chunk *chunk = &now->chunks[i];
            if (chunk->failed) {
                status = kseg_error_set(error, KSEG_EFORMAT,
                                        "%s: chunk at rows [%zu, %zu), columns [%zu, %zu) is "
                                        "corrupt: %s (expected a deflate stream inflating to "
                                        "%zu bytes)",
                                        where, chunk->first_row,
                                        clip(chunk->first_row + chunk_rows, plan.rows),
                                        chunk->first_column,
                                        clip(chunk->first_column + chunk_columns, d),
                                        chunk->reason, chunk_bytes);
                break;
            }
        }
        if (status == 0)
            status = read_status;
    }
    if (status == 0)
        status = 1;

done:
    for (int t = 0; t < streams_ready; t++)
        inflateEnd(&streams[t]);
    free(streams);
    free(scratch);
    for (int b = 0; b < 2; b++) {
        free(batches[b].bytes);
        free(batches[b].chunks);
    }
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (plist >= 0)
        H5Pclose(plist);
    return status;
}
