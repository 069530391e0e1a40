/* The reference assignment kernels (float32 and float64): the portable fallback and the oracle
 * that every optimized kernel is tested against. */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

static int ref_always_supported(void) { return 1; }
static int ref_never_preferred(size_t k, size_t d) { (void)k; (void)d; return 0; }
static size_t ref_no_scratch(size_t k, size_t d) { (void)k; (void)d; return 0; }

#define REF_T float
#define REF_FMA fmaf
#define REF_SUFFIX f32
#include "assign_reference_template.h"
#undef REF_T
#undef REF_FMA
#undef REF_SUFFIX

#define REF_T double
#define REF_FMA fma
#define REF_SUFFIX f64
#include "assign_reference_template.h"
#undef REF_T
#undef REF_FMA
#undef REF_SUFFIX

const kseg_assign_kernel kseg_assign_reference_f32 = {
    .name = "reference",
    .dtype = KSEG_FLOAT32,
    .cpu_supported = ref_always_supported,
    .preferred = ref_never_preferred,
    .packed_size = ref_packed_size_f32,
    .scratch_size = ref_no_scratch,
    .pack = ref_pack_f32,
    .assign = ref_assign_f32,
    .assign_accumulate = ref_assign_accumulate_f32,
};

const kseg_assign_kernel kseg_assign_reference_f64 = {
    .name = "reference",
    .dtype = KSEG_FLOAT64,
    .cpu_supported = ref_always_supported,
    .preferred = ref_never_preferred,
    .packed_size = ref_packed_size_f64,
    .scratch_size = ref_no_scratch,
    .pack = ref_pack_f64,
    .assign = ref_assign_f64,
    .assign_accumulate = ref_assign_accumulate_f64,
};
