/* ThreadSanitizer driver for k-means: fits with every assignment kernel this CPU offers (float32
 * and float64, with and without sample weights), k-means++, k-means||, random and given
 * initializations, mini-batch, the empty-cluster repair, the non-finite check, predict and the
 * bound algorithms (Hamerly, Elkan, Yinyang), at 1, 2 and 4 threads; the 2- and 4-thread
 * results must equal the 1-thread result bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kernels.h"
#include "kseg/kseg.h"
#include "tsan_driver.h"

/* Five row blocks, the last one partial: with 2 and 4 threads some threads own several blocks,
 * so the reduction stacks merge sub-trees as well as hand over single blocks. */
#define ROWS (5 * KSEG_BLOCK_ROWS - 1000)
#define COLS 5
#define CLUSTERS 6
#define MAX_KERNELS 16

typedef struct fit_case {
    const char *label;
    const void *data;
    kseg_dtype dtype;
    const char *kernel;
    const double *weights;
    kseg_init_method init;
    int32_t n_init;
    int32_t max_iter;
    const double *init_centers;
    kseg_kmeans_algorithm algorithm;
} fit_case;

static void fit(const fit_case *c, int threads, kseg_kmeans_result *result)
{
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = CLUSTERS;
    options.seed = 7;
    options.max_iter = c->max_iter;
    options.tol = 0; /* run every iteration the case allows: more passes, more interleavings */
    options.kernel = c->kernel;
    options.sample_weight = c->weights;
    options.init = c->init;
    options.n_init = c->n_init;
    options.init_centers = c->init_centers;
    options.algorithm = c->algorithm;
    /* Half the cases name the thread count, half leave it to the ICV set by tsan_set_threads. */
    options.n_threads = c->weights ? threads : 0;
    kseg_matrix data = {c->data, c->dtype, ROWS, COLS};
    kseg_error error = {0};
    tsan_set_threads(threads);
    TSAN_OK(kseg_kmeans_fit(&data, &options, result, &error), &error);
}

/* The fit at 1, 2 and 4 threads, compared field by field; then predict with the fit's centering
 * and kernel must give the fit's labels, again at every thread count. Returns the empty-cluster
 * repairs of the 1-thread fit. */
static int64_t check_fit(const fit_case *c)
{
    kseg_kmeans_result reference;
    int64_t repairs = 0;
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        kseg_kmeans_result result;
        fit(c, threads, &result);
        if (t == 0) {
            reference = result;
            repairs = result.total_empty_repairs;
        } else {
            size_t k = result.n_clusters, d = result.n_features;
            TSAN_CHECK(k == reference.n_clusters && d == reference.n_features &&
                           result.n_iter == reference.n_iter,
                       "%s: shape or iterations differ with %d threads", c->label, threads);
            TSAN_SAME(reference.centroids, result.centroids, k * d * sizeof(double), threads,
                      "%s: centroids", c->label);
            TSAN_SAME(reference.labels, result.labels, ROWS * sizeof(int32_t), threads,
                      "%s: labels", c->label);
            TSAN_SAME(&reference.inertia, &result.inertia, sizeof(double), threads,
                      "%s: inertia", c->label);
            TSAN_SAME(reference.feature_mean, result.feature_mean, d * sizeof(double), threads,
                      "%s: feature mean", c->label);
            TSAN_CHECK(result.total_empty_repairs == reference.total_empty_repairs &&
                           result.best_init == reference.best_init &&
                           strcmp(result.kernel, reference.kernel) == 0,
                       "%s: repairs, best run or kernel differ with %d threads", c->label,
                       threads);
            for (int32_t i = 0; i < result.n_iter && i < reference.n_iter; i++) {
                const kseg_iteration_stats *a = &reference.iterations[i];
                const kseg_iteration_stats *b = &result.iterations[i];
                TSAN_CHECK(memcmp(&a->objective, &b->objective, sizeof a->objective) == 0 &&
                               memcmp(&a->center_shift, &b->center_shift,
                                      sizeof a->center_shift) == 0 &&
                               a->changed_labels == b->changed_labels &&
                               a->empty_repairs == b->empty_repairs,
                           "%s: statistics of iteration %d differ with %d threads", c->label,
                           (int)i + 1, threads);
            }
        }

        /* Predict with the fit's shift and kernel: the training rows get the fit's labels. */
        int32_t *labels = malloc(ROWS * sizeof *labels);
        double *distances = malloc(ROWS * sizeof *distances);
        kseg_matrix data = {c->data, c->dtype, ROWS, COLS};
        kseg_error error = {0};
        TSAN_OK(kseg_kmeans_predict_with(&data, reference.centroids, CLUSTERS,
                                         reference.feature_mean, reference.kernel, 0, labels,
                                         distances, &error),
                &error);
        TSAN_SAME(reference.labels, labels, ROWS * sizeof *labels, threads,
                  "%s: predict labels", c->label);
        free(labels);
        free(distances);
        if (t > 0)
            kseg_kmeans_result_destroy(&result);
    }
    kseg_kmeans_result_destroy(&reference);
    printf("%s: %s identical at 1, 2 and 4 threads\n", tsan_driver_name, c->label);
    return repairs;
}

/* A NaN in the last block: the parallel check must name the same row and column whatever the
 * thread count. */
static void check_nonfinite(const float *rows)
{
    float *bad = malloc((size_t)ROWS * COLS * sizeof *bad);
    memcpy(bad, rows, (size_t)ROWS * COLS * sizeof *bad);
    bad[(size_t)(ROWS - 17) * COLS + 3] = NAN;
    bad[(size_t)(ROWS - 5) * COLS + 1] = INFINITY;
    kseg_matrix data = {bad, KSEG_FLOAT32, ROWS, COLS};
    char reference[KSEG_ERROR_MESSAGE_MAX] = "";
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        kseg_kmeans_options options;
        kseg_kmeans_options_defaults(&options);
        options.n_clusters = CLUSTERS;
        tsan_set_threads(tsan_thread_counts[t]);
        kseg_kmeans_result result;
        kseg_error error = {0};
        int status = kseg_kmeans_fit(&data, &options, &result, &error);
        TSAN_CHECK(status == KSEG_ENONFINITE, "non-finite data: status %d", status);
        if (t == 0)
            snprintf(reference, sizeof reference, "%s", error.message);
        else
            TSAN_CHECK(strcmp(reference, error.message) == 0,
                       "non-finite data: '%s' with 1 thread, '%s' with %d", reference,
                       error.message, tsan_thread_counts[t]);
    }
    free(bad);
    printf("%s: non-finite check identical at 1, 2 and 4 threads\n", tsan_driver_name);
}

int main(void)
{
    tsan_start("tsan_kmeans");
    float *rows32 = malloc((size_t)ROWS * COLS * sizeof *rows32);
    double *rows64 = malloc((size_t)ROWS * COLS * sizeof *rows64);
    double *weights = malloc(ROWS * sizeof *weights);
    kseg_error error = {0};
    TSAN_OK(kseg_generate_blobs(11, ROWS, COLS, CLUSTERS, 10.0, 1.5, rows32, NULL, &error),
            &error);
    uint64_t state = 3;
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
        rows64[i] = (double)rows32[i] + 1e-3 * tsan_uniform(&state);
    /* Some zero weights: such rows are never drawn and never repair a cluster. */
    for (size_t i = 0; i < ROWS; i++)
        weights[i] = i % 97 == 0 ? 0.0 : 0.25 + tsan_uniform(&state);

    /* Every kernel of the dispatch table this CPU runs, for both element types. */
    for (int dt = 0; dt < 2; dt++) {
        kseg_dtype dtype = dt == 0 ? KSEG_FLOAT32 : KSEG_FLOAT64;
        const kseg_assign_kernel *kernels[MAX_KERNELS];
        size_t count = kseg_assign_kernel_list(dtype, kernels, MAX_KERNELS);
        TSAN_CHECK(count >= 1, "no kernel for dtype %d", (int)dtype);
        for (size_t i = 0; i < count; i++)
            for (int weighted = 0; weighted < 2; weighted++) {
                char label[96];
                snprintf(label, sizeof label, "k-means++ fit, kernel %s, %s%s", kernels[i]->name,
                         dt == 0 ? "float32" : "float64", weighted ? ", weighted" : "");
                fit_case c = {label, dt == 0 ? (const void *)rows32 : (const void *)rows64,
                              dtype, kernels[i]->name, weighted ? weights : NULL,
                              KSEG_INIT_KMEANS_PLUSPLUS, 1, 6, NULL, KSEG_ALGORITHM_LLOYD};
                check_fit(&c);
            }
    }

    /* The bound algorithms' passes (engine/kmeans_bounds.c: Hamerly, Elkan, Yinyang) run inside
       the same block reduction with per-row bounds and per-thread scratch shared across
       iterations: with the scalar reference kernel and a vectorized one, weighted, over several
       iterations. */
    const char *const bound_kernels[] = {"reference", NULL};
    const kseg_kmeans_algorithm bound_algorithms[] = {
        KSEG_ALGORITHM_HAMERLY, KSEG_ALGORITHM_ELKAN, KSEG_ALGORITHM_YINYANG};
    for (int a = 0; a < 3; a++)
        for (int h = 0; h < 2; h++) {
            char label[96];
            snprintf(label, sizeof label, "%s, kernel %s, float%s, weighted",
                     kseg_kmeans_algorithm_name(bound_algorithms[a]),
                     bound_kernels[h] ? bound_kernels[h] : "auto", h ? "64" : "32");
            fit_case c = {label, h ? (const void *)rows64 : (const void *)rows32,
                          h ? KSEG_FLOAT64 : KSEG_FLOAT32, bound_kernels[h], weights,
                          KSEG_INIT_KMEANS_PLUSPLUS, 1, 8, NULL, bound_algorithms[a]};
            check_fit(&c);
        }

    /* Random initialization, several runs (the best is kept), automatic kernel. */
    fit_case random = {"random init x3, automatic kernel", rows32, KSEG_FLOAT32, NULL, weights,
                       KSEG_INIT_RANDOM, 3, 4, NULL, KSEG_ALGORITHM_LLOYD};
    check_fit(&random);

    /* k-means|| (its distance updates and independent draws, engine/kmeans_init.c) with
       weights, through the vectorized kernel and the reference one. */
    for (int h = 0; h < 2; h++) {
        fit_case c = {h ? "k-means||, reference kernel, float64" : "k-means||, weighted",
                      h ? (const void *)rows64 : (const void *)rows32,
                      h ? KSEG_FLOAT64 : KSEG_FLOAT32, h ? "reference" : NULL,
                      h ? NULL : weights, KSEG_INIT_KMEANS_PARALLEL, 1, 3, NULL,
                      KSEG_ALGORITHM_LLOYD};
        check_fit(&c);
    }

    /* Mini-batch (engine/kmeans_minibatch.c): batches of 1024 rows in four chunks shared by the
       threads, weighted, after k-means||. */
    fit_case minibatch = {"mini-batch, weighted", rows32, KSEG_FLOAT32, NULL, weights,
                          KSEG_INIT_KMEANS_PARALLEL, 1, 2, NULL, KSEG_ALGORITHM_MINIBATCH};
    check_fit(&minibatch);

    /* Given centers, two of them far from every row: the first assignment leaves them empty and
       the repair re-seeds them with the farthest rows. */
    double centers[CLUSTERS * COLS];
    for (size_t c = 0; c < CLUSTERS; c++)
        for (size_t j = 0; j < COLS; j++)
            centers[c * COLS + j] =
                c >= CLUSTERS - 2 ? 1e4 * (double)(c + 1) : rows64[c * 997 * COLS + j];
    fit_case given = {"given init with empty clusters", rows64, KSEG_FLOAT64, NULL, NULL,
                      KSEG_INIT_GIVEN, 1, 5, centers, KSEG_ALGORITHM_LLOYD};
    int64_t repairs = check_fit(&given);
    TSAN_CHECK(repairs > 0,
               "the empty-cluster case made no repair (the repair region did not run)");

    check_nonfinite(rows32);
    free(rows32);
    free(rows64);
    free(weights);
    return tsan_finish();
}
