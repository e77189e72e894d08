/* dist_search.h — the library's retrieval pipeline (gtr_retriever_search) across ranks. */
#ifndef GTR_MPI_DIST_SEARCH_H
#define GTR_MPI_DIST_SEARCH_H

#include "dist.h"

#include "../cli/cli.h"

/* What a search opens on each rank (cli_parts: the dense index when index_path is not NULL, the
 * BM25 index when the method uses it, the query model unless the method is BM25, then, once
 * the caller has its queries, the retriever: cli_parts_retriever(d->cmd, &p->parts, pool)).
 * dist_parts_open returns false after printing one line naming the rank (the model's loader
 * prints its own); cli_parts_free(&p->parts) frees whatever was opened. */
typedef struct dist_parts {
    bool split_docs; /* set before dist_parts_open: rank r opens only what the r-th piece of the
                      * documents needs (gtr_index_open_part: its shards of a sharded index) */
    const char *ann; /* set before dist_parts_open (--ann): split queries, an IVF file of the
                      * index (gtr ann-build); split docs, the PREFIX of one IVF file per shard
                      * of a sharded index (gtr-mpi ann-build: PREFIX.shard-s-of-S) */
    size_t doc_begin, doc_end, docs; /* the documents of the dense index this rank searches; the total */
    size_t bm25_begin, bm25_end;     /* the BM25 index's documents this rank searches (--split docs) */
    gtr_pool *pool;
    cli_parts parts;
    /* split docs with ann: this rank's n_sh shards, each with its IVF file and retriever (entry 0
     * is parts.dense, parts.ann, parts.rt); ranks sharing one shard (more ranks than shards)
     * share its queries: this rank searches part q_part of q_parts of them */
    int n_sh;
    gtr_index **sh_ix;
    gtr_ann **sh_ann;
    gtr_retriever **sh_rt;
    size_t q_part, q_parts;
} dist_parts;
bool dist_parts_open(const dist_ctx *d, dist_parts *p, const char *index_path, const char *bm25_path,
                     const char *model_dir, gtr_retrieval_method method, int threads, gtr_pool *pool);
/* Once cli_parts_retriever has opened p->parts.rt: the retrievers of the rank's other shards
 * (split docs with ann); false after printing a line naming the rank. */
bool dist_parts_retrievers(const dist_ctx *d, dist_parts *p, gtr_pool *pool);
void dist_parts_free(dist_parts *p);

/* Collective. Every rank holds all of q and the same retriever; rank r retrieves the r-th
 * contiguous piece of the queries (a query's hits do not depend on the others), rank 0 gathers
 * them in query order into n_runs runs, run i keeping max_rank[i] hits per query (every query
 * present, as gtr_run_add_hits). Returns 0 on every rank, or 1 on every rank after a failure (printed
 * by the rank that failed); runs stay NULL on the other ranks. */
int dist_search(const dist_ctx *d, gtr_retriever *rt, const gtr_queries *q, const gtr_retrieve_options *o,
                const size_t *max_rank, gtr_run **runs, size_t n_runs);
/* Collective, search split by documents (dense exact or approximate, BM25 or hybrid): rank r
 * searches every query over its piece [p->doc_begin, p->doc_end) of the documents (so it reads
 * only that piece of the vectors: of a sharded index it opened only its shards), rank 0 merges
 * each query's lists into the best o->k by score, equal scores by id descending: the hits of
 * the whole index, so the run is the single-process one. BM25: each rank scores only its piece
 * of the BM25 index's documents with the whole index's statistics. Hybrid: each rank's best
 * max(depth, k) of both, merged per method on rank 0, then fused there as gtr_retriever_search
 * fuses. With p->ann (per-shard IVF files) the dense list of a query is the merge, by the same
 * order, of each shard's gtr_ann_search list: for S shards, what S single-process searches
 * `gtr search --index INDEX.shard-s-of-S --ann PREFIX.shard-s-of-S` give, merged, on any number
 * of ranks. n_runs runs as dist_search (run i: max_rank[i] hits per query). */
int dist_search_docs(const dist_ctx *d, const dist_parts *p, const gtr_queries *q, const gtr_retrieve_options *o,
                     const size_t *max_rank, gtr_run **runs, size_t n_runs);

#endif
