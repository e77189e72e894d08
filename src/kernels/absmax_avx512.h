/* absmax_avx512.h — the pieces every AVX-512 int8 quantiser (the VNNI and AMX linear paths)
 * shares: the largest |value| of a row of floats (NaN skipped), the row scale's input, and the
 * narrowing of 64 rounded values to their u8 codes. Include it only from files compiled for
 * AVX-512 (F + BW). */
#ifndef GTR_ABSMAX_AVX512_H
#define GTR_ABSMAX_AVX512_H

#include <immintrin.h>
#include <stddef.h>

static inline float gtr_avx512_absmax(const float *src, size_t k)
{
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    /* four independent maxima (the order of a max does not matter): one chain would wait on
     * vmaxps's latency every 16 values */
    __m512 mx = _mm512_setzero_ps(), m1 = mx, m2 = mx, m3 = mx;
    size_t c = 0;
    for (; c + 64 <= k; c += 64) {
        mx = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(src + c), sign), mx); /* NaN skipped */
        m1 = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(src + c + 16), sign), m1);
        m2 = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(src + c + 32), sign), m2);
        m3 = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(src + c + 48), sign), m3);
    }
    mx = _mm512_max_ps(_mm512_max_ps(mx, m1), _mm512_max_ps(m2, m3));
    for (; c + 16 <= k; c += 16) mx = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(src + c), sign), mx);
    if (c < k)
        mx = _mm512_max_ps(_mm512_and_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (k - c)) - 1), src + c), sign),
                           mx);
    return _mm512_reduce_max_ps(mx);
}

/* q0..q3: 64 values already scaled and rounded to int32 (q0 the first 16); returns their u8
 * codes qx + 128, qx clamped to [-127, 127] as gtr_q8 defines them, in order. Saturating packs
 * (int32 -> int16 -> int8 clamp to [-128, 127]), a max with -127 and the offset as a sign flip:
 * the same bytes as clamping, offsetting and narrowing each 16, with half the vector
 * instructions (they run on the ports vpdpbusd needs). */
static inline __m512i gtr_avx512_q8_narrow64(__m512i q0, __m512i q1, __m512i q2, __m512i q3)
{
    /* the packs interleave the four vectors' 128-bit lanes: dword 4 * lane + vector */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(q0, q1), _mm512_packs_epi32(q2, q3));
    b = _mm512_permutexvar_epi32(order, b);
    return _mm512_xor_si512(_mm512_max_epi8(b, _mm512_set1_epi8(-127)), _mm512_set1_epi8((char)0x80));
}

#endif
