/*
 * eval.h — internals of the trec_eval re-implementation: qrels and runs in memory, the
 * measure set, and the per-query computation. The public API is in gtr.h ("eval" section).
 */
#ifndef GTR_EVAL_INTERNAL_H
#define GTR_EVAL_INTERNAL_H

#include "core/core.h"

/* ---- reading text files (lines.c) ------------------------------------------ */

/* Lines of an in-memory text: "\n" ends a line, a "\r" before it is dropped. */
typedef struct gtr_lines {
    const char *p, *end;
    size_t line; /* 1-based number of the line last returned */
} gtr_lines;
void gtr_lines_init(gtr_lines *it, const char *text, size_t len);
bool gtr_lines_next(gtr_lines *it, const char **s, size_t *n);

typedef struct gtr_field {
    const char *s;
    size_t n;
} gtr_field;
/* Split on runs of whitespace (space, tab, CR, VT, FF) as trec_eval does, or on single tabs
 * when tabs is true (BEIR TSV). Fills at most max fields; returns how many there are. */
size_t gtr_split_fields(const char *s, size_t n, bool tabs, gtr_field *f, size_t max);
/* True when the line is blank or a '#' comment (trec_eval 10 skips both). */
bool gtr_line_skippable(const char *s, size_t n);
/* Strict integer / floating-point field parsing. */
bool gtr_field_int(const gtr_field *f, long lo, long hi, long *out);
bool gtr_field_double(const gtr_field *f, double *out);

/* ---- qrels (qrels.c) ------------------------------------------------------ */

typedef struct gtr_judgment {
    uint32_t doc; /* id in gtr_qrels.docs */
    int rel;
} gtr_judgment;

struct gtr_qrels {
    gtr_strmap qids;   /* query ids, in first-seen order */
    gtr_strmap docs;   /* document ids */
    uint32_t *sorted;  /* query indices ordered by id (bytewise) */
    size_t *start;     /* [nq + 1]: query q's judgments are jud[start[q] .. start[q+1]) */
    gtr_judgment *jud; /* grouped by query, each group ordered by doc */
    size_t n_jud;
};

/* The judgments of query q (an index into qids). */
static inline const gtr_judgment *gtr_qrels_judgments(const gtr_qrels *q, uint32_t qi, size_t *n)
{
    *n = q->start[qi + 1] - q->start[qi];
    return q->jud + q->start[qi];
}

/* ---- runs (run.c) --------------------------------------------------------- */

struct gtr_run {
    gtr_strmap qids;  /* query ids, in first-added order */
    gtr_strmap docs;  /* document ids */
    uint32_t *eq, *ed; /* entry i: query eq[i], document ed[i], score es[i], line eline[i] */
    double *es;
    uint32_t *eline;  /* source line (0 when added in memory) */
    size_t n, cap;
    /* (query, document) pairs seen: open addressing over keys q << 32 | d, value = entry + 1 */
    uint64_t *pkeys;
    uint32_t *pvals;
    size_t pcap;
};

/* The run grouped by query and ranked as trec_eval ranks it. */
typedef struct gtr_ranking {
    size_t *start;  /* [nq + 1] over order */
    uint32_t *order; /* entry indices: query by query, best first */
} gtr_ranking;
gtr_status gtr_run_rank(const gtr_run *run, gtr_ranking *rk, gtr_error *err);
void gtr_ranking_free(gtr_ranking *rk);

/* ---- measures (measures.c) ------------------------------------------------ */

/* In trec_eval's print order. */
typedef enum gtr_measure_kind {
    GTR_M_NUM_Q = 0,
    GTR_M_NUM_RET,
    GTR_M_NUM_REL,
    GTR_M_NUM_REL_RET,
    GTR_M_MAP,
    GTR_M_RECIP_RANK,
    GTR_M_P,
    GTR_M_RECALL,
    GTR_M_NDCG,
    GTR_M_NDCG_CUT,
    GTR_M_MAP_CUT,
    GTR_M_COUNT
} gtr_measure_kind;

typedef struct gtr_measure {
    bool on;
    size_t n_cut; /* cutoff measures: ascending, distinct, > 0 */
    long *cuts;
} gtr_measure;

struct gtr_measures {
    gtr_measure m[GTR_M_COUNT];
};

const char *gtr_measure_name(gtr_measure_kind k);
bool gtr_measure_has_cutoffs(gtr_measure_kind k);
bool gtr_measure_is_count(gtr_measure_kind k); /* printed as an integer */

/* ---- per-query computation (compute.c) ------------------------------------ */

/* What trec_eval's form_res_rels gives every measure for one query. */
typedef struct gtr_query_rels {
    const int *rel;    /* [num_ret] judgment of each ranked document, best first: level >= 0,
                          -1 not in the qrels, -2 judged < 0 (in the pool but unjudged) */
    size_t num_ret;
    const int *ideal;  /* [num_rel] the judgments >= 1, descending: the ideal ranking's gains */
    size_t num_rel;
} gtr_query_rels;

/* Compute every selected measure for one query into out (one slot per result column, in
 * column order). */
void gtr_eval_compute(const gtr_measures *ms, const gtr_query_rels *q, double *out);
/* Number of result columns for a measure set. */
size_t gtr_eval_columns(const gtr_measures *ms);

#endif
