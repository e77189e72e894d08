/* search_bench.c — exact dense search speed on random unit vectors: builds (or reuses) an index
 * of N documents x D dimensions through the normal build path (a corpus of numbers and an
 * encoder that turns each number into a fixed random unit vector), then measures
 *   - open + checksum verification,
 *   - single-query latency (one query per call, as an interactive search),
 *   - batch throughput (B queries per call, as a BEIR run),
 * with the float32 scan and, when the index has one, the compact first pass. It also writes
 * the queries (queries.npy), the vector section's place in the index file (layout.txt) and its
 * top-k (hits_b1.txt / hits_bB.txt, document numbers) so bench/search_faiss.py can run FAISS
 * IndexFlatIP on the same vectors and check that the top-k agree.
 *
 *   search_bench --docs N --dim D [--queries Q] [--batch B] [--k K] [--threads T]
 *                [--compact f16|int8] --dir DIR
 */
#include "data/data.h"
#include "index/index_internal.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int dim;
} rand_enc;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* a random direction: normal coordinates (Box-Muller), normalised */
static void random_unit(uint64_t seed, float *v, int dim)
{
    uint64_t s = seed;
    double n = 0;
    for (int k = 0; k < dim; k += 2) {
        double u1 = ((double)(splitmix(&s) >> 11) + 1) * 0x1p-53, u2 = (double)(splitmix(&s) >> 11) * 0x1p-53;
        double r = sqrt(-2 * log(u1));
        v[k] = (float)(r * cos(2 * M_PI * u2));
        if (k + 1 < dim) v[k + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    for (int k = 0; k < dim; k++) n += (double)v[k] * v[k];
    for (int k = 0; k < dim; k++) v[k] = (float)(v[k] / sqrt(n));
}

static gtr_status enc_fn(void *user, const char *const *texts, const size_t *lens, size_t n, float *out,
                         gtr_error *err)
{
    rand_enc *e = user;
    (void)err;
    for (size_t i = 0; i < n; i++) {
        /* texts are not NUL-terminated: lens[i] bytes of digits */
        uint64_t seed = 0;
        for (size_t j = 0; j < lens[i]; j++) seed = seed * 10 + (uint64_t)(texts[i][j] - '0');
        random_unit(seed, out + i * (size_t)e->dim, e->dim);
    }
    return GTR_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void write_hits(const char *path, const gtr_hit *h, const size_t *n, size_t nq, size_t k)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (size_t q = 0; q < nq; q++) {
        for (size_t r = 0; r < n[q]; r++) fprintf(f, "%s%zu:%.9g", r ? " " : "", h[q * k + r].doc, h[q * k + r].score);
        fputc('\n', f);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    size_t n = 100000, nq = 200, batch = 256, k = 10;
    int dim = 768, threads = 0;
    const char *dir = "build/bench/search", *compact_s = NULL;
    static const struct option lo[] = {{"docs", 1, 0, 'n'}, {"dim", 1, 0, 'd'}, {"queries", 1, 0, 'q'},
                                       {"batch", 1, 0, 'b'}, {"k", 1, 0, 'k'}, {"threads", 1, 0, 't'},
                                       {"compact", 1, 0, 'c'}, {"dir", 1, 0, 'o'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'd': dim = atoi(optarg); break;
        case 'q': nq = strtoull(optarg, NULL, 10); break;
        case 'b': batch = strtoull(optarg, NULL, 10); break;
        case 'k': k = strtoull(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        case 'c': compact_s = optarg; break;
        case 'o': dir = optarg; break;
        default: return 2;
        }
    }
    gtr_index_compact compact = !compact_s ? GTR_COMPACT_NONE : !strcmp(compact_s, "f16") ? GTR_COMPACT_F16 : GTR_COMPACT_INT8;
    gtr_error e;
    if (gtr_mkdirs(dir, &e)) return fprintf(stderr, "%s\n", e.message), 1;
    char path[4096], corpus[4096];
    snprintf(path, sizeof path, "%s/rand-%zu-%d%s%s.gtri", dir, n, dim, compact_s ? "-" : "", compact_s ? compact_s : "");
    snprintf(corpus, sizeof corpus, "%s/rand-%zu.jsonl", dir, n);
    gtr_pool *pool = gtr_pool_create(threads, &e);
    threads = gtr_pool_size(pool);
    rand_enc re = {dim};
    gtr_index_encoder enc = {enc_fn, &re, dim, 0x5eed0000ull + (uint64_t)dim, "random unit vectors (bench)"};

    gtr_index *ix = gtr_index_open(path, 0, pool, &e);
    if (!ix || gtr_index_count(ix) != n || gtr_index_dim(ix) != dim) {
        gtr_index_free(ix);
        FILE *f = fopen(corpus, "w");
        if (!f) return perror(corpus), 1;
        for (size_t i = 0; i < n; i++) fprintf(f, "{\"_id\":\"%zu\",\"text\":\"%zu\"}\n", i, i + 1);
        fclose(f);
        gtr_index_build_options o = gtr_index_default_build_options();
        o.batch_size = 1024;
        o.checkpoint_every = 1u << 20;
        o.compact = compact;
        o.snippet_bytes = 0;
        double t0 = gtr_now_seconds();
        if (gtr_index_build_with(&enc, corpus, NULL, path, &o, NULL, &e)) return fprintf(stderr, "%s\n", e.message), 1;
        fprintf(stderr, "built %s: %zu docs in %.1f s\n", path, n, gtr_now_seconds() - t0);
        remove(corpus);
    }
    gtr_index_free(ix);
    double t0 = gtr_now_seconds();
    ix = gtr_index_open(path, 0, pool, &e);
    double t_open = gtr_now_seconds() - t0;
    if (!ix) return fprintf(stderr, "%s\n", e.message), 1;

    size_t nqs = nq > batch ? nq : batch;
    float *Q = malloc(nqs * (size_t)dim * sizeof *Q);
    for (size_t i = 0; i < nqs; i++) random_unit(0xabcdef00ull + i, Q + i * (size_t)dim, dim);
    char p2[4200];
    snprintf(p2, sizeof p2, "%s/queries.npy", dir);
    gtr_npy_save_f32(p2, Q, nqs, (size_t)dim, &e);
    /* where the vectors sit in the file, for numpy.memmap */
    const gtr_ix_section *vs = NULL;
    for (uint32_t i = 0; i < ix->h.n_sections; i++)
        if (ix->h.sections[i].kind == GTR_IX_VECTORS) vs = &ix->h.sections[i];
    snprintf(p2, sizeof p2, "%s/layout.txt", dir);
    FILE *lf = fopen(p2, "w");
    if (lf) {
        fprintf(lf, "%s %llu %zu %d\n", path, (unsigned long long)vs->offset, n, dim);
        fclose(lf);
    }

    printf("index %zu x %d%s, %d threads, kernels %s, open+verify %.3f s\n", n, dim,
           compact_s ? (compact == GTR_COMPACT_F16 ? " (+f16 copy)" : " (+int8 copy)") : "", threads,
           gtr_ix_kernels_select()->name, t_open);
    gtr_hit *hits = malloc(nqs * k * sizeof *hits);
    size_t *nh = malloc(nqs * sizeof *nh);
    for (int mode = 0; mode < (compact_s ? 2 : 1); mode++) {
        gtr_search_options so = gtr_index_default_search_options();
        so.pool = pool;
        so.use_compact = mode;
        /* warm the page cache and the code */
        gtr_index_search(ix, Q, 1, k, &so, hits, nh, &e);
        double *lat = malloc(nq * sizeof *lat), sum = 0;
        for (size_t i = 0; i < nq; i++) {
            double a = gtr_now_seconds();
            if (gtr_index_search(ix, Q + i * (size_t)dim, 1, k, &so, hits + i * k, nh + i, &e))
                return fprintf(stderr, "%s\n", e.message), 1;
            lat[i] = gtr_now_seconds() - a;
            sum += lat[i];
        }
        snprintf(p2, sizeof p2, "%s/hits_b1%s.txt", dir, mode ? "_compact" : "");
        write_hits(p2, hits, nh, nq, k);
        qsort(lat, nq, sizeof *lat, cmp_double);
        const char *what = mode ? (compact == GTR_COMPACT_F16 ? "gtr f16 pass + exact" : "gtr int8 pass + exact") : "gtr exact f32";
        printf("RESULT | %zu | %d | %d | %s | 1 | %.1f | %.2f | %.2f |\n", n, dim, threads, what, nq / sum,
               1e3 * lat[nq / 2], 1e3 * lat[nq * 99 / 100]);
        free(lat);
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double a = gtr_now_seconds();
            if (gtr_index_search(ix, Q, batch, k, &so, hits, nh, &e)) return fprintf(stderr, "%s\n", e.message), 1;
            double t = gtr_now_seconds() - a;
            if (t < best) best = t;
        }
        snprintf(p2, sizeof p2, "%s/hits_b%zu%s.txt", dir, batch, mode ? "_compact" : "");
        write_hits(p2, hits, nh, batch, k);
        printf("RESULT | %zu | %d | %d | %s | %zu | %.1f | %.2f | - |\n", n, dim, threads, what, batch, batch / best,
               1e3 * best / (double)batch);
    }
    free(hits);
    free(nh);
    free(Q);
    gtr_index_free(ix);
    gtr_pool_free(pool);
    return 0;
}
