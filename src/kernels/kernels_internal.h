/* kernels_internal.h — the dispatch table behind kernels.h (one instance per ISA). */
#ifndef GTR_KERNELS_INTERNAL_H
#define GTR_KERNELS_INTERNAL_H

#include "kernels/kernels.h"

struct gtr_kernels {
    const char *name;
    void (*sgemm_nt)(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc);
    void (*sgemm_nn)(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc);
    void (*sgemm_tn)(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc);
    void (*rmsnorm)(const float *x, const float *w, float eps, size_t n, float *y);
    void (*softmax)(float *x, size_t n);
    void (*gelu_mul)(float *x, const float *g, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
};

/* generic C versions (generic.c) */
void gtr_generic_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_generic_softmax(float *x, size_t n);
void gtr_generic_gelu_mul(float *x, const float *g, size_t n);
float gtr_generic_dot(const float *a, const float *b, size_t n);

#endif
