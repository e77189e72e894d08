/*
 * spm_unigram.c — the unigram Viterbi search, as SentencePiece 0.1.97's default
 * ("optimized") encoder does it, then the token list as SentencePieceProcessor builds it.
 *
 * For each character start position (stepping by the lead byte's length, OneCharLen) the
 * piece trie is walked over the following bytes; every piece found updates the best path
 * ending where it ends. If no piece covers exactly the one character at the start, an
 * unknown node (score = min NORMAL score - 10) covers it. Ties keep the earlier candidate
 * (strict >). The score arithmetic reproduces the original's types exactly: piece scores
 * are added to the float path score in double and compared against the stored float
 * (because the C++ expression mixes a double user-defined bonus into the same `auto`),
 * while the unknown candidate is computed and compared in float. Work is O(n * longest
 * piece), linear in the text.
 *
 * Then, as PopulateSentencePieceText: consecutive unknown tokens merge into one (unless
 * byte_fallback, where each unknown piece becomes its UTF-8 byte pieces).
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

struct spm_lattice_node {
    union {
        float score;  /* best path score ending here (during the search) */
        int32_t next; /* forward link (after the backtrack) */
    } u;
    int32_t start;    /* start byte of the last piece of that path, -1 = unreached */
    int32_t id;
};

static const float kUnkPenalty = 10.0f;

void spm_work_free(spm_work *w)
{
    gtr_buf_free(&w->norm);
    free(w->lat);
    free(w->tok);
    memset(w, 0, sizeof *w);
}

static gtr_status push_tok(spm_work *w, int32_t id, size_t b, size_t e, gtr_error *err)
{
    if (w->n_tok == w->tok_cap) {
        size_t cap = w->tok_cap ? 2 * w->tok_cap : 64;
        spm_token *nt = gtr_xrealloc(w->tok, cap * sizeof *nt, "tokens", err);
        if (!nt) return GTR_ERR_NOMEM;
        w->tok = nt;
        w->tok_cap = cap;
    }
    w->tok[w->n_tok++] = (spm_token){id, (uint32_t)b, (uint32_t)e};
    return GTR_OK;
}

gtr_status spm_viterbi(const gtr_tokenizer *t, const char *s, size_t n, spm_work *w,
                       gtr_error *err)
{
    w->n_tok = 0;
    if (n == 0) return GTR_OK;
    if (n >= INT32_MAX)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text too long to tokenize (%zu bytes normalised)", n);
    if (w->lat_cap < n + 1) {
        size_t cap = n + 1 > 2 * w->lat_cap ? n + 1 : 2 * w->lat_cap;
        free(w->lat);
        w->lat_cap = 0;
        w->lat = gtr_xmalloc(cap * sizeof *w->lat, "lattice", err);
        if (!w->lat) return GTR_ERR_NOMEM;
        w->lat_cap = cap;
    }
    spm_lattice_node *lat = w->lat;
    for (size_t i = 0; i <= n; i++) lat[i] = (spm_lattice_node){{0.0f}, -1, -1};

    const spm_da *da = &t->lattice;
    const uint8_t *u = (const uint8_t *)s;
    const float unk_score = t->min_score - kUnkPenalty;
    const float max_score = t->max_score;
    size_t pos = 0;
    while (pos < n) {
        const float till = lat[pos].u.score;
        size_t mblen = spm_one_char_len(u[pos]);
        if (mblen > n - pos) mblen = n - pos;
        bool has_single = false;
        int32_t node = 0;
        for (size_t k = pos; k < n; k++) {
            node = spm_da_child(da, node, u[k]);
            if (node < 0) break;
            int32_t id = da->slot[node].id;
            if (id < 0) continue; /* no piece ends here (or an UNUSED one) */
            size_t length = k + 1 - pos;
            double score;
            if (id & SPM_DA_USER) {
                /* user-defined pieces get a bonus so they are always chosen */
                id &= ~SPM_DA_USER;
                score = (double)((float)length * max_score) - 0.1;
            } else {
                score = (double)da->slot[node].score;
            }
            double cand = score + (double)till;
            spm_lattice_node *tg = &lat[k + 1];
            if (tg->start == -1 || cand > (double)tg->u.score) {
                tg->u.score = (float)cand;
                tg->start = (int32_t)pos;
                tg->id = id;
            }
            if (length == mblen) has_single = true;
        }
        if (!has_single) {
            spm_lattice_node *tg = &lat[pos + mblen];
            float cand = unk_score + till;
            if (tg->start == -1 || cand > tg->u.score) {
                tg->u.score = cand;
                tg->start = (int32_t)pos;
                tg->id = t->unk_id;
            }
        }
        pos += mblen;
    }

    /* Backtrack, leaving forward links in the (no longer needed) score slots. */
    size_t e = n;
    while (e > 0) {
        int32_t st = lat[e].start;
        if (st < 0 || (size_t)st >= e)
            return gtr_seterr(err, GTR_ERR_INTERNAL, "tokenizer: broken Viterbi path at byte %zu", e);
        lat[st].u.next = (int32_t)e;
        e = (size_t)st;
    }
    bool prev_unk = false;
    for (size_t b = 0; b < n;) {
        size_t end = (size_t)lat[b].u.next;
        int32_t id = lat[end].id;
        bool is_unk = t->type[id] == SPM_UNKNOWN;
        gtr_status st;
        if (is_unk && t->byte_fallback) {
            for (size_t i = b; i < end; i++)
                if ((st = push_tok(w, t->byte_id[u[i]], i, i + 1, err))) return st;
        } else if (is_unk && prev_unk) {
            w->tok[w->n_tok - 1].end = (uint32_t)end; /* merge runs of unknowns */
        } else if ((st = push_tok(w, id, b, end, err))) {
            return st;
        }
        prev_unk = is_unk;
        b = end;
    }
    return GTR_OK;
}

gtr_status spm_encode(const gtr_tokenizer *t, const char *text, size_t len, spm_work *w,
                      gtr_error *err)
{
    gtr_status st = spm_normalize(&t->norm, text, len, &w->norm, err);
    if (st) return st;
    return spm_viterbi(t, w->norm.data, w->norm.len, w, err);
}
