/* config.c — the JSON files of a sentence-transformers model directory: modules.json (which
 * modules run, in which sub-directories), config.json (the T5 shape), sentence_bert_config.json
 * (max_seq_length), 1_Pooling/config.json (mean pooling only) and 2_Dense/config.json.
 * Everything we do not implement is refused with a message naming the file and field, so a
 * model never silently computes something other than what sentence-transformers computes. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

void gtr_model_config_free(gtr_model_config *c)
{
    if (!c) return;
    free(c->transformer_dir);
    free(c->pooling_dir);
    free(c->dense_dir);
    memset(c, 0, sizeof *c);
}

/* An integer field within [lo, hi]. */
static gtr_status get_int_range(const json_t *j, const char *key, bool required, long long def,
                                long long lo, long long hi, int *out, const char *what,
                                gtr_error *err)
{
    long long v;
    gtr_status st = gtr_json_get_int(j, key, required, def, &v, what, err);
    if (st) return st;
    if (v < lo || v > hi)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: field '%s' = %lld is out of range [%lld, %lld]",
                          what, key, v, lo, hi);
    *out = (int)v;
    return GTR_OK;
}

gtr_status gtr_config_parse_t5(const json_t *j, const char *what, gtr_t5_config *c, gtr_error *err)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(j)) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected a JSON object", what);
    const char *type;
    gtr_status st = gtr_json_get_str(j, "model_type", false, "t5", &type, what, err);
    if (st) return st;
    if (strcmp(type, "t5") != 0 && strcmp(type, "mt5") != 0)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: model_type '%s' is not supported (only T5 encoders: t5, mt5)", what,
                          type);
    snprintf(c->model_type, sizeof c->model_type, "%s", type);
    /* Limits keep every product of two dimensions far from overflow and refuse nonsense early;
     * the largest released T5 (XXL: d_model 4096, d_ff 10240, 64 heads x 64) is well inside. */
    if ((st = get_int_range(j, "d_model", true, 0, 1, 1 << 16, &c->d_model, what, err)) ||
        (st = get_int_range(j, "d_ff", true, 0, 1, 1 << 20, &c->d_ff, what, err)) ||
        (st = get_int_range(j, "d_kv", true, 0, 1, 1 << 12, &c->d_kv, what, err)) ||
        (st = get_int_range(j, "num_heads", true, 0, 1, 1 << 10, &c->num_heads, what, err)) ||
        (st = get_int_range(j, "num_layers", true, 0, 1, 1 << 10, &c->num_layers, what, err)) ||
        (st = get_int_range(j, "vocab_size", true, 0, 2, 1 << 22, &c->vocab_size, what, err)) ||
        (st = get_int_range(j, "relative_attention_num_buckets", false, 32, 4, 1 << 12,
                            &c->num_buckets, what, err)) ||
        (st = get_int_range(j, "relative_attention_max_distance", false, 128, 1, 1 << 24,
                            &c->max_distance, what, err)))
        return st;
    if ((long long)c->num_heads * c->d_kv > (1 << 16))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: num_heads x d_kv = %lld is too large", what,
                          (long long)c->num_heads * c->d_kv);
    /* Bidirectional buckets: half per direction, half of those exact; the log-spaced rest
     * needs max_distance beyond the exact range. */
    if (c->max_distance <= c->num_buckets / 4)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: relative_attention_max_distance %d must exceed num_buckets/4 = %d",
                          what, c->max_distance, c->num_buckets / 4);
    double eps;
    if ((st = gtr_json_get_real(j, "layer_norm_epsilon", false, 1e-6, &eps, what, err))) return st;
    if (!(eps >= 0 && eps < 1))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: layer_norm_epsilon %g is out of range [0, 1)",
                          what, eps);
    c->eps = (float)eps;
    const char *ff;
    if ((st = gtr_json_get_str(j, "feed_forward_proj", false, "relu", &ff, what, err))) return st;
    if (strcmp(ff, "relu") == 0) c->ff = GTR_FF_RELU;
    else if (strcmp(ff, "gated-gelu") == 0) c->ff = GTR_FF_GATED_GELU;
    else
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: feed_forward_proj '%s' is not supported (relu or gated-gelu)", what, ff);
    return GTR_OK;
}

/* A module path from modules.json is joined to the model directory: only plain relative
 * paths, so a downloaded directory cannot point us elsewhere. */
static bool safe_rel_path(const char *p)
{
    if (p[0] == '/') return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return false;
        if (!e) break;
        s = e + 1;
    }
    return true;
}

static bool type_is(const char *type, const char *cls)
{
    /* "sentence_transformers.models.Pooling", also the short class name alone */
    size_t a = strlen(type), b = strlen(cls);
    return (a == b && !strcmp(type, cls)) ||
           (a > b && type[a - b - 1] == '.' && !strcmp(type + a - b, cls));
}

gtr_status gtr_config_parse_modules(const json_t *j, const char *what, char **transformer,
                                    char **pooling, char **dense, bool *normalize, gtr_error *err)
{
    *transformer = *pooling = *dense = NULL;
    *normalize = false;
    if (!json_is_array(j))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected a JSON array of modules", what);
    /* Expected order: Transformer, Pooling, [Dense], [Normalize]. stage = how far we are. */
    int stage = 0;
    gtr_status st = GTR_OK;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *m = json_array_get(j, i);
        char mwhat[512];
        snprintf(mwhat, sizeof mwhat, "%s: module %zu", what, i);
        const char *type, *path;
        if ((st = gtr_json_get_str(m, "type", true, NULL, &type, mwhat, err)) ||
            (st = gtr_json_get_str(m, "path", true, NULL, &path, mwhat, err)))
            goto fail;
        if (!safe_rel_path(path)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: path '%s' must be relative to the model directory",
                            mwhat, path);
            goto fail;
        }
        int want;
        char **slot = NULL;
        if (type_is(type, "Transformer")) want = 1, slot = transformer;
        else if (type_is(type, "Pooling")) want = 2, slot = pooling;
        else if (type_is(type, "Dense")) want = 3, slot = dense;
        else if (type_is(type, "Normalize")) want = 4;
        else {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                            "%s: module type '%s' is not supported (Transformer, Pooling, Dense, "
                            "Normalize)", mwhat, type);
            goto fail;
        }
        if (want <= stage) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                            "%s: module '%s' out of the supported order Transformer, Pooling, "
                            "[Dense], [Normalize]", mwhat, type);
            goto fail;
        }
        if ((want >= 2 && !*transformer) || (want >= 3 && !*pooling)) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: '%s' needs a %s module before it", mwhat,
                            type, *transformer ? "Pooling" : "Transformer");
            goto fail;
        }
        stage = want;
        if (want == 4) *normalize = true;
        else if (!(*slot = strdup(path))) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    if (!*transformer || !*pooling) {
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: no %s module", what,
                        *transformer ? "Pooling" : "Transformer");
        goto fail;
    }
    return GTR_OK;
fail:
    free(*transformer);
    free(*pooling);
    free(*dense);
    *transformer = *pooling = *dense = NULL;
    return st;
}

gtr_status gtr_config_parse_pooling(const json_t *j, const char *what, int d_model, gtr_error *err)
{
    if (!json_is_object(j)) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected a JSON object", what);
    int dim;
    gtr_status st = get_int_range(j, "word_embedding_dimension", true, 0, 1, 1 << 20, &dim, what, err);
    if (st) return st;
    if (dim != d_model)
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "%s: word_embedding_dimension %d does not match the encoder's d_model %d",
                          what, dim, d_model);
    const char *mode;
    if ((st = gtr_json_get_str(j, "pooling_mode", false, "mean", &mode, what, err))) return st;
    if (strcmp(mode, "mean") != 0)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: pooling_mode '%s' is not supported (only mean pooling)", what, mode);
    static const char *const others[] = {"pooling_mode_cls_token", "pooling_mode_max_tokens",
                                         "pooling_mode_mean_sqrt_len_tokens",
                                         "pooling_mode_weightedmean_tokens",
                                         "pooling_mode_lasttoken"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        bool on;
        if ((st = gtr_json_get_bool(j, others[i], false, false, &on, what, err))) return st;
        if (on)
            return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                              "%s: %s is set; only mean pooling (pooling_mode_mean_tokens) is "
                              "supported", what, others[i]);
    }
    bool mean;
    if ((st = gtr_json_get_bool(j, "pooling_mode_mean_tokens", false, false, &mean, what, err)))
        return st;
    if (!mean)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: pooling_mode_mean_tokens is not true; only mean pooling is supported",
                          what);
    return GTR_OK;
}

gtr_status gtr_config_parse_dense(const json_t *j, const char *what, gtr_model_config *c,
                                  gtr_error *err)
{
    if (!json_is_object(j)) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected a JSON object", what);
    gtr_status st;
    if ((st = get_int_range(j, "in_features", true, 0, 1, 1 << 20, &c->dense_in, what, err)) ||
        (st = get_int_range(j, "out_features", true, 0, 1, 1 << 20, &c->dense_out, what, err)) ||
        (st = gtr_json_get_bool(j, "bias", false, true, &c->dense_bias, what, err)))
        return st;
    if (c->dense_in != c->t5.d_model)
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "%s: in_features %d does not match the pooled dimension %d", what,
                          c->dense_in, c->t5.d_model);
    /* sentence-transformers' Dense defaults to Tanh; GTR stores Identity. */
    const char *act;
    if ((st = gtr_json_get_str(j, "activation_function", false, "torch.nn.modules.activation.Tanh",
                               &act, what, err)))
        return st;
    if (type_is(act, "Identity")) c->dense_act = GTR_ACT_IDENTITY;
    else if (type_is(act, "Tanh")) c->dense_act = GTR_ACT_TANH;
    else
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: activation_function '%s' is not supported (Identity or Tanh)", what,
                          act);
    return GTR_OK;
}

gtr_status gtr_model_dir_max_len(const char *dir, int *max_len, gtr_error *err)
{
    char *path = gtr_path_join(dir, "sentence_bert_config.json");
    if (!path) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    long long v = 512;
    gtr_status st = GTR_OK;
    if (gtr_file_exists(path)) {
        json_t *j = gtr_json_load_file(path, err);
        if (!j) st = err ? err->code : GTR_ERR_FORMAT;
        else if (!(st = gtr_json_get_int(j, "max_seq_length", false, 512, &v, path, err)) && (v < 0 || v > 1000000000))
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: max_seq_length %lld is out of range", path, v);
        json_decref(j);
    }
    free(path);
    if (!st) *max_len = (int)v;
    return st;
}

gtr_status gtr_config_parse_sbert(const json_t *j, const char *what, int *max_seq_length,
                                  gtr_error *err)
{
    if (!json_is_object(j)) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: expected a JSON object", what);
    gtr_status st = get_int_range(j, "max_seq_length", false, 512, 1, 1 << 20, max_seq_length, what, err);
    if (st) return st;
    bool lower;
    if ((st = gtr_json_get_bool(j, "do_lower_case", false, false, &lower, what, err))) return st;
    if (lower)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: do_lower_case is not supported", what);
    return GTR_OK;
}

/* Load dir/name as JSON into *out; *path (malloc'd) names it in messages. An absent optional
 * file gives GTR_OK with *out NULL. */
static gtr_status load_json(const char *dir, const char *name, bool required, char **path,
                            json_t **out, gtr_error *err)
{
    *out = NULL;
    if (!(*path = gtr_path_join(dir, name))) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    if (!gtr_file_exists(*path)) {
        if (!required) return GTR_OK;
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: missing file", *path);
    }
    gtr_error e2;
    if (!(*out = gtr_json_load_file(*path, &e2))) {
        if (err) *err = e2;
        return e2.code;
    }
    return GTR_OK;
}

/* dir joined with a module path ("" is the directory itself, without a trailing slash). */
static char *module_dir(const char *dir, const char *rel)
{
    return *rel ? gtr_path_join(dir, rel) : strdup(dir);
}

gtr_status gtr_model_config_read(const char *dir, gtr_model_config *c, gtr_error *err)
{
    memset(c, 0, sizeof *c);
    if (!gtr_dir_exists(dir))
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: not a model directory", dir);
    char *path = NULL, *tr = NULL, *po = NULL, *de = NULL;
    json_t *j = NULL;
    gtr_status st;
    if ((st = load_json(dir, "modules.json", true, &path, &j, err))) goto done;
    st = gtr_config_parse_modules(j, path, &tr, &po, &de, &c->normalize, err);
    if (st) goto done;
    c->transformer_dir = module_dir(dir, tr);
    c->pooling_dir = module_dir(dir, po);
    c->dense_dir = de ? module_dir(dir, de) : NULL;
    c->has_dense = de != NULL;
    if (!c->transformer_dir || !c->pooling_dir || (de && !c->dense_dir)) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
#define NEXT(dir_, name_, required_)                                                    \
    do {                                                                                \
        json_decref(j);                                                                 \
        free(path);                                                                     \
        j = NULL;                                                                       \
        path = NULL;                                                                    \
        if ((st = load_json((dir_), (name_), (required_), &path, &j, err))) goto done;  \
    } while (0)

    NEXT(c->transformer_dir, "config.json", true);
    if ((st = gtr_config_parse_t5(j, path, &c->t5, err))) goto done;

    c->max_seq_length = 512; /* T5's model_max_length when sentence_bert_config.json is absent */
    NEXT(c->transformer_dir, "sentence_bert_config.json", false);
    if (j && (st = gtr_config_parse_sbert(j, path, &c->max_seq_length, err))) goto done;

    NEXT(c->pooling_dir, "config.json", true);
    if ((st = gtr_config_parse_pooling(j, path, c->t5.d_model, err))) goto done;

    if (c->has_dense) {
        NEXT(c->dense_dir, "config.json", true);
        if ((st = gtr_config_parse_dense(j, path, c, err))) goto done;
    }
#undef NEXT
done:
    json_decref(j);
    free(path);
    free(tr);
    free(po);
    free(de);
    if (st) gtr_model_config_free(c);
    return st;
}
