/* model.c — the public gtr_model_* API: load a sentence-transformers GTR directory (configs,
 * tokenizer, encoder and head weights), then embed texts or token ids in chunks of packed
 * tokens. A text's vector never depends on the other texts of a call: the encoder treats the
 * rows of each text independently (see encoder.c). */
#include "model/model_internal.h"
#include "cuda/cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gtr_model {
    gtr_model_config cfg;
    gtr_t5 t5;
    gtr_head head;
    gtr_tokenizer *tok;
    const gtr_kernels *kern;
    gtr_pool *pool;
    bool own_pool;
    gtr_compute_dtype dtype;
    int max_len;
    uint64_t fingerprint;
    char *describe;
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
    gtr_cuda *cuda;       /* device "cuda[:N]": encodes go to the GPU plugin (src/cuda) */
};

/* Activation memory per chunk of packed tokens (a chunk always holds at least one whole
 * text): a quarter of the weights, within [16, 256] MiB: big enough for efficient GEMMs (a
 * few thousand rows for gtr-t5-base), small enough that peak memory stays near the weights. */
#define CHUNK_MIN_BYTES ((size_t)16 << 20)
#define CHUNK_MAX_BYTES ((size_t)256 << 20)
#define CHUNK_MAX_TOKENS ((size_t)8192)

gtr_model_options gtr_model_default_options(void)
{
    gtr_model_options o;
    memset(&o, 0, sizeof o);
    o.dtype = GTR_DTYPE_F32;
    return o;
}

void gtr_model_free(gtr_model *m)
{
    if (!m) return;
    gtr_cuda_free(m->cuda);
    gtr_t5_free(&m->t5);
    gtr_head_free(&m->head);
    gtr_tokenizer_free(m->tok);
    if (m->own_pool) gtr_pool_free(m->pool);
    gtr_model_config_free(&m->cfg);
    free(m->describe);
    gtr_t5_scratch_free(&m->scratch);
    gtr_free_aligned(m->pooled);
    gtr_free_aligned(m->hout);
    free(m->order);
    free(m->cids);
    free(m->clens);
    free(m->len_count);
    for (size_t i = 0; i < m->tok_cap; i++) gtr_ids_free(&m->tok_ids[i]);
    free(m->tok_ids);
    free(m->tok_status);
    free(m->tok_ptr);
    free(m->tok_len);
    free(m);
}

static const char *dtype_name(gtr_compute_dtype d)
{
    return d == GTR_DTYPE_BF16 ? "BF16" : d == GTR_DTYPE_INT8 ? "INT8" : "F32";
}

/* The storage dtypes of a tensor set, e.g. "F16" or "F32+F16", and its files. */
static void describe_set(gtr_buf *b, const gtr_tensor_set *s, gtr_error *err)
{
    bool seen[GTR_DT_BOOL + 1] = {false};
    for (size_t i = 0; i < s->n; i++) seen[s->t[i].dtype] = true;
    int k = 0;
    for (int d = 0; d <= GTR_DT_BOOL; d++)
        if (seen[d]) gtr_buf_printf(b, err, "%s%s", k++ ? "+" : "", gtr_tensor_dtype_name((gtr_dtype_id)d));
    gtr_buf_printf(b, err, " (");
    for (size_t i = 0; i < s->n_src; i++)
        gtr_buf_printf(b, err, "%s%s", i ? ", " : "", s->src[i].path);
    gtr_buf_printf(b, err, ")");
}

/* 1234567 -> "1,234,567" */
static const char *with_commas(size_t v, char buf[32])
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = '\0';
    return buf;
}

/* Config numbers that change the vectors, folded into the fingerprint before the weights. */
static uint64_t fingerprint_config(const gtr_model_config *c)
{
    char buf[512];
    const gtr_t5_config *t = &c->t5;
    int n = snprintf(buf, sizeof buf,
                     "gtr-fingerprint-v1 %s d%d ff%d kv%d h%d l%d v%d b%d md%d eps%.9g %s msl%d "
                     "dense%d:%d-%d bias%d act%d norm%d",
                     t->model_type, t->d_model, t->d_ff, t->d_kv, t->num_heads, t->num_layers,
                     t->vocab_size, t->num_buckets, t->max_distance, (double)t->eps,
                     t->ff == GTR_FF_GATED_GELU ? "gated-gelu" : "relu", c->max_seq_length,
                     c->has_dense, c->dense_in, c->dense_out, c->dense_bias, (int)c->dense_act,
                     c->normalize);
    return gtr_fnv1a64(buf, (size_t)n, GTR_FNV_SEED);
}

static gtr_model *load_dir(const char *dir, const gtr_model_options *opts, gtr_error *err);

/* A repository id found in the Hugging Face cache loads from its snapshot (hf_cache.c). */
gtr_model *gtr_model_load(const char *dir, const gtr_model_options *opts, gtr_error *err)
{
    char *snap = NULL;
    if (gtr_hf_cache_resolve(dir, &snap, err)) return NULL;
    gtr_model *m = load_dir(snap ? snap : dir, opts, err);
    free(snap);
    return m;
}

static gtr_model *load_dir(const char *dir, const gtr_model_options *opts, gtr_error *err)
{
    gtr_model_options o = opts ? *opts : gtr_model_default_options();
    if (!dir) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "no model directory given");
        return NULL;
    }
    if (o.dtype != GTR_DTYPE_F32 && o.dtype != GTR_DTYPE_BF16 && o.dtype != GTR_DTYPE_INT8 &&
        o.dtype != GTR_DTYPE_AUTO) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown compute dtype %d", (int)o.dtype);
        return NULL;
    }
    if (o.max_len < 0 || o.max_len > (1 << 16)) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "max_len %d is out of range [0, 65536]", o.max_len);
        return NULL;
    }
    gtr_model *m = gtr_xcalloc(1, sizeof *m, "model", err);
    if (!m) return NULL;
    gtr_tensor_set set = {0};
    gtr_buf desc = {0}, sets = {0};
    gtr_status st;
    char *spm = NULL;
    /* the device first: asking for a GPU that is not there fails before the long load */
    int cuda_ordinal;
    if ((st = gtr_cuda_parse_device(o.device, &cuda_ordinal, err)) ||
        (cuda_ordinal >= 0 && (st = gtr_cuda_open(cuda_ordinal, &m->cuda, err))))
        goto fail;
    if ((st = gtr_model_config_read(dir, &m->cfg, err))) goto fail;
    m->dtype = o.dtype;
    m->max_len = o.max_len > 0 ? o.max_len : m->cfg.max_seq_length;

    /* tokenizer: spiece.model beside the Transformer module's config */
    if (!(spm = gtr_path_join(m->cfg.transformer_dir, "spiece.model"))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!gtr_file_exists(spm)) {
        st = gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing file (the SentencePiece tokenizer)", spm);
        goto fail;
    }
    gtr_tokenizer_options to = {.compat = o.spm_compat};
    if (!(m->tok = gtr_tokenizer_load_with(spm, &to, err))) {
        st = err && err->code ? err->code : GTR_ERR_FORMAT;
        goto fail;
    }
    if (gtr_tokenizer_vocab_size(m->tok) > m->cfg.t5.vocab_size) {
        st = gtr_seterr(err, GTR_ERR_MISMATCH,
                        "%s has %d pieces but config.json's vocab_size is %d", spm,
                        gtr_tokenizer_vocab_size(m->tok), m->cfg.t5.vocab_size);
        goto fail;
    }

    if (o.pool) {
        m->pool = o.pool;
    } else {
        if (!(m->pool = gtr_pool_create(o.n_threads, err))) {
            st = err && err->code ? err->code : GTR_ERR_INTERNAL;
            goto fail;
        }
        m->own_pool = true;
    }
    m->kern = gtr_kernels_select();

    /* Encoder, then head: each set's mappings are closed as soon as its weights are
     * converted, so peak memory is the converted weights plus one tensor's pages. */
    uint64_t fp = fingerprint_config(&m->cfg);
    if ((st = gtr_tensor_set_open_dir(&set, m->cfg.transformer_dir, err))) goto fail;
    if (o.dtype == GTR_DTYPE_AUTO) { /* what the first Linear weight is stored as */
        gtr_tensor *q = gtr_tensor_find(&set, "encoder.block.0.layer.0.SelfAttention.q.weight");
        o.dtype = q && q->dtype == GTR_DT_I8 ? GTR_DTYPE_INT8 : q && q->dtype == GTR_DT_BF16 ? GTR_DTYPE_BF16 : GTR_DTYPE_F32;
        if (q) q->used = false; /* only looked at */
        m->dtype = o.dtype;
    }
    if ((st = gtr_mem_check(&set, o.dtype, o.max_memory, dir, err))) goto fail;
    gtr_wtype wt = o.dtype == GTR_DTYPE_BF16 ? GTR_W_BF16 : o.dtype == GTR_DTYPE_INT8 ? GTR_W_INT8
                                                                                       : GTR_W_F32;
    if ((st = gtr_t5_load(&m->t5, &m->cfg.t5, &set, m->kern, wt, m->pool, &fp, err))) goto fail;
    bool has_source_fp = set.has_source_fp;
    uint64_t source_fp = set.source_fp;
    gtr_buf_printf(&sets, err, "encoder ");
    describe_set(&sets, &set, err);
    gtr_tensor_set_free(&set);
    if (m->cfg.has_dense) {
        if ((st = gtr_tensor_set_open_dir(&set, m->cfg.dense_dir, err)) ||
            (st = gtr_head_load(&m->head, &m->cfg, &set, m->kern, m->pool, &fp, err)))
            goto fail;
        gtr_buf_printf(&sets, err, "; dense ");
        describe_set(&sets, &set, err);
        gtr_tensor_set_free(&set);
    } else if ((st = gtr_head_load(&m->head, &m->cfg, NULL, m->kern, m->pool, &fp, err))) {
        goto fail;
    }
    /* a `gtr quantize` copy answers to the fingerprint of the model it was made from */
    m->fingerprint = has_source_fp ? source_fp : fp;

    const gtr_t5_config *c = &m->cfg.t5;
    size_t n_params = m->t5.n_params + m->head.n_params;
    char nb1[32], nb2[32], nb3[32];
    gtr_buf_printf(&desc, err,
                   "architecture: T5 encoder (%s, %s feed-forward) + mean pooling%s%s\n"
                   "shape: d_model %d, d_ff %d, d_kv %d, heads %d (attention width %d), layers %d, "
                   "vocab %d, relative buckets %d / max distance %d, eps %g\n",
                   c->model_type, c->ff == GTR_FF_GATED_GELU ? "gated-gelu" : "relu",
                   m->cfg.has_dense ? " + Dense" : "", m->cfg.normalize ? " + L2 normalize" : "",
                   c->d_model, c->d_ff, c->d_kv, c->num_heads, m->t5.inner, c->num_layers,
                   c->vocab_size, c->num_buckets, c->max_distance, (double)c->eps);
    if (m->cfg.has_dense)
        gtr_buf_printf(&desc, err, "dense: %d -> %d, %s, %s\n", m->cfg.dense_in, m->cfg.dense_out,
                       m->cfg.dense_bias ? "bias" : "no bias",
                       m->cfg.dense_act == GTR_ACT_TANH ? "tanh" : "identity");
    gtr_buf_printf(&desc, err,
                   "output: %d dimensions%s\nparameters: %s (encoder %s, dense %s)\n"
                   "storage: %s\ncompute: %s weights (%.1f MiB), kernels %s, %d threads\n"
                   "max length: %d tokens (max_seq_length %d)\ntokenizer: %s (%d pieces)\n"
                   "fingerprint: %016llx",
                   m->head.d_out, m->cfg.normalize ? ", unit length" : "", with_commas(n_params, nb1),
                   with_commas(m->t5.n_params, nb2), with_commas(m->head.n_params, nb3), sets.data ? sets.data : "", dtype_name(m->dtype),
                   (double)gtr_model_weight_bytes(m) / (1 << 20), gtr_kernels_name(m->kern),
                   gtr_pool_size(m->pool), m->max_len, m->cfg.max_seq_length, spm,
                   gtr_tokenizer_vocab_size(m->tok), (unsigned long long)m->fingerprint);
    if (!desc.data) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (m->cuda) {
        if (m->dtype == GTR_DTYPE_INT8) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "device %s computes in f32 or bf16, not int8",
                            o.device);
            goto fail;
        }
        if ((st = gtr_cuda_attach(m->cuda, &m->cfg, m->dtype == GTR_DTYPE_BF16, m->max_len, m->pool,
                                  err)))
            goto fail;
        char dev[320];
        gtr_cuda_describe(m->cuda, dev, sizeof dev);
        gtr_buf_printf(&desc, err, "\ndevice: %s", dev);
    }
    m->describe = desc.data;
    gtr_buf_free(&sets);
    free(spm);
    return m;
fail:
    gtr_tensor_set_free(&set);
    gtr_buf_free(&desc);
    gtr_buf_free(&sets);
    free(spm);
    gtr_model_free(m);
    (void)st;
    return NULL;
}

int gtr_model_dim(const gtr_model *m) { return m ? m->head.d_out : 0; }
int gtr_model_max_len(const gtr_model *m) { return m ? m->max_len : 0; }
const gtr_tokenizer *gtr_model_tokenizer(const gtr_model *m) { return m ? m->tok : NULL; }
const char *gtr_model_describe(const gtr_model *m) { return m ? m->describe : ""; }
uint64_t gtr_model_fingerprint(const gtr_model *m) { return m ? m->fingerprint : 0; }
int gtr_model_vocab_size(const gtr_model *m) { return m ? m->cfg.t5.vocab_size : 0; }
size_t gtr_model_weight_bytes(const gtr_model *m) { return m ? m->t5.bytes + m->head.bytes : 0; }
size_t gtr_model_n_params(const gtr_model *m) { return m ? m->t5.n_params + m->head.n_params : 0; }
gtr_compute_dtype gtr_model_dtype(const gtr_model *m) { return m ? m->dtype : GTR_DTYPE_F32; }

void gtr_model_set_probe(gtr_model *m, gtr_probe_fn fn, void *user)
{
    m->probe = fn;
    m->probe_user = user;
}

void gtr_model_set_interrupt(gtr_model *m, const atomic_int *flag) { m->scratch.stop = flag; }

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
static gtr_status reserve_schedule(gtr_model *m, size_t n, size_t k, gtr_error *err)
{
    if (!m->len_count &&
        !(m->len_count = gtr_xmalloc(((size_t)m->max_len + 2) * sizeof *m->len_count, "length counts", err)))
        return GTR_ERR_NOMEM;
    if (n > m->sched_cap) {
        free(m->order);
        free(m->cids);
        free(m->clens);
        m->sched_cap = 0;
        m->order = gtr_xmalloc(n * sizeof *m->order, "text order", err);
        m->cids = gtr_xmalloc(n * sizeof *m->cids, "text order", err);
        m->clens = gtr_xmalloc(n * sizeof *m->clens, "text order", err);
        if (!m->order || !m->cids || !m->clens) return GTR_ERR_NOMEM;
        m->sched_cap = n;
    }
    if (k > m->pooled_cap) {
        gtr_free_aligned(m->pooled);
        gtr_free_aligned(m->hout);
        m->pooled_cap = 0;
        m->pooled = gtr_malloc_aligned(k * (size_t)m->cfg.t5.d_model * sizeof(float), err);
        m->hout = gtr_malloc_aligned(k * (size_t)m->head.d_out * sizeof(float), err);
        if (!m->pooled || !m->hout) return GTR_ERR_NOMEM;
        m->pooled_cap = k;
    }
    return GTR_OK;
}

/* Texts by length, longest first, ties in call order (a stable counting sort: lengths are at
 * most max_len). Chunks then hold texts of similar length, and within a chunk the longest
 * attention tasks are handed out first, so the threads finish together. Only the schedule
 * changes: a text's vector does not depend on its neighbours (see encoder.c). */
static void sort_by_length(gtr_model *m, const size_t *n_ids, size_t n)
{
    size_t L = (size_t)m->max_len, *cnt = m->len_count;
    memset(cnt, 0, (L + 2) * sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[L - n_ids[i]]++; /* bucket 0 = longest */
    size_t pos = 0;
    for (size_t b = 0; b <= L; b++) {
        size_t c = cnt[b];
        cnt[b] = pos;
        pos += c;
    }
    for (size_t i = 0; i < n; i++) m->order[cnt[L - n_ids[i]]++] = i;
}

gtr_status gtr_model_encode_ids(gtr_model *m, const int32_t *const *ids, const size_t *n_ids,
                                size_t n, float *out, gtr_error *err)
{
    if (!m || (n && (!ids || !n_ids || !out)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_encode_ids: NULL argument");
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
    const gtr_t5_config *c = &m->cfg.t5;
    size_t per_token = sizeof(float) * (2 * (size_t)c->d_model + 4 * (size_t)m->t5.inner +
                                        (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff);
    size_t chunk_bytes = GTR_MIN(CHUNK_MAX_BYTES, GTR_MAX(CHUNK_MIN_BYTES, gtr_model_weight_bytes(m) / 4));
    size_t budget = GTR_MAX((size_t)m->max_len, GTR_MIN(CHUNK_MAX_TOKENS, chunk_bytes / per_token));
    /* every text has a token, so a chunk holds at most budget texts */
    gtr_status st = reserve_schedule(m, n, GTR_MIN(n, budget), err);
    if (st) return st;
    sort_by_length(m, n_ids, n);
    size_t dout = (size_t)m->head.d_out;
    probe_shift ps = {m->probe, m->probe_user, NULL};
    for (size_t i0 = 0; i0 < n;) {
        /* the next chunk: whole texts, in length order, while the token budget lasts */
        size_t i1 = i0, tokens = 0;
        while (i1 < n && (i1 == i0 || tokens + n_ids[m->order[i1]] <= budget)) {
            size_t t = m->order[i1];
            m->cids[i1 - i0] = ids[t];
            m->clens[i1 - i0] = n_ids[t];
            tokens += n_ids[t];
            i1++;
        }
        size_t k = i1 - i0;
        float *hidden;
        ps.order = m->order + i0;
        st = gtr_t5_forward(&m->t5, m->kern, m->pool, &m->scratch, m->cids, m->clens, k, &hidden,
                            m->probe ? probe_trampoline : NULL, &ps, err);
        if (st) {
            if (n > 1) gtr_error_prefix(err, "a chunk of %zu texts", k);
            return st;
        }
        gtr_head_forward(&m->head, m->kern, m->pool, hidden, m->clens, m->scratch.offs, k, m->pooled,
                         m->hout, m->probe ? probe_trampoline : NULL, &ps);
        /* a non-finite vector is an error, never an output (finite weights are checked at load,
         * but activations can still overflow) */
        for (size_t j = 0; j < k * dout; j++)
            if (!isfinite(m->hout[j]))
                return gtr_seterr(err, GTR_ERR_INTERNAL,
                                  "text %zu: the vector is not finite (the model's activations "
                                  "overflowed)", m->order[i0 + j / dout]);
        for (size_t j = 0; j < k; j++)
            memcpy(out + m->order[i0 + j] * dout, m->hout + j * dout, dout * sizeof(float));
        i0 = i1;
    }
    return GTR_OK;
}

typedef struct {
    gtr_model *m;
    const char *const *texts;
    const size_t *lens;
    gtr_status *status;
} tok_job;

static void tok_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    tok_job *j = ctx;
    size_t len = j->lens ? j->lens[i] : strlen(j->texts[i]);
    j->status[i] = gtr_tokenize(j->m->tok, j->texts[i], len, j->m->max_len, 1, &j->m->tok_ids[i], NULL);
}

gtr_status gtr_model_encode(gtr_model *m, const char *const *texts, const size_t *lens, size_t n,
                            float *out, gtr_error *err)
{
    if (!m || (n && (!texts || !out)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_encode: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text %zu is NULL", i);
    if (n > m->tok_cap) { /* grow-only, like the rest of the per-call state */
        gtr_ids *nt = gtr_xrealloc(m->tok_ids, n * sizeof *nt, "token ids", err);
        if (!nt) return GTR_ERR_NOMEM;
        memset(nt + m->tok_cap, 0, (n - m->tok_cap) * sizeof *nt);
        m->tok_ids = nt;
        m->tok_cap = n;
        free(m->tok_status);
        free(m->tok_ptr);
        free(m->tok_len);
        m->tok_status = gtr_xmalloc(n * sizeof *m->tok_status, "statuses", err);
        m->tok_ptr = gtr_xmalloc(n * sizeof *m->tok_ptr, "ids", err);
        m->tok_len = gtr_xmalloc(n * sizeof *m->tok_len, "ids", err);
        if (!m->tok_status || !m->tok_ptr || !m->tok_len) {
            free(m->tok_status);
            free(m->tok_ptr);
            free(m->tok_len);
            m->tok_status = NULL;
            m->tok_ptr = NULL;
            m->tok_len = NULL;
            /* keep tok_cap consistent with tok_ids; the arrays are re-made next call */
            m->tok_cap = 0;
            for (size_t i = 0; i < n; i++) gtr_ids_free(&m->tok_ids[i]);
            free(m->tok_ids);
            m->tok_ids = NULL;
            return GTR_ERR_NOMEM;
        }
    }
    if (n == 0) return GTR_OK;
    /* The tokenizer is immutable: tokenize in parallel. */
    memset(m->tok_status, 0, n * sizeof *m->tok_status);
    tok_job j = {m, texts, lens, m->tok_status};
    gtr_pool_for(m->pool, n, tok_task, &j);
    for (size_t i = 0; i < n; i++) {
        if (m->tok_status[i]) { /* again, serially, for the message */
            size_t len = lens ? lens[i] : strlen(texts[i]);
            gtr_status st = gtr_tokenize(m->tok, texts[i], len, m->max_len, 1, &m->tok_ids[i], err);
            if (!st) st = gtr_seterr(err, m->tok_status[i], "tokenizer failed");
            gtr_error_prefix(err, "text %zu", i);
            return st;
        }
        m->tok_ptr[i] = m->tok_ids[i].ids;
        m->tok_len[i] = m->tok_ids[i].n;
    }
    return gtr_model_encode_ids(m, m->tok_ptr, m->tok_len, n, out, err);
}
