/* The canonical-tree reduction: worker stacks that merge complete sibling sub-trees as blocks
 * arrive, and the final combination of all workers' nodes in the same tree shape. */
#include <stdlib.h>
#include <string.h>

#include "reduce.h"

static unsigned ceil_log2(uint64_t value)
{
    unsigned bits = 0;
    while (bits < 64 && ((uint64_t)1 << bits) < value)
        bits++;
    return bits;
}

size_t kseg_tree_stack_capacity(uint64_t n_blocks)
{
    /* An increasing sequence leaves at most one node per level on each side of its peak. */
    return 2 * (size_t)ceil_log2(n_blocks + 1) + 3;
}

int kseg_tree_stack_init(kseg_tree_stack *stack, size_t width, size_t capacity)
{
    memset(stack, 0, sizeof *stack);
    stack->width = width;
    stack->capacity = capacity;
    stack->starts = malloc(capacity * sizeof *stack->starts);
    stack->levels = malloc(capacity * sizeof *stack->levels);
    stack->payloads = malloc(capacity * (width ? width : 1) * sizeof *stack->payloads);
    if (!stack->starts || !stack->levels || !stack->payloads) {
        kseg_tree_stack_destroy(stack);
        return -1;
    }
    return 0;
}

void kseg_tree_stack_destroy(kseg_tree_stack *stack)
{
    free(stack->starts);
    free(stack->levels);
    free(stack->payloads);
    memset(stack, 0, sizeof *stack);
}

void kseg_tree_stack_reset(kseg_tree_stack *stack)
{
    stack->count = 0;
}

double *kseg_tree_stack_push_begin(kseg_tree_stack *stack, uint64_t block)
{
    size_t slot = stack->count;
    if (slot >= stack->capacity)
        return NULL;
    stack->starts[slot] = block;
    stack->levels[slot] = 0;
    double *payload = stack->payloads + slot * stack->width;
    memset(payload, 0, stack->width * sizeof *payload);
    return payload;
}

void kseg_tree_stack_push_end(kseg_tree_stack *stack)
{
    stack->count++;
    /* Merge while the two top nodes are the left and right halves of one aligned parent. */
    while (stack->count >= 2) {
        size_t top = stack->count - 1, below = top - 1;
        uint32_t level = stack->levels[top];
        uint64_t span = (uint64_t)1 << level;
        if (stack->levels[below] != level || (stack->starts[below] & (2 * span - 1)) != 0 ||
            stack->starts[below] + span != stack->starts[top])
            break;
        double *left = stack->payloads + below * stack->width;
        const double *right = stack->payloads + top * stack->width;
        for (size_t i = 0; i < stack->width; i++)
            left[i] += right[i];
        stack->levels[below] = level + 1;
        stack->count--;
    }
}

size_t kseg_tree_combine_scratch(uint64_t n_blocks, size_t width)
{
    return ((size_t)ceil_log2(n_blocks) + 2) * width;
}

static int compare_nodes(const void *a, const void *b)
{
    const kseg_tree_node *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

typedef struct combine_state {
    const kseg_tree_node *nodes;
    size_t count;
    size_t next;      /* nodes are consumed left to right */
    uint64_t n_blocks;
    size_t width;
    double *scratch;  /* one width-sized buffer per recursion depth */
    int broken;
} combine_state;

/* Writes the canonical value of [start, start + 2^level) into out; returns 0 if the interval holds
 * no blocks. */
static int combine_interval(combine_state *state, uint64_t start, unsigned level, double *out,
                            unsigned depth)
{
    if (start >= state->n_blocks || state->broken)
        return 0;
    if (state->next < state->count) {
        const kseg_tree_node *node = &state->nodes[state->next];
        if (node->start == start && node->level == level) {
            memcpy(out, node->payload, state->width * sizeof *out);
            state->next++;
            return 1;
        }
        if (node->start < start || (node->start == start && node->level > level)) {
            state->broken = 1; /* overlapping or misaligned nodes */
            return 0;
        }
    } else {
        state->broken = 1; /* blocks below n_blocks with no node */
        return 0;
    }
    if (level == 0) {
        state->broken = 1;
        return 0;
    }
    uint64_t half = (uint64_t)1 << (level - 1);
    int has_left = combine_interval(state, start, level - 1, out, depth + 1);
    double *right = state->scratch + (size_t)depth * state->width;
    int has_right = combine_interval(state, start + half, level - 1, right, depth + 1);
    if (has_left && has_right) {
        for (size_t i = 0; i < state->width; i++)
            out[i] += right[i];
    } else if (has_right) {
        memcpy(out, right, state->width * sizeof *out);
    }
    return has_left || has_right;
}

int kseg_tree_combine(kseg_tree_node *nodes, size_t count, uint64_t n_blocks, size_t width,
                      double *out, double *scratch)
{
    memset(out, 0, width * sizeof *out);
    if (n_blocks == 0)
        return count == 0 ? 0 : -1;
    qsort(nodes, count, sizeof *nodes, compare_nodes);
    combine_state state = {nodes, count, 0, n_blocks, width, scratch, 0};
    combine_interval(&state, 0, ceil_log2(n_blocks), out, 0);
    return (state.broken || state.next != count) ? -1 : 0;
}
