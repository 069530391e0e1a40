/* How much memory kseg may use. Before a large allocation sized from the input (a dataset's
 * declared shape, k × d), kseg compares the amount with what the machine, the cgroup (Slurm,
 * containers) and the process limits leave, and refuses with both amounts named instead of
 * allocating and being killed by the out-of-memory killer halfway through a job. */
#ifndef KSEG_MEMORY_H
#define KSEG_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "kseg/error.h"
#include "kseg/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes this process can still expect to obtain: the smallest of
 *   - MemAvailable + SwapFree from /proc/meminfo (what the kernel can hand out without killing),
 *   - the cgroup's limit minus its usage (cgroup v2 memory.max, v1 memory.limit_in_bytes),
 *   - RLIMIT_AS and RLIMIT_DATA minus what the process already uses,
 *   - the environment variable KSEG_MEMORY_LIMIT (bytes, or with a K, M, G or T suffix, powers
 *     of 1024) minus what the process already uses: a cap a user sets for a shared node.
 * UINT64_MAX when none of them is known. */
KSEG_API uint64_t kseg_memory_available(void);

/* Returns 0 when bytes fit in kseg_memory_available(); otherwise KSEG_ETOOBIG with the message
 * "WHAT needs 1.5 TiB but only 20.3 GiB of memory is available" (what names the object, e.g.
 * "FILE:/customers/features (1000000000000 x 16 float32)"). bytes == UINT64_MAX means the size
 * overflowed while being computed. */
KSEG_API int kseg_memory_check(uint64_t bytes, const char *what, kseg_error *error);

/* a × b, or UINT64_MAX when the product overflows: sizes computed from untrusted shapes. */
static inline uint64_t kseg_memory_multiply(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* a + b, or UINT64_MAX when the sum overflows (or either is already UINT64_MAX). */
static inline uint64_t kseg_memory_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Parses a size: digits with an optional fraction, then optionally one of K, M, G, T (powers of
 * 1024, any case), an optional "i" and an optional "B", and nothing else ("512M", "1.5GiB",
 * "4096"). Returns 0 or KSEG_EINVAL; *bytes saturates at UINT64_MAX. KSEG_MEMORY_LIMIT and the
 * CLI's size options use it. */
KSEG_API int kseg_memory_parse_size(const char *text, uint64_t *bytes);

/* Formats bytes as "512 B", "12.0 MiB", "1.50 TiB" into buffer (at least 16 bytes). */
KSEG_API const char *kseg_memory_format(uint64_t bytes, char *buffer, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KSEG_MEMORY_H */
