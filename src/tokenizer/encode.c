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

/* Truncated tokenization reads only the start of a long text, so the work and memory depend on
 * max_len, not on the text's length (a 16 MB text costs what its first kilobytes cost).
 *
 * Why the ids are exact: no piece of the vocabulary has U+2581 (the escaped space) after its
 * first character (checked at load: t->space_bounded), so every segmentation has a piece
 * boundary where a U+2581 starts in the normalised text. The Viterbi search is causal: the
 * best path to such a boundary, and so every id before it, depends only on the text before
 * it, whatever comes after (even with SentencePiece's float rounding). Cutting the input just
 * before an ASCII space gives a text whose normalised form ends at such a boundary, so its ids
 * are exactly the first ids of the whole text. The prefix starts at about 8 bytes per wanted
 * id and doubles until it yields enough ids (at most twice the minimal work). A text with no
 * space for PREFIX_HARD_CAP bytes is cut there (at a character boundary): that part of the
 * guarantee rests on the Viterbi paths converging within a few pieces, which the tests check
 * on long unspaced texts. */
#define PREFIX_BYTES_PER_ID 8u
#define PREFIX_HARD_CAP(room) ((size_t)(room) * 16u + ((size_t)16 << 10))

/* Length of the prefix to tokenize when at least `want` bytes are wanted: up to (not including)
 * the first ASCII space at or after want; the whole text when there is none before the hard
 * cap, or the hard cap backed up to a UTF-8 character boundary. */
static size_t prefix_cut(const char *text, size_t len, size_t want, size_t hard)
{
    if (want >= len) return len;
    const char *sp = memchr(text + want, ' ', GTR_MIN(len, hard) - GTR_MIN(want, hard));
    if (want < hard && sp) return (size_t)(sp - text);
    if (len <= hard) return len;
    size_t n = hard;
    while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
    return n;
}

gtr_status gtr_tokenizer_encode(const gtr_tokenizer *t, const char *text, size_t len, int max_len,
                        int add_eos, gtr_ids *out, gtr_error *err)
{
    gtr_status st = check_args(t, text, len, out, "gtr_tokenizer_encode", err);
    if (st) return st;
    if (max_len < 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenizer_encode: max_len %d is negative", max_len);
    if (add_eos && t->eos_id < 0)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "gtr_tokenizer_encode: the model has no </s> piece");
    out->n = 0;
    spm_work w = {0};
    size_t room = max_len > 0 ? (add_eos ? (size_t)max_len - 1 : (size_t)max_len) : SIZE_MAX;
    if (room == SIZE_MAX || !t->space_bounded) {
        if ((st = spm_encode(t, text ? text : "", len, &w, err))) goto done;
    } else { /* T5: the first max_len-1 ids (then </s>), from as little of the text as gives them */
        size_t hard = PREFIX_HARD_CAP(room);
        size_t want = GTR_MIN(room, hard / PREFIX_BYTES_PER_ID) * PREFIX_BYTES_PER_ID;
        for (;;) {
            size_t cut = prefix_cut(text ? text : "", len, want, hard);
            if ((st = spm_encode(t, text ? text : "", cut, &w, err))) goto done;
            if (w.n_tok >= room || cut == len || cut >= hard || want >= hard) break;
            want = GTR_MIN(2 * GTR_MAX(want, cut), hard);
        }
    }
    size_t keep = GTR_MIN(w.n_tok, room);
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

gtr_status gtr_tokenizer_encode_pieces(const gtr_tokenizer *t, const char *text, size_t len,
                               gtr_pieces *out, gtr_error *err)
{
    gtr_status st = check_args(t, text, len, out, "gtr_tokenizer_encode_pieces", err);
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
