/* search.c — POST /search: the ranked documents for one query or a batch, by the methods of
 * `gtr search` (same index, same scores, same order):
 *   {"query": "text", "k": 10, "method": "dense" | "bm25" | "hybrid"}
 *   -> {"object": "search_result", "method": ..., "hits": [{"rank", "id", "score", "snippet"}],
 *       "model": ..., "usage": {...}}
 *   {"queries": ["text", ...], "k": 10}
 *   -> {"object": "list", "method": ..., "data": [{"object": "search_result", "index": i,
 *       "hits": [...]}], "model": ..., "usage": {...}}
 * Dense queries go through the batcher like any embedding request, then an exact top-k over
 * the memory-mapped index in this connection's thread (the index is read-only, so concurrent
 * searches need no lock). "snippet" is the start of the passage the dense index keeps (absent
 * for documents found only by BM25). Scores: float32 ones with %.9g, fused ones with %.17g. */
#include "server/server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct hit {
    const char *id;
    size_t len;
    double score;
    bool is_f32;      /* a float32 score (dense, BM25) rather than a fused double */
    size_t dense_doc; /* for the snippet, SIZE_MAX when unknown */
} hit;

static const char *method_name(gtr_server_method m)
{
    return m == GTR_SERVER_BM25 ? "bm25" : m == GTR_SERVER_HYBRID ? "hybrid" : "dense";
}

/* texts of "query" (one string: one result) / "queries" (an array of strings: a list of
 * results), validated like embeddings inputs */
static bool gather(const gs_server *s, const json_t *v, const char *param, const char ***texts,
                   size_t **lens, size_t *n, gs_reply *r)
{
    bool one = !strcmp(param, "query");
    if (one ? !json_is_string(v) : !json_is_array(v)) {
        gs_reply_error(r, 400, param, "invalid_type", "'%s' must be %s", param,
                       one ? "a string (give a batch as 'queries', an array of strings)" : "an array of strings");
        return false;
    }
    *n = one ? 1 : json_array_size(v);
    if (*n == 0) {
        gs_reply_error(r, 400, param, "empty_input", "'%s' is an empty array", param);
        return false;
    }
    if (*n > s->o.max_inputs) {
        gs_reply_error(r, 400, param, "too_many_inputs",
                       "'%s' has %zu queries, more than the limit of %zu per request", param, *n, s->o.max_inputs);
        return false;
    }
    *texts = calloc(*n, sizeof **texts);
    *lens = calloc(*n, sizeof **lens);
    if (!*texts || !*lens) {
        gs_reply_oom(r);
        return false;
    }
    for (size_t i = 0; i < *n; i++) {
        const json_t *x = one ? v : json_array_get(v, i);
        if (!json_is_string(x) || json_string_length(x) == 0) {
            gs_reply_error(r, 400, param, json_is_string(x) ? "empty_input" : "invalid_type",
                           json_is_string(x) ? "%s[%zu] is an empty string" : "%s[%zu] is not a string", param, i);
            return false;
        }
        (*texts)[i] = json_string_value(x);
        (*lens)[i] = json_string_length(x);
    }
    return true;
}

static bool dense_hits(gs_server *s, const json_t *qv, const char *param, size_t nq, size_t depth,
                       hit *out, size_t *nout, size_t *tokens, gs_reply *r)
{
    gs_inputs in;
    if (!gs_inputs_parse(s, qv, param, false, &in, r)) return false;
    float *vecs = malloc(nq * (size_t)s->dim * sizeof *vecs);
    gtr_hit *hits = malloc(nq * depth * sizeof *hits);
    size_t *nh = malloc(nq * sizeof *nh);
    bool ok = false;
    gtr_error e;
    if (!vecs || !hits || !nh) gs_reply_oom(r);
    else if (gs_encode(s, &in, vecs, r)) {
        if (gtr_index_search(s->o.index, vecs, nq, depth, NULL, hits, nh, &e)) {
            gs_reply_error(r, 500, NULL, NULL, "search failed: %s", e.message);
        } else {
            for (size_t q = 0; q < nq; q++) {
                for (size_t j = 0; j < nh[q]; j++) {
                    const gtr_hit *h = &hits[q * depth + j];
                    size_t len;
                    const char *id = gtr_index_doc_id(s->o.index, h->doc, &len);
                    out[q * depth + j] = (hit){id, len, h->score, true, h->doc};
                }
                nout[q] = nh[q];
            }
            *tokens = in.tokens;
            ok = true;
        }
    }
    free(vecs);
    free(hits);
    free(nh);
    gs_inputs_free(&in);
    return ok;
}

static bool bm25_hits(gs_server *s, const char *const *texts, const size_t *lens, size_t nq,
                      size_t depth, hit *out, size_t *nout, gs_reply *r)
{
    gtr_bm25_hit *hits = malloc(nq * depth * sizeof *hits);
    size_t *nh = malloc(nq * sizeof *nh);
    bool ok = false;
    gtr_error e;
    if (!hits || !nh) gs_reply_oom(r);
    else if (gtr_bm25_search(s->o.bm25, texts, lens, nq, depth, NULL, hits, nh, &e)) {
        gs_reply_error(r, e.code == GTR_ERR_NOMEM ? 500 : 400, "query", NULL, "BM25 search failed: %s", e.message);
    } else {
        for (size_t q = 0; q < nq; q++) {
            for (size_t j = 0; j < nh[q]; j++) {
                size_t len;
                const char *id = gtr_bm25_doc_id(s->o.bm25, hits[q * depth + j].doc, &len);
                out[q * depth + j] = (hit){id, len, hits[q * depth + j].score, true, SIZE_MAX};
            }
            nout[q] = nh[q];
        }
        ok = true;
    }
    free(hits);
    free(nh);
    return ok;
}

/* fuse the dense and BM25 lists of each query into the best k (as `gtr search --method hybrid`) */
static bool fuse(gs_server *s, size_t nq, size_t depth, size_t k, const hit *dl, const size_t *nd,
                 const hit *bl, const size_t *nb, hit *out, size_t *nout, gs_reply *r)
{
    gtr_ranked_doc *l0 = malloc(depth * sizeof *l0), *l1 = malloc(depth * sizeof *l1);
    gtr_ranked_doc *fused = malloc(k * sizeof *fused);
    bool ok = l0 && l1 && fused;
    if (!ok) gs_reply_oom(r);
    double w[2] = {s->o.alpha, 1 - s->o.alpha};
    gtr_fusion_options fo = s->o.fusion;
    if (fo.method == GTR_FUSION_INTERP) fo.weights = w;
    for (size_t q = 0; q < nq && ok; q++) {
        const hit *d = dl + q * depth, *b = bl + q * depth;
        for (size_t j = 0; j < nd[q]; j++) l0[j] = (gtr_ranked_doc){d[j].id, d[j].len, d[j].score};
        for (size_t j = 0; j < nb[q]; j++) l1[j] = (gtr_ranked_doc){b[j].id, b[j].len, b[j].score};
        const gtr_ranked_doc *lists[2] = {l0, l1};
        size_t lens[2] = {nd[q], nb[q]}, n;
        gtr_error e;
        if (gtr_hits_fuse(lists, lens, 2, &fo, k, fused, &n, &e)) {
            gs_reply_error(r, 500, NULL, NULL, "fusion failed: %s", e.message);
            ok = false;
            break;
        }
        for (size_t j = 0; j < n; j++) {
            /* a fused id points into the list it came from: the dense one gives the snippet */
            size_t doc = SIZE_MAX;
            for (size_t t = 0; t < nd[q] && doc == SIZE_MAX; t++)
                if (d[t].id == fused[j].id) doc = d[t].dense_doc;
            out[q * k + j] = (hit){fused[j].id, fused[j].id_len, fused[j].score, false, doc};
        }
        nout[q] = n;
    }
    free(l0);
    free(l1);
    free(fused);
    return ok;
}

static gtr_status put_hits(const gs_server *s, const hit *h, size_t n, gtr_buf *b, gtr_error *err)
{
    gtr_status st = gtr_buf_append(b, "\"hits\":[", 8, err);
    for (size_t j = 0; j < n && !st; j++) {
        st = gtr_buf_printf(b, err, "%s{\"rank\":%zu,\"id\":", j ? "," : "", j + 1);
        if (!st) st = gs_json_str(b, h[j].id, h[j].len, err);
        if (!st) st = gtr_buf_append(b, ",\"score\":", 9, err);
        if (!st && !isfinite(h[j].score))
            st = gtr_seterr(err, GTR_ERR_INTERNAL, "the score of '%.*s' is not finite", (int)GTR_MIN(h[j].len, 100), h[j].id);
        if (!st) st = h[j].is_f32 ? gs_json_f32(b, (float)h[j].score, err) : gtr_buf_printf(b, err, "%.17g", h[j].score);
        size_t len = 0;
        const char *sn = h[j].dense_doc != SIZE_MAX ? gtr_index_doc_snippet(s->o.index, h[j].dense_doc, &len) : NULL;
        if (!st && sn && len) {
            st = gtr_buf_append(b, ",\"snippet\":", 11, err);
            if (!st) st = gs_json_str(b, sn, len, err);
        }
        if (!st) st = gtr_buf_append(b, "}", 1, err);
    }
    if (!st) st = gtr_buf_append(b, "]", 1, err);
    return st;
}

/* An upper bound of the answer's bytes, held from the budget before it is written: every
 * character of an id or snippet takes at most 6 (\u00XX). */
static size_t response_bound(const gs_server *s, const hit *hits, size_t stride, const size_t *n, size_t nq)
{
    size_t b = 256 + 6 * strlen(s->o.model_name) + nq * 96;
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 0; j < n[q]; j++) {
            const hit *h = &hits[q * stride + j];
            size_t sl = 0;
            if (h->dense_doc != SIZE_MAX) gtr_index_doc_snippet(s->o.index, h->dense_doc, &sl);
            b += 96 + 6 * (h->len + sl);
        }
    return b;
}

static gtr_status write_response(const gs_server *s, bool batch, gtr_server_method m, const hit *hits,
                                 size_t stride, const size_t *n, size_t nq, size_t tokens, gtr_buf *b,
                                 gtr_error *err)
{
    gtr_status st = gtr_buf_printf(b, err, "{\"object\":\"%s\",\"method\":\"%s\",", batch ? "list" : "search_result",
                                   method_name(m));
    if (batch && !st) st = gtr_buf_append(b, "\"data\":[", 8, err);
    for (size_t q = 0; q < nq && !st; q++) {
        if (batch) st = gtr_buf_printf(b, err, "%s{\"object\":\"search_result\",\"index\":%zu,", q ? "," : "", q);
        if (!st) st = put_hits(s, hits + q * stride, n[q], b, err);
        if (batch && !st) st = gtr_buf_append(b, "}", 1, err);
    }
    if (batch && !st) st = gtr_buf_append(b, "]", 1, err);
    if (!st) st = gtr_buf_printf(b, err, ",\"model\":");
    if (!st) st = gs_json_str(b, s->o.model_name, strlen(s->o.model_name), err);
    if (!st)
        st = gtr_buf_printf(b, err, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n", tokens, tokens);
    return st;
}

void gs_handle_search(gs_server *s, const char *body, size_t len, gs_reply *r)
{
    if (!s->o.index && !s->o.bm25) {
        gs_reply_error(r, 404, NULL, "no_index",
                       "no index is loaded: start gtr serve with --index and/or --bm25-index");
        return;
    }
    json_t *req = gs_parse_body(s, body, len, r);
    if (!req) return;
    const char **texts = NULL;
    size_t *lens = NULL, nq = 0, tokens = 0;
    hit *dl = NULL, *bl = NULL, *fl = NULL;
    size_t *nd = NULL, *nb = NULL, *nf = NULL;
    const json_t *qv = json_object_get(req, "query"), *qsv = json_object_get(req, "queries");
    const json_t *kv = json_object_get(req, "k"), *mv = json_object_get(req, "method");
    gtr_server_method m = s->o.method;
    size_t k = 10;
    if (!qv == !qsv) {
        gs_reply_error(r, 400, "query", "missing_required_parameter", "give either 'query' (a string) or 'queries' (an array of strings)");
        goto done;
    }
    const char *param = qv ? "query" : "queries";
    if (kv && !json_is_null(kv)) {
        if (!json_is_integer(kv) || json_integer_value(kv) < 1 || (size_t)json_integer_value(kv) > s->o.max_k) {
            gs_reply_error(r, 400, "k", "invalid_value", "'k' must be an integer from 1 to %zu", s->o.max_k);
            goto done;
        }
        k = (size_t)json_integer_value(kv);
    }
    if (mv && !json_is_null(mv)) {
        const char *ms = json_is_string(mv) ? json_string_value(mv) : "";
        if (!strcmp(ms, "dense")) m = GTR_SERVER_DENSE;
        else if (!strcmp(ms, "bm25")) m = GTR_SERVER_BM25;
        else if (!strcmp(ms, "hybrid")) m = GTR_SERVER_HYBRID;
        else {
            gs_reply_error(r, 400, "method", "invalid_value", "'method' must be \"dense\", \"bm25\" or \"hybrid\"");
            goto done;
        }
    }
    bool need_dense = m != GTR_SERVER_BM25, need_bm25 = m != GTR_SERVER_DENSE;
    if ((need_dense && !s->o.index) || (need_bm25 && !s->o.bm25)) {
        gs_reply_error(r, 400, "method", "invalid_value", "method \"%s\" needs %s, which this server has not loaded",
                       method_name(m), need_dense && !s->o.index ? "a dense index (--index)" : "a BM25 index (--bm25-index)");
        goto done;
    }
    if (!gather(s, qv ? qv : qsv, param, &texts, &lens, &nq, r)) goto done;
    r->inputs = nq;
    if (nq * k > s->o.max_hits) {
        gs_reply_error(r, 400, "k", "too_many_hits",
                       "%zu queries with k %zu ask for %zu hits, more than the limit of %zu per request",
                       nq, k, nq * k, s->o.max_hits);
        goto done;
    }
    size_t depth = m == GTR_SERVER_HYBRID ? GTR_MAX(k, s->o.depth) : k;
    /* the ranked lists of every query, before they exist */
    size_t lists = (need_dense ? nq * depth * (sizeof *dl + sizeof(gtr_hit)) : 0) +
                   (need_bm25 ? nq * depth * (sizeof *bl + sizeof(gtr_bm25_hit)) : 0) +
                   (m == GTR_SERVER_HYBRID ? nq * k * sizeof *fl + 2 * depth * sizeof(gtr_ranked_doc) : 0) +
                   nq * ((size_t)s->dim * sizeof(float) + 4 * sizeof(size_t));
    if (!gs_hold(s, r, lists)) goto done;
    nd = calloc(nq, sizeof *nd);
    nb = calloc(nq, sizeof *nb);
    nf = calloc(nq, sizeof *nf);
    if (need_dense) dl = malloc(nq * depth * sizeof *dl);
    if (need_bm25) bl = malloc(nq * depth * sizeof *bl);
    if (m == GTR_SERVER_HYBRID) fl = malloc(nq * k * sizeof *fl);
    if (!nd || !nb || !nf || (need_dense && !dl) || (need_bm25 && !bl) || (m == GTR_SERVER_HYBRID && !fl)) {
        gs_reply_oom(r);
        goto done;
    }
    if (need_dense && !dense_hits(s, qv ? qv : qsv, param, nq, depth, dl, nd, &tokens, r)) goto done;
    if (need_bm25 && !bm25_hits(s, texts, lens, nq, depth, bl, nb, r)) goto done;
    const hit *res = dl;
    const size_t *nres = nd;
    if (m == GTR_SERVER_BM25) {
        res = bl;
        nres = nb;
    } else if (m == GTR_SERVER_HYBRID) {
        if (!fuse(s, nq, depth, k, dl, nd, bl, nb, fl, nf, r)) goto done;
        res = fl;
        nres = nf;
    }
    gtr_error e;
    r->body.len = 0;
    size_t stride = m == GTR_SERVER_HYBRID ? k : depth;
    if (!gs_hold(s, r, response_bound(s, res, stride, nres, nq))) goto done;
    if (write_response(s, qsv != NULL, m, res, stride, nres, nq, tokens, &r->body, &e)) {
        gs_reply_failed(r, &e);
        goto done;
    }
    r->status = 200;
    r->tokens = tokens;
done:
    free(texts);
    free(lens);
    free(dl);
    free(bl);
    free(fl);
    free(nd);
    free(nb);
    free(nf);
    json_decref(req);
}
