/* A per-test scratch directory for the Criterion suites that write files: created before each
 * test (mkdtemp under /tmp, named after the suite), removed with its contents after it, and
 * scratch_path() for names inside it. Include after defining _GNU_SOURCE (for nftw and mkdtemp)
 * and declare the suite with KSEG_SCRATCH_SUITE(name). */
#ifndef KSEG_TESTS_SCRATCH_DIR_H
#define KSEG_TESTS_SCRATCH_DIR_H

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

static char scratch[256];
static const char *scratch_suite_name;

static void make_scratch(void)
{
    snprintf(scratch, sizeof scratch, "/tmp/kseg_test_%s.XXXXXX", scratch_suite_name);
    cr_assert_not_null(mkdtemp(scratch), "mkdtemp: %s", strerror(errno));
    /* Tests assert on kseg's own messages; HDF5's automatic stack printing would only add noise. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw)
{
    (void)info;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_scratch(void)
{
    if (scratch[0]) {
        chmod(scratch, 0700); /* a test may have made it read-only */
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* Declares the Criterion suite `name` with the scratch directory as its fixture. */
#define KSEG_SCRATCH_SUITE(name)                                                     \
    static void name##_init(void)                                                    \
    {                                                                                \
        scratch_suite_name = #name;                                                  \
        make_scratch();                                                              \
    }                                                                                \
    TestSuite(name, .init = name##_init, .fini = remove_scratch)

/* A path in the scratch directory; rotating static buffers so that several can be live. */
static const char *scratch_path(const char *name)
{
    static char buffers[8][1024];
    static int next;
    char *buffer = buffers[next++ % 8];
    snprintf(buffer, sizeof buffers[0], "%s/%s", scratch, name);
    return buffer;
}

#endif
