/* dist_search.c — queries split across ranks, hits gathered on rank 0 in query order. */
#include "dist_search.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>

/* this rank's hits, serialised: per query u32 count, then per hit f64 score, u32 id length, id */
static int pack(const gtr_hit *hits, const size_t *n_hits, size_t nq, size_t k, gtr_buf *b, gtr_error *err)
{
    for (size_t i = 0; i < nq; i++) {
        uint32_t n = (uint32_t)(n_hits[i] < k ? n_hits[i] : k);
        if (gtr_buf_append(b, &n, sizeof n, err)) return 1;
        for (size_t j = 0; j < n; j++) {
            const gtr_hit *h = &hits[i * k + j];
            uint32_t len = (uint32_t)h->id_len;
            if (gtr_buf_append(b, &h->score, sizeof h->score, err) || gtr_buf_append(b, &len, sizeof len, err) ||
                gtr_buf_append(b, h->id, len, err))
                return 1;
        }
    }
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
    gtr_seterr(err, GTR_ERR_INTERNAL, "the hits gathered from the ranks are malformed");
fail:
    gtr_run_free(run);
    return NULL;
}

int dist_search(const dist_ctx *d, gtr_retriever *rt, const gtr_queries *q, const gtr_retrieve_options *o,
                const size_t *max_rank, gtr_run **runs, size_t n_runs)
{
    gtr_error err;
    gtr_buf mine = {0};
    char *all = NULL;
    int *counts = NULL, *displs = NULL;
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
    ok = ok && pack(hits, n_hits, hi - lo, o->k, &mine, &err) == 0 && mine.len < (size_t)1 << 31;
    if (!ok) dist_errorf(d, 1, "searching queries %zu..%zu failed", lo + 1, hi);
    int len = ok ? (int)mine.len : -1;
    if (d->rank == 0 && (!(counts = calloc((size_t)d->size, sizeof *counts)) ||
                         !(displs = calloc((size_t)d->size, sizeof *displs)))) {
        dist_errorf(d, 1, "out of memory");
        goto done; /* the others then fail in the gather: MPI_Abort ends them */
    }
    if (MPI_Gather(&len, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        goto done;
    }
    uint64_t verdict = ok;
    size_t total = 0;
    if (d->rank == 0) {
        for (int r = 0; r < d->size; r++) {
            if (counts[r] < 0) verdict = 0;
            displs[r] = (int)total;
            total += counts[r] > 0 ? (size_t)counts[r] : 0;
        }
        if (verdict && (total >= (size_t)1 << 31 || !(all = malloc(total + 1)))) verdict = 0;
        if (!verdict) dist_errorf(d, 1, "a rank failed (its message is above) or the run is too large; nothing written");
    }
    MPI_Bcast(&verdict, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (!verdict) goto done;
    if (MPI_Gatherv(mine.data ? (void *)mine.data : (void *)&len, ok ? len : 0, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        goto done;
    }
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
    free(all), free(counts), free(displs);
    gtr_buf_free(&mine);
    free(hits);
    free(n_hits);
    return rc;
}
