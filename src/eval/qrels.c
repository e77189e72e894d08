/* qrels.c — relevance judgments: TREC qrels ("qid iter docid rel") and BEIR qrels TSV
 * ("query-id<TAB>corpus-id<TAB>score" after a header), told apart by their first line. */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

/* trec_eval documents judgments as small integers; this bound only keeps them in an int. */
#define REL_MAX 1000000000L

typedef struct raw_jud {
    uint32_t q, d;
    int rel;
    uint32_t line;
} raw_jud;

static int cmp_raw(const void *a, const void *b)
{
    const raw_jud *x = a, *y = b;
    if (x->q != y->q) return x->q < y->q ? -1 : 1;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

void gtr_qrels_free(gtr_qrels *q)
{
    if (!q) return;
    gtr_strmap_free(&q->qids);
    gtr_strmap_free(&q->docs);
    free(q->sorted);
    free(q->start);
    free(q->jud);
    free(q);
}

/* The query order trec_eval uses: ids compared bytewise (strcmp). */
static gtr_status sort_queries(gtr_qrels *q, gtr_error *err)
{
    q->sorted = gtr_xmalloc(q->qids.n * sizeof *q->sorted, "qrels", err);
    if (!q->sorted) return GTR_ERR_NOMEM;
    return gtr_strmap_sorted_ids(&q->qids, q->sorted, err);
}

/* Is this BEIR's TSV? Its lines have exactly three tab-separated fields. */
static bool looks_like_tsv(const char *text, size_t len)
{
    gtr_lines it;
    const char *s;
    size_t n;
    gtr_lines_init(&it, text, len);
    while (gtr_lines_next(&it, &s, &n)) {
        if (gtr_line_skippable(s, n)) continue;
        gtr_field f[4];
        return memchr(s, '\t', n) && gtr_split_fields(s, n, true, f, 4) == 3;
    }
    return false;
}

static gtr_status add_raw(raw_jud **v, size_t *n, size_t *cap, raw_jud r, gtr_error *err)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        raw_jud *p = gtr_xrealloc(*v, c * sizeof *p, "qrels", err);
        if (!p) return GTR_ERR_NOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = r;
    return GTR_OK;
}

/* Turn the sorted raw judgments into per-query groups; repeated pairs are an error in TREC
 * files (trec_eval refuses them) and resolved to the last line in BEIR TSV (a Python dict). */
static gtr_status group(gtr_qrels *q, raw_jud *raw, size_t n, bool tsv, const char *name,
                        gtr_error *err)
{
    qsort(raw, n, sizeof *raw, cmp_raw);
    q->start = gtr_xcalloc(q->qids.n + 1, sizeof *q->start, "qrels", err);
    q->jud = gtr_xmalloc((n ? n : 1) * sizeof *q->jud, "qrels", err);
    if (!q->start || !q->jud) return GTR_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && raw[i + 1].q == raw[i].q && raw[i + 1].d == raw[i].d) {
            if (!tsv)
                return gtr_seterr(err, GTR_ERR_FORMAT,
                                  "%s:%u: document '%s' judged twice for query '%s' (also line %u)",
                                  name, raw[i + 1].line, gtr_strmap_key(&q->docs, raw[i].d, NULL),
                                  gtr_strmap_key(&q->qids, raw[i].q, NULL), raw[i].line);
            continue; /* keep the later line */
        }
        q->jud[m++] = (gtr_judgment){raw[i].d, raw[i].rel};
        q->start[raw[i].q + 1]++;
    }
    for (size_t i = 0; i < q->qids.n; i++) q->start[i + 1] += q->start[i];
    q->n_jud = m;
    return GTR_OK;
}

gtr_qrels *gtr_qrels_parse(const char *text, size_t len, const char *name, gtr_error *err)
{
    gtr_qrels *q = gtr_xcalloc(1, sizeof *q, "qrels", err);
    if (!q) return NULL;
    gtr_strmap_init(&q->qids);
    gtr_strmap_init(&q->docs);
    raw_jud *raw = NULL;
    size_t n = 0, cap = 0;
    bool tsv = looks_like_tsv(text, len);
    bool first = true;
    gtr_status st = GTR_OK;
    gtr_lines it;
    const char *s;
    size_t ln;
    gtr_lines_init(&it, text, len);
    while (gtr_lines_next(&it, &s, &ln)) {
        if (it.line > UINT32_MAX) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: too many lines", name);
            break;
        }
        if (memchr(s, '\0', ln)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: line contains a NUL byte", name, it.line);
            break;
        }
        if (gtr_line_skippable(s, ln)) continue;
        gtr_field f[5];
        size_t nf = gtr_split_fields(s, ln, tsv, f, 5);
        const gtr_field *qf, *df, *rf;
        if (tsv) {
            if (nf != 3) {
                st = gtr_seterr(err, GTR_ERR_FORMAT,
                                "%s:%zu: expected 3 tab-separated fields 'query-id corpus-id score', got %zu",
                                name, it.line, nf);
                break;
            }
            qf = &f[0], df = &f[1], rf = &f[2];
        } else {
            if (nf != 4) {
                st = gtr_seterr(err, GTR_ERR_FORMAT,
                                "%s:%zu: expected 4 fields 'qid iter docid rel', got %zu", name,
                                it.line, nf);
                break;
            }
            qf = &f[0], df = &f[2], rf = &f[3];
        }
        long rel;
        if (!gtr_field_int(rf, -REL_MAX, REL_MAX, &rel)) {
            if (tsv && first) { /* BEIR's header line */
                first = false;
                continue;
            }
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: relevance '%.*s' is not an integer",
                            name, it.line, (int)GTR_MIN(rf->n, 64), rf->s);
            break;
        }
        first = false;
        if (qf->n == 0 || df->n == 0) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: empty %s id", name, it.line,
                            qf->n == 0 ? "query" : "document");
            break;
        }
        uint32_t qi, di;
        if ((st = gtr_strmap_intern(&q->qids, qf->s, qf->n, &qi, NULL, err)) ||
            (st = gtr_strmap_intern(&q->docs, df->s, df->n, &di, NULL, err)) ||
            (st = add_raw(&raw, &n, &cap, (raw_jud){qi, di, (int)rel, (uint32_t)it.line}, err)))
            break;
    }
    if (!st && n == 0) st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no judgments", name);
    if (!st) st = group(q, raw, n, tsv, name, err);
    if (!st) st = sort_queries(q, err);
    free(raw);
    if (st) {
        gtr_qrels_free(q);
        return NULL;
    }
    return q;
}

gtr_qrels *gtr_qrels_load(const char *path, gtr_error *err)
{
    char *data;
    size_t len;
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "qrels: no path");
        return NULL;
    }
    if (gtr_read_file(path, 0, &data, &len, err)) return NULL;
    gtr_qrels *q = gtr_qrels_parse(data, len, path, err);
    free(data);
    return q;
}

size_t gtr_qrels_num_queries(const gtr_qrels *q) { return q ? q->qids.n : 0; }

const char *gtr_qrels_query_id(const gtr_qrels *q, size_t i)
{
    if (!q || i >= q->qids.n) return NULL;
    return gtr_strmap_key(&q->qids, q->sorted[i], NULL);
}

int gtr_qrels_has_query(const gtr_qrels *q, const char *qid, size_t len)
{
    return q && qid && gtr_strmap_find(&q->qids, qid, len) != GTR_STRMAP_NONE;
}
