/* The segment report's output forms, all made from the one JSON document: the terminal table,
 * the CSV segment table, the JSON file, and the HTML page (rendered by cli/report_html.py with
 * matplotlib). Files are written under a temporary name and renamed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "report_output.h"

static double number(const json_t *object, const char *key)
{
    const json_t *value = json_object_get(object, key);
    return json_is_number(value) ? json_number_value(value) : 0.0;
}

static const char *text(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

/* The scheme named name, or NULL. */
static const json_t *find_scheme(const json_t *report, const char *name)
{
    const json_t *schemes = json_object_get(report, "schemes");
    size_t index;
    const json_t *scheme;
    json_array_foreach(schemes, index, scheme) {
        if (strcmp(text(scheme, "name"), name) == 0)
            return scheme;
    }
    return NULL;
}

/* Display width of UTF-8 text: code points, which is right for the Latin names kseg makes. */
static int display_width(const char *value)
{
    int width = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        width += (*p & 0xC0) != 0x80;
    return width;
}

static void print_padded(FILE *out, const char *value, int width)
{
    fputs(value, out);
    for (int pad = width - display_width(value); pad > 0; pad--)
        fputc(' ', out);
}

void report_print_table(FILE *out, const json_t *report)
{
    const char *primary = text(report, "primary_scheme");
    const json_t *scheme = find_scheme(report, primary);
    if (!scheme)
        return;
    const json_t *segments = json_object_get(scheme, "segments");
    const json_t *features = json_object_get(report, "features");
    int name_width = 7;
    size_t index;
    const json_t *segment;
    json_array_foreach(segments, index, segment) {
        int width = display_width(text(segment, "name"));
        if (width > name_width)
            name_width = width;
    }
    if (name_width > 64)
        name_width = 64;
    fprintf(out, "\nSegments of '%s' by priority (revenue = sum of '%s'; feature means on the "
            "right):\n\n",
            primary, text(report, "value_column"));
    fprintf(out, "  %4s  ", "rank");
    print_padded(out, "segment", name_width);
    fprintf(out, " %10s %7s %14s %7s %7s %12s", "customers", "share", "revenue", "share", "cum.",
            "per cust.");
    const json_t *feature;
    json_array_foreach(features, index, feature) fprintf(out, " %10.10s", json_string_value(feature));
    fputc('\n', out);
    json_array_foreach(segments, index, segment) {
        fprintf(out, "  %4d  ", (int)number(segment, "priority"));
        print_padded(out, text(segment, "name"), name_width);
        fprintf(out, " %10.0f %6.1f%% %14.2f %6.1f%% %6.1f%% %12.2f", number(segment, "customers"),
                100.0 * number(segment, "customer_share"), number(segment, "revenue"),
                100.0 * number(segment, "revenue_share"),
                100.0 * number(segment, "cumulative_revenue_share"),
                number(segment, "value_per_customer"));
        const json_t *mean = json_object_get(segment, "mean");
        size_t j;
        json_array_foreach(features, j, feature) {
            fprintf(out, " %10.4g", number(mean, json_string_value(feature)));
        }
        fputc('\n', out);
    }
    fprintf(out, "  %4s  ", "");
    print_padded(out, "total", name_width);
    fprintf(out, " %10.0f %6.1f%% %14.2f %6.1f%%\n", number(report, "customers"), 100.0,
            number(report, "revenue"), 100.0);

    const json_t *merges = json_object_get(report, "merges");
    if (json_array_size(merges)) {
        fprintf(out, "\nMerged (too small to market to):\n");
        const json_t *merge;
        json_array_foreach(merges, index, merge) {
            fprintf(out, "  %s -> %s: %s\n", text(merge, "from"), text(merge, "into"),
                    text(merge, "reason"));
        }
    }
    const json_t *sweep = json_object_get(report, "k_sweep");
    if (json_is_object(sweep)) {
        fprintf(out, "\nk sweep (rule: %s):\n  %4s %16s %11s %18s %15s\n", text(sweep, "rule"), "k",
                "inertia", "silhouette", "calinski-harabasz", "davies-bouldin");
        const json_t *entry;
        json_array_foreach(json_object_get(sweep, "entries"), index, entry) {
            int k = (int)number(entry, "k");
            fprintf(out, "  %4d %16.6g %11.4f %18.2f %15.4f%s\n", k, number(entry, "inertia"),
                    number(entry, "silhouette"), number(entry, "calinski_harabasz"),
                    number(entry, "davies_bouldin"),
                    k == (int)number(sweep, "chosen") ? "  <- chosen" : "");
        }
        fprintf(out, "  %s\n", text(sweep, "note"));
    }
    const json_t *schemes = json_object_get(report, "schemes");
    if (json_array_size(schemes) > 1) {
        fprintf(out, "\nOther schemes:");
        json_array_foreach(schemes, index, scheme) {
            if (strcmp(text(scheme, "name"), primary) != 0)
                fprintf(out, " %s (%zu segments)", text(scheme, "name"),
                        json_array_size(json_object_get(scheme, "segments")));
        }
        fputc('\n', out);
    }
}

int report_write_csv(const char *command, const json_t *report, const char *path)
{
    kseg_output_file file;
    FILE *out = cli_output_open(command, &file, path);
    if (!out)
        return -1;
    const json_t *features = json_object_get(report, "features");
    fputs("scheme,priority,segment,customers,customer_share,revenue,revenue_share,"
          "cumulative_customer_share,cumulative_revenue_share,value_per_customer",
          out);
    size_t j;
    const json_t *feature;
    json_array_foreach(features, j, feature) {
        fputs(",mean_", out);
        fputs(json_string_value(feature), out);
    }
    json_array_foreach(features, j, feature) {
        fputs(",median_", out);
        fputs(json_string_value(feature), out);
    }
    fputc('\n', out);
    size_t index;
    const json_t *scheme;
    json_array_foreach(json_object_get(report, "schemes"), index, scheme) {
        size_t s;
        const json_t *segment;
        json_array_foreach(json_object_get(scheme, "segments"), s, segment) {
            cli_csv_field(out, text(scheme, "name"));
            fprintf(out, ",%d,", (int)number(segment, "priority"));
            cli_csv_field(out, text(segment, "name"));
            fprintf(out, ",%.0f,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g", number(segment, "customers"),
                    number(segment, "customer_share"), number(segment, "revenue"),
                    number(segment, "revenue_share"),
                    number(segment, "cumulative_customer_share"),
                    number(segment, "cumulative_revenue_share"),
                    number(segment, "value_per_customer"));
            const char *const parts[2] = {"mean", "median"};
            for (int part = 0; part < 2; part++) {
                const json_t *values = json_object_get(segment, parts[part]);
                json_array_foreach(features, j, feature) {
                    const json_t *value = json_object_get(values, json_string_value(feature));
                    if (json_is_number(value))
                        fprintf(out, ",%.17g", json_number_value(value));
                    else
                        fputc(',', out);
                }
            }
            fputc('\n', out);
        }
    }
    return cli_output_commit(command, &file);
}

void report_dump_json(const json_t *report, FILE *out)
{
    /* A failed dump leaves the stream in error, which the caller's finish or commit reports. */
    json_dumpf(report, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    fputc('\n', out);
}

int report_write_json(const char *command, const json_t *report, const char *path)
{
    kseg_output_file file;
    FILE *out = cli_output_open(command, &file, path);
    if (!out)
        return -1;
    report_dump_json(report, out);
    return cli_output_commit(command, &file);
}

/* The renderer script: KSEG_REPORT_SCRIPT, else the installed copy, else the source tree's. */
static const char *renderer_script(void)
{
    const char *script = getenv("KSEG_REPORT_SCRIPT");
    if (script && *script)
        return script;
#ifdef KSEG_INSTALLED_REPORT_SCRIPT
    if (access(KSEG_INSTALLED_REPORT_SCRIPT, R_OK) == 0)
        return KSEG_INSTALLED_REPORT_SCRIPT;
#endif
#ifdef KSEG_SOURCE_REPORT_SCRIPT
    if (access(KSEG_SOURCE_REPORT_SCRIPT, R_OK) == 0)
        return KSEG_SOURCE_REPORT_SCRIPT;
#endif
    return NULL;
}

int report_render_html(const char *command, const char *json_path, const char *directory)
{
    const char *script = renderer_script();
    if (!script) {
        cli_failf(command, KSEG_EXIT_FAILURE,
                  "cannot find the HTML renderer report_html.py (set KSEG_REPORT_SCRIPT)");
        return -1;
    }
    const char *python = getenv("KSEG_PYTHON");
    if (!python || !*python)
        python = "python3";
    /* The renderer's stderr comes through a pipe: when it fails, its last line (it prints one
       line naming the problem) becomes part of kseg's one error line; otherwise it is passed
       on unchanged. */
    int channel[2];
    if (pipe(channel) != 0) {
        cli_failf(command, KSEG_EXIT_FAILURE, "cannot start %s: %s", python, strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    if (child < 0) {
        close(channel[0]);
        close(channel[1]);
        cli_failf(command, KSEG_EXIT_FAILURE, "cannot start %s: %s", python, strerror(errno));
        return -1;
    }
    if (child == 0) {
        close(channel[0]);
        dup2(channel[1], STDERR_FILENO);
        close(channel[1]);
        char *const arguments[] = {(char *)python, (char *)script, (char *)json_path,
                                   (char *)"--out", (char *)directory, NULL};
        execvp(python, arguments);
        fprintf(stderr, "cannot run %s: %s (install python3 and python3-matplotlib, or set "
                        "KSEG_PYTHON)\n",
                python, strerror(errno));
        _exit(127);
    }
    close(channel[1]);
    /* Everything is read before waiting, so that a talkative child never blocks on a full pipe;
       only the last 4 KiB are kept. */
    char captured[4096];
    size_t length = 0;
    for (;;) {
        char buffer[1024];
        ssize_t got = read(channel[0], buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (length + (size_t)got >= sizeof captured) { /* drop the oldest bytes */
            size_t drop = length + (size_t)got - (sizeof captured - 1);
            memmove(captured, captured + drop, length - drop);
            length -= drop;
        }
        memcpy(captured + length, buffer, (size_t)got);
        length += (size_t)got;
    }
    close(channel[0]);
    captured[length] = '\0';
    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            cli_failf(command, KSEG_EXIT_FAILURE, "waiting for the renderer: %s",
                      strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* The last non-empty line, without the renderer's own "report_html: " prefix. */
        while (length > 0 && (captured[length - 1] == '\n' || captured[length - 1] == '\r'))
            captured[--length] = '\0';
        char *last = strrchr(captured, '\n');
        last = last ? last + 1 : captured;
        if (strncmp(last, "report_html: ", 13) == 0)
            last += 13;
        cli_failf(command, KSEG_EXIT_FAILURE, "the HTML renderer (%s %s) failed: %s", python,
                  script, *last ? last : "no message");
        return -1;
    }
    fputs(captured, stderr);
    return 0;
}
