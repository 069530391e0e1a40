/* Helpers shared by the HDF5 reader, writer and listing: quiet error handling, opening files
 * with messages that say what is wrong (missing, not HDF5, unreadable), path checks, type names
 * and string attributes in any of the layouts h5py, pandas and the HDF5 tools produce. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5_internal.h"
#include "kseg/io.h"

void kseg_io_h5_silence(void)
{
    /* HDF5 prints its whole error stack to stderr by default; kseg reports one line through
       kseg_error instead, so the automatic printing is switched off for the default stack. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct reason_walk {
    char *buffer;
    size_t size;
    int found;
} reason_walk;

static herr_t reason_walk_cb(unsigned n, const H5E_error2_t *entry, void *data)
{
    (void)n;
    reason_walk *walk = data;
    /* Walking upward, the first entry is the innermost one, which says most precisely what went
       wrong (e.g. "unable to open file: ... errno = 13, error message = 'Permission denied'"). */
    if (!walk->found && entry->desc && entry->desc[0]) {
        /* System-call failures carry a long description (time, file name, descriptor, buffer
           address, ...) around the operating system's own message: keep just that message,
           which is what a user can act on ("File too large", "No space left on device"). */
        const char *system = strstr(entry->desc, "error message = '");
        if (system) {
            system += strlen("error message = '");
            size_t length = strcspn(system, "'");
            snprintf(walk->buffer, walk->size, "%.*s", (int)length, system);
        } else {
            snprintf(walk->buffer, walk->size, "%s", entry->desc);
        }
        walk->found = 1;
    }
    return 0;
}

void kseg_io_skip_exit_cleanup(void)
{
    H5dont_atexit();
}

void kseg_io_h5_reason(char *buffer, size_t size)
{
    if (!buffer || size == 0)
        return;
    reason_walk walk = {buffer, size, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, reason_walk_cb, &walk);
    if (!walk.found)
        snprintf(buffer, size, "unknown HDF5 error");
}

int kseg_io_h5_open_read(const char *file, hid_t *file_id, kseg_error *error)
{
    return kseg_io_h5_open_read_comm(file, NULL, file_id, error);
}

hid_t kseg_io_h5_transfer_list(const kseg_comm *comm)
{
#ifdef KSEG_WITH_MPI
    if (kseg_comm_mpi_handle(comm) != MPI_COMM_NULL) {
        hid_t list = H5Pcreate(H5P_DATASET_XFER);
        if (list < 0)
            return list;
        if (H5Pset_dxpl_mpio(list, H5FD_MPIO_COLLECTIVE) < 0) {
            H5Pclose(list);
            return H5I_INVALID_HID;
        }
        return list;
    }
#else
    (void)comm;
#endif
    return H5P_DEFAULT;
}

/* The file system's view of file, checked before HDF5 opens it: HDF5's own failure for a
   missing or unreadable file is a generic "unable to open file", while stat/access give the
   precise reason. */
static int check_readable(const char *file, kseg_error *error)
{
    struct stat info;
    if (stat(file, &info) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return kseg_error_set(error, KSEG_ENOENT, "cannot open %s: no such file", file);
        return kseg_error_set(error, KSEG_EIO, "cannot open %s: %s", file, strerror(errno));
    }
    if (S_ISDIR(info.st_mode))
        return kseg_error_set(error, KSEG_EINVAL,
                              "cannot open %s: is a directory (expected an HDF5 file)", file);
    if (access(file, R_OK) != 0)
        return kseg_error_set(error, KSEG_EIO, "cannot open %s: %s", file, strerror(errno));
    if (H5Fis_hdf5(file) <= 0)
        return kseg_error_set(error, KSEG_EFORMAT,
                              "cannot open %s: not an HDF5 file (expected HDF5, e.g. written by "
                              "kseg, h5py or pandas)",
                              file);
    return 0;
}

int kseg_io_h5_open_read_comm(const char *file, const kseg_comm *comm, hid_t *file_id,
                              kseg_error *error)
{
    *file_id = H5I_INVALID_HID;
    if (!file || !*file)
        return kseg_error_set(error, KSEG_EINVAL, "no input file given (expected FILE.h5)");
    kseg_io_h5_silence();
    int status = check_readable(file, error);
#ifdef KSEG_WITH_MPI
    /* The MPI-IO open is collective: a rank that cannot see the file (a node without the file
       system mounted) must not leave the others waiting in it, so all agree first. */
    if (kseg_comm_mpi_handle(comm) != MPI_COMM_NULL) {
        int failed = status != 0, any = 1;
        if (MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, kseg_comm_mpi_handle(comm)) !=
                MPI_SUCCESS ||
            any)
            return status ? status
                          : kseg_error_set(error, KSEG_EIO,
                                           "cannot open %s: another rank cannot (its message says "
                                           "why)", file);
    }
#endif
    if (status)
        return status;
    hid_t id;
#ifdef KSEG_WITH_MPI
    MPI_Comm mpi_comm = kseg_comm_mpi_handle(comm);
    if (mpi_comm != MPI_COMM_NULL) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl < 0 || H5Pset_fapl_mpio(fapl, mpi_comm, MPI_INFO_NULL) < 0) {
            if (fapl >= 0)
                H5Pclose(fapl);
            return kseg_error_set(error, KSEG_EIO, "cannot open %s: cannot set up MPI-IO", file);
        }
        id = H5Fopen(file, H5F_ACC_RDONLY, fapl);
        H5Pclose(fapl);
        if (id < 0) {
            char reason[256];
            kseg_io_h5_reason(reason, sizeof reason);
            return kseg_error_set(error, KSEG_EIO,
                                  "cannot open %s with MPI-IO (parallel HDF5): %s (does its file "
                                  "system support MPI-IO?)",
                                  file, reason);
        }
        *file_id = id;
        return 0;
    }
#else
    (void)comm;
#endif
    id = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) {
        char reason[256];
        kseg_io_h5_reason(reason, sizeof reason);
        /* HDF5's reasons are its internals ("truncated file: eof = ..."): say first, in the
           user's words, what is wrong with the file. */
        const char *what = strstr(reason, "truncated") ? "truncated HDF5 file, an incomplete copy?"
                           : strstr(reason, "superblock") || strstr(reason, "signature")
                               ? "corrupt HDF5 file"
                               : NULL;
        if (what)
            return kseg_error_set(error, KSEG_EIO, "cannot open %s: %s (HDF5: %s)", file, what,
                                  reason);
        return kseg_error_set(error, KSEG_EIO, "cannot open %s: %s", file, reason);
    }
    *file_id = id;
    return 0;
}

int kseg_io_h5_path_exists(hid_t file_id, const char *path)
{
    if (!path || path[0] != '/')
        return 0;
    if (path[1] == '\0')
        return 1;
    size_t length = strlen(path);
    char *prefix = malloc(length + 1);
    if (!prefix)
        return -1;
    memcpy(prefix, path, length + 1);
    int result = 1;
    /* Check each prefix "/a", "/a/b", ... in turn: H5Lexists fails (rather than answering 0)
       when an intermediate group is missing or is a dataset. */
    for (size_t i = 1; i <= length && result == 1; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            if (i == length && path[i - 1] == '/')
                break; /* a trailing slash adds no component */
            prefix[i] = '\0';
            htri_t exists = H5Lexists(file_id, prefix, H5P_DEFAULT);
            if (exists <= 0)
                result = 0;
            prefix[i] = path[i];
        }
    }
    free(prefix);
    return result;
}

void kseg_io_h5_type_name(hid_t type_id, char *buffer, size_t size)
{
    H5T_class_t type_class = H5Tget_class(type_id);
    size_t bytes = H5Tget_size(type_id);
    const char *order = H5Tget_order(type_id) == H5T_ORDER_BE ? " big-endian" : "";
    switch (type_class) {
    case H5T_INTEGER:
        snprintf(buffer, size, "%sint%zu%s", H5Tget_sign(type_id) == H5T_SGN_NONE ? "u" : "",
                 bytes * 8, order);
        break;
    case H5T_FLOAT:
        snprintf(buffer, size, "float%zu%s", bytes * 8, order);
        break;
    case H5T_STRING:
        snprintf(buffer, size, "%s", H5Tis_variable_str(type_id) > 0 ? "string" : "fixed string");
        break;
    case H5T_COMPOUND:
        snprintf(buffer, size, "compound");
        break;
    case H5T_ENUM:
        snprintf(buffer, size, "enum");
        break;
    case H5T_ARRAY:
        snprintf(buffer, size, "array");
        break;
    case H5T_VLEN:
        snprintf(buffer, size, "vlen");
        break;
    case H5T_OPAQUE:
        snprintf(buffer, size, "opaque");
        break;
    case H5T_REFERENCE:
        snprintf(buffer, size, "reference");
        break;
    case H5T_BITFIELD:
        snprintf(buffer, size, "bitfield");
        break;
    case H5T_TIME:
        snprintf(buffer, size, "time");
        break;
    default:
        snprintf(buffer, size, "unknown type");
        break;
    }
}

int kseg_io_h5_is_numeric(hid_t type_id)
{
    H5T_class_t type_class = H5Tget_class(type_id);
    return type_class == H5T_INTEGER || type_class == H5T_FLOAT;
}

char *kseg_io_strdup(const char *text)
{
    size_t length = strlen(text);
    char *copy = malloc(length + 1);
    if (copy)
        memcpy(copy, text, length + 1);
    return copy;
}

void kseg_io_free_strings(char **values, size_t count)
{
    if (!values)
        return;
    for (size_t i = 0; i < count; i++)
        free(values[i]);
    free(values);
}

/* A malloc'd copy of at most length bytes of text without trailing NULs and spaces: fixed-length
   strings from numpy ('S' arrays) are NUL-padded, those from Fortran tools space-padded. */
static char *copy_trimmed(const char *text, size_t length)
{
    size_t used = strnlen(text, length);
    while (used > 0 && text[used - 1] == ' ')
        used--;
    char *copy = malloc(used + 1);
    if (copy) {
        memcpy(copy, text, used);
        copy[used] = '\0';
    }
    return copy;
}

int kseg_io_h5_read_string_attribute(hid_t object_id, const char *name, const char *where,
                                     char ***values, size_t *count, kseg_error *error)
{
    int status = 0;
    hid_t attribute = H5I_INVALID_HID, file_type = H5I_INVALID_HID, memory_type = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID;
    char **strings = NULL;
    char **variable = NULL;
    char *fixed = NULL;
    size_t n = 0;
    char reason[256];

    *values = NULL;
    *count = 0;
    htri_t exists = H5Aexists(object_id, name);
    if (exists <= 0) {
        status = kseg_error_set(error, KSEG_ENOENT, "%s: no attribute \"%s\"", where, name);
        goto done;
    }
    attribute = H5Aopen(object_id, name, H5P_DEFAULT);
    if (attribute < 0)
        goto hdf5_failure;
    file_type = H5Aget_type(attribute);
    space = H5Aget_space(attribute);
    if (file_type < 0 || space < 0)
        goto hdf5_failure;
    if (H5Tget_class(file_type) != H5T_STRING) {
        char type_name[64];
        kseg_io_h5_type_name(file_type, type_name, sizeof type_name);
        status = kseg_error_set(error, KSEG_ETYPE,
                                "%s: attribute \"%s\" is %s (expected a string or an array of "
                                "strings)",
                                where, name, type_name);
        goto done;
    }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    if (points < 0)
        goto hdf5_failure;
    n = (size_t)points;
    strings = calloc(n + 1, sizeof *strings);
    if (!strings)
        goto out_of_memory;

    /* The memory type keeps the file's character set: HDF5 does not convert between ASCII and
       UTF-8, and the bytes are the same for the names kseg reads. */
    memory_type = H5Tcopy(H5T_C_S1);
    if (memory_type < 0 || H5Tset_cset(memory_type, H5Tget_cset(file_type)) < 0)
        goto hdf5_failure;
    htri_t is_variable = H5Tis_variable_str(file_type);
    if (is_variable < 0)
        goto hdf5_failure;
    if (is_variable) {
        if (H5Tset_size(memory_type, H5T_VARIABLE) < 0)
            goto hdf5_failure;
        variable = calloc(n + 1, sizeof *variable);
        if (!variable)
            goto out_of_memory;
        if (H5Aread(attribute, memory_type, variable) < 0)
            goto hdf5_failure;
        for (size_t i = 0; i < n; i++) {
            strings[i] = kseg_io_strdup(variable[i] ? variable[i] : "");
            if (!strings[i]) {
                H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, variable);
                goto out_of_memory;
            }
        }
        H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, variable);
    } else {
        size_t size = H5Tget_size(file_type);
        if (size == 0)
            goto hdf5_failure;
        if (H5Tset_size(memory_type, size) < 0 || H5Tset_strpad(memory_type, H5T_STR_NULLPAD) < 0)
            goto hdf5_failure;
        fixed = malloc(n * size + 1);
        if (!fixed)
            goto out_of_memory;
        if (H5Aread(attribute, memory_type, fixed) < 0)
            goto hdf5_failure;
        for (size_t i = 0; i < n; i++) {
            strings[i] = copy_trimmed(fixed + i * size, size);
            if (!strings[i])
                goto out_of_memory;
        }
    }
    *values = strings;
    *count = n;
    strings = NULL;
    goto done;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory reading attribute \"%s\"", where,
                            name);
    goto done;
hdf5_failure:
    kseg_io_h5_reason(reason, sizeof reason);
    status = kseg_error_set(error, KSEG_EIO, "%s: cannot read attribute \"%s\": %s", where, name,
                            reason);
done:
    kseg_io_free_strings(strings, n);
    free(variable);
    free(fixed);
    if (memory_type >= 0)
        H5Tclose(memory_type);
    if (space >= 0)
        H5Sclose(space);
    if (file_type >= 0)
        H5Tclose(file_type);
    if (attribute >= 0)
        H5Aclose(attribute);
    return status;
}

int kseg_io_h5_read_strings(hid_t dataset, const char *where, char ***values_out,
                            size_t *count_out, kseg_error *error)
{
    int status = 0;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID, memory_type = H5I_INVALID_HID;
    char **values = NULL, **variable = NULL;
    char *fixed = NULL;
    size_t n = 0;
    char reason[256];
    *values_out = NULL;
    *count_out = 0;

    type = H5Dget_type(dataset);
    space = H5Dget_space(dataset);
    if (type < 0 || space < 0)
        goto hdf5_failure;
    if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_ndims(space) != 1) {
        char type_name[64];
        kseg_io_h5_type_name(type, type_name, sizeof type_name);
        status = kseg_error_set(error, KSEG_ETYPE,
                                "%s: is %s with %d dimensions (expected a 1-D dataset of strings)",
                                where, type_name, H5Sget_simple_extent_ndims(space));
        goto done;
    }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    if (points < 0)
        goto hdf5_failure;
    n = (size_t)points;
    values = calloc(n + 1, sizeof *values);
    if (!values)
        goto out_of_memory;
    /* The memory type keeps the file's character set: HDF5 does not convert between ASCII and
       UTF-8. */
    memory_type = H5Tcopy(H5T_C_S1);
    if (memory_type < 0 || H5Tset_cset(memory_type, H5Tget_cset(type)) < 0)
        goto hdf5_failure;
    htri_t is_variable = H5Tis_variable_str(type);
    if (is_variable < 0)
        goto hdf5_failure;
    if (n == 0)
        goto finish;
    if (is_variable) {
        variable = calloc(n, sizeof *variable);
        if (!variable)
            goto out_of_memory;
        if (H5Tset_size(memory_type, H5T_VARIABLE) < 0 ||
            H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, variable) < 0)
            goto hdf5_failure;
        int failed = 0;
        for (size_t i = 0; i < n; i++)
            if (!(values[i] = kseg_io_strdup(variable[i] ? variable[i] : "")))
                failed = 1;
        H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, variable);
        if (failed)
            goto out_of_memory;
    } else {
        size_t size = H5Tget_size(type);
        fixed = malloc(n * size + 1);
        if (!fixed)
            goto out_of_memory;
        if (H5Tset_size(memory_type, size) < 0 ||
            H5Tset_strpad(memory_type, H5T_STR_NULLPAD) < 0 ||
            H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed) < 0)
            goto hdf5_failure;
        for (size_t i = 0; i < n; i++) {
            size_t length = strnlen(fixed + i * size, size);
            if (!(values[i] = malloc(length + 1)))
                goto out_of_memory;
            memcpy(values[i], fixed + i * size, length);
            values[i][length] = '\0';
        }
    }
finish:
    *values_out = values;
    *count_out = n;
    values = NULL;
    goto done;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory for %zu strings", where, n);
    goto done;
hdf5_failure:
    kseg_io_h5_reason(reason, sizeof reason);
    status = kseg_error_set(error, KSEG_EIO, "%s: cannot read the strings: %s", where, reason);
done:
    kseg_io_free_strings(values, n);
    free(variable);
    free(fixed);
    if (memory_type >= 0)
        H5Tclose(memory_type);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return status;
}
