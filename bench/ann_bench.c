/* ann_bench.c — gtr's IVF approximate search (issue 14) on synthetic unit vectors:
 *   ann_bench KIND N DIM NQ THREADS LISTS "NPROBE..." OUTDIR
 * KIND clustered: 1000 random centres on the sphere, each vector a centre plus Gaussian noise
 * (sigma 0.6/sqrt(dim) per coordinate, so neighbours share topics the way embeddings do), then
 * normalised; KIND uniform: normalised Gaussian vectors (the hard case). Queries are drawn the
 * same way with another seed. Ground truth: exact top-10 with gtr's exact score (score.h).
 * Writes OUTDIR/{vectors,queries}.f32 and truth.u32 for ann_baselines.py, and prints
 * Markdown rows: build seconds, peak RSS, and per NPROBE[:RERANK] recall@10 and queries/s at
 * batch 1 (the first BENCH_ANN_NQ1 = 200 queries) and batch 256, and the memory search needs. With ANN_BENCH_MMAP=1 the vectors are generated in chunks straight into
 * OUTDIR/vectors.f32 and memory-mapped (a corpus larger than RAM: bench_ann_10m.sh).
 * With ANN_BENCH_REUSE=1 and OUTDIR/gtr.ivf, queries.f32, truth.u32 left by an earlier run with
 * the same arguments, only the search rows are measured (build columns: nan). */
#include "index/ivf.h"
#include "index/score.h"
#include "bench_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define K 10

static double gauss(uint64_t *s)
{
    double u = ((double)(sm(s) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(sm(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* splitmix64's state advances by a constant per draw, so vector i's draws start at
 * seed + i * draws-per-vector * that constant: the blocks below are generated in parallel
 * and the data are the same as one sequential stream's. */
typedef struct gen_ctx { float *out; const float *cent; size_t n, dim; uint64_t seed; } gen_ctx;
#define GEN_BLOCK 4096
static void gen_task(void *p, size_t b, int tid)
{
    (void)tid;
    const gen_ctx *g = p;
    enum { C = 1000 };
    size_t dim = g->dim, per = (g->cent ? 1 : 0) + 2 * dim; /* draws per vector */
    size_t i0 = b * GEN_BLOCK, i1 = g->n - i0 < GEN_BLOCK ? g->n : i0 + GEN_BLOCK;
    uint64_t s = g->seed + (uint64_t)i0 * per * 0x9e3779b97f4a7c15ull;
    double sigma = g->cent ? 0.6 / sqrt((double)dim) : 1.0;
    for (size_t i = i0; i < i1; i++) {
        float *v = g->out + i * dim;
        const float *c = g->cent ? g->cent + (sm(&s) % C) * dim : NULL;
        double norm = 0;
        for (size_t d = 0; d < dim; d++) {
            v[d] = (float)((c ? c[d] : 0.0) + sigma * gauss(&s));
            norm += (double)v[d] * v[d];
        }
        for (size_t d = 0; d < dim; d++) v[d] /= (float)sqrt(norm);
    }
}

static void gen(float *out, size_t n, size_t dim, int clustered, uint64_t seed, gtr_pool *pool)
{
    enum { C = 1000 };
    float *cent = NULL;
    if (clustered) {
        uint64_t cs = 42;
        cent = malloc((size_t)C * dim * sizeof *cent);
        for (size_t i = 0; i < (size_t)C * dim; i++) cent[i] = (float)gauss(&cs);
        for (size_t c = 0; c < C; c++) {
            double s = 0;
            for (size_t d = 0; d < dim; d++) s += (double)cent[c * dim + d] * cent[c * dim + d];
            for (size_t d = 0; d < dim; d++) cent[c * dim + d] /= (float)sqrt(s);
        }
    }
    gen_ctx g = {out, cent, n, dim, seed};
    gtr_pool_for(pool, (n + GEN_BLOCK - 1) / GEN_BLOCK, gen_task, &g);
    free(cent);
}

/* Ground truth = gtr's exact search: the index's score (score.h kernels, the float exact
 * search gives) over every vector, 32 queries per task, ties to the smaller number. */
#define TQ 32
#define TD 256
typedef struct truth_ctx { const float *x, *q; size_t n, nq, dim; uint32_t *out; } truth_ctx;
static void truth_task(void *p, size_t t, int tid)
{
    (void)tid;
    truth_ctx *c = p;
    const gtr_ix_kernels *kern = gtr_ix_kernels_select();
    size_t q0 = t * TQ, nq = c->nq - q0 < TQ ? c->nq - q0 : TQ, qs = gtr_ix_qstride(c->dim);
    float *Q = gtr_malloc_aligned(TQ * qs * sizeof *Q, NULL), *S = malloc(TQ * TD * sizeof *S);
    float best[TQ][K];
    memset(Q, 0, TQ * qs * sizeof *Q);
    for (size_t i = 0; i < nq; i++) {
        memcpy(Q + i * qs, c->q + (q0 + i) * c->dim, c->dim * sizeof *Q);
        for (int j = 0; j < K; j++) { best[i][j] = -INFINITY; c->out[(q0 + i) * K + j] = UINT32_MAX; }
    }
    for (size_t d0 = 0; d0 < c->n; d0 += TD) {
        size_t nd = c->n - d0 < TD ? c->n - d0 : TD;
        kern->score(Q, nq, qs, c->x + d0 * c->dim, nd, c->dim, S, TD);
        for (size_t i = 0; i < nq; i++) {
            float *b = best[i];
            uint32_t *o = c->out + (q0 + i) * K;
            for (size_t d = 0; d < nd; d++) {
                float s = S[i * TD + d];
                if (!(s > b[K - 1])) continue;
                int j = K - 1;
                while (j > 0 && s > b[j - 1]) { b[j] = b[j - 1]; o[j] = o[j - 1]; j--; }
                b[j] = s;
                o[j] = (uint32_t)(d0 + d);
            }
        }
    }
    gtr_free_aligned(Q);
    free(S);
}

static void save(const char *dir, const char *name, const void *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "ann_bench: cannot write %s\n", path);
        exit(1);
    }
}

/* The peak resident set since the last reset_peak_rss() (Linux: VmHWM, which writing 5 to
 * clear_refs resets), else since the start (getrusage). */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) { fputs("5", f); fclose(f); }
}

static double peak_rss_gb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    if (kb >= 0) return (double)kb / (1024.0 * 1024.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* Reads OUTDIR/name (len bytes) into a new buffer; NULL when missing or of another size. */
static void *load(const char *dir, const char *name, size_t len)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    void *b = f ? malloc(len + 1) : NULL;
    if (!b || fread(b, 1, len + 1, f) != len) { free(b); b = NULL; }
    if (f) fclose(f);
    return b;
}

static int reuse(const char *dir, const char *path, size_t nq, size_t dim)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    void *q = load(dir, "queries.f32", nq * dim * sizeof(float)), *t = load(dir, "truth.u32", nq * K * sizeof(uint32_t));
    free(q); free(t);
    return q && t;
}

/* The search rows: per NPROBE[:RERANK] of probes, recall@10 and q/s at batch 1 and 256. */
static int search_rows(const char *kind, size_t n, uint32_t lists, size_t nq, size_t dim, char *probes,
                       const char *outdir, const char *path, gtr_pool *pool, double build_s, double build_rss)
{
    gtr_error err = {0};
    float *q = load(outdir, "queries.f32", nq * dim * sizeof(float));
    uint32_t *truth = load(outdir, "truth.u32", nq * K * sizeof(uint32_t));
    if (!q || !truth) { fprintf(stderr, "ann_bench: cannot read %s/queries.f32 or truth.u32\n", outdir); return 1; }
    reset_peak_rss(); /* the search's peak below: the index (mmap'd pages it touched) alone */
    gtr_ivf *ix = gtr_ivf_open(path, &err);
    if (!ix) { fprintf(stderr, "ann_bench: %s\n", err.message); return 1; }
    /* memory search needs resident: the int8 codes, scales, rows, centroids (the float32
     * vectors are mmap'd and only the re-ranked rows are read) */
    double mem_gb = (double)(n * (dim + 8) + (size_t)lists * dim * 4) / 1e9;
    uint32_t *ids = malloc(nq * K * sizeof *ids);
    float *sc = malloc(nq * K * sizeof *sc);
    char *save_ptr = NULL;
    /* batch-1 timing on the first nq1 queries (slow settings would take minutes on all);
     * recall on all of them from the batch-256 results (the same hits: tested) */
    const char *e1 = getenv("BENCH_ANN_NQ1");
    size_t nq1 = e1 ? strtoull(e1, NULL, 10) : 200;
    if (nq1 == 0 || nq1 > nq) nq1 = nq;
    uint32_t *ids1 = malloc(K * sizeof *ids1);
    float *sc1 = malloc(K * sizeof *sc1);
    for (char *tok = strtok_r(probes, " ,", &save_ptr); tok; tok = strtok_r(NULL, " ,", &save_ptr)) {
        char *rest;
        uint32_t np = (uint32_t)strtoul(tok, &rest, 10), rr = *rest == ':' ? (uint32_t)strtoul(rest + 1, NULL, 10) : 0;
        gtr_ivf_search_opts so = {.nprobe = np, .rerank = rr, .pool = pool};
        /* batch 256: the round's queries grouped by list, lists split over the threads */
        double t = gtr_now_seconds();
        for (size_t b = 0; b < nq; b += 256) {
            size_t m = nq - b < 256 ? nq - b : 256;
            gtr_ivf_search(ix, q + b * dim, m, K, &so, ids + b * K, sc + b * K, &err);
        }
        double qps256 = (double)nq / (gtr_now_seconds() - t);
        /* batch 1: one query at a time, its lists split over the threads */
        t = gtr_now_seconds();
        for (size_t i = 0; i < nq1; i++) gtr_ivf_search(ix, q + i * dim, 1, K, &so, ids1, sc1, &err);
        double qps1 = (double)nq1 / (gtr_now_seconds() - t);
        size_t hit = 0;
        for (size_t i = 0; i < nq; i++)
            for (int a = 0; a < K; a++)
                for (int b2 = 0; b2 < K; b2++) hit += ids[i * K + a] == truth[i * K + b2];
        char name[128];
        snprintf(name, sizeof name, "gtr IVF-int8 lists=%u nprobe=%u rerank=%u", lists, np, rr ? rr : 4 * K);
        printf("| %s | %zu | %s | %.4f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n", kind, n, name,
               (double)hit / (double)(nq * K), qps1, qps256, build_s, build_rss, peak_rss_gb(), mem_gb);
        fflush(stdout);
    }
    free(ids1); free(sc1);
    gtr_ivf_close(ix);
    free(q); free(truth); free(ids); free(sc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: ann_bench clustered|uniform N DIM NQ THREADS LISTS \"NPROBE...\" OUTDIR\n");
        return 2;
    }
    int clustered = !strcmp(argv[1], "clustered");
    size_t n = strtoull(argv[2], NULL, 10), dim = strtoull(argv[3], NULL, 10);
    size_t nq = strtoull(argv[4], NULL, 10);
    int threads = atoi(argv[5]);
    uint32_t lists = (uint32_t)strtoul(argv[6], NULL, 10);
    const char *outdir = argv[8];
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(threads, &err);
    const char *mm = getenv("ANN_BENCH_MMAP");
    int use_mmap = mm && !strcmp(mm, "1");
    /* ANN_BENCH_REUSE=1 with OUTDIR/gtr.ivf, queries.f32 and truth.u32 from an earlier run
     * (same arguments): search only, no generation or build (profiling the search phase) */
    const char *re = getenv("ANN_BENCH_REUSE");
    char path[4096];
    snprintf(path, sizeof path, "%s/gtr.ivf", outdir);
    if (pool && re && !strcmp(re, "1") && reuse(outdir, path, nq, dim)) {
        int rc = search_rows(argv[1], n, lists, nq, dim, argv[7], outdir, path, pool, NAN, NAN);
        gtr_pool_free(pool);
        return rc;
    }
    gtr_mmap map = {0};
    float *x = use_mmap ? NULL : malloc(n * dim * sizeof *x), *q = malloc(nq * dim * sizeof *q);
    uint32_t *truth = malloc(nq * K * sizeof *truth);
    if (!pool || (!x && !use_mmap) || !q || !truth) { fprintf(stderr, "ann_bench: out of memory\n"); return 1; }
    if (use_mmap) {
        /* chunks of 64k vectors; chunk c seeded 1000 + c, so the data do not depend on RAM */
        char vp[4096];
        snprintf(vp, sizeof vp, "%s/vectors.f32", outdir);
        FILE *f = fopen(vp, "wb");
        float *chunk = malloc(65536 * dim * sizeof *chunk);
        for (size_t b = 0; f && chunk && b < n; b += 65536) {
            size_t m = n - b < 65536 ? n - b : 65536;
            gen(chunk, m, dim, clustered, 1000 + b / 65536, pool);
            if (fwrite(chunk, sizeof *chunk, m * dim, f) != m * dim) { fclose(f); f = NULL; }
        }
        free(chunk);
        if (!f || fclose(f) != 0 || gtr_mmap_open(vp, &map, &err)) {
            fprintf(stderr, "ann_bench: cannot write/map %s\n", vp);
            return 1;
        }
        x = (float *)(uintptr_t)map.data;
    } else
        gen(x, n, dim, clustered, 1, pool);
    gen(q, nq, dim, clustered, 2, pool);
    truth_ctx tc = {x, q, n, nq, dim, truth};
    gtr_pool_for(pool, (nq + TQ - 1) / TQ, truth_task, &tc);
    if (!use_mmap) save(outdir, "vectors.f32", x, n * dim * sizeof *x);
    save(outdir, "queries.f32", q, nq * dim * sizeof *q);
    save(outdir, "truth.u32", truth, nq * K * sizeof *truth);

    reset_peak_rss(); /* the build's peak: the input vectors plus what the build allocates */
    double t0 = gtr_now_seconds();
    gtr_ivf_build_opts bo = {.n_lists = lists, .seed = 1, .pool = pool};
    if (gtr_ivf_build(path, x, n, (int)dim, &bo, &err)) { fprintf(stderr, "ann_bench: %s\n", err.message); return 1; }
    double build_s = gtr_now_seconds() - t0, build_rss = peak_rss_gb();
    if (use_mmap) gtr_mmap_close(&map); /* search reads the mmap'd index file only */
    else free(x);
    free(q); free(truth);
    int rc = search_rows(argv[1], n, lists, nq, dim, argv[7], outdir, path, pool, build_s, build_rss);
    gtr_pool_free(pool);
    return rc;
}
