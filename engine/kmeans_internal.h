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
/* The centers [k x d] that run 0 of kseg_kmeans_fit starts from, after the same validation:
 * the initialization alone, for tests and benchmarks. */
int kmeans_initial_centers(const kseg_matrix *data, const kseg_kmeans_options *options,
                           double *centers, kseg_error *error);
/* k-means||; uses the fit's kernel and column_mean, so it runs after both are set up. */
int kmeans_init_parallel(kmeans_context *context, int32_t run, double *centers,
                         kseg_error *error);

/* The steps of mini-batch k-means (kmeans_minibatch.c) for run `run`, moving centers [k x d] in
 * place. Fills iterations[0..*n_iter) (one entry per epoch) and *convergence; the caller's final
 * full assignment pass gives the labels and the inertia. Uses the kernel and column_mean. */
int kmeans_minibatch_steps(kmeans_context *context, int32_t run, double *centers,
                           kseg_iteration_stats *iterations, int32_t *n_iter,
                           kseg_convergence *convergence, kseg_error *error);

/* State of the bound-based algorithms (kmeans_bounds.c): Hamerly, Elkan and Yinyang. Distances
 * in the bounds are exact Euclidean distances to the centers rounded to the element type, as the
 * direct kernels see them. */
typedef struct kmeans_bounds {
    kseg_kmeans_algorithm algorithm; /* HAMERLY, ELKAN or YINYANG */
    double *lower;         /* Hamerly [n]: lower bound on the distance of each row to every center
                              but its own */
    float *row_lower;      /* Elkan [n x k]: lower bound on the distance to each center; Yinyang
                              [n x n_groups]: to every center of the group but the row's own.
                              Rounded down to float, so still lower bounds */
    void *centers;         /* [k x d] element type: the centers of the coming pass */
    void *previous;        /* [k x d] element type: those of the last pass */
    double *moved;         /* [k] upper bound on each center's move since the last pass */
    float *moved_up;       /* [k] moved rounded up to float (Elkan's vectorized bound update) */
    double *half_gap;      /* [k] lower bound on half the distance to the nearest other center */
    float *gap;            /* Elkan [k x k]: lower bound on the distance between two centers */
    void *transposed;      /* [d x k] element type: the centers of the coming pass, transposed */
    double *work;          /* [n_threads x stride] per-thread room for one row's distances */
    size_t stride;
    int n_threads;
    size_t n_groups;       /* Yinyang: t groups of centers, fixed per run */
    int32_t *group_of;     /* [k] group of each center */
    size_t *group_start;   /* [t + 1] where each group's centers begin in group_members */
    int32_t *group_members;/* [k] the centers by group, increasing index within a group */
    double *group_move;    /* [t] the largest move in each group */
    void *grouped;         /* [k x d] element type: each group's centers, transposed, at
                              group_start * d */
    double *grouped_move;  /* [k] their moves, in the same order */
    int32_t *position_of;  /* [k] each center's position in group_members */
    double *group_means;   /* [2 x t x d] scratch of the grouping k-means */
    double largest_move, second_move;
    size_t largest_center; /* the center that moved largest_move */
    double eta;            /* relative error bound of the kernels' squared distances */
    double slack;          /* absolute error bound (underflow) of the same */
    double overflow;       /* the element type's largest finite value */
    int usable;            /* 0 when eta is too large for the bounds to decide anything */
    double own_factor;     /* 1 / (1 - eta), rounded up: computed -> exact squared distance */
    double needed_factor;  /* (1 + eta) / (1 - eta), rounded up */
    double needed_slack;   /* 2 slack / (1 - eta), rounded up */
    double lower_factor;   /* 1 / (1 + eta), rounded down: computed -> exact, from below */
    int fresh;             /* no pass since the run started: the bounds are not yet valid */
} kmeans_bounds;

/* Payload of the bound-based pass: Lloyd's (sums [k x d], weights [k], inertia, changed labels)
 * followed by the distances computed and skipped. */
typedef struct kmeans_bounds_pass {
    const kmeans_context *context;
    kmeans_bounds *bounds;
    int32_t *labels;
} kmeans_bounds_pass;

/* Groups of Yinyang for k centers. */
size_t kmeans_yinyang_groups(size_t k);

int kmeans_bounds_init(kmeans_bounds *bounds, const kmeans_context *context,
                       kseg_kmeans_algorithm algorithm, kseg_error *error);
void kmeans_bounds_destroy(kmeans_bounds *bounds);
/* Starts a new run: every row's first assignment compares it with every center. */
void kmeans_bounds_reset(kmeans_bounds *bounds);
/* Before a pass: the new centers [k x d] (double), their moves and gaps (and, in a run's first
   pass, Yinyang's groups). */
void kmeans_bounds_prepare(kmeans_bounds *bounds, const kmeans_context *context,
                           const double *centers);
/* After a pass: the bounds now describe the labels. */
void kmeans_bounds_finish(kmeans_bounds *bounds);
/* kseg_block_fn of the pass (opaque is a kmeans_bounds_pass). */
void kmeans_bounds_block(void *opaque, size_t block, double *payload, int thread);

/* ------------------------------------------------------------------ checkpoints
 * (kmeans_checkpoint.c) */

/* Collective: *stop = 1 on every rank when any rank's options->stop_request is set (0 without a
 * flag, and then no communication). */
int kmeans_stop_requested(kmeans_context *context, int *stop, kseg_error *error);

/* A new checkpoint holding this fit's identity (data and options; algorithm is the one that
 * runs), its progress fields zeroed (best_run -1). Collective (the weight sum is reduced). */
int kmeans_checkpoint_identity(kmeans_context *context, kseg_kmeans_algorithm algorithm,
                               kseg_kmeans_checkpoint **checkpoint, kseg_error *error);

/* Refuses with KSEG_EMISMATCH a checkpoint taken on other data or options, naming the first
 * difference, and with KSEG_EFORMAT one whose progress fields are inconsistent. Collective. */
int kmeans_checkpoint_verify(kmeans_context *context, kseg_kmeans_algorithm algorithm,
                             const kseg_kmeans_checkpoint *checkpoint, kseg_error *error);

#endif
