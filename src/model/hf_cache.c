/* hf_cache.c — models where users already have them: a repository id ("org/name", optionally
 * "@revision") found in the Hugging Face cache that transformers and sentence-transformers
 * fill, the way they look it up (huggingface_hub's file_download.py):
 *   root = $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 *          else ~/.cache/huggingface/hub
 *   root/models--org--name/refs/<revision>   holds the commit a branch or tag points to
 *   root/models--org--name/snapshots/<commit>/...   the files (symlinks into ../../blobs/)
 * A path that exists always wins, so a local directory named like a repository id is never
 * shadowed by the cache. The lookup never touches the network. */
#include "model/model_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* "org/name": one slash, the hub's characters, no "..". */
static bool repo_id_like(const char *s, size_t n)
{
    size_t slashes = 0;
    if (n == 0 || n > 200 || s[0] == '/' || s[0] == '.' || s[n - 1] == '/') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '/') slashes++;
        else if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.') return false;
        if (c == '.' && i + 1 < n && s[i + 1] == '.') return false;
    }
    return slashes == 1;
}

static bool is_commit(const char *s)
{
    if (strlen(s) != 40) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s)) return false;
    return true;
}

char *gtr_hf_cache_root(void)
{
    const char *hub = getenv("HF_HUB_CACHE"), *home = getenv("HF_HOME");
    const char *xdg = getenv("XDG_CACHE_HOME"), *user = getenv("HOME");
    char buf[4096];
    if (!hub || !*hub) hub = getenv("HUGGINGFACE_HUB_CACHE"); /* older name, still honoured */
    if (hub && *hub) snprintf(buf, sizeof buf, "%s", hub);
    else if (home && *home) snprintf(buf, sizeof buf, "%s/hub", home);
    else if (xdg && *xdg) snprintf(buf, sizeof buf, "%s/huggingface/hub", xdg);
    else if (user && *user) snprintf(buf, sizeof buf, "%s/.cache/huggingface/hub", user);
    else return NULL;
    return strdup(buf);
}

gtr_status gtr_hf_cache_resolve(const char *spec, char **out, gtr_error *err)
{
    *out = NULL;
    struct stat sb;
    if (!spec || stat(spec, &sb) == 0) return GTR_OK; /* a local path: used as it is */
    const char *at = strchr(spec, '@');
    size_t rn = at ? (size_t)(at - spec) : strlen(spec);
    if (!repo_id_like(spec, rn)) return GTR_OK; /* not a repository id: the loader names the path */
    const char *rev = at ? at + 1 : "main";
    if (!*rev || strstr(rev, "..") || rev[0] == '/' || strlen(rev) > 200)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: bad revision after '@'", spec);
    char *root = gtr_hf_cache_root();
    if (!root)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "%s: not a directory, and no Hugging Face cache to look in (HF_HUB_CACHE, HF_HOME and HOME are unset)",
                          spec);
    size_t cap = strlen(root) + 2 * rn + 300 + strlen(rev);
    char *repo = malloc(cap), *path = malloc(cap), *commit = NULL;
    gtr_status st = GTR_OK;
    if (!repo || !path) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* models--org--name: the slash becomes "--" */
    const char *slash = memchr(spec, '/', rn);
    snprintf(repo, cap, "%s/models--%.*s--%.*s", root, (int)(slash - spec), spec,
             (int)(rn - (size_t)(slash - spec) - 1), slash + 1);
    if (!gtr_dir_exists(repo)) {
        st = gtr_seterr(err, GTR_ERR_NOT_FOUND,
                        "%s: not a directory, and not in the Hugging Face cache (no %s); download it with "
                        "`gtr pull %.*s DIR`, or set HF_HUB_CACHE / HF_HOME to the cache that has it",
                        spec, repo, (int)rn, spec);
        goto done;
    }
    if (is_commit(rev)) {
        commit = strdup(rev);
    } else {
        snprintf(path, cap, "%s/refs/%s", repo, rev);
        size_t len = 0;
        if (gtr_read_file(path, 256, &commit, &len, NULL) == GTR_OK) {
            while (len && isspace((unsigned char)commit[len - 1])) commit[--len] = '\0';
            if (!is_commit(commit)) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: does not hold a commit hash", path);
                goto done;
            }
        } else {
            commit = strdup(rev); /* a snapshot named by a tag-less revision (as some tools write) */
        }
    }
    if (!commit) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(path, cap, "%s/snapshots/%s", repo, commit);
    if (!gtr_dir_exists(path)) {
        st = gtr_seterr(err, GTR_ERR_NOT_FOUND,
                        "%s: revision '%s' is not in the Hugging Face cache (no %s)", spec, rev, path);
        goto done;
    }
    *out = path;
    path = NULL;
done:
    free(root);
    free(repo);
    free(path);
    free(commit);
    return st;
}
