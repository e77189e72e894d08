/*
 * kernels.h — the compute primitives the encoder, head, index and trainer are built from.
 * Knows nothing about what a layer is. Each primitive has a portable C version; ISA-specific
 * versions (AVX2+FMA, AVX-512 with BF16/VNNI) live in *_avx2.c / *_avx512.c and are chosen at
 * run time by gtr_kernels_select() from CPUID.
 *
 * Weights are "linear" matrices W[n_out, k_in] (PyTorch nn.Linear layout); they are packed
 * once at load (gtr_wmat) into whatever layout/precision the chosen kernels like best.
 */
#ifndef GTR_KERNELS_H
#define GTR_KERNELS_H

#include "core/core.h"

typedef enum gtr_wtype { GTR_W_F32 = 0, GTR_W_BF16, GTR_W_INT8 } gtr_wtype;

/* A packed weight matrix: y = x · Wᵀ with W [n, k]. The layout of data is private to the
 * kernels that packed it. */
typedef struct gtr_wmat {
    size_t n, k;
    gtr_wtype type;
    void *data;    /* packed values (aligned allocation) */
    float *scales; /* INT8: per-output-row scale, else NULL */
    size_t bytes;  /* memory held */
} gtr_wmat;

/* Flags for gtr_linear. */
#define GTR_LINEAR_ACCUM 1u /* y += x·Wᵀ instead of y = x·Wᵀ (residual add fused) */
#define GTR_LINEAR_RELU  2u /* y = relu(x·Wᵀ) (not with ACCUM) */

typedef struct gtr_kernels gtr_kernels;

/* The best kernels for this CPU (respecting GTR_CPU=generic|avx2|avx512). Static, immutable. */
const gtr_kernels *gtr_kernels_select(void);
/* The portable kernels (reference for tests). */
const gtr_kernels *gtr_kernels_generic(void);
const char *gtr_kernels_name(const gtr_kernels *k);

/* Pack W (row-major [n, k] float32) as type. */
gtr_status gtr_wmat_pack(const gtr_kernels *kern, gtr_wmat *w, const float *W, size_t n, size_t k,
                         gtr_wtype type, gtr_error *err);
void gtr_wmat_free(gtr_wmat *w);

/* Y[m, n] (=|+=) X[m, k] · Wᵀ; rows of X have stride ldx, rows of Y stride ldy (floats).
 * Parallel over the pool (may be NULL). */
void gtr_linear(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                size_t m, size_t ldx, float *y, size_t ldy, unsigned flags);

/* Plain single-threaded float32 GEMMs with strides (attention, training):
 *   nt: C[M,N] = beta*C + A[M,K] · B[N,K]ᵀ      nn: C[M,N] = beta*C + A[M,K] · B[K,N]
 *   tn: C[M,N] = beta*C + A[K,M]ᵀ · B[K,N]                                                    */
void gtr_sgemm_nt(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_nn(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_tn(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Element-wise, one row of n floats. */
/* y = x * rsqrt(mean(x²) + eps) * w   (T5 RMS norm; y may equal x) */
void gtr_rmsnorm(const gtr_kernels *kern, const float *x, const float *w, float eps, size_t n, float *y);
/* x = softmax(x) in place (max-subtracted, exact expf) */
void gtr_softmax(const gtr_kernels *kern, float *x, size_t n);
/* x = gelu_tanh(x) * g   (T5 v1.1 gated-gelu) */
void gtr_gelu_mul(const gtr_kernels *kern, float *x, const float *g, size_t n);
/* dot product */
float gtr_dot(const gtr_kernels *kern, const float *a, const float *b, size_t n);

#endif
