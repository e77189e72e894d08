/* server.c — the HTTP side of `gtr serve` over GNU libmicrohttpd.
 *
 * Threading design: libmicrohttpd runs in thread-per-connection mode (one internal thread
 * accepts; each connection gets its own thread, which calls on_request). A handler may
 * therefore block: it reads the body, parses the JSON and tokenizes in its own thread (work
 * that scales with connections), queues the token ids with the batcher (batcher.c) and sleeps
 * on a condition variable until its vectors are ready, then formats the response. The one
 * batcher thread is the only user of the model. This keeps every handler a straight-line
 * function (no suspended-connection state machine) at the cost of a thread per open
 * connection, bounded by max_connections (libmicrohttpd refuses connections beyond it) and
 * idle_timeout_s; the work itself is bounded by the batcher's queue (503 beyond it).
 *
 * Limits are checked as early as the information exists: method, route and Content-Type on
 * the headers (the answer is sent once any body has been read, so the connection stays
 * usable), a declared Content-Length above max_body at once (413 before reading the body),
 * a chunked body when it grows past max_body (the rest is discarded, then 413).
 *
 * Graceful shutdown (gtr_server_shutdown): mark draining (requests that arrive on open
 * connections from now on get 503 and "Connection: close"), stop listening
 * (MHD_quiesce_daemon), wait until every admitted request has been answered (or
 * drain_timeout_s), then stop the daemon (closing idle keep-alive connections) and the
 * batcher. */
#include "server/server.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct gtr_server {
    gs_server s;
    struct MHD_Daemon *daemon;
    int listen_fd, port;
    char *model_name;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* in_flight reached 0 */
    size_t in_flight;
    bool draining, stopped;
    pthread_mutex_t stop_mu; /* one shutdown at a time */
};

typedef struct req {
    gs_route route;
    const char *method;
    const char *url;
    double t0;
    gtr_buf body;
    bool too_big;     /* the body went past max_body: discard the rest, then 413 */
    gs_reply reply;   /* status 0 until decided */
    bool close;       /* send Connection: close */
} req;

gtr_server_options gtr_server_default_options(void)
{
    gtr_server_options o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 8080;
    o.model_name = "gtr";
    o.method = GTR_SERVER_DENSE;
    o.fusion = gtr_fusion_default_options();
    o.alpha = 0.5;
    o.depth = 1000;
    o.max_k = 1000;
    o.max_batch_tokens = 16384;
    o.max_wait_ms = 5;
    o.queue = 256;
    o.max_body = (size_t)16 << 20;
    o.max_inputs = 2048;
    o.max_connections = 512;
    o.idle_timeout_s = 60;
    o.drain_timeout_s = 30;
    return o;
}

/* ---- routing --------------------------------------------------------------------------- */

static gs_route route_of(const char *url)
{
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings")) return GS_R_EMBEDDINGS;
    if (!strcmp(url, "/search") || !strcmp(url, "/v1/search")) return GS_R_SEARCH;
    if (!strcmp(url, "/health")) return GS_R_HEALTH;
    if (!strcmp(url, "/metrics")) return GS_R_METRICS;
    if (!strcmp(url, "/v1/models")) return GS_R_MODELS;
    return GS_R_OTHER;
}

static bool is_post_route(gs_route r) { return r == GS_R_EMBEDDINGS || r == GS_R_SEARCH; }

/* Content-Type absent or application/json (any parameters, any case) */
static bool json_content_type(const char *ct)
{
    if (!ct) return true;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0) return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

/* headers decide: method, route, content type, declared length */
static void check_headers(gtr_server *srv, struct MHD_Connection *c, req *q)
{
    bool get = !strcmp(q->method, MHD_HTTP_METHOD_GET) || !strcmp(q->method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(q->method, MHD_HTTP_METHOD_POST);
    gs_reply *r = &q->reply;
    pthread_mutex_lock(&srv->mu);
    bool draining = srv->draining;
    pthread_mutex_unlock(&srv->mu);
    if (draining) {
        gs_reply_error(r, 503, NULL, "shutting_down", "the server is shutting down");
        r->retry_after = 1;
        q->close = true;
        return;
    }
    if (q->route == GS_R_OTHER) {
        gs_reply_error(r, 404, NULL, "unknown_url", "Invalid URL (%s %s)", q->method, q->url);
        return;
    }
    bool want_post = is_post_route(q->route);
    if (want_post ? !post : !get) {
        gs_reply_error(r, 405, NULL, "method_not_allowed", "%s %s is not allowed; use %s", q->method, q->url,
                       want_post ? "POST" : "GET");
        r->allow = want_post ? "POST" : "GET, HEAD";
        return;
    }
    if (!want_post) return;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!json_content_type(ct)) {
        gs_reply_error(r, 415, NULL, "unsupported_media_type",
                       "Content-Type must be application/json, got '%s'", ct);
        return;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > srv->s.o.max_body) {
            gs_reply_error(r, 413, NULL, "body_too_large",
                           "the body has %llu bytes, more than the limit of %zu", n, srv->s.o.max_body);
            q->close = true; /* answered before the body: the connection cannot be reused */
        }
    }
}

/* ---- small routes ------------------------------------------------------------------------ */

static void health(gtr_server *srv, gs_reply *r)
{
    gs_server *s = &srv->s;
    size_t jobs, texts;
    gs_batcher_depth(s->batcher, &jobs, &texts);
    gtr_error e;
    gtr_status st = gtr_buf_printf(&r->body, &e, "{\"status\":\"ok\",\"model\":");
    if (!st) st = gs_json_str(&r->body, s->o.model_name, strlen(s->o.model_name), &e);
    if (!st) st = gtr_buf_printf(&r->body, &e, ",\"dim\":%d,\"max_len\":%d,\"queue_depth\":%zu", s->dim, s->max_len, jobs);
    if (!st && s->o.index) st = gtr_buf_printf(&r->body, &e, ",\"index_docs\":%zu", gtr_index_count(s->o.index));
    if (!st && s->o.bm25) st = gtr_buf_printf(&r->body, &e, ",\"bm25_docs\":%zu", gtr_bm25_num_docs(s->o.bm25));
    if (!st) st = gtr_buf_printf(&r->body, &e, "}\n");
    if (st) gs_reply_oom(r);
    else r->status = 200;
}

static void models(gtr_server *srv, gs_reply *r)
{
    gtr_error e;
    gtr_status st = gtr_buf_printf(&r->body, &e, "{\"object\":\"list\",\"data\":[{\"id\":");
    if (!st) st = gs_json_str(&r->body, srv->s.o.model_name, strlen(srv->s.o.model_name), &e);
    if (!st) st = gtr_buf_printf(&r->body, &e, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"gtr\"}]}\n");
    if (st) gs_reply_oom(r);
    else r->status = 200;
}

static void metrics(gtr_server *srv, struct MHD_Connection *c, gs_reply *r)
{
    gs_gauges g = {0};
    gs_batcher_depth(srv->s.batcher, &g.queue_depth, &g.queue_texts);
    pthread_mutex_lock(&srv->mu);
    g.in_flight = srv->in_flight;
    g.draining = srv->draining;
    pthread_mutex_unlock(&srv->mu);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    g.connections = di ? di->num_connections : 0;
    (void)c;
    gtr_error e;
    if (gs_metrics_format(&srv->s.metrics, &g, &r->body, &e)) {
        gs_reply_oom(r);
        return;
    }
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- the request cycle ------------------------------------------------------------------- */

static void dispatch(gtr_server *srv, struct MHD_Connection *c, req *q)
{
    gs_reply *r = &q->reply;
    if (q->too_big) {
        gs_reply_error(r, 413, NULL, "body_too_large", "the body is larger than the limit of %zu bytes",
                       srv->s.o.max_body);
        return;
    }
    switch (q->route) {
    case GS_R_EMBEDDINGS: gs_handle_embeddings(&srv->s, q->body.data ? q->body.data : "", q->body.len, r); break;
    case GS_R_SEARCH: gs_handle_search(&srv->s, q->body.data ? q->body.data : "", q->body.len, r); break;
    case GS_R_HEALTH: health(srv, r); break;
    case GS_R_METRICS: metrics(srv, c, r); break;
    case GS_R_MODELS: models(srv, r); break;
    default: gs_reply_error(r, 404, NULL, "unknown_url", "Invalid URL (%s %s)", q->method, q->url); break;
    }
    if (r->status == 0) gs_reply_error(r, 500, NULL, NULL, "internal error: no response");
}

static enum MHD_Result respond(gtr_server *srv, struct MHD_Connection *c, req *q)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}\n";
    gs_reply *r = &q->reply;
    struct MHD_Response *resp;
    if (r->body.data) {
        resp = MHD_create_response_from_buffer_with_free_callback(r->body.len, r->body.data, free);
        if (resp) r->body = (gtr_buf){0}; /* libmicrohttpd frees it */
    } else {
        r->status = 500;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype ? r->ctype : "application/json");
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (q->close) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);

    double secs = gtr_now_seconds() - q->t0;
    gs_metrics_request(&srv->s.metrics, q->route, r->status, secs, r->inputs, r->tokens);
    if (srv->s.o.log) {
        char line[512];
        snprintf(line, sizeof line, "%s %.200s %d %.1f ms %zu inputs %zu tokens", q->method, q->url, r->status,
                 secs * 1e3, r->inputs, r->tokens);
        srv->s.o.log(srv->s.o.log_user, line);
    }
    return ok;
}

/* the request brings no (more) texts to the batcher */
static void withdraw(gtr_server *srv, req *q)
{
    if (q->reply.announced) {
        q->reply.announced = false;
        gs_batcher_withdraw(srv->s.batcher);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    gtr_server *srv = cls;
    req *q = *con_cls;
    (void)version;
    if (!q) { /* headers complete: the first call */
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        q->t0 = gtr_now_seconds();
        q->method = method;
        q->url = url;
        q->route = route_of(url);
        *con_cls = q;
        pthread_mutex_lock(&srv->mu);
        srv->in_flight++;
        pthread_mutex_unlock(&srv->mu);
        check_headers(srv, c, q);
        /* answered before the body only when the body must not be read */
        if (q->reply.status == 413 || (q->reply.status == 503 && q->close)) return respond(srv, c, q);
        if (!q->reply.status && is_post_route(q->route)) { /* texts may be on their way */
            gs_batcher_announce(srv->s.batcher);
            q->reply.announced = true;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->reply.status || q->too_big) return MHD_YES; /* already decided: discard */
        if (q->body.len + n > srv->s.o.max_body) {
            q->too_big = true;
            withdraw(srv, q);
            gtr_buf_free(&q->body);
            return MHD_YES;
        }
        if (gtr_buf_append(&q->body, upload_data, n, NULL)) return MHD_NO;
        return MHD_YES;
    }
    if (!q->reply.status) dispatch(srv, c, q);
    withdraw(srv, q);
    return respond(srv, c, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    gtr_server *srv = cls;
    req *q = *con_cls;
    (void)c;
    (void)toe;
    if (!q) return;
    withdraw(srv, q); /* a client gone before its request was complete */
    gtr_buf_free(&q->body);
    gtr_buf_free(&q->reply.body);
    free(q);
    *con_cls = NULL;
    pthread_mutex_lock(&srv->mu);
    if (--srv->in_flight == 0) pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->mu);
}

/* ---- start and stop ---------------------------------------------------------------------- */

static int open_listener(const char *host, int port, int *bound, gtr_error *err)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "cannot listen on %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        gtr_seterr(err, GTR_ERR_IO, "cannot listen on %s:%d: %s", host, port, strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static gtr_status check_options(const gtr_server_options *o, gtr_server_method *method, gtr_error *err)
{
    if (!o->model) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_server_start: a model is required");
    if (o->port < 0 || o->port > 65535) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "port %d is out of range", o->port);
    if (o->max_batch_tokens < 1 || o->queue < 1 || o->max_inputs < 1 || o->max_body < 2 || o->max_k < 1 ||
        o->max_wait_ms < 0 || o->max_connections < 1 || !(o->alpha >= 0 && o->alpha <= 1))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "server options out of range (batch tokens, queue, inputs, k, connections >= 1; "
                          "body >= 2 bytes; wait >= 0; alpha in [0, 1])");
    *method = o->method;
    if (*method == GTR_SERVER_DENSE && !o->index && o->bm25) *method = GTR_SERVER_BM25;
    if ((o->index || o->bm25) && ((*method != GTR_SERVER_BM25 && !o->index) || (*method != GTR_SERVER_DENSE && !o->bm25)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "the %s search method needs %s",
                          *method == GTR_SERVER_HYBRID ? "hybrid" : *method == GTR_SERVER_BM25 ? "bm25" : "dense",
                          *method == GTR_SERVER_HYBRID ? "both a dense and a BM25 index"
                          : *method == GTR_SERVER_BM25 ? "a BM25 index" : "a dense index");
    if (o->index) {
        gtr_status st = gtr_index_check_model(o->index, o->model, err);
        if (st) return st;
    }
    return GTR_OK;
}

gtr_server *gtr_server_start(const gtr_server_options *opts, gtr_error *err)
{
    gtr_server_method method = GTR_SERVER_DENSE;
    if (!opts) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_server_start: NULL options"), NULL;
    if (check_options(opts, &method, err)) return NULL;
    gtr_server *srv = gtr_xcalloc(1, sizeof *srv, "server", err);
    if (!srv) return NULL;
    srv->listen_fd = -1;
    srv->s.o = *opts;
    srv->s.o.method = method;
    srv->s.o.host = opts->host ? opts->host : "127.0.0.1";
    srv->model_name = strdup(opts->model_name ? opts->model_name : "gtr");
    srv->s.o.model_name = srv->model_name;
    srv->s.dim = gtr_model_dim(opts->model);
    srv->s.max_len = gtr_model_max_len(opts->model);
    srv->s.tok = gtr_model_tokenizer(opts->model);
    srv->s.vocab = gtr_tokenizer_vocab_size(srv->s.tok);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->stop_mu, NULL);
    pthread_cond_init(&srv->idle, NULL);
    gs_metrics_init(&srv->s.metrics);
    if (!srv->model_name) {
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    srv->s.batcher = gs_batcher_start(opts->model, opts->max_batch_tokens, opts->max_wait_ms, opts->queue,
                                      &srv->s.metrics, err);
    if (!srv->s.batcher) goto fail;
    if ((srv->listen_fd = open_listener(srv->s.o.host, opts->port, &srv->port, err)) < 0) goto fail;
    srv->daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC, 0, NULL,
        NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)srv->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)opts->idle_timeout_s, MHD_OPTION_END);
    if (!srv->daemon) {
        gtr_seterr(err, GTR_ERR_IO, "cannot start the HTTP server on %s:%d", srv->s.o.host, srv->port);
        goto fail;
    }
    return srv;
fail:
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    srv->listen_fd = -1;
    srv->stopped = true;
    gtr_server_free(srv);
    return NULL;
}

int gtr_server_port(const gtr_server *s) { return s ? s->port : 0; }

void gtr_server_shutdown(gtr_server *srv)
{
    if (!srv) return;
    pthread_mutex_lock(&srv->stop_mu);
    if (srv->stopped) {
        pthread_mutex_unlock(&srv->stop_mu);
        return;
    }
    pthread_mutex_lock(&srv->mu);
    srv->draining = true;
    pthread_mutex_unlock(&srv->mu);
    if (srv->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(srv->daemon); /* no new connections */
        if (fd != MHD_INVALID_SOCKET) close(fd);
        srv->listen_fd = -1;
        /* admitted requests finish: the batcher keeps running until the daemon is stopped */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += (time_t)srv->s.o.drain_timeout_s;
        pthread_mutex_lock(&srv->mu);
        while (srv->in_flight > 0)
            if (pthread_cond_timedwait(&srv->idle, &srv->mu, &dl) == ETIMEDOUT) break;
        pthread_mutex_unlock(&srv->mu);
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    gs_batcher_free(srv->s.batcher);
    srv->s.batcher = NULL;
    srv->stopped = true;
    pthread_mutex_unlock(&srv->stop_mu);
}

void gtr_server_free(gtr_server *srv)
{
    if (!srv) return;
    gtr_server_shutdown(srv);
    gs_batcher_free(srv->s.batcher);
    gs_metrics_destroy(&srv->s.metrics);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->stop_mu);
    free(srv->model_name);
    free(srv);
}
