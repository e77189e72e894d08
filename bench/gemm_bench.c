/* gemm_bench.c — measured peak of this CPU and GEMM throughput of gtr's kernels.
 *
 *   gemm_bench [--tokens M] [--reps R] [--threads-max T] [--only f32|bf16|int8]
 *              [--accuracy-only | --peak-json]
 *
 * --only TYPE: the peak of that type's instruction family and gtr_linear of that type alone
 * (no attention GEMMs, no accuracy table): a short run for before/after comparisons.
 *
 * Peak: each "peak" loop runs 24 independent accumulator chains of one instruction (so
 * latency never limits, only issue throughput) for a fixed number of iterations on every
 * thread of a pool at once, best of several runs: vfmadd231ps zmm (fp32, 32 flop per
 * instruction), vfmadd231ps ymm (AVX2), vdpbf16ps zmm (64 flop), vpdpbusd zmm (128 int ops);
 * with AMX, tdpbf16ps (16×16 fp32 += 16×32 · 32×16 bf16: 16,384 flop) and tdpbusd (16×16 int32
 * += 16×64 · 64×16 int8: 32,768 ops) on 6 independent accumulator tiles.
 * GEMM: gtr_linear on the gtr-t5-base shapes (M tokens × N outputs × K inputs), best of R
 * timed runs after a warm-up, flop = 2·M·N·K; the fraction is of the peak of the same
 * instruction family on the same number of threads. Prints Markdown tables. */
#include "kernels/kernels_internal.h"
#include "bench_rng.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPEAT10(s) s s s s s s s s s s
#define CHAINS(op, r)                                                                         \
    op " %%" r "0, %%" r "1, %%" r "2\n\t" op " %%" r "0, %%" r "1, %%" r "3\n\t"             \
    op " %%" r "0, %%" r "1, %%" r "4\n\t" op " %%" r "0, %%" r "1, %%" r "5\n\t"             \
    op " %%" r "0, %%" r "1, %%" r "6\n\t" op " %%" r "0, %%" r "1, %%" r "7\n\t"             \
    op " %%" r "0, %%" r "1, %%" r "8\n\t" op " %%" r "0, %%" r "1, %%" r "9\n\t"             \
    op " %%" r "0, %%" r "1, %%" r "10\n\t" op " %%" r "0, %%" r "1, %%" r "11\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "12\n\t" op " %%" r "0, %%" r "1, %%" r "13\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "14\n\t" op " %%" r "0, %%" r "1, %%" r "15\n\t"
#define CHAINS_HI(op, r)                                                                      \
    op " %%" r "0, %%" r "1, %%" r "16\n\t" op " %%" r "0, %%" r "1, %%" r "17\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "18\n\t" op " %%" r "0, %%" r "1, %%" r "19\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "20\n\t" op " %%" r "0, %%" r "1, %%" r "21\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "22\n\t" op " %%" r "0, %%" r "1, %%" r "23\n\t"           \
    op " %%" r "0, %%" r "1, %%" r "24\n\t" op " %%" r "0, %%" r "1, %%" r "25\n\t"
#define CLOBBER_LO "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                   "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define CLOBBER_HI "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
                   "xmm24", "xmm25"

#define ITERS 400000L /* × 240 instructions per loop body */

__attribute__((target("avx512f"))) static void loop_fma512(long n)
{
    for (long i = 0; i < n; i++)
        __asm__ volatile(REPEAT10(CHAINS("vfmadd231ps", "zmm") CHAINS_HI("vfmadd231ps", "zmm"))
                         ::: CLOBBER_LO, CLOBBER_HI);
}
__attribute__((target("avx2,fma"))) static void loop_fma256(long n)
{
    /* 14 chains fit in 16 ymm registers: still ≥ latency × throughput on current cores */
    for (long i = 0; i < n; i++)
        __asm__ volatile(REPEAT10(CHAINS("vfmadd231ps", "ymm") CHAINS("vfmadd231ps", "ymm")) ::: CLOBBER_LO);
}
__attribute__((target("avx512f,avx512bf16"))) static void loop_bf16(long n)
{
    for (long i = 0; i < n; i++)
        __asm__ volatile(REPEAT10(CHAINS("vdpbf16ps", "zmm") CHAINS_HI("vdpbf16ps", "zmm"))
                         ::: CLOBBER_LO, CLOBBER_HI);
}
__attribute__((target("avx512f,avx512vnni"))) static void loop_vnni(long n)
{
    for (long i = 0; i < n; i++)
        __asm__ volatile(REPEAT10(CHAINS("vpdpbusd", "zmm") CHAINS_HI("vpdpbusd", "zmm"))
                         ::: CLOBBER_LO, CLOBBER_HI);
}

/* AMX: tmm0-5 accumulate tmm6 · tmm7, six chains (the tile product's latency is a few times
 * its issue interval, so six never wait on each other). Each thread configures its own tiles. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;
#define AMX_ITERS (ITERS / 8) /* × 60 tile products per loop body (≈ the FMA loop's cycles) */
#define AMX6(op)                                                                              \
    op " %%tmm7, %%tmm6, %%tmm0\n\t" op " %%tmm7, %%tmm6, %%tmm1\n\t" op                     \
       " %%tmm7, %%tmm6, %%tmm2\n\t" op " %%tmm7, %%tmm6, %%tmm3\n\t" op                     \
       " %%tmm7, %%tmm6, %%tmm4\n\t" op " %%tmm7, %%tmm6, %%tmm5\n\t"
static void amx_begin(void)
{
    _Alignas(64) amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) c.colsb[i] = 64, c.rows[i] = 16;
    __asm__ volatile("ldtilecfg %0\n\t"
                     "tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"
                     "tilezero %%tmm4\n\ttilezero %%tmm5\n\ttilezero %%tmm6\n\ttilezero %%tmm7"
                     : : "m"(c));
}
static void loop_amx_bf16(long n)
{
    (void)n;
    amx_begin();
    for (long i = 0; i < AMX_ITERS; i++) __asm__ volatile(REPEAT10(AMX6("tdpbf16ps")) ::: "memory");
    __asm__ volatile("tilerelease");
}
static void loop_amx_int8(long n)
{
    (void)n;
    amx_begin();
    for (long i = 0; i < AMX_ITERS; i++) __asm__ volatile(REPEAT10(AMX6("tdpbusd")) ::: "memory");
    __asm__ volatile("tilerelease");
}

static void *peak_thread(void *arg)
{
    ((void (*)(long))arg)(ITERS);
    return NULL;
}

/* ops per second with `threads` threads running the loop at the same time (own pthreads, so
 * none of them can take another's share) */
static double measure_peak(int threads, void (*fn)(long), double ops_per_body)
{
    double best = 0;
    for (int r = 0; r < 5; r++) {
        pthread_t th[64];
        double t = gtr_now_seconds();
        for (int i = 1; i < threads; i++) pthread_create(&th[i], NULL, peak_thread, (void *)fn);
        fn(ITERS);
        for (int i = 1; i < threads; i++) pthread_join(th[i], NULL);
        t = gtr_now_seconds() - t;
        double v = ops_per_body * (double)ITERS * threads / t;
        if (v > best) best = v;
    }
    return best;
}

/* Accuracy of the low-precision paths on the wi shape (K = 768 → N = 3072), 64 rows:
 * activations roughly Gaussian with a few large entries per row (like the inputs of T5's
 * feed-forward), weights Gaussian with the std of T5's init; against a float64 reference. */
static void accuracy(const gtr_kernels *kern, gtr_pool *pool)
{
    const size_t m = 64, n = 3072, k = 768;
    float *x = bench_rand_floats(m * k, 1.0f, 21), *W = bench_rand_floats(n * k, 1.0f, 22), *y = bench_rand_floats(m * n, 0, 23);
    for (size_t i = 0; i < m * k; i++) x[i] = x[i] + x[(i * 7919) % (m * k)] + x[(i * 104729) % (m * k)];
    for (size_t i = 0; i < n * k; i++) W[i] = 0.036f * (W[i] + W[(i * 7919) % (n * k)] + W[(i * 15485863) % (n * k)]);
    for (size_t i = 0; i < m; i++) x[i * k + (i * 131) % k] = 20.0f; /* an outlier per row */
    double *ref = malloc(m * n * sizeof(double));
    if (!ref) return;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t c = 0; c < k; c++) s += (double)x[i * k + c] * W[j * k + c];
            ref[i * n + j] = s;
        }
    printf("\n### Accuracy against a float64 reference (%zu×%zu·%zu, Gaussian-like data, one outlier of 20σ per row)\n\n", m, n, k);
    printf("| dtype | relative error (Frobenius) | max abs error / max |y| | min row cosine |\n|---|---|---|---|\n");
    static const char *tname[3] = {"f32", "bf16", "int8"};
    for (int ty = 0; ty < 3; ty++) {
        gtr_wmat w;
        gtr_error e;
        if (gtr_wmat_pack(kern, &w, W, n, k, (gtr_wtype)ty, &e) != GTR_OK) break;
        gtr_linear(kern, pool, &w, x, m, k, y, n, 0);
        double d2 = 0, r2 = 0, dmax = 0, ymax = 0, mincos = 1;
        for (size_t i = 0; i < m; i++) {
            double dot = 0, a2 = 0, b2 = 0;
            for (size_t j = 0; j < n; j++) {
                double a = ref[i * n + j], b = y[i * n + j];
                d2 += (a - b) * (a - b);
                r2 += a * a;
                dmax = GTR_MAX(dmax, fabs(a - b));
                ymax = GTR_MAX(ymax, fabs(a));
                dot += a * b, a2 += a * a, b2 += b * b;
            }
            mincos = GTR_MIN(mincos, dot / sqrt(a2 * b2));
        }
        printf("| %s | %.2e | %.2e | %.7f |\n", tname[ty], sqrt(d2 / r2), dmax / ymax, mincos);
        gtr_wmat_free(&w);
    }
    free(ref);
    gtr_free_aligned(x), gtr_free_aligned(W), gtr_free_aligned(y);
}

int main(int argc, char **argv)
{
    size_t M = 4096;
    int reps = 3, tmax = 2, only_acc = 0, peak_json = 0, only = -1;
    static const struct option opts[] = {{"tokens", required_argument, 0, 'm'},
                                         {"reps", required_argument, 0, 'r'},
                                         {"threads-max", required_argument, 0, 't'},
                                         {"accuracy-only", no_argument, 0, 'a'},
                                         {"peak-json", no_argument, 0, 'p'},
                                         {"only", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:r:t:apo:h", opts, NULL)) != -1) {
        if (c == 'm') M = (size_t)atol(optarg);
        else if (c == 'o') {
            only = !strcmp(optarg, "f32") ? 0 : !strcmp(optarg, "bf16") ? 1 : !strcmp(optarg, "int8") ? 2 : -2;
            if (only == -2) return 2;
        }
        else if (c == 'p') peak_json = 1;
        else if (c == 'a') only_acc = 1;
        else if (c == 'r') reps = atoi(optarg);
        else if (c == 't') tmax = atoi(optarg);
        else {
            printf("usage: gemm_bench [--tokens M] [--reps R] [--threads-max T] [--only f32|bf16|int8]\n"
                   "                  [--accuracy-only | --peak-json]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (M == 0 || reps < 1 || tmax < 1 || tmax > 64) return 2;
    gtr_cpu cpu = gtr_cpu_detect();
    const gtr_kernels *kern = gtr_kernels_select();
    gtr_pool *pool = gtr_pool_create(tmax, NULL);
    if (!pool) return 1;
    if (!peak_json) {
        printf("cpu: %s, %d cores; kernels: %s\n", gtr_cpu_describe(&cpu), gtr_cpu_cores(), gtr_kernels_name(kern));
        gtr_cpu_caches caches = gtr_cpu_caches_detect();
        gtr_blocking blk = gtr_blocking_for(&caches, 768);
        printf("caches (CPUID): L1d %zu KiB, L2 %zu KiB, L3 %zu KiB; f32 k block %zu\n\n", caches.l1d >> 10,
               caches.l2 >> 10, caches.l3 >> 10, blk.linear_kc);
    }
    if (only_acc) {
        accuracy(kern, pool);
        gtr_pool_free(pool);
        return 0;
    }

    /* ---- peaks ---- */
    /* The reference peak for t threads is t × the best single-core figure: the single-thread
     * loop is repeated so that one quiet moment suffices on a shared machine; the measured
     * t-thread figure is printed beside it. */
    enum { P_FMA, P_BF16, P_VNNI, P_AMX_BF16, P_AMX_INT8, NP };
    typedef void (*loop_fn)(long);
    const loop_fn fn[NP] = {cpu.avx512f ? loop_fma512 : loop_fma256, loop_bf16, loop_vnni,
                            loop_amx_bf16, loop_amx_int8};
    const double per_body[NP] = {cpu.avx512f ? 240.0 * 32 : 280.0 * 16, 240.0 * 64, 240.0 * 128,
                                 60.0 * 16384 / 8, 60.0 * 32768 / 8};
    /* the fraction of each dtype is of the instruction family its kernels use */
    const gtr_linear_ukr *ub = kern->linear[GTR_W_BF16], *ui = kern->linear[GTR_W_INT8];
    const int fam[3] = {P_FMA,
                        ub == &gtr_amx_linear_bf16 ? P_AMX_BF16 : ub == &gtr_avx512_linear_bf16 ? P_BF16 : P_FMA,
                        ui == &gtr_amx_linear_int8 ? P_AMX_INT8 : ui == &gtr_avx512_linear_int8 ? P_VNNI : P_FMA};
    bool have[NP] = {cpu.avx512f || (cpu.avx2 && cpu.fma), cpu.avx512_bf16, cpu.avx512_vnni, cpu.amx,
                     cpu.amx};
    if (only >= 0 && !peak_json)
        for (int i = 0; i < NP; i++) have[i] = have[i] && i == fam[only];
    const char *pname[NP] = {cpu.avx512f ? "vfmadd231ps zmm (fp32 FMA, 32 flop)" : "vfmadd231ps ymm (fp32 FMA, 16 flop)",
                             "vdpbf16ps zmm (bf16 pair dot, 64 flop)", "vpdpbusd zmm (int8 quad dot, 128 op)",
                             "tdpbf16ps (AMX bf16 tile, 16,384 flop)", "tdpbusd (AMX int8 tile, 32,768 op)"};
    double core[NP] = {0}, multi[NP] = {0};
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < NP; i++)
            if (have[i]) core[i] = GTR_MAX(core[i], measure_peak(1, fn[i], per_body[i]));
    for (int i = 0; i < NP; i++)
        if (have[i]) multi[i] = measure_peak(tmax, fn[i], per_body[i]);
    if (peak_json) { /* per-core peaks (G op/s) for bench_encoder.sh's fractions */
        printf("{\"kernels\": \"%s\", \"fma\": %.1f, \"dpbf16\": %.1f, \"vnni\": %.1f, \"amx_bf16\": %.1f, "
               "\"amx_int8\": %.1f}\n", gtr_kernels_name(kern), core[P_FMA] / 1e9, core[P_BF16] / 1e9,
               core[P_VNNI] / 1e9, core[P_AMX_BF16] / 1e9, core[P_AMX_INT8] / 1e9);
        gtr_pool_free(pool);
        return 0;
    }
    double ymm = (cpu.avx2 && cpu.fma && only < 0) ? measure_peak(1, loop_fma256, 280.0 * 16) : 0;
    printf("### Measured peak\n\nIndependent accumulator chains of one instruction in a loop (latency never limits):\n"
           "24 zmm chains, %ld × 240 instructions per run; AMX: 6 accumulator tiles, %ld × 60 tile\n"
           "products per run. Per core: best of 20 single-thread runs; %d threads: best of 5 runs with\n"
           "%d pthreads at once. Without BF16/VNNI the bf16/int8 fractions are given against the fp32\n"
           "peak (int8 on AVX2 multiplies 16-bit pairs, so it can exceed 100%%).\n\n",
           ITERS, AMX_ITERS, tmax, tmax);
    printf("| instruction | G op/s per core | %d threads measured |\n|---|---|---|\n", tmax);
    for (int i = 0; i < NP; i++)
        if (have[i]) printf("| %s | %.1f | %.1f |\n", pname[i], core[i] / 1e9, multi[i] / 1e9);
    if (cpu.avx512f && ymm > 0) printf("| vfmadd231ps ymm (fp32 FMA, 16 flop) | %.1f | |\n", ymm / 1e9);
    double peak[3][65];
    for (int ty = 0; ty < 3; ty++)
        for (int t = 1; t <= tmax; t++) peak[ty][t] = core[fam[ty]] * t;

    /* ---- gtr_linear on the gtr-t5-base shapes ---- */
    static const struct {
        const char *what;
        size_t n, k;
    } sh[] = {{"q/k/v/o  768←768", 768, 768}, {"wi  3072←768", 3072, 768}, {"wo  768←3072", 768, 3072}};
    static const char *tname[3] = {"f32", "bf16", "int8"};
    printf("\n### gtr_linear, M = %zu tokens (best of %d; of peak = of threads × per-core peak of the\n"
           "instruction the kernels use: %s for bf16, %s for int8)\n\n", M, reps, pname[fam[1]], pname[fam[2]]);
    /* the last column: of the peak measured with that many threads at once, which is what a
     * machine whose cores share their FMA units (SMT siblings, a busy host) really offers */
    printf("| shape (N←K) | dtype | threads | ms | GFLOP/s | of peak | of measured %d-thread peak |\n"
           "|---|---|---|---|---|---|---|\n", tmax);
    float *x = bench_rand_floats(M * 3072, 1.0f, 1), *y = bench_rand_floats(M * 3072, 0, 2);
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        float *W = bench_rand_floats(sh[s].n * sh[s].k, 0.05f, 3 + (unsigned)s);
        for (int ty = 0; ty < 3; ty++) {
            if (only >= 0 && ty != only) continue;
            gtr_wmat w;
            gtr_error e;
            if (gtr_wmat_pack(kern, &w, W, sh[s].n, sh[s].k, (gtr_wtype)ty, &e) != GTR_OK) {
                fprintf(stderr, "pack: %s\n", e.message);
                return 1;
            }
            size_t wsb = gtr_linear_ws_size(kern, pool, &w, M);
            void *ws = wsb ? gtr_malloc_aligned(wsb, NULL) : NULL;
            for (int t = 1; t <= tmax; t++) {
                gtr_pool *p = t == 1 ? NULL : pool;
                if (t > 1 && t != tmax) continue; /* 1 and all threads */
                gtr_linear_ws(kern, p, &w, x, M, sh[s].k, y, sh[s].n, 0, ws, wsb); /* warm-up */
                double best = 1e30;
                for (int r = 0; r < reps; r++) {
                    double t0 = gtr_now_seconds();
                    gtr_linear_ws(kern, p, &w, x, M, sh[s].k, y, sh[s].n, 0, ws, wsb);
                    double dt = gtr_now_seconds() - t0;
                    if (dt < best) best = dt;
                }
                double flops = 2.0 * (double)M * (double)sh[s].n * (double)sh[s].k / best;
                double mp = t == 1 ? core[fam[ty]] : multi[fam[ty]];
                printf("| %s | %s | %d | %.2f | %.1f | %.0f%% | %.0f%% |\n", sh[s].what, tname[ty], t,
                       best * 1e3, flops / 1e9, 100.0 * flops / peak[ty][t], 100.0 * flops / mp);
                fflush(stdout);
            }
            gtr_free_aligned(ws);
            gtr_wmat_free(&w);
        }
        gtr_free_aligned(W);
    }

    if (only >= 0) {
        gtr_free_aligned(x), gtr_free_aligned(y);
        gtr_pool_free(pool);
        return 0;
    }
    /* ---- attention-sized GEMMs (one thread: attention runs one head per task) ---- */
    printf("\n### Attention GEMMs, one thread, d_kv = 64 (best of %d)\n\n", reps * 3);
    printf("| op | L | GFLOP/s | of fp32 peak |\n|---|---|---|---|\n");
    for (size_t L = 128; L <= 512; L *= 2) {
        float *q = bench_rand_floats(L * 768, 1.0f, 7), *kk = bench_rand_floats(L * 768, 1.0f, 8),
              *sc = bench_rand_floats(L * L, 0, 9), *o = bench_rand_floats(L * 768, 0, 10);
        for (int op = 0; op < 2; op++) {
            double best = 1e30;
            for (int r = 0; r < reps * 3 + 1; r++) {
                double t0 = gtr_now_seconds();
                if (op == 0) gtr_sgemm_nt(kern, L, L, 64, q, 768, kk, 768, 0, sc, L); /* Q·Kᵀ */
                else gtr_sgemm_nn(kern, L, 64, L, sc, L, kk, 768, 0, o, 768);       /* P·V */
                double dt = gtr_now_seconds() - t0;
                if (r > 0 && dt < best) best = dt;
            }
            double flops = 2.0 * (double)L * (double)L * 64 / best;
            printf("| %s | %zu | %.1f | %.0f%% |\n", op == 0 ? "nt  S = Q·Kᵀ" : "nn  O = P·V", L, flops / 1e9,
                   100.0 * flops / peak[0][1]);
        }
        gtr_free_aligned(q), gtr_free_aligned(kk), gtr_free_aligned(sc), gtr_free_aligned(o);
    }
    gtr_free_aligned(x), gtr_free_aligned(y);
    accuracy(kern, pool);
    gtr_pool_free(pool);
    return 0;
}
