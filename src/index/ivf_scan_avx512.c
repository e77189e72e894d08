/* ivf_scan_avx512.c — the int8 list scan with AVX-512 VNNI (ivf_scan.h).
 *
 * vpdpbusd multiplies unsigned by signed bytes. The list codes c ∈ [-127, 127] become
 * u = c ^ 0x80 = c + 128 ∈ [1, 255] (one xor per 64 bytes, so the file keeps plain int8), the
 * query stays signed: Σ u·q = Σ c·q + 128·Σ q, and 128·qsum is subtracted at the end. Past
 * dim the codes are loaded as 0 (u = 128) against query padding 0, adding nothing. The
 * int32 sums are exact, so the results equal the portable kernel's bit for bit.
 *
 * Tile: up to 4 rows × 4 queries, 16 accumulators; per 64 bytes of dim it loads 4 code
 * vectors and 4 query vectors for 16 vpdpbusd, so a batch that probes a list several times
 * reads its codes from memory once (ivf.c groups queries by list). */
#include "index/ivf_scan.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
/* -O2 does not unroll the loops over the tile's rows and queries: the accumulators would
 * live on the stack */
#define UNROLL _Pragma("GCC unroll 4")
#define PREFETCH_ROWS 8 /* prefetch distance (rows ahead); past the list end it is harmless */

INLINE void tile(const int8_t *codes, size_t dim, const int8_t *const *q, const int32_t *qsum,
                 int32_t *out, size_t ldo, const int R, const int Q)
{
    __m512i acc[4][4];
    UNROLL for (int r = 0; r < R; r++)
        UNROLL for (int j = 0; j < Q; j++) acc[r][j] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    size_t d = 0;
    for (; d + 64 <= dim; d += 64) {
        __m512i qv[4], cv[4];
        UNROLL for (int j = 0; j < Q; j++) qv[j] = _mm512_load_si512((const void *)(q[j] + d));
        UNROLL for (int r = 0; r < R; r++) {
            const int8_t *p = codes + (size_t)r * dim + d;
            /* the next tile's bytes: one row is too short for the hardware prefetcher to
             * reach full speed by itself */
            _mm_prefetch((const char *)(p + PREFETCH_ROWS * dim), _MM_HINT_T0);
            cv[r] = _mm512_xor_si512(_mm512_loadu_si512((const void *)p), flip);
        }
        UNROLL for (int r = 0; r < R; r++)
            UNROLL for (int j = 0; j < Q; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], cv[r], qv[j]);
    }
    if (d < dim) {
        __mmask64 m = _cvtu64_mask64(~0ull >> (64 - (dim - d)));
        __m512i qv[4], cv[4];
        UNROLL for (int j = 0; j < Q; j++) qv[j] = _mm512_load_si512((const void *)(q[j] + d));
        UNROLL for (int r = 0; r < R; r++)
            cv[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, codes + (size_t)r * dim + d), flip);
        UNROLL for (int r = 0; r < R; r++)
            UNROLL for (int j = 0; j < Q; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], cv[r], qv[j]);
    }
    UNROLL for (int j = 0; j < Q; j++)
        UNROLL for (int r = 0; r < R; r++)
            out[(size_t)j * ldo + (size_t)r] = _mm512_reduce_add_epi32(acc[r][j]) - 128 * qsum[j];
}

/* One instance per shape, so every loop above is unrolled over registers. */
#define SHAPE(R, Q)                                                                            \
    static void tile_##R##_##Q(const int8_t *c, size_t dim, const int8_t *const *q,            \
                               const int32_t *qs, int32_t *out, size_t ldo)                    \
    {                                                                                          \
        tile(c, dim, q, qs, out, ldo, R, Q);                                                   \
    }
SHAPE(1, 1) SHAPE(1, 2) SHAPE(1, 3) SHAPE(1, 4)
SHAPE(2, 1) SHAPE(2, 2) SHAPE(2, 3) SHAPE(2, 4)
SHAPE(3, 1) SHAPE(3, 2) SHAPE(3, 3) SHAPE(3, 4)
SHAPE(4, 1) SHAPE(4, 2) SHAPE(4, 3) SHAPE(4, 4)
typedef void (*tile_fn)(const int8_t *, size_t, const int8_t *const *, const int32_t *, int32_t *, size_t);
static const tile_fn tiles[4][4] = {
    {tile_1_1, tile_1_2, tile_1_3, tile_1_4},
    {tile_2_1, tile_2_2, tile_2_3, tile_2_4},
    {tile_3_1, tile_3_2, tile_3_3, tile_3_4},
    {tile_4_1, tile_4_2, tile_4_3, tile_4_4},
};

void gtr_ivf_dots_avx512(const int8_t *codes, size_t nrows, size_t dim, const int8_t *const *q,
                         const int32_t *qsum, size_t nq, int32_t *out, size_t ldo)
{
    for (size_t j0 = 0; j0 < nq; j0 += 4) {
        size_t nj = nq - j0 < 4 ? nq - j0 : 4;
        for (size_t r0 = 0; r0 < nrows; r0 += 4) {
            size_t nr = nrows - r0 < 4 ? nrows - r0 : 4;
            tiles[nr - 1][nj - 1](codes + r0 * dim, dim, q + j0, qsum + j0, out + j0 * ldo + r0, ldo);
        }
    }
}
