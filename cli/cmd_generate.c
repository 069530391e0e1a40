/* `kseg generate`: writes a synthetic customer population (or Gaussian test blobs) to HDF5 in
 * the layout `kseg cluster` reads, streaming blocks of rows through the atomic writer so that
 * memory stays bounded however many rows are asked for. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "commands.h"

/* At most this many rows are generated and written at a time. */
#define MAX_BLOCK_ROWS ((size_t)1 << 20)
/* ... and at most this many bytes of features per block, for wide blob data. */
#define MAX_BLOCK_BYTES ((size_t)256 << 20)
/* Default chunks hold about this many bytes (HDF5's default chunk cache is 1 MiB). */
#define DEFAULT_CHUNK_BYTES ((size_t)1 << 20)
#define MAX_ROWS ((int64_t)1 << 40)

static const char *const command = "generate";

static const char *const generate_usage =
    "usage: kseg generate customers --n N -o FILE.h5 [options]\n"
    "       kseg generate transactions --customers N --transactions M -o TX.h5 [options]\n"
    "       kseg generate blobs --n N --d D --k K -o FILE.h5 [options]\n"
    "\n"
    "'transactions' writes a synthetic transaction log (group /transactions, see\n"
    "'kseg generate transactions --help'); the other kinds write customer features.\n"
    "\n"
    "Write a synthetic population in the layout 'kseg cluster' reads:\n"
    "  /customers/features [n, d] float32 (attribute \"columns\"), /customers/id [n] int64,\n"
    "  /truth/segment [n] int32 (the generating segment or blob), and for blobs /truth/centers.\n"
    "Every row depends only on the seed and its index: the same seed gives the same file.\n"
    "\n"
    "Run 'kseg generate customers --help' or 'kseg generate blobs --help' for the options.\n";

static const char *const customers_usage =
    "usage: kseg generate customers --n N -o FILE.h5 [options]\n"
    "\n"
    "Write N synthetic customers drawn from latent segments (champions, loyal, new, at_risk,\n"
    "hibernating, big_spenders, bargain_hunters, potential_loyalists) with realistic, skewed\n"
    "distributions. Columns: recency_days, frequency, monetary, tenure_days, avg_basket,\n"
    "web_share, age, income, n_categories. Ids are 100000 + row index.\n"
    "\n"
    "options:\n"
    "      --n N            number of customers (required, 1 to 2^40)\n"
    "  -o, --output FILE    output HDF5 file (required; replaced atomically if it exists)\n"
    "      --seed S         random seed (default 1)\n"
    "      --segments K     latent segments, 1 to 8 (default 6)\n"
    "      --chunk-rows R   rows per HDF5 chunk (default: about 1 MiB per chunk, 16384 rows)\n"
    "      --gzip LEVEL     gzip compression level 0 to 9 (default 0: none)\n"
    "      --threads T      OpenMP threads (default: OMP_NUM_THREADS or all cores; the output\n"
    "                       does not depend on it)\n"
    "  -q, --quiet          no progress and no summary\n"
    "  -h, --help           show this help\n";

static const char *const blobs_usage =
    "usage: kseg generate blobs --n N --d D --k K -o FILE.h5 [options]\n"
    "\n"
    "Write N points around K Gaussian centers in D dimensions, for tests and benchmarks. The\n"
    "centers are uniform in [-spread, spread]^D; each point picks a center uniformly and adds\n"
    "N(0, sigma^2) noise per coordinate. Columns are named x0, x1, ...; the centers are stored\n"
    "in /truth/centers [K, D] float64.\n"
    "\n"
    "options:\n"
    "      --n N            number of points (required, 1 to 2^40)\n"
    "      --d D            dimensions (required, 1 to 100000)\n"
    "      --k K            number of blobs (required, 1 to 1000000)\n"
    "  -o, --output FILE    output HDF5 file (required; replaced atomically if it exists)\n"
    "      --seed S         random seed (default 1)\n"
    "      --spread X       half-width of the box the centers are drawn from (default 10)\n"
    "      --sigma X        standard deviation of the noise (default 1)\n"
    "      --chunk-rows R   rows per HDF5 chunk (default: about 1 MiB per chunk)\n"
    "      --gzip LEVEL     gzip compression level 0 to 9 (default 0: none)\n"
    "      --threads T      OpenMP threads (default: OMP_NUM_THREADS or all cores; the output\n"
    "                       does not depend on it)\n"
    "  -q, --quiet          no progress and no summary\n"
    "  -h, --help           show this help\n";

typedef enum generate_kind { KIND_CUSTOMERS, KIND_BLOBS } generate_kind;

typedef struct generate_options {
    generate_kind kind;
    int64_t n;
    int64_t d;            /* blobs */
    int64_t k;            /* blobs */
    uint64_t seed;
    int64_t segments;     /* customers */
    double spread;        /* blobs */
    double sigma;         /* blobs */
    int64_t chunk_rows;   /* 0 = default */
    int64_t gzip;
    int64_t threads;      /* 0 = default */
    const char *output;
    int quiet;
} generate_options;

/* Set by SIGINT/SIGTERM; the block loop checks it so that an interrupted run removes its
   temporary file instead of leaving it behind. */
static volatile sig_atomic_t interrupted;

static void on_signal(int signal_number)
{
    interrupted = signal_number;
}

/* Rows per chunk: the largest power of two that keeps a chunk near 1 MiB. */
static size_t default_chunk_rows(size_t row_bytes)
{
    size_t rows = 1;
    while (rows * 2 * row_bytes <= DEFAULT_CHUNK_BYTES && rows < ((size_t)1 << 16))
        rows *= 2;
    return rows;
}

/* Parses the options after the kind; returns -1 to continue, or an exit code. */
static int parse_options(int argc, char **argv, generate_options *options)
{
    enum { OPT_N = 256, OPT_D, OPT_K, OPT_SEED, OPT_SEGMENTS, OPT_SPREAD, OPT_SIGMA, OPT_CHUNK,
           OPT_GZIP, OPT_THREADS };
    static const struct option customer_options[] = {
        {"n", required_argument, NULL, OPT_N},
        {"seed", required_argument, NULL, OPT_SEED},
        {"segments", required_argument, NULL, OPT_SEGMENTS},
        {"chunk-rows", required_argument, NULL, OPT_CHUNK},
        {"gzip", required_argument, NULL, OPT_GZIP},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct option blob_options[] = {
        {"n", required_argument, NULL, OPT_N},
        {"d", required_argument, NULL, OPT_D},
        {"k", required_argument, NULL, OPT_K},
        {"seed", required_argument, NULL, OPT_SEED},
        {"spread", required_argument, NULL, OPT_SPREAD},
        {"sigma", required_argument, NULL, OPT_SIGMA},
        {"chunk-rows", required_argument, NULL, OPT_CHUNK},
        {"gzip", required_argument, NULL, OPT_GZIP},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const int blobs = options->kind == KIND_BLOBS;
    const char *usage = blobs ? blobs_usage : customers_usage;
    const char *kind_name = blobs ? "blobs" : "customers";

    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":o:qh", blobs ? blob_options : customer_options,
                                 NULL)) != -1) {
        int bad = 0;
        switch (option) {
        case OPT_N:
            bad = cli_parse_int64(command, "--n", optarg, 1, MAX_ROWS, &options->n);
            break;
        case OPT_D:
            bad = cli_parse_int64(command, "--d", optarg, 1, 100000, &options->d);
            break;
        case OPT_K:
            bad = cli_parse_int64(command, "--k", optarg, 1, 1000000, &options->k);
            break;
        case OPT_SEED:
            bad = cli_parse_uint64(command, "--seed", optarg, &options->seed);
            break;
        case OPT_SEGMENTS:
            bad = cli_parse_int64(command, "--segments", optarg, 1, KSEG_CUSTOMER_MAX_SEGMENTS,
                                  &options->segments);
            break;
        case OPT_SPREAD:
            bad = cli_parse_double(command, "--spread", optarg, 0.0, 1e30, &options->spread);
            break;
        case OPT_SIGMA:
            bad = cli_parse_double(command, "--sigma", optarg, 0.0, 1e30, &options->sigma);
            break;
        case OPT_CHUNK:
            bad = cli_parse_int64(command, "--chunk-rows", optarg, 1, (int64_t)1 << 24,
                                  &options->chunk_rows);
            break;
        case OPT_GZIP:
            bad = cli_parse_int64(command, "--gzip", optarg, 0, 9, &options->gzip);
            break;
        case OPT_THREADS:
            bad = cli_parse_int64(command, "--threads", optarg, 1, 4096, &options->threads);
            break;
        case 'o':
            options->output = optarg;
            break;
        case 'q':
            options->quiet = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return KSEG_EXIT_OK;
        case ':':
            return cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                             argv[optind - 1]);
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' for %s (run 'kseg generate %s --help')",
                             argv[optind - 1], kind_name, kind_name);
        }
        if (bad)
            return KSEG_EXIT_USAGE;
    }
    if (optind < argc)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "unexpected argument '%s' (run 'kseg generate %s --help')", argv[optind],
                         kind_name);
    if (options->n == 0)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --n N (number of rows)");
    if (blobs && options->d == 0)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --d D (dimensions)");
    if (blobs && options->k == 0)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --k K (number of blobs)");
    if (!options->output || !*options->output)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -o FILE.h5");
    return -1;
}

/* Creates the datasets and attributes; the rows are written block by block afterwards. */
static int write_layout(kseg_h5_writer *writer, const generate_options *options, size_t n,
                        size_t d, size_t chunk_rows, kseg_error *error)
{
    int status = 0;
    char **names = NULL;
    double *centers = NULL;
    const int gzip = (int)options->gzip;
    const size_t feature_dims[2] = {n, d};

    names = calloc(d + 1, sizeof *names);
    if (!names)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    for (size_t j = 0; j < d; j++) {
        char buffer[32];
        const char *name = buffer;
        if (options->kind == KIND_CUSTOMERS)
            name = kseg_customer_feature_name(j);
        else
            snprintf(buffer, sizeof buffer, "x%zu", j);
        names[j] = strdup(name);
        if (!names[j]) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((status = kseg_h5_write_dataset(writer, "/customers/features", KSEG_STORE_FLOAT32, 2,
                                        feature_dims, NULL, chunk_rows, gzip, error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/customers/features", "columns",
                                                  (const char *const *)names, d, error)) ||
        (status = kseg_h5_write_dataset(writer, "/customers/id", KSEG_STORE_INT64, 1, &n, NULL,
                                        chunk_rows, gzip, error)) ||
        (status = kseg_h5_write_dataset(writer, "/truth/segment", KSEG_STORE_INT32, 1, &n, NULL,
                                        chunk_rows, gzip, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/", "kseg_version",
                                                 kseg_version_string(), error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/", "seed", (int64_t)options->seed,
                                                error)))
        goto done;

    if (options->kind == KIND_CUSTOMERS) {
        const char *segment_names[KSEG_CUSTOMER_MAX_SEGMENTS];
        for (int32_t s = 0; s < (int32_t)options->segments; s++)
            segment_names[s] = kseg_customer_segment_name(s);
        if ((status = kseg_h5_write_attribute_string(writer, "/", "generator",
                                                     "kseg generate customers", error)) ||
            (status = kseg_h5_write_attribute_int64(writer, "/", "n_segments", options->segments,
                                                    error)) ||
            (status = kseg_h5_write_attribute_strings(writer, "/truth/segment", "names",
                                                      segment_names, (size_t)options->segments,
                                                      error)))
            goto done;
    } else {
        const size_t k = (size_t)options->k;
        const size_t center_dims[2] = {k, d};
        centers = malloc(k * d * sizeof *centers);
        if (!centers) {
            status = kseg_error_set(error, KSEG_ENOMEM, "out of memory for %zu x %zu centers", k, d);
            goto done;
        }
        if ((status = kseg_generate_blob_centers(options->seed, d, k, options->spread, centers,
                                                 error)) ||
            (status = kseg_h5_write_dataset(writer, "/truth/centers", KSEG_STORE_FLOAT64, 2,
                                            center_dims, centers, 0, 0, error)) ||
            (status = kseg_h5_write_attribute_string(writer, "/", "generator",
                                                     "kseg generate blobs", error)) ||
            (status = kseg_h5_write_attribute_int64(writer, "/", "n_blobs", options->k, error)) ||
            (status = kseg_h5_write_attribute_double(writer, "/", "spread", options->spread,
                                                     error)) ||
            (status = kseg_h5_write_attribute_double(writer, "/", "sigma", options->sigma, error)))
            goto done;
    }

done:
    for (size_t j = 0; j < d; j++)
        free(names[j]);
    free(names);
    free(centers);
    return status;
}

static int run(const generate_options *options)
{
    const size_t n = (size_t)options->n;
    const size_t d = options->kind == KIND_CUSTOMERS ? kseg_customer_feature_count()
                                                     : (size_t)options->d;
    const size_t row_bytes = d * sizeof(float);
    const size_t chunk_rows = options->chunk_rows > 0 ? (size_t)options->chunk_rows
                                                      : default_chunk_rows(row_bytes);
    /* Blocks hold whole chunks where possible, so that no chunk is written twice. */
    size_t block_rows = MAX_BLOCK_BYTES / row_bytes;
    if (block_rows > MAX_BLOCK_ROWS)
        block_rows = MAX_BLOCK_ROWS;
    if (block_rows >= chunk_rows)
        block_rows = block_rows / chunk_rows * chunk_rows;
    if (block_rows == 0)
        block_rows = 1;
    if (block_rows > n)
        block_rows = n;

    kseg_error error;
    kseg_error_clear(&error);
    kseg_h5_writer *writer = NULL;
    float *features = malloc(block_rows * d * sizeof *features);
    int64_t *ids = malloc(block_rows * sizeof *ids);
    int32_t *truth = malloc(block_rows * sizeof *truth);
    int exit_code = KSEG_EXIT_FAILURE;
    int show_progress = !options->quiet && cli_stderr_is_terminal() && n > block_rows;

    if (!features || !ids || !truth) {
        cli_failf(command, KSEG_EXIT_FAILURE, "out of memory for a block of %zu rows", block_rows);
        goto done;
    }
    if (options->threads > 0)
        omp_set_num_threads((int)options->threads);
    /* An absurd --n (up to 2^40 is allowed) would otherwise fill the disk block by block before
       failing: the features, the int64 ids and the int32 truth labels must fit. */
    if (kseg_output_check_space(
            options->output, (double)n * (double)(row_bytes + sizeof(int64_t) + sizeof(int32_t)),
            options->gzip > 0, &error)) {
        cli_fail(command, &error);
        goto done;
    }
    if (kseg_h5_writer_open(&writer, options->output, &error) ||
        write_layout(writer, options, n, d, chunk_rows, &error)) {
        cli_fail(command, &error);
        goto done;
    }

    struct sigaction action, old_int, old_term;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);

    int failed = 0;
    for (size_t begin = 0; begin < n && !failed; begin += block_rows) {
        if (interrupted) {
            cli_failf(command, KSEG_EXIT_FAILURE, "interrupted; %s was not written",
                      options->output);
            failed = 1;
            break;
        }
        const size_t rows = n - begin < block_rows ? n - begin : block_rows;
        int status;
        if (options->kind == KIND_CUSTOMERS) {
            kseg_customer_options customer;
            kseg_customer_options_defaults(&customer);
            customer.seed = options->seed;
            customer.n_segments = (int32_t)options->segments;
            status = kseg_generate_customers(&customer, begin, rows, features, ids, truth,
                                             (int32_t)options->threads, &error);
        } else {
            status = kseg_generate_blob_rows(options->seed, begin, rows, d, (size_t)options->k,
                                             options->spread, options->sigma, features, truth,
                                             &error);
            for (size_t i = 0; i < rows; i++)
                ids[i] = (int64_t)(begin + i);
        }
        if (status || kseg_h5_write_rows(writer, "/customers/features", begin, rows, features,
                                         &error) ||
            kseg_h5_write_rows(writer, "/customers/id", begin, rows, ids, &error) ||
            kseg_h5_write_rows(writer, "/truth/segment", begin, rows, truth, &error)) {
            cli_fail(command, &error);
            failed = 1;
            break;
        }
        if (show_progress)
            fprintf(stderr, "\rkseg generate: %zu of %zu rows (%.0f%%)", begin + rows, n,
                    100.0 * (double)(begin + rows) / (double)n);
    }
    if (show_progress)
        fputc('\n', stderr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (failed)
        goto done;

    kseg_h5_writer *committing = writer;
    writer = NULL;
    if (kseg_h5_writer_commit(committing, &error)) {
        cli_fail(command, &error);
        goto done;
    }
    if (!options->quiet) {
        if (options->kind == KIND_CUSTOMERS)
            printf("generated %zu rows x %zu columns (%d segments, seed %llu) -> %s\n", n, d,
                   (int)options->segments, (unsigned long long)options->seed, options->output);
        else
            printf("generated %zu rows x %zu columns (%lld blobs, seed %llu) -> %s\n", n, d,
                   (long long)options->k, (unsigned long long)options->seed, options->output);
    }
    exit_code = KSEG_EXIT_OK;

done:
    kseg_h5_writer_abort(writer);
    free(features);
    free(ids);
    free(truth);
    return exit_code;
}

int kseg_cmd_generate(int argc, char **argv)
{
    if (argc < 2)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "expected customers, transactions or blobs (run 'kseg generate --help')");
    const char *kind = argv[1];
    if (strcmp(kind, "--help") == 0 || strcmp(kind, "-h") == 0 || strcmp(kind, "help") == 0) {
        fputs(generate_usage, stdout);
        return KSEG_EXIT_OK;
    }
    generate_options options;
    memset(&options, 0, sizeof options);
    options.seed = 1;
    options.segments = 6;
    options.spread = 10.0;
    options.sigma = 1.0;
    if (strcmp(kind, "transactions") == 0)
        return kseg_cmd_generate_transactions(argc - 1, argv + 1);
    if (strcmp(kind, "customers") == 0)
        options.kind = KIND_CUSTOMERS;
    else if (strcmp(kind, "blobs") == 0)
        options.kind = KIND_BLOBS;
    else
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "unknown kind '%s' (expected customers, transactions or blobs; run 'kseg generate "
                         "--help')",
                         kind);
    int exit_code = parse_options(argc - 1, argv + 1, &options);
    if (exit_code >= 0)
        return exit_code;
    return run(&options);
}
