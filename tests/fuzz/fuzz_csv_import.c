/* libFuzzer target for the CSV transaction import (io/csv_import.c): the first two bytes choose
 * the options, the rest is the file (so a reproducer minus its first two bytes is a CSV file
 * for `kseg import transactions`):
 *   byte 0: bit 0 columns by position in the header (else Online Retail's names), bit 1 positions
 *           by hash, bit 2 an amount column (else quantity x price), bit 3 an invoice column,
 *           bits 4-5 categories (0, 1, 2, 1), bits 6-7 time format (auto, %m/%d/%Y %H:%M,
 *           %d.%m.%Y %H:%M, %s);
 *   byte 1: bit 0 gzip the file, bits 1-2 delimiter (, ; tab |), bits 3-4 rows per block
 *           (default, 1, 3, 64), bit 5 HDF5 compression, bits 6-7: 01 truncate the gzip file,
 *           11 cancel from the progress callback in the second pass.
 * A successful import is read back and run through RFM; its statistics and row counts must agree,
 * and a failed one must leave no file behind. */
#define _GNU_SOURCE /* mkdtemp, nftw (fuzz_common.h) */
#include <zlib.h>

#include "fuzz_common.h"
#include "kseg/import.h"

/* The Online Retail export's columns (the seeds use them). */
static const char *const retail[] = {"InvoiceNo", "StockCode", "Description", "Quantity",
                                     "InvoiceDate", "UnitPrice", "CustomerID", "Country"};

static const char *const time_formats[] = {NULL, "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M", "%s"};
static const char delimiters[] = {',', ';', '\t', '|'};

/* The header names as a naive split of the first line gives them (blanks and surrounding
   quotes dropped): the fuzzer then maps columns by position whatever it names them. The import
   itself parses the header properly, so a name that differs from its parse makes a "not in the
   header" error, which is fine too. */
typedef struct header_names {
    char text[1024];
    const char *names[16];
    size_t count;
} header_names;

static void split_header(const uint8_t *data, size_t size, char delimiter, header_names *header)
{
    size_t length = 0;
    while (length < size && length < sizeof header->text - 1 && data[length] != '\n')
        length++;
    memcpy(header->text, data, length);
    header->text[length] = '\0';
    header->count = 0;
    char *start = header->text;
    if (length >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3;
    for (char *field = start; field && header->count < 16;) {
        char *end = strchr(field, delimiter);
        if (end)
            *end = '\0';
        while (*field == ' ' || *field == '"')
            field++;
        size_t n = strlen(field);
        while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '"' || field[n - 1] == '\r'))
            field[--n] = '\0';
        if (*field)
            header->names[header->count++] = field;
        field = end ? end + 1 : NULL;
    }
}

static int cancel_in_pass2(void *data, int pass, double fraction)
{
    (void)data;
    (void)fraction;
    return pass == 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t mapping = data[0], extra = data[1];
    const uint8_t *body = data + 2;
    const size_t body_size = size - 2;

    kseg_import_options options;
    kseg_import_options_defaults(&options);
    options.delimiter = delimiters[(extra >> 1) & 3];
    const char *categories[2];
    size_t n_categories = (mapping >> 4) & 3;
    if (n_categories == 3)
        n_categories = 1;
    header_names header;
    if ((mapping & 1) == 0) {
        /* Online Retail's names. */
        options.customer = retail[6];
        options.time = retail[4];
        if (mapping & 4) {
            options.amount = retail[5];
        } else {
            options.quantity = retail[3];
            options.price = retail[5];
        }
        if (mapping & 8)
            options.invoice = retail[0];
        categories[0] = retail[7];
        categories[1] = retail[1];
    } else {
        /* Columns picked by position among the header's names: in the order of the roles
           (customer, time, amount or quantity and price, invoice, categories), or, with bit 1,
           by bits of a hash of the two option bytes (a one-bit change then moves several). */
        split_header(body, body_size, options.delimiter, &header);
        if (header.count == 0)
            return 0;
        const uint64_t salt = (mapping * 0x9E3779B97F4A7C15ull) ^ extra;
        size_t next = 0;
#define PICK() header.names[(mapping & 2 ? (salt >> (5 * next++)) & 31 : next++) % header.count]
        options.customer = PICK();
        options.time = PICK();
        if (mapping & 4) {
            options.amount = PICK();
        } else {
            options.quantity = PICK();
            options.price = PICK();
        }
        if (mapping & 8)
            options.invoice = PICK();
        categories[0] = PICK();
        categories[1] = PICK();
#undef PICK
    }
    options.categories = n_categories ? categories : NULL;
    options.n_categories = n_categories;
    options.time_format = time_formats[(mapping >> 6) & 3];
    static const size_t block_rows[] = {0, 1, 3, 64};
    options.block_rows = block_rows[(extra >> 3) & 3];
    options.chunk_rows = options.block_rows ? 2 : 0;
    options.gzip_level = (extra >> 5) & 1;
    if ((extra & 0xC0) == 0xC0)
        options.progress = cancel_in_pass2;

    /* The input, plain or gzip-compressed (every fourth gzip input truncated). */
    const char *input = fuzz_path("in.csv");
    const char *output = fuzz_path("out.h5");
    if (extra & 1) {
        gzFile gz = gzopen(input, "wb1");
        FUZZ_CHECK(gz != NULL);
        FUZZ_CHECK(body_size == 0 || gzwrite(gz, body, (unsigned)body_size) == (int)body_size);
        FUZZ_CHECK(gzclose(gz) == Z_OK);
        if ((extra & 0xC0) == 0x40) {
            struct stat info;
            FUZZ_CHECK(stat(input, &info) == 0);
            FUZZ_CHECK(truncate(input, info.st_size > 6 ? info.st_size - 6 : 0) == 0);
        }
    } else {
        fuzz_write_file(input, body, body_size);
    }

    kseg_import_stats stats;
    kseg_error error = {0};
    int status = kseg_import_transactions(input, output, &options, &stats, &error);
    static const char *const names[] = {"in.csv", "out.h5"};
    if (status == 0) {
        /* Every record read was either written or rejected, and the file holds what was
           written. */
        FUZZ_CHECK(stats.rows_read == stats.rows_written + stats.rows_rejected);
        FUZZ_CHECK(stats.rows_written > 0);
        FUZZ_CHECK(stats.n_rejected_lines <= KSEG_IMPORT_SAMPLE_LINES);
        FUZZ_CHECK(fuzz_stray_files(names, 2) == 0);
        kseg_transaction_reader *reader = NULL;
        FUZZ_CHECK(kseg_transaction_reader_open(&reader, output, NULL, &error) == 0);
        FUZZ_CHECK(kseg_transaction_reader_rows(reader) == stats.rows_written);
        kseg_transactions block;
        FUZZ_CHECK(kseg_transaction_reader_read(reader, 0, (size_t)stats.rows_written, &block,
                                                &error) == 0);
        FUZZ_CHECK(block.customer_valid != NULL);
        for (size_t i = 0; i < block.rows; i++) {
            FUZZ_CHECK(block.customer_valid[i] || block.customer_id[i] == -1);
            FUZZ_CHECK(block.time[i] >= stats.time_min && block.time[i] <= stats.time_max);
        }
        FUZZ_CHECK(block.n_categories == n_categories);
        /* A dictionary maps distinct texts to codes: no text twice. */
        for (size_t k = 0; k < block.n_categories; k++)
            for (size_t a = 0; a < block.categories[k].n_names; a++)
                for (size_t b = 0; b < a; b++)
                    FUZZ_CHECK(strcmp(block.categories[k].names[a],
                                      block.categories[k].names[b]) != 0);
        /* The RFM options come from the end of the input, so that they mutate with it. */
        fuzz_cursor rest = {data, size, size > 8 ? size - 8 : 0};
        fuzz_rfm_pass(reader, &rest);
        kseg_transaction_reader_close(reader);
        unlink(output);
    } else {
        /* A failed import leaves no output and no temporary file. */
        FUZZ_CHECK(error.message[0] != '\0');
        FUZZ_CHECK(fuzz_stray_files(names, 1) == 0);
    }
    unlink(input);
    return 0;
}
