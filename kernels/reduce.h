/* Deterministic reductions over fixed-size row blocks. A sum over blocks is defined as the
 * canonical pairwise (dyadic) tree over global block indices: node [s, s + 2^L) = left half +
 * right half, and a half beyond the last block is absent. Any split of the blocks among threads
 * or ranks yields the same bits, because each worker reduces only complete aligned sub-trees and
 * the remaining nodes are combined in the same canonical shape. Memory stays O(log blocks) nodes
 * per worker instead of one partial per block. */
#ifndef KSEG_KERNELS_REDUCE_H
#define KSEG_KERNELS_REDUCE_H

#include <stddef.h>
#include <stdint.h>

/* A worker's stack of reduced nodes. Blocks must be pushed in increasing block index (not
 * necessarily contiguous). Payloads are `width` doubles. */
typedef struct kseg_tree_stack {
    size_t width;
    size_t capacity;  /* nodes */
    size_t count;
    uint64_t *starts; /* first block index of each node */
    uint32_t *levels; /* node covers 2^level blocks */
    double *payloads; /* capacity x width */
} kseg_tree_stack;

/* Node capacity a worker needs for a contiguous increasing range of blocks below n_blocks (what
 * OpenMP's static schedule gives each thread). Interleaved ranges still reduce correctly but may
 * need up to one node per block. */
size_t kseg_tree_stack_capacity(uint64_t n_blocks);

/* Allocates the stack; returns 0 or -1 when out of memory. */
int kseg_tree_stack_init(kseg_tree_stack *stack, size_t width, size_t capacity);
void kseg_tree_stack_destroy(kseg_tree_stack *stack);
void kseg_tree_stack_reset(kseg_tree_stack *stack);

/* Returns a zeroed payload slot for block `block`, to be filled by the caller and then committed
 * by kseg_tree_stack_push_end (which merges complete sibling pairs); NULL when the stack is full
 * (blocks were not pushed as a contiguous range and the capacity was sized for one). */
double *kseg_tree_stack_push_begin(kseg_tree_stack *stack, uint64_t block);
void kseg_tree_stack_push_end(kseg_tree_stack *stack);

/* A node in a combined list (from several stacks, possibly from several ranks). */
typedef struct kseg_tree_node {
    uint64_t start;
    uint32_t level;
    const double *payload;
} kseg_tree_node;

/* Combines nodes that partition blocks [0, n_blocks) (any order) into out[width] by the canonical
 * tree. scratch needs (ceil(log2(n_blocks)) + 2) * width doubles. Returns 0, or -1 if the nodes do
 * not partition the blocks exactly (a caller bug). With no blocks, out is zeroed. */
int kseg_tree_combine(kseg_tree_node *nodes, size_t count, uint64_t n_blocks, size_t width,
                      double *out, double *scratch);

/* Scratch doubles needed by kseg_tree_combine. */
size_t kseg_tree_combine_scratch(uint64_t n_blocks, size_t width);

#endif
