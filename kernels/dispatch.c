/* The kernel selection table: optimized kernels first in order of preference, the reference last
 * as the portable fallback. Selection depends only on the CPU and the shape (k, d), never on the
 * thread count, so results are reproducible across thread counts. */
#include <string.h>

#include "kernels.h"

/* Optimized kernels are declared here and defined in their own translation units, each compiled
 * with the instruction set it needs. */
extern const kseg_assign_kernel kseg_assign_avx512_expanded_f32;
extern const kseg_assign_kernel kseg_assign_avx512_expanded_f64;
extern const kseg_assign_kernel kseg_assign_avx512_rows_f32;
extern const kseg_assign_kernel kseg_assign_avx512_rows_f64;
extern const kseg_assign_kernel kseg_assign_avx512_f32;
extern const kseg_assign_kernel kseg_assign_avx512_f64;
extern const kseg_assign_kernel kseg_assign_avx2_f32;
extern const kseg_assign_kernel kseg_assign_avx2_f64;
extern const kseg_assign_kernel kseg_assign_gemm_f32;
extern const kseg_assign_kernel kseg_assign_gemm_f64;

static const kseg_assign_kernel *const kernel_table_f32[] = {
#ifdef KSEG_HAVE_GEMM_KERNEL
    &kseg_assign_gemm_f32,
#endif
#ifdef KSEG_HAVE_AVX512_KERNEL
    &kseg_assign_avx512_expanded_f32,
    &kseg_assign_avx512_rows_f32,
    &kseg_assign_avx512_f32,
#endif
#ifdef KSEG_HAVE_AVX2_KERNEL
    &kseg_assign_avx2_f32,
#endif
    &kseg_assign_reference_f32,
};

static const kseg_assign_kernel *const kernel_table_f64[] = {
#ifdef KSEG_HAVE_GEMM_KERNEL
    &kseg_assign_gemm_f64,
#endif
#ifdef KSEG_HAVE_AVX512_KERNEL
    &kseg_assign_avx512_expanded_f64,
    &kseg_assign_avx512_rows_f64,
    &kseg_assign_avx512_f64,
#endif
#ifdef KSEG_HAVE_AVX2_KERNEL
    &kseg_assign_avx2_f64,
#endif
    &kseg_assign_reference_f64,
};

static const kseg_assign_kernel *const *table_for(kseg_dtype dtype, size_t *count)
{
    if (dtype == KSEG_FLOAT32) {
        *count = sizeof kernel_table_f32 / sizeof kernel_table_f32[0];
        return kernel_table_f32;
    }
    if (dtype == KSEG_FLOAT64) {
        *count = sizeof kernel_table_f64 / sizeof kernel_table_f64[0];
        return kernel_table_f64;
    }
    *count = 0;
    return NULL;
}

/* The selection of both entry points; direct_only skips expanded-form kernels. */
static const kseg_assign_kernel *select_from_table(kseg_dtype dtype, size_t k, size_t d,
                                                   const char *name, int direct_only)
{
    size_t count;
    const kseg_assign_kernel *const *table = table_for(dtype, &count);
    const kseg_assign_kernel *fallback = NULL;
    for (size_t i = 0; i < count; i++) {
        const kseg_assign_kernel *kernel = table[i];
        if (!kernel->cpu_supported())
            continue;
        if (name)  {
            if (strcmp(kernel->name, name) == 0)
                return kernel;
            continue;
        }
        if (direct_only && kernel->expanded_form)
            continue;
        if (kernel->preferred(k, d))
            return kernel;
        /* The first supported direct-difference kernel is the default for shapes no kernel
           prefers; the reference comes last in the table and is always supported. */
        if (!fallback && !kernel->expanded_form)
            fallback = kernel;
    }
    return name ? NULL : fallback;
}

const kseg_assign_kernel *kseg_assign_kernel_select(kseg_dtype dtype, size_t k, size_t d,
                                                    const char *name)
{
    return select_from_table(dtype, k, d, name, 0);
}

const kseg_assign_kernel *kseg_assign_kernel_select_direct(kseg_dtype dtype, size_t k, size_t d)
{
    return select_from_table(dtype, k, d, NULL, 1);
}

size_t kseg_assign_kernel_list(kseg_dtype dtype, const kseg_assign_kernel **kernels,
                               size_t capacity)
{
    size_t count, written = 0;
    const kseg_assign_kernel *const *table = table_for(dtype, &count);
    for (size_t i = 0; i < count && written < capacity; i++)
        if (table[i]->cpu_supported())
            kernels[written++] = table[i];
    return written;
}
