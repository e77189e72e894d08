/*
 * spm_normalize.c — SentencePiece's text normaliser (normalizer.cc in 0.1.97), rewritten.
 *
 * The precompiled charsmap of a NormalizerSpec (nmt_nfkc for T5) is
 *     uint32 trie_size (little-endian) | Darts-clone double array (trie_size bytes) |
 *     replacement strings, NUL-separated
 * The double array maps UTF-8 byte sequences to offsets of replacement strings. At every
 * position the longest key that prefixes the remaining input is replaced; with no match one
 * UTF-8 character is copied, and a byte that does not start a valid UTF-8 character is
 * replaced by U+FFFD, consuming that one byte only. Around that:
 *   - leading whitespace is dropped (a prefix that normalises to exactly " "),
 *   - the dummy prefix "▁" is added (add_dummy_prefix),
 *   - runs of spaces collapse: leading spaces of a replacement are dropped while the previous
 *     output ended in a space (remove_extra_whitespaces),
 *   - " " becomes U+2581 "▁" (escape_whitespaces),
 *   - trailing "▁" are removed — including a literal U+2581 from the input and the dummy
 *     prefix itself when nothing else is left, exactly like the original.
 * The lookup below walks the double array with Darts-clone's own unit encoding, so it gives
 * the same answer as the original on any bytes, NUL included (a NUL can never match: Darts
 * keys are NUL-terminated and unused units carry non-zero labels).
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

/* Darts-clone DoubleArrayUnit accessors. */
static inline bool du_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t du_value(uint32_t u) { return u & 0x7fffffffu; }
static inline uint32_t du_label(uint32_t u) { return u & 0x800000ffu; }
static inline uint32_t du_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Darts-clone commonPrefixSearch, keeping only the longest result (what NormalizePrefix
 * uses). Out-of-range indices (only possible in a corrupt file) end the search. */
static size_t darts_longest(const uint32_t *a, size_t n, const uint8_t *s, size_t len,
                            uint32_t *value)
{
    uint32_t id = du_offset(a[0]);
    size_t best = 0;
    for (size_t pos = 0; pos < len; pos++) {
        id ^= s[pos];
        if (id >= n) break;
        uint32_t u = a[id];
        if (du_label(u) != s[pos]) break;
        id ^= du_offset(u);
        if (id >= n) break;
        if (du_has_leaf(u)) {
            best = pos + 1;
            *value = du_value(a[id]);
        }
    }
    return best;
}

gtr_status spm_normalizer_init(spm_normalizer *nz, const spm_proto_normalizer *spec,
                               bool ws_suffix, const char *what, gtr_error *err)
{
    memset(nz, 0, sizeof *nz);
    nz->add_dummy_prefix = spec->add_dummy_prefix;
    nz->remove_extra_whitespaces = spec->remove_extra_whitespaces;
    nz->escape_whitespaces = spec->escape_whitespaces;
    nz->treat_whitespace_as_suffix = ws_suffix;
    const uint8_t *blob = (const uint8_t *)spec->charsmap.p;
    size_t len = spec->charsmap.len;
    if (len == 0) return GTR_OK; /* identity: no charsmap */
    if (len <= 4)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: precompiled_charsmap of %zu bytes is too short",
                          what, len);
    uint32_t trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                         (uint32_t)blob[3] << 24;
    /* SentencePiece checks trie_size < blob size; it must also fit after the size field. */
    if ((size_t)trie_size > len - 4)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: precompiled_charsmap: double array of %u bytes does not fit in %zu bytes",
                          what, trie_size, len);
    nz->n_units = trie_size / 4;
    if (nz->n_units == 0)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: precompiled_charsmap: empty double array", what);
    nz->units = gtr_xmalloc(nz->n_units * sizeof *nz->units, "charsmap", err);
    nz->repl_len = len - 4 - trie_size;
    nz->repl = gtr_xmalloc(nz->repl_len + 1, "charsmap", err);
    if (!nz->units || !nz->repl) {
        spm_normalizer_free(nz);
        return GTR_ERR_NOMEM;
    }
    for (size_t i = 0; i < nz->n_units; i++) {
        const uint8_t *u = blob + 4 + 4 * i;
        nz->units[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    if (nz->repl_len) memcpy(nz->repl, blob + 4 + trie_size, nz->repl_len);
    nz->repl[nz->repl_len] = '\0'; /* bounds every replacement string */
    return GTR_OK;
}

void spm_normalizer_free(spm_normalizer *nz)
{
    free(nz->units);
    free(nz->repl);
    nz->units = NULL;
    nz->repl = NULL;
}

/* NormalizePrefix: what the start of in normalises to, and how many input bytes it uses. */
typedef struct prefix {
    const char *s;
    size_t n, consumed;
} prefix;

static const char kReplacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

static inline gtr_status norm_prefix(const spm_normalizer *nz, const char *in, size_t len,
                                     prefix *p, gtr_error *err)
{
    if (nz->user && nz->user->n_nodes) {
        size_t m = spm_trie_longest_prefix(nz->user, in, len);
        if (m) {
            *p = (prefix){in, m, m};
            return GTR_OK;
        }
    }
    if (nz->units) {
        uint32_t v = 0;
        size_t m = darts_longest(nz->units, nz->n_units, (const uint8_t *)in, len, &v);
        if (m) {
            if (v > nz->repl_len)
                return gtr_seterr(err, GTR_ERR_FORMAT,
                                  "corrupt precompiled_charsmap: replacement offset %u out of range", v);
            const char *r = nz->repl + v;
            *p = (prefix){r, strlen(r), m};
            return GTR_OK;
        }
    }
    uint8_t c = (uint8_t)in[0];
    if (c < 0x80) {
        *p = (prefix){in, 1, 1};
        return GTR_OK;
    }
    uint32_t cp;
    size_t k = gtr_utf8_decode(in, len, &cp);
    if (k) *p = (prefix){in, k, k};
    else *p = (prefix){kReplacement, 3, 1}; /* malformed: U+FFFD for this one byte */
    return GTR_OK;
}

static const char kSpace[] = "\xe2\x96\x81"; /* U+2581 */

gtr_status spm_normalize(const spm_normalizer *nz, const char *in, size_t len, gtr_buf *out,
                         gtr_error *err)
{
    out->len = 0;
    if (out->data) out->data[0] = '\0';
    if (len == 0) return GTR_OK;
    gtr_status st;
    prefix p;
    if (nz->remove_extra_whitespaces) { /* drop leading whitespace */
        while (len) {
            if ((st = norm_prefix(nz, in, len, &p, err))) return st;
            if (!(p.n == 1 && p.s[0] == ' ')) break;
            in += p.consumed;
            len -= p.consumed;
        }
    }
    if (len == 0) return GTR_OK;

    /* Room for the common case (each byte at most 3 bytes out); grown below when a long
     * replacement string needs more. */
    if (len > (SIZE_MAX - 16) / 3) return gtr_seterr(err, GTR_ERR_NOMEM, "text too long");
    if ((st = gtr_buf_reserve(out, len * 3 + 8, err))) return st;

    const bool escape = nz->escape_whitespaces;
    const size_t ws_len = escape ? 3 : 1;
    const char *ws = escape ? kSpace : " ";
    if (!nz->treat_whitespace_as_suffix && nz->add_dummy_prefix) {
        memcpy(out->data + out->len, ws, ws_len);
        out->len += ws_len;
    }
    bool is_prev_space = nz->remove_extra_whitespaces;
    while (len) {
        if ((st = norm_prefix(nz, in, len, &p, err))) return st;
        const char *s = p.s;
        size_t n = p.n;
        while (is_prev_space && n && s[0] == ' ') {
            s++;
            n--;
        }
        if (n) {
            if (out->cap - out->len <= n * 3 + 8) {
                if ((st = gtr_buf_reserve(out, n * 3 + len * 3 + 8, err))) return st;
            }
            char *o = out->data + out->len;
            for (size_t i = 0; i < n; i++) {
                if (s[i] == ' ' && escape) {
                    memcpy(o, kSpace, 3);
                    o += 3;
                } else {
                    *o++ = s[i];
                }
            }
            out->len = (size_t)(o - out->data);
            is_prev_space = s[n - 1] == ' ';
        }
        in += p.consumed;
        len -= p.consumed;
        if (!nz->remove_extra_whitespaces) is_prev_space = false;
    }
    if (nz->remove_extra_whitespaces) { /* drop trailing whitespace */
        while (out->len >= ws_len && memcmp(out->data + out->len - ws_len, ws, ws_len) == 0)
            out->len -= ws_len;
    }
    if (nz->treat_whitespace_as_suffix && nz->add_dummy_prefix) {
        if ((st = gtr_buf_reserve(out, ws_len, err))) return st;
        memcpy(out->data + out->len, ws, ws_len);
        out->len += ws_len;
    }
    out->data[out->len] = '\0';
    return GTR_OK;
}
