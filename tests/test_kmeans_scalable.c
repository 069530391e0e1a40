/* k-means|| initialization and mini-batch k-means: determinism across thread counts, the
 * initial centers (distinct rows of positive weight), quality against k-means++ and Lloyd on
 * blobs whose partition is known, option validation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"
#include "kseg/kseg.h"
#include "kmeans_test_support.h"

/* ------------------------------------------------------------------ test data */

/* Blobs with random centers in a cube of side `spread` and unit noise; truth in [0, blobs). */
static float *make_blobs(size_t n, size_t d, size_t blobs, double spread, uint64_t seed,
                         int32_t *truth)
{
    float *x = malloc(n * d * sizeof *x);
    double *centers = malloc(blobs * d * sizeof *centers);
    uint64_t state = seed;
    for (size_t i = 0; i < blobs * d; i++)
        centers[i] = spread * uniform(&state);
    for (size_t i = 0; i < n; i++) {
        size_t blob = i % blobs;
        if (truth)
            truth[i] = (int32_t)blob;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(centers[blob * d + j] + gaussian(&state));
    }
    free(centers);
    return x;
}

/* Blobs on a grid spaced `spacing` apart (at least 3 * spacing between any two blob centers
 * along some axis when spacing is large), so that every blob is unmistakable. */
static float *make_separated_blobs(size_t n, size_t d, size_t blobs, double spacing,
                                   uint64_t seed, int32_t *truth)
{
    float *x = malloc(n * d * sizeof *x);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        size_t blob = i % blobs;
        if (truth)
            truth[i] = (int32_t)blob;
        for (size_t j = 0; j < d; j++) {
            /* Blob b sits at spacing * (digit j of b in base 3). */
            size_t digit = blob;
            for (size_t level = 0; level < j; level++)
                digit /= 3;
            x[i * d + j] = (float)(spacing * (double)(digit % 3) + gaussian(&state));
        }
    }
    return x;
}

static void initial_or_fail(const kseg_matrix *m, const kseg_kmeans_options *o, double *centers)
{
    kseg_error e;
    kseg_error_clear(&e);
    int code = kmeans_initial_centers(m, o, centers, &e);
    cr_assert_eq(code, 0, "initialization failed: %s", e.message);
}

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
    for (int32_t i = 0; i < a->n_iter; i++)
        cr_assert(memcmp(&a->iterations[i].objective, &b->iterations[i].objective,
                         sizeof(double)) == 0,
                  "%s: objective of iteration %d differs", what, i + 1);
}

/* Squared distance of a center [d] to float row x[d], in double. */
static double distance_to_row(const double *center, const float *x, size_t d)
{
    double sum = 0;
    for (size_t j = 0; j < d; j++) {
        double diff = center[j] - (double)x[j];
        sum += diff * diff;
    }
    return sum;
}

/* Weighted inertia of the data with respect to centers (each row to its nearest center). */
static double inertia_of(const float *x, const double *weights, size_t n, size_t d,
                         const double *centers, size_t k)
{
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        for (size_t c = 0; c < k; c++) {
            double value = distance_to_row(centers + c * d, x + i * d, d);
            if (value < best)
                best = value;
        }
        total += (weights ? weights[i] : 1.0) * best;
    }
    return total;
}

/* ------------------------------------------------------------------ k-means|| */

Test(kmeans_parallel, names_parse)
{
    kseg_init_method method;
    cr_assert_eq(kseg_init_method_parse("k-means||", &method), 0);
    cr_assert_eq(method, KSEG_INIT_KMEANS_PARALLEL);
    method = KSEG_INIT_RANDOM;
    cr_assert_eq(kseg_init_method_parse("kmeans-parallel", &method), 0);
    cr_assert_eq(method, KSEG_INIT_KMEANS_PARALLEL);
    cr_assert_eq(kseg_init_method_parse("k-means|", &method), KSEG_EINVAL);
    cr_assert_str_eq(kseg_init_method_name(KSEG_INIT_KMEANS_PARALLEL), "k-means||");
}

Test(kmeans_parallel, bitwise_identical_for_1_2_and_3_threads)
{
    const size_t n = 70001, d = 5, k = 9;
    float *x = make_blobs(n, d, 7, 12.0, 42, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    double *weights = malloc(n * sizeof *weights);
    uint64_t state = 7;
    for (size_t i = 0; i < n; i++)
        weights[i] = 0.5 + uniform(&state);
    double base_centers[9 * 5], centers[9 * 5];
    for (int weighted = 0; weighted <= 1; weighted++) {
        kseg_kmeans_options o;
        kseg_kmeans_options_defaults(&o);
        o.n_clusters = (int64_t)k;
        o.seed = 3;
        o.init = KSEG_INIT_KMEANS_PARALLEL;
        o.n_init = 2;
        o.sample_weight = weighted ? weights : NULL;
        o.n_threads = 1;
        kseg_kmeans_result base;
        fit_or_fail(&m, &o, &base);
        initial_or_fail(&m, &o, base_centers);
        for (int threads = 2; threads <= 3; threads++) {
            char what[64];
            snprintf(what, sizeof what, "%d threads, weighted %d", threads, weighted);
            o.n_threads = threads;
            kseg_kmeans_result other;
            fit_or_fail(&m, &o, &other);
            assert_bitwise_equal(&base, &other, what);
            kseg_kmeans_result_destroy(&other);
            initial_or_fail(&m, &o, centers);
            cr_assert(memcmp(base_centers, centers, sizeof centers) == 0,
                      "%s: initial centers differ", what);
        }
        kseg_kmeans_result_destroy(&base);
    }
    free(weights);
    free(x);
}

/* Without a kernel name Lloyd may assign with an expanded-form kernel while the bound algorithms
   take a direct one; k-means||'s draws must not follow that choice, or the same seed would start
   the algorithms from different centers. */
Test(kmeans_parallel, initial_centers_do_not_depend_on_the_algorithm)
{
    const size_t n = 40000, d = 8, k = 16;
    float *x = make_blobs(n, d, 12, 6.0, 5, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    double lloyd_centers[16 * 8], centers[16 * 8];
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.seed = 11;
    o.init = KSEG_INIT_KMEANS_PARALLEL;
    initial_or_fail(&m, &o, lloyd_centers);
    const kseg_kmeans_algorithm others[] = {KSEG_ALGORITHM_HAMERLY, KSEG_ALGORITHM_ELKAN,
                                            KSEG_ALGORITHM_YINYANG, KSEG_ALGORITHM_MINIBATCH,
                                            KSEG_ALGORITHM_AUTO};
    for (size_t a = 0; a < sizeof others / sizeof others[0]; a++) {
        o.algorithm = others[a];
        initial_or_fail(&m, &o, centers);
        cr_assert(memcmp(lloyd_centers, centers, sizeof centers) == 0,
                  "%s starts from other centers than lloyd", kseg_kmeans_algorithm_name(others[a]));
    }
    free(x);
}

Test(kmeans_parallel, centers_are_distinct_rows_of_positive_weight)
{
    const size_t n = 20000, d = 3, k = 16;
    float *x = make_blobs(n, d, 10, 20.0, 5, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    /* Every third row weighs nothing: it must never be a center. Zero weights on whole blobs'
       worth of rows would also hide them from the D^2 draws. */
    double *weights = malloc(n * sizeof *weights);
    for (size_t i = 0; i < n; i++)
        weights[i] = i % 3 == 0 ? 0.0 : 1.0 + (double)(i % 5);
    double centers[16 * 3];
    for (uint64_t seed = 0; seed < 6; seed++)
        for (int weighted = 0; weighted <= 1; weighted++) {
            kseg_kmeans_options o;
            kseg_kmeans_options_defaults(&o);
            o.n_clusters = (int64_t)k;
            o.seed = seed;
            o.init = KSEG_INIT_KMEANS_PARALLEL;
            o.sample_weight = weighted ? weights : NULL;
            o.init_rounds = 1 + (int32_t)seed % 5;
            initial_or_fail(&m, &o, centers);
            for (size_t c = 0; c < k; c++) {
                size_t row = SIZE_MAX;
                for (size_t i = 0; i < n && row == SIZE_MAX; i++)
                    if (distance_to_row(centers + c * d, x + i * d, d) == 0)
                        row = i;
                cr_assert_neq(row, SIZE_MAX, "seed %llu: center %zu is not a data row",
                              (unsigned long long)seed, c);
                if (weighted)
                    cr_assert_gt(weights[row], 0.0,
                                 "seed %llu: center %zu is row %zu, of zero weight",
                                 (unsigned long long)seed, c, row);
                for (size_t other = 0; other < c; other++)
                    cr_assert(memcmp(centers + c * d, centers + other * d, d * sizeof *centers),
                              "seed %llu: centers %zu and %zu coincide",
                              (unsigned long long)seed, other, c);
            }
        }
    free(weights);
    free(x);
}

Test(kmeans_parallel, finds_every_separated_blob_like_kmeans_plusplus, .timeout = 120)
{
    const size_t n = 54000, d = 3, blobs = 27;
    int32_t *truth = malloc(n * sizeof *truth);
    float *x = make_separated_blobs(n, d, blobs, 12.0, 11, truth);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    double plusplus_initial = 0, parallel_initial = 0;
    double centers[27 * 3];
    for (uint64_t seed = 0; seed < 5; seed++) {
        kseg_kmeans_options o;
        kseg_kmeans_options_defaults(&o);
        o.n_clusters = (int64_t)blobs;
        o.seed = seed;
        o.init = KSEG_INIT_KMEANS_PARALLEL;
        /* Every blob gets one initial center: the initial inertia is close to the truth's. */
        initial_or_fail(&m, &o, centers);
        parallel_initial += inertia_of(x, NULL, n, d, centers, blobs);
        kseg_kmeans_result r;
        fit_or_fail(&m, &o, &r);
        double ari = adjusted_rand(truth, r.labels, n, blobs, blobs);
        cr_assert_gt(ari, 0.9999, "seed %llu: ARI %.6f, a blob was split or merged",
                     (unsigned long long)seed, ari);
        kseg_kmeans_result_destroy(&r);
        o.init = KSEG_INIT_KMEANS_PLUSPLUS;
        initial_or_fail(&m, &o, centers);
        plusplus_initial += inertia_of(x, NULL, n, d, centers, blobs);
    }
    /* The same quality of start as k-means++ (here within a factor 1.5 on average over seeds;
       Bahmani et al. report k-means|| at or below k-means++). */
    cr_assert_lt(parallel_initial, 1.5 * plusplus_initial,
                 "k-means|| initial inertia %g vs k-means++ %g", parallel_initial / 5,
                 plusplus_initial / 5);
    free(truth);
    free(x);
}

Test(kmeans_parallel, fewer_distinct_rows_than_k_repeat_centers_with_a_warning)
{
    /* Three distinct rows, k = 5: the centers must repeat, as with k-means++. */
    float x[12] = {0, 0, 5, 5, 9, 1, 0, 0, 5, 5, 9, 1};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 5;
    o.init = KSEG_INIT_KMEANS_PARALLEL;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert(r.warnings & KSEG_WARN_FEWER_DISTINCT_ROWS);
    cr_assert_eq(r.inertia, 0.0);
    kseg_kmeans_result_destroy(&r);
}

Test(kmeans_parallel, too_few_candidates_fall_back_to_kmeans_plusplus)
{
    /* An oversampling so small that no round draws anything leaves one candidate for k = 6:
       the rows' own k-means++ decides, bitwise as if it had been asked for. */
    const size_t n = 5000, d = 2, k = 6;
    float *x = make_blobs(n, d, 6, 20.0, 2, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.init = KSEG_INIT_KMEANS_PARALLEL;
    o.oversampling = 1e-12;
    double parallel[6 * 2], plusplus[6 * 2];
    initial_or_fail(&m, &o, parallel);
    o.init = KSEG_INIT_KMEANS_PLUSPLUS;
    initial_or_fail(&m, &o, plusplus);
    cr_assert(memcmp(parallel, plusplus, sizeof parallel) == 0);
    free(x);
}

Test(kmeans_parallel, invalid_options_are_refused)
{
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 2;
    o.init = KSEG_INIT_KMEANS_PARALLEL;
    o.oversampling = -1;
    cr_assert_eq(fit_code(&m, &o, "oversampling"), KSEG_EINVAL);
    o.oversampling = NAN;
    cr_assert_eq(fit_code(&m, &o, "oversampling"), KSEG_EINVAL);
    o.oversampling = INFINITY;
    cr_assert_eq(fit_code(&m, &o, "oversampling"), KSEG_EINVAL);
    o.oversampling = 0;
    o.init_rounds = 0;
    cr_assert_eq(fit_code(&m, &o, "init_rounds must be at least 1, got 0"), KSEG_EINVAL);
    o.init_rounds = 5;
    o.init = (kseg_init_method)7;
    cr_assert_eq(fit_code(&m, &o, "unknown init method 7"), KSEG_EINVAL);
}

/* ------------------------------------------------------------------ mini-batch */

Test(minibatch, names_parse)
{
    kseg_kmeans_algorithm algorithm;
    cr_assert_eq(kseg_kmeans_algorithm_parse("minibatch", &algorithm), 0);
    cr_assert_eq(algorithm, KSEG_ALGORITHM_MINIBATCH);
    cr_assert_str_eq(kseg_kmeans_algorithm_name(KSEG_ALGORITHM_MINIBATCH), "minibatch");
}

Test(minibatch, invalid_options_are_refused)
{
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    kseg_matrix m = view(x, KSEG_FLOAT32, 6, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 2;
    o.algorithm = KSEG_ALGORITHM_MINIBATCH;
    o.batch_size = 0;
    cr_assert_eq(fit_code(&m, &o, "batch_size must be at least 1, got 0"), KSEG_EINVAL);
    o.batch_size = -5;
    cr_assert_eq(fit_code(&m, &o, "batch_size"), KSEG_EINVAL);
    o.batch_size = 1024;
    o.max_no_improvement = -1;
    cr_assert_eq(fit_code(&m, &o, "max_no_improvement"), KSEG_EINVAL);
}

Test(minibatch, bitwise_identical_for_1_2_and_3_threads, .timeout = 120)
{
    const size_t n = 70001, d = 5;
    float *x = make_blobs(n, d, 7, 12.0, 42, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    double *weights = malloc(n * sizeof *weights);
    uint64_t state = 9;
    for (size_t i = 0; i < n; i++)
        weights[i] = i % 7 == 0 ? 0.0 : 0.5 + uniform(&state);
    for (int weighted = 0; weighted <= 1; weighted++)
        for (int batch = 0; batch <= 1; batch++) {
            kseg_kmeans_options o;
            kseg_kmeans_options_defaults(&o);
            o.n_clusters = 9;
            o.seed = 4;
            o.algorithm = KSEG_ALGORITHM_MINIBATCH;
            /* 1024 rows: four chunks shared by the threads; 3000: twelve, the last partial. */
            o.batch_size = batch ? 3000 : 1024;
            o.n_init = 2;
            o.sample_weight = weighted ? weights : NULL;
            o.n_threads = 1;
            kseg_kmeans_result base;
            fit_or_fail(&m, &o, &base);
            cr_assert_str_eq(base.algorithm, "minibatch");
            for (int threads = 2; threads <= 3; threads++) {
                char what[80];
                snprintf(what, sizeof what, "%d threads, weighted %d, batch %lld", threads,
                         weighted, (long long)o.batch_size);
                o.n_threads = threads;
                kseg_kmeans_result other;
                fit_or_fail(&m, &o, &other);
                assert_bitwise_equal(&base, &other, what);
                kseg_kmeans_result_destroy(&other);
            }
            kseg_kmeans_result_destroy(&base);
        }
    free(weights);
    free(x);
}

/* Mini-batch from the same start as Lloyd: on separated blobs the same partition, the inertia
 * within a few percent, and labels that are exactly the final centers' nearest. */
static void compare_with_lloyd(const float *x, const double *weights, size_t n, size_t d,
                               size_t k, const int32_t *truth, double inertia_tolerance)
{
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.seed = 1;
    o.sample_weight = weights;
    kseg_kmeans_result lloyd, minibatch;
    fit_or_fail(&m, &o, &lloyd);
    o.algorithm = KSEG_ALGORITHM_MINIBATCH;
    fit_or_fail(&m, &o, &minibatch);
    if (truth) {
        double ari = adjusted_rand(lloyd.labels, minibatch.labels, n, k, k);
        cr_assert_gt(ari, 0.999, "ARI between mini-batch and Lloyd %.6f", ari);
    }
    cr_assert_leq(minibatch.inertia, lloyd.inertia * (1 + inertia_tolerance),
                  "mini-batch inertia %.9g vs Lloyd %.9g", minibatch.inertia, lloyd.inertia);
    /* The final pass: labels are the nearest centers and the inertia is theirs. */
    int32_t *labels = malloc(n * sizeof *labels);
    kseg_error e;
    kseg_error_clear(&e);
    cr_assert_eq(kseg_kmeans_predict_with(&m, minibatch.centroids, k, minibatch.feature_mean,
                                          minibatch.kernel, 1, labels, NULL, &e),
                 0, "%s", e.message);
    cr_assert(memcmp(labels, minibatch.labels, n * sizeof *labels) == 0,
              "labels are not the final centers' nearest");
    double inertia;
    cr_assert_eq(kseg_kmeans_inertia(&m, minibatch.centroids, k, minibatch.labels, weights,
                                     &inertia, &e),
                 0);
    cr_assert_lt(fabs(inertia - minibatch.inertia), 1e-5 * inertia,
                 "inertia %.9g is not the full data's %.9g", minibatch.inertia, inertia);
    cr_assert(minibatch.n_iter >= 1 && minibatch.n_iter <= o.max_iter);
    free(labels);
    kseg_kmeans_result_destroy(&lloyd);
    kseg_kmeans_result_destroy(&minibatch);
}

Test(minibatch, same_partition_as_lloyd_on_separated_blobs, .timeout = 120)
{
    const size_t n = 60000, d = 4, k = 9;
    int32_t *truth = malloc(n * sizeof *truth);
    float *x = make_separated_blobs(n, d, k, 12.0, 3, truth);
    compare_with_lloyd(x, NULL, n, d, k, truth, 0.01);
    double *weights = malloc(n * sizeof *weights);
    for (size_t i = 0; i < n; i++)
        weights[i] = i % 4 == 0 ? 0.0 : 1.0 + (double)(i % 3);
    compare_with_lloyd(x, weights, n, d, k, truth, 0.01);
    free(weights);
    free(truth);
    free(x);
}

Test(minibatch, inertia_within_a_few_percent_of_lloyd_on_overlapping_data, .timeout = 120)
{
    /* Overlapping blobs: no clean partition, but the objective must stay close. */
    const size_t n = 80000, d = 6, k = 12;
    float *x = make_blobs(n, d, 20, 6.0, 17, NULL);
    compare_with_lloyd(x, NULL, n, d, k, NULL, 0.03);
    free(x);
}

Test(minibatch, early_stop_and_epoch_statistics)
{
    const size_t n = 30000, d = 3, k = 5;
    float *x = make_separated_blobs(n, d, k, 12.0, 8, NULL);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)k;
    o.algorithm = KSEG_ALGORITHM_MINIBATCH;
    o.batch_size = 1000;
    /* Without early stop every epoch runs: max_iter epochs of n / batch_size steps. */
    o.max_no_improvement = 0;
    o.max_iter = 3;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.n_iter, 3);
    cr_assert_eq(r.convergence, KSEG_CONVERGED_NONE);
    /* The epochs asked for ran: that is not a failure to converge. */
    cr_assert_eq(r.warnings & KSEG_WARN_NOT_CONVERGED, 0u);
    for (int32_t i = 0; i < 3; i++) {
        cr_assert_eq(r.iterations[i].iteration, i + 1);
        cr_assert_eq(r.iterations[i].distances_computed, (int64_t)(30 * 1000 * k));
        /* The epoch's estimate of the inertia is near the final one on easy data. */
        cr_assert_lt(fabs(r.iterations[i].objective - r.inertia), 0.2 * r.inertia);
    }
    kseg_kmeans_result_destroy(&r);
    /* With the default (10 batches without improvement) the run stops long before 300 epochs. */
    o.max_no_improvement = 10;
    o.max_iter = 300;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.convergence, KSEG_CONVERGED_NO_IMPROVEMENT);
    cr_assert_lt(r.n_iter, 300);
    cr_assert_eq(r.warnings & KSEG_WARN_NOT_CONVERGED, 0u);
    cr_assert_geq(r.init_seconds, 0.0);
    kseg_kmeans_result_destroy(&r);
    free(x);
}

Test(minibatch, batch_larger_than_n_is_capped)
{
    /* A batch of every row (capped at n) with replacement, small data, float64. */
    double x[16] = {0, 0, 0, 1, 1, 0, 1, 1, 10, 10, 10, 11, 11, 10, 11, 11};
    kseg_matrix m = view(x, KSEG_FLOAT64, 8, 2);
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = 2;
    o.algorithm = KSEG_ALGORITHM_MINIBATCH;
    o.batch_size = 1000000;
    kseg_kmeans_result r;
    fit_or_fail(&m, &o, &r);
    cr_assert_neq(r.labels[0], r.labels[4]);
    for (size_t i = 1; i < 4; i++) {
        cr_assert_eq(r.labels[i], r.labels[0]);
        cr_assert_eq(r.labels[4 + i], r.labels[4]);
    }
    kseg_kmeans_result_destroy(&r);
}

Test(minibatch, needs_no_per_row_bounds_memory)
{
    /* Mini-batch keeps no per-row state beyond Lloyd's labels: nothing is charged for it here
       (its batch buffers are added by the fit from batch_size), unlike Hamerly's n doubles. */
    cr_assert_eq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_MINIBATCH, 1000000, 8, 8), 0u);
    cr_assert_geq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_HAMERLY, 1000000, 8, 8),
                  1000000u * sizeof(double));
}
