/* eltwise_avx2.c — the row-wise element-wise kernels of eltwise_body.h on AVX2+FMA: 8 lanes,
 * row tails through masked loads (vmaskmovps) with the fill blended in. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

#define ELT(name) gtr_avx2_##name
#define W 8
typedef __m256 V;
typedef __m256i VM;
typedef __m256 VC;

INLINE V v_zero(void) { return _mm256_setzero_ps(); }
INLINE V v_set1(float f) { return _mm256_set1_ps(f); }
INLINE V v_load(const float *p) { return _mm256_loadu_ps(p); }
INLINE VM v_tail(size_t r)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)GTR_MIN(r, 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
INLINE V v_loadm(const float *p, VM m, float fill)
{
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
INLINE void v_storem(float *p, VM m, V v) { _mm256_maskstore_ps(p, m, v); }
INLINE V v_add(V a, V b) { return _mm256_add_ps(a, b); }
INLINE V v_sub(V a, V b) { return _mm256_sub_ps(a, b); }
INLINE V v_mul(V a, V b) { return _mm256_mul_ps(a, b); }
INLINE V v_div(V a, V b) { return _mm256_div_ps(a, b); }
INLINE V v_fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
INLINE V v_fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
INLINE V v_max(V a, V b) { return _mm256_max_ps(a, b); }
INLINE V v_min(V a, V b) { return _mm256_min_ps(a, b); }
INLINE VC v_gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
INLINE VC v_lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
INLINE V v_sel(VC c, V t, V f) { return _mm256_blendv_ps(f, t, c); }
INLINE V v_round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
INLINE V v_pow2i(V n)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
INLINE float v_hsum(V v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
INLINE float v_hmax(V v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#include "kernels/eltwise_body.h"
