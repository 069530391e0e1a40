/* RFM segment maps: the built-in map against the grid of the issue for every bin count 2..10
 * (each cell in exactly one segment, all eleven names used from 5 bins on), the README's map file
 * parsing to the same map, and the parser's rejections: overlaps and holes naming every cell,
 * syntax errors with line numbers, scores outside 1..bins. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/rfm.h"

/* The grid as the issue gives it: rows R = 5..1, columns F = 1..5 ("best high"). */
static const char *const issue_grid[5][5] = {
    {"New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"},
    {"Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers",
     "Loyal Customers"},
    {"About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"},
    {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
    {"Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
};

static const char *issue_cell(int r, int f)
{
    return issue_grid[5 - r][f - 1];
}

/* The default map as a map file, exactly as the README shows it. */
static const char readme_map[] =
    "# The built-in map (5 bins). Name | R scores | F scores\n"
    "Champions           | 5   | 4-5\n"
    "Loyal Customers     | 3-4 | 4-5\n"
    "Potential Loyalists | 4-5 | 2-3\n"
    "New Customers       | 5   | 1\n"
    "Promising           | 4   | 1\n"
    "Need Attention      | 3   | 3\n"
    "About to Sleep      | 3   | 1-2\n"
    "At Risk             | 1-2 | 3-4\n"
    "Can't Lose Them     | 1-2 | 5\n"
    "Hibernating         | 2   | 1-2\n"
    "Hibernating         | 1   | 2\n"
    "Lost                | 1   | 1\n";

Test(rfm_map, default_map_is_an_exact_partition_for_every_bin_count)
{
    for (int32_t bins = 2; bins <= 10; bins++) {
        kseg_rfm_map map;
        kseg_error error = {0};
        cr_assert_eq(kseg_rfm_map_default(&map, bins, &error), 0, "%s", error.message);
        cr_assert_eq(map.bins, bins);
        cr_assert_eq(map.n_segments, 11);
        int *cells_of_segment = calloc(map.n_segments, sizeof *cells_of_segment);
        for (int32_t r = 1; r <= bins; r++)
            for (int32_t f = 1; f <= bins; f++) {
                /* Each cell names exactly one segment: count the segments whose name matches
                   the cell's (names are distinct, so exactly one must). */
                int32_t segment = map.cell_segment[(r - 1) * bins + (f - 1)];
                cr_assert(segment >= 0 && (size_t)segment < map.n_segments);
                int matches = 0;
                for (size_t s = 0; s < map.n_segments; s++)
                    matches += strcmp(map.names[s], map.names[segment]) == 0;
                cr_assert_eq(matches, 1, "bins %d: cell R=%d F=%d", bins, r, f);
                cells_of_segment[segment]++;
                /* Quantile position: score s of b bins sits at level ceil(5 s / b). */
                int level_r = (5 * r + bins - 1) / bins, level_f = (5 * f + bins - 1) / bins;
                cr_assert_str_eq(map.names[segment], issue_cell(level_r, level_f),
                                 "bins %d: cell R=%d F=%d", bins, r, f);
            }
        int total = 0;
        for (size_t s = 0; s < map.n_segments; s++) {
            total += cells_of_segment[s];
            if (bins >= 5)
                cr_assert_gt(cells_of_segment[s], 0, "bins %d: segment '%s' unused", bins,
                             map.names[s]);
        }
        cr_assert_eq(total, bins * bins);
        free(cells_of_segment);
        kseg_rfm_map_destroy(&map);
    }
}

Test(rfm_map, default_map_refuses_other_bin_counts)
{
    kseg_rfm_map map;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_default(&map, 11, &error), KSEG_EINVAL);
    cr_assert_not_null(strstr(error.message, "2 to 10"), "%s", error.message);
    cr_assert_eq(kseg_rfm_map_default(&map, 1, &error), KSEG_EINVAL);
}

Test(rfm_map, readme_map_file_equals_the_default)
{
    kseg_rfm_map parsed, builtin;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_parse(&parsed, readme_map, 5, "README", &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_rfm_map_default(&builtin, 5, &error), 0);
    cr_assert_eq(parsed.n_segments, 11, "repeated names continue a segment");
    for (int32_t c = 0; c < 25; c++)
        cr_assert_str_eq(parsed.names[parsed.cell_segment[c]],
                         builtin.names[builtin.cell_segment[c]], "cell %d", c);
    kseg_rfm_map_destroy(&parsed);
    kseg_rfm_map_destroy(&builtin);
}

Test(rfm_map, lists_ranges_stars_and_comments)
{
    const char *text = "\n"
                       "  # two segments on a 4 x 4 grid\n"
                       "High | 3-4 | *      # trailing comment\n"
                       "Low  | 1, 2 | 1,2-4\r\n"
                       "\n";
    kseg_rfm_map map;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_parse(&map, text, 4, "m.txt", &error), 0, "%s", error.message);
    cr_assert_eq(map.n_segments, 2);
    cr_assert_str_eq(map.names[0], "High");
    cr_assert_str_eq(map.names[1], "Low");
    for (int r = 1; r <= 4; r++)
        for (int f = 1; f <= 4; f++)
            cr_assert_eq(map.cell_segment[(r - 1) * 4 + (f - 1)], r >= 3 ? 0 : 1);
    kseg_rfm_map_destroy(&map);
}

static void expect_rejection(const char *text, int32_t bins, int code, const char *message)
{
    kseg_rfm_map map;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_parse(&map, text, bins, "map.txt", &error), code,
                 "code %d (%s) for:\n%s", error.code, error.message, text);
    cr_assert_str_eq(error.message, message);
    cr_assert_null(map.names);
    cr_assert_null(map.cell_segment);
}

Test(rfm_map, overlaps_and_holes_name_every_cell)
{
    /* The README's map with faults: both Hibernating lines also claim an At Risk cell (the
       earlier line keeps a cell, the later one is named as the second claimant), and Lost and
       R=1 F=2 are missing. */
    expect_rejection("# 5 bins\n"
                     "Champions           | 5   | 4-5\n"
                     "Loyal Customers     | 3-4 | 4-5\n"
                     "At Risk             | 1-2 | 3-4\n"
                     "Potential Loyalists | 4-5 | 2-3\n"
                     "New Customers       | 5   | 1\n"
                     "Hibernating         | 2   | 1-3\n"
                     "Promising           | 4   | 1\n"
                     "Need Attention      | 3   | 3\n"
                     "About to Sleep      | 3   | 1-2\n"
                     "Can't Lose Them     | 1-2 | 5\n"
                     "Hibernating         | 1   | 3\n",
                     5, KSEG_EINVAL,
                     "map.txt: cell R=2 F=3 is in both 'At Risk' (line 4) and 'Hibernating' "
                     "(line 7); cell R=1 F=3 is in both 'At Risk' (line 4) and 'Hibernating' "
                     "(line 12); cells R=1 F=1, R=1 F=2 are in no segment");
    /* Runs of three or more are written as ranges; a whole row overlapping. */
    expect_rejection("A | * | *\n"
                     "B | 2 | *\n",
                     4, KSEG_EINVAL,
                     "map.txt: cells R=2 F=1-4 are in both 'A' (line 1) and 'B' (line 2)");
    expect_rejection("A | 1 | 1-3\n", 3, KSEG_EINVAL,
                     "map.txt: cells R=2 F=1-3, R=3 F=1-3 are in no segment");
}

Test(rfm_map, syntax_errors_name_the_line)
{
    expect_rejection("A | * | *\nB | 1\n", 3, KSEG_EFORMAT,
                     "map.txt line 2: expected 'Name | R scores | F scores', got 'B | 1'");
    expect_rejection("\n\n | 1 | 1\n", 3, KSEG_EFORMAT,
                     "map.txt line 3: the segment name is empty");
    expect_rejection("A | 1-x | 1\n", 3, KSEG_EFORMAT,
                     "map.txt line 1: cannot read R score '1-x' (expected a score, a range like "
                     "4-5, a list like 1,3, or *)");
    expect_rejection("A | 3-1 | 1\n", 3, KSEG_EFORMAT,
                     "map.txt line 1: R score range 3-1 runs backwards");
    expect_rejection("A | 1 | 2-6\n", 5, KSEG_EINVAL, "map.txt line 1: F score 6 is outside 1..5");
    expect_rejection("A | 0 | 1\n", 5, KSEG_EINVAL, "map.txt line 1: R score 0 is outside 1..5");
    expect_rejection("A | | 1\n", 5, KSEG_EFORMAT,
                     "map.txt line 1: the R scores are empty (expected e.g. 4-5, 1,3 or *)");
    expect_rejection("# nothing\n", 5, KSEG_EFORMAT,
                     "map.txt: no segment defined (expected lines 'Name | R scores | F scores')");
    expect_rejection("A | * | *\n", 1, KSEG_EINVAL, "map.txt: bins must be in 2..100, not 1");
}

Test(rfm_map, long_problem_lists_are_cut_cleanly)
{
    /* A 20 x 20 checkerboard of holes: the message must stay one line within the error buffer,
       end at a whole cell, and say it was cut. */
    char text[8192] = "";
    for (int r = 1; r <= 20; r++) {
        char line[128];
        int length = snprintf(line, sizeof line, "S%d | %d | ", r, r);
        for (int f = 2 - r % 2; f <= 20; f += 2)
            length += snprintf(line + length, sizeof line - (size_t)length, "%s%d",
                               f <= 2 ? "" : ",", f);
        strcat(line, "\n");
        strcat(text, line);
    }
    kseg_rfm_map map;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_parse(&map, text, 20, "map.txt", &error), KSEG_EINVAL);
    cr_assert_lt(strlen(error.message), KSEG_ERROR_MESSAGE_MAX);
    cr_assert_not_null(strstr(error.message, "map.txt: cells R=1 F=2, R=1 F=4"), "%s",
                       error.message);
    const char *cut = " ... (more cells; fix these first)";
    size_t length = strlen(error.message);
    cr_assert_str_eq(error.message + length - strlen(cut), cut);
}

Test(rfm_map, many_overlapping_lines_are_refused_quickly, .timeout = 20)
{
    /* fuzz_rfm_map: the overlap message compared every pair of lines over the whole grid, so a
       map of 20000 lines for 100 bins took hours (4 KB of them: over a minute under ASan). The
       overlaps are now found per line, and the search stops once the message is full. */
    const char line[] = "c | 1 | 1\n";
    const size_t lines = 20000;
    char *text = malloc(lines * (sizeof line - 1) + 1);
    cr_assert_not_null(text);
    for (size_t i = 0; i < lines; i++)
        memcpy(text + i * (sizeof line - 1), line, sizeof line - 1);
    text[lines * (sizeof line - 1)] = '\0';
    kseg_rfm_map map;
    kseg_error error = {0};
    cr_assert_eq(kseg_rfm_map_parse(&map, text, 100, "map.txt", &error), KSEG_EINVAL);
    const char *start = "map.txt: cell R=1 F=1 is in both 'c' (line 1) and 'c' (line 2); cell R=1 "
                        "F=1 is in both 'c' (line 1) and 'c' (line 3); ";
    cr_assert_eq(strncmp(error.message, start, strlen(start)), 0, "%s", error.message);
    const char *cut = " ... (more cells; fix these first)";
    size_t length = strlen(error.message);
    cr_assert_str_eq(error.message + length - strlen(cut), cut);
    free(text);
}
