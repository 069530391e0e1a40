/* `kseg generate transactions`: writes a synthetic transaction log in the layout `kseg import
 * transactions` produces, generating and writing blocks of rows in turn so that memory stays
 * bounded however many rows are asked for. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "commands.h"
#include "kseg/import.h"

/* Rows generated and written at a time (a multiple of the default chunk). */
#define BLOCK_ROWS ((size_t)1 << 20)
#define DEFAULT_CHUNK_ROWS ((int64_t)1 << 16)
#define MAX_TRANSACTIONS ((int64_t)1 << 40)
#define MAX_CUSTOMERS ((int64_t)1000000000)
/* Distinct customers are counted with a bitmap when it stays this small. */
#define MAX_BITMAP_CUSTOMERS ((uint64_t)1 << 31)

static const char *const command = "generate";

static const char *const usage =
    "usage: kseg generate transactions --transactions M -o FILE.h5 [options]\n"
    "\n"
    "Write a synthetic transaction log in the layout 'kseg import transactions' writes\n"
    "(/transactions: customer_id, time, amount, quantity, price, invoice, cancelled, and the\n"
    "categories channel, country and category with their dictionaries). Customers buy in visits\n"
    "(one invoice, about 3 lines); how often follows a heavy-tailed distribution (a few heavy\n"
    "buyers, many one-time buyers), customers join and churn during the period, prices are\n"
    "lognormal, times follow daily, weekly and yearly seasonality (a pre-Christmas peak), and\n"
    "about --return-rate of the visits are returns (cancelled = 1, negative quantity and\n"
    "amount). Customer ids are 100000 to 100000 + N - 1, as in 'kseg generate customers'.\n"
    "Rows are in time order; every row depends only on the seed, its index and M.\n"
    "\n"
    "options:\n"
    "      --transactions M   number of rows (required, 1 to 2^40)\n"
    "  -o, --output FILE      output HDF5 file (required; replaced atomically if it exists)\n"
    "      --customers N      distinct customer ids to draw from (default 100000)\n"
    "      --days D           length of the period in days (default 730, at most 36525)\n"
    "      --start DATE       first day, YYYY-MM-DD, UTC (default 2023-01-01)\n"
    "      --return-rate X    share of visits that are returns, 0 to 0.5 (default 0.02)\n"
    "      --seed S           random seed (default 1)\n"
    "      --chunk-rows R     rows per HDF5 chunk (default 65536)\n"
    "      --gzip LEVEL       gzip compression level 0 to 9 (default 0: none)\n"
    "      --threads T        OpenMP threads (default: OMP_NUM_THREADS or all cores; the output\n"
    "                         does not depend on it)\n"
    "  -q, --quiet            no progress and no summary\n"
    "  -h, --help             show this help\n";

typedef struct options {
    kseg_transaction_options model;
    int64_t transactions;
    int64_t chunk_rows;
    int64_t gzip;
    int64_t threads;
    const char *output;
    int quiet;
} options;

static volatile sig_atomic_t interrupted;

static void on_signal(int signal_number)
{
    interrupted = signal_number;
}

/* YYYY-MM-DD as seconds since the epoch (UTC midnight); -1 when malformed. */
static int parse_date(const char *text, int64_t *seconds)
{
    int64_t parsed;
    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-' ||
        kseg_import_parse_time(text, NULL, &parsed) != 0)
        return -1;
    *seconds = parsed;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { OPT_TRANSACTIONS = 256, OPT_CUSTOMERS, OPT_DAYS, OPT_START, OPT_RETURN_RATE, OPT_SEED,
           OPT_CHUNK, OPT_GZIP, OPT_THREADS };
    static const struct option long_options[] = {
        {"transactions", required_argument, NULL, OPT_TRANSACTIONS},
        {"customers", required_argument, NULL, OPT_CUSTOMERS},
        {"days", required_argument, NULL, OPT_DAYS},
        {"start", required_argument, NULL, OPT_START},
        {"return-rate", required_argument, NULL, OPT_RETURN_RATE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"chunk-rows", required_argument, NULL, OPT_CHUNK},
        {"gzip", required_argument, NULL, OPT_GZIP},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":o:qh", long_options, NULL)) != -1) {
        int bad = 0;
        int64_t value;
        switch (option) {
        case OPT_TRANSACTIONS:
            bad = cli_parse_int64(command, "--transactions", optarg, 1, MAX_TRANSACTIONS,
                                  &o->transactions);
            break;
        case OPT_CUSTOMERS:
            bad = cli_parse_int64(command, "--customers", optarg, 1, MAX_CUSTOMERS, &value);
            o->model.customers = (uint64_t)value;
            break;
        case OPT_DAYS:
            bad = cli_parse_int64(command, "--days", optarg, 1, 36525, &o->model.days);
            break;
        case OPT_START:
            if (parse_date(optarg, &o->model.start_time) != 0)
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--start: expected a date YYYY-MM-DD, got '%s'", optarg);
            break;
        case OPT_RETURN_RATE:
            bad = cli_parse_double(command, "--return-rate", optarg, 0.0, 0.5,
                                   &o->model.return_rate);
            break;
        case OPT_SEED:
            bad = cli_parse_uint64(command, "--seed", optarg, &o->model.seed);
            break;
        case OPT_CHUNK:
            bad = cli_parse_int64(command, "--chunk-rows", optarg, 1, (int64_t)1 << 24,
                                  &o->chunk_rows);
            break;
        case OPT_GZIP:
            bad = cli_parse_int64(command, "--gzip", optarg, 0, 9, &o->gzip);
            break;
        case OPT_THREADS:
            bad = cli_parse_int64(command, "--threads", optarg, 1, 4096, &o->threads);
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return KSEG_EXIT_OK;
        case ':':
            return cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                             argv[optind - 1]);
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' for transactions (run 'kseg generate "
                             "transactions --help')",
                             argv[optind - 1]);
        }
        if (bad)
            return KSEG_EXIT_USAGE;
    }
    if (optind < argc)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "unexpected argument '%s' (run 'kseg generate transactions --help')",
                         argv[optind]);
    if (o->transactions == 0)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --transactions M (number of rows)");
    if (!o->output || !*o->output)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -o FILE.h5");
    return -1;
}

/* Creates the file: datasets, dictionaries and attributes; rows follow block by block. */
static int open_file(const options *o, kseg_transaction_writer **writer, kseg_error *error)
{
    const size_t n_categories = kseg_generated_category_count();
    const char *names[8];
    for (size_t c = 0; c < n_categories; c++)
        names[c] = kseg_generated_category_name(c);
    kseg_transaction_file_options file;
    kseg_transaction_file_options_defaults(&file);
    file.rows = (size_t)o->transactions;
    file.quantity = file.price = file.invoice = file.cancelled = 1;
    file.categories = names;
    file.n_categories = n_categories;
    file.chunk_rows = (size_t)o->chunk_rows;
    file.gzip_level = (int)o->gzip;
    int status = kseg_transaction_writer_open(writer, o->output, &file, error);
    if (status)
        return status;
    for (size_t c = 0; c < n_categories && !status; c++) {
        const char *values[16];
        size_t size = kseg_generated_category_size(c);
        for (size_t v = 0; v < size; v++)
            values[v] = kseg_generated_category_value(c, v);
        status = kseg_transaction_writer_dictionary(*writer, names[c], values, size, error);
    }
    if (status ||
        (status = kseg_transaction_writer_attribute_string(*writer, "source",
                                                           "kseg generate transactions",
                                                           error)) ||
        (status = kseg_transaction_writer_attribute_string(*writer, "kseg_version",
                                                           kseg_version_string(), error)) ||
        (status = kseg_transaction_writer_attribute_int64(*writer, "seed",
                                                          (int64_t)o->model.seed, error)) ||
        (status = kseg_transaction_writer_attribute_int64(*writer, "customers",
                                                          (int64_t)o->model.customers, error)) ||
        (status = kseg_transaction_writer_attribute_int64(*writer, "days", o->model.days,
                                                          error)) ||
        (status = kseg_transaction_writer_attribute_int64(*writer, "start_time",
                                                          o->model.start_time, error)) ||
        (status = kseg_transaction_writer_attribute_double(*writer, "return_rate",
                                                           o->model.return_rate, error)) ||
        (status = kseg_transaction_writer_attribute_int64(*writer, "rejected_rows", 0, error))) {
        kseg_transaction_writer_abort(*writer);
        *writer = NULL;
    }
    return status;
}

static void format_time(int64_t seconds, char *buffer, size_t size)
{
    time_t t = (time_t)seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buffer, size, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buffer, size, "%lld", (long long)seconds);
}

static int run(const options *o)
{
    const size_t n = (size_t)o->transactions;
    const size_t block_rows = n < BLOCK_ROWS ? n : BLOCK_ROWS;
    const size_t n_categories = kseg_generated_category_count();
    kseg_error error;
    kseg_error_clear(&error);
    kseg_transaction_writer *writer = NULL;
    int exit_code = KSEG_EXIT_FAILURE;
    uint64_t returns = 0, distinct = 0;
    int64_t first_time = 0, last_time = 0;
    const int count_distinct = o->model.customers <= MAX_BITMAP_CUSTOMERS;
    uint8_t *seen = count_distinct ? calloc(o->model.customers / 8 + 1, 1) : NULL;

    int64_t *customer_id = malloc(block_rows * sizeof *customer_id);
    int64_t *times = malloc(block_rows * sizeof *times);
    int64_t *invoice = malloc(block_rows * sizeof *invoice);
    double *amount = malloc(block_rows * sizeof *amount);
    double *quantity = malloc(block_rows * sizeof *quantity);
    double *price = malloc(block_rows * sizeof *price);
    uint8_t *cancelled = malloc(block_rows);
    int32_t *codes[8] = {NULL};
    kseg_category_column views[8];
    int missing = !customer_id || !times || !invoice || !amount || !quantity || !price ||
                  !cancelled || (count_distinct && !seen);
    for (size_t c = 0; c < n_categories; c++) {
        missing |= !(codes[c] = malloc(block_rows * sizeof *codes[c]));
        views[c].name = kseg_generated_category_name(c);
        views[c].codes = codes[c];
        views[c].names = NULL;
        views[c].n_names = 0;
    }
    const int show_progress = !o->quiet && cli_stderr_is_terminal() && n > block_rows;
    struct sigaction action, old_int, old_term;
    int handlers = 0;

    if (missing) {
        cli_failf(command, KSEG_EXIT_FAILURE, "out of memory for a block of %zu rows",
                  block_rows);
        goto done;
    }
    if (o->threads > 0)
        omp_set_num_threads((int)o->threads);
    /* Up to 2^40 rows are allowed; refuse at once what the disk cannot hold (six 8-byte
       columns, cancelled, and an int32 code per category) instead of filling it first. */
    if (kseg_output_check_space(
            o->output, (double)n * (double)(6 * sizeof(int64_t) + 1 + n_categories * sizeof(int32_t)),
            o->gzip > 0, &error)) {
        cli_fail(command, &error);
        goto done;
    }
    if (open_file(o, &writer, &error)) {
        cli_fail(command, &error);
        goto done;
    }

    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
    handlers = 1;

    for (size_t begin = 0; begin < n; begin += block_rows) {
        if (interrupted) {
            cli_failf(command, KSEG_EXIT_FAILURE, "interrupted; %s was not written", o->output);
            goto done;
        }
        const size_t rows = n - begin < block_rows ? n - begin : block_rows;
        if (kseg_generate_transactions(&o->model, n, begin, rows, customer_id, times, amount,
                                       quantity, price, invoice, cancelled, codes, &error)) {
            cli_fail(command, &error);
            goto done;
        }
        kseg_transactions block = {.rows = rows,
                                   .customer_id = customer_id,
                                   .time = times,
                                   .amount = amount,
                                   .quantity = quantity,
                                   .price = price,
                                   .invoice = invoice,
                                   .cancelled = cancelled,
                                   .categories = views,
                                   .n_categories = n_categories};
        if (kseg_transaction_writer_write(writer, begin, &block, &error)) {
            cli_fail(command, &error);
            goto done;
        }
        for (size_t i = 0; i < rows; i++) {
            returns += cancelled[i];
            if (count_distinct) {
                uint64_t rank = (uint64_t)(customer_id[i] - 100000);
                if (!(seen[rank >> 3] & (1u << (rank & 7)))) {
                    seen[rank >> 3] |= (uint8_t)(1u << (rank & 7));
                    distinct++;
                }
            }
        }
        if (begin == 0)
            first_time = times[0];
        last_time = times[rows - 1];
        if (show_progress)
            fprintf(stderr, "\rkseg generate: %zu of %zu transactions (%.0f%%)", begin + rows, n,
                    100.0 * (double)(begin + rows) / (double)n);
    }
    if (show_progress)
        fputc('\n', stderr);

    kseg_transaction_writer *committing = writer;
    writer = NULL;
    if (kseg_transaction_writer_commit(committing, &error)) {
        cli_fail(command, &error);
        goto done;
    }
    if (!o->quiet) {
        char from[32], to[32], customers[48] = "";
        format_time(first_time, from, sizeof from);
        format_time(last_time, to, sizeof to);
        if (count_distinct)
            snprintf(customers, sizeof customers, "%llu of ", (unsigned long long)distinct);
        printf("generated %zu transactions: %s%llu customers, %llu return lines (%.2f%%), "
               "%s .. %s UTC (seed %llu) -> %s\n",
               n, customers, (unsigned long long)o->model.customers,
               (unsigned long long)returns, 100.0 * (double)returns / (double)n, from, to,
               (unsigned long long)o->model.seed, o->output);
    }
    exit_code = KSEG_EXIT_OK;

done:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    kseg_transaction_writer_abort(writer);
    free(customer_id);
    free(times);
    free(invoice);
    free(amount);
    free(quantity);
    free(price);
    free(cancelled);
    for (size_t c = 0; c < n_categories; c++)
        free(codes[c]);
    free(seen);
    return exit_code;
}

/* argv[0] is "transactions" (the kind after `kseg generate`); the options follow. */
int kseg_cmd_generate_transactions(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    kseg_transaction_options_defaults(&o.model);
    o.chunk_rows = DEFAULT_CHUNK_ROWS;
    int exit_code = parse_options(argc, argv, &o);
    if (exit_code >= 0)
        return exit_code;
    return run(&o);
}
