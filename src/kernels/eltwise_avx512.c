/* eltwise_avx512.c — the row-wise element-wise kernels of eltwise_body.h on AVX-512 (16
 * lanes, k-mask tails), and a register-tiled transpose. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

#define ELT(name) gtr_avx512_##name
#define W 16
typedef __m512 V;
typedef __mmask16 VM;
typedef __mmask16 VC;

INLINE V v_zero(void) { return _mm512_setzero_ps(); }
INLINE V v_set1(float f) { return _mm512_set1_ps(f); }
INLINE V v_load(const float *p) { return _mm512_loadu_ps(p); }
INLINE VM v_tail(size_t r) { return r >= 16 ? 0xFFFF : (__mmask16)((1u << r) - 1); }
INLINE V v_loadm(const float *p, VM m, float fill) { return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, p); }
INLINE void v_storem(float *p, VM m, V v) { _mm512_mask_storeu_ps(p, m, v); }
INLINE V v_add(V a, V b) { return _mm512_add_ps(a, b); }
INLINE V v_sub(V a, V b) { return _mm512_sub_ps(a, b); }
INLINE V v_mul(V a, V b) { return _mm512_mul_ps(a, b); }
INLINE V v_div(V a, V b) { return _mm512_div_ps(a, b); }
INLINE V v_fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
INLINE V v_fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
INLINE V v_max(V a, V b) { return _mm512_max_ps(a, b); }
INLINE V v_min(V a, V b) { return _mm512_min_ps(a, b); }
INLINE VC v_gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
INLINE VC v_lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
INLINE V v_sel(VC c, V t, V f) { return _mm512_mask_mov_ps(f, c, t); }
INLINE V v_round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
INLINE V v_pow2i(V n)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
INLINE float v_hsum(V v) { return _mm512_reduce_add_ps(v); }
INLINE float v_hmax(V v) { return _mm512_reduce_max_ps(v); }

#include "kernels/eltwise_body.h"

/* 16x16 tile in registers: 32-bit, 64-bit and two 128-bit-lane interleaving rounds, every loop
 * unrolled so that the 32 vectors stay in registers (the same loops not unrolled, at -O2, passed
 * each round through the stack: on the Xeon of issue 19 a 64x64 block took ~780 ns that way,
 * ~380 ns in registers; on Zen 5, S = Q·Kᵀ through sgemm_nt at L = 128 +10%). */
INLINE void tr16(const float *s, size_t lds, float *d, size_t ldd)
{
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(s + (size_t)i * lds);
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), e = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
    }
#pragma GCC unroll 2
    for (int h = 0; h < 16; h += 8)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
#pragma GCC unroll 16
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
