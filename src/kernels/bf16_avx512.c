/* bf16_avx512.c — bfloat16-weight linear layer with AVX512_BF16 (vdpbf16ps).
 *
 * Activations are converted once per task to bf16 pairs (vcvtne2ps2bf16, round to nearest
 * even; denormals flushed first so the result never depends on how a CPU treats them), then a
 * 6×64 micro-kernel runs vdpbf16ps: per pair of k it loads 4 weight vectors (64 columns × 2 k)
 * and broadcasts one 32-bit pair per row, 24 accumulators deep — enough independent chains to
 * cover the instruction's latency at two per cycle. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NR 64
#define KC2 512 /* k pairs per block: 512×64 pairs = 128 KB of weights, L2-resident */

#define INLINE static inline __attribute__((always_inline))

size_t gtr_avx512_bf16_ws(size_t kp) { return (size_t)GTR_LINEAR_MC * kp * sizeof(uint16_t); }

/* x with float32 denormals replaced by signed zeros */
INLINE __m512 daz(__m512 x)
{
    __m512i xi = _mm512_castps_si512(x);
    __mmask16 normal = _mm512_test_epi32_mask(xi, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(
        _mm512_mask_blend_epi32(normal, _mm512_and_si512(xi, _mm512_set1_epi32((int)0x80000000u)), xi));
}

/* rows of x -> bf16 rows of kp values (zero padded), in the scratch */
void gtr_avx512_bf16_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    const size_t k = t->w->k, kp = t->w->kp;
    uint16_t *dst = ws;
    t->a = dst;
    t->lda = kp;
    for (size_t i = 0; i < m; i++) {
        const float *src = x + i * ldx;
        uint16_t *d = dst + i * kp;
        size_t c = 0;
        for (; c + 32 <= k; c += 32) {
            __m512 lo = daz(_mm512_loadu_ps(src + c)), hi = daz(_mm512_loadu_ps(src + c + 16));
            _mm512_storeu_si512(d + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        if (c < kp) {
            size_t r = k - c; /* < 32 real values, kp - c <= 32 slots */
            __m512 lo = daz(_mm512_maskz_loadu_ps((__mmask16)((1u << GTR_MIN(r, 16)) - 1), src + c));
            __m512 hi = r > 16 ? daz(_mm512_maskz_loadu_ps((__mmask16)((1u << (r - 16)) - 1), src + c + 16))
                               : _mm512_setzero_ps();
            __mmask32 sm = (kp - c) >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (kp - c)) - 1);
            _mm512_mask_storeu_epi16(d + c, sm, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

INLINE uint32_t ld32(const uint16_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE void ukr(const int mr, size_t K2, const uint16_t *a, size_t lda, const uint16_t *b, float *c,
                size_t ldc, size_t ncols, int accum, int relu)
{
    __m512 acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < K2; k++, b += 2 * NR) {
        __m512bh bv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) bv[j] = (__m512bh)_mm512_loadu_si512(b + 32 * j);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ld32(a + (size_t)i * lda + 2 * k));
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            size_t c0 = 16 * (size_t)j;
            if (c0 >= ncols) break;
            __mmask16 m = ncols - c0 >= 16 ? 0xFFFF : (__mmask16)((1u << (ncols - c0)) - 1);
            float *p = c + (size_t)i * ldc + c0;
            __m512 v = acc[i][j];
            if (accum) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v);
            if (relu) v = _mm512_max_ps(zero, v);
            _mm512_mask_storeu_ps(p, m, v);
        }
}

static void ukr_any(int mr, size_t K2, const uint16_t *a, size_t lda, const uint16_t *b, float *c,
                    size_t ldc, size_t ncols, int accum, int relu)
{
    switch (mr) {
    case 6: ukr(6, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    case 5: ukr(5, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    case 4: ukr(4, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    case 3: ukr(3, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    case 2: ukr(2, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    default: ukr(1, K2, a, lda, b, c, ldc, ncols, accum, relu); break;
    }
}

/* pairs [k0, k0 + kc) of panel p */
static void tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                 int accum, int relu)
{
    const gtr_wmat *w = t->w;
    const uint16_t *xb = t->a;
    const uint16_t *b = (const uint16_t *)w->data + (p * (w->kp / 2) + k0) * 2 * NR;
    ukr_any(mr, kc, xb + i0 * t->lda + 2 * k0, t->lda, b, t->y + i0 * t->ldy + p * NR, t->ldy,
            GTR_MIN(NR, w->n - p * NR), accum, relu);
}

const gtr_linear_ukr gtr_avx512_linear_bf16 = {
    .mr = MR, .kc = KC2, .ws = gtr_avx512_bf16_ws, .prep = gtr_avx512_bf16_prep, .tile = tile};
