/* Crash-safe output files: every file kseg writes goes to a temporary name beside its final one,
 * is flushed to disk, and only then renamed over the final name, so a reader, a crash or a full
 * disk never sees a half-written file. Text outputs (CSV, JSON) use kseg_output_file; HDF5
 * results use kseg_h5_writer (kseg/io.h), which follows the same protocol. */
#ifndef KSEG_OUTPUT_H
#define KSEG_OUTPUT_H

#include <stdio.h>

#include "kseg/error.h"
#include "kseg/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A text file being written. Caller-owned: kseg_output_file_open fills it, and exactly one of
 * kseg_output_file_commit or kseg_output_file_abort releases it. Write through stream. */
typedef struct kseg_output_file {
    FILE *stream;          /* open for writing on the temporary file; NULL once finished */
    char *path;            /* the final name */
    char *temporary_path;  /* ".NAME.tmp.PID.RANDOM" in the final name's directory */
} kseg_output_file;

/* Checks that path can be written (its directory exists and is writable, path is not a
 * directory) and creates the temporary file. On failure file is left empty and nothing exists
 * on disk. */
KSEG_API int kseg_output_file_open(kseg_output_file *file, const char *path, kseg_error *error);

/* Flushes the stream, syncs the temporary file to disk and closes it, without renaming it yet:
 * for outputs that must appear only after another file (an HDF5 result) is committed. Reports
 * write errors such as a full disk; after a failure only _abort is valid. */
KSEG_API int kseg_output_file_finish(kseg_output_file *file, kseg_error *error);

/* Finishes the file if that is not done yet, renames it over the final name, syncs the
 * directory, and releases file. On failure the temporary file is removed, an existing file at
 * the final name is untouched, and file is released all the same. */
KSEG_API int kseg_output_file_commit(kseg_output_file *file, kseg_error *error);

/* Closes and removes the temporary file and releases file. Safe on a released or zeroed file. */
KSEG_API void kseg_output_file_abort(kseg_output_file *file);

/* Refuses (KSEG_ETOOBIG) to start writing path when its directory has less free space than the
 * file needs: about bytes, or at least a tenth of that when compressed (compression is rarely
 * better than 10x on kseg's numbers, so no file that would have fitted is refused). Returns 0
 * when it fits or the directory cannot be examined (the writer then says why). */
KSEG_API int kseg_output_check_space(const char *path, double bytes, int compressed,
                                     kseg_error *error);

/* Removes every temporary file that kseg has open in this process (text and HDF5 alike).
 * Async-signal-safe: meant for a SIGINT/SIGTERM handler, so an interrupted job leaves neither a
 * damaged final file nor a stray temporary one. (After SIGKILL, which no handler sees, a hidden
 * ".NAME.tmp.*" file may remain; the final file is still intact.) */
KSEG_API void kseg_remove_temporary_files(void);

#ifdef __cplusplus
}
#endif

#endif /* KSEG_OUTPUT_H */
