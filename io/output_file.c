/* Crash-safe outputs: the temporary-file protocol (unique temporary beside the final name, fsync,
 * rename, directory fsync) used by the HDF5 writer and by text outputs, and the registry of open
 * temporaries that a signal handler can remove. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "kseg/output.h"

#include "h5_internal.h"
#include "output_internal.h"

/* ---------------------------------------------------------------- registry of temporaries */

/* A signal handler may not lock or allocate, so the registry is a fixed array of slots whose
 * state changes with atomic operations: FREE → FILLING (a writer copies its path in) → READY
 * (the handler may unlink it) → FREE. A job has a handful of outputs open at once; if every
 * slot is taken, or a path is 1024 bytes or longer, that temporary simply is not removed on a
 * signal (the final file is safe anyway). Known limits: a signal that arrives between the
 * temporary's creation and its registration, or while a slot is being filled, leaves that one
 * temporary behind; the CLI keeps the handler on its main thread where it can (the rfm reader
 * thread blocks the signals), though OpenMP worker threads may still receive them. */
enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2 };
#define REGISTRY_SLOTS 32
#define REGISTRY_PATH_MAX 1024

static struct {
    int state;
    char path[REGISTRY_PATH_MAX];
} registry[REGISTRY_SLOTS];

static void registry_add(const char *path)
{
    size_t length = strlen(path);
    if (length >= REGISTRY_PATH_MAX)
        return;
    for (int slot = 0; slot < REGISTRY_SLOTS; slot++) {
        int expected = SLOT_FREE;
        if (__atomic_compare_exchange_n(&registry[slot].state, &expected, SLOT_FILLING, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            memcpy(registry[slot].path, path, length + 1);
            __atomic_store_n(&registry[slot].state, SLOT_READY, __ATOMIC_RELEASE);
            return;
        }
    }
}

static void registry_remove(const char *path)
{
    for (int slot = 0; slot < REGISTRY_SLOTS; slot++) {
        if (__atomic_load_n(&registry[slot].state, __ATOMIC_ACQUIRE) == SLOT_READY &&
            strcmp(registry[slot].path, path) == 0) {
            __atomic_store_n(&registry[slot].state, SLOT_FREE, __ATOMIC_RELEASE);
            return;
        }
    }
}

void kseg_remove_temporary_files(void)
{
    int saved = errno;
    for (int slot = 0; slot < REGISTRY_SLOTS; slot++) {
        if (__atomic_load_n(&registry[slot].state, __ATOMIC_ACQUIRE) == SLOT_READY)
            unlink(registry[slot].path);
    }
    errno = saved;
}

/* ---------------------------------------------------------------- the protocol */

/* The directory part of path ("." when there is none), malloc'd. */
static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return kseg_io_strdup(".");
    size_t length = slash == path ? 1 : (size_t)(slash - path);
    char *directory = malloc(length + 1);
    if (directory) {
        memcpy(directory, path, length);
        directory[length] = '\0';
    }
    return directory;
}

/* Flushes a file or directory to stable storage. Some file systems refuse fsync on directories
   (EINVAL); the rename is then as durable as they make it, which is not an error. */
static int sync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return -1;
    int result = fsync(fd);
    if (result != 0 && directory && (errno == EINVAL || errno == EBADF))
        result = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

/* A 64-bit value that differs between processes and calls, for temporary names only (never for
   anything that must be reproducible). */
static uint64_t temp_name_entropy(void)
{
    static unsigned counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t x = ((uint64_t)now.tv_sec << 32) ^ (uint64_t)now.tv_nsec ^
                 ((uint64_t)getpid() << 16) ^
                 ((uint64_t)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 48);
    /* splitmix64 finalizer: spreads the bits so consecutive calls look unrelated. */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int kseg_io_temporary_create(const char *final_path, char **temporary_path, int *descriptor,
                             kseg_error *error)
{
    int status = 0;
    char *directory = NULL;
    struct stat info;

    *temporary_path = NULL;
    *descriptor = -1;
    if (!final_path || !*final_path)
        return kseg_error_set(error, KSEG_EINVAL, "no output file given");

    size_t path_length = strlen(final_path);
    if (final_path[path_length - 1] == '/' ||
        (stat(final_path, &info) == 0 && S_ISDIR(info.st_mode)))
        return kseg_error_set(error, KSEG_EINVAL,
                              "cannot write %s: is a directory (expected a file name)", final_path);

    /* The temporary file must live in the destination directory: rename is atomic only within
       one file system. Check the directory first to say precisely what is wrong. */
    directory = directory_of(final_path);
    if (!directory)
        return kseg_error_set(error, KSEG_ENOMEM, "out of memory");
    if (stat(directory, &info) != 0) {
        status = kseg_error_set(error, errno == ENOENT || errno == ENOTDIR ? KSEG_ENOENT : KSEG_EIO,
                                "cannot write %s: directory %s %s", final_path, directory,
                                errno == ENOENT || errno == ENOTDIR ? "does not exist"
                                                                    : strerror(errno));
        goto done;
    }
    if (!S_ISDIR(info.st_mode)) {
        status = kseg_error_set(error, KSEG_ENOENT, "cannot write %s: %s is not a directory",
                                final_path, directory);
        goto done;
    }
    if (access(directory, W_OK | X_OK) != 0) {
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: directory %s is not writable (%s)",
                                final_path, directory, strerror(errno));
        goto done;
    }

    /* ".NAME.tmp.PID.RANDOM" beside the final file: hidden, recognizable, and unique. O_EXCL
       reserves the name so that two writers never share a temporary file. */
    const char *slash = strrchr(final_path, '/');
    const char *name = slash ? slash + 1 : final_path;
    size_t prefix_length = (size_t)(name - final_path);
    size_t temp_size = path_length + 64;
    char *temporary = malloc(temp_size);
    if (!temporary) {
        status = kseg_error_set(error, KSEG_ENOMEM, "out of memory");
        goto done;
    }
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        snprintf(temporary, temp_size, "%.*s.%s.tmp.%ld.%016llx", (int)prefix_length, final_path,
                 name, (long)getpid(), (unsigned long long)temp_name_entropy());
        fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        status = kseg_error_set(error, KSEG_EIO,
                                "cannot write %s: cannot create a temporary file in %s: %s",
                                final_path, directory, strerror(errno));
        free(temporary);
        goto done;
    }
    registry_add(temporary);
    *temporary_path = temporary;
    *descriptor = fd;
done:
    free(directory);
    return status;
}

int kseg_io_temporary_publish(const char *temporary_path, const char *final_path,
                              kseg_error *error)
{
    int status = 0;
    if (sync_path(temporary_path, 0) != 0) {
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: flushing %s failed: %s",
                                final_path, temporary_path, strerror(errno));
        kseg_io_temporary_discard(temporary_path);
        return status;
    }
    if (rename(temporary_path, final_path) != 0) {
        status = kseg_error_set(error, KSEG_EIO, "cannot write %s: renaming %s failed: %s",
                                final_path, temporary_path, strerror(errno));
        kseg_io_temporary_discard(temporary_path);
        return status;
    }
    registry_remove(temporary_path);
    /* The rename is durable only once the directory entry is on disk too. */
    char *directory = directory_of(final_path);
    if (directory && sync_path(directory, 1) != 0)
        status = kseg_error_set(error, KSEG_EIO, "wrote %s but flushing directory %s failed: %s",
                                final_path, directory, strerror(errno));
    free(directory);
    return status;
}

void kseg_io_temporary_discard(const char *temporary_path)
{
    if (!temporary_path)
        return;
    unlink(temporary_path);
    registry_remove(temporary_path);
}

int kseg_output_check_space(const char *path, double bytes, int compressed, kseg_error *error)
{
    char *directory = directory_of(path);
    struct statvfs info;
    if (!directory || statvfs(directory, &info) != 0) {
        free(directory);
        return 0;
    }
    const double needed = compressed ? bytes / 10.0 : bytes;
    const double available = (double)info.f_bavail * (double)info.f_frsize;
    int status = 0;
    if (needed > available)
        status = kseg_error_set(error, KSEG_ETOOBIG,
                                "cannot write %s: it needs %s%.3g GB, but %s has %.3g GB free",
                                path, compressed ? "at least " : "about ", needed / 1e9,
                                directory, available / 1e9);
    free(directory);
    return status;
}

/* ---------------------------------------------------------------- text outputs */

int kseg_output_file_open(kseg_output_file *file, const char *path, kseg_error *error)
{
    if (!file)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_output_file_open: file is NULL");
    memset(file, 0, sizeof *file);
    char *temporary = NULL;
    int descriptor = -1;
    int status = kseg_io_temporary_create(path, &temporary, &descriptor, error);
    if (status)
        return status;
    file->path = kseg_io_strdup(path);
    file->stream = file->path ? fdopen(descriptor, "w") : NULL;
    if (!file->stream) {
        close(descriptor);
        kseg_io_temporary_discard(temporary);
        free(temporary);
        free(file->path);
        memset(file, 0, sizeof *file);
        return kseg_error_set(error, KSEG_ENOMEM, "cannot write %s: out of memory", path);
    }
    file->temporary_path = temporary;
    return 0;
}

int kseg_output_file_finish(kseg_output_file *file, kseg_error *error)
{
    if (!file || !file->temporary_path)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_output_file_finish: file is not open");
    if (!file->stream)
        return 0;
    /* Every step runs even after a failure, so the descriptor is always closed; the first
       errno is the one reported (a full disk shows up at fflush or fsync, rarely at fclose). */
    int failed = 0, reason = 0;
    if (ferror(file->stream)) {
        failed = 1;
        reason = errno ? errno : EIO;
    }
    if (fflush(file->stream) != 0 && !failed) {
        failed = 1;
        reason = errno;
    }
    if (fsync(fileno(file->stream)) != 0 && !failed) {
        failed = 1;
        reason = errno;
    }
    if (fclose(file->stream) != 0 && !failed) {
        failed = 1;
        reason = errno;
    }
    file->stream = NULL;
    if (failed)
        return kseg_error_set(error, KSEG_EIO, "cannot write %s: %s",
                              file->path, strerror(reason));
    return 0;
}

int kseg_output_file_commit(kseg_output_file *file, kseg_error *error)
{
    if (!file || !file->temporary_path)
        return kseg_error_set(error, KSEG_EINVAL, "kseg_output_file_commit: file is not open");
    int status = kseg_output_file_finish(file, error);
    if (status) {
        kseg_output_file_abort(file);
        return status;
    }
    status = kseg_io_temporary_publish(file->temporary_path, file->path, error);
    free(file->temporary_path);
    free(file->path);
    memset(file, 0, sizeof *file);
    return status;
}

void kseg_output_file_abort(kseg_output_file *file)
{
    if (!file)
        return;
    if (file->stream)
        fclose(file->stream);
    kseg_io_temporary_discard(file->temporary_path);
    free(file->temporary_path);
    free(file->path);
    memset(file, 0, sizeof *file);
}
