/* The MPI communicator (built only with KSEG_WITH_MPI): the collectives of kseg_comm_ops on
 * an MPI communicator. Only integers are reduced by MPI; floating-point partial sums travel as
 * bytes and are combined by the engine in a fixed order, so results do not depend on MPI. */
#ifdef KSEG_WITH_MPI

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/comm.h"
#include "kseg/error.h"

/* MPI counts are int. Byte counts beyond INT_MAX are sent as whole units of UNIT_BYTES (a
 * contiguous datatype) followed by a remainder of single bytes, so that any size_t fits. */
enum { UNIT_BYTES = 1 << 20 };

_Static_assert(sizeof(MPI_Comm) <= sizeof(void *), "an MPI_Comm must fit in kseg_comm.impl");

static MPI_Comm handle_of(const kseg_comm *comm)
{
    MPI_Comm handle;
    memcpy(&handle, &comm->impl, sizeof handle);
    return handle;
}

static int mpi_status(int code)
{
    return code == MPI_SUCCESS ? 0 : KSEG_EIO;
}

/* Integer reductions go in slices of at most INT_MAX elements. */
static int reduce_i64(const kseg_comm *comm, int64_t *values, size_t count, MPI_Op op)
{
    while (count > 0) {
        int slice = count > (size_t)INT_MAX ? INT_MAX : (int)count;
        int status = mpi_status(
            MPI_Allreduce(MPI_IN_PLACE, values, slice, MPI_INT64_T, op, handle_of(comm)));
        if (status)
            return status;
        values += slice;
        count -= (size_t)slice;
    }
    return 0;
}

static int mpi_allreduce_sum_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    return reduce_i64(comm, values, count, MPI_SUM);
}

static int mpi_allreduce_max_i64(const kseg_comm *comm, int64_t *values, size_t count)
{
    return reduce_i64(comm, values, count, MPI_MAX);
}

static int mpi_broadcast(const kseg_comm *comm, void *buffer, size_t bytes, int root)
{
    unsigned char *cursor = buffer;
    while (bytes > 0) {
        int slice = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        int status = mpi_status(MPI_Bcast(cursor, slice, MPI_BYTE, root, handle_of(comm)));
        if (status)
            return status;
        cursor += slice;
        bytes -= (size_t)slice;
    }
    return 0;
}

/* Every contribution is at most INT_MAX bytes and the total fits an int displacement: one
 * MPI_Allgatherv. Otherwise each rank's contribution is broadcast from that rank, UNIT_BYTES
 * units plus a remainder, which has no int limits at all. */
static int mpi_allgatherv(const kseg_comm *comm, const void *send, size_t send_bytes, void *recv,
                          size_t recv_capacity, size_t *recv_lengths)
{
    MPI_Comm handle = handle_of(comm);
    int size = comm->size, status = 0;
    uint64_t mine = send_bytes;
    uint64_t *all = malloc((size_t)size * sizeof *all);
    int *counts = malloc((size_t)size * sizeof *counts);
    int *displacements = malloc((size_t)size * sizeof *displacements);
    if (!all || !counts || !displacements) {
        status = KSEG_ENOMEM;
        goto done;
    }
    if ((status = mpi_status(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, handle))))
        goto done;
    uint64_t total = 0;
    int fits_int = 1;
    for (int r = 0; r < size; r++) {
        recv_lengths[r] = (size_t)all[r];
        if (all[r] > (uint64_t)INT_MAX || total > (uint64_t)INT_MAX)
            fits_int = 0;
        total += all[r];
    }
    /* Every rank sees the same lengths, so every rank takes the same branch below. */
    if (total > recv_capacity) {
        status = KSEG_EINTERNAL;
        goto done;
    }
    if (fits_int && total <= (uint64_t)INT_MAX) {
        uint64_t offset = 0;
        for (int r = 0; r < size; r++) {
            counts[r] = (int)all[r];
            displacements[r] = (int)offset;
            offset += all[r];
        }
        /* The own contribution is copied first: MPI_IN_PLACE avoids aliasing send and recv. */
        unsigned char *own = (unsigned char *)recv + displacements[comm->rank];
        if (send_bytes && own != (const unsigned char *)send)
            memmove(own, send, send_bytes);
        status = mpi_status(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, recv, counts,
                                           displacements, MPI_BYTE, handle));
        goto done;
    }
    size_t offset = 0;
    for (int r = 0; r < size && !status; r++) {
        unsigned char *slot = (unsigned char *)recv + offset;
        if (r == comm->rank && send_bytes && slot != (const unsigned char *)send)
            memmove(slot, send, send_bytes);
        status = mpi_broadcast(comm, slot, (size_t)all[r], r);
        offset += (size_t)all[r];
    }
done:
    free(all);
    free(counts);
    free(displacements);
    return status;
}

/* Sends bytes to destination and receives from source in UNIT_BYTES units plus a remainder,
 * both sides knowing the lengths. */
static int exchange_large(MPI_Comm handle, const unsigned char *send, size_t send_bytes,
                          int destination, unsigned char *recv, size_t recv_bytes, int source)
{
    MPI_Datatype unit;
    if (MPI_Type_contiguous(UNIT_BYTES, MPI_BYTE, &unit) != MPI_SUCCESS)
        return KSEG_EIO;
    if (MPI_Type_commit(&unit) != MPI_SUCCESS) {
        MPI_Type_free(&unit);
        return KSEG_EIO;
    }
    int status = 0;
    size_t send_units = send_bytes / UNIT_BYTES, recv_units = recv_bytes / UNIT_BYTES;
    /* At most INT_MAX units (2^51 bytes) per message: far beyond any memory. */
    if (send_units > (size_t)INT_MAX || recv_units > (size_t)INT_MAX)
        status = KSEG_EINTERNAL;
    if (!status)
        status = mpi_status(MPI_Sendrecv(send, (int)send_units, unit, destination, 1, recv,
                                         (int)recv_units, unit, source, 1, handle,
                                         MPI_STATUS_IGNORE));
    if (!status)
        status = mpi_status(MPI_Sendrecv(send + send_units * UNIT_BYTES,
                                         (int)(send_bytes % UNIT_BYTES), MPI_BYTE, destination, 2,
                                         recv + recv_units * UNIT_BYTES,
                                         (int)(recv_bytes % UNIT_BYTES), MPI_BYTE, source, 2,
                                         handle, MPI_STATUS_IGNORE));
    MPI_Type_free(&unit);
    return status;
}

static int mpi_alltoallv(const kseg_comm *comm, const void *send, const size_t *send_bytes,
                         void **recv, size_t *recv_bytes)
{
    MPI_Comm handle = handle_of(comm);
    int size = comm->size, rank = comm->rank, status = 0;
    *recv = NULL;
    uint64_t *outgoing = calloc((size_t)size, sizeof *outgoing);
    uint64_t *incoming = calloc((size_t)size, sizeof *incoming);
    size_t *send_offsets = malloc((size_t)size * sizeof *send_offsets);
    size_t *recv_offsets = malloc((size_t)size * sizeof *recv_offsets);
    unsigned char *buffer = NULL;
    if (!outgoing || !incoming || !send_offsets || !recv_offsets) {
        status = KSEG_ENOMEM;
        goto done;
    }
    size_t send_total = 0, recv_total = 0;
    for (int r = 0; r < size; r++) {
        outgoing[r] = send_bytes[r];
        send_offsets[r] = send_total;
        send_total += send_bytes[r];
    }
    if ((status = mpi_status(
             MPI_Alltoall(outgoing, 1, MPI_UINT64_T, incoming, 1, MPI_UINT64_T, handle))))
        goto done;
    for (int r = 0; r < size; r++) {
        recv_bytes[r] = (size_t)incoming[r];
        recv_offsets[r] = recv_total;
        recv_total += recv_bytes[r];
    }
    if (recv_total && !(buffer = malloc(recv_total)))
        status = KSEG_ENOMEM;
    /* A rank out of memory must not leave the others waiting in the exchange: all agree first. */
    int64_t failed = status != 0;
    int agreed = reduce_i64(comm, &failed, 1, MPI_MAX);
    if (agreed || failed) {
        status = status ? status : (agreed ? agreed : KSEG_ENOMEM);
        goto done;
    }
    /* Round r: send to rank + r, receive from rank - r. Pairwise rounds have no int limit on the
       total and keep at most one message of each direction in flight. */
    for (int round = 0; round < size && !status; round++) {
        int destination = (rank + round) % size, source = (rank - round + size) % size;
        status = exchange_large(handle, (const unsigned char *)send + send_offsets[destination],
                                send_bytes[destination], destination,
                                buffer + recv_offsets[source], recv_bytes[source], source);
    }
done:
    if (status)
        free(buffer);
    else
        *recv = buffer;
    free(outgoing);
    free(incoming);
    free(send_offsets);
    free(recv_offsets);
    return status;
}

/* A byte string of any length from one rank to another: its length first, then slices of at
 * most INT_MAX bytes. */
static int send_string(MPI_Comm handle, const void *data, size_t bytes, int destination)
{
    uint64_t length = bytes;
    if (MPI_Send(&length, 1, MPI_UINT64_T, destination, 0, handle) != MPI_SUCCESS)
        return KSEG_EIO;
    const unsigned char *cursor = data;
    while (bytes > 0) {
        int slice = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        if (MPI_Send(cursor, slice, MPI_BYTE, destination, 1, handle) != MPI_SUCCESS)
            return KSEG_EIO;
        cursor += slice;
        bytes -= (size_t)slice;
    }
    return 0;
}

/* Receives what send_string sent into a malloc'd buffer. Without memory for it, the slices are
 * still received (into a small buffer, and dropped) so that the sender is not left waiting. */
static int receive_string(MPI_Comm handle, void **data, size_t *bytes, int source)
{
    uint64_t length = 0;
    *data = NULL;
    *bytes = 0;
    if (MPI_Recv(&length, 1, MPI_UINT64_T, source, 0, handle, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return KSEG_EIO;
    unsigned char *buffer = length ? malloc((size_t)length) : NULL;
    unsigned char drain[4096];
    int status = length && !buffer ? KSEG_ENOMEM : 0;
    for (uint64_t done = 0; done < length;) {
        uint64_t left = length - done;
        int slice = buffer ? (left > (uint64_t)INT_MAX ? INT_MAX : (int)left)
                           : (left > sizeof drain ? (int)sizeof drain : (int)left);
        if (MPI_Recv(buffer ? buffer + done : drain, slice, MPI_BYTE, source, 1, handle,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            free(buffer);
            return KSEG_EIO;
        }
        done += (uint64_t)slice;
    }
    if (status)
        return status;
    *data = buffer;
    *bytes = (size_t)length;
    return 0;
}

/* The binomial tree of kseg_comm_ops.reduce_ordered: in round `step`, a rank whose index is an odd
 * multiple of step sends its string to the rank step below and leaves; a rank at a multiple of
 * 2 step receives from the rank step above (if there is one) and merges. A rank that failed still
 * sends (an empty string), so nobody waits forever; rank 0 then sees the gap. */
static int mpi_reduce_ordered(const kseg_comm *comm, void **buffer, size_t *bytes, size_t *capacity,
                              kseg_comm_merge_fn merge, void *merge_context)
{
    MPI_Comm handle = handle_of(comm);
    int status = 0;
    for (int step = 1; step < comm->size; step *= 2) {
        if (comm->rank % (2 * step) == step) {
            int sent = send_string(handle, status ? NULL : *buffer, status ? 0 : *bytes,
                                   comm->rank - step);
            return status ? status : sent;
        }
        if (comm->rank + step < comm->size) {
            void *received = NULL;
            size_t length = 0;
            int got = receive_string(handle, &received, &length, comm->rank + step);
            if (!status)
                status = got;
            if (!status)
                status = merge(merge_context, buffer, bytes, capacity, received, length);
            free(received);
        }
    }
    return status;
}

static const kseg_comm_ops mpi_ops = {
    .allreduce_sum_i64 = mpi_allreduce_sum_i64,
    .allgatherv = mpi_allgatherv,
    .broadcast = mpi_broadcast,
    .allreduce_max_i64 = mpi_allreduce_max_i64,
    .alltoallv = mpi_alltoallv,
    .reduce_ordered = mpi_reduce_ordered,
};

int kseg_comm_mpi(kseg_comm *comm, MPI_Comm mpi_comm, size_t n_global, kseg_error *error)
{
    int rank, size;
    memset(comm, 0, sizeof *comm);
    if (MPI_Comm_rank(mpi_comm, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(mpi_comm, &size) != MPI_SUCCESS)
        return kseg_error_set(error, KSEG_EIO, "MPI: cannot query the communicator's rank and size");
    size_t row_count;
    comm->rank = rank;
    comm->size = size;
    comm->n_global = n_global;
    kseg_comm_split_rows(n_global, size, rank, &comm->row_offset, &row_count);
    comm->ops = &mpi_ops;
    memcpy(&comm->impl, &mpi_comm, sizeof mpi_comm);
    return 0;
}

MPI_Comm kseg_comm_mpi_handle(const kseg_comm *comm)
{
    if (!comm || comm->ops != &mpi_ops)
        return MPI_COMM_NULL;
    return handle_of(comm);
}

#else
/* ISO C forbids an empty translation unit: the serial build compiles this declaration only. */
typedef int kseg_comm_mpi_is_not_built;
#endif
