/* model.c — the public gtr_model_* API: load a sentence-transformers GTR directory (configs,
 * tokenizer, encoder and head weights). The loaded model never changes afterwards: encoding
 * happens in contexts (context.c) that any number of threads create from it. gtr_model_encode
 * is the one-thread convenience: a context of the model's own, behind a lock. */
#include "model/model_internal.h"
#include "cuda/cuda.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


/* The state gtr_model_encode keeps: its context, made on first use, and the lock it takes. */
struct gtr_model_own {
    pthread_mutex_t mu;
    gtr_context *ctx; /* made on first use */
};

gtr_model_options gtr_model_default_options(void)
{
    gtr_model_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
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
    if (m->own) {
        gtr_context_free(m->own->ctx);
        pthread_mutex_destroy(&m->own->mu);
        free(m->own);
    }
    free(m->describe);
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

#define GIB (1024.0 * 1024.0 * 1024.0)

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
    gtr_model_options o = gtr_model_default_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_model_load", err)) return NULL;
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
    if (!(m->own = gtr_xcalloc(1, sizeof *m->own, "model", err))) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->own->mu, NULL);
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
    gtr_tokenizer_options to = gtr_tokenizer_default_options();
    to.compat = o.spm_compat;
    if (!(m->tok = gtr_tokenizer_load(spm, &to, err))) {
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
        gtr_tensor *q = gtr_tensor_find(&set, set.packed ? "encoder.block.0.packed.qkv"
                                                         : "encoder.block.0.layer.0.SelfAttention.q.weight");
        o.dtype = q && q->dtype == GTR_DT_I8 ? GTR_DTYPE_INT8 : q && q->dtype == GTR_DT_BF16 ? GTR_DTYPE_BF16 : GTR_DTYPE_F32;
        if (q) q->used = false; /* only looked at */
        m->dtype = o.dtype;
    }
    gtr_mem_plan plan = {&m->cfg, m->kern, gtr_pool_size(m->pool), m->max_len, o.batch_size, o.n_contexts};
    if ((st = gtr_mem_check(&set, &plan, o.dtype, o.max_memory, dir, err))) goto fail;
    /* a `gtr quantize` copy's checksums (checksum.c), before anything is computed from it */
    char verified[96] = "";
    {
        size_t n_crc = 0;
        for (size_t i = 0; i < set.n; i++) n_crc += set.t[i].has_crc;
        if (o.no_verify && (n_crc || set.crc_problem)) {
            snprintf(verified, sizeof verified, "\nchecksums: not verified (no_verify)");
        } else if (n_crc || set.crc_problem) {
            double t0 = gtr_now_seconds();
            size_t n_ok;
            if ((st = gtr_tensor_set_verify(&set, m->pool, &n_ok, err))) goto fail;
            snprintf(verified, sizeof verified, "\nchecksums: %zu tensors verified (crc32c) in %.2f s", n_ok,
                     gtr_now_seconds() - t0);
        }
    }
    double est[3] = {(double)gtr_mem_estimate(&set, &plan, GTR_DTYPE_F32),
                     (double)gtr_mem_estimate(&set, &plan, GTR_DTYPE_BF16),
                     (double)gtr_mem_estimate(&set, &plan, GTR_DTYPE_INT8)};
    char est_batch[64];
    if (o.batch_size) snprintf(est_batch, sizeof est_batch, "batches of %zu texts", o.batch_size);
    else snprintf(est_batch, sizeof est_batch, "the largest chunk");
    gtr_wtype wt = o.dtype == GTR_DTYPE_BF16 ? GTR_W_BF16 : o.dtype == GTR_DTYPE_INT8 ? GTR_W_INT8
                                                                                       : GTR_W_F32;
    if ((st = gtr_t5_load(&m->t5, &m->cfg.t5, &set, m->kern, wt, m->pool, &fp, !o.no_fingerprint, err)))
        goto fail;
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
    /* a `gtr quantize` copy answers to the fingerprint of the model it was made from; with
     * no_fingerprint any other model has none (fp then left the F16 Linears out) */
    m->has_fingerprint = has_source_fp || !o.no_fingerprint;
    m->fingerprint = has_source_fp ? source_fp : m->has_fingerprint ? fp : 0;

    const gtr_t5_config *c = &m->cfg.t5;
    /* weights used in place from a packed file's mapping: shared page cache, not private memory */
    char mapped[64] = "";
    if (m->t5.mapped_bytes)
        snprintf(mapped, sizeof mapped, ", %.1f MiB of them mapped from the file in place",
                 (double)m->t5.mapped_bytes / (1 << 20));
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
    char fp_text[48] = "none (loaded with no_fingerprint)";
    if (m->has_fingerprint) snprintf(fp_text, sizeof fp_text, "%016llx", (unsigned long long)m->fingerprint);
    gtr_buf_printf(&desc, err,
                   "output: %d dimensions%s\nparameters: %s (encoder %s, dense %s)\n"
                   "storage: %s\ncompute: %s weights (%.1f MiB%s), kernels %s, %d threads\n"
                   "memory to load: f32 %.2f GiB, bf16 %.2f GiB, int8 %.2f GiB (estimated: private weights + "
                   "the load's buffers or the work of %s of %d tokens, %d threads)\n"
                   "max length: %d tokens (max_seq_length %d)\ntokenizer: %s (%d pieces)\n"
                   "fingerprint: %s%s",
                   m->head.d_out, m->cfg.normalize ? ", unit length" : "", with_commas(n_params, nb1),
                   with_commas(m->t5.n_params, nb2), with_commas(m->head.n_params, nb3), sets.data ? sets.data : "", dtype_name(m->dtype),
                   (double)gtr_model_weight_bytes(m) / (1 << 20), mapped, gtr_kernels_name(m->kern),
                   gtr_pool_size(m->pool), est[0] / GIB, est[1] / GIB, est[2] / GIB, est_batch, m->max_len, gtr_pool_size(m->pool), m->max_len, m->cfg.max_seq_length, spm,
                   gtr_tokenizer_vocab_size(m->tok), fp_text, verified);
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
int gtr_model_has_fingerprint(const gtr_model *m) { return m && m->has_fingerprint; }
int gtr_model_vocab_size(const gtr_model *m) { return m ? m->cfg.t5.vocab_size : 0; }
size_t gtr_model_weight_bytes(const gtr_model *m) { return m ? m->t5.bytes + m->head.bytes : 0; }
size_t gtr_model_n_params(const gtr_model *m) { return m ? m->t5.n_params + m->head.n_params : 0; }
gtr_compute_dtype gtr_model_dtype(const gtr_model *m) { return m ? m->dtype : GTR_DTYPE_F32; }


/* The convenience path: one context of the model's own, made on first use, behind a lock so
 * that callers who share a model without contexts stay correct (they take turns). */
static gtr_context *own_context(gtr_model *m, gtr_error *err)
{
    if (!m->own->ctx) {
        gtr_context_options o = gtr_context_default_options();
        m->own->ctx = gtr_context_create(m, &o, err);
    }
    return m->own->ctx;
}

gtr_status gtr_model_encode(gtr_model *m, const char *const *texts, const size_t *lens, size_t n,
                            float *out, gtr_error *err)
{
    if (!m) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_encode: NULL argument");
    pthread_mutex_lock(&m->own->mu);
    gtr_context *c = own_context(m, err);
    gtr_status st = c ? gtr_context_encode(c, texts, lens, n, out, err) : GTR_ERR_NOMEM;
    pthread_mutex_unlock(&m->own->mu);
    return st;
}

gtr_status gtr_model_encode_ids(gtr_model *m, const int32_t *const *ids, const size_t *n_ids,
                                size_t n, float *out, gtr_error *err)
{
    if (!m) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_encode_ids: NULL argument");
    pthread_mutex_lock(&m->own->mu);
    gtr_context *c = own_context(m, err);
    gtr_status st = c ? gtr_context_encode_ids(c, ids, n_ids, n, out, err) : GTR_ERR_NOMEM;
    pthread_mutex_unlock(&m->own->mu);
    return st;
}

/* Tests and the server set these on the model's own context (made here if need be). */
void gtr_model_set_probe(gtr_model *m, gtr_probe_fn fn, void *user)
{
    pthread_mutex_lock(&m->own->mu);
    gtr_context *c = own_context(m, NULL);
    if (c) gtr_context_set_probe(c, fn, user);
    pthread_mutex_unlock(&m->own->mu);
}

void gtr_model_set_interrupt(gtr_model *m, const atomic_int *flag)
{
    pthread_mutex_lock(&m->own->mu);
    gtr_context *c = own_context(m, NULL);
    if (c) gtr_context_set_interrupt(c, flag);
    pthread_mutex_unlock(&m->own->mu);
}
