/* kernels_internal.h — the dispatch table behind kernels.h (one instance per ISA), and the
 * scalar definitions of bf16 rounding and int8 quantisation that every ISA reproduces. */
#ifndef GTR_KERNELS_INTERNAL_H
#define GTR_KERNELS_INTERNAL_H

#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* A softmax row whose maximum is -infinity: every entry masked gives zeros rather than 0/0;
 * but a NaN among them (max ignores NaN lanes) must stay NaN, so that overflowed activations
 * end in a non-finite vector, which is refused, instead of a plausible-looking one. */
static inline void gtr_softmax_masked_row(float *x, size_t n)
{
    float fill = 0;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) fill = NAN;
    for (size_t i = 0; i < n; i++) x[i] = fill;
}

/* gtr_linear hands each task at most this many rows (a multiple of every micro-kernel's row
 * count: 6 and 4); the per-thread scratch holds that many converted rows. */
#define GTR_LINEAR_MC 96

/* One task of gtr_linear: rows [0, m) (m <= GTR_LINEAR_MC) of x and y, output panels
 * [p0, p1) of w; ws = this thread's scratch (ws_bytes(type, kp) bytes, 64-byte aligned). */
typedef void (*gtr_linear_fn)(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                              size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
typedef void (*gtr_sgemm_fn)(size_t M, size_t N, size_t K, const float *A, size_t lda,
                             const float *B, size_t ldb, float beta, float *C, size_t ldc);

struct gtr_kernels {
    const char *name;
    /* which CPU features it needs (checked by gtr_kernels_at / _by_name) */
    bool need_avx2, need_avx512, need_bf16, need_vnni;
    size_t nr[GTR_W_NTYPES];            /* panel width of the packed layout, per gtr_wtype */
    gtr_linear_fn linear[GTR_W_NTYPES]; /* works on layouts packed with nr[type] */
    /* per-thread scratch bytes that linear[type] needs for GTR_LINEAR_MC rows of kp (padded)
     * inputs; NULL = none */
    size_t (*linear_ws[GTR_W_NTYPES])(size_t kp);
    gtr_sgemm_fn sgemm_nt, sgemm_nn, sgemm_tn;
    void (*rmsnorm)(const float *x, const float *w, float eps, size_t n, float *y);
    void (*softmax)(float *x, size_t n);
    void (*add_softmax)(float *x, const float *bias, size_t n);
    void (*gelu_mul)(float *x, const float *g, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
    void (*transpose)(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
};

/* ---- the numeric definitions every ISA reproduces exactly ---------------------------- */

/* Quantise v = x · (127 / amax) to [-127, 127] as cvtps2dq + clamp does: round to nearest
 * even; NaN and out-of-int32-range values (only from inf/NaN inputs) become -127. */
static inline int32_t gtr_q8(float v)
{
    if (!(fabsf(v) < 2147483648.0f)) return -127;
    float r = nearbyintf(v);
    if (r > 127.0f) return 127;
    if (r < -127.0f) return -127;
    return (int32_t)r;
}
/* Row scale: amax = max |x| (NaN ignored); scale = amax / 127, inverse 127 / amax (0, 0 for
 * an all-zero row). */
static inline void gtr_q8_scale(float amax, float *scale, float *inv)
{
    if (amax > 0) {
        *scale = amax / 127.0f;
        *inv = 127.0f / amax;
    } else {
        *scale = 0;
        *inv = 0;
    }
}

/* ---- per-ISA tables --------------------------------------------------------------------- */
extern const gtr_kernels gtr_kernels_generic_table;
extern const gtr_kernels gtr_kernels_avx2_table;
extern const gtr_kernels gtr_kernels_avx512_table;      /* f32 AVX-512; bf16/int8 via AVX2 */
extern const gtr_kernels gtr_kernels_avx512_vnni_table; /* + vpdpbusd int8 */
extern const gtr_kernels gtr_kernels_avx512_bf16_table; /* + vdpbf16ps bf16 + vpdpbusd int8 */

/* generic C versions (generic.c, generic_linear.c) */
void gtr_generic_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_generic_softmax(float *x, size_t n);
void gtr_generic_add_softmax(float *x, const float *bias, size_t n);
void gtr_generic_gelu_mul(float *x, const float *g, size_t n);
float gtr_generic_dot(const float *a, const float *b, size_t n);
void gtr_generic_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
void gtr_generic_linear_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                            size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_generic_linear_bf16(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                             size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_generic_linear_int8(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                             size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);

/* AVX2+FMA (gemm_avx2.c, lowp_avx2.c, eltwise_avx2.c) */
void gtr_avx2_linear_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                         size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_avx2_linear_bf16(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                          size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_avx2_linear_int8(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                          size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
size_t gtr_avx2_bf16_ws(size_t kp);
size_t gtr_avx2_int8_ws(size_t kp);
void gtr_avx2_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx2_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx2_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                       size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx2_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_avx2_softmax(float *x, size_t n);
void gtr_avx2_add_softmax(float *x, const float *bias, size_t n);
void gtr_avx2_gelu_mul(float *x, const float *g, size_t n);
float gtr_avx2_dot(const float *a, const float *b, size_t n);

/* AVX-512 (gemm_avx512.c, bf16_avx512.c, int8_avx512.c, eltwise_avx512.c) */
void gtr_avx512_linear_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                           size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_avx512_linear_bf16(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                            size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
void gtr_avx512_linear_int8(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                            size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
size_t gtr_avx512_bf16_ws(size_t kp);
size_t gtr_avx512_int8_ws(size_t kp);
void gtr_avx512_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx512_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx512_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                         size_t ldb, float beta, float *C, size_t ldc);
void gtr_avx512_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_avx512_softmax(float *x, size_t n);
void gtr_avx512_add_softmax(float *x, const float *bias, size_t n);
void gtr_avx512_gelu_mul(float *x, const float *g, size_t n);
float gtr_avx512_dot(const float *a, const float *b, size_t n);
void gtr_avx512_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);

#endif
