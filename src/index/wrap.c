/* wrap.c — gtr_index_wrap: an index over vectors already in memory (embeddings made in this
 * process, e.g. the corpus gtr_negatives_mine ranks), so that they are searched by the same
 * code, with the same scores and order, as an index file. */
#include "index/index_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gtr_index *gtr_index_wrap(const float *vectors, size_t n, int dim, const char *const *ids,
                          const size_t *id_lens, uint64_t fingerprint, gtr_error *err)
{
    if ((n && (!vectors || !ids || !id_lens)) || dim <= 0) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_wrap: missing vectors or ids, or dim <= 0");
        return NULL;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const char *bad = gtr_id_problem(ids[i], id_lens[i]);
        if (bad) {
            gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_wrap: document %zu: id %s", i, bad);
            return NULL;
        }
        bytes += id_lens[i];
    }
    for (size_t i = 0; i < n * (size_t)dim; i++)
        if (!isfinite(vectors[i])) {
            gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_wrap: document %zu has a non-finite value", i / (size_t)dim);
            return NULL;
        }
    gtr_index *ix = gtr_xcalloc(1, sizeof *ix, "index", err);
    /* one block: id offsets, snippet offsets (all 0: no snippets), id bytes */
    uint64_t *off = gtr_xcalloc(2 * (n + 1) * sizeof *off + bytes + 1, 1, "index ids", err);
    char *path = strdup("(vectors in memory)"), *desc = strdup("");
    if (!ix || !off || !path || !desc) {
        free(ix);
        free(off);
        free(path);
        free(desc);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    char *id_bytes = (char *)(off + 2 * (n + 1));
    for (size_t i = 0; i < n; i++) {
        memcpy(id_bytes + off[i], ids[i], id_lens[i]);
        off[i + 1] = off[i] + id_lens[i];
    }
    ix->path = path;
    ix->model_desc = desc;
    ix->owned = off;
    ix->n = n;
    ix->dim = (size_t)dim;
    ix->h.n_docs = n;
    ix->h.dim = (uint32_t)dim;
    ix->h.fingerprint = fingerprint;
    ix->id_off = off;
    ix->id_bytes = id_bytes;
    ix->snip_off = off + n + 1;
    ix->snip_bytes = id_bytes;
    ix->vectors = vectors;
    return ix;
}
