/* AVX-512 direct-difference assignment kernels (float32 and float64). They compute every squared
 * distance with the same per-feature subtract and fused multiply-add chain as the reference, one
 * center per vector lane, so labels, distances and sums are bitwise identical to the reference.
 *
 * This file is a small template: the part below the #else is compiled once per vector shape (it
 * includes this file again with the shape's macros defined), and the part above holds what the
 * shapes share and the two kernel descriptors. */
#ifndef KSEG_AVX512_BODY

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Rows per block. Where all centers fit one vector, the eight rows share each loaded center vector
 * and give eight independent chains of fused multiply-adds, enough to hide their latency. With
 * more center vectors the block is done four rows at a time: four rows times four center vectors
 * is sixteen accumulators, which with the loaded centers and the broadcast features fits the 32
 * vector registers. */
#define AVX512_ROWS_PER_BLOCK 8
#define AVX512_ROWS_PER_PANEL_PASS 4
/* Center vectors per panel: the packed centers are stored panel after panel, each panel holding
   this many vectors of centers for every feature in turn, so the inner loop reads memory in order. */
#define AVX512_VECTORS_PER_PANEL 4
/* float32 kernels with at most this many centers use 256-bit vectors: a 512-bit vector would leave
   more than half of its lanes empty. */
#define AVX512_NARROW_F32_MAX_K 8

#define AVX512_ALWAYS_INLINE inline __attribute__((always_inline))
#define AVX512_CAT_(a, b) a##b
#define AVX512_CAT(a, b) AVX512_CAT_(a, b)

static int avx512_supported(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
}

/* Preferred for every shape: dispatch asks the GEMM kernel first, and that kernel claims the shapes
 * where it is faster (on AMD Zen 4 it never was; see assign_gemm.c). Among the direct kernels this
 * one was as fast as or faster than the AVX2 kernel at every shape measured. */
static int avx512_preferred(size_t k, size_t d)
{
    (void)k;
    (void)d;
    return 1;
}

/* weight * value without letting the compiler fuse it with the following addition: the reference
 * rounds the product and then the sum, and a fused multiply-add (which -mfma and GCC's default
 * contraction would produce) rounds once, which would change the sums. The empty assembly statement
 * makes the product an opaque value that must exist in a register. */
static AVX512_ALWAYS_INLINE __m512d avx512_product_pd(__m512d a, __m512d b)
{
    __m512d product = _mm512_mul_pd(a, b);
    __asm__("" : "+v"(product));
    return product;
}

static AVX512_ALWAYS_INLINE __m256d avx512_product_pd4(__m256d a, __m256d b)
{
    __m256d product = _mm256_mul_pd(a, b);
    __asm__("" : "+v"(product));
    return product;
}

static AVX512_ALWAYS_INLINE double avx512_product(double a, double b)
{
    double product = a * b;
    __asm__("" : "+v"(product));
    return product;
}

/* Nearest lane of a float32 vector: ties go to the lowest center index. Distances are sums of
 * squares, hence non-negative (never -0), so their bit patterns order like the values; putting the
 * bits above the index in one 64-bit key makes a single unsigned minimum find the smallest distance
 * and, among equal ones, the smallest index. */
static AVX512_ALWAYS_INLINE int32_t avx512_argmin_zmm_f32(__m512 best, __m512i index,
                                                          float *distance)
{
    __m512i bits = _mm512_castps_si512(best);
    __m512i low = _mm512_unpacklo_epi32(index, bits);
    __m512i high = _mm512_unpackhi_epi32(index, bits);
    uint64_t key = _mm512_reduce_min_epu64(_mm512_min_epu64(low, high));
    uint32_t distance_bits = (uint32_t)(key >> 32);
    memcpy(distance, &distance_bits, sizeof *distance);
    return (int32_t)(uint32_t)key;
}

static AVX512_ALWAYS_INLINE int32_t avx512_argmin_ymm_f32(__m256 best, __m256i index,
                                                          float *distance)
{
    __m256i bits = _mm256_castps_si256(best);
    __m256i keys = _mm256_min_epu64(_mm256_unpacklo_epi32(index, bits),
                                    _mm256_unpackhi_epi32(index, bits));
    keys = _mm256_min_epu64(keys, _mm256_permute4x64_epi64(keys, _MM_SHUFFLE(1, 0, 3, 2)));
    keys = _mm256_min_epu64(keys, _mm256_shuffle_epi32(keys, _MM_SHUFFLE(1, 0, 3, 2)));
    uint64_t key = (uint64_t)_mm256_extract_epi64(keys, 0);
    uint32_t distance_bits = (uint32_t)(key >> 32);
    memcpy(distance, &distance_bits, sizeof *distance);
    return (int32_t)(uint32_t)key;
}

/* Nearest lane of a float64 vector: the smallest distance, then the smallest index among the lanes
 * holding it. */
static AVX512_ALWAYS_INLINE int32_t avx512_argmin_zmm_f64(__m512d best, __m256i index,
                                                          double *distance)
{
    double minimum = _mm512_reduce_min_pd(best);
    __mmask8 equal = _mm512_cmp_pd_mask(best, _mm512_set1_pd(minimum), _CMP_EQ_OQ);
    *distance = minimum;
    return _mm512_mask_reduce_min_epi32((__mmask16)equal, _mm512_castsi256_si512(index));
}

/* ---- float32, 512-bit vectors of 16 centers */
#define KSEG_AVX512_BODY
#define T float
#define SUFFIX zmm_f32
#define LANES 16
#define VEC __m512
#define IVEC __m512i
#define MASK __mmask16
#define MASK_ALL ((__mmask16)0xFFFF)
#define V_ZERO() _mm512_setzero_ps()
#define V_INF() _mm512_set1_ps(__builtin_inff())
#define V_LOAD(p) _mm512_load_ps(p)
#define V_SET1(value) _mm512_set1_ps(value)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_LESS(mask, a, b) _mm512_mask_cmp_ps_mask(mask, a, b, _CMP_LT_OQ)
#define V_SELECT(source, mask, a) _mm512_mask_mov_ps(source, mask, a)
#define I_ZERO() _mm512_setzero_si512()
#define I_IOTA() _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define I_ADD_SCALAR(a, n) _mm512_add_epi32(a, _mm512_set1_epi32(n))
#define I_SELECT(source, mask, a) _mm512_mask_mov_epi32(source, mask, a)
#define ARGMIN(best, index, distance) avx512_argmin_zmm_f32(best, index, distance)
#define ROW_TO_PD(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define ROW_TO_PD4(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#include "assign_avx512.c"

/* ---- float32, 256-bit vectors of 8 centers (small k) */
#define KSEG_AVX512_BODY
#define T float
#define SUFFIX ymm_f32
#define LANES 8
#define VEC __m256
#define IVEC __m256i
#define MASK __mmask8
#define MASK_ALL ((__mmask8)0xFF)
#define V_ZERO() _mm256_setzero_ps()
#define V_INF() _mm256_set1_ps(__builtin_inff())
#define V_LOAD(p) _mm256_load_ps(p)
#define V_SET1(value) _mm256_set1_ps(value)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_LESS(mask, a, b) _mm256_mask_cmp_ps_mask(mask, a, b, _CMP_LT_OQ)
#define V_SELECT(source, mask, a) _mm256_mask_mov_ps(source, mask, a)
#define I_ZERO() _mm256_setzero_si256()
#define I_IOTA() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define I_ADD_SCALAR(a, n) _mm256_add_epi32(a, _mm256_set1_epi32(n))
#define I_SELECT(source, mask, a) _mm256_mask_mov_epi32(source, mask, a)
#define ARGMIN(best, index, distance) avx512_argmin_ymm_f32(best, index, distance)
#define ROW_TO_PD(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define ROW_TO_PD4(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#include "assign_avx512.c"

/* ---- float64, 512-bit vectors of 8 centers */
#define KSEG_AVX512_BODY
#define T double
#define SUFFIX zmm_f64
#define LANES 8
#define VEC __m512d
#define IVEC __m256i
#define MASK __mmask8
#define MASK_ALL ((__mmask8)0xFF)
#define V_ZERO() _mm512_setzero_pd()
#define V_INF() _mm512_set1_pd(__builtin_inf())
#define V_LOAD(p) _mm512_load_pd(p)
#define V_SET1(value) _mm512_set1_pd(value)
#define V_SUB(a, b) _mm512_sub_pd(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_LESS(mask, a, b) _mm512_mask_cmp_pd_mask(mask, a, b, _CMP_LT_OQ)
#define V_SELECT(source, mask, a) _mm512_mask_mov_pd(source, mask, a)
#define I_ZERO() _mm256_setzero_si256()
#define I_IOTA() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define I_ADD_SCALAR(a, n) _mm256_add_epi32(a, _mm256_set1_epi32(n))
#define I_SELECT(source, mask, a) _mm256_mask_mov_epi32(source, mask, a)
#define ARGMIN(best, index, distance) avx512_argmin_zmm_f64(best, index, distance)
#define ROW_TO_PD(p) _mm512_loadu_pd(p)
#define ROW_TO_PD4(p) _mm256_loadu_pd(p)
#include "assign_avx512.c"

/* The float32 kernel uses the narrow vectors for small k; pack and the passes make the same choice
 * from k, so the packed layout always matches. */
static int avx512_narrow_f32(size_t k)
{
    return k <= AVX512_NARROW_F32_MAX_K;
}

static size_t avx512_no_scratch(size_t k, size_t d)
{
    (void)k;
    (void)d;
    return 0;
}

static size_t avx512_packed_size_f32(size_t k, size_t d)
{
    return avx512_narrow_f32(k) ? packed_size_ymm_f32(k, d) : packed_size_zmm_f32(k, d);
}

static void avx512_pack_f32(const double *centers, size_t k, size_t d, const double *shift,
                            void *packed)
{
    if (avx512_narrow_f32(k))
        pack_ymm_f32(centers, k, d, shift, packed);
    else
        pack_zmm_f32(centers, k, d, shift, packed);
}

static void avx512_assign_f32(const void *x, size_t rows, size_t d, const void *packed, size_t k,
                              int32_t *labels, double *distances, void *scratch)
{
    if (avx512_narrow_f32(k))
        assign_ymm_f32(x, rows, d, packed, k, labels, distances, scratch);
    else
        assign_zmm_f32(x, rows, d, packed, k, labels, distances, scratch);
}

static void avx512_assign_accumulate_f32(const void *x, size_t rows, size_t d,
                                         const double *weights, const void *packed, size_t k,
                                         int32_t *labels, kseg_block_sums *sums, void *scratch)
{
    if (avx512_narrow_f32(k))
        assign_accumulate_ymm_f32(x, rows, d, weights, packed, k, labels, sums, scratch);
    else
        assign_accumulate_zmm_f32(x, rows, d, weights, packed, k, labels, sums, scratch);
}

const kseg_assign_kernel kseg_assign_avx512_f32 = {
    .name = "avx512",
    .dtype = KSEG_FLOAT32,
    .cpu_supported = avx512_supported,
    .preferred = avx512_preferred,
    .packed_size = avx512_packed_size_f32,
    .scratch_size = avx512_no_scratch,
    .pack = avx512_pack_f32,
    .assign = avx512_assign_f32,
    .assign_accumulate = avx512_assign_accumulate_f32,
};

const kseg_assign_kernel kseg_assign_avx512_f64 = {
    .name = "avx512",
    .dtype = KSEG_FLOAT64,
    .cpu_supported = avx512_supported,
    .preferred = avx512_preferred,
    .packed_size = packed_size_zmm_f64,
    .scratch_size = avx512_no_scratch,
    .pack = pack_zmm_f64,
    .assign = assign_zmm_f64,
    .assign_accumulate = assign_accumulate_zmm_f64,
};

#else /* KSEG_AVX512_BODY: the kernel body for one vector shape */

#define NAME(stem) AVX512_CAT(stem, SUFFIX)
#define ROWS AVX512_ROWS_PER_BLOCK
#define PANEL AVX512_VECTORS_PER_PANEL
#define ROWS_PER_PASS AVX512_ROWS_PER_PANEL_PASS

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
static AVX512_ALWAYS_INLINE void NAME(panel_)(const T *x, size_t d, const T *panel, const int rows,
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
static AVX512_ALWAYS_INLINE void NAME(nearest_rows_)(const T *x, size_t d, const T *packed,
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
    MASK tail = (k % LANES) ? (MASK)((1u << (k % LANES)) - 1u) : MASK_ALL;
    const T *panel = packed;
    for (size_t first = 0; first < vectors; first += PANEL) {
        size_t count = vectors - first < PANEL ? vectors - first : PANEL;
        MASK last_valid = first + count == vectors ? tail : MASK_ALL;
        int32_t first_center = (int32_t)(first * LANES);
        switch (count) {
        case 4: NAME(panel_)(x, d, panel, rows, 4, first_center, last_valid, best, best_index); break;
        case 3: NAME(panel_)(x, d, panel, rows, 3, first_center, last_valid, best, best_index); break;
        case 2: NAME(panel_)(x, d, panel, rows, 2, first_center, last_valid, best, best_index); break;
        default: NAME(panel_)(x, d, panel, rows, 1, first_center, last_valid, best, best_index); break;
        }
        panel += count * LANES * d;
    }
    for (int r = 0; r < rows; r++)
        labels[r] = ARGMIN(best[r], best_index[r], &distances[r]);
}

/* The same for k <= LANES, where all centers fit one vector: up to eight rows share each loaded
 * center vector, which gives eight independent chains of fused multiply-adds, enough to hide their
 * latency. */
static AVX512_ALWAYS_INLINE void NAME(one_vector_rows_)(const T *x, size_t d, const T *packed,
                                                        size_t k, const int rows,
                                                        int32_t *labels, T *distances)
{
    VEC best[ROWS];
    IVEC best_index[ROWS];
    for (int r = 0; r < rows; r++) {
        best[r] = V_INF();
        best_index[r] = I_ZERO();
    }
    MASK valid = (k % LANES) ? (MASK)((1u << (k % LANES)) - 1u) : MASK_ALL;
    NAME(panel_)(x, d, packed, rows, 1, 0, valid, best, best_index);
    for (int r = 0; r < rows; r++)
        labels[r] = ARGMIN(best[r], best_index[r], &distances[r]);
}

_Static_assert(AVX512_VECTORS_PER_PANEL == 4, "panel_ is instantiated for 1 to 4 vectors");
_Static_assert(AVX512_ROWS_PER_BLOCK == 8, "nearest_block_ is instantiated for 1 to 8 rows");
_Static_assert(AVX512_ROWS_PER_PANEL_PASS == 4, "nearest_block_ goes four rows at a time");

/* One block of up to ROWS rows; a separate function so that the row counts are instantiated once
 * and shared by both passes. One center vector is done eight rows at a time; more are done four
 * rows at a time, since more accumulators would not fit the registers (eight rows times two
 * vectors measured no faster than four rows). */
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
 * the reference does; without weights the product is the row itself (a product by 1 is exact).
 * The tail of d is done with a 256-bit vector and scalars rather than masked loads and stores:
 * the next row with the same label reads these sums right away, and CPUs forward a masked store's
 * data to a later load poorly or not at all (the load then waits until the store reaches the
 * cache); this measured clearly faster for small d. */
static AVX512_ALWAYS_INLINE void NAME(add_row_)(const T *row, size_t d, const double *weight,
                                                double *target)
{
    size_t j = 0;
    if (weight) {
        __m512d w = _mm512_set1_pd(*weight);
        for (; j + 8 <= d; j += 8)
            _mm512_storeu_pd(target + j, _mm512_add_pd(_mm512_loadu_pd(target + j),
                                                       avx512_product_pd(w, ROW_TO_PD(row + j))));
        if (j + 4 <= d) {
            __m256d product = avx512_product_pd4(_mm512_castpd512_pd256(w), ROW_TO_PD4(row + j));
            _mm256_storeu_pd(target + j, _mm256_add_pd(_mm256_loadu_pd(target + j), product));
            j += 4;
        }
        switch (d - j) { /* at most three: a plain switch keeps the compiler from vectorizing it */
        case 3: target[j + 2] += avx512_product(*weight, (double)row[j + 2]); /* fall through */
        case 2: target[j + 1] += avx512_product(*weight, (double)row[j + 1]); /* fall through */
        case 1: target[j] += avx512_product(*weight, (double)row[j]); break;
        default: break;
        }
    } else {
        for (; j + 8 <= d; j += 8)
            _mm512_storeu_pd(target + j,
                             _mm512_add_pd(_mm512_loadu_pd(target + j), ROW_TO_PD(row + j)));
        if (j + 4 <= d) {
            _mm256_storeu_pd(target + j,
                             _mm256_add_pd(_mm256_loadu_pd(target + j), ROW_TO_PD4(row + j)));
            j += 4;
        }
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
                inertia += avx512_product(weights[row], (double)block_distances[r]);
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
#undef KSEG_AVX512_BODY
#undef T
#undef SUFFIX
#undef LANES
#undef VEC
#undef IVEC
#undef MASK
#undef MASK_ALL
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
#undef ROW_TO_PD4

#endif /* KSEG_AVX512_BODY */
