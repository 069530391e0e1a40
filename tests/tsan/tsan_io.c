/* ThreadSanitizer driver for the parallel gzip reader (io/h5_chunks.c): gzip and shuffle+gzip
 * matrices in chunks small enough that the read takes several batches (so the main thread reads
 * the next batch with HDF5 while the others inflate), with a row block and a column subset, and a
 * group of gzip columns, at 1, 2 and 4 threads; every table must equal the 1-thread one bit for
 * bit, and the 1-thread one must equal the written values. Also the parallel finiteness check,
 * which must name the same first NaN at every thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "kseg/kseg.h"
#include "tsan_driver.h"

#define ROWS 20000
#define COLUMNS 5

/* Writes dataset name of the file: ROWS x COLUMNS float32 in chunks of chunk_rows x 3 columns
   (5 columns: edge chunks on the right, and 20000 / 7 leaves a short chunk at the bottom). */
static void write_matrix(hid_t file, const char *name, hsize_t chunk_rows, int shuffle,
                         const float *values)
{
    hsize_t dims[2] = {ROWS, COLUMNS}, chunk[2] = {chunk_rows, 3};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    if (shuffle)
        H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 1);
    hid_t dataset = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dataset < 0 ||
        H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        fprintf(stderr, "%s: cannot write %s\n", tsan_driver_name, name);
        exit(1);
    }
    H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

static void write_column(hid_t group, const char *name, const float *values)
{
    hsize_t dims = ROWS, chunk = 1000;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 4);
    hid_t dataset = H5Dcreate2(group, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* Reads path at every thread count; checks each table against the 1-thread one and that against
   expected (rows x cols, row-major). */
static void check_read(const char *file, const char *path, const kseg_read_options *options,
                       const float *expected, size_t rows, size_t cols)
{
    kseg_table reference;
    kseg_table_init(&reference);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        kseg_table table;
        kseg_table_init(&table);
        kseg_error error = {0};
        tsan_set_threads(tsan_thread_counts[t]);
        TSAN_OK(kseg_h5_read_table(file, path, options, &table, &error), &error);
        TSAN_CHECK(table.matrix.rows == rows && table.matrix.cols == cols,
                   "%s: %zu x %zu read (expected %zu x %zu)", path, table.matrix.rows,
                   table.matrix.cols, rows, cols);
        if (t == 0) {
            TSAN_CHECK(memcmp(table.data, expected, rows * cols * sizeof(float)) == 0,
                       "%s: 1 thread does not read the written values", path);
            reference = table;
            continue;
        }
        TSAN_SAME(reference.data, table.data, rows * cols * sizeof(float),
                  tsan_thread_counts[t], "%s", path);
        kseg_table_destroy(&table);
    }
    kseg_table_destroy(&reference);
}

int main(void)
{
    tsan_start("tsan_io");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char file[] = "/tmp/kseg_tsan_io_XXXXXX";
    int descriptor = mkstemp(file);
    if (descriptor < 0) {
        fprintf(stderr, "%s: cannot create a temporary file\n", tsan_driver_name);
        return 1;
    }
    close(descriptor);

    float *values = malloc(ROWS * COLUMNS * sizeof *values);
    float *columns = malloc(ROWS * COLUMNS * sizeof *columns);
    float *expected = malloc(ROWS * COLUMNS * sizeof *expected);
    uint64_t state = 5;
    for (size_t i = 0; i < ROWS * COLUMNS; i++)
        values[i] = (float)(int)(tsan_uniform(&state) * 100.0) / 4.0f;
    for (size_t j = 0; j < COLUMNS; j++)
        for (size_t i = 0; i < ROWS; i++)
            columns[j * ROWS + i] = values[i * COLUMNS + j];

    hid_t h5 = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    /* 2858 x 2 chunks of 7 x 3: more than one batch of chunks (4096 at most). */
    write_matrix(h5, "/plain", 7, 0, values);
    write_matrix(h5, "/shuffled", 7, 1, values);
    hid_t group = H5Gcreate2(h5, "/columns", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[COLUMNS] = {"a", "b", "c", "d", "e"};
    for (size_t j = 0; j < COLUMNS; j++)
        write_column(group, names[j], columns + j * ROWS);
    H5Gclose(group);
    H5Fclose(h5);

    kseg_read_options options;
    kseg_read_options_defaults(&options);
    options.type = KSEG_READ_FLOAT32;
    check_read(file, "/plain", &options, values, ROWS, COLUMNS);
    check_read(file, "/shuffled", &options, values, ROWS, COLUMNS);
    check_read(file, "/columns", &options, values, ROWS, COLUMNS);

    /* Rows [1234, 19234) of columns column4 and column1 (reordered), across chunk edges. */
    const char *subset[] = {"column4", "column1"};
    options.columns = subset;
    options.n_columns = 2;
    options.row_offset = 1234;
    options.row_count = 18000;
    for (size_t i = 0; i < 18000; i++) {
        expected[i * 2] = values[(1234 + i) * COLUMNS + 4];
        expected[i * 2 + 1] = values[(1234 + i) * COLUMNS + 1];
    }
    check_read(file, "/shuffled", &options, expected, 18000, 2);

    /* Two NaNs in different threads' blocks: the first one is named, whatever the count. */
    values[70001] = NAN;
    values[90000] = NAN;
    h5 = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    write_matrix(h5, "/nan", 7, 1, values);
    H5Fclose(h5);
    kseg_read_options_defaults(&options);
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++) {
        kseg_table table;
        kseg_table_init(&table);
        kseg_error error = {0};
        tsan_set_threads(tsan_thread_counts[t]);
        int status = kseg_h5_read_table(file, "/nan", &options, &table, &error);
        TSAN_CHECK(status == KSEG_ENONFINITE && strstr(error.message, "row 14000, column "
                                                                      "\"column1\": value is NaN"),
                   "%d threads: %d %s", tsan_thread_counts[t], status, error.message);
        kseg_table_destroy(&table);
    }

    remove(file);
    free(values);
    free(columns);
    free(expected);
    return tsan_finish();
}
