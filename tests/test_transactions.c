/* Transaction files and the synthetic log: writer -> reader round trips in blocks, every layout
 * error the reader reports (on fixtures written with the raw HDF5 API, so the reader is tested on
 * files kseg did not write), type and unit conversion, and the generator's determinism (split,
 * thread and seed) and plausibility (concentration, returns, seasonality, order), and the direct
 * (pread) reads of unfiltered columns against HDF5's own reads. */
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
#include <omp.h>

#include "kseg/import.h"
#include "kseg/io.h"
#include "h5_internal.h"
#include "scratch_dir.h"

/* ---------------------------------------------------------------- fixtures */

KSEG_SCRATCH_SUITE(transactions);

/* Raw HDF5 fixture helpers. */
static void put(hid_t file, const char *path, hid_t type, size_t n, const void *data)
{
    hsize_t dims = n;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dataset = H5Dcreate2(file, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(dataset, 0, "create %s", path);
    if (n)
        cr_assert_geq(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(dataset);
    H5Pclose(lcpl);
    H5Sclose(space);
}

static void put_string_attribute(hid_t file, const char *object, const char *name,
                                 const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate_by_name(file, object, name, type, space, H5P_DEFAULT,
                                        H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attribute, type, value);
    H5Aclose(attribute);
    H5Sclose(space);
    H5Tclose(type);
}

static void put_strings(hid_t file, const char *path, const char **values, size_t n)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 16); /* fixed-length, as numpy 'S16' arrays are stored */
    char *buffer = calloc(n ? n : 1, 16);
    for (size_t i = 0; i < n; i++)
        strncpy(buffer + 16 * i, values[i], 16);
    put(file, path, type, n, buffer);
    free(buffer);
    H5Tclose(type);
}

/* A valid minimal group of n rows (customer_id, time, amount) in a new file. */
static hid_t minimal_file(const char *name, size_t n)
{
    hid_t file = H5Fcreate(scratch_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int64_t *ids = malloc(n * sizeof *ids), *times = malloc(n * sizeof *times);
    double *amounts = malloc(n * sizeof *amounts);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(i % 3);
        times[i] = (int64_t)i * 10;
        amounts[i] = (double)i + 0.5;
    }
    put(file, "/transactions/customer_id", H5T_NATIVE_INT64, n, ids);
    put(file, "/transactions/time", H5T_NATIVE_INT64, n, times);
    put(file, "/transactions/amount", H5T_NATIVE_DOUBLE, n, amounts);
    free(ids);
    free(times);
    free(amounts);
    return file;
}

static void expect_open_error(const char *name, const char *group, int code,
                              const char *fragment)
{
    kseg_transaction_reader *reader = NULL;
    kseg_error error = {0};
    int status = kseg_transaction_reader_open(&reader, scratch_path(name), group, &error);
    cr_assert_eq(status, code, "%s: status %d (%s), expected %d", name, status, error.message,
                 code);
    cr_assert_null(reader);
    cr_assert_not_null(strstr(error.message, fragment), "%s: '%s' not in: %s", name, fragment,
                       error.message);
}

/* ---------------------------------------------------------------- writer and reader */

Test(transactions, writer_reader_round_trip_in_blocks)
{
    const size_t n = 10007;
    const char *names[] = {"channel", "Country"};
    kseg_transaction_file_options file;
    kseg_transaction_file_options_defaults(&file);
    file.rows = n;
    file.customer_valid = file.quantity = file.price = file.invoice = file.cancelled = 1;
    file.categories = names;
    file.n_categories = 2;
    file.chunk_rows = 1000;
    kseg_error error = {0};
    kseg_transaction_writer *writer = NULL;
    const char *path = scratch_path("round.h5");
    cr_assert_eq(kseg_transaction_writer_open(&writer, path, &file, &error), 0, "%s",
                 error.message);
    cr_assert_eq(access(path, F_OK), -1, "visible before commit");

    int64_t *ids = malloc(n * sizeof *ids), *times = malloc(n * sizeof *times);
    int64_t *invoices = malloc(n * sizeof *invoices);
    double *amounts = malloc(n * sizeof *amounts), *quantities = malloc(n * sizeof *quantities);
    double *prices = malloc(n * sizeof *prices);
    uint8_t *valid = malloc(n), *cancelled = malloc(n);
    int32_t *channel = malloc(n * sizeof *channel), *country = malloc(n * sizeof *country);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(i * 7919 % 1000);
        times[i] = -5000 + (int64_t)i * 3;
        invoices[i] = (int64_t)(i / 3);
        quantities[i] = (double)(i % 5) - 1;
        prices[i] = 0.25 * (double)(i % 11);
        amounts[i] = quantities[i] * prices[i];
        valid[i] = i % 13 != 0;
        cancelled[i] = quantities[i] < 0;
        channel[i] = (int32_t)(i % 3);
        country[i] = (int32_t)(i % 2);
    }
    /* Written in uneven blocks, out of order. */
    const size_t cuts[] = {0, 4000, 4001, 9000, n};
    const size_t order[] = {2, 0, 3, 1};
    for (size_t k = 0; k < 4; k++) {
        size_t b = cuts[order[k]], e = cuts[order[k] + 1];
        kseg_category_column views[2] = {{"channel", channel + b, NULL, 0},
                                         {"Country", country + b, NULL, 0}};
        kseg_transactions block = {e - b,        ids + b,        valid + b,      times + b,
                                   amounts + b,  quantities + b, prices + b,     invoices + b,
                                   cancelled + b, views,         2};
        cr_assert_eq(kseg_transaction_writer_write(writer, b, &block, &error), 0, "%s",
                     error.message);
    }
    const char *channels[] = {"web", "store", "phone"};
    const char *countries[] = {"DE", "FR"};
    cr_assert_eq(kseg_transaction_writer_dictionary(writer, "channel", channels, 3, &error), 0);
    cr_assert_eq(kseg_transaction_writer_dictionary(writer, "Country", countries, 2, &error), 0);
    cr_assert_eq(kseg_transaction_writer_dictionary(writer, "nope", countries, 2, &error),
                 KSEG_EINVAL);
    cr_assert_eq(kseg_transaction_writer_attribute_string(writer, "source", "test", &error), 0);
    cr_assert_eq(kseg_transaction_writer_commit(writer, &error), 0, "%s", error.message);

    kseg_transaction_reader *reader = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&reader, path, NULL, &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_transaction_reader_rows(reader), n);
    const size_t block_sizes[] = {1, 999, 4096, n};
    for (size_t s = 0; s < 4; s++) {
        for (size_t offset = 0; offset < n; offset += block_sizes[s]) {
            size_t count = n - offset < block_sizes[s] ? n - offset : block_sizes[s];
            kseg_transactions block;
            cr_assert_eq(kseg_transaction_reader_read(reader, offset, count, &block, &error), 0,
                         "%s", error.message);
            cr_assert_eq(block.rows, count);
            cr_assert_eq(memcmp(block.customer_id, ids + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.time, times + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.amount, amounts + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.quantity, quantities + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.price, prices + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.invoice, invoices + offset, count * 8), 0);
            cr_assert_eq(memcmp(block.customer_valid, valid + offset, count), 0);
            cr_assert_eq(memcmp(block.cancelled, cancelled + offset, count), 0);
            cr_assert_eq(block.n_categories, 2);
            /* Categories come in name order: "Country" sorts before "channel". */
            cr_assert_str_eq(block.categories[0].name, "Country");
            cr_assert_str_eq(block.categories[1].name, "channel");
            cr_assert_eq(block.categories[1].n_names, 3);
            cr_assert_str_eq(block.categories[1].names[2], "phone");
            cr_assert_eq(memcmp(block.categories[0].codes, country + offset, count * 4), 0);
            cr_assert_eq(memcmp(block.categories[1].codes, channel + offset, count * 4), 0);
        }
    }
    kseg_transactions empty;
    cr_assert_eq(kseg_transaction_reader_read(reader, n, 0, &empty, &error), 0);
    cr_assert_eq(empty.rows, 0);
    cr_assert_eq(kseg_transaction_reader_read(reader, n - 1, 2, &empty, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "outside"), "%s", error.message);
    kseg_transaction_reader_close(reader);

    free(ids);
    free(times);
    free(invoices);
    free(amounts);
    free(quantities);
    free(prices);
    free(valid);
    free(cancelled);
    free(channel);
    free(country);
}

Test(transactions, writer_rejects_bad_layouts_and_leaves_nothing)
{
    kseg_error error = {0};
    kseg_transaction_writer *writer = NULL;
    kseg_transaction_file_options file;
    kseg_transaction_file_options_defaults(&file);
    file.rows = 3;
    const char *bad_names[][1] = {{"time"}, {"a/b"}, {""}, {"dictionaries"}};
    for (size_t k = 0; k < 4; k++) {
        file.categories = bad_names[k];
        file.n_categories = 1;
        cr_assert_eq(kseg_transaction_writer_open(&writer, scratch_path("bad.h5"), &file, &error),
                     KSEG_EINVAL, "'%s' accepted", bad_names[k][0]);
        cr_assert_null(writer);
    }
    const char *twice[] = {"x", "x"};
    file.categories = twice;
    file.n_categories = 2;
    cr_assert_eq(kseg_transaction_writer_open(&writer, scratch_path("bad.h5"), &file, &error),
                 KSEG_EINVAL);

    /* A category without its dictionary cannot be committed. */
    const char *one[] = {"x"};
    file.categories = one;
    file.n_categories = 1;
    cr_assert_eq(kseg_transaction_writer_open(&writer, scratch_path("bad.h5"), &file, &error), 0,
                 "%s", error.message);
    int64_t ids[3] = {1, 2, 3};
    double amounts[3] = {1, 2, 3};
    kseg_transactions block = {.rows = 3, .customer_id = ids, .time = ids, .amount = amounts};
    cr_assert_eq(kseg_transaction_writer_write(writer, 0, &block, &error), KSEG_EINVAL,
                 "a block without the category column");
    cr_assert_eq(kseg_transaction_writer_commit(writer, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "no dictionary"), "%s", error.message);
    cr_assert_eq(access(scratch_path("bad.h5"), F_OK), -1);
    char command[600];
    snprintf(command, sizeof command, "test -z \"$(ls -A %s)\"", scratch);
    cr_assert_eq(system(command), 0, "files left in the scratch directory");
}

/* A 1-D dataset of n elements of type: layout chunk_rows > 0 is chunked (gzip when gzip), 0 is
   contiguous. With written < n only the first written elements are stored (later chunks stay
   unallocated and read as the fill value). */
static void put_stored(hid_t file, const char *path, hid_t type, size_t n, size_t written,
                       size_t chunk_rows, int gzip, const void *data)
{
    hsize_t dims = n, chunk = chunk_rows, start = 0, length = written;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk_rows) {
        H5Pset_chunk(dcpl, 1, &chunk);
        if (gzip)
            H5Pset_deflate(dcpl, 4);
    }
    hid_t dataset = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    cr_assert_geq(dataset, 0, "create %s", path);
    hid_t memory = H5Screate_simple(1, &length, NULL);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &length, NULL);
    cr_assert_geq(H5Dwrite(dataset, type, memory, space, H5P_DEFAULT, data), 0);
    H5Sclose(memory);
    H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
}

/* One read of rows [offset, offset + count) of every column, as bytes to compare. */
typedef struct read_bytes {
    unsigned char *columns[9];
    size_t bytes[9];
} read_bytes;

static read_bytes copy_block(const kseg_transactions *block)
{
    read_bytes r = {0};
    const void *sources[9] = {block->customer_id, block->customer_valid, block->time,
                              block->amount,      block->quantity,       block->price,
                              block->invoice,     block->cancelled,
                              block->categories[0].codes};
    const size_t sizes[9] = {8, 1, 8, 8, 8, 8, 8, 1, 4};
    for (int c = 0; c < 9; c++) {
        cr_assert_not_null(sources[c], "column %d not read", c);
        r.bytes[c] = block->rows * sizes[c];
        r.columns[c] = malloc(r.bytes[c] ? r.bytes[c] : 1);
        memcpy(r.columns[c], sources[c], r.bytes[c]);
    }
    return r;
}

Test(transactions, direct_reads_equal_hdf5_reads)
{
    /* 4321 rows: chunks of 1000 leave a partial last chunk of 321. The columns take every path:
       chunked unfiltered (customer_id, customer_valid, the category), contiguous (time),
       gzip (amount), big-endian (quantity), narrower integers (invoice as int32), unallocated
       chunks (price) and contiguous uint8 (cancelled). */
    const size_t n = 4321;
    int64_t *ids = malloc(n * 8), *times = malloc(n * 8);
    double *amounts = malloc(n * 8), *quantities = malloc(n * 8), *prices = malloc(n * 8);
    int32_t *invoices = malloc(n * 4), *codes = malloc(n * 4);
    uint8_t *valid = malloc(n), *cancelled = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(i * 2654435761u % 1000003) - 500000;
        times[i] = 1600000000 + (int64_t)i * 37;
        amounts[i] = (double)i * 0.25 - 100.0;
        quantities[i] = (double)(i % 17) + 0.5;
        prices[i] = (double)i / 7.0;
        invoices[i] = (int32_t)(i / 3);
        codes[i] = (int32_t)(i % 3);
        valid[i] = (uint8_t)(i % 5 != 0);
        cancelled[i] = (uint8_t)(i % 11 == 0);
    }
    hid_t file = H5Fcreate(scratch_path("direct.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put_stored(file, "/transactions/customer_id", H5T_NATIVE_INT64, n, n, 1000, 0, ids);
    put_stored(file, "/transactions/customer_valid", H5T_NATIVE_UINT8, n, n, 1000, 0, valid);
    put_stored(file, "/transactions/time", H5T_NATIVE_INT64, n, n, 0, 0, times);
    put_stored(file, "/transactions/amount", H5T_NATIVE_DOUBLE, n, n, 1000, 1, amounts);
    /* Written big-endian: HDF5 converts on the way in. */
    double *swapped = malloc(n * 8);
    memcpy(swapped, quantities, n * 8);
    H5Tconvert(H5T_NATIVE_DOUBLE, H5T_IEEE_F64BE, n, swapped, NULL, H5P_DEFAULT);
    put_stored(file, "/transactions/quantity", H5T_IEEE_F64BE, n, n, 0, 0, swapped);
    free(swapped);
    put_stored(file, "/transactions/price", H5T_NATIVE_DOUBLE, n, 1500, 1000, 0, prices);
    put_stored(file, "/transactions/invoice", H5T_NATIVE_INT32, n, n, 1000, 0, invoices);
    put_stored(file, "/transactions/cancelled", H5T_NATIVE_UINT8, n, n, 0, 0, cancelled);
    put_stored(file, "/transactions/channel", H5T_NATIVE_INT32, n, n, 1000, 0, codes);
    put_string_attribute(file, "/transactions/channel", "kind", "category");
    const char *channels[] = {"web", "store", "phone"};
    put_strings(file, "/transactions/dictionaries/channel", channels, 3);
    H5Fclose(file);

    /* Mid-chunk starts, a range across the partial last chunk, whole chunks, one row, all. */
    const size_t ranges[][2] = {{0, n}, {1, 999}, {999, 2}, {1500, 2000}, {2999, 1322},
                                {4000, 321}, {4320, 1}, {0, 1000}, {3500, 0}};
    const size_t n_ranges = sizeof ranges / sizeof ranges[0];
    const int thread_counts[] = {1, 3};
    kseg_error error;
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(thread_counts[t]);
        kseg_transaction_reader *direct = NULL, *through_hdf5 = NULL;
        cr_assert_eq(kseg_transaction_reader_open(&direct, scratch_path("direct.h5"), NULL,
                                                  &error), 0, "%s", error.message);
        cr_assert_eq(kseg_transaction_reader_open(&through_hdf5, scratch_path("direct.h5"), NULL,
                                                  &error), 0, "%s", error.message);
        kseg_io_transaction_reader_set_direct(through_hdf5, 0);
        for (size_t r = 0; r < n_ranges; r++) {
            size_t offset = ranges[r][0], count = ranges[r][1];
            kseg_transactions a, b;
            cr_assert_eq(kseg_transaction_reader_read(direct, offset, count, &a, &error), 0,
                         "%s", error.message);
            /* customer_id, customer_valid, time, cancelled and the category qualify; amount
               (gzip), quantity (big-endian), price (unallocated chunks) and invoice (int32 read
               as int64) take H5Dread. */
            cr_assert_eq(kseg_io_transaction_reader_direct_count(direct), count ? 5u : 0u,
                         "rows [%zu, %zu)", offset, offset + count);
            read_bytes first = copy_block(&a);
            cr_assert_eq(kseg_transaction_reader_read(through_hdf5, offset, count, &b, &error), 0,
                         "%s", error.message);
            cr_assert_eq(kseg_io_transaction_reader_direct_count(through_hdf5), 0u);
            read_bytes second = copy_block(&b);
            for (int c = 0; c < 9; c++) {
                cr_assert_eq(first.bytes[c], second.bytes[c]);
                cr_assert_eq(memcmp(first.columns[c], second.columns[c], first.bytes[c]), 0,
                             "column %d differs on rows [%zu, %zu) with %d threads", c, offset,
                             offset + count, thread_counts[t]);
            }
            /* And both equal what was written (price: the fill value 0 past row 1500). */
            cr_assert_eq(memcmp(first.columns[0], ids + offset, count * 8), 0);
            cr_assert_eq(memcmp(first.columns[1], valid + offset, count), 0);
            cr_assert_eq(memcmp(first.columns[2], times + offset, count * 8), 0);
            cr_assert_eq(memcmp(first.columns[3], amounts + offset, count * 8), 0);
            cr_assert_eq(memcmp(first.columns[4], quantities + offset, count * 8), 0);
            cr_assert_eq(memcmp(first.columns[7], cancelled + offset, count), 0);
            cr_assert_eq(memcmp(first.columns[8], codes + offset, count * 4), 0);
            for (size_t i = 0; i < count; i++) {
                double price = offset + i < 1500 ? prices[offset + i] : 0.0;
                cr_assert_eq(memcmp((double *)first.columns[5] + i, &price, 8), 0, "row %zu",
                             offset + i);
                cr_assert_eq(((int64_t *)first.columns[6])[i], invoices[offset + i]);
            }
            for (int c = 0; c < 9; c++) {
                free(first.columns[c]);
                free(second.columns[c]);
            }
        }
        kseg_transaction_reader_close(direct);
        kseg_transaction_reader_close(through_hdf5);
    }
    omp_set_num_threads(omp_get_num_procs());
    free(ids);
    free(times);
    free(amounts);
    free(quantities);
    free(prices);
    free(invoices);
    free(codes);
    free(valid);
    free(cancelled);
}

/* A file cut short inside a chunk that a direct read takes fails with KSEG_EIO naming the
   dataset and a row, not with garbage or a crash. */
Test(transactions, direct_read_of_a_truncated_file_fails)
{
    const size_t n = 200000;
    int64_t *values = malloc(n * 8);
    double *amounts = malloc(n * 8);
    for (size_t i = 0; i < n; i++) {
        values[i] = (int64_t)i;
        amounts[i] = (double)i;
    }
    hid_t file = H5Fcreate(scratch_path("cut.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    put_stored(file, "/transactions/customer_id", H5T_NATIVE_INT64, n, n, 65536, 0, values);
    put_stored(file, "/transactions/time", H5T_NATIVE_INT64, n, n, 65536, 0, values);
    put_stored(file, "/transactions/amount", H5T_NATIVE_DOUBLE, n, n, 65536, 0, amounts);
    H5Fclose(file);
    kseg_error error;
    kseg_transaction_reader *reader = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&reader, scratch_path("cut.h5"), NULL, &error), 0,
                 "%s", error.message);
    kseg_transactions block;
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 10, &block, &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_io_transaction_reader_direct_count(reader), 3u);
    /* Every chunk's offset is already known; cutting the file to half its length leaves the
       later chunks past its end (HDF5's sec2 driver would read zeros there without a word). */
    struct stat info;
    cr_assert_eq(stat(scratch_path("cut.h5"), &info), 0);
    cr_assert_eq(truncate(scratch_path("cut.h5"), info.st_size / 2), 0);
    int status = kseg_transaction_reader_read(reader, 0, n, &block, &error);
    cr_assert_eq(status, KSEG_EIO, "status %d: %s", status, error.message);
    cr_assert_not_null(strstr(error.message, "ends early"), "%s", error.message);
    kseg_transaction_reader_close(reader);
    free(values);
    free(amounts);
}

Test(transactions, reader_layout_errors)
{
    hid_t file = H5Fcreate(scratch_path("nogroup.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(file);
    expect_open_error("nogroup.h5", NULL, KSEG_ENOENT, "no group /transactions");
    expect_open_error("absent.h5", NULL, KSEG_ENOENT, "no such file");

    file = minimal_file("noamount.h5", 4);
    H5Ldelete(file, "/transactions/amount", H5P_DEFAULT);
    H5Fclose(file);
    expect_open_error("noamount.h5", NULL, KSEG_ENOENT, "missing dataset amount");

    file = minimal_file("unequal.h5", 4);
    int64_t five[5] = {0};
    put(file, "/transactions/invoice", H5T_NATIVE_INT64, 5, five);
    H5Fclose(file);
    expect_open_error("unequal.h5", NULL, KSEG_ESHAPE, "invoice has 5 rows but customer_id has 4");

    file = minimal_file("floatid.h5", 4);
    H5Ldelete(file, "/transactions/customer_id", H5P_DEFAULT);
    double dids[4] = {1, 2, 3, 4};
    put(file, "/transactions/customer_id", H5T_NATIVE_DOUBLE, 4, dids);
    H5Fclose(file);
    expect_open_error("floatid.h5", NULL, KSEG_ETYPE,
                      "/transactions/customer_id: is float64 (expected an integer type)");

    file = minimal_file("strings.h5", 2);
    H5Ldelete(file, "/transactions/amount", H5P_DEFAULT);
    const char *words[] = {"1.5", "2"};
    put_strings(file, "/transactions/amount", words, 2);
    H5Fclose(file);
    expect_open_error("strings.h5", NULL, KSEG_ETYPE, "amount: is fixed string");

    file = minimal_file("twod.h5", 4);
    H5Ldelete(file, "/transactions/time", H5P_DEFAULT);
    hsize_t dims[2] = {2, 2};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(file, "/transactions/time", H5T_NATIVE_INT64, space, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(file);
    expect_open_error("twod.h5", NULL, KSEG_ESHAPE, "time: has 2 dimensions");

    file = minimal_file("nodict.h5", 4);
    int32_t codes[4] = {0, 1, 0, 1};
    put(file, "/transactions/region", H5T_NATIVE_INT32, 4, codes);
    put_string_attribute(file, "/transactions/region", "kind", "category");
    H5Fclose(file);
    expect_open_error("nodict.h5", NULL, KSEG_ENOENT, "category region has no dictionary");

    file = minimal_file("rows.h5", 4);
    hid_t group = H5Gopen2(file, "/transactions", H5P_DEFAULT);
    space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate2(group, "rows", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int64_t wrong = 9;
    H5Awrite(attribute, H5T_NATIVE_INT64, &wrong);
    H5Aclose(attribute);
    H5Sclose(space);
    H5Gclose(group);
    H5Fclose(file);
    expect_open_error("rows.h5", NULL, KSEG_EFORMAT, "attribute rows says 9");

    file = minimal_file("unit.h5", 4);
    put_string_attribute(file, "/transactions/time", "unit", "fortnights");
    H5Fclose(file);
    expect_open_error("unit.h5", NULL, KSEG_EFORMAT, "unit \"fortnights\" is not supported");

    file = minimal_file("othergroup.h5", 4);
    H5Fclose(file);
    expect_open_error("othergroup.h5", "/sales", KSEG_ENOENT, "no group /sales");
}

Test(transactions, reader_converts_types_units_and_checks_codes)
{
    hid_t file = H5Fcreate(scratch_path("types.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int32_t ids[4] = {5, -6, 7, 8};
    int64_t ms[4] = {-1500, 0, 999, 1000};
    float amounts[4] = {1.5f, -2.0f, 0.25f, 8.0f};
    int16_t valid[4] = {1, 0, 1, 1};
    uint16_t invoices[4] = {65535, 1, 2, 3};
    int8_t region[4] = {2, 0, 1, 2};
    put(file, "/g/customer_id", H5T_NATIVE_INT32, 4, ids);
    put(file, "/g/time", H5T_NATIVE_INT64, 4, ms);
    put_string_attribute(file, "/g/time", "unit", "ms");
    put(file, "/g/amount", H5T_NATIVE_FLOAT, 4, amounts);
    put(file, "/g/customer_valid", H5T_NATIVE_INT16, 4, valid);
    put(file, "/g/invoice", H5T_NATIVE_UINT16, 4, invoices);
    put(file, "/g/region", H5T_NATIVE_INT8, 4, region);
    put_string_attribute(file, "/g/region", "kind", "category");
    const char *regions[] = {"north", "south", "east"};
    put_strings(file, "/g/dictionaries/region", regions, 3);
    /* An integer column without kind = category is not a category. */
    put(file, "/g/store", H5T_NATIVE_INT8, 4, region);
    H5Fclose(file);

    kseg_transaction_reader *reader = NULL;
    kseg_error error = {0};
    cr_assert_eq(kseg_transaction_reader_open(&reader, scratch_path("types.h5"), "g", &error), 0,
                 "%s", error.message);
    kseg_transactions block;
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 4, &block, &error), 0, "%s",
                 error.message);
    const int64_t seconds[4] = {-2, 0, 0, 1};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(block.customer_id[i], ids[i]);
        cr_assert_eq(block.time[i], seconds[i], "row %zu: %lld", i, (long long)block.time[i]);
        cr_assert_eq(block.amount[i], (double)amounts[i]);
        cr_assert_eq(block.customer_valid[i], valid[i]);
        cr_assert_eq(block.invoice[i], invoices[i]);
    }
    cr_assert_null(block.quantity);
    cr_assert_null(block.price);
    cr_assert_null(block.cancelled);
    cr_assert_eq(block.n_categories, 1);
    cr_assert_str_eq(block.categories[0].names[block.categories[0].codes[0]], "east");
    kseg_transaction_reader_close(reader);

    /* A code beyond the dictionary is caught on read, naming the row. */
    file = minimal_file("badcode.h5", 4);
    int32_t codes[4] = {0, 1, 3, 0};
    put(file, "/transactions/region", H5T_NATIVE_INT32, 4, codes);
    put_string_attribute(file, "/transactions/region", "kind", "category");
    put_strings(file, "/transactions/dictionaries/region", regions, 3);
    H5Fclose(file);
    cr_assert_eq(kseg_transaction_reader_open(&reader, scratch_path("badcode.h5"), NULL, &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, 2, &block, &error), 0);
    cr_assert_eq(kseg_transaction_reader_read(reader, 1, 3, &block, &error), KSEG_EFORMAT);
    cr_assert_not_null(strstr(error.message, "row 2 has code 3 but the dictionary has 3 names"),
                       "%s", error.message);
    kseg_transaction_reader_close(reader);
    kseg_transaction_reader_close(NULL);
}

/* ---------------------------------------------------------------- generator */

typedef struct log_rows {
    size_t n;
    int64_t *customer_id, *time, *invoice;
    double *amount, *quantity, *price;
    uint8_t *cancelled;
    int32_t *codes[3];
} log_rows;

static log_rows generate(const kseg_transaction_options *options, uint64_t total, uint64_t begin,
                         size_t n)
{
    log_rows r;
    r.n = n;
    r.customer_id = malloc(n * 8);
    r.time = malloc(n * 8);
    r.invoice = malloc(n * 8);
    r.amount = malloc(n * 8);
    r.quantity = malloc(n * 8);
    r.price = malloc(n * 8);
    r.cancelled = malloc(n);
    for (int c = 0; c < 3; c++)
        r.codes[c] = malloc(n * 4);
    kseg_error error = {0};
    cr_assert_eq(kseg_generate_transactions(options, total, begin, n, r.customer_id, r.time,
                                            r.amount, r.quantity, r.price, r.invoice, r.cancelled,
                                            r.codes, &error),
                 0, "%s", error.message);
    return r;
}

static void release(log_rows *r)
{
    free(r->customer_id);
    free(r->time);
    free(r->invoice);
    free(r->amount);
    free(r->quantity);
    free(r->price);
    free(r->cancelled);
    for (int c = 0; c < 3; c++)
        free(r->codes[c]);
}

/* Non-zero when rows [0, n) of part equal rows [offset, offset + n) of whole. */
static int same_rows(const log_rows *whole, size_t offset, const log_rows *part)
{
    size_t n = part->n;
    int same = memcmp(whole->customer_id + offset, part->customer_id, n * 8) == 0 &&
               memcmp(whole->time + offset, part->time, n * 8) == 0 &&
               memcmp(whole->invoice + offset, part->invoice, n * 8) == 0 &&
               memcmp(whole->amount + offset, part->amount, n * 8) == 0 &&
               memcmp(whole->quantity + offset, part->quantity, n * 8) == 0 &&
               memcmp(whole->price + offset, part->price, n * 8) == 0 &&
               memcmp(whole->cancelled + offset, part->cancelled, n) == 0;
    for (int c = 0; c < 3; c++)
        same = same && memcmp(whole->codes[c] + offset, part->codes[c], n * 4) == 0;
    return same;
}

Test(transactions, generator_defaults_and_categories)
{
    kseg_transaction_options options;
    kseg_transaction_options_defaults(&options);
    cr_assert_eq(options.seed, 1);
    cr_assert_eq(options.customers, 100000);
    cr_assert_eq(options.start_time, 1672531200);
    cr_assert_eq(options.days, 730);
    cr_assert_float_eq(options.return_rate, 0.02, 1e-12);
    cr_assert_eq(kseg_generated_category_count(), 3);
    cr_assert_str_eq(kseg_generated_category_name(0), "channel");
    cr_assert_str_eq(kseg_generated_category_name(1), "country");
    cr_assert_str_eq(kseg_generated_category_name(2), "category");
    cr_assert_null(kseg_generated_category_name(3));
    cr_assert_eq(kseg_generated_category_size(0), 3);
    cr_assert_eq(kseg_generated_category_size(1), 10);
    cr_assert_eq(kseg_generated_category_size(2), 8);
    cr_assert_str_eq(kseg_generated_category_value(0, 0), "web");
    cr_assert_null(kseg_generated_category_value(0, 3));

    kseg_error error = {0};
    int64_t one;
    cr_assert_eq(kseg_generate_transactions(&options, 10, 5, 6, &one, NULL, NULL, NULL, NULL,
                                            NULL, NULL, NULL, &error),
                 KSEG_EINVAL);
    options.days = 0;
    cr_assert_eq(kseg_generate_transactions(&options, 10, 0, 1, &one, NULL, NULL, NULL, NULL,
                                            NULL, NULL, NULL, &error),
                 KSEG_EINVAL);
    kseg_transaction_options_defaults(&options);
    options.customers = 0;
    cr_assert_eq(kseg_generate_transactions(&options, 10, 0, 1, &one, NULL, NULL, NULL, NULL,
                                            NULL, NULL, NULL, &error),
                 KSEG_EINVAL);
    /* Every output may be NULL. */
    kseg_transaction_options_defaults(&options);
    cr_assert_eq(kseg_generate_transactions(&options, 10, 0, 10, NULL, NULL, NULL, NULL, NULL,
                                            NULL, NULL, NULL, &error),
                 0);
}

Test(transactions, generator_is_split_thread_and_seed_determined)
{
    kseg_transaction_options options;
    kseg_transaction_options_defaults(&options);
    options.customers = 3000;
    const uint64_t total = 60000;
    omp_set_num_threads(1);
    log_rows whole = generate(&options, total, 0, total);
    const size_t cuts[] = {1, 63, 64, 65, 4097, 30000, 59999};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        log_rows head = generate(&options, total, 0, cuts[k]);
        log_rows tail = generate(&options, total, cuts[k], total - cuts[k]);
        cr_assert(same_rows(&whole, 0, &head), "head differs at cut %zu", cuts[k]);
        cr_assert(same_rows(&whole, cuts[k], &tail), "tail differs at cut %zu", cuts[k]);
        release(&head);
        release(&tail);
    }
    const int threads[] = {2, 3, 7};
    for (size_t k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        log_rows parallel = generate(&options, total, 0, total);
        cr_assert(same_rows(&whole, 0, &parallel), "differs with %d threads", threads[k]);
        release(&parallel);
    }
    omp_set_num_threads(1);
    options.seed = 2;
    log_rows other = generate(&options, total, 0, total);
    size_t equal = 0;
    for (size_t i = 0; i < total; i++)
        equal += other.customer_id[i] == whole.customer_id[i];
    cr_assert_lt(equal, total / 100, "%zu equal customers for another seed", equal);
    release(&other);
    release(&whole);
}

static int descending(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

Test(transactions, generator_is_plausible)
{
    kseg_transaction_options options;
    kseg_transaction_options_defaults(&options);
    options.customers = 20000;
    options.days = 365;
    options.start_time = 1704067200; /* 2024-01-01, a Monday */
    const size_t n = 300000;
    log_rows r = generate(&options, n, 0, n);

    size_t *rows_of = calloc(options.customers, sizeof *rows_of);
    size_t returns = 0, december = 0, hour_counts[24] = {0};
    double positive_sum = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(r.customer_id[i], 100000);
        cr_assert_lt(r.customer_id[i], 100000 + (int64_t)options.customers);
        rows_of[r.customer_id[i] - 100000]++;
        cr_assert_geq(r.time[i], options.start_time);
        cr_assert_lt(r.time[i], options.start_time + options.days * 86400);
        if (i)
            cr_assert_geq(r.time[i], r.time[i - 1], "row %zu is earlier than row %zu", i, i - 1);
        cr_assert_eq(r.amount[i], r.quantity[i] * r.price[i]);
        cr_assert_eq(r.cancelled[i], r.quantity[i] < 0);
        cr_assert(r.price[i] >= 0.01 && r.price[i] == round(r.price[i] * 100) / 100);
        cr_assert(fabs(r.quantity[i]) >= 1 && fabs(r.quantity[i]) <= 1000);
        cr_assert(r.codes[0][i] >= 0 && r.codes[0][i] < 3);
        cr_assert(r.codes[1][i] >= 0 && r.codes[1][i] < 10);
        cr_assert(r.codes[2][i] >= 0 && r.codes[2][i] < 8);
        returns += r.cancelled[i];
        if (r.amount[i] > 0)
            positive_sum += r.amount[i];
        december += r.time[i] >= 1733011200; /* 2024-12-01 */
        hour_counts[(r.time[i] % 86400) / 3600]++;
        /* A visit is one invoice of one customer in one channel. */
        if (i && r.invoice[i] == r.invoice[i - 1]) {
            cr_assert_eq(r.customer_id[i], r.customer_id[i - 1]);
            cr_assert_eq(r.codes[0][i], r.codes[0][i - 1]);
            cr_assert_eq(r.cancelled[i], r.cancelled[i - 1]);
        }
    }
    /* Returns: about 2 % of the lines. */
    double return_share = (double)returns / (double)n;
    cr_assert(return_share > 0.012 && return_share < 0.028, "returns %.4f", return_share);
    /* Concentration: the top 1 % of the customers who bought hold a large share of the rows. */
    size_t buyers = 0;
    for (size_t c = 0; c < options.customers; c++)
        if (rows_of[c])
            rows_of[buyers++] = rows_of[c];
    qsort(rows_of, buyers, sizeof *rows_of, descending);
    size_t top = 0;
    for (size_t c = 0; c < buyers / 100; c++)
        top += rows_of[c];
    double top_share = (double)top / (double)n;
    cr_assert_gt(top_share, 0.10, "top 1%% hold %.3f of the rows", top_share);
    cr_assert_lt(top_share, 0.40, "top 1%% hold %.3f of the rows", top_share);
    cr_assert_gt(buyers, options.customers / 2, "only %zu buyers", buyers);
    /* Seasonality: December (8.5 % of the days) gets clearly more, nights much less. */
    double december_share = (double)december / (double)n;
    cr_assert_gt(december_share, 0.10, "December share %.3f", december_share);
    cr_assert_lt(hour_counts[3] * 10, hour_counts[19], "3 am %zu vs 7 pm %zu", hour_counts[3],
                 hour_counts[19]);
    cr_assert_gt(positive_sum / (double)(n - returns), 10.0);
    free(rows_of);
    release(&r);
}

Test(transactions, reader_reads_only_the_selected_columns)
{
    const size_t n = 5003;
    const char *names[] = {"channel"};
    kseg_transaction_file_options file;
    kseg_transaction_file_options_defaults(&file);
    file.rows = n;
    file.customer_valid = file.quantity = file.price = file.invoice = file.cancelled = 1;
    file.categories = names;
    file.n_categories = 1;
    file.chunk_rows = 700;
    kseg_error error = {0};
    kseg_transaction_writer *writer = NULL;
    const char *path = scratch_path("select.h5");
    cr_assert_eq(kseg_transaction_writer_open(&writer, path, &file, &error), 0, "%s",
                 error.message);
    int64_t *ids = malloc(n * sizeof *ids), *times = malloc(n * sizeof *times);
    int64_t *invoices = malloc(n * sizeof *invoices);
    double *amounts = malloc(n * sizeof *amounts), *quantities = malloc(n * sizeof *quantities);
    double *prices = malloc(n * sizeof *prices);
    uint8_t *valid = malloc(n), *cancelled = malloc(n);
    int32_t *channel = malloc(n * sizeof *channel);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(i * 31 % 977);
        times[i] = (int64_t)i * 60;
        invoices[i] = (int64_t)(i / 4);
        quantities[i] = (double)(i % 7) - 2;
        prices[i] = 0.5 * (double)(i % 9);
        amounts[i] = quantities[i] * prices[i];
        valid[i] = i % 17 != 0;
        cancelled[i] = quantities[i] < 0;
        channel[i] = (int32_t)(i % 3);
    }
    kseg_category_column view = {"channel", channel, NULL, 0};
    kseg_transactions all = {n, ids, valid, times, amounts, quantities, prices, invoices,
                             cancelled, &view, 1};
    cr_assert_eq(kseg_transaction_writer_write(writer, 0, &all, &error), 0, "%s", error.message);
    const char *channels[] = {"web", "store", "phone"};
    cr_assert_eq(kseg_transaction_writer_dictionary(writer, "channel", channels, 3, &error), 0);
    cr_assert_eq(kseg_transaction_writer_commit(writer, &error), 0, "%s", error.message);

    kseg_transaction_reader *reader = NULL;
    cr_assert_eq(kseg_transaction_reader_open(&reader, path, NULL, &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_transaction_reader_select(NULL, KSEG_TX_ALL, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_transaction_reader_select(reader, KSEG_TX_ALL + 1, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "unknown column"), "%s", error.message);

    /* What kseg rfm reads by default: no price, no categories. */
    unsigned rfm = KSEG_TX_CUSTOMER_ID | KSEG_TX_CUSTOMER_VALID | KSEG_TX_TIME | KSEG_TX_AMOUNT |
                   KSEG_TX_QUANTITY | KSEG_TX_INVOICE | KSEG_TX_CANCELLED;
    cr_assert_eq(kseg_transaction_reader_select(reader, rfm, &error), 0, "%s", error.message);
    kseg_transactions block;
    for (size_t offset = 0; offset < n; offset += 1000) {
        size_t count = n - offset < 1000 ? n - offset : 1000;
        cr_assert_eq(kseg_transaction_reader_read(reader, offset, count, &block, &error), 0, "%s",
                     error.message);
        cr_assert_eq(block.rows, count);
        cr_assert_null(block.price);
        cr_assert_null(block.categories);
        cr_assert_eq(block.n_categories, 0);
        cr_assert_eq(memcmp(block.customer_id, ids + offset, count * 8), 0);
        cr_assert_eq(memcmp(block.customer_valid, valid + offset, count), 0);
        cr_assert_eq(memcmp(block.time, times + offset, count * 8), 0);
        cr_assert_eq(memcmp(block.amount, amounts + offset, count * 8), 0);
        cr_assert_eq(memcmp(block.quantity, quantities + offset, count * 8), 0);
        cr_assert_eq(memcmp(block.invoice, invoices + offset, count * 8), 0);
        cr_assert_eq(memcmp(block.cancelled, cancelled + offset, count), 0);
    }

    /* Categories and price only; then everything again, in a larger block than before (the
       buffers of unselected columns grow too). */
    cr_assert_eq(kseg_transaction_reader_select(reader, KSEG_TX_PRICE | KSEG_TX_CATEGORIES,
                                                &error),
                 0);
    cr_assert_eq(kseg_transaction_reader_read(reader, 10, 500, &block, &error), 0, "%s",
                 error.message);
    cr_assert_null(block.customer_id);
    cr_assert_null(block.customer_valid);
    cr_assert_null(block.time);
    cr_assert_null(block.amount);
    cr_assert_null(block.quantity);
    cr_assert_null(block.invoice);
    cr_assert_null(block.cancelled);
    cr_assert_eq(memcmp(block.price, prices + 10, 500 * 8), 0);
    cr_assert_eq(block.n_categories, 1);
    cr_assert_str_eq(block.categories[0].names[2], "phone");
    cr_assert_eq(memcmp(block.categories[0].codes, channel + 10, 500 * 4), 0);

    cr_assert_eq(kseg_transaction_reader_select(reader, KSEG_TX_ALL, &error), 0);
    cr_assert_eq(kseg_transaction_reader_read(reader, 0, n, &block, &error), 0, "%s",
                 error.message);
    cr_assert_eq(memcmp(block.customer_id, ids, n * 8), 0);
    cr_assert_eq(memcmp(block.price, prices, n * 8), 0);
    cr_assert_eq(memcmp(block.quantity, quantities, n * 8), 0);
    cr_assert_eq(memcmp(block.categories[0].codes, channel, n * 4), 0);
    cr_assert_eq(block.n_categories, 1);
    kseg_transaction_reader_close(reader);

    free(ids);
    free(times);
    free(invoices);
    free(amounts);
    free(quantities);
    free(prices);
    free(valid);
    free(cancelled);
    free(channel);
}
