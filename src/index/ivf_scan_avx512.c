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
/* Software prefetch distance, in rows ahead, into L2 (_MM_HINT_T1): at batch 1 the scan of a
 * cold list is memory-bound, and on AMD Zen 4 (1M x 768 clustered, one 768 KB list per query)
 * prefetching into L1 (T0) at 8 rows kept it at ~11 GB/s whatever the distance (the L1's miss
 * buffers are few), while T1 at 8-24 rows reached ~20 GB/s (70 -> 38 us per list; a plain
 * sequential read ran at ~23 GB/s). Past the list end it is harmless. */
#define PREFETCH_ROWS 12

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
            _mm_prefetch((const char *)(p + PREFETCH_ROWS * dim), _MM_HINT_T1);
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
    if (Q == 1) { /* one query (batch 1): the 4 rows' sums in one xmm */
        __m512i w[4];
        UNROLL for (int r = 0; r < 4; r++) w[r] = r < R ? acc[r < R ? r : 0][0] : _mm512_setzero_si512();
        __m512i p0 = _mm512_add_epi32(_mm512_unpacklo_epi32(w[0], w[1]), _mm512_unpackhi_epi32(w[0], w[1]));
        __m512i p1 = _mm512_add_epi32(_mm512_unpacklo_epi32(w[2], w[3]), _mm512_unpackhi_epi32(w[2], w[3]));
        __m512i p = _mm512_add_epi32(_mm512_unpacklo_epi64(p0, p1), _mm512_unpackhi_epi64(p0, p1));
        __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1));
        __m128i x = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        x = _mm_sub_epi32(x, _mm_set1_epi32(128 * qsum[0]));
        int32_t b4[4] __attribute__((aligned(16)));
        _mm_store_si128((__m128i *)b4, x);
        UNROLL for (int r = 0; r < R; r++) out[r] = b4[r];
        return;
    }
    /* The 16 horizontal sums in one transpose-and-add tree (45 instructions instead of 16
     * separate reductions): v[4j + r] = acc[r][j], sums[4j + r] = Σ v[4j + r]; unused
     * accumulators are zero and their sums are not stored. */
    __m512i v[16], a8[8], a4[4];
    UNROLL for (int j = 0; j < 4; j++)
        UNROLL for (int r = 0; r < 4; r++)
            v[4 * j + r] = (r < R && j < Q) ? acc[r < R ? r : 0][j < Q ? j : 0] : _mm512_setzero_si512();
    UNROLL for (int i = 0; i < 8; i++) /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
        a8[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                 _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    UNROLL for (int i = 0; i < 4; i++) /* per lane: the lane sums of v[4i .. 4i+3] */
        a4[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a8[2 * i], a8[2 * i + 1]),
                                 _mm512_unpackhi_epi64(a8[2 * i], a8[2 * i + 1]));
    __m512i t0 = _mm512_add_epi32(_mm512_shuffle_i32x4(a4[0], a4[1], 0x88),
                                  _mm512_shuffle_i32x4(a4[0], a4[1], 0xDD));
    __m512i t1 = _mm512_add_epi32(_mm512_shuffle_i32x4(a4[2], a4[3], 0x88),
                                  _mm512_shuffle_i32x4(a4[2], a4[3], 0xDD));
    __m512i sums = _mm512_add_epi32(_mm512_shuffle_i32x4(t0, t1, 0x88),
                                    _mm512_shuffle_i32x4(t0, t1, 0xDD));
    __m512i bias = _mm512_setzero_si512(); /* 128 * qsum[j] in lanes 4j .. 4j+3 */
    UNROLL for (int j = 0; j < Q; j++)
        bias = _mm512_mask_set1_epi32(bias, (__mmask16)(0xFu << (4 * j)), 128 * qsum[j]);
    /* (a plain store and scalar copies: vpcompressd to memory is microcoded on Zen 4) */
    int32_t buf[16] __attribute__((aligned(64)));
    _mm512_store_si512((void *)buf, _mm512_sub_epi32(sums, bias));
    UNROLL for (int j = 0; j < Q; j++)
        UNROLL for (int r = 0; r < R; r++) out[(size_t)j * ldo + (size_t)r] = buf[4 * j + r];
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

size_t gtr_ivf_above_avx512(const int32_t *dots, size_t n, float qscale, const float *scales,
                            float thr, uint32_t *idx, float *s_out)
{
    const __m512 qs = _mm512_set1_ps(qscale), t = _mm512_set1_ps(thr);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i ix = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t m = 0;
    for (size_t r = 0; r < n; r += 16) {
        __mmask16 in = (__mmask16)(n - r >= 16 ? 0xFFFFu : (1u << (n - r)) - 1u);
        __m512 sc = _mm512_maskz_loadu_ps(in, scales + r);
        __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(in, dots + r)),
                                 _mm512_mul_ps(qs, sc));
        __mmask16 k = _mm512_mask_cmp_ps_mask(in, s, t, _CMP_GE_OQ);
        if (k) {
            /* compress in registers, then plain stores (room for 16 past m: see ivf_scan.h) */
            _mm512_storeu_ps(s_out + m, _mm512_maskz_compress_ps(k, s));
            _mm512_storeu_si512((void *)(idx + m), _mm512_maskz_compress_epi32(k, ix));
            m += (size_t)__builtin_popcount(k);
        }
        ix = _mm512_add_epi32(ix, step);
    }
    return m;
}
