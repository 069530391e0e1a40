/* Checkpoint and resume of the k-means fit: a stop requested from the progress callback at a
 * chosen iteration gives KSEG_EINTERRUPTED and a checkpoint, and resuming from it gives bitwise
 * the uninterrupted fit, for every algorithm, n_init 1 and 3, 1 and 2 threads, after an
 * empty-cluster repair, and on simulated ranks resuming on another rank count. A checkpoint from
 * other data or options is refused naming the difference. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "comm_threads.h"
#include "kmeans_test_support.h"
#include "kseg/kseg.h"

/* Sets its flag after iteration `iteration` of run `run` (iteration 0: after the run). */
typedef struct stopper {
    volatile sig_atomic_t flag;
    int32_t run;
    int32_t iteration;
    int enabled;
} stopper;

static int stop_at(const kseg_progress_event *event, void *user_data)
{
    stopper *stop = user_data;
    if (!stop->enabled || event->init_run != stop->run)
        return 0;
    if ((event->stats && event->stats->iteration == stop->iteration) ||
        (!event->stats && stop->iteration == 0))
        stop->flag = 1;
    return 0;
}

static double *blobs(size_t n, size_t d, size_t k, uint64_t seed)
{
    double *data = malloc(n * d * sizeof *data);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            data[i * d + j] = (double)((i * 7 + j) % k) + 1.2 * gaussian(&state);
    return data;
}

static void base_options(kseg_kmeans_options *options, kseg_kmeans_algorithm algorithm,
                         int32_t n_init, int32_t threads)
{
    kseg_kmeans_options_defaults(options);
    options->n_clusters = 6;
    options->algorithm = algorithm;
    options->n_init = n_init;
    options->max_iter = 60;
    options->tol = 0;
    options->seed = 5;
    options->n_threads = threads;
    options->kernel = "reference";
    options->batch_size = 256;
    options->max_no_improvement = 100; /* several epochs before mini-batch stops early */
}

static void expect_same_fit(const kseg_kmeans_result *a, const kseg_kmeans_result *b,
                            int compare_distances, const char *what)
{
    size_t k = a->n_clusters, d = a->n_features;
    cr_assert_eq(b->n_clusters, k, "%s", what);
    cr_assert_eq(memcmp(a->centroids, b->centroids, k * d * sizeof(double)), 0,
                 "%s: centroids", what);
    cr_assert_eq(memcmp(a->labels, b->labels, a->n_rows * sizeof(int32_t)), 0, "%s: labels",
                 what);
    cr_assert_eq(memcmp(&a->inertia, &b->inertia, sizeof(double)), 0, "%s: inertia", what);
    cr_assert_eq(a->n_iter, b->n_iter, "%s: n_iter", what);
    cr_assert_eq(a->best_init, b->best_init, "%s: best_init", what);
    cr_assert_eq(a->n_init, b->n_init, "%s: n_init", what);
    cr_assert_eq(a->convergence, b->convergence, "%s: convergence", what);
    cr_assert_eq(a->total_empty_repairs, b->total_empty_repairs, "%s: repairs", what);
    cr_assert_eq(a->warnings, b->warnings, "%s: warnings", what);
    for (int32_t i = 0; i < a->n_iter; i++) {
        const kseg_iteration_stats *x = &a->iterations[i], *y = &b->iterations[i];
        cr_assert_eq(x->iteration, y->iteration, "%s", what);
        cr_assert_eq(memcmp(&x->objective, &y->objective, sizeof(double)), 0,
                     "%s: objective of iteration %d", what, i + 1);
        cr_assert_eq(memcmp(&x->center_shift, &y->center_shift, sizeof(double)), 0,
                     "%s: shift of iteration %d", what, i + 1);
        cr_assert_eq(x->changed_labels, y->changed_labels, "%s: changed, iteration %d", what,
                     i + 1);
        cr_assert_eq(x->empty_repairs, y->empty_repairs, "%s", what);
        if (compare_distances)
            cr_assert_eq(x->distances_computed, y->distances_computed, "%s", what);
    }
}

/* Fits with a stop after `iteration` of `run`, expects the interruption, and returns the
 * checkpoint (the caller frees it). */
static kseg_kmeans_checkpoint *interrupted_fit(const kseg_matrix *data,
                                               const kseg_kmeans_options *base,
                                               const kseg_kmeans_checkpoint *resume, int32_t run,
                                               int32_t iteration)
{
    stopper stop = {0, run, iteration, 1};
    kseg_kmeans_options options = *base;
    options.progress = stop_at;
    options.progress_data = &stop;
    options.stop_request = &stop.flag;
    options.resume = resume;
    kseg_kmeans_result result;
    kseg_error error;
    kseg_error_clear(&error);
    int status = kseg_kmeans_fit(data, &options, &result, &error);
    cr_assert_eq(status, KSEG_EINTERRUPTED, "expected an interruption at run %d iteration %d, "
                 "got %d: %s", run, iteration, status, error.message);
    cr_assert_not_null(result.checkpoint);
    cr_assert_null(result.centroids);
    kseg_kmeans_checkpoint *checkpoint = result.checkpoint;
    result.checkpoint = NULL;
    kseg_kmeans_result_destroy(&result);
    return checkpoint;
}

static void resumed_fit(const kseg_matrix *data, const kseg_kmeans_options *base,
                        const kseg_kmeans_checkpoint *checkpoint, kseg_kmeans_result *result)
{
    kseg_kmeans_options options = *base;
    options.resume = checkpoint;
    fit_or_fail(data, &options, result);
}

static void expect_exact_resume(kseg_kmeans_algorithm algorithm, int32_t n_init,
                                int32_t threads)
{
    size_t n = 3000, d = 4;
    double *values = blobs(n, d, 6, 17);
    kseg_matrix data = view(values, KSEG_FLOAT64, n, d);
    kseg_kmeans_options options;
    base_options(&options, algorithm, n_init, threads);
    kseg_kmeans_result reference;
    fit_or_fail(&data, &options, &reference);
    int minibatch = algorithm == KSEG_ALGORITHM_MINIBATCH;
    cr_assert_gt(reference.n_iter, 4, "the data must need more than 4 iterations");
    char what[96];
    snprintf(what, sizeof what, "%s, n_init %d, %d threads",
             kseg_kmeans_algorithm_name(algorithm), n_init, threads);

    /* One stop inside the first run, and (n_init 3) a second one inside the second run of
       the resumed fit, then one between runs: a chain of three resumes. */
    kseg_kmeans_checkpoint *first = interrupted_fit(&data, &options, NULL, 0, 3);
    cr_assert_eq(first->run, 0);
    cr_assert_eq(first->initialized, !minibatch);
    cr_assert_eq(first->n_iter, minibatch ? 0 : 3);
    kseg_kmeans_checkpoint *last = first, *second = NULL, *third = NULL;
    if (n_init > 1) {
        second = interrupted_fit(&data, &options, first, 1, 2);
        cr_assert_eq(second->run, 1);
        cr_assert_eq(second->best_run, 0);
        third = interrupted_fit(&data, &options, second, 1, 0);
        cr_assert_eq(third->run, 2);
        cr_assert_eq(third->initialized, 0);
        last = third;
    }
    kseg_kmeans_result resumed;
    resumed_fit(&data, &options, first, &resumed);
    expect_same_fit(&reference, &resumed, algorithm == KSEG_ALGORITHM_LLOYD, what);
    kseg_kmeans_result_destroy(&resumed);
    if (last != first) {
        resumed_fit(&data, &options, last, &resumed);
        expect_same_fit(&reference, &resumed, algorithm == KSEG_ALGORITHM_LLOYD, what);
        kseg_kmeans_result_destroy(&resumed);
    }
    kseg_kmeans_checkpoint_free(first);
    kseg_kmeans_checkpoint_free(second);
    kseg_kmeans_checkpoint_free(third);
    kseg_kmeans_result_destroy(&reference);
    free(values);
}

static const kseg_kmeans_algorithm every_algorithm[] = {
    KSEG_ALGORITHM_LLOYD,   KSEG_ALGORITHM_HAMERLY,   KSEG_ALGORITHM_ELKAN,
    KSEG_ALGORITHM_YINYANG, KSEG_ALGORITHM_MINIBATCH, KSEG_ALGORITHM_AUTO};

Test(kmeans_checkpoint, resume_is_bitwise_the_uninterrupted_fit_for_every_algorithm)
{
    for (size_t a = 0; a < sizeof every_algorithm / sizeof *every_algorithm; a++)
        for (int32_t n_init = 1; n_init <= 3; n_init += 2)
            for (int32_t threads = 1; threads <= 2; threads++)
                expect_exact_resume(every_algorithm[a], n_init, threads);
}

Test(kmeans_checkpoint, a_checkpoint_right_after_an_empty_cluster_repair_resumes_exactly)
{
    size_t n = 2000, d = 3, k = 5;
    double *values = blobs(n, d, 4, 3);
    double centers[5 * 3];
    memcpy(centers, values, (k - 1) * d * sizeof *centers);
    for (size_t j = 0; j < d; j++)
        centers[(k - 1) * d + j] = 1e3; /* far from every row: empty in iteration 1 */
    kseg_matrix data = view(values, KSEG_FLOAT64, n, d);
    for (int algorithm = 0; algorithm < 4; algorithm++) {
        kseg_kmeans_options options;
        base_options(&options, every_algorithm[algorithm], 1, 2);
        options.n_clusters = (int64_t)k;
        options.init = KSEG_INIT_GIVEN;
        options.init_centers = centers;
        kseg_kmeans_result reference, resumed;
        fit_or_fail(&data, &options, &reference);
        cr_assert_gt(reference.iterations[0].empty_repairs, 0);
        cr_assert_gt(reference.n_iter, 2);
        kseg_kmeans_checkpoint *checkpoint = interrupted_fit(&data, &options, NULL, 0, 1);
        cr_assert_eq(checkpoint->n_iter, 1);
        resumed_fit(&data, &options, checkpoint, &resumed);
        expect_same_fit(&reference, &resumed, algorithm == 0, "after a repair");
        kseg_kmeans_result_destroy(&resumed);
        kseg_kmeans_result_destroy(&reference);
        kseg_kmeans_checkpoint_free(checkpoint);
    }
    free(values);
}

/* ------------------------------------------------------------------ simulated ranks */

typedef struct rank_run {
    const double *data;
    size_t d;
    kseg_kmeans_options options;
    stopper stop; /* only rank 0's callback sets its flag: the ranks must agree */
    kseg_kmeans_result result;
    int32_t *all_labels;
    int status;
} rank_run;

static void rank_body(const kseg_comm *comm, size_t rows, void *argument)
{
    rank_run *run = argument;
    kseg_matrix local = view(run->data + comm->row_offset * run->d, KSEG_FLOAT64, rows, run->d);
    kseg_kmeans_options options = run->options;
    options.comm = comm;
    options.progress = stop_at;
    options.progress_data = &run->stop;
    options.stop_request = &run->stop.flag;
    kseg_error error;
    kseg_error_clear(&error);
    run->status = kseg_kmeans_fit(&local, &options, &run->result, &error);
    if (!run->status && rows)
        memcpy(run->all_labels + comm->row_offset, run->result.labels, rows * sizeof(int32_t));
}

static void expect_resume_across_rank_counts(kseg_kmeans_algorithm algorithm, int from, int to)
{
    size_t n = 5 * 8192 + 123, d = 3;
    double *values = blobs(n, d, 6, 29);
    kseg_matrix data = view(values, KSEG_FLOAT64, n, d);
    kseg_kmeans_options options;
    base_options(&options, algorithm, 3, 1);
    options.max_iter = 20;
    kseg_kmeans_result reference;
    fit_or_fail(&data, &options, &reference);
    int32_t *labels = malloc(n * sizeof *labels);

    rank_run runs[4];
    void *arguments[4];
    memset(runs, 0, sizeof runs);
    for (int r = 0; r < from; r++) {
        runs[r] = (rank_run){values, d, options, {0, 1, 2, r == 0}, {0}, labels, 0};
        arguments[r] = &runs[r];
    }
    cr_assert_eq(thread_comm_run(from, n, rank_body, arguments), 0);
    kseg_kmeans_checkpoint *checkpoint = runs[0].result.checkpoint;
    for (int r = 0; r < from; r++) {
        cr_assert_eq(runs[r].status, KSEG_EINTERRUPTED, "rank %d of %d", r, from);
        const kseg_kmeans_checkpoint *other = runs[r].result.checkpoint;
        cr_assert_eq(other->run, checkpoint->run);
        cr_assert_eq(other->n_iter, checkpoint->n_iter);
        cr_assert_eq(memcmp(other->centers, checkpoint->centers, 6 * d * sizeof(double)), 0);
    }
    cr_assert_eq(checkpoint->run, 1);
    cr_assert_eq(checkpoint->n_iter, 2);

    options.resume = checkpoint;
    rank_run resumed[4];
    memset(resumed, 0, sizeof resumed);
    for (int r = 0; r < to; r++) {
        resumed[r] = (rank_run){values, d, options, {0, 0, 0, 0}, {0}, labels, 0};
        arguments[r] = &resumed[r];
    }
    memset(labels, 0xff, n * sizeof *labels);
    cr_assert_eq(thread_comm_run(to, n, rank_body, arguments), 0);
    for (int r = 0; r < to; r++) {
        cr_assert_eq(resumed[r].status, 0, "resumed rank %d of %d", r, to);
        cr_assert_eq(memcmp(resumed[r].result.centroids, reference.centroids,
                            6 * d * sizeof(double)), 0, "%d -> %d ranks", from, to);
        cr_assert_eq(memcmp(&resumed[r].result.inertia, &reference.inertia, sizeof(double)), 0);
        cr_assert_eq(resumed[r].result.n_iter, reference.n_iter);
        cr_assert_eq(resumed[r].result.best_init, reference.best_init);
        kseg_kmeans_result_destroy(&resumed[r].result);
    }
    cr_assert_eq(memcmp(labels, reference.labels, n * sizeof *labels), 0, "labels %d -> %d",
                 from, to);
    for (int r = 0; r < from; r++)
        kseg_kmeans_result_destroy(&runs[r].result);
    kseg_kmeans_result_destroy(&reference);
    free(labels);
    free(values);
}

Test(kmeans_checkpoint, resume_on_another_rank_count_is_bitwise_the_serial_fit)
{
    expect_resume_across_rank_counts(KSEG_ALGORITHM_LLOYD, 1, 3);
    expect_resume_across_rank_counts(KSEG_ALGORITHM_LLOYD, 4, 2);
    expect_resume_across_rank_counts(KSEG_ALGORITHM_HAMERLY, 4, 2);
    expect_resume_across_rank_counts(KSEG_ALGORITHM_YINYANG, 1, 3);
}

/* ------------------------------------------------------------------ refusals */

static void expect_refusal(const kseg_matrix *data, const kseg_kmeans_options *options,
                           const kseg_kmeans_checkpoint *checkpoint, const char *expected)
{
    kseg_kmeans_options changed = *options;
    changed.resume = checkpoint;
    kseg_kmeans_result result;
    kseg_error error;
    kseg_error_clear(&error);
    int status = kseg_kmeans_fit(data, &changed, &result, &error);
    cr_assert_eq(status, KSEG_EMISMATCH, "expected a refusal mentioning '%s', got %d: %s",
                 expected, status, error.message);
    cr_assert(strstr(error.message, expected), "message '%s' lacks '%s'", error.message,
              expected);
    cr_assert_null(result.centroids);
    cr_assert_null(result.checkpoint);
}

Test(kmeans_checkpoint, a_checkpoint_from_other_data_or_options_is_refused_by_name)
{
    size_t n = 3000, d = 4;
    double *values = blobs(n, d, 6, 17);
    kseg_matrix data = view(values, KSEG_FLOAT64, n, d);
    kseg_kmeans_options options;
    base_options(&options, KSEG_ALGORITHM_LLOYD, 1, 1);
    kseg_kmeans_checkpoint *checkpoint = interrupted_fit(&data, &options, NULL, 0, 2);

    kseg_kmeans_options other = options;
    other.n_clusters = 5;
    expect_refusal(&data, &other, checkpoint,
                   "the checkpoint was taken with k = 6; this run has k = 5");
    other = options;
    other.seed = 6;
    expect_refusal(&data, &other, checkpoint, "seed = 5; this run has seed = 6");
    other = options;
    other.algorithm = KSEG_ALGORITHM_HAMERLY;
    expect_refusal(&data, &other, checkpoint, "algorithm = lloyd; this run has algorithm = "
                                              "hamerly");
    other = options;
    other.max_iter = 61;
    expect_refusal(&data, &other, checkpoint, "max_iter = 60");
    other = options;
    other.tol = 1e-4;
    expect_refusal(&data, &other, checkpoint, "tol = 0; this run has tol = 0.0001");

    values[7 * d + 2] += 0.5;
    expect_refusal(&data, &options, checkpoint,
                   "the checkpoint was taken on other data: feature 2's mean differs");
    values[7 * d + 2] -= 0.5;
    kseg_matrix fewer = view(values, KSEG_FLOAT64, n - 1, d);
    expect_refusal(&fewer, &options, checkpoint, "3000 rows; this input has 2999");
    double *weights = malloc(n * sizeof *weights);
    for (size_t i = 0; i < n; i++)
        weights[i] = 1.0;
    other = options;
    other.sample_weight = weights;
    expect_refusal(&data, &other, checkpoint, "without sample weights");

    /* The untouched options still resume. */
    kseg_kmeans_result resumed;
    resumed_fit(&data, &options, checkpoint, &resumed);
    kseg_kmeans_result_destroy(&resumed);

    /* An inconsistent progress field is a malformed checkpoint. */
    checkpoint->run = 7;
    kseg_kmeans_options broken = options;
    broken.resume = checkpoint;
    kseg_kmeans_result result;
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_kmeans_fit(&data, &broken, &result, &error), KSEG_EFORMAT);
    cr_assert(strstr(error.message, "run index"), "%s", error.message);
    free(weights);
    kseg_kmeans_checkpoint_free(checkpoint);
    free(values);
}

Test(kmeans_checkpoint, a_stop_request_after_the_last_run_lets_the_fit_finish)
{
    size_t n = 1000, d = 2;
    double *values = blobs(n, d, 3, 9);
    kseg_matrix data = view(values, KSEG_FLOAT64, n, d);
    kseg_kmeans_options options;
    base_options(&options, KSEG_ALGORITHM_LLOYD, 1, 1);
    kseg_kmeans_result plain, flagged;
    fit_or_fail(&data, &options, &plain);
    stopper stop = {0, 0, 0, 1}; /* after run 0, the last */
    options.progress = stop_at;
    options.progress_data = &stop;
    options.stop_request = &stop.flag;
    fit_or_fail(&data, &options, &flagged);
    cr_assert_eq(stop.flag, 1);
    expect_same_fit(&plain, &flagged, 1, "flag after the last run");
    kseg_kmeans_result_destroy(&plain);
    kseg_kmeans_result_destroy(&flagged);
    free(values);
}
