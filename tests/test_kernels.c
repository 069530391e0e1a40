/* Tests of the assignment kernels against the reference kernels: every kernel this CPU supports, in
 * float32 and float64, over shapes that exercise the tails of every vector width. Direct kernels
 * must agree bitwise; the expanded-form GEMM kernel must agree to rounding. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define MAX_KERNELS 16

/* ------------------------------------------------------------------ deterministic data */

/* xorshift64*: a small generator so that the tests depend on no engine code. */
typedef struct test_rng {
    uint64_t state;
} test_rng;

static uint64_t rng_next(test_rng *rng)
{
    rng->state ^= rng->state >> 12;
    rng->state ^= rng->state << 25;
    rng->state ^= rng->state >> 27;
    return rng->state * UINT64_C(2685821657736338717);
}

/* Uniform in [-1, 1). */
static double rng_uniform(test_rng *rng)
{
    return (double)(rng_next(rng) >> 11) * 0x1.0p-52 - 1.0;
}

static size_t rng_below(test_rng *rng, size_t n)
{
    return (size_t)(rng_next(rng) % n);
}

static test_rng rng_seeded(uint64_t seed)
{
    test_rng rng = {seed * UINT64_C(0x9E3779B97F4A7C15) + 1};
    for (int i = 0; i < 4; i++)
        rng_next(&rng);
    return rng;
}

/* ------------------------------------------------------------------ buffers */

/* Packed and scratch buffers are allocated with their exact size (64-byte aligned), so that the
 * address sanitizer catches any access past what packed_size and scratch_size promised. */
static void *aligned_buffer(size_t bytes)
{
    void *buffer = NULL;
    cr_assert_eq(posix_memalign(&buffer, 64, bytes ? bytes : 1), 0, "allocation failed");
    return buffer;
}

static void *checked_calloc(size_t count, size_t size)
{
    void *buffer = calloc(count ? count : 1, size ? size : 1);
    cr_assert_not_null(buffer, "allocation failed");
    return buffer;
}

static size_t dtype_bytes(kseg_dtype dtype)
{
    return dtype == KSEG_FLOAT32 ? sizeof(float) : sizeof(double);
}

static double element(const void *x, kseg_dtype dtype, size_t i)
{
    return dtype == KSEG_FLOAT32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

static void set_element(void *x, kseg_dtype dtype, size_t i, double value)
{
    if (dtype == KSEG_FLOAT32)
        ((float *)x)[i] = (float)value;
    else
        ((double *)x)[i] = value;
}

/* Centers as the kernels see them: rounded to the element type, kept in double. */
static double center_element(const double *centers, kseg_dtype dtype, size_t i)
{
    return dtype == KSEG_FLOAT32 ? (double)(float)centers[i] : centers[i];
}

/* ------------------------------------------------------------------ one problem */

typedef struct problem {
    kseg_dtype dtype;
    size_t rows, d, k;
    void *x;            /* [rows x d] of the element type */
    double *centers;    /* [k x d] */
    double *shift;      /* [d]: the data mean */
    double *weights;    /* [rows] */
    int32_t *prior;     /* [rows]: labels from a previous pass, partly equal to the new ones */
    double *initial;    /* [k x d]: non-zero starting sums, to check that kernels add to them */
} problem;

/* Random rows around an offset (so that centering matters to the GEMM kernel), centers taken partly
 * from the rows themselves (distance exactly zero) and partly at random. With integer_grid the
 * values are small integers, which makes many distances tie exactly. */
static problem problem_make(kseg_dtype dtype, size_t rows, size_t d, size_t k, uint64_t seed,
                            int integer_grid)
{
    test_rng rng = rng_seeded(seed);
    problem p = {dtype, rows, d, k, NULL, NULL, NULL, NULL, NULL, NULL};
    p.x = checked_calloc(rows * d, dtype_bytes(dtype));
    p.centers = checked_calloc(k * d, sizeof(double));
    p.shift = checked_calloc(d, sizeof(double));
    p.weights = checked_calloc(rows, sizeof(double));
    p.prior = checked_calloc(rows, sizeof(int32_t));
    p.initial = checked_calloc(k * d, sizeof(double));
    double offset = integer_grid ? 0.0 : 3.0 * rng_uniform(&rng);
    for (size_t i = 0; i < rows * d; i++) {
        double value = integer_grid ? (double)((int)rng_below(&rng, 5) - 2)
                                    : offset + rng_uniform(&rng) * (1.0 + (double)(i % d % 3));
        set_element(p.x, dtype, i, value);
    }
    for (size_t c = 0; c < k; c++)
        for (size_t j = 0; j < d; j++) {
            double value;
            if (c % 3 == 0)
                value = element(p.x, dtype, rng_below(&rng, rows) * d + j);
            else if (integer_grid)
                value = (double)((int)rng_below(&rng, 5) - 2);
            else
                value = offset + 1.5 * rng_uniform(&rng);
            p.centers[c * d + j] = value;
        }
    if (k > 3 && !integer_grid) /* a center that is exactly a row */
        for (size_t j = 0; j < d; j++)
            p.centers[1 * d + j] = element(p.x, dtype, (rows / 2) * d + j);
    for (size_t j = 0; j < d; j++) {
        double sum = 0.0;
        for (size_t i = 0; i < rows; i++)
            sum += element(p.x, dtype, i * d + j);
        p.shift[j] = integer_grid ? 0.0 : sum / (double)rows;
    }
    for (size_t i = 0; i < rows; i++) {
        p.weights[i] = 0.25 + (double)rng_below(&rng, 1000) / 317.0;
        p.prior[i] = (int32_t)rng_below(&rng, k + 1) - 1; /* -1 .. k-1 */
    }
    for (size_t i = 0; i < k * d; i++)
        p.initial[i] = rng_uniform(&rng);
    return p;
}

static void problem_free(problem *p)
{
    free(p->x);
    free(p->centers);
    free(p->shift);
    free(p->weights);
    free(p->prior);
    free(p->initial);
}

/* ------------------------------------------------------------------ running a kernel */

typedef struct result {
    int32_t *labels;      /* from assign */
    double *distances;    /* from assign */
    int32_t *acc_labels;  /* from assign_accumulate */
    double *sums;
    double *weight_sums;
    double inertia;
    int64_t changed;
} result;

static void result_free(result *r)
{
    free(r->labels);
    free(r->distances);
    free(r->acc_labels);
    free(r->sums);
    free(r->weight_sums);
}

/* Runs assign and assign_accumulate of kernel on p. With weighted the rows carry p->weights; with
 * prior_from (not NULL) the labels passed to the fused pass are prior_from's labels for even rows
 * and p->prior for odd rows, so that some rows change and some do not. The rows are split into
 * two calls at split (0 for one call), as a driver splits them into blocks. */
static result run_kernel(const kseg_assign_kernel *kernel, const problem *p, int weighted,
                         const int32_t *prior_from, size_t split, int use_shift)
{
    size_t d = p->d, k = p->k, rows = p->rows;
    result r = {0};
    void *packed = aligned_buffer(kernel->packed_size(k, d));
    void *scratch = aligned_buffer(kernel->scratch_size(k, d));
    kernel->pack(p->centers, k, d, use_shift ? p->shift : NULL, packed);

    r.labels = checked_calloc(rows, sizeof(int32_t));
    r.distances = checked_calloc(rows, sizeof(double));
    for (size_t i = 0; i < rows; i++)
        r.labels[i] = -7; /* every label must be written */
    kernel->assign(p->x, rows, d, packed, k, r.labels, r.distances, scratch);

    /* Labels without distances must be the same labels. */
    int32_t *plain = checked_calloc(rows, sizeof(int32_t));
    kernel->assign(p->x, rows, d, packed, k, plain, NULL, scratch);
    for (size_t i = 0; i < rows; i++)
        if (plain[i] != r.labels[i])
            cr_assert_fail("%s: assign without distances differs at row %zu", kernel->name, i);
    free(plain);

    r.acc_labels = checked_calloc(rows, sizeof(int32_t));
    for (size_t i = 0; i < rows; i++)
        r.acc_labels[i] = prior_from && i % 2 == 0 ? prior_from[i] : p->prior[i];
    r.sums = checked_calloc(k * d, sizeof(double));
    memcpy(r.sums, p->initial, k * d * sizeof(double));
    r.weight_sums = checked_calloc(k, sizeof(double));
    for (size_t c = 0; c < k; c++)
        r.weight_sums[c] = (double)c * 0.5;
    kseg_block_sums sums = {r.sums, r.weight_sums, 0.125, 3};
    size_t first = split && split < rows ? split : rows;
    size_t bytes = dtype_bytes(p->dtype);
    kernel->assign_accumulate(p->x, first, d, weighted ? p->weights : NULL, packed, k,
                              r.acc_labels, &sums, scratch);
    if (first < rows)
        kernel->assign_accumulate((const char *)p->x + first * d * bytes, rows - first, d,
                                  weighted ? p->weights + first : NULL, packed, k,
                                  r.acc_labels + first, &sums, scratch);
    r.inertia = sums.inertia;
    r.changed = sums.changed;
    free(packed);
    free(scratch);
    return r;
}

/* ------------------------------------------------------------------ comparisons */

/* Squared distance of row i to center c in double from the values the kernels see. */
static double exact_distance(const problem *p, size_t i, size_t c)
{
    double sum = 0.0;
    for (size_t j = 0; j < p->d; j++) {
        double diff = element(p->x, p->dtype, i * p->d + j) -
                      center_element(p->centers, p->dtype, c * p->d + j);
        sum += diff * diff;
    }
    return sum;
}

/* The rounding scale of the expanded form for row i and center c: its error is a few units of
 * the element type's precision times |x - s|^2 + |c - s|^2. */
static double expanded_scale(const problem *p, size_t i, size_t c, int use_shift)
{
    double x_norm = 0.0, c_norm = 0.0;
    for (size_t j = 0; j < p->d; j++) {
        double s = use_shift ? p->shift[j] : 0.0;
        double xv = element(p->x, p->dtype, i * p->d + j) - s;
        double cv = center_element(p->centers, p->dtype, c * p->d + j) - s;
        x_norm += xv * xv;
        c_norm += cv * cv;
    }
    return x_norm + c_norm + 1e-300;
}

static double expanded_tolerance(kseg_dtype dtype)
{
    return dtype == KSEG_FLOAT32 ? 2e-5 : 1e-13;
}

static void expect_bitwise(const kseg_assign_kernel *kernel, const problem *p, const result *got,
                           const result *want, const char *what)
{
    size_t rows = p->rows, d = p->d, k = p->k;
    for (size_t i = 0; i < rows; i++) {
        if (got->labels[i] != want->labels[i])
            cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: label of row %zu is %d, reference %d",
                           kernel->name, what, d, k, rows, i, got->labels[i], want->labels[i]);
        if (memcmp(&got->distances[i], &want->distances[i], sizeof(double)) != 0)
            cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: distance of row %zu is %.17g, reference "
                           "%.17g", kernel->name, what, d, k, rows, i, got->distances[i],
                           want->distances[i]);
        if (got->acc_labels[i] != want->acc_labels[i])
            cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: fused label of row %zu is %d, reference %d",
                           kernel->name, what, d, k, rows, i, got->acc_labels[i],
                           want->acc_labels[i]);
    }
    for (size_t i = 0; i < k * d; i++)
        if (memcmp(&got->sums[i], &want->sums[i], sizeof(double)) != 0)
            cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: sum %zu is %.17g, reference %.17g",
                           kernel->name, what, d, k, rows, i, got->sums[i], want->sums[i]);
    for (size_t c = 0; c < k; c++)
        if (memcmp(&got->weight_sums[c], &want->weight_sums[c], sizeof(double)) != 0)
            cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: weight of center %zu is %.17g, reference "
                           "%.17g", kernel->name, what, d, k, rows, c, got->weight_sums[c],
                           want->weight_sums[c]);
    cr_assert(memcmp(&got->inertia, &want->inertia, sizeof(double)) == 0,
              "%s %s d=%zu k=%zu rows=%zu: inertia %.17g, reference %.17g", kernel->name, what, d,
              k, rows, got->inertia, want->inertia);
    cr_assert_eq(got->changed, want->changed, "%s %s d=%zu k=%zu rows=%zu: changed %lld vs %lld",
                 kernel->name, what, d, k, rows, (long long)got->changed,
                 (long long)want->changed);
}

/* The expanded form may pick a different center only where the reference's choice and its own
 * are equally near to rounding; its distances, sums, weights, inertia and change count must be
 * those of its own labels. */
static void expect_close(const kseg_assign_kernel *kernel, const problem *p, const result *got,
                         const result *want, int weighted, const int32_t *prior_from,
                         int use_shift, const char *what)
{
    size_t rows = p->rows, d = p->d, k = p->k;
    double tolerance = expanded_tolerance(p->dtype);
    double inertia_scale = 0.0;
    for (size_t i = 0; i < rows; i++) {
        for (int pass = 0; pass < 2; pass++) {
            int32_t label = pass == 0 ? got->labels[i] : got->acc_labels[i];
            int32_t reference = pass == 0 ? want->labels[i] : want->acc_labels[i];
            if (label < 0 || (size_t)label >= k)
                cr_assert_fail("%s %s d=%zu k=%zu: label %d of row %zu out of range", kernel->name,
                               what, d, k, label, i);
            if (label == reference)
                continue;
            double scale = expanded_scale(p, i, (size_t)label, use_shift) +
                           expanded_scale(p, i, (size_t)reference, use_shift);
            double mine = exact_distance(p, i, (size_t)label);
            double theirs = exact_distance(p, i, (size_t)reference);
            if (!(mine <= theirs + tolerance * scale))
                cr_assert_fail("%s %s d=%zu k=%zu rows=%zu: row %zu chose %d at %.9g, reference "
                               "%d at %.9g (scale %.3g)", kernel->name, what, d, k, rows, i,
                               label, mine, reference, theirs, scale);
        }
        if (got->labels[i] != got->acc_labels[i])
            cr_assert_fail("%s %s: assign and assign_accumulate disagree at row %zu",
                           kernel->name, what, i);
        size_t label = (size_t)got->labels[i];
        double scale = expanded_scale(p, i, label, use_shift);
        double exact = exact_distance(p, i, label);
        if (!(fabs(got->distances[i] - exact) <= tolerance * scale))
            cr_assert_fail("%s %s d=%zu k=%zu: distance of row %zu is %.9g, exact %.9g",
                           kernel->name, what, d, k, i, got->distances[i], exact);
        inertia_scale += (weighted ? p->weights[i] : 1.0) * scale;
    }

    /* Expected accumulation from the kernel's own labels, in row order as the contract says. */
    double *sums = checked_calloc(k * d, sizeof(double));
    double *weight_sums = checked_calloc(k, sizeof(double));
    memcpy(sums, p->initial, k * d * sizeof(double));
    double magnitude = 1.0;
    int64_t changed = 3;
    for (size_t c = 0; c < k; c++)
        weight_sums[c] = (double)c * 0.5;
    for (size_t i = 0; i < rows; i++) {
        size_t label = (size_t)got->acc_labels[i];
        double w = weighted ? p->weights[i] : 1.0;
        int32_t before = prior_from && i % 2 == 0 ? prior_from[i] : p->prior[i];
        changed += before != (int32_t)label;
        for (size_t j = 0; j < d; j++) {
            double v = w * element(p->x, p->dtype, i * d + j);
            sums[label * d + j] += v;
            magnitude += fabs(v);
        }
        weight_sums[label] += w;
    }
    for (size_t i = 0; i < k * d; i++)
        if (!(fabs(got->sums[i] - sums[i]) <= 1e-13 * magnitude))
            cr_assert_fail("%s %s d=%zu k=%zu: sum %zu is %.17g, expected %.17g", kernel->name,
                           what, d, k, i, got->sums[i], sums[i]);
    for (size_t c = 0; c < k; c++)
        if (!(fabs(got->weight_sums[c] - weight_sums[c]) <= 1e-12 * (1.0 + weight_sums[c])))
            cr_assert_fail("%s %s d=%zu k=%zu: weight of center %zu is %.17g, expected %.17g",
                           kernel->name, what, d, k, c, got->weight_sums[c], weight_sums[c]);
    cr_assert(fabs(got->inertia - want->inertia) <= tolerance * (inertia_scale + 1.0),
              "%s %s d=%zu k=%zu: inertia %.17g, reference %.17g", kernel->name, what, d, k,
              got->inertia, want->inertia);
    cr_assert_eq(got->changed, changed, "%s %s d=%zu k=%zu: changed %lld, expected %lld",
                 kernel->name, what, d, k, (long long)got->changed, (long long)changed);
    free(sums);
    free(weight_sums);
}

static int is_expanded(const kseg_assign_kernel *kernel)
{
    return kernel->expanded_form;
}

/* Every supported kernel against the reference on one problem, in the four fused variants:
 * with and without weights, in one call or split in two. */
static void check_problem(const problem *p, int exact_ties)
{
    const kseg_assign_kernel *kernels[MAX_KERNELS];
    size_t count = kseg_assign_kernel_list(p->dtype, kernels, MAX_KERNELS);
    cr_assert_gt(count, 0, "no kernels listed");
    const kseg_assign_kernel *reference =
        p->dtype == KSEG_FLOAT32 ? &kseg_assign_reference_f32 : &kseg_assign_reference_f64;
    for (int variant = 0; variant < 4; variant++) {
        int weighted = variant & 1;
        size_t split = variant & 2 ? p->rows / 3 + 1 : 0;
        /* The reference's own labels from a first run serve as the partly equal prior labels. */
        result first = run_kernel(reference, p, weighted, NULL, 0, 1);
        result want = run_kernel(reference, p, weighted, first.labels, split, 1);
        const char *what = weighted ? (split ? "weighted split" : "weighted")
                                    : (split ? "split" : "unweighted");
        for (size_t n = 0; n < count; n++) {
            const kseg_assign_kernel *kernel = kernels[n];
            cr_assert_eq(kernel->dtype, p->dtype, "%s lists under the wrong dtype", kernel->name);
            if (kernel == reference)
                continue;
            /* On exactly tying integer data the expanded form is exact too when not centered
               (the products are small integers), so it must break ties like the reference. */
            int use_shift = !(exact_ties && is_expanded(kernel));
            result got = run_kernel(kernel, p, weighted, first.labels, split, use_shift);
            if (!is_expanded(kernel))
                expect_bitwise(kernel, p, &got, &want, what);
            else if (exact_ties) {
                for (size_t i = 0; i < p->rows; i++)
                    if (got.labels[i] != want.labels[i] || got.acc_labels[i] != want.acc_labels[i])
                        cr_assert_fail("%s %s d=%zu k=%zu: tie broken differently at row %zu "
                                       "(%d, reference %d)", kernel->name, what, p->d, p->k, i,
                                       got.labels[i], want.labels[i]);
                expect_close(kernel, p, &got, &want, weighted, first.labels, use_shift, what);
            } else
                expect_close(kernel, p, &got, &want, weighted, first.labels, use_shift, what);
            result_free(&got);
        }
        result_free(&first);
        result_free(&want);
    }
}

/* ------------------------------------------------------------------ the shapes */

static const size_t test_d[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100};
static const size_t test_k[] = {1, 2, 5, 8, 15, 16, 17, 33, 64, 100, 257};

/* Rows for a shape: between 1 and 3000, never a multiple of 4, scaled down for large k * d to
 * keep the reference's running time reasonable. */
static size_t rows_for(size_t d, size_t k, test_rng *rng)
{
    size_t limit = 400000 / (d * k + 1);
    if (limit > 3000)
        limit = 3000;
    if (limit < 40)
        limit = 40;
    size_t rows = 1 + rng_below(rng, limit);
    if (rows % 4 == 0)
        rows += 1;
    return rows;
}

static void check_all_shapes(kseg_dtype dtype, int integer_grid)
{
    test_rng rng = rng_seeded(dtype * 1000u + (unsigned)integer_grid);
    for (size_t a = 0; a < sizeof test_d / sizeof test_d[0]; a++)
        for (size_t b = 0; b < sizeof test_k / sizeof test_k[0]; b++) {
            size_t d = test_d[a], k = test_k[b];
            size_t rows = rows_for(d, k, &rng);
            problem p = problem_make(dtype, rows, d, k, rng_next(&rng), integer_grid);
            check_problem(&p, integer_grid);
            problem_free(&p);
        }
}

Test(kernels, float32_random_shapes) { check_all_shapes(KSEG_FLOAT32, 0); }
Test(kernels, float64_random_shapes) { check_all_shapes(KSEG_FLOAT64, 0); }
Test(kernels, float32_exact_ties) { check_all_shapes(KSEG_FLOAT32, 1); }
Test(kernels, float64_exact_ties) { check_all_shapes(KSEG_FLOAT64, 1); }

/* Few rows and many rows, including the smallest problems and row counts that leave every
 * possible remainder of a block of rows. */
Test(kernels, row_counts)
{
    static const size_t rows[] = {1, 2, 3, 5, 6, 7, 9, 13, 31, 2999, 3001};
    for (int t = 1; t <= 2; t++)
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            size_t d = 1 + r % 9, k = 1 + (r * 7) % 40;
            problem p = problem_make((kseg_dtype)t, rows[r], d, k, 77 + r, 0);
            check_problem(&p, 0);
            problem_free(&p);
        }
}

/* Larger shapes: those the GEMM kernel is meant for, d in the thousands, thousands of centers. */
Test(kernels, large_shapes)
{
    static const size_t shapes[][3] = {{257, 64, 96}, {130, 1000, 3}, {200, 40, 2048},
                                       {61, 3000, 5}, {77, 2500, 40}, {45, 2, 4000}};
    for (int t = 1; t <= 2; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            problem p = problem_make((kseg_dtype)t, shapes[s][0], shapes[s][1], shapes[s][2],
                                     900 + s, 0);
            check_problem(&p, 0);
            problem_free(&p);
        }
}

/* Duplicated centers: the distances to a center and its copies are equal, and every kernel must
 * choose the lowest index among them. */
Test(kernels, duplicate_centers_go_to_lowest_index)
{
    for (int t = 1; t <= 2; t++) {
        kseg_dtype dtype = (kseg_dtype)t;
        static const size_t ds[] = {1, 3, 8, 17, 40};
        for (size_t s = 0; s < sizeof ds / sizeof ds[0]; s++) {
            size_t d = ds[s], distinct = 7, k = 3 * distinct + 2, rows = 203;
            problem p = problem_make(dtype, rows, d, k, 4242 + s, 0);
            /* Center c is a copy of center c mod distinct; the last two copy center 3. */
            for (size_t c = distinct; c < k; c++) {
                size_t source = c < 3 * distinct ? c % distinct : 3;
                memcpy(p.centers + c * d, p.centers + source * d, d * sizeof(double));
            }
            const kseg_assign_kernel *kernels[MAX_KERNELS];
            size_t count = kseg_assign_kernel_list(dtype, kernels, MAX_KERNELS);
            for (size_t n = 0; n < count; n++) {
                result got = run_kernel(kernels[n], &p, 1, NULL, 0, 1);
                for (size_t i = 0; i < rows; i++)
                    cr_assert(got.labels[i] < (int32_t)distinct &&
                                  got.acc_labels[i] < (int32_t)distinct,
                              "%s d=%zu: row %zu went to the copy %d", kernels[n]->name, d, i,
                              got.labels[i]);
                for (size_t c = distinct; c < k; c++)
                    cr_assert_eq(got.weight_sums[c], (double)c * 0.5,
                                 "%s: the copy %zu received rows", kernels[n]->name, c);
                result_free(&got);
            }
            check_problem(&p, 0);
            problem_free(&p);
        }
    }
}

/* A row exactly between two centers: the lower index wins, in either order of the centers. */
Test(kernels, exact_midpoint_goes_to_lowest_index)
{
    for (int t = 1; t <= 2; t++) {
        kseg_dtype dtype = (kseg_dtype)t;
        const kseg_assign_kernel *kernels[MAX_KERNELS];
        size_t count = kseg_assign_kernel_list(dtype, kernels, MAX_KERNELS);
        for (size_t k = 2; k <= 40; k += 19) {
            /* d = 1; centers at -1 and +1 placed at indices a < b, the others far away. */
            size_t a = k / 3, b = k - 1;
            problem p = problem_make(dtype, 5, 1, k, 5, 0);
            for (size_t c = 0; c < k; c++)
                p.centers[c] = 100.0 + (double)c;
            p.centers[a] = (k % 2) ? 1.0 : -1.0;
            p.centers[b] = -p.centers[a];
            for (size_t i = 0; i < 5; i++)
                set_element(p.x, dtype, i, 0.0);
            for (size_t n = 0; n < count; n++) {
                result got = run_kernel(kernels[n], &p, 0, NULL, 0, 0);
                for (size_t i = 0; i < 5; i++) {
                    cr_assert_eq(got.labels[i], (int32_t)a, "%s k=%zu: label %d, expected %zu",
                                 kernels[n]->name, k, got.labels[i], a);
                    cr_assert_eq(got.distances[i], 1.0, "%s: distance %g", kernels[n]->name,
                                 got.distances[i]);
                }
                result_free(&got);
            }
            problem_free(&p);
        }
    }
}

/* ------------------------------------------------------------------ selection */

Test(kernels, selection_returns_supported_kernels)
{
    static const size_t shapes[][2] = {{1, 1}, {8, 8}, {16, 16}, {64, 16}, {256, 64}, {3000, 100},
                                       {5, 1000}, {2, 2}};
    for (int t = 1; t <= 2; t++) {
        kseg_dtype dtype = (kseg_dtype)t;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const kseg_assign_kernel *kernel =
                kseg_assign_kernel_select(dtype, shapes[s][0], shapes[s][1], NULL);
            cr_assert_not_null(kernel, "no kernel for k=%zu d=%zu", shapes[s][0], shapes[s][1]);
            cr_assert_eq(kernel->dtype, dtype);
            cr_assert(kernel->cpu_supported(), "%s selected but not supported", kernel->name);
        }
        const kseg_assign_kernel *kernels[MAX_KERNELS];
        size_t count = kseg_assign_kernel_list(dtype, kernels, MAX_KERNELS);
        int has_reference = 0;
        for (size_t n = 0; n < count; n++) {
            cr_assert(kernels[n]->cpu_supported());
            cr_assert_eq(kseg_assign_kernel_select(dtype, 10, 10, kernels[n]->name), kernels[n],
                         "selecting %s by name", kernels[n]->name);
            has_reference |= strcmp(kernels[n]->name, "reference") == 0;
        }
        cr_assert(has_reference, "the reference kernel is always listed");
        cr_assert_null(kseg_assign_kernel_select(dtype, 10, 10, "no-such-kernel"));
    }
    cr_assert_null(kseg_assign_kernel_select((kseg_dtype)0, 10, 10, NULL));
}

/* A kernel that the CPU supports is listed, and the optimized kernels this build contains are
 * listed whenever the CPU has their instruction set. */
Test(kernels, optimized_kernels_are_listed_when_supported)
{
    const kseg_assign_kernel *kernels[MAX_KERNELS];
    size_t count = kseg_assign_kernel_list(KSEG_FLOAT32, kernels, MAX_KERNELS);
    int found_avx2 = 0, found_avx512 = 0, found_gemm = 0, found_expanded = 0;
    for (size_t n = 0; n < count; n++) {
        found_avx2 |= strcmp(kernels[n]->name, "avx2") == 0;
        found_avx512 |= strcmp(kernels[n]->name, "avx512") == 0;
        found_gemm |= strcmp(kernels[n]->name, "gemm") == 0;
        found_expanded |= strcmp(kernels[n]->name, "avx512-expanded") == 0;
        /* Only the expanded-form kernels may say so: bound-based algorithms rely on the flag. */
        cr_assert_eq(kernels[n]->expanded_form,
                     strcmp(kernels[n]->name, "gemm") == 0 ||
                         strcmp(kernels[n]->name, "avx512-expanded") == 0,
                     "%s: wrong expanded_form flag", kernels[n]->name);
    }
#ifdef KSEG_HAVE_GEMM_KERNEL
    cr_assert(found_gemm, "the GEMM kernel is built but not listed");
#endif
#if defined(__x86_64__) && defined(KSEG_HAVE_AVX2_KERNEL)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cr_assert(found_avx2, "the AVX2 kernel is built and supported but not listed");
#endif
#if defined(__x86_64__) && defined(KSEG_HAVE_AVX512_KERNEL)
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    {
        cr_assert(found_avx512, "the AVX-512 kernel is built and supported but not listed");
        cr_assert(found_expanded, "the expanded-form AVX-512 kernel is built and supported but "
                                  "not listed");
    }
#endif
    (void)found_avx2;
    (void)found_avx512;
    (void)found_gemm;
    (void)found_expanded;
}

/* Bound-based algorithms need a direct-difference kernel: the direct selection never returns an
 * expanded-form one, and returns the automatic choice wherever that is direct. */
Test(kernels, direct_selection_skips_expanded_kernels)
{
    for (int t = 1; t <= 2; t++) {
        kseg_dtype dtype = (kseg_dtype)t;
        for (size_t d = 1; d <= 80; d += 3)
            for (size_t k = 1; k <= 300; k = k * 2 + 1) {
                const kseg_assign_kernel *any = kseg_assign_kernel_select(dtype, k, d, NULL);
                const kseg_assign_kernel *direct = kseg_assign_kernel_select_direct(dtype, k, d);
                cr_assert_not_null(direct, "no direct kernel for k=%zu d=%zu", k, d);
                cr_assert_not(direct->expanded_form, "%s is expanded-form", direct->name);
                cr_assert_eq(direct->dtype, dtype);
                if (!any->expanded_form)
                    cr_assert_eq(direct, any, "k=%zu d=%zu: %s vs %s", k, d, direct->name,
                                 any->name);
            }
    }
}
