/* hash.c — FNV-1a fingerprints and CRC-32 checksums for our on-disk formats. */
#include "core.h"

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
