/* YAML documents for configuration files: libyaml's event parser builds a small tree of scalars,
 * sequences and mappings that remembers where each node and key stood, so that every later
 * complaint (unknown key, bad number, out of range) can name FILE:LINE:COLUMN. */
#define _GNU_SOURCE /* strdup, strcasecmp */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "kseg/config.h"
#include "yaml_internal.h"

/* Collections may nest this deep. Configuration files need a handful of levels; the limit keeps
 * the recursive tree building (and freeing) from exhausting the stack on a hostile file. */
#define MAX_DEPTH 64
/* Configuration files are small; a bigger file is almost certainly the wrong file. */
#define MAX_FILE_BYTES ((size_t)64 << 20)
/* Error messages quote at most this much of an offending scalar. */
#define QUOTE_MAX 60

static const char *source_name(const char *source)
{
    return source ? source : "<yaml>";
}

static const char *kind_name(kseg_yaml_kind kind)
{
    switch (kind) {
    case KSEG_YAML_SCALAR:
        return "a scalar";
    case KSEG_YAML_SEQUENCE:
        return "a sequence";
    case KSEG_YAML_MAPPING:
        return "a mapping";
    }
    return "an unknown node";
}

/* ---------------------------------------------------------------- suggestions */

size_t kseg_edit_distance(const char *a, const char *b)
{
    if (!a)
        a = "";
    if (!b)
        b = "";
    size_t na = strlen(a), nb = strlen(b);
    if (na == 0)
        return nb;
    if (nb == 0)
        return na;
    /* Two rows of the dynamic programme suffice. Keys and feature names are short, so a stack
       buffer serves nearly always; the heap is only for long strings. */
    size_t stack_rows[2 * 65];
    size_t *rows = stack_rows;
    if (nb + 1 > 65) {
        rows = malloc(2 * (nb + 1) * sizeof *rows);
        /* Without memory the longer length is still an upper bound of the distance, which at
           worst suppresses a suggestion. */
        if (!rows)
            return na > nb ? na : nb;
    }
    size_t *previous = rows, *current = rows + nb + 1;
    for (size_t j = 0; j <= nb; j++)
        previous[j] = j;
    for (size_t i = 1; i <= na; i++) {
        current[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t substitute = previous[j - 1] + (a[i - 1] != b[j - 1]);
            size_t delete = previous[j] + 1;
            size_t insert = current[j - 1] + 1;
            size_t best = substitute < delete ? substitute : delete;
            current[j] = best < insert ? best : insert;
        }
        size_t *swap = previous;
        previous = current;
        current = swap;
    }
    size_t distance = previous[nb];
    if (rows != stack_rows)
        free(rows);
    return distance;
}

const char *kseg_yaml_nearest(const char *word, const char *const *candidates, size_t n)
{
    size_t length = strlen(word);
    size_t limit = length / 3 > 2 ? length / 3 : 2;
    const char *best = NULL;
    size_t best_distance = 0;
    for (size_t i = 0; i < n; i++) {
        size_t distance = kseg_edit_distance(word, candidates[i]);
        if (!best || distance < best_distance) {
            best = candidates[i];
            best_distance = distance;
        }
    }
    return best && best_distance <= limit ? best : NULL;
}

void kseg_yaml_join(char *buffer, size_t size, const char *const *words, size_t n)
{
    static const char ellipsis[] = ", ...";
    if (size == 0)
        return;
    buffer[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const char *separator = i ? ", " : "";
        size_t need = strlen(separator) + strlen(words[i]);
        /* Keep room for the ellipsis unless this is the last word. */
        size_t reserve = i + 1 < n ? sizeof ellipsis - 1 : 0;
        if (used + need + reserve + 1 > size) {
            if (used + sizeof ellipsis <= size)
                memcpy(buffer + used, i ? ellipsis : ellipsis + 2, sizeof ellipsis - (i ? 0 : 2));
            return;
        }
        used += (size_t)snprintf(buffer + used, size - used, "%s%s", separator, words[i]);
    }
}

/* ---------------------------------------------------------------- the tree */

static void node_clear(kseg_yaml_node *node)
{
    if (!node)
        return;
    free(node->value);
    for (size_t i = 0; i < node->n_items; i++) {
        node_clear(&node->items[i]);
        if (node->keys)
            free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->key_lines);
    free(node->key_columns);
    memset(node, 0, sizeof *node);
}

void kseg_yaml_document_init(kseg_yaml_document *document)
{
    memset(document, 0, sizeof *document);
}

void kseg_yaml_document_destroy(kseg_yaml_document *document)
{
    if (!document)
        return;
    node_clear(document->root);
    free(document->root);
    free(document->source);
    memset(document, 0, sizeof *document);
}

/* ---------------------------------------------------------------- loading */

typedef struct loader {
    yaml_parser_t parser;
    const char *source;
    const char *text; /* the input, to place reader errors that come only with a byte offset */
    size_t length;
    kseg_error *error;
} loader;

/* Line and column (1-based, columns in characters) of a byte offset into the UTF-8 text. */
static void offset_position(const loader *l, size_t offset, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < l->length; i++) {
        unsigned char c = (unsigned char)l->text[i];
        if (c == '\n') {
            (*line)++;
            *column = 1;
        } else if ((c & 0xC0) != 0x80) /* continuation bytes belong to the previous character */
            (*column)++;
    }
}

/* Turns libyaml's failure into a kseg error: "SOURCE:LINE:COLUMN: problem (context at ...)". */
static int parser_failure(loader *l)
{
    const yaml_parser_t *p = &l->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_MEMORY_ERROR)
        return kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory while parsing YAML",
                              l->source);
    if (p->error == YAML_READER_ERROR) {
        /* The reader (encoding checks) knows only the byte offset and the offending value. */
        size_t line, column;
        offset_position(l, p->problem_offset, &line, &column);
        if (p->problem_value >= 0)
            return kseg_error_set(l->error, KSEG_EFORMAT, "%s:%zu:%zu: %s (byte 0x%02x)",
                                  l->source, line, column, problem, (unsigned)p->problem_value);
        return kseg_error_set(l->error, KSEG_EFORMAT, "%s:%zu:%zu: %s", l->source, line, column,
                              problem);
    }
    size_t line = p->problem_mark.line + 1, column = p->problem_mark.column + 1;
    if (p->context)
        return kseg_error_set(l->error, KSEG_EFORMAT, "%s:%zu:%zu: %s (%s at line %zu, column %zu)",
                              l->source, line, column, problem, p->context,
                              p->context_mark.line + 1, p->context_mark.column + 1);
    return kseg_error_set(l->error, KSEG_EFORMAT, "%s:%zu:%zu: %s", l->source, line, column,
                          problem);
}

static int next_event(loader *l, yaml_event_t *event)
{
    if (!yaml_parser_parse(&l->parser, event))
        return parser_failure(l);
    return 0;
}

static int refuse_anchor(loader *l, const yaml_event_t *event, const yaml_char_t *anchor)
{
    if (!anchor)
        return 0;
    return kseg_error_set(l->error, KSEG_EFORMAT,
                          "%s:%zu:%zu: anchors (&%s) are not supported: write the value out where "
                          "it is used",
                          l->source, event->start_mark.line + 1, event->start_mark.column + 1,
                          (const char *)anchor);
}

/* A scalar's text as a C string; text with a NUL character in it (possible through a "\0"
   escape) could not be told apart from its shorter prefix, so it is refused. */
static int scalar_text(loader *l, const yaml_event_t *event, char **text)
{
    const char *value = (const char *)event->data.scalar.value;
    size_t length = event->data.scalar.length;
    if (memchr(value, '\0', length))
        return kseg_error_set(l->error, KSEG_EFORMAT,
                              "%s:%zu:%zu: a NUL character inside a scalar is not supported",
                              l->source, event->start_mark.line + 1, event->start_mark.column + 1);
    if (!(*text = strndup(value, length)))
        return kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory", l->source);
    return 0;
}

static int is_null_scalar(const yaml_event_t *event)
{
    if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || event->data.scalar.tag)
        return 0;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp((const char *)event->data.scalar.value, nulls[i]) == 0)
            return 1;
    return 0;
}

static int parse_node(loader *l, const yaml_event_t *start, size_t depth, kseg_yaml_node *node);

static int parse_sequence(loader *l, size_t depth, kseg_yaml_node *node)
{
    size_t capacity = 0;
    for (;;) {
        yaml_event_t event;
        int status = next_event(l, &event);
        if (!status && event.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&event);
            return 0;
        }
        if (!status && node->n_items == capacity) {
            size_t grown_capacity = capacity ? 2 * capacity : 4;
            kseg_yaml_node *grown = realloc(node->items, grown_capacity * sizeof *grown);
            if (grown) {
                node->items = grown;
                capacity = grown_capacity;
            } else
                status = kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory", l->source);
        }
        if (!status)
            status = parse_node(l, &event, depth + 1, &node->items[node->n_items]);
        yaml_event_delete(&event);
        if (status)
            return status;
        node->n_items++;
    }
}

/* One key of a mapping under duplicate detection: sorted by text, then by position. */
typedef struct key_entry {
    const char *key;
    size_t index;
} key_entry;

static int compare_keys(const void *a, const void *b)
{
    const key_entry *x = a, *y = b;
    int order = strcmp(x->key, y->key);
    if (order)
        return order;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Rejects a key given twice. Sorting keeps this O(n log n) for big mappings; of all the
   duplicated keys, the one whose second occurrence comes first in the file is reported, as a
   reader going down the file would meet it. */
static int check_duplicates(loader *l, const kseg_yaml_node *node)
{
    if (node->n_items < 2)
        return 0;
    key_entry *entries = malloc(node->n_items * sizeof *entries);
    if (!entries)
        return kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory", l->source);
    for (size_t i = 0; i < node->n_items; i++)
        entries[i] = (key_entry){node->keys[i], i};
    qsort(entries, node->n_items, sizeof *entries, compare_keys);
    size_t first = 0, second = SIZE_MAX;
    for (size_t i = 1; i < node->n_items; i++)
        if (strcmp(entries[i].key, entries[i - 1].key) == 0 &&
            (i < 2 || strcmp(entries[i - 2].key, entries[i].key) != 0) &&
            entries[i].index < second) {
            first = entries[i - 1].index;
            second = entries[i].index;
        }
    free(entries);
    if (second == SIZE_MAX)
        return 0;
    return kseg_error_set(l->error, KSEG_EFORMAT,
                          "%s:%zu:%zu: duplicate key '%.*s' (first given at line %zu, column %zu)",
                          l->source, node->key_lines[second], node->key_columns[second], QUOTE_MAX,
                          node->keys[second], node->key_lines[first], node->key_columns[first]);
}

static int grow_mapping(loader *l, kseg_yaml_node *node, size_t *capacity)
{
    size_t grown_capacity = *capacity ? 2 * *capacity : 4;
    kseg_yaml_node *items = realloc(node->items, grown_capacity * sizeof *items);
    if (items)
        node->items = items;
    char **keys = realloc(node->keys, grown_capacity * sizeof *keys);
    if (keys)
        node->keys = keys;
    size_t *lines = realloc(node->key_lines, grown_capacity * sizeof *lines);
    if (lines)
        node->key_lines = lines;
    size_t *columns = realloc(node->key_columns, grown_capacity * sizeof *columns);
    if (columns)
        node->key_columns = columns;
    /* Each array that did grow is kept, so nothing leaks when another failed. */
    if (!items || !keys || !lines || !columns)
        return kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory", l->source);
    *capacity = grown_capacity;
    return 0;
}

static int parse_mapping(loader *l, size_t depth, kseg_yaml_node *node)
{
    size_t capacity = 0;
    for (;;) {
        yaml_event_t key;
        int status = next_event(l, &key);
        if (status) {
            yaml_event_delete(&key);
            return status;
        }
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return check_duplicates(l, node);
        }
        size_t key_line = key.start_mark.line + 1, key_column = key.start_mark.column + 1;
        if (key.type == YAML_ALIAS_EVENT)
            status = kseg_error_set(l->error, KSEG_EFORMAT,
                                    "%s:%zu:%zu: aliases (*%s) are not supported: write the value "
                                    "out",
                                    l->source, key_line, key_column,
                                    (const char *)key.data.alias.anchor);
        else if (key.type != YAML_SCALAR_EVENT)
            status = kseg_error_set(l->error, KSEG_EFORMAT,
                                    "%s:%zu:%zu: mapping keys must be scalars, not %s", l->source,
                                    key_line, key_column,
                                    key.type == YAML_MAPPING_START_EVENT ? "a mapping"
                                                                         : "a sequence");
        else
            status = refuse_anchor(l, &key, key.data.scalar.anchor);
        if (!status && node->n_items == capacity)
            status = grow_mapping(l, node, &capacity);
        char *text = NULL;
        if (!status)
            status = scalar_text(l, &key, &text);
        yaml_event_delete(&key);
        if (status)
            return status;

        yaml_event_t value;
        status = next_event(l, &value);
        if (!status)
            status = parse_node(l, &value, depth + 1, &node->items[node->n_items]);
        yaml_event_delete(&value);
        if (status) {
            free(text);
            return status;
        }
        node->keys[node->n_items] = text;
        node->key_lines[node->n_items] = key_line;
        node->key_columns[node->n_items] = key_column;
        node->n_items++;
    }
}

/* Builds node from the event that starts it (the caller keeps and deletes start) and the events
   that follow. On failure node is left empty, with everything it held freed. */
static int parse_node(loader *l, const yaml_event_t *start, size_t depth, kseg_yaml_node *node)
{
    memset(node, 0, sizeof *node);
    node->line = start->start_mark.line + 1;
    node->column = start->start_mark.column + 1;
    int status;
    switch (start->type) {
    case YAML_ALIAS_EVENT:
        return kseg_error_set(l->error, KSEG_EFORMAT,
                              "%s:%zu:%zu: aliases (*%s) are not supported: write the value out",
                              l->source, node->line, node->column,
                              (const char *)start->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        node->kind = KSEG_YAML_SCALAR;
        if ((status = refuse_anchor(l, start, start->data.scalar.anchor)) ||
            (status = scalar_text(l, start, &node->value)))
            return status;
        node->is_null = is_null_scalar(start);
        return 0;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int sequence = start->type == YAML_SEQUENCE_START_EVENT;
        node->kind = sequence ? KSEG_YAML_SEQUENCE : KSEG_YAML_MAPPING;
        if ((status = refuse_anchor(l, start,
                                    sequence ? start->data.sequence_start.anchor
                                             : start->data.mapping_start.anchor)))
            return status;
        if (depth > MAX_DEPTH)
            return kseg_error_set(l->error, KSEG_EFORMAT,
                                  "%s:%zu:%zu: nesting deeper than %d levels is not supported",
                                  l->source, node->line, node->column, MAX_DEPTH);
        status = sequence ? parse_sequence(l, depth, node) : parse_mapping(l, depth, node);
        if (status)
            node_clear(node);
        return status;
    }
    default:
        return kseg_error_set(l->error, KSEG_EINTERNAL,
                              "%s:%zu:%zu: unexpected YAML event %d where a value should start",
                              l->source, node->line, node->column, (int)start->type);
    }
}

/* Runs the event stream: STREAM-START, at most one document holding one node, STREAM-END. */
static int load_stream(loader *l, kseg_yaml_document *document)
{
    yaml_event_t event;
    int status = next_event(l, &event);
    int type = event.type;
    yaml_event_delete(&event);
    if (status)
        return status;
    if (type != YAML_STREAM_START_EVENT)
        return kseg_error_set(l->error, KSEG_EINTERNAL, "%s: YAML stream does not start",
                              l->source);
    if ((status = next_event(l, &event))) {
        yaml_event_delete(&event);
        return status;
    }
    if (event.type == YAML_STREAM_END_EVENT) { /* nothing but comments and blank lines */
        yaml_event_delete(&event);
        return 0;
    }
    yaml_event_delete(&event); /* DOCUMENT-START */

    kseg_yaml_node *root = calloc(1, sizeof *root);
    if (!root)
        return kseg_error_set(l->error, KSEG_ENOMEM, "%s: out of memory", l->source);
    if (!(status = next_event(l, &event)))
        status = parse_node(l, &event, 1, root);
    yaml_event_delete(&event);
    if (status) {
        free(root);
        return status;
    }
    /* A document that is only "---" or "~" holds a null scalar: that is an empty document. */
    if (root->kind == KSEG_YAML_SCALAR && root->is_null) {
        node_clear(root);
        free(root);
    } else
        document->root = root;

    if ((status = next_event(l, &event))) { /* DOCUMENT-END */
        yaml_event_delete(&event);
        return status;
    }
    yaml_event_delete(&event);
    if ((status = next_event(l, &event))) {
        yaml_event_delete(&event);
        return status;
    }
    if (event.type == YAML_DOCUMENT_START_EVENT)
        status = kseg_error_set(l->error, KSEG_EFORMAT,
                                "%s:%zu:%zu: a second YAML document is not supported: a "
                                "configuration file holds exactly one",
                                l->source, event.start_mark.line + 1,
                                event.start_mark.column + 1);
    yaml_event_delete(&event);
    return status;
}

int kseg_yaml_load_string(const char *text, size_t length, const char *source,
                          kseg_yaml_document *document, kseg_error *error)
{
    kseg_yaml_document_init(document);
    source = source_name(source);
    if (!text && length)
        return kseg_error_set(error, KSEG_EINVAL, "%s: no text given (NULL with length %zu)",
                              source, length);
    if (!(document->source = strdup(source)))
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", source);
    loader l = {.source = document->source, .text = text ? text : "", .length = length,
                .error = error};
    if (!yaml_parser_initialize(&l.parser)) {
        kseg_yaml_document_destroy(document);
        return kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory starting the YAML parser",
                              source);
    }
    yaml_parser_set_input_string(&l.parser, (const unsigned char *)l.text, length);
    int status = load_stream(&l, document);
    yaml_parser_delete(&l.parser);
    if (status)
        kseg_yaml_document_destroy(document);
    return status;
}

int kseg_yaml_load_file(const char *path, kseg_yaml_document *document, kseg_error *error)
{
    kseg_yaml_document_init(document);
    if (!path)
        return kseg_error_set(error, KSEG_EINVAL, "no YAML file name given");
    FILE *file = fopen(path, "rb");
    if (!file)
        return kseg_error_set(error, errno == ENOENT ? KSEG_ENOENT : KSEG_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    int status = 0;
    char *text = NULL;
    struct stat info;
    if (fstat(fileno(file), &info) == 0 && S_ISDIR(info.st_mode)) {
        status = kseg_error_set(error, KSEG_EINVAL, "cannot read %s: it is a directory", path);
        goto done;
    }
    /* Read in chunks rather than trusting the size from stat: the file may be a pipe. */
    size_t length = 0, capacity = 0;
    for (;;) {
        if (length == capacity) {
            if (capacity >= MAX_FILE_BYTES) {
                status = kseg_error_set(error, KSEG_ETOOBIG,
                                        "%s: larger than %zu MiB, too big for a configuration file",
                                        path, MAX_FILE_BYTES >> 20);
                goto done;
            }
            size_t grown_capacity = capacity ? 2 * capacity : 16384;
            char *grown = realloc(text, grown_capacity);
            if (!grown) {
                status = kseg_error_set(error, KSEG_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            text = grown;
            capacity = grown_capacity;
        }
        size_t got = fread(text + length, 1, capacity - length, file);
        length += got;
        if (got == 0) {
            if (ferror(file)) {
                status = kseg_error_set(error, KSEG_EIO, "cannot read %s: %s", path,
                                        strerror(errno));
                goto done;
            }
            break;
        }
    }
    status = kseg_yaml_load_string(text, length, path, document, error);
done:
    free(text);
    fclose(file);
    return status;
}

/* ---------------------------------------------------------------- lookups */

const kseg_yaml_node *kseg_yaml_get(const kseg_yaml_node *mapping, const char *key)
{
    if (!mapping || mapping->kind != KSEG_YAML_MAPPING || !key)
        return NULL;
    for (size_t i = 0; i < mapping->n_items; i++)
        if (strcmp(mapping->keys[i], key) == 0)
            return &mapping->items[i];
    return NULL;
}

/* An absent section (node NULL) and an empty one ("cluster:" with nothing under it, a null
   scalar) have no keys to check: both pass, so callers can check an optional section without
   testing for it first. */
int kseg_yaml_check_keys(const kseg_yaml_node *node, const char *const *allowed,
                         size_t n_allowed, const char *source, const char *context,
                         kseg_error *error)
{
    source = source_name(source);
    const char *in = context ? " in " : "";
    if (!context)
        context = "";
    if (!node || (node->kind == KSEG_YAML_SCALAR && node->is_null))
        return 0;
    if (node->kind != KSEG_YAML_MAPPING)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%zu:%zu: expected a mapping%s%s, not %s",
                              source, node->line, node->column, in, context,
                              kind_name(node->kind));
    for (size_t i = 0; i < node->n_items; i++) {
        const char *key = node->keys[i];
        size_t a = 0;
        while (a < n_allowed && strcmp(key, allowed[a]) != 0)
            a++;
        if (a < n_allowed)
            continue;
        const char *nearest = kseg_yaml_nearest(key, allowed, n_allowed);
        if (nearest)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s:%zu:%zu: unknown key '%.*s'%s%s (did you mean '%s'?)",
                                  source, node->key_lines[i], node->key_columns[i], QUOTE_MAX, key,
                                  in, context, nearest);
        if (n_allowed == 0)
            return kseg_error_set(error, KSEG_EINVAL,
                                  "%s:%zu:%zu: unknown key '%.*s'%s%s (no keys are allowed here)",
                                  source, node->key_lines[i], node->key_columns[i], QUOTE_MAX, key,
                                  in, context);
        char list[300];
        kseg_yaml_join(list, sizeof list, allowed, n_allowed);
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%zu:%zu: unknown key '%.*s'%s%s (allowed keys: %s)", source,
                              node->key_lines[i], node->key_columns[i], QUOTE_MAX, key, in,
                              context, list);
    }
    return 0;
}

/* ---------------------------------------------------------------- typed reads */

/* The scalar text of node, or an error naming what was expected instead (a missing node, a
   collection, or a null such as "~" or nothing at all after the colon). */
static int scalar_of(const kseg_yaml_node *node, const char *source, const char *what,
                     const char *expected, const char **text, kseg_error *error)
{
    if (!node)
        return kseg_error_set(error, KSEG_EINVAL, "%s: %s is missing (expected %s)", source,
                              what, expected);
    if (node->kind != KSEG_YAML_SCALAR)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%zu:%zu: %s must be %s, not %s", source,
                              node->line, node->column, what, expected, kind_name(node->kind));
    if (node->is_null)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%zu:%zu: %s has no value (expected %s)",
                              source, node->line, node->column, what, expected);
    *text = node->value;
    return 0;
}

int kseg_yaml_string(const kseg_yaml_node *node, const char *source, const char *what,
                     const char **value, kseg_error *error)
{
    return scalar_of(node, source_name(source), what ? what : "the value", "text", value, error);
}

/* strto* skip leading white space and a quoted scalar may carry some; the whole text must be
   the number, so white space anywhere is refused. */
static int starts_blank(const char *text)
{
    return *text == ' ' || *text == '\t' || *text == '\n' || *text == '\r' || *text == '\v' ||
           *text == '\f';
}

int kseg_yaml_double(const kseg_yaml_node *node, const char *source, const char *what,
                     double *value, kseg_error *error)
{
    source = source_name(source);
    if (!what)
        what = "the value";
    const char *text = NULL;
    int status = scalar_of(node, source, what, "a number", &text, error);
    if (status)
        return status;
    char *end = NULL;
    errno = 0;
    double parsed = starts_blank(text) ? 0.0 : strtod(text, &end);
    if (!end || end == text || *end)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%zu:%zu: %s must be a number, not '%.*s'",
                              source, node->line, node->column, what, QUOTE_MAX, text);
    /* Overflow gives ±HUGE_VAL with ERANGE; "inf" and "nan" parse but are no use as a setting.
       An underflow to a tiny or zero value is accepted: it is the nearest double. */
    if (!isfinite(parsed))
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%zu:%zu: %s must be a finite number, not '%.*s'", source,
                              node->line, node->column, what, QUOTE_MAX, text);
    *value = parsed;
    return 0;
}

int kseg_yaml_int64(const kseg_yaml_node *node, const char *source, const char *what,
                    int64_t minimum, int64_t maximum, int64_t *value, kseg_error *error)
{
    source = source_name(source);
    if (!what)
        what = "the value";
    const char *text = NULL;
    int status = scalar_of(node, source, what, "an integer", &text, error);
    if (status)
        return status;
    char *end = NULL;
    errno = 0;
    long long parsed = starts_blank(text) ? 0 : strtoll(text, &end, 10);
    if (!end || end == text || *end)
        return kseg_error_set(error, KSEG_EINVAL, "%s:%zu:%zu: %s must be an integer, not '%.*s'",
                              source, node->line, node->column, what, QUOTE_MAX, text);
    if (errno == ERANGE || parsed < minimum || parsed > maximum)
        return kseg_error_set(error, KSEG_EINVAL,
                              "%s:%zu:%zu: %s must be between %" PRId64 " and %" PRId64
                              ", not %.*s",
                              source, node->line, node->column, what, minimum, maximum, QUOTE_MAX,
                              text);
    *value = (int64_t)parsed;
    return 0;
}

int kseg_yaml_bool(const kseg_yaml_node *node, const char *source, const char *what, int *value,
                   kseg_error *error)
{
    source = source_name(source);
    if (!what)
        what = "the value";
    const char *text = NULL;
    int status = scalar_of(node, source, what, "true or false", &text, error);
    if (status)
        return status;
    static const char *const truths[] = {"true", "yes", "on"};
    static const char *const falsities[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(text, truths[i]) == 0) {
            *value = 1;
            return 0;
        }
        if (strcasecmp(text, falsities[i]) == 0) {
            *value = 0;
            return 0;
        }
    }
    return kseg_error_set(error, KSEG_EINVAL,
                          "%s:%zu:%zu: %s must be true or false (or yes/no, on/off), not '%.*s'",
                          source, node->line, node->column, what, QUOTE_MAX, text);
}
