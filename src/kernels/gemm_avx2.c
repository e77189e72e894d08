/* gemm_avx2.c — float32 GEMM with AVX2+FMA: the packed-weight linear layer and the strided
 * sgemm_nt/nn/tn. Same structure as gemm_avx512.c with 16 ymm registers: a 6×16 micro-kernel
 * (12 accumulators, 2 weight vectors, 1 broadcast). */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NR 16
#define KC 1024
#define KT 128

#define INLINE static inline __attribute__((always_inline))

/* lanes [0, r) set */
INLINE __m256i lmask(size_t r)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GTR_MIN(r, 8)), idx);
}

INLINE void ukr(const int mr, const int nv, const int masked, size_t K, const float *a, size_t ars,
                size_t aks, const float *b, size_t bks, __m256i lm, float *c, size_t ldc,
                size_t ncols, float beta, int relu)
{
    __m256 acc[MR][2];
    const float *ap[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        ap[i] = a + (size_t)i * ars;
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) acc[i][j] = _mm256_setzero_ps();
    }
    size_t ko = 0;
    for (size_t k = 0; k < K; k++, ko += aks, b += bks) {
        __m256 bv[2];
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++)
            bv[j] = (masked && j == nv - 1) ? _mm256_maskload_ps(b + 8 * j, lm) : _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 av = _mm256_broadcast_ss(ap[i] + ko);
#pragma GCC unroll 2
            for (int j = 0; j < nv; j++) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    const __m256 vbeta = _mm256_set1_ps(beta), zero = _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) {
            size_t c0 = 8 * (size_t)j;
            if (c0 >= ncols) break;
            __m256i m = lmask(ncols - c0);
            float *p = c + (size_t)i * ldc + c0;
            __m256 v = acc[i][j];
            if (beta != 0) {
                __m256 old = _mm256_maskload_ps(p, m);
                v = beta == 1 ? _mm256_add_ps(old, v) : _mm256_add_ps(_mm256_mul_ps(old, vbeta), v);
            }
            if (relu) v = _mm256_max_ps(zero, v);
            _mm256_maskstore_ps(p, m, v);
        }
}

static void ukr_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                       size_t ldc, size_t ncols, float beta, int relu)
{
    __m256i z = _mm256_setzero_si256();
    switch (mr) {
    case 6: ukr(6, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    case 5: ukr(5, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    case 4: ukr(4, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    case 3: ukr(3, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    case 2: ukr(2, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    default: ukr(1, 2, 0, K, a, lda, 1, b, NR, z, c, ldc, ncols, beta, relu); break;
    }
}

#define UKS(R, V) ukr(R, V, 1, K, a, ars, aks, b, bks, lmask(ncols - 8 * (V - 1)), c, ldc, ncols, beta, 0)
#define UKS_ROW(R)                                                                            \
    if (nv == 2) UKS(R, 2);                                                                   \
    else UKS(R, 1);
static void ukr_strided(int mr, size_t K, const float *a, size_t ars, size_t aks, const float *b,
                        size_t bks, float *c, size_t ldc, size_t ncols, float beta)
{
    int nv = ncols > 8 ? 2 : 1;
    switch (mr) {
    case 6: UKS_ROW(6) break;
    case 5: UKS_ROW(5) break;
    case 4: UKS_ROW(4) break;
    case 3: UKS_ROW(3) break;
    case 2: UKS_ROW(2) break;
    default: UKS_ROW(1) break;
    }
}

void gtr_avx2_linear_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
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

void gtr_avx2_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc)
{
    sgemm_strided(M, N, K, A, lda, 1, B, ldb, beta, C, ldc);
}

void gtr_avx2_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc)
{
    sgemm_strided(M, N, K, A, 1, lda, B, ldb, beta, C, ldc);
}

void gtr_avx2_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc)
{
    _Alignas(32) float bt[KT * NR];
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
