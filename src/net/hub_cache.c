/* hub_cache.c — gtr_model_download_cache: pull into the Hugging Face cache (the layout
 * model/hf_cache.c reads and transformers fills), so Python and gtr share one copy:
 *   <cache>/models--org--name/snapshots/<commit>/...   the files
 *   <cache>/models--org--name/refs/<revision>          the commit, for a branch or tag
 * The download itself is gtr_model_download into a staging directory beside the snapshots (resumable
 * as any pull); the commit it resolved to names the snapshot, which appears by one rename, and
 * refs/<revision> is written after it (atomically), so a reader never sees a ref to a partial
 * snapshot. Files are stored in the snapshot itself rather than as links into blobs/:
 * huggingface_hub returns a snapshot file that exists without looking at blobs/. */
#include "net.h"
#include "model/model_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const gtr_download_options *user;
    char commit[64];
} resolve_tap;

static void on_event(void *u, gtr_download_event ev, const char *name, uint64_t size, const char *detail)
{
    resolve_tap *t = u;
    if (ev == GTR_DOWNLOAD_RESOLVED && detail) snprintf(t->commit, sizeof t->commit, "%s", detail);
    if (t->user->on_event) t->user->on_event(t->user->user, ev, name, size, detail);
}

/* the path into the caller's buffer */
static gtr_status give(char *out, size_t cap, const char *path, gtr_error *err)
{
    if (strlen(path) >= cap)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: path longer than the %zu bytes given for it", path, cap);
    memcpy(out, path, strlen(path) + 1);
    return GTR_OK;
}

GTR_API gtr_status gtr_model_download_cache(const char *repo_id, const gtr_download_options *opts, char *snapshot,
                                     size_t cap_out, gtr_error *err)
{
    if (cap_out) snapshot[0] = '\0';
    gtr_download_options o;
    if (net_resolve_options(opts, &o, err)) return GTR_ERR_INVALID_ARG;
    const char *rev = o.revision && *o.revision ? o.revision : "main";
    if (strchr(rev, '/') || strstr(rev, "..") || strlen(rev) > 200)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "revision '%s' cannot name a cache entry", rev);
    /* already in the cache (and not forced): nothing to download, as transformers does */
    char spec[512];
    snprintf(spec, sizeof spec, "%s@%s", repo_id ? repo_id : "", rev);
    const char *slash = repo_id ? strchr(repo_id, '/') : NULL;
    if (!slash || strchr(slash + 1, '/') || strlen(repo_id) > 200)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "invalid repository id '%s' (expected NAMESPACE/NAME, e.g. sentence-transformers/gtr-t5-base)",
                          repo_id ? repo_id : "(null)");
    char *have = NULL;
    gtr_error e2;
    if (!o.force && gtr_hf_cache_resolve(spec, &have, &e2) == GTR_OK && have) {
        if (o.on_event) o.on_event(o.user, GTR_DOWNLOAD_PRESENT, repo_id, 0, have);
        gtr_status g = give(snapshot, cap_out, have, err);
        free(have);
        return g;
    }
    char *root = gtr_hf_cache_root();
    if (!root)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "no Hugging Face cache: HF_HUB_CACHE, HF_HOME and HOME are unset");
    size_t cap = strlen(root) + strlen(repo_id) + strlen(rev) + 200;
    char *repo = malloc(cap), *stage = malloc(cap), *snap = malloc(cap), *ref = malloc(cap);
    gtr_status st = GTR_OK;
    if (!repo || !stage || !snap || !ref) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(repo, cap, "%s/models--%.*s--%s", root, (int)(slash - repo_id), repo_id, slash + 1);
    snprintf(stage, cap, "%s/snapshots/.gtr-pull-%s", repo, rev);
    if ((st = gtr_mkdirs(stage, err))) goto out; /* an empty destination is fine for gtr_model_download */
    resolve_tap tap = {opts ? opts : &o, ""};
    gtr_download_options po = o;
    po.on_event = on_event;
    po.user = &tap;
    po.force = 1; /* the staging name is ours: replace a stale one */
    if ((st = gtr_model_download(repo_id, stage, &po, err))) goto out;
    const char *commit = tap.commit[0] ? tap.commit : rev;
    snprintf(snap, cap, "%s/snapshots/%s", repo, commit);
    if (gtr_dir_exists(snap) && (st = gtr_remove_tree(snap, err))) goto out;
    if (rename(stage, snap) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: rename to %s failed: %s", stage, snap, strerror(errno));
        goto out;
    }
    if (strcmp(commit, rev)) { /* a branch or tag: refs/<rev> -> commit */
        snprintf(ref, cap, "%s/refs", repo);
        if ((st = gtr_mkdirs(ref, err))) goto out;
        snprintf(ref, cap, "%s/refs/%s", repo, rev);
        if ((st = gtr_write_file_atomic(ref, commit, strlen(commit), err))) goto out;
    }
    st = give(snapshot, cap_out, snap, err);
out:
    free(root);
    free(repo);
    free(stage);
    free(snap);
    free(ref);
    return st;
}
