/* AVX-512 direct-difference assignment kernels with rows in the vector lanes ("avx512-rows"): 16
 * float32 or 8 float64 rows per vector, each lane running the reference's arithmetic, so results
 * are bitwise the reference's; the kernel for d <= 16 and few centers (see rows_preferred). The
 * same code in expanded form ("avx512-expanded", see expanded_preferred_f32) agrees with the
 * reference to rounding and is faster where it is preferred.
 *
 * Like assign_avx512.c this file is a small template: the part below the #else is compiled once per
 * element type (the file includes itself with the type's macros defined), and the part above holds
 * what the types share and the kernel descriptors. */
#ifndef KSEG_AVX512_ROWS_BODY

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Centers whose distances are computed together: four independent chains of fused multiply-adds
 * hide the four-cycle latency of one chain at one vector instruction per cycle. */
#define ROWS_GROUP 4

#define ROWS_ALWAYS_INLINE inline __attribute__((always_inline))
#define ROWS_CAT_(a, b) a##b
#define ROWS_CAT(a, b) ROWS_CAT_(a, b)

static int rows_supported(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
}

/* weight * value without letting the compiler fuse it with the following addition: the reference
 * rounds the product and then the sum, while a fused multiply-add rounds once. The empty assembly
 * statement makes the product an opaque value that must exist in a register. */
static ROWS_ALWAYS_INLINE __m512d rows_product_pd(__m512d a, __m512d b)
{
    __m512d product = _mm512_mul_pd(a, b);
    __asm__("" : "+v"(product));
    return product;
}

static ROWS_ALWAYS_INLINE __m256d rows_product_pd4(__m256d a, __m256d b)
{
    __m256d product = _mm256_mul_pd(a, b);
    __asm__("" : "+v"(product));
    return product;
}

static ROWS_ALWAYS_INLINE double rows_product(double a, double b)
{
    double product = a * b;
    __asm__("" : "+v"(product));
    return product;
}

/* The smallest power of two >= d, for 1 <= d <= 16. */
#define ROWS_POW2(d) ((d) <= 1 ? 1 : (d) <= 2 ? 2 : (d) <= 4 ? 4 : (d) <= 8 ? 8 : 16)

/* The fused pass adds the rows into a private copy of the sums in scratch, one row of `stride`
 * doubles per center: d sums, then, when d is not a multiple of 8, the center's weight in the
 * next lane (so that one vector update adds both), padded to a power of two up to 8 doubles and to
 * whole 64-byte lines beyond. The copy is 64-byte aligned, so a row's update is one or a few
 * aligned vector loads and stores that never straddle two cache lines (a straddling 512-bit
 * update, as the caller's sums at an odd offset give, measured about three times slower on AMD
 * Zen 4). Copying in and out is exact, and every lane does the reference's additions, so the sums
 * and weights are unchanged. Beyond small d the copy is used up to this many doubles, about one
 * per row of a driver block. */
#define ROWS_PRIVATE_LIMIT ((size_t)8192)

static ROWS_ALWAYS_INLINE int rows_weight_in_row(size_t d)
{
    return d % 8 != 0;
}

static ROWS_ALWAYS_INLINE size_t rows_stride(size_t d)
{
    if (d % 8 == 0)
        return d;
    return d < 8 ? (size_t)ROWS_POW2(d + 1) : (d + 7) / 8 * 8;
}

/* ---- float32: 16 rows per vector */
#define KSEG_AVX512_ROWS_BODY
#define T float
#define SUFFIX f32
#define LANES 16
/* Tiles with at most this many features keep every feature vector in a register (16 of the 32
   vector registers, with room left for four accumulators and the running minimum). */
#define MAX_D 16
#define VEC __m512
#define IVEC __m512i
#define MASK __mmask16
#define MASK_ALL ((__mmask16)0xFFFF)
#define PERM_INT int32_t
#define V_ZERO() _mm512_setzero_ps()
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_MASKZ_LOADU(mask, p) _mm512_maskz_loadu_ps(mask, p)
#define V_STORE(p, a) _mm512_store_ps(p, a)
#define V_SET1(value) _mm512_set1_ps(value)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_LESS(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_SELECT(source, mask, a) _mm512_mask_mov_ps(source, mask, a)
#define V_PERM2(a, index, b) _mm512_permutex2var_ps(a, index, b)
#define V_PERM1(index, a) _mm512_permutexvar_ps(index, a)
#define UNZIP_EVEN() _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define UNZIP_ODD() _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define I_ZERO() _mm512_setzero_si512()
#define I_SET1(n) _mm512_set1_epi32(n)
#define I_SELECT(source, mask, a) _mm512_mask_mov_epi32(source, mask, a)
#define I_STOREU(p, a) _mm512_storeu_si512((void *)(p), a)
#define I_CHANGED(p, a)                                                                            \
    _mm_popcnt_u32(_mm512_cmpneq_epi32_mask(_mm512_loadu_si512((const void *)(p)), a))
#define STORE_AS_PD(p, a)                                                                          \
    do {                                                                                           \
        _mm512_storeu_pd(p, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));                           \
        _mm512_storeu_pd((p) + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)));                  \
    } while (0)
#define ROW_TO_PD(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define ROW_TO_PD4(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#define ROW_TO_PD8_MASKED(mask, p) _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mask, p))
#define ROW_TO_PD4_MASKED(mask, p) _mm256_cvtps_pd(_mm_maskz_loadu_ps(mask, p))
#define I_INDEX_STEP(i) _mm512_set1_epi32(i)
#define I_ADD(a, b) _mm512_add_epi32(a, b)
#include "assign_avx512_rows.c"

/* ---- float64: 8 rows per vector */
#define KSEG_AVX512_ROWS_BODY
#define T double
#define SUFFIX f64
#define LANES 8
#define MAX_D 16
#define VEC __m512d
#define IVEC __m256i
#define MASK __mmask8
#define MASK_ALL ((__mmask8)0xFF)
#define PERM_INT int64_t
#define V_ZERO() _mm512_setzero_pd()
#define V_LOADU(p) _mm512_loadu_pd(p)
#define V_MASKZ_LOADU(mask, p) _mm512_maskz_loadu_pd(mask, p)
#define V_STORE(p, a) _mm512_store_pd(p, a)
#define V_SET1(value) _mm512_set1_pd(value)
#define V_SUB(a, b) _mm512_sub_pd(a, b)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_MAX(a, b) _mm512_max_pd(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_LESS(a, b) _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ)
#define V_SELECT(source, mask, a) _mm512_mask_mov_pd(source, mask, a)
#define V_PERM2(a, index, b) _mm512_permutex2var_pd(a, index, b)
#define V_PERM1(index, a) _mm512_permutexvar_pd(index, a)
#define UNZIP_EVEN() _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14)
#define UNZIP_ODD() _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15)
#define I_ZERO() _mm256_setzero_si256()
#define I_SET1(n) _mm256_set1_epi32(n)
#define I_SELECT(source, mask, a) _mm256_mask_mov_epi32(source, mask, a)
#define I_STOREU(p, a) _mm256_storeu_si256((__m256i *)(void *)(p), a)
#define I_CHANGED(p, a)                                                                            \
    _mm_popcnt_u32(                                                                                \
        _mm256_cmpneq_epi32_mask(_mm256_loadu_si256((const __m256i *)(const void *)(p)), a))
#define STORE_AS_PD(p, a) _mm512_storeu_pd(p, a)
#define ROW_TO_PD(p) _mm512_loadu_pd(p)
#define ROW_TO_PD4(p) _mm256_loadu_pd(p)
#define ROW_TO_PD8_MASKED(mask, p) _mm512_maskz_loadu_pd(mask, p)
#define ROW_TO_PD4_MASKED(mask, p) _mm256_maskz_loadu_pd(mask, p)
#define I_INDEX_STEP(i) _mm256_set1_epi32(i)
#define I_ADD(a, b) _mm256_add_epi32(a, b)
#include "assign_avx512_rows.c"

/* Preferred where it measured faster than the center-lane "avx512" kernel on AMD Zen 4, in both
 * element types, for d <= 16 (beyond, where the tile goes through memory, it lost at every k).
 * Its cost per row grows with k * (d + about 2): per center and tile a compare and two selects
 * besides the d subtractions and multiply-adds, so at small d many centers favour one center per
 * lane. ns/row of the fused pass, one thread, f32 (f64), avx512 vs avx512-rows:
 *   d=1:  k=32 6.6 vs 4.4 (9.4 vs 5.7)      k=64 8.4 vs 8.1 (12.6 vs 13.0)
 *   d=2:  k=64 13.1 vs 9.1 (15.7 vs 14.3)   k=128 14.9 vs 17.0 (24.8 vs 30.4)
 *   d=4:  k=64 12.6 vs 10.1 (20.8 vs 17.9)  k=128 20.1 vs 19.3 (35.2 vs 36.1)
 *   d=6:  k=128 26.0 vs 21.6 (46.6 vs 40.0)
 *   d=8:  k=128 32.5 vs 26.8 (57.7 vs 50.4) k=256 57.4 vs 51.9 (109 vs 98.5)
 *   d=12: k=128 42.3 vs 39.3 (79.8 vs 76.3) k=256 79.2 vs 76.0 (152 vs 147)
 *   d=16: k=64 29.9 vs 27.5 (54.8 vs 51.1)  k=128 53.8 vs 54.4 (104 vs 106)
 *   d=17: k=8 9.3 vs 10.5 (14.3 vs 16.5)    d=32, k=32: 34.9 vs 35.2 (56.4 vs 76.5) */
static int rows_preferred(size_t k, size_t d)
{
    static const unsigned short max_k[17] = {0,  32,  64,  64,  64,  128, 256, 256, 256,
                                             256, 256, 256, 256, 64,  64,  64,  64};
    return d >= 1 && d <= 16 && k <= max_k[d];
}

const kseg_assign_kernel kseg_assign_avx512_rows_f32 = {
    .name = "avx512-rows",
    .dtype = KSEG_FLOAT32,
    .cpu_supported = rows_supported,
    .preferred = rows_preferred,
    .packed_size = packed_size_f32,
    .scratch_size = scratch_size_f32,
    .pack = pack_f32,
    .assign = assign_f32,
    .assign_accumulate = assign_accumulate_f32,
};

const kseg_assign_kernel kseg_assign_avx512_rows_f64 = {
    .name = "avx512-rows",
    .dtype = KSEG_FLOAT64,
    .cpu_supported = rows_supported,
    .preferred = rows_preferred,
    .packed_size = packed_size_f64,
    .scratch_size = scratch_size_f64,
    .pack = pack_f64,
    .assign = assign_f64,
    .assign_accumulate = assign_accumulate_f64,
};

/* The expanded-form variant ("avx512-expanded"): the same tiles, transpose and row-order
 * accumulation, but distances as |x - s|^2 + |c - s|^2 - 2 (x - s).(c - s), one fused
 * multiply-add per feature and center instead of a subtraction and a multiply-add. It agrees with
 * the reference only to rounding (labels may differ at near-ties), like the GEMM kernel, so
 * bound-based algorithms never use it.
 *
 * Why it is faster on AMD Zen 4, which runs a 512-bit operation as two halves on its 256-bit
 * pipes: multiply-adds go to two pipes (FP0, FP1), additions and subtractions to two others
 * (FP2, FP3). The direct form's d subtractions per center keep FP2/FP3 as busy as FP0/FP1, and
 * the fused pass's accumulation (a conversion and an addition per row, the weight and inertia
 * additions) also needs FP2/FP3; the expanded form leaves FP2/FP3 to the accumulation. ns/row of
 * the fused pass, one thread, float32, data in cache (minimum of 25 passes, bench/kernel_profile;
 * shared machine), avx512-rows vs avx512-expanded:
 *   d=2:  k=8 1.65 vs 1.66   k=32 4.66 vs 4.46   k=256 34.0 vs 31.7
 *   d=4:  k=8 2.37 vs 2.39   k=16 3.31 vs 3.18   k=64 10.2 vs 8.9    k=256 37.1 vs 32.0
 *   d=8:  k=4 2.68 vs 2.72   k=8 3.13 vs 2.86    k=16 4.74 vs 4.10   k=64 13.9 vs 11.8  k=256 50.9 vs 42.2
 *   d=12: k=8 5.16 vs 4.88   k=16 7.36 vs 7.69   k=64 24.0 vs 17.8   k=256 83.1 vs 63.2
 *   d=16: k=8 7.13 vs 6.92   k=16 9.29 vs 8.20   k=64 26.9 vs 22.9   k=256 98.1 vs 84.1
 * and against the center-lane avx512 kernel, which avx512-rows gives way to beyond its k limits:
 * d=16, k=128: 45.2 vs 57.6; d=16, k=256: 83.8 vs 107. Beyond d = 16 (the tile goes through
 * memory) it did not win consistently (d=17, k=8: 13.6 vs 9.5 for avx512), so it is preferred for
 * float32 with 4 <= d <= 16 and 8 <= k <= 256. float64 is chosen by name only: it was not
 * measured. */
static int expanded_preferred_f32(size_t k, size_t d)
{
    return d >= 4 && d <= 16 && k >= 8 && k <= 256;
}

static int expanded_preferred_f64(size_t k, size_t d)
{
    (void)k;
    (void)d;
    return 0;
}

const kseg_assign_kernel kseg_assign_avx512_expanded_f32 = {
    .name = "avx512-expanded",
    .dtype = KSEG_FLOAT32,
    .expanded_form = 1,
    .cpu_supported = rows_supported,
    .preferred = expanded_preferred_f32,
    .packed_size = packed_size_expanded_f32,
    .scratch_size = scratch_size_f32,
    .pack = pack_expanded_f32,
    .assign = assign_expanded_f32,
    .assign_accumulate = assign_accumulate_expanded_f32,
};

const kseg_assign_kernel kseg_assign_avx512_expanded_f64 = {
    .name = "avx512-expanded",
    .dtype = KSEG_FLOAT64,
    .expanded_form = 1,
    .cpu_supported = rows_supported,
    .preferred = expanded_preferred_f64,
    .packed_size = packed_size_expanded_f64,
    .scratch_size = scratch_size_f64,
    .pack = pack_expanded_f64,
    .assign = assign_expanded_f64,
    .assign_accumulate = assign_accumulate_expanded_f64,
};

#else /* KSEG_AVX512_ROWS_BODY: the kernel body for one element type */

#define NAME(stem) ROWS_CAT(stem, SUFFIX)

/* The packed centers are the reference's: [k x d] of the element type, so the inner loop reads
 * feature j of a center as a broadcast straight from memory. */
static size_t NAME(packed_size_)(size_t k, size_t d)
{
    return k * d * sizeof(T);
}

static void NAME(pack_)(const double *centers, size_t k, size_t d, const double *shift,
                        void *packed)
{
    (void)shift; /* the direct difference needs no centering */
    T *out = packed;
    for (size_t i = 0; i < k * d; i++)
        out[i] = (T)centers[i];
}

/* The expanded form's packed centers: [k x d] of -2 (c - s), then the norms |c - s|^2 [k], then
 * the shift s [d], all of the element type. As in the GEMM kernel, the center is first rounded to
 * the element type (as the direct kernels see it) and the shift, rounded the same way, subtracted
 * from it; the norm is taken of that rounded centered center in double and rounded once, so that
 * it matches the vector the products use. The factor -2 is exact in binary floating point, and
 * folding it into the centers leaves one fused multiply-add per feature and center, with the norm
 * as the starting value: |c - s|^2 - 2 (x - s).(c - s). */
static size_t NAME(packed_size_expanded_)(size_t k, size_t d)
{
    return (k * d + k + d) * sizeof(T);
}

static void NAME(pack_expanded_)(const double *centers, size_t k, size_t d, const double *shift,
                                 void *packed)
{
    T *scaled = packed;
    T *norms = scaled + k * d;
    T *shift_out = norms + k;
    for (size_t j = 0; j < d; j++)
        shift_out[j] = shift ? (T)shift[j] : (T)0;
    for (size_t c = 0; c < k; c++) {
        double norm = 0.0;
        for (size_t j = 0; j < d; j++) {
            T value = (T)((double)(T)centers[c * d + j] - (double)shift_out[j]);
            scaled[c * d + j] = (T)-2 * value;
            norm += (double)value * (double)value;
        }
        norms[c] = (T)norm;
    }
}

/* Whether the fused pass adds into the private copy of the sums (see ROWS_PRIVATE_LIMIT): always
 * for the small d that keep the features in registers, otherwise while the copy is small. */
static int NAME(private_sums_)(size_t k, size_t d)
{
    return d <= MAX_D || k * rows_stride(d) <= ROWS_PRIVATE_LIMIT;
}

/* The scratch buffer: the private copy of the sums (k rows of rows_stride(d) doubles, a multiple
 * of 64 bytes when a tile follows), then for more than MAX_D features the transposed tile, LANES
 * features at a time: feature j of the tile's rows is the vector at tile + j * LANES. */
static size_t NAME(private_bytes_)(size_t k, size_t d)
{
    return NAME(private_sums_)(k, d) ? k * rows_stride(d) * sizeof(double) : 0;
}

static size_t NAME(scratch_size_)(size_t k, size_t d)
{
    size_t tile = d > MAX_D ? (d + LANES - 1) / LANES * LANES * LANES * sizeof(T) : 0;
    return NAME(private_bytes_)(k, d) + tile;
}

/* ------------------------------------------------------------------ the transpose
 *
 * A tile of LANES rows is transposed so that vector j holds feature j of every row, in row order.
 * It is done in registers: gathers would load the same elements one by one and are slow on AMD
 * Zen 4. The trick is to see n vectors as one flat array of n * LANES elements whose position has
 * the bits (row, feature), the feature in the low log2(n) bits. An "unzip" (all even elements
 * first, then all odd ones) rotates those position bits right by one; it takes one two-source
 * permute per output vector, out[q] and out[q + n/2] being the even and odd elements of in[2q]
 * and in[2q + 1]. log2(n) unzips move the feature bits to the top: vector j then holds feature j
 * of all rows, which is the transpose. */
static ROWS_ALWAYS_INLINE void NAME(transpose_)(VEC *v, const int n)
{
    const __m512i even = UNZIP_EVEN(), odd = UNZIP_ODD();
    for (int width = 1; width < n; width *= 2) {
        VEC out[LANES];
#pragma GCC unroll 16
        for (int q = 0; q < n / 2; q++) {
            out[q] = V_PERM2(v[2 * q], even, v[2 * q + 1]);
            out[q + n / 2] = V_PERM2(v[2 * q], odd, v[2 * q + 1]);
        }
#pragma GCC unroll 16
        for (int q = 0; q < n; q++)
            v[q] = out[q];
    }
}

/* Index of the permute that spreads rows of d features into slots of p features (p = ROWS_POW2(d)
 * > d): slot lane l takes feature l % p of row l / p of the loaded elements; the lanes of the
 * padding features take any element, and their values are never used. */
static ROWS_ALWAYS_INLINE __m512i NAME(pad_index_)(const int d)
{
    const int p = ROWS_POW2(d);
    _Alignas(64) PERM_INT index[LANES];
    for (int l = 0; l < LANES; l++)
        index[l] = (PERM_INT)(l % p < d ? l / p * d + l % p : 0);
    return _mm512_load_si512((const void *)index);
}

/* LANES rows by at most LANES features from `width` features at column j0 of rows of stride d,
 * transposed: v[j] is feature j0 + j of the rows. Rows from count on are taken as zeros (their
 * lanes are computed but never used). */
static ROWS_ALWAYS_INLINE void NAME(transpose_columns_)(const T *tile, size_t count, size_t d,
                                                        size_t j0, VEC *v)
{
    size_t width = d - j0 < LANES ? d - j0 : LANES;
    MASK mask = width == LANES ? MASK_ALL : (MASK)((1u << width) - 1u);
#pragma GCC unroll 16
    for (int r = 0; r < LANES; r++)
        v[r] = (size_t)r < count ? V_MASKZ_LOADU(mask, tile + (size_t)r * d + j0) : V_ZERO();
    NAME(transpose_)(v, LANES);
}

/* A full tile of LANES rows of d <= MAX_D features (a compile-time constant after inlining) into
 * the feature vectors x[0..d-1]. With d <= LANES the tile's LANES * d elements are contiguous and
 * fill p = ROWS_POW2(d) vectors once each row is padded to p features (a masked load of LANES / p
 * rows and one permute per vector, none when d is a power of two), and the flat transpose above
 * applies with n = p. With more features the tile is transposed LANES columns at a time. */
static ROWS_ALWAYS_INLINE void NAME(load_tile_)(const T *tile, const int d, __m512i pad_index,
                                                VEC *x)
{
    if (d <= LANES) {
        const int p = ROWS_POW2(d), per_vector = LANES / p;
        const MASK mask = (MASK)((1u << (per_vector * d)) - 1u);
        VEC v[LANES];
#pragma GCC unroll 16
        for (int m = 0; m < p; m++) {
            if (p == d)
                v[m] = V_LOADU(tile + m * LANES);
            else if (per_vector == 1) /* one row per vector: the masked load pads with zeros */
                v[m] = V_MASKZ_LOADU(mask, tile + m * d);
            else
                v[m] = V_PERM1(pad_index, V_MASKZ_LOADU(mask, tile + m * per_vector * d));
        }
        NAME(transpose_)(v, p);
#pragma GCC unroll 16
        for (int j = 0; j < d; j++)
            x[j] = v[j];
        return;
    }
#pragma GCC unroll 4
    for (int j0 = 0; j0 < d; j0 += LANES) {
        VEC v[LANES];
        NAME(transpose_columns_)(tile, LANES, (size_t)d, (size_t)j0, v);
#pragma GCC unroll 16
        for (int j = 0; j < LANES; j++)
            if (j0 + j < d)
                x[j0 + j] = v[j];
    }
}

/* ------------------------------------------------------------------ adding rows to the sums */

/* target[j] += weight * row[j] in double for j < d, rounding the product and the sum separately as
 * the reference does; without weights the product is the row itself (a product by 1 is exact).
 * The tail of d is done with a 256-bit vector and scalars rather than masked loads and stores: the
 * next row with the same label reads these sums right away, and CPUs forward a masked store's data
 * to a later load poorly or not at all. */
static ROWS_ALWAYS_INLINE void NAME(add_row_)(const T *row, size_t d, const double *weight,
                                              double *target)
{
    size_t j = 0;
    if (weight) {
        __m512d w = _mm512_set1_pd(*weight);
        for (; j + 8 <= d; j += 8)
            _mm512_storeu_pd(target + j, _mm512_add_pd(_mm512_loadu_pd(target + j),
                                                       rows_product_pd(w, ROW_TO_PD(row + j))));
        if (j + 4 <= d) {
            __m256d product = rows_product_pd4(_mm512_castpd512_pd256(w), ROW_TO_PD4(row + j));
            _mm256_storeu_pd(target + j, _mm256_add_pd(_mm256_loadu_pd(target + j), product));
            j += 4;
        }
        switch (d - j) { /* at most three: a plain switch keeps the compiler from vectorizing it */
        case 3: target[j + 2] += rows_product(*weight, (double)row[j + 2]); /* fall through */
        case 2: target[j + 1] += rows_product(*weight, (double)row[j + 1]); /* fall through */
        case 1: target[j] += rows_product(*weight, (double)row[j]); break;
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

/* The same into the private copy: target is 64-byte aligned or, for d < 4, aligned to its stride.
 * The row is loaded with a masked load that reads zeros for the lanes past d; where d is not a
 * multiple of 8 the lane d then receives the weight (1.0 without weights), which adds it to the
 * center's weight, and the lanes after it add zeros to padding that is never copied out. Every
 * other lane does the reference's operations: weight * value rounded, then the sum. d <= 7 takes
 * one vector update, more one per 8 features. */
static ROWS_ALWAYS_INLINE void NAME(add_row_private_)(const T *row, size_t d, const double *weight,
                                                      double *target)
{
    double w = weight ? *weight : 1.0;
    if (d == 1) {
        double v = weight ? rows_product(w, (double)row[0]) : (double)row[0];
        _mm_store_pd(target, _mm_add_pd(_mm_load_pd(target), _mm_set_pd(w, v)));
    } else if (d < 4) {
        __m256d v = ROW_TO_PD4_MASKED((__mmask8)((1u << d) - 1u), row);
        if (weight)
            v = rows_product_pd4(_mm256_set1_pd(w), v);
        v = _mm256_mask_mov_pd(v, (__mmask8)(1u << d), _mm256_set1_pd(w));
        _mm256_store_pd(target, _mm256_add_pd(_mm256_load_pd(target), v));
    } else {
        for (size_t j = 0; j < d; j += 8) {
            size_t width = d - j < 8 ? d - j : 8;
            __m512d v = ROW_TO_PD8_MASKED((__mmask8)((1u << width) - 1u), row + j);
            if (weight)
                v = rows_product_pd(_mm512_set1_pd(w), v);
            if (width < 8)
                v = _mm512_mask_mov_pd(v, (__mmask8)(1u << width), _mm512_set1_pd(w));
            _mm512_store_pd(target + j, _mm512_add_pd(_mm512_load_pd(target + j), v));
        }
    }
}

/* A tile whose nearest centers are known and whose rows remain to be added to the sums, in row
 * order. terms[r] is weight * distance of row r, already rounded as in the reference (the product
 * of two doubles, or the distance itself without weights). */
typedef struct NAME(pending_) {
    const T *rows;
    const double *weights; /* the tile's weights, or NULL */
    size_t count;          /* 0 when there is no tile */
    double *sums;          /* the private copy (rows of `stride`) or the caller's sums */
    size_t stride;
    double *weight_sums;
    _Alignas(64) int32_t labels[LANES];
    _Alignas(64) double terms[LANES];
} NAME(pending_);

/* Adds the pending tile's rows with the reference's operations, and empties it. private_sums (a
 * compile-time constant) tells the layout of pending->sums. */
static ROWS_ALWAYS_INLINE void NAME(add_pending_)(NAME(pending_) *pending, size_t d,
                                                  const int private_sums, double *inertia)
{
    double total = *inertia;
    const double *weights = pending->weights;
    double *weight_sums = pending->weight_sums;
    for (size_t r = 0; r < pending->count; r++) {
        int32_t label = pending->labels[r];
        if (private_sums)
            NAME(add_row_private_)(pending->rows + r * d, d, weights ? weights + r : NULL,
                                   pending->sums + (size_t)label * pending->stride);
        else
            NAME(add_row_)(pending->rows + r * d, d, weights ? weights + r : NULL,
                           pending->sums + (size_t)label * d);
        if (!private_sums || !rows_weight_in_row(d))
            weight_sums[label] += weights ? weights[r] : 1.0;
        total += pending->terms[r];
    }
    pending->count = 0;
    *inertia = total;
}

/* ------------------------------------------------------------------ the nearest centers
 *
 * In the direct form (expanded 0), each lane computes, for each center in increasing order,
 * acc = 0 and for each feature j in order diff = x_j - c_j, acc = fma(diff, diff, acc): the
 * reference's operations on the same values in the same order, in the same type, so every lane's
 * distance is bitwise the reference's. The first
 * center's distance is the initial minimum with index 0, and a later center replaces it only when
 * strictly smaller (an ordered compare, false for NaN), exactly the reference's loop; ties thus
 * keep the lower index, and NaN distances behave as in the reference too. In the expanded form
 * (expanded 1, a compile-time constant like small_d) acc starts at |c - s|^2 and takes one
 * acc = fma(x_j - s_j, -2 (c_j - s_j), acc) per feature, with the same compare and selects. */

/* The distances of `count` consecutive centers (a compile-time constant) to the tile's rows. x[j]
 * is feature j of the rows: registers when d is a compile-time constant, the scratch buffer
 * otherwise. */
static ROWS_ALWAYS_INLINE void NAME(group_)(const VEC *x, size_t d, const T *center,
                                            const int count, const int expanded, const T *norms,
                                            VEC *acc)
{
    for (int i = 0; i < count; i++)
        acc[i] = expanded ? V_SET1(norms[i]) : V_ZERO();
#pragma GCC unroll 16
    for (size_t j = 0; j < d; j++) {
        VEC xj = x[j];
        for (int i = 0; i < count; i++) {
            if (expanded) {
                acc[i] = V_FMA(xj, V_SET1(center[(size_t)i * d + j]), acc[i]);
            } else {
                VEC diff = V_SUB(xj, V_SET1(center[(size_t)i * d + j]));
                acc[i] = V_FMA(diff, diff, acc[i]);
            }
        }
    }
}

static ROWS_ALWAYS_INLINE void NAME(centers_)(const VEC *x, size_t d, const T *centers,
                                              size_t first, const int count, const int initial,
                                              const int expanded, const T *norms, VEC *best,
                                              IVEC *best_index)
{
    VEC acc[ROWS_GROUP];
    NAME(group_)(x, d, centers + first * d, count, expanded, expanded ? norms + first : NULL, acc);
    /* One broadcast of the group's first index per group, and a constant added per center: a
       broadcast from a general register takes two cycles of a vector pipe on AMD Zen 4. */
    IVEC base = I_SET1((int32_t)first);
    for (int i = 0; i < count; i++) {
        if (initial && i == 0) {
            *best = acc[0];
            *best_index = I_ZERO();
            continue;
        }
        MASK smaller = V_LESS(acc[i], *best);
        *best = V_SELECT(*best, smaller, acc[i]);
        *best_index = I_SELECT(*best_index, smaller, I_ADD(base, I_INDEX_STEP(i)));
    }
}

_Static_assert(ROWS_GROUP == 4, "nearest_ is written for groups of four centers");

/* Nearest center of each lane's row: best (its distance) and best_index.
 *
 * In the fused pass the rows of the previous tile are added to the sums meanwhile (pending, NULL
 * in assign), right after the first group of centers. Those additions are a chain through memory
 * (a row's sums are read right after an earlier row with the same label wrote them) and take a
 * few cycles per row, while the distances are throughput work; issued between them, the chain
 * starts early and the processor runs the rest of the distances alongside it. (Adding the rows
 * after the last group, before the first, or spread over the groups measured slower.) */
static ROWS_ALWAYS_INLINE void NAME(nearest_)(const VEC *x, size_t d, const T *centers, size_t k,
                                              const int expanded, VEC *best, IVEC *best_index,
                                              NAME(pending_) *pending, const int private_sums,
                                              double *inertia)
{
    const T *norms = expanded ? centers + k * d : NULL;
    size_t c = k < ROWS_GROUP ? k : ROWS_GROUP;
    switch (c) {
    case 1: NAME(centers_)(x, d, centers, 0, 1, 1, expanded, norms, best, best_index); break;
    case 2: NAME(centers_)(x, d, centers, 0, 2, 1, expanded, norms, best, best_index); break;
    case 3: NAME(centers_)(x, d, centers, 0, 3, 1, expanded, norms, best, best_index); break;
    default: NAME(centers_)(x, d, centers, 0, 4, 1, expanded, norms, best, best_index); break;
    }
    if (pending)
        NAME(add_pending_)(pending, d, private_sums, inertia);
    for (; c + ROWS_GROUP <= k; c += ROWS_GROUP)
        NAME(centers_)(x, d, centers, c, 4, 0, expanded, norms, best, best_index);
    switch (k - c) {
    case 3: NAME(centers_)(x, d, centers, c, 3, 0, expanded, norms, best, best_index); break;
    case 2: NAME(centers_)(x, d, centers, c, 2, 0, expanded, norms, best, best_index); break;
    case 1: NAME(centers_)(x, d, centers, c, 1, 0, expanded, norms, best, best_index); break;
    default: break;
    }
}

/* Nearest centers of the `count` <= LANES rows of a tile. With small_d (a compile-time constant
 * d <= MAX_D) the features stay in registers; a partial tile is first copied into a zero-padded
 * buffer, so that the same full-tile code runs without reading past the rows. Otherwise the tile
 * is transposed into scratch. */
static ROWS_ALWAYS_INLINE void NAME(nearest_tile_)(const T *tile, size_t count, size_t d,
                                                   const int small_d, const int expanded,
                                                   __m512i pad_index, const T *centers, size_t k,
                                                   T *scratch, VEC *best, IVEC *best_index,
                                                   NAME(pending_) *pending, const int private_sums,
                                                   double *inertia)
{
    /* The expanded form centers the rows on the shift stored after the norms (see
       pack_expanded_), and needs |x - s|^2 of each row, summed over features in order. */
    const T *shift = expanded ? centers + k * d + k : NULL;
    VEC row_norm = V_ZERO();
    if (small_d) {
        VEC x[MAX_D];
        if (count == LANES) {
            NAME(load_tile_)(tile, (int)d, pad_index, x);
        } else {
            _Alignas(64) T buffer[LANES * MAX_D];
            memset(buffer, 0, sizeof buffer);
            memcpy(buffer, tile, count * d * sizeof(T));
            NAME(load_tile_)(buffer, (int)d, pad_index, x);
        }
        if (expanded)
#pragma GCC unroll 16
            for (size_t j = 0; j < d; j++) {
                x[j] = V_SUB(x[j], V_SET1(shift[j]));
                row_norm = V_FMA(x[j], x[j], row_norm);
            }
        NAME(nearest_)(x, d, centers, k, expanded, best, best_index, pending, private_sums,
                       inertia);
    } else {
        for (size_t j0 = 0; j0 < d; j0 += LANES) {
            VEC v[LANES];
            NAME(transpose_columns_)(tile, count, d, j0, v);
            for (int j = 0; j < LANES; j++) {
                if (expanded && j0 + (size_t)j < d) {
                    v[j] = V_SUB(v[j], V_SET1(shift[j0 + (size_t)j]));
                    row_norm = V_FMA(v[j], v[j], row_norm);
                }
                V_STORE(scratch + (j0 + (size_t)j) * LANES, v[j]);
            }
        }
        NAME(nearest_)((const VEC *)(const void *)scratch, d, centers, k, expanded, best,
                       best_index, pending, private_sums, inertia);
    }
    /* |x - s|^2 + min over c of (|c - s|^2 - 2 (x - s).(c - s)); rounding can make a distance
       that is nearly zero negative, so it is clamped at zero, as the GEMM kernel does. */
    if (expanded)
        *best = V_MAX(V_ADD(row_norm, *best), V_ZERO());
}

/* ------------------------------------------------------------------ the passes */

static ROWS_ALWAYS_INLINE void NAME(assign_rows_)(const T *data, size_t rows, size_t d,
                                                  const int small_d, const int expanded,
                                                  const T *centers, size_t k,
                                                  int32_t *labels, double *distances, T *scratch)
{
    __m512i pad_index = small_d && d < LANES ? NAME(pad_index_)((int)d) : _mm512_setzero_si512();
    for (size_t i = 0; i < rows; i += LANES) {
        size_t count = rows - i < LANES ? rows - i : LANES;
        VEC best;
        IVEC best_index;
        NAME(nearest_tile_)(data + i * d, count, d, small_d, expanded, pad_index, centers, k,
                            scratch, &best, &best_index, NULL, 0, NULL);
        if (count == LANES) {
            I_STOREU(labels + i, best_index);
            if (distances)
                STORE_AS_PD(distances + i, best);
        } else {
            _Alignas(64) int32_t tile_labels[LANES];
            _Alignas(64) double tile_distances[LANES];
            I_STOREU(tile_labels, best_index);
            STORE_AS_PD(tile_distances, best);
            for (size_t r = 0; r < count; r++) {
                labels[i + r] = tile_labels[r];
                if (distances)
                    distances[i + r] = tile_distances[r];
            }
        }
    }
}

/* The fused pass. The nearest centers are found a tile at a time; the tile's rows are then added
 * one by one in row order, with the reference's operations, so every sum sees the same terms in
 * the same order as in the reference. Only what does not depend on order is done per tile: the
 * change count (an integer), the conversion of the distances to double and their products with
 * the weights (each rounded alone, as in the reference). A tile's rows are added while the next
 * tile's distances are computed (see nearest_), and the last tile's at the end. scratch holds the
 * private sums (with private_sums) and then the transposed tile (when not small_d). */
static ROWS_ALWAYS_INLINE void NAME(accumulate_rows_)(const T *data, size_t rows, size_t d,
                                                      const int small_d, const int expanded,
                                                      const int private_sums,
                                                      const double *weights, const T *centers,
                                                      size_t k, int32_t *labels,
                                                      kseg_block_sums *sums, void *scratch)
{
    __m512i pad_index = small_d && d < LANES ? NAME(pad_index_)((int)d) : _mm512_setzero_si512();
    double inertia = sums->inertia;
    int64_t changed = sums->changed;
    size_t stride = rows_stride(d);
    double *private_copy = scratch;
    size_t private_bytes = private_sums ? k * stride * sizeof(double) : 0;
    T *tile_buffer = (T *)(void *)((char *)scratch + private_bytes);
    NAME(pending_) pending;
    pending.rows = data;
    pending.weights = weights;
    pending.count = 0;
    if (private_sums) {
        for (size_t c = 0; c < k; c++) {
            double *target = private_copy + c * stride;
            memcpy(target, sums->sums + c * d, d * sizeof(double));
            memset(target + d, 0, (stride - d) * sizeof(double));
            if (rows_weight_in_row(d))
                target[d] = sums->weights[c];
        }
        pending.sums = private_copy;
        pending.stride = stride;
    } else {
        pending.sums = sums->sums;
        pending.stride = d;
    }
    pending.weight_sums = sums->weights;
    for (size_t i = 0; i < rows; i += LANES) {
        size_t count = rows - i < LANES ? rows - i : LANES;
        VEC best;
        IVEC best_index;
        NAME(nearest_tile_)(data + i * d, count, d, small_d, expanded, pad_index, centers, k,
                            tile_buffer, &best, &best_index, &pending, private_sums, &inertia);
        if (count == LANES) {
            changed += I_CHANGED(labels + i, best_index);
            I_STOREU(labels + i, best_index);
        } else {
            _Alignas(64) int32_t tile_labels[LANES];
            I_STOREU(tile_labels, best_index);
            for (size_t r = 0; r < count; r++) {
                changed += labels[i + r] != tile_labels[r];
                labels[i + r] = tile_labels[r];
            }
        }
        pending.rows = data + i * d;
        pending.weights = weights ? weights + i : NULL;
        pending.count = count;
        I_STOREU(pending.labels, best_index);
        STORE_AS_PD(pending.terms, best);
        if (weights)
            for (size_t h = 0; h < count; h += 8) {
                __mmask8 valid =
                    count >= h + 8 ? (__mmask8)0xFF : (__mmask8)((1u << (count - h)) - 1u);
                _mm512_store_pd(pending.terms + h,
                                rows_product_pd(_mm512_maskz_loadu_pd(valid, weights + i + h),
                                                _mm512_load_pd(pending.terms + h)));
            }
    }
    NAME(add_pending_)(&pending, d, private_sums, &inertia);
    if (private_sums)
        for (size_t c = 0; c < k; c++) {
            memcpy(sums->sums + c * d, private_copy + c * stride, d * sizeof(double));
            if (rows_weight_in_row(d))
                sums->weights[c] = private_copy[c * stride + d];
        }
    sums->inertia = inertia;
    sums->changed = changed;
}

/* One instance of both passes per small d and form (direct or expanded), where d is a
 * compile-time constant: the transpose and the distance loops are then fully unrolled with the
 * feature vectors in registers. */
#define ROWS_SMALL_INSTANCE(n)                                                                     \
    static void NAME(assign_##n##_)(const T *data, size_t rows, const T *centers, size_t k,       \
                                    int32_t *labels, double *distances)                            \
    {                                                                                              \
        NAME(assign_rows_)(data, rows, n, 1, 0, centers, k, labels, distances, NULL);              \
    }                                                                                              \
    static void NAME(accumulate_##n##_)(const T *data, size_t rows, const double *weights,        \
                                        const T *centers, size_t k, int32_t *labels,               \
                                        kseg_block_sums *sums, void *scratch)                      \
    {                                                                                              \
        NAME(accumulate_rows_)(data, rows, n, 1, 0, 1, weights, centers, k, labels, sums,          \
                               scratch);                                                           \
    }                                                                                              \
    static void NAME(assign_expanded_##n##_)(const T *data, size_t rows, const T *centers,        \
                                             size_t k, int32_t *labels, double *distances)         \
    {                                                                                              \
        NAME(assign_rows_)(data, rows, n, 1, 1, centers, k, labels, distances, NULL);              \
    }                                                                                              \
    static void NAME(accumulate_expanded_##n##_)(const T *data, size_t rows,                       \
                                                 const double *weights, const T *centers,          \
                                                 size_t k, int32_t *labels,                        \
                                                 kseg_block_sums *sums, void *scratch)             \
    {                                                                                              \
        NAME(accumulate_rows_)(data, rows, n, 1, 1, 1, weights, centers, k, labels, sums,          \
                               scratch);                                                           \
    }

ROWS_SMALL_INSTANCE(1)
ROWS_SMALL_INSTANCE(2)
ROWS_SMALL_INSTANCE(3)
ROWS_SMALL_INSTANCE(4)
ROWS_SMALL_INSTANCE(5)
ROWS_SMALL_INSTANCE(6)
ROWS_SMALL_INSTANCE(7)
ROWS_SMALL_INSTANCE(8)
ROWS_SMALL_INSTANCE(9)
ROWS_SMALL_INSTANCE(10)
ROWS_SMALL_INSTANCE(11)
ROWS_SMALL_INSTANCE(12)
ROWS_SMALL_INSTANCE(13)
ROWS_SMALL_INSTANCE(14)
ROWS_SMALL_INSTANCE(15)
ROWS_SMALL_INSTANCE(16)
_Static_assert(MAX_D == 16, "one instance per d up to MAX_D");

#define ROWS_SMALL_CASES(call)                                                                     \
    case 1: call(1); break; case 2: call(2); break; case 3: call(3); break;                        \
    case 4: call(4); break; case 5: call(5); break; case 6: call(6); break;                        \
    case 7: call(7); break; case 8: call(8); break; case 9: call(9); break;                        \
    case 10: call(10); break; case 11: call(11); break; case 12: call(12); break;                  \
    case 13: call(13); break; case 14: call(14); break; case 15: call(15); break;                  \
    case 16: call(16); break

static void NAME(assign_)(const void *x, size_t rows, size_t d, const void *packed, size_t k,
                          int32_t *labels, double *distances, void *scratch)
{
    const T *data = x;
    const T *centers = packed;
#define ROWS_ASSIGN_CALL(n) NAME(assign_##n##_)(data, rows, centers, k, labels, distances)
    switch (d) {
        ROWS_SMALL_CASES(ROWS_ASSIGN_CALL);
    default:
        NAME(assign_rows_)(data, rows, d, 0, 0, centers, k, labels, distances,
                           (T *)(void *)((char *)scratch + NAME(private_bytes_)(k, d)));
        break;
    }
#undef ROWS_ASSIGN_CALL
}

static void NAME(assign_expanded_)(const void *x, size_t rows, size_t d, const void *packed,
                                   size_t k, int32_t *labels, double *distances, void *scratch)
{
    const T *data = x;
    const T *centers = packed;
#define ROWS_ASSIGN_CALL(n) NAME(assign_expanded_##n##_)(data, rows, centers, k, labels, distances)
    switch (d) {
        ROWS_SMALL_CASES(ROWS_ASSIGN_CALL);
    default:
        NAME(assign_rows_)(data, rows, d, 0, 1, centers, k, labels, distances,
                           (T *)(void *)((char *)scratch + NAME(private_bytes_)(k, d)));
        break;
    }
#undef ROWS_ASSIGN_CALL
}

/* The fused pass for more than MAX_D features, with and without the private copy of the sums,
 * in either form (the expanded form is chosen by name only at such d). */
static void NAME(accumulate_wide_private_)(const T *data, size_t rows, size_t d,
                                           const double *weights, const T *centers, size_t k,
                                           int32_t *labels, kseg_block_sums *sums, void *scratch,
                                           int expanded)
{
    if (expanded)
        NAME(accumulate_rows_)(data, rows, d, 0, 1, 1, weights, centers, k, labels, sums, scratch);
    else
        NAME(accumulate_rows_)(data, rows, d, 0, 0, 1, weights, centers, k, labels, sums, scratch);
}

static void NAME(accumulate_wide_)(const T *data, size_t rows, size_t d, const double *weights,
                                   const T *centers, size_t k, int32_t *labels,
                                   kseg_block_sums *sums, void *scratch, int expanded)
{
    if (expanded)
        NAME(accumulate_rows_)(data, rows, d, 0, 1, 0, weights, centers, k, labels, sums, scratch);
    else
        NAME(accumulate_rows_)(data, rows, d, 0, 0, 0, weights, centers, k, labels, sums, scratch);
}

static void NAME(accumulate_any_wide_)(const T *data, size_t rows, size_t d,
                                       const double *weights, const T *centers, size_t k,
                                       int32_t *labels, kseg_block_sums *sums, void *scratch,
                                       int expanded)
{
    if (NAME(private_sums_)(k, d))
        NAME(accumulate_wide_private_)(data, rows, d, weights, centers, k, labels, sums, scratch,
                                       expanded);
    else
        NAME(accumulate_wide_)(data, rows, d, weights, centers, k, labels, sums, scratch,
                               expanded);
}

static void NAME(assign_accumulate_)(const void *x, size_t rows, size_t d, const double *weights,
                                     const void *packed, size_t k, int32_t *labels,
                                     kseg_block_sums *sums, void *scratch)
{
    const T *data = x;
    const T *centers = packed;
#define ROWS_ACCUMULATE_CALL(n)                                                                    \
    NAME(accumulate_##n##_)(data, rows, weights, centers, k, labels, sums, scratch)
    switch (d) {
        ROWS_SMALL_CASES(ROWS_ACCUMULATE_CALL);
    default:
        NAME(accumulate_any_wide_)(data, rows, d, weights, centers, k, labels, sums, scratch, 0);
        break;
    }
#undef ROWS_ACCUMULATE_CALL
}

static void NAME(assign_accumulate_expanded_)(const void *x, size_t rows, size_t d,
                                              const double *weights, const void *packed, size_t k,
                                              int32_t *labels, kseg_block_sums *sums,
                                              void *scratch)
{
    const T *data = x;
    const T *centers = packed;
#define ROWS_ACCUMULATE_CALL(n)                                                                    \
    NAME(accumulate_expanded_##n##_)(data, rows, weights, centers, k, labels, sums, scratch)
    switch (d) {
        ROWS_SMALL_CASES(ROWS_ACCUMULATE_CALL);
    default:
        NAME(accumulate_any_wide_)(data, rows, d, weights, centers, k, labels, sums, scratch, 1);
        break;
    }
#undef ROWS_ACCUMULATE_CALL
}

#undef ROWS_SMALL_INSTANCE
#undef ROWS_SMALL_CASES
#undef NAME
#undef KSEG_AVX512_ROWS_BODY
#undef T
#undef SUFFIX
#undef LANES
#undef MAX_D
#undef VEC
#undef IVEC
#undef MASK
#undef MASK_ALL
#undef PERM_INT
#undef V_ZERO
#undef V_LOADU
#undef V_MASKZ_LOADU
#undef V_STORE
#undef V_SET1
#undef V_SUB
#undef V_ADD
#undef V_MAX
#undef V_FMA
#undef V_LESS
#undef V_SELECT
#undef V_PERM2
#undef V_PERM1
#undef UNZIP_EVEN
#undef UNZIP_ODD
#undef I_ZERO
#undef I_SET1
#undef I_SELECT
#undef I_STOREU
#undef I_CHANGED
#undef STORE_AS_PD
#undef ROW_TO_PD
#undef ROW_TO_PD4
#undef I_ADD
#undef I_INDEX_STEP
#undef ROW_TO_PD4_MASKED
#undef ROW_TO_PD8_MASKED

#endif /* KSEG_AVX512_ROWS_BODY */
