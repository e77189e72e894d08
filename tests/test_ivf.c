/* test_ivf.c — the approximate (IVF) index against brute-force exact search computed here,
 * in double precision, independently of the library's search code (issue 14). */
#include "support/testutil.h"

#include "index/ivf.h"
#include "index/ivf_scan.h"
#include "index/score.h"

#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 32
#define N 3000
#define NQ 60
#define K 10
#define LISTS 24

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static double unif(uint64_t *s) { return (double)(rng(s) >> 11) / 9007199254740992.0 - 0.5; }

/* Clustered unit vectors: a few random centres plus noise, like real embeddings. */
static float *make_vecs(size_t n, uint64_t seed)
{
    uint64_t s = seed, cs = 12345;
    static float centres[16][DIM];
    for (int c = 0; c < 16; c++)
        for (int d = 0; d < DIM; d++) centres[c][d] = (float)unif(&cs);
    float *v = malloc(n * DIM * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(rng(&s) % 16);
        double norm = 0;
        for (int d = 0; d < DIM; d++) {
            float x = centres[c][d] + 0.35f * (float)unif(&s);
            v[i * DIM + d] = x;
            norm += (double)x * x;
        }
        for (int d = 0; d < DIM; d++) v[i * DIM + d] /= (float)sqrt(norm);
    }
    return v;
}

/* Exact top-K by double-precision inner product (ties: smaller id). */
static void exact_topk(const float *vecs, size_t n, const float *q, uint32_t *out)
{
    double best[K];
    for (int j = 0; j < K; j++) { best[j] = -INFINITY; out[j] = UINT32_MAX; }
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < DIM; d++) s += (double)q[d] * vecs[i * DIM + d];
        int j = K;
        while (j > 0 && s > best[j - 1]) j--;
        if (j == K) continue;
        memmove(best + j + 1, best + j, (size_t)(K - 1 - j) * sizeof *best);
        memmove(out + j + 1, out + j, (size_t)(K - 1 - j) * sizeof *out);
        best[j] = s;
        out[j] = (uint32_t)i;
    }
}

typedef struct fixture {
    float *vecs, *queries;
    uint32_t truth[NQ * K];
    char *path;
    gtr_ivf *ix;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->vecs = make_vecs(N, 7);
    f->queries = make_vecs(NQ, 99);
    for (int q = 0; q < NQ; q++) exact_topk(f->vecs, N, f->queries + q * DIM, f->truth + q * K);
    f->path = tu_tmp("a.ivf");
    gtr_error err = {0};
    gtr_ivf_build_opts o = {.n_lists = LISTS, .seed = 3};
    TU_OK(gtr_ivf_build(f->path, f->vecs, N, DIM, &o, &err), &err);
    f->ix = gtr_ivf_open(f->path, &err);
    if (!f->ix) fail_msg("%s", err.message);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gtr_ivf_close(f->ix);
    free(f->vecs); free(f->queries); free(f->path); free(f);
    return 0;
}

static size_t hits(const uint32_t *got, const uint32_t *truth)
{
    size_t h = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) h += got[i] == truth[j];
    return h;
}

/* With every candidate of the probed lists re-ranked exactly, the recall is exactly the share
 * of the true top-K that lies in the probed lists (the nprobe lists whose centroids score
 * highest, computed here from the index's centroids). */
static void test_recall_equals_probed_share(void **state)
{
    fixture *f = *state;
    const float *cent = gtr_ivf_centroids(f->ix);
    for (uint32_t nprobe = 1; nprobe <= LISTS; nprobe *= 2) {
        uint32_t ids[NQ * K];
        float sc[NQ * K];
        gtr_error err = {0};
        gtr_ivf_search_opts so = {.nprobe = nprobe, .rerank = N};
        TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &so, ids, sc, &err), &err);
        size_t got = 0, bound = 0;
        for (int q = 0; q < NQ; q++) {
            const float *qv = f->queries + q * DIM;
            double cs[LISTS];
            for (int l = 0; l < LISTS; l++) {
                cs[l] = 0;
                for (int d = 0; d < DIM; d++) cs[l] += (double)qv[d] * cent[l * DIM + d];
            }
            for (int j = 0; j < K; j++) {
                uint32_t l = gtr_ivf_list_of(f->ix, f->truth[q * K + j]);
                int better = 0; /* lists ranked above l */
                for (int m = 0; m < LISTS; m++) better += cs[m] > cs[l];
                bound += (uint32_t)better < nprobe;
            }
            got += hits(ids + q * K, f->truth + q * K);
        }
        /* float vs double scoring may swap near-ties at the K-th place: allow one per query */
        assert_true(got + NQ >= bound);
        assert_true(got <= bound + NQ);
        if (nprobe * 2 > LISTS && nprobe != LISTS) nprobe = LISTS / 2;
    }
}

/* The int8 stage with the default re-rank keeps recall close to the exact re-rank of every
 * probed candidate: the bound is that exact re-rank's recall, measured in the same run. */
static void test_int8_stage_recall(void **state)
{
    fixture *f = *state;
    uint32_t a[NQ * K], b[NQ * K];
    float sc[NQ * K];
    gtr_error err = {0};
    gtr_ivf_search_opts all = {.nprobe = 8, .rerank = N}, dflt = {.nprobe = 8};
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &all, a, sc, &err), &err);
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &dflt, b, sc, &err), &err);
    size_t ha = 0, hb = 0;
    for (int q = 0; q < NQ; q++) {
        ha += hits(a + q * K, f->truth + q * K);
        hb += hits(b + q * K, f->truth + q * K);
    }
    assert_true(hb <= ha);
    assert_true((double)hb >= 0.98 * (double)ha);
    /* all lists probed: every true neighbour was a candidate */
    gtr_ivf_search_opts full = {.nprobe = LISTS};
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &full, b, sc, &err), &err);
    hb = 0;
    for (int q = 0; q < NQ; q++) hb += hits(b + q * K, f->truth + q * K);
    assert_true(hb + NQ >= (size_t)NQ * K);
}

static void test_threads_same_results(void **state)
{
    fixture *f = *state;
    uint32_t a[NQ * K], b[NQ * K];
    float sa[NQ * K], sb[NQ * K];
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(3, &err);
    assert_non_null(pool);
    gtr_ivf_search_opts o1 = {.nprobe = 4}, o3 = {.nprobe = 4, .pool = pool, .parallel_min = 1};
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o1, a, sa, &err), &err);
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o3, b, sb, &err), &err);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(sa, sb, sizeof sa);
    /* the build too: same seed, 3 threads, same bytes */
    char *p2 = tu_tmp("b.ivf");
    gtr_ivf_build_opts bo = {.n_lists = LISTS, .seed = 3, .pool = pool};
    TU_OK(gtr_ivf_build(p2, f->vecs, N, DIM, &bo, &err), &err);
    assert_int_equal(tu_system("cmp -s '%s' '%s'", f->path, p2), 0);
    free(p2);
    gtr_pool_free(pool);
}

/* The VNNI scan kernel (when this CPU has it) gives the portable kernel's int32 sums exactly,
 * for dims with and without a partial 64-byte tail, every tile shape, extreme codes. */
static void test_scan_kernels_identical(void **state)
{
    (void)state;
    gtr_ivf_dots_fn fast = gtr_ivf_dots_select();
    if (fast == gtr_ivf_dots_generic) skip(); /* no VNNI here: nothing to compare */
    static const size_t dims[] = {1, 32, 64, 100, 768, 1000};
    uint64_t s = 77;
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        size_t dim = dims[di], qs = gtr_ivf_qstride(dim), nr = 13, nq = 9;
        int8_t *codes = malloc(nr * dim), *Q = gtr_malloc_aligned(nq * qs, NULL);
        int8_t const *qp[9];
        int32_t qsum[9], a[9 * 13], b[9 * 13];
        for (size_t i = 0; i < nr * dim; i++) /* some rows at the extremes */
            codes[i] = (int8_t)(i % 5 == 0 ? (i % 2 ? 127 : -127) : (int)(rng(&s) % 255) - 127);
        for (size_t j = 0; j < nq; j++) {
            float qf[1000];
            for (size_t d = 0; d < dim; d++) qf[d] = (float)unif(&s) * (j == 0 ? 1e-3f : 1.0f);
            float sc;
            gtr_ivf_quantize_query(qf, dim, Q + j * qs, &sc, &qsum[j]);
            qp[j] = Q + j * qs;
        }
        for (size_t r = 1; r <= nr; r += 3)
            for (size_t j = 1; j <= nq; j++) {
                memset(a, 0, sizeof a);
                memset(b, 0, sizeof b);
                gtr_ivf_dots_generic(codes, r, dim, qp, qsum, j, a, 13);
                fast(codes, r, dim, qp, qsum, j, b, 13);
                assert_memory_equal(a, b, sizeof a);
            }
        free(codes);
        gtr_free_aligned(Q);
    }
}

/* The query quantiser against the C library's own rounding (lrintf: nearest, ties to even)
 * and maximum (fmaxf), on random rows and on rows whose scaled values fall exactly on .5
 * (the max is 127, so row d = (d - 127.5) * max / 127 hits every tie), zero and NaN rows. */
static void test_quantize_query_reference(void **state)
{
    (void)state;
    enum { D = 300 };
    uint64_t s = 31;
    float q[D];
    int8_t got[D + 64] __attribute__((aligned(64)));
    for (int row = 0; row < 40; row++) {
        for (int d = 0; d < D; d++) {
            if (row == 0) q[d] = 0;
            else if (row == 1) q[d] = (float)((d % 255) - 127) + 0.5f * (d % 2); /* ties */
            else if (row == 2) q[d] = d == 7 ? NAN : (float)unif(&s);
            else q[d] = (float)unif(&s) * (float)row;
        }
        if (row == 1) q[0] = 127.0f; /* the max, so the scale is 1 and x.5 stays a tie */
        float sc;
        int32_t sum;
        gtr_ivf_quantize_query(q, D, got, &sc, &sum);
        float mx = 0;
        for (int d = 0; d < D; d++) mx = fmaxf(mx, fabsf(q[d]));
        float ws = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / ws;
        int32_t wsum = 0;
        assert_true(sc == ws);
        for (int d = 0; d < D; d++) {
            long v = lrintf(q[d] * inv);
            if (isnan(q[d] * inv)) v = -127; /* lrintf's x86 result (LONG_MIN), clamped */
            int8_t w = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            assert_int_equal(got[d], w);
            wsum += w;
        }
        for (int d = D; d < (int)gtr_ivf_qstride(D); d++) assert_int_equal(got[d], 0);
        assert_int_equal(sum, wsum);
    }
}

/* The scan's score-and-threshold step: the fast kernel (when this CPU has it) gives the
 * portable one's rows and float scores exactly, for every length around the 16-wide vectors
 * and thresholds below all, at a score itself (kept: >=), between, above all. */
static void test_above_kernels_identical(void **state)
{
    (void)state;
    gtr_ivf_above_fn fast = gtr_ivf_above_select();
    if (fast == gtr_ivf_above_generic) skip();
    uint64_t s = 91;
    static const size_t lens[] = {0, 1, 15, 16, 17, 33, 64};
    int32_t dots[64];
    float scales[64], sa[64 + 16], sb[64 + 16];
    uint32_t ia[64 + 16], ib[64 + 16];
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li];
        for (size_t r = 0; r < n; r++) {
            dots[r] = (int32_t)(rng(&s) % 4000001) - 2000000;
            scales[r] = (float)(unif(&s) + 0.5) * 1e-2f;
        }
        float qsc = (float)(unif(&s) + 0.5) * 1e-2f;
        float mid = n ? (float)dots[n / 2] * (qsc * scales[n / 2]) : 0.0f;
        const float thr[] = {-INFINITY, mid, 0.0f, 1e30f};
        for (size_t t = 0; t < 4; t++) {
            size_t ma = gtr_ivf_above_generic(dots, n, qsc, scales, thr[t], ia, sa);
            size_t mb = fast(dots, n, qsc, scales, thr[t], ib, sb);
            assert_int_equal(ma, mb);
            if (ma) {
                assert_memory_equal(ia, ib, ma * sizeof *ia);
                assert_memory_equal(sa, sb, ma * sizeof *sa);
            }
            if (t == 0) assert_int_equal(ma, n);
            if (t == 1 && n) assert_true(ma >= 1); /* the row the threshold came from */
        }
    }
}

/* Any thread count, and a batch against one query at a time (queries grouped by list or
 * not), give the same hits and scores. */
static void test_threads_and_batch_same_results(void **state)
{
    fixture *f = *state;
    uint32_t a[NQ * K], b[NQ * K];
    float sa[NQ * K], sb[NQ * K];
    gtr_error err = {0};
    gtr_ivf_search_opts o1 = {.nprobe = 5};
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o1, a, sa, &err), &err);
    for (int t = 2; t <= 4; t++) {
        gtr_pool *pool = gtr_pool_create(t, &err);
        assert_non_null(pool);
        gtr_ivf_search_opts ot = {.nprobe = 5, .pool = pool, .parallel_min = 1};
        TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &ot, b, sb, &err), &err);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(sa, sb, sizeof sa);
        for (int q = 0; q < NQ; q++)
            TU_OK(gtr_ivf_search(f->ix, f->queries + q * DIM, 1, K, &ot, b + q * K, sb + q * K, &err), &err);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_equal(sa, sb, sizeof sa);
        gtr_pool_free(pool);
    }
}

/* The probed lists are the nprobe whose centroids score highest by the index's exact score
 * (score.h; ties: smaller list), although search scores the centroids in two passes (int8
 * first, exact only within a bound): with every candidate re-ranked, the hits and score bits
 * equal the exact top K among the vectors of those lists, computed here by scoring every
 * centroid and every vector. Half the queries lie midway between two centroids, so their
 * first-pass scores nearly tie and only the exact pass can order them. */
static void test_probes_are_exact_top(void **state)
{
    fixture *f = *state;
    const gtr_ix_kernels *kern = gtr_ix_kernels_select();
    const float *cent = gtr_ivf_centroids(f->ix);
    size_t qs = gtr_ix_qstride(DIM);
    float *Q = gtr_malloc_aligned(NQ * qs * sizeof *Q, NULL), *qv = malloc(NQ * DIM * sizeof *qv);
    assert_non_null(Q);
    memset(Q, 0, NQ * qs * sizeof *Q);
    uint64_t s = 5;
    for (int q = 0; q < NQ; q++) {
        if (q % 2) { /* midway between two centroids */
            int a = (int)(rng(&s) % LISTS), b = (a + 1 + (int)(rng(&s) % (LISTS - 1))) % LISTS;
            double n2 = 0;
            for (int d = 0; d < DIM; d++) {
                qv[q * DIM + d] = cent[a * DIM + d] + cent[b * DIM + d];
                n2 += (double)qv[q * DIM + d] * qv[q * DIM + d];
            }
            for (int d = 0; d < DIM; d++) qv[q * DIM + d] /= (float)sqrt(n2);
        } else
            memcpy(qv + q * DIM, f->queries + q * DIM, DIM * sizeof *qv);
        memcpy(Q + q * qs, qv + q * DIM, DIM * sizeof *Q);
    }
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(3, &err);
    assert_non_null(pool);
    static const uint32_t nprobes[] = {1, 2, 3, 5, LISTS - 1};
    for (size_t pi = 0; pi < sizeof nprobes / sizeof *nprobes; pi++) {
        uint32_t np = nprobes[pi];
        uint32_t ids[NQ * K], ids1[K];
        float sc[NQ * K], sc1[K];
        gtr_ivf_search_opts o = {.nprobe = np, .rerank = N, .pool = pool, .parallel_min = 1};
        TU_OK(gtr_ivf_search(f->ix, qv, NQ, K, &o, ids, sc, &err), &err);
        for (int q = 0; q < NQ; q++) {
            float cs[LISTS];
            kern->score(Q + q * qs, 1, qs, cent, LISTS, DIM, cs, LISTS);
            bool probed[LISTS] = {0};
            for (uint32_t j = 0; j < np; j++) { /* the best list not yet taken */
                int best = -1;
                for (int l = 0; l < LISTS; l++)
                    if (!probed[l] && (best < 0 || cs[l] > cs[best])) best = l;
                probed[best] = true;
            }
            float bs[K];
            uint32_t bi[K];
            int nb = 0;
            for (uint32_t v = 0; v < N; v++) {
                if (!probed[gtr_ivf_list_of(f->ix, v)]) continue;
                float x;
                kern->score(Q + q * qs, 1, qs, f->vecs + (size_t)v * DIM, 1, DIM, &x, 1);
                int j = nb < K ? nb++ : K;
                while (j > 0 && x > bs[j - 1]) { if (j < K) { bs[j] = bs[j - 1]; bi[j] = bi[j - 1]; } j--; }
                if (j < K) { bs[j] = x; bi[j] = v; }
            }
            for (int j = nb; j < K; j++) { bi[j] = UINT32_MAX; bs[j] = -INFINITY; } /* a short list */
            assert_memory_equal(ids + q * K, bi, sizeof bi);
            assert_memory_equal(sc + q * K, bs, sizeof bs);
            /* one query at a time, on one thread: the same */
            gtr_ivf_search_opts o1 = {.nprobe = np, .rerank = N};
            TU_OK(gtr_ivf_search(f->ix, qv + q * DIM, 1, K, &o1, ids1, sc1, &err), &err);
            assert_memory_equal(ids1, bi, sizeof bi);
            assert_memory_equal(sc1, bs, sizeof bs);
        }
    }
    gtr_pool_free(pool);
    gtr_free_aligned(Q);
    free(qv);
}

static void test_filter_honoured(void **state)
{
    fixture *f = *state;
    uint8_t allow[(N + 7) / 8];
    for (size_t i = 0; i < N; i++) /* drop every true neighbour of query 0, and odd ids */
        if (i % 2 == 0) allow[i / 8] |= (uint8_t)(1u << (i % 8));
        else allow[i / 8] &= (uint8_t)~(1u << (i % 8));
    for (int j = 0; j < K; j++) allow[f->truth[j] / 8] &= (uint8_t)~(1u << (f->truth[j] % 8));
    uint32_t ids[NQ * K];
    float sc[NQ * K];
    gtr_error err = {0};
    gtr_ivf_search_opts o = {.nprobe = LISTS, .allow = allow};
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o, ids, sc, &err), &err);
    for (int i = 0; i < NQ * K; i++) {
        assert_int_not_equal(ids[i], UINT32_MAX);
        assert_true(allow[ids[i] / 8] >> (ids[i] % 8) & 1);
    }
}

static void corrupt_refused(const char *src, const char *dst, long at, int truncate)
{
    char *data;
    size_t len;
    gtr_error err = {0};
    TU_OK(gtr_read_file(src, 0, &data, &len, &err), &err);
    if (truncate) len = (size_t)at;
    else data[at] ^= 0x10;
    tu_write(dst, data, len);
    free(data);
    gtr_ivf *ix = gtr_ivf_open(dst, &err);
    assert_null(ix);
    assert_int_equal(err.code, GTR_ERR_FORMAT);
    assert_non_null(strstr(err.message, dst));
}

static void test_corrupt_and_truncated_refused(void **state)
{
    fixture *f = *state;
    char *p = tu_tmp("bad.ivf");
    corrupt_refused(f->path, p, 20, 0);      /* header */
    corrupt_refused(f->path, p, 5000, 0);    /* body */
    corrupt_refused(f->path, p, 40000, 1);   /* truncated */
    corrupt_refused(f->path, p, 10, 1);      /* shorter than a header */
    free(p);
}

static void test_bad_args(void **state)
{
    fixture *f = *state;
    gtr_error err = {0};
    gtr_ivf_build_opts o = {.n_lists = N + 1};
    char *p = tu_tmp("none.ivf");
    assert_int_equal(gtr_ivf_build(p, f->vecs, N, DIM, &o, &err), GTR_ERR_INVALID_ARG);
    assert_false(gtr_file_exists(p)); /* nothing half-written */
    assert_null(gtr_ivf_open(p, &err));
    free(p);
}

/* ---- the streaming build (a corpus larger than memory, bench/bench_ann_10m.sh) ---- */

#define SN (2 * GTR_IVF_BLOCK + 123) /* three blocks, the last one partial */
typedef struct stream_src {
    const float *v;
    size_t next;    /* the next vector the in-order pass must ask for */
    size_t singles; /* one-vector requests (the k-means sample) */
    size_t fail_at; /* fail a request covering this vector (0: never) */
    bool order_ok;
} stream_src;

static gtr_status stream_read(void *user, size_t first, size_t count, float *out, gtr_error *err)
{
    stream_src *s = user;
    if (s->fail_at && first <= s->fail_at && s->fail_at < first + count)
        return gtr_seterr(err, GTR_ERR_IO, "test source: read failed at %zu", s->fail_at);
    if (count == 1 && s->next == 0) s->singles++; /* the sample comes before the pass */
    else {
        if (first != s->next || count == 0 || count > GTR_IVF_BLOCK) s->order_ok = false;
        s->next = first + count;
    }
    memcpy(out, s->v + first * DIM, count * DIM * sizeof *out);
    return GTR_OK;
}

/* The streamed build writes the same bytes as the in-memory one (both thread counts), reads
 * every vector once in order after the sample, and its index finds the exact top K. */
static void test_stream_build_same_bytes(void **state)
{
    (void)state;
    float *v = make_vecs(SN, 17), *q = make_vecs(NQ, 18);
    char *pa = tu_tmp("mem.ivf"), *pb = tu_tmp("stream.ivf"), *pc = tu_tmp("stream3.ivf");
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(3, &err);
    assert_non_null(pool);
    gtr_ivf_build_opts o = {.n_lists = 40, .seed = 5, .sample = 16};
    TU_OK(gtr_ivf_build(pa, v, SN, DIM, &o, &err), &err);
    stream_src s = {.v = v, .order_ok = true};
    TU_OK(gtr_ivf_build_stream(pb, SN, DIM, stream_read, &s, &o, &err), &err);
    assert_true(s.order_ok);
    assert_int_equal(s.next, SN);
    assert_int_equal(s.singles, 40 * 16);
    assert_int_equal(tu_system("cmp -s '%s' '%s'", pa, pb), 0);
    gtr_ivf_build_opts o3 = o;
    o3.pool = pool;
    stream_src s3 = {.v = v, .order_ok = true};
    TU_OK(gtr_ivf_build_stream(pc, SN, DIM, stream_read, &s3, &o3, &err), &err);
    assert_int_equal(tu_system("cmp -s '%s' '%s'", pa, pc), 0);

    /* every list probed, every candidate re-ranked: the exact top K (up to float ties) */
    gtr_ivf *ix = gtr_ivf_open(pb, &err);
    if (!ix) fail_msg("%s", err.message);
    uint32_t *got = malloc(NQ * K * sizeof *got), truth[K];
    float *sc = malloc(NQ * K * sizeof *sc);
    gtr_ivf_search_opts all = {.nprobe = 40, .rerank = SN, .pool = pool, .parallel_min = 1};
    TU_OK(gtr_ivf_search(ix, q, NQ, K, &all, got, sc, &err), &err);
    size_t h = 0;
    for (int i = 0; i < NQ; i++) {
        exact_topk(v, SN, q + i * DIM, truth);
        h += hits(got + i * K, truth);
    }
    assert_true(h + NQ >= (size_t)NQ * K);
    gtr_ivf_close(ix);

    /* a source that fails: its error, and nothing written (not even a temp file) */
    char *pd = tu_tmp("failed.ivf");
    stream_src sf = {.v = v, .order_ok = true, .fail_at = GTR_IVF_BLOCK + 5};
    assert_int_equal(gtr_ivf_build_stream(pd, SN, DIM, stream_read, &sf, &o, &err), GTR_ERR_IO);
    assert_non_null(strstr(err.message, "read failed"));
    assert_false(gtr_file_exists(pd));
    assert_int_equal(tu_system("ls '%s'.tmp.* >/dev/null 2>&1", pd) == 0, 0);
    free(pa); free(pb); free(pc); free(pd); free(got); free(sc); free(v); free(q);
    gtr_pool_free(pool);
}

/* ---- crash safety and resume (ivf_build.c) */

/* progress callbacks: stop at the first block of the pass (after k-means), or die by SIGKILL
 * at the pass's last block, after the work past the last checkpoint is on disk */
static int stop_in_pass(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    return done > total - SN;
}
static int stop_in_kmeans(void *user, uint64_t done, uint64_t total)
{
    (void)user; (void)done; (void)total;
    return 1;
}
static int kill_at_end(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    if (done >= total) raise(SIGKILL);
    return 0;
}

static bool same_file(const char *a, const char *b) { return tu_system("cmp -s '%s' '%s'", a, b) == 0; }
static bool no_work_files(const char *p)
{
    return tu_system("test ! -e '%s.partial' -a ! -e '%s.ckpt'", p, p) == 0;
}

/* An interrupted build of v into path (stopped by the callback after its first checkpoint). */
static void interrupt_build(const char *path, const float *v, const gtr_ivf_build_opts *base)
{
    gtr_ivf_build_opts o = *base;
    o.progress = stop_in_pass;
    gtr_error err = {0};
    assert_int_equal(gtr_ivf_build(path, v, SN, DIM, &o, &err), GTR_ERR_INTERRUPTED);
    assert_non_null(strstr(err.message, "stopped after 8192 of"));
    assert_false(gtr_file_exists(path));
    assert_int_equal(tu_system("test -s '%s.partial' -a -s '%s.ckpt'", path, path), 0);
}

/* A build killed (SIGKILL) with vectors written past its last checkpoint, and one stopped by
 * its progress callback, each resume to the bytes of an uninterrupted build and remove their
 * work files; the checkpoint interval (and so the block size) does not change the bytes. */
static void test_build_resumes_after_kill_and_stop(void **state)
{
    (void)state;
    float *v = make_vecs(SN, 31);
    char *ref = tu_tmp("res-ref.ivf"), *pk = tu_tmp("res-kill.ivf"), *ps = tu_tmp("res-stop.ivf");
    char *pb = tu_tmp("res-blocks.ivf");
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(2, &err);
    assert_non_null(pool);
    gtr_ivf_build_opts o = {.n_lists = 40, .seed = 9, .sample = 16, .iters = 4, .checkpoint_every = 9000};
    TU_OK(gtr_ivf_build(ref, v, SN, DIM, &o, &err), &err);
    gtr_ivf_build_opts ob = o;
    ob.checkpoint_every = 777; /* blocks of 777 vectors, a checkpoint after each */
    ob.pool = pool;
    TU_OK(gtr_ivf_build(pb, v, SN, DIM, &ob, &err), &err);
    assert_true(same_file(ref, pb));
    assert_true(no_work_files(pb));

    /* killed: blocks end at 8192, 16384 (checkpointed: 16384 - 0 >= 9000) and SN (written,
       then the kill before its checkpoint or the final sections) */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gtr_ivf_build_opts oc = o;
        oc.progress = kill_at_end;
        gtr_error e;
        gtr_ivf_build(pk, v, SN, DIM, &oc, &e);
        _exit(3); /* not reached */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_false(gtr_file_exists(pk));
    struct stat sb;
    char *part = tu_tmp("res-kill.ivf.partial");
    assert_int_equal(stat(part, &sb), 0);
    assert_true((size_t)sb.st_size > (size_t)SN * DIM * sizeof(float)); /* the last block is in */
    gtr_ivf_build_stats st;
    gtr_ivf_build_opts or = o;
    or.stats = &st;
    or.pool = pool;
    TU_OK(gtr_ivf_build(pk, v, SN, DIM, &or, &err), &err);
    assert_int_equal(st.docs_resumed, 16384);
    assert_string_equal(st.note, "");
    assert_true(same_file(ref, pk));
    assert_true(no_work_files(pk));

    /* stopped by the callback: checkpointed where it stopped */
    interrupt_build(ps, v, &o);
    TU_OK(gtr_ivf_build(ps, v, SN, DIM, &or, &err), &err);
    assert_int_equal(st.docs_resumed, 8192);
    assert_true(same_file(ref, ps));
    assert_true(no_work_files(ps));

    /* given lists (ann-build --add: no k-means): resumes the same way */
    gtr_ivf *rix = gtr_ivf_open(ref, &err);
    if (!rix) fail_msg("%s", err.message);
    char *gref = tu_tmp("res-given-ref.ivf"), *pg = tu_tmp("res-given.ivf");
    gtr_ivf_build_opts og = o;
    og.centroids = gtr_ivf_centroids(rix);
    og.seed = 11;
    TU_OK(gtr_ivf_build(gref, v, SN, DIM, &og, &err), &err);
    og.progress = stop_in_pass;
    assert_int_equal(gtr_ivf_build(pg, v, SN, DIM, &og, &err), GTR_ERR_INTERRUPTED);
    og.progress = NULL;
    og.stats = &st;
    TU_OK(gtr_ivf_build(pg, v, SN, DIM, &og, &err), &err);
    assert_int_equal(st.docs_resumed, 8192);
    assert_true(same_file(gref, pg));
    assert_true(no_work_files(pg));
    gtr_ivf_close(rix);
    free(gref); free(pg);

    /* stopped during k-means: nothing to resume, nothing left, the old file untouched */
    gtr_ivf_build_opts ok = o;
    ok.progress = stop_in_kmeans;
    assert_int_equal(gtr_ivf_build(ps, v, SN, DIM, &ok, &err), GTR_ERR_INTERRUPTED);
    assert_true(same_file(ref, ps));
    assert_true(no_work_files(ps));
    free(ref); free(pk); free(ps); free(pb); free(part); free(v);
    gtr_pool_free(pool);
}

/* Work that cannot be trusted or is not this build's is discarded with a note, and the build
 * still writes the bytes a fresh build writes: a damaged vector in the partial file, a damaged
 * checkpoint, a source whose vectors changed, other options, and no_resume. A build while
 * another holds the partial file is refused. */
static void test_build_discards_foreign_work(void **state)
{
    (void)state;
    float *v = make_vecs(SN, 32);
    char *ref = tu_tmp("dis-ref.ivf"), *p = tu_tmp("dis.ivf"), *part = tu_tmp("dis.ivf.partial");
    char *ck = tu_tmp("dis.ivf.ckpt"), *other = tu_tmp("dis-other.ivf");
    gtr_error err = {0};
    gtr_ivf_build_opts o = {.n_lists = 40, .seed = 9, .sample = 16, .iters = 4, .checkpoint_every = 9000};
    TU_OK(gtr_ivf_build(ref, v, SN, DIM, &o, &err), &err);
    gtr_ivf_build_stats st;
    gtr_ivf_build_opts or = o;
    or.stats = &st;

    struct { const char *what, *note; } cases[] = {
        {"vector", "the partial file does not match its checkpoint; started over"},
        {"ckpt", "the checkpoint was damaged; started over"},
        {"source", "the vectors changed since the interrupted build; started over"},
        {"seed", "an interrupted build had other vectors or options; started over"},
        {"restart", "discarded an interrupted build as asked"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        interrupt_build(p, v, &o);
        gtr_ivf_build_opts oc = or;
        const float *src = v;
        float *changed = NULL;
        const char *expect = ref;
        if (!strcmp(cases[c].what, "vector")) { /* one byte of the last saved vector */
            struct stat sb;
            assert_int_equal(stat(part, &sb), 0);
            assert_int_equal(tu_system("printf 'X' | dd of='%s' bs=1 seek=%lld conv=notrunc status=none", part,
                                       (long long)sb.st_size - 7), 0);
        } else if (!strcmp(cases[c].what, "ckpt")) {
            assert_int_equal(tu_system("printf 'X' | dd of='%s' bs=1 seek=130 conv=notrunc status=none", ck), 0);
        } else if (!strcmp(cases[c].what, "source")) {
            changed = malloc((size_t)SN * DIM * sizeof *changed);
            memcpy(changed, v, (size_t)SN * DIM * sizeof *changed);
            changed[100 * DIM + 3] = -changed[100 * DIM + 3];
            src = changed;
            TU_OK(gtr_ivf_build(other, changed, SN, DIM, &o, &err), &err);
            expect = other;
        } else if (!strcmp(cases[c].what, "seed")) {
            oc.seed = 10;
            gtr_ivf_build_opts o10 = o;
            o10.seed = 10;
            TU_OK(gtr_ivf_build(other, v, SN, DIM, &o10, &err), &err);
            expect = other;
        } else {
            oc.no_resume = true;
        }
        TU_OK(gtr_ivf_build(p, src, SN, DIM, &oc, &err), &err);
        assert_string_equal(st.note, cases[c].note);
        assert_int_equal(st.docs_resumed, 0);
        if (!same_file(expect, p)) fail_msg("%s: not the bytes of a fresh build", cases[c].what);
        assert_true(no_work_files(p));
        assert_int_equal(remove(p), 0);
        free(changed);
    }

    /* a second build of the same file while one holds its partial file is refused */
    int fd = open(part, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(gtr_ivf_build(p, v, SN, DIM, &o, &err), GTR_ERR_IO);
    assert_non_null(strstr(err.message, "another build is writing it"));
    assert_false(gtr_file_exists(p));
    close(fd);
    assert_int_equal(remove(part), 0);
    free(ref); free(p); free(part); free(ck); free(other); free(v);
}

/* Asking the kernel for the re-ranked rows ahead (used for indexes larger than RAM) changes
 * nothing in the results, at batch 1 and batched, on one and several threads. */
static void test_prefetch_same_results(void **state)
{
    fixture *f = *state;
    uint32_t a[NQ * K], b[NQ * K];
    float sa[NQ * K], sb[NQ * K];
    gtr_error err = {0};
    gtr_pool *pool = gtr_pool_create(2, &err);
    assert_non_null(pool);
    gtr_ivf_search_opts o = {.nprobe = 6, .pool = pool, .parallel_min = 1};
    gtr_ivf_set_prefetch(f->ix, false);
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o, a, sa, &err), &err);
    gtr_ivf_set_prefetch(f->ix, true);
    TU_OK(gtr_ivf_search(f->ix, f->queries, NQ, K, &o, b, sb, &err), &err);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(sa, sb, sizeof sa);
    gtr_ivf_search_opts o1 = {.nprobe = 6};
    for (int q = 0; q < NQ; q++)
        TU_OK(gtr_ivf_search(f->ix, f->queries + q * DIM, 1, K, &o1, b + q * K, sb + q * K, &err), &err);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(sa, sb, sizeof sa);
    gtr_ivf_set_prefetch(f->ix, false);
    gtr_pool_free(pool);
}

/* The CRC of a||b from the CRCs of its parts (the build checksums its sections out of order). */
static void test_crc_combine(void **state)
{
    (void)state;
    uint8_t buf[5000];
    uint64_t s = 3;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rng(&s);
    uint32_t whole = gtr_crc32(0, buf, sizeof buf);
    static const size_t cuts[] = {0, 1, 64, 1234, 4999, 5000};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        size_t c = cuts[i];
        assert_int_equal(gtr_crc32_combine(gtr_crc32(0, buf, c), gtr_crc32(0, buf + c, sizeof buf - c),
                                           sizeof buf - c), whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_equals_probed_share),
        cmocka_unit_test(test_int8_stage_recall),
        cmocka_unit_test(test_threads_same_results),
        cmocka_unit_test(test_scan_kernels_identical),
        cmocka_unit_test(test_above_kernels_identical),
        cmocka_unit_test(test_quantize_query_reference),
        cmocka_unit_test(test_threads_and_batch_same_results),
        cmocka_unit_test(test_probes_are_exact_top),
        cmocka_unit_test(test_filter_honoured),
        cmocka_unit_test(test_corrupt_and_truncated_refused),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_stream_build_same_bytes),
        cmocka_unit_test(test_build_resumes_after_kill_and_stop),
        cmocka_unit_test(test_build_discards_foreign_work),
        cmocka_unit_test(test_prefetch_same_results),
        cmocka_unit_test(test_crc_combine),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
