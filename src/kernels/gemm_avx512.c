/* gemm_avx512.c — float32 GEMM with AVX-512: the packed-weight linear layer and the strided
 * attention-sized sgemm_nt/nn/tn.
 *
 * Micro-kernel: 6 rows × 64 columns (24 zmm accumulators, 4 weight vectors, 1 broadcast).
 * Per k step it does 4 vector loads + 6 broadcasts for 24 FMAs, so two FMA pipes stay fed
 * from L1/L2 (measured ~100% of peak in L1 on Zen 4/5). Rows of X are broadcast straight
 * from the caller's matrix (no packing: six sequential streams), weights come from the packed
 * panel [k][64]. For gtr-t5-base shapes the whole K fits the blocking below (KC), so each
 * output tile is written once, with the epilogue (residual add, ReLU) fused into the store. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NV 4
#define NR (16 * NV)
#define KC 1024 /* k block: a 1024×64 float weight sliver (256 KB) stays in L2 */
#define KT 128  /* k chunk of the transposed B in sgemm_nt (32 KB on the stack) */

#define INLINE static inline __attribute__((always_inline))

static inline __mmask16 tail_mask(size_t cols) { return cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1); }

/* C[mr, ncols] = beta*C + A·B (+ relu). A element (i, k) at a[i*ars + k*aks]; B row k at
 * b + k*bks, nv vectors wide; masked: the last B vector is loaded with lmask (it may end at
 * the end of the matrix), else B rows are padded to whole vectors. */
INLINE void ukr(const int mr, const int nv, const int masked, size_t K, const float *a, size_t ars,
                size_t aks, const float *b, size_t bks, __mmask16 lmask, float *c, size_t ldc,
                size_t ncols, float beta, int relu)
{
    __m512 acc[MR][NV];
    const float *ap[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        ap[i] = a + (size_t)i * ars;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    }
    size_t ko = 0;
    for (size_t k = 0; k < K; k++, ko += aks, b += bks) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++)
            bv[j] = (masked && j == nv - 1) ? _mm512_maskz_loadu_ps(lmask, b + 16 * j)
                                            : _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(ap[i][ko]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
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
            if (beta != 0) {
                __m512 old = _mm512_maskz_loadu_ps(m, p);
                v = beta == 1 ? _mm512_add_ps(old, v) : _mm512_add_ps(_mm512_mul_ps(old, vbeta), v);
            }
            if (relu) v = _mm512_max_ps(zero, v); /* max(0, NaN) keeps the NaN */
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

/* Full-width packed panel (linear layer): nv = 4, unmasked loads. */
static void ukr_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                       size_t ldc, size_t ncols, float beta, int relu)
{
    switch (mr) {
    case 6: ukr(6, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    case 5: ukr(5, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    case 4: ukr(4, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    case 3: ukr(3, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    case 2: ukr(2, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    default: ukr(1, 4, 0, K, a, lda, 1, b, NR, 0, c, ldc, ncols, beta, relu); break;
    }
}

/* Strided B (sgemm): nv = ceil(ncols / 16) vectors, last one masked. */
#define UKS(R, V) ukr(R, V, 1, K, a, ars, aks, b, bks, tail_mask(ncols - 16 * (V - 1)), c, ldc, ncols, beta, 0)
#define UKS_ROW(R)                                                                            \
    switch (nv) {                                                                             \
    case 4: UKS(R, 4); break;                                                                 \
    case 3: UKS(R, 3); break;                                                                 \
    case 2: UKS(R, 2); break;                                                                 \
    default: UKS(R, 1); break;                                                                \
    }
static void ukr_strided(int mr, size_t K, const float *a, size_t ars, size_t aks, const float *b,
                        size_t bks, float *c, size_t ldc, size_t ncols, float beta)
{
    int nv = (int)((ncols + 15) / 16);
    switch (mr) {
    case 6: UKS_ROW(6) break;
    case 5: UKS_ROW(5) break;
    case 4: UKS_ROW(4) break;
    case 3: UKS_ROW(3) break;
    case 2: UKS_ROW(2) break;
    default: UKS_ROW(1) break;
    }
}

void gtr_avx512_linear_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                           size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)ws;
    const float *data = w->data;
    const size_t K = w->k, kp = w->kp;
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kc = GTR_MIN(KC, K - k0);
        float beta = (k0 == 0 && !(flags & GTR_LINEAR_ACCUM)) ? 0.0f : 1.0f;
        int relu = (k0 + kc == K) && (flags & GTR_LINEAR_RELU);
        for (size_t p = p0; p < p1; p++) {
            const float *b = data + (p * kp + k0) * NR;
            size_t ncols = GTR_MIN(NR, w->n - p * NR);
            for (size_t i0 = 0; i0 < m; i0 += MR)
                ukr_packed((int)GTR_MIN(MR, m - i0), kc, x + i0 * ldx + k0, ldx, b,
                           y + i0 * ldy + p * NR, ldy, ncols, beta, relu);
        }
    }
}

/* A[i,k] at A[i*ars + k*aks]; B[k,j] at B[k*bks + j]. */
static void sgemm_strided(size_t M, size_t N, size_t K, const float *A, size_t ars, size_t aks,
                          const float *B, size_t bks, float beta, float *C, size_t ldc)
{
    for (size_t j0 = 0; j0 < N; j0 += NR) {
        size_t nc = GTR_MIN(NR, N - j0);
        for (size_t i0 = 0; i0 < M; i0 += MR)
            ukr_strided((int)GTR_MIN(MR, M - i0), K, A + i0 * ars, ars, aks, B + j0, bks,
                        C + i0 * ldc + j0, ldc, nc, beta);
    }
}

void gtr_avx512_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc)
{
    sgemm_strided(M, N, K, A, lda, 1, B, ldb, beta, C, ldc);
}

void gtr_avx512_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc)
{
    sgemm_strided(M, N, K, A, 1, lda, B, ldb, beta, C, ldc);
}

/* nt: B is [N, K]; transpose 64-column blocks of it in KT chunks into a [KT][64] buffer and
 * run the same kernel (QKᵀ in attention: K = d_kv = 64, one chunk). */
void gtr_avx512_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc)
{
    _Alignas(64) float bt[KT * NR];
    if (K == 0) {
        sgemm_strided(M, N, 0, A, lda, 1, B, 0, beta, C, ldc); /* C = beta*C */
        return;
    }
    for (size_t j0 = 0; j0 < N; j0 += NR) {
        size_t nc = GTR_MIN(NR, N - j0);
        for (size_t k0 = 0; k0 < K; k0 += KT) {
            size_t kc = GTR_MIN(KT, K - k0);
            for (size_t j = 0; j < nc; j++) {
                const float *src = B + (j0 + j) * ldb + k0;
                for (size_t k = 0; k < kc; k++) bt[k * NR + j] = src[k];
            }
            float bb = k0 == 0 ? beta : 1.0f;
            for (size_t i0 = 0; i0 < M; i0 += MR)
                ukr_strided((int)GTR_MIN(MR, M - i0), kc, A + i0 * lda + k0, lda, 1, bt, NR,
                            C + i0 * ldc + j0, ldc, nc, bb);
        }
    }
}
