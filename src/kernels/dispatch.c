/* dispatch.c — kernel tables and run-time selection; packed weights and the threaded linear
 * layer on top of the per-ISA primitives. */
#include "kernels/kernels_internal.h"

#include <stdlib.h>
#include <string.h>

static const gtr_kernels generic = {
    .name = "generic",
    .sgemm_nt = gtr_generic_sgemm_nt,
    .sgemm_nn = gtr_generic_sgemm_nn,
    .sgemm_tn = gtr_generic_sgemm_tn,
    .rmsnorm = gtr_generic_rmsnorm,
    .softmax = gtr_generic_softmax,
    .gelu_mul = gtr_generic_gelu_mul,
    .dot = gtr_generic_dot,
};

const gtr_kernels *gtr_kernels_generic(void) { return &generic; }

const gtr_kernels *gtr_kernels_select(void) { return &generic; }

const char *gtr_kernels_name(const gtr_kernels *k) { return k->name; }

gtr_status gtr_wmat_pack(const gtr_kernels *kern, gtr_wmat *w, const float *W, size_t n, size_t k,
                         gtr_wtype type, gtr_error *err)
{
    (void)kern;
    memset(w, 0, sizeof *w);
    if (type != GTR_W_F32)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "weight type %d not implemented yet", (int)type);
    size_t bytes;
    if (!gtr_mul_ok(n * k, sizeof(float), &bytes))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "weight matrix too large");
    w->data = gtr_malloc_aligned(bytes, err);
    if (!w->data) return GTR_ERR_NOMEM;
    memcpy(w->data, W, bytes);
    w->n = n;
    w->k = k;
    w->type = type;
    w->bytes = bytes;
    return GTR_OK;
}

void gtr_wmat_free(gtr_wmat *w)
{
    if (!w) return;
    gtr_free_aligned(w->data);
    free(w->scales);
    memset(w, 0, sizeof *w);
}

typedef struct {
    const gtr_kernels *kern;
    const gtr_wmat *w;
    const float *x;
    size_t m, ldx, ldy, rows_per_task;
    float *y;
    unsigned flags;
} linear_job;

static void linear_task(void *ctx, size_t t, int tid)
{
    (void)tid;
    linear_job *j = ctx;
    size_t r0 = t * j->rows_per_task, r1 = GTR_MIN(j->m, r0 + j->rows_per_task);
    const float *W = j->w->data;
    j->kern->sgemm_nt(r1 - r0, j->w->n, j->w->k, j->x + r0 * j->ldx, j->ldx, W, j->w->k,
                      (j->flags & GTR_LINEAR_ACCUM) ? 1.0f : 0.0f, j->y + r0 * j->ldy, j->ldy);
    if (j->flags & GTR_LINEAR_RELU)
        for (size_t r = r0; r < r1; r++)
            for (size_t c = 0; c < j->w->n; c++) {
                float *v = j->y + r * j->ldy + c;
                if (*v < 0) *v = 0;
            }
}

void gtr_linear(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                size_t m, size_t ldx, float *y, size_t ldy, unsigned flags)
{
    if (m == 0) return;
    linear_job j = {kern, w, x, m, ldx, ldy, 0, y, flags};
    size_t tasks = (size_t)gtr_pool_size(pool) * 4;
    j.rows_per_task = (m + tasks - 1) / tasks;
    if (j.rows_per_task == 0) j.rows_per_task = 1;
    gtr_pool_for(pool, (m + j.rows_per_task - 1) / j.rows_per_task, linear_task, &j);
}

void gtr_sgemm_nt(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    k->sgemm_nt(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_sgemm_nn(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    k->sgemm_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_sgemm_tn(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    k->sgemm_tn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_rmsnorm(const gtr_kernels *k, const float *x, const float *w, float eps, size_t n, float *y)
{
    k->rmsnorm(x, w, eps, n, y);
}

void gtr_softmax(const gtr_kernels *k, float *x, size_t n) { k->softmax(x, n); }

void gtr_gelu_mul(const gtr_kernels *k, float *x, const float *g, size_t n) { k->gelu_mul(x, g, n); }

float gtr_dot(const gtr_kernels *k, const float *a, const float *b, size_t n) { return k->dot(a, b, n); }
