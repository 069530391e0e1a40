/* `kseg run CONFIG.yaml`: the whole pipeline from one configuration file: import (CSV) or read
 * transactions, RFM, prepare, cluster (or sweep k), label, merge, schemes, evaluation, report.
 * The import and RFM steps run the 'kseg import transactions' and 'kseg rfm' commands with the
 * options of their config sections, so every option of those commands is available in the file. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "report_output.h"

static const char *const command = "run";

static const char *const run_usage =
    "usage: kseg run CONFIG.yaml [-o DIR] [--k K|FIRST..LAST] [--threads T] [--no-html] [-q]\n"
    "\n"
    "Run the whole segmentation pipeline described by CONFIG.yaml (see README, 'kseg run'):\n"
    "import or read transactions -> RFM -> prepare -> k-means (or a k sweep) -> name the\n"
    "clusters -> merge small segments -> schemes -> evaluation and priority -> report.\n"
    "Paths in the file are relative to the file's directory. DIR receives:\n"
    "  result.h5      model (prepare, centroids, names), labels per scheme, segment tables,\n"
    "                 the report JSON and the config itself ('kseg predict --model' reads it)\n"
    "  report.json    the report (segments per scheme, merges, k sweep, cross-tabulations)\n"
    "  segments.csv   the segment tables of every scheme\n"
    "  customers.csv  one row per customer: id, cluster and the segment of every scheme\n"
    "  report/        index.html with charts (unless --no-html or report.html: false)\n"
    "  transactions.h5 and rfm.h5 when the pipeline imported or scored transactions\n"
    "Every file is written under a temporary name and renamed. The prioritized segment table\n"
    "is printed at the end.\n"
    "\n"
    "options:\n"
    "  -o, --output DIR    output directory (default: the config's 'output', else\n"
    "                      ./<config name>-out); created if missing\n"
    "      --k K           number of clusters, or FIRST..LAST to sweep k and pick one by the\n"
    "                      config's cluster.rule (overrides cluster.k)\n"
    "      --threads T     OpenMP threads (default: config 'threads', else OMP_NUM_THREADS or\n"
    "                      all cores); results are identical for any T\n"
    "      --no-html       skip the HTML report\n"
    "  -q, --quiet         print nothing but errors\n"
    "  -h, --help          show this help\n";

enum { MAX_SCHEMES = 16, MAX_FEATURES = 64 };

/* A growing argv for the import and rfm commands; owns its strings. */
typedef struct argument_list {
    char **items;
    size_t count, capacity;
} argument_list;

static int arguments_add(argument_list *list, const char *value)
{
    if (list->count + 2 > list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 16;
        char **items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->capacity = capacity;
    }
    if (!(list->items[list->count] = strdup(value)))
        return -1;
    list->items[++list->count] = NULL;
    return 0;
}

static void arguments_free(argument_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

typedef struct run_state {
    const char *config_path;
    char *config_dir;
    char *config_text;
    kseg_yaml_document document;
    const char *source;
    char *output_dir;
    int32_t threads;
    int quiet;
    int html;
    const char *k_override;

    char *transactions_file; /* the HDF5 transactions read (imported or given) */
    char *rfm_file;          /* the RFM result read, when the input is transactions */
    char *customers_file;    /* the customer table, when the input is features */
    char *customers_path;

    size_t n;                /* customers */
    int64_t *ids;            /* [n] */
    size_t d;
    char *feature_names[MAX_FEATURES];
    double *features;        /* [n x d] original units */
    char *value_name;        /* the value column ("monetary" by default with transactions) */
    double *value;           /* [n] or NULL (every customer worth 1) */

    kseg_rules rules;
    int have_rules;
    kseg_segmentation segmentation;
    kseg_scheme schemes[MAX_SCHEMES]; /* [0] borrowed view of segmentation.scheme's name etc. */
    kseg_evaluation evaluations[MAX_SCHEMES];
    size_t n_schemes;
    json_t *report;
} run_state;

/* ------------------------------------------------------------------ small helpers */

static int fail_error(const kseg_error *error)
{
    return cli_fail(command, error);
}

/* A path from the config, relative to the config's directory unless absolute. */
static char *resolve_path(const run_state *state, const char *path)
{
    if (path[0] == '/' || !state->config_dir[0])
        return strdup(path);
    size_t size = strlen(state->config_dir) + strlen(path) + 2;
    char *joined = malloc(size);
    if (joined)
        snprintf(joined, size, "%s/%s", state->config_dir, path);
    return joined;
}

static char *join_path(const char *directory, const char *name)
{
    size_t size = strlen(directory) + strlen(name) + 2;
    char *joined = malloc(size);
    if (joined)
        snprintf(joined, size, "%s/%s", directory, name);
    return joined;
}

static int ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), suffix_length = strlen(suffix);
    return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

/* Mapping keys of the config and its sections; unknown keys are refused with a suggestion. */
static const char *const top_keys[] = {"title",   "output", "threads", "input",   "import",
                                       "rfm",     "prepare", "cluster", "label",  "schemes",
                                       "report"};
static const char *const input_keys[] = {"transactions", "customers"};
static const char *const prepare_keys[] = {"features", "scaling", "transforms", "clip", "weights"};
static const char *const cluster_keys[] = {"k",    "rule", "init",   "n_init",
                                           "max_iter", "tol", "seed", "kernel",
                                           "silhouette_sample"};
static const char *const label_keys[] = {"rules", "min_customer_share", "min_revenue_share",
                                         "merge"};
static const char *const scheme_keys[] = {"rfm", "lifecycle", "categories", "bands"};
static const char *const lifecycle_keys[] = {"new_days", "lapsed_days"};
static const char *const report_keys[] = {"value", "crosstab", "html"};

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static int check_keys(const run_state *state, const kseg_yaml_node *node,
                      const char *const *allowed, size_t count, const char *context)
{
    kseg_error error;
    kseg_error_clear(&error);
    if (node && kseg_yaml_check_keys(node, allowed, count, state->source, context, &error))
        return fail_error(&error);
    return 0;
}

static const kseg_yaml_node *section(const run_state *state, const char *name)
{
    return kseg_yaml_get(state->document.root, name);
}

/* Reads an optional scalar as a string / double / integer; absent leaves *value unchanged. */
static int optional_string(const run_state *state, const kseg_yaml_node *mapping, const char *key,
                           const char *what, const char **value)
{
    const kseg_yaml_node *node = kseg_yaml_get(mapping, key);
    kseg_error error;
    kseg_error_clear(&error);
    if (node && kseg_yaml_string(node, state->source, what, value, &error))
        return fail_error(&error);
    return 0;
}

static int optional_double(const run_state *state, const kseg_yaml_node *mapping, const char *key,
                           const char *what, double *value)
{
    const kseg_yaml_node *node = kseg_yaml_get(mapping, key);
    kseg_error error;
    kseg_error_clear(&error);
    if (node && kseg_yaml_double(node, state->source, what, value, &error))
        return fail_error(&error);
    return 0;
}

static int optional_int64(const run_state *state, const kseg_yaml_node *mapping, const char *key,
                          const char *what, int64_t minimum, int64_t maximum, int64_t *value)
{
    const kseg_yaml_node *node = kseg_yaml_get(mapping, key);
    kseg_error error;
    kseg_error_clear(&error);
    if (node && kseg_yaml_int64(node, state->source, what, minimum, maximum, value, &error))
        return fail_error(&error);
    return 0;
}

static int optional_bool(const run_state *state, const kseg_yaml_node *mapping, const char *key,
                         const char *what, int *value)
{
    const kseg_yaml_node *node = kseg_yaml_get(mapping, key);
    kseg_error error;
    kseg_error_clear(&error);
    if (node && kseg_yaml_bool(node, state->source, what, value, &error))
        return fail_error(&error);
    return 0;
}

static int config_failf(const run_state *state, const kseg_yaml_node *node, const char *format,
                        const char *detail)
{
    char message[512];
    snprintf(message, sizeof message, format, detail);
    if (node)
        return cli_failf(command, KSEG_EXIT_FAILURE, "%s:%zu:%zu: %s", state->source, node->line,
                         node->column, message);
    return cli_failf(command, KSEG_EXIT_FAILURE, "%s: %s", state->source, message);
}

/* ------------------------------------------------------------------ import and rfm steps */

/* Turns a config section into command-line options of a subcommand whose long options are
 * table: keys are option names (with '-' or '_'), scalars are values, sequences repeat the
 * option, booleans switch flags, and a mapping under 'where' gives COLUMN=VALUE conditions. */
static int section_arguments(const run_state *state, const kseg_yaml_node *node,
                             const struct option *table, const char *section_name,
                             argument_list *arguments)
{
    if (!node)
        return 0;
    const char *allowed[128];
    char storage[128][64];
    size_t count = 0;
    for (const struct option *option = table; option->name && count + 2 < 128; option++) {
        if (strcmp(option->name, "output") == 0 || strcmp(option->name, "quiet") == 0 ||
            strcmp(option->name, "help") == 0 || strcmp(option->name, "threads") == 0)
            continue;
        allowed[count++] = option->name;
        if (strchr(option->name, '-')) {
            snprintf(storage[count], sizeof storage[count], "%s", option->name);
            for (char *p = storage[count]; *p; p++)
                if (*p == '-')
                    *p = '_';
            allowed[count] = storage[count];
            count++;
        }
    }
    char context[64];
    snprintf(context, sizeof context, "'%s'", section_name);
    if (check_keys(state, node, allowed, count, context))
        return -1;
    for (size_t i = 0; i < node->n_items; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s", node->keys[i]);
        for (char *p = name; *p; p++)
            if (*p == '_')
                *p = '-';
        const struct option *option = table;
        while (option->name && strcmp(option->name, name) != 0)
            option++;
        const kseg_yaml_node *value = &node->items[i];
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", name);
        char what[96];
        snprintf(what, sizeof what, "%s.%s", section_name, node->keys[i]);
        kseg_error error;
        kseg_error_clear(&error);
        if (option->has_arg == no_argument) {
            int on = 0;
            if (kseg_yaml_bool(value, state->source, what, &on, &error))
                return fail_error(&error);
            if (on && arguments_add(arguments, flag))
                return -1;
            continue;
        }
        /* Values: a scalar, a sequence of scalars, or for 'where' a mapping column -> value(s). */
        if (value->kind == KSEG_YAML_MAPPING && strcmp(name, "where") == 0) {
            for (size_t c = 0; c < value->n_items; c++) {
                const kseg_yaml_node *choices = &value->items[c];
                size_t n_choices = choices->kind == KSEG_YAML_SEQUENCE ? choices->n_items : 1;
                for (size_t v = 0; v < n_choices; v++) {
                    const kseg_yaml_node *choice =
                        choices->kind == KSEG_YAML_SEQUENCE ? &choices->items[v] : choices;
                    const char *text = NULL;
                    if (kseg_yaml_string(choice, state->source, what, &text, &error))
                        return fail_error(&error);
                    size_t size = strlen(value->keys[c]) + strlen(text) + 2;
                    char *condition = malloc(size);
                    if (!condition)
                        return -1;
                    snprintf(condition, size, "%s=%s", value->keys[c], text);
                    int failed = arguments_add(arguments, flag) || arguments_add(arguments, condition);
                    free(condition);
                    if (failed)
                        return -1;
                }
            }
            continue;
        }
        size_t n_values = value->kind == KSEG_YAML_SEQUENCE ? value->n_items : 1;
        for (size_t v = 0; v < n_values; v++) {
            const kseg_yaml_node *item = value->kind == KSEG_YAML_SEQUENCE ? &value->items[v] : value;
            const char *text = NULL;
            if (kseg_yaml_string(item, state->source, what, &text, &error))
                return fail_error(&error);
            /* File options are relative to the config file, like every path in it. */
            char *resolved = NULL;
            if (strcmp(name, "map") == 0 || strcmp(name, "csv") == 0) {
                if (!(resolved = resolve_path(state, text)))
                    return -1;
                text = resolved;
            }
            int failed = arguments_add(arguments, flag) || arguments_add(arguments, text);
            free(resolved);
            if (failed)
                return -1;
        }
    }
    return 0;
}

static void add_threads(const run_state *state, argument_list *arguments)
{
    if (state->threads > 0) {
        char text[32];
        snprintf(text, sizeof text, "%d", state->threads);
        arguments_add(arguments, "--threads");
        arguments_add(arguments, text);
    }
}

static void step_banner(const run_state *state, const char *what)
{
    if (!state->quiet) {
        printf("kseg run: %s\n", what);
        fflush(stdout);
    }
}

/* Imports the CSV input (if the input is CSV) and scores RFM into the output directory. */
static int run_transactions_steps(run_state *state, const char *input)
{
    int exit_code = 0;
    argument_list arguments = {0};
    char *resolved = resolve_path(state, input);
    if (!resolved)
        return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
    if (ends_with(resolved, ".csv") || ends_with(resolved, ".csv.gz") || ends_with(resolved, ".txt") ||
        ends_with(resolved, ".CSV")) {
        state->transactions_file = join_path(state->output_dir, "transactions.h5");
        if (!state->transactions_file)
            goto out_of_memory;
        if (arguments_add(&arguments, "import") || arguments_add(&arguments, "transactions") ||
            arguments_add(&arguments, resolved) || arguments_add(&arguments, "-o") ||
            arguments_add(&arguments, state->transactions_file))
            goto out_of_memory;
        if (state->quiet && arguments_add(&arguments, "--quiet"))
            goto out_of_memory;
        if (section_arguments(state, section(state, "import"), kseg_import_long_options, "import",
                              &arguments)) {
            exit_code = KSEG_EXIT_FAILURE;
            goto done;
        }
        step_banner(state, "importing transactions");
        /* The step prints its own one error line, as "kseg run: ... (config section 'import')". */
        cli_set_step(command, "import");
        exit_code = kseg_cmd_import((int)arguments.count, arguments.items);
        cli_set_step(NULL, NULL);
        if (exit_code != 0) {
            exit_code = KSEG_EXIT_FAILURE;
            goto done;
        }
        arguments_free(&arguments);
    } else {
        if (section(state, "import"))
            cli_warnf(command, "%s: the input is not a CSV file; section 'import' is ignored",
                      state->source);
        state->transactions_file = resolved;
        resolved = NULL;
    }
    state->rfm_file = join_path(state->output_dir, "rfm.h5");
    if (!state->rfm_file)
        goto out_of_memory;
    if (arguments_add(&arguments, "rfm") || arguments_add(&arguments, state->transactions_file) ||
        arguments_add(&arguments, "-o") || arguments_add(&arguments, state->rfm_file) ||
        arguments_add(&arguments, "--quiet"))
        goto out_of_memory;
    add_threads(state, &arguments);
    if (section_arguments(state, section(state, "rfm"), kseg_rfm_long_options, "rfm",
                          &arguments)) {
        exit_code = KSEG_EXIT_FAILURE;
        goto done;
    }
    step_banner(state, "scoring RFM");
    cli_set_step(command, "rfm");
    exit_code = kseg_cmd_rfm((int)arguments.count, arguments.items);
    cli_set_step(NULL, NULL);
    if (exit_code != 0)
        exit_code = KSEG_EXIT_FAILURE;
    goto done;
out_of_memory:
    exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
done:
    free(resolved);
    arguments_free(&arguments);
    return exit_code;
}

/* ------------------------------------------------------------------ reading customers */

/* One per-customer column by name: from /rfm when the input is transactions, else from the
 * customer table. */
static int read_customer_column(const run_state *state, const char *name, double **values)
{
    kseg_error error;
    kseg_error_clear(&error);
    if (state->rfm_file) {
        char path[256];
        snprintf(path, sizeof path, "/rfm/%s", name);
        size_t length = 0;
        if (kseg_h5_read_vector(state->rfm_file, path, state->n, values, &length, &error))
            return fail_error(&error);
        return 0;
    }
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    options.type = KSEG_READ_FLOAT64;
    const char *columns[1] = {name};
    options.columns = columns;
    options.n_columns = 1;
    kseg_table table;
    kseg_table_init(&table);
    if (kseg_h5_read_table(state->customers_file, state->customers_path, &options, &table,
                           &error)) {
        kseg_table_destroy(&table);
        return fail_error(&error);
    }
    *values = table.data;
    table.data = NULL;
    kseg_table_destroy(&table);
    return 0;
}

static int read_features(run_state *state)
{
    const kseg_yaml_node *prepare = section(state, "prepare");
    const kseg_yaml_node *list = kseg_yaml_get(prepare, "features");
    kseg_error error;
    kseg_error_clear(&error);
    static const char *const rfm_features[] = {"recency", "frequency", "monetary", "tenure"};
    if (list) {
        if (list->kind != KSEG_YAML_SEQUENCE || list->n_items == 0)
            return config_failf(state, list, "%s", "prepare.features: expected a list of column names");
        if (list->n_items > MAX_FEATURES)
            return config_failf(state, list, "prepare.features: at most %s columns", "64");
        for (size_t j = 0; j < list->n_items; j++) {
            const char *name = NULL;
            if (kseg_yaml_string(&list->items[j], state->source, "prepare.features", &name, &error))
                return fail_error(&error);
            if (!(state->feature_names[j] = strdup(name)))
                return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
            state->d++;
        }
    } else if (state->rfm_file) {
        for (size_t j = 0; j < COUNT(rfm_features); j++)
            if (!(state->feature_names[state->d++] = strdup(rfm_features[j])))
                return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
    } else {
        return config_failf(state, prepare, "%s",
                            "prepare.features: required with a customer table input (the columns "
                            "to cluster on)");
    }

    kseg_read_options options;
    kseg_read_options_defaults(&options);
    options.type = KSEG_READ_FLOAT64;
    options.columns = (const char *const *)state->feature_names;
    options.n_columns = state->d;
    kseg_table table;
    kseg_table_init(&table);
    const char *file = state->rfm_file ? state->rfm_file : state->customers_file;
    const char *path = state->rfm_file ? "/rfm" : state->customers_path;
    if (kseg_h5_read_table(file, path, &options, &table, &error)) {
        kseg_table_destroy(&table);
        /* A file that cannot be opened comes from the input section; anything else is about
           the columns prepare.features asks for. */
        const int file_level = strncmp(error.message, "cannot open ", 12) == 0;
        return cli_failf(command, KSEG_EXIT_FAILURE, "%s (config %s, %s)", error.message,
                         state->source,
                         !file_level ? "prepare.features"
                         : state->rfm_file ? "rfm" : "input.customers");
    }
    state->n = table.matrix.rows;
    state->features = table.data;
    table.data = NULL;
    if (state->rfm_file) {
        size_t length = 0;
        kseg_table_destroy(&table);
        if (kseg_h5_read_int64_vector(state->rfm_file, "/rfm/customer_id", state->n, &state->ids,
                                      &length, &error))
            return fail_error(&error);
    } else {
        state->ids = table.ids;
        table.ids = NULL;
        kseg_table_destroy(&table);
        if (!state->ids) {
            /* Without an id column the row number identifies the customer. */
            if (!(state->ids = malloc((state->n ? state->n : 1) * sizeof *state->ids)))
                return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
            for (size_t i = 0; i < state->n; i++)
                state->ids[i] = (int64_t)i;
        }
    }

    /* The value column: revenue by default with transactions. */
    const kseg_yaml_node *report = section(state, "report");
    const char *value_name = state->rfm_file ? "monetary" : NULL;
    if (optional_string(state, report, "value", "report.value", &value_name))
        return KSEG_EXIT_FAILURE;
    if (value_name && *value_name) {
        if (!(state->value_name = strdup(value_name)))
            return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        if (read_customer_column(state, value_name, &state->value))
            return KSEG_EXIT_FAILURE;
    }
    return 0;
}

/* ------------------------------------------------------------------ segmentation options */

static int parse_prepare(run_state *state, kseg_prepare_options *prepare, kseg_feature_spec *specs)
{
    const kseg_yaml_node *node = section(state, "prepare");
    kseg_error error;
    kseg_error_clear(&error);
    for (size_t j = 0; j < state->d; j++)
        kseg_feature_spec_defaults(&specs[j]);
    prepare->specs = specs;
    const char *scaling = NULL;
    if (optional_string(state, node, "scaling", "prepare.scaling", &scaling))
        return -1;
    if (scaling && kseg_scaling_parse(scaling, &prepare->scaling))
        return config_failf(state, kseg_yaml_get(node, "scaling"),
                            "prepare.scaling: expected standard, robust or none, got '%s'", scaling);
    const char *const *names = (const char *const *)state->feature_names;
    static const char *const sub_sections[] = {"transforms", "clip", "weights"};
    for (size_t s = 0; s < COUNT(sub_sections); s++) {
        const kseg_yaml_node *mapping = kseg_yaml_get(node, sub_sections[s]);
        if (!mapping)
            continue;
        char context[64];
        snprintf(context, sizeof context, "'prepare.%s' (keys are features)", sub_sections[s]);
        if (check_keys(state, mapping, names, state->d, context))
            return -1;
        for (size_t i = 0; i < mapping->n_items; i++) {
            size_t j = 0;
            while (strcmp(names[j], mapping->keys[i]) != 0)
                j++;
            const kseg_yaml_node *value = &mapping->items[i];
            char what[128];
            snprintf(what, sizeof what, "prepare.%s.%s", sub_sections[s], mapping->keys[i]);
            if (s == 0) {
                const char *text = NULL;
                if (kseg_yaml_string(value, state->source, what, &text, &error))
                    return fail_error(&error);
                if (kseg_transform_parse(text, &specs[j].transform))
                    return config_failf(state, value, "expected none or log1p, got '%s'", text);
            } else if (s == 1) {
                if (value->kind != KSEG_YAML_SEQUENCE || value->n_items != 2)
                    return config_failf(state, value, "%s: expected [low, high] quantiles "
                                                      "(null for no clip on that side)", what);
                double bounds[2] = {NAN, NAN};
                for (int side = 0; side < 2; side++)
                    if (!value->items[side].is_null &&
                        kseg_yaml_double(&value->items[side], state->source, what, &bounds[side],
                                         &error))
                        return fail_error(&error);
                specs[j].clip_low = bounds[0];
                specs[j].clip_high = bounds[1];
            } else if (kseg_yaml_double(value, state->source, what, &specs[j].weight, &error)) {
                return fail_error(&error);
            }
        }
    }
    return 0;
}

static int parse_k(run_state *state, const char *text, const kseg_yaml_node *node,
                   kseg_segmentation_options *options)
{
    char *end = NULL;
    errno = 0;
    long first = strtol(text, &end, 10);
    if (end != text && strncmp(end, "..", 2) == 0) {
        char *last_end = NULL;
        long last = strtol(end + 2, &last_end, 10);
        if (*last_end || first < 2 || last <= first || last > 1000)
            return config_failf(state, node,
                                "k: expected K or FIRST..LAST with 2 <= FIRST < LAST <= 1000, got "
                                "'%s'",
                                text);
        options->k_min = (int32_t)first;
        options->k_max = (int32_t)last;
        return 0;
    }
    if (end == text || *end || errno || first < 1 || first > 1000000)
        return config_failf(state, node, "k: expected K (1..1000000) or FIRST..LAST, got '%s'",
                            text);
    options->kmeans.n_clusters = first;
    options->k_min = options->k_max = 0;
    return 0;
}

static int parse_cluster(run_state *state, kseg_segmentation_options *options)
{
    const kseg_yaml_node *node = section(state, "cluster");
    kseg_kmeans_options *kmeans = &options->kmeans;
    kmeans->n_clusters = 5;
    kmeans->n_threads = state->threads;
    const char *k_text = state->k_override;
    if (!k_text && optional_string(state, node, "k", "cluster.k", &k_text))
        return -1;
    if (k_text && parse_k(state, k_text, state->k_override ? NULL : kseg_yaml_get(node, "k"), options))
        return -1;
    const char *rule = NULL, *init = NULL, *kernel = NULL;
    int64_t n_init = kmeans->n_init, max_iter = kmeans->max_iter, seed = (int64_t)kmeans->seed;
    int64_t sample = (int64_t)options->silhouette_sample;
    if (optional_string(state, node, "rule", "cluster.rule", &rule) ||
        optional_string(state, node, "init", "cluster.init", &init) ||
        optional_string(state, node, "kernel", "cluster.kernel", &kernel) ||
        optional_int64(state, node, "n_init", "cluster.n_init", 0, 1000, &n_init) ||
        optional_int64(state, node, "max_iter", "cluster.max_iter", 1, 100000000, &max_iter) ||
        optional_int64(state, node, "seed", "cluster.seed", 0, INT64_MAX, &seed) ||
        optional_int64(state, node, "silhouette_sample", "cluster.silhouette_sample", 0,
                       100000000, &sample) ||
        optional_double(state, node, "tol", "cluster.tol", &kmeans->tol))
        return -1;
    if (rule && kseg_k_rule_parse(rule, &options->k_rule))
        return config_failf(state, kseg_yaml_get(node, "rule"),
                            "cluster.rule: expected knee, silhouette, calinski-harabasz or "
                            "davies-bouldin, got '%s'",
                            rule);
    if (init && kseg_init_method_parse(init, &kmeans->init))
        return config_failf(state, kseg_yaml_get(node, "init"),
                            "cluster.init: expected k-means++, k-means|| or random, got '%s'", init);
    kmeans->kernel = kernel;
    kmeans->n_init = (int32_t)n_init;
    kmeans->max_iter = (int32_t)max_iter;
    kmeans->seed = (uint64_t)seed;
    options->silhouette_sample = (size_t)sample;
    return 0;
}

static int parse_label(run_state *state, kseg_segmentation_options *options)
{
    const kseg_yaml_node *node = section(state, "label");
    kseg_error error;
    kseg_error_clear(&error);
    const char *rules_path = NULL, *merge = NULL;
    if (optional_string(state, node, "rules", "label.rules", &rules_path) ||
        optional_string(state, node, "merge", "label.merge", &merge) ||
        optional_double(state, node, "min_customer_share", "label.min_customer_share",
                        &options->merge.min_customer_share) ||
        optional_double(state, node, "min_revenue_share", "label.min_revenue_share",
                        &options->merge.min_revenue_share))
        return -1;
    if (!(options->merge.min_customer_share >= 0 && options->merge.min_customer_share < 1) ||
        !(options->merge.min_revenue_share >= 0 && options->merge.min_revenue_share < 1))
        return config_failf(state, node, "%s",
                            "label.min_customer_share and label.min_revenue_share: expected shares "
                            "in [0, 1), e.g. 0.02 for 2 %");
    if (merge) {
        if (strcmp(merge, "nearest") == 0)
            options->merge.mode = KSEG_MERGE_NEAREST;
        else if (strcmp(merge, "other") == 0)
            options->merge.mode = KSEG_MERGE_OTHER;
        else
            return config_failf(state, kseg_yaml_get(node, "merge"),
                                "label.merge: expected nearest or other, got '%s'", merge);
    }
    if (rules_path) {
        char *path = resolve_path(state, rules_path);
        if (!path)
            return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        int status = kseg_rules_load_file(path, (const char *const *)state->feature_names,
                                          state->d, &state->rules, &error);
        free(path);
        if (status)
            return fail_error(&error);
        state->have_rules = 1;
        options->rules = &state->rules;
    }
    return 0;
}

/* ------------------------------------------------------------------ schemes */

/* The category of each customer's latest transaction line (ties in time: the later line). */
static int latest_categories(run_state *state, const char *column, const kseg_yaml_node *node,
                             kseg_scheme *scheme)
{
    kseg_error error;
    kseg_error_clear(&error);
    kseg_transaction_reader *reader = NULL;
    int32_t *codes = NULL;
    int64_t *latest = NULL;
    int exit_code = KSEG_EXIT_FAILURE;
    if (kseg_transaction_reader_open(&reader, state->transactions_file, NULL, &error) ||
        kseg_transaction_reader_select(reader, KSEG_TX_CUSTOMER_ID | KSEG_TX_CUSTOMER_VALID |
                                                   KSEG_TX_TIME | KSEG_TX_CATEGORIES,
                                       &error)) {
        exit_code = fail_error(&error);
        goto done;
    }
    codes = malloc((state->n ? state->n : 1) * sizeof *codes);
    latest = malloc((state->n ? state->n : 1) * sizeof *latest);
    if (!codes || !latest) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < state->n; i++) {
        codes[i] = -1;
        latest[i] = INT64_MIN;
    }
    size_t rows = kseg_transaction_reader_rows(reader), block_rows = 1 << 20;
    const char *const *names = NULL;
    size_t n_names = 0;
    for (size_t offset = 0; offset < rows; offset += block_rows) {
        size_t count = rows - offset < block_rows ? rows - offset : block_rows;
        kseg_transactions block;
        if (kseg_transaction_reader_read(reader, offset, count, &block, &error)) {
            exit_code = fail_error(&error);
            goto done;
        }
        const kseg_category_column *category = NULL;
        for (size_t c = 0; c < block.n_categories; c++)
            if (strcmp(block.categories[c].name, column) == 0)
                category = &block.categories[c];
        if (!category) {
            char available[512] = "";
            for (size_t c = 0; c < block.n_categories; c++) {
                strncat(available, c ? ", " : "", sizeof available - strlen(available) - 1);
                strncat(available, block.categories[c].name, sizeof available - strlen(available) - 1);
            }
            /* One line: where in the config, and what the transaction file has instead. */
            char detail[400];
            snprintf(detail, sizeof detail, "%s has no category column '%s' (it has: %.200s)",
                     state->transactions_file, column, available[0] ? available : "none");
            exit_code = config_failf(state, node, "schemes.categories: %s", detail);
            goto done;
        }
        names = category->names;
        n_names = category->n_names;
        for (size_t r = 0; r < count; r++) {
            if (block.customer_valid && !block.customer_valid[r])
                continue;
            int64_t id = block.customer_id[r];
            size_t low = 0, high = state->n;
            while (low < high) {
                size_t middle = low + (high - low) / 2;
                if (state->ids[middle] < id)
                    low = middle + 1;
                else
                    high = middle;
            }
            if (low < state->n && state->ids[low] == id && block.time[r] >= latest[low]) {
                latest[low] = block.time[r];
                codes[low] = category->codes[r];
            }
        }
    }
    /* The dictionary of the last block read stays valid until the reader is closed. */
    if (!names) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                              "%s: no transactions for the category scheme '%s'",
                              state->transactions_file, column);
        goto done;
    }
    if (kseg_category_scheme(column, state->n, codes, names, n_names, scheme, &error)) {
        exit_code = fail_error(&error);
        goto done;
    }
    exit_code = 0;
done:
    kseg_transaction_reader_close(reader);
    free(codes);
    free(latest);
    return exit_code;
}

static kseg_scheme *new_scheme(run_state *state)
{
    if (state->n_schemes == MAX_SCHEMES) {
        cli_failf(command, KSEG_EXIT_FAILURE, "%s: at most %d schemes", state->source, MAX_SCHEMES);
        return NULL;
    }
    kseg_scheme *scheme = &state->schemes[state->n_schemes];
    kseg_scheme_init(scheme);
    return scheme;
}

static int build_schemes(run_state *state)
{
    const kseg_yaml_node *node = section(state, "schemes");
    kseg_error error;
    kseg_error_clear(&error);
    int with_rfm = state->rfm_file != NULL, with_lifecycle = state->rfm_file != NULL;
    const kseg_yaml_node *lifecycle_node = kseg_yaml_get(node, "lifecycle");
    if (optional_bool(state, node, "rfm", "schemes.rfm", &with_rfm))
        return -1;
    kseg_lifecycle_options lifecycle;
    kseg_lifecycle_options_defaults(&lifecycle);
    if (lifecycle_node && lifecycle_node->kind == KSEG_YAML_MAPPING) {
        if (check_keys(state, lifecycle_node, lifecycle_keys, COUNT(lifecycle_keys),
                       "'schemes.lifecycle'") ||
            optional_double(state, lifecycle_node, "new_days", "schemes.lifecycle.new_days",
                            &lifecycle.new_days) ||
            optional_double(state, lifecycle_node, "lapsed_days", "schemes.lifecycle.lapsed_days",
                            &lifecycle.lapsed_days))
            return -1;
        with_lifecycle = 1;
    } else if (optional_bool(state, node, "lifecycle", "schemes.lifecycle", &with_lifecycle)) {
        return -1;
    }
    if ((with_rfm || with_lifecycle) && !state->rfm_file)
        return config_failf(state, node, "%s",
                            "schemes.rfm and schemes.lifecycle need transactions as input");

    /* The clustering's scheme comes first; it is the primary one. */
    state->n_schemes = 1;
    if (with_rfm) {
        kseg_scheme *scheme = new_scheme(state);
        double *segment = NULL;
        char **names = NULL;
        size_t n_names = 0;
        if (read_customer_column(state, "segment", &segment))
            return -1;
        if (kseg_h5_read_strings(state->rfm_file, "/rfm/segment_names", &names, &n_names,
                                 &error)) {
            free(segment);
            return fail_error(&error);
        }
        int32_t *labels = malloc((state->n ? state->n : 1) * sizeof *labels);
        int32_t *identity = malloc((n_names ? n_names : 1) * sizeof *identity);
        int status = labels && identity ? 0 : KSEG_ENOMEM;
        for (size_t i = 0; labels && i < state->n; i++)
            labels[i] = (int32_t)segment[i];
        for (size_t s = 0; identity && s < n_names; s++)
            identity[s] = (int32_t)s;
        if (!status)
            status = kseg_scheme_from_clusters("rfm", state->n, labels, n_names, identity,
                                               (const char *const *)names, n_names, scheme,
                                               &error);
        free(segment);
        free(labels);
        free(identity);
        kseg_h5_free_strings(names, n_names);
        if (status)
            return status == KSEG_ENOMEM ? cli_failf(command, 1, "out of memory") : fail_error(&error);
        state->n_schemes++;
    }
    if (with_lifecycle) {
        kseg_scheme *scheme = new_scheme(state);
        double *recency = NULL, *frequency = NULL, *tenure = NULL;
        int status = read_customer_column(state, "recency", &recency) ||
                     read_customer_column(state, "frequency", &frequency) ||
                     read_customer_column(state, "tenure", &tenure);
        if (!status)
            status = kseg_lifecycle_scheme(state->n, recency, frequency, tenure, NULL, &lifecycle,
                                           scheme, &error)
                         ? fail_error(&error)
                         : 0;
        free(recency);
        free(frequency);
        free(tenure);
        if (status)
            return -1;
        state->n_schemes++;
    }
    const kseg_yaml_node *categories = kseg_yaml_get(node, "categories");
    if (categories) {
        if (categories->kind != KSEG_YAML_SEQUENCE)
            return config_failf(state, categories, "%s",
                                "schemes.categories: expected a list of category column names");
        if (!state->transactions_file)
            return config_failf(state, categories, "%s",
                                "schemes.categories: needs transactions as input");
        for (size_t c = 0; c < categories->n_items; c++) {
            const char *column = NULL;
            if (kseg_yaml_string(&categories->items[c], state->source, "schemes.categories",
                                 &column, &error))
                return fail_error(&error);
            kseg_scheme *scheme = new_scheme(state);
            if (!scheme || latest_categories(state, column, &categories->items[c], scheme))
                return -1;
            state->n_schemes++;
        }
    }
    const kseg_yaml_node *bands = kseg_yaml_get(node, "bands");
    if (bands) {
        if (bands->kind != KSEG_YAML_MAPPING)
            return config_failf(state, bands, "%s",
                                "schemes.bands: expected COLUMN: [edge, edge, ...]");
        for (size_t b = 0; b < bands->n_items; b++) {
            const kseg_yaml_node *edges_node = &bands->items[b];
            if (edges_node->kind != KSEG_YAML_SEQUENCE || edges_node->n_items == 0 ||
                edges_node->n_items > 64)
                return config_failf(state, edges_node, "schemes.bands.%s: expected a list of 1 "
                                    "to 64 increasing edges", bands->keys[b]);
            double edges[64];
            for (size_t e = 0; e < edges_node->n_items; e++)
                if (kseg_yaml_double(&edges_node->items[e], state->source, "schemes.bands",
                                     &edges[e], &error))
                    return fail_error(&error);
            double *values = NULL;
            if (read_customer_column(state, bands->keys[b], &values))
                return -1;
            kseg_scheme *scheme = new_scheme(state);
            int status = scheme ? kseg_band_scheme(bands->keys[b], state->n, values, edges,
                                                   edges_node->n_items, scheme, &error)
                                : -1;
            free(values);
            if (status)
                return status > 0 || !scheme ? -1 : fail_error(&error);
            state->n_schemes++;
        }
    }
    for (size_t s = 1; s < state->n_schemes; s++)
        for (size_t t = 0; t < s; t++)
            if (strcmp(state->schemes[s].name, t ? state->schemes[t].name
                                                  : state->segmentation.scheme.name) == 0)
                return config_failf(state, node, "two schemes are named '%s'",
                                    state->schemes[s].name);
    return 0;
}

/* The scheme at index s (0 = the clustering's). */
static const kseg_scheme *scheme_at(const run_state *state, size_t s)
{
    return s == 0 ? &state->segmentation.scheme : &state->schemes[s];
}

static int find_scheme(const run_state *state, const char *name)
{
    for (size_t s = 0; s < state->n_schemes; s++)
        if (strcmp(scheme_at(state, s)->name, name) == 0)
            return (int)s;
    return -1;
}

/* ------------------------------------------------------------------ report JSON */

static json_t *number_or_null(double value)
{
    return isfinite(value) ? json_real(value) : json_null();
}

static json_t *evaluation_json(const run_state *state, const kseg_scheme *scheme,
                               const kseg_evaluation *evaluation)
{
    json_t *segments = json_array();
    for (size_t i = 0; i < evaluation->n_segments; i++) {
        const kseg_segment_stats *stats = &evaluation->segments[i];
        json_t *mean = json_object(), *median = json_object();
        for (size_t j = 0; j < state->d; j++) {
            json_object_set_new(mean, state->feature_names[j], number_or_null(stats->mean[j]));
            json_object_set_new(median, state->feature_names[j], number_or_null(stats->median[j]));
        }
        json_array_append_new(
            segments,
            json_pack("{s:i, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o}", "id",
                      (int)stats->segment, "name", scheme->segment_names[stats->segment],
                      "customers", (json_int_t)stats->customers, "customer_share",
                      number_or_null(stats->customer_share), "revenue",
                      number_or_null(stats->revenue), "revenue_share",
                      number_or_null(stats->revenue_share), "cumulative_customer_share",
                      number_or_null(stats->cumulative_customer_share),
                      "cumulative_revenue_share", number_or_null(stats->cumulative_revenue_share),
                      "value_per_customer", number_or_null(stats->value_per_customer), "priority",
                      (int)stats->priority, "mean", mean, "median", median));
    }
    return json_pack("{s:s, s:o}", "name", scheme->name, "segments", segments);
}

static json_t *string_array(char *const *values, size_t count)
{
    json_t *array = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(array, json_string(values[i]));
    return array;
}

static int build_report(run_state *state, const char *title)
{
    const kseg_segmentation *segmentation = &state->segmentation;
    json_t *schemes = json_array();
    for (size_t s = 0; s < state->n_schemes; s++)
        json_array_append_new(schemes, evaluation_json(state, scheme_at(state, s),
                                                       &state->evaluations[s]));
    /* Profile: each final segment's mean in the prepared (scaled) space. */
    json_t *profile_segments = json_array();
    for (size_t g = 0; g < segmentation->merge.n_merged_segments; g++) {
        json_t *values = json_array();
        for (size_t j = 0; j < state->d; j++)
            json_array_append_new(values,
                                  number_or_null(segmentation->segment_profile[g * state->d + j]));
        json_array_append_new(profile_segments,
                              json_pack("{s:s, s:o}", "name", segmentation->merge.names[g],
                                        "values", values));
    }
    json_t *merges = json_array();
    for (size_t m = 0; m < segmentation->merge.n_records; m++) {
        const kseg_merge_record *record = &segmentation->merge.records[m];
        json_array_append_new(merges,
                              json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "scheme",
                                        segmentation->scheme.name, "from", record->from, "into",
                                        record->into, "customer_share",
                                        number_or_null(record->customer_share), "revenue_share",
                                        number_or_null(record->revenue_share), "reason",
                                        record->reason));
    }
    json_t *sweep = json_null();
    if (segmentation->n_sweep) {
        json_t *entries = json_array();
        for (size_t i = 0; i < segmentation->n_sweep; i++) {
            const kseg_k_sweep_entry *entry = &segmentation->sweep[i];
            json_array_append_new(
                entries, json_pack("{s:i, s:o, s:o, s:o, s:o}", "k", (int)entry->k, "inertia",
                                   number_or_null(entry->inertia), "silhouette",
                                   number_or_null(entry->silhouette), "calinski_harabasz",
                                   number_or_null(entry->calinski_harabasz), "davies_bouldin",
                                   number_or_null(entry->davies_bouldin)));
        }
        json_decref(sweep);
        sweep = json_pack("{s:s, s:i, s:b, s:s, s:o}", "rule", "", "chosen",
                          (int)segmentation->chosen_k, "clear", segmentation->sweep_clear, "note",
                          segmentation->sweep_note, "entries", entries);
    }
    /* Cross-tabulations: report.crosstab pairs, else the clustering against RFM and lifecycle. */
    json_t *crosstabs = json_array();
    const kseg_yaml_node *pairs = kseg_yaml_get(section(state, "report"), "crosstab");
    size_t n_pairs = pairs ? pairs->n_items : 0;
    int default_pairs[2][2];
    size_t n_default = 0;
    if (!pairs)
        for (size_t s = 1; s < state->n_schemes && n_default < 2; s++) {
            default_pairs[n_default][0] = 0;
            default_pairs[n_default][1] = (int)s;
            n_default++;
        }
    if (pairs && pairs->kind != KSEG_YAML_SEQUENCE) {
        json_decref(schemes);
        json_decref(profile_segments);
        json_decref(merges);
        json_decref(sweep);
        json_decref(crosstabs);
        return config_failf(state, pairs, "%s", "report.crosstab: expected a list of [SCHEME, SCHEME] pairs");
    }
    for (size_t p = 0; p < (pairs ? n_pairs : n_default); p++) {
        int a, b;
        if (pairs) {
            const kseg_yaml_node *pair = &pairs->items[p];
            if (pair->kind != KSEG_YAML_SEQUENCE || pair->n_items != 2 ||
                pair->items[0].kind != KSEG_YAML_SCALAR || pair->items[1].kind != KSEG_YAML_SCALAR) {
                json_decref(crosstabs);
                json_decref(schemes);
                json_decref(profile_segments);
                json_decref(merges);
                json_decref(sweep);
                return config_failf(state, pair, "%s", "report.crosstab: expected [SCHEME, SCHEME]");
            }
            a = find_scheme(state, pair->items[0].value);
            b = find_scheme(state, pair->items[1].value);
            if (a < 0 || b < 0) {
                const kseg_yaml_node *bad = a < 0 ? &pair->items[0] : &pair->items[1];
                char names[512] = "";
                for (size_t s = 0; s < state->n_schemes; s++) {
                    strncat(names, s ? ", " : "", sizeof names - strlen(names) - 1);
                    strncat(names, scheme_at(state, s)->name, sizeof names - strlen(names) - 1);
                }
                cli_failf(command, KSEG_EXIT_FAILURE,
                          "%s:%zu:%zu: report.crosstab: unknown scheme '%s' (schemes: %s)",
                          state->source, bad->line, bad->column, bad->value, names);
                json_decref(crosstabs);
                json_decref(schemes);
                json_decref(profile_segments);
                json_decref(merges);
                json_decref(sweep);
                return -1;
            }
        } else {
            a = default_pairs[p][0];
            b = default_pairs[p][1];
        }
        const kseg_scheme *rows = scheme_at(state, (size_t)a), *columns = scheme_at(state, (size_t)b);
        size_t cells = rows->n_segments * columns->n_segments;
        int64_t *counts = calloc(cells ? cells : 1, sizeof *counts);
        double *sums = calloc(cells ? cells : 1, sizeof *sums);
        kseg_error error;
        kseg_error_clear(&error);
        if (!counts || !sums ||
            kseg_crosstab(rows, columns, state->value, counts, sums, &error)) {
            free(counts);
            free(sums);
            continue;
        }
        json_t *count_rows = json_array(), *revenue_rows = json_array();
        for (size_t r = 0; r < rows->n_segments; r++) {
            json_t *count_row = json_array(), *revenue_row = json_array();
            for (size_t c = 0; c < columns->n_segments; c++) {
                json_array_append_new(count_row, json_integer(counts[r * columns->n_segments + c]));
                json_array_append_new(revenue_row,
                                      number_or_null(sums[r * columns->n_segments + c]));
            }
            json_array_append_new(count_rows, count_row);
            json_array_append_new(revenue_rows, revenue_row);
        }
        free(counts);
        free(sums);
        json_array_append_new(
            crosstabs, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "rows", rows->name, "columns",
                                 columns->name, "row_names",
                                 string_array(rows->segment_names, rows->n_segments),
                                 "column_names",
                                 string_array(columns->segment_names, columns->n_segments),
                                 "counts", count_rows, "revenue", revenue_rows));
    }
    double total = 0;
    for (size_t i = 0; i < state->n; i++)
        total += state->value ? state->value[i] : 1.0;
    state->report = json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "kseg_version",
        kseg_version_string(), "title", title, "generated", state->config_path, "customers",
        (json_int_t)state->n, "revenue", number_or_null(total), "value_column",
        state->value_name ? state->value_name : "customers", "features",
        string_array(state->feature_names, state->d), "primary_scheme",
        state->segmentation.scheme.name, "schemes", schemes, "profile",
        json_pack("{s:s, s:o, s:s, s:o}", "scheme", state->segmentation.scheme.name, "features",
                  string_array(state->feature_names, state->d), "space", "scaled", "segments",
                  profile_segments),
        "merges", merges, "k_sweep", sweep, "crosstabs", crosstabs);
    if (!state->report)
        return cli_failf(command, KSEG_EXIT_FAILURE, "cannot build the report (out of memory?)");
    return 0;
}

/* ------------------------------------------------------------------ result file */

/* /report/<scheme>/: segment, name, priority, customers, shares, revenue, value per customer. */
static int write_segment_table(kseg_h5_writer *writer, const kseg_scheme *scheme,
                               const kseg_evaluation *evaluation, kseg_error *error)
{
    size_t m = evaluation->n_segments;
    size_t dims[1] = {m};
    int32_t *integers = malloc((m ? m : 1) * 2 * sizeof *integers);
    int64_t *customers = malloc((m ? m : 1) * sizeof *customers);
    double *values = malloc((m ? m : 1) * 6 * sizeof *values);
    const char **names = malloc((m ? m : 1) * sizeof *names);
    int status = 0;
    if (!integers || !customers || !values || !names) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory writing the segment table");
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        const kseg_segment_stats *stats = &evaluation->segments[i];
        integers[i] = stats->segment;
        integers[m + i] = stats->priority;
        customers[i] = stats->customers;
        names[i] = scheme->segment_names[stats->segment];
        values[i] = stats->customer_share;
        values[m + i] = stats->revenue;
        values[2 * m + i] = stats->revenue_share;
        values[3 * m + i] = stats->cumulative_customer_share;
        values[4 * m + i] = stats->cumulative_revenue_share;
        values[5 * m + i] = stats->value_per_customer;
    }
    static const char *const value_columns[] = {"customer_share", "revenue", "revenue_share",
                                                "cumulative_customer_share",
                                                "cumulative_revenue_share", "value_per_customer"};
    char path[256];
    snprintf(path, sizeof path, "/report/%s/segment", scheme->name);
    status = kseg_h5_write_dataset(writer, path, KSEG_STORE_INT32, 1, dims, integers, 0, 0, error);
    if (!status) {
        snprintf(path, sizeof path, "/report/%s/priority", scheme->name);
        status = kseg_h5_write_dataset(writer, path, KSEG_STORE_INT32, 1, dims, integers + m, 0,
                                       0, error);
    }
    if (!status) {
        snprintf(path, sizeof path, "/report/%s/customers", scheme->name);
        status = kseg_h5_write_dataset(writer, path, KSEG_STORE_INT64, 1, dims, customers, 0, 0,
                                       error);
    }
    if (!status) {
        snprintf(path, sizeof path, "/report/%s/name", scheme->name);
        status = kseg_h5_write_strings(writer, path, names, m, error);
    }
    for (size_t c = 0; c < 6 && !status; c++) {
        snprintf(path, sizeof path, "/report/%s/%s", scheme->name, value_columns[c]);
        status = kseg_h5_write_dataset(writer, path, KSEG_STORE_FLOAT64, 1, dims, values + c * m,
                                       0, 0, error);
    }
done:
    free(integers);
    free(customers);
    free(values);
    free(names);
    return status;
}

static int write_result(run_state *state, const char *path)
{
    const kseg_segmentation *segmentation = &state->segmentation;
    kseg_error error;
    kseg_error_clear(&error);
    kseg_h5_writer *writer = NULL;
    size_t n = state->n, d = state->d, k = segmentation->kmeans.n_clusters;
    size_t chunk = n < 65536 ? n : 65536;
    const char *const *names = (const char *const *)state->feature_names;
    char *report_text = json_dumps(state->report, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                                      JSON_REAL_PRECISION(17));
    double *column = malloc((n ? n : 1) * sizeof *column);
    int32_t *transforms = malloc(d * sizeof *transforms);
    int status = report_text && column && transforms ? 0 : KSEG_ENOMEM;
    if (status) {
        kseg_error_set(&error, KSEG_ENOMEM, "out of memory writing %s", path);
        goto done;
    }
    size_t n_dims[1] = {n}, d_dims[1] = {d}, k_dims[1] = {k}, centroid_dims[2] = {k, d};
    const char *config_text = state->config_text;
    const char *report_strings[1] = {report_text};
    if ((status = kseg_h5_writer_open(&writer, path, &error)) ||
        (status = kseg_h5_write_strings(writer, "/config/yaml", &config_text, 1, &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/config/yaml", "source",
                                                 state->config_path, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/features/id", KSEG_STORE_INT64, 1, n_dims,
                                        state->ids, chunk, 4, &error)))
        goto done;
    for (size_t j = 0; j < d && !status; j++) {
        for (size_t i = 0; i < n; i++)
            column[i] = state->features[i * d + j];
        char dataset[128];
        snprintf(dataset, sizeof dataset, "/features/%s", names[j]);
        status = kseg_h5_write_dataset(writer, dataset, KSEG_STORE_FLOAT64, 1, n_dims, column,
                                       chunk, 4, &error);
    }
    if (status)
        goto done;
    /* The model: what 'kseg predict' needs to put new customers in the same segments. */
    const kseg_prepare_model *prepare = &segmentation->prepare;
    for (size_t j = 0; j < d; j++)
        transforms[j] = (int32_t)prepare->transform[j];
    if ((status = kseg_h5_write_dataset(writer, "/model/centroids", KSEG_STORE_FLOAT64, 2,
                                        centroid_dims, segmentation->kmeans.centroids, 0, 0,
                                        &error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/model/centroids", "columns", names, d,
                                                  &error)) ||
        (status = kseg_h5_write_attribute_double(writer, "/model/centroids", "inertia",
                                                 segmentation->kmeans.inertia, &error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/model/centroids", "n_iter",
                                                segmentation->kmeans.n_iter, &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "kernel",
                                                 segmentation->kmeans.kernel, &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "kseg_version",
                                                 kseg_version_string(), &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "space",
                                                 "prepared (see /model/prepare)", &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/feature_mean", KSEG_STORE_FLOAT64, 1,
                                        d_dims, segmentation->kmeans.feature_mean, 0, 0,
                                        &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/centroids_original", KSEG_STORE_FLOAT64,
                                        2, centroid_dims, segmentation->centroids_original, 0, 0,
                                        &error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/model/centroids_original", "columns",
                                                  names, d, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/transform", KSEG_STORE_INT32, 1,
                                        d_dims, transforms, 0, 0, &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/prepare/transform", "codes",
                                                 "0 none, 1 log1p", &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/clip_low", KSEG_STORE_FLOAT64, 1,
                                        d_dims, prepare->clip_low, 0, 0, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/clip_high", KSEG_STORE_FLOAT64, 1,
                                        d_dims, prepare->clip_high, 0, 0, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/center", KSEG_STORE_FLOAT64, 1,
                                        d_dims, prepare->center, 0, 0, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/scale", KSEG_STORE_FLOAT64, 1,
                                        d_dims, prepare->scale, 0, 0, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/prepare/weight", KSEG_STORE_FLOAT64, 1,
                                        d_dims, prepare->weight, 0, 0, &error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/model/prepare/center", "columns",
                                                  names, d, &error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/prepare/center", "scaling",
                                                 kseg_scaling_name(prepare->scaling), &error)) ||
        (status = kseg_h5_write_strings(writer, "/model/cluster_names",
                                        (const char *const *)segmentation->cluster_names, k,
                                        &error)) ||
        (status = kseg_h5_write_dataset(writer, "/model/cluster_segment", KSEG_STORE_INT32, 1,
                                        k_dims, segmentation->cluster_segment, 0, 0, &error)) ||
        (status = kseg_h5_write_strings(writer, "/model/segment_names",
                                        (const char *const *)segmentation->merge.names,
                                        segmentation->merge.n_merged_segments, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/labels/id", KSEG_STORE_INT64, 1, n_dims,
                                        state->ids, chunk, 4, &error)) ||
        (status = kseg_h5_write_dataset(writer, "/labels/cluster", KSEG_STORE_INT32, 1, n_dims,
                                        segmentation->kmeans.labels, chunk, 4, &error)))
        goto done;
    for (size_t s = 0; s < state->n_schemes && !status; s++) {
        const kseg_scheme *scheme = scheme_at(state, s);
        char dataset[256];
        snprintf(dataset, sizeof dataset, "/labels/%s", scheme->name);
        status = kseg_h5_write_dataset(writer, dataset, KSEG_STORE_INT32, 1, n_dims,
                                       scheme->segment, chunk, 4, &error);
        if (!status) {
            snprintf(dataset, sizeof dataset, "/schemes/%s/names", scheme->name);
            status = kseg_h5_write_strings(writer, dataset,
                                           (const char *const *)scheme->segment_names,
                                           scheme->n_segments, &error);
        }
    }
    /* The segment table of every scheme, as equal-length columns in priority order. */
    for (size_t s = 0; s < state->n_schemes && !status; s++)
        status = write_segment_table(writer, scheme_at(state, s), &state->evaluations[s], &error);
    if (!status)
        status = kseg_h5_write_strings(writer, "/report/json", report_strings, 1, &error);
    if (!status) {
        status = kseg_h5_writer_commit(writer, &error);
        writer = NULL;
    }
done:
    kseg_h5_writer_abort(writer);
    free(report_text);
    free(column);
    free(transforms);
    if (status)
        return fail_error(&error);
    return 0;
}

static int write_customers_csv(const run_state *state, const char *path)
{
    kseg_output_file file;
    FILE *out = cli_output_open(command, &file, path);
    if (!out)
        return -1;
    fputs("id,cluster", out);
    for (size_t s = 0; s < state->n_schemes; s++) {
        fputc(',', out);
        cli_csv_field(out, scheme_at(state, s)->name);
    }
    fputc('\n', out);
    for (size_t i = 0; i < state->n; i++) {
        fprintf(out, "%lld,%d", (long long)state->ids[i], state->segmentation.kmeans.labels[i]);
        for (size_t s = 0; s < state->n_schemes; s++) {
            const kseg_scheme *scheme = scheme_at(state, s);
            fputc(',', out);
            cli_csv_field(out, scheme->segment_names[scheme->segment[i]]);
        }
        fputc('\n', out);
    }
    return cli_output_commit(command, &file);
}

/* ------------------------------------------------------------------ main */

static void state_destroy(run_state *state)
{
    free(state->config_dir);
    free(state->config_text);
    kseg_yaml_document_destroy(&state->document);
    free(state->output_dir);
    free(state->transactions_file);
    free(state->rfm_file);
    free(state->customers_file);
    free(state->customers_path);
    free(state->ids);
    for (size_t j = 0; j < state->d; j++)
        free(state->feature_names[j]);
    free(state->features);
    free(state->value_name);
    free(state->value);
    kseg_rules_destroy(&state->rules);
    for (size_t s = 1; s < state->n_schemes; s++)
        kseg_scheme_destroy(&state->schemes[s]);
    for (size_t s = 0; s < state->n_schemes; s++)
        kseg_evaluation_destroy(&state->evaluations[s]);
    kseg_segmentation_destroy(&state->segmentation);
    json_decref(state->report);
}

/* mkdir -p: creates the missing parents too. *created gets the length of the first directory
 * it created (0: none), so that a failed run can take them away again. */
static int make_directory(const char *path, size_t *created)
{
    char partial[4096];
    *created = 0;
    if (snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial)
        return cli_failf(command, KSEG_EXIT_FAILURE, "output directory name too long: %s", path);
    for (char *slash = strchr(partial + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(partial, 0777) == 0) {
            if (!*created)
                *created = strlen(partial);
        } else if (errno != EEXIST) {
            return cli_failf(command, KSEG_EXIT_FAILURE,
                             "cannot create the output directory %s: %s", partial,
                             strerror(errno));
        }
        *slash = '/';
    }
    const int made = mkdir(path, 0777) == 0;
    if (made && !*created)
        *created = strlen(path);
    if (made || errno == EEXIST) {
        struct stat info;
        if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
            return 0;
        return cli_failf(command, KSEG_EXIT_FAILURE, "%s exists and is not a directory", path);
    }
    return cli_failf(command, KSEG_EXIT_FAILURE, "cannot create the output directory %s: %s", path,
                     strerror(errno));
}

/* After a failed run: removes the directories make_directory created, deepest first, as long
 * as they are empty (a complete file from an earlier step, e.g. transactions.h5, stays), so
 * that a run refused at once leaves nothing behind. */
static void remove_created_directories(const char *path, size_t created)
{
    char partial[4096];
    if (!created || snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial)
        return;
    for (size_t length = strlen(partial); length >= created;) {
        if (rmdir(partial) != 0)
            return;
        char *slash = strrchr(partial, '/');
        if (!slash || slash == partial)
            return;
        *slash = '\0';
        length = strlen(partial);
    }
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + 1e-9 * (double)(now.tv_nsec - start->tv_nsec);
}

int kseg_cmd_run(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"output", required_argument, NULL, 'o'}, {"k", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 'j'}, {"no-html", no_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    run_state state;
    memset(&state, 0, sizeof state);
    kseg_yaml_document_init(&state.document);
    kseg_rules_init(&state.rules);
    kseg_segmentation_init(&state.segmentation);
    for (size_t s = 0; s < MAX_SCHEMES; s++)
        kseg_evaluation_init(&state.evaluations[s]);
    state.html = 1;
    const char *output_option = NULL;
    int64_t threads = 0;
    int no_html = 0;
    int exit_code = KSEG_EXIT_FAILURE;
    size_t created_directories = 0;
    kseg_error error;
    kseg_error_clear(&error);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);

    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":o:qh", long_options, NULL)) != -1) {
        switch (option) {
        case 'o':
            output_option = optarg;
            break;
        case 'k':
            state.k_override = optarg;
            break;
        case 'j':
            if (cli_parse_int64(command, "--threads", optarg, 1, 4096, &threads)) {
                exit_code = KSEG_EXIT_USAGE;
                goto done;
            }
            break;
        case 'H':
            no_html = 1;
            break;
        case 'q':
            state.quiet = 1;
            break;
        case 'h':
            fputs(run_usage, stdout);
            exit_code = KSEG_EXIT_OK;
            goto done;
        case ':':
            exit_code = cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                                  argv[optind - 1]);
            goto done;
        default:
            exit_code = cli_failf(command, KSEG_EXIT_USAGE,
                                  "unknown option '%s' (run 'kseg run --help')", argv[optind - 1]);
            goto done;
        }
    }
    if (optind != argc - 1) {
        exit_code = cli_failf(command, KSEG_EXIT_USAGE,
                              "expected exactly one CONFIG.yaml (run 'kseg run --help')");
        goto done;
    }
    state.config_path = argv[optind];
    state.source = state.config_path;

    /* The config: parsed, its keys checked, the text kept for the outputs. */
    if (cli_read_text_file(state.config_path, "config", &state.config_text, &error)) {
        exit_code = fail_error(&error);
        goto done;
    }
    if (kseg_yaml_load_string(state.config_text, strlen(state.config_text), state.config_path,
                              &state.document, &error)) {
        exit_code = fail_error(&error);
        goto done;
    }
    if (!state.document.root || state.document.root->kind != KSEG_YAML_MAPPING) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                              "%s: expected a mapping of sections (input, rfm, prepare, cluster, "
                              "label, schemes, report)",
                              state.config_path);
        goto done;
    }
    if (check_keys(&state, state.document.root, top_keys, COUNT(top_keys), "the config") ||
        check_keys(&state, section(&state, "input"), input_keys, COUNT(input_keys), "'input'") ||
        check_keys(&state, section(&state, "prepare"), prepare_keys, COUNT(prepare_keys),
                   "'prepare'") ||
        check_keys(&state, section(&state, "cluster"), cluster_keys, COUNT(cluster_keys),
                   "'cluster'") ||
        check_keys(&state, section(&state, "label"), label_keys, COUNT(label_keys), "'label'") ||
        check_keys(&state, section(&state, "schemes"), scheme_keys, COUNT(scheme_keys),
                   "'schemes'") ||
        check_keys(&state, section(&state, "report"), report_keys, COUNT(report_keys), "'report'"))
        goto done;
    {
        const char *slash = strrchr(state.config_path, '/');
        size_t length = slash ? (size_t)(slash - state.config_path) : 0;
        if (slash && length == 0)
            length = 1; /* the root directory */
        state.config_dir = strndup(state.config_path, length);
    }
    const char *title = "kseg segment report", *output_config = NULL;
    int64_t config_threads = 0;
    const kseg_yaml_node *root = state.document.root;
    if (optional_string(&state, root, "title", "title", &title) ||
        optional_string(&state, root, "output", "output", &output_config) ||
        optional_int64(&state, root, "threads", "threads", 0, 4096, &config_threads) ||
        optional_bool(&state, section(&state, "report"), "html", "report.html", &state.html))
        goto done;
    state.threads = (int32_t)(threads ? threads : config_threads);
    /* The threads count for the loads too: gzip-compressed inputs are inflated on them. */
    if (state.threads > 0)
        omp_set_num_threads(state.threads);
    if (no_html)
        state.html = 0;
    if (output_option) {
        state.output_dir = strdup(output_option);
    } else if (output_config) {
        state.output_dir = resolve_path(&state, output_config);
    } else {
        /* ./<config name without extension>-out */
        const char *base = strrchr(state.config_path, '/');
        base = base ? base + 1 : state.config_path;
        size_t length = strcspn(base, ".");
        size_t size = length + 8;
        if ((state.output_dir = malloc(size)))
            snprintf(state.output_dir, size, "%.*s-out", (int)length, base);
    }
    if (!state.config_dir || !state.output_dir) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        goto done;
    }
    if (make_directory(state.output_dir, &created_directories))
        goto done;

    /* Input: transactions (imported from CSV if needed, then RFM) or a customer table. */
    const kseg_yaml_node *input = section(&state, "input");
    const char *transactions = NULL, *customers = NULL;
    if (optional_string(&state, input, "transactions", "input.transactions", &transactions) ||
        optional_string(&state, input, "customers", "input.customers", &customers))
        goto done;
    if (!transactions == !customers) {
        exit_code = config_failf(&state, input, "%s",
                                 "input: give exactly one of 'transactions' (CSV or HDF5 "
                                 "transaction log) or 'customers' (HDF5 customer table "
                                 "FILE.h5[:/path])");
        goto done;
    }
    if (transactions) {
        if (run_transactions_steps(&state, transactions))
            goto done;
    } else {
        char *resolved = resolve_path(&state, customers);
        if (!resolved || kseg_split_location(resolved, &state.customers_file,
                                             &state.customers_path, &error)) {
            free(resolved);
            exit_code = fail_error(&error);
            goto done;
        }
        free(resolved);
    }
    if (read_features(&state))
        goto done;

    /* Prepare, cluster, name, merge, evaluate. */
    kseg_segmentation_options options;
    kseg_segmentation_options_defaults(&options);
    kseg_feature_spec specs[MAX_FEATURES];
    if (parse_prepare(&state, &options.prepare, specs) || parse_cluster(&state, &options) ||
        parse_label(&state, &options))
        goto done;
    options.kmeans.n_threads = state.threads;
    if (options.k_min) {
        char banner[96];
        snprintf(banner, sizeof banner, "sweeping k = %d..%d over %zu customers", options.k_min,
                 options.k_max, state.n);
        step_banner(&state, banner);
    } else {
        char banner[96];
        snprintf(banner, sizeof banner, "clustering %zu customers into %lld clusters", state.n,
                 (long long)options.kmeans.n_clusters);
        step_banner(&state, banner);
    }
    if (kseg_segmentation_fit(state.features, state.n, state.d,
                              (const char *const *)state.feature_names, state.value, &options,
                              &state.segmentation, &error)) {
        exit_code = fail_error(&error);
        goto done;
    }
    step_banner(&state, "building schemes and the report");
    if (build_schemes(&state))
        goto done;
    if (state.n_schemes == 0)
        state.n_schemes = 1;
    /* The clustering's evaluation was made by the pipeline; evaluate the other schemes. */
    for (size_t s = 1; s < state.n_schemes; s++)
        if (kseg_evaluate_scheme(&state.schemes[s], state.features, state.d, state.value,
                                 &state.evaluations[s], &error)) {
            exit_code = fail_error(&error);
            goto done;
        }
    state.evaluations[0] = state.segmentation.evaluation;
    kseg_evaluation_init(&state.segmentation.evaluation);
    if (build_report(&state, title))
        goto done;
    json_object_set_new(json_object_get(state.report, "k_sweep"), "rule",
                        json_string(kseg_k_rule_name(options.k_rule)));

    /* Outputs, each written atomically. */
    char *result_path = join_path(state.output_dir, "result.h5");
    char *json_path = join_path(state.output_dir, "report.json");
    char *segments_path = join_path(state.output_dir, "segments.csv");
    char *customers_path = join_path(state.output_dir, "customers.csv");
    char *html_dir = join_path(state.output_dir, "report");
    int failed = !result_path || !json_path || !segments_path || !customers_path || !html_dir;
    if (failed)
        cli_failf(command, KSEG_EXIT_FAILURE, "out of memory naming the output files");
    else
        failed = write_result(&state, result_path) ||
                 report_write_json(command, state.report, json_path) ||
                 report_write_csv(command, state.report, segments_path) ||
                 write_customers_csv(&state, customers_path);
    if (!failed && state.html) {
        step_banner(&state, "drawing the HTML report");
        failed = report_render_html(command, json_path, html_dir);
    }
    if (!failed && !state.quiet) {
        report_print_table(stdout, state.report);
        printf("\nkseg run: %zu customers, %zu schemes, written to %s/ (result.h5, report.json, "
               "segments.csv, customers.csv%s) in %.2f s\n",
               state.n, state.n_schemes, state.output_dir, state.html ? ", report/index.html" : "",
               seconds_since(&start));
    }
    free(result_path);
    free(json_path);
    free(segments_path);
    free(customers_path);
    free(html_dir);
    if (failed)
        goto done;
    exit_code = KSEG_EXIT_OK;
done:
    if (exit_code != KSEG_EXIT_OK && state.output_dir)
        remove_created_directories(state.output_dir, created_directories);
    state_destroy(&state);
    return exit_code;
}
