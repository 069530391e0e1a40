/* ThreadSanitizer driver for the customer-level steps: the customer and blob generators, prepare
 * (fit with clipping, log1p and each scaling, apply, inverse, and the parallel checks that name
 * the first bad value) and the three cluster metrics (sampled and exact silhouette,
 * Calinski-Harabasz, Davies-Bouldin), at 1, 2 and 4 threads; every result must equal the
 * 1-thread one bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/kseg.h"
#include "tsan_driver.h"

#define ROWS 30000
#define MAX_FEATURES 16

/* The generated customers (float32, as the generator writes them) and their latent segments. */
typedef struct population {
    size_t d;
    float *features;
    int64_t *ids;
    int32_t *truth;
} population;

static void generate(population *p, int threads)
{
    kseg_customer_options options;
    kseg_customer_options_defaults(&options);
    options.seed = 9;
    p->d = kseg_customer_feature_count();
    p->features = malloc(ROWS * p->d * sizeof *p->features);
    p->ids = malloc(ROWS * sizeof *p->ids);
    p->truth = malloc(ROWS * sizeof *p->truth);
    kseg_error error = {0};
    tsan_set_threads(threads);
    /* Both ways of choosing the thread count: the argument, and the ICV (argument 0). */
    TSAN_OK(kseg_generate_customers(&options, 1000, ROWS, p->features, p->ids, p->truth,
                                    threads == 2 ? 2 : 0, &error),
            &error);
}

static void population_free(population *p)
{
    free(p->features);
    free(p->ids);
    free(p->truth);
}

static void check_generators(population *reference)
{
    generate(reference, 1);
    const size_t blob_rows = 20000, blob_cols = 3;
    float *blobs = malloc(blob_rows * blob_cols * sizeof *blobs);
    float *first_blobs = malloc(blob_rows * blob_cols * sizeof *blobs);
    int32_t *blob_truth = malloc(blob_rows * sizeof *blob_truth);
    int32_t *first_truth = malloc(blob_rows * sizeof *blob_truth);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        if (t > 0) {
            population p;
            generate(&p, threads);
            TSAN_SAME(reference->features, p.features, ROWS * p.d * sizeof(float), threads,
                      "customer features");
            TSAN_SAME(reference->ids, p.ids, ROWS * sizeof(int64_t), threads, "customer ids");
            TSAN_SAME(reference->truth, p.truth, ROWS * sizeof(int32_t), threads,
                      "customer segments");
            population_free(&p);
        }
        kseg_error error = {0};
        tsan_set_threads(threads);
        TSAN_OK(kseg_generate_blob_rows(4, 77, blob_rows, blob_cols, 5, 8.0, 1.0,
                                        t == 0 ? first_blobs : blobs,
                                        t == 0 ? first_truth : blob_truth, &error),
                &error);
        if (t > 0) {
            TSAN_SAME(first_blobs, blobs, blob_rows * blob_cols * sizeof *blobs, threads,
                      "blob rows");
            TSAN_SAME(first_truth, blob_truth, blob_rows * sizeof *blob_truth, threads,
                      "blob truth");
        }
    }
    free(blobs);
    free(first_blobs);
    free(blob_truth);
    free(first_truth);
    printf("%s: customer and blob generators identical at 1, 2 and 4 threads\n",
           tsan_driver_name);
}

/* ---------------------------------------------------------------- prepare */

typedef struct prepared {
    kseg_prepare_model model;
    double *out;     /* apply */
    double *inverse; /* inverse of the first 500 prepared rows */
} prepared;

static void prepare(const double *data, size_t d, const kseg_prepare_options *options,
                    int threads, prepared *result)
{
    kseg_error error = {0};
    tsan_set_threads(threads);
    TSAN_OK(kseg_prepare_fit(data, ROWS, d, options, NULL, 0, &result->model, &error), &error);
    result->out = malloc(ROWS * d * sizeof *result->out);
    result->inverse = malloc(500 * d * sizeof *result->inverse);
    /* Apply with the count as an argument, unlike the fit: both ways are covered. */
    TSAN_OK(kseg_prepare_apply(&result->model, data, ROWS, NULL, threads, result->out, &error),
            &error);
    kseg_prepare_inverse(&result->model, result->out, 500, result->inverse);
}

static void prepared_free(prepared *result)
{
    kseg_prepare_model_destroy(&result->model);
    free(result->out);
    free(result->inverse);
}

static void check_prepare(const double *data, size_t d)
{
    kseg_feature_spec specs[MAX_FEATURES];
    for (size_t j = 0; j < d; j++) {
        kseg_feature_spec_defaults(&specs[j]);
        /* Spend-like columns (frequency, monetary, avg_basket) get log1p, others clips. */
        if (j == 1 || j == 2 || j == 4)
            specs[j].transform = KSEG_TRANSFORM_LOG1P;
        if (j == 0 || j == 2)
            specs[j].clip_high = 0.99;
        if (j == 3)
            specs[j].clip_low = 0.02;
        specs[j].weight = j == 7 ? 0.5 : 1.0;
    }
    const kseg_scaling scalings[3] = {KSEG_SCALING_STANDARD, KSEG_SCALING_ROBUST,
                                      KSEG_SCALING_NONE};
    for (int s = 0; s < 3; s++) {
        kseg_prepare_options options;
        kseg_prepare_options_defaults(&options);
        options.scaling = scalings[s];
        options.specs = specs;
        prepared reference;
        prepare(data, d, &options, 1, &reference);
        for (int t = 1; t < TSAN_THREAD_COUNTS; t++) {
            int threads = tsan_thread_counts[t];
            prepared result;
            prepare(data, d, &options, threads, &result);
            const char *name = kseg_scaling_name(scalings[s]);
            TSAN_SAME(reference.model.clip_low, result.model.clip_low, d * sizeof(double),
                      threads, "%s: clip low", name);
            TSAN_SAME(reference.model.clip_high, result.model.clip_high, d * sizeof(double),
                      threads, "%s: clip high", name);
            TSAN_SAME(reference.model.center, result.model.center, d * sizeof(double), threads,
                      "%s: center", name);
            TSAN_SAME(reference.model.scale, result.model.scale, d * sizeof(double), threads,
                      "%s: scale", name);
            TSAN_SAME(reference.out, result.out, ROWS * d * sizeof(double), threads,
                      "%s: applied", name);
            TSAN_SAME(reference.inverse, result.inverse, 500 * d * sizeof(double), threads,
                      "%s: inverse", name);
            prepared_free(&result);
        }
        prepared_free(&reference);
    }

    /* A NaN and a log1p argument below -1 late in the data: fit and apply must name the same
       first bad value at every thread count (a per-thread minimum reduced over the team). */
    double *bad = malloc(ROWS * d * sizeof *bad);
    memcpy(bad, data, ROWS * d * sizeof *bad);
    bad[(ROWS - 900) * d + 5] = NAN;
    bad[(ROWS - 7000) * d + 1] = -3.0;
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    options.specs = specs;
    prepared fitted;
    prepare(data, d, &options, 1, &fitted);
    char fit_reference[KSEG_ERROR_MESSAGE_MAX] = "", apply_reference[KSEG_ERROR_MESSAGE_MAX] = "";
    double *out = malloc(ROWS * d * sizeof *out);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        kseg_prepare_model model;
        kseg_error fit_error = {0}, apply_error = {0};
        tsan_set_threads(threads);
        int fit_status = kseg_prepare_fit(bad, ROWS, d, &options, NULL, 0, &model, &fit_error);
        int apply_status = kseg_prepare_apply(&fitted.model, bad, ROWS, NULL, 0, out,
                                              &apply_error);
        TSAN_CHECK(fit_status == KSEG_ENONFINITE && apply_status == KSEG_EINVAL,
                   "bad values: fit %d, apply %d", fit_status, apply_status);
        if (t == 0) {
            snprintf(fit_reference, sizeof fit_reference, "%s", fit_error.message);
            snprintf(apply_reference, sizeof apply_reference, "%s", apply_error.message);
        } else {
            TSAN_CHECK(strcmp(fit_reference, fit_error.message) == 0 &&
                           strcmp(apply_reference, apply_error.message) == 0,
                       "bad values: messages differ with %d threads: '%s' / '%s'", threads,
                       fit_error.message, apply_error.message);
        }
    }
    free(out);
    free(bad);
    prepared_free(&fitted);
    printf("%s: prepare (standard, robust, none; bad values) identical at 1, 2 and 4 threads\n",
           tsan_driver_name);
}

/* ---------------------------------------------------------------- metrics */

typedef struct scores {
    double silhouette_sampled, silhouette_exact, calinski, davies;
    int64_t sample[1500];
} scores;

static void metrics(const double *data, size_t d, const int32_t *labels, int threads,
                    scores *out)
{
    kseg_matrix matrix = {data, KSEG_FLOAT64, ROWS, d};
    /* The exact silhouette is quadratic: on the first 1200 rows only. */
    kseg_matrix head = {data, KSEG_FLOAT64, 1200, d};
    kseg_error error = {0};
    tsan_set_threads(threads);
    TSAN_OK(kseg_silhouette_score(&matrix, labels, 6, 1500, 31, 0, &out->silhouette_sampled,
                                  out->sample, &error),
            &error);
    TSAN_OK(kseg_silhouette_score(&head, labels, 6, 0, 31, threads, &out->silhouette_exact, NULL,
                                  &error),
            &error);
    TSAN_OK(kseg_calinski_harabasz_score(&matrix, labels, 6, 0, &out->calinski, &error), &error);
    TSAN_OK(kseg_davies_bouldin_score(&matrix, labels, 6, threads, &out->davies, &error), &error);
}

static void check_metrics(const double *data, size_t d, const int32_t *labels)
{
    scores reference, result;
    metrics(data, d, labels, 1, &reference);
    for (int t = 1; t < TSAN_THREAD_COUNTS; t++) {
        int threads = tsan_thread_counts[t];
        metrics(data, d, labels, threads, &result);
        TSAN_SAME(reference.sample, result.sample, sizeof result.sample, threads,
                  "silhouette sample");
        TSAN_SAME(&reference.silhouette_sampled, &result.silhouette_sampled, sizeof(double),
                  threads, "sampled silhouette");
        TSAN_SAME(&reference.silhouette_exact, &result.silhouette_exact, sizeof(double),
                  threads, "exact silhouette");
        TSAN_SAME(&reference.calinski, &result.calinski, sizeof(double), threads,
                  "Calinski-Harabasz");
        TSAN_SAME(&reference.davies, &result.davies, sizeof(double), threads, "Davies-Bouldin");
    }

    /* A label out of range and a NaN: the parallel validation names the first of each. */
    int32_t *bad_labels = malloc(ROWS * sizeof *bad_labels);
    memcpy(bad_labels, labels, ROWS * sizeof *bad_labels);
    bad_labels[ROWS - 3000] = 6;
    bad_labels[ROWS - 10] = -1;
    char reference_message[KSEG_ERROR_MESSAGE_MAX] = "";
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        kseg_matrix matrix = {data, KSEG_FLOAT64, ROWS, d};
        kseg_error error = {0};
        double score;
        tsan_set_threads(tsan_thread_counts[t]);
        int status = kseg_calinski_harabasz_score(&matrix, bad_labels, 6, 0, &score, &error);
        TSAN_CHECK(status == KSEG_EINVAL, "bad label: status %d", status);
        if (t == 0)
            snprintf(reference_message, sizeof reference_message, "%s", error.message);
        else
            TSAN_CHECK(strcmp(reference_message, error.message) == 0,
                       "bad label: '%s' with %d threads, '%s' with 1", error.message,
                       tsan_thread_counts[t], reference_message);
    }
    free(bad_labels);
    printf("%s: silhouette (sampled, exact), Calinski-Harabasz, Davies-Bouldin identical at 1, 2 "
           "and 4 threads\n",
           tsan_driver_name);
}

int main(void)
{
    tsan_start("tsan_prepare");
    population customers;
    check_generators(&customers);
    size_t d = customers.d;
    if (d > MAX_FEATURES) {
        fprintf(stderr, "%s: %zu features exceed %d\n", tsan_driver_name, d, MAX_FEATURES);
        return 1;
    }
    double *data = malloc(ROWS * d * sizeof *data);
    for (size_t i = 0; i < ROWS * d; i++)
        data[i] = customers.features[i];
    check_prepare(data, d);

    /* Metrics of the latent segments (6 by default) on the standardized features. */
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    prepared standardized;
    prepare(data, d, &options, 1, &standardized);
    check_metrics(standardized.out, d, customers.truth);
    prepared_free(&standardized);

    free(data);
    population_free(&customers);
    return tsan_finish();
}
