/* Naming clusters: level thresholds (population quantiles as numpy computes them), rules tried in
 * order with a fallback so that every cluster gets exactly one segment, and automatic names from
 * each cluster's most distinctive features when no rules are given. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/segment.h"
#include "segment_internal.h"

/* A feature takes part in an automatic name when its centroid lies at least this many population
 * standard deviations from the population mean. */
#define DISTINCTIVE_Z 0.25
/* Features named in an automatic name before any are added to tell equal names apart. */
#define NAME_FEATURES 3
/* U+00B7 MIDDLE DOT between spaces, in UTF-8. */
#define NAME_SEPARATOR " \xC2\xB7 "

/* ---------------------------------------------------------------- rules objects */

void kseg_rules_init(kseg_rules *rules)
{
    memset(rules, 0, sizeof *rules);
    rules->low_quantile = 1.0 / 3.0;
    rules->high_quantile = 2.0 / 3.0;
}

void kseg_rules_destroy(kseg_rules *rules)
{
    if (!rules)
        return;
    if (rules->rules)
        for (size_t r = 0; r < rules->n_rules; r++) {
            free(rules->rules[r].segment);
            free(rules->rules[r].conditions);
        }
    free(rules->rules);
    free(rules->fallback);
    memset(rules, 0, sizeof *rules);
}

/* ---------------------------------------------------------------- level thresholds */

/* numpy's interpolation between two neighbours: from below when weight < 0.5, from above
 * otherwise. The products go through volatile variables so that no compiler fuses them into an
 * fma, which would change the last bit against numpy. */
static double numpy_lerp(double below, double above, double weight)
{
    double difference = above - below;
    if (weight >= 0.5) {
        volatile double product = difference * (1.0 - weight);
        return above - product;
    }
    volatile double product = difference * weight;
    return below + product;
}

/* numpy.quantile(sorted, probability) with the default method "linear": virtual index
 * (n - 1) * probability between its floor and the next element. n >= 1. */
static double quantile_linear(const double *sorted, size_t n, double probability)
{
    const double last_index = (double)(n - 1);
    double virtual_index = last_index * probability;
    if (virtual_index >= last_index)
        return sorted[n - 1];
    double below_index = floor(virtual_index);
    size_t below = (size_t)below_index;
    return numpy_lerp(sorted[below], sorted[below + 1], virtual_index - below_index);
}

static int check_quantiles(double low_quantile, double high_quantile, const char *function,
                           kseg_error *error)
{
    if (!(low_quantile >= 0.0 && low_quantile <= high_quantile && high_quantile <= 1.0))
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: level quantiles low %g and high %g must satisfy 0 <= low <= "
                              "high <= 1",
                              function, low_quantile, high_quantile);
    return 0;
}

int kseg_level_thresholds(const double *data, size_t n, size_t d, double low_quantile,
                          double high_quantile, double *low, double *high, kseg_error *error)
{
    static const char function[] = "level thresholds";
    int status = check_quantiles(low_quantile, high_quantile, function, error);
    if (status)
        return status;
    if (n == 0)
        return kseg_error_set(error, KSEG_EEMPTY,
                              "%s: no customers to take the population quantiles of", function);
    if (d == 0)
        return 0;
    if (!data || !low || !high)
        return kseg_error_set(error, KSEG_EINVAL, "%s: data or output arrays missing", function);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            if (!isfinite(data[i * d + j]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "%s: customer row %zu, feature %zu is %g (expected a finite "
                                      "number)",
                                      function, i, j, data[i * d + j]);
    double *column = malloc(n * sizeof *column);
    if (!column)
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu values", function,
                              n);
    for (size_t j = 0; j < d; j++) {
        for (size_t i = 0; i < n; i++)
            column[i] = data[i * d + j];
        qsort(column, n, sizeof *column, kseg_segment_compare_doubles);
        low[j] = quantile_linear(column, n, low_quantile);
        high[j] = quantile_linear(column, n, high_quantile);
    }
    free(column);
    return 0;
}

/* ---------------------------------------------------------------- rules */

/* Checks the rules before any is applied, so that a broken rule is reported even when no cluster
 * would reach it. */
static int check_rules(const kseg_rules *rules, size_t d, const double *low, const double *high,
                       kseg_error *error)
{
    static const char function[] = "rules";
    if (!rules->fallback || !rules->fallback[0])
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: the fallback segment name is missing (it takes every cluster "
                              "no rule matches)",
                              function);
    if (rules->n_rules && !rules->rules)
        return kseg_error_set(error, KSEG_EINVAL, "%s: %zu rules announced but none given",
                              function, rules->n_rules);
    for (size_t r = 0; r < rules->n_rules; r++) {
        const kseg_rule *rule = &rules->rules[r];
        if (!rule->segment || !rule->segment[0])
            return kseg_error_set(error, KSEG_EINVAL, "%s: rule %zu has no segment name",
                                  function, r);
        if (rule->n_conditions && !rule->conditions)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s: rule %zu ('%s') announces %zu conditions but gives none",
                                  function, r, rule->segment, rule->n_conditions);
        for (size_t c = 0; c < rule->n_conditions; c++) {
            const kseg_rule_condition *condition = &rule->conditions[c];
            if (condition->feature >= d)
                return kseg_error_set(error, KSEG_EINVAL,
                                      "%s: rule %zu ('%s'), condition %zu names feature %zu "
                                      "(expected 0..%zu)",
                                      function, r, rule->segment, c, condition->feature,
                                      d ? d - 1 : 0);
            if (condition->levels & ~(unsigned)(KSEG_LEVEL_LOW | KSEG_LEVEL_MID | KSEG_LEVEL_HIGH))
                return kseg_error_set(error, KSEG_EINVAL,
                                      "%s: rule %zu ('%s'), condition %zu has level mask %#x "
                                      "(expected a combination of low 1, mid 2, high 4)",
                                      function, r, rule->segment, c, condition->levels);
            if (condition->levels) {
                if (!low || !high)
                    return kseg_error_set(error, KSEG_EINVAL,
                                          "%s: rule %zu ('%s') uses levels but no level "
                                          "thresholds were given",
                                          function, r, rule->segment);
                if (isnan(low[condition->feature]) || isnan(high[condition->feature]))
                    return kseg_error_set(error, KSEG_EINVAL,
                                          "%s: the level thresholds of feature %zu are NaN",
                                          function, condition->feature);
            } else if (isnan(condition->min) || isnan(condition->max) ||
                       condition->min > condition->max)
                return kseg_error_set(error, KSEG_EINVAL,
                                      "%s: rule %zu ('%s'), condition %zu has range [%g, %g] "
                                      "(expected min <= max, -inf/+inf for an open side)",
                                      function, r, rule->segment, c, condition->min,
                                      condition->max);
        }
    }
    return 0;
}

/* The levels value v has against the thresholds: low when v <= low, high when v >= high (both
 * when the thresholds are equal and v sits on them), mid when neither. */
static unsigned level_of(double value, double low, double high)
{
    unsigned levels = 0;
    if (value <= low)
        levels |= KSEG_LEVEL_LOW;
    if (value >= high)
        levels |= KSEG_LEVEL_HIGH;
    return levels ? levels : (unsigned)KSEG_LEVEL_MID;
}

static int rule_matches(const kseg_rule *rule, const double *centroid, const double *low,
                        const double *high)
{
    for (size_t c = 0; c < rule->n_conditions; c++) {
        const kseg_rule_condition *condition = &rule->conditions[c];
        const size_t j = condition->feature;
        if (condition->levels) {
            if (!(level_of(centroid[j], low[j], high[j]) & condition->levels))
                return 0;
        } else if (!(centroid[j] >= condition->min && centroid[j] <= condition->max))
            return 0;
    }
    return 1;
}

int kseg_rules_apply(const kseg_rules *rules, const double *centroids, size_t k, size_t d,
                     const double *low, const double *high, int32_t *cluster_segment,
                     char ***segment_names, size_t *n_segments, kseg_error *error)
{
    static const char function[] = "rules";
    *segment_names = NULL;
    *n_segments = 0;
    if (!rules)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no rules given", function);
    int status = check_rules(rules, d, low, high, error);
    if (status)
        return status;
    if (k && ((d && !centroids) || !cluster_segment))
        return kseg_error_set(error, KSEG_EINVAL, "%s: centroids or output array missing",
                              function);
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            if (isnan(centroids[c * d + j]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "%s: cluster %zu, feature %zu: the centroid is NaN",
                                      function, c, j);

    /* The distinct segment names in the order of their first rule, the fallback last unless a
       rule names it too: several rules may name one segment. */
    const size_t n_rules = rules->n_rules;
    const char **distinct = malloc((n_rules + 1) * sizeof *distinct);
    int32_t *rule_segment = malloc((n_rules + 1) * sizeof *rule_segment);
    int32_t *new_id = NULL;
    char **names = NULL;
    size_t n_distinct = 0, used = 0;
    if (!distinct || !rule_segment)
        goto out_of_memory;
    for (size_t r = 0; r <= n_rules; r++) {
        const char *name = r < n_rules ? rules->rules[r].segment : rules->fallback;
        size_t s = 0;
        while (s < n_distinct && strcmp(distinct[s], name) != 0)
            s++;
        if (s == n_distinct)
            distinct[n_distinct++] = name;
        rule_segment[r] = (int32_t)s;
    }
    if (!(new_id = calloc(n_distinct, sizeof *new_id)))
        goto out_of_memory;

    for (size_t c = 0; c < k; c++) {
        size_t r = 0;
        while (r < n_rules && !rule_matches(&rules->rules[r], centroids + c * d, low, high))
            r++;
        /* r == n_rules is the fallback's slot. */
        cluster_segment[c] = rule_segment[r];
        new_id[rule_segment[r]] = 1;
    }
    /* Keep the segments that received a cluster, in their distinct order, and renumber. */
    for (size_t s = 0; s < n_distinct; s++)
        new_id[s] = new_id[s] ? (int32_t)used++ : -1;
    if (!(names = calloc(used ? used : 1, sizeof *names)))
        goto out_of_memory;
    for (size_t s = 0, out = 0; s < n_distinct; s++)
        if (new_id[s] >= 0 && !(names[out++] = strdup(distinct[s]))) {
            kseg_segment_names_free(names, out);
            goto out_of_memory;
        }
    for (size_t c = 0; c < k; c++)
        cluster_segment[c] = new_id[cluster_segment[c]];
    *segment_names = names;
    *n_segments = used;
    free(distinct);
    free(rule_segment);
    free(new_id);
    return 0;
out_of_memory:
    free(distinct);
    free(rule_segment);
    free(new_id);
    return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", function);
}

/* ---------------------------------------------------------------- automatic names */

/* The words for the features every RFM table has: the high and the low side. Recency counts days
 * since the last purchase, so a high recency means the customer has lapsed. */
typedef struct vocabulary_entry {
    const char *feature;
    const char *high;
    const char *low;
} vocabulary_entry;

static const vocabulary_entry vocabulary[] = {
    {"monetary", "High spend", "Low spend"},
    {"frequency", "Frequent", "Rare"},
    {"recency", "Lapsed", "Recent"},
    {"tenure", "Long-standing", "New"},
};

/* The vocabulary entry of a feature name: the word itself in any case, or the word followed by a
 * separator and a unit or qualifier ("recency_days", "Monetary value"). NULL for other names. */
static const vocabulary_entry *vocabulary_of(const char *feature)
{
    if (!feature)
        return NULL;
    for (size_t v = 0; v < sizeof vocabulary / sizeof *vocabulary; v++) {
        const char *word = vocabulary[v].feature;
        size_t length = strlen(word), i = 0;
        while (i < length && tolower((unsigned char)feature[i]) == word[i])
            i++;
        if (i == length && !isalnum((unsigned char)feature[length]))
            return &vocabulary[v];
    }
    return NULL;
}

/* Writes the phrase for feature j on the side of z into text (at most size bytes, terminated);
 * returns the phrase's full length as snprintf does. */
static int feature_phrase(char *text, size_t size, const char *const *feature_names, size_t j,
                          double z)
{
    const char *feature = feature_names ? feature_names[j] : NULL;
    const vocabulary_entry *entry = vocabulary_of(feature);
    if (entry)
        return snprintf(text, size, "%s", z > 0 ? entry->high : entry->low);
    if (feature)
        return snprintf(text, size, "%s %s", z > 0 ? "High" : "Low", feature);
    return snprintf(text, size, "%s feature %zu", z > 0 ? "High" : "Low", j);
}

/* What one cluster's name is made of. */
typedef struct cluster_name {
    size_t *ranked;   /* distinctive features by decreasing |z| (ties: lower index) */
    size_t n_ranked;
    size_t length;    /* how many of them the name uses now */
    char *text;
} cluster_name;

/* Builds the name of cluster c from its first `length` ranked features, or "Average". */
static char *compose_name(const cluster_name *name, const double *z_row,
                          const char *const *feature_names)
{
    if (name->length == 0)
        return strdup("Average");
    size_t total = 1;
    for (size_t f = 0; f < name->length; f++) {
        size_t j = name->ranked[f];
        total += (size_t)feature_phrase(NULL, 0, feature_names, j, z_row[j]) +
                 (f ? strlen(NAME_SEPARATOR) : 0);
    }
    char *text = malloc(total);
    if (!text)
        return NULL;
    size_t at = 0;
    for (size_t f = 0; f < name->length; f++) {
        size_t j = name->ranked[f];
        if (f)
            at += (size_t)snprintf(text + at, total - at, "%s", NAME_SEPARATOR);
        at += (size_t)feature_phrase(text + at, total - at, feature_names, j, z_row[j]);
    }
    return text;
}

/* Context for sorting clusters by their current name (qsort has no user argument in C11). */
typedef struct cluster_by_name {
    const char *text;
    size_t cluster;
} cluster_by_name;

static int compare_cluster_by_name(const void *a, const void *b)
{
    const cluster_by_name *x = a, *y = b;
    int order = strcmp(x->text, y->text);
    if (order)
        return order;
    return (x->cluster > y->cluster) - (x->cluster < y->cluster);
}

/* Sorts the clusters by name into order[k]; runs of equal names are then adjacent. */
static void sort_by_name(const cluster_name *clusters, size_t k, cluster_by_name *order)
{
    for (size_t c = 0; c < k; c++)
        order[c] = (cluster_by_name){clusters[c].text, c};
    qsort(order, k, sizeof *order, compare_cluster_by_name);
}

/* Ranks features by |z| for qsort: larger first, then the lower index. */
typedef struct ranked_feature {
    double magnitude;
    size_t feature;
} ranked_feature;

static int compare_ranked_features(const void *a, const void *b)
{
    const ranked_feature *x = a, *y = b;
    if (x->magnitude != y->magnitude)
        return x->magnitude < y->magnitude ? 1 : -1;
    return (x->feature > y->feature) - (x->feature < y->feature);
}

int kseg_auto_names(const double *standardized, size_t k, size_t d,
                    const char *const *feature_names, char ***names, kseg_error *error)
{
    static const char function[] = "auto names";
    *names = NULL;
    if (k && d && !standardized)
        return kseg_error_set(error, KSEG_EINVAL, "%s: the standardized centroids are missing",
                              function);
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            if (isnan(standardized[c * d + j]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "%s: cluster %zu, feature %zu: the standardized centroid is "
                                      "NaN",
                                      function, c, j);

    int status = 0;
    cluster_name *clusters = calloc(k ? k : 1, sizeof *clusters);
    ranked_feature *ranking = malloc((d ? d : 1) * sizeof *ranking);
    cluster_by_name *order = malloc((k ? k : 1) * sizeof *order);
    char **result = NULL;
    if (!clusters || !ranking || !order)
        goto out_of_memory;
    for (size_t c = 0; c < k; c++) {
        const double *z = standardized + c * d;
        size_t n_ranked = 0;
        for (size_t j = 0; j < d; j++)
            if (fabs(z[j]) >= DISTINCTIVE_Z)
                ranking[n_ranked++] = (ranked_feature){fabs(z[j]), j};
        qsort(ranking, n_ranked, sizeof *ranking, compare_ranked_features);
        if (!(clusters[c].ranked = malloc((n_ranked ? n_ranked : 1) * sizeof(size_t))))
            goto out_of_memory;
        for (size_t f = 0; f < n_ranked; f++)
            clusters[c].ranked[f] = ranking[f].feature;
        clusters[c].n_ranked = n_ranked;
        clusters[c].length = n_ranked < NAME_FEATURES ? n_ranked : NAME_FEATURES;
        if (!(clusters[c].text = compose_name(&clusters[c], z, feature_names)))
            goto out_of_memory;
    }

    /* Clusters that share a name each take their next distinctive feature, until the names
       differ or no member of any shared name has a feature left. A longer name may meet another
       cluster's name, so the check repeats; every round lengthens at least one name, so it ends. */
    for (;;) {
        sort_by_name(clusters, k, order);
        int lengthened = 0;
        for (size_t start = 0, end; start < k; start = end) {
            end = start + 1;
            while (end < k && strcmp(order[end].text, order[start].text) == 0)
                end++;
            if (end - start < 2)
                continue;
            for (size_t m = start; m < end; m++) {
                cluster_name *name = &clusters[order[m].cluster];
                if (name->length < name->n_ranked) {
                    name->length++;
                    lengthened = 1;
                }
            }
        }
        if (!lengthened)
            break;
        /* Rebuild every name: the texts in order[] still point at the old ones. */
        for (size_t c = 0; c < k; c++) {
            char *text = compose_name(&clusters[c], standardized + c * d, feature_names);
            if (!text)
                goto out_of_memory;
            free(clusters[c].text);
            clusters[c].text = text;
        }
    }
    /* What features cannot tell apart, the cluster number does. */
    sort_by_name(clusters, k, order);
    for (size_t start = 0, end; start < k; start = end) {
        end = start + 1;
        while (end < k && strcmp(order[end].text, order[start].text) == 0)
            end++;
        if (end - start < 2)
            continue;
        for (size_t m = start; m < end; m++) {
            cluster_name *name = &clusters[order[m].cluster];
            int length = snprintf(NULL, 0, "%s (cluster %zu)", name->text, order[m].cluster);
            char *text = malloc((size_t)length + 1);
            if (!text)
                goto out_of_memory;
            snprintf(text, (size_t)length + 1, "%s (cluster %zu)", name->text, order[m].cluster);
            free(name->text);
            name->text = text;
        }
    }
    /* A feature whose own name ends in " (cluster N)" could still collide; refuse rather than
       hand out two equal names. */
    sort_by_name(clusters, k, order);
    for (size_t m = 1; m < k; m++)
        if (strcmp(order[m - 1].text, order[m].text) == 0) {
            status = kseg_error_set(error, KSEG_EINVAL,
                                    "%s: clusters %zu and %zu are both named '%s' even with their "
                                    "cluster numbers (rename the features)",
                                    function, order[m - 1].cluster, order[m].cluster,
                                    order[m].text);
            goto done;
        }

    if (!(result = calloc(k ? k : 1, sizeof *result)))
        goto out_of_memory;
    for (size_t c = 0; c < k; c++) {
        result[c] = clusters[c].text;
        clusters[c].text = NULL;
    }
    *names = result;
    goto done;
out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", function);
done:
    if (clusters)
        for (size_t c = 0; c < k; c++) {
            free(clusters[c].ranked);
            free(clusters[c].text);
        }
    free(clusters);
    free(ranking);
    free(order);
    return status;
}
