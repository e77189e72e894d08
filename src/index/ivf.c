/* ivf.c — inverted-file approximate index: spherical k-means, int8 codes, exact re-rank
 * from the mmap'd float32 vectors (format and guarantees in ivf.h). */
#include "index/ivf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IVF_MAGIC "GTRIVF01"
#define IVF_VERSION 1u
#define IVF_HDR 64u
#define IVF_ALIGN(x) (((x) + 63u) & ~(size_t)63u)

typedef struct ivf_hdr {
    char magic[8];
    uint32_t version, dim;
    uint64_t n;
    uint32_t n_lists, pad0;
    uint64_t seed, tag;
    uint32_t body_crc, hdr_crc; /* hdr_crc covers the bytes before it */
    uint8_t pad[8];
} ivf_hdr;
_Static_assert(sizeof(ivf_hdr) == IVF_HDR, "header is 64 bytes");

/* Section offsets from the header fields (also the file size). */
typedef struct ivf_layout {
    size_t centroids, offsets, rows, scales, codes, vectors, end;
} ivf_layout;

static bool ivf_layout_of(size_t n, size_t dim, size_t n_lists, ivf_layout *l)
{
    /* Every product below is bounded by the file size the caller then checks; guard the
     * multiplications so a lying header cannot wrap them. */
    if (dim == 0 || dim > 65536 || n_lists == 0 || n > ((size_t)1 << 40) / dim) return false;
    size_t off = IVF_HDR;
    l->centroids = off; off = IVF_ALIGN(off + n_lists * dim * sizeof(float));
    l->offsets = off;   off = IVF_ALIGN(off + (n_lists + 1) * sizeof(uint64_t));
    l->rows = off;      off = IVF_ALIGN(off + n * sizeof(uint32_t));
    l->scales = off;    off = IVF_ALIGN(off + n * sizeof(float));
    l->codes = off;     off = IVF_ALIGN(off + n * dim);
    l->vectors = off;   off = IVF_ALIGN(off + n * dim * sizeof(float));
    l->end = off;
    return true;
}

struct gtr_ivf {
    gtr_mmap map;
    size_t n, dim, n_lists;
    uint64_t tag;
    const float *centroids, *scales, *vectors;
    const uint64_t *offsets;
    const uint32_t *rows;
    const int8_t *codes;
    uint32_t *list_of; /* vector number -> list */
};

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: seedable, no global state */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float dotf(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
    for (size_t i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

static void normalize(float *v, size_t d)
{
    double s = 0.0;
    for (size_t i = 0; i < d; i++) s += (double)v[i] * v[i];
    if (s <= 0.0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < d; i++) v[i] *= inv;
}

/* ---- build ------------------------------------------------------------------ */

typedef struct assign_ctx {
    const float *vecs, *cent;
    size_t dim, n_lists;
    const uint32_t *which; /* vector numbers to assign (NULL: 0..n-1) */
    uint32_t *out;
} assign_ctx;

static void assign_task(void *p, size_t i, int tid)
{
    (void)tid;
    assign_ctx *c = p;
    const float *v = c->vecs + (size_t)(c->which ? c->which[i] : i) * c->dim;
    uint32_t best = 0;
    float bs = -INFINITY;
    for (size_t l = 0; l < c->n_lists; l++) {
        float s = dotf(v, c->cent + l * c->dim, c->dim);
        if (s > bs) { bs = s; best = (uint32_t)l; }
    }
    c->out[i] = best;
}

/* Spherical k-means on a seeded sample; centroids [n_lists][dim] out. */
static gtr_status kmeans(const float *vecs, size_t n, size_t dim, size_t n_lists,
                         const gtr_ivf_build_opts *o, float *cent, gtr_error *err)
{
    uint64_t rs = o->seed ^ 0x6976662d6b6d656eull;
    size_t per = o->sample ? o->sample : 64;
    size_t m = n_lists * per < n ? n_lists * per : n;
    uint32_t *perm = gtr_xmalloc(n * sizeof *perm, "k-means sample", err);
    uint32_t *asg = gtr_xmalloc(m * sizeof *asg, "k-means assignment", err);
    double *sum = gtr_xcalloc(n_lists * dim, sizeof *sum, "k-means sums", err);
    size_t *cnt = gtr_xcalloc(n_lists, sizeof *cnt, "k-means counts", err);
    if (!perm || !asg || !sum || !cnt) {
        free(perm); free(asg); free(sum); free(cnt);
        return err ? err->code : GTR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = 0; i < m; i++) { /* partial Fisher-Yates: the first m are the sample */
        size_t j = i + (size_t)(rng_next(&rs) % (n - i));
        uint32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    for (size_t l = 0; l < n_lists; l++)
        memcpy(cent + l * dim, vecs + (size_t)perm[l] * dim, dim * sizeof(float));
    size_t iters = o->iters ? o->iters : 10;
    assign_ctx ac = {vecs, cent, dim, n_lists, perm, asg};
    for (size_t it = 0; it < iters; it++) {
        gtr_pool_for(o->pool, m, assign_task, &ac);
        memset(sum, 0, n_lists * dim * sizeof *sum);
        memset(cnt, 0, n_lists * sizeof *cnt);
        for (size_t i = 0; i < m; i++) { /* serial, in sample order: thread-count independent */
            const float *v = vecs + (size_t)perm[i] * dim;
            double *s = sum + (size_t)asg[i] * dim;
            for (size_t d = 0; d < dim; d++) s[d] += v[d];
            cnt[asg[i]]++;
        }
        for (size_t l = 0; l < n_lists; l++) {
            float *c = cent + l * dim;
            if (cnt[l] == 0) { /* empty list: restart it at a random sample vector */
                memcpy(c, vecs + (size_t)perm[rng_next(&rs) % m] * dim, dim * sizeof(float));
                continue;
            }
            for (size_t d = 0; d < dim; d++) c[d] = (float)sum[l * dim + d];
            normalize(c, dim);
        }
    }
    free(perm); free(asg); free(sum); free(cnt);
    return GTR_OK;
}

static gtr_status write_pad(gtr_atomic_file *f, size_t *off, size_t to, gtr_error *err)
{
    static const uint8_t zero[64];
    if (to < *off || to - *off > sizeof zero)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "ivf: bad section offset");
    gtr_status st = gtr_atomic_write(f, zero, to - *off, err);
    *off = to;
    return st;
}

gtr_status gtr_ivf_build(const char *path, const float *vecs, size_t n, int dim_i,
                         const gtr_ivf_build_opts *opts, gtr_error *err)
{
    gtr_ivf_build_opts o = opts ? *opts : (gtr_ivf_build_opts){0};
    if (!path || !vecs || n == 0 || dim_i <= 0 || n > UINT32_MAX)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: need a path, 1..2^32-1 vectors and dim > 0");
    size_t dim = (size_t)dim_i;
    size_t n_lists = o.n_lists ? o.n_lists : (size_t)ceil(sqrt((double)n));
    if (n_lists > n)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: %zu lists for %zu vectors (at most one list per vector)", n_lists, n);
    ivf_layout L;
    if (!ivf_layout_of(n, dim, n_lists, &L))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: %zu x %zu vectors is too large", n, dim);

    float *cent = gtr_xmalloc(n_lists * dim * sizeof(float), "ivf centroids", err);
    uint32_t *asg = gtr_xmalloc(n * sizeof(uint32_t), "ivf assignment", err);
    uint64_t *offs = gtr_xcalloc(n_lists + 1, sizeof(uint64_t), "ivf offsets", err);
    uint32_t *rows = gtr_xmalloc(n * sizeof(uint32_t), "ivf rows", err);
    float *scales = gtr_xmalloc(n * sizeof(float), "ivf scales", err);
    int8_t *code = gtr_xmalloc(dim, "ivf code", err);
    gtr_status st = (!cent || !asg || !offs || !rows || !scales || !code)
                        ? (err ? err->code : GTR_ERR_NOMEM) : GTR_OK;
    gtr_atomic_file f = {0};
    bool open = false;
    if (st == GTR_OK) st = kmeans(vecs, n, dim, n_lists, &o, cent, err);
    if (st == GTR_OK) {
        assign_ctx ac = {vecs, cent, dim, n_lists, NULL, asg};
        gtr_pool_for(o.pool, n, assign_task, &ac);
        for (size_t i = 0; i < n; i++) offs[asg[i] + 1]++;
        for (size_t l = 0; l < n_lists; l++) offs[l + 1] += offs[l];
        uint64_t *fill = gtr_xmalloc(n_lists * sizeof *fill, "ivf fill", err);
        if (!fill) st = err ? err->code : GTR_ERR_NOMEM;
        else {
            memcpy(fill, offs, n_lists * sizeof *fill);
            for (size_t i = 0; i < n; i++) rows[fill[asg[i]]++] = (uint32_t)i; /* stable */
            free(fill);
        }
    }
    for (size_t r = 0; st == GTR_OK && r < n; r++) {
        const float *v = vecs + (size_t)rows[r] * dim;
        float mx = 0.0f;
        for (size_t d = 0; d < dim; d++) mx = fmaxf(mx, fabsf(v[d]));
        scales[r] = mx > 0.0f ? mx / 127.0f : 1.0f;
    }

    /* The body CRC is computed over exactly the bytes written, section by section. */
    if (st == GTR_OK) { st = gtr_atomic_open(&f, path, err); open = st == GTR_OK; }
    ivf_hdr h = {0};
    uint32_t crc = 0;
    size_t off = 0;
#define PUT(ptr, len)                                                                       \
    do {                                                                                    \
        if (st == GTR_OK) st = gtr_atomic_write(&f, (ptr), (len), err);                      \
        crc = gtr_crc32(crc, (ptr), (len));                                                 \
        off += (len);                                                                       \
    } while (0)
#define PAD(to)                                                                             \
    do {                                                                                    \
        static const uint8_t z_[64];                                                        \
        size_t pn_ = (to) - off;                                                            \
        crc = gtr_crc32(crc, z_, pn_);                                                      \
        if (st == GTR_OK) st = write_pad(&f, &off, (to), err);                               \
        else off = (to);                                                                    \
    } while (0)
    if (st == GTR_OK) {
        /* header first with a zero CRC: rewritten below once the body's CRC is known */
        st = gtr_atomic_write(&f, &h, sizeof h, err);
        off = IVF_HDR;
        PUT(cent, n_lists * dim * sizeof(float)); PAD(L.offsets);
        PUT(offs, (n_lists + 1) * sizeof(uint64_t)); PAD(L.rows);
        PUT(rows, n * sizeof(uint32_t)); PAD(L.scales);
        PUT(scales, n * sizeof(float)); PAD(L.codes);
        for (size_t r = 0; r < n && st == GTR_OK; r++) {
            const float *v = vecs + (size_t)rows[r] * dim;
            float inv = 1.0f / scales[r];
            for (size_t d = 0; d < dim; d++) {
                long q = lrintf(v[d] * inv);
                code[d] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            }
            PUT(code, dim);
        }
        PAD(L.vectors);
        PUT(vecs, n * dim * sizeof(float)); PAD(L.end);
    }
#undef PUT
#undef PAD
    if (st == GTR_OK) {
        memcpy(h.magic, IVF_MAGIC, 8);
        h.version = IVF_VERSION;
        h.dim = (uint32_t)dim;
        h.n = n;
        h.n_lists = (uint32_t)n_lists;
        h.seed = o.seed;
        h.tag = o.tag;
        h.body_crc = crc;
        h.hdr_crc = gtr_crc32(0, &h, offsetof(ivf_hdr, hdr_crc));
        if (fflush(f.fp) != 0 || fseek(f.fp, 0, SEEK_SET) != 0)
            st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot rewrite the header", f.tmp_path);
        else
            st = gtr_atomic_write(&f, &h, sizeof h, err);
    }
    if (st == GTR_OK) { st = gtr_atomic_commit(&f, err); open = false; }
    if (open) gtr_atomic_abort(&f);
    free(cent); free(asg); free(offs); free(rows); free(scales); free(code);
    return st;
}

/* ---- open ------------------------------------------------------------------- */

gtr_ivf *gtr_ivf_open(const char *path, gtr_error *err)
{
    gtr_ivf *ix = gtr_xcalloc(1, sizeof *ix, "ivf index", err);
    if (!ix) return NULL;
    if (gtr_mmap_open(path, &ix->map, err) != GTR_OK) { free(ix); return NULL; }
    const uint8_t *p = ix->map.data;
    size_t size = ix->map.size;
    ivf_hdr h;
    ivf_layout L;
    if (size < IVF_HDR) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: truncated (%zu bytes, not an ivf index)", path, size);
        goto fail;
    }
    memcpy(&h, p, sizeof h);
    if (memcmp(h.magic, IVF_MAGIC, 8) != 0) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: not a gtr ivf index (bad magic)", path);
        goto fail;
    }
    if (h.hdr_crc != gtr_crc32(0, &h, offsetof(ivf_hdr, hdr_crc))) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: header checksum mismatch (corrupt)", path);
        goto fail;
    }
    if (h.version != IVF_VERSION) {
        gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: ivf format version %u (this build reads %u)",
                   path, h.version, IVF_VERSION);
        goto fail;
    }
    if (!ivf_layout_of(h.n, h.dim, h.n_lists, &L) || h.n == 0 || h.n_lists > h.n) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: impossible header (n %llu, dim %u, lists %u)", path,
                   (unsigned long long)h.n, h.dim, h.n_lists);
        goto fail;
    }
    if (size != L.end) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: %zu bytes, the header says %zu (truncated or extended)",
                   path, size, L.end);
        goto fail;
    }
    if (gtr_crc32(0, p + IVF_HDR, size - IVF_HDR) != h.body_crc) {
        gtr_seterr(err, GTR_ERR_FORMAT, "%s: body checksum mismatch (corrupt)", path);
        goto fail;
    }
    ix->n = h.n; ix->dim = h.dim; ix->n_lists = h.n_lists; ix->tag = h.tag;
    ix->centroids = (const float *)(p + L.centroids);
    ix->offsets = (const uint64_t *)(p + L.offsets);
    ix->rows = (const uint32_t *)(p + L.rows);
    ix->scales = (const float *)(p + L.scales);
    ix->codes = (const int8_t *)(p + L.codes);
    ix->vectors = (const float *)(p + L.vectors);
    /* The checksum proves the bytes are ours, but the structure is still checked so that a
     * bug in a writer can never become an out-of-bounds read. */
    if (ix->offsets[0] != 0 || ix->offsets[ix->n_lists] != ix->n) goto bad;
    for (size_t l = 0; l < ix->n_lists; l++)
        if (ix->offsets[l + 1] < ix->offsets[l]) goto bad;
    ix->list_of = gtr_xmalloc(ix->n * sizeof(uint32_t), "ivf list map", err);
    if (!ix->list_of) goto fail;
    memset(ix->list_of, 0xff, ix->n * sizeof(uint32_t));
    for (size_t l = 0; l < ix->n_lists; l++)
        for (uint64_t r = ix->offsets[l]; r < ix->offsets[l + 1]; r++) {
            if (ix->rows[r] >= ix->n || ix->list_of[ix->rows[r]] != UINT32_MAX) goto bad;
            ix->list_of[ix->rows[r]] = (uint32_t)l;
        }
    return ix;
bad:
    gtr_seterr(err, GTR_ERR_FORMAT, "%s: inconsistent lists", path);
fail:
    gtr_ivf_close(ix);
    return NULL;
}

void gtr_ivf_close(gtr_ivf *ix)
{
    if (!ix) return;
    gtr_mmap_close(&ix->map);
    free(ix->list_of);
    free(ix);
}

size_t gtr_ivf_size(const gtr_ivf *ix) { return ix->n; }
uint64_t gtr_ivf_tag(const gtr_ivf *ix) { return ix->tag; }
int gtr_ivf_dim(const gtr_ivf *ix) { return (int)ix->dim; }
uint32_t gtr_ivf_n_lists(const gtr_ivf *ix) { return (uint32_t)ix->n_lists; }
const float *gtr_ivf_centroids(const gtr_ivf *ix) { return ix->centroids; }
uint32_t gtr_ivf_list_of(const gtr_ivf *ix, uint32_t v) { return ix->list_of[v]; }

/* ---- search ----------------------------------------------------------------- */

/* Candidate order: higher score, then smaller id. heap[0] is the worst kept. */
typedef struct cand { float s; uint32_t id; } cand;
static bool worse(cand a, cand b) { return a.s < b.s || (a.s == b.s && a.id > b.id); }

static void heap_push(cand *h, size_t *n, size_t cap, cand c)
{
    if (*n == cap) {
        if (!worse(h[0], c)) return;
        size_t i = 0; /* replace the root (the worst) and sift the newcomer down */
        for (;;) {
            size_t a = 2 * i + 1, b = a + 1, m = a;
            if (a >= *n) break;
            if (b < *n && worse(h[b], h[a])) m = b;
            if (!worse(h[m], c)) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = c;
        return;
    }
    size_t i = (*n)++;
    while (i > 0 && worse(c, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = c;
}

static int cand_cmp_best_first(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return worse(y, x) ? -1 : worse(x, y) ? 1 : 0;
}

typedef struct search_ctx {
    const gtr_ivf *ix;
    const float *q;
    size_t k, nprobe, rerank;
    const uint8_t *allow;
    uint32_t *ids;
    float *scores;
    cand *scratch; /* per thread: nprobe + rerank + k */
    size_t scratch_per;
} search_ctx;

static void search_task(void *p, size_t qi, int tid)
{
    search_ctx *c = p;
    const gtr_ivf *ix = c->ix;
    size_t dim = ix->dim;
    const float *q = c->q + qi * dim;
    cand *probe = c->scratch + (size_t)tid * c->scratch_per;
    cand *pool = probe + c->nprobe, *top = pool + c->rerank;
    size_t np = 0, nc = 0, nt = 0;
    for (size_t l = 0; l < ix->n_lists; l++)
        heap_push(probe, &np, c->nprobe, (cand){dotf(q, ix->centroids + l * dim, dim), (uint32_t)l});
    for (size_t j = 0; j < np; j++) {
        size_t l = probe[j].id;
        for (uint64_t r = ix->offsets[l]; r < ix->offsets[l + 1]; r++) {
            uint32_t v = ix->rows[r];
            if (c->allow && !(c->allow[v >> 3] >> (v & 7) & 1)) continue;
            const int8_t *code = ix->codes + r * dim;
            float s = 0.0f;
            for (size_t d = 0; d < dim; d++) s += q[d] * (float)code[d];
            heap_push(pool, &nc, c->rerank, (cand){s * ix->scales[r], v});
        }
    }
    for (size_t j = 0; j < nc; j++) {
        uint32_t v = pool[j].id;
        heap_push(top, &nt, c->k, (cand){dotf(q, ix->vectors + (size_t)v * dim, dim), v});
    }
    qsort(top, nt, sizeof *top, cand_cmp_best_first);
    for (size_t j = 0; j < c->k; j++) {
        c->ids[qi * c->k + j] = j < nt ? top[j].id : UINT32_MAX;
        c->scores[qi * c->k + j] = j < nt ? top[j].s : -INFINITY;
    }
}

gtr_status gtr_ivf_search(const gtr_ivf *ix, const float *queries, size_t nq, size_t k,
                          const gtr_ivf_search_opts *opts, uint32_t *ids, float *scores,
                          gtr_error *err)
{
    gtr_ivf_search_opts o = opts ? *opts : (gtr_ivf_search_opts){0};
    if (!ix || (nq && (!queries || !ids || !scores)) || k == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf search: need an index, queries, outputs and k > 0");
    size_t nprobe = o.nprobe ? o.nprobe : 8;
    if (nprobe > ix->n_lists) nprobe = ix->n_lists;
    size_t rerank = o.rerank ? o.rerank : 4 * k;
    if (rerank < k) rerank = k;
    if (rerank > ix->n) rerank = ix->n;
    int threads = o.pool ? gtr_pool_size(o.pool) : 1;
    search_ctx c = {ix, queries, k, nprobe, rerank, o.allow, ids, scores, NULL,
                    nprobe + rerank + k};
    c.scratch = gtr_xmalloc((size_t)threads * c.scratch_per * sizeof(cand), "ivf search scratch", err);
    if (!c.scratch) return err ? err->code : GTR_ERR_NOMEM;
    gtr_pool_for(o.pool, nq, search_task, &c);
    free(c.scratch);
    return GTR_OK;
}
