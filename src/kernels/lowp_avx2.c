/* lowp_avx2.c — int8 weight linear layer with AVX2 (no VNNI hardware): the fallback on
 * AVX2-only CPUs and on AVX-512 CPUs without VNNI (bf16 there: bf16w_avx2.c / _avx512.c).
 * int8: s8×s8 through vpmaddubsw(|qx|, sign(qw, qx)) + vpmaddwd: with |q| ≤ 127 a pair sum
 * is at most 2·127·127 < 2¹⁵, so nothing saturates and the int32 sum is exact. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 4
#define NR 16

#define INLINE static inline __attribute__((always_inline))

static size_t int8_ws(size_t kp) { return (size_t)GTR_LINEAR_MC * (kp + sizeof(float)) + 64; }

INLINE __m256i lmask(size_t r)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GTR_MIN(r, 8)), idx);
}

/* Epilogue: store v (8 columns from c0) with accumulate / relu. */
INLINE void store8(float *p, size_t cols, __m256 v, int accum, int relu)
{
    __m256i m = lmask(cols);
    if (accum) v = _mm256_add_ps(_mm256_maskload_ps(p, m), v);
    if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
    _mm256_maskstore_ps(p, m, v);
}

/* ---- int8 ------------------------------------------------------------------------------ */

INLINE int32_t ld32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE void ukr_i8(const int mr, size_t K4, const int8_t *a, size_t lda, const int8_t *b,
                   const float *sx, const float *sw, float *c, size_t ldc, size_t ncols, int accum,
                   int relu)
{
    __m256i acc[MR][2];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t k = 0; k < K4; k++, b += 4 * NR) {
        __m256i bv[2];
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++) bv[j] = _mm256_loadu_si256((const __m256i *)(b + 32 * j));
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            __m256i xq = _mm256_set1_epi32(ld32(a + (size_t)i * lda + 4 * k));
            __m256i ax = _mm256_abs_epi8(xq);
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
                __m256i p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(bv[j], xq));
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(p16, ones));
            }
        }
    }
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        if (8 * (size_t)j >= ncols) break;
        __m256 swv = _mm256_loadu_ps(sw + 8 * j);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[i][j]), _mm256_mul_ps(_mm256_set1_ps(sx[i]), swv));
            store8(c + (size_t)i * ldc + 8 * j, ncols - 8 * (size_t)j, v, accum, relu);
        }
    }
}

static void int8_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    const size_t k = t->w->k, kp = t->w->kp;
    int8_t *xq = ws;
    float *sx = (float *)((unsigned char *)ws + (GTR_LINEAR_MC * kp + 63) / 64 * 64);
    for (size_t i = 0; i < m; i++) {
        const float *src = x + i * ldx;
        float amax = 0, inv;
        for (size_t c = 0; c < k; c++) {
            float v = fabsf(src[c]);
            if (v > amax) amax = v;
        }
        gtr_q8_scale(amax, &sx[i], &inv);
        for (size_t c = 0; c < k; c++) xq[i * kp + c] = (int8_t)gtr_q8(src[c] * inv);
        for (size_t c = k; c < kp; c++) xq[i * kp + c] = 0;
    }
    t->a = xq;
    t->lda = kp;
    t->sx = sx;
}

/* panel p, all of K (kc = kp / 4 quads) */
static void int8_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,
                      size_t kc, int accum, int relu)
{
    (void)k0;
    const gtr_wmat *w = t->w;
    const int8_t *b = (const int8_t *)w->data + p * w->kp * NR;
    const int8_t *a = (const int8_t *)t->a + i0 * t->lda;
    const float *sx = t->sx + i0, *sw = w->scales + p * NR;
    float *c = t->y + i0 * t->ldy + p * NR;
    size_t ncols = GTR_MIN(NR, w->n - p * NR), lda = t->lda, ldy = t->ldy;
    switch (mr) {
    case 4: ukr_i8(4, kc, a, lda, b, sx, sw, c, ldy, ncols, accum, relu); break;
    case 3: ukr_i8(3, kc, a, lda, b, sx, sw, c, ldy, ncols, accum, relu); break;
    case 2: ukr_i8(2, kc, a, lda, b, sx, sw, c, ldy, ncols, accum, relu); break;
    default: ukr_i8(1, kc, a, lda, b, sx, sw, c, ldy, ncols, accum, relu); break;
    }
}

const gtr_linear_ukr gtr_avx2_linear_int8 = {
    .mr = MR, .kc = 0, .ws = int8_ws, .prep = int8_prep, .tile = int8_tile};
