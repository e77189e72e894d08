/* cmd_beir.c — `gtr beir`: the whole BEIR pipeline on one dataset folder: build (or reuse a
 * cached) index, search the split's judged queries, evaluate as BEIR does, and print the
 * metrics beside published numbers. */
#include "cli.h"


#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Published nDCG@10 on BEIR test splits, to read our numbers against (external facts, not
 * computed here):
 *  - BM25 (BEIR): Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of
 *    Information Retrieval Models", NeurIPS 2021 Datasets and Benchmarks (Elasticsearch BM25).
 *  - BM25 flat (Anserini): the Pyserini/Anserini BEIR regressions, "flat" index,
 *    k1 = 0.9, b = 0.4 (SciFact: nDCG@10 0.6789, R@100 0.9253).
 *  - GTR: Ni et al., "Large Dual Encoders Are Generalizable Retrievers", arXiv 2112.07899,
 *    BEIR nDCG@10 of GTR-Base and GTR-XXL.
 * Add a row when a figure is checked against its source. */
static const struct published {
    const char *dataset;
    double bm25_beir, bm25_anserini_flat, gtr_base, gtr_xxl;
} published[] = {
    {"scifact", 0.665, 0.679, 0.600, 0.662},
};

static const struct published *find_published(const char *name)
{
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++)
        if (!strcmp(published[i].dataset, name)) return &published[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr beir -d DATASET_DIR [--method M[,M...]] [-m MODEL_DIR] [--split test]\n"
            "                [-k 1000] [--json] [--cache DIR] [options]\n"
            "\n"
            "Run a BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv, as unpacked by\n"
            "`gtr pull-dataset`) end to end: build the index (or reuse the cached one), search the\n"
            "queries judged in qrels/SPLIT.tsv for the top K, and evaluate as BEIR does:\n"
            "  - ignore_identical_ids: a document whose id equals the query id is never returned;\n"
            "  - measures with trec_eval's semantics, averaged over the judged queries (pytrec_eval);\n"
            "  - MRR@10 as BEIR's custom metric: reciprocal rank within the top 10.\n"
            "The table shows nDCG@10, Recall@100, MAP@100 and MRR@10 beside published nDCG@10\n"
            "figures for the dataset where known.\n"
            "\n"
            "options:\n"
            "  -d, --dataset DIR        BEIR dataset folder\n"
            "      --method LIST        dense, bm25, hybrid, or a comma list (default dense)\n"
            "  -m, --model DIR          GTR model (dense and hybrid)\n"
            "      --split NAME         qrels split (default test)\n"
            "  -k, --top K              hits per query (default 1000)\n"
            "      --json               print one JSON object keyed by trec_eval measure names\n"
            "                           (\"ndcg_cut_10\", ..., plus \"recip_rank_cut_10\" = MRR@10);\n"
            "                           with several methods, one such object per method\n"
            "      --cache DIR          where indexes are kept between runs (default\n"
            "                           $GTR_CACHE, else $XDG_CACHE_HOME/gtr, else ~/.cache/gtr),\n"
            "                           keyed by the corpus checksum and the model fingerprint\n"
            "      --save-runs DIR      also write each method's run to DIR/METHOD.trec\n"
            "      --fusion rrf|interp  hybrid fusion (default rrf, k = 60)\n"
            "      --alpha A            interp: weight of the dense scores (default 0.5)\n"
            "      --ann-lists N        dense: approximate search over an IVF index of N lists\n"
            "                           (built once, cached beside the dense index)\n"
            "      --nprobe N           with --ann-lists: lists scanned per query (default: the\n"
            "                           smallest reaching recall@10 0.995 against exact search\n"
            "                           on 200 sample documents, gtr ann-tune's choice)\n"
            "      --compact f16|int8   keep a compact copy in the dense index and search with it\n"
            "      --dtype f32|bf16|int8  model compute precision (default f32; bf16 encodes about\n"
            "                           twice as fast on CPUs with AVX-512 BF16)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "  -q, --quiet              no progress on stderr\n"
            "  -h, --help               this help\n"
            "\n"
            "example:\n"
            "  gtr beir -d datasets/scifact --method bm25,dense,hybrid -m models/gtr-t5-base\n");
}

typedef struct beir_ctx {
    const char *dir, *name, *model_dir, *split, *cache_root, *save_runs;
    const char *corpus; /* the dataset's corpus.jsonl */
    gtr_beir *beir;
    char *cache;
    gtr_retrieve_options o;
    gtr_index_compact compact;
    gtr_compute_dtype dtype;
    bool json, quiet;
    int threads;
    gtr_pool *pool;
    gtr_qrels *qrels;
    gtr_queries *q;
    size_t n_docs;
    cli_parts parts; /* the model, the cached indexes (open_dense, open_bm25, open_ann), the retriever */
    uint32_t ann_lists; /* --ann-lists: approximate dense search over a cached IVF index */
} beir_ctx;

static char *join(const char *a, const char *b) { return cli_path_join("beir", a, b); }

/* <cache root>/beir/<dataset>-<CRC-32 of corpus.jsonl> (gtr_beir_cache_dir) */
static int cache_dir(beir_ctx *c)
{
    gtr_error err;
    return gtr_beir_cache_dir(c->beir, c->cache_root, &c->cache, &err) ? cli_fail("beir", &err) : 0;
}

static int open_bm25(beir_ctx *c)
{
    char *path = join(c->cache, "bm25.idx");
    if (!path) return 1;
    gtr_error err;
    int rc = 0;
    if (cli_file_exists(path) && (c->parts.bm25 = gtr_bm25_open(path, &err))) goto done;
    if (cli_file_exists(path) && !c->quiet) fprintf(stderr, "gtr beir: rebuilding the cached BM25 index (%s)\n", err.message);
    cli_progress bar;
    cli_progress_init(&bar, "bm25 index", "docs", c->quiet);
    gtr_bm25_build_options bo = gtr_bm25_default_build_options();
    bo.pool = c->pool;
    bo.progress = cli_progress_stop_cb;
    bo.progress_user = &bar;
    gtr_bm25_build_stats bs;
    if (gtr_bm25_build(c->corpus, path, &bo, &bs, &err)) {
        if (bar.drawn) fputc('\n', stderr);
        rc = cli_fail("beir", &err);
        goto done;
    }
    cli_progress_done(&bar, bs.docs);
    if (!(c->parts.bm25 = gtr_bm25_open(path, &err))) rc = cli_fail("beir", &err);
done:
    free(path);
    return rc;
}

static int open_dense(beir_ctx *c)
{
    if (!c->model_dir) return cli_errorf("beir", 2, "dense and hybrid retrieval need -m MODEL_DIR");
    gtr_model_options mo;
    if (!cli_model_options("beir", &mo)) return 2;
    mo.pool = c->pool;
    mo.dtype = c->dtype;
    gtr_error err;
    if (!(c->parts.model = gtr_model_load(c->model_dir, &mo, &err))) return cli_fail("beir", &err);
    /* one cached index per model, compute precision and compact kind */
    char name[80];
    static const char *suffix[] = {"", "-f16", "-int8"}, *dt[] = {"", "-bf16", "-int8"};
    snprintf(name, sizeof name, "dense-%016llx%s%s.gtri", (unsigned long long)gtr_model_fingerprint(c->parts.model),
             dt[c->dtype], suffix[c->compact]);
    char *path = join(c->cache, name);
    if (!path) return 1;
    int rc = 0;
    if (cli_file_exists(path)) {
        if ((c->parts.dense = gtr_index_open(path, 0, c->pool, &err)) && !gtr_index_check_model(c->parts.dense, c->parts.model, &err))
            goto done;
        gtr_index_free(c->parts.dense);
        c->parts.dense = NULL;
        if (!c->quiet) fprintf(stderr, "gtr beir: rebuilding the cached dense index (%s)\n", err.message);
    }
    gtr_index_build_options o = gtr_index_default_build_options();
    char *hint = realpath(c->model_dir, NULL);
    o.model_hint = hint;
    o.compact = c->compact;
    cli_progress bar;
    cli_progress_init(&bar, "encoding corpus", "docs", c->quiet);
    o.progress = cli_progress_stop_cb;
    o.progress_user = &bar;
    gtr_index_build_stats st;
    cli_stop_saved old;
    cli_stop_catch(&old);
    gtr_status s = gtr_index_build(c->parts.model, c->corpus, NULL, path, &o, &st, &err);
    cli_stop_restore(&old);
    free(hint);
    if (s) {
        if (bar.drawn) fputc('\n', stderr);
        rc = cli_fail("beir", &err);
        goto done;
    }
    cli_progress_done(&bar, st.docs_encoded + st.docs_resumed);
    if (!(c->parts.dense = gtr_index_open(path, 0, c->pool, &err))) rc = cli_fail("beir", &err);
done:
    free(path);
    return rc;
}

/* --ann-lists N: the IVF index of the dense index, cached beside it (rebuilt when stale) */
static int open_ann(beir_ctx *c)
{
    char name[96];
    snprintf(name, sizeof name, "dense-%016llx-ivf%u.ivf",
             (unsigned long long)gtr_index_fingerprint(c->parts.dense), c->ann_lists);
    char *path = join(c->cache, name);
    if (!path) return 1;
    gtr_error err;
    int rc = 0;
    if (cli_file_exists(path) && (c->parts.ann = gtr_ann_open(path, c->parts.dense, &err))) goto done;
    gtr_ann_build_options o = gtr_ann_default_build_options();
    o.n_lists = c->ann_lists;
    o.pool = c->pool;
    if (gtr_ann_build(c->parts.dense, path, &o, &err) || !(c->parts.ann = gtr_ann_open(path, c->parts.dense, &err)))
        rc = cli_fail("beir", &err);
done:
    if (rc == 0 && c->o.nprobe == 0) { /* tuned: the smallest nprobe with recall@10 >= 0.995 */
        double rec;
        if (gtr_ann_tune(c->parts.ann, 0.995, 10, 200, 0, c->pool, &c->o.nprobe, &rec, &err)) rc = cli_fail("beir", &err);
        else if (!c->quiet) fprintf(stderr, "beir: --nprobe %u (recall@10 %.4f against exact search on sample documents)\n", c->o.nprobe, rec);
    }
    free(path);
    return rc;
}

/* the metrics of one method */
typedef struct scores {
    gtr_retrieval_method method;
    gtr_eval_result *full; /* the default measure set over the top K */
    double mrr10;
} scores;

static int evaluate(beir_ctx *c, const gtr_hit *hits, const size_t *n_hits, scores *s)
{
    gtr_error err;
    int rc = 1;
    gtr_run *run = cli_hits_run("beir", c->q, hits, n_hits, c->o.k, c->o.k);
    gtr_run *run10 = run ? cli_hits_run("beir", c->q, hits, n_hits, c->o.k, 10) : NULL;
    gtr_measures *m = NULL, *rr = NULL;
    gtr_eval_result *r10 = NULL;
    if (!run || !run10) goto done;
    if (!(m = gtr_measures_parse(NULL, &err)) || !(rr = gtr_measures_parse("recip_rank", &err))) {
        cli_fail("beir", &err);
        goto done;
    }
    /* every split query is in the run (with no hits if nothing came back), so the default
     * averaging (judged queries in the run) is BEIR's mean over all judged queries */
    if (!(s->full = gtr_run_evaluate(c->qrels, run, m, 0, &err)) || !(r10 = gtr_run_evaluate(c->qrels, run10, rr, 0, &err))) {
        cli_fail("beir", &err);
        goto done;
    }
    s->mrr10 = gtr_eval_get(r10, "recip_rank");
    if (c->save_runs) {
        char name[64];
        snprintf(name, sizeof name, "%s.trec", gtr_retrieval_method_name(s->method));
        char *path = join(c->save_runs, name);
        char tag[32];
        snprintf(tag, sizeof tag, "gtr-%s", gtr_retrieval_method_name(s->method));
        if (!path || gtr_dir_create(c->save_runs, &err) || gtr_run_write(run, path, tag, &err)) {
            if (path) cli_fail("beir", &err);
            free(path);
            goto done;
        }
        free(path);
    }
    rc = 0;
done:
    gtr_eval_free(r10);
    gtr_measures_free(m);
    gtr_measures_free(rr);
    gtr_run_free(run);
    gtr_run_free(run10);
    return rc;
}

static void print_json_one(const scores *s, const char *indent)
{
    printf("{");
    for (size_t j = 0; j < gtr_eval_num_values(s->full); j++)
        printf("%s\n%s  \"%s\": %.17g", j ? "," : "", indent, gtr_eval_value_name(s->full, j),
               gtr_eval_value(s->full, j));
    printf(",\n%s  \"recip_rank_cut_10\": %.17g\n%s}", indent, s->mrr10, indent);
}

static void print_table(const beir_ctx *c, const scores *s, size_t n)
{
    const struct published *p = find_published(c->name);
    printf("BEIR %s, split %s: %zu queries, %zu documents, top %zu, identical ids ignored\n\n", c->name,
           c->split, gtr_queries_count(c->q), c->n_docs, c->o.k);
    printf("%-8s %8s %11s %8s %8s   %s\n", "method", "nDCG@10", "Recall@100", "MAP@100", "MRR@10",
           "published nDCG@10");
    for (size_t i = 0; i < n; i++) {
        char pub[160] = "-";
        if (p && s[i].method == GTR_RETRIEVE_BM25)
            snprintf(pub, sizeof pub, "BM25 %.3f (BEIR), %.3f (Anserini flat)", p->bm25_beir, p->bm25_anserini_flat);
        else if (p && s[i].method == GTR_RETRIEVE_DENSE)
            snprintf(pub, sizeof pub, "GTR-Base %.3f, GTR-XXL %.3f", p->gtr_base, p->gtr_xxl);
        printf("%-8s %8.4f %11.4f %8.4f %8.4f   %s\n", gtr_retrieval_method_name(s[i].method),
               gtr_eval_get(s[i].full, "ndcg_cut_10"), gtr_eval_get(s[i].full, "recall_100"),
               gtr_eval_get(s[i].full, "map_cut_100"), s[i].mrr10, pub);
    }
    static const char *dt[] = {"f32", "bf16", "int8"};
    if (c->model_dir) printf("\nmodel: %s (%s)\n", c->model_dir, dt[c->dtype]);
    if (p) printf("published: BEIR (Thakur et al. 2021), Anserini BEIR regressions, GTR (Ni et al. 2021)\n");
}

static int run_all(beir_ctx *c, const gtr_retrieval_method *methods, size_t n_methods)
{
    gtr_error err;
    if (!(c->qrels = gtr_beir_load_qrels(c->beir, &err))) return cli_fail("beir", &err);
    if (!(c->q = gtr_beir_load_queries(c->beir, c->qrels, &err))) return cli_fail("beir", &err);
    if (cache_dir(c)) return 1;
    bool need_dense = false, need_bm25 = false;
    for (size_t i = 0; i < n_methods; i++) {
        need_dense |= methods[i] != GTR_RETRIEVE_BM25;
        need_bm25 |= methods[i] != GTR_RETRIEVE_DENSE;
    }
    if (need_dense && !c->model_dir) return cli_errorf("beir", 2, "dense and hybrid retrieval need -m MODEL_DIR");
    if (need_bm25 && open_bm25(c)) return 1;
    if (need_dense && open_dense(c)) return 1;
    if (need_dense && c->ann_lists && open_ann(c)) return 1;
    c->n_docs = c->parts.dense ? gtr_index_count(c->parts.dense) : gtr_bm25_num_docs(c->parts.bm25);
    scores s[3];
    memset(s, 0, sizeof s);
    if (!cli_parts_retriever("beir", &c->parts, c->pool)) return 1;
    c->o.skip_ids = gtr_queries_ids(c->q); /* BEIR's ignore_identical_ids */
    int rc = 0;
    size_t done = 0;
    for (size_t i = 0; i < n_methods && !rc; i++) {
        gtr_retrieve_options o = c->o;
        o.method = methods[i];
        gtr_hit *hits;
        size_t *n_hits;
        if ((rc = cli_retrieve("beir", c->parts.rt, c->q, &o, c->quiet, &hits, &n_hits))) break;
        s[i].method = methods[i];
        rc = evaluate(c, hits, n_hits, &s[i]);
        free(hits);
        free(n_hits);
        if (!rc) done++;
    }
    if (!rc) {
        if (c->json && n_methods == 1) {
            print_json_one(&s[0], "");
            printf("\n");
        } else if (c->json) {
            printf("{");
            for (size_t i = 0; i < n_methods; i++) {
                printf("%s\n  \"%s\": ", i ? "," : "", gtr_retrieval_method_name(s[i].method));
                print_json_one(&s[i], "  ");
            }
            printf("\n}\n");
        } else {
            print_table(c, s, n_methods);
        }
    }
    for (size_t i = 0; i < done; i++) gtr_eval_free(s[i].full);
    return rc;
}

int cmd_beir(int argc, char **argv)
{
    enum { O_METHOD = 1000, O_SPLIT, O_JSON, O_CACHE, O_SAVE, O_FUSION, O_ALPHA, O_COMPACT, O_DTYPE, O_ANN_LISTS, O_NPROBE };
    static const struct option longopts[] = {
        {"dataset", required_argument, NULL, 'd'}, {"method", required_argument, NULL, O_METHOD},
        {"model", required_argument, NULL, 'm'},   {"split", required_argument, NULL, O_SPLIT},
        {"top", required_argument, NULL, 'k'},     {"json", no_argument, NULL, O_JSON},
        {"cache", required_argument, NULL, O_CACHE}, {"save-runs", required_argument, NULL, O_SAVE},
        {"fusion", required_argument, NULL, O_FUSION}, {"alpha", required_argument, NULL, O_ALPHA},
        {"compact", required_argument, NULL, O_COMPACT},
        {"ann-lists", required_argument, NULL, O_ANN_LISTS}, {"nprobe", required_argument, NULL, O_NPROBE}, {"threads", required_argument, NULL, 't'},
        {"dtype", required_argument, NULL, O_DTYPE},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    beir_ctx c;
    memset(&c, 0, sizeof c);
    c.split = "test";
    c.o = gtr_retrieve_default_options();
    c.o.k = 1000;
    const char *method_list = "dense";
    long long v;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:m:k:t:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': c.dir = optarg; break;
        case 'm': c.model_dir = optarg; break;
        case O_METHOD: method_list = optarg; break;
        case O_SPLIT:
            if (!*optarg || strchr(optarg, '/')) return cli_errorf("beir", 2, "--split expects a name like test");
            c.split = optarg;
            break;
        case 'k':
            if (!cli_parse_int("beir", "-k", optarg, 1, 1 << 20, &v)) return 2;
            c.o.k = (size_t)v;
            break;
        case O_JSON: c.json = true; break;
        case O_CACHE: c.cache_root = optarg; break;
        case O_SAVE: c.save_runs = optarg; break;
        case O_FUSION:
            if (!cli_parse_fusion("beir", optarg, &c.o.fusion.method)) return 2;
            break;
        case O_ALPHA:
            if (!cli_parse_double("beir", "--alpha", optarg, &c.o.alpha)) return 2;
            if (!(c.o.alpha >= 0 && c.o.alpha <= 1)) return cli_errorf("beir", 2, "--alpha must be in [0, 1]");
            break;
        case O_ANN_LISTS:
            if (!cli_parse_int("beir", "--ann-lists", optarg, 1, 1 << 24, &v)) return 2;
            c.ann_lists = (uint32_t)v;
            break;
        case O_NPROBE:
            if (!cli_parse_int("beir", "--nprobe", optarg, 1, 1 << 24, &v)) return 2;
            c.o.nprobe = (uint32_t)v;
            break;
        case O_COMPACT:
            if (!strcmp(optarg, "f16")) c.compact = GTR_COMPACT_F16;
            else if (!strcmp(optarg, "int8")) c.compact = GTR_COMPACT_INT8;
            else return cli_errorf("beir", 2, "--compact expects f16 or int8, got '%s'", optarg);
            c.o.use_compact = 1;
            break;
        case O_DTYPE:
            if (!cli_parse_dtype("beir", optarg, &c.dtype)) return 2;
            break;
        case 't':
            if (!cli_parse_int("beir", "--threads", optarg, 1, 1024, &v)) return 2;
            c.threads = (int)v;
            break;
        case 'q': c.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) return cli_errorf("beir", 2, "unexpected argument '%s' (gtr beir --help)", argv[optind]);
    if (!c.dir) return cli_errorf("beir", 2, "need -d DATASET_DIR (gtr beir --help)");
    gtr_retrieval_method methods[3];
    size_t n_methods = 0;
    char list[64];
    snprintf(list, sizeof list, "%s", method_list);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        gtr_retrieval_method m;
        if (gtr_retrieval_method_parse(t, &m, NULL)) return cli_errorf("beir", 2, "--method: unknown method '%s' (dense, bm25, hybrid)", t);
        for (size_t i = 0; i < n_methods; i++)
            if (methods[i] == m) return cli_errorf("beir", 2, "--method lists '%s' twice", t);
        if (n_methods == 3) return cli_errorf("beir", 2, "--method: at most three methods");
        methods[n_methods++] = m;
    }
    if (!n_methods) return cli_errorf("beir", 2, "--method: no method given");

    int rc = 1;
    gtr_error err;
    if (!(c.beir = gtr_beir_open(c.dir, c.split, &err))) {
        if (err.code == GTR_ERR_NOT_FOUND) rc = cli_errorf("beir", 1, "%s (gtr pull-dataset NAME fetches one)", err.message);
        else rc = cli_fail("beir", &err);
        goto done;
    }
    c.name = gtr_beir_name(c.beir);
    c.corpus = gtr_beir_corpus_path(c.beir);
    if (!(c.pool = gtr_pool_create(c.threads, &err))) {
        rc = cli_fail("beir", &err);
        goto done;
    }
    rc = run_all(&c, methods, n_methods);
done:
    gtr_queries_free(c.q);
    gtr_qrels_free(c.qrels);
    cli_parts_free(&c.parts);
    gtr_pool_free(c.pool);
    gtr_beir_free(c.beir);
    gtr_free(c.cache);
    return rc;
}
