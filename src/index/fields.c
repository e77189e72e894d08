/* fields.c — metadata fields of an index's documents (gtr.h, "fields"), for filters like
 * Chroma's where={"field": value}: a side file "<index>.fields" written atomically next to the
 * index, checksummed and tied to the index's ids (as the IVF deletion file is), so a stale or
 * damaged one is refused rather than used.
 *
 * What is kept: for each document, the scalar members of its corpus line's "metadata" object
 * and its other top-level scalar members except "_id", "title" and "text" (a metadata member
 * wins over a top-level one of the same name): strings as they are, integers in decimal,
 * reals with %.17g, booleans as true/false. Arrays, objects and nulls are not kept.
 *
 * File (little-endian):
 *   header 48 bytes: magic "GTRFLD01", version u32 (1), names u32, documents u64, tag u64 (the
 *     index's ids, gtr_ix_ids_tag), body bytes u64, crc u32 (header bytes [0, 40) then the
 *     body), zero u32
 *   body: names (u32 length + bytes each); u64 offsets[documents + 1] into the entries; the
 *     entries: per document, (u32 name, u8 type 's' 'i' 'r' 'b', u32 length, bytes) each. */
#include "index/index_internal.h"

#include "data/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FLD_MAGIC "GTRFLD01"
#define FLD_HDR 48u

struct gtr_fields {
    size_t n;
    gtr_strmap names;
    char *data;           /* the file */
    const uint8_t *ents;  /* entries */
    uint64_t *off;        /* [n + 1] (copied: the file's are unaligned) */
};

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void gtr_fields_free(gtr_fields *f)
{
    if (!f) return;
    gtr_strmap_free(&f->names);
    free(f->data);
    free(f->off);
    free(f);
}

/* Parse and check a fields file for the first n documents of ix (n = its count, or for a base
 * the file's own count, checked as a prefix of ix). */
static gtr_fields *parse(const char *path, const gtr_index *ix, bool prefix, gtr_error *err)
{
    char *data;
    size_t len;
    if (gtr_read_file(path, 0, &data, &len, err)) return NULL;
    gtr_fields *f = gtr_xcalloc(1, sizeof *f, "fields", err);
    if (!f) { free(data); return NULL; }
    f->data = data;
    gtr_strmap_init(&f->names);
    const uint8_t *p = (const uint8_t *)data;
    gtr_status st = GTR_OK;
#define BADF(...) (st = gtr_seterr(err, GTR_ERR_FORMAT, __VA_ARGS__))
    uint64_t n = 0, body = 0;
    uint32_t nn = 0;
    if (len < FLD_HDR || memcmp(p, FLD_MAGIC, 8) != 0) BADF("%s: not a gtr fields file (truncated or bad magic)", path);
    else if (rd32(p + 44) != 0) BADF("%s: corrupt header", path);
    else if (rd32(p + 8) != 1) BADF("%s: fields file version %u is not supported", path, rd32(p + 8));
    else if ((nn = rd32(p + 12), n = rd64(p + 16), body = rd64(p + 32), body != len - FLD_HDR))
        BADF("%s: %zu bytes, its header says %llu (truncated or extended)", path, len, (unsigned long long)(body + FLD_HDR));
    else if (gtr_crc32(gtr_crc32(0, p, 40), p + FLD_HDR, len - FLD_HDR) != rd32(p + 40))
        BADF("%s: checksum mismatch (corrupt)", path);
    else if (n > gtr_index_count(ix) || (!prefix && n != gtr_index_count(ix)) ||
             rd64(p + 24) != gtr_ix_ids_tag(ix, n))
        st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: fields of another index (%llu documents; this one has %zu or other ids): "
                        "write them again with gtr index --fields-from CORPUS", path, (unsigned long long)n, gtr_index_count(ix));
    size_t pos = FLD_HDR;
    for (uint32_t i = 0; st == GTR_OK && i < nn; i++) {
        uint32_t l = pos + 4 <= len ? rd32(p + pos) : 0;
        uint32_t id;
        bool added;
        if (pos + 4 > len || l > len - pos - 4) BADF("%s: corrupt field names", path);
        else if ((st = gtr_strmap_intern(&f->names, (const char *)p + pos + 4, l, &id, &added, err)) == GTR_OK && !added)
            BADF("%s: corrupt field names (a name twice)", path);
        pos += 4 + (size_t)l;
    }
    if (st == GTR_OK && ((len - pos) / 8 < n + 1)) BADF("%s: corrupt document offsets", path);
    if (st == GTR_OK && !(f->off = gtr_xmalloc((size_t)(n + 1) * 8, "fields", err))) st = GTR_ERR_NOMEM;
    for (uint64_t d = 0; st == GTR_OK && d <= n; d++) f->off[d] = rd64(p + pos + 8 * d);
    if (st == GTR_OK) {
        pos += (size_t)(n + 1) * 8;
        f->ents = p + pos;
        size_t el = len - pos;
        if (f->off[0] != 0 || f->off[n] != el) BADF("%s: corrupt document offsets", path);
        /* every document's entries fit exactly */
        for (uint64_t d = 0; st == GTR_OK && d < n; d++) {
            uint64_t e = f->off[d], end = f->off[d + 1];
            if (end < e || end > el) { BADF("%s: corrupt document offsets", path); break; }
            while (st == GTR_OK && e < end) {
                if (end - e < 9 || rd32(f->ents + e) >= nn || !strchr("sirb", f->ents[e + 4]) || f->ents[e + 4] == 0 ||
                    rd32(f->ents + e + 5) > end - e - 9)
                    BADF("%s: corrupt entry of document %llu", path, (unsigned long long)d);
                else e += 9 + rd32(f->ents + e + 5);
            }
        }
    }
#undef BADF
    f->n = (size_t)n;
    if (st) { gtr_fields_free(f); return NULL; }
    return f;
}

gtr_fields *gtr_fields_open(const char *path, const gtr_index *ix, gtr_error *err)
{
    if (!path || !ix) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "fields open: need a path and its index");
        return NULL;
    }
    return parse(path, ix, false, err);
}

size_t gtr_fields_count(const gtr_fields *f) { return f->names.n; }
const char *gtr_fields_name(const gtr_fields *f, size_t i) { return gtr_strmap_key(&f->names, (uint32_t)i, NULL); }

/* ---- build */

typedef struct {
    gtr_strmap names;
    gtr_buf tmp;        /* entries as they come, per document */
    uint64_t *start, *end; /* [n]: the document's entries in tmp (start == end: none) */
    bool *seen;         /* [n]: given by the corpus (a second line with its id is an error) */
} fbuild;

static gtr_status put_entry(fbuild *b, const char *name, size_t nl, char type, const char *v, size_t vl, gtr_error *err)
{
    uint32_t id;
    gtr_status st = gtr_strmap_intern(&b->names, name, nl, &id, NULL, err);
    uint8_t h[9];
    uint32_t l = (uint32_t)vl;
    memcpy(h, &id, 4);
    h[4] = (uint8_t)type;
    memcpy(h + 5, &l, 4);
    if (!st) st = gtr_buf_append(&b->tmp, h, 9, err);
    if (!st) st = gtr_buf_append(&b->tmp, v, vl, err);
    return st;
}

/* one scalar member, as text */
static gtr_status put_value(fbuild *b, const char *name, const json_t *v, gtr_error *err)
{
    char num[64];
    if (json_is_string(v)) return put_entry(b, name, strlen(name), 's', json_string_value(v), json_string_length(v), err);
    if (json_is_integer(v)) {
        int k = snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        return put_entry(b, name, strlen(name), 'i', num, (size_t)k, err);
    }
    if (json_is_real(v)) {
        int k = snprintf(num, sizeof num, "%.17g", json_real_value(v));
        return put_entry(b, name, strlen(name), 'r', num, (size_t)k, err);
    }
    if (json_is_boolean(v)) return put_entry(b, name, strlen(name), 'b', json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5, err);
    return GTR_OK; /* arrays, objects, null: not kept */
}

static gtr_status doc_fields(fbuild *b, const json_t *obj, gtr_error *err)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const char *key;
    json_t *v;
    gtr_status st = GTR_OK;
    json_object_foreach((json_t *)obj, key, v) {
        if (!strcmp(key, "_id") || !strcmp(key, "title") || !strcmp(key, "text") || !strcmp(key, "metadata")) continue;
        if (json_is_object(meta) && json_object_get(meta, key)) continue; /* the metadata member wins */
        if ((st = put_value(b, key, v, err))) return st;
    }
    if (json_is_object(meta))
        json_object_foreach((json_t *)meta, key, v) if ((st = put_value(b, key, v, err))) return st;
    return st;
}

static gtr_status write_file(const char *out, const gtr_index *ix, fbuild *b, bool *written, gtr_error *err)
{
    size_t n = gtr_index_count(ix);
    bool any = false;
    for (size_t d = 0; d < n && !any; d++) any = b->end[d] > b->start[d];
    *written = any;
    if (!any) /* nothing to keep: no file (a stale one removed) */
        return gtr_file_exists(out) && remove(out) != 0 ? gtr_seterr(err, GTR_ERR_IO, "%s: cannot remove the old fields file", out) : GTR_OK;
    gtr_buf body = {0};
    gtr_status st = GTR_OK;
    for (size_t i = 0; !st && i < b->names.n; i++) {
        size_t l;
        const char *k = gtr_strmap_key(&b->names, (uint32_t)i, &l);
        uint32_t l32 = (uint32_t)l;
        if (!(st = gtr_buf_append(&body, &l32, 4, err))) st = gtr_buf_append(&body, k, l, err);
    }
    uint64_t o = 0;
    for (size_t d = 0; !st && d <= n; d++) {
        if (!(st = gtr_buf_append(&body, &o, 8, err)) && d < n) o += b->end[d] - b->start[d];
    }
    for (size_t d = 0; !st && d < n; d++) st = gtr_buf_append(&body, b->tmp.data + b->start[d], (size_t)(b->end[d] - b->start[d]), err);
    uint8_t h[FLD_HDR] = {0};
    uint32_t version = 1, nn = (uint32_t)b->names.n;
    uint64_t nd = n, tag = gtr_ix_ids_tag(ix, n), bl = body.len;
    memcpy(h, FLD_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &nn, 4);
    memcpy(h + 16, &nd, 8);
    memcpy(h + 24, &tag, 8);
    memcpy(h + 32, &bl, 8);
    uint32_t crc = gtr_crc32(gtr_crc32(0, h, 40), body.data, body.len);
    memcpy(h + 40, &crc, 4);
    gtr_atomic_file af;
    if (!st && !(st = gtr_atomic_open(&af, out, err))) {
        if (!(st = gtr_atomic_write(&af, h, sizeof h, err)) && !(st = gtr_atomic_write(&af, body.data, body.len, err)))
            st = gtr_atomic_commit(&af, err);
        else
            gtr_atomic_abort(&af);
    }
    gtr_buf_free(&body);
    return st;
}

gtr_status gtr_fields_build(const gtr_index *ix, const char *corpus, const char *base_path, const char *out_path,
                            int *written, gtr_error *err)
{
    if (!ix || !corpus || !out_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "fields build: need an index, a corpus and an output path");
    size_t n = gtr_index_count(ix), first = 0;
    fbuild b = {0};
    gtr_strmap_init(&b.names);
    gtr_strmap ids;
    gtr_strmap_init(&ids);
    gtr_text_reader *rd = NULL;
    gtr_fields *base = NULL;
    gtr_status st = GTR_OK;
    uint32_t *docs = NULL; /* live document of each interned id */
    b.start = gtr_xcalloc(n + 1, sizeof *b.start, "fields", err);
    b.end = gtr_xcalloc(n + 1, sizeof *b.end, "fields", err);
    b.seen = gtr_xcalloc(n + 1, 1, "fields", err);
    docs = gtr_xmalloc((n + 1) * sizeof *docs, "fields", err);
    if (!b.start || !b.end || !b.seen || !docs) st = GTR_ERR_NOMEM;
    /* the base's documents (the first ones of ix) keep their fields */
    if (!st && base_path && gtr_file_exists(base_path)) {
        if (!(base = parse(base_path, ix, true, err))) st = err ? err->code : GTR_ERR_FORMAT;
        for (size_t d = 0; !st && base && d < base->n; d++) {
            b.start[d] = b.tmp.len;
            for (uint64_t e = base->off[d]; !st && e < base->off[d + 1]; e += 9 + rd32(base->ents + e + 5)) {
                size_t nl;
                const char *name = gtr_strmap_key(&base->names, rd32(base->ents + e), &nl);
                st = put_entry(&b, name, nl, (char)base->ents[e + 4], (const char *)base->ents + e + 9, rd32(base->ents + e + 5), err);
            }
            b.end[d] = b.tmp.len;
        }
        if (base) first = base->n;
    }
    /* ids of the live documents not already covered */
    for (size_t d = first; !st && d < n; d++) {
        if (!gtr_index_doc_live(ix, d)) continue;
        size_t len;
        const char *id = gtr_index_doc_id(ix, d, &len);
        uint32_t k;
        if (!(st = gtr_strmap_intern(&ids, id, len, &k, NULL, err))) docs[k] = (uint32_t)d;
    }
    if (!st && !(rd = gtr_text_reader_open(corpus, GTR_TEXT_JSONL, err))) st = err ? err->code : GTR_ERR_IO;
    for (bool eof = false; !st;) {
        gtr_record rec;
        if ((st = gtr_text_reader_next(rd, &rec, &eof, err)) || eof) break;
        const json_t *obj = gtr_text_reader_object(rd);
        if (!obj || !rec.id) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: document has no \"_id\"", corpus, rec.line);
            break;
        }
        uint32_t k = gtr_strmap_find(&ids, rec.id, rec.id_len);
        if (k == GTR_STRMAP_NONE) {
            st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s:%zu: document \"%.*s\" is not among the index's documents%s", corpus,
                            rec.line, (int)GTR_MIN(rec.id_len, 200), rec.id, first ? " added last" : "");
            break;
        }
        size_t d = docs[k];
        if (b.seen[d]) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: duplicate document id \"%.*s\"", corpus, rec.line,
                            (int)GTR_MIN(rec.id_len, 200), rec.id);
            break;
        }
        b.seen[d] = true;
        b.start[d] = b.tmp.len;
        st = doc_fields(&b, obj, err);
        b.end[d] = b.tmp.len;
    }
    bool w = false;
    if (!st) st = write_file(out_path, ix, &b, &w, err);
    if (written) *written = w;
    gtr_text_reader_close(rd);
    gtr_fields_free(base);
    gtr_strmap_free(&ids);
    gtr_strmap_free(&b.names);
    gtr_buf_free(&b.tmp);
    free(b.start);
    free(b.end);
    free(b.seen);
    free(docs);
    return st;
}

/* ---- where */

gtr_status gtr_fields_where(const gtr_fields *f, const gtr_index *ix, const char *const *names,
                            const char *const *values, size_t n, uint8_t *bitmap, size_t *matched, gtr_error *err)
{
    if (matched) *matched = 0;
    if (!f || !ix || (n && (!names || !values)) || !bitmap || f->n != gtr_index_count(ix))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "fields where: need the fields of this index, conditions and a bitmap");
    uint32_t *idx = gtr_xmalloc((n ? n : 1) * sizeof *idx, "where", err);
    double *num = gtr_xmalloc((n ? n : 1) * sizeof *num, "where", err);
    bool *isnum = gtr_xcalloc(n ? n : 1, 1, "where", err);
    gtr_status st = idx && num && isnum ? GTR_OK : GTR_ERR_NOMEM;
    for (size_t c = 0; !st && c < n; c++) {
        if ((idx[c] = gtr_strmap_find(&f->names, names[c], strlen(names[c]))) == GTR_STRMAP_NONE) {
            st = gtr_seterr(err, GTR_ERR_NOT_FOUND, "no document has a field \"%.200s\"", names[c]);
            break;
        }
        char *end;
        num[c] = strtod(values[c], &end);
        isnum[c] = *values[c] && !*end && isfinite(num[c]);
    }
    size_t m = 0;
    for (size_t d = 0; !st && d < f->n; d++) {
        if (!gtr_index_doc_live(ix, d)) continue;
        bool all = true;
        for (size_t c = 0; all && c < n; c++) {
            bool hit = false;
            for (uint64_t e = f->off[d]; !hit && e < f->off[d + 1]; e += 9 + rd32(f->ents + e + 5)) {
                if (rd32(f->ents + e) != idx[c]) continue;
                size_t vl = rd32(f->ents + e + 5);
                const char *v = (const char *)f->ents + e + 9;
                char type = (char)f->ents[e + 4];
                hit = strlen(values[c]) == vl && memcmp(values[c], v, vl) == 0;
                if (!hit && isnum[c] && (type == 'i' || type == 'r')) {
                    char tmp[64];
                    memcpy(tmp, v, GTR_MIN(vl, sizeof tmp - 1));
                    tmp[GTR_MIN(vl, sizeof tmp - 1)] = 0;
                    hit = strtod(tmp, NULL) == num[c];
                }
            }
            all = hit;
        }
        if (all) {
            bitmap[d >> 3] |= (uint8_t)(1u << (d & 7));
            m++;
        }
    }
    if (matched) *matched = m;
    free(idx);
    free(num);
    free(isnum);
    return st;
}
