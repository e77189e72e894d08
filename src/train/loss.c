/* loss.c — GTR's contrastive loss (t5x_retrieval's in-batch softmax, both directions), in
 * float64 from the float32 embeddings:
 *
 *   logits_q = q·[p; n]ᵀ/τ   [B, B+nn]    loss_q = CE(logits_q, i)   (query i -> positive i)
 *   logits_p = p·qᵀ/τ        [B, B]       loss_p = CE(logits_p, i)   (positive i -> query i)
 *   loss = (loss_q + loss_p) / 2,   CE(L, y) = mean_i (logsumexp_j L_ij − L_i,y_i)
 *
 * ∂loss/∂L_ij = (softmax(L)_ij − [j = y_i]) / (2B), and the embeddings' gradients are those
 * rows times the other side's embeddings / τ. A column that is a positive of the row's
 * example in disguise (the same passage text, or an example with the same query) is masked
 * out of the softmax: it is not a negative. Rows are computed in parallel, each by one task
 * in a fixed order: the result does not depend on the thread count. */
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GTR_TR_MAX_DIM 4096

typedef struct {
    const float *q, *p, *n;
    size_t B, nn, dim, C; /* C = B + nn columns of logits_q */
    double inv_tau;
    const uint64_t *qkey, *pkey, *nkey;
    double *lq, *lp;      /* logits, then ∂loss/∂logits */
    float *dq, *dp, *dn;
} loss_job;

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* column j of logits_q: positive j (j < B) or negative j − B */
static const float *col(const loss_job *j, size_t c)
{
    return c < j->B ? j->p + c * j->dim : j->n + (c - j->B) * j->dim;
}

static bool masked_q(const loss_job *j, size_t i, size_t c)
{
    if (c == i) return false;
    if (c < j->B)
        return (j->qkey && j->qkey[c] == j->qkey[i]) || (j->pkey && j->pkey[c] == j->pkey[i]);
    return j->nkey && j->pkey && j->nkey[c - j->B] == j->pkey[i];
}

static bool masked_p(const loss_job *j, size_t i, size_t c)
{
    if (c == i) return false;
    return (j->qkey && j->qkey[c] == j->qkey[i]) || (j->pkey && j->pkey[c] == j->pkey[i]);
}

static void logits_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    loss_job *j = ctx;
    const float *qi = j->q + i * j->dim, *pi = j->p + i * j->dim;
    for (size_t c = 0; c < j->C; c++)
        j->lq[i * j->C + c] = masked_q(j, i, c) ? -INFINITY : dot(qi, col(j, c), j->dim) * j->inv_tau;
    for (size_t c = 0; c < j->B; c++)
        j->lp[i * j->B + c] = masked_p(j, i, c) ? -INFINITY : dot(pi, j->q + c * j->dim, j->dim) * j->inv_tau;
}

/* CE of row (n entries, target y); turns the row into (softmax − onehot) · scale. */
static double ce_row(double *row, size_t n, size_t y, double scale)
{
    double mx = -INFINITY;
    for (size_t c = 0; c < n; c++) mx = row[c] > mx ? row[c] : mx;
    double s = 0;
    for (size_t c = 0; c < n; c++) s += row[c] == -INFINITY ? 0 : exp(row[c] - mx);
    double lse = mx + log(s), loss = lse - row[y];
    for (size_t c = 0; c < n; c++) {
        double sm = row[c] == -INFINITY ? 0 : exp(row[c] - lse);
        row[c] = (sm - (c == y ? 1.0 : 0.0)) * scale;
    }
    return loss;
}

/* Gradient rows: r < B: dq_r; r < 2B: dp_(r−B); else dn_(r−2B). */
static void grad_task(void *ctx, size_t r, int tid)
{
    (void)tid;
    loss_job *j = ctx;
    size_t B = j->B, C = j->C, dim = j->dim;
    double a[GTR_TR_MAX_DIM]; /* dim <= GTR_TR_MAX_DIM: checked by gtr_tr_loss */
    for (size_t k = 0; k < dim; k++) a[k] = 0;
#define AXPY(w, v)                                                                       \
    do {                                                                                 \
        double w_ = (w);                                                                 \
        const float *v_ = (v);                                                           \
        if (w_ != 0)                                                                     \
            for (size_t k = 0; k < dim; k++) a[k] += w_ * v_[k];                         \
    } while (0)
    float *out;
    if (r < B) { /* query r: its row of logits_q, its column of logits_p */
        for (size_t c = 0; c < C; c++) AXPY(j->lq[r * C + c], col(j, c));
        for (size_t i = 0; i < B; i++) AXPY(j->lp[i * B + r], j->p + i * dim);
        out = j->dq ? j->dq + r * dim : NULL;
    } else if (r < 2 * B) { /* positive i: its column of logits_q, its row of logits_p */
        size_t i = r - B;
        for (size_t k2 = 0; k2 < B; k2++) AXPY(j->lq[k2 * C + i], j->q + k2 * dim);
        for (size_t c = 0; c < B; c++) AXPY(j->lp[i * B + c], j->q + c * dim);
        out = j->dp ? j->dp + i * dim : NULL;
    } else { /* negative: its column of logits_q */
        size_t c = B + (r - 2 * B);
        for (size_t k2 = 0; k2 < B; k2++) AXPY(j->lq[k2 * C + c], j->q + k2 * dim);
        out = j->dn ? j->dn + (r - 2 * B) * dim : NULL;
    }
#undef AXPY
    if (out)
        for (size_t k = 0; k < dim; k++) out[k] = (float)(a[k] * j->inv_tau);
}

gtr_status gtr_tr_loss(gtr_pool *pool, const float *q, const float *p, const float *n, size_t B,
                       size_t nn, size_t dim, double tau, const uint64_t *qkey,
                       const uint64_t *pkey, const uint64_t *nkey, float *dq, float *dp,
                       float *dn, double *logits_q, double *logits_p, gtr_tr_loss_parts *out,
                       gtr_error *err)
{
    if (B == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "loss of an empty batch");
    if (dim == 0 || dim > GTR_TR_MAX_DIM)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "embedding size %zu (at most %d)", dim,
                          GTR_TR_MAX_DIM);
    if (!(tau > 0)) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "temperature %g must be > 0", tau);
    size_t C = B + nn;
    double *lq = gtr_xmalloc(B * C * sizeof *lq, "logits", err);
    double *lp = gtr_xmalloc(B * B * sizeof *lp, "logits", err);
    if (!lq || !lp) {
        free(lq);
        free(lp);
        return GTR_ERR_NOMEM;
    }
    loss_job j = {q, p, n, B, nn, dim, C, 1.0 / tau, qkey, pkey, nkey, lq, lp, dq, dp, dn};
    gtr_pool_for(pool, B, logits_task, &j);
    if (logits_q) memcpy(logits_q, lq, B * C * sizeof *lq);
    if (logits_p) memcpy(logits_p, lp, B * B * sizeof *lp);
    double sq = 0, sp = 0, scale = 0.5 / (double)B;
    for (size_t i = 0; i < B; i++) {
        sq += ce_row(lq + i * C, C, i, scale);
        sp += ce_row(lp + i * B, B, i, scale);
    }
    gtr_tr_loss_parts parts = {0.5 * (sq + sp) / (double)B, sq / (double)B, sp / (double)B};
    if (out) *out = parts;
    gtr_status st = GTR_OK;
    if (!isfinite(parts.loss))
        st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "the loss is not finite (%g)", parts.loss);
    else if (dq || dp || dn)
        gtr_pool_for(pool, 2 * B + nn, grad_task, &j);
    free(lq);
    free(lp);
    return st;
}
