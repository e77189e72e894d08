/* attn_bench.c — attention's float32 products alone, against the measured FMA peak: a short,
 * repeatable measurement for comparing two builds in one quiet minute (bench/quiet.sh).
 *
 *   attn_bench [--rounds R] [--threads T] [--kernels NAME]
 *
 * The products and data are gemm_bench's "Attention GEMMs": d_kv = 64, Q, K and V rows 768
 * floats apart (one head of a 768-wide layer), S = Q·Kᵀ (gtr_sgemm_nt, L × L × 64) and
 * O = P·V (gtr_sgemm_nn, L × 64 × L, P = S). Each figure: R rounds of about 20 ms each, a
 * round timing back-to-back calls; prints the best and the median round. Peak: 24
 * independent vfmadd231ps zmm chains (~1 ms a run), measured before every round of every
 * figure, the best of all of them (so a noisy minute lowers the peak less than the figures).
 * With --threads 2 each thread runs its own head at once (as gtr's attention does, one head per
 * task) and the figure is the sum, against twice the single-core peak. --kernels: a table by
 * name (gtr_kernels_by_name, any that runs here) instead of the one chosen for this CPU, so that
 * one binary compares two tables' products in one quiet call. */
#include "kernels/kernels_internal.h"
#include "bench_rng.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEAK_ITERS 80000L /* ~1 ms */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void loop_fma512(long n)
{
    for (long i = 0; i < n; i++)
        __asm__ volatile(
#define C8(a, b, c, d, e, f, g, h)                                                             \
    "vfmadd231ps %%zmm0, %%zmm1, %%zmm" #a "\n\tvfmadd231ps %%zmm0, %%zmm1, %%zmm" #b "\n\t"   \
    "vfmadd231ps %%zmm0, %%zmm1, %%zmm" #c "\n\tvfmadd231ps %%zmm0, %%zmm1, %%zmm" #d "\n\t"   \
    "vfmadd231ps %%zmm0, %%zmm1, %%zmm" #e "\n\tvfmadd231ps %%zmm0, %%zmm1, %%zmm" #f "\n\t"   \
    "vfmadd231ps %%zmm0, %%zmm1, %%zmm" #g "\n\tvfmadd231ps %%zmm0, %%zmm1, %%zmm" #h "\n\t"
            C8(2, 3, 4, 5, 6, 7, 8, 9) C8(10, 11, 12, 13, 14, 15, 16, 17) C8(18, 19, 20, 21, 22, 23, 24, 25)
            C8(2, 3, 4, 5, 6, 7, 8, 9) C8(10, 11, 12, 13, 14, 15, 16, 17) C8(18, 19, 20, 21, 22, 23, 24, 25)
#undef C8
            ::: "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
            "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
            "xmm22", "xmm23", "xmm24", "xmm25");
}
#endif

static double measure_peak(void)
{
    double best = 0;
#if defined(__x86_64__)
    for (int r = 0; r < 3; r++) {
        double t = gtr_now_seconds();
        loop_fma512(PEAK_ITERS);
        t = gtr_now_seconds() - t;
        best = GTR_MAX(best, 48.0 * 32 * (double)PEAK_ITERS / t);
    }
#endif
    return best;
}

typedef struct {
    const gtr_kernels *kern;
    size_t L;
    int op;       /* 0 nt, 1 nn */
    long calls;   /* per round */
    float *q, *kk, *sc, *o;
    pthread_barrier_t *bar;
    double secs;
} job;

static void run_calls(job *j)
{
    size_t L = j->L;
    for (long c = 0; c < j->calls; c++) {
        if (j->op == 0) gtr_sgemm_nt(j->kern, L, L, 64, j->q, 768, j->kk, 768, 0, j->sc, L);
        else gtr_sgemm_nn(j->kern, L, 64, L, j->sc, L, j->kk, 768, 0, j->o, 768);
    }
}

static void *thread_main(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->bar);
    double t = gtr_now_seconds();
    run_calls(j);
    j->secs = gtr_now_seconds() - t;
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = 9, threads = 1;
    const char *kname = NULL;
    static const struct option opts[] = {{"rounds", required_argument, 0, 'r'},
                                         {"threads", required_argument, 0, 't'},
                                         {"kernels", required_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "r:t:k:h", opts, NULL)) != -1) {
        if (c == 'r') rounds = atoi(optarg);
        else if (c == 't') threads = atoi(optarg);
        else if (c == 'k') kname = optarg;
        else {
            printf("usage: attn_bench [--rounds R] [--threads 1|2] [--kernels NAME]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (rounds < 1 || rounds > 100 || threads < 1 || threads > 2) return 2;
    gtr_cpu cpu = gtr_cpu_detect();
    const gtr_kernels *kern = kname ? gtr_kernels_by_name(kname) : gtr_kernels_select();
    if (!kern) {
        fprintf(stderr, "attn_bench: no kernel table '%s' runs on this CPU\n", kname);
        return 2;
    }
    double peak = 0;
    static double res[3][2][2]; /* [L][op][best, median] */
    for (size_t L = 128; L <= 512; L *= 2) {
        job jobs[2];
        for (int t = 0; t < threads; t++) {
            unsigned s = 16 * (unsigned)t;
            jobs[t] = (job){.kern = kern, .L = L, .q = bench_rand_floats(L * 768, 1.0f, 7 + s),
                            .kk = bench_rand_floats(L * 768, 1.0f, 8 + s), .sc = bench_rand_floats(L * L, 0, 9 + s),
                            .o = bench_rand_floats(L * 768, 0, 10 + s)};
        }
        double flop = 2.0 * (double)L * (double)L * 64;
        for (int op = 0; op < 2; op++) {
            long calls = (long)(0.02 * 190e9 / flop) + 1; /* ~20 ms at 190 GFLOP/s */
            double v[100];
            for (int r = -1; r < rounds; r++) { /* round -1: warm-up */
                if (cpu.avx512f) peak = GTR_MAX(peak, measure_peak());
                pthread_barrier_t bar;
                pthread_barrier_init(&bar, NULL, (unsigned)threads);
                pthread_t th;
                for (int t = 0; t < threads; t++) jobs[t].op = op, jobs[t].calls = calls, jobs[t].bar = &bar;
                if (threads > 1) pthread_create(&th, NULL, thread_main, &jobs[1]);
                thread_main(&jobs[0]);
                if (threads > 1) pthread_join(th, NULL);
                pthread_barrier_destroy(&bar);
                double f = 0;
                for (int t = 0; t < threads; t++) f += flop * (double)calls / jobs[t].secs;
                if (r >= 0) v[r] = f;
            }
            qsort(v, (size_t)rounds, sizeof v[0], cmp_d);
            int li = L == 128 ? 0 : L == 256 ? 1 : 2;
            res[li][op][0] = v[rounds - 1], res[li][op][1] = v[rounds / 2];
        }
        for (int t = 0; t < threads; t++)
            gtr_free_aligned(jobs[t].q), gtr_free_aligned(jobs[t].kk), gtr_free_aligned(jobs[t].sc),
                gtr_free_aligned(jobs[t].o);
    }
    printf("cpu: %s; kernels: %s; threads %d; fp32 FMA peak per core %.1f GFLOP/s\n", gtr_cpu_describe(&cpu),
           gtr_kernels_name(kern), threads, peak / 1e9);
    printf("| op | L | best GFLOP/s | median | best of peak | median of peak |\n|---|---|---|---|---|---|\n");
    double pk = peak * threads;
    for (int li = 0; li < 3; li++)
        for (int op = 0; op < 2; op++)
            printf("| %s | %d | %.1f | %.1f | %.1f%% | %.1f%% |\n", op == 0 ? "nt S = Q·Kᵀ" : "nn O = P·V", 128 << li,
                   res[li][op][0] / 1e9, res[li][op][1] / 1e9, pk > 0 ? 100.0 * res[li][op][0] / pk : 0,
                   pk > 0 ? 100.0 * res[li][op][1] / pk : 0);
    return 0;
}
