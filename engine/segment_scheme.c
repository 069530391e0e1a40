/* Schemes: one exact partition of the customers per criterion. Builds them from cluster labels
 * and a cluster -> segment map, from a category column, from numeric bands and from the customer
 * lifecycle, and cross-tabulates two schemes. Also holds the name helpers of segment_internal.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/segment.h"
#include "segment_internal.h"

/* Longest band name: two numbers of at most 24 characters each and the words around them. */
#define BAND_NAME_MAX 64

/* ---------------------------------------------------------------- name helpers */

void kseg_segment_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t s = 0; s < n; s++)
        free(names[s]);
    free(names);
}

char **kseg_segment_names_copy(const char *const *names, size_t n)
{
    char **copy = calloc(n ? n : 1, sizeof *copy);
    if (!copy)
        return NULL;
    for (size_t s = 0; s < n; s++)
        if (!(copy[s] = strdup(names[s]))) {
            kseg_segment_names_free(copy, s);
            return NULL;
        }
    return copy;
}

typedef struct named_position {
    const char *name;
    size_t position;
} named_position;

/* By name, then by position, so that equal names lie together with their lowest position first. */
static int compare_named_positions(const void *a, const void *b)
{
    const named_position *x = a, *y = b;
    int order = strcmp(x->name, y->name);
    if (order)
        return order;
    return (x->position > y->position) - (x->position < y->position);
}

int kseg_segment_names_find_duplicate(const char *const *names, size_t n, size_t *first,
                                      size_t *second)
{
    if (n < 2)
        return 0;
    named_position *sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return -1;
    for (size_t s = 0; s < n; s++)
        sorted[s] = (named_position){names[s], s};
    qsort(sorted, n, sizeof *sorted, compare_named_positions);
    /* Of all repeated names, report the one whose second occurrence comes first, which is what a
       reader going through the list in order meets first. */
    int found = 0;
    for (size_t s = 1; s < n; s++) {
        if (strcmp(sorted[s - 1].name, sorted[s].name) != 0)
            continue;
        /* sorted[s - 1] is the lowest position of the run only at the run's start. */
        if (s >= 2 && strcmp(sorted[s - 2].name, sorted[s].name) == 0)
            continue;
        if (!found || sorted[s].position < *second) {
            *first = sorted[s - 1].position;
            *second = sorted[s].position;
            found = 1;
        }
    }
    free(sorted);
    return found;
}

int kseg_segment_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- scheme objects */

void kseg_scheme_init(kseg_scheme *scheme)
{
    memset(scheme, 0, sizeof *scheme);
}

void kseg_scheme_destroy(kseg_scheme *scheme)
{
    if (!scheme)
        return;
    free(scheme->name);
    free(scheme->segment);
    kseg_segment_names_free(scheme->segment_names, scheme->n_segments);
    memset(scheme, 0, sizeof *scheme);
}

/* Gives scheme its name and an uninitialized segment array of n entries. */
static int scheme_start(kseg_scheme *scheme, const char *name, size_t n)
{
    kseg_scheme_init(scheme);
    scheme->n_customers = n;
    scheme->name = strdup(name ? name : "");
    scheme->segment = malloc((n ? n : 1) * sizeof *scheme->segment);
    return scheme->name && scheme->segment ? 0 : -1;
}

/* scheme->segment holds candidate ids in [0, n_candidates); keeps only the candidates some customer
 * has, in candidate order, renumbers the customers and copies the kept names. */
static int scheme_keep_used(kseg_scheme *scheme, const char *const *candidate_names,
                            size_t n_candidates)
{
    int32_t *new_id = calloc(n_candidates ? n_candidates : 1, sizeof *new_id);
    if (!new_id)
        return -1;
    for (size_t i = 0; i < scheme->n_customers; i++)
        new_id[scheme->segment[i]] = 1;
    size_t used = 0;
    for (size_t c = 0; c < n_candidates; c++)
        new_id[c] = new_id[c] ? (int32_t)used++ : -1;
    scheme->segment_names = calloc(used ? used : 1, sizeof *scheme->segment_names);
    if (!scheme->segment_names) {
        free(new_id);
        return -1;
    }
    for (size_t c = 0; c < n_candidates; c++)
        if (new_id[c] >= 0) {
            if (!(scheme->segment_names[scheme->n_segments] = strdup(candidate_names[c]))) {
                free(new_id);
                return -1;
            }
            scheme->n_segments++;
        }
    for (size_t i = 0; i < scheme->n_customers; i++)
        scheme->segment[i] = new_id[scheme->segment[i]];
    free(new_id);
    return 0;
}

/* ---------------------------------------------------------------- from clusters */

int kseg_scheme_from_clusters(const char *name, size_t n, const int32_t *labels,
                              size_t n_clusters, const int32_t *cluster_segment,
                              const char *const *segment_names, size_t n_segments,
                              kseg_scheme *scheme, kseg_error *error)
{
    kseg_scheme_init(scheme);
    const char *label = name ? name : "";
    if ((n && !labels) || (n_clusters && !cluster_segment) || (n_segments && !segment_names))
        return kseg_error_set(error, KSEG_EINVAL,
                              "scheme '%s': labels, cluster map or segment names missing", label);
    for (size_t c = 0; c < n_clusters; c++)
        if (cluster_segment[c] < 0 || (size_t)cluster_segment[c] >= n_segments)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "scheme '%s': cluster %zu maps to segment %d (expected 0..%zu)",
                                  label, c, (int)cluster_segment[c],
                                  n_segments ? n_segments - 1 : 0);
    for (size_t s = 0; s < n_segments; s++)
        if (!segment_names[s] || !segment_names[s][0])
            return kseg_error_set(error, KSEG_EINVAL, "scheme '%s': segment %zu has no name",
                                  label, s);
    size_t first = 0, second = 0;
    int duplicate = kseg_segment_names_find_duplicate(segment_names, n_segments, &first, &second);
    if (duplicate < 0)
        goto out_of_memory;
    if (duplicate)
        return kseg_error_set(error, KSEG_EINVAL,
                              "scheme '%s': segments %zu and %zu are both named '%s' (segment "
                              "names must be distinct)",
                              label, first, second, segment_names[first]);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= n_clusters)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "scheme '%s': customer row %zu has cluster label %d (expected "
                                  "0..%zu)",
                                  label, i, (int)labels[i], n_clusters ? n_clusters - 1 : 0);

    if (scheme_start(scheme, name, n) != 0)
        goto out_of_memory;
    /* Every segment is kept, even one no cluster maps to: the caller chose the segment list, and
       the evaluation reports an empty segment with zeros. */
    if (!(scheme->segment_names = kseg_segment_names_copy(segment_names, n_segments)))
        goto out_of_memory;
    scheme->n_segments = n_segments;
    for (size_t i = 0; i < n; i++)
        scheme->segment[i] = cluster_segment[labels[i]];
    return 0;
out_of_memory:
    kseg_scheme_destroy(scheme);
    return kseg_error_set(error, KSEG_ENOMEM, "scheme '%s': out of memory", label);
}

/* ---------------------------------------------------------------- category column */

int kseg_category_scheme(const char *name, size_t n, const int32_t *codes,
                         const char *const *names, size_t n_names, kseg_scheme *scheme,
                         kseg_error *error)
{
    kseg_scheme_init(scheme);
    const char *label = name ? name : "";
    if ((n && !codes) || (n_names && !names))
        return kseg_error_set(error, KSEG_EINVAL, "category scheme '%s': codes or names missing",
                              label);
    for (size_t c = 0; c < n_names; c++)
        if (!names[c] || !names[c][0])
            return kseg_error_set(error, KSEG_EINVAL,
                                  "category scheme '%s': category code %zu has no name", label, c);
    size_t first = 0, second = 0;
    int duplicate = kseg_segment_names_find_duplicate(names, n_names, &first, &second);
    if (duplicate < 0)
        goto out_of_memory;
    if (duplicate)
        return kseg_error_set(error, KSEG_EINVAL,
                              "category scheme '%s': codes %zu and %zu are both named '%s' "
                              "(category names must be distinct)",
                              label, first, second, names[first]);
    for (size_t i = 0; i < n; i++)
        if (codes[i] < 0 || (size_t)codes[i] >= n_names)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "category scheme '%s': customer row %zu has code %d (expected "
                                  "0..%zu, the %zu names of the dictionary)",
                                  label, i, (int)codes[i], n_names ? n_names - 1 : 0, n_names);

    if (scheme_start(scheme, name, n) != 0)
        goto out_of_memory;
    if (n)
        memcpy(scheme->segment, codes, n * sizeof *codes);
    if (scheme_keep_used(scheme, names, n_names) != 0)
        goto out_of_memory;
    return 0;
out_of_memory:
    kseg_scheme_destroy(scheme);
    return kseg_error_set(error, KSEG_ENOMEM, "category scheme '%s': out of memory", label);
}

/* ---------------------------------------------------------------- numeric bands */

/* The fewest significant digits, from %g's six up, that print every pair of neighbouring edges
 * differently, so that band names stay distinct even for edges closer than %g shows. */
static int band_precision(const double *edges, size_t n_edges)
{
    for (int digits = 6; digits < 17; digits++) {
        int distinct = 1;
        for (size_t e = 1; e < n_edges && distinct; e++) {
            char below[32], above[32];
            snprintf(below, sizeof below, "%.*g", digits, edges[e - 1]);
            snprintf(above, sizeof above, "%.*g", digits, edges[e]);
            distinct = strcmp(below, above) != 0;
        }
        if (distinct)
            return digits;
    }
    return 17;
}

/* The band of value: how many edges are <= value, found by bisection. */
static int32_t band_of(double value, const double *edges, size_t n_edges)
{
    size_t low = 0, high = n_edges;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (edges[middle] <= value)
            low = middle + 1;
        else
            high = middle;
    }
    return (int32_t)low;
}

int kseg_band_scheme(const char *name, size_t n, const double *values, const double *edges,
                     size_t n_edges, kseg_scheme *scheme, kseg_error *error)
{
    kseg_scheme_init(scheme);
    const char *label = name ? name : "";
    char **band_names = NULL;
    const size_t n_bands = n_edges + 1;
    if (n && !values)
        return kseg_error_set(error, KSEG_EINVAL, "band scheme '%s': values missing", label);
    if (n_edges == 0 || !edges)
        return kseg_error_set(error, KSEG_EINVAL,
                              "band scheme '%s': at least one band edge is needed", label);
    if (n_edges > (size_t)INT32_MAX - 1)
        return kseg_error_set(error, KSEG_ETOOBIG, "band scheme '%s': %zu edges are too many",
                              label, n_edges);
    for (size_t e = 0; e < n_edges; e++) {
        if (!isfinite(edges[e]))
            return kseg_error_set(error, KSEG_EINVAL,
                                  "band scheme '%s': edge %zu is %g (edges must be finite)", label,
                                  e, edges[e]);
        if (e > 0 && !(edges[e - 1] < edges[e]))
            return kseg_error_set(error, KSEG_EINVAL,
                                  "band scheme '%s': edge %zu (%.17g) is not greater than edge %zu "
                                  "(%.17g); edges must be strictly increasing",
                                  label, e, edges[e], e - 1, edges[e - 1]);
    }
    for (size_t i = 0; i < n; i++)
        if (isnan(values[i]))
            return kseg_error_set(error, KSEG_ENONFINITE,
                                  "band scheme '%s': customer row %zu has a NaN value (expected a "
                                  "number)",
                                  label, i);

    if (scheme_start(scheme, name, n) != 0)
        goto out_of_memory;
    for (size_t i = 0; i < n; i++)
        scheme->segment[i] = band_of(values[i], edges, n_edges);
    if (!(band_names = calloc(n_bands, sizeof *band_names)))
        goto out_of_memory;
    const int digits = band_precision(edges, n_edges);
    for (size_t b = 0; b < n_bands; b++) {
        char text[BAND_NAME_MAX];
        if (b == 0)
            snprintf(text, sizeof text, "< %.*g", digits, edges[0]);
        else if (b == n_edges)
            snprintf(text, sizeof text, ">= %.*g", digits, edges[n_edges - 1]);
        else
            snprintf(text, sizeof text, "%.*g to < %.*g", digits, edges[b - 1], digits, edges[b]);
        if (!(band_names[b] = strdup(text)))
            goto out_of_memory;
    }
    if (scheme_keep_used(scheme, (const char *const *)band_names, n_bands) != 0)
        goto out_of_memory;
    kseg_segment_names_free(band_names, n_bands);
    return 0;
out_of_memory:
    kseg_segment_names_free(band_names, n_bands);
    kseg_scheme_destroy(scheme);
    return kseg_error_set(error, KSEG_ENOMEM, "band scheme '%s': out of memory", label);
}

/* ---------------------------------------------------------------- lifecycle */

void kseg_lifecycle_options_defaults(kseg_lifecycle_options *options)
{
    options->new_days = 90.0;
    options->lapsed_days = 180.0;
}

enum { NEVER_BOUGHT, LAPSED, NEW, ONE_TIME, REPEAT, LIFECYCLE_STAGES };
static const char *const lifecycle_names[LIFECYCLE_STAGES] = {
    "Never bought", "Lapsed", "New", "One-time buyer", "Repeat buyer"};

int kseg_lifecycle_scheme(size_t n, const double *recency, const double *frequency,
                          const double *tenure, const uint8_t *bought,
                          const kseg_lifecycle_options *options, kseg_scheme *scheme,
                          kseg_error *error)
{
    kseg_scheme_init(scheme);
    kseg_lifecycle_options defaults;
    if (!options) {
        kseg_lifecycle_options_defaults(&defaults);
        options = &defaults;
    }
    if (isnan(options->new_days) || isnan(options->lapsed_days))
        return kseg_error_set(error, KSEG_EINVAL,
                              "lifecycle scheme: new_days and lapsed_days must be numbers, not "
                              "NaN");
    if (n && (!recency || !frequency || !tenure))
        return kseg_error_set(error, KSEG_EINVAL,
                              "lifecycle scheme: recency, frequency and tenure are all needed");
    /* Customers who never bought have no recency, frequency or tenure (the columns hold
       placeholders there), so only the others are checked. */
    for (size_t i = 0; i < n; i++) {
        if (bought && !bought[i])
            continue;
        const char *column = isnan(recency[i]) ? "recency"
                             : isnan(frequency[i]) ? "frequency"
                             : isnan(tenure[i])    ? "tenure"
                                                   : NULL;
        if (column)
            return kseg_error_set(error, KSEG_ENONFINITE,
                                  "lifecycle scheme: customer row %zu has a NaN %s (expected a "
                                  "number of %s)",
                                  i, column, column[0] == 'f' ? "purchases" : "days");
    }

    if (scheme_start(scheme, "lifecycle", n) != 0)
        goto out_of_memory;
    for (size_t i = 0; i < n; i++) {
        int32_t stage;
        if (bought && !bought[i])
            stage = NEVER_BOUGHT;
        else if (recency[i] > options->lapsed_days)
            stage = LAPSED;
        else if (tenure[i] <= options->new_days)
            stage = NEW;
        else if (frequency[i] <= 1.0)
            stage = ONE_TIME;
        else
            stage = REPEAT;
        scheme->segment[i] = stage;
    }
    if (scheme_keep_used(scheme, lifecycle_names, LIFECYCLE_STAGES) != 0)
        goto out_of_memory;
    return 0;
out_of_memory:
    kseg_scheme_destroy(scheme);
    return kseg_error_set(error, KSEG_ENOMEM, "lifecycle scheme: out of memory");
}

/* ---------------------------------------------------------------- cross-tabulation */

int kseg_segment_check_scheme(const kseg_scheme *scheme, const char *function, kseg_error *error)
{
    if (scheme->n_customers && !scheme->segment)
        return kseg_error_set(error, KSEG_EINVAL, "%s: scheme '%s' has no segment array",
                              function, scheme->name ? scheme->name : "");
    for (size_t i = 0; i < scheme->n_customers; i++)
        if (scheme->segment[i] < 0 || (size_t)scheme->segment[i] >= scheme->n_segments)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s: scheme '%s', customer row %zu has segment %d (expected "
                                  "0..%zu)",
                                  function, scheme->name ? scheme->name : "", i,
                                  (int)scheme->segment[i],
                                  scheme->n_segments ? scheme->n_segments - 1 : 0);
    return 0;
}

int kseg_crosstab(const kseg_scheme *a, const kseg_scheme *b, const double *value,
                  int64_t *counts, double *value_sums, kseg_error *error)
{
    static const char function[] = "crosstab";
    if (!a || !b || !counts || (value && !value_sums))
        return kseg_error_set(error, KSEG_EINVAL, "%s: schemes or output arrays missing",
                              function);
    if (a->n_customers != b->n_customers)
        return kseg_error_set(error, KSEG_ESHAPE,
                              "%s: scheme '%s' covers %zu customers but scheme '%s' covers %zu "
                              "(both must cover the same customers)",
                              function, a->name ? a->name : "", a->n_customers,
                              b->name ? b->name : "", b->n_customers);
    int status;
    if ((status = kseg_segment_check_scheme(a, function, error)) ||
        (status = kseg_segment_check_scheme(b, function, error)))
        return status;
    const size_t n = a->n_customers;
    if (value)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(value[i]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "%s: customer row %zu has value %g (expected a finite "
                                      "number)",
                                      function, i, value[i]);

    const size_t cells = a->n_segments * b->n_segments;
    memset(counts, 0, cells * sizeof *counts);
    if (value)
        memset(value_sums, 0, cells * sizeof *value_sums);
    /* One pass in row order: the sums do not depend on anything but the data. */
    for (size_t i = 0; i < n; i++) {
        size_t cell = (size_t)a->segment[i] * b->n_segments + (size_t)b->segment[i];
        counts[cell]++;
        if (value)
            value_sums[cell] += value[i];
    }
    return 0;
}
