/* k-means clustering: options with documented defaults, the result with per-iteration
 * statistics, fit and predict. Semantics follow scikit-learn's KMeans where the concept matches
 * (tol relative to the mean feature variance, strict convergence, final assignment step,
 * sample weights everywhere, greedy k-means++). */
#ifndef KSEG_KMEANS_H
#define KSEG_KMEANS_H

#include "kseg/export.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "kseg/comm.h"
#include "kseg/error.h"
#include "kseg/matrix.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kseg_init_method {
    /* Greedy k-means++ (Arthur & Vassilvitskii), local_trials candidates per center, weighted. */
    KSEG_INIT_KMEANS_PLUSPLUS = 0,
    /* k distinct rows drawn with probability proportional to their weight. */
    KSEG_INIT_RANDOM = 1,
    /* The caller's centers in kseg_kmeans_options.init_centers. */
    KSEG_INIT_GIVEN = 2,
    /* k-means|| (Bahmani et al. 2012), for very large n: init_rounds passes each draw every row
       independently with probability min(1, oversampling * weight * D^2 / potential); the
       candidates are weighted by the weight of the rows nearest to them and reduced to k centers
       by weighted greedy k-means++. Reads the data init_rounds + 1 times instead of k-means++'s
       2k times. Fewer than k candidates (data with fewer distinct rows than k, a tiny
       oversampling) fall back to k-means++ on the rows. */
    KSEG_INIT_KMEANS_PARALLEL = 3
} kseg_init_method;

/* Parse "k-means++" / "random" / "k-means||" (alias "kmeans-parallel", which needs no quoting in
 * a shell) (case-sensitive); returns 0 or KSEG_EINVAL. */
KSEG_API int kseg_init_method_parse(const char *text, kseg_init_method *method);
KSEG_API const char *kseg_init_method_name(kseg_init_method method);

typedef enum kseg_kmeans_algorithm {
    /* Lloyd's algorithm: every row is compared with every center in every iteration. */
    KSEG_ALGORITHM_LLOYD = 0,
    /* Hamerly's algorithm: a lower bound per row on the distance to its second-nearest center
       and half the distance from each center to its nearest other center skip the comparisons
       that cannot change a label. Exact: labels, centers, inertia and statistics (all but the
       distance counts, the point of it) are bitwise those of Lloyd from the same
       initialization (bounds carry a margin for the kernels' rounding, and every undecided
       row is compared with all centers as Lloyd does). Needs a direct-difference kernel: with
       an expanded-form kernel named in options.kernel ("gemm", "avx512-expanded") the fit runs
       Lloyd; without a name it gets a direct one. The same holds for ELKAN and YINYANG. */
    KSEG_ALGORITHM_HAMERLY = 1,
    /* The fastest measured choice that fits the memory (bench/RESULTS.md, "Exact bound
       algorithms"): Hamerly when the kernel is the scalar reference (CPUs without AVX2) and
       d <= 32 (Yinyang if Hamerly's memory does not fit), else Lloyd. With the reference
       kernel every bound algorithm beat Lloyd (customers, k = 8: Hamerly 4.9x, Elkan 4.1x,
       Yinyang 3.7x; k = 128: 21x, 12x, 16x), Hamerly most; with
       the vectorized kernels Lloyd was faster than all three at every shape measured (k = 8 to
       128, d = 8 to 64). A bound algorithm is taken only if its memory fits
       bounds_memory_limit and half of kseg_memory_available(); otherwise Lloyd. */
    KSEG_ALGORITHM_AUTO = 2,
    /* Elkan's algorithm: a lower bound per row and center (n x k floats, rounded down) and the
       center-to-center distances skip each comparison the triangle inequality decides. Exact
       like Hamerly (same margins, same kernel arithmetic, ties to the lowest index). */
    KSEG_ALGORITHM_ELKAN = 3,
    /* Yinyang k-means (Ding et al. 2015): the centers are split into t = max(1, k / 10) groups
       by a fixed k-means of the initial centers; one lower bound per row and group (n x t
       floats) filters whole groups, then each center of a surviving group is filtered by its
       own move. Exact like Hamerly. */
    KSEG_ALGORITHM_YINYANG = 4,
    /* APPROXIMATE. Mini-batch k-means (Sculley 2010, scikit-learn's MiniBatchKMeans semantics):
       each step draws batch_size rows uniformly with replacement, assigns them to the current
       centers and moves each center towards the weighted mean of its batch rows with a
       per-center learning rate 1 / (weight it has received so far). max_iter counts epochs of
       ceil(n / batch_size) steps; a run stops early after max_no_improvement steps without a
       new minimum of the smoothed batch inertia (tol is not used). No reassignment of small
       clusters. A final pass assigns every row, so labels match the centers and the inertia is
       the full data's; the centers differ from Lloyd's, typically by a little inertia. */
    KSEG_ALGORITHM_MINIBATCH = 5
} kseg_kmeans_algorithm;

/* Parse "lloyd" / "hamerly" / "elkan" / "yinyang" / "auto" / "minibatch" (case-sensitive);
 * returns 0 or KSEG_EINVAL. */
KSEG_API int kseg_kmeans_algorithm_parse(const char *text, kseg_kmeans_algorithm *algorithm);
KSEG_API const char *kseg_kmeans_algorithm_name(kseg_kmeans_algorithm algorithm);

/* Bytes the algorithm needs beyond Lloyd's workspace for n_rows local rows, k clusters and d
 * features: for Hamerly one double per row (the lower bound; the upper bound is recomputed
 * exactly in every iteration, since the objective needs each row's distance to its center
 * anyway), for Elkan k floats per row and k x k floats of center distances, for Yinyang
 * t = max(1, k / 10) floats per row; each also three or four copies of the centers in the
 * data's element type and a few doubles per center. 0 for Lloyd and mini-batch (whose batch
 * buffers, about two records of d + 4 doubles and a copy of the row per batch row,
 * kseg_kmeans_fit adds from the options); AUTO counts as the largest
 * bound algorithm (Elkan), an upper bound on what it may pick. UINT64_MAX if the size
 * overflows. kseg_kmeans_fit checks it against options.bounds_memory_limit and, with the rest of
 * its workspace, against kseg_memory_available() before it starts. */
KSEG_API uint64_t kseg_kmeans_algorithm_memory(kseg_kmeans_algorithm algorithm, size_t n_rows,
                                               size_t k, size_t d);

/* Statistics of one Lloyd iteration. The objective is the weighted sum of squared distances of
 * the rows to the centers they were assigned to in this iteration (the centers before update). */
typedef struct kseg_iteration_stats {
    int32_t iteration;       /* 1-based */
    double objective;        /* inertia w.r.t. the centers used for the assignment */
    double center_shift;     /* sum over centers of the squared move of the update */
    int64_t changed_labels;  /* rows whose label differs from the previous iteration */
    int64_t empty_repairs;   /* empty clusters re-seeded in this iteration */
    double seconds;          /* wall time of the iteration */
    int64_t distances_computed; /* row-to-center distances computed (all ranks); Lloyd: n * k */
    int64_t distances_skipped;  /* comparisons the bounds decided without a distance; Lloyd: 0 */
} kseg_iteration_stats;

/* What the progress callback receives: after each iteration, and once per finished init run. */
typedef struct kseg_progress_event {
    int32_t init_run;                  /* 0-based index of the current initialization */
    int32_t n_init;                    /* total initializations */
    const kseg_iteration_stats *stats; /* the iteration just finished, NULL for a run summary */
    double run_inertia;                /* set for a run summary (stats == NULL) */
} kseg_progress_event;

/* Return non-zero to cancel the fit, which then fails with KSEG_ECANCELED. */
typedef int (*kseg_progress_fn)(const kseg_progress_event *event, void *user_data);

/* The state of an interrupted fit (see kseg_kmeans_options.stop_request): O(k x d + max_iter),
 * the same on every rank and independent of the rank and thread counts, so a fit stopped on R
 * ranks can resume on any other number. kseg_kmeans_fit fills result->checkpoint when it returns
 * KSEG_EINTERRUPTED; kseg_checkpoint_read (kseg/checkpoint.h) rebuilds one from a file. Arrays are
 * malloc'd; kseg_kmeans_checkpoint_free releases them and the struct. */
typedef struct kseg_kmeans_checkpoint {
    /* Identity of the input: a resume on other data is refused naming the first difference. */
    uint64_t n_rows;           /* global rows */
    uint64_t n_features;       /* d */
    int32_t dtype;             /* kseg_dtype of the rows */
    int32_t weighted;          /* 1 when sample weights were given */
    double weight_sum;         /* their sum (block-tree order, bitwise reproducible); 0 if none */
    double *feature_mean;      /* [d] unweighted feature means, as the fit computed them */
    double mean_variance;      /* mean over features of the unweighted variance */
    /* Identity of the options (the kernel and algorithm as resolved by the fit). */
    int64_t n_clusters;
    int32_t init;              /* kseg_init_method */
    int32_t n_init;            /* resolved (0 = auto replaced by its value) */
    int32_t max_iter;
    double tol;
    uint64_t seed;             /* with the run index, the whole random state (counter-based) */
    int32_t algorithm_requested; /* kseg_kmeans_algorithm as given (AUTO included) */
    char algorithm[16];        /* the algorithm that ran */
    char kernel[32];           /* the assignment kernel that ran */
    int32_t local_trials;
    double oversampling;
    int32_t init_rounds;
    int64_t batch_size;
    int32_t max_no_improvement;
    uint64_t init_centers_digest; /* FNV-1a of the given initial centers' bytes; 0 if none */
    /* Where the fit stopped. */
    int32_t run;               /* 0-based run to continue */
    int32_t initialized;       /* 0: run starts from its (deterministic) initialization;
                                  1: centers hold its state after n_iter iterations */
    int32_t n_iter;            /* iterations of run done (initialized only) */
    double *centers;           /* [k x d] centers for iteration n_iter + 1 */
    double *previous_centers;  /* [k x d] centers of iteration n_iter (n_iter > 0): one
                                  assignment to them gives the labels the next iteration
                                  compares with, so no per-row state is stored */
    kseg_iteration_stats *iterations; /* [n_iter] statistics of run so far */
    int64_t total_empty_repairs; /* over the runs finished before run */
    int32_t best_run;          /* best finished run, -1 if none */
    double best_inertia;
    int32_t best_n_iter;
    int32_t best_convergence;  /* kseg_convergence */
    double *best_centers;      /* [k x d] */
    kseg_iteration_stats *best_iterations; /* [best_n_iter] */
} kseg_kmeans_checkpoint;

/* An empty checkpoint with its arrays allocated (zeroed) for k, d and the given iteration
 * capacities; NULL when out of memory. */
KSEG_API kseg_kmeans_checkpoint *kseg_kmeans_checkpoint_alloc(size_t k, size_t d,
                                                              size_t iterations,
                                                              size_t best_iterations);
/* Frees the arrays and the struct; safe with NULL. */
KSEG_API void kseg_kmeans_checkpoint_free(kseg_kmeans_checkpoint *checkpoint);

/* Options; initialize with kseg_kmeans_options_defaults() and override fields. */
typedef struct kseg_kmeans_options {
    int64_t n_clusters;        /* k. Default 8. */
    kseg_init_method init;     /* Default KSEG_INIT_KMEANS_PLUSPLUS. */
    const double *init_centers;/* [k x d] row-major, used when init == KSEG_INIT_GIVEN. */
    int32_t n_init;            /* Initializations run; the lowest final inertia wins (ties: the
                                  earliest). 0 = auto: 1 for k-means++, k-means|| and given
                                  centers, 10 for random (scikit-learn's n_init="auto").
                                  Default 0. */
    int32_t max_iter;          /* Maximum Lloyd iterations per run (mini-batch: epochs).
                                  Default 300. */
    double tol;                /* Convergence when the total squared center shift is at most
                                  tol * mean over features of the (unweighted) variance. Default
                                  1e-4. Independently, a run stops when no label changes. */
    uint64_t seed;             /* Seed of the counter-based random streams. Default 0. */
    const double *sample_weight; /* [n] non-negative weights with a positive sum, or NULL for
                                    all ones; used in init, updates and inertia. Default NULL. */
    int32_t local_trials;      /* k-means++ candidates per center; 0 = 2 + floor(ln k). */
    int32_t n_threads;         /* OpenMP threads; 0 = the OpenMP default. Results do not depend
                                  on it. Default 0. */
    kseg_progress_fn progress; /* Optional progress callback. Default NULL. */
    void *progress_data;       /* Passed to progress. */
    const kseg_comm *comm;     /* Communicator for cross-row reductions; NULL = serial. */
    const char *kernel;        /* Assignment kernel by name ("reference", "avx2", "avx512",
                                  "avx512-rows", "avx512-expanded", "gemm"); NULL = chosen from
                                  the CPU and the shape (for HAMERLY, ELKAN and YINYANG among the
                                  direct-difference kernels only). Default NULL. Results are
                                  bitwise stable for a given kernel. */
    kseg_kmeans_algorithm algorithm; /* Default KSEG_ALGORITHM_LLOYD. Every exact algorithm gives
                                        the same result with the same kernel; they differ in
                                        speed and memory. Without a kernel name, Lloyd may choose
                                        an expanded-form kernel, which agrees to rounding.
                                        MINIBATCH is approximate. */
    double oversampling;       /* k-means||: expected candidates drawn per round (l); finite,
                                  >= 0; 0 = 2k. Default 0. */
    int32_t init_rounds;       /* k-means||: sampling rounds, >= 1. Default 5. */
    int64_t batch_size;        /* Mini-batch: rows per batch, >= 1 (capped at n). Default 1024,
                                  scikit-learn's. */
    int32_t max_no_improvement;/* Mini-batch: steps without a new minimum of the smoothed batch
                                  inertia before the run stops; 0 = never stop early. Default 10,
                                  scikit-learn's. */
    uint64_t bounds_memory_limit; /* Bytes the bound algorithms may take beyond Lloyd's
                                     workspace (kseg_kmeans_algorithm_memory): a requested one
                                     that needs more fails with KSEG_ETOOBIG, AUTO takes a
                                     cheaper one. 0 = no limit but kseg_memory_available().
                                     Default 0. */
    /* A flag a signal handler sets to stop the fit (NULL = none). It is read at every run start
       and iteration boundary (mini-batch: run start and epoch boundary) and combined over the
       ranks (maximum), so all ranks stop at the same boundary; every rank must pass a flag or
       none. The fit then returns KSEG_EINTERRUPTED with result->checkpoint set. A run that has
       converged still finishes its final assignment; a stop after the last run has no effect. */
    const volatile sig_atomic_t *stop_request;
    /* A checkpoint to continue from (NULL = a fresh fit). It must come from the same data and
       options (kseg_kmeans_checkpoint's identity fields): otherwise the fit fails with
       KSEG_EMISMATCH naming the first difference. The result is bitwise the uninterrupted fit's
       (centroids, labels, inertia, n_iter, best_init, convergence, the iterations' objective,
       shift, changed labels and repairs), on any rank and thread count; the bound algorithms'
       distance counts of the resumed run differ, since their bounds are rebuilt. */
    const kseg_kmeans_checkpoint *resume;
} kseg_kmeans_options;

KSEG_API void kseg_kmeans_options_defaults(kseg_kmeans_options *options);

/* Warning flags in kseg_kmeans_result.warnings: the fit succeeded but the caller should know. */
enum kseg_kmeans_warning {
    /* Fewer distinct rows than k: some centers coincide (duplicate centers are kept, labels go to
       the lowest-numbered of equal centers). */
    KSEG_WARN_FEWER_DISTINCT_ROWS = 1 << 0,
    /* max_iter was reached before convergence in the winning run. */
    KSEG_WARN_NOT_CONVERGED = 1 << 1,
    /* Some clusters have no rows: the repair found no row to move (every candidate lies on its
       center or is alone in its cluster); such clusters keep their last center. */
    KSEG_WARN_EMPTY_CLUSTERS = 1 << 2
};

typedef enum kseg_convergence {
    KSEG_CONVERGED_NONE = 0,   /* max_iter reached */
    KSEG_CONVERGED_STRICT = 1, /* no label changed */
    KSEG_CONVERGED_TOL = 2,    /* center shift below the tolerance */
    KSEG_CONVERGED_NO_IMPROVEMENT = 3 /* mini-batch: max_no_improvement steps without progress */
} kseg_convergence;

/* The result of a fit; caller-owned, kseg_kmeans_result_init before and _destroy after. */
typedef struct kseg_kmeans_result {
    size_t n_clusters;
    size_t n_features;
    size_t n_rows;                  /* local rows (the labels' length) */
    double *centroids;              /* [k x d] row-major, in the input's units */
    int32_t *labels;                /* [n] index of the nearest centroid (ties: lowest index) */
    double inertia;                 /* weighted sum of squared distances to the centroids */
    int32_t n_iter;                 /* Lloyd iterations (mini-batch: epochs, the last one
                                       possibly partial) of the winning run */
    int32_t best_init;              /* 0-based index of the winning run */
    int32_t n_init;                 /* initializations run (n_init = 0 resolved) */
    kseg_convergence convergence;   /* how the winning run stopped */
    double tolerance;               /* the absolute tolerance used (tol x mean variance) */
    kseg_iteration_stats *iterations; /* [n_iter] statistics of the winning run */
    int64_t total_empty_repairs;    /* over all runs */
    double *feature_mean;           /* [d] the unweighted data mean the kernels centered on */
    char kernel[32];                /* name of the assignment kernel used */
    char algorithm[16];             /* the algorithm run ("lloyd", "hamerly", "elkan",
                                       "yinyang" or "minibatch"; AUTO resolved) */
    uint64_t bounds_memory;         /* its extra memory in bytes (kseg_kmeans_algorithm_memory) */
    unsigned warnings;              /* KSEG_WARN_* flags */
    char warning_message[256];      /* a sentence describing the warnings, "" if none */
    double init_seconds;            /* wall time of the initializations, all runs together */
    kseg_kmeans_checkpoint *checkpoint; /* set only when the fit returned KSEG_EINTERRUPTED (then
                                           nothing else is); freed by _destroy */
} kseg_kmeans_result;

KSEG_API void kseg_kmeans_result_init(kseg_kmeans_result *result);
KSEG_API void kseg_kmeans_result_destroy(kseg_kmeans_result *result);

/* Note: the fit pins OpenBLAS to one thread while it runs (openblas_set_num_threads is
 * process-wide) and restores the previous setting; concurrent fits in one process share it. */

/* Clusters the rows of data. On success result holds centroids, labels and statistics; on failure
 * it is left empty and error says why. Validates everything up front: n, d, k (1 <= k <= n),
 * finite data (the first NaN/Inf is named by row and column), weights (finite, non-negative,
 * positive sum), options. With options->comm, data holds this rank's contiguous block of rows
 * and the result is identical on every rank count. */
KSEG_API int kseg_kmeans_fit(const kseg_matrix *data, const kseg_kmeans_options *options,
                    kseg_kmeans_result *result, kseg_error *error);

/* Assigns each row of data to its nearest of the k centroids [k x d] (ties: lowest index).
 * labels [n] is written; distances [n], if not NULL, receives the squared distances.
 * n_threads 0 = the OpenMP default. */
KSEG_API int kseg_kmeans_predict(const kseg_matrix *data, const double *centroids, size_t n_clusters,
                        int32_t n_threads, int32_t *labels, double *distances,
                        kseg_error *error);

/* As kseg_kmeans_predict, with the centering shift [d] and the kernel of the fit (the result's
 * feature_mean and kernel), which makes the labels of the training rows identical to the fit's
 * even for expanded-form kernels. shift NULL = the centroids' mean; kernel NULL = automatic. */
KSEG_API int kseg_kmeans_predict_with(const kseg_matrix *data, const double *centroids,
                                      size_t n_clusters, const double *shift, const char *kernel,
                                      int32_t n_threads, int32_t *labels, double *distances,
                                      kseg_error *error);

/* The algorithm kseg_kmeans_fit would run on data with options (AUTO and the kernel resolved)
 * and its extra memory in bytes, without fitting: for a caller that states the memory before
 * the fit starts. Fails as the fit would when a requested algorithm exceeds
 * options->bounds_memory_limit, or the kernel is unknown. */
KSEG_API int kseg_kmeans_plan(const kseg_matrix *data, const kseg_kmeans_options *options,
                              kseg_kmeans_algorithm *algorithm, uint64_t *bounds_memory,
                              kseg_error *error);

/* Weighted sum of squared distances of the rows to the centroids given by labels, computed in
 * double (an independent check of a result's inertia). weights may be NULL. */
KSEG_API int kseg_kmeans_inertia(const kseg_matrix *data, const double *centroids, size_t n_clusters,
                        const int32_t *labels, const double *sample_weight, double *inertia,
                        kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
