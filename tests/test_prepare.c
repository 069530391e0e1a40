/* Prepare: standard and robust scaling checked by hand on tiny columns and against numbers from
 * scikit-learn, numpy-style clipping quantiles, log1p, weights, the apply -> inverse round trip,
 * the errors (NaN/Inf, log1p of values <= -1, bad quantiles and weights) and the same model and
 * output bits for 1, 2 and 3 threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/prepare.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state)
{
    return ((double)(splitmix(state) >> 11) + 0.5) * 0x1.0p-53;
}

/* n x d values: column 0 heavy-tailed and positive (a monetary amount), column 1 small counts,
 * column 2 uniform in [-5, 5], further columns uniform in [0, 100). */
static double *make_customers(size_t n, size_t d, uint64_t seed)
{
    double *data = malloc(n * d * sizeof *data);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double u = uniform(&state);
            double value = j == 0   ? exp(8.0 * u) - 0.5
                           : j == 1 ? floor(20.0 * u * u)
                           : j == 2 ? 10.0 * u - 5.0
                                    : 100.0 * u;
            data[i * d + j] = value;
        }
    return data;
}

static void assert_close(double actual, double expected, double relative, const char *what)
{
    double tolerance = relative * fmax(1.0, fabs(expected));
    cr_assert(fabs(actual - expected) <= tolerance, "%s: %.17g, expected %.17g", what, actual,
              expected);
}

/* Fits with the given scaling and specs (NULL: defaults) and 1 thread; asserts success. */
static void fit_or_fail(const double *data, size_t n, size_t d, kseg_scaling scaling,
                        const kseg_feature_spec *specs, kseg_prepare_model *model)
{
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    options.scaling = scaling;
    options.specs = specs;
    kseg_error error = {0};
    int status = kseg_prepare_fit(data, n, d, &options, NULL, 1, model, &error);
    cr_assert_eq(status, 0, "fit failed: %s", error.message);
}

/* ---------------------------------------------------------------- names and defaults */

Test(prepare, names_parse_and_print)
{
    kseg_transform transform = KSEG_TRANSFORM_LOG1P;
    cr_assert_eq(kseg_transform_parse("none", &transform), 0);
    cr_assert_eq(transform, KSEG_TRANSFORM_NONE);
    cr_assert_eq(kseg_transform_parse("log1p", &transform), 0);
    cr_assert_eq(transform, KSEG_TRANSFORM_LOG1P);
    cr_assert_eq(kseg_transform_parse("log", &transform), KSEG_EINVAL);
    cr_assert_eq(kseg_transform_parse(NULL, &transform), KSEG_EINVAL);
    cr_assert_str_eq(kseg_transform_name(KSEG_TRANSFORM_NONE), "none");
    cr_assert_str_eq(kseg_transform_name(KSEG_TRANSFORM_LOG1P), "log1p");

    kseg_scaling scaling = KSEG_SCALING_NONE;
    const char *names[] = {"standard", "robust", "none"};
    const kseg_scaling values[] = {KSEG_SCALING_STANDARD, KSEG_SCALING_ROBUST, KSEG_SCALING_NONE};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(kseg_scaling_parse(names[i], &scaling), 0);
        cr_assert_eq(scaling, values[i]);
        cr_assert_str_eq(kseg_scaling_name(values[i]), names[i]);
    }
    cr_assert_eq(kseg_scaling_parse("Standard", &scaling), KSEG_EINVAL);
    cr_assert_eq(kseg_scaling_parse("", &scaling), KSEG_EINVAL);
}

Test(prepare, defaults)
{
    kseg_feature_spec spec;
    kseg_feature_spec_defaults(&spec);
    cr_assert_eq(spec.transform, KSEG_TRANSFORM_NONE);
    cr_assert(isnan(spec.clip_low));
    cr_assert(isnan(spec.clip_high));
    cr_assert_eq(spec.weight, 1.0);
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    cr_assert_eq(options.scaling, KSEG_SCALING_STANDARD);
    cr_assert_null(options.specs);
}

/* ---------------------------------------------------------------- hand-checked scaling */

/* The textbook column 2 4 4 4 5 5 7 9: mean 5, population standard deviation 2, so
 * StandardScaler gives (x - 5) / 2. The second column 1 2 3 4 has mean 2.5 and variance 1.25. */
Test(prepare, standard_scaling_by_hand)
{
    const double data[8 * 2] = {2, 1, 4, 2, 4, 3, 4, 4, 5, 1, 5, 2, 7, 3, 9, 4};
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, 8, 2, KSEG_SCALING_STANDARD, NULL, &model);
    cr_assert_eq(model.n_features, 2);
    cr_assert_eq(model.scaling, KSEG_SCALING_STANDARD);
    cr_assert_eq(model.center[0], 5.0);
    cr_assert_eq(model.scale[0], 2.0);
    cr_assert_eq(model.center[1], 2.5);
    assert_close(model.scale[1], sqrt(1.25), 1e-15, "scale of 1 2 3 4");
    cr_assert(isinf(model.clip_low[0]) && model.clip_low[0] < 0);
    cr_assert(isinf(model.clip_high[1]) && model.clip_high[1] > 0);

    double out[16];
    kseg_error error = {0};
    cr_assert_eq(kseg_prepare_apply(&model, data, 8, NULL, 1, out, &error), 0, "%s",
                 error.message);
    const double expected[8] = {-1.5, -0.5, -0.5, -0.5, 0.0, 0.0, 1.0, 2.0};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(out[i * 2], expected[i], "row %d: %.17g", i, out[i * 2]);
        assert_close(out[i * 2 + 1], (data[i * 2 + 1] - 2.5) / sqrt(1.25), 1e-15, "column 1");
    }
    kseg_prepare_model_destroy(&model);
}

/* RobustScaler on 1 2 3 4 100: median 3, q25 = 2, q75 = 4 (virtual indices 1 and 3), IQR 2.
 * On 1 2 3 4: median (2 + 3) / 2 = 2.5, q25 at virtual index 0.75 = 1.75, q75 at 2.25 = 3.25. */
Test(prepare, robust_scaling_by_hand)
{
    const double odd[5] = {4, 1, 100, 3, 2};
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(odd, 5, 1, KSEG_SCALING_ROBUST, NULL, &model);
    cr_assert_eq(model.center[0], 3.0);
    cr_assert_eq(model.scale[0], 2.0);
    double out[5];
    cr_assert_eq(kseg_prepare_apply(&model, odd, 5, NULL, 2, out, NULL), 0);
    const double expected[5] = {0.5, -1.0, 48.5, 0.0, -0.5};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out[i], expected[i], "row %d: %.17g", i, out[i]);
    kseg_prepare_model_destroy(&model);

    const double even[4] = {3, 1, 4, 2};
    fit_or_fail(even, 4, 1, KSEG_SCALING_ROBUST, NULL, &model);
    cr_assert_eq(model.center[0], 2.5);
    cr_assert_eq(model.scale[0], 1.5);
    kseg_prepare_model_destroy(&model);
}

Test(prepare, no_scaling_keeps_values)
{
    const double data[3] = {-7.25, 0.0, 13.5};
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, 3, 1, KSEG_SCALING_NONE, NULL, &model);
    cr_assert_eq(model.center[0], 0.0);
    cr_assert_eq(model.scale[0], 1.0);
    double out[3];
    cr_assert_eq(kseg_prepare_apply(&model, data, 3, NULL, 1, out, NULL), 0);
    cr_assert_arr_eq(out, data, sizeof out);
    kseg_prepare_model_destroy(&model);
}

/* A constant column gets scale 1 under both scalers, also when its mean is not exact in binary
 * (0.1 summed ten times is not 1.0, so the computed variance is rounding noise, which
 * scikit-learn's constant-feature test recognizes). */
Test(prepare, constant_columns_get_scale_one)
{
    double data[10 * 2];
    for (int i = 0; i < 10; i++) {
        data[i * 2] = 0.1;
        data[i * 2 + 1] = -3.0;
    }
    for (int s = 0; s < 2; s++) {
        kseg_scaling scaling = s == 0 ? KSEG_SCALING_STANDARD : KSEG_SCALING_ROBUST;
        kseg_prepare_model model;
        kseg_prepare_model_init(&model);
        fit_or_fail(data, 10, 2, scaling, NULL, &model);
        cr_assert_eq(model.scale[0], 1.0, "%s: scale %.17g", kseg_scaling_name(scaling),
                     model.scale[0]);
        cr_assert_eq(model.scale[1], 1.0);
        cr_assert_eq(model.center[1], -3.0);
        assert_close(model.center[0], 0.1, 1e-15, "center of 0.1s");
        double out[20];
        cr_assert_eq(kseg_prepare_apply(&model, data, 10, NULL, 1, out, NULL), 0);
        for (int i = 0; i < 20; i++)
            cr_assert(fabs(out[i]) < 1e-15, "value %d is %g", i, out[i]);
        kseg_prepare_model_destroy(&model);
    }
}

/* ---------------------------------------------------------------- clipping, log1p, weights */

/* Quantiles of 0..10 (11 values) as numpy.quantile: q = 0.1 sits at virtual index 1.0 -> 1,
 * q = 0.95 at 9.5 -> 9.5; values outside are clipped to them. */
Test(prepare, clip_quantiles_by_hand)
{
    double data[11];
    for (int i = 0; i < 11; i++)
        data[i] = (double)(10 - i);
    kseg_feature_spec spec;
    kseg_feature_spec_defaults(&spec);
    spec.clip_low = 0.1;
    spec.clip_high = 0.95;
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, 11, 1, KSEG_SCALING_NONE, &spec, &model);
    cr_assert_eq(model.clip_low[0], 1.0);
    cr_assert_eq(model.clip_high[0], 9.5);
    double out[11];
    cr_assert_eq(kseg_prepare_apply(&model, data, 11, NULL, 1, out, NULL), 0);
    for (int i = 0; i < 11; i++)
        cr_assert_eq(out[i], fmin(fmax(data[i], 1.0), 9.5), "row %d: %g", i, out[i]);

    /* Only one side, and the extreme quantiles 0 and 1 (the minimum and maximum). */
    kseg_prepare_model_destroy(&model);
    spec.clip_low = NAN;
    spec.clip_high = 0.5;
    fit_or_fail(data, 11, 1, KSEG_SCALING_NONE, &spec, &model);
    cr_assert(isinf(model.clip_low[0]));
    cr_assert_eq(model.clip_high[0], 5.0);
    kseg_prepare_model_destroy(&model);
    spec.clip_low = 0.0;
    spec.clip_high = 1.0;
    fit_or_fail(data, 11, 1, KSEG_SCALING_NONE, &spec, &model);
    cr_assert_eq(model.clip_low[0], 0.0);
    cr_assert_eq(model.clip_high[0], 10.0);
    kseg_prepare_model_destroy(&model);
}

/* log1p maps 0, e - 1, e^2 - 1 to 0, 1, 2; with standard scaling those have mean 1 and
 * population standard deviation sqrt(2/3). */
Test(prepare, log1p_then_scaling)
{
    const double data[3] = {0.0, expm1(1.0), expm1(2.0)};
    kseg_feature_spec spec;
    kseg_feature_spec_defaults(&spec);
    spec.transform = KSEG_TRANSFORM_LOG1P;
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, 3, 1, KSEG_SCALING_STANDARD, &spec, &model);
    cr_assert_eq(model.transform[0], KSEG_TRANSFORM_LOG1P);
    assert_close(model.center[0], 1.0, 1e-15, "mean of log1p");
    assert_close(model.scale[0], sqrt(2.0 / 3.0), 1e-15, "std of log1p");
    double out[3];
    cr_assert_eq(kseg_prepare_apply(&model, data, 3, NULL, 1, out, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_close(out[i], ((double)i - 1.0) / sqrt(2.0 / 3.0), 1e-14, "log1p output");
    kseg_prepare_model_destroy(&model);
}

/* The weight multiplies the scaled value and nothing else: center and scale do not change. */
Test(prepare, weight_multiplies_the_scaled_column)
{
    double *data = make_customers(200, 3, 7);
    kseg_feature_spec specs[3];
    for (int j = 0; j < 3; j++)
        kseg_feature_spec_defaults(&specs[j]);
    kseg_prepare_model plain, weighted;
    kseg_prepare_model_init(&plain);
    kseg_prepare_model_init(&weighted);
    fit_or_fail(data, 200, 3, KSEG_SCALING_STANDARD, specs, &plain);
    specs[1].weight = 2.5;
    fit_or_fail(data, 200, 3, KSEG_SCALING_STANDARD, specs, &weighted);
    cr_assert_eq(weighted.weight[1], 2.5);
    cr_assert_eq(weighted.weight[0], 1.0);
    double *a = malloc(600 * sizeof *a), *b = malloc(600 * sizeof *b);
    cr_assert_eq(kseg_prepare_apply(&plain, data, 200, NULL, 1, a, NULL), 0);
    cr_assert_eq(kseg_prepare_apply(&weighted, data, 200, NULL, 1, b, NULL), 0);
    for (size_t i = 0; i < 200; i++) {
        cr_assert_eq(b[i * 3], a[i * 3]);
        cr_assert_eq(b[i * 3 + 1], 2.5 * a[i * 3 + 1]);
        cr_assert_eq(b[i * 3 + 2], a[i * 3 + 2]);
    }
    free(a);
    free(b);
    free(data);
    kseg_prepare_model_destroy(&plain);
    kseg_prepare_model_destroy(&weighted);
}

/* ---------------------------------------------------------------- oracle: scikit-learn */

/* A 12 x 3 table: column 0 a heavy-tailed amount with log1p and clipping at its 10% and 90%
 * quantiles, column 1 counts clipped above at 95%, column 2 constant. The expected numbers were
 * computed once with numpy 2.4.6 and scikit-learn 1.9.1, P being this table as a float64 array:
 *     lo, hi = np.quantile(P[:, 0], 0.1), np.quantile(P[:, 0], 0.9)
 *     hi1 = np.quantile(P[:, 1], 0.95)
 *     T = P.copy(); T[:, 0] = np.log1p(np.clip(P[:, 0], lo, hi))
 *     T[:, 1] = np.clip(P[:, 1], -np.inf, hi1)
 *     s = sklearn.preprocessing.StandardScaler().fit(T)   # s.mean_, s.scale_, s.transform(T)[4]
 *     r = sklearn.preprocessing.RobustScaler().fit(T)     # r.center_, r.scale_, r.transform(T)[10]
 * printed with "%.17g". */
static const double oracle_table[12 * 3] = {
    12.0,   0.0,  3.0,
    250.0,  1.0,  3.0,
    31.5,   4.0,  3.0,
    8.0,    2.0,  3.0,
    1200.0, 0.0,  3.0,
    45.0,   9.0,  3.0,
    3.25,   3.0,  3.0,
    77.0,   1.0,  3.0,
    19.0,   5.0,  3.0,
    560.0,  2.0,  3.0,
    0.5,    40.0, 3.0,
    140.0,  6.0,  3.0,
};

static void oracle_specs(kseg_feature_spec specs[3])
{
    for (int j = 0; j < 3; j++)
        kseg_feature_spec_defaults(&specs[j]);
    specs[0].transform = KSEG_TRANSFORM_LOG1P;
    specs[0].clip_low = 0.1;
    specs[0].clip_high = 0.9;
    specs[1].clip_high = 0.95;
}

Test(prepare, matches_scikit_learn_standard_scaler)
{
    kseg_feature_spec specs[3];
    oracle_specs(specs);
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(oracle_table, 12, 3, KSEG_SCALING_STANDARD, specs, &model);
    /* numpy.quantile's linear interpolation, reproduced operation by operation: exact. */
    cr_assert_eq(model.clip_low[0], 3.7250000000000005, "%.17g", model.clip_low[0]);
    cr_assert_eq(model.clip_high[0], 529.00000000000011, "%.17g", model.clip_high[0]);
    cr_assert_eq(model.clip_high[1], 22.949999999999978, "%.17g", model.clip_high[1]);
    cr_assert(isinf(model.clip_low[1]) && isinf(model.clip_low[2]));
    /* Sums in a different order than numpy's pairwise ones: equal to a few ulps. */
    assert_close(model.center[0], 3.7958498737799857, 1e-14, "mean_[0]");
    assert_close(model.center[1], 4.6624999999999979, 1e-14, "mean_[1]");
    cr_assert_eq(model.center[2], 3.0);
    assert_close(model.scale[0], 1.6273577478416805, 1e-14, "scale_[0]");
    assert_close(model.scale[1], 6.0747813746669053, 1e-14, "scale_[1]");
    cr_assert_eq(model.scale[2], 1.0);
    double out[36];
    cr_assert_eq(kseg_prepare_apply(&model, oracle_table, 12, NULL, 1, out, NULL), 0);
    assert_close(out[4 * 3 + 0], 1.5221159183046225, 1e-13, "transform(T)[4, 0]");
    assert_close(out[4 * 3 + 1], -0.76751733312470916, 1e-13, "transform(T)[4, 1]");
    cr_assert_eq(out[4 * 3 + 2], 0.0);
    kseg_prepare_model_destroy(&model);
}

Test(prepare, matches_scikit_learn_robust_scaler)
{
    kseg_feature_spec specs[3];
    oracle_specs(specs);
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(oracle_table, 12, 3, KSEG_SCALING_ROBUST, specs, &model);
    /* Medians and quantiles involve no sums: equal up to log1p's last bit. */
    assert_close(model.center[0], 3.6549407429123937, 1e-15, "center_[0]");
    cr_assert_eq(model.center[1], 2.5);
    cr_assert_eq(model.center[2], 3.0);
    assert_close(model.scale[0], 2.6199149901363645, 1e-15, "scale_[0]");
    cr_assert_eq(model.scale[1], 4.25);
    cr_assert_eq(model.scale[2], 1.0);
    double out[36];
    cr_assert_eq(kseg_prepare_apply(&model, oracle_table, 12, NULL, 1, out, NULL), 0);
    assert_close(out[10 * 3 + 0], -0.8023440416504799, 1e-14, "transform(T)[10, 0]");
    assert_close(out[10 * 3 + 1], 4.8117647058823474, 1e-14, "transform(T)[10, 1]");
    kseg_prepare_model_destroy(&model);
}

/* ---------------------------------------------------------------- against direct formulas */

/* Mean and population standard deviation of each transformed column, summed in long double in
 * the plainest way, for 20000 rows (three blocks of the reduction). */
Test(prepare, standard_scaling_matches_direct_formulas)
{
    const size_t n = 20000, d = 4;
    double *data = make_customers(n, d, 11);
    kseg_feature_spec specs[4];
    for (size_t j = 0; j < d; j++)
        kseg_feature_spec_defaults(&specs[j]);
    specs[0].transform = KSEG_TRANSFORM_LOG1P;
    specs[3].weight = 0.5;
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, n, d, KSEG_SCALING_STANDARD, specs, &model);
    for (size_t j = 0; j < d; j++) {
        long double sum = 0, squares = 0;
        for (size_t i = 0; i < n; i++)
            sum += j == 0 ? log1pl(data[i * d + j]) : data[i * d + j];
        long double mean = sum / n;
        for (size_t i = 0; i < n; i++) {
            long double value = j == 0 ? log1pl(data[i * d + j]) : data[i * d + j];
            squares += (value - mean) * (value - mean);
        }
        assert_close(model.center[j], (double)mean, 1e-13, "mean");
        assert_close(model.scale[j], (double)sqrtl(squares / n), 1e-13, "standard deviation");
    }
    free(data);
    kseg_prepare_model_destroy(&model);
}

/* ---------------------------------------------------------------- round trip */

Test(prepare, apply_then_inverse_gives_the_values_back)
{
    const size_t n = 1000, d = 4;
    double *data = make_customers(n, d, 3);
    kseg_feature_spec specs[4];
    for (size_t j = 0; j < d; j++)
        kseg_feature_spec_defaults(&specs[j]);
    specs[0].transform = KSEG_TRANSFORM_LOG1P;
    specs[1].transform = KSEG_TRANSFORM_LOG1P;
    specs[2].weight = 3.0;
    specs[3].weight = 0.25;
    double *prepared = malloc(n * d * sizeof *prepared), *back = malloc(n * d * sizeof *back);
    for (int s = 0; s < 3; s++) {
        kseg_prepare_model model;
        kseg_prepare_model_init(&model);
        fit_or_fail(data, n, d, (kseg_scaling)s, specs, &model);
        cr_assert_eq(kseg_prepare_apply(&model, data, n, NULL, 2, prepared, NULL), 0);
        kseg_prepare_inverse(&model, prepared, n, back);
        for (size_t i = 0; i < n * d; i++)
            assert_close(back[i], data[i], 1e-12, "inverse(apply(x))");
        /* In place: out == data. */
        memcpy(back, prepared, n * d * sizeof *back);
        kseg_prepare_inverse(&model, back, n, back);
        for (size_t i = 0; i < n * d; i++)
            assert_close(back[i], data[i], 1e-12, "inverse in place");
        kseg_prepare_model_destroy(&model);
    }
    free(prepared);
    free(back);
    free(data);
}

/* With clipping the inverse gives the clipped value, and apply in place equals apply to a copy. */
Test(prepare, inverse_of_clipped_data_is_the_clipped_value)
{
    const size_t n = 500, d = 2;
    double *data = make_customers(n, d, 5);
    kseg_feature_spec specs[2];
    kseg_feature_spec_defaults(&specs[0]);
    kseg_feature_spec_defaults(&specs[1]);
    specs[0].transform = KSEG_TRANSFORM_LOG1P;
    specs[0].clip_low = 0.05;
    specs[0].clip_high = 0.99;
    specs[1].clip_high = 0.9;
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, n, d, KSEG_SCALING_ROBUST, specs, &model);
    double *prepared = malloc(n * d * sizeof *prepared);
    double *in_place = malloc(n * d * sizeof *in_place);
    memcpy(in_place, data, n * d * sizeof *in_place);
    cr_assert_eq(kseg_prepare_apply(&model, data, n, NULL, 1, prepared, NULL), 0);
    cr_assert_eq(kseg_prepare_apply(&model, in_place, n, NULL, 2, in_place, NULL), 0);
    cr_assert_arr_eq(in_place, prepared, n * d * sizeof *prepared);
    kseg_prepare_inverse(&model, prepared, n, prepared);
    size_t clipped = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double x = data[i * d + j];
            double expected = fmin(fmax(x, model.clip_low[j]), model.clip_high[j]);
            clipped += expected != x;
            assert_close(prepared[i * d + j], expected, 1e-12, "inverse of clipped");
        }
    cr_assert_gt(clipped, 50, "only %zu values were clipped", clipped);
    free(prepared);
    free(in_place);
    free(data);
    kseg_prepare_model_destroy(&model);
}

/* ---------------------------------------------------------------- errors */

static const char *const column_names[3] = {"monetary", "frequency", "tenure"};

Test(prepare, nonfinite_values_are_named_by_row_and_column)
{
    double data[6 * 3];
    for (int i = 0; i < 18; i++)
        data[i] = (double)i;
    data[5 * 3 + 0] = NAN;
    data[3 * 3 + 1] = INFINITY; /* the first in row order */
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    kseg_prepare_model model;
    kseg_error error = {0};
    cr_assert_eq(kseg_prepare_fit(data, 6, 3, &options, column_names, 2, &model, &error),
                 KSEG_ENONFINITE);
    cr_assert_eq(error.code, KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "row 3"), "%s", error.message);
    cr_assert(strstr(error.message, "column \"frequency\""), "%s", error.message);
    cr_assert(strstr(error.message, "+Inf"), "%s", error.message);
    /* A failed fit leaves an empty model that can be destroyed (or not). */
    cr_assert_eq(model.n_features, 0);
    cr_assert_null(model.center);
    kseg_prepare_model_destroy(&model);

    data[3 * 3 + 1] = 1.0;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_prepare_fit(data, 6, 3, &options, NULL, 1, &model, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "row 5, column 0:"), "%s", error.message);
    cr_assert(strstr(error.message, "NaN"), "%s", error.message);
}

Test(prepare, apply_rejects_nonfinite_and_leaves_data_intact)
{
    double data[4 * 3];
    for (int i = 0; i < 12; i++)
        data[i] = (double)(i % 5);
    kseg_prepare_model model;
    kseg_prepare_model_init(&model);
    fit_or_fail(data, 4, 3, KSEG_SCALING_STANDARD, NULL, &model);
    double before[12];
    data[2 * 3 + 2] = -INFINITY;
    memcpy(before, data, sizeof before);
    kseg_error error = {0};
    cr_assert_eq(kseg_prepare_apply(&model, data, 4, column_names, 1, data, &error),
                 KSEG_ENONFINITE);
    cr_assert(strstr(error.message, "row 2, column \"tenure\""), "%s", error.message);
    cr_assert_arr_eq(data, before, sizeof before);
    kseg_prepare_model_destroy(&model);
}

/* log1p needs x > -1 after clipping: -2 fails (naming row and column) unless the clip raises
 * it, and the same holds when the model is applied to new rows. */
Test(prepare, log1p_of_values_at_most_minus_one)
{
    double data[5 * 2] = {1, 0, 2, 0, 3, 0, 4, -2, 5, 0};
    kseg_feature_spec specs[2];
    kseg_feature_spec_defaults(&specs[0]);
    kseg_feature_spec_defaults(&specs[1]);
    specs[1].transform = KSEG_TRANSFORM_LOG1P;
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    options.specs = specs;
    kseg_prepare_model model;
    kseg_error error = {0};
    cr_assert_eq(kseg_prepare_fit(data, 5, 2, &options, column_names, 1, &model, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "row 3, column \"frequency\""), "%s", error.message);
    cr_assert(strstr(error.message, "log1p"), "%s", error.message);
    cr_assert(strstr(error.message, "-2"), "%s", error.message);

    data[3 * 2 + 1] = -1.0; /* log1p(-1) = -Inf: rejected too */
    kseg_error_clear(&error);
    cr_assert_eq(kseg_prepare_fit(data, 5, 2, &options, NULL, 1, &model, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "row 3, column 1:"), "%s", error.message);

    /* Clipping at the 25% quantile (0) lifts -2 to 0 before log1p. */
    data[3 * 2 + 1] = -2.0;
    specs[1].clip_low = 0.25;
    cr_assert_eq(kseg_prepare_fit(data, 5, 2, &options, NULL, 1, &model, &error), 0, "%s",
                 error.message);
    cr_assert_eq(model.clip_low[1], 0.0);
    double out[10];
    cr_assert_eq(kseg_prepare_apply(&model, data, 5, NULL, 1, out, &error), 0);
    kseg_prepare_model_destroy(&model);

    /* A model without clipping, applied to a new row of -2. */
    specs[1].clip_low = NAN;
    data[3 * 2 + 1] = 7.0;
    cr_assert_eq(kseg_prepare_fit(data, 5, 2, &options, NULL, 1, &model, &error), 0);
    const double new_rows[2 * 2] = {1.0, 0.5, 2.0, -2.0};
    kseg_error_clear(&error);
    cr_assert_eq(kseg_prepare_apply(&model, new_rows, 2, column_names, 1, out, &error),
                 KSEG_EINVAL);
    cr_assert(strstr(error.message, "row 1, column \"frequency\""), "%s", error.message);
    kseg_prepare_model_destroy(&model);
}

Test(prepare, invalid_quantiles_weights_and_options)
{
    double data[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    kseg_feature_spec specs[2];
    kseg_prepare_options options;
    kseg_prepare_options_defaults(&options);
    options.specs = specs;
    kseg_prepare_model model;
    struct {
        double clip_low, clip_high, weight;
        const char *expected;
    } cases[] = {
        {1.5, NAN, 1.0, "clip_low is 1.5"},      {-0.1, NAN, 1.0, "clip_low is -0.1"},
        {NAN, INFINITY, 1.0, "clip_high is inf"}, {NAN, 2.0, 1.0, "clip_high is 2"},
        {0.8, 0.2, 1.0, "above clip_high"},       {NAN, NAN, 0.0, "weight is 0"},
        {NAN, NAN, -1.0, "weight is -1"},         {NAN, NAN, NAN, "weight is nan"},
        {NAN, NAN, INFINITY, "weight is inf"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kseg_feature_spec_defaults(&specs[0]);
        kseg_feature_spec_defaults(&specs[1]);
        specs[1].clip_low = cases[c].clip_low;
        specs[1].clip_high = cases[c].clip_high;
        specs[1].weight = cases[c].weight;
        kseg_error error = {0};
        cr_assert_eq(kseg_prepare_fit(data, 4, 2, &options, column_names, 1, &model, &error),
                     KSEG_EINVAL, "case %zu", c);
        cr_assert(strstr(error.message, "column \"frequency\""), "case %zu: %s", c,
                  error.message);
        cr_assert(strstr(error.message, cases[c].expected), "case %zu: %s", c, error.message);
    }
    /* Equal quantiles are allowed: the column becomes constant. */
    kseg_feature_spec_defaults(&specs[1]);
    specs[1].clip_low = specs[1].clip_high = 0.5;
    cr_assert_eq(kseg_prepare_fit(data, 4, 2, &options, NULL, 1, &model, NULL), 0);
    cr_assert_eq(model.clip_low[1], 5.0);
    cr_assert_eq(model.scale[1], 1.0);
    kseg_prepare_model_destroy(&model);

    kseg_error error = {0};
    kseg_feature_spec_defaults(&specs[1]);
    specs[0].transform = (kseg_transform)7;
    cr_assert_eq(kseg_prepare_fit(data, 4, 2, &options, NULL, 1, &model, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "column 0"), "%s", error.message);
    specs[0].transform = KSEG_TRANSFORM_NONE;
    options.scaling = (kseg_scaling)9;
    cr_assert_eq(kseg_prepare_fit(data, 4, 2, &options, NULL, 1, &model, &error), KSEG_EINVAL);
    options.scaling = KSEG_SCALING_STANDARD;
    cr_assert_eq(kseg_prepare_fit(data, 0, 2, &options, NULL, 1, &model, &error), KSEG_EEMPTY);
    cr_assert_eq(kseg_prepare_fit(data, 4, 0, &options, NULL, 1, &model, &error), KSEG_EEMPTY);
    cr_assert_eq(kseg_prepare_fit(NULL, 4, 2, &options, NULL, 1, &model, &error), KSEG_EINVAL);

    /* An unfitted model cannot be applied. */
    kseg_prepare_model_init(&model);
    double out[8];
    cr_assert_eq(kseg_prepare_apply(&model, data, 4, NULL, 1, out, &error), KSEG_EINVAL);
}

/* ---------------------------------------------------------------- determinism */

static int models_equal(const kseg_prepare_model *a, const kseg_prepare_model *b)
{
    size_t bytes = a->n_features * sizeof(double);
    return a->n_features == b->n_features && a->scaling == b->scaling &&
           memcmp(a->transform, b->transform, a->n_features * sizeof *a->transform) == 0 &&
           memcmp(a->clip_low, b->clip_low, bytes) == 0 &&
           memcmp(a->clip_high, b->clip_high, bytes) == 0 &&
           memcmp(a->center, b->center, bytes) == 0 && memcmp(a->scale, b->scale, bytes) == 0 &&
           memcmp(a->weight, b->weight, bytes) == 0;
}

/* 50000 rows (seven reduction blocks) give the same model and output bits for 1, 2 and 3
 * threads, for every scaling. */
Test(prepare, same_bits_for_any_thread_count)
{
    const size_t n = 50000, d = 4;
    double *data = make_customers(n, d, 19);
    kseg_feature_spec specs[4];
    for (size_t j = 0; j < d; j++)
        kseg_feature_spec_defaults(&specs[j]);
    specs[0].transform = KSEG_TRANSFORM_LOG1P;
    specs[0].clip_high = 0.99;
    specs[1].clip_low = 0.01;
    specs[2].weight = 1.5;
    double *first = malloc(n * d * sizeof *first), *other = malloc(n * d * sizeof *other);
    for (int s = 0; s < 3; s++) {
        kseg_prepare_options options;
        kseg_prepare_options_defaults(&options);
        options.scaling = (kseg_scaling)s;
        options.specs = specs;
        kseg_prepare_model reference;
        kseg_error error = {0};
        cr_assert_eq(kseg_prepare_fit(data, n, d, &options, NULL, 1, &reference, &error), 0, "%s",
                     error.message);
        cr_assert_eq(kseg_prepare_apply(&reference, data, n, NULL, 1, first, &error), 0);
        for (int32_t threads = 2; threads <= 3; threads++) {
            kseg_prepare_model model;
            cr_assert_eq(kseg_prepare_fit(data, n, d, &options, NULL, threads, &model, &error), 0);
            cr_assert(models_equal(&reference, &model), "scaling %d, %d threads", s,
                      (int)threads);
            cr_assert_eq(kseg_prepare_apply(&model, data, n, NULL, threads, other, &error), 0);
            cr_assert_arr_eq(first, other, n * d * sizeof *first);
            kseg_prepare_model_destroy(&model);
        }
        kseg_prepare_model_destroy(&reference);
    }
    free(first);
    free(other);
    free(data);
}
