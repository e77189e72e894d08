/* test_model_errors.c — bad model directories and hostile files give clear errors that name
 * the file (and tensor), never a crash: corrupted copies of ../shared/models/gtr-tiny made in
 * the test's temporary directory, and the safetensors / zip / pickle readers on crafted bytes. */
#include "support/testutil.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- corrupted copies of gtr-tiny ------------------------------------------- */

/* A directory of links to the files of shared model `model` (real sub-directories, so single
 * files can be replaced); without the .bin files unless with_bin. */
static char *copy_model(const char *model, const char *name, bool with_bin)
{
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", model);
    char *src = tu_shared(rel);
    char *abs = realpath(src, NULL);
    assert_non_null(abs);
    char *dir = tu_tmp(name);
    assert_int_equal(tu_system("mkdir -p '%s/1_Pooling' '%s/2_Dense' && cd '%s' && "
                               "for f in config.json modules.json sentence_bert_config.json spiece.model "
                               "model.safetensors 1_Pooling/config.json 2_Dense/config.json "
                               "2_Dense/model.safetensors %s; do ln -s '%s'/$f $f; done",
                               dir, dir, dir,
                               with_bin ? "pytorch_model.bin 2_Dense/pytorch_model.bin" : "", abs),
                     0);
    free(abs);
    free(src);
    return dir;
}

static char *copy_tiny(const char *name, bool with_bin) { return copy_model("gtr-tiny", name, with_bin); }

static void put(const char *dir, const char *rel, const char *content)
{
    char *p = gtr_path_join(dir, rel);
    unlink(p);
    tu_write(p, content, strlen(content));
    free(p);
}

static void drop(const char *dir, const char *rel)
{
    char *p = gtr_path_join(dir, rel);
    assert_int_equal(unlink(p), 0);
    free(p);
}

static void read_shared(const char *rel, char **data, size_t *len)
{
    char *p = tu_shared(rel);
    gtr_error e;
    TU_OK(gtr_read_file(p, 0, data, len, &e), &e);
    free(p);
}

/* gtr-tiny's safetensors file rel: its bytes and its header's length */
static uint64_t read_model_safetensors(const char *model, const char *rel, char **d, size_t *len)
{
    char srel[256];
    snprintf(srel, sizeof srel, "models/%s/%s", model, rel);
    read_shared(srel, d, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | (uint8_t)(*d)[i];
    return n;
}

static uint64_t read_tiny_safetensors(const char *rel, char **d, size_t *len)
{
    return read_model_safetensors("gtr-tiny", rel, d, len);
}

/* Replace dir/rel with gtr-tiny's file of that name whose safetensors header had `from`
 * replaced by `to` (the header length is recomputed; tensor data is unchanged). */
static void edit_header(const char *dir, const char *rel, const char *from, const char *to)
{
    char *d;
    size_t len;
    uint64_t n = read_tiny_safetensors(rel, &d, &len);
    char *h = strndup(d + 8, (size_t)n);
    char *at = strstr(h, from);
    if (!at) fail_msg("'%s' not in the header of %s", from, rel);
    gtr_buf b = {0};
    gtr_error e;
    size_t pre = (size_t)(at - h);
    gtr_buf_append(&b, "\0\0\0\0\0\0\0\0", 8, &e);
    gtr_buf_append(&b, h, pre, &e);
    gtr_buf_append(&b, to, strlen(to), &e);
    gtr_buf_append(&b, at + strlen(from), strlen(at + strlen(from)), &e);
    while ((b.len - 8) % 8) gtr_buf_append(&b, " ", 1, &e);
    uint64_t nh = b.len - 8;
    for (int i = 0; i < 8; i++) b.data[i] = (char)(nh >> (8 * i));
    gtr_buf_append(&b, d + 8 + n, len - 8 - n, &e);
    char *p = gtr_path_join(dir, rel);
    unlink(p);
    tu_write(p, b.data, b.len);
    free(p);
    gtr_buf_free(&b);
    free(h);
    free(d);
}

/* Loading dir must fail with code and a message containing every needle. */
static void expect_fail(const char *dir, gtr_status code, const char *n1, const char *n2)
{
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 1;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (m) {
        gtr_model_free(m);
        fail_msg("%s loaded, expected an error containing '%s'", dir, n1);
    }
    print_message("# %s\n", e.message);
    if (e.code != code) fail_msg("status %s, want %s: %s", gtr_status_str(e.code), gtr_status_str(code), e.message);
    if (n1 && !strstr(e.message, n1)) fail_msg("message lacks '%s': %s", n1, e.message);
    if (n2 && !strstr(e.message, n2)) fail_msg("message lacks '%s': %s", n2, e.message);
    assert_null(strchr(e.message, '\n'));
}

/* Replace dir/rel with shared model `model`'s file of that name in which element idx of tensor
 * name (stored as dtype, es bytes a value) is the es bytes at v. */
static void poke(const char *dir, const char *model, const char *rel, const char *name, const char *dtype, size_t es,
                 size_t idx, const void *v)
{
    char *d;
    size_t len;
    uint64_t n = read_model_safetensors(model, rel, &d, &len);
    json_error_t je;
    json_t *h = json_loadb(d + 8, (size_t)n, 0, &je);
    assert_non_null(h);
    json_t *t = json_object_get(h, name);
    if (!t) fail_msg("no tensor %s in %s", name, rel);
    assert_string_equal(json_string_value(json_object_get(t, "dtype")), dtype);
    size_t off = 8 + (size_t)n + (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    assert_true(off + es * idx + es <= len);
    memcpy(d + off + es * idx, v, es);
    char *p = gtr_path_join(dir, rel);
    unlink(p);
    tu_write(p, d, len);
    free(p);
    json_decref(h);
    free(d);
}

/* gtr-tiny's file rel in dir with float32 element idx of tensor name set to v. */
static void poke_f32(const char *dir, const char *rel, const char *name, size_t idx, float v)
{
    poke(dir, "gtr-tiny", rel, name, "F32", 4, idx, &v);
}

/* A NaN or an infinity in any weight (attention, feed-forward, embedding, layer norm, Dense) is
 * refused at load, naming the file, the tensor and the element, in every compute precision. */
static void test_nonfinite_weights(void **state)
{
    (void)state;
    static const struct {
        const char *file, *tensor;
        size_t idx;
        float v;
        const char *want;
    } cases[] = {
        {"model.safetensors", "encoder.block.0.layer.0.SelfAttention.q.weight", 5, NAN, "[0, 5] is NaN"},
        {"model.safetensors", "encoder.block.1.layer.1.DenseReluDense.wi.weight", 130, INFINITY, "[2, 2] is +infinity"},
        {"model.safetensors", "shared.weight", 64 * 31000 + 3, -INFINITY, "[31000, 3] is -infinity"},
        {"model.safetensors", "encoder.final_layer_norm.weight", 7, NAN, "[7, 0] is NaN"},
        {"2_Dense/model.safetensors", "linear.weight", 64, NAN, "[1, 0] is NaN"},
    };
    static const gtr_compute_dtype dts[] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char name[32];
        snprintf(name, sizeof name, "nonfinite%zu", c);
        char *dir = copy_tiny(name, false);
        poke_f32(dir, cases[c].file, cases[c].tensor, cases[c].idx, cases[c].v);
        for (size_t k = 0; k < 3; k++) {
            gtr_model_options o = gtr_model_default_options();
            o.n_threads = 1;
            o.dtype = dts[k];
            gtr_error e;
            gtr_model *m = gtr_model_load(dir, &o, &e);
            if (m) fail_msg("case %zu dtype %zu: loaded a model with a non-finite weight", c, k);
            assert_int_equal(e.code, GTR_ERR_FORMAT);
            if (!strstr(e.message, cases[c].file) || !strstr(e.message, cases[c].want) ||
                !strstr(e.message, strrchr(cases[c].tensor, '.') + 1))
                fail_msg("case %zu: '%s' should name %s, the tensor and '%s'", c, e.message, cases[c].file,
                         cases[c].want);
        }
        free(dir);
    }
}

/* The same for an F16 checkpoint (the hub's format) loaded with no_fingerprint, whose Linears
 * are packed without the hash: the error is the one a normal load gives, word for word. */
static void test_nonfinite_f16_no_fingerprint(void **state)
{
    (void)state;
    char *dir = copy_model("gtr-tiny-f16", "nonfinite-f16", false);
    gtr_error e;
    gtr_model_config cfg;
    TU_OK(gtr_model_config_read(dir, &cfg, &e), &e);
    size_t cols = (size_t)cfg.t5.d_ff; /* wo's row length */
    gtr_model_config_free(&cfg);
    const uint8_t nan16[2] = {0x00, 0x7e}; /* F16 NaN 0x7e00, little-endian */
    poke(dir, "gtr-tiny-f16", "model.safetensors", "encoder.block.1.layer.1.DenseReluDense.wo.weight", "F16", 2,
         3 * cols + 17, nan16);
    static const gtr_compute_dtype dts[] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    for (size_t k = 0; k < 3; k++) {
        char msg[2][1024];
        for (int nofp = 0; nofp < 2; nofp++) {
            gtr_model_options o = gtr_model_default_options();
            o.n_threads = 2;
            o.dtype = dts[k];
            o.no_fingerprint = nofp;
            gtr_model *m = gtr_model_load(dir, &o, &e);
            if (m) fail_msg("dtype %zu no_fingerprint %d: loaded a model with a NaN weight", k, nofp);
            assert_int_equal(e.code, GTR_ERR_FORMAT);
            snprintf(msg[nofp], sizeof msg[nofp], "%s", e.message);
        }
        print_message("# %s\n", msg[1]);
        assert_string_equal(msg[0], msg[1]);
        assert_non_null(strstr(msg[1], "[3, 17] is NaN"));
        assert_non_null(strstr(msg[1], "wo.weight"));
    }
    free(dir);
}

/* Finite weights whose activations overflow: the load succeeds, encoding is an error (never a
 * non-finite vector, never a plausible-looking one). */
static void test_overflow_is_an_error(void **state)
{
    (void)state;
    char *dir = copy_tiny("overflow", false);
    poke_f32(dir, "model.safetensors", "encoder.final_layer_norm.weight", 7, 3e38f);
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 1;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (!m) fail_msg("%s", e.message);
    const char *texts[2] = {"hello world", "a second text"};
    float out[2 * 64];
    assert_int_equal(gtr_model_encode(m, texts, NULL, 2, out, &e), GTR_ERR_INTERNAL);
    assert_non_null(strstr(e.message, "not finite"));
    gtr_model_free(m);
    free(dir);
}

static void test_copy_loads(void **state)
{
    (void)state;
    char *dir = copy_tiny("ok", true);
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, NULL, &e);
    if (!m) fail_msg("%s", e.message);
    gtr_model_free(m);
    free(dir);
}

static void test_missing_files(void **state)
{
    (void)state;
    char *nodir = tu_tmp("does-not-exist");
    expect_fail(nodir, GTR_ERR_NOT_FOUND, "does-not-exist", NULL);
    free(nodir);

    char *dir = copy_tiny("no-modules", false);
    drop(dir, "modules.json");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "modules.json", "missing file");
    free(dir);

    dir = copy_tiny("no-spm", false);
    drop(dir, "spiece.model");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "spiece.model", NULL);
    free(dir);

    dir = copy_tiny("no-weights", false);
    drop(dir, "model.safetensors");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "no-weights", "model.safetensors");
    free(dir);

    dir = copy_tiny("no-dense-weights", false);
    drop(dir, "2_Dense/model.safetensors");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "2_Dense", "missing weights");
    free(dir);

    dir = copy_tiny("no-pooling", false);
    drop(dir, "1_Pooling/config.json");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "1_Pooling/config.json", NULL);
    free(dir);
}

static void test_bad_configs(void **state)
{
    (void)state;
    static const struct {
        const char *name, *file, *content;
        gtr_status code;
        const char *n1, *n2;
    } cases[] = {
        {"modules-json", "modules.json", "[{\"path\": \"\", ", GTR_ERR_FORMAT, "modules.json", "invalid JSON"},
        {"modules-type", "modules.json",
         "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
         "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
         "{\"path\":\"x\",\"type\":\"sentence_transformers.models.LayerNorm\"}]",
         GTR_ERR_UNSUPPORTED, "modules.json", "LayerNorm"},
        {"modules-path", "modules.json",
         "[{\"path\":\"../elsewhere\",\"type\":\"sentence_transformers.models.Transformer\"}]",
         GTR_ERR_FORMAT, "modules.json", "relative"},
        {"modules-order", "modules.json",
         "[{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
         "{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"}]",
         GTR_ERR_UNSUPPORTED, "modules.json", "Transformer"},
        {"modules-nopool", "modules.json",
         "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"}]",
         GTR_ERR_UNSUPPORTED, "modules.json", "Pooling"},
        {"config-json", "config.json", "{\"d_model\": 64,,}", GTR_ERR_FORMAT, "config.json", "invalid JSON"},
        {"config-missing", "config.json",
         "{\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":32128}",
         GTR_ERR_FORMAT, "config.json", "d_model"},
        {"config-type", "config.json",
         "{\"d_model\":\"64\",\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":32128}",
         GTR_ERR_FORMAT, "config.json", "d_model"},
        {"config-ff", "config.json",
         "{\"d_model\":64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":32128,"
         "\"feed_forward_proj\":\"gelu\"}",
         GTR_ERR_UNSUPPORTED, "config.json", "gelu"},
        {"config-arch", "config.json",
         "{\"model_type\":\"bert\",\"d_model\":64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,"
         "\"num_layers\":2,\"vocab_size\":32128}",
         GTR_ERR_UNSUPPORTED, "config.json", "bert"},
        {"config-range", "config.json",
         "{\"d_model\":-64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":32128}",
         GTR_ERR_FORMAT, "config.json", "d_model"},
        {"config-dff", "config.json",
         "{\"d_model\":64,\"d_ff\":100,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":32128}",
         GTR_ERR_MISMATCH, "model.safetensors", "encoder.block.0.layer.1.DenseReluDense.wi.weight"},
        {"config-layers", "config.json",
         "{\"d_model\":64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":3,\"vocab_size\":32128}",
         GTR_ERR_NOT_FOUND, "model.safetensors", "encoder.block.2.layer.0.layer_norm.weight"},
        {"config-fewer-layers", "config.json",
         "{\"d_model\":64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":1,\"vocab_size\":32128}",
         GTR_ERR_FORMAT, "unexpected tensor", "encoder.block.1."},
        {"config-vocab", "config.json",
         "{\"d_model\":64,\"d_ff\":128,\"d_kv\":16,\"num_heads\":4,\"num_layers\":2,\"vocab_size\":1000}",
         GTR_ERR_MISMATCH, "spiece.model", "vocab_size"},
        {"pool-cls", "1_Pooling/config.json",
         "{\"word_embedding_dimension\":64,\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":false}",
         GTR_ERR_UNSUPPORTED, "1_Pooling/config.json", "pooling_mode_cls_token"},
        {"pool-off", "1_Pooling/config.json",
         "{\"word_embedding_dimension\":64,\"pooling_mode_mean_tokens\":false}",
         GTR_ERR_UNSUPPORTED, "1_Pooling/config.json", "mean"},
        {"pool-max", "1_Pooling/config.json",
         "{\"word_embedding_dimension\":64,\"pooling_mode_mean_tokens\":true,\"pooling_mode_max_tokens\":true}",
         GTR_ERR_UNSUPPORTED, "1_Pooling/config.json", "pooling_mode_max_tokens"},
        {"pool-dim", "1_Pooling/config.json",
         "{\"word_embedding_dimension\":32,\"pooling_mode_mean_tokens\":true}",
         GTR_ERR_MISMATCH, "1_Pooling/config.json", "word_embedding_dimension"},
        {"dense-act", "2_Dense/config.json",
         "{\"in_features\":64,\"out_features\":64,\"bias\":false,"
         "\"activation_function\":\"torch.nn.modules.activation.ReLU\"}",
         GTR_ERR_UNSUPPORTED, "2_Dense/config.json", "ReLU"},
        {"dense-in", "2_Dense/config.json",
         "{\"in_features\":32,\"out_features\":64,\"bias\":false,"
         "\"activation_function\":\"torch.nn.modules.linear.Identity\"}",
         GTR_ERR_MISMATCH, "2_Dense/config.json", "in_features"},
        {"dense-out", "2_Dense/config.json",
         "{\"in_features\":64,\"out_features\":48,\"bias\":false,"
         "\"activation_function\":\"torch.nn.modules.linear.Identity\"}",
         GTR_ERR_MISMATCH, "2_Dense/model.safetensors", "linear.weight"},
        {"dense-bias", "2_Dense/config.json",
         "{\"in_features\":64,\"out_features\":64,\"bias\":true,"
         "\"activation_function\":\"torch.nn.modules.linear.Identity\"}",
         GTR_ERR_NOT_FOUND, "2_Dense/model.safetensors", "linear.bias"},
        {"sbert-lower", "sentence_bert_config.json", "{\"max_seq_length\":512,\"do_lower_case\":true}",
         GTR_ERR_UNSUPPORTED, "sentence_bert_config.json", "do_lower_case"},
        {"sbert-len", "sentence_bert_config.json", "{\"max_seq_length\":0}", GTR_ERR_FORMAT,
         "sentence_bert_config.json", "max_seq_length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = copy_tiny(cases[i].name, false);
        put(dir, cases[i].file, cases[i].content);
        expect_fail(dir, cases[i].code, cases[i].n1, cases[i].n2);
        free(dir);
    }
}

static void test_bad_safetensors(void **state)
{
    (void)state;
    char *d;
    size_t len;
    read_shared("models/gtr-tiny/model.safetensors", &d, &len);

    char *dir = copy_tiny("st-truncated", false);
    char *p = gtr_path_join(dir, "model.safetensors");
    unlink(p);
    tu_write(p, d, len / 2);
    expect_fail(dir, GTR_ERR_FORMAT, "model.safetensors", "beyond the end of the file");
    free(p);
    free(dir);

    dir = copy_tiny("st-header-len", false);
    p = gtr_path_join(dir, "model.safetensors");
    unlink(p);
    char *bad = malloc(len);
    memcpy(bad, d, len);
    memcpy(bad, "\xff\xff\xff\xff\x00\x00\x00\x00", 8);
    tu_write(p, bad, len);
    expect_fail(dir, GTR_ERR_FORMAT, "model.safetensors", "header length");
    free(p);
    free(dir);

    dir = copy_tiny("st-tiny-file", false);
    p = gtr_path_join(dir, "model.safetensors");
    unlink(p);
    tu_write(p, d, 5);
    expect_fail(dir, GTR_ERR_FORMAT, "model.safetensors", "too short");
    free(p);
    free(dir);
    free(bad);
    free(d);

    static const struct {
        const char *name, *from, *to;
        gtr_status code;
        const char *n1, *n2;
    } cases[] = {
        {"st-json", "{", "[", GTR_ERR_FORMAT, "model.safetensors", "JSON"},
        {"st-overlap", "\"data_offsets\":[8488448,8488704]", "\"data_offsets\":[16000,16256]",
         GTR_ERR_FORMAT, "overlap", "encoder.final_layer_norm.weight"},
        {"st-beyond", "\"data_offsets\":[8488448,8488704]", "\"data_offsets\":[98488448,98488704]",
         GTR_ERR_FORMAT, "beyond the end", "encoder.final_layer_norm.weight"},
        {"st-span", "\"data_offsets\":[8488448,8488704]", "\"data_offsets\":[8488448,8488700]",
         GTR_ERR_FORMAT, "encoder.final_layer_norm.weight", "span"},
        {"st-dtype", "\"encoder.final_layer_norm.weight\":{\"dtype\":\"F32\"",
         "\"encoder.final_layer_norm.weight\":{\"dtype\":\"I32\"", GTR_ERR_FORMAT,
         "encoder.final_layer_norm.weight", "I32"},
        {"st-dtype-unknown", "\"encoder.final_layer_norm.weight\":{\"dtype\":\"F32\"",
         "\"encoder.final_layer_norm.weight\":{\"dtype\":\"F8_E4M3\"", GTR_ERR_UNSUPPORTED,
         "encoder.final_layer_norm.weight", "F8_E4M3"},
        {"st-missing", "encoder.final_layer_norm.weight", "encoder.final_layer_norm.weighx",
         GTR_ERR_NOT_FOUND, "model.safetensors", "missing tensor 'encoder.final_layer_norm.weight'"},
        {"st-extra", "encoder.embed_tokens.weight", "encoder.embed_tokenz.weight", GTR_ERR_FORMAT,
         "model.safetensors", "unexpected tensor 'encoder.embed_tokenz.weight'"},
        {"st-shape", "\"encoder.block.0.layer.0.SelfAttention.q.weight\":{\"dtype\":\"F32\",\"shape\":[64,64]",
         "\"encoder.block.0.layer.0.SelfAttention.q.weight\":{\"dtype\":\"F32\",\"shape\":[32,128]",
         GTR_ERR_MISMATCH, "encoder.block.0.layer.0.SelfAttention.q.weight", "[32, 128]"},
        {"st-shape-neg", "\"shape\":[64,64]", "\"shape\":[-64,64]", GTR_ERR_FORMAT,
         "model.safetensors", "shape"},
        {"st-dup", "encoder.embed_tokens.weight", "shared.weight\":{},\"x", GTR_ERR_FORMAT,
         "model.safetensors", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dir = copy_tiny(cases[i].name, false);
        edit_header(dir, "model.safetensors", cases[i].from, cases[i].to);
        expect_fail(dir, cases[i].code, cases[i].n1, cases[i].n2);
        free(dir);
    }
    /* the Dense file is checked the same way */
    dir = copy_tiny("st-dense-name", false);
    edit_header(dir, "2_Dense/model.safetensors", "linear.weight", "linear.weighs");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "2_Dense/model.safetensors", "linear.weight");
    free(dir);
}

/* Only the embedding as encoder.embed_tokens.weight (like gtr-tiny-wide) loads; only
 * shared.weight too. */
static void test_tied_embedding_names(void **state)
{
    (void)state;
    char *dir = copy_tiny("st-only-embed-tokens", false);
    edit_header(dir, "model.safetensors", "\"shared.weight\"", "\"decoder.shared\"");
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, NULL, &e);
    if (!m) fail_msg("%s", e.message);
    gtr_model_free(m);
    free(dir);
    dir = copy_tiny("st-neither-embedding", false);
    edit_header(dir, "model.safetensors", "\"shared.weight\"", "\"decoder.shared\"");
    char *d;
    size_t len;
    /* both renamed: edit the edited file again */
    char *p = gtr_path_join(dir, "model.safetensors");
    TU_OK(gtr_read_file(p, 0, &d, &len, &e), &e);
    char *at = memmem(d, len, "encoder.embed_tokens.weight", 27);
    assert_non_null(at);
    memcpy(at, "decoder.embed_tokens.weigh", 26);
    unlink(p);
    tu_write(p, d, len);
    expect_fail(dir, GTR_ERR_NOT_FOUND, "shared.weight", "model.safetensors");
    free(d);
    free(p);
    free(dir);
}

static void test_bad_torch_bin(void **state)
{
    (void)state;
    char *d;
    size_t len;
    read_shared("models/gtr-tiny/pytorch_model.bin", &d, &len);
    /* a .bin-only copy loads */
    char *dir = copy_tiny("bin-ok", true);
    drop(dir, "model.safetensors");
    drop(dir, "2_Dense/model.safetensors");
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, NULL, &e);
    if (!m) fail_msg("%s", e.message);
    gtr_model_free(m);
    /* truncated: the end of central directory is gone */
    char *p = gtr_path_join(dir, "pytorch_model.bin");
    unlink(p);
    tu_write(p, d, len - 100);
    expect_fail(dir, GTR_ERR_FORMAT, "pytorch_model.bin", "zip");
    /* not a zip at all */
    unlink(p);
    tu_write(p, "hello, world", 12);
    expect_fail(dir, GTR_ERR_FORMAT, "pytorch_model.bin", NULL);
    /* legacy (pre-1.6) pickle format */
    unlink(p);
    static const char legacy[] = "\x80\x02\x8a\x0alZ\xfc\x9c" "F\xf9 j\xa8P\x19.";
    tu_write(p, legacy, sizeof legacy - 1);
    expect_fail(dir, GTR_ERR_UNSUPPORTED, "pytorch_model.bin", "legacy");
    /* a storage the pickle refers to is not in the archive */
    unlink(p);
    char *bad = malloc(len);
    memcpy(bad, d, len);
    gtr_zip_entry *ents;
    size_t n;
    TU_OK(gtr_zip_index((const uint8_t *)d, len, "x", &ents, &n, &e), &e);
    assert_int_equal(n, 21);
    /* rename storage data/0 (the embedding) so the pickle's reference dangles */
    for (size_t i = 0; i < n; i++)
        if (ents[i].name_len == 20 && !memcmp(ents[i].name, "pytorch_model/data/0", 20)) {
            /* the name in the central directory (and the local header: rename both) */
            size_t off = (size_t)(ents[i].name - d);
            bad[off + 19] = 'x';
        }
    free(ents);
    tu_write(p, bad, len);
    expect_fail(dir, GTR_ERR_FORMAT, "pytorch_model.bin", "storage '0'");
    free(bad);
    free(p);
    free(dir);
    free(d);
}


/* Sharded checkpoints: model.safetensors.index.json naming the shard files. */
static void test_sharded(void **state)
{
    (void)state;
    char *dir = copy_tiny("sharded", false);
    char *src = tu_shared("models/gtr-tiny/model.safetensors");
    char *abs = realpath(src, NULL);
    assert_non_null(abs);
    drop(dir, "model.safetensors");
    assert_int_equal(tu_system("ln -s '%s' '%s/model-00001-of-00001.safetensors'", abs, dir), 0);
    put(dir, "model.safetensors.index.json",
        "{\"metadata\":{},\"weight_map\":{\"shared.weight\":\"model-00001-of-00001.safetensors\","
        "\"encoder.final_layer_norm.weight\":\"model-00001-of-00001.safetensors\"}}");
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, NULL, &e);
    if (!m) fail_msg("%s", e.message);
    assert_non_null(strstr(gtr_model_describe(m), "model-00001-of-00001.safetensors"));
    gtr_model_free(m);
    put(dir, "model.safetensors.index.json",
        "{\"weight_map\":{\"shared.weight\":\"model-00001-of-00002.safetensors\"}}");
    expect_fail(dir, GTR_ERR_NOT_FOUND, "model-00001-of-00002.safetensors", "index.json");
    put(dir, "model.safetensors.index.json", "{\"weight_map\":{\"shared.weight\":\"../x\"}}");
    expect_fail(dir, GTR_ERR_FORMAT, "index.json", "shard");
    free(abs);
    free(src);
    free(dir);
}

/* ---- the readers on crafted bytes --------------------------------------------- */

static const uint8_t *fake_lookup(void *user, const char *key, size_t *size)
{
    const float *data = user;
    if (strcmp(key, "0") != 0) return NULL;
    *size = 6 * sizeof(float);
    return (const uint8_t *)data;
}

/* A state dict as torch.save writes it: OrderedDict, two tensors over one storage (the second
 * a transposed view), _metadata through BUILD. */
static size_t good_pickle(uint8_t *out, int rows_a)
{
    gtr_buf b = {0};
    gtr_error e;
#define W(s) gtr_buf_append(&b, s, sizeof(s) - 1, &e)
    W("\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01(");
    /* "a": storage ('storage', FloatStorage, '0', 'cpu', 6), offset 0, size (rows_a, 3), stride (3, 1) */
    W("X\x01\x00\x00\x00" "a" "ctorch._utils\n_rebuild_tensor_v2\nq\x02(("
      "X\x07\x00\x00\x00" "storage" "ctorch\nFloatStorage\nq\x03" "X\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpu" "K\x06tQK\x00K");
    uint8_t r = (uint8_t)rows_a;
    gtr_buf_append(&b, &r, 1, &e);
    W("K\x03\x86K\x03K\x01\x86\x89h\x00)Rtq\x04R");
    /* "b": the transpose, size (3, 2), stride (1, 3), shared storage, via BINGET of the global */
    W("X\x01\x00\x00\x00" "b" "h\x02((X\x07\x00\x00\x00" "storage" "h\x03" "X\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpu" "K\x06tQK\x00K\x03K\x02\x86K\x01K\x03\x86\x89}tR");
    W("u}X\x09\x00\x00\x00" "_metadata" "}sb.");
#undef W
    memcpy(out, b.data, b.len);
    size_t n = b.len;
    gtr_buf_free(&b);
    return n;
}

static void test_pickle_reader(void **state)
{
    (void)state;
    float storage[6] = {1, 2, 3, 4, 5, 6};
    uint8_t pk[1024];
    size_t n = good_pickle(pk, 2);
    gtr_tensor_set set = {0};
    gtr_error e;
    TU_OK(gtr_torch_pickle_parse(pk, n, "t.bin", fake_lookup, storage, 0, &set, &e), &e);
    assert_int_equal(set.n, 2);
    gtr_tensor *a = gtr_tensor_find(&set, "a"), *b = gtr_tensor_find(&set, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(b->stride[0], 1);
    assert_int_equal(b->stride[1], 3);
    float fa[6], fb[6];
    TU_OK(gtr_tensor_to_f32(&set, a, fa, NULL, &e), &e);
    TU_OK(gtr_tensor_to_f32(&set, b, fb, NULL, &e), &e);
    static const float want_b[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(fa, storage, sizeof fa);
    assert_memory_equal(fb, want_b, sizeof fb);
    gtr_tensor_set_free(&set);

    /* every truncation fails cleanly */
    for (size_t k = 0; k < n; k++) {
        gtr_tensor_set s2 = {0};
        assert_int_not_equal(gtr_torch_pickle_parse(pk, k, "t.bin", fake_lookup, storage, 0, &s2, &e),
                             GTR_OK);
        gtr_tensor_set_free(&s2);
    }
    /* a view reaching beyond its storage (3 x 3 over 6 elements) */
    n = good_pickle(pk, 3);
    assert_int_equal(gtr_torch_pickle_parse(pk, n, "t.bin", fake_lookup, storage, 0, &set, &e),
                     GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "outside its storage"));
    gtr_tensor_set_free(&set);
    /* a missing storage */
    n = good_pickle(pk, 2);
    assert_int_equal(gtr_torch_pickle_parse(pk, n, "t.bin", fake_lookup, NULL, 0, &set, &e),
                     GTR_ERR_FORMAT);
    gtr_tensor_set_free(&set);
}

static void test_pickle_refuses_code(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *needle;
    } cases[] = {
#define C(s, needle) {s, sizeof(s) - 1, needle}
        C("\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.", "os.system"),
        C("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93.", "builtins.eval"),
        C("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n)R.", "_rebuild_tensor_v2"),
        C("\x80\x02(S'x'\ni__main__\nX\n.", "opcode"),
        C("\x80\x02}q\x00.", NULL), /* an empty dict is a (useless) state dict */
        C("\x80\x02]q\x00.", "state dict"),
        C("\x80\x02}X\x01\x00\x00\x00" "aK\x01s.", "not a tensor"),
        C("\x80\x02h\x05.", "memo"),
        C("\x80\x02}r\xff\xff\xff\xff.", "memo"),
        C("\x80\x02t.", "MARK"),
        C("\x80\x02" "0.", "underflow"),
        C("\x80\x02X\xff\xff\xff\x7f" "ab.", "past the end"),
        C("\x80\x02}", "truncated"),
        C("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.", "64 bits"),
        C("\x80\x02" "ctorch\nFloatStorage\n)R.", "storage type"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gtr_tensor_set set = {0};
        gtr_error e;
        gtr_status st = gtr_torch_pickle_parse((const uint8_t *)cases[i].bytes, cases[i].len, "p.bin",
                                               fake_lookup, NULL, 0, &set, &e);
        if (!cases[i].needle) {
            TU_OK(st, &e);
            assert_int_equal(set.n, 0);
        } else {
            if (st == GTR_OK) fail_msg("case %zu parsed", i);
            if (!strstr(e.message, cases[i].needle)) fail_msg("case %zu: %s", i, e.message);
            assert_non_null(strstr(e.message, "p.bin"));
        }
        gtr_tensor_set_free(&set);
    }
}

static void test_safetensors_reader(void **state)
{
    (void)state;
    /* a minimal valid file: two F16 tensors and an empty one */
    const char *hdr = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    uint8_t buf[512];
    size_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    static const uint8_t data[8] = {0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x40, 0x40}; /* 1, -2 | 1, 3 */
    memcpy(buf + 8 + hl, data, 8);
    size_t len = 8 + hl + 8;
    gtr_tensor_set set = {0};
    gtr_error e;
    TU_OK(gtr_safetensors_parse(buf, len, "s.st", 0, &set, &e), &e);
    assert_int_equal(set.n, 3);
    float f[2];
    TU_OK(gtr_tensor_to_f32(&set, gtr_tensor_find(&set, "a"), f, NULL, &e), &e);
    assert_true(f[0] == 1.0f && f[1] == -2.0f);
    TU_OK(gtr_tensor_to_f32(&set, gtr_tensor_find(&set, "b"), f, NULL, &e), &e);
    assert_true(f[0] == 1.0f && f[1] == 3.0f);
    size_t shape[1] = {2};
    gtr_tensor *t;
    TU_OK(gtr_tensor_get(&set, "a", 1, shape, &t, &e), &e);
    shape[0] = 3;
    assert_int_equal(gtr_tensor_get(&set, "a", 1, shape, &t, &e), GTR_ERR_MISMATCH);
    assert_non_null(strstr(e.message, "'a'"));
    gtr_tensor_set_free(&set);
    /* every truncation fails cleanly */
    for (size_t k = 0; k < len; k++) {
        gtr_tensor_set s2 = {0};
        assert_int_not_equal(gtr_safetensors_parse(buf, k, "s.st", 0, &s2, &e), GTR_OK);
        gtr_tensor_set_free(&s2);
    }
}

static void test_zip_reader(void **state)
{
    (void)state;
    char *d;
    size_t len;
    read_shared("models/gtr-tiny-v11/2_Dense/pytorch_model.bin", &d, &len);
    gtr_zip_entry *ents;
    size_t n;
    gtr_error e;
    TU_OK(gtr_zip_index((const uint8_t *)d, len, "dense.bin", &ents, &n, &e), &e);
    assert_true(n >= 2);
    bool pkl = false;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ents[i].method, 0);
        assert_true(ents[i].data_off + ents[i].size <= len);
        if (ents[i].name_len > 9 && !memcmp(ents[i].name + ents[i].name_len - 9, "/data.pkl", 9)) {
            pkl = true;
            /* the bytes are what the CRC says */
            assert_int_equal(gtr_crc32(0, d + ents[i].data_off, (size_t)ents[i].size), ents[i].crc);
        }
    }
    assert_true(pkl);
    free(ents);
    /* every truncation of the tail (where the directory lives) fails cleanly */
    for (size_t k = len > 4096 ? len - 4096 : 0; k < len; k++) {
        gtr_tensor_set set = {0};
        gtr_status st = gtr_torch_zip_parse((const uint8_t *)d, k, "dense.bin", 0, &set, &e);
        assert_int_not_equal(st, GTR_OK);
        gtr_tensor_set_free(&set);
    }
    free(d);
}

/* The memory check: the estimate covers what the load allocates for each dtype, and a limit
 * below it refuses before converting anything, naming needed, available and what fits. */
static void test_memory_check(void **state)
{
    (void)state;
    char *dir = copy_tiny("mem", true);
    static const gtr_compute_dtype dts[] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    gtr_tensor_set set = {0};
    gtr_error e;
    assert_int_equal(gtr_tensor_set_open_dir(&set, dir, &e), GTR_OK);
    gtr_model_config cfg;
    TU_OK(gtr_model_config_read(dir, &cfg, &e), &e);
    /* the loads below: one thread, the model's max length, any batch */
    gtr_mem_plan plan = {&cfg, gtr_kernels_select(), 1, cfg.max_seq_length, 0, 1};
    size_t est[3];
    for (int i = 0; i < 3; i++) {
        est[i] = gtr_mem_estimate(&set, &plan, dts[i]);
        gtr_model_options o = gtr_model_default_options();
        o.dtype = dts[i];
        o.n_threads = 1;
        gtr_model *m = gtr_model_load(dir, &o, &e);
        if (!m) fail_msg("%s", e.message);
        /* honest: at least the weights the load really holds */
        assert_true(est[i] >= gtr_model_weight_bytes(m));
        gtr_model_free(m);
    }
    assert_true(est[0] > est[1] && est[1] > est[2]);
    /* the batch: more texts per call never need less; any batch (0) needs the most */
    size_t prev = 0;
    for (size_t b = 1; b <= 64; b *= 2) {
        gtr_mem_parts p;
        gtr_mem_estimate_parts(&set, &plan, GTR_DTYPE_F32, b, &p);
        assert_true(p.total >= prev);
        assert_true(p.total <= est[0]);
        assert_true(p.tokens <= b * (size_t)cfg.max_seq_length);
        prev = p.total;
    }
    gtr_model_config_free(&cfg);
    gtr_tensor_set_free(&set);
    /* between the int8 and f32 needs: f32 refused, suggesting the dtypes that fit */
    gtr_model_options o = gtr_model_default_options();
    o.max_memory = est[2] + 1;
    o.n_threads = 1;
    assert_null(gtr_model_load(dir, &o, &e));
    assert_int_equal(e.code, GTR_ERR_NOMEM);
    assert_non_null(strstr(e.message, "loading as f32 needs about")); /* no batch given */
    assert_non_null(strstr(e.message, "--dtype int8 needs"));
    assert_null(strstr(e.message, "--dtype bf16 needs")); /* does not fit */
    o.dtype = GTR_DTYPE_INT8;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (!m) fail_msg("%s", e.message);
    gtr_model_free(m);
    /* nothing fits */
    o.max_memory = 1000;
    assert_null(gtr_model_load(dir, &o, &e));
    assert_non_null(strstr(e.message, "even --dtype int8 needs"));
    free(dir);
}

/* Split dir's model.safetensors into k shards (tensor i into shard i % k), as transformers
 * names them, with an index mapping every tensor to its shard; the single file goes. */
static void shard_safetensors(const char *dir, int k)
{
    char *single = gtr_path_join(dir, "model.safetensors");
    gtr_tensor_set set = {0};
    gtr_error e;
    gtr_mmap map;
    TU_OK(gtr_mmap_open(single, &map, &e), &e);
    TU_OK(gtr_safetensors_parse(map.data, map.size, single, 0, &set, &e), &e);
    json_t *wm = json_object();
    for (int sh = 0; sh < k; sh++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", sh + 1, k);
        json_t *h = json_object();
        uint64_t off = 0;
        for (size_t i = (size_t)sh; i < set.n; i += (size_t)k) {
            const gtr_tensor *t = &set.t[i];
            assert_int_equal(t->dtype, GTR_DT_F32);
            gtr_safetensors_header_add(h, t->name, "F32", t->shape[0], t->ndim > 1 ? t->shape[1] : 0, off, t->span);
            json_object_set_new(wm, t->name, json_string(name));
            off += t->span;
        }
        size_t hl;
        uint8_t *hb = gtr_safetensors_header_bytes(h, &hl, &e);
        assert_non_null(hb);
        char *p = gtr_path_join(dir, name);
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        fwrite(hb, 1, hl, f);
        for (size_t i = (size_t)sh; i < set.n; i += (size_t)k) fwrite(set.t[i].data, 1, set.t[i].span, f);
        fclose(f);
        free(p);
        free(hb);
        json_decref(h);
    }
    json_t *idx = json_pack("{s:{}, s:o}", "metadata", "weight_map", wm);
    char *p = gtr_path_join(dir, "model.safetensors.index.json");
    assert_int_equal(json_dump_file(idx, p, JSON_INDENT(1)), 0);
    json_decref(idx);
    free(p);
    gtr_tensor_set_free(&set);
    gtr_mmap_close(&map);
    drop(dir, "model.safetensors");
    free(single);
}

static void embed_one(const char *dir, float *out, size_t dim)
{
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 1;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (!m) fail_msg("%s", e.message);
    assert_int_equal((size_t)gtr_model_dim(m), dim);
    const char *txt = "sharded checkpoints load like one file";
    TU_OK(gtr_model_encode(m, &txt, NULL, 1, out, &e), &e);
    gtr_model_free(m);
}

/* Three real shards: the same vectors as the single file; an index that lies is refused. */
static void test_sharded_many(void **state)
{
    (void)state;
    char *one = copy_tiny("one", false), *dir = copy_tiny("three", false);
    /* the copy links model.safetensors: replace it by a real file to split */
    char *src = tu_shared("models/gtr-tiny/model.safetensors");
    drop(dir, "model.safetensors");
    assert_int_equal(tu_system("cp '%s' '%s/model.safetensors'", src, dir), 0);
    shard_safetensors(dir, 3);
    float a[1024], b[1024];
    gtr_error e;
    gtr_model *m = gtr_model_load(one, NULL, &e);
    if (!m) fail_msg("%s", e.message);
    size_t dim = (size_t)gtr_model_dim(m);
    gtr_model_free(m);
    assert_true(dim <= 1024);
    embed_one(one, a, dim);
    embed_one(dir, b, dim);
    assert_memory_equal(a, b, dim * sizeof(float));
    /* lies: a tensor in the wrong shard, a tensor no shard has */
    char *ip = gtr_path_join(dir, "model.safetensors.index.json");
    json_t *idx = json_load_file(ip, 0, NULL);
    assert_non_null(idx);
    json_t *wm = json_object_get(idx, "weight_map");
    char *was = strdup(json_string_value(json_object_get(wm, "shared.weight")));
    const char *other = strcmp(was, "model-00003-of-00003.safetensors") ? "model-00003-of-00003.safetensors"
                                                                         : "model-00001-of-00003.safetensors";
    json_object_set_new(wm, "shared.weight", json_string(other));
    assert_int_equal(json_dump_file(idx, ip, 0), 0);
    expect_fail(dir, GTR_ERR_FORMAT, "'shared.weight' is listed in", "is stored in");
    json_object_set_new(wm, "shared.weight", json_string(was));
    free(was);
    json_object_set_new(wm, "encoder.block.9.layer.0.SelfAttention.q.weight",
                        json_string("model-00002-of-00003.safetensors"));
    assert_int_equal(json_dump_file(idx, ip, 0), 0);
    expect_fail(dir, GTR_ERR_FORMAT, "encoder.block.9", "no shard holds it");
    json_decref(idx);
    free(ip);
    free(src);
    free(one);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_loads),
        cmocka_unit_test(test_nonfinite_weights),
        cmocka_unit_test(test_nonfinite_f16_no_fingerprint),
        cmocka_unit_test(test_overflow_is_an_error),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_bad_safetensors),
        cmocka_unit_test(test_tied_embedding_names),
        cmocka_unit_test(test_bad_torch_bin),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_pickle_reader),
        cmocka_unit_test(test_pickle_refuses_code),
        cmocka_unit_test(test_safetensors_reader),
        cmocka_unit_test(test_zip_reader),
        cmocka_unit_test(test_memory_check),
        cmocka_unit_test(test_sharded_many),
    };
    return cmocka_run_group_tests_name("model_errors", tests, NULL, NULL);
}
