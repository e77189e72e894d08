/* test_index.c — the dense index without a model: a deterministic fake encoder turns each
 * passage into a pseudo-random unit vector, so builds, resumes, --add, corrupt files and
 * exact search can be checked quickly and exactly. */
#include "support/testutil.h"

#include "index/index_internal.h"
#include "index/score.h"
#include "index_ref.h"

#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- the fake encoder: vector = f(hash of the text); texts starting "same" share one */

typedef struct {
    int dim;
    size_t calls, docs;
} fake_enc;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

static void random_unit(uint64_t seed, float *v, int dim)
{
    uint64_t s = seed | 1;
    double n = 0;
    for (int k = 0; k < dim; k++) {
        double g = rng_unif(&s) + rng_unif(&s) + rng_unif(&s) - 1.5;
        v[k] = (float)g;
        n += g * g;
    }
    for (int k = 0; k < dim; k++) v[k] = (float)(v[k] / sqrt(n));
}

static gtr_status fake_encode(void *user, const char *const *texts, const size_t *lens, size_t n,
                              float *out, gtr_error *err)
{
    (void)err;
    fake_enc *f = user;
    f->calls++;
    f->docs += n;
    for (size_t i = 0; i < n; i++) {
        uint64_t seed = lens[i] >= 4 && memcmp(texts[i], "same", 4) == 0 ? 42 : gtr_fnv1a64(texts[i], lens[i], 7);
        random_unit(seed, out + i * (size_t)f->dim, f->dim);
    }
    return GTR_OK;
}

static gtr_index_encoder make_enc(fake_enc *f, int dim, uint64_t fp)
{
    f->dim = dim;
    f->calls = f->docs = 0;
    gtr_index_encoder e = {fake_encode, f, dim, fp, "fake encoder"};
    return e;
}

/* corpus of n documents d<first>..: {"_id": "d00012", "title": "T12", "text": "passage 12 ..."} */
static void write_corpus(const char *path, size_t first, size_t n, const char *extra_line)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = first; i < first + n; i++)
        fprintf(f, "{\"_id\": \"d%05zu\", \"title\": \"T%zu\", \"text\": \"passage %zu about topic %zu, "
                   "caf\\u00e9 \\u00fcber\"}\n", i, i, i, i % 17);
    if (extra_line) fputs(extra_line, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *n)
{
    char *d;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, n, &e), &e);
    return d;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *da = slurp(a, &na), *db = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
}

static void assert_same_hits(const gtr_hit *a, const gtr_hit *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].doc, b[i].doc);
        assert_memory_equal(&a[i].score, &b[i].score, sizeof a[i].score);
    }
}

static void random_queries(float *Q, size_t nq, int dim, uint64_t seed)
{
    for (size_t i = 0; i < nq; i++) random_unit(seed + i * 7919, Q + i * (size_t)dim, dim);
}

static gtr_index *build_and_open(const char *name, size_t n, int dim, gtr_index_compact compact)
{
    char *corpus = tu_tmp("corpus_bf.jsonl"), *path = tu_tmp(name);
    write_corpus(corpus, 0, n, NULL);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, dim, 0x1234);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.compact = compact;
    o.batch_size = 50;
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, &o, NULL, &e), &e);
    gtr_index *ix = gtr_index_open(path, 0, NULL, &e);
    if (!ix) fail_msg("%s", e.message);
    free(corpus);
    free(path);
    return ix;
}

/* ---- tests */

static void test_kernels_agree(void **state)
{
    (void)state;
    /* every ISA computes the same bits as the definition, for dims with and without tails */
    const gtr_ix_kernels *ks[3] = {gtr_ix_kernels_generic(), gtr_ix_kernels_avx2(), gtr_ix_kernels_avx512()};
    gtr_cpu cpu = gtr_cpu_detect();
    bool usable[3] = {true, cpu.avx2 && cpu.fma && cpu.f16c, cpu.avx512f && cpu.avx512bw && cpu.avx512vl};
    size_t dims[] = {1, 7, 16, 17, 48, 64, 100, 768};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        size_t dim = dims[di], qs = gtr_ix_qstride(dim), nq = 9, nd = 23;
        float *Q = gtr_calloc_aligned(nq * qs * 4, NULL), *D = malloc(nd * dim * 4), *S = malloc(nq * nd * 4);
        uint64_t s = 99 + dim;
        for (size_t i = 0; i < nq; i++)
            for (size_t k = 0; k < dim; k++) Q[i * qs + k] = (float)(rng_unif(&s) - 0.5);
        for (size_t i = 0; i < nd * dim; i++) D[i] = (float)(rng_unif(&s) - 0.5);
        D[0] = -0.0f; /* signed zeros must come out the same too */
        for (int ki = 0; ki < 3; ki++) {
            if (!ks[ki] || !usable[ki]) continue;
            /* unblocked, then cache blockings of every shape: groups of 4 to all documents,
             * passes of 4 queries to all (nq = 9: a leftover query), the leftover query by the
             * ISA's 1 x dt1 tile or one document at a time (search_lone = 1, as on AMD) */
            static const gtr_blocking blks[] = {{0, 4, 4, 0, 0, 0, 0},   {0, 8, 8, 0, 0, 0, 0},  {0, 12, 4, 0, 0, 0, 0},
                                                {0, 64, 340, 0, 0, 0, 0}, {0, 4, 4, 0, 1, 0, 0}, {0, 64, 340, 0, 1, 0, 0}};
            for (size_t bi = 0; bi <= sizeof blks / sizeof blks[0]; bi++) {
                memset(S, 0, nq * nd * 4);
                if (bi == 0)
                    ks[ki]->score(Q, nq, qs, D, nd, dim, S, nd);
                else
                    ks[ki]->score_blocked(&blks[bi - 1], Q, nq, qs, D, nd, dim, S, nd);
                for (size_t i = 0; i < nq; i++)
                    for (size_t j = 0; j < nd; j++) {
                        float want = ref_score(Q + i * qs, D + j * dim, dim);
                        if (memcmp(&S[i * nd + j], &want, 4) != 0)
                            fail_msg("%s blocking %zu dim %zu (%zu,%zu): %.9g vs %.9g", ks[ki]->name, bi,
                                     dim, i, j, S[i * nd + j], want);
                    }
            }
        }
        gtr_free_aligned(Q);
        free(D);
        free(S);
    }
}

/* The many-query kernels (score_packed: one GEMM per lane, scores transposed) give the
 * definition's bits for every query count (one 16-query vector partly used, whole 64-query
 * blocks, several passes), every document count (tiles of 6 and the rest), dims with and
 * without a padded last step, either variant of the kernel (AMD's, Intel's: the prefetch and the unrolled step loop);
 * and find_ge finds what a scalar scan finds. */
static void test_packed_kernels_agree(void **state)
{
    (void)state;
    const gtr_ix_kernels *ks[3] = {gtr_ix_kernels_generic(), gtr_ix_kernels_avx2(), gtr_ix_kernels_avx512()};
    gtr_cpu cpu = gtr_cpu_detect();
    bool usable[3] = {true, cpu.avx2 && cpu.fma && cpu.f16c, cpu.avx512f && cpu.avx512bw && cpu.avx512vl};
    size_t dims[] = {1, 7, 16, 17, 100, 768}, nqs[] = {1, 15, 16, 17, 64, 70, 130}, nds[] = {1, 5, 6, 13, 23};
    size_t passes[] = {0, 64, 128, 4096};
    int tested = 0;
    for (int ki = 0; ki < 3; ki++) {
        if (!ks[ki] || !usable[ki] || !ks[ki]->score_packed) continue;
        tested++;
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            size_t dim = dims[di], qs = gtr_ix_qstride(dim), nqmax = 130, ndmax = 23;
            float *Q = gtr_calloc_aligned(nqmax * qs * 4, NULL), *D = malloc(ndmax * dim * 4);
            float *Qp = gtr_malloc_aligned(gtr_ix_packed_floats(nqmax, dim) * 4, NULL);
            float *S = malloc(ndmax * 144 * 4);
            uint64_t s = 7 + dim;
            for (size_t i = 0; i < nqmax; i++)
                for (size_t k = 0; k < dim; k++) Q[i * qs + k] = (float)(rng_unif(&s) - 0.5);
            for (size_t i = 0; i < ndmax * dim; i++) D[i] = (float)(rng_unif(&s) - 0.5);
            D[0] = -0.0f;
            Q[0] = 0.0f; /* (query 0, document 0) starts with a -0 product */
            for (size_t qi = 0; qi < sizeof nqs / sizeof nqs[0]; qi++)
                for (size_t ni = 0; ni < sizeof nds / sizeof nds[0]; ni++)
                    for (size_t pi = 0; pi < 2 * sizeof passes / sizeof passes[0]; pi++) {
                        size_t nq = nqs[qi], nd = nds[ni], ldq = (nq + 15) / 16 * 16;
                        gtr_blocking b = {0, 4, passes[pi / 2], 4, 0, 0, pi % 2 == 1};
                        gtr_ix_pack_queries(Q, nq, qs, dim, Qp);
                        memset(S, 0xff, ndmax * 144 * 4);
                        ks[ki]->score_packed(&b, Qp, nq, D, nd, dim, S, ldq);
                        for (size_t i = 0; i < nq; i++)
                            for (size_t j = 0; j < nd; j++) {
                                float want = ref_score(Q + i * qs, D + j * dim, dim);
                                if (memcmp(&S[j * ldq + i], &want, 4) != 0)
                                    fail_msg("%s packed dim %zu nq %zu nd %zu pass %zu spread %d (%zu,%zu): %.9g vs %.9g",
                                             ks[ki]->name, dim, nq, nd, passes[pi / 2], (int)b.search_pf_spread, i, j,
                                             S[j * ldq + i], want);
                            }
                    }
            gtr_free_aligned(Q);
            gtr_free_aligned(Qp);
            free(D);
            free(S);
        }
    }
    if (usable[2] && gtr_ix_kernels_avx512()) assert_int_equal(tested, 1);
    /* find_ge: the first i >= i0 with !(s[i] < t[i]), NaN included, for every ISA */
    float sc[37], th[37];
    uint64_t s = 5;
    for (int trial = 0; trial < 200; trial++) {
        for (int i = 0; i < 37; i++) {
            sc[i] = (float)rng_unif(&s);
            th[i] = rng_unif(&s) < 0.9 ? 2.0f : (float)rng_unif(&s);
        }
        if (trial % 7 == 0) sc[(size_t)(rng_unif(&s) * 37)] = NAN;
        if (trial % 5 == 0) th[(size_t)(rng_unif(&s) * 37)] = -INFINITY;
        size_t n = (size_t)(rng_unif(&s) * 38), i0 = (size_t)(rng_unif(&s) * (double)(n + 1));
        size_t want = i0;
        while (want < n && sc[want] < th[want]) want++;
        for (int ki = 0; ki < 3; ki++) {
            if (!ks[ki] || !usable[ki] || !ks[ki]->find_ge) continue;
            size_t got = ks[ki]->find_ge(sc, th, i0, n);
            if (got != want) fail_msg("%s find_ge(i0 %zu, n %zu) = %zu, want %zu", ks[ki]->name, i0, n, got, want);
        }
    }
}

/* A document-split search (gtr-mpi search --split docs): the top-k of each range, merged by
 * score and then id (the library's order), is the whole index's top-k, hit for hit; the
 * compact copy is not used for a range; a range outside the index is refused. */
static const gtr_index *g_range_ix;
static int hit_order(const void *pa, const void *pb)
{
    const gtr_hit *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return -gtr_ix_id_cmp(g_range_ix, a->doc, b->doc);
}

static void test_search_doc_range(void **state)
{
    (void)state;
    gtr_error e;
    const size_t n = 700, nq = 9, k = 50, parts = 3;
    const int dim = 13;
    gtr_index *ix = build_and_open("range.gtri", n, dim, GTR_COMPACT_INT8);
    g_range_ix = ix;
    float *Q = malloc(nq * (size_t)dim * 4);
    random_queries(Q, nq, dim, 77);
    gtr_hit *whole = calloc(nq * k, sizeof *whole), *part = calloc(parts * nq * k, sizeof *part);
    size_t nw[9], np[3][9];
    gtr_search_options so = gtr_index_default_search_options();
    TU_OK(gtr_index_search(ix, Q, nq, k, &so, whole, nw, &e), &e);
    so.use_compact = 1;
    for (size_t r = 0; r < parts; r++) {
        so.doc_begin = n * r / parts;
        so.doc_end = n * (r + 1) / parts;
        TU_OK(gtr_index_search(ix, Q, nq, k, &so, part + r * nq * k, np[r], &e), &e);
    }
    for (size_t q = 0; q < nq; q++) {
        gtr_hit m[150];
        size_t c = 0;
        for (size_t r = 0; r < parts; r++)
            for (size_t j = 0; j < np[r][q]; j++) {
                const gtr_hit *h = &part[(r * nq + q) * k + j];
                assert_true(h->doc >= n * r / parts && h->doc < n * (r + 1) / parts);
                m[c++] = *h;
            }
        qsort(m, c, sizeof *m, hit_order);
        assert_int_equal(nw[q], k);
        for (size_t j = 0; j < k; j++) {
            assert_int_equal(m[j].doc, whole[q * k + j].doc);
            assert_true(m[j].score == whole[q * k + j].score);
        }
    }
    so.doc_begin = 10;
    so.doc_end = n + 1;
    assert_int_equal(gtr_index_search(ix, Q, nq, k, &so, whole, nw, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "outside"));
    so.doc_begin = so.doc_end = 5; /* empty */
    TU_OK(gtr_index_search(ix, Q, nq, k, &so, whole, nw, &e), &e);
    for (size_t q = 0; q < nq; q++) assert_int_equal(nw[q], 0);
    free(Q);
    free(whole);
    free(part);
    gtr_index_free(ix);
}

static void test_search_matches_brute_force(void **state)
{
    (void)state;
    gtr_error e;
    struct { size_t n; int dim; size_t nq, k; int threads; } cases[] = {
        {1000, 768, 6, 10, 1}, {1000, 768, 5, 100, 3}, {3000, 48, 300, 10, 2},
        {700, 13, 4, 1000, 4}, {700, 13, 1, 1, 1}, {129, 64, 17, 7, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gtr_index *ix = build_and_open("bf.gtri", cases[c].n, cases[c].dim, GTR_COMPACT_NONE);
        size_t nq = cases[c].nq, k = cases[c].k, dim = (size_t)cases[c].dim;
        float *Q = malloc(nq * dim * 4);
        random_queries(Q, nq, cases[c].dim, 1000 + c);
        gtr_hit *hits = calloc(nq * k, sizeof *hits);
        size_t *nh = calloc(nq, sizeof *nh);
        gtr_pool *pool = gtr_pool_create(cases[c].threads, &e);
        gtr_search_options so = gtr_index_default_search_options();
        so.pool = pool;
        TU_OK(gtr_index_search(ix, Q, nq, k, &so, hits, nh, &e), &e);
        check_against_brute_force(ix, Q, nq, k, hits, nh);
        /* one query at a time, single-threaded: the very same answer */
        gtr_hit *h1 = calloc(k, sizeof *h1);
        for (size_t q = 0; q < nq; q++) {
            size_t n1;
            TU_OK(gtr_index_search(ix, Q + q * dim, 1, k, NULL, h1, &n1, &e), &e);
            assert_int_equal(n1, nh[q]);
            assert_same_hits(h1, hits + q * k, n1);
        }
        free(h1);
        /* other cache blockings (tiny to huge groups, passes and calls, either prefetch of the
         * many-query kernel): the same answer */
        static const gtr_blocking blks[] = {{0, 4, 4, 4, 0, 0, 0},      {0, 8, 12, 24, 0, 0, 1},   {0, 64, 4096, 4096, 0, 0, 0},
                                            {0, 12, 340, 168, 0, 0, 0}, {0, 4, 4, 4, 1, 0, 1},     {0, 12, 340, 168, 1, 0, 1},
                                            {0, 64, 4096, 4096, 0, 0, 1}};
        size_t qs = gtr_ix_qstride(dim);
        float *Qp = gtr_calloc_aligned(nq * qs * 4, NULL);
        for (size_t q = 0; q < nq; q++) memcpy(Qp + q * qs, Q + q * dim, dim * 4);
        gtr_hit *hb = calloc(nq * k, sizeof *hb);
        size_t *nb = calloc(nq, sizeof *nb);
        for (size_t bi = 0; bi < sizeof blks / sizeof blks[0]; bi++) {
            TU_OK(gtr_ix_search_exact_blocked(ix, gtr_ix_kernels_select(), &blks[bi], Qp, qs, nq, k, pool,
                                              hb, nb, &e), &e);
            for (size_t q = 0; q < nq; q++) {
                assert_int_equal(nb[q], nh[q]);
                assert_same_hits(hb + q * k, hits + q * k, nb[q]);
            }
        }
        gtr_free_aligned(Qp);
        free(hb);
        free(nb);
        gtr_pool_free(pool);
        free(Q);
        free(hits);
        free(nh);
        gtr_index_free(ix);
    }
}

static void test_ties_by_id_descending(void **state)
{
    (void)state;
    char *corpus = tu_tmp("ties.jsonl"), *path = tu_tmp("ties.gtri");
    /* three documents with one vector ("same..."), in an order unlike their ids */
    const char *text = "{\"_id\":\"b\",\"text\":\"same 1\"}\n{\"_id\":\"x\",\"text\":\"other\"}\n"
                       "{\"_id\":\"c\",\"text\":\"same 2\"}\n{\"_id\":\"a\",\"text\":\"same 3\"}\n"
                       "{\"_id\":\"ab\",\"text\":\"same 4\"}\n";
    tu_write(corpus, text, strlen(text));
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 32, 1);
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, NULL, NULL, &e), &e);
    gtr_index *ix = gtr_index_open(path, 0, NULL, &e);
    assert_non_null(ix);
    float q[32];
    random_unit(42, q, 32); /* the shared vector itself: all four tie at the top */
    gtr_hit h[5];
    size_t n;
    for (int threads = 1; threads <= 3; threads++) {
        gtr_pool *pool = gtr_pool_create(threads, &e);
        gtr_search_options so = gtr_index_default_search_options();
        so.pool = pool;
        TU_OK(gtr_index_search(ix, q, 1, 3, &so, h, &n, &e), &e);
        assert_int_equal(n, 3);
        const char *want[] = {"c", "b", "ab"};
        for (int r = 0; r < 3; r++) {
            size_t len;
            const char *id = gtr_index_doc_id(ix, h[r].doc, &len);
            assert_int_equal(len, strlen(want[r]));
            assert_memory_equal(id, want[r], len);
        }
        assert_true(h[0].score == h[1].score && h[1].score == h[2].score);
        gtr_pool_free(pool);
    }
    gtr_index_free(ix);
    free(corpus);
    free(path);
}

static void test_contents(void **state)
{
    (void)state;
    char *corpus = tu_tmp("contents.jsonl"), *path = tu_tmp("contents.gtri");
    write_corpus(corpus, 0, 30, "{\"_id\": \"long\", \"title\": \"\", \"text\": \"  \\u00e9\\u00e9\\u00e9\\u00e9\\u00e9 x \"}\n");
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 20, 77);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.snippet_bytes = 5; /* cuts inside the third two-byte é: must back off to a boundary */
    o.model_hint = "/models/fake";
    gtr_error e;
    gtr_index_build_stats st;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), &e);
    assert_int_equal(st.docs_total, 31);
    assert_int_equal(st.docs_encoded, 31);
    gtr_index *ix = gtr_index_open(path, 0, NULL, &e);
    assert_non_null(ix);
    assert_int_equal(gtr_index_count(ix), 31);
    assert_int_equal(gtr_index_dim(ix), 20);
    assert_int_equal(gtr_index_fingerprint(ix), 77);
    assert_string_equal(gtr_index_model_hint(ix), "/models/fake");
    assert_string_equal(gtr_index_model_description(ix), "fake encoder");
    size_t len;
    const char *id = gtr_index_doc_id(ix, 3, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(id, "d00003", 6);
    const char *sn = gtr_index_doc_snippet(ix, 3, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(sn, "T3 pa", 5); /* passage = title + " " + text */
    sn = gtr_index_doc_snippet(ix, 30, &len);
    assert_int_equal(len, 4); /* stripped passage "ééééé x", cut to whole characters */
    assert_memory_equal(sn, "\xc3\xa9\xc3\xa9", 4);
    /* the stored vector is the encoder's vector of the full passage */
    float v[20];
    const char *pass = "T3 passage 3 about topic 3, caf\xc3\xa9 \xc3\xbc" "ber";
    size_t pl = strlen(pass);
    fake_encode(&f, &pass, &pl, 1, v, &e);
    assert_memory_equal(gtr_index_vector(ix, 3), v, sizeof v);
    assert_null(gtr_index_doc_id(ix, 31, &len));
    assert_null(gtr_index_vector(ix, 31));
    gtr_index_free(ix);
    /* no work files are left behind */
    char *partial = tu_tmp("contents.gtri.partial"), *ckpt = tu_tmp("contents.gtri.ckpt");
    assert_false(gtr_file_exists(partial));
    assert_false(gtr_file_exists(ckpt));
    free(partial);
    free(ckpt);
    free(corpus);
    free(path);
}

/* a progress callback that kills the process (like kill -9) once past a document count */
typedef struct {
    uint64_t kill_after, stop_after;
} crash_ctx;

static int crash_progress(void *user, uint64_t done, uint64_t total)
{
    crash_ctx *c = user;
    (void)total;
    if (c->kill_after && done >= c->kill_after) raise(SIGKILL);
    if (c->stop_after && done >= c->stop_after) return 1;
    return 0;
}

static void test_resume_after_kill(void **state)
{
    (void)state;
    char *corpus = tu_tmp("resume.jsonl"), *clean = tu_tmp("clean.gtri"), *path = tu_tmp("resumed.gtri");
    char *partial = tu_tmp("resumed.gtri.partial"), *ckpt = tu_tmp("resumed.gtri.ckpt");
    write_corpus(corpus, 0, 400, NULL);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 24, 5);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.batch_size = 7;
    o.checkpoint_every = 50;
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, clean, &o, NULL, &e), &e);

    /* the child dies by SIGKILL at 182 documents; its last checkpoint was at 168 */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        crash_ctx c = {182, 0};
        o.progress = crash_progress;
        o.progress_user = &c;
        gtr_index_build_with(&enc, corpus, NULL, path, &o, NULL, NULL);
        _exit(0);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    assert_false(gtr_file_exists(path));
    assert_true(gtr_file_exists(partial));
    assert_true(gtr_file_exists(ckpt));
    /* a kill during a checkpoint write leaves the checkpoint's temporary file: the resumed build
     * removes it (and the index's own), but not one of a live process */
    char stale[4096], live[4096];
    snprintf(stale, sizeof stale, "%s.tmp.%d", ckpt, (int)pid);
    snprintf(live, sizeof live, "%s.tmp.%d", path, (int)getppid());
    tu_write(stale, "x", 1);
    tu_write(live, "x", 1);

    /* a polite stop (callback returns non-zero) checkpoints and says how to resume */
    crash_ctx stop = {0, 300};
    o.progress = crash_progress;
    o.progress_user = &stop;
    gtr_index_build_stats st;
    assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), GTR_ERR_INTERRUPTED);
    assert_non_null(strstr(e.message, "resume"));
    assert_int_equal(st.docs_resumed, 168);
    assert_false(gtr_file_exists(path));

    /* resume to the end: identical bytes to the uninterrupted build, nothing encoded twice */
    o.progress = NULL;
    f.docs = 0;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), &e);
    assert_int_equal(st.docs_resumed, 301); /* 43 batches of 7 */
    assert_int_equal(st.docs_encoded, 99);
    assert_int_equal(f.docs, 99);
    assert_int_equal(st.docs_total, 400);
    assert_same_file(clean, path);
    assert_false(gtr_file_exists(partial));
    assert_false(gtr_file_exists(ckpt));
    assert_false(gtr_file_exists(stale));
    assert_true(gtr_file_exists(live));
    unlink(live);
    free(corpus);
    free(clean);
    free(path);
    free(partial);
    free(ckpt);
}

static void test_resume_refuses_stale_work(void **state)
{
    (void)state;
    char *corpus = tu_tmp("stale.jsonl"), *path = tu_tmp("stale.gtri"), *clean = tu_tmp("stale_clean.gtri");
    write_corpus(corpus, 0, 120, NULL);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 16, 9);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.batch_size = 10;
    o.checkpoint_every = 10;
    crash_ctx stop = {0, 50};
    o.progress = crash_progress;
    o.progress_user = &stop;
    gtr_error e;
    gtr_index_build_stats st;
    assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), GTR_ERR_INTERRUPTED);
    /* the corpus changes before the checkpoint's offset: the work is discarded, not mixed in */
    write_corpus(corpus, 1000, 120, NULL);
    o.progress = NULL;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), &e);
    assert_int_equal(st.docs_resumed, 0);
    assert_non_null(strstr(st.note, "corpus changed"));
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, clean, &o, NULL, &e), &e);
    assert_same_file(clean, path);
    /* another encoder: likewise */
    o.progress = crash_progress;
    assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, path, &o, &st, &e), GTR_ERR_INTERRUPTED);
    gtr_index_encoder other = make_enc(&f, 16, 10);
    o.progress = NULL;
    TU_OK(gtr_index_build_with(&other, corpus, NULL, path, &o, &st, &e), &e);
    assert_int_equal(st.docs_resumed, 0);
    assert_non_null(strstr(st.note, "another model"));
    free(corpus);
    free(path);
    free(clean);
}

static void test_concurrent_build_refused(void **state)
{
    (void)state;
    char *corpus = tu_tmp("lock.jsonl"), *path = tu_tmp("lock.gtri"), *partial = tu_tmp("lock.gtri.partial");
    write_corpus(corpus, 0, 10, NULL);
    int fd = open(partial, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    /* flock locks belong to the open file description: a child sees the lock as foreign */
    pid_t pid = fork();
    if (pid == 0) {
        close(fd);
        fake_enc f;
        gtr_index_encoder enc = make_enc(&f, 8, 1);
        gtr_error e;
        gtr_status s = gtr_index_build_with(&enc, corpus, NULL, path, NULL, NULL, &e);
        _exit(s == GTR_ERR_IO && strstr(e.message, "another build") ? 0 : 1);
    }
    int ws;
    waitpid(pid, &ws, 0);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(fd);
    unlink(partial);
    free(corpus);
    free(path);
    free(partial);
}

static void test_add(void **state)
{
    (void)state;
    char *c1 = tu_tmp("add1.jsonl"), *c2 = tu_tmp("add2.jsonl"), *c12 = tu_tmp("add12.jsonl");
    char *a = tu_tmp("add_a.gtri"), *ab = tu_tmp("add_ab.gtri"), *whole = tu_tmp("add_whole.gtri");
    write_corpus(c1, 0, 70, NULL);
    write_corpus(c2, 70, 45, NULL);
    size_t n1, n2;
    char *d1 = slurp(c1, &n1), *d2 = slurp(c2, &n2);
    FILE *f12 = fopen(c12, "wb");
    fwrite(d1, 1, n1, f12);
    fwrite(d2, 1, n2, f12);
    fclose(f12);
    free(d1);
    free(d2);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 32, 3);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.compact = GTR_COMPACT_INT8;
    gtr_error e;
    gtr_index_build_stats st;
    TU_OK(gtr_index_build_with(&enc, c1, NULL, a, &o, NULL, &e), &e);
    TU_OK(gtr_index_build_with(&enc, c2, a, ab, &o, &st, &e), &e);
    assert_int_equal(st.docs_base, 70);
    assert_int_equal(st.docs_encoded, 45);
    TU_OK(gtr_index_build_with(&enc, c12, NULL, whole, &o, NULL, &e), &e);
    /* appending equals building the concatenation */
    assert_same_file(ab, whole);
    /* in place */
    TU_OK(gtr_index_build_with(&enc, c2, a, a, &o, NULL, &e), &e);
    assert_same_file(a, whole);
    /* adding again: every id is a duplicate of the base */
    assert_int_equal(gtr_index_build_with(&enc, c2, a, a, &o, NULL, &e), GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "add2.jsonl:1: duplicate document id \"d00070\" (already in the base index)"));
    assert_same_file(a, whole);
    /* another encoder cannot extend it */
    gtr_index_encoder other = make_enc(&f, 32, 4);
    assert_int_equal(gtr_index_build_with(&other, c2, a, ab, &o, NULL, &e), GTR_ERR_MISMATCH);
    assert_non_null(strstr(e.message, "another model"));
    free(c1);
    free(c2);
    free(c12);
    free(a);
    free(ab);
    free(whole);
}

static void test_bad_corpora(void **state)
{
    (void)state;
    char *corpus = tu_tmp("bad.jsonl"), *path = tu_tmp("bad.gtri"), *partial = tu_tmp("bad.gtri.partial");
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 8, 1);
    gtr_error e;
    struct { const char *extra; gtr_status st; const char *msg; } cases[] = {
        {"{\"_id\": \"d00002\", \"text\": \"again\"}\n", GTR_ERR_FORMAT,
         "bad.jsonl:6: duplicate document id \"d00002\" (first on line 3)"},
        {"{\"_id\": \"z\", \"text\": \"unterminated}\n", GTR_ERR_FORMAT, "bad.jsonl:6:"},
        {"{\"title\": \"no id\", \"text\": \"x\"}\n", GTR_ERR_FORMAT, "bad.jsonl:6: document has no \"_id\""},
        {"\"just a string\"\n", GTR_ERR_FORMAT, "bad.jsonl:6: document has no \"_id\""},
        {"{\"_id\": \"z\", \"title\": \"no text\"}\n", GTR_ERR_FORMAT, "line 6"},
        {"{\"_id\": \"z\", \"text\": 5}\n", GTR_ERR_FORMAT, "bad.jsonl:6: field 'text' must be a string"},
        {"\n", GTR_ERR_FORMAT, "bad.jsonl:6: empty line"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_corpus(corpus, 0, 5, cases[c].extra);
        assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, path, NULL, NULL, &e), cases[c].st);
        if (!strstr(e.message, cases[c].msg)) fail_msg("case %zu: '%s' lacks '%s'", c, e.message, cases[c].msg);
        assert_false(gtr_file_exists(path));
        assert_false(gtr_file_exists(partial));
    }
    tu_write(corpus, "", 0);
    assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, path, NULL, NULL, &e), GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "no documents"));
    assert_false(gtr_file_exists(partial));
    assert_int_equal(gtr_index_build_with(&enc, "/nonexistent/c.jsonl", NULL, path, NULL, NULL, &e),
                     GTR_ERR_NOT_FOUND);
    free(corpus);
    free(path);
    free(partial);
}

/* Every id a build accepts can be written by the commands that come later (a TREC run), the
 * dense and the BM25 builds accept exactly the same ids, and a refused id names corpus:line. */
static void test_id_rules(void **state)
{
    (void)state;
    char *corpus = tu_tmp("ids.jsonl"), *dpath = tu_tmp("ids.gtri"), *bpath = tu_tmp("ids.bm25");
    char *long_ok = malloc(4097), *long_bad = malloc(100001);
    memset(long_ok, 'x', 4096);
    long_ok[4096] = '\0';
    memset(long_bad, 'y', 100000);
    long_bad[100000] = '\0';
    struct { const char *json_id; bool ok; } cases[] = {
        {"plain-id_1", true}, {"caf\\u00e9", true}, {"a\\u00a0b", true}, {long_ok, true},
        {"a b", false}, {"a\\tb", false}, {"a\\nb", false}, {"a\\rb", false}, {"a\\u000bb", false},
        {"a\\fb", false}, {"a\\u0000b", false}, {"", false}, {long_bad, false}, {" lead", false},
    };
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 8, 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        FILE *fp = fopen(corpus, "wb");
        assert_non_null(fp);
        fprintf(fp, "{\"_id\": \"first\", \"text\": \"one\"}\n{\"_id\": \"%s\", \"text\": \"two\"}\n", cases[c].json_id);
        fclose(fp);
        gtr_error e1 = {0}, e2 = {0};
        gtr_status sd = gtr_index_build_with(&enc, corpus, NULL, dpath, NULL, NULL, &e1);
        gtr_status sb = gtr_bm25_build(corpus, bpath, NULL, NULL, &e2);
        if ((sd == GTR_OK) != cases[c].ok || (sb == GTR_OK) != cases[c].ok)
            fail_msg("case %zu: dense %d (%s), bm25 %d (%s), expected %s", c, sd, e1.message, sb, e2.message,
                     cases[c].ok ? "accepted" : "refused");
        if (!cases[c].ok) {
            if (!strstr(e1.message, "ids.jsonl:2: document id") || !strstr(e2.message, "ids.jsonl:2: document id"))
                fail_msg("case %zu: '%s' / '%s' do not name the line", c, e1.message, e2.message);
            assert_false(gtr_file_exists(dpath));
            assert_false(gtr_file_exists(bpath));
            continue;
        }
        /* accepted: the ids come back from both indexes and a run with them can be written */
        gtr_error e;
        gtr_index *ix = gtr_index_open(dpath, 0, NULL, &e);
        gtr_bm25 *bm = gtr_bm25_open(bpath, &e);
        assert_non_null(ix);
        assert_non_null(bm);
        gtr_run *run = gtr_run_new(&e);
        for (size_t d = 0; d < gtr_index_count(ix); d++) {
            size_t n;
            const char *id = gtr_index_doc_id(ix, d, &n);
            assert_int_not_equal(gtr_bm25_find_doc(bm, id, n), SIZE_MAX);
            TU_OK(gtr_run_add(run, "q1", 2, id, n, 1.0 / (double)(d + 1), &e), &e);
        }
        char *text;
        size_t len;
        TU_OK(gtr_run_format(run, NULL, &text, &len, &e), &e);
        gtr_free(text);
        gtr_run_free(run);
        gtr_index_free(ix);
        gtr_bm25_free(bm);
        unlink(dpath);
        unlink(bpath);
    }
    free(long_ok);
    free(long_bad);
    free(corpus);
    free(dpath);
    free(bpath);
}

static void test_corrupt_files(void **state)
{
    (void)state;
    char *corpus = tu_tmp("corrupt.jsonl"), *path = tu_tmp("corrupt.gtri"), *bad = tu_tmp("corrupt_bad.gtri");
    write_corpus(corpus, 0, 12, NULL);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, 8, 1);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.compact = GTR_COMPACT_F16;
    o.snippet_bytes = 16;
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, &o, NULL, &e), &e);
    size_t n;
    char *d = slurp(path, &n);
    assert_true(n > 1000 && n < 8000);
    /* every truncation is refused */
    for (size_t cut = 0; cut < n; cut++) {
        tu_write(bad, d, cut);
        gtr_index *ix = gtr_index_open(bad, 0, NULL, &e);
        if (ix) fail_msg("truncated to %zu bytes but opened", cut);
        assert_int_equal(e.code, GTR_ERR_FORMAT);
        assert_non_null(strstr(e.message, "corrupt_bad.gtri"));
    }
    /* every byte is covered: a flipped bit anywhere is refused */
    for (size_t i = 0; i < n; i++) {
        d[i] ^= (char)(1 << (i % 8));
        tu_write(bad, d, n);
        d[i] ^= (char)(1 << (i % 8));
        gtr_index *ix = gtr_index_open(bad, 0, NULL, &e);
        if (ix) fail_msg("byte %zu flipped but opened", i);
        assert_int_equal(e.code, GTR_ERR_FORMAT);
    }
    /* one extra byte */
    d = realloc(d, n + 1);
    d[n] = 0;
    tu_write(bad, d, n + 1);
    assert_null(gtr_index_open(bad, 0, NULL, &e));
    assert_non_null(strstr(e.message, "header says"));
    tu_write(bad, "GTRINDEX", 8);
    assert_null(gtr_index_open(bad, 0, NULL, &e));
    assert_non_null(strstr(e.message, "truncated"));
    tu_write(bad, "hello world, not an index at all", 32);
    assert_null(gtr_index_open(bad, 0, NULL, &e));
    assert_non_null(strstr(e.message, "not a gtr index"));
    assert_null(gtr_index_open("/nonexistent.gtri", 0, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_NOT_FOUND);
    free(d);
    free(corpus);
    free(path);
    free(bad);
}

static void test_compact_is_exact(void **state)
{
    (void)state;
    gtr_error e;
    gtr_index_compact kinds[] = {GTR_COMPACT_F16, GTR_COMPACT_INT8};
    for (int ki = 0; ki < 2; ki++) {
        gtr_index *ix = build_and_open("compact.gtri", 2500, 64, kinds[ki]);
        assert_int_equal(gtr_index_compact_kind(ix), kinds[ki]);
        size_t nq = 70, k = 20, dim = 64;
        float *Q = malloc(nq * dim * 4);
        random_queries(Q, nq, 64, 5);
        /* queries near documents make the top of the ranking tight */
        for (size_t q = 0; q < 10; q++) memcpy(Q + q * dim, gtr_index_vector(ix, q * 100), dim * 4);
        gtr_hit *h1 = calloc(nq * k, sizeof *h1), *h2 = calloc(nq * k, sizeof *h2);
        size_t *n1 = calloc(nq, sizeof *n1), *n2 = calloc(nq, sizeof *n2);
        gtr_pool *pool = gtr_pool_create(3, &e);
        gtr_search_options exact = gtr_index_default_search_options(), compact = exact;
        exact.pool = compact.pool = pool;
        compact.use_compact = 1;
        TU_OK(gtr_index_search(ix, Q, nq, k, &exact, h1, n1, &e), &e);
        TU_OK(gtr_index_search(ix, Q, nq, k, &compact, h2, n2, &e), &e);
        assert_memory_equal(n1, n2, nq * sizeof *n1);
        for (size_t q = 0; q < nq; q++) assert_same_hits(h1 + q * k, h2 + q * k, n1[q]);
        gtr_pool_free(pool);
        free(Q);
        free(h1);
        free(h2);
        free(n1);
        free(n2);
        gtr_index_free(ix);
    }
}

static void test_search_arguments(void **state)
{
    (void)state;
    gtr_error e;
    gtr_index *ix = build_and_open("args.gtri", 10, 8, GTR_COMPACT_NONE);
    float q[8] = {1, 0, 0, 0, 0, 0, 0, NAN};
    gtr_hit h[3];
    size_t n = 99;
    assert_int_equal(gtr_index_search(ix, q, 1, 3, NULL, h, &n, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "non-finite"));
    q[7] = 0;
    TU_OK(gtr_index_search(ix, q, 1, 0, NULL, h, &n, &e), &e);
    assert_int_equal(n, 0);
    TU_OK(gtr_index_search(ix, q, 0, 3, NULL, NULL, NULL, &e), &e);
    gtr_index_free(ix);
}

/* ---- fusion */

static gtr_ranked_doc rd(const char *id, double s)
{
    gtr_ranked_doc d = {id, strlen(id), s};
    return d;
}

static void test_fusion_rrf(void **state)
{
    (void)state;
    gtr_ranked_doc a[] = {rd("x", 9), rd("y", 8), rd("z", 7)};
    gtr_ranked_doc b[] = {rd("z", 0.9), rd("w", 0.5), rd("x", 0.1)};
    const gtr_ranked_doc *lists[] = {a, b};
    size_t lens[] = {3, 3}, n;
    gtr_ranked_doc out[4];
    gtr_error e;
    TU_OK(gtr_hits_fuse(lists, lens, 2, NULL, 4, out, &n, &e), &e);
    assert_int_equal(n, 4);
    /* x: 1/61 + 1/63; z: 1/63 + 1/61 (tie: id descending -> z first); y: 1/62; w: 1/62 (y > w) */
    assert_string_equal(out[0].id, "z");
    assert_string_equal(out[1].id, "x");
    assert_true(fabs(out[0].score - (1.0 / 61 + 1.0 / 63)) < 1e-15);
    assert_true(out[0].score == out[1].score);
    assert_string_equal(out[2].id, "y");
    assert_string_equal(out[3].id, "w");
    assert_true(fabs(out[3].score - 1.0 / 62) < 1e-15);
    /* k truncates; a custom constant */
    gtr_fusion_options o = gtr_fusion_default_options();
    o.rrf_k = 0;
    TU_OK(gtr_hits_fuse(lists, lens, 2, &o, 1, out, &n, &e), &e);
    assert_int_equal(n, 1);
    assert_true(fabs(out[0].score - (1.0 + 1.0 / 3)) < 1e-15);
    /* a duplicate inside one list is refused */
    gtr_ranked_doc dup[] = {rd("x", 2), rd("x", 1)};
    const gtr_ranked_doc *dl[] = {dup};
    size_t dlen[] = {2};
    assert_int_equal(gtr_hits_fuse(dl, dlen, 1, NULL, 4, out, &n, &e), GTR_ERR_INVALID_ARG);
    /* no lists: nothing */
    TU_OK(gtr_hits_fuse(NULL, NULL, 0, NULL, 4, out, &n, &e), &e);
    assert_int_equal(n, 0);
}

/* Options structs carry their size: one not made by *_default_options() is refused, one from
 * an older, shorter header keeps the defaults of the fields it lacks (the same fusion as NULL). */
static void test_options_size(void **state)
{
    (void)state;
    gtr_ranked_doc a[] = {rd("x", 9), rd("y", 8)}, b[] = {rd("y", 0.9), rd("w", 0.5)};
    const gtr_ranked_doc *lists[] = {a, b};
    size_t lens[] = {2, 2}, n, n_ref;
    gtr_ranked_doc out[4], ref[4];
    gtr_error e;
    gtr_fusion_options o;
    memset(&o, 0, sizeof o);
    assert_int_equal(gtr_hits_fuse(lists, lens, 2, &o, 4, out, &n, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "default_options"));
    o = gtr_fusion_default_options();
    assert_int_equal(o.size, sizeof o);
    o.size = sizeof o + 8; /* a newer header */
    assert_int_equal(gtr_hits_fuse(lists, lens, 2, &o, 4, out, &n, &e), GTR_ERR_INVALID_ARG);
    o.size = offsetof(gtr_fusion_options, weights); /* an older one, without weights */
    o.weights = (const double *)1; /* beyond its size: must not be read */
    TU_OK(gtr_hits_fuse(lists, lens, 2, &o, 4, out, &n, &e), &e);
    TU_OK(gtr_hits_fuse(lists, lens, 2, NULL, 4, ref, &n_ref, &e), &e);
    assert_int_equal(n, n_ref);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].id, ref[i].id);
        assert_true(out[i].score == ref[i].score);
    }
    /* every options struct: size set by its default function, a struct not made so refused */
    gtr_index *ix = build_and_open("size.gtri", 10, 8, GTR_COMPACT_NONE);
    float q[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    gtr_hit h[3];
    size_t nh;
    gtr_search_options so = gtr_index_default_search_options();
    assert_int_equal(so.size, sizeof so);
    TU_OK(gtr_index_search(ix, q, 1, 3, &so, h, &nh, &e), &e);
    so.size = 0;
    assert_int_equal(gtr_index_search(ix, q, 1, 3, &so, h, &nh, &e), GTR_ERR_INVALID_ARG);
    gtr_ann_build_options ab = gtr_ann_default_build_options();
    gtr_ann_search_options as = gtr_ann_default_search_options();
    gtr_bm25_build_options bb = gtr_bm25_default_build_options();
    gtr_tokenizer_options to = gtr_tokenizer_default_options();
    gtr_context_options co = gtr_context_default_options();
    gtr_retriever_options ro = gtr_retriever_default_options();
    gtr_retrieve_options re = gtr_retrieve_default_options();
    assert_int_equal(ab.size, sizeof ab);
    assert_int_equal(as.size, sizeof as);
    assert_int_equal(bb.size, sizeof bb);
    assert_int_equal(to.size, sizeof to);
    assert_int_equal(co.size, sizeof co);
    assert_int_equal(ro.size, sizeof ro);
    assert_int_equal(re.size, sizeof re);
    ab.size = 0;
    assert_int_equal(gtr_ann_build(ix, "/nonexistent/x.ivf", &ab, &e), GTR_ERR_INVALID_ARG);
    bb.size = 0;
    assert_int_equal(gtr_bm25_build("/nonexistent/c.jsonl", "/nonexistent/x.bm25", &bb, NULL, &e), GTR_ERR_INVALID_ARG);
    to.size = 0;
    assert_null(gtr_tokenizer_load_memory("", 0, &to, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    ro.index = ix;
    gtr_retriever *rt = gtr_retriever_open(&ro, &e);
    assert_non_null(rt);
    re.size = 0;
    re.vectors = q;
    assert_int_equal(gtr_retriever_search(rt, NULL, NULL, 1, &re, h, &nh, &e), GTR_ERR_INVALID_ARG);
    gtr_retriever_free(rt);
    gtr_index_free(ix);
}

static void test_fusion_interp(void **state)
{
    (void)state;
    gtr_ranked_doc dense[] = {rd("a", 0.9), rd("b", 0.7), rd("c", 0.5)};
    gtr_ranked_doc bm25[] = {rd("c", 20), rd("d", 15), rd("a", 10)};
    const gtr_ranked_doc *lists[] = {dense, bm25};
    size_t lens[] = {3, 3}, n;
    double w[] = {0.3, 0.7};
    gtr_fusion_options o = gtr_fusion_default_options();
    o.method = GTR_FUSION_INTERP;
    o.weights = w;
    gtr_ranked_doc out[4];
    gtr_error e;
    TU_OK(gtr_hits_fuse(lists, lens, 2, &o, 4, out, &n, &e), &e);
    assert_int_equal(n, 4);
    /* normalised dense: a 1, b .5, c 0; bm25: c 1, d .5, a 0
     * c: .3*0 + .7*1 = .7; d: .7*.5 = .35; a: .3*1 + 0 = .3; b: .3*.5 = .15 */
    const char *ids[] = {"c", "d", "a", "b"};
    double want[] = {0.7, 0.35, 0.3, 0.15};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(out[i].id, ids[i]);
        assert_true(fabs(out[i].score - want[i]) < 1e-12);
    }
    /* a list whose scores are all equal normalises to 1 */
    gtr_ranked_doc flat[] = {rd("p", 3), rd("q", 3)};
    const gtr_ranked_doc *fl[] = {flat};
    size_t flen[] = {2};
    o.weights = NULL;
    TU_OK(gtr_hits_fuse(fl, flen, 1, &o, 4, out, &n, &e), &e);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].id, "q");
    assert_true(out[0].score == 1.0 && out[1].score == 1.0);
    gtr_ranked_doc inf[] = {rd("p", INFINITY)};
    const gtr_ranked_doc *il[] = {inf};
    size_t ilen[] = {1};
    assert_int_equal(gtr_hits_fuse(il, ilen, 1, &o, 4, out, &n, &e), GTR_ERR_INVALID_ARG);
}


/* ---- the retriever: the pipeline over gtr_index_search / gtr_bm25_search / gtr_hits_fuse */

static void assert_hits_equal(const gtr_hit *a, const gtr_hit *b)
{
    assert_int_equal(a->doc, b->doc);
    assert_memory_equal(&a->score, &b->score, sizeof a->score);
    assert_int_equal(a->id_len, b->id_len);
    assert_memory_equal(a->id, b->id, a->id_len);
}

static void test_retriever(void **state)
{
    (void)state;
    gtr_error e;
    const size_t N = 400, NQ = 300, K = 7; /* more queries than one chunk of 256 */
    const int D = 24;
    gtr_index *ix = build_and_open("rt.gtri", N, D, GTR_COMPACT_NONE);
    char *corpus = tu_tmp("corpus_bf.jsonl"), *bpath = tu_tmp("rt.bm25");
    TU_OK(gtr_bm25_build(corpus, bpath, NULL, NULL, &e), &e);
    gtr_bm25 *bm = gtr_bm25_open(bpath, &e);
    assert_non_null(bm);
    float *Q = malloc(NQ * D * sizeof *Q);
    random_queries(Q, NQ, D, 99);
    char **texts = malloc(NQ * sizeof *texts), **self = malloc(NQ * sizeof *self);
    for (size_t i = 0; i < NQ; i++) {
        texts[i] = malloc(64);
        snprintf(texts[i], 64, "passage %zu topic %zu", i % 50, i % 17);
        self[i] = malloc(16);
        snprintf(self[i], 16, "d%05zu", (i * 13) % N);
    }
    gtr_retriever_options ro = gtr_retriever_default_options();
    ro.index = ix;
    ro.bm25 = bm;
    gtr_retriever *rt = gtr_retriever_open(&ro, &e);
    assert_non_null(rt);
    gtr_hit *got = calloc(NQ * K, sizeof *got), *want = calloc(NQ * (K + 1), sizeof *want);
    size_t *ng = calloc(NQ, sizeof *ng), *nw = calloc(NQ, sizeof *nw);

    /* dense from vectors: gtr_index_search's hits, the query's own id left out */
    gtr_retrieve_options so = gtr_retrieve_default_options();
    so.k = K;
    so.vectors = Q;
    so.skip_ids = (const char *const *)self;
    TU_OK(gtr_retriever_search(rt, NULL, NULL, NQ, &so, got, ng, &e), &e);
    TU_OK(gtr_index_search(ix, Q, NQ, K + 1, NULL, want, nw, &e), &e);
    for (size_t q = 0; q < NQ; q++) {
        size_t w = 0;
        for (size_t j = 0; j < nw[q] && w < K; j++) {
            const gtr_hit *h = &want[q * (K + 1) + j];
            if (h->id_len == strlen(self[q]) && !memcmp(h->id, self[q], h->id_len)) continue;
            assert_hits_equal(&got[q * K + w++], h);
        }
        assert_int_equal(ng[q], w);
    }

    /* the same vectors wrapped in memory search like the file */
    const char **ids = malloc(N * sizeof *ids);
    size_t *lens = malloc(N * sizeof *lens);
    for (size_t d = 0; d < N; d++) ids[d] = gtr_index_doc_id(ix, d, &lens[d]);
    gtr_index *mem = gtr_index_wrap(gtr_index_vector(ix, 0), N, D, ids, lens, gtr_index_fingerprint(ix), &e);
    assert_non_null(mem);
    gtr_hit *mh = calloc(NQ * (K + 1), sizeof *mh);
    size_t *nm = calloc(NQ, sizeof *nm);
    TU_OK(gtr_index_search(mem, Q, NQ, K + 1, NULL, mh, nm, &e), &e);
    for (size_t q = 0; q < NQ; q++) {
        assert_int_equal(nm[q], nw[q]);
        for (size_t j = 0; j < nm[q]; j++) assert_hits_equal(&mh[q * (K + 1) + j], &want[q * (K + 1) + j]);
    }
    gtr_index_free(mem);

    /* bm25: gtr_bm25_search's hits, not dense documents */
    so.method = GTR_RETRIEVE_BM25;
    so.skip_ids = NULL;
    TU_OK(gtr_retriever_search(rt, (const char *const *)texts, NULL, NQ, &so, got, ng, &e), &e);
    TU_OK(gtr_bm25_search(bm, (const char *const *)texts, NULL, NQ, K, NULL, want, nw, &e), &e);
    for (size_t q = 0; q < NQ; q++) {
        assert_int_equal(ng[q], nw[q]);
        for (size_t j = 0; j < ng[q]; j++) {
            assert_int_equal(got[q * K + j].doc, SIZE_MAX);
            got[q * K + j].doc = want[q * K + j].doc;
            assert_hits_equal(&got[q * K + j], &want[q * K + j]);
        }
    }

    /* hybrid: both lists `depth` deep, fused; a fused hit from the dense list keeps its doc */
    const size_t DEPTH = 20;
    so.method = GTR_RETRIEVE_HYBRID;
    so.depth = DEPTH;
    TU_OK(gtr_retriever_search(rt, (const char *const *)texts, NULL, NQ, &so, got, ng, &e), &e);
    gtr_hit *dl = calloc(DEPTH, sizeof *dl), *bl = calloc(DEPTH, sizeof *bl);
    gtr_ranked_doc l0[20], l1[20], fused[7];
    for (size_t q = 0; q < NQ; q++) {
        size_t nd, nb, nf;
        TU_OK(gtr_index_search(ix, Q + q * D, 1, DEPTH, NULL, dl, &nd, &e), &e);
        TU_OK(gtr_bm25_search(bm, (const char *const *)texts + q, NULL, 1, DEPTH, NULL, bl, &nb, &e), &e);
        for (size_t j = 0; j < nd; j++) l0[j] = (gtr_ranked_doc){dl[j].id, dl[j].id_len, dl[j].score};
        for (size_t j = 0; j < nb; j++) l1[j] = (gtr_ranked_doc){bl[j].id, bl[j].id_len, bl[j].score};
        const gtr_ranked_doc *lists[2] = {l0, l1};
        size_t ln[2] = {nd, nb};
        gtr_fusion_options fo = gtr_fusion_default_options();
        TU_OK(gtr_hits_fuse(lists, ln, 2, &fo, K, fused, &nf, &e), &e);
        assert_int_equal(ng[q], nf);
        for (size_t j = 0; j < nf; j++) {
            const gtr_hit *h = &got[q * K + j];
            assert_int_equal(h->id_len, fused[j].id_len);
            assert_memory_equal(h->id, fused[j].id, h->id_len);
            assert_memory_equal(&h->score, &fused[j].score, sizeof h->score);
            size_t doc = SIZE_MAX;
            for (size_t t = 0; t < nd; t++)
                if (dl[t].id == fused[j].id) doc = dl[t].doc;
            assert_int_equal(h->doc, doc);
        }
    }

    /* what a retriever lacks is refused with a message */
    gtr_retriever_options only = gtr_retriever_default_options();
    only.bm25 = bm;
    gtr_retriever *rb = gtr_retriever_open(&only, &e);
    assert_non_null(rb);
    so.method = GTR_RETRIEVE_DENSE;
    assert_int_equal(gtr_retriever_search(rb, (const char *const *)texts, NULL, 1, &so, got, ng, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "dense index"));
    so.vectors = NULL;
    assert_int_equal(gtr_retriever_search(rt, (const char *const *)texts, NULL, 1, &so, got, ng, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "model"));
    only.bm25 = NULL;
    assert_null(gtr_retriever_open(&only, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    gtr_retrieval_method m;
    TU_OK(gtr_retrieval_method_parse("hybrid", &m, &e), &e);
    assert_int_equal(m, GTR_RETRIEVE_HYBRID);
    assert_string_equal(gtr_retrieval_method_name(m), "hybrid");
    assert_int_equal(gtr_retrieval_method_parse("sparse", &m, &e), GTR_ERR_INVALID_ARG);

    gtr_retriever_free(rb);
    gtr_retriever_free(rt);
    for (size_t i = 0; i < NQ; i++) {
        free(texts[i]);
        free(self[i]);
    }
    free(texts);
    free(self);
    free(ids);
    free(lens);
    free(mh);
    free(nm);
    free(dl);
    free(bl);
    free(got);
    free(want);
    free(ng);
    free(nw);
    free(Q);
    free(corpus);
    free(bpath);
    gtr_bm25_free(bm);
    gtr_index_free(ix);
}

/* Sharded builds (gtr_index_build_shard + gtr_index_write_manifest): 1..4 shards opened as one
 * index hold the single file's ids, snippets, vectors and compact copy, and search the same;
 * the parts of gtr_index_open_part cover the index once in order; finished shards are kept;
 * a shard truncated, of another build or another encoder is refused naming it; an id in two
 * shards gives the single build's message. */
static void test_shards(void **state)
{
    (void)state;
    char *corpus = tu_tmp("corpus_sh.jsonl"), *one = tu_tmp("sh_one.gtri"), *man = tu_tmp("sh.gtri");
    enum { N = 157, DIM = 24 };
    write_corpus(corpus, 0, N, NULL);
    fake_enc f;
    gtr_index_encoder enc = make_enc(&f, DIM, 0x77);
    gtr_index_build_options o = gtr_index_default_build_options();
    o.batch_size = 7;
    o.checkpoint_every = 10;
    o.compact = GTR_COMPACT_INT8;
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, one, &o, NULL, &e), &e);
    gtr_index *ref = gtr_index_open(one, 0, NULL, &e);
    if (!ref) fail_msg("%s", e.message);
    float Q[5 * DIM];
    random_queries(Q, 5, DIM, 99);
    gtr_hit h1[5 * 20], h2[5 * 20];
    size_t n1[5], n2[5];
    TU_OK(gtr_index_search(ref, Q, 5, 20, NULL, h1, n1, &e), &e);
    for (int s = 1; s <= 4; s++) {
        uint64_t lines = 0, prev_end = 0;
        for (int i = 0; i < s; i++) {
            uint64_t b, en, l;
            TU_OK(gtr_index_shard_range(corpus, i, s, &b, &en, &l, &e), &e);
            assert_int_equal(b, prev_end);
            prev_end = en;
            TU_OK(gtr_index_build_shard(&enc, corpus, i, s, lines, man, &o, NULL, &e), &e);
            lines += l;
        }
        assert_int_equal(lines, N);
        TU_OK(gtr_index_write_manifest(corpus, man, s, &e), &e);
        gtr_index *ix = gtr_index_open(man, 0, NULL, &e);
        if (!ix) fail_msg("%s", e.message);
        assert_int_equal(gtr_index_count(ix), N);
        assert_int_equal(gtr_index_fingerprint(ix), 0x77);
        assert_int_equal(gtr_index_compact_kind(ix), GTR_COMPACT_INT8);
        assert_string_equal(gtr_index_model_description(ix), "fake encoder");
        for (size_t d = 0; d < N; d++) {
            size_t la, lb;
            const char *a = gtr_index_doc_id(ref, d, &la), *b = gtr_index_doc_id(ix, d, &lb);
            assert_int_equal(la, lb);
            assert_memory_equal(a, b, la);
            a = gtr_index_doc_snippet(ref, d, &la), b = gtr_index_doc_snippet(ix, d, &lb);
            assert_int_equal(la, lb);
            assert_memory_equal(a, b, la);
            assert_memory_equal(gtr_index_vector(ref, d), gtr_index_vector(ix, d), DIM * sizeof(float));
        }
        assert_memory_equal(ref->compact, ix->compact, (size_t)N * gtr_ix_compact_row_bytes(GTR_COMPACT_INT8, DIM));
        assert_memory_equal(ref->caux, ix->caux, (size_t)N * 3 * sizeof(float));
        TU_OK(gtr_index_search(ix, Q, 5, 20, NULL, h2, n2, &e), &e);
        assert_memory_equal(n1, n2, sizeof n1);
        assert_same_hits(h1, h2, 5 * 20);
        gtr_index_free(ix);
        for (int P = 1; P <= 6; P++) {
            size_t covered = 0;
            for (int p = 0; p < P; p++) {
                size_t b, en, total;
                gtr_index *part = gtr_index_open_part(man, p, P, 0, NULL, &b, &en, &total, &e);
                if (!part) fail_msg("%s", e.message);
                assert_int_equal(total, N);
                assert_true(b <= en && en <= gtr_index_count(part));
                for (size_t d = b; d < en; d++, covered++) {
                    size_t la, lb;
                    const char *x = gtr_index_doc_id(ref, covered, &la), *y = gtr_index_doc_id(part, d, &lb);
                    assert_int_equal(la, lb);
                    assert_memory_equal(x, y, la);
                    assert_memory_equal(gtr_index_vector(ref, covered), gtr_index_vector(part, d), DIM * sizeof(float));
                }
                gtr_index_free(part);
            }
            assert_int_equal(covered, N);
        }
    }
    /* a rerun keeps a finished shard (no encoding); one with another first line rebuilds it, in
     * batches of 7, and back at the right first line the bytes are the first build's */
    gtr_index_build_stats st;
    char *s1 = tu_tmp("sh.gtri.shard-1-of-4"), *s2 = tu_tmp("sh.gtri.shard-2-of-4"), *keep = tu_tmp("sh_keep");
    uint64_t l0, l1;
    TU_OK(gtr_index_shard_range(corpus, 0, 4, NULL, NULL, &l0, &e), &e);
    TU_OK(gtr_index_shard_range(corpus, 1, 4, NULL, NULL, &l1, &e), &e);
    size_t batches = (size_t)(l1 + 6) / 7, calls = f.calls;
    assert_true(l0 > 0 && batches > 1);
    TU_OK(gtr_copy_file(s1, keep, &e), &e);
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 4, l0, man, &o, &st, &e), &e);
    assert_int_equal(f.calls, calls);
    assert_int_equal(st.docs_resumed, l1);
    assert_int_equal(st.docs_total, l1);
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 4, 0, man, &o, &st, &e), &e);
    assert_int_equal(f.calls, calls + batches);
    assert_int_equal(st.docs_resumed, 0);
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 4, l0, man, &o, &st, &e), &e);
    assert_int_equal(f.calls, calls + 2 * batches);
    assert_int_equal(st.docs_resumed, 0);
    assert_same_file(s1, keep);
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 4, l0, man, &o, &st, &e), &e);
    assert_int_equal(f.calls, calls + 2 * batches);
    gtr_index *ix = gtr_index_open(man, 0, NULL, &e);
    if (!ix) fail_msg("%s", e.message);
    gtr_index_free(ix);
    /* truncated shard: refused naming it; rebuilt, the same bytes again */
    TU_OK(gtr_copy_file(s2, keep, &e), &e);
    assert_int_equal(truncate(s2, 1000), 0);
    assert_null(gtr_index_open(man, 0, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "shard 2 of 4"));
    TU_OK(gtr_index_build_shard(&enc, corpus, 2, 4, l0 + l1, man, &o, NULL, &e), &e);
    assert_same_file(s2, keep);
    /* a shard made by another encoder: refused by the manifest and by the manifest writer */
    gtr_index_encoder other = make_enc(&f, DIM, 0x78);
    TU_OK(gtr_index_build_shard(&other, corpus, 1, 4, l0, man, &o, NULL, &e), &e);
    assert_null(gtr_index_open(man, 0, NULL, &e));
    assert_non_null(strstr(e.message, "another build"));
    assert_int_equal(gtr_index_write_manifest(corpus, man, 4, &e), GTR_ERR_MISMATCH);
    /* a damaged manifest */
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 4, l0, man, &o, NULL, &e), &e);
    TU_OK(gtr_index_write_manifest(corpus, man, 4, &e), &e);
    size_t mlen;
    char *m = slurp(man, &mlen);
    m[30] ^= 1;
    TU_OK(gtr_write_file_atomic(man, m, mlen, &e), &e);
    free(m);
    assert_null(gtr_index_open(man, 0, NULL, &e));
    assert_non_null(strstr(e.message, "manifest"));
    /* an id in two shards: the message of the single-file build */
    write_corpus(corpus, 0, N, "{\"_id\": \"d00003\", \"text\": \"again\"}\n");
    gtr_error e1;
    assert_int_equal(gtr_index_build_with(&enc, corpus, NULL, one, &o, NULL, &e1), GTR_ERR_FORMAT);
    uint64_t a0;
    TU_OK(gtr_index_shard_range(corpus, 0, 2, NULL, NULL, &a0, &e), &e);
    TU_OK(gtr_index_build_shard(&enc, corpus, 0, 2, 0, man, &o, NULL, &e), &e);
    TU_OK(gtr_index_build_shard(&enc, corpus, 1, 2, a0, man, &o, NULL, &e), &e);
    assert_int_equal(gtr_index_write_manifest(corpus, man, 2, &e), GTR_ERR_FORMAT);
    assert_string_equal(e.message, e1.message);
    /* more shards than lines */
    write_corpus(corpus, 0, 2, NULL);
    assert_int_equal(gtr_index_shard_range(corpus, 2, 3, NULL, NULL, NULL, &e), GTR_ERR_INVALID_ARG);
    gtr_index_free(ref);
    free(corpus), free(one), free(man), free(s1), free(s2), free(keep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_packed_kernels_agree),
        cmocka_unit_test(test_search_matches_brute_force),
        cmocka_unit_test(test_search_doc_range),
        cmocka_unit_test(test_ties_by_id_descending),
        cmocka_unit_test(test_contents),
        cmocka_unit_test(test_resume_after_kill),
        cmocka_unit_test(test_resume_refuses_stale_work),
        cmocka_unit_test(test_concurrent_build_refused),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_bad_corpora),
        cmocka_unit_test(test_id_rules),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_compact_is_exact),
        cmocka_unit_test(test_search_arguments),
        cmocka_unit_test(test_fusion_rrf),
        cmocka_unit_test(test_fusion_interp),
        cmocka_unit_test(test_options_size),
        cmocka_unit_test(test_retriever),
        cmocka_unit_test(test_shards),
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
