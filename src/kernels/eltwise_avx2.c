/* eltwise_avx2.c — row-wise element-wise kernels with AVX2+FMA (see eltwise_avx512.c; same
 * expf polynomial). Row tails go through a small padded buffer so every element takes the
 * vector path. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

INLINE __m256i lmask(size_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GTR_MIN(r, 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Load r (< 8 allowed) floats, the missing lanes = fill. */
INLINE __m256 load_tail(const float *p, size_t r, float fill)
{
    __m256i m = lmask(r);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}

INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE __m256 exp256(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447504f);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256 fxc = _mm256_min_ps(_mm256_max_ps(fx, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(127.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fxc), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
    return _mm256_andnot_ps(under, y);
}

void gtr_avx2_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 8) {
        __m256 a = load_tail(x + i, n - i, 0);
        s0 = _mm256_fmadd_ps(a, a, s0);
    }
    float ss = hsum(_mm256_add_ps(s0, s1));
    __m256 r = _mm256_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
    for (i = 0; i < n; i += 8) {
        __m256i m = lmask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(x + i, m), r), _mm256_maskload_ps(w + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

void gtr_avx2_add_softmax(float *x, const float *bias, size_t n)
{
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = lmask(n - i);
        __m256 v = load_tail(x + i, n - i, -INFINITY);
        if (bias) {
            v = _mm256_add_ps(v, load_tail(bias + i, n - i, 0));
            _mm256_maskstore_ps(x + i, m, v);
        }
        mx = _mm256_max_ps(v, mx); /* NaN lanes keep the old maximum */
    }
    float mxs = hmax(mx);
    if (mxs == -INFINITY) {
        gtr_softmax_masked_row(x, n);
        return;
    }
    __m256 vmx = _mm256_set1_ps(mxs), s = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = lmask(n - i);
        __m256 e = exp256(_mm256_sub_ps(load_tail(x + i, n - i, -INFINITY), vmx));
        s = _mm256_add_ps(s, e);
        _mm256_maskstore_ps(x + i, m, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum(s));
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = lmask(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
    }
}

void gtr_avx2_softmax(float *x, size_t n) { gtr_avx2_add_softmax(x, NULL, n); }

void gtr_avx2_gelu_mul(float *x, const float *g, size_t n)
{
    const __m256 c = _mm256_set1_ps(0.7978845608028654f), c3 = _mm256_set1_ps(0.044715f),
                 m2 = _mm256_set1_ps(-2.0f), one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = lmask(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        __m256 u = _mm256_mul_ps(c, _mm256_add_ps(v, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(c3, v), v), v)));
        __m256 d = _mm256_add_ps(one, exp256(_mm256_mul_ps(m2, u)));
        __m256 r = _mm256_mul_ps(_mm256_div_ps(v, d), _mm256_maskload_ps(g + i, m));
        _mm256_maskstore_ps(x + i, m, r);
    }
}

float gtr_avx2_dot(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i < n; i += 8) {
        __m256i m = lmask(n - i);
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s0);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}
