/* generic_linear.c — portable gtr_linear tasks for all three weight types. They read any
 * packed layout (any panel width), need no scratch memory, and define the results the ISA
 * versions are tested against: the same exact products, summed in k order. */
#include "kernels/kernels_internal.h"

#define NR_MAX 64 /* widest panel any table packs */
#define KCHUNK 256 /* activations converted per chunk (stack buffer) */

/* Store one row of a panel with the epilogue of gtr_linear. */
static void store_row(float *y, const float *v, size_t cols, unsigned flags)
{
    for (size_t j = 0; j < cols; j++) {
        float r = (flags & GTR_LINEAR_ACCUM) ? y[j] + v[j] : v[j];
        if ((flags & GTR_LINEAR_RELU) && !(r > 0)) r = r != r ? r : 0;
        y[j] = r;
    }
}

static size_t panel_cols(const gtr_wmat *w, size_t p)
{
    size_t c0 = p * w->nr;
    return GTR_MIN(w->nr, w->n - c0);
}

static void generic_f32(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                        size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)ws;
    const size_t nr = w->nr, kp = w->kp;
    const float *data = w->data;
    float acc[NR_MAX];
    for (size_t i = 0; i < m; i++) {
        const float *a = x + i * ldx;
        for (size_t p = p0; p < p1; p++) {
            const float *b = data + p * kp * nr;
            for (size_t j = 0; j < nr; j++) acc[j] = 0;
            for (size_t k = 0; k < w->k; k++) {
                float av = a[k];
                const float *bk = b + k * nr;
                for (size_t j = 0; j < nr; j++) acc[j] += av * bk[j];
            }
            store_row(y + i * ldy + p * nr, acc, panel_cols(w, p), flags);
        }
    }
}

static void generic_bf16(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                         size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)ws;
    const size_t nr = w->nr, kp = w->kp;
    const uint16_t *data = w->data;
    float acc[NR_MAX], xr[KCHUNK];
    for (size_t i = 0; i < m; i++) {
        const float *a = x + i * ldx;
        for (size_t p = p0; p < p1; p++) {
            const uint16_t *b = data + p * kp * nr;
            for (size_t j = 0; j < nr; j++) acc[j] = 0;
            for (size_t k0 = 0; k0 < w->k; k0 += KCHUNK) {
                size_t kn = GTR_MIN(KCHUNK, w->k - k0);
                for (size_t t = 0; t < kn; t++) xr[t] = gtr_bf16_round_daz(a[k0 + t]);
                for (size_t t = 0; t < kn; t++) {
                    size_t k = k0 + t;
                    const uint16_t *bk = b + (k / 2) * nr * 2 + (k & 1);
                    /* the product of two bf16 values is exact in float32 */
                    for (size_t j = 0; j < nr; j++) acc[j] += xr[t] * gtr_bf16_to_f32(bk[2 * j]);
                }
            }
            store_row(y + i * ldy + p * nr, acc, panel_cols(w, p), flags);
        }
    }
}

static void generic_int8(const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                         size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)ws;
    const size_t nr = w->nr, kp = w->kp;
    const int8_t *data = w->data;
    int32_t acc[NR_MAX];
    int8_t q[KCHUNK];
    float v[NR_MAX];
    for (size_t i = 0; i < m; i++) {
        const float *a = x + i * ldx;
        float amax = 0, sx, inv;
        for (size_t k = 0; k < w->k; k++) {
            float t = fabsf(a[k]);
            if (t > amax) amax = t;
        }
        gtr_q8_scale(amax, &sx, &inv);
        for (size_t p = p0; p < p1; p++) {
            const int8_t *b = data + p * kp * nr;
            for (size_t j = 0; j < nr; j++) acc[j] = 0;
            for (size_t k0 = 0; k0 < w->k; k0 += KCHUNK) {
                size_t kn = GTR_MIN(KCHUNK, w->k - k0);
                for (size_t t = 0; t < kn; t++) q[t] = (int8_t)gtr_q8(a[k0 + t] * inv);
                for (size_t t = 0; t < kn; t++) {
                    size_t k = k0 + t;
                    const int8_t *bk = b + (k / 4) * nr * 4 + (k & 3);
                    for (size_t j = 0; j < nr; j++) acc[j] += (int32_t)q[t] * bk[4 * j];
                }
            }
            const float *sw = w->scales + p * nr;
            for (size_t j = 0; j < nr; j++) v[j] = (float)acc[j] * (sx * sw[j]);
            store_row(y + i * ldy + p * nr, v, panel_cols(w, p), flags);
        }
    }
}

/* As micro-kernels of the one driver: a tile is every row of the task against panel p, and
 * K is one block (kc = 0), so the flags reach the tile unchanged. Each output is computed on
 * its own, so the driver's order (panels outside rows) changes no bits. */
#define GENERIC_TILE(name, fn)                                                                 \
    static void name(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,         \
                     size_t kc, int accum, int relu)                                           \
    {                                                                                          \
        (void)k0, (void)kc;                                                                    \
        unsigned flags = (accum ? GTR_LINEAR_ACCUM : 0u) | (relu ? GTR_LINEAR_RELU : 0u);      \
        const float *x = t->a;                                                                 \
        fn(t->w, x + i0 * t->lda, (size_t)mr, t->lda, t->y + i0 * t->ldy, t->ldy, p, p + 1,    \
           flags, NULL);                                                                       \
    }
GENERIC_TILE(tile_f32, generic_f32)
GENERIC_TILE(tile_bf16, generic_bf16)
GENERIC_TILE(tile_int8, generic_int8)

const gtr_linear_ukr gtr_generic_linear_f32 = {.mr = GTR_LINEAR_MC, .tile = tile_f32};
const gtr_linear_ukr gtr_generic_linear_bf16 = {.mr = GTR_LINEAR_MC, .tile = tile_bf16};
const gtr_linear_ukr gtr_generic_linear_int8 = {.mr = GTR_LINEAR_MC, .tile = tile_int8};
