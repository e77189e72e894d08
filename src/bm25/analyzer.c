/* analyzer.c — text to index terms the way Anserini indexes English: Lucene's
 * StandardTokenizer (UAX #29 word boundaries, longest match over its grammar), the English
 * possessive filter, lower-casing, Lucene's English stop words, and the Porter stemmer. */
#include "bm25/analyzer.h"

#include <stdlib.h>
#include <string.h>

/* Lucene's StandardTokenizer cuts tokens at 255 UTF-16 units (its scanner buffer). */
#define MAX_TOKEN_UTF16 255

bm25_wb bm25_wb_class(uint32_t cp)
{
    if (cp < 0x80) { /* fast path for ASCII: the table's first entries, looked up directly */
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return BM25_WB_ALETTER;
        if (cp >= '0' && cp <= '9') return BM25_WB_NUMERIC;
    }
    size_t lo = 0, hi = bm25_wb_nranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < bm25_wb_ranges[mid].lo) hi = mid;
        else if (cp > bm25_wb_ranges[mid].hi) lo = mid + 1;
        else return bm25_wb_ranges[mid].cls;
    }
    return BM25_WB_OTHER;
}

uint32_t bm25_lower(uint32_t cp)
{
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = bm25_lower_npairs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < bm25_lower_pairs[mid].cp) hi = mid;
        else if (cp > bm25_lower_pairs[mid].cp) lo = mid + 1;
        else return bm25_lower_pairs[mid].lower;
    }
    return cp;
}

bool bm25_is_stopword(const uint32_t *w, size_t n)
{
    static const char *const stop[] = {
        "a",    "an",   "and",   "are",  "as",   "at",   "be",    "but",  "by",
        "for",  "if",   "in",    "into", "is",   "it",   "no",    "not",  "of",
        "on",   "or",   "such",  "that", "the",  "their", "then", "there", "these",
        "they", "this", "to",    "was",  "will", "with",
    };
    if (n > 5) return false;
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++) {
        const char *s = stop[i];
        size_t k = 0;
        while (k < n && s[k] && (uint32_t)(unsigned char)s[k] == w[k]) k++;
        if (k == n && !s[k]) return true;
    }
    return false;
}

void bm25_scratch_free(bm25_scratch *s)
{
    free(s->cps);
    free(s->term);
    memset(s, 0, sizeof *s);
}

/* ---- the tokenizer: Lucene's StandardTokenizerImpl grammar over classes ---- */

typedef struct scan {
    const uint32_t *cp;
    const uint8_t *cls; /* class of each code point */
    size_t n;
} scan;

/* Skip the Extend / Format / ZWJ characters that attach to the character before i (WB4). */
static size_t ext(const scan *s, size_t i)
{
    while (i < s->n && s->cls[i] == BM25_WB_EXTEND) i++;
    return i;
}

typedef enum { LAST_NONE, LAST_LETTER, LAST_HEBREW, LAST_NUM, LAST_KATAKANA, LAST_ENL, LAST_HEBQUOTE } last_kind;

static bool is_letter(uint8_t c) { return c == BM25_WB_ALETTER || c == BM25_WB_HEBREW; }

/* The word rule (UAX #29 WB5-WB13b as Lucene writes it): letters, digits and katakana with
 * their joiners. Returns the end of the longest match from i, or i when there is none. */
static size_t match_word(const scan *s, size_t i)
{
    size_t p = i, accept = i;
    bool core = false;
    last_kind last = LAST_NONE;
    while (p < s->n) {
        uint8_t c = s->cls[p];
        size_t e = ext(s, p + 1);
        if (is_letter(c) || c == BM25_WB_NUMERIC) {
            if (last == LAST_KATAKANA) break; /* katakana meets letters only through '_' */
            last = c == BM25_WB_NUMERIC ? LAST_NUM : c == BM25_WB_HEBREW ? LAST_HEBREW : LAST_LETTER;
        } else if (c == BM25_WB_KATAKANA) {
            if (last != LAST_NONE && last != LAST_KATAKANA && last != LAST_ENL) break;
            last = LAST_KATAKANA;
        } else if (c == BM25_WB_EXTENDNUMLET) {
            last = LAST_ENL;
            p = e;
            if (core) accept = p; /* trailing '_' belongs to the word */
            continue;
        } else if (c == BM25_WB_SQUOTE && last == LAST_HEBREW) {
            last = LAST_HEBQUOTE; /* WB7a: Hebrew letter + single quote ends a word */
        } else if (c == BM25_WB_DQUOTE && last == LAST_HEBREW) {
            if (e >= s->n || s->cls[e] != BM25_WB_HEBREW) break; /* WB7b/c */
            e = ext(s, e + 1);
        } else if ((last == LAST_LETTER || last == LAST_HEBREW) &&
                   (c == BM25_WB_MIDLETTER || c == BM25_WB_MIDNUMLET || c == BM25_WB_SQUOTE)) {
            if (e >= s->n || !is_letter(s->cls[e])) break; /* WB6/7: letter mid letter */
            last = s->cls[e] == BM25_WB_HEBREW ? LAST_HEBREW : LAST_LETTER;
            e = ext(s, e + 1);
        } else if (last == LAST_NUM &&
                   (c == BM25_WB_MIDNUM || c == BM25_WB_MIDNUMLET || c == BM25_WB_SQUOTE)) {
            if (e >= s->n || s->cls[e] != BM25_WB_NUMERIC) break; /* WB11/12: digit mid digit */
            e = ext(s, e + 1);
        } else {
            break;
        }
        core = true;
        p = e;
        accept = p;
    }
    return core ? accept : i;
}

/* Emoji sequences (a simplified emoji_sequence of UTS #51, as Lucene's grammar recognises):
 * an emoji with its modifiers and selectors, joined by ZWJ to more emoji, optional tags; or
 * a pair of regional indicators (a flag). */
static size_t match_emoji(const scan *s, size_t i)
{
    if (s->cls[i] == BM25_WB_RI) {
        size_t e = ext(s, i + 1);
        return e < s->n && s->cls[e] == BM25_WB_RI ? ext(s, e + 1) : i;
    }
    if (s->cls[i] != BM25_WB_EMOJI) return i;
    size_t p = i + 1;
    for (;;) {
        /* extenders other than the presentation selectors and ZWJ, then one U+FE0F */
        while (p < s->n && s->cls[p] == BM25_WB_EXTEND && s->cp[p] != 0xFE0E && s->cp[p] != 0xFE0F &&
               s->cp[p] != 0x200D)
            p++;
        if (p < s->n && s->cp[p] == 0xFE0F) p++;
        size_t z = p;
        while (z < s->n && s->cp[z] == 0x200D) z++;
        if (z > p && z < s->n && s->cls[z] == BM25_WB_EMOJI) {
            p = z + 1;
            continue;
        }
        break;
    }
    size_t t = p;
    while (t < s->n && s->cp[t] >= 0xE0020 && s->cp[t] <= 0xE007E) t++;
    if (t > p && t < s->n && s->cp[t] == 0xE007F) p = t + 1;
    return p;
}

/* The longest token starting at i (all rules), or i when none starts there. */
static size_t match_token(const scan *s, size_t i)
{
    uint8_t c = s->cls[i];
    size_t best = match_word(s, i);
    size_t e = match_emoji(s, i);
    if (e > best) best = e;
    if (c == BM25_WB_SA) { /* runs of South-East Asian script */
        size_t p = i;
        while (p < s->n && s->cls[p] == BM25_WB_SA) p = ext(s, p + 1);
        if (p > best) best = p;
    } else if (c == BM25_WB_HAN || c == BM25_WB_HIRAGANA) { /* one ideograph / kana per token */
        size_t p = ext(s, i + 1);
        if (p > best) best = p;
    }
    return best;
}

static size_t utf16_units(uint32_t cp) { return cp >= 0x10000 ? 2 : 1; }

/* ---- filters ---- */

static gtr_status emit(bm25_scratch *sc, uint32_t *w, size_t n, bm25_term_fn fn, void *user,
                       gtr_error *err)
{
    /* EnglishPossessiveFilter: a trailing 's (apostrophe, U+2019 or U+FF07) goes */
    if (n >= 2 && (w[n - 1] == 's' || w[n - 1] == 'S') &&
        (w[n - 2] == '\'' || w[n - 2] == 0x2019 || w[n - 2] == 0xFF07))
        n -= 2;
    for (size_t i = 0; i < n; i++) w[i] = bm25_lower(w[i]);
    if (n == 0 || bm25_is_stopword(w, n)) return GTR_OK;
    n = bm25_porter_stem(w, n);
    if (sc->term_cap < n * 4 + 1) {
        size_t cap = n * 4 + 64;
        char *t = gtr_xrealloc(sc->term, cap, "analyzer", err);
        if (!t) return GTR_ERR_NOMEM;
        sc->term = t;
        sc->term_cap = cap;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = w[i];
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
        len += gtr_utf8_encode(c, sc->term + len);
    }
    return fn(user, sc->term, len, err);
}

gtr_status bm25_analyze(bm25_scratch *sc, const char *text, size_t len, bm25_term_fn fn,
                        void *user, gtr_error *err)
{
    /* decode: at most len code points, then their classes (bytes) in the same buffer */
    size_t need = len + len / 4 + 2;
    if (sc->cps_cap < need) {
        uint32_t *p = gtr_xrealloc(sc->cps, need * sizeof *p, "analyzer", err);
        if (!p) return GTR_ERR_NOMEM;
        sc->cps = p;
        sc->cps_cap = need;
    }
    uint32_t *cp = sc->cps;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t k = gtr_utf8_decode(text + i, len - i, &c);
        if (k == 0) {
            c = 0xFFFD;
            k = 1;
        }
        cp[n++] = c;
        i += k;
    }
    uint8_t *cls = (uint8_t *)(cp + n);
    for (size_t i = 0; i < n; i++) cls[i] = (uint8_t)bm25_wb_class(cp[i]);
    scan s = {cp, cls, n};
    size_t i = 0;
    uint32_t buf[MAX_TOKEN_UTF16]; /* the filters rewrite a token in place: work on a copy */
    while (i < n) {
        size_t e = match_token(&s, i);
        if (e == i) {
            i++;
            continue;
        }
        size_t units = 0, k = i;
        while (k < e && units + utf16_units(cp[k]) <= MAX_TOKEN_UTF16) units += utf16_units(cp[k++]);
        memcpy(buf, cp + i, (k - i) * sizeof *buf);
        gtr_status st = emit(sc, buf, k - i, fn, user, err);
        if (st) return st;
        i = k; /* a token cut at the length limit continues as a new token */
    }
    return GTR_OK;
}
