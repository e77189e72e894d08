/* delete.c — deleting documents by id from a dense index (gtr_index_delete): the index is
 * written again (temp file, fsync, rename, like every build) with those documents marked in its
 * DEAD section, the section replaced documents use, so exact search, IVF files of the index and
 * its fields file all skip them; nothing else changes (the same ids in the same places). */
#include "index/workfile.h"

#include <stdlib.h>
#include <string.h>

gtr_status gtr_index_delete(const char *path, const char *const *ids, const size_t *lens, size_t n,
                            const char *out_path, size_t *deleted, size_t *unknown, gtr_error *err)
{
    if (deleted) *deleted = 0;
    if (!path || !out_path || (n && (!ids || !lens)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "index delete: need an index, ids and an output path");
    gtr_index *ix = gtr_index_open(path, 0, NULL, err);
    if (!ix) return err ? err->code : GTR_ERR_FORMAT;
    size_t nb = (ix->n + 7) / 8, count = 0;
    uint8_t *dead = gtr_xcalloc(nb ? nb : 1, 1, "deleted documents", err);
    char *meta = NULL;
    gtr_status st = dead ? GTR_OK : GTR_ERR_NOMEM;
    if (!st) st = gtr_index_allow_ids(ix, ids, lens, n, dead, unknown, NULL, err);
    for (size_t i = 0; !st && i < nb; i++) {
        if (ix->dead) dead[i] |= ix->dead[i];
        count += (size_t)__builtin_popcount(dead[i]);
    }
    /* the META section as it is (model description, hint, sources) */
    for (uint32_t i = 0; !st && i < ix->h.n_sections; i++) {
        const gtr_ix_section *s = &ix->h.sections[i];
        if (s->kind != GTR_IX_META) continue;
        if (!(meta = gtr_xmalloc((size_t)s->size + 1, "index metadata", err))) st = GTR_ERR_NOMEM;
        else {
            memcpy(meta, (const char *)ix->map.data + s->offset, (size_t)s->size);
            meta[s->size] = 0;
        }
    }
    if (!st) {
        gtr_ix_assembly a = {ix, NULL, NULL, 0, (uint32_t)ix->dim, ix->h.fingerprint, ix->h.compact, meta,
                             count ? dead : NULL};
        gtr_ix_writer w;
        gtr_remove_stale_tmp(out_path);
        if (!(st = gtr_ix_assemble(&w, out_path, &a, err))) st = gtr_ix_writer_commit(&w, err);
    }
    if (!st && deleted) *deleted = count - ix->n_dead;
    free(meta);
    free(dead);
    gtr_index_free(ix);
    return st;
}
