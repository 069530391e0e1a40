/* k-means engine behaviour: validation errors, determinism across thread counts, recovery of
 * well-separated blobs, empty-cluster repair, sample weights, predict, and warnings. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kseg/kseg.h"
#include "kmeans_test_support.h"

/* ------------------------------------------------------------------ test data */

/* Blobs with centers on a grid spaced `spacing` apart and unit noise; truth in [0, blobs). */
static float *make_blobs(size_t n, size_t d, size_t blobs, double spacing, uint64_t seed,
                         int32_t *truth)
{
    float *x = malloc(n * d * sizeof *x);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        size_t blob = i % blobs;
        if (truth)
            truth[i] = (int32_t)blob;
        for (size_t j = 0; j < d; j++) {
            double center = spacing * (double)((blob >> j) & 1) + spacing * (double)(blob * (j + 1) % 3);
            x[i * d + j] = (float)(center + gaussian(&state));
        }
    }
    return x;
}

/* ------------------------------------------------------------------ validation */

Test(kmeans, rejects_bad_input_with_precise_messages)
{
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);

    o.n_clusters = 0;
    cr_assert_eq(fit_code(&m, &o, "at least 1"), KSEG_EINVAL);
    o.n_clusters = 7;
    cr_assert_eq(fit_code(&m, &o, "exceeds the number of rows (6)"), KSEG_EINVAL);
    o.n_clusters = 2;

    kseg_matrix empty = view(x, KSEG_FLOAT32, 0, 2);
    cr_assert_eq(fit_code(&empty, &o, "n = 0"), KSEG_EEMPTY);
    kseg_matrix no_columns = view(x, KSEG_FLOAT32, 6, 0);
    cr_assert_eq(fit_code(&no_columns, &o, "d = 0"), KSEG_EEMPTY);

    x[7] = NAN; /* row 3, column 1 */
    cr_assert_eq(fit_code(&m, &o, "row 3, column 1"), KSEG_ENONFINITE);
    x[7] = INFINITY;
    cr_assert_eq(fit_code(&m, &o, "row 3, column 1"), KSEG_ENONFINITE);
    x[7] = 7;

    double weights[6] = {1, 1, -1, 1, 1, 1};
    o.sample_weight = weights;
    cr_assert_eq(fit_code(&m, &o, "row 2"), KSEG_EINVAL);
    memset(weights, 0, sizeof weights);
    cr_assert_eq(fit_code(&m, &o, "all sample weights are zero"), KSEG_EINVAL);
    o.sample_weight = NULL;

    o.max_iter = 0;
    cr_assert_eq(fit_code(&m, &o, "max_iter"), KSEG_EINVAL);
    o.max_iter = 300;
    o.tol = -1;
    cr_assert_eq(fit_code(&m, &o, "tol"), KSEG_EINVAL);
    o.tol = 1e-4;

    double centers[4] = {0, 1, NAN, 3};
    o.init = KSEG_INIT_GIVEN;
    o.init_centers = centers;
    cr_assert_eq(fit_code(&m, &o, "initial center 1, column 0"), KSEG_ENONFINITE);

    o.init = KSEG_INIT_KMEANS_PLUSPLUS;
    o.kernel = "no-such-kernel";
    cr_assert_eq(fit_code(&m, &o, "no-such-kernel"), KSEG_ENOTSUP);
}

/* ------------------------------------------------------------------ determinism */

static void assert_bitwise_equal(const kseg_kmeans_result *a, const kseg_kmeans_result *b,
                                 const char *what)
{
    cr_assert_eq(a->n_iter, b->n_iter, "%s: iterations differ", what);
    cr_assert(memcmp(&a->inertia, &b->inertia, sizeof a->inertia) == 0, "%s: inertia differs",
              what);
    cr_assert(memcmp(a->centroids, b->centroids,
                     a->n_clusters * a->n_features * sizeof *a->centroids) == 0,
              "%s: centroids differ", what);
    cr_assert(memcmp(a->labels, b->labels, a->n_rows * sizeof *a->labels) == 0,
              "%s: labels differ", what);
}

Test(kmeans, bitwise_identical_for_1_2_and_4_threads)
{
    const size_t n = 70001, d = 5;
    float *x = make_blobs(n, d, 7, 3.0, 42, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    double *weights = malloc(n * sizeof *weights);
    uint64_t state = 7;
    for (size_t i = 0; i < n; i++)
        weights[i] = 0.5 + uniform(&state);
    for (int weighted = 0; weighted <= 1; weighted++)
        for (int init = 0; init <= 1; init++) {
            kseg_kmeans_options o;
            kseg_kmeans_options_defaults(&o);
            o.n_clusters = 9;
            o.seed = 3;
            o.init = init ? KSEG_INIT_RANDOM : KSEG_INIT_KMEANS_PLUSPLUS;
            o.n_init = 2;
            o.sample_weight = weighted ? weights : NULL;
            kseg_kmeans_result base;
            o.n_threads = 1;
            fit_or_fail(&m, &o, &base);
            for (int threads = 2; threads <= 4; threads += 2) {
                kseg_kmeans_result other;
                o.n_threads = threads;
                fit_or_fail(&m, &o, &other);
                assert_bitwise_equal(&base, &other, threads == 2 ? "2 threads" : "4 threads");
                kseg_kmeans_result_destroy(&other);
            }
            kseg_kmeans_result_destroy(&base);
        }
    free(weights);
    free(x);
}

/* ------------------------------------------------------------------ quality */

Test(kmeans, recovers_well_separated_blobs)
{
    const size_t n = 20000, d = 4, k = 6;
    int32_t *truth = malloc(n * sizeof *truth);
    float *x = make_blobs(n, d, k, 12.0, 5, truth);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.n_init = 3;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    double ari = adjusted_rand(truth, r.labels, n, k, k);
    cr_assert_geq(ari, 0.99, "adjusted Rand index %.4f < 0.99", ari);
    cr_assert_neq(r.convergence, KSEG_CONVERGED_NONE);
    /* The reported inertia is the inertia of the returned labels and centroids. */
    double check;
    cr_assert_eq(kseg_kmeans_inertia(&m, r.centroids, k, r.labels, NULL, &check, NULL), 0);
    cr_assert_float_eq(r.inertia, check, 1e-6 * check);
    /* Objectives never increase from one iteration to the next (Lloyd's monotonicity). */
    for (int i = 1; i < r.n_iter; i++)
        cr_assert_leq(r.iterations[i].objective, r.iterations[i - 1].objective * (1 + 1e-6));
    kseg_kmeans_result_destroy(&r);
    free(truth);
    free(x);
}

Test(kmeans, float64_input_matches_float32_clusters)
{
    const size_t n = 5000, d = 3, k = 4;
    int32_t *truth = malloc(n * sizeof *truth);
    float *x = make_blobs(n, d, k, 10.0, 9, truth);
    double *x64 = malloc(n * d * sizeof *x64);
    for (size_t i = 0; i < n * d; i++)
        x64[i] = x[i];
    kseg_matrix m32 = view(x, KSEG_FLOAT32, n, d), m64 = view(x64, KSEG_FLOAT64, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    kseg_kmeans_result a, b;
    fit_or_fail(&m32, &o, &a);
    fit_or_fail(&m64, &o, &b);
    cr_assert_geq(adjusted_rand(a.labels, b.labels, n, k, k), 0.999);
    cr_assert_float_eq(a.inertia, b.inertia, 1e-5 * b.inertia);
    kseg_kmeans_result_destroy(&a);
    kseg_kmeans_result_destroy(&b);
    free(truth);
    free(x);
    free(x64);
}

/* ------------------------------------------------------------------ empty clusters */

Test(kmeans, empty_cluster_is_repaired_with_the_farthest_row)
{
    /* Two tight groups plus one far outlier; the third initial center is far from everything,
       so it gets no rows in the first assignment and must be re-seeded. */
    float x[] = {0, 0, 0.1f, 0, 0, 0.1f, 10, 10, 10.1f, 10, 10, 10.1f, 50, 50};
    kseg_matrix m = view(x, KSEG_FLOAT32, 7, 2);
    double centers[] = {0, 0, 10, 10, 1000, -1000};
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 3;
    o.init = KSEG_INIT_GIVEN;
    o.init_centers = centers;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.iterations[0].empty_repairs, 1);
    cr_assert_eq(r.total_empty_repairs, 1);
    /* The farthest row from its assigned center is the outlier (50, 50): it becomes cluster 2. */
    cr_assert_float_eq(r.centroids[4], 50.0, 1e-12);
    cr_assert_float_eq(r.centroids[5], 50.0, 1e-12);
    cr_assert_eq(r.labels[6], 2);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r.labels[i], 0);
    for (int i = 3; i < 6; i++)
        cr_assert_eq(r.labels[i], 1);
    kseg_kmeans_result_destroy(&r);
}

Test(kmeans, fewer_distinct_rows_than_k_warns_and_is_defined)
{
    float x[] = {1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 1, 1};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 5;
    kseg_kmeans_result r, again;
    fit_or_fail(&m, &o, &r);
    cr_assert(r.warnings & KSEG_WARN_FEWER_DISTINCT_ROWS);
    cr_assert(strstr(r.warning_message, "fewer distinct rows"));
    cr_assert_float_eq(r.inertia, 0.0, 1e-12);
    for (size_t i = 0; i < 6; i++)
        cr_assert(r.labels[i] >= 0 && r.labels[i] < 5);
    fit_or_fail(&m, &o, &again);
    assert_bitwise_equal(&r, &again, "repeat");
    kseg_kmeans_result_destroy(&r);
    kseg_kmeans_result_destroy(&again);
}

/* ------------------------------------------------------------------ weights and predict */

Test(kmeans, integer_weights_equal_repeated_rows)
{
    const size_t n = 3000, d = 3, k = 5;
    float *x = make_blobs(n, d, k, 4.0, 11, NULL);
    double *weights = malloc(n * sizeof *weights);
    size_t repeated_rows = 0;
    for (size_t i = 0; i < n; i++) {
        weights[i] = (double)(1 + i % 3);
        repeated_rows += 1 + i % 3;
    }
    float *repeated = malloc(repeated_rows * d * sizeof *repeated);
    size_t next = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t copy = 0; copy < 1 + i % 3; copy++)
            memcpy(repeated + (next++) * d, x + i * d, d * sizeof *x);
    double centers[15];
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            centers[c * d + j] = x[(c * 7) * d + j];
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.init = KSEG_INIT_GIVEN;
    o.init_centers = centers;
    o.sample_weight = weights;
    kseg_matrix weighted = view(x, KSEG_FLOAT32, n, d);
    kseg_matrix plain = view(repeated, KSEG_FLOAT32, repeated_rows, d);
    kseg_kmeans_result a, b;
    fit_or_fail(&weighted, &o, &a);
    o.sample_weight = NULL;
    fit_or_fail(&plain, &o, &b);
    cr_assert_eq(a.n_iter, b.n_iter);
    cr_assert_float_eq(a.inertia, b.inertia, 1e-9 * b.inertia);
    for (size_t i = 0; i < k * d; i++)
        cr_assert_float_eq(a.centroids[i], b.centroids[i], 1e-9);
    kseg_kmeans_result_destroy(&a);
    kseg_kmeans_result_destroy(&b);
    free(weights);
    free(repeated);
    free(x);
}

Test(kmeans, predict_on_training_data_reproduces_labels)
{
    const size_t n = 30000, d = 6, k = 8;
    float *x = make_blobs(n, d, k, 2.0, 13, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    int32_t *labels = malloc(n * sizeof *labels);
    double *distances = malloc(n * sizeof *distances);
    /* With the fit's shift and kernel the labels are the fit's bitwise, whatever the kernel. */
    cr_assert_eq(kseg_kmeans_predict_with(&m, r.centroids, k, r.feature_mean, r.kernel, 0, labels,
                                          distances, NULL), 0);
    cr_assert(memcmp(labels, r.labels, n * sizeof *labels) == 0);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += distances[i];
    cr_assert_float_eq(total, r.inertia, 1e-9 * r.inertia);
    /* Plain predict centers on the centroids' mean instead: an expanded-form kernel (the
       automatic choice here on AVX-512 CPUs) then rounds differently, which can move a row only
       where two centers are equally near to rounding. */
    cr_assert_eq(kseg_kmeans_predict(&m, r.centroids, k, 0, labels, distances, NULL), 0);
    size_t differ = 0;
    total = 0;
    for (size_t i = 0; i < n; i++) {
        differ += labels[i] != r.labels[i];
        total += distances[i];
    }
    cr_assert_leq(differ, n / 1000, "%zu of %zu labels differ", differ, n);
    cr_assert_float_eq(total, r.inertia, 1e-5 * r.inertia);
    kseg_kmeans_result_destroy(&r);
    free(labels);
    free(distances);
    free(x);
}

Test(kmeans, every_kernel_gives_the_same_clustering)
{
    /* Direct kernels agree bitwise with the reference; expanded-form kernels to rounding, which
       on well-separated data gives the same labels. */
    const size_t n = 20000, d = 9, k = 6;
    float *x = make_blobs(n, d, k, 8.0, 17, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.kernel = "reference";
    kseg_kmeans_result base;
    fit_or_fail(&m, &o, &base);
    const char *names[] = {"avx2", "avx512", "avx512-rows", "avx512-expanded", "gemm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        o.kernel = names[i];
        kseg_kmeans_result other;
        kseg_error e;
        kseg_error_clear(&e);
        if (kseg_kmeans_fit(&m, &o, &other, &e) == KSEG_ENOTSUP)
            continue; /* not built or not supported by this CPU */
        cr_assert_eq(e.code, 0, "%s: %s", names[i], e.message);
        cr_assert(memcmp(other.labels, base.labels, n * sizeof *base.labels) == 0,
                  "%s labels differ from the reference", names[i]);
        if (strcmp(names[i], "gemm") != 0 && strcmp(names[i], "avx512-expanded") != 0)
            assert_bitwise_equal(&base, &other, names[i]);
        kseg_kmeans_result_destroy(&other);
    }
    kseg_kmeans_result_destroy(&base);
    free(x);
}

/* Where the automatic choice for Lloyd is an expanded-form kernel (float32, small d, k >= 8 on
 * AVX-512 CPUs), the fit agrees with the reference kernel's to rounding: the same labels on
 * separated blobs, inertia and centroids to float32 precision, bitwise identical for any thread
 * count; and an explicit Hamerly request still gets a direct-difference kernel and runs Hamerly. */
Test(kmeans, automatic_expanded_kernel_agrees_with_the_reference)
{
    const size_t n = 30011, d = 8, k = 16;
    float *x = make_blobs(n, d, k, 10.0, 41, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.kernel = "reference";
    kseg_kmeans_result base;
    fit_or_fail(&m, &o, &base);
    o.kernel = NULL;
    const kseg_assign_kernel *chosen = kseg_assign_kernel_select(KSEG_FLOAT32, k, d, NULL);
    kseg_kmeans_result first;
    for (int threads = 1; threads <= 3; threads++) {
        o.n_threads = threads;
        kseg_kmeans_result r;
        fit_or_fail(&m, &o, &r);
        cr_assert_str_eq(r.kernel, chosen->name);
        cr_assert_str_eq(r.algorithm, "lloyd");
        if (threads == 1) {
            cr_assert(memcmp(r.labels, base.labels, n * sizeof *r.labels) == 0,
                      "%s: labels differ from the reference kernel's", r.kernel);
            cr_assert(fabs(r.inertia - base.inertia) <= 1e-5 * base.inertia,
                      "%s: inertia %.9g vs reference %.9g", r.kernel, r.inertia, base.inertia);
            for (size_t i = 0; i < k * d; i++)
                cr_assert(fabs(r.centroids[i] - base.centroids[i]) <= 1e-5,
                          "%s: centroid value %zu is %.9g, reference %.9g", r.kernel, i,
                          r.centroids[i], base.centroids[i]);
            first = r;
        } else {
            assert_bitwise_equal(&first, &r, "automatic kernel, 1 vs more threads");
            kseg_kmeans_result_destroy(&r);
        }
    }
    o.n_threads = 2;
    o.algorithm = KSEG_ALGORITHM_HAMERLY;
    kseg_kmeans_result bounded;
    fit_or_fail(&m, &o, &bounded);
    cr_assert_str_eq(bounded.algorithm, "hamerly");
    cr_assert_str_eq(bounded.kernel, kseg_assign_kernel_select_direct(KSEG_FLOAT32, k, d)->name);
    cr_assert(memcmp(bounded.labels, base.labels, n * sizeof *base.labels) == 0,
              "Hamerly's labels differ from the reference kernel's");
    kseg_kmeans_result_destroy(&bounded);
    kseg_kmeans_result_destroy(&first);
    kseg_kmeans_result_destroy(&base);
    free(x);
}

Test(kmeans, strict_convergence_and_iteration_statistics)
{
    const size_t n = 4000, d = 2, k = 3;
    float *x = make_blobs(n, d, k, 20.0, 23, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.tol = 0; /* only strict convergence can stop it */
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.convergence, KSEG_CONVERGED_STRICT);
    cr_assert_eq(r.iterations[r.n_iter - 1].changed_labels, 0);
    cr_assert_eq(r.iterations[0].changed_labels, (int64_t)n, "first iteration assigns every row");
    for (int i = 0; i < r.n_iter; i++)
        cr_assert_eq(r.iterations[i].iteration, i + 1);
    kseg_kmeans_result_destroy(&r);

    o.max_iter = 1;
    o.init = KSEG_INIT_RANDOM;
    o.n_init = 1;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.n_iter, 1);
    kseg_kmeans_result_destroy(&r);
    free(x);
}

/* ------------------------------------------------------------------ review findings */

Test(kmeans, overflowing_values_fail_instead_of_returning_garbage)
{
    /* Finite values whose squared distances overflow: every run's inertia is infinite. */
    double x[200];
    for (int i = 0; i < 200; i++)
        x[i] = (i * 7 % 3 == 0) ? -1e200 : 1e200;
    kseg_matrix m = view(x, KSEG_FLOAT64, 100, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 3;
    o.init = KSEG_INIT_RANDOM;
    o.n_init = 3;
    cr_assert_eq(fit_code(&m, &o, "not finite"), KSEG_ENONFINITE);
}

Test(kmeans, identical_rows_converge_at_once_with_a_warning)
{
    /* All rows equal: the second cluster cannot get a distinct row, so it stays empty rather than
       cycling between copies until max_iter. */
    float x[20];
    for (int i = 0; i < 20; i++)
        x[i] = 0.1f;
    kseg_matrix m = view(x, KSEG_FLOAT32, 10, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 2;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_lt(r.n_iter, 5, "took %d iterations", r.n_iter);
    cr_assert_neq(r.convergence, KSEG_CONVERGED_NONE);
    cr_assert(r.warnings & KSEG_WARN_FEWER_DISTINCT_ROWS);
    cr_assert(r.warnings & KSEG_WARN_EMPTY_CLUSTERS);
    cr_assert_float_eq(r.inertia, 0.0, 1e-12);
    kseg_kmeans_result_destroy(&r);
}

Test(kmeans, huge_k_is_rejected_before_allocating)
{
    float x[4] = {0, 1, 2, 3};
    kseg_matrix m = view(x, KSEG_FLOAT32, 4, 1);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)1 << 62;
    cr_assert_eq(fit_code(&m, &o, "exceeds the number of rows (4)"), KSEG_EINVAL);
}

/* ------------------------------------------------------------------ Hamerly */

/* Data that stresses exactness: blobs of different widths (some rows far from every center, some
   between two), every 7th row a copy of the previous one, and every 5th row snapped to a coarse
   grid so that many rows are exactly equidistant from several centers once centers land on grid
   points. */
static void *make_hard_data(size_t n, size_t d, size_t blobs, kseg_dtype dtype, uint64_t seed)
{
    uint64_t state = seed;
    double *centers = malloc(blobs * d * sizeof *centers);
    for (size_t i = 0; i < blobs * d; i++)
        centers[i] = 10.0 * uniform(&state);
    double *rows = malloc(n * d * sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        size_t blob = splitmix(&state) % blobs;
        double width = 0.2 + 1.5 * (double)(blob % 3);
        for (size_t j = 0; j < d; j++) {
            double value = centers[blob * d + j] + width * gaussian(&state);
            if (i % 5 == 0)
                value = floor(value / 2.0) * 2.0;
            rows[i * d + j] = value;
        }
        if (i % 7 == 0 && i > 0)
            memcpy(rows + i * d, rows + (i - 1) * d, d * sizeof *rows);
    }
    free(centers);
    if (dtype == KSEG_FLOAT64)
        return rows;
    float *out = malloc(n * d * sizeof *out);
    for (size_t i = 0; i < n * d; i++)
        out[i] = (float)rows[i];
    free(rows);
    return out;
}

static void assert_same_statistics(const kseg_kmeans_result *a, const kseg_kmeans_result *b,
                                   const char *what)
{
    cr_assert_eq(a->convergence, b->convergence, "%s: convergence differs", what);
    cr_assert_eq(a->best_init, b->best_init, "%s: winning run differs", what);
    for (int32_t i = 0; i < a->n_iter; i++) {
        const kseg_iteration_stats *x = &a->iterations[i], *y = &b->iterations[i];
        cr_assert(memcmp(&x->objective, &y->objective, sizeof x->objective) == 0 &&
                      memcmp(&x->center_shift, &y->center_shift, sizeof x->center_shift) == 0 &&
                      x->changed_labels == y->changed_labels &&
                      x->empty_repairs == y->empty_repairs,
                  "%s: statistics of iteration %d differ", what, i + 1);
        cr_assert_eq(y->distances_computed + y->distances_skipped, x->distances_computed,
                     "%s: computed + skipped must be Lloyd's n * k", what);
    }
}

Test(kmeans, hamerly_equals_lloyd_bitwise, .timeout = 300)
{
    /* n is not a multiple of the 8192-row block; k from 2 to 40, d from 2 to 32. */
    const size_t n = 20011;
    const struct {
        size_t d, k, blobs;
        kseg_dtype dtype;
        int weighted, random_init;
        const char *kernel;
    } cases[] = {
        {2, 2, 3, KSEG_FLOAT32, 0, 0, NULL},     {2, 7, 5, KSEG_FLOAT64, 1, 0, NULL},
        {3, 40, 12, KSEG_FLOAT32, 1, 1, NULL},   {5, 16, 16, KSEG_FLOAT64, 0, 1, NULL},
        {8, 16, 10, KSEG_FLOAT32, 1, 0, NULL},   {8, 3, 9, KSEG_FLOAT32, 0, 0, "reference"},
        {13, 25, 20, KSEG_FLOAT64, 1, 0, NULL},  {16, 9, 4, KSEG_FLOAT32, 0, 1, "avx2"},
        {32, 40, 30, KSEG_FLOAT32, 0, 0, NULL},  {32, 5, 5, KSEG_FLOAT64, 1, 1, "avx512"},
    };
    double *weights = malloc(n * sizeof *weights);
    uint64_t state = 99;
    for (size_t i = 0; i < n; i++)
        weights[i] = i % 11 == 0 ? 0.0 : 0.25 + 2.0 * uniform(&state);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        void *x = make_hard_data(n, cases[t].d, cases[t].blobs, cases[t].dtype, 1000 + t);
        kseg_matrix m = view(x, cases[t].dtype, n, cases[t].d);
        kseg_kmeans_options o;
        kseg_kmeans_options_defaults(&o);
        o.n_clusters = (int64_t)cases[t].k;
        o.seed = t;
        o.sample_weight = cases[t].weighted ? weights : NULL;
        o.init = cases[t].random_init ? KSEG_INIT_RANDOM : KSEG_INIT_KMEANS_PLUSPLUS;
        o.n_init = cases[t].random_init ? 2 : 1;
        o.tol = t % 2 ? 0.0 : 1e-4; /* tol 0 runs to strict convergence: many iterations */
        /* Without a kernel name, Hamerly gets the preferred direct-difference kernel; Lloyd runs
           with that kernel by name, since its own automatic choice may be an expanded-form one. */
        const kseg_assign_kernel *direct =
            kseg_assign_kernel_select_direct(cases[t].dtype, cases[t].k, cases[t].d);
        o.kernel = cases[t].kernel ? cases[t].kernel : direct->name;
        o.n_threads = 1;
        kseg_kmeans_result lloyd;
        kseg_error e;
        kseg_error_clear(&e);
        int code = kseg_kmeans_fit(&m, &o, &lloyd, &e);
        if (code == KSEG_ENOTSUP) { /* a kernel this CPU or build lacks */
            free(x);
            continue;
        }
        cr_assert_eq(code, 0, "case %zu: %s", t, e.message);
        cr_assert_str_eq(lloyd.algorithm, "lloyd");
        for (int threads = 1; threads <= 2; threads++) {
            char what[64];
            snprintf(what, sizeof what, "case %zu (d %zu, k %zu), %d threads", t, cases[t].d,
                     cases[t].k, threads);
            o.algorithm = KSEG_ALGORITHM_HAMERLY;
            o.kernel = cases[t].kernel;
            o.n_threads = threads;
            kseg_kmeans_result hamerly;
            fit_or_fail(&m, &o, &hamerly);
            cr_assert_str_eq(hamerly.algorithm, "hamerly", "%s", what);
            cr_assert_str_eq(hamerly.kernel, lloyd.kernel, "%s", what);
            assert_bitwise_equal(&lloyd, &hamerly, what);
            assert_same_statistics(&lloyd, &hamerly, what);
            kseg_kmeans_result_destroy(&hamerly);
        }
        kseg_kmeans_result_destroy(&lloyd);
        free(x);
    }
    free(weights);
}

Test(kmeans, hamerly_skips_distances_on_separated_blobs)
{
    const size_t n = 30000, d = 4, k = 8;
    float *x = make_blobs(n, d, k, 12.0, 5, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.tol = 0;
    o.algorithm = KSEG_ALGORITHM_HAMERLY;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.iterations[0].distances_computed, (int64_t)(n * k),
                 "the first pass has no bounds yet");
    int64_t skipped = 0;
    for (int32_t i = 1; i < r.n_iter; i++) {
        cr_assert_eq(r.iterations[i].distances_computed + r.iterations[i].distances_skipped,
                     (int64_t)(n * k));
        skipped += r.iterations[i].distances_skipped;
    }
    cr_assert_gt(r.n_iter, 1);
    cr_assert_gt(skipped, 0, "well-separated blobs must let the bounds skip distances");
    /* After the first pass nearly every row is decided by its bounds. */
    cr_assert_gt(r.iterations[r.n_iter - 1].distances_skipped, (int64_t)(n * (k - 1) * 9 / 10));
    kseg_kmeans_result_destroy(&r);
    free(x);
}

Test(kmeans, algorithm_names_parse_and_auto_resolves)
{
    kseg_kmeans_algorithm a;
    cr_assert_eq(kseg_kmeans_algorithm_parse("hamerly", &a), 0);
    cr_assert_eq(a, KSEG_ALGORITHM_HAMERLY);
    cr_assert_eq(kseg_kmeans_algorithm_parse("auto", &a), 0);
    cr_assert_eq(a, KSEG_ALGORITHM_AUTO);
    cr_assert_eq(kseg_kmeans_algorithm_parse("lloyd", &a), 0);
    cr_assert_eq(a, KSEG_ALGORITHM_LLOYD);
    cr_assert_eq(kseg_kmeans_algorithm_parse("elk", &a), KSEG_EINVAL);
    cr_assert_str_eq(kseg_kmeans_algorithm_name(KSEG_ALGORITHM_HAMERLY), "hamerly");
    cr_assert_eq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_LLOYD, 1000, 4, 3), 0);
    cr_assert_geq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_HAMERLY, 1000, 4, 3),
                  1000 * sizeof(double));

    float x[12] = {0, 0, 1, 1, 9, 9, 10, 10, 0, 1, 9, 10};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    cr_assert_eq(o.algorithm, KSEG_ALGORITHM_LLOYD, "Lloyd is the default");
    o.n_clusters = 2;
    o.algorithm = KSEG_ALGORITHM_AUTO;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_str_eq(r.algorithm, strcmp(r.kernel, "reference") == 0 ? "hamerly" : "lloyd",
                     "AUTO takes Hamerly only with the reference kernel");
    kseg_kmeans_result_destroy(&r);
    o.kernel = "reference";
    fit_or_fail(&m, &o, &r);
    cr_assert_str_eq(r.algorithm, "hamerly", "AUTO takes Hamerly with the reference kernel");
    kseg_kmeans_result_destroy(&r);
    o.kernel = "gemm";
    o.algorithm = KSEG_ALGORITHM_HAMERLY;
    kseg_error e;
    kseg_error_clear(&e);
    if (kseg_kmeans_fit(&m, &o, &r, &e) == 0) { /* where the GEMM kernel is built */
        cr_assert_str_eq(r.algorithm, "lloyd", "expanded-form kernels run Lloyd");
        kseg_kmeans_result_destroy(&r);
    }
    o.kernel = NULL;
    o.algorithm = (kseg_kmeans_algorithm)7;
    cr_assert_eq(fit_code(&m, &o, "unknown k-means algorithm"), KSEG_EINVAL);
}
