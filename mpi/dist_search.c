/* dist_search.c — queries split across ranks, hits gathered on rank 0 in query order. */
#include "dist_search.h"

#include <stdlib.h>
#include <string.h>

static void dist_parts_fail(const void *user, const char *cmd, const gtr_error *err)
{
    (void)cmd;
    dist_errorf(user, 0, "%s", err->message);
}

/* split docs with ann: this rank's shards of the sharded index and their IVF files */
static bool open_shard_anns(const dist_ctx *d, dist_parts *p, const char *index_path, gtr_pool *pool)
{
    gtr_error err;
    int S = 0;
    if (gtr_index_shard_count(index_path, &S, &err)) return dist_errorf(d, 0, "%s", err.message);
    if (S == 0)
        return dist_errorf(d, 0, "--split docs --ann needs a sharded index (gtr-mpi index --shards) and its per-shard "
                                 "IVF files (gtr-mpi ann-build -o PREFIX); %s is one index file: use --split queries "
                                 "with gtr ann-build's file",
                           index_path);
    size_t R = (size_t)d->size, r = (size_t)d->rank, first, end;
    p->q_part = 0, p->q_parts = 1;
    if (R <= (size_t)S) { /* whole shards, as gtr_index_open_part */
        first = (size_t)S * r / R, end = (size_t)S * (r + 1) / R;
    } else { /* the ranks of one shard share its queries */
        first = (size_t)S * r / R, end = first + 1;
        for (size_t x = 0; x < R; x++)
            if ((size_t)S * x / R == first) {
                if (x < r) p->q_part++;
                else if (x > r) p->q_parts++;
            }
        p->q_parts += p->q_part;
    }
    p->n_sh = (int)(end - first);
    p->sh_ix = calloc((size_t)p->n_sh, sizeof *p->sh_ix);
    p->sh_ann = calloc((size_t)p->n_sh, sizeof *p->sh_ann);
    p->sh_rt = calloc((size_t)p->n_sh, sizeof *p->sh_rt);
    if (!p->sh_ix || !p->sh_ann || !p->sh_rt) return dist_errorf(d, 0, "out of memory");
    for (int i = 0; i < p->n_sh; i++) {
        int s = (int)first + i;
        size_t b, e;
        if (!(p->sh_ix[i] = gtr_index_open_part(index_path, s, S, 0, pool, &b, &e, &p->docs, &err)))
            return dist_errorf(d, 0, "%s", err.message);
        char *path = dist_shard_ivf_path(p->ann, s, S);
        if (!path) return dist_errorf(d, 0, "out of memory");
        bool ok = cli_file_exists(path);
        if (!ok) dist_errorf(d, 0, "%s: no IVF file of shard %d of %d (build them with gtr-mpi ann-build --index %s -o %s)",
                             path, s, S, index_path, p->ann);
        else if (!(p->sh_ann[i] = gtr_ann_open(path, p->sh_ix[i], &err)))
            ok = dist_errorf(d, 0, "%s: %s", path, err.message);
        free(path);
        if (!ok) return false;
    }
    p->doc_begin = p->doc_end = 0; /* the IVF files search their whole shards */
    p->parts.dense = p->sh_ix[0];
    p->parts.ann = p->sh_ann[0];
    return true;
}

bool dist_parts_open(const dist_ctx *d, dist_parts *p, const char *index_path, const char *bm25_path,
                     const char *model_dir, gtr_retrieval_method method, int threads, gtr_pool *pool)
{
    gtr_error err;
    p->parts.fail = dist_parts_fail;
    p->parts.fail_user = d;
    bool shard_anns = index_path && p->split_docs && p->ann && method != GTR_RETRIEVE_BM25;
    if (shard_anns && !open_shard_anns(d, p, index_path, pool)) return false;
    if (index_path && p->split_docs && !shard_anns &&
        !(p->parts.dense = gtr_index_open_part(index_path, d->rank, d->size, 0, pool, &p->doc_begin, &p->doc_end,
                                               &p->docs, &err)))
        return dist_errorf(d, 0, "%s", err.message);
    cli_parts_want w = {.index = index_path, .ann = p->split_docs ? NULL : p->ann, .bm25 = bm25_path,
                        .model_dir = model_dir, .method = method, .threads = threads};
    if (!cli_parts_open(d->cmd, &p->parts, &w, pool)) return false;
    if (p->parts.dense && !p->split_docs) p->doc_end = p->docs = gtr_index_count(p->parts.dense);
    p->pool = pool;
    if (p->parts.bm25) { /* BM25 split by its own documents: every rank maps the index, its statistics are global */
        size_t n = gtr_bm25_num_docs(p->parts.bm25);
        p->bm25_begin = p->split_docs ? n * (size_t)d->rank / (size_t)d->size : 0;
        p->bm25_end = p->split_docs ? n * (size_t)(d->rank + 1) / (size_t)d->size : n;
        if (!p->parts.dense) p->docs = n;
    }
    return true;
}

bool dist_parts_retrievers(const dist_ctx *d, dist_parts *p, gtr_pool *pool)
{
    gtr_error err;
    if (p->n_sh) p->sh_rt[0] = p->parts.rt;
    for (int i = 1; i < p->n_sh; i++) {
        gtr_retriever_options ro = gtr_retriever_default_options();
        ro.model = p->parts.model;
        ro.index = p->sh_ix[i];
        ro.ann = p->sh_ann[i];
        ro.pool = pool;
        if (!(p->sh_rt[i] = gtr_retriever_open(&ro, &err))) return dist_errorf(d, 0, "%s", err.message);
    }
    return true;
}

void dist_parts_free(dist_parts *p)
{
    /* entry 0 belongs to p->parts; a failed open may have left it there or not */
    for (int i = p->n_sh - 1; i >= 0; i--) {
        if (i > 0 || !p->parts.rt) gtr_retriever_free(p->sh_rt ? p->sh_rt[i] : NULL);
        if (i > 0 || !p->parts.ann) gtr_ann_free(p->sh_ann ? p->sh_ann[i] : NULL);
        if (i > 0 || !p->parts.dense) gtr_index_free(p->sh_ix ? p->sh_ix[i] : NULL);
    }
    free(p->sh_ix), free(p->sh_ann), free(p->sh_rt);
    p->sh_ix = NULL, p->sh_ann = NULL, p->sh_rt = NULL, p->n_sh = 0;
    cli_parts_free(&p->parts);
}

static char *put(char *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

/* this rank's hits, serialised into *out (malloc'd, *bytes long): per query u32 count, then per
 * hit f64 score, u32 id length, id */
static int pack(const gtr_hit *hits, const size_t *n_hits, size_t nq, size_t k, char **out, size_t *bytes,
                gtr_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < nq; i++) {
        total += sizeof(uint32_t);
        for (size_t j = 0; j < n_hits[i] && j < k; j++)
            total += sizeof(double) + sizeof(uint32_t) + (uint32_t)hits[i * k + j].id_len;
    }
    char *p = *out = malloc(total + 1);
    if (!p) return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory") != GTR_OK;
    for (size_t i = 0; i < nq; i++) {
        uint32_t n = (uint32_t)(n_hits[i] < k ? n_hits[i] : k);
        p = put(p, &n, sizeof n);
        for (size_t j = 0; j < n; j++) {
            const gtr_hit *h = &hits[i * k + j];
            uint32_t len = (uint32_t)h->id_len;
            p = put(put(put(p, &h->score, sizeof h->score), &len, sizeof len), h->id, len);
        }
    }
    *bytes = total;
    return 0;
}

/* rank 0: the run from every rank's packed hits, queries in file order */
static gtr_run *unpack(const gtr_queries *q, const char *all, size_t bytes, size_t max_rank, gtr_error *err)
{
    gtr_run *run = gtr_run_new(err);
    size_t at = 0;
    for (size_t i = 0; run && i < gtr_queries_count(q); i++) {
        uint32_t n;
        if (at + sizeof n > bytes) goto bad;
        memcpy(&n, all + at, sizeof n), at += sizeof n;
        size_t qlen;
        const char *qid = gtr_queries_id(q, i, &qlen);
        if (gtr_run_add_query(run, qid, qlen, err)) goto fail;
        for (uint32_t j = 0; j < n; j++) {
            double score;
            uint32_t len;
            if (at + sizeof score + sizeof len > bytes) goto bad;
            memcpy(&score, all + at, sizeof score), at += sizeof score;
            memcpy(&len, all + at, sizeof len), at += sizeof len;
            if (at + len > bytes) goto bad;
            const char *id = all + at;
            at += len;
            if (j < max_rank && gtr_run_add(run, qid, qlen, id, len, score, err)) goto fail;
        }
    }
    return run;
bad:
    gtr_error_set(err, GTR_ERR_INTERNAL, "the hits gathered from the ranks are malformed");
fail:
    gtr_run_free(run);
    return NULL;
}

/* Gather every rank's packed hits on rank 0 (all, counts[r] bytes from rank r). Collective;
 * 0 on every rank when every rank was ok, else 1 on every rank (the failure printed). */
static int gather(const dist_ctx *d, bool ok, const char *mine, size_t mine_len, char **all, int **counts,
                  size_t *total)
{
    int len = ok && mine_len < (size_t)1 << 31 ? (int)mine_len : -1;
    int *displs = NULL;
    *all = NULL;
    *counts = NULL;
    *total = 0;
    uint64_t verdict = len >= 0;
    if (d->rank == 0 && (!(*counts = calloc((size_t)d->size, sizeof **counts)) ||
                         !(displs = calloc((size_t)d->size, sizeof *displs)))) {
        dist_errorf(d, 1, "out of memory");
        free(*counts), *counts = NULL;
        return 1; /* the others then fail in the gather: MPI_Abort ends them */
    }
    if (MPI_Gather(&len, 1, MPI_INT, *counts, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        free(displs);
        return 1;
    }
    if (d->rank == 0) {
        for (int r = 0; r < d->size; r++) {
            if ((*counts)[r] < 0) verdict = 0;
            displs[r] = (int)*total;
            *total += (*counts)[r] > 0 ? (size_t)(*counts)[r] : 0;
        }
        if (verdict && (*total >= (size_t)1 << 31 || !(*all = malloc(*total + 1)))) verdict = 0;
        if (!verdict) dist_errorf(d, 1, "a rank failed (its message is above) or the run is too large; nothing written");
    }
    int rc = 1;
    MPI_Bcast(&verdict, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (!verdict) goto done;
    if (MPI_Gatherv(mine ? (void *)mine : (void *)&len, len, MPI_CHAR, *all, *counts, displs, MPI_CHAR, 0,
                    MPI_COMM_WORLD) != MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        goto done;
    }
    rc = 0;
done:
    free(displs);
    return rc;
}

int dist_search(const dist_ctx *d, gtr_retriever *rt, const gtr_queries *q, const gtr_retrieve_options *o,
                const size_t *max_rank, gtr_run **runs, size_t n_runs)
{
    gtr_error err;
    char *mine = NULL;
    size_t mine_len = 0;
    char *all = NULL;
    int *counts = NULL;
    int rc = 1;
    for (size_t i = 0; i < n_runs; i++) runs[i] = NULL;
    /* this rank's queries: a contiguous piece, so gathering in rank order keeps file order */
    size_t nq = gtr_queries_count(q);
    size_t lo = nq * (size_t)d->rank / (size_t)d->size, hi = nq * (size_t)(d->rank + 1) / (size_t)d->size;
    gtr_retrieve_options po = *o;
    if (po.skip_ids) po.skip_ids += lo;
    gtr_hit *hits = calloc((hi - lo) * o->k + 1, sizeof *hits);
    size_t *n_hits = calloc(hi - lo + 1, sizeof *n_hits);
    int ok = hits && n_hits;
    if (!ok) cli_errorf(d->cmd, 1, "out of memory for %zu queries x %zu hits", hi - lo, o->k);
    else if (gtr_retriever_search(rt, gtr_queries_texts(q) + lo, gtr_queries_text_lens(q) + lo, hi - lo, &po, hits,
                                  n_hits, &err))
        ok = cli_fail(d->cmd, &err) == 0;
    ok = ok && pack(hits, n_hits, hi - lo, o->k, &mine, &mine_len, &err) == 0;
    if (!ok) dist_errorf(d, 1, "searching queries %zu..%zu failed", lo + 1, hi);
    size_t total;
    if (gather(d, ok, mine, mine_len, &all, &counts, &total)) goto done;
    if (d->rank == 0)
        for (size_t i = 0; i < n_runs; i++)
            if (!(runs[i] = unpack(q, all, total, max_rank[i], &err))) {
                dist_errorf(d, 1, "%s", err.message);
                goto done;
            }
    rc = 0;
done:
    if (rc)
        for (size_t i = 0; i < n_runs; i++) gtr_run_free(runs[i]), runs[i] = NULL;
    free(all), free(counts);
    free(mine);
    free(hits);
    free(n_hits);
    return rc;
}

/* ---- document split ------------------------------------------------------------------------ */

typedef struct {
    double score;
    const char *id;
    uint32_t len;
} cand;

/* best first: score descending, equal scores by id descending (bytes, then the longer), the
 * order of the library's top-k and of trec_eval */
static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    int c = memcmp(a->id, b->id, a->len < b->len ? a->len : b->len);
    if (!c) c = a->len < b->len ? -1 : a->len > b->len;
    return -c;
}

/* Read one rank's list for the next query at *at (< end) into c[*n ...] (capacity cap). */
static bool read_list(const char *all, size_t *at, size_t end, cand *c, size_t *n, size_t cap)
{
    uint32_t m;
    if (*at + sizeof m > end) return false;
    memcpy(&m, all + *at, sizeof m), *at += sizeof m;
    for (uint32_t j = 0; j < m; j++, ++*n) {
        if (*n >= cap || *at + sizeof(double) + sizeof(uint32_t) > end) return false;
        memcpy(&c[*n].score, all + *at, sizeof(double)), *at += sizeof(double);
        memcpy(&c[*n].len, all + *at, sizeof(uint32_t)), *at += sizeof(uint32_t);
        if (*at + c[*n].len > end) return false;
        c[*n].id = all + *at, *at += c[*n].len;
    }
    return true;
}

/* rank 0: each query's lists from every rank, merged into the best kk by (score, id); with two
 * lists (hybrid: dense, BM25) the merged lists are fused into the best o->k as the retriever
 * fuses them. Each rank's block: per list a u64 length, then that list's packed hits. */
static bool merge(const dist_ctx *d, const gtr_queries *q, const char *all, const int *counts, int n_lists,
                  size_t kk, const gtr_retrieve_options *o, const size_t *max_rank, gtr_run **runs, size_t n_runs,
                  gtr_error *err)
{
    size_t R = (size_t)d->size, cap = R * kk + 1;
    size_t *at = calloc(R * 2, sizeof *at), *end = calloc(R * 2, sizeof *end);
    cand *c[2] = {malloc(cap * sizeof(cand)), malloc(cap * sizeof(cand))};
    gtr_ranked_doc *l[2] = {malloc(cap * sizeof(gtr_ranked_doc)), malloc(cap * sizeof(gtr_ranked_doc))};
    gtr_ranked_doc *fused = malloc((o->k + 1) * sizeof *fused);
    bool mem = at && end && c[0] && c[1] && l[0] && l[1] && fused;
    bool run = mem;
    for (size_t i = 0; run && i < n_runs; i++) run = (runs[i] = gtr_run_new(err)) != NULL;
    if (!mem) gtr_error_set(err, GTR_ERR_NOMEM, "out of memory merging the ranks' hits");
    if (!run) goto fail;
    for (size_t r = 0, off = 0; run && r < R; off += (size_t)counts[r], r++) {
        size_t pos = off, stop = off + (size_t)counts[r];
        for (int li = 0; li < n_lists; li++) {
            uint64_t len;
            if (pos + sizeof len > stop) goto bad;
            memcpy(&len, all + pos, sizeof len), pos += sizeof len;
            if (len > stop - pos) goto bad;
            at[2 * r + (size_t)li] = pos, end[2 * r + (size_t)li] = pos + len, pos += len;
        }
    }
    double w[2] = {o->alpha, 1 - o->alpha};
    gtr_fusion_options fo = o->fusion;
    if (fo.method == GTR_FUSION_INTERP) fo.weights = w;
    for (size_t i = 0; run && i < gtr_queries_count(q); i++) {
        size_t n[2] = {0, 0};
        for (int li = 0; li < n_lists; li++) {
            for (size_t r = 0; r < R; r++)
                if (!read_list(all, &at[2 * r + (size_t)li], end[2 * r + (size_t)li], c[li], &n[li], cap)) goto bad;
            qsort(c[li], n[li], sizeof(cand), cand_cmp);
            if (n[li] > kk) n[li] = kk;
        }
        size_t qlen;
        const char *qid = gtr_queries_id(q, i, &qlen);
        for (size_t ri = 0; ri < n_runs; ri++)
            if (gtr_run_add_query(runs[ri], qid, qlen, err)) goto fail;
        if (n_lists == 1) {
            for (size_t ri = 0; ri < n_runs; ri++)
                for (size_t j = 0; j < n[0] && j < o->k && j < max_rank[ri]; j++)
                    if (gtr_run_add(runs[ri], qid, qlen, c[0][j].id, c[0][j].len, c[0][j].score, err)) goto fail;
            continue;
        }
        for (int li = 0; li < 2; li++)
            for (size_t j = 0; j < n[li]; j++) l[li][j] = (gtr_ranked_doc){c[li][j].id, c[li][j].len, c[li][j].score};
        const gtr_ranked_doc *lists[2] = {l[0], l[1]};
        size_t nf;
        if (gtr_hits_fuse(lists, n, 2, &fo, o->k, fused, &nf, err)) goto fail;
        for (size_t ri = 0; ri < n_runs; ri++)
            for (size_t j = 0; j < nf && j < max_rank[ri]; j++)
                if (gtr_run_add(runs[ri], qid, qlen, fused[j].id, fused[j].id_len, fused[j].score, err)) goto fail;
    }
    goto done;
bad:
    gtr_error_set(err, GTR_ERR_INTERNAL, "the hits gathered from the ranks are malformed");
fail:
    for (size_t i = 0; i < n_runs; i++) gtr_run_free(runs[i]), runs[i] = NULL;
    run = false;
done:
    free(at), free(end), free(c[0]), free(c[1]), free(l[0]), free(l[1]), free(fused);
    return run;
}

/* split docs with ann: each of this rank's shards searched through its IVF file (its part of
 * the queries when ranks share the shard), each query's lists merged into hits[qi * kk ...] by
 * score, equal scores by id descending; the other queries get no hits */
static int shard_ann_lists(const dist_parts *p, const gtr_queries *q, const gtr_retrieve_options *o, size_t kk,
                           gtr_hit *hits, size_t *n_hits, gtr_error *err)
{
    size_t nq = gtr_queries_count(q), lo = nq * p->q_part / p->q_parts, hi = nq * (p->q_part + 1) / p->q_parts;
    size_t m = hi - lo, S = (size_t)p->n_sh;
    gtr_hit *sh = calloc(S * m * kk + 1, sizeof *sh);
    size_t *sn = calloc(S * m + 1, sizeof *sn);
    cand *c = malloc((S * kk + 1) * sizeof *c);
    int bad = !sh || !sn || !c;
    if (bad) gtr_error_set(err, GTR_ERR_NOMEM, "out of memory for %zu queries x %zu hits x %zu shards", m, kk, S);
    /* the queries are encoded once (in the retriever's batches; a vector does not depend on its
     * batch) and every shard's search is given the vectors */
    enum { QCHUNK = 1024 };
    size_t dim = (size_t)gtr_model_dim(p->parts.model), batch = o->batch ? o->batch : 64;
    float *vecs = bad ? NULL : malloc(((m < QCHUNK ? m : QCHUNK) * dim + 1) * sizeof *vecs);
    if (!bad && !vecs) bad = gtr_error_set(err, GTR_ERR_NOMEM, "out of memory for the query vectors") != GTR_OK;
    const char *const *texts = gtr_queries_texts(q);
    const size_t *lens = gtr_queries_text_lens(q);
    gtr_retrieve_options po = *o;
    po.method = GTR_RETRIEVE_DENSE;
    po.k = kk;
    po.doc_begin = po.doc_end = 0;
    po.vectors = vecs;
    for (size_t c0 = 0; !bad && c0 < m; c0 += QCHUNK) {
        size_t cn = m - c0 < QCHUNK ? m - c0 : QCHUNK, at = lo + c0;
        for (size_t b = 0; !bad && b < cn; b += batch)
            bad = gtr_model_encode(p->parts.model, texts + at + b, lens + at + b, cn - b < batch ? cn - b : batch,
                                   vecs + b * dim, err) != GTR_OK;
        po.skip_ids = o->skip_ids ? o->skip_ids + at : NULL;
        for (size_t i = 0; !bad && i < S; i++)
            bad = gtr_retriever_search(p->sh_rt[i], texts + at, lens + at, cn, &po, sh + (i * m + c0) * kk,
                                       sn + i * m + c0, err) != GTR_OK;
    }
    free(vecs);
    for (size_t qi = 0; !bad && qi < m; qi++) {
        size_t n = 0;
        for (size_t i = 0; i < S; i++)
            for (size_t j = 0; j < sn[i * m + qi]; j++) {
                const gtr_hit *h = &sh[(i * m + qi) * kk + j];
                c[n++] = (cand){h->score, h->id, (uint32_t)h->id_len};
            }
        qsort(c, n, sizeof *c, cand_cmp);
        if (n > kk) n = kk;
        for (size_t j = 0; j < n; j++)
            hits[(lo + qi) * kk + j] = (gtr_hit){SIZE_MAX, c[j].score, c[j].id, c[j].len};
        n_hits[lo + qi] = n;
    }
    free(sh), free(sn), free(c);
    return bad;
}

/* this rank's list of one method over its documents: kk hits per query (the query's own id
 * left out when o->skip_ids), packed and appended to *buf after its u64 length */
static int local_list(const dist_parts *p, const gtr_queries *q, const gtr_retrieve_options *o, bool bm25, size_t kk,
                      char **buf, size_t *len, gtr_error *err)
{
    size_t nq = gtr_queries_count(q);
    gtr_hit *hits = calloc(nq * kk + 1, sizeof *hits);
    size_t *n_hits = calloc(nq + 1, sizeof *n_hits);
    int bad = !hits || !n_hits;
    if (bad) {
        gtr_error_set(err, GTR_ERR_NOMEM, "out of memory for %zu queries x %zu hits", nq, kk);
    } else if (bm25) {
        gtr_bm25_search_options bo = gtr_bm25_default_search_options(); /* as the retriever searches */
        bo.pool = p->pool;
        bo.skip_ids = o->skip_ids;
        bo.doc_begin = p->bm25_begin;
        bo.doc_end = p->bm25_end;
        bad = p->bm25_end > p->bm25_begin && gtr_bm25_search(p->parts.bm25, gtr_queries_texts(q), gtr_queries_text_lens(q),
                                                              nq, kk, &bo, hits, n_hits, err);
    } else if (p->n_sh) {
        bad = shard_ann_lists(p, q, o, kk, hits, n_hits, err);
    } else {
        gtr_retrieve_options po = *o;
        po.method = GTR_RETRIEVE_DENSE;
        po.k = kk;
        po.doc_begin = p->doc_begin;
        po.doc_end = p->doc_end;
        bad = p->doc_end > p->doc_begin &&
              gtr_retriever_search(p->parts.rt, gtr_queries_texts(q), gtr_queries_text_lens(q), nq, &po, hits, n_hits, err);
    }
    char *mine = NULL;
    size_t mine_len = 0;
    bad = bad || pack(hits, n_hits, nq, kk, &mine, &mine_len, err);
    char *grown = bad ? NULL : realloc(*buf, *len + sizeof(uint64_t) + mine_len + 1);
    if (!bad && !grown) bad = gtr_error_set(err, GTR_ERR_NOMEM, "out of memory") != GTR_OK;
    if (!bad) {
        uint64_t l = mine_len;
        memcpy(grown + *len, &l, sizeof l);
        memcpy(grown + *len + sizeof l, mine, mine_len);
        *buf = grown;
        *len += sizeof l + mine_len;
    }
    free(mine);
    free(hits);
    free(n_hits);
    return bad;
}

int dist_search_docs(const dist_ctx *d, const dist_parts *p, const gtr_queries *q, const gtr_retrieve_options *o,
                     const size_t *max_rank, gtr_run **runs, size_t n_runs)
{
    gtr_error err;
    char *mine = NULL, *all = NULL;
    size_t mine_len = 0;
    int *counts = NULL;
    int rc = 1;
    for (size_t i = 0; i < n_runs; i++) runs[i] = NULL;
    gtr_retrieval_method m = o->method;
    /* hybrid: each method's best max(depth, k) over the whole collection, then fusion (the retriever's depth) */
    size_t kk = m == GTR_RETRIEVE_HYBRID ? (o->depth > o->k ? o->depth : o->k) : o->k;
    int n_lists = m == GTR_RETRIEVE_HYBRID ? 2 : 1;
    int ok = 1;
    if (m != GTR_RETRIEVE_BM25 && local_list(p, q, o, false, kk, &mine, &mine_len, &err)) ok = 0;
    if (ok && m != GTR_RETRIEVE_DENSE && local_list(p, q, o, true, kk, &mine, &mine_len, &err)) ok = 0;
    if (!ok) dist_errorf(d, 1, "searching documents %zu..%zu (BM25: %zu..%zu) failed: %s", p->doc_begin + 1, p->doc_end,
                         p->bm25_begin + 1, p->bm25_end, err.message);
    if (gather(d, ok, mine, mine_len, &all, &counts, &(size_t){0})) goto done;
    if (d->rank == 0 && !merge(d, q, all, counts, n_lists, kk, o, max_rank, runs, n_runs, &err)) {
        dist_errorf(d, 1, "%s", err.message);
        goto done;
    }
    rc = 0;
done:
    free(all), free(counts);
    free(mine);
    return rc;
}
