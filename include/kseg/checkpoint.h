/* Checkpoint files of an interrupted k-means fit (kseg_kmeans_checkpoint, kseg/kmeans.h): one
 * HDF5 file, written atomically (temporary name, then rename) and read back with validation.
 * Part of libkseg's I/O, used by `kseg cluster --checkpoint/--resume`. */
#ifndef KSEG_CHECKPOINT_H
#define KSEG_CHECKPOINT_H

#include "kseg/export.h"
#include "kseg/error.h"
#include "kseg/kmeans.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format version written in the file's /checkpoint attribute format_version; a reader
 * refuses other versions. */
#define KSEG_CHECKPOINT_FORMAT_VERSION 1

/* Writes checkpoint to path (replacing it only when complete): group /checkpoint with the
 * scalars as attributes, the centers [k, d], the feature means [d] and the iteration tables
 * [n_iter, 8] as float64 datasets. input and options (may be NULL) are free text kept for the
 * messages: the input file and dataset, the command's options. */
KSEG_API int kseg_checkpoint_write(const char *path, const kseg_kmeans_checkpoint *checkpoint,
                                   const char *input, const char *options, kseg_error *error);

/* Reads a checkpoint written by kseg_checkpoint_write. A file that is not HDF5, lacks the
 * /checkpoint group or one of its items, or holds arrays of the wrong size fails with
 * KSEG_EFORMAT naming the file and what is missing. *checkpoint is freed with
 * kseg_kmeans_checkpoint_free; *input and *options (if not NULL) receive malloc'd copies of
 * the texts. */
KSEG_API int kseg_checkpoint_read(const char *path, kseg_kmeans_checkpoint **checkpoint,
                                  char **input, char **options, kseg_error *error);

#ifdef __cplusplus
}
#endif
#endif
