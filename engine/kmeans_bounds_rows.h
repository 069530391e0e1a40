/* Row loops of Elkan's and Yinyang's passes, instantiated per element type by kmeans_bounds.c
 * (BR_T the element type, BR_DISTANCE and BR_ALL_DISTANCES its reference-kernel distances to one
 * and to all centers, BR_SUFFIX the name suffix). Every distance computed is the reference
 * kernel's (same bits as every direct kernel); a center is skipped only when a lower bound
 * proves its computed distance strictly larger than the current best's, and the best is the
 * smallest (distance, index) among the rest, so the label is Lloyd's, ties included. */

#define BR_CAT_(a, b) a##b
#define BR_CAT(a, b) BR_CAT_(a, b)
#define BR_NAME(stem) BR_CAT(stem, BR_SUFFIX)

/* Every distance of row into all[k] and the nearest center (strict <: ties keep the lower
   index), as Lloyd's kernels find it. */
static inline int32_t BR_NAME(nearest_of_all_)(const BR_T *row, const kmeans_bounds *bounds,
                                               size_t k, size_t d, BR_T *all)
{
    BR_ALL_DISTANCES(row, bounds->transposed, k, d, all);
    int32_t best = 0;
    for (size_t c = 1; c < k; c++)
        if (all[c] < all[best])
            best = (int32_t)c;
    return best;
}

/* out[s] := the squared distance of row to centers[index[s]] (row-major) for s < count, each
   summed over the features in order with one fused multiply-add per feature (the reference
   kernel's bits). Eight sums advance together in registers, so their dependency chains overlap
   instead of each waiting on its own; a last partial block repeats its last center (index and
   out have room for count + 7; the extra results are ignored). */
static inline void BR_NAME(some_distances_)(const BR_T *row, const BR_T *centers,
                                            int32_t *index, size_t count, size_t d,
                                            BR_T *restrict out)
{
    if (count == 0)
        return;
    for (size_t s = count; s % 8 != 0; s++)
        index[s] = index[count - 1];
    for (size_t s = 0; s < count; s += 8) {
        const BR_T *center[8];
        BR_T sum[8];
        for (int q = 0; q < 8; q++) {
            center[q] = centers + (size_t)index[s + (size_t)q] * d;
            sum[q] = 0;
        }
        for (size_t j = 0; j < d; j++) {
            BR_T value = row[j];
            for (int q = 0; q < 8; q++) {
                BR_T diff = value - center[q][j];
                sum[q] = BR_FMA(diff, diff, sum[q]);
            }
        }
        for (int q = 0; q < 8; q++)
            out[s + (size_t)q] = sum[q];
    }
}

/* The row's contribution to the block sums, in row order as the fused kernels add it. */
static inline void BR_NAME(accumulate_)(const kmeans_context *context, size_t i, const BR_T *row,
                                        int32_t label, int32_t best, BR_T best_value,
                                        double *payload, double *inertia, double *changed)
{
    size_t k = context->k, d = context->d;
    double weight = context->weights ? context->weights[i] : 1.0;
    if (label != best)
        *changed += 1.0;
    double *target = payload + (size_t)best * d;
    for (size_t j = 0; j < d; j++)
        target[j] += weight * (double)row[j];
    payload[k * d + (size_t)best] += weight;
    *inertia += weight * (double)best_value;
}

BOUNDS_CLONES
static void BR_NAME(elkan_rows_)(const kmeans_context *context, kmeans_bounds *bounds,
                                 size_t begin, size_t rows, int32_t *labels, double *payload,
                                 int thread)
{
    size_t k = context->k, d = context->d;
    const BR_T *data = (const BR_T *)(const void *)context->rows;
    const BR_T *centers = bounds->centers;
    const float *moved = bounds->moved_up;
    double inertia = 0.0, changed = 0.0, computed = 0.0, skipped = 0.0;
    /* Regions of k + 8 doubles: all distances, the survivors' distances, their indices. */
    double *work = bounds->work + (size_t)thread * bounds->stride;
    BR_T *all = (BR_T *)(void *)work, *values = (BR_T *)(void *)(work + (k + 8));
    int32_t *survivors = (int32_t *)(void *)(work + 2 * (k + 8));
    for (size_t i = begin; i < begin + rows; i++) {
        const BR_T *row = data + i * d;
        float *lower = bounds->row_lower + i * k;
        int32_t label = labels[i], best;
        BR_T best_value;
        if (label >= 0 && bounds->usable) {
            best = label;
            best_value = BR_DISTANCE(row, centers + (size_t)label * d, d);
            computed += 1.0;
            /* Every center's bound drops by its own move (vectorized across centers). */
            for (size_t c = 0; c < k; c++)
                lower[c] = drop_float(lower[c], moved[c]);
            lower[label] = down_float(root_lower(bounds, (double)best_value));
            double needed_root, gap_limit;
            own_limits(bounds, (double)best_value, &needed_root, &gap_limit);
            if (2.0 * bounds->half_gap[label] > gap_limit) {
                skipped += (double)(k - 1); /* Hamerly's test decides the row at once */
            } else {
                /* The centers that the bound, or the distance between the centers less the
                   row's own distance, do not prove farther than the own center by the margin
                   (collected without branches), then their distances together. */
                const float *gap = bounds->gap + (size_t)label * k;
                size_t count = 0;
                for (size_t c = 0; c < k; c++) {
                    survivors[count] = (int32_t)c;
                    count += (c != (size_t)label) & (lower[c] <= needed_root) &
                             (gap[c] <= gap_limit);
                }
                skipped += (double)(k - 1 - count);
                computed += (double)count;
                BR_NAME(some_distances_)(row, centers, survivors, count, d, values);
                for (size_t s = 0; s < count; s++) {
                    int32_t c = survivors[s];
                    BR_T value = values[s];
                    lower[c] = down_float(root_lower(bounds, (double)value));
                    if (value < best_value || (value == best_value && c < best)) {
                        best = c;
                        best_value = value;
                    }
                }
            }
        } else {
            /* A run's first pass (or bounds too loose to use): every center, as Lloyd. */
            best = BR_NAME(nearest_of_all_)(row, bounds, k, d, all);
            best_value = all[best];
            for (size_t c = 0; c < k; c++)
                lower[c] = down_float(root_lower(bounds, (double)all[c]));
            computed += (double)k;
        }
        BR_NAME(accumulate_)(context, i, row, label, best, best_value, payload, &inertia,
                             &changed);
        labels[i] = best;
    }
    payload[k * d + k] = inertia;
    payload[k * d + k + 1] = changed;
    payload[k * d + k + 2] = computed;
    payload[k * d + k + 3] = skipped;
}

BOUNDS_CLONES
static void BR_NAME(yinyang_rows_)(const kmeans_context *context, kmeans_bounds *bounds,
                                   size_t begin, size_t rows, int32_t *labels, double *payload,
                                   int thread)
{
    size_t k = context->k, d = context->d, groups = bounds->n_groups;
    const BR_T *data = (const BR_T *)(const void *)context->rows;
    const BR_T *centers = bounds->centers, *grouped = bounds->grouped;
    const double *grouped_move = bounds->grouped_move;
    const int32_t *members = bounds->group_members, *group_of = bounds->group_of;
    const size_t *start = bounds->group_start;
    double inertia = 0.0, changed = 0.0, computed = 0.0, skipped = 0.0;
    /* Regions of k + 8 doubles (see some_distances_), then 2t. */
    double *work = bounds->work + (size_t)thread * bounds->stride;
    BR_T *all = (BR_T *)(void *)work;   /* a row's distances */
    /* By group position, in examined groups: a lower bound on the distance where the local
       filter decided, and the computed squared distance where not (the other is infinite);
       square roots only once per group. */
    double *bound = work + (k + 8), *raw = work + 2 * (k + 8);
    double *old = work + 4 * (k + 8);   /* [t] the group bounds of the last pass */
    double *examined = old + groups;    /* [t] 1 where the group was examined */
    for (size_t i = begin; i < begin + rows; i++) {
        const BR_T *row = data + i * d;
        float *group_lower = bounds->row_lower + i * groups;
        int32_t label = labels[i], best;
        BR_T best_value;
        if (label >= 0 && bounds->usable) {
            best = label;
            best_value = BR_DISTANCE(row, centers + (size_t)label * d, d);
            computed += 1.0;
            double needed_root, gap_limit;
            own_limits(bounds, (double)best_value, &needed_root, &gap_limit);
            /* Each group's bound drops by the largest move in the group. */
            double global = INFINITY;
            for (size_t f = 0; f < groups; f++) {
                old[f] = group_lower[f];
                double dropped = (old[f] - bounds->group_move[f]) * BOUND_DOWN;
                group_lower[f] = dropped > 0 ? down_float(dropped) : 0.0f;
                if (group_lower[f] < global)
                    global = group_lower[f];
            }
            if (global > needed_root || 2.0 * bounds->half_gap[label] > gap_limit) {
                skipped += (double)(k - 1); /* the global filter decides the row */
            } else {
                size_t own_group = (size_t)group_of[label];
                size_t own_position = (size_t)bounds->position_of[label];
                BR_T own_value = best_value;
                for (size_t f = 0; f < groups; f++) {
                    size_t first = start[f], end = start[f + 1];
                    size_t others = end - first - (f == own_group);
                    /* Group filter: the whole group is farther than the best by the margin. */
                    if (group_lower[f] > needed_root) {
                        examined[f] = 0.0;
                        skipped += (double)others;
                        continue;
                    }
                    examined[f] = 1.0;
                    /* Local filter: the group's old bound less each center's own move. */
                    int survivors = 0;
                    for (size_t p = first; p < end; p++) {
                        double local = (old[f] - grouped_move[p]) * BOUND_DOWN;
                        bound[p] = local;
                        raw[p] = INFINITY;
                        survivors |= (p != own_position) & (local <= needed_root);
                    }
                    if (!survivors) {
                        skipped += (double)others;
                        continue;
                    }
                    /* A group with a survivor is compared whole, its centers in vector lanes
                       (the group's block of the group-ordered transposed centers): cheaper than
                       gathering the survivors, and the same bits per distance. */
                    BR_ALL_DISTANCES(row, grouped + first * d, end - first, d, all + first);
                    computed += (double)others;
                    int changed_best = 0;
                    for (size_t p = first; p < end; p++) {
                        BR_T value = all[p];
                        int32_t c = members[p];
                        bound[p] = INFINITY; /* the computed distance replaces the local bound */
                        raw[p] = (double)value;
                        if (c != label &&
                            (value < best_value || (value == best_value && c < best))) {
                            best = c;
                            best_value = value;
                            changed_best = 1;
                        }
                    }
                    if (changed_best)
                        own_limits(bounds, (double)best_value, &needed_root, &gap_limit);
                }
                /* The own center, as computed. */
                bound[own_position] = INFINITY;
                raw[own_position] = (double)own_value;
                /* The new group bounds cover every center of the group but the new label. */
                size_t best_position = (size_t)bounds->position_of[best];
                for (size_t f = 0; f < groups; f++) {
                    if (examined[f] == 0.0) {
                        if (f == own_group && best != label) {
                            double own_lower = root_lower(bounds, raw[own_position]);
                            if (own_lower < group_lower[f])
                                group_lower[f] = down_float(own_lower);
                        }
                        continue;
                    }
                    double low = INFINITY, low_raw = INFINITY;
                    for (size_t p = start[f]; p < start[f + 1]; p++)
                        if (p != best_position) {
                            low = bound[p] < low ? bound[p] : low;
                            low_raw = raw[p] < low_raw ? raw[p] : low_raw;
                        }
                    /* root_lower is increasing: one square root for the smallest distance. */
                    if (low_raw < INFINITY && root_lower(bounds, low_raw) < low)
                        low = root_lower(bounds, low_raw);
                    group_lower[f] = low > 0 ? down_float(low) : 0.0f;
                }
            }
        } else {
            /* A run's first pass (or bounds too loose to use): every center, as Lloyd. */
            best = BR_NAME(nearest_of_all_)(row, bounds, k, d, all);
            best_value = all[best];
            computed += (double)k;
            for (size_t f = 0; f < groups; f++) {
                int any = 0;
                BR_T low = 0;
                for (size_t p = start[f]; p < start[f + 1]; p++) {
                    size_t c = (size_t)members[p];
                    if (c != (size_t)best && (!any || all[c] < low)) {
                        low = all[c];
                        any = 1;
                    }
                }
                group_lower[f] = any ? down_float(root_lower(bounds, (double)low)) : INFINITY;
            }
        }
        BR_NAME(accumulate_)(context, i, row, label, best, best_value, payload, &inertia,
                             &changed);
        labels[i] = best;
    }
    payload[k * d + k] = inertia;
    payload[k * d + k + 1] = changed;
    payload[k * d + k + 2] = computed;
    payload[k * d + k + 3] = skipped;
}

#undef BR_NAME
#undef BR_CAT
#undef BR_CAT_
