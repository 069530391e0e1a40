/* An LD_PRELOAD library that makes one chosen allocation made by kseg's own code fail, to test
 * that every allocation failure is reported as an error rather than a crash. Allocations count
 * only when called from the main executable (where libkseg is linked statically), so the C
 * library, HDF5 and OpenMP keep working and the test exercises kseg's error paths alone.
 *
 *   KSEG_FAIL_ALLOCATION=N          the N-th counted allocation returns NULL (ENOMEM)
 *   KSEG_COUNT_ALLOCATIONS_FILE=F   at exit, write the number of counted allocations to F
 *   KSEG_FAIL_ALLOCATION_TRACE=1    print the failing allocation's call stack on stderr (to
 *                                   find the code behind a bad outcome; the test never sets it)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* glibc's own entry points: calling them directly avoids dlsym, which itself allocates. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static long fail_at = -1;
static long counted;
static uintptr_t executable_start, executable_end;
static const char *count_file;
static int trace;

/* The main executable's executable segment: the first object dl_iterate_phdr reports. */
static int find_executable(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type == PT_LOAD && (header->p_flags & PF_X)) {
            executable_start = info->dlpi_addr + header->p_vaddr;
            executable_end = executable_start + header->p_memsz;
        }
    }
    return 1; /* the first object only */
}

__attribute__((constructor)) static void setup(void)
{
    const char *text = getenv("KSEG_FAIL_ALLOCATION");
    if (text)
        fail_at = strtol(text, NULL, 10);
    count_file = getenv("KSEG_COUNT_ALLOCATIONS_FILE");
    trace = getenv("KSEG_FAIL_ALLOCATION_TRACE") != NULL;
    dl_iterate_phdr(find_executable, NULL);
}

__attribute__((destructor)) static void report(void)
{
    if (!count_file)
        return;
    FILE *file = fopen(count_file, "w");
    if (file) {
        fprintf(file, "%ld\n", __atomic_load_n(&counted, __ATOMIC_RELAXED));
        fclose(file);
    }
}

/* Counts a call from kseg's code and says whether this one must fail. */
static int should_fail(void *caller)
{
    uintptr_t address = (uintptr_t)caller;
    if (executable_end == 0 || address < executable_start || address >= executable_end)
        return 0;
    long number = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
    if (number != fail_at)
        return 0;
    if (trace) {
        void *frames[16];
        backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
    }
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t size)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_realloc(pointer, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size)
{
    return should_fail(__builtin_return_address(0)) ? NULL : __libc_memalign(alignment, size);
}

int posix_memalign(void **pointer, size_t alignment, size_t size)
{
    if (should_fail(__builtin_return_address(0)))
        return ENOMEM;
    void *memory = __libc_memalign(alignment, size);
    if (!memory)
        return ENOMEM;
    *pointer = memory;
    return 0;
}
