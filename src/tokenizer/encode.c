/*
 * encode.c — text to ids (with the T5 </s> and truncation conventions), text to pieces,
 * and the normalised text, over spm_encode.
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

static gtr_status check_args(const gtr_tokenizer *t, const char *text, size_t len, const void *out,
                             const char *fn, gtr_error *err)
{
    if (!t || !out) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: NULL tokenizer or output", fn);
    if (!text && len) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: NULL text of %zu bytes", fn, len);
    return GTR_OK;
}

void gtr_ids_free(gtr_ids *ids)
{
    if (!ids) return;
    free(ids->ids);
    ids->ids = NULL;
    ids->n = ids->cap = 0;
}

static gtr_status ids_reserve(gtr_ids *o, size_t n, gtr_error *err)
{
    if (o->cap >= n && o->ids) return GTR_OK;
    size_t cap = o->cap * 2 > n ? o->cap * 2 : (n < 16 ? 16 : n);
    int32_t *p = gtr_xrealloc(o->ids, cap * sizeof *p, "token ids", err);
    if (!p) return GTR_ERR_NOMEM;
    o->ids = p;
    o->cap = cap;
    return GTR_OK;
}

gtr_status gtr_tokenize(const gtr_tokenizer *t, const char *text, size_t len, int max_len,
                        int add_eos, gtr_ids *out, gtr_error *err)
{
    gtr_status st = check_args(t, text, len, out, "gtr_tokenize", err);
    if (st) return st;
    if (max_len < 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenize: max_len %d is negative", max_len);
    if (add_eos && t->eos_id < 0)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "gtr_tokenize: the model has no </s> piece");
    out->n = 0;
    spm_work w = {0};
    if ((st = spm_encode(t, text ? text : "", len, &w, err))) goto done;
    size_t keep = w.n_tok;
    if (max_len > 0) {
        /* T5: the first max_len-1 ids, then </s> */
        size_t room = add_eos ? (size_t)max_len - 1 : (size_t)max_len;
        if (keep > room) keep = room;
    }
    if ((st = ids_reserve(out, keep + 1, err))) goto done;
    for (size_t i = 0; i < keep; i++) out->ids[i] = w.tok[i].id;
    out->n = keep;
    if (add_eos) out->ids[out->n++] = t->eos_id;
done:
    spm_work_free(&w);
    return st;
}

void gtr_pieces_free(gtr_pieces *p)
{
    if (!p) return;
    free(p->ids);
    free(p->offs);
    free(p->text);
    memset(p, 0, sizeof *p);
}

gtr_status gtr_tokenize_pieces(const gtr_tokenizer *t, const char *text, size_t len,
                               gtr_pieces *out, gtr_error *err)
{
    gtr_status st = check_args(t, text, len, out, "gtr_tokenize_pieces", err);
    if (st) return st;
    out->n = 0;
    spm_work w = {0};
    if ((st = spm_encode(t, text ? text : "", len, &w, err))) goto done;
    size_t n = w.n_tok, bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += w.tok[i].end - w.tok[i].begin + 1;
    if (out->ids_cap < n + 1) {
        int32_t *p = gtr_xrealloc(out->ids, (n + 1) * sizeof *p, "pieces", err);
        if (!p) {
            st = GTR_ERR_NOMEM;
            goto done;
        }
        out->ids = p;
        out->ids_cap = n + 1;
    }
    if (out->offs_cap < n + 1) {
        size_t *p = gtr_xrealloc(out->offs, (n + 1) * sizeof *p, "pieces", err);
        if (!p) {
            st = GTR_ERR_NOMEM;
            goto done;
        }
        out->offs = p;
        out->offs_cap = n + 1;
    }
    if (out->text_cap < bytes + 1) {
        char *p = gtr_xrealloc(out->text, bytes + 1, "pieces", err);
        if (!p) {
            st = GTR_ERR_NOMEM;
            goto done;
        }
        out->text = p;
        out->text_cap = bytes + 1;
    }
    /* A piece is the normalised text it covers: for a (merged) unknown that is the text,
     * not "<unk>" — SentencePiece's EncodeAsPieces does the same. */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b = w.tok[i].begin, e = w.tok[i].end;
        out->ids[i] = w.tok[i].id;
        out->offs[i] = o;
        memcpy(out->text + o, w.norm.data + b, e - b);
        o += e - b;
        out->text[o++] = '\0';
    }
    out->offs[n] = o;
    out->text[o] = '\0';
    out->n = n;
done:
    spm_work_free(&w);
    return st;
}

gtr_status gtr_tokenizer_normalize(const gtr_tokenizer *t, const char *text, size_t len,
                                   char **out, size_t *out_len, gtr_error *err)
{
    gtr_status st = check_args(t, text, len, out, "gtr_tokenizer_normalize", err);
    if (st) return st;
    *out = NULL;
    gtr_buf b = {0};
    if ((st = spm_normalize(&t->norm, text ? text : "", len, &b, err)) ||
        (st = gtr_buf_reserve(&b, 0, err))) {
        gtr_buf_free(&b);
        return st;
    }
    b.data[b.len] = '\0';
    *out = b.data;
    if (out_len) *out_len = b.len;
    return GTR_OK;
}
