/* writer.c — writes an index file section by section into an atomic temp file: each section
 * starts 64-byte aligned (padding is zeros, which the reader checks), every chunk's CRC-32 is
 * computed while streaming, and the header goes in last, once everything it describes is on
 * disk. Nothing appears at the final path until commit (fsync + rename). */
#include "index/index_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *gtr_ix_kind_name(uint32_t kind)
{
    switch (kind) {
    case GTR_IX_META: return "meta";
    case GTR_IX_IDS: return "ids";
    case GTR_IX_SNIPPETS: return "snippets";
    case GTR_IX_VECTORS: return "vectors";
    case GTR_IX_COMPACT: return "compact";
    case GTR_IX_CAUX: return "compact-aux";
    case GTR_IX_CRCS: return "checksums";
    case GTR_IX_DEAD: return "replaced";
    default: return "unknown";
    }
}

void gtr_ix_header_encode(const gtr_ix_header *h, uint8_t *out)
{
    size_t total = GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * h->n_sections;
    memset(out, 0, total);
    memcpy(out, GTR_IX_MAGIC, 8);
    gtr_ix_wr32(out + 8, h->version);
    gtr_ix_wr32(out + 12, GTR_IX_HEADER_BYTES);
    gtr_ix_wr64(out + 16, h->file_size);
    gtr_ix_wr64(out + 24, h->n_docs);
    gtr_ix_wr32(out + 32, h->dim);
    gtr_ix_wr32(out + 36, h->n_sections);
    gtr_ix_wr64(out + 40, h->fingerprint);
    gtr_ix_wr32(out + 48, h->chunk_bytes);
    gtr_ix_wr32(out + 52, h->compact);
    gtr_ix_wr32(out + 120, h->crcs_crc);
    for (uint32_t i = 0; i < h->n_sections; i++) {
        uint8_t *e = out + GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * i;
        gtr_ix_wr32(e, h->sections[i].kind);
        gtr_ix_wr64(e + 8, h->sections[i].offset);
        gtr_ix_wr64(e + 16, h->sections[i].size);
        gtr_ix_wr64(e + 24, h->sections[i].first_chunk);
    }
    uint32_t crc = gtr_crc32(0, out, 124);
    crc = gtr_crc32(crc, out + GTR_IX_HEADER_BYTES, total - GTR_IX_HEADER_BYTES);
    gtr_ix_wr32(out + 124, crc);
}

static gtr_status raw_write(gtr_ix_writer *w, const void *data, size_t len, gtr_error *err)
{
    gtr_status st = gtr_atomic_write(&w->f, data, len, err);
    if (!st) w->pos += len;
    return st;
}

gtr_status gtr_ix_writer_open(gtr_ix_writer *w, const char *path, uint64_t n_docs, uint32_t dim,
                              uint64_t fingerprint, uint32_t compact, uint32_t n_sections,
                              gtr_error *err)
{
    memset(w, 0, sizeof *w);
    w->cur = -1;
    if (n_sections > GTR_IX_MAX_SECTIONS)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "index writer: too many sections");
    w->h.version = GTR_IX_VERSION;
    w->h.n_docs = n_docs;
    w->h.dim = dim;
    w->h.fingerprint = fingerprint;
    w->h.compact = compact;
    w->h.chunk_bytes = GTR_IX_CHUNK_BYTES;
    w->h.n_sections = 0;
    gtr_status st = gtr_atomic_open(&w->f, path, err);
    if (st) return st;
    w->open = true;
    /* placeholder for the header and table, rewritten at commit */
    uint8_t zero[GTR_IX_HEADER_BYTES + GTR_IX_ENTRY_BYTES * GTR_IX_MAX_SECTIONS] = {0};
    st = raw_write(w, zero, GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * n_sections, err);
    w->n_declared = n_sections;
    if (st) gtr_ix_writer_abort(w);
    return st;
}

gtr_status gtr_ix_writer_begin(gtr_ix_writer *w, uint32_t kind, gtr_error *err)
{
    static const uint8_t zero[GTR_IX_ALIGN] = {0};
    if (w->cur >= 0 || w->h.n_sections >= GTR_IX_MAX_SECTIONS)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "index writer: section order");
    size_t pad = (size_t)((GTR_IX_ALIGN - w->pos % GTR_IX_ALIGN) % GTR_IX_ALIGN);
    gtr_status st = raw_write(w, zero, pad, err);
    if (st) return st;
    gtr_ix_section *s = &w->h.sections[w->h.n_sections];
    s->kind = kind;
    s->offset = w->pos;
    s->size = 0;
    s->first_chunk = w->n_crcs;
    w->cur = (int)w->h.n_sections++;
    w->chunk_crc = 0;
    w->chunk_fill = 0;
    return GTR_OK;
}

static gtr_status push_crc(gtr_ix_writer *w, uint32_t crc, gtr_error *err)
{
    if (w->n_crcs == w->cap_crcs) {
        size_t cap = w->cap_crcs ? w->cap_crcs * 2 : 256;
        uint32_t *p = gtr_xrealloc(w->crcs, cap * sizeof *p, "index checksums", err);
        if (!p) return GTR_ERR_NOMEM;
        w->crcs = p;
        w->cap_crcs = cap;
    }
    w->crcs[w->n_crcs++] = crc;
    return GTR_OK;
}

gtr_status gtr_ix_writer_put(gtr_ix_writer *w, const void *data, size_t len, gtr_error *err)
{
    if (w->cur < 0) return gtr_seterr(err, GTR_ERR_INTERNAL, "index writer: put outside a section");
    gtr_status st = raw_write(w, data, len, err);
    if (st) return st;
    w->h.sections[w->cur].size += len;
    const uint8_t *p = data;
    while (len) {
        size_t take = (size_t)GTR_MIN((uint64_t)len, w->h.chunk_bytes - w->chunk_fill);
        w->chunk_crc = gtr_crc32(w->chunk_crc, p, take);
        w->chunk_fill += take;
        p += take;
        len -= take;
        if (w->chunk_fill == w->h.chunk_bytes) {
            if ((st = push_crc(w, w->chunk_crc, err))) return st;
            w->chunk_crc = 0;
            w->chunk_fill = 0;
        }
    }
    return GTR_OK;
}

gtr_status gtr_ix_writer_end(gtr_ix_writer *w, gtr_error *err)
{
    if (w->cur < 0) return gtr_seterr(err, GTR_ERR_INTERNAL, "index writer: end outside a section");
    gtr_status st = GTR_OK;
    if (w->chunk_fill) st = push_crc(w, w->chunk_crc, err);
    w->cur = -1;
    return st;
}

gtr_status gtr_ix_writer_commit(gtr_ix_writer *w, gtr_error *err)
{
    gtr_status st;
    if ((st = gtr_ix_writer_begin(w, GTR_IX_CRCS, err))) goto fail;
    uint8_t b[4];
    uint32_t crc = 0;
    for (size_t i = 0; i < w->n_crcs; i++) {
        gtr_ix_wr32(b, w->crcs[i]);
        crc = gtr_crc32(crc, b, 4);
        if ((st = raw_write(w, b, 4, err))) goto fail;
    }
    w->h.sections[w->cur].size = (uint64_t)w->n_crcs * 4;
    w->cur = -1;
    if (w->h.n_sections != w->n_declared) {
        st = gtr_seterr(err, GTR_ERR_INTERNAL, "index writer: %u sections written, %u declared",
                        w->h.n_sections, w->n_declared);
        goto fail;
    }
    w->h.crcs_crc = crc;
    w->h.file_size = w->pos;
    uint8_t hdr[GTR_IX_HEADER_BYTES + GTR_IX_ENTRY_BYTES * GTR_IX_MAX_SECTIONS];
    gtr_ix_header_encode(&w->h, hdr);
    if (fflush(w->f.fp) != 0 || fseeko(w->f.fp, 0, SEEK_SET) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: seek failed: %s", w->f.tmp_path, strerror(errno));
        goto fail;
    }
    if ((st = gtr_atomic_write(&w->f, hdr, GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * w->h.n_sections, err)))
        goto fail;
    st = gtr_atomic_commit(&w->f, err);
    w->open = false;
    free(w->crcs);
    w->crcs = NULL;
    return st;
fail:
    gtr_ix_writer_abort(w);
    return st;
}

void gtr_ix_writer_abort(gtr_ix_writer *w)
{
    if (w->open) gtr_atomic_abort(&w->f);
    w->open = false;
    free(w->crcs);
    w->crcs = NULL;
}
