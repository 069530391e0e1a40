/* The communicator: every reduction across rows goes through it, so the serial build and the MPI
 * build run the same algorithm code. Floating-point sums are never reduced by the transport;
 * the engine gathers partial results and combines them in a fixed order (see kernels/reduce.h). */
#ifndef KSEG_COMM_H
#define KSEG_COMM_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef KSEG_WITH_MPI
#include <mpi.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kseg_comm kseg_comm;

/* Merges the byte string `right` (the contribution of higher ranks) onto the end of `left` (that
 * of lower ranks), growing *left with realloc as needed (*left_capacity bytes allocated). Returns
 * 0 or a negative KSEG_E* code. */
typedef int (*kseg_comm_merge_fn)(void *context, void **left, size_t *left_bytes,
                                  size_t *left_capacity, const void *right, size_t right_bytes);

typedef struct kseg_comm_ops {
    /* Sums count int64 values element-wise across ranks, in place. */
    int (*allreduce_sum_i64)(const kseg_comm *comm, int64_t *values, size_t count);
    /* Every rank contributes send_bytes bytes; afterwards every rank holds all contributions
       concatenated in rank order in recv (at most recv_capacity bytes) and each rank's length
       in recv_lengths[size]. */
    int (*allgatherv)(const kseg_comm *comm, const void *send, size_t send_bytes, void *recv,
                      size_t recv_capacity, size_t *recv_lengths);
    /* Copies bytes from root to every rank. */
    int (*broadcast)(const kseg_comm *comm, void *buffer, size_t bytes, int root);
    /* Element-wise maximum of count int64 values across ranks, in place. */
    int (*allreduce_max_i64)(const kseg_comm *comm, int64_t *values, size_t count);
    /* Personalized exchange: send holds this rank's messages packed by destination rank in rank
       order, send_bytes[size] their lengths. On return *recv is a malloc'd buffer (the caller
       frees it; NULL when nothing arrived) holding the messages received, packed by source rank
       in rank order, and recv_bytes[size] their lengths. Byte counts may exceed INT_MAX. */
    int (*alltoallv)(const kseg_comm *comm, const void *send, const size_t *send_bytes,
                     void **recv, size_t *recv_bytes);
    /* Ordered reduction to rank 0 along a binomial tree over ranks: in round s = 1, 2, 4, ...,
       rank r with r % 2s == 0 receives the string of rank r + s (which then holds the merged
       contributions of ranks r + s .. r + 2s - 1) and merges it onto its own with merge, so
       contributions are only ever merged in rank order, each round one message per pair.
       *buffer (malloc'd, *capacity bytes) holds this rank's *bytes on entry; on return rank 0
       holds the merge of all ranks and the other ranks' buffers are unspecified. Callers whose
       merge gives the same result for any bracketing get a result independent of the rank
       count. */
    int (*reduce_ordered)(const kseg_comm *comm, void **buffer, size_t *bytes, size_t *capacity,
                          kseg_comm_merge_fn merge, void *merge_context);
} kseg_comm_ops;

struct kseg_comm {
    int rank;
    int size;
    /* This rank's rows are global rows [row_offset, row_offset + local rows); the global count is
       n_global. Splits are contiguous and in rank order. */
    size_t row_offset;
    size_t n_global;
    const kseg_comm_ops *ops;
    void *impl; /* transport state (an MPI communicator, ...) */
};

/* A single-process communicator for n rows: rank 0 of 1. */
KSEG_API void kseg_comm_serial(kseg_comm *comm, size_t n_rows);

/* The rows of `rank` among `size` ranks for n_global rows: contiguous, in rank order, split at
 * multiples of the engine's row block (8192 rows, engine/blocks.h) so that the block reductions
 * stay aligned, and balanced to within one block. A rank may get no rows (n_global < size
 * blocks); it still joins every collective call. */
KSEG_API void kseg_comm_split_rows(size_t n_global, int size, int rank, size_t *row_offset,
                                   size_t *row_count);

#ifdef KSEG_WITH_MPI
typedef struct kseg_error kseg_error;

/* A communicator over the ranks of mpi_comm (the MPI build only) for n_global rows: fills rank,
 * size and this rank's row offset (kseg_comm_split_rows). comm holds the handle itself (no
 * allocation, nothing to free); mpi_comm must stay valid while comm is used.
 * Every operation is collective over mpi_comm. Returns 0 or KSEG_EIO when MPI fails. */
KSEG_API int kseg_comm_mpi(kseg_comm *comm, MPI_Comm mpi_comm, size_t n_global,
                           kseg_error *error);

/* The MPI communicator behind comm, or MPI_COMM_NULL when comm is not an MPI communicator
 * (NULL, serial, simulated ranks). The readers and the writer use it to open files with MPI-IO. */
KSEG_API MPI_Comm kseg_comm_mpi_handle(const kseg_comm *comm);
#endif

#ifdef __cplusplus
}
#endif
#endif
