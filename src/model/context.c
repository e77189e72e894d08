/* context.c — gtr_context: what one encode call needs besides the model (the encoder's
 * activation arena, the schedule, tokenizer output, the thread pool it computes on, the
 * interrupt flag). The model is only read, so any number of contexts over one model encode at
 * once, each from its own thread; the weights exist once. Texts are embedded in chunks of
 * packed tokens, and a text's vector never depends on the other texts of a call or on the
 * thread count: the encoder treats the rows of each text independently (see encoder.c). */
#include "model/model_internal.h"
#include "cuda/cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gtr_context {
    const gtr_model *m;
    gtr_pool *pool; /* own, the caller's, or the model's (see gtr_context_create) */
    bool own_pool;
    /* reusable per-call buffers (grow-only: a steady stream of batches allocates nothing) */
    gtr_t5_scratch scratch;
    float *pooled, *hout; /* per chunk: pooled states, head outputs */
    size_t pooled_cap;    /* texts */
    size_t *order;        /* texts by length (longest first) */
    const int32_t **cids; /* ids / lengths of the chunk's texts in that order */
    size_t *clens;
    size_t sched_cap;
    size_t *len_count;    /* [max_len + 2]: counting sort by length */
    gtr_ids *tok_ids;
    gtr_status *tok_status;
    const int32_t **tok_ptr;
    size_t *tok_len;
    size_t tok_cap;
    /* tests */
    gtr_probe_fn probe;
    void *probe_user;
};

/* Activation memory per chunk of packed tokens (a chunk always holds at least one whole
 * text): a quarter of the weights, within [16, 256] MiB: big enough for efficient GEMMs (a
 * few thousand rows for gtr-t5-base), small enough that peak memory stays near the weights. */
#define CHUNK_MIN_BYTES ((size_t)16 << 20)
#define CHUNK_MAX_BYTES ((size_t)256 << 20)
#define CHUNK_MAX_TOKENS ((size_t)8192)

size_t gtr_chunk_tokens(const gtr_t5_config *c, size_t weight_bytes, int max_len)
{
    size_t chunk_bytes = GTR_MIN(CHUNK_MAX_BYTES, GTR_MAX(CHUNK_MIN_BYTES, weight_bytes / 4));
    size_t per_token = sizeof(float) * gtr_t5_token_floats(c);
    return GTR_MAX((size_t)max_len, GTR_MIN(CHUNK_MAX_TOKENS, chunk_bytes / per_token));
}

gtr_context_options gtr_context_default_options(void)
{
    gtr_context_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_context *gtr_context_create(const gtr_model *m, const gtr_context_options *opts, gtr_error *err)
{
    if (!m) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_context_create: no model");
        return NULL;
    }
    gtr_context_options o = gtr_context_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_context_create", err)) return NULL;
    gtr_context *x = gtr_xcalloc(1, sizeof *x, "encode context", err);
    if (!x) return NULL;
    x->m = m;
    if (o.pool) {
        x->pool = o.pool;
    } else if (o.n_threads > 0) {
        if (!(x->pool = gtr_pool_create(o.n_threads, err))) {
            free(x);
            return NULL;
        }
        x->own_pool = true;
    } else {
        /* the model's pool: while another context holds it, gtr_pool_for runs this one's
         * loops on the calling thread (same results, fewer threads) */
        x->pool = m->pool;
    }
    return x;
}

void gtr_context_free(gtr_context *x)
{
    if (!x) return;
    if (x->own_pool) gtr_pool_free(x->pool);
    gtr_t5_scratch_free(&x->scratch);
    gtr_free_aligned(x->pooled);
    gtr_free_aligned(x->hout);
    free(x->order);
    free(x->cids);
    free(x->clens);
    free(x->len_count);
    for (size_t i = 0; i < x->tok_cap; i++) gtr_ids_free(&x->tok_ids[i]);
    free(x->tok_ids);
    free(x->tok_status);
    free(x->tok_ptr);
    free(x->tok_len);
    free(x);
}

const gtr_model *gtr_context_model(const gtr_context *x) { return x ? x->m : NULL; }

void gtr_context_set_probe(gtr_context *x, gtr_probe_fn fn, void *user)
{
    x->probe = fn;
    x->probe_user = user;
}

void gtr_context_set_interrupt(gtr_context *x, const atomic_int *flag) { x->scratch.stop = flag; }

/* Probes see the index of the text in the whole call, not its place in the chunk. */
typedef struct {
    gtr_probe_fn fn;
    void *user;
    const size_t *order; /* chunk position -> index in the call */
} probe_shift;

static void probe_trampoline(void *user, size_t text, const char *name, const float *x, size_t rows,
                             size_t cols)
{
    probe_shift *p = user;
    p->fn(p->user, p->order[text], name, x, rows, cols);
}

/* Grow-only per-call buffers: the schedule for n texts, head buffers for chunks of at most
 * k texts. */
static gtr_status reserve_schedule(gtr_context *x, size_t n, size_t k, gtr_error *err)
{
    const gtr_model *m = x->m;
    if (!x->len_count &&
        !(x->len_count = gtr_xmalloc(((size_t)m->max_len + 2) * sizeof *x->len_count, "length counts", err)))
        return GTR_ERR_NOMEM;
    if (n > x->sched_cap) {
        free(x->order);
        free(x->cids);
        free(x->clens);
        x->sched_cap = 0;
        x->order = gtr_xmalloc(n * sizeof *x->order, "text order", err);
        x->cids = gtr_xmalloc(n * sizeof *x->cids, "text order", err);
        x->clens = gtr_xmalloc(n * sizeof *x->clens, "text order", err);
        if (!x->order || !x->cids || !x->clens) return GTR_ERR_NOMEM;
        x->sched_cap = n;
    }
    if (k > x->pooled_cap) {
        gtr_free_aligned(x->pooled);
        gtr_free_aligned(x->hout);
        x->pooled_cap = 0;
        x->pooled = gtr_malloc_aligned(k * (size_t)m->cfg.t5.d_model * sizeof(float), err);
        x->hout = gtr_malloc_aligned(k * (size_t)m->head.d_out * sizeof(float), err);
        if (!x->pooled || !x->hout) return GTR_ERR_NOMEM;
        x->pooled_cap = k;
    }
    return GTR_OK;
}

/* Texts by length, longest first, ties in call order (a stable counting sort: lengths are at
 * most max_len). Chunks then hold texts of similar length, and within a chunk the longest
 * attention tasks are handed out first, so the threads finish together. Only the schedule
 * changes: a text's vector does not depend on its neighbours (see encoder.c). */
static void sort_by_length(gtr_context *x, const size_t *n_ids, size_t n)
{
    size_t L = (size_t)x->m->max_len, *cnt = x->len_count;
    memset(cnt, 0, (L + 2) * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[L - n_ids[i]]++; /* bucket 0 = longest */
    size_t pos = 0;
    for (size_t b = 0; b <= L; b++) {
        size_t c = cnt[b];
        cnt[b] = pos;
        pos += c;
    }
    for (size_t i = 0; i < n; i++) x->order[cnt[L - n_ids[i]]++] = i;
}

gtr_status gtr_context_encode_ids(gtr_context *x, const int32_t *const *ids, const size_t *n_ids,
                                  size_t n, float *out, gtr_error *err)
{
    if (!x || (n && (!ids || !n_ids || !out)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_context_encode_ids: NULL argument");
    const gtr_model *m = x->m;
    for (size_t i = 0; i < n; i++) {
        if (n_ids[i] == 0 || !ids[i])
            return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                              "text %zu: no token ids (a text has at least </s>)", i);
        if (n_ids[i] > (size_t)m->max_len)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text %zu: %zu token ids exceed max_len %d",
                              i, n_ids[i], m->max_len);
        for (size_t t = 0; t < n_ids[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= m->cfg.t5.vocab_size)
                return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                                  "text %zu: token id %d at position %zu is outside the vocabulary "
                                  "(%d ids)", i, (int)ids[i][t], t, m->cfg.t5.vocab_size);
    }
    if (n == 0) return GTR_OK;
    if (m->cuda) return gtr_cuda_encode(m->cuda, ids, n_ids, n, out, err);
    size_t budget = gtr_chunk_tokens(&m->cfg.t5, gtr_model_weight_bytes(m), m->max_len);
    /* every text has a token, so a chunk holds at most budget texts */
    gtr_status st = reserve_schedule(x, n, GTR_MIN(n, budget), err);
    if (st) return st;
    sort_by_length(x, n_ids, n);
    size_t dout = (size_t)m->head.d_out;
    probe_shift ps = {x->probe, x->probe_user, NULL};
    for (size_t i0 = 0; i0 < n;) {
        /* the next chunk: whole texts, in length order, while the token budget lasts */
        size_t i1 = i0, tokens = 0;
        while (i1 < n && (i1 == i0 || tokens + n_ids[x->order[i1]] <= budget)) {
            size_t t = x->order[i1];
            x->cids[i1 - i0] = ids[t];
            x->clens[i1 - i0] = n_ids[t];
            tokens += n_ids[t];
            i1++;
        }
        size_t k = i1 - i0;
        float *hidden;
        ps.order = x->order + i0;
        st = gtr_t5_forward(&m->t5, m->kern, x->pool, &x->scratch, x->cids, x->clens, k, &hidden,
                            x->probe ? probe_trampoline : NULL, &ps, err);
        if (st) {
            if (n > 1) gtr_error_prefix(err, "a chunk of %zu texts", k);
            return st;
        }
        gtr_head_forward(&m->head, m->kern, x->pool, hidden, x->clens, x->scratch.offs, k, x->pooled,
                         x->hout, x->probe ? probe_trampoline : NULL, &ps);
        /* a non-finite vector is an error, never an output (finite weights are checked at load,
         * but activations can still overflow) */
        for (size_t j = 0; j < k * dout; j++)
            if (!isfinite(x->hout[j]))
                return gtr_seterr(err, GTR_ERR_INTERNAL,
                                  "text %zu: the vector is not finite (the model's activations "
                                  "overflowed)", x->order[i0 + j / dout]);
        for (size_t j = 0; j < k; j++)
            memcpy(out + x->order[i0 + j] * dout, x->hout + j * dout, dout * sizeof(float));
        i0 = i1;
    }
    return GTR_OK;
}

typedef struct {
    gtr_context *x;
    const char *const *texts;
    const size_t *lens;
    gtr_status *status;
} tok_job;

static void tok_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    tok_job *j = ctx;
    size_t len = j->lens ? j->lens[i] : strlen(j->texts[i]);
    j->status[i] = gtr_tokenizer_encode(j->x->m->tok, j->texts[i], len, j->x->m->max_len, 1, &j->x->tok_ids[i], NULL);
}

gtr_status gtr_context_encode(gtr_context *x, const char *const *texts, const size_t *lens, size_t n,
                              float *out, gtr_error *err)
{
    if (!x || (n && (!texts || !out)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_context_encode: NULL argument");
    const gtr_model *m = x->m;
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text %zu is NULL", i);
    if (n > x->tok_cap) { /* grow-only, like the rest of the per-call state */
        gtr_ids *nt = gtr_xrealloc(x->tok_ids, n * sizeof *nt, "token ids", err);
        if (!nt) return GTR_ERR_NOMEM;
        memset(nt + x->tok_cap, 0, (n - x->tok_cap) * sizeof *nt);
        x->tok_ids = nt;
        x->tok_cap = n;
        free(x->tok_status);
        free(x->tok_ptr);
        free(x->tok_len);
        x->tok_status = gtr_xmalloc(n * sizeof *x->tok_status, "statuses", err);
        x->tok_ptr = gtr_xmalloc(n * sizeof *x->tok_ptr, "ids", err);
        x->tok_len = gtr_xmalloc(n * sizeof *x->tok_len, "ids", err);
        if (!x->tok_status || !x->tok_ptr || !x->tok_len) {
            free(x->tok_status);
            free(x->tok_ptr);
            free(x->tok_len);
            x->tok_status = NULL;
            x->tok_ptr = NULL;
            x->tok_len = NULL;
            /* keep tok_cap consistent with tok_ids; the arrays are re-made next call */
            x->tok_cap = 0;
            for (size_t i = 0; i < n; i++) gtr_ids_free(&x->tok_ids[i]);
            free(x->tok_ids);
            x->tok_ids = NULL;
            return GTR_ERR_NOMEM;
        }
    }
    if (n == 0) return GTR_OK;
    /* The tokenizer is immutable: tokenize in parallel. */
    memset(x->tok_status, 0, n * sizeof *x->tok_status);
    tok_job j = {x, texts, lens, x->tok_status};
    gtr_pool_for(x->pool, n, tok_task, &j);
    for (size_t i = 0; i < n; i++) {
        if (x->tok_status[i]) { /* again, serially, for the message */
            size_t len = lens ? lens[i] : strlen(texts[i]);
            gtr_status st = gtr_tokenizer_encode(m->tok, texts[i], len, m->max_len, 1, &x->tok_ids[i], err);
            if (!st) st = gtr_seterr(err, x->tok_status[i], "tokenizer failed");
            gtr_error_prefix(err, "text %zu", i);
            return st;
        }
        x->tok_ptr[i] = x->tok_ids[i].ids;
        x->tok_len[i] = x->tok_ids[i].n;
    }
    return gtr_context_encode_ids(x, x->tok_ptr, x->tok_len, n, out, err);
}
