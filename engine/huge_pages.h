/* Transparent huge pages for the large buffers that are filled once per block or per run (read
 * buffers, scoring scratch, result columns): each 2 MiB page is then one fault instead of 512, and
 * one TLB entry. */
#ifndef KSEG_HUGE_PAGES_H
#define KSEG_HUGE_PAGES_H

#include <stddef.h>

/* Asks the kernel (madvise MADV_HUGEPAGE) to back the 2 MiB-aligned part of
 * [pointer, pointer + bytes) with huge pages when it is touched. Only a hint: nothing happens for
 * buffers under 4 MiB, on systems without the call, or where the kernel declines; the memory
 * itself is unchanged and is freed as usual. Call it right after the allocation, before the
 * buffer is written, so that its pages are faulted in as huge pages. */
void kseg_advise_huge_pages(void *pointer, size_t bytes);

/* malloc(bytes) with that advice: for buffers that are written in full soon after. NULL when out
 * of memory; free() releases it. */
void *kseg_malloc_huge_pages(size_t bytes);

#endif
