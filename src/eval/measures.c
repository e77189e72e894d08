/* measures.c — the measure set: trec_eval names, their cutoff parameters and defaults. */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[GTR_M_COUNT] = {
    "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "recip_rank",
    "P",     "recall",  "ndcg",    "ndcg_cut",    "map_cut",
};

/* trec_eval's default cutoffs for P, recall, ndcg_cut and map_cut. */
static const long default_cuts[] = {5, 10, 15, 20, 30, 100, 200, 500, 1000};
#define N_DEFAULT_CUTS (sizeof default_cuts / sizeof default_cuts[0])

/* Cutoffs are bounded so "P_<k>" names stay short and k fits every index type. */
#define MAX_CUT 100000000L

const char *gtr_measure_name(gtr_measure_kind k) { return names[k]; }

bool gtr_measure_has_cutoffs(gtr_measure_kind k)
{
    return k == GTR_M_P || k == GTR_M_RECALL || k == GTR_M_NDCG_CUT || k == GTR_M_MAP_CUT;
}

bool gtr_measure_is_count(gtr_measure_kind k) { return k <= GTR_M_NUM_REL_RET; }

void gtr_measures_free(gtr_measures *m)
{
    if (!m) return;
    for (int k = 0; k < GTR_M_COUNT; k++) free(m->m[k].cuts);
    free(m);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Merge cutoffs into a measure's sorted, distinct list. */
static gtr_status merge_cuts(gtr_measure *m, const long *cuts, size_t n, gtr_error *err)
{
    long *all = gtr_xrealloc(m->cuts, (m->n_cut + n) * sizeof *all, "measures", err);
    if (!all) return GTR_ERR_NOMEM;
    memcpy(all + m->n_cut, cuts, n * sizeof *cuts);
    size_t total = m->n_cut + n, k = 0;
    qsort(all, total, sizeof *all, cmp_long);
    for (size_t i = 0; i < total; i++)
        if (k == 0 || all[k - 1] != all[i]) all[k++] = all[i];
    m->cuts = all;
    m->n_cut = k;
    return GTR_OK;
}

/* Parse "5,10,100" as trec_eval does, but strictly: positive integers, no duplicates. */
static gtr_status parse_cuts(const char *word, const char *p, size_t n, long **out, size_t *n_out,
                             gtr_error *err)
{
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count += p[i] == ',';
    long *cuts = gtr_xmalloc(count * sizeof *cuts, "measures", err);
    if (!cuts) return GTR_ERR_NOMEM;
    size_t k = 0, i = 0;
    while (k < count) {
        size_t a = i;
        while (i < n && p[i] != ',') i++;
        gtr_field f = {p + a, i - a};
        long v;
        if (!gtr_field_int(&f, 1, MAX_CUT, &v) || f.s[0] == '+' || f.s[0] == ' ') {
            free(cuts);
            return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                              "measure '%s': cutoff '%.*s' is not a positive integer", word,
                              (int)GTR_MIN(f.n, 32), f.s);
        }
        cuts[k++] = v;
        i++; /* the comma */
    }
    qsort(cuts, count, sizeof *cuts, cmp_long);
    for (size_t j = 1; j < count; j++)
        if (cuts[j] == cuts[j - 1]) {
            long dup = cuts[j];
            free(cuts);
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "measure '%s': cutoff %ld given twice",
                              word, dup);
        }
    *out = cuts;
    *n_out = count;
    return GTR_OK;
}

static gtr_status parse_word(gtr_measures *ms, bool *has_params, const char *w, size_t n,
                             gtr_error *err)
{
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)GTR_MIN(n, sizeof word - 1), w);
    const char *dot = memchr(w, '.', n);
    size_t name_len = dot ? (size_t)(dot - w) : n;
    int k;
    for (k = 0; k < GTR_M_COUNT; k++)
        if (strlen(names[k]) == name_len && !memcmp(names[k], w, name_len)) break;
    if (k == GTR_M_COUNT)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "unknown measure '%s' (supported: num_q num_ret num_rel num_rel_ret map "
                          "recip_rank P.K recall.K ndcg ndcg_cut.K map_cut.K)",
                          word);
    gtr_measure *m = &ms->m[k];
    m->on = true;
    if (!dot) return GTR_OK;
    if (!gtr_measure_has_cutoffs((gtr_measure_kind)k))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "measure '%s': %s takes no parameters", word,
                          names[k]);
    long *cuts = NULL;
    size_t nc = 0;
    gtr_status st = parse_cuts(word, dot + 1, n - name_len - 1, &cuts, &nc, err);
    if (st) return st;
    /* As in trec_eval, parameters replace the defaults; several words for one measure merge. */
    if (!has_params[k]) {
        free(m->cuts);
        m->cuts = NULL;
        m->n_cut = 0;
        has_params[k] = true;
    }
    st = merge_cuts(m, cuts, nc, err);
    free(cuts);
    return st;
}

gtr_measures *gtr_measures_parse(const char *spec, gtr_error *err)
{
    gtr_measures *ms = gtr_xcalloc(1, sizeof *ms, "measures", err);
    if (!ms) return NULL;
    if (!spec || !*spec) spec = GTR_EVAL_DEFAULT_MEASURES;
    bool has_params[GTR_M_COUNT] = {false};
    gtr_status st = GTR_OK;
    const char *p = spec;
    bool any = false;
    while (*p && !st) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        const char *a = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
        st = parse_word(ms, has_params, a, (size_t)(p - a), err);
        any = true;
    }
    if (!st && !any) st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "no measures given");
    /* cutoff measures named without cutoffs get trec_eval's defaults */
    for (int k = 0; k < GTR_M_COUNT && !st; k++)
        if (ms->m[k].on && gtr_measure_has_cutoffs((gtr_measure_kind)k) && !has_params[k])
            st = merge_cuts(&ms->m[k], default_cuts, N_DEFAULT_CUTS, err);
    if (st) {
        gtr_measures_free(ms);
        return NULL;
    }
    return ms;
}
