/* Helpers shared by the subcommands: error lines, strict number parsing, list splitting,
 * text files, free-space checks, crash-safe text outputs and the signal handlers that remove
 * temporary files. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"

/* Set while 'kseg run' runs another command as one of its steps (see cli_set_step). */
static const char *step_parent, *step_section;

void cli_set_step(const char *parent, const char *section)
{
    step_parent = parent;
    step_section = section;
}

/* Prints one error or warning line: "kseg COMMAND: [rank R: ][warning: ]<message>", inside a
 * step "kseg PARENT: ... (config section 'SECTION')". The line is composed first and written
 * with one call, so that the lines of several ranks sharing a terminal do not interleave. */
static void print_line(const char *command, const char *kind, const char *format,
                       va_list arguments)
{
    char line[8192];
    int length = snprintf(line, sizeof line, "kseg %s: ", step_parent ? step_parent : command);
    /* In a distributed run, error lines say which rank they come from. */
    if (cli_size() > 1 && length >= 0 && (size_t)length < sizeof line)
        length += snprintf(line + length, sizeof line - (size_t)length, "rank %d: ", cli_rank());
    if (length >= 0 && (size_t)length < sizeof line)
        length += snprintf(line + length, sizeof line - (size_t)length, "%s", kind);
    if (length >= 0 && (size_t)length < sizeof line)
        length += vsnprintf(line + length, sizeof line - (size_t)length, format, arguments);
    if (step_parent && length >= 0 && (size_t)length < sizeof line)
        snprintf(line + length, sizeof line - (size_t)length, " (config section '%s')",
                 step_section);
    fprintf(stderr, "%s\n", line);
}

static void print_text(const char *command, const char *kind, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void print_text(const char *command, const char *kind, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    print_line(command, kind, format, arguments);
    va_end(arguments);
}

int cli_fail(const char *command, const kseg_error *error)
{
    print_text(command, "", "%s", error->message[0] ? error->message : kseg_strerror(error->code));
    return KSEG_EXIT_FAILURE;
}

int cli_failf(const char *command, int exit_code, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    print_line(command, "", format, arguments);
    va_end(arguments);
    return exit_code;
}

void cli_warnf(const char *command, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    print_line(command, "warning: ", format, arguments);
    va_end(arguments);
}

int cli_parse_int64(const char *command, const char *option, const char *text, int64_t min,
                    int64_t max, int64_t *value)
{
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || parsed < min || parsed > max) {
        cli_failf(command, KSEG_EXIT_USAGE, "%s: expected an integer in [%lld, %lld], got '%s'",
                  option, (long long)min, (long long)max, text);
        return -1;
    }
    *value = parsed;
    return 0;
}

int cli_parse_uint64(const char *command, const char *option, const char *text, uint64_t *value)
{
    char *end;
    errno = 0;
    /* strtoull skips blanks and accepts a sign (wrapping "-1" to 2^64 - 1): demand a digit. */
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno || !isdigit((unsigned char)text[0]) || *end != '\0') {
        cli_failf(command, KSEG_EXIT_USAGE, "%s: expected a non-negative integer, got '%s'",
                  option, text);
        return -1;
    }
    *value = parsed;
    return 0;
}

int cli_parse_double(const char *command, const char *option, const char *text, double min,
                     double max, double *value)
{
    char *end;
    errno = 0;
    double parsed = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(parsed) || parsed < min ||
        parsed > max) {
        cli_failf(command, KSEG_EXIT_USAGE, "%s: expected a number in [%g, %g], got '%s'", option,
                  min, max, text);
        return -1;
    }
    *value = parsed;
    return 0;
}

int cli_split_list(const char *command, const char *option, const char *text, char ***items,
                   size_t *count)
{
    size_t capacity = 1;
    for (const char *c = text; *c; c++)
        capacity += *c == ',';
    char **list = calloc(capacity + 1, sizeof *list);
    if (!list) {
        cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
        return -1;
    }
    size_t n = 0;
    const char *start = text;
    for (;;) {
        const char *end = strchr(start, ',');
        size_t length = end ? (size_t)(end - start) : strlen(start);
        if (length == 0) {
            cli_failf(command, KSEG_EXIT_USAGE, "%s: empty name in list '%s'", option, text);
            cli_free_list(list, n);
            return -1;
        }
        list[n] = strndup(start, length);
        if (!list[n]) {
            cli_free_list(list, n);
            cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
            return -1;
        }
        n++;
        if (!end)
            break;
        start = end + 1;
    }
    *items = list;
    *count = n;
    return 0;
}

void cli_free_list(char **items, size_t count)
{
    if (!items)
        return;
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

int cli_stderr_is_terminal(void)
{
    return isatty(STDERR_FILENO);
}

int cli_read_text_file(const char *path, const char *what, char **text, kseg_error *error)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return kseg_error_set(error, KSEG_ENOENT, "cannot open %s %s: %s", what, path,
                              strerror(errno));
    /* fopen accepts a directory on Linux and only the read fails: say what is wrong. */
    struct stat info;
    if (fstat(fileno(file), &info) == 0 && S_ISDIR(info.st_mode)) {
        fclose(file);
        return kseg_error_set(error, KSEG_EINVAL, "cannot read %s %s: it is a directory", what,
                              path);
    }
    size_t capacity = 4096, length = 0;
    char *buffer = malloc(capacity);
    int status = 0;
    while (buffer) {
        length += fread(buffer + length, 1, capacity - length - 1, file);
        if (length < capacity - 1)
            break;
        char *grown = realloc(buffer, capacity * 2);
        if (!grown) {
            free(buffer);
            buffer = NULL;
            break;
        }
        buffer = grown;
        capacity *= 2;
    }
    if (!buffer)
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory reading %s", path);
    else if (ferror(file)) {
        status = kseg_error_set(error, KSEG_EIO, "cannot read %s %s: %s", what, path,
                                strerror(errno));
        free(buffer);
    } else {
        buffer[length] = '\0';
        *text = buffer;
    }
    fclose(file);
    return status;
}

void cli_csv_field(FILE *out, const char *text)
{
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, out);
        return;
    }
    fputc('"', out);
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

FILE *cli_output_open(const char *command, kseg_output_file *file, const char *path)
{
    kseg_error error = {0};
    if (kseg_output_file_open(file, path, &error) != 0) {
        cli_fail(command, &error);
        return NULL;
    }
    return file->stream;
}

int cli_output_commit(const char *command, kseg_output_file *file)
{
    kseg_error error = {0};
    if (kseg_output_file_commit(file, &error) != 0) {
        cli_fail(command, &error);
        return -1;
    }
    return 0;
}

/* Runs in signal context: only async-signal-safe calls. Restoring the default action and
   raising again makes the process die of the signal, as the shell and Slurm expect. */
static void remove_temporaries_and_die(int signal_number)
{
    kseg_remove_temporary_files();
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

void cli_install_signal_cleanup(void)
{
    const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = remove_temporaries_and_die;
        sigemptyset(&action.sa_mask);
        /* An ignored signal stays ignored (nohup, or a parent that ignores SIGPIPE). */
        struct sigaction previous;
        if (sigaction(signals[i], NULL, &previous) == 0 && previous.sa_handler == SIG_IGN)
            continue;
        sigaction(signals[i], &action, NULL);
    }
}
