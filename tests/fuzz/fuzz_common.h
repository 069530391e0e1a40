/* Shared by the libFuzzer targets in tests/fuzz: a per-process scratch directory (on tmpfs when
 * there is one, removed at exit), whole-file writes, a cursor that decodes the fuzzer's bytes
 * into choices, and the RFM pass that both the CSV and the HDF5 targets run on what they read.
 * Header-only so that each target stays one .c file; nothing here prints. */
#ifndef KSEG_TESTS_FUZZ_COMMON_H
#define KSEG_TESTS_FUZZ_COMMON_H

/* Each target defines _GNU_SOURCE (mkdtemp, nftw) before its first include. */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kseg/io.h"
#include "kseg/rfm.h"

/* A broken invariant is a bug even when no sanitizer notices it: trap, so that libFuzzer saves
   the input as a crash. */
#define FUZZ_CHECK(condition)                                                                \
    do {                                                                                     \
        if (!(condition))                                                                    \
            __builtin_trap();                                                                \
    } while (0)

/* ---------------------------------------------------------------- scratch directory */

static char fuzz_directory[512];

static inline int fuzz_remove_entry(const char *path, const struct stat *info, int flag,
                                    struct FTW *ftw)
{
    (void)info;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fuzz_remove_directory(void)
{
    if (fuzz_directory[0])
        nftw(fuzz_directory, fuzz_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The scratch directory of this process: under $KSEG_FUZZ_TMPDIR (scripts/fuzz.sh sets it),
   else /dev/shm (tmpfs: the atomic writer's fsync then costs nothing), else $TMPDIR or /tmp.
   Created on first use and removed at exit. */
static inline const char *fuzz_scratch(void)
{
    if (fuzz_directory[0])
        return fuzz_directory;
    const char *bases[] = {getenv("KSEG_FUZZ_TMPDIR"), "/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        if (!bases[i] || !*bases[i] || access(bases[i], W_OK | X_OK) != 0)
            continue;
        snprintf(fuzz_directory, sizeof fuzz_directory, "%s/kseg_fuzz.XXXXXX", bases[i]);
        if (mkdtemp(fuzz_directory)) {
            atexit(fuzz_remove_directory);
            return fuzz_directory;
        }
    }
    fuzz_directory[0] = '\0';
    __builtin_trap(); /* no writable directory: nothing can be fuzzed */
}

/* A path inside the scratch directory (static buffers, rotating, so a few can be live). */
static inline const char *fuzz_path(const char *name)
{
    static char buffers[4][600];
    static int next;
    char *buffer = buffers[next++ % 4];
    snprintf(buffer, sizeof buffers[0], "%s/%s", fuzz_scratch(), name);
    return buffer;
}

static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *file = fopen(path, "wb");
    FUZZ_CHECK(file != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, file) == size);
    FUZZ_CHECK(fclose(file) == 0);
}

/* The number of entries in the scratch directory other than the given names: a failed write
   must leave no temporary file behind (README: "a failed run leaves nothing behind"). */
static inline size_t fuzz_stray_files(const char *const *expected, size_t n_expected)
{
    DIR *directory = opendir(fuzz_scratch());
    FUZZ_CHECK(directory != NULL);
    size_t stray = 0;
    for (struct dirent *entry; (entry = readdir(directory)) != NULL;) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        size_t i = 0;
        while (i < n_expected && strcmp(entry->d_name, expected[i]) != 0)
            i++;
        stray += i == n_expected;
    }
    closedir(directory);
    return stray;
}

/* ---------------------------------------------------------------- decoding the input */

/* Reads choices from the front of the input; past the end every read gives 0, so any input
   decodes to something. */
typedef struct fuzz_cursor {
    const uint8_t *data;
    size_t size;
    size_t at;
} fuzz_cursor;

static inline uint8_t fuzz_u8(fuzz_cursor *c)
{
    return c->at < c->size ? c->data[c->at++] : 0;
}

static inline uint16_t fuzz_u16(fuzz_cursor *c)
{
    uint16_t low = fuzz_u8(c);
    return (uint16_t)(low | (uint16_t)fuzz_u8(c) << 8);
}

static inline uint64_t fuzz_u64(fuzz_cursor *c)
{
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value |= (uint64_t)fuzz_u8(c) << (8 * i);
    return value;
}

/* A choice in 0..n-1 (n > 0). */
static inline size_t fuzz_pick(fuzz_cursor *c, size_t n)
{
    return n > 256 ? fuzz_u16(c) % n : fuzz_u8(c) % n;
}

static inline size_t fuzz_left(const fuzz_cursor *c)
{
    return c->at < c->size ? c->size - c->at : 0;
}

/* ---------------------------------------------------------------- the RFM pass */

/* Runs the RFM aggregation (options from the cursor) over every row of an open transaction
   reader in blocks of block_rows, as `kseg rfm` does, and checks the table it returns: scores in
   1..bins, segments inside the map, customers sorted by id. Errors are fine; crashes are not. */
static inline void fuzz_rfm_pass(kseg_transaction_reader *reader, fuzz_cursor *c)
{
    kseg_error error = {0};
    kseg_rfm_options options;
    kseg_rfm_options_defaults(&options);
    options.n_threads = 1;
    uint8_t flags = fuzz_u8(c);
    if (flags & 1) {
        options.frequency_explicit = 1;
        options.frequency = (kseg_frequency_mode)(fuzz_u8(c) % 3);
    }
    options.monetary = flags & 2 ? KSEG_MONETARY_MEAN : KSEG_MONETARY_SUM;
    options.returns = flags & 4 ? KSEG_RETURNS_NET : KSEG_RETURNS_DROP;
    options.dedupe = (flags & 8) != 0;
    options.ties = flags & 16 ? KSEG_TIES_VALUE : KSEG_TIES_RANK;
    options.best = flags & 32 ? KSEG_BEST_LOW : KSEG_BEST_HIGH;
    if (flags & 64)
        options.min_price = (double)(int8_t)fuzz_u8(c) / 4.0;
    if (flags & 128)
        options.reference_time = (int64_t)fuzz_u64(c);
    options.bins = 2 + (int32_t)(fuzz_u8(c) % 9);

    size_t rows = kseg_transaction_reader_rows(reader);
    size_t block_rows = 1 + fuzz_pick(c, 64);

    /* A --where condition on a category the file has, with one of its values (or a value it
       lacks), once the first block shows the categories. */
    kseg_transactions block;
    char where_column[128] = "", where_value[128] = "";
    kseg_rfm_filter filter = {where_column, where_value};
    uint8_t where_choice = fuzz_u8(c);
    if (rows > 0 && (where_choice & 1) &&
        kseg_transaction_reader_read(reader, 0, 1, &block, &error) == 0 &&
        block.n_categories > 0) {
        const kseg_category_column *category =
            &block.categories[(where_choice >> 1) % block.n_categories];
        snprintf(where_column, sizeof where_column, "%s", category->name);
        if (category->n_names > 0 && (where_choice & 0x80) == 0)
            snprintf(where_value, sizeof where_value, "%s",
                     category->names[(where_choice >> 2) % category->n_names]);
        else
            snprintf(where_value, sizeof where_value, "no such value");
        if (where_column[0]) {
            options.filters = &filter;
            options.n_filters = 1;
        }
    }

    kseg_rfm_aggregator *aggregator = NULL;
    if (kseg_rfm_aggregator_create(&aggregator, &options, &error) != 0)
        return;
    int status = 0;
    for (size_t offset = 0; offset < rows && !status; offset += block_rows) {
        size_t count = rows - offset < block_rows ? rows - offset : block_rows;
        status = kseg_transaction_reader_read(reader, offset, count, &block, &error);
        if (status)
            break;
        /* The reader promises codes inside their dictionaries. */
        for (size_t k = 0; k < block.n_categories; k++)
            for (size_t i = 0; i < block.rows; i++)
                FUZZ_CHECK(block.categories[k].codes[i] >= 0 &&
                           (size_t)block.categories[k].codes[i] < block.categories[k].n_names);
        status = kseg_rfm_aggregator_add(aggregator, &block, &error);
    }
    kseg_rfm_table table;
    kseg_rfm_table_init(&table);
    if (!status && kseg_rfm_aggregator_finish(aggregator, &table, &error) == 0) {
        FUZZ_CHECK(table.n_customers > 0);
        for (size_t i = 0; i < table.n_customers; i++) {
            for (int k = 0; k < 3; k++)
                FUZZ_CHECK(table.scores[3 * i + k] >= 1 && table.scores[3 * i + k] <= table.bins);
            FUZZ_CHECK(table.segment[i] >= 0 && (size_t)table.segment[i] < table.map.n_segments);
            FUZZ_CHECK(i == 0 || table.customer_id[i - 1] < table.customer_id[i]);
        }
    }
    kseg_rfm_table_destroy(&table);
    kseg_rfm_aggregator_destroy(aggregator);
}

#endif
