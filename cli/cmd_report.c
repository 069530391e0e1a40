/* `kseg report RESULT.h5`: prints the prioritized segment table stored in a 'kseg run' result and
 * writes it again as JSON, CSV or an HTML page with charts, without rerunning the pipeline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "report_output.h"

static const char *const command = "report";

static const char *const report_usage =
    "usage: kseg report RESULT.h5 [--html DIR] [--json FILE] [--csv FILE] [-q]\n"
    "\n"
    "Read the segment report that 'kseg run' stored in RESULT.h5 (/report/json), print the\n"
    "primary scheme's segments in priority order, and optionally write it as:\n"
    "  --html DIR    DIR/index.html with charts (segment sizes and revenue shares, the Pareto\n"
    "                curve, the centroid profile, the k sweep, the cross-tabulations) and the\n"
    "                tables; drawn by report_html.py with matplotlib (python3)\n"
    "  --json FILE   the report as JSON\n"
    "  --csv FILE    the segment tables of every scheme as CSV\n"
    "Files are written under a temporary name and renamed.\n"
    "\n"
    "options:\n"
    "  -q, --quiet   do not print the table\n"
    "  -h, --help    show this help\n"
    "environment: KSEG_PYTHON (default python3) and KSEG_REPORT_SCRIPT choose the renderer.\n";

/* The --html directory must be a directory or creatable in an existing one; checked before any
 * file is written, so that the message names what the user gave (not the temporary JSON). */
static int check_html_directory(const char *html)
{
    struct stat info;
    if (stat(html, &info) == 0)
        return S_ISDIR(info.st_mode)
                   ? 0
                   : cli_failf(command, KSEG_EXIT_FAILURE,
                               "cannot write %s/index.html: %s exists and is not a directory", html,
                               html);
    char parent[4096];
    const char *slash = strrchr(html, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else
        snprintf(parent, sizeof parent, "%.*s", slash == html ? 1 : (int)(slash - html), html);
    if (stat(parent, &info) != 0 || !S_ISDIR(info.st_mode))
        return cli_failf(command, KSEG_EXIT_FAILURE,
                         "cannot write %s/index.html: directory %s does not exist", html, parent);
    if (access(parent, W_OK | X_OK) != 0)
        return cli_failf(command, KSEG_EXIT_FAILURE,
                         "cannot write %s/index.html: directory %s is not writable (%s)", html,
                         parent, strerror(errno));
    return 0;
}

int kseg_cmd_report(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"html", required_argument, NULL, 'H'}, {"json", required_argument, NULL, 'J'},
        {"csv", required_argument, NULL, 'C'},  {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    const char *html = NULL, *json_file = NULL, *csv = NULL;
    int quiet = 0;
    optind = 1;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":qh", long_options, NULL)) != -1) {
        switch (option) {
        case 'H':
            html = optarg;
            break;
        case 'J':
            json_file = optarg;
            break;
        case 'C':
            csv = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(report_usage, stdout);
            return KSEG_EXIT_OK;
        case ':':
            return cli_failf(command, KSEG_EXIT_USAGE, "option %s needs a value",
                             argv[optind - 1]);
        default:
            return cli_failf(command, KSEG_EXIT_USAGE,
                             "unknown option '%s' (run 'kseg report --help')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_failf(command, KSEG_EXIT_USAGE,
                         "expected exactly one RESULT.h5 (run 'kseg report --help')");
    const char *result = argv[optind];
    /* Writing the report over the result it comes from would destroy the result. */
    const char *outputs[3] = {json_file, csv, html};
    for (int o = 0; o < 3; o++)
        if (outputs[o] && kseg_same_file(outputs[o], result))
            return cli_failf(command, KSEG_EXIT_FAILURE,
                             "output %s is the input file: refusing to overwrite it", outputs[o]);
    if (html && check_html_directory(html))
        return KSEG_EXIT_FAILURE;
    kseg_error error;
    kseg_error_clear(&error);
    char **texts = NULL;
    size_t count = 0;
    if (kseg_h5_read_strings(result, "/report/json", &texts, &count, &error))
        return cli_failf(command, KSEG_EXIT_FAILURE, "%s (is it a result of 'kseg run'?)",
                         error.message);
    json_error_t parse_error;
    json_t *report = count == 1 ? json_loads(texts[0], 0, &parse_error) : NULL;
    kseg_h5_free_strings(texts, count);
    if (!report)
        return cli_failf(command, KSEG_EXIT_FAILURE, "%s:/report/json: not a JSON report%s%s",
                         result, count == 1 ? ": " : "", count == 1 ? parse_error.text : "");
    /* What every output form reads: an object with a list of schemes, each with segments. A
       result whose /report/json is something else is refused before any file is written. */
    const json_t *schemes = json_object_get(report, "schemes");
    const json_t *first = json_array_get(schemes, 0);
    /* The feature names head table and CSV columns: each must be a string. */
    const json_t *features = json_object_get(report, "features");
    int features_ok = json_is_array(features);
    size_t feature_index;
    const json_t *feature;
    json_array_foreach(features, feature_index, feature) features_ok &= json_is_string(feature);
    if (!json_is_object(report) || !json_is_array(schemes) || !json_is_object(first) ||
        !json_is_array(json_object_get(first, "segments")) || !features_ok) {
        json_decref(report);
        return cli_failf(command, KSEG_EXIT_FAILURE,
                         "%s:/report/json: not a kseg report (expected an object with a 'features' "
                         "list of names and a 'schemes' list of schemes with 'segments')",
                         result);
    }
    int exit_code = KSEG_EXIT_FAILURE;
    /* The page first, from a temporary copy of the JSON: the renderer checks the report most
       thoroughly, and when it refuses, no --json or --csv file has been written yet. The copy is
       a crash-safe output that is never committed: a unique hidden name beside DIR, removed at
       the end and by the signal handlers, so it can neither clobber nor outlive anything. */
    kseg_output_file scratch = {0};
    if (html) {
        size_t size = strlen(html) + 32;
        char *name = malloc(size);
        if (!name) {
            cli_failf(command, KSEG_EXIT_FAILURE, "out of memory");
            goto done;
        }
        snprintf(name, size, "%s.report.json", html);
        kseg_error scratch_error = {0};
        int opened = kseg_output_file_open(&scratch, name, &scratch_error);
        free(name);
        if (opened) {
            cli_fail(command, &scratch_error);
            goto done;
        }
        report_dump_json(report, scratch.stream);
        if (kseg_output_file_finish(&scratch, &scratch_error)) {
            cli_fail(command, &scratch_error);
            goto done;
        }
        if (report_render_html(command, scratch.temporary_path, html))
            goto done;
    }
    if (json_file && report_write_json(command, report, json_file))
        goto done;
    if (csv && report_write_csv(command, report, csv))
        goto done;
    if (!quiet)
        report_print_table(stdout, report);
    exit_code = KSEG_EXIT_OK;
done:
    kseg_output_file_abort(&scratch);
    json_decref(report);
    return exit_code;
}
