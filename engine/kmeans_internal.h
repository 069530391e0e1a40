/* State shared by the k-means driver (kmeans.c) and the initializations (kmeans_init.c). */
#ifndef KSEG_ENGINE_KMEANS_INTERNAL_H
#define KSEG_ENGINE_KMEANS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "kernels.h"
#include "kseg/kmeans.h"

typedef struct kmeans_context {
    const kseg_kmeans_options *options;
    const unsigned char *rows; /* the local rows, element size element_size */
    kseg_dtype dtype;
    size_t element_size;
    size_t n;                  /* local rows */
    size_t d;
    size_t k;
    const double *weights;     /* local weights or NULL */
    kseg_blocks blocks;
    kseg_vector_reducer reducer;
    const kseg_assign_kernel *kernel;
    void *packed;              /* packed centers for kernel */
    void **scratch;            /* [n_threads] kernel scratch */
    double **row_buffers;      /* [n_threads] KSEG_BLOCK_ROWS doubles of per-row scratch */
    double *column_mean;       /* [d] unweighted mean of each feature */
    double mean_variance;      /* mean over features of the unweighted variance */
    int32_t n_init;            /* initializations actually run */
} kmeans_context;

/* Row i of the local data as double into out[d]. */
void kmeans_row_as_double(const kmeans_context *context, size_t row, double *out);

/* Squared distance in double between local row i and center[d]. */
double kmeans_row_distance(const kmeans_context *context, size_t row, const double *center);

/* Copies `bytes` bytes that the rank holding global row `global_row` has in local (ignored on
 * the other ranks) into out on every rank. */
int kmeans_share_from_owner(kmeans_context *context, uint64_t global_row, const void *local,
                            size_t bytes, void *out, kseg_error *error);

/* Copies global row `global_row` (on whichever rank holds it) into out[d] on every rank. */
int kmeans_fetch_row(kmeans_context *context, uint64_t global_row, double *out,
                     kseg_error *error);

/* Fills centers[k x d] for initialization run `run`. */
int kmeans_init_plusplus(kmeans_context *context, int32_t run, double *centers,
                         kseg_error *error);
int kmeans_init_random(kmeans_context *context, int32_t run, double *centers, kseg_error *error);

#endif
