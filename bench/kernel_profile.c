/* bench/kernel_profile.c: where the time of one Lloyd iteration goes, for one (n, d, k). Times the
 * fused assign + accumulate pass of every assignment kernel this CPU supports, its assignment part
 * alone, a plain row-order accumulation, a plain read of the data, and a whole kseg_kmeans_fit
 * iteration, on in-cache (one block, repeated) and out-of-cache (all n rows) data, with T threads.
 * Built and run by bench/kernel_profile (see bench/README.md); not part of the test suite. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kseg/kmeans.h"

/* The driver's block size (engine/blocks.h): every pass below works a block at a time, as
 * lloyd_block does, zeroing the block's sums before the kernel adds into them. */
#define BLOCK_ROWS ((size_t)8192)

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count)
{
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

typedef enum pass_kind { PASS_FUSED, PASS_ASSIGN, PASS_ACCUMULATE, PASS_READ } pass_kind;

typedef struct setup {
    size_t n, d, k;
    int threads;
    const float *data;
    int32_t *labels;
    const double *centers;
} setup;

/* Per-thread buffers of one kernel. */
typedef struct thread_buffers {
    void *packed;
    void *scratch;
    double *sums;    /* [k x d] */
    double *weights; /* [k] */
    double sink;
} thread_buffers;

static void *aligned_or_die(size_t bytes)
{
    void *memory = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!memory) {
        fprintf(stderr, "kernel_profile: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    memset(memory, 0, (bytes + 63) / 64 * 64 + 64);
    return memory;
}

/* The reference's accumulation alone, labels given: the row-order double sums that every direct
 * kernel must reproduce, without any distance work. */
static void accumulate_rows(const float *rows, size_t count, size_t d, const int32_t *labels,
                            double *sums, double *weights)
{
    for (size_t i = 0; i < count; i++) {
        double *target = sums + (size_t)labels[i] * d;
        for (size_t j = 0; j < d; j++)
            target[j] += (double)rows[i * d + j];
        weights[labels[i]] += 1.0;
    }
}

/* A plain read of the rows (vector sum): the in-process bandwidth to compare with. */
static double read_rows(const float *rows, size_t count, size_t d)
{
    float partial[16] = {0};
    size_t total = count * d, i = 0;
    for (; i + 16 <= total; i += 16)
        for (int l = 0; l < 16; l++)
            partial[l] += rows[i + l];
    for (; i < total; i++)
        partial[0] += rows[i];
    double sum = 0;
    for (int l = 0; l < 16; l++)
        sum += partial[l];
    return sum;
}

/* One pass over `blocks` blocks; with in_cache every block is the first block of the data (the
 * same 8192 rows again, so they stay in the L2 cache), otherwise block b is rows b * 8192 on. */
static void run_pass(const setup *s, const kseg_assign_kernel *kernel, thread_buffers *buffers,
                     pass_kind kind, size_t blocks, int in_cache)
{
    size_t d = s->d, k = s->k;
#pragma omp parallel for schedule(static) num_threads(s->threads)
    for (size_t b = 0; b < blocks; b++) {
        thread_buffers *mine = &buffers[omp_get_thread_num()];
        size_t begin = in_cache ? (size_t)omp_get_thread_num() * BLOCK_ROWS : b * BLOCK_ROWS;
        size_t rows = begin + BLOCK_ROWS <= s->n ? BLOCK_ROWS : s->n - begin;
        const float *x = s->data + begin * d;
        memset(mine->sums, 0, k * d * sizeof(double));
        memset(mine->weights, 0, k * sizeof(double));
        kseg_block_sums sums = {mine->sums, mine->weights, 0.0, 0};
        switch (kind) {
        case PASS_FUSED:
            kernel->assign_accumulate(x, rows, d, NULL, mine->packed, k, s->labels + begin, &sums,
                                      mine->scratch);
            mine->sink += sums.inertia;
            break;
        case PASS_ASSIGN:
            kernel->assign(x, rows, d, mine->packed, k, s->labels + begin, NULL, mine->scratch);
            break;
        case PASS_ACCUMULATE:
            accumulate_rows(x, rows, d, s->labels + begin, mine->sums, mine->weights);
            break;
        case PASS_READ:
            mine->sink += read_rows(x, rows, d);
            break;
        }
        mine->sink += mine->sums[0];
    }
}

/* Nanoseconds per row of a pass over `rows` rows: the minimum over the repeats, which on a shared
 * machine is the measurement least disturbed by other processes (the median is kept for the
 * whole-fit figure only, where one run is long). */
static double time_pass(const setup *s, const kseg_assign_kernel *kernel, thread_buffers *buffers,
                        pass_kind kind, int in_cache, int repeats)
{
    /* In cache, about 2^22 row-center-feature products per thread and pass (at least one block),
       so that one pass takes a millisecond or so and the minimum over the repeats finds passes
       that no other process interrupted. */
    size_t per_thread = ((size_t)1 << 22) / (BLOCK_ROWS * s->k * s->d);
    size_t blocks = in_cache ? (per_thread > 0 ? per_thread : 1) * (size_t)s->threads
                             : (s->n + BLOCK_ROWS - 1) / BLOCK_ROWS;
    size_t rows = in_cache ? blocks * BLOCK_ROWS : s->n;
    double times[64];
    run_pass(s, kernel, buffers, kind, blocks, in_cache); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double start = omp_get_wtime();
        run_pass(s, kernel, buffers, kind, blocks, in_cache);
        times[r] = omp_get_wtime() - start;
    }
    double best = times[0];
    for (int r = 1; r < repeats; r++)
        best = times[r] < best ? times[r] : best;
    return best / (double)rows * 1e9;
}

/* Median seconds per iteration of a fixed-work fit (given centers, tol 0, 20 iterations), from the
 * fit's own per-iteration statistics (the first iteration excluded). */
static double time_fit(const setup *s, const char *kernel_name, double *kernel_ns,
                       double *fastest)
{
    kseg_matrix matrix = {s->data, KSEG_FLOAT32, s->n, s->d};
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    options.n_clusters = (int64_t)s->k;
    options.init = KSEG_INIT_GIVEN;
    options.init_centers = s->centers;
    options.max_iter = 20;
    options.tol = 0;
    options.n_threads = s->threads;
    options.kernel = kernel_name;
    kseg_kmeans_result result;
    kseg_kmeans_result_init(&result);
    kseg_error error;
    if (kseg_kmeans_fit(&matrix, &options, &result, &error) != 0) {
        fprintf(stderr, "kernel_profile: fit failed: %s\n", error.message);
        exit(1);
    }
    double seconds[32];
    int count = 0;
    for (int32_t i = 1; i < result.n_iter && count < 32; i++)
        seconds[count++] = result.iterations[i].seconds;
    double value = count ? median(seconds, count) : 0;
    *fastest = count ? seconds[0] : 0; /* sorted by median() */
    *kernel_ns = value / (double)s->n * 1e9;
    kseg_kmeans_result_destroy(&result);
    return value;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: kernel_profile N D K [THREADS [REPEATS [KERNEL]]] (KSEG_PROFILE_NO_FIT=1: no fit)\n");
        return 2;
    }
    setup s;
    s.n = (size_t)strtod(argv[1], NULL);
    s.d = (size_t)strtoul(argv[2], NULL, 10);
    s.k = (size_t)strtoul(argv[3], NULL, 10);
    s.threads = argc > 4 ? atoi(argv[4]) : 2;
    int repeats = argc > 5 ? atoi(argv[5]) : 5;
    const char *only = argc > 6 ? argv[6] : NULL;
    if (s.n < BLOCK_ROWS * (size_t)s.threads || s.d < 1 || s.k < 1 || s.threads < 1 ||
        repeats < 1 || repeats > 64) {
        fprintf(stderr, "kernel_profile: need N >= 8192 * THREADS, D, K, THREADS >= 1, REPEATS in "
                        "1..64\n");
        return 2;
    }
    size_t n = s.n, d = s.d, k = s.k;
    float *data = aligned_or_die(n * d * sizeof(float));
    /* Uniform [0, 1) rows from a fixed xorshift stream, first touched by the readers' schedule. */
#pragma omp parallel for schedule(static) num_threads(s.threads)
    for (size_t b = 0; b < (n + BLOCK_ROWS - 1) / BLOCK_ROWS; b++) {
        uint64_t state = 0x9E3779B97F4A7C15ull * (b + 1);
        size_t end = (b + 1) * BLOCK_ROWS < n ? (b + 1) * BLOCK_ROWS : n;
        for (size_t i = b * BLOCK_ROWS * d; i < end * d; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data[i] = (float)(state >> 40) * (1.0f / 16777216.0f);
        }
    }
    double *centers = aligned_or_die(k * d * sizeof(double));
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++)
            centers[c * d + j] = data[(c * 997 % n) * d + j];
    s.data = data;
    s.centers = centers;
    s.labels = aligned_or_die(n * sizeof(int32_t));

    printf("n=%zu d=%zu k=%zu threads=%d repeats=%d; ns per row (all threads together)\n", n, d,
           k, s.threads, repeats);
    printf("%-15s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "kernel", "fusedL2", "asgnL2",
           "fusedMem", "asgnMem", "fit/it", "fit ns", "fitmin", "accL2", "accMem");
    const kseg_assign_kernel *kernels[16];
    size_t count = kseg_assign_kernel_list(KSEG_FLOAT32, kernels, 16);
    thread_buffers buffers[64];
    for (size_t i = 0; i < count; i++) {
        const kseg_assign_kernel *kernel = kernels[i];
        if (only && strcmp(only, kernel->name) != 0)
            continue;
        if (!only && strcmp(kernel->name, "reference") == 0 && n * k * d > (size_t)1e9)
            continue; /* too slow to be worth it at this size unless asked for */
        for (int t = 0; t < s.threads; t++) {
            buffers[t].packed = aligned_or_die(kernel->packed_size(k, d));
            buffers[t].scratch = aligned_or_die(kernel->scratch_size(k, d));
            buffers[t].sums = aligned_or_die(k * d * sizeof(double));
            buffers[t].weights = aligned_or_die(k * sizeof(double));
            buffers[t].sink = 0;
            double shift[1024] = {0};
            kernel->pack(centers, k, d, d <= 1024 ? shift : NULL, buffers[t].packed);
        }
        double fused_cache = time_pass(&s, kernel, buffers, PASS_FUSED, 1, repeats);
        double assign_cache = time_pass(&s, kernel, buffers, PASS_ASSIGN, 1, repeats);
        /* KSEG_PROFILE_CACHE_ONLY=1 skips the out-of-cache passes (for sweeps over shapes). */
        int cache_only = getenv("KSEG_PROFILE_CACHE_ONLY") != NULL;
        double fused_memory =
            cache_only ? 0 : time_pass(&s, kernel, buffers, PASS_FUSED, 0, repeats);
        double assign_memory =
            cache_only ? 0 : time_pass(&s, kernel, buffers, PASS_ASSIGN, 0, repeats);
        double accumulate_cache = time_pass(&s, kernel, buffers, PASS_ACCUMULATE, 1, repeats);
        double accumulate_memory =
            cache_only ? 0 : time_pass(&s, kernel, buffers, PASS_ACCUMULATE, 0, repeats);
        double fit_ns = 0, fit = 0, fit_fastest = 0;
        if (!getenv("KSEG_PROFILE_NO_FIT"))
            fit = time_fit(&s, kernel->name, &fit_ns, &fit_fastest);
        printf("%-15s %8.3f %8.3f %8.3f %8.3f %8.5f %8.3f %8.5f %8.3f %8.3f\n", kernel->name,
               fused_cache, assign_cache, fused_memory, assign_memory, fit, fit_ns, fit_fastest,
               accumulate_cache, accumulate_memory);
        fflush(stdout);
        for (int t = 0; t < s.threads; t++) {
            free(buffers[t].packed);
            free(buffers[t].scratch);
            free(buffers[t].sums);
            free(buffers[t].weights);
        }
    }
    for (int t = 0; t < s.threads; t++) {
        buffers[t].sums = aligned_or_die(k * d * sizeof(double));
        buffers[t].weights = aligned_or_die(k * sizeof(double));
    }
    double read_cache = time_pass(&s, NULL, buffers, PASS_READ, 1, repeats);
    double read_memory = time_pass(&s, NULL, buffers, PASS_READ, 0, repeats);
    printf("plain read: L2 %.3f ns/row, memory %.3f ns/row (%.1f GB/s)\n", read_cache,
           read_memory, (double)(d * sizeof(float)) / read_memory);
    double sink = 0;
    for (int t = 0; t < s.threads; t++)
        sink += buffers[t].sink;
    fprintf(stderr, "(checksum %g)\n", sink);
    return 0;
}
