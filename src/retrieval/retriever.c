/* retriever.c — the one retrieval pipeline (gtr.h, "retrieval"): query texts in, ranked hits
 * out. Dense: encode (or take the caller's vectors), exact or IVF top-k, drop the query's own
 * id; BM25: gtr_bm25_search; hybrid: both lists, `depth` deep, fused into the best k. Queries
 * go through in chunks of CHUNK so the scratch lists are bounded by the chunk, not the file. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 256 /* queries encoded and searched together */

struct gtr_retriever {
    gtr_model *model;
    const gtr_index *index;
    const gtr_ann *ann;
    const gtr_bm25 *bm25;
    gtr_pool *pool;
};

gtr_status gtr_retrieval_method_parse(const char *s, gtr_retrieval_method *out, gtr_error *err)
{
    if (s && (!strcmp(s, "dense") || !strcmp(s, "gtr"))) *out = GTR_RETRIEVE_DENSE;
    else if (s && !strcmp(s, "bm25")) *out = GTR_RETRIEVE_BM25;
    else if (s && !strcmp(s, "hybrid")) *out = GTR_RETRIEVE_HYBRID;
    else return gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown retrieval method '%s' (dense, bm25, hybrid)", s ? s : "");
    return GTR_OK;
}

const char *gtr_retrieval_method_name(gtr_retrieval_method m)
{
    return m == GTR_RETRIEVE_BM25 ? "bm25" : m == GTR_RETRIEVE_HYBRID ? "hybrid" : "dense";
}

gtr_retriever_options gtr_retriever_default_options(void)
{
    gtr_retriever_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_retrieve_options gtr_retrieve_default_options(void)
{
    gtr_retrieve_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.method = GTR_RETRIEVE_DENSE;
    o.k = 10;
    o.depth = 1000;
    o.fusion = gtr_fusion_default_options();
    o.alpha = 0.5;
    o.batch = 64;
    return o;
}

gtr_retriever *gtr_retriever_open(const gtr_retriever_options *opts, gtr_error *err)
{
    gtr_retriever_options o = gtr_retriever_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_retriever_open", err)) return NULL;
    if (!o.index && !o.bm25) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "a retriever needs a dense index and/or a BM25 index");
        return NULL;
    }
    if (o.ann && !o.index) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "an approximate (IVF) index needs the dense index it was built from");
        return NULL;
    }
    if (o.model && o.index && gtr_index_check_model(o.index, o.model, err)) return NULL;
    gtr_retriever *r = gtr_xcalloc(1, sizeof *r, "retriever", err);
    if (!r) return NULL;
    *r = (gtr_retriever){o.model, o.index, o.ann, o.bm25, o.pool};
    return r;
}

void gtr_retriever_free(gtr_retriever *r) { free(r); }

/* scratch of one search: the lists of a chunk */
typedef struct {
    float *vecs;          /* [CHUNK][dim] encoded queries (when not given) */
    gtr_hit *dh;          /* [CHUNK][kk] raw dense hits (the query's own id still in) */
    gtr_hit *dl, *bl;     /* hybrid: [CHUNK][depth] dense and BM25 lists */
    size_t *nh, *nd, *nb; /* [CHUNK] */
    gtr_ranked_doc *l0, *l1, *fused;
    struct idmap { const char *id; size_t doc; } *map; /* a dense list by id pointer */
} scratch;

static bool same_id(const char *a, size_t la, const char *b)
{
    return b && strlen(b) == la && memcmp(a, b, la) == 0;
}

/* dense hits of queries [q0, q0 + nq) into out[q * stride ...], without the query's own id */
static gtr_status dense_chunk(const gtr_retriever *r, const char *const *texts, const size_t *lens,
                              size_t q0, size_t nq, size_t depth, const gtr_retrieve_options *o, scratch *s,
                              gtr_hit *out, size_t stride, size_t *nout, gtr_error *err)
{
    size_t dim = (size_t)gtr_index_dim(r->index);
    const float *qv = o->vectors ? o->vectors + q0 * dim : s->vecs;
    gtr_status st = GTR_OK;
    for (size_t b = 0; !o->vectors && !st && b < nq; b += o->batch) {
        size_t nb = GTR_MIN(nq - b, o->batch);
        st = gtr_model_encode(r->model, texts + q0 + b, lens ? lens + q0 + b : NULL, nb, s->vecs + b * dim, err);
    }
    if (st) return st;
    size_t kk = depth + (o->skip_ids ? 1 : 0);
    gtr_search_options so = gtr_index_default_search_options();
    so.pool = r->pool;
    so.use_compact = o->use_compact;
    so.doc_begin = o->doc_begin;
    so.doc_end = o->doc_end;
    so.allow = o->allow;
    gtr_ann_search_options ao = gtr_ann_default_search_options();
    ao.nprobe = o->nprobe;
    ao.pool = r->pool;
    ao.allow = o->allow;
    if (r->ann && (o->doc_begin || o->doc_end))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "a document range is searched exactly, not through an ANN index");
    if ((st = r->ann ? gtr_ann_search(r->ann, qv, nq, kk, &ao, s->dh, s->nh, err)
                     : gtr_index_search(r->index, qv, nq, kk, &so, s->dh, s->nh, err)))
        return st;
    for (size_t i = 0; i < nq; i++) {
        const char *self = o->skip_ids ? o->skip_ids[q0 + i] : NULL;
        size_t w = 0;
        for (size_t j = 0; j < s->nh[i] && w < depth; j++) {
            const gtr_hit *h = &s->dh[i * kk + j];
            if (same_id(h->id, h->id_len, self)) continue;
            out[i * stride + w++] = *h;
        }
        nout[i] = w;
    }
    return GTR_OK;
}

static gtr_status bm25_chunk(const gtr_retriever *r, const char *const *texts, const size_t *lens, size_t q0,
                             size_t nq, size_t depth, const gtr_retrieve_options *o, gtr_hit *out, size_t *nout,
                             gtr_error *err)
{
    gtr_bm25_search_options bo = gtr_bm25_default_search_options();
    bo.pool = r->pool;
    bo.skip_ids = o->skip_ids ? o->skip_ids + q0 : NULL;
    gtr_status st = gtr_bm25_search(r->bm25, texts + q0, lens ? lens + q0 : NULL, nq, depth, &bo, out, nout, err);
    for (size_t i = 0; !st && i < nq; i++)
        for (size_t j = 0; j < nout[i]; j++) out[i * depth + j].doc = SIZE_MAX; /* not a dense document */
    return st;
}

static int cmp_map(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct idmap *)a)->id, y = (uintptr_t)((const struct idmap *)b)->id;
    return x < y ? -1 : x > y;
}

/* fuse each query's dense and BM25 lists into out[q * k ...] */
static gtr_status fuse_chunk(size_t nq, size_t depth, const gtr_retrieve_options *o, scratch *s, gtr_hit *out,
                             size_t *nout, gtr_error *err)
{
    double w[2] = {o->alpha, 1 - o->alpha};
    gtr_fusion_options fo = o->fusion;
    if (fo.method == GTR_FUSION_INTERP) fo.weights = w;
    for (size_t i = 0; i < nq; i++) {
        const gtr_hit *d = s->dl + i * depth, *b = s->bl + i * depth;
        for (size_t j = 0; j < s->nd[i]; j++) {
            s->l0[j] = (gtr_ranked_doc){d[j].id, d[j].id_len, d[j].score};
            s->map[j] = (struct idmap){d[j].id, d[j].doc};
        }
        for (size_t j = 0; j < s->nb[i]; j++) s->l1[j] = (gtr_ranked_doc){b[j].id, b[j].id_len, b[j].score};
        const gtr_ranked_doc *lists[2] = {s->l0, s->l1};
        size_t lens[2] = {s->nd[i], s->nb[i]}, n;
        gtr_status st = gtr_hits_fuse(lists, lens, 2, &fo, o->k, s->fused, &n, err);
        if (st) return st;
        /* a fused id points into the list it came from: one from the dense list keeps its
         * dense document (for snippets) */
        qsort(s->map, s->nd[i], sizeof *s->map, cmp_map);
        for (size_t j = 0; j < n; j++) {
            struct idmap key = {s->fused[j].id, 0};
            const struct idmap *m = bsearch(&key, s->map, s->nd[i], sizeof *s->map, cmp_map);
            out[i * o->k + j] = (gtr_hit){m ? m->doc : SIZE_MAX, s->fused[j].score, s->fused[j].id, s->fused[j].id_len};
        }
        nout[i] = n;
    }
    return GTR_OK;
}

gtr_status gtr_retriever_search(gtr_retriever *r, const char *const *texts, const size_t *lens, size_t nq,
                                const gtr_retrieve_options *opts, gtr_hit *hits, size_t *n_hits, gtr_error *err)
{
    gtr_retrieve_options o = gtr_retrieve_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_retriever_search", err)) return GTR_ERR_INVALID_ARG;
    if (!r) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_retriever_search: no retriever");
    gtr_retrieval_method m = o.method;
    bool need_dense = m != GTR_RETRIEVE_BM25, need_bm25 = m != GTR_RETRIEVE_DENSE;
    const char *name = gtr_retrieval_method_name(m);
    if (m > GTR_RETRIEVE_HYBRID) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown retrieval method %d", (int)m);
    if (need_dense && (!r->index || (!o.vectors && !r->model)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s retrieval needs a dense index and a model (or query vectors)", name);
    if (need_bm25 && !r->bm25) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s retrieval needs a BM25 index", name);
    if (o.k == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "k must be at least 1");
    if (o.allow && m != GTR_RETRIEVE_DENSE)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "a filter applies to dense retrieval only (not %s)", name);
    if (nq && (!hits || !n_hits || (!texts && (need_bm25 || !o.vectors))))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_retriever_search: queries or outputs missing");
    if (o.batch == 0) o.batch = 64;
    size_t k = o.k, depth = m == GTR_RETRIEVE_HYBRID ? GTR_MAX(o.depth, k) : k;
    size_t dim = need_dense ? (size_t)gtr_index_dim(r->index) : 0, kk = depth + 1, cn = GTR_MIN(nq, (size_t)CHUNK);
    bool hybrid = m == GTR_RETRIEVE_HYBRID;
    scratch s = {0};
    size_t bytes;
    if (!gtr_mul_ok(cn, kk * sizeof(gtr_hit), &bytes)) return gtr_seterr(err, GTR_ERR_NOMEM, "k %zu is too large", k);
    s.nh = gtr_xcalloc(cn + 1, sizeof *s.nh, "search lists", err);
    s.nd = gtr_xcalloc(cn + 1, sizeof *s.nd, "search lists", err);
    s.nb = gtr_xcalloc(cn + 1, sizeof *s.nb, "search lists", err);
    bool ok = s.nh && s.nd && s.nb;
    if (ok && need_dense && !o.vectors) ok = (s.vecs = gtr_xmalloc(cn * dim * sizeof *s.vecs + 1, "query vectors", err));
    if (ok && need_dense) ok = (s.dh = gtr_xmalloc(cn * kk * sizeof *s.dh + 1, "search lists", err));
    if (ok && hybrid) {
        s.dl = gtr_xmalloc(cn * depth * sizeof *s.dl, "search lists", err);
        s.bl = gtr_xmalloc(cn * depth * sizeof *s.bl, "search lists", err);
        s.l0 = gtr_xmalloc(depth * sizeof *s.l0, "fusion lists", err);
        s.l1 = gtr_xmalloc(depth * sizeof *s.l1, "fusion lists", err);
        s.fused = gtr_xmalloc(k * sizeof *s.fused, "fusion lists", err);
        s.map = gtr_xmalloc(depth * sizeof *s.map, "fusion lists", err);
        ok = s.dl && s.bl && s.l0 && s.l1 && s.fused && s.map;
    }
    gtr_status st = ok ? GTR_OK : GTR_ERR_NOMEM;
    for (size_t q0 = 0; !st && q0 < nq; q0 += CHUNK) {
        size_t n = GTR_MIN((size_t)CHUNK, nq - q0);
        gtr_hit *out = hits + q0 * k;
        size_t *nout = n_hits + q0;
        if (need_dense)
            st = dense_chunk(r, texts, lens, q0, n, depth, &o, &s, hybrid ? s.dl : out, depth, hybrid ? s.nd : nout, err);
        if (!st && need_bm25) st = bm25_chunk(r, texts, lens, q0, n, depth, &o, hybrid ? s.bl : out, hybrid ? s.nb : nout, err);
        if (!st && hybrid) st = fuse_chunk(n, depth, &o, &s, out, nout, err);
        if (!st && o.progress && o.progress(o.progress_user, q0 + n, nq))
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "search interrupted");
    }
    if (st && n_hits)
        for (size_t i = 0; i < nq; i++) n_hits[i] = 0;
    free(s.vecs);
    free(s.dh);
    free(s.dl);
    free(s.bl);
    free(s.nh);
    free(s.nd);
    free(s.nb);
    free(s.l0);
    free(s.l1);
    free(s.fused);
    free(s.map);
    return st;
}
