/*
 * net.h — internal interface of the download layer: one resumable HTTP(S) transfer
 * (http.c, the only user of libcurl), safe zip extraction (unzip.c, the only user of libzip),
 * SHA-256 (sha256.c) and the staging-directory helpers (staging.c) that make a downloaded
 * directory appear atomically. hub.c and dataset.c build the public calls from these.
 */
#ifndef GTR_NET_H
#define GTR_NET_H

#include "core/core.h"

/* ---- HTTP ---------------------------------------------------------------- */

/* A connection context reused across the files of one pull (keep-alive to the hub and CDN). */
typedef struct net_session {
    void *curl;                        /* CURL * */
    void *headers;                     /* struct curl_slist *: User-Agent, Authorization */
    const gtr_download_options *opts;  /* resolved options (callbacks, retries, timeouts) */
    const char *hint;                  /* appended to network-failure messages: what to try */
} net_session;

/* token may be NULL/"" (no Authorization header). hint is kept by pointer. */
gtr_status net_session_open(net_session *s, const gtr_download_options *opts, const char *token,
                            const char *hint, gtr_error *err);
void net_session_close(net_session *s);

/* What the server said about a file, gathered across the redirect chain. */
typedef struct net_result {
    uint64_t size;       /* bytes of the complete file */
    int http_status;     /* status of the final response */
    char commit[48];     /* X-Repo-Commit (hub), "" if absent */
    char error_code[48]; /* X-Error-Code (hub: RepoNotFound, EntryNotFound, ...), "" if absent */
} net_result;

/* Download url into part_path, continuing a partial file left there by an earlier attempt
 * (HTTP Range), retrying dropped connections, checking the size against Content-Length /
 * Content-Range / X-Linked-Size and the SHA-256 against the hub's X-Linked-Etag when it is
 * one. On success part_path holds the whole file, fsync'd. what names the file in messages
 * and events. Errors: GTR_ERR_NOT_FOUND (404/410; res->error_code tells repo from file),
 * GTR_ERR_INVALID_ARG (401/403: access), GTR_ERR_MISMATCH (size/checksum: the partial file is
 * removed), GTR_ERR_NETWORK (retries exhausted: the partial file is kept for the next run),
 * GTR_ERR_INTERRUPTED (progress callback), GTR_ERR_IO (local file). */
gtr_status net_fetch_file(net_session *s, const char *url, const char *what, const char *part_path,
                          net_result *res, gtr_error *err);
/* The same into memory (small files; at most limit bytes), no resume. */
gtr_status net_fetch_mem(net_session *s, const char *url, const char *what, size_t limit,
                         gtr_buf *out, net_result *res, gtr_error *err);

/* Percent-encode s for a URL path: every byte but unreserved ones (and '/' when keep_slash).
 * Returns a malloc'd string (NULL on OOM). */
char *net_url_escape(const char *s, bool keep_slash);

/* ---- SHA-256 ------------------------------------------------------------- */

typedef struct net_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} net_sha256;
void net_sha256_init(net_sha256 *c);
void net_sha256_update(net_sha256 *c, const void *data, size_t len);
void net_sha256_final(net_sha256 *c, uint8_t out[32]);
/* SHA-256 of a whole file as 64 lowercase hex digits + NUL. */
gtr_status net_sha256_file(const char *path, char hex[65], gtr_error *err);

/* ---- zip ------------------------------------------------------------------ */

/* Extract every entry of zip_path under dest_dir (which must exist and be empty): directories
 * and regular files only; names that are absolute, contain "..", or would collide are refused
 * before anything is written; CRCs are checked. progress gets uncompressed bytes. On error
 * dest_dir may hold a partial tree: the caller removes it. */
gtr_status net_unzip(const char *zip_path, const char *dest_dir, gtr_progress_fn progress,
                     void *user, uint64_t *total_bytes, gtr_error *err);
/* True if name is a safe relative path: not empty, no leading '/', no "." or ".." or empty
 * component (a trailing '/' is allowed when allow_dir), no control characters. */
bool net_safe_relpath(const char *name, bool allow_dir);

/* ---- staging directories --------------------------------------------------- */

/* "<dest>.partial" holds an unfinished download: a lock, the partial files, and the tree that
 * becomes <dest> by one rename when complete. */
typedef struct net_stage {
    char *dest;    /* final path */
    char *dir;     /* <dest>.partial */
    int lock_fd;   /* flock'ed <dest>.partial/.lock: one download per destination at a time */
} net_stage;

/* Create (or reopen, to resume) the staging directory and lock it. */
gtr_status net_stage_open(net_stage *st, const char *dest, gtr_error *err);
/* Path inside the staging directory (malloc'd; NULL on OOM). */
char *net_stage_path(const net_stage *st, const char *rel);
/* Move <stage>/<rel> to dest (replacing an existing dest when force), fsync the parent, and
 * remove the staging directory. */
gtr_status net_stage_commit(net_stage *st, const char *rel, bool force, gtr_error *err);
/* Unlock; remove the staging directory when discard (nothing worth resuming). */
void net_stage_close(net_stage *st, bool discard);

/* 0: path absent (or an empty directory, which a rename can replace), 1: exists, -1: exists
 * and is not a directory. */
int net_dest_state(const char *path);

/* Fill unset fields of opts from defaults (and NULL opts from gtr_download_default_options). */
gtr_status net_resolve_options(const gtr_download_options *opts, gtr_download_options *out,
                               gtr_error *err);

#endif /* GTR_NET_H */
