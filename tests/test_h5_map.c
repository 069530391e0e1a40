/* kseg_h5_map_table: which inputs are mapped straight from the file and which are staged (and
 * why), and that either way the rows, column names and ids are bitwise those kseg_h5_read_table
 * returns, for whole files and row sub-ranges, with nothing left in the scratch directory.
 * Fixtures are written with the raw HDF5 API. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "kseg/io.h"
#include "scratch_dir.h"

KSEG_SCRATCH_SUITE(h5_map);

#define ROWS 5000
#define COLS 5

/* How a fixture stores /customers/features. */
typedef struct fixture {
    hid_t file_type;  /* e.g. H5T_IEEE_F64LE */
    int chunked;      /* chunks of 700 rows */
    int gzip;         /* with deflate (needs chunked) */
} fixture;

/* Writes ROWS x COLS values (row i, column j: a pattern with fractions float32 cannot hold
   exactly) with columns c0..c4 and ids beside them. */
static const char *write_fixture(const char *name, fixture how)
{
    const char *path = scratch_path(name);
    double *values = malloc(ROWS * COLS * sizeof *values);
    int64_t *ids = malloc(ROWS * sizeof *ids);
    cr_assert(values && ids);
    for (size_t i = 0; i < ROWS; i++) {
        ids[i] = (int64_t)(i * 3 + 11);
        for (size_t j = 0; j < COLS; j++)
            values[i * COLS + j] = (double)((i * 37 + j * 11) % 1000) / 7.0 - 60.0;
    }
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t group = H5Gcreate2(file, "/customers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {ROWS, COLS}, chunk[2] = {700, COLS}, id_dims[1] = {ROWS};
    hid_t space = H5Screate_simple(2, dims, NULL), plist = H5Pcreate(H5P_DATASET_CREATE);
    if (how.chunked)
        H5Pset_chunk(plist, 2, chunk);
    if (how.gzip)
        H5Pset_deflate(plist, 4);
    hid_t dataset = H5Dcreate2(group, "features", how.file_type, space, H5P_DEFAULT, plist,
                               H5P_DEFAULT);
    cr_assert(dataset >= 0);
    cr_assert(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    const char *names[COLS] = {"c0", "c1", "c2", "c3", "c4"};
    hid_t string = H5Tcopy(H5T_C_S1);
    H5Tset_size(string, H5T_VARIABLE);
    hsize_t n_names = COLS;
    hid_t names_space = H5Screate_simple(1, &n_names, NULL);
    hid_t attribute = H5Acreate2(dataset, "columns", string, names_space, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(H5Awrite(attribute, string, names) >= 0);
    hid_t id_space = H5Screate_simple(1, id_dims, NULL);
    hid_t id_set = H5Dcreate2(group, "id", H5T_STD_I64LE, id_space, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
    cr_assert(H5Dwrite(id_set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    H5Dclose(id_set);
    H5Sclose(id_space);
    H5Aclose(attribute);
    H5Sclose(names_space);
    H5Tclose(string);
    H5Dclose(dataset);
    H5Pclose(plist);
    H5Sclose(space);
    H5Gclose(group);
    H5Fclose(file);
    free(values);
    free(ids);
    return path;
}

/* Entries of directory other than . and .. */
static int count_entries(const char *directory)
{
    DIR *dir = opendir(directory);
    cr_assert_not_null(dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        count += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
    closedir(dir);
    return count;
}

/* Maps file with options and checks the mode, the reason and that everything equals
   kseg_h5_read_table's result bitwise; the staging directory must stay empty. */
static void check_equal(const char *file, const kseg_read_options *options,
                        kseg_rows_mode expected, const char *reason)
{
    const char *stage = scratch_path("stage");
    mkdir(stage, 0700);
    kseg_table read, mapped;
    kseg_map_info info;
    kseg_error error;
    kseg_table_init(&read);
    cr_assert_eq(kseg_h5_read_table(file, NULL, options, &read, &error), 0, "%s", error.message);
    /* 3000 bytes a read: several staged reads, the last one partial. */
    cr_assert_eq(kseg_h5_map_table(file, NULL, options, stage, 3000, &mapped, &info, &error), 0,
                 "%s", error.message);
    cr_assert_eq(info.mode, expected, "mode %d (%s)", (int)info.mode, info.reason);
    cr_assert(strstr(info.reason, reason), "reason '%s', expected '%s'", info.reason, reason);
    cr_assert_null(mapped.data);
    cr_assert_not_null(mapped.mapping);
    cr_assert_eq(mapped.matrix.rows, read.matrix.rows);
    cr_assert_eq(mapped.matrix.cols, read.matrix.cols);
    cr_assert_eq(mapped.matrix.dtype, read.matrix.dtype);
    cr_assert_eq(mapped.total_rows, read.total_rows);
    cr_assert_eq(info.bytes, read.matrix.rows * read.matrix.cols * kseg_dtype_size(read.matrix.dtype));
    cr_assert_eq(memcmp(mapped.matrix.data, read.matrix.data, info.bytes), 0, "rows differ");
    for (size_t j = 0; j < read.matrix.cols; j++)
        cr_assert_str_eq(mapped.column_names[j], read.column_names[j]);
    cr_assert_not_null(read.ids);
    cr_assert_not_null(mapped.ids);
    cr_assert_eq(memcmp(mapped.ids, read.ids, read.matrix.rows * sizeof *read.ids), 0);
    cr_assert_eq(count_entries(stage), 0, "the staged file was left in the scratch directory");
    kseg_table_destroy(&mapped);
    kseg_table_destroy(&read);
}

static kseg_read_options defaults(void)
{
    kseg_read_options options;
    kseg_read_options_defaults(&options);
    return options;
}

Test(h5_map, contiguous_float64_is_mapped)
{
    const char *file = write_fixture("f64.h5", (fixture){H5T_IEEE_F64LE, 0, 0});
    kseg_read_options options = defaults();
    check_equal(file, &options, KSEG_ROWS_MAPPED, "contiguous");
}

Test(h5_map, contiguous_float32_is_mapped)
{
    const char *file = write_fixture("f32.h5", (fixture){H5T_IEEE_F32LE, 0, 0});
    kseg_read_options options = defaults();
    check_equal(file, &options, KSEG_ROWS_MAPPED, "contiguous");
    /* All columns named in file order are still the file's bytes. */
    const char *all[COLS] = {"c0", "c1", "c2", "c3", "c4"};
    options.columns = all;
    options.n_columns = COLS;
    check_equal(file, &options, KSEG_ROWS_MAPPED, "contiguous");
}

Test(h5_map, row_ranges_map_only_their_rows)
{
    /* Copies: scratch_path's buffers rotate, and check_equal takes more of them. */
    char file[1024], gzip[1024];
    snprintf(file, sizeof file, "%s", write_fixture("range.h5", (fixture){H5T_IEEE_F32LE, 0, 0}));
    snprintf(gzip, sizeof gzip, "%s",
             write_fixture("range_gzip.h5", (fixture){H5T_IEEE_F64LE, 1, 1}));
    /* Offsets that are not multiples of a page's rows, and a range to the end. */
    size_t ranges[][2] = {{0, 1}, {1, 999}, {1234, 2000}, {4999, 1}, {4321, 0}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        kseg_read_options options = defaults();
        options.row_offset = ranges[r][0];
        options.row_count = ranges[r][1];
        check_equal(file, &options, KSEG_ROWS_MAPPED, "contiguous");
        check_equal(gzip, &options, KSEG_ROWS_STAGED, "gzip-compressed chunks");
    }
}

Test(h5_map, chunked_gzip_is_staged)
{
    const char *file = write_fixture("gzip.h5", (fixture){H5T_IEEE_F32LE, 1, 1});
    kseg_read_options options = defaults();
    check_equal(file, &options, KSEG_ROWS_STAGED, "gzip-compressed chunks");
    const char *plain = write_fixture("chunked.h5", (fixture){H5T_IEEE_F32LE, 1, 0});
    check_equal(plain, &options, KSEG_ROWS_STAGED, "chunked storage");
}

Test(h5_map, column_subset_is_staged)
{
    const char *file = write_fixture("subset.h5", (fixture){H5T_IEEE_F64LE, 0, 0});
    kseg_read_options options = defaults();
    const char *subset[] = {"c3", "c0", "c4"};
    options.columns = subset;
    options.n_columns = 3;
    check_equal(file, &options, KSEG_ROWS_STAGED, "a column subset or order");
    const char *reordered[COLS] = {"c1", "c0", "c2", "c3", "c4"};
    options.columns = reordered;
    options.n_columns = COLS;
    check_equal(file, &options, KSEG_ROWS_STAGED, "a column subset or order");
}

Test(h5_map, big_endian_integer_and_conversion_are_staged)
{
    kseg_read_options options = defaults();
    check_equal(write_fixture("be.h5", (fixture){H5T_IEEE_F64BE, 0, 0}), &options,
                KSEG_ROWS_STAGED, "big-endian float64");
    check_equal(write_fixture("int.h5", (fixture){H5T_STD_I32LE, 0, 0}), &options,
                KSEG_ROWS_STAGED, "int32 values converted to float64");
    options.type = KSEG_READ_FLOAT32;
    check_equal(write_fixture("narrow.h5", (fixture){H5T_IEEE_F64LE, 0, 0}), &options,
                KSEG_ROWS_STAGED, "float64 values converted to float32");
}

Test(h5_map, shape_matches_the_read)
{
    const char *file = write_fixture("shape.h5", (fixture){H5T_IEEE_F32LE, 1, 1});
    kseg_read_options options = defaults();
    options.row_offset = 100;
    options.row_count = 250;
    kseg_matrix shape;
    int has_ids = 0;
    kseg_error error;
    cr_assert_eq(kseg_h5_table_shape(file, NULL, &options, &shape, &has_ids, &error), 0, "%s",
                 error.message);
    cr_assert_eq(shape.rows, 250);
    cr_assert_eq(shape.cols, COLS);
    cr_assert_eq(shape.dtype, KSEG_FLOAT32);
    cr_assert_null(shape.data);
    cr_assert_eq(has_ids, 1);
    options.row_offset = 4900;
    options.row_count = 200;
    cr_assert_eq(kseg_h5_table_shape(file, NULL, &options, &shape, &has_ids, &error), KSEG_EINVAL);
}

Test(h5_map, staging_needs_a_writable_directory)
{
    const char *file = write_fixture("nodir.h5", (fixture){H5T_IEEE_F32LE, 1, 1});
    kseg_read_options options = defaults();
    kseg_table table;
    kseg_map_info info;
    kseg_error error;
    int status = kseg_h5_map_table(file, NULL, &options, scratch_path("missing"), 0, &table, &info,
                                   &error);
    cr_assert_lt(status, 0);
    cr_assert(strstr(error.message, "missing"), "%s", error.message);
    cr_assert_null(table.mapping);
    cr_assert_null(table.ids);
}
