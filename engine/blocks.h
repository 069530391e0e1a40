/* The engine's view of the rows: fixed-size blocks of global row indices, processed in parallel
 * by OpenMP and reduced deterministically (canonical tree for vectors, block order for scalars)
 * through the communicator. Every cross-row reduction of the engine goes through here. */
#ifndef KSEG_ENGINE_BLOCKS_H
#define KSEG_ENGINE_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "kseg/comm.h"
#include "kseg/error.h"
#include "reduce.h"

/* Rows per block. Fixed (never derived from threads or ranks) so that the reduction tree, and so
 * every result bit, is the same however the rows are split. Ranks split rows at multiples of it. */
#define KSEG_BLOCK_ROWS ((size_t)8192)

typedef struct kseg_blocks {
    const kseg_comm *comm;
    size_t n_local;        /* rows on this rank */
    size_t first_block;    /* global index of this rank's first block */
    size_t n_blocks_local;
    size_t n_blocks_global;
    int n_threads;
} kseg_blocks;

/* Sets up the block view; fails if the rank's row offset is not a multiple of KSEG_BLOCK_ROWS. */
int kseg_blocks_init(kseg_blocks *blocks, const kseg_comm *comm, size_t n_local, int n_threads,
                     kseg_error *error);

/* Local row range of local block b. */
static inline size_t kseg_block_begin(const kseg_blocks *blocks, size_t b)
{
    (void)blocks;
    return b * KSEG_BLOCK_ROWS;
}
static inline size_t kseg_block_rows(const kseg_blocks *blocks, size_t b)
{
    size_t begin = b * KSEG_BLOCK_ROWS;
    size_t end = begin + KSEG_BLOCK_ROWS;
    return (end > blocks->n_local ? blocks->n_local : end) - begin;
}

/* Fills payload[width] (zeroed on entry) with the contribution of local block `block`. thread is
 * the OpenMP thread number, for per-thread scratch. */
typedef void (*kseg_block_fn)(void *context, size_t block, double *payload, int thread);

/* A reusable reducer for payloads of up to max_width doubles: per-thread stacks, and the buffer
 * of serialized nodes that travels up the ranks' binomial tree (comm->ops->reduce_ordered). */
typedef struct kseg_vector_reducer {
    size_t max_width;
    int n_threads;
    kseg_tree_stack *stacks; /* [n_threads] */
    void *send;              /* this rank's merged nodes, then (on rank 0) everyone's */
    size_t send_capacity;
    double *scratch;
    kseg_tree_node *nodes;
    size_t nodes_capacity;
} kseg_vector_reducer;

int kseg_vector_reducer_init(kseg_vector_reducer *reducer, const kseg_blocks *blocks,
                             size_t max_width, kseg_error *error);
void kseg_vector_reducer_destroy(kseg_vector_reducer *reducer);

/* Runs fn on every local block in parallel and writes the canonical-tree sum over all blocks of
 * all ranks into out[width] (identical on every rank). */
int kseg_reduce_vector(kseg_vector_reducer *reducer, const kseg_blocks *blocks, size_t width,
                       kseg_block_fn fn, void *context, double *out, kseg_error *error);

/* Gathers every rank's per-block scalars: local[n_blocks_local * stride] -> global
 * [n_blocks_global * stride] in global block order (identical on every rank). */
int kseg_gather_block_scalars(const kseg_blocks *blocks, const double *local, size_t stride,
                              double *global, kseg_error *error);

/* Sums count int64 values across ranks (exact, so order does not matter). */
int kseg_allreduce_i64(const kseg_blocks *blocks, int64_t *values, size_t count,
                       kseg_error *error);

#endif
