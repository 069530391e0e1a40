/* Segments: property tests on randomized inputs (every scheme an exact partition, merging never
 * leaves a segment below a threshold, evaluation shares, priorities, means and medians against a
 * brute-force recomputation, cross-tabulation against a direct count), hand-made cases for rules,
 * levels, automatic names, merge order and reasons, and the errors bad input must give. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/segment.h"

/* ---------------------------------------------------------------- helpers */

/* A fixed-seed generator (splitmix64): the random cases are the same on every run. */
typedef struct test_rng {
    uint64_t state;
} test_rng;

static uint64_t rng_next(test_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(test_rng *rng)
{
    return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, bound); bound >= 1. */
static size_t rng_below(test_rng *rng, size_t bound)
{
    return (size_t)(rng_next(rng) % bound);
}

static int32_t *count_segments(const kseg_scheme *scheme)
{
    int32_t *counts = calloc(scheme->n_segments + 1, sizeof *counts);
    for (size_t i = 0; i < scheme->n_customers; i++)
        counts[scheme->segment[i]]++;
    return counts;
}

/* Every customer in exactly one segment: labels in range, counts summing to n, names distinct;
 * with every_segment_used, no segment is empty (the schemes that drop empty segments). */
static void assert_partition(const kseg_scheme *scheme, size_t n, int every_segment_used)
{
    cr_assert_eq(scheme->n_customers, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(scheme->segment[i] >= 0 && (size_t)scheme->segment[i] < scheme->n_segments,
                  "row %zu has segment %d of %zu", i, scheme->segment[i], scheme->n_segments);
    int32_t *counts = count_segments(scheme);
    size_t total = 0;
    for (size_t s = 0; s < scheme->n_segments; s++) {
        total += (size_t)counts[s];
        if (every_segment_used)
            cr_assert_gt(counts[s], 0, "segment %zu ('%s') is empty", s,
                         scheme->segment_names[s]);
        for (size_t t = 0; t < s; t++)
            cr_assert_str_neq(scheme->segment_names[s], scheme->segment_names[t]);
    }
    cr_assert_eq(total, n);
    free(counts);
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t s = 0; s < n; s++)
        free(names[s]);
    free(names);
}

/* ---------------------------------------------------------------- schemes: properties */

Test(segment_scheme, from_clusters_is_an_exact_partition)
{
    test_rng rng = {1};
    for (int trial = 0; trial < 300; trial++) {
        size_t n = rng_below(&rng, 400), n_clusters = 1 + rng_below(&rng, 12);
        size_t n_segments = 1 + rng_below(&rng, n_clusters);
        int32_t *labels = malloc((n + 1) * sizeof *labels);
        int32_t *map = malloc(n_clusters * sizeof *map);
        char **names = malloc(n_segments * sizeof *names);
        for (size_t i = 0; i < n; i++)
            labels[i] = (int32_t)rng_below(&rng, n_clusters);
        for (size_t c = 0; c < n_clusters; c++)
            map[c] = (int32_t)rng_below(&rng, n_segments);
        for (size_t s = 0; s < n_segments; s++) {
            names[s] = malloc(32);
            snprintf(names[s], 32, "segment %zu", s);
        }
        kseg_scheme scheme;
        kseg_error error = {0};
        cr_assert_eq(kseg_scheme_from_clusters("kmeans", n, labels, n_clusters, map,
                                               (const char *const *)names, n_segments, &scheme,
                                               &error),
                     0, "%s", error.message);
        cr_assert_str_eq(scheme.name, "kmeans");
        cr_assert_eq(scheme.n_segments, n_segments);
        assert_partition(&scheme, n, 0);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(scheme.segment[i], map[labels[i]]);
        for (size_t s = 0; s < n_segments; s++)
            cr_assert_str_eq(scheme.segment_names[s], names[s]);
        kseg_scheme_destroy(&scheme);
        free_names(names, n_segments);
        free(labels);
        free(map);
    }
}

Test(segment_scheme, category_keeps_the_names_that_occur_in_dictionary_order)
{
    test_rng rng = {2};
    static const char *const dictionary[] = {"web",   "phone", "store", "catalog", "partner",
                                             "kiosk", "app",   "email", "fax",     "other"};
    for (int trial = 0; trial < 300; trial++) {
        size_t n = rng_below(&rng, 300), n_names = 1 + rng_below(&rng, 10);
        /* A few of the names at most, so that some are missing and must be dropped. */
        size_t n_used = 1 + rng_below(&rng, n_names);
        int32_t *codes = malloc((n + 1) * sizeof *codes);
        for (size_t i = 0; i < n; i++)
            codes[i] = (int32_t)((rng_below(&rng, n_used) * 7) % n_names);
        kseg_scheme scheme;
        kseg_error error = {0};
        cr_assert_eq(kseg_category_scheme("channel", n, codes, dictionary, n_names, &scheme,
                                          &error),
                     0, "%s", error.message);
        assert_partition(&scheme, n, 1);
        for (size_t i = 0; i < n; i++)
            cr_assert_str_eq(scheme.segment_names[scheme.segment[i]], dictionary[codes[i]]);
        /* Dictionary order: each kept name comes after the previous one in the dictionary. */
        size_t previous_code = 0;
        for (size_t s = 0; s < scheme.n_segments; s++) {
            size_t code = 0;
            while (strcmp(dictionary[code], scheme.segment_names[s]) != 0)
                code++;
            if (s)
                cr_assert_gt(code, previous_code);
            previous_code = code;
        }
        kseg_scheme_destroy(&scheme);
        free(codes);
    }
}

/* The band of value by a linear scan: how many edges are <= value. */
static size_t brute_force_band(double value, const double *edges, size_t n_edges)
{
    size_t band = 0;
    for (size_t e = 0; e < n_edges; e++)
        if (value >= edges[e])
            band = e + 1;
    return band;
}

Test(segment_scheme, bands_are_an_exact_partition)
{
    test_rng rng = {3};
    for (int trial = 0; trial < 300; trial++) {
        size_t n = rng_below(&rng, 300), n_edges = 1 + rng_below(&rng, 6);
        double edges[8];
        double edge = -50.0 + 10.0 * rng_uniform(&rng);
        for (size_t e = 0; e < n_edges; e++) {
            /* Whole and half numbers, so that values fall exactly on edges too. */
            edges[e] = edge;
            edge += 0.5 * (double)(1 + rng_below(&rng, 40));
        }
        double *values = malloc((n + 1) * sizeof *values);
        for (size_t i = 0; i < n; i++)
            values[i] = rng_below(&rng, 4) == 0 ? edges[rng_below(&rng, n_edges)]
                                                : -80.0 + 200.0 * rng_uniform(&rng);
        kseg_scheme scheme;
        kseg_error error = {0};
        cr_assert_eq(kseg_band_scheme("spend", n, values, edges, n_edges, &scheme, &error), 0,
                     "%s", error.message);
        assert_partition(&scheme, n, 1);
        for (size_t i = 0; i < n; i++) {
            size_t band = brute_force_band(values[i], edges, n_edges);
            char expected[64];
            if (band == 0)
                snprintf(expected, sizeof expected, "< %g", edges[0]);
            else if (band == n_edges)
                snprintf(expected, sizeof expected, ">= %g", edges[n_edges - 1]);
            else
                snprintf(expected, sizeof expected, "%g to < %g", edges[band - 1], edges[band]);
            cr_assert_str_eq(scheme.segment_names[scheme.segment[i]], expected,
                             "row %zu value %g", i, values[i]);
        }
        kseg_scheme_destroy(&scheme);
        free(values);
    }
}

Test(segment_scheme, band_names_and_empty_bands)
{
    const double edges[] = {10.0, 20.5, 100.0};
    const double values[] = {-3.0, 10.0, 20.4999, 1e9, -INFINITY, 100.0};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_band_scheme("spend", 6, values, edges, 3, &scheme, &error), 0, "%s",
                 error.message);
    /* "20.5 to < 100" has nobody and is dropped; a value on an edge opens the band above it. */
    cr_assert_eq(scheme.n_segments, 3);
    cr_assert_str_eq(scheme.name, "spend");
    cr_assert_str_eq(scheme.segment_names[0], "< 10");
    cr_assert_str_eq(scheme.segment_names[1], "10 to < 20.5");
    cr_assert_str_eq(scheme.segment_names[2], ">= 100");
    const int32_t expected[] = {0, 1, 1, 2, 0, 2};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(scheme.segment[i], expected[i], "row %zu", i);
    kseg_scheme_destroy(&scheme);

    /* Edges closer than %g shows get more digits, so that the names stay distinct. */
    const double close_edges[] = {1.0000001, 1.0000002, 1.0000003};
    const double close_values[] = {1.00000015, 1.00000025};
    cr_assert_eq(kseg_band_scheme("close", 2, close_values, close_edges, 3, &scheme, &error), 0,
                 "%s", error.message);
    cr_assert_eq(scheme.n_segments, 2);
    cr_assert_str_eq(scheme.segment_names[0], "1.0000001 to < 1.0000002");
    cr_assert_str_eq(scheme.segment_names[1], "1.0000002 to < 1.0000003");
    kseg_scheme_destroy(&scheme);
}

/* The lifecycle stage by the documented rule, first match wins. */
static const char *brute_force_stage(double recency, double frequency, double tenure,
                                     int bought, const kseg_lifecycle_options *options)
{
    if (!bought)
        return "Never bought";
    if (recency > options->lapsed_days)
        return "Lapsed";
    if (tenure <= options->new_days)
        return "New";
    if (frequency <= 1.0)
        return "One-time buyer";
    return "Repeat buyer";
}

Test(segment_scheme, lifecycle_is_an_exact_partition)
{
    static const char *const stage_order[] = {"Never bought", "Lapsed", "New", "One-time buyer",
                                              "Repeat buyer"};
    test_rng rng = {4};
    kseg_lifecycle_options options;
    kseg_lifecycle_options_defaults(&options);
    cr_assert_eq(options.new_days, 90.0);
    cr_assert_eq(options.lapsed_days, 180.0);
    for (int trial = 0; trial < 300; trial++) {
        size_t n = rng_below(&rng, 300);
        double *recency = malloc((n + 1) * sizeof *recency);
        double *frequency = malloc((n + 1) * sizeof *frequency);
        double *tenure = malloc((n + 1) * sizeof *tenure);
        uint8_t *bought = malloc(n + 1);
        const int with_bought = trial % 2;
        for (size_t i = 0; i < n; i++) {
            bought[i] = rng_below(&rng, 6) != 0;
            /* Whole days, so that thresholds are hit exactly now and then. */
            recency[i] = (double)rng_below(&rng, 400);
            tenure[i] = recency[i] + (double)rng_below(&rng, 300);
            frequency[i] = (double)rng_below(&rng, 4);
            if (with_bought && !bought[i])
                recency[i] = frequency[i] = tenure[i] = NAN; /* ignored for non-buyers */
        }
        kseg_scheme scheme;
        kseg_error error = {0};
        cr_assert_eq(kseg_lifecycle_scheme(n, recency, frequency, tenure,
                                           with_bought ? bought : NULL, trial % 3 ? &options : NULL,
                                           &scheme, &error),
                     0, "%s", error.message);
        assert_partition(&scheme, n, 1);
        cr_assert_str_eq(scheme.name, "lifecycle");
        for (size_t i = 0; i < n; i++)
            cr_assert_str_eq(scheme.segment_names[scheme.segment[i]],
                             brute_force_stage(recency[i], frequency[i], tenure[i],
                                               with_bought ? bought[i] : 1, &options),
                             "row %zu", i);
        /* The segments keep the documented order. */
        size_t position = 0;
        for (size_t s = 0; s < scheme.n_segments; s++) {
            while (strcmp(stage_order[position], scheme.segment_names[s]) != 0)
                position++;
            position++;
        }
        kseg_scheme_destroy(&scheme);
        free(recency);
        free(frequency);
        free(tenure);
        free(bought);
    }
}

Test(segment_scheme, lifecycle_thresholds)
{
    /* Rows: never bought; lapsed at 181 days; recency exactly 180 and tenure exactly 90 (new);
       one purchase long ago (one-time); two purchases (repeat). */
    const double recency[] = {0.0, 181.0, 180.0, 100.0, 100.0};
    const double frequency[] = {0.0, 5.0, 1.0, 1.0, 2.0};
    const double tenure[] = {0.0, 400.0, 90.0, 300.0, 300.0};
    const uint8_t bought[] = {0, 1, 1, 1, 1};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_lifecycle_scheme(5, recency, frequency, tenure, bought, NULL, &scheme,
                                       &error),
                 0, "%s", error.message);
    cr_assert_eq(scheme.n_segments, 5);
    const char *const expected[] = {"Never bought", "Lapsed", "New", "One-time buyer",
                                    "Repeat buyer"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(scheme.segment[i], (int32_t)i);
        cr_assert_str_eq(scheme.segment_names[i], expected[i]);
    }
    kseg_scheme_destroy(&scheme);

    kseg_lifecycle_options options = {.new_days = 30.0, .lapsed_days = 365.0};
    cr_assert_eq(kseg_lifecycle_scheme(5, recency, frequency, tenure, NULL, &options, &scheme,
                                       &error),
                 0, "%s", error.message);
    /* Without `bought` row 0 counts as a buyer with tenure 0 <= 30: new. Row 2's tenure 90 is
       now above 30 and it bought once: one-time. Nobody is more than 365 days away. */
    cr_assert_eq(scheme.n_segments, 3);
    cr_assert_str_eq(scheme.segment_names[0], "New");
    cr_assert_str_eq(scheme.segment_names[1], "One-time buyer");
    cr_assert_str_eq(scheme.segment_names[2], "Repeat buyer");
    const int32_t segments[] = {0, 2, 1, 1, 2};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(scheme.segment[i], segments[i], "row %zu", i);
    kseg_scheme_destroy(&scheme);
}

Test(segment_scheme, crosstab_matches_a_direct_count)
{
    test_rng rng = {5};
    for (int trial = 0; trial < 100; trial++) {
        size_t n = rng_below(&rng, 500), n_a = 1 + rng_below(&rng, 6), n_b = 1 + rng_below(&rng, 5);
        int32_t *codes_a = malloc((n + 1) * sizeof *codes_a);
        int32_t *codes_b = malloc((n + 1) * sizeof *codes_b);
        double *value = malloc((n + 1) * sizeof *value);
        for (size_t i = 0; i < n; i++) {
            codes_a[i] = (int32_t)rng_below(&rng, n_a);
            codes_b[i] = (int32_t)rng_below(&rng, n_b);
            value[i] = 1000.0 * rng_uniform(&rng) - 100.0;
        }
        static const char *const names[] = {"a", "b", "c", "d", "e", "f"};
        kseg_scheme a, b;
        kseg_error error = {0};
        cr_assert_eq(kseg_category_scheme("first", n, codes_a, names, n_a, &a, &error), 0);
        cr_assert_eq(kseg_category_scheme("second", n, codes_b, names, n_b, &b, &error), 0);
        size_t cells = a.n_segments * b.n_segments;
        int64_t *counts = malloc((cells + 1) * sizeof *counts);
        double *sums = malloc((cells + 1) * sizeof *sums);
        cr_assert_eq(kseg_crosstab(&a, &b, value, counts, sums, &error), 0, "%s", error.message);
        int64_t total = 0;
        for (size_t x = 0; x < a.n_segments; x++)
            for (size_t y = 0; y < b.n_segments; y++) {
                int64_t count = 0;
                double sum = 0.0;
                for (size_t i = 0; i < n; i++)
                    if (a.segment[i] == (int32_t)x && b.segment[i] == (int32_t)y) {
                        count++;
                        sum += value[i];
                    }
                cr_assert_eq(counts[x * b.n_segments + y], count);
                cr_assert_eq(sums[x * b.n_segments + y], sum);
                total += counts[x * b.n_segments + y];
            }
        cr_assert_eq(total, (int64_t)n);
        /* Without values only the counts are filled. */
        cr_assert_eq(kseg_crosstab(&a, &b, NULL, counts, NULL, &error), 0, "%s", error.message);
        total = 0;
        for (size_t c = 0; c < cells; c++)
            total += counts[c];
        cr_assert_eq(total, (int64_t)n);
        kseg_scheme_destroy(&a);
        kseg_scheme_destroy(&b);
        free(counts);
        free(sums);
        free(codes_a);
        free(codes_b);
        free(value);
    }
}

/* ---------------------------------------------------------------- schemes: errors */

Test(segment_errors, cluster_label_out_of_range_names_the_row)
{
    const int32_t labels[] = {0, 1, 2, 7, 1};
    const int32_t map[] = {0, 1, 1};
    const char *const names[] = {"Big", "Small"};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_scheme_from_clusters("kmeans", 5, labels, 3, map, names, 2, &scheme,
                                           &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "customer row 3"), "%s", error.message);
    cr_assert(strstr(error.message, "0..2"), "%s", error.message);
    cr_assert_null(scheme.segment);
    kseg_scheme_destroy(&scheme);

    const int32_t bad_map[] = {0, 2, 1};
    const int32_t good_labels[] = {0, 1, 2};
    cr_assert_eq(kseg_scheme_from_clusters("kmeans", 3, good_labels, 3, bad_map, names, 2,
                                           &scheme, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "cluster 1 maps to segment 2"), "%s", error.message);

    const char *const same_names[] = {"Big", "Big"};
    cr_assert_eq(kseg_scheme_from_clusters("kmeans", 3, good_labels, 3, map, same_names, 2,
                                           &scheme, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "'Big'"), "%s", error.message);
}

Test(segment_errors, category_code_out_of_range_names_the_row)
{
    const int32_t codes[] = {0, 1, -1};
    const char *const names[] = {"web", "store"};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_category_scheme("channel", 3, codes, names, 2, &scheme, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "customer row 2"), "%s", error.message);
    cr_assert(strstr(error.message, "channel"), "%s", error.message);
}

Test(segment_errors, bands_must_increase_and_values_must_be_numbers)
{
    const double values[] = {1.0, 2.0, NAN, 4.0};
    const double flat[] = {1.0, 3.0, 3.0};
    const double falling[] = {5.0, 1.0};
    const double good[] = {2.5};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_band_scheme("spend", 4, values, flat, 3, &scheme, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "strictly increasing"), "%s", error.message);
    cr_assert(strstr(error.message, "edge 2"), "%s", error.message);
    cr_assert_eq(kseg_band_scheme("spend", 4, values, falling, 2, &scheme, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_band_scheme("spend", 4, values, good, 0, &scheme, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_band_scheme("spend", 4, values, good, 1, &scheme, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 2"), "%s", error.message);
    cr_assert_null(scheme.segment);
}

Test(segment_errors, crosstab_needs_schemes_of_the_same_size)
{
    const int32_t codes[] = {0, 1, 0, 1};
    const char *const names[] = {"x", "y"};
    kseg_scheme a, b;
    kseg_error error = {0};
    cr_assert_eq(kseg_category_scheme("four", 4, codes, names, 2, &a, &error), 0);
    cr_assert_eq(kseg_category_scheme("three", 3, codes, names, 2, &b, &error), 0);
    int64_t counts[4];
    cr_assert_eq(kseg_crosstab(&a, &b, NULL, counts, NULL, &error), KSEG_ESHAPE);
    cr_assert(strstr(error.message, "'four' covers 4"), "%s", error.message);
    cr_assert(strstr(error.message, "'three' covers 3"), "%s", error.message);
    /* A corrupted scheme is caught with its row. */
    b.n_customers = 4;
    free(b.segment);
    b.segment = malloc(4 * sizeof *b.segment);
    memcpy(b.segment, (const int32_t[]){0, 1, 5, 0}, 4 * sizeof *b.segment);
    cr_assert_eq(kseg_crosstab(&a, &b, NULL, counts, NULL, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "customer row 2"), "%s", error.message);
    const double value[] = {1.0, NAN, 1.0, 1.0};
    b.segment[2] = 1;
    double sums[4];
    cr_assert_eq(kseg_crosstab(&a, &b, value, counts, sums, &error), KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 1"), "%s", error.message);
    kseg_scheme_destroy(&a);
    kseg_scheme_destroy(&b);
}

Test(segment_errors, lifecycle_nan_names_the_row)
{
    const double recency[] = {10.0, 20.0};
    const double frequency[] = {1.0, NAN};
    const double tenure[] = {100.0, 200.0};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_lifecycle_scheme(2, recency, frequency, tenure, NULL, NULL, &scheme,
                                       &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 1"), "%s", error.message);
    cr_assert(strstr(error.message, "frequency"), "%s", error.message);
    /* The same row is fine when the customer never bought. */
    const uint8_t bought[] = {1, 0};
    cr_assert_eq(kseg_lifecycle_scheme(2, recency, frequency, tenure, bought, NULL, &scheme,
                                       &error),
                 0, "%s", error.message);
    kseg_scheme_destroy(&scheme);
}

/* ---------------------------------------------------------------- rules */

static kseg_rule_condition level_condition(size_t feature, unsigned levels)
{
    return (kseg_rule_condition){.feature = feature, .levels = levels, .min = 0.0, .max = 0.0};
}

static kseg_rule_condition range_condition(size_t feature, double min, double max)
{
    return (kseg_rule_condition){.feature = feature, .levels = 0, .min = min, .max = max};
}

/* Appends a rule with copies of its name and conditions (kseg_rules_destroy frees them). */
static void add_rule(kseg_rules *rules, const char *segment, size_t n_conditions,
                     const kseg_rule_condition *conditions)
{
    rules->rules = realloc(rules->rules, (rules->n_rules + 1) * sizeof *rules->rules);
    kseg_rule *rule = &rules->rules[rules->n_rules++];
    rule->segment = strdup(segment);
    rule->n_conditions = n_conditions;
    rule->conditions = malloc((n_conditions ? n_conditions : 1) * sizeof *rule->conditions);
    if (n_conditions)
        memcpy(rule->conditions, conditions, n_conditions * sizeof *conditions);
}

/* Applies rules and checks the names and the cluster -> segment map. */
static void assert_rules_give(const kseg_rules *rules, const double *centroids, size_t k,
                              size_t d, const double *low, const double *high,
                              const char *const *expected_names, size_t n_expected,
                              const int32_t *expected_segments)
{
    int32_t cluster_segment[16];
    char **names = NULL;
    size_t n_names = 0;
    kseg_error error = {0};
    cr_assert_eq(kseg_rules_apply(rules, centroids, k, d, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 0, "%s", error.message);
    cr_assert_eq(n_names, n_expected);
    for (size_t s = 0; s < n_names; s++)
        cr_assert_str_eq(names[s], expected_names[s], "segment %zu", s);
    for (size_t c = 0; c < k; c++)
        cr_assert_eq(cluster_segment[c], expected_segments[c], "cluster %zu: %s, expected %s", c,
                     names[cluster_segment[c]], expected_names[expected_segments[c]]);
    free_names(names, n_names);
}

Test(segment_rules, defaults)
{
    kseg_rules rules;
    kseg_rules_init(&rules);
    cr_assert_eq(rules.low_quantile, 1.0 / 3.0);
    cr_assert_eq(rules.high_quantile, 2.0 / 3.0);
    cr_assert_eq(rules.n_rules, 0);
    cr_assert_null(rules.fallback);
    kseg_rules_destroy(&rules);
}

Test(segment_rules, level_thresholds_are_numpy_quantiles)
{
    /* Column 0 sorted is 1 1 2 3 4 5 6 9: virtual indices 7/3 and 14/3 give 2 + 1/3 and
       4 + 2/3. Column 1 is 0, 10, ..., 70 shuffled: 70/3 and 140/3. */
    const double data[8 * 2] = {3, 40, 1, 0, 4, 70, 1, 20, 5, 10, 9, 60, 2, 30, 6, 50};
    double low[2], high[2];
    kseg_error error = {0};
    cr_assert_eq(kseg_level_thresholds(data, 8, 2, 1.0 / 3.0, 2.0 / 3.0, low, high, &error), 0,
                 "%s", error.message);
    cr_assert_float_eq(low[0], 7.0 / 3.0, 1e-12);
    cr_assert_float_eq(high[0], 14.0 / 3.0, 1e-12);
    cr_assert_float_eq(low[1], 70.0 / 3.0, 1e-12);
    cr_assert_float_eq(high[1], 140.0 / 3.0, 1e-12);

    /* numpy.quantile([10, 0.5, 7.25, 3], [1/3, 2/3]) is exactly [3, 7.25]; 0 and 1 give the
       extremes; quantiles 0.25 and 0.9 of 2 4 8 are 3 and 7.2. */
    const double four[] = {10.0, 0.5, 7.25, 3.0};
    cr_assert_eq(kseg_level_thresholds(four, 4, 1, 1.0 / 3.0, 2.0 / 3.0, low, high, &error), 0);
    cr_assert_eq(low[0], 3.0);
    cr_assert_eq(high[0], 7.25);
    cr_assert_eq(kseg_level_thresholds(four, 4, 1, 0.0, 1.0, low, high, &error), 0);
    cr_assert_eq(low[0], 0.5);
    cr_assert_eq(high[0], 10.0);
    const double three[] = {8.0, 2.0, 4.0};
    cr_assert_eq(kseg_level_thresholds(three, 3, 1, 0.25, 0.9, low, high, &error), 0);
    cr_assert_eq(low[0], 3.0);
    cr_assert_float_eq(high[0], 7.2, 1e-12);
    /* One customer: every quantile is its value. */
    cr_assert_eq(kseg_level_thresholds(three, 1, 1, 0.3, 0.6, low, high, &error), 0);
    cr_assert_eq(low[0], 8.0);
    cr_assert_eq(high[0], 8.0);

    cr_assert_eq(kseg_level_thresholds(four, 4, 1, 0.7, 0.2, low, high, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_level_thresholds(four, 0, 1, 0.2, 0.7, low, high, &error), KSEG_EEMPTY);
    const double with_nan[] = {1.0, 2.0, 3.0, NAN};
    cr_assert_eq(kseg_level_thresholds(with_nan, 2, 2, 0.2, 0.7, low, high, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 1, feature 1"), "%s", error.message);
}

Test(segment_rules, levels_low_mid_high_against_the_thresholds)
{
    const double low[] = {10.0, 100.0}, high[] = {20.0, 200.0};
    kseg_rules rules;
    kseg_rules_init(&rules);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "Low", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_LOW)});
    add_rule(&rules, "Mid", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_MID)});
    add_rule(&rules, "High", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    /* On a threshold counts as that side: <= low is low, >= high is high. */
    const double centroids[6 * 2] = {10.0, 0, 9.99, 0, 10.01, 0, 19.99, 0, 20.0, 0, 25.0, 0};
    assert_rules_give(&rules, centroids, 6, 2, low, high,
                      (const char *const[]){"Low", "Mid", "High"}, 3,
                      (const int32_t[]){0, 0, 1, 1, 2, 2});
    kseg_rules_destroy(&rules);

    /* A mask allows several levels; what it does not allow falls through to the fallback. */
    kseg_rules_init(&rules);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "Not high", 1,
             (kseg_rule_condition[]){level_condition(1, KSEG_LEVEL_LOW | KSEG_LEVEL_MID)});
    const double second[3 * 2] = {0, 50.0, 0, 150.0, 0, 200.0};
    assert_rules_give(&rules, second, 3, 2, low, high, (const char *const[]){"Not high", "Rest"},
                      2, (const int32_t[]){0, 0, 1});
    kseg_rules_destroy(&rules);

    /* Equal thresholds (a feature with a heavy value): a centroid on them is low and high. */
    const double flat_low[] = {5.0}, flat_high[] = {5.0};
    kseg_rules_init(&rules);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "High", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    add_rule(&rules, "Mid", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_MID)});
    const double flat[] = {5.0, 4.0};
    assert_rules_give(&rules, flat, 2, 1, flat_low, flat_high,
                      (const char *const[]){"High", "Rest"}, 2, (const int32_t[]){0, 1});
    kseg_rules_destroy(&rules);
}

Test(segment_rules, first_match_wins)
{
    const double low[] = {10.0, 100.0}, high[] = {20.0, 200.0};
    kseg_rules rules;
    kseg_rules_init(&rules);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "A", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    add_rule(&rules, "B", 2,
             (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH),
                                     level_condition(1, KSEG_LEVEL_LOW)});
    add_rule(&rules, "C", 2,
             (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_LOW),
                                     level_condition(1, KSEG_LEVEL_LOW)});
    /* A rule without conditions matches every cluster that reaches it. */
    add_rule(&rules, "Everyone else", 0, NULL);
    /* Cluster 0 matches A and B: A wins and B never gets a cluster. Cluster 1 matches C and the
       catch-all: C wins. Cluster 2 only reaches the catch-all, so the fallback stays unused. */
    const double centroids[3 * 2] = {25.0, 50.0, 5.0, 50.0, 15.0, 150.0};
    assert_rules_give(&rules, centroids, 3, 2, low, high,
                      (const char *const[]){"A", "C", "Everyone else"}, 3,
                      (const int32_t[]){0, 1, 2});
    kseg_rules_destroy(&rules);
}

Test(segment_rules, explicit_ranges_are_inclusive)
{
    kseg_rules rules;
    kseg_rules_init(&rules);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "Big", 1, (kseg_rule_condition[]){range_condition(0, 150.0, INFINITY)});
    add_rule(&rules, "Tiny", 1, (kseg_rule_condition[]){range_condition(0, -INFINITY, 50.0)});
    add_rule(&rules, "Exactly 100", 1, (kseg_rule_condition[]){range_condition(0, 100.0, 100.0)});
    add_rule(&rules, "Both", 2,
             (kseg_rule_condition[]){range_condition(0, 60.0, 90.0),
                                     range_condition(1, 1.0, 2.0)});
    const double centroids[7 * 2] = {150.0, 0,   50.0, 0,   100.0, 0,  100.0001, 0,
                                     1e300, 0,   75.0, 1.5, 75.0,  2.5};
    /* No levels are used, so no thresholds are needed. */
    assert_rules_give(&rules, centroids, 7, 2, NULL, NULL,
                      (const char *const[]){"Big", "Tiny", "Exactly 100", "Both", "Rest"}, 5,
                      (const int32_t[]){0, 1, 2, 4, 0, 3, 4});
    kseg_rules_destroy(&rules);
}

Test(segment_rules, fallback_shared_segments_and_name_order)
{
    const double low[] = {10.0, 100.0}, high[] = {20.0, 200.0};
    kseg_rules rules;
    kseg_rules_init(&rules);
    rules.fallback = strdup("Others");
    add_rule(&rules, "Champions", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    add_rule(&rules, "Regulars", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_MID)});
    add_rule(&rules, "Champions", 1, (kseg_rule_condition[]){level_condition(1, KSEG_LEVEL_HIGH)});
    add_rule(&rules, "Sleepers", 2,
             (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_LOW),
                                     level_condition(1, KSEG_LEVEL_LOW)});
    /* Two rules and two clusters lead to Champions; Regulars gets no cluster and is left out;
       the fallback comes last. */
    const double centroids[4 * 2] = {5.0, 300.0, 25.0, 150.0, 5.0, 50.0, 5.0, 150.0};
    assert_rules_give(&rules, centroids, 4, 2, low, high,
                      (const char *const[]){"Champions", "Sleepers", "Others"}, 3,
                      (const int32_t[]){0, 0, 1, 2});
    kseg_rules_destroy(&rules);

    /* A rule may name the fallback: the segment then sits where that rule puts it. */
    kseg_rules_init(&rules);
    rules.fallback = strdup("Others");
    add_rule(&rules, "Others", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    add_rule(&rules, "Low", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_LOW)});
    const double second[3 * 2] = {25.0, 0, 15.0, 0, 5.0, 0};
    assert_rules_give(&rules, second, 3, 2, low, high, (const char *const[]){"Others", "Low"}, 2,
                      (const int32_t[]){0, 0, 1});
    /* Nothing matches at all: one segment, the fallback. */
    rules.n_rules = 0;
    assert_rules_give(&rules, second, 3, 2, low, high, (const char *const[]){"Others"}, 1,
                      (const int32_t[]){0, 0, 0});
    rules.n_rules = 2;
    kseg_rules_destroy(&rules);
}

Test(segment_rules, rule_errors)
{
    const double low[] = {10.0}, high[] = {20.0};
    const double centroids[] = {5.0};
    int32_t cluster_segment[1];
    char **names = NULL;
    size_t n_names = 0;
    kseg_error error = {0};
    kseg_rules rules;
    kseg_rules_init(&rules);
    add_rule(&rules, "A", 1, (kseg_rule_condition[]){level_condition(0, KSEG_LEVEL_HIGH)});
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "fallback"), "%s", error.message);
    rules.fallback = strdup("Rest");
    add_rule(&rules, "B", 1, (kseg_rule_condition[]){level_condition(3, KSEG_LEVEL_LOW)});
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "rule 1 ('B')"), "%s", error.message);
    cr_assert(strstr(error.message, "feature 3"), "%s", error.message);
    rules.rules[1].conditions[0] = range_condition(0, 5.0, 1.0);
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "min <= max"), "%s", error.message);
    rules.rules[1].conditions[0] = level_condition(0, 8);
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_EINVAL);
    rules.rules[1].conditions[0] = level_condition(0, KSEG_LEVEL_LOW);
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, NULL, NULL, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "thresholds"), "%s", error.message);
    const double nan_centroid[] = {NAN};
    cr_assert_eq(kseg_rules_apply(&rules, nan_centroid, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "cluster 0"), "%s", error.message);
    cr_assert_null(names);
    cr_assert_eq(kseg_rules_apply(&rules, centroids, 1, 1, low, high, cluster_segment, &names,
                                  &n_names, &error),
                 0, "%s", error.message);
    cr_assert_eq(n_names, 1);
    cr_assert_str_eq(names[0], "B");
    free_names(names, n_names);
    kseg_rules_destroy(&rules);
}

/* ---------------------------------------------------------------- automatic names */

static char **auto_names(const double *z, size_t k, size_t d, const char *const *features)
{
    char **names = NULL;
    kseg_error error = {0};
    cr_assert_eq(kseg_auto_names(z, k, d, features, &names, &error), 0, "%s", error.message);
    return names;
}

Test(segment_auto_names, vocabulary_for_rfm_and_tenure)
{
    const char *const features[] = {"recency", "frequency", "monetary", "tenure", "income"};
    const double z[3 * 5] = {
        1.0,  -0.5, 2.0,  0.1,  0.0,  /* spends much, lapsed, rare */
        -1.0, 0.8,  -0.3, -2.0, 0.0,  /* new, recent, frequent (monetary is fourth) */
        0.1,  0.0,  0.0,  0.3,  -1.5, /* low income, long-standing */
    };
    char **names = auto_names(z, 3, 5, features);
    cr_assert_str_eq(names[0], "High spend \xC2\xB7 Lapsed \xC2\xB7 Rare");
    cr_assert_str_eq(names[1], "New \xC2\xB7 Recent \xC2\xB7 Frequent");
    cr_assert_str_eq(names[2], "Low income \xC2\xB7 Long-standing");
    free_names(names, 3);

    const double opposite[2 * 5] = {-1.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9};
    names = auto_names(opposite, 2, 5, features);
    cr_assert_str_eq(names[0], "Low spend \xC2\xB7 Recent");
    cr_assert_str_eq(names[1], "High income");
    free_names(names, 2);

    /* Units and qualifiers after the word still count; a longer word does not. Equal |z|: the
       lower feature first. */
    const char *const variants[] = {"recency_days", "Monetary value", "recencyx", "Tenure"};
    const double z_variants[] = {-1.0, 0.5, 0.5, 0.0};
    names = auto_names(z_variants, 1, 4, variants);
    cr_assert_str_eq(names[0], "Recent \xC2\xB7 High spend \xC2\xB7 High recencyx");
    free_names(names, 1);
}

Test(segment_auto_names, average_when_nothing_is_distinctive)
{
    const char *const features[] = {"recency", "frequency", "monetary"};
    const double z[3 * 3] = {0.1, -0.2, 0.2499, 0.25, 0.0, 0.0, 0.0, -0.25, 0.0};
    char **names = auto_names(z, 3, 3, features);
    cr_assert_str_eq(names[0], "Average");
    /* |z| = 0.25 is distinctive. */
    cr_assert_str_eq(names[1], "Lapsed");
    cr_assert_str_eq(names[2], "Rare");
    free_names(names, 3);
}

Test(segment_auto_names, equal_names_are_told_apart)
{
    /* Three identical clusters: only the cluster number tells them apart. */
    const char *const rfm[] = {"monetary", "frequency"};
    const double same[3 * 2] = {1.0, 0.0, 1.0, 0.0, 1.0, 0.0};
    char **names = auto_names(same, 3, 2, rfm);
    cr_assert_str_eq(names[0], "High spend (cluster 0)");
    cr_assert_str_eq(names[1], "High spend (cluster 1)");
    cr_assert_str_eq(names[2], "High spend (cluster 2)");
    free_names(names, 3);

    /* The same first three features: a fourth one separates clusters 0 and 1; cluster 2 has no
       fourth and keeps the short name, now unique. Two "Average" clusters get numbers. */
    const char *const features[] = {"a", "b", "c", "d", "e"};
    const double z[5 * 5] = {
        3.0, 2.0, 1.0, 0.5, 0.0,  3.0, 2.0, 1.0, 0.0, -0.6, 3.0, 2.0, 1.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,  0.1, 0.1, 0.1, 0.1, 0.1,
    };
    names = auto_names(z, 5, 5, features);
    cr_assert_str_eq(names[0], "High a \xC2\xB7 High b \xC2\xB7 High c \xC2\xB7 High d");
    cr_assert_str_eq(names[1], "High a \xC2\xB7 High b \xC2\xB7 High c \xC2\xB7 Low e");
    cr_assert_str_eq(names[2], "High a \xC2\xB7 High b \xC2\xB7 High c");
    cr_assert_str_eq(names[3], "Average (cluster 3)");
    cr_assert_str_eq(names[4], "Average (cluster 4)");
    free_names(names, 5);
}

Test(segment_auto_names, always_distinct_and_deterministic)
{
    const char *const features[] = {"recency", "frequency", "monetary", "tenure", "age", "income"};
    static const double levels[] = {-1.0, -0.5, 0.0, 0.0, 0.5, 1.0};
    test_rng rng = {6};
    for (int trial = 0; trial < 200; trial++) {
        size_t k = 1 + rng_below(&rng, 30), d = 1 + rng_below(&rng, 6);
        double *z = malloc(k * d * sizeof *z);
        /* Few distinct values, so that many clusters start with equal names. */
        for (size_t e = 0; e < k * d; e++)
            z[e] = levels[rng_below(&rng, 6)];
        char **first = auto_names(z, k, d, features);
        char **second = auto_names(z, k, d, features);
        for (size_t c = 0; c < k; c++) {
            cr_assert_str_eq(first[c], second[c]);
            for (size_t other = 0; other < c; other++)
                cr_assert_str_neq(first[c], first[other], "trial %d: clusters %zu and %zu", trial,
                                  other, c);
        }
        free_names(first, k);
        free_names(second, k);
        free(z);
    }
}

Test(segment_auto_names, nan_is_an_error)
{
    const double z[] = {0.5, NAN};
    char **names = NULL;
    kseg_error error = {0};
    cr_assert_eq(kseg_auto_names(z, 1, 2, NULL, &names, &error), KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "cluster 0, feature 1"), "%s", error.message);
    cr_assert_null(names);
    /* Without feature names the features are numbered. */
    const double fine[] = {0.5, -1.0};
    names = auto_names(fine, 1, 2, NULL);
    cr_assert_str_eq(names[0], "Low feature 1 \xC2\xB7 High feature 0");
    free_names(names, 1);
}

/* ---------------------------------------------------------------- merging */

/* A merge run's names and map, checked for what every run must satisfy: names distinct, every
 * input in a merged segment, every merged segment holding at least one input, and, from totals
 * recomputed through the map, no segment below a threshold unless only one remains. */
static void assert_merge_invariants(const kseg_merge_options *options, size_t m,
                                    const char *const *names, const double *customers,
                                    const double *revenue, const kseg_merge_result *result)
{
    const size_t merged = result->n_merged_segments;
    cr_assert_geq(merged, m ? 1 : 0);
    cr_assert_leq(merged, m + 1);
    for (size_t s = 0; s < merged; s++)
        for (size_t t = 0; t < s; t++)
            cr_assert_str_neq(result->names[s], result->names[t]);
    double *merged_customers = calloc(merged + 1, sizeof *merged_customers);
    double *merged_revenue = calloc(merged + 1, sizeof *merged_revenue);
    size_t *members = calloc(merged + 1, sizeof *members);
    double total_customers = 0.0, total_revenue = 0.0;
    for (size_t s = 0; s < m; s++) {
        int32_t target = result->segment_map[s];
        cr_assert(target >= 0 && (size_t)target < merged, "input %zu maps to %d", s, target);
        merged_customers[target] += customers[s];
        merged_revenue[target] += revenue ? revenue[s] : 0.0;
        members[target]++;
        total_customers += customers[s];
        total_revenue += revenue ? revenue[s] : 0.0;
    }
    for (size_t t = 0; t < merged; t++) {
        cr_assert_gt(members[t], 0, "merged segment %zu ('%s') is empty", t, result->names[t]);
        if (merged == 1)
            continue;
        /* A tiny slack: the totals here are summed in another order than the library's. */
        double customer_share = merged_customers[t] / total_customers;
        cr_assert_geq(customer_share, options->min_customer_share - 1e-12,
                      "segment '%s' keeps customer share %g", result->names[t], customer_share);
        if (options->min_revenue_share > 0.0) {
            double revenue_share = merged_revenue[t] / total_revenue;
            cr_assert_geq(revenue_share, options->min_revenue_share - 1e-12,
                          "segment '%s' keeps revenue share %g", result->names[t],
                          revenue_share);
        }
    }
    /* Names: the surviving inputs in input order, then "Other" if it was created. */
    size_t next = 0;
    for (size_t s = 0; s < m && next < merged; s++)
        if (strcmp(names[s], result->names[next]) == 0)
            next++;
    if (next < merged) {
        cr_assert_eq(next, merged - 1, "names out of order");
        cr_assert_str_eq(result->names[next], "Other");
    }
    free(merged_customers);
    free(merged_revenue);
    free(members);
}

/* Replays the records on the input names and checks the groups they give against the map: the
 * records must tell the whole story of the merge. */
static void assert_records_match_map(size_t m, const char *const *names,
                                     const kseg_merge_result *result)
{
    /* group_name[s]: the name of the segment input s is in now; "Other" may appear. */
    const char **group_name = malloc((m + 1) * sizeof *group_name);
    for (size_t s = 0; s < m; s++)
        group_name[s] = names[s];
    for (size_t r = 0; r < result->n_records; r++) {
        const kseg_merge_record *record = &result->records[r];
        cr_assert(record->reason && strstr(record->reason, "share"), "record %zu", r);
        cr_assert_str_neq(record->from, record->into);
        for (size_t s = 0; s < m; s++)
            if (strcmp(group_name[s], record->from) == 0)
                group_name[s] = record->into;
    }
    for (size_t s = 0; s < m; s++)
        cr_assert_str_eq(group_name[s], result->names[result->segment_map[s]], "input %zu", s);
    free(group_name);
}

Test(segment_merge, never_leaves_a_segment_below_a_threshold)
{
    test_rng rng = {7};
    for (int trial = 0; trial < 2000; trial++) {
        size_t m = 1 + rng_below(&rng, 12), d = 1 + rng_below(&rng, 3);
        kseg_merge_options options;
        kseg_merge_options_defaults(&options);
        options.mode = trial % 2 ? KSEG_MERGE_OTHER : KSEG_MERGE_NEAREST;
        options.min_customer_share = rng_uniform(&rng) * 0.3;
        int with_revenue = rng_below(&rng, 3) != 0;
        if (with_revenue && rng_below(&rng, 2))
            options.min_revenue_share = rng_uniform(&rng) * 0.3;
        char **names = malloc(m * sizeof *names);
        double *customers = malloc(m * sizeof *customers);
        double *revenue = malloc(m * sizeof *revenue);
        double *centers = malloc(m * d * sizeof *centers);
        /* Now and then an input segment is already called "Other". */
        size_t other_at = rng_below(&rng, 4) == 0 ? rng_below(&rng, m) : m;
        for (size_t s = 0; s < m; s++) {
            names[s] = malloc(32);
            snprintf(names[s], 32, s == other_at ? "Other" : "s%zu", s);
            /* Sizes over three orders of magnitude, whole numbers so that ties happen. */
            customers[s] = (double)(rng_below(&rng, 4) == 0 ? rng_below(&rng, 5)
                                                            : 1 + rng_below(&rng, 1000));
            revenue[s] = customers[s] * (1.0 + 100.0 * rng_uniform(&rng));
            for (size_t j = 0; j < d; j++)
                centers[s * d + j] = (double)rng_below(&rng, 5);
        }
        kseg_merge_result result;
        kseg_error error = {0};
        cr_assert_eq(kseg_merge_small_segments(&options, m, (const char *const *)names, customers,
                                               with_revenue ? revenue : NULL, centers, d, &result,
                                               &error),
                     0, "trial %d: %s", trial, error.message);
        assert_merge_invariants(&options, m, (const char *const *)names, customers,
                                with_revenue ? revenue : NULL, &result);
        assert_records_match_map(m, (const char *const *)names, &result);
        /* Deterministic: the same call gives the same map. */
        kseg_merge_result again;
        cr_assert_eq(kseg_merge_small_segments(&options, m, (const char *const *)names, customers,
                                               with_revenue ? revenue : NULL, centers, d, &again,
                                               &error),
                     0);
        cr_assert_eq(again.n_merged_segments, result.n_merged_segments);
        for (size_t s = 0; s < m; s++)
            cr_assert_eq(again.segment_map[s], result.segment_map[s]);
        kseg_merge_result_destroy(&again);
        kseg_merge_result_destroy(&result);
        free_names(names, m);
        free(customers);
        free(revenue);
        free(centers);
    }
}

Test(segment_merge, nearest_recombines_centers)
{
    /* 1-D centers 0, 13, 6, 20 with 1, 1, 100, 100 customers; 2% of 202 is 4.04 customers.
       s0 (tie with s1 on size, lower id) joins s2 at distance 6, which moves s2 to 600/101 =
       5.94. s1 at 13 is then nearer s3 (7) than s2 (7.06): with the old center it would have
       been a tie, won by s2. */
    const char *const names[] = {"s0", "s1", "s2", "s3"};
    const double customers[] = {1.0, 1.0, 100.0, 100.0};
    const double centers[] = {0.0, 13.0, 6.0, 20.0};
    kseg_merge_options options;
    kseg_merge_options_defaults(&options);
    cr_assert_eq(options.min_customer_share, 0.0);
    cr_assert_eq(options.min_revenue_share, 0.0);
    cr_assert_eq(options.mode, KSEG_MERGE_NEAREST);
    options.min_customer_share = 0.02;
    kseg_merge_result result;
    kseg_error error = {0};
    cr_assert_eq(kseg_merge_small_segments(&options, 4, names, customers, NULL, centers, 1,
                                           &result, &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 2);
    cr_assert_str_eq(result.names[0], "s2");
    cr_assert_str_eq(result.names[1], "s3");
    const int32_t map[] = {0, 1, 0, 1};
    for (size_t s = 0; s < 4; s++)
        cr_assert_eq(result.segment_map[s], map[s], "segment %zu", s);
    cr_assert_eq(result.n_records, 2);
    cr_assert_str_eq(result.records[0].from, "s0");
    cr_assert_str_eq(result.records[0].into, "s2");
    cr_assert_str_eq(result.records[1].from, "s1");
    cr_assert_str_eq(result.records[1].into, "s3");
    cr_assert_float_eq(result.records[0].customer_share, 1.0 / 202.0, 1e-15);
    cr_assert_eq(result.records[0].revenue_share, 0.0);
    cr_assert_str_eq(result.records[0].reason, "customer share 0.5% < 2.0%");
    kseg_merge_result_destroy(&result);

    /* Equally near two segments: the lower id wins. */
    const double tie_customers[] = {50.0, 1.0, 49.0};
    const double tie_centers[] = {0.0, 10.0, 20.0};
    cr_assert_eq(kseg_merge_small_segments(&options, 3, names, tie_customers, NULL, tie_centers, 1,
                                           &result, &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 2);
    cr_assert_str_eq(result.records[0].into, "s0");
    kseg_merge_result_destroy(&result);

    /* Thresholds off (the defaults): nothing moves. */
    kseg_merge_options_defaults(&options);
    cr_assert_eq(kseg_merge_small_segments(&options, 4, names, customers, NULL, centers, 1,
                                           &result, &error),
                 0);
    cr_assert_eq(result.n_merged_segments, 4);
    cr_assert_eq(result.n_records, 0);
    for (size_t s = 0; s < 4; s++)
        cr_assert_eq(result.segment_map[s], (int32_t)s);
    kseg_merge_result_destroy(&result);
}

Test(segment_merge, a_merged_small_segment_can_merge_again)
{
    /* s0 and s1 (1 customer each of 104) join each other's nearest: s0 -> s1 makes s1 two
       customers, still below 5%, and s1 then joins its nearest, s2. The record says so, with
       the share s1 had when it moved. */
    const char *const names[] = {"s0", "s1", "s2", "s3"};
    const double customers[] = {1.0, 1.0, 51.0, 51.0};
    const double centers[] = {0.0, 1.0, 5.0, 100.0};
    kseg_merge_options options = {.min_customer_share = 0.05, .mode = KSEG_MERGE_NEAREST};
    kseg_merge_result result;
    kseg_error error = {0};
    cr_assert_eq(kseg_merge_small_segments(&options, 4, names, customers, NULL, centers, 1,
                                           &result, &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 2);
    cr_assert_eq(result.n_records, 2);
    cr_assert_str_eq(result.records[0].from, "s0");
    cr_assert_str_eq(result.records[0].into, "s1");
    cr_assert_str_eq(result.records[1].from, "s1");
    cr_assert_str_eq(result.records[1].into, "s2");
    cr_assert_float_eq(result.records[1].customer_share, 2.0 / 104.0, 1e-15);
    for (size_t s = 0; s < 3; s++)
        cr_assert_eq(result.segment_map[s], 0);
    cr_assert_eq(result.segment_map[3], 1);
    kseg_merge_result_destroy(&result);
}

Test(segment_merge, other_mode)
{
    kseg_merge_options options = {.min_customer_share = 0.05, .mode = KSEG_MERGE_OTHER};
    kseg_merge_result result;
    kseg_error error = {0};
    const char *const names[] = {"s0", "s1", "s2", "s3"};

    /* s1 and s2 (3% each) make an "Other" of 6%, which stays, listed last. */
    const double fine[] = {50.0, 3.0, 3.0, 44.0};
    cr_assert_eq(kseg_merge_small_segments(&options, 4, names, fine, NULL, NULL, 0, &result,
                                           &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 3);
    cr_assert_str_eq(result.names[0], "s0");
    cr_assert_str_eq(result.names[1], "s3");
    cr_assert_str_eq(result.names[2], "Other");
    const int32_t fine_map[] = {0, 2, 2, 1};
    for (size_t s = 0; s < 4; s++)
        cr_assert_eq(result.segment_map[s], fine_map[s]);
    cr_assert_eq(result.n_records, 2);
    cr_assert_str_eq(result.records[0].from, "s1");
    cr_assert_str_eq(result.records[0].into, "Other");
    cr_assert_str_eq(result.records[1].from, "s2");
    kseg_merge_result_destroy(&result);

    /* s1 and s2 make an "Other" of 3%, too small itself: it joins the nearest segment, s0 (at
       distance 1, s3 is at 5). */
    const double small[] = {50.0, 1.0, 2.0, 47.0};
    const double centers[] = {1.0, 0.0, 0.0, -5.0};
    cr_assert_eq(kseg_merge_small_segments(&options, 4, names, small, NULL, centers, 1, &result,
                                           &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 2);
    cr_assert_str_eq(result.names[0], "s0");
    cr_assert_str_eq(result.names[1], "s3");
    const int32_t small_map[] = {0, 0, 0, 1};
    for (size_t s = 0; s < 4; s++)
        cr_assert_eq(result.segment_map[s], small_map[s]);
    cr_assert_eq(result.n_records, 3);
    cr_assert_str_eq(result.records[2].from, "Other");
    cr_assert_str_eq(result.records[2].into, "s0");
    cr_assert_float_eq(result.records[2].customer_share, 0.03, 1e-15);
    kseg_merge_result_destroy(&result);

    /* A segment already named "Other" takes the small ones and keeps its place. */
    const char *const with_other[] = {"A", "Other", "B", "C"};
    const double sizes[] = {50.0, 10.0, 2.0, 38.0};
    cr_assert_eq(kseg_merge_small_segments(&options, 4, with_other, sizes, NULL, NULL, 0, &result,
                                           &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_merged_segments, 3);
    cr_assert_str_eq(result.names[0], "A");
    cr_assert_str_eq(result.names[1], "Other");
    cr_assert_str_eq(result.names[2], "C");
    const int32_t other_map[] = {0, 1, 1, 2};
    for (size_t s = 0; s < 4; s++)
        cr_assert_eq(result.segment_map[s], other_map[s]);
    cr_assert_eq(result.n_records, 1);
    cr_assert_str_eq(result.records[0].from, "B");
    cr_assert_str_eq(result.records[0].into, "Other");
    kseg_merge_result_destroy(&result);
}

Test(segment_merge, reasons)
{
    /* 8 of 1000 customers (0.8%) and 1 of 1000 revenue (0.1%). */
    const char *const names[] = {"small", "big"};
    const double customers[] = {8.0, 992.0};
    const double revenue[] = {1.0, 999.0};
    const double centers[] = {0.0, 1.0};
    kseg_merge_options options = {.min_customer_share = 0.02, .min_revenue_share = 0.01};
    kseg_merge_result result;
    kseg_error error = {0};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, customers, revenue, centers, 1,
                                           &result, &error),
                 0, "%s", error.message);
    cr_assert_eq(result.n_records, 1);
    cr_assert_str_eq(result.records[0].reason,
                     "customer share 0.8% < 2.0%; revenue share 0.1% < 1.0%");
    cr_assert_float_eq(result.records[0].revenue_share, 0.001, 1e-15);
    kseg_merge_result_destroy(&result);

    options.min_customer_share = 0.0;
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, customers, revenue, centers, 1,
                                           &result, &error),
                 0);
    cr_assert_str_eq(result.records[0].reason, "revenue share 0.1% < 1.0%");
    kseg_merge_result_destroy(&result);

    /* Shares that one decimal would print alike get more decimals. */
    const double close[] = {24.0, 9976.0};
    options = (kseg_merge_options){.min_customer_share = 0.0025};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, close, NULL, centers, 1, &result,
                                           &error),
                 0);
    cr_assert_str_eq(result.records[0].reason, "customer share 0.24% < 0.25%");
    kseg_merge_result_destroy(&result);
}

Test(segment_merge, merge_errors)
{
    const char *const names[] = {"a", "b"};
    const double customers[] = {1.0, 99.0};
    const double centers[] = {0.0, 1.0};
    kseg_merge_options options = {.min_revenue_share = 0.1};
    kseg_merge_result result;
    kseg_error error = {0};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, customers, NULL, centers, 1,
                                           &result, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "revenue"), "%s", error.message);
    options = (kseg_merge_options){.min_customer_share = 0.1};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, customers, NULL, NULL, 1, &result,
                                           &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "centers"), "%s", error.message);
    const char *const twice[] = {"a", "a"};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, twice, customers, NULL, centers, 1,
                                           &result, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "'a'"), "%s", error.message);
    const double negative[] = {-1.0, 5.0};
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, negative, NULL, centers, 1,
                                           &result, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "segment 0 ('a')"), "%s", error.message);
    options.min_customer_share = 1.5;
    cr_assert_eq(kseg_merge_small_segments(&options, 2, names, customers, NULL, centers, 1,
                                           &result, &error),
                 KSEG_EINVAL);
    cr_assert_null(result.segment_map);
}

/* ---------------------------------------------------------------- evaluation */

static double brute_force_median(const double *values, size_t n)
{
    double *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, values, n * sizeof *sorted);
    /* Insertion sort: slow and plainly right. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double swap = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = swap;
        }
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    free(sorted);
    return median;
}

Test(segment_evaluate, shares_priorities_means_and_medians)
{
    test_rng rng = {8};
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + rng_below(&rng, 400), m = 1 + rng_below(&rng, 8), d = rng_below(&rng, 4);
        int32_t *codes = malloc(n * sizeof *codes);
        double *value = malloc(n * sizeof *value);
        double *features = malloc((n * d + 1) * sizeof *features);
        for (size_t i = 0; i < n; i++) {
            codes[i] = (int32_t)rng_below(&rng, m);
            /* Whole amounts now and then, so that revenue ties between segments can happen. */
            value[i] = trial % 3 ? 500.0 * rng_uniform(&rng) : (double)rng_below(&rng, 3);
            for (size_t j = 0; j < d; j++)
                features[i * d + j] = (double)rng_below(&rng, 20) + 0.25 * (double)j;
        }
        static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
        kseg_scheme scheme;
        kseg_error error = {0};
        cr_assert_eq(kseg_scheme_from_clusters("test", n, codes, m, (const int32_t[]){0, 1, 2, 3,
                                                                                      4, 5, 6, 7},
                                               names, m, &scheme, &error),
                     0, "%s", error.message);
        const int unit_value = trial % 4 == 0;
        kseg_evaluation evaluation;
        cr_assert_eq(kseg_evaluate_scheme(&scheme, features, d, unit_value ? NULL : value,
                                          &evaluation, &error),
                     0, "%s", error.message);
        cr_assert_eq(evaluation.n_segments, m);
        cr_assert_eq(evaluation.n_features, d);
        cr_assert_eq(evaluation.total_customers, (int64_t)n);

        double customer_shares = 0.0, revenue_shares = 0.0, total_revenue = 0.0;
        int *seen = calloc(m, sizeof *seen);
        for (size_t p = 0; p < m; p++) {
            const kseg_segment_stats *stats = &evaluation.segments[p];
            cr_assert_eq(stats->priority, (int32_t)(p + 1));
            cr_assert(stats->segment >= 0 && (size_t)stats->segment < m);
            cr_assert_eq(seen[stats->segment]++, 0, "segment %d listed twice", stats->segment);
            /* Brute force over the rows of this segment. */
            int64_t count = 0;
            double revenue = 0.0;
            for (size_t i = 0; i < n; i++)
                if (codes[i] == stats->segment) {
                    count++;
                    revenue += unit_value ? 1.0 : value[i];
                }
            cr_assert_eq(stats->customers, count);
            cr_assert_float_eq(stats->revenue, revenue, 1e-9 * (1.0 + fabs(revenue)));
            if (unit_value)
                cr_assert_eq(stats->revenue, (double)count);
            cr_assert_float_eq(stats->customer_share, (double)count / (double)n, 1e-15);
            cr_assert_float_eq(stats->value_per_customer, count ? revenue / (double)count : 0.0,
                               1e-9 * (1.0 + fabs(revenue)));
            if (p > 0) {
                /* Sorted by revenue, then more customers, then the lower id. */
                const kseg_segment_stats *before = &evaluation.segments[p - 1];
                cr_assert(before->revenue > stats->revenue ||
                              (before->revenue == stats->revenue &&
                               (before->customers > stats->customers ||
                                (before->customers == stats->customers &&
                                 before->segment < stats->segment))),
                          "priorities %zu and %zu out of order", p, p + 1);
            }
            customer_shares += stats->customer_share;
            revenue_shares += stats->revenue_share;
            total_revenue += stats->revenue;
            cr_assert_float_eq(stats->cumulative_customer_share, customer_shares, 1e-12);
            cr_assert_float_eq(stats->cumulative_revenue_share, revenue_shares, 1e-12);
            double *column = malloc((size_t)(count + 1) * sizeof *column);
            for (size_t j = 0; j < d; j++) {
                size_t filled = 0;
                double sum = 0.0;
                for (size_t i = 0; i < n; i++)
                    if (codes[i] == stats->segment) {
                        column[filled++] = features[i * d + j];
                        sum += features[i * d + j];
                    }
                if (count == 0) {
                    cr_assert(isnan(stats->mean[j]) && isnan(stats->median[j]));
                    continue;
                }
                cr_assert_float_eq(stats->mean[j], sum / (double)count, 1e-12);
                cr_assert_eq(stats->median[j], brute_force_median(column, filled));
            }
            free(column);
        }
        cr_assert_float_eq(customer_shares, 1.0, 1e-12);
        if (total_revenue != 0.0) {
            cr_assert_float_eq(revenue_shares, 1.0, 1e-12);
            cr_assert_eq(evaluation.segments[m - 1].cumulative_revenue_share, 1.0);
        }
        cr_assert_eq(evaluation.segments[m - 1].cumulative_customer_share, 1.0);
        cr_assert_float_eq(evaluation.total_revenue, total_revenue, 1e-9 * (1.0 + total_revenue));
        free(seen);
        kseg_evaluation_destroy(&evaluation);
        kseg_scheme_destroy(&scheme);
        free(codes);
        free(value);
        free(features);
    }
}

Test(segment_evaluate, hand_made_table)
{
    /* Segment 0: rows 0, 3 (value 10 + 30); segment 1: rows 1, 2, 4 (10 + 20 + 10); segment 2:
       nobody. Revenue ties at 40: segment 1 has more customers, so it ranks first. */
    const int32_t codes[] = {0, 1, 1, 0, 1};
    const double value[] = {10.0, 10.0, 20.0, 30.0, 10.0};
    const double features[] = {1.0, 4.0, 5.0, 2.0, 9.0};
    const char *const names[] = {"x", "y", "z"};
    kseg_scheme scheme;
    kseg_error error = {0};
    cr_assert_eq(kseg_scheme_from_clusters("hand", 5, codes, 3, (const int32_t[]){0, 1, 2}, names,
                                           3, &scheme, &error),
                 0, "%s", error.message);
    kseg_evaluation evaluation;
    cr_assert_eq(kseg_evaluate_scheme(&scheme, features, 1, value, &evaluation, &error), 0, "%s",
                 error.message);
    cr_assert_eq(evaluation.total_revenue, 80.0);
    const kseg_segment_stats *first = &evaluation.segments[0], *second = &evaluation.segments[1],
                             *third = &evaluation.segments[2];
    cr_assert_eq(first->segment, 1);
    cr_assert_eq(first->customers, 3);
    cr_assert_eq(first->revenue_share, 0.5);
    cr_assert_eq(first->cumulative_customer_share, 0.6);
    cr_assert_eq(first->mean[0], 6.0);
    cr_assert_eq(first->median[0], 5.0);
    cr_assert_float_eq(first->value_per_customer, 40.0 / 3.0, 1e-15);
    cr_assert_eq(second->segment, 0);
    cr_assert_eq(second->median[0], 1.5); /* even count: the mean of 1 and 2 */
    cr_assert_eq(second->cumulative_revenue_share, 1.0);
    cr_assert_eq(second->value_per_customer, 20.0);
    cr_assert_eq(third->segment, 2);
    cr_assert_eq(third->priority, 3);
    cr_assert_eq(third->customers, 0);
    cr_assert_eq(third->revenue, 0.0);
    cr_assert_eq(third->value_per_customer, 0.0);
    cr_assert(isnan(third->mean[0]) && isnan(third->median[0]));
    kseg_evaluation_destroy(&evaluation);

    /* Bad values name their row. */
    const double with_nan[] = {10.0, 10.0, NAN, 30.0, 10.0};
    cr_assert_eq(kseg_evaluate_scheme(&scheme, features, 1, with_nan, &evaluation, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 2"), "%s", error.message);
    const double bad_features[] = {1.0, 4.0, 5.0, INFINITY, 9.0};
    cr_assert_eq(kseg_evaluate_scheme(&scheme, bad_features, 1, value, &evaluation, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "customer row 3, feature 0"), "%s", error.message);
    cr_assert_null(evaluation.segments);
    kseg_scheme_destroy(&scheme);
}
