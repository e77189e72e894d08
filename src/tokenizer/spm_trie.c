/*
 * spm_trie.c — a static byte trie over piece strings.
 *
 * Built breadth-first from the sorted keys so that the children of every node are
 * contiguous (and in label order). No recursion: a hostile model with a megabyte-long piece
 * cannot exhaust the stack. Nodes with more than DENSE_MIN children (the root and the nodes
 * after "▁" and common prefixes) get a 256-entry table, others are scanned.
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

#define DENSE_MIN 8

static int key_cmp(const void *a, const void *b)
{
    const spm_trie_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

void spm_trie_free(spm_trie *t)
{
    free(t->first);
    free(t->nchild);
    free(t->label);
    free(t->value);
    free(t->dense);
    free(t->tables);
    memset(t, 0, sizeof *t);
}

gtr_status spm_trie_build(spm_trie *t, spm_trie_key *keys, size_t n, size_t *dup,
                          gtr_error *err)
{
    memset(t, 0, sizeof *t);
    if (n) qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
            if (dup) *dup = i;
            return gtr_seterr(err, GTR_ERR_FORMAT, "duplicate piece");
        }
    }
    /* Upper bound on nodes: the root plus one per key byte. */
    size_t max_nodes = 1;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len > SIZE_MAX - max_nodes || max_nodes + keys[i].len > INT32_MAX)
            return gtr_seterr(err, GTR_ERR_FORMAT, "pieces too long in total");
        max_nodes += keys[i].len;
    }
    /* per-node build state: the key range [lo, hi) below the node and its depth */
    size_t *lo = gtr_xmalloc(max_nodes * sizeof *lo, "trie", err);
    size_t *hi = gtr_xmalloc(max_nodes * sizeof *hi, "trie", err);
    size_t *depth = gtr_xmalloc(max_nodes * sizeof *depth, "trie", err);
    t->first = gtr_xmalloc(max_nodes * sizeof *t->first, "trie", err);
    t->nchild = gtr_xmalloc(max_nodes * sizeof *t->nchild, "trie", err);
    t->label = gtr_xmalloc(max_nodes * sizeof *t->label, "trie", err);
    t->value = gtr_xmalloc(max_nodes * sizeof *t->value, "trie", err);
    t->dense = gtr_xmalloc(max_nodes * sizeof *t->dense, "trie", err);
    gtr_status st = GTR_OK;
    if (!lo || !hi || !depth || !t->first || !t->nchild || !t->label || !t->value || !t->dense) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    size_t count = 1;
    lo[0] = 0;
    hi[0] = n;
    depth[0] = 0;
    t->label[0] = 0;
    size_t n_dense = 0;
    for (size_t x = 0; x < count; x++) {
        size_t a = lo[x], b = hi[x], d = depth[x];
        t->value[x] = -1;
        if (a < b && keys[a].len == d) { /* the key ending here sorts first */
            t->value[x] = keys[a].value;
            a++;
        }
        t->first[x] = (uint32_t)count;
        size_t kids = 0;
        for (size_t i = a; i < b;) {
            uint8_t c = (uint8_t)keys[i].key[d];
            size_t j = i + 1;
            while (j < b && (uint8_t)keys[j].key[d] == c) j++;
            lo[count] = i;
            hi[count] = j;
            depth[count] = d + 1;
            t->label[count] = c;
            count++;
            kids++;
            i = j;
        }
        t->nchild[x] = (uint16_t)kids;
        t->dense[x] = kids > DENSE_MIN ? (int32_t)n_dense++ : -1;
    }
    t->n_nodes = count;
    t->n_dense = n_dense;
    t->tables = gtr_xmalloc((n_dense ? n_dense : 1) * 256 * sizeof *t->tables, "trie", err);
    if (!t->tables) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    for (size_t x = 0; x < count; x++) {
        if (t->dense[x] < 0) continue;
        int32_t *tab = t->tables + (size_t)t->dense[x] * 256;
        for (int c = 0; c < 256; c++) tab[c] = -1;
        for (uint32_t i = t->first[x]; i < t->first[x] + t->nchild[x]; i++) tab[t->label[i]] = (int32_t)i;
    }
done:
    free(lo);
    free(hi);
    free(depth);
    if (st) spm_trie_free(t);
    return st;
}

int32_t spm_trie_exact(const spm_trie *t, const char *s, size_t len)
{
    if (!t->n_nodes) return -1;
    uint32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t c = spm_trie_child(t, node, (uint8_t)s[i]);
        if (c < 0) return -1;
        node = (uint32_t)c;
    }
    return t->value[node];
}

size_t spm_trie_longest_prefix(const spm_trie *t, const char *s, size_t len)
{
    if (!t->n_nodes) return 0;
    uint32_t node = 0;
    size_t best = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t c = spm_trie_child(t, node, (uint8_t)s[i]);
        if (c < 0) break;
        node = (uint32_t)c;
        if (t->value[node] >= 0) best = i + 1;
    }
    return best;
}
