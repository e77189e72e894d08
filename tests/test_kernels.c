/* test_kernels.c — every kernel table this CPU can run (generic, AVX2, AVX-512 with and
 * without BF16/VNNI) against references computed here: float32 GEMMs against a double
 * reference, bf16 against a double reference of bf16-rounded inputs, int8 bit-exactly against
 * the documented quantisation done with plain integer math; attention GEMMs and element-wise
 * kernels against the portable versions. Shapes cover 1, odd sizes, non-multiples of every
 * block size and strides wider than the rows; threads 1..4. Never timings. */
#include "support/testutil.h"

#include "kernels/kernels_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static void fill(float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
}
static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

typedef struct {
    size_t m, n, k;
} shape;

static const shape shapes[] = {
    {1, 1, 1},   {1, 70, 3},    {2, 16, 4},    {5, 64, 64},  {7, 65, 33},
    {6, 48, 130}, {13, 130, 127}, {96, 64, 16}, {97, 200, 300}, {30, 129, 1100},
    /* AMX: row blocks of 256 with a 17-row tail (one 32-row block of two tiles, then a
     * half-empty pair), a half panel of 8 columns, k blocks of 6 tile steps with a tail;
     * bf16 rows of 3200 bytes: blocks of 128 rows */
    {273, 40, 70}, {529, 97, 800}, {300, 20, 1600},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static gtr_pool *pools[5]; /* [t] = pool of t threads (1..4); [0] = NULL (serial) */

static int setup(void **state)
{
    (void)state;
    for (int t = 1; t <= 4; t++) {
        pools[t] = gtr_pool_create(t, NULL);
        if (!pools[t]) return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int t = 1; t <= 4; t++) gtr_pool_free(pools[t]);
    return 0;
}

static const unsigned flag_sets[] = {0, GTR_LINEAR_ACCUM, GTR_LINEAR_RELU,
                                     GTR_LINEAR_ACCUM | GTR_LINEAR_RELU};

/* The epilogue of gtr_linear applied to a reference value. */
static double epilogue(double v, float y0, unsigned flags)
{
    if (flags & GTR_LINEAR_ACCUM) v += y0;
    if ((flags & GTR_LINEAR_RELU) && v < 0) v = 0;
    return v;
}

/* Run gtr_linear on x [m, ldx] into y [m, ldy] (initialised to y0; the gap columns hold a
 * sentinel that must survive). */
static void run_linear(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                       size_t m, size_t ldx, float *y, const float *y0, size_t ldy, unsigned flags)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < ldy; j++)
            y[i * ldy + j] = j < w->n ? ((flags & GTR_LINEAR_ACCUM) ? y0[i * ldy + j] : NAN) : 12345.0f;
    gtr_linear(kern, pool, w, x, m, ldx, y, ldy, flags);
    for (size_t i = 0; i < m; i++)
        for (size_t j = w->n; j < ldy; j++)
            if (y[i * ldy + j] != 12345.0f) fail_msg("%s: wrote outside row %zu at column %zu", kern->name, i, j);
}

/* ---- tables and selection ----------------------------------------------------------------- */

static void test_tables(void **state)
{
    (void)state;
    /* the tables as this CPU offers them: a GTR_CPU the suite runs under (a user capping the
     * kernels in their shell) is set aside here and put back at the end */
    const char *old = getenv("GTR_CPU");
    char *saved = old ? strdup(old) : NULL;
    unsetenv("GTR_CPU");
    const gtr_kernels *g = gtr_kernels_at(0);
    assert_ptr_equal(g, gtr_kernels_generic());
    assert_string_equal(gtr_kernels_name(g), "generic");
    size_t n = 0;
    for (const gtr_kernels *k; (k = gtr_kernels_at(n)) != NULL; n++) {
        assert_ptr_equal(gtr_kernels_by_name(k->name), k);
        for (size_t t = 0; t < GTR_W_NTYPES; t++) {
            assert_non_null(k->linear[t]);
            assert_true(k->nr[t] >= 1 && k->nr[t] <= 64);
        }
    }
    assert_true(n >= 1);
    assert_null(gtr_kernels_by_name("no-such-isa"));
    /* the selected table is the best one this CPU can run (vdpbf16ps tiles only where they
     * outrun the FMA pipes, else the table below, whose bf16 runs on FMAs); GTR_CPU caps it */
    const gtr_kernels *best = gtr_kernels_at(n - 1);
    gtr_cpu cpu = gtr_cpu_detect();
    if (best->select_needs_fast_dpbf16 && !cpu.dpbf16_fast) best = gtr_kernels_at(n - 2);
    assert_ptr_equal(gtr_kernels_select(), best);
    /* never slower at lower precision: bf16 uses vdpbf16ps only where it is fast, AMX where
     * the process may use it, else float32 FMAs on widened weights */
    const gtr_kernels *sel = gtr_kernels_select();
    if (cpu.amx) assert_ptr_equal(sel->linear[GTR_W_BF16], &gtr_amx_linear_bf16);
    else if (cpu.avx512f && !cpu.dpbf16_fast)
        assert_ptr_equal(sel->linear[GTR_W_BF16], &gtr_avx512_linear_bf16w);
    else if (cpu.avx512f) assert_ptr_equal(sel->linear[GTR_W_BF16], &gtr_avx512_linear_bf16);
    else if (cpu.avx2 && cpu.fma) assert_ptr_equal(sel->linear[GTR_W_BF16], &gtr_avx2_linear_bf16w);
    setenv("GTR_CPU", "generic", 1);
    assert_ptr_equal(gtr_kernels_select(), gtr_kernels_generic());
    assert_null(gtr_kernels_at(1));
    setenv("GTR_CPU", "avx512", 1); /* AMX off: bf16 on FMAs unless vdpbf16ps is fast */
    if (cpu.avx512f && !cpu.dpbf16_fast)
        assert_ptr_equal(gtr_kernels_select()->linear[GTR_W_BF16], &gtr_avx512_linear_bf16w);
    setenv("GTR_CPU", "", 1); /* set but empty: as if unset */
    assert_ptr_equal(gtr_kernels_select(), best);
    setenv("GTR_CPU", "avx2", 1);
    const gtr_kernels *a2 = gtr_kernels_select();
    assert_true(a2 == gtr_kernels_generic() || strcmp(a2->name, "avx2") == 0);
    /* the names gtr_cpu_check_env accepts are the ones the selection reads; others are refused */
    static const char *const good[] = {"amx", "avx512", "avx2", "generic", ""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("GTR_CPU", good[i], 1);
        gtr_error err = {0};
        assert_int_equal(gtr_cpu_check_env(&err), GTR_OK);
    }
    static const char *const bad[] = {"avx512+vnni", "AVX2", "avx", "amx "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("GTR_CPU", bad[i], 1);
        gtr_error err = {0};
        assert_int_equal(gtr_cpu_check_env(&err), GTR_ERR_INVALID_ARG);
        char want[64];
        snprintf(want, sizeof want, "GTR_CPU=%s: not a kernel path", bad[i]);
        assert_non_null(strstr(err.message, want));
    }
    unsetenv("GTR_CPU");
    assert_int_equal(gtr_cpu_check_env(NULL), GTR_OK);
    if (saved) setenv("GTR_CPU", saved, 1);
    else unsetenv("GTR_CPU");
    free(saved);
}

static void test_pack_errors(void **state)
{
    (void)state;
    gtr_error e;
    gtr_wmat w;
    float W[4] = {1, 2, 3, 4};
    assert_int_equal(gtr_wmat_pack(gtr_kernels_generic(), &w, W, 0, 4, GTR_W_F32, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "empty"));
    assert_int_equal(gtr_wmat_pack(gtr_kernels_generic(), &w, W, 2, 2, (gtr_wtype)7, &e), GTR_ERR_INVALID_ARG);
    gtr_wmat_free(&w); /* freeing a failed pack is harmless */
    TU_OK(gtr_wmat_pack(gtr_kernels_select(), &w, W, 2, 2, GTR_W_INT8, &e), &e);
    assert_true(w.bytes > 0);
    gtr_wmat_free(&w);
    assert_null(w.data);
}

/* ---- float32 linear ------------------------------------------------------------------------ */

/* ref[i*n + j] = Σ x·W in double; mag = Σ |x·W| (the scale of rounding errors) */
static void ref_f32(const float *W, size_t n, size_t k, const float *x, size_t m, size_t ldx,
                    double *ref, double *mag, int bf16)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0, a = 0;
            for (size_t c = 0; c < k; c++) {
                double xv = x[i * ldx + c], wv = W[j * k + c];
                if (bf16) {
                    xv = gtr_bf16_round_daz((float)xv);
                    wv = gtr_bf16_round_daz((float)wv);
                }
                s += xv * wv;
                a += fabs(xv * wv);
            }
            ref[i * n + j] = s;
            mag[i * n + j] = a;
        }
}

static void check_float_linear(gtr_wtype type)
{
    gtr_error e;
    for (size_t si = 0; si < N_SHAPES; si++) {
        shape s = shapes[si];
        size_t ldx = s.k + 3, ldy = s.n + 5;
        float *W = falloc(s.n * s.k), *x = falloc(s.m * ldx), *y = falloc(s.m * ldy),
              *y0 = falloc(s.m * ldy);
        double *ref = malloc(s.m * s.n * sizeof(double)), *mag = malloc(s.m * s.n * sizeof(double));
        fill(W, s.n * s.k, 0.5f);
        fill(x, s.m * ldx, 2.0f);
        fill(y0, s.m * ldy, 1.0f);
        ref_f32(W, s.n, s.k, x, s.m, ldx, ref, mag, type == GTR_W_BF16);
        const gtr_kernels *kern;
        for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++) {
            gtr_wmat w;
            TU_OK(gtr_wmat_pack(kern, &w, W, s.n, s.k, type, &e), &e);
            bool big = s.m * s.n * s.k > 2000000;
            for (size_t fi = 0; fi < 4; fi++) {
                for (int th = 0; th <= 4; th++) {
                    if (big && (fi > 1 || th != 2)) continue; /* keep the suite fast */
                    unsigned flags = flag_sets[fi];
                    run_linear(kern, pools[th], &w, x, s.m, ldx, y, y0, ldy, flags);
                    for (size_t i = 0; i < s.m; i++)
                        for (size_t j = 0; j < s.n; j++) {
                            double want = epilogue(ref[i * s.n + j], y0[i * ldy + j], flags);
                            double tol = 1e-5 * (mag[i * s.n + j] + fabs(y0[i * ldy + j])) + 1e-30;
                            double got = y[i * ldy + j];
                            if (!(fabs(got - want) <= tol))
                                fail_msg("%s type %d %zux%zux%zu flags %u threads %d: y[%zu,%zu] = %.9g, want %.9g",
                                         kern->name, (int)type, s.m, s.n, s.k, flags, th, i, j, got, want);
                        }
                }
            }
            gtr_wmat_free(&w);
        }
        free(W), free(x), free(y), free(y0), free(ref), free(mag);
    }
}

/* The f32 k block is chosen per CPU (cache sizes): every block size, with and without the
 * residual add and ReLU, gives the very same bits, as each output is one FMA chain over k. */
static void test_linear_f32_any_kblock(void **state)
{
    (void)state;
    gtr_error e;
    static const shape sh[] = {{13, 130, 1100}, {7, 65, 3072}, {96, 64, 700}};
    static const size_t kcs[] = {256, 512, 768, 1024, 2048, 4096};
    uint64_t saved = rng_state; /* leave the other tests' data as it was */
    for (size_t si = 0; si < 3; si++) {
        shape s = sh[si];
        size_t ldx = s.k + 1, ldy = s.n + 2;
        float *W = falloc(s.n * s.k), *x = falloc(s.m * ldx), *y = falloc(s.m * ldy),
              *y0 = falloc(s.m * ldy), *first = falloc(s.m * ldy);
        fill(W, s.n * s.k, 0.5f);
        fill(x, s.m * ldx, 2.0f);
        fill(y0, s.m * ldy, 1.0f);
        const gtr_kernels *kern;
        for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++) {
            gtr_wmat w;
            TU_OK(gtr_wmat_pack(kern, &w, W, s.n, s.k, GTR_W_F32, &e), &e);
            assert_true(w.kc >= 256); /* chosen from this CPU's caches */
            /* and with or without the weight prefetch (chosen per CPU family, cache.c) */
            for (size_t fi = 0; fi < 4; fi++)
                for (size_t ki = 0; ki < 2 * sizeof kcs / sizeof kcs[0]; ki++) {
                    w.kc = kcs[ki / 2];
                    w.no_prefetch = ki % 2;
                    run_linear(kern, pools[2], &w, x, s.m, ldx, y, y0, ldy, flag_sets[fi]);
                    if (ki == 0) memcpy(first, y, s.m * ldy * sizeof(float));
                    for (size_t i = 0; i < s.m; i++)
                        if (memcmp(first + i * ldy, y + i * ldy, s.n * sizeof(float)) != 0)
                            fail_msg("%s %zux%zux%zu flags %u: k block %zu (prefetch %d) differs from %zu in row %zu",
                                     kern->name, s.m, s.n, s.k, flag_sets[fi], kcs[ki / 2], !w.no_prefetch, kcs[0], i);
                }
            gtr_wmat_free(&w);
        }
        free(W), free(x), free(y), free(y0), free(first);
    }
    rng_state = saved;
}

/* Rows per linear task are chosen per CPU and matrix (gtr_wmat.mc, cache.c): tasks of 96 to
 * 384 rows (equal blocks, a whole number per thread), with and without the weight prefetch and
 * the prefetch of the next task's rows, give the very same bits as 96-row tasks, for every
 * table and type, serial and on 1-4 threads, with row counts that leave partial tiles and
 * blocks, strided x and y, residual add and ReLU. */
static void test_linear_task_rows(void **state)
{
    (void)state;
    gtr_error e;
    static const shape sh[] = {{389, 130, 300}, {1000, 70, 64}, {200, 64, 771}};
    static const size_t mcs[] = {96, 192, 288, 384};
    uint64_t saved = rng_state;
    for (size_t si = 0; si < 3; si++) {
        shape s = sh[si];
        size_t ldx = s.k + 3, ldy = s.n + 1;
        float *W = falloc(s.n * s.k), *x = falloc(s.m * ldx), *y = falloc(s.m * ldy),
              *y0 = falloc(s.m * ldy), *first = falloc(s.m * ldy);
        fill(W, s.n * s.k, 0.5f);
        fill(x, s.m * ldx, 2.0f);
        fill(y0, s.m * ldy, 1.0f);
        const gtr_kernels *kern;
        for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++)
            for (int type = 0; type < GTR_W_NTYPES; type++) {
                gtr_wmat w;
                TU_OK(gtr_wmat_pack(kern, &w, W, s.n, s.k, (gtr_wtype)type, &e), &e);
                assert_true(w.mc >= 96 && w.mc <= 384 && w.mc % 96 == 0); /* this CPU's choice */
                for (size_t fi = 0; fi < 4; fi += 3)
                    for (size_t v = 0; v < 2 * 4 * 5; v++) {
                        int th = (int)(v % 5);
                        w.mc = mcs[v / 5 % 4];
                        w.no_prefetch = v / 20;
                        run_linear(kern, pools[th], &w, x, s.m, ldx, y, y0, ldy, flag_sets[fi]);
                        if (v == 0) memcpy(first, y, s.m * ldy * sizeof(float));
                        for (size_t i = 0; i < s.m; i++)
                            if (memcmp(first + i * ldy, y + i * ldy, s.n * sizeof(float)) != 0)
                                fail_msg("%s type %d %zux%zux%zu flags %u: %zu rows per task, prefetch %d, "
                                         "%d threads differs from 96 serial in row %zu",
                                         kern->name, type, s.m, s.n, s.k, flag_sets[fi], w.mc, !w.no_prefetch, th, i);
                    }
                gtr_wmat_free(&w);
            }
        free(W), free(x), free(y), free(y0), free(first);
    }
    rng_state = saved;
}

static void test_linear_f32(void **state)
{
    (void)state;
    check_float_linear(GTR_W_F32);
}

static void test_linear_bf16(void **state)
{
    (void)state;
    check_float_linear(GTR_W_BF16);
}

/* ---- int8 linear: exact ------------------------------------------------------------------ */

/* The documented scheme, written out independently of the library. */
static void quant_row(const float *v, size_t k, int32_t *q, float *scale)
{
    float amax = 0;
    for (size_t c = 0; c < k; c++)
        if (fabsf(v[c]) > amax) amax = fabsf(v[c]);
    float inv = amax > 0 ? 127.0f / amax : 0;
    *scale = amax > 0 ? amax / 127.0f : 0;
    for (size_t c = 0; c < k; c++) {
        float r = nearbyintf(v[c] * inv);
        q[c] = (int32_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
}

static void test_linear_int8(void **state)
{
    (void)state;
    gtr_error e;
    for (size_t si = 0; si < N_SHAPES; si++) {
        shape s = shapes[si];
        size_t ldx = s.k + 1, ldy = s.n + 2;
        float *W = falloc(s.n * s.k), *x = falloc(s.m * ldx), *y = falloc(s.m * ldy),
              *y0 = falloc(s.m * ldy), *want = falloc(s.m * s.n), *sw = falloc(s.n),
              *sx = falloc(s.m);
        int32_t *qw = malloc(s.n * s.k * sizeof(int32_t)), *qx = malloc(s.m * s.k * sizeof(int32_t));
        int8_t *qw8 = malloc(s.n * s.k);
        fill(W, s.n * s.k, 0.3f);
        fill(x, s.m * ldx, 3.0f);
        fill(y0, s.m * ldy, 1.0f);
        if (s.m > 2) memset(x + ldx, 0, s.k * sizeof(float)); /* an all-zero row: scale 0 */
        for (size_t j = 0; j < s.n; j++) quant_row(W + j * s.k, s.k, qw + j * s.k, &sw[j]);
        for (size_t i = 0; i < s.m; i++) quant_row(x + i * ldx, s.k, qx + i * s.k, &sx[i]);
        for (size_t i = 0; i < s.n * s.k; i++) qw8[i] = (int8_t)qw[i];
        const gtr_kernels *kern;
        for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++) {
            gtr_wmat w, w2;
            TU_OK(gtr_wmat_pack(kern, &w, W, s.n, s.k, GTR_W_INT8, &e), &e);
            /* packing pre-quantised weights gives the same matrix */
            TU_OK(gtr_wmat_pack_int8(kern, &w2, qw8, sw, s.n, s.k, &e), &e);
            assert_memory_equal(w.data, w2.data, w.bytes - (w.n + w.nr - 1) / w.nr * w.nr * 8);
            for (size_t fi = 0; fi < 4; fi++) {
                unsigned flags = flag_sets[fi];
                for (size_t i = 0; i < s.m; i++)
                    for (size_t j = 0; j < s.n; j++) {
                        int64_t acc = 0;
                        for (size_t c = 0; c < s.k; c++) acc += (int64_t)qx[i * s.k + c] * qw[j * s.k + c];
                        float v = (float)(int32_t)acc * (sx[i] * sw[j]);
                        if (flags & GTR_LINEAR_ACCUM) v = y0[i * ldy + j] + v;
                        if ((flags & GTR_LINEAR_RELU) && v < 0) v = 0;
                        want[i * s.n + j] = v;
                    }
                /* w2 the other way round as to the weight prefetch (cache.c chooses it per CPU) */
                w2.no_prefetch = !w.no_prefetch;
                for (int th = 0; th <= 4; th += 2) {
                    const gtr_wmat *wm = th == 2 ? &w2 : &w;
                    run_linear(kern, pools[th], wm, x, s.m, ldx, y, y0, ldy, flags);
                    for (size_t i = 0; i < s.m; i++)
                        for (size_t j = 0; j < s.n; j++)
                            if (y[i * ldy + j] != want[i * s.n + j])
                                fail_msg("%s int8 %zux%zux%zu flags %u threads %d: y[%zu,%zu] = %.9g, want %.9g",
                                         kern->name, s.m, s.n, s.k, flags, th, i, j,
                                         (double)y[i * ldy + j], (double)want[i * s.n + j]);
                }
            }
            gtr_wmat_free(&w);
            gtr_wmat_free(&w2);
        }
        free(W), free(x), free(y), free(y0), free(want), free(sw), free(sx), free(qw), free(qx), free(qw8);
    }
}

/* ---- accuracy of bf16 / int8 against float32 --------------------------------------------- */

static void test_lowp_accuracy(void **state)
{
    (void)state;
    gtr_error e;
    const size_t m = 24, n = 96, k = 768;
    float *W = falloc(n * k), *x = falloc(m * k), *yf = falloc(m * n), *yq = falloc(m * n);
    /* weights ~ N(0, 1/sqrt(k))-ish, activations with a few larger entries like real ones */
    fill(W, n * k, 0.06f);
    fill(x, m * k, 1.0f);
    for (size_t i = 0; i < m; i++) x[i * k + (i * 37) % k] *= 8.0f;
    const gtr_kernels *kern = gtr_kernels_select();
    gtr_wmat wf, wb, wi;
    TU_OK(gtr_wmat_pack(kern, &wf, W, n, k, GTR_W_F32, &e), &e);
    TU_OK(gtr_wmat_pack(kern, &wb, W, n, k, GTR_W_BF16, &e), &e);
    TU_OK(gtr_wmat_pack(kern, &wi, W, n, k, GTR_W_INT8, &e), &e);
    /* int8 and bf16 weights take a quarter and a half of the float32 memory */
    assert_true(wi.bytes < wf.bytes / 3);
    assert_true(wb.bytes <= wf.bytes / 2);
    gtr_linear(kern, pools[2], &wf, x, m, k, yf, n, 0);
    const gtr_wmat *lowp[2] = {&wb, &wi};
    const double max_rel[2] = {1e-2, 3e-2}, min_cos[2] = {0.9999, 0.999};
    for (int q = 0; q < 2; q++) {
        gtr_linear(kern, pools[2], lowp[q], x, m, k, yq, n, 0);
        for (size_t i = 0; i < m; i++) {
            double d2 = 0, f2 = 0, q2 = 0, fq = 0;
            for (size_t j = 0; j < n; j++) {
                double a = yf[i * n + j], b = yq[i * n + j];
                d2 += (a - b) * (a - b);
                f2 += a * a;
                q2 += b * b;
                fq += a * b;
            }
            double rel = sqrt(d2 / f2), cosv = fq / sqrt(f2 * q2);
            if (!(rel <= max_rel[q] && cosv >= min_cos[q]))
                fail_msg("%s row %zu: relative error %.3g, cosine %.6f", q ? "int8" : "bf16", i, rel, cosv);
        }
    }
    gtr_wmat_free(&wf), gtr_wmat_free(&wb), gtr_wmat_free(&wi);
    free(W), free(x), free(yf), free(yq);
}

/* ---- layouts, workspace, denormals ---------------------------------------------------------- */

static void test_layout_and_workspace(void **state)
{
    (void)state;
    gtr_error e;
    const size_t m = 20, n = 100, k = 70;
    float *W = falloc(n * k), *x = falloc(m * k), *y1 = falloc(m * n), *y2 = falloc(m * n);
    fill(W, n * k, 1.0f);
    fill(x, m * k, 1.0f);
    x[3] = 1e-40f; /* float32 denormals: flushed by the bf16 conversion everywhere */
    x[5] = -3e-39f;
    W[7] = 2e-39f;
    const gtr_kernels *best = gtr_kernels_select(), *gen = gtr_kernels_generic();
    for (int t = 0; t < GTR_W_NTYPES; t++) {
        gtr_wmat w;
        TU_OK(gtr_wmat_pack(best, &w, W, n, k, (gtr_wtype)t, &e), &e);
        gtr_linear(best, pools[2], &w, x, m, k, y1, n, 0);
        /* a matrix packed by one table runs correctly with another (portable fallback) */
        gtr_linear(gen, NULL, &w, x, m, k, y2, n, 0);
        for (size_t i = 0; i < m * n; i++) assert_true(fabsf(y1[i] - y2[i]) <= 1e-5f * (1 + fabsf(y2[i])));
        /* caller-provided scratch gives the same result; too little falls back, still right */
        size_t need = gtr_linear_ws_size(best, pools[3], &w, m);
        void *ws = need ? malloc(need) : NULL;
        gtr_linear_ws(best, pools[3], &w, x, m, k, y2, n, 0, ws, need);
        assert_memory_equal(y1, y2, m * n * sizeof(float));
        gtr_linear_ws(best, pools[3], &w, x, m, k, y2, n, 0, NULL, 0);
        for (size_t i = 0; i < m * n; i++) assert_true(fabsf(y1[i] - y2[i]) <= 1e-5f * (1 + fabsf(y2[i])));
        free(ws);
        gtr_wmat_free(&w);
    }
    free(W), free(x), free(y1), free(y2);
}

/* The packed bytes are the layout's definition (kernels.h: panels of nr rows, [kp/g][nr][g],
 * zero padded; bf16 = gtr_bf16_daz; int8 = gtr_quantize_rows_int8's codes clamped to -127,
 * with that row's scale and code sum), element by element, for the portable, this CPU's and
 * the file layout's tables, serial and on 3 threads, with partial panels and k groups. */
static void test_pack_layout(void **state)
{
    (void)state;
    gtr_error e;
    static const size_t dims[][2] = {{1, 1}, {5, 3}, {70, 67}, {130, 129}, {64, 256}, {17, 1030}};
    const gtr_kernels *tables[] = {gtr_kernels_generic(), gtr_kernels_select(), gtr_kernels_file_layout()};
    for (size_t si = 0; si < sizeof dims / sizeof dims[0]; si++) {
        size_t n = dims[si][0], k = dims[si][1];
        float *W = falloc(n * k);
        fill(W, n * k, 0.5f);
        W[0] = 3e-39f; /* a denormal: bf16 flushes it */
        if (n >= 8 && k >= 8) { /* the values the vector conversions must treat as the scalar ones */
            W[k + 1] = NAN;
            W[2 * k + 3] = INFINITY;
            W[3 * k] = -INFINITY;
            for (size_t c = 0; c < k; c++) W[4 * k + c] = (c % 3 ? 1e-45f : -3e-44f); /* scale 127 / tiny = inf */
            for (size_t c = 0; c < k; c++) W[5 * k + c] = c % 2 ? 0.0f : -0.0f;
            W[6 * k + 5] = 1e30f;
            W[7 * k + 2] = -2.5f * 127.0f / 2.5f; /* exactly -127 after scaling */
            W[7 * k + 4] = 0x1.fffffep-1f * 127.0f; /* rounding ties and near-ties */
        }
        int8_t *qr = malloc(k);
        assert_non_null(qr);
        for (int ti = 0; ti < 3; ti++)
            for (int t = 0; t < GTR_W_NTYPES; t++)
                for (int pi = 0; pi <= 3; pi += 3) {
                    gtr_wmat w;
                    TU_OK(gtr_wmat_pack_pool(tables[ti], pools[pi], &w, W, n, k, (gtr_wtype)t, &e), &e);
                    size_t nr, kp, g = gtr_wmat_kgroup((gtr_wtype)t);
                    gtr_wmat_layout(tables[ti], (gtr_wtype)t, k, &nr, &kp);
                    assert_int_equal(w.nr, nr);
                    assert_int_equal(w.kp, kp);
                    size_t np = (n + nr - 1) / nr;
                    for (size_t r = 0; r < np * nr; r++) {
                        float sc = 0;
                        int32_t sum = 0;
                        if (t == GTR_W_INT8 && r < n) {
                            gtr_quantize_rows_int8(W + r * k, 1, k, qr, &sc);
                            for (size_t c = 0; c < k; c++) {
                                if (qr[c] < -127) qr[c] = -127;
                                sum += qr[c];
                            }
                            assert_memory_equal(&w.scales[r], &sc, sizeof sc);
                            assert_int_equal(w.colsum[r], sum);
                        }
                        for (size_t c = 0; c < kp; c++) {
                            size_t p = r / nr, j = r % nr;
                            size_t idx = ((p * (kp / g) + c / g) * nr + j) * g + c % g;
                            bool in = r < n && c < k;
                            if (t == GTR_W_F32) {
                                float want = in ? W[r * k + c] : 0.0f;
                                assert_memory_equal((const float *)w.data + idx, &want, 4);
                            } else if (t == GTR_W_BF16) {
                                uint16_t want = in ? gtr_bf16_daz(W[r * k + c]) : 0;
                                assert_int_equal(((const uint16_t *)w.data)[idx], want);
                            } else {
                                int8_t want = in ? qr[c] : 0;
                                assert_int_equal(((const int8_t *)w.data)[idx], want);
                            }
                        }
                    }
                    gtr_wmat_free(&w);
                }
        free(qr);
        free(W);
    }
}

/* The AVX-512 row pieces (absmax, and the conversion to each packed type, whose int8 path
 * takes 64 values a step without masks and sums the codes with vpsadbw; bf16 by
 * vcvtne2ps2bf16 where the CPU has AVX512_BF16) give the portable
 * ones' bytes and code sums, for every split of a piece into values inside the row (in) and
 * zero padding (nv - in), on values that reach every clamp: NaN, infinities, huge and tiny
 * magnitudes, ties, both zeros, and scales that make the products overflow. */
static void test_pack_piece_avx512(void **state)
{
    (void)state;
#if defined(__x86_64__)
    gtr_cpu cpu = gtr_cpu_detect();
    if (!(cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl)) {
        skip();
        return;
    }
    enum { N = 200 };
    float *x = falloc(N);
    _Alignas(64) unsigned char a[4 * N], b[4 * N];
    uint32_t r = 12345;
    static const float special[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, 0.0f, -0.0f, 1e-45f, -3e-44f,
                                    127.5f, -127.5f, 126.5f, 0.5f, -0.5f, 1.5f, 300.0f, -300.0f};
    static const float invs[] = {1.0f, 0.25f, 3.0f, 127.0f / 300.0f, INFINITY, 0.0f};
    for (int round = 0; round < 40; round++) {
        for (size_t i = 0; i < N; i++) {
            r = r * 1664525u + 1013904223u;
            x[i] = (float)(int32_t)r * (round % 2 ? 1e-7f : 6e-8f); /* about -128 .. 128 */
            if (r % 7 == 0) x[i] = special[(r >> 8) % (sizeof special / sizeof special[0])];
            if (r % 11 == 0) { /* signalling NaNs (bf16 quiets them) */
                uint32_t bits = r % 2 ? 0x7f800001u : 0xff800100u;
                memcpy(&x[i], &bits, 4);
            }
        }
        assert_memory_equal(&(float){gtr_avx512_absmax(x, N)}, &(float){gtr_generic_absmax(x, N)}, 4);
        for (size_t nv = 1; nv <= N; nv += 1 + nv / 3)
            for (size_t in = 0; in <= nv; in += 1 + in / 2)
                for (int t = 0; t < GTR_W_NTYPES; t++) {
                    float inv = invs[(size_t)round % (sizeof invs / sizeof invs[0])];
                    int32_t sa = 5, sb = 5;
                    memset(a, 0xa5, sizeof a);
                    memset(b, 0xa5, sizeof b);
                    gtr_generic_pack_piece((gtr_wtype)t, x, in, nv, inv, a, &sa);
                    gtr_avx512_pack_piece((gtr_wtype)t, x, in, nv, inv, b, &sb);
                    assert_memory_equal(a, b, sizeof a); /* nothing written past nv either */
                    assert_int_equal(sa, sb);
                    if (cpu.avx512_bf16) {
                        sb = 5;
                        memset(b, 0xa5, sizeof b);
                        gtr_avx512bf16_pack_piece((gtr_wtype)t, x, in, nv, inv, b, &sb);
                        assert_memory_equal(a, b, sizeof a);
                        assert_int_equal(sa, sb);
                    }
                }
    }
    free(x);
#else
    skip();
#endif
}

/* Packing straight from stored rows (gtr_wmat_pack_src: F16 at an odd address, BF16, F32 at
 * an address not 4-aligned, as parts of one matrix) gives the bytes gtr_wmat_pack_pool gives
 * for the same values converted to float32 first. */
static void test_pack_src(void **state)
{
    (void)state;
    gtr_error e;
    static const size_t dims[][4] = {{3, 1, 2, 67}, {70, 64, 5, 300}, {1, 1, 1, 1}, {40, 30, 65, 129}};
    const gtr_kernels *tables[] = {gtr_kernels_generic(), gtr_kernels_select(), gtr_kernels_file_layout()};
    for (size_t si = 0; si < sizeof dims / sizeof dims[0]; si++) {
        size_t r0 = dims[si][0], r1 = dims[si][1], r2 = dims[si][2], k = dims[si][3], n = r0 + r1 + r2;
        uint8_t *f16 = malloc(2 * r0 * k + 1), *bf = malloc(2 * r1 * k), *f32 = malloc(4 * r2 * k + 2);
        float *W = falloc(n * k);
        assert_true(f16 && bf && f32);
        uint32_t r = 7u + (uint32_t)si;
        for (size_t i = 0; i < n * k; i++) {
            r = r * 1664525u + 1013904223u;
            uint16_t h = (uint16_t)((r >> 16) & 0xbfff); /* finite halves of both kinds */
            if (i < r0 * k) {
                memcpy(f16 + 1 + 2 * i, &h, 2);
                W[i] = gtr_f16_to_f32(h);
            } else if (i < (r0 + r1) * k) {
                memcpy(bf + 2 * (i - r0 * k), &h, 2);
                W[i] = gtr_bf16_to_f32(h);
            } else {
                W[i] = (float)(int32_t)r * 1e-10f;
                memcpy(f32 + 2 + 4 * (i - (r0 + r1) * k), &W[i], 4);
            }
        }
        if (r1 > 2) { /* a row with an infinity, one with a NaN (the int8 rules for them) */
            uint16_t inf = 0x7f80, nan = 0x7fc1;
            memcpy(bf + 2 * (k + k / 2), &inf, 2);
            W[(r0 + 1) * k + k / 2] = INFINITY;
            memcpy(bf + 2 * (2 * k), &nan, 2);
            W[(r0 + 2) * k] = gtr_bf16_to_f32(nan);
        }
        gtr_wsrc parts[3] = {{f16 + 1, r0, GTR_SRC_F16}, {bf, r1, GTR_SRC_BF16}, {f32 + 2, r2, GTR_SRC_F32}};
        for (int ti = 0; ti < 3; ti++)
            for (int t = 0; t < GTR_W_NTYPES; t++)
                for (int pi = 0; pi <= 3; pi += 3) {
                    gtr_wmat a, b;
                    TU_OK(gtr_wmat_pack_pool(tables[ti], pools[pi], &a, W, n, k, (gtr_wtype)t, &e), &e);
                    TU_OK(gtr_wmat_pack_src(tables[ti], pools[pi], &b, parts, 3, k, (gtr_wtype)t, &e), &e);
                    tu_assert_wmat_equal(&a, &b);
                    gtr_wmat_free(&a);
                    gtr_wmat_free(&b);
                }
        free(f16), free(bf), free(f32), free(W);
    }
}

/* Unpacking (gtr_wmat_unpack_rows, gtr_wmat_rows_f32: what a packed copy loaded in another
 * dtype, or in another layout, reads back) gives the stored values of any row range, panels
 * cut anywhere: float32 as packed, bf16 bits as gtr_bf16_daz, int8 codes as
 * gtr_quantize_rows_int8; rows_f32 widens them (bf16) or multiplies by the row scale (int8). */
static void test_unpack_rows(void **state)
{
    (void)state;
    gtr_error e;
    static const size_t dims[][2] = {{1, 1}, {70, 67}, {130, 300}, {17, 1030}};
    const gtr_kernels *tables[] = {gtr_kernels_generic(), gtr_kernels_select()};
    for (size_t si = 0; si < sizeof dims / sizeof dims[0]; si++) {
        size_t n = dims[si][0], k = dims[si][1];
        float *W = falloc(n * k), *got = falloc(n * k);
        fill(W, n * k, 0.5f);
        int8_t *qr = malloc(k);
        unsigned char *raw = malloc(n * k * 4);
        assert_true(qr && raw);
        const size_t ranges[][2] = {{0, n}, {n / 3, n - n / 3}, {n - 1, 1}};
        for (int ti = 0; ti < 2; ti++)
            for (int t = 0; t < GTR_W_NTYPES; t++) {
                gtr_wmat w;
                TU_OK(gtr_wmat_pack(tables[ti], &w, W, n, k, (gtr_wtype)t, &e), &e);
                for (size_t ri = 0; ri < 3; ri++) {
                    size_t r0 = ranges[ri][0], rows = ranges[ri][1];
                    if (!rows) continue;
                    gtr_wmat_unpack_rows(&w, r0, rows, raw);
                    gtr_wmat_rows_f32(&w, r0, rows, got);
                    for (size_t r = r0; r < r0 + rows; r++) {
                        float sc = 0;
                        if (t == GTR_W_INT8) gtr_quantize_rows_int8(W + r * k, 1, k, qr, &sc);
                        for (size_t c = 0; c < k; c++) {
                            size_t i = (r - r0) * k + c;
                            float want;
                            if (t == GTR_W_F32) {
                                assert_memory_equal(raw + 4 * i, &W[r * k + c], 4);
                                want = W[r * k + c];
                            } else if (t == GTR_W_BF16) {
                                uint16_t b = gtr_bf16_daz(W[r * k + c]);
                                assert_memory_equal(raw + 2 * i, &b, 2);
                                want = gtr_bf16_to_f32(b);
                            } else {
                                assert_int_equal((int8_t)raw[i], qr[c]);
                                want = (float)qr[c] * sc;
                            }
                            assert_memory_equal(&got[i], &want, 4);
                        }
                    }
                }
                /* on 3 threads, a panel a task: the same floats */
                float *all = falloc(n * k);
                gtr_wmat_rows_f32(&w, 0, n, got);
                gtr_wmat_rows_f32_pool(&w, pools[3], all);
                assert_memory_equal(all, got, n * k * sizeof(float));
                free(all);
                gtr_wmat_free(&w);
            }
        free(W), free(got), free(qr), free(raw);
    }
}

/* ---- strided sgemm (attention) --------------------------------------------------------------- */

static void test_sgemm(void **state)
{
    (void)state;
    const size_t dims[] = {1, 5, 16, 17, 64, 67, 130};
    const float betas[] = {0.0f, 1.0f, 0.5f};
    const size_t nd = sizeof dims / sizeof dims[0];
    const gtr_kernels *gen = gtr_kernels_generic();
    for (size_t a = 0; a < nd; a++)
        for (size_t b = 0; b < nd; b++)
            for (size_t c = 0; c < nd; c++) {
                size_t M = dims[a], N = dims[b], K = dims[c];
                if ((a + b + c) % 3 && M * N * K > 20000) continue; /* sample the big ones */
                size_t lda = GTR_MAX(M, K) + 3, ldb = GTR_MAX(N, K) + 2, ldc = N + 7;
                float *A = falloc(GTR_MAX(M, K) * lda), *B = falloc(GTR_MAX(N, K) * ldb),
                      *C0 = falloc(M * ldc), *Cg = falloc(M * ldc), *Ck = falloc(M * ldc);
                fill(A, GTR_MAX(M, K) * lda, 1.0f);
                fill(B, GTR_MAX(N, K) * ldb, 1.0f);
                fill(C0, M * ldc, 1.0f);
                const gtr_kernels *kern;
                for (size_t t = 1; (kern = gtr_kernels_at(t)) != NULL; t++)
                    for (int op = 0; op < 3; op++)
                        for (int bi = 0; bi < 3; bi++) {
                            float beta = betas[bi];
                            memcpy(Cg, C0, M * ldc * sizeof(float));
                            memcpy(Ck, C0, M * ldc * sizeof(float));
                            if (beta == 0)
                                for (size_t i = 0; i < M; i++) Ck[i * ldc] = NAN; /* must be ignored */
                            void (*f)(const gtr_kernels *, size_t, size_t, size_t, const float *, size_t,
                                      const float *, size_t, float, float *, size_t) =
                                op == 0 ? gtr_sgemm_nt : op == 1 ? gtr_sgemm_nn : gtr_sgemm_tn;
                            f(gen, M, N, K, A, lda, B, ldb, beta, Cg, ldc);
                            f(kern, M, N, K, A, lda, B, ldb, beta, Ck, ldc);
                            for (size_t i = 0; i < M; i++)
                                for (size_t j = 0; j < ldc; j++) {
                                    float g = Cg[i * ldc + j], v = Ck[i * ldc + j];
                                    float tol = j < N ? 2e-6f * (float)K + 1e-6f : 0;
                                    if (!(fabsf(g - v) <= tol))
                                        fail_msg("%s sgemm op %d %zux%zux%zu beta %g: C[%zu,%zu] = %.9g, want %.9g",
                                                 kern->name, op, M, N, K, (double)beta, i, j, (double)v, (double)g);
                                }
                        }
                free(A), free(B), free(C0), free(Cg), free(Ck);
            }
}

/* The float32 sum that every AVX-512 sgemm tile computes, one output at a time: one FMA chain
 * over k in k order, started from 0 (beta 0) or from C (beta 1); another beta scales C and adds
 * it to the chain's value (two roundings) once the first kb k steps are summed, and the chain
 * goes on from there (sgemm_nt: kb = its k chunk of 128; sgemm_nn / tn: all of K). A[i,k] at
 * A[i*ars + k*aks], B[k,j] at B[k*bks + j*bjs]. */
static void sgemm_fma_chain(size_t M, size_t N, size_t K, size_t kb, const float *A, size_t ars, size_t aks,
                            const float *B, size_t bks, size_t bjs, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            float *c = &C[i * ldc + j];
            float acc = beta == 1 ? *c : 0.0f;
            for (size_t k = 0; k < K; k++) {
                acc = fmaf(A[i * ars + k * aks], B[k * bks + j * bjs], acc);
                if (k + 1 == GTR_MIN(kb, K) && beta != 0 && beta != 1) {
                    float scaled = *c * beta;
                    acc = scaled + acc;
                }
            }
            if (K == 0 && beta != 0 && beta != 1) acc = *c * beta + acc;
            *c = acc;
        }
}

/* Both AVX-512 sgemms, AMD's (gtr_avx512_sgemm: B read in place by sgemm_nn) and the Intel
 * tables' (gtr_avx512_sgemm_copy_b: sgemm_nn copies B's blocks first, up to 512 rows at a
 * time), with sgemm_nt's register transpose and the tiles' k unrolled by four, give the very
 * bits of the plain FMA chain above (the tiles of ukr before issue 19), for nt, nn and tn,
 * attention-like strides, full and ragged tiles, K over several blocks. */
static void test_sgemm_nn_copy_b(void **state)
{
    (void)state;
#if defined(__x86_64__)
    if (!gtr_kernels_by_name("avx512")) skip();
    static const size_t shapes3[][3] = {{256, 64, 256}, {130, 67, 129}, {7, 200, 300}, {512, 64, 512},
                                        {1, 1, 1},     {256, 256, 64}, {70, 64, 1100}, {13, 130, 67},
                                        {64, 512, 64}, {6, 64, 3},     {9, 70, 0}};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    for (size_t s = 0; s < sizeof shapes3 / sizeof shapes3[0]; s++) {
        size_t M = shapes3[s][0], N = shapes3[s][1], K = shapes3[s][2], lda = GTR_MAX(M, K) + 1, ldb = 768,
               ldc = N + 3;
        size_t brows = GTR_MAX(K, N);
        float *A = falloc(GTR_MAX(M, K) * lda), *B = falloc(brows * ldb), *C0 = falloc(M * ldc),
              *C1 = falloc(M * ldc), *C2 = falloc(M * ldc), *Cr = falloc(M * ldc);
        fill(A, GTR_MAX(M, K) * lda, 1.0f);
        fill(B, brows * ldb, 1.0f);
        fill(C0, M * ldc, 1.0f);
        for (int op = 0; op < 3; op++)
            for (int bi = 0; bi < 3; bi++) {
                void (*drive)(const gtr_sgemm_ukr *, size_t, size_t, size_t, const float *, size_t, const float *,
                              size_t, float, float *, size_t) =
                    op == 0 ? gtr_sgemm_drive_nt : op == 1 ? gtr_sgemm_drive_nn : gtr_sgemm_drive_tn;
                memcpy(C1, C0, M * ldc * sizeof(float));
                memcpy(C2, C0, M * ldc * sizeof(float));
                memcpy(Cr, C0, M * ldc * sizeof(float));
                drive(&gtr_avx512_sgemm, M, N, K, A, lda, B, ldb, betas[bi], C1, ldc);
                drive(&gtr_avx512_sgemm_copy_b, M, N, K, A, lda, B, ldb, betas[bi], C2, ldc);
                if (op == 0) /* B [N, K] */
                    sgemm_fma_chain(M, N, K, 128, A, lda, 1, B, 1, ldb, betas[bi], Cr, ldc);
                else if (op == 1)
                    sgemm_fma_chain(M, N, K, K, A, lda, 1, B, ldb, 1, betas[bi], Cr, ldc);
                else /* A [K, M] */
                    sgemm_fma_chain(M, N, K, K, A, 1, lda, B, ldb, 1, betas[bi], Cr, ldc);
                if (memcmp(C1, Cr, M * ldc * sizeof(float)) != 0)
                    fail_msg("sgemm op %d %zux%zux%zu beta %g: AMD tiles differ from the FMA chain", op, M, N, K,
                             (double)betas[bi]);
                if (memcmp(C2, Cr, M * ldc * sizeof(float)) != 0)
                    fail_msg("sgemm op %d %zux%zux%zu beta %g: Intel tiles differ from the FMA chain", op, M, N, K,
                             (double)betas[bi]);
            }
        free(A), free(B), free(C0), free(C1), free(C2), free(Cr);
    }
#else
    skip();
#endif
}

/* ---- element-wise ------------------------------------------------------------------------- */

static void check_rel(const char *what, const gtr_kernels *k, size_t n, const float *got,
                      const float *want, double rel, double abs_tol)
{
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (!(fabs(g - w) <= rel * fabs(w) + abs_tol))
            fail_msg("%s %s n=%zu [%zu]: %.9g, want %.9g", k->name, what, n, i, g, w);
    }
}

static void test_eltwise(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 3, 8, 15, 16, 17, 31, 33, 64, 100, 1000};
    const gtr_kernels *gen = gtr_kernels_generic(), *kern;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *x = falloc(n), *w = falloc(n), *b = falloc(n), *yg = falloc(n), *yk = falloc(n);
        fill(x, n, 4.0f);
        fill(w, n, 1.5f);
        fill(b, n, 3.0f);
        for (size_t t = 1; (kern = gtr_kernels_at(t)) != NULL; t++) {
            gtr_rmsnorm(gen, x, w, 1e-6f, n, yg);
            gtr_rmsnorm(kern, x, w, 1e-6f, n, yk);
            check_rel("rmsnorm", kern, n, yk, yg, 2e-6, 0);
            /* softmax: plain, with bias, with masked (-inf) entries, and all masked */
            for (int v = 0; v < 4; v++) {
                for (size_t i = 0; i < n; i++) {
                    yg[i] = yk[i] = 10.0f * x[i];
                    if (v >= 2 && (i % 3 == 1 || v == 3)) yg[i] = yk[i] = -INFINITY;
                }
                const float *bias = v == 1 ? b : NULL;
                gtr_add_softmax(gen, yg, bias, n);
                gtr_add_softmax(kern, yk, bias, n);
                check_rel("softmax", kern, n, yk, yg, 2e-6, 1e-30);
            }
            memcpy(yg, x, n * sizeof(float));
            gtr_softmax(gen, yg, n);
            memcpy(yk, x, n * sizeof(float));
            gtr_softmax(kern, yk, n);
            check_rel("softmax", kern, n, yk, yg, 2e-6, 1e-30);
            /* gelu over a wide range, where 1 + tanh(u) cancels for negative inputs */
            for (size_t i = 0; i < n; i++) yg[i] = yk[i] = 3.0f * x[i];
            gtr_gelu_mul(gen, yg, w, n);
            gtr_gelu_mul(kern, yk, w, n);
            check_rel("gelu_mul", kern, n, yk, yg, 2e-6, 1e-30);
            double dg = gtr_dot(gen, x, w, n), dk = gtr_dot(kern, x, w, n), mag = 0;
            for (size_t i = 0; i < n; i++) mag += fabs(x[i] * w[i]);
            assert_true(fabs(dg - dk) <= 1e-6 * mag);
        }
        free(x), free(w), free(b), free(yg), free(yk);
    }
    /* the portable gelu matches the textbook tanh form where that is accurate */
    float v[5] = {-1.0f, -0.2f, 0.0f, 0.5f, 2.0f}, one[5] = {1, 1, 1, 1, 1};
    float ref[5];
    for (int i = 0; i < 5; i++)
        ref[i] = 0.5f * v[i] * (1.0f + tanhf(0.7978845608f * (v[i] + 0.044715f * v[i] * v[i] * v[i])));
    gtr_gelu_mul(gen, v, one, 5);
    check_rel("gelu vs tanh", gen, 5, v, ref, 1e-6, 1e-7);
}

/* A NaN in a softmax row never disappears (every ISA): alone among masked entries, among
 * finite ones, or the whole row; the masked row itself stays zeros. */
static void test_softmax_nan(void **state)
{
    (void)state;
    const gtr_kernels *kern;
    for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++) {
        for (size_t n = 1; n <= 40; n += 13) {
            float *y = falloc(n);
            for (int v = 0; v < 4; v++) {
                for (size_t i = 0; i < n; i++) y[i] = v == 0 ? NAN : v == 1 ? (float)i : -INFINITY;
                if (v == 1 || v == 2) y[n / 2] = NAN;
                gtr_softmax(kern, y, n);
                bool any_nan = false;
                for (size_t i = 0; i < n; i++) any_nan |= isnan(y[i]);
                if (v < 3 && !any_nan) fail_msg("%s: softmax case %d (n %zu) lost its NaN", gtr_kernels_name(kern), v, n);
                if (v == 3)
                    for (size_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
            }
            free(y);
        }
    }
}

/* Transposes on every ISA path: an exact copy, edges included, strides respected (elements
 * outside the destination block untouched). */
static void test_transpose(void **state)
{
    (void)state;
    static const size_t tshapes[][2] = {{1, 1}, {16, 16}, {17, 64}, {512, 64}, {37, 19}, {3, 40}, {64, 5}};
    const gtr_kernels *kern;
    for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++)
        for (size_t s = 0; s < sizeof tshapes / sizeof tshapes[0]; s++) {
            size_t rows = tshapes[s][0], cols = tshapes[s][1], lds = cols + 3, ldd = rows + 5;
            float *src = malloc(rows * lds * sizeof *src), *dst = malloc(cols * ldd * sizeof *dst);
            assert_non_null(src);
            assert_non_null(dst);
            for (size_t i = 0; i < rows * lds; i++) src[i] = (float)i * 0.25f - 7.0f;
            for (size_t i = 0; i < cols * ldd; i++) dst[i] = -1e30f;
            gtr_transpose(kern, src, lds, rows, cols, dst, ldd);
            for (size_t c = 0; c < cols; c++)
                for (size_t r = 0; r < ldd; r++) {
                    float want = r < rows ? src[r * lds + c] : -1e30f;
                    if (dst[c * ldd + r] != want)
                        fail_msg("%s: %zux%zu transpose wrong at (%zu, %zu)", gtr_kernels_name(kern), rows, cols, c, r);
                }
            free(src);
            free(dst);
        }
}

/* Attention's bf16 products (AMX where the table has them; skipped, saying so, elsewhere):
 * S = Q·Kᵀ with Kᵀ packed from key rows and O = P·V with V packed from its rows, against a
 * double reference of the bf16-rounded operands; ragged sizes, strides, rows outside M and
 * columns outside N untouched. */
static void test_bf16mm(void **state)
{
    (void)state;
    static const size_t sh[][3] = {{64, 512, 64}, {37, 45, 70}, {1, 1, 1}, {16, 16, 32}, {64, 64, 300}, {5, 130, 64}};
    const gtr_kernels *kern;
    size_t tested = 0;
    for (size_t t = 0; (kern = gtr_kernels_at(t)) != NULL; t++) {
        const gtr_bf16mm *mm = gtr_kernels_bf16mm(kern);
        if (!mm) continue;
        tested++;
        for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
            size_t M = sh[si][0], N = sh[si][1], K = sh[si][2], lda = K + 3, ldb = N + 5, ldt = K + 7, ldc = N + 2;
            float *A = falloc(M * lda), *B = falloc(K * ldb), *Bt = falloc(N * ldt), *C = falloc((M + 1) * ldc);
            fill(A, M * lda, 2.0f);
            fill(B, K * ldb, 1.0f);
            for (size_t k = 0; k < K; k++)
                for (size_t n = 0; n < N; n++) Bt[n * ldt + k] = B[k * ldb + n];
            if (K > 3) A[3] = 1e-40f; /* a denormal: flushed, as every bf16 path does */
            void *pb = gtr_malloc_aligned(mm->packed_bytes(K, N), NULL);
            void *pbt = gtr_malloc_aligned(mm->packed_bytes(K, N), NULL);
            void *ws = gtr_malloc_aligned(mm->ws(K), NULL);
            void *tmp = gtr_malloc_aligned(N * ((K + 31) / 32 * 32) * 2, NULL);
            assert_true(pb && pbt && ws && tmp);
            mm->pack_b(B, ldb, K, N, pb);
            mm->pack_bt(Bt, ldt, K, N, pbt, tmp);
            for (int v = 0; v < 2; v++) {
                for (size_t i = 0; i < (M + 1) * ldc; i++) C[i] = 12345.0f;
                mm->gemm(M, N, K, A, lda, v ? pbt : pb, C, ldc, ws);
                for (size_t i = 0; i < M + 1; i++)
                    for (size_t j = 0; j < ldc; j++) {
                        float got = C[i * ldc + j];
                        if (i >= M || j >= N) {
                            if (got != 12345.0f) fail_msg("%s: bf16mm wrote outside C at (%zu, %zu)", kern->name, i, j);
                            continue;
                        }
                        double ref = 0, mag = 0;
                        for (size_t k = 0; k < K; k++) {
                            double p = (double)gtr_bf16_round_daz(A[i * lda + k]) * gtr_bf16_round_daz(B[k * ldb + j]);
                            ref += p;
                            mag += fabs(p);
                        }
                        if (!(fabs(got - ref) <= 1e-5 * mag + 1e-30))
                            fail_msg("%s: bf16mm %zux%zux%zu (%s) C[%zu,%zu] = %.9g, want %.9g", kern->name, M, N, K,
                                     v ? "pack_bt" : "pack_b", i, j, got, ref);
                    }
            }
            gtr_free_aligned(pb), gtr_free_aligned(pbt), gtr_free_aligned(ws), gtr_free_aligned(tmp);
            free(A), free(B), free(Bt), free(C);
        }
    }
    if (!tested) print_message("# bf16mm: no table with a matrix engine on this CPU (AMX absent or not permitted): skipped\n");
}

/* gtr_q8 is nearbyintf + clamp, bit for bit: every float of magnitude in [2^-2, 2^9) (both
 * signs: the ties k + 0.5, the clamp at 127 and the fast path's 2^22 edge below), then
 * samples of every other binade, zeros, inf and NaN. */
static int32_t q8_ref(float v)
{
    if (!(fabsf(v) < 2147483648.0f)) return -127;
    float r = nearbyintf(v);
    return r > 127.0f ? 127 : r < -127.0f ? -127 : (int32_t)r;
}

static void test_q8_rounding(void **state)
{
    (void)state;
    uint32_t lo, hi;
    float f = 0.25f;
    memcpy(&lo, &f, 4);
    f = 512.0f;
    memcpy(&hi, &f, 4);
    for (uint32_t u = lo; u < hi; u++)
        for (uint32_t s = 0; s < 2; s++) {
            uint32_t b = u | s << 31;
            float v;
            memcpy(&v, &b, 4);
            if (gtr_q8(v) != q8_ref(v)) fail_msg("gtr_q8(%a) = %d, nearbyintf gives %d", v, gtr_q8(v), q8_ref(v));
        }
    for (uint32_t u = 0; u < 0x7f800000u; u += 4099)
        for (uint32_t s = 0; s < 2; s++) {
            uint32_t b = u | s << 31;
            float v;
            memcpy(&v, &b, 4);
            if (gtr_q8(v) != q8_ref(v)) fail_msg("gtr_q8(%a) = %d, nearbyintf gives %d", v, gtr_q8(v), q8_ref(v));
        }
    static const float edge[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f, 127.5f, -127.5f,
                                 4194303.5f, -4194303.5f, 4194304.0f, 4194304.5f, -4194304.5f, 8388607.5f,
                                 8388608.0f, 2147483520.0f, 2147483648.0f, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) assert_int_equal(gtr_q8(edge[i]), q8_ref(edge[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_q8_rounding),
        cmocka_unit_test(test_pack_errors),
        cmocka_unit_test(test_linear_f32),
        cmocka_unit_test(test_linear_f32_any_kblock),
        cmocka_unit_test(test_linear_task_rows),
        cmocka_unit_test(test_linear_bf16),
        cmocka_unit_test(test_linear_int8),
        cmocka_unit_test(test_lowp_accuracy),
        cmocka_unit_test(test_layout_and_workspace),
        cmocka_unit_test(test_sgemm),
        cmocka_unit_test(test_sgemm_nn_copy_b),
        cmocka_unit_test(test_eltwise),
        cmocka_unit_test(test_softmax_nan),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_bf16mm),
        cmocka_unit_test(test_pack_layout),
        cmocka_unit_test(test_pack_piece_avx512),
        cmocka_unit_test(test_pack_src),
        cmocka_unit_test(test_unpack_rows),
    };
    return cmocka_run_group_tests_name("kernels", tests, setup, teardown);
}
