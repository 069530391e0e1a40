/* libFuzzer target for the YAML configuration layer (io/yaml.c) and the segment rules reader
 * (io/rules.c): the bytes are one document. The tree is walked the way `kseg run` reads a config
 * (key checks per section, every typed getter on every scalar), and read as a rules file whose
 * rules are then applied to a few centroids. */
#define _GNU_SOURCE /* mkdtemp, nftw (fuzz_common.h) */
#include "fuzz_common.h"
#include "kseg/config.h"
#include "kseg/segment.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* The sections of a run configuration and their keys, as cli/cmd_run.c checks them. */
static const char *const top_keys[] = {"title",   "output",  "threads", "input",
                                       "import",  "rfm",     "prepare", "cluster",
                                       "label",   "schemes", "report"};
static const char *const input_keys[] = {"transactions", "customers"};
static const char *const prepare_keys[] = {"features", "scaling", "transforms", "clip", "weights"};
static const char *const cluster_keys[] = {"k",   "rule", "init", "n_init", "max_iter",
                                           "tol", "seed", "kernel", "silhouette_sample"};
static const char *const label_keys[] = {"rules", "min_customer_share", "min_revenue_share",
                                         "merge"};
static const char *const scheme_keys[] = {"rfm", "lifecycle", "categories", "bands"};
static const char *const lifecycle_keys[] = {"new_days", "lapsed_days"};
static const char *const report_keys[] = {"value", "crosstab", "html"};

static const struct {
    const char *name;
    const char *const *keys;
    size_t count;
} sections[] = {
    {"input", input_keys, COUNT(input_keys)},     {"prepare", prepare_keys, COUNT(prepare_keys)},
    {"cluster", cluster_keys, COUNT(cluster_keys)}, {"label", label_keys, COUNT(label_keys)},
    {"schemes", scheme_keys, COUNT(scheme_keys)}, {"report", report_keys, COUNT(report_keys)},
};

static const char *const features[] = {"recency", "frequency", "monetary", "tenure"};

/* Every typed read of every scalar, and every lookup of every mapping, recursively. A message
   must always be set when a read fails, and a successful read must give what it says. */
static void walk(const kseg_yaml_node *node, const char *source, size_t depth)
{
    FUZZ_CHECK(depth <= 80);
    kseg_error error = {0};
    switch (node->kind) {
    case KSEG_YAML_SCALAR: {
        FUZZ_CHECK(node->value != NULL);
        const char *text = NULL;
        double number;
        int64_t integer;
        int truth;
        if (kseg_yaml_string(node, source, "value", &text, &error) == 0)
            FUZZ_CHECK(text == node->value && !node->is_null);
        if (kseg_yaml_double(node, source, "value", &number, &error) == 0)
            FUZZ_CHECK(isfinite(number));
        if (kseg_yaml_int64(node, source, "value", -1000, 1000, &integer, &error) == 0)
            FUZZ_CHECK(integer >= -1000 && integer <= 1000);
        kseg_yaml_int64(node, source, NULL, INT64_MIN, INT64_MAX, &integer, &error);
        if (kseg_yaml_bool(node, source, "value", &truth, &error) == 0)
            FUZZ_CHECK(truth == 0 || truth == 1);
        break;
    }
    case KSEG_YAML_SEQUENCE:
        FUZZ_CHECK(node->keys == NULL);
        for (size_t i = 0; i < node->n_items; i++)
            walk(&node->items[i], source, depth + 1);
        break;
    case KSEG_YAML_MAPPING:
        for (size_t i = 0; i < node->n_items; i++) {
            FUZZ_CHECK(node->keys[i] != NULL);
            /* Keys are unique, so a lookup finds this very entry. */
            FUZZ_CHECK(kseg_yaml_get(node, node->keys[i]) == &node->items[i]);
            walk(&node->items[i], source, depth + 1);
        }
        kseg_yaml_check_keys(node, features, COUNT(features), source, "'features'", &error);
        kseg_yaml_check_keys(node, NULL, 0, source, NULL, &error);
        break;
    }
}

/* The rules of a document applied to three centroids over the four RFM features. */
static void apply_rules(const kseg_rules *rules)
{
    static const double data[6 * 4] = {1,  1, 10, 100, 5,   2, 50,  300, 30,  3, 20, 400,
                                       90, 1, 5,  90,  200, 8, 900, 700, 365, 1, 1,  365};
    static const double centroids[3 * 4] = {2, 1.5, 30, 200, 60, 2, 12, 245, 280, 4.5, 450, 530};
    double low[4], high[4];
    kseg_error error = {0};
    if (kseg_level_thresholds(data, 6, 4, rules->low_quantile, rules->high_quantile, low, high,
                              &error) != 0)
        return;
    int32_t cluster_segment[3];
    char **names = NULL;
    size_t n_names = 0;
    if (kseg_rules_apply(rules, centroids, 3, 4, low, high, cluster_segment, &names, &n_names,
                         &error) != 0)
        return;
    FUZZ_CHECK(n_names >= 1 && n_names <= rules->n_rules + 1);
    for (size_t k = 0; k < 3; k++)
        FUZZ_CHECK(cluster_segment[k] >= 0 && (size_t)cluster_segment[k] < n_names);
    for (size_t s = 0; s < n_names; s++)
        free(names[s]);
    free(names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kseg_yaml_document document;
    kseg_error error = {0};
    if (kseg_yaml_load_string((const char *)data, size, "fuzz.yaml", &document, &error) != 0) {
        FUZZ_CHECK(error.code != 0 && error.message[0] != '\0');
        FUZZ_CHECK(document.root == NULL && document.source == NULL);
        return 0;
    }
    const char *source = document.source;
    if (document.root) {
        walk(document.root, source, 0);
        /* The run configuration's sections, as `kseg run` checks them. */
        kseg_yaml_check_keys(document.root, top_keys, COUNT(top_keys), source, NULL, &error);
        for (size_t s = 0; s < COUNT(sections); s++)
            kseg_yaml_check_keys(kseg_yaml_get(document.root, sections[s].name), sections[s].keys,
                                 sections[s].count, source, sections[s].name, &error);
        kseg_yaml_check_keys(kseg_yaml_get(kseg_yaml_get(document.root, "schemes"), "lifecycle"),
                             lifecycle_keys, COUNT(lifecycle_keys), source, "lifecycle", &error);
    }

    /* The same document as a rules file, against the RFM features and against none. */
    for (size_t d = 0; d <= 4; d += 4) {
        kseg_rules rules;
        if (kseg_rules_from_yaml(document.root, source, features, d, &rules, &error) == 0) {
            FUZZ_CHECK(rules.fallback != NULL && rules.fallback[0] != '\0');
            for (size_t r = 0; r < rules.n_rules; r++) {
                FUZZ_CHECK(rules.rules[r].segment != NULL);
                for (size_t c = 0; c < rules.rules[r].n_conditions; c++)
                    FUZZ_CHECK(rules.rules[r].conditions[c].feature < d);
            }
            apply_rules(&rules);
            kseg_rules_destroy(&rules);
        } else {
            FUZZ_CHECK(error.message[0] != '\0');
        }
    }
    kseg_yaml_document_destroy(&document);
    return 0;
}
