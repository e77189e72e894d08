/* score_avx2.c — index kernels for AVX2 + FMA: each (query, document) pair keeps the 16
 * lanes of score.h in two 8-lane registers (lanes 0-7 and 8-15), so the first step of the
 * horizontal sum (lane l + lane l+8) is one add of the two. Tiles of 2 queries x 2 documents
 * (1 x 4 for a lone query) fit the 16 registers. */
#include "index/score.h"

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum { SRC_F32 = GTR_IX_F32, SRC_F16 = GTR_IX_F16, SRC_I8 = GTR_IX_I8 };

static ALWAYS_INLINE float hsum(__m256 lo, __m256 hi)
{
    __m256 a = _mm256_add_ps(lo, hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_movehdup_ps(c));
    return _mm_cvtss_f32(d);
}

/* 8 elements at off; with n < 8 only the first n are read, the rest are 0. */
static ALWAYS_INLINE __m256 load8(int src, const void *base, size_t off, int n)
{
    if (src == SRC_F32) {
        const float *p = (const float *)base + off;
        if (n >= 8) return _mm256_loadu_ps(p);
        __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
        return _mm256_maskload_ps(p, m);
    }
    if (src == SRC_F16) {
        const uint16_t *p = (const uint16_t *)base + off;
        if (n >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        uint16_t t[8] = {0};
        for (int i = 0; i < n; i++) t[i] = p[i];
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
    }
    const int8_t *p = (const int8_t *)base + off;
    if (n >= 8) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    int8_t t[16] = {0};
    for (int i = 0; i < n; i++) t[i] = p[i];
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)t)));
}

static ALWAYS_INLINE void tile(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                               size_t dim, float *S, size_t lds, size_t dim16)
{
    __m256 lo[2][4], hi[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 4
        for (int j = 0; j < DT; j++) lo[i][j] = hi[i][j] = _mm256_setzero_ps();
    for (size_t k = 0; k < dim16; k += 16) {
        __m256 dl[4], dh[4];
#pragma GCC unroll 4
        for (int j = 0; j < DT; j++) {
            dl[j] = load8(src, D, (size_t)j * dim + k, 8);
            dh[j] = load8(src, D, (size_t)j * dim + k + 8, 8);
        }
#pragma GCC unroll 2
        for (int i = 0; i < QT; i++) {
            __m256 ql = _mm256_load_ps(Q + (size_t)i * qs + k), qh = _mm256_load_ps(Q + (size_t)i * qs + k + 8);
#pragma GCC unroll 4
            for (int j = 0; j < DT; j++) {
                lo[i][j] = _mm256_fmadd_ps(ql, dl[j], lo[i][j]);
                hi[i][j] = _mm256_fmadd_ps(qh, dh[j], hi[i][j]);
            }
        }
    }
    if (dim16 < dim) {
        int n = (int)(dim - dim16);
        __m256 dl[4], dh[4];
#pragma GCC unroll 4
        for (int j = 0; j < DT; j++) {
            dl[j] = load8(src, D, (size_t)j * dim + dim16, n);
            dh[j] = n > 8 ? load8(src, D, (size_t)j * dim + dim16 + 8, n - 8) : _mm256_setzero_ps();
        }
#pragma GCC unroll 2
        for (int i = 0; i < QT; i++) {
            __m256 ql = _mm256_load_ps(Q + (size_t)i * qs + dim16), qh = _mm256_load_ps(Q + (size_t)i * qs + dim16 + 8);
#pragma GCC unroll 4
            for (int j = 0; j < DT; j++) {
                lo[i][j] = _mm256_fmadd_ps(ql, dl[j], lo[i][j]);
                hi[i][j] = _mm256_fmadd_ps(qh, dh[j], hi[i][j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 4
        for (int j = 0; j < DT; j++) S[(size_t)i * lds + j] = hsum(lo[i][j], hi[i][j]);
}

/* The tiles as the driver (score.c) calls them: 2 × 2 blocks, a lone query 1 × 4. */
static ALWAYS_INLINE void tile_at(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                                  size_t dim, float *S, size_t lds)
{
    tile(src, QT, DT, Q, qs, D, dim, S, lds, dim & ~(size_t)15);
}

GTR_IX_UKR(gtr_ix_avx2_ukr, tile_at, 2, 2, 4)
