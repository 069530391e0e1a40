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
    BR_T *all = (BR_T *)(void *)(bounds->work + (size_t)thread * bounds->stride);
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
                const float *gap = bounds->gap + (size_t)best * k;
                for (size_t c = 0; c < k; c++) {
                    if (c == (size_t)label)
                        continue;
                    /* The bound, or the distance between the centers less the row's own
                       distance, proves center c farther than the best by the margin. */
                    if (lower[c] > needed_root || gap[c] > gap_limit) {
                        skipped += 1.0;
                        continue;
                    }
                    BR_T value = BR_DISTANCE(row, centers + c * d, d);
                    computed += 1.0;
                    lower[c] = down_float(root_lower(bounds, (double)value));
                    if (value < best_value || (value == best_value && (int32_t)c < best)) {
                        best = (int32_t)c;
                        best_value = value;
                        own_limits(bounds, (double)best_value, &needed_root, &gap_limit);
                        gap = bounds->gap + c * k;
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
    const BR_T *centers = bounds->centers;
    const int32_t *members = bounds->group_members, *group_of = bounds->group_of;
    const size_t *start = bounds->group_start;
    double inertia = 0.0, changed = 0.0, computed = 0.0, skipped = 0.0;
    double *work = bounds->work + (size_t)thread * bounds->stride;
    BR_T *all = (BR_T *)(void *)work;   /* [k] a row's distances */
    double *center_bound = work + k;    /* [k] lower bounds of the centers of examined groups */
    double *old = work + 2 * k;         /* [t] the group bounds of the last pass */
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
                double own_lower = root_lower(bounds, (double)best_value);
                size_t own_group = (size_t)group_of[label];
                for (size_t f = 0; f < groups; f++) {
                    size_t first = start[f], end = start[f + 1];
                    /* Group filter: the whole group is farther than the best by the margin. */
                    if (group_lower[f] > needed_root) {
                        examined[f] = 0.0;
                        skipped += (double)(end - first - (f == own_group));
                        continue;
                    }
                    examined[f] = 1.0;
                    for (size_t p = first; p < end; p++) {
                        size_t c = (size_t)members[p];
                        if (c == (size_t)label) {
                            center_bound[c] = own_lower;
                            continue;
                        }
                        /* Local filter: the group's old bound less this center's own move. */
                        double local = (old[f] - bounds->moved[c]) * BOUND_DOWN;
                        if (local > needed_root) {
                            center_bound[c] = local;
                            skipped += 1.0;
                            continue;
                        }
                        BR_T value = BR_DISTANCE(row, centers + c * d, d);
                        computed += 1.0;
                        center_bound[c] = root_lower(bounds, (double)value);
                        if (value < best_value || (value == best_value && (int32_t)c < best)) {
                            best = (int32_t)c;
                            best_value = value;
                            own_limits(bounds, (double)best_value, &needed_root, &gap_limit);
                        }
                    }
                }
                /* The new group bounds cover every center of the group but the new label. */
                for (size_t f = 0; f < groups; f++) {
                    if (examined[f] == 0.0) {
                        if (f == own_group && best != label && own_lower < group_lower[f])
                            group_lower[f] = down_float(own_lower);
                        continue;
                    }
                    double low = INFINITY;
                    for (size_t p = start[f]; p < start[f + 1]; p++) {
                        size_t c = (size_t)members[p];
                        if (c != (size_t)best && center_bound[c] < low)
                            low = center_bound[c];
                    }
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
