/* `kseg import transactions`: maps the columns of a CSV (or .csv.gz) transaction log by header
 * name, streams it into an HDF5 transaction file through the library's importer, and prints what
 * was read, written and rejected (with line numbers), so that nothing is dropped silently. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "kseg/import.h"

static const char *const command = "import";

static const char *const usage =
    "usage: kseg import transactions FILE.csv[.gz] -o FILE.h5 --customer COL --time COL\n"
    "                                (--amount COL | --quantity COL --price COL) [options]\n"
    "\n"
    "Read a CSV transaction log (plain or gzip-compressed; quoted fields, CRLF and a UTF-8 BOM\n"
    "are handled) and write the HDF5 layout 'kseg rfm' reads: group /transactions with\n"
    "customer_id, customer_valid, time (seconds since the epoch, UTC), amount, and the optional\n"
    "quantity, price, invoice, cancelled and category columns. Columns are named by the header.\n"
    "\n"
    "column mapping:\n"
    "      --customer COL     customer id: integers, integral float text (17850.0), or any text\n"
    "                         (then dictionary-encoded, dictionaries/customer_id). Empty ids are\n"
    "                         kept with customer_valid = 0 (required)\n"
    "      --time COL         transaction time (required); see --time-format\n"
    "      --amount COL       line amount, or:\n"
    "      --quantity COL     quantity and\n"
    "      --price COL        unit price: amount = quantity x price (both are stored too)\n"
    "      --invoice COL      invoice number: integers, else dictionary-encoded. An invoice\n"
    "                         starting with 'C' or a negative quantity sets cancelled = 1\n"
    "      --category COL     a text column to store dictionary-encoded, e.g. Country\n"
    "                         (repeatable, at most 32)\n"
    "\n"
    "options:\n"
    "  -o, --output FILE      output HDF5 file (required; replaced atomically if it exists)\n"
    "      --time-format FMT  strptime(3) format, read as UTC (default: auto-detect\n"
    "                         YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] with ' ' or 'T', an optional\n"
    "                         Z or +HH:MM offset, or Unix seconds)\n"
    "      --delimiter C      field separator, one character or 'tab' (default ',')\n"
    "      --gzip LEVEL       HDF5 compression level 0 to 9 (default 4)\n"
    "      --chunk-rows R     rows per HDF5 chunk (default 65536)\n"
    "      --block-rows R     rows buffered per write (default 1048576)\n"
    "  -q, --quiet            no progress and no summary (rejected rows are still reported)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Rows whose mapped fields do not parse (a bad number or time, a fractional customer id, a\n"
    "wrong field count, |amount| > 1e15) are not written: they are counted, and the summary and\n"
    "the attributes rejected_rows and rejected_lines_sample name their first line numbers.\n"
    "\n"
    "example:\n"
    "  kseg import transactions online_retail.csv.gz -o retail.h5 --customer CustomerID \\\n"
    "      --time InvoiceDate --quantity Quantity --price UnitPrice --invoice InvoiceNo \\\n"
    "      --category Country\n";

#define MAX_CATEGORIES KSEG_IMPORT_MAX_CATEGORIES

typedef struct options {
    kseg_import_options import;
    const char *categories[MAX_CATEGORIES];
    const char *input;
    const char *output;
    int quiet;
} options;

static volatile sig_atomic_t interrupted;

static void on_signal(int signal_number)
{
    interrupted = signal_number;
}

typedef struct progress_state {
    int show;
    int last_pass;
    int last_percent;
} progress_state;

/* Prints progress on a terminal and stops the import when a signal arrived. */
static int on_progress(void *data, int pass, double fraction)
{
    progress_state *state = data;
    if (state->show) {
        int percent = (int)(fraction * 100.0);
        if (pass != state->last_pass || percent != state->last_percent) {
            fprintf(stderr, "\rkseg import: %s %3d%%", pass == 1 ? "checking" : "writing ",
                    percent);
            state->last_pass = pass;
            state->last_percent = percent;
        }
    }
    return interrupted != 0;
}

static int parse_delimiter(const char *text, char *delimiter)
{
    if (strcmp(text, "tab") == 0 || strcmp(text, "\\t") == 0) {
        *delimiter = '\t';
        return 0;
    }
    if (strlen(text) != 1)
        return -1;
    *delimiter = text[0];
    return 0;
}

enum { OPT_CUSTOMER = 256, OPT_TIME, OPT_AMOUNT, OPT_QUANTITY, OPT_PRICE, OPT_INVOICE,
       OPT_CATEGORY, OPT_TIME_FORMAT, OPT_DELIMITER, OPT_GZIP, OPT_CHUNK, OPT_BLOCK };

/* File scope so that `kseg run` can accept exactly these options in its import section. */
const struct option kseg_import_long_options[] = {
    {"customer", required_argument, NULL, OPT_CUSTOMER},
    {"time", required_argument, NULL, OPT_TIME},
    {"amount", required_argument, NULL, OPT_AMOUNT},
    {"quantity", required_argument, NULL, OPT_QUANTITY},
    {"price", required_argument, NULL, OPT_PRICE},
    {"invoice", required_argument, NULL, OPT_INVOICE},
    {"category", required_argument, NULL, OPT_CATEGORY},
    {"time-format", required_argument, NULL, OPT_TIME_FORMAT},
    {"delimiter", required_argument, NULL, OPT_DELIMITER},
    {"gzip", required_argument, NULL, OPT_GZIP},
    {"chunk-rows", required_argument, NULL, OPT_CHUNK},
    {"block-rows", required_argument, NULL, OPT_BLOCK},
    {"output", required_argument, NULL, 'o'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int parse_options(int argc, char **argv, options *o)
{


    kseg_import_options *im = &o->import;
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":o:qh", kseg_import_long_options, NULL)) != -1) {
        int bad = 0;
        int64_t value;
        switch (option) {
        case OPT_CUSTOMER:
            im->customer = optarg;
            break;
        case OPT_TIME:
            im->time = optarg;
            break;
        case OPT_AMOUNT:
            im->amount = optarg;
            break;
        case OPT_QUANTITY:
            im->quantity = optarg;
            break;
        case OPT_PRICE:
            im->price = optarg;
            break;
        case OPT_INVOICE:
            im->invoice = optarg;
            break;
        case OPT_CATEGORY:
            if (im->n_categories == MAX_CATEGORIES)
                return cli_failf(command, KSEG_EXIT_USAGE, "--category: at most %d columns",
                                 MAX_CATEGORIES);
            if (!*optarg)
                return cli_failf(command, KSEG_EXIT_USAGE, "--category: empty column name");
            o->categories[im->n_categories++] = optarg;
            break;
        case OPT_TIME_FORMAT:
            if (!*optarg)
                return cli_failf(command, KSEG_EXIT_USAGE, "--time-format: empty format");
            im->time_format = optarg;
            break;
        case OPT_DELIMITER:
            if (parse_delimiter(optarg, &im->delimiter) != 0 || im->delimiter == '"')
                return cli_failf(command, KSEG_EXIT_USAGE,
                                 "--delimiter: expected one character other than '\"' (or "
                                 "'tab'), got '%s'",
                                 optarg);
            break;
        case OPT_GZIP:
            bad = cli_parse_int64(command, "--gzip", optarg, 0, 9, &value);
            im->gzip_level = (int)value;
            break;
        case OPT_CHUNK:
            bad = cli_parse_int64(command, "--chunk-rows", optarg, 1, (int64_t)1 << 24, &value);
            im->chunk_rows = (size_t)value;
            break;
        case OPT_BLOCK:
            bad = cli_parse_int64(command, "--block-rows", optarg, 1, (int64_t)1 << 26, &value);
            im->block_rows = (size_t)value;
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
                             "unknown option '%s' (run 'kseg import transactions --help')",
                             argv[optind - 1]);
        }
        if (bad)
            return KSEG_EXIT_USAGE;
    }
    if (optind >= argc)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing the input file FILE.csv[.gz]");
    if (optind + 1 < argc)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "unexpected argument '%s' (one input file; run 'kseg import "
                         "transactions --help')",
                         argv[optind + 1]);
    o->input = argv[optind];
    if (!o->output || !*o->output)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing -o FILE.h5");
    if (!im->customer)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --customer COL (customer id column)");
    if (!im->time)
        return cli_failf(command, KSEG_EXIT_USAGE, "missing --time COL (time column)");
    if (!im->amount && !im->quantity && !im->price)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "missing --amount COL (or --quantity COL with --price COL)");
    if (!im->amount && (!im->quantity || !im->price))
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "%s needs %s too (amount = quantity x price), or give --amount COL",
                         im->quantity ? "--quantity" : "--price",
                         im->quantity ? "--price" : "--quantity");
    im->categories = o->categories;
    return -1;
}

static void format_time(int64_t seconds, char *buffer, size_t size)
{
    time_t t = (time_t)seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buffer, size, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buffer, size, "%lld", (long long)seconds);
}

/* "5, 17, 99" (and ", ..." when more were rejected than listed). */
static void format_lines(const kseg_import_stats *st, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t k = 0; k < st->n_rejected_lines && used < size; k++)
        used += (size_t)snprintf(buffer + used, size - used, "%s%llu", k ? ", " : "",
                                 (unsigned long long)st->rejected_lines[k]);
    if (st->rows_rejected > st->n_rejected_lines && used < size)
        snprintf(buffer + used, size - used, ", ...");
}

static void print_summary(const options *o, const kseg_import_stats *st)
{
    const kseg_import_options *im = &o->import;
    char from[32], to[32], lines[160];
    format_time(st->time_min, from, sizeof from);
    format_time(st->time_max, to, sizeof to);
    format_lines(st, lines, sizeof lines);
    printf("imported %s -> %s\n", o->input, o->output);
    printf("  rows read          %llu (%llu lines with the header)\n",
           (unsigned long long)st->rows_read, (unsigned long long)st->lines);
    printf("  rows written       %llu\n", (unsigned long long)st->rows_written);
    if (st->rows_rejected)
        printf("  rows rejected      %llu (lines %s; first: %s)\n",
               (unsigned long long)st->rows_rejected, lines, st->first_rejection);
    else
        printf("  rows rejected      0\n");
    printf("  without customer   %llu (kept, customer_valid = 0)\n",
           (unsigned long long)st->rows_without_customer);
    printf("  customers          %llu distinct (%s ids)\n",
           (unsigned long long)st->distinct_customers,
           st->customer_ids_text ? "text, dictionary-encoded" : "integer");
    if (im->invoice) {
        printf("  invoices           %llu distinct (%s)", (unsigned long long)st->distinct_invoices,
               st->invoices_text ? "text, dictionary-encoded" : "integer");
        if (st->rows_without_invoice)
            printf(", %llu rows without one", (unsigned long long)st->rows_without_invoice);
        printf("\n");
    }
    printf("  time range         %s .. %s UTC\n", from, to);
    if (im->invoice || im->quantity) {
        printf("  cancelled          %llu rows", (unsigned long long)st->cancelled_rows);
        const char *separator = " (";
        if (im->invoice) {
            printf("%sinvoice starting with 'C': %llu", separator,
                   (unsigned long long)st->cancelled_invoice_rows);
            separator = "; ";
        }
        if (im->quantity)
            printf("%snegative quantity: %llu", separator,
                   (unsigned long long)st->negative_quantity_rows);
        printf(")\n");
    }
    for (size_t c = 0; c < st->n_categories; c++)
        printf("  %-18s %llu distinct values\n", im->categories[c],
               (unsigned long long)st->category_levels[c]);
}

static int run(options *o)
{
    kseg_error error;
    kseg_error_clear(&error);
    kseg_import_stats stats;
    progress_state progress = {!o->quiet && cli_stderr_is_terminal(), 0, -1};
    o->import.progress = on_progress;
    o->import.progress_data = &progress;

    struct sigaction action, old_int, old_term;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
    int status = kseg_import_transactions(o->input, o->output, &o->import, &stats, &error);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (progress.show && progress.last_pass)
        fputc('\n', stderr);
    if (status) {
        if (status == KSEG_ECANCELED)
            return cli_failf(command, KSEG_EXIT_FAILURE, "interrupted; %s was not written",
                             o->output);
        return cli_fail(command, &error);
    }
    if (!o->quiet)
        print_summary(o, &stats);
    if (stats.rows_rejected) {
        char lines[160];
        fflush(stdout); /* the summary first, where both go to one terminal */
        format_lines(&stats, lines, sizeof lines);
        cli_warnf(command, "%llu of %llu rows were not imported (lines %s; first: %s)",
                  (unsigned long long)stats.rows_rejected, (unsigned long long)stats.rows_read,
                  lines, stats.first_rejection);
    }
    return KSEG_EXIT_OK;
}

/* argv[0] is "import"; argv[1] names what to import ("transactions"). */
int kseg_cmd_import(int argc, char **argv)
{
    if (argc < 2)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "expected transactions (run 'kseg import transactions --help')");
    const char *kind = argv[1];
    if (strcmp(kind, "--help") == 0 || strcmp(kind, "-h") == 0 || strcmp(kind, "help") == 0) {
        fputs(usage, stdout);
        return KSEG_EXIT_OK;
    }
    if (strcmp(kind, "transactions") != 0)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "unknown kind '%s' (expected transactions; run 'kseg import --help')",
                         kind);
    options o;
    memset(&o, 0, sizeof o);
    kseg_import_options_defaults(&o.import);
    int exit_code = parse_options(argc - 1, argv + 1, &o);
    if (exit_code >= 0)
        return exit_code;
    return run(&o);
}
