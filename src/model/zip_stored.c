/* zip_stored.c — the central directory of a zip archive that is already in memory (a mapped
 * pytorch_model.bin). torch.save writes every entry STORED (uncompressed), so an entry is just
 * a byte range of the file: we need its offset, which libzip does not expose, hence this small
 * reader. Handles zip64 (checkpoints over 4 GiB). Every offset read from the file is checked
 * against the archive size before use. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_CEN 0x02014b50u
#define SIG_LOCAL 0x04034b50u

/* Find the end-of-central-directory record: the last signature within the final 64 KiB + 22. */
static bool find_eocd(const uint8_t *buf, size_t len, size_t *at)
{
    if (len < 22) return false;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;) {
        if (rd32(buf + i) == SIG_EOCD && i + 22 + rd16(buf + i + 20) <= len) {
            *at = i;
            return true;
        }
    }
    return false;
}

gtr_status gtr_zip_index(const uint8_t *buf, size_t len, const char *what, gtr_zip_entry **entries,
                         size_t *n, gtr_error *err)
{
    *entries = NULL;
    *n = 0;
    size_t eocd;
    if (!find_eocd(buf, len, &eocd))
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: not a zip archive (no end of central directory; truncated file?)",
                          what);
    uint64_t count = rd16(buf + eocd + 10), cd_size = rd32(buf + eocd + 12),
             cd_off = rd32(buf + eocd + 16);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* zip64: a locator right before the EOCD points at the zip64 EOCD record. */
        if (eocd < 20 || rd32(buf + eocd - 20) != SIG_LOC64)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: zip64 locator missing", what);
        uint64_t off = rd64(buf + eocd - 20 + 8);
        if (off > len || len - off < 56 || rd32(buf + off) != SIG_EOCD64)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: zip64 end of central directory is invalid",
                              what);
        count = rd64(buf + off + 32);
        cd_size = rd64(buf + off + 40);
        cd_off = rd64(buf + off + 48);
    }
    if (cd_off > len || cd_size > len - cd_off)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: central directory lies outside the file (truncated?)", what);
    /* Each central record is at least 46 bytes: bounds the count before allocating. */
    if (count > cd_size / 46)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: central directory claims %llu entries in %llu bytes",
                          what, (unsigned long long)count, (unsigned long long)cd_size);
    gtr_zip_entry *e = gtr_xcalloc(count ? (size_t)count : 1, sizeof *e, "zip entries", err);
    if (!e) return GTR_ERR_NOMEM;
    const uint8_t *p = buf + cd_off, *end = buf + cd_off + cd_size;
    gtr_status st = GTR_OK;
    for (uint64_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < 46 || rd32(p) != SIG_CEN) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: bad central directory record %llu", what,
                            (unsigned long long)i);
            goto fail;
        }
        uint16_t flags = rd16(p + 8), method = rd16(p + 10);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), local = rd32(p + 42);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: central directory record %llu is truncated",
                            what, (unsigned long long)i);
            goto fail;
        }
        const uint8_t *name = p + 46, *x = name + nlen, *xend = x + xlen;
        /* zip64 extra field (id 1): 8-byte values for whichever 32-bit fields are saturated,
         * in the order uncompressed size, compressed size, local header offset. */
        while (xend - x >= 4) {
            uint16_t id = rd16(x), sz = rd16(x + 2);
            if ((size_t)(xend - x - 4) < sz) break;
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = q + sz;
                if (usize == 0xffffffffu && qe - q >= 8) usize = rd64(q), q += 8;
                if (csize == 0xffffffffu && qe - q >= 8) csize = rd64(q), q += 8;
                if (local == 0xffffffffu && qe - q >= 8) local = rd64(q), q += 8;
            }
            x += 4 + sz;
        }
        if (flags & 1) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: entry '%.*s' is encrypted", what,
                            (int)GTR_MIN(nlen, 200), (const char *)name);
            goto fail;
        }
        if (local > len || len - local < 30 || rd32(buf + local) != SIG_LOCAL) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%.*s': local header outside the file",
                            what, (int)GTR_MIN(nlen, 200), (const char *)name);
            goto fail;
        }
        uint64_t data = local + 30 + (uint64_t)rd16(buf + local + 26) + rd16(buf + local + 28);
        if (data > len || csize > len - data) {
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s: entry '%.*s' extends beyond the end of the file (truncated?)",
                            what, (int)GTR_MIN(nlen, 200), (const char *)name);
            goto fail;
        }
        if (method == 0 && csize != usize) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: stored entry '%.*s' has inconsistent sizes",
                            what, (int)GTR_MIN(nlen, 200), (const char *)name);
            goto fail;
        }
        e[i].name = (const char *)name;
        e[i].name_len = nlen;
        e[i].data_off = data;
        e[i].size = csize;
        e[i].crc = rd32(p + 16);
        e[i].method = method;
        p += 46 + nlen + xlen + clen;
    }
    *entries = e;
    *n = (size_t)count;
    return GTR_OK;
fail:
    free(e);
    return st;
}
