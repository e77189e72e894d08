/* half.c — IEEE half and bfloat16 <-> float32 conversions (exact, round-to-nearest-even). */
#include "core.h"

#include <string.h>

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float gtr_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in float32 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* The same conversion without branches, so that compilers vectorise the loop (a load of a
 * hub F16 checkpoint spends a quarter of its time here, one call per weight otherwise):
 * the exponent is rebased by 127 - 15; inf/NaN (exponent 31) rebased once more to 255;
 * a subnormal h (exponent 0) is 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, exact. Bit for bit
 * gtr_f16_to_f32 for all 65536 inputs (test_core checks every one). src: little-endian
 * bytes, any alignment. */
static inline float f16_one(uint32_t h)
{
    const float magic = 6.103515625e-05f; /* 2^-14 */
    uint32_t o = (h & 0x7fffu) << 13, e = o & 0x0f800000u;
    o += (uint32_t)(127 - 15) << 23;
    o += (uint32_t)(e == 0x0f800000u) * ((uint32_t)(128 - 16) << 23);
    uint32_t sub = f32_to_bits(bits_to_f32(o + (1u << 23)) - magic), m = 0u - (uint32_t)(e == 0);
    return bits_to_f32(((sub & m) | (o & ~m)) | (h & 0x8000u) << 16);
}

/* GCC's -O2 cost model ("very cheap") leaves this loop scalar; its "cheap" one vectorises it */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("vect-cost-model=cheap")))
#endif
bool gtr_f16_to_f32_n_portable(const uint8_t *src, float *dst, size_t n)
{
    uint32_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8;
        nonfinite |= (h & 0x7c00u) == 0x7c00u;
        dst[i] = f16_one(h);
    }
    return nonfinite != 0;
}

#if defined(__x86_64__)
/* AVX-512 where the CPU has it (and GTR_CPU allows it): asked once, by the first call */
static _Atomic int use_avx512 = -1;
#endif

bool gtr_f16_to_f32_n(const uint8_t *src, float *dst, size_t n)
{
#if defined(__x86_64__)
    int u = use_avx512;
    if (u < 0) {
        gtr_cpu c = gtr_cpu_detect();
        use_avx512 = u = c.avx512f && c.avx512bw && c.avx512vl;
    }
    if (u) return gtr_f16_to_f32_n_avx512(src, dst, n);
#endif
    return gtr_f16_to_f32_n_portable(src, dst, n);
}

uint16_t gtr_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (e <= 0) {
        if (e < -10) return sign; /* underflow -> 0 */
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: ok */
    return (uint16_t)(sign | half);
}

float gtr_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t gtr_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
