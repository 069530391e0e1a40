/* Checkpoint files: kseg_kmeans_checkpoint to HDF5 through the atomic writer (a crash or a
 * second signal leaves the previous file or none, never half of one), and back with every item
 * checked, so that a truncated or foreign file is refused naming what is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "h5_internal.h"
#include "kseg/checkpoint.h"
#include "kseg/io.h"
#include "kseg/version.h"

#define GROUP "/checkpoint"
#define FORMAT_NAME "kseg k-means checkpoint"
/* Columns of the iteration tables, in kseg_iteration_stats order. */
#define STATS_COLUMNS 8

/* The integer scalars, as attributes of GROUP: name and field offset (all int32 or int64
 * fields; seed and the digest are stored as their int64 bit patterns). */
typedef struct integer_item {
    const char *name;
    size_t offset;
    int wide; /* 1: int64_t or uint64_t field, 0: int32_t */
} integer_item;

#define ITEM32(field) {#field, offsetof(kseg_kmeans_checkpoint, field), 0}
#define ITEM64(field) {#field, offsetof(kseg_kmeans_checkpoint, field), 1}
static const integer_item integer_items[] = {
    ITEM64(n_rows),       ITEM64(n_features),     ITEM32(dtype),
    ITEM32(weighted),     ITEM64(n_clusters),     ITEM32(init),
    ITEM32(n_init),       ITEM32(max_iter),       ITEM64(seed),
    ITEM32(algorithm_requested), ITEM32(local_trials), ITEM32(init_rounds),
    ITEM64(batch_size),   ITEM32(max_no_improvement), ITEM64(init_centers_digest),
    ITEM32(run),          ITEM32(initialized),    ITEM32(n_iter),
    ITEM64(total_empty_repairs), ITEM32(best_run), ITEM32(best_n_iter),
    ITEM32(best_convergence)};

typedef struct real_item {
    const char *name;
    size_t offset;
} real_item;

#define REAL(field) {#field, offsetof(kseg_kmeans_checkpoint, field)}
static const real_item real_items[] = {REAL(weight_sum), REAL(mean_variance), REAL(tol),
                                       REAL(oversampling), REAL(best_inertia)};

static int64_t get_integer(const kseg_kmeans_checkpoint *checkpoint, const integer_item *item)
{
    const unsigned char *base = (const unsigned char *)checkpoint + item->offset;
    if (item->wide) {
        int64_t value;
        memcpy(&value, base, sizeof value);
        return value;
    }
    int32_t value;
    memcpy(&value, base, sizeof value);
    return value;
}

static void set_integer(kseg_kmeans_checkpoint *checkpoint, const integer_item *item,
                        int64_t value)
{
    unsigned char *base = (unsigned char *)checkpoint + item->offset;
    if (item->wide) {
        memcpy(base, &value, sizeof value);
    } else {
        int32_t narrow = (int32_t)value;
        memcpy(base, &narrow, sizeof narrow);
    }
}

static void stats_to_table(const kseg_iteration_stats *stats, size_t count, double *table)
{
    for (size_t i = 0; i < count; i++) {
        const kseg_iteration_stats *s = &stats[i];
        double *row = table + i * STATS_COLUMNS;
        /* The counts are below 2^53 and exact in a double. */
        row[0] = s->iteration;
        row[1] = s->objective;
        row[2] = s->center_shift;
        row[3] = (double)s->changed_labels;
        row[4] = (double)s->empty_repairs;
        row[5] = s->seconds;
        row[6] = (double)s->distances_computed;
        row[7] = (double)s->distances_skipped;
    }
}

static void table_to_stats(const double *table, size_t count, kseg_iteration_stats *stats)
{
    for (size_t i = 0; i < count; i++) {
        const double *row = table + i * STATS_COLUMNS;
        kseg_iteration_stats *s = &stats[i];
        s->iteration = (int32_t)row[0];
        s->objective = row[1];
        s->center_shift = row[2];
        s->changed_labels = (int64_t)row[3];
        s->empty_repairs = (int64_t)row[4];
        s->seconds = row[5];
        s->distances_computed = (int64_t)row[6];
        s->distances_skipped = (int64_t)row[7];
    }
}

static int write_stats(kseg_h5_writer *writer, const char *path,
                       const kseg_iteration_stats *stats, int32_t count, kseg_error *error)
{
    if (count <= 0)
        return 0;
    double *table = malloc((size_t)count * STATS_COLUMNS * sizeof *table);
    if (!table)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory writing a checkpoint");
    stats_to_table(stats, (size_t)count, table);
    size_t dims[2] = {(size_t)count, STATS_COLUMNS};
    int status = kseg_h5_write_dataset(writer, path, KSEG_STORE_FLOAT64, 2, dims, table, 0, 0,
                                       error);
    free(table);
    return status;
}

int kseg_checkpoint_write(const char *path, const kseg_kmeans_checkpoint *checkpoint,
                          const char *input, const char *options, kseg_error *error)
{
    if (!path || !checkpoint)
        return kseg_error_set(error, KSEG_EINVAL, "no checkpoint file or checkpoint given");
    kseg_h5_writer *writer = NULL;
    int status = kseg_h5_writer_open(&writer, path, error);
    if (status)
        return status;
    size_t k = (size_t)checkpoint->n_clusters, d = (size_t)checkpoint->n_features;
    size_t center_dims[2] = {k, d}, mean_dims[1] = {d};
    if ((status = kseg_h5_write_dataset(writer, GROUP "/feature_mean", KSEG_STORE_FLOAT64, 1,
                                        mean_dims, checkpoint->feature_mean, 0, 0, error)) ||
        (status = kseg_h5_write_dataset(writer, GROUP "/centers", KSEG_STORE_FLOAT64, 2,
                                        center_dims, checkpoint->centers, 0, 0, error)) ||
        (status = kseg_h5_write_dataset(writer, GROUP "/previous_centers", KSEG_STORE_FLOAT64,
                                        2, center_dims, checkpoint->previous_centers, 0, 0,
                                        error)) ||
        (status = kseg_h5_write_dataset(writer, GROUP "/best_centers", KSEG_STORE_FLOAT64, 2,
                                        center_dims, checkpoint->best_centers, 0, 0, error)) ||
        (status = write_stats(writer, GROUP "/iterations", checkpoint->iterations,
                              checkpoint->initialized ? checkpoint->n_iter : 0, error)) ||
        (status = write_stats(writer, GROUP "/best_iterations", checkpoint->best_iterations,
                              checkpoint->best_run >= 0 ? checkpoint->best_n_iter : 0, error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "format", FORMAT_NAME, error)) ||
        (status = kseg_h5_write_attribute_int64(writer, GROUP, "format_version",
                                                KSEG_CHECKPOINT_FORMAT_VERSION, error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "kseg_version",
                                                 kseg_version_string(), error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "algorithm",
                                                 checkpoint->algorithm, error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "kernel", checkpoint->kernel,
                                                 error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "input", input ? input : "",
                                                 error)) ||
        (status = kseg_h5_write_attribute_string(writer, GROUP, "options",
                                                 options ? options : "", error)))
        goto failed;
    for (size_t i = 0; i < sizeof integer_items / sizeof *integer_items; i++)
        if ((status = kseg_h5_write_attribute_int64(
                 writer, GROUP, integer_items[i].name,
                 get_integer(checkpoint, &integer_items[i]), error)))
            goto failed;
    for (size_t i = 0; i < sizeof real_items / sizeof *real_items; i++) {
        double value;
        memcpy(&value, (const unsigned char *)checkpoint + real_items[i].offset, sizeof value);
        if ((status = kseg_h5_write_attribute_double(writer, GROUP, real_items[i].name, value,
                                                     error)))
            goto failed;
    }
    return kseg_h5_writer_commit(writer, error);
failed:
    kseg_h5_writer_abort(writer);
    return status;
}

/* ------------------------------------------------------------------ reading */

static int missing(const char *file, const char *what, kseg_error *error)
{
    return kseg_error_set(error, KSEG_EFORMAT,
                          "%s: not a complete kseg checkpoint: %s is missing or unreadable", file,
                          what);
}

static int read_attribute(hid_t group, const char *file, const char *name, hid_t type,
                          void *value, kseg_error *error)
{
    char what[96];
    snprintf(what, sizeof what, "attribute %s of " GROUP, name);
    if (H5Aexists(group, name) <= 0)
        return missing(file, what, error);
    hid_t attribute = H5Aopen(group, name, H5P_DEFAULT);
    hid_t space = attribute >= 0 ? H5Aget_space(attribute) : H5I_INVALID_HID;
    int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == 1 &&
             H5Aread(attribute, type, value) >= 0;
    if (space >= 0)
        H5Sclose(space);
    if (attribute >= 0)
        H5Aclose(attribute);
    return ok ? 0 : missing(file, what, error);
}

static int read_text(hid_t group, const char *file, const char *name, char **value,
                     kseg_error *error)
{
    char what[96], **values = NULL;
    size_t count = 0;
    snprintf(what, sizeof what, "attribute %s of " GROUP, name);
    if (H5Aexists(group, name) <= 0)
        return missing(file, what, error);
    int status = kseg_io_h5_read_string_attribute(group, name, file, &values, &count, error);
    if (status)
        return status;
    if (count != 1) {
        kseg_io_free_strings(values, count);
        return missing(file, what, error);
    }
    *value = values[0];
    values[0] = NULL;
    kseg_io_free_strings(values, count);
    return 0;
}

/* Reads dataset name of GROUP, which must hold exactly count float64-convertible values. */
static int read_doubles(hid_t file_id, const char *file, const char *name, size_t count,
                        double *values, kseg_error *error)
{
    char path[96], what[128];
    snprintf(path, sizeof path, GROUP "/%s", name);
    snprintf(what, sizeof what, "dataset %s with %zu values", path, count);
    if (!kseg_io_h5_path_exists(file_id, path))
        return missing(file, what, error);
    hid_t dataset = H5Dopen2(file_id, path, H5P_DEFAULT);
    hid_t space = dataset >= 0 ? H5Dget_space(dataset) : H5I_INVALID_HID;
    int ok = space >= 0 && H5Sget_simple_extent_npoints(space) == (hssize_t)count &&
             H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0;
    if (space >= 0)
        H5Sclose(space);
    if (dataset >= 0)
        H5Dclose(dataset);
    return ok ? 0 : missing(file, what, error);
}

static int read_stats(hid_t file_id, const char *file, const char *name, int32_t count,
                      kseg_iteration_stats *stats, kseg_error *error)
{
    if (count <= 0)
        return 0;
    double *table = malloc((size_t)count * STATS_COLUMNS * sizeof *table);
    if (!table)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory reading %s", file);
    int status = read_doubles(file_id, file, name, (size_t)count * STATS_COLUMNS, table, error);
    if (!status)
        table_to_stats(table, (size_t)count, stats);
    free(table);
    return status;
}

int kseg_checkpoint_read(const char *path, kseg_kmeans_checkpoint **out, char **input,
                         char **options, kseg_error *error)
{
    *out = NULL;
    if (input)
        *input = NULL;
    if (options)
        *options = NULL;
    hid_t file_id = H5I_INVALID_HID, group = H5I_INVALID_HID;
    kseg_kmeans_checkpoint header, *checkpoint = NULL;
    char *format = NULL, *text = NULL;
    memset(&header, 0, sizeof header);
    int status = kseg_io_h5_open_read(path, &file_id, error);
    if (status)
        return status;
    if (!kseg_io_h5_path_exists(file_id, GROUP) ||
        (group = H5Gopen2(file_id, GROUP, H5P_DEFAULT)) < 0) {
        status = kseg_error_set(error, KSEG_EFORMAT,
                                "%s: not a kseg checkpoint (no group " GROUP ")", path);
        goto done;
    }
    int64_t version = 0;
    if ((status = read_text(group, path, "format", &format, error)))
        goto done;
    if (strcmp(format, FORMAT_NAME) != 0) {
        status = kseg_error_set(error, KSEG_EFORMAT, "%s: not a kseg checkpoint (format '%s')",
                                path, format);
        goto done;
    }
    if ((status = read_attribute(group, path, "format_version", H5T_NATIVE_INT64, &version,
                                 error)))
        goto done;
    if (version != KSEG_CHECKPOINT_FORMAT_VERSION) {
        status = kseg_error_set(error, KSEG_EFORMAT,
                                "%s: checkpoint format version %lld; this kseg reads version %d",
                                path, (long long)version, KSEG_CHECKPOINT_FORMAT_VERSION);
        goto done;
    }
    for (size_t i = 0; i < sizeof integer_items / sizeof *integer_items; i++) {
        int64_t value;
        if ((status = read_attribute(group, path, integer_items[i].name, H5T_NATIVE_INT64,
                                     &value, error)))
            goto done;
        set_integer(&header, &integer_items[i], value);
    }
    for (size_t i = 0; i < sizeof real_items / sizeof *real_items; i++)
        if ((status = read_attribute(group, path, real_items[i].name, H5T_NATIVE_DOUBLE,
                                     (unsigned char *)&header + real_items[i].offset, error)))
            goto done;
    /* Sizes come from the file: bound them before allocating (the engine checks the rest). */
    if (header.n_clusters < 1 || header.n_features < 1 || header.n_features > (1u << 30) ||
        header.n_clusters > INT32_MAX ||
        (uint64_t)header.n_clusters > (SIZE_MAX / sizeof(double)) / header.n_features ||
        header.max_iter < 1 || header.n_iter < 0 || header.n_iter > header.max_iter ||
        header.best_n_iter < 0 || header.best_n_iter > header.max_iter) {
        status = kseg_error_set(error, KSEG_EFORMAT,
                                "%s: the checkpoint's sizes are invalid (k = %lld, d = %llu, "
                                "n_iter = %d, max_iter = %d)", path,
                                (long long)header.n_clusters,
                                (unsigned long long)header.n_features, header.n_iter,
                                header.max_iter);
        goto done;
    }
    size_t k = (size_t)header.n_clusters, d = (size_t)header.n_features;
    int32_t n_iter = header.initialized ? header.n_iter : 0;
    int32_t best_n_iter = header.best_run >= 0 ? header.best_n_iter : 0;
    checkpoint = kseg_kmeans_checkpoint_alloc(k, d, (size_t)n_iter, (size_t)best_n_iter);
    if (!checkpoint) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    /* Keep the arrays the allocation made; take every scalar from the header. */
    header.feature_mean = checkpoint->feature_mean;
    header.centers = checkpoint->centers;
    header.previous_centers = checkpoint->previous_centers;
    header.best_centers = checkpoint->best_centers;
    header.iterations = checkpoint->iterations;
    header.best_iterations = checkpoint->best_iterations;
    *checkpoint = header;
    if ((status = read_text(group, path, "algorithm", &text, error)))
        goto done;
    snprintf(checkpoint->algorithm, sizeof checkpoint->algorithm, "%s", text);
    free(text);
    text = NULL;
    if ((status = read_text(group, path, "kernel", &text, error)))
        goto done;
    snprintf(checkpoint->kernel, sizeof checkpoint->kernel, "%s", text);
    free(text);
    text = NULL;
    if ((status = read_doubles(file_id, path, "feature_mean", d, checkpoint->feature_mean,
                               error)) ||
        (status = read_doubles(file_id, path, "centers", k * d, checkpoint->centers, error)) ||
        (status = read_doubles(file_id, path, "previous_centers", k * d,
                               checkpoint->previous_centers, error)) ||
        (status = read_doubles(file_id, path, "best_centers", k * d, checkpoint->best_centers,
                               error)) ||
        (status = read_stats(file_id, path, "iterations", n_iter, checkpoint->iterations,
                             error)) ||
        (status = read_stats(file_id, path, "best_iterations", best_n_iter,
                             checkpoint->best_iterations, error)))
        goto done;
    if (input && (status = read_text(group, path, "input", input, error)))
        goto done;
    if (options && (status = read_text(group, path, "options", options, error)))
        goto done;
done:
    free(format);
    free(text);
    if (group >= 0)
        H5Gclose(group);
    if (file_id >= 0)
        H5Fclose(file_id);
    if (status) {
        kseg_kmeans_checkpoint_free(checkpoint);
        if (input) {
            free(*input);
            *input = NULL;
        }
        if (options) {
            free(*options);
            *options = NULL;
        }
        return status;
    }
    *out = checkpoint;
    return 0;
}
