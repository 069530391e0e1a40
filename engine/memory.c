/* The memory budget: what the kernel, the cgroup and the process limits still allow, read when
 * a large allocation is about to be sized from the input, so that an impossible job is refused
 * with the amounts named rather than killed by the out-of-memory killer. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "kseg/memory.h"
#include "huge_pages.h"

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

/* What the process uses, in bytes, from one read of /proc/self/status (0 where unknown). */
typedef struct process_memory {
    uint64_t address_space; /* VmSize: what RLIMIT_AS counts */
    uint64_t data;          /* VmData: private writable mappings, what RLIMIT_DATA counts */
    uint64_t used;          /* VmRSS + VmSwap: what the process really occupies */
} process_memory;

static process_memory read_process_memory(void)
{
    process_memory memory = {0, 0, 0};
    char text[8192];
    FILE *file = fopen("/proc/self/status", "r");
    if (!file)
        return memory;
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    const char *const keys[4] = {"VmSize", "VmData", "VmRSS", "VmSwap"};
    uint64_t bytes[4];
    for (int i = 0; i < 4; i++) {
        int64_t kilobytes = meminfo_value(text, keys[i]);
        bytes[i] = kilobytes > 0 ? (uint64_t)kilobytes * 1024 : 0;
    }
    memory.address_space = bytes[0];
    memory.data = bytes[1];
    memory.used = bytes[2] + bytes[3];
    return memory;
}

/* The room a limit leaves when usage already counts against it. */
static uint64_t room_under(uint64_t limit, uint64_t usage)
{
    return limit > usage ? limit - usage : 0;
}

int kseg_memory_parse_size(const char *text, uint64_t *bytes)
{
    const char *at = text;
    double value = 0;
    int digits = 0;
    for (; *at >= '0' && *at <= '9'; at++, digits++)
        value = value * 10 + (*at - '0');
    if (*at == '.') {
        double scale = 0.1;
        for (at++; *at >= '0' && *at <= '9'; at++, digits++, scale /= 10)
            value += (*at - '0') * scale;
    }
    double multiplier = 1;
    switch (toupper((unsigned char)*at)) {
    case 'K': multiplier = 1024.0; at++; break;
    case 'M': multiplier = 1024.0 * 1024; at++; break;
    case 'G': multiplier = 1024.0 * 1024 * 1024; at++; break;
    case 'T': multiplier = 1024.0 * 1024 * 1024 * 1024; at++; break;
    default: break;
    }
    if (multiplier > 1 && toupper((unsigned char)*at) == 'I')
        at++;
    if (toupper((unsigned char)*at) == 'B')
        at++;
    if (digits == 0 || *at != '\0')
        return KSEG_EINVAL;
    value *= multiplier;
    *bytes = value >= 1.8e19 ? UINT64_MAX : (uint64_t)value;
    return 0;
}

/* KSEG_MEMORY_LIMIT in bytes (kseg_memory_parse_size). Returns UINT64_MAX when it is unset;
   *valid is 0 when it is set but malformed (then it is ignored, and kseg_memory_check says so
   rather than refusing everything with a limit the user did not mean). */
static uint64_t environment_limit(int *valid)
{
    *valid = 1;
    const char *text = getenv("KSEG_MEMORY_LIMIT");
    uint64_t bytes;
    if (!text || !*text)
        return UINT64_MAX;
    if (kseg_memory_parse_size(text, &bytes)) {
        *valid = 0;
        return UINT64_MAX;
    }
    return bytes;
}

/* A "key value" line of a cgroup memory.stat file, or 0. */
static uint64_t stat_value(const char *path, const char *key)
{
    char line[256];
    uint64_t value = 0;
    size_t key_length = strlen(key);
    FILE *file = fopen(path, "r");
    if (!file)
        return 0;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, key, key_length) == 0 && line[key_length] == ' ') {
            int ok = 0;
            value = parse_unsigned(line + key_length + 1, &ok);
            if (!ok)
                value = 0;
            break;
        }
    }
    fclose(file);
    return value;
}

/* Room left under one cgroup directory's memory limit, UINT64_MAX when it has none. Usage
   counts reclaimable page cache too (a job that has just read a big file looks full), so the
   inactive file pages, which the kernel drops before it kills anything, are not counted. */
static uint64_t cgroup_level_room(const char *directory, int unified)
{
    char path[PATH_MAX + 32], line[128];
    int ok = 0;
    /* A path too long to build is a level kseg cannot read: no limit known there. */
    if (snprintf(path, sizeof path, "%s/%s", directory,
                 unified ? "memory.max" : "memory.limit_in_bytes") >= (int)sizeof path)
        return UINT64_MAX;
    read_first_line(path, line, sizeof line);
    uint64_t limit = parse_unsigned(line, &ok); /* "max" (v2) does not parse: no limit */
    if (!ok || limit >= ((uint64_t)1 << 62))
        return UINT64_MAX;
    if (snprintf(path, sizeof path, "%s/%s", directory,
                 unified ? "memory.current" : "memory.usage_in_bytes") >= (int)sizeof path)
        return UINT64_MAX;
    read_first_line(path, line, sizeof line);
    uint64_t usage = parse_unsigned(line, &ok);
    if (!ok)
        usage = 0;
    if (snprintf(path, sizeof path, "%s/memory.stat", directory) >= (int)sizeof path)
        return UINT64_MAX;
    uint64_t inactive = stat_value(path, unified ? "inactive_file" : "total_inactive_file");
    usage = usage > inactive ? usage - inactive : 0;
    return limit > usage ? limit - usage : 0;
}

/* The smallest room under the memory limits of this process's cgroup and its ancestors
   (cgroup v2's "0::/path" in /proc/self/cgroup, or v1's memory controller line). Batch systems
   (Slurm) and container runtimes set the limit on some level of that path; where the cgroup
   namespace hides the path, the mount point itself is the process's cgroup. */
static uint64_t cgroup_room(void)
{
    char line[PATH_MAX + 64], relative[PATH_MAX] = "";
    int unified = 0, found = 0;
    FILE *file = fopen("/proc/self/cgroup", "r");
    if (!file)
        return UINT64_MAX;
    while (!found && fgets(line, sizeof line, file)) {
        line[strcspn(line, "\n")] = '\0';
        char *first = strchr(line, ':');
        char *second = first ? strchr(first + 1, ':') : NULL;
        if (!second)
            continue;
        *second = '\0';
        const char *controllers = first + 1;
        if (strncmp(line, "0:", 2) == 0 && *controllers == '\0') {
            unified = 1; /* v2; a v1 memory line, if any, wins below */
            snprintf(relative, sizeof relative, "%s", second + 1);
        } else if (strstr(controllers, "memory")) {
            unified = 0;
            found = 1;
            snprintf(relative, sizeof relative, "%s", second + 1);
        }
    }
    fclose(file);
    const char *base = unified ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    if (!unified && !found)
        return UINT64_MAX;
    char directory[PATH_MAX];
    struct stat info;
    if (snprintf(directory, sizeof directory, "%s%s", base, relative) >= (int)sizeof directory)
        return UINT64_MAX; /* a path too long to build: no limit known */
    if (stat(directory, &info) != 0 || !S_ISDIR(info.st_mode))
        snprintf(relative, sizeof relative, "/"); /* a cgroup namespace: the mount is ours */
    uint64_t room = UINT64_MAX;
    for (;;) {
        if (snprintf(directory, sizeof directory, "%s%s", base, relative) >=
            (int)sizeof directory)
            break;
        room = minimum(room, cgroup_level_room(directory, unified));
        char *slash = strrchr(relative, '/');
        if (!slash || (slash == relative && relative[1] == '\0'))
            break;
        if (slash == relative)
            relative[1] = '\0'; /* "/a" -> "/" */
        else
            *slash = '\0';
    }
    return room;
}

/* The budget, measured once per question: what is available, and whether KSEG_MEMORY_LIMIT is
 * well formed and is the limit that binds (so a refusal can name it). */
typedef struct memory_budget {
    uint64_t available;
    int cap_valid;
    int cap_binds;
} memory_budget;

static memory_budget measure_budget(void)
{
    memory_budget budget = {UINT64_MAX, 1, 0};

    char meminfo[8192];
    FILE *file = fopen("/proc/meminfo", "r");
    if (file) {
        size_t length = fread(meminfo, 1, sizeof meminfo - 1, file);
        fclose(file);
        meminfo[length] = '\0';
        int64_t free_memory = meminfo_value(meminfo, "MemAvailable");
        int64_t free_swap = meminfo_value(meminfo, "SwapFree");
        if (free_memory >= 0)
            budget.available =
                ((uint64_t)free_memory + (uint64_t)(free_swap > 0 ? free_swap : 0)) * 1024;
    }

    budget.available = minimum(budget.available, cgroup_room());

    process_memory process = read_process_memory();
    struct rlimit resource;
    if (getrlimit(RLIMIT_AS, &resource) == 0 && resource.rlim_cur != RLIM_INFINITY)
        budget.available =
            minimum(budget.available, room_under(resource.rlim_cur, process.address_space));
    /* Since Linux 4.7 RLIMIT_DATA counts private writable mappings: VmData, not residency. */
    if (getrlimit(RLIMIT_DATA, &resource) == 0 && resource.rlim_cur != RLIM_INFINITY)
        budget.available = minimum(budget.available, room_under(resource.rlim_cur, process.data));
    uint64_t cap = environment_limit(&budget.cap_valid);
    if (cap != UINT64_MAX) {
        uint64_t room = room_under(cap, process.used);
        budget.cap_binds = room <= budget.available;
        budget.available = minimum(budget.available, room);
    }
    return budget;
}

uint64_t kseg_memory_available(void)
{
    return measure_budget().available;
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
    memory_budget budget = measure_budget();
    if (!budget.cap_valid)
        return kseg_error_set(error, KSEG_EINVAL,
                              "KSEG_MEMORY_LIMIT=%s is not a size (expected bytes, or a number "
                              "with K, M, G or T, e.g. 8G)",
                              getenv("KSEG_MEMORY_LIMIT"));
    if (bytes <= budget.available)
        return 0;
    char needed[32], have[32];
    /* Name the cap when it is what binds, so a forgotten setting is easy to find. */
    return kseg_error_set(error, KSEG_ETOOBIG, "%s needs %s but only %s of memory is available%s",
                          what, kseg_memory_format(bytes, needed, sizeof needed),
                          kseg_memory_format(budget.available, have, sizeof have),
                          budget.cap_binds ? " under KSEG_MEMORY_LIMIT" : "");
}

/* Measured on the 1e7-row RFM benchmark (2 threads, one process per run): the read buffers,
   scoring scratch and result columns in huge pages took `kseg rfm`'s read and aggregate from
   about 0.15 s to 0.12 s and its scoring from about 0.048 s to 0.035 s, nearly all of it page
   faults of fresh memory. */
#define HUGE_PAGE_BYTES ((uintptr_t)2 << 20)

void kseg_advise_huge_pages(void *pointer, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (!pointer || bytes < 2 * HUGE_PAGE_BYTES)
        return;
    uintptr_t begin = ((uintptr_t)pointer + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
    uintptr_t end = ((uintptr_t)pointer + bytes) & ~(HUGE_PAGE_BYTES - 1);
    if (end > begin)
        (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE); /* a hint: failure is fine */
#else
    (void)pointer;
    (void)bytes;
#endif
}

void *kseg_malloc_huge_pages(size_t bytes)
{
    void *pointer = malloc(bytes);
    kseg_advise_huge_pages(pointer, bytes);
    return pointer;
}
