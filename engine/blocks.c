/* Parallel block processing and the deterministic reductions across threads and ranks. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"

int kseg_blocks_init(kseg_blocks *blocks, const kseg_comm *comm, size_t n_local, int n_threads,
                     kseg_error *error)
{
    memset(blocks, 0, sizeof *blocks);
    if (comm->row_offset % KSEG_BLOCK_ROWS != 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "rank %d starts at row %zu, which is not a multiple of the block "
                              "size %zu (split rows at block boundaries)",
                              comm->rank, comm->row_offset, KSEG_BLOCK_ROWS);
    blocks->comm = comm;
    blocks->n_local = n_local;
    blocks->first_block = comm->row_offset / KSEG_BLOCK_ROWS;
    blocks->n_blocks_local = (n_local + KSEG_BLOCK_ROWS - 1) / KSEG_BLOCK_ROWS;
    blocks->n_blocks_global = (comm->n_global + KSEG_BLOCK_ROWS - 1) / KSEG_BLOCK_ROWS;
    blocks->n_threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (blocks->n_threads < 1)
        blocks->n_threads = 1;
    return 0;
}

int kseg_vector_reducer_init(kseg_vector_reducer *reducer, const kseg_blocks *blocks,
                             size_t max_width, kseg_error *error)
{
    memset(reducer, 0, sizeof *reducer);
    reducer->max_width = max_width;
    reducer->n_threads = blocks->n_threads;
    size_t capacity = kseg_tree_stack_capacity(blocks->n_blocks_global);
    reducer->stacks = calloc((size_t)reducer->n_threads, sizeof *reducer->stacks);
    reducer->scratch =
        malloc(kseg_tree_combine_scratch(blocks->n_blocks_global, max_width) * sizeof(double));
    if (!reducer->stacks || !reducer->scratch)
        goto out_of_memory;
    for (int t = 0; t < reducer->n_threads; t++)
        if (kseg_tree_stack_init(&reducer->stacks[t], max_width, capacity) != 0)
            goto out_of_memory;
    return 0;
out_of_memory:
    kseg_vector_reducer_destroy(reducer);
    return kseg_error_set(error, KSEG_ENOMEM,
                          "out of memory allocating reduction buffers (%d threads x %zu values)",
                          blocks->n_threads, max_width);
}

void kseg_vector_reducer_destroy(kseg_vector_reducer *reducer)
{
    if (reducer->stacks)
        for (int t = 0; t < reducer->n_threads; t++)
            kseg_tree_stack_destroy(&reducer->stacks[t]);
    free(reducer->stacks);
    free(reducer->send);
    free(reducer->scratch);
    free(reducer->nodes);
    memset(reducer, 0, sizeof *reducer);
}

/* Serialized node: start, level, then width payload doubles. */
static size_t node_bytes(size_t width)
{
    return 2 * sizeof(uint64_t) + width * sizeof(double);
}

static int ensure_capacity(void **buffer, size_t *capacity, size_t needed)
{
    if (needed <= *capacity)
        return 0;
    void *grown = realloc(*buffer, needed);
    if (!grown)
        return -1;
    *buffer = grown;
    *capacity = needed;
    return 0;
}

/* A list of serialized nodes in block order is kept "merged": after a node is appended at index
 * *count, every pair of adjacent nodes on top that are the left and right halves of one aligned
 * parent is replaced by that parent. The parent's value is left + right, as in the canonical
 * tree (kernels/reduce.h), so merging changes no bit of the final sum; it only keeps the list at
 * about 2 log2(blocks) nodes. */
static void append_merging(unsigned char *base, size_t *count, size_t stride, size_t width)
{
    (*count)++;
    while (*count >= 2) {
        unsigned char *top = base + (*count - 1) * stride, *below = top - stride;
        uint64_t top_header[2], below_header[2];
        memcpy(top_header, top, sizeof top_header);
        memcpy(below_header, below, sizeof below_header);
        uint64_t span = (uint64_t)1 << top_header[1];
        if (below_header[1] != top_header[1] || (below_header[0] & (2 * span - 1)) != 0 ||
            below_header[0] + span != top_header[0])
            break;
        /* Serialized payloads sit at 8-byte multiples from a malloc'd base. */
        double *left = (double *)(void *)(below + sizeof below_header);
        const double *right = (const double *)(const void *)(top + sizeof top_header);
        for (size_t j = 0; j < width; j++)
            left[j] += right[j];
        below_header[1]++;
        memcpy(below, below_header, sizeof below_header);
        (*count)--;
    }
}

/* Writes the threads' stack nodes into reducer->send in block order (thread t's static range
 * precedes thread t + 1's), merged as above: a rank sends about 2 log2(blocks) nodes whatever its
 * thread count. Returns the number of nodes written. */
static size_t serialize_merged_nodes(kseg_vector_reducer *reducer, size_t width, size_t stride)
{
    unsigned char *base = reducer->send;
    size_t count = 0;
    for (int t = 0; t < reducer->n_threads; t++) {
        const kseg_tree_stack *stack = &reducer->stacks[t];
        for (size_t i = 0; i < stack->count; i++) {
            uint64_t header[2] = {stack->starts[i], stack->levels[i]};
            unsigned char *slot = base + count * stride;
            memcpy(slot, header, sizeof header);
            memcpy(slot + sizeof header, stack->payloads + i * width, width * sizeof(double));
            append_merging(base, &count, stride, width);
        }
    }
    return count;
}

typedef struct node_list_shape {
    size_t width;
    size_t stride;
} node_list_shape;

/* The communicator's merge for reduce_ordered: the right list (higher ranks, so higher blocks)
 * is appended node by node, merging as it goes. Any bracketing of these merges yields the same
 * canonical nodes, so the result does not depend on the rank count. */
static int merge_node_lists(void *context, void **left, size_t *left_bytes, size_t *left_capacity,
                            const void *right, size_t right_bytes)
{
    const node_list_shape *shape = context;
    if (ensure_capacity(left, left_capacity, *left_bytes + right_bytes))
        return KSEG_ENOMEM;
    unsigned char *base = *left;
    size_t count = *left_bytes / shape->stride;
    for (size_t offset = 0; offset < right_bytes; offset += shape->stride) {
        memcpy(base + count * shape->stride, (const unsigned char *)right + offset, shape->stride);
        append_merging(base, &count, shape->stride, shape->width);
    }
    *left_bytes = count * shape->stride;
    return 0;
}

int kseg_reduce_vector(kseg_vector_reducer *reducer, const kseg_blocks *blocks, size_t width,
                       kseg_block_fn fn, void *context, double *out, kseg_error *error)
{
    if (width > reducer->max_width)
        return kseg_error_set(error, KSEG_EINTERNAL, "reduction width %zu exceeds %zu", width,
                              reducer->max_width);
    const kseg_comm *comm = blocks->comm;
    int n_threads = reducer->n_threads;
    size_t n_blocks = blocks->n_blocks_local;
    int overflow = 0;

    /* Every stack is emptied here, not by its thread: OpenMP may run the region on fewer threads
       than asked for (OMP_DYNAMIC, or a call from inside another parallel region), and a stack
       that no thread of this team touches would otherwise bring its nodes from an earlier call
       into the sum below. */
    for (int t = 0; t < n_threads; t++) {
        reducer->stacks[t].width = width;
        kseg_tree_stack_reset(&reducer->stacks[t]);
    }
#pragma omp parallel num_threads(n_threads) reduction(| : overflow)
    {
        int thread = omp_get_thread_num();
        kseg_tree_stack *stack = &reducer->stacks[thread];
        /* Static scheduling hands each thread increasing block indices, as the stack needs. */
#pragma omp for schedule(static)
        for (size_t b = 0; b < n_blocks; b++) {
            double *payload = kseg_tree_stack_push_begin(stack, blocks->first_block + b);
            if (!payload) {
                overflow = 1;
                continue;
            }
            fn(context, b, payload, thread);
            kseg_tree_stack_push_end(stack);
        }
    }

    /* From here on every rank takes part in every collective call, even after a local failure
       (it then contributes nothing), so that no rank waits forever; rank 0 finds the blocks
       uncovered and the broadcast status fails the reduction on every rank. */
    size_t stride = node_bytes(width);
    size_t stack_nodes = 0;
    for (int t = 0; t < n_threads; t++)
        stack_nodes += reducer->stacks[t].count;
    int local_status = overflow ? KSEG_EINTERNAL : 0;
    if (!local_status &&
        ensure_capacity(&reducer->send, &reducer->send_capacity, stack_nodes * stride + 1))
        local_status = KSEG_ENOMEM;
    size_t bytes = local_status ? 0 : serialize_merged_nodes(reducer, width, stride) * stride;

    /* The rank-ordered binomial tree: log2(ranks) messages of about 2 log2(blocks) nodes each,
       instead of every rank receiving every rank's nodes. */
    node_list_shape shape = {width, stride};
    int status = comm->ops->reduce_ordered(comm, &reducer->send, &bytes, &reducer->send_capacity,
                                           merge_node_lists, &shape);
    int64_t outcome[1] = {status ? status : local_status};
    if (comm->rank == 0 && !outcome[0]) {
        size_t total_nodes = bytes / stride;
        if (total_nodes > reducer->nodes_capacity) {
            kseg_tree_node *grown = realloc(reducer->nodes, total_nodes * sizeof *grown);
            if (grown) {
                reducer->nodes = grown;
                reducer->nodes_capacity = total_nodes;
            }
        }
        if (total_nodes > reducer->nodes_capacity) {
            outcome[0] = KSEG_ENOMEM;
        } else {
            /* Payloads are read in place; headers are copied out for alignment. */
            const unsigned char *in = reducer->send;
            for (size_t i = 0; i < total_nodes; i++) {
                uint64_t header[2];
                memcpy(header, in + i * stride, sizeof header);
                reducer->nodes[i].start = header[0];
                reducer->nodes[i].level = (uint32_t)header[1];
                reducer->nodes[i].payload =
                    (const double *)(const void *)(in + i * stride + sizeof header);
            }
            if (kseg_tree_combine(reducer->nodes, total_nodes, blocks->n_blocks_global, width, out,
                                  reducer->scratch) != 0)
                outcome[0] = KSEG_EINTERNAL;
        }
    }
    int transport = comm->ops->broadcast(comm, outcome, sizeof outcome, 0);
    if (!transport && !outcome[0])
        transport = comm->ops->broadcast(comm, out, width * sizeof *out, 0);
    if (transport)
        return kseg_error_set(error, transport, "communicator failed while reducing partial sums");
    if (outcome[0] == KSEG_ENOMEM)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory reducing partial sums");
    if (outcome[0])
        return kseg_error_set(error, (int)outcome[0],
                              "partial sums do not cover the %zu row blocks exactly (a rank's "
                              "reduction failed or its blocks were not split contiguously)",
                              blocks->n_blocks_global);
    return 0;
}

int kseg_gather_block_scalars(const kseg_blocks *blocks, const double *local, size_t stride,
                              double *global, kseg_error *error)
{
    const kseg_comm *comm = blocks->comm;
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    if (!lengths)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory gathering block values");
    /* Ranks hold contiguous block ranges in rank order, so rank-order concatenation is global
       block order. */
    int status = comm->ops->allgatherv(comm, local, blocks->n_blocks_local * stride * sizeof(double),
                                       global, blocks->n_blocks_global * stride * sizeof(double),
                                       lengths);
    free(lengths);
    if (status)
        return kseg_error_set(error, status, "communicator failed while gathering block values");
    return 0;
}

int kseg_allreduce_i64(const kseg_blocks *blocks, int64_t *values, size_t count,
                       kseg_error *error)
{
    int status = blocks->comm->ops->allreduce_sum_i64(blocks->comm, values, count);
    if (status)
        return kseg_error_set(error, status, "communicator failed while summing counts");
    return 0;
}
