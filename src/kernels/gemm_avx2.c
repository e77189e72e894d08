/* gemm_avx2.c — float32 GEMM micro-kernels with AVX2+FMA for the drivers in gemm.c (the
 * packed-weight linear layer and the strided sgemm_nt/nn/tn). Like gemm_avx512.c with 16 ymm
 * registers: a 6×16 tile (12 accumulators, 2 weight vectors, 1 broadcast). */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 6
#define NR 16
#define KC 1024

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
    /* beta = 1 continues the sums in C: one FMA chain per output over all k (gemm_avx512.c) */
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        ap[i] = a + (size_t)i * ars;
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++)
            acc[i][j] = beta == 1 && 8 * (size_t)j < ncols
                            ? _mm256_maskload_ps(c + (size_t)i * ldc + 8 * j, lmask(ncols - 8 * (size_t)j))
                            : _mm256_setzero_ps();
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
            if (beta != 0 && beta != 1)
                v = _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(p, m), vbeta), v);
            if (relu) v = _mm256_max_ps(zero, v);
            _mm256_maskstore_ps(p, m, v);
        }
}

void gtr_avx2_f32_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
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

static void linear_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,
                        size_t kc, int accum, int relu)
{
    gtr_f32_linear_tile(t, mr, i0, p, k0, kc, accum, relu, NR, gtr_avx2_f32_packed);
}

const gtr_linear_ukr gtr_avx2_linear_f32 = {.mr = MR, .kc = KC, .tile = linear_tile};
const gtr_sgemm_ukr gtr_avx2_sgemm = {.mr = MR, .nr = NR, .tile = ukr_strided};
