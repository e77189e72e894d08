/* packed.c — encoder weights stored packed for the kernels, so that a `gtr quantize` copy is
 * used from its memory mapping in place: loading it costs the page faults of what is read,
 * nothing is converted or copied, and every process that maps the file shares its pages.
 *
 * A packed file is a safetensors file whose __metadata__ says "gtr_layout": GTR_WMAT_LAYOUT_NAME
 * (plus "gtr_quantization" and "gtr_source_fingerprint", as every `gtr quantize` output). Each
 * layer's four Linear matrices are stored as the encoder computes with them — q, k, v stacked
 * as "qkv", wi_0 and wi_1 stacked as "wi" (gated models), "o", "wo":
 *   encoder.block.<i>.packed.<m>          F32 | BF16 | I8  [np, kp/g, nr, g]
 *   encoder.block.<i>.packed.<m>_scale    F32 [np * nr]    (I8 only: per-row scales)
 *   encoder.block.<i>.packed.<m>_colsum   I32 [np * nr]    (I8 only: Σ_k q per row)
 * The 4-d shape is the kernels' panel layout itself (np panels of nr rows, kp/g groups of g
 * consecutive k values, zero padded), so a file describes its layout completely: kernels that
 * read (nr, kp) natively use it in place, any other table gets an exact private repack (the
 * stored values moved, never re-rounded). The embedding (BF16, or I8 + _scale) and the F32
 * vectors are stored as in every quantised file. The writer aligns every tensor to 64 bytes,
 * adding "gtr_pad.<n>" U8 tensors where needed, so the file stays valid safetensors. */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mat_names[GTR_PACKED_NMATS] = {"qkv", "o", "wi", "wo"};

void gtr_packed_name(char *buf, size_t cap, int layer, int mat, const char *suffix)
{
    snprintf(buf, cap, "encoder.block.%d.packed.%s%s", layer, mat_names[mat], suffix ? suffix : "");
}

void gtr_packed_shape(const gtr_t5_config *c, int mat, size_t *n, size_t *k)
{
    size_t d = (size_t)c->d_model, inner = (size_t)c->num_heads * (size_t)c->d_kv;
    size_t ffw = (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff;
    const size_t rows[GTR_PACKED_NMATS] = {3 * inner, d, ffw, d};
    const size_t cols[GTR_PACKED_NMATS] = {d, inner, d, (size_t)c->d_ff};
    *n = rows[mat];
    *k = cols[mat];
}

gtr_wtype gtr_packed_wtype(gtr_dtype_id dt, bool *ok)
{
    *ok = true;
    if (dt == GTR_DT_F32) return GTR_W_F32;
    if (dt == GTR_DT_BF16) return GTR_W_BF16;
    if (dt == GTR_DT_I8) return GTR_W_INT8;
    *ok = false;
    return GTR_W_F32;
}

/* One companion vector of an I8 matrix: dtype dt, [rows], present. */
static gtr_status companion(gtr_tensor_set *set, const char *name, gtr_dtype_id dt, size_t rows,
                            const char *of, gtr_tensor **out, gtr_error *err)
{
    gtr_tensor *t = *out = gtr_tensor_find(set, name);
    if (!t)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing tensor '%s' (of the packed '%s')",
                          gtr_tensor_file(set, NULL), name, of);
    if (t->dtype != dt || t->ndim != 1 || t->shape[0] != rows)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' must be %s [%zu]",
                          gtr_tensor_file(set, t), name, gtr_tensor_dtype_name(dt), rows);
    if (((uintptr_t)t->data & 3) != 0)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' is not aligned to 4 bytes in the file",
                          gtr_tensor_file(set, t), name);
    return GTR_OK;
}

gtr_status gtr_packed_check_scales(gtr_tensor_set *set, const gtr_tensor *sc, size_t rows, gtr_error *err)
{
    /* the scales are read by every product anyway; a non-finite or negative one would give
     * NaN or nonsense vectors, so it is refused here (codes cannot be non-finite) */
    const float *s = (const float *)(const void *)sc->data;
    for (size_t r = 0; r < rows; r++)
        if (!(s[r] >= 0.0f && s[r] <= 3.0e38f)) /* NaN fails both */
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': scale of row %zu is %g (must be finite and >= 0)",
                              gtr_tensor_file(set, sc), sc->name, r, (double)s[r]);
    return GTR_OK;
}

gtr_status gtr_packed_get(gtr_tensor_set *set, const gtr_t5_config *c, int layer, int mat,
                          gtr_wmat *view, gtr_error *err)
{
    char nm[160], sn[176];
    size_t n, k;
    gtr_packed_name(nm, sizeof nm, layer, mat, NULL);
    gtr_packed_shape(c, mat, &n, &k);
    gtr_tensor *t = gtr_tensor_find(set, nm);
    if (!t)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing tensor '%s' (the file declares packed weights)",
                          gtr_tensor_file(set, NULL), nm);
    const char *file = gtr_tensor_file(set, t);
    bool ok;
    gtr_wtype type = gtr_packed_wtype(t->dtype, &ok);
    if (!ok)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: packed tensor '%s' has dtype %s; expected F32, BF16 or I8",
                          file, nm, gtr_tensor_dtype_name(t->dtype));
    size_t g = gtr_wmat_kgroup(type);
    /* [np, kp/g, nr, g] must be a whole layout for [n, k]: every row in some panel, no
     * panel without rows, k padded by less than one 64-value tile */
    if (t->ndim != 4 || t->shape[3] != g || !t->shape[2] || t->shape[1] * g < k ||
        t->shape[1] * g >= k + 64 || t->shape[0] != (n + t->shape[2] - 1) / t->shape[2])
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "%s: packed tensor '%s' has shape [%zu, %zu, %zu, %zu] (%d dims), which is "
                          "no panel layout of the [%zu, %zu] matrix config.json describes",
                          file, nm, t->shape[0], t->shape[1], t->shape[2], t->shape[3], t->ndim, n, k);
    size_t nr = t->shape[2], kp = t->shape[1] * g, rows = t->shape[0] * nr;
    gtr_tensor *sc = NULL, *cs = NULL;
    if (type == GTR_W_INT8) {
        gtr_status st;
        snprintf(sn, sizeof sn, "%s%s", nm, GTR_QUANT_SCALE_SUFFIX);
        if ((st = companion(set, sn, GTR_DT_F32, rows, nm, &sc, err))) return st;
        snprintf(sn, sizeof sn, "%s%s", nm, GTR_PACKED_COLSUM_SUFFIX);
        if ((st = companion(set, sn, GTR_DT_I32, rows, nm, &cs, err))) return st;
        if ((st = gtr_packed_check_scales(set, sc, rows, err))) return st;
    }
    return gtr_wmat_view(view, type, n, k, nr, kp, t->data, sc ? (const float *)(const void *)sc->data : NULL,
                         cs ? (const int32_t *)(const void *)cs->data : NULL, err);
}

gtr_status gtr_packed_load(const gtr_wmat *view, const gtr_kernels *kern, gtr_wtype wtype,
                           gtr_pool *pool, float *tmp, gtr_wmat *w, bool *in_place, gtr_error *err)
{
    *in_place = false;
    if (view->type == wtype) return gtr_wmat_adopt(kern, view, w, in_place, err);
    /* another compute precision than stored (an int8 copy loaded with --dtype f32, ...): the
     * stored values as float32, packed as any float checkpoint is */
    gtr_wmat_rows_f32_pool(view, pool, tmp);
    return gtr_wmat_pack_pool(kern, pool, w, tmp, view->n, view->k, wtype, err);
}

gtr_status gtr_packed_keep_maps(gtr_t5 *m, gtr_tensor_set *set, gtr_error *err)
{
    if (!set->n_src) return GTR_OK;
    gtr_mmap *maps = gtr_xcalloc(set->n_src, sizeof *maps, "mapped weights", err);
    if (!maps) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < set->n_src; i++) {
        maps[i] = set->src[i].map;
        memset(&set->src[i].map, 0, sizeof set->src[i].map);
    }
    m->maps = maps;
    m->n_maps = set->n_src;
    return GTR_OK;
}
