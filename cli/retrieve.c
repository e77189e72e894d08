/* retrieve.c — queries in, ranked hits out: dense (encode + exact top-k), BM25, or both
 * fused. Queries go through in chunks so memory stays bounded by the chunk, not the file. */
#include "retrieve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 256 /* queries encoded and searched together */

/* ---- queries */

static void view(rt_queries *q, gtr_queries *owner)
{
    q->owner = owner;
    q->n = gtr_queries_count(owner);
    q->ids = gtr_queries_ids(owner);
    q->texts = gtr_queries_texts(owner);
    q->lens = gtr_queries_text_lens(owner);
}

int rt_single_query(const char *cmd, const char *text, rt_queries *q)
{
    memset(q, 0, sizeof *q);
    gtr_error err;
    gtr_queries *owner = gtr_queries_new(&err);
    if (!owner || gtr_queries_add(owner, "q", 1, text, strlen(text), &err)) {
        gtr_queries_free(owner);
        return cli_fail(cmd, &err);
    }
    view(q, owner);
    return 0;
}

int rt_load_queries(const char *cmd, const char *path, const gtr_qrels *judged, rt_queries *q)
{
    memset(q, 0, sizeof *q);
    gtr_error err;
    gtr_queries *owner = gtr_queries_load(path, judged, &err);
    if (!owner) return cli_fail(cmd, &err);
    view(q, owner);
    return 0;
}

void rt_queries_free(rt_queries *q)
{
    gtr_queries_free(q->owner);
    memset(q, 0, sizeof *q);
}

/* ---- options */

const char *rt_method_name(rt_method m)
{
    return m == RT_BM25 ? "bm25" : m == RT_HYBRID ? "hybrid" : "dense";
}

bool rt_parse_method(const char *s, rt_method *m)
{
    if (!strcmp(s, "dense") || !strcmp(s, "gtr")) *m = RT_DENSE;
    else if (!strcmp(s, "bm25")) *m = RT_BM25;
    else if (!strcmp(s, "hybrid")) *m = RT_HYBRID;
    else return false;
    return true;
}

void rt_default_options(rt_options *o)
{
    memset(o, 0, sizeof *o);
    o->method = RT_DENSE;
    o->k = 1000;
    o->depth = 1000;
    o->fusion = gtr_fusion_default_options();
    o->alpha = 0.5;
    o->batch = 64;
}

/* ---- the model */

gtr_model *rt_load_model(const char *cmd, const char *model_dir, const gtr_index *ix, int threads,
                         gtr_pool *pool)
{
    const char *dir = model_dir;
    if (!dir) {
        dir = ix ? gtr_index_model_hint(ix) : NULL;
        struct stat st;
        if (!dir) {
            cli_errorf(cmd, 2, "the index does not record its model directory: pass -m MODEL_DIR");
            return NULL;
        }
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            cli_errorf(cmd, 2, "the index was built with the model in %s, which is not there: pass -m MODEL_DIR", dir);
            return NULL;
        }
    }
    gtr_model_options mo;
    if (!cli_model_options(cmd, &mo)) return NULL;
    mo.n_threads = threads;
    mo.pool = pool;
    gtr_error err;
    gtr_model *m = gtr_model_load(dir, &mo, &err);
    if (!m) {
        cli_fail(cmd, &err);
        return NULL;
    }
    if (ix && gtr_index_check_model(ix, m, &err)) {
        cli_fail(cmd, &err);
        gtr_model_free(m);
        return NULL;
    }
    return m;
}

/* ---- retrieval */

static bool same_id(const char *a, size_t la, const char *b)
{
    return strlen(b) == la && memcmp(a, b, la) == 0;
}

/* dense hits of queries [q0, q0+nq) into out[q][0..depth), skipping the query's own id */
static int dense_chunk(const char *cmd, const rt_sources *src, const rt_queries *q, size_t q0, size_t nq,
                       size_t depth, const rt_options *o, float *vecs, gtr_hit *hits, size_t *nh,
                       rt_hit *out, size_t *nout)
{
    gtr_error err;
    int dim = gtr_index_dim(src->dense);
    for (size_t b = 0; b < nq; b += o->batch) {
        size_t nb = nq - b < o->batch ? nq - b : o->batch;
        if (gtr_model_encode(src->model, q->texts + q0 + b, q->lens + q0 + b, nb,
                             vecs + b * (size_t)dim, &err))
            return cli_fail(cmd, &err);
    }
    size_t kk = depth + (o->skip_self ? 1 : 0);
    gtr_search_options so = {o->pool, o->use_compact};
    gtr_ann_search_options ao = {.nprobe = o->nprobe, .pool = o->pool};
    if (src->ann ? gtr_ann_search(src->ann, vecs, nq, kk, &ao, hits, nh, &err)
                 : gtr_index_search(src->dense, vecs, nq, kk, &so, hits, nh, &err))
        return cli_fail(cmd, &err);
    for (size_t i = 0; i < nq; i++) {
        size_t w = 0;
        for (size_t r = 0; r < nh[i] && w < depth; r++) {
            size_t len;
            const char *id = gtr_index_doc_id(src->dense, hits[i * kk + r].doc, &len);
            if (o->skip_self && same_id(id, len, q->ids[q0 + i])) continue;
            out[i * depth + w++] = (rt_hit){id, len, hits[i * kk + r].score, hits[i * kk + r].doc};
        }
        nout[i] = w;
    }
    return 0;
}

static int bm25_chunk(const char *cmd, const rt_sources *src, const rt_queries *q, size_t q0, size_t nq,
                      size_t depth, const rt_options *o, gtr_bm25_hit *hits, size_t *nh, rt_hit *out,
                      size_t *nout)
{
    gtr_error err;
    gtr_bm25_search_options bo = gtr_bm25_default_search_options();
    bo.pool = o->pool;
    if (o->skip_self) bo.skip_ids = q->ids + q0;
    if (gtr_bm25_search(src->bm25, q->texts + q0, q->lens + q0, nq, depth, &bo, hits,
                        nh, &err))
        return cli_fail(cmd, &err);
    for (size_t i = 0; i < nq; i++) {
        for (size_t r = 0; r < nh[i]; r++) {
            size_t len;
            const char *id = gtr_bm25_doc_id(src->bm25, hits[i * depth + r].doc, &len);
            out[i * depth + r] = (rt_hit){id, len, hits[i * depth + r].score, SIZE_MAX};
        }
        nout[i] = nh[i];
    }
    return 0;
}

/* fused ids are looked up in the dense list to keep their dense document (for snippets) */
static size_t find_dense(const rt_hit *list, size_t n, const char *id, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].id == id && list[i].len == len) return list[i].dense_doc;
    return SIZE_MAX;
}

static int fuse_chunk(const char *cmd, size_t nq, size_t depth, const rt_options *o, const rt_hit *dense,
                      const size_t *nd, const rt_hit *bm, const size_t *nb, rt_hit *out, size_t *nout)
{
    gtr_ranked_doc *l0 = malloc(depth * sizeof *l0), *l1 = malloc(depth * sizeof *l1);
    gtr_ranked_doc *fused = malloc(o->k * sizeof *fused);
    int rc = 0;
    if (!l0 || !l1 || !fused) rc = cli_errorf(cmd, 1, "out of memory");
    double w[2] = {o->alpha, 1 - o->alpha};
    gtr_fusion_options fo = o->fusion;
    if (fo.method == GTR_FUSION_INTERP) fo.weights = w;
    for (size_t i = 0; i < nq && !rc; i++) {
        for (size_t r = 0; r < nd[i]; r++)
            l0[r] = (gtr_ranked_doc){dense[i * depth + r].id, dense[i * depth + r].len, dense[i * depth + r].score};
        for (size_t r = 0; r < nb[i]; r++)
            l1[r] = (gtr_ranked_doc){bm[i * depth + r].id, bm[i * depth + r].len, bm[i * depth + r].score};
        const gtr_ranked_doc *lists[2] = {l0, l1};
        size_t lens[2] = {nd[i], nb[i]}, n;
        gtr_error err;
        if (gtr_hits_fuse(lists, lens, 2, &fo, o->k, fused, &n, &err)) {
            rc = cli_fail(cmd, &err);
            break;
        }
        for (size_t r = 0; r < n; r++) {
            /* the dense copy of an id, if any, is the pointer from the dense list */
            size_t doc = o->want_docs ? find_dense(dense + i * depth, nd[i], fused[r].id, fused[r].id_len) : SIZE_MAX;
            out[i * o->k + r] = (rt_hit){fused[r].id, fused[r].id_len, fused[r].score, doc};
        }
        nout[i] = n;
    }
    free(l0);
    free(l1);
    free(fused);
    return rc;
}

int rt_retrieve(const char *cmd, const rt_sources *src, const rt_queries *q, const rt_options *o,
                rt_results *res)
{
    memset(res, 0, sizeof *res);
    bool need_dense = o->method != RT_BM25, need_bm25 = o->method != RT_DENSE;
    if (need_dense && (!src->dense || !src->model)) return cli_errorf(cmd, 2, "dense retrieval needs an index and a model");
    if (need_bm25 && !src->bm25) return cli_errorf(cmd, 2, "%s retrieval needs a BM25 index", rt_method_name(o->method));
    size_t k = o->k, depth = o->method == RT_HYBRID ? (o->depth > k ? o->depth : k) : k;
    size_t dim = need_dense ? (size_t)gtr_index_dim(src->dense) : 0, kk = depth + 1;
    res->nq = q->n;
    res->k = k;
    res->hits = calloc(q->n * k + 1, sizeof *res->hits);
    res->n = calloc(q->n + 1, sizeof *res->n);
    float *vecs = need_dense ? malloc(CHUNK * dim * sizeof *vecs) : NULL;
    gtr_hit *dh = need_dense ? malloc(CHUNK * kk * sizeof *dh) : NULL;
    gtr_bm25_hit *bh = need_bm25 ? malloc(CHUNK * depth * sizeof *bh) : NULL;
    size_t *nh = malloc(CHUNK * sizeof *nh), *nd = malloc(CHUNK * sizeof *nd), *nb = malloc(CHUNK * sizeof *nb);
    rt_hit *dl = need_dense ? malloc(CHUNK * depth * sizeof *dl) : NULL;
    rt_hit *bl = need_bm25 ? malloc(CHUNK * depth * sizeof *bl) : NULL;
    int rc = 0;
    if (!res->hits || !res->n || !nh || !nd || !nb || (need_dense && (!vecs || !dh || !dl)) ||
        (need_bm25 && (!bh || !bl)))
        rc = cli_errorf(cmd, 1, "out of memory for %zu queries x %zu hits", q->n, depth);
    cli_progress prog;
    cli_progress_init(&prog, "searching", "queries", o->quiet || q->n < 2 * CHUNK);
    for (size_t q0 = 0; q0 < q->n && !rc; q0 += CHUNK) {
        size_t n = q->n - q0 < CHUNK ? q->n - q0 : CHUNK;
        if (need_dense && (rc = dense_chunk(cmd, src, q, q0, n, depth, o, vecs, dh, nh, dl, nd))) break;
        if (need_bm25 && (rc = bm25_chunk(cmd, src, q, q0, n, depth, o, bh, nh, bl, nb))) break;
        rt_hit *out = res->hits + q0 * k;
        size_t *nout = res->n + q0;
        if (o->method == RT_HYBRID) {
            if ((rc = fuse_chunk(cmd, n, depth, o, dl, nd, bl, nb, out, nout))) break;
        } else {
            const rt_hit *src_l = o->method == RT_DENSE ? dl : bl;
            const size_t *src_n = o->method == RT_DENSE ? nd : nb;
            for (size_t i = 0; i < n; i++) {
                memcpy(out + i * k, src_l + i * depth, src_n[i] * sizeof *out);
                nout[i] = src_n[i];
            }
        }
        cli_progress_cb(&prog, q0 + n, q->n);
    }
    cli_progress_done(&prog, q->n);
    free(vecs);
    free(dh);
    free(bh);
    free(nh);
    free(nd);
    free(nb);
    free(dl);
    free(bl);
    if (rc) rt_results_free(res);
    return rc;
}

void rt_results_free(rt_results *r)
{
    free(r->hits);
    free(r->n);
    memset(r, 0, sizeof *r);
}

gtr_run *rt_to_run(const char *cmd, const rt_queries *q, const rt_results *r, size_t max_rank)
{
    gtr_error err;
    gtr_run *run = gtr_run_new(&err);
    if (!run) {
        cli_fail(cmd, &err);
        return NULL;
    }
    for (size_t i = 0; i < q->n; i++) {
        size_t qlen = strlen(q->ids[i]);
        if (gtr_run_add_query(run, q->ids[i], qlen, &err)) goto fail;
        size_t n = r->n[i] < max_rank ? r->n[i] : max_rank;
        for (size_t j = 0; j < n; j++) {
            const rt_hit *h = &r->hits[i * r->k + j];
            if (gtr_run_add(run, q->ids[i], qlen, h->id, h->len, h->score, &err)) goto fail;
        }
    }
    return run;
fail:
    cli_fail(cmd, &err);
    gtr_run_free(run);
    return NULL;
}
