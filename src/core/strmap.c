/* strmap.c — a string interner: byte strings to dense ids 0..n-1 in insertion order.
 * Used wherever ids must be unique or looked up by name (document ids, query ids, BM25 terms).
 * Open addressing with linear probing over a power-of-two slot table; keys live in one
 * growable byte buffer (NUL-terminated, so callers may treat them as C strings). */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* The hash is stored per entry so growing the table never rehashes the key bytes. */
static uint64_t key_hash(const char *key, size_t len)
{
    uint64_t h = gtr_fnv1a64(key, len, GTR_FNV_SEED);
    /* FNV's low bits mix poorly for short keys; a final avalanche spreads them. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void gtr_strmap_init(gtr_strmap *m) { memset(m, 0, sizeof *m); }

void gtr_strmap_free(gtr_strmap *m)
{
    if (!m) return;
    free(m->slots);
    free(m->ents);
    gtr_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

static bool key_equal(const gtr_strmap *m, uint32_t id, const char *key, size_t len, uint64_t h)
{
    const gtr_strmap_ent *e = &m->ents[id];
    return e->hash == h && e->len == len && memcmp(m->keys.data + e->off, key, len) == 0;
}

static gtr_status grow_slots(gtr_strmap *m, gtr_error *err)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint32_t *slots = gtr_xcalloc(cap, sizeof *slots, "string map", err);
    if (!slots) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < m->n; i++) {
        size_t s = (size_t)m->ents[i].hash & (cap - 1);
        while (slots[s]) s = (s + 1) & (cap - 1);
        slots[s] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return GTR_OK;
}

uint32_t gtr_strmap_find(const gtr_strmap *m, const char *key, size_t len)
{
    if (!m->cap) return GTR_STRMAP_NONE;
    uint64_t h = key_hash(key, len);
    for (size_t s = (size_t)h & (m->cap - 1);; s = (s + 1) & (m->cap - 1)) {
        uint32_t v = m->slots[s];
        if (!v) return GTR_STRMAP_NONE;
        if (key_equal(m, v - 1, key, len, h)) return v - 1;
    }
}

gtr_status gtr_strmap_intern(gtr_strmap *m, const char *key, size_t len, uint32_t *id,
                             bool *added, gtr_error *err)
{
    if (added) *added = false;
    if (len > UINT32_MAX || m->keys.len > UINT32_MAX - len - 1 || m->n >= UINT32_MAX - 1)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "string map: too many or too long keys");
    /* keep the load factor at most 1/2 */
    if ((m->n + 1) * 2 > m->cap) {
        gtr_status st = grow_slots(m, err);
        if (st) return st;
    }
    uint64_t h = key_hash(key, len);
    size_t s = (size_t)h & (m->cap - 1);
    for (;; s = (s + 1) & (m->cap - 1)) {
        uint32_t v = m->slots[s];
        if (!v) break;
        if (key_equal(m, v - 1, key, len, h)) {
            *id = v - 1;
            return GTR_OK;
        }
    }
    if (m->n == m->ents_cap) {
        size_t cap = m->ents_cap ? m->ents_cap * 2 : 64;
        gtr_strmap_ent *e = gtr_xrealloc(m->ents, cap * sizeof *e, "string map", err);
        if (!e) return GTR_ERR_NOMEM;
        m->ents = e;
        m->ents_cap = cap;
    }
    size_t off = m->keys.len;
    gtr_status st = gtr_buf_append(&m->keys, key, len, err);
    if (!st) st = gtr_buf_append(&m->keys, "", 1, err); /* keep each key NUL-terminated */
    if (st) return st;
    m->ents[m->n] = (gtr_strmap_ent){.hash = h, .off = (uint32_t)off, .len = (uint32_t)len};
    m->slots[s] = (uint32_t)m->n + 1;
    *id = (uint32_t)m->n++;
    if (added) *added = true;
    return GTR_OK;
}

const char *gtr_strmap_key(const gtr_strmap *m, uint32_t id, size_t *len)
{
    if (id >= m->n) return NULL;
    if (len) *len = m->ents[id].len;
    return m->keys.data + m->ents[id].off;
}

typedef struct named {
    const char *s;
    uint32_t id;
} named;

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const named *)a)->s, ((const named *)b)->s);
}

gtr_status gtr_strmap_sorted_ids(const gtr_strmap *m, uint32_t *order, gtr_error *err)
{
    named *v = gtr_xmalloc((m->n ? m->n : 1) * sizeof *v, "sorting ids", err);
    if (!v) return GTR_ERR_NOMEM;
    for (size_t i = 0; i < m->n; i++) v[i] = (named){gtr_strmap_key(m, (uint32_t)i, NULL), (uint32_t)i};
    qsort(v, m->n, sizeof *v, cmp_named);
    for (size_t i = 0; i < m->n; i++) order[i] = v[i].id;
    free(v);
    return GTR_OK;
}
