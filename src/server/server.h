/*
 * server.h — internals of `gtr serve`, one concern per file:
 *   server.c     libmicrohttpd glue: listening socket, routing, limits, graceful shutdown
 *   batcher.c    the dynamic batcher: a bounded queue of tokenized texts, one encoder thread
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

/* ---- replies ------------------------------------------------------------------------- */

/* What a route handler answers; server.c turns it into an HTTP response. */
typedef struct gs_reply {
    int status;        /* HTTP status */
    gtr_buf body;      /* malloc'd; handed to libmicrohttpd */
    const char *ctype; /* Content-Type (NULL: application/json) */
    int retry_after;   /* seconds, > 0 adds Retry-After */
    const char *allow; /* 405: the Allow header */
    size_t inputs;     /* texts in the request (access log) */
    size_t tokens;     /* tokens encoded (metrics, access log) */
    bool announced;    /* counted by the batcher as on its way (server.c sets it; gs_encode
                        * or server.c clears it) */
} gs_reply;

/* An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}. type is
 * "invalid_request_error" below 500, else "server_error"; param and code may be NULL. */
void gs_reply_error(gs_reply *r, int status, const char *param, const char *code,
                    const char *fmt, ...) GTR_PRINTF(5, 6);
/* The reply body could not be built: a plain 500 (no allocation needed beyond the buffer). */
void gs_reply_oom(gs_reply *r);

/* ---- JSON output (jsonw.c) --------------------------------------------------------------- */

/* Append s as a JSON string literal; invalid UTF-8 becomes U+FFFD, so any bytes (a snippet
 * cut mid-character, an odd document id) give valid JSON. */
gtr_status gs_json_str(gtr_buf *b, const char *s, size_t len, gtr_error *err);
/* Append a float32 with %.9g, which reads back to the same float32 (the text `gtr embed
 * --format jsonl` writes); "null" when not finite, which unit vectors never are. */
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
const char *gs_route_label(gs_route r);

#define GS_LAT_BUCKETS 14
#define GS_BATCH_BUCKETS 12
#define GS_STATUS_KINDS 10

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
    size_t queue_depth, queue_texts, in_flight, connections;
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

gs_batcher *gs_batcher_start(gtr_model *m, size_t max_batch_tokens, int max_wait_ms,
                             size_t queue_cap, gs_metrics *metrics, gtr_error *err);
/* Stop after the queued work is done; join the thread. */
void gs_batcher_free(gs_batcher *b);
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
/* Jobs admitted and not finished; texts not yet encoded. */
void gs_batcher_depth(gs_batcher *b, size_t *jobs, size_t *texts);

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

typedef struct gs_server {
    gtr_server_options o;
    int dim, max_len, vocab;
    const gtr_tokenizer *tok;
    gs_batcher *batcher;
    gs_metrics metrics;
} gs_server;

/* Fill in from a JSON "input" (or "queries") value: a string, an array of strings, an array
 * of token ids or an array of arrays of ids. param names the field in errors. Returns false
 * with r filled (400) on a bad request. allow_ids: token-id inputs accepted. */
bool gs_inputs_parse(const gs_server *s, const json_t *v, const char *param, bool allow_ids,
                     gs_inputs *in, gs_reply *r);
/* Encode the inputs through the batcher into out[n * dim]. false with r filled (503, 500). */
bool gs_encode(gs_server *s, const gs_inputs *in, float *out, gs_reply *r);

/* Route handlers: body is the complete request body (NUL-terminated). */
void gs_handle_embeddings(gs_server *s, const char *body, size_t len, gs_reply *r);
void gs_handle_search(gs_server *s, const char *body, size_t len, gs_reply *r);
/* Parse a JSON object body; false with r filled (400) when it is not one. */
json_t *gs_parse_body(const char *body, size_t len, gs_reply *r);

#endif
