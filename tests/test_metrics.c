/* Cluster metrics and the k rule: silhouette, Calinski-Harabasz and Davies-Bouldin against
 * numbers from scikit-learn and against plain brute-force versions written here, the seeded
 * silhouette sample (distinct rows, uniform, same for any thread count), unused labels, the
 * errors, and kseg_choose_k on an elbow, a straight line and metric sweeps with ties. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/metrics.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
    return ((double)(splitmix(state) >> 11) + 0.5) * 0x1.0p-53;
}

static double gaussian(uint64_t *state)
{
    return sqrt(-2.0 * log(uniform(state))) * cos(2.0 * M_PI * uniform(state));
}

/* n points in d dimensions around `blobs` centers 4 apart, labelled by their blob; the labels
 * are (blob * label_stride + label_offset), so that some cluster numbers stay unused. */
static double *make_blobs(size_t n, size_t d, size_t blobs, uint64_t seed, int32_t *labels,
                          int32_t label_stride, int32_t label_offset)
{
    double *x = malloc(n * d * sizeof *x);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        size_t blob = (size_t)(splitmix(&state) % blobs);
        labels[i] = (int32_t)blob * label_stride + label_offset;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = 4.0 * (double)((blob + j) % blobs) + gaussian(&state);
    }
    return x;
}

static kseg_matrix view(const void *data, kseg_dtype dtype, size_t rows, size_t cols)
{
    kseg_matrix matrix = {data, dtype, rows, cols};
    return matrix;
}

static void assert_close(double actual, double expected, double relative, const char *what)
{
    double tolerance = relative * fmax(1.0, fabs(expected));
    cr_assert(fabs(actual - expected) <= tolerance, "%s: %.17g, expected %.17g", what, actual,
              expected);
}

static double distance(const double *a, const double *b, size_t d)
{
    double sum = 0;
    for (size_t j = 0; j < d; j++)
        sum += (a[j] - b[j]) * (a[j] - b[j]);
    return sqrt(sum);
}

/* ---------------------------------------------------------------- brute force */

/* The silhouette by its definition, over the rows listed in rows[m] with labels in [0, k): for
 * each row, a = mean distance to the other rows of its cluster, b = the smallest mean distance to
 * the rows of another cluster present, s = (b - a) / max(a, b), and 0 for a row alone in its
 * cluster. */
static double brute_silhouette(const double *x, size_t d, const int32_t *labels, size_t k,
                               const size_t *rows, size_t m)
{
    double total = 0;
    for (size_t p = 0; p < m; p++) {
        size_t i = rows[p];
        double a = 0, b = INFINITY;
        size_t own_others = 0;
        for (size_t c = 0; c < k; c++) {
            double sum = 0;
            size_t count = 0;
            for (size_t q = 0; q < m; q++)
                if ((size_t)labels[rows[q]] == c && rows[q] != i) {
                    sum += distance(x + i * d, x + rows[q] * d, d);
                    count++;
                }
            if ((size_t)labels[i] == c) {
                own_others = count;
                a = count > 0 ? sum / count : 0;
            } else if (count > 0 && sum / count < b) {
                b = sum / count;
            }
        }
        if (own_others > 0)
            total += (b - a) / fmax(a, b);
    }
    return total / m;
}

/* Centroids of the labels in [0, k): counts[k], centroids[k x d]. */
static void brute_centroids(const double *x, size_t n, size_t d, const int32_t *labels, size_t k,
                            double *counts, double *centroids)
{
    memset(counts, 0, k * sizeof *counts);
    memset(centroids, 0, k * d * sizeof *centroids);
    for (size_t i = 0; i < n; i++) {
        counts[labels[i]] += 1;
        for (size_t j = 0; j < d; j++)
            centroids[labels[i] * d + j] += x[i * d + j];
    }
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            if (counts[c] > 0)
                centroids[c * d + j] /= counts[c];
}

/* Calinski-Harabasz: [sum_c n_c |m_c - m|^2 / (L - 1)] / [sum_i |x_i - m_(c_i)|^2 / (n - L)]. */
static double brute_calinski(const double *x, size_t n, size_t d, const int32_t *labels, size_t k)
{
    double *counts = malloc(k * sizeof *counts), *centroids = malloc(k * d * sizeof *centroids);
    double *mean = calloc(d, sizeof *mean);
    brute_centroids(x, n, d, labels, k, counts, centroids);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j] / n;
    double between = 0, within = 0, used = 0;
    for (size_t c = 0; c < k; c++)
        if (counts[c] > 0) {
            used++;
            between += counts[c] * distance(centroids + c * d, mean, d) *
                       distance(centroids + c * d, mean, d);
        }
    for (size_t i = 0; i < n; i++) {
        double r = distance(x + i * d, centroids + labels[i] * d, d);
        within += r * r;
    }
    free(counts);
    free(centroids);
    free(mean);
    return (between / (used - 1)) / (within / (n - used));
}

/* Davies-Bouldin: mean over clusters of max over other clusters of (s_a + s_b) / |m_a - m_b|,
 * s = mean distance of a cluster's rows to its centroid. */
static double brute_davies(const double *x, size_t n, size_t d, const int32_t *labels, size_t k)
{
    double *counts = malloc(k * sizeof *counts), *centroids = malloc(k * d * sizeof *centroids);
    double *spread = calloc(k, sizeof *spread);
    brute_centroids(x, n, d, labels, k, counts, centroids);
    for (size_t i = 0; i < n; i++)
        spread[labels[i]] += distance(x + i * d, centroids + labels[i] * d, d) / counts[labels[i]];
    double total = 0, used = 0;
    for (size_t a = 0; a < k; a++) {
        if (counts[a] == 0)
            continue;
        used++;
        double worst = 0;
        for (size_t b = 0; b < k; b++)
            if (b != a && counts[b] > 0)
                worst = fmax(worst, (spread[a] + spread[b]) /
                                        distance(centroids + a * d, centroids + b * d, d));
        total += worst;
    }
    free(counts);
    free(centroids);
    free(spread);
    return total / used;
}

/* ---------------------------------------------------------------- oracle: scikit-learn */

/* 19 points in 3 dimensions: clusters 0, 2 and 3 with some far-off members, cluster 4 a single
 * point, clusters 1 (and 5, for n_clusters 6) unused. The expected values were computed once
 * with scikit-learn 1.9.1 (numpy 2.4.6) on X = oracle_points (float64) and y = oracle_labels:
 *     sklearn.metrics.silhouette_score(X, y)          -> 0.60608143015384874
 *     sklearn.metrics.calinski_harabasz_score(X, y)   -> 53.921178142708662
 *     sklearn.metrics.davies_bouldin_score(X, y)      -> 0.34747935757361031
 * printed with "%.17g". scikit-learn relabels, so its clusters are the 4 labels present. */
static const double oracle_points[19 * 3] = {
    1.0, 2.0, 0.5, 1.5, 1.8, 0.7, 0.8, 2.4, 0.2, 1.2, 2.2, 0.9, 0.9, 1.6, 0.4,
    5.0, 6.5, 3.0, 5.5, 6.0, 2.5, 4.8, 7.0, 3.5, 6.1, 6.2, 2.8, 5.2, 5.9, 3.1,
    4.5, 6.8, 2.2, 9.0, 1.0, 7.5, 8.5, 1.5, 8.0, 9.6, 0.5, 7.0, 8.8, 1.2, 6.4,
    3.0, 4.0, 1.5, 2.5, 3.5, 5.0, 7.0, 3.0, 4.0, 12.0, 12.0, 12.0};
static const int32_t oracle_labels[19] = {0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 0, 2, 3, 4};

Test(metrics, match_scikit_learn)
{
    kseg_matrix data = view(oracle_points, KSEG_FLOAT64, 19, 3);
    kseg_error error = {0};
    double score = 0;
    cr_assert_eq(kseg_silhouette_score(&data, oracle_labels, 6, 0, 42, 1, &score, NULL, &error),
                 0, "%s", error.message);
    /* scikit-learn computes distances by the expanded form |x|^2 + |y|^2 - 2 x.y; kseg directly. */
    assert_close(score, 0.60608143015384874, 1e-12, "silhouette");
    cr_assert_eq(kseg_calinski_harabasz_score(&data, oracle_labels, 6, 1, &score, &error), 0,
                 "%s", error.message);
    assert_close(score, 53.921178142708662, 1e-12, "calinski-harabasz");
    cr_assert_eq(kseg_davies_bouldin_score(&data, oracle_labels, 6, 1, &score, &error), 0, "%s",
                 error.message);
    assert_close(score, 0.34747935757361031, 1e-12, "davies-bouldin");

    /* The brute-force versions of this file agree with scikit-learn too. */
    size_t rows[19];
    for (size_t i = 0; i < 19; i++)
        rows[i] = i;
    assert_close(brute_silhouette(oracle_points, 3, oracle_labels, 6, rows, 19),
                 0.60608143015384874, 1e-12, "brute-force silhouette");
    assert_close(brute_calinski(oracle_points, 19, 3, oracle_labels, 6), 53.921178142708662,
                 1e-12, "brute-force calinski-harabasz");
    assert_close(brute_davies(oracle_points, 19, 3, oracle_labels, 6), 0.34747935757361031,
                 1e-12, "brute-force davies-bouldin");
}

/* ---------------------------------------------------------------- against brute force */

Test(metrics, match_brute_force_for_float64_and_float32)
{
    const size_t n = 400, d = 3, blobs = 4;
    int32_t labels[400];
    double *x = make_blobs(n, d, blobs, 5, labels, 1, 0);
    float *x32 = malloc(n * d * sizeof *x32);
    double *x32_as_double = malloc(n * d * sizeof *x32_as_double);
    for (size_t i = 0; i < n * d; i++) {
        x32[i] = (float)x[i];
        x32_as_double[i] = (double)x32[i];
    }
    size_t rows[400];
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
    for (int type = 0; type < 2; type++) {
        kseg_matrix data = type == 0 ? view(x, KSEG_FLOAT64, n, d) : view(x32, KSEG_FLOAT32, n, d);
        const double *values = type == 0 ? x : x32_as_double;
        kseg_error error = {0};
        double score;
        cr_assert_eq(kseg_silhouette_score(&data, labels, blobs, 0, 1, 2, &score, NULL, &error),
                     0, "%s", error.message);
        assert_close(score, brute_silhouette(values, d, labels, blobs, rows, n), 1e-12,
                     "silhouette");
        cr_assert_gt(score, 0.5, "well-separated blobs score %g", score);
        cr_assert_eq(kseg_calinski_harabasz_score(&data, labels, blobs, 2, &score, &error), 0);
        assert_close(score, brute_calinski(values, n, d, labels, blobs), 1e-12, "calinski");
        cr_assert_eq(kseg_davies_bouldin_score(&data, labels, blobs, 2, &score, &error), 0);
        assert_close(score, brute_davies(values, n, d, labels, blobs), 1e-12, "davies");
    }
    free(x);
    free(x32);
    free(x32_as_double);
}

/* Cluster numbers that no row uses change nothing: labels 0 1 2 and labels 1 3 4 of 6 give the
 * same bits (scikit-learn relabels to the labels present). */
Test(metrics, unused_cluster_numbers_change_nothing)
{
    const size_t n = 300, d = 2;
    int32_t dense[300], sparse[300];
    double *x = make_blobs(n, d, 3, 9, dense, 1, 0);
    const int32_t remap[3] = {1, 3, 4};
    for (size_t i = 0; i < n; i++)
        sparse[i] = remap[dense[i]];
    kseg_matrix data = view(x, KSEG_FLOAT64, n, d);
    double a, b;
    cr_assert_eq(kseg_silhouette_score(&data, dense, 3, 100, 3, 1, &a, NULL, NULL), 0);
    cr_assert_eq(kseg_silhouette_score(&data, sparse, 6, 100, 3, 1, &b, NULL, NULL), 0);
    cr_assert_eq(a, b, "%.17g vs %.17g", a, b);
    cr_assert_eq(kseg_calinski_harabasz_score(&data, dense, 3, 1, &a, NULL), 0);
    cr_assert_eq(kseg_calinski_harabasz_score(&data, sparse, 6, 1, &b, NULL), 0);
    cr_assert_eq(a, b, "%.17g vs %.17g", a, b);
    cr_assert_eq(kseg_davies_bouldin_score(&data, dense, 3, 1, &a, NULL), 0);
    cr_assert_eq(kseg_davies_bouldin_score(&data, sparse, 6, 1, &b, NULL), 0);
    cr_assert_eq(a, b, "%.17g vs %.17g", a, b);
    free(x);
}

/* Degenerate cases defined by scikit-learn: Calinski-Harabasz is 1 when every cluster is a single
 * repeated point; Davies-Bouldin is 0 when every cluster has zero spread; the silhouette of
 * duplicate points is 0/0 and counts as 0. */
Test(metrics, degenerate_clusters)
{
    const double x[6 * 2] = {1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5};
    const int32_t labels[6] = {0, 0, 0, 1, 1, 1};
    kseg_matrix data = view(x, KSEG_FLOAT64, 6, 2);
    double score;
    cr_assert_eq(kseg_calinski_harabasz_score(&data, labels, 2, 1, &score, NULL), 0);
    cr_assert_eq(score, 1.0);
    cr_assert_eq(kseg_davies_bouldin_score(&data, labels, 2, 1, &score, NULL), 0);
    cr_assert_eq(score, 0.0);
    cr_assert_eq(kseg_silhouette_score(&data, labels, 2, 0, 0, 1, &score, NULL, NULL), 0);
    cr_assert_eq(score, 1.0); /* a = 0, b = |(1,1) - (5,5)| */

    const double same[4 * 2] = {2, 2, 2, 2, 2, 2, 2, 2};
    const int32_t split[4] = {0, 1, 0, 1};
    data = view(same, KSEG_FLOAT64, 4, 2);
    cr_assert_eq(kseg_silhouette_score(&data, split, 2, 0, 0, 1, &score, NULL, NULL), 0);
    cr_assert_eq(score, 0.0);
}

/* ---------------------------------------------------------------- sampling */

/* The sampled score equals the brute-force silhouette of the rows the call reports; the rows are
 * distinct and increasing; 1 and 2 threads give the same rows and bits; another seed another
 * sample; a sample as large as the data is the whole data. */
Test(metrics, sampled_silhouette)
{
    const size_t n = 3000, d = 4, m = 250;
    int32_t *labels = malloc(n * sizeof *labels);
    double *x = make_blobs(n, d, 5, 13, labels, 1, 0);
    kseg_matrix data = view(x, KSEG_FLOAT64, n, d);
    int64_t sample[250], again[250], other[250];
    double score, score_again, score_other;
    kseg_error error = {0};
    cr_assert_eq(kseg_silhouette_score(&data, labels, 5, m, 77, 1, &score, sample, &error), 0,
                 "%s", error.message);
    size_t rows[250];
    for (size_t p = 0; p < m; p++) {
        cr_assert(sample[p] >= 0 && (size_t)sample[p] < n);
        if (p > 0)
            cr_assert_gt(sample[p], sample[p - 1], "rows not increasing at %zu", p);
        rows[p] = (size_t)sample[p];
    }
    assert_close(score, brute_silhouette(x, d, labels, 5, rows, m), 1e-12, "sampled silhouette");

    cr_assert_eq(kseg_silhouette_score(&data, labels, 5, m, 77, 2, &score_again, again, &error),
                 0);
    cr_assert_arr_eq(sample, again, sizeof sample);
    cr_assert_eq(memcmp(&score, &score_again, sizeof score), 0, "%.17g vs %.17g", score,
                 score_again);

    cr_assert_eq(kseg_silhouette_score(&data, labels, 5, m, 78, 2, &score_other, other, &error),
                 0);
    cr_assert(memcmp(sample, other, sizeof sample) != 0, "seed 78 drew the rows of seed 77");

    /* sample_size >= rows: every row, and the same score as no sampling. */
    int64_t *all = malloc(n * sizeof *all);
    double full, whole;
    cr_assert_eq(kseg_silhouette_score(&data, labels, 5, n + 5, 77, 2, &full, all, &error), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(all[i], (int64_t)i);
    cr_assert_eq(kseg_silhouette_score(&data, labels, 5, 0, 77, 1, &whole, NULL, &error), 0);
    cr_assert_eq(full, whole);
    free(all);
    free(labels);
    free(x);
}

/* Every row is equally likely: over 400 seeds drawing 50 of 1000 rows, each tenth of the rows
 * holds about 2000 of the 20000 draws (binomial standard deviation about 42). */
Test(metrics, sample_is_uniform)
{
    const size_t n = 1000, m = 50;
    double *x = malloc(n * sizeof *x);
    int32_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)i;
        labels[i] = (int32_t)(i % 2);
    }
    kseg_matrix data = view(x, KSEG_FLOAT64, n, 1);
    size_t per_tenth[10] = {0};
    int64_t sample[50];
    for (uint64_t seed = 0; seed < 400; seed++) {
        double score;
        cr_assert_eq(kseg_silhouette_score(&data, labels, 2, m, seed, 2, &score, sample, NULL), 0);
        for (size_t p = 0; p < m; p++)
            per_tenth[sample[p] / 100]++;
    }
    for (int t = 0; t < 10; t++)
        cr_assert(per_tenth[t] > 1800 && per_tenth[t] < 2200, "tenth %d drew %zu", t,
                  per_tenth[t]);
    free(x);
    free(labels);
}

/* ---------------------------------------------------------------- determinism */

/* 40000 rows (five reduction blocks): the same bits for 1, 2 and 3 threads. */
Test(metrics, same_bits_for_any_thread_count)
{
    const size_t n = 40000, d = 3;
    int32_t *labels = malloc(n * sizeof *labels);
    double *x = make_blobs(n, d, 6, 21, labels, 1, 0);
    kseg_matrix data = view(x, KSEG_FLOAT64, n, d);
    double reference[3], value[3];
    cr_assert_eq(kseg_silhouette_score(&data, labels, 6, 500, 5, 1, &reference[0], NULL, NULL), 0);
    cr_assert_eq(kseg_calinski_harabasz_score(&data, labels, 6, 1, &reference[1], NULL), 0);
    cr_assert_eq(kseg_davies_bouldin_score(&data, labels, 6, 1, &reference[2], NULL), 0);
    for (int32_t threads = 2; threads <= 3; threads++) {
        cr_assert_eq(kseg_silhouette_score(&data, labels, 6, 500, 5, threads, &value[0], NULL,
                                           NULL),
                     0);
        cr_assert_eq(kseg_calinski_harabasz_score(&data, labels, 6, threads, &value[1], NULL), 0);
        cr_assert_eq(kseg_davies_bouldin_score(&data, labels, 6, threads, &value[2], NULL), 0);
        cr_assert_eq(memcmp(reference, value, sizeof value), 0, "%d threads", (int)threads);
    }
    free(x);
    free(labels);
}

/* ---------------------------------------------------------------- errors */

Test(metrics, errors)
{
    double x[5 * 2] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4};
    int32_t one_label[5] = {0, 0, 0, 0, 0};
    int32_t all_distinct[5] = {0, 1, 2, 3, 4};
    int32_t outside[5] = {0, 1, 0, 7, 1};
    int32_t good[5] = {0, 0, 1, 1, 1};
    kseg_matrix data = view(x, KSEG_FLOAT64, 5, 2);
    kseg_error error = {0};
    double score;

    /* Fewer than 2 clusters, or every row its own cluster. */
    cr_assert_eq(kseg_silhouette_score(&data, one_label, 3, 0, 0, 1, &score, NULL, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "1 distinct label"), "%s", error.message);
    cr_assert_eq(kseg_calinski_harabasz_score(&data, one_label, 3, 1, &score, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "1 distinct label"), "%s", error.message);
    cr_assert_eq(kseg_davies_bouldin_score(&data, one_label, 3, 1, &score, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_silhouette_score(&data, all_distinct, 5, 0, 0, 1, &score, NULL, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "5 distinct labels in 5 rows"), "%s", error.message);
    cr_assert_eq(kseg_calinski_harabasz_score(&data, all_distinct, 5, 1, &score, &error),
                 KSEG_EINVAL);

    /* A label outside [0, n_clusters), named by row. */
    cr_assert_eq(kseg_davies_bouldin_score(&data, outside, 3, 1, &score, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "label 7 of row 3"), "%s", error.message);
    cr_assert_eq(kseg_silhouette_score(&data, good, 0, 0, 0, 1, &score, NULL, &error),
                 KSEG_EINVAL);

    /* NaN, named by row and column. */
    x[2 * 2 + 1] = NAN;
    cr_assert_eq(kseg_calinski_harabasz_score(&data, good, 2, 1, &score, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "row 2, column 1"), "%s", error.message);
    cr_assert_eq(kseg_silhouette_score(&data, good, 2, 0, 0, 2, &score, NULL, &error),
                 KSEG_ENONFINITE);
    x[2 * 2 + 1] = 2;

    /* A sample of 2 rows cannot hold 2 <= labels <= rows - 1. */
    cr_assert_eq(kseg_silhouette_score(&data, good, 2, 2, 0, 1, &score, NULL, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "in 2 rows"), "%s", error.message);

    /* Empty or unknown data. */
    kseg_matrix empty = view(x, KSEG_FLOAT64, 0, 2);
    cr_assert_eq(kseg_davies_bouldin_score(&empty, good, 2, 1, &score, &error), KSEG_EEMPTY);
    kseg_matrix bad_type = view(x, (kseg_dtype)9, 5, 2);
    cr_assert_eq(kseg_davies_bouldin_score(&bad_type, good, 2, 1, &score, &error), KSEG_ETYPE);
    cr_assert_eq(kseg_calinski_harabasz_score(NULL, good, 2, 1, &score, &error), KSEG_EINVAL);
}

/* ---------------------------------------------------------------- choosing k */

Test(metrics, k_rule_names)
{
    const char *names[] = {"knee", "silhouette", "calinski-harabasz", "davies-bouldin"};
    const kseg_k_rule rules[] = {KSEG_K_RULE_KNEE, KSEG_K_RULE_SILHOUETTE, KSEG_K_RULE_CALINSKI,
                                 KSEG_K_RULE_DAVIES};
    for (int i = 0; i < 4; i++) {
        kseg_k_rule rule = KSEG_K_RULE_KNEE;
        cr_assert_eq(kseg_k_rule_parse(names[i], &rule), 0);
        cr_assert_eq(rule, rules[i]);
        cr_assert_str_eq(kseg_k_rule_name(rules[i]), names[i]);
    }
    kseg_k_rule rule;
    cr_assert_eq(kseg_k_rule_parse("calinski", &rule), KSEG_EINVAL);
    cr_assert_eq(kseg_k_rule_parse("elbow", &rule), KSEG_EINVAL);
    cr_assert_eq(kseg_k_rule_parse(NULL, &rule), KSEG_EINVAL);
}

static void fill_sweep(kseg_k_sweep_entry *entries, size_t count, int32_t first_k,
                       const double *inertia)
{
    for (size_t e = 0; e < count; e++) {
        entries[e].k = first_k + (int32_t)e;
        entries[e].inertia = inertia ? inertia[e] : NAN;
        entries[e].silhouette = NAN;
        entries[e].calinski_harabasz = NAN;
        entries[e].davies_bouldin = NAN;
    }
}

/* k = 1..8 with inertia 1000 400 120 100 90 82 76 71: normalized, the chord runs from (0, 1) to
 * (1, 0); k = 3 sits at x = 2/7, y = 49/929, 0.66 below it, farther than k = 2 (0.50) or k = 4
 * (0.54). */
Test(metrics, knee_of_an_elbow_is_clear)
{
    const double inertia[8] = {1000, 400, 120, 100, 90, 82, 76, 71};
    kseg_k_sweep_entry entries[8];
    fill_sweep(entries, 8, 1, inertia);
    int32_t chosen = 0;
    int clear = -1;
    kseg_error error = {0};
    cr_assert_eq(kseg_choose_k(entries, 8, KSEG_K_RULE_KNEE, &chosen, &clear, &error), 0, "%s",
                 error.message);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 1);

    /* A non-finite inertia (a failed k) is skipped; the knee stays. */
    entries[5].inertia = NAN;
    cr_assert_eq(kseg_choose_k(entries, 8, KSEG_K_RULE_KNEE, &chosen, &clear, &error), 0);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 1);

    /* k need not start at 1 nor be consecutive: x is normalized over k. */
    const double sparse_inertia[5] = {900, 150, 100, 80, 60};
    const int32_t ks[5] = {2, 4, 6, 10, 16};
    fill_sweep(entries, 5, 0, sparse_inertia);
    for (int e = 0; e < 5; e++)
        entries[e].k = ks[e];
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_KNEE, &chosen, &clear, &error), 0);
    cr_assert_eq(chosen, 4);
    cr_assert_eq(clear, 1);
}

Test(metrics, knee_of_a_straight_line_is_not_clear)
{
    double inertia[9];
    for (int e = 0; e < 9; e++)
        inertia[e] = 1000.0 - 100.0 * e;
    kseg_k_sweep_entry entries[9];
    fill_sweep(entries, 9, 2, inertia);
    int32_t chosen = 0;
    int clear = -1;
    cr_assert_eq(kseg_choose_k(entries, 9, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(clear, 0, "a line has no knee (chose %d)", (int)chosen);
    cr_assert(chosen >= 2 && chosen <= 10);

    /* A concave curve lies above its chord: the farthest point is an end, not a knee. */
    for (int e = 0; e < 9; e++)
        entries[e].inertia = 1000.0 - 10.0 * e * e;
    cr_assert_eq(kseg_choose_k(entries, 9, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(clear, 0);
    cr_assert_eq(chosen, 2);

    /* Flat: no knee either. */
    for (int e = 0; e < 9; e++)
        entries[e].inertia = 5.0;
    cr_assert_eq(kseg_choose_k(entries, 9, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(clear, 0);
    cr_assert_eq(chosen, 2);

    /* Fewer than 3 points: the first k, not clear. */
    const double two[2] = {100, 10};
    fill_sweep(entries, 2, 3, two);
    cr_assert_eq(kseg_choose_k(entries, 2, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 0);

    /* A knee just under 0.1 below the chord is not clear; one at 0.1 or more is. */
    const double shallow[3] = {10.0, 5.95, 0.0}; /* 0.5 - 0.595 = -0.095: above the chord */
    fill_sweep(entries, 3, 1, shallow);
    cr_assert_eq(kseg_choose_k(entries, 3, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(clear, 0);
    const double slight[3] = {10.0, 4.05, 0.0}; /* 0.5 - 0.405 = 0.095 below */
    fill_sweep(entries, 3, 1, slight);
    cr_assert_eq(kseg_choose_k(entries, 3, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 2);
    cr_assert_eq(clear, 0);
    const double enough[3] = {10.0, 3.9, 0.0}; /* 0.11 below */
    fill_sweep(entries, 3, 1, enough);
    cr_assert_eq(kseg_choose_k(entries, 3, KSEG_K_RULE_KNEE, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 2);
    cr_assert_eq(clear, 1);
}

Test(metrics, metric_rules_with_ties)
{
    kseg_k_sweep_entry entries[5];
    fill_sweep(entries, 5, 2, NULL);
    const double silhouette[5] = {0.41, 0.58, 0.58, 0.50, NAN};
    const double calinski[5] = {120, 300, 250, 300, 90};
    const double davies[5] = {0.9, 0.6, 0.7, 0.6, 0.6};
    for (int e = 0; e < 5; e++) {
        entries[e].silhouette = silhouette[e];
        entries[e].calinski_harabasz = calinski[e];
        entries[e].davies_bouldin = davies[e];
    }
    int32_t chosen = 0;
    int clear = -1;
    /* Highest silhouette, the tie at k = 3 and 4 going to 3; the NaN at k = 6 skipped. */
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_SILHOUETTE, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 1);
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_CALINSKI, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 1);
    /* Lowest Davies-Bouldin, tied three times. */
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_DAVIES, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 3);
    cr_assert_eq(clear, 1);

    /* A NaN where the best would be, and infinities, are skipped. */
    entries[1].silhouette = NAN;
    entries[0].silhouette = INFINITY;
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_SILHOUETTE, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 4);

    /* All equal: the smallest k, not clear. */
    for (int e = 0; e < 5; e++)
        entries[e].davies_bouldin = 0.75;
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_DAVIES, &chosen, &clear, NULL), 0);
    cr_assert_eq(chosen, 2);
    cr_assert_eq(clear, 0);

    /* All non-finite: an error naming the metric. */
    kseg_error error = {0};
    for (int e = 0; e < 5; e++)
        entries[e].calinski_harabasz = NAN;
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_CALINSKI, &chosen, &clear, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "calinski-harabasz"), "%s", error.message);
    cr_assert_eq(kseg_choose_k(entries, 5, KSEG_K_RULE_KNEE, &chosen, &clear, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "inertia"), "%s", error.message);
}

Test(metrics, choose_k_argument_errors)
{
    const double inertia[3] = {30, 20, 10};
    kseg_k_sweep_entry entries[3];
    fill_sweep(entries, 3, 2, inertia);
    int32_t chosen;
    int clear;
    kseg_error error = {0};
    cr_assert_eq(kseg_choose_k(entries, 0, KSEG_K_RULE_KNEE, &chosen, &clear, &error),
                 KSEG_EEMPTY);
    cr_assert_eq(kseg_choose_k(NULL, 3, KSEG_K_RULE_KNEE, &chosen, &clear, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_choose_k(entries, 3, (kseg_k_rule)9, &chosen, &clear, &error), KSEG_EINVAL);
    entries[2].k = 3; /* not increasing */
    cr_assert_eq(kseg_choose_k(entries, 3, KSEG_K_RULE_KNEE, &chosen, &clear, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "increase"), "%s", error.message);
}
