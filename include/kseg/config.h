/* YAML configuration: a parsed document tree that remembers line and column of every node (read
 * with libyaml), typed lookups whose errors name FILE:LINE:COLUMN, unknown keys reported with the
 * nearest valid key, and the segment rules file. Part of libkseg's io layer. */
#ifndef KSEG_CONFIG_H
#define KSEG_CONFIG_H

#include "kseg/export.h"

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"
#include "kseg/segment.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kseg_yaml_kind {
    KSEG_YAML_SCALAR = 0,
    KSEG_YAML_SEQUENCE = 1,
    KSEG_YAML_MAPPING = 2
} kseg_yaml_kind;

/* A node. Scalars keep their text (value; "" for an empty scalar, and null scalars such as "~"
 * are scalars too, with is_null set). Mappings keep keys in file order; duplicate keys are
 * rejected at load. Lines and columns are 1-based. */
typedef struct kseg_yaml_node {
    kseg_yaml_kind kind;
    char *value;                    /* scalar text, else NULL */
    int is_null;                    /* plain scalar "", "~", "null", "Null" or "NULL" */
    size_t line;
    size_t column;
    size_t n_items;                 /* sequence elements or mapping entries */
    struct kseg_yaml_node *items;   /* [n_items]: elements, or the values of a mapping */
    char **keys;                    /* mapping: [n_items] keys (scalars only), else NULL */
    size_t *key_lines;              /* mapping: where each key is */
    size_t *key_columns;
} kseg_yaml_node;

/* A loaded document: source is the file name used in messages. Owned; _init / _destroy. */
typedef struct kseg_yaml_document {
    char *source;
    kseg_yaml_node *root;  /* NULL for an empty document */
} kseg_yaml_document;

KSEG_API void kseg_yaml_document_init(kseg_yaml_document *document);
KSEG_API void kseg_yaml_document_destroy(kseg_yaml_document *document);

/* Loads one YAML document (a second document in the stream is an error; anchors/aliases are
 * refused). A syntax error is KSEG_EFORMAT "FILE:LINE:COLUMN: <libyaml's problem>". */
KSEG_API int kseg_yaml_load_file(const char *path, kseg_yaml_document *document,
                                 kseg_error *error);
KSEG_API int kseg_yaml_load_string(const char *text, size_t length, const char *source,
                                   kseg_yaml_document *document, kseg_error *error);

/* The value of key in a mapping node, or NULL (also NULL when mapping is NULL or not a mapping). */
KSEG_API const kseg_yaml_node *kseg_yaml_get(const kseg_yaml_node *mapping, const char *key);

/* Checks that node is a mapping whose keys are all in allowed[n_allowed]. An unknown key is
 * KSEG_EINVAL "SOURCE:LINE:COLUMN: unknown key 'sede' in CONTEXT (did you mean 'seed'?)" with the
 * nearest allowed key by edit distance (suggested when the distance is at most max(2, len/3)),
 * or listing the allowed keys otherwise. context names where we are, e.g. "'cluster'". */
KSEG_API int kseg_yaml_check_keys(const kseg_yaml_node *node, const char *const *allowed,
                                  size_t n_allowed, const char *source, const char *context,
                                  kseg_error *error);

/* Typed reads of a scalar node; errors name SOURCE:LINE:COLUMN, what (e.g. "cluster.seed") and
 * what was expected. Booleans accept true/false/yes/no/on/off (any case). */
KSEG_API int kseg_yaml_string(const kseg_yaml_node *node, const char *source, const char *what,
                              const char **value, kseg_error *error);
KSEG_API int kseg_yaml_double(const kseg_yaml_node *node, const char *source, const char *what,
                              double *value, kseg_error *error);
KSEG_API int kseg_yaml_int64(const kseg_yaml_node *node, const char *source, const char *what,
                             int64_t minimum, int64_t maximum, int64_t *value, kseg_error *error);
KSEG_API int kseg_yaml_bool(const kseg_yaml_node *node, const char *source, const char *what,
                            int *value, kseg_error *error);

/* Edit (Levenshtein) distance, exposed for the CLI's own suggestions. */
KSEG_API size_t kseg_edit_distance(const char *a, const char *b);

/* Reads a rules file (format in README, "Segment rules"):
 *     levels: {low: 0.33, high: 0.67}        # optional population quantiles
 *     segments:
 *       - name: Champions
 *         when: {recency: low, frequency: high, monetary: [mid, high]}
 *       - name: Big baskets
 *         when: {monetary: {min: 500}}        # explicit values, original units
 *     fallback: Regulars                      # required
 * feature_names [d] are the model's features: an unknown feature is an error naming the feature,
 * its line and column and the nearest feature; so is an unknown level, a missing fallback, an
 * empty name, a 'when' that is not a mapping, or min > max. */
KSEG_API int kseg_rules_from_yaml(const kseg_yaml_node *root, const char *source,
                                  const char *const *feature_names, size_t d, kseg_rules *rules,
                                  kseg_error *error);
KSEG_API int kseg_rules_load_file(const char *path, const char *const *feature_names, size_t d,
                                  kseg_rules *rules, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
