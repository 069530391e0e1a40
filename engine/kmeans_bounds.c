/* The bound-based assignment passes of the k-means driver (Hamerly, Elkan, Yinyang): lower bounds
 * decide most comparisons without a distance, and every distance still computed uses the reference
 * kernel's arithmetic with the same tie rule, so labels and sums are bitwise Lloyd's. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans_internal.h"
#include "kseg/memory.h"

/* Safety factors for the double arithmetic on the bounds themselves (square roots, products,
 * subtractions): far larger than the few ulps those operations can lose, far smaller than any
 * gap worth exploiting. */
#define BOUND_UP (1.0 + 0x1.0p-40)
#define BOUND_DOWN (1.0 - 0x1.0p-40)

size_t kmeans_yinyang_groups(size_t k)
{
    return k >= 20 ? k / 10 : 1;
}

/* Bytes of one algorithm's bounds; see kmeans_bounds_init for what each buffer holds. */
static uint64_t bounds_bytes(kseg_kmeans_algorithm algorithm, uint64_t n, uint64_t k, uint64_t d)
{
    /* Common to all: current, previous and transposed centers [k x d] in the element type (at
       most a double); moves, half gaps and one spare [k] doubles; per-thread room for 4(k + 8) + 2t
       doubles (counted for 64 threads, more than kseg's machines have cores). */
    uint64_t groups = kmeans_yinyang_groups((size_t)k);
    uint64_t bytes = kseg_memory_multiply(kseg_memory_multiply(3, kseg_memory_multiply(k, d)),
                                          sizeof(double));
    bytes = kseg_memory_add(bytes, kseg_memory_multiply(4 * sizeof(double), k));
    bytes = kseg_memory_add(bytes, kseg_memory_multiply(64 * sizeof(double),
                                                        kseg_memory_add(4 * (k + 8), 2 * groups)));
    switch (algorithm) {
    case KSEG_ALGORITHM_HAMERLY:
        return kseg_memory_add(bytes, kseg_memory_multiply(n, sizeof(double)));
    case KSEG_ALGORITHM_ELKAN:
        /* A float per row and center, the center distances [k x k] floats. */
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(kseg_memory_multiply(n, k),
                                                            sizeof(float)));
        return kseg_memory_add(bytes, kseg_memory_multiply(kseg_memory_multiply(k, k),
                                                           sizeof(float)));
    case KSEG_ALGORITHM_YINYANG:
        /* A float per row and group; the groups (members, starts, moves, the grouping's
           means). */
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(kseg_memory_multiply(n, groups),
                                                            sizeof(float)));
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(k, 3 * sizeof(int32_t)));
        /* The centers and their moves again, in group order. */
        bytes = kseg_memory_add(bytes, kseg_memory_multiply(kseg_memory_add(
                                           kseg_memory_multiply(k, d), k), sizeof(double)));
        return kseg_memory_add(bytes, kseg_memory_multiply(
                                          kseg_memory_add(2 * groups + 1,
                                                          kseg_memory_multiply(2 * groups, d)),
                                          sizeof(double)));
    default:
        return 0;
    }
}

uint64_t kseg_kmeans_algorithm_memory(kseg_kmeans_algorithm algorithm, size_t n_rows, size_t k,
                                      size_t d)
{
    if (algorithm == KSEG_ALGORITHM_MINIBATCH)
        return 0; /* mini-batch's batch buffers depend on batch_size: the fit adds them */
    if (algorithm == KSEG_ALGORITHM_AUTO) /* the largest it may pick */
        algorithm = KSEG_ALGORITHM_ELKAN;
    return bounds_bytes(algorithm, n_rows, k, d);
}

int kmeans_bounds_init(kmeans_bounds *bounds, const kmeans_context *context,
                       kseg_kmeans_algorithm algorithm, kseg_error *error)
{
    memset(bounds, 0, sizeof *bounds);
    bounds->algorithm = algorithm;
    size_t k = context->k, d = context->d, size = context->element_size, n = context->n;
    size_t groups = kmeans_yinyang_groups(k);
    int failed = 0;
    if (algorithm == KSEG_ALGORITHM_HAMERLY) {
        failed |= !(bounds->lower = malloc((n ? n : 1) * sizeof *bounds->lower));
    } else if (algorithm == KSEG_ALGORITHM_ELKAN) {
        failed |= !(bounds->row_lower = malloc((n ? n : 1) * k * sizeof *bounds->row_lower));
        failed |= !(bounds->gap = malloc(k * k * sizeof *bounds->gap));
    } else {
        bounds->n_groups = groups;
        failed |= !(bounds->row_lower = malloc((n ? n : 1) * groups * sizeof(float)));
        failed |= !(bounds->group_of = malloc(k * sizeof *bounds->group_of));
        failed |= !(bounds->group_members = malloc(k * sizeof *bounds->group_members));
        failed |= !(bounds->group_start = malloc((groups + 1) * sizeof *bounds->group_start));
        failed |= !(bounds->group_move = malloc(groups * sizeof *bounds->group_move));
        failed |= !(bounds->group_means = malloc(2 * groups * d * sizeof(double)));
        failed |= !(bounds->grouped = malloc(k * d * size));
        failed |= !(bounds->grouped_move = malloc(k * sizeof *bounds->grouped_move));
        failed |= !(bounds->position_of = malloc(k * sizeof *bounds->position_of));
    }
    bounds->centers = malloc(k * d * size);
    bounds->previous = malloc(k * d * size);
    bounds->moved = calloc(k, sizeof *bounds->moved);
    bounds->moved_up = calloc(k, sizeof *bounds->moved_up);
    bounds->half_gap = calloc(k, sizeof *bounds->half_gap);
    bounds->transposed = malloc(k * d * size);
    bounds->n_threads = context->blocks.n_threads;
    /* Four regions of k + 8 doubles (a row's distances, the survivors' distances or Yinyang's
       center bounds, the survivors' indices with room for padding; see kmeans_bounds_rows.h)
       and 2t group figures. */
    bounds->stride = 4 * (k + 8) + 2 * groups;
    bounds->work = calloc((size_t)bounds->n_threads * bounds->stride, sizeof(double));
    if (failed || !bounds->centers || !bounds->previous || !bounds->moved ||
        !bounds->moved_up || !bounds->half_gap || !bounds->transposed || !bounds->work) {
        kmeans_bounds_destroy(bounds);
        return kseg_error_set(error, KSEG_ENOMEM,
                              "out of memory for the %s bounds (n = %zu, k = %zu)",
                              kseg_kmeans_algorithm_name(algorithm), n, k);
    }
    /* The reference kernel sums d non-negative terms, each rounded at most d + 2 times (the
       difference, then one fused multiply-add per later feature), so its squared distance is
       within gamma_{d+2} = (d+2)u / (1 - (d+2)u) of the exact one; twice (d+2)u bounds that while
       (d+2)u <= 1/2. Underflow adds at most half the smallest subnormal per operation. */
    double unit = context->dtype == KSEG_FLOAT32 ? 0x1.0p-24 : 0x1.0p-53;
    bounds->eta = 2.0 * ((double)d + 2.0) * unit;
    bounds->slack = ((double)d + 2.0) *
                    (context->dtype == KSEG_FLOAT32 ? (double)FLT_TRUE_MIN : DBL_TRUE_MIN);
    bounds->overflow = context->dtype == KSEG_FLOAT32 ? (double)FLT_MAX : DBL_MAX;
    /* With so many features that the rounding margin is a sizeable fraction of the distance, the
       bounds would rarely decide anything: then every row is compared with every center. */
    bounds->usable = bounds->eta < 0.25;
    /* The hot loop multiplies instead of dividing; each factor is rounded outwards by far more
       than the error of computing it. */
    bounds->own_factor = 1.0 / (1.0 - bounds->eta) * BOUND_UP;
    bounds->needed_factor = (1.0 + bounds->eta) / (1.0 - bounds->eta) * BOUND_UP;
    bounds->needed_slack = 2.0 * bounds->slack / (1.0 - bounds->eta) * BOUND_UP;
    bounds->lower_factor = 1.0 / (1.0 + bounds->eta) * BOUND_DOWN;
    bounds->fresh = 1;
    return 0;
}

void kmeans_bounds_destroy(kmeans_bounds *bounds)
{
    free(bounds->lower);
    free(bounds->row_lower);
    free(bounds->centers);
    free(bounds->previous);
    free(bounds->moved);
    free(bounds->moved_up);
    free(bounds->half_gap);
    free(bounds->gap);
    free(bounds->transposed);
    free(bounds->work);
    free(bounds->group_of);
    free(bounds->group_members);
    free(bounds->group_start);
    free(bounds->group_move);
    free(bounds->group_means);
    free(bounds->grouped);
    free(bounds->grouped_move);
    free(bounds->position_of);
    memset(bounds, 0, sizeof *bounds);
}

/* x >= 0 rounded down to a float (a lower bound stays one): lowered by 2^-22 relative first, more
 * than the two roundings (to double, then to the nearest float) can add back; values below 2^-100
 * (where float rounding is absolute) become 0, values beyond the float range FLT_MAX. Branches
 * only on rare values, unlike a nextafterf call on every value that rounds up. */
static inline float down_float(double x)
{
    if (!(x < (double)FLT_MAX))
        return isinf(x) ? INFINITY : FLT_MAX;
    if (x < 0x1.0p-100)
        return 0.0f;
    return (float)(x * (1.0 - 0x1.0p-22));
}

/* x >= 0 rounded up to a float (an upper bound stays one). */
static inline float up_float(double x)
{
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

/* Element j of center c of an element-typed center set, as double (exact). */
static double center_value(const kmeans_context *context, const void *centers, size_t index)
{
    if (context->dtype == KSEG_FLOAT32)
        return (double)((const float *)centers)[index];
    return ((const double *)centers)[index];
}

/* Squared Euclidean distance of two element-typed centers, summed in double, with lower and upper
 * bounds on the exact value: for float32 the differences and squares are exact in double and only
 * the d additions round; for float64 the difference and the square round too. */
static void center_distance(const kmeans_context *context, const void *centers_a, size_t a,
                            const void *centers_b, size_t b, double *low, double *high)
{
    size_t d = context->d;
    double sum = 0.0;
    for (size_t j = 0; j < d; j++) {
        double diff = center_value(context, centers_a, a * d + j) -
                      center_value(context, centers_b, b * d + j);
        sum += diff * diff;
    }
    double relative = ((double)d + 4.0) * 0x1.0p-52;
    *low = sum * (1.0 - relative) * BOUND_DOWN;
    *high = sum * (1.0 + relative) * BOUND_UP;
}

/* Yinyang's groups for a run, from its initial centers: a fixed k-means of the centers into t
 * groups (seeded with the centers at indices f k / t, five iterations, ties to the lowest
 * group), so that the same centers always give the same groups. The grouping only affects how
 * much the bounds skip, never the result. */
static void group_centers(kmeans_bounds *bounds, const kmeans_context *context,
                          const double *centers)
{
    size_t k = context->k, d = context->d, t = bounds->n_groups;
    double *means = bounds->group_means, *sums = means + t * d;
    size_t *counts = bounds->group_start; /* counts in [0, t), then the starts */
    for (size_t f = 0; f < t; f++)
        memcpy(means + f * d, centers + (f * k / t) * d, d * sizeof *means);
    for (int iteration = 0; iteration <= 5; iteration++) {
        for (size_t c = 0; c < k; c++) {
            double best_value = INFINITY;
            int32_t best = 0;
            for (size_t f = 0; f < t; f++) {
                double sum = 0.0;
                for (size_t j = 0; j < d; j++) {
                    double diff = centers[c * d + j] - means[f * d + j];
                    sum += diff * diff;
                }
                if (sum < best_value) {
                    best_value = sum;
                    best = (int32_t)f;
                }
            }
            bounds->group_of[c] = best;
        }
        if (iteration == 5)
            break;
        memset(sums, 0, t * d * sizeof *sums);
        memset(counts, 0, t * sizeof *counts);
        for (size_t c = 0; c < k; c++) {
            size_t f = (size_t)bounds->group_of[c];
            counts[f]++;
            for (size_t j = 0; j < d; j++)
                sums[f * d + j] += centers[c * d + j];
        }
        for (size_t f = 0; f < t; f++)
            if (counts[f] > 0) /* an empty group keeps its mean */
                for (size_t j = 0; j < d; j++)
                    means[f * d + j] = sums[f * d + j] / (double)counts[f];
    }
    /* The members of each group, contiguous, in increasing center index. */
    size_t position = 0;
    for (size_t f = 0; f < t; f++) {
        bounds->group_start[f] = position;
        for (size_t c = 0; c < k; c++)
            if ((size_t)bounds->group_of[c] == f)
                bounds->group_members[position++] = (int32_t)c;
    }
    bounds->group_start[t] = position;
    for (size_t p = 0; p < k; p++)
        bounds->position_of[bounds->group_members[p]] = (int32_t)p;
}

void kmeans_bounds_prepare(kmeans_bounds *bounds, const kmeans_context *context,
                           const double *centers)
{
    size_t k = context->k, d = context->d;
    /* The centers as every direct kernel packs them: rounded to the element type. */
    void *swap = bounds->previous;
    bounds->previous = bounds->centers;
    bounds->centers = swap;
    /* The transposed copy [d x k] lets the comparison with all centers run across centers in
       vector lanes while each center's sum still runs over the features in order. */
    if (context->dtype == KSEG_FLOAT32) {
        float *out = bounds->centers, *transposed = bounds->transposed;
        for (size_t i = 0; i < k * d; i++)
            out[i] = (float)centers[i];
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < d; j++)
                transposed[j * k + c] = out[c * d + j];
    } else {
        double *transposed = bounds->transposed;
        memcpy(bounds->centers, centers, k * d * sizeof *centers);
        for (size_t c = 0; c < k; c++)
            for (size_t j = 0; j < d; j++)
                transposed[j * k + c] = centers[c * d + j];
    }
    /* How far each center moved since the last pass (upper bounds), and the largest two moves:
       a row's lower bound drops by the largest move among the centers other than its own. */
    bounds->largest_move = 0.0;
    bounds->second_move = 0.0;
    bounds->largest_center = 0;
    for (size_t c = 0; c < k; c++) {
        double low, high = 0.0;
        if (!bounds->fresh)
            center_distance(context, bounds->previous, c, bounds->centers, c, &low, &high);
        double move = sqrt(high) * BOUND_UP;
        bounds->moved[c] = move;
        if (move > bounds->largest_move) {
            bounds->second_move = bounds->largest_move;
            bounds->largest_move = move;
            bounds->largest_center = c;
        } else if (move > bounds->second_move) {
            bounds->second_move = move;
        }
    }
    for (size_t c = 0; c < k; c++)
        bounds->moved_up[c] = up_float(bounds->moved[c]);
    /* Half the distance from each center to its nearest other center (lower bounds): a row
       closer than that to its center is closer to it than to any other (triangle inequality).
       Elkan keeps every center distance. */
    for (size_t c = 0; c < k; c++)
        bounds->half_gap[c] = INFINITY;
    for (size_t a = 0; a < k; a++) {
        if (bounds->gap)
            bounds->gap[a * k + a] = 0.0f;
        for (size_t b = a + 1; b < k; b++) {
            double low, high;
            center_distance(context, bounds->centers, a, bounds->centers, b, &low, &high);
            double distance = sqrt(low) * BOUND_DOWN;
            double half = 0.5 * distance;
            if (half < bounds->half_gap[a])
                bounds->half_gap[a] = half;
            if (half < bounds->half_gap[b])
                bounds->half_gap[b] = half;
            if (bounds->gap)
                bounds->gap[a * k + b] = bounds->gap[b * k + a] = down_float(distance);
        }
    }
    if (bounds->algorithm == KSEG_ALGORITHM_YINYANG) {
        if (bounds->fresh)
            group_centers(bounds, context, centers);
        for (size_t f = 0; f < bounds->n_groups; f++)
            bounds->group_move[f] = 0.0;
        for (size_t c = 0; c < k; c++) {
            double *move = &bounds->group_move[bounds->group_of[c]];
            if (bounds->moved[c] > *move)
                *move = bounds->moved[c];
        }
        /* Moves in group order, and each group's centers as a transposed block [d x size]
           at offset start * d: a group's distances then run across its centers in vector
           lanes. */
        for (size_t p = 0; p < k; p++)
            bounds->grouped_move[p] = bounds->moved[bounds->group_members[p]];
        for (size_t f = 0; f < bounds->n_groups; f++) {
            size_t first = bounds->group_start[f], size = bounds->group_start[f + 1] - first;
            for (size_t q = 0; q < size; q++) {
                size_t c = (size_t)bounds->group_members[first + q];
                for (size_t j = 0; j < d; j++) {
                    size_t to = first * d + j * size + q;
                    if (context->dtype == KSEG_FLOAT32)
                        ((float *)bounds->grouped)[to] = ((const float *)bounds->centers)[c * d + j];
                    else
                        ((double *)bounds->grouped)[to] =
                            ((const double *)bounds->centers)[c * d + j];
                }
            }
        }
    }
}

void kmeans_bounds_finish(kmeans_bounds *bounds)
{
    bounds->fresh = 0;
}

void kmeans_bounds_reset(kmeans_bounds *bounds)
{
    bounds->fresh = 1;
}

/* The lower bound on the exact distance (not squared) of a computed squared distance value:
 * the kernels' error removed from below; an overflowed value's exact distance is at least the
 * largest finite one. */
static inline double root_lower(const kmeans_bounds *bounds, double value)
{
    if (isinf(value))
        return sqrt(bounds->overflow / (1.0 + bounds->eta)) * BOUND_DOWN;
    double low = (value - bounds->slack) * bounds->lower_factor;
    return low > 0 ? sqrt(low) * BOUND_DOWN : 0.0;
}

/* For the best computed squared distance value of a row: needed_root, a distance every other
 * center must exceed (exactly) for its computed distance to be strictly larger than value, and
 * gap_limit, a distance between the best center and another that proves the same (the other is
 * at least gap - own distance away, triangle inequality). Both rounded up. */
static inline void own_limits(const kmeans_bounds *bounds, double value, double *needed_root,
                              double *gap_limit)
{
    double own = (value + bounds->slack) * bounds->own_factor;
    double needed = own * bounds->needed_factor + bounds->needed_slack;
    *needed_root = sqrt(needed) * BOUND_UP;
    *gap_limit = (*needed_root * BOUND_UP + sqrt(own) * BOUND_UP) * BOUND_UP;
}

/* A float lower bound lowered by a float upper bound on a move, in float arithmetic so that the
 * loop over all centers vectorizes: the subtraction and the product each round by at most half
 * an ulp (2^-24 relative; a subnormal difference is exact), which the factor 1 - 2^-20 more than
 * covers; tiny results become 0, where the product could round up by an absolute amount. */
static inline float drop_float(float lower, float move)
{
    float dropped = (lower - move) * (1.0f - 0x1.0p-20f);
    return dropped > 0x1.0p-100f ? dropped : 0.0f;
}

/* The row loop, instantiated per element type (T, with its fused multiply-add FMA). Distances are
 * computed exactly as the reference kernel does (difference in T, one FMA per feature in order,
 * strict < so that ties keep the lower index), which every direct kernel reproduces bitwise; the
 * block sums are accumulated in row order as the fused kernels do. */
#define BOUNDS_ROWS(NAME, T, FMA)                                                                  \
    static inline T NAME##_distance(const T *row, const T *center, size_t d)                       \
    {                                                                                              \
        T sum = 0;                                                                                 \
        for (size_t j = 0; j < d; j++) {                                                           \
            T diff = row[j] - center[j];                                                           \
            sum = FMA(diff, diff, sum);                                                            \
        }                                                                                          \
        return sum;                                                                                \
    }                                                                                              \
                                                                                                   \
    /* out[c] := the distance to center c, each summed over the features in order (the same      \
       bits as NAME##_distance), with the centers in vector lanes. */                              \
    static inline void NAME##_all_distances(const T *row, const T *transposed, size_t k,           \
                                            size_t d, T *restrict out)                             \
    {                                                                                              \
        for (size_t c = 0; c < k; c++)                                                             \
            out[c] = 0;                                                                            \
        for (size_t j = 0; j < d; j++) {                                                           \
            T value = row[j];                                                                      \
            const T *column = transposed + j * k;                                                  \
            for (size_t c = 0; c < k; c++) {                                                       \
                T diff = value - column[c];                                                        \
                out[c] = FMA(diff, diff, out[c]);                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    BOUNDS_CLONES                                                                                  \
    static void NAME(const kmeans_context *context, kmeans_bounds *bounds, size_t begin,           \
                     size_t rows, int32_t *labels, double *payload, int thread)                    \
    {                                                                                              \
        size_t k = context->k, d = context->d;                                                     \
        const T *data = (const T *)(const void *)context->rows;                                    \
        const T *centers = bounds->centers;                                                        \
        double *sums = payload, *weights = payload + k * d;                                        \
        double inertia = 0.0, changed = 0.0, computed = 0.0, skipped = 0.0;                        \
        double eta = bounds->eta, slack = bounds->slack;                                           \
        const T *transposed = bounds->transposed;                                                  \
        T *all = (T *)(void *)(bounds->work + (size_t)thread * bounds->stride);                            \
        for (size_t i = begin; i < begin + rows; i++) {                                            \
            const T *row = data + i * d;                                                           \
            int32_t label = labels[i], best = 0;                                                   \
            T best_value = 0;                                                                      \
            int decided = 0;                                                                       \
            if (label >= 0) {                                                                      \
                best = label;                                                                      \
                best_value = NAME##_distance(row, centers + (size_t)label * d, d);                 \
                computed += 1.0;                                                                   \
                /* The lower bound on the exact distance to every other center drops by the     \
                   largest move among them; rounding down keeps it a lower bound. */              \
                double drop = (size_t)label == bounds->largest_center ? bounds->second_move       \
                                                                      : bounds->largest_move;      \
                double lower = bounds->lower[i] - drop;                                            \
                lower = lower > 0 ? lower * BOUND_DOWN : 0.0;                                      \
                bounds->lower[i] = lower;                                                          \
                if (bounds->usable) {                                                              \
                    /* own >= the exact squared distance to the own center; needed is the       \
                       squared distance every other center must exceed so that the computed     \
                       distances (within eta relative, slack absolute) cannot tie or reverse.   \
                       The lower bound is tried first: it needs no square root. */              \
                    double own = ((double)best_value + slack) * bounds->own_factor;                \
                    double needed = own * bounds->needed_factor + bounds->needed_slack;            \
                    decided = lower * lower * BOUND_DOWN > needed;                                 \
                    if (!decided) {                                                                \
                        double gap = 2.0 * bounds->half_gap[label] - sqrt(own) * BOUND_UP;         \
                        decided = gap > 0 && gap * gap * BOUND_DOWN > needed;                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            if (decided) {                                                                         \
                skipped += (double)(k - 1);                                                        \
            } else {                                                                               \
                /* Compare with every center, as Lloyd does, keeping the runner-up for the new   \
                   lower bound (the own center's distance, when known, is the same value). */     \
                NAME##_all_distances(row, transposed, k, d, all);                                  \
                T second = (T)INFINITY;                                                            \
                best_value = (T)INFINITY;                                                          \
                int first = 1;                                                                     \
                for (size_t c = 0; c < k; c++) {                                                   \
                    T value = all[c];                                                              \
                    if (first || value < best_value) {                                             \
                        if (!first)                                                                \
                            second = best_value;                                                   \
                        best_value = value;                                                        \
                        best = (int32_t)c;                                                         \
                        first = 0;                                                                 \
                    } else if (value < second) {                                                   \
                        second = value;                                                            \
                    }                                                                              \
                }                                                                                  \
                computed += (double)(label >= 0 ? k - 1 : k); /* the own one was counted */        \
                double lower;                                                                      \
                if (k == 1)                                                                        \
                    lower = INFINITY; /* no other center to be closer */                           \
                else if (isinf(second)) /* overflowed: the exact value is at least the maximum */  \
                    lower = sqrt(bounds->overflow / (1.0 + eta)) * BOUND_DOWN;                     \
                else {                                                                             \
                    double low = ((double)second - slack) * bounds->lower_factor;                  \
                    lower = low > 0 ? sqrt(low) * BOUND_DOWN : 0.0;                                \
                }                                                                                  \
                bounds->lower[i] = lower;                                                          \
            }                                                                                      \
            double weight = context->weights ? context->weights[i] : 1.0;                          \
            if (label != best)                                                                     \
                changed += 1.0;                                                                    \
            labels[i] = best;                                                                      \
            double *target = sums + (size_t)best * d;                                              \
            for (size_t j = 0; j < d; j++)                                                         \
                target[j] += weight * (double)row[j];                                              \
            weights[best] += weight;                                                               \
            inertia += weight * (double)best_value;                                                \
        }                                                                                          \
        payload[k * d + k] = inertia;                                                              \
        payload[k * d + k + 1] = changed;                                                          \
        payload[k * d + k + 2] = computed;                                                         \
        payload[k * d + k + 3] = skipped;                                                          \
    }

/* On x86-64 with GCC, a second copy built for AVX2 + FMA makes the fma() calls single
   instructions where the CPU has them; the result is the same either way (fma is exact). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BOUNDS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BOUNDS_CLONES
#endif

BOUNDS_ROWS(bounds_rows_f32, float, fmaf)
BOUNDS_ROWS(bounds_rows_f64, double, fma)

#define BR_T float
#define BR_DISTANCE bounds_rows_f32_distance
#define BR_ALL_DISTANCES bounds_rows_f32_all_distances
#define BR_FMA fmaf
#define BR_SUFFIX f32
#include "kmeans_bounds_rows.h"
#undef BR_T
#undef BR_DISTANCE
#undef BR_ALL_DISTANCES
#undef BR_SUFFIX
#undef BR_FMA

#define BR_T double
#define BR_DISTANCE bounds_rows_f64_distance
#define BR_ALL_DISTANCES bounds_rows_f64_all_distances
#define BR_FMA fma
#define BR_SUFFIX f64
#include "kmeans_bounds_rows.h"
#undef BR_T
#undef BR_DISTANCE
#undef BR_ALL_DISTANCES
#undef BR_SUFFIX
#undef BR_FMA

void kmeans_bounds_block(void *opaque, size_t b, double *payload, int thread)
{
    kmeans_bounds_pass *pass = opaque;
    const kmeans_context *context = pass->context;
    size_t begin = kseg_block_begin(&context->blocks, b);
    size_t rows = kseg_block_rows(&context->blocks, b);
    int single = context->dtype == KSEG_FLOAT32;
    switch (pass->bounds->algorithm) {
    case KSEG_ALGORITHM_ELKAN:
        (single ? elkan_rows_f32 : elkan_rows_f64)(context, pass->bounds, begin, rows,
                                                   pass->labels, payload, thread);
        break;
    case KSEG_ALGORITHM_YINYANG:
        (single ? yinyang_rows_f32 : yinyang_rows_f64)(context, pass->bounds, begin, rows,
                                                       pass->labels, payload, thread);
        break;
    default:
        (single ? bounds_rows_f32 : bounds_rows_f64)(context, pass->bounds, begin, rows,
                                                     pass->labels, payload, thread);
        break;
    }
}
