/* Sorting, quantile and scoring kernels of the RFM stage: a stable parallel LSD radix sort of
 * (key, index) pairs that skips constant digits, numpy's linear quantiles reproduced operation by
 * operation, and the rank and value scoring rules, each next to its plain reference. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "quantile.h"

/* Below this many pairs one thread sorts alone: the per-pass barriers cost more than they save. */
#define SERIAL_SORT_BELOW ((size_t)1 << 16)

void kseg_radix_sort_pairs(uint64_t *keys, uint32_t *index, size_t n, uint64_t *scratch_keys,
                           uint32_t *scratch_index, size_t *histograms, int n_threads)
{
    if (n < 2)
        return;
    if (n_threads < 1 || n < SERIAL_SORT_BELOW)
        n_threads = 1;

    /* A byte position needs a pass only if some key differs from the first one there. */
    uint64_t differing = 0;
    const uint64_t first_key = keys[0];
#pragma omp parallel for reduction(| : differing) schedule(static) num_threads(n_threads)
    for (size_t i = 0; i < n; i++)
        differing |= keys[i] ^ first_key;

    uint64_t *source_keys = keys, *target_keys = scratch_keys;
    uint32_t *source_index = index, *target_index = scratch_index;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        if (((differing >> shift) & 0xff) == 0)
            continue;
        int team = 1;
#pragma omp parallel num_threads(n_threads)
        {
            int thread = omp_get_thread_num();
#pragma omp single
            team = omp_get_num_threads();
            /* The implicit barrier of `single` publishes team. Each thread owns a contiguous
               range; counting per (thread, digit) and placing digit-major, thread-minor keeps
               equal digits in input order, which makes every pass stable. */
            size_t begin = n * (size_t)thread / (size_t)team;
            size_t end = n * (size_t)(thread + 1) / (size_t)team;
            size_t *histogram = histograms + (size_t)thread * KSEG_RADIX_BUCKETS;
            memset(histogram, 0, KSEG_RADIX_BUCKETS * sizeof *histogram);
            for (size_t i = begin; i < end; i++)
                histogram[(source_keys[i] >> shift) & 0xff]++;
#pragma omp barrier
#pragma omp single
            {
                size_t running = 0;
                for (size_t digit = 0; digit < KSEG_RADIX_BUCKETS; digit++)
                    for (int t = 0; t < team; t++) {
                        size_t count = histograms[(size_t)t * KSEG_RADIX_BUCKETS + digit];
                        histograms[(size_t)t * KSEG_RADIX_BUCKETS + digit] = running;
                        running += count;
                    }
            }
            for (size_t i = begin; i < end; i++) {
                size_t position = histogram[(source_keys[i] >> shift) & 0xff]++;
                target_keys[position] = source_keys[i];
                target_index[position] = source_index[i];
            }
        }
        uint64_t *swap_keys = source_keys;
        source_keys = target_keys;
        target_keys = swap_keys;
        uint32_t *swap_index = source_index;
        source_index = target_index;
        target_index = swap_index;
    }
    if (source_keys != keys) {
        memcpy(keys, source_keys, n * sizeof *keys);
        memcpy(index, source_index, n * sizeof *index);
    }
}

void kseg_partial_sort_pairs(uint64_t *keys, uint32_t *index, size_t n, const size_t *positions,
                             size_t n_positions, uint64_t *scratch_keys, uint32_t *scratch_index,
                             size_t *counts, size_t *histograms)
{
    if (n < 2)
        return;
    /* The digit: the 16 bits below the leading bits all keys share, so that the buckets spread
       the keys' actual range (small integers as well as doubles of every magnitude). */
    uint64_t differing = 0;
    const uint64_t first_key = keys[0];
    for (size_t i = 0; i < n; i++)
        differing |= keys[i] ^ first_key;
    if (differing == 0)
        return; /* all keys equal: the stable order is the input order */
    unsigned top = 63 - (unsigned)__builtin_clzll(differing); /* highest differing bit */
    unsigned shift = top + 1 >= KSEG_PARTIAL_SORT_BITS ? top + 1 - KSEG_PARTIAL_SORT_BITS : 0;
    const uint64_t mask = KSEG_PARTIAL_SORT_BUCKETS - 1;

    memset(counts, 0, (KSEG_PARTIAL_SORT_BUCKETS + 1) * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        counts[((keys[i] >> shift) & mask) + 1]++;
    for (size_t b = 0; b < KSEG_PARTIAL_SORT_BUCKETS; b++)
        counts[b + 1] += counts[b];
    /* counts[b] is now the first position of bucket b. Which buckets the positions fall in, as a
       bitset (8 KiB on the stack). */
    uint64_t marked[KSEG_PARTIAL_SORT_BUCKETS / 64];
    memset(marked, 0, sizeof marked);
    for (size_t p = 0; p < n_positions; p++) {
        if (positions[p] >= n)
            continue;
        /* The last bucket whose first position is <= positions[p] and that is not empty. */
        size_t low = 0, high = KSEG_PARTIAL_SORT_BUCKETS;
        while (high - low > 1) {
            size_t middle = low + (high - low) / 2;
            if (counts[middle] <= positions[p])
                low = middle;
            else
                high = middle;
        }
        marked[low / 64] |= 1ull << (low % 64);
    }
    /* Stable scatter into the buckets (counts[b] advances to the next bucket's start). */
    for (size_t i = 0; i < n; i++) {
        size_t position = counts[(keys[i] >> shift) & mask]++;
        scratch_keys[position] = keys[i];
        scratch_index[position] = index[i];
    }
    memcpy(keys, scratch_keys, n * sizeof *keys);
    memcpy(index, scratch_index, n * sizeof *index);
    /* Bucket b now ends at counts[b] and starts at counts[b - 1] (0 for the first). */
    for (size_t b = 0; b < KSEG_PARTIAL_SORT_BUCKETS; b++) {
        if (!(marked[b / 64] >> (b % 64) & 1))
            continue;
        size_t begin = b ? counts[b - 1] : 0, end = counts[b];
        if (end - begin > 1)
            kseg_radix_sort_pairs(keys + begin, index + begin, end - begin, scratch_keys,
                                  scratch_index, histograms, 1);
    }
}

size_t kseg_scoring_positions(size_t n, int32_t bins, int rank_scores, size_t *positions)
{
    size_t count = 0;
    /* The quantiles read positions floor((n - 1) q_j) and the one after; one more on each side
       covers any rounding of the virtual index. */
    for (int32_t j = 0; j <= bins; j++) {
        size_t below = (size_t)floor((double)(n - 1) * ((double)j / (double)bins));
        for (size_t k = below ? below - 1 : 0; k <= below + 2; k++)
            positions[count++] = k < n ? k : n - 1;
    }
    if (rank_scores) {
        double edges[KSEG_QUANTILE_MAX_BINS + 1];
        kseg_rank_edges(n, bins, edges);
        for (int32_t j = 1; j < bins; j++) {
            /* The score changes between position floor(edge) - 1 and floor(edge). */
            double edge = edges[j] < 1.0 ? 1.0 : edges[j];
            size_t at = (size_t)floor(edge);
            for (size_t k = at - 1; k <= at + 1; k++)
                positions[count++] = k < n ? k : n - 1;
        }
    }
    return count;
}

typedef struct key_index_pair {
    uint64_t key;
    uint32_t index;
} key_index_pair;

static int compare_pairs(const void *left, const void *right)
{
    const key_index_pair *a = left, *b = right;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int kseg_sort_pairs_reference(uint64_t *keys, uint32_t *index, size_t n)
{
    key_index_pair *pairs = malloc((n ? n : 1) * sizeof *pairs);
    if (!pairs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        pairs[i].key = keys[i];
        pairs[i].index = index[i];
    }
    qsort(pairs, n, sizeof *pairs, compare_pairs);
    for (size_t i = 0; i < n; i++) {
        keys[i] = pairs[i].key;
        index[i] = pairs[i].index;
    }
    free(pairs);
    return 0;
}

/* numpy's _lerp: both products are rounded before the addition, so they go through volatile
 * variables; otherwise a compiler allowed to contract (gcc's default for GNU C with FMA hardware)
 * would fuse them into one fma and change the last bit. */
static double numpy_lerp(double below, double above, double weight)
{
    double difference = above - below;
    if (weight >= 0.5) {
        volatile double product = difference * (1.0 - weight);
        return above - product;
    }
    volatile double product = difference * weight;
    return below + product;
}

void kseg_quantiles_linear(const double *values, const uint32_t *order, size_t n, int32_t bins,
                           double *cuts)
{
    /* numpy.linspace(0, 1, bins + 1): arange(bins + 1) * (1 / bins) + 0, last element set to 1. */
    const double step = 1.0 / (double)bins;
    const double last_index = (double)(n - 1);
    for (int32_t j = 0; j <= bins; j++) {
        double probability = j == bins ? 1.0 : (double)j * step + 0.0;
        double virtual_index = last_index * probability;
        if (virtual_index >= last_index) {
            cuts[j] = values[order ? order[n - 1] : n - 1];
            continue;
        }
        double below_index = floor(virtual_index);
        size_t below = (size_t)below_index;
        double weight = virtual_index - below_index;
        double low = values[order ? order[below] : below];
        double high = values[order ? order[below + 1] : below + 1];
        cuts[j] = numpy_lerp(low, high, weight);
    }
}

void kseg_quantiles_linear_reference(const double *sorted, size_t n, int32_t bins, double *cuts)
{
    for (int32_t j = 0; j <= bins; j++) {
        volatile double q = (double)j * (1.0 / (double)bins);
        if (j == bins)
            q = 1.0;
        volatile double position = (double)(n - 1) * q;
        if (position >= (double)(n - 1)) {
            cuts[j] = sorted[n - 1];
            continue;
        }
        size_t k = (size_t)position;
        volatile double t = position - (double)k;
        volatile double d = sorted[k + 1] - sorted[k];
        volatile double part;
        if (t < 0.5) {
            part = d * t;
            cuts[j] = sorted[k] + part;
        } else {
            part = d * (1.0 - t);
            cuts[j] = sorted[k + 1] - part;
        }
    }
}

void kseg_rank_edges(size_t n, int32_t bins, double *edges)
{
    const double step = 1.0 / (double)bins;
    const double last_index = (double)(n - 1);
    for (int32_t j = 0; j <= bins; j++) {
        double probability = j == bins ? 1.0 : (double)j * step + 0.0;
        /* pandas rounds a probability that does not give back j up, not to nearest. */
        volatile double scaled = (double)bins * probability;
        if (scaled != (double)j)
            probability = nextafter(probability, 1.0);
        double virtual_index = last_index * probability;
        if (virtual_index >= last_index) {
            edges[j] = (double)n;
            continue;
        }
        double below = floor(virtual_index);
        edges[j] = numpy_lerp(below + 1.0, below + 2.0, virtual_index - below);
    }
}

void kseg_scores_from_ranks(const uint32_t *order, size_t n, int32_t bins, int32_t *scores,
                            int n_threads)
{
    double edges[KSEG_QUANTILE_MAX_BINS + 1];
    kseg_rank_edges(n, bins, edges);
    const double *interior = edges + 1;
    const size_t n_interior = (size_t)bins - 1;
#pragma omp parallel for schedule(static) num_threads(n_threads < 1 ? 1 : n_threads)
    for (size_t position = 0; position < n; position++) {
        double rank = (double)position + 1.0;
        size_t low = 0, high = n_interior;
        while (low < high) {
            size_t middle = low + (high - low) / 2;
            if (interior[middle] < rank)
                low = middle + 1;
            else
                high = middle;
        }
        scores[order[position]] = 1 + (int32_t)low;
    }
}

void kseg_scores_from_cuts(const double *values, size_t n, const double *cuts, int32_t bins,
                           int32_t *scores, int n_threads)
{
    const double *interior = cuts + 1;
    const size_t n_interior = (size_t)bins - 1;
#pragma omp parallel for schedule(static) num_threads(n_threads < 1 ? 1 : n_threads)
    for (size_t i = 0; i < n; i++) {
        /* Lower bound: the number of interior cuts strictly below the value. */
        size_t low = 0, high = n_interior;
        while (low < high) {
            size_t middle = low + (high - low) / 2;
            if (interior[middle] < values[i])
                low = middle + 1;
            else
                high = middle;
        }
        scores[i] = 1 + (int32_t)low;
    }
}

void kseg_scores_from_cuts_reference(const double *values, size_t n, const double *cuts,
                                     int32_t bins, int32_t *scores)
{
    for (size_t i = 0; i < n; i++) {
        int32_t score = 1;
        for (int32_t j = 1; j < bins; j++)
            if (cuts[j] < values[i])
                score++;
        scores[i] = score;
    }
}
