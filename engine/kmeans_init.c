/* Initializations: greedy k-means++ (scikit-learn's variant: 2 + floor(ln k) candidates per
 * center, the one that lowers the potential most wins) and weighted random rows. Every draw comes
 * from the counter-based generator and every sum is taken in block order, so the chosen centers
 * do not depend on threads or ranks. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"
#include "rng.h"

void kmeans_row_as_double(const kmeans_context *context, size_t row, double *out)
{
    size_t d = context->d;
    if (context->dtype == KSEG_FLOAT32) {
        const float *values = (const float *)(const void *)context->rows + row * d;
        for (size_t j = 0; j < d; j++)
            out[j] = values[j];
    } else {
        memcpy(out, (const double *)(const void *)context->rows + row * d, d * sizeof *out);
    }
}

double kmeans_row_distance(const kmeans_context *context, size_t row, const double *center)
{
    size_t d = context->d;
    double sum = 0.0;
    if (context->dtype == KSEG_FLOAT32) {
        const float *values = (const float *)(const void *)context->rows + row * d;
        for (size_t j = 0; j < d; j++) {
            double diff = (double)values[j] - center[j];
            sum += diff * diff;
        }
    } else {
        const double *values = (const double *)(const void *)context->rows + row * d;
        for (size_t j = 0; j < d; j++) {
            double diff = values[j] - center[j];
            sum += diff * diff;
        }
    }
    return sum;
}

int kmeans_share_from_owner(kmeans_context *context, uint64_t global_row, const void *local,
                            size_t bytes, void *out, kseg_error *error)
{
    const kseg_comm *comm = context->blocks.comm;
    /* The owner contributes the bytes and the others nothing, so the gathered bytes are exactly
       the owner's on every rank, whatever the transport. */
    int owner = global_row >= comm->row_offset && global_row < comm->row_offset + context->n;
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    if (!lengths)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory sharing row %llu",
                              (unsigned long long)global_row);
    int status = comm->ops->allgatherv(comm, local, owner ? bytes : 0, out, bytes, lengths);
    free(lengths);
    if (status)
        kseg_error_set(error, status, "communicator failed while sharing row %llu",
                       (unsigned long long)global_row);
    return status;
}

int kmeans_fetch_row(kmeans_context *context, uint64_t global_row, double *out,
                     kseg_error *error)
{
    const kseg_comm *comm = context->blocks.comm;
    size_t d = context->d;
    double *local = malloc(d * sizeof *local);
    if (!local)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory fetching a row");
    if (global_row >= comm->row_offset && global_row < comm->row_offset + context->n)
        kmeans_row_as_double(context, (size_t)(global_row - comm->row_offset), local);
    int status = kmeans_share_from_owner(context, global_row, local, d * sizeof *local, out,
                                         error);
    free(local);
    return status;
}

/* Mass of local row i for D^2 sampling: weight * closest distance, or the weight alone when
 * closest is NULL (the first center). */
static inline double row_mass(const kmeans_context *context, const double *closest, size_t i)
{
    double weight = context->weights ? context->weights[i] : 1.0;
    return closest ? weight * closest[i] : weight;
}

/* Per-block masses in row order into block_local[n_blocks_local]. */
static void block_masses(const kmeans_context *context, const double *closest,
                         double *block_local)
{
    const kseg_blocks *blocks = &context->blocks;
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
        double sum = 0.0;
        for (size_t i = begin; i < begin + rows; i++)
            sum += row_mass(context, closest, i);
        block_local[b] = sum;
    }
}

/* Draws a global row with probability proportional to its mass: the first row whose cumulative
 * mass (blocks in order, rows in order) exceeds u * total. Rows of zero mass are never drawn
 * while the total is positive. */
static int sample_row(kmeans_context *context, const double *closest, const double *block_global,
                      double u, uint64_t *global_row, kseg_error *error)
{
    const kseg_blocks *blocks = &context->blocks;
    double total = 0.0;
    size_t last_positive = SIZE_MAX;
    for (size_t b = 0; b < blocks->n_blocks_global; b++) {
        total += block_global[b];
        if (block_global[b] > 0)
            last_positive = b;
    }
    if (last_positive == SIZE_MAX) {
        *global_row = 0; /* every row coincides with a center: any choice repeats one */
        return 0;
    }
    double target = u * total, accumulated = 0.0;
    size_t block = last_positive;
    /* Rounding can leave the target at or past the total: then the last row of positive mass is
       drawn (residual = the block's whole mass, which the in-block scan never exceeds). */
    double residual = block_global[last_positive];
    for (size_t b = 0; b < blocks->n_blocks_global; b++) {
        if (accumulated + block_global[b] > target && block_global[b] > 0) {
            block = b;
            residual = target - accumulated;
            break;
        }
        accumulated += block_global[b];
    }

    int64_t found = 0; /* 1 + global row on the owning rank, 0 elsewhere */
    if (block >= blocks->first_block && block < blocks->first_block + blocks->n_blocks_local) {
        size_t local_block = block - blocks->first_block;
        size_t begin = kseg_block_begin(blocks, local_block);
        size_t rows = kseg_block_rows(blocks, local_block);
        double cumulative = 0.0;
        size_t chosen = SIZE_MAX, last = SIZE_MAX;
        for (size_t i = begin; i < begin + rows; i++) {
            double mass = row_mass(context, closest, i);
            if (mass <= 0)
                continue;
            cumulative += mass;
            last = i;
            if (cumulative > residual) {
                chosen = i;
                break;
            }
        }
        if (chosen == SIZE_MAX)
            chosen = last;
        found = 1 + (int64_t)(blocks->comm->row_offset + chosen);
    }
    int status = kseg_allreduce_i64(blocks, &found, 1, error);
    if (status)
        return status;
    *global_row = (uint64_t)(found - 1);
    return 0;
}

int kmeans_init_plusplus(kmeans_context *context, int32_t run, double *centers,
                         kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    const kseg_blocks *blocks = &context->blocks;
    size_t n = context->n, d = context->d, k = context->k;
    size_t trials = options->local_trials > 0 ? (size_t)options->local_trials
                                               : 2 + (size_t)floor(log((double)k));
    uint64_t first_stream = KSEG_STREAM_INIT_FIRST + ((uint64_t)run << 8);
    uint64_t trial_stream = KSEG_STREAM_INIT_TRIALS + ((uint64_t)run << 8);
    int status = 0;

    double *closest = malloc((n ? n : 1) * sizeof *closest);
    double *block_local = malloc((blocks->n_blocks_local * trials + 1) * sizeof *block_local);
    double *block_global = malloc((blocks->n_blocks_global * trials + 1) * sizeof *block_global);
    double *candidates = malloc(trials * d * sizeof *candidates);
    double *totals = malloc(trials * sizeof *totals);
    if (!closest || !block_local || !block_global || !candidates || !totals) {
        status = kseg_error_set(error, KSEG_ENOMEM,
                                "out of memory for k-means++ (%zu rows, %zu candidates)", n,
                                trials);
        goto done;
    }

    /* First center: a row drawn with probability proportional to its weight. */
    uint64_t row;
    block_masses(context, NULL, block_local);
    if ((status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)) ||
        (status = sample_row(context, NULL, block_global,
                             kseg_rng_uniform(options->seed, first_stream, 0), &row, error)) ||
        (status = kmeans_fetch_row(context, row, centers, error)))
        goto done;
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
    for (size_t i = 0; i < n; i++)
        closest[i] = kmeans_row_distance(context, i, centers);

    for (size_t c = 1; c < k; c++) {
        /* Draw the candidates from the current D^2 distribution. */
        block_masses(context, closest, block_local);
        if ((status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)))
            goto done;
        for (size_t t = 0; t < trials; t++) {
            double u = kseg_rng_uniform(options->seed, trial_stream, c * trials + t);
            if ((status = sample_row(context, closest, block_global, u, &row, error)) ||
                (status = kmeans_fetch_row(context, row, candidates + t * d, error)))
                goto done;
        }
        /* Potential after adding each candidate, per block, in one pass over the rows. */
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
        for (size_t b = 0; b < blocks->n_blocks_local; b++) {
            size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
            double *potential = block_local + b * trials;
            for (size_t t = 0; t < trials; t++)
                potential[t] = 0.0;
            for (size_t i = begin; i < begin + rows; i++) {
                double weight = context->weights ? context->weights[i] : 1.0;
                for (size_t t = 0; t < trials; t++) {
                    double distance = kmeans_row_distance(context, i, candidates + t * d);
                    potential[t] += weight * (distance < closest[i] ? distance : closest[i]);
                }
            }
        }
        if ((status = kseg_gather_block_scalars(blocks, block_local, trials, block_global, error)))
            goto done;
        for (size_t t = 0; t < trials; t++)
            totals[t] = 0.0;
        for (size_t b = 0; b < blocks->n_blocks_global; b++)
            for (size_t t = 0; t < trials; t++)
                totals[t] += block_global[b * trials + t];
        size_t best = 0;
        for (size_t t = 1; t < trials; t++)
            if (totals[t] < totals[best]) /* ties: the earliest candidate */
                best = t;
        double *center = centers + c * d;
        memcpy(center, candidates + best * d, d * sizeof *center);
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
        for (size_t i = 0; i < n; i++) {
            double distance = kmeans_row_distance(context, i, center);
            if (distance < closest[i])
                closest[i] = distance;
        }
    }
done:
    free(closest);
    free(block_local);
    free(block_global);
    free(candidates);
    free(totals);
    return status;
}

/* A candidate of the weighted random draw: larger key wins, ties to the lower row. */
typedef struct random_key {
    double key;
    uint64_t row;
} random_key;

static int key_before(const random_key *a, const random_key *b)
{
    return a->key > b->key || (a->key == b->key && a->row < b->row);
}

static int compare_keys(const void *a, const void *b)
{
    const random_key *x = a, *y = b;
    return key_before(x, y) ? -1 : (key_before(y, x) ? 1 : 0);
}

/* Keeps the `capacity` best keys in a heap whose root is the worst kept key. */
static void heap_offer(random_key *heap, size_t *size, size_t capacity, random_key candidate)
{
    if (*size < capacity) {
        size_t i = (*size)++;
        heap[i] = candidate;
        while (i > 0) {
            size_t parent = (i - 1) / 2;
            if (!key_before(&heap[parent], &heap[i]))
                break;
            random_key swap = heap[parent];
            heap[parent] = heap[i];
            heap[i] = swap;
            i = parent;
        }
        return;
    }
    if (!key_before(&candidate, &heap[0]))
        return;
    heap[0] = candidate;
    size_t i = 0;
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, worst = i;
        if (left < *size && key_before(&heap[worst], &heap[left]))
            worst = left;
        if (right < *size && key_before(&heap[worst], &heap[right]))
            worst = right;
        if (worst == i)
            break;
        random_key swap = heap[worst];
        heap[worst] = heap[i];
        heap[i] = swap;
        i = worst;
    }
}

int kmeans_init_random(kmeans_context *context, int32_t run, double *centers, kseg_error *error)
{
    /* Weighted sampling without replacement by exponential keys (Efraimidis & Spirakis): row i
       gets log(u_i) / w_i and the k largest keys win; zero-weight rows never do. */
    const kseg_kmeans_options *options = context->options;
    const kseg_blocks *blocks = &context->blocks;
    const kseg_comm *comm = blocks->comm;
    size_t k = context->k, d = context->d;
    uint64_t stream = KSEG_STREAM_INIT_RANDOM + ((uint64_t)run << 8);
    int n_threads = blocks->n_threads;
    int status = 0;

    random_key *heaps = malloc((size_t)n_threads * k * sizeof *heaps);
    size_t *sizes = calloc((size_t)n_threads, sizeof *sizes);
    random_key *gathered = malloc((size_t)comm->size * k * sizeof *gathered + 1);
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    if (!heaps || !sizes || !gathered || !lengths) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for random initialization");
        goto done;
    }
#pragma omp parallel num_threads(n_threads)
    {
        int thread = omp_get_thread_num();
        random_key *heap = heaps + (size_t)thread * k;
#pragma omp for schedule(static)
        for (size_t i = 0; i < context->n; i++) {
            double weight = context->weights ? context->weights[i] : 1.0;
            if (weight <= 0)
                continue;
            uint64_t global = comm->row_offset + i;
            random_key candidate = {log(kseg_rng_uniform_open(options->seed, stream, global)) /
                                        weight,
                                    global};
            heap_offer(heap, &sizes[thread], k, candidate);
        }
    }
    /* Merge the threads' best keys into thread 0's heap. */
    for (int t = 1; t < n_threads; t++)
        for (size_t i = 0; i < sizes[t]; i++)
            heap_offer(heaps, &sizes[0], k, heaps[(size_t)t * k + i]);
    status = comm->ops->allgatherv(comm, heaps, sizes[0] * sizeof *heaps, gathered,
                                   (size_t)comm->size * k * sizeof *gathered, lengths);
    if (status) {
        kseg_error_set(error, status, "communicator failed during random initialization");
        goto done;
    }
    size_t total = 0;
    for (int r = 0; r < comm->size; r++)
        total += lengths[r] / sizeof *gathered;
    if (total < k) {
        status = kseg_error_set(error, KSEG_EINVAL,
                                "random initialization needs %zu rows with positive weight, "
                                "found %zu",
                                k, total);
        goto done;
    }
    qsort(gathered, total, sizeof *gathered, compare_keys);
    for (size_t c = 0; c < k; c++)
        if ((status = kmeans_fetch_row(context, gathered[c].row, centers + c * d, error)))
            goto done;
done:
    free(heaps);
    free(sizes);
    free(gathered);
    free(lengths);
    return status;
}
