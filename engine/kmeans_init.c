/* Initializations: greedy k-means++ (scikit-learn's variant: 2 + floor(ln k) candidates per
 * center, the one that lowers the potential most wins; distances through the assignment
 * kernels), k-means|| (Bahmani et al.: a few rounds
 * of independent D^2 draws, reduced by weighted k-means++) and weighted random rows. Every draw comes
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

static void *aligned_bytes(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded ? rounded : 64);
}

/* Compares every local row with the `count` centers [count x d] through an assignment kernel,
 * lowers closest[i] where one of them is nearer (setting nearest[i], if not NULL, to first + its
 * index), and writes each block's D^2 mass (sum of weight * closest, in row order, as
 * block_masses computes it) into block_local. Strictly nearer only: ties keep the earlier
 * center, so nearest does not depend on how the centers are grouped into calls. */
static int nearer_pass(kmeans_context *context, const kseg_assign_kernel *kernel,
                       const double *centers, size_t count, size_t first, double *closest,
                       int32_t *nearest, double *block_local, kseg_error *error)
{
    const kseg_blocks *blocks = &context->blocks;
    size_t d = context->d;
    int n_threads = blocks->n_threads, status = 0;
    void *packed = aligned_bytes(kernel->packed_size(count, d));
    void **scratch = calloc((size_t)n_threads, sizeof *scratch);
    int32_t *labels = malloc((size_t)n_threads * KSEG_BLOCK_ROWS * sizeof *labels);
    if (!packed || !scratch || !labels)
        goto out_of_memory;
    for (int t = 0; t < n_threads; t++)
        if (!(scratch[t] = aligned_bytes(kernel->scratch_size(count, d))))
            goto out_of_memory;
    /* Centered on the data mean like the fit's own passes, for the expanded-form kernels. */
    kernel->pack(centers, count, d, context->column_mean, packed);
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        int thread = omp_get_thread_num();
        size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
        int32_t *label = labels + (size_t)thread * KSEG_BLOCK_ROWS;
        double *distance = context->row_buffers[thread];
        kernel->assign(context->rows + begin * d * context->element_size, rows, d, packed, count,
                       label, distance, scratch[thread]);
        double mass = 0.0;
        for (size_t r = 0; r < rows; r++) {
            size_t i = begin + r;
            /* Expanded-form kernels can round a zero distance slightly below zero. */
            double value = distance[r] > 0 ? distance[r] : 0.0;
            if (value < closest[i]) {
                closest[i] = value;
                if (nearest)
                    nearest[i] = (int32_t)(first + (size_t)label[r]);
            }
            mass += row_mass(context, closest, i);
        }
        block_local[b] = mass;
    }
    goto done;
out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "out of memory comparing rows with %zu centers",
                            count);
done:
    if (scratch)
        for (int t = 0; t < n_threads; t++)
            free(scratch[t]);
    free(scratch);
    free(labels);
    free(packed);
    return status;
}

/* The kernel k-means++ measures distances with: one center at a time, so the one preferred for
 * k = 1 (rows in vector lanes where the CPU has them), or the kernel the caller named. */
static const kseg_assign_kernel *single_center_kernel(const kmeans_context *context,
                                                      kseg_error *error)
{
    const kseg_assign_kernel *kernel =
        kseg_assign_kernel_select(context->dtype, 1, context->d, context->options->kernel);
    if (!kernel)
        kseg_error_set(error, KSEG_ENOTSUP, "kernel '%s' is unknown or not supported by this CPU",
                       context->options->kernel ? context->options->kernel : "(auto)");
    return kernel;
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
    int n_threads = blocks->n_threads, status = 0;
    const kseg_assign_kernel *kernel = single_center_kernel(context, error);
    if (!kernel)
        return KSEG_ENOTSUP;
    /* Each candidate packed on its own (k = 1), so one kernel call gives a row's distance to it. */
    size_t packed_bytes = (kernel->packed_size(1, d) + 63) / 64 * 64;

    double *closest = malloc((n ? n : 1) * sizeof *closest);
    double *block_local = malloc((blocks->n_blocks_local * trials + 1) * sizeof *block_local);
    double *block_global = malloc((blocks->n_blocks_global * trials + 1) * sizeof *block_global);
    double *candidates = malloc(trials * d * sizeof *candidates);
    double *totals = malloc(trials * sizeof *totals);
    unsigned char *packed = aligned_bytes(trials * packed_bytes);
    void **scratch = calloc((size_t)n_threads, sizeof *scratch);
    int32_t *labels = malloc((size_t)n_threads * KSEG_BLOCK_ROWS * sizeof *labels);
    if (!closest || !block_local || !block_global || !candidates || !totals || !packed ||
        !scratch || !labels)
        goto out_of_memory;
    for (int t = 0; t < n_threads; t++)
        if (!(scratch[t] = aligned_bytes(kernel->scratch_size(1, d))))
            goto out_of_memory;
    for (size_t i = 0; i < n; i++)
        closest[i] = INFINITY;

    /* First center: a row drawn with probability proportional to its weight. */
    uint64_t row;
    block_masses(context, NULL, block_local);
    if ((status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)) ||
        (status = sample_row(context, NULL, block_global,
                             kseg_rng_uniform(options->seed, first_stream, 0), &row, error)) ||
        (status = kmeans_fetch_row(context, row, centers, error)) ||
        (status = nearer_pass(context, kernel, centers, 1, 0, closest, NULL, block_local,
                              error)))
        goto done;

    for (size_t c = 1; c < k; c++) {
        /* Draw the candidates from the current D^2 distribution (block_local holds its
           per-block masses from the last pass). */
        if ((status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)))
            goto done;
        for (size_t t = 0; t < trials; t++) {
            double u = kseg_rng_uniform(options->seed, trial_stream, c * trials + t);
            if ((status = sample_row(context, closest, block_global, u, &row, error)) ||
                (status = kmeans_fetch_row(context, row, candidates + t * d, error)))
                goto done;
            kernel->pack(candidates + t * d, 1, d, context->column_mean,
                         packed + t * packed_bytes);
        }
        /* Potential after adding each candidate, per block, in one pass over the rows: the
           block is read once from memory and then from cache for the other candidates. */
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (size_t b = 0; b < blocks->n_blocks_local; b++) {
            int thread = omp_get_thread_num();
            size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
            double *potential = block_local + b * trials;
            double *distance = context->row_buffers[thread];
            int32_t *label = labels + (size_t)thread * KSEG_BLOCK_ROWS;
            for (size_t t = 0; t < trials; t++) {
                kernel->assign(context->rows + begin * d * context->element_size, rows, d,
                               packed + t * packed_bytes, 1, label, distance, scratch[thread]);
                double sum = 0.0;
                for (size_t r = 0; r < rows; r++) {
                    size_t i = begin + r;
                    double weight = context->weights ? context->weights[i] : 1.0;
                    double value = distance[r] > 0 ? distance[r] : 0.0;
                    sum += weight * (value < closest[i] ? value : closest[i]);
                }
                potential[t] = sum;
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
        memcpy(centers + c * d, candidates + best * d, d * sizeof *centers);
        /* The distances to the new center, and the masses of the next draw (none after the
           last center). */
        if (c + 1 < k &&
            (status = nearer_pass(context, kernel, centers + c * d, 1, 0, closest, NULL,
                                  block_local, error)))
            goto done;
    }
    goto done;
out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM,
                            "out of memory for k-means++ (%zu rows, %zu candidates)", n, trials);
done:
    if (scratch)
        for (int t = 0; t < n_threads; t++)
            free(scratch[t]);
    free(scratch);
    free(labels);
    free(packed);
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

/* ------------------------------------------------------------------ k-means|| */

/* The candidates of k-means|| so far: their values in the order they were drawn (rounds in
 * order, rows in global order within a round), which every rank holds identically. */
typedef struct candidate_set {
    double *values; /* [capacity x d] */
    size_t count, capacity;
} candidate_set;

static int candidates_reserve(candidate_set *set, size_t wanted, size_t d, kseg_error *error)
{
    if (wanted <= set->capacity)
        return 0;
    size_t capacity = set->capacity ? set->capacity : 64;
    while (capacity < wanted)
        capacity *= 2;
    double *grown = realloc(set->values, capacity * d * sizeof *grown);
    if (!grown)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for %zu k-means|| candidates",
                              wanted);
    set->values = grown;
    set->capacity = capacity;
    return 0;
}

/* One round's draw: every row independently with probability min(1, l * mass / potential), from
 * its own counter-based uniform, so the drawn set depends on neither threads nor ranks. The drawn
 * rows are appended to the candidates in global row order on every rank. */
static int parallel_draw(kmeans_context *context, const double *closest, double potential,
                         double oversampling, uint64_t stream, unsigned char *drawn,
                         size_t *block_counts, candidate_set *set, kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    const kseg_blocks *blocks = &context->blocks;
    const kseg_comm *comm = blocks->comm;
    size_t d = context->d, record = (d + 1) * sizeof(double);
#pragma omp parallel for schedule(static) num_threads(blocks->n_threads)
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
        size_t count = 0;
        kseg_rng_block bits = {{0, 0, 0, 0}};
        for (size_t i = begin; i < begin + rows; i++) {
            /* One Philox call serves two rows (global rows 2m and 2m + 1 take the two 64-bit
               halves of index m): the draws cost as much as a distance pass otherwise. Blocks
               start at even global rows, so every pair is computed whole. */
            uint64_t global = comm->row_offset + i;
            if (i == begin || (global & 1) == 0)
                bits = kseg_rng_philox(options->seed, stream, global >> 1);
            uint64_t word = (global & 1) ? ((uint64_t)bits.v[2] << 32) | bits.v[3]
                                         : ((uint64_t)bits.v[0] << 32) | bits.v[1];
            double u = (double)(word >> 11) * 0x1.0p-53;
            double mass = row_mass(context, closest, i);
            double probability = oversampling * mass / potential;
            /* A row of zero mass (zero weight, or on a candidate) is never drawn. */
            drawn[i] = mass > 0 && (probability >= 1.0 || u < probability);
            count += drawn[i];
        }
        block_counts[b] = count;
    }
    int64_t totals[2] = {0, 0}; /* drawn on this rank, on all ranks */
    for (size_t b = 0; b < blocks->n_blocks_local; b++)
        totals[0] += (int64_t)block_counts[b];
    totals[1] = totals[0];
    int status = kseg_allreduce_i64(blocks, totals + 1, 1, error);
    if (status || totals[1] == 0)
        return status;
    /* Records of (global row, values) travel through the communicator; the rows themselves are
       only needed by the reduction, the global row keeps the records' order explicit. */
    unsigned char *local = malloc((size_t)totals[0] * record + 1);
    size_t *lengths = calloc((size_t)comm->size, sizeof *lengths);
    if (!local || !lengths ||
        (status = candidates_reserve(set, set->count + (size_t)totals[1], d, error))) {
        free(local);
        free(lengths);
        return status ? status
                      : kseg_error_set(error, KSEG_ENOMEM, "out of memory for k-means|| draws");
    }
    size_t written = 0;
    for (size_t b = 0; b < blocks->n_blocks_local; b++) {
        if (!block_counts[b])
            continue;
        size_t begin = kseg_block_begin(blocks, b), rows = kseg_block_rows(blocks, b);
        for (size_t i = begin; i < begin + rows; i++) {
            if (!drawn[i])
                continue;
            double *out = (double *)(void *)(local + written * record);
            out[0] = (double)(comm->row_offset + i);
            kmeans_row_as_double(context, i, out + 1);
            written++;
        }
    }
    /* Records are one double wider than candidates: they are gathered apart, then unpacked. */
    unsigned char *gathered = malloc((size_t)totals[1] * record);
    if (!gathered) {
        free(local);
        free(lengths);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory for k-means|| draws");
    }
    status = comm->ops->allgatherv(comm, local, written * record, gathered,
                                   (size_t)totals[1] * record, lengths);
    if (status) {
        kseg_error_set(error, status, "communicator failed gathering k-means|| draws");
    } else {
        for (int64_t c = 0; c < totals[1]; c++)
            memcpy(set->values + (set->count + (size_t)c) * d,
                   (const double *)(const void *)(gathered + (size_t)c * record) + 1,
                   d * sizeof(double));
        set->count += (size_t)totals[1];
    }
    free(local);
    free(lengths);
    free(gathered);
    return status;
}

typedef struct candidate_weight_pass {
    const kmeans_context *context;
    const int32_t *nearest;
} candidate_weight_pass;

/* kseg_block_fn: adds each row's weight to the candidate nearest to it. */
static void candidate_weight_block(void *opaque, size_t b, double *payload, int thread)
{
    (void)thread;
    const candidate_weight_pass *pass = opaque;
    const kmeans_context *context = pass->context;
    size_t begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    for (size_t i = begin; i < begin + rows; i++)
        payload[pass->nearest[i]] += context->weights ? context->weights[i] : 1.0;
}

/* Index of the first candidate whose cumulative mass exceeds u * total, skipping zero masses;
 * the last positive one when rounding leaves the target at the total; 0 when all are zero. */
static size_t draw_candidate(const double *weight, const double *closest, size_t count,
                             double u)
{
    double total = 0.0;
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < count; i++) {
        double mass = closest ? weight[i] * closest[i] : weight[i];
        total += mass;
        if (mass > 0)
            last = i;
    }
    if (last == SIZE_MAX)
        return 0;
    double target = u * total, cumulative = 0.0;
    for (size_t i = 0; i < count; i++) {
        double mass = closest ? weight[i] * closest[i] : weight[i];
        if (mass <= 0)
            continue;
        cumulative += mass;
        if (cumulative > target)
            return i;
    }
    return last;
}

static double squared_distance(const double *a, const double *b, size_t d)
{
    double sum = 0.0;
    for (size_t j = 0; j < d; j++) {
        double diff = a[j] - b[j];
        sum += diff * diff;
    }
    return sum;
}

/* Weighted greedy k-means++ on the candidates (all in memory, identical on every rank, so this
 * runs serially and needs no communication): trials draws per center, the one that lowers the
 * weighted potential most wins, ties to the earliest draw. */
static int reduce_candidates(const candidate_set *set, const double *weight, size_t d, size_t k,
                             size_t trials, uint64_t seed, uint64_t stream, double *centers,
                             kseg_error *error)
{
    size_t count = set->count;
    double *closest = malloc(count * sizeof *closest);
    double *trial_closest = malloc(count * sizeof *trial_closest);
    double *best_closest = malloc(count * sizeof *best_closest);
    if (!closest || !trial_closest || !best_closest) {
        free(closest);
        free(trial_closest);
        free(best_closest);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory reducing %zu k-means|| "
                              "candidates", count);
    }
    size_t chosen = draw_candidate(weight, NULL, count, kseg_rng_uniform(seed, stream, 0));
    memcpy(centers, set->values + chosen * d, d * sizeof *centers);
    for (size_t i = 0; i < count; i++)
        closest[i] = squared_distance(set->values + i * d, centers, d);
    for (size_t c = 1; c < k; c++) {
        double best_potential = INFINITY;
        size_t best = 0;
        for (size_t t = 0; t < trials; t++) {
            double u = kseg_rng_uniform(seed, stream, 1 + c * trials + t);
            size_t candidate = draw_candidate(weight, closest, count, u);
            const double *values = set->values + candidate * d;
            double potential = 0.0;
            for (size_t i = 0; i < count; i++) {
                double distance = squared_distance(set->values + i * d, values, d);
                trial_closest[i] = distance < closest[i] ? distance : closest[i];
                potential += weight[i] * trial_closest[i];
            }
            if (t == 0 || potential < best_potential) {
                best_potential = potential;
                best = candidate;
                double *swap = best_closest;
                best_closest = trial_closest;
                trial_closest = swap;
            }
        }
        memcpy(centers + c * d, set->values + best * d, d * sizeof *centers);
        double *swap = closest;
        closest = best_closest;
        best_closest = swap;
    }
    free(closest);
    free(trial_closest);
    free(best_closest);
    return 0;
}

int kmeans_init_parallel(kmeans_context *context, int32_t run, double *centers,
                         kseg_error *error)
{
    const kseg_kmeans_options *options = context->options;
    const kseg_blocks *blocks = &context->blocks;
    size_t n = context->n, d = context->d, k = context->k;
    size_t trials = options->local_trials > 0 ? (size_t)options->local_trials
                                               : 2 + (size_t)floor(log((double)k));
    double oversampling = options->oversampling > 0 ? options->oversampling : 2.0 * (double)k;
    uint64_t stream = KSEG_STREAM_INIT_PARALLEL + ((uint64_t)run << 8);
    int status = 0;
    candidate_set set = {NULL, 0, 0};
    kseg_vector_reducer reducer;
    memset(&reducer, 0, sizeof reducer);
    double *weight = NULL;

    double *closest = malloc((n ? n : 1) * sizeof *closest);
    int32_t *nearest = calloc(n ? n : 1, sizeof *nearest);
    unsigned char *drawn = malloc(n ? n : 1);
    size_t *block_counts = malloc((blocks->n_blocks_local + 1) * sizeof *block_counts);
    double *block_local = malloc((blocks->n_blocks_local + 1) * sizeof *block_local);
    double *block_global = malloc((blocks->n_blocks_global + 1) * sizeof *block_global);
    if (!closest || !nearest || !drawn || !block_counts || !block_local || !block_global) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for k-means|| (%zu rows)", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        closest[i] = INFINITY;

    /* The first candidate: a row drawn with probability proportional to its weight, as in
       k-means++. */
    uint64_t row;
    block_masses(context, NULL, block_local);
    if ((status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)) ||
        (status = sample_row(context, NULL, block_global,
                             kseg_rng_uniform(options->seed, stream, 0), &row, error)) ||
        (status = candidates_reserve(&set, 1, d, error)) ||
        (status = kmeans_fetch_row(context, row, set.values, error)))
        goto done;
    set.count = 1;

    size_t first = 0;
    for (int32_t round = 0;; round++) {
        /* Distances to the candidates drawn last, and the potential they leave. Without a kernel
           name they go through the preferred direct-difference kernel rather than the fit's,
           which may be expanded-form for Lloyd but not for the bound algorithms: the draws,
           and so the initial centers, must not depend on the algorithm. */
        const kseg_assign_kernel *kernel =
            options->kernel
                ? context->kernel
                : kseg_assign_kernel_select_direct(context->dtype, set.count - first, d);
        if ((status = nearer_pass(context, kernel, set.values + first * d,
                                  set.count - first, first, closest, nearest, block_local,
                                  error)) ||
            (status = kseg_gather_block_scalars(blocks, block_local, 1, block_global, error)))
            goto done;
        double potential = 0.0;
        for (size_t b = 0; b < blocks->n_blocks_global; b++)
            potential += block_global[b];
        /* A zero potential means every row of positive weight lies on a candidate. */
        if (round == options->init_rounds || !(potential > 0))
            break;
        first = set.count;
        if ((status = parallel_draw(context, closest, potential, oversampling,
                                    stream + ((uint64_t)(round + 1) << 40), drawn, block_counts,
                                    &set, error)))
            goto done;
        if (set.count == first)
            break;
    }

    if (set.count < k) {
        /* Too few candidates to choose k from (fewer distinct rows than k, or a tiny
           oversampling): k-means++ on the rows themselves handles both. */
        status = kmeans_init_plusplus(context, run, centers, error);
        goto done;
    }
    /* Each candidate weighs what the rows nearest to it weigh; the sum runs through the
       canonical reduction tree, so it is the same for any split of the rows. */
    weight = malloc(set.count * sizeof *weight);
    if (!weight) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for k-means|| weights");
        goto done;
    }
    candidate_weight_pass pass = {context, nearest};
    if ((status = kseg_vector_reducer_init(&reducer, blocks, set.count, error)) ||
        (status = kseg_reduce_vector(&reducer, blocks, set.count, candidate_weight_block, &pass,
                                     weight, error)))
        goto done;
    status = reduce_candidates(&set, weight, d, k, trials, options->seed,
                               KSEG_STREAM_INIT_PARALLEL_REDUCE + ((uint64_t)run << 8), centers,
                               error);
done:
    kseg_vector_reducer_destroy(&reducer);
    free(set.values);
    free(weight);
    free(closest);
    free(nearest);
    free(drawn);
    free(block_counts);
    free(block_local);
    free(block_global);
    return status;
}
