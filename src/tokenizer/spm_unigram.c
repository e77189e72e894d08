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
 * GTR_SPM_COMPAT_0_2_2 follows SentencePiece 0.2.2 and later instead, which changed two things
 * that only matter when segmentations tie (runs of one repeated character, "----", "AAA"):
 * the user-defined score became a float (0.1 * (length - 1)), so every candidate is summed
 * and compared in float; and a path score past +-1e5 is re-based to 0 (subtracted, in float,
 * from every reached position up to the furthest end seen), which changes the rounding of
 * everything after it in very long texts.
 *
 * GTR_SPM_COMPAT_HF follows the Hugging Face tokenizers library (T5TokenizerFast, which
 * sentence-transformers uses): its Metaspace pre-tokenizer cuts the text into words, each
 * starting at a U+2581, and each word is its own lattice, scored in double from 0; so here the
 * path score restarts at every word and no piece may reach into the next word. (User-defined
 * pieces, which T5 has none of, keep their stored score in this mode: the Hugging Face
 * converter turns them into added tokens, split off before the model runs.)
 *
 * Then, as PopulateSentencePieceText: consecutive unknown tokens merge into one (unless
 * byte_fallback, where each unknown piece becomes its UTF-8 byte pieces).
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

struct spm_lattice_node {
    union {
        double score; /* best path score ending here (during the search); a float value
                       * in the SentencePiece modes, which store floats */
        int32_t next; /* forward link (after the backtrack) */
    } u;
    int32_t start;    /* start byte of the last piece of that path, -1 = unreached */
    int32_t id;
};

static const float kUnkPenalty = 10.0f;
static const float kScoreReset = 100000.0f; /* 0.2.2's re-basing threshold */

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

/* Does a word (a U+2581, "\xe2\x96\x81") start at byte pos > 0? */
static inline bool is_word_start(const uint8_t *u, size_t n, size_t pos)
{
    return pos > 0 && pos + 3 <= n && u[pos] == 0xe2 && u[pos + 1] == 0x96 && u[pos + 2] == 0x81;
}

/* The Viterbi update: a candidate path ending at tg replaces the best one only when strictly
 * better (ties keep the earlier start). */
static inline void relax(spm_lattice_node *tg, double cand, double keep, size_t pos, int32_t id)
{
    if (tg->start == -1 || cand > tg->u.score) {
        tg->u.score = keep;
        tg->start = (int32_t)pos;
        tg->id = id;
    }
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
    for (size_t i = 0; i <= n; i++) lat[i] = (spm_lattice_node){{0.0}, -1, -1};

    const spm_da *da = &t->lattice;
    const uint8_t *u = (const uint8_t *)s;
    const gtr_spm_compat mode = t->compat;
    const float unk_score = t->min_score - kUnkPenalty;
    const float max_score = t->max_score;
    size_t frontier = 0; /* 0.2.2: the furthest end position a candidate has reached */
    size_t pos = 0;
    while (pos < n) {
        double till = lat[pos].u.score;
        if (mode == GTR_SPM_COMPAT_0_2_2 && (till < -kScoreReset || till > kScoreReset)) {
            const float offset = (float)till;
            for (size_t i = pos; i <= frontier; i++)
                if (i == pos || lat[i].start != -1) lat[i].u.score = (float)lat[i].u.score - offset;
            till = 0.0;
        }
        /* hf: every word (from a U+2581) is a lattice of its own, starting from 0 */
        if (mode == GTR_SPM_COMPAT_HF && is_word_start(u, n, pos)) till = 0.0;
        size_t mblen = spm_one_char_len(u[pos]);
        if (mblen > n - pos) mblen = n - pos;
        bool has_single = false;
        int32_t node = 0;
        for (size_t k = pos; k < n; k++) {
            if (mode == GTR_SPM_COMPAT_HF && k > pos && is_word_start(u, n, k)) break;
            node = spm_da_child(da, node, u[k]);
            if (node < 0) break;
            int32_t id = da->slot[node].id;
            if (id < 0) continue; /* no piece ends here (or an UNUSED one) */
            size_t length = k + 1 - pos;
            if (length == mblen) has_single = true;
            if (k + 1 > frontier) frontier = k + 1;
            bool user = (id & SPM_DA_USER) != 0;
            id &= ~SPM_DA_USER;
            const float score = da->slot[node].score;
            double cand, keep; /* compared as cand, stored as keep */
            if (mode == GTR_SPM_COMPAT_0_1) {
                /* user-defined pieces get a bonus so they are always chosen; its double
                 * constant makes the whole sum double, stored back as float */
                cand = (user ? (double)((float)length * max_score) - 0.1 : (double)score) + till;
                keep = (float)cand;
            } else if (mode == GTR_SPM_COMPAT_0_2_2) {
                float fs = user ? (float)(0.1 * (double)((int)length - 1)) : score;
                cand = keep = fs + (float)till;
            } else {
                cand = keep = (double)score + till;
            }
            relax(&lat[k + 1], cand, keep, pos, id);
        }
        if (!has_single) {
            if (pos + mblen > frontier) frontier = pos + mblen;
            double cand = mode == GTR_SPM_COMPAT_HF ? (double)t->min_score - (double)kUnkPenalty + till
                                                    : (double)(unk_score + (float)till);
            relax(&lat[pos + mblen], cand, cand, pos, t->unk_id);
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
