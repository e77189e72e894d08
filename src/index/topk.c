/* topk.c — a bounded min-heap of hits: the worst kept hit sits on top, so most candidates
 * are rejected after one comparison. The order is total (score, then id), which makes the
 * kept set independent of the order documents arrive in — threads may finish in any order. */
#include "index/index_internal.h"

#include <string.h>

int gtr_ix_id_cmp(const gtr_index *ix, size_t a, size_t b)
{
    size_t la = (size_t)(ix->id_off[a + 1] - ix->id_off[a]), lb = (size_t)(ix->id_off[b + 1] - ix->id_off[b]);
    int c = memcmp(ix->id_bytes + ix->id_off[a], ix->id_bytes + ix->id_off[b], la < lb ? la : lb);
    if (c) return c;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

/* worse(x, y): x ranks after y — the heap keeps the worst on top */
#define WORSE(ix, x, y) gtr_ix_better((ix), (y).score, (y).doc, (x).score, (x).doc)

static void sift_down(const gtr_index *ix, gtr_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && WORSE(ix, h[l], h[w])) w = l;
        if (r < n && WORSE(ix, h[r], h[w])) w = r;
        if (w == i) return;
        gtr_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

void gtr_ix_topk_push(const gtr_index *ix, gtr_ix_topk *t, float score, size_t doc)
{
    if (t->k == 0) return;
    if (t->n < t->k) {
        size_t i = t->n++;
        t->h[i].score = score;
        t->h[i].doc = doc;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!WORSE(ix, t->h[i], t->h[p])) break;
            gtr_hit x = t->h[i];
            t->h[i] = t->h[p];
            t->h[p] = x;
            i = p;
        }
        return;
    }
    /* full: replace the top if the newcomer ranks before it */
    if (!gtr_ix_better(ix, score, doc, t->h[0].score, t->h[0].doc)) return;
    t->h[0].score = score;
    t->h[0].doc = doc;
    sift_down(ix, t->h, t->n, 0);
}

void gtr_ix_topk_sort(const gtr_index *ix, gtr_ix_topk *t)
{
    /* heap sort: pop the worst to the back repeatedly, leaving the best at the front */
    for (size_t n = t->n; n > 1; n--) {
        gtr_hit x = t->h[0];
        t->h[0] = t->h[n - 1];
        t->h[n - 1] = x;
        sift_down(ix, t->h, n - 1, 0);
    }
}
