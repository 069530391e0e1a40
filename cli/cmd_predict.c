/* `kseg predict`: assigns the rows of a new input to the nearest centroid of a saved model. The
 * model's column names select the input's columns, so a file with another feature set is refused
 * by name rather than silently misread. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const char *const predict_usage =
    "usage: kseg predict --model RESULT.h5 INPUT.h5[:/path] -o LABELS.h5 [options]\n"
    "\n"
    "Assign every row of INPUT to the nearest centroid of the model written by 'kseg cluster'\n"
    "(ties go to the lowest cluster id). The input's columns are selected by the model's column\n"
    "names. LABELS.h5 gets /labels/cluster [n] int32, /labels/distance [n] float64 (squared\n"
    "distance to the centroid) and /labels/id when the input has ids. On the training data the\n"
    "labels equal the training labels.\n"
    "\n"
    "A model from 'kseg run' (RESULT.h5) also carries the fitted transforms and scaling and the\n"
    "segment names: the input's columns (in original units, e.g. /rfm of 'kseg rfm' or\n"
    "RESULT.h5:/features) are prepared exactly as in training, and LABELS.h5 also gets\n"
    "/labels/segment [n] int32 and /labels/segment_names; the summary counts customers per\n"
    "segment.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     result file of 'kseg cluster' (required)\n"
    "  -o, --output FILE    labels file (required; must differ from INPUT and the model)\n"
    "      --threads T      OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
    "      --dtype TYPE     float32, float64 or native (default native), as for 'kseg cluster';\n"
    "                       use the training run's dtype to reproduce its labels exactly\n"
    "  -q, --quiet          no summary\n"
    "  -h, --help           show this help\n";

/* A 'kseg run' model: the prepare step and the cluster -> segment names. Read when the model has
 * /model/prepare; otherwise prepare stays empty (n_features 0). */
typedef struct pipeline_model {
    kseg_prepare_model prepare;
    int32_t *cluster_segment;
    size_t n_clusters;
    char **segment_names;
    size_t n_segments;
} pipeline_model;

static void pipeline_model_destroy(pipeline_model *model)
{
    kseg_prepare_model_destroy(&model->prepare);
    free(model->cluster_segment);
    kseg_h5_free_strings(model->segment_names, model->n_segments);
}

static int read_pipeline_model(const char *file, size_t d, size_t k, pipeline_model *model,
                               kseg_error *error)
{
    static const char *const parts[] = {"transform", "clip_low", "clip_high", "center", "scale",
                                        "weight"};
    double *vectors[6] = {NULL};
    size_t length = 0;
    int status = 0;
    for (size_t p = 0; p < 6 && !status; p++) {
        char path[64];
        snprintf(path, sizeof path, "/model/prepare/%s", parts[p]);
        status = kseg_h5_read_vector(file, path, d, &vectors[p], &length, error);
    }
    char *scaling = NULL;
    if (!status)
        status = kseg_h5_read_attribute_string(file, "/model/prepare/center", "scaling", &scaling,
                                               error);
    kseg_prepare_model *prepare = &model->prepare;
    if (!status) {
        prepare->n_features = d;
        prepare->transform = malloc(d * sizeof *prepare->transform);
        if (!prepare->transform)
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory reading %s", file);
    }
    if (!status && kseg_scaling_parse(scaling, &prepare->scaling))
        status = kseg_error_set(error, KSEG_EFORMAT, "%s:/model/prepare/center: unknown scaling "
                                "'%s'", file, scaling);
    for (size_t j = 0; !status && j < d; j++) {
        int code = (int)vectors[0][j];
        if (code != KSEG_TRANSFORM_NONE && code != KSEG_TRANSFORM_LOG1P)
            status = kseg_error_set(error, KSEG_EFORMAT, "%s:/model/prepare/transform: unknown "
                                    "code %d at column %zu", file, code, j);
        else
            prepare->transform[j] = (kseg_transform)code;
    }
    if (!status) {
        prepare->clip_low = vectors[1];
        prepare->clip_high = vectors[2];
        prepare->center = vectors[3];
        prepare->scale = vectors[4];
        prepare->weight = vectors[5];
        for (size_t p = 1; p < 6; p++)
            vectors[p] = NULL;
    }
    free(scaling);
    for (size_t p = 0; p < 6; p++)
        free(vectors[p]);
    double *segments = NULL;
    if (!status)
        status = kseg_h5_read_vector(file, "/model/cluster_segment", k, &segments, &length, error);
    if (!status)
        status = kseg_h5_read_strings(file, "/model/segment_names", &model->segment_names,
                                      &model->n_segments, error);
    if (!status && !(model->cluster_segment = malloc(k * sizeof *model->cluster_segment)))
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory reading %s", file);
    for (size_t c = 0; !status && c < k; c++) {
        if (!(segments[c] >= 0 && segments[c] < (double)model->n_segments))
            status = kseg_error_set(error, KSEG_EFORMAT, "%s:/model/cluster_segment: cluster %zu "
                                    "has segment %g, expected 0..%zu", file, c, segments[c],
                                    model->n_segments - 1);
        else
            model->cluster_segment[c] = (int32_t)segments[c];
    }
    model->n_clusters = k;
    free(segments);
    return status;
}

int kseg_cmd_predict(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},   {"output", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 'j'}, {"dtype", required_argument, NULL, 'D'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *command = "predict";
    const char *model_file = NULL, *output = NULL, *dtype = "native";
    int64_t threads = 0;
    int quiet = 0;
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":m:o:qh", long_options, NULL)) != -1) {
        switch (option) {
        case 'm':
            model_file = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'j':
            if (cli_parse_int64(command, "--threads", optarg, 1, 4096, &threads))
                return KSEG_EXIT_USAGE;
            break;
        case 'D':
            dtype = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(predict_usage, stdout);
            return KSEG_EXIT_OK;
        case ':':
            return cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                             argv[optind - 1]);
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' (run 'kseg predict --help')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_failf(command, KSEG_EXIT_USAGE, "expected exactly one INPUT (run 'kseg predict --help')");
    if (!model_file)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --model RESULT.h5");
    if (!output)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -o LABELS.h5");
    kseg_read_options read_options;
    kseg_read_options_defaults(&read_options);
    if (strcmp(dtype, "float32") == 0)
        read_options.type = KSEG_READ_FLOAT32;
    else if (strcmp(dtype, "float64") == 0)
        read_options.type = KSEG_READ_FLOAT64;
    else if (strcmp(dtype, "native") != 0)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "--dtype: expected float32, float64 or native, got '%s'", dtype);

    int exit_code = KSEG_EXIT_FAILURE;
    kseg_error error;
    kseg_error_clear(&error);
    char *input_file = NULL, *input_path = NULL;
    kseg_h5_writer *writer = NULL;
    kseg_table model, table;
    kseg_table_init(&model);
    kseg_table_init(&table);
    int32_t *labels = NULL;
    double *distances = NULL, *feature_mean = NULL, *prepared = NULL;
    char *kernel_name = NULL;
    int32_t *segments = NULL;
    pipeline_model pipeline;
    memset(&pipeline, 0, sizeof pipeline);
    kseg_prepare_model_init(&pipeline.prepare);

    if (kseg_split_location(argv[optind], &input_file, &input_path, &error)) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    if (kseg_same_file(input_file, output) || kseg_same_file(model_file, output)) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                              "output %s is an input file: refusing to overwrite it", output);
        goto done;
    }
    kseg_read_options model_options;
    kseg_read_options_defaults(&model_options);
    model_options.type = KSEG_READ_FLOAT64;
    if (kseg_h5_read_table(model_file, "/model/centroids", &model_options, &model, &error)) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    if (kseg_h5_writer_open(&writer, output, &error)) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    int has_prepare = kseg_h5_read_vector(model_file, "/model/prepare/center", 0, &prepared,
                                          &(size_t){0}, NULL) == 0;
    free(prepared);
    prepared = NULL;
    if (has_prepare) {
        if (read_pipeline_model(model_file, model.matrix.cols, model.matrix.rows, &pipeline,
                                &error)) {
            exit_code = cli_fail(command, &error);
            goto done;
        }
        /* The prepare step works in double, exactly as in training. */
        read_options.type = KSEG_READ_FLOAT64;
    }
    /* A model fitted on unnamed columns carries the reader's positional names (column0, ...):
       selecting those by name would quietly take the first d columns of a wider input, so such
       a model takes all of the input's columns and their number must match. */
    int positional = 1;
    for (size_t j = 0; j < model.matrix.cols && positional; j++) {
        char expected[32];
        snprintf(expected, sizeof expected, "column%zu", j);
        positional = strcmp(model.column_names[j], expected) == 0;
    }
    if (!positional) {
        read_options.columns = (const char *const *)model.column_names;
        read_options.n_columns = model.matrix.cols;
    }
    /* --threads covers the load too: a gzip-compressed input is inflated on the OpenMP threads. */
    if (threads > 0)
        omp_set_num_threads((int)threads);
    if (kseg_h5_read_table(input_file, input_path, &read_options, &table, &error)) {
        /* The hint about the model's columns only where the file itself could be opened. */
        if (strncmp(error.message, "cannot open ", 12) == 0)
            exit_code = cli_fail(command, &error);
        else
            exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                                  "%s (the model %s needs these columns)", error.message,
                                  model_file);
        goto done;
    }
    if (positional && table.matrix.cols != model.matrix.cols) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                              "%s%s%s: has %zu columns, but the model %s has %zu (its columns "
                              "are unnamed, so they are matched by position)",
                              input_file, input_path ? ":" : "", input_path ? input_path : "",
                              table.matrix.cols, model_file, model.matrix.cols);
        goto done;
    }
    size_t n = table.matrix.rows;
    labels = malloc((n ? n : 1) * sizeof *labels);
    distances = malloc((n ? n : 1) * sizeof *distances);
    if (!labels || !distances) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory for %zu rows", n);
        goto done;
    }
    /* Models from kseg cluster carry the fit's centering shift and kernel; older or foreign
       models without them are predicted with the automatic choices. */
    size_t mean_length = 0;
    if (kseg_h5_read_vector(model_file, "/model/feature_mean", model.matrix.cols, &feature_mean,
                            &mean_length, NULL) != 0)
        feature_mean = NULL;
    if (kseg_h5_read_attribute_string(model_file, "/model/centroids", "kernel", &kernel_name,
                                      NULL) != 0)
        kernel_name = NULL;
    kseg_matrix input = table.matrix;
    if (has_prepare) {
        if (!(prepared = malloc((n ? n : 1) * model.matrix.cols * sizeof *prepared))) {
            exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory for %zu rows", n);
            goto done;
        }
        if (n && kseg_prepare_apply(&pipeline.prepare, table.data, n,
                                    (const char *const *)model.column_names, (int32_t)threads,
                                    prepared, &error)) {
            exit_code = cli_fail(command, &error);
            goto done;
        }
        input.data = prepared;
        input.dtype = KSEG_FLOAT64;
    }
    int predicted = kseg_kmeans_predict_with(&input, model.data, model.matrix.rows,
                                             feature_mean, kernel_name, (int32_t)threads, labels,
                                             distances, &error);
    if (predicted == KSEG_ENOTSUP && kernel_name) {
        /* The model was fitted with a kernel this CPU lacks (e.g. AVX-512): the automatic
           kernel gives the same labels except, possibly, on exact near-ties. */
        cli_warnf(command, "kernel '%s' of the model is not available here; using the automatic "
                           "choice", kernel_name);
        kseg_error_clear(&error);
        predicted = kseg_kmeans_predict_with(&input, model.data, model.matrix.rows,
                                             feature_mean, NULL, (int32_t)threads, labels,
                                             distances, &error);
    }
    if (predicted) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    size_t dims[1] = {n};
    size_t chunk = n < 65536 ? n : 65536;
    if (kseg_h5_write_dataset(writer, "/labels/cluster", KSEG_STORE_INT32, 1, dims, labels, chunk,
                              4, &error) ||
        kseg_h5_write_dataset(writer, "/labels/distance", KSEG_STORE_FLOAT64, 1, dims, distances,
                              chunk, 4, &error) ||
        (table.ids && kseg_h5_write_dataset(writer, "/labels/id", KSEG_STORE_INT64, 1, dims,
                                            table.ids, chunk, 4, &error)) ||
        kseg_h5_write_attribute_string(writer, "/labels/cluster", "model", model_file, &error)) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    if (has_prepare) {
        if (!(segments = malloc((n ? n : 1) * sizeof *segments))) {
            exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory for %zu rows", n);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            segments[i] = pipeline.cluster_segment[labels[i]];
        if (kseg_h5_write_dataset(writer, "/labels/segment", KSEG_STORE_INT32, 1, dims, segments,
                                  chunk, 4, &error) ||
            kseg_h5_write_strings(writer, "/labels/segment_names",
                                  (const char *const *)pipeline.segment_names,
                                  pipeline.n_segments, &error)) {
            exit_code = cli_fail(command, &error);
            goto done;
        }
    }
    int status = kseg_h5_writer_commit(writer, &error);
    writer = NULL;
    if (status) {
        exit_code = cli_fail(command, &error);
        goto done;
    }
    if (!quiet) {
        printf("kseg predict: %zu rows assigned to %zu clusters, written to %s\n", n,
               model.matrix.rows, output);
        for (size_t s = 0; has_prepare && s < pipeline.n_segments; s++) {
            size_t members = 0;
            for (size_t i = 0; i < n; i++)
                members += segments[i] == (int32_t)s;
            printf("  %10zu  %5.1f%%  %s\n", members, n ? 100.0 * (double)members / (double)n : 0.0,
                   pipeline.segment_names[s]);
        }
    }
    exit_code = KSEG_EXIT_OK;
done:
    kseg_h5_writer_abort(writer);
    kseg_table_destroy(&model);
    kseg_table_destroy(&table);
    free(labels);
    free(distances);
    free(feature_mean);
    free(prepared);
    free(segments);
    pipeline_model_destroy(&pipeline);
    free(kernel_name);
    free(input_file);
    free(input_path);
    return exit_code;
}
