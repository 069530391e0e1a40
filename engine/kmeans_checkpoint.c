/* Checkpoints of an interrupted k-means fit: the collective stop test, the identity of the data
 * and options a checkpoint records, and the check that refuses a checkpoint from another fit.
 * The fit itself (kmeans.c) fills and restores the progress fields. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"

kseg_kmeans_checkpoint *kseg_kmeans_checkpoint_alloc(size_t k, size_t d, size_t iterations,
                                                     size_t best_iterations)
{
    kseg_kmeans_checkpoint *checkpoint = calloc(1, sizeof *checkpoint);
    if (!checkpoint)
        return NULL;
    size_t centers = k * d > 0 ? k * d : 1;
    checkpoint->feature_mean = calloc(d ? d : 1, sizeof(double));
    checkpoint->centers = calloc(centers, sizeof(double));
    checkpoint->previous_centers = calloc(centers, sizeof(double));
    checkpoint->best_centers = calloc(centers, sizeof(double));
    checkpoint->iterations = calloc(iterations ? iterations : 1, sizeof(kseg_iteration_stats));
    checkpoint->best_iterations =
        calloc(best_iterations ? best_iterations : 1, sizeof(kseg_iteration_stats));
    checkpoint->best_run = -1;
    if (!checkpoint->feature_mean || !checkpoint->centers || !checkpoint->previous_centers ||
        !checkpoint->best_centers || !checkpoint->iterations || !checkpoint->best_iterations) {
        kseg_kmeans_checkpoint_free(checkpoint);
        return NULL;
    }
    return checkpoint;
}

void kseg_kmeans_checkpoint_free(kseg_kmeans_checkpoint *checkpoint)
{
    if (!checkpoint)
        return;
    free(checkpoint->feature_mean);
    free(checkpoint->centers);
    free(checkpoint->previous_centers);
    free(checkpoint->best_centers);
    free(checkpoint->iterations);
    free(checkpoint->best_iterations);
    free(checkpoint);
}

int kmeans_stop_requested(kmeans_context *context, int *stop, kseg_error *error)
{
    const volatile sig_atomic_t *flag = context->options->stop_request;
    *stop = 0;
    if (!flag)
        return 0;
    /* The maximum over the ranks: a signal that reached one rank stops them all at this same
       boundary, which keeps the collective calls that follow matched. */
    int64_t value = *flag ? 1 : 0;
    const kseg_comm *comm = context->blocks.comm;
    if (comm->ops->allreduce_max_i64(comm, &value, 1))
        return kseg_error_set(error, KSEG_EINTERNAL,
                              "communicator failed agreeing on a stop request");
    *stop = value != 0;
    return 0;
}

/* FNV-1a over the bytes of the given initial centers: a mismatch detector, not a hash for
 * adversaries. */
static uint64_t digest_doubles(const double *values, size_t count)
{
    uint64_t hash = 14695981039346656037ull;
    const unsigned char *bytes = (const unsigned char *)values;
    for (size_t i = 0; i < count * sizeof *values; i++) {
        hash ^= bytes[i];
        hash *= 1099511628211ull;
    }
    return hash;
}

static void weight_block(void *opaque, size_t b, double *payload, int thread)
{
    (void)thread;
    const kmeans_context *context = opaque;
    size_t begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    for (size_t i = begin; i < begin + rows; i++)
        payload[0] += context->weights[i];
}

int kmeans_checkpoint_identity(kmeans_context *context, kseg_kmeans_algorithm algorithm,
                               kseg_kmeans_checkpoint **out, kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    size_t k = context->k, d = context->d, capacity = (size_t)options->max_iter;
    kseg_kmeans_checkpoint *checkpoint = kseg_kmeans_checkpoint_alloc(k, d, capacity, capacity);
    if (!checkpoint)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for a checkpoint (k = %zu, "
                              "d = %zu)", k, d);
    checkpoint->n_rows = context->blocks.comm->n_global;
    checkpoint->n_features = d;
    checkpoint->dtype = (int32_t)context->dtype;
    checkpoint->weighted = options->sample_weight != NULL;
    if (options->sample_weight) {
        /* The block tree makes the sum independent of the rank and thread counts. */
        int status = kseg_reduce_vector(&context->reducer, &context->blocks, 1, weight_block,
                                        context, &checkpoint->weight_sum, error);
        if (status) {
            kseg_kmeans_checkpoint_free(checkpoint);
            return status;
        }
    }
    memcpy(checkpoint->feature_mean, context->column_mean, d * sizeof(double));
    checkpoint->mean_variance = context->mean_variance;
    checkpoint->n_clusters = (int64_t)k;
    checkpoint->init = (int32_t)options->init;
    checkpoint->n_init = context->n_init;
    checkpoint->max_iter = options->max_iter;
    checkpoint->tol = options->tol;
    checkpoint->seed = options->seed;
    checkpoint->algorithm_requested = (int32_t)options->algorithm;
    snprintf(checkpoint->algorithm, sizeof checkpoint->algorithm, "%s",
             kseg_kmeans_algorithm_name(algorithm));
    snprintf(checkpoint->kernel, sizeof checkpoint->kernel, "%s", context->kernel->name);
    checkpoint->local_trials = options->local_trials;
    checkpoint->oversampling = options->oversampling;
    checkpoint->init_rounds = options->init_rounds;
    checkpoint->batch_size = options->batch_size;
    checkpoint->max_no_improvement = options->max_no_improvement;
    checkpoint->init_centers_digest =
        options->init == KSEG_INIT_GIVEN ? digest_doubles(options->init_centers, k * d) : 0;
    *out = checkpoint;
    return 0;
}

static const char *dtype_name(int32_t dtype)
{
    return dtype == KSEG_FLOAT32 ? "float32" : (dtype == KSEG_FLOAT64 ? "float64" : "unknown");
}

/* The first differing identity item, as "the checkpoint was taken with X; this run has Y". */
static int compare_identity(const kseg_kmeans_checkpoint *had, const kseg_kmeans_checkpoint *now,
                            kseg_error *error)
{
#define MISMATCH(...) kseg_error_set(error, KSEG_EMISMATCH, __VA_ARGS__)
    if (had->n_rows != now->n_rows)
        return MISMATCH("the checkpoint was taken on other data: %llu rows; this input has "
                        "%llu", (unsigned long long)had->n_rows,
                        (unsigned long long)now->n_rows);
    if (had->n_features != now->n_features)
        return MISMATCH("the checkpoint was taken on other data: %llu features; this input has "
                        "%llu", (unsigned long long)had->n_features,
                        (unsigned long long)now->n_features);
    if (had->dtype != now->dtype)
        return MISMATCH("the checkpoint was taken on %s data; this input is read as %s",
                        dtype_name(had->dtype), dtype_name(now->dtype));
    if (had->weighted != now->weighted)
        return MISMATCH("the checkpoint was taken %s sample weights; this run has %s",
                        had->weighted ? "with" : "without", now->weighted ? "some" : "none");
    for (uint64_t j = 0; j < now->n_features; j++)
        if (memcmp(&had->feature_mean[j], &now->feature_mean[j], sizeof(double)) != 0)
            return MISMATCH("the checkpoint was taken on other data: feature %llu's mean "
                            "differs (%.17g in the checkpoint, %.17g in this input)",
                            (unsigned long long)j, had->feature_mean[j], now->feature_mean[j]);
    if (memcmp(&had->mean_variance, &now->mean_variance, sizeof(double)) != 0)
        return MISMATCH("the checkpoint was taken on other data: the mean feature variance "
                        "differs (%.17g in the checkpoint, %.17g in this input)",
                        had->mean_variance, now->mean_variance);
    if (memcmp(&had->weight_sum, &now->weight_sum, sizeof(double)) != 0)
        return MISMATCH("the checkpoint was taken with other sample weights: their sum was "
                        "%.17g; this run's is %.17g", had->weight_sum, now->weight_sum);
    if (had->n_clusters != now->n_clusters)
        return MISMATCH("the checkpoint was taken with k = %lld; this run has k = %lld",
                        (long long)had->n_clusters, (long long)now->n_clusters);
    if (had->init != now->init)
        return MISMATCH("the checkpoint was taken with init = %s; this run has init = %s",
                        kseg_init_method_name((kseg_init_method)had->init),
                        kseg_init_method_name((kseg_init_method)now->init));
    if (had->init_centers_digest != now->init_centers_digest)
        return MISMATCH("the checkpoint was taken with other initial centers (digest %016llx; "
                        "this run's is %016llx)", (unsigned long long)had->init_centers_digest,
                        (unsigned long long)now->init_centers_digest);
    if (had->n_init != now->n_init)
        return MISMATCH("the checkpoint was taken with n_init = %d; this run has n_init = %d",
                        had->n_init, now->n_init);
    if (had->max_iter != now->max_iter)
        return MISMATCH("the checkpoint was taken with max_iter = %d; this run has "
                        "max_iter = %d", had->max_iter, now->max_iter);
    if (memcmp(&had->tol, &now->tol, sizeof(double)) != 0)
        return MISMATCH("the checkpoint was taken with tol = %.17g; this run has tol = %.17g",
                        had->tol, now->tol);
    if (had->seed != now->seed)
        return MISMATCH("the checkpoint was taken with seed = %llu; this run has seed = %llu",
                        (unsigned long long)had->seed, (unsigned long long)now->seed);
    if (had->algorithm_requested != now->algorithm_requested)
        return MISMATCH("the checkpoint was taken with algorithm = %s; this run has "
                        "algorithm = %s",
                        kseg_kmeans_algorithm_name((kseg_kmeans_algorithm)had->algorithm_requested),
                        kseg_kmeans_algorithm_name((kseg_kmeans_algorithm)now->algorithm_requested));
    if (strcmp(had->algorithm, now->algorithm) != 0)
        return MISMATCH("the checkpoint was taken running the %s algorithm; this run would run "
                        "%s", had->algorithm, now->algorithm);
    if (strcmp(had->kernel, now->kernel) != 0)
        return MISMATCH("the checkpoint was taken with kernel %s; this run has kernel %s (name "
                        "it with --kernel)", had->kernel, now->kernel);
    if (had->local_trials != now->local_trials)
        return MISMATCH("the checkpoint was taken with local_trials = %d; this run has "
                        "local_trials = %d", had->local_trials, now->local_trials);
    if (memcmp(&had->oversampling, &now->oversampling, sizeof(double)) != 0)
        return MISMATCH("the checkpoint was taken with oversampling = %.17g; this run has "
                        "oversampling = %.17g", had->oversampling, now->oversampling);
    if (had->init_rounds != now->init_rounds)
        return MISMATCH("the checkpoint was taken with init_rounds = %d; this run has "
                        "init_rounds = %d", had->init_rounds, now->init_rounds);
    if (had->batch_size != now->batch_size)
        return MISMATCH("the checkpoint was taken with batch_size = %lld; this run has "
                        "batch_size = %lld", (long long)had->batch_size,
                        (long long)now->batch_size);
    if (had->max_no_improvement != now->max_no_improvement)
        return MISMATCH("the checkpoint was taken with max_no_improvement = %d; this run has "
                        "max_no_improvement = %d", had->max_no_improvement,
                        now->max_no_improvement);
#undef MISMATCH
    return 0;
}

/* The progress fields must describe a state this fit can reach: a file edited by hand or cut
 * short is refused here instead of indexing out of bounds later. */
static int check_progress(const kseg_kmeans_checkpoint *checkpoint, kseg_error *error)
{
    const char *problem = NULL;
    if (checkpoint->run < 0 || checkpoint->run >= checkpoint->n_init)
        problem = "its run index is outside [0, n_init)";
    else if (checkpoint->initialized != 0 && checkpoint->initialized != 1)
        problem = "its initialized flag is neither 0 nor 1";
    else if (checkpoint->n_iter < 0 || checkpoint->n_iter >= checkpoint->max_iter ||
             (!checkpoint->initialized && checkpoint->n_iter != 0))
        problem = "its iteration count is outside [0, max_iter)";
    else if (checkpoint->best_run >= checkpoint->run || checkpoint->best_run < -1 ||
             (checkpoint->run > 0 && checkpoint->best_run < 0))
        problem = "its best run is not one of the finished runs";
    else if (checkpoint->best_run >= 0 &&
             (checkpoint->best_n_iter < 1 || checkpoint->best_n_iter > checkpoint->max_iter))
        problem = "its best run's iteration count is outside [1, max_iter]";
    else if (checkpoint->total_empty_repairs < 0)
        problem = "its repair count is negative";
    if (problem)
        return kseg_error_set(error, KSEG_EFORMAT, "the checkpoint is inconsistent: %s",
                              problem);
    return 0;
}

int kmeans_checkpoint_verify(kmeans_context *context, kseg_kmeans_algorithm algorithm,
                             const kseg_kmeans_checkpoint *checkpoint, kseg_error *error)
{
    kseg_kmeans_checkpoint *now = NULL;
    int status = kmeans_checkpoint_identity(context, algorithm, &now, error);
    if (status)
        return status;
    status = compare_identity(checkpoint, now, error);
    if (!status)
        status = check_progress(checkpoint, error);
    kseg_kmeans_checkpoint_free(now);
    return status;
}
