/* gemm.c — the one blocking driver of each matrix product, written once over the per-ISA
 * micro-kernels of kernels_internal.h (gtr_linear_ukr, gtr_sgemm_ukr). An ISA brings tiles
 * and a table entry (dispatch.c); the loop order, the k blocking and the fused epilogue
 * flags are decided here, so every ISA sums in the same block order it always did. */
#include "kernels/kernels_internal.h"

static const size_t kgroup[GTR_W_NTYPES] = {1, 2, 4};

void gtr_linear_drive(const gtr_linear_ukr *u, const gtr_wmat *w, const float *x, size_t m,
                      size_t ldx, float *y, size_t ldy, size_t p0, size_t p1, unsigned flags,
                      void *ws, const float *xn, size_t mn)
{
    gtr_linear_task t = {.w = w, .a = x, .lda = ldx, .y = y, .ldy = ldy,
                         .mc = u->mc ? u->mc : u->mc_max ? u->mc_max : GTR_LINEAR_MC};
    if (u->prep) u->prep(&t, x, m, ldx, ws);
    /* f32 sums over the real k (kp == k); packed types over whole groups of the padding */
    const size_t K = w->type == GTR_W_F32 ? w->k : w->kp / kgroup[w->type];
    /* the k block: the one chosen for this CPU at packing where the kernel blocks k at all
     * (f32: each output stays one FMA chain across blocks, so any block gives the same bits) */
    const size_t KC = !u->kc ? K : w->kc ? w->kc : u->kc;
    const size_t mr = (size_t)u->mr;
    /* xn: the mn rows this thread will probably take next; each tile gets a run of their
     * cache lines (within one row) to prefetch into L2 while it computes, so that their first
     * reads (the int8 quantisation) find them there instead of in memory */
    const size_t lines_row = (w->k * sizeof(float) + 63) / 64;
    const size_t calls = ((K + KC - 1) / KC) * (p1 - p0) * ((m + mr - 1) / mr);
    const size_t pf_per = xn && mn && calls ? (mn * lines_row + calls - 1) / calls : 0;
    size_t pf_r = 0, pf_l = 0, ahead_r = 0;
    for (size_t k0 = 0; k0 < K; k0 += KC) {
        size_t kc = GTR_MIN(KC, K - k0);
        int accum = k0 > 0 || (flags & GTR_LINEAR_ACCUM);
        int relu = (k0 + kc == K) && (flags & GTR_LINEAR_RELU);
        for (size_t p = p0; p < p1; p++) {
            if (u->panel) u->panel(&t, p, k0, kc);
            for (size_t i0 = 0; i0 < m; i0 += mr) {
                t.pfn = 0;
                if (pf_r < mn && pf_per) {
                    t.pf = (const char *)(xn + pf_r * ldx) + 64 * pf_l;
                    t.pfn = GTR_MIN(pf_per, lines_row - pf_l);
                    if ((pf_l += t.pfn) == lines_row) pf_l = 0, pf_r++;
                }
                /* the next tile: the next rows of this panel, else the next panel's first */
                size_t ni = i0 + mr < m ? i0 + mr : 0, np = ni ? p : p + 1;
                t.ynr = np < p1 ? GTR_MIN(mr, m - ni) : 0;
                t.yn = np < p1 ? y + ni * ldy + np * w->nr : NULL;
                t.ync = np < p1 ? GTR_MIN(w->nr, w->n - np * w->nr) : 0;
                u->tile(&t, (int)GTR_MIN(mr, m - i0), i0, p, k0, kc, accum, relu);
                /* a next row whose prefetch completed a row before (its last lines have
                 * arrived): prepared now, from L2 */
                if (u->ahead && ahead_r + 1 < pf_r) u->ahead(&t, xn, ldx, ahead_r++, ws);
            }
        }
    }
    if (u->done) u->done();
}

void gtr_f32_linear_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,
                         size_t kc, int accum, int relu, size_t nr, gtr_f32_packed_fn packed)
{
    const gtr_wmat *w = t->w;
    const float *x = t->a;
    const float *b = (const float *)w->data + (p * w->kp + k0) * nr;
    packed(mr, kc, x + i0 * t->lda + k0, t->lda, b, t->y + i0 * t->ldy + p * nr, t->ldy,
           GTR_MIN(nr, w->n - p * nr), accum ? 1.0f : 0.0f, relu);
}

size_t gtr_bf16w_ws(size_t kp, size_t kc2, size_t nr)
{
    return ((size_t)GTR_LINEAR_MC * kp + 2 * kc2 * nr) * sizeof(float) + 64;
}

void gtr_bf16w_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                    int accum, int relu, gtr_f32_packed_fn packed)
{
    const gtr_wmat *w = t->w;
    const float *x = (const float *)t->a + i0 * t->lda + 2 * k0;
    packed(mr, 2 * kc, x, t->lda, t->b, t->y + i0 * t->ldy + p * w->nr, t->ldy,
           GTR_MIN(w->nr, w->n - p * w->nr), accum ? 1.0f : 0.0f, relu);
}

/* A[i,k] at A[i*ars + k*aks]; B[k,j] at B[k*bks + j]. */
static void sgemm_strided(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                          size_t ars, size_t aks, const float *B, size_t bks, float beta, float *C,
                          size_t ldc)
{
    const size_t mr = (size_t)u->mr, nr = (size_t)u->nr;
    for (size_t j0 = 0; j0 < N; j0 += nr) {
        size_t nc = GTR_MIN(nr, N - j0);
        for (size_t i0 = 0; i0 < M; i0 += mr)
            u->tile((int)GTR_MIN(mr, M - i0), K, A + i0 * ars, ars, aks, B + j0, bks,
                    C + i0 * ldc + j0, ldc, nc, beta);
    }
}

#define KB 512 /* k rows of B copied at a time by sgemm_nn (128 KB at nr 64) */

/* P·V in attention: V's rows are 3 KB apart (d_model floats), so the tiles' reads of a
 * 64-column block touch a page per row and the L1 TLB misses every k step; copied into
 * [KB][nr] they are one contiguous stream (on the Xeon of issue 19: L = 256 204 -> 214
 * GFLOP/s, L = 512 194 -> 202). Each later block continues C's FMA chains (beta = 1).
 * All of k up to 512 rows at once (L <= 512: each output tile summed in one pass, the
 * copied block read from L2): blocks of 128 rows kept in L1 cost a reload and store of
 * every C tile per block, which was slower at L = 512 (issue 19). A function of its own so
 * that only this path has the 128 KB buffer on its stack. */
static __attribute__((noinline)) void sgemm_nn_copied(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K,
                                                      const float *A, size_t lda, const float *B, size_t ldb,
                                                      float beta, float *C, size_t ldc)
{
    _Alignas(64) float bt[KB * 64];
    const size_t mr = (size_t)u->mr, nr = (size_t)u->nr;
    for (size_t j0 = 0; j0 < N; j0 += nr) {
        size_t nc = GTR_MIN(nr, N - j0);
        for (size_t k0 = 0; k0 < K; k0 += KB) {
            size_t kc = GTR_MIN(KB, K - k0);
            u->copy_b(B + k0 * ldb + j0, ldb, kc, nc, bt, nr);
            float bb = k0 == 0 ? beta : 1.0f;
            for (size_t i0 = 0; i0 < M; i0 += mr)
                u->tile((int)GTR_MIN(mr, M - i0), kc, A + i0 * lda + k0, lda, 1, bt, nr,
                        C + i0 * ldc + j0, ldc, nc, bb);
        }
    }
}

void gtr_sgemm_drive_nn(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    /* beta other than 0 and 1 is applied after the sums (the tile's epilogue), so only those
     * two can be continued block after block with the very same bits; K <= 128 (L = 128):
     * no gain measured */
    if (!u->copy_b || K <= 128 || (beta != 0 && beta != 1) || (size_t)u->nr > 64)
        sgemm_strided(u, M, N, K, A, lda, 1, B, ldb, beta, C, ldc);
    else
        sgemm_nn_copied(u, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_sgemm_drive_tn(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    sgemm_strided(u, M, N, K, A, 1, lda, B, ldb, beta, C, ldc);
}

#define KT 128     /* k chunk of the transposed B in sgemm_nt */
#define NR_MAX 64  /* widest sgemm tile of any ISA: the buffer is KT × 64 floats (32 KB) */

/* nt: B is [N, K]; transpose nr-column blocks of it in KT chunks into a [KT][nr] buffer and
 * run the same tile (QKᵀ in attention: K = d_kv = 64, one chunk). */
void gtr_sgemm_drive_nt(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    _Alignas(64) float bt[KT * NR_MAX];
    const size_t mr = (size_t)u->mr, nr = (size_t)u->nr;
    if (K == 0) {
        sgemm_strided(u, M, N, 0, A, lda, 1, B, 0, beta, C, ldc); /* C = beta*C */
        return;
    }
    for (size_t j0 = 0; j0 < N; j0 += nr) {
        size_t nc = GTR_MIN(nr, N - j0);
        for (size_t k0 = 0; k0 < K; k0 += KT) {
            size_t kc = GTR_MIN(KT, K - k0);
            /* vector transposes: scalar copies cost QKᵀ at L = 128..256 a tenth of its time */
            (u->transpose ? u->transpose : gtr_generic_transpose)(B + j0 * ldb + k0, ldb, nc, kc, bt, nr);
            float bb = k0 == 0 ? beta : 1.0f;
            for (size_t i0 = 0; i0 < M; i0 += mr)
                u->tile((int)GTR_MIN(mr, M - i0), kc, A + i0 * lda + k0, lda, 1, bt, nr,
                        C + i0 * ldc + j0, ldc, nc, bb);
        }
    }
}
