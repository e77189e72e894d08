/* test_quantize.c — gtr_model_quantize (`gtr quantize`) and loading its output:
 *  - for every kind of reference model directory (F32 safetensors + .bin, pytorch_model.bin
 *    only with gated-gelu, the embedding only as encoder.embed_tokens.weight with
 *    heads·d_kv != d_model, F16), both dtypes: the copy loaded with that dtype (or AUTO) gives
 *    bit for bit the vectors of the original loaded with that dtype, answers to the original's
 *    fingerprint, takes the same memory, and holds the documented tensors (dtypes, shapes,
 *    scales, metadata, no holes in the data);
 *  - the copy's layout (configs, tokenizer, modules, no stale weight files);
 *  - errors: existing output, bad dtype, bad input (nothing left behind), a leftover
 *    OUT.tmp, re-quantising an int8 copy; the fingerprint survives a second quantisation;
 *  - hostile int8 files: missing / unknown metadata, missing or malformed scales, a -128
 *    code, a negative or NaN scale, an orphan scale tensor, a bad source fingerprint (loaded
 *    with no_verify, so the structural checks behind the checksums are the ones tested);
 *  - checksums: CRC-32C (hardware, tables, four at once) against a bitwise reference and the
 *    standard check value; every tensor's recorded checksum against the scheme computed here
 *    independently; a flipped byte inside a weight body, a scale, a vector or a second shard is
 *    refused with one line naming the file and the tensor (and loads with no_verify); an
 *    unusable checksum entry is refused; untouched copies load (the roundtrips above) with
 *    every tensor verified. */
#include "support/testutil.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------- */

static gtr_model *load_dir(const char *dir, gtr_compute_dtype dt)
{
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 2;
    o.dtype = dt;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (!m) fail_msg("load %s: %s", dir, e.message);
    return m;
}

/* The reference token ids of a model (texts up to max_tokens long). */
typedef struct {
    size_t n;
    int32_t **ids;
    size_t *lens;
} tokens;

static tokens load_tokens(const char *model, size_t max_tokens)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference/tokens.jsonl", model);
    char *p = tu_shared(rel);
    json_t **v;
    size_t n = tu_json_lines(p, &v);
    free(p);
    tokens t = {0, calloc(n, sizeof(int32_t *)), calloc(n, sizeof(size_t))};
    assert_non_null(t.ids);
    assert_non_null(t.lens);
    for (size_t i = 0; i < n; i++) {
        size_t L = json_array_size(v[i]);
        if (L > max_tokens) continue;
        t.ids[t.n] = calloc(L, sizeof(int32_t));
        assert_non_null(t.ids[t.n]);
        for (size_t k = 0; k < L; k++) t.ids[t.n][k] = (int32_t)json_integer_value(json_array_get(v[i], k));
        t.lens[t.n++] = L;
    }
    tu_json_lines_free(v, n);
    return t;
}

static void free_tokens(tokens *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->ids[i]);
    free(t->ids);
    free(t->lens);
}

static float *encode(gtr_model *m, const tokens *t)
{
    float *v = calloc(t->n * (size_t)gtr_model_dim(m), sizeof *v);
    assert_non_null(v);
    gtr_error e;
    TU_OK(gtr_model_encode_ids(m, (const int32_t *const *)t->ids, t->lens, t->n, v, &e), &e);
    return v;
}

static bool exists(const char *dir, const char *rel)
{
    char *p = rel ? gtr_path_join(dir, rel) : strdup(dir);
    struct stat sb;
    bool ok = lstat(p, &sb) == 0;
    free(p);
    return ok;
}

static char *quantize_to(const char *src, const char *name, gtr_compute_dtype dt)
{
    char *out = tu_tmp(name);
    gtr_error e;
    TU_OK(gtr_model_quantize(src, out, dt, 2, &e), &e);
    return out;
}

/* CRC-32C one bit at a time (the definition: reflected polynomial 0x82F63B78). */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

/* The scheme of checksum.c computed here from the bitwise CRC: 64 KiB blocks, then the CRC of
 * their CRCs as little-endian u32s. */
static uint32_t tree_ref(const uint8_t *p, size_t n)
{
    uint32_t tree = 0;
    for (size_t o = 0; o < n; o += 65536) {
        uint32_t b = crc32c_bitwise(0, p + o, GTR_MIN((size_t)65536, n - o));
        uint8_t le[4] = {(uint8_t)b, (uint8_t)(b >> 8), (uint8_t)(b >> 16), (uint8_t)(b >> 24)};
        tree = crc32c_bitwise(tree, le, 4);
    }
    return tree;
}

typedef struct {
    const char *name;
    uint64_t b, e;
} span_t;
static int cmp_span(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e > y->e) - (x->e < y->e);
}

/* Every tensor of a copy's file: the recorded checksum is the scheme's; returns the count. */
static size_t check_checksums(const char *path)
{
    char *d;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, &len, &e), &e);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)d[i];
    json_error_t je;
    json_t *h = json_loadb(d + 8, (size_t)hl, 0, &je);
    assert_non_null(h);
    json_t *meta = json_object_get(h, "__metadata__");
    assert_string_equal(json_string_value(json_object_get(meta, "gtr_checksum")), "crc32c-tree64k-v1");
    const char *cs = json_string_value(json_object_get(meta, "gtr_checksums"));
    assert_non_null(cs);
    size_t n = json_object_size(h) - 1, k = 0;
    span_t *sp = calloc(n, sizeof *sp);
    assert_non_null(sp);
    const char *name;
    json_t *v;
    json_object_foreach(h, name, v)
    {
        if (!strcmp(name, "__metadata__")) continue;
        json_t *o = json_object_get(v, "data_offsets");
        sp[k++] = (span_t){name, (uint64_t)json_integer_value(json_array_get(o, 0)),
                           (uint64_t)json_integer_value(json_array_get(o, 1))};
    }
    qsort(sp, n, sizeof *sp, cmp_span);
    assert_int_equal(strlen(cs), 8 * n);
    for (size_t i = 0; i < n; i++) {
        char want[9];
        snprintf(want, sizeof want, "%08x", (unsigned)tree_ref((const uint8_t *)d + 8 + hl + sp[i].b, sp[i].e - sp[i].b));
        if (strncmp(cs + 8 * i, want, 8)) fail_msg("%s: tensor '%s': recorded %.8s, computed %s", path, sp[i].name, cs + 8 * i, want);
    }
    free(sp);
    json_decref(h);
    free(d);
    return n;
}

/* ---- the file's contents ------------------------------------------------------------ */

/* Parse OUT/model.safetensors and check what the documentation promises (packed.c): the
 * layout metadata, each layer's four packed matrices in the file layout's [np, kp/g, nr, g]
 * with I8 companions, the embedding, F32 vectors, every tensor 64-byte aligned in the file. */
static void check_file(const char *dir, gtr_compute_dtype dt, uint64_t fp, int n_layers)
{
    char *p = gtr_path_join(dir, "model.safetensors");
    char *data;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(p, 0, &data, &len, &e), &e);
    gtr_tensor_set set = {0};
    TU_OK(gtr_safetensors_parse((const uint8_t *)data, len, p, 0, &set, &e), &e);
    assert_true(set.has_source_fp);
    assert_true(set.source_fp == fp);
    assert_true(set.packed);
    bool int8 = dt == GTR_DTYPE_INT8;
    gtr_wtype wt = int8 ? GTR_W_INT8 : GTR_W_BF16;
    size_t nr, kp;
    gtr_wmat_layout(gtr_kernels_file_layout(), wt, 64, &nr, &kp);
    size_t data_bytes = 0, n_packed = 0, n_comp = 0;
    for (size_t i = 0; i < set.n; i++) {
        const gtr_tensor *t = &set.t[i];
        data_bytes += t->span;
        assert_int_equal(t->quant, int8 ? GTR_QUANT_INT8_V1 : GTR_QUANT_FLOAT);
        if (t->span && (size_t)((const char *)t->data - data) % 64)
            fail_msg("%s: %s is not 64-byte aligned in the file", p, t->name);
        const char *pk = strstr(t->name, ".packed.");
        bool scale = gtr_str_ends_with(t->name, GTR_QUANT_SCALE_SUFFIX),
             colsum = gtr_str_ends_with(t->name, GTR_PACKED_COLSUM_SUFFIX);
        if (!strncmp(t->name, "gtr_pad.", 8)) {
            assert_int_equal(t->dtype, GTR_DT_U8);
            assert_true(t->span < 64);
        } else if (scale || colsum) {
            n_comp++;
            assert_int_equal(t->dtype, scale ? GTR_DT_F32 : GTR_DT_I32);
            assert_int_equal(t->ndim, 1);
            char base[512];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(t->name) - strlen(scale ? GTR_QUANT_SCALE_SUFFIX : GTR_PACKED_COLSUM_SUFFIX)), t->name);
            gtr_tensor *w = gtr_tensor_find(&set, base);
            assert_non_null(w);
            assert_int_equal(w->dtype, GTR_DT_I8);
            assert_int_equal(t->shape[0], w->ndim == 4 ? w->shape[0] * w->shape[2] : w->shape[0]);
        } else if (pk) {
            n_packed++;
            assert_int_equal(t->dtype, int8 ? GTR_DT_I8 : GTR_DT_BF16);
            assert_int_equal(t->ndim, 4);
            assert_int_equal(t->shape[2], nr);
            assert_int_equal(t->shape[3], gtr_wmat_kgroup(wt));
        } else if (!strcmp(t->name, "shared.weight")) {
            assert_int_equal(t->dtype, int8 ? GTR_DT_I8 : GTR_DT_BF16);
            assert_int_equal(t->ndim, 2);
        } else if (t->dtype != GTR_DT_F32 || strstr(t->name, "SelfAttention.q.")) {
            fail_msg("%s: %s is %s", p, t->name, gtr_tensor_dtype_name(t->dtype));
        }
    }
    assert_int_equal(n_packed, 4 * (size_t)n_layers);
    assert_int_equal(n_comp, int8 ? 2 * n_packed + 1 : 0);
    assert_null(gtr_tensor_find(&set, "encoder.embed_tokens.weight")); /* the tied one once */
    assert_non_null(gtr_tensor_find(&set, "shared.weight"));
    /* no holes: the tensors fill the data area exactly (the safetensors rule), which starts
     * on a 64-byte boundary */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)data[i];
    assert_int_equal((8 + hl) % 64, 0);
    assert_int_equal(data_bytes, len - 8 - hl);
    gtr_tensor_set_free(&set);
    free(data);
    free(p);
}

/* Would kernels kern compute in place with a file's [*, k] matrix of type? */
static bool reads_file_layout(const gtr_kernels *kern, gtr_wtype type, size_t k)
{
    gtr_wmat v = {0};
    v.type = type;
    v.k = k;
    gtr_wmat_layout(gtr_kernels_file_layout(), type, k, &v.nr, &v.kp);
    return gtr_wmat_native(kern, &v);
}

/* ---- round trip ------------------------------------------------------------------------- */

static void roundtrip(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", name);
    char *src = tu_shared(rel);
    tokens t = load_tokens(name, TU_SANITIZED ? 200 : 512);
    static const gtr_compute_dtype dts[2] = {GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    for (int d = 0; d < 2; d++) {
        char out_name[128];
        snprintf(out_name, sizeof out_name, "%s-%s", name, d ? "int8" : "bf16");
        char *out = quantize_to(src, out_name, dts[d]);
        char tmpname[160];
        snprintf(tmpname, sizeof tmpname, "%s.tmp", out_name);
        char *tmp = tu_tmp(tmpname);
        assert_false(exists(tmp, NULL)); /* the staging directory is gone */
        free(tmp);

        gtr_model *a = load_dir(src, dts[d]), *b = load_dir(out, dts[d]), *c = load_dir(out, GTR_DTYPE_AUTO);
        float *va = encode(a, &t), *vb = encode(b, &t), *vc = encode(c, &t);
        size_t bytes = t.n * (size_t)gtr_model_dim(a) * sizeof(float);
        print_message("# %s %s: %zu texts, copy %s the original bit for bit; weights %zu vs %zu bytes\n", name,
                      d ? "int8" : "bf16", t.n, memcmp(va, vb, bytes) ? "DIFFERS from" : "equals",
                      gtr_model_weight_bytes(b), gtr_model_weight_bytes(a));
        assert_memory_equal(va, vb, bytes);
        assert_memory_equal(va, vc, bytes);
        assert_int_equal(gtr_model_dtype(c), dts[d]);
        assert_int_equal(gtr_model_dtype(b), dts[d]);
        assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(b));
        assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(c));
        assert_int_equal(gtr_model_weight_bytes(a), gtr_model_weight_bytes(b));
        assert_non_null(strstr(gtr_model_describe(b), d ? "I8" : "BF16"));
        assert_non_null(strstr(gtr_model_describe(b), " tensors verified (crc32c)"));
        assert_null(strstr(gtr_model_describe(a), "checksums:")); /* the original records none */
        check_file(out, dts[d], gtr_model_fingerprint(a), a->cfg.t5.num_layers);
        { /* a copy answers to the fingerprint it records, even loaded with no_fingerprint */
            gtr_model_options o = gtr_model_default_options();
            o.dtype = dts[d];
            o.n_threads = 2;
            o.no_fingerprint = 1;
            gtr_error e;
            gtr_model *q = gtr_model_load(out, &o, &e);
            if (!q) fail_msg("%s", e.message);
            assert_true(gtr_model_has_fingerprint(q));
            assert_true(gtr_model_fingerprint(q) == gtr_model_fingerprint(a));
            gtr_model_free(q);
        }
        char *qf = gtr_path_join(out, "model.safetensors");
        check_checksums(qf);
        free(qf);
        /* used in place: every weight but the small vectors comes from the mapping when the
         * kernels read the file's layout (AVX-512 BF16 / AMX); else every matrix is repacked
         * and only the embedding table (with its int8 row scales) is mapped, which in the tiny
         * models is most of the bytes */
        bool native = reads_file_layout(b->kern, d ? GTR_W_INT8 : GTR_W_BF16, (size_t)b->cfg.t5.d_model);
        print_message("# %s %s: kernels %s, %zu of %zu weight bytes mapped in place\n", name, d ? "int8" : "bf16",
                      gtr_kernels_name(b->kern), b->t5.mapped_bytes, b->t5.bytes);
        assert_true(b->t5.mapped_bytes > 0);
        if (native) assert_true(b->t5.mapped_bytes >= b->t5.bytes * 9 / 10);
        else {
            size_t vocab = (size_t)b->cfg.t5.vocab_size, dm = (size_t)b->cfg.t5.d_model;
            assert_int_equal(b->t5.mapped_bytes, vocab * dm * (d ? 1 : 2) + (d ? vocab * sizeof(float) : 0));
        }
        assert_int_equal(a->t5.mapped_bytes, 0);
        assert_non_null(strstr(gtr_model_describe(b), "mapped from the file in place"));
        /* the other path: kernels of another layout repack the stored values exactly */
        if (gtr_kernels_by_name("avx2")) {
            const char *saved = getenv("GTR_CPU");
            char *keep = saved ? strdup(saved) : NULL;
            setenv("GTR_CPU", native ? "avx2" : "amx", 1);
            gtr_model *a2 = load_dir(src, dts[d]), *b2 = load_dir(out, dts[d]);
            if (keep) setenv("GTR_CPU", keep, 1);
            else unsetenv("GTR_CPU");
            free(keep);
            float *va2 = encode(a2, &t), *vb2 = encode(b2, &t);
            print_message("# %s %s: kernels %s (%zu bytes mapped): copy %s the original\n", name,
                          d ? "int8" : "bf16", gtr_kernels_name(b2->kern), b2->t5.mapped_bytes,
                          memcmp(va2, vb2, bytes) ? "DIFFERS from" : "equals");
            assert_memory_equal(va2, vb2, bytes);
            free(va2);
            free(vb2);
            gtr_model_free(a2);
            gtr_model_free(b2);
        }

        /* the int8 copy computed in float32 (dequantised weights) stays close to the original */
        if (d == 1) {
            gtr_model *f = load_dir(out, GTR_DTYPE_F32);
            float *vf = encode(f, &t);
            size_t dim = (size_t)gtr_model_dim(f);
            double lo = 1;
            for (size_t i = 0; i < t.n; i++) {
                double ab = 0, aa = 0, bb = 0;
                for (size_t j = 0; j < dim; j++) {
                    ab += (double)va[i * dim + j] * vf[i * dim + j];
                    aa += (double)va[i * dim + j] * va[i * dim + j];
                    bb += (double)vf[i * dim + j] * vf[i * dim + j];
                }
                lo = fmin(lo, ab / sqrt(aa * bb));
            }
            print_message("# %s int8 copy computed in f32 vs int8: min cosine %.6f\n", name, lo);
            assert_true(lo >= 0.99);
            free(vf);
            gtr_model_free(f);
        }
        free(va);
        free(vb);
        free(vc);
        gtr_model_free(a);
        gtr_model_free(b);
        gtr_model_free(c);
        free(out);
    }
    free_tokens(&t);
    free(src);
}

static void test_roundtrip_tiny(void **state) { (void)state; roundtrip("gtr-tiny"); }
static void test_roundtrip_tiny_v11(void **state) { (void)state; roundtrip("gtr-tiny-v11"); }
static void test_roundtrip_tiny_wide(void **state) { (void)state; roundtrip("gtr-tiny-wide"); }
static void test_roundtrip_small(void **state) { (void)state; roundtrip("gtr-small"); }

/* The layout: configs, tokenizer and modules copied; float weights of other formats not. */
static void test_layout(void **state)
{
    (void)state;
    char *src = tu_shared("models/gtr-tiny");
    char *out = quantize_to(src, "layout-int8", GTR_DTYPE_INT8);
    static const char *const want[] = {"modules.json", "config.json", "sentence_bert_config.json",
                                       "spiece.model", "tokenizer_config.json", "1_Pooling/config.json",
                                       "2_Dense/config.json", "2_Dense/model.safetensors", "model.safetensors"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!exists(out, want[i])) fail_msg("%s/%s is missing", out, want[i]);
    assert_false(exists(out, "pytorch_model.bin")); /* gtr-tiny has one at the root: float weights */
    /* configs are byte for byte the source's (int8: torch_dtype is left alone) */
    char *a = gtr_path_join(src, "sentence_bert_config.json"), *b = gtr_path_join(out, "sentence_bert_config.json");
    assert_int_equal(tu_system("cmp -s '%s' '%s'", a, b), 0);
    free(a);
    free(b);
    free(out);
    /* bf16: config.json says so, for transformers */
    out = quantize_to(src, "layout-bf16", GTR_DTYPE_BF16);
    char *cfg = gtr_path_join(out, "config.json");
    gtr_error e;
    json_t *j = gtr_json_load_file(cfg, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "torch_dtype")), "bfloat16");
    json_decref(j);
    free(cfg);
    free(out);
    free(src);
}

/* Above the shard limit the copy is split as transformers does (model-0000k-of-0000K +
 * model.safetensors.index.json) and loads to exactly the single file's model. */
static void test_sharded_output(void **state)
{
    (void)state;
    char *src = tu_shared("models/gtr-tiny");
    static const gtr_compute_dtype dts[] = {GTR_DTYPE_INT8, GTR_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        char *one = quantize_to(src, d ? "one-bf16" : "one-int8", dts[d]);
        char *many = tu_tmp(d ? "shards-bf16" : "shards-int8");
        gtr_error e;
        TU_OK(gtr_model_quantize_sharded(src, many, dts[d], 1, 1u << 20, &e), &e);
        assert_false(exists(many, "model.safetensors"));
        assert_true(exists(many, "model.safetensors.index.json"));
        /* every file the index names exists, and there are several */
        char *ip = gtr_path_join(many, "model.safetensors.index.json");
        json_t *j = gtr_json_load_file(ip, &e), *files = json_object(), *v;
        assert_non_null(j);
        const char *k;
        json_object_foreach(json_object_get(j, "weight_map"), k, v)
        {
            assert_true(exists(many, json_string_value(v)));
            json_object_set_new(files, json_string_value(v), json_true());
        }
        print_message("# %zu shards of at most 1 MiB\n", json_object_size(files));
        assert_true(json_object_size(files) >= 2);
        json_decref(files);
        json_decref(j);
        free(ip);
        float a[1024], b[1024];
        const char *txt = "one file or many";
        gtr_model *m1 = gtr_model_load(one, NULL, &e), *m2 = m1 ? gtr_model_load(many, NULL, &e) : NULL;
        if (!m1 || !m2) fail_msg("%s", e.message);
        assert_true(gtr_model_dim(m1) <= 1024);
        assert_int_equal(gtr_model_fingerprint(m1), gtr_model_fingerprint(m2));
        TU_OK(gtr_model_encode(m1, &txt, NULL, 1, a, &e), &e);
        TU_OK(gtr_model_encode(m2, &txt, NULL, 1, b, &e), &e);
        assert_memory_equal(a, b, (size_t)gtr_model_dim(m1) * sizeof(float));
        gtr_model_free(m1);
        gtr_model_free(m2);
        free(one);
        free(many);
    }
    free(src);
}

/* ---- memory: a copy loaded in its dtype is used from the page cache ------------------- */

/* Private_Dirty of this process in bytes (anonymous memory written: what a load copies). */
static size_t private_dirty(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return SIZE_MAX;
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "Private_Dirty: %llu kB", &kb) == 1;
    fclose(f);
    return found ? (size_t)kb * 1024 : SIZE_MAX;
}

/* In a child process (a fresh heap): load dir as dt; out[0] = the growth of Private_Dirty
 * over the load, out[1] = the model's weight bytes, out[2] = of them from the mapping;
 * tok_only: out[0] for loading the model's tokenizer alone. */
static void load_in_child(const char *dir, gtr_compute_dtype dt, bool tok_only, size_t out[3])
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        size_t r[3] = {SIZE_MAX, 0, 0}, before = private_dirty();
        gtr_model_options o = gtr_model_default_options();
        o.n_threads = 1;
        o.dtype = dt;
        gtr_error e;
        gtr_model *m = NULL;
        if (tok_only) { /* what a load takes besides the weights, mostly */
            char *spm = gtr_path_join(dir, "spiece.model");
            gtr_tokenizer *t = gtr_tokenizer_load(spm, NULL, &e);
            if (t) r[0] = private_dirty() - GTR_MIN(before, private_dirty());
            _exit(write(fds[1], r, sizeof r) == (ssize_t)sizeof r && t ? 0 : 1);
        }
        m = gtr_model_load(dir, &o, &e);
        if (m && before != SIZE_MAX) {
            size_t after = private_dirty();
            r[0] = after > before ? after - before : 0;
            r[1] = gtr_model_weight_bytes(m);
            r[2] = m->t5.mapped_bytes;
        }
        ssize_t w = write(fds[1], r, sizeof r);
        _exit(w == (ssize_t)sizeof r && m ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], out, 3 * sizeof(size_t));
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(got, (ssize_t)(3 * sizeof(size_t)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail_msg("loading %s in a child failed", dir);
}

static void test_mapped_memory(void **state)
{
    (void)state;
    if (private_dirty() == SIZE_MAX) {
        print_message("# /proc/self/smaps_rollup unreadable: skipped\n");
        return;
    }
    char *src = tu_shared("models/gtr-small");
    static const gtr_compute_dtype dts[2] = {GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    for (int d = 0; d < 2; d++) {
        char *out = quantize_to(src, d ? "mem-int8" : "mem-bf16", dts[d]);
        size_t copy[3], orig[3], tok[3];
        load_in_child(out, dts[d], false, copy);
        load_in_child(src, dts[d], false, orig);
        load_in_child(out, dts[d], true, tok);
        print_message("# gtr-small %s: Private_Dirty grew %.1f MiB loading the copy (%.1f of %.1f MiB weights mapped), "
                      "%.1f MiB loading the original, %.1f MiB loading the tokenizer alone\n", d ? "int8" : "bf16",
                      copy[0] / 1048576.0, copy[2] / 1048576.0, copy[1] / 1048576.0, orig[0] / 1048576.0,
                      tok[0] / 1048576.0);
        /* a load that copies its weights costs about their size in private memory; the copy's
         * mapped weights cost none of it: besides the tokenizer, its load takes a small part
         * of the weights' size */
        assert_true(orig[0] >= copy[0] + copy[2] / 2);
        assert_true(copy[0] < tok[0] + copy[1] / 3);
        free(out);
    }
    free(src);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    char *src = tu_shared("models/gtr-tiny");
    gtr_error e;
    char *out = quantize_to(src, "err-int8", GTR_DTYPE_INT8);
    /* the output exists */
    assert_int_equal(gtr_model_quantize(src, out, GTR_DTYPE_BF16, 1, &e), GTR_ERR_IO);
    assert_non_null(strstr(e.message, "already exists"));
    /* F32 / AUTO are not targets */
    char *o2 = tu_tmp("err-f32");
    assert_int_equal(gtr_model_quantize(src, o2, GTR_DTYPE_F32, 1, &e), GTR_ERR_INVALID_ARG);
    assert_int_equal(gtr_model_quantize(src, o2, GTR_DTYPE_AUTO, 1, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "bf16 or int8"));
    /* not a model: error naming it, nothing written */
    char *nope = tu_tmp("no-such-model");
    assert_int_not_equal(gtr_model_quantize(nope, o2, GTR_DTYPE_INT8, 1, &e), GTR_OK);
    assert_non_null(strstr(e.message, "no-such-model"));
    assert_false(exists(o2, NULL));
    char *o2tmp = tu_tmp("err-f32.tmp");
    assert_false(exists(o2tmp, NULL));
    /* an int8 copy is not quantised again */
    char *o3 = tu_tmp("err-again");
    assert_int_equal(gtr_model_quantize(out, o3, GTR_DTYPE_BF16, 1, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "already quantised"));
    assert_false(exists(o3, NULL));
    /* a leftover staging directory is replaced */
    assert_int_equal(tu_system("mkdir -p '%s' && echo junk > '%s/junk'", o2tmp, o2tmp), 0);
    TU_OK(gtr_model_quantize(src, o2, GTR_DTYPE_BF16, 1, &e), &e);
    assert_false(exists(o2, "junk"));
    assert_false(exists(o2tmp, NULL));
    /* bf16 copy -> int8: the fingerprint of the first source carries through */
    char *o4 = tu_tmp("err-bf16-int8");
    TU_OK(gtr_model_quantize(o2, o4, GTR_DTYPE_INT8, 1, &e), &e);
    gtr_model *a = load_dir(src, GTR_DTYPE_F32), *b = load_dir(o4, GTR_DTYPE_AUTO);
    assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(b));
    gtr_model_free(a);
    gtr_model_free(b);
    free(o4);
    free(o3);
    free(o2tmp);
    free(nope);
    free(o2);
    free(out);
    free(src);
}

/* ---- hostile int8 files -------------------------------------------------------------- */

/* Copy directory `from` to `to` (cp -r) and return OUT/model.safetensors's path. */
static char *clone(const char *from, const char *name)
{
    char *to = tu_tmp(name);
    assert_int_equal(tu_system("rm -rf '%s' && cp -r '%s' '%s'", to, from, to), 0);
    char *p = gtr_path_join(to, "model.safetensors");
    free(to);
    return p;
}

/* Rewrite the header of a safetensors file with edit(json) (data unchanged). */
typedef void (*header_edit)(json_t *h);
static void rewrite_header(const char *path, header_edit edit)
{
    char *d;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, &len, &e), &e);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | (uint8_t)d[i];
    json_error_t je;
    json_t *h = json_loadb(d + 8, (size_t)n, 0, &je);
    assert_non_null(h);
    edit(h);
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    gtr_buf b = {0};
    TU_OK(gtr_buf_append(&b, "\0\0\0\0\0\0\0\0", 8, &e), &e);
    TU_OK(gtr_buf_append(&b, text, strlen(text), &e), &e);
    while ((b.len - 8) % 8) TU_OK(gtr_buf_append(&b, " ", 1, &e), &e);
    uint64_t nh = b.len - 8;
    for (int i = 0; i < 8; i++) b.data[i] = (char)(nh >> (8 * i));
    TU_OK(gtr_buf_append(&b, d + 8 + n, len - 8 - n, &e), &e);
    tu_write(path, b.data, b.len);
    gtr_buf_free(&b);
    free(text);
    free(d);
}

/* Overwrite bytes of tensor `name` at byte offset off within its data. */
static void poke(const char *path, const char *name, size_t off, const void *bytes, size_t n)
{
    char *d;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, &len, &e), &e);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)d[i];
    json_error_t je;
    json_t *h = json_loadb(d + 8, (size_t)hl, 0, &je);
    assert_non_null(h);
    json_t *offs = json_object_get(json_object_get(h, name), "data_offsets");
    assert_non_null(offs);
    size_t at = 8 + (size_t)hl + (size_t)json_integer_value(json_array_get(offs, 0)) + off;
    memcpy(d + at, bytes, n);
    json_decref(h);
    tu_write(path, d, len);
    free(d);
}

static void expect_fail(const char *file, gtr_status code, const char *n1, const char *n2)
{
    char *dir = strdup(file);
    *strrchr(dir, '/') = '\0';
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 1;
    o.dtype = GTR_DTYPE_INT8;
    o.no_verify = 1; /* the checks behind the checksums (a poked scale is damage, see below) */
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (m) fail_msg("%s loaded", dir);
    print_message("# %s\n", e.message);
    assert_int_equal(e.code, code);
    if (n1) assert_non_null(strstr(e.message, n1));
    if (n2) assert_non_null(strstr(e.message, n2));
    free(dir);
}

#define Q0 "encoder.block.0.packed.qkv"

static void drop_quant(json_t *h) { json_object_del(json_object_get(h, "__metadata__"), "gtr_quantization"); }
static void unknown_quant(json_t *h)
{
    json_object_set_new(json_object_get(h, "__metadata__"), "gtr_quantization", json_string("int4-v9"));
}
static void drop_scale(json_t *h) { json_object_del(h, Q0 "_scale"); }
static void scale_i32(json_t *h)
{
    json_object_set_new(json_object_get(h, Q0 "_scale"), "dtype", json_string("I32"));
}
static void orphan_scale(json_t *h)
{
    json_object_set_new(h, "encoder.final_layer_norm.weight_scale",
                        json_pack("{s:s, s:[i], s:[i, i]}", "dtype", "F32", "shape", 0, "data_offsets", 0, 0));
}
static void bad_fp(json_t *h)
{
    json_object_set_new(json_object_get(h, "__metadata__"), "gtr_source_fingerprint", json_string("12345"));
}

static void packed_shape(json_t *h)
{
    json_t *sh = json_object_get(json_object_get(h, Q0), "shape");
    json_t *a = json_array_get(sh, 2), *b = json_array_get(sh, 3);
    json_integer_set(a, json_integer_value(a) / 2); /* [np, kp/g, nr, g] -> [np, kp/g, nr/2, 2g] */
    json_integer_set(b, json_integer_value(b) * 2);
}
static void drop_colsum(json_t *h) { json_object_del(h, Q0 "_colsum"); }
static void other_layout(json_t *h)
{
    json_object_set_new(json_object_get(h, "__metadata__"), "gtr_layout", json_string("gtr-panels-v9"));
}
static void drop_fp(json_t *h) { json_object_del(json_object_get(h, "__metadata__"), "gtr_source_fingerprint"); }

static void test_hostile_int8(void **state)
{
    (void)state;
    char *src = tu_shared("models/gtr-tiny");
    char *good = quantize_to(src, "hostile-src", GTR_DTYPE_INT8);
    char *p;
    p = clone(good, "h-noquant");
    rewrite_header(p, drop_quant);
    expect_fail(p, GTR_ERR_FORMAT, "is I8 but", "int8-per-channel-v1");
    free(p);
    p = clone(good, "h-unknown");
    rewrite_header(p, unknown_quant);
    expect_fail(p, GTR_ERR_FORMAT, "model.safetensors", "gtr_quantization");
    free(p);
    p = clone(good, "h-noscale");
    rewrite_header(p, drop_scale);
    expect_fail(p, GTR_ERR_NOT_FOUND, Q0 "_scale", "missing");
    free(p);
    p = clone(good, "h-scale-i32");
    rewrite_header(p, scale_i32);
    expect_fail(p, GTR_ERR_FORMAT, Q0 "_scale", "must be F32");
    free(p);
    p = clone(good, "h-orphan");
    rewrite_header(p, orphan_scale);
    expect_fail(p, GTR_ERR_FORMAT, "unexpected tensor", "encoder.final_layer_norm.weight_scale");
    free(p);
    p = clone(good, "h-fp");
    rewrite_header(p, bad_fp);
    expect_fail(p, GTR_ERR_FORMAT, "gtr_source_fingerprint", "16 hex");
    free(p);
    /* packed files: a truncated one, a shape that is no panel layout, a missing Σq, a
     * layout name this version does not read, no source fingerprint */
    p = clone(good, "h-trunc");
    assert_int_equal(tu_system("truncate -s -1000 '%s'", p), 0);
    expect_fail(p, GTR_ERR_FORMAT, "model.safetensors", "truncated file?");
    free(p);
    p = clone(good, "h-shape");
    rewrite_header(p, packed_shape);
    expect_fail(p, GTR_ERR_MISMATCH, Q0, "no panel layout");
    free(p);
    p = clone(good, "h-colsum");
    rewrite_header(p, drop_colsum);
    expect_fail(p, GTR_ERR_NOT_FOUND, Q0 "_colsum", "missing");
    free(p);
    p = clone(good, "h-layout");
    rewrite_header(p, other_layout);
    expect_fail(p, GTR_ERR_FORMAT, "gtr_layout", "gtr-panels-v9");
    free(p);
    p = clone(good, "h-nofp");
    rewrite_header(p, drop_fp);
    expect_fail(p, GTR_ERR_FORMAT, "packed weights", "gtr_source_fingerprint");
    free(p);
    p = clone(good, "h-negscale");
    float neg = -0.5f, nan_ = NAN;
    poke(p, Q0 "_scale", 3 * 4, &neg, 4);
    expect_fail(p, GTR_ERR_FORMAT, Q0 "_scale", "row 3");
    free(p);
    p = clone(good, "h-nanscale");
    poke(p, "shared.weight_scale", 100 * 4, &nan_, 4);
    expect_fail(p, GTR_ERR_FORMAT, "shared.weight_scale", "row 100");
    free(p);
    free(good);
    free(src);
}

/* ---- checksums ------------------------------------------------------------------------ */

static void test_crc32c(void **state)
{
    (void)state;
    /* the check value of the CRC-32C catalogue entry */
    assert_int_equal(gtr_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(gtr_crc32c_generic(0, "123456789", 9), 0xE3069283u);
    size_t n = (1u << 20) + 77;
    uint8_t *buf = malloc(n + 16);
    assert_non_null(buf);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n + 16; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t len = 0; len < 300; len += 7)
        for (size_t off = 0; off < 9; off++) {
            uint32_t want = crc32c_bitwise(0, buf + off, len);
            assert_int_equal(gtr_crc32c(0, buf + off, len), want);
            assert_int_equal(gtr_crc32c_generic(0, buf + off, len), want);
            /* in two pieces, continued */
            assert_int_equal(gtr_crc32c(gtr_crc32c(0, buf + off, len / 3), buf + off + len / 3, len - len / 3), want);
        }
    uint32_t big = crc32c_bitwise(0, buf + 3, n);
    assert_int_equal(gtr_crc32c(0, buf + 3, n), big);
    assert_int_equal(gtr_crc32c_generic(0, buf + 3, n), big);
    /* four at once = four one at a time, at odd lengths and alignments */
    for (size_t len = 0; len < 200000; len = len * 3 + 5) {
        const void *p[4] = {buf + 1, buf + 1000, buf + 20003, buf + 5};
        uint32_t out[4];
        gtr_crc32c_x4(p, GTR_MIN(len, n - 20003), out);
        for (int k = 0; k < 4; k++)
            assert_int_equal(out[k], crc32c_bitwise(0, (const uint8_t *)p[k], GTR_MIN(len, n - 20003)));
    }
    free(buf);
}

/* Load dir (int8, 2 threads) expecting the checksum failure naming file and tensor, on one
 * line; then with no_verify it loads (when loads_unverified). */
static void expect_damage(const char *file, const char *tensor, bool loads_unverified)
{
    char *dir = strdup(file);
    *strrchr(dir, '/') = '\0';
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 2;
    o.dtype = GTR_DTYPE_AUTO;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (m) fail_msg("%s loaded (a byte of '%s' was flipped)", dir, tensor);
    print_message("# %s\n", e.message);
    assert_int_equal(e.code, GTR_ERR_MISMATCH);
    assert_non_null(strstr(e.message, file));
    char quoted[256];
    snprintf(quoted, sizeof quoted, "tensor '%s' is damaged", tensor);
    assert_non_null(strstr(e.message, quoted));
    assert_null(strchr(e.message, '\n'));
    o.no_verify = 1;
    m = gtr_model_load(dir, &o, &e);
    if (loads_unverified) {
        if (!m) fail_msg("no_verify: %s", e.message);
        assert_non_null(strstr(gtr_model_describe(m), "checksums: not verified"));
    }
    gtr_model_free(m);
    free(dir);
}

static void flip(const char *path, const char *tensor, double where)
{
    char *d;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, &len, &e), &e);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)d[i];
    json_error_t je;
    json_t *h = json_loadb(d + 8, (size_t)hl, 0, &je);
    json_t *o = json_object_get(json_object_get(h, tensor), "data_offsets");
    if (!o) fail_msg("%s: no tensor '%s'", path, tensor);
    uint64_t b = (uint64_t)json_integer_value(json_array_get(o, 0)), en = (uint64_t)json_integer_value(json_array_get(o, 1));
    d[8 + hl + b + (uint64_t)((double)(en - b - 1) * where)] ^= 0x04;
    json_decref(h);
    tu_write(path, d, len);
    free(d);
}

static void bad_scheme(json_t *h)
{
    json_object_set_new(json_object_get(h, "__metadata__"), "gtr_checksum", json_string("sha1-v7"));
}
static void short_checksums(json_t *h)
{
    json_t *m = json_object_get(h, "__metadata__");
    const char *cs = json_string_value(json_object_get(m, "gtr_checksums"));
    char *t = strdup(cs);
    t[strlen(t) - 8] = '\0';
    json_object_set_new(m, "gtr_checksums", json_string(t));
    free(t);
}

static void test_checksums(void **state)
{
    (void)state;
    char *src = tu_shared("models/gtr-tiny");
    char *q8 = quantize_to(src, "crc-int8", GTR_DTYPE_INT8), *qb = quantize_to(src, "crc-bf16", GTR_DTYPE_BF16);
    char *p8 = gtr_path_join(q8, "model.safetensors"), *pb = gtr_path_join(qb, "model.safetensors");
    size_t n8 = check_checksums(p8), nb = check_checksums(pb);
    print_message("# int8 copy: %zu tensors, bf16 copy: %zu, checksums as computed here\n", n8, nb);
    /* the portable copy records them too */
    char *qp = tu_tmp("crc-portable");
    gtr_error e;
    TU_OK(gtr_model_quantize_portable(src, qp, 2, &e), &e);
    char *pp = gtr_path_join(qp, "model.safetensors");
    check_checksums(pp);
    /* the load verifies every tensor, with any thread count */
    for (int threads = 1; threads <= 3; threads += 2) {
        gtr_model_options o = gtr_model_default_options();
        o.n_threads = threads;
        gtr_model *m = gtr_model_load(q8, &o, &e);
        if (!m) fail_msg("%s", e.message);
        char want[64];
        snprintf(want, sizeof want, "checksums: %zu tensors verified", n8);
        assert_non_null(strstr(gtr_model_describe(m), want));
        gtr_model_free(m);
    }
    /* one flipped byte: inside a packed weight (middle, first, last byte), the embedding, a
     * scale (which the structural check would accept), a vector */
    static const struct {
        const char *tensor;
        double where;
    } hits8[] = {{"encoder.block.1.packed.wi", 0.5},  {"encoder.block.0.packed.qkv", 0.0},
                 {"encoder.block.1.packed.wo", 1.0},  {"shared.weight", 0.3},
                 {"encoder.block.0.packed.o_scale", 0.5}, {"encoder.final_layer_norm.weight", 0.9}};
    for (size_t i = 0; i < sizeof hits8 / sizeof hits8[0]; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "crc-flip-%zu", i);
        char *p = clone(q8, nm);
        flip(p, hits8[i].tensor, hits8[i].where);
        expect_damage(p, hits8[i].tensor, true);
        free(p);
    }
    {   /* gtr-small: tensors of many 64 KiB blocks (checked four at a time, in several
         * tasks); a byte deep inside the embedding */
        char *small = tu_shared("models/gtr-small");
        char *qs = quantize_to(small, "crc-small", GTR_DTYPE_INT8);
        char *p = clone(qs, "crc-flip-small");
        flip(p, "shared.weight", 0.77);
        expect_damage(p, "shared.weight", true);
        free(p);
        free(qs);
        free(small);
    }
    {   /* bf16: a packed weight */
        char *p = clone(qb, "crc-flip-bf16");
        flip(p, "encoder.block.1.packed.qkv", 0.7);
        expect_damage(p, "encoder.block.1.packed.qkv", true);
        free(p);
    }
    {   /* flipped back: loads, the same vectors as the untouched copy */
        char *p = clone(q8, "crc-flip-back");
        flip(p, "encoder.block.1.packed.wi", 0.5);
        flip(p, "encoder.block.1.packed.wi", 0.5);
        char *dir = strdup(p);
        *strrchr(dir, '/') = '\0';
        gtr_model *a = load_dir(q8, GTR_DTYPE_INT8), *b = load_dir(dir, GTR_DTYPE_INT8);
        float va[1024], vb[1024];
        const char *txt = "a flipped bit, flipped back";
        TU_OK(gtr_model_encode(a, &txt, NULL, 1, va, &e), &e);
        TU_OK(gtr_model_encode(b, &txt, NULL, 1, vb, &e), &e);
        assert_memory_equal(va, vb, (size_t)gtr_model_dim(a) * sizeof(float));
        gtr_model_free(a);
        gtr_model_free(b);
        free(dir);
        free(p);
    }
    /* unusable checksum entries: refused, naming the entry; loadable with no_verify */
    static const struct {
        header_edit edit;
        const char *msg;
    } bad[] = {{bad_scheme, "\"gtr_checksum\""}, {short_checksums, "one checksum (8 hex digits) per tensor"}};
    for (size_t i = 0; i < 2; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "crc-hdr-%zu", i);
        char *p = clone(q8, nm);
        rewrite_header(p, bad[i].edit);
        char *dir = strdup(p);
        *strrchr(dir, '/') = '\0';
        gtr_model_options o = gtr_model_default_options();
        o.n_threads = 1;
        gtr_model *m = gtr_model_load(dir, &o, &e);
        if (m) fail_msg("%s loaded", dir);
        print_message("# %s\n", e.message);
        assert_int_equal(e.code, GTR_ERR_FORMAT);
        assert_non_null(strstr(e.message, p));
        assert_non_null(strstr(e.message, bad[i].msg));
        o.no_verify = 1;
        m = gtr_model_load(dir, &o, &e);
        if (!m) fail_msg("no_verify: %s", e.message);
        gtr_model_free(m);
        free(dir);
        free(p);
    }
    /* a sharded copy: the damaged tensor is named with its shard's file */
    char *many = tu_tmp("crc-shards");
    TU_OK(gtr_model_quantize_sharded(src, many, GTR_DTYPE_INT8, 1, 1u << 20, &e), &e);
    char *ip = gtr_path_join(many, "model.safetensors.index.json");
    json_t *j = gtr_json_load_file(ip, &e);
    assert_non_null(j);
    const char *shard = json_string_value(json_object_get(json_object_get(j, "weight_map"), "encoder.block.1.packed.wo"));
    assert_non_null(shard);
    char *sp = gtr_path_join(many, shard);
    assert_non_null(strstr(sp, "-of-"));
    check_checksums(sp);
    flip(sp, "encoder.block.1.packed.wo", 0.25);
    expect_damage(sp, "encoder.block.1.packed.wo", true);
    free(sp);
    json_decref(j);
    free(ip);
    free(many);
    free(pp);
    free(qp);
    free(p8);
    free(pb);
    free(q8);
    free(qb);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_tiny),
        cmocka_unit_test(test_roundtrip_tiny_v11),
        cmocka_unit_test(test_roundtrip_tiny_wide),
        cmocka_unit_test(test_roundtrip_small),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_sharded_output),
        cmocka_unit_test(test_mapped_memory),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_hostile_int8),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_checksums),
    };
    return cmocka_run_group_tests_name("quantize", tests, NULL, NULL);
}
