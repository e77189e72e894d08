/* compact.c — the optional float16 / int8 copy of the vectors and the exact search over it.
 *
 * Each document d keeps, besides its codes, e_d >= ||d - decoded(d)|| and n_d >= ||d|| (both
 * rounded up). For a query q the first-pass score A = q . decoded(d), computed in float, is
 * within B_d = ||q|| (e_d + g (2 n_d + e_d)) of the exact float32 score s_d, where
 * g = (dim + 16) 2^-23 bounds the rounding of either sum (see score.h). So L_d = A - B_d <=
 * s_d <= U_d = A + B_d. With T the k-th largest L, a document with U_d < T has k documents
 * scoring strictly more and cannot be in the top k; all others are re-scored with the float32
 * kernel, giving exactly the hits (and score bits) of a float32 search. Thread-local
 * thresholds are lower bounds of T, so candidates can be dropped while scanning. */
#include "index/index_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB 64

size_t gtr_ix_compact_row_bytes(uint32_t kind, size_t dim)
{
    return kind == GTR_COMPACT_F16 ? dim * 2 : kind == GTR_COMPACT_INT8 ? dim : 0;
}

/* a float not below x (x >= 0), with a little room for the rounding of sqrt in double */
static float round_up(double x)
{
    x *= 1.0 + 1e-9;
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

void gtr_ix_compact_encode(uint32_t kind, const float *v, size_t dim, void *codes, float aux[3])
{
    double err2 = 0, norm2 = 0;
    float scale = 0;
    if (kind == GTR_COMPACT_F16) {
        uint16_t *c = codes;
        for (size_t k = 0; k < dim; k++) {
            c[k] = gtr_f32_to_f16(v[k]);
            double e = (double)v[k] - (double)gtr_f16_to_f32(c[k]);
            err2 += e * e;
        }
    } else {
        int8_t *c = codes;
        float mx = 0;
        for (size_t k = 0; k < dim; k++) mx = fmaxf(mx, fabsf(v[k]));
        scale = mx / 127.0f;
        for (size_t k = 0; k < dim; k++) {
            long r = scale > 0 ? lrintf(v[k] / scale) : 0;
            c[k] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
            double e = (double)v[k] - (double)scale * (double)c[k];
            err2 += e * e;
        }
    }
    for (size_t k = 0; k < dim; k++) norm2 += (double)v[k] * (double)v[k];
    aux[0] = scale;
    /* a value beyond float16's range decodes to infinity: make the bound infinite too, so the
     * document is always re-scored */
    aux[1] = isfinite(err2) ? round_up(sqrt(err2)) : INFINITY;
    aux[2] = round_up(sqrt(norm2));
}

/* ---- the search */

typedef struct {
    gtr_hit *c; /* candidates: score field holds U, doc the document */
    size_t n, cap;
    double *lb; /* min-heap of the k largest lower bounds seen */
    size_t nlb;
} cand_list;

typedef struct {
    const gtr_index *ix;
    const gtr_ix_kernels *kern;
    const float *Q;
    size_t qs, nq, k, block;
    const double *qnorm;
    double gamma;
    cand_list *lists; /* [threads][nq] */
    float *scratch;   /* [threads][nq * SUB] */
    int failed;       /* out of memory in a task */
    const uint8_t *allow; /* filter (NULL: none); replaced documents are skipped too */
} pass_ctx;

static void lb_push(double *h, size_t *n, size_t k, double v)
{
    if (*n < k) {
        size_t i = (*n)++;
        h[i] = v;
        while (i > 0 && h[(i - 1) / 2] > h[i]) {
            double t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    if (!(v > h[0])) return;
    h[0] = v;
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        double t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static double threshold(const cand_list *l, size_t k)
{
    return l->nlb < k ? -INFINITY : l->lb[0];
}

/* keep only candidates with U >= t */
static void prune(cand_list *l, double t)
{
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!((double)l->c[i].score < t)) l->c[w++] = l->c[i];
    l->n = w;
}

static void pass_task(void *vc, size_t t, int tid)
{
    pass_ctx *c = vc;
    const gtr_index *ix = c->ix;
    size_t dim = ix->dim, d0 = t * c->block, d1 = GTR_MIN(ix->n, d0 + c->block);
    size_t row = gtr_ix_compact_row_bytes(ix->h.compact, dim);
    float *S = c->scratch + (size_t)tid * c->nq * SUB;
    cand_list *L = c->lists + (size_t)tid * c->nq;
    for (size_t j0 = d0; j0 < d1; j0 += SUB) {
        size_t nd = GTR_MIN((size_t)SUB, d1 - j0);
        const uint8_t *codes = (const uint8_t *)ix->compact + j0 * row;
        if (ix->h.compact == GTR_COMPACT_F16)
            c->kern->approx_f16(c->Q, c->nq, c->qs, (const uint16_t *)(const void *)codes, nd, dim, S, SUB);
        else
            c->kern->approx_i8(c->Q, c->nq, c->qs, (const int8_t *)codes, ix->caux + 3 * j0, nd, dim, S, SUB);
        /* the document's share of the bound, the same for every query */
        double bd[SUB];
        for (size_t j = 0; j < nd; j++) {
            const float *aux = ix->caux + 3 * (j0 + j);
            double e = aux[1], n = aux[2];
            bd[j] = (e + c->gamma * (2 * n + e)) * (1 + 1e-6);
            /* a document never returned takes no part, not even in the lower bounds */
            if ((c->allow || ix->dead) && !gtr_ix_allowed(ix, c->allow, j0 + j)) bd[j] = NAN;
        }
        for (size_t q = 0; q < c->nq; q++) {
            cand_list *l = &L[q];
            for (size_t j = 0; j < nd; j++) {
                if (isnan(bd[j])) continue;
                double b = c->qnorm[q] * bd[j] + 1e-30;
                double a = S[q * SUB + j];
                double lo = a - b, hi = a + b;
                if (isnan(lo)) lo = -INFINITY;
                if (isnan(hi)) hi = INFINITY;
                lb_push(l->lb, &l->nlb, c->k, lo);
                if (hi < threshold(l, c->k)) continue;
                if (l->n == l->cap) {
                    prune(l, threshold(l, c->k));
                    if (l->n == l->cap || l->n * 2 > l->cap) {
                        size_t cap = l->cap ? l->cap * 2 : 256;
                        gtr_hit *p = realloc(l->c, cap * sizeof *p);
                        if (!p) {
                            c->failed = 1;
                            return;
                        }
                        l->c = p;
                        l->cap = cap;
                    }
                }
                /* U stored as a float rounded up */
                float u = (float)hi;
                if ((double)u < hi) u = nextafterf(u, INFINITY);
                l->c[l->n].score = u;
                l->c[l->n++].doc = j0 + j;
            }
        }
    }
}

typedef struct {
    pass_ctx *p;
    int threads;
    size_t q0;
    gtr_hit *hits;
    size_t *n_hits;
    size_t k_out;
    gtr_hit *merge; /* [nq][k] */
} rescore_ctx;

/* per query: the global threshold from all threads' lower bounds, then exact re-scoring */
static void rescore_task(void *vc, size_t q, int tid)
{
    (void)tid;
    rescore_ctx *r = vc;
    pass_ctx *c = r->p;
    const gtr_index *ix = c->ix;
    size_t kk = c->k;
    /* T = k-th largest lower bound overall: merge the per-thread heaps into the first */
    double *all = c->lists[q].lb;
    size_t nall = c->lists[q].nlb;
    for (int t = 1; t < r->threads; t++) {
        cand_list *l = &c->lists[(size_t)t * c->nq + q];
        for (size_t i = 0; i < l->nlb; i++) lb_push(all, &nall, kk, l->lb[i]);
    }
    double T = nall < kk ? -INFINITY : all[0];
    gtr_ix_topk m = {r->merge + q * kk, 0, kk};
    for (int t = 0; t < r->threads; t++) {
        cand_list *l = &c->lists[(size_t)t * c->nq + q];
        for (size_t i = 0; i < l->n; i++) {
            if ((double)l->c[i].score < T) continue;
            size_t d = l->c[i].doc;
            float s;
            c->kern->score(c->Q + q * c->qs, 1, c->qs, ix->vectors + d * ix->dim, 1, ix->dim, &s, 1);
            gtr_ix_topk_push(ix, &m, s, d);
        }
    }
    gtr_ix_topk_sort(ix, &m);
    memcpy(r->hits + (r->q0 + q) * r->k_out, m.h, m.n * sizeof *m.h);
    r->n_hits[r->q0 + q] = m.n;
}

gtr_status gtr_ix_search_compact(const gtr_index *ix, const gtr_ix_kernels *kern,
                                 const float *Q, size_t qs, size_t nq, size_t k,
                                 const uint8_t *allow, gtr_pool *pool, gtr_hit *hits,
                                 size_t *n_hits, gtr_error *err)
{
    int threads = gtr_pool_size(pool);
    size_t kk = GTR_MIN(k, ix->n);
    size_t qb = GTR_MIN(nq, (size_t)64);
    gtr_status st = GTR_OK;
    cand_list *lists = gtr_xcalloc((size_t)threads * qb, sizeof *lists, "search candidates", err);
    double *lbmem = gtr_xmalloc((size_t)threads * qb * kk * sizeof *lbmem, "search candidates", err);
    double *qnorm = gtr_xmalloc(qb * sizeof *qnorm, "search candidates", err);
    float *scratch = gtr_malloc_aligned((size_t)threads * qb * SUB * sizeof(float), err);
    gtr_hit *merge = gtr_xmalloc(qb * kk * sizeof *merge, "search candidates", err);
    if (!lists || !lbmem || !qnorm || !scratch || !merge) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    size_t block = (ix->n + (size_t)threads * 8 - 1) / ((size_t)threads * 8);
    block = GTR_MAX((size_t)SUB, (block + SUB - 1) / SUB * SUB);
    size_t n_blocks = (ix->n + block - 1) / block;
    for (size_t q0 = 0; q0 < nq && !st; q0 += qb) {
        size_t nb = GTR_MIN(qb, nq - q0);
        for (size_t q = 0; q < nb; q++) {
            double s = 0;
            for (size_t i = 0; i < ix->dim; i++) s += (double)Q[(q0 + q) * qs + i] * Q[(q0 + q) * qs + i];
            qnorm[q] = sqrt(s) * (1 + 1e-9);
        }
        for (size_t i = 0; i < (size_t)threads * nb; i++) {
            lists[i].n = 0;
            lists[i].nlb = 0;
            lists[i].lb = lbmem + i * kk;
        }
        pass_ctx c = {ix, kern, Q + q0 * qs, qs, nb, kk, block, qnorm, (double)(ix->dim + 16) * 0x1p-23,
                      lists, scratch, 0, allow};
        gtr_pool_for(pool, n_blocks, pass_task, &c);
        if (c.failed) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory collecting search candidates");
            break;
        }
        rescore_ctx r = {&c, threads, q0, hits, n_hits, k, merge};
        gtr_pool_for(pool, nb, rescore_task, &r);
    }
done:
    if (lists)
        for (size_t i = 0; i < (size_t)threads * qb; i++) free(lists[i].c);
    free(lists);
    free(lbmem);
    free(qnorm);
    gtr_free_aligned(scratch);
    free(merge);
    return st;
}
