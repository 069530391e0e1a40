/* YAML configuration: the document tree (kinds, values, null scalars, lines and columns), the
 * loader's refusals (duplicate keys, syntax errors, aliases and anchors, second documents,
 * non-scalar keys, deep nesting), unknown keys with suggestions, the typed getters, and the
 * segment rules reader with each of its errors naming line and column. */
#define _GNU_SOURCE /* mkdtemp, nftw in scratch_dir.h */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/config.h"
#include "scratch_dir.h"

/* ---------------------------------------------------------------- helpers */

/* Loads text as "t.yaml" and asserts success. */
static void load(const char *text, kseg_yaml_document *document)
{
    kseg_error error = {0};
    int status = kseg_yaml_load_string(text, strlen(text), "t.yaml", document, &error);
    cr_assert_eq(status, 0, "load failed: %s", error.message);
}

/* Loads text as "t.yaml", asserts the load fails with code and that the message contains
   every given fragment (NULL-terminated). */
static void load_fails(const char *text, int code, ...)
{
    kseg_yaml_document document;
    kseg_error error = {0};
    int status = kseg_yaml_load_string(text, strlen(text), "t.yaml", &document, &error);
    cr_assert_eq(status, code, "expected %s, got %s: %s", kseg_err_name(code),
                 kseg_err_name(status), error.message);
    cr_assert_null(document.root, "a failed load leaves no tree");
    va_list fragments;
    va_start(fragments, code);
    for (const char *f = va_arg(fragments, const char *); f; f = va_arg(fragments, const char *))
        cr_assert(strstr(error.message, f), "message lacks '%s': %s", f, error.message);
    va_end(fragments);
    kseg_yaml_document_destroy(&document);
}

static void assert_scalar(const kseg_yaml_node *node, const char *value, size_t line,
                          size_t column)
{
    cr_assert_not_null(node);
    cr_assert_eq(node->kind, KSEG_YAML_SCALAR);
    cr_assert_str_eq(node->value, value);
    cr_assert_eq(node->line, line, "'%s' line %zu, expected %zu", value, node->line, line);
    cr_assert_eq(node->column, column, "'%s' column %zu, expected %zu", value, node->column,
                 column);
}

/* ---------------------------------------------------------------- the tree */

Test(yaml, nested_document_kinds_values_and_positions)
{
    const char *text = "# a run configuration\n"
                       "cluster:\n"
                       "  k: 8\n"
                       "  features: [recency, 'frequency']\n"
                       "output:\n"
                       "  - name: \"a b\"\n"
                       "    empty:\n"
                       "    tilde: ~\n"
                       "    quoted: ''\n"
                       "  - plain\n";
    kseg_yaml_document document;
    load(text, &document);
    cr_assert_str_eq(document.source, "t.yaml");
    const kseg_yaml_node *root = document.root;
    cr_assert_not_null(root);
    cr_assert_eq(root->kind, KSEG_YAML_MAPPING);
    cr_assert_eq(root->n_items, 2);
    cr_assert_str_eq(root->keys[0], "cluster");
    cr_assert_str_eq(root->keys[1], "output");
    cr_assert_eq(root->key_lines[0], 2);
    cr_assert_eq(root->key_columns[0], 1);
    cr_assert_eq(root->key_lines[1], 5);

    const kseg_yaml_node *cluster = kseg_yaml_get(root, "cluster");
    cr_assert_eq(cluster->kind, KSEG_YAML_MAPPING);
    cr_assert_eq(cluster->line, 3);
    cr_assert_eq(cluster->column, 3);
    assert_scalar(kseg_yaml_get(cluster, "k"), "8", 3, 6);
    cr_assert_eq(cluster->key_lines[1], 4);
    cr_assert_eq(cluster->key_columns[1], 3);
    const kseg_yaml_node *features = kseg_yaml_get(cluster, "features");
    cr_assert_eq(features->kind, KSEG_YAML_SEQUENCE);
    cr_assert_eq(features->line, 4);
    cr_assert_eq(features->column, 13);
    cr_assert_eq(features->n_items, 2);
    cr_assert_null(features->keys);
    assert_scalar(&features->items[0], "recency", 4, 14);
    assert_scalar(&features->items[1], "frequency", 4, 23);

    const kseg_yaml_node *output = kseg_yaml_get(root, "output");
    cr_assert_eq(output->kind, KSEG_YAML_SEQUENCE);
    cr_assert_eq(output->n_items, 2);
    const kseg_yaml_node *first = &output->items[0];
    cr_assert_eq(first->kind, KSEG_YAML_MAPPING);
    cr_assert_eq(first->line, 6);
    cr_assert_eq(first->column, 5);
    assert_scalar(kseg_yaml_get(first, "name"), "a b", 6, 11);
    cr_assert_not(kseg_yaml_get(first, "name")->is_null);
    const kseg_yaml_node *empty = kseg_yaml_get(first, "empty");
    cr_assert_eq(empty->kind, KSEG_YAML_SCALAR);
    cr_assert_str_eq(empty->value, "");
    cr_assert(empty->is_null);
    cr_assert(kseg_yaml_get(first, "tilde")->is_null);
    cr_assert_str_eq(kseg_yaml_get(first, "tilde")->value, "~");
    cr_assert_not(kseg_yaml_get(first, "quoted")->is_null, "a quoted '' is text, not null");
    assert_scalar(&output->items[1], "plain", 10, 5);

    cr_assert_null(kseg_yaml_get(root, "missing"));
    cr_assert_null(kseg_yaml_get(output, "name"), "a sequence has no keys");
    cr_assert_null(kseg_yaml_get(NULL, "name"));
    kseg_yaml_document_destroy(&document);
    kseg_yaml_document_destroy(&document); /* destroying twice is harmless */
}

Test(yaml, empty_documents_have_no_root)
{
    const char *texts[] = {"", "# only a comment\n\n", "---\n", "~\n", "--- # empty\n...\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        kseg_yaml_document document;
        load(texts[i], &document);
        cr_assert_null(document.root, "'%s' should be empty", texts[i]);
        kseg_yaml_document_destroy(&document);
    }
}

Test(yaml, scalar_root)
{
    kseg_yaml_document document;
    load("just text\n", &document);
    assert_scalar(document.root, "just text", 1, 1);
    kseg_yaml_document_destroy(&document);
}

/* ---------------------------------------------------------------- refusals */

Test(yaml, duplicate_key_names_both_lines)
{
    load_fails("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n  d: 4\n", KSEG_EFORMAT,
               "t.yaml:5:3: duplicate key 'c'", "line 3", NULL);
    load_fails("x: 1\nx: 2\n", KSEG_EFORMAT, "t.yaml:2:1: duplicate key 'x'", "line 1", NULL);
}

Test(yaml, syntax_error_gives_line_and_column)
{
    load_fails("a: 1\nb: 2\nc: d: e\n", KSEG_EFORMAT, "t.yaml:3:5: ",
               "mapping values are not allowed", NULL);
    /* An unclosed flow sequence: libyaml notices on line 3 and names where the sequence began. */
    load_fails("a: 1\nb: [1, 2\nc: 3\n", KSEG_EFORMAT, "t.yaml:3:2: ",
               "while parsing a flow sequence at line 2, column 4", NULL);
    /* Bad UTF-8 comes from libyaml's reader as a byte offset; it is turned into a position. */
    load_fails("a: 1\nb: \xff\n", KSEG_EFORMAT, "t.yaml:2:4: ", "UTF-8", NULL);
}

Test(yaml, aliases_and_anchors_are_refused)
{
    load_fails("a: &base 1\nb: *base\n", KSEG_EFORMAT, "t.yaml:1:4: anchors (&base)", NULL);
    load_fails("a: 1\nb: *x\n", KSEG_EFORMAT, "t.yaml:2:4: aliases (*x)", NULL);
    load_fails("a: &m {x: 1}\n", KSEG_EFORMAT, "t.yaml:1:4: anchors (&m)", NULL);
    load_fails("&k a: 1\n", KSEG_EFORMAT, "t.yaml:1:1: anchors (&k)", NULL);
}

Test(yaml, second_document_is_refused)
{
    load_fails("a: 1\n---\nb: 2\n", KSEG_EFORMAT, "t.yaml:2:1: a second YAML document", NULL);
}

Test(yaml, non_scalar_keys_are_refused)
{
    load_fails("? [a, b]\n: 1\n", KSEG_EFORMAT, "t.yaml:1:3: mapping keys must be scalars",
               "a sequence", NULL);
    load_fails("{x: 1}: 2\n", KSEG_EFORMAT, "mapping keys must be scalars", "a mapping", NULL);
}

/* n nested flow sequences around one scalar. */
static char *nested(int n)
{
    char *text = malloc(2 * (size_t)n + 3);
    memset(text, '[', (size_t)n);
    text[n] = '1';
    memset(text + n + 1, ']', (size_t)n);
    text[2 * n + 1] = '\n';
    text[2 * n + 2] = '\0';
    return text;
}

Test(yaml, nesting_depth_is_bounded)
{
    char *ok = nested(64);
    kseg_yaml_document document;
    load(ok, &document);
    const kseg_yaml_node *node = document.root;
    for (int level = 1; level < 64; level++)
        node = &node->items[0];
    assert_scalar(&node->items[0], "1", 1, 65);
    kseg_yaml_document_destroy(&document);
    free(ok);

    char *deep = nested(65);
    load_fails(deep, KSEG_EFORMAT, "t.yaml:1:65: nesting deeper than 64 levels", NULL);
    free(deep);
    char *very_deep = nested(100000);
    load_fails(very_deep, KSEG_EFORMAT, "nesting deeper than 64 levels", NULL);
    free(very_deep);
}

Test(yaml, nul_inside_a_scalar_is_refused)
{
    load_fails("a: \"x\\0y\"\n", KSEG_EFORMAT, "t.yaml:1:4: a NUL character", NULL);
}

/* ---------------------------------------------------------------- files */

KSEG_SCRATCH_SUITE(yaml_file);

static void write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

Test(yaml_file, load_file_names_the_file)
{
    const char *path = scratch_path("run.yaml");
    write_file(path, "cluster:\n  k: 8\n  k: 9\n");
    kseg_yaml_document document;
    kseg_error error = {0};
    cr_assert_eq(kseg_yaml_load_file(path, &document, &error), KSEG_EFORMAT);
    char expected[1100];
    snprintf(expected, sizeof expected, "%s:3:3: duplicate key 'k'", path);
    cr_assert(strstr(error.message, expected), "%s", error.message);
    kseg_yaml_document_destroy(&document);

    write_file(path, "cluster:\n  k: 8\n");
    cr_assert_eq(kseg_yaml_load_file(path, &document, &error), 0, "%s", error.message);
    cr_assert_str_eq(document.source, path);
    assert_scalar(kseg_yaml_get(kseg_yaml_get(document.root, "cluster"), "k"), "8", 2, 6);
    kseg_yaml_document_destroy(&document);

    cr_assert_eq(kseg_yaml_load_file(scratch_path("absent.yaml"), &document, &error),
                 KSEG_ENOENT);
    cr_assert(strstr(error.message, "absent.yaml"), "%s", error.message);
    cr_assert_eq(kseg_yaml_load_file(scratch, &document, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "directory"), "%s", error.message);
}

/* ---------------------------------------------------------------- keys and suggestions */

Test(yaml, edit_distance)
{
    cr_assert_eq(kseg_edit_distance("", ""), 0);
    cr_assert_eq(kseg_edit_distance("seed", "seed"), 0);
    cr_assert_eq(kseg_edit_distance("sede", "seed"), 2);
    cr_assert_eq(kseg_edit_distance("kitten", "sitting"), 3);
    cr_assert_eq(kseg_edit_distance("", "abc"), 3);
    cr_assert_eq(kseg_edit_distance("monetery", "monetary"), 1);
    cr_assert_eq(kseg_edit_distance(NULL, "ab"), 2);
    /* Long strings take the heap path. */
    char a[201], b[201];
    memset(a, 'x', 200);
    memset(b, 'x', 200);
    a[200] = b[200] = '\0';
    b[17] = 'y';
    b[150] = 'z';
    cr_assert_eq(kseg_edit_distance(a, b), 2);
}

static const char *const cluster_keys[] = {"k", "seed", "init", "max_iter"};

Test(yaml, unknown_key_suggests_the_nearest)
{
    kseg_yaml_document document;
    load("cluster:\n  k: 8\n  sede: 1\n", &document);
    const kseg_yaml_node *cluster = kseg_yaml_get(document.root, "cluster");
    kseg_error error = {0};
    cr_assert_eq(kseg_yaml_check_keys(cluster, cluster_keys, 4, "t.yaml", "'cluster'", &error),
                 KSEG_EINVAL);
    cr_assert_str_eq(error.message,
                     "t.yaml:3:3: unknown key 'sede' in 'cluster' (did you mean 'seed'?)");
    kseg_yaml_document_destroy(&document);

    load("cluster:\n  k: 8\n  seed: 1\n", &document);
    cr_assert_eq(kseg_yaml_check_keys(kseg_yaml_get(document.root, "cluster"), cluster_keys, 4,
                                      "t.yaml", "'cluster'", &error),
                 0);
    /* An absent or empty section has nothing to check. */
    cr_assert_eq(kseg_yaml_check_keys(NULL, cluster_keys, 4, "t.yaml", "'x'", &error), 0);
    kseg_yaml_document_destroy(&document);
    load("cluster:\n", &document);
    cr_assert_eq(kseg_yaml_check_keys(kseg_yaml_get(document.root, "cluster"), cluster_keys, 4,
                                      "t.yaml", "'cluster'", &error),
                 0);
    kseg_yaml_document_destroy(&document);
}

Test(yaml, far_off_key_lists_the_allowed_keys)
{
    kseg_yaml_document document;
    load("cluster:\n  k: 8\n  population: 1\n", &document);
    kseg_error error = {0};
    cr_assert_eq(kseg_yaml_check_keys(kseg_yaml_get(document.root, "cluster"), cluster_keys, 4,
                                      "t.yaml", "'cluster'", &error),
                 KSEG_EINVAL);
    cr_assert_str_eq(error.message, "t.yaml:3:3: unknown key 'population' in 'cluster' (allowed "
                                    "keys: k, seed, init, max_iter)");
    kseg_yaml_document_destroy(&document);

    load("cluster: [1, 2]\n", &document);
    cr_assert_eq(kseg_yaml_check_keys(kseg_yaml_get(document.root, "cluster"), cluster_keys, 4,
                                      "t.yaml", "'cluster'", &error),
                 KSEG_EINVAL);
    cr_assert_str_eq(error.message, "t.yaml:1:10: expected a mapping in 'cluster', not a sequence");
    kseg_yaml_document_destroy(&document);
}

/* ---------------------------------------------------------------- typed getters */

Test(yaml, typed_getters_read_good_values)
{
    kseg_yaml_document document;
    load("seed: 42\nnegative: -7\ntolerance: 1e-4\nratio: '0.25'\nname: Champions\n"
         "flags: [true, FALSE, yes, No, on, OFF]\n",
         &document);
    const kseg_yaml_node *root = document.root;
    kseg_error error = {0};
    int64_t integer = 0;
    cr_assert_eq(kseg_yaml_int64(kseg_yaml_get(root, "seed"), "t.yaml", "seed", 0, 100, &integer,
                                 &error),
                 0, "%s", error.message);
    cr_assert_eq(integer, 42);
    cr_assert_eq(kseg_yaml_int64(kseg_yaml_get(root, "negative"), "t.yaml", "negative", INT64_MIN,
                                 INT64_MAX, &integer, &error),
                 0);
    cr_assert_eq(integer, -7);
    double real = 0;
    cr_assert_eq(kseg_yaml_double(kseg_yaml_get(root, "tolerance"), "t.yaml", "tolerance", &real,
                                  &error),
                 0);
    cr_assert_eq(real, 1e-4);
    cr_assert_eq(kseg_yaml_double(kseg_yaml_get(root, "ratio"), "t.yaml", "ratio", &real, &error),
                 0);
    cr_assert_eq(real, 0.25);
    cr_assert_eq(kseg_yaml_double(kseg_yaml_get(root, "seed"), "t.yaml", "seed", &real, &error),
                 0);
    cr_assert_eq(real, 42.0);
    const char *text = NULL;
    cr_assert_eq(kseg_yaml_string(kseg_yaml_get(root, "name"), "t.yaml", "name", &text, &error),
                 0);
    cr_assert_str_eq(text, "Champions");
    const kseg_yaml_node *flags = kseg_yaml_get(root, "flags");
    const int expected[] = {1, 0, 1, 0, 1, 0};
    for (size_t i = 0; i < 6; i++) {
        int flag = -1;
        cr_assert_eq(kseg_yaml_bool(&flags->items[i], "t.yaml", "flag", &flag, &error), 0, "%s",
                     error.message);
        cr_assert_eq(flag, expected[i], "'%s'", flags->items[i].value);
    }
    kseg_yaml_document_destroy(&document);
}

/* Reads key of the document "text" with getter and checks the failure and its message. */
#define GETTER_FAILS(text, call, fragment)                                                     \
    do {                                                                                       \
        kseg_yaml_document document_;                                                          \
        load(text, &document_);                                                                \
        const kseg_yaml_node *node = kseg_yaml_get(document_.root, "v");                       \
        kseg_error error = {0};                                                                \
        cr_assert_eq(call, KSEG_EINVAL, "%s", text);                                           \
        cr_assert_str_eq(error.message, fragment);                                             \
        kseg_yaml_document_destroy(&document_);                                                \
    } while (0)

Test(yaml, typed_getters_reject_bad_values_with_position)
{
    double real = 0;
    int64_t integer = 0;
    int flag = 0;
    const char *text = NULL;
    GETTER_FAILS("a: 1\nv: 12abc\n", kseg_yaml_double(node, "t.yaml", "tolerance", &real, &error),
                 "t.yaml:2:4: tolerance must be a number, not '12abc'");
    GETTER_FAILS("v: 1e999\n", kseg_yaml_double(node, "t.yaml", "tolerance", &real, &error),
                 "t.yaml:1:4: tolerance must be a finite number, not '1e999'");
    GETTER_FAILS("v: nan\n", kseg_yaml_double(node, "t.yaml", "x", &real, &error),
                 "t.yaml:1:4: x must be a finite number, not 'nan'");
    GETTER_FAILS("v: ' 1'\n", kseg_yaml_double(node, "t.yaml", "x", &real, &error),
                 "t.yaml:1:4: x must be a number, not ' 1'");
    GETTER_FAILS("v: [1]\n", kseg_yaml_double(node, "t.yaml", "x", &real, &error),
                 "t.yaml:1:4: x must be a number, not a sequence");
    GETTER_FAILS("v:\n", kseg_yaml_double(node, "t.yaml", "x", &real, &error),
                 "t.yaml:1:3: x has no value (expected a number)");
    GETTER_FAILS("w: 1\n", kseg_yaml_double(node, "t.yaml", "x", &real, &error),
                 "t.yaml: x is missing (expected a number)");
    GETTER_FAILS("v: 2.5\n",
                 kseg_yaml_int64(node, "t.yaml", "cluster.k", 1, 100, &integer, &error),
                 "t.yaml:1:4: cluster.k must be an integer, not '2.5'");
    GETTER_FAILS("v: 101\n",
                 kseg_yaml_int64(node, "t.yaml", "cluster.k", 1, 100, &integer, &error),
                 "t.yaml:1:4: cluster.k must be between 1 and 100, not 101");
    GETTER_FAILS("v: 0\n", kseg_yaml_int64(node, "t.yaml", "cluster.k", 1, 100, &integer, &error),
                 "t.yaml:1:4: cluster.k must be between 1 and 100, not 0");
    GETTER_FAILS("v: 99999999999999999999\n",
                 kseg_yaml_int64(node, "t.yaml", "seed", INT64_MIN, INT64_MAX, &integer, &error),
                 "t.yaml:1:4: seed must be between -9223372036854775808 and "
                 "9223372036854775807, not 99999999999999999999");
    GETTER_FAILS("v: maybe\n", kseg_yaml_bool(node, "t.yaml", "verbose", &flag, &error),
                 "t.yaml:1:4: verbose must be true or false (or yes/no, on/off), not 'maybe'");
    GETTER_FAILS("v: ~\n", kseg_yaml_string(node, "t.yaml", "name", &text, &error),
                 "t.yaml:1:4: name has no value (expected text)");
    GETTER_FAILS("v: {a: 1}\n", kseg_yaml_string(node, "t.yaml", "name", &text, &error),
                 "t.yaml:1:4: name must be text, not a mapping");
    cr_assert_eq(real, 0);
    cr_assert_eq(integer, 0, "a failed read leaves the value alone");
}

/* ---------------------------------------------------------------- rules */

static const char *const rfm_features[] = {"recency", "frequency", "monetary"};

static int rules_from_text(const char *text, kseg_rules *rules, kseg_error *error)
{
    kseg_yaml_document document;
    int status = kseg_yaml_load_string(text, strlen(text), "rules.yaml", &document, error);
    if (!status)
        status = kseg_rules_from_yaml(document.root, document.source, rfm_features, 3, rules,
                                      error);
    kseg_yaml_document_destroy(&document);
    return status;
}

static void rules_fail(const char *text, const char *message)
{
    kseg_rules rules;
    kseg_error error = {0};
    int status = rules_from_text(text, &rules, &error);
    cr_assert_lt(status, 0, "expected a failure for:\n%s", text);
    cr_assert_str_eq(error.message, message);
    cr_assert_null(rules.rules, "a failed read leaves empty rules");
    cr_assert_null(rules.fallback);
    kseg_rules_destroy(&rules);
}

Test(rules, full_file)
{
    const char *text = "# segment rules\n"
                       "levels: {low: 0.25, high: 0.75}\n"
                       "segments:\n"
                       "  - name: Champions\n"
                       "    when: {recency: low, frequency: high, monetary: [mid, high]}\n"
                       "  - name: Big baskets\n"
                       "    when:\n"
                       "      monetary: {min: 500}\n"
                       "      recency: {max: 30.5}\n"
                       "  - name: Champions\n"
                       "    when: {frequency: {min: 2, max: 2}}\n"
                       "  - name: Everyone else first\n"
                       "fallback: Regulars\n";
    kseg_rules rules;
    kseg_error error = {0};
    cr_assert_eq(rules_from_text(text, &rules, &error), 0, "%s", error.message);
    cr_assert_eq(rules.low_quantile, 0.25);
    cr_assert_eq(rules.high_quantile, 0.75);
    cr_assert_str_eq(rules.fallback, "Regulars");
    cr_assert_eq(rules.n_rules, 4);

    const kseg_rule *champions = &rules.rules[0];
    cr_assert_str_eq(champions->segment, "Champions");
    cr_assert_eq(champions->n_conditions, 3);
    cr_assert_eq(champions->conditions[0].feature, 0);
    cr_assert_eq(champions->conditions[0].levels, KSEG_LEVEL_LOW);
    cr_assert_eq(champions->conditions[1].feature, 1);
    cr_assert_eq(champions->conditions[1].levels, KSEG_LEVEL_HIGH);
    cr_assert_eq(champions->conditions[2].feature, 2);
    cr_assert_eq(champions->conditions[2].levels, KSEG_LEVEL_MID | KSEG_LEVEL_HIGH);

    const kseg_rule *big = &rules.rules[1];
    cr_assert_str_eq(big->segment, "Big baskets");
    cr_assert_eq(big->n_conditions, 2);
    cr_assert_eq(big->conditions[0].feature, 2);
    cr_assert_eq(big->conditions[0].levels, 0);
    cr_assert_eq(big->conditions[0].min, 500.0);
    cr_assert(isinf(big->conditions[0].max) && big->conditions[0].max > 0);
    cr_assert_eq(big->conditions[1].feature, 0);
    cr_assert(isinf(big->conditions[1].min) && big->conditions[1].min < 0);
    cr_assert_eq(big->conditions[1].max, 30.5);

    cr_assert_str_eq(rules.rules[2].segment, "Champions", "a segment may have several rules");
    cr_assert_eq(rules.rules[2].conditions[0].min, 2.0);
    cr_assert_eq(rules.rules[2].conditions[0].max, 2.0);
    cr_assert_str_eq(rules.rules[3].segment, "Everyone else first");
    cr_assert_eq(rules.rules[3].n_conditions, 0, "no 'when': the rule always matches");
    cr_assert_null(rules.rules[3].conditions);
    kseg_rules_destroy(&rules);
    cr_assert_null(rules.rules);
}

Test(rules, defaults_and_fallback_only)
{
    kseg_rules rules;
    kseg_error error = {0};
    cr_assert_eq(rules_from_text("fallback: All\n", &rules, &error), 0, "%s", error.message);
    cr_assert_eq(rules.n_rules, 0);
    cr_assert_str_eq(rules.fallback, "All");
    cr_assert_eq(rules.low_quantile, 1.0 / 3.0);
    cr_assert_eq(rules.high_quantile, 2.0 / 3.0);
    kseg_rules_destroy(&rules);

    cr_assert_eq(rules_from_text("levels: {high: 0.9}\nsegments:\n  - name: A\n    when:\n"
                                 "fallback: B\n",
                                 &rules, &error),
                 0, "%s", error.message);
    cr_assert_eq(rules.low_quantile, 1.0 / 3.0);
    cr_assert_eq(rules.high_quantile, 0.9);
    cr_assert_eq(rules.n_rules, 1);
    cr_assert_eq(rules.rules[0].n_conditions, 0, "an empty 'when' always matches");
    kseg_rules_destroy(&rules);
}

Test(rules, unknown_feature_suggests_and_lists)
{
    rules_fail("segments:\n"
               "  - name: Champions\n"
               "    when:\n"
               "      recency: low\n"
               "      monetery: high\n"
               "fallback: Others\n",
               "rules.yaml:5:7: unknown feature 'monetery' in segment 'Champions' (did you mean "
               "'monetary'? features: recency, frequency, monetary)");
    rules_fail("segments:\n  - name: A\n    when: {tenure: high}\nfallback: B\n",
               "rules.yaml:3:12: unknown feature 'tenure' in segment 'A' (features: recency, "
               "frequency, monetary)");
}

Test(rules, unknown_level_lists_the_levels)
{
    rules_fail("segments:\n  - name: A\n    when: {recency: medium}\nfallback: B\n",
               "rules.yaml:3:21: unknown level 'medium' for feature 'recency' in segment 'A' "
               "(levels: low, mid, high)");
    rules_fail("segments:\n  - name: A\n    when: {recency: [low, hgh]}\nfallback: B\n",
               "rules.yaml:3:27: unknown level 'hgh' for feature 'recency' in segment 'A' (did "
               "you mean 'high'? levels: low, mid, high)");
    rules_fail("segments:\n  - name: A\n    when: {recency: []}\nfallback: B\n",
               "rules.yaml:3:21: the list of levels of feature 'recency' in segment 'A' is empty "
               "(expected some of low, mid, high)");
    rules_fail("segments:\n  - name: A\n    when: {recency: }\nfallback: B\n",
               "rules.yaml:3:12: feature 'recency' in segment 'A' has no condition (expected low, "
               "mid, high, a list of them, or {min: x, max: y})");
}

Test(rules, missing_fallback)
{
    rules_fail("segments:\n  - name: A\n", "rules.yaml: no 'fallback' segment: rules must end in "
                                           "a fallback so every cluster gets a segment");
    rules_fail("segments:\n  - name: A\nfallback:\n",
               "rules.yaml:3:10: the 'fallback' segment name is empty: rules must end in a "
               "fallback so every cluster gets a segment");
    rules_fail("fallback: [A, B]\n",
               "rules.yaml:1:11: 'fallback' must be a segment name, not a sequence");
}

Test(rules, empty_segment_names)
{
    rules_fail("segments:\n  - name: ''\nfallback: B\n",
               "rules.yaml:2:11: the segment name of 'segments' item 1 is empty");
    rules_fail("segments:\n  - name: A\n  - name:\nfallback: B\n",
               "rules.yaml:3:10: the segment name of 'segments' item 2 is empty");
    rules_fail("segments:\n  - when: {recency: low}\nfallback: B\n",
               "rules.yaml:2:5: 'segments' item 1 has no 'name'");
}

Test(rules, structure_errors)
{
    rules_fail("segments:\n  - name: A\n    when: [recency, low]\nfallback: B\n",
               "rules.yaml:3:11: 'when' of segment 'A' must be a mapping of feature: condition, "
               "not a sequence");
    rules_fail("segments:\n  - name: A\n    when: {monetary: {min: 500, max: 100}}\nfallback: B\n",
               "rules.yaml:3:22: the range of feature 'monetary' in segment 'A' is empty: min 500 "
               "is greater than max 100");
    rules_fail("segments:\n  - name: A\n    when: {monetary: {min: lots}}\nfallback: B\n",
               "rules.yaml:3:28: min of feature 'monetary' in segment 'A' must be a number, not "
               "'lots'");
    rules_fail("segments:\n  - name: A\n    when: {monetary: {mn: 5}}\nfallback: B\n",
               "rules.yaml:3:23: unknown key 'mn' in the range of feature 'monetary' in segment "
               "'A' (did you mean 'min'?)");
    rules_fail("segments:\n  - name: A\n    when: {monetary: {}}\nfallback: B\n",
               "rules.yaml:3:22: the range of feature 'monetary' in segment 'A' gives neither min "
               "nor max");
    rules_fail("segments:\n  - name: A\n    wen: {recency: low}\nfallback: B\n",
               "rules.yaml:3:5: unknown key 'wen' in segment 'A' (did you mean 'when'?)");
    rules_fail("segmets:\n  - name: A\nfallback: B\n",
               "rules.yaml:1:1: unknown key 'segmets' in the rules file (did you mean "
               "'segments'?)");
    rules_fail("segments: {name: A}\nfallback: B\n",
               "rules.yaml:1:11: 'segments' must be a list of '- name: ...' items, not a mapping");
    rules_fail("segments:\n  - Champions\nfallback: B\n",
               "rules.yaml:2:5: each 'segments' item must be a mapping with 'name' and optionally "
               "'when', not a scalar");
    rules_fail("- fallback: B\n", "rules.yaml:1:1: the rules file must be a mapping with the keys "
                                  "levels, segments and fallback, not a sequence");
    rules_fail("", "rules.yaml: the rules file is empty (expected 'segments' and 'fallback')");
}

Test(rules, levels_must_be_ordered_quantiles)
{
    rules_fail("levels: {low: 0.7, high: 0.5}\nfallback: B\n",
               "rules.yaml:1:26: levels must satisfy 0 < low < high < 1 (they are population "
               "quantiles), got low 0.7 and high 0.5");
    rules_fail("levels:\n  low: 0\nfallback: B\n",
               "rules.yaml:2:8: levels must satisfy 0 < low < high < 1 (they are population "
               "quantiles), got low 0 and high 0.666667");
    rules_fail("levels: {low: 0.2, high: 1}\nfallback: B\n",
               "rules.yaml:1:26: levels must satisfy 0 < low < high < 1 (they are population "
               "quantiles), got low 0.2 and high 1");
    rules_fail("levels: {high: 0.2}\nfallback: B\n",
               "rules.yaml:1:16: levels must satisfy 0 < low < high < 1 (they are population "
               "quantiles), got low 0.333333 and high 0.2");
    rules_fail("levels: {lo: 0.2}\nfallback: B\n",
               "rules.yaml:1:10: unknown key 'lo' in 'levels' (did you mean 'low'?)");
}

KSEG_SCRATCH_SUITE(rules_file);

Test(rules_file, load_file_reports_syntax_errors_and_reads_rules)
{
    const char *path = scratch_path("rules.yaml");
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs("segments:\n  - name: A\n    when: {recency: low\nfallback: B\n", file);
    fclose(file);
    kseg_rules rules;
    kseg_error error = {0};
    cr_assert_eq(kseg_rules_load_file(path, rfm_features, 3, &rules, &error), KSEG_EFORMAT);
    char expected[1100];
    snprintf(expected, sizeof expected, "%s:4:9: did not find expected", path);
    cr_assert(strstr(error.message, expected), "%s", error.message);
    cr_assert_null(rules.rules);
    kseg_rules_destroy(&rules);

    file = fopen(path, "w");
    fputs("segments:\n  - name: A\n    when: {recency: low}\nfallback: B\n", file);
    fclose(file);
    cr_assert_eq(kseg_rules_load_file(path, rfm_features, 3, &rules, &error), 0, "%s",
                 error.message);
    cr_assert_eq(rules.n_rules, 1);
    cr_assert_str_eq(rules.rules[0].segment, "A");
    cr_assert_str_eq(rules.fallback, "B");
    kseg_rules_destroy(&rules);

    cr_assert_eq(kseg_rules_load_file(scratch_path("none.yaml"), rfm_features, 3, &rules, &error),
                 KSEG_ENOENT);
    kseg_rules_destroy(&rules);
}
