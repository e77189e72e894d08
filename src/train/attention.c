/* attention.c — T5 self-attention over packed texts, forward and backward, one task per
 * (text, head), query rows in blocks of QBLOCK so the score buffer stays small:
 *
 *   S = Q Kᵀ + B        (no 1/√d_kv in T5; B[q,k] = table[bucket(k − q), head])
 *   P = softmax_rows(S),   ctx = P V
 *
 * Backward recomputes P from Q and K (cheaper in memory than keeping [L, L] per head):
 *   dV = Pᵀ dctx,  dP = dctx Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *   dQ = dS K,  dK = dSᵀ Q,  dtable[bucket(k − q), head] += dS[q, k].
 * The forward is the inference encoder's arithmetic step for step (same kernels, same query
 * blocks), so trained weights embed here exactly as in gtr_model. The bias gradient is summed
 * per task by key − query, folded into buckets, and the tasks are added in (text, head) order. */
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QBLOCK 64 /* the inference encoder's GTR_ATT_QBLOCK: same blocks, same sums */

void gtr_tr_attn_ws_free(gtr_tr_attn_ws *w)
{
    gtr_free_aligned(w->scores);
    gtr_free_aligned(w->pos);
    free(w->bucket);
    gtr_free_aligned(w->bias_part);
    memset(w, 0, sizeof *w);
}

/* per thread: P/S block, dP block (QBLOCK x len each), then 2*len doubles for key − query sums */
static size_t per_thread_floats(size_t len) { return 2 * QBLOCK * len + 4 * len + 16; }

gtr_status gtr_tr_attn_prepare(const gtr_tr_model *m, gtr_tr_attn_ws *w, const gtr_tr_texts *x,
                               gtr_pool *pool, gtr_error *err)
{
    size_t len = GTR_MAX((size_t)1, x->max_len), nt = (size_t)gtr_pool_size(pool);
    size_t H = (size_t)m->H, nb = (size_t)m->cfg.t5.num_buckets;
    if ((int)len > w->len) {
        size_t wd = 2 * len - 1;
        gtr_free_aligned(w->pos);
        free(w->bucket);
        w->len = 0;
        w->pos = gtr_malloc_aligned(H * wd * sizeof(float), err);
        w->bucket = gtr_xmalloc(wd * sizeof(int), "attention buckets", err);
        if (!w->pos || !w->bucket) return GTR_ERR_NOMEM;
        for (size_t r = 0; r < wd; r++)
            w->bucket[r] = gtr_t5_bucket((long)r - (long)(len - 1), (int)nb, m->cfg.t5.max_distance);
        w->len = (int)len;
    }
    size_t per = per_thread_floats((size_t)w->len);
    if (per > w->per_thread || (int)nt > w->n_threads) {
        gtr_free_aligned(w->scores);
        w->per_thread = w->n_threads = 0;
        if (!(w->scores = gtr_malloc_aligned(per * nt * sizeof(float), err))) return GTR_ERR_NOMEM;
        w->per_thread = per;
        w->n_threads = (int)nt;
    }
    size_t need = GTR_MAX((size_t)1, x->n) * H * nb;
    if (need > w->bias_cap) {
        gtr_free_aligned(w->bias_part);
        w->bias_cap = 0;
        if (!(w->bias_part = gtr_malloc_aligned(need * sizeof(float), err))) return GTR_ERR_NOMEM;
        w->bias_cap = need;
    }
    /* the bias rows from the current table */
    size_t wd = 2 * (size_t)w->len - 1;
    const float *table = m->p + m->rel;
    for (size_t h = 0; h < H; h++)
        for (size_t r = 0; r < wd; r++) w->pos[h * wd + r] = table[(size_t)w->bucket[r] * H + h];
    return GTR_OK;
}

typedef struct {
    const gtr_tr_model *m;
    gtr_tr_attn_ws *w;
    const gtr_tr_texts *x;
    const float *qkv, *dctx;
    float *ctx, *dqkv;
} attn_job;

static void fwd_task(void *ctx, size_t task, int tid)
{
    attn_job *j = ctx;
    const gtr_tr_model *m = j->m;
    const gtr_kernels *k = m->kern;
    size_t H = (size_t)m->H, dk = (size_t)m->cfg.t5.d_kv, inner = (size_t)m->inner, ld = 3 * inner;
    size_t text = task / H, h = task % H;
    size_t L = j->x->lens[text], row0 = j->x->offs[text];
    const float *Q = j->qkv + row0 * ld + h * dk, *K = Q + inner, *V = Q + 2 * inner;
    float *S = j->w->scores + (size_t)tid * j->w->per_thread;
    size_t wd = 2 * (size_t)j->w->len - 1;
    const float *bias = j->w->pos + h * wd + (size_t)j->w->len - 1; /* rel 0 */
    for (size_t q0 = 0; q0 < L; q0 += QBLOCK) {
        size_t rows = GTR_MIN((size_t)QBLOCK, L - q0);
        gtr_sgemm_nt(k, rows, L, dk, Q + q0 * ld, ld, K, ld, 0.0f, S, L);
        for (size_t r = 0; r < rows; r++) gtr_add_softmax(k, S + r * L, bias - (q0 + r), L);
        gtr_sgemm_nn(k, rows, dk, L, S, L, V, ld, 0.0f, j->ctx + (row0 + q0) * inner + h * dk, inner);
    }
}

void gtr_tr_attn_fwd(const gtr_tr_model *m, gtr_tr_attn_ws *w, gtr_pool *pool,
                     const gtr_tr_texts *x, const float *qkv, float *ctx)
{
    attn_job j = {m, w, x, qkv, NULL, ctx, NULL};
    gtr_pool_for(pool, x->n * (size_t)m->H, fwd_task, &j);
}

static void bwd_task(void *ctx, size_t task, int tid)
{
    attn_job *j = ctx;
    const gtr_tr_model *m = j->m;
    const gtr_kernels *k = m->kern;
    size_t H = (size_t)m->H, dk = (size_t)m->cfg.t5.d_kv, inner = (size_t)m->inner, ld = 3 * inner;
    size_t nb = (size_t)m->cfg.t5.num_buckets;
    size_t text = task / H, h = task % H;
    size_t L = j->x->lens[text], row0 = j->x->offs[text];
    const float *Q = j->qkv + row0 * ld + h * dk, *K = Q + inner, *V = Q + 2 * inner;
    const float *dC = j->dctx + row0 * inner + h * dk;
    float *dQ = j->dqkv + row0 * ld + h * dk, *dK = dQ + inner, *dV = dQ + 2 * inner;
    size_t len = (size_t)j->w->len, wd = 2 * len - 1;
    float *P = j->w->scores + (size_t)tid * j->w->per_thread, *dP = P + QBLOCK * len;
    double *drel = (double *)(((uintptr_t)(dP + QBLOCK * len) + 7) & ~(uintptr_t)7);
    const float *bias = j->w->pos + h * wd + len - 1;
    for (size_t r = 0; r < 2 * L - 1; r++) drel[r] = 0; /* drel[(k − q) + L − 1] */
    for (size_t q0 = 0; q0 < L; q0 += QBLOCK) {
        size_t rows = GTR_MIN((size_t)QBLOCK, L - q0);
        float beta = q0 == 0 ? 0.0f : 1.0f;
        gtr_sgemm_nt(k, rows, L, dk, Q + q0 * ld, ld, K, ld, 0.0f, P, L);
        for (size_t r = 0; r < rows; r++) gtr_add_softmax(k, P + r * L, bias - (q0 + r), L);
        gtr_sgemm_nt(k, rows, L, dk, dC + q0 * inner, inner, V, ld, 0.0f, dP, L);
        gtr_sgemm_tn(k, L, dk, rows, P, L, dC + q0 * inner, inner, beta, dV, ld);
        for (size_t r = 0; r < rows; r++) {
            const float *pr = P + r * L;
            float *dr = dP + r * L;
            double dot = 0;
            for (size_t c = 0; c < L; c++) dot += (double)dr[c] * pr[c];
            float fd = (float)dot;
            double *dl = drel + (L - 1) - (q0 + r); /* dl[c] sums key − query = c − (q0 + r) */
            for (size_t c = 0; c < L; c++) {
                dr[c] = pr[c] * (dr[c] - fd);
                dl[c] += dr[c];
            }
        }
        gtr_sgemm_nn(k, rows, dk, L, dP, L, K, ld, 0.0f, dQ + q0 * ld, ld);
        gtr_sgemm_tn(k, L, dk, rows, dP, L, Q + q0 * ld, ld, beta, dK, ld);
    }
    /* fold key − query sums into buckets: this task's row of the bias gradient */
    float *part = j->w->bias_part + task * nb;
    double acc[256];
    size_t nbk = GTR_MIN(nb, (size_t)256);
    for (size_t b = 0; b < nbk; b++) acc[b] = 0;
    for (size_t r = 0; r < 2 * L - 1; r++) {
        int b = j->w->bucket[r + len - L]; /* rel = r − (L − 1) */
        if ((size_t)b < nbk) acc[b] += drel[r];
    }
    for (size_t b = 0; b < nb; b++) part[b] = b < nbk ? (float)acc[b] : 0.0f;
}

void gtr_tr_attn_bwd(const gtr_tr_model *m, gtr_tr_attn_ws *w, gtr_pool *pool,
                     const gtr_tr_texts *x, const float *qkv, const float *dctx, float *dqkv,
                     float *dtable)
{
    attn_job j = {m, w, x, qkv, dctx, NULL, dqkv};
    size_t H = (size_t)m->H, nb = (size_t)m->cfg.t5.num_buckets;
    gtr_pool_for(pool, x->n * H, bwd_task, &j);
    for (size_t b = 0; b < nb; b++)
        for (size_t h = 0; h < H; h++) {
            double s = 0;
            for (size_t t = 0; t < x->n; t++) s += w->bias_part[(t * H + h) * nb + b];
            dtable[b * H + h] += (float)s;
        }
}
