/* assemble.c — the final index file from the base index (if any) and the partial file's
 * records, section by section. Streaming: nothing proportional to the vectors is held in
 * memory (only the 12-byte compact side data per document). */
#include "index/workfile.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const gtr_ix_assembly *a;
    size_t n_base;
} docs_view;

/* strings of document i: which=0 ids, 1 snippets */
static const char *doc_str(const docs_view *v, size_t i, int which, size_t *len)
{
    if (i < v->n_base)
        return which ? gtr_index_doc_snippet(v->a->base, i, len) : gtr_index_doc_id(v->a->base, i, len);
    gtr_ix_rec r;
    gtr_ix_rec_parse(v->a->part + v->a->rec_off[i - v->n_base], SIZE_MAX / 2, v->a->dim, &r);
    *len = which ? r.snip_len : r.id_len;
    return which ? r.snip : r.id;
}

static const float *doc_vec(const docs_view *v, size_t i)
{
    if (i < v->n_base) return gtr_index_vector(v->a->base, i);
    gtr_ix_rec r;
    gtr_ix_rec_parse(v->a->part + v->a->rec_off[i - v->n_base], SIZE_MAX / 2, v->a->dim, &r);
    return r.vec;
}

static gtr_status put_strtab(gtr_ix_writer *w, const docs_view *v, size_t n, int which, gtr_error *err)
{
    gtr_status st;
    uint8_t buf[8 * 512];
    size_t fill = 0;
    uint64_t off = 0;
    for (size_t i = 0; i <= n; i++) {
        gtr_ix_wr64(buf + 8 * fill++, off);
        if (fill == 512 || i == n) {
            if ((st = gtr_ix_writer_put(w, buf, 8 * fill, err))) return st;
            fill = 0;
        }
        if (i < n) {
            size_t len;
            doc_str(v, i, which, &len);
            off += len;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = doc_str(v, i, which, &len);
        if ((st = gtr_ix_writer_put(w, s, len, err))) return st;
    }
    return GTR_OK;
}

gtr_status gtr_ix_assemble(gtr_ix_writer *w, const char *out_path, const gtr_ix_assembly *a,
                           gtr_error *err)
{
    docs_view v = {a, a->base ? gtr_index_count(a->base) : 0};
    size_t n = v.n_base + a->n_new;
    uint32_t n_sections = (a->compact ? 7 : 5) + (a->dead ? 1 : 0);
    gtr_status st = gtr_ix_writer_open(w, out_path, n, a->dim, a->fingerprint, a->compact, n_sections, err);
    if (st) return st;
    void *codes = NULL;
    float *aux = NULL;
    if ((st = gtr_ix_writer_begin(w, GTR_IX_META, err)) ||
        (st = gtr_ix_writer_put(w, a->meta_json, strlen(a->meta_json), err)) ||
        (st = gtr_ix_writer_end(w, err)))
        goto fail;
    if ((st = gtr_ix_writer_begin(w, GTR_IX_IDS, err)) || (st = put_strtab(w, &v, n, 0, err)) ||
        (st = gtr_ix_writer_end(w, err)))
        goto fail;
    if ((st = gtr_ix_writer_begin(w, GTR_IX_SNIPPETS, err)) || (st = put_strtab(w, &v, n, 1, err)) ||
        (st = gtr_ix_writer_end(w, err)))
        goto fail;
    if ((st = gtr_ix_writer_begin(w, GTR_IX_VECTORS, err))) goto fail;
    if (v.n_base && (st = gtr_ix_writer_put(w, gtr_index_vector(a->base, 0), v.n_base * a->dim * 4, err)))
        goto fail;
    for (size_t i = v.n_base; i < n; i++)
        if ((st = gtr_ix_writer_put(w, doc_vec(&v, i), a->dim * sizeof(float), err))) goto fail;
    if ((st = gtr_ix_writer_end(w, err))) goto fail;
    if (a->compact) {
        size_t row = gtr_ix_compact_row_bytes(a->compact, a->dim);
        codes = gtr_xmalloc(row, "compact codes", err);
        aux = gtr_xmalloc(GTR_MAX(n, (size_t)1) * GTR_IX_CAUX_FLOATS * sizeof *aux, "compact side data", err);
        if (!codes || !aux) {
            st = GTR_ERR_NOMEM;
            goto fail;
        }
        if ((st = gtr_ix_writer_begin(w, GTR_IX_COMPACT, err))) goto fail;
        for (size_t i = 0; i < n; i++) {
            gtr_ix_compact_encode(a->compact, doc_vec(&v, i), a->dim, codes, aux + GTR_IX_CAUX_FLOATS * i);
            if ((st = gtr_ix_writer_put(w, codes, row, err))) goto fail;
        }
        if ((st = gtr_ix_writer_end(w, err)) || (st = gtr_ix_writer_begin(w, GTR_IX_CAUX, err)) ||
            (st = gtr_ix_writer_put(w, aux, n * GTR_IX_CAUX_FLOATS * sizeof *aux, err)) ||
            (st = gtr_ix_writer_end(w, err)))
            goto fail;
    }
    if (a->dead && ((st = gtr_ix_writer_begin(w, GTR_IX_DEAD, err)) ||
                    (st = gtr_ix_writer_put(w, a->dead, (n + 7) / 8, err)) || (st = gtr_ix_writer_end(w, err))))
        goto fail;
    free(codes);
    free(aux);
    return GTR_OK;
fail:
    free(codes);
    free(aux);
    gtr_ix_writer_abort(w);
    return st;
}
