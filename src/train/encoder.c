/* encoder.c — the T5 encoder for training, one explicit forward/backward pair per layer.
 *
 * Forward (per layer, over the packed tokens of all texts, as the inference encoder):
 *   xn1 = rmsnorm(x)·w1          qkv = xn1·[Wq Wk Wv]ᵀ      ctx = attention(qkv)
 *   mid = x + ctx·Woᵀ            xn2 = rmsnorm(mid)·w2
 *   relu:  h = relu(xn2·Wiᵀ)                 out = mid + h·Wo_ffᵀ
 *   gated: a = xn2·[Wi0 Wi1]ᵀ, g = gelu(a0)⊙a1   out = mid + g·Wo_ffᵀ
 * then y = rmsnorm(x_L)·w_final and the head (head.c).
 *
 * What is kept for backward (gtr_tr_keep): everything per layer (ALL), or only each layer's
 * input (INPUTS: backward re-runs a layer's forward into one shared set of buffers just before
 * its backward: activation memory of one layer instead of L, one more forward), or nothing
 * (NONE: embeddings only, buffers reused layer after layer).
 *
 * Backward walks the layers in reverse with dx = ∂loss/∂(residual stream); every weight
 * gradient is a GEMM dYᵀ·X summed over the tokens (tgemm.c), every input gradient dY·W. */
#include "train/train_internal.h"

#include <stdlib.h>
#include <string.h>

static void free_sets(gtr_tr_acts *a)
{
    for (int i = 0; i < a->cap_sets; i++) {
        gtr_tr_layer_act *s = &a->set[i];
        gtr_free_aligned(s->xn1);
        gtr_free_aligned(s->rinv1);
        gtr_free_aligned(s->qkv);
        gtr_free_aligned(s->ctx);
        gtr_free_aligned(s->mid);
        gtr_free_aligned(s->xn2);
        gtr_free_aligned(s->rinv2);
        gtr_free_aligned(s->ff);
        gtr_free_aligned(s->g);
    }
    free(a->set);
    a->set = NULL;
    a->cap_sets = 0;
}

static void free_bufs(gtr_tr_acts *a)
{
    free_sets(a);
    float **bufs[] = {&a->xin, &a->y, &a->rinv_f, &a->pooled, &a->dense, &a->emb, &a->dx,
                      &a->dxn, &a->dqkv, &a->dctx, &a->dff, &a->dg, &a->part, &a->dpooled,
                      &a->ddense};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        gtr_free_aligned(*bufs[i]);
        *bufs[i] = NULL;
    }
    a->cap_T = a->cap_n = 0;
    a->xin_layers = 0;
}

void gtr_tr_acts_free(gtr_tr_acts *a)
{
    if (!a) return;
    free_bufs(a);
    gtr_tr_attn_ws_free(&a->attn);
    memset(a, 0, sizeof *a);
}

static bool alloc(float **p, size_t floats, gtr_error *err)
{
    *p = gtr_malloc_aligned(GTR_MAX(floats, (size_t)1) * sizeof(float), err);
    return *p != NULL;
}

/* Grow-only buffers for T tokens of n texts with `sets` layer sets and xin_layers inputs. */
static gtr_status reserve(const gtr_tr_model *m, gtr_tr_acts *a, size_t T, size_t n, int sets,
                          int xin_layers, gtr_error *err)
{
    if (T <= a->cap_T && n <= a->cap_n && sets <= a->cap_sets && xin_layers <= a->xin_layers)
        return GTR_OK;
    T = GTR_MAX(T, a->cap_T);
    n = GTR_MAX(n, a->cap_n);
    sets = GTR_MAX(sets, a->cap_sets);
    xin_layers = GTR_MAX(xin_layers, a->xin_layers);
    free_bufs(a);
    size_t d = (size_t)m->d, in = (size_t)m->inner, ff = (size_t)m->dff, ffw = (size_t)m->ffw;
    size_t dout = (size_t)m->d_out, chunks = (T + GTR_TR_ROWS - 1) / GTR_TR_ROWS;
    if (!(a->set = gtr_xcalloc((size_t)sets, sizeof *a->set, "activations", err)))
        return GTR_ERR_NOMEM;
    a->cap_sets = sets;
    bool ok = true;
    for (int i = 0; i < sets && ok; i++) {
        gtr_tr_layer_act *s = &a->set[i];
        ok = alloc(&s->xn1, T * d, err) && alloc(&s->rinv1, T, err) &&
             alloc(&s->qkv, T * 3 * in, err) && alloc(&s->ctx, T * in, err) &&
             alloc(&s->mid, T * d, err) && alloc(&s->xn2, T * d, err) &&
             alloc(&s->rinv2, T, err) && alloc(&s->ff, T * ffw, err) &&
             (!m->gated || alloc(&s->g, T * ff, err));
    }
    ok = ok && alloc(&a->xin, (size_t)xin_layers * T * d, err) && alloc(&a->y, T * d, err) &&
         alloc(&a->rinv_f, T, err) && alloc(&a->pooled, n * d, err) &&
         alloc(&a->dense, n * dout, err) && alloc(&a->emb, n * dout, err) &&
         alloc(&a->dx, T * d, err) && alloc(&a->dxn, T * d, err) &&
         alloc(&a->dqkv, T * 3 * in, err) && alloc(&a->dctx, T * in, err) &&
         alloc(&a->dff, T * ffw, err) && alloc(&a->dg, T * ff, err) &&
         alloc(&a->part, chunks * GTR_MAX(d, dout), err) && alloc(&a->dpooled, n * d, err) &&
         alloc(&a->ddense, n * dout, err);
    if (!ok) {
        free_bufs(a);
        return GTR_ERR_NOMEM;
    }
    a->cap_T = T;
    a->cap_n = n;
    a->xin_layers = xin_layers;
    return GTR_OK;
}

/* Input of layer l (l = L: the final norm's input). KEEP_NONE alternates two buffers. */
static float *xin(const gtr_tr_model *m, gtr_tr_acts *a, int l)
{
    int slot = a->keep == GTR_TR_KEEP_NONE ? l % 2 : l;
    return a->xin + (size_t)slot * a->cap_T * (size_t)m->d;
}

static gtr_tr_layer_act *set_of(gtr_tr_acts *a, int l)
{
    return &a->set[a->keep == GTR_TR_KEEP_ALL ? l : 0];
}

static void layer_fwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x, int l)
{
    const gtr_kernels *k = m->kern;
    const gtr_tr_layer *lo = &m->layer[l];
    const gtr_tr_packed *pk = &m->pk[l];
    gtr_tr_layer_act *s = set_of(a, l);
    size_t T = x->T, d = (size_t)m->d, in = (size_t)m->inner, dff = (size_t)m->dff;
    float eps = m->cfg.t5.eps;
    const float *X = xin(m, a, l);
    float *out = xin(m, a, l + 1);

    gtr_tr_rmsnorm_fwd(k, pool, X, m->p + lo->ln_attn, eps, T, d, s->xn1, s->rinv1);
    gtr_linear(k, pool, &pk->qkv, s->xn1, T, d, s->qkv, 3 * in, 0);
    gtr_tr_attn_fwd(m, &a->attn, pool, x, s->qkv, s->ctx);
    memcpy(s->mid, X, T * d * sizeof(float));
    gtr_linear(k, pool, &pk->o, s->ctx, T, in, s->mid, d, GTR_LINEAR_ACCUM);

    gtr_tr_rmsnorm_fwd(k, pool, s->mid, m->p + lo->ln_ff, eps, T, d, s->xn2, s->rinv2);
    const float *h;
    if (m->gated) {
        gtr_linear(k, pool, &pk->wi, s->xn2, T, d, s->ff, 2 * dff, 0);
        gtr_tr_gelu_fwd(k, pool, s->ff, T, dff, s->g);
        h = s->g;
    } else {
        gtr_linear(k, pool, &pk->wi, s->xn2, T, d, s->ff, dff, GTR_LINEAR_RELU);
        h = s->ff;
    }
    memcpy(out, s->mid, T * d * sizeof(float));
    gtr_linear(k, pool, &pk->wo, h, T, dff, out, d, GTR_LINEAR_ACCUM);
}

gtr_status gtr_tr_forward(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                          gtr_tr_keep keep, gtr_error *err)
{
    size_t d = (size_t)m->d;
    for (size_t i = 0; i < x->n; i++)
        if (x->lens[i] == 0)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text %zu has no tokens", i);
    for (size_t t = 0; t < x->T; t++)
        if (x->ids[t] < 0 || x->ids[t] >= m->V)
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%d)",
                              (int)x->ids[t], m->V);
    gtr_status st;
    int sets = keep == GTR_TR_KEEP_ALL ? m->L : 1;
    int xl = keep == GTR_TR_KEEP_NONE ? 2 : m->L + 1;
    if ((st = gtr_tr_pack(m, err)) ||
        (st = reserve(m, a, GTR_MAX(x->T, (size_t)1), GTR_MAX(x->n, (size_t)1), sets, xl, err)) ||
        (st = gtr_tr_attn_prepare(m, &a->attn, x, pool, err)))
        return st;
    a->keep = keep;

    float *x0 = xin(m, a, 0);
    for (size_t t = 0; t < x->T; t++)
        memcpy(x0 + t * d, m->p + m->embed + (size_t)x->ids[t] * d, d * sizeof(float));
    for (int l = 0; l < m->L; l++) layer_fwd(m, pool, a, x, l);
    gtr_tr_rmsnorm_fwd(m->kern, pool, xin(m, a, m->L), m->p + m->final_ln, m->cfg.t5.eps, x->T, d,
                       a->y, a->rinv_f);
    gtr_tr_head_fwd(m, pool, a, x);
    return GTR_OK;
}

static void layer_bwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x, int l)
{
    const gtr_kernels *k = m->kern;
    const gtr_tr_layer *lo = &m->layer[l];
    gtr_tr_layer_act *s = set_of(a, l);
    size_t T = x->T, d = (size_t)m->d, in = (size_t)m->inner, dff = (size_t)m->dff;
    size_t ffw = (size_t)m->ffw;
    float *g = m->g, *dx = a->dx;
    const float *p = m->p;

    /* feed-forward block: out = mid + h·Woᵀ */
    float *dh = m->gated ? a->dg : a->dff;
    gtr_tr_gemm_nn(k, pool, T, dff, d, dx, d, p + lo->wo, dff, 0.0f, dh, dff);
    gtr_tr_gemm_tn(k, pool, d, dff, T, dx, d, m->gated ? s->g : s->ff, dff, 1.0f, g + lo->wo, dff);
    if (m->gated)
        gtr_tr_gelu_bwd(pool, s->ff, a->dg, T, dff, a->dff);
    else
        gtr_tr_relu_bwd(pool, s->ff, a->dff, T, dff);
    gtr_tr_gemm_nn(k, pool, T, d, ffw, a->dff, ffw, p + lo->wi, d, 0.0f, a->dxn, d);
    gtr_tr_gemm_tn(k, pool, ffw, d, T, a->dff, ffw, s->xn2, d, 1.0f, g + lo->wi, d);
    gtr_tr_rmsnorm_bwd(pool, s->mid, p + lo->ln_ff, s->rinv2, a->dxn, T, d, dx, g + lo->ln_ff,
                       a->part);

    /* attention block: mid = x + ctx·Woᵀ */
    gtr_tr_gemm_nn(k, pool, T, in, d, dx, d, p + lo->o, in, 0.0f, a->dctx, in);
    gtr_tr_gemm_tn(k, pool, d, in, T, dx, d, s->ctx, in, 1.0f, g + lo->o, in);
    gtr_tr_attn_bwd(m, &a->attn, pool, x, s->qkv, a->dctx, a->dqkv, g + m->rel);
    gtr_tr_gemm_nn(k, pool, T, d, 3 * in, a->dqkv, 3 * in, p + lo->qkv, d, 0.0f, a->dxn, d);
    gtr_tr_gemm_tn(k, pool, 3 * in, d, T, a->dqkv, 3 * in, s->xn1, d, 1.0f, g + lo->qkv, d);
    gtr_tr_rmsnorm_bwd(pool, xin(m, a, l), p + lo->ln_attn, s->rinv1, a->dxn, T, d, dx,
                       g + lo->ln_attn, a->part);
}

gtr_status gtr_tr_backward(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                           const float *demb, gtr_error *err)
{
    if (a->keep == GTR_TR_KEEP_NONE)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "backward after a forward that kept nothing");
    size_t T = x->T, d = (size_t)m->d;
    gtr_tr_head_bwd(m, pool, a, x, demb); /* a->dxn = ∂loss/∂y */
    memset(a->dx, 0, T * d * sizeof(float));
    gtr_tr_rmsnorm_bwd(pool, xin(m, a, m->L), m->p + m->final_ln, a->rinv_f, a->dxn, T, d, a->dx,
                       m->g + m->final_ln, a->part);
    for (int l = m->L - 1; l >= 0; l--) {
        /* INPUTS: the shared set holds the last layer's activations after the forward; for
         * every other layer, run its forward again from the kept input. */
        if (a->keep == GTR_TR_KEEP_INPUTS && l != m->L - 1) layer_fwd(m, pool, a, x, l);
        layer_bwd(m, pool, a, x, l);
    }
    /* token embeddings: rows of the tied table, accumulated in token order */
    float *ge = m->g + m->embed;
    for (size_t t = 0; t < T; t++) {
        float *row = ge + (size_t)x->ids[t] * d;
        const float *src = a->dx + t * d;
        for (size_t j = 0; j < d; j++) row[j] += src[j];
    }
    return GTR_OK;
}
