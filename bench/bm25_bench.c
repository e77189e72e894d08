/* bm25_bench.c — BM25 on BEIR SciFact: index build time, search throughput (1 thread and all
 * cores, top 1000) and effectiveness with Lucene's one-byte length norms and with exact
 * lengths. Usage: bm25_bench DATASET_DIR WORK_DIR. Prints a Markdown table. */
#include "gtr.h"
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bm25_bench DATASET_DIR WORK_DIR\n");
        return 2;
    }
    gtr_error e = {0};
    char corpus[1024], queries[1024], qrels_path[1024], index[1024];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", argv[1]);
    snprintf(queries, sizeof queries, "%s/queries.jsonl", argv[1]);
    snprintf(qrels_path, sizeof qrels_path, "%s/qrels/test.tsv", argv[1]);
    snprintf(index, sizeof index, "%s/bench.bm25", argv[2]);
    gtr_pool *pool = gtr_pool_create(0, &e);
    gtr_bm25_build_options bo = gtr_bm25_default_build_options();
    bo.pool = pool;
    gtr_bm25_build_stats st;
    double t0 = gtr_now_seconds();
    if (gtr_bm25_build(corpus, index, &bo, &st, &e)) goto fail;
    double t_build = gtr_now_seconds() - t0;
    t0 = gtr_now_seconds();
    gtr_bm25 *ix = gtr_bm25_open(index, &e);
    if (!ix) goto fail;
    double t_open = gtr_now_seconds() - t0;
    gtr_qrels *qrels = gtr_qrels_load(qrels_path, &e);
    if (!qrels) goto fail;
    gtr_text_reader *r = gtr_text_reader_open(queries, GTR_TEXT_JSONL, &e);
    if (!r) goto fail;
    size_t nq = 0, cap = 1024;
    char **texts = malloc(cap * sizeof *texts), **ids = malloc(cap * sizeof *ids);
    for (;;) {
        gtr_record rec;
        bool eof;
        if (gtr_text_reader_next(r, &rec, &eof, &e)) goto fail;
        if (eof) break;
        if (!gtr_qrels_has_query(qrels, rec.id, rec.id_len)) continue;
        if (nq == cap) {
            cap *= 2;
            texts = realloc(texts, cap * sizeof *texts);
            ids = realloc(ids, cap * sizeof *ids);
        }
        texts[nq] = strndup(rec.text, rec.text_len);
        ids[nq++] = strndup(rec.id, rec.id_len);
    }
    gtr_text_reader_close(r);
    size_t k = 1000;
    gtr_hit *hits = malloc(nq * k * sizeof *hits);
    size_t *n_hits = malloc(nq * sizeof *n_hits);
    printf("| corpus | docs | terms | postings | build (s) | docs/s | open+verify (s) |\n|---|---|---|---|---|---|---|\n");
    printf("| %s | %llu | %llu | %llu | %.2f | %.0f | %.3f |\n\n", argv[1], (unsigned long long)st.docs,
           (unsigned long long)st.terms, (unsigned long long)st.postings, t_build, (double)st.docs / t_build, t_open);
    printf("| norms | threads | queries | top-k | queries/s | nDCG@10 | R@100 | R@1000 | MAP@100 |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int exact = 0; exact < 2; exact++)
        for (int threaded = 0; threaded < 2; threaded++) {
            gtr_bm25_search_options o = gtr_bm25_default_search_options();
            o.exact_lengths = exact;
            o.pool = threaded ? pool : NULL;
            o.skip_ids = (const char *const *)ids;
            double best = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                t0 = gtr_now_seconds();
                if (gtr_bm25_search(ix, (const char *const *)texts, NULL, nq, k, &o, hits, n_hits, &e)) goto fail;
                double t = gtr_now_seconds() - t0;
                if (t < best) best = t;
            }
            gtr_run *run = gtr_run_new(&e);
            for (size_t i = 0; i < nq; i++)
                for (size_t j = 0; j < n_hits[i]; j++) {
                    size_t dl;
                    const char *d = gtr_bm25_doc_id(ix, hits[i * k + j].doc, &dl);
                    if (gtr_run_add(run, ids[i], strlen(ids[i]), d, dl, hits[i * k + j].score, &e)) goto fail;
                }
            gtr_eval_result *res = gtr_run_evaluate(qrels, run, NULL, GTR_EVAL_COMPLETE, &e);
            if (!res) goto fail;
            printf("| %s | %d | %zu | %zu | %.0f | %.4f | %.4f | %.4f | %.4f |\n", exact ? "exact lengths" : "Lucene 1-byte",
                   threaded ? gtr_pool_size(pool) : 1, nq, k, (double)nq / best, gtr_eval_get(res, "ndcg_cut_10"),
                   gtr_eval_get(res, "recall_100"), gtr_eval_get(res, "recall_1000"), gtr_eval_get(res, "map_cut_100"));
            gtr_eval_free(res);
            gtr_run_free(run);
        }
    return 0;
fail:
    fprintf(stderr, "bm25_bench: %s\n", e.message);
    return 1;
}
