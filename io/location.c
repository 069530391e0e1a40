/* Locations on the command line ("FILE.h5:/group/dataset") and file identity: splitting a
 * location into file and object path, and telling whether two paths name the same file (so that
 * a command can refuse to overwrite its own input). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kseg/io.h"

#include "h5_internal.h"

int kseg_split_location(const char *location, char **file, char **path, kseg_error *error)
{
    char *file_part = NULL;
    char *path_part = NULL;
    if (!location || !file || !path)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_split_location: NULL argument");
    *file = NULL;
    *path = NULL;
    if (!*location)
        return kseg_error_set(error, KSEG_EINVAL, "empty location (expected FILE.h5 or FILE.h5:/path)");

    /* Split on the last ":/" so that file names containing ':' (timestamps, Windows-style drive
       letters in copied names) keep working; object paths never contain ":/" in practice. */
    const char *split = NULL;
    for (const char *c = strstr(location, ":/"); c; c = strstr(c + 1, ":/"))
        split = c;

    size_t file_length = split ? (size_t)(split - location) : strlen(location);
    if (file_length == 0)
        return kseg_error_set(error, KSEG_EINVAL,
                              "location \"%s\" names no file (expected FILE.h5:/path)", location);
    file_part = malloc(file_length + 1);
    if (!file_part)
        goto out_of_memory;
    memcpy(file_part, location, file_length);
    file_part[file_length] = '\0';
    if (split) {
        path_part = kseg_io_strdup(split + 1);
        if (!path_part)
            goto out_of_memory;
    }
    *file = file_part;
    *path = path_part;
    return 0;

out_of_memory:
    free(file_part);
    free(path_part);
    return kseg_error_set(error, KSEG_ENOMEM, "out of memory splitting location \"%s\"", location);
}

int kseg_same_file(const char *path_a, const char *path_b)
{
    struct stat a, b;
    if (!path_a || !path_b || stat(path_a, &a) != 0 || stat(path_b, &b) != 0)
        return 0;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}
