/* Tests of the memory budget (kseg/memory.h): saturating size arithmetic, the amounts in the
 * refusal message, and KSEG_MEMORY_LIMIT, whose malformed values must be reported, not taken
 * for a tiny limit; and the huge-page hint for large buffers (engine/huge_pages.h). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "huge_pages.h"
#include "kseg/memory.h"

/* The VmFlags line of the /proc/self/smaps mapping that holds address, into flags. */
static int mapping_flags(uintptr_t address, char *flags, size_t size)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    if (!smaps)
        return -1;
    char line[512];
    int inside = 0, found = -1;
    while (fgets(line, sizeof line, smaps)) {
        unsigned long begin, end;
        if (sscanf(line, "%lx-%lx ", &begin, &end) == 2)
            inside = address >= begin && address < end;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, size, "%s", line + 8);
            found = 0;
            break;
        }
    }
    fclose(smaps);
    return found;
}

Test(memory, large_buffers_are_advised_huge_pages_and_stay_usable)
{
    /* A buffer of 16 MiB at an address that is not 2 MiB-aligned: its aligned interior is marked
       for huge pages ("hg" in VmFlags) where the kernel has them, and every byte is still the
       caller's. Small buffers, NULL and zero sizes are left alone without error. */
    const size_t bytes = (size_t)16 << 20;
    unsigned char *buffer = malloc(bytes + 4096);
    cr_assert_not_null(buffer);
    unsigned char *start = buffer + 4096 - ((uintptr_t)buffer % 4096) + 123;
    kseg_advise_huge_pages(start, bytes - 4096);
    memset(start, 0x5a, bytes - 4096);
    for (size_t i = 0; i < bytes - 4096; i += 4093)
        cr_assert_eq(start[i], 0x5a);
    uintptr_t interior = ((uintptr_t)start + ((uintptr_t)2 << 20) - 1) & ~(((uintptr_t)2 << 20) - 1);
    char flags[512];
    cr_assert_eq(mapping_flags(interior, flags, sizeof flags), 0, "no mapping holds the buffer");
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
        cr_assert(strstr(flags, " hg") != NULL, "no huge-page advice on the buffer: VmFlags%s",
                  flags);
    free(buffer);

    unsigned char small[64];
    kseg_advise_huge_pages(small, sizeof small);
    kseg_advise_huge_pages(NULL, bytes);
    kseg_advise_huge_pages(small, 0);
    memset(small, 1, sizeof small);
    cr_assert_eq(small[63], 1);
}

Test(memory, saturating_arithmetic)
{
    cr_assert_eq(kseg_memory_multiply(3, 4), 12);
    cr_assert_eq(kseg_memory_multiply(UINT64_MAX / 2, 3), UINT64_MAX);
    cr_assert_eq(kseg_memory_multiply(0, UINT64_MAX), 0);
    cr_assert_eq(kseg_memory_add(UINT64_MAX - 1, 2), UINT64_MAX);
    cr_assert_eq(kseg_memory_add(UINT64_MAX, 0), UINT64_MAX);
    cr_assert_eq(kseg_memory_add(5, 6), 11);
}

Test(memory, formats_amounts)
{
    char buffer[32];
    cr_assert_str_eq(kseg_memory_format(512, buffer, sizeof buffer), "512 B");
    cr_assert_str_eq(kseg_memory_format(1536, buffer, sizeof buffer), "1.50 KiB");
    cr_assert_str_eq(kseg_memory_format((uint64_t)12 << 20, buffer, sizeof buffer), "12.0 MiB");
    cr_assert_str_eq(kseg_memory_format(64ull << 40, buffer, sizeof buffer), "64.0 TiB");
}

Test(memory, overflowed_size_is_refused)
{
    kseg_error error = {0};
    cr_assert_eq(kseg_memory_check(UINT64_MAX, "data", &error), KSEG_ETOOBIG);
    cr_assert(strstr(error.message, "overflows"), "%s", error.message);
}

Test(memory, environment_cap_binds_and_is_named)
{
    kseg_error error = {0};
    cr_assert_eq(setenv("KSEG_MEMORY_LIMIT", "64GiB", 1), 0);
    uint64_t capped = kseg_memory_available();
    cr_assert_leq(capped, 64ull << 30);
    cr_assert_eq(kseg_memory_check(1 << 20, "a small table", &error), 0, "%s", error.message);

    /* A cap below what the process already uses leaves nothing. */
    cr_assert_eq(setenv("KSEG_MEMORY_LIMIT", "1k", 1), 0);
    cr_assert_eq(kseg_memory_available(), 0);
    cr_assert_eq(kseg_memory_check(1 << 20, "FILE:/x (10 x 10 float32)", &error), KSEG_ETOOBIG);
    cr_assert(strstr(error.message, "FILE:/x (10 x 10 float32) needs 1.00 MiB but only 0 B"),
              "%s", error.message);
    cr_assert(strstr(error.message, "under KSEG_MEMORY_LIMIT"), "%s", error.message);
    unsetenv("KSEG_MEMORY_LIMIT");
}

Test(memory, malformed_environment_cap_is_reported)
{
    const char *const malformed[] = {"16 GiB", "8G5", "nan", "G", "-1", "1e9", "12X"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        kseg_error error = {0};
        cr_assert_eq(setenv("KSEG_MEMORY_LIMIT", malformed[i], 1), 0);
        cr_assert_eq(kseg_memory_check(1, "x", &error), KSEG_EINVAL, "'%s' accepted",
                     malformed[i]);
        cr_assert(strstr(error.message, "KSEG_MEMORY_LIMIT"), "%s", error.message);
    }
    const char *const accepted[] = {"1073741824", "1.5G", "512m", "2TiB", "64GB", "3gib"};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        kseg_error error = {0};
        cr_assert_eq(setenv("KSEG_MEMORY_LIMIT", accepted[i], 1), 0);
        cr_assert_eq(kseg_memory_check(1, "x", &error), 0, "'%s': %s", accepted[i],
                     error.message);
    }
    unsetenv("KSEG_MEMORY_LIMIT");
}
