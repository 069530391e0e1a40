/* The segment report in its output forms: the JSON document (Jansson) that 'kseg run' builds and
 * stores in the result file, and what 'kseg run' and 'kseg report' make from it: the terminal
 * table, the CSV segment table, and the HTML page drawn by the Python/matplotlib renderer. */
#ifndef KSEG_CLI_REPORT_OUTPUT_H
#define KSEG_CLI_REPORT_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

/* Prints the primary scheme's segments in priority order (and the merges and the k sweep when
 * present) as an aligned table. */
void report_print_table(FILE *out, const json_t *report);

/* Writes the segment tables of every scheme as one CSV file, atomically. Returns 0, or prints a
 * one-line error for command and returns -1. */
int report_write_csv(const char *command, const json_t *report, const char *path);

/* Writes the JSON document, atomically (indented, keys in insertion order). */
int report_write_json(const char *command, const json_t *report, const char *path);

/* The report as indented JSON (the form report.json has) on out. */
void report_dump_json(const json_t *report, FILE *out);

/* Renders the HTML report into directory with the Python helper (cli/report_html.py, installed
 * as share/kseg/report_html.py; KSEG_REPORT_SCRIPT and KSEG_PYTHON override the script and the
 * interpreter). json_path is the report JSON on disk. */
int report_render_html(const char *command, const char *json_path, const char *directory);


#endif
