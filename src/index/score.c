/* score.c — the portable index kernels (the definition in score.h, one pair at a time) and
 * the run-time choice between them and the AVX2 / AVX-512 versions. */
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

const gtr_ix_kernels *gtr_ix_kernels_select(void)
{
    gtr_cpu c = gtr_cpu_detect();
    const gtr_ix_kernels *k;
    if (c.avx512f && c.avx512bw && c.avx512vl && c.f16c && (k = gtr_ix_kernels_avx512())) return k;
    if (c.avx2 && c.fma && c.f16c && (k = gtr_ix_kernels_avx2())) return k;
    return &generic;
}
