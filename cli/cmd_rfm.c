/* `kseg rfm`: reads a transaction file block by block, computes per-customer recency, frequency,
 * monetary value and tenure with quantile scores and named segments, writes them to HDF5 (and
 * optionally CSV) atomically, and prints what each filtering stage removed and a segment table. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

static const char *const command = "rfm";

static const char *const rfm_usage =
    "usage: kseg rfm TX.h5[:/group] -o RFM.h5 [options]\n"
    "\n"
    "Score every customer of a transaction file (group /transactions by default, the layout\n"
    "'kseg import transactions' writes) by recency, frequency and monetary value, and name\n"
    "their RFM segment. RFM.h5 gets group /rfm (written under a temporary name, then renamed):\n"
    "customer_id, recency, frequency, monetary, tenure, rows, score [n, 3] (R, F, M),\n"
    "segment, segment_names, cuts [3, bins + 1], stages/, segment_customers, segment_revenue,\n"
    "and attributes reference_date, options (JSON), stages (JSON), totals.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE          result file (required; must differ from TX)\n"
    "      --reference-date DATE  YYYY-MM-DD: measure recency and tenure up to midnight UTC\n"
    "                             starting that day (default: the day after the last kept\n"
    "                             purchase). A date before the last kept purchase is refused\n"
    "                             (recency would be negative) unless --allow-early-reference\n"
    "      --allow-early-reference  accept such a date; recency is then negative for customers\n"
    "                             who bought after it\n"
    "      --frequency MODE       invoices (distinct invoices; the default when the file has\n"
    "                             an invoice column), lines (purchase lines; the default\n"
    "                             otherwise) or days (distinct purchase days, UTC)\n"
    "      --monetary MODE        sum (total amount, default) or mean (total / frequency)\n"
    "      --where COL=VALUE      keep rows whose category column COL is VALUE; repeat it:\n"
    "                             conditions on one column are alternatives (OR), on different\n"
    "                             columns all must hold (AND)\n"
    "      --returns MODE         drop (default): remove returns and cancellations (cancelled\n"
    "                             = 1, quantity < 0 or amount < 0); net: keep them in the\n"
    "                             monetary sum only\n"
    "      --min-price P          remove rows whose price (amount without a price column) is\n"
    "                             below P (default: no filter)\n"
    "      --dedupe               remove exact duplicate rows (every column equal) after the\n"
    "                             first; needs 32 bytes per distinct row\n"
    "      --bins N               score bins, 2..10 with the built-in map, 2..100 with --map\n"
    "                             (default 5)\n"
    "      --ties MODE            rank (default): equal-count bins over customers ordered by\n"
    "                             (value, customer id), pandas qcut(rank(method='first'));\n"
    "                             value: cut points at the value quantiles (numpy linear), equal\n"
    "                             values share a score\n"
    "      --best MODE            high (default): score N is best (most recent, most frequent,\n"
    "                             highest monetary); low: score 1 is best. Segments do not\n"
    "                             change\n"
    "      --map FILE             segment map: lines 'Name | R scores | F scores' (e.g.\n"
    "                             'At Risk | 1-2 | 3-4', '*' = all) covering every cell of the\n"
    "                             grid exactly once (default: the built-in 11-segment map)\n"
    "      --csv FILE             also write the per-customer table as CSV (atomically)\n"
    "      --threads T            OpenMP threads for the aggregation, the scoring and the\n"
    "                             compression of RFM.h5 (default: OMP_NUM_THREADS or all\n"
    "                             cores); results are identical for any T. With 2 T at most\n"
    "                             the cores, each block is read ahead on a thread of its own\n"
    "  -q, --quiet                no progress and no summary\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Stages: each row is removed by the first that applies, in this order: no customer id\n"
    "(such rows still count in the totals), dedupe, where, min price, returns. The summary and\n"
    "/rfm/stages give the rows and customers (those left with no row) each removed.\n"
    "\n"
    "Features, per customer over the kept rows: recency = whole days from the last purchase\n"
    "to the reference time; tenure = whole days from the first purchase; frequency as chosen;\n"
    "monetary = sum of kept amounts (returns netted with --returns net) or that / frequency;\n"
    "rows = kept lines. Returns are never purchases: a customer with returns only is dropped\n"
    "(counted under 'returns'). R scores count fewer days as better.\n"
    "\n"
    "Speed: where customer ids lie in a compact range, distinct invoices or days are first\n"
    "counted assuming that each customer's come in increasing order (a log sorted by time);\n"
    "if one goes back, the file is read a second time the exact way, and the summary's time\n"
    "line says 'read twice'. The results are the same either way.\n"
    "\n"
    "Built-in map (R rows 5..1, F columns 1..5; other bin counts use level ceil(5 s / N)):\n"
    "  R=5  New Customers   Potential Loyal. Potential Loyal. Champions        Champions\n"
    "  R=4  Promising       Potential Loyal. Potential Loyal. Loyal Customers  Loyal Customers\n"
    "  R=3  About to Sleep  About to Sleep   Need Attention   Loyal Customers  Loyal Customers\n"
    "  R=2  Hibernating     Hibernating      At Risk          At Risk          Can't Lose Them\n"
    "  R=1  Lost            Hibernating      At Risk          At Risk          Can't Lose Them\n"
    "\n"
    "example:\n"
    "  kseg rfm retail.h5 -o rfm.h5 --where Country='United Kingdom' --csv rfm.csv\n";

/* Rows requested from the reader at a time. */
#define READ_BLOCK_ROWS ((size_t)1 << 20)

/* Compression of the result datasets: level 1 writes the 685k-customer table of the benchmark in
 * about half the time of level 4, for a file about 5% larger. */
#define RESULT_GZIP_LEVEL 1

/* One block read, on a thread of its own while the previous block is aggregated, or at once.
 * Each job has its own reader (a block's buffers belong to its reader), and only the job's thread
 * calls HDF5 while it runs (the library is not thread-safe; the aggregation makes no HDF5
 * call). */
typedef struct read_job {
    kseg_transaction_reader *reader;
    size_t offset, count;
    kseg_transactions block;
    kseg_error error;
    int status;
    pthread_t thread;
    int running;
} read_job;

static void *read_job_run(void *argument)
{
    read_job *job = argument;
    job->status =
        kseg_transaction_reader_read(job->reader, job->offset, job->count, &job->block,
                                     &job->error);
    return NULL;
}

/* Starts reading [offset, offset + count): on a thread in the background, else (or when no thread
 * starts) here. */
static void read_job_start(read_job *job, size_t offset, size_t count, int in_background)
{
    job->offset = offset;
    job->count = count;
    kseg_error_clear(&job->error);
    job->running = 0;
    if (!in_background) {
        read_job_run(job);
        return;
    }
    /* The reader thread starts with the termination signals blocked (it inherits the mask), so
       their handler, which removes temporary files, runs on this thread, never concurrently
       with a reader that is inside HDF5. */
    sigset_t termination, previous;
    sigemptyset(&termination);
    sigaddset(&termination, SIGINT);
    sigaddset(&termination, SIGTERM);
    sigaddset(&termination, SIGHUP);
    sigaddset(&termination, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &termination, &previous);
    job->running = pthread_create(&job->thread, NULL, read_job_run, job) == 0;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (!job->running)
        read_job_run(job);
}

static int read_job_finish(read_job *job)
{
    if (job->running) {
        pthread_join(job->thread, NULL);
        job->running = 0;
    }
    return job->status;
}

#define SECONDS_PER_DAY ((int64_t)86400)

/* The distributed path's reader: kseg_rfm_distributed asks each rank for the rows of its share of
 * every round (and first for none, to see the columns). */
static int read_rows_for_rank(void *context, size_t offset, size_t rows, kseg_transactions *block,
                              kseg_error *error)
{
    return kseg_transaction_reader_read(context, offset, rows, block, error);
}

/* ---------------------------------------------------------------- dates */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t year, int64_t month, int64_t day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t day_of_era = days - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t mp = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t quotient = a / b;
    return (a % b != 0 && a < 0) ? quotient - 1 : quotient;
}

/* "YYYY-MM-DD", or "YYYY-MM-DD HH:MM:SS UTC" when the time is not midnight. */
static void format_time(int64_t seconds, char *text, size_t size)
{
    int64_t days = floor_div(seconds, SECONDS_PER_DAY), year;
    int64_t second_of_day = seconds - days * SECONDS_PER_DAY;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    if (second_of_day == 0)
        snprintf(text, size, "%04lld-%02d-%02d", (long long)year, month, day);
    else
        snprintf(text, size, "%04lld-%02d-%02d %02d:%02d:%02d UTC", (long long)year, month, day,
                 (int)(second_of_day / 3600), (int)(second_of_day / 60 % 60),
                 (int)(second_of_day % 60));
}

/* Strict YYYY-MM-DD (a real calendar date) -> seconds at midnight UTC. */
static int parse_date(const char *text, int64_t *seconds)
{
    int year, month, day, consumed = 0;
    if (strlen(text) != 10 || sscanf(text, "%4d-%2d-%2d%n", &year, &month, &day, &consumed) != 3 ||
        consumed != 10 || text[4] != '-' || text[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (text[i] < '0' || text[i] > '9'))
            return -1;
    if (month < 1 || month > 12 || day < 1)
        return -1;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap))
        return -1;
    *seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY;
    return 0;
}

/* ---------------------------------------------------------------- small helpers */

static const char *frequency_name(kseg_frequency_mode mode)
{
    return mode == KSEG_FREQUENCY_INVOICES ? "invoices"
           : mode == KSEG_FREQUENCY_LINES  ? "lines"
                                           : "days";
}

/* Appends text to a JSON document as a quoted string. */
static void json_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

/* The shortest "%.*g" text that reads back as the same double. */
static void format_double(double value, char *text, size_t size)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, size, "%.*g", digits, value);
        if (strtod(text, NULL) == value)
            return;
    }
}

/* Reads a whole text file; *text is malloc'd and NUL-terminated. */
/* Revenue of customer i: the sum of its kept amounts (monetary x frequency in mean mode). */
static double customer_revenue(const kseg_rfm_table *table, size_t i, int mean)
{
    return mean ? table->monetary[i] * table->frequency[i] : table->monetary[i];
}

/* ---------------------------------------------------------------- CSV */

/* Writes the table to the crash-safe output file, finished (on disk) but not yet renamed: the
 * caller commits it once the HDF5 result is committed, so the CSV never appears without it. */
static int write_csv(const char *path, const kseg_rfm_table *table, kseg_output_file *csv,
                     kseg_error *error)
{
    int status = kseg_output_file_open(csv, path, error);
    if (status)
        return status;
    FILE *out = csv->stream;
    fputs("customer_id,recency,frequency,monetary,tenure,rows,r_score,f_score,m_score,segment\n",
          out);
    char recency[32], frequency[32], monetary[32], tenure[32];
    for (size_t i = 0; i < table->n_customers; i++) {
        format_double(table->recency[i], recency, sizeof recency);
        format_double(table->frequency[i], frequency, sizeof frequency);
        format_double(table->monetary[i], monetary, sizeof monetary);
        format_double(table->tenure[i], tenure, sizeof tenure);
        fprintf(out, "%lld,%s,%s,%s,%s,%lld,%d,%d,%d,", (long long)table->customer_id[i], recency,
                frequency, monetary, tenure, (long long)table->rows[i], table->scores[3 * i],
                table->scores[3 * i + 1], table->scores[3 * i + 2]);
        cli_csv_field(out, table->map.names[table->segment[i]]);
        fputc('\n', out);
    }
    return kseg_output_file_finish(csv, error);
}

/* ---------------------------------------------------------------- result file */

typedef struct run_settings {
    const char *input;
    const char *map_path;
    const kseg_rfm_filter *filters;
    size_t n_filters;
    int reference_given;
    int allow_early_reference;
} run_settings;

/* The options as a JSON object (malloc'd). */
static char *options_json(const kseg_rfm_options *options, const kseg_rfm_table *table,
                          const run_settings *settings)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    char date[48];
    format_time(table->reference_time, date, sizeof date);
    fprintf(out, "{\"reference_date\":");
    json_string(out, date);
    fprintf(out, ",\"reference_given\":%s,\"allow_early_reference\":%s,\"frequency\":\"%s\","
                 "\"monetary\":\"%s\",\"returns\":\"%s\",\"min_price\":",
            settings->reference_given ? "true" : "false",
            settings->allow_early_reference ? "true" : "false",
            frequency_name(table->frequency_mode),
            options->monetary == KSEG_MONETARY_SUM ? "sum" : "mean",
            options->returns == KSEG_RETURNS_DROP ? "drop" : "net");
    if (isnan(options->min_price))
        fputs("null", out);
    else
        fprintf(out, "%.17g", options->min_price);
    fprintf(out, ",\"dedupe\":%s,\"where\":[", options->dedupe ? "true" : "false");
    for (size_t f = 0; f < settings->n_filters; f++) {
        fputs(f ? ",[" : "[", out);
        json_string(out, settings->filters[f].column);
        fputc(',', out);
        json_string(out, settings->filters[f].value);
        fputc(']', out);
    }
    fprintf(out, "],\"bins\":%d,\"ties\":\"%s\",\"best\":\"%s\",\"map\":", (int)options->bins,
            options->ties == KSEG_TIES_RANK ? "rank" : "value",
            options->best == KSEG_BEST_HIGH ? "high" : "low");
    if (settings->map_path)
        json_string(out, settings->map_path);
    else
        fputs("\"built-in\"", out);
    fputc('}', out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static char *stages_json(const kseg_rfm_table *table)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    fputc('[', out);
    for (size_t s = 0; s < table->n_stages; s++) {
        fprintf(out, "%s{\"name\":", s ? "," : "");
        json_string(out, table->stages[s].name);
        fprintf(out, ",\"rows_removed\":%lld,\"customers_removed\":%lld}",
                (long long)table->stages[s].rows_removed,
                (long long)table->stages[s].customers_removed);
    }
    fputc(']', out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

typedef struct segment_totals {
    int64_t *customers; /* [n_segments] */
    double *revenue;    /* [n_segments] */
    int64_t *cells;     /* [n_segments]: cells of the map in the segment */
} segment_totals;

static int write_result(kseg_h5_writer *writer, const kseg_rfm_table *table,
                        const kseg_rfm_options *options, const run_settings *settings,
                        const segment_totals *totals, kseg_error *error)
{
    const size_t n = table->n_customers, bins = (size_t)table->bins;
    const size_t n_segments = table->map.n_segments;
    const size_t chunk = n < 65536 ? n : 65536;
    size_t dims[2] = {n, 3};
    size_t cut_dims[2] = {3, bins + 1};
    size_t segment_dims[1] = {n_segments};
    size_t stage_dims[1] = {table->n_stages};
    static const char *const score_columns[] = {"R", "F", "M"};
    static const char *const cut_rows[] = {"recency", "frequency", "monetary"};
    const char *stage_names[KSEG_RFM_MAX_STAGES];
    int64_t stage_rows[KSEG_RFM_MAX_STAGES], stage_customers[KSEG_RFM_MAX_STAGES];
    int64_t kept_rows = 0;
    for (size_t i = 0; i < n; i++)
        kept_rows += table->rows[i];
    for (size_t s = 0; s < table->n_stages; s++) {
        stage_names[s] = table->stages[s].name;
        stage_rows[s] = table->stages[s].rows_removed;
        stage_customers[s] = table->stages[s].customers_removed;
    }
    char reference_date[48], last_purchase[48];
    format_time(table->reference_time, reference_date, sizeof reference_date);
    format_time(table->last_time, last_purchase, sizeof last_purchase);

    int status;
    if ((status = kseg_h5_write_dataset(writer, "/rfm/customer_id", KSEG_STORE_INT64, 1, dims,
                                        table->customer_id, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/recency", KSEG_STORE_FLOAT64, 1, dims,
                                        table->recency, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/frequency", KSEG_STORE_FLOAT64, 1, dims,
                                        table->frequency, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/monetary", KSEG_STORE_FLOAT64, 1, dims,
                                        table->monetary, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/tenure", KSEG_STORE_FLOAT64, 1, dims,
                                        table->tenure, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/rows", KSEG_STORE_INT64, 1, dims,
                                        table->rows, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/score", KSEG_STORE_INT32, 2, dims,
                                        table->scores, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/rfm/score", "columns", score_columns,
                                                  3, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/segment", KSEG_STORE_INT32, 1, dims,
                                        table->segment, chunk, RESULT_GZIP_LEVEL, error)) ||
        (status = kseg_h5_write_strings(writer, "/rfm/segment_names",
                                        (const char *const *)table->map.names, n_segments,
                                        error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/segment_customers", KSEG_STORE_INT64, 1,
                                        segment_dims, totals->customers, 0, 0, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/segment_revenue", KSEG_STORE_FLOAT64, 1,
                                        segment_dims, totals->revenue, 0, 0, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/cuts", KSEG_STORE_FLOAT64, 2, cut_dims,
                                        table->cuts, 0, 0, error)) ||
        (status = kseg_h5_write_attribute_strings(writer, "/rfm/cuts", "rows", cut_rows, 3,
                                                  error)) ||
        (status = kseg_h5_write_strings(writer, "/rfm/stages/name", stage_names,
                                        table->n_stages, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/stages/rows_removed", KSEG_STORE_INT64, 1,
                                        stage_dims, stage_rows, 0, 0, error)) ||
        (status = kseg_h5_write_dataset(writer, "/rfm/stages/customers_removed",
                                        KSEG_STORE_INT64, 1, stage_dims, stage_customers, 0, 0,
                                        error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/rfm", "reference_date",
                                                 reference_date, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "reference_time",
                                                table->reference_time, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/rfm", "last_purchase", last_purchase,
                                                 error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "last_time", table->last_time,
                                                error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "total_rows", table->total_rows,
                                                error)) ||
        (status = kseg_h5_write_attribute_double(writer, "/rfm", "total_amount",
                                                 table->total_amount, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "kept_rows", kept_rows, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "customers", (int64_t)n,
                                                error)) ||
        (status = kseg_h5_write_attribute_int64(writer, "/rfm", "bins", table->bins, error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/rfm", "frequency_mode",
                                                 frequency_name(table->frequency_mode), error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/rfm", "source", settings->input,
                                                 error)) ||
        (status = kseg_h5_write_attribute_string(writer, "/rfm", "kseg_version",
                                                 kseg_version_string(), error)))
        return status;
    char *json = options_json(options, table, settings);
    char *stages = stages_json(table);
    if (!json || !stages)
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    else if (!(status = kseg_h5_write_attribute_string(writer, "/rfm", "options", json, error)))
        status = kseg_h5_write_attribute_string(writer, "/rfm", "stages", stages, error);
    free(json);
    free(stages);
    return status;
}

/* ---------------------------------------------------------------- summary */

/* Rounds shares (each value / total) to tenths of a percent so that they add up to exactly
 * 100.0: largest remainders get the leftover tenths. Plain rounding when a value is negative
 * (netted returns), where "adds up" has no meaning. */
static void rounded_shares(const double *values, const size_t *order, size_t count, double total,
                           double *tenths)
{
    int any_negative = 0;
    for (size_t k = 0; k < count; k++)
        any_negative |= values[order[k]] < 0;
    if (total <= 0 || any_negative) {
        for (size_t k = 0; k < count; k++)
            tenths[k] = total != 0 ? round(1000.0 * values[order[k]] / total) : 0;
        return;
    }
    double assigned = 0;
    double *remainder = malloc((count ? count : 1) * sizeof *remainder);
    for (size_t k = 0; k < count; k++) {
        double exact = 1000.0 * values[order[k]] / total;
        tenths[k] = floor(exact);
        if (remainder)
            remainder[k] = exact - tenths[k];
        assigned += tenths[k];
    }
    for (double left = 1000.0 - assigned; left > 0.5 && remainder; left -= 1.0) {
        size_t best = 0;
        for (size_t k = 1; k < count; k++)
            if (remainder[k] > remainder[best])
                best = k;
        tenths[best] += 1.0;
        remainder[best] = -1.0;
    }
    free(remainder);
}

static void print_summary(const kseg_rfm_table *table, const kseg_rfm_options *options,
                          const segment_totals *totals, double seconds_read, int read_twice,
                          double seconds_finish, double seconds_write)
{
    char reference[48];
    format_time(table->reference_time, reference, sizeof reference);
    int64_t kept_rows = 0;
    for (size_t i = 0; i < table->n_customers; i++)
        kept_rows += table->rows[i];
    printf("kseg rfm: %lld rows -> %zu customers (reference %s, frequency %s, monetary %s, "
           "returns %s, %d bins by %s)\n",
           (long long)table->total_rows, table->n_customers, reference,
           frequency_name(table->frequency_mode),
           options->monetary == KSEG_MONETARY_SUM ? "sum" : "mean",
           options->returns == KSEG_RETURNS_DROP ? "dropped" : "netted", (int)table->bins,
           options->ties == KSEG_TIES_RANK ? "rank" : "value");
    printf("\n  %-16s %14s %18s\n", "stage", "rows removed", "customers removed");
    for (size_t s = 0; s < table->n_stages; s++) {
        int active = s == 0 || (s == 1 && options->dedupe) || (s == 2 && options->n_filters) ||
                     (s == 3 && !isnan(options->min_price)) || s == 4;
        if (!active) {
            printf("  %-16s %14s %18s\n", table->stages[s].name, "off", "off");
            continue;
        }
        if (s == 0)
            printf("  %-16s %14lld %18s\n", table->stages[s].name,
                   (long long)table->stages[s].rows_removed, "-");
        else
            printf("  %-16s %14lld %18lld\n", table->stages[s].name,
                   (long long)table->stages[s].rows_removed,
                   (long long)table->stages[s].customers_removed);
    }
    printf("  %-16s %14lld %18zu\n", "kept", (long long)kept_rows, table->n_customers);

    /* Segments that the map can produce, by revenue (then customers) descending. */
    size_t n_segments = table->map.n_segments, shown = 0;
    size_t *order = malloc((n_segments ? n_segments : 1) * sizeof *order);
    double *customer_values = malloc((n_segments ? n_segments : 1) * sizeof *customer_values);
    double *customer_tenths = malloc((n_segments ? n_segments : 1) * sizeof *customer_tenths);
    double *revenue_tenths = malloc((n_segments ? n_segments : 1) * sizeof *revenue_tenths);
    if (!order || !customer_values || !customer_tenths || !revenue_tenths)
        goto done;
    for (size_t s = 0; s < n_segments; s++) {
        customer_values[s] = (double)totals->customers[s];
        if (totals->cells[s])
            order[shown++] = s;
    }
    for (size_t a = 1; a < shown; a++)
        for (size_t b = a; b > 0; b--) {
            size_t left = order[b - 1], right = order[b];
            int swap = totals->revenue[right] > totals->revenue[left] ||
                       (totals->revenue[right] == totals->revenue[left] &&
                        totals->customers[right] > totals->customers[left]);
            if (!swap)
                break;
            order[b - 1] = right;
            order[b] = left;
        }
    double total_revenue = 0;
    for (size_t s = 0; s < n_segments; s++)
        total_revenue += totals->revenue[s];
    rounded_shares(customer_values, order, shown, (double)table->n_customers, customer_tenths);
    rounded_shares(totals->revenue, order, shown, total_revenue, revenue_tenths);
    printf("\n  %-22s %10s %7s %16s %7s\n", "segment", "customers", "share", "revenue", "share");
    for (size_t k = 0; k < shown; k++) {
        size_t s = order[k];
        printf("  %-22.22s %10lld %6.1f%% %16.2f %6.1f%%\n", table->map.names[s],
               (long long)totals->customers[s], customer_tenths[k] / 10.0, totals->revenue[s],
               revenue_tenths[k] / 10.0);
    }
    printf("  %-22s %10zu %6.1f%% %16.2f %6.1f%%\n", "total", table->n_customers, 100.0,
           total_revenue, 100.0);
    printf("\n  time: read and aggregate %.3f s%s, score %.3f s, write %.3f s\n", seconds_read,
           read_twice ? " (read twice: some customer's invoices or days are out of order)"
                      : "",
           seconds_finish, seconds_write);
done:
    free(order);
    free(customer_values);
    free(customer_tenths);
    free(revenue_tenths);
}

/* ---------------------------------------------------------------- the command */

static int parse_choice(const char *option, const char *text, const char *const *names,
                        int count, int *value)
{
    for (int i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0) {
            *value = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; i < count; i++) {
        strcat(list, i ? (i == count - 1 ? " or " : ", ") : "");
        strcat(list, names[i]);
    }
    cli_failf(command, KSEG_EXIT_USAGE, "%s: expected %s, got '%s'", option, list, text);
    return -1;
}

/* File scope so that `kseg run` can accept exactly these options in its rfm section. */
const struct option kseg_rfm_long_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"reference-date", required_argument, NULL, 'R'},
    {"allow-early-reference", no_argument, NULL, 'E'},
    {"frequency", required_argument, NULL, 'F'},
    {"monetary", required_argument, NULL, 'M'},
    {"where", required_argument, NULL, 'W'},
    {"returns", required_argument, NULL, 'r'},
    {"min-price", required_argument, NULL, 'P'},
    {"dedupe", no_argument, NULL, 'D'},
    {"bins", required_argument, NULL, 'b'},
    {"ties", required_argument, NULL, 'T'},
    {"best", required_argument, NULL, 'B'},
    {"map", required_argument, NULL, 'm'},
    {"csv", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, 'j'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

int kseg_cmd_rfm(int argc, char **argv)
{

    static const char *const frequency_names[] = {"invoices", "lines", "days"};
    static const char *const monetary_names[] = {"sum", "mean"};
    static const char *const returns_names[] = {"drop", "net"};
    static const char *const ties_names[] = {"rank", "value"};
    static const char *const best_names[] = {"high", "low"};

    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    run_settings settings = {0};
    const char *output = NULL, *csv_path = NULL;
    int quiet = 0, choice;
    int64_t value;
    /* At most one --where condition per argument. */
    kseg_rfm_filter *filters = calloc((size_t)argc + 1, sizeof *filters);
    size_t n_filters = 0;
    if (!filters)
        return cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");

    optind = 1;
    opterr = 0;
    int option, exit_code = KSEG_EXIT_USAGE;
    while ((option = getopt_long(argc, argv, ":o:qh", kseg_rfm_long_options, NULL)) != -1) {
        switch (option) {
        case 'o':
            output = optarg;
            break;
        case 'R':
            if (parse_date(optarg, &options.reference_time)) {
                cli_failf(command, KSEG_EXIT_USAGE,
                          "--reference-date: expected a date YYYY-MM-DD, got '%s'", optarg);
                goto done;
            }
            settings.reference_given = 1;
            break;
        case 'E':
            settings.allow_early_reference = 1;
            break;
        case 'F':
            if (parse_choice("--frequency", optarg, frequency_names, 3, &choice))
                goto done;
            options.frequency = (kseg_frequency_mode)choice;
            options.frequency_explicit = 1;
            break;
        case 'M':
            if (parse_choice("--monetary", optarg, monetary_names, 2, &choice))
                goto done;
            options.monetary = (kseg_monetary_mode)choice;
            break;
        case 'W': {
            char *equals = strchr(optarg, '=');
            if (!equals || equals == optarg) {
                cli_failf(command, KSEG_EXIT_USAGE, "--where: expected COL=VALUE, got '%s'",
                          optarg);
                goto done;
            }
            char *column = strndup(optarg, (size_t)(equals - optarg));
            if (!column) {
                cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
                goto done;
            }
            filters[n_filters].column = column;
            filters[n_filters].value = equals + 1; /* argv outlives the run */
            n_filters++;
            break;
        }
        case 'r':
            if (parse_choice("--returns", optarg, returns_names, 2, &choice))
                goto done;
            options.returns = (kseg_returns_mode)choice;
            break;
        case 'P':
            if (cli_parse_double(command, "--min-price", optarg, -1e300, 1e300,
                                 &options.min_price))
                goto done;
            break;
        case 'D':
            options.dedupe = 1;
            break;
        case 'b':
            if (cli_parse_int64(command, "--bins", optarg, 2, 100, &value))
                goto done;
            options.bins = (int32_t)value;
            break;
        case 'T':
            if (parse_choice("--ties", optarg, ties_names, 2, &choice))
                goto done;
            options.ties = (kseg_ties_mode)choice;
            break;
        case 'B':
            if (parse_choice("--best", optarg, best_names, 2, &choice))
                goto done;
            options.best = (kseg_best_mode)choice;
            break;
        case 'm':
            settings.map_path = optarg;
            break;
        case 'c':
            csv_path = optarg;
            break;
        case 'j':
            if (cli_parse_int64(command, "--threads", optarg, 1, 4096, &value))
                goto done;
            options.n_threads = (int32_t)value;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(rfm_usage, stdout);
            exit_code = KSEG_EXIT_OK;
            goto done;
        case ':':
            cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value", argv[optind - 1]);
            goto done;
        default:
            cli_failf(command, KSEG_EXIT_USAGE, "unknown option '%s' (run 'kseg rfm --help')",
                      argv[optind - 1]);
            goto done;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc)
            cli_failf(command, KSEG_EXIT_USAGE, "missing TX.h5 (run 'kseg rfm --help')");
        else
            cli_failf(command, KSEG_EXIT_USAGE, "expected one TX.h5, got extra argument '%s'",
                      argv[argc - 1]);
        goto done;
    }
    if (!output) {
        cli_failf(command, KSEG_EXIT_USAGE, "missing -o RFM.h5");
        goto done;
    }
    if (!settings.map_path && options.bins > 10) {
        cli_failf(command, KSEG_EXIT_USAGE,
                  "--bins %d: the built-in map supports 2 to 10 bins; give --map FILE",
                  (int)options.bins);
        goto done;
    }
    options.filters = filters;
    options.n_filters = n_filters;
    settings.input = argv[optind];
    settings.filters = filters;
    settings.n_filters = n_filters;

    exit_code = KSEG_EXIT_FAILURE;
    kseg_error error;
    kseg_error_clear(&error);
    char *input_file = NULL, *input_group = NULL, *map_text = NULL;
    kseg_output_file csv = {0};
    kseg_rfm_map map = {0};
    kseg_transaction_reader *reader = NULL;
    read_job jobs[2];
    memset(jobs, 0, sizeof jobs);
    kseg_rfm_aggregator *aggregator = NULL;
    kseg_h5_writer *writer = NULL;
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    segment_totals totals = {0};

    if (kseg_split_location(settings.input, &input_file, &input_group, &error)) {
        exit_code = cli_fail(command, &error);
        goto cleanup;
    }
    if (kseg_same_file(input_file, output) || (csv_path && kseg_same_file(input_file, csv_path))) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                              "output %s is the input file: refusing to overwrite the input",
                              kseg_same_file(input_file, output) ? output : csv_path);
        goto cleanup;
    }
    if (csv_path && (strcmp(csv_path, output) == 0 || kseg_same_file(csv_path, output))) {
        exit_code = cli_failf(command, KSEG_EXIT_USAGE, "--csv and -o name the same file %s",
                              output);
        goto cleanup;
    }
    if (settings.map_path) {
        if (cli_read_text_file(settings.map_path, "map file", &map_text, &error) ||
            kseg_rfm_map_parse(&map, map_text, options.bins, settings.map_path, &error)) {
            exit_code = cli_fail(command, &error);
            goto cleanup;
        }
        options.map = &map;
    }
    /* --threads also bounds the threads that compress the result datasets. */
    if (options.n_threads > 0)
        omp_set_num_threads((int)options.n_threads);
    /* Under mpirun every rank opens the input; all stop if any failed (cli_any_failed), so no
       rank waits in a collective call the others never make. Only rank 0 writes and prints. */
    const int distributed = cli_size() > 1;
    /* The serial path can read the file again, so the aggregator may count keys the fast way and
       ask for a second pass if the log is not in time order (kseg_rfm_aggregator_add). */
    options.restartable = !distributed;
    const int root = cli_rank() == 0;
    int failed = kseg_rfm_aggregator_create(&aggregator, &options, &error) ||
                 kseg_transaction_reader_open(&reader, input_file, input_group, &error);
    if (failed)
        exit_code = cli_fail(command, &error);
    if (cli_any_failed(failed)) {
        exit_code = KSEG_EXIT_FAILURE;
        goto cleanup;
    }
    /* Read only the columns the options use: returns need cancelled and quantity, the default
       frequency needs to know whether there are invoices, --min-price needs price, --where the
       categories, and --dedupe compares every column. */
    unsigned columns = KSEG_TX_CUSTOMER_ID | KSEG_TX_CUSTOMER_VALID | KSEG_TX_TIME |
                       KSEG_TX_AMOUNT | KSEG_TX_QUANTITY | KSEG_TX_CANCELLED;
    if (!options.frequency_explicit || options.frequency == KSEG_FREQUENCY_INVOICES)
        columns |= KSEG_TX_INVOICE;
    if (!isnan(options.min_price))
        columns |= KSEG_TX_PRICE;
    if (options.n_filters)
        columns |= KSEG_TX_CATEGORIES;
    if (options.dedupe)
        columns = KSEG_TX_ALL;
    /* Blocks are read ahead, in the background into a second reader, only where the read's
       threads (as many as the aggregation's) find cores of their own: with --threads 2 on 2
       cores, the 1e7-row benchmark took 0.232 s to read, aggregate and score with the reads in
       the background and 0.204 s with them in turn (medians of 11, file in the page cache);
       with --threads 1 the background reads save about a quarter. */
    jobs[0].reader = reader;
    const int read_ahead = !distributed && 2 * omp_get_max_threads() <= omp_get_num_procs();
    failed = (read_ahead &&
              kseg_transaction_reader_open(&jobs[1].reader, input_file, input_group, &error)) ||
             kseg_transaction_reader_select(reader, columns, &error) ||
             (read_ahead && kseg_transaction_reader_select(jobs[1].reader, columns, &error));
    /* Open the output before the expensive work: an unwritable destination fails at once. */
    if (!failed && root)
        failed = kseg_h5_writer_open(&writer, output, &error) != 0;
    if (failed)
        exit_code = cli_fail(command, &error);
    if (cli_any_failed(failed)) {
        exit_code = KSEG_EXIT_FAILURE;
        goto cleanup;
    }
    double started = omp_get_wtime();
    size_t total_rows = kseg_transaction_reader_rows(reader);
    /* The engine knows rows, not files: an empty log and a non-finite amount are named here
       with the file and dataset they come from. */
    const char *group_name = input_group ? input_group : "/transactions";
    if (total_rows == 0) {
        exit_code = KSEG_EXIT_FAILURE;
        if (root)
            cli_failf(command, KSEG_EXIT_FAILURE,
                      "%s:%s: no rows (expected at least one transaction)", input_file,
                      group_name);
        goto cleanup;
    }
    if (distributed) {
        /* Every rank gets the same table or the same error; rank 0 reports it. */
        kseg_comm comm;
        size_t row_count = 0;
        cli_comm_for_rows(&comm, total_rows, &row_count);
        if (kseg_rfm_distributed(&comm, total_rows, &options, read_rows_for_rank, reader, &table,
                                 &error)) {
            exit_code = KSEG_EXIT_FAILURE;
            if (root && error.code == KSEG_ENONFINITE)
                cli_failf(command, KSEG_EXIT_FAILURE,
                          "%s:%s/amount: %s (expected a finite amount)", input_file, group_name,
                          error.message);
            else if (root)
                cli_fail(command, &error);
            goto cleanup;
        }
    }
    int show_progress = !quiet && !distributed && cli_stderr_is_terminal();
    int read_twice = 0;
    /* Reading ahead, block k + 1 is read (into the other reader's buffers) while block k is
       aggregated; the blocks are still added in file order, so the results are those of reading
       in turn, which is what happens otherwise (one reader, each block read when it is due). */
    if (total_rows > 0 && read_ahead)
        read_job_start(&jobs[0], 0, total_rows < READ_BLOCK_ROWS ? total_rows : READ_BLOCK_ROWS,
                       1);
    for (size_t offset = 0, k = 0; !distributed && offset < total_rows;) {
        read_job *job = &jobs[read_ahead ? k % 2 : 0];
        if (!read_ahead)
            read_job_start(job, offset,
                           total_rows - offset < READ_BLOCK_ROWS ? total_rows - offset
                                                                 : READ_BLOCK_ROWS,
                           0);
        if (read_job_finish(job)) {
            if (show_progress)
                fputc('\n', stderr);
            exit_code = cli_fail(command, &job->error);
            goto cleanup;
        }
        size_t next = offset + READ_BLOCK_ROWS;
        if (read_ahead && next < total_rows)
            read_job_start(&jobs[(k + 1) % 2], next,
                           total_rows - next < READ_BLOCK_ROWS ? total_rows - next
                                                               : READ_BLOCK_ROWS,
                           1);
        int added = kseg_rfm_aggregator_add(aggregator, &job->block, &error);
        if (added == KSEG_ERESTART) {
            /* The log is not in time order: the aggregator has reset itself, and the file is
               read again from its first row (the block read ahead is dropped). */
            if (read_ahead && next < total_rows)
                (void)read_job_finish(&jobs[(k + 1) % 2]);
            offset = 0;
            k = 0;
            read_twice = 1;
            if (read_ahead)
                read_job_start(&jobs[0], 0,
                               total_rows < READ_BLOCK_ROWS ? total_rows : READ_BLOCK_ROWS, 1);
            continue;
        }
        if (added) {
            if (show_progress)
                fputc('\n', stderr);
            if (error.code == KSEG_ENONFINITE)
                exit_code = cli_failf(command, KSEG_EXIT_FAILURE,
                                      "%s:%s/amount: %s (expected a finite amount)", input_file,
                                      group_name, error.message);
            else
                exit_code = cli_fail(command, &error);
            goto cleanup;
        }
        if (show_progress)
            fprintf(stderr, "\rkseg rfm: %zu of %zu rows", offset + job->count, total_rows);
        offset += READ_BLOCK_ROWS;
        k++;
    }
    if (show_progress)
        fputc('\n', stderr);
    double aggregated = omp_get_wtime();
    if (!distributed && kseg_rfm_aggregator_finish(aggregator, &table, &error)) {
        exit_code = cli_fail(command, &error);
        goto cleanup;
    }
    double finished = omp_get_wtime();
    if (table.reference_before_last) {
        char reference[48], last[48];
        format_time(table.reference_time, reference, sizeof reference);
        format_time(table.last_time, last, sizeof last);
        if (!settings.allow_early_reference) {
            exit_code = KSEG_EXIT_FAILURE;
            if (root)
                cli_failf(command, KSEG_EXIT_FAILURE,
                          "reference date %s is before the last kept purchase (%s): recency "
                          "would be negative (pass --allow-early-reference to accept that)",
                          reference, last);
            goto cleanup;
        }
        if (!quiet && root)
            cli_warnf(command,
                      "reference date %s is before the last kept purchase (%s): customers who "
                      "bought after it have negative recency",
                      reference, last);
    }

    size_t n_segments = table.map.n_segments;
    totals.customers = calloc(n_segments ? n_segments : 1, sizeof *totals.customers);
    totals.revenue = calloc(n_segments ? n_segments : 1, sizeof *totals.revenue);
    totals.cells = calloc(n_segments ? n_segments : 1, sizeof *totals.cells);
    if (!totals.customers || !totals.revenue || !totals.cells) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        goto cleanup;
    }
    const int mean = options.monetary == KSEG_MONETARY_MEAN;
    for (size_t i = 0; i < table.n_customers; i++) {
        totals.customers[table.segment[i]]++;
        totals.revenue[table.segment[i]] += customer_revenue(&table, i, mean);
    }
    for (size_t c = 0; c < (size_t)table.bins * (size_t)table.bins; c++)
        totals.cells[table.map.cell_segment[c]]++;

    if (!root) {
        /* The other ranks computed the same table; rank 0 writes and prints it. */
        exit_code = KSEG_EXIT_OK;
        goto cleanup;
    }
    if (write_result(writer, &table, &options, &settings, &totals, &error) ||
        (csv_path && write_csv(csv_path, &table, &csv, &error))) {
        exit_code = cli_fail(command, &error);
        goto cleanup;
    }
    int committed = kseg_h5_writer_commit(writer, &error);
    writer = NULL; /* commit frees the writer even when it fails */
    if (committed) {
        exit_code = cli_fail(command, &error);
        goto cleanup;
    }
    if (csv.temporary_path && kseg_output_file_commit(&csv, &error) != 0) {
        exit_code = cli_failf(command, KSEG_EXIT_FAILURE, "%s (%s was written)", error.message,
                              output);
        goto cleanup;
    }
    /* Writing: the summary totals, the datasets (compressed), the CSV, and the commit with its
       fsync. */
    double written = omp_get_wtime();
    if (!quiet) {
        print_summary(&table, &options, &totals, aggregated - started, read_twice,
                      finished - aggregated, written - finished);
        printf("  written to %s%s%s\n", output, csv_path ? " and " : "", csv_path ? csv_path : "");
    }
    exit_code = KSEG_EXIT_OK;
cleanup:
    /* Before any other HDF5 call: a read may still be running on its thread. */
    read_job_finish(&jobs[0]);
    read_job_finish(&jobs[1]);
    kseg_h5_writer_abort(writer);
    kseg_output_file_abort(&csv);
    if (reader)
        kseg_transaction_reader_close(reader);
    if (jobs[1].reader)
        kseg_transaction_reader_close(jobs[1].reader);
    kseg_rfm_aggregator_destroy(aggregator);
    kseg_rfm_table_destroy(&table);
    kseg_rfm_map_destroy(&map);
    free(totals.customers);
    free(totals.revenue);
    free(totals.cells);
    free(map_text);
    free(input_file);
    free(input_group);
done:
    for (size_t f = 0; f < n_filters; f++)
        free((char *)filters[f].column);
    free(filters);
    return exit_code;
}
