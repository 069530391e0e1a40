/* CSV import through the library: quoted commas and newlines, CRLF, a byte order mark, gzip and
 * plain input giving the same file, integer / float-text / text customer ids, rejected rows with
 * their physical line numbers, the time parser, multi-block writes, and every error (missing
 * column, empty file, header only, unclosed quote, truncated gzip) with its code and message.
 * Files are read back with the transaction reader, so the two are tested together. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "kseg/import.h"
#include "kseg/io.h"
#include "scratch_dir.h"

/* ---------------------------------------------------------------- fixtures */

KSEG_SCRATCH_SUITE(import);

static const char *write_file(const char *name, const char *text, size_t length)
{
    const char *path = scratch_path(name);
    if (strlen(name) > 3 && strcmp(name + strlen(name) - 3, ".gz") == 0) {
        gzFile gz = gzopen(path, "wb");
        cr_assert_not_null(gz);
        if (length)
            cr_assert_eq(gzwrite(gz, text, (unsigned)length), (int)length);
        gzclose(gz);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        if (length)
            cr_assert_eq(fwrite(text, 1, length, f), length);
        fclose(f);
    }
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

/* Options for columns c (customer), t (time), a (amount). */
static kseg_import_options basic_options(void)
{
    kseg_import_options options;
    kseg_import_options_defaults(&options);
    options.customer = "c";
    options.time = "t";
    options.amount = "a";
    return options;
}

/* Imports text into name.h5 and opens a reader on it. */
static kseg_transaction_reader *import_text(const char *name, const char *text,
                                            const kseg_import_options *options,
                                            kseg_import_stats *stats)
{
    kseg_error error = {0};
    char out[300];
    snprintf(out, sizeof out, "%s.h5", name);
    const char *csv = write_text(name, text);
    int status = kseg_import_transactions(csv, scratch_path(out), options, stats, &error);
    cr_assert_eq(status, 0, "import failed: %s", error.message);
    kseg_transaction_reader *reader = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&reader, scratch_path(out), NULL, &error), 0, "%s",
                 error.message);
    return reader;
}

/* Expects the import of text to fail with code and a message containing fragment. */
static void expect_import_error(const char *name, const char *text, size_t length,
                                const kseg_import_options *options, int code,
                                const char *fragment)
{
    kseg_error error = {0};
    const char *csv = write_file(name, text, length);
    const char *out = scratch_path("never.h5");
    int status = kseg_import_transactions(csv, out, options, NULL, &error);
    cr_assert_eq(status, code, "%s: status %d (%s), expected %d", name, status, error.message,
                 code);
    cr_assert_not_null(strstr(error.message, fragment), "%s: '%s' not in: %s", name, fragment,
                       error.message);
    cr_assert_eq(access(out, F_OK), -1, "%s: output written despite the error", name);
}

/* ---------------------------------------------------------------- parsing */

Test(import, quoted_commas_newlines_crlf_and_bom)
{
    const char *text = "\xEF\xBB\xBF"
                       "c,note,t,a\r\n"
                       "1,\"x, y\",2024-01-01,1.5\r\n"
                       "2,\"two\r\nlines\",2024-01-02,2\r\n"
                       "3,\"\"\"quoted\"\"\",2024-01-03,3\r\n"
                       "4,12\" pizza,2024-01-04,4\r\n";
    kseg_import_options options = basic_options();
    const char *categories[] = {"note"};
    options.categories = categories;
    options.n_categories = 1;
    kseg_import_stats stats;
    kseg_transaction_reader *reader = import_text("quoted.csv", text, &options, &stats);
    cr_assert_eq(kseg_transaction_reader_rows(reader), 4);
    kseg_transactions block;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 4, &block, &error), 0, "%s",
                 error.message);
    cr_assert_eq(block.n_categories, 1);
    cr_assert_str_eq(block.categories[0].name, "note");
    const char *expected[] = {"x, y", "two\r\nlines", "\"quoted\"", "12\" pizza"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(block.customer_id[i], (int64_t)i + 1);
        cr_assert_str_eq(block.categories[0].names[block.categories[0].codes[i]], expected[i]);
        cr_assert_eq(block.time[i], 1704067200 + (int64_t)i * 86400);
    }
    cr_assert_eq(block.amount[0], 1.5);
    cr_assert_eq(stats.lines, 6, "the quoted newline adds a line: %llu",
                 (unsigned long long)stats.lines);
    cr_assert_eq(stats.rows_read, 4);
    cr_assert_eq(stats.rows_rejected, 0);
    kseg_transaction_reader_close(reader);
}

Test(import, gzip_and_plain_give_the_same_file)
{
    /* Enough rows for several blocks and chunks. */
    size_t capacity = 1 << 20, used = 0;
    char *text = malloc(capacity);
    used += (size_t)snprintf(text, capacity, "c,t,a,q,p,inv,country\n");
    for (int i = 0; i < 20000; i++)
        used += (size_t)snprintf(text + used, capacity - used,
                                 "%d,%d,%d.25,%d,%g,%s%d,%s\n", i % 321, 1600000000 + i * 60, i,
                                 i % 7 - 1, 0.5 * (i % 9), i % 50 == 0 ? "C" : "", i / 4,
                                 i % 3 ? "Germany" : "\"Bosnia, Herzegovina\"");
    kseg_import_options options = basic_options();
    options.amount = NULL;
    options.quantity = "q";
    options.price = "p";
    options.invoice = "inv";
    const char *categories[] = {"country"};
    options.categories = categories;
    options.n_categories = 1;
    options.block_rows = 3000;
    options.chunk_rows = 1024;
    const char *plain = write_file("rows.csv", text, used);
    const char *packed = write_file("rows.csv.gz", text, used);
    kseg_error error = {0};
    kseg_import_stats a, b;
    cr_assert_eq(kseg_import_transactions(plain, scratch_path("plain.h5"), &options, &a, &error),
                 0, "%s", error.message);
    options.block_rows = 0; /* the default */
    cr_assert_eq(kseg_import_transactions(packed, scratch_path("packed.h5"), &options, &b,
                                          &error),
                 0, "%s", error.message);
    cr_assert_eq(a.rows_written, 20000);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "statistics differ");
    cr_assert_eq(a.cancelled_invoice_rows, 400);
    cr_assert_eq(a.invoices_text, 1);
    cr_assert_eq(a.distinct_customers, 321);
    cr_assert_eq(a.category_levels[0], 2);

    kseg_transaction_reader *ra = NULL, *rb = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&ra, scratch_path("plain.h5"), "transactions",
                                              &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_transaction_reader_open(&rb, scratch_path("packed.h5"), "/transactions/",
                                              &error),
                 0, "%s", error.message);
    kseg_transactions x, y;
    cr_assert_eq(kseg_transaction_reader_read(ra, 0, 20000, &x, &error), 0);
    cr_assert_eq(kseg_transaction_reader_read(rb, 0, 20000, &y, &error), 0);
    cr_assert_eq(memcmp(x.customer_id, y.customer_id, 20000 * sizeof(int64_t)), 0);
    cr_assert_eq(memcmp(x.time, y.time, 20000 * sizeof(int64_t)), 0);
    cr_assert_eq(memcmp(x.amount, y.amount, 20000 * sizeof(double)), 0);
    cr_assert_eq(memcmp(x.invoice, y.invoice, 20000 * sizeof(int64_t)), 0);
    cr_assert_eq(memcmp(x.cancelled, y.cancelled, 20000), 0);
    cr_assert_eq(memcmp(x.categories[0].codes, y.categories[0].codes, 20000 * sizeof(int32_t)),
                 0);
    for (size_t i = 0; i < 20000; i++) {
        int q = (int)i % 7 - 1;
        cr_assert_eq(x.amount[i], (double)q * (0.5 * (double)(i % 9)), "row %zu", i);
        cr_assert_eq(x.cancelled[i], (i % 50 == 0) || q < 0, "row %zu", i);
        cr_assert_eq(x.time[i], 1600000000 + (int64_t)i * 60);
    }
    cr_assert_str_eq(x.categories[0].names[x.categories[0].codes[0]], "Bosnia, Herzegovina");
    kseg_transaction_reader_close(ra);
    kseg_transaction_reader_close(rb);
    free(text);
}

Test(import, float_text_ids_are_integers)
{
    kseg_import_options options = basic_options();
    kseg_import_stats stats;
    kseg_transaction_reader *reader =
        import_text("float.csv", "c,t,a\n17850.0,0,1\n,0,1\n 12 ,0,1\n1e3,0,1\n", &options,
                    &stats);
    kseg_transactions block;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 4, &block, &error), 0);
    const int64_t ids[] = {17850, -1, 12, 1000};
    const uint8_t valid[] = {1, 0, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(block.customer_id[i], ids[i]);
        cr_assert_eq(block.customer_valid[i], valid[i]);
    }
    cr_assert_eq(stats.customer_ids_text, 0);
    cr_assert_eq(stats.rows_without_customer, 1);
    cr_assert_eq(stats.distinct_customers, 3);
    kseg_transaction_reader_close(reader);
}

Test(import, text_ids_become_a_dictionary)
{
    /* The first rows are integers: the encoding is decided over the whole file (pass 1). */
    kseg_import_options options = basic_options();
    kseg_import_stats stats;
    kseg_transaction_reader *reader = import_text(
        "text.csv", "c,t,a\n5,0,1\n5,0,1\nX-9,0,1\n,0,1\n99999999999999999999,0,1\n5.5,0,1\n",
        &options, &stats);
    kseg_transactions block;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 6, &block, &error), 0);
    const int64_t codes[] = {0, 0, 1, -1, 2, 3};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(block.customer_id[i], codes[i], "row %zu: %lld", i,
                     (long long)block.customer_id[i]);
    cr_assert_eq(stats.customer_ids_text, 1);
    cr_assert_eq(stats.distinct_customers, 4);
    cr_assert_eq(stats.rows_rejected, 0, "a fractional id is just text in a dictionary");
    kseg_transaction_reader_close(reader);
    /* The dictionary itself, in first-seen order. */
    hid_t file = H5Fopen(scratch_path("text.csv.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dataset = H5Dopen2(file, "/transactions/dictionaries/customer_id", H5P_DEFAULT);
    cr_assert_geq(dataset, 0);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    char *values[4] = {NULL};
    cr_assert_geq(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), 0);
    const char *expected[] = {"5", "X-9", "99999999999999999999", "5.5"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(values[i], expected[i]);
    hid_t space = H5Dget_space(dataset);
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, values);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    H5Fclose(file);
}

Test(import, rejected_rows_are_counted_with_physical_lines)
{
    const char *text = "c,t,a\n"                       /* line 1 */
                       "1,2024-01-01,1\n"              /* 2 */
                       "2,2024-13-01,1\n"              /* 3: bad month */
                       "\n"                            /* 4: blank, not a record */
                       "3,2024-01-01,abc\n"            /* 5: bad number */
                       "4,2024-01-01,\"1\n2\"\n"       /* 6-7: bad number over two lines */
                       "5.5,2024-01-01,1\n"            /* 8: fractional id */
                       "6,2024-01-01,1,extra\n"        /* 9: field count */
                       "7,2024-01-01,2e15\n"           /* 10: |amount| > 1e15 */
                       "8,2024-01-01,nan\n"            /* 11: not a decimal number */
                       "9,2024-01-01T25:00,1\n"        /* 12: bad hour */
                       "10,2024-01-01,7";              /* 13: no final newline */
    kseg_import_options options = basic_options();
    kseg_import_stats stats;
    kseg_transaction_reader *reader = import_text("bad.csv", text, &options, &stats);
    cr_assert_eq(stats.rows_read, 10);
    cr_assert_eq(stats.rows_rejected, 8);
    cr_assert_eq(stats.rows_written, 2);
    cr_assert_eq(stats.lines, 13);
    cr_assert_eq(stats.n_rejected_lines, KSEG_IMPORT_SAMPLE_LINES);
    const uint64_t lines[] = {3, 5, 6, 8, 9};
    for (size_t k = 0; k < KSEG_IMPORT_SAMPLE_LINES; k++)
        cr_assert_eq(stats.rejected_lines[k], lines[k], "sample %zu: %llu", k,
                     (unsigned long long)stats.rejected_lines[k]);
    cr_assert_str_eq(stats.first_rejection, "line 3: t: not a time: '2024-13-01'");
    kseg_transactions block;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 2, &block, &error), 0);
    cr_assert_eq(block.customer_id[0], 1);
    cr_assert_eq(block.customer_id[1], 10);
    cr_assert_eq(block.amount[1], 7.0);
    kseg_transaction_reader_close(reader);

    /* The attributes carry the same. */
    hid_t file = H5Fopen(scratch_path("bad.csv.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t group = H5Gopen2(file, "/transactions", H5P_DEFAULT);
    int64_t rejected = 0, sample[KSEG_IMPORT_SAMPLE_LINES] = {0};
    hid_t attribute = H5Aopen(group, "rejected_rows", H5P_DEFAULT);
    H5Aread(attribute, H5T_NATIVE_INT64, &rejected);
    H5Aclose(attribute);
    attribute = H5Aopen(group, "rejected_lines_sample", H5P_DEFAULT);
    H5Aread(attribute, H5T_NATIVE_INT64, sample);
    H5Aclose(attribute);
    H5Gclose(group);
    H5Fclose(file);
    cr_assert_eq(rejected, 8);
    for (size_t k = 0; k < KSEG_IMPORT_SAMPLE_LINES; k++)
        cr_assert_eq(sample[k], (int64_t)lines[k]);
}

Test(import, nul_bytes_in_mapped_fields_are_rejected)
{
    /* fuzz_csv_import: "A<NUL>x" and "A<NUL>y" were two categories both stored as "A", and
       "12<NUL>9" was customer 12. A NUL in a mapped field now rejects the record; one in an
       unmapped field is never looked at. */
    static const char text[] = "c,t,a,k,note\n"
                               "1,2024-01-01,1,A\0x,\n"   /* line 2: category */
                               "1,2024-01-01,1,A\0y,\n"   /* 3 */
                               "12\0009,2024-01-01,1,B,\n" /* 4: customer id */
                               "2,2024-01-01,1,B,n\0te\n"  /* 5: unmapped, kept */
                               "3,2024-01-01,1,A,\n";     /* 6 */
    kseg_import_options options = basic_options();
    const char *categories[] = {"k"};
    options.categories = categories;
    options.n_categories = 1;
    kseg_import_stats stats;
    kseg_error error = {0};
    const char *csv = write_file("nul.csv", text, sizeof text - 1);
    cr_assert_eq(kseg_import_transactions(csv, scratch_path("nul.h5"), &options, &stats, &error),
                 0, "%s", error.message);
    cr_assert_eq(stats.rows_read, 5);
    cr_assert_eq(stats.rows_rejected, 3);
    cr_assert_eq(stats.rejected_lines[0], 2);
    cr_assert_eq(stats.rejected_lines[2], 4);
    cr_assert_str_eq(stats.first_rejection, "line 2: k: contains a NUL byte");
    cr_assert_eq(stats.category_levels[0], 2);
    kseg_transaction_reader *reader = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&reader, scratch_path("nul.h5"), NULL, &error), 0);
    kseg_transactions block;
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 2, &block, &error), 0);
    cr_assert_eq(block.customer_id[0], 2);
    cr_assert_eq(block.customer_id[1], 3);
    cr_assert_str_eq(block.categories[0].names[0], "B");
    cr_assert_str_eq(block.categories[0].names[1], "A");
    kseg_transaction_reader_close(reader);
}

Test(import, quantity_times_price_overflow_is_rejected)
{
    kseg_import_options options = basic_options();
    options.amount = NULL;
    options.quantity = "q";
    options.price = "p";
    kseg_import_stats stats;
    kseg_transaction_reader *reader = import_text(
        "overflow.csv", "c,t,q,p\n1,0,1e200,1e200\n2,0,-3,2.5\n3,0,1e300,-1e300\n", &options,
        &stats);
    cr_assert_eq(stats.rows_rejected, 2);
    cr_assert_eq(stats.negative_quantity_rows, 1);
    cr_assert_eq(stats.cancelled_rows, 1);
    kseg_transactions block;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 1, &block, &error), 0);
    cr_assert_eq(block.amount[0], -7.5);
    cr_assert_eq(block.quantity[0], -3.0);
    cr_assert_eq(block.price[0], 2.5);
    cr_assert_eq(block.cancelled[0], 1);
    kseg_transaction_reader_close(reader);
}

Test(import, time_parser)
{
    struct {
        const char *text;
        const char *format;
        int ok;
        int64_t seconds;
    } cases[] = {
        {"2024-01-01", NULL, 1, 1704067200},
        {"2024-02-29 23:59:59", NULL, 1, 1709251199},
        {"2024-01-01T01:02", NULL, 1, 1704070920},
        {"2024-01-01T01:02:03.999Z", NULL, 1, 1704070923},
        {"2024-01-01 01:00:00+01:00", NULL, 1, 1704067200},
        {"2024-01-01 00:00:00-0130", NULL, 1, 1704072600},
        {" 1700000000 ", NULL, 1, 1700000000},
        {"-1.5", NULL, 1, -2},
        {"1969-12-31 23:59:59", NULL, 1, -1},
        {"2023-02-29", NULL, 0, 0},
        {"2024-1-01", NULL, 0, 0},
        {"2024-01-01 24:00", NULL, 0, 0},
        {"2024-01-01 10", NULL, 0, 0},
        {"yesterday", NULL, 0, 0},
        {"", NULL, 0, 0},
        {"12/31/2011 17:30", "%m/%d/%Y %H:%M", 1, 1325352600},
        {"31.02.2011", "%d.%m.%Y", 0, 0},
        {"2011-12-31 17:30 +0200", "%Y-%m-%d %H:%M %z", 1, 1325345400},
        {"1700000000", "%s", 1, 1700000000},
        {"2011-12-31 junk", "%Y-%m-%d", 0, 0},
        /* Years 0 to 9999 only (fuzz_csv_import: Unix seconds near the int64 limits made RFM's
           day arithmetic overflow). */
        {"9223372036854775807", NULL, 0, 0},
        {"-9223372036854775808", "%s", 0, 0},
        {"253402300799", NULL, 1, 253402300799},
        {"253402300800", NULL, 0, 0},
        {"-62167219200", NULL, 1, -62167219200},
        {"-62167219201", NULL, 0, 0},
        /* Unix seconds may reach year 0, but a written date must be a real one (0001-9999). */
        {"0000-01-01", NULL, 0, 0},
        {"9999-12-31 23:59:59Z", NULL, 1, 253402300799},
        {"9999-12-31 23:59:00-01:00", NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t seconds = 0;
        int status = kseg_import_parse_time(cases[i].text, cases[i].format, &seconds);
        cr_assert_eq(status == 0, cases[i].ok, "'%s': status %d", cases[i].text, status);
        if (cases[i].ok)
            cr_assert_eq(seconds, cases[i].seconds, "'%s': %lld, expected %lld", cases[i].text,
                         (long long)seconds, (long long)cases[i].seconds);
    }
}

Test(import, custom_time_format_and_delimiter)
{
    kseg_import_options options = basic_options();
    options.time_format = "%d/%m/%Y %H:%M";
    options.delimiter = '\t';
    kseg_import_stats stats;
    kseg_transaction_reader *reader =
        import_text("tab.tsv", "c\tt\ta\n1\t02/01/2024 13:05\t1\n2\t2024-01-02\t1\n", &options,
                    &stats);
    cr_assert_eq(stats.rows_rejected, 1, "ISO text does not match the given format");
    cr_assert_eq(stats.time_min, 1704200700);
    kseg_transaction_reader_close(reader);
}

/* ---------------------------------------------------------------- errors */

Test(import, missing_column_names_it_and_lists_the_header)
{
    kseg_import_options options = basic_options();
    options.customer = "CustomerID";
    expect_import_error("missing.csv", "c,t,a\n1,0,1\n", 12, &options, KSEG_ENOENT,
                        "customer column 'CustomerID' is not in the header (columns: c, t, a)");
    options = basic_options();
    const char *categories[] = {"Country"};
    options.categories = categories;
    options.n_categories = 1;
    expect_import_error("missing2.csv", "c,t,a\n1,0,1\n", 12, &options, KSEG_ENOENT,
                        "category column 'Country'");
}

Test(import, empty_header_only_and_all_rejected)
{
    kseg_import_options options = basic_options();
    expect_import_error("empty.csv", "", 0, &options, KSEG_EEMPTY, "empty file");
    expect_import_error("bom.csv.gz", "\xEF\xBB\xBF\r\n", 5, &options, KSEG_EEMPTY, "empty file");
    expect_import_error("header.csv", "c,t,a\n", 6, &options, KSEG_EEMPTY, "no data rows");
    expect_import_error("header.csv.gz", "c,t,a", 5, &options, KSEG_EEMPTY, "no data rows");
    expect_import_error("allbad.csv", "c,t,a\n1,x,1\n", 12, &options, KSEG_EEMPTY,
                        "none of the 1 data rows could be imported (line 2: t: not a time");
}

Test(import, malformed_input)
{
    kseg_import_options options = basic_options();
    const char *open_quote = "c,t,a\n1,0,1\n2,\"0,1\n3,0,1\n";
    expect_import_error("open.csv", open_quote, strlen(open_quote), &options, KSEG_EFORMAT,
                        "line 3: a quoted field is not closed");

    /* Half of a gzip stream. */
    size_t length = 0;
    char *text = malloc(400000);
    length += (size_t)snprintf(text, 400000, "c,t,a\n");
    for (int i = 0; i < 20000 && length < 390000; i++)
        length += (size_t)snprintf(text + length, 400000 - length, "%d,%d,1\n", i, i);
    uLongf packed_size = compressBound(length) + 64;
    unsigned char *packed = malloc(packed_size);
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)text;
    z.avail_in = (uInt)length;
    z.next_out = packed;
    z.avail_out = (uInt)packed_size;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t total = z.total_out;
    deflateEnd(&z);
    const char *cut = scratch_path("cut.csv.gz");
    FILE *f = fopen(cut, "wb");
    fwrite(packed, 1, total / 2, f);
    fclose(f);
    kseg_error error = {0};
    cr_assert_eq(kseg_import_transactions(cut, scratch_path("cut.h5"), &options, NULL, &error),
                 KSEG_EIO);
    cr_assert_not_null(strstr(error.message, "truncated"), "%s", error.message);
    free(packed);
    free(text);

    cr_assert_eq(kseg_import_transactions(scratch_path("nope.csv"), scratch_path("x.h5"),
                                          &options, NULL, &error),
                 KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "nope.csv: no such file"), "%s", error.message);
    cr_assert_eq(kseg_import_transactions(scratch, scratch_path("x.h5"), &options, NULL, &error),
                 KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "is a directory"), "%s", error.message);
}

Test(import, bad_options)
{
    kseg_error error = {0};
    const char *csv = write_text("ok.csv", "c,t,a\n1,0,1\n");
    const char *out = scratch_path("o.h5");
    kseg_import_options options = basic_options();
    options.amount = NULL;
    options.quantity = "a";
    cr_assert_eq(kseg_import_transactions(csv, out, &options, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "quantity and price"), "%s", error.message);
    options = basic_options();
    options.delimiter = '"';
    cr_assert_eq(kseg_import_transactions(csv, out, &options, NULL, &error), KSEG_EINVAL);
    options = basic_options();
    options.time = "c";
    options.customer = "c";
    cr_assert_eq(kseg_import_transactions(csv, out, &options, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "mapped twice"), "%s", error.message);
    options = basic_options();
    cr_assert_eq(kseg_import_transactions(csv, csv, &options, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "input file"), "%s", error.message);
    cr_assert_eq(access(out, F_OK), -1);
    cr_assert_eq(kseg_import_transactions(csv, scratch_path("no/such/dir/o.h5"), &options, NULL,
                                          &error),
                 KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "does not exist"), "%s", error.message);
    cr_assert_eq(kseg_import_transactions(csv, scratch, &options, NULL, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "is a directory"), "%s", error.message);
}

static int cancel_in_pass_two(void *data, int pass, double fraction)
{
    (void)fraction;
    (*(int *)data)++;
    return pass == 2;
}

Test(import, progress_can_cancel_and_nothing_is_left)
{
    kseg_import_options options = basic_options();
    int calls = 0;
    options.progress = cancel_in_pass_two;
    options.progress_data = &calls;
    kseg_error error = {0};
    const char *csv = write_text("cancel.csv", "c,t,a\n1,0,1\n2,0,1\n");
    cr_assert_eq(kseg_import_transactions(csv, scratch_path("cancel.h5"), &options, NULL, &error),
                 KSEG_ECANCELED);
    cr_assert_eq(calls, 2);
    /* Only the input is left in the directory: no output, no temporary file. */
    cr_assert_eq(access(scratch_path("cancel.h5"), F_OK), -1);
    char command[600];
    snprintf(command, sizeof command, "test $(ls -A %s | grep -c tmp) -eq 0", scratch);
    cr_assert_eq(system(command), 0, "a temporary file was left behind");
}
