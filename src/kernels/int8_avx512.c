/* int8_avx512.c — int8-weight linear layer with AVX512_VNNI (vpdpbusd).
 *
 * vpdpbusd multiplies unsigned by signed bytes, so each activation row is quantised to
 * qx ∈ [-127, 127] and stored as u = qx + 128 ∈ [1, 255]; Σ u·qw = Σ qx·qw + 128·Σ qw, and the
 * second term is removed with the weight row sums computed at packing. The int32 sum is exact
 * (|Σ| ≤ 255·127·K < 2³¹ for K < 66000), so results are bit-identical to the portable code.
 * Micro-kernel 6×64: per 4 k it loads 4 weight vectors (64 columns × 4 k) and broadcasts one
 * 32-bit quad per row into 24 accumulators; the whole K runs in one call (integer sums cannot
 * be split across float stores without changing the result), a panel of K×64 bytes
 * staying in L2 while the rows of the task stream over it. On Intel (where gtr_wmat.no_prefetch
 * is off) a task's tiles also prefetch the next tile's outputs for writing and quantise the
 * rows of the thread's next task as they arrive (gtr_avx512_int8_ahead); AMD runs the tile
 * and the quantisation it was tuned with. */
#include "kernels/absmax_avx512.h"
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NR 64
#ifndef PF_K
#define PF_K 8 /* k quads the weights are prefetched ahead (2 KB) */
#endif

#define INLINE static inline __attribute__((always_inline))

/* A thread's scratch: a header, then two slots of t->mc rows each (the u8 codes, kp bytes a
 * row, then the row scales). A task's rows go to the slot the header names; while its tiles
 * run, the driver has the rows the thread will probably take next quantised into the other
 * (gtr_avx512_int8_ahead, one row at a time as their prefetch completes), and the next prep
 * starts from the rows already there. gtr_linear zeroes the header before each call
 * (gtr_linear_ukr.ws_clear). */
typedef struct {
    const float *x; /* the first of the rows quantised ahead (NULL: none) */
    size_t ldx;
    size_t done; /* rows [0, done) of them are in slot `slot` */
    size_t slot; /* the slot the next prep takes */
} ahead_hdr;
#define HDR_BYTES 64
_Static_assert(sizeof(ahead_hdr) <= HDR_BYTES, "scratch header");

static size_t slot_bytes(size_t mc, size_t kp) { return (mc * kp + 63) / 64 * 64 + (mc * sizeof(float) + 63) / 64 * 64; }

/* this file's tile takes tasks of up to GTR_LINEAR_MC_MAX rows (gtr_wmat.mc) */
size_t gtr_avx512_int8_ws(size_t kp) { return HDR_BYTES + 2 * slot_bytes(GTR_LINEAR_MC_MAX, kp) + 64; }

static uint8_t *slot_at(void *ws, size_t slot, size_t mc, size_t kp)
{
    return (uint8_t *)ws + HDR_BYTES + slot * slot_bytes(mc, kp);
}

/* row i of a slot: u8 codes (qx + 128) of kp bytes (padding = 128, i.e. 0) and its scale,
 * exactly as gtr_q8 / gtr_q8_scale define them. packed (Intel): 64 values at a time narrowed
 * by gtr_avx512_q8_narrow64 instead of clamping, offsetting and narrowing each 16 (AMD keeps
 * the latter, which it was measured with) */
static void quant_row(const float *src, size_t k, size_t kp, uint8_t *base, size_t mc, size_t i, int packed)
{
    float *sx = (float *)(base + (mc * kp + 63) / 64 * 64);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127),
                  off = _mm512_set1_epi32(128);
    float inv;
    gtr_q8_scale(gtr_avx512_absmax(src, k), &sx[i], &inv);
    const __m512 vinv = _mm512_set1_ps(inv);
    uint8_t *d = base + i * kp;
    size_t c = 0;
    if (packed) {
        for (; c + 64 <= k; c += 64) {
            __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + c), vinv));
            __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + c + 16), vinv));
            __m512i q2 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + c + 32), vinv));
            __m512i q3 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + c + 48), vinv));
            _mm512_storeu_si512(d + c, gtr_avx512_q8_narrow64(q0, q1, q2, q3));
        }
    }
    for (; c < k; c += 16) {
        __mmask16 msk = k - c >= 16 ? 0xFFFF : (__mmask16)((1u << (k - c)) - 1);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(msk, src + c), vinv));
        q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
        _mm_mask_storeu_epi8(d + c, msk, _mm512_cvtepi32_epi8(q));
    }
    for (c = k; c < kp; c++) d[c] = 128;
}

/* Quantise rows [0, m) of x into the header's slot (those quantised ahead, if these are the
 * rows they were taken from, are kept) and point t at them; the other slot is for the rows
 * quantised ahead during this task. */
void gtr_avx512_int8_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    const size_t k = t->w->k, kp = t->w->kp;
    ahead_hdr *h = ws;
    uint8_t *dst = slot_at(ws, h->slot, t->mc, kp);
    size_t from = h->x == x && h->ldx == ldx ? GTR_MIN(h->done, m) : 0;
    t->a = dst;
    t->lda = kp;
    t->sx = (float *)(dst + (t->mc * kp + 63) / 64 * 64);
    const int packed = !t->w->no_prefetch;
    for (size_t i = from; i < m; i++) quant_row(x + i * ldx, k, kp, dst, t->mc, i, packed);
    h->x = NULL;
    h->done = 0;
    /* where rows are quantised ahead (the next-rows prefetch, not on AMD): the other slot */
    if (!t->w->no_prefetch) h->slot ^= 1;
}

/* Row `row` of the rows xn (ldx apart) the thread will probably take next, into the slot the
 * next prep takes; rows come in order from 0 */
void gtr_avx512_int8_ahead(const gtr_linear_task *t, const float *xn, size_t ldx, size_t row, void *ws)
{
    ahead_hdr *h = ws;
    if (h->x != xn || h->ldx != ldx) {
        h->x = xn;
        h->ldx = ldx;
        h->done = 0;
    }
    if (row != h->done || row >= t->mc) return;
    quant_row(xn + row * ldx, t->w->k, t->w->kp, slot_at(ws, h->slot, t->mc, t->w->kp), t->mc, row, 1);
    h->done = row + 1;
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
#define YPF_MAX (MR * 5) /* output lines of a tile: 64 floats a row, 5 lines where unaligned */

/* xpf, xpfn: lines of the rows the thread takes next, brought into L2 one per XPF_K k quads
 * (a burst of them would wait on the line fill buffers); their quantisation then reads them
 * from L2 instead of memory (on the Xeon of issue 19, ~8% of an int8 768 x 768 product).
 * ypf[0, ypfn): the output lines of the next tile, fetched for writing (prefetchw) one per
 * XPF_K k quads beside them (pf only): the epilogue's 24 stores then find their lines in L1
 * instead of each waiting on a read for ownership from L3 or memory (on that Xeon, 3072 <- 768
 * with 4096 tokens writes 50 MB of outputs: ~68% -> ~80% of the vpdpbusd peak) */
INLINE void ukr(const int mr, const int pf, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                size_t ncols, int accum, int relu, const char *xpf, size_t xpfn,
                const char *const *ypf, size_t ypfn)
{
    __m512i acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_si512();
    size_t k = 0;
    const size_t npf = pf ? GTR_MAX(xpfn, ypfn) : xpfn;
    for (size_t q = 0; q < npf && k + XPF_K <= K4; q++) {
        if (q < xpfn) _mm_prefetch(xpf + 64 * q, _MM_HINT_T1);
        if (pf && q < ypfn) __asm__ volatile("prefetchw %0" : : "m"(*ypf[q]));
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
#define UK(R, PF) ukr(R, PF, K4, a, lda, b, sx, sw, cs, c, ldc, ncols, accum, relu, xpf, xpfn, ypf, ypfn)
#define UK_ROWS(PF) GTR_MR6_SWITCH(mr, UK, PF)
static void ukr_nopf(int mr, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                     const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                     size_t ncols, int accum, int relu, const char *xpf, size_t xpfn,
                     const char *const *ypf, size_t ypfn)
{
    UK_ROWS(0)
}
static void ukr_any(int mr, size_t K4, const uint8_t *a, size_t lda, const int8_t *b,
                    const float *sx, const float *sw, const int32_t *cs, float *c, size_t ldc,
                    size_t ncols, int accum, int relu, const char *xpf, size_t xpfn,
                    const char *const *ypf, size_t ypfn)
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
    /* the lines of the next tile's outputs (where the weights are prefetched: not on AMD) */
    const char *ypf[YPF_MAX];
    size_t ypfn = 0;
    if (!w->no_prefetch && t->ynr <= MR && t->ync <= NR)
        for (size_t r = 0; r < t->ynr; r++) {
            const char *row = (const char *)(t->yn + r * t->ldy), *end = row + t->ync * sizeof(float);
            for (const char *l = (const char *)((uintptr_t)row & ~(uintptr_t)63); l < end; l += 64) ypf[ypfn++] = l;
        }
    (w->no_prefetch ? ukr_nopf : ukr_any)(mr, kc, xq + i0 * t->lda, t->lda, b, t->sx + i0, w->scales + p * NR,
            w->colsum + p * NR, t->y + i0 * t->ldy + p * NR, t->ldy,
            GTR_MIN(NR, w->n - p * NR), accum, relu, t->pf, t->pfn, ypf, ypfn);
}

const gtr_linear_ukr gtr_avx512_linear_int8 = {.mr = MR,
                                               .kc = 0,
                                               .mc_max = GTR_LINEAR_MC_MAX,
                                               .ws = gtr_avx512_int8_ws,
                                               .ws_clear = HDR_BYTES,
                                               .prep = gtr_avx512_int8_prep,
                                               .ahead = gtr_avx512_int8_ahead,
                                               .tile = tile};
