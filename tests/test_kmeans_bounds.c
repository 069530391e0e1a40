/* The exact bound algorithms (Hamerly, Elkan, Yinyang) against Lloyd from the same
 * initialization: labels, centroids, inertia and every per-iteration statistic bitwise equal, on
 * data built to stress the rounding margins (ties, duplicates, d = 1, k = 1, k = n), with every
 * direct kernel, float32 and float64, at 1, 2 and 3 threads; plus the bounds' memory limit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kseg/kseg.h"
#include "kmeans_test_support.h"

typedef enum shape { BLOBS, UNIFORM, GRID } shape;

/* Rows of one of three kinds, as double, then in dtype: BLOBS of different widths with every
   5th row snapped to a coarse grid and every 7th a copy of the previous row (rows far from every
   center, rows between two, exact ties once centers land on grid points); UNIFORM in [0, 10)^d;
   GRID: integer points of a 4^d grid, so most rows are duplicates and equidistant from several
   centers. */
static void *make_data(shape kind, size_t n, size_t d, size_t blobs, kseg_dtype dtype,
                       uint64_t seed)
{
    uint64_t state = seed;
    double *centers = malloc((blobs ? blobs : 1) * d * sizeof *centers);
    for (size_t i = 0; i < blobs * d; i++)
        centers[i] = 10.0 * uniform(&state);
    double *rows = malloc(n * d * sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        size_t blob = blobs ? splitmix(&state) % blobs : 0;
        double width = 0.2 + 1.5 * (double)(blob % 3);
        for (size_t j = 0; j < d; j++) {
            double value;
            if (kind == UNIFORM)
                value = 10.0 * uniform(&state);
            else if (kind == GRID)
                value = (double)(splitmix(&state) % 4);
            else {
                value = centers[blob * d + j] + width * gaussian(&state);
                if (i % 5 == 0)
                    value = floor(value / 2.0) * 2.0;
            }
            rows[i * d + j] = value;
        }
        if (kind == BLOBS && i % 7 == 0 && i > 0)
            memcpy(rows + i * d, rows + (i - 1) * d, d * sizeof *rows);
    }
    free(centers);
    if (dtype == KSEG_FLOAT64)
        return rows;
    float *out = malloc(n * d * sizeof *out);
    for (size_t i = 0; i < n * d; i++)
        out[i] = (float)rows[i];
    free(rows);
    return out;
}

/* Everything but the distance counts and the times bitwise equal; computed + skipped of the
   bound algorithm equal to Lloyd's n * k in every iteration. */
static void assert_same_as_lloyd(const kseg_kmeans_result *lloyd, const kseg_kmeans_result *other,
                                 const char *what)
{
    cr_assert_eq(lloyd->n_iter, other->n_iter, "%s: iterations differ", what);
    cr_assert(memcmp(&lloyd->inertia, &other->inertia, sizeof lloyd->inertia) == 0,
              "%s: inertia differs (%.17g vs %.17g)", what, lloyd->inertia, other->inertia);
    cr_assert(memcmp(lloyd->centroids, other->centroids,
                     lloyd->n_clusters * lloyd->n_features * sizeof *lloyd->centroids) == 0,
              "%s: centroids differ", what);
    size_t differ = 0;
    for (size_t i = 0; i < lloyd->n_rows; i++)
        differ += lloyd->labels[i] != other->labels[i];
    cr_assert_eq(differ, 0, "%s: %zu labels differ", what, differ);
    cr_assert_eq(lloyd->convergence, other->convergence, "%s: convergence differs", what);
    cr_assert_eq(lloyd->best_init, other->best_init, "%s: winning run differs", what);
    for (int32_t i = 0; i < lloyd->n_iter; i++) {
        const kseg_iteration_stats *x = &lloyd->iterations[i], *y = &other->iterations[i];
        cr_assert(memcmp(&x->objective, &y->objective, sizeof x->objective) == 0 &&
                      memcmp(&x->center_shift, &y->center_shift, sizeof x->center_shift) == 0 &&
                      x->changed_labels == y->changed_labels &&
                      x->empty_repairs == y->empty_repairs,
                  "%s: statistics of iteration %d differ", what, i + 1);
        cr_assert_eq(y->distances_computed + y->distances_skipped, x->distances_computed,
                     "%s, iteration %d: computed + skipped must be Lloyd's n * k", what, i + 1);
        cr_assert_eq(x->distances_skipped, 0);
    }
}

static const kseg_kmeans_algorithm bound_algorithms[] = {
    KSEG_ALGORITHM_HAMERLY, KSEG_ALGORITHM_ELKAN, KSEG_ALGORITHM_YINYANG};

typedef struct bound_case {
    shape kind;
    size_t n, d, k, blobs;
    kseg_dtype dtype;
    int weighted, random_init;
    double tol;
} bound_case;

/* Lloyd at one thread, then each bound algorithm at 1, 2 and 3 threads, with kernel (NULL =
   automatic). Returns the distances the bound algorithms skipped, summed. */
static int64_t check_case(const bound_case *c, const char *kernel, uint64_t seed)
{
    void *x = make_data(c->kind, c->n, c->d, c->blobs, c->dtype, seed);
    kseg_matrix m = view(x, c->dtype, c->n, c->d);
    double *weights = malloc(c->n * sizeof *weights);
    uint64_t state = seed + 17;
    for (size_t i = 0; i < c->n; i++)
        weights[i] = i % 11 == 0 ? 0.0 : 0.25 + 2.0 * uniform(&state);
    weights[0] = 1.0; /* a positive sum even for tiny n */
    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    o.n_clusters = (int64_t)c->k;
    o.seed = seed;
    o.sample_weight = c->weighted ? weights : NULL;
    o.init = c->random_init ? KSEG_INIT_RANDOM : KSEG_INIT_KMEANS_PLUSPLUS;
    o.n_init = c->random_init ? 2 : 1;
    o.tol = c->tol;
    o.n_threads = 1;
    /* Without a kernel name the bound algorithms take the fastest direct-difference kernel,
       while Lloyd may take an expanded-form one that agrees only to rounding; Lloyd therefore
       runs with the kernel a bound algorithm chose, and the bound algorithms choose again. */
    char direct_kernel[32];
    if (!kernel) {
        kseg_kmeans_result probe;
        o.algorithm = KSEG_ALGORITHM_HAMERLY;
        fit_or_fail(&m, &o, &probe);
        snprintf(direct_kernel, sizeof direct_kernel, "%s", probe.kernel);
        kseg_kmeans_result_destroy(&probe);
        o.algorithm = KSEG_ALGORITHM_LLOYD;
    }
    o.kernel = kernel ? kernel : direct_kernel;
    kseg_kmeans_result lloyd;
    fit_or_fail(&m, &o, &lloyd);
    o.kernel = kernel;
    cr_assert_str_eq(lloyd.algorithm, "lloyd");
    cr_assert_eq(lloyd.bounds_memory, 0);
    int64_t skipped = 0;
    for (size_t a = 0; a < sizeof bound_algorithms / sizeof bound_algorithms[0]; a++)
        for (int threads = 1; threads <= 3; threads++) {
            char what[160];
            snprintf(what, sizeof what, "%s, kernel %s, n %zu d %zu k %zu float%d, %d threads",
                     kseg_kmeans_algorithm_name(bound_algorithms[a]), lloyd.kernel, c->n, c->d,
                     c->k, c->dtype == KSEG_FLOAT32 ? 32 : 64, threads);
            o.algorithm = bound_algorithms[a];
            o.n_threads = threads;
            kseg_kmeans_result r;
            fit_or_fail(&m, &o, &r);
            cr_assert_str_eq(r.algorithm, kseg_kmeans_algorithm_name(bound_algorithms[a]), "%s",
                             what);
            cr_assert_str_eq(r.kernel, lloyd.kernel, "%s", what);
            cr_assert_eq(r.bounds_memory,
                         kseg_kmeans_algorithm_memory(bound_algorithms[a], c->n, c->k, c->d));
            assert_same_as_lloyd(&lloyd, &r, what);
            for (int32_t i = 0; i < r.n_iter; i++)
                skipped += r.iterations[i].distances_skipped;
            kseg_kmeans_result_destroy(&r);
        }
    o.algorithm = KSEG_ALGORITHM_LLOYD;
    kseg_kmeans_result_destroy(&lloyd);
    free(weights);
    free(x);
    return skipped;
}

Test(kmeans_bounds, equal_lloyd_bitwise_on_stress_data, .timeout = 600)
{
    /* n = 10007 is not a multiple of the 8192-row block; k >= 20 gives Yinyang several groups. */
    const bound_case cases[] = {
        {BLOBS, 10007, 2, 7, 5, KSEG_FLOAT64, 1, 0, 1e-4},
        {BLOBS, 10007, 3, 40, 12, KSEG_FLOAT32, 1, 1, 0.0},
        {BLOBS, 10007, 8, 25, 20, KSEG_FLOAT32, 0, 0, 0.0},
        {BLOBS, 12007, 13, 64, 30, KSEG_FLOAT64, 1, 0, 1e-4},
        {UNIFORM, 10007, 5, 30, 0, KSEG_FLOAT32, 0, 0, 0.0},
        {UNIFORM, 9001, 4, 21, 0, KSEG_FLOAT64, 1, 1, 0.0},
        {GRID, 10007, 3, 12, 0, KSEG_FLOAT32, 0, 0, 0.0},
        {GRID, 10007, 2, 22, 0, KSEG_FLOAT64, 1, 0, 0.0},
        {BLOBS, 10007, 1, 9, 6, KSEG_FLOAT32, 0, 0, 0.0},
        {UNIFORM, 10007, 1, 30, 0, KSEG_FLOAT64, 1, 0, 0.0},
        {BLOBS, 10007, 6, 1, 3, KSEG_FLOAT32, 1, 0, 0.0},
        {BLOBS, 40, 3, 40, 4, KSEG_FLOAT32, 0, 0, 0.0},   /* k = n */
        {GRID, 25, 2, 25, 0, KSEG_FLOAT64, 0, 1, 0.0},    /* k = n with duplicate rows */
        {BLOBS, 10007, 32, 48, 16, KSEG_FLOAT32, 1, 0, 1e-4},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++)
        check_case(&cases[t], NULL, 1000 + t);
}

Test(kmeans_bounds, equal_lloyd_bitwise_with_every_direct_kernel, .timeout = 600)
{
    for (int single = 0; single <= 1; single++) {
        kseg_dtype dtype = single ? KSEG_FLOAT32 : KSEG_FLOAT64;
        const kseg_assign_kernel *kernels[16];
        size_t count = kseg_assign_kernel_list(dtype, kernels, 16);
        for (size_t i = 0; i < count; i++) {
            if (kernels[i]->expanded_form)
                continue;
            const bound_case c = {BLOBS, 16411, 5 + 6 * (size_t)single, 23, 9, dtype, 1, 0, 0.0};
            check_case(&c, kernels[i]->name, 77 + i);
        }
    }
}

Test(kmeans_bounds, skip_distances_on_clustered_data, .timeout = 300)
{
    const size_t n = 30000, d = 4, k = 32;
    float *x = make_data(BLOBS, n, d, k, KSEG_FLOAT32, 5);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    for (size_t a = 0; a < sizeof bound_algorithms / sizeof bound_algorithms[0]; a++) {
        kseg_kmeans_options o;
        kseg_kmeans_options_defaults(&o);
        o.n_clusters = (int64_t)k;
        o.tol = 0;
        o.algorithm = bound_algorithms[a];
        kseg_kmeans_result r;
        fit_or_fail(&m, &o, &r);
        const char *name = kseg_kmeans_algorithm_name(bound_algorithms[a]);
        cr_assert_eq(r.iterations[0].distances_computed, (int64_t)(n * k),
                     "%s: the first pass has no bounds yet", name);
        cr_assert_gt(r.n_iter, 2, "%s", name);
        int64_t computed = 0, skipped = 0;
        for (int32_t i = 1; i < r.n_iter; i++) {
            computed += r.iterations[i].distances_computed;
            skipped += r.iterations[i].distances_skipped;
        }
        /* Clustered data: after the first pass most comparisons are decided by the bounds. */
        cr_assert_gt(skipped, 2 * computed, "%s skipped %lld, computed %lld", name,
                     (long long)skipped, (long long)computed);
        kseg_kmeans_result_destroy(&r);
    }
    free(x);
}

Test(kmeans_bounds, memory_is_stated_and_limited)
{
    const size_t n = 5000, d = 3, k = 30;
    float *x = make_data(BLOBS, n, d, 6, KSEG_FLOAT32, 9);
    kseg_matrix m = view(x, KSEG_FLOAT32, n, d);
    uint64_t hamerly = kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_HAMERLY, n, k, d);
    uint64_t elkan = kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_ELKAN, n, k, d);
    uint64_t yinyang = kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_YINYANG, n, k, d);
    cr_assert_eq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_LLOYD, n, k, d), 0);
    cr_assert_geq(elkan, n * k * sizeof(float) + k * k * sizeof(float));
    cr_assert_geq(yinyang, n * (k / 10) * sizeof(float));
    cr_assert_geq(hamerly, n * sizeof(double));
    cr_assert_lt(yinyang, elkan);
    cr_assert_eq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_AUTO, n, k, d), elkan,
                 "AUTO counts as the largest it may pick");
    cr_assert_eq(kseg_kmeans_algorithm_memory(KSEG_ALGORITHM_ELKAN, SIZE_MAX / 2, 1 << 20, 8),
                 UINT64_MAX, "overflow is reported, not wrapped");

    kseg_kmeans_options o;
    kseg_kmeans_options_defaults(&o);
    cr_assert_eq(o.bounds_memory_limit, 0);
    o.n_clusters = (int64_t)k;
    o.algorithm = KSEG_ALGORITHM_ELKAN;
    o.bounds_memory_limit = elkan - 1;
    kseg_kmeans_result r;
    kseg_error e;
    kseg_error_clear(&e);
    cr_assert_eq(kseg_kmeans_fit(&m, &o, &r, &e), KSEG_ETOOBIG);
    cr_assert(strstr(e.message, "the elkan bounds need") && strstr(e.message, "limit is"),
              "message: %s", e.message);
    cr_assert_null(r.centroids);
    kseg_kmeans_algorithm planned;
    uint64_t bytes;
    kseg_error_clear(&e);
    cr_assert_eq(kseg_kmeans_plan(&m, &o, &planned, &bytes, &e), KSEG_ETOOBIG,
                 "plan refuses as the fit does");

    /* At the limit it runs, and the plan states what the result records. */
    o.bounds_memory_limit = elkan;
    cr_assert_eq(kseg_kmeans_plan(&m, &o, &planned, &bytes, &e), 0, "%s", e.message);
    cr_assert_eq(planned, KSEG_ALGORITHM_ELKAN);
    cr_assert_eq(bytes, elkan);
    fit_or_fail(&m, &o, &r);
    cr_assert_str_eq(r.algorithm, "elkan");
    cr_assert_eq(r.bounds_memory, elkan);
    kseg_kmeans_result_destroy(&r);

    /* Lloyd needs no bounds: any limit is fine. */
    o.algorithm = KSEG_ALGORITHM_LLOYD;
    o.bounds_memory_limit = 1;
    fit_or_fail(&m, &o, &r);
    cr_assert_eq(r.bounds_memory, 0);
    kseg_kmeans_result_destroy(&r);

    /* AUTO under a limit below every bound algorithm falls back to Lloyd, never fails. */
    o.algorithm = KSEG_ALGORITHM_AUTO;
    o.kernel = "reference";
    cr_assert_eq(kseg_kmeans_plan(&m, &o, &planned, &bytes, &e), 0, "%s", e.message);
    cr_assert_eq(planned, KSEG_ALGORITHM_LLOYD);
    fit_or_fail(&m, &o, &r);
    cr_assert_str_eq(r.algorithm, "lloyd");
    kseg_kmeans_result_destroy(&r);
    /* With room it takes a bound algorithm for the scalar kernel, and says which. */
    o.bounds_memory_limit = 0;
    cr_assert_eq(kseg_kmeans_plan(&m, &o, &planned, &bytes, &e), 0, "%s", e.message);
    cr_assert_neq(planned, KSEG_ALGORITHM_LLOYD);
    cr_assert_eq(bytes, kseg_kmeans_algorithm_memory(planned, n, k, d));
    fit_or_fail(&m, &o, &r);
    cr_assert_str_eq(r.algorithm, kseg_kmeans_algorithm_name(planned));
    kseg_kmeans_result_destroy(&r);
    free(x);
}

Test(kmeans_bounds, names_parse)
{
    kseg_kmeans_algorithm a;
    cr_assert_eq(kseg_kmeans_algorithm_parse("elkan", &a), 0);
    cr_assert_eq(a, KSEG_ALGORITHM_ELKAN);
    cr_assert_eq(kseg_kmeans_algorithm_parse("yinyang", &a), 0);
    cr_assert_eq(a, KSEG_ALGORITHM_YINYANG);
    cr_assert_eq(kseg_kmeans_algorithm_parse("Elkan", &a), KSEG_EINVAL);
    cr_assert_str_eq(kseg_kmeans_algorithm_name(KSEG_ALGORITHM_ELKAN), "elkan");
    cr_assert_str_eq(kseg_kmeans_algorithm_name(KSEG_ALGORITHM_YINYANG), "yinyang");
    cr_assert_eq((int)KSEG_ALGORITHM_ELKAN, 3);
    cr_assert_eq((int)KSEG_ALGORITHM_YINYANG, 4);
}
