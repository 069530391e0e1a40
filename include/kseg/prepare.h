/* Prepare: turns per-customer columns into the feature space k-means sees (optional percentile
 * clipping, log1p, standard or robust scaling, feature weights), and back. The fitted parameters
 * form a model that predict applies unchanged, so training rows map to the same points. */
#ifndef KSEG_PREPARE_H
#define KSEG_PREPARE_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kseg_transform {
    KSEG_TRANSFORM_NONE = 0,
    KSEG_TRANSFORM_LOG1P = 1 /* log(1 + x); needs x > -1 after clipping */
} kseg_transform;

typedef enum kseg_scaling {
    KSEG_SCALING_STANDARD = 0, /* (x - mean) / population standard deviation (ddof 0), as
                                  scikit-learn's StandardScaler; a constant column gets scale 1 */
    KSEG_SCALING_ROBUST = 1,   /* (x - median) / (q75 - q25), quantiles with linear interpolation
                                  as numpy; as scikit-learn's RobustScaler; zero IQR -> scale 1 */
    KSEG_SCALING_NONE = 2      /* center 0, scale 1 */
} kseg_scaling;

/* Parse/print "none"/"log1p" and "standard"/"robust"/"none"; parse returns 0 or KSEG_EINVAL. */
KSEG_API int kseg_transform_parse(const char *text, kseg_transform *transform);
KSEG_API const char *kseg_transform_name(kseg_transform transform);
KSEG_API int kseg_scaling_parse(const char *text, kseg_scaling *scaling);
KSEG_API const char *kseg_scaling_name(kseg_scaling scaling);

/* What to do with one column. */
typedef struct kseg_feature_spec {
    kseg_transform transform; /* Default KSEG_TRANSFORM_NONE. */
    double clip_low;          /* Clip below this quantile (0..1) of the column; NaN = no clip.
                                 Default NaN. */
    double clip_high;         /* Clip above this quantile (0..1); NaN = no clip. Default NaN. */
    double weight;            /* Multiplies the scaled column (its importance in distances);
                                 finite and > 0. Default 1. */
} kseg_feature_spec;

KSEG_API void kseg_feature_spec_defaults(kseg_feature_spec *spec);

typedef struct kseg_prepare_options {
    kseg_scaling scaling;            /* Default KSEG_SCALING_STANDARD. */
    const kseg_feature_spec *specs;  /* [n_features] or NULL = defaults for every column. */
} kseg_prepare_options;

KSEG_API void kseg_prepare_options_defaults(kseg_prepare_options *options);

/* The fitted parameters; owned arrays of n_features. kseg_prepare_model_init / _destroy.
 * A value x of column j becomes
 *     y = weight[j] * (t_j(min(max(x, clip_low[j]), clip_high[j])) - center[j]) / scale[j]
 * where t_j is transform[j]; clip bounds are -inf/+inf where no clip was asked for. */
typedef struct kseg_prepare_model {
    size_t n_features;
    kseg_scaling scaling;
    kseg_transform *transform;
    double *clip_low;
    double *clip_high;
    double *center;
    double *scale;
    double *weight;
} kseg_prepare_model;

KSEG_API void kseg_prepare_model_init(kseg_prepare_model *model);
KSEG_API void kseg_prepare_model_destroy(kseg_prepare_model *model);

/* Fits the model on data [n x d] (row-major double, n >= 1). Fails with KSEG_ENONFINITE naming
 * row and column of a NaN/Inf, KSEG_EINVAL for log1p of a value <= -1 (after clipping; names row
 * and column), invalid quantiles (clip_low > clip_high, outside [0, 1]) or weights.
 * column_names (may be NULL) are used in messages. Deterministic; n_threads 0 = OpenMP default. */
KSEG_API int kseg_prepare_fit(const double *data, size_t n, size_t d,
                              const kseg_prepare_options *options,
                              const char *const *column_names, int32_t n_threads,
                              kseg_prepare_model *model, kseg_error *error);

/* Applies the model: out [n x d] (may equal data). Same checks as fit for NaN/Inf and log1p. */
KSEG_API int kseg_prepare_apply(const kseg_prepare_model *model, const double *data, size_t n,
                                const char *const *column_names, int32_t n_threads, double *out,
                                kseg_error *error);

/* Maps points of the prepared space [n x d] back to original units: undoes weight, scale,
 * center and transform (expm1). Clipping cannot be undone; prepared points of clipped data lie
 * inside the clip range anyway. out may equal prepared. */
KSEG_API void kseg_prepare_inverse(const kseg_prepare_model *model, const double *prepared,
                                   size_t n, double *out);

#ifdef __cplusplus
}
#endif
#endif
