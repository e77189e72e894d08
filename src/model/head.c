/* head.c — what sentence-transformers does after the encoder: mean pooling over the real
 * tokens (</s> included; there is no padding in our packed batches), the Dense module
 * (2_Dense: linear.weight [out, in], optional bias and Tanh), and Normalize
 * x / max(||x||, 1e-12). */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gtr_head_free(gtr_head *h)
{
    if (!h) return;
    gtr_wmat_free(&h->dense);
    gtr_free_aligned(h->b);
    memset(h, 0, sizeof *h);
}

gtr_status gtr_head_load(gtr_head *h, const gtr_model_config *c, gtr_tensor_set *set,
                         const gtr_kernels *kern, gtr_pool *pool, uint64_t *fp, gtr_error *err)
{
    memset(h, 0, sizeof *h);
    h->d_in = c->t5.d_model;
    h->d_out = c->has_dense ? c->dense_out : c->t5.d_model;
    h->has_dense = c->has_dense;
    h->bias = c->has_dense && c->dense_bias;
    h->act = c->dense_act;
    h->normalize = c->normalize;
    if (!h->has_dense) return GTR_OK;
    size_t wshape[2] = {(size_t)h->d_out, (size_t)h->d_in}, bshape[1] = {(size_t)h->d_out};
    gtr_tensor *w, *b = NULL;
    gtr_status st;
    if ((st = gtr_tensor_get(set, "linear.weight", 2, wshape, &w, err)) ||
        (h->bias && (st = gtr_tensor_get(set, "linear.bias", 1, bshape, &b, err))) ||
        (st = gtr_tensor_check_unused(set, NULL, err)))
        return st;
    float *tmp = gtr_malloc_aligned(w->count * sizeof(float), err);
    if (!tmp) return GTR_ERR_NOMEM;
    /* The Dense layer is tiny next to the encoder: always float32 */
    st = gtr_tensor_to_f32(set, w, tmp, pool, err);
    if (!st && (st = gtr_fingerprint_tensor(fp, pool, "dense.linear.weight", tmp, wshape[0], wshape[1], err)))
        gtr_error_prefix(err, "%s", gtr_tensor_file(set, w));
    if (!st) st = gtr_wmat_pack(kern, &h->dense, tmp, wshape[0], wshape[1], GTR_W_F32, err);
    gtr_free_aligned(tmp);
    if (!st && b) {
        if (!(h->b = gtr_malloc_aligned(bshape[0] * sizeof(float), err))) st = GTR_ERR_NOMEM;
        else st = gtr_tensor_to_f32(set, b, h->b, pool, err);
        if (!st && (st = gtr_fingerprint_tensor(fp, pool, "dense.linear.bias", h->b, 1, bshape[0], err)))
            gtr_error_prefix(err, "%s", gtr_tensor_file(set, b));
    }
    if (st) {
        gtr_head_free(h);
        return st;
    }
    h->n_params = w->count + (b ? b->count : 0);
    h->bytes = h->dense.bytes + (b ? b->count * sizeof(float) : 0);
    return GTR_OK;
}

typedef struct {
    const float *hidden;
    const size_t *lens, *first; /* tokens and first row of each text */
    size_t din;
    float *pooled;
} pool_job;

/* mean pooling of one text: sum over its rows in order, divided by the token count (as torch
 * divides) — the same arithmetic whichever thread runs it */
static void pool_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    const pool_job *j = ctx;
    size_t din = j->din;
    float *p = j->pooled + i * din;
    const float *row = j->hidden + j->first[i] * din;
    memset(p, 0, din * sizeof *p);
    for (size_t t = 0; t < j->lens[i]; t++, row += din)
        for (size_t c = 0; c < din; c++) p[c] += row[c];
    float cnt = (float)j->lens[i];
    for (size_t c = 0; c < din; c++) p[c] /= cnt;
}

void gtr_head_forward(const gtr_head *h, const gtr_kernels *kern, gtr_pool *pool,
                      const float *hidden, const size_t *lens, const size_t *first, size_t n,
                      float *pooled, float *out, gtr_probe_fn probe, void *probe_user)
{
    size_t din = (size_t)h->d_in, dout = (size_t)h->d_out;
    pool_job pj = {hidden, lens, first, din, pooled};
    gtr_pool_for(pool, n, pool_task, &pj);
    if (probe)
        for (size_t i = 0; i < n; i++) probe(probe_user, i, "pooled", pooled + i * din, 1, din);
    if (h->has_dense) {
        gtr_linear(kern, pool, &h->dense, pooled, n, din, out, dout, 0);
        for (size_t i = 0; i < n; i++) {
            float *o = out + i * dout;
            if (h->b)
                for (size_t j = 0; j < dout; j++) o[j] += h->b[j];
            if (h->act == GTR_ACT_TANH)
                for (size_t j = 0; j < dout; j++) o[j] = tanhf(o[j]);
        }
    } else {
        memcpy(out, pooled, n * din * sizeof *out);
    }
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * dout;
        if (probe) probe(probe_user, i, "dense", o, 1, dout);
        if (h->normalize) {
            double ss = 0;
            for (size_t j = 0; j < dout; j++) ss += (double)o[j] * o[j];
            float norm = (float)sqrt(ss);
            if (norm < 1e-12f) norm = 1e-12f;
            for (size_t j = 0; j < dout; j++) o[j] /= norm;
        }
        if (probe) probe(probe_user, i, "embedding", o, 1, dout);
    }
}
