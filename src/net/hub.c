/* hub.c — gtr_model_download: fetch a sentence-transformers model from the Hugging Face hub.
 *
 * modules.json comes first (into memory): it says which modules the model has, so we fetch the
 * files each one needs and nothing else, and its response names the commit the revision points
 * to, which pins every later file to that commit (a branch that moves mid-download cannot mix
 * two versions). Files are staged in "<dir>.partial/model/" as "<file>.part" while they
 * download, renamed to their name when complete and verified, and the whole tree is renamed to
 * <dir> at the end. "<dir>.partial/.source" records what is being downloaded, so a later run
 * resumes only a download of the same repository and commit. Weights come as one file or as
 * the shards a *.index.json names (transformers' order: safetensors first, sharded or not). */
#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_HINT                                                                           \
    "check the network connection; set HF_ENDPOINT to a reachable mirror; or copy the model " \
    "directory from a machine that has it and use it directly (gtr -m DIR accepts any local copy)"

/* A file to fetch: rel (relative to the model directory); when absent, alt is tried instead. */
typedef struct plan_item {
    char rel[512];
    char alt[512];
    bool required;
    bool weights; /* rel/alt are the single-file checkpoints; sharded ones are tried too */
} plan_item;

typedef struct plan {
    plan_item *items;
    size_t n, cap;
} plan;

static gtr_status plan_add(plan *p, const char *dir, const char *file, const char *alt_file,
                           bool required, gtr_error *err)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        plan_item *it = gtr_xrealloc(p->items, cap * sizeof *it, "download plan", err);
        if (!it) return GTR_ERR_NOMEM;
        p->items = it;
        p->cap = cap;
    }
    plan_item *it = &p->items[p->n++];
    const char *sep = dir[0] ? "/" : "";
    snprintf(it->rel, sizeof it->rel, "%s%s%s", dir, sep, file);
    if (alt_file) snprintf(it->alt, sizeof it->alt, "%s%s%s", dir, sep, alt_file);
    else it->alt[0] = '\0';
    it->required = required;
    it->weights = alt_file && !strcmp(file, "model.safetensors");
    return GTR_OK;
}

/* Which files each module of modules.json needs (sentence-transformers' layout). The paths
 * come from the network: only safe relative ones are accepted. */
static gtr_status plan_from_modules(const char *data, size_t len, const char *url, plan *p,
                                    gtr_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    if (!root)
        return gtr_seterr(err, GTR_ERR_FORMAT, "modules.json: invalid JSON at line %d: %s (from %s)",
                          je.line, je.text, url);
    gtr_status st = GTR_OK;
    int transformers = 0;
    if (!json_is_array(root) || json_array_size(root) == 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "modules.json: expected a non-empty list of modules (from %s)", url);
        goto out;
    }
    if ((st = plan_add(p, "", "config_sentence_transformers.json", NULL, false, err))) goto out;
    size_t i;
    json_t *m;
    json_array_foreach(root, i, m) {
        const char *path = json_string_value(json_object_get(m, "path"));
        const char *type = json_string_value(json_object_get(m, "type"));
        if (!path || !type) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "modules.json: module %zu lacks \"path\" or \"type\" (from %s)", i, url);
            goto out;
        }
        if (path[0] && (!net_safe_relpath(path, false) || strlen(path) > 200)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "modules.json: module %zu has an unsafe path '%s' (from %s)", i,
                            path, url);
            goto out;
        }
        const char *dot = strrchr(type, '.');
        const char *kind = dot ? dot + 1 : type;
        if (!strcmp(kind, "Transformer")) {
            transformers++;
            static const char *const req[] = {"config.json", "sentence_bert_config.json", "spiece.model"};
            static const char *const opt[] = {"tokenizer_config.json", "special_tokens_map.json"};
            for (size_t k = 0; k < 3 && !st; k++) st = plan_add(p, path, req[k], NULL, true, err);
            for (size_t k = 0; k < 2 && !st; k++) st = plan_add(p, path, opt[k], NULL, false, err);
            if (!st) st = plan_add(p, path, "model.safetensors", "pytorch_model.bin", true, err);
        } else if (!strcmp(kind, "Pooling")) {
            st = plan_add(p, path, "config.json", NULL, true, err);
        } else if (!strcmp(kind, "Dense")) {
            st = plan_add(p, path, "config.json", NULL, true, err);
            if (!st) st = plan_add(p, path, "model.safetensors", "pytorch_model.bin", true, err);
        } else if (!strcmp(kind, "Normalize")) {
            /* no files: the hub has no 3_Normalize/ directory */
        } else if (path[0]) {
            /* a module gtr does not implement: fetch its config so the loader can name it */
            st = plan_add(p, path, "config.json", NULL, false, err);
        }
        if (st) goto out;
    }
    if (transformers != 1)
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                        "modules.json: expected one Transformer module, found %d (from %s)", transformers, url);
out:
    json_decref(root);
    return st;
}

static bool valid_repo_id(const char *id)
{
    size_t n = strlen(id), slashes = 0;
    if (n == 0 || n > 200 || id[0] == '/' || id[n - 1] == '/' || strstr(id, "..") || strstr(id, "//"))
        return false;
    for (const char *p = id; *p; p++) {
        if (*p == '/') slashes++;
        else if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return false;
    }
    return slashes <= 1 && id[0] != '.';
}

/* The token: the caller's, else $HF_TOKEN, else the file huggingface-cli login writes. */
static char *resolve_token(const char *given)
{
    if (given) return strdup(given);
    const char *env = getenv("HF_TOKEN");
    if (!env || !*env) env = getenv("HUGGING_FACE_HUB_TOKEN"); /* older name, still honoured */
    if (env && *env) return strdup(env);
    char path[4096];
    const char *tp = getenv("HF_TOKEN_PATH"), *hf = getenv("HF_HOME"), *home = getenv("HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (tp && *tp) snprintf(path, sizeof path, "%s", tp);
    else if (hf && *hf) snprintf(path, sizeof path, "%s/token", hf);
    else if (xdg && *xdg) snprintf(path, sizeof path, "%s/huggingface/token", xdg);
    else if (home && *home) snprintf(path, sizeof path, "%s/.cache/huggingface/token", home);
    else return strdup("");
    char *data;
    size_t len;
    if (gtr_read_file(path, 4096, &data, &len, NULL)) return strdup("");
    while (len && isspace((unsigned char)data[len - 1])) data[--len] = '\0';
    return data;
}

typedef struct hub {
    const char *endpoint, *repo;
    char *rev_esc; /* revision (then the pinned commit), URL-encoded */
} hub;

static char *file_url(const hub *h, const char *rel)
{
    char *f = net_url_escape(rel, true);
    if (!f) return NULL;
    size_t n = strlen(h->endpoint) + strlen(h->repo) + strlen(h->rev_esc) + strlen(f) + 16;
    char *u = malloc(n);
    if (u) snprintf(u, n, "%s/%s/resolve/%s/%s", h->endpoint, h->repo, h->rev_esc, f);
    free(f);
    return u;
}

static bool is_commit(const char *s)
{
    if (strlen(s) != 40) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s)) return false;
    return true;
}

/* Reword the first request's 404/401 for what it means: no such repository / revision / not a
 * sentence-transformers model. */
static gtr_status explain_first_failure(gtr_status st, const net_result *r, const char *repo,
                                        const char *rev, const char *endpoint, const char *url,
                                        gtr_error *err)
{
    if (st != GTR_ERR_NOT_FOUND && st != GTR_ERR_INVALID_ARG) return st;
    if (!strcmp(r->error_code, "RepoNotFound") || (r->http_status == 401 && !r->error_code[0]))
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "repository '%s' not found at %s (HTTP %d from %s); check the name, or set "
                          "HF_TOKEN if it is private or gated",
                          repo, endpoint, r->http_status, url);
    if (!strcmp(r->error_code, "RevisionNotFound"))
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "revision '%s' not found in repository '%s' (HTTP %d from %s)",
                          rev, repo, r->http_status, url);
    if (r->http_status == 404)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "'%s' has no modules.json at revision '%s' (HTTP 404 from %s): not a "
                          "repository in the sentence-transformers layout gtr loads (or no such repository)",
                          repo, rev, url);
    return st;
}

/* Fetch one planned file into the staging tree (resuming its .part). */
static gtr_status fetch_one(net_session *s, const hub *h, const net_stage *stg, const char *rel,
                            gtr_error *err)
{
    char relpath[600];
    snprintf(relpath, sizeof relpath, "model/%s", rel);
    char *path = net_stage_path(stg, relpath), *url = file_url(h, rel);
    char *part = path ? gtr_path_suffixed(path, ".part", NULL) : NULL;
    gtr_status st = GTR_OK;
    if (!path || !url || !part) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* A file completed by an earlier run is checked again through its .part name: the Range
     * request answers "complete" at no cost, and the hub's checksum is verified once more. */
    if (gtr_file_exists(path) && !gtr_file_exists(part) && rename(path, part) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        goto out;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0';
    st = gtr_mkdirs(path, err);
    *slash = '/';
    if (st) goto out;
    net_result res;
    if ((st = net_fetch_file(s, url, rel, part, &res, err))) goto out;
    if (rename(part, path) != 0) st = gtr_seterr(err, GTR_ERR_IO, "%s: rename failed: %s", part, strerror(errno));
out:
    free(path);
    free(url);
    free(part);
    return st;
}

/* Start or resume the staging tree for (repo, commit): anything staged for another source is
 * dropped. */
static gtr_status prepare_stage(const net_stage *stg, const char *source, const char *modules,
                                size_t modules_len, gtr_error *err)
{
    char *meta = net_stage_path(stg, ".source"), *tree = net_stage_path(stg, "model");
    char *mj = net_stage_path(stg, "model/modules.json");
    gtr_status st = GTR_OK;
    if (!meta || !tree || !mj) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    char *old = NULL;
    size_t old_len = 0;
    bool same = gtr_read_file(meta, 65536, &old, &old_len, NULL) == GTR_OK && !strcmp(old, source);
    free(old);
    if (!same) {
        if ((st = gtr_remove_tree(tree, err))) goto out;
        if ((st = gtr_write_file_atomic(meta, source, strlen(source), err))) goto out;
    }
    if ((st = gtr_mkdirs(tree, err))) goto out;
    st = gtr_write_file_atomic(mj, modules, modules_len, err);
out:
    free(meta);
    free(tree);
    free(mj);
    return st;
}

/* A sharded checkpoint: fetch "<module>/<index>" (NOT_FOUND when the repository has none),
 * then every shard its weight_map names, each resumable and checked like any file. */
static gtr_status fetch_sharded(net_session *s, const hub *h, const net_stage *stg, const char *module,
                                const char *index, gtr_error *err)
{
    char rel[600], staged[700];
    snprintf(rel, sizeof rel, "%s%s%s", module, module[0] ? "/" : "", index);
    gtr_status st = fetch_one(s, h, stg, rel, err);
    if (st) return st;
    snprintf(staged, sizeof staged, "model/%s", rel);
    char *path = net_stage_path(stg, staged);
    if (!path) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    json_t *wm = j ? json_object_get(j, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: %s", rel, j ? "no \"weight_map\" object" : je.text);
        goto out;
    }
    /* each shard once, in the order the index first names it */
    json_t *done = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *f = json_string_value(v);
        if (!f || !net_safe_relpath(f, false) || strchr(f, '/') || strlen(f) > 200) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': bad shard file name", rel, key);
            break;
        }
        if (json_object_get(done, f)) continue;
        json_object_set_new(done, f, json_true());
        char srel[600];
        snprintf(srel, sizeof srel, "%s%s%s", module, module[0] ? "/" : "", f);
        if ((st = fetch_one(s, h, stg, srel, err))) {
            if (st == GTR_ERR_NOT_FOUND) gtr_error_prefix(err, "shard %s (listed in %s)", srel, rel);
            if (st == GTR_ERR_NOT_FOUND) st = GTR_ERR_FORMAT; /* the index lies: not "no such file" */
            break;
        }
    }
    json_decref(done);
out:
    json_decref(j);
    free(path);
    return st;
}

/* The weights of one module, in transformers' order: model.safetensors, its sharded index,
 * pytorch_model.bin, its sharded index. */
static gtr_status fetch_weights(net_session *s, const hub *h, const net_stage *stg, const plan_item *it,
                                const gtr_download_options *o, const char *repo_id, const char *rev,
                                gtr_error *err)
{
    char module[512];
    snprintf(module, sizeof module, "%s", it->rel);
    char *sl = strrchr(module, '/');
    if (sl) *sl = '\0';
    else module[0] = '\0';
    gtr_status st = fetch_one(s, h, stg, it->rel, err);
    if (st != GTR_ERR_NOT_FOUND) return st;
    if ((st = fetch_sharded(s, h, stg, module, "model.safetensors.index.json", err)) != GTR_ERR_NOT_FOUND)
        return st;
    char why[600];
    snprintf(why, sizeof why, "not in the repository; using %s", it->alt);
    if (o->on_event) o->on_event(o->user, GTR_DOWNLOAD_SKIPPED, it->rel, 0, why);
    if ((st = fetch_one(s, h, stg, it->alt, err)) != GTR_ERR_NOT_FOUND) return st;
    if ((st = fetch_sharded(s, h, stg, module, "pytorch_model.bin.index.json", err)) != GTR_ERR_NOT_FOUND)
        return st;
    return gtr_seterr(err, st,
                      "repository '%s' has none of model.safetensors, pytorch_model.bin or their sharded "
                      "*.index.json in '%s' at revision '%s'",
                      repo_id, module[0] ? module : ".", rev);
}

static void emit(const gtr_download_options *o, gtr_download_event ev, const char *name,
                 uint64_t size, const char *detail)
{
    if (o->on_event) o->on_event(o->user, ev, name, size, detail);
}

GTR_API gtr_status gtr_model_download(const char *repo_id, const char *dir,
                               const gtr_download_options *opts, gtr_error *err)
{
    if (!repo_id || !valid_repo_id(repo_id))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "invalid repository id '%s' (expected NAMESPACE/NAME, e.g. sentence-transformers/gtr-t5-base)",
                          repo_id ? repo_id : "(null)");
    if (!dir || !*dir) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "no destination directory given");
    gtr_download_options o;
    if (net_resolve_options(opts, &o, err)) return GTR_ERR_INVALID_ARG;
    const char *rev = o.revision && *o.revision ? o.revision : "main";
    for (const char *p = rev; *p; p++)
        if ((unsigned char)*p < 0x20) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "invalid revision");
    const char *ep = o.endpoint && *o.endpoint ? o.endpoint : getenv("HF_ENDPOINT");
    char *endpoint = strdup(ep && *ep ? ep : DEFAULT_ENDPOINT);
    if (!endpoint) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--) endpoint[n - 1] = '\0';

    int state = net_dest_state(dir);
    if (state < 0) {
        free(endpoint);
        return gtr_seterr(err, GTR_ERR_IO, "%s: exists and is not a directory", dir);
    }
    if (state > 0 && !o.force) {
        free(endpoint);
        emit(&o, GTR_DOWNLOAD_PRESENT, repo_id, 0, dir);
        return GTR_OK;
    }

    const char *off = getenv("HF_HUB_OFFLINE");
    if (off && (!strcmp(off, "1") || !strcasecmp(off, "true") || !strcasecmp(off, "yes") || !strcasecmp(off, "on"))) {
        free(endpoint);
        return gtr_seterr(err, GTR_ERR_NETWORK,
                          "HF_HUB_OFFLINE=%s: not downloading '%s' into %s (unset it to download, or use a "
                          "copy already on disk: -m accepts a directory or a repository id in the Hugging "
                          "Face cache)", off, repo_id, dir);
    }
    hub h = {endpoint, repo_id, net_url_escape(rev, false)};
    char *token = resolve_token(o.token);
    net_session s;
    memset(&s, 0, sizeof s);
    net_stage stg;
    memset(&stg, 0, sizeof stg);
    stg.lock_fd = -1;
    gtr_buf modules = {0};
    plan p = {0};
    char *url = NULL, *source = NULL;
    bool discard = false;
    gtr_status st = GTR_OK;
    if (!h.rev_esc || !token) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = net_session_open(&s, &o, token, HUB_HINT, err))) goto out;

    /* 1. modules.json: what to fetch, and which commit the revision is now. */
    net_result r;
    if (!(url = file_url(&h, "modules.json"))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = net_fetch_mem(&s, url, "modules.json", 1 << 20, &modules, &r, err);
    if (st) {
        st = explain_first_failure(st, &r, repo_id, rev, endpoint, url, err);
        goto out;
    }
    if (is_commit(r.commit)) {
        emit(&o, GTR_DOWNLOAD_RESOLVED, rev, 0, r.commit);
        free(h.rev_esc);
        if (!(h.rev_esc = strdup(r.commit))) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((st = plan_from_modules(modules.data ? modules.data : "", modules.len, url, &p, err))) goto out;

    /* 2. the staging tree, resumed if it holds this same repository and commit */
    size_t sn = strlen(endpoint) + strlen(repo_id) + strlen(h.rev_esc) + 8;
    if (!(source = malloc(sn))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(source, sn, "%s\n%s\n%s\n", endpoint, repo_id, h.rev_esc);
    if ((st = net_stage_open(&stg, dir, err))) goto out;
    if ((st = prepare_stage(&stg, source, modules.data ? modules.data : "", modules.len, err))) goto out;

    /* 3. every file the modules need; weights as safetensors, else the pickle */
    for (size_t i = 0; i < p.n && !st; i++) {
        const plan_item *it = &p.items[i];
        if (it->weights) {
            st = fetch_weights(&s, &h, &stg, it, &o, repo_id, rev, err);
            continue;
        }
        st = fetch_one(&s, &h, &stg, it->rel, err);
        if (st == GTR_ERR_NOT_FOUND && !it->required) {
            emit(&o, GTR_DOWNLOAD_SKIPPED, it->rel, 0, "optional, not in the repository");
            st = GTR_OK;
        } else if (st == GTR_ERR_NOT_FOUND) {
            gtr_error_prefix(err, "repository '%s' lacks the required file %s", repo_id, it->rel);
        }
    }
    if (st) {
        /* A missing file or refused access will not change on a rerun: nothing to keep. A
         * network failure or interruption keeps the staged files for the next run. */
        discard = st == GTR_ERR_NOT_FOUND || st == GTR_ERR_INVALID_ARG || st == GTR_ERR_FORMAT ||
                  st == GTR_ERR_UNSUPPORTED;
        goto out;
    }

    /* 4. the complete tree becomes <dir> in one rename */
    st = net_stage_commit(&stg, "model", o.force != 0, err);
out:
    if (stg.dir) net_stage_close(&stg, discard);
    if (s.curl) net_session_close(&s);
    gtr_buf_free(&modules);
    free(p.items);
    free(url);
    free(source);
    free(token);
    free(h.rev_esc);
    free(endpoint);
    return st;
}
