/* kernels_internal.h — the dispatch table behind kernels.h (one instance per ISA), and the
 * scalar definitions of bf16 rounding and int8 quantisation that every ISA reproduces. */
#ifndef GTR_KERNELS_INTERNAL_H
#define GTR_KERNELS_INTERNAL_H

#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* A softmax row whose maximum is -infinity: every entry masked gives zeros rather than 0/0;
 * but a NaN among them (max ignores NaN lanes) must stay NaN, so that overflowed activations
 * end in a non-finite vector, which is refused, instead of a plausible-looking one. */
static inline void gtr_softmax_masked_row(float *x, size_t n)
{
    float fill = 0;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) fill = NAN;
    for (size_t i = 0; i < n; i++) x[i] = fill;
}

/* gtr_linear hands each task at most this many rows (a multiple of every micro-kernel's row
 * count: 6 and 4); the per-thread scratch holds that many converted rows. */
#define GTR_LINEAR_MC 96
/* the most rows a task may have (gtr_wmat.mc, for kernels with mc_max; a multiple of 96) */
#define GTR_LINEAR_MC_MAX 384

/* A micro-kernel of up to 6 rows called with the row count as a constant: M(R, ARG) for R = mr
 * (1 for anything below 2). */
#define GTR_MR6_SWITCH(mr, M, ARG)                                                            \
    switch (mr) {                                                                             \
    case 6: M(6, ARG); break;                                                                 \
    case 5: M(5, ARG); break;                                                                 \
    case 4: M(4, ARG); break;                                                                 \
    case 3: M(3, ARG); break;                                                                 \
    case 2: M(2, ARG); break;                                                                 \
    default: M(1, ARG); break;                                                                \
    }

/* ---- micro-kernel interfaces: one driver per operation (gemm.c), per-ISA tiles ------- */

/* One task of gtr_linear as the driver sees it: the weights, the task's activation rows as
 * the micro-kernel wants them (prepared by prep into the scratch, or x itself), and Y. */
typedef struct gtr_linear_task {
    const gtr_wmat *w;
    const void *a; /* row i of the prepared activations at a + i*lda elements */
    size_t lda;
    const float *sx; /* INT8: per-row activation scales (in the scratch), else NULL */
    float *y;
    size_t ldy;
    float *b; /* the panel hook's prepared weight block (in the scratch), else NULL */
    size_t mc; /* rows the scratch holds (the ukr's mc or mc_max, else GTR_LINEAR_MC) */
    /* for the tile: pfn cache lines from pf (rows of x this thread will probably take next)
     * to bring into L2 while it computes; a tile may ignore them */
    const char *pf;
    size_t pfn;
    /* the outputs of the tile the driver calls next in this task (ync columns of ynr rows at
     * yn, ldy apart; ynr = 0: none), which a tile may prefetch for writing while it computes
     * (the VNNI int8 tile on Intel) */
    float *yn;
    size_t ynr, ync;
} gtr_linear_task;

/* A linear micro-kernel: the driver (gtr_linear_drive) walks k blocks of kc groups (g = 1, 2
 * or 4 k values for f32, bf16, int8; 0 = all of K in one block, as integer sums need), then
 * panels, then tiles of mr rows, and calls tile for each. accum: add to Y (ACCUM flag or a
 * later k block); relu: apply ReLU (last k block only). Packing uses the table's nr[type]. */
typedef struct gtr_linear_ukr {
    int mr;
    size_t kc;
    /* rows per task (0: GTR_LINEAR_MC, or as mc_max allows; a multiple of mr) */
    size_t mc;
    /* mc = 0 and mc_max set: tasks of up to mc_max rows as the CPU chooses (gtr_wmat.mc),
     * and the scratch holds that many */
    size_t mc_max;
    /* per-thread scratch bytes for a task's rows (mc, mc_max or GTR_LINEAR_MC) of kp (padded)
     * inputs; NULL = none */
    size_t (*ws)(size_t kp);
    /* convert / quantise rows [0, m) of x into ws and set t->a, t->lda, t->sx; NULL: the
     * tile reads x directly */
    void (*prep)(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws);
    /* bytes at the start of each thread's scratch that gtr_linear zeroes before a call (prep
     * and ahead keep their state there); 0: none */
    size_t ws_clear;
    /* during a task, prepare row `row` of the rows xn (ldx apart) the thread will probably
     * take next, once the driver's prefetch of it has completed (rows in order from 0); prep
     * keeps what it prepared where its rows are those. NULL: the driver only prefetches them */
    void (*ahead)(const gtr_linear_task *t, const float *xn, size_t ldx, size_t row, void *ws);
    /* before the tiles of panel p, k block [k0, k0 + kc): prepare that block of weights
     * (bf16 widened to float32 into t->b); NULL = the tiles read the packed panel */
    void (*panel)(gtr_linear_task *t, size_t p, size_t k0, size_t kc);
    /* after the task's last tile (AMX releases its tile state); NULL = nothing */
    void (*done)(void);
    void (*tile)(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                 int accum, int relu);
    /* set: the micro-kernel walks a task itself (in place of gtr_linear_drive, same
     * arguments), prep / panel / done / tile unused; NULL: gtr_linear_drive */
    void (*drive)(const struct gtr_linear_ukr *u, const gtr_wmat *w, const float *x, size_t m,
                  size_t ldx, float *y, size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws);
} gtr_linear_ukr;

/* The float32 linear tile every ISA shares (gemm.c): panel p of nr columns, k block
 * [k0, k0 + kc), rows straight from x; packed computes C[mr, ncols] (=|+=) A·B (+ relu) from
 * a panel with rows nr floats apart. */
typedef void (*gtr_f32_packed_fn)(int mr, size_t K, const float *a, size_t lda, const float *b,
                                  float *c, size_t ldc, size_t ncols, float beta, int relu);
void gtr_f32_linear_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0,
                         size_t kc, int accum, int relu, size_t nr, gtr_f32_packed_fn packed);

/* bf16 weights computed in float32 (CPUs whose bf16 dot instruction is slower than two FMA
 * pipes, or that have none): the panel hook widens k block [k0, k0 + kc) pairs of panel p
 * into t->b as a [2·kc][nr] float32 panel, and the tile runs the ISA's float32 packed kernel
 * on it with rows of x rounded to bf16 (by prep, stored as float32). The products of bf16
 * values are exact in float32, so this is the GTR_W_BF16 definition with FMA sums. */
void gtr_bf16w_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                    int accum, int relu, gtr_f32_packed_fn packed);
/* its scratch: GTR_LINEAR_MC rows of kp floats + a block of kc2 pairs × nr panel */
size_t gtr_bf16w_ws(size_t kp, size_t kc2, size_t nr);

/* A strided float32 GEMM micro-kernel: C[mr, ncols] = beta*C + A·B for mr <= mr_max rows and
 * ncols <= nr columns; A element (i, k) at a[i*ars + k*aks], B row k at b + k*bks. */
typedef struct gtr_sgemm_ukr {
    int mr, nr;
    void (*tile)(int mr, size_t K, const float *a, size_t ars, size_t aks, const float *b,
                 size_t bks, float *c, size_t ldc, size_t ncols, float beta);
    /* dst[c*ldd + r] = src[r*lds + c] (sgemm_nt's B blocks); NULL: the portable one */
    void (*transpose)(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
    /* sgemm_nn copies B's column blocks into a contiguous buffer, up to 512 rows at a time,
     * with this (dst[r*ldd + c] = src[r*lds + c], cols <= nr) before the tiles read them (beta
     * 0 or 1); NULL: the tiles read B in place */
    void (*copy_b)(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
} gtr_sgemm_ukr;

/* gemm.c: the drivers */
void gtr_linear_drive(const gtr_linear_ukr *u, const gtr_wmat *w, const float *x, size_t m,
                      size_t ldx, float *y, size_t ldy, size_t p0, size_t p1, unsigned flags,
                      void *ws, const float *xn, size_t mn);
void gtr_sgemm_drive_nt(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_drive_nn(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_drive_tn(const gtr_sgemm_ukr *u, size_t M, size_t N, size_t K, const float *A,
                        size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

struct gtr_kernels {
    const char *name;
    /* which CPU features it needs (checked by gtr_kernels_at / _by_name) */
    bool need_avx2, need_avx512, need_bf16, need_vnni, need_amx;
    /* chosen by gtr_kernels_select only where vdpbf16ps outruns the FMA pipes (its bf16 path
     * would otherwise be slower than float32); still listed by gtr_kernels_at for tests */
    bool select_needs_fast_dpbf16;
    size_t nr[GTR_W_NTYPES];            /* panel width of the packed layout, per gtr_wtype */
    size_t kalign[GTR_W_NTYPES];        /* k padded to a multiple of this (0: the k group) */
    /* micro-kernels for layouts packed with nr[type] */
    const gtr_linear_ukr *linear[GTR_W_NTYPES];
    const gtr_sgemm_ukr *sgemm; /* NULL = the portable code */
    const gtr_bf16mm *bf16mm;   /* attention's products in bf16 (AMX); NULL = none */
    void (*rmsnorm)(const float *x, const float *w, float eps, size_t n, float *y);
    void (*softmax)(float *x, size_t n);
    void (*add_softmax)(float *x, const float *bias, size_t n);
    void (*gelu_mul)(float *x, const float *g, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
    void (*transpose)(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
};

/* ---- the numeric definitions every ISA reproduces exactly ---------------------------- */

/* Quantise v = x · (127 / amax) to [-127, 127] as cvtps2dq + clamp does: round to nearest
 * even; NaN and out-of-int32-range values (only from inf/NaN inputs) become -127. */
static inline int32_t gtr_q8(float v)
{
    if (!(fabsf(v) < 2147483648.0f)) return -127;
    /* nearbyintf without a libm call per weight (it was 40% of an int8 load): below 2^22,
     * v + 1.5 * 2^23 lies in (2^23, 2^24), where the addition rounds to an integer (nearest
     * even, the default mode) and the subtraction is exact */
    float r = fabsf(v) < 4194304.0f ? (v + 12582912.0f) - 12582912.0f : nearbyintf(v);
    if (r > 127.0f) return 127;
    if (r < -127.0f) return -127;
    return (int32_t)r;
}
/* Row scale: amax = max |x| (NaN ignored); scale = amax / 127, inverse 127 / amax (0, 0 for
 * an all-zero row). */
static inline void gtr_q8_scale(float amax, float *scale, float *inv)
{
    if (amax > 0) {
        *scale = amax / 127.0f;
        *inv = 127.0f / amax;
    } else {
        *scale = 0;
        *inv = 0;
    }
}

/* Packing's row pieces (pack.c): the largest |x| of n floats (NaN ignored, 0 for none), and
 * nv values in the packed type into dst from the in <= nv floats at x (zeros after them):
 * float32, gtr_bf16_daz bits, or int8 gtr_q8(x * inv) codes with their sum added to *sum.
 * The AVX-512 versions give the same bytes. */
float gtr_generic_absmax(const float *x, size_t n);
void gtr_generic_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                            void *dst, int32_t *sum);
float gtr_avx512_absmax(const float *x, size_t n);
void gtr_avx512_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                           void *dst, int32_t *sum);
void gtr_avx512bf16_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                               void *dst, int32_t *sum); /* the CPU has AVX512_BF16 */
/* Sixteen rows' pieces into a packing tile: stage[r * stride + q] (r < 16, q < nw: row
 * i0 + r's 4-byte word q) to tile + ((q * nr + i0 + r) * 4), nr a multiple of 16, tile and
 * i0 * 4 64-byte aligned: 16 x 16 words transposed in registers, a whole cache line a store
 * (instead of sixteen 4-byte stores into sixteen lines). Non-temporal stores were slower
 * (the lines are in cache, just zeroed by the kernel's page population). */
#define GTR_PACK_STAGE_WORDS 256
void gtr_avx512_tile_put16(unsigned char *tile, size_t nr, size_t i0, const uint32_t *stage, size_t stride, size_t nw);

/* ---- per-ISA tables --------------------------------------------------------------------- */
extern const gtr_kernels gtr_kernels_generic_table;
extern const gtr_kernels gtr_kernels_avx2_table;
extern const gtr_kernels gtr_kernels_avx512_table;      /* f32 AVX-512; bf16/int8 via AVX2 */
extern const gtr_kernels gtr_kernels_avx512_vnni_table; /* + vpdpbusd int8 */
extern const gtr_kernels gtr_kernels_avx512_bf16_table; /* + vdpbf16ps bf16 + vpdpbusd int8 */
extern const gtr_kernels gtr_kernels_amx_table;         /* + AMX tiles for bf16 and int8 */

/* generic C versions (generic.c, generic_linear.c) */
void gtr_generic_sgemm_nt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_nn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_sgemm_tn(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                          size_t ldb, float beta, float *C, size_t ldc);
void gtr_generic_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_generic_softmax(float *x, size_t n);
void gtr_generic_add_softmax(float *x, const float *bias, size_t n);
void gtr_generic_gelu_mul(float *x, const float *g, size_t n);
float gtr_generic_dot(const float *a, const float *b, size_t n);
void gtr_generic_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);
/* portable linear tiles: read any layout (any nr), need no scratch */
extern const gtr_linear_ukr gtr_generic_linear_f32, gtr_generic_linear_bf16, gtr_generic_linear_int8;

/* AVX2+FMA micro-kernels (gemm_avx2.c, lowp_avx2.c) and row kernels (eltwise_avx2.c) */
extern const gtr_linear_ukr gtr_avx2_linear_f32, gtr_avx2_linear_int8;
/* the float32 packed tile (6 × 16), and bf16 weights computed with it (bf16w_avx2.c) */
void gtr_avx2_f32_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                         size_t ldc, size_t ncols, float beta, int relu);
extern const gtr_linear_ukr gtr_avx2_linear_bf16w;
extern const gtr_sgemm_ukr gtr_avx2_sgemm;
void gtr_avx2_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_avx2_softmax(float *x, size_t n);
void gtr_avx2_add_softmax(float *x, const float *bias, size_t n);
void gtr_avx2_gelu_mul(float *x, const float *g, size_t n);
float gtr_avx2_dot(const float *a, const float *b, size_t n);

/* AVX-512 micro-kernels (gemm_avx512.c, bf16_avx512.c, int8_avx512.c) and row kernels
 * (eltwise_avx512.c) */
extern const gtr_linear_ukr gtr_avx512_linear_f32, gtr_avx512_linear_bf16, gtr_avx512_linear_int8;
/* the float32 packed tile (6 × 64) that bf16w_avx512.c reuses on widened bf16 panels */
void gtr_avx512_f32_packed(int mr, size_t K, const float *a, size_t lda, const float *b, float *c,
                           size_t ldc, size_t ncols, float beta, int relu);
/* bf16 weights computed with float32 FMAs (bf16w_avx512.c), for CPUs where vdpbf16ps is
 * slower than FMA or absent */
extern const gtr_linear_ukr gtr_avx512_linear_bf16w;
extern const gtr_sgemm_ukr gtr_avx512_sgemm, gtr_avx512_sgemm_copy_b;
/* their row preparation (bf16 pairs; u8 codes qx + 128 with row scales), shared with AMX */
size_t gtr_avx512_bf16_ws(size_t kp);
void gtr_avx512_bf16_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws);
size_t gtr_avx512_int8_ws(size_t kp);
void gtr_avx512_int8_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws);
void gtr_avx512_int8_ahead(const gtr_linear_task *t, const float *xn, size_t ldx, size_t row, void *ws);
void gtr_avx512_rmsnorm(const float *x, const float *w, float eps, size_t n, float *y);
void gtr_avx512_softmax(float *x, size_t n);
void gtr_avx512_add_softmax(float *x, const float *bias, size_t n);
void gtr_avx512_gelu_mul(float *x, const float *g, size_t n);
float gtr_avx512_dot(const float *a, const float *b, size_t n);
void gtr_avx512_transpose(const float *src, size_t lds, size_t rows, size_t cols, float *dst, size_t ldd);

/* AMX tiles (linear_amx.c): bf16 by TDPBF16PS, int8 by TDPBUSD, on the AVX-512 layouts with
 * k padded to whole tiles (kalign 32 / 64) */
extern const gtr_linear_ukr gtr_amx_linear_bf16, gtr_amx_linear_int8;
/* attention's bf16 products on AMX (attn_amx.c) */
size_t gtr_amx_bf16_packed_bytes(size_t K, size_t N);
size_t gtr_amx_bf16_gemm_ws(size_t K);
void gtr_amx_bf16_pack_bt(const float *Bt, size_t ldt, size_t K, size_t N, void *dst, void *tmp);
void gtr_amx_bf16_pack_b(const float *B, size_t ldb, size_t K, size_t N, void *dst);
void gtr_amx_bf16_gemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const void *Bp,
                       float *C, size_t ldc, void *ws);

#endif
