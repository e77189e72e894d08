/*
 * server.h — internals of `gtr serve`, one concern per file:
 *   server.c     routing, admission (memory budgets), graceful shutdown
 *   http.c       connections: accept, read requests, write answers, deadlines, client limits
 *   http_parse.c HTTP/1.1 request framing (head, chunked bodies), pure functions
 *   batcher.c    the dynamic batcher: a bounded queue of tokenized texts, N encoder workers
 *   inputs.c     request inputs (strings or token ids) to token ids, truncation policy
 *   embeddings.c POST /v1/embeddings
 *   search.c     POST /search (dense, BM25, hybrid)
 *   metrics.c    counters and histograms, Prometheus text exposition
 *   jsonw.c      JSON output: escaped strings, float32 that round-trip, base64, errors
 */
#ifndef GTR_SERVER_INTERNAL_H
#define GTR_SERVER_INTERNAL_H

#include "core/core.h"

#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

/* ---- replies ------------------------------------------------------------------------- */

/* What a route handler answers; server.c turns it into an HTTP response. */
typedef struct gs_reply {
    int status;        /* HTTP status */
    gtr_buf body;      /* malloc'd */
    const char *ctype; /* Content-Type (NULL: application/json) */
    int retry_after;   /* seconds, > 0 adds Retry-After */
    const char *allow; /* 405: the Allow header */
    size_t inputs;     /* texts in the request (access log) */
    size_t tokens;     /* tokens encoded (metrics, access log) */
    bool announced;    /* counted by the batcher as on its way (server.c sets it; gs_encode
                        * or server.c clears it) */
    size_t held_bytes; /* of the server's byte budget (body, parsed JSON, answer): gs_hold */
    size_t held_tokens;
} gs_reply;

/* An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}. type is
 * "invalid_request_error" below 500, else "server_error"; param and code may be NULL. */
void gs_reply_error(gs_reply *r, int status, const char *param, const char *code,
                    const char *fmt, ...) GTR_PRINTF(5, 6);
/* The reply body could not be built: a plain 500 (no allocation needed beyond the buffer). */
void gs_reply_oom(gs_reply *r);
/* The answer could not be written (e: out of memory, or a value JSON cannot carry): 500. */
void gs_reply_failed(gs_reply *r, const gtr_error *e);

/* ---- HTTP/1.1 request framing (http_parse.c) ------------------------------------------- */

typedef struct gs_http_limits {
    size_t max_line; /* request line (414 beyond) */
    size_t max_head; /* request line and header fields together (431 beyond) */
} gs_http_limits;

typedef struct gs_http_head {
    int status;                 /* an error: its HTTP status, code and message (static text) */
    const char *code, *message;
    size_t skipped;             /* empty lines before the request line */
    size_t head_len;            /* bytes of the head, its empty line included */
    const char *method, *path;  /* NUL-terminated inside the buffer; path without the query */
    int minor;                  /* HTTP/1.minor */
    bool keep_alive, chunked, has_length, expect_continue;
    uint64_t length;            /* Content-Length (UINT64_MAX when it overflows) */
    const char *content_type;   /* NULL when absent */
} gs_http_head;
/* Parse the request head at the start of buf[0..len) (NUL-terminates its parts in place once it
 * is complete). 1: complete; 0: more bytes needed; -1: malformed (h->status/code/message). */
int gs_http_parse_head(char *buf, size_t len, const gs_http_limits *lim, gs_http_head *h);

/* Chunked transfer coding, decoded incrementally. */
typedef struct gs_chunked {
    int state;
    uint64_t remaining;
    unsigned digits;
    size_t line;
} gs_chunked;
void gs_chunked_init(gs_chunked *c);
/* Decode buf[0..len): the data bytes are moved to buf[0..*data_len); *consumed bytes were used.
 * 1: the body is complete (bytes after *consumed belong to the next request); 0: more needed;
 * -1: malformed (*why). */
int gs_chunked_feed(gs_chunked *c, char *buf, size_t len, size_t *consumed, size_t *data_len,
                    const char **why);

/* ---- connections (http.c) ------------------------------------------------------------------ */

typedef struct gs_http gs_http;

/* A request as the connection layer hands it to the server. */
typedef struct gs_http_req {
    gs_http_head h; /* method, path, headers that matter (strings in head) */
    char *head;     /* a copy of the request head */
    gtr_buf body;   /* the whole body, NUL-terminated (handle only) */
    double t0;      /* its first byte arrived */
    bool close;     /* the connection ends after the answer */
    gs_reply reply; /* status 0 until decided */
    int route;      /* the server's */
} gs_http_req;

typedef struct gs_http_ops {
    /* The head is in: decide what can be decided now (fill q->reply to answer without the body;
     * set q->close to end the connection). */
    void (*begin)(void *user, gs_http_req *q);
    /* A chunked body grew to total bytes: false (q->reply filled) to refuse it. */
    bool (*grow)(void *user, gs_http_req *q, size_t total);
    /* The body is complete: fill q->reply. */
    void (*handle)(void *user, gs_http_req *q);
    /* The request is over (begun: begin was called; sent: the answer went out). */
    void (*end)(void *user, gs_http_req *q, bool begun, bool sent);
} gs_http_ops;

typedef struct gs_http_options {
    unsigned max_connections, max_per_client;
    unsigned idle_timeout_s, request_timeout_s;
    size_t max_body;
    gs_http_limits lim;
} gs_http_options;

/* Serve on listen_fd (taken over: closed by gs_http_drain). */
gs_http *gs_http_start(int listen_fd, const gs_http_options *o, const gs_http_ops *ops, void *user,
                       gtr_error *err);
/* Stop accepting; idle connections close; requests still arriving end at deadline (503). */
void gs_http_drain(gs_http *h, double deadline);
/* Wait until every connection has ended or until (monotonic seconds); connections left. */
size_t gs_http_wait(gs_http *h, double until);
/* Shut every connection's socket: their threads end promptly. */
void gs_http_abort(gs_http *h);
size_t gs_http_connections(gs_http *h);
/* Drain at once, end every connection, free. */
void gs_http_free(gs_http *h);

/* ---- JSON output (jsonw.c) --------------------------------------------------------------- */

/* Append s as a JSON string literal; invalid UTF-8 becomes U+FFFD, so any bytes (a snippet
 * cut mid-character, an odd document id) give valid JSON. */
gtr_status gs_json_str(gtr_buf *b, const char *s, size_t len, gtr_error *err);
/* Append a float32 with %.9g, which reads back to the same float32 (the text `gtr embed
 * --format jsonl` writes); GTR_ERR_INTERNAL when it is not finite (JSON has no such number). */
gtr_status gs_json_f32(gtr_buf *b, float v, gtr_error *err);
/* Append the base64 (RFC 4648, padded) of n bytes. */
gtr_status gs_base64(gtr_buf *b, const void *data, size_t n, gtr_error *err);

/* ---- metrics (metrics.c) ------------------------------------------------------------------ */

typedef enum gs_route {
    GS_R_EMBEDDINGS = 0,
    GS_R_SEARCH,
    GS_R_HEALTH,
    GS_R_METRICS,
    GS_R_MODELS,
    GS_R_OTHER, /* unknown routes share one label (bounded label cardinality) */
    GS_R_COUNT
} gs_route;

#define GS_LAT_BUCKETS 14
#define GS_BATCH_BUCKETS 12
#define GS_STATUS_KINDS 16

typedef struct gs_counters {
    uint64_t requests[GS_R_COUNT][GS_STATUS_KINDS];
    uint64_t lat_count[GS_R_COUNT], lat_bucket[GS_R_COUNT][GS_LAT_BUCKETS];
    double lat_sum[GS_R_COUNT];
    uint64_t inputs, tokens, rejected;
    uint64_t batches, batch_inputs_bucket[GS_BATCH_BUCKETS], batch_inputs_sum;
    uint64_t batch_tokens_sum, batch_requests_sum;
    double encode_seconds;
} gs_counters;

typedef struct gs_metrics {
    pthread_mutex_t mu;
    gs_counters c;
} gs_metrics;

void gs_metrics_init(gs_metrics *m);
void gs_metrics_destroy(gs_metrics *m);
void gs_metrics_request(gs_metrics *m, gs_route route, int status, double seconds,
                        size_t inputs, size_t tokens);
void gs_metrics_batch(gs_metrics *m, size_t inputs, size_t tokens, size_t requests,
                      double seconds);
/* Gauges are read by the caller and passed in. */
typedef struct gs_gauges {
    size_t queue_depth, queue_texts, expected, in_flight, connections, pending_bytes, pending_tokens;
    int draining;
} gs_gauges;
gtr_status gs_metrics_format(gs_metrics *m, const gs_gauges *g, gtr_buf *out, gtr_error *err);

/* ---- the batcher (batcher.c) -------------------------------------------------------------- */

/* One request's texts, already tokenized. The caller owns ids and out and keeps them alive
 * until gs_batcher_wait returns. */
typedef struct gs_job {
    size_t n;                 /* texts */
    const int32_t *const *ids;
    const size_t *n_ids;
    float *out;               /* [n * dim] */
    /* batcher state */
    size_t next;              /* first text not yet in a batch */
    size_t done;              /* texts encoded */
    bool finished;
    gtr_status status;
    gtr_error err;
    double t_queued;
    pthread_cond_t cv;
    struct gs_job *link;      /* pending list */
} gs_job;

typedef struct gs_batcher gs_batcher;

/* workers: encoder threads, each with a gtr_context over m (the weights are shared). */
gs_batcher *gs_batcher_start(gtr_model *m, int workers, size_t max_batch_tokens, int max_wait_ms,
                             size_t queue_cap, gs_metrics *metrics, gtr_error *err);
/* Stop after the queued work is done; join the workers. */
void gs_batcher_free(gs_batcher *b);
/* Give up: drop queued texts, interrupt the batch being encoded, fail every waiting job with
 * GTR_ERR_INTERRUPTED; later submits say CLOSED. */
void gs_batcher_abort(gs_batcher *b);
/* A request that may bring texts has started (its headers are in): while any announced request
 * has not been submitted or withdrawn, the batcher keeps waiting (up to max_wait_ms) for it;
 * when none is on its way, waiting could not fill the batch, so it encodes at once. */
void gs_batcher_announce(gs_batcher *b);
void gs_batcher_withdraw(gs_batcher *b);
typedef enum { GS_SUBMIT_OK = 0, GS_SUBMIT_FULL, GS_SUBMIT_CLOSED } gs_submit_result;
/* Queue a job (its ids/n_ids/out/n filled); announced: the request was announced (it no longer
 * counts as on its way, whatever the result). FULL when `queue` jobs are already waiting. */
gs_submit_result gs_batcher_submit(gs_batcher *b, gs_job *job, bool announced);
/* Block until the job's texts are encoded; returns its status (err filled on failure). */
gtr_status gs_batcher_wait(gs_batcher *b, gs_job *job, gtr_error *err);
/* Jobs admitted and not finished; texts not yet encoded; announced requests not yet submitted
 * or withdrawn (expected may be NULL). */
void gs_batcher_depth(gs_batcher *b, size_t *jobs, size_t *texts, size_t *expected);

/* ---- inputs (inputs.c) -------------------------------------------------------------------- */

/* Token ids of a request's inputs, with the model's truncation (or refusal: no_truncate). */
typedef struct gs_inputs {
    size_t n;
    gtr_ids *seq;          /* [n] the ids of each input (with </s>) */
    const int32_t **ids;   /* [n] seq[i].ids, as the batcher takes them */
    size_t *n_ids;         /* [n] seq[i].n */
    size_t tokens;         /* sum of n_ids */
} gs_inputs;
void gs_inputs_free(gs_inputs *in);

/* ---- the server state shared by the route handlers ---------------------------------------- */

/* A server-wide allowance (bytes or tokens held by requests at once). */
typedef struct gs_budget {
    atomic_size_t used;
    size_t cap;
} gs_budget;

/* Request heads: the request line and the whole head (a few KiB in practice). */
#define GS_MAX_REQUEST_LINE ((size_t)8 << 10)
#define GS_MAX_HEAD ((size_t)16 << 10)

typedef struct gs_server {
    gtr_server_options o;
    int dim, max_len, vocab;
    const gtr_tokenizer *tok;
    gs_batcher *batcher;
    gtr_retriever *retriever; /* /search (NULL without an index) */
    gs_metrics metrics;
    gs_budget bytes, tokens;
    sem_t tokenize_slots; /* requests tokenizing at once (2 per core, at least 4) */
    bool have_slots;
} gs_server;

/* Take bytes (tokens) from the server's budget for the request of r, released when the request
 * ends; false with r filled (503 server_busy, Retry-After) when they are not available. */
bool gs_hold(gs_server *s, gs_reply *r, size_t bytes);
bool gs_hold_tokens(gs_server *s, gs_reply *r, size_t tokens);

/* Fill in from a JSON "input" (or "queries") value: a string, an array of strings, an array
 * of token ids or an array of arrays of ids. param names the field in errors. Returns false
 * with r filled (400) on a bad request. allow_ids: token-id inputs accepted. */
bool gs_inputs_parse(gs_server *s, const json_t *v, const char *param, bool allow_ids,
                     gs_inputs *in, gs_reply *r);
/* Encode the inputs through the batcher into out[n * dim]. false with r filled (503, 500). */
bool gs_encode(gs_server *s, const gs_inputs *in, float *out, gs_reply *r);

/* Route handlers: body is the complete request body (NUL-terminated). */
void gs_handle_embeddings(gs_server *s, const char *body, size_t len, gs_reply *r);
void gs_handle_search(gs_server *s, const char *body, size_t len, gs_reply *r);
/* Parse a JSON object body; NULL with r filled (400, or 503 when its parsed form does not fit
 * the byte budget) when it is not one. Before parsing, a scan of the body bounds what the parsed
 * form will take (held from the budget) and refuses shapes no request has (nesting deeper than
 * 8, more arrays and objects than max_inputs + 16, more values than max_inputs * (max_len + 8)
 * + 64). */
json_t *gs_parse_body(gs_server *s, const char *body, size_t len, gs_reply *r);

#endif
