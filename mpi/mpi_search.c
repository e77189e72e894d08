/* mpi_search.c — `gtr-mpi search`: the queries of a file cut into one contiguous piece per
 * rank; each rank runs the `gtr search` pipeline (the library's retriever: encode, exact top-k, BM25,
 * fusion) on its piece over its own copy of the index, and rank 0 gathers the hits in query
 * order and writes the run. A query's hits do not depend on the other queries, so the run is
 * `gtr search`'s, byte for byte. With --split docs every rank searches every query over its
 * contiguous piece of the documents instead, reading only that piece of the vectors (BM25: of
 * the BM25 index's documents, with its global statistics), and rank 0 merges the lists (hybrid:
 * per method, then fuses them; dist_search_docs): the same run. --ann: approximate dense
 * search, with one IVF file of the index (split queries) or one per shard (split docs). */
#include "dist_search.h"

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
            "      --fusion rrf|interp   --alpha X   --rrf-k X   --depth N   --skip-self   --compact\n"
            "      --tag WORD   -t, --threads N   --quiet\n"
            "      --ann PATH   --nprobe N   approximate dense search (dense, hybrid). --split queries:\n"
            "                           PATH is an IVF file of INDEX (gtr ann-build), the run of\n"
            "                           gtr search --ann PATH. --split docs: PATH is the prefix of\n"
            "                           one IVF file per shard of the sharded INDEX (gtr-mpi\n"
            "                           ann-build -o PATH); each rank searches its shards' files,\n"
            "                           rank 0 merges: the per-shard searches' hits, merged, on\n"
            "                           any number of ranks (more ranks than shards share a\n"
            "                           shard's queries)\n"
            "\n"
            "      --split queries|docs  what the ranks share out (default queries). docs: each\n"
            "                           rank scans its piece of the documents for\n"
            "                           every query, touching only that part of INDEX's vectors\n"
            "                           (for an index larger than one node's memory); rank 0 merges\n"
            "                           the top-k by score, equal scores by id as trec_eval ranks.\n"
            "                           Over a sharded index (gtr-mpi index --shards) each rank\n"
            "                           opens only its shards. BM25 and hybrid: each rank maps\n"
            "                           the BM25 index (whole-collection statistics) and scores\n"
            "                           its piece of its documents; hybrid lists are merged,\n"
            "                           then fused on rank 0: the run of gtr search.\n");
}

int mpi_cmd_search(const dist_ctx *d, int argc, char **argv)
{
    enum { O_QUIET = 1000, O_SPLIT, O_ANN, O_NPROBE };
    static const struct option longopts[] = {
        CLI_SEARCH_LONGOPTS, {"quiet", no_argument, NULL, O_QUIET}, {"help", no_argument, NULL, 'h'},
        {"split", required_argument, NULL, O_SPLIT}, {"ann", required_argument, NULL, O_ANN},
        {"nprobe", required_argument, NULL, O_NPROBE}, {NULL, 0, NULL, 0}};
    bool split_docs = false;
    const char *ann = NULL;
    long long v;
    cli_search_args a;
    cli_search_args_init(&a);
    int c;
    optind = 1;
    opterr = d->rank == 0;
    while ((c = getopt_long(argc, argv, "m:q:k:o:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_QUIET: break; /* gtr-mpi search prints no progress */
        case O_SPLIT:
            if (strcmp(optarg, "queries") && strcmp(optarg, "docs"))
                return dist_errorf(d, 2, "--split expects queries or docs, got '%s'", optarg);
            split_docs = !strcmp(optarg, "docs");
            break;
        case O_ANN: ann = optarg; break;
        case O_NPROBE:
            if (!cli_parse_int("search", "--nprobe", optarg, 1, 1 << 24, &v)) return 2;
            a.o.nprobe = (uint32_t)v;
            break;
        case 'h': if (d->rank == 0) usage(stdout); return 0;
        default: {
            int r = cli_search_option(c, optarg, &a);
            if (r == 1) break;
            if (r == 0 && d->rank == 0) usage(stderr);
            return 2;
        }
        }
    }
    if (optind != argc) return dist_errorf(d, 2, "unexpected argument '%s' (gtr-mpi search --help)", argv[optind]);
    if (!a.queries || !a.out) return dist_errorf(d, 2, "need -q QUERIES and -o RUN (gtr-mpi search --help)");
    if (!cli_search_check("search", &a)) return 2;
    if (ann && !a.index) return dist_errorf(d, 2, "--ann needs --index (the index it was built from)");
    if (ann && a.o.method == GTR_RETRIEVE_BM25) return dist_errorf(d, 2, "--ann is for dense and hybrid search");
    if (a.o.nprobe && !ann) return dist_errorf(d, 2, "--nprobe needs --ann");
    const char *index_path = a.index, *model_dir = a.model, *queries_path = a.queries, *out = a.out;
    const char *bm25_path = a.bm25, *tag = a.tag;
    gtr_retrieve_options o = a.o;
    bool skip_self = a.skip_self;
    int threads = a.threads;

    gtr_error err;
    dist_parts p = {.split_docs = split_docs, .ann = ann};
    gtr_queries *q = NULL;
    gtr_run *run = NULL;
    int rc = 1;
    gtr_pool *pool = gtr_pool_create(threads, &err);
    bool ready = pool != NULL;
    if (!ready) dist_errorf(d, 1, "%s", err.message);
    if (ready) ready = dist_parts_open(d, &p, index_path, bm25_path, model_dir, o.method, threads, pool);
    if (ready && !(q = gtr_queries_load(queries_path, NULL, &err))) ready = cli_fail("search", &err) == 0;
    if (ready) ready = cli_parts_retriever(d->cmd, &p.parts, pool) && dist_parts_retrievers(d, &p, pool);
    if (ready && skip_self) o.skip_ids = gtr_queries_ids(q);
    /* all ranks must see the same model, index and queries */
    uint64_t h = dist_hash_str(0xcbf29ce484222325ull, queries_path);
    h = dist_hash_str(dist_hash_str(dist_hash_str(dist_hash_str(h, index_path), bm25_path), tag), ann);
    h = dist_hash(h, &o.nprobe, sizeof o.nprobe);
    size_t nums[5] = {o.k, o.depth, (size_t)o.method, (size_t)skip_self, gtr_queries_count(q)};
    h = dist_hash(h, nums, sizeof nums);
    h = dist_hash(h, &o.use_compact, sizeof o.use_compact);
    double fusion[4] = {(double)o.fusion.method, o.fusion.rrf_k, o.alpha, split_docs};
    h = dist_hash(h, fusion, sizeof fusion);
    dist_agree me = {ready, p.parts.model ? gtr_model_fingerprint(p.parts.model) : 0, (uint64_t)p.docs,
                     h};
    if (!dist_agree_all(d, &me)) goto done;

    if (split_docs ? dist_search_docs(d, &p, q, &o, &o.k, &run, 1)
                   : dist_search(d, p.parts.rt, q, &o, &o.k, &run, 1))
        goto done;
    if (d->rank == 0) {
        char deftag[32];
        snprintf(deftag, sizeof deftag, "gtr-%s", gtr_retrieval_method_name(o.method));
        if (gtr_run_write(run, out, tag ? tag : deftag, &err)) {
            dist_errorf(d, 1, "%s", err.message);
            goto done;
        }
        fprintf(stderr, "gtr-mpi search: %zu queries on %d ranks, %zu hits -> %s\n", gtr_queries_count(q), d->size,
                gtr_run_num_docs(run), out);
    }
    rc = 0;
done:
    gtr_run_free(run);
    dist_parts_free(&p);
    gtr_queries_free(q);
    gtr_pool_free(pool);
    return rc;
}
