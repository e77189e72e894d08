/* pack_bench.c — where an F16 load's CPU time goes, per Linear shape of one encoder layer: the
 * user, system and wall time of gtr_pack_fingerprinted (the loader's fused pass: fingerprint and
 * packing in one read of the rows), of the fingerprint alone (gtr_fingerprint_stored) and of
 * the packing alone (gtr_wmat_pack_src), on F16 rows in present memory (malloc'd and written
 * first, so the file's page cache and the mapping's faults are left out; the packed output is
 * fresh memory, as at load). Beside `membw convert` (the floor under a whole load) it says how
 * much of a load is the loader's own work.
 *
 *   make build/release/bench/pack_bench
 *   build/release/bench/pack_bench [--shape base|large|xl|xxl] [--dtype f32|bf16|int8]
 *                                  [--threads N] [--reps R] [--mode fused|fingerprint|pack]
 * Prints one line per shape and mode (all three, or the one --mode names: a profile of one
 * mode), times summed over R repetitions. */
#include "model/model_internal.h"
#include "bench_rng.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void cpu(double *user, double *sys)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    *user = r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6;
    *sys = r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

/* GTR's T5 v1.0 encoder shapes: d_model, heads x d_kv, d_ff */
static const struct { const char *name; size_t d, inner, ff; } shapes[] = {
    {"base", 768, 768, 3072}, {"large", 1024, 1024, 4096}, {"xl", 1024, 4096, 16384}, {"xxl", 1024, 16384, 65536},
};

enum { FUSED, FP_ONLY, PACK_ONLY };
static const char *mode_name[] = {"fused", "fingerprint", "pack"};

int main(int argc, char **argv)
{
    const char *shape = "xxl", *dtype = "int8";
    int threads = 2, reps = 3, m0 = FUSED, m1 = PACK_ONLY;
    static const struct option lo[] = {{"shape", 1, 0, 's'}, {"dtype", 1, 0, 'd'}, {"threads", 1, 0, 't'},
                                       {"reps", 1, 0, 'r'}, {"mode", 1, 0, 'm'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "s:d:t:r:m:", lo, NULL)) != -1;) {
        if (c == 's') shape = optarg;
        else if (c == 'd') dtype = optarg;
        else if (c == 't') threads = atoi(optarg);
        else if (c == 'r') reps = atoi(optarg);
        else if (c == 'm') {
            m0 = -1;
            for (int i = FUSED; i <= PACK_ONLY; i++)
                if (!strcmp(optarg, mode_name[i])) m0 = m1 = i;
        } else return 2;
    }
    int si = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(shape, shapes[i].name)) si = i;
    gtr_wtype wt = !strcmp(dtype, "f32") ? GTR_W_F32 : !strcmp(dtype, "bf16") ? GTR_W_BF16 : GTR_W_INT8;
    if (si < 0 || threads < 1 || reps < 1 || m0 < 0 || (wt == GTR_W_INT8 && strcmp(dtype, "int8"))) {
        fprintf(stderr, "pack_bench: --shape base|large|xl|xxl --dtype f32|bf16|int8 --threads N --reps R "
                        "--mode fused|fingerprint|pack\n");
        return 2;
    }
    gtr_error e;
    gtr_pool *pool = gtr_pool_create(threads, &e);
    if (!pool) {
        fprintf(stderr, "pack_bench: %s\n", e.message);
        return 1;
    }
    const gtr_kernels *kern = gtr_kernels_select();
    size_t d = shapes[si].d, inner = shapes[si].inner, ff = shapes[si].ff;
    /* a layer's Linears as the loader packs them: q, k, v stacked; o; wi; wo */
    struct { const char *name; size_t rows[3]; int n; size_t k; } L[] = {
        {"qkv", {inner, inner, inner}, 3, d}, {"o", {d}, 1, inner}, {"wi", {ff}, 1, d}, {"wo", {d}, 1, ff}};
    printf("pack_bench: %s layer, %s, %d threads, kernels %s, times summed over %d reps\n", shape, dtype, threads,
           gtr_kernels_name(kern), reps);
    double tot[3][3] = {{0}};
    for (int s = 0; s < 4; s++) {
        gtr_tensor t[3];
        const gtr_tensor *tp[3];
        uint64_t r = 7;
        size_t vals = 0;
        for (int i = 0; i < L[s].n; i++) {
            size_t n = L[s].rows[i] * L[s].k;
            uint16_t *raw = malloc(2 * n);
            if (!raw) {
                fprintf(stderr, "pack_bench: out of memory\n");
                return 1;
            }
            /* finite F16 values (exponent below 31) of both signs */
            for (size_t j = 0; j < n; j++) raw[j] = (uint16_t)(sm(&r) & 0xbbff);
            memset(&t[i], 0, sizeof t[i]);
            t[i].name = (char *)"w";
            t[i].dtype = GTR_DT_F16;
            t[i].ndim = 2;
            t[i].shape[0] = L[s].rows[i];
            t[i].shape[1] = L[s].k;
            t[i].stride[0] = L[s].k;
            t[i].stride[1] = 1;
            t[i].count = n;
            t[i].data = (const uint8_t *)raw;
            t[i].span = 2 * n;
            tp[i] = &t[i];
            vals += n;
        }
        for (int mode = m0; mode <= m1; mode++) {
            double u = 0, sy = 0, w = 0;
            for (int rep = 0; rep < reps; rep++) {
                double u0, s0, u1, s1, w0 = now();
                cpu(&u0, &s0);
                gtr_wmat m;
                gtr_status st = GTR_OK;
                uint64_t h = 7;
                if (mode == FUSED) {
                    st = gtr_pack_fingerprinted(kern, pool, tp, L[s].n, L[s].k, wt, &m, &h, NULL, &e);
                } else if (mode == FP_ONLY) {
                    for (int i = 0; i < L[s].n && !st; i++)
                        st = gtr_fingerprint_stored(&h, pool, "w", &t[i], t[i].shape[0], L[s].k, &e);
                } else {
                    gtr_wsrc src[3];
                    for (int i = 0; i < L[s].n; i++) src[i] = (gtr_wsrc){t[i].data, t[i].shape[0], GTR_SRC_F16};
                    st = gtr_wmat_pack_src(kern, pool, &m, src, (size_t)L[s].n, L[s].k, wt, &e);
                }
                cpu(&u1, &s1);
                w += now() - w0;
                u += u1 - u0;
                sy += s1 - s0;
                if (st) {
                    fprintf(stderr, "pack_bench: %s\n", e.message);
                    return 1;
                }
                if (mode != FP_ONLY) gtr_wmat_free(&m);
            }
            printf("%-4s %-11s user %7.3f s  sys %7.3f s  wall %7.3f s  %6.2f GB/s of F16\n", L[s].name,
                   mode_name[mode], u, sy, w, 2.0 * (double)vals * reps / w / 1e9);
            tot[mode][0] += u, tot[mode][1] += sy, tot[mode][2] += w;
        }
        for (int i = 0; i < L[s].n; i++) free((void *)t[i].data);
    }
    for (int mode = m0; mode <= m1; mode++)
        printf("layer %-11s user %7.3f s  sys %7.3f s  wall %7.3f s\n", mode_name[mode], tot[mode][0], tot[mode][1],
               tot[mode][2]);
    gtr_pool_free(pool);
    return 0;
}
