/* bf16w_avx2.c — bf16 weights computed with float32 FMAs on AVX2 (as bf16w_avx512.c). A tile
 * that widened every weight pair with a shift / mask for every 4 rows ran at ~70% of the
 * float32 tile; widening a k block once per panel and task and running the 6 × 16 float32
 * tile keeps bf16 at float32 speed. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define NR 16
#define KC2 512 /* k pairs per block: a 1024 × 16 float panel (64 KB) */

static size_t ws(size_t kp) { return gtr_bf16w_ws(kp, KC2, NR); }

/* rows of x rounded to bf16, kept as float32, zero padded to kp (O(m·k) next to O(m·n·k)) */
static void prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *wsp)
{
    const size_t k = t->w->k, kp = t->w->kp;
    float *xb = wsp;
    for (size_t i = 0; i < m; i++) {
        for (size_t c = 0; c < k; c++) xb[i * kp + c] = gtr_bf16_round_daz(x[i * ldx + c]);
        for (size_t c = k; c < kp; c++) xb[i * kp + c] = 0;
    }
    t->a = xb;
    t->lda = kp;
    t->b = xb + ((size_t)GTR_LINEAR_MC * kp + 15) / 16 * 16;
}

/* k block [k0, k0 + kc) pairs of panel p -> [2·kc][16] floats in t->b */
static void panel(gtr_linear_task *t, size_t p, size_t k0, size_t kc)
{
    const gtr_wmat *w = t->w;
    const uint32_t *src = (const uint32_t *)w->data + (p * (w->kp / 2) + k0) * NR;
    float *dst = t->b;
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (size_t q = 0; q < kc; q++, src += NR, dst += 2 * NR)
        for (int j = 0; j < NR; j += 8) {
            __m256i v = _mm256_load_si256((const __m256i *)(const void *)(src + j));
            _mm256_store_si256((__m256i *)(void *)(dst + j), _mm256_slli_epi32(v, 16));
            _mm256_store_si256((__m256i *)(void *)(dst + NR + j), _mm256_and_si256(v, hi));
        }
}

static void tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                 int accum, int relu)
{
    gtr_bf16w_tile(t, mr, i0, p, k0, kc, accum, relu, gtr_avx2_f32_packed);
}

const gtr_linear_ukr gtr_avx2_linear_bf16w = {
    .mr = 6, .kc = KC2, .ws = ws, .prep = prep, .panel = panel, .tile = tile};
