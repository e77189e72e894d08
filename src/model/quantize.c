/* quantize.c — `gtr quantize`: a model directory whose encoder weights are stored in the
 * compute precision, so loading it is a copy (no float32 pass, a quarter / half the file).
 *
 * The output is the input's sentence-transformers layout with one file replaced: the
 * Transformer module's model.safetensors. Its tensors, in file order:
 *   1. F32 vectors as they were: layer norms, the relative-position bias
 *   2. the embedding (shared.weight) and every Linear weight: BF16, or I8 codes
 *   3. (int8) the F32 scales <name>_scale [rows] of every I8 tensor
 * with __metadata__ {"format": "pt", "gtr_quantization": "bf16-v1" | "int8-per-channel-v1",
 * "gtr_source_fingerprint": "<16 hex digits>", "gtr_checksum": "crc32c-tree64k-v1",
 * "gtr_checksums": "<8 hex digits per tensor>"} (checksum.c: every tensor's bytes, fed to
 * the checksum as they are written; the header goes out first with zeros there and is
 * rewritten in place, same length, once the data is). The codes are made by the same functions the
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

/* What one tensor of the output is made from. */
typedef enum {
    OT_VECTOR,  /* an F32 vector as it was */
    OT_ROWS,    /* a matrix row-major (the embedding; every Linear in a portable copy) */
    OT_PACKED,  /* one of a layer's four matrices in the kernels' layout (packed.c) */
    OT_SCALE,   /* F32 scales of an I8 tensor (of) */
    OT_COLSUM,  /* I32 Σq of a packed I8 matrix (of) */
    OT_PAD      /* U8 zeros: the next tensor starts on a 64-byte boundary */
} out_kind;

typedef struct {
    out_kind kind;
    const gtr_t5_tensor_ref *ref;  /* VECTOR, EMBED; PACKED: its first part */
    size_t n_parts;                /* PACKED: refs ref[0 .. n_parts) stacked */
    int layer, mat;                /* PACKED */
    size_t of;                     /* SCALE, COLSUM: index of their tensor */
    gtr_dtype_id dtype;
    size_t shape[4];
    int ndim;
    uint64_t off, bytes;           /* off: within its shard */
    size_t shard;
    size_t aux0;                   /* SCALE, COLSUM: first entry in the writer's arrays */
} out_tensor;

#define ALIGN 64

static void tensor_name(const out_tensor *t, size_t i, char *name, size_t cap)
{
    const out_tensor *o = &t[i];
    switch (o->kind) {
    case OT_VECTOR:
    case OT_ROWS: snprintf(name, cap, "%s", o->ref->name); break;
    case OT_PACKED: gtr_packed_name(name, cap, o->layer, o->mat, NULL); break;
    case OT_PAD: snprintf(name, cap, "gtr_pad.%zu", i); break;
    case OT_SCALE:
    case OT_COLSUM: {
        const char *suf = o->kind == OT_SCALE ? GTR_QUANT_SCALE_SUFFIX : GTR_PACKED_COLSUM_SUFFIX;
        const out_tensor *p = &t[o->of];
        if (p->kind == OT_PACKED) gtr_packed_name(name, cap, p->layer, p->mat, suf);
        else snprintf(name, cap, "%s%s", p->ref->name, suf);
        break;
    }
    }
}

/* The header of shard k (see gtr_safetensors_header_bytes): data starts 64-byte aligned. */
/* crcs: the checksums of shard k's tensors in file order (checksum.c), or NULL for zeros: the
 * header is written first with zeros and rewritten in place once the data is (same length). */
static uint8_t *make_header(const out_tensor *t, size_t n, size_t k, gtr_compute_dtype dtype, uint64_t source_fp,
                            bool packed, const uint32_t *crcs, size_t n_crcs, size_t *len, gtr_error *err)
{
    json_t *h = json_object();
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)source_fp);
    json_t *meta = json_pack("{s:s, s:s, s:s}", "format", "pt", "gtr_quantization",
                             dtype == GTR_DTYPE_INT8 ? GTR_QUANT_INT8_NAME : GTR_QUANT_BF16_NAME,
                             "gtr_source_fingerprint", fp);
    if (packed) json_object_set_new(meta, "gtr_layout", json_string(GTR_WMAT_LAYOUT_NAME));
    char *text = malloc(8 * n_crcs + 1);
    if (text) {
        if (crcs) gtr_checksums_text(crcs, n_crcs, text);
        else memset(text, '0', 8 * n_crcs), text[8 * n_crcs] = '\0';
        json_object_set_new(meta, "gtr_checksum", json_string(GTR_CHECKSUM_SCHEME));
        json_object_set_new(meta, "gtr_checksums", json_string(text));
        free(text);
    } else {
        json_decref(meta);
        json_decref(h);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    json_object_set_new(h, "__metadata__", meta);
    for (size_t i = 0; i < n; i++) {
        if (t[i].shard != k) continue;
        char name[512];
        tensor_name(t, i, name, sizeof name);
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        json_object_set_new(h, name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", gtr_tensor_dtype_name(t[i].dtype),
                                               "shape", shape, "data_offsets", (json_int_t)t[i].off,
                                               (json_int_t)(t[i].off + t[i].bytes)));
    }
    uint8_t *out = gtr_safetensors_header_bytes_align(h, ALIGN, len, err);
    json_decref(h);
    return out;
}

typedef struct {
    gtr_tensor_set *set;
    gtr_pool *pool;
    const gtr_kernels *layout; /* the table whose layout the file stores */
    gtr_atomic_file *f;
    gtr_body_crc crc;    /* of the tensor being written */
    float *tmp;          /* float32 rows */
    size_t tmp_floats;
    void *codes;         /* the rows in the output precision */
    float *scales;       /* every scale of the file (embedding, then packed I8 matrices) */
    int32_t *colsum;     /* every Σq of the packed I8 matrices, same places as scales */
} writer;

/* Every byte of a tensor goes through here: written and fed to its checksum. */
static gtr_status out_write(writer *w, const void *data, size_t len, gtr_error *err)
{
    gtr_body_crc_feed(&w->crc, data, len);
    return gtr_atomic_write(w->f, data, len, err);
}

/* One vector (F32 as it is). */
static gtr_status write_vector(writer *w, const out_tensor *t, gtr_error *err)
{
    const gtr_tensor *src = t->ref->t.w;
    gtr_status st = gtr_tensor_to_f32(w->set, src, w->tmp, w->pool, err);
    if (!st) st = out_write(w, w->tmp, src->count * sizeof(float), err);
    return st;
}

/* The embedding: converted a block of rows at a time, rounded to bf16 or quantised per row
 * (scales into w->scales from sc). */
static gtr_status write_embed(writer *w, const out_tensor *t, float *sc, gtr_error *err)
{
    const gtr_wtensor *src = &t->ref->t;
    size_t rows = t->shape[0], cols = t->shape[1], R = GTR_MAX((size_t)1, w->tmp_floats / cols);
    for (size_t r0 = 0; r0 < rows; r0 += R) {
        size_t n = GTR_MIN(R, rows - r0);
        gtr_status st = gtr_wtensor_rows_f32(w->set, src, r0, n, w->tmp, w->pool, err);
        if (st) return st;
        if (t->dtype == GTR_DT_BF16) {
            uint16_t *b = w->codes;
            for (size_t i = 0; i < n * cols; i++) b[i] = gtr_bf16_daz(w->tmp[i]);
            st = out_write(w, b, n * cols * 2, err);
        } else {
            gtr_quantize_rows_int8(w->tmp, n, cols, w->codes, sc + r0);
            st = out_write(w, w->codes, n * cols, err);
        }
        if (st) return st;
    }
    gtr_wtensor_drop(w->set, src);
    return GTR_OK;
}

/* Rows [r0, r0 + n) of the parts stacked, as float32 into dst. */
static gtr_status stacked_rows(writer *w, const gtr_t5_tensor_ref *parts, size_t n_parts, size_t r0, size_t n,
                               float *dst, gtr_error *err)
{
    size_t base = 0, k = gtr_wtensor_cols(&parts[0].t);
    for (size_t i = 0; i < n_parts && n; i++) {
        size_t pr = gtr_wtensor_rows(&parts[i].t);
        if (r0 < base + pr) {
            size_t a = r0 - base, m = GTR_MIN(n, pr - a);
            gtr_status st = gtr_wtensor_rows_f32(w->set, &parts[i].t, a, m, dst, w->pool, err);
            if (st) return st;
            dst += m * k;
            r0 += m;
            n -= m;
        }
        base += pr;
    }
    return GTR_OK;
}

/* One packed matrix: whole panels at a time packed by the kernels' own packing (panels are
 * contiguous and independent, so the blocks' bytes are the matrix's bytes in order). The
 * same packing the loader applies to a float checkpoint: the copy computes bit for bit like
 * its source. I8: the blocks' scales and sums go to sc / cs (np * nr each). */
static gtr_status write_packed(writer *w, const out_tensor *t, float *sc, int32_t *cs, gtr_error *err)
{
    const gtr_wtype type = t->dtype == GTR_DT_I8 ? GTR_W_INT8 : GTR_W_BF16;
    const size_t nr = t->shape[2], k = gtr_wtensor_cols(&t->ref->t);
    size_t n = 0;
    for (size_t i = 0; i < t->n_parts; i++) n += gtr_wtensor_rows(&t->ref[i].t);
    size_t R = GTR_MAX((size_t)1, w->tmp_floats / k / nr) * nr;
    /* contiguous float parts (a hub checkpoint): each block packed straight from the mapped
     * rows (gtr_wmat_pack_src: the same bytes as packing their float32), no float32 copy */
    bool direct = t->n_parts <= 3;
    for (size_t i = 0; i < t->n_parts && direct; i++)
        direct = !t->ref[i].t.scale && !t->ref[i].t.pk && gtr_tensor_contiguous(t->ref[i].t.w);
    for (size_t r0 = 0; r0 < n; r0 += R) {
        size_t m = GTR_MIN(R, n - r0);
        gtr_wmat blk;
        gtr_status st = GTR_OK;
        if (direct) {
            gtr_wsrc src[3];
            size_t ns = 0, base = 0;
            for (size_t i = 0; i < t->n_parts; i++) {
                const gtr_tensor *pt = t->ref[i].t.w;
                size_t pr = pt->shape[0], es = gtr_dtype_size(pt->dtype);
                size_t a = GTR_MAX(r0, base), b = GTR_MIN(r0 + m, base + pr);
                if (a < b)
                    src[ns++] = (gtr_wsrc){pt->data + (a - base) * k * es, b - a, gtr_tensor_src_type(pt)};
                base += pr;
            }
            st = gtr_wmat_pack_src(w->layout, w->pool, &blk, src, ns, k, type, err);
            for (size_t i = 0; i < ns; i++) /* those rows' pages are done with */
                gtr_tensor_set_drop_range(w->set, src[i].data, src[i].rows * k * (src[i].type == GTR_SRC_F32 ? 4 : 2));
            if (st) return st;
        } else if ((st = stacked_rows(w, t->ref, t->n_parts, r0, m, w->tmp, err)) ||
                   (st = gtr_wmat_pack_pool(w->layout, w->pool, &blk, w->tmp, m, k, type, err))) {
            return st;
        }
        size_t np = (m + nr - 1) / nr;
        if (blk.nr != nr || np * nr * blk.kp * gtr_wmat_esize(type) != t->bytes / ((n + nr - 1) / nr) * np) {
            gtr_wmat_free(&blk);
            return gtr_seterr(err, GTR_ERR_INTERNAL, "quantize: packed block layout differs from the planned one");
        }
        st = out_write(w, blk.data, np * nr * blk.kp * gtr_wmat_esize(type), err);
        if (!st && type == GTR_W_INT8) {
            memcpy(sc + r0, blk.scales, m * sizeof(float));
            memcpy(cs + r0, blk.colsum, m * sizeof(int32_t));
        }
        gtr_wmat_free(&blk);
        if (st) return st;
    }
    for (size_t i = 0; i < t->n_parts; i++) gtr_wtensor_drop(w->set, &t->ref[i].t);
    return GTR_OK;
}

/* shard k of K (see gtr_safetensors_shard_name) */
static char *shard_path(const char *dir, size_t k, size_t K)
{
    char name[64];
    gtr_safetensors_shard_name(k, K, name, sizeof name);
    return gtr_path_join(dir, name);
}

/* Above max_shard bytes of tensor data the weights go to several files plus
 * model.safetensors.index.json, as transformers' save_pretrained does (a tensor is never
 * split; one bigger than the limit gets a shard of its own). */
static gtr_status write_index(const char *dir, const out_tensor *t, size_t n, size_t K, gtr_error *err)
{
    char (*buf)[512] = gtr_xcalloc(n ? n : 1, sizeof *buf, "tensor names", err);
    const char **names = gtr_xcalloc(n ? n : 1, sizeof *names, "tensor names", err);
    size_t *shard = gtr_xcalloc(n ? n : 1, sizeof *shard, "tensor names", err);
    gtr_status st = buf && names && shard ? GTR_OK : GTR_ERR_NOMEM;
    uint64_t total = 0;
    for (size_t i = 0; !st && i < n; i++) {
        tensor_name(t, i, buf[i], sizeof buf[i]);
        names[i] = buf[i];
        shard[i] = t[i].shard;
        total += t[i].bytes;
    }
    if (!st) st = gtr_safetensors_write_index(dir, names, shard, n, K, total, err);
    free(buf);
    free(names);
    free(shard);
    return st;
}

/* The plan: every tensor's place (shard, 64-byte aligned offset, pads between). */
typedef struct {
    out_tensor *t;
    size_t n, cap;
    uint64_t max_shard;
} plan;

static out_tensor *place(plan *p, out_tensor o)
{
    size_t elems = 1, es = gtr_dtype_size(o.dtype);
    for (int d = 0; d < o.ndim; d++) elems *= o.shape[d];
    o.bytes = elems * es;
    out_tensor *last = p->n ? &p->t[p->n - 1] : NULL;
    uint64_t end = last ? last->off + last->bytes : 0, al = (end + ALIGN - 1) / ALIGN * ALIGN;
    o.shard = last ? last->shard : 0;
    if (end && al + o.bytes > p->max_shard) { /* the next shard (a tensor is never split) */
        o.shard++;
        o.off = 0;
    } else {
        if (al > end) /* pad to the boundary */
            p->t[p->n++] = (out_tensor){.kind = OT_PAD, .dtype = GTR_DT_U8, .shape = {al - end}, .ndim = 1,
                                        .off = end, .bytes = al - end, .shard = o.shard};
        o.off = al;
    }
    p->t[p->n++] = o;
    return &p->t[p->n - 1];
}

static gtr_status write_safetensors(const char *dir, gtr_tensor_set *set, const gtr_t5_config *cfg,
                                    const gtr_t5_tensor_ref *refs, size_t n_refs, gtr_compute_dtype dtype,
                                    uint64_t source_fp, uint64_t max_shard, bool packed, gtr_pool *pool,
                                    gtr_error *err)
{
    const bool int8 = dtype == GTR_DTYPE_INT8;
    const gtr_wtype wt = int8 ? GTR_W_INT8 : GTR_W_BF16;
    const gtr_kernels *lay = gtr_kernels_file_layout();
    const size_t g = gtr_wmat_kgroup(wt);
    size_t nr, kp_unused;
    gtr_wmat_layout(lay, wt, 1, &nr, &kp_unused);
    /* at most: every ref, 4 packed per layer with 2 companions, the embedding's scales, and a
     * pad before each */
    plan p = {gtr_xcalloc(2 * (n_refs + 12 * (size_t)cfg->num_layers + 4), sizeof(out_tensor), "tensor list", err),
              0, 0, max_shard};
    if (!p.t) return GTR_ERR_NOMEM;
    size_t n_aux = 0, max_cols = 1, vec_floats = 0;
    /* 1. the packed matrices, layer by layer (the refs hold each layer's Linears in the order
     * q, k, v, o, wi (wi_0, wi_1), wo), 2. the embedding, 3. their scales and sums, 4. the
     * vectors */
    const gtr_t5_tensor_ref *emb = NULL;
    for (size_t i = 0; i < n_refs;) {
        const gtr_t5_tensor_ref *r = &refs[i];
        if (r->kind == GTR_T5T_EMBED) emb = r;
        if (r->kind != GTR_T5T_LINEAR || !packed) {
            i++;
            continue;
        }
        int layer = atoi(r->name + strlen("encoder.block."));
        for (int mat = 0; mat < GTR_PACKED_NMATS; mat++) {
            size_t n, k, parts = mat == 0 ? 3 : mat == 2 && cfg->ff == GTR_FF_GATED_GELU ? 2 : 1;
            gtr_packed_shape(cfg, mat, &n, &k);
            size_t np = (n + nr - 1) / nr, kp;
            gtr_wmat_layout(lay, wt, k, &nr, &kp);
            out_tensor o = {.kind = OT_PACKED, .ref = &refs[i], .n_parts = parts, .layer = layer, .mat = mat,
                            .dtype = int8 ? GTR_DT_I8 : GTR_DT_BF16, .shape = {np, kp / g, nr, g}, .ndim = 4};
            place(&p, o);
            max_cols = GTR_MAX(max_cols, nr * k);
            i += parts;
        }
    }
    for (size_t i = 0; i < n_refs; i++) { /* the embedding (and, not packed, every Linear) */
        const gtr_t5_tensor_ref *r = &refs[i];
        if (r != emb && (packed || r->kind != GTR_T5T_LINEAR)) continue;
        out_tensor o = {.kind = OT_ROWS, .ref = r, .dtype = int8 ? GTR_DT_I8 : GTR_DT_BF16,
                        .shape = {gtr_wtensor_rows(&r->t), gtr_wtensor_cols(&r->t)}, .ndim = 2};
        place(&p, o);
        max_cols = GTR_MAX(max_cols, o.shape[1]);
    }
    for (size_t i = 0, n_first = p.n; int8 && i < n_first; i++) {
        if (p.t[i].kind != OT_PACKED && p.t[i].kind != OT_ROWS) continue;
        size_t rows = p.t[i].kind == OT_ROWS ? p.t[i].shape[0] : p.t[i].shape[0] * nr;
        place(&p, (out_tensor){.kind = OT_SCALE, .of = i, .dtype = GTR_DT_F32, .shape = {rows}, .ndim = 1,
                               .aux0 = n_aux});
        if (p.t[i].kind == OT_PACKED)
            place(&p, (out_tensor){.kind = OT_COLSUM, .of = i, .dtype = GTR_DT_I32, .shape = {rows}, .ndim = 1,
                                   .aux0 = n_aux});
        n_aux += rows;
    }
    for (size_t i = 0; i < n_refs; i++) {
        const gtr_tensor *src = refs[i].t.w;
        if (refs[i].kind != GTR_T5T_VECTOR) continue;
        out_tensor o = {.kind = OT_VECTOR, .ref = &refs[i], .dtype = GTR_DT_F32, .shape = {src->shape[0]},
                        .ndim = src->ndim > 1 ? 2 : 1};
        if (src->ndim > 1) o.shape[1] = src->shape[1];
        place(&p, o);
        vec_floats = GTR_MAX(vec_floats, src->count);
    }
    size_t K = p.n ? p.t[p.n - 1].shard + 1 : 1;
    writer w = {.set = set, .pool = pool, .layout = lay};
    gtr_status st = GTR_OK;
    /* a few MB of rows at a time (at least one panel of the widest matrix) */
    w.tmp_floats = GTR_MAX(GTR_MAX((size_t)1 << 20, max_cols), vec_floats);
    w.tmp = gtr_malloc_aligned(w.tmp_floats * sizeof(float), err);
    w.codes = gtr_malloc_aligned(w.tmp_floats * 2, err);
    w.scales = gtr_xcalloc(n_aux ? n_aux : 1, sizeof(float), "scales", err);
    w.colsum = gtr_xcalloc(n_aux ? n_aux : 1, sizeof(int32_t), "sums", err);
    if (!w.tmp || !w.codes || !w.scales || !w.colsum) st = GTR_ERR_NOMEM;
    /* where each I8 tensor's scales go: the SCALE entry that names it */
    uint32_t *crcs = gtr_xcalloc(p.n ? p.n : 1, sizeof *crcs, "checksums", err);
    if (!crcs) st = GTR_ERR_NOMEM;
    for (size_t k = 0; !st && k < K; k++) {
        size_t hlen, n_k = 0;
        for (size_t i = 0; i < p.n; i++) n_k += p.t[i].shard == k;
        uint8_t *hdr = make_header(p.t, p.n, k, dtype, source_fp, packed, NULL, n_k, &hlen, err);
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
        static const uint8_t zeros[ALIGN];
        size_t j = 0;
        for (size_t i = 0; !st && i < p.n; i++) {
            out_tensor *t = &p.t[i];
            if (t->shard != k) continue;
            /* the aux arrays' place of an I8 tensor: its SCALE entry's */
            size_t a = 0;
            for (size_t q = i + 1; int8 && q < p.n; q++)
                if (p.t[q].kind == OT_SCALE && p.t[q].of == i) a = p.t[q].aux0;
            gtr_body_crc_begin(&w.crc);
            switch (t->kind) {
            case OT_PAD: st = out_write(&w, zeros, t->bytes, err); break;
            case OT_VECTOR: st = write_vector(&w, t, err); break;
            case OT_ROWS: st = write_embed(&w, t, w.scales + a, err); break;
            case OT_PACKED: st = write_packed(&w, t, w.scales + a, w.colsum + a, err); break;
            case OT_SCALE: st = out_write(&w, w.scales + t->aux0, t->bytes, err); break;
            case OT_COLSUM: st = out_write(&w, w.colsum + t->aux0, t->bytes, err); break;
            }
            crcs[j++] = gtr_body_crc_end(&w.crc);
        }
        /* the header again, now with the checksums: the same length, written over the first */
        size_t hlen2 = 0;
        uint8_t *hdr2 = NULL;
        if (!st && !(hdr2 = make_header(p.t, p.n, k, dtype, source_fp, packed, crcs, n_k, &hlen2, err)))
            st = GTR_ERR_NOMEM;
        if (!st && hlen2 != hlen)
            st = gtr_seterr(err, GTR_ERR_INTERNAL, "quantize: the header changed length with its checksums");
        if (!st) st = gtr_atomic_rewrite(&f, 0, hdr2, hlen, err);
        free(hdr2);
        if (!st) st = gtr_atomic_commit(&f, err);
        else gtr_atomic_abort(&f);
    }
    free(crcs);
    if (!st && K > 1) st = write_index(dir, p.t, p.n, K, err);
    free(p.t);
    gtr_free_aligned(w.tmp);
    gtr_free_aligned(w.codes);
    free(w.scales);
    free(w.colsum);
    return st;
}

/* ---- the command ------------------------------------------------------------------------- */

uint64_t gtr_max_shard_bytes(void)
{
    const char *v = getenv("GTR_MAX_SHARD_BYTES");
    char *end;
    unsigned long long x = v && *v ? strtoull(v, &end, 10) : 0;
    return x && !*end ? (uint64_t)x : GTR_MAX_SHARD_BYTES;
}

gtr_status gtr_model_quantize(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                              int n_threads, gtr_error *err)
{
    return gtr_model_quantize_sharded(in_dir, out_dir, dtype, n_threads, gtr_max_shard_bytes(), err);
}

gtr_status gtr_model_quantize_portable(const char *in_dir, const char *out_dir, int n_threads, gtr_error *err)
{
    return gtr_quantize_run(in_dir, out_dir, GTR_DTYPE_BF16, n_threads, gtr_max_shard_bytes(), false, err);
}

gtr_status gtr_model_quantize_sharded(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                                      int n_threads, uint64_t max_shard, gtr_error *err)
{
    return gtr_quantize_run(in_dir, out_dir, dtype, n_threads, max_shard, true, err);
}

gtr_status gtr_quantize_run(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype, int n_threads,
                            uint64_t max_shard, bool packed, gtr_error *err)
{
    if (!in_dir || !out_dir) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_model_quantize: NULL argument");
    if (dtype != GTR_DTYPE_BF16 && dtype != GTR_DTYPE_INT8)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "quantize: the target dtype must be bf16 or int8");
    size_t olen = strlen(out_dir);
    while (olen > 1 && out_dir[olen - 1] == '/') olen--;
    if (olen == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "quantize: empty output path");
    char *out = strndup(out_dir, olen), *stage = out ? gtr_path_suffixed(out, ".tmp", NULL) : NULL;
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
    if ((st = write_safetensors(tdir, &set, &cfg.t5, refs, n_refs, dtype, source_fp, max_shard, packed, pool, err)))
        goto done;

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
