/* export.c — a trained model as a sentence-transformers directory, loadable unchanged by gtr
 * and by Python's sentence-transformers:
 *
 *   <out>/modules.json, config.json (torch_dtype float32), sentence_bert_config.json, the
 *         tokenizer files and spiece.model: copied from the initial directory
 *   <out>/model.safetensors: the encoder in float32 with Hugging Face names (the tied embedding
 *         once, as shared.weight, which transformers ties to encoder.embed_tokens.weight);
 *         above 5 GB (GTR-XL and up) shards + model.safetensors.index.json, as transformers
 *         writes them
 *   <out>/1_Pooling/config.json, <out>/2_Dense/config.json: copied
 *   <out>/2_Dense/model.safetensors: linear.weight [out, in] (+ linear.bias)
 *
 * Everything is written into "<out>.partial" first and the directory renamed into place when
 * complete, so <out> is either the previous model or the new one, never a mixture. */
#include "train/train_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- safetensors ------------------------------------------------------------------------------ */

/* Write tensors t[0..n) (float32 from m->p) as a safetensors file; rename[i] (may be NULL)
 * replaces tensor i's name in the file. */
static gtr_status write_safetensors(const char *path, const gtr_tr_model *m,
                                    const gtr_tr_tensor *const *t, const char *const *names,
                                    size_t n, gtr_error *err)
{
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = t[i]->count * sizeof(float);
        gtr_safetensors_header_add(hdr, names[i], "F32", t[i]->shape[0], t[i]->ndim == 2 ? t[i]->shape[1] : 0,
                                   off, bytes);
        off += bytes;
    }
    size_t hlen;
    uint8_t *head = gtr_safetensors_header_bytes(hdr, &hlen, err);
    json_decref(hdr);
    if (!head) return GTR_ERR_NOMEM;
    gtr_atomic_file f;
    gtr_status st = gtr_atomic_open(&f, path, err);
    if (!st) {
        st = gtr_atomic_write(&f, head, hlen, err);
        for (size_t i = 0; !st && i < n; i++)
            st = gtr_atomic_write(&f, m->p + t[i]->off, t[i]->count * sizeof(float), err);
        if (!st) st = gtr_atomic_commit(&f, err);
        else gtr_atomic_abort(&f);
    }
    free(head);
    return st;
}

/* The encoder's tensors into dir: model.safetensors, or above the shard limit
 * model-0000k-of-0000K.safetensors + model.safetensors.index.json as transformers'
 * save_pretrained writes them (a tensor is never split: one bigger than the limit gets a
 * shard of its own). */
static gtr_status write_encoder(const char *dir, const gtr_tr_model *m, const gtr_tr_tensor *const *t,
                                const char *const *names, size_t n, gtr_error *err)
{
    uint64_t limit = gtr_max_shard_bytes(), off = 0, total = 0;
    size_t *shard = gtr_xcalloc(n ? n : 1, sizeof *shard, "shards", err), K = 1;
    if (!shard) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = t[i]->count * sizeof(float);
        if (off && off + bytes > limit) {
            K++;
            off = 0;
        }
        shard[i] = K - 1;
        off += bytes;
        total += bytes;
    }
    gtr_status st = GTR_OK;
    for (size_t k = 0, i = 0; !st && k < K; k++) {
        size_t j = i;
        while (j < n && shard[j] == k) j++;
        char name[64];
        gtr_safetensors_shard_name(k, K, name, sizeof name);
        char *path = gtr_path_join(dir, name);
        st = path ? write_safetensors(path, m, t + i, names + i, j - i, err) : gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        free(path);
        i = j;
    }
    if (!st && K > 1) st = gtr_safetensors_write_index(dir, names, shard, n, K, total, err);
    free(shard);
    return st;
}

/* ---- files ------------------------------------------------------------------------------------ */

/* config.json with torch_dtype set to float32 (the weights we write). */
static gtr_status copy_config(const char *src, const char *dst, gtr_error *err)
{
    json_t *j = gtr_json_load_file(src, err);
    if (!j) return err && err->code ? err->code : GTR_ERR_FORMAT;
    if (json_object_get(j, "torch_dtype")) json_object_set_new(j, "torch_dtype", json_string("float32"));
    gtr_status st = gtr_json_write_file(dst, j, err);
    json_decref(j);
    return st;
}

/* The configuration files of one module directory: every *.json except weight indexes
 * (config.json of the Transformer rewritten), and spiece.model. Weights are not copied. */
static gtr_status copy_module(const char *src_dir, const char *dst_dir, bool transformer,
                              gtr_error *err)
{
    gtr_status st = gtr_mkdirs(dst_dir, err);
    if (st) return st;
    DIR *d = opendir(src_dir);
    if (!d) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot list: %s", src_dir, strerror(errno));
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        const char *nm = e->d_name;
        bool want = (gtr_str_ends_with(nm, ".json") && !gtr_str_ends_with(nm, ".index.json")) ||
                    (transformer && !strcmp(nm, "spiece.model"));
        if (!want) continue;
        char *src = gtr_path_join(src_dir, nm), *dst = gtr_path_join(dst_dir, nm);
        struct stat sb;
        if (!src || !dst) st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        else if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) st = GTR_OK; /* not a file: skip */
        else if (transformer && !strcmp(nm, "config.json")) st = copy_config(src, dst, err);
        else st = gtr_copy_file(src, dst, err);
        free(src);
        free(dst);
    }
    closedir(d);
    return st;
}

/* Relative module paths from the init directory's modules.json (NULL dense when none). */
static gtr_status module_paths(const char *init_dir, char **tr, char **po, char **de, gtr_error *err)
{
    char *path = gtr_path_join(init_dir, "modules.json");
    if (!path) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    json_t *j = gtr_json_load_file(path, err);
    gtr_status st = j ? GTR_OK : (err && err->code ? err->code : GTR_ERR_FORMAT);
    bool norm;
    if (!st) st = gtr_config_parse_modules(j, path, tr, po, de, &norm, err);
    json_decref(j);
    free(path);
    return st;
}

gtr_status gtr_tr_export(const gtr_tr_model *m, const char *init_dir, const char *out_dir,
                         bool overwrite, gtr_error *err)
{
    size_t olen = strlen(out_dir);
    while (olen > 1 && out_dir[olen - 1] == '/') olen--;
    char *out = strndup(out_dir, olen), *stage = out ? gtr_path_suffixed(out, ".partial", NULL) : NULL, *old = malloc(olen + 32);
    char *tr = NULL, *po = NULL, *de = NULL, *p = NULL, *q = NULL;
    gtr_status st = GTR_OK;
    const gtr_tr_tensor **ts = calloc(m->n_t, sizeof *ts);
    const char **names = calloc(m->n_t, sizeof *names);
    if (!out || !stage || !old || !ts || !names) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(old, olen + 32, "%s.old.%ld", out, (long)getpid());
    struct stat sb;
    bool exists = stat(out, &sb) == 0;
    if (exists && !overwrite) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s already exists (choose another output or allow overwriting)", out);
        goto done;
    }
    if ((st = module_paths(init_dir, &tr, &po, &de, err)) || (st = gtr_remove_tree(stage, err)) ||
        (st = gtr_mkdirs(stage, err)))
        goto done;
    if (m->cfg.has_dense != (de != NULL)) {
        st = gtr_seterr(err, GTR_ERR_INTERNAL, "%s: modules.json changed during training", init_dir);
        goto done;
    }

    /* configuration files of every module */
    const char *rel[3] = {tr, po, de};
    const char *src_dirs[3] = {m->cfg.transformer_dir, m->cfg.pooling_dir, m->cfg.dense_dir};
    for (int i = 0; i < 3 && !st; i++) {
        if (!rel[i]) continue;
        free(p);
        if (!(p = gtr_path_join(stage, rel[i]))) st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        else st = copy_module(src_dirs[i], p, i == 0, err);
    }
    if (st) goto done;

    /* encoder weights */
    size_t n = 0;
    for (size_t i = 0; i < m->n_t; i++)
        if (strncmp(m->t[i].name, "dense.", 6)) {
            ts[n] = &m->t[i];
            names[n++] = m->t[i].name;
        }
    free(p);
    if (!(p = gtr_path_join(stage, tr))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = write_encoder(p, m, ts, names, n, err))) goto done;
    if (de) { /* Dense weights under the module's own names */
        free(p);
        free(q);
        p = gtr_path_join(stage, de);
        q = p ? gtr_path_join(p, "model.safetensors") : NULL;
        if (!q) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            goto done;
        }
        n = 0;
        ts[n] = gtr_tr_find(m, "dense.linear.weight");
        names[n++] = "linear.weight";
        if (m->dense_b != SIZE_MAX) {
            ts[n] = gtr_tr_find(m, "dense.linear.bias");
            names[n++] = "linear.bias";
        }
        if ((st = write_safetensors(q, m, ts, names, n, err))) goto done;
    }

    /* into place: the old directory (if any) moves aside first and is removed after */
    if (exists && rename(out, old) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot move aside: %s", out, strerror(errno));
        goto done;
    }
    if (rename(stage, out) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot rename to %s: %s", stage, out, strerror(errno));
        if (exists) (void)rename(old, out);
        goto done;
    }
    {
        char *slash = strrchr(out, '/');
        if (slash == out) st = gtr_fsync_dir("/", err);
        else if (slash) {
            *slash = '\0';
            st = gtr_fsync_dir(out, err);
            *slash = '/';
        } else {
            st = gtr_fsync_dir(".", err);
        }
    }
    if (!st && exists) st = gtr_remove_tree(old, err);
done:
    if (st) {
        gtr_error e2;
        (void)gtr_remove_tree(stage, &e2);
    }
    free(out);
    free(stage);
    free(old);
    free(tr);
    free(po);
    free(de);
    free(p);
    free(q);
    free(ts);
    free(names);
    return st;
}
