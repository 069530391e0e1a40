/* The k-means driver: validates inputs up front, runs n_init initializations of Lloyd's algorithm
 * with scikit-learn's convergence semantics, repairs empty clusters deterministically, and returns
 * centroids, labels and per-iteration statistics. Hot loops live in kernels/; every reduction over
 * rows goes through blocks.h, which makes results independent of threads and ranks. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"
#include "kseg/memory.h"
#include "reduce.h"

/* ------------------------------------------------------------------ options and results */

void kseg_kmeans_options_defaults(kseg_kmeans_options *options)
{
    memset(options, 0, sizeof *options);
    options->n_clusters = 8;
    options->init = KSEG_INIT_KMEANS_PLUSPLUS;
    options->n_init = 0;
    options->max_iter = 300;
    options->tol = 1e-4;
    options->seed = 0;
    options->algorithm = KSEG_ALGORITHM_LLOYD;
    options->init_rounds = 5;
    options->batch_size = 1024;
    options->max_no_improvement = 10;
}

int kseg_init_method_parse(const char *text, kseg_init_method *method)
{
    if (strcmp(text, "k-means++") == 0)
        *method = KSEG_INIT_KMEANS_PLUSPLUS;
    else if (strcmp(text, "random") == 0)
        *method = KSEG_INIT_RANDOM;
    else if (strcmp(text, "k-means||") == 0 || strcmp(text, "kmeans-parallel") == 0)
        *method = KSEG_INIT_KMEANS_PARALLEL;
    else
        return KSEG_EINVAL;
    return 0;
}

int kseg_kmeans_algorithm_parse(const char *text, kseg_kmeans_algorithm *algorithm)
{
    if (strcmp(text, "lloyd") == 0)
        *algorithm = KSEG_ALGORITHM_LLOYD;
    else if (strcmp(text, "hamerly") == 0)
        *algorithm = KSEG_ALGORITHM_HAMERLY;
    else if (strcmp(text, "auto") == 0)
        *algorithm = KSEG_ALGORITHM_AUTO;
    else if (strcmp(text, "minibatch") == 0)
        *algorithm = KSEG_ALGORITHM_MINIBATCH;
    else if (strcmp(text, "elkan") == 0)
        *algorithm = KSEG_ALGORITHM_ELKAN;
    else if (strcmp(text, "yinyang") == 0)
        *algorithm = KSEG_ALGORITHM_YINYANG;
    else
        return KSEG_EINVAL;
    return 0;
}

const char *kseg_kmeans_algorithm_name(kseg_kmeans_algorithm algorithm)
{
    switch (algorithm) {
    case KSEG_ALGORITHM_LLOYD:
        return "lloyd";
    case KSEG_ALGORITHM_HAMERLY:
        return "hamerly";
    case KSEG_ALGORITHM_AUTO:
        return "auto";
    case KSEG_ALGORITHM_MINIBATCH:
        return "minibatch";
    case KSEG_ALGORITHM_ELKAN:
        return "elkan";
    case KSEG_ALGORITHM_YINYANG:
        return "yinyang";
    }
    return "unknown";
}

const char *kseg_init_method_name(kseg_init_method method)
{
    switch (method) {
    case KSEG_INIT_KMEANS_PLUSPLUS:
        return "k-means++";
    case KSEG_INIT_RANDOM:
        return "random";
    case KSEG_INIT_GIVEN:
        return "given";
    case KSEG_INIT_KMEANS_PARALLEL:
        return "k-means||";
    }
    return "unknown";
}

void kseg_kmeans_result_init(kseg_kmeans_result *result)
{
    memset(result, 0, sizeof *result);
}

void kseg_kmeans_result_destroy(kseg_kmeans_result *result)
{
    free(result->centroids);
    free(result->labels);
    free(result->iterations);
    free(result->feature_mean);
    kseg_kmeans_checkpoint_free(result->checkpoint);
    memset(result, 0, sizeof *result);
}

/* ------------------------------------------------------------------ aligned buffers */

static void *aligned_buffer(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

/* ------------------------------------------------------------------ validation */

/* Finds the first non-finite value in global order; *found_index = row * d + column or -1. */
static int first_nonfinite(kmeans_context *context, int64_t *found_index, kseg_error *error)
{
    const kseg_blocks *blocks = &context->blocks;
    size_t d = context->d;
    double *local = malloc((blocks->n_blocks_local + 1) * sizeof *local);
    double *global = malloc((blocks->n_blocks_global + 1) * sizeof *global);
    int status = 0;
    if (!local || !global) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory checking the data");
        goto done;
    }
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        size_t begin = kseg_block_begin(blocks, b) * d;
        size_t end = begin + kseg_block_rows(blocks, b) * d;
        double found = -1.0;
        if (context->dtype == KSEG_FLOAT32) {
            const float *values = (const float *)(const void *)context->rows;
            for (size_t i = begin; i < end; i++)
                if (!isfinite(values[i])) {
                    found = (double)i;
                    break;
                }
        } else {
            const double *values = (const double *)(const void *)context->rows;
            for (size_t i = begin; i < end; i++)
                if (!isfinite(values[i])) {
                    found = (double)i;
                    break;
                }
        }
        /* Local element index -> global element index (exact in a double below 2^53). */
        local[b] = found < 0 ? -1.0 : found + (double)(blocks->comm->row_offset * d);
    }
    if ((status = kseg_gather_block_scalars(blocks, local, 1, global, error)))
        goto done;
    *found_index = -1;
    for (size_t b = 0; b < blocks->n_blocks_global; b++)
        if (global[b] >= 0) {
            *found_index = (int64_t)global[b];
            break;
        }
done:
    free(local);
    free(global);
    return status;
}

/* AUTO's preference for a shape and kernel, best first, Lloyd last (see kseg_kmeans_algorithm
 * and bench/RESULTS.md for the measurements behind it): with the scalar reference kernel and
 * d <= 32, Hamerly (it beat Elkan and Yinyang too, k = 8 to 128), then Yinyang, the cheaper of the
 * other two in memory, should Hamerly not fit; with the vectorized kernels Lloyd, which compares a
 * row with all centers faster than any bound algorithm's per-row bookkeeping (issue 5 bench).
 * Returns the number written. */
static size_t auto_preference(const kseg_assign_kernel *kernel, size_t n, size_t k, size_t d,
                              kseg_kmeans_algorithm *order)
{
    (void)n;
    (void)k;
    size_t count = 0;
    if (d <= 32 && strcmp(kernel->name, "reference") == 0) {
        order[count++] = KSEG_ALGORITHM_HAMERLY;
        order[count++] = KSEG_ALGORITHM_YINYANG;
    }
    order[count++] = KSEG_ALGORITHM_LLOYD;
    return count;
}

/* The algorithm that runs and its extra memory. Bounds reproduce a kernel's labels only if its
 * distances are the reference's (direct difference), so an expanded-form kernel (gemm,
 * avx512-expanded) named by the caller always runs Lloyd (without a name, the bound algorithms
 * get a direct kernel: choose_kernel). Mini-batch is a different (approximate) algorithm, not a
 * way to reproduce Lloyd, and needs no bounds. A requested bound algorithm whose memory exceeds
 * options->bounds_memory_limit is refused; AUTO takes the first of its preferences whose memory
 * fits in that limit and in half of what kseg_memory_available() reports (the rest is for the
 * data and Lloyd's workspace). n is this rank's rows: on several ranks the decision is
 * collective (every rank takes the first preference that fits on every rank, and a requested
 * algorithm that does not fit on one rank is refused on all), since ranks running different
 * algorithms would make different collective calls. AUTO's preference order is taken from the
 * global row count, so that it is the serial run's. */
static int plan_algorithm(const kseg_kmeans_options *options, const kseg_assign_kernel *kernel,
                          const kseg_comm *comm, size_t n, size_t k, size_t d,
                          kseg_kmeans_algorithm *algorithm, uint64_t *bytes, kseg_error *error)
{
    uint64_t limit = options->bounds_memory_limit ? options->bounds_memory_limit : UINT64_MAX;
    kseg_kmeans_algorithm chosen = options->algorithm;
    if (chosen == KSEG_ALGORITHM_MINIBATCH) {
        /* kept as requested */
    } else if (kernel->expanded_form) {
        chosen = KSEG_ALGORITHM_LLOYD;
    } else if (chosen == KSEG_ALGORITHM_AUTO) {
        kseg_kmeans_algorithm order[4];
        size_t count = auto_preference(kernel, comm->n_global, k, d, order);
        uint64_t available = kseg_memory_available();
        if (available / 2 < limit)
            limit = available / 2;
        /* too_big[i] != 0 when preference i does not fit on some rank (always 4 values, so that
           every rank makes the same call whatever its count). */
        int64_t too_big[4] = {0, 0, 0, 0};
        for (size_t i = 0; i < count && i < 4; i++)
            too_big[i] = kseg_kmeans_algorithm_memory(order[i], n, k, d) > limit;
        if (comm->size > 1 && comm->ops->allreduce_max_i64(comm, too_big, 4))
            return kseg_error_set(error, KSEG_EIO, "communicator failed choosing the algorithm");
        chosen = KSEG_ALGORITHM_LLOYD;
        for (size_t i = 0; i < count && i < 4; i++)
            if (!too_big[i]) {
                chosen = order[i];
                break;
            }
    } else if (chosen != KSEG_ALGORITHM_LLOYD) {
        int64_t too_big = kseg_kmeans_algorithm_memory(chosen, n, k, d) > limit;
        if (comm->size > 1 && comm->ops->allreduce_max_i64(comm, &too_big, 1))
            return kseg_error_set(error, KSEG_EIO, "communicator failed choosing the algorithm");
        if (!too_big)
            goto planned;
        char need[32], have[32];
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "the %s bounds need %s of extra memory (n = %zu rows, k = %zu) "
                              "but the bounds memory limit is %s (raise it, or choose a cheaper "
                              "algorithm: hamerly needs n doubles, yinyang n x k/10 floats)",
                              kseg_kmeans_algorithm_name(chosen),
                              kseg_memory_format(kseg_kmeans_algorithm_memory(chosen, n, k, d),
                                                 need, sizeof need),
                              n, k, kseg_memory_format(limit, have, sizeof have));
    }
planned:
    *algorithm = chosen;
    *bytes = kseg_kmeans_algorithm_memory(chosen, n, k, d);
    return 0;
}

/* The kernel of a fit: the one named, or the preferred one for the shape. Without a name, an
 * explicit request for a bound algorithm (Hamerly, Elkan, Yinyang) gets the preferred
 * direct-difference kernel, since the bounds need distances that are bitwise the reference's;
 * Lloyd, mini-batch and AUTO (which takes a bound algorithm only with the reference kernel) may
 * get an expanded-form kernel where one is fastest. */
static const kseg_assign_kernel *choose_kernel(kseg_dtype dtype, size_t k, size_t d,
                                               const kseg_kmeans_options *options)
{
    if (!options->kernel && (options->algorithm == KSEG_ALGORITHM_HAMERLY ||
                             options->algorithm == KSEG_ALGORITHM_ELKAN ||
                             options->algorithm == KSEG_ALGORITHM_YINYANG))
        return kseg_assign_kernel_select_direct(dtype, k, d);
    return kseg_assign_kernel_select(dtype, k, d, options->kernel);
}

/* Refuses, before anything is allocated, a fit whose workspace cannot fit in memory. The
 * estimate covers what grows with the input: the per-block partial sums (k * d + k + 2 doubles)
 * held on each thread's reduction stack, the center sets, the labels (twice with n_init > 1),
 * the per-iteration statistics, the assignment kernel's packed centers and per-thread scratch,
 * and the bounds of a bound-based algorithm (kseg_kmeans_algorithm_memory). The data itself is
 * already in memory and not counted. */
static int check_workspace(const kseg_matrix *data, const kseg_kmeans_options *options,
                           const kseg_comm *comm, kseg_kmeans_algorithm *algorithm,
                           uint64_t *bounds_memory, kseg_error *error)
{
    uint64_t k = (uint64_t)options->n_clusters, d = data->cols, n = data->rows;
    uint64_t threads = options->n_threads > 0 ? (uint64_t)options->n_threads
                                               : (uint64_t)omp_get_max_threads();
    uint64_t width = kseg_memory_add(kseg_memory_multiply(k, d), k + 4);
    uint64_t blocks = (comm->n_global + KSEG_BLOCK_ROWS - 1) / KSEG_BLOCK_ROWS;
    uint64_t stack = kseg_memory_multiply(threads, kseg_tree_stack_capacity(blocks) + 1);
    uint64_t doubles = kseg_memory_multiply(width, kseg_memory_add(stack, 2));
    doubles = kseg_memory_add(doubles, kseg_memory_multiply(2, kseg_memory_multiply(k, d)));
    uint64_t bytes = kseg_memory_multiply(doubles, sizeof(double));
    /* An unknown kernel name is reported by select_kernel; here it only leaves out its share. */
    const kseg_assign_kernel *kernel = choose_kernel(data->dtype, (size_t)k, (size_t)d, options);
    /* Every rank must run the same kernel: the labels, and the collective plan below, depend on
       it, and nodes with different CPU features could choose differently. The ranks compare a
       digest of its name (the smallest and largest agree) before anything depends on it. */
    if (comm->size > 1) {
        uint64_t digest = 14695981039346656037ull;
        for (const char *c = kernel ? kernel->name : ""; *c; c++)
            digest = (digest ^ (unsigned char)*c) * 1099511628211ull;
        int64_t extremes[2] = {(int64_t)(digest >> 1), -(int64_t)(digest >> 1)};
        if (comm->ops->allreduce_max_i64(comm, extremes, 2))
            return kseg_error_set(error, KSEG_EIO, "communicator failed comparing kernels");
        if (extremes[0] != -extremes[1])
            return kseg_error_set(error, KSEG_ENOTSUP,
                                  "the ranks chose different assignment kernels (this rank: %s): "
                                  "their CPUs differ; pass --kernel with one that every node "
                                  "supports ('reference' runs everywhere)",
                                  kernel ? kernel->name : "none");
    }
    if (kernel) {
        bytes = kseg_memory_add(bytes, kernel->packed_size((size_t)k, (size_t)d));
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(
            threads, kernel->scratch_size((size_t)k, (size_t)d)));
    }
    bytes = kseg_memory_add(bytes, kseg_memory_multiply(n, options->n_init > 1 ? 8 : 4));
    /* Only the algorithm that will run is charged: AUTO and the gemm kernel may mean Lloyd. */
    *algorithm = KSEG_ALGORITHM_LLOYD;
    *bounds_memory = 0;
    if (kernel) {
        int status = plan_algorithm(options, kernel, comm, (size_t)n, (size_t)k, (size_t)d,
                                    algorithm, bounds_memory, error);
        if (status)
            return status;
        bytes = kseg_memory_add(bytes, *bounds_memory);
    }
    bytes = kseg_memory_add(bytes, kseg_memory_multiply((uint64_t)options->max_iter,
                                                        2 * sizeof(kseg_iteration_stats)));
    /* k-means|| keeps a distance, a candidate index and a flag per row (k-means++ the distance
       only, within the same bound), and about init_rounds x oversampling candidates of d
       doubles with a weight each, reduced through a stack like the one above. */
    if (options->init == KSEG_INIT_KMEANS_PARALLEL) {
        double oversampling = options->oversampling > 0 ? options->oversampling : 2.0 * (double)k;
        double expected = oversampling * options->init_rounds + 1.0;
        uint64_t candidates = expected < 1e15 ? (uint64_t)expected : UINT64_MAX;
        if (candidates > comm->n_global)
            candidates = comm->n_global;
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(n, 13));
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(
            kseg_memory_multiply(candidates, kseg_memory_add(d, kseg_memory_add(stack, 2))),
            sizeof(double)));
    }
    /* Mini-batch (kmeans_minibatch.c): per batch row a copy in the element type, two records
       of d + 4 doubles, a distance, two positions, an order index and a label; the batch is
       capped at the global n, whatever this rank holds. */
    if (options->algorithm == KSEG_ALGORITHM_MINIBATCH) {
        uint64_t batch = (uint64_t)options->batch_size < comm->n_global
                             ? (uint64_t)options->batch_size : comm->n_global;
        uint64_t per_row = kseg_memory_add(
            kseg_memory_multiply(d, data->dtype == KSEG_FLOAT32 ? 4 : 8),
            kseg_memory_add(kseg_memory_multiply(2 * sizeof(double), d + 4),
                            sizeof(double) + 3 * sizeof(size_t) + sizeof(int32_t)));
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(batch, per_row));
    }
    char what[160];
    snprintf(what, sizeof what, "k-means with k = %llu on %llu rows x %llu features",
             (unsigned long long)k, (unsigned long long)comm->n_global, (unsigned long long)d);
    return kseg_memory_check(bytes, what, error);
}

/* Checks shapes and options before anything is allocated, so that a bad k is reported as such
 * rather than as a failed allocation sized from it. */
static int validate_options(const kseg_matrix *data, const kseg_kmeans_options *options,
                            const kseg_comm *comm, kseg_kmeans_algorithm *algorithm,
                            uint64_t *bounds_memory, kseg_error *error)
{
    if (!data->data)
        return kseg_error_set(error, KSEG_EINVAL, "no data given");
    if (data->dtype != KSEG_FLOAT32 && data->dtype != KSEG_FLOAT64)
        return kseg_error_set(error, KSEG_ETYPE, "data must be float32 or float64");
    if (data->cols == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "data has no columns (d = 0)");
    if (comm->n_global == 0)
        return kseg_error_set(error, KSEG_EEMPTY, "data has no rows (n = 0)");
    if (options->n_clusters < 1)
        return kseg_error_set(error, KSEG_EINVAL,
                              "number of clusters must be at least 1, got %lld",
                              (long long)options->n_clusters);
    if ((uint64_t)options->n_clusters > comm->n_global)
        return kseg_error_set(error, KSEG_EINVAL,
                              "number of clusters (%lld) exceeds the number of rows (%zu)",
                              (long long)options->n_clusters, comm->n_global);
    if (options->n_clusters > INT32_MAX)
        return kseg_error_set(error, KSEG_ETOOBIG, "number of clusters %lld exceeds 2^31 - 1",
                              (long long)options->n_clusters);
    if (options->max_iter < 1)
        return kseg_error_set(error, KSEG_EINVAL, "max_iter must be at least 1, got %d",
                              options->max_iter);
    if (!(options->tol >= 0) || !isfinite(options->tol))
        return kseg_error_set(error, KSEG_EINVAL, "tol must be finite and >= 0, got %g",
                              options->tol);
    if (options->n_init < 0)
        return kseg_error_set(error, KSEG_EINVAL, "n_init must be >= 0 (0 = auto), got %d",
                              options->n_init);
    if (options->local_trials < 0)
        return kseg_error_set(error, KSEG_EINVAL, "local_trials must be >= 0, got %d",
                              options->local_trials);
    if (options->algorithm < KSEG_ALGORITHM_LLOYD || options->algorithm > KSEG_ALGORITHM_MINIBATCH)
        return kseg_error_set(error, KSEG_EINVAL, "unknown k-means algorithm %d",
                              (int)options->algorithm);
    if (!(options->oversampling >= 0) || !isfinite(options->oversampling))
        return kseg_error_set(error, KSEG_EINVAL,
                              "oversampling must be finite and >= 0 (0 = 2k), got %g",
                              options->oversampling);
    if (options->init_rounds < 1)
        return kseg_error_set(error, KSEG_EINVAL, "init_rounds must be at least 1, got %d",
                              options->init_rounds);
    if (options->batch_size < 1)
        return kseg_error_set(error, KSEG_EINVAL, "batch_size must be at least 1, got %lld",
                              (long long)options->batch_size);
    if (options->max_no_improvement < 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "max_no_improvement must be >= 0 (0 = never stop early), got %d",
                              options->max_no_improvement);
    if (options->init == KSEG_INIT_GIVEN) {
        if (!options->init_centers)
            return kseg_error_set(error, KSEG_EINVAL, "init is 'given' but no centers were passed");
        size_t count = (size_t)options->n_clusters * data->cols;
        for (size_t i = 0; i < count; i++)
            if (!isfinite(options->init_centers[i]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "initial center %zu, column %zu: value is not finite",
                                      i / data->cols, i % data->cols);
    } else if (options->init != KSEG_INIT_KMEANS_PLUSPLUS && options->init != KSEG_INIT_RANDOM &&
               options->init != KSEG_INIT_KMEANS_PARALLEL) {
        return kseg_error_set(error, KSEG_EINVAL, "unknown init method %d", (int)options->init);
    }
    /* The per-block partial sums hold k * d + k + 2 doubles; refuse shapes whose buffers cannot
       even be sized (the allocation itself reports a plain lack of memory). */
    size_t k = (size_t)options->n_clusters;
    if (data->cols > (SIZE_MAX / sizeof(double) - 2) / (k + 1))
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "k = %zu clusters x d = %zu features is too large to allocate", k,
                              data->cols);
    return check_workspace(data, options, comm, algorithm, bounds_memory, error);
}

/* Checks the values: finite data (the first NaN/Inf named by row and column) and weights. */
static int validate_values(kmeans_context *context, const kseg_matrix *data,
                           const kseg_kmeans_options *options, kseg_error *error)
{
    int64_t bad;
    int status = first_nonfinite(context, &bad, error);
    if (status)
        return status;
    if (bad >= 0)
        return kseg_error_set(error, KSEG_ENONFINITE,
                              "row %lld, column %lld: value is NaN or infinite (expected a "
                              "finite number)",
                              (long long)(bad / (int64_t)data->cols),
                              (long long)(bad % (int64_t)data->cols));

    if (options->sample_weight) {
        /* Every rank checks its rows, then all agree on the count of positive weights and on the
           first bad row (the maximum of minus the global row index), so that all ranks fail
           together rather than one rank leaving the others in a collective call. */
        int64_t positive[1] = {0}, first_bad[1] = {INT64_MIN};
        double bad_weight = 0.0;
        for (size_t i = 0; i < context->n; i++) {
            double w = options->sample_weight[i];
            if (!isfinite(w) || w < 0) {
                first_bad[0] = -(int64_t)(context->blocks.comm->row_offset + i);
                bad_weight = w;
                break;
            }
            if (w > 0)
                positive[0]++;
        }
        const kseg_comm *comm = context->blocks.comm;
        if ((status = kseg_allreduce_i64(&context->blocks, positive, 1, error)))
            return status;
        if ((status = comm->ops->allreduce_max_i64(comm, first_bad, 1)))
            return kseg_error_set(error, status, "communicator failed while checking weights");
        if (first_bad[0] != INT64_MIN) {
            int64_t row = -first_bad[0];
            int64_t local = row - (int64_t)comm->row_offset;
            if (local >= 0 && (size_t)local < context->n)
                return kseg_error_set(error, KSEG_EINVAL,
                                      "sample weight of row %lld is %g (expected a finite "
                                      "number >= 0)",
                                      (long long)row, bad_weight);
            return kseg_error_set(error, KSEG_EINVAL,
                                  "sample weight of row %lld is negative or not finite (expected "
                                  "a finite number >= 0)",
                                  (long long)row);
        }
        if (positive[0] == 0)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "all sample weights are zero (expected a positive sum)");
    }
    return 0;
}

/* ------------------------------------------------------------------ statistics */

typedef struct moment_pass {
    kmeans_context *context;
    const double *mean; /* NULL: sum the values; else sum squared deviations from mean */
} moment_pass;

static void moment_block(void *opaque, size_t b, double *payload, int thread)
{
    (void)thread;
    const moment_pass *pass = opaque;
    const kmeans_context *context = pass->context;
    size_t d = context->d, begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    double *row = context->row_buffers[thread];
    for (size_t i = begin; i < begin + rows; i++) {
        kmeans_row_as_double(context, i, row);
        if (pass->mean)
            for (size_t j = 0; j < d; j++) {
                double diff = row[j] - pass->mean[j];
                payload[j] += diff * diff;
            }
        else
            for (size_t j = 0; j < d; j++)
                payload[j] += row[j];
    }
}

/* Unweighted mean and variance of every feature (as numpy's var, population form): the mean
 * centers the expanded-form kernels and the variance scales tol, as in scikit-learn. */
static int feature_moments(kmeans_context *context, kseg_error *error)
{
    size_t d = context->d;
    double n = (double)context->blocks.comm->n_global;
    double *variance = malloc(d * sizeof *variance);
    if (!variance)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    moment_pass pass = {context, NULL};
    int status = kseg_reduce_vector(&context->reducer, &context->blocks, d, moment_block, &pass,
                                    context->column_mean, error);
    if (!status) {
        for (size_t j = 0; j < d; j++)
            context->column_mean[j] /= n;
        pass.mean = context->column_mean;
        status = kseg_reduce_vector(&context->reducer, &context->blocks, d, moment_block, &pass,
                                    variance, error);
    }
    if (!status) {
        double sum = 0.0;
        for (size_t j = 0; j < d; j++)
            sum += variance[j] / n;
        context->mean_variance = sum / (double)d;
    }
    free(variance);
    return status;
}

/* ------------------------------------------------------------------ Lloyd passes */

/* Payload of the fused pass: sums [k x d], weights [k], inertia, changed labels. */
static size_t lloyd_width(const kmeans_context *context)
{
    return context->k * context->d + context->k + 2;
}

/* Payload of the bound-based pass: Lloyd's, then distances computed and skipped. Each payload
 * element is reduced by the same tree whatever the width, so the shared part has Lloyd's bits. */
static size_t bounds_width(const kmeans_context *context)
{
    return lloyd_width(context) + 2;
}

typedef struct lloyd_pass {
    kmeans_context *context;
    int32_t *labels;
} lloyd_pass;

static void lloyd_block(void *opaque, size_t b, double *payload, int thread)
{
    const lloyd_pass *pass = opaque;
    const kmeans_context *context = pass->context;
    size_t k = context->k, d = context->d;
    size_t begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    kseg_block_sums sums = {payload, payload + k * d, 0.0, 0};
    context->kernel->assign_accumulate(context->rows + begin * d * context->element_size, rows, d,
                                       context->weights ? context->weights + begin : NULL,
                                       context->packed, k, pass->labels + begin, &sums,
                                       context->scratch[thread]);
    payload[k * d + k] = sums.inertia;
    /* A count below 2^53 is exact in a double, and so is its tree sum. */
    payload[k * d + k + 1] = (double)sums.changed;
}

static void assign_block(void *opaque, size_t b, double *payload, int thread)
{
    const lloyd_pass *pass = opaque;
    const kmeans_context *context = pass->context;
    size_t d = context->d;
    size_t begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    double *distances = context->row_buffers[thread];
    context->kernel->assign(context->rows + begin * d * context->element_size, rows, d,
                            context->packed, context->k, pass->labels + begin, distances,
                            context->scratch[thread]);
    double inertia = 0.0;
    for (size_t i = 0; i < rows; i++)
        inertia += (context->weights ? context->weights[begin + i] : 1.0) * distances[i];
    payload[0] = inertia;
}

/* ------------------------------------------------------------------ empty clusters */

typedef struct far_row {
    double distance;
    uint64_t row;
} far_row;

static int far_before(const far_row *a, const far_row *b)
{
    return a->distance > b->distance || (a->distance == b->distance && a->row < b->row);
}

static int compare_far(const void *a, const void *b)
{
    const far_row *x = a, *y = b;
    return far_before(x, y) ? -1 : (far_before(y, x) ? 1 : 0);
}

/* Empty-cluster repair (documented in README): the empty clusters, in increasing index, are
 * re-seeded with the rows farthest from their assigned centers (ties: lower row), each row moving
 * its weighted contribution from its old cluster to the empty one; a row whose cluster would be
 * left empty, or that lies on its center, is skipped (clusters left empty keep their center and
 * are reported as a warning after the fit). Labels stay until the next assignment, as in
 * scikit-learn. Returns the number of repairs in *repairs. */
static int repair_empty_clusters(kmeans_context *context, const double *centers,
                                 const int32_t *labels, double *payload, int64_t *repairs,
                                 kseg_error *error)
{
    size_t k = context->k, d = context->d;
    double *sums = payload, *weights = payload + k * d;
    size_t empty = 0;
    for (size_t c = 0; c < k; c++)
        if (weights[c] == 0)
            empty++;
    *repairs = 0;
    if (empty == 0)
        return 0;

    const kseg_blocks *blocks = &context->blocks;
    const kseg_comm *comm = blocks->comm;
    size_t wanted = empty + 8; /* spares for rows that cannot move */
    size_t per_block = wanted;
    far_row *local = malloc((blocks->n_blocks_local * per_block + 1) * sizeof *local);
    size_t *local_counts = calloc(blocks->n_blocks_local + 1, sizeof *local_counts);
    far_row *gathered = malloc((blocks->n_blocks_global * per_block + 1) * sizeof *gathered);
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    double *row = malloc(d * sizeof *row);
    int status = 0;
    if (!local || !local_counts || !gathered || !lengths || !row) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory repairing empty clusters");
        goto done;
    }
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
        far_row *best = local + b * per_block;
        size_t count = 0;
        for (size_t i = begin; i < begin + rows; i++) {
            double weight = context->weights ? context->weights[i] : 1.0;
            if (weight <= 0)
                continue;
            far_row candidate = {kmeans_row_distance(context, i, centers + (size_t)labels[i] * d),
                                 comm->row_offset + i};
            /* A row on its own center would only duplicate that center: with fewer distinct rows
               than clusters, such clusters stay empty instead of cycling between copies. */
            if (candidate.distance == 0)
                continue;
            /* Insertion into a short sorted list: only `wanted` rows are kept. */
            if (count == per_block && !far_before(&candidate, &best[count - 1]))
                continue;
            size_t position = count < per_block ? count++ : count - 1;
            while (position > 0 && far_before(&candidate, &best[position - 1])) {
                best[position] = best[position - 1];
                position--;
            }
            best[position] = candidate;
        }
        local_counts[b] = count;
    }
    /* Compact the per-block lists and gather them from every rank. */
    size_t local_total = 0;
    for (size_t b = 0; b < blocks->n_blocks_local; b++)
        for (size_t i = 0; i < local_counts[b]; i++)
            local[local_total++] = local[b * per_block + i];
    status = comm->ops->allgatherv(comm, local, local_total * sizeof *local, gathered,
                                   (blocks->n_blocks_global * per_block + 1) * sizeof *gathered,
                                   lengths);
    if (status) {
        kseg_error_set(error, status, "communicator failed repairing empty clusters");
        goto done;
    }
    size_t total = 0;
    for (int r = 0; r < comm->size; r++)
        total += lengths[r] / sizeof *gathered;
    qsort(gathered, total, sizeof *gathered, compare_far);

    size_t next = 0;
    for (size_t c = 0; c < k; c++) {
        if (weights[c] != 0)
            continue;
        while (next < total) {
            far_row candidate = gathered[next++];
            /* Label and weight of the candidate live on its owning rank: share them. */
            double owned[2] = {0.0, 0.0}, shared[2]; /* label, weight */
            if (candidate.row >= comm->row_offset && candidate.row < comm->row_offset + context->n) {
                size_t i = (size_t)(candidate.row - comm->row_offset);
                owned[0] = labels[i];
                owned[1] = context->weights ? context->weights[i] : 1.0;
            }
            if ((status = kmeans_share_from_owner(context, candidate.row, owned, sizeof owned,
                                                  shared, error)))
                goto done;
            size_t old = (size_t)shared[0];
            double weight = shared[1];
            if (weights[old] - weight <= 0)
                continue; /* moving it would empty its own cluster */
            if ((status = kmeans_fetch_row(context, candidate.row, row, error)))
                goto done;
            for (size_t j = 0; j < d; j++) {
                sums[old * d + j] -= weight * row[j];
                sums[c * d + j] = weight * row[j];
            }
            weights[old] -= weight;
            weights[c] = weight;
            (*repairs)++;
            break;
        }
    }
done:
    free(local);
    free(local_counts);
    free(gathered);
    free(lengths);
    free(row);
    return status;
}

/* ------------------------------------------------------------------ one run */

typedef struct run_output {
    double inertia;
    int32_t n_iter;
    kseg_convergence convergence;
    int64_t empty_repairs;
    kseg_iteration_stats *iterations; /* [max_iter], filled for n_iter */
} run_output;

static int pack_centers(kmeans_context *context, const double *centers)
{
    context->kernel->pack(centers, context->k, context->d, context->column_mean, context->packed);
    return 0;
}

/* One assignment pass over all rows into payload: Lloyd's fused kernel pass, or with bounds the
 * bound-based pass, which gives the same labels, sums, inertia and change count. */
static int assignment_pass(kmeans_context *context, kmeans_bounds *bounds, const double *centers,
                           int32_t *labels, double *payload, kseg_error *error)
{
    int status;
    if (bounds) {
        kmeans_bounds_pass pass = {context, bounds, labels};
        kmeans_bounds_prepare(bounds, context, centers);
        status = kseg_reduce_vector(&context->reducer, &context->blocks, bounds_width(context),
                                    kmeans_bounds_block, &pass, payload, error);
        kmeans_bounds_finish(bounds);
        return status;
    }
    lloyd_pass pass = {context, labels};
    pack_centers(context, centers);
    status = kseg_reduce_vector(&context->reducer, &context->blocks, lloyd_width(context),
                                lloyd_block, &pass, payload, error);
    /* Lloyd compares every row with every center. */
    payload[lloyd_width(context)] = (double)context->blocks.comm->n_global * (double)context->k;
    payload[lloyd_width(context) + 1] = 0.0;
    return status;
}

/* Final assignment so that labels match the returned centers (and the inertia is theirs). The
 * bound-based pass gives the same labels and the same inertia bits as the kernel's. */
static int final_assignment(kmeans_context *context, kmeans_bounds *bounds,
                            const double *centers, int32_t *labels, double *payload,
                            run_output *output, kseg_error *error)
{
    size_t k = context->k, d = context->d;
    int status;
    if (bounds) {
        if ((status = assignment_pass(context, bounds, centers, labels, payload, error)))
            return status;
        output->inertia = payload[k * d + k];
        return 0;
    }
    lloyd_pass pass = {context, labels};
    pack_centers(context, centers);
    double inertia;
    if ((status = kseg_reduce_vector(&context->reducer, &context->blocks, 1, assign_block, &pass,
                                     &inertia, error)))
        return status;
    output->inertia = inertia;
    return 0;
}

/* Lloyd's iteration (bounds NULL) or a bound algorithm's (bounds set): the same updates,
 * convergence tests and statistics, only the assignment pass differs. The run starts at
 * iteration start (0, or a checkpoint's n_iter with output->iterations holding the earlier
 * statistics and previous_centers the centers of iteration start). A stop request seen at the
 * top of an iteration returns KSEG_EINTERRUPTED with output->n_iter the iterations done, centers
 * the centers of the next iteration and before_update those of the last one done: the state
 * that resumes exactly, since a checkpoint is only taken where the run goes on. */
static int run_lloyd(kmeans_context *context, kmeans_bounds *bounds, int32_t run, int32_t start,
                     const double *previous_centers, double *centers, double *before_update,
                     int32_t *labels, double *payload, run_output *output, kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    size_t k = context->k, d = context->d;
    double tolerance = options->tol * context->mean_variance;
    int status = 0;
    output->convergence = KSEG_CONVERGED_NONE;
    output->empty_repairs = 0;
    for (int32_t i = 0; i < start; i++)
        output->empty_repairs += output->iterations[i].empty_repairs;
    for (size_t i = 0; i < context->n; i++)
        labels[i] = -1;
    if (bounds)
        kmeans_bounds_reset(bounds);
    if (start > 0) {
        /* The labels iteration start compares with are those of the assignment to its centers:
           the empty-cluster repair changes only the sums, never the labels, so one pass
           recomputes them exactly. Through the bounds, the pass also rebuilds the bounds (from
           fresh, as at a run's start); they decide the same labels. */
        memcpy(before_update, previous_centers, k * d * sizeof *centers);
        if ((status = assignment_pass(context, bounds, previous_centers, labels, payload, error)))
            return status;
    }

    int32_t iteration;
    for (iteration = start; iteration < options->max_iter; iteration++) {
        int stop;
        if ((status = kmeans_stop_requested(context, &stop, error)))
            return status;
        if (stop) {
            output->n_iter = iteration;
            return kseg_error_set(error, KSEG_EINTERRUPTED,
                                  "interrupted at iteration %d of run %d", iteration, run + 1);
        }
        memcpy(before_update, centers, k * d * sizeof *centers);
        double started = omp_get_wtime();
        if ((status = assignment_pass(context, bounds, centers, labels, payload, error)))
            return status;
        double objective = payload[k * d + k];
        int64_t changed = (int64_t)payload[k * d + k + 1];
        int64_t computed = (int64_t)payload[k * d + k + 2];
        int64_t skipped = (int64_t)payload[k * d + k + 3];
        int64_t repairs = 0;
        if ((status = repair_empty_clusters(context, centers, labels, payload, &repairs, error)))
            return status;
        /* Update: centers become the weighted means; a cluster that stays empty keeps its
           center. The squared shift is summed over all centers. */
        double shift = 0.0;
        for (size_t c = 0; c < k; c++) {
            double weight = payload[k * d + c];
            if (weight <= 0)
                continue;
            for (size_t j = 0; j < d; j++) {
                double updated = payload[c * d + j] / weight;
                double move = updated - centers[c * d + j];
                shift += move * move;
                centers[c * d + j] = updated;
            }
        }
        kseg_iteration_stats *stats = &output->iterations[iteration];
        stats->iteration = iteration + 1;
        stats->objective = objective;
        stats->center_shift = shift;
        stats->changed_labels = changed;
        stats->empty_repairs = repairs;
        stats->seconds = omp_get_wtime() - started;
        stats->distances_computed = computed;
        stats->distances_skipped = skipped;
        output->empty_repairs += repairs;
        if (options->progress) {
            kseg_progress_event event = {run, context->n_init, stats, 0.0};
            if (options->progress(&event, options->progress_data))
                return kseg_error_set(error, KSEG_ECANCELED, "canceled at iteration %d of run %d",
                                      iteration + 1, run + 1);
        }
        if (changed == 0 && repairs == 0) {
            output->convergence = KSEG_CONVERGED_STRICT;
            break;
        }
        if (shift <= tolerance) {
            output->convergence = KSEG_CONVERGED_TOL;
            break;
        }
    }
    output->n_iter = iteration < options->max_iter ? iteration + 1 : options->max_iter;
    return final_assignment(context, bounds, centers, labels, payload, output, error);
}

/* Mini-batch steps, then the full assignment pass that gives every row its label and the run
 * its full-data inertia. */
static int run_minibatch(kmeans_context *context, int32_t run, double *centers, int32_t *labels,
                         double *payload, run_output *output, kseg_error *error)
{
    output->empty_repairs = 0;
    int status = kmeans_minibatch_steps(context, run, centers, output->iterations,
                                        &output->n_iter, &output->convergence, error);
    if (status)
        return status;
    return final_assignment(context, NULL, centers, labels, payload, output, error);
}

/* ------------------------------------------------------------------ fit */

static void context_destroy(kmeans_context *context)
{
    if (context->scratch)
        for (int t = 0; t < context->blocks.n_threads; t++)
            free(context->scratch[t]);
    if (context->row_buffers)
        for (int t = 0; t < context->blocks.n_threads; t++)
            free(context->row_buffers[t]);
    free(context->scratch);
    free(context->row_buffers);
    free(context->packed);
    free(context->column_mean);
    kseg_vector_reducer_destroy(&context->reducer);
}

static int context_init(kmeans_context *context, const kseg_matrix *data,
                        const kseg_kmeans_options *options, const kseg_comm *comm,
                        kseg_error *error)
{
    memset(context, 0, sizeof *context);
    context->options = options;
    context->rows = data->data;
    context->dtype = data->dtype;
    context->element_size = kseg_dtype_size(data->dtype);
    context->n = data->rows;
    context->d = data->cols;
    context->k = options->n_clusters > 0 ? (size_t)options->n_clusters : 1;
    context->weights = options->sample_weight;
    int status = kseg_blocks_init(&context->blocks, comm, data->rows, options->n_threads, error);
    if (status)
        return status;
    int n_threads = context->blocks.n_threads;
    size_t width = context->k * context->d + context->k + 4;
    if (width < context->d)
        width = context->d;
    if ((status = kseg_vector_reducer_init(&context->reducer, &context->blocks, width, error)))
        return status;
    context->scratch = calloc((size_t)n_threads, sizeof *context->scratch);
    context->row_buffers = calloc((size_t)n_threads, sizeof *context->row_buffers);
    context->column_mean = calloc(context->d, sizeof *context->column_mean);
    if (!context->scratch || !context->row_buffers || !context->column_mean)
        goto out_of_memory;
    size_t row_buffer = KSEG_BLOCK_ROWS > context->d ? KSEG_BLOCK_ROWS : context->d;
    for (int t = 0; t < n_threads; t++)
        if (!(context->row_buffers[t] = malloc(row_buffer * sizeof(double))))
            goto out_of_memory;
    return 0;
out_of_memory:
    return kseg_error_set(error, KSEG_ENOMEM, "out of memory setting up k-means");
}

static int select_kernel(kmeans_context *context, kseg_error *error)
{
    const char *name = context->options->kernel;
    context->kernel = choose_kernel(context->dtype, context->k, context->d, context->options);
    if (!context->kernel)
        return kseg_error_set(error, KSEG_ENOTSUP,
                              "kernel '%s' is unknown or not supported by this CPU for %s data",
                              name ? name : "(auto)",
                              context->dtype == KSEG_FLOAT32 ? "float32" : "float64");
    context->packed = aligned_buffer(context->kernel->packed_size(context->k, context->d));
    if (!context->packed)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for packed centers");
    size_t scratch = context->kernel->scratch_size(context->k, context->d);
    for (int t = 0; t < context->blocks.n_threads; t++)
        if (!(context->scratch[t] = aligned_buffer(scratch)))
            return kseg_error_set(error, KSEG_ENOMEM, "out of memory for kernel scratch");
    return 0;
}

/* Counts distinct centers (bitwise equal coordinates count as one). */
static int count_distinct_centers(const double *centers, size_t k, size_t d, size_t *distinct)
{
    /* A quadratic scan is fine for the k of segmentation (k^2 d comparisons only at the end);
       beyond that the warning is skipped rather than spending time on it. */
    if (k > 4096) {
        *distinct = k;
        return 0;
    }
    size_t count = 0;
    for (size_t a = 0; a < k; a++) {
        int duplicate = 0;
        for (size_t b = 0; b < a && !duplicate; b++)
            duplicate = memcmp(centers + a * d, centers + b * d, d * sizeof *centers) == 0;
        count += !duplicate;
    }
    *distinct = count;
    return 0;
}

/* The initial centers of run `run`. */
static int initialize(kmeans_context *context, int32_t run, double *centers, kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    switch (options->init) {
    case KSEG_INIT_GIVEN:
        memcpy(centers, options->init_centers, context->k * context->d * sizeof *centers);
        return 0;
    case KSEG_INIT_RANDOM:
        return kmeans_init_random(context, run, centers, error);
    case KSEG_INIT_KMEANS_PARALLEL:
        return kmeans_init_parallel(context, run, centers, error);
    case KSEG_INIT_KMEANS_PLUSPLUS:
        break;
    }
    return kmeans_init_plusplus(context, run, centers, error);
}

int kmeans_initial_centers(const kseg_matrix *data, const kseg_kmeans_options *options,
                           double *centers, kseg_error *error)
{
    kmeans_context context;
    kseg_comm serial;
    const kseg_comm *comm = options->comm;
    if (!comm) {
        kseg_comm_serial(&serial, data->rows);
        comm = &serial;
    }
    kseg_kmeans_algorithm algorithm;
    uint64_t bounds_memory;
    int status = validate_options(data, options, comm, &algorithm, &bounds_memory, error);
    if (status)
        return status;
    if ((status = context_init(&context, data, options, comm, error)) ||
        (status = validate_values(&context, data, options, error)) ||
        (status = select_kernel(&context, error)))
        goto done;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    if (!(status = feature_moments(&context, error)))
        status = initialize(&context, 0, centers, error);
    openblas_set_num_threads(blas_threads);
done:
    context_destroy(&context);
    return status;
}

/* Fills result->checkpoint with the fit's identity and the state at a stop: run `run`, either
 * before its initialization (initialized 0) or after n_iter iterations with centers for the
 * next one and previous those of the last one done. The best finished run so far is described
 * by result (n_iter, best_init, convergence, total_empty_repairs, as the fit keeps them during
 * the loop), best_centers and best_iterations. Returns KSEG_EINTERRUPTED, or the error that
 * prevented the checkpoint. */
static int take_checkpoint(kmeans_context *context, kseg_kmeans_algorithm algorithm, int32_t run,
                           int initialized, int32_t n_iter, const double *centers,
                           const double *previous, const kseg_iteration_stats *iterations,
                           int have_best, double best_inertia, const double *best_centers,
                           const kseg_iteration_stats *best_iterations,
                           kseg_kmeans_result *result, kseg_error *error)
{
    kseg_kmeans_checkpoint *checkpoint = NULL;
    kseg_error ignored;
    /* The identity pass must not overwrite the message of the stop with its own success. */
    int status = kmeans_checkpoint_identity(context, algorithm, &checkpoint, &ignored);
    if (status)
        return kseg_error_set(error, status, "interrupted, but the checkpoint failed: %s",
                              ignored.message);
    size_t values = context->k * context->d;
    checkpoint->run = run;
    checkpoint->initialized = initialized;
    checkpoint->n_iter = initialized ? n_iter : 0;
    if (initialized) {
        memcpy(checkpoint->centers, centers, values * sizeof *centers);
        if (n_iter > 0)
            memcpy(checkpoint->previous_centers, previous, values * sizeof *previous);
        memcpy(checkpoint->iterations, iterations, (size_t)n_iter * sizeof *iterations);
    }
    checkpoint->total_empty_repairs = result->total_empty_repairs;
    if (have_best) {
        checkpoint->best_run = result->best_init;
        checkpoint->best_inertia = best_inertia;
        checkpoint->best_n_iter = result->n_iter;
        checkpoint->best_convergence = (int32_t)result->convergence;
        memcpy(checkpoint->best_centers, best_centers, values * sizeof *best_centers);
        memcpy(checkpoint->best_iterations, best_iterations,
               (size_t)result->n_iter * sizeof *best_iterations);
    }
    result->checkpoint = checkpoint;
    if (!initialized)
        kseg_error_set(error, KSEG_EINTERRUPTED, "interrupted before run %d", run + 1);
    return KSEG_EINTERRUPTED;
}

int kseg_kmeans_fit(const kseg_matrix *data, const kseg_kmeans_options *options,
                    kseg_kmeans_result *result, kseg_error *error)
{
    kmeans_context context;
    kseg_comm serial;
    const kseg_comm *comm = options ? options->comm : NULL;
    if (!comm) {
        kseg_comm_serial(&serial, data ? data->rows : 0);
        comm = &serial;
    }
    kseg_kmeans_result_init(result);
    if (!data || !options)
        return kseg_error_set(error, KSEG_EINVAL, "no data or options given");

    double *centers = NULL, *best_centers = NULL, *payload = NULL, *before_update = NULL;
    kseg_kmeans_checkpoint *checkpoint = NULL;
    int32_t *labels = NULL, *best_labels = NULL;
    run_output output = {0};
    kmeans_bounds bounds, *use_bounds = NULL;
    memset(&bounds, 0, sizeof bounds);
    kseg_iteration_stats *best_iterations = NULL;
    kseg_kmeans_algorithm algorithm;
    uint64_t bounds_memory;
    int status = validate_options(data, options, comm, &algorithm, &bounds_memory, error);
    if (status) {
        memset(&context, 0, sizeof context);
        goto done;
    }
    if ((status = context_init(&context, data, options, comm, error)))
        goto done;
    if ((status = validate_values(&context, data, options, error)))
        goto done;
    if ((status = select_kernel(&context, error)))
        goto done;
    if (algorithm != KSEG_ALGORITHM_LLOYD && algorithm != KSEG_ALGORITHM_MINIBATCH) {
        if ((status = kmeans_bounds_init(&bounds, &context, algorithm, error)))
            goto done;
        use_bounds = &bounds;
    }

    size_t n = context.n, d = context.d, k = context.k;
    int32_t n_init = options->n_init > 0 ? options->n_init
                                         : (options->init == KSEG_INIT_RANDOM ? 10 : 1);
    if (options->init == KSEG_INIT_GIVEN)
        n_init = 1; /* the same centers would give the same run */
    context.n_init = n_init;
    centers = malloc(k * d * sizeof *centers);
    best_centers = malloc(k * d * sizeof *best_centers);
    payload = malloc(bounds_width(&context) * sizeof *payload);
    before_update = malloc(k * d * sizeof *before_update);
    labels = malloc((n ? n : 1) * sizeof *labels);
    best_labels = n_init > 1 ? malloc((n ? n : 1) * sizeof *best_labels) : NULL;
    output.iterations = calloc((size_t)options->max_iter, sizeof *output.iterations);
    best_iterations = calloc((size_t)options->max_iter, sizeof *best_iterations);
    if (!centers || !best_centers || !payload || !before_update || !labels || (n_init > 1 && !best_labels) ||
        !output.iterations || !best_iterations) {
        status = kseg_error_set(error, KSEG_ENOMEM,
                                "out of memory for k-means buffers (n = %zu, k = %zu, d = %zu)", n,
                                k, d);
        goto done;
    }

    /* OpenBLAS must not start its own threads inside our OpenMP regions. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);

    if ((status = feature_moments(&context, error)))
        goto restore_blas;
    result->tolerance = options->tol * context.mean_variance;

    const kseg_kmeans_checkpoint *resume = options->resume;
    double best_inertia = INFINITY, init_seconds = 0.0;
    int have_best = 0;
    int32_t first_run = 0;
    if (resume) {
        if ((status = kmeans_checkpoint_verify(&context, algorithm, resume, error)))
            goto restore_blas;
        first_run = resume->run;
        result->total_empty_repairs = resume->total_empty_repairs;
        if (resume->best_run >= 0) {
            have_best = 1;
            best_inertia = resume->best_inertia;
            memcpy(best_centers, resume->best_centers, k * d * sizeof *best_centers);
            memcpy(best_iterations, resume->best_iterations,
                   (size_t)resume->best_n_iter * sizeof *best_iterations);
            result->n_iter = resume->best_n_iter;
            result->best_init = resume->best_run;
            result->convergence = (kseg_convergence)resume->best_convergence;
            /* The best run's labels were its final assignment to its centers, which one pass
               of the kernel recomputes bitwise (the bound pass gives the same labels). */
            run_output recomputed = {0};
            if (best_labels &&
                (status = final_assignment(&context, NULL, best_centers, best_labels, payload,
                                           &recomputed, error)))
                goto restore_blas;
        }
    }
    for (int32_t run = first_run; run < n_init; run++) {
        int continuing = resume && run == first_run && resume->initialized;
        int32_t start = 0;
        if (continuing) {
            memcpy(centers, resume->centers, k * d * sizeof *centers);
            start = resume->n_iter;
            memcpy(output.iterations, resume->iterations, (size_t)start * sizeof *resume->iterations);
        } else {
            int stop;
            if ((status = kmeans_stop_requested(&context, &stop, error)))
                goto restore_blas;
            if (stop) {
                status = take_checkpoint(&context, algorithm, run, 0, 0, NULL, NULL, NULL,
                                         have_best, best_inertia, best_centers, best_iterations,
                                         result, error);
                goto restore_blas;
            }
            double init_started = omp_get_wtime();
            status = initialize(&context, run, centers, error);
            init_seconds += omp_get_wtime() - init_started;
            if (status)
                goto restore_blas;
        }
        if (algorithm == KSEG_ALGORITHM_MINIBATCH)
            status = run_minibatch(&context, run, centers, labels, payload, &output, error);
        else
            status = run_lloyd(&context, use_bounds, run, start,
                               continuing ? resume->previous_centers : NULL, centers,
                               before_update, labels, payload, &output, error);
        if (status == KSEG_EINTERRUPTED)
            /* Mini-batch stops at run granularity: its run restarts from its initialization. */
            status = take_checkpoint(&context, algorithm, run,
                                     algorithm != KSEG_ALGORITHM_MINIBATCH, output.n_iter,
                                     centers, before_update, output.iterations, have_best,
                                     best_inertia, best_centers, best_iterations, result, error);
        if (status)
            goto restore_blas;
        result->total_empty_repairs += output.empty_repairs;
        if (options->progress) {
            kseg_progress_event event = {run, n_init, NULL, output.inertia};
            if (options->progress(&event, options->progress_data)) {
                status = kseg_error_set(error, KSEG_ECANCELED, "canceled after run %d", run + 1);
                goto restore_blas;
            }
        }
        if (!isfinite(output.inertia)) {
            /* Finite data can still overflow: squared distances of values beyond ~1e154 (float64)
               or ~1e19 (float32) are infinite, and no center can be trusted then. */
            status = kseg_error_set(error, KSEG_ENONFINITE,
                                    "the inertia of run %d is not finite: the data's values are "
                                    "too large for squared distances (rescale the features)",
                                    run + 1);
            goto restore_blas;
        }
        if (!have_best || output.inertia < best_inertia) { /* ties keep the earlier run */
            have_best = 1;
            best_inertia = output.inertia;
            memcpy(best_centers, centers, k * d * sizeof *centers);
            memcpy(best_iterations, output.iterations,
                   (size_t)output.n_iter * sizeof *best_iterations);
            result->n_iter = output.n_iter;
            result->best_init = run;
            result->convergence = output.convergence;
            if (best_labels) {
                int32_t *swap = best_labels;
                best_labels = labels;
                labels = swap;
            }
        }
    }

    result->n_clusters = k;
    result->n_init = n_init;
    result->n_features = d;
    result->n_rows = n;
    result->centroids = best_centers;
    best_centers = NULL;
    result->labels = best_labels ? best_labels : labels;
    if (best_labels)
        best_labels = NULL;
    else
        labels = NULL;
    result->inertia = best_inertia;
    result->init_seconds = init_seconds;
    result->iterations = best_iterations;
    best_iterations = NULL;
    result->feature_mean = malloc(d * sizeof *result->feature_mean);
    if (!result->feature_mean) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto restore_blas;
    }
    memcpy(result->feature_mean, context.column_mean, d * sizeof *result->feature_mean);
    snprintf(result->kernel, sizeof result->kernel, "%s", context.kernel->name);
    snprintf(result->algorithm, sizeof result->algorithm, "%s",
             kseg_kmeans_algorithm_name(algorithm));
    result->bounds_memory = bounds_memory;

    size_t distinct;
    count_distinct_centers(result->centroids, k, d, &distinct);
    size_t used = 0;
    size_t empty_clusters = 0;
    {
        int64_t *members = calloc(k, sizeof *members);
        if (!members) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory counting cluster sizes");
            goto restore_blas;
        }
        for (size_t i = 0; i < n; i++)
            members[result->labels[i]]++;
        if ((status = kseg_allreduce_i64(&context.blocks, members, k, error))) {
            free(members);
            goto restore_blas;
        }
        for (size_t c = 0; c < k; c++)
            empty_clusters += members[c] == 0;
        free(members);
    }
    if (empty_clusters > 0) {
        result->warnings |= KSEG_WARN_EMPTY_CLUSTERS;
        used = (size_t)snprintf(result->warning_message, sizeof result->warning_message,
                                "%zu of %zu clusters have no rows. ", empty_clusters, k);
    }
    if (distinct < k && used < sizeof result->warning_message) {
        result->warnings |= KSEG_WARN_FEWER_DISTINCT_ROWS;
        used += (size_t)snprintf(result->warning_message + used,
                                 sizeof result->warning_message - used,
                                 "only %zu distinct centers for k = %zu: the data has fewer "
                                 "distinct rows than clusters. ",
                                 distinct, k);
    }
    /* Mini-batch without early stopping runs the max_iter epochs it was asked for. */
    if (result->convergence == KSEG_CONVERGED_NONE &&
        !(algorithm == KSEG_ALGORITHM_MINIBATCH && options->max_no_improvement == 0)) {
        result->warnings |= KSEG_WARN_NOT_CONVERGED;
        if (used < sizeof result->warning_message)
            snprintf(result->warning_message + used, sizeof result->warning_message - used,
                     "max_iter (%d) reached before convergence.", options->max_iter);
    }

restore_blas:
    openblas_set_num_threads(blas_threads);
done:
    /* An interrupted fit returns its checkpoint and nothing else. */
    checkpoint = result->checkpoint;
    result->checkpoint = NULL;
    if (status)
        kseg_kmeans_result_destroy(result);
    if (status == KSEG_EINTERRUPTED)
        result->checkpoint = checkpoint;
    else
        kseg_kmeans_checkpoint_free(checkpoint);
    free(before_update);
    free(centers);
    free(best_centers);
    free(payload);
    free(labels);
    free(best_labels);
    free(output.iterations);
    free(best_iterations);
    kmeans_bounds_destroy(&bounds);
    context_destroy(&context);
    return status;
}

int kseg_kmeans_plan(const kseg_matrix *data, const kseg_kmeans_options *options,
                     kseg_kmeans_algorithm *algorithm, uint64_t *bounds_memory,
                     kseg_error *error)
{
    kseg_comm serial;
    const kseg_comm *comm = options ? options->comm : NULL;
    if (!data || !options || !algorithm || !bounds_memory)
        return kseg_error_set(error, KSEG_EINVAL, "no data, options or output given");
    if (!comm) {
        kseg_comm_serial(&serial, data->rows);
        comm = &serial;
    }
    int status = validate_options(data, options, comm, algorithm, bounds_memory, error);
    if (status)
        return status;
    if (!choose_kernel(data->dtype, (size_t)options->n_clusters, data->cols, options))
        return kseg_error_set(error, KSEG_ENOTSUP,
                              "kernel '%s' is unknown or not supported by this CPU for %s data",
                              options->kernel ? options->kernel : "(auto)",
                              data->dtype == KSEG_FLOAT32 ? "float32" : "float64");
    return 0;
}

/* ------------------------------------------------------------------ predict and inertia */

int kseg_kmeans_predict(const kseg_matrix *data, const double *centroids, size_t n_clusters,
                        int32_t n_threads, int32_t *labels, double *distances, kseg_error *error)
{
    return kseg_kmeans_predict_with(data, centroids, n_clusters, NULL, NULL, n_threads, labels,
                                    distances, error);
}

int kseg_kmeans_predict_with(const kseg_matrix *data, const double *centroids,
                             size_t n_clusters, const double *given_shift,
                             const char *kernel_name, int32_t n_threads, int32_t *labels,
                             double *distances, kseg_error *error)
{
    if (!data || !data->data || !centroids || !labels)
        return kseg_error_set(error, KSEG_EINVAL, "predict needs data, centroids and labels");
    if (n_clusters < 1 || data->cols == 0)
        return kseg_error_set(error, KSEG_EINVAL, "predict needs k >= 1 and d >= 1");
    size_t d = data->cols, n = data->rows, k = n_clusters;
    const kseg_assign_kernel *kernel = kseg_assign_kernel_select(data->dtype, k, d, kernel_name);
    if (!kernel)
        return kseg_error_set(error, KSEG_ENOTSUP,
                              "kernel '%s' is unknown or not supported by this CPU for this data",
                              kernel_name ? kernel_name : "(auto)");
    int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    size_t element_size = kseg_dtype_size(data->dtype);
    void *packed = aligned_buffer(kernel->packed_size(k, d));
    double *shift = calloc(d, sizeof *shift);
    void **scratch = calloc((size_t)threads, sizeof *scratch);
    int status = 0;
    if (!packed || !shift || !scratch)
        goto out_of_memory;
    for (int t = 0; t < threads; t++)
        if (!(scratch[t] = aligned_buffer(kernel->scratch_size(k, d))))
            goto out_of_memory;
    /* Centering keeps the expanded-form kernels accurate: on the fit's data mean when given (so
       training rows get the fit's labels bitwise), else on the centroids' mean. */
    if (given_shift)
        memcpy(shift, given_shift, d * sizeof *shift);
    else
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < d; j++)
                shift[j] += centroids[c * d + j] / (double)k;
    kernel->pack(centroids, k, d, shift, packed);
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    size_t n_blocks = (n + KSEG_BLOCK_ROWS - 1) / KSEG_BLOCK_ROWS;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t b = 0; b < n_blocks; b++) {
        size_t begin = b * KSEG_BLOCK_ROWS;
        size_t rows = begin + KSEG_BLOCK_ROWS > n ? n - begin : KSEG_BLOCK_ROWS;
        kernel->assign((const unsigned char *)data->data + begin * d * element_size, rows, d,
                       packed, k, labels + begin, distances ? distances + begin : NULL,
                       scratch[omp_get_thread_num()]);
    }
    openblas_set_num_threads(blas_threads);
    goto done;
out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory in predict");
done:
    if (scratch)
        for (int t = 0; t < threads; t++)
            free(scratch[t]);
    free(scratch);
    free(packed);
    free(shift);
    return status;
}

int kseg_kmeans_inertia(const kseg_matrix *data, const double *centroids, size_t n_clusters,
                        const int32_t *labels, const double *sample_weight, double *inertia,
                        kseg_error *error)
{
    if (!data || !data->data || !centroids || !labels || !inertia)
        return kseg_error_set(error, KSEG_EINVAL, "inertia needs data, centroids and labels");
    size_t d = data->cols;
    double total = 0.0;
    for (size_t i = 0; i < data->rows; i++) {
        if (labels[i] < 0 || (size_t)labels[i] >= n_clusters)
            return kseg_error_set(error, KSEG_EINVAL, "label %d of row %zu is outside [0, %zu)",
                                  labels[i], i, n_clusters);
        double sum = 0.0;
        for (size_t j = 0; j < d; j++) {
            double diff = kseg_matrix_get(data, i, j) - centroids[(size_t)labels[i] * d + j];
            sum += diff * diff;
        }
        total += (sample_weight ? sample_weight[i] : 1.0) * sum;
    }
    *inertia = total;
    return 0;
}
