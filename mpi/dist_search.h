/* dist_search.h — the retrieval pipeline of `gtr search` (cli/retrieve.h) across ranks. */
#ifndef GTR_MPI_DIST_SEARCH_H
#define GTR_MPI_DIST_SEARCH_H

#include "dist.h"

#include "../cli/retrieve.h"

/* Collective. Every rank holds all of q and the same sources; rank r retrieves the r-th
 * contiguous piece of the queries (a query's hits do not depend on the others), rank 0 gathers
 * them in query order into n_runs runs, run i keeping max_rank[i] hits per query (every query
 * present, as rt_to_run). Returns 0 on every rank, or 1 on every rank after a failure (printed
 * by the rank that failed); runs stay NULL on the other ranks. */
int dist_search(const dist_ctx *d, const rt_sources *src, const rt_queries *q, const rt_options *o,
                const size_t *max_rank, gtr_run **runs, size_t n_runs);

#endif
