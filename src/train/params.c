/* params.c — every trainable parameter of a GTR model in one float32 buffer, gradients in a
 * second buffer of the same layout (one memset clears them, one loop updates them), and the
 * table that names each tensor with its Hugging Face name.
 *
 * Layout (each tensor starts on a 64-byte boundary):
 *   shared.weight [V, d]                           the tied token embedding
 *   ...relative_attention_bias.weight [buckets, H] layer 0's table, used by every layer
 *   per layer: layer_norm (attention), q, k, v, o, layer_norm (ff), wi | wi_0, wi_1, wo
 *   encoder.final_layer_norm.weight [d]
 *   dense.linear.weight [d_out, d] (+ dense.linear.bias)
 * q, k, v are adjacent, so they form one [3*inner, d] matrix for a single GEMM; wi_0, wi_1
 * likewise form [2*d_ff, d]. */
#include "train/train_internal.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16

void gtr_tr_model_free(gtr_tr_model *m)
{
    if (!m) return;
    gtr_model_config_free(&m->cfg);
    gtr_free_aligned(m->p);
    gtr_free_aligned(m->g);
    free(m->t);
    free(m->layer);
    if (m->pk)
        for (int i = 0; i < m->L; i++) {
            gtr_wmat_free(&m->pk[i].qkv);
            gtr_wmat_free(&m->pk[i].o);
            gtr_wmat_free(&m->pk[i].wi);
            gtr_wmat_free(&m->pk[i].wo);
        }
    free(m->pk);
    gtr_wmat_free(&m->dense_pk);
    memset(m, 0, sizeof *m);
}

const gtr_tr_tensor *gtr_tr_find(const gtr_tr_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_t; i++)
        if (!strcmp(m->t[i].name, name)) return &m->t[i];
    return NULL;
}

/* Append a tensor to the table; returns its offset. */
static size_t add(gtr_tr_model *m, const char *name, size_t rows, size_t cols, int ndim)
{
    gtr_tr_tensor *t = &m->t[m->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->count = rows * cols;
    t->off = m->n_params;
    m->n_params += (t->count + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    m->n_real += t->count;
    return t->off;
}

static void layout(gtr_tr_model *m)
{
    char nm[128];
    size_t d = (size_t)m->d, in = (size_t)m->inner, ff = (size_t)m->dff;
    m->embed = add(m, "shared.weight", (size_t)m->V, d, 2);
    m->rel = add(m, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 (size_t)m->cfg.t5.num_buckets, (size_t)m->H, 2);
    for (int i = 0; i < m->L; i++) {
        gtr_tr_layer *l = &m->layer[i];
#define NAME(s) (snprintf(nm, sizeof nm, "encoder.block.%d.layer.%s", i, s), nm)
        l->ln_attn = add(m, NAME("0.layer_norm.weight"), d, 1, 1);
        l->qkv = add(m, NAME("0.SelfAttention.q.weight"), in, d, 2);
        add(m, NAME("0.SelfAttention.k.weight"), in, d, 2);
        add(m, NAME("0.SelfAttention.v.weight"), in, d, 2);
        l->o = add(m, NAME("0.SelfAttention.o.weight"), d, in, 2);
        l->ln_ff = add(m, NAME("1.layer_norm.weight"), d, 1, 1);
        if (m->gated) {
            l->wi = add(m, NAME("1.DenseReluDense.wi_0.weight"), ff, d, 2);
            add(m, NAME("1.DenseReluDense.wi_1.weight"), ff, d, 2);
        } else {
            l->wi = add(m, NAME("1.DenseReluDense.wi.weight"), ff, d, 2);
        }
        l->wo = add(m, NAME("1.DenseReluDense.wo.weight"), d, ff, 2);
#undef NAME
    }
    m->final_ln = add(m, "encoder.final_layer_norm.weight", d, 1, 1);
    m->dense_w = m->dense_b = SIZE_MAX;
    if (m->cfg.has_dense) {
        m->dense_w = add(m, "dense.linear.weight", (size_t)m->cfg.dense_out, d, 2);
        if (m->cfg.dense_bias) m->dense_b = add(m, "dense.linear.bias", (size_t)m->cfg.dense_out, 1, 1);
    }
}

/* Convert the tensor `name` of set (shape of t) into the buffer. */
static gtr_status load_one(gtr_tr_model *m, gtr_tensor_set *set, const gtr_tr_tensor *t,
                           const char *name, gtr_error *err)
{
    gtr_tensor *src;
    gtr_status st = gtr_tensor_get(set, name, t->ndim, t->shape, &src, err);
    if (st) return st;
    return gtr_tensor_to_f32(set, src, m->p + t->off, NULL, err);
}

gtr_status gtr_tr_model_load(gtr_tr_model *m, const char *dir, gtr_error *err)
{
    memset(m, 0, sizeof *m);
    gtr_status st = gtr_model_config_read(dir, &m->cfg, err);
    if (st) return st;
    const gtr_t5_config *c = &m->cfg.t5;
    gtr_tensor_set set = {0};
    m->d = c->d_model;
    m->inner = c->num_heads * c->d_kv;
    m->dff = c->d_ff;
    m->gated = c->ff == GTR_FF_GATED_GELU;
    m->ffw = m->gated ? 2 * m->dff : m->dff;
    m->H = c->num_heads;
    m->L = c->num_layers;
    m->V = c->vocab_size;
    m->d_out = m->cfg.has_dense ? m->cfg.dense_out : m->d;
    m->kern = gtr_kernels_select();
    if (c->num_buckets < 2 || c->num_buckets > 256) { /* attention.c folds buckets on the stack */
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: %d relative-attention buckets (training supports 2-256)",
                        dir, c->num_buckets);
        goto fail;
    }
    if (m->d_out > 4096) {
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: embedding size %d (training supports up to 4096)", dir,
                        m->d_out);
        goto fail;
    }
    if (m->cfg.has_dense && m->cfg.dense_in != m->d) {
        st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: Dense in_features %d != d_model %d", dir,
                        m->cfg.dense_in, m->d);
        goto fail;
    }
    size_t n_tensors = 4 + (size_t)m->L * 9;
    m->t = gtr_xcalloc(n_tensors, sizeof *m->t, "parameter table", err);
    m->layer = gtr_xcalloc((size_t)m->L, sizeof *m->layer, "layers", err);
    m->pk = gtr_xcalloc((size_t)m->L, sizeof *m->pk, "packed weights", err);
    if (!m->t || !m->layer || !m->pk) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }
    layout(m);
    m->p = gtr_calloc_aligned(m->n_params * sizeof(float), err);
    m->g = gtr_calloc_aligned(m->n_params * sizeof(float), err);
    if (!m->p || !m->g) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }

    /* encoder: the tied embedding under either name (shared.weight is canonical) */
    if ((st = gtr_tensor_set_open_dir(&set, m->cfg.transformer_dir, err))) goto fail;
    for (size_t i = 0; i < m->n_t; i++) {
        const gtr_tr_tensor *t = &m->t[i];
        if (!strncmp(t->name, "dense.", 6)) continue;
        const char *name = t->name;
        if (t->off == m->embed && !gtr_tensor_find(&set, "shared.weight"))
            name = "encoder.embed_tokens.weight";
        if ((st = load_one(m, &set, t, name, err))) goto fail;
    }
    /* a second stored copy of the tied embedding is the same parameter: mark it used */
    (void)gtr_tensor_find(&set, "encoder.embed_tokens.weight");
    static const char *const ignore[] = {"decoder.", "lm_head.", NULL};
    if ((st = gtr_tensor_check_unused(&set, ignore, err))) goto fail;
    gtr_tensor_set_free(&set);

    if (m->cfg.has_dense) {
        if ((st = gtr_tensor_set_open_dir(&set, m->cfg.dense_dir, err))) goto fail;
        const gtr_tr_tensor *w = gtr_tr_find(m, "dense.linear.weight");
        if ((st = load_one(m, &set, w, "linear.weight", err))) goto fail;
        if (m->dense_b != SIZE_MAX &&
            (st = load_one(m, &set, gtr_tr_find(m, "dense.linear.bias"), "linear.bias", err)))
            goto fail;
        if ((st = gtr_tensor_check_unused(&set, NULL, err))) goto fail;
        gtr_tensor_set_free(&set);
    }
    return GTR_OK;
fail:
    gtr_tensor_set_free(&set);
    gtr_tr_model_free(m);
    return st;
}

/* Pack src [n, k] into w (replacing what it held). */
static gtr_status repack(const gtr_kernels *k, gtr_wmat *w, const float *src, size_t n, size_t kk,
                         gtr_error *err)
{
    gtr_wmat_free(w);
    return gtr_wmat_pack(k, w, src, n, kk, GTR_W_F32, err);
}

gtr_status gtr_tr_pack(gtr_tr_model *m, gtr_error *err)
{
    if (m->packed_valid) return GTR_OK;
    size_t d = (size_t)m->d, in = (size_t)m->inner;
    gtr_status st;
    for (int i = 0; i < m->L; i++) {
        const gtr_tr_layer *l = &m->layer[i];
        gtr_tr_packed *pk = &m->pk[i];
        if ((st = repack(m->kern, &pk->qkv, m->p + l->qkv, 3 * in, d, err)) ||
            (st = repack(m->kern, &pk->o, m->p + l->o, d, in, err)) ||
            (st = repack(m->kern, &pk->wi, m->p + l->wi, (size_t)m->ffw, d, err)) ||
            (st = repack(m->kern, &pk->wo, m->p + l->wo, d, (size_t)m->dff, err)))
            return st;
    }
    if (m->cfg.has_dense &&
        (st = repack(m->kern, &m->dense_pk, m->p + m->dense_w, (size_t)m->d_out, d, err)))
        return st;
    m->packed_valid = true;
    return GTR_OK;
}

uint64_t gtr_tr_model_hash(const gtr_tr_model *m)
{
    const gtr_t5_config *c = &m->cfg.t5;
    int32_t shape[16] = {c->d_model, c->d_ff, c->d_kv, c->num_heads, c->num_layers,
                         c->vocab_size, c->num_buckets, c->max_distance, (int32_t)c->ff,
                         m->cfg.has_dense, m->cfg.dense_out, m->cfg.dense_bias,
                         (int32_t)m->cfg.dense_act, m->cfg.normalize, 0, 0};
    uint64_t h = gtr_fnv1a64(shape, sizeof shape, GTR_FNV_SEED);
    h = gtr_fnv1a64(&c->eps, sizeof c->eps, h);
    for (size_t i = 0; i < m->n_t; i++)
        h = gtr_fnv1a64(m->p + m->t[i].off, m->t[i].count * sizeof(float), h);
    return h;
}
