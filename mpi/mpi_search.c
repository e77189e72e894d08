/* mpi_search.c — `gtr-mpi search`: the queries of a file cut into one contiguous piece per
 * rank; each rank runs the `gtr search` pipeline (cli/retrieve.c: encode, exact top-k, BM25,
 * fusion) on its piece over its own copy of the index, and rank 0 gathers the hits in query
 * order and writes the run. A query's hits do not depend on the other queries, so the run is
 * `gtr search`'s, byte for byte. */
#include "dist.h"

#include "../cli/retrieve.h"
#include "core/core.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n N gtr-mpi search --index INDEX -q QUERIES -o RUN [options]\n"
            "\n"
            "`gtr search` for a file of queries across N MPI ranks: each rank searches a share of\n"
            "the queries (every rank opens INDEX and the model); rank 0 writes the TREC run,\n"
            "identical to `gtr search`'s.\n"
            "\n"
            "options (as `gtr search`):\n"
            "      --index INDEX   -m, --model DIR   -q, --queries FILE   -o, --output RUN\n"
            "  -k, --top K (default 1000)   --method dense|bm25|hybrid   --bm25-index PATH\n"
            "      --depth N   --skip-self   --compact   --tag WORD   -t, --threads N   --quiet\n");
}

/* this rank's hits, serialised: per query u32 count, then per hit f64 score, u32 id length, id */
static int pack(const rt_results *r, size_t k, gtr_buf *b, gtr_error *err)
{
    for (size_t i = 0; i < r->nq; i++) {
        uint32_t n = (uint32_t)(r->n[i] < k ? r->n[i] : k);
        if (gtr_buf_append(b, &n, sizeof n, err)) return 1;
        for (size_t j = 0; j < n; j++) {
            const rt_hit *h = &r->hits[i * r->k + j];
            uint32_t len = (uint32_t)h->len;
            if (gtr_buf_append(b, &h->score, sizeof h->score, err) || gtr_buf_append(b, &len, sizeof len, err) ||
                gtr_buf_append(b, h->id, len, err))
                return 1;
        }
    }
    return 0;
}

/* rank 0: the run from every rank's packed hits, queries in file order */
static gtr_run *unpack(const rt_queries *q, const char *all, size_t bytes, gtr_error *err)
{
    gtr_run *run = gtr_run_new(err);
    char id[4100];
    size_t at = 0;
    for (size_t i = 0; run && i < q->n; i++) {
        uint32_t n;
        if (at + sizeof n > bytes) goto bad;
        memcpy(&n, all + at, sizeof n), at += sizeof n;
        if (gtr_run_add_query(run, q->ids[i], err)) goto fail;
        for (uint32_t j = 0; j < n; j++) {
            double score;
            uint32_t len;
            if (at + sizeof score + sizeof len > bytes) goto bad;
            memcpy(&score, all + at, sizeof score), at += sizeof score;
            memcpy(&len, all + at, sizeof len), at += sizeof len;
            if (len >= sizeof id || at + len > bytes) goto bad;
            memcpy(id, all + at, len), at += len;
            id[len] = '\0';
            if (gtr_run_add(run, q->ids[i], id, score, err)) goto fail;
        }
    }
    return run;
bad:
    gtr_seterr(err, GTR_ERR_INTERNAL, "the hits gathered from the ranks are malformed");
fail:
    gtr_run_free(run);
    return NULL;
}

int mpi_cmd_search(const dist_ctx *d, int argc, char **argv)
{
    enum { O_INDEX = 1000, O_METHOD, O_BM25, O_DEPTH, O_SKIP, O_COMPACT, O_TAG, O_QUIET };
    static const struct option longopts[] = {
        {"index", required_argument, NULL, O_INDEX}, {"model", required_argument, NULL, 'm'},
        {"queries", required_argument, NULL, 'q'},   {"top", required_argument, NULL, 'k'},
        {"output", required_argument, NULL, 'o'},    {"method", required_argument, NULL, O_METHOD},
        {"bm25-index", required_argument, NULL, O_BM25}, {"depth", required_argument, NULL, O_DEPTH},
        {"skip-self", no_argument, NULL, O_SKIP},    {"compact", no_argument, NULL, O_COMPACT},
        {"tag", required_argument, NULL, O_TAG},     {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, O_QUIET},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *index_path = NULL, *model_dir = NULL, *queries_path = NULL, *out = NULL, *bm25_path = NULL,
               *tag = NULL;
    rt_options o;
    rt_default_options(&o);
    int threads = 0;
    long long v;
    int c;
    optind = 1;
    opterr = d->rank == 0;
    while ((c = getopt_long(argc, argv, "m:q:k:o:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_INDEX: index_path = optarg; break;
        case 'm': model_dir = optarg; break;
        case 'q': queries_path = optarg; break;
        case 'k':
            if (!cli_parse_int("search", "-k", optarg, 1, 1 << 20, &v)) return 2;
            o.k = (size_t)v;
            break;
        case 'o': out = optarg; break;
        case O_METHOD:
            if (!rt_parse_method(optarg, &o.method))
                return dist_errorf(d, 2, "--method expects dense, bm25 or hybrid, got '%s'", optarg);
            break;
        case O_BM25: bm25_path = optarg; break;
        case O_DEPTH:
            if (!cli_parse_int("search", "--depth", optarg, 1, 1 << 20, &v)) return 2;
            o.depth = (size_t)v;
            break;
        case O_SKIP: o.skip_self = true; break;
        case O_COMPACT: o.use_compact = true; break;
        case O_TAG:
            if (!*optarg || strpbrk(optarg, " \t\r\n")) return dist_errorf(d, 2, "--tag must be one word");
            tag = optarg;
            break;
        case 't':
            if (!cli_parse_int("search", "--threads", optarg, 1, 1024, &v)) return 2;
            threads = (int)v;
            break;
        case O_QUIET: o.quiet = true; break;
        case 'h': if (d->rank == 0) usage(stdout); return 0;
        default: if (d->rank == 0) usage(stderr); return 2;
        }
    }
    if (optind != argc) return dist_errorf(d, 2, "unexpected argument '%s' (gtr-mpi search --help)", argv[optind]);
    if (!queries_path || !out) return dist_errorf(d, 2, "need -q QUERIES and -o RUN (gtr-mpi search --help)");
    if (o.method != RT_BM25 && !index_path) return dist_errorf(d, 2, "%s search needs --index INDEX", rt_method_name(o.method));
    if (o.method != RT_DENSE && !bm25_path) return dist_errorf(d, 2, "%s search needs --bm25-index PATH", rt_method_name(o.method));

    gtr_error err;
    rt_sources src = {0};
    rt_queries q = {0};
    rt_results res = {0};
    gtr_run *run = NULL;
    gtr_buf mine = {0};
    char *all = NULL;
    int *counts = NULL, *displs = NULL;
    int rc = 1;
    bool ready = (o.pool = gtr_pool_create(threads, &err)) != NULL;
    if (!ready) dist_errorf(d, 1, "%s", err.message);
    if (ready && index_path && !(src.dense = gtr_index_open(index_path, 0, o.pool, &err)))
        ready = dist_errorf(d, 0, "%s", err.message);
    if (ready && bm25_path && o.method != RT_DENSE && !(src.bm25 = gtr_bm25_open(bm25_path, &err)))
        ready = dist_errorf(d, 0, "%s", err.message);
    if (ready && o.method != RT_BM25 && !(src.model = rt_load_model("search", model_dir, src.dense, threads, o.pool)))
        ready = false;
    if (ready && rt_load_queries("search", queries_path, NULL, &q)) ready = false;
    /* all ranks must see the same model, index and queries */
    uint64_t h = dist_hash_str(0xcbf29ce484222325ull, queries_path);
    h = dist_hash_str(dist_hash_str(dist_hash_str(h, index_path), bm25_path), tag);
    size_t nums[5] = {o.k, o.depth, (size_t)o.method, (size_t)o.skip_self, q.n};
    h = dist_hash(h, nums, sizeof nums);
    h = dist_hash(h, &o.use_compact, sizeof o.use_compact);
    dist_agree me = {ready, src.model ? gtr_model_fingerprint(src.model) : 0,
                     src.dense ? (uint64_t)gtr_index_count(src.dense) : 0, h};
    if (!dist_agree_all(d, &me)) goto done;

    /* this rank's queries: a contiguous piece, so gathering in rank order keeps file order */
    size_t lo = q.n * (size_t)d->rank / (size_t)d->size, hi = q.n * (size_t)(d->rank + 1) / (size_t)d->size;
    rt_queries part = {hi - lo, q.ids + lo, q.texts + lo, q.lens + lo};
    o.quiet = true;
    int ok = rt_retrieve("search", &src, &part, &o, &res) == 0 && pack(&res, o.k, &mine, &err) == 0 &&
             mine.len < (size_t)1 << 31;
    if (!ok) dist_errorf(d, 1, "searching queries %zu..%zu failed", lo + 1, hi);
    int len = ok ? (int)mine.len : -1;
    if (d->rank == 0 && (!(counts = calloc((size_t)d->size, sizeof *counts)) ||
                         !(displs = calloc((size_t)d->size, sizeof *displs)))) {
        dist_errorf(d, 1, "out of memory");
        goto done; /* the others then fail in the gather: MPI_Abort ends them */
    }
    if (MPI_Gather(&len, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        goto done;
    }
    uint64_t verdict = ok;
    size_t total = 0;
    if (d->rank == 0) {
        for (int r = 0; r < d->size; r++) {
            if (counts[r] < 0) verdict = 0;
            displs[r] = (int)total;
            total += counts[r] > 0 ? (size_t)counts[r] : 0;
        }
        if (verdict && (total >= (size_t)1 << 31 || !(all = malloc(total + 1)))) verdict = 0;
        if (!verdict) dist_errorf(d, 1, "a rank failed (its message is above) or the run is too large; no run written");
    }
    MPI_Bcast(&verdict, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (!verdict) goto done;
    if (MPI_Gatherv(mine.data ? (void *)mine.data : (void *)&len, ok ? len : 0, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        dist_errorf(d, 1, "lost contact with the other ranks");
        goto done;
    }
    if (d->rank == 0) {
        char deftag[32];
        snprintf(deftag, sizeof deftag, "gtr-%s", rt_method_name(o.method));
        if (!(run = unpack(&q, all, total, &err)) || gtr_run_write(run, out, tag ? tag : deftag, &err)) {
            dist_errorf(d, 1, "%s", err.message);
            goto done;
        }
        fprintf(stderr, "gtr-mpi search: %zu queries on %d ranks, %zu hits -> %s\n", q.n, d->size,
                gtr_run_num_docs(run), out);
    }
    rc = 0;
done:
    free(all), free(counts), free(displs);
    gtr_buf_free(&mine);
    gtr_run_free(run);
    rt_results_free(&res);
    rt_queries_free(&q);
    gtr_model_free(src.model);
    gtr_index_free(src.dense);
    gtr_bm25_free(src.bm25);
    gtr_pool_free(o.pool);
    return rc;
}
