/* Segment rules files: reads the YAML that names clusters (levels, an ordered list of segments
 * with conditions on the model's features, a required fallback) into struct kseg_rules, checking
 * every name against the model so that a typo is reported with line, column and a suggestion. */
#define _GNU_SOURCE /* strdup, strcasecmp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kseg/config.h"
#include "yaml_internal.h"

/* Messages quote at most this much of a name the user wrote. */
#define QUOTE_MAX 60

static const char *const top_keys[] = {"levels", "segments", "fallback"};
static const char *const level_keys[] = {"low", "high"};
static const char *const segment_keys[] = {"name", "when"};
static const char *const range_keys[] = {"min", "max"};
static const char *const level_names[] = {"low", "mid", "high"};
static const unsigned level_bits[] = {KSEG_LEVEL_LOW, KSEG_LEVEL_MID, KSEG_LEVEL_HIGH};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* ---------------------------------------------------------------- reading */

typedef struct reader {
    const char *source;
    const char *const *features;
    size_t d;
    kseg_error *error;
} reader;

/* A name is empty when it has no character other than white space. */
static int is_blank_name(const char *name)
{
    for (; *name; name++)
        if (!strchr(" \t\r\n\v\f", *name))
            return 0;
    return 1;
}

static int read_levels(const reader *r, const kseg_yaml_node *levels, kseg_rules *rules)
{
    int status = kseg_yaml_check_keys(levels, level_keys, COUNT(level_keys), r->source,
                                      "'levels'", r->error);
    if (status || !levels || levels->kind != KSEG_YAML_MAPPING)
        return status; /* absent, or empty ("levels:" alone): the defaults stay */
    const kseg_yaml_node *low = kseg_yaml_get(levels, "low");
    const kseg_yaml_node *high = kseg_yaml_get(levels, "high");
    if (low && !(low->kind == KSEG_YAML_SCALAR && low->is_null) &&
        (status = kseg_yaml_double(low, r->source, "levels.low", &rules->low_quantile, r->error)))
        return status;
    if (high && !(high->kind == KSEG_YAML_SCALAR && high->is_null) &&
        (status =
             kseg_yaml_double(high, r->source, "levels.high", &rules->high_quantile, r->error)))
        return status;
    /* Point at the value that breaks 0 < low < high < 1; when the two are only out of order,
       at whichever of them the file gives (high first, as it is read second). */
    const kseg_yaml_node *culprit = NULL;
    if (!(rules->low_quantile > 0.0 && rules->low_quantile < 1.0))
        culprit = low;
    else if (!(rules->high_quantile > 0.0 && rules->high_quantile < 1.0))
        culprit = high;
    else if (!(rules->low_quantile < rules->high_quantile))
        culprit = high ? high : low;
    else
        return 0;
    if (!culprit)
        culprit = levels;
    return kseg_error_set(r->error, KSEG_EINVAL,
                          "%s:%zu:%zu: levels must satisfy 0 < low < high < 1 (they are population "
                          "quantiles), got low %g and high %g",
                          r->source, culprit->line, culprit->column, rules->low_quantile,
                          rules->high_quantile);
}

/* One level name into its bit, or an error naming the level and listing the valid ones. */
static int read_level(const reader *r, const kseg_yaml_node *node, const char *feature,
                      const char *segment, unsigned *bits)
{
    if (node->kind != KSEG_YAML_SCALAR || node->is_null)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: a level of feature '%s' in segment '%.*s' must be low, "
                              "mid or high, not %s",
                              r->source, node->line, node->column, feature, QUOTE_MAX, segment,
                              node->kind == KSEG_YAML_MAPPING ? "a mapping"
                              : node->kind == KSEG_YAML_SEQUENCE ? "a sequence"
                                                                 : "an empty value");
    for (size_t l = 0; l < COUNT(level_names); l++)
        if (strcasecmp(node->value, level_names[l]) == 0) {
            *bits |= level_bits[l];
            return 0;
        }
    const char *nearest = kseg_yaml_nearest(node->value, level_names, COUNT(level_names));
    char hint[64] = "";
    if (nearest)
        snprintf(hint, sizeof hint, "did you mean '%s'? ", nearest);
    return kseg_error_set(r->error, KSEG_EINVAL,
                          "%s:%zu:%zu: unknown level '%.*s' for feature '%s' in segment '%.*s' "
                          "(%slevels: low, mid, high)",
                          r->source, node->line, node->column, QUOTE_MAX, node->value, feature,
                          QUOTE_MAX, segment, hint);
}

/* {min: x, max: y}: either side may be left out (or null) for an open side, not both. */
static int read_range(const reader *r, const kseg_yaml_node *range, const char *feature,
                      const char *segment, kseg_rule_condition *condition)
{
    char context[200];
    snprintf(context, sizeof context, "the range of feature '%s' in segment '%.*s'", feature,
             QUOTE_MAX, segment);
    int status = kseg_yaml_check_keys(range, range_keys, COUNT(range_keys), r->source, context,
                                      r->error);
    if (status)
        return status;
    condition->levels = 0;
    condition->min = -INFINITY;
    condition->max = INFINITY;
    int given = 0;
    for (size_t side = 0; side < 2; side++) {
        const kseg_yaml_node *bound = kseg_yaml_get(range, range_keys[side]);
        if (!bound || (bound->kind == KSEG_YAML_SCALAR && bound->is_null))
            continue;
        char what[200];
        snprintf(what, sizeof what, "%s of feature '%s' in segment '%.*s'", range_keys[side],
                 feature, QUOTE_MAX, segment);
        if ((status = kseg_yaml_double(bound, r->source, what,
                                       side == 0 ? &condition->min : &condition->max, r->error)))
            return status;
        given++;
    }
    if (!given)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: %s gives neither min nor max", r->source, range->line,
                              range->column, context);
    if (condition->min > condition->max)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: %s is empty: min %g is greater than max %g", r->source,
                              range->line, range->column, context, condition->min,
                              condition->max);
    return 0;
}

/* One "feature: condition" entry of a 'when' mapping. */
static int read_condition(const reader *r, const kseg_yaml_node *when, size_t entry,
                          const char *segment, kseg_rule_condition *condition)
{
    const char *feature = when->keys[entry];
    const kseg_yaml_node *value = &when->items[entry];
    size_t j = 0;
    while (j < r->d && strcmp(r->features[j], feature) != 0)
        j++;
    if (j == r->d) {
        char list[300] = "";
        kseg_yaml_join(list, sizeof list, r->features, r->d);
        const char *nearest = kseg_yaml_nearest(feature, r->features, r->d);
        char hint[QUOTE_MAX + 32] = "";
        if (nearest)
            snprintf(hint, sizeof hint, "did you mean '%.*s'? ", QUOTE_MAX, nearest);
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: unknown feature '%.*s' in segment '%.*s' (%s%s%s)",
                              r->source, when->key_lines[entry], when->key_columns[entry],
                              QUOTE_MAX, feature, QUOTE_MAX, segment, hint,
                              r->d ? "features: " : "the model has no features", list);
    }
    condition->feature = j;
    condition->levels = 0;
    condition->min = -INFINITY;
    condition->max = INFINITY;
    switch (value->kind) {
    case KSEG_YAML_SCALAR:
        if (value->is_null)
            return kseg_error_set(r->error, KSEG_EINVAL,
                                  "%s:%zu:%zu: feature '%s' in segment '%.*s' has no condition "
                                  "(expected low, mid, high, a list of them, or {min: x, max: y})",
                                  r->source, when->key_lines[entry], when->key_columns[entry],
                                  feature, QUOTE_MAX, segment);
        return read_level(r, value, feature, segment, &condition->levels);
    case KSEG_YAML_SEQUENCE:
        if (value->n_items == 0)
            return kseg_error_set(r->error, KSEG_EINVAL,
                                  "%s:%zu:%zu: the list of levels of feature '%s' in segment "
                                  "'%.*s' is empty (expected some of low, mid, high)",
                                  r->source, value->line, value->column, feature, QUOTE_MAX,
                                  segment);
        for (size_t i = 0; i < value->n_items; i++) {
            int status = read_level(r, &value->items[i], feature, segment, &condition->levels);
            if (status)
                return status;
        }
        return 0;
    case KSEG_YAML_MAPPING:
        return read_range(r, value, feature, segment, condition);
    }
    return kseg_error_set(r->error, KSEG_EINTERNAL, "%s: unknown YAML node kind", r->source);
}

static int read_segment(const reader *r, const kseg_yaml_node *item, size_t index,
                        kseg_rule *rule)
{
    if (item->kind != KSEG_YAML_MAPPING)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: each 'segments' item must be a mapping with 'name' and "
                              "optionally 'when', not %s",
                              r->source, item->line, item->column,
                              item->kind == KSEG_YAML_SEQUENCE ? "a sequence"
                              : item->is_null                  ? "an empty value"
                                                               : "a scalar");
    /* Unknown keys are reported first, in the segment's name when it has a usable one: a
       misspelt 'name' or 'when' is better told as such than as a missing name. */
    const kseg_yaml_node *name = kseg_yaml_get(item, "name");
    int named = name && name->kind == KSEG_YAML_SCALAR && !name->is_null &&
                !is_blank_name(name->value);
    char context[QUOTE_MAX + 40];
    if (named)
        snprintf(context, sizeof context, "segment '%.*s'", QUOTE_MAX, name->value);
    else
        snprintf(context, sizeof context, "'segments' item %zu", index + 1);
    int status = kseg_yaml_check_keys(item, segment_keys, COUNT(segment_keys), r->source, context,
                                      r->error);
    if (status)
        return status;
    if (!name)
        return kseg_error_set(r->error, KSEG_EINVAL, "%s:%zu:%zu: %s has no 'name'", r->source,
                              item->line, item->column, context);
    if (name->kind != KSEG_YAML_SCALAR)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: the name of %s must be text, not %s", r->source,
                              name->line, name->column, context,
                              name->kind == KSEG_YAML_SEQUENCE ? "a sequence" : "a mapping");
    if (!named)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: the segment name of %s is empty", r->source,
                              name->line, name->column, context);
    if (!(rule->segment = strdup(name->value)))
        return kseg_error_set(r->error, KSEG_ENOMEM, "%s: out of memory", r->source);

    const kseg_yaml_node *when = kseg_yaml_get(item, "when");
    if (!when || (when->kind == KSEG_YAML_SCALAR && when->is_null))
        return 0; /* no conditions: the rule matches every cluster that reaches it */
    if (when->kind != KSEG_YAML_MAPPING)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: 'when' of segment '%.*s' must be a mapping of feature: "
                              "condition, not %s",
                              r->source, when->line, when->column, QUOTE_MAX, rule->segment,
                              when->kind == KSEG_YAML_SEQUENCE ? "a sequence" : "a scalar");
    if (when->n_items == 0)
        return 0;
    if (!(rule->conditions = calloc(when->n_items, sizeof *rule->conditions)))
        return kseg_error_set(r->error, KSEG_ENOMEM, "%s: out of memory", r->source);
    for (size_t c = 0; c < when->n_items; c++) {
        if ((status = read_condition(r, when, c, rule->segment, &rule->conditions[c])))
            return status;
        rule->n_conditions++;
    }
    return 0;
}

static int read_fallback(const reader *r, const kseg_yaml_node *root, kseg_rules *rules)
{
    const kseg_yaml_node *fallback = kseg_yaml_get(root, "fallback");
    if (!fallback)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s: no 'fallback' segment: rules must end in a fallback so every "
                              "cluster gets a segment",
                              r->source);
    if (fallback->kind != KSEG_YAML_SCALAR)
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: 'fallback' must be a segment name, not %s", r->source,
                              fallback->line, fallback->column,
                              fallback->kind == KSEG_YAML_SEQUENCE ? "a sequence" : "a mapping");
    if (fallback->is_null || is_blank_name(fallback->value))
        return kseg_error_set(r->error, KSEG_EINVAL,
                              "%s:%zu:%zu: the 'fallback' segment name is empty: rules must end "
                              "in a fallback so every cluster gets a segment",
                              r->source, fallback->line, fallback->column);
    if (!(rules->fallback = strdup(fallback->value)))
        return kseg_error_set(r->error, KSEG_ENOMEM, "%s: out of memory", r->source);
    return 0;
}

int kseg_rules_from_yaml(const kseg_yaml_node *root, const char *source,
                         const char *const *feature_names, size_t d, kseg_rules *rules,
                         kseg_error *error)
{
    kseg_rules_init(rules);
    reader r = {.source = source ? source : "<rules>", .features = feature_names, .d = d,
                .error = error};
    if (d && !feature_names)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no feature names given for %zu features",
                              r.source, d);
    if (!root)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s: the rules file is empty (expected 'segments' and 'fallback')",
                              r.source);
    if (root->kind != KSEG_YAML_MAPPING)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%zu:%zu: the rules file must be a mapping with the keys "
                              "levels, segments and fallback, not %s",
                              r.source, root->line, root->column,
                              root->kind == KSEG_YAML_SEQUENCE ? "a sequence" : "a scalar");
    int status = kseg_yaml_check_keys(root, top_keys, COUNT(top_keys), r.source, "the rules file",
                                      error);
    if (status || (status = read_levels(&r, kseg_yaml_get(root, "levels"), rules)))
        goto done;

    const kseg_yaml_node *segments = kseg_yaml_get(root, "segments");
    if (segments && !(segments->kind == KSEG_YAML_SCALAR && segments->is_null)) {
        if (segments->kind != KSEG_YAML_SEQUENCE) {
            status = kseg_error_set(error, KSEG_EINVAL,
                                    "%s:%zu:%zu: 'segments' must be a list of '- name: ...' "
                                    "items, not %s",
                                    r.source, segments->line, segments->column,
                                    segments->kind == KSEG_YAML_MAPPING ? "a mapping"
                                                                        : "a scalar");
            goto done;
        }
        if (segments->n_items) {
            /* n_rules counts every slot from the start: destroy frees what the slots hold, and
               calloc leaves the slots not reached yet empty. */
            if (!(rules->rules = calloc(segments->n_items, sizeof *rules->rules))) {
                status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", r.source);
                goto done;
            }
            rules->n_rules = segments->n_items;
            for (size_t s = 0; s < segments->n_items; s++)
                if ((status = read_segment(&r, &segments->items[s], s, &rules->rules[s])))
                    goto done;
        }
    }
    status = read_fallback(&r, root, rules);
done:
    if (status)
        kseg_rules_destroy(rules);
    return status;
}

int kseg_rules_load_file(const char *path, const char *const *feature_names, size_t d,
                         kseg_rules *rules, kseg_error *error)
{
    kseg_rules_init(rules);
    kseg_yaml_document document;
    int status = kseg_yaml_load_file(path, &document, error);
    if (!status)
        status = kseg_rules_from_yaml(document.root, document.source, feature_names, d, rules,
                                      error);
    kseg_yaml_document_destroy(&document);
    return status;
}
