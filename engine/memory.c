/* The memory budget: what the kernel, the cgroup and the process limits still allow, read when
 * a large allocation is about to be sized from the input, so that an impossible job is refused
 * with the amounts named rather than killed by the out-of-memory killer. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kseg/memory.h"

/* A value in kB from /proc/meminfo ("MemAvailable:   12345 kB"), or -1. */
static int64_t meminfo_value(const char *text, const char *key)
{
    const char *at = strstr(text, key);
    if (!at)
        return -1;
    at += strlen(key);
    while (*at == ' ' || *at == ':' || *at == '\t')
        at++;
    char *end = NULL;
    long long value = strtoll(at, &end, 10);
    return end == at || value < 0 ? -1 : (int64_t)value;
}

/* The first line of a small file, or "" when it cannot be read. */
static void read_first_line(const char *path, char *buffer, size_t size)
{
    buffer[0] = '\0';
    FILE *file = fopen(path, "r");
    if (!file)
        return;
    if (!fgets(buffer, (int)size, file))
        buffer[0] = '\0';
    fclose(file);
}

static uint64_t parse_unsigned(const char *text, int *ok)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    *ok = end != text && errno == 0;
    return value;
}

static uint64_t minimum(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* A value in kB from /proc/self/status ("VmRSS:  1234 kB") in bytes; 0 if unknown. */
static uint64_t status_bytes(const char *key)
{
    char text[8192];
    FILE *file = fopen("/proc/self/status", "r");
    if (!file)
        return 0;
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    int64_t value = meminfo_value(text, key);
    return value > 0 ? (uint64_t)value * 1024 : 0;
}

/* Bytes the process uses now: resident plus swapped out. */
static uint64_t process_usage(void)
{
    return status_bytes("VmRSS") + status_bytes("VmSwap");
}

/* What the environment's KSEG_MEMORY_LIMIT allows, UINT64_MAX when unset or unreadable. */
static uint64_t environment_limit(void)
{
    const char *text = getenv("KSEG_MEMORY_LIMIT");
    if (!text || !*text)
        return UINT64_MAX;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno != 0 || value < 0)
        return UINT64_MAX;
    double scale = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': scale = 1024.0; end++; break;
    case 'M': scale = 1024.0 * 1024; end++; break;
    case 'G': scale = 1024.0 * 1024 * 1024; end++; break;
    case 'T': scale = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (toupper((unsigned char)*end) == 'B' || toupper((unsigned char)*end) == 'I')
        end++;
    value *= scale;
    return value >= 1.8e19 ? UINT64_MAX : (uint64_t)value;
}

uint64_t kseg_memory_available(void)
{
    uint64_t available = UINT64_MAX;

    char meminfo[8192];
    FILE *file = fopen("/proc/meminfo", "r");
    if (file) {
        size_t length = fread(meminfo, 1, sizeof meminfo - 1, file);
        fclose(file);
        meminfo[length] = '\0';
        int64_t free_memory = meminfo_value(meminfo, "MemAvailable");
        int64_t free_swap = meminfo_value(meminfo, "SwapFree");
        if (free_memory >= 0)
            available = ((uint64_t)free_memory + (uint64_t)(free_swap > 0 ? free_swap : 0)) * 1024;
    }

    /* cgroup v2 (unified hierarchy as seen from inside the cgroup), then v1. "max" means none. */
    char line[128];
    int ok = 0;
    read_first_line("/sys/fs/cgroup/memory.max", line, sizeof line);
    uint64_t limit = parse_unsigned(line, &ok);
    if (!ok) {
        read_first_line("/sys/fs/cgroup/memory/memory.limit_in_bytes", line, sizeof line);
        limit = parse_unsigned(line, &ok);
        if (ok) {
            read_first_line("/sys/fs/cgroup/memory/memory.usage_in_bytes", line, sizeof line);
        }
    } else {
        read_first_line("/sys/fs/cgroup/memory.current", line, sizeof line);
    }
    if (ok && limit < ((uint64_t)1 << 62)) {
        int usage_ok = 0;
        uint64_t usage = parse_unsigned(line, &usage_ok);
        if (!usage_ok)
            usage = 0;
        available = minimum(available, limit > usage ? limit - usage : 0);
    }

    struct rlimit resource;
    if (getrlimit(RLIMIT_AS, &resource) == 0 && resource.rlim_cur != RLIM_INFINITY) {
        uint64_t used = status_bytes("VmSize"); /* the address space in use */
        available = minimum(available, resource.rlim_cur > used ? resource.rlim_cur - used : 0);
    }
    if (getrlimit(RLIMIT_DATA, &resource) == 0 && resource.rlim_cur != RLIM_INFINITY) {
        uint64_t used = process_usage();
        available = minimum(available, resource.rlim_cur > used ? resource.rlim_cur - used : 0);
    }
    uint64_t cap = environment_limit();
    if (cap != UINT64_MAX) {
        uint64_t used = process_usage();
        available = minimum(available, cap > used ? cap - used : 0);
    }
    return available;
}

const char *kseg_memory_format(uint64_t bytes, char *buffer, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buffer, size, "%" PRIu64 " B", bytes);
        return buffer;
    }
    double value = (double)bytes / 1024.0;
    int unit = 0;
    while (value >= 1024.0 && unit < 5) {
        value /= 1024.0;
        unit++;
    }
    snprintf(buffer, size, value < 10 ? "%.2f %s" : "%.1f %s", value, units[unit]);
    return buffer;
}

int kseg_memory_check(uint64_t bytes, const char *what, kseg_error *error)
{
    if (bytes == UINT64_MAX)
        return kseg_error_set(error, KSEG_ETOOBIG,
                              "%s: the size overflows 64 bits and cannot be allocated", what);
    uint64_t available = kseg_memory_available();
    if (bytes <= available)
        return 0;
    char needed[32], have[32];
    return kseg_error_set(error, KSEG_ETOOBIG,
                          "%s needs %s but only %s of memory is available",
                          what, kseg_memory_format(bytes, needed, sizeof needed),
                          kseg_memory_format(available, have, sizeof have));
}
