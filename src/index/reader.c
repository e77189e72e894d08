/* reader.c — opening an index: the file is untrusted, so every field, offset and size is
 * checked before anything is dereferenced, every byte is covered by a checksum (or must be
 * zero padding), and the first problem found is reported as a one-line GTR_ERR_FORMAT. */
#include "index/index_internal.h"

#include "data/data.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) gtr_seterr(err, GTR_ERR_FORMAT, __VA_ARGS__)

static gtr_status parse_header(const char *path, const uint8_t *p, size_t size, gtr_ix_header *h,
                               gtr_error *err)
{
    memset(h, 0, sizeof *h);
    if (size < 8 || memcmp(p, GTR_IX_MAGIC, 8) != 0)
        return BAD("%s: not a gtr index (no \"" GTR_IX_MAGIC "\" magic at offset 0)", path);
    if (size < GTR_IX_HEADER_BYTES)
        return BAD("%s: truncated index: %zu bytes, the header alone needs %u", path, size,
                   GTR_IX_HEADER_BYTES);
    h->n_sections = gtr_ix_rd32(p + 36);
    if (gtr_ix_rd32(p + 12) != GTR_IX_HEADER_BYTES || h->n_sections == 0 ||
        h->n_sections > GTR_IX_MAX_SECTIONS)
        return BAD("%s: corrupt index header (header size %u, %u sections)", path,
                   gtr_ix_rd32(p + 12), h->n_sections);
    size_t table_end = GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * h->n_sections;
    if (size < table_end)
        return BAD("%s: truncated index: %zu bytes, the section table ends at %zu", path, size, table_end);
    uint32_t crc = gtr_crc32(gtr_crc32(0, p, 124), p + GTR_IX_HEADER_BYTES, table_end - GTR_IX_HEADER_BYTES);
    if (crc != gtr_ix_rd32(p + 124))
        return BAD("%s: corrupt index: header checksum mismatch", path);
    h->version = gtr_ix_rd32(p + 8);
    if (h->version != GTR_IX_VERSION)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: index format version %u is not supported (this gtr reads version %u)",
                          path, h->version, GTR_IX_VERSION);
    h->file_size = gtr_ix_rd64(p + 16);
    h->n_docs = gtr_ix_rd64(p + 24);
    h->dim = gtr_ix_rd32(p + 32);
    h->fingerprint = gtr_ix_rd64(p + 40);
    h->chunk_bytes = gtr_ix_rd32(p + 48);
    h->compact = gtr_ix_rd32(p + 52);
    h->crcs_crc = gtr_ix_rd32(p + 120);
    for (size_t i = 56; i < 120; i++)
        if (p[i]) return BAD("%s: corrupt index header (reserved byte %zu is not zero)", path, i);
    if (h->file_size != size)
        return BAD("%s: truncated or extended index: the file has %zu bytes, its header says %llu",
                   path, size, (unsigned long long)h->file_size);
    if (h->dim == 0 || h->dim > GTR_IX_MAX_DIM)
        return BAD("%s: corrupt index header (dimension %u)", path, h->dim);
    if (h->chunk_bytes < GTR_IX_MIN_CHUNK || h->chunk_bytes > GTR_IX_MAX_CHUNK ||
        (h->chunk_bytes & (h->chunk_bytes - 1)))
        return BAD("%s: corrupt index header (checksum chunk size %u)", path, h->chunk_bytes);
    if (h->compact > GTR_COMPACT_INT8)
        return BAD("%s: corrupt index header (compact kind %u)", path, h->compact);
    /* sections: in file order, aligned, not overlapping, gaps zero, the last ending the file */
    uint64_t pos = table_end, chunks = 0;
    for (uint32_t i = 0; i < h->n_sections; i++) {
        const uint8_t *e = p + GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * i;
        gtr_ix_section *s = &h->sections[i];
        s->kind = gtr_ix_rd32(e);
        s->offset = gtr_ix_rd64(e + 8);
        s->size = gtr_ix_rd64(e + 16);
        s->first_chunk = gtr_ix_rd64(e + 24);
        if (s->kind == 0 || s->kind > GTR_IX_KIND_MAX || gtr_ix_rd32(e + 4) != 0)
            return BAD("%s: corrupt index: section %u has unknown kind %u", path, i, s->kind);
        for (uint32_t j = 0; j < i; j++)
            if (h->sections[j].kind == s->kind)
                return BAD("%s: corrupt index: section '%s' appears twice", path, gtr_ix_kind_name(s->kind));
        if (s->offset % GTR_IX_ALIGN || s->offset < pos || s->offset > size || s->size > size - s->offset)
            return BAD("%s: corrupt or truncated index: section '%s' at %llu+%llu does not fit the "
                       "%zu-byte file", path, gtr_ix_kind_name(s->kind), (unsigned long long)s->offset,
                       (unsigned long long)s->size, size);
        for (uint64_t g = pos; g < s->offset; g++)
            if (p[g]) return BAD("%s: corrupt index: non-zero padding byte at offset %llu", path,
                                 (unsigned long long)g);
        if (s->kind != GTR_IX_CRCS) {
            if (s->first_chunk != chunks)
                return BAD("%s: corrupt index: section '%s' has a bad checksum index", path,
                           gtr_ix_kind_name(s->kind));
            chunks += (s->size + h->chunk_bytes - 1) / h->chunk_bytes;
        }
        pos = s->offset + s->size;
    }
    if (pos != size)
        return BAD("%s: corrupt index: %llu unexplained bytes at the end", path,
                   (unsigned long long)(size - pos));
    const gtr_ix_section *c = &h->sections[h->n_sections - 1];
    if (c->kind != GTR_IX_CRCS || c->size != chunks * 4)
        return BAD("%s: corrupt index: the checksum section is missing or has the wrong size", path);
    if (gtr_crc32(0, p + c->offset, (size_t)c->size) != h->crcs_crc)
        return BAD("%s: corrupt index: checksum table mismatch", path);
    return GTR_OK;
}

/* ---- parallel checksum verification: one task per chunk */
typedef struct {
    const uint8_t *base;
    const gtr_ix_header *h;
    const uint8_t *crcs;
    const uint32_t *task_section; /* section of each task's chunk */
    const uint64_t *task_chunk;   /* chunk index (global) */
    atomic_size_t first_bad;      /* lowest failing task index, or SIZE_MAX */
} verify_ctx;

static void verify_task(void *vctx, size_t t, int tid)
{
    (void)tid;
    verify_ctx *c = vctx;
    const gtr_ix_section *s = &c->h->sections[c->task_section[t]];
    uint64_t local = c->task_chunk[t] - s->first_chunk;
    uint64_t off = local * c->h->chunk_bytes;
    size_t len = (size_t)GTR_MIN((uint64_t)c->h->chunk_bytes, s->size - off);
    uint32_t crc = gtr_crc32(0, c->base + s->offset + off, len);
    if (crc != gtr_ix_rd32(c->crcs + 4 * c->task_chunk[t])) {
        size_t cur = atomic_load(&c->first_bad);
        while (t < cur && !atomic_compare_exchange_weak(&c->first_bad, &cur, t)) {
        }
    }
}

static gtr_status verify_chunks(const char *path, const uint8_t *base, const gtr_ix_header *h,
                                bool skip_vectors, gtr_pool *pool, gtr_error *err)
{
    const gtr_ix_section *crcs = &h->sections[h->n_sections - 1];
    size_t n_tasks = 0, total = (size_t)(crcs->size / 4);
    uint32_t *sec = gtr_xmalloc(total * sizeof *sec, "index verification", err);
    uint64_t *chunk = gtr_xmalloc(total * sizeof *chunk, "index verification", err);
    if (!sec || !chunk) {
        free(sec);
        free(chunk);
        return GTR_ERR_NOMEM;
    }
    for (uint32_t i = 0; i + 1 < h->n_sections; i++) {
        const gtr_ix_section *s = &h->sections[i];
        bool bulk = s->kind == GTR_IX_VECTORS || s->kind == GTR_IX_COMPACT;
        uint64_t n = (s->size + h->chunk_bytes - 1) / h->chunk_bytes;
        if (bulk && skip_vectors) continue;
        for (uint64_t k = 0; k < n; k++) {
            sec[n_tasks] = i;
            chunk[n_tasks++] = s->first_chunk + k;
        }
    }
    verify_ctx c = {base, h, base + crcs->offset, sec, chunk, SIZE_MAX};
    gtr_pool_for(pool, n_tasks, verify_task, &c);
    size_t bad = atomic_load(&c.first_bad);
    gtr_status st = GTR_OK;
    if (bad != SIZE_MAX) {
        const gtr_ix_section *s = &h->sections[sec[bad]];
        uint64_t off = (chunk[bad] - s->first_chunk) * h->chunk_bytes;
        st = BAD("%s: corrupt index: checksum mismatch in section '%s' (bytes %llu..%llu of the file)",
                 path, gtr_ix_kind_name(s->kind), (unsigned long long)(s->offset + off),
                 (unsigned long long)(s->offset + GTR_MIN(s->size, off + h->chunk_bytes)));
    }
    free(sec);
    free(chunk);
    return st;
}

static const gtr_ix_section *find(const gtr_ix_header *h, uint32_t kind)
{
    for (uint32_t i = 0; i < h->n_sections; i++)
        if (h->sections[i].kind == kind) return &h->sections[i];
    return NULL;
}

/* A string table of n strings: u64 offsets[n + 1] then bytes. */
static gtr_status strtab(const char *path, const uint8_t *base, const gtr_ix_section *s, uint64_t n,
                         size_t max_len, bool nonempty, const uint64_t **off, const char **bytes,
                         gtr_error *err)
{
    const char *what = gtr_ix_kind_name(s->kind);
    if (n >= s->size / 8) return BAD("%s: corrupt index: section '%s' is too small for %llu entries",
                                     path, what, (unsigned long long)n);
    const uint64_t *o = (const uint64_t *)(const void *)(base + s->offset);
    uint64_t blob = s->size - 8 * (n + 1);
    if (o[0] != 0 || o[n] != blob)
        return BAD("%s: corrupt index: section '%s' has inconsistent offsets", path, what);
    for (uint64_t i = 0; i < n; i++) {
        if (o[i + 1] < o[i] || o[i + 1] - o[i] > max_len || (nonempty && o[i + 1] == o[i]))
            return BAD("%s: corrupt index: section '%s' entry %llu has a bad length", path, what,
                       (unsigned long long)i);
    }
    *off = o;
    *bytes = (const char *)(o + n + 1);
    return GTR_OK;
}

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static gtr_status parse_meta(gtr_index *ix, const gtr_ix_section *s, gtr_error *err)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)ix->map.data + s->offset, (size_t)s->size, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return BAD("%s: corrupt index: the meta section is not a JSON object", ix->path);
    }
    json_t *model = json_object_get(root, "model");
    const char *desc = json_string_value(json_object_get(model, "description"));
    const char *hint = json_string_value(json_object_get(model, "hint"));
    ix->model_desc = dup_str(desc ? desc : "");
    ix->model_hint = hint ? dup_str(hint) : NULL;
    json_decref(root);
    if (!ix->model_desc || (hint && !ix->model_hint)) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    return GTR_OK;
}

static gtr_status validate(gtr_index *ix, unsigned flags, gtr_pool *pool, gtr_error *err)
{
    const char *path = ix->path;
    const uint8_t *p = ix->map.data;
    gtr_ix_header *h = &ix->h;
    gtr_status st = parse_header(path, p, ix->map.size, h, err);
    if (st) return st;
    if ((st = verify_chunks(path, p, h, flags & GTR_INDEX_OPEN_NO_VERIFY, pool, err))) return st;
    ix->dim = h->dim;
    ix->n = (size_t)h->n_docs;
    if ((uint64_t)ix->n != h->n_docs) return BAD("%s: index too large for this machine", path);
    const gtr_ix_section *meta = find(h, GTR_IX_META), *ids = find(h, GTR_IX_IDS),
                         *snip = find(h, GTR_IX_SNIPPETS), *vec = find(h, GTR_IX_VECTORS),
                         *cmp = find(h, GTR_IX_COMPACT), *aux = find(h, GTR_IX_CAUX),
                         *dead = find(h, GTR_IX_DEAD);
    if (!meta || !ids || !snip || !vec)
        return BAD("%s: corrupt index: a required section (meta, ids, snippets, vectors) is missing", path);
    size_t vbytes;
    if (!gtr_mul_ok(ix->n, ix->dim, &vbytes) || !gtr_mul_ok(vbytes, 4, &vbytes) || vec->size != vbytes)
        return BAD("%s: corrupt index: the vector section has %llu bytes, not %llu x %zu floats", path,
                   (unsigned long long)vec->size, (unsigned long long)h->n_docs, ix->dim);
    ix->vectors = (const float *)(const void *)(p + vec->offset);
    if ((st = strtab(path, p, ids, h->n_docs, GTR_IX_MAX_ID_BYTES, true, &ix->id_off, &ix->id_bytes, err)))
        return st;
    if ((st = strtab(path, p, snip, h->n_docs, SIZE_MAX, false, &ix->snip_off, &ix->snip_bytes, err)))
        return st;
    if (h->compact != GTR_COMPACT_NONE) {
        size_t cb = vbytes / 4 * (h->compact == GTR_COMPACT_F16 ? 2 : 1);
        if (!cmp || !aux || cmp->size != cb || aux->size != (uint64_t)ix->n * GTR_IX_CAUX_FLOATS * 4)
            return BAD("%s: corrupt index: the compact sections do not match %llu x %zu", path,
                       (unsigned long long)h->n_docs, ix->dim);
        ix->compact = p + cmp->offset;
        ix->caux = (const float *)(const void *)(p + aux->offset);
    } else if (cmp || aux) {
        return BAD("%s: corrupt index: compact sections without a compact kind", path);
    }
    if (dead) {
        const uint8_t *bits = p + dead->offset;
        size_t nb = (ix->n + 7) / 8, c = 0;
        if (dead->size != nb || (ix->n % 8 && bits[nb - 1] >> (ix->n % 8)))
            return BAD("%s: corrupt index: the replaced-documents section does not match %llu documents", path,
                       (unsigned long long)h->n_docs);
        for (size_t i = 0; i < nb; i++) c += (size_t)__builtin_popcount(bits[i]);
        ix->dead = c ? bits : NULL;
        ix->n_dead = c;
    }
    return parse_meta(ix, meta, err);
}

static gtr_index *open_common(const char *path, const void *data, size_t size, unsigned flags,
                               gtr_pool *pool, gtr_error *err)
{
    gtr_index *ix = gtr_xcalloc(1, sizeof *ix, "index", err);
    if (!ix) return NULL;
    ix->path = dup_str(path);
    if (!ix->path) {
        free(ix);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    gtr_status st = GTR_OK;
    if (data) {
        ix->map.data = data;
        ix->map.size = size;
    } else {
        st = gtr_mmap_open(path, &ix->map, err);
        ix->mapped = !st;
    }
    if (!st) st = validate(ix, flags, pool, err);
    if (st) {
        gtr_index_free(ix);
        return NULL;
    }
    return ix;
}

gtr_index *gtr_index_open(const char *path, unsigned flags, gtr_pool *pool, gtr_error *err)
{
    if (path && gtr_ix_is_manifest(path)) return gtr_ix_open_manifest(path, 0, -1, flags, pool, err);
    return open_common(path, NULL, 0, flags, pool, err);
}

gtr_index *gtr_ix_open_buffer(const void *data, size_t size, const char *name, unsigned flags,
                              gtr_pool *pool, gtr_error *err)
{
    /* an empty buffer is an empty file: validation reports it */
    static const uint8_t none[1] = {0};
    if ((uintptr_t)data % GTR_IX_ALIGN) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: an index buffer must be %u-byte aligned", name, GTR_IX_ALIGN);
        return NULL;
    }
    return open_common(name, size ? data : none, size, flags, pool, err);
}

void gtr_index_free(gtr_index *ix)
{
    if (!ix) return;
    if (ix->mapped) gtr_mmap_close(&ix->map);
    free(ix->owned);
    free(ix->path);
    free(ix->model_desc);
    free(ix->model_hint);
    free(ix);
}

size_t gtr_index_count(const gtr_index *ix) { return ix->n; }
size_t gtr_index_replaced_count(const gtr_index *ix) { return ix->n_dead; }
int gtr_index_doc_live(const gtr_index *ix, size_t doc) { return doc < ix->n && gtr_ix_allowed(ix, NULL, doc); }
int gtr_index_dim(const gtr_index *ix) { return (int)ix->dim; }
uint64_t gtr_index_fingerprint(const gtr_index *ix) { return ix->h.fingerprint; }
const char *gtr_index_model_description(const gtr_index *ix) { return ix->model_desc; }
const char *gtr_index_model_hint(const gtr_index *ix) { return ix->model_hint; }
gtr_index_compact gtr_index_compact_kind(const gtr_index *ix) { return (gtr_index_compact)ix->h.compact; }

const char *gtr_index_doc_id(const gtr_index *ix, size_t doc, size_t *len)
{
    if (doc >= ix->n) return NULL;
    if (len) *len = (size_t)(ix->id_off[doc + 1] - ix->id_off[doc]);
    return ix->id_bytes + ix->id_off[doc];
}

const char *gtr_index_doc_snippet(const gtr_index *ix, size_t doc, size_t *len)
{
    if (doc >= ix->n) return NULL;
    if (len) *len = (size_t)(ix->snip_off[doc + 1] - ix->snip_off[doc]);
    return ix->snip_bytes + ix->snip_off[doc];
}

const float *gtr_index_vector(const gtr_index *ix, size_t doc)
{
    return doc < ix->n ? ix->vectors + doc * ix->dim : NULL;
}

gtr_status gtr_index_check_model(const gtr_index *ix, const gtr_model *m, gtr_error *err)
{
    uint64_t fp = gtr_model_fingerprint(m);
    int dim = gtr_model_dim(m);
    if (m && !gtr_model_has_fingerprint(m))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "%s: the model was loaded with no_fingerprint, so it cannot be checked against "
                          "the index's (fingerprint %016llx): load it without that option",
                          ix->path, (unsigned long long)ix->h.fingerprint);
    if (fp == ix->h.fingerprint && (size_t)dim == ix->dim) return GTR_OK;
    return gtr_seterr(err, GTR_ERR_MISMATCH,
                      "%s: the index was built with another model (index: fingerprint %016llx, "
                      "dim %zu%s%s; model: fingerprint %016llx, dim %d) — search with the model "
                      "that built it, or rebuild the index",
                      ix->path, (unsigned long long)ix->h.fingerprint, ix->dim,
                      ix->model_hint ? ", " : "", ix->model_hint ? ix->model_hint : "",
                      (unsigned long long)fp, dim);
}
