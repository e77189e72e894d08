/* hash.c — FNV-1a fingerprints and CRC-32 checksums for our on-disk formats. */
#include "core.h"

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

/* Slicing-by-1 table CRC (IEEE 802.3 polynomial, reflected), built on first use per call
 * site would need state; a constant table computed at compile time keeps it state-free. */
#define CRC_POLY 0xEDB88320u
#define T1(c) (((c) & 1) ? (CRC_POLY ^ ((c) >> 1)) : ((c) >> 1))
#define T8(c) T1(T1(T1(T1(T1(T1(T1(T1(c))))))))
#define R4(n) T8((n)), T8((n) + 1u), T8((n) + 2u), T8((n) + 3u)
#define R16(n) R4(n), R4((n) + 4u), R4((n) + 8u), R4((n) + 12u)
#define R64(n) R16(n), R16((n) + 16u), R16((n) + 32u), R16((n) + 48u)
static const uint32_t crc_table[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};

uint32_t gtr_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
