/* cmd_serve.c — `gtr serve`: the model (and optionally indexes) behind an HTTP server with an
 * OpenAI-compatible /v1/embeddings, /search, /health and /metrics (src/server/).
 *
 * Signals: SIGINT and SIGTERM are blocked before any thread starts (model pool, batcher, HTTP
 * threads inherit the mask), and the main thread waits for them with sigwait(), so the graceful
 * shutdown runs in a normal thread rather than in a signal handler. */
#include "cli.h"

#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *CMD = "serve";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr serve -m MODEL_DIR [--index INDEX] [--bm25-index PATH] [options]\n"
        "       gtr serve --index INDEX [options]   (the model recorded in INDEX)\n"
        "\n"
        "Serve a GTR model over HTTP/1.1 with an OpenAI-compatible embeddings API:\n"
        "  POST /v1/embeddings  {\"input\": \"text\" | [\"text\", ...], \"model\": \"...\",\n"
        "                        \"encoding_format\": \"float\" | \"base64\"}\n"
        "                       (also token ids: [id, ...] or [[id, ...], ...], T5 SentencePiece ids)\n"
        "  POST /search         {\"query\": \"text\" | \"queries\": [...], \"k\": 10, \"method\": ...}\n"
        "                       (with --index and/or --bm25-index)\n"
        "  GET  /health, GET /metrics (Prometheus), GET /v1/models\n"
        "The vectors are exactly those of `gtr embed`. Concurrent requests are batched together;\n"
        "when --queue requests already wait for the encoder, new ones get 503 with Retry-After.\n"
        "SIGTERM or SIGINT: stop accepting, finish the requests in flight (those not done by\n"
        "--drain-timeout are answered 503), exit 0; a second signal exits at once (status 1).\n"
        "\n"
        "Model and indexes:\n"
        "  -m, --model DIR          the model (default: the one recorded in --index)\n"
        "      --model-name NAME    \"model\" in responses (default: the directory's name)\n"
        "      --max-len N          tokens per input with </s> (default: the model's, 512)\n"
        "      --dtype D            f32 (default), bf16 or int8\n"
        "      --index INDEX        dense index (gtr index) for /search; must match the model\n"
        "      --ann FILE.ivf       search the dense index approximately through this IVF\n"
        "                           index of it (gtr ann-build; its deletions apply)\n"
        "      --nprobe N           with --ann: lists scanned per query (default 8)\n"
        "      --bm25-index PATH    BM25 index (gtr bm25-index) for /search\n"
        "      --method M           default /search method: dense, bm25 or hybrid\n"
        "                           (default: dense with --index, else bm25)\n"
        "      --fusion rrf|interp  hybrid: reciprocal-rank fusion (default) or interpolation\n"
        "      --alpha A            interp: weight of the dense scores, BM25 gets 1-A (0.5)\n"
        "      --rrf-k N            rrf: the constant in 1/(N + rank) (default 60)\n"
        "      --depth N            hybrid: hits taken from each method (default 1000)\n"
        "\n"
        "Network:\n"
        "      --host ADDR          address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
        "      --port N             port (default 8080; 0 picks a free one)\n"
        "      --port-file FILE     write the port there once listening (for scripts with --port 0)\n"
        "      --max-connections N  open connections, one thread each (default 512); when all\n"
        "                           are taken a new one replaces an idle or the slowest one\n"
        "      --max-client-connections N\n"
        "                           connections from one address, 429 beyond (default 64)\n"
        "      --idle-timeout S     close connections idle this long between requests (default 60)\n"
        "      --request-timeout S  a request must arrive whole within S seconds, 408 beyond\n"
        "                           (default 30)\n"
        "      --drain-timeout S    on shutdown, wait at most this long for requests (default 30)\n"
        "\n"
        "Batching and limits:\n"
        "  -t, --threads N          encoder threads (default: all cores)\n"
        "      --workers N          encoder workers over the one copy of the weights: batches\n"
        "                           encode side by side, the threads shared out (default 1)\n"
        "      --max-batch-tokens N token budget of one encoder batch (default 16384)\n"
        "      --max-wait-ms N      longest a text waits for a fuller batch while other\n"
        "                           requests are arriving (default 5)\n"
        "      --queue N            requests waiting for the encoder before 503 (default 256)\n"
        "      --max-body BYTES     request body limit, 413 beyond (default 16777216)\n"
        "      --max-inputs N       inputs (or queries) per request, 400 beyond (default 2048)\n"
        "      --max-k N            largest k of /search (default 1000)\n"
        "      --max-hits N         largest queries x k of one /search request (default 100000)\n"
        "      --max-pending-bytes B\n"
        "                           request data (bodies, parsed JSON, answers) held at once,\n"
        "                           503 beyond (default 268435456)\n"
        "      --max-pending-tokens N\n"
        "                           token ids held at once, 503 beyond (default 1048576)\n"
        "      --no-truncate        an input longer than --max-len is 400, not truncated\n"
        "\n"
        "  -v, --verbose            log every request on standard error\n"
        "  -q, --quiet              no start/stop messages\n"
        "  -h, --help               this help\n"
        "\n"
        "Examples:\n"
        "  gtr serve -m models/gtr-t5-base --port 8080\n"
        "  curl -s localhost:8080/v1/embeddings -H 'Content-Type: application/json' \\\n"
        "       -d '{\"input\": [\"hello world\"], \"model\": \"gtr-t5-base\"}'\n"
        "  gtr serve --index scifact.gtri --bm25-index scifact.bm25 --method hybrid\n"
        "  curl -s localhost:8080/search -H 'Content-Type: application/json' \\\n"
        "       -d '{\"query\": \"vitamin D and bone density\", \"k\": 5}'\n");
}

static void log_line(void *user, const char *line)
{
    (void)user;
    fprintf(stderr, "gtr serve: %s\n", line);
}

static const char *base_name(const char *dir, char *buf, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), dir + s);
    return buf[0] && strcmp(buf, ".") && strcmp(buf, "..") ? buf : "gtr";
}

typedef struct opts {
    const char *model_dir, *model_name, *index, *bm25, *port_file, *ann;
    long long threads, max_len;
    gtr_compute_dtype dtype;
    bool method_given, verbose, quiet;
    gtr_server_options so;
} opts;

static int parse(int argc, char **argv, opts *o)
{
    enum { O_NAME = 256, O_MAXLEN, O_DTYPE, O_INDEX, O_BM25, O_METHOD, O_FUSION, O_ALPHA, O_RRFK, O_DEPTH,
           O_HOST, O_PORT, O_PORTFILE, O_MAXCONN, O_IDLE, O_DRAIN, O_MBT, O_WAIT, O_QUEUE, O_WORKERS, O_BODY, O_INPUTS,
           O_MAXK, O_NOTRUNC, O_CLIENTCONN, O_REQTIMEOUT, O_MAXHITS, O_PBYTES, O_PTOKENS, O_ANN, O_NPROBE };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},        {"model-name", required_argument, 0, O_NAME},
        {"max-len", required_argument, 0, O_MAXLEN}, {"dtype", required_argument, 0, O_DTYPE},
        {"index", required_argument, 0, O_INDEX},    {"bm25-index", required_argument, 0, O_BM25},
        {"ann", required_argument, 0, O_ANN},        {"nprobe", required_argument, 0, O_NPROBE},
        {"method", required_argument, 0, O_METHOD},  {"fusion", required_argument, 0, O_FUSION},
        {"alpha", required_argument, 0, O_ALPHA},    {"rrf-k", required_argument, 0, O_RRFK},
        {"depth", required_argument, 0, O_DEPTH},    {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},      {"port-file", required_argument, 0, O_PORTFILE},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"idle-timeout", required_argument, 0, O_IDLE}, {"drain-timeout", required_argument, 0, O_DRAIN},
        {"threads", required_argument, 0, 't'},      {"max-batch-tokens", required_argument, 0, O_MBT},
        {"max-wait-ms", required_argument, 0, O_WAIT}, {"queue", required_argument, 0, O_QUEUE},
        {"workers", required_argument, 0, O_WORKERS},
        {"max-body", required_argument, 0, O_BODY},  {"max-inputs", required_argument, 0, O_INPUTS},
        {"max-k", required_argument, 0, O_MAXK},     {"no-truncate", no_argument, 0, O_NOTRUNC},
        {"max-client-connections", required_argument, 0, O_CLIENTCONN},
        {"request-timeout", required_argument, 0, O_REQTIMEOUT},
        {"max-hits", required_argument, 0, O_MAXHITS},
        {"max-pending-bytes", required_argument, 0, O_PBYTES},
        {"max-pending-tokens", required_argument, 0, O_PTOKENS},
        {"verbose", no_argument, 0, 'v'},            {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    gtr_server_options *so = &o->so;
    long long v;
    int c;
    optind = 1;
#define INT_OPT(name, lo, hi, dst)                                        \
    do {                                                                  \
        if (!cli_parse_int(CMD, name, optarg, lo, hi, &v)) return 2;      \
        dst = v;                                                          \
    } while (0)
    while ((c = getopt_long(argc, argv, "m:t:vqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_dir = optarg; break;
        case O_NAME: o->model_name = optarg; break;
        case O_MAXLEN: INT_OPT("--max-len", 1, 65536, o->max_len); break;
        case O_DTYPE:
            if (!cli_parse_dtype(CMD, optarg, &o->dtype)) return 2;
            break;
        case O_INDEX: o->index = optarg; break;
        case O_BM25: o->bm25 = optarg; break;
        case O_ANN: o->ann = optarg; break;
        case O_NPROBE: INT_OPT("--nprobe", 1, 1 << 24, so->nprobe); break;
        case O_METHOD:
            if (gtr_retrieval_method_parse(optarg, &so->method, NULL))
                return cli_errorf(CMD, 2, "--method expects dense, bm25 or hybrid, got '%s'", optarg);
            o->method_given = true;
            break;
        case O_FUSION:
            if (!cli_parse_fusion(CMD, optarg, &so->fusion.method)) return 2;
            break;
        case O_ALPHA:
            if (!cli_parse_double(CMD, "--alpha", optarg, &so->alpha)) return 2;
            if (!(so->alpha >= 0 && so->alpha <= 1)) return cli_errorf(CMD, 2, "--alpha must be in [0, 1]");
            break;
        case O_RRFK:
            if (!cli_parse_double(CMD, "--rrf-k", optarg, &so->fusion.rrf_k)) return 2;
            if (!(so->fusion.rrf_k >= 0)) return cli_errorf(CMD, 2, "--rrf-k must be >= 0");
            break;
        case O_DEPTH: INT_OPT("--depth", 1, 1 << 20, so->depth); break;
        case O_HOST: so->host = optarg; break;
        case O_PORT: INT_OPT("--port", 0, 65535, so->port); break;
        case O_PORTFILE: o->port_file = optarg; break;
        case O_MAXCONN: INT_OPT("--max-connections", 1, 65536, so->max_connections); break;
        case O_IDLE: INT_OPT("--idle-timeout", 1, 86400, so->idle_timeout_s); break;
        case O_DRAIN: INT_OPT("--drain-timeout", 0, 86400, so->drain_timeout_s); break;
        case 't': INT_OPT("--threads", 1, 1024, o->threads); break;
        case O_MBT: INT_OPT("--max-batch-tokens", 1, 1 << 24, so->max_batch_tokens); break;
        case O_WAIT: INT_OPT("--max-wait-ms", 0, 60000, so->max_wait_ms); break;
        case O_QUEUE: INT_OPT("--queue", 1, 1 << 20, so->queue); break;
        case O_WORKERS: INT_OPT("--workers", 1, 1024, so->workers); break;
        case O_BODY: INT_OPT("--max-body", 2, (long long)1 << 40, so->max_body); break;
        case O_INPUTS: INT_OPT("--max-inputs", 1, 1 << 24, so->max_inputs); break;
        case O_MAXK: INT_OPT("--max-k", 1, 1 << 20, so->max_k); break;
        case O_NOTRUNC: so->no_truncate = 1; break;
        case O_CLIENTCONN: INT_OPT("--max-client-connections", 1, 65536, so->max_client_connections); break;
        case O_REQTIMEOUT: INT_OPT("--request-timeout", 1, 86400, so->request_timeout_s); break;
        case O_MAXHITS: INT_OPT("--max-hits", 1, (long long)1 << 40, so->max_hits); break;
        case O_PBYTES: INT_OPT("--max-pending-bytes", 2, (long long)1 << 50, so->max_pending_bytes); break;
        case O_PTOKENS: INT_OPT("--max-pending-tokens", 1, (long long)1 << 40, so->max_pending_tokens); break;
        case 'v': o->verbose = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
#undef INT_OPT
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (so->max_pending_bytes < so->max_body)
        return cli_errorf(CMD, 2, "--max-pending-bytes (%zu) must be at least --max-body (%zu)", so->max_pending_bytes,
                          so->max_body);
    if (!o->model_dir && !o->index) return cli_errorf(CMD, 2, "-m MODEL_DIR is required (see --help)");
    if (o->method_given && so->method != GTR_RETRIEVE_BM25 && !o->index)
        return cli_errorf(CMD, 2, "--method %s needs --index INDEX", gtr_retrieval_method_name(so->method));
    if (o->method_given && so->method != GTR_RETRIEVE_DENSE && !o->bm25)
        return cli_errorf(CMD, 2, "--method %s needs --bm25-index PATH", gtr_retrieval_method_name(so->method));
    return 0;
}

static int write_port_file(const char *path, int port)
{
    /* written beside it and renamed, so a reader never sees half a number */
    char *tmp = cli_path_suffixed(CMD, path, ".tmp");
    if (!tmp) return 1;
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%d\n", port) > 0;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    int e = errno;
    if (!ok) remove(tmp);
    free(tmp);
    if (!ok) return cli_errorf(CMD, 1, "%s: cannot write the port: %s", path, strerror(e));
    return 0;
}

typedef struct shutdown_job {
    gtr_server *srv;
    pthread_mutex_t mu;
    bool done;
} shutdown_job;

static void *shutdown_main(void *arg)
{
    shutdown_job *j = arg;
    gtr_server_shutdown(j->srv);
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static int serve(opts *o)
{
    gtr_error err;
    gtr_model *model = NULL;
    gtr_index *index = NULL;
    gtr_ann *ann = NULL;
    gtr_fields *fields = NULL;
    gtr_bm25 *bm25 = NULL;
    gtr_server *srv = NULL;
    int rc = 1;
    char name[256];
    if (o->index && !(index = gtr_index_open(o->index, 0, NULL, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    if (o->ann && !index) {
        rc = cli_errorf(CMD, 2, "--ann needs --index INDEX (the dense index it was built from)");
        goto done;
    }
    if (o->ann && !(ann = gtr_ann_open(o->ann, index, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    /* INDEX.fields (gtr index writes it when the corpus has metadata): /search "where" */
    char fpath[4096];
    if (index && snprintf(fpath, sizeof fpath, "%s.fields", o->index) < (int)sizeof fpath && access(fpath, F_OK) == 0 &&
        !(fields = gtr_fields_open(fpath, index, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    const char *dir = cli_query_model_dir(CMD, o->model_dir, index);
    if (!dir) {
        rc = 2;
        goto done;
    }
    if (o->bm25 && !(bm25 = gtr_bm25_open(o->bm25, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    gtr_model_options mo;
    if (!cli_model_options(CMD, &mo)) {
        rc = 2;
        goto done;
    }
    mo.n_threads = (int)o->threads;
    mo.max_len = (int)o->max_len;
    mo.dtype = o->dtype;
    mo.n_contexts = o->so.workers; /* the memory check counts every worker's activations */
    mo.no_fingerprint = !index;    /* only a dense index compares it: else embeddings alone */
    if (!(model = gtr_model_load(dir, &mo, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    o->so.model = model;
    o->so.index = index;
    o->so.ann = ann;
    o->so.fields = fields;
    o->so.bm25 = bm25;
    o->so.model_name = o->model_name ? o->model_name : base_name(dir, name, sizeof name);
    if (o->verbose) o->so.log = log_line;
    if (!(srv = gtr_server_start(&o->so, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    int port = gtr_server_port(srv);
    if (o->port_file && write_port_file(o->port_file, port)) goto done;
    if (!o->quiet) {
        const char *h = o->so.host;
        bool v6 = strchr(h, ':') != NULL;
        fprintf(stderr, "gtr serve: listening on http://%s%s%s:%d (model %s, dim %d, max_len %d%s%s)\n", v6 ? "[" : "",
                h, v6 ? "]" : "", port, o->so.model_name, gtr_model_dim(model), gtr_model_max_len(model),
                index ? (ann ? ", dense index searched through an IVF index" : ", dense index") : "",
                bm25 ? ", BM25 index" : "");
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    if (!o->quiet)
        fprintf(stderr, "gtr serve: %s: finishing the requests in flight (at most %u s)\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", o->so.drain_timeout_s);
    /* the drain runs in its own thread; this one keeps listening: a second signal ends the
     * process at once */
    shutdown_job job = {srv, PTHREAD_MUTEX_INITIALIZER, false};
    pthread_t th;
    if (pthread_create(&th, NULL, shutdown_main, &job) != 0) {
        gtr_server_shutdown(srv);
    } else {
        for (;;) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            int s2 = sigtimedwait(&set, NULL, &ts);
            if (s2 == SIGINT || s2 == SIGTERM) {
                fprintf(stderr, "gtr serve: second %s: exiting now\n", s2 == SIGINT ? "SIGINT" : "SIGTERM");
                _exit(1);
            }
            pthread_mutex_lock(&job.mu);
            bool done = job.done;
            pthread_mutex_unlock(&job.mu);
            if (done) break;
        }
        pthread_join(th, NULL);
    }
    if (!o->quiet) fprintf(stderr, "gtr serve: stopped\n");
    rc = 0;
done:
    gtr_server_free(srv);
    gtr_model_free(model);
    gtr_ann_free(ann);
    gtr_fields_free(fields);
    gtr_index_free(index);
    gtr_bm25_free(bm25);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.so = gtr_server_default_options();
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    /* before any thread exists, so that every thread inherits the mask (see the top) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client closing early is an error on its socket, not our end */
    /* Request buffers of a MiB or more go back to the system when freed: glibc would otherwise
     * raise its mmap threshold after the first large free and keep later ones in the heap, so
     * memory after a burst would not return to the idle level (README, "Memory"). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    /* the mask stays: a second signal during shutdown must not kill the process */
    return serve(&o);
}
