/* Shared by the ThreadSanitizer drivers (plain main programs, because Criterion does not run
 * under TSan): the check that Archer, libomp's TSan tool, is loaded, failure bookkeeping, and the
 * bitwise comparison of a multi-threaded result with the single-threaded one. */
#ifndef KSEG_TSAN_DRIVER_H
#define KSEG_TSAN_DRIVER_H

#include <link.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every driver runs its scenarios at these thread counts; index 0 is the reference that the
 * others must equal bit for bit (kseg's promise: results do not depend on the thread count). The
 * machine may have fewer cores: TSan sees the interleavings of oversubscribed threads as well. */
static const int tsan_thread_counts[] = {1, 2, 4};
#define TSAN_THREAD_COUNTS ((int)(sizeof tsan_thread_counts / sizeof tsan_thread_counts[0]))

/* The largest of tsan_thread_counts: what per-thread scratch given to a kernel must hold. */
static inline int tsan_max_threads(void)
{
    int most = 1;
    for (int t = 0; t < TSAN_THREAD_COUNTS; t++)
        most = tsan_thread_counts[t] > most ? tsan_thread_counts[t] : most;
    return most;
}

static int tsan_failures;
static const char *tsan_driver_name = "tsan";

/* Records a failed check; the driver goes on, so that one run lists every difference. */
static inline void tsan_fail(const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static inline void tsan_fail(const char *file, int line, const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "%s: FAIL at %s:%d: ", tsan_driver_name, file, line);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    tsan_failures++;
}

#define TSAN_CHECK(condition, ...)                                                               \
    do {                                                                                         \
        if (!(condition))                                                                        \
            tsan_fail(__FILE__, __LINE__, __VA_ARGS__);                                          \
    } while (0)

/* A kseg call that must succeed: on failure the driver cannot go on meaningfully, so it stops
 * with the library's message. */
#define TSAN_OK(call, error)                                                                     \
    do {                                                                                         \
        int tsan_status_ = (call);                                                               \
        if (tsan_status_ != 0) {                                                                 \
            fprintf(stderr, "%s: FAIL at %s:%d: %s returned %d: %s\n", tsan_driver_name,         \
                    __FILE__, __LINE__, #call, tsan_status_, (error)->message);                  \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

/* Compares `bytes` bytes of a multi-threaded result with the single-threaded one; a difference
 * names the first differing byte. NULL on both sides counts as equal. */
#define TSAN_SAME(reference, actual, bytes, threads, ...)                                        \
    tsan_same_bytes(__FILE__, __LINE__, (reference), (actual), (bytes), (threads), __VA_ARGS__)

static inline void tsan_same_bytes(const char *file, int line, const void *reference,
                                   const void *actual, size_t bytes, int threads,
                                   const char *format, ...)
    __attribute__((format(printf, 7, 8)));
static inline void tsan_same_bytes(const char *file, int line, const void *reference,
                                   const void *actual, size_t bytes, int threads,
                                   const char *format, ...)
{
    if (reference == actual)
        return;
    char what[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof what, format, arguments);
    va_end(arguments);
    if (!reference || !actual) {
        tsan_fail(file, line, "%s: present with 1 thread but not with %d, or the other way round",
                  what, threads);
        return;
    }
    const unsigned char *a = reference, *b = actual;
    for (size_t i = 0; i < bytes; i++)
        if (a[i] != b[i]) {
            tsan_fail(file, line, "%s: %d threads differ from 1 thread at byte %zu of %zu", what,
                      threads, i, bytes);
            return;
        }
}

static inline int tsan_find_archer(struct dl_phdr_info *info, size_t size, void *found)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libarcher"))
        *(int *)found = 1;
    return 0;
}

/* Starts a driver: without Archer, TSan does not see libomp's barriers and reports every
 * hand-over between threads as a race, so a missing tool must stop the run with a clear message
 * rather than with a flood of false reports. Also makes sure OpenMP gives the thread counts
 * asked for: a run that silently used one thread would prove nothing. */
static inline void tsan_start(const char *name)
{
    tsan_driver_name = name;
    omp_set_dynamic(0);
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        team = omp_get_num_threads();
    }
    int archer = 0;
    dl_iterate_phdr(tsan_find_archer, &archer);
    if (!archer) {
        fprintf(stderr,
                "%s: libarcher.so is not loaded (set OMP_TOOL_LIBRARIES, as `ctest --preset "
                "tsan` does); without it TSan cannot see OpenMP's synchronization\n",
                name);
        exit(2);
    }
    if (team != 2) {
        fprintf(stderr, "%s: OpenMP gave %d threads where 2 were asked for\n", name, team);
        exit(2);
    }
}

/* Sets the thread count for what follows: the ICV that regions without num_threads use, and what
 * the kseg calls given n_threads = 0 resolve to. */
static inline void tsan_set_threads(int threads)
{
    omp_set_num_threads(threads);
}

/* Ends a driver: the exit status tells ctest whether every check passed. */
static inline int tsan_finish(void)
{
    if (tsan_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", tsan_driver_name, tsan_failures);
        return 1;
    }
    printf("%s: all checks passed\n", tsan_driver_name);
    return 0;
}

/* A small deterministic generator for driver inputs (splitmix64). */
static inline uint64_t tsan_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double tsan_uniform(uint64_t *state)
{
    return ((double)(tsan_next(state) >> 11) + 0.5) * 0x1.0p-53;
}

#endif
