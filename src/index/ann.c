/* ann.c — the public approximate-search handle (gtr.h, "ann"): an IVF file (ivf.c) tied to
 * the dense index whose vectors it holds, so hits map back to that index's documents; its
 * deletions (a small file beside it), filters by id, and extension after `gtr index --add`.
 *
 * Deletion file "<ivf>.del" (little-endian), written atomically (temp, fsync, rename):
 *   magic "GTRIVFD1", version u32, pad u32, n u64 (documents), tag u64 (the index's ids,
 *   index_tag), count u64 (deleted), crc u32 over the bytes before it and the bitmap, pad u32,
 *   bitmap ((n + 7) / 8 bytes; bit d set = document d deleted).
 * It names documents, not lists, so it stays valid when the IVF file is rebuilt from the same
 * index; an index extended with --add gets it carried over (gtr_ann_build with a base). */
#include "index/index_internal.h"
#include "index/ivf.h"

#include <stdlib.h>
#include <string.h>

struct gtr_ann {
    gtr_ivf *ivf;
    const gtr_index *ix;
    char *del_path;    /* "<ivf>.del" */
    uint8_t *deleted;  /* bit d set: document d deleted (NULL: none) */
    uint8_t *live;     /* its complement, the allow-bitmap searches use (NULL: none deleted) */
    size_t n_deleted;
};

#define DEL_MAGIC "GTRIVFD1"
#define DEL_HDR 48u

/* What the IVF file must have been built from: the model, the count and every document id
 * (an index rebuilt or extended with --add gives another tag). Over the first n documents. */
uint64_t gtr_ix_ids_tag(const gtr_index *ix, uint64_t n)
{
    uint64_t fp = gtr_index_fingerprint(ix);
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
static uint64_t index_tag(const gtr_index *ix) { return gtr_ix_ids_tag(ix, gtr_index_count(ix)); }

static char *del_path_of(const char *path, gtr_error *err) { return gtr_path_suffixed(path, ".del", err); }

/* Read "<ivf>.del" (absent: no deletions) for n documents of index tag `tag`. *bits gets the
 * bitmap (NULL when the file is absent), *count the deleted documents. */
static gtr_status read_deletions(const char *dpath, uint64_t n, uint64_t tag, uint8_t **bits,
                                 size_t *count, gtr_error *err)
{
    *bits = NULL;
    *count = 0;
    if (!gtr_file_exists(dpath)) return GTR_OK;
    char *data;
    size_t len, nb = (size_t)((n + 7) / 8);
    gtr_status st = gtr_read_file(dpath, DEL_HDR + nb + 1, &data, &len, err);
    if (st) return st;
    uint64_t fn = 0, ftag = 0, fcount = 0;
    uint32_t crc = 0;
    if (len >= DEL_HDR) {
        memcpy(&fn, data + 16, 8);
        memcpy(&ftag, data + 24, 8);
        memcpy(&fcount, data + 32, 8);
        memcpy(&crc, data + 40, 4);
    }
    if (len < DEL_HDR || memcmp(data, DEL_MAGIC, 8) != 0)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: not a gtr deletion file (truncated or bad magic)", dpath);
    else if (len != DEL_HDR + nb && fn == n)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: %zu bytes, expected %zu (truncated or extended)", dpath, len, DEL_HDR + nb);
    else if (gtr_crc32(gtr_crc32(0, data, 40), data + DEL_HDR, len - DEL_HDR) != crc)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: checksum mismatch (corrupt)", dpath);
    else if (fn != n || ftag != tag)
        st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: deletions of another index (%llu documents; this one has %llu or other ids)",
                        dpath, (unsigned long long)fn, (unsigned long long)n);
    size_t c = 0;
    for (size_t i = 0; st == GTR_OK && i < nb; i++) c += (size_t)__builtin_popcount((unsigned char)data[DEL_HDR + i]);
    if (st == GTR_OK && (c != fcount || (n % 8 && (unsigned char)data[DEL_HDR + nb - 1] >> (n % 8))))
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: inconsistent deletion count", dpath);
    if (st == GTR_OK && !(*bits = gtr_xmalloc(nb ? nb : 1, "ann deletions", err))) st = err ? err->code : GTR_ERR_NOMEM;
    if (st == GTR_OK) { memcpy(*bits, data + DEL_HDR, nb); *count = c; }
    free(data);
    return st;
}

static gtr_status write_deletions(const char *dpath, uint64_t n, uint64_t tag, const uint8_t *bits,
                                  size_t count, gtr_error *err)
{
    uint8_t h[DEL_HDR] = {0};
    uint32_t version = 1;
    uint64_t c = count;
    memcpy(h, DEL_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 16, &n, 8);
    memcpy(h + 24, &tag, 8);
    memcpy(h + 32, &c, 8);
    size_t nb = (size_t)((n + 7) / 8);
    uint32_t crc = gtr_crc32(gtr_crc32(0, h, 40), bits, nb);
    memcpy(h + 40, &crc, 4);
    gtr_atomic_file f;
    gtr_status st = gtr_atomic_open(&f, dpath, err);
    if (st) return st;
    if ((st = gtr_atomic_write(&f, h, sizeof h, err)) == GTR_OK && (st = gtr_atomic_write(&f, bits, nb, err)) == GTR_OK)
        return gtr_atomic_commit(&f, err);
    gtr_atomic_abort(&f);
    return st;
}

/* live = ~(deleted | replaced in the index) over n bits (padding bits clear) */
static gtr_status set_deleted(gtr_ann *a, uint8_t *bits, size_t count, gtr_error *err)
{
    size_t n = gtr_index_count(a->ix), nb = (n + 7) / 8;
    free(a->deleted);
    free(a->live);
    a->deleted = a->live = NULL;
    a->n_deleted = count;
    a->deleted = bits;
    if (!bits && !a->ix->dead) return GTR_OK;
    if (!(a->live = gtr_xmalloc(nb ? nb : 1, "ann deletions", err))) return err ? err->code : GTR_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++)
        a->live[i] = (uint8_t)~((bits ? bits[i] : 0) | (a->ix->dead ? a->ix->dead[i] : 0));
    if (n % 8) a->live[nb - 1] &= (uint8_t)((1u << (n % 8)) - 1);
    return GTR_OK;
}

gtr_ann_build_options gtr_ann_default_build_options(void)
{
    gtr_ann_build_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_ann_search_options gtr_ann_default_search_options(void)
{
    gtr_ann_search_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_status gtr_ann_build(const gtr_index *ix, const char *out_path,
                         const gtr_ann_build_options *opts, gtr_error *err)
{
    if (!ix || !out_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann build: need an index and an output path");
    gtr_ann_build_options o = gtr_ann_default_build_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_ann_build", err)) return GTR_ERR_INVALID_ARG;
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
    gtr_ivf_build_opts io = {.n_lists = o.n_lists, .iters = o.iters, .seed = o.seed, .tag = index_tag(ix),
                             .pool = o.pool, .checkpoint_every = o.checkpoint_every,
                             .no_resume = o.no_resume != 0, .progress = o.progress,
                             .progress_user = o.progress_user, .stats = o.stats};
    if (o.stats) memset(o.stats, 0, sizeof *o.stats); /* also when a check fails before the build */
    gtr_ivf *base = NULL;
    uint8_t *del = NULL;
    size_t n_del = 0;
    gtr_status st = GTR_OK;
    if (o.base) {
        /* --add: the base was built from the first m documents of this index (gtr index --add
         * appends); keep its lists, so old documents stay where they were and new ones join
         * the nearest list, exactly as a build given those lists would place them */
        if (!(base = gtr_ivf_open(o.base, err))) st = err ? err->code : GTR_ERR_FORMAT;
        else if (gtr_ivf_dim(base) != (int)dim || gtr_ivf_size(base) > n ||
                 gtr_ivf_tag(base) != gtr_ix_ids_tag(ix, gtr_ivf_size(base)))
            st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: not built from the first documents of this index (%zu x %d); "
                            "build afresh without --add", o.base, gtr_ivf_size(base), gtr_ivf_dim(base));
        else {
            io.n_lists = gtr_ivf_n_lists(base);
            io.centroids = gtr_ivf_centroids(base);
            /* the base's deletions carry over, the new documents live */
            char *bd = del_path_of(o.base, err);
            uint8_t *bdel = NULL;
            size_t bm = gtr_ivf_size(base);
            if (!bd) st = err ? err->code : GTR_ERR_NOMEM;
            else st = read_deletions(bd, bm, gtr_ivf_tag(base), &bdel, &n_del, err);
            free(bd);
            if (st == GTR_OK && bdel) {
                if (!(del = gtr_xcalloc((n + 7) / 8, 1, "ann deletions", err))) st = err ? err->code : GTR_ERR_NOMEM;
                else memcpy(del, bdel, (bm + 7) / 8);
                if (del && bm % 8) del[bm / 8] &= (uint8_t)((1u << (bm % 8)) - 1);
            }
            free(bdel);
        }
    }
    if (st == GTR_OK) st = gtr_ivf_build(out_path, vecs, n, (int)dim, &io, err);
    /* the output's deletion file: the base's carried over, or none (a stale one removed) */
    char *od = st == GTR_OK ? del_path_of(out_path, err) : NULL;
    if (st == GTR_OK && !od) st = err ? err->code : GTR_ERR_NOMEM;
    if (st == GTR_OK && del) st = write_deletions(od, n, io.tag, del, n_del, err);
    else if (st == GTR_OK && gtr_file_exists(od) && remove(od) != 0)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot remove the old deletion file", od);
    free(od);
    free(del);
    gtr_ivf_close(base);
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
    uint8_t *bits = NULL;
    size_t count = 0;
    if (!(a->del_path = del_path_of(path, err)) ||
        read_deletions(a->del_path, gtr_index_count(ix), gtr_ivf_tag(ivf), &bits, &count, err) ||
        set_deleted(a, bits, count, err)) {
        gtr_ann_free(a);
        return NULL;
    }
    return a;
}

void gtr_ann_free(gtr_ann *a)
{
    if (!a) return;
    gtr_ivf_close(a->ivf);
    free(a->del_path);
    free(a->deleted);
    free(a->live);
    free(a);
}

size_t gtr_ann_deleted_count(const gtr_ann *a) { return a->n_deleted; }

gtr_status gtr_ann_allow_ids(gtr_ann *a, const char *const *ids, const size_t *lens, size_t n,
                             uint8_t *bitmap, size_t *unknown, gtr_error *err)
{
    if (!a) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann allow ids: need a handle");
    return gtr_index_allow_ids(a->ix, ids, lens, n, bitmap, unknown, NULL, err);
}

gtr_status gtr_ann_delete(gtr_ann *a, const char *const *ids, const size_t *lens, size_t n,
                          size_t *unknown, gtr_error *err)
{
    if (!a || (n && (!ids || !lens)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ann delete: need a handle and ids");
    size_t docs = gtr_index_count(a->ix), nb = (docs + 7) / 8;
    uint8_t *del = gtr_xcalloc(nb ? nb : 1, 1, "ann deletions", err), *add = gtr_xcalloc(nb ? nb : 1, 1, "ann deletions", err);
    gtr_status st = del && add ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    if (st == GTR_OK) st = gtr_ann_allow_ids(a, ids, lens, n, add, unknown, err);
    size_t count = 0;
    for (size_t i = 0; st == GTR_OK && i < nb; i++) {
        del[i] = (uint8_t)((a->deleted ? a->deleted[i] : 0) | add[i]);
        count += (size_t)__builtin_popcount(del[i]);
    }
    /* the file first: the handle changes only once the deletions are durable */
    if (st == GTR_OK) st = write_deletions(a->del_path, docs, gtr_ivf_tag(a->ivf), del, count, err);
    if (st == GTR_OK) { st = set_deleted(a, del, count, err); del = NULL; }
    free(del);
    free(add);
    return st;
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
    gtr_ann_search_options o = gtr_ann_default_search_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_ann_search", err)) return GTR_ERR_INVALID_ARG;
    uint32_t *ids = gtr_xmalloc((nq * k + 1) * sizeof *ids, "ann ids", err);
    float *sc = gtr_xmalloc((nq * k + 1) * sizeof *sc, "ann scores", err);
    gtr_status st = ids && sc ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    /* deleted documents are never returned; a filter narrows further */
    uint8_t *both = NULL;
    const uint8_t *allow = o.allow ? o.allow : a->live;
    if (st == GTR_OK && o.allow && a->live) {
        size_t nb = (gtr_index_count(a->ix) + 7) / 8;
        if (!(both = gtr_xmalloc(nb ? nb : 1, "ann filter", err))) st = err ? err->code : GTR_ERR_NOMEM;
        for (size_t i = 0; both && i < nb; i++) both[i] = o.allow[i] & a->live[i];
        allow = both;
    }
    gtr_ivf_search_opts so = {o.nprobe, o.rerank, allow, o.pool, 0, id_tie, a->ix};
    if (st == GTR_OK) st = gtr_ivf_search(a->ivf, queries, nq, k, &so, ids, sc, err);
    free(both);
    for (size_t q = 0; st == GTR_OK && q < nq; q++) {
        size_t m = 0;
        while (m < k && ids[q * k + m] != UINT32_MAX) {
            gtr_hit *h = &hits[q * k + m];
            h->doc = ids[q * k + m];
            h->score = sc[q * k + m];
            h->id = gtr_index_doc_id(a->ix, h->doc, &h->id_len);
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

/* recall@k at nprobe np of the sample queries against their exact hits */
static gtr_status tune_recall(const gtr_ann *a, const float *q, size_t sample_n, size_t kk, size_t k,
                              uint32_t np, gtr_pool *pool, const gtr_hit *ex, const size_t *nex,
                              gtr_hit *ap, size_t *nap, const size_t *self, double *recall,
                              gtr_error *err)
{
    gtr_ann_search_options ao = gtr_ann_default_search_options();
    ao.nprobe = np;
    ao.pool = pool;
    gtr_status st = gtr_ann_search(a, q, sample_n, kk, &ao, ap, nap, err);
    if (st) return st;
    size_t h = 0;
    for (size_t i = 0; i < sample_n; i++)
        h += shared_hits(ap + i * kk, nap[i], ex + i * kk, nex[i], self[i], k);
    *recall = (double)h / (double)(sample_n * k);
    return GTR_OK;
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
    gtr_search_options so = gtr_index_default_search_options();
    so.pool = pool;
    if (st == GTR_OK) st = gtr_index_search(a->ix, q, sample_n, kk, &so, ex, nex, err);
    uint32_t lists = gtr_ivf_n_lists(a->ivf);
    /* doubling to the first nprobe reaching the target, then bisection between it and the
     * last one short of it (recall grows with nprobe: more lists, a superset of candidates) */
    uint32_t lo = 0, hi = 0; /* lo: largest known short of the target (0: none) */
    double hi_rec = 0.0;
    for (uint32_t np = 1; st == GTR_OK; np = np * 2 > lists ? lists : np * 2) {
        double r;
        if ((st = tune_recall(a, q, sample_n, kk, k, np, pool, ex, nex, ap, nap, self, &r, err))) break;
        if (r >= target_recall || np == lists) { hi = np; hi_rec = r; break; }
        lo = np;
    }
    while (st == GTR_OK && hi - lo > 1 && hi_rec >= target_recall) {
        uint32_t mid = lo + (hi - lo) / 2;
        double r;
        if ((st = tune_recall(a, q, sample_n, kk, k, mid, pool, ex, nex, ap, nap, self, &r, err))) break;
        if (r >= target_recall) { hi = mid; hi_rec = r; }
        else lo = mid;
    }
    *nprobe = hi;
    *recall = hi_rec;
    free(q); free(self); free(ex); free(ap); free(nex); free(nap);
    return st;
}
