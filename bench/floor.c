/* bench/floor.c: measures this machine's two hardware limits for one Lloyd iteration, the read
 * bandwidth (a large array summed by T threads) and the sgemm peak (OpenBLAS cblas_sgemm, T threads),
 * and prints the per-iteration floor max(n·d·4 / bandwidth, 2·n·k·d / peak) for each (n, d, k).
 * Built and run by bench/floor (see bench/README.md); output is text, or one JSON object with --json. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS' own prototype; declared here because the Debian cblas.h of some versions hides it. */
void openblas_set_num_threads(int num_threads);

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count) {
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

/* Sums the array with T threads, each over its own contiguous half (static schedule), which is
 * how kseg's assignment pass reads the rows. Several independent accumulators per thread let the
 * compiler vectorize (-O3 -march=native, -ffast-math on this file only to allow reassociation)
 * so that the loop is limited by memory, not by the add latency. */
static double read_bandwidth(size_t count, int threads, int repeats, double *checksum) {
    float *data = aligned_alloc(64, count * sizeof(float));
    if (!data) {
        fprintf(stderr, "floor: cannot allocate %zu bytes\n", count * sizeof(float));
        exit(1);
    }
    /* First touch by the same static schedule, so that pages sit where the readers are. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < count; i++) data[i] = (float)(i & 1023) * 0.001f;
    double *times = malloc((size_t)repeats * sizeof *times);
    double total = 0.0;
    for (int r = 0; r < repeats + 1; r++) {
        double sum = 0.0;
        double start = now_seconds();
#pragma omp parallel for schedule(static) reduction(+ : sum) num_threads(threads)
        for (size_t i = 0; i < count; i++) sum += data[i];
        double elapsed = now_seconds() - start;
        if (r > 0) times[r - 1] = elapsed; /* the first pass only warms the TLB and the clocks */
        total += sum;
    }
    *checksum = total;
    double seconds = median(times, repeats);
    free(times);
    free(data);
    return (double)(count * sizeof(float)) / seconds;
}

/* sgemm C = A·Bᵀ on square matrices, like a distance tile X·Cᵀ; size large enough that OpenBLAS
 * runs at its peak rather than at its packing overhead. */
static double sgemm_peak(int size, int threads, int repeats) {
    openblas_set_num_threads(threads);
    size_t elements = (size_t)size * (size_t)size;
    float *a = aligned_alloc(64, elements * sizeof(float));
    float *b = aligned_alloc(64, elements * sizeof(float));
    float *c = aligned_alloc(64, elements * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "floor: cannot allocate the sgemm matrices\n");
        exit(1);
    }
    for (size_t i = 0; i < elements; i++) {
        a[i] = (float)(i % 97) * 0.01f;
        b[i] = (float)(i % 89) * 0.01f;
    }
    double *times = malloc((size_t)repeats * sizeof *times);
    for (int r = 0; r < repeats + 1; r++) {
        double start = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, size, size, size, 1.0f, a, size, b, size, 0.0f, c,
                    size);
        double elapsed = now_seconds() - start;
        if (r > 0) times[r - 1] = elapsed;
    }
    double seconds = median(times, repeats);
    free(times);
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)size * (double)size * (double)size / seconds;
}

static void usage(void) {
    fprintf(stderr,
            "usage: floor [--threads T] [--gib G] [--gemm-size S] [--repeats R] [--json] [n,d,k ...]\n"
            "defaults: 2 threads, 2 GiB array, S = 4096, 7 repeats, the five issue-5 configs\n");
    exit(2);
}

int main(int argc, char **argv) {
    int threads = 2, gemm_size = 4096, repeats = 7, json = 0;
    double gib = 2.0;
    static const char *default_configs[] = {"1e6,8,8", "1e6,16,64", "1e7,8,8", "1e6,64,256", "1e7,16,16"};
    const char *configs[64];
    int config_count = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gib") && i + 1 < argc) gib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--gemm-size") && i + 1 < argc) gemm_size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') usage();
        else if (config_count < 64) configs[config_count++] = argv[i];
    }
    if (threads < 1 || gemm_size < 64 || repeats < 1 || gib <= 0.0) usage();
    if (config_count == 0) {
        for (int i = 0; i < 5; i++) configs[i] = default_configs[i];
        config_count = 5;
    }

    size_t count = (size_t)(gib * 1024.0 * 1024.0 * 1024.0 / sizeof(float));
    double checksum = 0.0;
    double bandwidth = read_bandwidth(count, threads, repeats, &checksum);
    double peak = sgemm_peak(gemm_size, threads, repeats);

    if (json) {
        printf("{\"threads\": %d, \"array_gib\": %g, \"gemm_size\": %d, \"repeats\": %d, "
               "\"read_bandwidth_gb_s\": %.3f, \"sgemm_gflop_s\": %.3f, \"configs\": [",
               threads, gib, gemm_size, repeats, bandwidth / 1e9, peak / 1e9);
    } else {
        printf("threads %d, array %.2f GiB, sgemm %d^3, median of %d (checksum %.3g)\n", threads, gib, gemm_size,
               repeats, checksum);
        printf("read bandwidth  %.2f GB/s\n", bandwidth / 1e9);
        printf("sgemm peak      %.1f GFLOP/s\n", peak / 1e9);
        printf("%-12s %4s %5s %14s %14s %14s %s\n", "n", "d", "k", "read s", "flop s", "floor s/iter", "bound");
    }
    for (int i = 0; i < config_count; i++) {
        double n, d, k;
        if (sscanf(configs[i], "%lf,%lf,%lf", &n, &d, &k) != 3) usage();
        double read_s = n * d * 4.0 / bandwidth;
        double flop_s = 2.0 * n * k * d / peak;
        double floor_s = read_s > flop_s ? read_s : flop_s;
        const char *bound = read_s > flop_s ? "memory" : "compute";
        if (json)
            printf("%s{\"n\": %.0f, \"d\": %.0f, \"k\": %.0f, \"read_s\": %.6g, \"flop_s\": %.6g, "
                   "\"floor_s\": %.6g, \"bound\": \"%s\"}",
                   i ? ", " : "", n, d, k, read_s, flop_s, floor_s, bound);
        else
            printf("%-12.0f %4.0f %5.0f %14.6f %14.6f %14.6f %s\n", n, d, k, read_s, flop_s, floor_s, bound);
    }
    if (json) printf("]}\n");
    return 0;
}
