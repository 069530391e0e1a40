/* The single-process communicator: every collective is a local copy. The MPI build provides
 * another kseg_comm with the same operations, and the algorithms cannot tell them apart. */
#include <string.h>

#include "kseg/comm.h"
#include "kseg/error.h"

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

static const kseg_comm_ops serial_ops = {
    .allreduce_sum_i64 = serial_allreduce_sum_i64,
    .allgatherv = serial_allgatherv,
    .broadcast = serial_broadcast,
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
