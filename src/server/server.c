/* server.c — `gtr serve`: routing, admission and graceful shutdown over the connection layer
 * (http.c).
 *
 * Each connection's thread parses and tokenizes its request, queues the token ids with the
 * batcher (batcher.c) and sleeps until its vectors are ready, then formats the answer; the
 * batcher's encoder workers (a gtr_context each) are the only users of the model's encoder,
 * and /search scores on the connection's thread meanwhile. Handlers are straight-line
 * functions.
 *
 * Limits are checked as early as the information exists: method, route and Content-Type on the
 * head (answered once any body has been read, so the connection stays usable), a declared
 * Content-Length above max_body at once (413 before reading the body).
 *
 * Memory is bounded by the options, not by what clients send (README, "Memory"): a request
 * holds, from a server-wide byte budget (max_pending_bytes), its body (from the head's
 * Content-Length, before a byte of it is read), its parsed JSON (estimated from a scan of the
 * body before parsing) and its answer (an upper bound computed before it is written), and from
 * a token budget (max_pending_tokens) the ids of its inputs; whatever does not fit is answered
 * 503 with Retry-After before it takes the memory. Tokenizing reads only what max_len can use
 * (gtr_tokenizer_encode), in at most a few requests at a time.
 *
 * Graceful shutdown (gtr_server_shutdown): stop listening; idle connections close; requests
 * that arrive from now on are answered 503 shutting_down; admitted requests may finish until
 * drain_timeout_s. Then the batcher gives up (queued texts dropped, the batch in progress
 * interrupted), so every request still waiting is answered 503 shutting_down, never a silently
 * closed connection; a moment later the remaining sockets are shut. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct gtr_server {
    gs_server s;
    gs_http *http;
    int port;
    char *model_name;
    pthread_mutex_t mu;
    size_t in_flight;
    bool draining, stopped;
    pthread_mutex_t stop_mu; /* one shutdown at a time */
};

gtr_server_options gtr_server_default_options(void)
{
    gtr_server_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.host = "127.0.0.1";
    o.port = 8080;
    o.model_name = "gtr";
    o.method = GTR_RETRIEVE_DENSE;
    o.fusion = gtr_fusion_default_options();
    o.alpha = 0.5;
    o.depth = 1000;
    o.max_k = 1000;
    o.max_hits = 100000;
    o.max_batch_tokens = 16384;
    o.max_wait_ms = 5;
    o.queue = 256;
    o.workers = 1;
    o.max_body = (size_t)16 << 20;
    o.max_inputs = 2048;
    o.max_pending_bytes = (size_t)256 << 20;
    o.max_pending_tokens = (size_t)1 << 20;
    o.max_connections = 512;
    o.max_client_connections = 64;
    o.idle_timeout_s = 60;
    o.request_timeout_s = 30;
    o.drain_timeout_s = 30;
    return o;
}

/* ---- budgets --------------------------------------------------------------------------- */

static bool budget_take(gs_budget *b, size_t n)
{
    size_t cur = atomic_load(&b->used);
    do {
        if (n > b->cap || cur > b->cap - n) return false;
    } while (!atomic_compare_exchange_weak(&b->used, &cur, cur + n));
    return true;
}

static void budget_give(gs_budget *b, size_t n) { atomic_fetch_sub(&b->used, n); }

bool gs_hold(gs_server *s, gs_reply *r, size_t bytes)
{
    if (!budget_take(&s->bytes, bytes)) {
        gs_reply_error(r, 503, NULL, "server_busy",
                       "the server is holding as much request data as it may (%zu bytes); retry later",
                       s->bytes.cap);
        r->retry_after = 1;
        return false;
    }
    r->held_bytes += bytes;
    return true;
}

bool gs_hold_tokens(gs_server *s, gs_reply *r, size_t tokens)
{
    if (!budget_take(&s->tokens, tokens)) {
        gs_reply_error(r, 503, NULL, "server_busy",
                       "the server is holding as many tokens as it may (%zu); retry later", s->tokens.cap);
        r->retry_after = 1;
        return false;
    }
    r->held_tokens += tokens;
    return true;
}

static void release(gs_server *s, gs_reply *r)
{
    budget_give(&s->bytes, r->held_bytes);
    budget_give(&s->tokens, r->held_tokens);
    r->held_bytes = r->held_tokens = 0;
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

/* the head decides: method, route, content type, room for the body */
static void on_begin(void *user, gs_http_req *q)
{
    gtr_server *srv = user;
    gs_reply *r = &q->reply;
    const char *method = q->h.method, *url = q->h.path;
    q->route = route_of(url);
    pthread_mutex_lock(&srv->mu);
    bool draining = srv->draining;
    srv->in_flight++;
    pthread_mutex_unlock(&srv->mu);
    if (draining) { /* answered once the body is read (then the connection closes) */
        gs_reply_error(r, 503, NULL, "shutting_down", "the server is shutting down");
        r->retry_after = 1;
        return;
    }
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    if (q->route == GS_R_OTHER) {
        gs_reply_error(r, 404, NULL, "unknown_url", "Invalid URL (%.100s %.200s)", method, url);
        return;
    }
    bool want_post = is_post_route((gs_route)q->route);
    if (want_post ? !post : !get) {
        gs_reply_error(r, 405, NULL, "method_not_allowed", "%.100s %.200s is not allowed; use %s", method, url,
                       want_post ? "POST" : "GET");
        r->allow = want_post ? "POST" : "GET, HEAD";
        return;
    }
    if (!want_post) return;
    const char *ct = q->h.content_type;
    if (!json_content_type(ct)) {
        gs_reply_error(r, 415, NULL, "unsupported_media_type", "Content-Type must be application/json, got '%.200s'",
                       ct);
        return;
    }
    /* the body's bytes, before any of them is read (when they do not fit, the body is read and
     * dropped before the 503, so a client that sends it all before reading still gets it) */
    if (q->h.has_length && !gs_hold(&srv->s, r, (size_t)q->h.length)) return;
    gs_batcher_announce(srv->s.batcher); /* texts may be on their way */
    r->announced = true;
}

static bool on_grow(void *user, gs_http_req *q, size_t total)
{
    /* a growing buffer briefly holds its old and its new copy */
    gtr_server *srv = user;
    size_t more = 2 * total > q->reply.held_bytes ? 2 * total - q->reply.held_bytes : 0;
    return gs_hold(&srv->s, &q->reply, more);
}

/* ---- small routes ------------------------------------------------------------------------ */

static void health(gtr_server *srv, gs_reply *r)
{
    gs_server *s = &srv->s;
    size_t jobs, texts;
    gs_batcher_depth(s->batcher, &jobs, &texts, NULL);
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

static void metrics(gtr_server *srv, gs_reply *r)
{
    gs_gauges g = {0};
    gs_batcher_depth(srv->s.batcher, &g.queue_depth, &g.queue_texts, &g.expected);
    pthread_mutex_lock(&srv->mu);
    g.in_flight = srv->in_flight;
    g.draining = srv->draining;
    pthread_mutex_unlock(&srv->mu);
    g.connections = gs_http_connections(srv->http);
    g.pending_bytes = atomic_load(&srv->s.bytes.used);
    g.pending_tokens = atomic_load(&srv->s.tokens.used);
    gtr_error e;
    if (gs_metrics_format(&srv->s.metrics, &g, &r->body, &e)) {
        gs_reply_oom(r);
        return;
    }
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- the request cycle ------------------------------------------------------------------- */

/* the request brings no (more) texts to the batcher */
static void withdraw(gtr_server *srv, gs_reply *r)
{
    if (r->announced) {
        r->announced = false;
        gs_batcher_withdraw(srv->s.batcher);
    }
}

static void on_handle(void *user, gs_http_req *q)
{
    gtr_server *srv = user;
    gs_reply *r = &q->reply;
    const char *body = q->body.data ? q->body.data : "";
    switch ((gs_route)q->route) {
    case GS_R_EMBEDDINGS: gs_handle_embeddings(&srv->s, body, q->body.len, r); break;
    case GS_R_SEARCH: gs_handle_search(&srv->s, body, q->body.len, r); break;
    case GS_R_HEALTH: health(srv, r); break;
    case GS_R_METRICS: metrics(srv, r); break;
    case GS_R_MODELS: models(srv, r); break;
    default: gs_reply_error(r, 404, NULL, "unknown_url", "Invalid URL (%.100s %.200s)", q->h.method, q->h.path); break;
    }
    withdraw(srv, r);
    if (r->status == 0) gs_reply_error(r, 500, NULL, NULL, "internal error: no response");
    pthread_mutex_lock(&srv->mu);
    if (srv->draining) q->close = true; /* the connection ends with this answer */
    pthread_mutex_unlock(&srv->mu);
}

static void on_end(void *user, gs_http_req *q, bool begun, bool sent)
{
    gtr_server *srv = user;
    gs_reply *r = &q->reply;
    withdraw(srv, r);
    release(&srv->s, r);
    if (begun) {
        pthread_mutex_lock(&srv->mu);
        srv->in_flight--;
        pthread_mutex_unlock(&srv->mu);
    }
    if (!r->status) return; /* the client left before an answer was due: nothing was answered */
    double secs = gtr_now_seconds() - q->t0;
    gs_route route = begun ? (gs_route)q->route : GS_R_OTHER;
    gs_metrics_request(&srv->s.metrics, route, r->status, secs, r->inputs, r->tokens);
    if (srv->s.o.log) {
        char line[512];
        snprintf(line, sizeof line, "%s %.200s %d %.1f ms %zu inputs %zu tokens%s", q->h.method ? q->h.method : "-",
                 q->h.path ? q->h.path : "-", r->status, secs * 1e3, r->inputs, r->tokens, sent ? "" : " (not delivered)");
        srv->s.o.log(srv->s.o.log_user, line);
    }
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

static gtr_status check_options(const gtr_server_options *o, gtr_retrieval_method *method, gtr_error *err)
{
    if (!o->model) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_server_start: a model is required");
    if (o->port < 0 || o->port > 65535) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "port %d is out of range", o->port);
    if (o->max_batch_tokens < 1 || o->queue < 1 || o->max_inputs < 1 || o->max_body < 2 || o->max_k < 1 ||
        o->max_hits < 1 || o->max_wait_ms < 0 || o->max_connections < 1 || o->max_client_connections < 1 ||
        o->request_timeout_s < 1 || o->idle_timeout_s < 1 || o->max_pending_bytes < o->max_body ||
        o->max_pending_tokens < 1 || !(o->alpha >= 0 && o->alpha <= 1) || o->workers < 0 ||
        o->workers > 1024)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "server options out of range (batch tokens, queue, inputs, k, hits, connections, "
                          "timeouts, pending tokens >= 1; body >= 2 bytes; pending bytes >= body; wait >= 0; "
                          "alpha in [0, 1]; workers in [0, 1024])");
    *method = o->method;
    if (*method == GTR_RETRIEVE_DENSE && !o->index && o->bm25) *method = GTR_RETRIEVE_BM25;
    if ((o->index || o->bm25) && ((*method != GTR_RETRIEVE_BM25 && !o->index) || (*method != GTR_RETRIEVE_DENSE && !o->bm25)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "the %s search method needs %s", gtr_retrieval_method_name(*method),
                          *method == GTR_RETRIEVE_HYBRID ? "both a dense and a BM25 index"
                          : *method == GTR_RETRIEVE_BM25 ? "a BM25 index" : "a dense index");
    if (o->index) {
        gtr_status st = gtr_index_check_model(o->index, o->model, err);
        if (st) return st;
    }
    return GTR_OK;
}

gtr_server *gtr_server_start(const gtr_server_options *opts, gtr_error *err)
{
    gtr_retrieval_method method = GTR_RETRIEVE_DENSE;
    if (!opts) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_server_start: NULL options"), NULL;
    gtr_server_options given = gtr_server_default_options();
    gtr_fusion_options fusion = gtr_fusion_default_options();
    if (gtr_options_take(&given, sizeof given, opts, "gtr_server_start", err) ||
        gtr_options_take(&fusion, sizeof fusion, &given.fusion, "gtr_server_start: fusion", err))
        return NULL;
    given.fusion = fusion;
    opts = &given;
    if (check_options(opts, &method, err)) return NULL;
    gtr_server *srv = gtr_xcalloc(1, sizeof *srv, "server", err);
    if (!srv) return NULL;
    srv->s.o = *opts;
    srv->s.o.method = method;
    srv->s.o.host = opts->host ? opts->host : "127.0.0.1";
    srv->model_name = strdup(opts->model_name ? opts->model_name : "gtr");
    srv->s.o.model_name = srv->model_name;
    srv->s.dim = gtr_model_dim(opts->model);
    srv->s.max_len = gtr_model_max_len(opts->model);
    srv->s.tok = gtr_model_tokenizer(opts->model);
    srv->s.vocab = gtr_model_vocab_size(opts->model);
    srv->s.bytes.cap = opts->max_pending_bytes;
    srv->s.tokens.cap = opts->max_pending_tokens;
    int slots = 2 * gtr_cpu_cores();
    sem_init(&srv->s.tokenize_slots, 0, (unsigned)(slots < 4 ? 4 : slots));
    srv->s.have_slots = true;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->stop_mu, NULL);
    gs_metrics_init(&srv->s.metrics);
    int fd = -1;
    if (!srv->model_name) {
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    srv->s.batcher = gs_batcher_start(opts->model, opts->workers, opts->max_batch_tokens, opts->max_wait_ms, opts->queue,
                                      &srv->s.metrics, err);
    if (!srv->s.batcher) goto fail;
    if (opts->index || opts->bm25) {
        /* /search: the library's retriever; the batcher encodes the queries, so no model */
        gtr_retriever_options ro = gtr_retriever_default_options();
        ro.index = opts->index;
        ro.ann = opts->ann;
        ro.bm25 = opts->bm25;
        if (!(srv->s.retriever = gtr_retriever_open(&ro, err))) goto fail;
    }
    if ((fd = open_listener(srv->s.o.host, opts->port, &srv->port, err)) < 0) goto fail;
    gs_http_options ho = {opts->max_connections, opts->max_client_connections, opts->idle_timeout_s,
                          opts->request_timeout_s, opts->max_body, {GS_MAX_REQUEST_LINE, GS_MAX_HEAD}};
    gs_http_ops ops = {on_begin, on_grow, on_handle, on_end};
    if (!(srv->http = gs_http_start(fd, &ho, &ops, srv, err))) goto fail;
    return srv;
fail:
    if (fd >= 0 && !srv->http) close(fd);
    srv->stopped = true;
    gtr_server_free(srv);
    return NULL;
}

int gtr_server_port(const gtr_server *s) { return s ? s->port : 0; }

#define SHUTDOWN_RECV_GRACE_S 0.25

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
    double deadline = gtr_now_seconds() + srv->s.o.drain_timeout_s;
    if (srv->http) {
        /* no new connections; idle ones close. Requests still being received are cut a moment
         * after the deadline, once the batcher has given up: cut at the same instant, a stalled
         * upload the batcher was waiting for could release it to start the queued work just
         * as shutdown abandons it (a 200 where every waiting request gets 503; test_server's
         * test_shutdown_abandons_work, under load) */
        gs_http_drain(srv->http, deadline + SHUTDOWN_RECV_GRACE_S);
        if (gs_http_wait(srv->http, deadline) > 0) {
            /* past the deadline: waiting requests are answered 503, their work abandoned */
            gs_batcher_abort(srv->s.batcher);
            if (gs_http_wait(srv->http, deadline + 1.5) > 0) gs_http_abort(srv->http);
            gs_http_wait(srv->http, deadline + 1e9);
        }
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
    gs_http_free(srv->http);
    gs_batcher_free(srv->s.batcher);
    gtr_retriever_free(srv->s.retriever);
    gs_metrics_destroy(&srv->s.metrics);
    if (srv->s.have_slots) sem_destroy(&srv->s.tokenize_slots);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->stop_mu);
    free(srv->model_name);
    free(srv);
}
