/* fuzz_index.c — libFuzzer target for the dense index reader and search over what it accepts.
 * Each input is opened twice: as is (checksums must reject almost everything), and after the
 * fuzzer "repairs" its checksums from the section table, so mutations reach the structural
 * checks (offsets, sizes, string tables, metadata) and, when those pass, search and every
 * accessor. Every outcome must be a clean index or a clean error. */
#include "index/index_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void exercise(const gtr_index *ix)
{
    size_t n = gtr_index_count(ix), dim = (size_t)gtr_index_dim(ix), len;
    for (size_t i = 0; i < n; i++) {
        const char *id = gtr_index_doc_id(ix, i, &len);
        volatile char sink = len ? id[len - 1] : 0;
        const char *sn = gtr_index_doc_snippet(ix, i, &len);
        sink = len ? sn[len - 1] : 0;
        (void)sink;
    }
    (void)gtr_index_model_description(ix);
    (void)gtr_index_model_hint(ix);
    if (n == 0 || dim > 4096) return;
    float *q = calloc(2 * dim, sizeof *q);
    gtr_hit hits[2 * 5];
    size_t nh[2];
    if (!q) return;
    for (size_t k = 0; k < dim; k++) q[k] = q[dim + k] = (k % 3 == 0) ? 0.5f : -0.25f;
    gtr_error e;
    gtr_search_options exact = gtr_index_default_search_options(), compact = exact;
    compact.use_compact = 1;
    gtr_index_search(ix, q, 2, 5, &exact, hits, nh, &e);
    gtr_index_search(ix, q, 2, 5, &compact, hits, nh, &e);
    free(q);
}

/* Recompute every checksum the section table describes (where it lies inside the buffer). */
static void repair(uint8_t *p, size_t size)
{
    if (size < GTR_IX_HEADER_BYTES || memcmp(p, GTR_IX_MAGIC, 8) != 0) return;
    uint32_t ns = gtr_ix_rd32(p + 36), chunk = gtr_ix_rd32(p + 48);
    if (ns == 0 || ns > GTR_IX_MAX_SECTIONS || chunk < GTR_IX_MIN_CHUNK || chunk > GTR_IX_MAX_CHUNK ||
        (chunk & (chunk - 1)))
        return;
    size_t table_end = GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * ns;
    if (size < table_end) return;
    const uint8_t *crcs_entry = p + GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * (ns - 1);
    uint64_t coff = gtr_ix_rd64(crcs_entry + 8), csize = gtr_ix_rd64(crcs_entry + 16);
    if (coff > size || csize > size - coff) return;
    for (uint32_t i = 0; i + 1 < ns; i++) {
        const uint8_t *e = p + GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * i;
        uint64_t off = gtr_ix_rd64(e + 8), sz = gtr_ix_rd64(e + 16), first = gtr_ix_rd64(e + 24);
        if (off > size || sz > size - off) continue;
        for (uint64_t c = 0; c * chunk < sz; c++) {
            uint64_t slot = first + c;
            if (slot >= csize / 4) break;
            size_t len = (size_t)(sz - c * chunk < chunk ? sz - c * chunk : chunk);
            gtr_ix_wr32(p + coff + 4 * slot, gtr_crc32(0, p + off + c * chunk, len));
        }
    }
    gtr_ix_wr32(p + 120, gtr_crc32(0, p + coff, (size_t)csize));
    uint32_t crc = gtr_crc32(gtr_crc32(0, p, 124), p + GTR_IX_HEADER_BYTES, table_end - GTR_IX_HEADER_BYTES);
    gtr_ix_wr32(p + 124, crc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gtr_error e;
    /* a 64-byte aligned copy, as a mapped file would be */
    uint8_t *copy = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!copy) return 0;
    memcpy(copy, data, size);
    gtr_index *ix = gtr_ix_open_buffer(copy, size, "fuzz", 0, NULL, &e);
    if (ix) exercise(ix);
    gtr_index_free(ix);
    repair(copy, size);
    ix = gtr_ix_open_buffer(copy, size, "fuzz", 0, NULL, &e);
    if (ix) exercise(ix);
    gtr_index_free(ix);
    free(copy);
    return 0;
}
