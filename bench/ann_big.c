/* ann_big.c — gtr's IVF index on a corpus larger than memory (issue 14's 10M x 768 run,
 * bench/bench_ann_10m.sh). Three steps, each its own process so that each one's peak RSS is
 * measured alone (/usr/bin/time -v):
 *   ann_big build  N DIM LISTS THREADS INDEX        vectors generated on the fly, streamed into
 *                                                   gtr_ivf_build_stream: no float32 copy
 *                                                   other than the index's own, on disk
 *   ann_big truth  N DIM NQ THREADS TRUTH           exact top-10 of NQ queries over the same
 *                                                   vectors (regenerated), with gtr's exact score
 *   ann_big search N DIM NQ THREADS "NPROBE[:RERANK]..." INDEX TRUTH
 *                                                   recall@10 and q/s at batch 1 and 256
 * Data: the clustered mixture of ann_bench.c (1000 random centres on the unit sphere, seed 42;
 * each vector a centre plus Gaussian noise of sigma 0.6/sqrt(dim) per coordinate, normalised),
 * except that vector i is a function of i alone (its own splitmix64 stream, seeded from
 * (set, i), both Box-Muller outputs used), so any vector can be made without the ones before
 * it and generation runs on every thread. Corpus set 1, queries set 2. */
#include "index/ivf.h"
#include "index/score.h"
#include "bench_rng.h"

#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K 10
#define C 1000

static double unit(uint64_t *s) { return ((double)(sm(s) >> 11) + 0.5) / 9007199254740992.0; }

typedef struct gen_ctx { float *cent; size_t dim; uint64_t set; float *out; size_t first; } gen_ctx;

static float *centres(size_t dim)
{
    uint64_t cs = 42;
    float *cent = malloc((size_t)C * dim * sizeof *cent);
    if (!cent) return NULL;
    for (size_t i = 0; i < (size_t)C * dim; i += 2) {
        double r = sqrt(-2 * log(unit(&cs))), t = 6.283185307179586 * unit(&cs);
        cent[i] = (float)(r * cos(t));
        if (i + 1 < (size_t)C * dim) cent[i + 1] = (float)(r * sin(t));
    }
    for (size_t c = 0; c < C; c++) {
        double s = 0;
        for (size_t d = 0; d < dim; d++) s += (double)cent[c * dim + d] * cent[c * dim + d];
        for (size_t d = 0; d < dim; d++) cent[c * dim + d] /= (float)sqrt(s);
    }
    return cent;
}

static void gen_one(const gen_ctx *g, size_t i, float *v)
{
    uint64_t s0 = (g->set << 40) ^ (uint64_t)i, s = sm(&s0);
    const float *c = g->cent + (sm(&s) % C) * g->dim;
    double sigma = 0.6 / sqrt((double)g->dim), norm = 0;
    for (size_t d = 0; d < g->dim; d += 2) {
        double r = sigma * sqrt(-2 * log(unit(&s))), t = 6.283185307179586 * unit(&s);
        v[d] = (float)(c[d] + r * cos(t));
        if (d + 1 < g->dim) v[d + 1] = (float)(c[d + 1] + r * sin(t));
    }
    for (size_t d = 0; d < g->dim; d++) norm += (double)v[d] * v[d];
    float inv = (float)(1.0 / sqrt(norm));
    for (size_t d = 0; d < g->dim; d++) v[d] *= inv;
}

static void gen_task(void *p, size_t i, int tid)
{
    (void)tid;
    const gen_ctx *g = p;
    gen_one(g, g->first + i, g->out + i * g->dim);
}

typedef struct src { gen_ctx g; gtr_pool *pool; } src;
static gtr_status src_read(void *user, size_t first, size_t count, float *out, gtr_error *err)
{
    (void)err;
    src *s = user;
    gen_ctx g = s->g;
    g.out = out;
    g.first = first;
    gtr_pool_for(count > 64 ? s->pool : NULL, count, gen_task, &g);
    return GTR_OK;
}

/* Peak and current resident memory, split into anonymous (malloc) and file-backed pages
 * (the mmap'd index; the kernel can drop those under memory pressure). */
static void status_lines(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char l[256];
    while (f && fgets(l, sizeof l, f))
        if (!strncmp(l, "VmHWM", 5) || !strncmp(l, "VmRSS", 5) || !strncmp(l, "RssAnon", 7) || !strncmp(l, "RssFile", 7))
            printf("%s", l);
    if (f) fclose(f);
}

static double now(void) { return gtr_now_seconds(); }

/* ---- truth: every query against every vector, in blocks, with the exact score ---- */
#define TQ 32
#define TD 256
typedef struct truth_ctx {
    const float *Q;    /* [nq][qs] padded */
    size_t nq, qs, dim, n0, nd;
    const float *X;    /* this block, nd vectors */
    float *best;       /* [nq][K] */
    uint32_t *ids;     /* [nq][K] */
    const gtr_ix_kernels *kern;
} truth_ctx;
static void truth_task(void *p, size_t t, int tid)
{
    (void)tid;
    truth_ctx *c = p;
    size_t q0 = t * TQ, nq = c->nq - q0 < TQ ? c->nq - q0 : TQ;
    float S[TQ * TD];
    for (size_t d0 = 0; d0 < c->nd; d0 += TD) {
        size_t nd = c->nd - d0 < TD ? c->nd - d0 : TD;
        c->kern->score(c->Q + q0 * c->qs, nq, c->qs, c->X + d0 * c->dim, nd, c->dim, S, TD);
        for (size_t i = 0; i < nq; i++) {
            float *b = c->best + (q0 + i) * K;
            uint32_t *o = c->ids + (q0 + i) * K;
            for (size_t d = 0; d < nd; d++) {
                float s = S[i * TD + d];
                if (!(s > b[K - 1])) continue; /* ties: the smaller number stays first */
                int j = K - 1;
                while (j > 0 && s > b[j - 1]) { b[j] = b[j - 1]; o[j] = o[j - 1]; j--; }
                b[j] = s;
                o[j] = (uint32_t)(c->n0 + d0 + d);
            }
        }
    }
}

static float *make_queries(float *cent, size_t nq, size_t dim)
{
    float *q = malloc(nq * dim * sizeof *q);
    if (!q) return NULL;
    gen_ctx g = {cent, dim, 2, q, 0};
    for (size_t i = 0; i < nq; i++) gen_one(&g, i, q + i * dim);
    return q;
}

/* one line on stderr every 30 s (assignments done in this call: k-means sample rows, then
 * vectors), so a log shows where the time went */
typedef struct clock_pair { double t0, last; } clock_pair;
static int progress(void *user, uint64_t done, uint64_t total)
{
    clock_pair *c = user;
    double t = now() - c->t0;
    if (t - c->last >= 30 || done == total) {
        c->last = t;
        fprintf(stderr, "ann_big: %.0f s: %llu / %llu assignments\n", t, (unsigned long long)done,
                (unsigned long long)total);
    }
    return 0;
}

static int die(const char *what, const gtr_error *err)
{
    fprintf(stderr, "ann_big: %s%s%s\n", what, err && err->message[0] ? ": " : "",
            err ? err->message : "");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) goto usage;
    const char *cmd = argv[1];
    gtr_error err = {0};
    if (!strcmp(cmd, "build") && argc == 7) {
        size_t n = strtoull(argv[2], NULL, 10), dim = strtoull(argv[3], NULL, 10);
        uint32_t lists = (uint32_t)strtoul(argv[4], NULL, 10);
        gtr_pool *pool = gtr_pool_create(atoi(argv[5]), &err);
        float *cent = centres(dim);
        if (!pool || !cent) return die("setup", &err);
        src s = {{cent, dim, 1, NULL, 0}, pool};
        gtr_ivf_build_stats st;
        double t0 = now();
        clock_pair cp = {t0, 0};
        gtr_ivf_build_opts bo = {.n_lists = lists, .seed = 1, .pool = pool, .stats = &st,
                                 .progress = progress, .progress_user = &cp};
        if (gtr_ivf_build_stream(argv[6], n, (int)dim, src_read, &s, &bo, &err)) return die("build", &err);
        printf("build_s %.1f\n", now() - t0);
        if (st.docs_resumed) printf("resumed %llu vectors from a checkpoint\n", (unsigned long long)st.docs_resumed);
        if (st.note[0]) printf("note: %s\n", st.note);
        status_lines();
        free(cent);
        gtr_pool_free(pool);
        return 0;
    }
    if (!strcmp(cmd, "truth") && argc == 7) {
        size_t n = strtoull(argv[2], NULL, 10), dim = strtoull(argv[3], NULL, 10);
        size_t nq = strtoull(argv[4], NULL, 10), qs = gtr_ix_qstride(dim), blk = 16384;
        gtr_pool *pool = gtr_pool_create(atoi(argv[5]), &err);
        float *cent = centres(dim), *q = cent ? make_queries(cent, nq, dim) : NULL;
        float *Q = gtr_malloc_aligned(nq * qs * sizeof *Q, &err), *X = malloc(blk * dim * sizeof *X);
        float *best = malloc(nq * K * sizeof *best);
        uint32_t *ids = malloc(nq * K * sizeof *ids);
        if (!pool || !q || !Q || !X || !best || !ids) return die("setup", &err);
        memset(Q, 0, nq * qs * sizeof *Q);
        for (size_t i = 0; i < nq; i++) memcpy(Q + i * qs, q + i * dim, dim * sizeof *Q);
        for (size_t i = 0; i < nq * K; i++) { best[i] = -INFINITY; ids[i] = UINT32_MAX; }
        src s = {{cent, dim, 1, NULL, 0}, pool};
        double t0 = now();
        for (size_t b = 0; b < n; b += blk) {
            size_t m = n - b < blk ? n - b : blk;
            src_read(&s, b, m, X, &err);
            truth_ctx tc = {Q, nq, qs, dim, b, m, X, best, ids, gtr_ix_kernels_select()};
            gtr_pool_for(pool, (nq + TQ - 1) / TQ, truth_task, &tc);
        }
        FILE *f = fopen(argv[6], "wb");
        if (!f || fwrite(ids, sizeof *ids, nq * K, f) != nq * K || fclose(f) != 0) return die("cannot write truth", NULL);
        printf("truth_s %.1f\n", now() - t0);
        return 0;
    }
    if (!strcmp(cmd, "search") && argc == 9) {
        size_t n = strtoull(argv[2], NULL, 10), dim = strtoull(argv[3], NULL, 10);
        size_t nq = strtoull(argv[4], NULL, 10);
        const char *e1 = getenv("BENCH_ANN_NQ1");
        size_t nq1 = e1 ? strtoull(e1, NULL, 10) : 200;
        if (nq1 == 0 || nq1 > nq) nq1 = nq;
        gtr_pool *pool = gtr_pool_create(atoi(argv[5]), &err);
        float *cent = centres(dim), *q = cent ? make_queries(cent, nq, dim) : NULL;
        uint32_t *truth = malloc(nq * K * sizeof *truth), *ids = malloc(nq * K * sizeof *ids);
        float *sc = malloc(nq * K * sizeof *sc);
        FILE *f = fopen(argv[8], "rb");
        if (!pool || !q || !truth || !ids || !sc) return die("setup", &err);
        if (!f || fread(truth, sizeof *truth, nq * K, f) != nq * K) return die("cannot read truth", NULL);
        fclose(f);
        double t0 = now();
        gtr_ivf *ix = gtr_ivf_open(argv[7], &err);
        if (!ix) return die("open", &err);
        if (gtr_ivf_size(ix) != n) return die("index size differs from N", NULL);
        printf("open_s %.1f (maps the file, verifies its checksum)\n", now() - t0);
        /* BENCH_ANN_PREFETCH=0/1 overrides open's choice; BENCH_ANN_COLD=1 evicts the file
         * from the page cache first (every re-ranked row then comes from disk) */
        const char *pf = getenv("BENCH_ANN_PREFETCH"), *cold = getenv("BENCH_ANN_COLD");
        if (pf) gtr_ivf_set_prefetch(ix, atoi(pf) != 0);
        bool evict = cold && atoi(cold);
        uint32_t lists = gtr_ivf_n_lists(ix);
        char *save = NULL;
        for (char *tok = strtok_r(argv[6], " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
            char *rest;
            uint32_t np = (uint32_t)strtoul(tok, &rest, 10), rr = *rest == ':' ? (uint32_t)strtoul(rest + 1, NULL, 10) : 0;
            gtr_ivf_search_opts so = {.nprobe = np, .rerank = rr, .pool = pool};
            if (evict) {
                int fd = open(argv[7], O_RDONLY);
                if (fd >= 0) { posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); close(fd); }
            }
            /* batch 1 first (a cold page cache shows here, as it would for a user) */
            uint32_t id1[K];
            float s1[K];
            double t = now();
            for (size_t i = 0; i < nq1; i++)
                if (gtr_ivf_search(ix, q + i * dim, 1, K, &so, id1, s1, &err)) return die("search", &err);
            double qps1 = (double)nq1 / (now() - t);
            t = now();
            for (size_t b = 0; b < nq; b += 256) {
                size_t m = nq - b < 256 ? nq - b : 256;
                if (gtr_ivf_search(ix, q + b * dim, m, K, &so, ids + b * K, sc + b * K, &err)) return die("search", &err);
            }
            double qps256 = (double)nq / (now() - t);
            size_t hit = 0;
            for (size_t i = 0; i < nq; i++)
                for (int a = 0; a < K; a++)
                    for (int b2 = 0; b2 < K; b2++) hit += ids[i * K + a] == truth[i * K + b2];
            printf("| clustered | %zu | gtr IVF-int8 lists=%u nprobe=%u rerank=%u | %.4f | %.1f | %.1f |\n", n,
                   lists, np, rr ? rr : 4 * K, (double)hit / (double)(nq * K), qps1, qps256);
            fflush(stdout);
        }
        status_lines();
        gtr_ivf_close(ix);
        return 0;
    }
usage:
    fprintf(stderr, "usage: ann_big build N DIM LISTS THREADS INDEX | truth N DIM NQ THREADS TRUTH |\n"
                    "       search N DIM NQ THREADS \"NPROBE[:RERANK]...\" INDEX TRUTH\n");
    return 2;
}
