/* test_ann.c — the public approximate-search handle (gtr_ann_*) over a small index built with
 * a fake encoder: with every list probed and every candidate re-ranked it returns exactly what
 * exact search returns (hits, scores and the order of equal scores: id descending); a filter
 * by ids and deletions are honoured; a damaged deletion file is refused. */
#include "support/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 600
#define DIM 24
#define NQ 20
#define K 10

/* vector = f(hash of the text); texts starting "same" share one, so their scores tie */
static gtr_status fake_encode(void *user, const char *const *texts, const size_t *lens, size_t n,
                              float *out, gtr_error *err)
{
    (void)user; (void)err;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = lens[i] >= 4 && memcmp(texts[i], "same", 4) == 0 ? 42 : gtr_fnv1a64(texts[i], lens[i], 7);
        double norm = 0;
        float *v = out + i * DIM;
        for (int d = 0; d < DIM; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            v[d] = (float)((double)(s >> 11) * 0x1p-53 - 0.5) + (d < 3 ? 0.4f : 0.0f);
            norm += (double)v[d] * v[d];
        }
        for (int d = 0; d < DIM; d++) v[d] = (float)(v[d] / sqrt(norm));
    }
    return GTR_OK;
}

typedef struct fixture {
    gtr_index *ix;
    gtr_ann *ann;
    char *ivf;
    float q[NQ * DIM];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char *corpus = tu_tmp("ann_corpus.jsonl"), *path = tu_tmp("ann.gtri");
    f->ivf = tu_tmp("ann.ivf");
    FILE *fp = fopen(corpus, "wb");
    for (int i = 0; i < N; i++) /* every 7th document shares one vector: ties */
        fprintf(fp, "{\"_id\": \"d%04d\", \"text\": \"%s %d\"}\n", i, i % 7 == 0 ? "same" : "text", i);
    fclose(fp);
    gtr_index_encoder enc = {fake_encode, NULL, DIM, 0x77, "fake"};
    gtr_error e;
    TU_OK(gtr_index_build_with(&enc, corpus, NULL, path, NULL, NULL, &e), &e);
    if (!(f->ix = gtr_index_open(path, 0, NULL, &e))) fail_msg("%s", e.message);
    gtr_ann_build_options bo = gtr_ann_default_build_options();
    bo.n_lists = 12;
    bo.seed = 5;
    TU_OK(gtr_ann_build(f->ix, f->ivf, &bo, &e), &e);
    if (!(f->ann = gtr_ann_open(f->ivf, f->ix, &e))) fail_msg("%s", e.message);
    /* queries: some documents' own vectors (so the tied group is hit) and perturbations */
    for (int i = 0; i < NQ; i++) {
        const float *v = gtr_index_vector(f->ix, (size_t)(i * 29) % N);
        for (int d = 0; d < DIM; d++) f->q[i * DIM + d] = v[d] + (i % 2 ? 0.05f * (float)((d * 7 + i) % 5 - 2) : 0.0f);
    }
    free(corpus);
    free(path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gtr_ann_free(f->ann);
    gtr_index_free(f->ix);
    free(f->ivf);
    free(f);
    return 0;
}

static void test_full_probe_equals_exact(void **state)
{
    fixture *f = *state;
    gtr_hit a[NQ * K], b[NQ * K];
    size_t na[NQ], nb[NQ];
    gtr_error e;
    TU_OK(gtr_index_search(f->ix, f->q, NQ, K, NULL, a, na, &e), &e);
    gtr_ann_search_options o = gtr_ann_default_search_options();
    o.nprobe = 12;
    o.rerank = N;
    TU_OK(gtr_ann_search(f->ann, f->q, NQ, K, &o, b, nb, &e), &e);
    int ties = 0;
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(na[i], nb[i]);
        for (size_t j = 0; j < na[i]; j++) {
            assert_int_equal(a[i * K + j].doc, b[i * K + j].doc);
            assert_memory_equal(&a[i * K + j].score, &b[i * K + j].score, sizeof(float));
            ties += j && a[i * K + j].score == a[i * K + j - 1].score;
        }
    }
    assert_true(ties > 0); /* the tied group was ranked, in exact search's order */
}

static int allowed(const uint8_t *bits, size_t d) { return bits[d >> 3] >> (d & 7) & 1; }

static void test_filter_and_delete(void **state)
{
    fixture *f = *state;
    gtr_error e;
    /* filter: ids d0000..d0299 with an even number, plus one unknown id */
    const char *ids[151];
    size_t lens[151];
    char buf[151][8];
    for (int i = 0; i < 150; i++) {
        snprintf(buf[i], sizeof buf[i], "d%04d", 2 * i);
        ids[i] = buf[i];
        lens[i] = 5;
    }
    ids[150] = "nope";
    lens[150] = 4;
    uint8_t bits[(N + 7) / 8] = {0};
    size_t unknown;
    TU_OK(gtr_ann_allow_ids(f->ann, ids, lens, 151, bits, &unknown, &e), &e);
    assert_int_equal(unknown, 1);
    gtr_hit h[NQ * K];
    size_t nh[NQ];
    gtr_ann_search_options o = gtr_ann_default_search_options();
    o.nprobe = 12;
    o.rerank = N;
    o.allow = bits;
    TU_OK(gtr_ann_search(f->ann, f->q, NQ, K, &o, h, nh, &e), &e);
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(nh[i], K);
        for (size_t j = 0; j < nh[i]; j++) assert_true(allowed(bits, h[i * K + j].doc));
    }
    /* delete every document the unfiltered search returned for query 0 */
    gtr_ann_search_options all = o;
    all.allow = NULL;
    TU_OK(gtr_ann_search(f->ann, f->q, 1, K, &all, h, nh, &e), &e);
    const char *del[K];
    size_t dl[K];
    for (size_t j = 0; j < nh[0]; j++) del[j] = gtr_index_doc_id(f->ix, h[j].doc, &dl[j]);
    gtr_hit first[K];
    memcpy(first, h, sizeof first);
    TU_OK(gtr_ann_delete(f->ann, del, dl, nh[0], &unknown, &e), &e);
    assert_int_equal(unknown, 0);
    assert_int_equal(gtr_ann_deleted_count(f->ann), nh[0]);
    /* a fresh handle reads them back; neither returns them, with or without a filter */
    gtr_ann *again = gtr_ann_open(f->ivf, f->ix, &e);
    if (!again) fail_msg("%s", e.message);
    assert_int_equal(gtr_ann_deleted_count(again), nh[0]);
    for (int pass = 0; pass < 2; pass++) {
        gtr_ann_search_options so = o;
        so.allow = pass ? bits : NULL;
        TU_OK(gtr_ann_search(again, f->q, NQ, K, &so, h, nh, &e), &e);
        for (int i = 0; i < NQ; i++)
            for (size_t j = 0; j < nh[i]; j++)
                for (int d = 0; d < K; d++) assert_int_not_equal(h[i * K + j].doc, first[d].doc);
    }
    gtr_ann_free(again);
    /* a damaged deletion file is refused, naming it */
    char *dp = malloc(strlen(f->ivf) + 5);
    sprintf(dp, "%s.del", f->ivf);
    char *data;
    size_t len;
    TU_OK(gtr_read_file(dp, 0, &data, &len, &e), &e);
    data[len - 1] ^= 0x40;
    tu_write(dp, data, len);
    assert_null(gtr_ann_open(f->ivf, f->ix, &e));
    assert_non_null(strstr(e.message, ".del"));
    tu_write(dp, data, 30); /* truncated */
    assert_null(gtr_ann_open(f->ivf, f->ix, &e));
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    remove(dp);
    free(data);
    free(dp);
}

/* the fixture's corpus, only the documents keep(i) selects */
static char *write_corpus(const char *name, int (*keep)(int))
{
    char *path = tu_tmp(name);
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < N; i++)
        if (keep(i)) fprintf(fp, "{\"_id\": \"d%04d\", \"text\": \"%s %d\"}\n", i, i % 7 == 0 ? "same" : "text", i);
    fclose(fp);
    return path;
}
static int keep_all(int i) { (void)i; return 1; }
static int keep_some(int i) { return i % 3 == 0 || i % 7 == 0; } /* the tied group too */

/* hits of a and b equal: ids, scores bit for bit, order */
static void same_hits(const gtr_hit *a, const size_t *na, const gtr_hit *b, const size_t *nb)
{
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(na[i], nb[i]);
        for (size_t j = 0; j < na[i]; j++) {
            assert_int_equal(a[i * K + j].id_len, b[i * K + j].id_len);
            assert_memory_equal(a[i * K + j].id, b[i * K + j].id, a[i * K + j].id_len);
            assert_memory_equal(&a[i * K + j].score, &b[i * K + j].score, sizeof(double));
        }
    }
}

/* Exact search with a filter gives the hits of an index built from only the allowed documents
 * (same ids, same scores bit for bit, same order), with and without the compact copy, on one
 * thread and on several; approximate search with every list probed gives them too. */
static void test_exact_filter_equals_subset_index(void **state)
{
    fixture *f = *state;
    gtr_error e;
    gtr_index_encoder enc = {fake_encode, NULL, DIM, 0x77, "fake"};
    char *csub = write_corpus("ann_sub.jsonl", keep_some), *cfull = write_corpus("ann_full.jsonl", keep_all);
    char *psub = tu_tmp("ann_sub.gtri"), *pfull = tu_tmp("ann_full8.gtri");
    gtr_index_build_options bo = gtr_index_default_build_options();
    bo.compact = GTR_COMPACT_INT8;
    TU_OK(gtr_index_build_with(&enc, csub, NULL, psub, NULL, NULL, &e), &e);
    TU_OK(gtr_index_build_with(&enc, cfull, NULL, pfull, &bo, NULL, &e), &e);
    gtr_index *sub = gtr_index_open(psub, 0, NULL, &e), *full = gtr_index_open(pfull, 0, NULL, &e);
    if (!sub || !full) fail_msg("%s", e.message);
    /* the allowed ids, each listed twice, plus two unknown ones */
    size_t ns = gtr_index_count(sub), n = 0, unknown, first;
    const char **ids = malloc((2 * ns + 2) * sizeof *ids);
    size_t *lens = malloc((2 * ns + 2) * sizeof *lens);
    for (size_t r = 0; r < 2; r++)
        for (size_t d = 0; d < ns; d++, n++) ids[n] = gtr_index_doc_id(sub, d, &lens[n]);
    ids[n] = "nope";
    lens[n++] = 4;
    ids[n] = "d9999";
    lens[n++] = 5;
    uint8_t bits[(N + 7) / 8] = {0};
    TU_OK(gtr_index_allow_ids(full, ids, lens, n, bits, &unknown, &first, &e), &e);
    assert_int_equal(unknown, 2);
    assert_int_equal(first, 2 * ns);
    size_t set = 0;
    for (size_t d = 0; d < N; d++) set += (size_t)allowed(bits, d);
    assert_int_equal(set, ns);
    gtr_hit a[NQ * K], b[NQ * K];
    size_t na[NQ], nb[NQ];
    TU_OK(gtr_index_search(sub, f->q, NQ, K, NULL, a, na, &e), &e);
    gtr_pool *pool = gtr_pool_create(3, &e);
    int ties = 0;
    for (int v = 0; v < 5; v++) {
        gtr_search_options so = gtr_index_default_search_options();
        so.allow = bits;
        so.use_compact = v & 1;
        so.pool = v & 2 ? pool : NULL;
        if (v < 4) {
            TU_OK(gtr_index_search(full, f->q, NQ, K, &so, b, nb, &e), &e);
        } else { /* approximate, every list probed, every candidate re-ranked */
            gtr_ann_build_options ab = gtr_ann_default_build_options();
            ab.n_lists = 8;
            char *ivf = tu_tmp("ann_full8.ivf");
            TU_OK(gtr_ann_build(full, ivf, &ab, &e), &e);
            gtr_ann *an = gtr_ann_open(ivf, full, &e);
            if (!an) fail_msg("%s", e.message);
            gtr_ann_search_options ao = gtr_ann_default_search_options();
            ao.nprobe = 8;
            ao.rerank = N;
            ao.allow = bits;
            TU_OK(gtr_ann_search(an, f->q, NQ, K, &ao, b, nb, &e), &e);
            gtr_ann_free(an);
            remove(ivf);
            free(ivf);
        }
        same_hits(a, na, b, nb);
    }
    for (int i = 0; i < NQ; i++)
        for (size_t j = 1; j < na[i]; j++) ties += a[i * K + j].score == a[i * K + j - 1].score;
    assert_true(ties > 0);
    /* an empty filter returns nothing */
    uint8_t none[(N + 7) / 8] = {0};
    gtr_search_options so = gtr_index_default_search_options();
    so.allow = none;
    TU_OK(gtr_index_search(full, f->q, NQ, K, &so, b, nb, &e), &e);
    for (int i = 0; i < NQ; i++) assert_int_equal(nb[i], 0);
    gtr_pool_free(pool);
    gtr_index_free(sub);
    gtr_index_free(full);
    free(ids);
    free(lens);
    remove(csub); remove(cfull); remove(psub); remove(pfull);
    free(csub); free(cfull); free(psub); free(pfull);
}

/* Replacement by id (gtr_index_build_options.replace): every 30th document re-indexed with a new
 * text, plus new documents. Exact search equals a fresh index of the final corpus; the old
 * vectors are never returned (queried with them directly); an IVF file extended with --add
 * probing every list equals exact search; the stale IVF file is refused; a damaged replaced
 * section is refused; without replace the same input is an error. */
static void test_replace(void **state)
{
    (void)state;
    gtr_error e;
    gtr_index_encoder enc = {fake_encode, NULL, DIM, 0x77, "fake"};
    char *c0 = write_corpus("rep0.jsonl", keep_all), *cu = tu_tmp("rep_upd.jsonl"), *cf = tu_tmp("rep_final.jsonl");
    char *p0 = tu_tmp("rep0.gtri"), *p1 = tu_tmp("rep1.gtri"), *pf = tu_tmp("rep_final.gtri");
    char *i0 = tu_tmp("rep0.ivf"), *i1 = tu_tmp("rep1.ivf");
    FILE *fu = fopen(cu, "wb"), *ff = fopen(cf, "wb");
    for (int i = 0; i < N; i++) {
        bool upd = i % 30 == 4;
        fprintf(ff, "{\"_id\": \"d%04d\", \"text\": \"%s %d\"}\n", i, upd ? "new" : i % 7 == 0 ? "same" : "text", i);
        if (upd) fprintf(fu, "{\"_id\": \"d%04d\", \"text\": \"new %d\"}\n", i, i);
    }
    for (int i = N; i < N + 5; i++) {
        fprintf(ff, "{\"_id\": \"d%04d\", \"text\": \"text %d\"}\n", i, i);
        fprintf(fu, "{\"_id\": \"d%04d\", \"text\": \"text %d\"}\n", i, i);
    }
    fclose(fu);
    fclose(ff);
    TU_OK(gtr_index_build_with(&enc, c0, NULL, p0, NULL, NULL, &e), &e);
    TU_OK(gtr_index_build_with(&enc, cf, NULL, pf, NULL, NULL, &e), &e);
    gtr_index *x0 = gtr_index_open(p0, 0, NULL, &e);
    if (!x0) fail_msg("%s", e.message);
    gtr_ann_build_options ab = gtr_ann_default_build_options();
    ab.n_lists = 8;
    TU_OK(gtr_ann_build(x0, i0, &ab, &e), &e);
    /* without replace: the first re-indexed id is an error saying how to replace */
    assert_int_not_equal(gtr_index_build_with(&enc, cu, p0, p1, NULL, NULL, &e), GTR_OK);
    assert_non_null(strstr(e.message, "d0004"));
    assert_non_null(strstr(e.message, "--replace"));
    gtr_index_build_options bo = gtr_index_default_build_options();
    bo.replace = 1;
    bo.compact = GTR_COMPACT_INT8; /* the compact pass skips replaced documents too */
    gtr_index_build_stats stats;
    TU_OK(gtr_index_build_with(&enc, cu, p0, p1, &bo, &stats, &e), &e);
    assert_int_equal(stats.docs_replaced, N / 30);
    gtr_index *x1 = gtr_index_open(p1, 0, NULL, &e), *xf = gtr_index_open(pf, 0, NULL, &e);
    if (!x1 || !xf) fail_msg("%s", e.message);
    assert_int_equal(gtr_index_count(x1), N + N / 30 + 5);
    assert_int_equal(gtr_index_replaced_count(x1), N / 30);
    assert_false(gtr_index_doc_live(x1, 4));
    assert_true(gtr_index_doc_live(x1, 5));
    /* queries: the replaced documents' old vectors, and the fixture's kind */
    float q[NQ * DIM];
    for (int i = 0; i < NQ; i++) {
        const float *v = gtr_index_vector(x0, (size_t)(i % 2 ? 30 * i + 4 : i * 29) % N);
        memcpy(q + i * DIM, v, DIM * sizeof(float));
    }
    gtr_hit a[NQ * K], b[NQ * K];
    size_t na[NQ], nb[NQ];
    TU_OK(gtr_index_search(xf, q, NQ, K, NULL, a, na, &e), &e);
    TU_OK(gtr_index_search(x1, q, NQ, K, NULL, b, nb, &e), &e);
    same_hits(a, na, b, nb);
    gtr_search_options co = gtr_index_default_search_options();
    co.use_compact = 1;
    TU_OK(gtr_index_search(x1, q, NQ, K, &co, b, nb, &e), &e);
    same_hits(a, na, b, nb);
    for (int i = 0; i < NQ * K; i++) assert_true(i % K >= (int)nb[i / K] || gtr_index_doc_live(x1, b[i].doc));
    /* the stale IVF file is refused; extended with --add, every list probed = exact */
    assert_null(gtr_ann_open(i0, x1, &e));
    ab.base = i0;
    TU_OK(gtr_ann_build(x1, i1, &ab, &e), &e);
    gtr_ann *an = gtr_ann_open(i1, x1, &e);
    if (!an) fail_msg("%s", e.message);
    gtr_ann_search_options ao = gtr_ann_default_search_options();
    ao.nprobe = 8;
    ao.rerank = 2 * N;
    TU_OK(gtr_ann_search(an, q, NQ, K, &ao, b, nb, &e), &e);
    same_hits(a, na, b, nb);
    /* a filter by id picks the live copy of a replaced id */
    const char *rid = "d0004";
    size_t rlen = 5, unknown;
    uint8_t bits[(N + N / 30 + 5 + 7) / 8] = {0};
    TU_OK(gtr_index_allow_ids(x1, &rid, &rlen, 1, bits, &unknown, NULL, &e), &e);
    assert_int_equal(unknown, 0);
    assert_false(bits[0] & (1u << 4));
    gtr_ann_free(an);
    /* a second replacement of the same id over the result: still the final corpus's hits */
    char *cu2 = tu_tmp("rep_upd2.jsonl"), *p2 = tu_tmp("rep2.gtri");
    tu_write(cu2, "{\"_id\": \"d0004\", \"text\": \"new 4\"}\n", strlen("{\"_id\": \"d0004\", \"text\": \"new 4\"}\n"));
    TU_OK(gtr_index_build_with(&enc, cu2, p1, p2, &bo, &stats, &e), &e);
    assert_int_equal(stats.docs_replaced, 1);
    gtr_index *x2 = gtr_index_open(p2, 0, NULL, &e);
    if (!x2) fail_msg("%s", e.message);
    assert_int_equal(gtr_index_replaced_count(x2), N / 30 + 1);
    TU_OK(gtr_index_search(x2, q, NQ, K, NULL, b, nb, &e), &e);
    same_hits(a, na, b, nb);
    gtr_index_free(x2);
    /* a damaged replaced-documents section: the checksum names it */
    char *data;
    size_t len;
    TU_OK(gtr_read_file(p1, 0, &data, &len, &e), &e);
    uint32_t ns;
    memcpy(&ns, data + 36, 4);
    int hit = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t kind;
        uint64_t off;
        memcpy(&kind, data + 128 + 32 * i, 4);
        memcpy(&off, data + 128 + 32 * i + 8, 8);
        if (kind == 8) { data[off] ^= 0x01; hit = 1; }
    }
    assert_true(hit);
    tu_write(p2, data, len);
    free(data);
    assert_null(gtr_index_open(p2, 0, NULL, &e));
    assert_non_null(strstr(e.message, "'replaced'"));
    gtr_index_free(x0);
    gtr_index_free(x1);
    gtr_index_free(xf);
    char *files[] = {c0, cu, cf, p0, p1, pf, i0, i1, cu2, p2};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) { remove(files[i]); free(files[i]); }
}

/* Metadata fields: gtr_fields_where against the rule the corpus was written with (a brute
 * force here), numbers by value, AND of conditions, unknown names refused; the file refused
 * after any single flipped byte and at any truncation; stale for another index. */
static void test_fields(void **state)
{
    (void)state;
    gtr_error e;
    gtr_index_encoder enc = {fake_encode, NULL, DIM, 0x77, "fake"};
    char *c = tu_tmp("fld.jsonl"), *p = tu_tmp("fld.gtri"), *fp = tu_tmp("fld.gtri.fields");
    FILE *f = fopen(c, "wb");
    for (int i = 0; i < N; i++)
        fprintf(f, "{\"_id\": \"d%04d\", \"text\": \"text %d\", \"metadata\": {\"year\": %d, \"src\": \"%c\", "
                   "\"score\": %d.5, \"tags\": [1]}, \"open\": %s}\n",
                i, i, 2000 + i % 5, "abc"[i % 3], i % 4, i % 2 ? "true" : "false");
    fclose(f);
    TU_OK(gtr_index_build_with(&enc, c, NULL, p, NULL, NULL, &e), &e);
    gtr_index *ix = gtr_index_open(p, 0, NULL, &e);
    if (!ix) fail_msg("%s", e.message);
    int written = 0;
    TU_OK(gtr_fields_build(ix, c, NULL, fp, &written, &e), &e);
    assert_int_equal(written, 1);
    gtr_fields *fl = gtr_fields_open(fp, ix, &e);
    if (!fl) fail_msg("%s", e.message);
    assert_int_equal(gtr_fields_count(fl), 4); /* year, src, score, open (tags: an array, not kept) */
    struct { const char *names[2], *values[2]; size_t n; } cases[] = {
        {{"year"}, {"2003"}, 1}, {{"year"}, {"2003.0"}, 1}, {{"src", "open"}, {"b", "true"}, 2},
        {{"score"}, {"2.5"}, 1}, {{"year", "src"}, {"2001", "z"}, 2}, {{"src"}, {"2003"}, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        uint8_t bits[(N + 7) / 8] = {0};
        size_t m;
        TU_OK(gtr_fields_where(fl, ix, cases[t].names, cases[t].values, cases[t].n, bits, &m, &e), &e);
        size_t want = 0;
        for (int i = 0; i < N; i++) {
            size_t d = (size_t)i; /* documents in corpus order */
            bool ok = true;
            for (size_t k = 0; k < cases[t].n; k++) {
                const char *nm = cases[t].names[k], *v = cases[t].values[k];
                char buf[32];
                if (!strcmp(nm, "year")) ok = ok && atof(v) == 2000 + i % 5;
                else if (!strcmp(nm, "score")) ok = ok && atof(v) == i % 4 + 0.5;
                else if (!strcmp(nm, "src")) { snprintf(buf, sizeof buf, "%c", "abc"[i % 3]); ok = ok && !strcmp(v, buf); }
                else if (!strcmp(nm, "open")) ok = ok && !strcmp(v, i % 2 ? "true" : "false");
            }
            assert_int_equal(allowed(bits, d), ok);
            want += ok;
        }
        assert_int_equal(m, want);
    }
    const char *bad = "yaer", *bv = "2003";
    uint8_t bits[(N + 7) / 8] = {0};
    assert_int_equal(gtr_fields_where(fl, ix, &bad, &bv, 1, bits, NULL, &e), GTR_ERR_NOT_FOUND);
    assert_non_null(strstr(e.message, "yaer"));
    gtr_fields_free(fl);
    /* every flipped byte and every truncation is refused (under ASan: never read out of bounds) */
    char *data;
    size_t len;
    TU_OK(gtr_read_file(fp, 0, &data, &len, &e), &e);
    char *dp = tu_tmp("fld_bad.fields");
    for (size_t i = 0; i < len; i += 1 + i / 64) {
        data[i] ^= 0x20;
        tu_write(dp, data, len);
        data[i] ^= 0x20;
        gtr_fields *x = gtr_fields_open(dp, ix, &e);
        if (x) fail_msg("byte %zu flipped: accepted", i);
    }
    for (size_t l = 0; l < len; l += 1 + l / 16) {
        tu_write(dp, data, l);
        gtr_fields *x = gtr_fields_open(dp, ix, &e);
        if (x) fail_msg("truncated to %zu: accepted", l);
    }
    /* the fields of another index */
    tu_write(dp, data, len);
    gtr_fields *again = gtr_fields_open(dp, ix, &e);
    assert_non_null(again); /* the intact copy opens */
    gtr_fields_free(again);
    char *c2 = write_corpus("fld2.jsonl", keep_some), *p2 = tu_tmp("fld2.gtri");
    TU_OK(gtr_index_build_with(&enc, c2, NULL, p2, NULL, NULL, &e), &e);
    gtr_index *ix2 = gtr_index_open(p2, 0, NULL, &e);
    assert_null(gtr_fields_open(fp, ix2, &e));
    assert_int_equal(e.code, GTR_ERR_MISMATCH);
    /* a corpus without fields: no file (an old one removed) */
    TU_OK(gtr_fields_build(ix2, c2, NULL, dp, &written, &e), &e);
    assert_int_equal(written, 0);
    assert_false(gtr_file_exists(dp));
    gtr_index_free(ix2);
    gtr_index_free(ix);
    free(data);
    char *files[] = {c, p, fp, dp, c2, p2};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) { remove(files[i]); free(files[i]); }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_probe_equals_exact),
        cmocka_unit_test(test_filter_and_delete),
        cmocka_unit_test(test_exact_filter_equals_subset_index),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
