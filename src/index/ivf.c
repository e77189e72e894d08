/* ivf.c — inverted-file approximate index, opening and search: the probed lists' int8 codes
 * scanned, the best candidates re-ranked exactly from the mmap'd float32 vectors (format and
 * guarantees in ivf.h; the build is ivf_build.c). */
#include "index/ivf.h"

#include "index/index_internal.h"
#include "index/ivf_format.h"
#include "index/ivf_scan.h"
#include "index/score.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

struct gtr_ivf {
    gtr_mmap map;
    size_t n, dim, n_lists;
    uint64_t tag;
    const float *centroids, *scales, *vectors;
    const uint64_t *offsets;
    const uint32_t *rows;
    const int8_t *codes;
    uint32_t *list_of; /* vector number -> list */
    int8_t *cent8;           /* [n_lists][dim] the centroids as int8 codes (coarse first pass) */
    float *caux;             /* [n_lists][3] their scale, error bound, norm (compact.c) */
    double *cbound;          /* [n_lists][2] a list's shares of the coarse bound (prep_task) */
    gtr_ivf_dots_fn dots;    /* the int8 list scan */
    gtr_ivf_above_fn above;  /* its scores and the rows that may enter a heap */
    const gtr_ix_kernels *ixk; /* exact re-rank scores (the index's definition) */
    bool prefetch;           /* ask for a query's re-ranked rows before reading them */
};

#define CRC_PIECE ((size_t)64 << 20)

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
    /* The float32 vectors (4/5 of the file) are checked first, in pieces whose pages are
     * dropped from this mapping after each: search reads only the re-ranked rows, so a corpus
     * larger than memory is verified without making all of it resident. The sections before
     * them (codes, lists) are checked last, so they are what the page cache holds after. */
    uint32_t crc_v = 0;
    for (size_t o = L.vectors; o < size; o += CRC_PIECE) {
        size_t len = size - o < CRC_PIECE ? size - o : CRC_PIECE;
        crc_v = gtr_crc32(crc_v, p + o, len);
        gtr_mmap_drop(&ix->map, o, len);
    }
    gtr_mmap_random(&ix->map, L.vectors, size - L.vectors);
    uint32_t crc = gtr_crc32_combine(gtr_crc32(0, p + IVF_HDR, L.vectors - IVF_HDR), crc_v,
                                     size - L.vectors);
    if (crc != h.body_crc) {
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
    /* Float32 vectors larger than half of RAM cannot all stay in the page cache: re-ranking
     * then reads rows from disk, and asking for a query's rows together overlaps those reads
     * (a few microseconds per query of system calls; not worth it when they are cached). */
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    ix->prefetch = pages > 0 && psize > 0 &&
                   (double)(size - L.vectors) > 0.5 * (double)pages * (double)psize;
    ix->dots = gtr_ivf_dots_select();
    ix->above = gtr_ivf_above_select();
    ix->ixk = gtr_ix_kernels_select();
    /* the coarse step's first pass reads the centroids as int8 (1/4 of the bytes; see
     * prep_task): codes and bounds made here, as compact.c makes a flat index's */
    ix->cent8 = gtr_malloc_aligned(ix->n_lists * ix->dim, err);
    ix->caux = gtr_xmalloc(ix->n_lists * 3 * sizeof(float), "ivf centroid codes", err);
    ix->cbound = gtr_xmalloc(ix->n_lists * 2 * sizeof(double), "ivf centroid codes", err);
    if (!ix->cent8 || !ix->caux || !ix->cbound) goto fail;
    double gamma = (double)(ix->dim + 16) * 0x1p-23;
    for (size_t l = 0; l < ix->n_lists; l++) {
        float *aux = ix->caux + 3 * l;
        gtr_ix_compact_encode(GTR_COMPACT_INT8, ix->centroids + l * ix->dim, ix->dim,
                              ix->cent8 + l * ix->dim, aux);
        double e = aux[1], nm = aux[2];
        ix->cbound[2 * l] = (e + gamma * (2 * nm + e)) * (1 + 1e-6);
        ix->cbound[2 * l + 1] = (nm + e) * (1 + 1e-6);
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
    gtr_free_aligned(ix->cent8);
    free(ix->caux);
    free(ix->cbound);
    free(ix->list_of);
    free(ix);
}

size_t gtr_ivf_size(const gtr_ivf *ix) { return ix->n; }
uint64_t gtr_ivf_tag(const gtr_ivf *ix) { return ix->tag; }
int gtr_ivf_dim(const gtr_ivf *ix) { return (int)ix->dim; }
uint32_t gtr_ivf_n_lists(const gtr_ivf *ix) { return (uint32_t)ix->n_lists; }
const float *gtr_ivf_centroids(const gtr_ivf *ix) { return ix->centroids; }
uint32_t gtr_ivf_list_of(const gtr_ivf *ix, uint32_t v) { return ix->list_of[v]; }
void gtr_ivf_set_prefetch(gtr_ivf *ix, bool on) { ix->prefetch = on; }

/* ---- search ----------------------------------------------------------------- */

/* Candidate order of the int8 stage: higher score, then smaller number. A strict total order,
 * so the best `rerank` of any set are the same whatever order (or thread) pushed them. */
typedef struct cand { float s; uint32_t id; } cand;
static bool worse(cand a, cand b) { return a.s < b.s || (a.s == b.s && a.id > b.id); }

/* The final order: higher score, then the caller's tie rule (else smaller number). */
typedef struct rank_rule { int (*tie)(const void *, uint32_t, uint32_t); const void *user; } rank_rule;
static bool worse_final(const rank_rule *r, cand a, cand b)
{
    if (a.s != b.s) return a.s < b.s;
    if (r->tie) return r->tie(r->user, a.id, b.id) < 0;
    return a.id > b.id;
}

/* Bounded heap, heap[0] the worst kept; rule NULL: the int8 stage order. */
static void heap_push(const rank_rule *rule, cand *h, size_t *n, size_t cap, cand c)
{
#define W(a, b) (rule ? worse_final(rule, (a), (b)) : worse((a), (b)))
    if (*n == cap) {
        if (!W(h[0], c)) return;
        size_t i = 0; /* replace the root (the worst) and sift the newcomer down */
        for (;;) {
            size_t a = 2 * i + 1, b = a + 1, m = a;
            if (a >= *n) break;
            if (b < *n && W(h[b], h[a])) m = b;
            if (!W(h[m], c)) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = c;
        return;
    }
    size_t i = (*n)++;
    while (i > 0 && W(c, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = c;
#undef W
}

/* Heap sort in place, best first (the heap is destroyed): the worst of h[0..m) moves to
 * h[m-1], m = n..2. */
static void heap_sort_best_first(const rank_rule *rule, cand *h, size_t n)
{
#define W(a, b) (rule ? worse_final(rule, (a), (b)) : worse((a), (b)))
    for (size_t m = n; m > 1; m--) {
        cand last = h[m - 1];
        h[m - 1] = h[0];
        size_t k = m - 1, i = 0; /* sift `last` down from the root over h[0..k) */
        for (;;) {
            size_t a = 2 * i + 1, b = a + 1, c = a;
            if (a >= k) break;
            if (b < k && W(h[b], h[a])) c = b;
            if (!W(h[c], last)) break;
            h[i] = h[c];
            i = c;
        }
        h[i] = last;
    }
#undef W
}

#define QBATCH 256 /* queries per round: bounds the coarse scores and per-thread heaps */
#define SMALL_WORK ((size_t)1 << 21) /* multiply-adds below which a phase stays on one thread */
#define CHUNK 64   /* list rows per kernel call (64 x 768 bytes stay in L1/L2) */

typedef struct scan_task { uint32_t list; uint64_t r0, r1; } scan_task;

typedef struct search_ctx {
    const gtr_ivf *ix;
    const gtr_ivf_search_opts *o;
    rank_rule rule;
    size_t nq, k, nprobe, rerank, qs, q8s, threads;
    const float *queries; /* this round's, unpadded */
    float *Qf;            /* [nq][qs] padded, aligned: exact re-rank */
    int8_t *Q8;           /* [nq][q8s] quantised */
    float *qscale;
    int32_t *qsum;
    int32_t *coarse;      /* [nq][n_lists]: first-pass coarse sums, int8 query . int8 centroid */
    double *qnorm, *qerr; /* [nq]: ||q||, ||q - its int8 codes * qscale|| (both rounded up) */
    uint32_t *probe;      /* [nq][nprobe] */
    uint32_t *lstart, *lq; /* queries probing list l: lq[lstart[l] .. lstart[l+1]) */
    scan_task *tasks;
    cand *heaps;          /* [threads][nq][rerank] */
    size_t *hn;           /* [threads][nq] */
    int32_t *dots;        /* [threads][nq][CHUNK] */
    uint32_t *sel;        /* [threads][CHUNK + 16]: rows of a chunk at or above a heap's worst */
    float *sels;          /* [threads][CHUNK + 16]: their scores */
    const int8_t **qptr;  /* [threads][nq] */
    int32_t *qsums;       /* [threads][nq] */
    cand *pscratch;       /* [threads][nprobe]: choosing a query's lists */
    double *lscratch;     /* [threads][nprobe]: the largest lower bounds of their scores */
    double *ascratch, *bscratch; /* [threads][n_lists]: a query's first-pass scores, bounds */
    cand *tscratch;       /* [threads][k]: a query's re-ranked top k */
    uint32_t *out_ids;
    float *out_scores;
} search_ctx;

#define CQ 16 /* queries per coarse task */

/* A block of CQ queries: padded float copies (the exact score kernels' layout), int8 codes
 * (the scans'), and their first-pass coarse sums against the int8 centroids (unless every list
 * is probed). */
static void coarse_task(void *p, size_t t, int tid)
{
    search_ctx *c = p;
    const gtr_ivf *ix = c->ix;
    size_t q0 = t * CQ, nb = c->nq - q0 < CQ ? c->nq - q0 : CQ, dim = ix->dim;
    const int8_t **qp = c->qptr + (size_t)tid * c->nq;
    for (size_t qi = q0; qi < q0 + nb; qi++) {
        const float *q = c->queries + qi * dim;
        memcpy(c->Qf + qi * c->qs, q, dim * sizeof(float));
        memset(c->Qf + qi * c->qs + dim, 0, (c->qs - dim) * sizeof(float));
        int8_t *q8 = c->Q8 + qi * c->q8s;
        gtr_ivf_quantize_query(q, dim, q8, &c->qscale[qi], &c->qsum[qi]);
        double n2 = 0, e2 = 0, sq = c->qscale[qi];
        for (size_t d = 0; d < dim; d++) {
            double e = (double)q[d] - sq * q8[d];
            n2 += (double)q[d] * q[d];
            e2 += e * e;
        }
        c->qnorm[qi] = sqrt(n2) * (1 + 1e-9);
        c->qerr[qi] = sqrt(e2) * (1 + 1e-9);
        qp[qi - q0] = q8;
    }
    if (c->nprobe < ix->n_lists)
        ix->dots(ix->cent8, ix->n_lists, dim, qp, c->qsum + q0, nb, c->coarse + q0 * ix->n_lists,
                 ix->n_lists);
}

/* min-heap of the n largest values pushed (h[0] the smallest kept) */
static void lb_push(double *h, size_t *n, size_t cap, double v)
{
    if (*n == cap) {
        if (!(v > h[0])) return;
        size_t i = 0;
        for (;;) {
            size_t a = 2 * i + 1, b = a + 1, m = a;
            if (a >= cap) break;
            if (b < cap && h[b] < h[a]) m = b;
            if (!(h[m] < v)) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = v;
        return;
    }
    size_t i = (*n)++;
    while (i > 0 && v < h[(i - 1) / 2]) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}

/* Per query: pick the probed lists.
 * They are the nprobe whose centroids score highest by the index's exact score (score.h;
 * ties: smaller list number). Reading every float32 centroid per query (1000 x 768: 3 MB,
 * from L3 at best) cost a batch-1 query more than its int8 list scan, so the scores come in
 * two passes, as in compact.c's exact search over int8 codes. The first pass (coarse_task)
 * gives A = qscale * scale_l * (q8 . c8_l), the inner product of the int8-decoded query q^ and
 * centroid c^_l (computed here in double from the exact integer sum). With e_q = ||q - q^||,
 * and e_l >= ||c_l - c^_l||, n_l >= ||c_l|| from compact.c's encoder:
 *   |A - s_l| <= |(q^ - q) . c^_l| + |q . (c^_l - c_l)| + |q . c_l - s_l|
 *             <= e_q (n_l + e_l) + ||q|| (e_l + g (2 n_l + e_l)) = B_l
 * where s_l is the float exact score and g (2 n_l + e_l) ||q|| covers its rounding (compact.c's
 * bound, which also covers a float first pass; here it is exact up to double rounding, which
 * the last terms below cover). With T the nprobe-th largest A - B, a list with A + B < T has
 * nprobe lists scoring strictly more and is not probed; only the others are scored exactly
 * (usually a handful). So the lists chosen are those of exact scores over every centroid,
 * whatever the batch or thread count. */
static void prep_task(void *p, size_t qi, int tid)
{
    search_ctx *c = p;
    const gtr_ivf *ix = c->ix;
    const size_t L = ix->n_lists;
    const float *qf = c->Qf + qi * c->qs;
    uint32_t *probe = c->probe + qi * c->nprobe;
    if (c->nprobe == L) { /* every list: no scores needed (the scan's result is order-free) */
        for (size_t l = 0; l < L; l++) probe[l] = (uint32_t)l;
        return;
    }
    const double qn = c->qnorm[qi], qe = c->qerr[qi], qsc = c->qscale[qi];
    const int32_t *D = c->coarse + qi * L;
    double *A = c->ascratch + (size_t)tid * L, *B = c->bscratch + (size_t)tid * L;
    double *lb = c->lscratch + (size_t)tid * c->nprobe;
    size_t nlb = 0;
    for (size_t l = 0; l < L; l++) {
        A[l] = qsc * (double)ix->caux[3 * l] * (double)D[l];
        B[l] = qn * ix->cbound[2 * l] + qe * ix->cbound[2 * l + 1] + 1e-12 * fabs(A[l]) + 1e-30;
        double lo = A[l] - B[l];
        lb_push(lb, &nlb, c->nprobe, isnan(lo) ? -INFINITY : lo);
    }
    double T = lb[0]; /* nlb == nprobe <= L */
    cand *heap = c->pscratch + (size_t)tid * c->nprobe;
    size_t n = 0;
    for (size_t l = 0; l < L; l++) {
        if (A[l] + B[l] < T) continue; /* false for NaN: scored exactly */
        float s;
        ix->ixk->score(qf, 1, c->qs, ix->centroids + l * ix->dim, 1, ix->dim, &s, 1);
        heap_push(NULL, heap, &n, c->nprobe, (cand){s, (uint32_t)l});
    }
    for (size_t j = 0; j < n; j++) probe[j] = heap[j].id;
}

/* One list (or part of one): its int8 codes against every query of the round probing it. */
static void scan_list(void *p, size_t t, int tid)
{
    search_ctx *c = p;
    const gtr_ivf *ix = c->ix;
    const scan_task *st = &c->tasks[t];
    const uint32_t *qs = c->lq + c->lstart[st->list];
    size_t nql = c->lstart[st->list + 1] - c->lstart[st->list];
    const int8_t **qp = c->qptr + (size_t)tid * c->nq;
    int32_t *qsum = c->qsums + (size_t)tid * c->nq, *dots = c->dots + (size_t)tid * c->nq * CHUNK;
    cand *heaps = c->heaps + (size_t)tid * c->nq * c->rerank;
    size_t *hn = c->hn + (size_t)tid * c->nq;
    for (size_t j = 0; j < nql; j++) {
        qp[j] = c->Q8 + (size_t)qs[j] * c->q8s;
        qsum[j] = c->qsum[qs[j]];
    }
    const uint8_t *allow = c->o->allow;
    uint32_t *sel = c->sel + (size_t)tid * (CHUNK + 16);
    float *sels = c->sels + (size_t)tid * (CHUNK + 16);
    for (uint64_t r0 = st->r0; r0 < st->r1; r0 += CHUNK) {
        size_t nr = (size_t)(st->r1 - r0 < CHUNK ? st->r1 - r0 : CHUNK);
        ix->dots(ix->codes + r0 * ix->dim, nr, ix->dim, qp, qsum, nql, dots, CHUNK);
        for (size_t j = 0; j < nql; j++) {
            uint32_t qi = qs[j];
            cand *h = heaps + (size_t)qi * c->rerank;
            size_t *n = &hn[qi];
            /* rows scoring below the heap's worst can never enter it (its worst only rises
             * during the chunk): the kernel drops them, usually all; the rest are pushed in
             * row order exactly as before, so the heap ends the same */
            float thr = *n == c->rerank ? h[0].s : -INFINITY;
            size_t m = ix->above(dots + j * CHUNK, nr, c->qscale[qi], ix->scales + r0, thr, sel, sels);
            for (size_t i = 0; i < m; i++) {
                uint32_t v = ix->rows[r0 + sel[i]];
                if (allow && !(allow[v >> 3] >> (v & 7) & 1)) continue;
                cand cd = {sels[i], v};
                if (*n == c->rerank && !worse(h[0], cd)) continue;
                heap_push(NULL, h, n, c->rerank, cd);
            }
        }
    }
}

/* Per query: merge the threads' candidates, re-rank them exactly, keep the top k. */
static void rerank_task(void *p, size_t qi, int tid)
{
    search_ctx *c = p;
    const gtr_ivf *ix = c->ix;
    /* the merged candidates go into thread 0's heap of this query (only this task uses it) */
    cand *all = c->heaps + qi * c->rerank;
    size_t na = c->hn[qi];
    for (size_t t = 1; t < c->threads; t++) {
        const cand *h = c->heaps + (t * c->nq + qi) * c->rerank;
        for (size_t j = 0; j < c->hn[t * c->nq + qi]; j++) heap_push(NULL, all, &na, c->rerank, h[j]);
    }
    /* exact scores: the index's score definition (score.h), so a re-ranked document scores
     * exactly what exact search gives it; the top k go into the other threads' scratch */
    cand *tp = c->tscratch + (size_t)tid * c->k;
    size_t nt = 0;
    const float *q = c->Qf + qi * c->qs;
    if (ix->prefetch)
        for (size_t j = 0; j < na; j++)
            gtr_mmap_willneed(&ix->map, (size_t)((const uint8_t *)(ix->vectors + (size_t)all[j].id * ix->dim) - ix->map.data),
                              ix->dim * sizeof(float));
    /* the candidates' rows lie at random places in memory: ask for all of them (into L2)
     * first, so their reads overlap instead of each waiting for the one before (40 rows of
     * 768 floats: ~22 -> ~8 us per query on AMD Zen 4) */
    const size_t row_bytes = ix->dim * sizeof(float);
    for (size_t j = 0; j < na; j++) {
        const char *r = (const char *)(ix->vectors + (size_t)all[j].id * ix->dim);
        for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(r + o, 0, 2);
    }
    for (size_t j = 0; j < na; j++) {
        float s;
        ix->ixk->score(q, 1, c->qs, ix->vectors + (size_t)all[j].id * ix->dim, 1, ix->dim, &s, 1);
        heap_push(&c->rule, tp, &nt, c->k, (cand){s, all[j].id});
    }
    heap_sort_best_first(&c->rule, tp, nt);
    for (size_t j = 0; j < c->k; j++) {
        c->out_ids[qi * c->k + j] = j < nt ? tp[j].id : UINT32_MAX;
        c->out_scores[qi * c->k + j] = j < nt ? tp[j].s : -INFINITY;
    }
}

gtr_status gtr_ivf_search(const gtr_ivf *ix, const float *queries, size_t nq, size_t k,
                          const gtr_ivf_search_opts *opts, uint32_t *ids, float *scores,
                          gtr_error *err)
{
    gtr_ivf_search_opts o = opts ? *opts : (gtr_ivf_search_opts){0};
    if (!ix || (nq && (!queries || !ids || !scores)) || k == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf search: need an index, queries, outputs and k > 0");
    if (nq == 0) return GTR_OK;
    search_ctx c = {.ix = ix, .o = &o, .rule = {o.tie, o.tie_user}, .k = k};
    c.nprobe = o.nprobe ? o.nprobe : 8;
    if (c.nprobe > ix->n_lists) c.nprobe = ix->n_lists;
    c.rerank = o.rerank ? o.rerank : 4 * k;
    if (c.rerank < k) c.rerank = k;
    if (c.rerank > ix->n) c.rerank = ix->n;
    c.threads = o.pool ? (size_t)gtr_pool_size(o.pool) : 1;
    c.qs = gtr_ix_qstride(ix->dim);
    c.q8s = gtr_ivf_qstride(ix->dim);
    size_t T = c.threads, L = ix->n_lists;
    /* queries per round: QBATCH, fewer when a huge rerank would make the heaps large */
    size_t B = ((size_t)64 << 20) / (T * c.rerank * sizeof(cand));
    B = B < 1 ? 1 : B > QBATCH ? QBATCH : B;
    if (B > nq) B = nq;
    /* the most scan tasks of a round: every probed list once, plus one per CHUNK*16 rows
     * a big list is split into */
    size_t max_tasks = B * c.nprobe + ix->n / (CHUNK * 16) + 1;
    c.Qf = gtr_malloc_aligned(B * c.qs * sizeof(float), err);
    c.Q8 = gtr_malloc_aligned(B * c.q8s, err);
    c.qscale = gtr_xmalloc(B * sizeof(float), "ivf search", err);
    c.qsum = gtr_xmalloc(B * sizeof(int32_t), "ivf search", err);
    c.coarse = gtr_xmalloc(B * L * sizeof(int32_t), "ivf coarse scores", err);
    c.probe = gtr_xmalloc(B * c.nprobe * sizeof(uint32_t), "ivf probes", err);
    c.lstart = gtr_xcalloc(L + 1, sizeof(uint32_t), "ivf probes", err);
    c.lq = gtr_xmalloc(B * c.nprobe * sizeof(uint32_t), "ivf probes", err);
    c.tasks = gtr_xmalloc(max_tasks * sizeof(scan_task), "ivf tasks", err);
    c.heaps = gtr_xmalloc(T * B * c.rerank * sizeof(cand), "ivf candidates", err);
    c.hn = gtr_xmalloc(T * B * sizeof(size_t), "ivf candidates", err);
    c.dots = gtr_xmalloc(T * B * CHUNK * sizeof(int32_t), "ivf scan", err);
    c.sel = gtr_xmalloc(T * (CHUNK + 16) * sizeof(uint32_t), "ivf scan", err);
    c.sels = gtr_xmalloc(T * (CHUNK + 16) * sizeof(float), "ivf scan", err);
    c.qptr = gtr_xmalloc(T * B * sizeof(*c.qptr), "ivf scan", err);
    c.qsums = gtr_xmalloc(T * B * sizeof(int32_t), "ivf scan", err);
    c.pscratch = gtr_xmalloc(T * c.nprobe * sizeof(cand), "ivf probes", err);
    c.lscratch = gtr_xmalloc(T * c.nprobe * sizeof(double), "ivf probes", err);
    c.ascratch = gtr_xmalloc(T * L * sizeof(double), "ivf probes", err);
    c.bscratch = gtr_xmalloc(T * L * sizeof(double), "ivf probes", err);
    c.qnorm = gtr_xmalloc(B * sizeof(double), "ivf search", err);
    c.qerr = gtr_xmalloc(B * sizeof(double), "ivf search", err);
    c.tscratch = gtr_xmalloc(T * k * sizeof(cand), "ivf top k", err);
    gtr_status st = c.Qf && c.Q8 && c.qscale && c.qsum && c.coarse && c.probe && c.lstart &&
                    c.lq && c.tasks && c.heaps && c.hn && c.dots && c.sel && c.sels && c.qptr && c.qsums &&
                    c.pscratch && c.lscratch && c.ascratch && c.bscratch && c.qnorm && c.qerr && c.tscratch
                        ? GTR_OK : (err && err->code ? err->code : GTR_ERR_NOMEM);
    for (size_t q0 = 0; st == GTR_OK && q0 < nq; q0 += B) {
        c.nq = nq - q0 < B ? nq - q0 : B;
        c.queries = queries + q0 * ix->dim;
        c.out_ids = ids + q0 * k;
        c.out_scores = scores + q0 * k;
        /* A phase with little work runs on the calling thread: waking the pool costs more
         * than it saves (tens of microseconds, far more on a loaded machine). The results do
         * not depend on it. */
        size_t small = o.parallel_min ? o.parallel_min : SMALL_WORK;
        gtr_pool *qpool = c.nq > 1 ? o.pool : NULL;
        gtr_pool *cpool = c.nq * L * ix->dim >= small ? o.pool : NULL;
        gtr_pool_for(c.nq > 1 ? cpool : NULL, (c.nq + CQ - 1) / CQ, coarse_task, &c);
        gtr_pool_for(qpool, c.nq, prep_task, &c);
        /* group the round's queries by list (ascending query order within a list) */
        memset(c.lstart, 0, (L + 1) * sizeof *c.lstart);
        for (size_t i = 0; i < c.nq * c.nprobe; i++) c.lstart[c.probe[i] + 1]++;
        for (size_t l = 0; l < L; l++) c.lstart[l + 1] += c.lstart[l];
        size_t nt = 0, work = 0;
        for (size_t l = 0; l < L; l++) {
            if (c.lstart[l + 1] == c.lstart[l]) continue;
            work += (size_t)(ix->offsets[l + 1] - ix->offsets[l]) * ix->dim;
            /* split big lists so a single query still spreads over the threads */
            for (uint64_t r0 = ix->offsets[l]; r0 < ix->offsets[l + 1]; r0 += CHUNK * 16) {
                uint64_t r1 = ix->offsets[l + 1] - r0 < CHUNK * 16 ? ix->offsets[l + 1] : r0 + CHUNK * 16;
                c.tasks[nt++] = (scan_task){(uint32_t)l, r0, r1};
            }
        }
        for (size_t qi = 0; qi < c.nq; qi++) /* lstart[l] is list l's cursor, shifted back below */
            for (size_t j = 0; j < c.nprobe; j++) {
                uint32_t l = c.probe[qi * c.nprobe + j];
                c.lq[c.lstart[l]++] = (uint32_t)qi;
            }
        for (size_t l = L; l > 0; l--) c.lstart[l] = c.lstart[l - 1]; /* undo the cursor shift */
        c.lstart[0] = 0;
        memset(c.hn, 0, T * c.nq * sizeof *c.hn);
        gtr_pool_for(work >= small ? o.pool : NULL, nt, scan_list, &c);
        gtr_pool_for(qpool, c.nq, rerank_task, &c);
    }
    gtr_free_aligned(c.Qf); gtr_free_aligned(c.Q8);
    free(c.qscale); free(c.qsum); free(c.coarse); free(c.probe); free(c.lstart); free(c.lq);
    free(c.tasks); free(c.heaps); free(c.hn); free(c.dots); free(c.sel); free(c.sels); free(c.qptr); free(c.qsums);
    free(c.pscratch); free(c.lscratch); free(c.ascratch); free(c.bscratch); free(c.qnorm); free(c.qerr);
    free(c.tscratch);
    return st;
}
