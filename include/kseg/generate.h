/* Synthetic customer populations for demos, tests and benchmarks. Every block of rows is a pure
 * function of (seed, row index), so a population of any size is produced block by block in
 * bounded memory, in parallel, and identically however it is split. */
#ifndef KSEG_GENERATE_H
#define KSEG_GENERATE_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kseg_customer_options {
    uint64_t seed;         /* Default 1. */
    int32_t n_segments;    /* Latent segments the population is drawn from. Default 6. */
} kseg_customer_options;

KSEG_API void kseg_customer_options_defaults(kseg_customer_options *options);

/* Number of feature columns produced and their names (static strings, in column order). */
KSEG_API size_t kseg_customer_feature_count(void);
KSEG_API const char *kseg_customer_feature_name(size_t column);

/* Fills rows [row_begin, row_begin + rows) of the population: features [rows x feature_count]
 * float32 row-major, ids [rows] (customer ids, may be NULL) and truth [rows] (0-based latent
 * segment, may be NULL). n_threads 0 = OpenMP default; the output does not depend on it. */
KSEG_API int kseg_generate_customers(const kseg_customer_options *options, uint64_t row_begin, size_t rows,
                            float *features, int64_t *ids, int32_t *truth, int32_t n_threads,
                            kseg_error *error);

/* The most latent segments kseg_generate_customers knows (each a named archetype). */
#define KSEG_CUSTOMER_MAX_SEGMENTS 8

/* The name of latent segment `segment` ("champions", "loyal", ...; static), or NULL outside
 * [0, KSEG_CUSTOMER_MAX_SEGMENTS). With n_segments = k the population uses segments 0..k-1. */
KSEG_API const char *kseg_customer_segment_name(int32_t segment);

/* Gaussian blobs for tests: centers drawn uniformly in [-spread, spread]^d, then rows around
 * them with standard deviation sigma; truth [rows] is the generating blob. Deterministic in seed
 * and row index. */
KSEG_API int kseg_generate_blobs(uint64_t seed, size_t rows, size_t cols, size_t n_blobs, double spread,
                        double sigma, float *features, int32_t *truth, kseg_error *error);

/* Rows [row_begin, row_begin + rows) of the population kseg_generate_blobs draws (which is this
 * with row_begin 0), so that a large population can be generated block by block. */
KSEG_API int kseg_generate_blob_rows(uint64_t seed, uint64_t row_begin, size_t rows, size_t cols,
                                     size_t n_blobs, double spread, double sigma, float *features,
                                     int32_t *truth, kseg_error *error);

/* The blob centers [n_blobs x cols] row-major that the functions above use for (seed, spread). */
KSEG_API int kseg_generate_blob_centers(uint64_t seed, size_t cols, size_t n_blobs, double spread,
                                        double *centers, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
