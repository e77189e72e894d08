/* http.c — one file over HTTP(S) with libcurl (the only file that uses it): resume a partial
 * file with a Range request, follow redirects (the hub sends large files to a CDN), check the
 * size the server announced (Content-Length / Content-Range / the hub's X-Linked-Size) and the
 * hub's SHA-256 (X-Linked-Etag), and retry dropped connections with back-off. */
#include "net.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- session -------------------------------------------------------------- */

gtr_status net_session_open(net_session *s, const gtr_download_options *opts, const char *token,
                            const char *hint, gtr_error *err)
{
    memset(s, 0, sizeof *s);
    s->opts = opts;
    s->hint = hint ? hint : "";
    /* Reference-counted and thread-safe in the libcurl versions we build against (>= 7.84);
     * paired with curl_global_cleanup in net_session_close, so nothing global outlives us. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "libcurl initialisation failed");
    CURL *c = curl_easy_init();
    if (!c) {
        curl_global_cleanup();
        return gtr_seterr(err, GTR_ERR_NOMEM, "libcurl: cannot create a handle");
    }
    s->curl = c;
    struct curl_slist *h = curl_slist_append(NULL, "User-Agent: gtr/" GTR_VERSION_STRING);
    if (h && token && *token) {
        size_t n = strlen(token) + 32;
        char *line = malloc(n);
        if (line) {
            snprintf(line, n, "Authorization: Bearer %s", token);
            struct curl_slist *h2 = curl_slist_append(h, line);
            free(line);
            h = h2 ? h2 : (curl_slist_free_all(h), NULL);
        } else {
            curl_slist_free_all(h);
            h = NULL;
        }
    }
    if (!h) {
        net_session_close(s);
        return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    }
    s->headers = h;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    /* A custom Authorization header is not forwarded when a redirect leaves the host (the
     * CDN must never see the hub token); that is libcurl's default, stated here on purpose. */
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
    /* A stalled transfer (no byte for stall_timeout_s) fails and is retried / resumed. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)opts->stall_timeout_s);
    return GTR_OK;
}

void net_session_close(net_session *s)
{
    if (s->curl) {
        curl_easy_cleanup(s->curl);
        curl_slist_free_all(s->headers);
        curl_global_cleanup();
    }
    memset(s, 0, sizeof *s);
}

char *net_url_escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- one transfer ------------------------------------------------------------ */

typedef struct xfer {
    net_session *s;
    const char *what;
    int fd;          /* file sink, or -1 */
    gtr_buf *mem;    /* memory sink, or NULL */
    size_t mem_limit;
    uint64_t offset; /* bytes already in the sink before this response's body */
    uint64_t written;
    /* the response being received (reset at each status line of the redirect chain) */
    int status;
    bool has_location;
    int64_t content_length, range_start, range_total;
    /* the final response (decided when its headers end) */
    bool final_seen;
    bool expected_known;
    uint64_t expected;
    /* the hub's headers, from whichever response of the chain carried them */
    int64_t linked_size;
    char linked_etag[80], commit[48], error_code[48], error_msg[256];
    char errbody[256];
    size_t errbody_n;
    /* set when a callback stops the transfer */
    gtr_status abort_code;
    char abort_msg[512];
} xfer;

static void copy_trim(char *dst, size_t cap, const char *src, size_t n)
{
    while (n && isspace((unsigned char)*src)) src++, n--;
    while (n && isspace((unsigned char)src[n - 1])) n--;
    if (n && src[0] == '"' && src[n - 1] == '"' && n >= 2) src++, n -= 2; /* quoted ETag */
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || v > INT64_MAX) return -1;
    return (int64_t)v;
}

static void xabort(xfer *x, gtr_status code, const char *fmt, ...) GTR_PRINTF(3, 4);
static void xabort(xfer *x, gtr_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->abort_msg, sizeof x->abort_msg, fmt, ap);
    va_end(ap);
    x->abort_code = code;
}

/* The final response's headers are complete: decide what its body means for the sink. */
static bool begin_final(xfer *x)
{
    x->final_seen = true;
    if (x->status == 200) {
        /* The server sends the whole file (it ignored or was not asked a Range): restart. */
        if (x->offset > 0 && x->fd >= 0) {
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                xabort(x, GTR_ERR_IO, "%s: cannot truncate the partial file: %s", x->what,
                       strerror(errno));
                return false;
            }
        }
        x->offset = 0;
        if (x->mem) x->mem->len = 0;
        if (x->content_length >= 0) x->expected_known = true, x->expected = (uint64_t)x->content_length;
    } else if (x->status == 206) {
        if (x->range_start != (int64_t)x->offset) {
            xabort(x, GTR_ERR_NETWORK, "%s: asked to resume at byte %llu, the server sent from %lld",
                   x->what, (unsigned long long)x->offset, (long long)x->range_start);
            return false;
        }
        if (x->range_total >= 0) x->expected_known = true, x->expected = (uint64_t)x->range_total;
    } else {
        return true; /* an error or 416: the body (if any) is only kept for the message */
    }
    if (x->linked_size >= 0) {
        if (x->expected_known && x->expected != (uint64_t)x->linked_size) {
            xabort(x, GTR_ERR_MISMATCH, "%s: size mismatch: the hub says %lld bytes, the server sends %llu",
                   x->what, (long long)x->linked_size, (unsigned long long)x->expected);
            return false;
        }
        x->expected_known = true;
        x->expected = (uint64_t)x->linked_size;
    }
    if (x->mem && x->expected_known && x->expected > x->mem_limit) {
        xabort(x, GTR_ERR_FORMAT, "%s: %llu bytes is more than expected for this file (limit %zu)",
               x->what, (unsigned long long)x->expected, x->mem_limit);
        return false;
    }
    return true;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t len = size * nitems;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        const char *sp = memchr(buf, ' ', len);
        x->status = sp ? atoi(sp + 1) : 0;
        x->has_location = false;
        x->content_length = x->range_start = x->range_total = -1;
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) { /* end of this response's headers */
        bool redirect = x->status >= 300 && x->status < 400 && x->has_location;
        if (x->status >= 200 && !redirect && !begin_final(x)) return 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t nlen = (size_t)(colon - buf);
    char val[512];
    copy_trim(val, sizeof val, colon + 1, len - nlen - 1);
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(buf, name, nlen))
    if (IS("content-length")) {
        x->content_length = parse_u64(val);
    } else if (IS("content-range")) {
        /* "bytes A-B/TOTAL", "bytes A-B/(star)", or with 416 "bytes (star)/TOTAL" */
        const char *p = val;
        if (!strncasecmp(p, "bytes", 5)) p += 5;
        while (*p == ' ') p++;
        if (*p != '*') x->range_start = parse_u64(p);
        const char *slash = strchr(p, '/');
        if (slash && slash[1] != '*') x->range_total = parse_u64(slash + 1);
    } else if (IS("location")) {
        x->has_location = true;
    } else if (IS("x-linked-size")) {
        x->linked_size = parse_u64(val);
    } else if (IS("x-linked-etag")) {
        snprintf(x->linked_etag, sizeof x->linked_etag, "%s", val);
    } else if (IS("x-repo-commit")) {
        snprintf(x->commit, sizeof x->commit, "%s", val);
    } else if (IS("x-error-code")) {
        snprintf(x->error_code, sizeof x->error_code, "%s", val);
    } else if (IS("x-error-message")) {
        snprintf(x->error_msg, sizeof x->error_msg, "%s", val);
    }
#undef IS
    return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t len = size * nmemb;
    if (!x->final_seen && !begin_final(x)) return 0;
    if (x->status != 200 && x->status != 206) { /* keep the start of an error page */
        size_t take = GTR_MIN(len, sizeof x->errbody - 1 - x->errbody_n);
        memcpy(x->errbody + x->errbody_n, p, take);
        x->errbody_n += take;
        x->errbody[x->errbody_n] = '\0';
        return len;
    }
    uint64_t done = x->offset + x->written + len;
    if (x->expected_known && done > x->expected) {
        xabort(x, GTR_ERR_MISMATCH, "%s: the server sent more than the %llu bytes it announced",
               x->what, (unsigned long long)x->expected);
        return 0;
    }
    if (x->mem) {
        if (done > x->mem_limit) {
            xabort(x, GTR_ERR_FORMAT, "%s: more than %zu bytes, larger than expected for this file",
                   x->what, x->mem_limit);
            return 0;
        }
        if (gtr_buf_append(x->mem, p, len, NULL)) {
            xabort(x, GTR_ERR_NOMEM, "%s: out of memory", x->what);
            return 0;
        }
    } else {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(x->fd, p + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                xabort(x, GTR_ERR_IO, "%s: cannot write the partial file: %s", x->what, strerror(errno));
                return 0;
            }
            off += (size_t)w;
        }
    }
    x->written += len;
    const gtr_download_options *o = x->s->opts;
    if (o->progress && o->progress(o->user, done, x->expected_known ? x->expected : 0)) {
        xabort(x, GTR_ERR_INTERRUPTED, "%s: download interrupted", x->what);
        return 0;
    }
    return len;
}

/* ---- classification and retries ------------------------------------------------- */

typedef enum { R_DONE, R_RETRY, R_RESTART, R_FAIL } outcome;

static void host_of(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* A short reason from the server for an HTTP error: the hub's X-Error-Message, else the first
 * printable line of the body. */
static const char *server_reason(xfer *x)
{
    if (x->error_msg[0]) return x->error_msg;
    char *b = x->errbody;
    b[strcspn(b, "\r\n")] = '\0';
    for (char *q = b; *q; q++)
        if ((unsigned char)*q < 0x20) return "";
    return strlen(b) <= 200 ? b : "";
}

static outcome classify(xfer *x, CURLcode rc, const char *url, const char *curl_msg, char *why,
                        size_t why_cap, gtr_error *err)
{
    net_session *s = x->s;
    if (x->abort_code == GTR_ERR_NETWORK) { /* resumed at the wrong offset: start over */
        snprintf(why, why_cap, "%s", x->abort_msg);
        return R_RESTART;
    }
    if (x->abort_code) {
        gtr_seterr(err, x->abort_code, "%s", x->abort_msg);
        return R_FAIL;
    }
    if (rc != CURLE_OK) {
        char host[256];
        host_of(url, host, sizeof host);
        const char *m = curl_msg[0] ? curl_msg : curl_easy_strerror(rc);
        switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_TOO_MANY_REDIRECTS:
            gtr_seterr(err, GTR_ERR_NETWORK, "%s: cannot download %s: %s (network failure reaching %s)%s%s",
                       x->what, url, m, host, s->hint[0] ? "; " : "", s->hint);
            return R_FAIL;
        default:
            snprintf(why, why_cap, "%s", m);
            return R_RETRY;
        }
    }
    int st = x->status;
    if (st == 200 || st == 206) {
        uint64_t have = x->offset + x->written;
        if (x->expected_known && have < x->expected) {
            snprintf(why, why_cap, "the connection closed after %llu of %llu bytes",
                     (unsigned long long)have, (unsigned long long)x->expected);
            return R_RETRY;
        }
        return R_DONE;
    }
    if (st == 416) {
        /* We asked for bytes past the end: either the partial file is already complete, or it
         * is longer than the file (a stale partial): start over. */
        int64_t total = x->range_total >= 0 ? x->range_total : x->linked_size;
        if (total >= 0 && (uint64_t)total == x->offset) {
            x->expected_known = true;
            x->expected = x->offset;
            return R_DONE;
        }
        snprintf(why, why_cap, "the partial file (%llu bytes) does not fit the file on the server",
                 (unsigned long long)x->offset);
        return R_RESTART;
    }
    const char *reason = server_reason(x);
    if (st == 404 || st == 410 || st == 401 || st == 403) {
        bool auth = (st == 401 || st == 403) && strcmp(x->error_code, "RepoNotFound") != 0;
        gtr_seterr(err, auth ? GTR_ERR_INVALID_ARG : GTR_ERR_NOT_FOUND, "%s: HTTP %d%s%s%s at %s%s", x->what,
                   st, reason[0] ? " (" : "", reason, reason[0] ? ")" : "", url,
                   auth ? " (a private or gated repository needs HF_TOKEN with access to it)" : "");
        return R_FAIL;
    }
    if (st == 408 || st == 429 || st >= 500) {
        snprintf(why, why_cap, "HTTP %d from the server%s%s", st, reason[0] ? ": " : "", reason);
        return R_RETRY;
    }
    gtr_seterr(err, GTR_ERR_NETWORK, "%s: unexpected HTTP %d%s%s at %s", x->what, st,
               reason[0] ? ": " : "", reason, url);
    return R_FAIL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void emit(net_session *s, gtr_download_event ev, const char *name, uint64_t size,
                 const char *detail)
{
    if (s->opts->on_event) s->opts->on_event(s->opts->user, ev, name, size, detail);
}

static bool is_sha256(const char *s)
{
    if (strlen(s) != 64) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s)) return false;
    return true;
}

/* The retry loop shared by the file and memory sinks. */
static gtr_status fetch(net_session *s, const char *url, const char *what, int fd, gtr_buf *mem,
                        size_t mem_limit, const char *part_path, net_result *res, gtr_error *err)
{
    CURL *c = s->curl;
    const gtr_download_options *o = s->opts;
    int retries = 0, restarts = 0, delay = o->retry_delay_ms;
    bool started = false, resumed = false;
    char errbuf[CURL_ERROR_SIZE];
    memset(res, 0, sizeof *res);
    for (;;) {
        xfer x;
        memset(&x, 0, sizeof x);
        x.s = s;
        x.what = what;
        x.fd = fd;
        x.mem = mem;
        x.mem_limit = mem_limit;
        x.linked_size = -1;
        x.content_length = x.range_start = x.range_total = -1;
        if (fd >= 0) {
            off_t end = lseek(fd, 0, SEEK_END);
            if (end < 0) return gtr_seterr(err, GTR_ERR_IO, "%s: %s", part_path, strerror(errno));
            x.offset = (uint64_t)end;
        } else {
            mem->len = 0;
        }
        if (!started) {
            started = true;
            resumed = x.offset > 0;
            emit(s, GTR_DOWNLOAD_START, what, x.offset, url);
        }
        char range[32];
        snprintf(range, sizeof range, "%llu-", (unsigned long long)x.offset);
        errbuf[0] = '\0';
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_RANGE, x.offset ? range : NULL);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        res->http_status = x.status;
        snprintf(res->commit, sizeof res->commit, "%s", x.commit);
        snprintf(res->error_code, sizeof res->error_code, "%s", x.error_code);
        char why[512] = "";
        outcome oc = classify(&x, rc, url, errbuf, why, sizeof why, err);
        if (oc == R_FAIL) return err ? err->code : GTR_ERR_NETWORK;
        if (oc == R_RESTART) { /* the partial data cannot be continued: drop it, once */
            if (restarts++ >= 1) return gtr_seterr(err, GTR_ERR_NETWORK, "%s: %s at %s", what, why, url);
            if (fd >= 0 && ftruncate(fd, 0) != 0)
                return gtr_seterr(err, GTR_ERR_IO, "%s: %s", part_path, strerror(errno));
            emit(s, GTR_DOWNLOAD_RETRY, what, 0, why);
            continue;
        }
        if (oc == R_RETRY) {
            uint64_t have = x.offset + x.written;
            if (x.written > 0) retries = 0, delay = o->retry_delay_ms; /* progress: fresh budget */
            if (retries >= o->max_retries) {
                char sofar[96];
                if (x.expected_known)
                    snprintf(sofar, sizeof sofar, "%llu of %llu bytes", (unsigned long long)have,
                             (unsigned long long)x.expected);
                else
                    snprintf(sofar, sizeof sofar, "%llu bytes", (unsigned long long)have);
                return gtr_seterr(err, GTR_ERR_NETWORK, "%s: download failed after %s (%s) at %s%s%s",
                                  what, sofar, why, url, fd >= 0 || s->hint[0] ? "; " : "",
                                  fd >= 0 ? "run the same command again to resume" : s->hint);
            }
            retries++;
            emit(s, GTR_DOWNLOAD_RETRY, what, have, why);
            sleep_ms(delay);
            delay = GTR_MIN(delay * 2, 30000);
            continue;
        }
        /* R_DONE: the sink holds x.expected bytes (or all the server sent when unknown). */
        uint64_t size = x.offset + x.written;
        if (fd >= 0 && fsync(fd) != 0)
            return gtr_seterr(err, GTR_ERR_IO, "%s: fsync failed: %s", part_path, strerror(errno));
        if (fd >= 0 && is_sha256(x.linked_etag)) {
            char hex[65];
            gtr_status st = net_sha256_file(part_path, hex, err);
            if (st) return st;
            if (strcasecmp(hex, x.linked_etag) != 0) {
                if (ftruncate(fd, 0) != 0)
                    return gtr_seterr(err, GTR_ERR_IO, "%s: %s", part_path, strerror(errno));
                if (resumed && restarts++ < 1) { /* a stale partial from an older version */
                    resumed = false;
                    emit(s, GTR_DOWNLOAD_RETRY, what, 0, "checksum mismatch after resuming; downloading again");
                    continue;
                }
                return gtr_seterr(err, GTR_ERR_MISMATCH,
                                  "%s: checksum mismatch: SHA-256 %s, the hub says %s (from %s)", what,
                                  hex, x.linked_etag, url);
            }
        }
        if (o->progress) o->progress(o->user, size, size);
        res->size = size;
        emit(s, GTR_DOWNLOAD_DONE, what, size, url);
        return GTR_OK;
    }
}

gtr_status net_fetch_file(net_session *s, const char *url, const char *what, const char *part_path,
                          net_result *res, gtr_error *err)
{
    int fd = open(part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot create: %s", part_path, strerror(errno));
    gtr_status st = fetch(s, url, what, fd, NULL, 0, part_path, res, err);
    close(fd);
    /* A wrong size or checksum leaves nothing worth resuming; a network failure keeps the
     * partial file for the next run. */
    if (st == GTR_ERR_MISMATCH || st == GTR_ERR_NOT_FOUND || st == GTR_ERR_INVALID_ARG) unlink(part_path);
    return st;
}

gtr_status net_fetch_mem(net_session *s, const char *url, const char *what, size_t limit,
                         gtr_buf *out, net_result *res, gtr_error *err)
{
    return fetch(s, url, what, -1, out, limit, NULL, res, err);
}
