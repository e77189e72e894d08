/* attn_amx.c — attention's products (S = Q·Kᵀ, O = P·V) in bf16 on Intel AMX, for models
 * whose linear layers already run in bf16 or int8 (the float32 model keeps float32 attention).
 *
 * Operands are rounded to bf16 as every bf16 path rounds (RNE, float32 denormals flushed),
 * products are exact and summed in float32 by TDPBF16PS. The right operand is packed once per
 * (text, head) in the B-tile layout — k pairs × columns, [Kp/2][Np] 32-bit words holding
 * (k = 2q, 2q + 1), Kp a multiple of 32, Np of 16, zero padded — and serves every query block:
 *   Kᵀ: each key row of d_kv values converts to d_kv/2 pair words, then a 32-bit transpose
 *       puts keys along the columns (gtr_avx512_transpose, in registers, copies bits exactly);
 *   V:  rows 2q and 2q + 1 interleave into the pair words of row q.
 * The left operand (a query block or a block of probabilities) is converted 16 rows at a time
 * into a small buffer; one call computes 16 rows × up to 64 columns per pass with four
 * accumulator tiles (tmm0-3), one A tile (tmm4) and B tiles in tmm5-7. */
#include "kernels/kernels_internal.h"

#include <immintrin.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static inline size_t up(size_t v, size_t a) { return (v + a - 1) / a * a; }

size_t gtr_amx_bf16_packed_bytes(size_t K, size_t N) { return up(K, 32) / 2 * up(N, 16) * 4; }
size_t gtr_amx_bf16_gemm_ws(size_t K) { return 16 * up(K, 32) * 2; }

static inline __m512 daz(__m512 x)
{
    __m512i xi = _mm512_castps_si512(x);
    __mmask16 normal = _mm512_test_epi32_mask(xi, _mm512_set1_epi32(0x7f800000));
    return _mm512_castsi512_ps(
        _mm512_mask_blend_epi32(normal, _mm512_and_si512(xi, _mm512_set1_epi32((int)0x80000000u)), xi));
}

static inline __mmask16 m16(size_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* n float32 values -> bf16 values at dst (pairs of consecutive values form 32-bit words),
 * zero padded up to np (a multiple of 32) */
static void row_bf16(const float *src, size_t n, size_t np, uint16_t *dst)
{
    for (size_t c = 0; c < np; c += 32) {
        size_t r0 = n > c ? n - c : 0, r1 = n > c + 16 ? n - c - 16 : 0;
        __m512 lo = daz(_mm512_maskz_loadu_ps(m16(r0), src + c));
        __m512 hi = daz(_mm512_maskz_loadu_ps(m16(r1), src + c + 16));
        _mm512_storeu_si512(dst + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/* Bᵀ given as rows: B[k][n] = Bt[n * ldt + k] for k < K, n < N (Kᵀ from the key rows);
 * tmp holds N × Kp/2 words */
void gtr_amx_bf16_pack_bt(const float *Bt, size_t ldt, size_t K, size_t N, void *dst, void *tmp)
{
    const size_t kp = up(K, 32), np = up(N, 16);
    uint16_t *t = tmp;
    for (size_t n = 0; n < N; n++) row_bf16(Bt + n * ldt, K, kp, t + n * kp);
    /* [N][kp/2] words -> [kp/2][np] words; padding columns zero */
    gtr_avx512_transpose((const float *)tmp, kp / 2, N, kp / 2, (float *)dst, np);
    uint32_t *d = dst;
    for (size_t q = 0; q < kp / 2; q++)
        for (size_t n = N; n < np; n++) d[q * np + n] = 0;
}

/* B[k][n] = B[k * ldb + n] (V) */
void gtr_amx_bf16_pack_b(const float *B, size_t ldb, size_t K, size_t N, void *dst)
{
    const size_t kp = up(K, 32), np = up(N, 16);
    uint32_t *d = dst;
    const __m512 zero = _mm512_setzero_ps();
    for (size_t q = 0; q < kp / 2; q++) {
        const float *r0 = B + 2 * q * ldb, *r1 = r0 + ldb;
        bool h0 = 2 * q < K, h1 = 2 * q + 1 < K;
        for (size_t c = 0; c < np; c += 16) {
            __mmask16 m = m16(N > c ? N - c : 0);
            __m512 a = h0 ? daz(_mm512_maskz_loadu_ps(m, r0 + c)) : zero;
            __m512 b = h1 ? daz(_mm512_maskz_loadu_ps(m, r1 + c)) : zero;
            __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
            __m512i hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b)), 16);
            _mm512_storeu_si512(d + q * np + c, _mm512_or_si512(lo, hi));
        }
    }
}

#define DP(acc, b) _tile_dpbf16ps(acc, 4, b)

/* C[M, N] = A[M, K] · B (packed); ws: gtr_amx_bf16_gemm_ws(K) bytes, 64-byte aligned */
void gtr_amx_bf16_gemm(size_t M, size_t N, size_t K, const float *A, size_t lda, const void *Bp,
                       float *C, size_t ldc, void *ws)
{
    const size_t kp = up(K, 32), np = up(N, 16), bstride = np * 4;
    _Alignas(64) tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg)); /* see linear_amx.c */
    _Alignas(64) float acc[4][16][16];
    uint16_t *a = ws;
    const unsigned char *b = Bp;
    for (size_t r0 = 0; r0 < M; r0 += 16) {
        size_t rows = GTR_MIN(16, M - r0);
        for (size_t i = 0; i < 16; i++) {
            if (i < rows) row_bf16(A + (r0 + i) * lda, K, kp, a + i * kp);
            else memset(a + i * kp, 0, kp * 2);
        }
        for (size_t c0 = 0; c0 < N; c0 += 64) {
            const int nb = (int)GTR_MIN(4, (N - c0 + 15) / 16);
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (size_t kk = 0; kk < kp / 32; kk++) {
                const unsigned char *bk = b + kk * 16 * bstride + c0 * 4;
                _tile_loadd(4, a + kk * 32, kp * 2);
                _tile_loadd(5, bk, bstride);
                DP(0, 5);
                if (nb > 1) {
                    _tile_loadd(6, bk + 64, bstride);
                    DP(1, 6);
                }
                if (nb > 2) {
                    _tile_loadd(7, bk + 128, bstride);
                    DP(2, 7);
                }
                if (nb > 3) {
                    _tile_loadd(5, bk + 192, bstride);
                    DP(3, 5);
                }
            }
            /* whole 16 × 16 blocks straight to C, ragged ones through acc */
            for (int j = 0; j < nb; j++) {
                size_t col = c0 + 16 * (size_t)j, cols = GTR_MIN(16, N - col);
                float *cp = C + r0 * ldc + col;
                bool whole = rows == 16 && cols == 16;
                void *dst = whole ? (void *)cp : (void *)acc[j];
                size_t st = whole ? ldc * 4 : 64;
                switch (j) {
                case 0: _tile_stored(0, dst, st); break;
                case 1: _tile_stored(1, dst, st); break;
                case 2: _tile_stored(2, dst, st); break;
                default: _tile_stored(3, dst, st); break;
                }
                if (!whole)
                    for (size_t i = 0; i < rows; i++)
                        _mm512_mask_storeu_ps(cp + i * ldc, m16(cols), _mm512_load_ps(acc[j][i]));
            }
        }
    }
    _tile_release();
}
