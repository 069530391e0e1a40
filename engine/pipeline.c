/* The in-memory segmentation pipeline: prepare the features, run k-means (or sweep k and pick one),
 * name the clusters, merge segments too small to market to, and evaluate the final scheme. Every
 * step is a library call of its own; this file only wires them together and keeps the results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/pipeline.h"

void kseg_segmentation_options_defaults(kseg_segmentation_options *options)
{
    memset(options, 0, sizeof *options);
    kseg_prepare_options_defaults(&options->prepare);
    kseg_kmeans_options_defaults(&options->kmeans);
    options->k_rule = KSEG_K_RULE_KNEE;
    options->silhouette_sample = 10000;
    kseg_merge_options_defaults(&options->merge);
    options->scheme_name = "segment";
}

void kseg_segmentation_init(kseg_segmentation *segmentation)
{
    memset(segmentation, 0, sizeof *segmentation);
    kseg_prepare_model_init(&segmentation->prepare);
    kseg_kmeans_result_init(&segmentation->kmeans);
    kseg_merge_result_init(&segmentation->merge);
    kseg_scheme_init(&segmentation->scheme);
    kseg_evaluation_init(&segmentation->evaluation);
}

static void free_strings(char **strings, size_t count)
{
    if (!strings)
        return;
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

void kseg_segmentation_destroy(kseg_segmentation *segmentation)
{
    free_strings(segmentation->feature_names, segmentation->n_features);
    free_strings(segmentation->cluster_names, segmentation->kmeans.n_clusters);
    kseg_prepare_model_destroy(&segmentation->prepare);
    kseg_kmeans_result_destroy(&segmentation->kmeans);
    kseg_merge_result_destroy(&segmentation->merge);
    kseg_scheme_destroy(&segmentation->scheme);
    kseg_evaluation_destroy(&segmentation->evaluation);
    free(segmentation->prepared);
    free(segmentation->centroids_original);
    free(segmentation->cluster_mean_original);
    free(segmentation->sweep);
    free(segmentation->cluster_segment);
    free(segmentation->segment_profile);
    memset(segmentation, 0, sizeof *segmentation);
}

/* Fits k-means for every k of the sweep and records the inertia and the three quality metrics on
 * the prepared features, then lets kseg_choose_k pick one. */
static int run_sweep(const kseg_matrix *prepared, const kseg_segmentation_options *options,
                     kseg_segmentation *segmentation, kseg_error *error)
{
    size_t count = (size_t)(options->k_max - options->k_min + 1);
    segmentation->sweep = calloc(count, sizeof *segmentation->sweep);
    if (!segmentation->sweep)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for the k sweep");
    segmentation->n_sweep = count;
    for (size_t i = 0; i < count; i++) {
        kseg_k_sweep_entry *entry = &segmentation->sweep[i];
        kseg_kmeans_options kmeans_options = options->kmeans;
        kmeans_options.n_clusters = options->k_min + (int64_t)i;
        kseg_kmeans_result result;
        kseg_kmeans_result_init(&result);
        int status = kseg_kmeans_fit(prepared, &kmeans_options, &result, error);
        if (status)
            return status;
        entry->k = (int32_t)kmeans_options.n_clusters;
        entry->inertia = result.inertia;
        /* A metric that is undefined for this result (e.g. every row in one cluster because the
           data has fewer distinct points than k) is recorded as NaN and skipped by the rule. */
        kseg_error ignored;
        kseg_error_clear(&ignored);
        if (kseg_silhouette_score(prepared, result.labels, result.n_clusters,
                                  options->silhouette_sample, options->kmeans.seed,
                                  options->kmeans.n_threads, &entry->silhouette, NULL, &ignored))
            entry->silhouette = NAN;
        if (kseg_calinski_harabasz_score(prepared, result.labels, result.n_clusters,
                                         options->kmeans.n_threads, &entry->calinski_harabasz,
                                         &ignored))
            entry->calinski_harabasz = NAN;
        if (kseg_davies_bouldin_score(prepared, result.labels, result.n_clusters,
                                      options->kmeans.n_threads, &entry->davies_bouldin, &ignored))
            entry->davies_bouldin = NAN;
        kseg_kmeans_result_destroy(&result);
    }
    int status = kseg_choose_k(segmentation->sweep, count, options->k_rule,
                               &segmentation->chosen_k, &segmentation->sweep_clear, error);
    if (status)
        return status;
    if (segmentation->sweep_clear)
        snprintf(segmentation->sweep_note, sizeof segmentation->sweep_note, "%s: k = %d",
                 options->k_rule == KSEG_K_RULE_KNEE ? "knee of the inertia curve"
                                                     : kseg_k_rule_name(options->k_rule),
                 segmentation->chosen_k);
    else if (options->k_rule == KSEG_K_RULE_KNEE)
        snprintf(segmentation->sweep_note, sizeof segmentation->sweep_note,
                 "no clear knee in the inertia curve; using k = %d (the point farthest from the "
                 "chord); consider a metric rule",
                 segmentation->chosen_k);
    else
        snprintf(segmentation->sweep_note, sizeof segmentation->sweep_note,
                 "%s is the same for every k; using k = %d", kseg_k_rule_name(options->k_rule),
                 segmentation->chosen_k);
    return 0;
}

/* Per cluster and feature: how many population standard deviations of the prepared feature the
 * cluster's mean lies from the population mean. This is what automatic names are made from, and
 * it does not depend on the scaling chosen. */
static int standardized_cluster_means(const double *prepared, size_t n, size_t d,
                                      const int32_t *labels, size_t k, double *standardized,
                                      kseg_error *error)
{
    double *mean = calloc(d, sizeof *mean);
    double *deviation = calloc(d, sizeof *deviation);
    double *count = calloc(k, sizeof *count);
    if (!mean || !deviation || !count) {
        free(mean);
        free(deviation);
        free(count);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
    }
    memset(standardized, 0, k * d * sizeof *standardized);
    for (size_t i = 0; i < n; i++) {
        count[labels[i]] += 1.0;
        for (size_t j = 0; j < d; j++) {
            mean[j] += prepared[i * d + j];
            standardized[(size_t)labels[i] * d + j] += prepared[i * d + j];
        }
    }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double difference = prepared[i * d + j] - mean[j];
            deviation[j] += difference * difference;
        }
    for (size_t j = 0; j < d; j++)
        deviation[j] = sqrt(deviation[j] / (double)n);
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++) {
            double cluster_mean = count[c] > 0 ? standardized[c * d + j] / count[c] : mean[j];
            standardized[c * d + j] =
                deviation[j] > 0 ? (cluster_mean - mean[j]) / deviation[j] : 0.0;
        }
    free(mean);
    free(deviation);
    free(count);
    return 0;
}

/* Names the clusters: by the rules (their segment), or automatically (one name each). On return
 * names[k] holds each cluster's name and segment_of_cluster[k] / segment_names[*n_segments] the
 * partition into named segments before merging. */
static int name_clusters(const double *features, const kseg_segmentation_options *options,
                         kseg_segmentation *segmentation, int32_t *segment_of_cluster,
                         char ***segment_names, size_t *n_segments, kseg_error *error)
{
    size_t n = segmentation->n_customers, d = segmentation->n_features;
    size_t k = segmentation->kmeans.n_clusters;
    int status = 0;
    segmentation->cluster_names = calloc(k, sizeof *segmentation->cluster_names);
    if (!segmentation->cluster_names)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
    if (options->rules) {
        double *low = malloc(d * sizeof *low), *high = malloc(d * sizeof *high);
        if (!low || !high) {
            free(low);
            free(high);
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
        }
        status = kseg_level_thresholds(features, n, d, options->rules->low_quantile,
                                       options->rules->high_quantile, low, high, error);
        if (!status)
            status = kseg_rules_apply(options->rules, segmentation->centroids_original, k, d, low,
                                      high, segment_of_cluster, segment_names, n_segments, error);
        free(low);
        free(high);
        if (status)
            return status;
        for (size_t c = 0; c < k; c++) {
            segmentation->cluster_names[c] = strdup((*segment_names)[segment_of_cluster[c]]);
            if (!segmentation->cluster_names[c])
                return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
        }
        return 0;
    }
    double *standardized = malloc(k * d * sizeof *standardized);
    if (!standardized)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
    status = standardized_cluster_means(segmentation->prepared, n, d, segmentation->kmeans.labels,
                                        k, standardized, error);
    char **names = NULL;
    if (!status)
        status = kseg_auto_names(standardized, k, d,
                                 (const char *const *)segmentation->feature_names, &names, error);
    free(standardized);
    if (status)
        return status;
    /* Automatic names are one per cluster, so the clusters are the segments. */
    *segment_names = calloc(k, sizeof **segment_names);
    if (!*segment_names) {
        free_strings(names, k);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
    }
    *n_segments = k;
    for (size_t c = 0; c < k; c++) {
        segment_of_cluster[c] = (int32_t)c;
        segmentation->cluster_names[c] = names[c];
        (*segment_names)[c] = strdup(names[c]);
        if (!(*segment_names)[c]) {
            free(names);
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory naming clusters");
        }
    }
    free(names);
    return 0;
}

/* Customer counts, value sums and the mean prepared point of each segment of a partition given by
 * the clusters' segments. */
static void segment_totals(const kseg_segmentation *segmentation, const int32_t *segment_of_cluster,
                           const double *value, size_t n_segments, double *customers,
                           double *revenue, double *centers)
{
    size_t n = segmentation->n_customers, d = segmentation->n_features;
    memset(customers, 0, n_segments * sizeof *customers);
    memset(revenue, 0, n_segments * sizeof *revenue);
    memset(centers, 0, n_segments * d * sizeof *centers);
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)segment_of_cluster[segmentation->kmeans.labels[i]];
        customers[s] += 1.0;
        revenue[s] += value ? value[i] : 1.0;
        for (size_t j = 0; j < d; j++)
            centers[s * d + j] += segmentation->prepared[i * d + j];
    }
    for (size_t s = 0; s < n_segments; s++)
        for (size_t j = 0; j < d; j++)
            centers[s * d + j] = customers[s] > 0 ? centers[s * d + j] / customers[s] : 0.0;
}

int kseg_segmentation_fit(const double *features, size_t n, size_t d,
                          const char *const *feature_names, const double *value,
                          const kseg_segmentation_options *options,
                          kseg_segmentation *segmentation, kseg_error *error)
{
    int status = 0;
    int32_t *segment_of_cluster = NULL;
    char **segment_names = NULL;
    size_t n_segments = 0;
    double *customers = NULL, *revenue = NULL, *centers = NULL;

    if (!features || !feature_names || !options || !segmentation)
        return kseg_error_set(error, KSEG_EINVAL, "segmentation: missing argument");
    if (n == 0 || d == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "segmentation: no customers or no features");
    if (options->k_min || options->k_max) {
        if (options->k_min < 2 || options->k_max <= options->k_min)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "k sweep %d..%d: expected 2 <= first k < last k", options->k_min,
                                  options->k_max);
        if ((size_t)options->k_max > n)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "k sweep up to %d needs at least that many customers, got %zu",
                                  options->k_max, n);
    }
    if (value)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(value[i]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "value of customer row %zu is not finite", i);

    kseg_segmentation_destroy(segmentation);
    segmentation->n_customers = n;
    segmentation->n_features = d;
    segmentation->feature_names = calloc(d, sizeof *segmentation->feature_names);
    if (!segmentation->feature_names)
        goto out_of_memory;
    for (size_t j = 0; j < d; j++)
        if (!(segmentation->feature_names[j] = strdup(feature_names[j])))
            goto out_of_memory;

    /* Prepare. */
    if ((status = kseg_prepare_fit(features, n, d, &options->prepare, feature_names,
                                   options->kmeans.n_threads, &segmentation->prepare, error)))
        goto fail;
    if (!(segmentation->prepared = malloc(n * d * sizeof *segmentation->prepared)))
        goto out_of_memory;
    if ((status = kseg_prepare_apply(&segmentation->prepare, features, n, feature_names,
                                     options->kmeans.n_threads, segmentation->prepared, error)))
        goto fail;
    kseg_matrix prepared = {segmentation->prepared, KSEG_FLOAT64, n, d};

    /* Cluster, with the sweep choosing k when asked. */
    kseg_kmeans_options kmeans_options = options->kmeans;
    if (options->k_min) {
        if ((status = run_sweep(&prepared, options, segmentation, error)))
            goto fail;
        kmeans_options.n_clusters = segmentation->chosen_k;
    }
    segmentation->chosen_k = (int32_t)kmeans_options.n_clusters;
    if ((status = kseg_kmeans_fit(&prepared, &kmeans_options, &segmentation->kmeans, error)))
        goto fail;
    size_t k = segmentation->kmeans.n_clusters;

    /* Centroids and cluster means in the units the user knows. */
    segmentation->centroids_original = malloc(k * d * sizeof *segmentation->centroids_original);
    segmentation->cluster_mean_original = calloc(k * d, sizeof *segmentation->cluster_mean_original);
    if (!segmentation->centroids_original || !segmentation->cluster_mean_original)
        goto out_of_memory;
    kseg_prepare_inverse(&segmentation->prepare, segmentation->kmeans.centroids, k,
                         segmentation->centroids_original);
    {
        size_t *sizes = calloc(k, sizeof *sizes);
        if (!sizes)
            goto out_of_memory;
        for (size_t i = 0; i < n; i++) {
            size_t c = (size_t)segmentation->kmeans.labels[i];
            sizes[c]++;
            for (size_t j = 0; j < d; j++)
                segmentation->cluster_mean_original[c * d + j] += features[i * d + j];
        }
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < d; j++)
                segmentation->cluster_mean_original[c * d + j] =
                    sizes[c] ? segmentation->cluster_mean_original[c * d + j] / (double)sizes[c]
                             : NAN;
        free(sizes);
    }

    /* Name, then merge what is too small. */
    if (!(segment_of_cluster = malloc(k * sizeof *segment_of_cluster)))
        goto out_of_memory;
    if ((status = name_clusters(features, options, segmentation, segment_of_cluster,
                                &segment_names, &n_segments, error)))
        goto fail;
    customers = malloc(n_segments * sizeof *customers);
    revenue = malloc(n_segments * sizeof *revenue);
    centers = malloc(n_segments * d * sizeof *centers);
    if (!customers || !revenue || !centers)
        goto out_of_memory;
    segment_totals(segmentation, segment_of_cluster, value, n_segments, customers, revenue,
                   centers);
    if ((status = kseg_merge_small_segments(&options->merge, n_segments,
                                            (const char *const *)segment_names, customers,
                                            revenue, centers, d, &segmentation->merge, error)))
        goto fail;
    if (!(segmentation->cluster_segment = malloc(k * sizeof *segmentation->cluster_segment)))
        goto out_of_memory;
    for (size_t c = 0; c < k; c++)
        segmentation->cluster_segment[c] = segmentation->merge.segment_map[segment_of_cluster[c]];

    /* The final scheme, its evaluation and its profile. */
    size_t final_segments = segmentation->merge.n_merged_segments;
    if ((status = kseg_scheme_from_clusters(
             options->scheme_name ? options->scheme_name : "segment", n,
             segmentation->kmeans.labels, k, segmentation->cluster_segment,
             (const char *const *)segmentation->merge.names, final_segments, &segmentation->scheme,
             error)))
        goto fail;
    if ((status = kseg_evaluate_scheme(&segmentation->scheme, features, d, value,
                                       &segmentation->evaluation, error)))
        goto fail;
    double *profile_customers = realloc(customers, (final_segments ? final_segments : 1) *
                                                       sizeof *profile_customers);
    if (!profile_customers)
        goto out_of_memory;
    customers = profile_customers;
    double *profile_revenue = realloc(revenue, (final_segments ? final_segments : 1) *
                                                   sizeof *profile_revenue);
    if (!profile_revenue)
        goto out_of_memory;
    revenue = profile_revenue;
    if (!(segmentation->segment_profile =
              malloc((final_segments ? final_segments : 1) * d * sizeof(double))))
        goto out_of_memory;
    segment_totals(segmentation, segmentation->cluster_segment, value, final_segments, customers,
                   revenue, segmentation->segment_profile);

    free(segment_of_cluster);
    free_strings(segment_names, n_segments);
    free(customers);
    free(revenue);
    free(centers);
    return 0;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory segmenting %zu customers", n);
fail:
    free(segment_of_cluster);
    free_strings(segment_names, n_segments);
    free(customers);
    free(revenue);
    free(centers);
    kseg_segmentation_destroy(segmentation);
    return status;
}
