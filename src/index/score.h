/*
 * score.h — the inner-product kernels of the index, one set per ISA (score.c portable,
 * score_avx2.c, score_avx512.c), chosen at run time.
 *
 * Why not gtr_sgemm_nt: exact search promises that a (query, document) score is the same
 * float whatever the CPU, the thread count, the batch or the block a document falls in, so
 * that results are reproducible and a brute-force reference can be compared bit for bit.
 * A GEMM's summation order depends on its tiling. Here the order is part of the definition:
 *
 *   score(q, d), both of dim floats, P = dim rounded up to a multiple of 16, q[k] = d[k] = 0
 *   for dim <= k < P:
 *     acc[l] = +0 for l = 0..15;  for k = 0, 1, ..., P-1:  acc[k % 16] = fma(q[k], d[k], acc[k % 16])
 *     s8[l] = acc[l] + acc[l + 8]  (l < 8);  s4[l] = s8[l] + s8[l + 4]  (l < 4)
 *     s2[l] = s4[l] + s4[l + 2]    (l < 2);  score = s2[0] + s2[1]
 *
 * which is exactly what one AVX-512 register (or two AVX2 registers) of 16 lanes computes,
 * with the usual halving horizontal sum, so the fast kernels lose nothing to the definition.
 *
 * The approximate kernels (compact first pass) may sum in any order: their error is bounded
 * in compact.c, and their results are only used to select candidates for exact re-scoring.
 */
#ifndef GTR_INDEX_SCORE_H
#define GTR_INDEX_SCORE_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

#define GTR_IX_LANES 16

typedef struct gtr_ix_kernels {
    const char *name;
    /* S[i * lds + j] = score(Q + i * qstride, D + j * dim) for i < nq, j < nd. Q rows are
     * zero-padded to qstride (a multiple of 16) and 64-byte aligned; D rows are packed. */
    void (*score)(const float *Q, size_t nq, size_t qstride, const float *D, size_t nd,
                  size_t dim, float *S, size_t lds);
    /* the same scores (bit for bit), blocked for the caches as b says: document rows kept in
     * L1 while tiles of queries pass over them (exact search of many queries) */
    void (*score_blocked)(const gtr_blocking *b, const float *Q, size_t nq, size_t qstride,
                          const float *D, size_t nd, size_t dim, float *S, size_t lds);
    /* S[i * lds + j] ~ Q_i . f16(C_j) */
    void (*approx_f16)(const float *Q, size_t nq, size_t qstride, const uint16_t *C, size_t nd,
                       size_t dim, float *S, size_t lds);
    /* S[i * lds + j] ~ scale_j * (Q_i . C_j), scale_j = caux[3 * j] */
    void (*approx_i8)(const float *Q, size_t nq, size_t qstride, const int8_t *C,
                      const float *caux, size_t nd, size_t dim, float *S, size_t lds);
    /* Many queries at once (exact search of a batch; NULL where the ISA has none): the same
     * scores, bit for bit, transposed, S[j * ldq + i] = score(query i, D + j * dim) for
     * i < nq, j < nd (ldq >= nq rounded up to 16; the columns up to it are written too), from
     * the queries packed once per batch by gtr_ix_pack_queries. Each of score.h's 16 lane
     * sums is one FMA chain, so a lane's chains over a register tile of documents x queries
     * are a small GEMM (documents broadcast from their rows, 16 queries per vector), and the
     * halving sums are additions of whole tiles: no horizontal sums (see score_avx512.c). */
    void (*score_packed)(const gtr_blocking *b, const float *Qp, size_t nq, const float *D,
                         size_t nd, size_t dim, float *S, size_t ldq);
    /* the first i in [i0, n) with !(s[i] < t[i]) (a score that can enter query i's top-k, or
     * a NaN), n when none */
    size_t (*find_ge)(const float *s, const float *t, size_t i0, size_t n);
} gtr_ix_kernels;

/* Query layout of score_packed: blocks of GTR_IX_QBLOCK queries (the last one padded with
 * zeros), each [lane t][step m][query] with the lanes in the order the kernels take them,
 * l = gtr_ix_lane_order(t) (bit-reversed: the halving sums pair each lane with the one taken
 * just before it), so one block is one sequential stream: element (t, m, i) =
 * Q[(block + i) * qs + 16 m + l], zero for 16 m + l >= dim. */
#define GTR_IX_QBLOCK 64
static inline size_t gtr_ix_lane_order(size_t t) /* 0, 8, 4, 12, 2, 10, 6, 14, 1, 9, ... */
{
    return (t & 1) << 3 | (t & 2) << 1 | (t & 4) >> 1 | (t & 8) >> 3;
}
/* fewer queries than this take score_blocked's tiles (a 16-query vector would be mostly
 * padding, and the packing would not pay) */
#define GTR_IX_PACKED_MIN 16
size_t gtr_ix_packed_floats(size_t nq, size_t dim);
void gtr_ix_pack_queries(const float *Q, size_t nq, size_t qstride, size_t dim, float *Qp);

/* ---- per-ISA micro-kernels under the one driver (score.c) ------------------------------ */

/* Element types of the document rows a tile reads. */
enum { GTR_IX_F32, GTR_IX_F16, GTR_IX_I8, GTR_IX_NSRC };
/* Tile shapes: [0] qt × dt queries × documents, [1] qt × 1 (the documents left over),
 * [2] 1 × dt1 (a query left over), [3] 1 × 1. */
enum { GTR_IX_TILES = 4 };

/* S[i * lds + j] = score(Q + i * qs, D + j * dim) for the tile's queries i and documents j,
 * each pair summed in the order score.h defines (approximate sources: the same order on the
 * widened values). */
typedef void (*gtr_ix_tile_fn)(const float *Q, size_t qs, const void *D, size_t dim, float *S,
                               size_t lds);
typedef struct gtr_ix_ukr {
    int qt, dt, dt1;
    gtr_ix_tile_fn tile[GTR_IX_NSRC][GTR_IX_TILES];
} gtr_ix_ukr;

/* Defines an ISA's gtr_ix_ukr `var` from its inline fn(src, QT, DT, Q, qs, D, dim, S, lds):
 * one function per source and shape. */
#define GTR_IX_TILE_FN(name, fn, src, QT, DT)                                                  \
    static void name(const float *Q, size_t qs, const void *D, size_t dim, float *S,           \
                     size_t lds)                                                               \
    {                                                                                          \
        fn(src, QT, DT, Q, qs, D, dim, S, lds);                                                \
    }
#define GTR_IX_TILE_SET(s, fn, src, QT, DT, DT1)                                               \
    GTR_IX_TILE_FN(s##_blk, fn, src, QT, DT)                                                   \
    GTR_IX_TILE_FN(s##_q1, fn, src, QT, 1)                                                     \
    GTR_IX_TILE_FN(s##_d1, fn, src, 1, DT1)                                                    \
    GTR_IX_TILE_FN(s##_11, fn, src, 1, 1)
#define GTR_IX_UKR(var, fn, QT, DT, DT1)                                                       \
    GTR_IX_TILE_SET(var##_f32, fn, GTR_IX_F32, QT, DT, DT1)                                    \
    GTR_IX_TILE_SET(var##_f16, fn, GTR_IX_F16, QT, DT, DT1)                                    \
    GTR_IX_TILE_SET(var##_i8, fn, GTR_IX_I8, QT, DT, DT1)                                      \
    const gtr_ix_ukr var = {                                                                   \
        .qt = QT,                                                                              \
        .dt = DT,                                                                              \
        .dt1 = DT1,                                                                            \
        .tile = {{var##_f32_blk, var##_f32_q1, var##_f32_d1, var##_f32_11},                    \
                 {var##_f16_blk, var##_f16_q1, var##_f16_d1, var##_f16_11},                    \
                 {var##_i8_blk, var##_i8_q1, var##_i8_d1, var##_i8_11}},                       \
    };

extern const gtr_ix_ukr gtr_ix_avx2_ukr;   /* score_avx2.c */
extern const gtr_ix_ukr gtr_ix_avx512_ukr; /* score_avx512.c */
void gtr_ix_avx512_score_packed(const gtr_blocking *b, const float *Qp, size_t nq, const float *D,
                                size_t nd, size_t dim, float *S, size_t ldq);
size_t gtr_ix_avx512_find_ge(const float *s, const float *t, size_t i0, size_t n);

/* The best kernels this CPU offers (GTR_CPU caps the choice, as for the model kernels). */
const gtr_ix_kernels *gtr_ix_kernels_select(void);
const gtr_ix_kernels *gtr_ix_kernels_generic(void);
const gtr_ix_kernels *gtr_ix_kernels_avx2(void);   /* NULL when not compiled in */
const gtr_ix_kernels *gtr_ix_kernels_avx512(void); /* NULL when not compiled in */

/* The definition above, one pair at a time (q and d unpadded). */
float gtr_ix_score_ref(const float *q, const float *d, size_t dim);

/* Row stride used for padded queries. */
static inline size_t gtr_ix_qstride(size_t dim) { return (dim + GTR_IX_LANES - 1) / GTR_IX_LANES * GTR_IX_LANES; }

#endif
