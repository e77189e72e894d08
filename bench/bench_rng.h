/* bench_rng.h — splitmix64, the seedable generator the synthetic-data benchmarks share, and the
 * kernel benchmarks' random matrices. */
#ifndef GTR_BENCH_RNG_H
#define GTR_BENCH_RNG_H

#include "core/core.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline uint64_t sm(uint64_t *s) { return gtr_splitmix64(s); }

/* n floats uniform in [-scale, scale), 64-byte aligned, from an LCG seeded with seed (the values
 * gemm_bench has always used); exits on out of memory (benchmarks only) */
static inline float *bench_rand_floats(size_t n, float scale, unsigned seed)
{
    float *p = gtr_malloc_aligned(n * sizeof(float), NULL);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)((s >> 40) & 0xffffff) / 8388608.0f - 1.0f);
    }
    return p;
}

#endif
