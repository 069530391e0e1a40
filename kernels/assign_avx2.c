/* AVX2 direct-difference assignment kernels (float32 and float64), for CPUs without AVX-512. They
 * compute every squared distance with the same per-feature subtract and fused multiply-add chain
 * as the reference, one center per vector lane, so results are bitwise identical to it.
 *
 * This file is a small template: the part below the #else is compiled once per element type (it
 * includes this file again with the type's macros defined), and the part above holds what the
 * types share and the two kernel descriptors. */
#ifndef KSEG_AVX2_BODY

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Rows per block. Where all centers fit one vector, the eight rows share each loaded center vector
 * and give eight independent chains of fused multiply-adds, enough to hide their latency. With
 * more center vectors the block is done four rows at a time with panels of two center vectors:
 * eight accumulators, which with the two loaded center vectors, the broadcast feature and the
 * difference fits the 16 vector registers of AVX2. */
#define AVX2_ROWS_PER_BLOCK 8
#define AVX2_ROWS_PER_PANEL_PASS 4
#define AVX2_VECTORS_PER_PANEL 2

#define AVX2_ALWAYS_INLINE inline __attribute__((always_inline))
#define AVX2_CAT_(a, b) a##b
#define AVX2_CAT(a, b) AVX2_CAT_(a, b)

static int avx2_supported(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Preferred for every shape: dispatch tries the GEMM kernel and then the AVX-512 kernel first, so
 * this one is chosen exactly where AVX-512 is missing and the GEMM kernel does not claim the
 * shape. */
static int avx2_preferred(size_t k, size_t d)
{
    (void)k;
    (void)d;
    return 1;
}

static size_t avx2_no_scratch(size_t k, size_t d)
{
    (void)k;
    (void)d;
    return 0;
}

/* weight * value without letting the compiler fuse it with the following addition: the reference
 * rounds the product and then the sum, and a fused multiply-add (which -mfma and GCC's default
 * contraction would produce) rounds once, which would change the sums. The empty assembly statement
 * makes the product an opaque value that must exist in a register. */
static AVX2_ALWAYS_INLINE __m256d avx2_product_pd(__m256d a, __m256d b)
{
    __m256d product = _mm256_mul_pd(a, b);
    __asm__("" : "+x"(product));
    return product;
}

static AVX2_ALWAYS_INLINE double avx2_product(double a, double b)
{
    double product = a * b;
    __asm__("" : "+x"(product));
    return product;
}

/* The smaller of two vectors of signed 64-bit keys (AVX2 has no 64-bit minimum instruction). */
static AVX2_ALWAYS_INLINE __m256i avx2_min_epi64(__m256i a, __m256i b)
{
    return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(a, b));
}

/* Nearest lane of a float32 vector: ties go to the lowest center index. Distances are sums of
 * squares, hence non-negative (never -0), so their bit patterns order like the values and stay
 * below 2^31; putting the bits above the index in one 64-bit key makes a single signed minimum find
 * the smallest distance and, among equal ones, the smallest index. */
static AVX2_ALWAYS_INLINE int32_t avx2_argmin_f32(__m256 best, __m256i index, float *distance)
{
    __m256i bits = _mm256_castps_si256(best);
    __m256i keys = avx2_min_epi64(_mm256_unpacklo_epi32(index, bits),
                                  _mm256_unpackhi_epi32(index, bits));
    keys = avx2_min_epi64(keys, _mm256_permute4x64_epi64(keys, _MM_SHUFFLE(1, 0, 3, 2)));
    keys = avx2_min_epi64(keys, _mm256_shuffle_epi32(keys, _MM_SHUFFLE(1, 0, 3, 2)));
    uint64_t key = (uint64_t)_mm256_extract_epi64(keys, 0);
    uint32_t distance_bits = (uint32_t)(key >> 32);
    memcpy(distance, &distance_bits, sizeof *distance);
    return (int32_t)(uint32_t)key;
}

/* Nearest lane of a float64 vector whose center indices are held as doubles (exact below 2^53):
 * the smallest distance, then the smallest index among the lanes holding it. */
static AVX2_ALWAYS_INLINE int32_t avx2_argmin_f64(__m256d best, __m256d index, double *distance)
{
    __m256d minimum = _mm256_min_pd(best, _mm256_permute2f128_pd(best, best, 1));
    minimum = _mm256_min_pd(minimum, _mm256_permute_pd(minimum, 5));
    __m256d equal = _mm256_cmp_pd(best, minimum, _CMP_EQ_OQ);
    __m256d candidates = _mm256_blendv_pd(_mm256_set1_pd(__builtin_inf()), index, equal);
    candidates = _mm256_min_pd(candidates, _mm256_permute2f128_pd(candidates, candidates, 1));
    candidates = _mm256_min_pd(candidates, _mm256_permute_pd(candidates, 5));
    *distance = _mm256_cvtsd_f64(minimum);
    return (int32_t)_mm256_cvtsd_f64(candidates);
}

/* ---- float32: vectors of 8 centers, center indices as 32-bit integers */
#define KSEG_AVX2_BODY
#define T float
#define SUFFIX f32
#define LANES 8
#define VEC __m256
#define IVEC __m256i
#define MASK __m256
#define MASK_ALL _mm256_castsi256_ps(_mm256_set1_epi32(-1))
#define MASK_FIRST(n) \
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), I_IOTA()))
#define V_ZERO() _mm256_setzero_ps()
#define V_INF() _mm256_set1_ps(__builtin_inff())
#define V_LOAD(p) _mm256_load_ps(p)
#define V_SET1(value) _mm256_set1_ps(value)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_LESS(mask, a, b) _mm256_and_ps(mask, _mm256_cmp_ps(a, b, _CMP_LT_OQ))
#define V_SELECT(source, mask, a) _mm256_blendv_ps(source, a, mask)
#define I_ZERO() _mm256_setzero_si256()
#define I_IOTA() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define I_ADD_SCALAR(a, n) _mm256_add_epi32(a, _mm256_set1_epi32(n))
#define I_SELECT(source, mask, a) _mm256_blendv_epi8(source, a, _mm256_castps_si256(mask))
#define ARGMIN(best, index, distance) avx2_argmin_f32(best, index, distance)
#define ROW_TO_PD(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#include "assign_avx2.c"

/* ---- float64: vectors of 4 centers, center indices as doubles so they blend with the same mask */
#define KSEG_AVX2_BODY
#define T double
#define SUFFIX f64
#define LANES 4
#define VEC __m256d
#define IVEC __m256d
#define MASK __m256d
#define MASK_ALL _mm256_castsi256_pd(_mm256_set1_epi32(-1))
#define MASK_FIRST(n) _mm256_cmp_pd(I_IOTA(), _mm256_set1_pd((double)(n)), _CMP_LT_OQ)
#define V_ZERO() _mm256_setzero_pd()
#define V_INF() _mm256_set1_pd(__builtin_inf())
#define V_LOAD(p) _mm256_load_pd(p)
#define V_SET1(value) _mm256_set1_pd(value)
#define V_SUB(a, b) _mm256_sub_pd(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_LESS(mask, a, b) _mm256_and_pd(mask, _mm256_cmp_pd(a, b, _CMP_LT_OQ))
#define V_SELECT(source, mask, a) _mm256_blendv_pd(source, a, mask)
#define I_ZERO() _mm256_setzero_pd()
#define I_IOTA() _mm256_setr_pd(0.0, 1.0, 2.0, 3.0)
#define I_ADD_SCALAR(a, n) _mm256_add_pd(a, _mm256_set1_pd((double)(n)))
#define I_SELECT(source, mask, a) _mm256_blendv_pd(source, a, mask)
#define ARGMIN(best, index, distance) avx2_argmin_f64(best, index, distance)
#define ROW_TO_PD(p) _mm256_loadu_pd(p)
#include "assign_avx2.c"

const kseg_assign_kernel kseg_assign_avx2_f32 = {
    .name = "avx2",
    .dtype = KSEG_FLOAT32,
    .cpu_supported = avx2_supported,
    .preferred = avx2_preferred,
    .packed_size = packed_size_f32,
    .scratch_size = avx2_no_scratch,
    .pack = pack_f32,
    .assign = assign_f32,
    .assign_accumulate = assign_accumulate_f32,
};

const kseg_assign_kernel kseg_assign_avx2_f64 = {
    .name = "avx2",
    .dtype = KSEG_FLOAT64,
    .cpu_supported = avx2_supported,
    .preferred = avx2_preferred,
    .packed_size = packed_size_f64,
    .scratch_size = avx2_no_scratch,
    .pack = pack_f64,
    .assign = assign_f64,
    .assign_accumulate = assign_accumulate_f64,
};

#else /* KSEG_AVX2_BODY: the kernel body for one element type */

#define NAME(stem) AVX2_CAT(stem, SUFFIX)
#define ROWS AVX2_ROWS_PER_BLOCK
#define PANEL AVX2_VECTORS_PER_PANEL
#define ROWS_PER_PASS AVX2_ROWS_PER_PANEL_PASS

/* The packed centers: for each panel of up to PANEL vectors of LANES centers, the panel's centers'
 * first feature, then their second feature, and so on. Lanes past k hold zeros and are masked out
 * of every comparison. */
static size_t NAME(packed_size_)(size_t k, size_t d)
{
    size_t vectors = (k + LANES - 1) / LANES;
    return vectors * LANES * d * sizeof(T);
}

static void NAME(pack_)(const double *centers, size_t k, size_t d, const double *shift,
                        void *packed)
{
    (void)shift; /* the direct difference needs no centering */
    T *out = packed;
    size_t vectors = (k + LANES - 1) / LANES;
    for (size_t first = 0; first < vectors; first += PANEL) {
        size_t width = (vectors - first < PANEL ? vectors - first : PANEL) * LANES;
        for (size_t j = 0; j < d; j++)
            for (size_t lane = 0; lane < width; lane++) {
                size_t center = first * LANES + lane;
                *out++ = center < k ? (T)centers[center * d + j] : (T)0;
            }
    }
}

/* Distances of `rows` rows to the `vectors` center vectors of one panel, folded into each row's
 * running minimum. The per-lane arithmetic is the reference's: for each feature in order,
 * diff = center - x (the exact negation of x - center, so its square is identical) and
 * acc = fma(diff, diff, acc). rows and vectors are compile-time constants after inlining, so the
 * accumulators live in registers. Centers are visited in increasing index order within each lane
 * and replace the minimum only when strictly smaller, which keeps the lowest index on ties. */
static AVX2_ALWAYS_INLINE void NAME(panel_)(const T *x, size_t d, const T *panel, const int rows,
                                            const int vectors, int32_t first_center,
                                            MASK last_valid, VEC *best, IVEC *best_index)
{
    VEC acc[ROWS][PANEL];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vectors; v++)
            acc[r][v] = V_ZERO();
    for (size_t j = 0; j < d; j++) {
        const T *column = panel + j * (size_t)vectors * LANES;
        VEC c[PANEL];
        for (int v = 0; v < vectors; v++)
            c[v] = V_LOAD(column + v * LANES);
        for (int r = 0; r < rows; r++) {
            VEC xr = V_SET1(x[(size_t)r * d + j]);
            for (int v = 0; v < vectors; v++) {
                VEC diff = V_SUB(c[v], xr);
                acc[r][v] = V_FMA(diff, diff, acc[r][v]);
            }
        }
    }
    for (int v = 0; v < vectors; v++) {
        IVEC index = I_ADD_SCALAR(I_IOTA(), first_center + v * LANES);
        MASK valid = v == vectors - 1 ? last_valid : MASK_ALL;
        for (int r = 0; r < rows; r++) {
            MASK smaller = V_LESS(valid, acc[r][v], best[r]);
            best[r] = V_SELECT(best[r], smaller, acc[r][v]);
            best_index[r] = I_SELECT(best_index[r], smaller, index);
        }
    }
}

/* Nearest centers of `rows` consecutive rows (a compile-time constant after inlining). */
static AVX2_ALWAYS_INLINE void NAME(nearest_rows_)(const T *x, size_t d, const T *packed,
                                                   size_t k, const int rows, int32_t *labels,
                                                   T *distances)
{
    VEC best[ROWS];
    IVEC best_index[ROWS];
    for (int r = 0; r < rows; r++) {
        best[r] = V_INF();
        best_index[r] = I_ZERO();
    }
    size_t vectors = (k + LANES - 1) / LANES;
    MASK tail = (k % LANES) ? MASK_FIRST(k % LANES) : MASK_ALL;
    const T *panel = packed;
    for (size_t first = 0; first < vectors; first += PANEL) {
        size_t count = vectors - first < PANEL ? vectors - first : PANEL;
        MASK last_valid = first + count == vectors ? tail : MASK_ALL;
        int32_t first_center = (int32_t)(first * LANES);
        if (count == 2)
            NAME(panel_)(x, d, panel, rows, 2, first_center, last_valid, best, best_index);
        else
            NAME(panel_)(x, d, panel, rows, 1, first_center, last_valid, best, best_index);
        panel += count * LANES * d;
    }
    for (int r = 0; r < rows; r++)
        labels[r] = ARGMIN(best[r], best_index[r], &distances[r]);
}

/* The same for k <= LANES, where all centers fit one vector: up to eight rows share each loaded
 * center vector, which gives eight independent chains of fused multiply-adds. */
static AVX2_ALWAYS_INLINE void NAME(one_vector_rows_)(const T *x, size_t d, const T *packed,
                                                      size_t k, const int rows, int32_t *labels,
                                                      T *distances)
{
    VEC best[ROWS];
    IVEC best_index[ROWS];
    for (int r = 0; r < rows; r++) {
        best[r] = V_INF();
        best_index[r] = I_ZERO();
    }
    MASK valid = (k % LANES) ? MASK_FIRST(k % LANES) : MASK_ALL;
    NAME(panel_)(x, d, packed, rows, 1, 0, valid, best, best_index);
    for (int r = 0; r < rows; r++)
        labels[r] = ARGMIN(best[r], best_index[r], &distances[r]);
}

_Static_assert(AVX2_VECTORS_PER_PANEL == 2, "panel_ is instantiated for 1 and 2 vectors");
_Static_assert(AVX2_ROWS_PER_BLOCK == 8, "nearest_block_ is instantiated for 1 to 8 rows");
_Static_assert(AVX2_ROWS_PER_PANEL_PASS == 4, "nearest_block_ goes four rows at a time");

/* One block of up to ROWS rows; a separate function so that the row counts are instantiated once
 * and shared by both passes. One center vector is done eight rows at a time; more are done four
 * rows at a time, since more accumulators would not fit the registers. */
static void NAME(nearest_block_)(const T *x, size_t d, const T *packed, size_t k, size_t rows,
                                 int32_t *labels, T *distances)
{
    if (k <= LANES) {
        switch (rows) {
        case 8: NAME(one_vector_rows_)(x, d, packed, k, 8, labels, distances); break;
        case 7: NAME(one_vector_rows_)(x, d, packed, k, 7, labels, distances); break;
        case 6: NAME(one_vector_rows_)(x, d, packed, k, 6, labels, distances); break;
        case 5: NAME(one_vector_rows_)(x, d, packed, k, 5, labels, distances); break;
        case 4: NAME(one_vector_rows_)(x, d, packed, k, 4, labels, distances); break;
        case 3: NAME(one_vector_rows_)(x, d, packed, k, 3, labels, distances); break;
        case 2: NAME(one_vector_rows_)(x, d, packed, k, 2, labels, distances); break;
        default: NAME(one_vector_rows_)(x, d, packed, k, 1, labels, distances); break;
        }
        return;
    }
    for (size_t done = 0; done < rows; done += ROWS_PER_PASS) {
        const T *block = x + done * d;
        switch (rows - done) {
        case 3: NAME(nearest_rows_)(block, d, packed, k, 3, labels + done, distances + done); break;
        case 2: NAME(nearest_rows_)(block, d, packed, k, 2, labels + done, distances + done); break;
        case 1: NAME(nearest_rows_)(block, d, packed, k, 1, labels + done, distances + done); break;
        default: NAME(nearest_rows_)(block, d, packed, k, 4, labels + done, distances + done); break;
        }
    }
}

static void NAME(assign_)(const void *x, size_t rows, size_t d, const void *packed, size_t k,
                          int32_t *labels, double *distances, void *scratch)
{
    (void)scratch;
    const T *data = x;
    for (size_t i = 0; i < rows; i += ROWS) {
        size_t count = rows - i < ROWS ? rows - i : ROWS;
        T block_distances[ROWS];
        NAME(nearest_block_)(data + i * d, d, packed, k, count, labels + i, block_distances);
        if (distances)
            for (size_t r = 0; r < count; r++)
                distances[i + r] = (double)block_distances[r];
    }
}

/* target[j] += weight * row[j] in double for j < d, rounding the product and the sum separately as
 * the reference does; without weights the product is the row itself (a product by 1 is exact). */
static AVX2_ALWAYS_INLINE void NAME(add_row_)(const T *row, size_t d, const double *weight,
                                              double *target)
{
    size_t j = 0;
    if (weight) {
        __m256d w = _mm256_set1_pd(*weight);
        for (; j + 4 <= d; j += 4)
            _mm256_storeu_pd(target + j, _mm256_add_pd(_mm256_loadu_pd(target + j),
                                                       avx2_product_pd(w, ROW_TO_PD(row + j))));
        switch (d - j) { /* at most three: a plain switch keeps the compiler from vectorizing it */
        case 3: target[j + 2] += avx2_product(*weight, (double)row[j + 2]); /* fall through */
        case 2: target[j + 1] += avx2_product(*weight, (double)row[j + 1]); /* fall through */
        case 1: target[j] += avx2_product(*weight, (double)row[j]); break;
        default: break;
        }
    } else {
        for (; j + 4 <= d; j += 4)
            _mm256_storeu_pd(target + j,
                             _mm256_add_pd(_mm256_loadu_pd(target + j), ROW_TO_PD(row + j)));
        switch (d - j) {
        case 3: target[j + 2] += (double)row[j + 2]; /* fall through */
        case 2: target[j + 1] += (double)row[j + 1]; /* fall through */
        case 1: target[j] += (double)row[j]; break;
        default: break;
        }
    }
}

static void NAME(assign_accumulate_)(const void *x, size_t rows, size_t d, const double *weights,
                                     const void *packed, size_t k, int32_t *labels,
                                     kseg_block_sums *sums, void *scratch)
{
    (void)scratch;
    const T *data = x;
    double inertia = sums->inertia;
    int64_t changed = sums->changed;
    for (size_t i = 0; i < rows; i += ROWS) {
        size_t count = rows - i < ROWS ? rows - i : ROWS;
        int32_t block_labels[ROWS];
        T block_distances[ROWS];
        NAME(nearest_block_)(data + i * d, d, packed, k, count, block_labels, block_distances);
        /* Rows are added in row order, so each center's sums see its rows in the same order as in
           the reference. */
        for (size_t r = 0; r < count; r++) {
            size_t row = i + r;
            int32_t best = block_labels[r];
            changed += labels[row] != best;
            labels[row] = best;
            NAME(add_row_)(data + row * d, d, weights ? weights + row : NULL,
                           sums->sums + (size_t)best * d);
            if (weights) {
                sums->weights[best] += weights[row];
                inertia += avx2_product(weights[row], (double)block_distances[r]);
            } else {
                sums->weights[best] += 1.0;
                inertia += (double)block_distances[r];
            }
        }
    }
    sums->inertia = inertia;
    sums->changed = changed;
}

#undef NAME
#undef ROWS
#undef PANEL
#undef ROWS_PER_PASS
#undef KSEG_AVX2_BODY
#undef T
#undef SUFFIX
#undef LANES
#undef VEC
#undef IVEC
#undef MASK
#undef MASK_ALL
#undef MASK_FIRST
#undef V_ZERO
#undef V_INF
#undef V_LOAD
#undef V_SET1
#undef V_SUB
#undef V_FMA
#undef V_LESS
#undef V_SELECT
#undef I_ZERO
#undef I_IOTA
#undef I_ADD_SCALAR
#undef I_SELECT
#undef ARGMIN
#undef ROW_TO_PD

#endif /* KSEG_AVX2_BODY */
