/* gemm_avx512.c — float32 GEMM micro-kernels with AVX-512 for the drivers in gemm.c (the
 * packed-weight linear layer and the strided attention-sized sgemm_nt/nn/tn).
 *
 * Micro-kernel: 6 rows × 64 columns (24 zmm accumulators, 4 weight vectors, 1 broadcast).
 * Per k step it does 4 vector loads + 6 broadcasts for 24 FMAs, so two FMA pipes stay fed
 * from L1/L2 (measured ~100% of peak in L1 on Zen 4/5). Rows of X are broadcast straight
 * from the caller's matrix (no packing: six sequential streams), weights come from the packed
 * panel [k][64]. For gtr-t5-base shapes the whole K fits the k block (KC), so each
 * output tile is written once, with the epilogue (residual add, ReLU) fused into the store. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NV 4
#define NR (16 * NV)
#define KC 1024 /* k block: a 1024×64 float weight sliver (256 KB) stays in L2 */
#define PF_K 8  /* packed weights prefetched this many k steps ahead (2 KB) */

#define INLINE static inline __attribute__((always_inline))

static inline __mmask16 tail_mask(size_t cols) { return cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1); }
/* the columns of vector j that exist (none past ncols) */
static inline __mmask16 col_mask(size_t ncols, int j)
{
    size_t c0 = 16 * (size_t)j;
    return c0 < ncols ? tail_mask(ncols - c0) : 0;
}

/* The tile's accumulators: beta = 1 continues the sums already in C (a later k block, or the
 * residual of an ACCUM linear), so each output is one FMA chain over all of k whatever the
 * blocking; else they start at zero. ap[i]: row i of A. */
INLINE void tile_begin(__m512 acc[MR][NV], const float *ap[MR], const int mr, const int nv, const float *a,
                       size_t ars, const float *c, size_t ldc, size_t ncols, float beta)
{
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        ap[i] = a + (size_t)i * ars;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            acc[i][j] = beta == 1 ? _mm512_maskz_loadu_ps(col_mask(ncols, j), c + (size_t)i * ldc + 16 * j)
                                  : _mm512_setzero_ps();
    }
}

/* C = acc (beta 0 or 1) or beta*C + acc, then ReLU if asked, in the first ncols columns */
INLINE void tile_end(__m512 acc[MR][NV], const int mr, const int nv, float *c, size_t ldc, size_t ncols,
                     float beta, int relu)
{
    const __m512 vbeta = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            size_t c0 = 16 * (size_t)j;
            if (c0 >= ncols) break;
            __mmask16 m = tail_mask(ncols - c0);
            float *p = c + (size_t)i * ldc + c0;
            __m512 v = acc[i][j];
            if (beta != 0 && beta != 1)
                v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, p), vbeta), v);
            if (relu) v = _mm512_max_ps(zero, v); /* max(0, NaN) keeps the NaN */
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

/* one k step of the tile: nv vectors of B row k (the last one loaded with lmask when masked),
 * times each row's A value ap[i][ko] */
INLINE void kstep(__m512 acc[MR][NV], const int mr, const int nv, const int masked, const float *const ap[MR],
                  size_t ko, const float *b, __mmask16 lmask)
{
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < nv; j++)
        bv[j] = (masked && j == nv - 1) ? _mm512_maskz_loadu_ps(lmask, b + 16 * j) : _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        __m512 av = _mm512_set1_ps(ap[i][ko]);
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
}

/* C[mr, ncols] = beta*C + A·B (+ relu). A element (i, k) at a[i*ars + k*aks]; B row k at
 * b + k*bks, nv vectors wide; masked: the last B vector is loaded with lmask (it may end at
 * the end of the matrix), else B rows are padded to whole vectors. */
INLINE void ukr(const int mr, const int nv, const int masked, const int pf, size_t K, const float *a,
                size_t ars, size_t aks, const float *b, size_t bks, __mmask16 lmask, float *c, size_t ldc,
                size_t ncols, float beta, int relu)
{
    __m512 acc[MR][NV];
    const float *ap[MR];
    tile_begin(acc, ap, mr, nv, a, ars, c, ldc, ncols, beta);
    size_t ko = 0;
    for (size_t k = 0; k < K; k++, ko += aks, b += bks) {
        /* the weight panel streams from L2 / L3: on a Xeon the hardware prefetch alone left
         * the FMAs waiting on it (15-25% of the time for the 3072-wide shapes); pf = 0 where
         * the CPU's own prefetch does better (w->no_prefetch, cache.c) */
        if (!masked && pf) {
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) _mm_prefetch((const char *)(b + PF_K * bks + 16 * j), _MM_HINT_T0);
        }
        kstep(acc, mr, nv, masked, ap, ko, b, lmask);
    }
    tile_end(acc, mr, nv, c, ldc, ncols, beta, relu);
}

/* The same tile for sgemm (issue 19), where A's k stride is 1 and B is one of the drivers'
 * contiguous buffers (rows NR floats apart): the k loop unrolled by four, the same FMAs in the
 * same order (so the same bits as ukr), with constant addressing (on the Xeon of issue 19 the
 * attention products' short k loops, 64 steps a tile for QKᵀ, lost a few percent to the loop
 * and its runtime strides; on Zen 5, with the register transpose, S = Q·Kᵀ through sgemm_nt
 * at 1 thread went from 80-88% of the FMA peak to 87-92%). ukr itself is left as it was for
 * the linear layer. */
INLINE void ukr_u4(const int mr, const int nv, const int masked, size_t K, const float *a, size_t ars,
                   const float *b, __mmask16 lmask, float *c, size_t ldc, size_t ncols, float beta)
{
    const size_t bks = NR;
    __m512 acc[MR][NV];
    const float *ap[MR];
    tile_begin(acc, ap, mr, nv, a, ars, c, ldc, ncols, beta); /* beta = 1: a later k block of sgemm_nn */
    size_t k = 0;
    for (; k + 4 <= K; k += 4, b += 4 * bks) {
        kstep(acc, mr, nv, masked, ap, k, b, lmask);
        kstep(acc, mr, nv, masked, ap, k + 1, b + bks, lmask);
        kstep(acc, mr, nv, masked, ap, k + 2, b + 2 * bks, lmask);
        kstep(acc, mr, nv, masked, ap, k + 3, b + 3 * bks, lmask);
    }
    for (; k < K; k++, b += bks) kstep(acc, mr, nv, masked, ap, k, b, lmask);
    tile_end(acc, mr, nv, c, ldc, ncols, beta, 0);
}

/* Full-width packed panel (linear layer): nv = 4, unmasked loads; with and without the
 * weight prefetch. */
#define UKP(R, PF) ukr(R, 4, 0, PF, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu)
#define UKP_ROWS(PF) GTR_MR6_SWITCH(mr, UKP, PF)
void gtr_avx512_f32_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                       size_t ldc, size_t ncols, float beta, int relu)
{
    UKP_ROWS(1)
}
static void f32_packed_nopf(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                            size_t ldc, size_t ncols, float beta, int relu)
{
    UKP_ROWS(0)
}

/* Strided B (sgemm): nv = ceil(ncols / 16) vectors, last one masked; U4: ukr_u4 (aks = 1,
 * bks = NR) */
#define UKS(R, V, U4)                                                                         \
    if (U4) ukr_u4(R, V, 1, K, a, ars, b, tail_mask(ncols - 16 * (V - 1)), c, ldc, ncols, beta);       \
    else ukr(R, V, 1, 0, K, a, ars, aks, b, bks, tail_mask(ncols - 16 * (V - 1)), c, ldc, ncols, beta, 0)
#define UKS_ROW(R, U4)                                                                        \
    switch (nv) {                                                                             \
    case 4: UKS(R, 4, U4); break;                                                             \
    case 3: UKS(R, 3, U4); break;                                                             \
    case 2: UKS(R, 2, U4); break;                                                             \
    default: UKS(R, 1, U4); break;                                                            \
    }
#define UKS_ROWS(U4)                                                                          \
    int nv = (int)((ncols + 15) / 16);                                                        \
    switch (mr) {                                                                             \
    case 6: UKS_ROW(6, U4) break;                                                             \
    case 5: UKS_ROW(5, U4) break;                                                             \
    case 4: UKS_ROW(4, U4) break;                                                             \
    case 3: UKS_ROW(3, U4) break;                                                             \
    case 2: UKS_ROW(2, U4) break;                                                             \
    default: UKS_ROW(1, U4) break;                                                            \
    }
/* full 64-column tiles with constant masks (unmasked B loads and C stores), and with beta 0
 * a constant (no loads of C, no branches around the stores) */
#define UKF(R, BETA) ukr_u4(R, 4, 0, K, a, ars, b, 0xFFFF, c, ldc, NR, BETA)
static void ukr_strided(int mr, size_t K, const float *a, size_t ars, size_t aks, const float *b,
                        size_t bks, float *c, size_t ldc, size_t ncols, float beta)
{
    /* ukr_u4 only where B is one of the drivers' contiguous buffers: with B read in place
     * (the encoder's QKᵀ from Kᵀ rows L floats apart) it measured 3-4% slower than ukr */
    if (aks != 1 || bks != NR) {
        UKS_ROWS(0)
    } else if (ncols == NR && beta == 0) {
        GTR_MR6_SWITCH(mr, UKF, 0.0f)
    } else if (ncols == NR) {
        GTR_MR6_SWITCH(mr, UKF, beta)
    } else {
        UKS_ROWS(1)
    }
}

static void linear_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,
                        size_t kc, int accum, int relu)
{
    gtr_f32_linear_tile(t, mr, i0, p, k0, kc, accum, relu, NR,
                        t->w->no_prefetch ? f32_packed_nopf : gtr_avx512_f32_packed);
}

/* no scratch: tasks of up to GTR_LINEAR_MC_MAX rows (gtr_wmat.mc) */
const gtr_linear_ukr gtr_avx512_linear_f32 = {.mr = MR, .kc = KC, .mc_max = GTR_LINEAR_MC_MAX, .tile = linear_tile};
/* AMD's sgemm (avx512+bf16+vnni, dispatch.c): B read in place by sgemm_nn; sgemm_nt's blocks
 * transposed in registers into the contiguous buffer that ukr_u4 reads */
const gtr_sgemm_ukr gtr_avx512_sgemm = {.mr = MR, .nr = NR, .tile = ukr_strided, .transpose = gtr_avx512_transpose};
/* sgemm_nn's copy of B's block: rows of up to 64 floats, four masked vectors a row (a
 * memcpy call per row cost the copy a few percent of P·V at L = 512) */
static void copy_rows(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd)
{
    if (cols == 64) {
        for (size_t r = 0; r < rows; r++, src += lds, dst += ldd)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) _mm512_storeu_ps(dst + 16 * j, _mm512_loadu_ps(src + 16 * j));
        return;
    }
    const __mmask16 m0 = col_mask(cols, 0), m1 = col_mask(cols, 1), m2 = col_mask(cols, 2), m3 = col_mask(cols, 3);
    for (size_t r = 0; r < rows; r++, src += lds, dst += ldd) {
        _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
        _mm512_mask_storeu_ps(dst + 16, m1, _mm512_maskz_loadu_ps(m1, src + 16));
        _mm512_mask_storeu_ps(dst + 32, m2, _mm512_maskz_loadu_ps(m2, src + 32));
        _mm512_mask_storeu_ps(dst + 48, m3, _mm512_maskz_loadu_ps(m3, src + 48));
    }
}

/* The tables of Intel CPUs (dispatch.c): the same, and sgemm_nn copies B's blocks into a
 * contiguous buffer first (on Zen 5 the copy gained nothing on 1 thread and lost 2-5% of P·V at
 * L = 256 on 2). Same bits. */
const gtr_sgemm_ukr gtr_avx512_sgemm_copy_b = {
    .mr = MR, .nr = NR, .tile = ukr_strided, .transpose = gtr_avx512_transpose, .copy_b = copy_rows};
