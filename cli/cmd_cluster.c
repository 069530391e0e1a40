/* `kseg cluster`: reads customer features from HDF5, runs k-means, and writes the model
 * (centroids, statistics, options) and the labels to a result file, atomically. */
#include <getopt.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"

static const char *const cluster_usage =
    "usage: kseg cluster INPUT.h5[:/path] -k K -o RESULT.h5 [options]\n"
    "\n"
    "Cluster the rows of INPUT (a 2-D dataset [n, d], or a group of equal-length 1-D column\n"
    "datasets; default path /customers/features, or the file's only 2-D dataset) with k-means\n"
    "and write RESULT.h5: /model/centroids [k, d] (attributes columns, inertia, n_iter, seed,\n"
    "options, kseg_version), /model/iterations (per-iteration table), /labels/cluster [n] int32\n"
    "and /labels/id when the input has ids. RESULT is written under a temporary name and renamed.\n"
    "\n"
    "options:\n"
    "  -k, --clusters K      number of clusters (required unless --init FILE gives them)\n"
    "  -o, --output FILE     result file (required; must differ from INPUT)\n"
    "      --init METHOD     k-means++ (default; greedy, 2 + floor(ln k) trials), random,\n"
    "                        'k-means||' (alias kmeans-parallel; Bahmani et al., for very large\n"
    "                        n: --init-rounds passes instead of 2k), or FILE.h5:/path with\n"
    "                        initial centers [k, d]\n"
    "      --oversampling L  k-means||: candidates drawn per round, a number > 0 (default 2k)\n"
    "      --init-rounds R   k-means||: sampling rounds, 1 to 1000 (default 5)\n"
    "      --n-init N        initializations, the lowest inertia wins (default: 1 for k-means++,\n"
    "                        k-means|| and given centers, 10 for random)\n"
    "      --max-iter N      maximum iterations per initialization (default 300)\n"
    "      --tol T           stop when the total squared center shift is at most T times the mean\n"
    "                        feature variance (default 1e-4); a run also stops when no label\n"
    "                        changes\n"
    "      --seed S          random seed (default 0); results are identical for any --threads\n"
    "      --threads T       OpenMP threads, also for decompressing a gzip-chunked INPUT\n"
    "                        (default: OMP_NUM_THREADS or all cores)\n"
    "      --columns a,b,c   use only these columns, in this order\n"
    "      --weights F:/p    per-row sample weights (1-D, n values, finite, >= 0, positive sum)\n"
    "      --dtype TYPE      float32, float64 or native (default native: float64 sources stay\n"
    "                        float64, everything else is read as float32)\n"
    "      --kernel NAME     force an assignment kernel (reference, avx2, avx512, avx512-rows,\n"
    "                        avx512-expanded, gemm); default: chosen from the CPU and (k, d)\n"
    "      --algorithm A     lloyd (default), hamerly, elkan, yinyang, auto or minibatch. The\n"
    "                        bound algorithms (hamerly, elkan, yinyang) skip distance\n"
    "                        computations the triangle inequality decides and give bitwise the\n"
    "                        labels, centers and inertia of lloyd with the same --kernel; extra\n"
    "                        memory: hamerly n doubles, elkan n x k floats, yinyang n x k/10\n"
    "                        floats. auto picks from n, d, k, the kernel and memory (README:\n"
    "                        k-means semantics). minibatch: APPROXIMATE mini-batch k-means\n"
    "                        (scikit-learn's MiniBatchKMeans semantics) for the largest data;\n"
    "                        --max-iter counts epochs, --tol is not used, a final pass labels\n"
    "                        every row\n"
    "      --bounds-memory B the most extra memory the bound algorithms may take, in bytes or\n"
    "                        with K, M, G, T (e.g. 512M); a requested one that needs more fails,\n"
    "                        auto takes a cheaper one (default: no limit but available memory)\n"
    "      --memory-limit B  bytes the rows and the fit's workspace may take (K, M, G, T\n"
    "                        suffixes, powers of 1024; default: no limit). When the rows do not\n"
    "                        fit beside the workspace they are not loaded: a contiguous\n"
    "                        little-endian float dataset of the --dtype is mapped from INPUT,\n"
    "                        anything else is converted into an unlinked scratch file and\n"
    "                        mapped; every pass then reads them through the page cache, with\n"
    "                        bitwise the in-memory result. The workspace (labels, ids, weights,\n"
    "                        bounds) must fit, or the run is refused. Not bounded: the page\n"
    "                        cache, HDF5's and the threads' small buffers\n"
    "      --scratch-dir DIR where rows that cannot be mapped are staged (default $TMPDIR, else\n"
    "                        the output's directory); needs their size in free space\n"
    "      --batch-size N    minibatch: rows per batch (default 1024)\n"
    "      --max-no-improvement N  minibatch: stop after N batches without a new minimum of\n"
    "                        the smoothed batch inertia; 0 = never (default 10)\n"
    "      --checkpoint FILE where SIGUSR1 or SIGTERM writes a checkpoint (default:\n"
    "                        RESULT.checkpoint.h5 beside -o). On either signal the fit stops at\n"
    "                        the next iteration boundary, writes FILE atomically, writes no\n"
    "                        RESULT and exits with status 85\n"
    "      --resume FILE     continue from a checkpoint; the result is bitwise that of an\n"
    "                        uninterrupted run. Give the same INPUT and options: a checkpoint\n"
    "                        from other data or options is refused (exit 1) naming the first\n"
    "                        difference. FILE is left in place after the run\n"
    "      --log-json FILE   append one JSON object per iteration and a final summary\n"
    "  -q, --quiet           no progress lines and no summary\n"
    "  -h, --help            show this help\n"
    "\n"
    "Distributed: 'mpirun -n R kseg cluster ...' with the MPI build (cmake --preset mpi) splits\n"
    "the rows between the ranks, each reading its own with MPI-IO; every rank must get the same\n"
    "arguments, and the result is bitwise the one of a single process (README: Distributed runs).\n";

typedef struct progress_state {
    FILE *log;
    int show;
} progress_state;

static int report_progress(const kseg_progress_event *event, void *user_data)
{
    progress_state *state = user_data;
    if (event->stats) {
        const kseg_iteration_stats *s = event->stats;
        if (state->show)
            fprintf(stderr,
                    "run %d/%d  iter %4d  objective %.9g  shift %.3e  changed %lld  repairs %lld  "
                    "distances %lld (skipped %lld)  %.3f s\n",
                    event->init_run + 1, event->n_init, s->iteration, s->objective,
                    s->center_shift, (long long)s->changed_labels, (long long)s->empty_repairs,
                    (long long)s->distances_computed, (long long)s->distances_skipped,
                    s->seconds);
        if (state->log)
            fprintf(state->log,
                    "{\"event\":\"iteration\",\"run\":%d,\"iteration\":%d,\"objective\":%.17g,"
                    "\"center_shift\":%.17g,\"changed_labels\":%lld,\"empty_repairs\":%lld,"
                    "\"distances_computed\":%lld,\"distances_skipped\":%lld,\"seconds\":%.9f}\n",
                    event->init_run, s->iteration, s->objective, s->center_shift,
                    (long long)s->changed_labels, (long long)s->empty_repairs,
                    (long long)s->distances_computed, (long long)s->distances_skipped,
                    s->seconds);
    } else if (state->log) {
        fprintf(state->log, "{\"event\":\"run\",\"run\":%d,\"inertia\":%.17g}\n", event->init_run,
                event->run_inertia);
    }
    /* Whole lines as they happen: a job script (or a test) follows the log to decide when to
       signal, and a killed job keeps the iterations it logged. */
    if (state->log)
        fflush(state->log);
    return 0;
}

static const char *convergence_name(kseg_convergence convergence)
{
    switch (convergence) {
    case KSEG_CONVERGED_STRICT:
        return "strict (no label changed)";
    case KSEG_CONVERGED_TOL:
        return "tolerance";
    case KSEG_CONVERGED_NO_IMPROVEMENT:
        return "no improvement (mini-batch)";
    default:
        return "max_iter reached";
    }
}

/* Set by SIGUSR1 (from the command's start until the fit ends) and SIGTERM (during the fit); the
 * engine reads it at each run start and iteration boundary. */
static volatile sig_atomic_t stop_requested;

static void request_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

/* Routes SIGUSR1 and SIGTERM to the stop flag (saving the previous actions), or restores them.
 * A second signal while the checkpoint is written only sets the flag again, so it cannot cut
 * the file short; SIGINT and SIGHUP keep the cleanup-and-die handlers. */
static void route_stop_signals(int install, struct sigaction saved[2])
{
    const int signals[2] = {SIGUSR1, SIGTERM};
    for (int i = 0; i < 2; i++) {
        if (!install) {
            sigaction(signals[i], &saved[i], NULL);
            continue;
        }
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = request_stop;
        sigemptyset(&action.sa_mask);
        action.sa_flags = SA_RESTART;
        sigaction(signals[i], &action, &saved[i]);
    }
}

static void format_options(char *buffer, size_t size, int64_t k,
                           const kseg_kmeans_options *options, int32_t n_init, int weighted,
                           kseg_dtype dtype)
{
    snprintf(buffer, size,
             "{\"n_clusters\":%lld,\"init\":\"%s\",\"n_init\":%d,\"max_iter\":%d,\"tol\":%.17g,"
             "\"seed\":%llu,\"weighted\":%s,\"dtype\":\"%s\",\"kernel\":\"%s\","
             "\"algorithm\":\"%s\",\"oversampling\":%.17g,\"init_rounds\":%d,"
             "\"batch_size\":%lld,\"max_no_improvement\":%d}",
             (long long)k, kseg_init_method_name(options->init), n_init, options->max_iter,
             options->tol, (unsigned long long)options->seed, weighted ? "true" : "false",
             dtype == KSEG_FLOAT32 ? "float32" : "float64",
             options->kernel ? options->kernel : "auto",
             kseg_kmeans_algorithm_name(options->algorithm), options->oversampling,
             options->init_rounds, (long long)options->batch_size, options->max_no_improvement);
}

/* Writes the result file; everything goes to a temporary file that only commit renames. */
/* n_global is the rows of every rank together; this rank's labels are rows [row_offset,
 * row_offset + result->n_rows). A distributed writer takes the model from rank 0 and each
 * rank's labels from that rank (kseg_h5_writer_open_distributed). */
static int write_result(kseg_h5_writer *writer, const kseg_kmeans_result *result,
                        const kseg_table *table, const kseg_kmeans_options *options,
                        const char *options_json, size_t n_global, size_t row_offset,
                        int distributed, kseg_error *error)
{
    size_t k = result->n_clusters, d = result->n_features, n = n_global;
    size_t centroid_dims[2] = {k, d};
    int status;
    if ((status = kseg_h5_write_dataset(writer, "/model/centroids", KSEG_STORE_FLOAT64, 2,
                                        centroid_dims, result->centroids, 0, 0, error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/model/centroids", "columns",
                                                  (const char *const *)table->column_names, d,
                                                  error)) ||
        (status = kseg_h5_write_attribute_double(writer, "/model/centroids", "inertia",
                                                 result->inertia, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/model/centroids", "n_iter",
                                                result->n_iter, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/model/centroids", "seed",
                                                (int64_t)options->seed, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "options",
                                                 options_json, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "kseg_version",
                                                 kseg_version_string(), error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "convergence",
                                                 convergence_name(result->convergence), error)) ||
        (status = kseg_h5_write_attribute_double(writer, "/model/centroids", "tolerance",
                                                 result->tolerance, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "kernel",
                                                 result->kernel, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/model/centroids", "algorithm",
                                                 result->algorithm, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/model/centroids", "bounds_memory",
                                                (int64_t)result->bounds_memory, error)))
        return status;
    /* The data mean the kernels centered on: predict reuses it (and the kernel) so that training
       rows get exactly the training labels. */
    size_t mean_dims[1] = {d};
    if ((status = kseg_h5_write_dataset(writer, "/model/feature_mean", KSEG_STORE_FLOAT64, 1,
                                        mean_dims, result->feature_mean, 0, 0, error)))
        return status;

    /* The per-iteration table as a group of equal-length columns (pandas/h5py friendly). */
    size_t iterations = (size_t)result->n_iter;
    size_t dims[1] = {iterations};
    int32_t *index = malloc((iterations ? iterations : 1) * sizeof *index);
    double *values = malloc((iterations ? iterations : 1) * 4 * sizeof *values);
    int64_t *counts = malloc((iterations ? iterations : 1) * 4 * sizeof *counts);
    if (!index || !values || !counts) {
        free(index);
        free(values);
        free(counts);
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory writing iterations");
    }
    for (size_t i = 0; i < iterations; i++) {
        const kseg_iteration_stats *s = &result->iterations[i];
        index[i] = s->iteration;
        values[i] = s->objective;
        values[iterations + i] = s->center_shift;
        values[2 * iterations + i] = s->seconds;
        counts[i] = s->changed_labels;
        counts[iterations + i] = s->empty_repairs;
        counts[2 * iterations + i] = s->distances_computed;
        counts[3 * iterations + i] = s->distances_skipped;
    }
    status = kseg_h5_write_dataset(writer, "/model/iterations/iteration", KSEG_STORE_INT32, 1,
                                   dims, index, 0, 0, error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/objective", KSEG_STORE_FLOAT64,
                                       1, dims, values, 0, 0, error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/center_shift",
                                       KSEG_STORE_FLOAT64, 1, dims, values + iterations, 0, 0,
                                       error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/seconds", KSEG_STORE_FLOAT64, 1,
                                       dims, values + 2 * iterations, 0, 0, error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/changed_labels",
                                       KSEG_STORE_INT64, 1, dims, counts, 0, 0, error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/empty_repairs",
                                       KSEG_STORE_INT64, 1, dims, counts + iterations, 0, 0,
                                       error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/distances_computed",
                                       KSEG_STORE_INT64, 1, dims, counts + 2 * iterations, 0, 0,
                                       error);
    if (!status)
        status = kseg_h5_write_dataset(writer, "/model/iterations/distances_skipped",
                                       KSEG_STORE_INT64, 1, dims, counts + 3 * iterations, 0, 0,
                                       error);
    free(index);
    free(values);
    free(counts);
    if (status)
        return status;

    size_t label_dims[1] = {n};
    size_t chunk = n < 65536 ? n : 65536;
    /* One process writes the labels with the dataset (the writer compresses the chunks on all
       threads then); ranks create the dataset with the global shape and write their rows. */
    if (!distributed) {
        if ((status = kseg_h5_write_dataset(writer, "/labels/cluster", KSEG_STORE_INT32, 1,
                                            label_dims, result->labels, chunk, 4, error)))
            return status;
        if (table->ids &&
            (status = kseg_h5_write_dataset(writer, "/labels/id", KSEG_STORE_INT64, 1, label_dims,
                                            table->ids, chunk, 4, error)))
            return status;
        return 0;
    }
    if ((status = kseg_h5_write_dataset(writer, "/labels/cluster", KSEG_STORE_INT32, 1,
                                        label_dims, NULL, chunk, 4, error)) ||
        (status = kseg_h5_write_rows(writer, "/labels/cluster", row_offset, result->n_rows,
                                     result->labels, error)))
        return status;
    if (table->ids &&
        ((status = kseg_h5_write_dataset(writer, "/labels/id", KSEG_STORE_INT64, 1, label_dims,
                                         NULL, chunk, 4, error)) ||
         (status = kseg_h5_write_rows(writer, "/labels/id", row_offset, result->n_rows,
                                      table->ids, error))))
        return status;
    return 0;
}

/* Prints one line per cluster: size, share of rows, and the centroid in the input's units, so the
 * clusters can be read at a glance. Wide inputs show their first columns only. */
static void print_profile(const kseg_kmeans_result *result, const kseg_table *table,
                          const int64_t *sizes, size_t n)
{
    enum { shown_columns_max = 9 };
    size_t k = result->n_clusters, d = result->n_features;
    size_t shown = d < shown_columns_max ? d : shown_columns_max;
    printf("\n  %7s %10s %6s", "cluster", "rows", "share");
    for (size_t j = 0; j < shown; j++)
        printf(" %12.12s", table->column_names[j]);
    printf("%s\n", shown < d ? "  ..." : "");
    for (size_t c = 0; c < k; c++) {
        printf("  %7zu %10lld %5.1f%%", c, (long long)sizes[c],
               100.0 * (double)sizes[c] / (double)n);
        for (size_t j = 0; j < shown; j++)
            printf(" %12.4g", result->centroids[c * d + j]);
        printf("\n");
    }
    printf("\n");
}

/* Reads the initial centers [k, d] from "FILE.h5:/path". */
static int read_init_centers(const char *location, size_t d, int64_t *k, double **centers,
                             kseg_error *error)
{
    char *file = NULL, *path = NULL;
    kseg_table init;
    kseg_table_init(&init);
    int status = kseg_split_location(location, &file, &path, error);
    if (status)
        return status;
    kseg_read_options read_options;
    kseg_read_options_defaults(&read_options);
    read_options.type = KSEG_READ_FLOAT64;
    if ((status = kseg_h5_read_table(file, path, &read_options, &init, error)))
        goto done;
    if (init.matrix.cols != d) {
        status = kseg_error_set(error, KSEG_ESHAPE,
                                "%s: initial centers have %zu columns, the data has %zu", location,
                                init.matrix.cols, d);
        goto done;
    }
    if (*k > 0 && (size_t)*k != init.matrix.rows) {
        status = kseg_error_set(error, KSEG_ESHAPE,
                                "%s: %zu initial centers given but -k is %lld", location,
                                init.matrix.rows, (long long)*k);
        goto done;
    }
    *k = (int64_t)init.matrix.rows;
    *centers = malloc(init.matrix.rows * d * sizeof **centers);
    if (!*centers) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(*centers, init.data, init.matrix.rows * d * sizeof **centers);
done:
    kseg_table_destroy(&init);
    free(file);
    free(path);
    return status;
}

/* --memory-limit: where rows that cannot be mapped are staged when --scratch-dir is not given:
   $TMPDIR, else the output's directory (a static buffer). */
static const char *rows_scratch_dir(const char *scratch_dir, const char *output)
{
    static char directory[4096];
    const char *tmpdir = getenv("TMPDIR");
    if (scratch_dir)
        return scratch_dir;
    if (tmpdir && *tmpdir)
        return tmpdir;
    const char *slash = strrchr(output, '/');
    if (!slash)
        return ".";
    snprintf(directory, sizeof directory, "%.*s", slash == output ? 1 : (int)(slash - output),
             output);
    return directory;
}

/* Memory the fit holds besides the rows: labels (two sets with several initializations), ids,
   weights and the bound algorithm's bounds (bounds_memory: planned, or an upper bound). */
static uint64_t fit_workspace(uint64_t n, int has_ids, const kseg_kmeans_options *options,
                              int weighted, uint64_t bounds_memory)
{
    int several = options->n_init > 1 || (options->n_init == 0 && options->init == KSEG_INIT_RANDOM);
    uint64_t per_row = (several ? 8 : 4) + (has_ids ? 8 : 0) + (weighted ? 8 : 0);
    return kseg_memory_add(kseg_memory_multiply(n, per_row), bounds_memory);
}

/* Reads the rows, or with a memory limit they do not fit in beside the fit's workspace, maps
   (or stages) them. The workspace estimate counts the bounds of the requested algorithm (AUTO as
   the largest, Elkan) when k is known; the exact check follows once the fit is planned. */
static int read_rows(const char *file, const char *path, const kseg_read_options *read_options,
                     uint64_t memory_limit, const char *scratch_dir, const char *output,
                     const kseg_kmeans_options *options, int64_t k, int weighted,
                     kseg_table *table, kseg_map_info *info, uint64_t *workspace,
                     kseg_error *error)
{
    memset(info, 0, sizeof *info);
    info->mode = KSEG_ROWS_MEMORY;
    if (!memory_limit)
        return kseg_h5_read_table(file, path, read_options, table, error);
    kseg_matrix shape;
    int has_ids = 0;
    /* The shape comes from a probe of one row that every rank makes on its own (with comm set,
       the reader would read this rank's whole share). */
    kseg_read_options shape_options = *read_options;
    shape_options.comm = NULL;
    int status = kseg_h5_table_shape(file, path, &shape_options, &shape, &has_ids, error);
    /* Every rank takes the same path below (a collective read, or each its own mapping), so
       they agree first on whether all could look at the file. */
    if (cli_any_failed(status != 0))
        return status ? status : kseg_error_set(error, KSEG_EIO, "another rank failed reading %s",
                                                file);
    /* On several ranks each rank's share is what must fit, and what is mapped: the reader's own
       split (kseg_comm_split_rows over the file's rows), mapped independently. The decision
       between reading and mapping is taken for the largest share, so that it is the same on
       every rank. A rank without rows maps the first row, for the names and the type, and
       then holds none of it. */
    kseg_read_options map_options = *read_options;
    size_t local_rows = shape.rows, largest_rows = shape.rows;
    if (read_options->comm) {
        const kseg_comm *comm = read_options->comm;
        largest_rows = 0;
        for (int rank = 0; rank < comm->size; rank++) {
            size_t offset, count;
            kseg_comm_split_rows(shape.rows, comm->size, rank, &offset, &count);
            if (count > largest_rows)
                largest_rows = count;
            if (rank == comm->rank) {
                local_rows = count;
                map_options.row_offset = count ? offset : 0;
                map_options.row_count = count ? count : 1;
            }
        }
        map_options.comm = NULL;
    }
    uint64_t bounds = 0, largest_bounds = 0;
    if (k > 0 && options->algorithm != KSEG_ALGORITHM_LLOYD &&
        options->algorithm != KSEG_ALGORITHM_MINIBATCH) {
        kseg_kmeans_algorithm largest = options->algorithm == KSEG_ALGORITHM_AUTO
                                            ? KSEG_ALGORITHM_ELKAN
                                            : options->algorithm;
        bounds = kseg_kmeans_algorithm_memory(largest, local_rows, (size_t)k, shape.cols);
        largest_bounds = kseg_kmeans_algorithm_memory(largest, largest_rows, (size_t)k, shape.cols);
    }
    *workspace = fit_workspace(local_rows, has_ids, options, weighted, bounds);
    uint64_t largest_workspace = fit_workspace(largest_rows, has_ids, options, weighted,
                                               largest_bounds);
    size_t element = kseg_dtype_size(shape.dtype);
    info->bytes = kseg_memory_multiply(kseg_memory_multiply(local_rows, shape.cols), element);
    uint64_t largest_bytes =
        kseg_memory_multiply(kseg_memory_multiply(largest_rows, shape.cols), element);
    if (kseg_memory_add(largest_bytes, largest_workspace) <= memory_limit)
        return kseg_h5_read_table(file, path, read_options, table, error);
    if (largest_workspace > memory_limit) {
        char workspace_size[32], limit_size[32];
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "--memory-limit %s is less than the fit's workspace of %s (labels, "
                              "ids, weights and bounds, besides the rows)",
                              kseg_memory_format(memory_limit, limit_size, sizeof limit_size),
                              kseg_memory_format(largest_workspace, workspace_size,
                                                 sizeof workspace_size));
    }
    /* Mapped rows are not scanned while reading: kseg_kmeans_fit checks every value for NaN and
       infinity before it starts, and a second scan would be one more pass through the file. */
    map_options.check_finite = 0;
    uint64_t read_bytes = memory_limit / 4 < ((uint64_t)64 << 20) ? memory_limit / 4
                                                                  : (uint64_t)64 << 20;
    status = kseg_h5_map_table(file, path, &map_options, rows_scratch_dir(scratch_dir, output),
                               read_bytes ? read_bytes : 1, table, info, error);
    if (!status && local_rows == 0) {
        table->matrix.rows = 0;
        info->bytes = 0;
    }
    return status;
}

/* The agreement that ends each step of a run: every rank passes its outcome (a KSEG_EXIT_*
 * code, 0 = fine) and all learn whether any rank failed. Then *exit_code is this rank's code,
 * or KSEG_EXIT_FAILURE on a rank that was fine itself, and the caller stops. In one process it
 * is simply whether step failed. */
static int cluster_stop(int step, int *exit_code)
{
    if (!cli_any_failed(step != KSEG_EXIT_OK))
        return 0;
    *exit_code = step != KSEG_EXIT_OK ? step : KSEG_EXIT_FAILURE;
    return 1;
}

int kseg_cmd_cluster(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"clusters", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
        {"init", required_argument, NULL, 'I'},     {"n-init", required_argument, NULL, 'N'},
        {"max-iter", required_argument, NULL, 'M'}, {"tol", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 'S'},     {"threads", required_argument, NULL, 'j'},
        {"columns", required_argument, NULL, 'c'},  {"weights", required_argument, NULL, 'w'},
        {"dtype", required_argument, NULL, 'D'},    {"kernel", required_argument, NULL, 'K'},
        {"log-json", required_argument, NULL, 'L'}, {"quiet", no_argument, NULL, 'q'},
        {"algorithm", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'},
        {"oversampling", required_argument, NULL, 'O'}, {"init-rounds", required_argument, NULL, 'R'},
        {"batch-size", required_argument, NULL, 'B'},
        {"max-no-improvement", required_argument, NULL, 'P'},
        {"bounds-memory", required_argument, NULL, 'b'},
        {"checkpoint", required_argument, NULL, 'C'}, {"resume", required_argument, NULL, 'Z'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"scratch-dir", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0}};
    const char *command = "cluster";
    kseg_kmeans_options options;
    kseg_kmeans_options_defaults(&options);
    int64_t k = 0, value;
    const char *output = NULL, *init = NULL, *columns = NULL, *weights_location = NULL;
    const char *log_path = NULL, *dtype = "native", *scratch_dir = NULL;
    const char *checkpoint_option = NULL, *resume_path = NULL;
    uint64_t memory_limit = 0;
    int quiet = 0;

    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":k:o:qh", long_options, NULL)) != -1) {
        switch (option) {
        case 'k':
            if (cli_parse_int64(command, "-k", optarg, 1, INT32_MAX, &k))
                return KSEG_EXIT_USAGE;
            break;
        case 'o':
            output = optarg;
            break;
        case 'I':
            init = optarg;
            break;
        case 'N':
            if (cli_parse_int64(command, "--n-init", optarg, 1, 100000, &value))
                return KSEG_EXIT_USAGE;
            options.n_init = (int32_t)value;
            break;
        case 'M':
            if (cli_parse_int64(command, "--max-iter", optarg, 1, INT32_MAX, &value))
                return KSEG_EXIT_USAGE;
            options.max_iter = (int32_t)value;
            break;
        case 'T':
            if (cli_parse_double(command, "--tol", optarg, 0.0, 1e300, &options.tol))
                return KSEG_EXIT_USAGE;
            break;
        case 'S':
            if (cli_parse_uint64(command, "--seed", optarg, &options.seed))
                return KSEG_EXIT_USAGE;
            break;
        case 'j':
            if (cli_parse_int64(command, "--threads", optarg, 1, 4096, &value))
                return KSEG_EXIT_USAGE;
            options.n_threads = (int32_t)value;
            break;
        case 'c':
            columns = optarg;
            break;
        case 'w':
            weights_location = optarg;
            break;
        case 'D':
            dtype = optarg;
            break;
        case 'K':
            options.kernel = optarg;
            break;
        case 'L':
            log_path = optarg;
            break;
        case 'A':
            if (kseg_kmeans_algorithm_parse(optarg, &options.algorithm))
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--algorithm: expected lloyd, hamerly, elkan, yinyang, auto or "
                                 "minibatch, got '%s'", optarg);
            break;
        case 'O':
            if (cli_parse_double(command, "--oversampling", optarg, 0.0, 1e300,
                                 &options.oversampling))
                return KSEG_EXIT_USAGE;
            if (options.oversampling == 0) /* 0 means 2k in the options: refuse it here */
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--oversampling: expected a number > 0 (candidates drawn per "
                                 "round), got '%s'", optarg);
            break;
        case 'R':
            if (cli_parse_int64(command, "--init-rounds", optarg, 1, 1000, &value))
                return KSEG_EXIT_USAGE;
            options.init_rounds = (int32_t)value;
            break;
        case 'B':
            if (cli_parse_int64(command, "--batch-size", optarg, 1, INT64_MAX, &value))
                return KSEG_EXIT_USAGE;
            options.batch_size = value;
            break;
        case 'P':
            if (cli_parse_int64(command, "--max-no-improvement", optarg, 0, INT32_MAX, &value))
                return KSEG_EXIT_USAGE;
            options.max_no_improvement = (int32_t)value;
            break;
        case 'b':
            /* 0 would mean "no limit" in the options: refused, as it reads like "none". */
            if (kseg_memory_parse_size(optarg, &options.bounds_memory_limit) ||
                options.bounds_memory_limit == 0)
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--bounds-memory: expected a size of at least 1 byte, optionally "
                                 "with K, M, G or T (e.g. 512M), got '%s'", optarg);
            break;
        case 'C':
            checkpoint_option = optarg;
            break;
        case 'Z':
            resume_path = optarg;
            break;
        case 'm':
            if (kseg_memory_parse_size(optarg, &memory_limit) || memory_limit == 0)
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--memory-limit: expected a size of at least 1 byte, optionally "
                                 "with K, M, G or T (e.g. 256M), got '%s'", optarg);
            break;
        case 's':
            scratch_dir = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(cluster_usage, stdout);
            return KSEG_EXIT_OK;
        case ':':
            return cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                             argv[optind - 1]);
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' (run 'kseg cluster --help')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         optind >= argc ? "missing INPUT (run 'kseg cluster --help')"
                                        : "expected one INPUT, got extra argument '%s'",
                         argv[optind >= argc ? 0 : argc - 1]);
    if (!output)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -o RESULT.h5");
    if (checkpoint_option && (!*checkpoint_option || strcmp(checkpoint_option, output) == 0))
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "--checkpoint: expected a file other than -o RESULT, got '%s'",
                         checkpoint_option);
    if (resume_path && !*resume_path)
        return cli_failf(command, KSEG_EXIT_USAGE, "--resume: expected a checkpoint file");
    if (k == 0 && !(init && strchr(init, ':')))
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -k K (number of clusters)");
    if (scratch_dir && !memory_limit)
        return cli_failf(command, KSEG_EXIT_USAGE, "--scratch-dir needs --memory-limit");

    kseg_read_options read_options;
    kseg_read_options_defaults(&read_options);
    if (strcmp(dtype, "float32") == 0)
        read_options.type = KSEG_READ_FLOAT32;
    else if (strcmp(dtype, "float64") == 0)
        read_options.type = KSEG_READ_FLOAT64;
    else if (strcmp(dtype, "native") != 0)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "--dtype: expected float32, float64 or native, got '%s'", dtype);
    if (init) {
        if (strstr(init, ":/"))
            options.init = KSEG_INIT_GIVEN;
        else if (kseg_init_method_parse(init, &options.init))
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "--init: expected k-means++, random, k-means|| (or kmeans-parallel) "
                             "or FILE.h5:/path, got '%s'",
                             init);
    }

    int exit_code = KSEG_EXIT_FAILURE, step = KSEG_EXIT_OK;
    kseg_error error;
    kseg_error_clear(&error);
    char *input_file = NULL, *input_path = NULL, **column_list = NULL;
    size_t column_count = 0;
    double *init_centers = NULL, *weights = NULL;
    int64_t *cluster_sizes = NULL;
    FILE *log = NULL;
    kseg_h5_writer *writer = NULL;
    kseg_table table;
    kseg_table_init(&table);
    kseg_kmeans_result result;
    kseg_kmeans_result_init(&result);
    kseg_kmeans_checkpoint *resume = NULL;
    char *checkpoint_path = NULL;
    struct sigaction saved_actions[2], saved_usr1;
    int routed = 0;
    /* SIGUSR1 (what a batch system sends before the time limit) is a stop request from the
       start: one that arrives while the rows load is seen by the fit before its first run,
       which then checkpoints at once. Its default action would kill the job with nothing saved.
       After the fit it is ignored: the result is about to be written anyway. */
    stop_requested = 0;
    struct sigaction usr1_action;
    memset(&usr1_action, 0, sizeof usr1_action);
    usr1_action.sa_handler = request_stop;
    sigemptyset(&usr1_action.sa_mask);
    usr1_action.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &usr1_action, &saved_usr1);
    kseg_map_info rows_info;
    memset(&rows_info, 0, sizeof rows_info);
    uint64_t rows_workspace = 0;
    /* A distributed run (mpirun with the MPI build, more than one rank): every rank reads and
       clusters its own rows and all write the one result file together. ranks is the
       communicator of the reads (its row split is the reader's); rows the one of the fit. */
    const int distributed = cli_size() > 1, printer = cli_rank() == 0;
    kseg_comm ranks, rows;
    size_t no_rows;
    cli_comm_for_rows(&ranks, 0, &no_rows);

    if (checkpoint_option) {
        checkpoint_path = strdup(checkpoint_option);
    } else if ((checkpoint_path = malloc(strlen(output) + sizeof ".checkpoint.h5"))) {
        /* RESULT.h5 -> RESULT.checkpoint.h5; a name without .h5 gets the suffix appended. */
        strcpy(checkpoint_path, output);
        size_t length = strlen(checkpoint_path);
        if (length > 3 && strcmp(checkpoint_path + length - 3, ".h5") == 0)
            checkpoint_path[length - 3] = '\0';
        strcat(checkpoint_path, ".checkpoint.h5");
    }
    if (!checkpoint_path)
        step = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
    /* A node-local scratch directory may exist on some nodes only: a step the ranks agree on. */
    struct stat scratch_status;
    if (!step && scratch_dir &&
        (stat(scratch_dir, &scratch_status) != 0 || !S_ISDIR(scratch_status.st_mode)))
        step = cli_failf(command, KSEG_EXIT_FAILURE, "--scratch-dir %s: not a directory",
                         scratch_dir);
    if (!step && kseg_split_location(argv[optind], &input_file, &input_path, &error))
        step = cli_fail(command, &error);
    if (!step && kseg_same_file(input_file, checkpoint_path))
        step = cli_failf(command, KSEG_EXIT_FAILURE,
                         "checkpoint %s is the input file: refusing to overwrite the input",
                         checkpoint_path);
    /* A checkpoint that cannot be read fails before any data is loaded. */
    if (!step && resume_path && kseg_checkpoint_read(resume_path, &resume, NULL, NULL, &error))
        step = cli_fail(command, &error);
    options.resume = resume;
    if (!step && kseg_same_file(input_file, output))
        step = cli_failf(command, KSEG_EXIT_FAILURE,
                         "output %s is the input file: refusing to overwrite the input", output);
    /* The weights and initial centers are inputs too: never replace them with the result. */
    const char *other_inputs[2] = {weights_location,
                                   options.init == KSEG_INIT_GIVEN ? init : NULL};
    for (int i = 0; i < 2 && !step; i++) {
        char *other_file = NULL, *other_path = NULL;
        if (!other_inputs[i])
            continue;
        if (kseg_split_location(other_inputs[i], &other_file, &other_path, &error)) {
            step = cli_fail(command, &error);
            break;
        }
        int same = kseg_same_file(other_file, output);
        free(other_file);
        free(other_path);
        if (same)
            step = cli_failf(command, KSEG_EXIT_FAILURE,
                             "output %s is the %s file: refusing to overwrite an input", output,
                             i == 0 ? "--weights" : "--init");
    }
    if (!step && columns) {
        if (cli_split_list(command, "--columns", columns, &column_list, &column_count))
            step = KSEG_EXIT_USAGE;
        read_options.columns = (const char *const *)column_list;
        read_options.n_columns = column_count;
    }
    /* Every step below ends where all ranks agree whether any of them failed (the one that
       did has printed why): no rank may go on into a collective call the others never make. */
    if (cluster_stop(step, &exit_code))
        goto done;
    /* Open the output first: an unwritable destination fails before any expensive work. */
#ifdef KSEG_WITH_MPI
    if (distributed ? kseg_h5_writer_open_distributed(&writer, output, &ranks, &error)
                    : kseg_h5_writer_open(&writer, output, &error))
#else
    if (kseg_h5_writer_open(&writer, output, &error))
#endif
        step = cli_fail(command, &error);
    if (cluster_stop(step, &exit_code))
        goto done;
    /* --threads covers the load too: a gzip-compressed input is inflated on the OpenMP threads. */
    if (options.n_threads > 0)
        omp_set_num_threads(options.n_threads);
    double started = omp_get_wtime();
    /* Each rank reads only its rows, collectively through MPI-IO (kseg_read_options.comm);
       with --memory-limit, rows that do not fit are mapped or staged instead (each rank its
       own share). */
    read_options.comm = distributed ? &ranks : NULL;
    if (read_rows(input_file, input_path, &read_options, memory_limit, scratch_dir, output,
                  &options, k, weights_location != NULL, &table, &rows_info, &rows_workspace,
                  &error))
        step = cli_fail(command, &error);
    if (cluster_stop(step, &exit_code))
        goto done;
    if (printer && rows_info.mode != KSEG_ROWS_MEMORY && !quiet) {
        char rows_size[32], limit_size[32], workspace_size[32];
        printf("kseg cluster: rows: %s (besides %s of workspace) exceed --memory-limit %s; %s "
               "%s%s%s (%s)%s\n",
               kseg_memory_format(rows_info.bytes, rows_size, sizeof rows_size),
               kseg_memory_format(rows_workspace, workspace_size, sizeof workspace_size),
               kseg_memory_format(memory_limit, limit_size, sizeof limit_size),
               rows_info.mode == KSEG_ROWS_MAPPED ? "mapped from" : "staged to",
               rows_info.mode == KSEG_ROWS_MAPPED ? input_file : rows_scratch_dir(scratch_dir, output),
               rows_info.mode == KSEG_ROWS_MAPPED && input_path ? ":" : "",
               rows_info.mode == KSEG_ROWS_MAPPED && input_path ? input_path : "",
               rows_info.reason, distributed ? " (rank 0's share)" : "");
        fflush(stdout);
    }
    double loaded = omp_get_wtime();
    size_t n = table.total_rows, d = table.matrix.cols, local_rows;
    cli_comm_for_rows(&rows, n, &local_rows);
    if (distributed)
        options.comm = &rows;
    if (options.init == KSEG_INIT_GIVEN) {
        if (read_init_centers(init, d, &k, &init_centers, &error))
            step = cli_fail(command, &error);
        options.init_centers = init_centers;
    }
    if (cluster_stop(step, &exit_code))
        goto done;
    options.n_clusters = k;
    if (weights_location) {
        char *weights_file = NULL, *weights_path = NULL;
        size_t length;
        int status = kseg_split_location(weights_location, &weights_file, &weights_path, &error);
        if (!status && !weights_path)
            status = kseg_error_set(&error, KSEG_EINVAL,
                                    "--weights: expected FILE.h5:/path, got '%s'",
                                    weights_location);
        /* Every rank knows whether the location is valid before the collective read. */
        if (cli_any_failed(status != 0)) {
            if (status)
                step = cli_fail(command, &error);
        } else {
            status = distributed ? kseg_h5_read_vector_split(weights_file, weights_path, n,
                                                             &ranks, &weights, &length, &error)
                                 : kseg_h5_read_vector(weights_file, weights_path, n, &weights,
                                                       &length, &error);
            if (status)
                step = cli_fail(command, &error);
        }
        free(weights_file);
        free(weights_path);
        options.sample_weight = weights;
    }
    if (cluster_stop(step, &exit_code))
        goto done;
    /* Only rank 0 logs and shows progress: the statistics are global, alike on every rank. */
    if (printer && log_path && !(log = fopen(log_path, "a")))
        step = cli_failf(command, KSEG_EXIT_FAILURE, "cannot open log file %s for appending",
                         log_path);
    if (cluster_stop(step, &exit_code))
        goto done;
    progress_state progress = {log, printer && !quiet && cli_stderr_is_terminal()};
    if (progress.log || progress.show) {
        options.progress = report_progress;
        options.progress_data = &progress;
    }
    /* The bound algorithms' extra memory is stated before the fit starts. On several ranks the
       choice is collective (engine/kmeans.c), so every rank runs the same algorithm. */
    kseg_kmeans_algorithm planned = KSEG_ALGORITHM_LLOYD;
    uint64_t bounds_memory = 0;
    if (kseg_kmeans_plan(&table.matrix, &options, &planned, &bounds_memory, &error))
        step = cli_fail(command, &error);
    if (cluster_stop(step, &exit_code))
        goto done;
    if (memory_limit) {
        /* The exact workspace, now that the algorithm and k are known; rows read into memory
           count too. */
        uint64_t workspace = fit_workspace(table.matrix.rows, table.ids != NULL, &options,
                                           weights != NULL, bounds_memory);
        uint64_t held = kseg_memory_add(workspace, rows_info.mode == KSEG_ROWS_MEMORY
                                                       ? rows_info.bytes : 0);
        if (held > memory_limit) {
            char workspace_size[32], limit_size[32];
            step = cli_failf(command, KSEG_EXIT_FAILURE,
                             "--memory-limit %s is less than the fit's workspace of %s "
                             "(labels, ids, weights and bounds; the rows are %s)",
                             kseg_memory_format(memory_limit, limit_size, sizeof limit_size),
                             kseg_memory_format(held, workspace_size, sizeof workspace_size),
                             rows_info.mode == KSEG_ROWS_MEMORY ? "in memory and included"
                                                                : "mapped, not included");
        }
    }
    if (cluster_stop(step, &exit_code))
        goto done;
    int bound_requested = options.algorithm == KSEG_ALGORITHM_HAMERLY ||
                          options.algorithm == KSEG_ALGORITHM_ELKAN ||
                          options.algorithm == KSEG_ALGORITHM_YINYANG;
    if (printer && bound_requested && planned != options.algorithm)
        cli_warnf(command, "--algorithm %s needs a direct-difference kernel; kernel '%s' is "
                  "expanded-form, so lloyd runs instead",
                  kseg_kmeans_algorithm_name(options.algorithm), options.kernel);
    if (printer && !quiet && planned != KSEG_ALGORITHM_LLOYD &&
        planned != KSEG_ALGORITHM_MINIBATCH) {
        char size[32];
        printf("kseg cluster: algorithm %s, %s of extra memory for its bounds%s\n",
               kseg_kmeans_algorithm_name(planned),
               kseg_memory_format(bounds_memory, size, sizeof size),
               distributed ? " (on this rank)" : "");
        fflush(stdout);
    }
    options.stop_request = &stop_requested;
    route_stop_signals(1, saved_actions);
    routed = 1;
    int fitted_status = kseg_kmeans_fit(&table.matrix, &options, &result, &error);
    /* First the ranks agree whether any fit failed outright, before the interrupted ones make
       collective calls (closing the output, the checkpoint's agreement) that a failed rank
       would not make in the same order. The stop itself is agreed inside the fit, so either
       every rank was interrupted or none was. */
    if (fitted_status && fitted_status != KSEG_EINTERRUPTED)
        step = cli_fail(command, &error);
    if (cluster_stop(step, &exit_code))
        goto done;
    if (fitted_status == KSEG_EINTERRUPTED) {
        /* No output from an interrupted fit: only the checkpoint, written by rank 0 (the
           checkpoint is the same on every rank), then every rank learns whether it worked. */
        kseg_h5_writer_abort(writer);
        writer = NULL;
        const kseg_kmeans_checkpoint *checkpoint = result.checkpoint;
        char checkpoint_options[1024];
        format_options(checkpoint_options, sizeof checkpoint_options, k, &options,
                       checkpoint->n_init, weights != NULL, table.matrix.dtype);
        int failed = printer && kseg_checkpoint_write(checkpoint_path, checkpoint, argv[optind],
                                                      checkpoint_options, &error) != 0;
        if (failed)
            cli_fail(command, &error);
        if (cli_any_failed(failed)) {
            exit_code = KSEG_EXIT_FAILURE;
            goto done;
        }
        if (printer)
            fprintf(stderr,
                    "kseg cluster: interrupted at iteration %d of run %d; checkpoint written to "
                    "%s (resume with --resume %s)\n",
                    checkpoint->n_iter, checkpoint->run + 1, checkpoint_path, checkpoint_path);
        exit_code = KSEG_EXIT_CHECKPOINTED;
        goto done;
    }
    route_stop_signals(0, saved_actions);
    routed = 0;
    signal(SIGUSR1, SIG_IGN);
    /* The model records the bounds' memory of the whole data set, the figure of a serial run
       (each rank holds its own rows' share, plus a per-cluster part of its own). */
    if (distributed)
        result.bounds_memory = kseg_kmeans_algorithm_memory(planned, n, (size_t)k, d);
    /* The cluster sizes of the profile count every rank's rows (a collective sum); they are
       counted before the result is written, so that no failure comes after the commit. */
    if (!(cluster_sizes = calloc((size_t)k, sizeof *cluster_sizes)))
        step = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
    if (cluster_stop(step, &exit_code))
        goto done;
    for (size_t i = 0; i < result.n_rows; i++)
        cluster_sizes[result.labels[i]]++;
    if (distributed && rows.ops->allreduce_sum_i64(&rows, cluster_sizes, (size_t)k))
        step = cli_failf(command, KSEG_EXIT_FAILURE, "MPI failed summing the cluster sizes");
    if (cluster_stop(step, &exit_code))
        goto done;
    double fitted = omp_get_wtime();
    if (printer && result.warnings)
        cli_warnf(command, "%s", result.warning_message);

    char options_json[1024];
    format_options(options_json, sizeof options_json, k, &options, result.n_init,
                   weights != NULL, table.matrix.dtype);
    if (write_result(writer, &result, &table, &options, options_json, n, rows.row_offset,
                     distributed, &error))
        step = cli_fail(command, &error); /* the writer is aborted at done */
    if (cluster_stop(step, &exit_code))
        goto done;
    int committed = kseg_h5_writer_commit(writer, &error);
    writer = NULL; /* commit frees the writer, whether or not it succeeded */
    /* Every rank learns the outcome of the commit; rank 0 speaks for a failed rename. */
    if (committed && (printer || !distributed))
        step = cli_fail(command, &error);
    else if (committed)
        step = KSEG_EXIT_FAILURE;
    if (cluster_stop(step, &exit_code))
        goto done;
    double finished = omp_get_wtime();
    if (log)
        fprintf(log,
                "{\"event\":\"done\",\"n\":%zu,\"d\":%zu,\"k\":%lld,\"inertia\":%.17g,"
                "\"n_iter\":%d,\"algorithm\":\"%s\",\"bounds_memory\":%llu,"
                "\"load_seconds\":%.6f,\"fit_seconds\":%.6f,\"init_seconds\":%.6f,"
                "\"write_seconds\":%.6f,\"rows_mode\":\"%s\"}\n",
                n, d, (long long)k, result.inertia, result.n_iter, result.algorithm,
                (unsigned long long)result.bounds_memory, loaded - started,
                fitted - loaded, result.init_seconds, finished - fitted,
                rows_info.mode == KSEG_ROWS_MAPPED   ? "mapped"
                : rows_info.mode == KSEG_ROWS_STAGED ? "staged"
                                                     : "memory");
    if (printer && !quiet) {
        printf("kseg cluster: %zu rows x %zu columns (%s) -> %lld clusters\n", n, d,
               table.matrix.dtype == KSEG_FLOAT32 ? "float32" : "float64", (long long)k);
        if (distributed)
            printf("  distributed over %d ranks (MPI)\n", cli_size());
        printf("  inertia %.9g after %d iterations (%s, run %d of the best inertia)\n",
               result.inertia, result.n_iter, convergence_name(result.convergence),
               result.best_init + 1);
        printf("  time: load %.3f s, fit %.3f s (initialization %.3f s), write %.3f s\n",
               loaded - started, fitted - loaded, result.init_seconds, finished - fitted);
        int64_t computed = 0, skipped = 0;
        for (int32_t i = 0; i < result.n_iter; i++) {
            computed += result.iterations[i].distances_computed;
            skipped += result.iterations[i].distances_skipped;
        }
        printf("  algorithm %s (kernel %s): %lld distances computed, %lld skipped (%.1f%%)\n",
               result.algorithm, result.kernel, (long long)computed, (long long)skipped,
               computed + skipped > 0 ? 100.0 * (double)skipped / (double)(computed + skipped)
                                      : 0.0);
        print_profile(&result, &table, cluster_sizes, n);
        printf("  written to %s\n", output);
    }
    exit_code = KSEG_EXIT_OK;
done:
    if (routed)
        route_stop_signals(0, saved_actions);
    sigaction(SIGUSR1, &saved_usr1, NULL);
    kseg_h5_writer_abort(writer);
    kseg_kmeans_checkpoint_free(resume);
    free(checkpoint_path);
    if (log)
        fclose(log);
    kseg_kmeans_result_destroy(&result);
    kseg_table_destroy(&table);
    cli_free_list(column_list, column_count);
    free(init_centers);
    free(weights);
    free(cluster_sizes);
    free(input_file);
    free(input_path);
    return exit_code;
}
