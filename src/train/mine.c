/* mine.c — hard negatives for a second training stage (GTR fine-tunes with negatives mined by
 * a retriever): embed the corpus and every judged query of a BEIR split with the current
 * model, rank the corpus exhaustively by inner product, and keep the best-ranked documents
 * that are not judged relevant (and are not the query itself, BEIR's ignore_identical_ids).
 * Ranking: score descending, equal scores by corpus order. Output: JSON lines
 * {"query_id", "query", "pos": [...], "pos_ids": [...], "neg": [...], "neg_ids": [...]} in the
 * qrels file's query order, written atomically; gtr_train_data_load_jsonl reads it. */
#include "train/train_internal.h"
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

gtr_negatives_options gtr_negatives_default_options(void)
{
    gtr_negatives_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.k = 8;
    o.batch = 64;
    o.query_max_len = 64;
    return o;
}

/* Texts back to back: text i is buf[off[i] .. off[i+1]). */
typedef struct {
    gtr_buf buf;
    size_t *off;
    size_t n, cap;
} text_list;

static gtr_status tl_add(text_list *t, const char *s, size_t len, gtr_error *err)
{
    if (t->n + 2 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        size_t *o = gtr_xrealloc(t->off, cap * sizeof *o, "texts", err);
        if (!o) return GTR_ERR_NOMEM;
        t->off = o;
        t->cap = cap;
    }
    if (t->n == 0) t->off[0] = 0;
    gtr_status st = gtr_buf_append(&t->buf, s, len, err);
    if (!st) t->off[++t->n] = t->buf.len;
    return st;
}

static const char *tl_get(const text_list *t, size_t i, size_t *len)
{
    *len = t->off[i + 1] - t->off[i];
    return t->buf.data ? t->buf.data + t->off[i] : "";
}

static void tl_free(text_list *t)
{
    gtr_buf_free(&t->buf);
    free(t->off);
}

/* Embed texts [0, n) of list into out (rows of dim), max_len tokens each. */
static gtr_status embed_list(gtr_model *m, const text_list *tl, int max_len, size_t batch,
                             float *out, gtr_progress_fn progress, void *user, gtr_error *err)
{
    const gtr_tokenizer *tok = gtr_model_tokenizer(m);
    size_t dim = (size_t)gtr_model_dim(m);
    gtr_ids *ids = gtr_xcalloc(batch, sizeof *ids, "token ids", err);
    const int32_t **pp = gtr_xmalloc(batch * sizeof *pp, "token ids", err);
    size_t *lens = gtr_xmalloc(batch * sizeof *lens, "token ids", err);
    gtr_status st = ids && pp && lens ? GTR_OK : GTR_ERR_NOMEM;
    for (size_t i0 = 0; !st && i0 < tl->n; i0 += batch) {
        size_t k = GTR_MIN(batch, tl->n - i0);
        for (size_t i = 0; !st && i < k; i++) {
            size_t len;
            const char *s = tl_get(tl, i0 + i, &len);
            st = gtr_tokenizer_encode(tok, s, len, max_len, 1, &ids[i], err);
            pp[i] = ids[i].ids;
            lens[i] = ids[i].n;
        }
        if (!st) st = gtr_model_encode_ids(m, pp, lens, k, out + i0 * dim, err);
        if (!st && progress && progress(user, i0 + k, tl->n))
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "interrupted");
    }
    if (ids)
        for (size_t i = 0; i < batch; i++) gtr_ids_free(&ids[i]);
    free(ids);
    free(pp);
    free(lens);
    return st;
}

static gtr_status write_str(gtr_buf *b, const char *s, size_t len, gtr_error *err)
{
    json_t *j = json_stringn(s, len);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) return gtr_seterr(err, GTR_ERR_FORMAT, "text is not valid UTF-8");
    gtr_status st = gtr_buf_append(b, t, strlen(t), err);
    free(t);
    return st;
}

gtr_status gtr_negatives_mine(gtr_model *m, const char *dir, const char *split,
                              const gtr_negatives_options *opts, const char *out_path,
                              gtr_negatives_stats *stats, gtr_error *err)
{
    gtr_negatives_options o = gtr_negatives_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_negatives_mine", err)) return GTR_ERR_INVALID_ARG;
    if (!m || !dir || !out_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_negatives_mine: NULL argument");
    if (o.k == 0 || o.skip > SIZE_MAX / 4 || o.k > SIZE_MAX / 4)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "k must be at least 1 (and skip + k a sane number)");
    if (o.batch == 0) o.batch = 64;
    gtr_beir *beir = gtr_beir_open(dir, split ? split : "train", err);
    if (!beir) return err && err->code ? err->code : GTR_ERR_NOT_FOUND;
    const char *qrels_path = gtr_beir_qrels_path(beir), *corpus = gtr_beir_corpus_path(beir),
               *queries = gtr_beir_queries_path(beir);
    gtr_qrels *qr = NULL;
    gtr_strmap ids;
    gtr_strmap_init(&ids);
    text_list docs = {0}, qtexts = {0};
    uint32_t *qi_of = NULL, *doc_of = NULL, *ranked = NULL;
    gtr_index *ix = NULL;
    gtr_retriever *rt = NULL;
    gtr_hit *hits = NULL;
    size_t *n_hits = NULL;
    const char **idp = NULL, **qid = NULL;
    size_t *idl = NULL;
    float *dv = NULL, *qv = NULL;
    gtr_corpus *r = NULL;
    gtr_queries *qs = NULL;
    gtr_pool *pool = NULL;
    gtr_buf out = {0};
    size_t dim = (size_t)gtr_model_dim(m);
    gtr_status st = GTR_OK;
    if (!(qr = gtr_beir_load_qrels(beir, err))) {
        st = err && err->code ? err->code : GTR_ERR_IO;
        goto done;
    }
    /* corpus: ids and passages */
    if (!(r = gtr_beir_open_corpus(beir, err))) {
        st = err && err->code ? err->code : GTR_ERR_IO;
        goto done;
    }
    for (;;) {
        gtr_corpus_doc doc;
        int eof;
        bool added;
        uint32_t id;
        if ((st = gtr_corpus_next(r, &doc, &eof, err)) || eof) break;
        if ((st = gtr_strmap_intern(&ids, doc.id, doc.id_len, &id, &added, err))) break;
        if (!added) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: duplicate document id", corpus, doc.line);
            break;
        }
        if ((st = tl_add(&docs, doc.passage, doc.passage_len, err))) break;
    }
    gtr_corpus_close(r);
    r = NULL;
    if (st) goto done;
    if (docs.n == 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: empty corpus", corpus);
        goto done;
    }
    /* judged queries that have a relevant document in the corpus */
    doc_of = gtr_xmalloc((qr->docs.n + 1) * sizeof *doc_of, "documents", err);
    uint32_t *qtext = gtr_xmalloc((qr->qids.n + 1) * sizeof *qtext, "queries", err);
    qi_of = gtr_xmalloc((qr->qids.n + 1) * sizeof *qi_of, "queries", err);
    if (!doc_of || !qtext || !qi_of) {
        free(qtext);
        st = GTR_ERR_NOMEM;
        goto done;
    }
    for (uint32_t d = 0; d < qr->docs.n; d++) {
        size_t len;
        const char *s = gtr_strmap_key(&qr->docs, d, &len);
        doc_of[d] = gtr_strmap_find(&ids, s, len);
    }
    memset(qtext, 0xff, (qr->qids.n + 1) * sizeof *qtext);
    {
        text_list all = {0};
        if (!(qs = gtr_beir_load_queries(beir, NULL, err))) st = err && err->code ? err->code : GTR_ERR_IO;
        for (size_t i = 0; !st && i < gtr_queries_count(qs); i++) {
            size_t il, tl;
            const char *id = gtr_queries_id(qs, i, &il), *t = gtr_queries_text(qs, i, &tl);
            uint32_t qi = gtr_strmap_find(&qr->qids, id, il);
            if (qi == GTR_STRMAP_NONE || qtext[qi] != UINT32_MAX) continue;
            qtext[qi] = (uint32_t)all.n;
            st = tl_add(&all, t, tl, err);
        }
        gtr_queries_free(qs);
        qs = NULL;
        size_t nq = 0;
        for (uint32_t qi = 0; !st && qi < qr->qids.n; qi++) {
            size_t n;
            const gtr_judgment *ju = gtr_qrels_judgments(qr, qi, &n);
            bool has = false;
            for (size_t i = 0; i < n; i++) has |= ju[i].rel >= 1 && doc_of[ju[i].doc] != UINT32_MAX;
            if (!has) continue;
            if (qtext[qi] == UINT32_MAX) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: query '%s' of %s is missing", queries,
                                gtr_strmap_key(&qr->qids, qi, NULL), qrels_path);
                break;
            }
            size_t len;
            const char *s = tl_get(&all, qtext[qi], &len);
            qi_of[nq++] = qi;
            st = tl_add(&qtexts, s, len, err);
        }
        tl_free(&all);
        free(qtext);
        if (st) goto done;
    }
    if (qtexts.n == 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no judged query has a relevant document in the corpus", qrels_path);
        goto done;
    }
    /* embed, rank */
    dv = gtr_malloc_aligned(docs.n * dim * sizeof(float), err);
    qv = gtr_malloc_aligned(qtexts.n * dim * sizeof(float), err);
    ranked = gtr_xmalloc(qtexts.n * o.k * sizeof *ranked, "rankings", err);
    if (!dv || !qv || !ranked || !(pool = gtr_pool_create(0, err))) {
        st = err && err->code ? err->code : GTR_ERR_NOMEM;
        goto done;
    }
    int plen = o.max_len > 0 ? o.max_len : gtr_model_max_len(m);
    if ((st = embed_list(m, &docs, plen, o.batch, dv, o.progress, o.progress_user, err)) ||
        (st = embed_list(m, &qtexts, o.query_max_len > 0 ? o.query_max_len : 64, o.batch, qv, NULL,
                         NULL, err)))
        goto done;
    /* rank: every document, the query's own id left out by the retriever, the judged relevant
     * ones here; enough hits for the most relevant documents any query has */
    size_t max_rel = 0;
    for (size_t row = 0; row < qtexts.n; row++) {
        size_t n, rel = 0;
        const gtr_judgment *ju = gtr_qrels_judgments(qr, qi_of[row], &n);
        for (size_t i = 0; i < n; i++) rel += ju[i].rel >= 1;
        max_rel = GTR_MAX(max_rel, rel);
    }
    size_t K = o.skip + o.k + max_rel;
    idp = gtr_xmalloc((docs.n + 1) * sizeof *idp, "ids", err);
    idl = gtr_xmalloc((docs.n + 1) * sizeof *idl, "ids", err);
    qid = gtr_xmalloc((qtexts.n + 1) * sizeof *qid, "ids", err);
    hits = gtr_xmalloc((qtexts.n * K + 1) * sizeof *hits, "rankings", err);
    n_hits = gtr_xmalloc((qtexts.n + 1) * sizeof *n_hits, "rankings", err);
    if (!idp || !idl || !qid || !hits || !n_hits) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    for (uint32_t d = 0; d < docs.n; d++) idp[d] = gtr_strmap_key(&ids, d, &idl[d]);
    for (size_t row = 0; row < qtexts.n; row++) qid[row] = gtr_strmap_key(&qr->qids, qi_of[row], NULL);
    gtr_retriever_options ro = gtr_retriever_default_options();
    ro.pool = pool;
    if (!(ix = gtr_index_wrap(dv, docs.n, (int)dim, idp, idl, gtr_model_fingerprint(m), err)) ||
        (ro.index = ix, !(rt = gtr_retriever_open(&ro, err)))) {
        st = err && err->code ? err->code : GTR_ERR_NOMEM;
        goto done;
    }
    gtr_retrieve_options so = gtr_retrieve_default_options();
    so.k = K;
    so.vectors = qv;
    so.skip_ids = qid; /* BEIR's ignore_identical_ids */
    if ((st = gtr_retriever_search(rt, NULL, NULL, qtexts.n, &so, hits, n_hits, err))) goto done;
    for (size_t row = 0; row < qtexts.n; row++) {
        size_t n, w = 0, skipped = 0;
        const gtr_judgment *ju = gtr_qrels_judgments(qr, qi_of[row], &n);
        for (size_t j = 0; j < n_hits[row] && w < o.k; j++) {
            size_t d = hits[row * K + j].doc;
            bool rel = false;
            for (size_t i = 0; i < n && !rel; i++) rel = ju[i].rel >= 1 && doc_of[ju[i].doc] == d;
            if (rel) continue;
            if (skipped < o.skip) {
                skipped++;
                continue;
            }
            ranked[row * o.k + w++] = (uint32_t)d;
        }
        while (w < o.k) ranked[row * o.k + w++] = UINT32_MAX;
    }

    /* the training file */
    size_t n_neg = 0;
    for (size_t row = 0; !st && row < qtexts.n; row++) {
        uint32_t qi = qi_of[row];
        size_t len, n;
        const char *s;
        st = gtr_buf_append(&out, "{\"query_id\": ", 13, err);
        s = gtr_strmap_key(&qr->qids, qi, &len);
        if (!st) st = write_str(&out, s, len, err);
        if (!st) st = gtr_buf_append(&out, ", \"query\": ", 11, err);
        s = tl_get(&qtexts, row, &len);
        if (!st) st = write_str(&out, s, len, err);
        const gtr_judgment *ju = gtr_qrels_judgments(qr, qi, &n);
        for (int pass = 0; pass < 4 && !st; pass++) { /* pos, pos_ids, neg, neg_ids */
            static const char *const key[4] = {", \"pos\": [", ", \"pos_ids\": [", ", \"neg\": [", ", \"neg_ids\": ["};
            st = gtr_buf_append(&out, key[pass], strlen(key[pass]), err);
            size_t count = 0;
            size_t lim = pass < 2 ? n : o.k;
            for (size_t i = 0; !st && i < lim; i++) {
                uint32_t d = pass < 2 ? (ju[i].rel >= 1 ? doc_of[ju[i].doc] : UINT32_MAX) : ranked[row * o.k + i];
                if (d == UINT32_MAX) continue;
                if (count++) st = gtr_buf_append(&out, ", ", 2, err);
                s = pass % 2 ? gtr_strmap_key(&ids, d, &len) : tl_get(&docs, d, &len);
                if (!st) st = write_str(&out, s, len, err);
                if (pass == 2) n_neg++;
            }
            if (!st) st = gtr_buf_append(&out, "]", 1, err);
        }
        if (!st) st = gtr_buf_append(&out, "}\n", 2, err);
    }
    if (!st) st = gtr_write_file_atomic(out_path, out.data ? out.data : "", out.len, err);
    if (!st && stats) {
        stats->queries = qtexts.n;
        stats->docs = docs.n;
        stats->negatives = n_neg;
    }
done:
    gtr_retriever_free(rt);
    gtr_index_free(ix);
    free(hits);
    free(n_hits);
    free(idp);
    free(idl);
    free(qid);
    gtr_corpus_close(r);
    gtr_queries_free(qs);
    gtr_qrels_free(qr);
    gtr_strmap_free(&ids);
    tl_free(&docs);
    tl_free(&qtexts);
    free(qi_of);
    free(doc_of);
    free(ranked);
    gtr_free_aligned(dv);
    gtr_free_aligned(qv);
    gtr_pool_free(pool);
    gtr_buf_free(&out);
    gtr_beir_free(beir);
    return st;
}
