/* pack_avx512.c — packing's row pieces (pack.c) on AVX-512, byte for byte the portable ones:
 * the row maximum for the int8 scale, and float32 values converted to the packed type
 * (bf16 by gtr_bf16_daz's integer steps, int8 by gtr_q8's rounding and clamps). */
#include "kernels/kernels_internal.h"

#include <immintrin.h>
#include <string.h>

static inline __mmask16 tail16(size_t r) { return r >= 16 ? 0xFFFF : (__mmask16)((1u << r) - 1); }

float gtr_avx512_absmax(const float *x, size_t n)
{
    /* vmaxps returns its second operand when the first is NaN: NaN is ignored, as the
     * portable `if (t > amax)` ignores it; the maximum does not depend on the order */
    __m512 m0 = _mm512_setzero_ps(), m1 = m0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m0);
        m1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i + 16)), m1);
    }
    for (; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail16(n - i), x + i);
        m0 = _mm512_max_ps(_mm512_abs_ps(v), m0);
    }
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

/* gtr_bf16_daz of 16 floats: exponent 0 -> the sign; NaN -> the high half with the quiet bit;
 * else round to nearest even */
static inline __m256i bf16_daz16(__m512 x)
{
    __m512i u = _mm512_castps_si512(x);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)))), 16);
    __mmask16 zero = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i r = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    r = _mm512_mask_mov_epi32(r, zero, _mm512_and_si512(hi, _mm512_set1_epi32(0x8000)));
    return _mm512_cvtepi32_epi16(r);
}

/* gtr_q8(x * inv) of 16 floats: vcvtps2dq rounds to nearest even and gives INT32_MIN for NaN
 * and out-of-range values, which the clamp turns into -127, as gtr_q8 does */
static inline __m512i q8_16(__m512 x, __m512 inv)
{
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(x, inv));
    return _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
}

/* gtr_q8(x[i] * inv) of 64 floats as 64 bytes in order: the same codes as q8_16 (-127..127)
 * in 21 instructions, where four q8_16 with masked narrowing stores take about 60 (AMD Zen 5,
 * a row piece in L1: 0.11 -> 0.03 ns a value). vpackssdw and vpacksswb saturate: INT32_MIN
 * (from NaN and out-of-range values) becomes -128, which the byte maximum lifts to -127, and
 * anything above 127 becomes 127. They interleave the four vectors' 128-bit lanes, which one
 * dword permute puts back in order. */
static inline __m512i q8_64(const float *x, __m512 inv)
{
    __m512i a = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), inv));
    __m512i b = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16), inv));
    __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 32), inv));
    __m512i e = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 48), inv));
    /* dword 4L + j of the packed vector: values 4L..4L+3 of vector j (a, b, c, e) */
    __m512i q = _mm512_packs_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, e));
    q = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), q);
    return _mm512_max_epi8(q, _mm512_set1_epi8(-127));
}

void gtr_avx512_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                           void *dst, int32_t *sum)
{
    if (type == GTR_W_F32) {
        float *d = dst;
        for (size_t i = 0; i < nv; i += 16) {
            __mmask16 m = tail16(nv - i), mi = i < in ? tail16(in - i) : 0;
            _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(mi, x + i));
        }
    } else if (type == GTR_W_BF16) {
        uint16_t *d = dst;
        for (size_t i = 0; i < nv; i += 16) {
            __mmask16 m = tail16(nv - i), mi = i < in ? tail16(in - i) : 0;
            _mm256_mask_storeu_epi16(d + i, m, bf16_daz16(_mm512_maskz_loadu_ps(mi, x + i)));
        }
    } else {
        int8_t *d = dst;
        __m512 vinv = _mm512_set1_ps(inv);
        __m512i s = _mm512_setzero_si512();
        size_t i = 0;
        if (in >= 64) { /* 64 codes a step, no masks: q8_64 */
            __m512i s64 = _mm512_setzero_si512();
            for (; i + 64 <= in; i += 64) {
                __m512i q = q8_64(x + i, vinv);
                _mm512_storeu_si512((void *)(d + i), q);
                /* the codes' sum: each byte + 128 (unsigned) summed 8 at a time by vpsadbw */
                s64 = _mm512_add_epi64(s64, _mm512_sad_epu8(_mm512_xor_si512(q, _mm512_set1_epi8(-128)),
                                                             _mm512_setzero_si512()));
            }
            *sum += (int32_t)(_mm512_reduce_add_epi64(s64) - 128 * (int64_t)i);
        }
        for (; i < nv; i += 16) {
            __mmask16 m = tail16(nv - i), mi = i < in ? tail16(in - i) : 0;
            /* lanes past in: zero codes (0 * inv is 0 unless inv is not finite: masked) */
            __m512i q = _mm512_maskz_mov_epi32(mi, q8_16(_mm512_maskz_loadu_ps(mi, x + i), vinv));
            s = _mm512_add_epi32(s, q);
            _mm_mask_storeu_epi8(d + i, m, _mm512_cvtepi32_epi8(q));
        }
        *sum += _mm512_reduce_add_epi32(s);
    }
}

/* gtr_avx512_pack_piece on a CPU with AVX512_BF16: bf16 pieces by vcvtne2ps2bf16, 32 values an
 * instruction, which rounds to nearest even, reads a denormal as a zero of its sign and quiets
 * a NaN by setting bit 6 of its high half: gtr_bf16_daz's rules, so the same bits (AMD Zen 5,
 * a piece in L1: 0.088 -> 0.012 ns a value). The other types as gtr_avx512_pack_piece. */
void gtr_avx512bf16_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                               void *dst, int32_t *sum)
{
    if (type != GTR_W_BF16) {
        gtr_avx512_pack_piece(type, x, in, nv, inv, dst, sum);
        return;
    }
    uint16_t *d = dst;
    size_t i = 0;
    for (; i + 32 <= in; i += 32)
        _mm512_storeu_si512((void *)(d + i),
                            (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i)));
    gtr_avx512_pack_piece(type, x + i, in - i, nv - i, inv, d + i, sum);
}

/* 16 x 16 32-bit words: r[i] = row i in, column i out. The loops are unrolled (the pragmas):
 * rolled, gcc -O2 kept r and t in memory, a third of put16's instructions stack loads and
 * stores (AMD Zen 5, sixteen rows into a tile in L1: 0.037 -> 0.018 ns an int8 value). */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16])
{
    __m512i t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* r[4b + j] holds, in 128-bit lane L, rows 4b..4b+3 of column 4L + j */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i a = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);
        __m512i c = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88), d = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_i32x4(a, c, 0x88);      /* column j */
        t[8 + j] = _mm512_shuffle_i32x4(a, c, 0xdd);  /* column 8 + j */
        t[4 + j] = _mm512_shuffle_i32x4(b, d, 0x88);  /* column 4 + j */
        t[12 + j] = _mm512_shuffle_i32x4(b, d, 0xdd); /* column 12 + j */
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

void gtr_avx512_tile_put16(unsigned char *tile, size_t nr, size_t i0, const uint32_t *stage, size_t stride, size_t nw)
{
    size_t q0 = 0;
    for (; q0 + 16 <= nw; q0 += 16) {
        __m512i r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(stage + (size_t)i * stride + q0);
        transpose16(r);
#pragma GCC unroll 16
        for (int q = 0; q < 16; q++) _mm512_storeu_si512((void *)(tile + ((q0 + q) * nr + i0) * 4), r[q]);
    }
    for (; q0 < nw; q0++)
        for (size_t i = 0; i < 16; i++)
            memcpy(tile + (q0 * nr + i0 + i) * 4, stage + i * stride + q0, 4);
}
