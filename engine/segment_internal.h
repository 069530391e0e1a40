/* Helpers shared by the segment files (segment_scheme.c, segment_naming.c, segment_merge.c,
 * segment_evaluate.c): arrays of owned names, the check that names are distinct, the check of a
 * scheme's segment ids and the comparator that sorts doubles. Internal to the engine. */
#ifndef KSEG_ENGINE_SEGMENT_INTERNAL_H
#define KSEG_ENGINE_SEGMENT_INTERNAL_H

#include <stddef.h>

#include "kseg/segment.h"

/* Frees names[0..n) and the array; NULL is fine. */
void kseg_segment_names_free(char **names, size_t n);

/* A malloc'd array of malloc'd copies of names[0..n), or NULL when out of memory. n = 0 gives a
 * one-element allocation so that NULL always means failure. */
char **kseg_segment_names_copy(const char *const *names, size_t n);

/* Looks for two equal names among names[0..n) (none may be NULL). Returns 1 and the two lowest
 * positions first < second of a repeated name, 0 when all are distinct, or -1 when out of memory.
 * Sorts positions, so a category dictionary of a million names is checked in n log n. */
int kseg_segment_names_find_duplicate(const char *const *names, size_t n, size_t *first,
                                      size_t *second);

/* Checks that every customer of scheme has a segment in [0, n_segments), since a scheme may come
 * from a file or a caller's hands; the message names function, the scheme and the row. */
int kseg_segment_check_scheme(const kseg_scheme *scheme, const char *function, kseg_error *error);

/* qsort comparator for doubles that are not NaN (ascending). */
int kseg_segment_compare_doubles(const void *a, const void *b);

#endif
