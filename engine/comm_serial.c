/* The single-process communicator, where every collective is a local copy, and the row split
 * shared by every communicator. The MPI build provides another kseg_comm with the same operations,
 * and the algorithms cannot tell them apart. */
#include <stdlib.h>
#include <string.h>

#include "kseg/comm.h"
#include "kseg/error.h"
#include "blocks.h"

static int serial_allreduce_sum_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    (void)comm;
    (void)values;
    (void)count;
    return 0;
}

static int serial_allgatherv(const kseg_comm *comm, const void *send, size_t send_bytes,
                             void *recv, size_t recv_capacity, size_t *recv_lengths)
{
    (void)comm;
    if (send_bytes > recv_capacity)
        return KSEG_EINTERNAL;
    if (send_bytes)
        memmove(recv, send, send_bytes);
    recv_lengths[0] = send_bytes;
    return 0;
}

static int serial_broadcast(const kseg_comm *comm, void *buffer, size_t bytes, int root)
{
    (void)comm;
    (void)buffer;
    (void)bytes;
    (void)root;
    return 0;
}

static int serial_allreduce_max_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    (void)comm;
    (void)values;
    (void)count;
    return 0;
}

static int serial_alltoallv(const kseg_comm *comm, const void *send, const size_t *send_bytes,
                            void **recv, size_t *recv_bytes)
{
    (void)comm;
    *recv = NULL;
    recv_bytes[0] = send_bytes[0];
    if (!send_bytes[0])
        return 0;
    if (!(*recv = malloc(send_bytes[0])))
        return KSEG_ENOMEM;
    memcpy(*recv, send, send_bytes[0]);
    return 0;
}

static int serial_reduce_ordered(const kseg_comm *comm, void **buffer, size_t *bytes,
                                 size_t *capacity, kseg_comm_merge_fn merge, void *merge_context)
{
    (void)comm;
    (void)buffer;
    (void)bytes;
    (void)capacity;
    (void)merge;
    (void)merge_context;
    return 0;
}

static const kseg_comm_ops serial_ops = {
    .allreduce_sum_i64 = serial_allreduce_sum_i64,
    .allgatherv = serial_allgatherv,
    .broadcast = serial_broadcast,
    .allreduce_max_i64 = serial_allreduce_max_i64,
    .alltoallv = serial_alltoallv,
    .reduce_ordered = serial_reduce_ordered,
};

void kseg_comm_serial(kseg_comm *comm, size_t n_rows)
{
    memset(comm, 0, sizeof *comm);
    comm->rank = 0;
    comm->size = 1;
    comm->row_offset = 0;
    comm->n_global = n_rows;
    comm->ops = &serial_ops;
}

void kseg_comm_split_rows(size_t n_global, int size, int rank, size_t *row_offset,
                          size_t *row_count)
{
    /* Whole blocks are dealt out as evenly as possible; only the last block may be partial. */
    size_t n_blocks = (n_global + KSEG_BLOCK_ROWS - 1) / KSEG_BLOCK_ROWS;
    size_t ranks = size > 0 ? (size_t)size : 1;
    size_t first = n_blocks * (size_t)rank / ranks;
    size_t last = n_blocks * ((size_t)rank + 1) / ranks;
    size_t begin = first * KSEG_BLOCK_ROWS, end = last * KSEG_BLOCK_ROWS;
    if (begin > n_global)
        begin = n_global;
    if (end > n_global)
        end = n_global;
    *row_offset = begin;
    *row_count = end - begin;
}
