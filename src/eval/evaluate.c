/* evaluate.c — trec_eval's main loop: pair each judged query with its ranking, compute the
 * measures, average them (BEIR's way by default, trec_eval -c's way on request) and print
 * the result exactly as trec_eval does. */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gtr_eval_result {
    size_t n_cols;
    char **names;    /* [n_cols] "ndcg_cut_10", ... */
    bool *is_count;  /* [n_cols] printed as an integer */
    double *summary; /* [n_cols] */
    size_t n_q;
    char **qids;     /* [n_q] evaluated queries, in id order */
    double *values;  /* [n_q * n_cols] */
    size_t n_unjudged;
    char **unjudged; /* [n_unjudged] run queries without judgments, in id order */
};

static void free_strs(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void gtr_eval_free(gtr_eval_result *r)
{
    if (!r) return;
    free_strs(r->names, r->n_cols);
    free(r->is_count);
    free(r->summary);
    free_strs(r->qids, r->n_q);
    free(r->values);
    free_strs(r->unjudged, r->n_unjudged);
    free(r);
}

static char *dupstr(const char *s, gtr_error *err)
{
    size_t n = strlen(s) + 1;
    char *p = gtr_xmalloc(n, "evaluation", err);
    if (p) memcpy(p, s, n);
    return p;
}

/* Column names as trec_eval builds them: the measure name, then "_<cutoff>". */
static gtr_status make_columns(gtr_eval_result *r, const gtr_measures *ms, gtr_error *err)
{
    r->n_cols = gtr_eval_columns(ms);
    r->names = gtr_xcalloc(r->n_cols, sizeof *r->names, "evaluation", err);
    r->is_count = gtr_xcalloc(r->n_cols, sizeof *r->is_count, "evaluation", err);
    r->summary = gtr_xcalloc(r->n_cols, sizeof *r->summary, "evaluation", err);
    if (!r->names || !r->is_count || !r->summary) return GTR_ERR_NOMEM;
    size_t c = 0;
    for (int k = 0; k < GTR_M_COUNT; k++) {
        const gtr_measure *m = &ms->m[k];
        if (!m->on) continue;
        char buf[64];
        if (gtr_measure_has_cutoffs((gtr_measure_kind)k)) {
            for (size_t j = 0; j < m->n_cut; j++) {
                snprintf(buf, sizeof buf, "%s_%ld", gtr_measure_name((gtr_measure_kind)k), m->cuts[j]);
                if (!(r->names[c++] = dupstr(buf, err))) return GTR_ERR_NOMEM;
            }
        } else {
            r->is_count[c] = gtr_measure_is_count((gtr_measure_kind)k);
            if (!(r->names[c++] = dupstr(gtr_measure_name((gtr_measure_kind)k), err))) return GTR_ERR_NOMEM;
        }
    }
    return GTR_OK;
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x > y ? -1 : x < y;
}

static int cmp_jud_doc(const void *key, const void *elem)
{
    uint32_t d = *(const uint32_t *)key, e = ((const gtr_judgment *)elem)->doc;
    return d < e ? -1 : d > e;
}

/* Scratch space reused across queries. */
typedef struct scratch {
    int *rel, *ideal;
    size_t rel_cap, ideal_cap;
} scratch;

static gtr_status grow(int **p, size_t *cap, size_t need, gtr_error *err)
{
    if (need <= *cap) return GTR_OK;
    int *q = gtr_xrealloc(*p, need * sizeof *q, "evaluation", err);
    if (!q) return GTR_ERR_NOMEM;
    *p = q;
    *cap = need;
    return GTR_OK;
}

/* trec_eval's form_res_rels for one query: the judgment of each ranked document and the
 * ideal gains. qi: query in the qrels; run_q: query in the run (UINT32_MAX: not in the run);
 * doc_map: run document -> qrels document (GTR_STRMAP_NONE when never judged). */
static gtr_status query_rels(const gtr_qrels *qrels, uint32_t qi, const gtr_run *run,
                             const gtr_ranking *rk, uint32_t run_q, const uint32_t *doc_map,
                             scratch *sc, gtr_query_rels *out, gtr_error *err)
{
    size_t nj;
    const gtr_judgment *jud = gtr_qrels_judgments(qrels, qi, &nj);
    size_t nr = run_q == UINT32_MAX ? 0 : rk->start[run_q + 1] - rk->start[run_q];
    gtr_status st = grow(&sc->rel, &sc->rel_cap, nr + 1, err);
    if (!st) st = grow(&sc->ideal, &sc->ideal_cap, nj + 1, err);
    if (st) return st;
    for (size_t k = 0; k < nr; k++) {
        uint32_t e = rk->order[rk->start[run_q] + k];
        uint32_t d = doc_map[run->ed[e]];
        const gtr_judgment *j = d == GTR_STRMAP_NONE ? NULL : bsearch(&d, jud, nj, sizeof *jud, cmp_jud_doc);
        sc->rel[k] = !j ? -1 : j->rel < 0 ? -2 : j->rel;
    }
    size_t nrel = 0;
    for (size_t k = 0; k < nj; k++)
        if (jud[k].rel >= 1) sc->ideal[nrel++] = jud[k].rel;
    qsort(sc->ideal, nrel, sizeof *sc->ideal, cmp_int_desc);
    *out = (gtr_query_rels){sc->rel, nr, sc->ideal, nrel};
    return GTR_OK;
}

/* Run queries that have no judgments, sorted by id. */
static gtr_status collect_unjudged(gtr_eval_result *r, const gtr_qrels *qrels, const gtr_run *run,
                                   gtr_error *err)
{
    size_t nq = run->qids.n, n = 0;
    uint32_t *order = gtr_xmalloc((nq ? nq : 1) * sizeof *order, "evaluation", err);
    gtr_status st = order ? gtr_strmap_sorted_ids(&run->qids, order, err) : GTR_ERR_NOMEM;
    for (size_t i = 0; i < nq && !st; i++) { /* keep the judged-free ones, in id order */
        size_t len;
        const char *s = gtr_strmap_key(&run->qids, order[i], &len);
        if (gtr_strmap_find(&qrels->qids, s, len) == GTR_STRMAP_NONE) order[n++] = order[i];
    }
    if (!st) {
        r->unjudged = gtr_xcalloc(n ? n : 1, sizeof *r->unjudged, "evaluation", err);
        if (!r->unjudged) st = GTR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n && !st; i++, r->n_unjudged++)
        if (!(r->unjudged[i] = dupstr(gtr_strmap_key(&run->qids, order[i], NULL), err))) st = GTR_ERR_NOMEM;
    free(order);
    return st;
}

static gtr_status evaluate(gtr_eval_result *r, const gtr_qrels *qrels, const gtr_run *run,
                           const gtr_measures *ms, bool complete, gtr_error *err)
{
    gtr_status st = make_columns(r, ms, err);
    if (!st) st = collect_unjudged(r, qrels, run, err);
    if (st) return st;
    gtr_ranking rk = {0};
    if ((st = gtr_run_rank(run, &rk, err))) return st;
    size_t nq = gtr_qrels_num_queries(qrels);
    uint32_t *doc_map = gtr_xmalloc((run->docs.n ? run->docs.n : 1) * sizeof *doc_map, "evaluation", err);
    r->qids = gtr_xcalloc(nq ? nq : 1, sizeof *r->qids, "evaluation", err);
    r->values = gtr_xcalloc((nq ? nq : 1) * (r->n_cols ? r->n_cols : 1), sizeof *r->values, "evaluation", err);
    scratch sc = {0};
    if (!doc_map || !r->qids || !r->values) st = GTR_ERR_NOMEM;
    for (size_t d = 0; d < run->docs.n && !st; d++) {
        size_t len;
        const char *s = gtr_strmap_key(&run->docs, (uint32_t)d, &len);
        doc_map[d] = gtr_strmap_find(&qrels->docs, s, len);
    }
    /* Judged queries in id order, as trec_eval walks them. */
    for (size_t i = 0; i < nq && !st; i++) {
        uint32_t qi = qrels->sorted[i];
        size_t len;
        const char *qs = gtr_strmap_key(&qrels->qids, qi, &len);
        uint32_t run_q = gtr_strmap_find(&run->qids, qs, len);
        if (run_q == GTR_STRMAP_NONE) {
            if (!complete) continue; /* BEIR: only queries the run answered */
            run_q = UINT32_MAX;      /* -c: evaluated with an empty ranking */
        }
        gtr_query_rels q;
        if ((st = query_rels(qrels, qi, run, &rk, run_q, doc_map, &sc, &q, err))) break;
        double *v = r->values + r->n_q * r->n_cols;
        gtr_eval_compute(ms, &q, v);
        if (!(r->qids[r->n_q] = dupstr(qs, err))) {
            st = GTR_ERR_NOMEM;
            break;
        }
        r->n_q++;
        for (size_t c = 0; c < r->n_cols; c++) r->summary[c] += v[c];
    }
    if (!st && r->n_q == 0)
        st = gtr_seterr(err, GTR_ERR_MISMATCH,
                        "no query of the run has relevance judgments (%zu run queries, %zu judged)",
                        run->qids.n, nq);
    /* Means over the evaluated queries; the num_* columns stay totals (num_q: the count). */
    for (size_t c = 0; c < r->n_cols && !st; c++) {
        if (!strcmp(r->names[c], "num_q")) r->summary[c] = (double)r->n_q;
        else if (!r->is_count[c]) r->summary[c] /= (double)r->n_q;
    }
    free(sc.rel);
    free(sc.ideal);
    free(doc_map);
    gtr_ranking_free(&rk);
    return st;
}

gtr_eval_result *gtr_run_evaluate(const gtr_qrels *qrels, const gtr_run *run,
                          const gtr_measures *measures, unsigned flags, gtr_error *err)
{
    if (!qrels || !run) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "evaluation needs qrels and a run");
        return NULL;
    }
    gtr_measures *own = NULL;
    if (!measures && !(measures = own = gtr_measures_parse(NULL, err))) return NULL;
    gtr_eval_result *r = gtr_xcalloc(1, sizeof *r, "evaluation", err);
    gtr_status st = r ? evaluate(r, qrels, run, measures, flags & GTR_EVAL_COMPLETE, err) : GTR_ERR_NOMEM;
    gtr_measures_free(own);
    if (st) {
        gtr_eval_free(r);
        return NULL;
    }
    return r;
}

size_t gtr_eval_num_values(const gtr_eval_result *r) { return r ? r->n_cols : 0; }

const char *gtr_eval_value_name(const gtr_eval_result *r, size_t j)
{
    return r && j < r->n_cols ? r->names[j] : NULL;
}

double gtr_eval_value(const gtr_eval_result *r, size_t j)
{
    return r && j < r->n_cols ? r->summary[j] : NAN;
}

double gtr_eval_get(const gtr_eval_result *r, const char *name)
{
    if (!r || !name) return NAN;
    for (size_t j = 0; j < r->n_cols; j++)
        if (!strcmp(r->names[j], name)) return r->summary[j];
    return NAN;
}

size_t gtr_eval_num_queries(const gtr_eval_result *r) { return r ? r->n_q : 0; }

const char *gtr_eval_query_id(const gtr_eval_result *r, size_t i)
{
    return r && i < r->n_q ? r->qids[i] : NULL;
}

double gtr_eval_query_value(const gtr_eval_result *r, size_t i, size_t j)
{
    return r && i < r->n_q && j < r->n_cols ? r->values[i * r->n_cols + j] : NAN;
}

size_t gtr_eval_num_unjudged(const gtr_eval_result *r) { return r ? r->n_unjudged : 0; }

const char *gtr_eval_unjudged_id(const gtr_eval_result *r, size_t i)
{
    return r && i < r->n_unjudged ? r->unjudged[i] : NULL;
}

/* One line as trec_eval prints it: name left-aligned in 22 columns, a tab, the query (or
 * "all"), a tab, then "%ld" for counts and "%6.4f" for everything else. */
static gtr_status print_line(gtr_buf *b, const char *name, const char *qid, bool count, double v,
                             gtr_error *err)
{
    if (count) return gtr_buf_printf(b, err, "%-22s\t%s\t%ld\n", name, qid, (long)v);
    return gtr_buf_printf(b, err, "%-22s\t%s\t%6.4f\n", name, qid, v);
}

gtr_status gtr_eval_format(const gtr_eval_result *r, int per_query, char **out, size_t *len,
                           gtr_error *err)
{
    if (!r || !out) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "nothing to format");
    gtr_buf b = {0};
    gtr_status st = gtr_buf_reserve(&b, 0, err);
    for (size_t i = 0; i < r->n_q && per_query && !st; i++)
        for (size_t c = 0; c < r->n_cols && !st; c++) {
            if (!strcmp(r->names[c], "num_q")) continue; /* trec_eval prints it only in the summary */
            st = print_line(&b, r->names[c], r->qids[i], r->is_count[c], r->values[i * r->n_cols + c], err);
        }
    for (size_t c = 0; c < r->n_cols && !st; c++)
        st = print_line(&b, r->names[c], "all", r->is_count[c], r->summary[c], err);
    if (st) {
        gtr_buf_free(&b);
        return st;
    }
    *out = b.data;
    if (len) *len = b.len;
    return GTR_OK;
}
