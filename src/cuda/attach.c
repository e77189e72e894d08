/* attach.c — give the CUDA plugin a model's weights, once: the encoder's tensors are read again
 * from the directory (through the same lookup and shape checks as the CPU load, so both see the
 * same weights) and uploaded one at a time as float32; the plugin converts them to its compute
 * precision on the device. The relative-position buckets are computed here, by the CPU's own
 * gtr_t5_bucket, so both backends bucket identically. */
#include "cuda/cuda.h"
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gtr_cuda_pos_table(const float *rel_bias, int heads, int num_buckets, int max_distance,
                        int max_len, float *out)
{
    size_t w = 2 * (size_t)max_len - 1;
    for (long rel = -(long)(max_len - 1); rel <= (long)(max_len - 1); rel++) {
        int b = gtr_t5_bucket(rel, num_buckets, max_distance);
        for (int h = 0; h < heads; h++)
            out[(size_t)h * w + (size_t)(rel + max_len - 1)] = rel_bias[(size_t)b * heads + h];
    }
}

static gtr_status up_rows(gtr_cuda *c, gtr_tensor_set *set, const gtr_wtensor *const *parts, int np,
                          const char *name, float *buf, gtr_pool *pool, gtr_error *err)
{
    size_t rows = 0, cols = gtr_wtensor_cols(parts[0]);
    gtr_status st;
    for (int i = 0; i < np; i++) {
        size_t r = gtr_wtensor_rows(parts[i]);
        if ((st = gtr_wtensor_rows_f32(set, parts[i], 0, r, buf + rows * cols, pool, err))) return st;
        rows += r;
    }
    return gtr_cuda_upload(c, name, buf, rows, cols, err);
}

gtr_status gtr_cuda_attach(gtr_cuda *c, const gtr_model_config *mc, bool bf16, int max_len, gtr_pool *pool, gtr_error *err)
{
    const gtr_t5_config *t = &mc->t5;
    size_t d = (size_t)t->d_model, inner = (size_t)t->num_heads * (size_t)t->d_kv;
    gtr_cuda_cfg cfg = {
        .d_model = t->d_model, .d_ff = t->d_ff, .d_kv = t->d_kv, .num_heads = t->num_heads,
        .num_layers = t->num_layers, .vocab_size = t->vocab_size, .eps = t->eps,
        .gated = t->ff == GTR_FF_GATED_GELU, .max_len = max_len, .has_dense = mc->has_dense,
        .dense_in = mc->dense_in, .dense_out = mc->dense_out, .dense_bias = mc->dense_bias,
        .dense_tanh = mc->dense_act == GTR_ACT_TANH, .normalize = mc->normalize, .bf16 = bf16};
    gtr_status st = gtr_cuda_create(c, &cfg, err);
    if (st) return st;
    gtr_tensor_set set = {0};
    gtr_t5_tensor_ref *refs = NULL;
    size_t nref = 0;
    float *buf = NULL, *pos = NULL;
    size_t big = GTR_MAX((size_t)t->vocab_size * d + (size_t)mc->dense_out * (size_t)mc->dense_in, GTR_MAX(3 * inner * d, 2 * (size_t)t->d_ff * d));
    if ((st = gtr_tensor_set_open_dir(&set, mc->transformer_dir, err)) ||
        (st = gtr_t5_tensor_list(&set, t, &refs, &nref, err)))
        goto done;
    if (!(buf = gtr_xmalloc(big * sizeof *buf, "CUDA upload buffer", err)) ||
        !(pos = gtr_xmalloc((size_t)t->num_heads * (2 * (size_t)max_len - 1) * sizeof *pos,
                            "position table", err))) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    /* refs: embedding, relative bias, final norm, then per layer ln_attn, ln_ff, q, k, v, o,
     * wi (or wi_0, wi_1), wo (gtr_t5_tensor_list's order) */
    size_t per_layer = 2 + 4 + (cfg.gated ? 2 : 1) + 1;
    if (nref != 3 + per_layer * (size_t)t->num_layers) {
        st = gtr_seterr(err, GTR_ERR_INTERNAL, "CUDA upload: %zu encoder tensors, expected %zu", nref,
                        3 + per_layer * (size_t)t->num_layers);
        goto done;
    }
    const gtr_wtensor *p[3] = {&refs[0].t};
    if ((st = up_rows(c, &set, p, 1, "embed", buf, pool, err))) goto done;
    if ((st = gtr_tensor_to_f32(&set, refs[1].t.w, buf, pool, err))) goto done;
    gtr_cuda_pos_table(buf, t->num_heads, t->num_buckets, t->max_distance, max_len, pos);
    if ((st = gtr_cuda_upload(c, "pos_table", pos, (size_t)t->num_heads, 2 * (size_t)max_len - 1, err)) ||
        (st = gtr_tensor_to_f32(&set, refs[2].t.w, buf, pool, err)) ||
        (st = gtr_cuda_upload(c, "final_ln", buf, 1, d, err)))
        goto done;
    for (int l = 0; l < t->num_layers; l++) {
        const gtr_t5_tensor_ref *r = refs + 3 + per_layer * (size_t)l;
        char name[32];
        static const char *const vec[2] = {"ln_attn", "ln_ff"};
        for (int v = 0; v < 2; v++) {
            snprintf(name, sizeof name, "%d.%s", l, vec[v]);
            if ((st = gtr_tensor_to_f32(&set, r[v].t.w, buf, pool, err)) ||
                (st = gtr_cuda_upload(c, name, buf, 1, d, err)))
                goto done;
        }
        const gtr_wtensor *qkv[3] = {&r[2].t, &r[3].t, &r[4].t}, *o[1] = {&r[5].t},
                          *wi[2] = {&r[6].t, &r[7].t}, *wo[1] = {&r[per_layer - 1].t};
        snprintf(name, sizeof name, "%d.qkv", l);
        if ((st = up_rows(c, &set, qkv, 3, name, buf, pool, err))) goto done;
        snprintf(name, sizeof name, "%d.o", l);
        if ((st = up_rows(c, &set, o, 1, name, buf, pool, err))) goto done;
        snprintf(name, sizeof name, "%d.wi", l);
        if ((st = up_rows(c, &set, wi, cfg.gated ? 2 : 1, name, buf, pool, err))) goto done;
        snprintf(name, sizeof name, "%d.wo", l);
        if ((st = up_rows(c, &set, wo, 1, name, buf, pool, err))) goto done;
    }
    gtr_tensor_set_free(&set);
    /* the Dense head (float32 on the device too: it is tiny) */
    if (mc->has_dense) {
        size_t ws[2] = {(size_t)mc->dense_out, (size_t)mc->dense_in}, bs[1] = {ws[0]};
        gtr_tensor *w, *b;
        if ((st = gtr_tensor_set_open_dir(&set, mc->dense_dir, err)) ||
            (st = gtr_tensor_get(&set, "linear.weight", 2, ws, &w, err)) ||
            (st = gtr_tensor_to_f32(&set, w, buf, pool, err)) ||
            (st = gtr_cuda_upload(c, "dense", buf, ws[0], ws[1], err)))
            goto done;
        if (mc->dense_bias && ((st = gtr_tensor_get(&set, "linear.bias", 1, bs, &b, err)) ||
                               (st = gtr_tensor_to_f32(&set, b, buf, pool, err)) ||
                               (st = gtr_cuda_upload(c, "dense_bias", buf, 1, bs[0], err))))
            goto done;
    }
done:
    gtr_tensor_set_free(&set);
    free(refs);
    free(buf);
    free(pos);
    return st;
}
