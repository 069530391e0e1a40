/* HDF5 input and output: round trips through every integer and float type, both layouts (2-D
 * dataset, column group), column selection, row blocks, ids, every error the reader reports
 * (code and message), NaN/Inf location, the atomic writer, locations and the listing. Fixtures
 * are written with the raw HDF5 API so that the reader is tested against files kseg did not
 * write itself. */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "kseg/io.h"
#include "scratch_dir.h"

/* ---------------------------------------------------------------- fixtures */

KSEG_SCRATCH_SUITE(io);

/* No file, dataset, group, named type or attribute may stay open after a kseg call, whatever it
   returned. (HDF5 1.10 cannot count library-type ids such as dataspaces from outside.) */
static void assert_no_open_files(void)
{
    ssize_t open_objects = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    cr_assert_eq(open_objects, 0, "%zd HDF5 objects left open", open_objects);
}

static hid_t create_file(const char *path)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(file, 0, "cannot create %s", path);
    return file;
}

/* Writes a dataset of file type `type` and shape dims (rank 1 or 2) from double values, which
   HDF5 converts; chunk_rows > 0 makes it chunked, gzip > 0 compressed. */
static void write_raw(hid_t file, const char *path, hid_t type, int rank, const hsize_t *dims,
                      const double *values, hsize_t chunk_rows, int gzip)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk_rows > 0) {
        hsize_t chunk[2] = {chunk_rows, rank == 2 ? dims[1] : 1};
        H5Pset_chunk(dcpl, rank, chunk);
        if (gzip > 0)
            H5Pset_deflate(dcpl, (unsigned)gzip);
    }
    hid_t dataset = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    cr_assert_geq(dataset, 0, "cannot create %s", path);
    if (values)
        cr_assert_geq(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values),
                      0);
    H5Dclose(dataset);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
}

/* Attaches a "columns" attribute of count names, variable-length or fixed-length strings. */
static void write_columns(hid_t file, const char *path, const char *const *names, size_t count,
                          int fixed)
{
    hid_t object = H5Oopen(file, path, H5P_DEFAULT);
    hsize_t dims = count;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t type = H5Tcopy(H5T_C_S1);
    if (fixed) {
        /* numpy 'S' arrays: NUL-padded, as wide as the longest name. */
        size_t width = 1;
        for (size_t i = 0; i < count; i++)
            if (strlen(names[i]) > width)
                width = strlen(names[i]);
        H5Tset_size(type, width);
        H5Tset_strpad(type, H5T_STR_NULLPAD);
        char *buffer = calloc(count, width);
        for (size_t i = 0; i < count; i++)
            memcpy(buffer + i * width, names[i], strlen(names[i]));
        hid_t attribute = H5Acreate2(object, "columns", type, space, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert_geq(H5Awrite(attribute, type, buffer), 0);
        H5Aclose(attribute);
        free(buffer);
    } else {
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
        hid_t attribute = H5Acreate2(object, "columns", type, space, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert_geq(H5Awrite(attribute, type, names), 0);
        H5Aclose(attribute);
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Oclose(object);
}

/* Value (i, j) of the test matrices: small integers that every type holds exactly, negative
   for signed types so that sign handling is exercised. */
static double cell(size_t i, size_t j, int is_signed)
{
    return (double)(i * 3 + j) - (is_signed ? 50.0 : 0.0);
}

static double *matrix_values(size_t n, size_t d, int is_signed)
{
    double *values = malloc(n * d * sizeof *values);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            values[i * d + j] = cell(i, j, is_signed);
    return values;
}

static double table_get(const kseg_table *table, size_t i, size_t j)
{
    return kseg_matrix_get(&table->matrix, i, j);
}

/* Reads file:path and expects code, with substring in the message; checks no ids leak. */
static void expect_read_error(const char *file, const char *path, const kseg_read_options *options,
                              int code, const char *substring)
{
    kseg_table table;
    kseg_error error;
    kseg_error_clear(&error);
    int status = kseg_h5_read_table(file, path, options, &table, &error);
    cr_assert_eq(status, code, "expected %s, got %s: %s", kseg_err_name(code), kseg_err_name(status),
                 error.message);
    cr_assert_eq(error.code, code);
    cr_assert_not_null(strstr(error.message, substring), "message \"%s\" lacks \"%s\"",
                       error.message, substring);
    cr_assert_null(strchr(error.message, '\n'));
    cr_assert_null(table.data);
    cr_assert_null(table.column_names);
    assert_no_open_files();
}

/* ---------------------------------------------------------------- round trips */

typedef struct type_case {
    const char *name;
    hid_t (*type)(void);
    int is_signed;
    kseg_dtype native;
} type_case;

/* The predefined type ids are macros that call H5open(), so they are wrapped in functions. */
static hid_t t_i8(void) { return H5T_STD_I8LE; }
static hid_t t_u8(void) { return H5T_STD_U8LE; }
static hid_t t_i16(void) { return H5T_STD_I16LE; }
static hid_t t_u16(void) { return H5T_STD_U16BE; }
static hid_t t_i32(void) { return H5T_STD_I32LE; }
static hid_t t_u32(void) { return H5T_STD_U32LE; }
static hid_t t_i64(void) { return H5T_STD_I64BE; }
static hid_t t_u64(void) { return H5T_STD_U64LE; }
static hid_t t_f32(void) { return H5T_IEEE_F32LE; }
static hid_t t_f32be(void) { return H5T_IEEE_F32BE; }
static hid_t t_f64(void) { return H5T_IEEE_F64LE; }
static hid_t t_f64be(void) { return H5T_IEEE_F64BE; }

static const type_case type_cases[] = {
    {"int8", t_i8, 1, KSEG_FLOAT32},       {"uint8", t_u8, 0, KSEG_FLOAT32},
    {"int16", t_i16, 1, KSEG_FLOAT32},     {"uint16be", t_u16, 0, KSEG_FLOAT32},
    {"int32", t_i32, 1, KSEG_FLOAT64},     {"uint32", t_u32, 0, KSEG_FLOAT64},
    {"int64be", t_i64, 1, KSEG_FLOAT64},   {"uint64", t_u64, 0, KSEG_FLOAT64},
    {"float32", t_f32, 1, KSEG_FLOAT32},   {"float32be", t_f32be, 1, KSEG_FLOAT32},
    {"float64", t_f64, 1, KSEG_FLOAT64},   {"float64be", t_f64be, 1, KSEG_FLOAT64},
};

Test(io, every_type_2d_contiguous_and_chunked_gzip)
{
    const size_t n = 37, d = 3;
    for (size_t t = 0; t < sizeof type_cases / sizeof type_cases[0]; t++) {
        const type_case *c = &type_cases[t];
        double *values = matrix_values(n, d, c->is_signed);
        const char *file = scratch_path("types.h5");
        hid_t h5 = create_file(file);
        hsize_t dims[2] = {n, d};
        write_raw(h5, "/plain/features", c->type(), 2, dims, values, 0, 0);
        write_raw(h5, "/packed/features", c->type(), 2, dims, values, 8, 6);
        H5Fclose(h5);
        free(values);

        const char *paths[] = {"/plain/features", "/packed/features"};
        const kseg_read_type read_types[] = {KSEG_READ_NATIVE, KSEG_READ_FLOAT32,
                                             KSEG_READ_FLOAT64};
        for (size_t p = 0; p < 2; p++) {
            for (size_t r = 0; r < 3; r++) {
                kseg_read_options options;
                kseg_read_options_defaults(&options);
                options.type = read_types[r];
                kseg_table table;
                kseg_error error;
                kseg_error_clear(&error);
                cr_assert_eq(kseg_h5_read_table(file, paths[p], &options, &table, &error), 0,
                             "%s %s: %s", c->name, paths[p], error.message);
                kseg_dtype expected = r == 0 ? c->native : r == 1 ? KSEG_FLOAT32 : KSEG_FLOAT64;
                cr_assert_eq(table.matrix.dtype, expected, "%s: dtype", c->name);
                cr_assert_eq(table.matrix.rows, n);
                cr_assert_eq(table.matrix.cols, d);
                cr_assert_eq(table.total_rows, n);
                cr_assert_eq((uintptr_t)table.data % 64, 0, "buffer not 64-byte aligned");
                cr_assert_eq(table.matrix.data, table.data);
                cr_assert_null(table.ids);
                cr_assert_str_eq(table.column_names[2], "column2");
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < d; j++)
                        cr_assert_eq(table_get(&table, i, j), cell(i, j, c->is_signed),
                                     "%s %s (%zu, %zu)", c->name, paths[p], i, j);
                kseg_table_destroy(&table);
                cr_assert_null(table.data);
                assert_no_open_files();
            }
        }
    }
}

Test(io, every_type_in_a_column_group)
{
    const size_t n = 29;
    const char *file = scratch_path("group.h5");
    hid_t h5 = create_file(file);
    size_t n_types = sizeof type_cases / sizeof type_cases[0];
    double *column = malloc(n * sizeof *column);
    for (size_t t = 0; t < n_types; t++) {
        char path[64];
        snprintf(path, sizeof path, "/customers/%02zu_%s", t, type_cases[t].name);
        for (size_t i = 0; i < n; i++)
            column[i] = cell(i, t, type_cases[t].is_signed);
        hsize_t dims = n;
        write_raw(h5, path, type_cases[t].type(), 1, &dims, column, t % 2 ? 5 : 0, t % 4 == 1);
    }
    /* Ids, a string column and a 2-D dataset are not feature columns. */
    for (size_t i = 0; i < n; i++)
        column[i] = 1000.0 + (double)i;
    hsize_t dims = n;
    write_raw(h5, "/customers/id", H5T_STD_I64LE, 1, &dims, column, 0, 0);
    hid_t string_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(string_type, 8);
    write_raw(h5, "/customers/name", string_type, 1, &dims, NULL, 0, 0);
    H5Tclose(string_type);
    hsize_t dims2[2] = {n, 2};
    write_raw(h5, "/customers/zz_matrix", H5T_IEEE_F64LE, 2, dims2, NULL, 0, 0);
    H5Fclose(h5);
    free(column);

    kseg_table table;
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_h5_read_table(file, "/customers", NULL, &table, &error), 0, "%s",
                 error.message);
    cr_assert_eq(table.matrix.cols, n_types);
    cr_assert_eq(table.matrix.rows, n);
    /* Some columns need float64, so NATIVE reads the whole table as float64. */
    cr_assert_eq(table.matrix.dtype, KSEG_FLOAT64);
    cr_assert_not_null(table.ids);
    for (size_t t = 0; t < n_types; t++) {
        char name[64];
        snprintf(name, sizeof name, "%02zu_%s", t, type_cases[t].name);
        cr_assert_str_eq(table.column_names[t], name);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(table_get(&table, i, t), cell(i, t, type_cases[t].is_signed));
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(table.ids[i], 1000 + (int64_t)i);
    kseg_table_destroy(&table);

    /* A group of small types only reads as float32. */
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    const char *small[] = {"03_uint16be", "00_int8"};
    options.columns = small;
    options.n_columns = 2;
    cr_assert_eq(kseg_h5_read_table(file, "customers/", &options, &table, &error), 0, "%s",
                 error.message);
    cr_assert_eq(table.matrix.dtype, KSEG_FLOAT32);
    cr_assert_str_eq(table.column_names[0], "03_uint16be");
    cr_assert_str_eq(table.column_names[1], "00_int8");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(table_get(&table, i, 0), cell(i, 3, 0));
        cr_assert_eq(table_get(&table, i, 1), cell(i, 0, 1));
    }
    kseg_table_destroy(&table);
    assert_no_open_files();
}

/* A 2-D [n, 5] float64 table with named columns and ids beside it. */
static const char *const five_names[] = {"recency", "frequency", "monetary", "tenure", "age"};

static const char *write_named_table(const char *name, size_t n, int fixed_names, hsize_t chunk)
{
    const char *file = scratch_path(name);
    hid_t h5 = create_file(file);
    double *values = matrix_values(n, 5, 1);
    hsize_t dims[2] = {n, 5};
    write_raw(h5, "/customers/features", H5T_IEEE_F64LE, 2, dims, values, chunk, chunk ? 1 : 0);
    write_columns(h5, "/customers/features", five_names, 5, fixed_names);
    for (size_t i = 0; i < n; i++)
        values[i] = 500.0 + (double)i;
    hsize_t id_dims = n;
    write_raw(h5, "/customers/id", H5T_STD_I64LE, 1, &id_dims, values, 0, 0);
    H5Fclose(h5);
    free(values);
    return file;
}

Test(io, column_names_subset_and_reordering)
{
    const size_t n = 41;
    for (int fixed = 0; fixed < 2; fixed++) {
        for (hsize_t chunk = 0; chunk <= 16; chunk += 16) {
            const char *file = write_named_table("named.h5", n, fixed, chunk);
            kseg_error error;
            kseg_error_clear(&error);
            kseg_table table;

            /* All columns, names from the attribute, ids beside the dataset, default path. */
            cr_assert_eq(kseg_h5_read_table(file, NULL, NULL, &table, &error), 0, "%s",
                         error.message);
            for (size_t j = 0; j < 5; j++)
                cr_assert_str_eq(table.column_names[j], five_names[j]);
            cr_assert_not_null(table.ids);
            cr_assert_eq(table.ids[n - 1], 500 + (int64_t)n - 1);
            kseg_table_destroy(&table);

            /* Subsets in file order (one read) and reordered (a read per column). */
            const char *ascending[] = {"frequency", "monetary", "age"};
            const char *reordered[] = {"age", "recency", "monetary"};
            /* Runs of neighbouring columns, reordered, read as float64. */
            const char *runs[] = {"age", "tenure", "recency", "frequency"};
            const char *const *orders[] = {ascending, reordered, runs};
            const size_t ascending_index[] = {1, 2, 4}, reordered_index[] = {4, 0, 2};
            const size_t runs_index[] = {4, 3, 0, 1};
            const size_t *indexes[] = {ascending_index, reordered_index, runs_index};
            const size_t widths[] = {3, 3, 4};
            for (int order = 0; order < 3; order++) {
                kseg_read_options options;
                kseg_read_options_defaults(&options);
                options.columns = orders[order];
                options.n_columns = widths[order];
                options.type = order == 2 ? KSEG_READ_FLOAT64 : KSEG_READ_FLOAT32;
                const size_t *index = indexes[order];
                cr_assert_eq(kseg_h5_read_table(file, "/customers/features", &options, &table,
                                                &error),
                             0, "%s", error.message);
                cr_assert_eq(table.matrix.cols, widths[order]);
                cr_assert_eq(table.matrix.dtype, order == 2 ? KSEG_FLOAT64 : KSEG_FLOAT32);
                for (size_t p = 0; p < widths[order]; p++) {
                    cr_assert_str_eq(table.column_names[p], options.columns[p]);
                    for (size_t i = 0; i < n; i++)
                        cr_assert_eq(table_get(&table, i, p), cell(i, index[p], 1),
                                     "order %d fixed %d chunk %d (%zu, %zu)", order, fixed,
                                     (int)chunk, i, p);
                }
                kseg_table_destroy(&table);
            }
            assert_no_open_files();
        }
    }
}

Test(io, row_blocks_for_2d_and_groups)
{
    const size_t n = 53;
    const char *file = write_named_table("rows.h5", n, 0, 8);
    hid_t h5 = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    double *column = malloc(n * sizeof *column);
    for (size_t j = 0; j < 2; j++) {
        for (size_t i = 0; i < n; i++)
            column[i] = cell(i, j, 0);
        hsize_t dims = n;
        write_raw(h5, j ? "/cols/b" : "/cols/a", H5T_STD_I32LE, 1, &dims, column, j ? 7 : 0, 0);
    }
    for (size_t i = 0; i < n; i++)
        column[i] = 9000.0 + (double)i;
    hsize_t dims = n;
    write_raw(h5, "/cols/id", H5T_STD_U32LE, 1, &dims, column, 0, 0);
    H5Fclose(h5);
    free(column);

    const char *paths[] = {"/customers/features", "/cols"};
    const int64_t id_base[] = {500, 9000};
    /* Blocks as an MPI run would split the rows, including a block that ends the file. */
    const size_t offsets[] = {0, 13, 40, 52};
    const size_t counts[] = {13, 27, 0, 1};
    for (size_t p = 0; p < 2; p++) {
        for (size_t b = 0; b < 4; b++) {
            kseg_read_options options;
            kseg_read_options_defaults(&options);
            options.row_offset = offsets[b];
            options.row_count = counts[b];
            kseg_table table;
            kseg_error error;
            kseg_error_clear(&error);
            cr_assert_eq(kseg_h5_read_table(file, paths[p], &options, &table, &error), 0, "%s",
                         error.message);
            size_t expected_rows = counts[b] ? counts[b] : n - offsets[b];
            cr_assert_eq(table.matrix.rows, expected_rows);
            cr_assert_eq(table.total_rows, n);
            cr_assert_not_null(table.ids);
            for (size_t i = 0; i < expected_rows; i++) {
                size_t row = offsets[b] + i;
                cr_assert_eq(table.ids[i], id_base[p] + (int64_t)row);
                cr_assert_eq(table_get(&table, i, 1), cell(row, 1, p == 0));
            }
            kseg_table_destroy(&table);
        }
        kseg_read_options options;
        kseg_read_options_defaults(&options);
        options.row_offset = 50;
        options.row_count = 4;
        expect_read_error(file, paths[p], &options, KSEG_EINVAL, "rows [50, 54)");
        options.row_offset = n;
        options.row_count = 0;
        expect_read_error(file, paths[p], &options, KSEG_EEMPTY, "no rows from row 53");
    }
}

Test(io, default_path_and_candidates)
{
    hsize_t dims[2] = {4, 2};
    double values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kseg_table table;
    kseg_error error;
    kseg_error_clear(&error);

    /* The only 2-D numeric dataset is found wherever it is; 1-D and string data do not count. */
    const char *single = scratch_path("single.h5");
    hid_t h5 = create_file(single);
    write_raw(h5, "/deep/inside/matrix", H5T_IEEE_F32LE, 2, dims, values, 0, 0);
    write_raw(h5, "/other/vector", H5T_IEEE_F32LE, 1, dims, values, 0, 0);
    H5Fclose(h5);
    cr_assert_eq(kseg_h5_read_table(single, "", NULL, &table, &error), 0, "%s", error.message);
    cr_assert_eq(table.matrix.rows, 4);
    cr_assert_eq(table_get(&table, 3, 1), 8.0);
    kseg_table_destroy(&table);

    const char *two = scratch_path("two.h5");
    h5 = create_file(two);
    write_raw(h5, "/a/matrix", H5T_IEEE_F32LE, 2, dims, values, 0, 0);
    write_raw(h5, "/b/matrix", H5T_STD_I16LE, 2, dims, values, 0, 0);
    H5Fclose(h5);
    expect_read_error(two, NULL, NULL, KSEG_EINVAL, "2 2-D numeric datasets");
    expect_read_error(two, NULL, NULL, KSEG_EINVAL, "/a/matrix, /b/matrix");

    /* /customers/features wins over any other candidate. */
    h5 = H5Fopen(two, H5F_ACC_RDWR, H5P_DEFAULT);
    write_raw(h5, "/customers/features", H5T_IEEE_F64LE, 2, dims, values, 0, 0);
    H5Fclose(h5);
    cr_assert_eq(kseg_h5_read_table(two, NULL, NULL, &table, &error), 0, "%s", error.message);
    cr_assert_eq(table.matrix.dtype, KSEG_FLOAT64);
    kseg_table_destroy(&table);

    const char *none = scratch_path("none.h5");
    h5 = create_file(none);
    write_raw(h5, "/v", H5T_IEEE_F32LE, 1, dims, values, 0, 0);
    H5Fclose(h5);
    expect_read_error(none, NULL, NULL, KSEG_ENOENT, "no 2-D numeric dataset");
    assert_no_open_files();
}

/* ---------------------------------------------------------------- errors */

Test(io, missing_and_foreign_files)
{
    const char *missing = scratch_path("missing.h5");
    char expected[600];
    snprintf(expected, sizeof expected, "cannot open %s: no such file", missing);
    expect_read_error(missing, NULL, NULL, KSEG_ENOENT, expected);

    const char *text = scratch_path("text.h5");
    FILE *out = fopen(text, "w");
    fputs("recency,frequency\n1,2\n", out);
    fclose(out);
    expect_read_error(text, NULL, NULL, KSEG_EFORMAT, "not an HDF5 file");
    expect_read_error(text, NULL, NULL, KSEG_EFORMAT, text);

    const char *empty = scratch_path("empty.h5");
    fclose(fopen(empty, "w"));
    expect_read_error(empty, NULL, NULL, KSEG_EFORMAT, "not an HDF5 file");
    expect_read_error(scratch, NULL, NULL, KSEG_EINVAL, "is a directory");
}

Test(io, missing_dataset_and_column)
{
    const char *file = write_named_table("errors.h5", 10, 0, 0);
    expect_read_error(file, "/customers/featurez", NULL, KSEG_ENOENT, "/customers/featurez");
    expect_read_error(file, "/nowhere/at/all", NULL, KSEG_ENOENT, "no dataset or group /nowhere/at/all");
    /* A path through a dataset is missing, not an HDF5 failure. */
    expect_read_error(file, "/customers/features/x", NULL, KSEG_ENOENT, "/customers/features/x");

    kseg_read_options options;
    kseg_read_options_defaults(&options);
    const char *wanted[] = {"recency", "spend"};
    options.columns = wanted;
    options.n_columns = 2;
    expect_read_error(file, NULL, &options, KSEG_ENOENT, "no column \"spend\"");
    expect_read_error(file, NULL, &options, KSEG_ENOENT,
                      "available: recency, frequency, monetary, tenure, age");

    const char *twice[] = {"age", "recency", "age"};
    options.columns = twice;
    options.n_columns = 3;
    expect_read_error(file, NULL, &options, KSEG_EINVAL, "column \"age\" requested twice");

    /* Column groups: the same checks by dataset name. */
    options.columns = wanted;
    options.n_columns = 2;
    hid_t h5 = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims = 10;
    write_raw(h5, "/cols/recency", H5T_IEEE_F32LE, 1, &dims, NULL, 0, 0);
    write_raw(h5, "/cols/age", H5T_IEEE_F32LE, 1, &dims, NULL, 0, 0);
    H5Fclose(h5);
    expect_read_error(file, "/cols", &options, KSEG_ENOENT, "no column \"spend\" (available: age, recency)");
    options.columns = twice;
    options.n_columns = 3;
    expect_read_error(file, "/cols", &options, KSEG_EINVAL, "requested twice");
}

Test(io, shapes_types_and_empty_data)
{
    const char *file = scratch_path("bad.h5");
    hid_t h5 = create_file(file);
    hsize_t dims3[3] = {2, 3, 4};
    write_raw(h5, "/cube", H5T_IEEE_F32LE, 3, dims3, NULL, 0, 0);
    hsize_t rows0[2] = {0, 4}, cols0[2] = {5, 0};
    write_raw(h5, "/no_rows", H5T_IEEE_F32LE, 2, rows0, NULL, 0, 0);
    write_raw(h5, "/no_cols", H5T_IEEE_F32LE, 2, cols0, NULL, 0, 0);
    hsize_t dims2[2] = {3, 2};
    hid_t string_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(string_type, H5T_VARIABLE);
    write_raw(h5, "/strings", string_type, 2, dims2, NULL, 0, 0);
    H5Tclose(string_type);
    hid_t compound = H5Tcreate(H5T_COMPOUND, 16);
    H5Tinsert(compound, "x", 0, H5T_NATIVE_DOUBLE);
    H5Tinsert(compound, "y", 8, H5T_NATIVE_DOUBLE);
    write_raw(h5, "/records", compound, 2, dims2, NULL, 0, 0);
    H5Tclose(compound);
    hsize_t ten = 10, nine = 9;
    write_raw(h5, "/uneven/alpha", H5T_IEEE_F32LE, 1, &ten, NULL, 0, 0);
    write_raw(h5, "/uneven/beta", H5T_IEEE_F32LE, 1, &nine, NULL, 0, 0);
    write_raw(h5, "/wide_col/a", H5T_IEEE_F32LE, 1, &ten, NULL, 0, 0);
    hsize_t wide[2] = {10, 2};
    write_raw(h5, "/wide_col/b", H5T_IEEE_F32LE, 2, wide, NULL, 0, 0);
    H5Gclose(H5Gcreate2(h5, "/empty_group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t zero = 0;
    write_raw(h5, "/zero_rows/a", H5T_IEEE_F32LE, 1, &zero, NULL, 0, 0);
    write_raw(h5, "/matrix", H5T_IEEE_F32LE, 2, dims2, NULL, 0, 0);
    const char *three_names[] = {"a", "b", "c"};
    write_columns(h5, "/matrix", three_names, 3, 0);
    hsize_t four = 4;
    write_raw(h5, "/with_ids/features", H5T_IEEE_F32LE, 2, dims2, NULL, 0, 0);
    write_raw(h5, "/with_ids/id", H5T_STD_I64LE, 1, &four, NULL, 0, 0);
    write_raw(h5, "/float_ids/features", H5T_IEEE_F32LE, 2, dims2, NULL, 0, 0);
    write_raw(h5, "/float_ids/id", H5T_IEEE_F64LE, 1, &nine, NULL, 0, 0);
    H5Fclose(h5);

    expect_read_error(file, "/cube", NULL, KSEG_ESHAPE, "rank 3 [2, 3, 4]");
    expect_read_error(file, "/no_rows", NULL, KSEG_EEMPTY, "empty [0, 4]");
    expect_read_error(file, "/no_cols", NULL, KSEG_EEMPTY, "empty [5, 0]");
    expect_read_error(file, "/strings", NULL, KSEG_ETYPE, "data type is string");
    expect_read_error(file, "/records", NULL, KSEG_ETYPE, "data type is compound");
    expect_read_error(file, "/uneven", NULL, KSEG_ESHAPE,
                      "column \"beta\" has 9 rows but column \"alpha\" has 10");
    /* In a group a 2-D dataset is not a column: skipped when listing, refused when named. */
    kseg_table table;
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_h5_read_table(file, "/wide_col", NULL, &table, &error), 0, "%s",
                 error.message);
    cr_assert_eq(table.matrix.cols, 1);
    kseg_table_destroy(&table);
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    const char *both[] = {"a", "b"};
    options.columns = both;
    options.n_columns = 2;
    expect_read_error(file, "/wide_col", &options, KSEG_ESHAPE, "column \"b\" has rank 2");
    expect_read_error(file, "/empty_group", NULL, KSEG_EEMPTY, "no 1-D numeric datasets");
    expect_read_error(file, "/zero_rows", NULL, KSEG_EEMPTY, "no rows");
    expect_read_error(file, "/matrix", NULL, KSEG_EFORMAT,
                      "attribute \"columns\" has 3 names but the dataset has 2 columns");
    expect_read_error(file, "/with_ids/features", NULL, KSEG_ESHAPE,
                      "/with_ids/id: 4 ids but /with_ids/features has 3 rows");
    expect_read_error(file, "/float_ids/features", NULL, KSEG_ETYPE, "ids are float64");
    options.columns = NULL;
    options.n_columns = 0;
    const char *none[] = {"a"};
    options.columns = none;
    expect_read_error(file, "/matrix", &options, KSEG_EINVAL, "empty column list");
}

Test(io, nonfinite_values_are_located)
{
    const size_t n = 30;
    const char *file = scratch_path("nan.h5");
    hid_t h5 = create_file(file);
    double *values = matrix_values(n, 5, 1);
    values[17 * 5 + 2] = NAN;
    values[21 * 5 + 0] = -INFINITY;
    hsize_t dims[2] = {n, 5};
    write_raw(h5, "/customers/features", H5T_IEEE_F64LE, 2, dims, values, 0, 0);
    write_columns(h5, "/customers/features", five_names, 5, 0);
    double column[30];
    for (size_t i = 0; i < n; i++)
        column[i] = (double)i;
    column[25] = INFINITY;
    hsize_t length = n;
    write_raw(h5, "/columns/score", H5T_IEEE_F32LE, 1, &length, column, 4, 0);
    H5Fclose(h5);
    free(values);

    char expected[700];
    snprintf(expected, sizeof expected,
             "%s:/customers/features: row 17, column \"monetary\": value is NaN (expected a finite "
             "number)",
             file);
    kseg_table table;
    kseg_error error;
    kseg_error_clear(&error);
    cr_assert_eq(kseg_h5_read_table(file, NULL, NULL, &table, &error), KSEG_ENONFINITE);
    cr_assert_str_eq(error.message, expected);

    /* Row numbers are global: a block starting at row 20 reports row 21. */
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    options.row_offset = 20;
    expect_read_error(file, NULL, &options, KSEG_ENONFINITE,
                      "row 21, column \"recency\": value is -Inf");
    /* As float32, with reordered columns, the column name follows the selection. */
    const char *selected[] = {"age", "monetary"};
    options.row_offset = 0;
    options.columns = selected;
    options.n_columns = 2;
    options.type = KSEG_READ_FLOAT32;
    expect_read_error(file, NULL, &options, KSEG_ENONFINITE, "row 17, column \"monetary\"");
    expect_read_error(file, "/columns", NULL, KSEG_ENONFINITE,
                      ":/columns: row 25, column \"score\": value is +Inf");

    /* check_finite = 0 hands the values through. */
    kseg_read_options_defaults(&options);
    options.check_finite = 0;
    cr_assert_eq(kseg_h5_read_table(file, NULL, &options, &table, &error), 0, "%s", error.message);
    cr_assert(isnan(table_get(&table, 17, 2)));
    kseg_table_destroy(&table);
    assert_no_open_files();
}

/* ---------------------------------------------------------------- vectors, attributes, listing */

Test(io, vectors_and_string_attributes)
{
    const char *file = write_named_table("vector.h5", 12, 1, 0);
    hid_t h5 = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    double weights[12];
    for (int i = 0; i < 12; i++)
        weights[i] = 0.5 * i;
    hsize_t dims = 12;
    write_raw(h5, "/weights", H5T_STD_I64LE, 1, &dims, NULL, 0, 0);
    write_raw(h5, "/halves", H5T_IEEE_F32LE, 1, &dims, weights, 0, 0);
    /* A fixed-length, space-padded scalar string and a variable-length UTF-8 one. */
    hid_t root = H5Gopen2(h5, "/", H5P_DEFAULT);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t fixed = H5Tcopy(H5T_C_S1);
    H5Tset_size(fixed, 10);
    H5Tset_strpad(fixed, H5T_STR_SPACEPAD);
    hid_t attribute = H5Acreate2(root, "unit", fixed, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attribute, fixed, "days      ");
    H5Aclose(attribute);
    hid_t variable = H5Tcopy(H5T_C_S1);
    H5Tset_size(variable, H5T_VARIABLE);
    H5Tset_cset(variable, H5T_CSET_UTF8);
    const char *note = "Kundensegmente \xc3\xa4";
    attribute = H5Acreate2(root, "note", variable, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attribute, variable, &note);
    H5Aclose(attribute);
    attribute = H5Acreate2(root, "count", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    int count = 3;
    H5Awrite(attribute, H5T_NATIVE_INT, &count);
    H5Aclose(attribute);
    H5Tclose(variable);
    H5Tclose(fixed);
    H5Sclose(scalar);
    H5Gclose(root);
    H5Fclose(h5);

    kseg_error error;
    kseg_error_clear(&error);
    double *values = NULL;
    size_t length = 0;
    cr_assert_eq(kseg_h5_read_vector(file, "/halves", 12, &values, &length, &error), 0, "%s",
                 error.message);
    cr_assert_eq(length, 12);
    cr_assert_eq(values[11], 5.5);
    free(values);
    cr_assert_eq(kseg_h5_read_vector(file, "/customers/id", 0, &values, &length, &error), 0);
    cr_assert_eq(values[3], 503.0);
    free(values);
    cr_assert_eq(kseg_h5_read_vector(file, "/halves", 13, &values, &length, &error), KSEG_ESHAPE);
    cr_assert_not_null(strstr(error.message, "12 values (expected 13)"), "%s", error.message);
    cr_assert_null(values);
    cr_assert_eq(kseg_h5_read_vector(file, "/customers/features", 0, &values, &length, &error),
                 KSEG_ESHAPE);
    cr_assert_eq(kseg_h5_read_vector(file, "/customers", 0, &values, &length, &error), KSEG_ETYPE);
    cr_assert_eq(kseg_h5_read_vector(file, "/nope", 0, &values, &length, &error), KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "/nope"));

    char *text = NULL;
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/", "unit", &text, &error), 0, "%s",
                 error.message);
    cr_assert_str_eq(text, "days");
    free(text);
    cr_assert_eq(kseg_h5_read_attribute_string(file, NULL, "note", &text, &error), 0, "%s",
                 error.message);
    cr_assert_str_eq(text, note);
    free(text);
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/", "missing", &text, &error), KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "no attribute \"missing\""));
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/", "count", &text, &error), KSEG_ETYPE);
    cr_assert_not_null(strstr(error.message, "int32"), "%s", error.message);
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/customers/features", "columns", &text,
                                               &error),
                 KSEG_ESHAPE);
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/absent", "x", &text, &error), KSEG_ENOENT);
    cr_assert_null(text);
    assert_no_open_files();
}

Test(io, describe_lists_everything_sorted)
{
    const char *file = write_named_table("describe.h5", 1000, 0, 64);
    kseg_error error;
    kseg_error_clear(&error);
    char *listing = NULL;
    cr_assert_eq(kseg_h5_describe(file, &listing, &error), 0, "%s", error.message);
    const char *features = strstr(listing, "/customers/features");
    const char *group = strstr(listing, "/customers ");
    const char *ids = strstr(listing, "/customers/id");
    cr_assert(group && features && ids, "%s", listing);
    cr_assert(group < features && features < ids, "not sorted:\n%s", listing);
    cr_assert_not_null(strstr(features, "dataset"), "%s", listing);
    cr_assert_not_null(strstr(features, "float64"));
    cr_assert_not_null(strstr(features, "[1000, 5]"));
    cr_assert_not_null(strstr(features, "chunked [64, 5] gzip 1"));
    cr_assert_not_null(strstr(features, "columns: recency, frequency, monetary, tenure, age"));
    cr_assert_not_null(strstr(group, "group"));
    cr_assert_not_null(strstr(ids, "int64"));
    cr_assert_eq(strncmp(listing, "/ ", 2), 0, "%s", listing);
    free(listing);

    cr_assert_eq(kseg_h5_describe(scratch_path("absent.h5"), &listing, &error), KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "no such file"));
    cr_assert_null(listing);
    assert_no_open_files();
}

Test(io, hard_link_cycles_and_shared_groups_are_walked_once, .timeout = 30)
{
    /* fuzz_h5_input: two hard links back to the root made the walk of kseg inspect and of the
       default dataset search exponential in its depth limit (2^32 paths). A group is now
       entered once, whatever links reach it; a diamond of shared groups 20 levels deep too. */
    const char *path = scratch_path("cycles.h5");
    hid_t file = create_file(path);
    const hsize_t dims[2] = {3, 2};
    const double values[6] = {1, 2, 3, 4, 5, 6};
    write_raw(file, "/x", H5T_IEEE_F64LE, 2, dims, values, 0, 0);
    cr_assert_geq(H5Lcreate_hard(file, "/", file, "/a", H5P_DEFAULT, H5P_DEFAULT), 0);
    cr_assert_geq(H5Lcreate_hard(file, "/", file, "/b", H5P_DEFAULT, H5P_DEFAULT), 0);
    char name[64];
    for (int level = 0; level < 20; level++) {
        snprintf(name, sizeof name, "/d%02d", level);
        hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert_geq(group, 0);
        H5Gclose(group);
        if (level > 0) {
            char parent[64], link[80];
            snprintf(parent, sizeof parent, "/d%02d", level - 1);
            for (int side = 0; side < 2; side++) {
                snprintf(link, sizeof link, "%s/%c", parent, side ? 'r' : 'l');
                cr_assert_geq(H5Lcreate_hard(file, name, file, link, H5P_DEFAULT, H5P_DEFAULT),
                              0);
            }
        }
    }
    H5Fclose(file);

    kseg_error error;
    kseg_error_clear(&error);
    char *listing = NULL;
    cr_assert_eq(kseg_h5_describe(path, &listing, &error), 0, "%s", error.message);
    /* The root's links once each, /a and /b not entered again; each diamond group entered once
       (under its first path), so the listing stays small. */
    cr_assert_not_null(strstr(listing, "/a "), "%s", listing);
    cr_assert_null(strstr(listing, "/a/x"), "%s", listing);
    cr_assert_not_null(strstr(listing, "/d00/l/l/l"), "%s", listing);
    size_t lines = 0;
    for (const char *c = listing; *c; c++)
        lines += *c == '\n';
    cr_assert_lt(lines, 200, "%zu lines", lines);
    free(listing);

    /* The default dataset is the only 2-D one, found once. */
    kseg_table table;
    cr_assert_eq(kseg_h5_read_table(path, NULL, NULL, &table, &error), 0, "%s", error.message);
    cr_assert_eq(table.matrix.rows, 3);
    kseg_table_destroy(&table);
    assert_no_open_files();
}

Test(io, locations_and_file_identity)
{
    kseg_error error;
    kseg_error_clear(&error);
    char *file = NULL, *path = NULL;
    cr_assert_eq(kseg_split_location("data.h5:/customers/features", &file, &path, &error), 0);
    cr_assert_str_eq(file, "data.h5");
    cr_assert_str_eq(path, "/customers/features");
    free(file);
    free(path);
    cr_assert_eq(kseg_split_location("data.h5", &file, &path, &error), 0);
    cr_assert_str_eq(file, "data.h5");
    cr_assert_null(path);
    free(file);
    /* ':' in file names: the split is on the last ":/". */
    cr_assert_eq(kseg_split_location("run:2024-01-01.h5:/g", &file, &path, &error), 0);
    cr_assert_str_eq(file, "run:2024-01-01.h5");
    cr_assert_str_eq(path, "/g");
    free(file);
    free(path);
    cr_assert_eq(kseg_split_location("dir:/x.h5:/g/d", &file, &path, &error), 0);
    cr_assert_str_eq(file, "dir:/x.h5");
    cr_assert_str_eq(path, "/g/d");
    free(file);
    free(path);
    cr_assert_eq(kseg_split_location("a:b.h5", &file, &path, &error), 0);
    cr_assert_str_eq(file, "a:b.h5");
    cr_assert_null(path);
    free(file);
    cr_assert_eq(kseg_split_location("", &file, &path, &error), KSEG_EINVAL);
    cr_assert_eq(kseg_split_location(":/x", &file, &path, &error), KSEG_EINVAL);
    cr_assert_null(file);
    cr_assert_null(path);

    const char *a = write_named_table("same.h5", 4, 0, 0);
    const char *link = scratch_path("link.h5");
    cr_assert_eq(symlink(a, link), 0);
    char relative[600];
    snprintf(relative, sizeof relative, "%s/./same.h5", scratch);
    cr_assert(kseg_same_file(a, a));
    cr_assert(kseg_same_file(a, link));
    cr_assert(kseg_same_file(a, relative));
    const char *b = write_named_table("other.h5", 4, 0, 0);
    cr_assert_not(kseg_same_file(a, b));
    cr_assert_not(kseg_same_file(a, scratch_path("absent.h5")));
    cr_assert_not(kseg_same_file(scratch_path("absent.h5"), scratch_path("absent.h5")));
}

/* ---------------------------------------------------------------- the writer */

/* Names in the scratch directory other than the given ones: temporary files left behind. */
static size_t stray_files(const char *keep_a, const char *keep_b)
{
    DIR *directory = opendir(scratch);
    cr_assert_not_null(directory);
    size_t stray = 0;
    struct dirent *entry;
    while ((entry = readdir(directory))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if ((keep_a && strcmp(entry->d_name, keep_a) == 0) ||
            (keep_b && strcmp(entry->d_name, keep_b) == 0))
            continue;
        stray++;
    }
    closedir(directory);
    return stray;
}

static char *read_whole_file(const char *path, size_t *size)
{
    FILE *in = fopen(path, "rb");
    cr_assert_not_null(in, "%s", path);
    fseek(in, 0, SEEK_END);
    long length = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *data = malloc((size_t)length + 1);
    cr_assert_eq(fread(data, 1, (size_t)length, in), (size_t)length);
    fclose(in);
    *size = (size_t)length;
    return data;
}

Test(io, writer_round_trip_all_store_types)
{
    const char *file = scratch_path("out.h5");
    kseg_error error;
    kseg_error_clear(&error);
    kseg_h5_writer *writer = NULL;
    cr_assert_eq(kseg_h5_writer_open(&writer, file, &error), 0, "%s", error.message);
    const size_t n = 100, d = 3;
    float f32[300];
    double f64[300];
    int32_t i32[100];
    int64_t i64[100];
    for (size_t i = 0; i < n * d; i++) {
        f32[i] = (float)i * 0.25f;
        f64[i] = (double)i * 1e-3;
    }
    for (size_t i = 0; i < n; i++) {
        i32[i] = (int32_t)i - 50;
        i64[i] = (int64_t)i * 10000000000ll;
    }
    const size_t dims2[2] = {n, d}, dims1[1] = {n};
    cr_assert_eq(kseg_h5_write_dataset(writer, "/a/b/c/f32", KSEG_STORE_FLOAT32, 2, dims2, f32, 16,
                                       5, &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/a/f64", KSEG_STORE_FLOAT64, 2, dims2, f64, 0, 0,
                                       &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/ints/i32", KSEG_STORE_INT32, 1, dims1, i32, 7, 0,
                                       &error),
                 0);
    /* gzip without chunk rows picks a chunk size itself. */
    cr_assert_eq(kseg_h5_write_dataset(writer, "/ints/i64", KSEG_STORE_INT64, 1, dims1, i64, 0, 9,
                                       &error),
                 0, "%s", error.message);
    /* Streaming: create empty, then write blocks of rows out of order. */
    cr_assert_eq(kseg_h5_write_dataset(writer, "/stream", KSEG_STORE_FLOAT32, 2, dims2, NULL, 32,
                                       1, &error),
                 0);
    cr_assert_eq(kseg_h5_write_rows(writer, "/stream", 60, 40, f32 + 60 * d, &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_h5_write_rows(writer, "/stream", 0, 60, f32, &error), 0);
    cr_assert_eq(kseg_h5_write_rows(writer, "/stream", 90, 11, f32, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "outside the dataset's 100 rows"), "%s",
                       error.message);
    cr_assert_eq(kseg_h5_write_rows(writer, "/absent", 0, 1, f32, &error), KSEG_ENOENT);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/a/f64", KSEG_STORE_FLOAT64, 2, dims2, f64, 0, 0,
                                       &error),
                 KSEG_EEXIST);
    cr_assert_not_null(strstr(error.message, "/a/f64: already written"), "%s", error.message);
    const size_t empty_dims[2] = {0, 4};
    cr_assert_eq(kseg_h5_write_dataset(writer, "/empty", KSEG_STORE_FLOAT64, 2, empty_dims, NULL,
                                       16, 3, &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/bad", KSEG_STORE_FLOAT64, 3, dims2, NULL, 0, 0,
                                       &error),
                 KSEG_EINVAL);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/bad", KSEG_STORE_FLOAT64, 2, dims2, NULL, 0, 10,
                                       &error),
                 KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "gzip level 10"));

    const char *names[] = {"x", "y", "z\xc3\xa9"};
    const char *labels[] = {"champions", "loyal", "", "at risk"};
    cr_assert_eq(kseg_h5_write_attribute_strings(writer, "/a/b/c/f32", "columns", names, 3,
                                                 &error),
                 0, "%s", error.message);
    cr_assert_eq(kseg_h5_write_attribute_string(writer, "/a", "note", "hello", &error), 0);
    cr_assert_eq(kseg_h5_write_attribute_string(writer, "/a", "note", "replaced", &error), 0);
    cr_assert_eq(kseg_h5_write_attribute_double(writer, "/", "inertia", 12.5, &error), 0);
    cr_assert_eq(kseg_h5_write_attribute_int64(writer, "/ints/i64", "seed", -42, &error), 0);
    cr_assert_eq(kseg_h5_write_attribute_int64(writer, "/absent", "seed", 1, &error), KSEG_ENOENT);
    cr_assert_eq(kseg_h5_write_strings(writer, "/names/segments", labels, 4, &error), 0, "%s",
                 error.message);
    /* Nothing under the final name until commit. */
    cr_assert_neq(access(file, F_OK), 0);
    cr_assert_eq(kseg_h5_writer_commit(writer, &error), 0, "%s", error.message);
    cr_assert_eq(stray_files("out.h5", NULL), 0, "temporary file left behind");
    assert_no_open_files();

    /* Everything reads back through kseg's reader ... */
    kseg_table table;
    cr_assert_eq(kseg_h5_read_table(file, "/a/b/c/f32", NULL, &table, &error), 0, "%s",
                 error.message);
    cr_assert_eq(table.matrix.dtype, KSEG_FLOAT32);
    cr_assert_str_eq(table.column_names[2], "z\xc3\xa9");
    cr_assert_eq(memcmp(table.data, f32, sizeof f32), 0);
    kseg_table_destroy(&table);
    cr_assert_eq(kseg_h5_read_table(file, "/a/f64", NULL, &table, &error), 0);
    cr_assert_eq(memcmp(table.data, f64, sizeof f64), 0);
    kseg_table_destroy(&table);
    cr_assert_eq(kseg_h5_read_table(file, "/stream", NULL, &table, &error), 0);
    cr_assert_eq(memcmp(table.data, f32, sizeof f32), 0);
    kseg_table_destroy(&table);
    cr_assert_eq(kseg_h5_read_table(file, "/ints", NULL, &table, &error), 0);
    cr_assert_str_eq(table.column_names[0], "i32");
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(table_get(&table, i, 0), (double)i32[i]);
        cr_assert_eq(table_get(&table, i, 1), (double)i64[i]);
    }
    kseg_table_destroy(&table);
    char *text = NULL;
    cr_assert_eq(kseg_h5_read_attribute_string(file, "/a", "note", &text, &error), 0);
    cr_assert_str_eq(text, "replaced");
    free(text);

    /* ... and has the types and layout h5py users expect. */
    hid_t h5 = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dataset = H5Dopen2(h5, "/ints/i64", H5P_DEFAULT);
    hid_t type = H5Dget_type(dataset);
    cr_assert(H5Tequal(type, H5T_STD_I64LE) > 0);
    H5Tclose(type);
    hid_t plist = H5Dget_create_plist(dataset);
    cr_assert_eq(H5Pget_layout(plist), H5D_CHUNKED);
    H5Pclose(plist);
    int64_t seed = 0;
    hid_t attribute = H5Aopen(dataset, "seed", H5P_DEFAULT);
    H5Aread(attribute, H5T_NATIVE_INT64, &seed);
    H5Aclose(attribute);
    cr_assert_eq(seed, -42);
    H5Dclose(dataset);
    double inertia = 0;
    attribute = H5Aopen_by_name(h5, "/", "inertia", H5P_DEFAULT, H5P_DEFAULT);
    H5Aread(attribute, H5T_NATIVE_DOUBLE, &inertia);
    H5Aclose(attribute);
    cr_assert_eq(inertia, 12.5);
    dataset = H5Dopen2(h5, "/a/f64", H5P_DEFAULT);
    plist = H5Dget_create_plist(dataset);
    cr_assert_eq(H5Pget_layout(plist), H5D_CONTIGUOUS);
    H5Pclose(plist);
    H5Dclose(dataset);
    dataset = H5Dopen2(h5, "/names/segments", H5P_DEFAULT);
    type = H5Dget_type(dataset);
    cr_assert(H5Tis_variable_str(type) > 0);
    cr_assert_eq(H5Tget_cset(type), H5T_CSET_UTF8);
    char *read_labels[4] = {NULL};
    hid_t memory_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(memory_type, H5T_VARIABLE);
    H5Tset_cset(memory_type, H5T_CSET_UTF8);
    cr_assert_geq(H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, read_labels), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(read_labels[i], labels[i]);
    hid_t space = H5Dget_space(dataset);
    H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, read_labels);
    H5Sclose(space);
    H5Tclose(memory_type);
    H5Tclose(type);
    H5Dclose(dataset);
    H5Fclose(h5);
    assert_no_open_files();
}

Test(io, writer_abort_and_atomic_commit)
{
    /* An existing file at the final path ... */
    const char *file = write_named_table("result.h5", 8, 0, 0);
    size_t old_size;
    char *old_bytes = read_whole_file(file, &old_size);
    struct stat before;
    cr_assert_eq(stat(file, &before), 0);

    /* ... survives an aborted writer byte for byte, and no temporary file stays behind. */
    kseg_error error;
    kseg_error_clear(&error);
    kseg_h5_writer *writer = NULL;
    cr_assert_eq(kseg_h5_writer_open(&writer, file, &error), 0, "%s", error.message);
    cr_assert_eq(stray_files("result.h5", NULL), 1, "expected exactly one temporary file");
    const size_t dims[1] = {3};
    const double values[3] = {1, 2, 3};
    cr_assert_eq(kseg_h5_write_dataset(writer, "/v", KSEG_STORE_FLOAT64, 1, dims, values, 0, 0,
                                       &error),
                 0);
    kseg_h5_writer_abort(writer);
    kseg_h5_writer_abort(NULL);
    size_t size;
    char *bytes = read_whole_file(file, &size);
    cr_assert_eq(size, old_size);
    cr_assert_eq(memcmp(bytes, old_bytes, size), 0);
    free(bytes);
    cr_assert_eq(stray_files("result.h5", NULL), 0, "temporary file left after abort");

    /* While a writer is open the old file is untouched; commit replaces it by rename. */
    cr_assert_eq(kseg_h5_writer_open(&writer, file, &error), 0);
    cr_assert_eq(kseg_h5_write_dataset(writer, "/v", KSEG_STORE_FLOAT64, 1, dims, values, 0, 0,
                                       &error),
                 0);
    bytes = read_whole_file(file, &size);
    cr_assert_eq(size, old_size);
    cr_assert_eq(memcmp(bytes, old_bytes, size), 0);
    free(bytes);
    cr_assert_eq(kseg_h5_writer_commit(writer, &error), 0, "%s", error.message);
    struct stat after;
    cr_assert_eq(stat(file, &after), 0);
    cr_assert_neq(after.st_ino, before.st_ino, "commit must rename a new file over the old one");
    cr_assert_eq(stray_files("result.h5", NULL), 0);
    double *read = NULL;
    size_t length = 0;
    cr_assert_eq(kseg_h5_read_vector(file, "/v", 3, &read, &length, &error), 0, "%s",
                 error.message);
    cr_assert_eq(read[2], 3.0);
    free(read);
    expect_read_error(file, "/customers/features", NULL, KSEG_ENOENT, "/customers/features");
    free(old_bytes);
    assert_no_open_files();
}

Test(io, writer_refuses_bad_destinations)
{
    kseg_error error;
    kseg_error_clear(&error);
    kseg_h5_writer *writer = (kseg_h5_writer *)1;
    const char *missing_dir = scratch_path("no/such/dir/out.h5");
    cr_assert_eq(kseg_h5_writer_open(&writer, missing_dir, &error), KSEG_ENOENT);
    cr_assert_null(writer);
    cr_assert_not_null(strstr(error.message, "does not exist"), "%s", error.message);
    cr_assert_not_null(strstr(error.message, "no/such/dir"), "%s", error.message);

    cr_assert_eq(kseg_h5_writer_open(&writer, scratch, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "is a directory"));
    cr_assert_eq(kseg_h5_writer_open(&writer, "", &error), KSEG_EINVAL);

    const char *plain = scratch_path("plain.txt");
    fclose(fopen(plain, "w"));
    cr_assert_eq(kseg_h5_writer_open(&writer, scratch_path("plain.txt/out.h5"), &error),
                 KSEG_ENOENT);
    cr_assert_not_null(strstr(error.message, "not a directory"), "%s", error.message);

    /* Root may write anywhere, so the permission check only means something for other users. */
    if (geteuid() != 0) {
        const char *locked = scratch_path("locked");
        cr_assert_eq(mkdir(locked, 0500), 0);
        char target[600];
        snprintf(target, sizeof target, "%s/out.h5", locked);
        cr_assert_eq(kseg_h5_writer_open(&writer, target, &error), KSEG_EIO);
        cr_assert_not_null(strstr(error.message, "is not writable"), "%s", error.message);
        cr_assert_not_null(strstr(error.message, locked), "%s", error.message);
        chmod(locked, 0700);
    }
    /* A file name without a directory is written in the current directory. */
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(scratch), 0);
    cr_assert_eq(kseg_h5_writer_open(&writer, "here.h5", &error), 0, "%s", error.message);
    cr_assert_eq(kseg_h5_writer_commit(writer, &error), 0, "%s", error.message);
    cr_assert_eq(access("here.h5", F_OK), 0);
    cr_assert_eq(chdir(cwd), 0);
    assert_no_open_files();
}

/* The raw stored bytes of chunk `index` (of chunk_rows rows) of a dataset: what the filters
   produced. Returns the size; *bytes_out is malloc'ed. */
static size_t stored_chunk(hid_t file, const char *path, size_t index, size_t chunk_rows,
                           unsigned char **bytes_out)
{
    hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    cr_assert_geq(dataset, 0, "%s", path);
    hsize_t offset[2] = {(hsize_t)(index * chunk_rows), 0}, size = 0;
    cr_assert_geq(H5Dget_chunk_storage_size(dataset, offset, &size), 0, "%s chunk %zu", path,
                  index);
    unsigned char *bytes = malloc(size ? size : 1);
    uint32_t filters = 0;
    cr_assert_geq(H5Dread_chunk(dataset, H5P_DEFAULT, offset, &filters, bytes), 0);
    cr_assert_eq(filters, 0u, "%s chunk %zu: every filter applied", path, index);
    H5Dclose(dataset);
    *bytes_out = bytes;
    return (size_t)size;
}

Test(io, parallel_chunk_compression_stores_what_hdf5_filters_store)
{
    /* Compressed datasets of several chunks are shuffled and deflated on OpenMP threads and
       stored with H5Dwrite_chunk. With one thread HDF5's own filter pipeline does it: the two
       files must hold the same data and the very same compressed chunk bytes, the padded edge
       chunk included, for every store type, both ranks, and two gzip levels. */
    const size_t n = 10007, d = 3, chunk_rows = 1000; /* 11 chunks, the last one partial */
    float *f32 = malloc(n * d * sizeof *f32);
    double *f64 = malloc(n * sizeof *f64);
    int32_t *i32 = malloc(n * d * sizeof *i32);
    int64_t *i64 = malloc(n * sizeof *i64);
    for (size_t i = 0; i < n * d; i++) {
        f32[i] = (float)sin((double)i) * 1000.0f;
        i32[i] = (int32_t)(i % 97) - 40;
    }
    for (size_t i = 0; i < n; i++) {
        f64[i] = exp((double)(i % 300) / 17.0) - 5.0;
        i64[i] = (int64_t)(i * i) - 123456789ll;
    }
    const size_t dims1[1] = {n}, dims2[2] = {n, d};
    const struct {
        const char *path;
        kseg_store_type type;
        int rank;
        const void *data;
        hid_t memory_type;
        size_t bytes;
    } sets[] = {{"/f32", KSEG_STORE_FLOAT32, 2, f32, H5T_NATIVE_FLOAT, n * d * sizeof *f32},
                {"/f64", KSEG_STORE_FLOAT64, 1, f64, H5T_NATIVE_DOUBLE, n * sizeof *f64},
                {"/i32", KSEG_STORE_INT32, 2, i32, H5T_NATIVE_INT32, n * d * sizeof *i32},
                {"/i64", KSEG_STORE_INT64, 1, i64, H5T_NATIVE_INT64, n * sizeof *i64}};
    const size_t n_sets = sizeof sets / sizeof sets[0];
    const int levels[] = {1, 6};
    char *files[2];
    int previous_threads = omp_get_max_threads();
    for (int parallel = 0; parallel < 2; parallel++) {
        files[parallel] = strdup(scratch_path(parallel ? "parallel.h5" : "serial.h5"));
        omp_set_num_threads(parallel ? 3 : 1);
        kseg_error error;
        kseg_error_clear(&error);
        kseg_h5_writer *writer = NULL;
        cr_assert_eq(kseg_h5_writer_open(&writer, files[parallel], &error), 0, "%s",
                     error.message);
        for (size_t l = 0; l < 2; l++)
            for (size_t k = 0; k < n_sets; k++) {
                char path[64];
                snprintf(path, sizeof path, "/gzip%d%s", levels[l], sets[k].path);
                cr_assert_eq(kseg_h5_write_dataset(writer, path, sets[k].type, sets[k].rank,
                                                   sets[k].rank == 1 ? dims1 : dims2,
                                                   sets[k].data, chunk_rows, levels[l], &error),
                             0, "%s", error.message);
            }
        cr_assert_eq(kseg_h5_writer_commit(writer, &error), 0, "%s", error.message);
    }
    omp_set_num_threads(previous_threads);

    hid_t serial = H5Fopen(files[0], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t parallel = H5Fopen(files[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(serial >= 0 && parallel >= 0);
    for (size_t l = 0; l < 2; l++)
        for (size_t k = 0; k < n_sets; k++) {
            char path[64];
            snprintf(path, sizeof path, "/gzip%d%s", levels[l], sets[k].path);
            for (size_t c = 0; c < (n + chunk_rows - 1) / chunk_rows; c++) {
                unsigned char *expected, *got;
                size_t expected_size = stored_chunk(serial, path, c, chunk_rows, &expected);
                size_t got_size = stored_chunk(parallel, path, c, chunk_rows, &got);
                cr_assert_eq(got_size, expected_size, "%s chunk %zu: %zu stored bytes, HDF5's "
                             "filters stored %zu", path, c, got_size, expected_size);
                cr_assert_arr_eq(got, expected, expected_size, "%s chunk %zu differs", path, c);
                free(expected);
                free(got);
            }
            void *back = malloc(sets[k].bytes);
            hid_t dataset = H5Dopen2(parallel, path, H5P_DEFAULT);
            cr_assert_geq(H5Dread(dataset, sets[k].memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                  back),
                          0);
            H5Dclose(dataset);
            cr_assert_arr_eq(back, sets[k].data, sets[k].bytes, "%s reads back", path);
            free(back);
        }
    H5Fclose(serial);
    H5Fclose(parallel);
    free(files[0]);
    free(files[1]);
    free(f32);
    free(f64);
    free(i32);
    free(i64);
}
