/* Body of the reference assignment kernels, instantiated once per element type by
 * assign_reference.c (REF_T the element type, REF_FMA its fused multiply-add, REF_SUFFIX the name
 * suffix). Plain loops in the documented order: these define the results the optimized kernels
 * must reproduce. */

#define REF_CAT_(a, b) a##b
#define REF_CAT(a, b) REF_CAT_(a, b)
#define REF_NAME(stem) REF_CAT(stem, REF_SUFFIX)

static size_t REF_NAME(ref_packed_size_)(size_t k, size_t d)
{
    return k * d * sizeof(REF_T);
}

static void REF_NAME(ref_pack_)(const double *centers, size_t k, size_t d, const double *shift,
                               void *packed)
{
    (void)shift; /* the direct difference needs no centering */
    REF_T *out = packed;
    for (size_t i = 0; i < k * d; i++)
        out[i] = (REF_T)centers[i];
}

/* Squared distance summed over features in order with one fused multiply-add per feature. */
static inline REF_T REF_NAME(ref_distance_)(const REF_T *row, const REF_T *center, size_t d)
{
    REF_T sum = 0;
    for (size_t j = 0; j < d; j++) {
        REF_T diff = row[j] - center[j];
        sum = REF_FMA(diff, diff, sum);
    }
    return sum;
}

static inline int32_t REF_NAME(ref_nearest_)(const REF_T *row, const REF_T *centers, size_t k,
                                            size_t d, REF_T *best_distance)
{
    int32_t best = 0;
    REF_T best_value = REF_NAME(ref_distance_)(row, centers, d);
    for (size_t c = 1; c < k; c++) {
        REF_T value = REF_NAME(ref_distance_)(row, centers + c * d, d);
        if (value < best_value) { /* strict: ties keep the lower index */
            best_value = value;
            best = (int32_t)c;
        }
    }
    *best_distance = best_value;
    return best;
}

static void REF_NAME(ref_assign_)(const void *x, size_t rows, size_t d, const void *packed,
                                 size_t k, int32_t *labels, double *distances, void *scratch)
{
    (void)scratch;
    const REF_T *data = x;
    const REF_T *centers = packed;
    for (size_t i = 0; i < rows; i++) {
        REF_T best_distance;
        labels[i] = REF_NAME(ref_nearest_)(data + i * d, centers, k, d, &best_distance);
        if (distances)
            distances[i] = (double)best_distance;
    }
}

static void REF_NAME(ref_assign_accumulate_)(const void *x, size_t rows, size_t d,
                                            const double *weights, const void *packed, size_t k,
                                            int32_t *labels, kseg_block_sums *sums, void *scratch)
{
    (void)scratch;
    const REF_T *data = x;
    const REF_T *centers = packed;
    for (size_t i = 0; i < rows; i++) {
        const REF_T *row = data + i * d;
        REF_T best_distance;
        int32_t best = REF_NAME(ref_nearest_)(row, centers, k, d, &best_distance);
        double weight = weights ? weights[i] : 1.0;
        if (labels[i] != best)
            sums->changed++;
        labels[i] = best;
        double *target = sums->sums + (size_t)best * d;
        for (size_t j = 0; j < d; j++)
            target[j] += weight * (double)row[j];
        sums->weights[best] += weight;
        sums->inertia += weight * (double)best_distance;
    }
}

#undef REF_NAME
#undef REF_CAT
#undef REF_CAT_
