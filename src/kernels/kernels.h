/*
 * kernels.h — the compute primitives the encoder, head, index and trainer are built from.
 * Knows nothing about what a layer is. Each primitive has a portable C version; ISA-specific
 * versions (AVX2+FMA, AVX-512 with BF16/VNNI) live in *_avx2.c / *_avx512.c and are chosen at
 * run time by gtr_kernels_select() from CPUID.
 *
 * Each operation has one driver, and an ISA brings only micro-kernels (kernels_internal.h):
 * gemm.c blocks gtr_linear (gtr_linear_ukr: prepare rows, compute one tile) and the strided
 * sgemms (gtr_sgemm_ukr); eltwise_body.h writes the row kernels once over a vector type that
 * eltwise_<isa>.c maps onto its registers; index/score.c tiles the index scores over
 * gtr_ix_ukr. Adding an ISA = those micro-kernels + a table entry in dispatch.c.
 *
 * Weights are "linear" matrices W[n_out, k_in] (PyTorch nn.Linear layout); they are packed
 * once at load (gtr_wmat) into whatever layout/precision the chosen kernels like best.
 *
 * Precisions of packed weights (activations and outputs are always float32):
 *  - GTR_W_F32:  y = x·Wᵀ in float32 (FMA; summation order differs between ISAs).
 *  - GTR_W_BF16: W and x are rounded to bfloat16 (round to nearest even; float32 denormals
 *    flushed to zero, as AVX512_BF16 does), products are exact in float32 and summed in
 *    float32. Every ISA gives the float32 sum of the same exact products; only the order of
 *    the additions differs.
 *  - GTR_W_INT8: symmetric per-output-channel weights and per-row (per-token) dynamically
 *    quantised activations:
 *        sw[n] = max_k |W[n,k]| / 127            qw[n,k] = rint(W[n,k] · (127 / max_k|W[n,k]|))
 *        sx[i] = max_k |x[i,k]| / 127            qx[i,k] = rint(x[i,k] · (127 / max_k|x[i,k]|))
 *        y[i,n] = (float)(Σ_k qx·qw) · (sx[i] · sw[n])          (all in float32, rint = RNE)
 *    q values are clamped to [-127, 127]; an all-zero row gets scale 0. The integer sum is
 *    exact on every ISA (AVX-512 VNNI computes Σ (qx+128)·qw − 128·Σ qw with u8×s8 vpdpbusd,
 *    AVX2 uses |qx| × sign(qw, qx) with vpmaddubsw, which cannot saturate since |q| ≤ 127),
 *    so every ISA gives bit-identical int8 results.
 */
#ifndef GTR_KERNELS_H
#define GTR_KERNELS_H

#include "core/core.h"

#include <string.h>

/* float -> bfloat16 bits, round to nearest even, denormals flushed to (signed) zero (as
 * vcvtne2ps2bf16 and vdpbf16ps treat them); NaN stays NaN. The one rounding every bf16 path
 * uses: packing, the bf16 embedding table, and `gtr quantize --dtype bf16`, so a BF16 file
 * written by gtr packs to exactly the bits the float32 original packs to. */
static inline uint16_t gtr_bf16_daz(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    return gtr_f32_to_bf16(f);
}
static inline float gtr_bf16_round_daz(float f) { return gtr_bf16_to_f32(gtr_bf16_daz(f)); }

typedef struct gtr_kernels gtr_kernels;

typedef enum gtr_wtype { GTR_W_F32 = 0, GTR_W_BF16, GTR_W_INT8 } gtr_wtype;
#define GTR_W_NTYPES 3

/* A packed weight matrix: y = x · Wᵀ with W [n, k]. The layout of data is private to the
 * kernels that packed it: panels of nr output channels, k padded to kp (a multiple of 1, 2
 * or 4 for f32, bf16, int8), each panel [kp/g][nr][g] with g that multiple, zero padded. */
typedef struct gtr_wmat {
    size_t n, k;
    gtr_wtype type;
    void *data;    /* packed values (aligned allocation) */
    float *scales; /* INT8: per-output-row scale (padded to whole panels), else NULL */
    size_t bytes;  /* memory held */
    size_t nr, kp; /* panel width and padded k of the layout */
    int32_t *colsum; /* INT8: Σ_k qw[n,k] per output row (VNNI offset compensation) */
    size_t kc;       /* F32: k block for this CPU's caches, set at packing (0: the kernel's own);
                      * the result does not depend on it */
    size_t mc;       /* F32 / INT8: rows per gtr_linear task for this CPU's caches (set at
                      * packing from gtr_linear_task_rows; 0: GTR_LINEAR_MC); kernels whose
                      * scratch holds fewer rows use fewer; the result does not depend on it */
    bool no_prefetch; /* F32 / INT8: the AVX-512 kernels leave the panel to the hardware prefetch
                       * (set at packing from gtr_blocking.linear_prefetch; no effect on the
                       * result; false, the default, prefetches) */
    bool borrowed;   /* data/scales/colsum point into memory the caller owns (a mapped
                      * `gtr quantize` file): gtr_wmat_free leaves them alone */
} gtr_wmat;

/* ---- packed weights stored in files (a `gtr quantize` copy used in place) -------------------
 * The name of the layout above (the element order of pidx in pack.c: panels of nr rows,
 * [kp/g][nr][g] each, zero padded, int8 with per-row scales and Σq). A file records it with
 * every matrix's nr and kp; change the name whenever the order changes, so that older files
 * are repacked (or refused) rather than misread. */
#define GTR_WMAT_LAYOUT_NAME "gtr-panels-v1"
/* The layout kern packs a [*, k] matrix of type into: panel width nr, k padded to kp. */
void gtr_wmat_layout(const gtr_kernels *kern, gtr_wtype type, size_t k, size_t *nr, size_t *kp);
/* Elements per k group (1, 2, 4 for f32, bf16, int8) and bytes per element. */
size_t gtr_wmat_kgroup(gtr_wtype type);
size_t gtr_wmat_esize(gtr_wtype type);
/* The table whose layout `gtr quantize` writes: the widest x86 one (AMX: nr 64, k padded to
 * whole tiles), which every AVX-512 table with the same nr also reads in place. It may be a
 * table this CPU cannot run: only its layout numbers are used. */
const gtr_kernels *gtr_kernels_file_layout(void);
/* Does kern's own micro-kernel read w's layout (nr, kp)? Otherwise gtr_linear falls back to
 * the portable tiles, which read any layout. */
bool gtr_wmat_native(const gtr_kernels *kern, const gtr_wmat *w);
/* A view of packed data made elsewhere (layout nr, kp; int8: scales and colsum [np*nr]):
 * w borrows the memory, nothing is copied or checked beyond the shape arithmetic. */
gtr_status gtr_wmat_view(gtr_wmat *w, gtr_wtype type, size_t n, size_t k, size_t nr, size_t kp,
                         const void *data, const float *scales, const int32_t *colsum,
                         gtr_error *err);
/* Use a view for kern: the view itself when kern reads its layout natively (no copy), else a
 * private repack into kern's layout (*in_place false), exact: the stored values are moved,
 * never re-rounded. The view stays the caller's. */
gtr_status gtr_wmat_adopt(const gtr_kernels *kern, const gtr_wmat *view, gtr_wmat *w,
                          bool *in_place, gtr_error *err);
/* Rows [r0, r0 + rows) of a packed matrix as stored values, row-major k each: float (F32),
 * bf16 bits (BF16) or int8 codes (INT8; scales separately in w->scales). */
void gtr_wmat_unpack_rows(const gtr_wmat *w, size_t r0, size_t rows, void *dst);
/* Rows [r0, r0 + rows) as float32 (bf16 widened, int8 dequantised as (float)q * scale). */
void gtr_wmat_rows_f32(const gtr_wmat *w, size_t r0, size_t rows, float *dst);
/* All n rows as float32 on the pool's threads (a panel's rows per task; the same values). */
void gtr_wmat_rows_f32_pool(const gtr_wmat *w, gtr_pool *pool, float *dst);

/* Flags for gtr_linear. */
#define GTR_LINEAR_ACCUM 1u /* y += x·Wᵀ instead of y = x·Wᵀ (residual add fused) */
#define GTR_LINEAR_RELU  2u /* y = relu(x·Wᵀ) (with ACCUM: relu(y + x·Wᵀ)) */

/* The best kernels for this CPU (respecting GTR_CPU=generic|avx2|avx512). Static, immutable. */
const gtr_kernels *gtr_kernels_select(void);
/* The portable kernels (reference for tests). */
const gtr_kernels *gtr_kernels_generic(void);
const char *gtr_kernels_name(const gtr_kernels *k);
/* Every kernel table this CPU can run (i = 0.. until NULL), generic first; for tests and
 * benchmarks that force each ISA path. */
const gtr_kernels *gtr_kernels_at(size_t i);
/* The table of that name if this CPU can run it, else NULL. */
const gtr_kernels *gtr_kernels_by_name(const char *name);

/* Pack W (row-major [n, k] float32) as type. n, k >= 1. gtr_wmat_pack_pool: the same over
 * the pool's threads (panels are independent; the result is identical). */
gtr_status gtr_wmat_pack_pool(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const float *W,
                              size_t n, size_t k, gtr_wtype type, gtr_error *err);
gtr_status gtr_wmat_pack(const gtr_kernels *kern, gtr_wmat *w, const float *W, size_t n, size_t k,
                         gtr_wtype type, gtr_error *err);
/* Rows stored elsewhere (a checkpoint's mapped tensors), packed without a float32 copy:
 * `rows` consecutive rows of k values each, row-major, as float32, IEEE half or bfloat16
 * (little-endian bytes, any alignment). gtr_wmat_pack_src packs the row-wise concatenation of parts exactly as
 * gtr_wmat_pack_pool packs the same values converted to float32 (gtr_f16_to_f32,
 * gtr_bf16_to_f32). */
typedef enum gtr_src_type { GTR_SRC_F32 = 0, GTR_SRC_F16, GTR_SRC_BF16 } gtr_src_type;
typedef struct gtr_wsrc {
    const void *data;
    size_t rows;
    gtr_src_type type;
} gtr_wsrc;
gtr_status gtr_wmat_pack_src(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                             size_t n_parts, size_t k, gtr_wtype type, gtr_error *err);
/* gtr_wmat_pack_src that also says whether an F16 part held an infinity or NaN (*nonfinite;
 * the conversion finds them at no cost; F32 and BF16 parts are not checked). The packed bytes
 * are the same either way. */
gtr_status gtr_wmat_pack_src_finite(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                                    size_t n_parts, size_t k, gtr_wtype type, bool *nonfinite, gtr_error *err);
/* gtr_wmat_pack_src with the packing driven by the caller, so that whatever else must read
 * the same rows (the load's fingerprint) reads them from memory once and the packing finds
 * them in cache: task i of the pool owns rows [i * T, (i + 1) * T) (T = task_rows rounded up to
 * whole panels; the last task fewer) and calls fn(ctx, r0, r1, pk) with them, on its thread,
 * concurrently with other tasks. fn must call gtr_pack_rows(pk, a, b, amax) for ranges of
 * whole panels (a a multiple of the panel height nr, b one or the end) that cover [r0, r1)
 * once, in any order; amax (INT8 only; NULL otherwise or to have them computed) is the
 * largest |value| of each row a .. b - 1 (as the portable gtr_generic_absmax computes it:
 * NaN ignored), which saves packing a pass over the rows. The bytes are gtr_wmat_pack_src's. */
typedef struct gtr_pack_task gtr_pack_task;
typedef struct gtr_pack_visit {
    size_t task_rows;
    void (*fn)(void *ctx, size_t r0, size_t r1, gtr_pack_task *pk);
    void *ctx;
} gtr_pack_visit;
gtr_status gtr_wmat_pack_src_visit(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                                   size_t n_parts, size_t k, gtr_wtype type, const gtr_pack_visit *visit,
                                   gtr_error *err);
void gtr_pack_rows(gtr_pack_task *pk, size_t r0, size_t r1, const float *amax);
/* Instead of gtr_pack_rows for whole panels: rows the caller has as float32 anyway (converted
 * once, for the fingerprint and the packing), packed a band of GTR_PACK_BAND rows at a time.
 * gtr_pack_band_row packs row r (its k values at x; an INT8 row's scale from its own largest
 * |value|) into stage (gtr_pack_band_words(pk) 4-byte words); gtr_pack_band_put writes the
 * staged rows r0 .. r0 + GTR_PACK_BAND - 1 (row i at stage + i * words; r0 a multiple of
 * GTR_PACK_BAND, the rows inside the matrix) into their panel. A panel's bands are put in
 * order, from its first (which makes the panel's pages present), by one task. The bytes are
 * gtr_wmat_pack_src's. */
#define GTR_PACK_BAND 16
size_t gtr_pack_band_words(const gtr_pack_task *pk);
void gtr_pack_band_row(gtr_pack_task *pk, size_t r, const float *x, uint32_t *stage);
void gtr_pack_band_put(gtr_pack_task *pk, size_t r0, const uint32_t *stage);
/* The panel height of type's packing for kern (what gtr_wmat_pack_src_visit rounds tasks to). */
size_t gtr_wmat_panel_rows(const gtr_kernels *kern, gtr_wtype type);
/* The largest |x[i]| of n floats, NaN ignored, 0 for none (the fastest this CPU runs; every
 * one gives the same value). */
typedef float (*gtr_absmax_fn)(const float *x, size_t n);
gtr_absmax_fn gtr_absmax_for_cpu(void);

/* Pack weights that are already bfloat16 (row-major [n, k], e.g. from a quantised checkpoint). */
gtr_status gtr_wmat_pack_bf16(const gtr_kernels *kern, gtr_wmat *w, const uint16_t *W, size_t n,
                              size_t k, gtr_error *err);
/* Pack weights already quantised to int8 (row-major [n, k], values in [-127, 127]) with their
 * per-row scales (W ≈ q · scales[row]). */
gtr_status gtr_wmat_pack_int8(const gtr_kernels *kern, gtr_wmat *w, const int8_t *q,
                              const float *scales, size_t n, size_t k, gtr_error *err);
/* Quantise one row-major weight matrix the way GTR_W_INT8 packing does (for `gtr quantize`):
 * q [n*k], scales [n]. */
void gtr_quantize_rows_int8(const float *W, size_t n, size_t k, int8_t *q, float *scales);
void gtr_wmat_free(gtr_wmat *w);

/* Y[m, n] (=|+=) X[m, k] · Wᵀ; rows of X have stride ldx, rows of Y stride ldy (floats).
 * Parallel over the pool (may be NULL). bf16/int8 weights need a scratch buffer for the
 * converted activations: gtr_linear allocates it per call (and falls back to the portable
 * kernels, which need none, if that fails); gtr_linear_ws takes it from the caller (an
 * arena), at least gtr_linear_ws_size bytes. */
void gtr_linear(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                size_t m, size_t ldx, float *y, size_t ldy, unsigned flags);
size_t gtr_linear_ws_size(const gtr_kernels *kern, const gtr_pool *pool, const gtr_wmat *w,
                          size_t m);
/* An upper bound of gtr_linear_ws_size for any [*, k] matrix of type on n_threads threads,
 * before the matrix exists (packed by kern or stored by `gtr quantize`): the memory check. */
size_t gtr_linear_ws_bound(const gtr_kernels *kern, int n_threads, gtr_wtype type, size_t k);
void gtr_linear_ws(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                   size_t m, size_t ldx, float *y, size_t ldy, unsigned flags, void *ws,
                   size_t ws_bytes);

/* Plain single-threaded float32 GEMMs with strides (attention, training):
 *   nt: C[M,N] = beta*C + A[M,K] · B[N,K]ᵀ      nn: C[M,N] = beta*C + A[M,K] · B[K,N]
 *   tn: C[M,N] = beta*C + A[K,M]ᵀ · B[K,N]
 * beta == 0 ignores C's old contents (it may hold NaN). */
void gtr_sgemm_nt(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_nn(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);
void gtr_sgemm_tn(const gtr_kernels *kern, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Attention's products in bf16 on a matrix engine (AMX): operands rounded to bf16 as every
 * bf16 path rounds them, products exact, float32 sums. The right operand is packed once
 * (pack_bt from rows of Bᵀ, e.g. the keys; pack_b from rows of B, e.g. the values) into
 * packed_bytes(K, N) bytes, 64-byte aligned, and serves many left operands:
 *   gemm: C[M, N] = A[M, K] · B, rows of A lda apart, of C ldc apart; ws of ws(K) bytes,
 *         64-byte aligned. pack_bt needs tmp of N × round_up(K, 32) × 2 bytes.
 * gtr_kernels_bf16mm returns NULL where the table has none (then attention stays float32). */
typedef struct gtr_bf16mm {
    size_t (*packed_bytes)(size_t K, size_t N);
    size_t (*ws)(size_t K);
    void (*pack_bt)(const float *Bt, size_t ldt, size_t K, size_t N, void *dst, void *tmp);
    void (*pack_b)(const float *B, size_t ldb, size_t K, size_t N, void *dst);
    void (*gemm)(size_t M, size_t N, size_t K, const float *A, size_t lda, const void *Bp,
                 float *C, size_t ldc, void *ws);
} gtr_bf16mm;
const gtr_bf16mm *gtr_kernels_bf16mm(const gtr_kernels *kern);

/* Element-wise, one row of n floats. Vectorised versions stay within ~1e-6 relative of the
 * portable ones (only summation order and a few-ulp expf differ). */
/* y = x * rsqrt(mean(x²) + eps) * w   (T5 RMS norm; y may equal x) */
void gtr_rmsnorm(const gtr_kernels *kern, const float *x, const float *w, float eps, size_t n, float *y);
/* x = softmax(x) in place (max-subtracted; -inf entries give 0) */
void gtr_softmax(const gtr_kernels *kern, float *x, size_t n);
/* x = softmax(x + bias) in place (attention scores + position bias/mask; bias may be NULL) */
void gtr_add_softmax(const gtr_kernels *kern, float *x, const float *bias, size_t n);
/* x = gelu_tanh(x) * g   (T5 v1.1 gated-gelu). Computed as x / (1 + exp(-2u)), which equals
 * 0.5·x·(1 + tanh(u)) but does not lose digits to cancellation when tanh(u) is near -1. */
void gtr_gelu_mul(const gtr_kernels *kern, float *x, const float *g, size_t n);
/* dot product */
float gtr_dot(const gtr_kernels *kern, const float *a, const float *b, size_t n);
/* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (exact: a copy). Attention
 * transposes each head's keys once so Q·Kᵀ runs as a plain nn product. */
void gtr_transpose(const gtr_kernels *kern, const float *src, size_t lds, size_t rows, size_t cols,
                   float *dst, size_t ldd);

#endif
