/* run.c — ranked runs: built in memory (gtr_run_add) or read from TREC run files, ranked the
 * way trec_eval ranks them, and written back as TREC text. */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gtr_run *gtr_run_new(gtr_error *err)
{
    gtr_run *r = gtr_xcalloc(1, sizeof *r, "run", err);
    if (!r) return NULL;
    gtr_strmap_init(&r->qids);
    gtr_strmap_init(&r->docs);
    return r;
}

void gtr_run_free(gtr_run *r)
{
    if (!r) return;
    gtr_strmap_free(&r->qids);
    gtr_strmap_free(&r->docs);
    free(r->eq);
    free(r->ed);
    free(r->es);
    free(r->eline);
    free(r->pkeys);
    free(r->pvals);
    free(r);
}

size_t gtr_run_num_queries(const gtr_run *r) { return r ? r->qids.n : 0; }
size_t gtr_run_num_docs(const gtr_run *r) { return r ? r->n : 0; }

/* ---- the (query, document) pair set that catches duplicates ---- */

static size_t pair_slot(uint64_t key, size_t cap)
{
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ull;
    key ^= key >> 29;
    return (size_t)key & (cap - 1);
}

static gtr_status pairs_grow(gtr_run *r, gtr_error *err)
{
    size_t cap = r->pcap ? r->pcap * 2 : 1024;
    uint64_t *keys = gtr_xmalloc(cap * sizeof *keys, "run", err);
    uint32_t *vals = gtr_xcalloc(cap, sizeof *vals, "run", err);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return GTR_ERR_NOMEM;
    }
    for (size_t i = 0; i < r->pcap; i++) {
        if (!r->pvals[i]) continue;
        size_t s = pair_slot(r->pkeys[i], cap);
        while (vals[s]) s = (s + 1) & (cap - 1);
        keys[s] = r->pkeys[i];
        vals[s] = r->pvals[i];
    }
    free(r->pkeys);
    free(r->pvals);
    r->pkeys = keys;
    r->pvals = vals;
    r->pcap = cap;
    return GTR_OK;
}

/* Record the pair as entry e; returns the earlier entry + 1 when the pair exists, else 0. */
static uint32_t pairs_insert(gtr_run *r, uint32_t q, uint32_t d, uint32_t e)
{
    uint64_t key = (uint64_t)q << 32 | d;
    size_t s = pair_slot(key, r->pcap);
    for (; r->pvals[s]; s = (s + 1) & (r->pcap - 1))
        if (r->pkeys[s] == key) return r->pvals[s];
    r->pkeys[s] = key;
    r->pvals[s] = e + 1;
    return 0;
}

static gtr_status reserve_entry(gtr_run *r, gtr_error *err)
{
    if (r->n >= UINT32_MAX - 1) return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "run: too many documents");
    if ((r->n + 1) * 2 > r->pcap) {
        gtr_status st = pairs_grow(r, err);
        if (st) return st;
    }
    if (r->n < r->cap) return GTR_OK;
    size_t cap = r->cap ? r->cap * 2 : 1024;
    uint32_t *eq = gtr_xrealloc(r->eq, cap * sizeof *eq, "run", err);
    if (!eq) return GTR_ERR_NOMEM;
    r->eq = eq;
    uint32_t *ed = gtr_xrealloc(r->ed, cap * sizeof *ed, "run", err);
    if (!ed) return GTR_ERR_NOMEM;
    r->ed = ed;
    double *es = gtr_xrealloc(r->es, cap * sizeof *es, "run", err);
    if (!es) return GTR_ERR_NOMEM;
    r->es = es;
    uint32_t *el = gtr_xrealloc(r->eline, cap * sizeof *el, "run", err);
    if (!el) return GTR_ERR_NOMEM;
    r->eline = el;
    r->cap = cap;
    return GTR_OK;
}

/* Add one entry; name/line describe its source for the duplicate error (name NULL: in memory). */
static gtr_status add_entry(gtr_run *r, const char *qid, size_t qlen, const char *doc,
                            size_t dlen, double score, const char *name, size_t line,
                            gtr_error *err)
{
    uint32_t q, d;
    gtr_status st = reserve_entry(r, err);
    if (!st) st = gtr_strmap_intern(&r->qids, qid, qlen, &q, NULL, err);
    if (!st) st = gtr_strmap_intern(&r->docs, doc, dlen, &d, NULL, err);
    if (st) return st;
    uint32_t prev = pairs_insert(r, q, d, (uint32_t)r->n);
    if (prev) {
        const char *ds = gtr_strmap_key(&r->docs, d, NULL), *qs = gtr_strmap_key(&r->qids, q, NULL);
        if (name)
            return gtr_seterr(err, GTR_ERR_FORMAT,
                              "%s:%zu: document '%s' listed twice for query '%s' (also line %u)",
                              name, line, ds, qs, r->eline[prev - 1]);
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: document '%s' added twice for query '%s'",
                          ds, qs);
    }
    r->eq[r->n] = q;
    r->ed[r->n] = d;
    r->es[r->n] = score;
    r->eline[r->n] = (uint32_t)line;
    r->n++;
    return GTR_OK;
}

/* An id given by the caller: non-empty, no NUL byte (ids are kept NUL-terminated). */
static int bad_id(const char *id, size_t len) { return !id || !len || memchr(id, '\0', len); }

gtr_status gtr_run_add(gtr_run *r, const char *qid, size_t qid_len, const char *docid,
                       size_t docid_len, double score, gtr_error *err)
{
    if (!r || bad_id(qid, qid_len) || bad_id(docid, docid_len))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "run: missing run, or an empty query or document id or one with a NUL byte");
    if (isnan(score))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: score of '%.*s' for query '%.*s' is NaN",
                          (int)(docid_len > 200 ? 200 : docid_len), docid,
                          (int)(qid_len > 200 ? 200 : qid_len), qid);
    return add_entry(r, qid, qid_len, docid, docid_len, score, NULL, 0, err);
}

gtr_status gtr_run_add_query(gtr_run *r, const char *qid, size_t qid_len, gtr_error *err)
{
    if (!r || bad_id(qid, qid_len))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: missing query id, or one with a NUL byte");
    uint32_t q;
    return gtr_strmap_intern(&r->qids, qid, qid_len, &q, NULL, err);
}

gtr_status gtr_run_add_hits(gtr_run *r, const char *qid, size_t qid_len, const gtr_hit *hits,
                            size_t n, size_t max_rank, gtr_error *err)
{
    if (n && !hits) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: hits missing");
    gtr_status st = gtr_run_add_query(r, qid, qid_len, err);
    for (size_t j = 0; !st && j < n && j < max_rank; j++)
        st = gtr_run_add(r, qid, qid_len, hits[j].id, hits[j].id_len, hits[j].score, err);
    return st;
}

gtr_run *gtr_run_parse(const char *text, size_t len, const char *name, gtr_error *err)
{
    gtr_run *r = gtr_run_new(err);
    if (!r) return NULL;
    gtr_status st = GTR_OK;
    gtr_lines it;
    const char *s;
    size_t n;
    gtr_lines_init(&it, text, len);
    while (gtr_lines_next(&it, &s, &n)) {
        if (it.line > UINT32_MAX) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: too many lines", name);
            break;
        }
        if (memchr(s, '\0', n)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: line contains a NUL byte", name, it.line);
            break;
        }
        if (gtr_line_skippable(s, n)) continue;
        gtr_field f[6];
        size_t nf = gtr_split_fields(s, n, false, f, 6);
        if (nf < 6) {
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s:%zu: expected 6 fields 'qid Q0 docid rank score tag', got %zu",
                            name, it.line, nf);
            break;
        }
        double score;
        if (!gtr_field_double(&f[4], &score)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: score '%.*s' is not a number", name,
                            it.line, (int)GTR_MIN(f[4].n, 64), f[4].s);
            break;
        }
        st = add_entry(r, f[0].s, f[0].n, f[2].s, f[2].n, score, name, it.line, err);
        if (st) break;
    }
    if (st) {
        gtr_run_free(r);
        return NULL;
    }
    return r;
}

gtr_run *gtr_run_load(const char *path, gtr_error *err)
{
    char *data;
    size_t len;
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: no path");
        return NULL;
    }
    if (gtr_read_file(path, 0, &data, &len, err)) return NULL;
    gtr_run *r = gtr_run_parse(data, len, path, err);
    free(data);
    return r;
}

/* ---- ranking ---- */

typedef struct rank_key {
    double score;
    uint32_t doc_rank; /* position of the document id in bytewise order */
    uint32_t entry;
} rank_key;

/* trec_eval: score descending, then document id descending (strcmp). */
static int cmp_rank(const void *a, const void *b)
{
    const rank_key *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return x->doc_rank > y->doc_rank ? -1 : x->doc_rank < y->doc_rank;
}

void gtr_ranking_free(gtr_ranking *rk)
{
    free(rk->start);
    free(rk->order);
    rk->start = NULL;
    rk->order = NULL;
}

gtr_status gtr_run_rank(const gtr_run *r, gtr_ranking *rk, gtr_error *err)
{
    size_t nq = r->qids.n, nd = r->docs.n;
    rk->start = gtr_xcalloc(nq + 1, sizeof *rk->start, "run ranking", err);
    rk->order = gtr_xmalloc((r->n ? r->n : 1) * sizeof *rk->order, "run ranking", err);
    uint32_t *names = gtr_xmalloc((nd ? nd : 1) * sizeof *names, "run ranking", err);
    uint32_t *doc_rank = gtr_xmalloc((nd ? nd : 1) * sizeof *doc_rank, "run ranking", err);
    rank_key *keys = gtr_xmalloc((r->n ? r->n : 1) * sizeof *keys, "run ranking", err);
    if (!rk->start || !rk->order || !names || !doc_rank || !keys) {
        free(names);
        free(doc_rank);
        free(keys);
        gtr_ranking_free(rk);
        return GTR_ERR_NOMEM;
    }
    /* Rank the distinct document ids once, so ties compare integers. */
    gtr_status st = gtr_strmap_sorted_ids(&r->docs, names, err);
    if (st) {
        free(names);
        free(doc_rank);
        free(keys);
        gtr_ranking_free(rk);
        return st;
    }
    for (size_t i = 0; i < nd; i++) doc_rank[names[i]] = (uint32_t)i;
    /* Group entries by query (counting sort), then rank each group. */
    for (size_t i = 0; i < r->n; i++) rk->start[r->eq[i] + 1]++;
    for (size_t q = 0; q < nq; q++) rk->start[q + 1] += rk->start[q];
    size_t *fill = gtr_xmalloc((nq ? nq : 1) * sizeof *fill, "run ranking", err);
    if (!fill) {
        free(names);
        free(doc_rank);
        free(keys);
        gtr_ranking_free(rk);
        return GTR_ERR_NOMEM;
    }
    memcpy(fill, rk->start, nq * sizeof *fill);
    for (size_t i = 0; i < r->n; i++)
        keys[fill[r->eq[i]]++] = (rank_key){r->es[i], doc_rank[r->ed[i]], (uint32_t)i};
    for (size_t q = 0; q < nq; q++)
        qsort(keys + rk->start[q], rk->start[q + 1] - rk->start[q], sizeof *keys, cmp_rank);
    for (size_t i = 0; i < r->n; i++) rk->order[i] = keys[i].entry;
    free(fill);
    free(names);
    free(doc_rank);
    free(keys);
    return GTR_OK;
}

/* ---- writing ---- */

gtr_status gtr_run_format(const gtr_run *r, const char *tag, char **out, size_t *len,
                          gtr_error *err)
{
    if (!r || !out) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: nothing to format");
    if (!tag) tag = "gtr";
    if (gtr_id_problem(tag, strlen(tag))) /* the tag is a field like the ids */
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: tag '%s' is empty or has whitespace", tag);
    /* TREC lines are whitespace-separated: an id with whitespace cannot be written */
    for (int m = 0; m < 2; m++) {
        const gtr_strmap *ids = m ? &r->docs : &r->qids;
        for (size_t i = 0; i < ids->n; i++) {
            size_t id_len;
            const char *id = gtr_strmap_key(ids, (uint32_t)i, &id_len);
            const char *bad = gtr_id_problem(id, id_len);
            if (bad)
                return gtr_seterr(err, GTR_ERR_INVALID_ARG, "run: %s id '%.*s' %s", m ? "document" : "query",
                                  (int)GTR_MIN(id_len, 200), id, bad);
        }
    }
    gtr_ranking rk;
    gtr_status st = gtr_run_rank(r, &rk, err);
    if (st) return st;
    gtr_buf b = {0};
    st = gtr_buf_reserve(&b, 0, err);
    for (size_t q = 0; q < r->qids.n && !st; q++) {
        const char *qs = gtr_strmap_key(&r->qids, (uint32_t)q, NULL);
        for (size_t k = rk.start[q]; k < rk.start[q + 1] && !st; k++) {
            uint32_t e = rk.order[k];
            double s = r->es[e];
            /* Scores that are floats print with 9 digits (enough to tell any two floats apart,
             * so the ranking survives a round trip); other doubles need 17. */
            const char *fmt = (double)(float)s == s ? "%s Q0 %s %zu %.9g %s\n" : "%s Q0 %s %zu %.17g %s\n";
            st = gtr_buf_printf(&b, err, fmt, qs, gtr_strmap_key(&r->docs, r->ed[e], NULL),
                                k - rk.start[q] + 1, s, tag);
        }
    }
    gtr_ranking_free(&rk);
    if (st) {
        gtr_buf_free(&b);
        return st;
    }
    *out = b.data;
    if (len) *len = b.len;
    return GTR_OK;
}

gtr_status gtr_run_write(const gtr_run *r, const char *path, const char *tag, gtr_error *err)
{
    char *text;
    size_t len;
    gtr_status st = gtr_run_format(r, tag, &text, &len, err);
    if (st) return st;
    st = gtr_write_file_atomic(path, text, len, err);
    gtr_free(text);
    return st;
}
