/* checkpoint.c — the training state in one file, replaced atomically (temp file, fsync,
 * rename), so an interruption at any moment leaves the previous checkpoint intact:
 *
 *   "GTRTRAIN"  u32 version (1)  u32 header bytes
 *   header      JSON: step, examples consumed, RNG state, optimizer step, sizes, and the
 *               identity of what the run was started from (initial model hash, data
 *               fingerprint, every option that changes the numbers)
 *   parameters  float32 [n_params] (the trainer's flat buffer, padding included)
 *   optimizer   AdamW: m, v float32 [n_params] each; Adafactor: float64 [n_fac] (R, C, V)
 *   u32 CRC-32 of everything before it
 * Numbers are little-endian (the byte order of every machine gtr targets). Loading checks the
 * CRC and every size before touching the trainer, then restores the state so the next step is
 * the one the uninterrupted run would have taken. */
#include "train/train_internal.h"

#include <jansson.h>
#include <string.h>

#define MAGIC "GTRTRAIN"
#define VERSION 1u

static const char *opt_name(gtr_optimizer o) { return o == GTR_OPTIM_ADAMW ? "adamw" : "adafactor"; }

/* The options that change the numbers, as JSON (names as the CLI flags say them). */
static json_t *options_json(const gtr_train_options *o)
{
    return json_pack("{s:s, s:f, s:s, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f,"
                     " s:f, s:f, s:f, s:s}",
                     "optimizer", opt_name(o->optimizer), "lr", o->lr, "schedule",
                     o->schedule == GTR_LR_CONSTANT ? "constant" : "linear", "steps",
                     (json_int_t)o->total_steps, "warmup", (json_int_t)o->warmup_steps, "batch",
                     (json_int_t)o->batch_size, "micro_batch", (json_int_t)o->micro_batch,
                     "negatives", o->n_negatives, "query_max_len", o->query_max_len,
                     "passage_max_len", o->passage_max_len, "tau", o->tau, "weight_decay",
                     o->weight_decay, "beta1", o->beta1, "beta2", o->beta2, "eps", o->eps,
                     "decay_rate", o->decay_rate, "clip_threshold", o->clip_threshold, "eps1",
                     o->eps1, "seed", "");
}

static void hex64(char out[17], uint64_t v) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

static bool parse_hex64(const json_t *j, uint64_t *v)
{
    const char *s = json_string_value(j);
    if (!s || strlen(s) != 16) return false;
    unsigned long long x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        x = x << 4 | (unsigned)d;
    }
    *v = x;
    return true;
}

static size_t state_bytes(const gtr_trainer *t)
{
    return t->opt.kind == GTR_OPTIM_ADAMW ? 2 * t->m.n_params * sizeof(float)
                                          : t->opt.n_fac * sizeof(double);
}

typedef struct {
    gtr_atomic_file f;
    uint32_t crc;
} writer;

static gtr_status put(writer *w, const void *data, size_t len, gtr_error *err)
{
    w->crc = gtr_crc32(w->crc, data, len);
    return gtr_atomic_write(&w->f, data, len, err);
}

gtr_status gtr_trainer_save_checkpoint(const gtr_trainer *t, const char *path, gtr_error *err)
{
    if (!t || !path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_save_checkpoint: NULL argument");
    char h[6][17];
    hex64(h[0], t->init_hash);
    hex64(h[1], t->data->fingerprint);
    hex64(h[2], gtr_tr_options_hash(&t->o));
    json_t *rng = json_array(), *opts = options_json(&t->o);
    for (int i = 0; i < 4; i++) {
        char s[17];
        hex64(s, t->rng.s[i]);
        json_array_append_new(rng, json_string(s));
    }
    hex64(h[3], t->o.seed);
    json_object_set_new(opts, "seed", json_string(h[3]));
    json_t *hdr = json_pack("{s:s, s:i, s:I, s:I, s:f, s:o, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:o}",
                            "format", "gtr-train-checkpoint", "version", (int)VERSION, "step",
                            (json_int_t)t->step, "cursor", (json_int_t)t->cursor, "epoch",
                            (double)t->cursor / (double)t->data->n_ex, "rng", rng, "optimizer",
                            opt_name(t->opt.kind), "optimizer_step", (json_int_t)t->opt.t,
                            "n_params", (json_int_t)t->m.n_params, "n_fac", (json_int_t)t->opt.n_fac,
                            "init_dir", t->init_dir, "init_hash", h[0], "data_fingerprint", h[1],
                            "options_hash", h[2], "options", opts);
    char *text = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    json_decref(hdr);
    if (!text) return gtr_seterr(err, GTR_ERR_NOMEM, "%s: out of memory", path);
    uint32_t ver = VERSION, hlen = (uint32_t)strlen(text);
    writer w = {.crc = 0};
    gtr_status st = gtr_atomic_open(&w.f, path, err);
    if (!st) {
        st = put(&w, MAGIC, 8, err);
        if (!st) st = put(&w, &ver, 4, err);
        if (!st) st = put(&w, &hlen, 4, err);
        if (!st) st = put(&w, text, hlen, err);
        if (!st) st = put(&w, t->m.p, t->m.n_params * sizeof(float), err);
        if (!st && t->opt.kind == GTR_OPTIM_ADAMW) {
            st = put(&w, t->opt.m, t->m.n_params * sizeof(float), err);
            if (!st) st = put(&w, t->opt.v, t->m.n_params * sizeof(float), err);
        } else if (!st) {
            st = put(&w, t->opt.fac, t->opt.n_fac * sizeof(double), err);
        }
        uint32_t crc = w.crc;
        if (!st) st = gtr_atomic_write(&w.f, &crc, 4, err);
        if (!st) st = gtr_atomic_commit(&w.f, err);
        else gtr_atomic_abort(&w.f);
    }
    free(text);
    return st;
}

/* First option whose value differs, as a message. */
static gtr_status options_mismatch(const char *path, const json_t *saved, const gtr_train_options *o,
                                   gtr_error *err)
{
    json_t *now = options_json(o);
    char seed[17];
    hex64(seed, o->seed);
    json_object_set_new(now, "seed", json_string(seed));
    const char *key;
    json_t *v;
    gtr_status st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: the options differ from the checkpoint's", path);
    json_object_foreach(now, key, v)
    {
        json_t *s = json_object_get(saved, key);
        if (!s || !json_equal(s, v)) {
            char *a = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL, *b = json_dumps(v, JSON_ENCODE_ANY);
            st = gtr_seterr(err, GTR_ERR_MISMATCH,
                            "%s: option '%s' is %s in the checkpoint but %s now (resume with the "
                            "options the run was started with)",
                            path, key, a ? a : "absent", b ? b : "?");
            free(a);
            free(b);
            break;
        }
    }
    json_decref(now);
    return st;
}

gtr_status gtr_trainer_load_checkpoint(gtr_trainer *t, const char *path, gtr_error *err)
{
    if (!t || !path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_load_checkpoint: NULL argument");
    gtr_mmap map;
    gtr_status st = gtr_mmap_open(path, &map, err);
    if (st) return st;
    const uint8_t *b = map.data;
    size_t size = map.size;
    json_t *hdr = NULL;
#define BAD(...) do { st = gtr_seterr(err, GTR_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    if (size < 20 || memcmp(b, MAGIC, 8)) BAD("%s: not a gtr training checkpoint", path);
    uint32_t ver, hlen, crc;
    memcpy(&ver, b + 8, 4);
    memcpy(&hlen, b + 12, 4);
    if (ver != VERSION) BAD("%s: checkpoint version %u (this gtr reads %u)", path, ver, VERSION);
    if ((size_t)hlen > size - 20) BAD("%s: truncated (header of %u bytes)", path, hlen);
    memcpy(&crc, b + size - 4, 4);
    if (gtr_crc32(0, b, size - 4) != crc) BAD("%s: checksum mismatch (damaged or truncated)", path);
    json_error_t je;
    if (!(hdr = json_loadb((const char *)b + 16, hlen, 0, &je))) BAD("%s: bad header: %s", path, je.text);
    json_int_t step = json_integer_value(json_object_get(hdr, "step"));
    json_int_t cursor = json_integer_value(json_object_get(hdr, "cursor"));
    json_int_t ostep = json_integer_value(json_object_get(hdr, "optimizer_step"));
    json_int_t np = json_integer_value(json_object_get(hdr, "n_params"));
    json_int_t nf = json_integer_value(json_object_get(hdr, "n_fac"));
    const char *oname = json_string_value(json_object_get(hdr, "optimizer"));
    json_t *rng = json_object_get(hdr, "rng");
    uint64_t ih, dh, oh, s[4];
    if (!json_is_integer(json_object_get(hdr, "step")) || step < 0 || cursor < 0 || ostep < 0 ||
        !oname || !json_is_array(rng) || json_array_size(rng) != 4 ||
        !parse_hex64(json_object_get(hdr, "init_hash"), &ih) ||
        !parse_hex64(json_object_get(hdr, "data_fingerprint"), &dh) ||
        !parse_hex64(json_object_get(hdr, "options_hash"), &oh))
        BAD("%s: header lacks a field", path);
    for (int i = 0; i < 4; i++)
        if (!parse_hex64(json_array_get(rng, (size_t)i), &s[i])) BAD("%s: bad RNG state", path);
    /* the identity of the run */
    if (ih != t->init_hash) {
        st = gtr_seterr(err, GTR_ERR_MISMATCH,
                        "%s: the checkpoint was started from another initial model than %s", path,
                        t->init_dir);
        goto done;
    }
    if (dh != t->data->fingerprint) {
        st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: the checkpoint was trained on other data", path);
        goto done;
    }
    if (oh != gtr_tr_options_hash(&t->o)) {
        st = options_mismatch(path, json_object_get(hdr, "options"), &t->o, err);
        goto done;
    }
    if (strcmp(oname, opt_name(t->opt.kind)) || (size_t)np != t->m.n_params ||
        (size_t)nf != t->opt.n_fac)
        BAD("%s: sizes do not match the model", path);
    size_t need = 16 + (size_t)hlen + t->m.n_params * sizeof(float) + state_bytes(t) + 4;
    if (size != need) BAD("%s: %zu bytes, expected %zu", path, size, need);
    /* restore */
    const uint8_t *at = b + 16 + hlen;
    memcpy(t->m.p, at, t->m.n_params * sizeof(float));
    at += t->m.n_params * sizeof(float);
    if (t->opt.kind == GTR_OPTIM_ADAMW) {
        memcpy(t->opt.m, at, t->m.n_params * sizeof(float));
        memcpy(t->opt.v, at + t->m.n_params * sizeof(float), t->m.n_params * sizeof(float));
    } else {
        memcpy(t->opt.fac, at, t->opt.n_fac * sizeof(double));
    }
    t->opt.t = (uint64_t)ostep;
    t->step = (uint64_t)step;
    t->cursor = (uint64_t)cursor;
    memcpy(t->rng.s, s, sizeof s);
    t->perm_valid = false;
    t->m.packed_valid = false;
#undef BAD
done:
    json_decref(hdr);
    gtr_mmap_close(&map);
    return st;
}
