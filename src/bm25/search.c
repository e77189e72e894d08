/* search.c — BM25 top-k with Lucene's BM25Similarity arithmetic (float, one-byte norms,
 * 256-entry norm cache), term-at-a-time over the postings, queries spread over threads. */
#include "bm25/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256 /* queries between progress reports */

gtr_bm25_search_options gtr_bm25_default_search_options(void)
{
    gtr_bm25_search_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.k1 = 0.9f;
    o.b = 0.4f;
    return o;
}

/* Per-thread working memory. */
typedef struct qscratch {
    bm25_scratch an;
    float *acc;         /* [n_docs] score sums, zero between queries */
    uint8_t *mark;      /* [n_docs] touched by the current query */
    uint32_t *touched;  /* the touched documents */
    size_t n_touched;
    gtr_buf terms;      /* the query's terms, NUL-separated */
    size_t n_terms;
    gtr_status st;
    gtr_error err;
} qscratch;

typedef struct search_ctx {
    const gtr_bm25 *ix;
    const char *const *texts;
    const size_t *lens;
    size_t k;
    const gtr_bm25_search_options *o;
    float cache[256];  /* Lucene: 1 / (k1 * ((1 - b) + b * dl / avgdl)) per norm byte */
    float avgdl;
    size_t base;       /* first query of the current chunk */
    gtr_hit *hits;
    size_t *n_hits;
    qscratch *sc;      /* one per thread */
    size_t lo, hi;     /* documents returned: [lo, hi) */
} search_ctx;

static gtr_status collect_term(void *user, const char *term, size_t len, gtr_error *err)
{
    qscratch *q = user;
    gtr_status st = gtr_buf_append(&q->terms, term, len, err);
    if (!st) st = gtr_buf_append(&q->terms, "", 1, err);
    if (!st) q->n_terms++;
    return st;
}

/* Lucene's idf, computed in double and stored as float. */
static float idf(uint64_t df, uint64_t n)
{
    return (float)log(1.0 + ((double)n - (double)df + 0.5) / ((double)df + 0.5));
}

/* a ranks before b: higher score, then larger document id (bytewise) */
static bool better(const gtr_bm25 *ix, const gtr_hit *a, const gtr_hit *b)
{
    if (a->score != b->score) return a->score > b->score;
    return ix->doc_rank[a->doc] > ix->doc_rank[b->doc];
}

/* Min-heap on "better": the root is the worst hit kept. */
static void sift_down(const gtr_bm25 *ix, gtr_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(ix, &h[w], &h[l])) w = l;
        if (r < n && better(ix, &h[w], &h[r])) w = r;
        if (w == i) return;
        gtr_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(const gtr_bm25 *ix, gtr_hit *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(ix, &h[p], &h[i])) return;
        gtr_hit t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static gtr_status ensure_scratch(qscratch *q, size_t n_docs, gtr_error *err)
{
    if (q->acc) return GTR_OK;
    q->acc = gtr_xcalloc(n_docs, sizeof *q->acc, "bm25 search", err);
    q->mark = gtr_xcalloc(n_docs, 1, "bm25 search", err);
    q->touched = gtr_xmalloc(n_docs * sizeof *q->touched, "bm25 search", err);
    return q->acc && q->mark && q->touched ? GTR_OK : GTR_ERR_NOMEM;
}

static gtr_status search_one(search_ctx *c, qscratch *q, size_t qi, gtr_error *err)
{
    const gtr_bm25 *ix = c->ix;
    const gtr_bm25_search_options *o = c->o;
    gtr_hit *out = c->hits + qi * c->k;
    c->n_hits[qi] = 0;
    gtr_status st = ensure_scratch(q, ix->n_docs, err);
    if (st) return st;
    const char *text = c->texts[qi] ? c->texts[qi] : "";
    size_t len = c->lens ? c->lens[qi] : strlen(text);
    q->terms.len = 0;
    q->n_terms = 0;
    if ((st = gtr_buf_reserve(&q->terms, 0, err))) return st;
    if ((st = bm25_analyze(&q->an, text, len, collect_term, q, err))) return st;
    uint64_t n = ix->h->n_docs_nonempty;
    /* Each distinct term once, weighted by how often the query repeats it (Anserini's
     * bag-of-words query: a boost equal to the count). */
    const char *t = q->terms.data;
    for (size_t i = 0; i < q->n_terms; i++, t += strlen(t) + 1) {
        const char *u = q->terms.data;
        bool seen = false;
        size_t count = 0;
        for (size_t j = 0; j < q->n_terms; j++, u += strlen(u) + 1) {
            if (strcmp(u, t)) continue;
            if (j < i) {
                seen = true;
                break;
            }
            count++;
        }
        if (seen) continue;
        size_t term = bm25_find_term(ix, t, strlen(t));
        if (term == SIZE_MAX) continue;
        uint64_t a = ix->post_off[term], b = ix->post_off[term + 1];
        float weight = (float)count * idf(b - a, n);
        for (uint64_t p = a; p < b; p++) {
            uint32_t d = ix->post_doc[p];
            float freq = (float)ix->post_freq[p];
            float norm_inv = o->exact_lengths
                                 ? 1.0f / (o->k1 * ((1 - o->b) + o->b * (float)ix->doc_len[d] / c->avgdl))
                                 : c->cache[ix->doc_norm[d]];
            q->acc[d] += weight - weight / (1.0f + freq * norm_inv);
            if (!q->mark[d]) {
                q->mark[d] = 1;
                q->touched[q->n_touched++] = d;
            }
        }
    }
    size_t skip = SIZE_MAX;
    if (o->skip_ids && o->skip_ids[qi]) skip = gtr_bm25_find_doc(ix, o->skip_ids[qi], strlen(o->skip_ids[qi]));
    size_t kept = 0;
    for (size_t i = 0; i < q->n_touched; i++) {
        uint32_t d = q->touched[i];
        gtr_hit h = {d, q->acc[d], NULL, 0};
        q->acc[d] = 0;
        q->mark[d] = 0;
        if (d == skip || c->k == 0 || d < c->lo || d >= c->hi) continue;
        if (kept < c->k) {
            out[kept] = h;
            sift_up(ix, out, kept++);
        } else if (better(ix, &h, &out[0])) {
            out[0] = h;
            sift_down(ix, out, kept, 0);
        }
    }
    q->n_touched = 0;
    /* heap to best-first order */
    for (size_t n_left = kept; n_left > 1; n_left--) {
        gtr_hit tmp = out[0];
        out[0] = out[n_left - 1];
        out[n_left - 1] = tmp;
        sift_down(ix, out, n_left - 1, 0);
    }
    for (size_t i = 0; i < kept; i++) out[i].id = gtr_bm25_doc_id(ix, out[i].doc, &out[i].id_len);
    c->n_hits[qi] = kept;
    return GTR_OK;
}

static void search_task(void *ctx, size_t i, int thread_id)
{
    search_ctx *c = ctx;
    qscratch *q = &c->sc[thread_id];
    if (q->st) return;
    q->st = search_one(c, q, c->base + i, &q->err);
}

gtr_status gtr_bm25_search(const gtr_bm25 *ix, const char *const *texts, const size_t *lens,
                           size_t nq, size_t k, const gtr_bm25_search_options *opts,
                           gtr_hit *hits, size_t *n_hits, gtr_error *err)
{
    if (!ix || (nq && (!texts || !n_hits || (k && !hits))))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25_search: missing index, queries or output");
    gtr_bm25_search_options o = gtr_bm25_default_search_options();
    if (gtr_options_take(&o, sizeof o, opts, "bm25_search", err)) return GTR_ERR_INVALID_ARG;
    if (!(o.k1 >= 0) || !(o.b >= 0 && o.b <= 1))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25_search: need k1 >= 0 and 0 <= b <= 1 (got %g, %g)",
                          (double)o.k1, (double)o.b);
    search_ctx c = {.ix = ix, .texts = texts, .lens = lens, .k = k, .o = &o, .hits = hits, .n_hits = n_hits};
    c.lo = o.doc_begin;
    c.hi = o.doc_end ? o.doc_end : ix->n_docs;
    if (c.lo > c.hi || c.hi > ix->n_docs)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25_search: documents %zu..%zu of an index of %zu", o.doc_begin,
                          o.doc_end, (size_t)ix->n_docs);
    uint64_t n = ix->h->n_docs_nonempty;
    c.avgdl = n ? (float)((double)ix->h->total_len / (double)n) : 1.0f;
    for (int i = 0; i < 256; i++)
        c.cache[i] = 1.0f / (o.k1 * ((1 - o.b) + o.b * (float)bm25_norm_to_len((uint8_t)i) / c.avgdl));
    int nt = o.pool ? gtr_pool_size(o.pool) : 1;
    c.sc = gtr_xcalloc((size_t)nt, sizeof *c.sc, "bm25 search", err);
    if (!c.sc) return GTR_ERR_NOMEM;
    gtr_status st = GTR_OK;
    for (c.base = 0; c.base < nq && !st; c.base += CHUNK) {
        size_t m = GTR_MIN((size_t)CHUNK, nq - c.base);
        gtr_pool_for(o.pool, m, search_task, &c);
        for (int i = 0; i < nt && !st; i++)
            if (c.sc[i].st) {
                if (err) *err = c.sc[i].err;
                st = c.sc[i].st;
            }
        if (!st && o.progress && o.progress(o.progress_user, c.base + m, nq))
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "search interrupted");
    }
    for (int i = 0; i < nt; i++) {
        bm25_scratch_free(&c.sc[i].an);
        free(c.sc[i].acc);
        free(c.sc[i].mark);
        free(c.sc[i].touched);
        gtr_buf_free(&c.sc[i].terms);
    }
    free(c.sc);
    return st;
}
