/* fusion.c — hybrid retrieval: reciprocal-rank fusion (Cormack, Clarke & Büttcher 2009:
 * sum of 1 / (k + rank), k = 60) and linear interpolation of min-max normalised scores. Works
 * on ids, so the lists may come from different indexes (dense and BM25) of the same corpus. */
#include "index/index_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gtr_fusion_options gtr_fusion_default_options(void)
{
    gtr_fusion_options o = {sizeof o, GTR_FUSION_RRF, 60.0, NULL};
    return o;
}

typedef struct {
    const char *id;
    size_t len;
    double score;
    size_t last_list; /* list index + 1 that last added to it (duplicate check) */
} entry;

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    /* equal scores: id descending, as trec_eval orders ties */
    int c = memcmp(a->id, b->id, GTR_MIN(a->len, b->len));
    if (c == 0) c = a->len < b->len ? -1 : a->len > b->len;
    return -c;
}

gtr_status gtr_hits_fuse(const gtr_ranked_doc *const *lists, const size_t *lens, size_t n_lists,
                    const gtr_fusion_options *opts, size_t k, gtr_ranked_doc *out, size_t *n_out,
                    gtr_error *err)
{
    gtr_fusion_options def = gtr_fusion_default_options();
    if (gtr_options_take(&def, sizeof def, opts, "gtr_hits_fuse", err)) return GTR_ERR_INVALID_ARG;
    opts = &def;
    if (!n_out || (k && !out) || (n_lists && (!lists || !lens)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: missing argument");
    *n_out = 0;
    if (opts->method != GTR_FUSION_RRF && opts->method != GTR_FUSION_INTERP)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: unknown fusion method %d", (int)opts->method);
    if (opts->method == GTR_FUSION_RRF && !(opts->rrf_k >= 0 && isfinite(opts->rrf_k)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: the RRF constant must be >= 0");
    size_t total = 0;
    for (size_t m = 0; m < n_lists; m++) {
        if (lens[m] && !lists[m]) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: list %zu is NULL", m);
        if (opts->weights && !isfinite(opts->weights[m]))
            return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: weight %zu is not finite", m);
        for (size_t r = 0; r < lens[m]; r++)
            if (!isfinite(lists[m][r].score) && opts->method == GTR_FUSION_INTERP)
                return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: list %zu has a non-finite score at rank %zu",
                                  m, r + 1);
        total += lens[m];
    }
    size_t cap = 16;
    while (cap < 2 * total) cap *= 2;
    entry *e = gtr_xcalloc(total ? total : 1, sizeof *e, "fusion", err);
    size_t *slot = gtr_xcalloc(cap, sizeof *slot, "fusion", err);
    if (!e || !slot) {
        free(e);
        free(slot);
        return GTR_ERR_NOMEM;
    }
    size_t n = 0;
    gtr_status st = GTR_OK;
    for (size_t m = 0; m < n_lists && !st; m++) {
        double w = opts->weights ? opts->weights[m] : 1.0, lo = INFINITY, hi = -INFINITY;
        for (size_t r = 0; r < lens[m]; r++) {
            lo = fmin(lo, lists[m][r].score);
            hi = fmax(hi, lists[m][r].score);
        }
        for (size_t r = 0; r < lens[m]; r++) {
            const gtr_ranked_doc *d = &lists[m][r];
            size_t h = (size_t)gtr_fnv1a64(d->id, d->id_len, GTR_FNV_SEED) & (cap - 1);
            while (slot[h]) {
                entry *x = &e[slot[h] - 1];
                if (x->len == d->id_len && memcmp(x->id, d->id, d->id_len) == 0) break;
                h = (h + 1) & (cap - 1);
            }
            entry *x;
            if (slot[h]) {
                x = &e[slot[h] - 1];
            } else {
                x = &e[n];
                x->id = d->id;
                x->len = d->id_len;
                slot[h] = ++n;
            }
            if (x->last_list == m + 1) {
                st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_hits_fuse: list %zu has id \"%.*s\" twice", m,
                                (int)GTR_MIN(d->id_len, 200), d->id);
                break;
            }
            x->last_list = m + 1;
            double part = opts->method == GTR_FUSION_RRF ? 1.0 / (opts->rrf_k + (double)(r + 1))
                          : hi > lo ? (d->score - lo) / (hi - lo) : 1.0;
            x->score += w * part;
        }
    }
    if (!st) {
        qsort(e, n, sizeof *e, entry_cmp);
        size_t m = GTR_MIN(n, k);
        for (size_t i = 0; i < m; i++) {
            out[i].id = e[i].id;
            out[i].id_len = e[i].len;
            out[i].score = e[i].score;
        }
        *n_out = m;
    }
    free(e);
    free(slot);
    return st;
}
