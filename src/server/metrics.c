/* metrics.c — what /metrics reports, in the Prometheus text exposition format (version 0.0.4):
 * requests by route and status, errors, inputs and tokens, request latency and encoder batch
 * size histograms, queue depth. One mutex: updates are a few additions per request or batch,
 * far below the cost of the work they count. Labels take a fixed set of values (unknown
 * routes are "other", unusual statuses "other") so a scanner cannot grow the output. */
#include "server/server.h"

#include <string.h>

static const char *const route_labels[GS_R_COUNT] = {"/v1/embeddings", "/search", "/health",
                                                     "/metrics", "/v1/models", "other"};

/* the statuses the server sends; anything else counts as "other" (last slot) */
static const int status_codes[GS_STATUS_KINDS - 1] = {200, 400, 404, 405, 408, 413, 414, 415,
                                                       429, 431, 500, 501, 503, 505, 417};

static const double lat_bounds[GS_LAT_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1,     2.5,  5,     10};
static const double batch_bounds[GS_BATCH_BUCKETS - 1] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static int status_slot(int status)
{
    for (int i = 0; i < GS_STATUS_KINDS - 1; i++)
        if (status_codes[i] == status) return i;
    return GS_STATUS_KINDS - 1;
}

static int bucket(const double *bounds, int n_bounds, double v)
{
    int i = 0;
    while (i < n_bounds && v > bounds[i]) i++;
    return i; /* n_bounds: the +Inf bucket */
}

void gs_metrics_init(gs_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void gs_metrics_destroy(gs_metrics *m) { pthread_mutex_destroy(&m->mu); }

void gs_metrics_request(gs_metrics *m, gs_route route, int status, double seconds, size_t inputs,
                        size_t tokens)
{
    if (route >= GS_R_COUNT) route = GS_R_OTHER;
    pthread_mutex_lock(&m->mu);
    m->c.requests[route][status_slot(status)]++;
    m->c.lat_count[route]++;
    m->c.lat_sum[route] += seconds;
    m->c.lat_bucket[route][bucket(lat_bounds, GS_LAT_BUCKETS - 1, seconds)]++;
    if (status == 200) {
        m->c.inputs += inputs;
        m->c.tokens += tokens;
    }
    if (status == 503) m->c.rejected++;
    pthread_mutex_unlock(&m->mu);
}

void gs_metrics_batch(gs_metrics *m, size_t inputs, size_t tokens, size_t requests, double seconds)
{
    pthread_mutex_lock(&m->mu);
    m->c.batches++;
    m->c.batch_inputs_bucket[bucket(batch_bounds, GS_BATCH_BUCKETS - 1, (double)inputs)]++;
    m->c.batch_inputs_sum += inputs;
    m->c.batch_tokens_sum += tokens;
    m->c.batch_requests_sum += requests;
    m->c.encode_seconds += seconds;
    pthread_mutex_unlock(&m->mu);
}

static void head(gtr_buf *b, gtr_status *st, gtr_error *err, const char *name, const char *type,
                 const char *help)
{
    if (!*st) *st = gtr_buf_printf(b, err, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

gtr_status gs_metrics_format(gs_metrics *m, const gs_gauges *g, gtr_buf *b, gtr_error *err)
{
    pthread_mutex_lock(&m->mu);
    gs_counters c = m->c; /* a consistent snapshot; formatting happens outside the lock */
    pthread_mutex_unlock(&m->mu);
    gtr_status st = GTR_OK;

    head(b, &st, err, "gtr_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (int r = 0; r < GS_R_COUNT; r++)
        for (int k = 0; k < GS_STATUS_KINDS; k++) {
            if (!c.requests[r][k] || st) continue;
            char code[8] = "other";
            if (k < GS_STATUS_KINDS - 1) snprintf(code, sizeof code, "%d", status_codes[k]);
            st = gtr_buf_printf(b, err, "gtr_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                                route_labels[r], code, (unsigned long long)c.requests[r][k]);
        }
    head(b, &st, err, "gtr_http_errors_total", "counter", "HTTP requests answered with a status >= 400, by route.");
    for (int r = 0; r < GS_R_COUNT && !st; r++) {
        uint64_t n = 0;
        for (int k = 1; k < GS_STATUS_KINDS; k++) n += c.requests[r][k];
        st = gtr_buf_printf(b, err, "gtr_http_errors_total{route=\"%s\"} %llu\n", route_labels[r],
                            (unsigned long long)n);
    }
    head(b, &st, err, "gtr_http_request_duration_seconds", "histogram",
         "Time from a request's first byte to its response handed over, by route.");
    for (int r = 0; r < GS_R_COUNT && !st; r++) {
        if (!c.lat_count[r]) continue;
        uint64_t cum = 0;
        for (int i = 0; i < GS_LAT_BUCKETS && !st; i++) {
            cum += c.lat_bucket[r][i];
            if (i < GS_LAT_BUCKETS - 1)
                st = gtr_buf_printf(b, err, "gtr_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                                    route_labels[r], lat_bounds[i], (unsigned long long)cum);
            else
                st = gtr_buf_printf(b, err, "gtr_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                                    route_labels[r], (unsigned long long)cum);
        }
        if (!st)
            st = gtr_buf_printf(b, err,
                                "gtr_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                                "gtr_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                                route_labels[r], c.lat_sum[r], route_labels[r], (unsigned long long)c.lat_count[r]);
    }
    head(b, &st, err, "gtr_inputs_total", "counter", "Texts embedded for successful requests (embeddings and search queries).");
    if (!st) st = gtr_buf_printf(b, err, "gtr_inputs_total %llu\n", (unsigned long long)c.inputs);
    head(b, &st, err, "gtr_tokens_total", "counter", "Tokens (with </s>, after truncation) of the texts embedded for successful requests.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_tokens_total %llu\n", (unsigned long long)c.tokens);
    head(b, &st, err, "gtr_rejected_total", "counter", "Requests answered 503 (queue full or shutting down).");
    if (!st) st = gtr_buf_printf(b, err, "gtr_rejected_total %llu\n", (unsigned long long)c.rejected);

    head(b, &st, err, "gtr_queue_depth", "gauge", "Requests admitted and waiting for (or in) the encoder.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_queue_depth %zu\n", g->queue_depth);
    head(b, &st, err, "gtr_queue_texts", "gauge", "Texts admitted and not yet encoded.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_queue_texts %zu\n", g->queue_texts);
    head(b, &st, err, "gtr_requests_on_the_way", "gauge",
         "Requests whose texts are still being received: the batcher waits (up to --max-wait-ms) for them.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_requests_on_the_way %zu\n", g->expected);
    head(b, &st, err, "gtr_in_flight_requests", "gauge", "Requests being received, processed or answered.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_in_flight_requests %zu\n", g->in_flight);
    head(b, &st, err, "gtr_open_connections", "gauge", "Open HTTP connections.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_open_connections %zu\n", g->connections);
    head(b, &st, err, "gtr_pending_bytes", "gauge", "Bytes held by requests (bodies, parsed JSON, answers).");
    if (!st) st = gtr_buf_printf(b, err, "gtr_pending_bytes %zu\n", g->pending_bytes);
    head(b, &st, err, "gtr_pending_tokens", "gauge", "Token ids held by requests.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_pending_tokens %zu\n", g->pending_tokens);
    head(b, &st, err, "gtr_draining", "gauge", "1 while shutting down gracefully.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_draining %d\n", g->draining);

    head(b, &st, err, "gtr_batch_inputs", "histogram", "Texts per encoder batch.");
    uint64_t cum = 0;
    for (int i = 0; i < GS_BATCH_BUCKETS && !st; i++) {
        cum += c.batch_inputs_bucket[i];
        if (i < GS_BATCH_BUCKETS - 1)
            st = gtr_buf_printf(b, err, "gtr_batch_inputs_bucket{le=\"%g\"} %llu\n", batch_bounds[i],
                                (unsigned long long)cum);
        else
            st = gtr_buf_printf(b, err, "gtr_batch_inputs_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    if (!st)
        st = gtr_buf_printf(b, err, "gtr_batch_inputs_sum %llu\ngtr_batch_inputs_count %llu\n",
                            (unsigned long long)c.batch_inputs_sum, (unsigned long long)c.batches);
    head(b, &st, err, "gtr_batch_tokens_total", "counter", "Tokens in encoder batches.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_batch_tokens_total %llu\n", (unsigned long long)c.batch_tokens_sum);
    head(b, &st, err, "gtr_batch_requests_total", "counter",
         "Sum over encoder batches of the requests with texts in the batch (divided by gtr_batch_inputs_count: requests per batch).");
    if (!st) st = gtr_buf_printf(b, err, "gtr_batch_requests_total %llu\n", (unsigned long long)c.batch_requests_sum);
    head(b, &st, err, "gtr_encode_seconds_total", "counter", "Time the encoder spent on batches.");
    if (!st) st = gtr_buf_printf(b, err, "gtr_encode_seconds_total %.6f\n", c.encode_seconds);
    return st;
}
