/* Evaluating a scheme: per segment the customers, revenue (or any value column), shares,
 * cumulative shares in priority order, value per customer and the exact mean and median of each
 * feature. Segments are ranked by revenue, so the few that bring most revenue come first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/segment.h"
#include "segment_internal.h"

void kseg_evaluation_init(kseg_evaluation *evaluation)
{
    memset(evaluation, 0, sizeof *evaluation);
}

void kseg_evaluation_destroy(kseg_evaluation *evaluation)
{
    if (!evaluation)
        return;
    if (evaluation->segments)
        for (size_t s = 0; s < evaluation->n_segments; s++) {
            free(evaluation->segments[s].mean);
            free(evaluation->segments[s].median);
        }
    free(evaluation->segments);
    memset(evaluation, 0, sizeof *evaluation);
}

/* Per-segment sums by segment id, before they are put in priority order. */
typedef struct segment_totals {
    int32_t segment;
    int64_t customers;
    double revenue;
} segment_totals;

/* Priority order: more revenue first, then more customers, then the lower id, so that the order
 * is total and does not depend on the sort. */
static int compare_priority(const void *a, const void *b)
{
    const segment_totals *x = a, *y = b;
    if (x->revenue != y->revenue)
        return x->revenue > y->revenue ? -1 : 1;
    if (x->customers != y->customers)
        return x->customers > y->customers ? -1 : 1;
    return (x->segment > y->segment) - (x->segment < y->segment);
}

/* The median of values[0..n) (sorted in place): the middle value, or the mean of the two middle
 * values for an even count. n >= 1. */
static double median_in_place(double *values, size_t n)
{
    qsort(values, n, sizeof *values, kseg_segment_compare_doubles);
    if (n % 2)
        return values[n / 2];
    return 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static int check_evaluation_input(const kseg_scheme *scheme, const double *features, size_t d,
                                  const double *value, kseg_error *error)
{
    static const char function[] = "evaluate";
    if (!scheme)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no scheme given", function);
    int status = kseg_segment_check_scheme(scheme, function, error);
    if (status)
        return status;
    const size_t n = scheme->n_customers;
    if (n && d && !features)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: scheme '%s': %zu features announced but none given", function,
                              scheme->name ? scheme->name : "", d);
    if (scheme->n_segments >= (size_t)INT32_MAX)
        return kseg_error_set(error, KSEG_ETOOBIG, "%s: %zu segments are too many", function,
                              scheme->n_segments);
    for (size_t i = 0; i < n; i++) {
        if (value && !isfinite(value[i]))
            return kseg_error_set(error, KSEG_ENONFINITE,
                                  "%s: customer row %zu has value %g (expected a finite number)",
                                  function, i, value[i]);
        for (size_t j = 0; j < d; j++)
            if (!isfinite(features[i * d + j]))
                return kseg_error_set(error, KSEG_ENONFINITE,
                                      "%s: customer row %zu, feature %zu is %g (expected a finite "
                                      "number)",
                                      function, i, j, features[i * d + j]);
    }
    return 0;
}

int kseg_evaluate_scheme(const kseg_scheme *scheme, const double *features, size_t d,
                         const double *value, kseg_evaluation *evaluation, kseg_error *error)
{
    kseg_evaluation_init(evaluation);
    int status = check_evaluation_input(scheme, features, d, value, error);
    if (status)
        return status;
    const size_t n = scheme->n_customers, m = scheme->n_segments;
    segment_totals *totals = calloc(m ? m : 1, sizeof *totals);
    /* Rows grouped by segment (a counting sort, stable, so each group is in row order): the
       means then add up in row order, and the medians see each group in one piece. */
    size_t *group_start = calloc(m + 1, sizeof *group_start);
    size_t *grouped_rows = malloc((n ? n : 1) * sizeof *grouped_rows);
    size_t *fill = calloc(m ? m : 1, sizeof *fill);
    double *scratch = NULL;
    if (!totals || !group_start || !grouped_rows || !fill)
        goto out_of_memory;

    for (size_t s = 0; s < m; s++)
        totals[s].segment = (int32_t)s;
    for (size_t i = 0; i < n; i++) {
        segment_totals *total = &totals[scheme->segment[i]];
        total->customers++;
        total->revenue += value ? value[i] : 1.0;
    }
    size_t largest = 0;
    for (size_t s = 0; s < m; s++) {
        group_start[s + 1] = group_start[s] + (size_t)totals[s].customers;
        if ((size_t)totals[s].customers > largest)
            largest = (size_t)totals[s].customers;
    }
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)scheme->segment[i];
        grouped_rows[group_start[s] + fill[s]++] = i;
    }
    if (!(scratch = malloc((largest ? largest : 1) * sizeof *scratch)))
        goto out_of_memory;

    qsort(totals, m, sizeof *totals, compare_priority);
    evaluation->n_features = d;
    evaluation->total_customers = (int64_t)n;
    /* The total is summed in priority order, the order of the cumulative shares, so that the
       last cumulative revenue share is exactly 1. */
    for (size_t p = 0; p < m; p++)
        evaluation->total_revenue += totals[p].revenue;
    if (!(evaluation->segments = calloc(m ? m : 1, sizeof *evaluation->segments)))
        goto out_of_memory;
    evaluation->n_segments = m;

    const double total_customers = (double)n, total_revenue = evaluation->total_revenue;
    double cumulative_customers = 0.0, cumulative_revenue = 0.0;
    for (size_t p = 0; p < m; p++) {
        kseg_segment_stats *stats = &evaluation->segments[p];
        const segment_totals *total = &totals[p];
        stats->segment = total->segment;
        stats->priority = (int32_t)(p + 1);
        stats->customers = total->customers;
        stats->revenue = total->revenue;
        cumulative_customers += (double)total->customers;
        cumulative_revenue += total->revenue;
        stats->customer_share = n ? (double)total->customers / total_customers : 0.0;
        stats->cumulative_customer_share = n ? cumulative_customers / total_customers : 0.0;
        stats->revenue_share = total_revenue != 0.0 ? total->revenue / total_revenue : 0.0;
        stats->cumulative_revenue_share =
            total_revenue != 0.0 ? cumulative_revenue / total_revenue : 0.0;
        stats->value_per_customer =
            total->customers ? total->revenue / (double)total->customers : 0.0;
        if (d == 0)
            continue;
        stats->mean = malloc(d * sizeof *stats->mean);
        stats->median = malloc(d * sizeof *stats->median);
        if (!stats->mean || !stats->median)
            goto out_of_memory;
        const size_t *rows = grouped_rows + group_start[total->segment];
        const size_t count = (size_t)total->customers;
        for (size_t j = 0; j < d; j++) {
            if (count == 0) {
                stats->mean[j] = NAN;
                stats->median[j] = NAN;
                continue;
            }
            double sum = 0.0;
            for (size_t r = 0; r < count; r++) {
                scratch[r] = features[rows[r] * d + j];
                sum += scratch[r];
            }
            stats->mean[j] = sum / (double)count;
            stats->median[j] = median_in_place(scratch, count);
        }
    }
    goto done;
out_of_memory:
    kseg_evaluation_destroy(evaluation);
    status = kseg_error_set(error, KSEG_ENOMEM, "evaluate: out of memory for %zu customers", n);
done:
    free(totals);
    free(group_start);
    free(grouped_rows);
    free(fill);
    free(scratch);
    return status;
}
