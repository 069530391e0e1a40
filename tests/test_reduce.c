/* The canonical-tree reduction: any split of blocks among workers, contiguous or interleaved,
 * must give the same bits as the tree evaluated directly from its definition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"

static uint64_t state = 88172645463325252ull;
static double next_value(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    /* Values of very different magnitudes make the result depend on the association order. */
    double mantissa = (double)(state >> 11) * 0x1.0p-53;
    int exponent = (int)(state % 40) - 20;
    return (state & 1 ? -1 : 1) * ldexp(mantissa, exponent);
}

/* The definition: tree(lo, size) = tree(left half) + tree(right half), absent halves skipped. */
static int direct_tree(const double *values, uint64_t n_blocks, size_t width, uint64_t lo,
                       uint64_t size, double *out)
{
    if (lo >= n_blocks)
        return 0;
    if (size == 1) {
        memcpy(out, values + lo * width, width * sizeof *out);
        return 1;
    }
    double *right = malloc(width * sizeof *right);
    int has_left = direct_tree(values, n_blocks, width, lo, size / 2, out);
    int has_right = direct_tree(values, n_blocks, width, lo + size / 2, size / 2, right);
    if (has_right) {
        for (size_t i = 0; i < width; i++)
            out[i] = has_left ? out[i] + right[i] : right[i];
    }
    free(right);
    return has_left || has_right;
}

static void reduce_split(const double *values, uint64_t n_blocks, size_t width, int workers,
                         int interleaved, double *out)
{
    kseg_tree_stack *stacks = calloc((size_t)workers, sizeof *stacks);
    /* Contiguous ranges must fit the documented bound; interleaved ones may need a node per
       block but must still give the same bits. */
    size_t capacity = interleaved ? n_blocks + 1 : kseg_tree_stack_capacity(n_blocks);
    for (int w = 0; w < workers; w++)
        cr_assert_eq(kseg_tree_stack_init(&stacks[w], width, capacity), 0);
    for (uint64_t b = 0; b < n_blocks; b++) {
        int w = interleaved ? (int)(b % (uint64_t)workers)
                            : (int)(b * (uint64_t)workers / n_blocks);
        double *payload = kseg_tree_stack_push_begin(&stacks[w], b);
        cr_assert_not_null(payload, "stack of worker %d full at block %llu", w,
                           (unsigned long long)b);
        memcpy(payload, values + b * width, width * sizeof *payload);
        kseg_tree_stack_push_end(&stacks[w]);
    }
    size_t total = 0;
    for (int w = 0; w < workers; w++) {
        cr_assert_leq(stacks[w].count, capacity);
        total += stacks[w].count;
    }
    kseg_tree_node *nodes = calloc(total + 1, sizeof *nodes);
    size_t next = 0;
    for (int w = workers - 1; w >= 0; w--) /* any order: combine sorts */
        for (size_t i = 0; i < stacks[w].count; i++) {
            nodes[next].start = stacks[w].starts[i];
            nodes[next].level = stacks[w].levels[i];
            nodes[next].payload = stacks[w].payloads + i * width;
            next++;
        }
    double *scratch = malloc(kseg_tree_combine_scratch(n_blocks, width) * sizeof *scratch + 8);
    cr_assert_eq(kseg_tree_combine(nodes, total, n_blocks, width, out, scratch), 0);
    free(scratch);
    free(nodes);
    for (int w = 0; w < workers; w++)
        kseg_tree_stack_destroy(&stacks[w]);
    free(stacks);
}

Test(reduce, any_split_matches_the_canonical_tree)
{
    const size_t width = 3;
    for (uint64_t n_blocks = 1; n_blocks <= 130; n_blocks++) {
        double *values = malloc(n_blocks * width * sizeof *values);
        for (size_t i = 0; i < n_blocks * width; i++)
            values[i] = next_value();
        uint64_t size = 1;
        while (size < n_blocks)
            size *= 2;
        double expected[3], got[3];
        direct_tree(values, n_blocks, width, 0, size, expected);
        for (int workers = 1; workers <= 9; workers++)
            for (int interleaved = 0; interleaved <= 1; interleaved++) {
                reduce_split(values, n_blocks, width, workers, interleaved, got);
                cr_assert(memcmp(expected, got, sizeof got) == 0,
                          "n_blocks %llu, %d workers, interleaved %d: result differs",
                          (unsigned long long)n_blocks, workers, interleaved);
            }
        free(values);
    }
}

Test(reduce, full_stack_refuses_instead_of_overflowing)
{
    kseg_tree_stack stack;
    cr_assert_eq(kseg_tree_stack_init(&stack, 1, 2), 0);
    /* Blocks 0 and 2 are not siblings, so nothing merges and a third push finds no room. */
    cr_assert_not_null(kseg_tree_stack_push_begin(&stack, 0));
    kseg_tree_stack_push_end(&stack);
    cr_assert_not_null(kseg_tree_stack_push_begin(&stack, 2));
    kseg_tree_stack_push_end(&stack);
    cr_assert_null(kseg_tree_stack_push_begin(&stack, 4));
    kseg_tree_stack_destroy(&stack);
}

Test(reduce, incomplete_cover_is_rejected)
{
    double payload[1] = {1.0}, out[1], scratch[16];
    kseg_tree_node nodes[1] = {{0, 0, payload}};
    /* One block given, three expected: a caller bug the combiner must report. */
    cr_assert_eq(kseg_tree_combine(nodes, 1, 3, 1, out, scratch), -1);
    /* Overlap: the same block twice. */
    kseg_tree_node twice[2] = {{0, 0, payload}, {0, 0, payload}};
    cr_assert_eq(kseg_tree_combine(twice, 2, 1, 1, out, scratch), -1);
}
