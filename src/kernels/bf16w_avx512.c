/* bf16w_avx512.c — bf16 weights computed with float32 FMAs on AVX-512, for CPUs where
 * vdpbf16ps is slower than the two FMA pipes (Intel cores issue it at half their fp32 rate)
 * or absent: bf16 then saves memory without costing time. Each task rounds its rows of x to
 * bf16 (kept as float32), the panel hook widens one k block of the bf16 panel to float32
 * once per task, and the 6 × 64 float32 tile of gemm_avx512.c runs on both: the products of
 * bf16 values are exact in float32, so the result is the GTR_W_BF16 definition. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define NR 64
#define KC2 512 /* k pairs per block: a 1024 × 64 float panel (256 KB) in L2, as float32 blocks */

static size_t ws(size_t kp) { return gtr_bf16w_ws(kp, KC2, NR); }

/* float32 -> bf16 -> float32: denormals to signed zero, NaN stays NaN (quieted), else round
 * to nearest even, as gtr_bf16_round_daz */
static inline __m512 round_bf16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x), expo = _mm512_set1_epi32(0x7f800000),
                  hi = _mm512_set1_epi32((int)0xffff0000u);
    __mmask16 denorm = _mm512_testn_epi32_mask(u, expo);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    r = _mm512_mask_and_epi32(r, denorm, u, _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_and_si512(r, hi));
}

static void prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *wsp)
{
    const size_t k = t->w->k, kp = t->w->kp;
    float *dst = wsp;
    t->a = dst;
    t->lda = kp;
    t->b = dst + ((size_t)GTR_LINEAR_MC * kp + 15) / 16 * 16;
    for (size_t i = 0; i < m; i++) {
        const float *src = x + i * ldx;
        float *d = dst + i * kp;
        for (size_t c = 0; c < kp; c += 16) {
            __mmask16 ld = k > c ? (k - c >= 16 ? 0xFFFF : (__mmask16)((1u << (k - c)) - 1)) : 0;
            __mmask16 st = kp - c >= 16 ? 0xFFFF : (__mmask16)((1u << (kp - c)) - 1);
            _mm512_mask_storeu_ps(d + c, st, round_bf16(_mm512_maskz_loadu_ps(ld, src + c)));
        }
    }
}

/* k block [k0, k0 + kc) pairs of panel p -> [2·kc][64] floats in t->b */
static void panel(gtr_linear_task *t, size_t p, size_t k0, size_t kc)
{
    const gtr_wmat *w = t->w;
    const uint32_t *src = (const uint32_t *)w->data + (p * (w->kp / 2) + k0) * NR;
    float *dst = t->b;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (size_t q = 0; q < kc; q++, src += NR, dst += 2 * NR)
        for (int j = 0; j < NR; j += 16) {
            __m512i v = _mm512_load_si512(src + j);
            _mm512_store_si512(dst + j, _mm512_slli_epi32(v, 16));
            _mm512_store_si512(dst + NR + j, _mm512_and_si512(v, hi));
        }
}

static void tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                 int accum, int relu)
{
    gtr_bf16w_tile(t, mr, i0, p, k0, kc, accum, relu, gtr_avx512_f32_packed);
}

const gtr_linear_ukr gtr_avx512_linear_bf16w = {
    .mr = 6, .kc = KC2, .ws = ws, .prep = prep, .panel = panel, .tile = tile};
