/* score.c — the portable index kernels (the definition in score.h, one pair at a time), the
 * one tiling driver over each ISA's micro-kernels (gtr_ix_ukr), and the run-time choice. */
#include "index/score.h"

#include "core/core.h"

#include <math.h>

float gtr_ix_score_ref(const float *q, const float *d, size_t dim)
{
    float acc[GTR_IX_LANES] = {0};
    size_t k = 0;
    for (; k + GTR_IX_LANES <= dim; k += GTR_IX_LANES)
        for (int l = 0; l < GTR_IX_LANES; l++) acc[l] = fmaf(q[k + l], d[k + l], acc[l]);
    if (k < dim)
        for (int l = 0; l < GTR_IX_LANES; l++) {
            /* padding lanes still take part: fma(0, 0, acc) turns a -0 into +0, as the
             * masked vector loads do */
            float a = k + (size_t)l < dim ? q[k + l] : 0.0f, b = k + (size_t)l < dim ? d[k + l] : 0.0f;
            acc[l] = fmaf(a, b, acc[l]);
        }
    for (int w = GTR_IX_LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] = acc[l] + acc[l + w];
    return acc[0];
}

static void generic_score(const float *Q, size_t nq, size_t qstride, const float *D, size_t nd,
                          size_t dim, float *S, size_t lds)
{
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nd; j++) S[i * lds + j] = gtr_ix_score_ref(Q + i * qstride, D + j * dim, dim);
}

static void generic_approx_f16(const float *Q, size_t nq, size_t qstride, const uint16_t *C,
                               size_t nd, size_t dim, float *S, size_t lds)
{
    for (size_t j = 0; j < nd; j++) {
        const uint16_t *c = C + j * dim;
        for (size_t i = 0; i < nq; i++) {
            const float *q = Q + i * qstride;
            float s = 0;
            for (size_t k = 0; k < dim; k++) s += q[k] * gtr_f16_to_f32(c[k]);
            S[i * lds + j] = s;
        }
    }
}

static void generic_approx_i8(const float *Q, size_t nq, size_t qstride, const int8_t *C,
                              const float *caux, size_t nd, size_t dim, float *S, size_t lds)
{
    for (size_t j = 0; j < nd; j++) {
        const int8_t *c = C + j * dim;
        for (size_t i = 0; i < nq; i++) {
            const float *q = Q + i * qstride;
            float s = 0;
            for (size_t k = 0; k < dim; k++) s += q[k] * (float)c[k];
            S[i * lds + j] = s * caux[3 * j];
        }
    }
}

static const gtr_ix_kernels generic = {"generic", generic_score, generic_approx_f16, generic_approx_i8};

const gtr_ix_kernels *gtr_ix_kernels_generic(void) { return &generic; }

/* Cover the nq × nd block with the ISA's tiles: qt × dt blocks, then qt × 1 for the leftover
 * documents, then each leftover query by 1 × dt1 and 1 × 1. */
static void drive(const gtr_ix_ukr *u, int src, const float *Q, size_t nq, size_t qs, const void *D,
                  size_t nd, size_t dim, float *S, size_t lds)
{
    static const size_t esz[GTR_IX_NSRC] = {4, 2, 1};
    const gtr_ix_tile_fn *t = u->tile[src];
    const size_t qt = (size_t)u->qt, dt = (size_t)u->dt, dt1 = (size_t)u->dt1, row = dim * esz[src];
    const char *Db = D;
    size_t i = 0;
    for (; i + qt <= nq; i += qt) {
        size_t j = 0;
        for (; j + dt <= nd; j += dt) t[0](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
        for (; j < nd; j++) t[1](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
    }
    for (; i < nq; i++) {
        size_t j = 0;
        for (; j + dt1 <= nd; j += dt1) t[2](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
        for (; j < nd; j++) t[3](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
    }
}

/* int8 codes: the scores of the widened codes times each document's scale */
static void drive_i8(const gtr_ix_ukr *u, const float *Q, size_t nq, size_t qs, const int8_t *C,
                     const float *caux, size_t nd, size_t dim, float *S, size_t lds)
{
    drive(u, GTR_IX_I8, Q, nq, qs, C, nd, dim, S, lds);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nd; j++) S[i * lds + j] *= caux[3 * j];
}

/* An ISA's entry in the table: its micro-kernels under the driver. */
#define GTR_IX_ISA(isa)                                                                        \
    static void isa##_score(const float *Q, size_t nq, size_t qs, const float *D, size_t nd,   \
                            size_t dim, float *S, size_t lds)                                  \
    {                                                                                          \
        drive(&gtr_ix_##isa##_ukr, GTR_IX_F32, Q, nq, qs, D, nd, dim, S, lds);                 \
    }                                                                                          \
    static void isa##_f16(const float *Q, size_t nq, size_t qs, const uint16_t *C, size_t nd,  \
                          size_t dim, float *S, size_t lds)                                    \
    {                                                                                          \
        drive(&gtr_ix_##isa##_ukr, GTR_IX_F16, Q, nq, qs, C, nd, dim, S, lds);                 \
    }                                                                                          \
    static void isa##_i8(const float *Q, size_t nq, size_t qs, const int8_t *C,                \
                         const float *caux, size_t nd, size_t dim, float *S, size_t lds)       \
    {                                                                                          \
        drive_i8(&gtr_ix_##isa##_ukr, Q, nq, qs, C, caux, nd, dim, S, lds);                    \
    }                                                                                          \
    static const gtr_ix_kernels isa##_kernels = {#isa, isa##_score, isa##_f16, isa##_i8};      \
    const gtr_ix_kernels *gtr_ix_kernels_##isa(void) { return &isa##_kernels; }

GTR_IX_ISA(avx2)
GTR_IX_ISA(avx512)

const gtr_ix_kernels *gtr_ix_kernels_select(void)
{
    gtr_cpu c = gtr_cpu_detect();
    const gtr_ix_kernels *k;
    if (c.avx512f && c.avx512bw && c.avx512vl && c.f16c && (k = gtr_ix_kernels_avx512())) return k;
    if (c.avx2 && c.fma && c.f16c && (k = gtr_ix_kernels_avx2())) return k;
    return &generic;
}
