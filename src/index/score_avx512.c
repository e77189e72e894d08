/* score_avx512.c — index kernels for AVX-512: one 16-lane register per (query, document)
 * pair, so the fixed summation order of score.h is simply a register's FMA chain followed by
 * the halving horizontal sum. Register tiles of up to 4 queries x 4 documents (or 1 x 8 for a
 * lone query) reuse each load several times. */
#include "index/score.h"

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum { SRC_F32 = GTR_IX_F32, SRC_F16 = GTR_IX_F16, SRC_I8 = GTR_IX_I8 };

/* lanes l and l+8, then l and l+4, l and l+2, l and l+1: the order score.h defines */
static ALWAYS_INLINE float hsum16(__m512 v)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    __m128 d = _mm_add_ss(c, _mm_movehdup_ps(c));
    return _mm_cvtss_f32(d);
}

static ALWAYS_INLINE __m512 load_src(int src, const void *base, size_t off, __mmask16 m, int masked)
{
    if (src == SRC_F32) {
        const float *p = (const float *)base + off;
        return masked ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
    }
    if (src == SRC_F16) {
        const uint16_t *p = (const uint16_t *)base + off;
        __m256i h = masked ? _mm256_maskz_loadu_epi16(m, p) : _mm256_loadu_si256((const __m256i *)p);
        return _mm512_cvtph_ps(h);
    }
    const int8_t *p = (const int8_t *)base + off;
    __m128i b = masked ? _mm_maskz_loadu_epi8(m, p) : _mm_loadu_si128((const __m128i *)p);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}

/* The sixteen sums of a 4 × 4 tile at once: acc[i][j] reduced in score.h's order (lanes l and
 * l+8, l+4, l+2, l+1), by shuffles that pair halves of two registers so one add serves two
 * pairs (15 adds and 30 shuffles for 16 pairs instead of 64 + 64 one pair at a time). Float
 * addition commutes, so a + b in either register position is the same number. The result
 * has query i's four scores in 128-bit lane i. */
static ALWAYS_INLINE __m512 sum_halves(__m512 a, __m512 b) /* l + (l+8) of a, then of b */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
static ALWAYS_INLINE __m512 sum_quarters(__m512 p, __m512 r) /* 8-lane groups: l + (l+4) */
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(p, r, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(p, r, _MM_SHUFFLE(3, 1, 3, 1)));
}
static ALWAYS_INLINE __m512 sum_pairs2(__m512 t, __m512 u) /* 4-lane groups: l + (l+2) */
{
    return _mm512_add_ps(_mm512_shuffle_ps(t, u, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t, u, _MM_SHUFFLE(3, 2, 3, 2)));
}
static ALWAYS_INLINE __m512 sum_pairs1(__m512 v, __m512 w) /* 2-lane groups: l + (l+1) */
{
    return _mm512_add_ps(_mm512_shuffle_ps(v, w, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(v, w, _MM_SHUFFLE(3, 1, 3, 1)));
}
static ALWAYS_INLINE void store_4x4(__m512 acc[4][8], float *S, size_t lds)
{
    __m512 t[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) /* lane i of t[j]: the 4-lane partial sums of (i, j) */
        t[j] = sum_quarters(sum_halves(acc[0][j], acc[1][j]), sum_halves(acc[2][j], acc[3][j]));
    __m512 f = sum_pairs1(sum_pairs2(t[0], t[1]), sum_pairs2(t[2], t[3]));
    _mm_storeu_ps(S, _mm512_castps512_ps128(f));
    _mm_storeu_ps(S + lds, _mm512_extractf32x4_ps(f, 1));
    _mm_storeu_ps(S + 2 * lds, _mm512_extractf32x4_ps(f, 2));
    _mm_storeu_ps(S + 3 * lds, _mm512_extractf32x4_ps(f, 3));
}

/* QT queries x DT documents. D rows are dim elements apart. */
static ALWAYS_INLINE void tile(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                               size_t dim, float *S, size_t lds, size_t dim16, __mmask16 tail)
{
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < dim16; k += 16) {
        __m512 d[8];
        /* a lone query's 1 x 8 float32 tile (Intel; AMD takes one row at a time, cache.c)
         * streams from memory: the next tile's rows go to L2 the same distance ahead, 20.6
         * instead of 19.7 GB/s on the Xeon of issue 19. The address may lie past the last
         * row: it is formed as an integer, and a prefetch never faults. */
        if (QT == 1 && DT == 8 && src == SRC_F32)
#pragma GCC unroll 8
            for (int j = 0; j < DT; j++)
                _mm_prefetch((const char *)((uintptr_t)D + ((size_t)(DT + j) * dim + k) * sizeof(float)), _MM_HINT_T1);
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) d[j] = load_src(src, D, (size_t)j * dim + k, 0, 0);
#pragma GCC unroll 4
        for (int i = 0; i < QT; i++) {
            __m512 q = _mm512_load_ps(Q + (size_t)i * qs + k);
#pragma GCC unroll 8
            for (int j = 0; j < DT; j++) acc[i][j] = _mm512_fmadd_ps(q, d[j], acc[i][j]);
        }
    }
    if (tail) {
        __m512 d[8];
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) d[j] = load_src(src, D, (size_t)j * dim + dim16, tail, 1);
#pragma GCC unroll 4
        for (int i = 0; i < QT; i++) {
            /* query rows are zero-padded: the padding lanes compute fma(0, 0, acc) */
            __m512 q = _mm512_load_ps(Q + (size_t)i * qs + dim16);
#pragma GCC unroll 8
            for (int j = 0; j < DT; j++) acc[i][j] = _mm512_fmadd_ps(q, d[j], acc[i][j]);
        }
    }
    if (QT == 4 && DT == 4) {
        store_4x4(acc, S, lds);
        return;
    }
#pragma GCC unroll 4
    for (int i = 0; i < QT; i++)
#pragma GCC unroll 8
        for (int j = 0; j < DT; j++) S[(size_t)i * lds + j] = hsum16(acc[i][j]);
}

/* The tiles as the driver (score.c) calls them: 4 × 4 blocks, a lone query 1 × 8. */
static ALWAYS_INLINE void tile_at(int src, int QT, int DT, const float *Q, size_t qs, const void *D,
                                  size_t dim, float *S, size_t lds)
{
    tile(src, QT, DT, Q, qs, D, dim, S, lds, dim & ~(size_t)15, (__mmask16)((1u << (dim & 15)) - 1u));
}

GTR_IX_UKR(gtr_ix_avx512_ukr, tile_at, 4, 4, 8)

/* ---- many queries: one GEMM per lane (score_packed, score.h) --------------------------------
 *
 * score.h's acc[l] is the FMA chain over k = l, l + 16, l + 32, ... So for a lane l, the chains
 * of DT documents x 16 V queries are a GEMM of depth P / 16: per step m one document value
 * D[j][16 m + l] broadcast and V vectors of 16 queries' Q[i][16 m + l] (packed, lane-major),
 * DT x V accumulators as in the linear kernels. The lanes are taken in bit-reversed order
 * (0, 8, 4, 12, 2, 10, ...), so the halving sums of score.h (acc[l] + acc[l + 8], then
 * + 4, + 2, + 1) become additions of whole tiles as soon as both halves exist: a stack of at
 * most four tiles, like a binary counter. Float addition commutes, so stack + tile is the
 * same number as the definition's left + right. No horizontal sum is left, and 16 query
 * scores come out in one vector (S transposed, a document's scores in a row). */
enum { LT_DT = 6, LT_V = GTR_IX_QBLOCK / 16 };

/* Prefetch of the next tile's rows as the Intel variant does it (spread): a line into L2 every
 * `every` steps of the tile's lane passes, from p to end (the rows are contiguous). */
typedef struct {
    const char *p, *end;
    unsigned every;
} lane_pf;

/* one step m of a lane: V vectors of 16 queries, DT documents' values broadcast */
static ALWAYS_INLINE void lane_step(int DT, int V, const float *q, const float *d, size_t dim,
                                    __m512 acc[LT_DT][LT_V])
{
    __m512 b[LT_V];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) b[v] = _mm512_load_ps(q + 16 * v);
#pragma GCC unroll 6
    for (int j = 0; j < DT; j++) {
        __m512 a = _mm512_set1_ps(d[(size_t)j * dim]);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[j][v] = _mm512_fmadd_ps(a, b[v], acc[j][v]);
    }
}

static ALWAYS_INLINE void lane_tile(int DT, int V, int SPREAD, const float *Qp, size_t M, const float *D,
                                    size_t dim, float *S, size_t ldq, const float *pf, size_t npf,
                                    lane_pf *spf)
{
    __m512 stack[4][LT_DT][LT_V];
    for (unsigned t = 0; t < 16; t++) {
        const size_t l = gtr_ix_lane_order(t);
        const float *q = Qp + t * M * GTR_IX_QBLOCK, *d = D + l;
        /* steps whose k = 16 m + l is inside the row; the rest (only m = M - 1 can be one)
         * are score.h's padding, fma(0, 0, acc) */
        const size_t mv = dim > l ? (dim - l + 15) / 16 : 0;
        __m512 acc[LT_DT][LT_V];
#pragma GCC unroll 6
        for (int j = 0; j < DT; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) acc[j][v] = _mm512_setzero_ps();
        size_t m = 0;
        if (SPREAD) { /* Intel: see gtr_ix_avx512_score_packed; 4 steps per loop iteration */
            const char *p = spf->p;
            if (p < spf->end) {
                unsigned wait = 0;
#pragma GCC unroll 4
                for (; m < mv; m++, q += GTR_IX_QBLOCK, d += 16) {
                    if (!wait && p < spf->end) {
                        _mm_prefetch(p, _MM_HINT_T1);
                        p += 64;
                        wait = spf->every;
                    }
                    wait--;
                    lane_step(DT, V, q, d, dim, acc);
                }
                spf->p = p;
            }
#pragma GCC unroll 4
            for (; m < mv; m++, q += GTR_IX_QBLOCK, d += 16) lane_step(DT, V, q, d, dim, acc);
        } else {
            if (t < npf) /* the next tile's row t on its way to L1, a line per step */
                for (const char *p = (const char *)(pf + t * dim), *e = (const char *)(pf + (t + 1) * dim); m < mv;
                     m++, q += GTR_IX_QBLOCK, d += 16, p += 64) {
                    if (p < e) _mm_prefetch(p, _MM_HINT_T0);
                    lane_step(DT, V, q, d, dim, acc);
                }
            for (; m < mv; m++, q += GTR_IX_QBLOCK, d += 16) {
                lane_step(DT, V, q, d, dim, acc);
            }
        }
        for (; m < M; m++) {
            const __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 6
            for (int j = 0; j < DT; j++)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[j][v] = _mm512_fmadd_ps(z, z, acc[j][v]);
        }
        unsigned lvl = 0;
        for (unsigned c = t; c & 1; c >>= 1, lvl++)
#pragma GCC unroll 6
            for (int j = 0; j < DT; j++)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) acc[j][v] = _mm512_add_ps(stack[lvl][j][v], acc[j][v]);
        if (t == 15) {
#pragma GCC unroll 6
            for (int j = 0; j < DT; j++)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) _mm512_storeu_ps(S + (size_t)j * ldq + 16 * v, acc[j][v]);
        } else {
#pragma GCC unroll 6
            for (int j = 0; j < DT; j++)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) stack[lvl][j][v] = acc[j][v];
        }
    }
}

#define LT_CASE(DT, V)                                                                         \
    case (DT) * 8 + (V): lane_tile(DT, V, 0, Qp, M, D, dim, S, ldq, pf, npf, NULL); break;
#define LT_CASES(DT) LT_CASE(DT, 1) LT_CASE(DT, 2) LT_CASE(DT, 3) LT_CASE(DT, 4)

static void lane_tile_any(int DT, int V, const float *Qp, size_t M, const float *D, size_t dim,
                          float *S, size_t ldq, const float *pf, size_t npf)
{
    switch (DT * 8 + V) {
        LT_CASES(1) LT_CASES(2) LT_CASES(3) LT_CASES(4) LT_CASES(5) LT_CASES(6)
    default: break;
    }
}

/* The Intel variant, one function per shape: each gets its own register allocation (in one
 * function with every shape, GCC spilled the step loop's row offsets to the stack) */
typedef void (*lane_spread_fn)(const float *Qp, size_t M, const float *D, size_t dim, float *S, size_t ldq,
                               lane_pf *spf);
#define LS_FN(DT, V)                                                                           \
    static __attribute__((noinline)) void lane_spread_##DT##_##V(const float *Qp, size_t M, const float *D, \
                                                                 size_t dim, float *S, size_t ldq,       \
                                                                 lane_pf *spf)                           \
    {                                                                                          \
        lane_tile(DT, V, 1, Qp, M, D, dim, S, ldq, NULL, 0, spf);                              \
    }
#define LS_FNS(DT) LS_FN(DT, 1) LS_FN(DT, 2) LS_FN(DT, 3) LS_FN(DT, 4)
LS_FNS(1) LS_FNS(2) LS_FNS(3) LS_FNS(4) LS_FNS(5) LS_FNS(6)
#define LS_ROW(DT) {lane_spread_##DT##_1, lane_spread_##DT##_2, lane_spread_##DT##_3, lane_spread_##DT##_4}
static const lane_spread_fn lane_spread[LT_DT][LT_V] = {LS_ROW(1), LS_ROW(2), LS_ROW(3),
                                                       LS_ROW(4), LS_ROW(5), LS_ROW(6)};

void gtr_ix_avx512_score_packed(const gtr_blocking *b, const float *Qp, size_t nq, const float *D,
                                size_t nd, size_t dim, float *S, size_t ldq)
{
    const size_t M = gtr_ix_qstride(dim) / 16, QB = GTR_IX_QBLOCK, nblk = (nq + QB - 1) / QB;
    /* passes of query blocks whose packed rows stay in L2 while the documents go by */
    const size_t pass = GTR_MAX((size_t)1, b->search_queries / QB);
    /* The next tile's rows are fetched while this one's lane passes run (then every query block
     * of the pass reads them from L1 / L2). As tuned on AMD Zen 4: a line per step into L1
     * during the first block's first passes (row t in pass t). Intel Xeon (search_pf_spread):
     * that burst of 6 rows in 6 passes left those passes waiting on memory (1.8x the cost of
     * the others, perf record), so there the lines go into L2 spread over the tile's passes
     * (16 per query block), at most one every third step; and the step loop, whose adds and
     * branch share ports 0 and 5 with the FMAs there, runs 4 steps per iteration. */
    const int spread = b->search_pf_spread;
    const size_t lines = GTR_MAX((size_t)1, LT_DT * dim * sizeof(float) / 64);
    const unsigned every = (unsigned)GTR_MAX((size_t)1, GTR_MIN((size_t)3, 16 * GTR_MIN(pass, nblk) * M / lines));
    for (size_t b0 = 0; b0 < nblk; b0 += pass) {
        const size_t b1 = GTR_MIN(nblk, b0 + pass);
        for (size_t j = 0; j < nd; j += LT_DT) {
            const int DT = (int)GTR_MIN((size_t)LT_DT, nd - j);
            const size_t n0 = GTR_MIN(nd, j + LT_DT), n1 = GTR_MIN(nd, n0 + LT_DT);
            lane_pf spf = {(const char *)(D + n0 * dim), (const char *)(D + n1 * dim), every};
            for (size_t bk = b0; bk < b1; bk++) {
                const size_t left = nq - bk * QB;
                const int V = left >= QB ? LT_V : (int)((left + 15) / 16);
                if (spread) {
                    lane_spread[DT - 1][V - 1](Qp + bk * QB * M * 16, M, D + j * dim, dim, S + j * ldq + bk * QB,
                                               ldq, &spf);
                    continue;
                }
                /* while the first block passes, the next tile's rows are fetched */
                const size_t npf = bk == b0 && j + LT_DT < nd ? GTR_MIN((size_t)LT_DT, nd - j - LT_DT) : 0;
                lane_tile_any(DT, V, Qp + bk * QB * M * 16, M, D + j * dim, dim, S + j * ldq + bk * QB, ldq,
                              D + (j + LT_DT) * dim, npf);
            }
        }
    }
}

size_t gtr_ix_avx512_find_ge(const float *s, const float *t, size_t i, size_t n)
{
    for (; i + 16 <= n; i += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + i), _mm512_loadu_ps(t + i), _CMP_NLT_UQ);
        if (m) return i + (size_t)__builtin_ctz(m);
    }
    if (i < n) {
        __mmask16 r = (__mmask16)((1u << (n - i)) - 1u);
        __mmask16 m = _mm512_mask_cmp_ps_mask(r, _mm512_maskz_loadu_ps(r, s + i), _mm512_maskz_loadu_ps(r, t + i),
                                              _CMP_NLT_UQ);
        if (m) return i + (size_t)__builtin_ctz(m);
    }
    return n;
}
