/* absmax_avx512.h — the largest |value| of a row of floats with AVX-512 (NaN skipped), the
 * int8 row scale's input in every AVX-512 quantiser (the VNNI and AMX linear paths). Include it
 * only from files compiled for AVX-512. */
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

#endif
