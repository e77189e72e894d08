/* hash.c — FNV-1a fingerprints and CRC-32 checksums for our on-disk formats. */
#include "core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

uint64_t gtr_fnv1a64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* CRC-32 (IEEE, the zip/zlib polynomial) from zlib: its braided implementation runs at several
 * GB/s, which matters when an index of gigabytes is verified at open. */
uint32_t gtr_crc32(uint32_t crc, const void *data, size_t len)
{
    return (uint32_t)crc32_z(crc, data, len);
}

/* The CRC of a||b from crc(a), crc(b) and b's length (zlib's crc32_combine): lets a writer
 * checksum sections it writes out of file order. */
uint32_t gtr_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return (uint32_t)crc32_combine(crc_a, crc_b, (z_off_t)len_b);
}

/* ---- CRC-32C ----------------------------------------------------------------------------- */

/* Reflected polynomial 0x82F63B78; table[k][b]: the CRC of byte b followed by k zero bytes. */
static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static bool crc32c_hw;

static void crc32c_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc32c_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            crc32c_table[k][b] = (crc32c_table[k - 1][b] >> 8) ^ crc32c_table[0][crc32c_table[k - 1][b] & 0xff];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    const char *cap = getenv("GTR_CPU");
    crc32c_hw = __builtin_cpu_supports("sse4.2") && !(cap && !strcmp(cap, "generic"));
#endif
}

static uint32_t crc32c_sw(uint32_t c, const uint8_t *p, size_t n)
{
    for (; n && ((uintptr_t)p & 7); n--) c = (c >> 8) ^ crc32c_table[0][(c ^ *p++) & 0xff];
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c; /* little-endian: the CRC meets the first four bytes */
        c = crc32c_table[7][w & 0xff] ^ crc32c_table[6][(w >> 8) & 0xff] ^ crc32c_table[5][(w >> 16) & 0xff] ^
            crc32c_table[4][(w >> 24) & 0xff] ^ crc32c_table[3][(w >> 32) & 0xff] ^
            crc32c_table[2][(w >> 40) & 0xff] ^ crc32c_table[1][(w >> 48) & 0xff] ^ crc32c_table[0][w >> 56];
    }
    while (n--) c = (c >> 8) ^ crc32c_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw1(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}

__attribute__((target("sse4.2"))) static void crc32c_hw4(const uint8_t *const p[4], size_t n, uint32_t out[4])
{
    uint64_t a = 0xffffffffu, b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, p[0] + i, 8);
        memcpy(&w1, p[1] + i, 8);
        memcpy(&w2, p[2] + i, 8);
        memcpy(&w3, p[3] + i, 8);
        a = _mm_crc32_u64(a, w0);
        b = _mm_crc32_u64(b, w1);
        c = _mm_crc32_u64(c, w2);
        d = _mm_crc32_u64(d, w3);
    }
    out[0] = ~crc32c_hw1((uint32_t)a, p[0] + i, n - i);
    out[1] = ~crc32c_hw1((uint32_t)b, p[1] + i, n - i);
    out[2] = ~crc32c_hw1((uint32_t)c, p[2] + i, n - i);
    out[3] = ~crc32c_hw1((uint32_t)d, p[3] + i, n - i);
}
#endif

uint32_t gtr_crc32c_generic(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw(~crc, data, len);
}

uint32_t gtr_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (crc32c_hw) return ~crc32c_hw1(~crc, data, len);
#endif
    return ~crc32c_sw(~crc, data, len);
}

void gtr_crc32c_x4(const void *const data[4], size_t len, uint32_t out[4])
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (crc32c_hw) {
        const uint8_t *const p[4] = {data[0], data[1], data[2], data[3]};
        crc32c_hw4(p, len, out);
        return;
    }
#endif
    for (int k = 0; k < 4; k++) out[k] = ~crc32c_sw(0xffffffffu, data[k], len);
}
