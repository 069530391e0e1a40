/* `kseg inspect`: lists the groups and datasets of an HDF5 file (type, shape, storage, column
 * names, attributes), so that a user can see what to pass as FILE.h5:/path and --columns. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const char *const inspect_usage =
    "usage: kseg inspect FILE.h5[:/path]\n"
    "\n"
    "List every group and dataset of FILE.h5, sorted by path: kind, element type, shape,\n"
    "storage (contiguous or chunked, compression), the \"columns\" attribute and other\n"
    "attributes. With :/path, list only that object and what lies under it.\n"
    "\n"
    "options:\n"
    "  -h, --help           show this help\n";

/* Non-zero when listing line starts with the object path prefix itself or prefix + "/". */
static int line_is_under(const char *line, size_t line_length, const char *prefix)
{
    size_t length = strlen(prefix);
    if (length == 1) /* "/": everything */
        return 1;
    if (line_length < length || strncmp(line, prefix, length) != 0)
        return 0;
    return line_length == length || line[length] == ' ' || line[length] == '/';
}

int kseg_cmd_inspect(int argc, char **argv)
{
    static const struct option long_options[] = {{"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    const char *command = "inspect";
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        switch (option) {
        case 'h':
            fputs(inspect_usage, stdout);
            return KSEG_EXIT_OK;
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' (run 'kseg inspect --help')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "expected exactly one FILE.h5 (run 'kseg inspect --help')");

    int exit_code = KSEG_EXIT_FAILURE;
    kseg_error error;
    kseg_error_clear(&error);
    char *file = NULL, *path = NULL, *listing = NULL;
    if (kseg_split_location(argv[optind], &file, &path, &error) ||
        kseg_h5_describe(file, &listing, &error)) {
        cli_fail(command, &error);
        goto done;
    }
    /* Trailing slashes would keep a prefix from matching the listed paths. */
    if (path) {
        size_t length = strlen(path);
        while (length > 1 && path[length - 1] == '/')
            path[--length] = '\0';
    }
    size_t printed = 0;
    for (const char *line = listing; *line;) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        if (!path || line_is_under(line, length, path)) {
            fwrite(line, 1, length, stdout);
            fputc('\n', stdout);
            printed++;
        }
        line += length + (end ? 1 : 0);
    }
    if (path && printed == 0) {
        cli_failf(command, KSEG_EXIT_FAILURE, "%s: no group or dataset %s", file, path);
        goto done;
    }
    exit_code = KSEG_EXIT_OK;

done:
    free(listing);
    free(file);
    free(path);
    return exit_code;
}
