/* Exact quantiles and NTILE scores for the RFM stage: a stable parallel LSD radix sort of
 * (64-bit key, index) pairs, numpy-compatible linear quantiles of sorted values, and the two
 * scoring rules (equal-count bins on ranks, cut points on values). Each has a plain reference
 * version (comparison sort, direct formulas) that the tests compare it with. */
#ifndef KSEG_KERNELS_QUANTILE_H
#define KSEG_KERNELS_QUANTILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- sort keys */

/* An unsigned key that orders like the double: a < b as doubles iff key(a) < key(b). -0.0 is
 * mapped to the key of +0.0, because the two compare equal and ties must then be broken by the
 * caller's secondary key, as numpy and pandas do. NaN is not ordered; callers reject it first. */
static inline uint64_t kseg_double_order_key(double value)
{
    if (value == 0.0)
        value = 0.0;
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    /* Negative numbers: flip every bit (larger magnitude sorts first); positive: flip the sign. */
    return (bits & 0x8000000000000000ull) ? ~bits : bits ^ 0x8000000000000000ull;
}

/* An unsigned key that orders like the signed integer. */
static inline uint64_t kseg_int64_order_key(int64_t value)
{
    return (uint64_t)value ^ 0x8000000000000000ull;
}

/* ---------------------------------------------------------------- sorting */

/* Buckets per radix pass (8-bit digits). */
#define KSEG_RADIX_BUCKETS 256

/* Sorts n (keys[i], index[i]) pairs by key, stably: equal keys keep their input order, so the
 * result is the unique order by (key, input position) whatever n_threads is. Passes whose digit is
 * the same in every key are skipped, so small integer-valued keys cost few passes.
 * Caller-provided memory: scratch_keys[n], scratch_index[n], histograms[n_threads * 256].
 * n_threads >= 1; n below 2^32. On return the sorted pairs are in keys/index. */
void kseg_radix_sort_pairs(uint64_t *keys, uint32_t *index, size_t n, uint64_t *scratch_keys,
                           uint32_t *scratch_index, size_t *histograms, int n_threads);

/* Bits of the bucket digit of kseg_partial_sort_pairs: 65536 buckets. */
#define KSEG_PARTIAL_SORT_BITS 16
#define KSEG_PARTIAL_SORT_BUCKETS ((size_t)1 << KSEG_PARTIAL_SORT_BITS)

/* A partial kseg_radix_sort_pairs, for callers that need the sorted order only near a few
 * positions: the pairs are bucketed, stably, by a 16-bit digit of the key (the 16 bits below the
 * leading bits every key shares, so the buckets follow the key order), and each bucket that holds
 * one of positions[0..n_positions) is then sorted completely. On return every pair lies within
 * its bucket's range of positions, which is where the full stable sort puts it, and at each given
 * position (and everywhere in its bucket) the pair is the one the full sort puts there. One
 * counting pass and one scatter over all pairs, then full sorts of the few marked buckets: a
 * fraction of the full sort's eight passes for keys that differ in every byte. One thread.
 * Caller memory: scratch_keys[n], scratch_index[n], counts[KSEG_PARTIAL_SORT_BUCKETS + 1],
 * histograms[KSEG_RADIX_BUCKETS]. n below 2^32; positions may repeat and be in any order, and
 * those >= n are ignored. */
void kseg_partial_sort_pairs(uint64_t *keys, uint32_t *index, size_t n, const size_t *positions,
                             size_t n_positions, uint64_t *scratch_keys, uint32_t *scratch_index,
                             size_t *counts, size_t *histograms);

/* Most positions kseg_scoring_positions returns: 4 per quantile, 3 per rank edge. */
#define KSEG_SCORING_POSITIONS_MAX (7 * ((size_t)KSEG_QUANTILE_MAX_BINS + 1))

/* The sorted positions scoring n values into bins reads: around the neighbours of each linear
 * quantile (kseg_quantiles_linear) and, with rank_scores, around each rank edge
 * (kseg_scores_from_ranks, whose score changes only between positions floor(edge) - 1 and
 * floor(edge)). With the order exact at these positions and every other element within its
 * bucket's range (kseg_partial_sort_pairs), cut points and rank scores equal those of the full
 * sort: a bucket without such a position holds no edge, so its elements share one score.
 * positions receives at most KSEG_SCORING_POSITIONS_MAX values; returns the count. n >= 1. */
size_t kseg_scoring_positions(size_t n, int32_t bins, int rank_scores, size_t *positions);

/* The reference: a comparison sort on (key, index). Equal to the radix sort whenever the input
 * indices are increasing, as the callers make them. Allocates; returns 0, or -1 when out of
 * memory (tests only). */
int kseg_sort_pairs_reference(uint64_t *keys, uint32_t *index, size_t n);

/* ---------------------------------------------------------------- quantiles */

/* numpy.quantile(values, numpy.linspace(0, 1, bins + 1)) with the default method "linear",
 * reproduced operation by operation so that the cut points are bit-identical: probabilities
 * q_j = j * (1 / bins) (q_bins = 1), virtual index (n - 1) * q_j, neighbours below and above it,
 * and numpy's two-sided interpolation (a + (b - a) t for t < 0.5, b - (b - a)(1 - t) otherwise).
 * The sorted values are values[order[k]] for k = 0..n-1 (order NULL: values is sorted).
 * cuts receives bins + 1 values. n >= 1, bins >= 1. */
void kseg_quantiles_linear(const double *values, const uint32_t *order, size_t n, int32_t bins,
                           double *cuts);

/* The reference: the same definition on an already sorted array, written from the formula with
 * no shared code. */
void kseg_quantiles_linear_reference(const double *sorted, size_t n, int32_t bins, double *cuts);

/* ---------------------------------------------------------------- scores */

/* Largest bin count the scoring kernels accept (their edge arrays live on the stack). */
#define KSEG_QUANTILE_MAX_BINS 1000

/* The bin edges pandas.qcut(ranks, bins) computes for the ranks 1..n, bit for bit as pandas >= 3
 * does: probabilities q_j = numpy.linspace(0, 1, bins + 1), each moved up to the next double when
 * bins * q_j != j in floating point, then numpy's linear quantile of the ranks (with neighbours
 * below + 1 and below + 2 at virtual index (n - 1) q_j). edges receives bins + 1 values.
 * (pandas 2 skips the nudge; of 2..10 bins that changes scores only for 7 and 9 bins, at a rank
 * on a boundary, whenever n - 1 is a multiple of the bin count. Rounding also makes pandas
 * differ from exact arithmetic: for n = 19 and 6 bins, rank 16 gets score 6, not 5.) */
void kseg_rank_edges(size_t n, int32_t bins, double *edges);

/* Equal-count scores, pandas.qcut(ranks, bins, labels=False) + 1 where the element at sorted
 * position k has rank k + 1: scores[order[k]] = 1 + #{j in 1..bins-1 : edges_j < k + 1} with the
 * edges of kseg_rank_edges. In parallel; bins <= KSEG_QUANTILE_MAX_BINS. */
void kseg_scores_from_ranks(const uint32_t *order, size_t n, int32_t bins, int32_t *scores,
                            int n_threads);

/* Value scores: scores[i] = 1 + #{j in 1..bins-1 : cuts[j] < values[i]}, which is
 * numpy.searchsorted(cuts[1:bins], values, side="left") + 1 and equals
 * pandas.qcut(values, bins, labels=False) + 1 whenever the cuts are distinct. In parallel. */
void kseg_scores_from_cuts(const double *values, size_t n, const double *cuts, int32_t bins,
                           int32_t *scores, int n_threads);

/* The reference for value scores: a linear count per element. (The reference for rank scores is
 * the tests' own: pandas' floating-point edges evaluated directly.) */
void kseg_scores_from_cuts_reference(const double *values, size_t n, const double *cuts,
                                     int32_t bins, int32_t *scores);

#endif
