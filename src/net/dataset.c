/* dataset.c — gtr_dataset_download: fetch a BEIR dataset zip and unpack it.
 *
 * Everything happens in "<parent>/<name>.partial/": the zip downloads there as <name>.zip.part
 * (resumed by the next run if the connection drops), is unpacked into extract/, and the
 * dataset folder (the zip's single top-level directory, as BEIR zips have) is renamed to
 * <parent>/<name> when complete. No hub token is ever sent to this server. */
#include "net.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_BEIR_URL "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.') return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return false;
    return true;
}

/* The zip's single top-level directory, if that is all it holds ("extract/<dir>"), else the
 * extraction root itself ("extract"). */
static gtr_status pick_root(const char *extract_dir, char *rel, size_t cap, gtr_error *err)
{
    DIR *d = opendir(extract_dir);
    if (!d) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot open directory", extract_dir);
    struct dirent *e;
    int count = 0;
    char only[256] = "";
    bool only_dir = false;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (++count == 1) {
            snprintf(only, sizeof only, "%s", e->d_name);
            char *p = gtr_path_join(extract_dir, e->d_name);
            only_dir = p && gtr_dir_exists(p);
            free(p);
        }
    }
    closedir(d);
    if (count == 1 && only_dir) snprintf(rel, cap, "extract/%s", only);
    else snprintf(rel, cap, "extract");
    return GTR_OK;
}

static void emit(const gtr_download_options *o, gtr_download_event ev, const char *name,
                 uint64_t size, const char *detail)
{
    if (o->on_event) o->on_event(o->user, ev, name, size, detail);
}

GTR_API gtr_status gtr_dataset_download(const char *name, const char *parent_dir,
                                        const gtr_download_options *opts, gtr_error *err)
{
    if (!name || !valid_name(name))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "invalid dataset name '%s' (letters, digits, '-', '_', '.'; e.g. scifact)",
                          name ? name : "(null)");
    if (!parent_dir || !*parent_dir)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "no destination directory given");
    gtr_download_options o;
    if (net_resolve_options(opts, &o, err)) return GTR_ERR_INVALID_ARG;
    const char *env = getenv("GTR_BEIR_URL");
    const char *b = o.endpoint && *o.endpoint ? o.endpoint : env && *env ? env : DEFAULT_BEIR_URL;
    size_t bl = strlen(b);
    while (bl > 0 && b[bl - 1] == '/') bl--;
    size_t un = bl + strlen(name) + 8, hn = strlen(name) + strlen(parent_dir) + 200;
    char *url = malloc(un), *dest = gtr_path_join(parent_dir, name), *hint = malloc(hn);
    char *part = NULL, *extract = NULL, *zipname = NULL;
    net_session s;
    memset(&s, 0, sizeof s);
    net_stage stg;
    memset(&stg, 0, sizeof stg);
    stg.lock_fd = -1;
    bool discard = false;
    gtr_status st = GTR_OK;
    if (!url || !dest || !hint) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(url, un, "%.*s/%s.zip", (int)bl, b, name);
    snprintf(hint, hn,
             "check the network connection; set GTR_BEIR_URL to a mirror that serves %s.zip; or "
             "download %s.zip elsewhere and unzip it into %s",
             name, name, parent_dir);
    int state = net_dest_state(dest);
    if (state < 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: exists and is not a directory", dest);
        goto out;
    }
    if (state > 0 && !o.force) {
        emit(&o, GTR_DOWNLOAD_PRESENT, name, 0, dest);
        goto out;
    }
    if ((st = net_stage_open(&stg, dest, err))) goto out;
    if (!(zipname = gtr_path_suffixed(name, ".zip.part", NULL))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    part = net_stage_path(&stg, zipname);
    extract = net_stage_path(&stg, "extract");
    zipname[strlen(zipname) - 5] = '\0'; /* "<name>.zip" for messages */
    if (!part || !extract) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = net_session_open(&s, &o, NULL, hint, err))) goto out;
    net_result r;
    st = net_fetch_file(&s, url, zipname, part, &r, err);
    net_session_close(&s);
    if (st == GTR_ERR_NOT_FOUND) {
        gtr_seterr(err, st, "dataset '%s' not found: HTTP %d from %s (BEIR's public datasets include "
                   "scifact, nfcorpus, fiqa, arguana, scidocs, trec-covid, quora, nq, hotpotqa)",
                   name, r.http_status, url);
    }
    if (st) {
        /* Keep a partial zip for the next run; an empty one (no byte arrived) is not worth a
         * staging directory. */
        discard = st == GTR_ERR_NOT_FOUND || st == GTR_ERR_INVALID_ARG || !gtr_file_exists(part);
        struct stat sb;
        if (!discard && stat(part, &sb) == 0 && sb.st_size == 0) discard = true;
        goto out;
    }

    /* Unpack into a fresh extract/ (a crashed earlier unpack is simply redone). */
    if ((st = gtr_remove_tree(extract, err)) || (st = gtr_mkdirs(extract, err))) goto out;
    emit(&o, GTR_DOWNLOAD_EXTRACT, zipname, 0, dest);
    st = net_unzip(part, extract, o.progress, o.user, NULL, err);
    if (st == GTR_ERR_FORMAT) {
        /* A bad archive: do not resume it next time, download it afresh. */
        gtr_error_prefix(err, "%s: not a usable archive (removed; run again to download it afresh)", url);
        discard = true;
    }
    if (st) goto out;
    char rel[300];
    if ((st = pick_root(extract, rel, sizeof rel, err))) goto out;
    st = net_stage_commit(&stg, rel, o.force != 0, err);
out:
    if (stg.dir) net_stage_close(&stg, discard);
    if (s.curl) net_session_close(&s);
    free(url);
    free(dest);
    free(hint);
    free(part);
    free(extract);
    free(zipname);
    return st;
}
