/* Helpers shared by the YAML loader (io/yaml.c) and the rules reader (io/rules.c), io/ only and
 * never installed: the "did you mean" choice and the comma-separated lists that error messages
 * quote. */
#ifndef KSEG_IO_YAML_INTERNAL_H
#define KSEG_IO_YAML_INTERNAL_H

#include <stddef.h>

/* The candidate nearest to word by edit distance (the first one on ties), or NULL when even the
 * nearest is further than max(2, strlen(word) / 3): a far-off suggestion misleads more than it
 * helps, so the caller then lists every candidate instead. */
const char *kseg_yaml_nearest(const char *word, const char *const *candidates, size_t n);

/* Writes "a, b, c" into buffer; when the list does not fit it ends in ", ..." instead of being
 * cut in the middle of a word. */
void kseg_yaml_join(char *buffer, size_t size, const char *const *words, size_t n);

#endif
