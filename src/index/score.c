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

static void generic_score_blocked(const gtr_blocking *b, const float *Q, size_t nq, size_t qstride,
                                  const float *D, size_t nd, size_t dim, float *S, size_t lds)
{
    (void)b;
    generic_score(Q, nq, qstride, D, nd, dim, S, lds);
}

static size_t generic_find_ge(const float *s, const float *t, size_t i, size_t n)
{
    while (i < n && s[i] < t[i]) i++;
    return i;
}

static const gtr_ix_kernels generic = {"generic",         generic_score,     generic_score_blocked,
                                       generic_approx_f16, generic_approx_i8, NULL,
                                       generic_find_ge};

size_t gtr_ix_packed_floats(size_t nq, size_t dim)
{
    return (nq + GTR_IX_QBLOCK - 1) / GTR_IX_QBLOCK * GTR_IX_QBLOCK * gtr_ix_qstride(dim);
}

void gtr_ix_pack_queries(const float *Q, size_t nq, size_t qs, size_t dim, float *Qp)
{
    const size_t M = gtr_ix_qstride(dim) / GTR_IX_LANES, B = GTR_IX_QBLOCK;
    for (size_t b0 = 0; b0 < nq; b0 += B)
        for (size_t t = 0; t < GTR_IX_LANES; t++) {
            const size_t l = gtr_ix_lane_order(t);
            for (size_t m = 0; m < M; m++, Qp += B)
                for (size_t i = 0; i < B; i++)
                    Qp[i] = b0 + i < nq && m * GTR_IX_LANES + l < dim ? Q[(b0 + i) * qs + m * GTR_IX_LANES + l] : 0.0f;
        }
}

const gtr_ix_kernels *gtr_ix_kernels_generic(void) { return &generic; }

/* One query row i against documents [j, j1): 1 × dt1 tiles, then 1 × 1; lone == 1: 1 × 1
 * throughout, one row after the other (a single sequential stream, see cache.c). */
static void drive_row(const gtr_ix_tile_fn *t, size_t dt1, size_t lone, const float *q, const char *Db,
                      size_t row, size_t j, size_t j1, size_t dim, float *s)
{
    if (lone != 1)
        for (; j + dt1 <= j1; j += dt1) t[2](q, 0, Db + j * row, dim, s + j, 0);
    for (; j < j1; j++) t[3](q, 0, Db + j * row, dim, s + j, 0);
}

/* Cover the nq × nd block with the ISA's tiles: qt × dt blocks, then qt × 1 for the leftover
 * documents, then each leftover query by 1 × dt1 and 1 × 1. Blocked (group > 0): the
 * documents are taken in groups of `group` rows, which stay in L1 while every qt-query tile
 * of a pass of `qblock` queries (rows in L2) goes over them; unblocked, each query tile goes
 * over all nd documents. Leftover queries take `lone` documents per tile (drive_row). Every
 * pair is one tile call summing in score.h's order, so the blocking changes only the memory
 * traffic, never a score. */
static void drive(const gtr_ix_ukr *u, int src, const float *Q, size_t nq, size_t qs, const void *D,
                  size_t nd, size_t dim, float *S, size_t lds, size_t group, size_t qblock, size_t lone)
{
    static const size_t esz[GTR_IX_NSRC] = {4, 2, 1};
    const gtr_ix_tile_fn *t = u->tile[src];
    const size_t qt = (size_t)u->qt, dt = (size_t)u->dt, dt1 = (size_t)u->dt1, row = dim * esz[src];
    const char *Db = D;
    const size_t nfull = nq / qt * qt; /* queries in whole tiles */
    if (!group) group = nd ? nd : 1;
    if (!qblock) qblock = nfull ? nfull : 1;
    qblock = GTR_MAX(qt, qblock / qt * qt);
    for (size_t b0 = 0; b0 < nfull; b0 += qblock) {
        size_t b1 = GTR_MIN(nfull, b0 + qblock);
        for (size_t g0 = 0; g0 < nd; g0 += group) {
            size_t g1 = GTR_MIN(nd, g0 + group);
            for (size_t i = b0; i < b1; i += qt) {
                size_t j = g0;
                for (; j + dt <= g1; j += dt) t[0](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
                for (; j < g1; j++) t[1](Q + i * qs, qs, Db + j * row, dim, S + i * lds + j, lds);
            }
        }
    }
    for (size_t i = nfull; i < nq; i++) drive_row(t, dt1, lone, Q + i * qs, Db, row, 0, nd, dim, S + i * lds);
}

/* int8 codes: the scores of the widened codes times each document's scale */
static void drive_i8(const gtr_ix_ukr *u, const float *Q, size_t nq, size_t qs, const int8_t *C,
                     const float *caux, size_t nd, size_t dim, float *S, size_t lds)
{
    drive(u, GTR_IX_I8, Q, nq, qs, C, nd, dim, S, lds, 0, 0, 0);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nd; j++) S[i * lds + j] *= caux[3 * j];
}

/* An ISA's entry in the table: its micro-kernels under the driver. */
#define GTR_IX_ISA(isa, packed, find_ge)                                                       \
    static void isa##_score(const float *Q, size_t nq, size_t qs, const float *D, size_t nd,   \
                            size_t dim, float *S, size_t lds)                                  \
    {                                                                                          \
        drive(&gtr_ix_##isa##_ukr, GTR_IX_F32, Q, nq, qs, D, nd, dim, S, lds, 0, 0, 0);        \
    }                                                                                          \
    static void isa##_score_blocked(const gtr_blocking *b, const float *Q, size_t nq, size_t qs, \
                                    const float *D, size_t nd, size_t dim, float *S, size_t lds) \
    {                                                                                          \
        drive(&gtr_ix_##isa##_ukr, GTR_IX_F32, Q, nq, qs, D, nd, dim, S, lds, b->search_group, \
              b->search_queries, b->search_lone);                                              \
    }                                                                                          \
    static void isa##_f16(const float *Q, size_t nq, size_t qs, const uint16_t *C, size_t nd,  \
                          size_t dim, float *S, size_t lds)                                    \
    {                                                                                          \
        drive(&gtr_ix_##isa##_ukr, GTR_IX_F16, Q, nq, qs, C, nd, dim, S, lds, 0, 0, 0);        \
    }                                                                                          \
    static void isa##_i8(const float *Q, size_t nq, size_t qs, const int8_t *C,                \
                         const float *caux, size_t nd, size_t dim, float *S, size_t lds)       \
    {                                                                                          \
        drive_i8(&gtr_ix_##isa##_ukr, Q, nq, qs, C, caux, nd, dim, S, lds);                    \
    }                                                                                          \
    static const gtr_ix_kernels isa##_kernels = {#isa, isa##_score, isa##_score_blocked,       \
                                                 isa##_f16, isa##_i8, packed, find_ge};        \
    const gtr_ix_kernels *gtr_ix_kernels_##isa(void) { return &isa##_kernels; }

GTR_IX_ISA(avx2, NULL, generic_find_ge)
GTR_IX_ISA(avx512, gtr_ix_avx512_score_packed, gtr_ix_avx512_find_ge)

const gtr_ix_kernels *gtr_ix_kernels_select(void)
{
    gtr_cpu c = gtr_cpu_detect();
    const gtr_ix_kernels *k;
    if (c.avx512f && c.avx512bw && c.avx512vl && c.f16c && (k = gtr_ix_kernels_avx512())) return k;
    if (c.avx2 && c.fma && c.f16c && (k = gtr_ix_kernels_avx2())) return k;
    return &generic;
}
