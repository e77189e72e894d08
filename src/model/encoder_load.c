/* encoder_load.c — the T5 encoder's weights from a checkpoint: every tensor looked up and
 * shape-checked before anything is converted, then each converted into the compute precision
 * (f32, bf16 or int8) and packed for the kernels, or used in place from a `gtr quantize` file
 * (packed.c), while the model fingerprint is folded in tensor by tensor. The float Linear
 * matrices go through pack_load.c, which reads each file value from memory once. */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The tensors of one layer, looked up (and shape-checked) before anything is converted.
 * Linear weights may be float or int8 codes with scales (a `gtr quantize` directory). */
typedef struct {
    gtr_tensor *ln_attn, *ln_ff;
    gtr_wtensor q, k, v, o, wi0, wi1, wo;
    gtr_wmat pk[GTR_PACKED_NMATS]; /* a packed file: views of qkv, o, wi, wo (packed.c) */
} layer_tensors;

static gtr_status get_layer(gtr_tensor_set *set, const gtr_t5_config *c, int inner, int i,
                            layer_tensors *lt, gtr_error *err)
{
    char nm[160];
    size_t d = (size_t)c->d_model, in = (size_t)inner, ff = (size_t)c->d_ff;
    size_t vec[1] = {d}, qkv[2] = {in, d}, o[2] = {d, in}, wi[2] = {ff, d}, wo[2] = {d, ff};
    gtr_status st;
#define NAME(suffix) snprintf(nm, sizeof nm, "encoder.block.%d.layer.%s", i, suffix)
#define GETV(field, suffix)                                                                     \
    NAME(suffix);                                                                               \
    if ((st = gtr_tensor_get(set, nm, 1, vec, &lt->field, err))) return st
#define GETW(field, suffix, shape)                                                              \
    NAME(suffix);                                                                               \
    if ((st = gtr_wtensor_get(set, nm, shape, &lt->field, err))) return st
    GETV(ln_attn, "0.layer_norm.weight");
    if (set->packed) {
        GETV(ln_ff, "1.layer_norm.weight");
        for (int j = 0; j < GTR_PACKED_NMATS; j++)
            if ((st = gtr_packed_get(set, c, i, j, &lt->pk[j], err))) return st;
        return GTR_OK;
    }
    GETW(q, "0.SelfAttention.q.weight", qkv);
    GETW(k, "0.SelfAttention.k.weight", qkv);
    GETW(v, "0.SelfAttention.v.weight", qkv);
    GETW(o, "0.SelfAttention.o.weight", o);
    GETV(ln_ff, "1.layer_norm.weight");
    if (c->ff == GTR_FF_GATED_GELU) {
        GETW(wi0, "1.DenseReluDense.wi_0.weight", wi);
        GETW(wi1, "1.DenseReluDense.wi_1.weight", wi);
    } else {
        GETW(wi0, "1.DenseReluDense.wi.weight", wi);
        lt->wi1 = (gtr_wtensor){0};
    }
    GETW(wo, "1.DenseReluDense.wo.weight", wo);
#undef GETW
#undef GETV
#undef NAME
    return GTR_OK;
}

/* The tied token embedding, stored as shared.weight, encoder.embed_tokens.weight or both
 * (the same parameter in transformers; shared.weight is the canonical one). */
static gtr_status find_embedding(gtr_tensor_set *set, const size_t shape[2], gtr_wtensor *emb,
                                 gtr_error *err)
{
    static const char *const names[] = {"shared.weight", "encoder.embed_tokens.weight"};
    gtr_wtensor found[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++) {
        gtr_status st;
        if (gtr_tensor_find(set, names[i]) && (st = gtr_wtensor_get(set, names[i], shape, &found[i], err)))
            return st;
    }
    *emb = found[0].w ? found[0] : found[1];
    if (!emb->w)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "%s: missing tensor 'shared.weight' (or 'encoder.embed_tokens.weight')",
                          gtr_tensor_file(set, NULL));
    return GTR_OK;
}

gtr_status gtr_t5_tensor_list(gtr_tensor_set *set, const gtr_t5_config *cfg, gtr_t5_tensor_ref **out,
                              size_t *n, gtr_error *err)
{
    *out = NULL;
    *n = 0;
    size_t d = (size_t)cfg->d_model, inner = (size_t)cfg->num_heads * (size_t)cfg->d_kv;
    size_t emb_shape[2] = {(size_t)cfg->vocab_size, d},
           rel_shape[2] = {(size_t)cfg->num_buckets, (size_t)cfg->num_heads}, vec[1] = {d};
    size_t cap = 3 + 9 * (size_t)cfg->num_layers, k = 0, L = (size_t)cfg->num_layers;
    /* one block: the refs, then (a packed file) each layer's four matrix views and the
     * names of the Linears sliced out of them; the caller frees it all with free() */
    const size_t NAME = 96;
    size_t views_at = (cap * sizeof(gtr_t5_tensor_ref) + 63) / 64 * 64;
    size_t names_at = views_at + (set->packed ? GTR_PACKED_NMATS * L * sizeof(gtr_wmat) : 0);
    gtr_t5_tensor_ref *r = gtr_xcalloc(1, names_at + (set->packed ? cap * NAME : 0), "tensor list", err);
    if (!r) return GTR_ERR_NOMEM;
    gtr_wmat *views = (gtr_wmat *)(void *)((char *)r + views_at);
    char *names = (char *)r + names_at;
    gtr_status st;
    gtr_wtensor emb = {0};
    gtr_tensor *rel, *fin;
    layer_tensors lt;
    if ((st = find_embedding(set, emb_shape, &emb, err))) goto fail;
    r[k++] = (gtr_t5_tensor_ref){"shared.weight", GTR_T5T_EMBED, emb};
    if ((st = gtr_tensor_get(set, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             2, rel_shape, &rel, err)) ||
        (st = gtr_tensor_get(set, "encoder.final_layer_norm.weight", 1, vec, &fin, err)))
        goto fail;
    r[k++] = (gtr_t5_tensor_ref){rel->name, GTR_T5T_VECTOR, {.w = rel}};
    r[k++] = (gtr_t5_tensor_ref){fin->name, GTR_T5T_VECTOR, {.w = fin}};
    for (int i = 0; i < cfg->num_layers; i++) {
        if ((st = get_layer(set, cfg, (int)inner, i, &lt, err))) goto fail;
        if (set->packed) { /* the Linears as row slices of the stacked matrices */
            /* transformers' names (ReLU models: one "wi") and each one's rows in its stack */
            bool gated = cfg->ff == GTR_FF_GATED_GELU;
            static const char *const lin_names[8] = {"0.SelfAttention.q", "0.SelfAttention.k",
                                                     "0.SelfAttention.v", "0.SelfAttention.o",
                                                     "1.DenseReluDense.wi_0", "1.DenseReluDense.wi_1",
                                                     "1.DenseReluDense.wo", "1.DenseReluDense.wi"};
            static const int mat_of[7] = {0, 0, 0, 1, 2, 2, 3}, slice_of[7] = {0, 1, 2, 0, 0, 1, 0};
            r[k++] = (gtr_t5_tensor_ref){lt.ln_attn->name, GTR_T5T_VECTOR, {.w = lt.ln_attn}};
            r[k++] = (gtr_t5_tensor_ref){lt.ln_ff->name, GTR_T5T_VECTOR, {.w = lt.ln_ff}};
            gtr_wmat *lv = &views[(size_t)i * GTR_PACKED_NMATS];
            for (int j = 0; j < GTR_PACKED_NMATS; j++) lv[j] = lt.pk[j];
            for (int j = 0; j < 7; j++) {
                if (j == 5 && !gated) continue;
                const gtr_wmat *pk = &lv[mat_of[j]];
                size_t parts = mat_of[j] == 0 ? 3 : mat_of[j] == 2 && gated ? 2 : 1, rows = pk->n / parts;
                char *nm = names + k * NAME, pn[160], sn[176];
                snprintf(nm, NAME, "encoder.block.%d.layer.%s.weight", i, lin_names[j == 4 && !gated ? 7 : j]);
                gtr_packed_name(pn, sizeof pn, i, mat_of[j], NULL);
                snprintf(sn, sizeof sn, "%s%s", pn, GTR_QUANT_SCALE_SUFFIX);
                r[k++] = (gtr_t5_tensor_ref){nm, GTR_T5T_LINEAR,
                                             {.w = gtr_tensor_find(set, pn),
                                              .scale = pk->type == GTR_W_INT8 ? gtr_tensor_find(set, sn) : NULL,
                                              .pk = pk, .row0 = (size_t)slice_of[j] * rows, .nrows = rows}};
            }
            continue;
        }
        const gtr_wtensor lin[7] = {lt.q, lt.k, lt.v, lt.o, lt.wi0, lt.wi1, lt.wo};
        r[k++] = (gtr_t5_tensor_ref){lt.ln_attn->name, GTR_T5T_VECTOR, {.w = lt.ln_attn}};
        r[k++] = (gtr_t5_tensor_ref){lt.ln_ff->name, GTR_T5T_VECTOR, {.w = lt.ln_ff}};
        for (int j = 0; j < 7; j++)
            if (lin[j].w) r[k++] = (gtr_t5_tensor_ref){lin[j].w->name, GTR_T5T_LINEAR, lin[j]};
    }
    static const char *const ignore[] = {"decoder.", "gtr_pad.", NULL};
    if ((st = gtr_tensor_check_unused(set, ignore, err))) goto fail;
    *out = r;
    *n = k;
    return GTR_OK;
fail:
    free(r);
    return st;
}

/* A float32 copy of a tensor in an aligned buffer, folded into the fingerprint under name. */
static gtr_status load_vec(gtr_tensor_set *set, const gtr_tensor *t, const char *name,
                           gtr_pool *pool, float **out, uint64_t *fp, gtr_error *err)
{
    *out = gtr_malloc_aligned(t->count * sizeof(float), err);
    if (!*out) return GTR_ERR_NOMEM;
    gtr_status st = gtr_tensor_to_f32(set, t, *out, pool, err);
    if (!st && (st = gtr_fingerprint_tensor(fp, pool, name, *out, t->shape[0],
                                            t->ndim > 1 ? t->count / t->shape[0] : 1, err)))
        gtr_error_prefix(err, "%s", gtr_tensor_file(set, t));
    return st;
}

/* Load buffers shared by every Linear: float32 rows (tmp) and, for int8 packing, codes (q)
 * and row scales (qs), each big enough for the largest (stacked) Linear. */
typedef struct {
    float *tmp;
    int8_t *q;
    float *qs;
    size_t floats, rows;
} load_buf;

/* load_buf's sizes: rows and floats of the largest (stacked) Linear. */
static void load_buf_dims(const gtr_t5_config *c, size_t *rows, size_t *floats)
{
    size_t d = (size_t)c->d_model, inner = (size_t)c->num_heads * (size_t)c->d_kv;
    size_t ffw = (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff;
    *rows = GTR_MAX(GTR_MAX(3 * inner, ffw), d);
    *floats = GTR_MAX(GTR_MAX(3 * inner, ffw) * d, d * (size_t)c->d_ff);
}

size_t gtr_t5_load_buffer_bytes(const gtr_t5_config *c, gtr_wtype wtype)
{
    size_t rows, floats;
    load_buf_dims(c, &rows, &floats);
    return floats * sizeof(float) + (wtype == GTR_W_INT8 ? floats + rows * sizeof(float) : 0);
}

/* Pack the row-wise concatenation of parts (each [rows_i, k]) as one weight matrix. Every
 * part is fingerprinted as float32 (dequantised when stored as int8: the fingerprint depends
 * on the values, not the file format). INT8 packing takes stored codes and scales as they
 * are and quantises float parts with gtr_quantize_rows_int8 — exactly what packing the
 * float32 original does — so a `gtr quantize` directory computes bit for bit like its source. */
static gtr_status load_linear(gtr_tensor_set *set, const gtr_wtensor *parts, int n_parts,
                              const gtr_kernels *kern, gtr_wtype wtype, gtr_pool *pool,
                              load_buf *b, gtr_wmat *w, uint64_t *fp, bool hash_f16, gtr_error *err)
{
    size_t rows = 0, k = gtr_wtensor_cols(&parts[0]);
    bool stored_codes = false; /* any part already int8 (an older `gtr quantize` file) */
    bool direct = n_parts <= 3; /* every part a contiguous float tensor: packed from the mapping */
    for (int i = 0; i < n_parts; i++) {
        stored_codes |= parts[i].scale != NULL;
        direct = direct && !parts[i].scale && !parts[i].pk && gtr_tensor_contiguous(parts[i].w);
    }
    if (direct) {
        const gtr_tensor *t[3] = {NULL, NULL, NULL};
        bool f16 = true;
        for (int i = 0; i < n_parts; i++) t[i] = parts[i].w, f16 = f16 && t[i]->dtype == GTR_DT_F16;
        int bad = -1;
        /* without the fingerprint: F16 (the hub's format) packed alone; F32 and BF16 keep the
         * fused pass, whose per-word check is their only finiteness check */
        gtr_status st = !hash_f16 && f16 ? gtr_pack_unhashed(kern, pool, t, n_parts, k, wtype, w, &bad, err)
                                         : gtr_pack_fingerprinted(kern, pool, t, n_parts, k, wtype, w, fp, &bad, err);
        if (st && bad >= 0) gtr_error_prefix(err, "%s", gtr_tensor_file(set, t[bad]));
        for (int i = 0; i < n_parts; i++) gtr_wtensor_drop(set, &parts[i]);
        return st;
    }
    for (int i = 0; i < n_parts; i++) {
        const gtr_wtensor *p = &parts[i];
        size_t pr = gtr_wtensor_rows(p);
        float *dst = b->tmp + rows * k;
        gtr_status st = gtr_wtensor_rows_f32(set, p, 0, pr, dst, pool, err);
        if (st) return st;
        if ((st = gtr_fingerprint_tensor(fp, pool, p->w->name, dst, pr, k, err)))
            return gtr_error_prefix(err, "%s", gtr_tensor_file(set, p->w));
        if (wtype == GTR_W_INT8 && stored_codes) {
            if (p->scale) st = gtr_wtensor_rows_q8(set, p, 0, pr, b->q + rows * k, b->qs + rows, err);
            else gtr_quantize_rows_int8(dst, pr, k, b->q + rows * k, b->qs + rows);
            if (st) return st;
        }
        gtr_wtensor_drop(set, p);
        rows += pr;
    }
    if (wtype == GTR_W_INT8 && stored_codes) return gtr_wmat_pack_int8(kern, w, b->q, b->qs, rows, k, err);
    /* float parts: rounded / quantised and packed on every thread (the same per-row
     * gtr_quantize_rows_int8 as above, so the result does not depend on the threads) */
    return gtr_wmat_pack_pool(kern, pool, w, b->tmp, rows, k, wtype, err);
}

/* Rows of the embedding in bf16 or int8 from float32 (tasks of EMBED_ROWS rows; the same
 * per-row rounding as one thread, so the table does not depend on the thread count). */
#define EMBED_ROWS 64
typedef struct {
    const float *src;
    size_t d, n;
    gtr_wtype type;
    void *dst;
    float *scale;
} embed_conv_job;

static void embed_conv_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    const embed_conv_job *j = ctx;
    size_t r0 = c * EMBED_ROWS, rows = GTR_MIN((size_t)EMBED_ROWS, j->n - r0), d = j->d;
    if (j->type == GTR_W_BF16) {
        uint16_t *e = (uint16_t *)j->dst + r0 * d;
        for (size_t i = 0; i < rows * d; i++) e[i] = gtr_bf16_daz(j->src[r0 * d + i]);
    } else {
        gtr_quantize_rows_int8(j->src + r0 * d, rows, d, (int8_t *)j->dst + r0 * d, j->scale + r0);
    }
}

/* The embedding table in the compute precision, converted a block of rows at a time through
 * b->tmp so no float32 copy of the whole table ever exists (the fingerprint is streamed over
 * the same float32 rows, so it equals hashing the whole float32 table). */
static gtr_status load_embedding(gtr_t5 *m, gtr_tensor_set *set, const gtr_wtensor *emb,
                                 gtr_wtype wtype, gtr_pool *pool, load_buf *b, uint64_t *fp,
                                 gtr_error *err)
{
    size_t V = gtr_wtensor_rows(emb), d = gtr_wtensor_cols(emb);
    size_t esz = wtype == GTR_W_F32 ? 4 : wtype == GTR_W_BF16 ? 2 : 1;
    m->embed_type = wtype;
    bool stored_ok;
    if (set->packed && gtr_packed_wtype(emb->w->dtype, &stored_ok) == wtype && stored_ok &&
        ((uintptr_t)emb->w->data & 63) == 0 && (!emb->scale || ((uintptr_t)emb->scale->data & 3) == 0)) {
        /* a packed file stores the table exactly as computed with (gtr_bf16_daz bits, or
         * gtr_quantize_rows_int8 codes and scales): used in place, like the Linear weights */
        gtr_status st;
        if (emb->scale && (st = gtr_packed_check_scales(set, emb->scale, V, err))) return st;
        m->embed = (void *)(uintptr_t)emb->w->data;
        m->embed_scale = emb->scale ? (float *)(uintptr_t)emb->scale->data : NULL;
        m->embed_borrowed = true;
        m->mapped_bytes += V * d * esz + (emb->scale ? V * sizeof(float) : 0);
        return GTR_OK;
    }
    if (wtype == GTR_W_F32 && !emb->scale) { /* float32 to float32: straight into the table */
        float *e = NULL;
        gtr_status st = load_vec(set, emb->w, "shared.weight", pool, &e, fp, err);
        m->embed = e;
        return st;
    }
    if (!(m->embed = gtr_malloc_aligned(V * d * esz, err))) return GTR_ERR_NOMEM;
    if (wtype == GTR_W_INT8 && !(m->embed_scale = gtr_malloc_aligned(V * sizeof(float), err)))
        return GTR_ERR_NOMEM;
    /* rows per block: an even count (the streamed fingerprint needs even pieces) */
    size_t R = b->floats / d;
    R = R > 2 ? R & ~(size_t)1 : 2;
    gtr_fp_stream f;
    gtr_fp_begin(&f, *fp, "shared.weight", V, d);
    for (size_t r0 = 0; r0 < V; r0 += R) {
        size_t n = GTR_MIN(R, V - r0);
        gtr_status st = gtr_wtensor_rows_f32(set, emb, r0, n, b->tmp, pool, err);
        if (st) return st;
        gtr_fp_feed(&f, pool, b->tmp, n * d);
        if (wtype == GTR_W_F32) {
            memcpy((float *)m->embed + r0 * d, b->tmp, n * d * sizeof(float));
        } else if (emb->scale && wtype == GTR_W_INT8) { /* stored codes: as they are */
            if ((st = gtr_wtensor_rows_q8(set, emb, r0, n, (int8_t *)m->embed + r0 * d, m->embed_scale + r0, err)))
                return st;
        } else { /* rounded / quantised row by row on every thread */
            embed_conv_job j = {b->tmp, d, n, wtype, (char *)m->embed + r0 * d * esz,
                           m->embed_scale ? m->embed_scale + r0 : NULL};
            gtr_pool_for(pool, (n + EMBED_ROWS - 1) / EMBED_ROWS, embed_conv_task, &j);
        }
    }
    gtr_wtensor_drop(set, emb);
    gtr_status st = gtr_fp_end(&f, fp, err);
    if (st) gtr_error_prefix(err, "%s", gtr_tensor_file(set, emb->w));
    return st;
}

gtr_status gtr_t5_load(gtr_t5 *m, const gtr_t5_config *cfg, gtr_tensor_set *set,
                       const gtr_kernels *kern, gtr_wtype wtype, gtr_pool *pool, uint64_t *fp,
                       bool hash_f16, gtr_error *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->inner = cfg->num_heads * cfg->d_kv;
    size_t d = (size_t)cfg->d_model, V = (size_t)cfg->vocab_size;
    size_t emb_shape[2] = {V, d}, rel_shape[2] = {(size_t)cfg->num_buckets, (size_t)cfg->num_heads},
           vec[1] = {d};
    gtr_status st;
    layer_tensors *lts = NULL;
    load_buf b = {0};

    /* 1. Look everything up and check shapes before converting anything (fail fast). */
    if (set->packed && !set->has_source_fp) {
        st = gtr_seterr(err, GTR_ERR_FORMAT,
                        "%s: packed weights without __metadata__ \"gtr_source_fingerprint\" (not written "
                        "by gtr quantize?)", gtr_tensor_file(set, NULL));
        goto fail;
    }
    gtr_wtensor emb = {0};
    gtr_tensor *rel, *fin;
    if ((st = find_embedding(set, emb_shape, &emb, err))) goto fail;
    if ((st = gtr_tensor_get(set, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             2, rel_shape, &rel, err)) ||
        (st = gtr_tensor_get(set, "encoder.final_layer_norm.weight", 1, vec, &fin, err)))
        goto fail;
    lts = gtr_xcalloc((size_t)cfg->num_layers, sizeof *lts, "layers", err);
    m->layers = gtr_xcalloc((size_t)cfg->num_layers, sizeof *m->layers, "layers", err);
    if (!lts || !m->layers) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < cfg->num_layers; i++)
        if ((st = get_layer(set, cfg, m->inner, i, &lts[i], err))) goto fail;
    /* transformers' T5EncoderModel ignores decoder weights of a full T5 checkpoint; a packed
     * file's pads only align the next tensor */
    static const char *const ignore[] = {"decoder.", "gtr_pad.", NULL};
    if ((st = gtr_tensor_check_unused(set, ignore, err))) goto fail;

    /* 2. Convert: vectors directly, the embedding and the Linear weights through one set of
     * buffers (the largest Linear) into the compute precision. Each source tensor's file
     * pages are dropped once converted. */
    load_buf_dims(cfg, &b.rows, &b.floats);
    b.tmp = gtr_malloc_aligned(b.floats * sizeof(float), err);
    if (wtype == GTR_W_INT8) {
        b.q = gtr_malloc_aligned(b.floats, err);
        b.qs = gtr_malloc_aligned(b.rows * sizeof(float), err);
    }
    if (!b.tmp || (wtype == GTR_W_INT8 && (!b.q || !b.qs))) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }
    if ((st = load_embedding(m, set, &emb, wtype, pool, &b, fp, err)) ||
        (st = load_vec(set, rel, rel->name, pool, &m->rel_bias, fp, err)) ||
        (st = load_vec(set, fin, fin->name, pool, &m->final_ln, fp, err)))
        goto fail;
    m->n_params = V * d + rel->count + d;
    m->bytes = V * d * (wtype == GTR_W_F32 ? 4 : wtype == GTR_W_BF16 ? 2 : 1) +
               (wtype == GTR_W_INT8 ? V * sizeof(float) : 0) + (rel->count + d) * sizeof(float);
    for (int i = 0; i < cfg->num_layers; i++) {
        layer_tensors *lt = &lts[i];
        gtr_t5_layer *l = &m->layers[i];
        gtr_wtensor qkv[3] = {lt->q, lt->k, lt->v}, wi[2] = {lt->wi0, lt->wi1};
        if ((st = load_vec(set, lt->ln_attn, lt->ln_attn->name, pool, &l->ln_attn, fp, err)) ||
            (st = load_vec(set, lt->ln_ff, lt->ln_ff->name, pool, &l->ln_ff, fp, err)))
            goto fail;
        if (set->packed) {
            gtr_wmat *dst[GTR_PACKED_NMATS] = {&l->qkv, &l->o, &l->wi, &l->wo};
            for (int j = 0; j < GTR_PACKED_NMATS; j++) {
                bool in_place;
                if ((st = gtr_packed_load(&lt->pk[j], kern, wtype, pool, b.tmp, dst[j], &in_place, err))) {
                    gtr_error_prefix(err, "%s", gtr_tensor_file(set, NULL));
                    goto fail;
                }
                if (in_place) {
                    m->mapped_bytes += dst[j]->bytes;
                } else { /* converted or repacked: its file pages are done with, like the F16 path's */
                    const gtr_wmat *v = &lt->pk[j];
                    size_t rows = (v->n + v->nr - 1) / v->nr * v->nr;
                    gtr_tensor_set_drop_range(set, v->data, rows * v->kp * gtr_wmat_esize(v->type));
                    if (v->scales) gtr_tensor_set_drop_range(set, v->scales, rows * sizeof(float));
                    if (v->colsum) gtr_tensor_set_drop_range(set, v->colsum, rows * sizeof(int32_t));
                }
            }
        } else if ((st = load_linear(set, qkv, 3, kern, wtype, pool, &b, &l->qkv, fp, hash_f16, err)) ||
            (st = load_linear(set, &lt->o, 1, kern, wtype, pool, &b, &l->o, fp, hash_f16, err)) ||
            (st = load_linear(set, wi, lt->wi1.w ? 2 : 1, kern, wtype, pool, &b, &l->wi, fp, hash_f16, err)) ||
            (st = load_linear(set, &lt->wo, 1, kern, wtype, pool, &b, &l->wo, fp, hash_f16, err)))
            goto fail;
        m->n_params += 2 * d + l->qkv.n * l->qkv.k + l->o.n * l->o.k + l->wi.n * l->wi.k +
                       l->wo.n * l->wo.k;
        m->bytes += 2 * d * sizeof(float) + l->qkv.bytes + l->o.bytes + l->wi.bytes + l->wo.bytes;
    }
    /* in-place weights point into the set's mappings: the model keeps them */
    if (m->mapped_bytes && (st = gtr_packed_keep_maps(m, set, err))) goto fail;
    gtr_free_aligned(b.tmp);
    gtr_free_aligned(b.q);
    gtr_free_aligned(b.qs);
    free(lts);
    return GTR_OK;
fail:
    gtr_free_aligned(b.tmp);
    gtr_free_aligned(b.q);
    gtr_free_aligned(b.qs);
    free(lts);
    gtr_t5_free(m);
    return st;
}
