/* ann.c — the public approximate-search handle (gtr.h, "ann"): an IVF file (ivf.c) tied to
 * the dense index whose vectors it holds, so hits map back to that index's documents. */
#include "index/index_internal.h"
#include "index/ivf.h"

#include <stdlib.h>
#include <string.h>

struct gtr_ann {
    gtr_ivf *ivf;
    const gtr_index *ix;
};

/* What the IVF file must have been built from: the model, the count and every document id
 * (an index rebuilt or extended with --add gives another tag). */
static uint64_t index_tag(const gtr_index *ix)
{
    uint64_t fp = gtr_index_fingerprint(ix), n = gtr_index_count(ix);
    uint64_t h = gtr_fnv1a64(&fp, sizeof fp, GTR_FNV_SEED);
    h = gtr_fnv1a64(&n, sizeof n, h);
    for (size_t d = 0; d < n; d++) {
        size_t len;
        const char *id = gtr_index_doc_id(ix, d, &len);
        h = gtr_fnv1a64(id, len, h);
        h = gtr_fnv1a64("", 1, h); /* separator: ids "a","bc" differ from "ab","c" */
    }
    return h;
}

gtr_status gtr_ann_build(const gtr_index *ix, const char *out_path,
                         const gtr_ann_build_options *opts, gtr_error *err)
{
    if (!ix || !out_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann build: need an index and an output path");
    gtr_ann_build_options o = opts ? *opts : (gtr_ann_build_options){0};
    size_t n = gtr_index_count(ix), dim = (size_t)gtr_index_dim(ix);
    if (n == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann build: the index has no documents");
    /* The index's vectors are one float32 block when they are contiguous; otherwise gather
     * them (the IVF file holds its own copy for re-ranking either way). */
    const float *vecs = gtr_index_vector(ix, 0);
    float *copy = NULL;
    if (n > 1 && gtr_index_vector(ix, n - 1) != vecs + (n - 1) * dim) {
        if (!(copy = gtr_xmalloc(n * dim * sizeof(float), "ann vectors", err))) return err ? err->code : GTR_ERR_NOMEM;
        for (size_t d = 0; d < n; d++) memcpy(copy + d * dim, gtr_index_vector(ix, d), dim * sizeof(float));
        vecs = copy;
    }
    gtr_ivf_build_opts io = {o.n_lists, o.iters, 0, o.seed, index_tag(ix), o.pool};
    gtr_status st = gtr_ivf_build(out_path, vecs, n, (int)dim, &io, err);
    free(copy);
    return st;
}

gtr_ann *gtr_ann_open(const char *path, const gtr_index *ix, gtr_error *err)
{
    if (!path || !ix) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann open: need a path and its index");
        return NULL;
    }
    gtr_ivf *ivf = gtr_ivf_open(path, err);
    if (!ivf) return NULL;
    if (gtr_ivf_size(ivf) != gtr_index_count(ix) || gtr_ivf_dim(ivf) != gtr_index_dim(ix) ||
        gtr_ivf_tag(ivf) != index_tag(ix)) {
        gtr_seterr(err, GTR_ERR_MISMATCH,
                   "%s: built from another index (%zu x %d vectors; this index has %zu x %d or other "
                   "documents): rebuild it with gtr ann-build", path, gtr_ivf_size(ivf),
                   gtr_ivf_dim(ivf), gtr_index_count(ix), gtr_index_dim(ix));
        gtr_ivf_close(ivf);
        return NULL;
    }
    gtr_ann *a = gtr_xcalloc(1, sizeof *a, "ann handle", err);
    if (!a) { gtr_ivf_close(ivf); return NULL; }
    a->ivf = ivf;
    a->ix = ix;
    return a;
}

void gtr_ann_free(gtr_ann *a)
{
    if (!a) return;
    gtr_ivf_close(a->ivf);
    free(a);
}

uint32_t gtr_ann_n_lists(const gtr_ann *a) { return gtr_ivf_n_lists(a->ivf); }

/* Equal scores rank by document id descending, as exact search ranks them. */
static int id_tie(const void *ix, uint32_t a, uint32_t b) { return gtr_ix_id_cmp(ix, a, b); }

gtr_status gtr_ann_search(const gtr_ann *a, const float *queries, size_t nq, size_t k,
                          const gtr_ann_search_options *opts, gtr_hit *hits, size_t *n_hits,
                          gtr_error *err)
{
    if (!a || (nq && (!hits || !n_hits)) || k == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann search: need a handle, outputs and k > 0");
    gtr_ann_search_options o = opts ? *opts : (gtr_ann_search_options){0};
    uint32_t *ids = gtr_xmalloc((nq * k + 1) * sizeof *ids, "ann ids", err);
    float *sc = gtr_xmalloc((nq * k + 1) * sizeof *sc, "ann scores", err);
    gtr_status st = ids && sc ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    gtr_ivf_search_opts so = {o.nprobe, o.rerank, NULL, o.pool, id_tie, a->ix};
    if (st == GTR_OK) st = gtr_ivf_search(a->ivf, queries, nq, k, &so, ids, sc, err);
    for (size_t q = 0; st == GTR_OK && q < nq; q++) {
        size_t m = 0;
        while (m < k && ids[q * k + m] != UINT32_MAX) {
            hits[q * k + m] = (gtr_hit){ids[q * k + m], sc[q * k + m]};
            m++;
        }
        n_hits[q] = m;
    }
    free(ids);
    free(sc);
    return st;
}

/* recall@k of approximate hits against exact ones, each list of k+1 without the query's own
 * document */
static size_t shared_hits(const gtr_hit *a, size_t na, const gtr_hit *b, size_t nb, size_t self, size_t k)
{
    size_t h = 0, ka = 0;
    for (size_t i = 0; i < na && ka < k; i++) {
        if (a[i].doc == self) continue;
        ka++;
        for (size_t j = 0, kb = 0; j < nb && kb < k; j++) {
            if (b[j].doc == self) continue;
            kb++;
            h += a[i].doc == b[j].doc;
        }
    }
    return h;
}

gtr_status gtr_ann_tune(const gtr_ann *a, double target_recall, size_t k, size_t sample_n,
                        uint64_t seed, gtr_pool *pool, uint32_t *nprobe, double *recall,
                        gtr_error *err)
{
    if (!a || !nprobe || !recall || k == 0 || !(target_recall > 0 && target_recall <= 1))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann tune: need a handle, k > 0 and a target recall in (0, 1]");
    size_t n = gtr_index_count(a->ix), dim = (size_t)gtr_index_dim(a->ix);
    if (n < 2) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann tune: the index has fewer than 2 documents");
    if (sample_n == 0 || sample_n > n) sample_n = n < 200 ? n : 200;
    if (k > n - 1) k = n - 1;
    size_t kk = k + 1;
    float *q = gtr_xmalloc(sample_n * dim * sizeof *q, "tune queries", err);
    size_t *self = gtr_xmalloc(sample_n * sizeof *self, "tune sample", err);
    gtr_hit *ex = gtr_xmalloc(sample_n * kk * sizeof *ex, "tune hits", err);
    gtr_hit *ap = gtr_xmalloc(sample_n * kk * sizeof *ap, "tune hits", err);
    size_t *nex = gtr_xmalloc(sample_n * sizeof *nex, "tune counts", err);
    size_t *nap = gtr_xmalloc(sample_n * sizeof *nap, "tune counts", err);
    gtr_status st = q && self && ex && ap && nex && nap ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    uint64_t s = seed ^ 0x74756e65ull;
    for (size_t i = 0; st == GTR_OK && i < sample_n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        self[i] = (size_t)((s >> 17) % n); /* with replacement: duplicates only cost time */
        memcpy(q + i * dim, gtr_index_vector(a->ix, self[i]), dim * sizeof *q);
    }
    gtr_search_options so = {pool, 0};
    if (st == GTR_OK) st = gtr_index_search(a->ix, q, sample_n, kk, &so, ex, nex, err);
    uint32_t lists = gtr_ivf_n_lists(a->ivf);
    for (uint32_t np = 1; st == GTR_OK; np = np * 2 > lists ? lists : np * 2) {
        gtr_ann_search_options ao = {np, 0, pool};
        if ((st = gtr_ann_search(a, q, sample_n, kk, &ao, ap, nap, err))) break;
        size_t h = 0;
        for (size_t i = 0; i < sample_n; i++)
            h += shared_hits(ap + i * kk, nap[i], ex + i * kk, nex[i], self[i], k);
        *nprobe = np;
        *recall = (double)h / (double)(sample_n * k);
        if (*recall >= target_recall || np == lists) break;
    }
    free(q); free(self); free(ex); free(ap); free(nex); free(nap);
    return st;
}
