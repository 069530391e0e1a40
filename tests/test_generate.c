/* The synthetic population generators: every row is a pure function of (seed, row index), so the
 * output must not depend on block boundaries or thread counts; different seeds must differ; the
 * customers must look plausible (ranges, all segments, segment differences) and the blobs must
 * sit around their centers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/generate.h"

#define D 9

typedef struct population {
    float *features;
    int64_t *ids;
    int32_t *truth;
} population;

static population generate(uint64_t seed, int32_t segments, uint64_t begin, size_t rows,
                           int32_t threads)
{
    population p = {malloc(rows * D * sizeof(float)), malloc(rows * sizeof(int64_t)),
                    malloc(rows * sizeof(int32_t))};
    kseg_customer_options options;
    kseg_customer_options_defaults(&options);
    options.seed = seed;
    options.n_segments = segments;
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_generate_customers(&options, begin, rows, p.features, p.ids, p.truth, threads,
                                         &error),
                 0, "%s", error.message);
    return p;
}

static void release(population *p)
{
    free(p->features);
    free(p->ids);
    free(p->truth);
}

static int same(const population *a, const population *b, size_t rows)
{
    return memcmp(a->features, b->features, rows * D * sizeof(float)) == 0 &&
           memcmp(a->ids, b->ids, rows * sizeof(int64_t)) == 0 &&
           memcmp(a->truth, b->truth, rows * sizeof(int32_t)) == 0;
}

Test(generate, names_and_defaults)
{
    static const char *const expected[D] = {"recency_days", "frequency", "monetary",
                                            "tenure_days",  "avg_basket", "web_share",
                                            "age",          "income",    "n_categories"};
    cr_assert_eq(kseg_customer_feature_count(), D);
    for (size_t j = 0; j < D; j++)
        cr_assert_str_eq(kseg_customer_feature_name(j), expected[j]);
    cr_assert_null(kseg_customer_feature_name(D));
    kseg_customer_options options;
    kseg_customer_options_defaults(&options);
    cr_assert_eq(options.seed, 1);
    cr_assert_eq(options.n_segments, 6);
    cr_assert_str_eq(kseg_customer_segment_name(0), "champions");
    for (int32_t s = 0; s < KSEG_CUSTOMER_MAX_SEGMENTS; s++)
        cr_assert_not_null(kseg_customer_segment_name(s));
    cr_assert_null(kseg_customer_segment_name(-1));
    cr_assert_null(kseg_customer_segment_name(KSEG_CUSTOMER_MAX_SEGMENTS));
}

Test(generate, same_seed_same_bytes_however_split)
{
    const size_t n = 1000;
    population whole = generate(42, 6, 0, n, 1);
    population again = generate(42, 6, 0, n, 1);
    cr_assert(same(&whole, &again, n));

    /* [0, 1000) equals [0, 500) + [500, 1000) and an uneven split. */
    const size_t splits[] = {500, 333, 1, 999};
    for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
        population first = generate(42, 6, 0, splits[s], 1);
        population second = generate(42, 6, splits[s], n - splits[s], 1);
        cr_assert_eq(memcmp(first.features, whole.features, splits[s] * D * sizeof(float)), 0);
        cr_assert_eq(memcmp(second.features, whole.features + splits[s] * D,
                            (n - splits[s]) * D * sizeof(float)),
                     0, "split at %zu", splits[s]);
        cr_assert_eq(memcmp(second.truth, whole.truth + splits[s],
                            (n - splits[s]) * sizeof(int32_t)),
                     0);
        cr_assert_eq(second.ids[0], 100000 + (int64_t)splits[s]);
        release(&first);
        release(&second);
    }

    /* Thread counts, on a block large enough to run in parallel. */
    const size_t big = 50000;
    population serial = generate(42, 6, 7, big, 1);
    const int32_t thread_counts[] = {0, 2, 3, 8};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        population parallel = generate(42, 6, 7, big, thread_counts[t]);
        cr_assert(same(&serial, &parallel, big), "differs with %d threads", thread_counts[t]);
        release(&parallel);
    }
    release(&serial);
    release(&whole);
    release(&again);
}

Test(generate, different_seeds_differ)
{
    const size_t n = 1000;
    population a = generate(1, 6, 0, n, 1);
    population b = generate(2, 6, 0, n, 1);
    size_t equal_rows = 0;
    for (size_t i = 0; i < n; i++)
        equal_rows += memcmp(a.features + i * D, b.features + i * D, D * sizeof(float)) == 0;
    cr_assert_lt(equal_rows, 5, "%zu identical rows for different seeds", equal_rows);
    /* Ids do not depend on the seed: they are row numbers. */
    cr_assert_eq(memcmp(a.ids, b.ids, n * sizeof(int64_t)), 0);
    release(&a);
    release(&b);
}

Test(generate, plausible_ranges_and_every_segment)
{
    const size_t n = 100000;
    for (int32_t segments = 1; segments <= KSEG_CUSTOMER_MAX_SEGMENTS; segments++) {
        population p = generate(7, segments, 0, n, 0);
        size_t counts[KSEG_CUSTOMER_MAX_SEGMENTS] = {0};
        for (size_t i = 0; i < n; i++) {
            const float *x = p.features + i * D;
            for (size_t j = 0; j < D; j++)
                cr_assert(isfinite(x[j]), "row %zu column %zu not finite", i, j);
            float recency = x[0], frequency = x[1], monetary = x[2], tenure = x[3];
            float basket = x[4], web = x[5], age = x[6], income = x[7], categories = x[8];
            cr_assert(recency >= 0 && recency <= 3650, "recency %g", recency);
            cr_assert(tenure >= 1 && tenure <= 7300, "tenure %g", tenure);
            cr_assert(recency < tenure, "recency %g >= tenure %g", recency, tenure);
            cr_assert(frequency >= 1 && frequency <= 1000 && frequency == floorf(frequency));
            cr_assert(frequency <= tenure + 1);
            cr_assert(monetary >= 1 && monetary <= 2e6, "monetary %g", monetary);
            cr_assert(basket >= 2 && basket <= 5000);
            cr_assert(web >= 0 && web <= 1);
            cr_assert(age >= 18 && age <= 92 && age == floorf(age));
            cr_assert(income >= 9000 && income <= 600000);
            cr_assert(categories >= 1 && categories <= 30 && categories == floorf(categories));
            cr_assert(p.truth[i] >= 0 && p.truth[i] < segments);
            cr_assert_eq(p.ids[i], 100000 + (int64_t)i);
            counts[p.truth[i]]++;
        }
        for (int32_t s = 0; s < segments; s++)
            cr_assert_gt(counts[s], n / 50, "segment %d has only %zu of %zu rows", s, counts[s], n);
        release(&p);
    }
}

/* Mean of column j over the rows of segment s. */
static double segment_mean(const population *p, size_t n, int32_t s, size_t j)
{
    double sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (p->truth[i] == s) {
            sum += p->features[i * D + j];
            count++;
        }
    return count ? sum / (double)count : NAN;
}

Test(generate, segments_differ_as_their_names_say)
{
    const size_t n = 200000;
    population p = generate(3, 6, 0, n, 0);
    enum { CHAMPIONS, LOYAL, NEW, AT_RISK, HIBERNATING, BIG_SPENDERS };
    /* Champions bought recently and often; hibernating customers long ago and rarely. */
    cr_assert_lt(segment_mean(&p, n, CHAMPIONS, 0), segment_mean(&p, n, AT_RISK, 0));
    cr_assert_lt(segment_mean(&p, n, AT_RISK, 0), segment_mean(&p, n, HIBERNATING, 0));
    cr_assert_gt(segment_mean(&p, n, CHAMPIONS, 1), 3 * segment_mean(&p, n, HIBERNATING, 1));
    /* New customers have short tenure; big spenders large baskets and high incomes. */
    cr_assert_lt(segment_mean(&p, n, NEW, 3), 130);
    cr_assert_gt(segment_mean(&p, n, BIG_SPENDERS, 4), 4 * segment_mean(&p, n, LOYAL, 4));
    cr_assert_gt(segment_mean(&p, n, BIG_SPENDERS, 7), segment_mean(&p, n, LOYAL, 7));
    /* Spend is skewed: the mean is well above the median, as in real customer bases. */
    float *monetary = malloc(n * sizeof *monetary);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        monetary[i] = p.features[i * D + 2];
        sum += monetary[i];
    }
    size_t below = 0;
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        below += monetary[i] < mean;
    cr_assert_gt(below, n * 6 / 10, "monetary is not right-skewed");
    free(monetary);
    release(&p);
}

Test(generate, optional_outputs_and_invalid_arguments)
{
    kseg_customer_options options;
    kseg_customer_options_defaults(&options);
    kseg_error error;
    kseg_error_clear(&error);
    int32_t truth[100], truth_only[100];
    float features[100 * D];
    cr_assert_eq(kseg_generate_customers(&options, 0, 100, features, NULL, truth, 1, &error), 0);
    cr_assert_eq(kseg_generate_customers(NULL, 0, 100, NULL, NULL, truth_only, 1, &error), 0);
    cr_assert_eq(memcmp(truth, truth_only, sizeof truth), 0);
    cr_assert_eq(kseg_generate_customers(&options, 0, 0, NULL, NULL, NULL, 1, &error), 0);

    options.n_segments = 0;
    cr_assert_eq(kseg_generate_customers(&options, 0, 10, features, NULL, NULL, 1, &error),
                 KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "n_segments is 0 (expected 1 to 8)"), "%s",
                       error.message);
    options.n_segments = 9;
    cr_assert_eq(kseg_generate_customers(&options, 0, 10, features, NULL, NULL, 1, &error),
                 KSEG_EINVAL);
    options.n_segments = 6;
    cr_assert_eq(kseg_generate_customers(&options, 0, 10, features, NULL, NULL, -1, &error),
                 KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "n_threads"));
    cr_assert_eq(kseg_generate_customers(&options, 0, 10, NULL, NULL, NULL, 1, &error),
                 KSEG_EINVAL);
    cr_assert_eq(kseg_generate_customers(&options, UINT64_MAX - 5, 10, features, NULL, NULL, 1,
                                         &error),
                 KSEG_ETOOBIG);
}

Test(generate, blobs_deterministic_split_and_centered)
{
    const size_t n = 20000, d = 5, k = 4;
    const double spread = 10.0, sigma = 0.5;
    kseg_error error;
    kseg_error_clear(&error);
    float *whole = malloc(n * d * sizeof *whole);
    float *parts = malloc(n * d * sizeof *parts);
    int32_t *truth = malloc(n * sizeof *truth);
    int32_t *truth_parts = malloc(n * sizeof *truth_parts);
    cr_assert_eq(kseg_generate_blobs(9, n, d, k, spread, sigma, whole, truth, &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_generate_blob_rows(9, 0, 7001, d, k, spread, sigma, parts, truth_parts,
                                         &error),
                 0);
    cr_assert_eq(kseg_generate_blob_rows(9, 7001, n - 7001, d, k, spread, sigma, parts + 7001 * d,
                                         truth_parts + 7001, &error),
                 0);
    cr_assert_eq(memcmp(whole, parts, n * d * sizeof *whole), 0);
    cr_assert_eq(memcmp(truth, truth_parts, n * sizeof *truth), 0);

    double centers[4 * 5];
    cr_assert_eq(kseg_generate_blob_centers(9, d, k, spread, centers, &error), 0);
    for (size_t i = 0; i < k * d; i++)
        cr_assert(centers[i] >= -spread && centers[i] <= spread);
    /* Per blob: about n/k points whose mean is the center and whose spread is sigma. */
    for (size_t b = 0; b < k; b++) {
        double sum[5] = {0}, squares[5] = {0};
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            if ((size_t)truth[i] != b)
                continue;
            count++;
            for (size_t j = 0; j < d; j++) {
                double delta = whole[i * d + j] - centers[b * d + j];
                sum[j] += delta;
                squares[j] += delta * delta;
            }
        }
        cr_assert(count > n / k * 9 / 10 && count < n / k * 11 / 10, "blob %zu: %zu rows", b,
                  count);
        for (size_t j = 0; j < d; j++) {
            cr_assert_lt(fabs(sum[j] / (double)count), 0.05, "blob %zu offset", b);
            cr_assert_lt(fabs(sqrt(squares[j] / (double)count) - sigma), 0.05, "blob %zu sigma",
                         b);
        }
    }
    /* An odd column count uses half of the last normal pair; a different seed differs. */
    float odd[3 * 100], other[3 * 100];
    cr_assert_eq(kseg_generate_blobs(9, 100, 3, 2, 1.0, 1.0, odd, NULL, &error), 0);
    cr_assert_eq(kseg_generate_blobs(10, 100, 3, 2, 1.0, 1.0, other, NULL, &error), 0);
    cr_assert_neq(memcmp(odd, other, sizeof odd), 0);

    cr_assert_eq(kseg_generate_blobs(1, 10, 0, 2, 1.0, 1.0, odd, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "cols is 0"));
    cr_assert_eq(kseg_generate_blobs(1, 10, 3, 0, 1.0, 1.0, odd, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "n_blobs is 0"));
    cr_assert_eq(kseg_generate_blobs(1, 10, 3, 2, 1.0, -1.0, odd, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "sigma"));
    cr_assert_eq(kseg_generate_blobs(1, 10, 3, 2, NAN, 1.0, odd, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "spread"));
    cr_assert_eq(kseg_generate_blobs(1, 10, 3, 2, 1.0, 1.0, NULL, NULL, &error), KSEG_EINVAL);
    free(whole);
    free(parts);
    free(truth);
    free(truth_parts);
}
