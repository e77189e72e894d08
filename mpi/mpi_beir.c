/* mpi_beir.c — `gtr-mpi beir`: BEIR evaluation with the queries split across ranks. The
 * judged queries of the split are searched as `gtr beir` does (ignore_identical_ids, top K),
 * rank 0 gathers the run and evaluates it with the same measures; `--json` prints what
 * `gtr beir --json` prints for the same index, byte for byte. --split-by docs: every rank
 * searches all the queries over its piece of the documents (dist_search_docs), the same run. The dense index is given (build
 * it with `gtr-mpi index`), so no cache is involved. */
#include "dist_search.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n N gtr-mpi beir -d DATASET_DIR --index INDEX [options]\n"
            "\n"
            "`gtr beir` for one method across N MPI ranks: the judged queries of qrels/SPLIT.tsv\n"
            "are split across ranks, each searches its share (document ids equal to the query id\n"
            "ignored, as BEIR), and rank 0 evaluates: nDCG@10, Recall@100, MAP@100, MRR@10, or with\n"
            "--json every default trec_eval measure, as `gtr beir --json` prints them.\n"
            "Build INDEX from DATASET_DIR/corpus.jsonl first (`gtr-mpi index` or `gtr index`).\n"
            "\n"
            "options:\n"
            "  -d, --dataset DIR    --index INDEX    -m, --model DIR (default: the index's)\n"
            "      --method dense|bm25|hybrid (default dense)   --bm25-index PATH\n"
            "      --split NAME (default test)   -k, --top K (default 1000)   --json\n"
            "      --save-run FILE  also write the run   -t, --threads N (per rank)\n"
            "      --split-by queries|docs  what the ranks share out (default queries). docs: each\n"
            "                           rank searches every query over its piece of the documents\n"
            "                           (of a sharded INDEX, gtr-mpi index --shards, only its shards;\n"
            "                           BM25: its piece of the BM25 index's documents), rank 0\n"
            "                           merges (hybrid: then fuses) as gtr-mpi search --split docs\n");
}

/* rank 0: the measures of run (top K) and MRR@10 (run10), printed as `gtr beir` does */
static int evaluate(const dist_ctx *d, const gtr_qrels *qrels, const gtr_run *run, const gtr_run *run10,
                    bool json, const char *method, size_t nq, size_t k)
{
    gtr_error err;
    gtr_measures *m = gtr_measures_parse(NULL, &err), *rr = m ? gtr_measures_parse("recip_rank", &err) : NULL;
    gtr_eval_result *full = rr ? gtr_run_evaluate(qrels, run, m, 0, &err) : NULL;
    gtr_eval_result *r10 = full ? gtr_run_evaluate(qrels, run10, rr, 0, &err) : NULL;
    int rc = 0;
    if (!r10) {
        rc = dist_errorf(d, 1, "%s", err.message);
    } else if (json) {
        printf("{");
        for (size_t j = 0; j < gtr_eval_num_values(full); j++)
            printf("%s\n  \"%s\": %.17g", j ? "," : "", gtr_eval_value_name(full, j), gtr_eval_value(full, j));
        printf(",\n  \"recip_rank_cut_10\": %.17g\n}\n", gtr_eval_get(r10, "recip_rank"));
    } else {
        printf("%zu judged queries, top %zu, identical ids ignored, %d ranks\n\n", nq, k, d->size);
        printf("%-8s %8s %11s %8s %8s\n", "method", "nDCG@10", "Recall@100", "MAP@100", "MRR@10");
        printf("%-8s %8.4f %11.4f %8.4f %8.4f\n", method, gtr_eval_get(full, "ndcg_cut_10"),
               gtr_eval_get(full, "recall_100"), gtr_eval_get(full, "map_cut_100"), gtr_eval_get(r10, "recip_rank"));
    }
    gtr_eval_free(full);
    gtr_eval_free(r10);
    gtr_measures_free(m);
    gtr_measures_free(rr);
    return rc;
}

int mpi_cmd_beir(const dist_ctx *d, int argc, char **argv)
{
    enum { O_INDEX = 1000, O_METHOD, O_BM25, O_SPLIT, O_JSON, O_SAVE, O_SPLIT_BY };
    static const struct option longopts[] = {
        {"dataset", required_argument, NULL, 'd'},   {"index", required_argument, NULL, O_INDEX},
        {"model", required_argument, NULL, 'm'},     {"method", required_argument, NULL, O_METHOD},
        {"bm25-index", required_argument, NULL, O_BM25}, {"split", required_argument, NULL, O_SPLIT},
        {"top", required_argument, NULL, 'k'},       {"json", no_argument, NULL, O_JSON},
        {"save-run", required_argument, NULL, O_SAVE}, {"threads", required_argument, NULL, 't'},
        {"split-by", required_argument, NULL, O_SPLIT_BY},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    bool split_docs = false;
    const char *dir = NULL, *index_path = NULL, *model_dir = NULL, *bm25_path = NULL, *split = "test",
               *save = NULL;
    bool json = false;
    gtr_retrieve_options o = gtr_retrieve_default_options();
    o.k = 1000;
    int threads = 0;
    long long v;
    int c;
    optind = 1;
    opterr = d->rank == 0;
    while ((c = getopt_long(argc, argv, "d:m:k:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case O_INDEX: index_path = optarg; break;
        case 'm': model_dir = optarg; break;
        case O_METHOD:
            if (gtr_retrieval_method_parse(optarg, &o.method, NULL))
                return dist_errorf(d, 2, "--method expects dense, bm25 or hybrid, got '%s'", optarg);
            break;
        case O_BM25: bm25_path = optarg; break;
        case O_SPLIT: split = optarg; break;
        case O_SPLIT_BY:
            if (strcmp(optarg, "queries") && strcmp(optarg, "docs"))
                return dist_errorf(d, 2, "--split-by expects queries or docs, got '%s'", optarg);
            split_docs = !strcmp(optarg, "docs");
            break;
        case 'k':
            if (!cli_parse_int("beir", "-k", optarg, 1, 1 << 20, &v)) return 2;
            o.k = (size_t)v;
            break;
        case O_JSON: json = true; break;
        case O_SAVE: save = optarg; break;
        case 't':
            if (!cli_parse_int("beir", "--threads", optarg, 1, 1024, &v)) return 2;
            threads = (int)v;
            break;
        case 'h': if (d->rank == 0) usage(stdout); return 0;
        default: if (d->rank == 0) usage(stderr); return 2;
        }
    }
    if (optind != argc) return dist_errorf(d, 2, "unexpected argument '%s' (gtr-mpi beir --help)", argv[optind]);
    if (!dir) return dist_errorf(d, 2, "need -d DATASET_DIR (gtr-mpi beir --help)");
    if (o.method != GTR_RETRIEVE_BM25 && !index_path) return dist_errorf(d, 2, "%s needs --index INDEX", gtr_retrieval_method_name(o.method));
    if (o.method != GTR_RETRIEVE_DENSE && !bm25_path) return dist_errorf(d, 2, "%s needs --bm25-index PATH", gtr_retrieval_method_name(o.method));

    gtr_error err;
    gtr_beir *beir = NULL;
    gtr_qrels *qrels = NULL;
    dist_parts p = {.split_docs = split_docs};
    gtr_queries *q = NULL;
    gtr_pool *pool = NULL;
    gtr_run *runs[2] = {NULL, NULL};
    int rc = 1;
    bool ready = true;
    if (!(beir = gtr_beir_open(dir, split, &err))) ready = dist_errorf(d, 0, "%s", err.message);
    if (ready && !(pool = gtr_pool_create(threads, &err))) ready = dist_errorf(d, 0, "%s", err.message);
    if (ready && !(qrels = gtr_beir_load_qrels(beir, &err))) ready = dist_errorf(d, 0, "%s", err.message);
    if (ready) /* BM25 alone needs no dense index */
        ready = dist_parts_open(d, &p, o.method != GTR_RETRIEVE_BM25 ? index_path : NULL, bm25_path, model_dir,
                                o.method, threads, pool);
    if (ready && !(q = gtr_beir_load_queries(beir, qrels, &err))) ready = cli_fail("beir", &err) == 0;
    if (ready) ready = cli_parts_retriever(d->cmd, &p.parts, pool);
    if (ready) o.skip_ids = gtr_queries_ids(q); /* BEIR's ignore_identical_ids */
    uint64_t h = dist_hash_str(dist_hash_str(0xcbf29ce484222325ull, dir), split);
    h = dist_hash_str(dist_hash_str(h, index_path), bm25_path);
    size_t nums[5] = {o.k, o.depth, (size_t)o.method, gtr_queries_count(q), (size_t)split_docs};
    h = dist_hash(h, nums, sizeof nums);
    dist_agree me = {ready, p.parts.model ? gtr_model_fingerprint(p.parts.model) : 0, (uint64_t)p.docs,
                     h};
    if (!dist_agree_all(d, &me)) goto done;

    size_t ranks[2] = {o.k, 10};
    if (split_docs ? dist_search_docs(d, &p, q, &o, ranks, runs, 2) : dist_search(d, p.parts.rt, q, &o, ranks, runs, 2))
        goto done;
    if (d->rank == 0) {
        char tag[32];
        snprintf(tag, sizeof tag, "gtr-%s", gtr_retrieval_method_name(o.method));
        if (save && gtr_run_write(runs[0], save, tag, &err)) {
            dist_errorf(d, 1, "%s", err.message);
            goto done;
        }
        if (evaluate(d, qrels, runs[0], runs[1], json, gtr_retrieval_method_name(o.method), gtr_queries_count(q), o.k)) goto done;
    }
    rc = 0;
done:
    gtr_run_free(runs[0]);
    gtr_run_free(runs[1]);
    dist_parts_free(&p);
    gtr_queries_free(q);
    gtr_qrels_free(qrels);
    gtr_pool_free(pool);
    gtr_beir_free(beir);
    return rc;
}
