/* generic.c — portable C kernels: the reference every ISA version is tested against, and the
 * fallback on CPUs without AVX2. */
#include "kernels/kernels_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gtr_generic_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            const float *a = A + i * lda, *b = B + j * ldb;
            float s = 0;
            for (size_t k = 0; k < K; k++) s += a[k] * b[k];
            C[i * ldc + j] = (beta == 0 ? 0 : beta * C[i * ldc + j]) + s;
        }
}

void gtr_generic_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (size_t j = 0; j < N; j++) c[j] = beta == 0 ? 0 : beta * c[j];
        for (size_t k = 0; k < K; k++) {
            float a = A[i * lda + k];
            const float *b = B + k * ldb;
            for (size_t j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

void gtr_generic_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (size_t j = 0; j < N; j++) c[j] = beta == 0 ? 0 : beta * c[j];
    }
    for (size_t k = 0; k < K; k++) {
        const float *a = A + k * lda, *b = B + k * ldb;
        for (size_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            for (size_t j = 0; j < N; j++) c[j] += a[i] * b[j];
        }
    }
}

void gtr_generic_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y)
{
    float ss = 0;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

void gtr_generic_softmax(float *x, size_t n) { gtr_generic_add_softmax(x, NULL, n); }

void gtr_generic_add_softmax(float *x, const float *bias, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (bias) x[i] += bias[i];
        mx = x[i] > mx ? x[i] : mx;
    }
    if (mx == -INFINITY) { /* everything masked: zeros rather than 0/0 */
        gtr_softmax_masked_row(x, n);
        return;
    }
    float s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

void gtr_generic_gelu_mul(float *x, const float *g, size_t n)
{
    /* 0.5·v·(1 + tanh(u)) == v / (1 + exp(-2u)); the latter keeps full relative precision
     * where tanh(u) is close to -1 (the vector versions use the same form). */
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = c * (v + 0.044715f * v * v * v);
        x[i] = v / (1.0f + expf(-2.0f * u)) * g[i];
    }
}

float gtr_generic_dot(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void gtr_generic_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd)
{
    /* 16x16 tiles keep both the reads and the writes within a few cache lines */
    for (size_t r0 = 0; r0 < rows; r0 += 16)
        for (size_t c0 = 0; c0 < cols; c0 += 16)
            for (size_t c = c0; c < GTR_MIN(cols, c0 + 16); c++)
                for (size_t r = r0; r < GTR_MIN(rows, r0 + 16); r++) dst[c * ldd + r] = src[r * lds + c];
}
