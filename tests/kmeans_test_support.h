/* Helpers shared by the k-means test suites (test_kmeans.c, test_kmeans_bounds.c,
 * test_kmeans_scalable.c): a seeded random source, Gaussian noise, the adjusted Rand index and
 * fits that must succeed or fail. static inline, so a suite that uses only some of them builds
 * clean. */
#ifndef KSEG_TESTS_KMEANS_TEST_SUPPORT_H
#define KSEG_TESTS_KMEANS_TEST_SUPPORT_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/kseg.h"

static inline uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double uniform(uint64_t *state)
{
    return ((double)(splitmix(state) >> 11) + 0.5) * 0x1.0p-53;
}

static inline double gaussian(uint64_t *state)
{
    return sqrt(-2.0 * log(uniform(state))) * cos(2.0 * M_PI * uniform(state));
}

/* Adjusted Rand index between two labelings (Hubert & Arabie). */
static inline double adjusted_rand(const int32_t *a, const int32_t *b, size_t n, size_t ka,
                                   size_t kb)
{
    double *table = calloc(ka * kb, sizeof *table), *rows = calloc(ka, sizeof *rows),
           *cols = calloc(kb, sizeof *cols);
    for (size_t i = 0; i < n; i++) {
        table[(size_t)a[i] * kb + (size_t)b[i]] += 1;
        rows[a[i]] += 1;
        cols[b[i]] += 1;
    }
    double index = 0, sum_rows = 0, sum_cols = 0;
    for (size_t i = 0; i < ka * kb; i++)
        index += table[i] * (table[i] - 1) / 2;
    for (size_t i = 0; i < ka; i++)
        sum_rows += rows[i] * (rows[i] - 1) / 2;
    for (size_t j = 0; j < kb; j++)
        sum_cols += cols[j] * (cols[j] - 1) / 2;
    double pairs = (double)n * (double)(n - 1) / 2;
    double expected = sum_rows * sum_cols / pairs, maximum = (sum_rows + sum_cols) / 2;
    free(table);
    free(rows);
    free(cols);
    return (index - expected) / (maximum - expected);
}

static inline kseg_matrix view(const void *data, kseg_dtype dtype, size_t n, size_t d)
{
    kseg_matrix m = {data, dtype, n, d};
    return m;
}

static inline void fit_or_fail(const kseg_matrix *m, const kseg_kmeans_options *o,
                               kseg_kmeans_result *r)
{
    kseg_error e;
    kseg_error_clear(&e);
    int code = kseg_kmeans_fit(m, o, r, &e);
    cr_assert_eq(code, 0, "fit failed: %s", e.message);
}

/* A fit that must fail: its status, with the message checked to contain expect_in_message (unless
 * NULL) and the result left empty. */
static inline int fit_code(kseg_matrix *m, kseg_kmeans_options *o,
                           const char *expect_in_message)
{
    kseg_kmeans_result r;
    kseg_error e;
    kseg_error_clear(&e);
    int code = kseg_kmeans_fit(m, o, &r, &e);
    if (expect_in_message)
        cr_assert(strstr(e.message, expect_in_message), "message '%s' lacks '%s'", e.message,
                  expect_in_message);
    cr_assert_null(r.centroids, "a failed fit must leave the result empty");
    return code;
}

#endif
