/* Synthetic populations: realistic customers drawn from named latent segments (skewed spend,
 * heavy-tailed purchase counts, exponential recency) and Gaussian blobs for tests. Every row is
 * a pure function of (seed, global row index) through the counter-based RNG, so any block of
 * rows comes out the same whichever thread, rank or block size produces it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <omp.h>

#include "kseg/generate.h"
#include "rng.h"

/* Blocks of the counter space reserved per customer row: six are used, two are kept spare so
   that a future column can be added without changing the existing ones. */
#define CUSTOMER_BLOCKS_PER_ROW 8

/* Rows below this are generated on the calling thread: a parallel region costs more. */
#define PARALLEL_MIN_ROWS 4096

#define CUSTOMER_FEATURES 9

static const char *const feature_names[CUSTOMER_FEATURES] = {
    "recency_days", "frequency", "monetary",  "tenure_days", "avg_basket",
    "web_share",    "age",       "income",    "n_categories",
};

/* One latent segment. Recency is recency_min + Exponential(recency_mean) days; frequency is
   1 + a discretized Lomax (Pareto II, shape 2.5) with scale frequency_scale, i.e. heavy-tailed
   like real purchase counts; basket size and income are lognormal around their medians; the web
   share is logistic-normal around web_logit. */
typedef struct archetype {
    const char *name;
    double weight;
    double recency_min;
    double recency_mean;
    double tenure_median;   /* 0 = a new customer: tenure uniform in [1, 120] days */
    double frequency_scale;
    double basket_median;
    double web_logit;
    double age_mean;
    double income_median;
    double categories;
} archetype;

/* The first six are the default population; the weights are renormalized over the segments in
   use. The shares follow the usual retail picture: a large dormant base, a small valuable core. */
static const archetype archetypes[KSEG_CUSTOMER_MAX_SEGMENTS] = {
    {"champions", 0.08, 0.0, 8.0, 1100.0, 30.0, 75.0, 0.8, 39.0, 72000.0, 2.2},
    {"loyal", 0.17, 0.0, 30.0, 1400.0, 15.0, 50.0, 0.0, 46.0, 58000.0, 1.8},
    {"new", 0.15, 0.0, 12.0, 0.0, 0.6, 45.0, 1.0, 31.0, 46000.0, 1.2},
    {"at_risk", 0.17, 90.0, 120.0, 1200.0, 9.0, 55.0, -0.3, 51.0, 54000.0, 1.6},
    {"hibernating", 0.35, 240.0, 300.0, 1600.0, 1.5, 32.0, -0.6, 56.0, 41000.0, 1.0},
    {"big_spenders", 0.08, 0.0, 40.0, 900.0, 4.0, 380.0, 0.2, 49.0, 140000.0, 1.5},
    {"bargain_hunters", 0.12, 0.0, 25.0, 800.0, 20.0, 16.0, 1.6, 29.0, 31000.0, 2.0},
    {"potential_loyalists", 0.10, 0.0, 20.0, 250.0, 5.0, 48.0, 0.6, 34.0, 50000.0, 1.4},
};

void kseg_customer_options_defaults(kseg_customer_options *options)
{
    options->seed = 1;
    options->n_segments = 6;
}

size_t kseg_customer_feature_count(void)
{
    return CUSTOMER_FEATURES;
}

const char *kseg_customer_feature_name(size_t column)
{
    return column < CUSTOMER_FEATURES ? feature_names[column] : NULL;
}

const char *kseg_customer_segment_name(int32_t segment)
{
    return segment >= 0 && segment < KSEG_CUSTOMER_MAX_SEGMENTS ? archetypes[segment].name : NULL;
}

/* ---------------------------------------------------------------- random variates */

/* Two uniforms in (0, 1) from one 128-bit block: each from 64 bits, never 0 (safe for log). */
static inline void uniform_pair(uint64_t seed, uint64_t stream, uint64_t index, double *a,
                                double *b)
{
    kseg_rng_block block = kseg_rng_philox(seed, stream, index);
    uint64_t x = ((uint64_t)block.v[0] << 32) | block.v[1];
    uint64_t y = ((uint64_t)block.v[2] << 32) | block.v[3];
    *a = ((double)(x >> 11) + 0.5) * 0x1.0p-53;
    *b = ((double)(y >> 11) + 0.5) * 0x1.0p-53;
}

/* Two independent standard normals from one block (Box-Muller). */
static inline void normal_pair(uint64_t seed, uint64_t stream, uint64_t index, double *z1,
                               double *z2)
{
    double u, v;
    uniform_pair(seed, stream, index, &u, &v);
    double radius = sqrt(-2.0 * log(u));
    double angle = 6.283185307179586 * v;
    *z1 = radius * cos(angle);
    *z2 = radius * sin(angle);
}

static inline double clamp(double x, double low, double high)
{
    return x < low ? low : x > high ? high : x;
}

/* ---------------------------------------------------------------- customers */

/* Cumulative segment weights for the segments in use; the last is exactly 1. */
static void segment_thresholds(int32_t n_segments, double *cumulative)
{
    double total = 0.0;
    for (int32_t s = 0; s < n_segments; s++)
        total += archetypes[s].weight;
    double running = 0.0;
    for (int32_t s = 0; s < n_segments; s++) {
        running += archetypes[s].weight / total;
        cumulative[s] = running;
    }
    cumulative[n_segments - 1] = 1.0;
}

/* One customer: the nine features of global row `row`, and its latent segment. */
static void customer_row(uint64_t seed, uint64_t row, int32_t n_segments, const double *cumulative,
                         float *features, int32_t *segment_out)
{
    const uint64_t base = row * CUSTOMER_BLOCKS_PER_ROW;
    const uint64_t stream = KSEG_STREAM_GENERATE;
    double u_segment, u_recency, u_frequency, u_tenure;
    double z_basket, z_spend, z_tenure, z_web, z_age, z_income, z_categories, z_spare;
    uniform_pair(seed, stream, base + 0, &u_segment, &u_recency);
    uniform_pair(seed, stream, base + 1, &u_frequency, &u_tenure);
    normal_pair(seed, stream, base + 2, &z_basket, &z_spend);
    normal_pair(seed, stream, base + 3, &z_tenure, &z_web);
    normal_pair(seed, stream, base + 4, &z_age, &z_income);
    normal_pair(seed, stream, base + 5, &z_categories, &z_spare);
    (void)z_spare;

    int32_t segment = 0;
    while (segment < n_segments - 1 && u_segment >= cumulative[segment])
        segment++;
    const archetype *a = &archetypes[segment];

    /* Tenure (days since the first purchase) bounds recency and frequency: a customer cannot
       have bought longer ago than they have been a customer. */
    double tenure = a->tenure_median > 0.0
                        ? clamp(floor(a->tenure_median * exp(0.45 * z_tenure)), 30.0, 7300.0)
                        : 1.0 + floor(u_tenure * 120.0);
    double recency = floor(a->recency_min - log(u_recency) * a->recency_mean);
    recency = clamp(recency, 0.0, 3650.0);
    if (recency > tenure - 1.0)
        recency = tenure - 1.0 > 0.0 ? tenure - 1.0 : 0.0;

    double frequency = 1.0 + floor(a->frequency_scale * (pow(u_frequency, -1.0 / 2.5) - 1.0));
    frequency = clamp(frequency, 1.0, 1000.0);
    if (frequency > 1.0 + tenure)
        frequency = 1.0 + tenure;

    double basket = clamp(a->basket_median * exp(0.5 * z_basket), 2.0, 5000.0);
    double monetary = clamp(frequency * basket * exp(0.1 * z_spend), 1.0, 2.0e6);
    double web_share = 1.0 / (1.0 + exp(-(a->web_logit + z_web)));
    double age = clamp(round(a->age_mean + 11.0 * z_age), 18.0, 92.0);
    /* Income rises slightly with age within a segment, as it does in survey data. */
    double income = a->income_median * exp(0.35 * z_income + 0.008 * (age - 40.0));
    income = clamp(round(income / 100.0) * 100.0, 9000.0, 600000.0);
    double categories = round(a->categories * (1.0 + log(frequency)) * exp(0.25 * z_categories));
    categories = clamp(categories, 1.0, 30.0);

    if (features) {
        features[0] = (float)recency;
        features[1] = (float)frequency;
        features[2] = (float)(round(monetary * 100.0) / 100.0);
        features[3] = (float)tenure;
        features[4] = (float)(round(basket * 100.0) / 100.0);
        features[5] = (float)(round(web_share * 100.0) / 100.0);
        features[6] = (float)age;
        features[7] = (float)income;
        features[8] = (float)categories;
    }
    *segment_out = segment;
}

int kseg_generate_customers(const kseg_customer_options *options, uint64_t row_begin, size_t rows,
                            float *features, int64_t *ids, int32_t *truth, int32_t n_threads,
                            kseg_error *error)
{
    kseg_customer_options defaults;
    if (!options) {
        kseg_customer_options_defaults(&defaults);
        options = &defaults;
    }
    if (options->n_segments < 1 || options->n_segments > KSEG_CUSTOMER_MAX_SEGMENTS)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_generate_customers: n_segments is %d (expected 1 to %d)",
                              (int)options->n_segments, KSEG_CUSTOMER_MAX_SEGMENTS);
    if (n_threads < 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_generate_customers: n_threads is %d (expected 0 for the "
                              "default or a positive count)",
                              (int)n_threads);
    const uint64_t max_rows = UINT64_MAX / CUSTOMER_BLOCKS_PER_ROW;
    if (row_begin > max_rows || rows > max_rows - row_begin ||
        row_begin + rows > (uint64_t)INT64_MAX - 100000)
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "kseg_generate_customers: rows [%llu, %llu + %zu) exceed the row "
                              "index space",
                              (unsigned long long)row_begin, (unsigned long long)row_begin, rows);
    if (rows == 0)
        return 0;
    if (!features && !ids && !truth)
        return kseg_error_set(error, KSEG_EINVAL,
                              "kseg_generate_customers: no output buffer given");

    double cumulative[KSEG_CUSTOMER_MAX_SEGMENTS];
    segment_thresholds(options->n_segments, cumulative);
    const uint64_t seed = options->seed;
    const int32_t n_segments = options->n_segments;
    const int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    const ptrdiff_t n = (ptrdiff_t)rows;

    /* Rows are independent, so the split among threads cannot change any value. */
#pragma omp parallel for schedule(static) num_threads(threads) if (rows >= PARALLEL_MIN_ROWS)
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint64_t row = row_begin + (uint64_t)i;
        int32_t segment;
        customer_row(seed, row, n_segments, cumulative,
                     features ? features + (size_t)i * CUSTOMER_FEATURES : NULL, &segment);
        if (truth)
            truth[i] = segment;
        if (ids)
            ids[i] = (int64_t)(100000 + row);
    }
    return 0;
}

/* ---------------------------------------------------------------- blobs */

static int check_blob_arguments(const char *function, size_t cols, size_t n_blobs, double spread,
                                kseg_error *error)
{
    if (cols == 0)
        return kseg_error_set(error, KSEG_EINVAL, "%s: cols is 0 (expected at least 1)", function);
    if (n_blobs == 0)
        return kseg_error_set(error, KSEG_EINVAL, "%s: n_blobs is 0 (expected at least 1)",
                              function);
    if (n_blobs > INT32_MAX)
        return kseg_error_set(error, KSEG_EINVAL, "%s: %zu blobs (expected at most %d)", function,
                              n_blobs, INT32_MAX);
    if (!isfinite(spread) || spread < 0.0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: spread is %g (expected a finite number >= 0)", function, spread);
    if (n_blobs > SIZE_MAX / sizeof(double) / cols)
        return kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu blobs x %zu columns is too large",
                              function, n_blobs, cols);
    return 0;
}

int kseg_generate_blob_centers(uint64_t seed, size_t cols, size_t n_blobs, double spread,
                               double *centers, kseg_error *error)
{
    int status = check_blob_arguments("kseg_generate_blob_centers", cols, n_blobs, spread, error);
    if (status)
        return status;
    if (!centers)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_generate_blob_centers: centers is NULL");
    for (size_t i = 0; i < n_blobs * cols; i++)
        centers[i] = -spread + 2.0 * spread * kseg_rng_uniform(seed, KSEG_STREAM_GENERATE_AUX, i);
    return 0;
}

int kseg_generate_blob_rows(uint64_t seed, uint64_t row_begin, size_t rows, size_t cols,
                            size_t n_blobs, double spread, double sigma, float *features,
                            int32_t *truth, kseg_error *error)
{
    static const char function[] = "kseg_generate_blobs";
    int status = check_blob_arguments(function, cols, n_blobs, spread, error);
    if (status)
        return status;
    if (!isfinite(sigma) || sigma < 0.0)
        return kseg_error_set(error, KSEG_EINVAL, "%s: sigma is %g (expected a finite number >= 0)",
                              function, sigma);
    /* One block for the blob choice, then one block per two features (Box-Muller pairs). */
    const uint64_t stride = 1 + ((uint64_t)cols + 1) / 2;
    if (row_begin > UINT64_MAX / stride || rows > UINT64_MAX / stride - row_begin)
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "%s: rows [%llu, %llu + %zu) x %zu columns exceed the row index space",
                              function, (unsigned long long)row_begin,
                              (unsigned long long)row_begin, rows, cols);
    if (rows == 0)
        return 0;
    if (!features && !truth)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no output buffer given", function);
    if (features && rows > SIZE_MAX / sizeof(float) / cols)
        return kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu rows x %zu columns is too large",
                              function, rows, cols);

    double *centers = malloc(n_blobs * cols * sizeof *centers);
    if (!centers)
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu x %zu centers",
                              function, n_blobs, cols);
    kseg_generate_blob_centers(seed, cols, n_blobs, spread, centers, NULL);

    const ptrdiff_t n = (ptrdiff_t)rows;
#pragma omp parallel for schedule(static) if (rows >= PARALLEL_MIN_ROWS)
    for (ptrdiff_t i = 0; i < n; i++) {
        const uint64_t base = (row_begin + (uint64_t)i) * stride;
        double u = kseg_rng_uniform(seed, KSEG_STREAM_GENERATE, base);
        size_t blob = (size_t)(u * (double)n_blobs);
        if (blob >= n_blobs)
            blob = n_blobs - 1;
        if (truth)
            truth[i] = (int32_t)blob;
        if (!features)
            continue;
        const double *center = centers + blob * cols;
        float *out = features + (size_t)i * cols;
        for (size_t j = 0; j < cols; j += 2) {
            double z1, z2;
            normal_pair(seed, KSEG_STREAM_GENERATE, base + 1 + j / 2, &z1, &z2);
            out[j] = (float)(center[j] + sigma * z1);
            if (j + 1 < cols)
                out[j + 1] = (float)(center[j + 1] + sigma * z2);
        }
    }
    free(centers);
    return 0;
}

int kseg_generate_blobs(uint64_t seed, size_t rows, size_t cols, size_t n_blobs, double spread,
                        double sigma, float *features, int32_t *truth, kseg_error *error)
{
    return kseg_generate_blob_rows(seed, 0, rows, cols, n_blobs, spread, sigma, features, truth,
                                   error);
}
