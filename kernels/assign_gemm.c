/* Expanded-form assignment kernels (float32 and float64) for large k * d: squared distances as
 * |x - s|^2 - 2 (x - s).(c - s) + |c - s|^2 with the cross products of a tile of rows and all
 * centers computed by one BLAS matrix product. Results agree with the reference to rounding only.
 *
 * This file is a small template: the part below the #else is compiled once per element type (it
 * includes this file again with the type's macros defined), and the part above holds what the
 * types share and the two kernel descriptors. */
#ifndef KSEG_GEMM_BODY

#include <cblas.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMM_HAVE_X86_ARGMIN 1
#endif

#include "kernels.h"

/* The tile of rows is sized so that the tile's distances (rows x k) and its centered copy
 * (rows x d) together take about this many bytes, which stays inside a 1 MiB second-level cache
 * next to the parts of the centers the matrix product keeps there. */
#define GEMM_TILE_BYTES (384u * 1024u)
#define GEMM_TILE_MIN_ROWS 16u
#define GEMM_TILE_MAX_ROWS 512u
#define GEMM_ALIGN 64u

#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)

static int gemm_supported(void) { return 1; }

/* Where the matrix product should replace the direct kernels. Per center and feature the direct
 * kernels issue a subtraction and a fused multiply-add, the matrix product one fused multiply-add.
 * On AMD Zen cores subtractions run on their own adder pipes, so both forms reach the same rate:
 * measured on Zen 4 (one thread, float32), the direct AVX-512 kernel was 10-30 % faster than this
 * one at every shape tried, from (d, k) = (32, 32) to (256, 1000), because this one also pays for
 * the tile copy and a separate argmin pass. On cores where subtractions share the multiply-add
 * ports (Intel's), the direct kernels run at about half the rate, and the matrix product should win
 * once k and d are both large enough to amortize those extra passes; that case is not measured
 * here. */
static int gemm_preferred(size_t k, size_t d)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_is("amd"))
        return 0;
#endif
    return d >= 32 && k >= 32;
}

static size_t gemm_round_up(size_t bytes)
{
    return (bytes + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
}

/* Rows per tile for this shape; the same for every call with the same (k, d), so scratch_size and
 * the passes agree. */
static size_t gemm_tile_rows(size_t k, size_t d, size_t element)
{
    size_t rows = GEMM_TILE_BYTES / ((k + d + 1) * element);
    if (rows < GEMM_TILE_MIN_ROWS)
        rows = GEMM_TILE_MIN_ROWS;
    if (rows > GEMM_TILE_MAX_ROWS)
        rows = GEMM_TILE_MAX_ROWS;
    return rows;
}

/* Which vector argmin this CPU can run: 2 for AVX-512, 1 for AVX2, 0 for the portable loop. */
static int gemm_vector_level(void)
{
#ifdef GEMM_HAVE_X86_ARGMIN
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

#ifdef GEMM_HAVE_X86_ARGMIN
/* Vector argmins of norms[c] + products[c] over c < k, ties to the lowest c. Each lane keeps the
 * smallest value of its residue class and the first index reaching it (strict comparison in
 * increasing c); the lane reduction then takes the smallest value and, among lanes holding it, the
 * smallest index. They are compiled for their instruction set by target attributes and called only
 * after the run-time check above, so this file needs no instruction-set flags. */
#define GEMM_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#define GEMM_AVX2 __attribute__((target("avx2,fma")))

GEMM_AVX512 static int32_t gemm_argmin_avx512_f32(const float *products, const float *norms,
                                                  size_t k, float *value)
{
    __m512 best = _mm512_set1_ps(__builtin_inff());
    __m512i best_index = _mm512_setzero_si512();
    __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    size_t c = 0;
    for (; c + 16 <= k; c += 16) {
        __m512 v = _mm512_add_ps(_mm512_loadu_ps(products + c), _mm512_loadu_ps(norms + c));
        __mmask16 smaller = _mm512_cmp_ps_mask(v, best, _CMP_LT_OQ);
        best = _mm512_mask_mov_ps(best, smaller, v);
        best_index = _mm512_mask_mov_epi32(best_index, smaller, index);
        index = _mm512_add_epi32(index, step);
    }
    if (c < k) {
        __mmask16 rest = (__mmask16)((1u << (k - c)) - 1u);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(rest, products + c),
                                 _mm512_maskz_loadu_ps(rest, norms + c));
        __mmask16 smaller = _mm512_mask_cmp_ps_mask(rest, v, best, _CMP_LT_OQ);
        best = _mm512_mask_mov_ps(best, smaller, v);
        best_index = _mm512_mask_mov_epi32(best_index, smaller, index);
    }
    float minimum = _mm512_reduce_min_ps(best);
    __mmask16 equal = _mm512_cmp_ps_mask(best, _mm512_set1_ps(minimum), _CMP_EQ_OQ);
    *value = minimum;
    return _mm512_mask_reduce_min_epi32(equal, best_index);
}

GEMM_AVX512 static int32_t gemm_argmin_avx512_f64(const double *products, const double *norms,
                                                  size_t k, double *value)
{
    __m512d best = _mm512_set1_pd(__builtin_inf());
    __m256i best_index = _mm256_setzero_si256();
    __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    size_t c = 0;
    for (; c + 8 <= k; c += 8) {
        __m512d v = _mm512_add_pd(_mm512_loadu_pd(products + c), _mm512_loadu_pd(norms + c));
        __mmask8 smaller = _mm512_cmp_pd_mask(v, best, _CMP_LT_OQ);
        best = _mm512_mask_mov_pd(best, smaller, v);
        best_index = _mm256_mask_mov_epi32(best_index, smaller, index);
        index = _mm256_add_epi32(index, step);
    }
    if (c < k) {
        __mmask8 rest = (__mmask8)((1u << (k - c)) - 1u);
        __m512d v = _mm512_add_pd(_mm512_maskz_loadu_pd(rest, products + c),
                                  _mm512_maskz_loadu_pd(rest, norms + c));
        __mmask8 smaller = _mm512_mask_cmp_pd_mask(rest, v, best, _CMP_LT_OQ);
        best = _mm512_mask_mov_pd(best, smaller, v);
        best_index = _mm256_mask_mov_epi32(best_index, smaller, index);
    }
    double minimum = _mm512_reduce_min_pd(best);
    __mmask8 equal = _mm512_cmp_pd_mask(best, _mm512_set1_pd(minimum), _CMP_EQ_OQ);
    *value = minimum;
    return _mm512_mask_reduce_min_epi32((__mmask16)equal, _mm512_castsi256_si512(best_index));
}

/* The AVX2 versions hold center indices as floating-point values of the element type (exact far
 * beyond any k) so that one compare mask blends both the values and the indices. */
GEMM_AVX2 static int32_t gemm_argmin_avx2_f32(const float *products, const float *norms, size_t k,
                                              float *value)
{
    __m256 best = _mm256_set1_ps(__builtin_inff());
    __m256 best_index = _mm256_setzero_ps();
    __m256 index = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 step = _mm256_set1_ps(8);
    size_t c = 0;
    for (; c + 8 <= k; c += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(products + c), _mm256_loadu_ps(norms + c));
        __m256 smaller = _mm256_cmp_ps(v, best, _CMP_LT_OQ);
        best = _mm256_blendv_ps(best, v, smaller);
        best_index = _mm256_blendv_ps(best_index, index, smaller);
        index = _mm256_add_ps(index, step);
    }
    float lane_best[8], lane_index[8];
    _mm256_storeu_ps(lane_best, best);
    _mm256_storeu_ps(lane_index, best_index);
    float minimum = lane_best[0];
    int32_t found = (int32_t)lane_index[0];
    for (int lane = 1; lane < 8; lane++)
        if (lane_best[lane] < minimum ||
            (lane_best[lane] == minimum && (int32_t)lane_index[lane] < found)) {
            minimum = lane_best[lane];
            found = (int32_t)lane_index[lane];
        }
    /* The last k % 8 centers, in increasing order after every vector lane. */
    for (; c < k; c++) {
        float v = products[c] + norms[c];
        if (v < minimum) {
            minimum = v;
            found = (int32_t)c;
        }
    }
    *value = minimum;
    return found;
}

GEMM_AVX2 static int32_t gemm_argmin_avx2_f64(const double *products, const double *norms,
                                              size_t k, double *value)
{
    __m256d best = _mm256_set1_pd(__builtin_inf());
    __m256d best_index = _mm256_setzero_pd();
    __m256d index = _mm256_setr_pd(0, 1, 2, 3);
    const __m256d step = _mm256_set1_pd(4);
    size_t c = 0;
    for (; c + 4 <= k; c += 4) {
        __m256d v = _mm256_add_pd(_mm256_loadu_pd(products + c), _mm256_loadu_pd(norms + c));
        __m256d smaller = _mm256_cmp_pd(v, best, _CMP_LT_OQ);
        best = _mm256_blendv_pd(best, v, smaller);
        best_index = _mm256_blendv_pd(best_index, index, smaller);
        index = _mm256_add_pd(index, step);
    }
    double lane_best[4], lane_index[4];
    _mm256_storeu_pd(lane_best, best);
    _mm256_storeu_pd(lane_index, best_index);
    double minimum = lane_best[0];
    int32_t found = (int32_t)lane_index[0];
    for (int lane = 1; lane < 4; lane++)
        if (lane_best[lane] < minimum ||
            (lane_best[lane] == minimum && (int32_t)lane_index[lane] < found)) {
            minimum = lane_best[lane];
            found = (int32_t)lane_index[lane];
        }
    for (; c < k; c++) {
        double v = products[c] + norms[c];
        if (v < minimum) {
            minimum = v;
            found = (int32_t)c;
        }
    }
    *value = minimum;
    return found;
}
#endif /* GEMM_HAVE_X86_ARGMIN */

/* ---- float32 */
#define KSEG_GEMM_BODY
#define T float
#define SUFFIX f32
#define GEMM cblas_sgemm
#define ARGMIN_AVX512 gemm_argmin_avx512_f32
#define ARGMIN_AVX2 gemm_argmin_avx2_f32
#include "assign_gemm.c"

/* ---- float64 */
#define KSEG_GEMM_BODY
#define T double
#define SUFFIX f64
#define GEMM cblas_dgemm
#define ARGMIN_AVX512 gemm_argmin_avx512_f64
#define ARGMIN_AVX2 gemm_argmin_avx2_f64
#include "assign_gemm.c"

const kseg_assign_kernel kseg_assign_gemm_f32 = {
    .name = "gemm",
    .expanded_form = 1,
    .dtype = KSEG_FLOAT32,
    .cpu_supported = gemm_supported,
    .preferred = gemm_preferred,
    .packed_size = packed_size_f32,
    .scratch_size = scratch_size_f32,
    .pack = pack_f32,
    .assign = assign_f32,
    .assign_accumulate = assign_accumulate_f32,
};

const kseg_assign_kernel kseg_assign_gemm_f64 = {
    .name = "gemm",
    .expanded_form = 1,
    .dtype = KSEG_FLOAT64,
    .cpu_supported = gemm_supported,
    .preferred = gemm_preferred,
    .packed_size = packed_size_f64,
    .scratch_size = scratch_size_f64,
    .pack = pack_f64,
    .assign = assign_f64,
    .assign_accumulate = assign_accumulate_f64,
};

#else /* KSEG_GEMM_BODY: the kernel body for one element type */

#define NAME(stem) GEMM_CAT(stem, SUFFIX)

/* The packed buffer holds, each part starting on a 64-byte boundary: the shift [d], the centered
 * centers' squared norms [k], and the centered centers [k x d], all in the element type. */
static size_t NAME(packed_size_)(size_t k, size_t d)
{
    return gemm_round_up(d * sizeof(T)) + gemm_round_up(k * sizeof(T)) + k * d * sizeof(T);
}

static void NAME(pack_)(const double *centers, size_t k, size_t d, const double *shift,
                        void *packed)
{
    T *shift_out = packed;
    T *norms = (T *)((char *)packed + gemm_round_up(d * sizeof(T)));
    T *centered = (T *)((char *)norms + gemm_round_up(k * sizeof(T)));
    for (size_t j = 0; j < d; j++)
        shift_out[j] = shift ? (T)shift[j] : (T)0;
    for (size_t c = 0; c < k; c++) {
        /* The center is first rounded to the element type, as the direct kernels see it, and the
           rows' shift (rounded the same way) subtracted from it, so that x - c is the difference
           of the rounded values up to the rounding of the two centered terms. The norm is taken
           of the rounded centered center, in double, so that it matches the vector the matrix
           product actually uses. */
        double norm = 0.0;
        for (size_t j = 0; j < d; j++) {
            T value = (T)((double)(T)centers[c * d + j] - (double)shift_out[j]);
            centered[c * d + j] = value;
            norm += (double)value * (double)value;
        }
        norms[c] = (T)norm;
    }
}

/* Scratch: the tile's centered rows [tile x d], their squared norms [tile], and the products of
 * the tile with the centers [tile x k], each part starting on a 64-byte boundary. */
static size_t NAME(scratch_size_)(size_t k, size_t d)
{
    size_t tile = gemm_tile_rows(k, d, sizeof(T));
    return gemm_round_up(tile * d * sizeof(T)) + gemm_round_up(tile * sizeof(T)) +
           tile * k * sizeof(T);
}

static int32_t NAME(argmin_portable_)(const T *products, const T *norms, size_t k, T *value)
{
    T minimum = products[0] + norms[0];
    int32_t found = 0;
    for (size_t c = 1; c < k; c++) {
        T v = products[c] + norms[c];
        if (v < minimum) { /* strict: ties keep the lower index */
            minimum = v;
            found = (int32_t)c;
        }
    }
    *value = minimum;
    return found;
}

/* Nearest centers of one tile of rows (at most the tile size): the tile is centered into scratch,
 * multiplied with the centered centers (alpha = -2 folds the factor of the cross term into the
 * product), and each row's minimum of |c - s|^2 - 2 (x - s).(c - s) found; adding |x - s|^2 and
 * clamping at zero (rounding can make a tiny distance negative) gives the distance. */
static void NAME(nearest_tile_)(const T *x, size_t rows, size_t d, const void *packed, size_t k,
                                void *scratch, int level, int32_t *labels, T *distances)
{
    const T *shift = packed;
    const T *norms = (const T *)((const char *)packed + gemm_round_up(d * sizeof(T)));
    const T *centered = (const T *)((const char *)norms + gemm_round_up(k * sizeof(T)));
    size_t tile = gemm_tile_rows(k, d, sizeof(T));
    T *tile_rows = scratch;
    T *row_norms = (T *)((char *)scratch + gemm_round_up(tile * d * sizeof(T)));
    T *products = (T *)((char *)row_norms + gemm_round_up(tile * sizeof(T)));

    for (size_t i = 0; i < rows; i++) {
        T norm = 0;
        for (size_t j = 0; j < d; j++) {
            T value = x[i * d + j] - shift[j];
            tile_rows[i * d + j] = value;
            norm += value * value;
        }
        row_norms[i] = norm;
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)k, (int)d, (T)-2, tile_rows,
         (int)d, centered, (int)d, (T)0, products, (int)k);
    for (size_t i = 0; i < rows; i++) {
        const T *row_products = products + i * k;
        T value;
        int32_t best;
#ifdef GEMM_HAVE_X86_ARGMIN
        if (level == 2)
            best = ARGMIN_AVX512(row_products, norms, k, &value);
        else if (level == 1)
            best = ARGMIN_AVX2(row_products, norms, k, &value);
        else
#endif
            best = NAME(argmin_portable_)(row_products, norms, k, &value);
        (void)level;
        T distance = row_norms[i] + value;
        labels[i] = best;
        distances[i] = distance > 0 ? distance : (T)0;
    }
}

static void NAME(assign_)(const void *x, size_t rows, size_t d, const void *packed, size_t k,
                          int32_t *labels, double *distances, void *scratch)
{
    const T *data = x;
    size_t tile = gemm_tile_rows(k, d, sizeof(T));
    int level = gemm_vector_level();
    for (size_t i = 0; i < rows; i += tile) {
        size_t count = rows - i < tile ? rows - i : tile;
        T tile_distances[GEMM_TILE_MAX_ROWS];
        NAME(nearest_tile_)(data + i * d, count, d, packed, k, scratch, level, labels + i,
                            tile_distances);
        if (distances)
            for (size_t r = 0; r < count; r++)
                distances[i + r] = (double)tile_distances[r];
    }
}

static void NAME(assign_accumulate_)(const void *x, size_t rows, size_t d, const double *weights,
                                     const void *packed, size_t k, int32_t *labels,
                                     kseg_block_sums *sums, void *scratch)
{
    const T *data = x;
    size_t tile = gemm_tile_rows(k, d, sizeof(T));
    int level = gemm_vector_level();
    /* Kept in locals so that the stores into the sums need not be assumed to change them. */
    double inertia = sums->inertia;
    int64_t changed = sums->changed;
    for (size_t i = 0; i < rows; i += tile) {
        size_t count = rows - i < tile ? rows - i : tile;
        int32_t tile_labels[GEMM_TILE_MAX_ROWS];
        T tile_distances[GEMM_TILE_MAX_ROWS];
        NAME(nearest_tile_)(data + i * d, count, d, packed, k, scratch, level, tile_labels,
                            tile_distances);
        /* The accumulation is written exactly as in the reference and compiled with the same
           flags, so sums are bitwise those of the reference wherever the labels agree. */
        for (size_t r = 0; r < count; r++) {
            size_t row_index = i + r;
            const T *row = data + row_index * d;
            int32_t best = tile_labels[r];
            double weight = weights ? weights[row_index] : 1.0;
            if (labels[row_index] != best)
                changed++;
            labels[row_index] = best;
            double *target = sums->sums + (size_t)best * d;
            for (size_t j = 0; j < d; j++)
                target[j] += weight * (double)row[j];
            sums->weights[best] += weight;
            inertia += weight * (double)tile_distances[r];
        }
    }
    sums->inertia = inertia;
    sums->changed = changed;
}

#undef NAME
#undef KSEG_GEMM_BODY
#undef T
#undef SUFFIX
#undef GEMM
#undef ARGMIN_AVX512
#undef ARGMIN_AVX2

#endif /* KSEG_GEMM_BODY */
