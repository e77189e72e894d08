/* http.c — the connection layer of the server: accepting, reading requests, writing responses,
 * and the policies that keep hostile or slow clients from taking the server away from others.
 *
 * Why not libmicrohttpd: the server used it, but its own error answers (a malformed or negative
 * Content-Length, bad chunked encoding, a request line or head too large) are HTML compiled into
 * the library, with no hook to replace them, and it has no deadline for receiving a whole
 * request (its timeout is reset by every byte, so a client sending one byte every few seconds
 * holds a connection forever). The framing itself (http_parse.c) is small and strict; this file
 * owns the sockets.
 *
 * Threads: one acceptor; one thread per connection, which reads a request, calls the server's
 * handler (which may block on the encoder), writes the answer, and loops for the next request
 * on the same connection. Sockets are non-blocking and every wait is a poll() with a deadline:
 *   - idle: a connection waiting for the first byte of a request is closed after idle_timeout;
 *   - request: from its first byte, a request must arrive whole (head and body) within
 *     request_timeout, else 408 (a byte now and then does not extend it);
 *   - write: an answer must be taken by the client within request_timeout.
 * Capacity: at most max_connections connections and max_per_client from one address (429
 * beyond). When the table is full, a new connection takes the place of an idle one, else of the
 * one whose request has been arriving the longest (it is answered 503); only when every
 * connection has a complete request being served do newcomers wait in the kernel's queue until
 * one ends. So slow or idle clients can never lock out a new request.
 * Every answer the layer makes itself is the server's JSON error shape.
 *
 * Shutdown: gs_http_drain closes the listener and wakes every connection: idle ones close, one
 * receiving a request may finish until the drain deadline (then 503 shutting_down); the server
 * answers requests that start during the drain with 503. gs_http_abort shuts every socket. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { ST_IDLE = 0, ST_READING, ST_HANDLING };

typedef struct conn {
    gs_http *h;
    int fd;
    char peer[INET6_ADDRSTRLEN];
    uint64_t peer_hash; /* of peer, never 0 */
    int state;
    double since;  /* when the state began */
    bool evicted;  /* its place was given to a newcomer */
    struct conn *prev, *next;
    char *buf;     /* received bytes not yet used */
    size_t len, cap;
} conn;

struct gs_http {
    gs_http_options o;
    gs_http_ops ops;
    void *user;
    int listen_fd;
    int wake[2];   /* readable once draining: every waiting thread looks up */
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t mu;
    pthread_cond_t ended; /* a connection thread ended */
    conn *conns;
    size_t live;   /* connections holding a place (not evicted) */
    size_t threads;
    bool draining;
    double drain_deadline;
    pthread_attr_t attr;
};

static double now(void) { return gtr_now_seconds(); }

/* ---- small answers the layer writes itself ---------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

/* Wait for ev on fd (and the wake pipe when watch_wake) until deadline. 1: ready; 0: the
 * deadline passed; 2: woken (draining began); 3: *evicted became true (looked at every 200 ms,
 * so that an eviction leaves the socket untouched and the answer reaches the client); -1:
 * error. */
static int wait_fd_ev(gs_http *h, int fd, short ev, double deadline, bool watch_wake, const bool *evicted)
{
    for (;;) {
        if (evicted) {
            pthread_mutex_lock(&h->mu);
            bool e = *evicted;
            pthread_mutex_unlock(&h->mu);
            if (e) return 3;
        }
        double left = deadline - now();
        if (left <= 0) return 0;
        struct pollfd p[2] = {{fd, ev, 0}, {h->wake[0], POLLIN, 0}};
        if (evicted && left > 0.2) left = 0.2;
        int ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
        int r = poll(p, watch_wake ? 2 : 1, ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) continue; /* recheck the clock */
        if (p[0].revents) return 1;
        if (watch_wake && p[1].revents) return 2;
    }
}

static int wait_fd(gs_http *h, int fd, short ev, double deadline, bool watch_wake)
{
    return wait_fd_ev(h, fd, ev, deadline, watch_wake, NULL);
}

/* Send all of iov within deadline. */
static bool send_all(gs_http *h, int fd, struct iovec *iov, int n, double deadline)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
            if (wait_fd(h, fd, POLLOUT, deadline, false) != 1) return false;
            continue;
        }
        size_t k = (size_t)w;
        while (n > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return true;
}

/* The status line and headers of r (body length blen) into head. */
static size_t format_head(char *head, size_t cap, const gs_reply *r, size_t blen, bool close)
{
    int n = snprintf(head, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s",
                     r->status, reason(r->status), r->ctype ? r->ctype : "application/json", blen,
                     close ? "Connection: close\r\n" : "", r->allow ? "Allow: " : "",
                     r->allow ? r->allow : "", r->allow ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap) return 0;
    if (r->retry_after > 0) {
        int k = snprintf(head + n, cap - (size_t)n, "Retry-After: %d\r\n", r->retry_after);
        if (k < 0 || (size_t)(n + k) >= cap) return 0;
        n += k;
    }
    if ((size_t)n + 3 > cap) return 0;
    memcpy(head + n, "\r\n", 3);
    return (size_t)n + 2;
}

static bool send_reply(gs_http *h, int fd, const gs_reply *r, bool head_only, bool close, double deadline)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}\n";
    gs_reply fallback;
    const char *body = r->body.data;
    size_t blen = r->body.len;
    if (!body) { /* the handler could not even build its answer */
        memset(&fallback, 0, sizeof fallback);
        fallback.status = 500;
        r = &fallback;
        body = oom;
        blen = sizeof oom - 1;
    }
    char head[512];
    size_t hl = format_head(head, sizeof head, r, blen, close);
    if (!hl) return false;
    struct iovec iov[2] = {{head, hl}, {(void *)body, head_only ? 0 : blen}};
    return send_all(h, fd, iov, head_only || !blen ? 1 : 2, deadline);
}

/* After an answer that ends the connection while the client may still be sending: stop
 * writing, read and drop what comes for a moment, then close. Closing a socket with unread data
 * makes the kernel send a reset, which can destroy the answer before the client reads it. */
static void linger_close(gs_http *h, int fd, double deadline)
{
    shutdown(fd, SHUT_WR);
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_fd(h, fd, POLLIN, deadline, false) != 1) break;
        }
    }
    close(fd);
}

/* An answer to a connection the acceptor refuses (no thread for it): best effort and never
 * waiting (a client over its limit must not slow the acceptor down): what fits in the socket
 * is sent, what the client already sent is dropped, then the socket closes. */
static void refuse(gs_http *h, int fd, int status, const char *code, const char *msg)
{
    gs_reply r;
    memset(&r, 0, sizeof r);
    gs_reply_error(&r, status, NULL, code, "%s", msg);
    r.retry_after = 1;
    send_reply(h, fd, &r, false, true, now());
    gtr_buf_free(&r.body);
    shutdown(fd, SHUT_WR);
    char tmp[4096];
    while (recv(fd, tmp, sizeof tmp, MSG_DONTWAIT) > 0) {
    }
    close(fd);
}

/* ---- the connection table ------------------------------------------------------------------ */

static void set_state(conn *c, int st)
{
    pthread_mutex_lock(&c->h->mu);
    c->state = st;
    c->since = now();
    pthread_mutex_unlock(&c->h->mu);
}

static bool is_evicted(conn *c)
{
    pthread_mutex_lock(&c->h->mu);
    bool e = c->evicted;
    pthread_mutex_unlock(&c->h->mu);
    return e;
}

/* A connection idle, or with a request arriving, for less than this is not given up for a
 * newcomer (a client that has just connected, or is in the middle of a fast upload). */
#define EVICT_AFTER_S 0.05

/* (mu held) the connection to give up for a newcomer. Never one being served, nor an "idle" one
 * whose request is already waiting in its socket. Among the others: from the address holding the
 * most connections (so a client with many slow connections loses them before anyone else loses
 * one), idle before arriving, the oldest first. NULL when none qualifies. */
static conn *victim(gs_http *h)
{
    size_t cap = 16;
    while (cap < 2 * (h->live + 1)) cap *= 2;
    uint64_t *key = calloc(cap, sizeof *key);
    uint32_t *cnt = calloc(cap, sizeof *cnt);
    conn *best = NULL;
    uint32_t best_n = 0;
    double t = now();
    if (!key || !cnt) goto done;
    for (conn *c = h->conns; c; c = c->next) { /* connections per address */
        if (c->evicted) continue;
        size_t k = c->peer_hash & (cap - 1);
        while (key[k] && key[k] != c->peer_hash) k = (k + 1) & (cap - 1);
        key[k] = c->peer_hash;
        cnt[k]++;
    }
    for (conn *c = h->conns; c; c = c->next) {
        if (c->evicted || c->state == ST_HANDLING || t - c->since < EVICT_AFTER_S) continue;
        int pending = 0;
        if (c->state == ST_IDLE && ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0) continue;
        size_t k = c->peer_hash & (cap - 1);
        while (key[k] != c->peer_hash) k = (k + 1) & (cap - 1);
        uint32_t n = cnt[k];
        if (!best || n > best_n ||
            (n == best_n && (c->state < best->state || (c->state == best->state && c->since < best->since)))) {
            best = c;
            best_n = n;
        }
    }
done:
    free(key);
    free(cnt);
    return best;
}

static void *conn_main(void *arg);

static void *acceptor_main(void *arg)
{
    gs_http *h = arg;
    for (;;) {
        struct pollfd p[2] = {{h->listen_fd, POLLIN, 0}, {h->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break; /* draining */
        if (!p[0].revents) continue;
        /* every place taken by a request being served: leave newcomers in the kernel's queue
         * until one ends (a refusal before reading their request could reach them as a reset) */
        pthread_mutex_lock(&h->mu);
        bool full = h->live >= h->o.max_connections && !victim(h);
        pthread_mutex_unlock(&h->mu);
        if (full) {
            struct pollfd w = {h->wake[0], POLLIN, 0};
            poll(&w, 1, 10);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct pollfd w = {h->wake[0], POLLIN, 0};
                poll(&w, 1, 50); /* out of descriptors: let connections end */
            }
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char peer[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof peer);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof peer);
        pthread_mutex_lock(&h->mu);
        size_t same = 0;
        for (conn *c = h->conns; c; c = c->next) same += !c->evicted && !strcmp(c->peer, peer);
        if (same >= h->o.max_per_client) {
            pthread_mutex_unlock(&h->mu);
            refuse(h, fd, 429, "too_many_connections",
                   "too many connections from this address; close some or retry later");
            continue;
        }
        if (h->live >= h->o.max_connections) {
            conn *v = victim(h);
            if (!v) {
                pthread_mutex_unlock(&h->mu);
                refuse(h, fd, 503, "server_busy", "every connection is serving a request; retry later");
                continue;
            }
            v->evicted = true; /* its thread sees it within 200 ms: 503 if a request was arriving */
            h->live--;
        }
        conn *c = calloc(1, sizeof *c);
        char *buf = malloc(h->o.lim.max_head + 1);
        if (!c || !buf) {
            pthread_mutex_unlock(&h->mu);
            free(c);
            free(buf);
            refuse(h, fd, 503, "server_busy", "out of memory; retry later");
            continue;
        }
        c->h = h;
        c->fd = fd;
        memcpy(c->peer, peer, sizeof peer);
        c->peer_hash = gtr_fnv1a64(peer, strlen(peer), GTR_FNV_SEED) | 1;
        c->state = ST_IDLE;
        c->since = now();
        c->buf = buf;
        c->cap = h->o.lim.max_head + 1;
        c->next = h->conns;
        if (h->conns) h->conns->prev = c;
        h->conns = c;
        h->live++;
        h->threads++;
        pthread_t th;
        if (pthread_create(&th, &h->attr, conn_main, c) != 0) {
            h->conns = c->next;
            if (h->conns) h->conns->prev = NULL;
            h->live--;
            h->threads--;
            pthread_mutex_unlock(&h->mu);
            free(c->buf);
            free(c);
            refuse(h, fd, 503, "server_busy", "cannot start a thread for the connection; retry later");
            continue;
        }
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

/* ---- one connection --------------------------------------------------------------------------- */

typedef enum { RD_OK = 0, RD_EOF, RD_TIMEOUT, RD_DRAIN, RD_EVICTED, RD_ERROR } rd_result;

/* Receive into dst (up to cap bytes) before deadline; the drain deadline applies once draining.
 * *n receives the byte count. */
static rd_result recv_some(conn *c, char *dst, size_t cap, double deadline, size_t *n)
{
    gs_http *h = c->h;
    for (;;) {
        ssize_t r = recv(c->fd, dst, cap, 0);
        if (r > 0) {
            *n = (size_t)r;
            return RD_OK;
        }
        if (r == 0) return RD_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return RD_ERROR;
        pthread_mutex_lock(&h->mu);
        bool draining = h->draining;
        double dd = h->drain_deadline;
        pthread_mutex_unlock(&h->mu);
        double dl = draining && dd < deadline ? dd : deadline;
        int w = wait_fd_ev(h, c->fd, POLLIN, dl, !draining, &c->evicted);
        if (w == 2) continue; /* draining began: recompute the deadline */
        if (w == 3) return RD_EVICTED;
        if (w == 0) return draining && dd <= deadline ? RD_DRAIN : RD_TIMEOUT;
        if (w < 0) return RD_ERROR;
    }
}

/* Read a body of known length into q->body. */
static rd_result read_length_body(conn *c, gs_http_req *q, double deadline)
{
    gs_http *h = c->h;
    size_t want = (size_t)q->h.length, have = GTR_MIN(c->len, want);
    if (!(q->body.data = malloc(want + 1))) return RD_ERROR; /* exactly: the budget holds want */
    q->body.cap = want + 1;
    memcpy(q->body.data, c->buf, have);
    q->body.len = have;
    memmove(c->buf, c->buf + have, c->len - have);
    c->len -= have;
    while (q->body.len < want) {
        size_t n;
        rd_result r = recv_some(c, q->body.data + q->body.len, want - q->body.len, deadline, &n);
        if (r) return r;
        q->body.len += n;
    }
    q->body.data[q->body.len] = '\0';
    (void)h;
    return RD_OK;
}

/* Decode a chunked body into q->body; bytes after it stay in c->buf. Fills q->reply on a
 * malformed body (400), one too large (413) or one the server will not hold (grow says no). */
static rd_result read_chunked_body(conn *c, gs_http_req *q, double deadline)
{
    gs_http *h = c->h;
    gs_chunked ck;
    gs_chunked_init(&ck);
    for (;;) {
        size_t used, data;
        const char *why;
        int r = gs_chunked_feed(&ck, c->buf, c->len, &used, &data, &why);
        if (r < 0) {
            gs_reply_error(&q->reply, 400, NULL, "invalid_chunked_encoding", "malformed chunked body: %s", why);
            return RD_ERROR;
        }
        if (q->body.len + data > h->o.max_body) {
            gs_reply_error(&q->reply, 413, NULL, "body_too_large", "the body is larger than the limit of %zu bytes",
                           h->o.max_body);
            return RD_ERROR;
        }
        if (data && h->ops.grow && !h->ops.grow(h->user, q, q->body.len + data)) return RD_ERROR;
        if (gtr_buf_append(&q->body, c->buf, data, NULL)) return RD_ERROR;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        if (r == 1) break;
        size_t n;
        rd_result rr = recv_some(c, c->buf + c->len, c->cap - c->len, deadline, &n);
        if (rr) return rr;
        c->len += n;
    }
    if (gtr_buf_reserve(&q->body, 1, NULL)) return RD_ERROR;
    q->body.data[q->body.len] = '\0';
    return RD_OK;
}

/* Read and drop a body of known length (an early answer keeps the connection usable). */
static bool discard_body(conn *c, uint64_t len, double deadline)
{
    size_t have = (size_t)GTR_MIN((uint64_t)c->len, len);
    memmove(c->buf, c->buf + have, c->len - have);
    c->len -= have;
    len -= have;
    while (len > 0) {
        size_t n;
        if (recv_some(c, c->buf, (size_t)GTR_MIN((uint64_t)c->cap, len), deadline, &n)) return false;
        len -= n;
    }
    return true;
}

/* The request is over: tell the server, free its buffers. */
static void finish(gs_http *h, gs_http_req *q, bool begun, bool sent)
{
    if (h->ops.end) h->ops.end(h->user, q, begun, sent);
    gtr_buf_free(&q->reply.body);
    gtr_buf_free(&q->body);
    free(q->head);
    q->head = NULL;
}

/* Answer q (its reply must be filled), then tell the server. Returns whether the connection
 * may be used again. */
static bool answer(conn *c, gs_http_req *q, bool begun)
{
    gs_http *h = c->h;
    if (!q->reply.status) gs_reply_error(&q->reply, 500, NULL, NULL, "internal error: no response");
    pthread_mutex_lock(&h->mu);
    bool draining = h->draining;
    double dd = h->drain_deadline;
    pthread_mutex_unlock(&h->mu);
    if (draining) q->close = true;
    double deadline = now() + h->o.request_timeout_s;
    if (draining && dd + 1 < deadline) deadline = dd + 1; /* a moment past the drain deadline */
    bool head_only = q->h.method && !strcmp(q->h.method, "HEAD");
    bool sent = send_reply(h, c->fd, &q->reply, head_only, q->close, deadline);
    finish(h, q, begun, sent);
    return sent && !q->close;
}

/* One request on c. Returns whether the connection stays open for another. */
static bool one_request(conn *c)
{
    gs_http *h = c->h;
    gs_http_req q;
    memset(&q, 0, sizeof q);
    q.t0 = now();
    double deadline = q.t0 + h->o.request_timeout_s;
    set_state(c, ST_READING);
    /* the head */
    int pr;
    for (;;) {
        pr = gs_http_parse_head(c->buf, c->len, &h->o.lim, &q.h);
        if (pr) break;
        size_t n;
        rd_result r = c->len < c->cap ? recv_some(c, c->buf + c->len, c->cap - c->len, deadline, &n) : RD_ERROR;
        if (r == RD_OK) {
            c->len += n;
            continue;
        }
        if (r == RD_TIMEOUT || r == RD_DRAIN || r == RD_EVICTED) {
            if (r == RD_TIMEOUT)
                gs_reply_error(&q.reply, 408, NULL, "request_timeout",
                               "the request did not arrive whole within %u s", h->o.request_timeout_s);
            else
                gs_reply_error(&q.reply, 503, NULL, r == RD_DRAIN ? "shutting_down" : "server_busy",
                               r == RD_DRAIN ? "the server is shutting down" : "the server needed this connection for another client; retry");
            q.reply.retry_after = r == RD_TIMEOUT ? 0 : 1;
            q.close = true;
            answer(c, &q, false);
        }
        return false; /* closed, or an error: nothing to answer */
    }
    if (pr < 0) {
        gs_reply_error(&q.reply, q.h.status, NULL, q.h.code, "%s", q.h.message);
        q.close = true;
        answer(c, &q, false);
        return false;
    }
    /* the head's strings move to the request (the buffer is reused for the body) */
    if (!(q.head = malloc(q.h.head_len))) {
        gs_reply_oom(&q.reply);
        q.close = true;
        answer(c, &q, false);
        return false;
    }
    memcpy(q.head, c->buf, q.h.head_len);
#define REBASE(p) ((p) = (p) ? q.head + ((p) - c->buf) : NULL)
    REBASE(q.h.method);
    REBASE(q.h.path);
    REBASE(q.h.content_type);
#undef REBASE
    memmove(c->buf, c->buf + q.h.head_len, c->len - q.h.head_len);
    c->len -= q.h.head_len;
    q.close = !q.h.keep_alive;
    bool has_body = q.h.chunked || (q.h.has_length && q.h.length > 0);
    if (q.h.has_length && q.h.length > h->o.max_body) {
        gs_reply_error(&q.reply, 413, NULL, "body_too_large",
                       "the body has %llu bytes, more than the limit of %zu", (unsigned long long)q.h.length,
                       h->o.max_body);
        q.close = true; /* answered before the body: the connection cannot be reused */
        answer(c, &q, false);
        return false;
    }
    if (h->ops.begin) h->ops.begin(h->user, &q);
    if (q.reply.status) { /* answered from the head alone */
        if (has_body && !q.close) {
            if (q.h.chunked || q.h.expect_continue || !discard_body(c, q.h.length, deadline)) q.close = true;
        }
        return answer(c, &q, true);
    }
    if (q.h.expect_continue && has_body) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)cont, sizeof cont - 1};
        if (!send_all(h, c->fd, &iov, 1, deadline)) {
            finish(h, &q, true, false);
            return false;
        }
    }
    rd_result r = RD_OK;
    if (q.h.chunked) r = read_chunked_body(c, &q, deadline);
    else if (has_body) r = read_length_body(c, &q, deadline);
    else if (gtr_buf_reserve(&q.body, 1, NULL) == GTR_OK) q.body.data[0] = '\0';
    if (r != RD_OK) {
        if (!q.reply.status && r == RD_TIMEOUT)
            gs_reply_error(&q.reply, 408, NULL, "request_timeout", "the request did not arrive whole within %u s",
                           h->o.request_timeout_s);
        else if (!q.reply.status && (r == RD_DRAIN || r == RD_EVICTED))
            gs_reply_error(&q.reply, 503, NULL, r == RD_DRAIN ? "shutting_down" : "server_busy",
                           r == RD_DRAIN ? "the server is shutting down" : "the server needed this connection for another client; retry");
        q.close = true;
        if (q.reply.status) answer(c, &q, true);
        else finish(h, &q, true, false);
        return false;
    }
    set_state(c, ST_HANDLING);
    if (h->ops.handle) h->ops.handle(h->user, &q);
    return answer(c, &q, true);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    gs_http *h = c->h;
    bool lingering = false, used = false;
    for (;;) {
        if (c->len == 0) { /* idle until the first byte of the next request */
            set_state(c, ST_IDLE);
            pthread_mutex_lock(&h->mu);
            bool draining = h->draining;
            pthread_mutex_unlock(&h->mu);
            if (draining) break;
            int w = wait_fd_ev(h, c->fd, POLLIN, now() + h->o.idle_timeout_s, true, &c->evicted);
            bool ev = is_evicted(c);
            if (ev && !used) {
                /* a new connection whose request has not come yet: the answer waits for it in
                 * its socket (a connection idle after a request just closes, as usual) */
                gs_http_req q;
                memset(&q, 0, sizeof q);
                q.t0 = now();
                q.close = true;
                gs_reply_error(&q.reply, 503, NULL, "server_busy",
                               "the server needed this connection for another client; retry");
                q.reply.retry_after = 1;
                answer(c, &q, false);
                lingering = true;
                break;
            }
            if (w != 1 || ev) break;
            ssize_t n = recv(c->fd, c->buf, c->cap, 0);
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                break;
            }
            c->len = (size_t)n;
        }
        bool again = one_request(c);
        used = true;
        if (!again) {
            lingering = true;
            break;
        }
        if (is_evicted(c)) break;
    }
    pthread_mutex_lock(&h->mu);
    if (c->prev) c->prev->next = c->next;
    else h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (!c->evicted) h->live--;
    int fd = c->fd;
    c->fd = -1;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_lock(&h->mu);
    bool draining = h->draining;
    pthread_mutex_unlock(&h->mu);
    if (lingering) linger_close(h, fd, now() + (draining ? 0.25 : 2)); /* a shutdown does not wait long */
    else close(fd);
    free(c->buf);
    free(c);
    pthread_mutex_lock(&h->mu);
    h->threads--;
    pthread_cond_broadcast(&h->ended);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------------- */

gs_http *gs_http_start(int listen_fd, const gs_http_options *o, const gs_http_ops *ops, void *user,
                       gtr_error *err)
{
    gs_http *h = gtr_xcalloc(1, sizeof *h, "HTTP server", err);
    if (!h) return NULL;
    h->o = *o;
    h->ops = *ops;
    h->user = user;
    h->listen_fd = listen_fd;
    h->wake[0] = h->wake[1] = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->ended, NULL);
    pthread_attr_init(&h->attr);
    pthread_attr_setdetachstate(&h->attr, PTHREAD_CREATE_DETACHED);
    /* the handlers' deepest stacks (JSON parsing of bounded depth, tokenizing, search) fit
     * easily; untouched stack pages cost no memory */
    pthread_attr_setstacksize(&h->attr, (size_t)1 << 20);
    int fl = fcntl(listen_fd, F_GETFL);
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0 || fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0) {
        gtr_seterr(err, GTR_ERR_IO, "cannot start the HTTP server: %s", strerror(errno));
        gs_http_free(h);
        return NULL;
    }
    h->acceptor_started = true;
    return h;
}

void gs_http_drain(gs_http *h, double deadline)
{
    pthread_mutex_lock(&h->mu);
    bool first = !h->draining;
    h->draining = true;
    h->drain_deadline = deadline;
    pthread_mutex_unlock(&h->mu);
    if (!first) return;
    char b = 1;
    if (h->wake[1] >= 0 && write(h->wake[1], &b, 1) < 0) { /* cannot fail on a fresh pipe */
    }
    if (h->acceptor_started) {
        pthread_join(h->acceptor, NULL);
        h->acceptor_started = false;
    }
    if (h->listen_fd >= 0) close(h->listen_fd);
    h->listen_fd = -1;
}

size_t gs_http_wait(gs_http *h, double until)
{
    pthread_mutex_lock(&h->mu);
    while (h->threads > 0) {
        double left = until - now();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + GTR_MIN(left, 0.1);
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&h->ended, &h->mu, &ts);
    }
    size_t n = h->threads;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void gs_http_abort(gs_http *h)
{
    pthread_mutex_lock(&h->mu);
    for (conn *c = h->conns; c; c = c->next)
        if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&h->mu);
}

size_t gs_http_connections(gs_http *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->live;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void gs_http_free(gs_http *h)
{
    if (!h) return;
    gs_http_drain(h, now());
    while (gs_http_wait(h, now() + 1) > 0) gs_http_abort(h);
    if (h->wake[0] >= 0) close(h->wake[0]);
    if (h->wake[1] >= 0) close(h->wake[1]);
    pthread_attr_destroy(&h->attr);
    pthread_cond_destroy(&h->ended);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
