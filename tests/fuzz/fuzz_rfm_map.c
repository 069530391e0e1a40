/* libFuzzer target for the RFM segment-map parser (engine/rfm_map.c): the bytes are a map file,
 * parsed for several --bins values (5, the README's; 2 and 10, the built-in map's range; one
 * chosen by the first byte, up to the parser's limit of 100). An accepted map must be an exact
 * partition of the grid; a refused one must say why. */
#define _GNU_SOURCE /* mkdtemp, nftw (fuzz_common.h) */
#include "fuzz_common.h"

static void parse_and_check(const char *text, int32_t bins)
{
    kseg_rfm_map map;
    kseg_error error = {0};
    if (kseg_rfm_map_parse(&map, text, bins, "fuzz.map", &error) != 0) {
        FUZZ_CHECK(error.message[0] != '\0');
        FUZZ_CHECK(strlen(error.message) < KSEG_ERROR_MESSAGE_MAX);
        FUZZ_CHECK(map.names == NULL && map.cell_segment == NULL);
        return;
    }
    FUZZ_CHECK(map.bins == bins && map.n_segments >= 1);
    for (size_t s = 0; s < map.n_segments; s++)
        FUZZ_CHECK(map.names[s] != NULL && map.names[s][0] != '\0');
    for (size_t c = 0; c < (size_t)bins * (size_t)bins; c++)
        FUZZ_CHECK(map.cell_segment[c] >= 0 && (size_t)map.cell_segment[c] < map.n_segments);
    kseg_rfm_map_destroy(&map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser takes a C string: the bytes up to the first NUL. */
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    const int32_t chosen = size > 0 ? (int32_t)(data[0] % 104) - 1 : 5; /* -1..102 */
    const int32_t bins[] = {5, 2, 10, chosen};
    for (size_t b = 0; b < sizeof bins / sizeof bins[0]; b++)
        parse_and_check(text, bins[b]);
    free(text);
    return 0;
}
