/* search.c — exact top-k: queries are padded and taken in batches; documents are split into
 * blocks handed to the pool's threads; each thread scores a block in sub-blocks that stay in
 * cache (kernels of score.h) and keeps one heap per query; the per-thread heaps are merged at
 * the end. Because scores do not depend on blocking and ties are broken by id, the result is
 * the same for any thread count or batch size. */
#include "index/index_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const gtr_index *ix;
    const gtr_ix_kernels *kern;
    const float *Q;
    size_t qs, nq, block;
    gtr_ix_topk *heaps; /* [threads][nq] */
    float *scratch;     /* [threads][nq * sub] */
    const gtr_blocking *blk; /* from this CPU's cache sizes; sub = blk->search_docs */
    size_t lo, hi;           /* documents searched */
    const uint8_t *allow;    /* filter (NULL: none) */
    bool filtered;           /* a filter or replaced documents: check each document */
    const float *Qp;         /* the batch packed for kern->score_packed (NULL: tiles) */
    size_t ldq;              /* row length of its transposed scores */
    float *thr;              /* [threads][ldq]: each heap's entry bar, -inf until full */
} exact_ctx;

/* Many queries: the scores come transposed (a document's scores in a row) and each query
 * keeps the score a newcomer must reach (its heap's worst once full), so the common case,
 * nobody's top-k changes, is one vector compare per 16 queries. */
static void exact_task_packed(exact_ctx *c, size_t d0, size_t d1, int tid)
{
    const gtr_index *ix = c->ix;
    const size_t sub = c->blk->search_docs, nq = c->nq, ldq = c->ldq;
    float *S = c->scratch + (size_t)tid * ldq * sub, *thr = c->thr + (size_t)tid * ldq;
    gtr_ix_topk *H = c->heaps + (size_t)tid * nq;
    for (size_t j0 = d0; j0 < d1; j0 += sub) {
        size_t nd = GTR_MIN(sub, d1 - j0);
        c->kern->score_packed(c->blk, c->Qp, nq, ix->vectors + j0 * ix->dim, nd, ix->dim, S, ldq);
        for (size_t j = 0; j < nd; j++) {
            const float *s = S + j * ldq;
            size_t q = c->kern->find_ge(s, thr, 0, nq);
            if (q == nq || (c->filtered && !gtr_ix_allowed(ix, c->allow, j0 + j))) continue;
            for (; q < nq; q = c->kern->find_ge(s, thr, q + 1, nq)) {
                gtr_ix_topk *h = &H[q];
                gtr_ix_topk_push(ix, h, s[q], j0 + j);
                if (h->n == h->k) thr[q] = h->h[0].score;
            }
        }
    }
}

static void exact_task(void *vc, size_t t, int tid)
{
    exact_ctx *c = vc;
    const gtr_index *ix = c->ix;
    size_t d0 = c->lo + t * c->block, d1 = GTR_MIN(c->hi, d0 + c->block);
    if (c->Qp) {
        exact_task_packed(c, d0, d1, tid);
        return;
    }
    const size_t sub = c->blk->search_docs;
    float *S = c->scratch + (size_t)tid * c->nq * sub;
    gtr_ix_topk *H = c->heaps + (size_t)tid * c->nq;
    for (size_t j0 = d0; j0 < d1; j0 += sub) {
        size_t nd = GTR_MIN(sub, d1 - j0);
        c->kern->score_blocked(c->blk, c->Q, c->nq, c->qs, ix->vectors + j0 * ix->dim, nd, ix->dim,
                               S, sub);
        for (size_t q = 0; q < c->nq; q++) {
            gtr_ix_topk *h = &H[q];
            const float *s = S + q * sub;
            for (size_t j = 0; j < nd; j++) {
                /* the common case, rejected without a call */
                if (h->n == h->k && s[j] < h->h[0].score) continue;
                if (c->filtered && !gtr_ix_allowed(ix, c->allow, j0 + j)) continue;
                gtr_ix_topk_push(ix, h, s[j], j0 + j);
            }
        }
    }
}

/* Queries per batch: the per-thread heaps (threads x batch x k hits) stay within ~64 MiB. */
static size_t batch_for(size_t nq, size_t k, int threads)
{
    size_t per = (size_t)threads * k * sizeof(gtr_hit);
    size_t b = per ? ((size_t)64 << 20) / per : 256;
    return GTR_MAX((size_t)1, GTR_MIN(GTR_MIN(b, (size_t)256), nq));
}

static gtr_status search_range(const gtr_index *ix, const gtr_ix_kernels *kern, const gtr_blocking *blk,
                               size_t lo, size_t hi, const uint8_t *allow, const float *Q, size_t qs,
                               size_t nq, size_t k, gtr_pool *pool, gtr_hit *hits, size_t *n_hits,
                               gtr_error *err);

gtr_status gtr_ix_search_exact(const gtr_index *ix, const gtr_ix_kernels *kern, const float *Q,
                               size_t qs, size_t nq, size_t k, gtr_pool *pool, gtr_hit *hits,
                               size_t *n_hits, gtr_error *err)
{
    return gtr_ix_search_range(ix, kern, Q, qs, nq, k, 0, ix->n, NULL, pool, hits, n_hits, err);
}

gtr_status gtr_ix_search_range(const gtr_index *ix, const gtr_ix_kernels *kern, const float *Q,
                               size_t qs, size_t nq, size_t k, size_t lo, size_t hi,
                               const uint8_t *allow, gtr_pool *pool, gtr_hit *hits, size_t *n_hits,
                               gtr_error *err)
{
    gtr_cpu_caches caches = gtr_cpu_caches_detect();
    const gtr_blocking blk = gtr_blocking_for(&caches, ix->dim);
    return search_range(ix, kern, &blk, lo, hi, allow, Q, qs, nq, k, pool, hits, n_hits, err);
}

gtr_status gtr_ix_search_exact_blocked(const gtr_index *ix, const gtr_ix_kernels *kern,
                                       const gtr_blocking *blk, const float *Q, size_t qs,
                                       size_t nq, size_t k, gtr_pool *pool, gtr_hit *hits,
                                       size_t *n_hits, gtr_error *err)
{
    return search_range(ix, kern, blk, 0, ix->n, NULL, Q, qs, nq, k, pool, hits, n_hits, err);
}

static gtr_status search_range(const gtr_index *ix, const gtr_ix_kernels *kern, const gtr_blocking *blk,
                               size_t lo, size_t hi, const uint8_t *allow, const float *Q, size_t qs,
                               size_t nq, size_t k, gtr_pool *pool, gtr_hit *hits, size_t *n_hits,
                               gtr_error *err)
{
    int threads = gtr_pool_size(pool);
    const size_t SUB = blk->search_docs;
    size_t kk = GTR_MIN(k, hi - lo);
    for (size_t i = 0; i < nq; i++) n_hits[i] = 0;
    if (kk == 0) return GTR_OK;
    size_t qb = batch_for(nq, kk, threads);
    gtr_ix_topk *heaps = gtr_xcalloc((size_t)threads * qb, sizeof *heaps, "search heaps", err);
    gtr_hit *mem = gtr_xmalloc((size_t)threads * qb * kk * sizeof *mem + sizeof *mem, "search heaps", err);
    /* batches of at least GTR_IX_PACKED_MIN queries go through score_packed */
    const bool packed = kern->score_packed && kern->find_ge && qb >= GTR_IX_PACKED_MIN;
    const size_t ldq_max = (qb + 15) / 16 * 16;
    float *scratch = gtr_malloc_aligned((size_t)threads * ldq_max * SUB * sizeof(float), err);
    float *Qp = packed ? gtr_malloc_aligned(gtr_ix_packed_floats(qb, ix->dim) * sizeof(float), err) : NULL;
    float *thr = packed ? gtr_xmalloc((size_t)threads * ldq_max * sizeof(float), "search heaps", err) : NULL;
    gtr_hit *merge = gtr_xmalloc((size_t)kk * sizeof *merge + sizeof *merge, "search heaps", err);
    gtr_status st = GTR_OK;
    if (!heaps || !mem || !scratch || !merge || (packed && (!Qp || !thr))) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    /* blocks: several per thread so uneven progress balances; a multiple of SUB */
    size_t block = (hi - lo + (size_t)threads * 8 - 1) / ((size_t)threads * 8);
    block = GTR_MAX((size_t)SUB, (block + SUB - 1) / SUB * SUB);
    size_t n_blocks = (hi - lo + block - 1) / block;
    for (size_t q0 = 0; q0 < nq; q0 += qb) {
        size_t nb = GTR_MIN(qb, nq - q0);
        for (size_t i = 0; i < (size_t)threads * nb; i++) {
            heaps[i].h = mem + i * kk;
            heaps[i].n = 0;
            heaps[i].k = kk;
        }
        exact_ctx c = {ix, kern, Q + q0 * qs, qs, nb, block, heaps, scratch, blk, lo, hi, allow,
                       allow != NULL || ix->dead != NULL, NULL, 0, thr};
        if (packed && nb >= GTR_IX_PACKED_MIN) {
            gtr_ix_pack_queries(Q + q0 * qs, nb, qs, ix->dim, Qp);
            c.Qp = Qp;
            c.ldq = (nb + 15) / 16 * 16;
            for (size_t i = 0; i < (size_t)threads * c.ldq; i++) thr[i] = -INFINITY;
        }
        gtr_pool_for(pool, n_blocks, exact_task, &c);
        for (size_t q = 0; q < nb; q++) {
            gtr_ix_topk m = {merge, 0, kk};
            for (int t = 0; t < threads; t++) {
                const gtr_ix_topk *h = &heaps[(size_t)t * nb + q];
                for (size_t i = 0; i < h->n; i++) gtr_ix_topk_push(ix, &m, h->h[i].score, h->h[i].doc);
            }
            gtr_ix_topk_sort(ix, &m);
            memcpy(hits + (q0 + q) * k, m.h, m.n * sizeof *m.h);
            n_hits[q0 + q] = m.n;
        }
    }
done:
    free(heaps);
    free(mem);
    gtr_free_aligned(scratch);
    gtr_free_aligned(Qp);
    free(thr);
    free(merge);
    return st;
}

gtr_search_options gtr_index_default_search_options(void)
{
    gtr_search_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_status gtr_index_search(const gtr_index *ix, const float *queries, size_t nq, size_t k,
                            const gtr_search_options *opts, gtr_hit *hits, size_t *n_hits,
                            gtr_error *err)
{
    if (!ix || (nq && (!queries || !hits || !n_hits)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_search: missing argument");
    gtr_search_options o = gtr_index_default_search_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_index_search", err)) return GTR_ERR_INVALID_ARG;
    opts = &o;
    for (size_t i = 0; i < nq; i++) n_hits[i] = 0;
    if (nq == 0 || k == 0 || ix->n == 0) return GTR_OK;
    size_t dim = ix->dim, qs = gtr_ix_qstride(dim), bytes;
    for (size_t i = 0; i < nq * dim; i++)
        if (!isfinite(queries[i]))
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "query %zu has a non-finite value at %zu", i / dim,
                              i % dim);
    if (!gtr_mul_ok(nq, qs * sizeof(float), &bytes))
        return gtr_seterr(err, GTR_ERR_NOMEM, "too many queries");
    /* padded, aligned copy: the kernels read whole 16-float groups */
    float *Q = gtr_calloc_aligned(bytes, err);
    if (!Q) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < nq; i++) memcpy(Q + i * qs, queries + i * dim, dim * sizeof(float));
    const gtr_ix_kernels *kern = gtr_ix_kernels_select();
    gtr_status st;
    size_t lo = opts->doc_begin, hi = opts->doc_end ? opts->doc_end : ix->n;
    if (lo > hi || hi > ix->n)
        st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "document range [%zu, %zu) is outside the index's %zu documents",
                        lo, hi, ix->n);
    else if (lo != 0 || hi != ix->n)
        st = gtr_ix_search_range(ix, kern, Q, qs, nq, k, lo, hi, opts->allow, opts->pool, hits, n_hits, err);
    else if (opts->use_compact && ix->compact)
        st = gtr_ix_search_compact(ix, kern, Q, qs, nq, k, opts->allow, opts->pool, hits, n_hits, err);
    else
        st = gtr_ix_search_range(ix, kern, Q, qs, nq, k, 0, ix->n, opts->allow, opts->pool, hits, n_hits, err);
    gtr_free_aligned(Q);
    for (size_t i = 0; st == GTR_OK && i < nq; i++)
        for (size_t j = 0; j < n_hits[i]; j++) {
            gtr_hit *h = &hits[i * k + j];
            h->id = gtr_index_doc_id(ix, h->doc, &h->id_len);
        }
    return st;
}

gtr_status gtr_index_allow_ids(const gtr_index *ix, const char *const *ids, const size_t *lens, size_t n,
                               uint8_t *bitmap, size_t *unknown, size_t *first_unknown, gtr_error *err)
{
    if (unknown) *unknown = 0;
    if (first_unknown) *first_unknown = SIZE_MAX;
    if (!ix || (n && (!ids || !lens)) || !bitmap)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_allow_ids: need an index, ids and a bitmap");
    /* the wanted ids in a map, then one pass over the index's live documents */
    gtr_strmap want;
    gtr_strmap_init(&want);
    gtr_status st = GTR_OK;
    uint32_t *pos = gtr_xmalloc((n ? n : 1) * sizeof *pos, "id filter", err);
    if (!pos) st = GTR_ERR_NOMEM;
    for (size_t i = 0; st == GTR_OK && i < n; i++) st = gtr_strmap_intern(&want, ids[i], lens[i], &pos[i], NULL, err);
    bool *seen = st == GTR_OK ? gtr_xcalloc(want.n ? want.n : 1, 1, "id filter", err) : NULL;
    if (st == GTR_OK && !seen) st = GTR_ERR_NOMEM;
    for (size_t d = 0; st == GTR_OK && want.n && d < ix->n; d++) {
        if (!gtr_ix_allowed(ix, NULL, d)) continue;
        size_t len;
        const char *id = gtr_index_doc_id(ix, d, &len);
        uint32_t w = gtr_strmap_find(&want, id, len);
        if (w == GTR_STRMAP_NONE) continue;
        seen[w] = true;
        bitmap[d >> 3] |= (uint8_t)(1u << (d & 7));
    }
    size_t miss = 0;
    for (size_t w = 0; st == GTR_OK && w < want.n; w++) miss += !seen[w];
    if (unknown) *unknown = miss;
    for (size_t i = 0; st == GTR_OK && miss && first_unknown && i < n; i++)
        if (!seen[pos[i]]) {
            *first_unknown = i;
            break;
        }
    free(seen);
    free(pos);
    gtr_strmap_free(&want);
    return st;
}
