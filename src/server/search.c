/* search.c — POST /search: the ranked documents for one query or a batch, by the methods of
 * `gtr search` (same index, same scores, same order):
 *   {"query": "text", "k": 10, "method": "dense" | "bm25" | "hybrid"}
 *   -> {"object": "search_result", "method": ..., "hits": [{"rank", "id", "score", "snippet"}],
 *       "model": ..., "usage": {...}}
 *   {"queries": ["text", ...], "k": 10}
 *   -> {"object": "list", "method": ..., "data": [{"object": "search_result", "index": i,
 *       "hits": [...]}], "model": ..., "usage": {...}}
 * Dense queries go through the batcher like any embedding request; their vectors then go to
 * the library's retriever (gtr_retriever_search, the pipeline of `gtr search`) in this
 * connection's thread (the indexes are read-only, so concurrent searches need no lock).
 * Optional, dense only: "nprobe" (with --ann: lists scanned for this request, 1 to the IVF
 * index's lists), "filter_ids" (an array of document ids: only those are returned; an id the
 * index lacks is a 400 naming it), "where" ({"field": value, ...}: only documents whose metadata
 * fields match them all, gtr_fields_where; needs INDEX.fields). "snippet" is the start of the passage the dense index keeps (absent
 * for documents found only by BM25). Scores: float32 ones with %.9g, fused ones with %.17g. */
#include "server/server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* "filter_ids": the bitmap over the dense index's documents into *allow (malloc'd; the budget
 * holds its bytes). false with r filled (400, 503) when invalid. */
static bool filter_ids(gs_server *s, const json_t *v, uint8_t **allow, gs_reply *r)
{
    if (!json_is_array(v)) {
        gs_reply_error(r, 400, "filter_ids", "invalid_type", "'filter_ids' must be an array of document ids (strings)");
        return false;
    }
    size_t n = json_array_size(v), nb = (gtr_index_count(s->o.index) + 7) / 8 + 1;
    if (!gs_hold(s, r, nb + n * 2 * sizeof(void *))) return false;
    const char **ids = malloc((n ? n : 1) * sizeof *ids);
    size_t *lens = malloc((n ? n : 1) * sizeof *lens), unknown = 0, first = SIZE_MAX;
    bool ok = ids && lens && (*allow = calloc(nb, 1));
    if (!ok) gs_reply_oom(r);
    for (size_t i = 0; ok && i < n; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_string(x)) {
            gs_reply_error(r, 400, "filter_ids", "invalid_type", "filter_ids[%zu] is not a string", i);
            ok = false;
            break;
        }
        ids[i] = json_string_value(x);
        lens[i] = json_string_length(x);
    }
    gtr_error e;
    if (ok && gtr_index_allow_ids(s->o.index, ids, lens, n, *allow, &unknown, &first, &e)) {
        gs_reply_failed(r, &e);
        ok = false;
    } else if (ok && unknown) {
        gs_reply_error(r, 400, "filter_ids", "unknown_id", "filter_ids[%zu] \"%.*s\" is not in the index (%zu unknown)",
                       first, (int)GTR_MIN(lens[first], (size_t)200), ids[first], unknown);
        ok = false;
    }
    free(ids);
    free(lens);
    return ok;
}

/* "where": {"field": scalar, ...} ANDed into *allow (allocated here when NULL). false with r
 * filled (400, 503) when invalid. */
static bool filter_where(gs_server *s, const json_t *v, uint8_t **allow, gs_reply *r)
{
    if (!s->o.fields) {
        gs_reply_error(r, 400, "where", "invalid_value", "'where' needs metadata fields: this index has no INDEX.fields "
                       "(gtr index writes it when the corpus has metadata)");
        return false;
    }
    if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > 32) {
        gs_reply_error(r, 400, "where", "invalid_type", "'where' must be an object of 1 to 32 {\"field\": value} conditions");
        return false;
    }
    size_t n = json_object_size(v), nb = (gtr_index_count(s->o.index) + 7) / 8 + 1, i = 0;
    if (!gs_hold(s, r, nb + 64 * n)) return false;
    const char *names[32], *values[32];
    char num[32][40];
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        names[i] = key;
        if (json_is_string(x)) values[i] = json_string_value(x);
        else if (json_is_integer(x)) snprintf(num[i], sizeof num[i], "%lld", (long long)json_integer_value(x)), values[i] = num[i];
        else if (json_is_real(x)) snprintf(num[i], sizeof num[i], "%.17g", json_real_value(x)), values[i] = num[i];
        else if (json_is_boolean(x)) values[i] = json_is_true(x) ? "true" : "false";
        else {
            gs_reply_error(r, 400, "where", "invalid_type", "where[\"%.200s\"] must be a string, number or boolean", key);
            return false;
        }
        i++;
    }
    uint8_t *bits = calloc(nb, 1);
    if (!bits) {
        gs_reply_oom(r);
        return false;
    }
    gtr_error e;
    if (gtr_fields_where(s->o.fields, s->o.index, names, values, n, bits, NULL, &e)) {
        if (e.code == GTR_ERR_NOT_FOUND) gs_reply_error(r, 400, "where", "unknown_field", "%s", e.message);
        else gs_reply_failed(r, &e);
        free(bits);
        return false;
    }
    if (*allow) {
        for (size_t j = 0; j < nb; j++) (*allow)[j] &= bits[j];
        free(bits);
    } else {
        *allow = bits;
    }
    return true;
}

/* is_f32: dense and BM25 scores are float32 values, fused ones doubles */
static gtr_status put_hits(const gs_server *s, const gtr_hit *h, size_t n, bool is_f32, gtr_buf *b, gtr_error *err)
{
    gtr_status st = gtr_buf_append(b, "\"hits\":[", 8, err);
    for (size_t j = 0; j < n && !st; j++) {
        st = gtr_buf_printf(b, err, "%s{\"rank\":%zu,\"id\":", j ? "," : "", j + 1);
        if (!st) st = gs_json_str(b, h[j].id, h[j].id_len, err);
        if (!st) st = gtr_buf_append(b, ",\"score\":", 9, err);
        if (!st && !isfinite(h[j].score))
            st = gtr_seterr(err, GTR_ERR_INTERNAL, "the score of '%.*s' is not finite", (int)GTR_MIN(h[j].id_len, 100), h[j].id);
        if (!st) st = is_f32 ? gs_json_f32(b, (float)h[j].score, err) : gtr_buf_printf(b, err, "%.17g", h[j].score);
        size_t len = 0;
        const char *sn = h[j].doc != SIZE_MAX ? gtr_index_doc_snippet(s->o.index, h[j].doc, &len) : NULL;
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
static size_t response_bound(const gs_server *s, const gtr_hit *hits, size_t stride, const size_t *n, size_t nq)
{
    size_t b = 256 + 6 * strlen(s->o.model_name) + nq * 96;
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 0; j < n[q]; j++) {
            const gtr_hit *h = &hits[q * stride + j];
            size_t sl = 0;
            if (h->doc != SIZE_MAX) gtr_index_doc_snippet(s->o.index, h->doc, &sl);
            b += 96 + 6 * (h->id_len + sl);
        }
    return b;
}

static gtr_status write_response(const gs_server *s, bool batch, gtr_retrieval_method m, const gtr_hit *hits,
                                 size_t stride, const size_t *n, size_t nq, size_t tokens, gtr_buf *b,
                                 gtr_error *err)
{
    gtr_status st = gtr_buf_printf(b, err, "{\"object\":\"%s\",\"method\":\"%s\",", batch ? "list" : "search_result",
                                   gtr_retrieval_method_name(m));
    if (batch && !st) st = gtr_buf_append(b, "\"data\":[", 8, err);
    for (size_t q = 0; q < nq && !st; q++) {
        if (batch) st = gtr_buf_printf(b, err, "%s{\"object\":\"search_result\",\"index\":%zu,", q ? "," : "", q);
        if (!st) st = put_hits(s, hits + q * stride, n[q], m != GTR_RETRIEVE_HYBRID, b, err);
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
    gtr_hit *hits = NULL;
    size_t *n_hits = NULL;
    float *vecs = NULL;
    uint8_t *allow = NULL;
    uint32_t nprobe = s->o.nprobe;
    gs_inputs in;
    bool have_inputs = false;
    const json_t *qv = json_object_get(req, "query"), *qsv = json_object_get(req, "queries");
    const json_t *kv = json_object_get(req, "k"), *mv = json_object_get(req, "method");
    gtr_retrieval_method m = s->o.method;
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
        if (strcmp(ms, "gtr") == 0 || gtr_retrieval_method_parse(ms, &m, NULL)) { /* the CLI's alias is not API */
            gs_reply_error(r, 400, "method", "invalid_value", "'method' must be \"dense\", \"bm25\" or \"hybrid\"");
            goto done;
        }
    }
    bool need_dense = m != GTR_RETRIEVE_BM25, need_bm25 = m != GTR_RETRIEVE_DENSE;
    if ((need_dense && !s->o.index) || (need_bm25 && !s->o.bm25)) {
        gs_reply_error(r, 400, "method", "invalid_value", "method \"%s\" needs %s, which this server has not loaded",
                       gtr_retrieval_method_name(m), need_dense && !s->o.index ? "a dense index (--index)" : "a BM25 index (--bm25-index)");
        goto done;
    }
    const json_t *npv = json_object_get(req, "nprobe"), *fv = json_object_get(req, "filter_ids");
    const json_t *wv = json_object_get(req, "where");
    if (npv && !json_is_null(npv)) {
        uint32_t lists = s->o.ann ? gtr_ann_n_lists(s->o.ann) : 0;
        if (!s->o.ann || m != GTR_RETRIEVE_DENSE) {
            gs_reply_error(r, 400, "nprobe", "invalid_value", "'nprobe' needs dense search through an IVF index (gtr serve --ann)");
            goto done;
        }
        if (!json_is_integer(npv) || json_integer_value(npv) < 1 || json_integer_value(npv) > (json_int_t)lists) {
            gs_reply_error(r, 400, "nprobe", "invalid_value", "'nprobe' must be an integer from 1 to %u (the IVF index's lists)", lists);
            goto done;
        }
        nprobe = (uint32_t)json_integer_value(npv);
    }
    if (fv && !json_is_null(fv)) {
        if (m != GTR_RETRIEVE_DENSE) {
            gs_reply_error(r, 400, "filter_ids", "invalid_value", "'filter_ids' applies to method \"dense\" only");
            goto done;
        }
        if (!filter_ids(s, fv, &allow, r)) goto done;
    }
    if (wv && !json_is_null(wv)) {
        if (m != GTR_RETRIEVE_DENSE) {
            gs_reply_error(r, 400, "where", "invalid_value", "'where' applies to method \"dense\" only");
            goto done;
        }
        if (!filter_where(s, wv, &allow, r)) goto done;
    }
    if (!gather(s, qv ? qv : qsv, param, &texts, &lens, &nq, r)) goto done;
    r->inputs = nq;
    if (nq * k > s->o.max_hits) {
        gs_reply_error(r, 400, "k", "too_many_hits",
                       "%zu queries with k %zu ask for %zu hits, more than the limit of %zu per request",
                       nq, k, nq * k, s->o.max_hits);
        goto done;
    }
    size_t depth = m == GTR_RETRIEVE_HYBRID ? GTR_MAX(k, s->o.depth) : k;
    /* the hits and the retriever's lists (a chunk of at most 256 queries), before they exist */
    size_t chunk = GTR_MIN(nq, (size_t)256);
    size_t lists = nq * k * sizeof *hits + nq * ((size_t)s->dim * sizeof(float) + 4 * sizeof(size_t)) +
                   (need_dense ? chunk * (depth + 1) * sizeof *hits : 0) +
                   (m == GTR_RETRIEVE_HYBRID ? 2 * chunk * depth * sizeof *hits + 2 * depth * sizeof(gtr_ranked_doc) : 0);
    if (!gs_hold(s, r, lists)) goto done;
    hits = malloc(nq * k * sizeof *hits);
    n_hits = calloc(nq, sizeof *n_hits);
    if (need_dense) vecs = malloc(nq * (size_t)s->dim * sizeof *vecs);
    if (!hits || !n_hits || (need_dense && !vecs)) {
        gs_reply_oom(r);
        goto done;
    }
    if (need_dense) { /* through the batcher, like any embedding request */
        if (!gs_inputs_parse(s, qv ? qv : qsv, param, false, &in, r)) goto done;
        have_inputs = true;
        if (!gs_encode(s, &in, vecs, r)) goto done;
        tokens = in.tokens;
    }
    gtr_retrieve_options ro = gtr_retrieve_default_options();
    ro.method = m;
    ro.k = k;
    ro.depth = depth;
    ro.fusion = s->o.fusion;
    ro.alpha = s->o.alpha;
    ro.nprobe = nprobe;
    ro.vectors = vecs;
    ro.allow = allow;
    gtr_error e;
    if (gtr_retriever_search(s->retriever, texts, lens, nq, &ro, hits, n_hits, &e)) {
        bool bad_query = m == GTR_RETRIEVE_BM25 && e.code != GTR_ERR_NOMEM;
        gs_reply_error(r, bad_query ? 400 : 500, bad_query ? "query" : NULL, NULL, "%s failed: %s",
                       m == GTR_RETRIEVE_BM25 ? "BM25 search" : "search", e.message);
        goto done;
    }
    r->body.len = 0;
    if (!gs_hold(s, r, response_bound(s, hits, k, n_hits, nq))) goto done;
    if (write_response(s, qsv != NULL, m, hits, k, n_hits, nq, tokens, &r->body, &e)) {
        gs_reply_failed(r, &e);
        goto done;
    }
    r->status = 200;
    r->tokens = tokens;
done:
    if (have_inputs) gs_inputs_free(&in);
    free(texts);
    free(lens);
    free(hits);
    free(n_hits);
    free(vecs);
    free(allow);
    json_decref(req);
}
