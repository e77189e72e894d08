/* replicas.c — data-parallel training: which rank back-propagates which micro-batches, and the
 * gradient sum that makes N ranks give the single process's bits.
 *
 * Floating-point addition is not associative, so an all-reduce (ring or tree, whose order
 * depends on the rank count) cannot reproduce the single-process result. The trainer instead
 * fixes one order for every run: the step's gradient is ((g_0 + g_1) + g_2) + ... over its
 * micro-batches, each g_c computed into a zeroed buffer. Across ranks that order is a chain:
 * rank r receives the sum of the micro-batches before its own from rank r-1, adds its own in
 * order and sends the result to rank r+1; the last rank broadcasts the total. Sent in segments,
 * the chain pipelines: each rank passes on segment s while the next adds segment s-1, so it
 * moves about as many bytes per rank as a ring all-reduce (see docs/SCALING.md). */
#include "train/train_internal.h"

#include <stdlib.h>
#include <string.h>

/* floats per send / receive / broadcast (1 MiB): the chain takes N + S - 1 segment times for
 * S segments on N ranks, so segments must be small for the pipeline to fill (GTR-Base on 256
 * ranks: 696 segments of 84 us at 12.5 GB/s, against 2 x 35 ms for the bytes themselves), yet
 * large enough that per-message latency (a few us) does not matter */
#define SEGMENT ((size_t)1 << 18)
#define FOLD_BLOCK ((size_t)1 << 16)

void gtr_tr_rank_chunks(size_t C, int r, int N, size_t *lo, size_t *hi)
{
    *lo = (C * (size_t)r + (size_t)N - 1) / (size_t)N;
    *hi = (C * (size_t)(r + 1) + (size_t)N - 1) / (size_t)N;
}

typedef struct {
    float *S;
    const float *g;
    size_t n;
} fold_job;

static void fold_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    fold_job *j = ctx;
    size_t a = i * FOLD_BLOCK, b = GTR_MIN(j->n, a + FOLD_BLOCK);
    for (size_t k = a; k < b; k++) j->S[k] += j->g[k];
}

void gtr_tr_fold(gtr_pool *pool, float *S, const float *g, size_t n)
{
    fold_job j = {S, g, n};
    gtr_pool_for(pool, (n + FOLD_BLOCK - 1) / FOLD_BLOCK, fold_task, &j);
}

gtr_status gtr_tr_reserve_grads(gtr_trainer *t, size_t k, gtr_error *err)
{
    if (k <= t->n_cgrad) return GTR_OK;
    float **v = gtr_xrealloc(t->cgrad, k * sizeof *v, "gradient buffers", err);
    if (!v) return GTR_ERR_NOMEM;
    t->cgrad = v;
    for (; t->n_cgrad < k; t->n_cgrad++)
        if (!(t->cgrad[t->n_cgrad] = gtr_malloc_aligned(t->m.n_params * sizeof(float), err)))
            return gtr_error_prefix(err, "a gradient buffer per micro-batch (%zu)", k);
    return GTR_OK;
}

static gtr_status comm_failed(const gtr_trainer *t, int peer, const char *what, gtr_error *err)
{
    return gtr_seterr(err, GTR_ERR_IO, "rank %d: %s rank %d failed", t->comm.rank, what, peer);
}

gtr_status gtr_tr_reduce_grads(gtr_trainer *t, size_t k, gtr_error *err)
{
    const gtr_train_comm *c = &t->comm;
    int r = c->rank, N = c->n_ranks;
    float *S = t->m.g;
    size_t n = t->m.n_params;
    for (size_t off = 0; off < n; off += SEGMENT) {
        size_t len = GTR_MIN(SEGMENT, n - off);
        if (r > 0) {
            if (c->recv(c->user, r - 1, S + off, len)) return comm_failed(t, r - 1, "receiving gradients from", err);
            for (size_t i = 0; i < k; i++) gtr_tr_fold(t->pool, S + off, t->cgrad[i] + off, len);
        }
        if (r < N - 1 && c->send(c->user, r + 1, S + off, len))
            return comm_failed(t, r + 1, "sending gradients to", err);
    }
    for (size_t off = 0; off < n; off += SEGMENT)
        if (c->bcast(c->user, N - 1, S + off, GTR_MIN(SEGMENT, n - off)))
            return comm_failed(t, N - 1, "receiving the summed gradients from", err);
    return GTR_OK;
}

gtr_status gtr_tr_allgather(gtr_trainer *t, const void *mine, void *all, const size_t *counts,
                            gtr_error *err)
{
    const gtr_train_comm *c = &t->comm;
    if (c->allgather(c->user, mine, counts[c->rank], all, counts))
        return gtr_seterr(err, GTR_ERR_IO, "rank %d: exchanging embeddings with the other ranks failed", c->rank);
    return GTR_OK;
}

gtr_status gtr_trainer_set_comm(gtr_trainer *t, const gtr_train_comm *comm, gtr_error *err)
{
    if (!t) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_set_comm: NULL trainer");
    gtr_train_comm c = {.size = sizeof c, .rank = 0, .n_ranks = 1};
    if (comm) {
        if (comm->size < sizeof c)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_set_comm: struct size %zu, expected %zu",
                              comm->size, sizeof c);
        if (comm->n_ranks < 1 || comm->rank < 0 || comm->rank >= comm->n_ranks)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_set_comm: rank %d of %d", comm->rank,
                              comm->n_ranks);
        if (!comm->allgather || !comm->send || !comm->recv || !comm->bcast)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_set_comm: a collective is missing");
        c = *comm;
        c.size = sizeof c;
    }
    t->comm = c;
    return GTR_OK;
}

uint64_t gtr_trainer_fingerprint(const gtr_trainer *t)
{
    if (!t) return 0;
    uint64_t v[9] = {t->init_hash, t->data->fingerprint, gtr_tr_options_hash(&t->o), t->step, t->cursor,
                     t->rng.s[0], t->rng.s[1], t->rng.s[2], t->rng.s[3]};
    return gtr_fnv1a64(v, sizeof v, GTR_FNV_SEED);
}
