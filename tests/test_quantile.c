/* Quantile and scoring kernels: the radix sort against a comparison sort, numpy's quantiles bit
 * for bit (values recorded from numpy), rank scores against pandas' floating-point edges and
 * recorded qcut output, value scores against the linear reference, the partial sort (and scoring
 * on it) against the full sort, and kseg_rfm_score_feature's tie-breaking, thread invariance and
 * input checks. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/rfm.h"
#include "quantile.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---------------------------------------------------------------- order keys and sorting */

Test(quantile, double_order_key_orders_like_doubles)
{
    double values[] = {-INFINITY, -1e300, -2.5, -1.0, -0x1p-1074, -0.0, 0.0, 0x1p-1074,
                       1e-300,    0.5,    1.0,  2.5,  1e300,       INFINITY};
    size_t n = sizeof values / sizeof values[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int by_value = (values[i] > values[j]) - (values[i] < values[j]);
            uint64_t a = kseg_double_order_key(values[i]), b = kseg_double_order_key(values[j]);
            int by_key = (a > b) - (a < b);
            cr_assert_eq(by_value, by_key, "%g vs %g", values[i], values[j]);
        }
    cr_assert_eq(kseg_int64_order_key(-1) < kseg_int64_order_key(0), 1);
    cr_assert_eq(kseg_int64_order_key(INT64_MIN) < kseg_int64_order_key(INT64_MAX), 1);
}

static void check_sort(size_t n, uint64_t key_mask, int threads)
{
    uint64_t *keys = malloc(n * sizeof *keys), *expected_keys = malloc(n * sizeof *keys);
    uint32_t *index = malloc(n * sizeof *index), *expected_index = malloc(n * sizeof *index);
    uint64_t *scratch_keys = malloc(n * sizeof *keys);
    uint32_t *scratch_index = malloc(n * sizeof *index);
    size_t *histograms = malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *histograms);
    for (size_t i = 0; i < n; i++) {
        keys[i] = expected_keys[i] = next_random() & key_mask;
        index[i] = expected_index[i] = (uint32_t)i;
    }
    cr_assert_eq(kseg_sort_pairs_reference(expected_keys, expected_index, n), 0);
    kseg_radix_sort_pairs(keys, index, n, scratch_keys, scratch_index, histograms, threads);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(keys[i], expected_keys[i], "n %zu threads %d: key %zu", n, threads, i);
        cr_assert_eq(index[i], expected_index[i], "n %zu threads %d: index %zu", n, threads, i);
    }
    free(keys);
    free(expected_keys);
    free(index);
    free(expected_index);
    free(scratch_keys);
    free(scratch_index);
    free(histograms);
}

Test(quantile, radix_sort_matches_comparison_sort)
{
    /* Small and large (parallel) inputs; narrow masks give many equal keys (stability) and skip
       passes; a mask with holes skips inner passes only. */
    size_t sizes[] = {0, 1, 2, 3, 17, 1000, 70000, 300000};
    uint64_t masks[] = {~0ull, 0xffull, 0x7ull, 0xff0000ff00ull, 0};
    int threads[] = {1, 2, 4, 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
            for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++)
                check_sort(sizes[s], masks[m], threads[t]);
}

/* ---------------------------------------------------------------- quantiles */

static void check_recorded_quantiles(const double *values, size_t n, int32_t bins,
                                     const double *expected)
{
    double *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, values, n * sizeof *sorted);
    for (size_t i = 1; i < n; i++) /* insertion sort: obviously correct */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double swap = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = swap;
        }
    double cuts[16], reference[16];
    kseg_quantiles_linear(sorted, NULL, n, bins, cuts);
    kseg_quantiles_linear_reference(sorted, n, bins, reference);
    for (int32_t j = 0; j <= bins; j++) {
        cr_assert_eq(memcmp(&cuts[j], &expected[j], sizeof(double)), 0,
                     "bins %d cut %d: %a, numpy %a", bins, j, cuts[j], expected[j]);
        cr_assert_eq(memcmp(&reference[j], &expected[j], sizeof(double)), 0,
                     "reference bins %d cut %d: %a, numpy %a", bins, j, reference[j],
                     expected[j]);
    }
    free(sorted);
}

Test(quantile, linear_quantiles_equal_numpy_bit_for_bit)
{
    /* Recorded with numpy 2.4: np.quantile(v, np.linspace(0, 1, bins + 1)), printed as hex. */
    const double b[] = {0.1, 0.7, 0.2, 0.3, 1e-3, 123.456, -7.25};
    const double b5[] = {-0x1.d000000000000p+2, 0x1.54c985f06f69ap-6, 0x1.1eb851eb851edp-3,
                         0x1.0a3d70a3d70a5p-2,  0x1.3d70a3d70a3d9p-1, 0x1.edd2f1a9fbe77p+6};
    const double b7[] = {-0x1.d000000000000p+2, -0x1.08ec65d09a7a7p+0, 0x1.25bde0fcc81e6p-4,
                         0x1.41d41d41d41d4p-3,  0x1.f15f15f15f15ep-3,  0x1.a83a83a83a833p-2,
                         0x1.23c8ff1f4e1ccp+4,  0x1.edd2f1a9fbe77p+6};
    const double b10[] = {-0x1.d000000000000p+2, -0x1.731f8a0902ddfp+1, 0x1.54c985f06f69ap-6,
                          0x1.487fcb923a29fp-4,  0x1.1eb851eb851edp-3,  0x1.999999999999ap-3,
                          0x1.0a3d70a3d70a5p-2,  0x1.851eb851eb853p-2,  0x1.3d70a3d70a3d9p-1,
                          0x1.8e6b50b0f27c2p+5,  0x1.edd2f1a9fbe77p+6};
    check_recorded_quantiles(b, 7, 5, b5);
    check_recorded_quantiles(b, 7, 7, b7);
    check_recorded_quantiles(b, 7, 10, b10);
    double c[11];
    for (int i = 0; i < 11; i++)
        c[i] = (double)(i + 1) * 0.1;
    const double c3[] = {0x1.999999999999ap-4, 0x1.bbbbbbbbbbbbcp-2, 0x1.8888888888888p-1,
                         0x1.199999999999ap+0};
    const double c10[] = {0x1.999999999999ap-4, 0x1.999999999999ap-3, 0x1.3333333333334p-2,
                          0x1.999999999999bp-2, 0x1.0000000000000p-1, 0x1.3333333333334p-1,
                          0x1.6666666666668p-1, 0x1.999999999999bp-1, 0x1.ccccccccccccdp-1,
                          0x1.0000000000000p+0, 0x1.199999999999ap+0};
    check_recorded_quantiles(c, 11, 3, c3);
    check_recorded_quantiles(c, 11, 10, c10);
    const double a[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    const double a7[] = {0x1.0000000000000p+0, 0x1.6db6db6db6db6p+0, 0x1.6db6db6db6db6p+1,
                         0x1.a492492492492p+1, 0x1.2db6db6db6db6p+2, 0x1.4000000000000p+2,
                         0x1.6492492492492p+2, 0x1.2000000000000p+3};
    check_recorded_quantiles(a, 11, 7, a7);
    const double one[] = {42.0};
    const double one5[] = {42, 42, 42, 42, 42, 42};
    check_recorded_quantiles(one, 1, 5, one5);
}

Test(quantile, linear_quantiles_through_order_equal_reference)
{
    for (size_t n = 1; n < 200; n += 7)
        for (int32_t bins = 1; bins <= 10; bins++) {
            double *values = malloc(n * sizeof *values), *sorted = malloc(n * sizeof *sorted);
            uint64_t *keys = malloc(n * sizeof *keys);
            uint32_t *order = malloc(n * sizeof *order);
            for (size_t i = 0; i < n; i++) {
                values[i] = (double)(int64_t)(next_random() % 2001 - 1000) / 7.0;
                keys[i] = kseg_double_order_key(values[i]);
                order[i] = (uint32_t)i;
            }
            cr_assert_eq(kseg_sort_pairs_reference(keys, order, n), 0);
            for (size_t k = 0; k < n; k++)
                sorted[k] = values[order[k]];
            double cuts[11], reference[11];
            kseg_quantiles_linear(values, order, n, bins, cuts);
            kseg_quantiles_linear_reference(sorted, n, bins, reference);
            cr_assert_eq(memcmp(cuts, reference, ((size_t)bins + 1) * sizeof *cuts), 0,
                         "n %zu bins %d", n, bins);
            free(values);
            free(sorted);
            free(keys);
            free(order);
        }
}

/* ---------------------------------------------------------------- scores */

/* The reference: pandas.qcut(ranks 1..n, bins) as pandas >= 3 computes it in floating point,
 * written out per element: probabilities from linspace, each nudged up to the next double when
 * bins * q is not exactly j, numpy's linear quantile of the ranks, and a right-closed count of
 * the interior edges below the rank. */
static int32_t pandas_rank_score(size_t position, size_t n, int32_t bins)
{
    double rank = (double)position + 1.0;
    int32_t score = 1;
    for (int32_t j = 1; j < bins; j++) {
        double q = (double)j * (1.0 / (double)bins);
        if ((double)bins * q != (double)j)
            q = nextafter(q, 1.0);
        volatile double virtual_index = (double)(n - 1) * q;
        double edge;
        if (virtual_index >= (double)(n - 1))
            edge = (double)n;
        else {
            double below = floor(virtual_index);
            volatile double t = virtual_index - below;
            volatile double part;
            /* The ranks at positions below and below + 1 are below + 1 and below + 2. */
            if (t >= 0.5) {
                part = 1.0 * (1.0 - t);
                edge = (below + 2.0) - part;
            } else {
                part = 1.0 * t;
                edge = (below + 1.0) + part;
            }
        }
        if (edge < rank)
            score++;
    }
    return score;
}

Test(quantile, rank_scores_equal_pandas_edges)
{
    uint32_t *order = malloc(400 * sizeof *order);
    int32_t *scores = malloc(400 * sizeof *scores);
    for (size_t i = 0; i < 400; i++)
        order[i] = (uint32_t)i;
    for (size_t n = 1; n <= 400; n++)
        for (int32_t bins = 2; bins <= 10; bins++) {
            kseg_scores_from_ranks(order, n, bins, scores, 2);
            for (size_t position = 0; position < n; position++)
                cr_assert_eq(scores[position], pandas_rank_score(position, n, bins),
                             "n %zu bins %d position %zu", n, bins, position);
        }
    free(order);
    free(scores);
    /* Large n where (n - 1) j / bins is an integer for every j (n - 1 a multiple of 2520):
       right at the bin boundaries, where rounding shows. */
    size_t n = 2520u * 1000003u + 1u;
    for (int32_t bins = 2; bins <= 10; bins++) {
        double edges[11];
        kseg_rank_edges(n, bins, edges);
        for (int32_t j = 1; j < bins; j++) {
            size_t edge = (n - 1) * (size_t)j / (size_t)bins;
            for (size_t position = edge - 1; position <= edge + 1; position++) {
                int32_t score = 1;
                for (int32_t k = 1; k < bins; k++)
                    score += edges[k] < (double)position + 1.0;
                cr_assert_eq(score, pandas_rank_score(position, n, bins),
                             "n %zu bins %d position %zu", n, bins, position);
            }
        }
    }
}

Test(quantile, rank_scores_equal_recorded_qcut)
{
    /* pd.qcut(pd.Series(range(n)).rank(method="first"), bins, labels=False) + 1, pandas 3.1. */
    const int32_t n10_b5[] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
    const int32_t n10_b7[] = {1, 1, 2, 3, 4, 4, 5, 6, 7, 7};
    const int32_t n11_b7[] = {1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7};
    const int32_t n16_b7[] = {1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 7};
    const int32_t n7_b5[] = {1, 1, 2, 3, 4, 5, 5};
    /* Here floating point gives rank 16 the score 6 where exact arithmetic would give 5. */
    const int32_t n19_b6[] = {1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 6};
    struct {
        size_t n;
        int32_t bins;
        const int32_t *expected;
    } cases[] = {{10, 5, n10_b5}, {10, 7, n10_b7}, {11, 7, n11_b7}, {16, 7, n16_b7}, {7, 5, n7_b5},
                 {19, 6, n19_b6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t order[32];
        int32_t scores[32];
        for (size_t i = 0; i < cases[c].n; i++)
            order[i] = (uint32_t)i;
        kseg_scores_from_ranks(order, cases[c].n, cases[c].bins, scores, 2);
        for (size_t i = 0; i < cases[c].n; i++)
            cr_assert_eq(scores[i], cases[c].expected[i], "n %zu bins %d element %zu",
                         cases[c].n, cases[c].bins, i);
    }
    /* Where the scores step up, for two more sizes with 6 bins (same pandas). */
    struct {
        size_t n;
        size_t starts[6];
    } steps[] = {{31, {0, 6, 11, 16, 21, 25}}, {115, {0, 20, 39, 58, 77, 95}}};
    for (size_t c = 0; c < 2; c++) {
        uint32_t order[115];
        int32_t scores[115];
        for (size_t i = 0; i < steps[c].n; i++)
            order[i] = (uint32_t)i;
        kseg_scores_from_ranks(order, steps[c].n, 6, scores, 1);
        for (size_t i = 0; i < steps[c].n; i++) {
            int32_t expected = 0;
            for (int s = 0; s < 6; s++)
                expected += i >= steps[c].starts[s];
            cr_assert_eq(scores[i], expected, "n %zu element %zu", steps[c].n, i);
        }
    }
}

Test(quantile, value_scores_equal_reference)
{
    size_t n = 5000;
    double *values = malloc(n * sizeof *values);
    int32_t *scores = malloc(n * sizeof *scores), *reference = malloc(n * sizeof *reference);
    for (size_t i = 0; i < n; i++)
        values[i] = (double)(next_random() % 50);
    for (int32_t bins = 1; bins <= 10; bins++) {
        double cuts[11];
        for (int32_t j = 0; j <= bins; j++) /* cuts with repeats, and values equal to cuts */
            cuts[j] = (double)(j * 49 / bins / 2 * 2);
        kseg_scores_from_cuts(values, n, cuts, bins, scores, 3);
        kseg_scores_from_cuts_reference(values, n, cuts, bins, reference);
        cr_assert_eq(memcmp(scores, reference, n * sizeof *scores), 0, "bins %d", bins);
    }
    free(values);
    free(scores);
    free(reference);
}

/* ---------------------------------------------------------------- kseg_rfm_score_feature */

Test(quantile, score_feature_breaks_ties_by_customer_id)
{
    /* Equal values: the rank order is the customer-id order, not the input order. */
    double values[6] = {1, 1, 1, 1, 1, 1};
    int64_t ids[6] = {60, 10, 50, 20, 40, 30};
    int32_t scores[6];
    double cuts[4];
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_score_feature(values, ids, 6, 3, KSEG_TIES_RANK, 1, scores, cuts,
                                        &error),
                 0, "%s", error.message);
    const int32_t expected[6] = {3, 1, 3, 1, 2, 2};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(scores[i], expected[i], "element %d", i);
    /* Value mode: equal values share a score. */
    cr_assert_eq(kseg_rfm_score_feature(values, ids, 6, 3, KSEG_TIES_VALUE, 1, scores, cuts,
                                        &error),
                 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(scores[i], 1);
    for (int j = 0; j < 4; j++)
        cr_assert_eq(cuts[j], 1.0);
}

Test(quantile, score_feature_is_thread_invariant_and_matches_brute_force)
{
    size_t n = 200000;
    double *values = malloc(n * sizeof *values);
    int64_t *ids = malloc(n * sizeof *ids);
    int32_t *scores1 = malloc(n * sizeof *scores1), *scores4 = malloc(n * sizeof *scores4);
    uint64_t *keys = malloc(n * sizeof *keys);
    uint32_t *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) {
        values[i] = (double)(next_random() % 1000) * 0.25;
        ids[i] = (int64_t)(next_random() >> 1) - (INT64_MAX / 2); /* unsorted, some negative */
    }
    for (int ties = 0; ties < 2; ties++) {
        double cuts1[6], cuts4[6];
        kseg_error error = {0};
        cr_assert_eq(kseg_rfm_score_feature(values, ids, n, 5, (kseg_ties_mode)ties, 1, scores1,
                                            cuts1, &error),
                     0, "%s", error.message);
        cr_assert_eq(kseg_rfm_score_feature(values, ids, n, 5, (kseg_ties_mode)ties, 4, scores4,
                                            cuts4, &error),
                     0, "%s", error.message);
        cr_assert_eq(memcmp(scores1, scores4, n * sizeof *scores1), 0);
        cr_assert_eq(memcmp(cuts1, cuts4, sizeof cuts1), 0);
        /* Brute force: order by (value, id) with a comparison sort of composite keys. Values are
           multiples of 0.25 below 250, so value * 4 fits in 10 bits above a 53-bit id rank. */
        for (size_t i = 0; i < n; i++) {
            keys[i] = kseg_int64_order_key(ids[i]);
            order[i] = (uint32_t)i;
        }
        cr_assert_eq(kseg_sort_pairs_reference(keys, order, n), 0);
        uint64_t *id_rank = malloc(n * sizeof *id_rank);
        for (size_t k = 0; k < n; k++)
            id_rank[order[k]] = k;
        for (size_t i = 0; i < n; i++) {
            keys[i] = ((uint64_t)(values[i] * 4) << 40) | id_rank[i];
            order[i] = (uint32_t)i;
        }
        cr_assert_eq(kseg_sort_pairs_reference(keys, order, n), 0);
        double *sorted = malloc(n * sizeof *sorted);
        for (size_t k = 0; k < n; k++)
            sorted[k] = values[order[k]];
        double reference_cuts[6];
        kseg_quantiles_linear_reference(sorted, n, 5, reference_cuts);
        cr_assert_eq(memcmp(cuts1, reference_cuts, sizeof cuts1), 0);
        for (size_t k = 0; k < n; k++) {
            int32_t expected;
            if (ties == KSEG_TIES_RANK)
                expected = pandas_rank_score(k, n, 5);
            else
                kseg_scores_from_cuts_reference(&values[order[k]], 1, reference_cuts, 5,
                                                &expected);
            cr_assert_eq(scores1[order[k]], expected, "ties %d position %zu", ties, k);
        }
        free(id_rank);
        free(sorted);
    }
    free(values);
    free(ids);
    free(scores1);
    free(scores4);
    free(keys);
    free(order);
}

Test(quantile, score_feature_rejects_bad_input)
{
    double values[3] = {1, NAN, 3};
    int32_t scores[3];
    double cuts[6];
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_score_feature(values, NULL, 3, 5, KSEG_TIES_RANK, 1, scores, cuts,
                                        &error),
                 KSEG_ENONFINITE);
    cr_assert_not_null(strstr(error.message, "value 1"), "%s", error.message);
    cr_assert_eq(kseg_rfm_score_feature(values, NULL, 0, 5, KSEG_TIES_RANK, 1, scores, cuts,
                                        &error),
                 KSEG_EEMPTY);
    cr_assert_eq(kseg_rfm_score_feature(values, NULL, 1, 0, KSEG_TIES_RANK, 1, scores, cuts,
                                        &error),
                 KSEG_EINVAL);
}

/* ---------------------------------------------------------------- partial sort */

/* Keys of one of several shapes: any 64 bits, few distinct small values (many ties), doubles of
 * very different magnitudes, keys that differ only in their low 10 bits, and all equal. */
static uint64_t shaped_key(int shape)
{
    switch (shape) {
    case 0:
        return next_random();
    case 1:
        return next_random() % 7;
    case 2:
        return kseg_double_order_key(ldexp((double)(next_random() % 1000) - 300.0,
                                           (int)(next_random() % 60) - 30));
    case 3:
        return 0xabcdef0000000000ull | (next_random() % 1024);
    default:
        return 42;
    }
}

Test(quantile, partial_sort_is_exact_at_the_positions_and_bucketed_elsewhere)
{
    const size_t sizes[] = {1, 2, 3, 17, 1000, 70000};
    for (int shape = 0; shape < 5; shape++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            uint64_t *keys = malloc(n * sizeof *keys), *full_keys = malloc(n * sizeof *keys);
            uint64_t *scratch_keys = malloc(n * sizeof *keys);
            uint32_t *index = malloc(n * sizeof *index), *full_index = malloc(n * sizeof *index);
            uint32_t *scratch_index = malloc(n * sizeof *index);
            size_t *counts = malloc((KSEG_PARTIAL_SORT_BUCKETS + 1) * sizeof *counts);
            size_t histograms[KSEG_RADIX_BUCKETS];
            for (size_t i = 0; i < n; i++) {
                keys[i] = full_keys[i] = shaped_key(shape);
                index[i] = full_index[i] = (uint32_t)i;
            }
            /* A few positions anywhere, one past the end (ignored), and the two ends. */
            size_t positions[8] = {0, n - 1, n + 5};
            for (size_t p = 3; p < 8; p++)
                positions[p] = (size_t)(next_random() % n);
            kseg_partial_sort_pairs(keys, index, n, positions, 8, scratch_keys, scratch_index,
                                    counts, histograms);
            cr_assert_eq(kseg_sort_pairs_reference(full_keys, full_index, n), 0);
            /* The test's own digit: the 16 bits below the bits every key shares. */
            uint64_t differing = 0;
            for (size_t i = 0; i < n; i++)
                differing |= full_keys[i] ^ full_keys[0];
            int top = differing ? 63 - __builtin_clzll(differing) : 0;
            int shift = top + 1 >= 16 ? top + 1 - 16 : 0;
            unsigned char *exact = calloc(n, 1);
            for (size_t p = 0; p < 8; p++)
                if (positions[p] < n)
                    exact[positions[p]] = 1;
            for (size_t k = 0; k < n; k++) {
                cr_assert_eq(keys[k] >> shift, full_keys[k] >> shift,
                             "shape %d n %zu: position %zu holds a key of another bucket", shape,
                             n, k);
                if (exact[k])
                    cr_assert(keys[k] == full_keys[k] && index[k] == full_index[k],
                              "shape %d n %zu: position %zu is not the full sort's", shape, n, k);
            }
            /* A permutation of the input pairs: the index sums and the key multiset agree. */
            uint64_t index_sum = 0, key_sum = 0, full_key_sum = 0;
            for (size_t k = 0; k < n; k++) {
                index_sum += index[k];
                key_sum += keys[k] * 0x9e3779b97f4a7c15ull;
                full_key_sum += full_keys[k] * 0x9e3779b97f4a7c15ull;
            }
            cr_assert_eq(index_sum, (uint64_t)n * (n - 1) / 2);
            cr_assert_eq(key_sum, full_key_sum);
            free(exact);
            free(keys);
            free(full_keys);
            free(scratch_keys);
            free(index);
            free(full_index);
            free(scratch_index);
            free(counts);
        }
}

Test(quantile, scoring_on_the_partial_sort_equals_scoring_on_the_full_sort)
{
    /* The cut points and both kinds of scores from the partial order (with the positions
       kseg_scoring_positions names) against those from the full order, for every size up to
       120 and some up to 300, bin counts 2..12 and 100, and values with many ties, few ties, or
       none. */
    const size_t max_n = 300;
    double values[300];
    uint64_t keys[300], full_keys[300], scratch_keys[300];
    uint32_t order[300], full_order[300], scratch_order[300];
    size_t *counts = malloc((KSEG_PARTIAL_SORT_BUCKETS + 1) * sizeof *counts);
    size_t *positions = malloc(KSEG_SCORING_POSITIONS_MAX * sizeof *positions);
    size_t histograms[KSEG_RADIX_BUCKETS];
    const int32_t bin_counts[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100};
    for (size_t n = 1; n <= max_n; n += n < 120 ? 1 : 13)
        for (int shape = 0; shape < 3; shape++) {
            for (size_t i = 0; i < n; i++)
                values[i] = shape == 0   ? (double)(next_random() % 4)
                            : shape == 1 ? floor(exp((double)(next_random() % 1000) / 100.0))
                                         : (double)(next_random() % 1000000) / 7.0 - 5000.0;
            for (size_t b = 0; b < sizeof bin_counts / sizeof bin_counts[0]; b++) {
                int32_t bins = bin_counts[b];
                for (int rank = 0; rank < 2; rank++) {
                    for (size_t i = 0; i < n; i++) {
                        keys[i] = full_keys[i] = kseg_double_order_key(values[i]);
                        order[i] = full_order[i] = (uint32_t)i;
                    }
                    size_t n_positions = kseg_scoring_positions(n, bins, rank, positions);
                    cr_assert_leq(n_positions, KSEG_SCORING_POSITIONS_MAX);
                    kseg_partial_sort_pairs(keys, order, n, positions, n_positions, scratch_keys,
                                            scratch_order, counts, histograms);
                    cr_assert_eq(kseg_sort_pairs_reference(full_keys, full_order, n), 0);
                    double cuts[101], full_cuts[101];
                    kseg_quantiles_linear(values, order, n, bins, cuts);
                    kseg_quantiles_linear(values, full_order, n, bins, full_cuts);
                    cr_assert_arr_eq(cuts, full_cuts, ((size_t)bins + 1) * sizeof *cuts,
                                     "n %zu bins %d shape %d: cut points", n, (int)bins, shape);
                    if (!rank)
                        continue;
                    int32_t scores[300], full_scores[300];
                    kseg_scores_from_ranks(order, n, bins, scores, 1);
                    kseg_scores_from_ranks(full_order, n, bins, full_scores, 1);
                    cr_assert_arr_eq(scores, full_scores, n * sizeof *scores,
                                     "n %zu bins %d shape %d: rank scores", n, (int)bins, shape);
                }
            }
        }
    free(counts);
    free(positions);
}
