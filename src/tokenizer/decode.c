/*
 * decode.c — ids back to text, as SentencePieceProcessor::DecodeIds (0.1.97):
 *  - control pieces (</s>, <pad>) vanish; the unknown piece becomes unk_surface (" ⁇ ");
 *  - while nothing has been output yet, a leading "▁" is dropped from each piece (with
 *    remove_extra_whitespaces every such piece, otherwise only the first);
 *  - "▁" becomes " ";
 *  - runs of byte pieces (<0xXX>) are joined into bytes, each invalid UTF-8 byte becoming
 *    U+FFFD;
 *  - a denormalizer, if the model has one, rewrites the result.
 * Ids go to piece strings and back (PieceToId), as the original does.
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

static const char kSpace[] = "\xe2\x96\x81";

static int byte_of(const gtr_tokenizer *t, int id)
{
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] == id) return b;
    return -1;
}

/* Output bytes for the byte pieces ids[from, to). */
static gtr_status flush_bytes(const gtr_tokenizer *t, const int *ids, size_t from, size_t to,
                              gtr_buf *out, gtr_error *err)
{
    if (from >= to) return GTR_OK;
    gtr_buf bytes = {0};
    gtr_status st = GTR_OK;
    for (size_t i = from; i < to && !st; i++) {
        char c = (char)byte_of(t, ids[i]);
        st = gtr_buf_append(&bytes, &c, 1, err);
    }
    for (size_t o = 0; o < bytes.len && !st;) {
        uint32_t cp;
        size_t k = gtr_utf8_decode(bytes.data + o, bytes.len - o, &cp);
        if (k) {
            st = gtr_buf_append(out, bytes.data + o, k, err);
            o += k;
        } else {
            st = gtr_buf_append(out, "\xEF\xBF\xBD", 3, err);
            o++;
        }
    }
    gtr_buf_free(&bytes);
    return st;
}

/* DecodeSentencePiece for one piece; *bos_ws_seen as the original's second return value. */
static gtr_status decode_piece(const gtr_tokenizer *t, const char *piece, size_t len, int id,
                               bool is_bos_ws, bool *bos_ws_seen, gtr_buf *out, gtr_error *err)
{
    *bos_ws_seen = false;
    int type = t->type[id];
    if (type == SPM_CONTROL) return GTR_OK;
    if (type == SPM_UNKNOWN) {
        size_t plen;
        const char *p = gtr_tokenizer_piece(t, id, &plen);
        if (plen == len && memcmp(p, piece, len) == 0)
            return gtr_buf_append(out, t->unk_surface, t->unk_surface_len, err);
        return gtr_buf_append(out, piece, len, err);
    }
    if (is_bos_ws && (t->norm.add_dummy_prefix || t->norm.remove_extra_whitespaces)) {
        if (len >= 3 && memcmp(piece, kSpace, 3) == 0) {
            piece += 3;
            len -= 3;
            /* with remove_extra_whitespaces every leading "▁" piece is stripped */
            *bos_ws_seen = !t->norm.remove_extra_whitespaces;
        }
    }
    gtr_status st;
    size_t i = 0, run = 0;
    while (i < len) {
        if (len - i >= 3 && memcmp(piece + i, kSpace, 3) == 0) {
            if ((st = gtr_buf_append(out, piece + run, i - run, err)) ||
                (st = gtr_buf_append(out, " ", 1, err)))
                return st;
            i += 3;
            run = i;
        } else {
            i++;
        }
    }
    return gtr_buf_append(out, piece + run, len - run, err);
}

gtr_status gtr_tokenizer_decode(const gtr_tokenizer *t, const int32_t *ids, size_t n, char **out,
                          size_t *out_len, gtr_error *err)
{
    if (!t || !out || (!ids && n))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenizer_decode: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= t->n_pieces)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenizer_decode: invalid id %d at position %zu",
                              (int)ids[i], i);
    /* ids -> pieces -> ids (PieceToId), as Decode(ids) does; differs only for odd models */
    int *rid = gtr_xmalloc((n ? n : 1) * sizeof *rid, "decode", err);
    if (!rid) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t plen;
        const char *p = gtr_tokenizer_piece(t, ids[i], &plen);
        rid[i] = spm_piece_to_id(t, p, plen);
    }
    gtr_buf text = {0};
    gtr_status st = gtr_buf_reserve(&text, 16, err);
    size_t byte_start = 0;
    bool is_bos_ws = true, bos_ws_seen = false;
    for (size_t i = 0; i < n && !st; i++) {
        if (t->type[rid[i]] == SPM_BYTE) continue;
        if ((st = flush_bytes(t, rid, byte_start, i, &text, err))) break;
        if (bos_ws_seen || text.len) is_bos_ws = false;
        byte_start = i + 1;
        size_t plen;
        const char *p = gtr_tokenizer_piece(t, ids[i], &plen);
        st = decode_piece(t, p, plen, rid[i], is_bos_ws, &bos_ws_seen, &text, err);
    }
    if (!st) st = flush_bytes(t, rid, byte_start, n, &text, err);
    free(rid);
    if (!st && t->has_denorm) {
        gtr_buf d = {0};
        st = spm_normalize(&t->denorm, text.data, text.len, &d, err);
        gtr_buf_free(&text);
        text = d;
        if (!st) st = gtr_buf_reserve(&text, 0, err);
    }
    if (st) {
        gtr_buf_free(&text);
        return st;
    }
    text.data[text.len] = '\0';
    *out = text.data;
    if (out_len) *out_len = text.len;
    return GTR_OK;
}
