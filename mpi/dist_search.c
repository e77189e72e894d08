/* dist_search.c — queries split across ranks, hits gathered on rank 0 in query order. */
#include "dist_search.h"

#include <stdlib.h>
#include <string.h>

static void dist_parts_fail(const void *user, const char *cmd, const gtr_error *err)
{
    (void)cmd;
    dist_errorf(user, 0, "%s", err->message);
}

bool dist_parts_open(const dist_ctx *d, dist_parts *p, const char *index_path, const char *bm25_path,
                     const char *model_dir, gtr_retrieval_method method, int threads, gtr_pool *pool)
{
    gtr_error err;
    p->parts.fail = dist_parts_fail;
    p->parts.fail_user = d;
    if (index_path && p->split_docs &&
        !(p->parts.dense = gtr_index_open_part(index_path, d->rank, d->size, 0, pool, &p->doc_begin, &p->doc_end,
                                               &p->docs, &err)))
        return dist_errorf(d, 0, "%s", err.message);
    cli_parts_want w = {.index = index_path, .bm25 = bm25_path, .model_dir = model_dir, .method = method,
                        .threads = threads};
    if (!cli_parts_open(d->cmd, &p->parts, &w, pool)) return false;
    if (p->parts.dense && !p->split_docs) p->doc_end = p->docs = gtr_index_count(p->parts.dense);
    return true;
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

/* rank 0: each query's hits from every rank's segment, merged into the best k */
static gtr_run *merge(const dist_ctx *d, const gtr_queries *q, const char *all, const int *counts, size_t k,
                      gtr_error *err)
{
    size_t *at = calloc((size_t)d->size, sizeof *at), *end = calloc((size_t)d->size, sizeof *end);
    cand *c = malloc(((size_t)d->size * k + 1) * sizeof *c);
    gtr_run *run = at && end && c ? gtr_run_new(err) : NULL;
    if (!at || !end || !c) gtr_error_set(err, GTR_ERR_NOMEM, "out of memory merging the ranks' hits");
    for (int r = 0, off = 0; run && r < d->size; off += counts[r], r++) at[r] = (size_t)off, end[r] = (size_t)off + (size_t)counts[r];
    for (size_t i = 0; run && i < gtr_queries_count(q); i++) {
        size_t n = 0;
        for (int r = 0; r < d->size; r++) {
            uint32_t m;
            if (at[r] + sizeof m > end[r]) goto bad;
            memcpy(&m, all + at[r], sizeof m), at[r] += sizeof m;
            for (uint32_t j = 0; j < m; j++, n++) {
                if (n >= (size_t)d->size * k || at[r] + sizeof(double) + sizeof(uint32_t) > end[r]) goto bad;
                memcpy(&c[n].score, all + at[r], sizeof(double)), at[r] += sizeof(double);
                memcpy(&c[n].len, all + at[r], sizeof(uint32_t)), at[r] += sizeof(uint32_t);
                if (at[r] + c[n].len > end[r]) goto bad;
                c[n].id = all + at[r], at[r] += c[n].len;
            }
        }
        qsort(c, n, sizeof *c, cand_cmp);
        size_t qlen;
        const char *qid = gtr_queries_id(q, i, &qlen);
        if (gtr_run_add_query(run, qid, qlen, err)) goto fail;
        for (size_t j = 0; j < n && j < k; j++)
            if (gtr_run_add(run, qid, qlen, c[j].id, c[j].len, c[j].score, err)) goto fail;
    }
    goto done;
bad:
    gtr_error_set(err, GTR_ERR_INTERNAL, "the hits gathered from the ranks are malformed");
fail:
    gtr_run_free(run);
    run = NULL;
done:
    free(at), free(end), free(c);
    return run;
}

int dist_search_docs(const dist_ctx *d, const dist_parts *p, const gtr_queries *q, const gtr_retrieve_options *o,
                     gtr_run **run)
{
    gtr_retriever *rt = p->parts.rt;
    gtr_error err;
    char *mine = NULL;
    size_t mine_len = 0;
    char *all = NULL;
    int *counts = NULL;
    int rc = 1;
    *run = NULL;
    size_t nq = gtr_queries_count(q);
    gtr_retrieve_options po = *o;
    po.doc_begin = p->doc_begin;
    po.doc_end = p->doc_end;
    gtr_hit *hits = calloc(nq * o->k + 1, sizeof *hits);
    size_t *n_hits = calloc(nq + 1, sizeof *n_hits);
    int ok = hits && n_hits;
    if (!ok) cli_errorf(d->cmd, 1, "out of memory for %zu queries x %zu hits", nq, o->k);
    else if (po.doc_end > po.doc_begin &&
             gtr_retriever_search(rt, gtr_queries_texts(q), gtr_queries_text_lens(q), nq, &po, hits, n_hits, &err))
        ok = cli_fail(d->cmd, &err) == 0;
    ok = ok && pack(hits, n_hits, nq, o->k, &mine, &mine_len, &err) == 0;
    if (!ok) dist_errorf(d, 1, "searching documents %zu..%zu failed", po.doc_begin + 1, po.doc_end);
    if (gather(d, ok, mine, mine_len, &all, &counts, &(size_t){0})) goto done;
    if (d->rank == 0 && !(*run = merge(d, q, all, counts, o->k, &err))) {
        dist_errorf(d, 1, "%s", err.message);
        goto done;
    }
    rc = 0;
done:
    free(all), free(counts);
    free(mine);
    free(hits);
    free(n_hits);
    return rc;
}
