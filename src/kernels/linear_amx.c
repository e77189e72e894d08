/* linear_amx.c — bf16 and int8 linear tiles on Intel AMX (TDPBF16PS, TDPBUSD).
 *
 * The weights stay in the AVX-512 panel layout ([kp/g][64][g], g = 2 or 4): 16 consecutive
 * k groups of 16 columns are rows 256 bytes apart, exactly a 16 × 64-byte B tile, so packing
 * only pads k to whole tiles (32 bf16 / 64 int8 values, the table's kalign). Activations
 * are prepared as for AVX-512 (bf16 pairs; u8 codes qx + 128 with the VNNI compensation
 * Σ qw · 128 removed in the epilogue, so int8 results are bit-identical to every other ISA).
 *
 * One tile call covers 32 rows × 64 columns as two halves of 2 × 2 accumulator tiles (tmm0-3)
 * fed by two A tiles (tmm4-5) and two B tiles (tmm6-7); every tile is 16 rows × 64 bytes, so
 * one configuration, loaded once per task, serves both types. Accumulators go through a small
 * buffer to the fused epilogue (residual add, ReLU, int8 scales) with AVX-512. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

#define MR 32
#define NR 64
#define BSTRIDE (NR * 4) /* bytes between k groups in a panel (both types) */

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

static void release(void) { _tile_release(); }

/* A tiles read MR rows even when fewer are left: zero the rows up to the next multiple of MR
 * (the scratch holds GTR_LINEAR_MC rows, a multiple of MR) so they are defined. */
static void pad_rows(gtr_linear_task *t, size_t m, size_t esize, int fill)
{
    size_t m2 = (m + MR - 1) / MR * MR;
    unsigned char *a = (unsigned char *)(uintptr_t)t->a;
    if (m2 > m) memset(a + m * t->lda * esize, fill, (m2 - m) * t->lda * esize);
    config();
}

static void bf16_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    gtr_avx512_bf16_prep(t, x, m, ldx, ws);
    pad_rows(t, m, sizeof(uint16_t), 0);
}

static void int8_prep(gtr_linear_task *t, const float *x, size_t m, size_t ldx, void *ws)
{
    gtr_avx512_int8_prep(t, x, m, ldx, ws);
    pad_rows(t, m, 1, 128);
}

static inline __mmask16 cmask(size_t cols) { return cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1); }

/* Store accumulator tiles (16 × 16 each, [row block][column block]) to C through the
 * epilogue; int8 (cs != NULL): (acc - 128·Σqw) · sx · sw. */
static void epilogue(const void *acc, int mr, size_t c0, size_t ncols, float *c, size_t ldc,
                     const float *sx, const float *sw, const int32_t *cs, int accum, int relu)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int jb = 0; jb < 2; jb++) {
        size_t col = c0 + 16 * (size_t)jb;
        if (col >= ncols) break;
        __mmask16 m = cmask(ncols - col);
        __m512i comp = _mm512_setzero_si512();
        __m512 swv = zero;
        if (cs) {
            comp = _mm512_slli_epi32(_mm512_loadu_si512(cs + col), 7);
            swv = _mm512_loadu_ps(sw + col);
        }
        for (int i = 0; i < mr; i++) {
            const unsigned char *row = (const unsigned char *)acc + ((size_t)(i / 16) * 2 + (size_t)jb) * 1024 + (size_t)(i % 16) * 64;
            __m512 v;
            if (cs) {
                __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(row), comp));
                v = _mm512_mul_ps(f, _mm512_mul_ps(_mm512_set1_ps(sx[i]), swv));
            } else {
                v = _mm512_loadu_ps((const float *)(const void *)row);
            }
            float *p = c + (size_t)i * ldc + col;
            if (accum) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v);
            if (relu) v = _mm512_max_ps(zero, v);
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

/* 32 rows (mr > 16) or 16 rows × one 32-column half of a panel, K groups of 16 in kc16 steps.
 * The tile instructions take register numbers as constants, hence the two copies. */
#define AMX_HALF(DP, a, lda, b, kc16, abytes, acc)                                            \
    do {                                                                                       \
        _tile_zero(0);                                                                         \
        _tile_zero(1);                                                                         \
        if (two) {                                                                             \
            _tile_zero(2);                                                                     \
            _tile_zero(3);                                                                     \
        }                                                                                      \
        for (size_t kk = 0; kk < (kc16); kk++) {                                               \
            const unsigned char *ak = (a) + kk * 64, *bk = (b) + kk * 16 * BSTRIDE;            \
            _tile_loadd(4, ak, (lda));                                                         \
            _tile_loadd(6, bk, BSTRIDE);                                                       \
            _tile_loadd(7, bk + 64, BSTRIDE);                                                  \
            DP(0, 4, 6);                                                                       \
            DP(1, 4, 7);                                                                       \
            if (two) {                                                                         \
                _tile_loadd(5, ak + 16 * (lda), (lda));                                        \
                DP(2, 5, 6);                                                                   \
                DP(3, 5, 7);                                                                   \
            }                                                                                  \
        }                                                                                      \
        _tile_stored(0, (acc), 64);                                                            \
        _tile_stored(1, (acc) + 1024, 64);                                                     \
        if (two) {                                                                             \
            _tile_stored(2, (acc) + 2048, 64);                                                 \
            _tile_stored(3, (acc) + 3072, 64);                                                 \
        }                                                                                      \
    } while (0)

/* pairs [k0, k0 + kc) of panel p (kc and k0 multiples of 16: kp is a multiple of 32) */
static void bf16_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                      int accum, int relu)
{
    _Alignas(64) unsigned char acc[4096];
    const gtr_wmat *w = t->w;
    const size_t lda = t->lda * 2, ncols = GTR_MIN(NR, w->n - p * NR);
    const unsigned char *a = (const unsigned char *)t->a + i0 * lda + k0 * 4;
    const unsigned char *b = (const unsigned char *)w->data + (p * (w->kp / 2) + k0) * BSTRIDE;
    const int two = mr > 16;
    float *c = t->y + i0 * t->ldy + p * NR;
    for (size_t h = 0; h < 2 && 32 * h < ncols; h++) {
        AMX_HALF(_tile_dpbf16ps, a, lda, b + h * 128, kc / 16, 64, acc);
        epilogue(acc, mr, 32 * h, ncols, c, t->ldy, NULL, NULL, NULL, accum, relu);
    }
}

/* all of K (kc = kp / 4 quads, a multiple of 16) of panel p */
static void int8_tile(const gtr_linear_task *t, int mr, size_t i0, size_t p, size_t k0, size_t kc,
                      int accum, int relu)
{
    (void)k0;
    _Alignas(64) unsigned char acc[4096];
    const gtr_wmat *w = t->w;
    const size_t lda = t->lda, ncols = GTR_MIN(NR, w->n - p * NR);
    const unsigned char *a = (const unsigned char *)t->a + i0 * lda;
    const unsigned char *b = (const unsigned char *)w->data + p * w->kp * NR;
    const int two = mr > 16;
    float *c = t->y + i0 * t->ldy + p * NR;
    for (size_t h = 0; h < 2 && 32 * h < ncols; h++) {
        AMX_HALF(_tile_dpbusd, a, lda, b + h * 128, kc / 16, 64, acc);
        epilogue(acc, mr, 32 * h, ncols, c, t->ldy, t->sx + i0, w->scales + p * NR,
                 w->colsum + p * NR, accum, relu);
    }
}

const gtr_linear_ukr gtr_amx_linear_bf16 = {.mr = MR,
                                            .kc = 0,
                                            .ws = gtr_avx512_bf16_ws,
                                            .prep = bf16_prep,
                                            .done = release,
                                            .tile = bf16_tile};
const gtr_linear_ukr gtr_amx_linear_int8 = {.mr = MR,
                                            .kc = 0,
                                            .ws = gtr_avx512_int8_ws,
                                            .prep = int8_prep,
                                            .done = release,
                                            .tile = int8_tile};
