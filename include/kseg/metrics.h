/* Cluster quality metrics for choosing k: sampled silhouette (exact on a seeded sample),
 * Calinski-Harabasz and Davies-Bouldin as scikit-learn defines them, and the rule that picks k
 * from a sweep (the knee of the inertia curve, or the best value of one metric). */
#ifndef KSEG_METRICS_H
#define KSEG_METRICS_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"
#include "kseg/matrix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean silhouette coefficient of rows, as sklearn.metrics.silhouette_score (Euclidean distance,
 * a row alone in its cluster scores 0). When sample_size > 0 and < rows, the score is computed
 * exactly over a sample of sample_size distinct rows drawn uniformly without replacement from the
 * counter-based stream of seed (the same rows for any thread count); distances are to the other
 * sampled rows only, as scikit-learn does with sample_size. sample_rows, when not NULL, receives
 * the sampled row indices in increasing order (room for min(sample_size, rows) values) so that
 * callers and tests can recompute the score. labels in [0, n_clusters). Needs 2 <= number of
 * distinct labels in the sample <= sample rows - 1, else KSEG_EINVAL. Memory: O(sample x k). */
KSEG_API int kseg_silhouette_score(const kseg_matrix *data, const int32_t *labels,
                                   size_t n_clusters, size_t sample_size, uint64_t seed,
                                   int32_t n_threads, double *score, int64_t *sample_rows,
                                   kseg_error *error);

/* Calinski-Harabasz index (between-cluster dispersion over within-cluster dispersion, each
 * divided by its degrees of freedom), as sklearn.metrics.calinski_harabasz_score; 1.0 when the
 * within dispersion is 0. Needs 2 <= labels used <= rows - 1. */
KSEG_API int kseg_calinski_harabasz_score(const kseg_matrix *data, const int32_t *labels,
                                          size_t n_clusters, int32_t n_threads, double *score,
                                          kseg_error *error);

/* Davies-Bouldin index (mean over clusters of the worst (s_i + s_j) / d_ij; lower is better), as
 * sklearn.metrics.davies_bouldin_score. Needs 2 <= labels used <= rows - 1. */
KSEG_API int kseg_davies_bouldin_score(const kseg_matrix *data, const int32_t *labels,
                                       size_t n_clusters, int32_t n_threads, double *score,
                                       kseg_error *error);

typedef enum kseg_k_rule {
    KSEG_K_RULE_KNEE = 0,        /* knee of the inertia curve (see kseg_choose_k) */
    KSEG_K_RULE_SILHOUETTE = 1,  /* highest silhouette */
    KSEG_K_RULE_CALINSKI = 2,    /* highest Calinski-Harabasz */
    KSEG_K_RULE_DAVIES = 3       /* lowest Davies-Bouldin */
} kseg_k_rule;

KSEG_API int kseg_k_rule_parse(const char *text, kseg_k_rule *rule); /* knee|silhouette|calinski-harabasz|davies-bouldin */
KSEG_API const char *kseg_k_rule_name(kseg_k_rule rule);

/* One k of a sweep. */
typedef struct kseg_k_sweep_entry {
    int32_t k;
    double inertia;
    double silhouette;
    double calinski_harabasz;
    double davies_bouldin;
} kseg_k_sweep_entry;

/* Picks k from entries (increasing k, count >= 1).
 * Knee rule: the inertia curve is normalized to [0, 1] on both axes (k from first to last, inertia
 * from its maximum to its minimum); the knee is the k whose normalized point lies farthest below
 * the straight line from the first to the last point (Kneedle, Satopää et al. 2011). The knee is
 * clear when that distance is at least 0.1 (in normalized units) and it is not at either end;
 * otherwise *clear is 0 and *chosen is still the farthest point (or the first k when there are
 * fewer than 3 entries), which callers must report as "no clear knee".
 * Metric rules: the best value (ties: the smaller k); *clear is 1 unless every value is equal.
 * Non-finite metric values are skipped; all non-finite -> KSEG_EINVAL. */
KSEG_API int kseg_choose_k(const kseg_k_sweep_entry *entries, size_t count, kseg_k_rule rule,
                           int32_t *chosen, int *clear, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
