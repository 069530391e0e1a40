/* Segments: schemes (one exact partition of the customers per criterion), naming clusters from
 * rules or from their most distinctive features, merging segments too small to market to,
 * evaluation and priority ranking, the lifecycle, category and band schemes, cross-tabulation. */
#ifndef KSEG_SEGMENT_H
#define KSEG_SEGMENT_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- schemes */

/* One criterion's partition: every customer has exactly one segment. Owned; _init / _destroy. */
typedef struct kseg_scheme {
    char *name;            /* "kmeans", "rfm", "lifecycle", a column name, ... */
    size_t n_customers;
    int32_t *segment;      /* [n_customers], each in [0, n_segments) */
    size_t n_segments;
    char **segment_names;  /* [n_segments], distinct */
} kseg_scheme;

KSEG_API void kseg_scheme_init(kseg_scheme *scheme);
KSEG_API void kseg_scheme_destroy(kseg_scheme *scheme);

/* Builds a scheme from cluster labels [n] in [0, n_clusters) and a cluster -> segment map
 * cluster_segment [n_clusters] into segment_names [n_segments]. Fails (KSEG_EINVAL) on a label
 * or map entry out of range or duplicate segment names. */
KSEG_API int kseg_scheme_from_clusters(const char *name, size_t n, const int32_t *labels,
                                       size_t n_clusters, const int32_t *cluster_segment,
                                       const char *const *segment_names, size_t n_segments,
                                       kseg_scheme *scheme, kseg_error *error);

/* A category column: codes [n] index names [n_names]; segments are the names that occur, in
 * dictionary order. A code out of range is KSEG_EINVAL naming the customer row. */
KSEG_API int kseg_category_scheme(const char *name, size_t n, const int32_t *codes,
                                  const char *const *names, size_t n_names, kseg_scheme *scheme,
                                  kseg_error *error);

/* Numeric bands: strictly increasing edges e_0 < ... < e_{m-1} (m >= 1) cut values [n] into
 * "< e_0", "e_0 to < e_1", ..., ">= e_{m-1}" (numbers printed with %g); bands with no customer
 * are dropped. NaN values are KSEG_ENONFINITE naming the row. */
KSEG_API int kseg_band_scheme(const char *name, size_t n, const double *values,
                              const double *edges, size_t n_edges, kseg_scheme *scheme,
                              kseg_error *error);

/* Lifecycle thresholds, in days. */
typedef struct kseg_lifecycle_options {
    double new_days;    /* "New": first purchase at most this many days before the reference
                           (tenure <= new_days). Default 90. */
    double lapsed_days; /* "Lapsed": last purchase more than this many days ago
                           (recency > lapsed_days). Default 180. */
} kseg_lifecycle_options;

KSEG_API void kseg_lifecycle_options_defaults(kseg_lifecycle_options *options);

/* The lifecycle scheme, first match wins: "Never bought" (bought[i] == 0; bought may be NULL =
 * everyone bought), "Lapsed", "New", "One-time buyer" (frequency <= 1), "Repeat buyer". The
 * segments keep this order; those with no customer are dropped. recency, frequency, tenure [n]
 * as in kseg_rfm_table (ignored where bought[i] == 0). */
KSEG_API int kseg_lifecycle_scheme(size_t n, const double *recency, const double *frequency,
                                   const double *tenure, const uint8_t *bought,
                                   const kseg_lifecycle_options *options, kseg_scheme *scheme,
                                   kseg_error *error);

/* counts [a->n_segments x b->n_segments] (row-major) of customers in each pair of segments, and
 * when value is not NULL, value_sums of value [n] per pair. Schemes must cover the same n. */
KSEG_API int kseg_crosstab(const kseg_scheme *a, const kseg_scheme *b, const double *value,
                           int64_t *counts, double *value_sums, kseg_error *error);

/* ---------------------------------------------------------------- naming clusters */

/* Levels of a feature, as a bit mask so one condition can allow several. */
enum { KSEG_LEVEL_LOW = 1, KSEG_LEVEL_MID = 2, KSEG_LEVEL_HIGH = 4 };

/* One condition on one feature: either levels (a mask of KSEG_LEVEL_*) or, when levels is 0,
 * the inclusive range [min, max] in original units (-inf / +inf for an open side). */
typedef struct kseg_rule_condition {
    size_t feature;
    unsigned levels;
    double min;
    double max;
} kseg_rule_condition;

/* A rule names a segment; it matches a cluster when all its conditions hold (no conditions:
 * always). */
typedef struct kseg_rule {
    char *segment;
    kseg_rule_condition *conditions;
    size_t n_conditions;
} kseg_rule;

/* Rules are tried in order, the first match wins; the fallback takes every cluster no rule
 * matched, so the result is always an exact partition. Owned; _init / _destroy. */
typedef struct kseg_rules {
    kseg_rule *rules;
    size_t n_rules;
    char *fallback;       /* required (non-NULL, non-empty) */
    double low_quantile;  /* a centroid value <= this population quantile is "low". Default 1/3. */
    double high_quantile; /* >= this quantile is "high"; between the two is "mid". Default 2/3. */
} kseg_rules;

KSEG_API void kseg_rules_init(kseg_rules *rules);
KSEG_API void kseg_rules_destroy(kseg_rules *rules);

/* Per-feature level thresholds: low[j] and high[j] are the quantiles low_quantile and
 * high_quantile (linear interpolation, as numpy) of column j of data [n x d] (original units). */
KSEG_API int kseg_level_thresholds(const double *data, size_t n, size_t d, double low_quantile,
                                   double high_quantile, double *low, double *high,
                                   kseg_error *error);

/* Names clusters by rules. centroids [k x d] in original units; low/high from
 * kseg_level_thresholds. Outputs cluster_segment [k] and the segment names that received at least
 * one cluster (malloc'd array of malloc'd strings), in the order of their first rule (the
 * fallback last). */
KSEG_API int kseg_rules_apply(const kseg_rules *rules, const double *centroids, size_t k,
                              size_t d, const double *low, const double *high,
                              int32_t *cluster_segment, char ***segment_names,
                              size_t *n_segments, kseg_error *error);

/* Names clusters without rules: standardized [k x d] holds, per cluster and feature, how far the
 * cluster's mean lies from the population mean in population standard deviations (of the
 * prepared feature). Each name lists up to three features with |z| >= 0.25 by decreasing |z|
 * (ties: lower feature index), joined by " · ": "High spend", "Low spend" (monetary), "Frequent",
 * "Rare" (frequency), "Recent", "Lapsed" (recency), "Long-standing", "New" (tenure), and
 * "High NAME" / "Low NAME" for other features; "Average" when none qualifies. Equal names are
 * told apart by further features, then by " (cluster N)". Deterministic. Outputs one name per
 * cluster (cluster_segment is then the identity). */
KSEG_API int kseg_auto_names(const double *standardized, size_t k, size_t d,
                             const char *const *feature_names, char ***names, kseg_error *error);

/* ---------------------------------------------------------------- merging */

typedef enum kseg_merge_mode {
    KSEG_MERGE_NEAREST = 0, /* into the nearest other segment (Euclidean, prepared space) */
    KSEG_MERGE_OTHER = 1    /* into one segment named "Other" */
} kseg_merge_mode;

typedef struct kseg_merge_options {
    double min_customer_share; /* segments with a smaller share of customers are merged (0..1).
                                  Default 0 (off). */
    double min_revenue_share;  /* ... or with a smaller share of revenue. Default 0 (off). */
    kseg_merge_mode mode;      /* Default KSEG_MERGE_NEAREST. */
} kseg_merge_options;

KSEG_API void kseg_merge_options_defaults(kseg_merge_options *options);

/* What one merge did. */
typedef struct kseg_merge_record {
    char *from;
    char *into;
    double customer_share; /* of "from" when it was merged */
    double revenue_share;
    char *reason;          /* e.g. "customer share 0.8% < 2.0%" */
} kseg_merge_record;

/* The merged partition: segment_map [n_segments] gives each input segment's new id; names the new
 * segments (surviving input segments in input order, then "Other" if used). records lists the
 * merges in the order they happened. Owned; _init / _destroy. */
typedef struct kseg_merge_result {
    int32_t *segment_map;
    size_t n_merged_segments;
    char **names;
    kseg_merge_record *records;
    size_t n_records;
} kseg_merge_result;

KSEG_API void kseg_merge_result_init(kseg_merge_result *result);
KSEG_API void kseg_merge_result_destroy(kseg_merge_result *result);

/* Merges segments below the thresholds. Works on segment totals: customers [n_segments],
 * revenue [n_segments] (may be NULL when min_revenue_share is 0) and centers [n_segments x d]
 * (customer-weighted mean of the segment in prepared space; needed for NEAREST).
 * NEAREST: repeatedly the violating segment with the smallest customer share (ties: lowest id)
 * joins the nearest other segment (ties: lowest id); totals and centers are recombined; stops
 * when none violates or one segment remains. OTHER: every violating segment joins "Other"; if
 * "Other" itself violates, it joins its nearest segment as in NEAREST. Either way no segment is
 * left below a threshold unless only one remains. */
KSEG_API int kseg_merge_small_segments(const kseg_merge_options *options, size_t n_segments,
                                       const char *const *names, const double *customers,
                                       const double *revenue, const double *centers, size_t d,
                                       kseg_merge_result *result, kseg_error *error);

/* ---------------------------------------------------------------- evaluation */

typedef struct kseg_segment_stats {
    int32_t segment;                  /* id in the scheme */
    int64_t customers;
    double customer_share;            /* customers / all customers */
    double revenue;                   /* sum of value over the segment's customers */
    double revenue_share;             /* revenue / total revenue (0 when the total is 0) */
    double cumulative_revenue_share;  /* of this and all higher-priority segments */
    double cumulative_customer_share;
    double value_per_customer;        /* revenue / customers */
    int32_t priority;                 /* 1 = highest revenue (ties: more customers, lower id) */
    double *mean;                     /* [d] per feature, original units */
    double *median;                   /* [d] (the mean of the two middle values for even counts) */
} kseg_segment_stats;

/* A scheme's evaluation, segments sorted by priority. Owned; _init / _destroy. */
typedef struct kseg_evaluation {
    size_t n_segments;
    size_t n_features;
    kseg_segment_stats *segments;
    int64_t total_customers;
    double total_revenue;
} kseg_evaluation;

KSEG_API void kseg_evaluation_init(kseg_evaluation *evaluation);
KSEG_API void kseg_evaluation_destroy(kseg_evaluation *evaluation);

/* Evaluates scheme over features [n x d] (original units, n = scheme->n_customers) and value [n]
 * (revenue or any value column; NULL = every customer worth 1). Shares sum to 1 up to rounding;
 * segments with no customers get zeros and NaN means/medians. */
KSEG_API int kseg_evaluate_scheme(const kseg_scheme *scheme, const double *features, size_t d,
                                  const double *value, kseg_evaluation *evaluation,
                                  kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
