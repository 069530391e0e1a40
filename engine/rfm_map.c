/* RFM segment maps: the built-in map (an exact partition of the 5 x 5 R x F grid, stretched to
 * other bin counts by quantile position) and the parser of map files, which rejects overlaps and
 * holes naming every offending cell. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/rfm.h"

/* Bin counts a map may have: the score grid is bins x bins. */
#define MAP_MIN_BINS 2
#define MAP_MAX_BINS 100
/* Longest segment name a map file may give (bytes). */
#define MAP_MAX_NAME 200

/* ---------------------------------------------------------------- the built-in map */

static const char *const default_names[] = {
    "Champions",          "Loyal Customers", "Potential Loyalists", "New Customers",
    "Promising",          "Need Attention",  "About to Sleep",      "At Risk",
    "Can't Lose Them",    "Hibernating",     "Lost"};
enum {
    CHAMPIONS,
    LOYAL,
    POTENTIAL,
    NEW,
    PROMISING,
    NEED_ATTENTION,
    ABOUT_TO_SLEEP,
    AT_RISK,
    CANT_LOSE,
    HIBERNATING,
    LOST,
    DEFAULT_SEGMENTS
};

/* The 5 x 5 grid in "best high" orientation: row r - 1 is R = r, column f - 1 is F = f. Written
 * bottom-up (R = 1 first) so that the index arithmetic stays plain; the README shows it top-down. */
static const int default_grid[5][5] = {
    /* R=1 */ {LOST, HIBERNATING, AT_RISK, AT_RISK, CANT_LOSE},
    /* R=2 */ {HIBERNATING, HIBERNATING, AT_RISK, AT_RISK, CANT_LOSE},
    /* R=3 */ {ABOUT_TO_SLEEP, ABOUT_TO_SLEEP, NEED_ATTENTION, LOYAL, LOYAL},
    /* R=4 */ {PROMISING, POTENTIAL, POTENTIAL, LOYAL, LOYAL},
    /* R=5 */ {NEW, POTENTIAL, POTENTIAL, CHAMPIONS, CHAMPIONS},
};

void kseg_rfm_map_destroy(kseg_rfm_map *map)
{
    if (!map)
        return;
    if (map->names)
        for (size_t s = 0; s < map->n_segments; s++)
            free(map->names[s]);
    free(map->names);
    free(map->cell_segment);
    memset(map, 0, sizeof *map);
}

/* Score s of `bins` bins sits at level ceil(5 s / bins) of the 5-level grid. */
static int grid_level(int32_t score, int32_t bins)
{
    return (int)((5 * score + bins - 1) / bins);
}

int kseg_rfm_map_default(kseg_rfm_map *map, int32_t bins, kseg_error *error)
{
    memset(map, 0, sizeof *map);
    if (bins < MAP_MIN_BINS || bins > 10)
        return kseg_error_set(error, KSEG_EINVAL,
                              "the built-in RFM map supports 2 to 10 bins, not %d (give a map "
                              "file for other bin counts)",
                              (int)bins);
    map->bins = bins;
    map->n_segments = DEFAULT_SEGMENTS;
    map->names = calloc(DEFAULT_SEGMENTS, sizeof *map->names);
    map->cell_segment = malloc((size_t)bins * (size_t)bins * sizeof *map->cell_segment);
    if (!map->names || !map->cell_segment)
        goto out_of_memory;
    for (size_t s = 0; s < DEFAULT_SEGMENTS; s++)
        if (!(map->names[s] = strdup(default_names[s])))
            goto out_of_memory;
    for (int32_t r = 1; r <= bins; r++)
        for (int32_t f = 1; f <= bins; f++)
            map->cell_segment[(r - 1) * bins + (f - 1)] =
                default_grid[grid_level(r, bins) - 1][grid_level(f, bins) - 1];
    return 0;
out_of_memory:
    kseg_rfm_map_destroy(map);
    return kseg_error_set(error, KSEG_ENOMEM, "out of memory building the RFM map");
}

/* ---------------------------------------------------------------- messages */

/* A growing message buffer; appends are cut silently at the capacity. */
typedef struct message {
    char text[4096];
    size_t length;
} message;

static void message_add(message *m, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void message_add(message *m, const char *format, ...)
{
    if (m->length >= sizeof m->text - 1)
        return;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(m->text + m->length, sizeof m->text - m->length, format, arguments);
    va_end(arguments);
    if (written > 0)
        m->length += (size_t)written < sizeof m->text - m->length
                         ? (size_t)written
                         : sizeof m->text - m->length - 1;
}

/* Appends the cells marked in `marked` (bins x bins), row by row: a run of three or more
 * consecutive F scores is written as a range, shorter runs cell by cell. */
static void message_add_cells(message *m, const unsigned char *marked, int32_t bins)
{
    int first = 1;
    for (int32_t r = 1; r <= bins; r++)
        for (int32_t f = 1; f <= bins;) {
            if (!marked[(r - 1) * bins + (f - 1)]) {
                f++;
                continue;
            }
            int32_t end = f;
            while (end + 1 <= bins && marked[(r - 1) * bins + end])
                end++;
            if (end - f >= 2) {
                message_add(m, "%sR=%d F=%d-%d", first ? "" : ", ", (int)r, (int)f, (int)end);
                first = 0;
            } else
                for (int32_t g = f; g <= end; g++) {
                    message_add(m, "%sR=%d F=%d", first ? "" : ", ", (int)r, (int)g);
                    first = 0;
                }
            f = end + 1;
        }
}

static size_t count_marked(const unsigned char *marked, size_t cells)
{
    size_t count = 0;
    for (size_t c = 0; c < cells; c++)
        count += marked[c] != 0;
    return count;
}

/* ---------------------------------------------------------------- map files */

static char *trim(char *text)
{
    while (*text && isspace((unsigned char)*text))
        text++;
    char *end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return text;
}

/* Parses a score list ("*", "4-5", "1,3", "1-2, 5") into selected[1..bins]. */
static int parse_scores(char *text, int32_t bins, unsigned char *selected, const char *source,
                        int line, const char *axis, kseg_error *error)
{
    memset(selected, 0, (size_t)bins + 1);
    char *list = trim(text);
    if (!*list)
        return kseg_error_set(error, KSEG_EFORMAT,
                              "%s line %d: the %s scores are empty (expected e.g. 4-5, 1,3 or *)",
                              source, line, axis);
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        item = trim(item);
        if (strcmp(item, "*") == 0) {
            memset(selected + 1, 1, (size_t)bins);
            continue;
        }
        long low, high;
        char *end;
        if (!isdigit((unsigned char)*item))
            goto bad_item;
        low = strtol(item, &end, 10);
        high = low;
        end = trim(end);
        if (*end == '-') {
            char *second = trim(end + 1);
            if (!isdigit((unsigned char)*second))
                goto bad_item;
            high = strtol(second, &end, 10);
        }
        if (*trim(end))
            goto bad_item;
        if (low > high)
            return kseg_error_set(error, KSEG_EFORMAT,
                                  "%s line %d: %s score range %ld-%ld runs backwards", source,
                                  line, axis, low, high);
        if (low < 1 || high > bins)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s line %d: %s score %ld is outside 1..%d", source, line, axis,
                                  low < 1 ? low : high, (int)bins);
        for (long s = low; s <= high; s++)
            selected[s] = 1;
        continue;
    bad_item:
        return kseg_error_set(error, KSEG_EFORMAT,
                              "%s line %d: cannot read %s score '%s' (expected a score, a range "
                              "like 4-5, a list like 1,3, or *)",
                              source, line, axis, item);
    }
    return 0;
}

/* One parsed line of a map file. */
typedef struct map_line {
    int number;
    int segment;
    unsigned char r_selected[MAP_MAX_BINS + 1];
    unsigned char f_selected[MAP_MAX_BINS + 1];
} map_line;

static int add_segment_name(kseg_rfm_map *map, size_t *capacity, const char *name)
{
    for (size_t s = 0; s < map->n_segments; s++)
        if (strcmp(map->names[s], name) == 0)
            return (int)s;
    if (map->n_segments == *capacity) {
        size_t grown_capacity = *capacity ? 2 * *capacity : 16;
        char **grown = realloc(map->names, grown_capacity * sizeof *grown);
        if (!grown)
            return -1;
        map->names = grown;
        *capacity = grown_capacity;
    }
    if (!(map->names[map->n_segments] = strdup(name)))
        return -1;
    return (int)map->n_segments++;
}

/* Builds the one-line message naming every overlapping cell (per pair of lines) and every cell
 * in no segment. owner[c] is the index of the first line covering cell c, or -1; earlier is
 * scratch of n_lines zero bytes, left zero. */
static void describe_problems(message *m, const kseg_rfm_map *map, const map_line *lines,
                              size_t n_lines, const int *owner, unsigned char *marked,
                              unsigned char *earlier, int32_t bins, const char *source)
{
    const size_t cells = (size_t)bins * (size_t)bins;
    message_add(m, "%s: ", source);
    int first_problem = 1;
    /* Pairs (earlier line a, later line b) in the order b meets them. The lines b overlaps are
       the owners of its cells, found in one pass over the grid: a pass per pair of lines made
       the message cost lines^2 x cells (minutes for a long map of 100 bins, found by
       fuzz_rfm_map). Once the message is full, nothing more can be said. */
    for (size_t b = 0; b < n_lines && m->length < sizeof m->text - 1; b++) {
        for (int32_t r = 1; r <= bins; r++)
            for (int32_t f = 1; f <= bins; f++) {
                size_t c = (size_t)(r - 1) * (size_t)bins + (size_t)(f - 1);
                if (lines[b].r_selected[r] && lines[b].f_selected[f] && owner[c] >= 0 &&
                    (size_t)owner[c] < b)
                    earlier[owner[c]] = 1;
            }
        for (size_t a = 0; a < b; a++) {
            if (!earlier[a])
                continue;
            earlier[a] = 0;
            if (m->length >= sizeof m->text - 1)
                continue;
            memset(marked, 0, cells);
            for (int32_t r = 1; r <= bins; r++)
                for (int32_t f = 1; f <= bins; f++) {
                    size_t c = (size_t)(r - 1) * (size_t)bins + (size_t)(f - 1);
                    if (lines[b].r_selected[r] && lines[b].f_selected[f] && owner[c] == (int)a)
                        marked[c] = 1;
                }
            size_t count = count_marked(marked, cells);
            if (!count)
                continue;
            message_add(m, "%s%s ", first_problem ? "" : "; ", count == 1 ? "cell" : "cells");
            message_add_cells(m, marked, bins);
            message_add(m, " %s in both '%s' (line %d) and '%s' (line %d)",
                        count == 1 ? "is" : "are", map->names[lines[a].segment], lines[a].number,
                        map->names[lines[b].segment], lines[b].number);
            first_problem = 0;
        }
    }
    for (size_t c = 0; c < cells; c++)
        marked[c] = owner[c] < 0;
    size_t holes = count_marked(marked, cells);
    if (holes) {
        message_add(m, "%s%s ", first_problem ? "" : "; ", holes == 1 ? "cell" : "cells");
        message_add_cells(m, marked, bins);
        message_add(m, " %s in no segment", holes == 1 ? "is" : "are");
    }
}

int kseg_rfm_map_parse(kseg_rfm_map *map, const char *text, int32_t bins, const char *source,
                       kseg_error *error)
{
    memset(map, 0, sizeof *map);
    if (!source)
        source = "map";
    if (bins < MAP_MIN_BINS || bins > MAP_MAX_BINS)
        return kseg_error_set(error, KSEG_EINVAL, "%s: bins must be in %d..%d, not %d", source,
                              MAP_MIN_BINS, MAP_MAX_BINS, (int)bins);
    const size_t cells = (size_t)bins * (size_t)bins;
    int status = 0;
    char *copy = strdup(text ? text : "");
    int *owner = malloc(cells * sizeof *owner);
    unsigned char *marked = calloc(cells, 1);
    map_line *lines = NULL;
    size_t n_lines = 0, line_capacity = 0, name_capacity = 0;
    if (!copy || !owner || !marked)
        goto out_of_memory;
    map->bins = bins;

    int line_number = 0;
    char *next_line = NULL;
    /* Split by hand: strtok would skip empty lines and so miscount the line numbers. */
    for (char *line = copy; line; line = next_line) {
        char *newline = strchr(line, '\n');
        next_line = newline ? newline + 1 : NULL;
        if (newline)
            *newline = '\0';
        line_number++;
        char *comment = strchr(line, '#');
        if (comment)
            *comment = '\0';
        char *content = trim(line);
        if (!*content)
            continue;
        char *bar1 = strchr(content, '|');
        char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
        if (!bar1 || !bar2 || strchr(bar2 + 1, '|')) {
            status = kseg_error_set(error, KSEG_EFORMAT,
                                    "%s line %d: expected 'Name | R scores | F scores', got "
                                    "'%.80s'",
                                    source, line_number, content);
            goto done;
        }
        *bar1 = '\0';
        *bar2 = '\0';
        char *name = trim(content);
        if (!*name) {
            status = kseg_error_set(error, KSEG_EFORMAT, "%s line %d: the segment name is empty",
                                    source, line_number);
            goto done;
        }
        if (strlen(name) > MAP_MAX_NAME) {
            status = kseg_error_set(error, KSEG_EFORMAT,
                                    "%s line %d: the segment name is longer than %d bytes", source,
                                    line_number, MAP_MAX_NAME);
            goto done;
        }
        if (n_lines == line_capacity) {
            size_t capacity = line_capacity ? 2 * line_capacity : 16;
            map_line *grown = realloc(lines, capacity * sizeof *grown);
            if (!grown)
                goto out_of_memory;
            lines = grown;
            line_capacity = capacity;
        }
        map_line *parsed = &lines[n_lines];
        parsed->number = line_number;
        if ((status = parse_scores(bar1 + 1, bins, parsed->r_selected, source, line_number, "R",
                                   error)) ||
            (status = parse_scores(bar2 + 1, bins, parsed->f_selected, source, line_number, "F",
                                   error)))
            goto done;
        /* A name seen before continues that segment: a segment that is not a rectangle of the
           grid takes several lines. */
        if ((parsed->segment = add_segment_name(map, &name_capacity, name)) < 0)
            goto out_of_memory;
        n_lines++;
    }
    if (n_lines == 0) {
        status = kseg_error_set(error, KSEG_EFORMAT,
                                "%s: no segment defined (expected lines 'Name | R scores | F "
                                "scores')",
                                source);
        goto done;
    }

    int problems = 0;
    for (size_t c = 0; c < cells; c++)
        owner[c] = -1;
    for (size_t l = 0; l < n_lines; l++)
        for (int32_t r = 1; r <= bins; r++)
            for (int32_t f = 1; f <= bins; f++) {
                if (!lines[l].r_selected[r] || !lines[l].f_selected[f])
                    continue;
                size_t c = (size_t)(r - 1) * (size_t)bins + (size_t)(f - 1);
                if (owner[c] < 0)
                    owner[c] = (int)l;
                else
                    problems = 1;
            }
    for (size_t c = 0; c < cells; c++)
        problems |= owner[c] < 0;
    if (problems) {
        /* Every problem is named at once, so that a map can be fixed in one edit. */
        message m = {.length = 0};
        unsigned char *earlier = calloc(n_lines, 1);
        if (!earlier)
            goto out_of_memory;
        describe_problems(&m, map, lines, n_lines, owner, marked, earlier, bins, source);
        free(earlier);
        if (m.length >= KSEG_ERROR_MESSAGE_MAX - 1) {
            const char *cut = " ... (more cells; fix these first)";
            size_t keep = KSEG_ERROR_MESSAGE_MAX - 1 - strlen(cut);
            while (keep > 0 && m.text[keep] != ',' && m.text[keep] != ';')
                keep--;
            memcpy(m.text + keep, cut, strlen(cut) + 1);
        }
        status = kseg_error_set(error, KSEG_EINVAL, "%s", m.text);
        goto done;
    }
    map->cell_segment = malloc(cells * sizeof *map->cell_segment);
    if (!map->cell_segment)
        goto out_of_memory;
    for (size_t c = 0; c < cells; c++)
        map->cell_segment[c] = lines[owner[c]].segment;
    goto done;

out_of_memory:
    status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", source);
done:
    free(copy);
    free(owner);
    free(marked);
    free(lines);
    if (status)
        kseg_rfm_map_destroy(map);
    return status;
}
