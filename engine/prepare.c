/* Prepare: fits and applies the per-column map from customer columns to the feature space that
 * k-means sees (quantile clipping, log1p, standard/robust/no scaling, weights) and maps points
 * back. Column sums go through blocks.h, so the fitted model is the same for any thread count. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "kseg/prepare.h"
#include "quantile.h"

/* The radix sort behind the quantiles works on 32-bit row positions. */
#define MAX_SORTED_ROWS ((size_t)UINT32_MAX)

/* Room for "column \"<name>\"" in a message; longer names are cut, as the message itself is. */
#define COLUMN_LABEL_MAX 256

/* ---------------------------------------------------------------- names and defaults */

int kseg_transform_parse(const char *text, kseg_transform *transform)
{
    if (!text || !transform)
        return KSEG_EINVAL;
    if (strcmp(text, "none") == 0)
        *transform = KSEG_TRANSFORM_NONE;
    else if (strcmp(text, "log1p") == 0)
        *transform = KSEG_TRANSFORM_LOG1P;
    else
        return KSEG_EINVAL;
    return 0;
}

const char *kseg_transform_name(kseg_transform transform)
{
    switch (transform) {
    case KSEG_TRANSFORM_NONE:
        return "none";
    case KSEG_TRANSFORM_LOG1P:
        return "log1p";
    }
    return "unknown";
}

int kseg_scaling_parse(const char *text, kseg_scaling *scaling)
{
    if (!text || !scaling)
        return KSEG_EINVAL;
    if (strcmp(text, "standard") == 0)
        *scaling = KSEG_SCALING_STANDARD;
    else if (strcmp(text, "robust") == 0)
        *scaling = KSEG_SCALING_ROBUST;
    else if (strcmp(text, "none") == 0)
        *scaling = KSEG_SCALING_NONE;
    else
        return KSEG_EINVAL;
    return 0;
}

const char *kseg_scaling_name(kseg_scaling scaling)
{
    switch (scaling) {
    case KSEG_SCALING_STANDARD:
        return "standard";
    case KSEG_SCALING_ROBUST:
        return "robust";
    case KSEG_SCALING_NONE:
        return "none";
    }
    return "unknown";
}

void kseg_feature_spec_defaults(kseg_feature_spec *spec)
{
    spec->transform = KSEG_TRANSFORM_NONE;
    spec->clip_low = NAN;
    spec->clip_high = NAN;
    spec->weight = 1.0;
}

void kseg_prepare_options_defaults(kseg_prepare_options *options)
{
    options->scaling = KSEG_SCALING_STANDARD;
    options->specs = NULL;
}

void kseg_prepare_model_init(kseg_prepare_model *model)
{
    memset(model, 0, sizeof *model);
}

void kseg_prepare_model_destroy(kseg_prepare_model *model)
{
    if (!model)
        return;
    free(model->transform);
    free(model->clip_low);
    free(model->clip_high);
    free(model->center);
    free(model->scale);
    free(model->weight);
    memset(model, 0, sizeof *model);
}

/* ---------------------------------------------------------------- the map of one value */

static inline double clip_value(double value, double low, double high)
{
    return value < low ? low : value > high ? high : value;
}

/* t_j(clip_j(x)): the value before centering and scaling. */
static inline double transformed_value(const kseg_prepare_model *model, size_t column, double value)
{
    double clipped = clip_value(value, model->clip_low[column], model->clip_high[column]);
    return model->transform[column] == KSEG_TRANSFORM_LOG1P ? log1p(clipped) : clipped;
}

/* The whole forward map of the header: weight * (t(clip(x)) - center) / scale. */
static inline double prepared_value(const kseg_prepare_model *model, size_t column, double value)
{
    double centered = transformed_value(model, column, value) - model->center[column];
    return model->weight[column] * (centered / model->scale[column]);
}

/* A value the model cannot map: not finite, or at most -1 after clipping in a log1p column
 * (log1p(-1) is -Inf and below -1 it is NaN, neither a usable feature). */
static inline int value_unmappable(const kseg_prepare_model *model, size_t column, double value)
{
    if (!isfinite(value))
        return 1;
    if (model->transform[column] != KSEG_TRANSFORM_LOG1P)
        return 0;
    return clip_value(value, model->clip_low[column], model->clip_high[column]) <= -1.0;
}

/* ---------------------------------------------------------------- messages */

/* The subject of a message: `column "age"` when the caller named the columns, else `column 3`. */
static const char *column_label(const char *const *column_names, size_t column, char *buffer,
                                size_t size)
{
    if (column_names && column_names[column])
        snprintf(buffer, size, "column \"%s\"", column_names[column]);
    else
        snprintf(buffer, size, "column %zu", column);
    return buffer;
}

static const char *nonfinite_name(double value)
{
    return isnan(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf";
}

/* The first element, as a row-major index, for which unmappable() holds; SIZE_MAX when none.
 * With model NULL only NaN/Inf count (fit checks them before the clip bounds exist). Each
 * thread skips the rest of its rows once it found one, and the minimum over threads is the
 * same whatever the split. */
static size_t first_unmappable(const double *data, size_t n, size_t d,
                               const kseg_prepare_model *model, int threads)
{
    size_t first = SIZE_MAX;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(min : first)
    for (size_t i = 0; i < n; i++) {
        if (first != SIZE_MAX)
            continue;
        const double *row = data + i * d;
        for (size_t j = 0; j < d; j++)
            if (model ? value_unmappable(model, j, row[j]) : !isfinite(row[j])) {
                first = i * d + j;
                break;
            }
    }
    return first;
}

/* Turns the row-major index of an unmappable value into the error of the header: NaN/Inf is
 * KSEG_ENONFINITE, a log1p argument at most -1 is KSEG_EINVAL; both name row and column. */
static int report_unmappable(const char *stage, const double *data, size_t d, size_t index,
                             const kseg_prepare_model *model, const char *const *column_names,
                             kseg_error *error)
{
    size_t row = index / d, column = index % d;
    double value = data[index];
    char label[COLUMN_LABEL_MAX];
    column_label(column_names, column, label, sizeof label);
    if (!isfinite(value))
        return kseg_error_set(error, KSEG_ENONFINITE,
                              "%s: row %zu, %s: value is %s (expected a finite number)", stage,
                              row, label, nonfinite_name(value));
    double clipped = clip_value(value, model->clip_low[column], model->clip_high[column]);
    if (clipped != value)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: row %zu, %s: log1p needs values above -1, but %.17g is %.17g "
                              "after clipping",
                              stage, row, label, value, clipped);
    return kseg_error_set(error, KSEG_EINVAL,
                          "%s: row %zu, %s: log1p needs values above -1, but the value is %.17g",
                          stage, row, label, value);
}

/* ---------------------------------------------------------------- fitting */

/* Checks one column's spec: a known transform, quantiles NaN or in [0, 1] and in order, a finite
 * positive weight. */
static int validate_spec(const kseg_feature_spec *spec, size_t column,
                         const char *const *column_names, kseg_error *error)
{
    char label[COLUMN_LABEL_MAX];
    column_label(column_names, column, label, sizeof label);
    if (spec->transform != KSEG_TRANSFORM_NONE && spec->transform != KSEG_TRANSFORM_LOG1P)
        return kseg_error_set(error, KSEG_EINVAL, "prepare: %s: unknown transform %d", label,
                              (int)spec->transform);
    /* NaN means "no clip"; anything else must be a probability, and +-Inf is not one. */
    if (!isnan(spec->clip_low) && !(spec->clip_low >= 0.0 && spec->clip_low <= 1.0))
        return kseg_error_set(error, KSEG_EINVAL,
                              "prepare: %s: clip_low is %g (expected a quantile in [0, 1], or "
                              "NaN for no clipping)",
                              label, spec->clip_low);
    if (!isnan(spec->clip_high) && !(spec->clip_high >= 0.0 && spec->clip_high <= 1.0))
        return kseg_error_set(error, KSEG_EINVAL,
                              "prepare: %s: clip_high is %g (expected a quantile in [0, 1], or "
                              "NaN for no clipping)",
                              label, spec->clip_high);
    if (!isnan(spec->clip_low) && !isnan(spec->clip_high) && spec->clip_low > spec->clip_high)
        return kseg_error_set(error, KSEG_EINVAL,
                              "prepare: %s: clip_low %g is above clip_high %g", label,
                              spec->clip_low, spec->clip_high);
    if (!(isfinite(spec->weight) && spec->weight > 0.0))
        return kseg_error_set(error, KSEG_EINVAL,
                              "prepare: %s: weight is %g (expected a finite number > 0)", label,
                              spec->weight);
    return 0;
}

/* numpy's _lerp: a + (b - a) t below t = 0.5 and b - (b - a)(1 - t) from there on, which is
 * exact at both ends. The build compiles with -ffp-contract=off, so no product is fused. */
static double numpy_lerp(double below, double above, double weight)
{
    double difference = above - below;
    if (weight >= 0.5)
        return above - difference * (1.0 - weight);
    return below + difference * weight;
}

/* numpy.quantile(values, probability) with the default method "linear", on sorted[n]. */
static double linear_quantile(const double *sorted, size_t n, double probability)
{
    double last_index = (double)(n - 1);
    double virtual_index = last_index * probability;
    if (virtual_index >= last_index)
        return sorted[n - 1];
    double below_index = floor(virtual_index);
    size_t below = (size_t)below_index;
    return numpy_lerp(sorted[below], sorted[below + 1], virtual_index - below_index);
}

/* numpy.median of sorted[n]: the middle value, or the mean of the two middle values computed
 * as numpy's mean does ((a + b) / 2, which the interpolation above would not reproduce). */
static double sorted_median(const double *sorted, size_t n)
{
    if (n % 2 == 1)
        return sorted[n / 2];
    return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

/* Buffers for sorting one column at a time, reused by every column. */
typedef struct sort_scratch {
    uint64_t *keys, *scratch_keys;
    uint32_t *order, *scratch_order;
    size_t *histograms;
    double *sorted;
} sort_scratch;

static void sort_scratch_free(sort_scratch *scratch)
{
    free(scratch->keys);
    free(scratch->scratch_keys);
    free(scratch->order);
    free(scratch->scratch_order);
    free(scratch->histograms);
    free(scratch->sorted);
    memset(scratch, 0, sizeof *scratch);
}

static int sort_scratch_alloc(sort_scratch *scratch, size_t n, int threads)
{
    memset(scratch, 0, sizeof *scratch);
    scratch->keys = malloc(n * sizeof *scratch->keys);
    scratch->scratch_keys = malloc(n * sizeof *scratch->scratch_keys);
    scratch->order = malloc(n * sizeof *scratch->order);
    scratch->scratch_order = malloc(n * sizeof *scratch->scratch_order);
    scratch->histograms =
        malloc((size_t)threads * KSEG_RADIX_BUCKETS * sizeof *scratch->histograms);
    scratch->sorted = malloc(n * sizeof *scratch->sorted);
    if (!scratch->keys || !scratch->scratch_keys || !scratch->order || !scratch->scratch_order ||
        !scratch->histograms || !scratch->sorted) {
        sort_scratch_free(scratch);
        return -1;
    }
    return 0;
}

/* Leaves column `column` of data [n x d] in increasing order in scratch->sorted. The values are
 * finite (checked before), so the order keys sort them exactly. */
static void sort_column(const double *data, size_t n, size_t d, size_t column,
                        sort_scratch *scratch, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        scratch->keys[i] = kseg_double_order_key(data[i * d + column]);
        scratch->order[i] = (uint32_t)i;
    }
    kseg_radix_sort_pairs(scratch->keys, scratch->order, n, scratch->scratch_keys,
                          scratch->scratch_order, scratch->histograms, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t k = 0; k < n; k++)
        scratch->sorted[k] = data[(size_t)scratch->order[k] * d + column];
}

/* One pass of the standard scaler's moments over a block of rows: the transformed values' sums
 * (mean NULL), or, around the mean, the sums of deviations and of squared deviations. */
typedef struct moment_pass {
    const double *data;
    size_t d;
    const kseg_prepare_model *model;
    const kseg_blocks *blocks;
    const double *mean;
} moment_pass;

static void moment_block(void *opaque, size_t block, double *payload, int thread)
{
    (void)thread;
    const moment_pass *pass = opaque;
    size_t d = pass->d, begin = kseg_block_begin(pass->blocks, block);
    size_t end = begin + kseg_block_rows(pass->blocks, block);
    for (size_t i = begin; i < end; i++) {
        const double *row = pass->data + i * d;
        for (size_t j = 0; j < d; j++) {
            double value = transformed_value(pass->model, j, row[j]);
            if (!pass->mean) {
                payload[j] += value;
            } else {
                double deviation = value - pass->mean[j];
                payload[j] += deviation;
                payload[d + j] += deviation * deviation;
            }
        }
    }
}

/* Mean and scale of every column as scikit-learn's StandardScaler computes them: the corrected
 * two-pass variance (sum of squared deviations minus the squared sum of deviations over n,
 * divided by n), and scale 1 for a column its _is_constant_feature calls constant, i.e. whose
 * variance is within the rounding error of the two-pass algorithm (n eps var + (n mean eps)^2),
 * so that a constant column of 0.1s is not blown up by its rounding noise. */
static int fit_standard(const double *data, size_t n, size_t d, kseg_prepare_model *model,
                        int threads, kseg_error *error)
{
    kseg_comm serial;
    kseg_comm_serial(&serial, n);
    kseg_blocks blocks;
    kseg_vector_reducer reducer;
    double *sums = malloc(2 * d * sizeof *sums);
    if (!sums)
        return kseg_error_set(error, KSEG_ENOMEM, "prepare: out of memory for %zu columns", d);
    int status = kseg_blocks_init(&blocks, &serial, n, threads, error);
    if (status)
        goto free_sums;
    if ((status = kseg_vector_reducer_init(&reducer, &blocks, 2 * d, error)))
        goto free_sums;

    moment_pass pass = {data, d, model, &blocks, NULL};
    if ((status = kseg_reduce_vector(&reducer, &blocks, d, moment_block, &pass, sums, error)))
        goto free_reducer;
    const double count = (double)n;
    for (size_t j = 0; j < d; j++)
        model->center[j] = sums[j] / count;
    pass.mean = model->center;
    if ((status = kseg_reduce_vector(&reducer, &blocks, 2 * d, moment_block, &pass, sums, error)))
        goto free_reducer;
    const double epsilon = 0x1.0p-52; /* DBL_EPSILON, as numpy.finfo(float64).eps */
    for (size_t j = 0; j < d; j++) {
        double correction = sums[j], squares = sums[d + j];
        double variance = (squares - correction * correction / count) / count;
        double mean_bound = count * model->center[j] * epsilon;
        double upper_bound = count * epsilon * variance + mean_bound * mean_bound;
        model->scale[j] = variance <= upper_bound ? 1.0 : sqrt(variance);
    }

free_reducer:
    kseg_vector_reducer_destroy(&reducer);
free_sums:
    free(sums);
    return status;
}

int kseg_prepare_fit(const double *data, size_t n, size_t d, const kseg_prepare_options *options,
                     const char *const *column_names, int32_t n_threads,
                     kseg_prepare_model *model, kseg_error *error)
{
    if (!model)
        return kseg_error_set(error, KSEG_EINVAL, "prepare: no model to fit");
    kseg_prepare_model_init(model);
    if (!data || !options)
        return kseg_error_set(error, KSEG_EINVAL, "prepare: no data or options given");
    if (n == 0 || d == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "prepare: no data to fit (%zu rows, %zu columns)",
                              n, d);
    if (n > SIZE_MAX / d / sizeof(double))
        return kseg_error_set(error, KSEG_ETOOBIG, "prepare: %zu x %zu values exceed memory", n,
                              d);
    if (options->scaling != KSEG_SCALING_STANDARD && options->scaling != KSEG_SCALING_ROBUST &&
        options->scaling != KSEG_SCALING_NONE)
        return kseg_error_set(error, KSEG_EINVAL, "prepare: unknown scaling %d",
                              (int)options->scaling);
    kseg_feature_spec default_spec;
    kseg_feature_spec_defaults(&default_spec);
    int needs_sort = options->scaling == KSEG_SCALING_ROBUST;
    for (size_t j = 0; j < d; j++) {
        const kseg_feature_spec *spec = options->specs ? &options->specs[j] : &default_spec;
        int status = validate_spec(spec, j, column_names, error);
        if (status)
            return status;
        if (!isnan(spec->clip_low) || !isnan(spec->clip_high))
            needs_sort = 1;
    }
    if (needs_sort && n > MAX_SORTED_ROWS)
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "prepare: quantiles of %zu rows exceed the limit of %zu rows", n,
                              MAX_SORTED_ROWS);
    int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (threads < 1)
        threads = 1;

    size_t bad = first_unmappable(data, n, d, NULL, threads);
    if (bad != SIZE_MAX)
        return report_unmappable("prepare fit", data, d, bad, NULL, column_names, error);

    int status = 0;
    sort_scratch scratch = {0};
    model->n_features = d;
    model->scaling = options->scaling;
    model->transform = malloc(d * sizeof *model->transform);
    model->clip_low = malloc(d * sizeof *model->clip_low);
    model->clip_high = malloc(d * sizeof *model->clip_high);
    model->center = malloc(d * sizeof *model->center);
    model->scale = malloc(d * sizeof *model->scale);
    model->weight = malloc(d * sizeof *model->weight);
    if (!model->transform || !model->clip_low || !model->clip_high || !model->center ||
        !model->scale || !model->weight) {
        status = kseg_error_set(error, KSEG_ENOMEM, "prepare: out of memory for %zu columns", d);
        goto done;
    }
    if (needs_sort && sort_scratch_alloc(&scratch, n, threads)) {
        status = kseg_error_set(error, KSEG_ENOMEM,
                                "prepare: out of memory sorting a column of %zu rows", n);
        goto done;
    }

    /* Per column: clip bounds from the raw column's quantiles, then (robust scaling) median and
       IQR of the clipped, transformed column. Clipping and log1p never reverse the order of two
       values, so the sorted raw column mapped value by value is the sorted transformed column and
       one sort serves both. A log1p argument <= -1 gives NaN/-Inf here; the check after the loop
       rejects such data before any of these numbers is used. */
    for (size_t j = 0; j < d; j++) {
        const kseg_feature_spec *spec = options->specs ? &options->specs[j] : &default_spec;
        model->transform[j] = spec->transform;
        model->weight[j] = spec->weight;
        model->clip_low[j] = -INFINITY;
        model->clip_high[j] = INFINITY;
        model->center[j] = 0.0;
        model->scale[j] = 1.0;
        int clips = !isnan(spec->clip_low) || !isnan(spec->clip_high);
        if (!clips && options->scaling != KSEG_SCALING_ROBUST)
            continue;
        sort_column(data, n, d, j, &scratch, threads);
        double *sorted = scratch.sorted;
        if (!isnan(spec->clip_low))
            model->clip_low[j] = linear_quantile(sorted, n, spec->clip_low);
        if (!isnan(spec->clip_high))
            model->clip_high[j] = linear_quantile(sorted, n, spec->clip_high);
        if (options->scaling != KSEG_SCALING_ROBUST)
            continue;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t k = 0; k < n; k++)
            sorted[k] = transformed_value(model, j, sorted[k]);
        /* scikit-learn's RobustScaler: numpy.nanmedian as center, numpy.nanpercentile at 25 and
           75 for the IQR, and _handle_zeros_in_scale's scale 1 below 10 eps. */
        model->center[j] = sorted_median(sorted, n);
        double range = linear_quantile(sorted, n, 0.75) - linear_quantile(sorted, n, 0.25);
        model->scale[j] = range < 10.0 * 0x1.0p-52 ? 1.0 : range;
    }

    bad = first_unmappable(data, n, d, model, threads);
    if (bad != SIZE_MAX) {
        status = report_unmappable("prepare fit", data, d, bad, model, column_names, error);
        goto done;
    }
    if (options->scaling == KSEG_SCALING_STANDARD)
        status = fit_standard(data, n, d, model, threads, error);

done:
    sort_scratch_free(&scratch);
    if (status)
        kseg_prepare_model_destroy(model);
    return status;
}

/* ---------------------------------------------------------------- applying and inverting */

int kseg_prepare_apply(const kseg_prepare_model *model, const double *data, size_t n,
                       const char *const *column_names, int32_t n_threads, double *out,
                       kseg_error *error)
{
    if (!model || !model->transform || !model->clip_low || !model->clip_high || !model->center ||
        !model->scale || !model->weight || model->n_features == 0)
        return kseg_error_set(error, KSEG_EINVAL, "prepare apply: the model is not fitted");
    if (n == 0)
        return 0;
    if (!data || !out)
        return kseg_error_set(error, KSEG_EINVAL, "prepare apply: no data or output given");
    size_t d = model->n_features;
    if (n > SIZE_MAX / d / sizeof(double))
        return kseg_error_set(error, KSEG_ETOOBIG, "prepare apply: %zu x %zu values exceed memory",
                              n, d);
    int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (threads < 1)
        threads = 1;

    /* Check everything before writing anything: out may be data, which must stay intact when
       the call fails. */
    size_t bad = first_unmappable(data, n, d, model, threads);
    if (bad != SIZE_MAX)
        return report_unmappable("prepare apply", data, d, bad, model, column_names, error);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = prepared_value(model, j, data[i * d + j]);
    return 0;
}

void kseg_prepare_inverse(const kseg_prepare_model *model, const double *prepared, size_t n,
                          double *out)
{
    if (!model || !model->transform || !prepared || !out)
        return;
    size_t d = model->n_features;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double transformed =
                prepared[i * d + j] / model->weight[j] * model->scale[j] + model->center[j];
            out[i * d + j] =
                model->transform[j] == KSEG_TRANSFORM_LOG1P ? expm1(transformed) : transformed;
        }
}
