/* ops.c — row-wise forward/backward pieces of the encoder: T5's RMS norm (no mean, no bias),
 * the gated GELU of T5 v1.1 and ReLU. Forward values come from the inference kernels, so a
 * trained model embeds exactly as gtr_model does; backward is plain C over fixed row chunks
 * (GTR_TR_ROWS), with reductions over rows done per chunk and summed in chunk order. */
#include "train/train_internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    const gtr_kernels *k;
    const float *x, *w, *rinv_in, *dy, *a;
    float *y, *rinv, *dx, *part, *g, *da;
    float eps;
    size_t T, d;
} rows_job;

static size_t chunks(size_t T) { return (T + GTR_TR_ROWS - 1) / GTR_TR_ROWS; }

static void rms_fwd_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    rows_job *j = ctx;
    size_t d = j->d;
    for (size_t t = c * GTR_TR_ROWS; t < GTR_MIN(j->T, (c + 1) * GTR_TR_ROWS); t++) {
        const float *x = j->x + t * d;
        gtr_rmsnorm(j->k, x, j->w, j->eps, d, j->y + t * d);
        if (j->rinv) {
            double ss = 0;
            for (size_t i = 0; i < d; i++) ss += (double)x[i] * x[i];
            j->rinv[t] = (float)(1.0 / sqrt(ss / (double)d + (double)j->eps));
        }
    }
}

void gtr_tr_rmsnorm_fwd(const gtr_kernels *k, gtr_pool *pool, const float *x, const float *w,
                        float eps, size_t T, size_t d, float *y, float *rinv)
{
    rows_job j = {.k = k, .x = x, .w = w, .y = y, .rinv = rinv, .eps = eps, .T = T, .d = d};
    gtr_pool_for(pool, chunks(T), rms_fwd_task, &j);
}

/* y = w ⊙ x·r with r = (mean(x²) + eps)^-1/2, x̂ = x·r:
 *   ∂L/∂x = r · (dy⊙w − x̂ · mean(dy⊙w⊙x̂)),   ∂L/∂w = Σ_t dy ⊙ x̂ */
static void rms_bwd_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    rows_job *j = ctx;
    size_t d = j->d;
    float *part = j->part + c * d;
    memset(part, 0, d * sizeof *part);
    for (size_t t = c * GTR_TR_ROWS; t < GTR_MIN(j->T, (c + 1) * GTR_TR_ROWS); t++) {
        const float *x = j->x + t * d, *dy = j->dy + t * d;
        float r = j->rinv_in[t], *dx = j->dx + t * d;
        double s = 0;
        for (size_t i = 0; i < d; i++) {
            float xh = x[i] * r;
            s += (double)(dy[i] * j->w[i]) * xh;
            part[i] += dy[i] * xh;
        }
        float mean = (float)(s / (double)d);
        for (size_t i = 0; i < d; i++) dx[i] += r * (dy[i] * j->w[i] - x[i] * r * mean);
    }
}

void gtr_tr_rmsnorm_bwd(gtr_pool *pool, const float *x, const float *w, const float *rinv,
                        const float *dy, size_t T, size_t d, float *dx, float *dw, float *part)
{
    rows_job j = {.x = x, .w = w, .rinv_in = rinv, .dy = dy, .dx = dx, .part = part, .T = T, .d = d};
    size_t n = chunks(T);
    gtr_pool_for(pool, n, rms_bwd_task, &j);
    for (size_t i = 0; i < d; i++) {
        double s = 0;
        for (size_t c = 0; c < n; c++) s += part[c * d + i];
        dw[i] += (float)s;
    }
}

static void gelu_fwd_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    rows_job *j = ctx;
    size_t ff = j->d;
    for (size_t t = c * GTR_TR_ROWS; t < GTR_MIN(j->T, (c + 1) * GTR_TR_ROWS); t++) {
        const float *a = j->a + t * 2 * ff;
        float *g = j->g + t * ff;
        memcpy(g, a, ff * sizeof *g);
        gtr_gelu_mul(j->k, g, a + ff, ff); /* gelu(a0) * a1, as inference computes it */
    }
}

void gtr_tr_gelu_fwd(const gtr_kernels *k, gtr_pool *pool, const float *a, size_t T, size_t dff,
                     float *g)
{
    rows_job j = {.k = k, .a = a, .g = g, .T = T, .d = dff};
    gtr_pool_for(pool, chunks(T), gelu_fwd_task, &j);
}

/* gelu(x) = x·s with s = 1 / (1 + exp(-2u)), u = √(2/π)·(x + 0.044715x³) (= ½x(1 + tanh u));
 * gelu'(x) = s + 2x·s(1 − s)·u'(x), u' = √(2/π)·(1 + 3·0.044715x²). No cancellation where
 * tanh u is near −1. */
static void gelu_bwd_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    rows_job *j = ctx;
    size_t ff = j->d;
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    for (size_t t = c * GTR_TR_ROWS; t < GTR_MIN(j->T, (c + 1) * GTR_TR_ROWS); t++) {
        const float *a0 = j->a + t * 2 * ff, *a1 = a0 + ff, *dg = j->dy + t * ff;
        float *d0 = j->da + t * 2 * ff, *d1 = d0 + ff;
        for (size_t i = 0; i < ff; i++) {
            float x = a0[i];
            float u = k0 * (x + k1 * x * x * x);
            float s = 1.0f / (1.0f + expf(-2.0f * u));
            float gelu = x * s;
            float dgelu = s + 2.0f * x * s * (1.0f - s) * k0 * (1.0f + 3.0f * k1 * x * x);
            d0[i] = dg[i] * a1[i] * dgelu;
            d1[i] = dg[i] * gelu;
        }
    }
}

void gtr_tr_gelu_bwd(gtr_pool *pool, const float *a, const float *dg, size_t T, size_t dff,
                     float *da)
{
    rows_job j = {.a = a, .dy = dg, .da = da, .T = T, .d = dff};
    gtr_pool_for(pool, chunks(T), gelu_bwd_task, &j);
}

static void relu_bwd_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    rows_job *j = ctx;
    size_t n = j->d;
    for (size_t t = c * GTR_TR_ROWS; t < GTR_MIN(j->T, (c + 1) * GTR_TR_ROWS); t++) {
        const float *h = j->a + t * n;
        float *dh = j->da + t * n;
        for (size_t i = 0; i < n; i++) { /* bit mask, no branch: h > 0 is a coin toss */
            uint32_t b;
            memcpy(&b, &dh[i], 4);
            b &= 0u - (uint32_t)(h[i] > 0);
            memcpy(&dh[i], &b, 4);
        }
    }
}

void gtr_tr_relu_bwd(gtr_pool *pool, const float *h, float *dh, size_t T, size_t n)
{
    rows_job j = {.a = h, .da = dh, .T = T, .d = n};
    gtr_pool_for(pool, chunks(T), relu_bwd_task, &j);
}
