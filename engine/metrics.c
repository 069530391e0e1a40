/* Cluster quality metrics as scikit-learn defines them (silhouette on a seeded sample,
 * Calinski-Harabasz, Davies-Bouldin) and the rule that picks k from a sweep. Every sum over rows
 * runs in a fixed order (per row, or through blocks.h), so scores do not depend on threads. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kseg/metrics.h"
#include "rng.h"

/* The silhouette's sampling keys: one 64-bit key per row, far from the small stream numbers of
 * rng.h's enum and from the transaction generator's base ("SILH" in the high half). */
#define SILHOUETTE_STREAM ((uint64_t)0x53494C48 << 32)

/* numpy.allclose(values, 0) with its default atol: every value within 1e-8 of zero. Davies-Bouldin
 * returns 0 in that case, as scikit-learn does. */
#define ALLCLOSE_ZERO_TOLERANCE 1e-8

/* ---------------------------------------------------------------- shared checks */

static int thread_count(int32_t n_threads)
{
    int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    return threads < 1 ? 1 : threads;
}

/* Element (row, column) of the matrix; the dtype was checked up front. */
static inline double element(const kseg_matrix *data, size_t row, size_t column)
{
    size_t index = row * data->cols + column;
    if (data->dtype == KSEG_FLOAT32)
        return (double)((const float *)data->data)[index];
    return ((const double *)data->data)[index];
}

static void row_as_double(const kseg_matrix *data, size_t row, double *out)
{
    size_t d = data->cols;
    if (data->dtype == KSEG_FLOAT32) {
        const float *values = (const float *)data->data + row * d;
        for (size_t j = 0; j < d; j++)
            out[j] = (double)values[j];
    } else {
        memcpy(out, (const double *)data->data + row * d, d * sizeof *out);
    }
}

/* Euclidean distance between point[d] and a row of the matrix, in double. */
static double distance_to_row(const double *point, const kseg_matrix *data, size_t row)
{
    size_t d = data->cols;
    double sum = 0.0;
    if (data->dtype == KSEG_FLOAT32) {
        const float *values = (const float *)data->data + row * d;
        for (size_t j = 0; j < d; j++) {
            double difference = point[j] - (double)values[j];
            sum += difference * difference;
        }
    } else {
        const double *values = (const double *)data->data + row * d;
        for (size_t j = 0; j < d; j++) {
            double difference = point[j] - values[j];
            sum += difference * difference;
        }
    }
    return sqrt(sum);
}

/* What every metric needs: a matrix of a known dtype with rows and columns, finite values (the
 * first NaN/Inf named by row and column, as scikit-learn's check_array refuses them too) and
 * labels in [0, n_clusters) (the first bad one named by row). */
static int validate_inputs(const char *metric, const kseg_matrix *data, const int32_t *labels,
                           size_t n_clusters, int threads, kseg_error *error)
{
    if (!data || !data->data || !labels)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no data or labels given", metric);
    if (kseg_dtype_size(data->dtype) == 0)
        return kseg_error_set(error, KSEG_ETYPE, "%s: unsupported data type %d", metric,
                              (int)data->dtype);
    if (data->rows == 0 || data->cols == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "%s: no data (%zu rows, %zu columns)", metric,
                              data->rows, data->cols);
    if (n_clusters == 0 || n_clusters > (size_t)INT32_MAX)
        return kseg_error_set(error, KSEG_EINVAL, "%s: n_clusters is %zu (expected 1 to %d)",
                              metric, n_clusters, INT32_MAX);
    size_t n = data->rows, d = data->cols;
    size_t bad_label = SIZE_MAX, bad_value = SIZE_MAX;
#pragma omp parallel for schedule(static) num_threads(threads) \
    reduction(min : bad_label) reduction(min : bad_value)
    for (size_t i = 0; i < n; i++) {
        if (bad_label == SIZE_MAX && (labels[i] < 0 || (size_t)labels[i] >= n_clusters))
            bad_label = i;
        if (bad_value == SIZE_MAX)
            for (size_t j = 0; j < d; j++)
                if (!isfinite(element(data, i, j))) {
                    bad_value = i * d + j;
                    break;
                }
    }
    if (bad_label != SIZE_MAX)
        return kseg_error_set(error, KSEG_EINVAL, "%s: label %d of row %zu is outside [0, %zu)",
                              metric, (int)labels[bad_label], bad_label, n_clusters);
    if (bad_value != SIZE_MAX) {
        double value = element(data, bad_value / d, bad_value % d);
        return kseg_error_set(error, KSEG_ENONFINITE,
                              "%s: row %zu, column %zu: value is %s (expected a finite number)",
                              metric, bad_value / d, bad_value % d,
                              isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf");
    }
    return 0;
}

/* scikit-learn's check_number_of_labels: the scores need 2 <= labels used <= rows - 1. */
static int check_labels_used(const char *metric, size_t used, size_t rows, kseg_error *error)
{
    if (used < 2 || used + 1 > rows)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: %zu distinct labels in %zu rows (expected 2 to rows - 1 "
                              "distinct labels)",
                              metric, used, rows);
    return 0;
}

/* ---------------------------------------------------------------- silhouette */

/* A row's sampling key; rows are ordered by (key, row), which is a strict total order. */
typedef struct sample_key {
    uint64_t key;
    size_t row;
} sample_key;

static inline int key_before(sample_key a, sample_key b)
{
    return a.key < b.key || (a.key == b.key && a.row < b.row);
}

/* Restores the max-heap property of heap[count] below position `at`. */
static void heap_sift_down(sample_key *heap, size_t count, size_t at)
{
    for (;;) {
        size_t largest = at, left = 2 * at + 1, right = left + 1;
        if (left < count && key_before(heap[largest], heap[left]))
            largest = left;
        if (right < count && key_before(heap[largest], heap[right]))
            largest = right;
        if (largest == at)
            return;
        sample_key swap = heap[at];
        heap[at] = heap[largest];
        heap[largest] = swap;
        at = largest;
    }
}

static void heap_sift_up(sample_key *heap, size_t at)
{
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!key_before(heap[parent], heap[at]))
            return;
        sample_key swap = heap[at];
        heap[at] = heap[parent];
        heap[parent] = swap;
        at = parent;
    }
}

static int compare_keys(const void *a, const void *b)
{
    const sample_key *x = a, *y = b;
    return key_before(*x, *y) ? -1 : key_before(*y, *x) ? 1 : 0;
}

static int compare_rows(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Draws m of n rows uniformly without replacement: every row gets an independent uniform 64-bit
 * key from the counter-based stream, and the rows with the m smallest keys form the sample
 * (random keys make every m-subset equally likely). Each thread keeps the m smallest of its rows
 * in a max-heap; the m smallest of the union are the m smallest overall, a set that does not
 * depend on how rows were split. rows[m] receives them in increasing order. */
static int draw_sample(size_t n, size_t m, uint64_t seed, int threads, size_t *rows)
{
    sample_key *heaps = malloc((size_t)threads * m * sizeof *heaps);
    size_t *heap_counts = calloc((size_t)threads, sizeof *heap_counts);
    if (!heaps || !heap_counts) {
        free(heaps);
        free(heap_counts);
        return -1;
    }
#pragma omp parallel num_threads(threads)
    {
        int thread = omp_get_thread_num();
        sample_key *heap = heaps + (size_t)thread * m;
        size_t count = 0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            sample_key candidate = {kseg_rng_u64(seed, SILHOUETTE_STREAM, i), i};
            if (count < m) {
                heap[count] = candidate;
                heap_sift_up(heap, count++);
            } else if (key_before(candidate, heap[0])) {
                heap[0] = candidate;
                heap_sift_down(heap, count, 0);
            }
        }
        heap_counts[thread] = count;
    }
    /* Gather the candidates at the front of the buffer, then keep the m smallest. */
    size_t total = 0;
    for (int t = 0; t < threads; t++) {
        memmove(heaps + total, heaps + (size_t)t * m, heap_counts[t] * sizeof *heaps);
        total += heap_counts[t];
    }
    qsort(heaps, total, sizeof *heaps, compare_keys);
    for (size_t p = 0; p < m; p++)
        rows[p] = heaps[p].row;
    qsort(rows, m, sizeof *rows, compare_rows);
    free(heaps);
    free(heap_counts);
    return 0;
}

int kseg_silhouette_score(const kseg_matrix *data, const int32_t *labels, size_t n_clusters,
                          size_t sample_size, uint64_t seed, int32_t n_threads, double *score,
                          int64_t *sample_rows, kseg_error *error)
{
    const char *metric = "silhouette";
    int threads = thread_count(n_threads);
    if (!score)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no place for the score", metric);
    int status = validate_inputs(metric, data, labels, n_clusters, threads, error);
    if (status)
        return status;
    size_t n = data->rows, d = data->cols, k = n_clusters;
    size_t m = sample_size > 0 && sample_size < n ? sample_size : n;

    size_t *rows = malloc(m * sizeof *rows);
    int64_t *counts = calloc(k, sizeof *counts);
    double *values = malloc(m * sizeof *values);
    double *scratch = malloc((size_t)threads * (d + k) * sizeof *scratch);
    if (!rows || !counts || !values || !scratch) {
        status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu sampled rows",
                                metric, m);
        goto done;
    }
    if (m < n) {
        if (draw_sample(n, m, seed, threads, rows)) {
            status = kseg_error_set(error, KSEG_ENOMEM,
                                    "%s: out of memory drawing %zu of %zu rows", metric, m, n);
            goto done;
        }
    } else {
        for (size_t p = 0; p < n; p++)
            rows[p] = p;
    }
    /* The header promises room for min(sample_size, rows) values: none when sample_size is 0. */
    if (sample_rows && sample_size > 0)
        for (size_t p = 0; p < m; p++)
            sample_rows[p] = (int64_t)rows[p];

    size_t used = 0;
    for (size_t p = 0; p < m; p++)
        if (counts[labels[rows[p]]]++ == 0)
            used++;
    if ((status = check_labels_used(metric, used, m, error)))
        goto done;

    /* Per sampled row: the sum of its distances to every sampled row of each cluster, in sample
       order, so the row's value is the same whichever thread computes it. */
#pragma omp parallel num_threads(threads)
    {
        double *point = scratch + (size_t)omp_get_thread_num() * (d + k);
        double *cluster_sums = point + d;
#pragma omp for schedule(static)
        for (size_t p = 0; p < m; p++) {
            row_as_double(data, rows[p], point);
            memset(cluster_sums, 0, k * sizeof *cluster_sums);
            for (size_t q = 0; q < m; q++)
                cluster_sums[labels[rows[q]]] += distance_to_row(point, data, rows[q]);
            size_t own = (size_t)labels[rows[p]];
            if (counts[own] == 1) {
                /* A row alone in its cluster scores 0 (scikit-learn's nan_to_num of 0/0). */
                values[p] = 0.0;
                continue;
            }
            double within = cluster_sums[own] / (double)(counts[own] - 1);
            double nearest = INFINITY;
            for (size_t c = 0; c < k; c++)
                if (c != own && counts[c] > 0) {
                    double mean = cluster_sums[c] / (double)counts[c];
                    if (mean < nearest)
                        nearest = mean;
                }
            double larger = within > nearest ? within : nearest;
            values[p] = larger > 0.0 ? (nearest - within) / larger : 0.0;
        }
    }
    double sum = 0.0;
    for (size_t p = 0; p < m; p++)
        sum += values[p];
    *score = sum / (double)m;

done:
    free(rows);
    free(counts);
    free(values);
    free(scratch);
    return status;
}

/* ---------------------------------------------------------------- centroid-based scores */

/* Per-cluster statistics of a labeling: counts, centroids, and the sums over each cluster's rows
 * of the squared distance and of the distance to the centroid. */
typedef struct cluster_stats {
    size_t k, d, used;
    double *counts;            /* [k], exact integers */
    double *centroids;         /* [k x d]; a cluster without rows keeps zeros */
    double *squared_distances; /* [k] */
    double *distances;         /* [k] */
} cluster_stats;

static void cluster_stats_free(cluster_stats *stats)
{
    free(stats->counts);
    free(stats->centroids);
    free(stats->squared_distances);
    free(stats->distances);
    memset(stats, 0, sizeof *stats);
}

typedef struct cluster_pass {
    const kseg_matrix *data;
    const int32_t *labels;
    const kseg_blocks *blocks;
    size_t k;
    const double *centroids; /* NULL: sums and counts; else distances to these */
    double *rows;            /* [threads x d] */
} cluster_pass;

static void cluster_block(void *opaque, size_t block, double *payload, int thread)
{
    const cluster_pass *pass = opaque;
    size_t d = pass->data->cols, k = pass->k;
    size_t begin = kseg_block_begin(pass->blocks, block);
    size_t end = begin + kseg_block_rows(pass->blocks, block);
    double *row = pass->rows + (size_t)thread * d;
    for (size_t i = begin; i < end; i++) {
        size_t c = (size_t)pass->labels[i];
        row_as_double(pass->data, i, row);
        if (!pass->centroids) {
            double *sums = payload + c * d;
            for (size_t j = 0; j < d; j++)
                sums[j] += row[j];
            payload[k * d + c] += 1.0;
        } else {
            const double *centroid = pass->centroids + c * d;
            double squared = 0.0;
            for (size_t j = 0; j < d; j++) {
                double difference = row[j] - centroid[j];
                squared += difference * difference;
            }
            payload[c] += squared;
            payload[k + c] += sqrt(squared);
        }
    }
}

/* Two passes over the rows, reduced by the canonical block tree: sums and counts give the
 * centroids, then distances to them. Checks the labels used as scikit-learn does. */
static int cluster_statistics(const char *metric, const kseg_matrix *data, const int32_t *labels,
                              size_t n_clusters, int32_t n_threads, cluster_stats *stats,
                              kseg_error *error)
{
    memset(stats, 0, sizeof *stats);
    int threads = thread_count(n_threads);
    int status = validate_inputs(metric, data, labels, n_clusters, threads, error);
    if (status)
        return status;
    size_t n = data->rows, d = data->cols, k = n_clusters;
    if (k > (SIZE_MAX / sizeof(double) - 1) / (d + 1))
        return kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu clusters x %zu columns is too many",
                              metric, k, d);
    stats->k = k;
    stats->d = d;
    stats->counts = malloc(k * sizeof *stats->counts);
    stats->centroids = malloc(k * d * sizeof *stats->centroids);
    stats->squared_distances = malloc(k * sizeof *stats->squared_distances);
    stats->distances = malloc(k * sizeof *stats->distances);
    double *payload = malloc((k * d + k) * sizeof *payload);
    double *rows = malloc((size_t)threads * d * sizeof *rows);
    kseg_comm serial;
    kseg_comm_serial(&serial, n);
    kseg_blocks blocks;
    kseg_vector_reducer reducer;
    memset(&reducer, 0, sizeof reducer);
    if (!stats->counts || !stats->centroids || !stats->squared_distances || !stats->distances ||
        !payload || !rows) {
        status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu clusters", metric,
                                k);
        goto done;
    }
    if ((status = kseg_blocks_init(&blocks, &serial, n, threads, error)))
        goto done;
    if ((status = kseg_vector_reducer_init(&reducer, &blocks, k * d + k, error)))
        goto done;

    cluster_pass pass = {data, labels, &blocks, k, NULL, rows};
    if ((status = kseg_reduce_vector(&reducer, &blocks, k * d + k, cluster_block, &pass, payload,
                                     error)))
        goto done;
    for (size_t c = 0; c < k; c++) {
        double count = payload[k * d + c];
        stats->counts[c] = count;
        if (count > 0)
            stats->used++;
        for (size_t j = 0; j < d; j++)
            stats->centroids[c * d + j] = count > 0 ? payload[c * d + j] / count : 0.0;
    }
    if ((status = check_labels_used(metric, stats->used, n, error)))
        goto done;

    pass.centroids = stats->centroids;
    if ((status = kseg_reduce_vector(&reducer, &blocks, 2 * k, cluster_block, &pass, payload,
                                     error)))
        goto done;
    memcpy(stats->squared_distances, payload, k * sizeof *payload);
    memcpy(stats->distances, payload + k, k * sizeof *payload);

done:
    kseg_vector_reducer_destroy(&reducer);
    free(payload);
    free(rows);
    if (status)
        cluster_stats_free(stats);
    return status;
}

int kseg_calinski_harabasz_score(const kseg_matrix *data, const int32_t *labels,
                                 size_t n_clusters, int32_t n_threads, double *score,
                                 kseg_error *error)
{
    const char *metric = "calinski-harabasz";
    if (!score)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no place for the score", metric);
    cluster_stats stats;
    int status = cluster_statistics(metric, data, labels, n_clusters, n_threads, &stats, error);
    if (status)
        return status;
    size_t k = stats.k, d = stats.d;
    double n = (double)data->rows;
    double *mean = calloc(d, sizeof *mean);
    if (!mean) {
        cluster_stats_free(&stats);
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", metric);
    }
    /* The overall mean as the count-weighted mean of the centroids. */
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            mean[j] += stats.counts[c] * stats.centroids[c * d + j];
    for (size_t j = 0; j < d; j++)
        mean[j] /= n;
    double between = 0.0, within = 0.0;
    for (size_t c = 0; c < k; c++) {
        if (stats.counts[c] == 0)
            continue;
        double squared = 0.0;
        for (size_t j = 0; j < d; j++) {
            double difference = stats.centroids[c * d + j] - mean[j];
            squared += difference * difference;
        }
        between += stats.counts[c] * squared;
        within += stats.squared_distances[c];
    }
    double used = (double)stats.used;
    *score = within == 0.0 ? 1.0 : between * (n - used) / (within * (used - 1.0));
    free(mean);
    cluster_stats_free(&stats);
    return 0;
}

int kseg_davies_bouldin_score(const kseg_matrix *data, const int32_t *labels, size_t n_clusters,
                              int32_t n_threads, double *score, kseg_error *error)
{
    const char *metric = "davies-bouldin";
    if (!score)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no place for the score", metric);
    cluster_stats stats;
    int status = cluster_statistics(metric, data, labels, n_clusters, n_threads, &stats, error);
    if (status)
        return status;
    size_t k = stats.k, d = stats.d;
    /* The clusters present, and each one's mean distance to its centroid (its "s"). */
    size_t *present = malloc(stats.used * sizeof *present);
    double *spread = malloc(stats.used * sizeof *spread);
    if (!present || !spread) {
        free(present);
        free(spread);
        cluster_stats_free(&stats);
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", metric);
    }
    size_t used = 0;
    int spreads_zero = 1, centroids_together = 1;
    for (size_t c = 0; c < k; c++)
        if (stats.counts[c] > 0) {
            present[used] = c;
            spread[used] = stats.distances[c] / stats.counts[c];
            if (fabs(spread[used]) > ALLCLOSE_ZERO_TOLERANCE)
                spreads_zero = 0;
            used++;
        }
    double total = 0.0;
    for (size_t a = 0; a < used && !spreads_zero; a++) {
        double worst = 0.0;
        for (size_t b = 0; b < used; b++) {
            if (b == a)
                continue;
            const double *first = stats.centroids + present[a] * d;
            const double *second = stats.centroids + present[b] * d;
            double squared = 0.0;
            for (size_t j = 0; j < d; j++) {
                double difference = first[j] - second[j];
                squared += difference * difference;
            }
            double separation = sqrt(squared);
            if (separation > ALLCLOSE_ZERO_TOLERANCE)
                centroids_together = 0;
            /* scikit-learn sets a zero centroid distance to infinity: the pair then adds 0. */
            double ratio = separation == 0.0 ? 0.0 : (spread[a] + spread[b]) / separation;
            if (ratio > worst)
                worst = ratio;
        }
        total += worst;
    }
    /* As scikit-learn: 0 when every spread or every centroid distance is (all)close to 0. */
    *score = spreads_zero || centroids_together ? 0.0 : total / (double)used;
    free(present);
    free(spread);
    cluster_stats_free(&stats);
    return 0;
}

/* ---------------------------------------------------------------- choosing k */

int kseg_k_rule_parse(const char *text, kseg_k_rule *rule)
{
    if (!text || !rule)
        return KSEG_EINVAL;
    if (strcmp(text, "knee") == 0)
        *rule = KSEG_K_RULE_KNEE;
    else if (strcmp(text, "silhouette") == 0)
        *rule = KSEG_K_RULE_SILHOUETTE;
    else if (strcmp(text, "calinski-harabasz") == 0)
        *rule = KSEG_K_RULE_CALINSKI;
    else if (strcmp(text, "davies-bouldin") == 0)
        *rule = KSEG_K_RULE_DAVIES;
    else
        return KSEG_EINVAL;
    return 0;
}

const char *kseg_k_rule_name(kseg_k_rule rule)
{
    switch (rule) {
    case KSEG_K_RULE_KNEE:
        return "knee";
    case KSEG_K_RULE_SILHOUETTE:
        return "silhouette";
    case KSEG_K_RULE_CALINSKI:
        return "calinski-harabasz";
    case KSEG_K_RULE_DAVIES:
        return "davies-bouldin";
    }
    return "unknown";
}

/* The value a rule looks at, oriented so that larger is better. */
static double rule_value(const kseg_k_sweep_entry *entry, kseg_k_rule rule)
{
    switch (rule) {
    case KSEG_K_RULE_SILHOUETTE:
        return entry->silhouette;
    case KSEG_K_RULE_CALINSKI:
        return entry->calinski_harabasz;
    case KSEG_K_RULE_DAVIES:
        return -entry->davies_bouldin;
    case KSEG_K_RULE_KNEE:
        break;
    }
    return entry->inertia;
}

/* The knee of the inertia curve over the entries with a finite inertia (the rule of the header):
 * on the normalized curve, the vertical distance below the chord from the first to the last point
 * is Kneedle's difference curve; its first maximum is the knee. */
static void choose_knee(const kseg_k_sweep_entry *entries, size_t count, int32_t *chosen,
                        int *clear)
{
    size_t first = SIZE_MAX, last = 0, points = 0;
    double highest = -INFINITY, lowest = INFINITY;
    for (size_t e = 0; e < count; e++) {
        double inertia = entries[e].inertia;
        if (!isfinite(inertia))
            continue;
        if (first == SIZE_MAX)
            first = e;
        last = e;
        points++;
        if (inertia > highest)
            highest = inertia;
        if (inertia < lowest)
            lowest = inertia;
    }
    *chosen = entries[first].k;
    *clear = 0;
    if (points < 3)
        return;
    double k_range = (double)entries[last].k - (double)entries[first].k;
    double inertia_range = highest - lowest;
    if (!(k_range > 0.0) || !(inertia_range > 0.0))
        return; /* a flat curve has no knee */
    double first_y = (entries[first].inertia - lowest) / inertia_range;
    double last_y = (entries[last].inertia - lowest) / inertia_range;
    double farthest = 0.0;
    size_t knee = first;
    for (size_t e = first; e <= last; e++) {
        if (!isfinite(entries[e].inertia))
            continue;
        double x = ((double)entries[e].k - (double)entries[first].k) / k_range;
        double y = (entries[e].inertia - lowest) / inertia_range;
        double below = first_y + (last_y - first_y) * x - y;
        if (below > farthest) {
            farthest = below;
            knee = e;
        }
    }
    *chosen = entries[knee].k;
    *clear = farthest >= 0.1 && knee != first && knee != last;
}

int kseg_choose_k(const kseg_k_sweep_entry *entries, size_t count, kseg_k_rule rule,
                  int32_t *chosen, int *clear, kseg_error *error)
{
    if (!entries || !chosen || !clear)
        return kseg_error_set(error, KSEG_EINVAL, "choose k: no entries or results given");
    if (count == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "choose k: no k in the sweep");
    if (rule != KSEG_K_RULE_KNEE && rule != KSEG_K_RULE_SILHOUETTE &&
        rule != KSEG_K_RULE_CALINSKI && rule != KSEG_K_RULE_DAVIES)
        return kseg_error_set(error, KSEG_EINVAL, "choose k: unknown rule %d", (int)rule);
    for (size_t e = 1; e < count; e++)
        if (entries[e].k <= entries[e - 1].k)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "choose k: k must increase along the sweep, but entry %zu has "
                                  "k %d after k %d",
                                  e, (int)entries[e].k, (int)entries[e - 1].k);
    size_t finite = 0;
    for (size_t e = 0; e < count; e++)
        if (isfinite(rule_value(&entries[e], rule)))
            finite++;
    if (finite == 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "choose k: no finite %s value in the %zu entries of the sweep",
                              rule == KSEG_K_RULE_KNEE ? "inertia" : kseg_k_rule_name(rule),
                              count);
    if (rule == KSEG_K_RULE_KNEE) {
        choose_knee(entries, count, chosen, clear);
        return 0;
    }
    /* The best value; a strict comparison keeps the smaller k on ties. */
    size_t best = SIZE_MAX;
    int all_equal = 1;
    for (size_t e = 0; e < count; e++) {
        double value = rule_value(&entries[e], rule);
        if (!isfinite(value))
            continue;
        if (best == SIZE_MAX) {
            best = e;
            continue;
        }
        double best_value = rule_value(&entries[best], rule);
        if (value != best_value)
            all_equal = 0;
        if (value > best_value)
            best = e;
    }
    *chosen = entries[best].k;
    *clear = !all_equal;
    return 0;
}
