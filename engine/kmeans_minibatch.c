/* Mini-batch k-means (Sculley 2010) with scikit-learn's MiniBatchKMeans semantics: batches drawn
 * uniformly with replacement from the counter-based generator, per-center learning rates, early
 * stop on a smoothed batch inertia. Approximate by design; the driver ends every run with a full
 * assignment pass. Batches are reduced in batch order, so results do not depend on threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"
#include "rng.h"

/* Batch rows per assignment call. Fixed, so that the rows a kernel call sees together (and so
 * every distance it returns) do not depend on the number of threads. */
#define MINIBATCH_CHUNK_ROWS ((size_t)256)

/* What each batch row contributes, gathered from every rank: its position in the batch, label,
 * weight, squared distance, then its d values. */
enum { RECORD_POSITION, RECORD_LABEL, RECORD_WEIGHT, RECORD_DISTANCE, RECORD_VALUES };

int kmeans_minibatch_steps(kmeans_context *context, int32_t run, double *centers,
                           kseg_iteration_stats *iterations, int32_t *n_iter,
                           kseg_convergence *convergence, kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    const kseg_blocks *blocks = &context->blocks;
    const kseg_comm *comm = blocks->comm;
    const kseg_assign_kernel *kernel = context->kernel;
    size_t n = context->n, d = context->d, k = context->k, element = context->element_size;
    size_t n_global = comm->n_global;
    size_t batch = (uint64_t)options->batch_size < n_global ? (size_t)options->batch_size
                                                            : n_global;
    size_t steps_per_epoch = (n_global + batch - 1) / batch;
    size_t record = RECORD_VALUES + d;
    uint64_t stream = KSEG_STREAM_MINIBATCH + ((uint64_t)run << 8);
    int status = 0;

    unsigned char *rows = malloc(batch * d * element);
    size_t *positions = malloc(batch * sizeof *positions);
    size_t *local_rows = malloc(batch * sizeof *local_rows);
    int32_t *labels = malloc(batch * sizeof *labels);
    double *distances = malloc(batch * sizeof *distances);
    double *records = malloc(batch * record * sizeof *records);
    double *gathered = malloc(batch * record * sizeof *gathered);
    size_t *order = malloc(batch * sizeof *order);
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    double *counts = calloc(k, sizeof *counts);
    double *batch_sums = malloc(k * d * sizeof *batch_sums);
    double *batch_weights = malloc(k * sizeof *batch_weights);
    if (!rows || !positions || !local_rows || !labels || !distances || !records || !gathered ||
        !order || !lengths || !counts || !batch_sums || !batch_weights) {
        status = kseg_error_set(error, KSEG_ENOMEM,
                                "out of memory for mini-batch buffers (batch of %zu rows)", batch);
        goto done;
    }

    /* scikit-learn's smoothing: an exponentially weighted average over about n / (2 batch)
       batches, so roughly one epoch's worth. */
    double alpha = 2.0 * (double)batch / ((double)n_global + 1.0);
    if (alpha > 1.0)
        alpha = 1.0;
    double smoothed = 0.0, smoothed_min = 0.0;
    int have_smoothed = 0, have_min = 0;
    int32_t no_improvement = 0;
    size_t total_steps = (size_t)options->max_iter * steps_per_epoch;
    double epoch_started = omp_get_wtime(), epoch_inertia = 0.0, epoch_shift = 0.0;
    size_t epoch_rows = 0;
    int32_t epoch = 0;
    *convergence = KSEG_CONVERGED_NONE;

    for (size_t step = 0; step < total_steps; step++) {
        /* Draw the batch; each rank keeps the rows it holds, in batch order. */
        size_t owned = 0;
        for (size_t j = 0; j < batch; j++) {
            double u = kseg_rng_uniform(options->seed, stream, (uint64_t)step * batch + j);
            uint64_t global = (uint64_t)(u * (double)n_global);
            if (global >= n_global)
                global = n_global - 1;
            if (global < comm->row_offset || global >= comm->row_offset + n)
                continue;
            size_t i = (size_t)(global - comm->row_offset);
            memcpy(rows + owned * d * element, context->rows + i * d * element, d * element);
            positions[owned] = j;
            local_rows[owned] = i;
            owned++;
        }
        /* Assign the batch rows to the current centers. */
        kernel->pack(centers, k, d, context->column_mean, context->packed);
        size_t chunks = (owned + MINIBATCH_CHUNK_ROWS - 1) / MINIBATCH_CHUNK_ROWS;
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads) if (chunks > 1)
        for (size_t c = 0; c < chunks; c++) {
            size_t begin = c * MINIBATCH_CHUNK_ROWS;
            size_t count = owned - begin < MINIBATCH_CHUNK_ROWS ? owned - begin
                                                                : MINIBATCH_CHUNK_ROWS;
            kernel->assign(rows + begin * d * element, count, d, context->packed, k,
                           labels + begin, distances + begin,
                           context->scratch[omp_get_thread_num()]);
        }
        for (size_t o = 0; o < owned; o++) {
            double *out = records + o * record;
            out[RECORD_POSITION] = (double)positions[o];
            out[RECORD_LABEL] = labels[o];
            out[RECORD_WEIGHT] = context->weights ? context->weights[local_rows[o]] : 1.0;
            /* Expanded-form kernels can round a zero distance slightly below zero. */
            out[RECORD_DISTANCE] = distances[o] > 0 ? distances[o] : 0.0;
            kmeans_row_as_double(context, local_rows[o], out + RECORD_VALUES);
        }
        status = comm->ops->allgatherv(comm, records, owned * record * sizeof *records, gathered,
                                       batch * record * sizeof *gathered, lengths);
        if (status) {
            kseg_error_set(error, status, "communicator failed gathering a mini-batch");
            goto done;
        }
        for (size_t r = 0; r < batch; r++)
            order[(size_t)gathered[r * record + RECORD_POSITION]] = r;

        /* Sums over the batch in batch order, whichever rank held which row. */
        memset(batch_sums, 0, k * d * sizeof *batch_sums);
        memset(batch_weights, 0, k * sizeof *batch_weights);
        double batch_inertia = 0.0;
        for (size_t p = 0; p < batch; p++) {
            const double *in = gathered + order[p] * record;
            size_t c = (size_t)in[RECORD_LABEL];
            double weight = in[RECORD_WEIGHT];
            batch_weights[c] += weight;
            for (size_t j = 0; j < d; j++)
                batch_sums[c * d + j] += weight * in[RECORD_VALUES + j];
            batch_inertia += weight * in[RECORD_DISTANCE];
        }
        /* Each center becomes the weighted mean of every row it has received so far: its old
           position weighs the weight it had (learning rate 1 / count, per center). */
        double shift = 0.0;
        for (size_t c = 0; c < k; c++) {
            if (!(batch_weights[c] > 0))
                continue;
            double total = counts[c] + batch_weights[c];
            for (size_t j = 0; j < d; j++) {
                double updated = (centers[c * d + j] * counts[c] + batch_sums[c * d + j]) / total;
                double move = updated - centers[c * d + j];
                shift += move * move;
                centers[c * d + j] = updated;
            }
            counts[c] = total;
        }

        /* scikit-learn's early stop: the first batch only measures the initialization; after it,
           a run ends when the smoothed batch inertia has not reached a new minimum for
           max_no_improvement batches. */
        int stop = 0;
        if (step > 0) {
            double mean = batch_inertia / (double)batch;
            smoothed = have_smoothed ? smoothed * (1.0 - alpha) + mean * alpha : mean;
            have_smoothed = 1;
            if (!have_min || smoothed < smoothed_min) {
                smoothed_min = smoothed;
                have_min = 1;
                no_improvement = 0;
            } else {
                no_improvement++;
            }
            stop = options->max_no_improvement > 0 &&
                   no_improvement >= options->max_no_improvement;
        }

        epoch_inertia += batch_inertia;
        epoch_shift += shift;
        epoch_rows += batch;
        if ((step + 1) % steps_per_epoch == 0 || stop || step + 1 == total_steps) {
            /* One statistics entry per epoch: the objective estimates the full inertia from the
               epoch's batches (their mean squared distance times n). */
            kseg_iteration_stats *stats = &iterations[epoch];
            stats->iteration = epoch + 1;
            stats->objective = epoch_inertia / (double)epoch_rows * (double)n_global;
            stats->center_shift = epoch_shift;
            stats->changed_labels = 0;
            stats->empty_repairs = 0;
            stats->seconds = omp_get_wtime() - epoch_started;
            stats->distances_computed = (int64_t)epoch_rows * (int64_t)k;
            stats->distances_skipped = 0;
            epoch++;
            if (options->progress) {
                kseg_progress_event event = {run, context->n_init, stats, 0.0};
                if (options->progress(&event, options->progress_data)) {
                    status = kseg_error_set(error, KSEG_ECANCELED,
                                            "canceled at epoch %d of run %d", epoch, run + 1);
                    goto done;
                }
            }
            /* A stop request ends the run here; the checkpoint restarts it from its
               (deterministic) initialization, so no batch state needs saving. */
            int interrupt = 0;
            if (!stop && step + 1 < total_steps &&
                (status = kmeans_stop_requested(context, &interrupt, error)))
                goto done;
            if (interrupt) {
                status = kseg_error_set(error, KSEG_EINTERRUPTED,
                                        "interrupted at epoch %d of run %d", epoch, run + 1);
                goto done;
            }
            epoch_started = omp_get_wtime();
            epoch_inertia = epoch_shift = 0.0;
            epoch_rows = 0;
        }
        if (stop) {
            *convergence = KSEG_CONVERGED_NO_IMPROVEMENT;
            break;
        }
    }
    *n_iter = epoch;
done:
    free(rows);
    free(positions);
    free(local_rows);
    free(labels);
    free(distances);
    free(records);
    free(gathered);
    free(order);
    free(lengths);
    free(counts);
    free(batch_sums);
    free(batch_weights);
    return status;
}
