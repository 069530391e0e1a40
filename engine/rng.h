/* Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): every value is a pure
 * function of (seed, stream, index), so any row's random numbers can be computed by any thread or
 * rank in any order and the results never depend on how work is split. */
#ifndef KSEG_ENGINE_RNG_H
#define KSEG_ENGINE_RNG_H

#include <stdint.h>

/* Streams used by kseg; a new use gets a new constant so streams never overlap. Each stream's
 * index space is 64 bits. */
enum kseg_rng_stream {
    KSEG_STREAM_INIT_FIRST = 1,   /* k-means++ first center, + run index << 8 */
    KSEG_STREAM_INIT_TRIALS = 2,  /* k-means++ candidate draws, + run index << 8 */
    KSEG_STREAM_INIT_RANDOM = 3,  /* random init keys, + run index << 8 */
    KSEG_STREAM_INIT_PARALLEL = 5,        /* k-means|| draws, + run << 8 + (round + 1) << 40 */
    KSEG_STREAM_INIT_PARALLEL_REDUCE = 6, /* k-means|| reduction to k centers, + run << 8 */
    KSEG_STREAM_MINIBATCH = 7,            /* mini-batch row draws, + run index << 8 */
    KSEG_STREAM_GENERATE = 16,    /* synthetic data generators */
    KSEG_STREAM_GENERATE_AUX = 17
};

/* Transaction generator streams: this base + a purpose number (engine/generate_transactions.c).
 * A 64-bit constant, which an enum cannot portably hold. */
#define KSEG_STREAM_TRANSACTIONS ((uint64_t)0x5458 << 48)

typedef struct kseg_rng_block {
    uint32_t v[4];
} kseg_rng_block;

/* 128 random bits for (seed, stream, index). */
static inline kseg_rng_block kseg_rng_philox(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    kseg_rng_block block = {{c0, c1, c2, c3}};
    return block;
}

/* 64 random bits. */
static inline uint64_t kseg_rng_u64(uint64_t seed, uint64_t stream, uint64_t index)
{
    kseg_rng_block block = kseg_rng_philox(seed, stream, index);
    return ((uint64_t)block.v[0] << 32) | block.v[1];
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double kseg_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    return (double)(kseg_rng_u64(seed, stream, index) >> 11) * 0x1.0p-53;
}

/* Uniform double in (0, 1): never 0, so safe for logarithms. */
static inline double kseg_rng_uniform_open(uint64_t seed, uint64_t stream, uint64_t index)
{
    return ((double)(kseg_rng_u64(seed, stream, index) >> 11) + 0.5) * 0x1.0p-53;
}

#endif
