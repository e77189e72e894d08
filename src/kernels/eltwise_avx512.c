/* eltwise_avx512.c — row-wise element-wise kernels with AVX-512: RMS norm, softmax (plain and
 * with an added bias row), gated GELU, dot. expf is a Cephes-style polynomial (~1 ulp on the
 * range softmax and GELU use); the rest differs from the portable code only in summation
 * order. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

static inline __mmask16 tmask(size_t r) { return r >= 16 ? 0xFFFF : (__mmask16)((1u << r) - 1); }

/* e^x: x = n·ln2 + r (two-constant Cody-Waite), e^r by a degree-6 polynomial, 2^n through
 * the exponent bits. Below ln(FLT_MIN) the result is 0 (-inf -> 0), above 88.376 +inf; NaN
 * propagates. */
INLINE __m512 exp512(__m512 x)
{
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365447504f);
    __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* 2^fx for fx in [-126, 127] (clamped so the integer never wraps; the masks fix the ends) */
    __m512 fxc = _mm512_min_ps(_mm512_max_ps(fx, _mm512_set1_ps(-126.0f)), _mm512_set1_ps(127.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fxc), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    y = _mm512_mask_mov_ps(y, over, _mm512_set1_ps(INFINITY));
    return _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
}

void gtr_avx512_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 16) {
        __m512 a = _mm512_maskz_loadu_ps(tmask(n - i), x + i);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    float ss = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    __m512 r = _mm512_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
    for (i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r),
                                 _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void gtr_avx512_add_softmax(float *x, const float *bias, size_t n)
{
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (bias) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
            _mm512_mask_storeu_ps(x + i, m, v);
        }
        mx = _mm512_mask_max_ps(mx, m, v, mx);
    }
    float mxs = _mm512_reduce_max_ps(mx);
    if (mxs == -INFINITY) {
        gtr_softmax_masked_row(x, n);
        return;
    }
    __m512 vmx = _mm512_set1_ps(mxs), s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmx));
        e = _mm512_maskz_mov_ps(m, e);
        s = _mm512_add_ps(s, e);
        _mm512_mask_storeu_ps(x + i, m, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

void gtr_avx512_softmax(float *x, size_t n) { gtr_avx512_add_softmax(x, NULL, n); }

void gtr_avx512_gelu_mul(float *x, const float *g, size_t n)
{
    const __m512 c = _mm512_set1_ps(0.7978845608028654f), c3 = _mm512_set1_ps(0.044715f),
                 m2 = _mm512_set1_ps(-2.0f), one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        /* u = c·(v + 0.044715·v³), as the portable code rounds it */
        __m512 u = _mm512_mul_ps(c, _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(c3, v), v), v)));
        __m512 d = _mm512_add_ps(one, exp512(_mm512_mul_ps(m2, u)));
        __m512 r = _mm512_mul_ps(_mm512_div_ps(v, d), _mm512_maskz_loadu_ps(m, g + i));
        _mm512_mask_storeu_ps(x + i, m, r);
    }
}

float gtr_avx512_dot(const float *a, const float *b, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(),
           s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* 16x16 tile in registers: 32-bit, 64-bit and two 128-bit-lane interleaving rounds. */
INLINE void tr16(const float *s, size_t lds, float *d, size_t ldd)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(s + (size_t)i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), e = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(d + (size_t)i * ldd, r[i]);
}

void gtr_avx512_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd)
{
    size_t R = rows & ~(size_t)15, C = cols & ~(size_t)15;
    for (size_t r0 = 0; r0 < R; r0 += 16)
        for (size_t c0 = 0; c0 < C; c0 += 16) tr16(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
    /* the ragged right and bottom edges */
    if (C < cols) gtr_generic_transpose(src + C, lds, rows, cols - C, dst + C * ldd, ldd);
    if (R < rows) gtr_generic_transpose(src + R * lds, lds, rows - R, C, dst + R, ldd);
}
