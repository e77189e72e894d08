/* dist_search.h — the library's retrieval pipeline (gtr_retriever_search) across ranks. */
#ifndef GTR_MPI_DIST_SEARCH_H
#define GTR_MPI_DIST_SEARCH_H

#include "dist.h"

#include "../cli/cli.h"

/* Collective. Every rank holds all of q and the same retriever; rank r retrieves the r-th
 * contiguous piece of the queries (a query's hits do not depend on the others), rank 0 gathers
 * them in query order into n_runs runs, run i keeping max_rank[i] hits per query (every query
 * present, as gtr_run_add_hits). Returns 0 on every rank, or 1 on every rank after a failure (printed
 * by the rank that failed); runs stay NULL on the other ranks. */
int dist_search(const dist_ctx *d, gtr_retriever *rt, const gtr_queries *q, const gtr_retrieve_options *o,
                const size_t *max_rank, gtr_run **runs, size_t n_runs);
/* Collective, dense exact search split by documents: rank r searches every query over the
 * r-th contiguous piece of the index's n_docs documents (so it reads only that piece of the
 * vectors), rank 0 merges each query's lists into the best o->k by score, equal scores by id
 * descending: the hits of the whole index, so the run is the single-process one. */
int dist_search_docs(const dist_ctx *d, gtr_retriever *rt, const gtr_queries *q, const gtr_retrieve_options *o,
                     size_t n_docs, gtr_run **run);

#endif
