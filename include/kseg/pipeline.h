/* The segmentation pipeline on per-customer features held in memory: prepare (transforms,
 * scaling, weights), k-means (one k, or a sweep that picks k), naming clusters (rules or
 * automatic), merging small segments, and the evaluation of the resulting scheme. Predict applies
 * a fitted segmentation to new customers. The CLI's `kseg run` reads and writes the files. */
#ifndef KSEG_PIPELINE_H
#define KSEG_PIPELINE_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"
#include "kseg/kmeans.h"
#include "kseg/metrics.h"
#include "kseg/prepare.h"
#include "kseg/segment.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kseg_segmentation_options {
    kseg_prepare_options prepare; /* Default: standard scaling, no transforms, weights 1. */
    kseg_kmeans_options kmeans;   /* n_clusters is the k when k_min == k_max == 0. */
    int32_t k_min;                /* Sweep k_min..k_max (2 <= k_min < k_max) and pick k by
                                     k_rule; 0 = no sweep. Default 0. */
    int32_t k_max;
    kseg_k_rule k_rule;           /* Default KSEG_K_RULE_KNEE. */
    size_t silhouette_sample;     /* Rows in the seeded silhouette sample (0 = all rows).
                                     Default 10000. */
    const kseg_rules *rules;      /* NULL: automatic names. Default NULL. */
    kseg_merge_options merge;     /* Default: no merging. */
    const char *scheme_name;      /* Default "segment". */
} kseg_segmentation_options;

KSEG_API void kseg_segmentation_options_defaults(kseg_segmentation_options *options);

/* A fitted segmentation. Owned; _init / _destroy. */
typedef struct kseg_segmentation {
    size_t n_customers;
    size_t n_features;
    char **feature_names;           /* [d] copies */
    kseg_prepare_model prepare;
    double *prepared;               /* [n x d] the prepared features k-means saw */
    kseg_kmeans_result kmeans;      /* centroids in prepared space */
    double *centroids_original;     /* [k x d] centroids mapped back to original units */
    double *cluster_mean_original;  /* [k x d] mean of each cluster's rows in original units */
    kseg_k_sweep_entry *sweep;      /* [n_sweep] when a sweep ran, else NULL */
    size_t n_sweep;
    int32_t chosen_k;
    int sweep_clear;                /* the rule found a clear choice */
    char sweep_note[160];           /* e.g. "knee at k=4" or "no clear knee; using k=3" */
    char **cluster_names;           /* [k] names before merging (rules: the segment of each) */
    int32_t *cluster_segment;       /* [k] final segment of each cluster */
    kseg_merge_result merge;        /* what merging did */
    kseg_scheme scheme;             /* final per-customer segments */
    kseg_evaluation evaluation;     /* of scheme, over the original features and value */
    double *segment_profile;        /* [segments x d] customer-weighted mean of the prepared
                                       features per final segment (the profile chart) */
} kseg_segmentation;

KSEG_API void kseg_segmentation_init(kseg_segmentation *segmentation);
KSEG_API void kseg_segmentation_destroy(kseg_segmentation *segmentation);

/* Runs prepare -> k-means (or the sweep) -> naming -> merging -> evaluation on features [n x d]
 * (original units, row-major double) named feature_names [d]; value [n] (may be NULL) is the
 * revenue (or other value) per customer used by merging and evaluation. */
KSEG_API int kseg_segmentation_fit(const double *features, size_t n, size_t d,
                                   const char *const *feature_names, const double *value,
                                   const kseg_segmentation_options *options,
                                   kseg_segmentation *segmentation, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
