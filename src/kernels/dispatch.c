/* dispatch.c — the kernel tables and their run-time selection from CPUID, and the thin public
 * wrappers of the single-threaded primitives. */
#include "kernels/kernels_internal.h"

#include <string.h>

const gtr_kernels gtr_kernels_generic_table = {
    .name = "generic",
    .nr = {16, 16, 16},
    .linear = {&gtr_generic_linear_f32, &gtr_generic_linear_bf16, &gtr_generic_linear_int8},
    .sgemm = NULL,
    .rmsnorm = gtr_generic_rmsnorm,
    .softmax = gtr_generic_softmax,
    .add_softmax = gtr_generic_add_softmax,
    .gelu_mul = gtr_generic_gelu_mul,
    .dot = gtr_generic_dot,
    .transpose = gtr_generic_transpose,
};

#if defined(__x86_64__)
const gtr_kernels gtr_kernels_avx2_table = {
    .name = "avx2",
    .need_avx2 = true,
    .nr = {16, 16, 16},
    .linear = {&gtr_avx2_linear_f32, &gtr_avx2_linear_bf16w, &gtr_avx2_linear_int8},
    .sgemm = &gtr_avx2_sgemm,
    .rmsnorm = gtr_avx2_rmsnorm,
    .softmax = gtr_avx2_softmax,
    .add_softmax = gtr_avx2_add_softmax,
    .gelu_mul = gtr_avx2_gelu_mul,
    .dot = gtr_avx2_dot,
    .transpose = gtr_generic_transpose,
};

/* AVX-512 float32 everywhere; the low-precision paths use what the CPU has. bf16 runs on
 * float32 FMAs (bf16w) unless vdpbf16ps is faster than they are, so that --dtype bf16 is
 * never slower than f32 (and int8, on vpdpbusd or AMX, never slower than bf16).
 * sgemm: every table transposes (sgemm_nt's blocks, attention's Kᵀ) with 16x16 tiles kept in
 * registers (gtr_avx512_transpose) and runs the tiles with k unrolled by four on the transposed
 * blocks (ukr_u4, gemm_avx512.c): S = Q·Kᵀ faster on the Xeon of issue 19 and on Zen 5 (1
 * thread, median 80-88% of the FMA peak -> 87-92%, bench/RESULTS.md). avx512+bf16+vnni is
 * chosen only where vdpbf16ps is fast, i.e. on AMD (cpu.c), and its sgemm_nn reads B in
 * place (gtr_avx512_sgemm); the others run on Intel CPUs, where sgemm_nn copies B's blocks
 * first (gtr_avx512_sgemm_copy_b, gemm.c: V's rows a page apart missed the L1 TLB there; on
 * Zen 5 the copy gained nothing on 1 thread and lost a few percent on 2). All give the same
 * bits. */
#define AVX512_COMMON                                                                         \
    .need_avx2 = true, .need_avx512 = true,                                                   \
    .rmsnorm = gtr_avx512_rmsnorm, .softmax = gtr_avx512_softmax,                             \
    .add_softmax = gtr_avx512_add_softmax, .gelu_mul = gtr_avx512_gelu_mul,                   \
    .dot = gtr_avx512_dot

const gtr_kernels gtr_kernels_avx512_table = {
    .name = "avx512",
    AVX512_COMMON,
    .sgemm = &gtr_avx512_sgemm_copy_b,
    .transpose = gtr_avx512_transpose,
    .nr = {64, 64, 16},
    .linear = {&gtr_avx512_linear_f32, &gtr_avx512_linear_bf16w, &gtr_avx2_linear_int8},
};

const gtr_kernels gtr_kernels_avx512_vnni_table = {
    .name = "avx512+vnni",
    AVX512_COMMON,
    .sgemm = &gtr_avx512_sgemm_copy_b,
    .transpose = gtr_avx512_transpose,
    .need_vnni = true,
    .nr = {64, 64, 64},
    .linear = {&gtr_avx512_linear_f32, &gtr_avx512_linear_bf16w, &gtr_avx512_linear_int8},
};

const gtr_kernels gtr_kernels_avx512_bf16_table = {
    .name = "avx512+bf16+vnni",
    AVX512_COMMON,
    .sgemm = &gtr_avx512_sgemm,
    .transpose = gtr_avx512_transpose,
    .need_vnni = true,
    .need_bf16 = true,
    .select_needs_fast_dpbf16 = true, /* else avx512+vnni (bf16 on FMAs) is faster */
    .nr = {64, 64, 64},
    .linear = {&gtr_avx512_linear_f32, &gtr_avx512_linear_bf16, &gtr_avx512_linear_int8},
};

static const gtr_bf16mm amx_bf16mm = {gtr_amx_bf16_packed_bytes, gtr_amx_bf16_gemm_ws,
                                      gtr_amx_bf16_pack_bt, gtr_amx_bf16_pack_b, gtr_amx_bf16_gemm};

/* AMX tiles for bf16 and int8 (same panels as avx512+bf16+vnni, k padded to whole tiles), and
 * attention's products in bf16 for the models that compute in bf16 or int8 */
const gtr_kernels gtr_kernels_amx_table = {
    .bf16mm = &amx_bf16mm,
    .name = "avx512+amx",
    AVX512_COMMON,
    .sgemm = &gtr_avx512_sgemm_copy_b,
    .transpose = gtr_avx512_transpose,
    .need_vnni = true,
    .need_bf16 = true,
    .need_amx = true,
    .nr = {64, 64, 64},
    .kalign = {0, 32, 64},
    .linear = {&gtr_avx512_linear_f32, &gtr_amx_linear_bf16, &gtr_amx_linear_int8},
};

/* best first */
static const gtr_kernels *const all_tables[] = {
    &gtr_kernels_amx_table, &gtr_kernels_avx512_bf16_table, &gtr_kernels_avx512_vnni_table, &gtr_kernels_avx512_table,
    &gtr_kernels_avx2_table, &gtr_kernels_generic_table,
};
#else
static const gtr_kernels *const all_tables[] = {&gtr_kernels_generic_table};
#endif
#define N_TABLES (sizeof all_tables / sizeof all_tables[0])

static bool runs_here(const gtr_kernels *k, const gtr_cpu *c)
{
    if (k->need_avx2 && !(c->avx2 && c->fma)) return false;
    if (k->need_avx512 && !(c->avx512f && c->avx512bw && c->avx512dq && c->avx512vl)) return false;
    if (k->need_bf16 && !c->avx512_bf16) return false;
    if (k->need_vnni && !c->avx512_vnni) return false;
    if (k->need_amx && !c->amx) return false;
    return true;
}

const gtr_kernels *gtr_kernels_generic(void) { return &gtr_kernels_generic_table; }

const gtr_kernels *gtr_kernels_select(void)
{
    gtr_cpu c = gtr_cpu_detect(); /* honours GTR_CPU */
    for (size_t i = 0; i < N_TABLES; i++)
        if (runs_here(all_tables[i], &c) && (!all_tables[i]->select_needs_fast_dpbf16 || c.dpbf16_fast))
            return all_tables[i];
    return &gtr_kernels_generic_table;
}

const gtr_kernels *gtr_kernels_at(size_t i)
{
    gtr_cpu c = gtr_cpu_detect();
    /* generic first, then the others from the simplest up */
    for (size_t t = N_TABLES; t-- > 0;)
        if (runs_here(all_tables[t], &c) && i-- == 0) return all_tables[t];
    return NULL;
}

const gtr_kernels *gtr_kernels_by_name(const char *name)
{
    const gtr_kernels *k;
    for (size_t i = 0; (k = gtr_kernels_at(i)) != NULL; i++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

const char *gtr_kernels_name(const gtr_kernels *k) { return k->name; }

const gtr_bf16mm *gtr_kernels_bf16mm(const gtr_kernels *k) { return k->bf16mm; }

void gtr_sgemm_nt(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (!M || !N) return;
    if (k->sgemm)
        gtr_sgemm_drive_nt(k->sgemm, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        gtr_generic_sgemm_nt(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_sgemm_nn(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (!M || !N) return;
    if (k->sgemm)
        gtr_sgemm_drive_nn(k->sgemm, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        gtr_generic_sgemm_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_sgemm_tn(const gtr_kernels *k, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (!M || !N) return;
    if (k->sgemm)
        gtr_sgemm_drive_tn(k->sgemm, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        gtr_generic_sgemm_tn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gtr_rmsnorm(const gtr_kernels *k, const float *x, const float *w, float eps, size_t n, float *y)
{
    k->rmsnorm(x, w, eps, n, y);
}

void gtr_softmax(const gtr_kernels *k, float *x, size_t n) { k->softmax(x, n); }

void gtr_add_softmax(const gtr_kernels *k, float *x, const float *bias, size_t n)
{
    k->add_softmax(x, bias, n);
}

void gtr_gelu_mul(const gtr_kernels *k, float *x, const float *g, size_t n) { k->gelu_mul(x, g, n); }

float gtr_dot(const gtr_kernels *k, const float *a, const float *b, size_t n) { return k->dot(a, b, n); }

void gtr_transpose(const gtr_kernels *k, const float *src, size_t lds, size_t rows, size_t cols,
                   float *dst, size_t ldd)
{
    k->transpose(src, lds, rows, cols, dst, ldd);
}
