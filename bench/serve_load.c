/* serve_load.c — load generator for `gtr serve` (bench/bench_serve.sh): N client threads, each
 * with its own keep-alive libcurl connection, send a bounded number of POST /v1/embeddings
 * requests (texts taken round-robin from a JSON-lines file) as fast as the answers come, and
 * check every answer (status 200, one embedding per input). Prints one JSON line: throughput,
 * latency percentiles, failures and the status counts.
 *
 *   serve_load --url http://127.0.0.1:8080/v1/embeddings --texts queries.jsonl
 *              [--clients 32] [--requests 2000] [--per-request 1] [--format base64|float]
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shared {
    const char *url;
    char **bodies; /* one prebuilt request body per request slot */
    size_t n_bodies;
    int per_request;
    long requests;
    atomic_long next;
    double *lat; /* seconds, per request */
    int *status;
} shared;

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    buf *b = u;
    size_t len = sz * n;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

/* an answer is good when it has one "object":"embedding" per input */
static int count_embeddings(const char *s)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, "\"object\":\"embedding\"")); p++) n++;
    return n;
}

static void *client(void *arg)
{
    shared *s = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    for (;;) {
        long i = atomic_fetch_add(&s->next, 1);
        if (i >= s->requests) break;
        const char *body = s->bodies[(size_t)i % s->n_bodies];
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        b.n = 0;
        double t0 = now();
        CURLcode rc = curl_easy_perform(c);
        s->lat[i] = now() - t0;
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK) code = -1;
        else if (code == 200 && (!b.p || count_embeddings(b.p) != s->per_request)) code = -2;
        s->status[i] = (int)code;
    }
    free(b.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* texts: JSON lines of strings or objects with "text"; returned as JSON string literals */
static char **read_texts(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *line = NULL;
    size_t cap = 0, k = 0, alloc = 0;
    char **out = NULL;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, JSON_DECODE_ANY, NULL);
        json_t *t = json_is_object(j) ? json_object_get(j, "text") : j;
        if (json_is_string(t) && json_string_length(t) > 0) {
            if (k == alloc) {
                alloc = alloc ? 2 * alloc : 256;
                out = realloc(out, alloc * sizeof *out);
            }
            out[k++] = json_dumps(t, JSON_ENCODE_ANY);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    *n = k;
    return out;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *texts_path = NULL, *format = "base64";
    int clients = 32, per = 1;
    long requests = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--texts")) texts_path = argv[i + 1];
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--requests")) requests = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-request")) per = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--format")) format = argv[i + 1];
        else {
            fprintf(stderr, "serve_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!url || !texts_path || clients < 1 || requests < 1 || per < 1) {
        fprintf(stderr, "usage: serve_load --url URL --texts FILE [--clients N] [--requests M] [--per-request K] [--format F]\n");
        return 2;
    }
    size_t n_texts;
    char **texts = read_texts(texts_path, &n_texts);
    if (!texts || !n_texts) {
        fprintf(stderr, "serve_load: no texts in %s\n", texts_path);
        return 1;
    }
    /* request bodies: consecutive slices of the texts, so every text is sent in turn */
    size_t n_bodies = n_texts;
    char **bodies = calloc(n_bodies, sizeof *bodies);
    for (size_t b = 0; b < n_bodies; b++) {
        size_t len = 128;
        for (int k = 0; k < per; k++) len += strlen(texts[(b * (size_t)per + (size_t)k) % n_texts]) + 1;
        char *p = bodies[b] = malloc(len);
        size_t off = (size_t)sprintf(p, "{\"model\":\"gtr\",\"encoding_format\":\"%s\",\"input\":[", format);
        for (int k = 0; k < per; k++)
            off += (size_t)sprintf(p + off, "%s%s", k ? "," : "", texts[(b * (size_t)per + (size_t)k) % n_texts]);
        sprintf(p + off, "]}");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    shared s = {.url = url, .bodies = bodies, .n_bodies = n_bodies, .per_request = per, .requests = requests};
    atomic_init(&s.next, 0);
    s.lat = calloc((size_t)requests, sizeof *s.lat);
    s.status = calloc((size_t)requests, sizeof *s.status);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = now();
    for (int i = 0; i < clients; i++) pthread_create(&th[i], NULL, client, &s);
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double secs = now() - t0;
    long ok = 0, s503 = 0, other = 0, transport = 0, bad = 0;
    for (long i = 0; i < requests; i++) {
        if (s.status[i] == 200) ok++;
        else if (s.status[i] == 503) s503++;
        else if (s.status[i] == -1) transport++;
        else if (s.status[i] == -2) bad++;
        else other++;
    }
    qsort(s.lat, (size_t)requests, sizeof *s.lat, cmp_double);
#define PCT(p) (s.lat[(size_t)((double)(requests - 1) * (p) + 0.5)] * 1e3)
    printf("{\"clients\":%d,\"requests\":%ld,\"per_request\":%d,\"format\":\"%s\",\"ok\":%ld,\"failed\":%ld,"
           "\"status_503\":%ld,\"transport_errors\":%ld,\"bad_bodies\":%ld,\"other_status\":%ld,"
           "\"seconds\":%.3f,\"requests_per_s\":%.1f,\"texts_per_s\":%.1f,"
           "\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f}\n",
           clients, requests, per, format, ok, requests - ok, s503, transport, bad, other, secs,
           (double)requests / secs, (double)requests * per / secs, PCT(0.5), PCT(0.9), PCT(0.99),
           s.lat[requests - 1] * 1e3);
    for (size_t i = 0; i < n_texts; i++) free(texts[i]);
    for (size_t b = 0; b < n_bodies; b++) free(bodies[b]);
    free(texts);
    free(bodies);
    free(s.lat);
    free(s.status);
    free(th);
    curl_global_cleanup();
    return ok == requests ? 0 : 1;
}
