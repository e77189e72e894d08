/* head.c — the sentence-transformers head for training: mean pooling over each text's tokens,
 * the Dense module (linear.weight [out, in], optional bias and tanh), L2 normalisation
 * x / max(‖x‖, 1e-12). The forward repeats the inference head's arithmetic exactly (model/
 * head.c), so embeddings agree bit for bit with gtr_model on the saved model.
 *
 * Backward, per text with e = o / ‖o‖:
 *   ∂/∂o = (de − e·(e·de)) / ‖o‖          (de / 1e-12 when the norm is clamped)
 *   ∂/∂W += ∂oᵀ · pooled,  ∂/∂pooled = ∂o · W,  every token row gets ∂pooled / len. */
#include "train/train_internal.h"

#include <math.h>
#include <string.h>

void gtr_tr_head_fwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x)
{
    size_t d = (size_t)m->d, dout = (size_t)m->d_out;
    for (size_t i = 0; i < x->n; i++) {
        float *p = a->pooled + i * d;
        const float *row = a->y + x->offs[i] * d;
        memset(p, 0, d * sizeof *p);
        for (size_t t = 0; t < x->lens[i]; t++, row += d)
            for (size_t j = 0; j < d; j++) p[j] += row[j];
        float cnt = (float)x->lens[i];
        for (size_t j = 0; j < d; j++) p[j] /= cnt;
    }
    if (m->cfg.has_dense) {
        gtr_linear(m->kern, pool, &m->dense_pk, a->pooled, x->n, d, a->dense, dout, 0);
        for (size_t i = 0; i < x->n; i++) {
            float *o = a->dense + i * dout;
            if (m->dense_b != SIZE_MAX)
                for (size_t j = 0; j < dout; j++) o[j] += m->p[m->dense_b + j];
            if (m->cfg.dense_act == GTR_ACT_TANH)
                for (size_t j = 0; j < dout; j++) o[j] = tanhf(o[j]);
        }
    } else {
        memcpy(a->dense, a->pooled, x->n * d * sizeof(float));
    }
    for (size_t i = 0; i < x->n; i++) {
        const float *o = a->dense + i * dout;
        float *e = a->emb + i * dout;
        if (!m->cfg.normalize) {
            memcpy(e, o, dout * sizeof *e);
            continue;
        }
        double ss = 0;
        for (size_t j = 0; j < dout; j++) ss += (double)o[j] * o[j];
        float norm = (float)sqrt(ss);
        if (norm < 1e-12f) norm = 1e-12f;
        for (size_t j = 0; j < dout; j++) e[j] = o[j] / norm;
    }
}

void gtr_tr_head_bwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                     const float *demb)
{
    size_t d = (size_t)m->d, dout = (size_t)m->d_out, n = x->n;
    /* normalisation (and tanh) */
    for (size_t i = 0; i < n; i++) {
        const float *de = demb + i * dout, *o = a->dense + i * dout, *e = a->emb + i * dout;
        float *dd = a->ddense + i * dout;
        if (m->cfg.normalize) {
            double ss = 0, dot = 0;
            for (size_t j = 0; j < dout; j++) {
                ss += (double)o[j] * o[j];
                dot += (double)e[j] * de[j];
            }
            double norm = sqrt(ss);
            if (norm < 1e-12) {
                for (size_t j = 0; j < dout; j++) dd[j] = (float)(de[j] / 1e-12);
            } else {
                for (size_t j = 0; j < dout; j++) dd[j] = (float)((de[j] - e[j] * dot) / norm);
            }
        } else {
            memcpy(dd, de, dout * sizeof *dd);
        }
        if (m->cfg.has_dense && m->cfg.dense_act == GTR_ACT_TANH)
            for (size_t j = 0; j < dout; j++) dd[j] *= 1.0f - o[j] * o[j];
    }
    /* Dense */
    if (m->cfg.has_dense) {
        gtr_tr_gemm_tn(m->kern, pool, dout, d, n, a->ddense, dout, a->pooled, d, 1.0f,
                       m->g + m->dense_w, d);
        if (m->dense_b != SIZE_MAX)
            for (size_t j = 0; j < dout; j++) {
                double s = 0;
                for (size_t i = 0; i < n; i++) s += a->ddense[i * dout + j];
                m->g[m->dense_b + j] += (float)s;
            }
        gtr_tr_gemm_nn(m->kern, pool, n, d, dout, a->ddense, dout, m->p + m->dense_w, d, 0.0f,
                       a->dpooled, d);
    } else {
        memcpy(a->dpooled, a->ddense, n * d * sizeof(float));
    }
    /* mean pooling */
    for (size_t i = 0; i < n; i++) {
        const float *dp = a->dpooled + i * d;
        float inv = 1.0f / (float)x->lens[i];
        float *row = a->dxn + x->offs[i] * d;
        for (size_t t = 0; t < x->lens[i]; t++, row += d)
            for (size_t j = 0; j < d; j++) row[j] = dp[j] * inv;
    }
}
