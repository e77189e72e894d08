/* score_avx512.c — index kernels for AVX-512: one 16-lane register per (query, document)
 * pair, so the fixed summation order of score.h is simply a register's FMA chain followed by
 * the halving horizontal sum. Register tiles of up to 4 queries x 4 documents (or 1 x 8 for a
 * lone query) reuse each load several times. */
#include "index/score.h"

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum { SRC_F32 = GTR_IX_F32, SRC_F16 = GTR_IX_F16, SRC_I8 = GTR_IX_I8 };

/* lanes l and l+8, then l and l+4, l and l+2, l and l+1: the order score.h defines */
static ALWAYS_INLINE float hsum16(__m512 v)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_movehdup_ps(c));
    return _mm_cvtss_f32(d);
}

static ALWAYS_INLINE __m512 load_src(int src, const void *base, size_t off, __mmask16 m, int masked)
{
    if (src == SRC_F32) {
        const float *p = (const float *)base + off;
        return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
    }
    if (src == SRC_F16) {
        const uint16_t *p = (const uint16_t *)base + off;
        __m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256((const __m256i *)p);
        return _mm512_cvtph_ps(h);
    }
    const int8_t *p = (const int8_t *)base + off;
    __m128i b = masked ? _mm_maskz_loadu_epi8(m, p) : _mm_loadu_si128((const __m128i *)p);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}

/* The sixteen sums of a 4 × 4 tile at once: acc[i][j] reduced in score.h's order (lanes l and
 * l+8, l+4, l+2, l+1), by shuffles that pair halves of two registers so one add serves two
 * pairs (15 adds and 30 shuffles for 16 pairs instead of 64 + 64 one pair at a time). Float
 * addition commutes, so a + b in either register position is the same number. The result
 * has query i's four scores in 128-bit lane i. */
static ALWAYS_INLINE __m512 sum_halves(__m512 a, __m512 b) /* l + (l+8) of a, then of b */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
static ALWAYS_INLINE __m512 sum_quarters(__m512 p, __m512 r) /* 8-lane groups: l + (l+4) */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(p, r, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(p, r, _MM_SHUFFLE(3, 1, 3, 1)));
}
static ALWAYS_INLINE __m512 sum_pairs2(__m512 t, __m512 u) /* 4-lane groups: l + (l+2) */
{
    return _mm512_add_ps(_mm512_shuffle_ps(t, u, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t, u, _MM_SHUFFLE(3, 2, 3, 2)));
}
static ALWAYS_INLINE __m512 sum_pairs1(__m512 v, __m512 w) /* 2-lane groups: l + (l+1) */
{
    return _mm512_add_ps(_mm512_shuffle_ps(v, w, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(v, w, _MM_SHUFFLE(3, 1, 3, 1)));
}
static ALWAYS_INLINE void store_4x4(__m512 acc[4][8], float *S, size_t lds)
{
    __m512 t[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) /* lane i of t[j]: the 4-lane partial sums of (i, j) */
        t[j] = sum_quarters(sum_halves(acc[0][j], acc[1][j]), sum_halves(acc[2][j], acc[3][j]));
    __m512 f = sum_pairs1(sum_pairs2(t[0], t[1]), sum_pairs2(t[2], t[3]));
    _mm_storeu_ps(S, _mm512_castps512_ps128(f));
    _mm_storeu_ps(S + lds, _mm512_extractf32x4_ps(f, 1));
    _mm_storeu_ps(S + 2 * lds, _mm512_extractf32x4_ps(f, 2));
    _mm_storeu_ps(S + 3 * lds, _mm512_extractf32x4_ps(f, 3));
}

/* QT queries x DT documents. D rows are dim elements apart. */
static ALWAYS_INLINE void tile(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                               size_t dim, float *S, size_t lds, size_t dim16, __mmask16 tail)
{
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < dim16; k += 16) {
        __m512 d[8];
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) d[j] = load_src(src, D, (size_t)j * dim + k, 0, 0);
#pragma GCC unroll 4
        for (int i = 0; i < QT; i++) {
            __m512 q = _mm512_load_ps(Q + (size_t)i * qs + k);
#pragma GCC unroll 8
            for (int j = 0; j < DT; j++) acc[i][j] = _mm512_fmadd_ps(q, d[j], acc[i][j]);
        }
    }
    if (tail) {
        __m512 d[8];
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) d[j] = load_src(src, D, (size_t)j * dim + dim16, tail, 1);
#pragma GCC unroll 4
        for (int i = 0; i < QT; i++) {
            /* query rows are zero-padded: the padding lanes compute fma(0, 0, acc) */
            __m512 q = _mm512_load_ps(Q + (size_t)i * qs + dim16);
#pragma GCC unroll 8
            for (int j = 0; j < DT; j++) acc[i][j] = _mm512_fmadd_ps(q, d[j], acc[i][j]);
        }
    }
    if (QT == 4 && DT == 4) {
        store_4x4(acc, S, lds);
        return;
    }
#pragma GCC unroll 4
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) S[(size_t)i * lds + j] = hsum16(acc[i][j]);
}

/* The tiles as the driver (score.c) calls them: 4 × 4 blocks, a lone query 1 × 8. */
static ALWAYS_INLINE void tile_at(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                                  size_t dim, float *S, size_t lds)
{
    tile(src, QT, DT, Q, qs, D, dim, S, lds, dim & ~(size_t)15, (__mmask16)((1u << (dim & 15)) - 1u));
}

GTR_IX_UKR(gtr_ix_avx512_ukr, tile_at, 4, 4, 8)
