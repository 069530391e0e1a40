/* The parallel gzip reader (io/h5_chunks.c) against HDF5's own filter pipeline: every layout the
 * fast path takes (deflate, shuffle + deflate, edge chunks, column and row subsets, chunks stored
 * with a filter skipped, float32 and float64) must give bitwise what H5Dread gives, at 1, 2 and 3
 * threads; layouts it must leave to HDF5 (big-endian, fletcher32, unwritten chunks, a type
 * conversion) are refused and still read correctly; damaged chunks are one precise error; the
 * blocked finiteness scan still names the first NaN or infinity. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <hdf5.h>

#include "h5_internal.h"
#include "kseg/io.h"
#include "scratch_dir.h"

KSEG_SCRATCH_SUITE(h5_chunks);

#define N_ROWS 1000
#define N_COLUMNS 7

/* Values that compress (repeating patterns) but differ in every row and column, with a few
   pseudo-random low bits so that shuffle matters. */
static double value_at(size_t i, size_t j)
{
    uint32_t noise = (uint32_t)(i * 2654435761u + j * 40503u) >> 24;
    return (double)((i * 7919 + j * 104729) % 1000) / 8.0 + (double)j + noise * 1e-3;
}

/* The filters a test dataset is written with. */
typedef struct layout {
    hsize_t chunk_rows, chunk_columns;   /* 0 rows: contiguous */
    int gzip;                            /* level, 0 = none */
    int shuffle;
    int fletcher32;
    hid_t file_type;
    int unfiltered_edges;                /* HDF5 stores partial edge chunks unfiltered */
} layout;

/* Writes the N_ROWS x N_COLUMNS dataset /customers/features with the given layout. */
static void write_dataset(const char *path, const layout *how)
{
    /* Unfiltered edge chunks need the newer file format. */
    hid_t access = H5Pcreate(H5P_FILE_ACCESS);
    if (how->unfiltered_edges)
        H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, access);
    H5Pclose(access);
    cr_assert_geq(file, 0);
    hsize_t dims[2] = {N_ROWS, N_COLUMNS};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (how->chunk_rows) {
        hsize_t chunk[2] = {how->chunk_rows, how->chunk_columns};
        H5Pset_chunk(dcpl, 2, chunk);
        if (how->fletcher32)
            H5Pset_fletcher32(dcpl);
        if (how->shuffle)
            H5Pset_shuffle(dcpl);
        if (how->gzip)
            H5Pset_deflate(dcpl, (unsigned)how->gzip);
        if (how->unfiltered_edges)
            H5Pset_chunk_opts(dcpl, H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS);
    }
    hid_t dataset = H5Dcreate2(file, "/customers/features", how->file_type, space, lcpl, dcpl,
                               H5P_DEFAULT);
    cr_assert_geq(dataset, 0);
    double *values = malloc(N_ROWS * N_COLUMNS * sizeof *values);
    for (size_t i = 0; i < N_ROWS; i++)
        for (size_t j = 0; j < N_COLUMNS; j++)
            values[i * N_COLUMNS + j] = value_at(i, j);
    cr_assert_geq(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), 0);
    free(values);
    H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    H5Fclose(file);
}

/* The whole dataset through HDF5's own pipeline: the oracle. */
static void *read_with_hdf5(const char *path, hid_t memory_type, size_t element)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dataset = H5Dopen2(file, "/customers/features", H5P_DEFAULT);
    void *all = malloc(N_ROWS * N_COLUMNS * element);
    cr_assert_geq(H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, all), 0);
    H5Dclose(dataset);
    H5Fclose(file);
    return all;
}

/* Calls the fast path directly; returns what it returned, the data in *out. */
static int read_fast(const char *path, hid_t memory_type, size_t element, size_t first,
                     size_t count, const size_t *columns, size_t n_columns, void **out,
                     kseg_error *error)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dataset = H5Dopen2(file, "/customers/features", H5P_DEFAULT);
    cr_assert_geq(dataset, 0);
    *out = calloc(count * n_columns, element);
    int status = kseg_io_h5_read_deflated(dataset, memory_type, "test.h5:/customers/features",
                                          first, count, columns, n_columns, *out, n_columns,
                                          error);
    H5Dclose(dataset);
    H5Fclose(file);
    return status;
}

/* Checks the fast path (expected to be taken or not) and kseg_h5_read_table against the oracle,
   bitwise, for all columns and rows, for a row block with a column subset, at 1, 2 and 3
   threads. */
static void check_layout(const layout *how, int expect_fast, kseg_read_type type)
{
    static int counter;
    char path[512];
    snprintf(path, sizeof path, "%s/case%d.h5", scratch, counter++);
    write_dataset(path, how);
    const hid_t memory_type = type == KSEG_READ_FLOAT32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    const size_t element = type == KSEG_READ_FLOAT32 ? 4 : 8;
    unsigned char *all = read_with_hdf5(path, memory_type, element);

    /* (first, count, columns): everything; a block with an ascending subset; one column. */
    static const size_t every[N_COLUMNS] = {0, 1, 2, 3, 4, 5, 6};
    static const size_t subset[] = {1, 2, 5};
    static const size_t last[] = {6};
    struct {
        size_t first, count;
        const size_t *columns;
        size_t n_columns;
    } cases[] = {{0, N_ROWS, every, N_COLUMNS}, {250, 333, subset, 3}, {999, 1, last, 1},
                 {3, 990, every, N_COLUMNS}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int threads = 1; threads <= 3; threads++) {
            omp_set_num_threads(threads);
            kseg_error error;
            kseg_error_clear(&error);
            void *fast = NULL;
            int status = read_fast(path, memory_type, element, cases[c].first, cases[c].count,
                                   cases[c].columns, cases[c].n_columns, &fast, &error);
            cr_assert_eq(status, expect_fast, "case %zu, %d threads: returned %d (%s)", c, threads,
                         status, error.message);
            if (status == 1) {
                for (size_t i = 0; i < cases[c].count; i++)
                    for (size_t q = 0; q < cases[c].n_columns; q++)
                        cr_assert(memcmp((unsigned char *)fast +
                                             (i * cases[c].n_columns + q) * element,
                                         all + ((cases[c].first + i) * N_COLUMNS +
                                                cases[c].columns[q]) * element,
                                         element) == 0,
                                  "case %zu, %d threads: row %zu, column %zu differs", c, threads,
                                  cases[c].first + i, cases[c].columns[q]);
            }
            free(fast);
        }
    }

    /* The public reader, with columns reordered by name, at 1 and 2 threads. */
    const char *names[] = {"column5", "column1", "column2"};
    const size_t picked[] = {5, 1, 2};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        kseg_read_options options;
        kseg_read_options_defaults(&options);
        options.type = type;
        options.columns = names;
        options.n_columns = 3;
        options.row_offset = 17;
        options.row_count = 900;
        kseg_table table;
        kseg_table_init(&table);
        kseg_error error;
        kseg_error_clear(&error);
        cr_assert_eq(kseg_h5_read_table(path, NULL, &options, &table, &error), 0, "%s",
                     error.message);
        for (size_t i = 0; i < 900; i++)
            for (size_t q = 0; q < 3; q++)
                cr_assert(memcmp((unsigned char *)table.data + (i * 3 + q) * element,
                                 all + ((17 + i) * N_COLUMNS + picked[q]) * element,
                                 element) == 0,
                          "read_table, %d threads: row %zu, column %zu differs", threads, 17 + i,
                          picked[q]);
        kseg_table_destroy(&table);
    }
    free(all);
}

Test(h5_chunks, deflate_full_width_chunks_that_do_not_divide_the_rows)
{
    layout how = {128, N_COLUMNS, 4, 0, 0, H5T_IEEE_F32LE, 0};
    check_layout(&how, 1, KSEG_READ_FLOAT32);
    how.gzip = 1;
    check_layout(&how, 1, KSEG_READ_FLOAT32);
    how.gzip = 9;
    check_layout(&how, 1, KSEG_READ_FLOAT32);
}

Test(h5_chunks, shuffle_and_deflate_float32_and_float64)
{
    layout how = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F32LE, 0};
    check_layout(&how, 1, KSEG_READ_FLOAT32);
    how.file_type = H5T_IEEE_F64LE;
    check_layout(&how, 1, KSEG_READ_FLOAT64);
    how.shuffle = 0;
    check_layout(&how, 1, KSEG_READ_FLOAT64);
}

Test(h5_chunks, chunks_spanning_some_columns_with_edges_in_both_directions)
{
    layout how = {100, 3, 6, 0, 0, H5T_IEEE_F32LE, 0};
    check_layout(&how, 1, KSEG_READ_FLOAT32);
    how.chunk_rows = 37;
    how.chunk_columns = 4;
    how.shuffle = 1;
    check_layout(&how, 1, KSEG_READ_FLOAT32);
    how.file_type = H5T_IEEE_F64LE;
    check_layout(&how, 1, KSEG_READ_FLOAT64);
    /* One chunk for everything, and chunks of a single element (which HDF5 does not shuffle). */
    layout single = {N_ROWS, N_COLUMNS, 2, 1, 0, H5T_IEEE_F32LE, 0};
    check_layout(&single, 1, KSEG_READ_FLOAT32);
    layout tiny = {1, 1, 1, 1, 0, H5T_IEEE_F32LE, 0};
    check_layout(&tiny, 1, KSEG_READ_FLOAT32);
}

Test(h5_chunks, layouts_left_to_hdf5_still_read_correctly)
{
    /* Big-endian values need byte swapping. */
    layout how = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F32BE, 0};
    check_layout(&how, 0, KSEG_READ_FLOAT32);
    /* A checksum filter in the pipeline. */
    layout checked = {128, N_COLUMNS, 4, 0, 1, H5T_IEEE_F32LE, 0};
    check_layout(&checked, 0, KSEG_READ_FLOAT32);
    /* float64 in the file read as float32: HDF5 converts. */
    layout wide = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F64LE, 0};
    check_layout(&wide, 0, KSEG_READ_FLOAT32);
    /* Shuffle without deflate, and neither filter. */
    layout shuffle_only = {128, N_COLUMNS, 0, 1, 0, H5T_IEEE_F32LE, 0};
    check_layout(&shuffle_only, 0, KSEG_READ_FLOAT32);
    layout plain = {128, N_COLUMNS, 0, 0, 0, H5T_IEEE_F32LE, 0};
    check_layout(&plain, 0, KSEG_READ_FLOAT32);
    layout contiguous = {0, 0, 0, 0, 0, H5T_IEEE_F32LE, 0};
    check_layout(&contiguous, 0, KSEG_READ_FLOAT32);
    /* Partial edge chunks (1000 rows in chunks of 128) stored unfiltered, which the chunks'
       filter masks do not record: only HDF5 can tell them apart. */
    layout unfiltered_edges = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F32LE, 1};
    check_layout(&unfiltered_edges, 0, KSEG_READ_FLOAT32);
}

/* Opens /customers/features of path read-write. */
static hid_t open_for_update(const char *path, hid_t *file)
{
    *file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(*file, 0);
    hid_t dataset = H5Dopen2(*file, "/customers/features", H5P_DEFAULT);
    cr_assert_geq(dataset, 0);
    return dataset;
}

/* HDF5 shuffles a chunk this way before deflating it. */
static void shuffle_bytes(const unsigned char *in, unsigned char *out, size_t elements,
                          size_t element)
{
    for (size_t i = 0; i < elements; i++)
        for (size_t b = 0; b < element; b++)
            out[b * elements + i] = in[i * element + b];
}

Test(h5_chunks, chunks_stored_with_filters_skipped)
{
    /* Chunk 2 (rows 256-383) of each file is rewritten raw, as HDF5 stores a chunk whose
       optional filter failed: filter mask bit i set = filter i not applied. */
    const hsize_t chunk_rows = 128;
    const size_t chunk_bytes = chunk_rows * N_COLUMNS * sizeof(float);
    float raw[128 * N_COLUMNS];
    unsigned char shuffled[sizeof raw];
    for (size_t i = 0; i < chunk_rows; i++)
        for (size_t j = 0; j < N_COLUMNS; j++)
            raw[i * N_COLUMNS + j] = (float)value_at(256 + i, j) + 0.5f;
    shuffle_bytes((const unsigned char *)raw, shuffled, chunk_rows * N_COLUMNS, sizeof(float));
    /* (shuffle in the pipeline, mask, bytes stored) */
    struct {
        int shuffle;
        uint32_t mask;
        const void *bytes;
    } cases[] = {{0, 1, raw}, {1, 2, shuffled}, {1, 3, raw}};
    for (size_t c = 0; c < 3; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/skipped%zu.h5", scratch, c);
        layout how = {chunk_rows, N_COLUMNS, 4, cases[c].shuffle, 0, H5T_IEEE_F32LE, 0};
        write_dataset(path, &how);
        hid_t file;
        hid_t dataset = open_for_update(path, &file);
        hsize_t offset[2] = {256, 0};
        cr_assert_geq(H5Dwrite_chunk(dataset, H5P_DEFAULT, cases[c].mask, offset, chunk_bytes,
                                     cases[c].bytes),
                      0);
        H5Dclose(dataset);
        H5Fclose(file);

        float *all = read_with_hdf5(path, H5T_NATIVE_FLOAT, sizeof(float));
        cr_assert(memcmp(all + 256 * N_COLUMNS, raw, chunk_bytes) == 0,
                  "the oracle does not see the raw chunk");
        static const size_t every[N_COLUMNS] = {0, 1, 2, 3, 4, 5, 6};
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            kseg_error error;
            kseg_error_clear(&error);
            void *fast = NULL;
            cr_assert_eq(read_fast(path, H5T_NATIVE_FLOAT, sizeof(float), 0, N_ROWS, every,
                                   N_COLUMNS, &fast, &error),
                         1, "%s", error.message);
            cr_assert(memcmp(fast, all, sizeof(float) * N_ROWS * N_COLUMNS) == 0,
                      "mask %u, %d threads: differs from H5Dread", cases[c].mask, threads);
            free(fast);
        }
        free(all);
    }
}

Test(h5_chunks, unwritten_chunks_read_as_the_fill_value_through_hdf5)
{
    const char *path = scratch_path("partial.h5");
    layout how = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F32LE, 0};
    write_dataset(path, &how);
    /* Grow the dataset: the new chunks are never written. */
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t dims[2] = {N_ROWS, N_COLUMNS}, max[2] = {H5S_UNLIMITED, N_COLUMNS};
    hsize_t chunk[2] = {128, N_COLUMNS};
    hid_t space = H5Screate_simple(2, dims, max);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t dataset = H5Dcreate2(file, "/customers/grown", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl,
                               H5P_DEFAULT);
    float ones[N_ROWS * N_COLUMNS];
    for (size_t i = 0; i < N_ROWS * N_COLUMNS; i++)
        ones[i] = 1.0f;
    H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ones);
    hsize_t grown[2] = {2 * N_ROWS, N_COLUMNS};
    cr_assert_geq(H5Dset_extent(dataset, grown), 0);
    float out[2 * N_ROWS];
    kseg_error error;
    kseg_error_clear(&error);
    const size_t all_columns[N_COLUMNS] = {0, 1, 2, 3, 4, 5, 6};
    float *fast = calloc(2 * N_ROWS * N_COLUMNS, sizeof *fast);
    cr_assert_eq(kseg_io_h5_read_deflated(dataset, H5T_NATIVE_FLOAT, "grown", 0, 2 * N_ROWS,
                                          all_columns, N_COLUMNS, fast, N_COLUMNS, &error),
                 0, "unwritten chunks must be left to HDF5");
    free(fast);
    H5Dclose(dataset);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Fclose(file);

    kseg_table table;
    kseg_table_init(&table);
    cr_assert_eq(kseg_h5_read_table(path, "/customers/grown", NULL, &table, &error), 0, "%s",
                 error.message);
    cr_assert_eq(table.matrix.rows, 2 * N_ROWS);
    for (size_t i = 0; i < 2 * N_ROWS; i++)
        out[i] = ((const float *)table.data)[i * N_COLUMNS + 3];
    cr_assert_eq(out[N_ROWS - 1], 1.0f);
    cr_assert_eq(out[N_ROWS], 0.0f, "an unwritten chunk reads as the fill value 0");
    kseg_table_destroy(&table);
}

Test(h5_chunks, gzip_column_group_reads_like_hdf5)
{
    const char *path = scratch_path("group.h5");
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = N_ROWS, chunk = 96;
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 3);
    hid_t group = H5Gcreate2(file, "/columns", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[] = {"a", "b", "c"};
    double column[N_ROWS];
    for (size_t j = 0; j < 3; j++) {
        for (size_t i = 0; i < N_ROWS; i++)
            column[i] = value_at(i, j);
        hid_t dataset = H5Dcreate2(group, names[j], H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl,
                                   H5P_DEFAULT);
        H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, column);
        H5Dclose(dataset);
    }
    H5Gclose(group);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);

    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        kseg_read_options options;
        kseg_read_options_defaults(&options);
        options.row_offset = 50;
        kseg_table table;
        kseg_table_init(&table);
        kseg_error error;
        kseg_error_clear(&error);
        cr_assert_eq(kseg_h5_read_table(path, "/columns", &options, &table, &error), 0, "%s",
                     error.message);
        cr_assert_eq(table.matrix.cols, 3);
        const double *data = table.data;
        for (size_t i = 0; i < N_ROWS - 50; i++)
            for (size_t j = 0; j < 3; j++)
                cr_assert_eq(data[i * 3 + j], value_at(50 + i, j), "row %zu, column %zu", 50 + i,
                             j);
        kseg_table_destroy(&table);
    }
}

/* Replaces the stored bytes of the chunk at rows [256, 384) with what damage makes of them. */
static void damage_chunk(const char *path, void (*damage)(unsigned char *bytes, size_t *size))
{
    hid_t file;
    hid_t dataset = open_for_update(path, &file);
    hsize_t offset[2] = {256, 0}, stored = 0;
    cr_assert_geq(H5Dget_chunk_storage_size(dataset, offset, &stored), 0);
    unsigned char *bytes = malloc(stored + 4096);
    uint32_t mask = 0;
    cr_assert_geq(H5Dread_chunk(dataset, H5P_DEFAULT, offset, &mask, bytes), 0);
    size_t size = (size_t)stored;
    damage(bytes, &size);
    cr_assert_geq(H5Dwrite_chunk(dataset, H5P_DEFAULT, mask, offset, size, bytes), 0);
    free(bytes);
    H5Dclose(dataset);
    H5Fclose(file);
}

static void flip_bytes(unsigned char *bytes, size_t *size)
{
    for (size_t i = *size / 3; i < *size / 3 + 16; i++)
        bytes[i] ^= 0x5a;
}

static void truncate_stream(unsigned char *bytes, size_t *size)
{
    (void)bytes;
    *size /= 2;
}

/* A valid zlib stream of half a chunk: inflates cleanly to the wrong size. */
static void short_stream(unsigned char *bytes, size_t *size)
{
    unsigned char half[128 * N_COLUMNS * sizeof(float) / 2];
    memset(half, 7, sizeof half);
    uLongf length = *size + 4096;
    cr_assert_eq(compress2(bytes, &length, half, sizeof half, 4), Z_OK);
    *size = length;
}

Test(h5_chunks, a_damaged_chunk_is_one_precise_error)
{
    void (*damages[])(unsigned char *, size_t *) = {flip_bytes, truncate_stream, short_stream};
    const char *reasons[] = {"", "", "inflates to fewer bytes"};
    for (size_t c = 0; c < 3; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/damaged%zu.h5", scratch, c);
        layout how = {128, N_COLUMNS, 4, c == 1, 0, H5T_IEEE_F32LE, 0};
        write_dataset(path, &how);
        damage_chunk(path, damages[c]);
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            kseg_table table;
            kseg_table_init(&table);
            kseg_error error;
            kseg_error_clear(&error);
            int status = kseg_h5_read_table(path, NULL, NULL, &table, &error);
            cr_assert_eq(status, KSEG_EFORMAT, "damage %zu: status %d (%s)", c, status,
                         error.message);
            char expected[1024];
            snprintf(expected, sizeof expected,
                     "%s:/customers/features: chunk at rows [256, 384), columns [0, 7) is "
                     "corrupt: ",
                     path);
            cr_assert(strncmp(error.message, expected, strlen(expected)) == 0, "message: %s",
                      error.message);
            cr_assert_not_null(strstr(error.message, reasons[c]), "message: %s", error.message);
            cr_assert_null(strchr(error.message, '\n'));
            cr_assert_null(table.data);
            cr_assert_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
        }
    }
}

Test(h5_chunks, nonfinite_values_are_located_across_scan_blocks)
{
    /* The finiteness check scans 4096 values at a time: a NaN past the first block and an
       infinity in the last, partial one are each named by row and column. */
    const size_t positions[] = {5000, N_ROWS * N_COLUMNS - 1, 4095, 4096};
    const float bad[] = {NAN, -INFINITY, INFINITY, NAN};
    for (size_t c = 0; c < 4; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/nonfinite%zu.h5", scratch, c);
        layout how = {128, N_COLUMNS, 4, 1, 0, H5T_IEEE_F32LE, 0};
        write_dataset(path, &how);
        hid_t file;
        hid_t dataset = open_for_update(path, &file);
        hsize_t dims[2] = {N_ROWS, N_COLUMNS};
        hsize_t start[2] = {positions[c] / N_COLUMNS, positions[c] % N_COLUMNS}, one[2] = {1, 1};
        hid_t space = H5Screate_simple(2, dims, NULL);
        hid_t memory = H5Screate_simple(2, one, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, one, NULL);
        cr_assert_geq(H5Dwrite(dataset, H5T_NATIVE_FLOAT, memory, space, H5P_DEFAULT, &bad[c]), 0);
        H5Sclose(memory);
        H5Sclose(space);
        H5Dclose(dataset);
        H5Fclose(file);
        kseg_table table;
        kseg_table_init(&table);
        kseg_error error;
        kseg_error_clear(&error);
        cr_assert_eq(kseg_h5_read_table(path, NULL, NULL, &table, &error), KSEG_ENONFINITE);
        char expected[128];
        snprintf(expected, sizeof expected, "row %zu, column \"column%zu\": value is %s",
                 positions[c] / N_COLUMNS, positions[c] % N_COLUMNS,
                 isnan(bad[c]) ? "NaN" : bad[c] > 0 ? "+Inf" : "-Inf");
        cr_assert_not_null(strstr(error.message, expected), "%s", error.message);
    }
}

Test(h5_chunks, a_chunk_stored_raw_with_the_wrong_size_is_refused)
{
    /* Deflate marked as skipped, but fewer bytes stored than the chunk holds. (HDF5 1.10's own
       read of such a chunk overruns its buffer, so only the fast path is called here.) */
    char path[512];
    snprintf(path, sizeof path, "%s/short_raw.h5", scratch);
    layout how = {128, N_COLUMNS, 4, 0, 0, H5T_IEEE_F32LE, 0};
    write_dataset(path, &how);
    hid_t file;
    hid_t dataset = open_for_update(path, &file);
    hsize_t offset[2] = {256, 0};
    const float few[5] = {1, 2, 3, 4, 5};
    cr_assert_geq(H5Dwrite_chunk(dataset, H5P_DEFAULT, 1, offset, sizeof few, few), 0);
    H5Dclose(dataset);
    H5Fclose(file);
    static const size_t every[N_COLUMNS] = {0, 1, 2, 3, 4, 5, 6};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        kseg_error error;
        kseg_error_clear(&error);
        void *fast = NULL;
        cr_assert_eq(read_fast(path, H5T_NATIVE_FLOAT, sizeof(float), 0, N_ROWS, every,
                               N_COLUMNS, &fast, &error),
                     KSEG_EFORMAT);
        cr_assert_not_null(strstr(error.message, "test.h5:/customers/features: chunk at rows "
                                                 "[256, 384), columns [0, 7) is corrupt: stored "
                                                 "uncompressed with the wrong size"),
                           "%s", error.message);
        free(fast);
    }
}

Test(h5_chunks, contiguous_reads_in_checked_slabs_name_the_global_row)
{
    /* 300000 x 4 float32 is 4.6 MiB: two 4 MiB slabs, each checked as it is read. The matrix
       must still equal H5Dread's, and a NaN in the second slab is named by its file row, also
       when the read starts at a row offset. */
    const size_t rows = 300000, cols = 4;
    const char *path = scratch_path("slabs.h5");
    float *values = malloc(rows * cols * sizeof *values);
    for (size_t i = 0; i < rows * cols; i++)
        values[i] = (float)(i % 1000) * 0.25f;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {rows, cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dataset = H5Dcreate2(file, "/features", H5T_IEEE_F32LE, space, H5P_DEFAULT,
                               H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    H5Dclose(dataset);
    dataset = H5Dcreate2(file, "/with_nan", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    values[270000 * cols + 2] = NAN;
    values[280000 * cols + 1] = NAN;
    H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    values[270000 * cols + 2] = (float)((270000 * cols + 2) % 1000) * 0.25f;
    values[280000 * cols + 1] = (float)((280000 * cols + 1) % 1000) * 0.25f;
    H5Dclose(dataset);
    H5Sclose(space);
    H5Fclose(file);

    kseg_read_options options;
    kseg_read_options_defaults(&options);
    kseg_table table;
    kseg_table_init(&table);
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_h5_read_table(path, "/features", &options, &table, &error), 0, "%s",
                 error.message);
    cr_assert(memcmp(table.data, values, rows * cols * sizeof(float)) == 0);
    kseg_table_destroy(&table);
    for (size_t offset = 0; offset <= 5; offset += 5) {
        options.row_offset = offset;
        cr_assert_eq(kseg_h5_read_table(path, "/with_nan", &options, &table, &error),
                     KSEG_ENONFINITE);
        cr_assert_not_null(strstr(error.message, "row 270000, column \"column2\": value is NaN"),
                           "%s", error.message);
        cr_assert_null(table.data);
    }
    free(values);
}
