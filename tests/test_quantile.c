/* Quantile and scoring kernels: the radix sort against a comparison sort, numpy's quantiles bit
 * for bit (values recorded from numpy), rank scores against pandas' floating-point edges and
 * recorded qcut output, value scores against the linear reference, and kseg_rfm_score_feature's
 * tie-breaking, thread invariance and input checks. */
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
