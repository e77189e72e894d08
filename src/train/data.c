/* data.c — training examples (query, positive, hard negatives) from JSON lines or a BEIR
 * folder's train qrels, the order examples are visited in, and the random number generator.
 *
 * Epoch order: epoch e visits the examples in a permutation drawn from (seed, e) alone, so
 * the position in the data is one number (examples consumed) and a resumed run visits exactly
 * the examples the uninterrupted one would have. */
#include "train/train_internal.h"
#include "eval/eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG ---------------------------------------------------------------------------------- */

void gtr_tr_rng_seed(gtr_tr_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = gtr_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gtr_tr_rng_next(gtr_tr_rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t gtr_tr_rng_below(gtr_tr_rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do x = gtr_tr_rng_next(r);
    while (x >= lim);
    return x % n;
}

void gtr_tr_epoch_order(uint64_t seed, uint64_t epoch, size_t n, uint32_t *perm)
{
    gtr_tr_rng r;
    gtr_tr_rng_seed(&r, seed ^ (0x5851f42d4c957f2dull * (epoch + 1)));
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t k = (size_t)gtr_tr_rng_below(&r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[k];
        perm[k] = t;
    }
}

/* ---- the example store --------------------------------------------------------------------- */

const char *gtr_tr_text(const gtr_train_data *d, uint32_t id, size_t *len)
{
    return gtr_strmap_key(&d->texts, id, len);
}

void gtr_train_data_free(gtr_train_data *d)
{
    if (!d) return;
    gtr_strmap_free(&d->texts);
    free(d->ex);
    free(d->negs);
    free(d);
}

size_t gtr_train_data_count(const gtr_train_data *d) { return d ? d->n_ex : 0; }
size_t gtr_train_data_count_negatives(const gtr_train_data *d) { return d ? d->with_negs : 0; }

static gtr_train_data *data_new(gtr_error *err)
{
    gtr_train_data *d = gtr_xcalloc(1, sizeof *d, "training data", err);
    if (d) {
        gtr_strmap_init(&d->texts);
        d->fingerprint = GTR_FNV_SEED;
    }
    return d;
}

static gtr_status intern(gtr_train_data *d, const char *s, size_t len, uint32_t *id, gtr_error *err)
{
    if (d->texts.n >= UINT32_MAX - 1)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "more than 2^32 distinct texts");
    return gtr_strmap_intern(&d->texts, s, len, id, NULL, err);
}

/* Add one example: query, positive and the negatives negs[0..n) (text ids). */
static gtr_status add_example(gtr_train_data *d, uint32_t q, uint32_t p, const uint32_t *negs,
                              size_t n, gtr_error *err)
{
    if (d->n_ex == d->cap_ex) {
        size_t cap = d->cap_ex ? 2 * d->cap_ex : 1024;
        gtr_tr_example *e = gtr_xrealloc(d->ex, cap * sizeof *e, "examples", err);
        if (!e) return GTR_ERR_NOMEM;
        d->ex = e;
        d->cap_ex = cap;
    }
    if (d->n_negs + n > d->cap_negs) {
        size_t cap = GTR_MAX(d->n_negs + n, d->cap_negs ? 2 * d->cap_negs : 1024);
        uint32_t *ng = gtr_xrealloc(d->negs, cap * sizeof *ng, "negatives", err);
        if (!ng) return GTR_ERR_NOMEM;
        d->negs = ng;
        d->cap_negs = cap;
    }
    gtr_tr_example *e = &d->ex[d->n_ex++];
    e->query = q;
    e->pos = p;
    e->neg0 = (uint32_t)d->n_negs;
    e->n_neg = (uint32_t)n;
    if (n) memcpy(d->negs + d->n_negs, negs, n * sizeof *negs);
    d->n_negs += n;
    if (n) d->with_negs++;
    /* fingerprint: the texts themselves, with separators */
    uint32_t ids[2] = {q, p};
    for (size_t k = 0; k < 2 + n; k++) {
        size_t len;
        const char *s = gtr_tr_text(d, k < 2 ? ids[k] : negs[k - 2], &len);
        d->fingerprint = gtr_fnv1a64(s, len, d->fingerprint);
        d->fingerprint = gtr_fnv1a64(k == 1 ? "\x1e" : "\x1f", 1, d->fingerprint);
    }
    return GTR_OK;
}

/* ---- JSON lines ---------------------------------------------------------------------------- */

/* A field that is a string or an array of strings: their ids appended to *ids. */
static gtr_status texts_of(gtr_train_data *d, json_t *v, const char *field, const char *where,
                           uint32_t **ids, size_t *n, size_t *cap, gtr_error *err)
{
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < count; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s))
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: \"%s\" must be a string or an array of strings",
                              where, field);
        if (*n == *cap) {
            size_t c = *cap ? 2 * *cap : 16;
            uint32_t *x = gtr_xrealloc(*ids, c * sizeof *x, "texts", err);
            if (!x) return GTR_ERR_NOMEM;
            *ids = x;
            *cap = c;
        }
        gtr_status st = intern(d, json_string_value(s), json_string_length(s), &(*ids)[(*n)++], err);
        if (st) return st;
    }
    return GTR_OK;
}

static json_t *field(json_t *o, const char *const *names)
{
    for (; *names; names++) {
        json_t *v = json_object_get(o, *names);
        if (v) return v;
    }
    return NULL;
}

static gtr_status jsonl_line(gtr_train_data *d, const char *line, size_t len, const char *where,
                             uint32_t **ids, size_t *cap, gtr_error *err)
{
    static const char *const qn[] = {"query", NULL}, *const pn[] = {"pos", "positive", "positives", NULL},
                             *const nn[] = {"neg", "negative", "negatives", NULL};
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: invalid JSON: %s", where, je.text);
    gtr_status st = GTR_OK;
    json_t *q = json_is_object(o) ? field(o, qn) : NULL, *p = json_is_object(o) ? field(o, pn) : NULL;
    json_t *ng = json_is_object(o) ? field(o, nn) : NULL;
    size_t n = 0;
    if (!json_is_object(o)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected an object {\"query\", \"pos\", \"neg\"}", where);
    } else if (!json_is_string(q)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: \"query\" must be a string", where);
    } else if (!p || (json_is_array(p) && json_array_size(p) == 0)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no positive passage (\"pos\")", where);
    } else {
        st = intern(d, json_string_value(q), json_string_length(q), &(*ids)[0], err);
        n = 1;
        if (!st) st = texts_of(d, p, "pos", where, ids, &n, cap, err);
        size_t npos = n - 1;
        if (!st && ng && !json_is_null(ng)) st = texts_of(d, ng, "neg", where, ids, &n, cap, err);
        /* one example per positive, all sharing the line's negatives */
        for (size_t k = 0; !st && k < npos; k++)
            st = add_example(d, (*ids)[0], (*ids)[1 + k], *ids + 1 + npos, n - 1 - npos, err);
    }
    json_decref(o);
    return st;
}

gtr_train_data *gtr_train_data_load_jsonl(const char *path, gtr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gtr_seterr(err, GTR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    gtr_train_data *d = data_new(err);
    char *line = NULL;
    size_t lcap = 0, lineno = 0, cap = 16;
    uint32_t *ids = gtr_xmalloc(cap * sizeof *ids, "texts", err);
    ssize_t len;
    gtr_status st = d && ids ? GTR_OK : GTR_ERR_NOMEM;
    while (!st && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        /* a UTF-8 byte order mark at the start of the file is not text */
        size_t bom = lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0 ? 3 : 0, i = bom;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i == (size_t)len) continue; /* blank line */
        char where[512];
        snprintf(where, sizeof where, "%s:%zu", path, lineno);
        st = jsonl_line(d, line + bom, (size_t)len - bom, where, &ids, &cap, err);
    }
    if (!st && ferror(f)) st = gtr_seterr(err, GTR_ERR_IO, "%s: read error", path);
    if (!st && d->n_ex == 0) st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no training examples", path);
    free(line);
    free(ids);
    fclose(f);
    if (st) {
        gtr_train_data_free(d);
        return NULL;
    }
    return d;
}

/* ---- BEIR ---------------------------------------------------------------------------------- */

/* Fill text[id] for every query (passages: every corpus document) whose id is in want. */
static gtr_status read_beir_texts(gtr_train_data *d, const gtr_beir *b, const gtr_strmap *want,
                                  uint32_t *text, bool passage, gtr_error *err)
{
    gtr_status st = GTR_OK;
    if (!passage) {
        gtr_queries *q = gtr_beir_load_queries(b, NULL, err);
        if (!q) return err && err->code ? err->code : GTR_ERR_IO;
        for (size_t i = 0; i < gtr_queries_count(q) && !st; i++) {
            size_t il, tl;
            const char *id = gtr_queries_id(q, i, &il), *t = gtr_queries_text(q, i, &tl);
            uint32_t w = gtr_strmap_find(want, id, il);
            if (w != GTR_STRMAP_NONE && text[w] == UINT32_MAX) st = intern(d, t, tl, &text[w], err);
        }
        gtr_queries_free(q);
        return st;
    }
    gtr_corpus *c = gtr_beir_open_corpus(b, err);
    if (!c) return err && err->code ? err->code : GTR_ERR_IO;
    for (;;) {
        gtr_corpus_doc doc;
        int eof;
        if ((st = gtr_corpus_next(c, &doc, &eof, err)) || eof) break;
        uint32_t w = gtr_strmap_find(want, doc.id, doc.id_len);
        if (w == GTR_STRMAP_NONE || text[w] != UINT32_MAX) continue;
        if ((st = intern(d, doc.passage, doc.passage_len, &text[w], err))) break;
    }
    gtr_corpus_close(c);
    return st;
}

gtr_train_data *gtr_train_data_load_beir(const char *dir, const char *split, gtr_error *err)
{
    gtr_beir *b = gtr_beir_open(dir, split ? split : "train", err);
    if (!b) return NULL;
    const char *qrels_path = gtr_beir_qrels_path(b), *corpus = gtr_beir_corpus_path(b),
               *queries = gtr_beir_queries_path(b);
    gtr_train_data *d = data_new(err);
    gtr_qrels *qr = NULL;
    uint32_t *qtext = NULL, *dtext = NULL;
    gtr_status st = GTR_OK;
    if (!d) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    if (!(qr = gtr_beir_load_qrels(b, err))) {
        st = err && err->code ? err->code : GTR_ERR_IO;
        goto done;
    }
    qtext = gtr_xmalloc((qr->qids.n + 1) * sizeof *qtext, "query texts", err);
    dtext = gtr_xmalloc((qr->docs.n + 1) * sizeof *dtext, "passages", err);
    if (!qtext || !dtext) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    memset(qtext, 0xff, (qr->qids.n + 1) * sizeof *qtext);
    memset(dtext, 0xff, (qr->docs.n + 1) * sizeof *dtext);
    if ((st = read_beir_texts(d, b, &qr->qids, qtext, false, err)) ||
        (st = read_beir_texts(d, b, &qr->docs, dtext, true, err)))
        goto done;
    /* queries in the qrels file's order, each query's documents in id order */
    for (uint32_t qi = 0; qi < qr->qids.n && !st; qi++) {
        size_t n;
        const gtr_judgment *j = gtr_qrels_judgments(qr, qi, &n);
        for (size_t k = 0; k < n && !st; k++) {
            if (j[k].rel < 1) continue;
            if (qtext[qi] == UINT32_MAX)
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: query '%s' of %s is missing", queries,
                                gtr_strmap_key(&qr->qids, qi, NULL), qrels_path);
            else if (dtext[j[k].doc] == UINT32_MAX)
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: document '%s' of %s is missing", corpus,
                                gtr_strmap_key(&qr->docs, j[k].doc, NULL), qrels_path);
            else
                st = add_example(d, qtext[qi], dtext[j[k].doc], NULL, 0, err);
        }
    }
    if (!st && d->n_ex == 0)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no relevant (query, document) pair", qrels_path);
done:
    gtr_qrels_free(qr);
    free(qtext);
    free(dtext);
    gtr_beir_free(b);
    if (st) {
        gtr_train_data_free(d);
        return NULL;
    }
    return d;
}
