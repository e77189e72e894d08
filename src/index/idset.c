/* idset.c — the set of document ids seen so far while building, to refuse duplicates with
 * the line where the id first appeared. Open addressing over an arena: two u64 per id plus
 * its bytes, so tens of millions of ids stay affordable. */
#include "index/index_internal.h"

#include <stdlib.h>
#include <string.h>

void gtr_ix_idset_init(gtr_ix_idset *s) { memset(s, 0, sizeof *s); }

void gtr_ix_idset_free(gtr_ix_idset *s)
{
    free(s->slots);
    free(s->off);
    free(s->line);
    gtr_buf_free(&s->bytes);
    memset(s, 0, sizeof *s);
}

static uint64_t id_hash(const char *id, size_t len) { return gtr_fnv1a64(id, len, GTR_FNV_SEED); }

static bool entry_is(const gtr_ix_idset *s, uint64_t e, const char *id, size_t len)
{
    uint64_t a = s->off[e], b = s->off[e + 1];
    return b - a == len && memcmp(s->bytes.data + a, id, len) == 0;
}

static gtr_status grow_slots(gtr_ix_idset *s, gtr_error *err)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = gtr_xcalloc(cap, sizeof *slots, "document id set", err);
    if (!slots) return GTR_ERR_NOMEM;
    for (size_t e = 0; e < s->n; e++) {
        uint64_t h = id_hash(s->bytes.data + s->off[e], (size_t)(s->off[e + 1] - s->off[e]));
        size_t i = (size_t)h & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = e + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return GTR_OK;
}

gtr_status gtr_ix_idset_add(gtr_ix_idset *s, const char *id, size_t len, uint64_t line,
                            uint64_t *found, gtr_error *err)
{
    gtr_status st;
    *found = 0;
    if ((s->n + 1) * 2 > s->cap && (st = grow_slots(s, err))) return st;
    if (s->n + 2 > s->cap_entries) {
        size_t cap = s->cap_entries ? s->cap_entries * 2 : 1024;
        uint64_t *off = gtr_xrealloc(s->off, cap * sizeof *off, "document id set", err);
        if (!off) return GTR_ERR_NOMEM;
        s->off = off;
        uint64_t *ln = gtr_xrealloc(s->line, cap * sizeof *ln, "document id set", err);
        if (!ln) return GTR_ERR_NOMEM;
        s->line = ln;
        if (s->cap_entries == 0) s->off[0] = 0;
        s->cap_entries = cap;
    }
    size_t i = (size_t)id_hash(id, len) & (s->cap - 1);
    while (s->slots[i]) {
        uint64_t e = s->slots[i] - 1;
        if (entry_is(s, e, id, len)) {
            *found = s->line[e] + 1;
            return GTR_OK;
        }
        i = (i + 1) & (s->cap - 1);
    }
    if ((st = gtr_buf_append(&s->bytes, id, len, err))) return st;
    s->line[s->n] = line;
    s->off[s->n + 1] = s->bytes.len;
    s->slots[i] = ++s->n;
    return GTR_OK;
}

bool gtr_ix_idset_has(const gtr_ix_idset *s, const char *id, size_t len)
{
    if (!s->cap) return false;
    for (size_t i = (size_t)id_hash(id, len) & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (entry_is(s, s->slots[i] - 1, id, len)) return true;
    return false;
}
