/*
 * tokenizer.c — the public tokenizer API's loading side: read a spiece.model into the
 * structures encode.c and decode.c use (trie, double array, normaliser), the vocabulary
 * queries and piece strings. Encoding is in encode.c, decoding in decode.c.
 *
 * Load reproduces SentencePieceProcessor::Load's checks for unigram models (empty or
 * duplicate pieces, a missing or second <unk>, byte pieces without byte_fallback, ...), so a
 * file SentencePiece refuses is refused here too, with a one-line reason.
 */
#include "spm_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static bool is_trie_type(int type)
{
    return type == SPM_NORMAL || type == SPM_USER_DEFINED || type == SPM_UNUSED;
}

/* "<0xXX>" (upper-case hex, as ByteToPiece writes it) -> 0..255, else -1. */
static int piece_to_byte(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *h = memchr(hex, s[3], 16), *l = memchr(hex, s[4], 16);
    if (!h || !l) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

/* Printable excerpt of a piece for error messages. */
static void piece_excerpt(const char *s, size_t len, char out[48])
{
    size_t j = 0;
    for (size_t i = 0; i < len && j < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) j += (size_t)snprintf(out + j, 48 - j, "\\x%02x", c);
        else out[j++] = (char)c;
    }
    if (j > 40) j = 40;
    out[j] = '\0';
}

static int reserved_cmp(const void *a, const void *b)
{
    const spm_trie_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

int spm_piece_to_id(const gtr_tokenizer *t, const char *s, size_t len)
{
    spm_trie_key k = {s, len, 0};
    const spm_trie_key *r = t->n_reserved
        ? bsearch(&k, t->reserved, t->n_reserved, sizeof k, reserved_cmp) : NULL;
    if (r) return r->value;
    int32_t id = spm_trie_exact(&t->pieces, s, len);
    return id >= 0 ? id : t->unk_id;
}

void gtr_tokenizer_free(gtr_tokenizer *t)
{
    if (!t) return;
    free(t->pool);
    free(t->piece_off);
    free(t->score);
    free(t->type);
    spm_trie_free(&t->pieces);
    spm_da_free(&t->lattice);
    spm_trie_free(&t->user);
    free(t->reserved);
    spm_normalizer_free(&t->norm);
    spm_normalizer_free(&t->denorm);
    free(t->unk_surface);
    free(t);
}

/* What the Viterbi walk needs of a trie value: UNUSED pieces are skipped (as if absent),
 * user-defined ones are flagged (their score depends on their length). */
static void lattice_value(void *ctx, int32_t value, int32_t *id, float *score)
{
    const gtr_tokenizer *t = ctx;
    switch (t->type[value]) {
    case SPM_UNUSED: *id = -1; break;
    case SPM_USER_DEFINED: *id = value | SPM_DA_USER; break;
    default:
        *id = value;
        *score = t->score[value];
    }
}

/* Build the tokenizer from a parsed proto (strings still point into the caller's data). */
static gtr_status build(gtr_tokenizer *t, const spm_proto *m, const char *what, gtr_error *err)
{
    gtr_status st;
    /* spm_train always writes both specs after the pieces; a file without them is cut short
     * at a piece boundary (which protobuf framing alone cannot detect), not a model. */
    if (!m->has_trainer_spec || !m->normalizer.present)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: not a complete SentencePiece model (no %s; truncated?)",
                          what, m->has_trainer_spec ? "normalizer_spec" : "trainer_spec");
    if (m->model_type != SPM_MODEL_UNIGRAM) {
        static const char *names[] = {"?", "unigram", "bpe", "word", "char"};
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: only unigram SentencePiece models are supported (this one is %s)",
                          what, names[m->model_type]);
    }
    if (m->n_pieces == 0) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: the model has no pieces", what);
    if (m->n_pieces >= SPM_DA_USER)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: too many pieces (%zu)", what, m->n_pieces);
    size_t n = m->n_pieces, pool_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->pieces[i].piece.len == 0)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: piece %zu is empty", what, i);
        pool_len += m->pieces[i].piece.len + 1;
        if (pool_len > UINT32_MAX)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: pieces too long in total", what);
    }
    t->n_pieces = n;
    t->pool = gtr_xmalloc(pool_len, "pieces", err);
    t->piece_off = gtr_xmalloc((n + 1) * sizeof *t->piece_off, "pieces", err);
    t->score = gtr_xmalloc(n * sizeof *t->score, "pieces", err);
    t->type = gtr_xmalloc(n, "pieces", err);
    spm_trie_key *keys = gtr_xmalloc(n * sizeof *keys, "pieces", err);
    spm_trie_key *user = gtr_xmalloc(n * sizeof *user, "pieces", err);
    t->reserved = gtr_xmalloc(n * sizeof *t->reserved, "pieces", err);
    if (!t->pool || !t->piece_off || !t->score || !t->type || !keys || !user || !t->reserved) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    size_t off = 0, n_keys = 0, n_user = 0;
    t->unk_id = -1;
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN; /* sic: SentencePiece starts from the smallest positive float */
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    t->byte_fallback = m->byte_fallback;
    for (size_t i = 0; i < n; i++) {
        const spm_proto_piece *p = &m->pieces[i];
        char ex[48];
        t->piece_off[i] = (uint32_t)off;
        memcpy(t->pool + off, p->piece.p, p->piece.len);
        const char *s = t->pool + off;
        t->pool[off + p->piece.len] = '\0';
        off += p->piece.len + 1;
        t->score[i] = p->score;
        t->type[i] = (uint8_t)p->type;
        spm_trie_key k = {s, p->piece.len, (int32_t)i};
        if (is_trie_type(p->type)) {
            if (memchr(s, '\0', p->piece.len)) {
                piece_excerpt(s, p->piece.len, ex);
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: piece %zu '%s' contains a NUL byte", what, i, ex);
                goto done;
            }
            keys[n_keys++] = k;
            if (p->type == SPM_USER_DEFINED) user[n_user++] = k;
        } else {
            t->reserved[t->n_reserved++] = k;
        }
        if (p->type == SPM_NORMAL) {
            /* std::min / std::max argument order, so NaN scores behave the same */
            if (p->score < t->min_score) t->min_score = p->score;
            if (t->max_score < p->score) t->max_score = p->score;
        }
        if (p->type == SPM_UNKNOWN) {
            if (t->unk_id >= 0) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: a second unknown piece (%zu; the first is %d)",
                                what, i, t->unk_id);
                goto done;
            }
            t->unk_id = (int)i;
        }
        if (p->type == SPM_BYTE) {
            piece_excerpt(s, p->piece.len, ex);
            if (!m->byte_fallback) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: byte piece %zu '%s' but byte_fallback is off",
                                what, i, ex);
                goto done;
            }
            int byte = piece_to_byte(s, p->piece.len);
            if (byte < 0) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: invalid byte piece %zu '%s'", what, i, ex);
                goto done;
            }
            t->byte_id[byte] = (int32_t)i;
        }
    }
    t->piece_off[n] = (uint32_t)off;
    if (t->unk_id < 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: the model has no unknown (<unk>) piece", what);
        goto done;
    }
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (t->byte_id[b] < 0) {
                st = gtr_seterr(err, GTR_ERR_FORMAT,
                                "%s: byte_fallback is on but there is no byte piece <0x%02X>", what, b);
                goto done;
            }
        }
    }
    size_t dup = 0;
    qsort(t->reserved, t->n_reserved, sizeof *t->reserved, reserved_cmp);
    for (size_t i = 1; i < t->n_reserved; i++) {
        if (reserved_cmp(&t->reserved[i - 1], &t->reserved[i]) == 0) {
            char ex[48];
            piece_excerpt(t->reserved[i].key, t->reserved[i].len, ex);
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: piece '%s' is defined twice", what, ex);
            goto done;
        }
    }
    if ((st = spm_trie_build(&t->pieces, keys, n_keys, &dup, err))) {
        if (st == GTR_ERR_FORMAT) {
            char ex[48];
            piece_excerpt(keys[dup].key, keys[dup].len, ex);
            gtr_seterr(err, GTR_ERR_FORMAT, "%s: piece '%s' is defined twice", what, ex);
        }
        goto done;
    }
    if (n_keys == 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: the model has no normal pieces", what);
        goto done;
    }
    if ((st = spm_da_build(&t->lattice, &t->pieces, lattice_value, t, err))) goto done;
    if (n_user && (st = spm_trie_build(&t->user, user, n_user, NULL, err))) goto done;

    if ((st = spm_normalizer_init(&t->norm, &m->normalizer, m->treat_whitespace_as_suffix, what, err)))
        goto done;
    t->norm.user = n_user ? &t->user : NULL;
    /* A denormalizer is only used when it has rules (as SentencePieceProcessor::Load). */
    if (m->denormalizer.present && m->denormalizer.charsmap.len) {
        if ((st = spm_normalizer_init(&t->denorm, &m->denormalizer, false, what, err))) goto done;
        t->has_denorm = true;
    }

    t->space_bounded = t->norm.escape_whitespaces && !t->norm.treat_whitespace_as_suffix;
    for (size_t i = 0; i < t->n_pieces && t->space_bounded; i++) {
        if (t->type[i] != SPM_NORMAL && t->type[i] != SPM_USER_DEFINED && t->type[i] != SPM_UNUSED) continue;
        const char *p = t->pool + t->piece_off[i];
        size_t pl = t->piece_off[i + 1] - t->piece_off[i] - 1;
        for (size_t k = 0; k < pl && t->space_bounded; k++)
            if (p[k] == ' ' || (k > 0 && k + 3 <= pl && memcmp(p + k, "\xe2\x96\x81", 3) == 0))
                t->space_bounded = false;
    }

    /* The special ids as SentencePieceProcessor reports them: looked up by piece string and
     * only valid when the piece has the matching type. */
    int id = spm_piece_to_id(t, m->eos_piece.p, m->eos_piece.len);
    t->eos_id = t->type[id] == SPM_CONTROL ? id : -1;
    id = spm_piece_to_id(t, m->bos_piece.p, m->bos_piece.len);
    t->bos_id = t->type[id] == SPM_CONTROL ? id : -1;
    id = spm_piece_to_id(t, m->pad_piece.p, m->pad_piece.len);
    t->pad_id = t->type[id] == SPM_CONTROL ? id : -1;
    id = spm_piece_to_id(t, m->unk_piece.p, m->unk_piece.len);
    t->unk_public = t->type[id] == SPM_UNKNOWN ? id : -1;

    t->unk_surface_len = m->unk_surface.len;
    t->unk_surface = gtr_xmalloc(m->unk_surface.len + 1, "unk surface", err);
    if (!t->unk_surface) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    memcpy(t->unk_surface, m->unk_surface.p, m->unk_surface.len);
    t->unk_surface[m->unk_surface.len] = '\0';
    st = GTR_OK;
done:
    free(keys);
    free(user);
    return st;
}

gtr_tokenizer_options gtr_tokenizer_default_options(void)
{
    gtr_tokenizer_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.compat = GTR_SPM_COMPAT_0_1;
    return o;
}

static gtr_tokenizer *load_named(const void *data, size_t len, const char *what,
                                 const gtr_tokenizer_options *opts, gtr_error *err)
{
    gtr_tokenizer_options o = gtr_tokenizer_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_tokenizer_load", err)) return NULL;
    gtr_spm_compat compat = o.compat;
    if (compat != GTR_SPM_COMPAT_0_1 && compat != GTR_SPM_COMPAT_0_2_2 && compat != GTR_SPM_COMPAT_HF) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown SentencePiece compatibility mode %d", (int)compat);
        return NULL;
    }
    spm_proto m;
    if (spm_proto_parse(data, len, what, &m, err)) return NULL;
    gtr_tokenizer *t = gtr_xcalloc(1, sizeof *t, "tokenizer", err);
    if (!t) {
        spm_proto_free(&m);
        return NULL;
    }
    t->compat = compat;
    gtr_status st = build(t, &m, what, err);
    spm_proto_free(&m);
    if (st) {
        gtr_tokenizer_free(t);
        return NULL;
    }
    return t;
}

gtr_tokenizer *gtr_tokenizer_load_memory(const void *data, size_t len,
                                         const gtr_tokenizer_options *opts, gtr_error *err)
{
    if (!data && len) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenizer_load_memory: NULL data");
        return NULL;
    }
    return load_named(data, len, "<memory>", opts, err);
}

gtr_tokenizer *gtr_tokenizer_load(const char *path, const gtr_tokenizer_options *opts,
                                  gtr_error *err)
{
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_tokenizer_load: NULL path");
        return NULL;
    }
    char *data;
    size_t len;
    /* spiece.model files are ~1 MB; 1 GB is far beyond any real vocabulary */
    if (gtr_read_file(path, (size_t)1 << 30, &data, &len, err)) return NULL;
    gtr_tokenizer *t = load_named(data, len, path, opts, err);
    free(data);
    return t;
}

int gtr_tokenizer_vocab_size(const gtr_tokenizer *t) { return t ? (int)t->n_pieces : 0; }
int gtr_tokenizer_eos_id(const gtr_tokenizer *t) { return t ? t->eos_id : -1; }
int gtr_tokenizer_pad_id(const gtr_tokenizer *t) { return t ? t->pad_id : -1; }
int gtr_tokenizer_unk_id(const gtr_tokenizer *t) { return t ? t->unk_public : -1; }

const char *gtr_tokenizer_piece(const gtr_tokenizer *t, int id, size_t *len)
{
    if (!t || id < 0 || (size_t)id >= t->n_pieces) return NULL;
    if (len) *len = t->piece_off[id + 1] - t->piece_off[id] - 1;
    return t->pool + t->piece_off[id];
}

gtr_status gtr_spm_compat_parse(const char *s, gtr_spm_compat *out, gtr_error *err)
{
    if (s && !strcmp(s, "hf")) {
        *out = GTR_SPM_COMPAT_HF;
        return GTR_OK;
    }
    /* a release number, "MAJOR.MINOR[.PATCH]": releases before 0.2.2 sum in double */
    unsigned long v[3] = {0, 0, 0};
    int n = 0;
    const char *p = s;
    while (p && n < 3) {
        if (*p < '0' || *p > '9') break;
        char *end;
        v[n++] = strtoul(p, &end, 10);
        p = end;
        if (*p != '.') break;
        p++;
    }
    if (!s || n < 2 || *p != '\0' || p[-1] == '.' || v[0] > 1000 || v[1] > 1000 || v[2] > 1000)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "expected hf or a SentencePiece release such as 0.1 or 0.2.2, got '%s'", s ? s : "(null)");
    bool before_022 = v[0] == 0 && (v[1] < 2 || (v[1] == 2 && v[2] < 2));
    *out = before_022 ? GTR_SPM_COMPAT_0_1 : GTR_SPM_COMPAT_0_2_2;
    return GTR_OK;
}
