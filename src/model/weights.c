/* weights.c — a set of named tensor views over memory-mapped checkpoint files: which file a
 * module directory uses, lookup with dtype/shape checks whose errors name the file and tensor,
 * detection of tensors nobody asked for, and conversion to float32. After a tensor has been
 * converted, its pages of the mapping are dropped, so an F16 checkpoint converted for F32
 * compute does not also stay resident as F16. */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *gtr_tensor_dtype_name(gtr_dtype_id dt)
{
    switch (dt) {
    case GTR_DT_F32: return "F32";
    case GTR_DT_F64: return "F64";
    case GTR_DT_F16: return "F16";
    case GTR_DT_BF16: return "BF16";
    case GTR_DT_I8: return "I8";
    case GTR_DT_U8: return "U8";
    case GTR_DT_I16: return "I16";
    case GTR_DT_I32: return "I32";
    case GTR_DT_I64: return "I64";
    case GTR_DT_BOOL: return "BOOL";
    }
    return "?";
}

gtr_status gtr_tensor_set_add(gtr_tensor_set *s, const char *name, size_t name_len,
                              const gtr_tensor *t, gtr_error *err)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->t[i].name) == name_len && !memcmp(s->t[i].name, name, name_len))
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' is stored twice",
                              t->source >= 0 && (size_t)t->source < s->n_src
                                  ? s->src[t->source].path : "checkpoint",
                              s->t[i].name);
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        gtr_tensor *nt = gtr_xrealloc(s->t, cap * sizeof *nt, "tensor list", err);
        if (!nt) return GTR_ERR_NOMEM;
        s->t = nt;
        s->cap = cap;
    }
    char *nm = gtr_xmalloc(name_len + 1, "tensor name", err);
    if (!nm) return GTR_ERR_NOMEM;
    memcpy(nm, name, name_len);
    nm[name_len] = '\0';
    s->t[s->n] = *t;
    s->t[s->n].name = nm;
    s->t[s->n].used = false;
    s->n++;
    return GTR_OK;
}

void gtr_tensor_set_free(gtr_tensor_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    for (size_t i = 0; i < s->n_src; i++) {
        gtr_mmap_close(&s->src[i].map);
        free(s->src[i].path);
    }
    free(s->src);
    memset(s, 0, sizeof *s);
}

/* Map a file and register it as a source; *idx receives its index. */
static gtr_status add_source(gtr_tensor_set *s, const char *path, int *idx, gtr_error *err)
{
    gtr_tensor_source *ns = gtr_xrealloc(s->src, (s->n_src + 1) * sizeof *ns, "sources", err);
    if (!ns) return GTR_ERR_NOMEM;
    s->src = ns;
    gtr_tensor_source *src = &s->src[s->n_src];
    memset(src, 0, sizeof *src);
    if (!(src->path = strdup(path))) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    gtr_status st = gtr_mmap_open(path, &src->map, err);
    if (st) {
        free(src->path);
        return st;
    }
    *idx = (int)s->n_src++;
    return GTR_OK;
}

static gtr_status open_file(gtr_tensor_set *s, const char *path, bool torch, gtr_error *err)
{
    int idx = -1;
    gtr_status st = add_source(s, path, &idx, err);
    if (st) return st;
    const gtr_mmap *m = &s->src[idx].map;
    return torch ? gtr_torch_zip_parse(m->data, m->size, path, idx, s, err)
                 : gtr_safetensors_parse(m->data, m->size, path, idx, s, err);
}

/* Sharded checkpoints: "<base>.index.json" with {"weight_map": {tensor: file}}; every file
 * named there is opened once (the tensors' names come from the shards themselves). */
static gtr_status open_sharded(gtr_tensor_set *s, const char *dir, const char *index_path, bool torch,
                               gtr_error *err)
{
    gtr_error e2;
    json_t *j = gtr_json_load_file(index_path, &e2);
    if (!j) {
        if (err) *err = e2;
        return e2.code;
    }
    gtr_status st = GTR_OK;
    json_t *wm = json_object_get(j, "weight_map");
    if (!json_is_object(wm)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    const char **files = gtr_xcalloc(json_object_size(wm) + 1, sizeof *files, "shards", err);
    if (!files) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    size_t nf = 0;
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || !strcmp(f, "..")) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': bad shard file name", index_path, key);
            break;
        }
        bool seen = false;
        for (size_t i = 0; i < nf && !seen; i++) seen = !strcmp(files[i], f);
        if (!seen) files[nf++] = f;
    }
    for (size_t i = 0; i < nf && !st; i++) {
        char *p = gtr_path_join(dir, files[i]);
        if (!p) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            break;
        }
        if (!gtr_file_exists(p)) st = gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing file (listed in %s)", p, index_path);
        else st = open_file(s, p, torch, err);
        free(p);
    }
    /* The index must tell the truth: a tensor it names is in the shard it names (transformers
     * loads by the index, so a lying one means the shards are not the checkpoint it describes). */
    json_object_foreach(wm, key, v)
    {
        if (st) break;
        const gtr_tensor *t = NULL;
        for (size_t i = 0; i < s->n && !t; i++)
            if (!strcmp(s->t[i].name, key)) t = &s->t[i];
        const char *f = json_string_value(v), *in = t ? gtr_tensor_file(s, t) : NULL;
        const char *base = in ? strrchr(in, '/') : NULL;
        base = base ? base + 1 : in;
        if (!t)
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' is listed in %s but no shard holds it",
                            index_path, key, f);
        else if (strcmp(base, f))
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' is listed in %s but is stored in %s",
                            index_path, key, f, in);
    }
    free(files);
done:
    json_decref(j);
    return st;
}

gtr_status gtr_tensor_set_open_dir(gtr_tensor_set *set, const char *dir, gtr_error *err)
{
    static const struct {
        const char *name;
        bool torch, index;
    } cands[] = {{"model.safetensors", false, false},
                 {"model.safetensors.index.json", false, true},
                 {"pytorch_model.bin", true, false},
                 {"pytorch_model.bin.index.json", true, true}};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char *p = gtr_path_join(dir, cands[i].name);
        if (!p) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        if (gtr_file_exists(p)) {
            gtr_status st = cands[i].index ? open_sharded(set, dir, p, cands[i].torch, err)
                                           : open_file(set, p, cands[i].torch, err);
            free(p);
            return st;
        }
        free(p);
    }
    return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                      "%s: missing weights (no model.safetensors or pytorch_model.bin)", dir);
}

const char *gtr_tensor_file(const gtr_tensor_set *s, const gtr_tensor *t)
{
    if (t && t->source >= 0 && (size_t)t->source < s->n_src) return s->src[t->source].path;
    return s->n_src ? s->src[0].path : "checkpoint";
}

gtr_tensor *gtr_tensor_find(gtr_tensor_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) {
            s->t[i].used = true;
            return &s->t[i];
        }
    return NULL;
}

static void fmt_shape(char *buf, size_t cap, int nd, const size_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%zu", i ? ", " : "", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

gtr_status gtr_tensor_get(gtr_tensor_set *s, const char *name, int ndim, const size_t *shape,
                          gtr_tensor **out, gtr_error *err)
{
    *out = NULL;
    gtr_tensor *t = gtr_tensor_find(s, name);
    if (!t)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing tensor '%s'", gtr_tensor_file(s, NULL),
                          name);
    if (t->dtype != GTR_DT_F32 && t->dtype != GTR_DT_F16 && t->dtype != GTR_DT_BF16)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s' has dtype %s; expected F32, F16 or BF16",
                          gtr_tensor_file(s, t), name, gtr_tensor_dtype_name(t->dtype));
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[160], want[160];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "%s: tensor '%s' has shape %s, expected %s from the config",
                          gtr_tensor_file(s, t), name, got, want);
    }
    *out = t;
    return GTR_OK;
}

gtr_status gtr_tensor_check_unused(const gtr_tensor_set *s, const char *const *ignore_prefixes,
                                   gtr_error *err)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->t[i].used) continue;
        bool ignored = false;
        for (const char *const *p = ignore_prefixes; p && *p && !ignored; p++)
            ignored = !strncmp(s->t[i].name, *p, strlen(*p));
        if (!ignored)
            return gtr_seterr(err, GTR_ERR_FORMAT,
                              "%s: unexpected tensor '%s' (not part of the model config.json describes)",
                              gtr_tensor_file(s, &s->t[i]), s->t[i].name);
    }
    return GTR_OK;
}

/* ---- conversion ---------------------------------------------------------- */

static inline float load_elem(const uint8_t *p, gtr_dtype_id dt)
{
    switch (dt) {
    case GTR_DT_F32: {
        float f;
        memcpy(&f, p, 4); /* may be unaligned */
        return f;
    }
    case GTR_DT_F16: return gtr_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    case GTR_DT_BF16: return gtr_bf16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    default: return 0.0f; /* unreachable: gtr_tensor_get admits float types only */
    }
}

typedef struct {
    const gtr_tensor *t;
    float *dst;
    size_t chunk;
    bool contiguous;
} convert_job;

#define CONVERT_CHUNK ((size_t)1 << 18)

static void convert_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    convert_job *j = ctx;
    const gtr_tensor *t = j->t;
    size_t es = gtr_dtype_size(t->dtype);
    size_t i0 = c * j->chunk, i1 = GTR_MIN(t->count, i0 + j->chunk);
    if (j->contiguous) {
        if (t->dtype == GTR_DT_F32) {
            memcpy(j->dst + i0, t->data + i0 * 4, (i1 - i0) * 4);
            return;
        }
        if (t->dtype == GTR_DT_F16) {
            gtr_f16_to_f32_n(t->data + i0 * 2, j->dst + i0, i1 - i0);
            return;
        }
        for (size_t i = i0; i < i1; i++) j->dst[i] = load_elem(t->data + i * es, t->dtype);
        return;
    }
    /* Strided (a view saved without .contiguous()): element offset from the flat index. */
    for (size_t i = i0; i < i1; i++) {
        size_t rem = i, off = 0;
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += rem % t->shape[d] * t->stride[d];
            rem /= t->shape[d];
        }
        j->dst[i] = load_elem(t->data + off * es, t->dtype);
    }
}

gtr_status gtr_tensor_to_f32(gtr_tensor_set *s, const gtr_tensor *t, float *dst, gtr_pool *pool,
                             gtr_error *err)
{
    if (t->dtype != GTR_DT_F32 && t->dtype != GTR_DT_F16 && t->dtype != GTR_DT_BF16)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': cannot convert %s to float32",
                          gtr_tensor_file(s, t), t->name, gtr_tensor_dtype_name(t->dtype));
    if (t->count == 0) return GTR_OK;
    convert_job j = {t, dst, CONVERT_CHUNK, true};
    size_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) j.contiguous = false;
        want *= t->shape[d];
    }
    gtr_pool_for(pool, (t->count + j.chunk - 1) / j.chunk, convert_task, &j);
    gtr_tensor_drop(s, t);
    return GTR_OK;
}

void gtr_tensor_set_drop_range(const gtr_tensor_set *s, const void *p, size_t len)
{
    const uint8_t *q = p;
    for (size_t i = 0; q && i < s->n_src; i++) {
        const gtr_mmap *m = &s->src[i].map;
        if (m->data && q >= m->data && len <= m->size && (size_t)(q - m->data) <= m->size - len) {
            gtr_mmap_drop(m, (size_t)(q - m->data), len);
            return;
        }
    }
}

void gtr_tensor_drop(const gtr_tensor_set *s, const gtr_tensor *t)
{
    if (t) gtr_tensor_set_drop_range(s, t->data, t->span);
}

/* ---- weights: float or int8 codes with scales ----------------------------- */

gtr_status gtr_wtensor_get(gtr_tensor_set *s, const char *name, const size_t *shape, gtr_wtensor *out,
                           gtr_error *err)
{
    memset(out, 0, sizeof *out);
    gtr_tensor *t = gtr_tensor_find(s, name);
    if (!t || t->dtype != GTR_DT_I8) return gtr_tensor_get(s, name, 2, shape, &out->w, err);
    const char *file = gtr_tensor_file(s, t);
    if (t->quant == GTR_QUANT_UNKNOWN)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s' is I8 and the file's __metadata__ \"gtr_quantization\" is "
                          "not one this version reads (\"%s\")", file, name, GTR_QUANT_INT8_NAME);
    if (t->quant != GTR_QUANT_INT8_V1)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s' is I8 but the file's __metadata__ does not declare "
                          "\"gtr_quantization\": \"%s\" (only int8 files written by gtr quantize load)",
                          file, name, GTR_QUANT_INT8_NAME);
    if (t->ndim != 2 || t->shape[0] != shape[0] || t->shape[1] != shape[1]) {
        size_t one[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "%s: tensor '%s' has shape [%zu, %zu] (%d dims), expected [%zu, %zu] from the config",
                          file, name, one[0], one[1], t->ndim, shape[0], shape[1]);
    }
    char sn[512];
    snprintf(sn, sizeof sn, "%s%s", name, GTR_QUANT_SCALE_SUFFIX);
    gtr_tensor *sc = gtr_tensor_find(s, sn);
    if (!sc)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: tensor '%s' is I8 but its scales '%s' are missing",
                          file, name, sn);
    if (sc->dtype != GTR_DT_F32 || sc->ndim != 1 || sc->shape[0] != shape[0])
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s' must be F32 [%zu] (one scale per row of '%s')",
                          gtr_tensor_file(s, sc), sn, shape[0], name);
    out->w = t;
    out->scale = sc;
    return GTR_OK;
}

/* Element (r, c) of a 2-D tensor. */
static inline const uint8_t *elem2(const gtr_tensor *t, size_t r, size_t c)
{
    return t->data + (r * t->stride[0] + c * t->stride[1]) * gtr_dtype_size(t->dtype);
}

static inline float scale_at(const gtr_tensor *sc, size_t r)
{
    float f;
    memcpy(&f, sc->data + r * sc->stride[0] * 4, 4);
    return f;
}

typedef struct {
    const gtr_tensor *w, *sc;
    size_t row0, rows, cols;
    float *dst;
} dequant_job;

#define DEQUANT_ROWS 64

static void dequant_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    const dequant_job *j = ctx;
    for (size_t r = c * DEQUANT_ROWS; r < GTR_MIN(j->rows, (c + 1) * DEQUANT_ROWS); r++) {
        size_t gr = j->row0 + r;
        float s = scale_at(j->sc, gr);
        float *d = j->dst + r * j->cols;
        for (size_t k = 0; k < j->cols; k++) d[k] = (float)*(const int8_t *)elem2(j->w, gr, k) * s;
    }
}

gtr_status gtr_wtensor_rows_f32(gtr_tensor_set *s, const gtr_wtensor *t, size_t row0, size_t rows,
                                float *dst, gtr_pool *pool, gtr_error *err)
{
    const gtr_tensor *w = t->w;
    if (row0 > gtr_wtensor_rows(t) || rows > gtr_wtensor_rows(t) - row0)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "%s: rows [%zu, +%zu) of '%s' out of range",
                          gtr_tensor_file(s, w), row0, rows, w->name);
    if (rows == 0) return GTR_OK;
    if (t->pk) { /* a packed file's matrix (its scales were checked when it was found) */
        gtr_wmat_rows_f32(t->pk, t->row0 + row0, rows, dst);
        return GTR_OK;
    }
    if (!t->scale) {
        /* a view of the rows: same strides, fewer rows */
        gtr_tensor v = *w;
        size_t es = gtr_dtype_size(w->dtype), last = 0;
        v.data = w->data + row0 * w->stride[0] * es;
        v.shape[0] = rows;
        v.count = rows * (w->ndim > 1 ? w->shape[1] : 1);
        for (int d = 0; d < v.ndim; d++)
            if (v.shape[d]) last += (v.shape[d] - 1) * v.stride[d];
        v.span = v.count ? (last + 1) * es : 0;
        return gtr_tensor_to_f32(s, &v, dst, pool, err);
    }
    /* I8: validate the slice (codes and scales), then dequantise in parallel */
    gtr_status st = gtr_wtensor_rows_q8(s, t, row0, rows, NULL, NULL, err);
    if (st) return st;
    dequant_job j = {w, t->scale, row0, rows, w->shape[1], dst};
    gtr_pool_for(pool, (rows + DEQUANT_ROWS - 1) / DEQUANT_ROWS, dequant_task, &j);
    return GTR_OK;
}

gtr_status gtr_wtensor_rows_q8(gtr_tensor_set *s, const gtr_wtensor *t, size_t row0, size_t rows,
                               int8_t *q, float *scales, gtr_error *err)
{
    const gtr_tensor *w = t->w;
    if (!t->scale || row0 > gtr_wtensor_rows(t) || rows > gtr_wtensor_rows(t) - row0)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "%s: '%s' is not an I8 tensor or rows out of range",
                          gtr_tensor_file(s, w), w->name);
    if (t->pk) {
        if (q) gtr_wmat_unpack_rows(t->pk, t->row0 + row0, rows, q);
        if (scales) memcpy(scales, t->pk->scales + t->row0 + row0, rows * sizeof(float));
        return GTR_OK;
    }
    size_t cols = w->shape[1];
    for (size_t r = 0; r < rows; r++) {
        float sc = scale_at(t->scale, row0 + r);
        if (!(sc >= 0.0f && sc <= 3.0e38f)) /* NaN fails both */
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': scale of row %zu is %g (must be finite and >= 0)",
                              gtr_tensor_file(s, t->scale), t->scale->name, row0 + r, (double)sc);
        if (scales) scales[r] = sc;
        const int8_t *src = (const int8_t *)elem2(w, row0 + r, 0);
        bool dense = w->stride[1] == 1;
        for (size_t c = 0; c < cols; c++) {
            int8_t v = dense ? src[c] : *(const int8_t *)elem2(w, row0 + r, c);
            if (v == -128)
                return gtr_seterr(err, GTR_ERR_FORMAT,
                                  "%s: tensor '%s': code -128 at [%zu, %zu] (int8-per-channel-v1 codes lie in [-127, 127])",
                                  gtr_tensor_file(s, w), w->name, row0 + r, c);
            if (q) q[r * cols + c] = v;
        }
    }
    return GTR_OK;
}

void gtr_wtensor_drop(const gtr_tensor_set *s, const gtr_wtensor *t)
{
    if (t->pk) return; /* a slice: the rest of the packed matrix is still to be read */
    gtr_tensor_drop(s, t->w);
    gtr_tensor_drop(s, t->scale);
}

bool gtr_tensor_contiguous(const gtr_tensor *t)
{
    size_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return false;
        want *= t->shape[d];
    }
    return t->dtype == GTR_DT_F32 || t->dtype == GTR_DT_F16 || t->dtype == GTR_DT_BF16;
}
