/*
 * spm_da.c — a base/check double array built from an spm_trie, for the Viterbi walk.
 *
 * Slot t is the child of slot s along byte c iff t == base[s] + c and check[t] == s, so a
 * step is one load of the current slot (already in cache) and one of the child. Nodes are
 * placed in the trie's breadth-first order, each at the first base where all its children's
 * slots are free (first-fit from the lowest free slot, the classic construction). The array
 * is padded with 256 free slots so base + c never leaves it.
 * Free slots are found through a "next free slot at or after i" forest with path halving,
 * and a node that does not fit after MAX_TRIES candidate positions goes past the end of the
 * used area (where everything fits): building stays fast for any vocabulary.
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

#define FREE (-1)
#define MAX_TRIES 64

void spm_da_free(spm_da *da)
{
    free(da->slot);
    da->slot = NULL;
    da->n_slots = 0;
}

typedef struct builder {
    spm_da *da;
    size_t cap;
    int32_t *nf; /* nf[i] == i: slot i is free; else some j > i with no free slot in (i, j) */
} builder;

static gtr_status grow(builder *bd, size_t need, gtr_error *err)
{
    if (need <= bd->cap) return GTR_OK;
    size_t nc = bd->cap * 2 > need ? bd->cap * 2 : need;
    if (nc > (size_t)INT32_MAX - 1) return gtr_seterr(err, GTR_ERR_FORMAT, "piece trie too large");
    spm_da_slot *p = gtr_xrealloc(bd->da->slot, nc * sizeof *p, "piece double array", err);
    if (!p) return GTR_ERR_NOMEM;
    bd->da->slot = p;
    int32_t *q = gtr_xrealloc(bd->nf, (nc + 1) * sizeof *q, "piece double array", err);
    if (!q) return GTR_ERR_NOMEM;
    bd->nf = q;
    for (size_t i = bd->cap; i < nc; i++) {
        p[i] = (spm_da_slot){0, FREE, -1, 0.0f};
        q[i] = (int32_t)i;
    }
    q[nc] = (int32_t)nc; /* beyond the array: treated as free, grown on demand */
    bd->cap = nc;
    return GTR_OK;
}

/* Smallest free slot >= i (i <= cap). */
static size_t next_free(builder *bd, size_t i)
{
    int32_t *nf = bd->nf;
    while ((size_t)nf[i] != i) {
        nf[i] = nf[nf[i]];
        i = (size_t)nf[i];
    }
    return i;
}

static void use(builder *bd, size_t i, int32_t parent)
{
    bd->da->slot[i].check = parent;
    bd->nf[i] = (int32_t)(i + 1);
}

gtr_status spm_da_build(spm_da *da, const spm_trie *t, spm_da_value_fn fn, void *ctx,
                        gtr_error *err)
{
    memset(da, 0, sizeof *da);
    builder bd = {da, 0, NULL};
    size_t used_end = 1;
    int32_t *slot_of = gtr_xmalloc((t->n_nodes ? t->n_nodes : 1) * sizeof *slot_of, "piece double array", err);
    if (!slot_of) return GTR_ERR_NOMEM;
    gtr_status st = grow(&bd, t->n_nodes + 512, err);
    if (st) goto done;
    use(&bd, 0, -2); /* the root: used, no parent */
    slot_of[0] = 0;
    for (size_t x = 0; x < t->n_nodes; x++) {
        int32_t s = slot_of[x];
        if (t->value[x] >= 0) fn(ctx, t->value[x], &da->slot[s].id, &da->slot[s].score);
        size_t k = t->nchild[x];
        if (!k) continue;
        const uint8_t *lab = t->label + t->first[x];
        size_t p = next_free(&bd, (size_t)lab[0] + 1);
        for (int tries = 0;; tries++) {
            if (tries == MAX_TRIES && p < used_end) p = next_free(&bd, used_end);
            if ((st = grow(&bd, p + 257, err))) goto done;
            size_t b = p - lab[0], i = 1;
            while (i < k && da->slot[b + lab[i]].check == FREE) i++;
            if (i == k) break;
            p = next_free(&bd, p + 1);
        }
        size_t b = p - lab[0];
        da->slot[s].base = (int32_t)b;
        for (size_t i = 0; i < k; i++) {
            size_t c = b + lab[i];
            use(&bd, c, s);
            slot_of[t->first[x] + i] = (int32_t)c;
            if (c + 1 > used_end) used_end = c + 1;
        }
    }
    da->n_slots = used_end;
    /* trim to what is used plus the (free) padding */
    if ((st = grow(&bd, used_end + 256, err))) goto done;
    spm_da_slot *p = realloc(da->slot, (used_end + 256) * sizeof *p);
    if (p) da->slot = p;
done:
    free(slot_of);
    free(bd.nf);
    if (st) spm_da_free(da);
    return st;
}
