/* linear_amx.c — bf16 and int8 linear tasks on Intel AMX (TDPBF16PS, TDPBUSD).
 *
 * The weights stay in the AVX-512 panel layout ([kp/g][64][g], g = 2 or 4): 16 consecutive
 * k groups of 16 columns are rows 256 bytes apart, exactly a 16 × 64-byte B tile, so packing
 * only pads k to whole tiles (32 bf16 / 64 int8 values, the table's kalign). Activations are
 * prepared as for AVX-512 (bf16 with float32 denormals flushed; u8 codes qx + 128 with the VNNI
 * compensation Σ qw · 128 removed in the epilogue, so int8 results are bit-identical to every
 * other ISA), but stored tile by tile: 16 rows × one k step (64 bytes) are 1 KB contiguous
 * ([row block of 16][k step][16][64 bytes]), so an A tile is one sequential kilobyte.
 *
 * The micro-kernel walks its tasks itself (the ukr's drive hook). A task of AMX_MC rows is
 * prepared AMX_MB rows at a time (every row block streams the whole weight matrix, from L3 for
 * the feed-forward ones, so blocks are larger than GTR_LINEAR_MC). For each 64-column panel,
 * k is cut into blocks of AMX_KB tile steps; for each k block and 32-column half of the panel
 * the B block (32 columns × AMX_KB steps, 2 KB a step) stays in L1 while every 32-row block
 * runs its 2 × 2 accumulator tiles (tmm0-3, fed by A tiles tmm4-5 and B tiles tmm6-7) over
 * it: per four tile products two tile loads come from L1 and two (the A tiles, sequential)
 * from L2. Between k blocks the accumulators rest in the scratch (float32 / int32, stored and
 * reloaded exactly, so the sums are those of one chain over K); after the last block they go
 * through the fused epilogue (residual add, ReLU, int8 scales) with AVX-512.
 *
 * Measured on a 2-vCPU Xeon (bench/RESULTS.md, issue 16): with one thread the tile loop is
 * latency-bound (about half the measured tdpbf16ps peak with real data: storing the
 * accumulators waits for the last products), and the float32 activations' traffic (reading x,
 * writing y: about as long as the products would take at peak, at 4096 tokens) caps it further;
 * the two vCPUs there measured as two cores (1.95x one on the tile-product loop) when quiet. */
#include "kernels/absmax_avx512.h"
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define NR 64
#define BSTRIDE (NR * 4) /* bytes between k groups in a panel (both types) */
#ifndef AMX_MB
#define AMX_MB 256 /* rows per task, prepared at once (a multiple of 32) */
#endif
#ifndef AMX_MC
#define AMX_MC AMX_MB
#endif
#ifndef AMX_ACAP
#define AMX_ACAP (768 << 10) /* bytes of prepared rows at most (with K = 3072 in bf16: 128 rows) */
#endif
#ifndef AMX_KB
#define AMX_KB 6 /* tile k steps per k block: B block 12 KB (its lines 256 bytes apart use half the L1 sets) */
#endif

#define INLINE static inline __attribute__((always_inline))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static void config(void)
{
    _Alignas(64) tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    /* not _tile_loadconfig: GCC 12's version tells the compiler it reads only 8 bytes, so
     * the stores of colsb and rows above were dropped as dead (tilezero then faults) */
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

/* The scratch of one thread: the A tiles of AMX_MB rows (kp·esize bytes a row), the
 * accumulators of every 32 × 32 block between k blocks (AMX_MB/32 × 2 × 4 KB), one block for
 * the epilogue, the int8 row scales. */
static size_t a_bytes(size_t kp, size_t esize) { return (size_t)AMX_MB * kp * esize; }
#define ACC_BYTES ((size_t)AMX_MB / 32 * 2 * 4096 + 4096)
static size_t ws_bytes(size_t kp, size_t esize) { return a_bytes(kp, esize) + ACC_BYTES + AMX_MB * sizeof(float) + 64; }
static size_t bf16_ws(size_t kp) { return ws_bytes(kp, 2); }
static size_t int8_ws(size_t kp) { return ws_bytes(kp, 1); }

static inline __mmask16 m16(size_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* x with float32 denormals replaced by signed zeros (gtr_bf16_daz) */
INLINE __m512 daz(__m512 x)
{
    __m512i xi = _mm512_castps_si512(x);
    __mmask16 normal = _mm512_test_epi32_mask(xi, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(
        _mm512_mask_blend_epi32(normal, _mm512_and_si512(xi, _mm512_set1_epi32((int)0x80000000u)), xi));
}

/* row i's 64-byte piece of k step s in tile-blocked A (ks steps a row) */
INLINE unsigned char *a_at(unsigned char *a, size_t ks, size_t i, size_t s)
{
    return a + ((i / 16) * ks + s) * 1024 + (i % 16) * 64;
}

/* k floats -> bf16 (float32 denormals flushed), zero padded to ks steps of 32 */
static void bf16_row(const float *src, size_t k, size_t ks, unsigned char *d)
{
    for (size_t s = 0; s < ks; s++, d += 1024) {
        size_t c = 32 * s;
        __m512 lo, hi;
        if (c + 32 <= k) {
            lo = _mm512_loadu_ps(src + c);
            hi = _mm512_loadu_ps(src + c + 16);
        } else {
            size_t r0 = k > c ? k - c : 0, r1 = k > c + 16 ? k - c - 16 : 0;
            lo = _mm512_maskz_loadu_ps(m16(r0), src + c);
            hi = _mm512_maskz_loadu_ps(m16(r1), src + c + 16);
        }
        _mm512_store_si512(d, (__m512i)_mm512_cvtne2ps_pbh(daz(hi), daz(lo)));
    }
}

/* k floats -> u8 codes qx + 128 (padding 128, i.e. 0) in ks steps of 64 and the row scale,
 * exactly as gtr_q8 / gtr_q8_scale define them (as gtr_avx512_int8_prep does, narrowed the
 * same way) */
static void int8_row(const float *src, size_t k, size_t ks, unsigned char *d, float *sx)
{
    float inv;
    gtr_q8_scale(gtr_avx512_absmax(src, k), sx, &inv);
    const __m512 vinv = _mm512_set1_ps(inv);
    for (size_t s = 0; s < ks; s++, d += 1024) {
        __m512i q[4];
        for (int j = 0; j < 4; j++) {
            size_t cc = 64 * s + 16 * (size_t)j;
            /* lanes past k load 0: code 128 */
            q[j] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m16(k > cc ? k - cc : 0), src + cc), vinv));
        }
        _mm512_store_si512(d, gtr_avx512_q8_narrow64(q[0], q[1], q[2], q[3]));
    }
}

/* Prepare rows [i0, i1) of a block of m rows (x at its row 0) into a; past m, up to a
 * multiple of 16: zero rows (scale 0) */
static void prep_rows(int is_int8, const float *x, size_t ldx, size_t m, size_t k, size_t ks, size_t i0,
                      size_t i1, unsigned char *a, float *sx)
{
    for (size_t i = i0; i < i1; i++) {
        unsigned char *d = a_at(a, ks, i, 0);
        if (i < m) {
            if (is_int8) int8_row(x + i * ldx, k, ks, d, sx + i);
            else bf16_row(x + i * ldx, k, ks, d);
        } else {
            if (is_int8) sx[i] = 0;
            for (size_t s = 0; s < ks; s++)
                _mm512_store_si512(d + s * 1024, is_int8 ? _mm512_set1_epi8((char)128) : _mm512_setzero_si512());
        }
    }
}

/* A finished 32 × 32 block waiting for its epilogue: accumulator tiles (16 × 16 each,
 * [row block][column block], 1 KB apart) for rows [0, mr) and columns c0 + [0, 32) of a panel
 * of ncols columns at c; int8 (cs != NULL): (acc - 128·Σqw) · (sx · sw), then + C (accum),
 * then ReLU. */
typedef struct {
    const unsigned char *acc;
    int mr;
    size_t c0, ncols;
    float *c;
    const float *sx, *sw;
    const int32_t *cs;
} pending;

static void epilogue(const pending *e, size_t ldc, int accum, int relu)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int jb = 0; jb < 2; jb++) {
        size_t col = e->c0 + 16 * (size_t)jb;
        if (col >= e->ncols) break;
        __mmask16 m = m16(e->ncols - col);
        __m512i comp = _mm512_setzero_si512();
        __m512 swv = zero;
        if (e->cs) {
            comp = _mm512_slli_epi32(_mm512_loadu_si512(e->cs + col), 7);
            swv = _mm512_loadu_ps(e->sw + col);
        }
        for (int i = 0; i < e->mr; i++) {
            const unsigned char *row = e->acc + ((size_t)(i / 16) * 2 + (size_t)jb) * 1024 + (size_t)(i % 16) * 64;
            __m512 v;
            if (e->cs) {
                __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(row), comp));
                v = _mm512_mul_ps(f, _mm512_mul_ps(_mm512_set1_ps(e->sx[i]), swv));
            } else {
                v = _mm512_load_ps((const float *)(const void *)row);
            }
            float *p = e->c + (size_t)i * ldc + col;
            if (accum) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v);
            if (relu) v = _mm512_max_ps(zero, v);
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

/* The A (tmm4, tmm5: the second row block ab bytes further) and B (tmm6, tmm7) tiles of one
 * k step: rows past a block of 16 are loaded too (they lie in the scratch), not used. */
static void load_step(const unsigned char *a, size_t ab, const unsigned char *b)
{
    _tile_loadd(4, a, 64);
    _tile_loadd(6, b, BSTRIDE);
    _tile_loadd(7, b + 64, BSTRIDE);
    _tile_loadd(5, a + ab, 64);
}

/* One 32 × 32 (two: else 16 × 32) block over n k steps: accumulators from acc_in (NULL: zero),
 * A tiles at a, B tiles at b, to acc_out. Rotated: the first step's tiles are in tmm4-7 on
 * entry, and the last step loads the next block's first tiles (at na, nb) before the
 * accumulators are stored, so the matrix unit has the next products' operands while the
 * stores wait for the last products (+13% measured in a loop of such blocks). The tile
 * instructions take register numbers as constants, hence the macro. */
#define AMX_BLOCK(DP)                                                                          \
    do {                                                                                       \
        if (acc_in) {                                                                          \
            _tile_loadd(0, acc_in, 64);                                                        \
            _tile_loadd(1, acc_in + 1024, 64);                                                 \
            if (two) {                                                                         \
                _tile_loadd(2, acc_in + 2048, 64);                                             \
                _tile_loadd(3, acc_in + 3072, 64);                                             \
            }                                                                                  \
        } else {                                                                               \
            _tile_zero(0);                                                                     \
            _tile_zero(1);                                                                     \
            if (two) {                                                                         \
                _tile_zero(2);                                                                 \
                _tile_zero(3);                                                                 \
            }                                                                                  \
        }                                                                                      \
        for (size_t kk = 1; kk <= n; kk++) {                                                   \
            DP(0, 4, 6);                                                                       \
            DP(1, 4, 7);                                                                       \
            if (two) {                                                                         \
                DP(2, 5, 6);                                                                   \
                DP(3, 5, 7);                                                                   \
            }                                                                                  \
            const unsigned char *ak = kk < n ? a + kk * 1024 : na;                             \
            const unsigned char *bk = kk < n ? b + kk * 16 * BSTRIDE : nb;                     \
            _tile_loadd(4, ak, 64);                                                            \
            _tile_loadd(6, bk, BSTRIDE);                                                       \
            _tile_loadd(7, bk + 64, BSTRIDE);                                                  \
            _tile_loadd(5, ak + ab, 64);                                                       \
        }                                                                                      \
        _tile_stored(0, acc_out, 64);                                                          \
        _tile_stored(1, acc_out + 1024, 64);                                                   \
        if (two) {                                                                             \
            _tile_stored(2, acc_out + 2048, 64);                                               \
            _tile_stored(3, acc_out + 3072, 64);                                               \
        }                                                                                      \
    } while (0)

static void block_bf16(int two, const unsigned char *a, size_t ab, const unsigned char *b, size_t n,
                       const unsigned char *acc_in, unsigned char *acc_out, const unsigned char *na,
                       const unsigned char *nb)
{
    AMX_BLOCK(_tile_dpbf16ps);
}

static void block_int8(int two, const unsigned char *a, size_t ab, const unsigned char *b, size_t n,
                       const unsigned char *acc_in, unsigned char *acc_out, const unsigned char *na,
                       const unsigned char *nb)
{
    AMX_BLOCK(_tile_dpbusd);
}

/* A task: rows [0, m) of x × panels [p0, p1), all of K, in blocks of up to AMX_MB rows:
 * prepare the block's A tiles, then for each panel, k block and half panel run every 32-row
 * block over the B block (which stays in L1), the accumulators resting in the scratch between
 * k blocks; after the last, the epilogue. */
INLINE void drive(int is_int8, const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y, size_t ldy,
                  size_t p0, size_t p1, unsigned flags, void *ws)
{
    const size_t k = w->k, ks = w->kp / (is_int8 ? 64 : 32), ab = ks * 1024, esize = is_int8 ? 1 : 2;
    const int accum = (flags & GTR_LINEAR_ACCUM) != 0, relu = (flags & GTR_LINEAR_RELU) != 0;
    unsigned char *a = ws;
    unsigned char *accs = a + a_bytes(w->kp, esize), *epi = accs + (size_t)AMX_MB / 32 * 2 * 4096;
    float *sx = (float *)(void *)(epi + 4096);
    const size_t pstride = (w->kp / (is_int8 ? 4 : 2)) * BSTRIDE;
    const unsigned char *wdata = w->data;
    /* rows prepared at once: fewer where K is long, so that they stay in L2 beside the weights */
    size_t mbk = AMX_MB;
    while (mbk > 32 && mbk * w->kp * esize > (size_t)AMX_ACAP) mbk /= 2;
    config();
    for (size_t i0 = 0; i0 < m; i0 += mbk) {
        const size_t mb = GTR_MIN(mbk, m - i0);
        prep_rows(is_int8, x + i0 * ldx, ldx, mb, k, ks, 0, (mb + 15) / 16 * 16, a, sx);
        load_step(a, ab, wdata + p0 * pstride);
        for (size_t p = p0; p < p1; p++) {
            const size_t ncols = GTR_MIN(NR, w->n - p * NR), nh = ncols > 32 ? 2 : 1;
            const unsigned char *panel = wdata + p * pstride;
            float *c = y + i0 * ldy + p * NR;
            for (size_t k0 = 0; k0 < ks; k0 += AMX_KB) {
                const size_t n = GTR_MIN((size_t)AMX_KB, ks - k0);
                const int first = k0 == 0, last = k0 + n == ks;
                for (size_t h = 0; h < nh; h++) {
                    const unsigned char *b = panel + k0 * 16 * BSTRIDE + h * 128;
                    for (size_t r = 0; r < mb; r += 32) {
                        unsigned char *acc = accs + (r / 32 * 2 + h) * 4096;
                        unsigned char *out = last ? epi : acc;
                        const unsigned char *ar = a + r / 16 * ab + k0 * 1024;
                        const int two = mb - r > 16;
                        /* the next block's first tiles: next row block, half, k block or
                         * panel (none after the last: these again, unused) */
                        const unsigned char *na = a + k0 * 1024, *nb = b;
                        if (r + 32 < mb) na = ar + 2 * ab;
                        else if (h + 1 < nh) nb = b + 128;
                        else if (!last) na += n * 1024, nb = panel + (k0 + n) * 16 * BSTRIDE;
                        else if (p + 1 < p1) na = a, nb = panel + pstride;
                        if (is_int8) block_int8(two, ar, ab, b, n, first ? NULL : acc, out, na, nb);
                        else block_bf16(two, ar, ab, b, n, first ? NULL : acc, out, na, nb);
                        if (last) {
                            pending e = {out, (int)GTR_MIN(32, mb - r), 32 * h, ncols, c + r * ldy,
                                         is_int8 ? sx + r : NULL, is_int8 ? w->scales + p * NR : NULL,
                                         is_int8 ? w->colsum + p * NR : NULL};
                            epilogue(&e, ldy, accum, relu);
                        }
                    }
                }
            }
        }
    }
    _tile_release();
}

static void bf16_drive(const gtr_linear_ukr *u, const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                       size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)u;
    drive(0, w, x, m, ldx, y, ldy, p0, p1, flags, ws);
}

static void int8_drive(const gtr_linear_ukr *u, const gtr_wmat *w, const float *x, size_t m, size_t ldx, float *y,
                       size_t ldy, size_t p0, size_t p1, unsigned flags, void *ws)
{
    (void)u;
    drive(1, w, x, m, ldx, y, ldy, p0, p1, flags, ws);
}

const gtr_linear_ukr gtr_amx_linear_bf16 = {.mr = 32, .mc = AMX_MC, .kc = 0, .ws = bf16_ws, .drive = bf16_drive};
const gtr_linear_ukr gtr_amx_linear_int8 = {.mr = 32, .mc = AMX_MC, .kc = 0, .ws = int8_ws, .drive = int8_drive};
