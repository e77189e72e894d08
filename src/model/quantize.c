/* quantize.c — `gtr quantize`: a model directory whose encoder weights are stored in the
 * compute precision, so loading it is a copy (no float32 pass, a quarter / half the file).
 *
 * The output is the input's sentence-transformers layout with one file replaced: the
 * Transformer module's model.safetensors. Its tensors, in file order:
 *   1. F32 vectors as they were: layer norms, the relative-position bias
 *   2. the embedding (shared.weight) and every Linear weight: BF16, or I8 codes
 *   3. (int8) the F32 scales <name>_scale [rows] of every I8 tensor
 * with __metadata__ {"format": "pt", "gtr_quantization": "bf16-v1" | "int8-per-channel-v1",
 * "gtr_source_fingerprint": "<16 hex digits>"}. The codes are made by the same functions the
 * loader uses to pack float32 weights (gtr_bf16_daz, gtr_quantize_rows_int8), which is why
 * the copy computes bit for bit like its source at that precision. Scales come last so the
 * file is written in one pass (a Linear's scales are known once its codes are).
 *
 * Everything goes to "<out>.tmp" first; each file is fsynced as it is committed, and the
 * directory is renamed to <out> at the end, so <out> is complete or absent. */
#include "model/model_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- files ------------------------------------------------------------------------------- */

/* Weight files of any framework: never copied out of the Transformer module (they hold the
 * float weights the quantised file replaces). */
static bool is_weight_file(const char *nm)
{
    static const char *const ext[] = {".safetensors", ".bin", ".h5", ".msgpack", ".ot", ".onnx",
                                      ".pt", ".pth", ".ckpt", ".gguf", ".index.json"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (gtr_str_ends_with(nm, ext[i])) return true;
    return false;
}

/* config.json with torch_dtype naming what the weights now are (BF16 only: transformers has
 * no int8 dtype, and cannot load the int8 file anyway). */
static gtr_status copy_config(const char *src, const char *dst, gtr_compute_dtype dtype, gtr_error *err)
{
    if (dtype != GTR_DTYPE_BF16) return gtr_copy_file(src, dst, err);
    json_t *j = gtr_json_load_file(src, err);
    if (!j) return err && err->code ? err->code : GTR_ERR_FORMAT;
    json_object_set_new(j, "torch_dtype", json_string("bfloat16"));
    gtr_status st = gtr_json_write_file(dst, j, err);
    json_decref(j);
    return st;
}

/* The regular files of one directory (not recursive) into dst; weights only when keep_weights. */
static gtr_status copy_dir_files(const char *src_dir, const char *dst_dir, bool keep_weights,
                                 bool transformer, gtr_compute_dtype dtype, gtr_error *err)
{
    gtr_status st = gtr_mkdirs(dst_dir, err);
    if (st || !gtr_dir_exists(src_dir)) return st; /* a module without files (Normalize) */
    DIR *d = opendir(src_dir);
    if (!d) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot list: %s", src_dir, strerror(errno));
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || (!keep_weights && is_weight_file(nm))) continue;
        char *src = gtr_path_join(src_dir, nm), *dst = gtr_path_join(dst_dir, nm);
        struct stat sb;
        if (!src || !dst) st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        else if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) st = GTR_OK; /* not a file: skip */
        else if (transformer && !strcmp(nm, "config.json")) st = copy_config(src, dst, dtype, err);
        else st = gtr_copy_file(src, dst, err);
        free(src);
        free(dst);
    }
    closedir(d);
    return st;
}

/* Every module directory of modules.json (validated by the model load before) and the root. */
static gtr_status copy_layout(const char *in_dir, const char *stage, const gtr_model_config *cfg,
                              gtr_compute_dtype dtype, gtr_error *err)
{
    char *mpath = gtr_path_join(in_dir, "modules.json");
    if (!mpath) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    json_t *j = gtr_json_load_file(mpath, err);
    free(mpath);
    if (!j) return err && err->code ? err->code : GTR_ERR_FORMAT;
    gtr_status st = GTR_OK;
    bool root_done = false;
    for (size_t i = 0; !st && i < json_array_size(j); i++) {
        const char *rel = json_string_value(json_object_get(json_array_get(j, i), "path"));
        if (!rel) continue;
        char *src = *rel ? gtr_path_join(in_dir, rel) : strdup(in_dir);
        char *dst = *rel ? gtr_path_join(stage, rel) : strdup(stage);
        if (!src || !dst) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        } else {
            /* the Transformer module: configs and tokenizer, not its weights */
            char *a = realpath(src, NULL), *b = realpath(cfg->transformer_dir, NULL);
            bool transformer = a && b && !strcmp(a, b);
            free(a);
            free(b);
            root_done |= !*rel;
            st = copy_dir_files(src, dst, !transformer && *rel, transformer, dtype, err);
        }
        free(src);
        free(dst);
    }
    json_decref(j);
    /* the root's own files (modules.json, sentence_bert_config.json, ...) when the Transformer
     * lives in a subdirectory; weights at the root belong to no module */
    if (!st && !root_done) st = copy_dir_files(in_dir, stage, false, false, dtype, err);
    return st;
}

/* ---- the safetensors file ------------------------------------------------------------------ */

typedef struct {
    const gtr_t5_tensor_ref *ref;
    gtr_dtype_id dtype;
    size_t rows, cols; /* cols 0: a vector of rows */
    size_t scale_of;   /* for a scales entry: index of its I8 tensor; else SIZE_MAX */
    uint64_t off, bytes; /* off: within its shard */
    size_t shard;
} out_tensor;

/* The file's header (see gtr_safetensors_header_bytes). */
static void tensor_name(const out_tensor *t, size_t i, char *name, size_t cap)
{
    if (t[i].scale_of != SIZE_MAX)
        snprintf(name, cap, "%s%s", t[t[i].scale_of].ref->name, GTR_QUANT_SCALE_SUFFIX);
    else
        snprintf(name, cap, "%s", t[i].ref->name);
}

/* The header of shard k (see gtr_safetensors_header_bytes). */
static uint8_t *make_header(const out_tensor *t, size_t n, size_t k, gtr_compute_dtype dtype, uint64_t source_fp,
                            size_t *len, gtr_error *err)
{
    json_t *h = json_object();
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)source_fp);
    json_object_set_new(h, "__metadata__",
                        json_pack("{s:s, s:s, s:s}", "format", "pt", "gtr_quantization",
                                  dtype == GTR_DTYPE_INT8 ? GTR_QUANT_INT8_NAME : GTR_QUANT_BF16_NAME,
                                  "gtr_source_fingerprint", fp));
    for (size_t i = 0; i < n; i++) {
        if (t[i].shard != k) continue;
        char name[512];
        tensor_name(t, i, name, sizeof name);
        gtr_safetensors_header_add(h, name, gtr_tensor_dtype_name(t[i].dtype), t[i].rows, t[i].cols,
                                   t[i].off, t[i].bytes);
    }
    uint8_t *out = gtr_safetensors_header_bytes(h, len, err);
    json_decref(h);
    return out;
}

typedef struct {
    gtr_tensor_set *set;
    gtr_pool *pool;
    gtr_atomic_file *f;
    float *tmp;          /* float32 rows */
    size_t tmp_floats;
    void *codes;         /* the rows in the output precision */
    float *scales;       /* all scales of the file, in the order of the scale entries */
    size_t n_scales;
} writer;

/* One vector (F32 as it is). */
static gtr_status write_vector(writer *w, const out_tensor *t, gtr_error *err)
{
    const gtr_tensor *src = t->ref->t.w;
    gtr_status st = gtr_tensor_to_f32(w->set, src, w->tmp, w->pool, err);
    if (!st) st = gtr_atomic_write(w->f, w->tmp, src->count * sizeof(float), err);
    return st;
}

/* One matrix: converted a block of rows at a time, rounded to bf16 or quantised per row. */
static gtr_status write_matrix(writer *w, const out_tensor *t, gtr_error *err)
{
    const gtr_wtensor *src = &t->ref->t;
    size_t rows = t->rows, cols = t->cols, R = GTR_MAX((size_t)1, w->tmp_floats / cols);
    for (size_t r0 = 0; r0 < rows; r0 += R) {
        size_t n = GTR_MIN(R, rows - r0);
        gtr_status st = gtr_wtensor_rows_f32(w->set, src, r0, n, w->tmp, w->pool, err);
        if (st) return st;
        if (t->dtype == GTR_DT_BF16) {
            uint16_t *b = w->codes;
            for (size_t i = 0; i < n * cols; i++) b[i] = gtr_bf16_daz(w->tmp[i]);
            st = gtr_atomic_write(w->f, b, n * cols * 2, err);
        } else {
            gtr_quantize_rows_int8(w->tmp, n, cols, w->codes, w->scales + w->n_scales);
            w->n_scales += n;
            st = gtr_atomic_write(w->f, w->codes, n * cols, err);
        }
        if (st) return st;
    }
    gtr_wtensor_drop(w->set, src);
    return GTR_OK;
}

/* shard k of K: "model.safetensors" when K is 1, else transformers' "model-0000k-of-0000K" */
static char *shard_path(const char *dir, size_t k, size_t K)
{
    char name[64];
    if (K == 1) snprintf(name, sizeof name, "model.safetensors");
    else snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, K);
    return gtr_path_join(dir, name);
}

/* Above max_shard bytes of tensor data the weights go to several files plus
 * model.safetensors.index.json, as transformers' save_pretrained does (a tensor is never
 * split; one bigger than the limit gets a shard of its own). */
static gtr_status write_index(const char *dir, const out_tensor *t, size_t n, size_t K, gtr_error *err)
{
    json_t *wm = json_object();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char name[512], *p = shard_path("", t[i].shard, K);
        tensor_name(t, i, name, sizeof name);
        json_object_set_new(wm, name, json_string(p ? p + strspn(p, "/") : ""));
        free(p);
        total += t[i].bytes;
    }
    json_t *j = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
    char *path = gtr_path_join(dir, "model.safetensors.index.json");
    gtr_status st = path && j ? gtr_json_write_file(path, j, err) : gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    free(path);
    json_decref(j);
    return st;
}

static gtr_status write_safetensors(const char *dir, gtr_tensor_set *set, const gtr_t5_tensor_ref *refs,
                                    size_t n_refs, gtr_compute_dtype dtype, uint64_t source_fp,
                                    uint64_t max_shard, gtr_pool *pool, gtr_error *err)
{
    bool int8 = dtype == GTR_DTYPE_INT8;
    out_tensor *t = gtr_xcalloc(2 * n_refs, sizeof *t, "tensor list", err);
    if (!t) return GTR_ERR_NOMEM;
    size_t n = 0, total_scales = 0, max_cols = 1;
    /* 1. vectors, 2. matrices, 3. scales */
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < n_refs; i++) {
            const gtr_t5_tensor_ref *r = &refs[i];
            bool vec = r->kind == GTR_T5T_VECTOR;
            const gtr_tensor *src = r->t.w;
            if ((pass == 0) != vec || (pass == 2 && !int8)) continue;
            out_tensor *o = &t[n];
            o->ref = r;
            o->scale_of = SIZE_MAX;
            if (pass == 0) {
                o->dtype = GTR_DT_F32;
                o->rows = src->shape[0];
                o->cols = src->ndim > 1 ? src->shape[1] : 0;
                o->bytes = src->count * 4;
            } else if (pass == 1) {
                o->dtype = int8 ? GTR_DT_I8 : GTR_DT_BF16;
                o->rows = src->shape[0];
                o->cols = src->shape[1];
                o->bytes = src->count * (int8 ? 1 : 2);
                max_cols = GTR_MAX(max_cols, o->cols);
                if (int8) total_scales += o->rows;
            } else {
                /* find the I8 entry of this ref */
                size_t k = 0;
                while (t[k].ref != r || t[k].dtype != GTR_DT_I8) k++;
                o->dtype = GTR_DT_F32;
                o->rows = src->shape[0];
                o->cols = 0;
                o->bytes = o->rows * 4;
                o->scale_of = k;
            }
            o->off = n ? t[n - 1].off + t[n - 1].bytes : 0;
            o->shard = n ? t[n - 1].shard : 0;
            if (n && o->off && o->off + o->bytes > max_shard) { /* the next shard */
                o->shard++;
                o->off = 0;
            }
            n++;
        }
    size_t K = n ? t[n - 1].shard + 1 : 1;
    writer w = {set, pool, NULL, NULL, 0, NULL, NULL, 0};
    gtr_status st = GTR_OK;
    /* a few MB of rows at a time (at least one row of the widest matrix) */
    w.tmp_floats = GTR_MAX((size_t)1 << 20, max_cols);
    for (size_t i = 0; i < n; i++)
        if (t[i].ref->kind == GTR_T5T_VECTOR) w.tmp_floats = GTR_MAX(w.tmp_floats, t[i].ref->t.w->count);
    if (!st) {
        w.tmp = gtr_malloc_aligned(w.tmp_floats * sizeof(float), err);
        w.codes = gtr_malloc_aligned(w.tmp_floats * 2, err);
        w.scales = gtr_xmalloc((total_scales ? total_scales : 1) * sizeof(float), "scales", err);
        if (!w.tmp || !w.codes || !w.scales) st = GTR_ERR_NOMEM;
    }
    size_t scale_pos = 0;
    for (size_t k = 0; !st && k < K; k++) {
        size_t hlen;
        uint8_t *hdr = make_header(t, n, k, dtype, source_fp, &hlen, err);
        char *path = shard_path(dir, k, K);
        gtr_atomic_file f;
        if (!hdr || !path) {
            free(hdr);
            free(path);
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            break;
        }
        st = gtr_atomic_open(&f, path, err);
        free(path);
        if (st) {
            free(hdr);
            break;
        }
        w.f = &f;
        st = gtr_atomic_write(&f, hdr, hlen, err);
        free(hdr);
        for (size_t i = 0; !st && i < n; i++) {
            if (t[i].shard != k) continue;
            if (t[i].scale_of != SIZE_MAX) {
                st = gtr_atomic_write(&f, w.scales + scale_pos, t[i].rows * sizeof(float), err);
                scale_pos += t[i].rows;
            } else if (t[i].ref->kind == GTR_T5T_VECTOR) {
                st = write_vector(&w, &t[i], err);
            } else {
                st = write_matrix(&w, &t[i], err);
            }
        }
        if (!st) st = gtr_atomic_commit(&f, err);
        else gtr_atomic_abort(&f);
    }
    if (!st && K > 1) st = write_index(dir, t, n, K, err);
    free(t);
    gtr_free_aligned(w.tmp);
    gtr_free_aligned(w.codes);
    free(w.scales);
    return st;
}

/* ---- the command ------------------------------------------------------------------------- */

gtr_status gtr_model_quantize(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                              int n_threads, gtr_error *err)
{
    return gtr_model_quantize_sharded(in_dir, out_dir, dtype, n_threads, GTR_MAX_SHARD_BYTES, err);
}

gtr_status gtr_model_quantize_sharded(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                                      int n_threads, uint64_t max_shard, gtr_error *err)
{
    if (!in_dir || !out_dir) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_quantize: NULL argument");
    if (dtype != GTR_DTYPE_BF16 && dtype != GTR_DTYPE_INT8)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "quantize: the target dtype must be bf16 or int8");
    size_t olen = strlen(out_dir);
    while (olen > 1 && out_dir[olen - 1] == '/') olen--;
    if (olen == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "quantize: empty output path");
    char *out = strndup(out_dir, olen), *stage = malloc(olen + 8);
    char *parent = NULL, *tdir = NULL;
    gtr_model_config cfg = {0};
    gtr_tensor_set set = {0};
    gtr_t5_tensor_ref *refs = NULL;
    size_t n_refs = 0;
    gtr_pool *pool = NULL;
    gtr_status st = GTR_OK;
    bool staged = false;
    if (!out || !stage) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(stage, olen + 8, "%s.tmp", out);
    struct stat sb;
    if (lstat(out, &sb) == 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s already exists (choose a new output directory)", out);
        goto done;
    }

    /* 1. Load the source the normal way: validates every file (configs, tokenizer, both
     * modules' weights) before anything is written, and gives the fingerprint the copy
     * records. INT8 compute needs the least memory; the fingerprint does not depend on it. */
    if (!(pool = gtr_pool_create(n_threads, err))) {
        st = err && err->code ? err->code : GTR_ERR_INTERNAL;
        goto done;
    }
    gtr_model_options mo = gtr_model_default_options();
    mo.pool = pool;
    mo.dtype = GTR_DTYPE_INT8;
    gtr_model *m = gtr_model_load(in_dir, &mo, err);
    if (!m) {
        st = err && err->code ? err->code : GTR_ERR_FORMAT;
        goto done;
    }
    uint64_t source_fp = gtr_model_fingerprint(m);
    gtr_model_free(m);

    if ((st = gtr_model_config_read(in_dir, &cfg, err)) ||
        (st = gtr_tensor_set_open_dir(&set, cfg.transformer_dir, err)) ||
        (st = gtr_t5_tensor_list(&set, &cfg.t5, &refs, &n_refs, err)))
        goto done;
    for (size_t i = 0; i < n_refs; i++)
        if (refs[i].t.scale) {
            st = gtr_seterr(err, GTR_ERR_INVALID_ARG,
                            "%s is already quantised to int8 (tensor '%s'); quantise the original instead",
                            in_dir, refs[i].name);
            goto done;
        }

    /* 2. Stage: the layout, then the weights. */
    if ((st = gtr_remove_tree(stage, err)) || (st = gtr_mkdirs(stage, err))) goto done;
    staged = true;
    if ((st = copy_layout(in_dir, stage, &cfg, dtype, err))) goto done;
    {
        /* the Transformer module's place inside the copy */
        size_t il = strlen(in_dir);
        while (il > 1 && in_dir[il - 1] == '/') il--;
        const char *rel = cfg.transformer_dir + GTR_MIN(strlen(cfg.transformer_dir), il);
        while (*rel == '/') rel++;
        tdir = *rel ? gtr_path_join(stage, rel) : strdup(stage);
    }
    if (!tdir) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = write_safetensors(tdir, &set, refs, n_refs, dtype, source_fp, max_shard, pool, err))) goto done;

    /* 3. Into place. */
    if ((st = gtr_fsync_dir(stage, err))) goto done;
    if (rename(stage, out) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot rename to %s: %s", stage, out, strerror(errno));
        goto done;
    }
    staged = false;
    parent = strdup(out);
    if (!parent) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    char *slash = strrchr(parent, '/');
    st = gtr_fsync_dir(slash == parent ? "/" : slash ? (*slash = '\0', parent) : ".", err);
done:
    if (st && staged) {
        gtr_error e2;
        (void)gtr_remove_tree(stage, &e2);
    }
    free(refs);
    gtr_tensor_set_free(&set);
    gtr_model_config_free(&cfg);
    gtr_pool_free(pool);
    free(out);
    free(stage);
    free(parent);
    free(tdir);
    return st;
}
