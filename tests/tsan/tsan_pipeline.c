/* ThreadSanitizer driver for the whole in-memory pipeline, kseg_segmentation_fit: prepare, a k
 * sweep with the three metrics per k, the final k-means, automatic naming, merging of small
 * segments and the evaluation of the scheme, at 1, 2 and 4 threads; every output must equal the
 * 1-thread one bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/kseg.h"
#include "tsan_driver.h"

#define ROWS 20000
#define FEATURES 4

static void segment(const double *features, const char *const *names, const double *value,
                    int threads, kseg_segmentation *result)
{
    kseg_feature_spec specs[FEATURES];
    for (size_t j = 0; j < FEATURES; j++)
        kseg_feature_spec_defaults(&specs[j]);
    specs[2].transform = KSEG_TRANSFORM_LOG1P; /* monetary */
    specs[2].clip_high = 0.995;
    kseg_segmentation_options options;
    kseg_segmentation_options_defaults(&options);
    options.prepare.specs = specs;
    options.kmeans.seed = 3;
    options.kmeans.max_iter = 20;
    options.kmeans.n_threads = threads == 4 ? 0 : threads; /* 4 through the ICV */
    options.k_min = 2;
    options.k_max = 5;
    options.k_rule = KSEG_K_RULE_SILHOUETTE;
    options.silhouette_sample = 1000;
    options.merge.min_customer_share = 0.08;
    options.scheme_name = "tsan";
    kseg_error error = {0};
    tsan_set_threads(threads);
    kseg_segmentation_init(result);
    TSAN_OK(kseg_segmentation_fit(features, ROWS, FEATURES, names, value, &options, result,
                                  &error),
            &error);
}

static void compare(const kseg_segmentation *a, const kseg_segmentation *b, int threads)
{
    size_t d = FEATURES, k = a->kmeans.n_clusters;
    TSAN_CHECK(a->chosen_k == b->chosen_k && k == b->kmeans.n_clusters &&
                   a->n_sweep == b->n_sweep && a->scheme.n_segments == b->scheme.n_segments &&
                   a->evaluation.n_segments == b->evaluation.n_segments &&
                   a->merge.n_records == b->merge.n_records,
               "k, sweep, segments or merges differ with %d threads", threads);
    if (k != b->kmeans.n_clusters || a->scheme.n_segments != b->scheme.n_segments ||
        a->evaluation.n_segments != b->evaluation.n_segments || a->n_sweep != b->n_sweep)
        return;
    TSAN_SAME(a->prepared, b->prepared, ROWS * d * sizeof(double), threads, "prepared features");
    TSAN_SAME(a->sweep, b->sweep, a->n_sweep * sizeof *a->sweep, threads, "k sweep");
    TSAN_SAME(a->kmeans.centroids, b->kmeans.centroids, k * d * sizeof(double), threads,
              "centroids");
    TSAN_SAME(a->kmeans.labels, b->kmeans.labels, ROWS * sizeof(int32_t), threads, "labels");
    TSAN_SAME(&a->kmeans.inertia, &b->kmeans.inertia, sizeof(double), threads, "inertia");
    TSAN_SAME(a->centroids_original, b->centroids_original, k * d * sizeof(double), threads,
              "centroids in original units");
    TSAN_SAME(a->cluster_segment, b->cluster_segment, k * sizeof(int32_t), threads,
              "cluster segments");
    TSAN_SAME(a->scheme.segment, b->scheme.segment, ROWS * sizeof(int32_t), threads,
              "scheme segments");
    for (size_t c = 0; c < k; c++)
        TSAN_CHECK(strcmp(a->cluster_names[c], b->cluster_names[c]) == 0,
                   "cluster %zu is '%s' with 1 thread, '%s' with %d", c, a->cluster_names[c],
                   b->cluster_names[c], threads);
    for (size_t s = 0; s < a->scheme.n_segments; s++)
        TSAN_CHECK(strcmp(a->scheme.segment_names[s], b->scheme.segment_names[s]) == 0,
                   "segment %zu is '%s' with 1 thread, '%s' with %d", s,
                   a->scheme.segment_names[s], b->scheme.segment_names[s], threads);
    for (size_t s = 0; s < a->evaluation.n_segments; s++) {
        const kseg_segment_stats *x = &a->evaluation.segments[s], *y = &b->evaluation.segments[s];
        TSAN_CHECK(x->segment == y->segment && x->customers == y->customers &&
                       x->priority == y->priority &&
                       memcmp(&x->revenue, &y->revenue, sizeof x->revenue) == 0 &&
                       memcmp(&x->value_per_customer, &y->value_per_customer,
                              sizeof x->value_per_customer) == 0,
                   "evaluation of segment %zu differs with %d threads", s, threads);
        TSAN_SAME(x->mean, y->mean, d * sizeof(double), threads, "mean of segment %zu", s);
        TSAN_SAME(x->median, y->median, d * sizeof(double), threads, "median of segment %zu", s);
    }
    TSAN_SAME(a->segment_profile, b->segment_profile, a->scheme.n_segments * d * sizeof(double),
              threads, "segment profile");
}

int main(void)
{
    tsan_start("tsan_pipeline");
    /* Four RFM-like columns of the generated customers: recency, frequency, monetary, tenure. */
    kseg_customer_options population;
    kseg_customer_options_defaults(&population);
    size_t all = kseg_customer_feature_count();
    float *generated = malloc(ROWS * all * sizeof *generated);
    kseg_error error = {0};
    TSAN_OK(kseg_generate_customers(&population, 0, ROWS, generated, NULL, NULL, 1, &error),
            &error);
    double *features = malloc(ROWS * FEATURES * sizeof *features);
    double *value = malloc(ROWS * sizeof *value);
    const char *names[FEATURES];
    for (size_t j = 0; j < FEATURES; j++)
        names[j] = kseg_customer_feature_name(j);
    for (size_t i = 0; i < ROWS; i++) {
        for (size_t j = 0; j < FEATURES; j++)
            features[i * FEATURES + j] = generated[i * all + j];
        value[i] = features[i * FEATURES + 2];
    }

    kseg_segmentation reference;
    segment(features, names, value, 1, &reference);
    for (int t = 1; t < TSAN_THREAD_COUNTS; t++) {
        kseg_segmentation result;
        segment(features, names, value, tsan_thread_counts[t], &result);
        compare(&reference, &result, tsan_thread_counts[t]);
        kseg_segmentation_destroy(&result);
    }
    printf("%s: segmentation (k sweep %d..%d chose k = %d, %zu segments, %zu merges) identical "
           "at 1, 2 and 4 threads\n",
           tsan_driver_name, 2, 5, reference.chosen_k, reference.scheme.n_segments,
           reference.merge.n_records);
    kseg_segmentation_destroy(&reference);
    free(generated);
    free(features);
    free(value);
    return tsan_finish();
}
