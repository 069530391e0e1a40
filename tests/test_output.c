/* Tests of crash-safe text outputs (kseg/output.h): nothing appears under the final name before
 * commit, an abort or a failure leaves an existing file untouched and no temporary behind, and
 * kseg_remove_temporary_files (the signal handlers' cleanup) removes exactly the open ones. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kseg/io.h"
#include "kseg/output.h"
#include "scratch_dir.h"

KSEG_SCRATCH_SUITE(output);

/* Number of entries in the scratch directory, hidden temporaries included. */
static int count_entries(void)
{
    DIR *directory = opendir(scratch);
    cr_assert_not_null(directory);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(directory)))
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
            count++;
    closedir(directory);
    return count;
}

static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

static char *read_text(const char *path)
{
    static char buffer[256];
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file, "%s does not exist", path);
    size_t length = fread(buffer, 1, sizeof buffer - 1, file);
    buffer[length] = '\0';
    fclose(file);
    return buffer;
}

Test(output, commit_replaces_the_file_only_at_commit)
{
    const char *path = scratch_path("table.csv");
    write_text(path, "old\n");
    kseg_output_file file;
    kseg_error error = {0};
    cr_assert_eq(kseg_output_file_open(&file, path, &error), 0, "%s", error.message);
    fputs("new\n", file.stream);
    cr_assert_str_eq(read_text(path), "old\n", "the final file changed before commit");
    cr_assert_eq(count_entries(), 2, "expected the old file and one temporary");
    cr_assert_eq(kseg_output_file_commit(&file, &error), 0, "%s", error.message);
    cr_assert_str_eq(read_text(path), "new\n");
    cr_assert_eq(count_entries(), 1, "the temporary file outlived the commit");
    cr_assert_null(file.temporary_path);
}

Test(output, abort_keeps_the_old_file_and_removes_the_temporary)
{
    const char *path = scratch_path("table.csv");
    write_text(path, "old\n");
    kseg_output_file file;
    kseg_error error = {0};
    cr_assert_eq(kseg_output_file_open(&file, path, &error), 0, "%s", error.message);
    fputs("half a row", file.stream);
    kseg_output_file_abort(&file);
    kseg_output_file_abort(&file); /* a released file may be aborted again */
    cr_assert_str_eq(read_text(path), "old\n");
    cr_assert_eq(count_entries(), 1);
}

Test(output, finish_then_commit_publishes_later)
{
    const char *path = scratch_path("later.csv");
    kseg_output_file file;
    kseg_error error = {0};
    cr_assert_eq(kseg_output_file_open(&file, path, &error), 0, "%s", error.message);
    fputs("row\n", file.stream);
    cr_assert_eq(kseg_output_file_finish(&file, &error), 0, "%s", error.message);
    cr_assert_null(file.stream);
    cr_assert_eq(access(path, F_OK), -1, "finish must not rename");
    cr_assert_eq(kseg_output_file_commit(&file, &error), 0, "%s", error.message);
    cr_assert_str_eq(read_text(path), "row\n");
}

Test(output, bad_destinations_are_named_and_leave_nothing)
{
    kseg_output_file file;
    kseg_error error = {0};
    cr_assert_eq(kseg_output_file_open(&file, scratch, &error), KSEG_EINVAL);
    cr_assert(strstr(error.message, "is a directory"), "%s", error.message);
    cr_assert_eq(kseg_output_file_open(&file, scratch_path("missing/x.csv"), &error), KSEG_ENOENT);
    cr_assert(strstr(error.message, "does not exist"), "%s", error.message);
    cr_assert(strstr(error.message, "missing"), "%s", error.message);
    write_text(scratch_path("plain"), "a file\n");
    cr_assert_eq(kseg_output_file_open(&file, scratch_path("plain/x.csv"), &error), KSEG_ENOENT);
    cr_assert(strstr(error.message, "is not a directory"), "%s", error.message);
    cr_assert_null(file.stream);
    cr_assert_eq(count_entries(), 1);
}

Test(output, full_disk_is_reported_at_commit_and_leaves_nothing)
{
    /* /dev/full fails every write with ENOSPC; swapping it in under the stream reproduces a
       disk that fills up while kseg writes, without needing a small file system. */
    const char *path = scratch_path("full.csv");
    write_text(path, "old\n");
    kseg_output_file file;
    kseg_error error = {0};
    cr_assert_eq(kseg_output_file_open(&file, path, &error), 0, "%s", error.message);
    FILE *full = freopen("/dev/full", "w", file.stream);
    cr_assert_not_null(full, "cannot open /dev/full");
    file.stream = full;
    fputs("this row does not fit\n", file.stream);
    cr_assert_eq(kseg_output_file_commit(&file, &error), KSEG_EIO);
    cr_assert(strstr(error.message, "No space left on device"), "%s", error.message);
    cr_assert(strstr(error.message, "full.csv"), "%s", error.message);
    cr_assert_str_eq(read_text(path), "old\n");
    cr_assert_eq(count_entries(), 1, "the temporary file outlived the failure");
}

Test(output, signal_cleanup_removes_open_temporaries_only)
{
    kseg_output_file text;
    kseg_h5_writer *writer = NULL;
    kseg_error error = {0};
    write_text(scratch_path("kept.csv"), "kept\n");
    cr_assert_eq(kseg_output_file_open(&text, scratch_path("a.csv"), &error), 0, "%s",
                 error.message);
    cr_assert_eq(kseg_h5_writer_open(&writer, scratch_path("b.h5"), &error), 0, "%s",
                 error.message);
    cr_assert_eq(count_entries(), 3);
    kseg_remove_temporary_files();
    cr_assert_eq(count_entries(), 1, "open temporaries were not removed");
    cr_assert_str_eq(read_text(scratch_path("kept.csv")), "kept\n");
    kseg_output_file_abort(&text);
    kseg_h5_writer_abort(writer);
    /* Released temporaries leave the registry: a later cleanup touches nothing. */
    write_text(scratch_path("after.csv"), "after\n");
    kseg_remove_temporary_files();
    cr_assert_eq(count_entries(), 2);
}
