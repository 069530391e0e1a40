/* Merging segments too small to market to: by share of customers or of revenue, either into the
 * nearest other segment (centers recombined, customer-weighted) or into one "Other" segment. Works
 * on segment totals only and records every merge with its reason. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/segment.h"
#include "segment_internal.h"

#define OTHER_NAME "Other"
/* Room for a reason: two "... share X% < Y%" clauses. Shares are short in practice, but a revenue
 * share can be any finite number when some segments have negative revenue. */
#define SHARE_TEXT_MAX 400
#define CLAUSE_MAX (2 * SHARE_TEXT_MAX + 32)
#define REASON_MAX (2 * CLAUSE_MAX + 8)

void kseg_merge_options_defaults(kseg_merge_options *options)
{
    options->min_customer_share = 0.0;
    options->min_revenue_share = 0.0;
    options->mode = KSEG_MERGE_NEAREST;
}

void kseg_merge_result_init(kseg_merge_result *result)
{
    memset(result, 0, sizeof *result);
}

void kseg_merge_result_destroy(kseg_merge_result *result)
{
    if (!result)
        return;
    free(result->segment_map);
    kseg_segment_names_free(result->names, result->n_merged_segments);
    if (result->records)
        for (size_t r = 0; r < result->n_records; r++) {
            free(result->records[r].from);
            free(result->records[r].into);
            free(result->records[r].reason);
        }
    free(result->records);
    memset(result, 0, sizeof *result);
}

/* The working state: segments 0..m-1 are the input ones, m is "Other" when OTHER mode creates it.
 * Shares are always taken against the input totals, which merging does not change. */
typedef struct merge_state {
    const kseg_merge_options *options;
    size_t n_input;
    size_t d;
    const char *const *names;  /* [n_input]; slot n_input is OTHER_NAME */
    double *customers;         /* [n_input + 1] current totals */
    double *revenue;           /* [n_input + 1]; zeros when the caller gave none */
    double *centers;           /* [(n_input + 1) x d], or NULL: every distance is then 0 */
    size_t *members;           /* [n_input + 1] input segments inside each segment */
    unsigned char *active;     /* [n_input + 1] */
    size_t n_active;
    int32_t *owner;            /* [n_input] the segment each input segment is now part of */
    double total_customers;
    double total_revenue;
    int use_revenue;           /* the revenue threshold is on */
    kseg_merge_result *result; /* records are appended here */
} merge_state;

static const char *segment_name(const merge_state *state, size_t id)
{
    return id < state->n_input ? state->names[id] : OTHER_NAME;
}

/* A share against a total; a total of 0 (or less) gives shares of 0, as the evaluation does. */
static double share_of(double part, double total)
{
    return total > 0.0 ? part / total : 0.0;
}

static int violates_customers(const merge_state *state, size_t id)
{
    return share_of(state->customers[id], state->total_customers) <
           state->options->min_customer_share;
}

static int violates_revenue(const merge_state *state, size_t id)
{
    return state->use_revenue &&
           share_of(state->revenue[id], state->total_revenue) < state->options->min_revenue_share;
}

static int violates(const merge_state *state, size_t id)
{
    return violates_customers(state, id) || violates_revenue(state, id);
}

/* Writes share and threshold as percentages with one decimal, or with as many more (up to six)
 * as it takes for a share just below its threshold not to read as equal to it. */
static void format_share_clause(char *text, size_t size, const char *what, double share,
                                double threshold)
{
    char share_text[SHARE_TEXT_MAX], threshold_text[SHARE_TEXT_MAX];
    for (int decimals = 1; decimals <= 6; decimals++) {
        snprintf(share_text, sizeof share_text, "%.*f%%", decimals, 100.0 * share);
        snprintf(threshold_text, sizeof threshold_text, "%.*f%%", decimals, 100.0 * threshold);
        if (strcmp(share_text, threshold_text) != 0)
            break;
    }
    snprintf(text, size, "%s share %s < %s", what, share_text, threshold_text);
}

static char *merge_reason(const merge_state *state, size_t id)
{
    char text[REASON_MAX], clause[CLAUSE_MAX];
    text[0] = '\0';
    if (violates_customers(state, id)) {
        format_share_clause(clause, sizeof clause, "customer",
                            share_of(state->customers[id], state->total_customers),
                            state->options->min_customer_share);
        snprintf(text, sizeof text, "%s", clause);
    }
    if (violates_revenue(state, id)) {
        format_share_clause(clause, sizeof clause, "revenue",
                            share_of(state->revenue[id], state->total_revenue),
                            state->options->min_revenue_share);
        size_t length = strlen(text);
        snprintf(text + length, sizeof text - length, "%s%s", length ? "; " : "", clause);
    }
    return strdup(text);
}

/* The nearest other active segment to id by squared Euclidean distance between centers; ties go
 * to the lowest id. Without centers every distance is 0, so the lowest active id. */
static size_t nearest_segment(const merge_state *state, size_t id)
{
    size_t best = SIZE_MAX;
    double best_distance = INFINITY;
    for (size_t other = 0; other <= state->n_input; other++) {
        if (other == id || !state->active[other])
            continue;
        double distance = 0.0;
        if (state->centers)
            for (size_t j = 0; j < state->d; j++) {
                double difference =
                    state->centers[id * state->d + j] - state->centers[other * state->d + j];
                distance += difference * difference;
            }
        if (best == SIZE_MAX || distance < best_distance) {
            best = other;
            best_distance = distance;
        }
    }
    return best;
}

/* Merges segment from into segment into: records it, sums the totals and moves the center to
 * the customer-weighted mean of the two. */
static int merge_into(merge_state *state, size_t from, size_t into)
{
    kseg_merge_result *result = state->result;
    kseg_merge_record *record = &result->records[result->n_records];
    memset(record, 0, sizeof *record);
    record->customer_share = share_of(state->customers[from], state->total_customers);
    record->revenue_share = share_of(state->revenue[from], state->total_revenue);
    record->from = strdup(segment_name(state, from));
    record->into = strdup(segment_name(state, into));
    record->reason = merge_reason(state, from);
    result->n_records++;
    if (!record->from || !record->into || !record->reason)
        return -1;

    if (state->centers) {
        double *target = state->centers + into * state->d;
        const double *source = state->centers + from * state->d;
        const double weight_from = state->customers[from], weight_into = state->customers[into];
        for (size_t j = 0; j < state->d; j++) {
            if (state->members[into] == 0)
                /* A new "Other" has no center of its own yet. */
                target[j] = source[j];
            else if (weight_from + weight_into > 0.0)
                target[j] = (weight_from * source[j] + weight_into * target[j]) /
                            (weight_from + weight_into);
            else
                /* Two segments without customers: neither outweighs the other. */
                target[j] = 0.5 * (source[j] + target[j]);
        }
    }
    state->customers[into] += state->customers[from];
    state->revenue[into] += state->revenue[from];
    state->members[into] += state->members[from];
    state->active[from] = 0;
    state->n_active--;
    for (size_t s = 0; s < state->n_input; s++)
        if (state->owner[s] == (int32_t)from)
            state->owner[s] = (int32_t)into;
    return 0;
}

/* NEAREST: the violating segment with the fewest customers (ties: lowest id) joins its nearest
 * segment, until none violates or one is left. */
static int merge_nearest(merge_state *state)
{
    while (state->n_active > 1) {
        size_t smallest = SIZE_MAX;
        for (size_t id = 0; id <= state->n_input; id++)
            if (state->active[id] && violates(state, id) &&
                (smallest == SIZE_MAX || state->customers[id] < state->customers[smallest]))
                smallest = id;
        if (smallest == SIZE_MAX)
            break;
        if (merge_into(state, smallest, nearest_segment(state, smallest)) != 0)
            return -1;
    }
    return 0;
}

/* OTHER: every violating segment joins "Other" (an input segment of that name, else a new one);
 * then "Other", if it violates itself, joins its nearest segment. Only segments grow, so no
 * segment that was fine starts to violate. */
static int merge_other(merge_state *state)
{
    if (state->n_active < 2)
        return 0;
    size_t other = SIZE_MAX;
    for (size_t s = 0; s < state->n_input; s++)
        if (strcmp(state->names[s], OTHER_NAME) == 0)
            other = s;
    for (size_t s = 0; s < state->n_input; s++) {
        if (s == other || !violates(state, s))
            continue;
        if (other == SIZE_MAX) {
            other = state->n_input;
            state->active[other] = 1;
            state->n_active++;
        }
        if (merge_into(state, s, other) != 0)
            return -1;
    }
    if (other != SIZE_MAX && state->n_active > 1 && violates(state, other))
        return merge_into(state, other, nearest_segment(state, other));
    return 0;
}

static int check_merge_input(const kseg_merge_options *options, size_t n_segments,
                             const char *const *names, const double *customers,
                             const double *revenue, const double *centers, size_t d,
                             kseg_error *error)
{
    static const char function[] = "merge";
    if (!(options->min_customer_share >= 0.0 && options->min_customer_share <= 1.0) ||
        !(options->min_revenue_share >= 0.0 && options->min_revenue_share <= 1.0))
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: minimum customer share %g and revenue share %g must lie in "
                              "[0, 1]",
                              function, options->min_customer_share, options->min_revenue_share);
    if (options->mode != KSEG_MERGE_NEAREST && options->mode != KSEG_MERGE_OTHER)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: unknown mode %d (expected nearest %d or other %d)", function,
                              (int)options->mode, (int)KSEG_MERGE_NEAREST, (int)KSEG_MERGE_OTHER);
    if (n_segments >= (size_t)INT32_MAX)
        return kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu segments are too many", function,
                              n_segments);
    if (n_segments == 0)
        return 0;
    if (!names || !customers)
        return kseg_error_set(error, KSEG_EINVAL, "%s: segment names or customer counts missing",
                              function);
    if (options->min_revenue_share > 0.0 && !revenue)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: a minimum revenue share of %g needs the segments' revenue",
                              function, options->min_revenue_share);
    if (options->mode == KSEG_MERGE_NEAREST && d > 0 && !centers)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: merging into the nearest segment needs the segment centers",
                              function);
    for (size_t s = 0; s < n_segments; s++) {
        if (!names[s] || !names[s][0])
            return kseg_error_set(error, KSEG_EINVAL, "%s: segment %zu has no name", function, s);
        if (!isfinite(customers[s]) || customers[s] < 0.0)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s: segment %zu ('%s') has %g customers (expected a finite "
                                  "count >= 0)",
                                  function, s, names[s], customers[s]);
        if (revenue && !isfinite(revenue[s]))
            return kseg_error_set(error, KSEG_ENONFINITE,
                                  "%s: segment %zu ('%s') has revenue %g (expected a finite "
                                  "number)",
                                  function, s, names[s], revenue[s]);
        if (centers)
            for (size_t j = 0; j < d; j++)
                if (!isfinite(centers[s * d + j]))
                    return kseg_error_set(error, KSEG_ENONFINITE,
                                          "%s: segment %zu ('%s'), center feature %zu is %g "
                                          "(expected a finite number)",
                                          function, s, names[s], j, centers[s * d + j]);
    }
    size_t first = 0, second = 0;
    int duplicate = kseg_segment_names_find_duplicate(names, n_segments, &first, &second);
    if (duplicate < 0)
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", function);
    if (duplicate)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: segments %zu and %zu are both named '%s' (names must be "
                              "distinct)",
                              function, first, second, names[first]);
    return 0;
}

int kseg_merge_small_segments(const kseg_merge_options *options, size_t n_segments,
                              const char *const *names, const double *customers,
                              const double *revenue, const double *centers, size_t d,
                              kseg_merge_result *result, kseg_error *error)
{
    kseg_merge_result_init(result);
    kseg_merge_options defaults;
    if (!options) {
        kseg_merge_options_defaults(&defaults);
        options = &defaults;
    }
    int status = check_merge_input(options, n_segments, names, customers, revenue, centers, d,
                                   error);
    if (status)
        return status;

    const size_t slots = n_segments + 1;
    merge_state state = {
        .options = options,
        .n_input = n_segments,
        .d = d,
        .names = names,
        .use_revenue = options->min_revenue_share > 0.0,
        .result = result,
    };
    state.customers = calloc(slots, sizeof *state.customers);
    state.revenue = calloc(slots, sizeof *state.revenue);
    state.members = calloc(slots, sizeof *state.members);
    state.active = calloc(slots, sizeof *state.active);
    state.owner = malloc(slots * sizeof *state.owner);
    if (centers && d > 0)
        state.centers = malloc(slots * d * sizeof *state.centers);
    /* At most one record per input segment plus one for "Other". */
    result->records = calloc(slots, sizeof *result->records);
    result->segment_map = malloc(slots * sizeof *result->segment_map);
    if (!state.customers || !state.revenue || !state.members || !state.active || !state.owner ||
        (centers && d > 0 && !state.centers) || !result->records || !result->segment_map)
        goto out_of_memory;
    /* Totals in input order, so that shares do not depend on the order of merges. */
    for (size_t s = 0; s < n_segments; s++) {
        state.customers[s] = customers[s];
        state.revenue[s] = revenue ? revenue[s] : 0.0;
        state.members[s] = 1;
        state.active[s] = 1;
        state.owner[s] = (int32_t)s;
        state.total_customers += customers[s];
        state.total_revenue += state.revenue[s];
    }
    state.n_active = n_segments;
    if (state.centers)
        memcpy(state.centers, centers, n_segments * d * sizeof *centers);

    if ((options->mode == KSEG_MERGE_NEAREST ? merge_nearest(&state) : merge_other(&state)) != 0)
        goto out_of_memory;

    /* Surviving input segments in input order, then "Other" if it was created and survived. */
    int32_t *new_id = malloc(slots * sizeof *new_id);
    if (!new_id)
        goto out_of_memory;
    size_t survivors = 0;
    for (size_t id = 0; id < slots; id++)
        new_id[id] = state.active[id] ? (int32_t)survivors++ : -1;
    result->names = calloc(survivors ? survivors : 1, sizeof *result->names);
    if (!result->names) {
        free(new_id);
        goto out_of_memory;
    }
    for (size_t id = 0; id < slots; id++)
        if (state.active[id]) {
            if (!(result->names[result->n_merged_segments] = strdup(segment_name(&state, id)))) {
                free(new_id);
                goto out_of_memory;
            }
            result->n_merged_segments++;
        }
    for (size_t s = 0; s < n_segments; s++)
        result->segment_map[s] = new_id[state.owner[s]];
    free(new_id);
    goto done;
out_of_memory:
    kseg_merge_result_destroy(result);
    status = kseg_error_set(error, KSEG_ENOMEM, "merge: out of memory");
done:
    free(state.customers);
    free(state.revenue);
    free(state.members);
    free(state.active);
    free(state.owner);
    free(state.centers);
    return status;
}
