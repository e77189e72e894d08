/* tgemm.c — the backward products over the thread pool, on the kernels' strided sgemm.
 *
 * Each task computes one fixed output tile in full, so every output element is summed in the
 * same order whatever thread runs it and however many threads there are: results never depend
 * on the thread count. Weight gradients (tn: K = tokens, often thousands) are summed in fixed
 * blocks of KB tokens, C += A_blockᵀ·B_block one block after another, so a tile's inputs
 * (KB rows of A and B) stay in cache while its micro-kernels sweep them. */
#include "train/train_internal.h"

#define NN_MB 96  /* rows of C per nn tile (a multiple of the micro-kernels' 6 and 4) */
#define NN_NB 256 /* columns of C per nn tile */
#define TN_MB 48
#define TN_NB 256
#define TN_KB 256 /* tokens per block of the tn sum */

typedef struct {
    const gtr_kernels *k;
    size_t M, N, K;
    const float *A, *B;
    size_t lda, ldb, ldc;
    float beta;
    float *C;
    size_t mb, nb, tiles_n;
} gemm_job;

static void nn_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    gemm_job *j = ctx;
    size_t i0 = (i / j->tiles_n) * j->mb, j0 = (i % j->tiles_n) * j->nb;
    size_t m = GTR_MIN(j->mb, j->M - i0), n = GTR_MIN(j->nb, j->N - j0);
    gtr_sgemm_nn(j->k, m, n, j->K, j->A + i0 * j->lda, j->lda, j->B + j0, j->ldb, j->beta,
                 j->C + i0 * j->ldc + j0, j->ldc);
}

static void tn_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    gemm_job *j = ctx;
    size_t i0 = (i / j->tiles_n) * j->mb, j0 = (i % j->tiles_n) * j->nb;
    size_t m = GTR_MIN(j->mb, j->M - i0), n = GTR_MIN(j->nb, j->N - j0);
    float *c = j->C + i0 * j->ldc + j0;
    if (j->K == 0) {
        gtr_sgemm_tn(j->k, m, n, 0, j->A, j->lda, j->B, j->ldb, j->beta, c, j->ldc);
        return;
    }
    for (size_t k0 = 0; k0 < j->K; k0 += TN_KB) {
        size_t kb = GTR_MIN((size_t)TN_KB, j->K - k0);
        gtr_sgemm_tn(j->k, m, n, kb, j->A + k0 * j->lda + i0, j->lda, j->B + k0 * j->ldb + j0,
                     j->ldb, k0 == 0 ? j->beta : 1.0f, c, j->ldc);
    }
}

static void run(gtr_task_fn fn, gemm_job *j, gtr_pool *pool)
{
    if (j->M == 0 || j->N == 0) return;
    j->tiles_n = (j->N + j->nb - 1) / j->nb;
    size_t tiles = ((j->M + j->mb - 1) / j->mb) * j->tiles_n;
    gtr_pool_for(pool, tiles, fn, j);
}

void gtr_tr_gemm_nn(const gtr_kernels *k, gtr_pool *pool, size_t M, size_t N, size_t K,
                    const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                    size_t ldc)
{
    gemm_job j = {k, M, N, K, A, B, lda, ldb, ldc, beta, C, NN_MB, NN_NB, 0};
    run(nn_task, &j, pool);
}

void gtr_tr_gemm_tn(const gtr_kernels *k, gtr_pool *pool, size_t M, size_t N, size_t K,
                    const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                    size_t ldc)
{
    gemm_job j = {k, M, N, K, A, B, lda, ldb, ldc, beta, C, TN_MB, TN_NB, 0};
    run(tn_task, &j, pool);
}
