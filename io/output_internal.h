/* The temporary-file protocol shared by text outputs (io/output_file.c) and HDF5 results
 * (io/h5_write.c): create a unique temporary beside the final name, publish it by sync + rename
 * + directory sync, and keep a signal-safe registry of the temporaries still open. */
#ifndef KSEG_IO_OUTPUT_INTERNAL_H
#define KSEG_IO_OUTPUT_INTERNAL_H

#include "kseg/error.h"

/* Validates final_path and creates an empty temporary file for it with O_EXCL. *temporary_path
 * receives its malloc'd name and *descriptor its open descriptor (write-only). The temporary is
 * registered for kseg_remove_temporary_files. */
int kseg_io_temporary_create(const char *final_path, char **temporary_path, int *descriptor,
                             kseg_error *error);

/* Syncs temporary_path to disk, renames it to final_path and syncs the directory. On failure
 * the temporary file is removed. Unregisters it in both cases. */
int kseg_io_temporary_publish(const char *temporary_path, const char *final_path,
                              kseg_error *error);

/* Removes the temporary file and unregisters it. */
void kseg_io_temporary_discard(const char *temporary_path);

#endif /* KSEG_IO_OUTPUT_INTERNAL_H */
