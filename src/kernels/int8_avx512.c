/* int8_avx512.c — int8-weight linear layer with AVX512_VNNI (vpdpbusd).
 *
 * vpdpbusd multiplies unsigned by signed bytes, so each activation row is quantised to
 * qx ∈ [-127, 127] and stored as u = qx + 128 ∈ [1, 255]; Σ u·qw = Σ qx·qw + 128·Σ qw, and the
 * second term is removed with the weight row sums computed at packing. The int32 sum is exact
 * (|Σ| ≤ 255·127·K < 2³¹ for K < 66000), so results are bit-identical to the portable code.
 * Micro-kernel 6×64: per 4 k it loads 4 weight vectors (64 columns × 4 k) and broadcasts one
 * 32-bit quad per row into 24 accumulators; the whole K runs in one call (integer sums cannot
 * be split across float stores without changing the result), a panel of K×64 bytes
 * staying in L2 while the rows of the task stream over it. */
#include "kernels/absmax_avx512.h"
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NR 64
#ifndef PF_K
#define PF_K 8 /* k quads the weights are prefetched ahead (2 KB) */
#endif

#define INLINE static inline __attribute__((always_inline))

/* this file's tile takes tasks of up to GTR_LINEAR_MC_MAX rows (gtr_wmat.mc) */
size_t gtr_avx512_int8_ws(size_t kp) { return (size_t)GTR_LINEAR_MC_MAX * (kp + sizeof(float)) + 64; }

/* Quantise rows of x: u8 codes (qx + 128) of kp bytes each (padding = 128, i.e. 0) for the
 * t->mc rows the scratch holds, then the row scales, exactly as gtr_q8 / gtr_q8_scale define
 * them. */
void gtr_avx512_int8_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    const size_t k = t->w->k, kp = t->w->kp;
    uint8_t *dst = ws;
    float *sx = (float *)(dst + (t->mc * kp + 63) / 64 * 64);
    t->a = dst;
    t->lda = kp;
    t->sx = sx;
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127),
                  off = _mm512_set1_epi32(128);
    for (size_t i = 0; i < m; i++) {
        const float *src = x + i * ldx;
        float inv;
        gtr_q8_scale(gtr_avx512_absmax(src, k), &sx[i], &inv);
        const __m512 vinv = _mm512_set1_ps(inv);
        uint8_t *d = dst + i * kp;
        size_t c;
        for (c = 0; c < k; c += 16) {
            __mmask16 msk = k - c >= 16 ? 0xFFFF : (__mmask16)((1u << (k - c)) - 1);
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(msk, src + c), vinv));
            q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
            _mm_mask_storeu_epi8(d + c, msk, _mm512_cvtepi32_epi8(q));
        }
        for (c = k; c < kp; c++) d[c] = 128;
    }
}

INLINE int32_t ld32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* one k quad of the tile: 4 weight vectors, mr row quads broadcast, 4·mr dot products */
INLINE void step(const int mr, const int pf, __m512i (*acc)[4], size_t k, const uint8_t *a, size_t lda,
                 const int8_t *b)
{
    /* the weight panel streams from L2 / L3: prefetch it where the CPU wants it (as
     * gemm_avx512.c) */
    if (pf) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(b + PF_K * 4 * NR + 64 * j), _MM_HINT_T0);
    }
    __m512i bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) bv[j] = _mm512_loadu_si512(b + 64 * j);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        __m512i av = _mm512_set1_epi32(ld32(a + (size_t)i * lda + 4 * k));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, bv[j]);
    }
}

#define XPF_K 8 /* k quads per line of the next rows prefetched */

/* xpf, xpfn: lines of the rows the thread takes next, brought into L2 one per XPF_K k quads
 * (a burst of them would wait on the line fill buffers); their quantisation then reads them
 * from L2 instead of memory (on the Xeon of issue 19, ~8% of an int8 768 x 768 product) */
INLINE void ukr(const int mr, const int pf, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                size_t ncols, int accum, int relu, const char *xpf, size_t xpfn)
{
    __m512i acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_si512();
    size_t k = 0;
    for (size_t q = 0; q < xpfn && k + XPF_K <= K4; q++) {
        _mm_prefetch(xpf + 64 * q, _MM_HINT_T1);
        for (int u = 0; u < XPF_K; u++, k++, b += 4 * NR) step(mr, pf, acc, k, a, lda, b);
    }
    for (; k < K4; k++, b += 4 * NR) step(mr, pf, acc, k, a, lda, b);
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        size_t c0 = 16 * (size_t)j;
        if (c0 >= ncols) break;
        __mmask16 m = ncols - c0 >= 16 ? 0xFFFF : (__mmask16)((1u << (ncols - c0)) - 1);
        __m512i comp = _mm512_slli_epi32(_mm512_loadu_si512(cs + c0), 7); /* 128 · Σ qw */
        __m512 swv = _mm512_loadu_ps(sw + c0);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            float *p = c + (size_t)i * ldc + c0;
            __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][j], comp));
            __m512 v = _mm512_mul_ps(f, _mm512_mul_ps(_mm512_set1_ps(sx[i]), swv));
            if (accum) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v);
            if (relu) v = _mm512_max_ps(zero, v);
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

/* with (PF = 1) and without (PF = 0) the weight prefetch */
#define UK(R, PF) ukr(R, PF, K4, a, lda, b, sx, sw, cs, c, ldc, ncols, accum, relu, xpf, xpfn)
#define UK_ROWS(PF) GTR_MR6_SWITCH(mr, UK, PF)
static void ukr_nopf(int mr, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                     const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                     size_t ncols, int accum, int relu, const char *xpf, size_t xpfn)
{
    UK_ROWS(0)
}
static void ukr_any(int mr, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                    const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                    size_t ncols, int accum, int relu, const char *xpf, size_t xpfn)
{
    UK_ROWS(1)
}

/* panel p, all of K (kc = kp / 4) */
static void tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                 int accum, int relu)
{
    (void)k0;
    const gtr_wmat *w = t->w;
    const uint8_t *xq = t->a;
    const int8_t *b = (const int8_t *)w->data + p * w->kp * NR;
    (w->no_prefetch ? ukr_nopf : ukr_any)(mr, kc, xq + i0 * t->lda, t->lda, b, t->sx + i0, w->scales + p * NR,
            w->colsum + p * NR, t->y + i0 * t->ldy + p * NR, t->ldy,
            GTR_MIN(NR, w->n - p * NR), accum, relu, t->pf, t->pfn);
}

const gtr_linear_ukr gtr_avx512_linear_int8 = {
    .mr = MR, .kc = 0, .mc_max = GTR_LINEAR_MC_MAX, .ws = gtr_avx512_int8_ws, .prep = gtr_avx512_int8_prep, .tile = tile};
