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

/* ---- fingerprint ----------------------------------------------------------- */

/* 64-bit FNV-1a over 8-byte words: hashing every weight costs about as much as reading it
 * once, far less than converting it. The same loop checks finiteness: a float is NaN or
 * infinite when its exponent bits are all ones; adding 1 to such an exponent carries into the
 * lane's sign bit (never into the other lane), so *bad collects that bit for both lanes of a
 * word in three integer operations, hidden behind the multiply chain of the hash. */
static uint64_t fnv_words(uint64_t h, const float *x, size_t n, uint64_t *bad)
{
    const uint64_t EXP = 0x7f8000007f800000ull, ONE = 0x0080000000800000ull;
    uint64_t b = 0;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, 8);
        b |= (w & EXP) + ONE;
        h = (h ^ w) * 0x100000001b3ull;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        b |= (uint64_t)((w & 0x7f800000u) + 0x00800000u);
        h = (h ^ w) * 0x100000001b3ull;
    }
    *bad |= b & 0x8000000080000000ull;
    return h;
}

#define FP_CHUNK GTR_FP_CHUNK

/* fnv_words on four chunks of n floats at once, one chain each: the value of each is its
 * own, but the four multiply chains overlap (one chain waits out the multiply's latency on
 * every word: 4 lanes hash about 3x the bytes per cycle, the hash being the slowest part of
 * loading a converted model). check = 0 for values known finite (F16 ones, whose conversion
 * reports an infinity or NaN): the same chains without the per-word check, which on AMD Zen 5
 * made the loop issue-bound (6 operations a word a lane) rather than bound by the multiply's
 * latency. Inlined into the two callers below, so each gets its own loop. */
static inline __attribute__((always_inline)) void fnv_words4_any(uint64_t h[4], const float *const x[4], size_t n,
                                                                 uint64_t bad[4], const int check)
{
    const uint64_t EXP = 0x7f8000007f800000ull, ONE = 0x0080000000800000ull;
    uint64_t h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, x[0] + i, 8);
        memcpy(&w1, x[1] + i, 8);
        memcpy(&w2, x[2] + i, 8);
        memcpy(&w3, x[3] + i, 8);
        if (check) {
            b0 |= (w0 & EXP) + ONE;
            b1 |= (w1 & EXP) + ONE;
            b2 |= (w2 & EXP) + ONE;
            b3 |= (w3 & EXP) + ONE;
        }
        h0 = (h0 ^ w0) * 0x100000001b3ull;
        h1 = (h1 ^ w1) * 0x100000001b3ull;
        h2 = (h2 ^ w2) * 0x100000001b3ull;
        h3 = (h3 ^ w3) * 0x100000001b3ull;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3;
    bad[0] |= b0 & 0x8000000080000000ull;
    bad[1] |= b1 & 0x8000000080000000ull;
    bad[2] |= b2 & 0x8000000080000000ull;
    bad[3] |= b3 & 0x8000000080000000ull;
    if (i < n)
        for (int l = 0; l < 4; l++) h[l] = fnv_words(h[l], x[l] + i, n - i, &bad[l]);
}

static void fnv_words4(uint64_t h[4], const float *const x[4], size_t n, uint64_t bad[4])
{
    fnv_words4_any(h, x, n, bad, 1);
}

static void fnv_words4_finite(uint64_t h[4], const float *const x[4], size_t n)
{
    uint64_t unused[4] = {0};
    fnv_words4_any(h, x, n, unused, 0);
}

/* The hash is: name (with its NUL), shape {rows, cols} as two u64, then for each chunk of
 * FP_CHUNK floats (the last one shorter) the FNV-1a-64 of its 8-byte words folded in order. */

typedef struct {
    const float *x;
    size_t n;
    uint64_t *out, *bad;
} fp_job;

/* chunks 4g .. 4g + 3 of the full ones (a group short of 4 repeats its first chunk in the
 * missing lanes and drops their results) */
static void fp_task(void *ctx, size_t g, int tid)
{
    (void)tid;
    fp_job *j = ctx;
    size_t full = j->n / FP_CHUNK, c0 = 4 * g, lanes = GTR_MIN((size_t)4, full - c0);
    uint64_t h[4] = {GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED}, bad[4] = {0, 0, 0, 0};
    const float *x[4];
    for (size_t l = 0; l < 4; l++) x[l] = j->x + (c0 + (l < lanes ? l : 0)) * FP_CHUNK;
    fnv_words4(h, x, FP_CHUNK, bad);
    for (size_t l = 0; l < lanes; l++) {
        j->out[c0 + l] = h[l];
        j->bad[c0 + l] = bad[l];
    }
}

void gtr_fp_begin(gtr_fp_stream *f, uint64_t h, const char *name, size_t rows, size_t cols)
{
    h = gtr_fnv1a64(name, strlen(name) + 1, h);
    uint64_t shape[2] = {rows, cols};
    f->h = gtr_fnv1a64(shape, sizeof shape, h);
    f->cur = GTR_FNV_SEED;
    f->in_chunk = 0;
    f->name = name;
    f->cols = cols ? cols : 1;
    f->fed = 0;
    f->bad_at = SIZE_MAX;
    f->bad = 0;
}

/* a piece had a non-finite value: find the first (the rare path, serial) */
static void note_bad(gtr_fp_stream *f, const float *x, size_t n)
{
    if (f->bad_at != SIZE_MAX) return;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            f->bad_at = f->fed + i;
            f->bad = x[i];
            return;
        }
}

void gtr_fp_feed(gtr_fp_stream *f, gtr_pool *pool, const float *x, size_t n)
{
    const float *x0 = x;
    size_t n0 = n;
    uint64_t bad = 0;
    /* finish the chunk in progress */
    if (f->in_chunk) {
        size_t k = GTR_MIN(n, FP_CHUNK - f->in_chunk);
        f->cur = fnv_words(f->cur, x, k, &bad);
        f->in_chunk += k;
        x += k;
        n -= k;
        if (f->in_chunk == FP_CHUNK) {
            f->h = gtr_fnv1a64(&f->cur, sizeof f->cur, f->h);
            f->cur = GTR_FNV_SEED;
            f->in_chunk = 0;
        }
    }
    /* whole chunks, in parallel when there are several */
    size_t full = n / FP_CHUNK;
    uint64_t *parts = full > 1 ? malloc(2 * full * sizeof *parts) : NULL;
    if (parts) {
        fp_job j = {x, full * FP_CHUNK, parts, parts + full};
        gtr_pool_for(pool, (full + 3) / 4, fp_task, &j);
        for (size_t c = 0; c < full; c++) {
            f->h = gtr_fnv1a64(&parts[c], sizeof parts[c], f->h);
            bad |= j.bad[c];
        }
        free(parts);
    } else { /* one chunk, or no memory for the parallel path: the same value serially */
        for (size_t c = 0; c < full; c++) {
            uint64_t p = fnv_words(GTR_FNV_SEED, x + c * FP_CHUNK, FP_CHUNK, &bad);
            f->h = gtr_fnv1a64(&p, sizeof p, f->h);
        }
    }
    x += full * FP_CHUNK;
    n -= full * FP_CHUNK;
    /* the start of the next chunk */
    if (n) {
        f->cur = fnv_words(f->cur, x, n, &bad);
        f->in_chunk += n;
    }
    if (bad) note_bad(f, x0, n0);
    f->fed += n0;
}

gtr_status gtr_fp_end(gtr_fp_stream *f, uint64_t *h, gtr_error *err)
{
    if (f->in_chunk) f->h = gtr_fnv1a64(&f->cur, sizeof f->cur, f->h);
    f->in_chunk = 0;
    f->cur = GTR_FNV_SEED;
    *h = f->h;
    if (f->bad_at != SIZE_MAX)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "tensor '%s': element [%zu, %zu] is %s; the weights are damaged (a model "
                          "with non-finite weights gives no meaningful vectors)",
                          f->name, f->bad_at / f->cols, f->bad_at % f->cols,
                          isnan(f->bad) ? "NaN" : f->bad > 0 ? "+infinity" : "-infinity");
    return GTR_OK;
}

/* gtr_fingerprint_tensor of a stored float tensor's values as float32, read from the mapping
 * without a float32 copy of it: each chunk of FP_CHUNK values is converted FP_PIECE at a time
 * into a buffer of its thread (in L1) and hashed from there. */
#define FP_PIECE GTR_FP_PIECE /* even (a chunk's words are the same however it is cut); divides FP_CHUNK */
#define FP_PF 2       /* gtr_fp_lanes' prefetch distance, in pieces */

typedef struct {
    const gtr_tensor *t;
    uint64_t *out, *bad;
} fp_src_job;

/* Values [i0, i0 + m) of a contiguous F32/F16/BF16 tensor as float32 into buf; true when F16
 * and one of them is not finite (F32 and BF16: false, fnv_words checks those). */
static bool values_f32(const gtr_tensor *t, size_t i0, size_t m, float *buf)
{
    if (t->dtype == GTR_DT_F16) {
        return gtr_f16_to_f32_n(t->data + 2 * i0, buf, m);
    } else if (t->dtype == GTR_DT_BF16) {
        const uint8_t *p = t->data + 2 * i0;
        for (size_t i = 0; i < m; i++) buf[i] = gtr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else {
        memcpy(buf, t->data + 4 * i0, m * sizeof(float));
    }
    return false;
}

/* The FNV chain of the last, shorter chunk (values [full * FP_CHUNK, count)). */
static void hash_partial(const gtr_tensor *t, uint64_t *out, uint64_t *bad_out)
{
    _Alignas(64) float buf[FP_PIECE];
    size_t full = t->count / FP_CHUNK;
    uint64_t h = GTR_FNV_SEED, bad = 0;
    for (size_t i = full * FP_CHUNK; i < t->count; i += FP_PIECE) {
        size_t m = GTR_MIN((size_t)FP_PIECE, t->count - i);
        values_f32(t, i, m, buf);
        h = fnv_words(h, buf, m, &bad);
    }
    *out = h;
    *bad_out = bad;
}

/* The FNV chains of full chunks c0 .. c0 + lanes - 1 (lanes 1..4; four chains at once, a group
 * short of 4 repeating its first chunk in the missing lanes and dropping their results). */
static void hash_group(const gtr_tensor *t, size_t c0, size_t lanes, uint64_t *out, uint64_t *bad_out)
{
    const gtr_tensor *ts[4] = {t, t, t, t};
    size_t start[4] = {c0 * FP_CHUNK, (c0 + 1) * FP_CHUNK, (c0 + 2) * FP_CHUNK, (c0 + 3) * FP_CHUNK};
    uint64_t h[4] = {GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED}, bad[4] = {0, 0, 0, 0};
    gtr_fp_lanes(ts, start, lanes, FP_CHUNK, FP_CHUNK, h, bad, NULL, NULL, NULL, NULL);
    for (size_t l = 0; l < lanes; l++) {
        out[c0 + l] = h[l];
        bad_out[c0 + l] = bad[l];
    }
}

/* Task g < groups: full chunks 4g .. 4g + 3 (as fp_task); task `groups`: the last, shorter chunk. */
static void fp_src_task(void *ctx, size_t g, int tid)
{
    (void)tid;
    fp_src_job *j = ctx;
    size_t full = j->t->count / FP_CHUNK, c0 = 4 * g;
    if (c0 >= full) hash_partial(j->t, &j->out[full], &j->bad[full]);
    else hash_group(j->t, c0, GTR_MIN((size_t)4, full - c0), j->out, j->bad);
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

gtr_status gtr_fp_rows_init(gtr_fp_rows *f, const gtr_tensor *t, size_t cols, gtr_error *err)
{
    memset(f, 0, sizeof *f);
    f->t = t;
    f->cols = cols ? cols : 1;
    f->chunks = (t->count + FP_CHUNK - 1) / FP_CHUNK;
    f->out = gtr_xcalloc(2 * (f->chunks ? f->chunks : 1), sizeof *f->out, "fingerprint", err);
    if (!f->out) return GTR_ERR_NOMEM;
    f->bad = f->out + f->chunks;
    return GTR_OK;
}

void gtr_fp_rows_hash(const gtr_fp_rows *f, size_t r0, size_t r1)
{
    const gtr_tensor *t = f->t;
    size_t k = f->cols, full = t->count / FP_CHUNK;
    if (r1 > t->count / k) r1 = t->count / k;
    if (r0 >= r1) return;
    /* the chunks whose first value lies in these rows: c * FP_CHUNK in [r0 * k, r1 * k) */
    size_t c0 = (r0 * k + FP_CHUNK - 1) / FP_CHUNK, c1 = GTR_MIN(f->chunks, (r1 * k + FP_CHUNK - 1) / FP_CHUNK);
    for (size_t c = c0; c < GTR_MIN(c1, full); c += 4)
        hash_group(t, c, GTR_MIN((size_t)4, GTR_MIN(c1, full) - c), f->out, f->bad);
    if (c1 > full && full >= c0) hash_partial(t, &f->out[full], &f->bad[full]);
}

gtr_status gtr_fp_rows_end(gtr_fp_rows *f, uint64_t *h, const char *name, size_t rows, size_t cols,
                           gtr_error *err)
{
    const gtr_tensor *t = f->t;
    uint64_t bad = 0;
    gtr_fp_stream s;
    gtr_fp_begin(&s, *h, name, rows, cols);
    for (size_t c = 0; c < f->chunks; c++) {
        s.h = gtr_fnv1a64(&f->out[c], sizeof f->out[c], s.h);
        bad |= f->bad[c];
    }
    free(f->out);
    f->out = f->bad = NULL;
    if (bad) { /* a value is not finite: the stream's message names the first (rare; serial) */
        _Alignas(64) float buf[FP_PIECE];
        gtr_fp_begin(&s, *h, name, rows, cols);
        for (size_t i = 0; i < t->count; i += FP_PIECE) {
            size_t m = GTR_MIN((size_t)FP_PIECE, t->count - i);
            values_f32(t, i, m, buf);
            gtr_fp_feed(&s, NULL, buf, m);
        }
        return gtr_fp_end(&s, h, err);
    }
    *h = s.h;
    return GTR_OK;
}

void gtr_fp_lanes(const gtr_tensor *const *t, const size_t *start, size_t lanes, size_t len, size_t cols,
                  uint64_t *h, uint64_t *bad, gtr_absmax_fn absmax, float *const *amax, gtr_fp_piece_fn each, void *each_ctx)
{
    _Alignas(64) float buf[4][FP_PIECE];
    const float *x[4];
    uint64_t hh[4] = {h[0], h[0], h[0], h[0]}, bb[4] = {0, 0, 0, 0};
    for (size_t l = 0; l < lanes; l++) hh[l] = h[l], bb[l] = bad[l];
    if (!absmax) amax = NULL;
    if (amax)
        for (size_t l = 0; l < lanes; l++)
            for (size_t r = 0; r < (len + cols - 1) / cols; r++) amax[l][r] = 0;
    bool f16 = true; /* every lane F16: finiteness from the conversion, not per word */
    for (size_t l = 0; l < lanes; l++) f16 = f16 && t[l]->dtype == GTR_DT_F16;
    for (size_t i = 0; i < len; i += FP_PIECE) {
        size_t m = GTR_MIN((size_t)FP_PIECE, len - i);
        /* each lane's piece after next requested now: the lanes are four streams a page
         * (4 KiB of F16) a piece each, where the hardware prefetcher stops (AMD Zen 5, xxl
         * int8 warm loads 10-20% faster; one piece ahead gained less) */
        if (i + FP_PF * FP_PIECE < len)
            for (size_t l = 0; l < lanes; l++) {
                size_t es = t[l]->dtype == GTR_DT_F32 ? 4 : 2, ahead = i + FP_PF * FP_PIECE;
                const uint8_t *p = t[l]->data + es * (start[l] + ahead);
                for (size_t b = 0; b < GTR_MIN((size_t)FP_PIECE, len - ahead) * es; b += 64) __builtin_prefetch(p + b);
            }
        for (size_t l = 0; l < lanes; l++) {
            x[l] = buf[l];
            if (values_f32(t[l], start[l] + i, m, buf[l])) bb[l] |= 0x80000000ull; /* F16: the conversion met an infinity or NaN */
        }
        for (size_t l = lanes; l < 4; l++) x[l] = x[0]; /* hashed and dropped */
        if (amax) /* each row's share of the piece (start[l] is a row's first value) */
            for (size_t l = 0; l < lanes; l++)
                for (size_t pos = i; pos < i + m;) {
                    size_t r = pos / cols, e = GTR_MIN(i + m, (r + 1) * cols);
                    float a = absmax(x[l] + (pos - i), e - pos);
                    if (a > amax[l][r]) amax[l][r] = a;
                    pos = e;
                }
        if (f16) fnv_words4_finite(hh, x, m);
        else fnv_words4(hh, x, m, bb);
        if (each)
            for (size_t l = 0; l < lanes; l++) each(each_ctx, l, buf[l], i, m);
    }
    for (size_t l = 0; l < lanes; l++) h[l] = hh[l], bad[l] = bb[l];
}

void gtr_fp_rows_free(gtr_fp_rows *f)
{
    free(f->out);
    f->out = f->bad = NULL;
}

gtr_status gtr_fingerprint_stored(uint64_t *h, gtr_pool *pool, const char *name, const gtr_tensor *t,
                                  size_t rows, size_t cols, gtr_error *err)
{
    gtr_fp_rows f;
    gtr_status st = gtr_fp_rows_init(&f, t, cols, err);
    if (st) return st;
    fp_src_job j = {t, f.out, f.bad};
    size_t full = t->count / FP_CHUNK;
    gtr_pool_for(pool, (full + 3) / 4 + (f.chunks > full), fp_src_task, &j);
    return gtr_fp_rows_end(&f, h, name, rows, cols, err);
}

gtr_status gtr_fingerprint_tensor(uint64_t *h, gtr_pool *pool, const char *name, const float *x,
                                  size_t rows, size_t cols, gtr_error *err)
{
    gtr_fp_stream f;
    gtr_fp_begin(&f, *h, name, rows, cols);
    gtr_fp_feed(&f, pool, x, rows * cols);
    return gtr_fp_end(&f, h, err);
}
