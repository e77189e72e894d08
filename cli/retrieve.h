/*
 * retrieve.h — the retrieval pipeline shared by `gtr search` and `gtr beir`: read queries,
 * encode them, search the dense index and/or the BM25 index, fuse, and collect ranked hits.
 */
#ifndef GTR_CLI_RETRIEVE_H
#define GTR_CLI_RETRIEVE_H

#include "cli.h"

typedef struct rt_queries {
    size_t n;
    const char *const *ids;   /* NUL-terminated */
    const char *const *texts; /* NUL-terminated (may contain NULs: use lens) */
    const size_t *lens;
    gtr_queries *owner;       /* the library's queries these point into (NULL: a view) */
} rt_queries;

/* Read BEIR queries (gtr_queries_load). Prints its own error; returns 0 or 1. */
int rt_load_queries(const char *cmd, const char *path, const gtr_qrels *judged, rt_queries *q);
/* One query from the command line (id "q"). */
int rt_single_query(const char *cmd, const char *text, rt_queries *q);
void rt_queries_free(rt_queries *q);

typedef enum rt_method { RT_DENSE = 0, RT_BM25, RT_HYBRID } rt_method;
const char *rt_method_name(rt_method m);
bool rt_parse_method(const char *s, rt_method *m);

typedef struct rt_options {
    rt_method method;
    size_t k;            /* hits per query */
    size_t depth;        /* hybrid: hits taken from each method before fusion (>= k) */
    gtr_fusion_options fusion;
    double alpha;        /* interpolation weight of the dense scores (BM25 gets 1 - alpha) */
    bool skip_self;      /* BEIR's ignore_identical_ids: drop a hit whose id is the query id */
    bool use_compact;    /* dense: first pass over the index's compact copy */
    uint32_t nprobe;     /* dense with src->ann: lists probed (0: the library's default) */
    size_t batch;        /* queries per encode call */
    bool want_docs;      /* hybrid: find each fused hit's dense document (for snippets) */
    gtr_pool *pool;
    bool quiet;
} rt_options;
void rt_default_options(rt_options *o);

typedef struct rt_sources {
    gtr_model *model; /* dense and hybrid */
    gtr_index *dense; /* dense and hybrid */
    gtr_bm25 *bm25;   /* bm25 and hybrid */
    gtr_ann *ann;     /* optional: approximate search instead of exact over dense */
} rt_sources;

typedef struct rt_hit {
    const char *id; /* into an open index (not NUL-terminated) */
    size_t len;
    double score;
    size_t dense_doc; /* document number in the dense index, or SIZE_MAX */
} rt_hit;

typedef struct rt_results {
    size_t nq, k;
    rt_hit *hits; /* [nq][k] */
    size_t *n;    /* [nq] */
} rt_results;

/* Run the queries. Prints its own error; returns 0 or 1. */
int rt_retrieve(const char *cmd, const rt_sources *src, const rt_queries *q, const rt_options *o,
                rt_results *res);
void rt_results_free(rt_results *r);

/* The results as a gtr_run (every query present, even with no hits). */
gtr_run *rt_to_run(const char *cmd, const rt_queries *q, const rt_results *r, size_t max_rank);

/* Load a model for queries: model_dir, or the index's recorded hint when NULL; checks it
 * against the index. Prints its own error; NULL on failure. */
gtr_model *rt_load_model(const char *cmd, const char *model_dir, const gtr_index *ix, int threads,
                         gtr_pool *pool);

#endif
