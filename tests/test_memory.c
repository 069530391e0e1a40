/* Tests of the memory budget (kseg/memory.h): saturating size arithmetic, the amounts in the
 * refusal message, and KSEG_MEMORY_LIMIT, whose malformed values must be reported, not taken
 * for a tiny limit. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kseg/memory.h"

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
