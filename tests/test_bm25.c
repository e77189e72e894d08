/* test_bm25.c — BM25: the Porter stemmer, the analyzer, Lucene's length norms, exact scores
 * on a tiny corpus, corrupt indexes and corpora, and the SciFact figure Anserini publishes. */
#include "support/testutil.h"

#include "bm25/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_stem(const char *word, const char *want)
{
    uint32_t w[64];
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++) w[i] = (unsigned char)word[i];
    n = bm25_porter_stem(w, n);
    char got[64];
    for (size_t i = 0; i < n; i++) got[i] = (char)w[i];
    got[n] = '\0';
    if (strcmp(got, want)) fail_msg("stem(%s) = %s, want %s", word, got, want);
}

/* Examples from Porter (1980), run through the whole algorithm. */
static void test_porter(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"caresses", "caress"}, {"ponies", "poni"},     {"ties", "ti"},          {"caress", "caress"},
        {"cats", "cat"},        {"feed", "feed"},       {"agreed", "agre"},      {"plastered", "plaster"},
        {"bled", "bled"},       {"motoring", "motor"},  {"sing", "sing"},        {"conflated", "conflat"},
        {"troubled", "troubl"}, {"sized", "size"},      {"hopping", "hop"},      {"tanned", "tan"},
        {"falling", "fall"},    {"hissing", "hiss"},    {"fizzed", "fizz"},      {"failing", "fail"},
        {"filing", "file"},     {"happy", "happi"},     {"sky", "sky"},          {"relational", "relat"},
        {"conditional", "condit"}, {"rational", "ration"}, {"generalization", "gener"},
        {"oscillators", "oscil"}, {"revival", "reviv"}, {"allowance", "allow"}, {"inference", "infer"},
        {"airliner", "airlin"}, {"adjustable", "adjust"}, {"replacement", "replac"},
        {"adoption", "adopt"},  {"effective", "effect"}, {"controlling", "control"}, {"roll", "roll"},
        {"is", "is"},           {"as", "as"},
        /* Lucene's (Porter's C release) departures from the paper: -logi and -bli */
        {"analogy", "analog"},  {"conformably", "conform"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) check_stem(pairs[i][0], pairs[i][1]);
}

static void check_analyze(const char *text, const char *want)
{
    gtr_error e;
    char *out;
    TU_OK(gtr_bm25_analyze(text, strlen(text), &out, NULL, &e), &e);
    if (strcmp(out, want)) fail_msg("analyze(%s) = '%s', want '%s'", text, out, want);
    gtr_free(out);
}

static void test_analyzer(void **state)
{
    (void)state;
    /* stop words, possessives (' and U+2019), lower case, stems */
    check_analyze("The quick brown foxes' jumping over the lazy dog's back.",
                  "quick brown fox jump over lazi dog back");
    check_analyze("Porter\xe2\x80\x99s RULES", "porter rule");
    check_analyze("to be or not to be, that is it", "");
    /* UAX #29: numbers keep their inner . and ,; letters their inner . and '; hyphens split */
    check_analyze("3.5 mg/kg and 1,000 cells; COVID-19 e.g. U.S.A.", "3.5 mg kg 1,000 cell covid 19 e.g u.s.a");
    check_analyze("don't snake_case p53", "don't snake_cas p53");
    /* Greek letters are letters; ideographs are one token each */
    check_analyze("TNF-\xce\xb1 and IFN-\xce\xb3", "tnf \xce\xb1 ifn \xce\xb3");
    check_analyze("\xe4\xb8\xad\xe6\x96\x87" "abc", "\xe4\xb8\xad \xe6\x96\x87 abc");
    /* invalid UTF-8 reads as U+FFFD, which separates words */
    check_analyze("cell\xff" "cells", "cell cell");
    check_analyze("", "");
}

/* Lucene's SmallFloat.intToByte4: exact below 24, monotonic, and byte4ToInt inverts it. */
static void test_norms(void **state)
{
    (void)state;
    for (uint32_t len = 0; len < 24; len++) assert_int_equal(bm25_norm_to_len(bm25_len_to_norm(len)), len);
    for (int b = 0; b < 256; b++) {
        assert_int_equal(bm25_len_to_norm(bm25_norm_to_len((uint8_t)b)), b);
        if (b) assert_true(bm25_norm_to_len((uint8_t)b) > bm25_norm_to_len((uint8_t)(b - 1)));
    }
    for (uint32_t len = 0; len < 100000; len += 7) {
        uint32_t back = bm25_norm_to_len(bm25_len_to_norm(len));
        assert_true(back <= len);
        assert_true(len - back <= len / 8); /* 4 significant bits */
    }
}

static char *write_corpus(const char *name, const char *text)
{
    char *p = tu_tmp(name);
    tu_write(p, text, strlen(text));
    return p;
}

static gtr_bm25 *build_open(const char *corpus_text, const char *name)
{
    gtr_error e;
    char cname[64];
    snprintf(cname, sizeof cname, "%s.jsonl", name);
    char *corpus = write_corpus(cname, corpus_text);
    char *ipath = tu_tmp(name);
    TU_OK(gtr_bm25_build(corpus, ipath, NULL, NULL, &e), &e);
    gtr_bm25 *ix = gtr_bm25_open(ipath, &e);
    if (!ix) fail_msg("%s", e.message);
    free(corpus);
    free(ipath);
    return ix;
}

static const char *TINY =
    "{\"_id\": \"d1\", \"title\": \"Apple\", \"text\": \"banana\"}\n"
    "{\"_id\": \"d2\", \"title\": \"\", \"text\": \"apple apples cherry\"}\n"
    "{\"_id\": \"d3\", \"title\": \"banana\", \"text\": \"\"}\n"
    "{\"_id\": \"x1\", \"text\": \"kiwi\"}\n"
    "{\"_id\": \"x2\", \"text\": \"kiwi\"}\n";

/* Lucene's BM25 for one term: idf * tf / (tf + k1 * (1 - b + b * dl / avgdl)). */
static double bm25(double n, double df, double tf, double dl, double avgdl)
{
    double idf = log(1 + (n - df + 0.5) / (df + 0.5));
    return idf * tf / (tf + 0.9 * (1 - 0.4 + 0.4 * dl / avgdl));
}

static void test_scores(void **state)
{
    (void)state;
    gtr_error e;
    gtr_bm25 *ix = build_open(TINY, "tiny.bm25");
    assert_int_equal(gtr_bm25_num_docs(ix), 5);
    assert_string_equal(gtr_bm25_doc_id(ix, 1, NULL), "d2");
    assert_int_equal(gtr_bm25_find_doc(ix, "x2", 2), 4);
    assert_int_equal(gtr_bm25_find_doc(ix, "x", 1), SIZE_MAX);
    /* lengths 2, 3, 1, 1, 1: avgdl 1.6 */
    const char *q[] = {"apple", "kiwi", "APPLE apple", "nothing here"};
    gtr_hit hits[4 * 3];
    size_t n[4];
    TU_OK(gtr_bm25_search(ix, q, NULL, 4, 3, NULL, hits, n, &e), &e);
    assert_int_equal(n[0], 2);
    assert_int_equal(hits[0].doc, 1); /* d2: tf 2 */
    assert_int_equal(hits[1].doc, 0);
    assert_true(fabs(hits[0].score - bm25(5, 2, 2, 3, 1.6)) < 1e-5);
    assert_true(fabs(hits[1].score - bm25(5, 2, 1, 2, 1.6)) < 1e-5);
    /* equal scores: document id descending */
    assert_int_equal(n[1], 2);
    assert_int_equal(hits[3].doc, 4);
    assert_int_equal(hits[4].doc, 3);
    assert_true(hits[3].score == hits[4].score);
    /* a repeated query term counts twice */
    assert_true(fabs(hits[6].score - 2 * hits[0].score) < 1e-5);
    assert_int_equal(n[3], 0);
    /* k = 1 keeps the best; skip_ids drops a document */
    const char *skip[] = {"x2"};
    gtr_bm25_search_options o = gtr_bm25_default_search_options();
    o.skip_ids = skip;
    TU_OK(gtr_bm25_search(ix, q + 1, NULL, 1, 1, &o, hits, n, &e), &e);
    assert_int_equal(n[0], 1);
    assert_int_equal(hits[0].doc, 3);
    o.b = 2;
    assert_int_equal(gtr_bm25_search(ix, q, NULL, 1, 1, &o, hits, n, &e), GTR_ERR_INVALID_ARG);
    gtr_bm25_free(ix);
}

static void expect_build_error(const char *corpus_text, const char *needle)
{
    gtr_error e = {0};
    char *corpus = write_corpus("bad.jsonl", corpus_text);
    char *ipath = tu_tmp("bad.bm25");
    assert_int_not_equal(gtr_bm25_build(corpus, ipath, NULL, NULL, &e), GTR_OK);
    if (!strstr(e.message, needle)) fail_msg("message '%s' lacks '%s'", e.message, needle);
    assert_false(gtr_file_exists(ipath)); /* nothing half-written */
    free(corpus);
    free(ipath);
}

static void test_bad_corpus(void **state)
{
    (void)state;
    expect_build_error("{\"_id\": \"a\", \"text\": \"x\"}\n{\"text\": \"y\"}\n", "bad.jsonl:2: document has no \"_id\"");
    expect_build_error("{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"y\"}\n{\"_id\": \"a\", \"text\": \"z\"}\n",
                       "bad.jsonl:3: duplicate document id 'a' (first on line 1)");
    expect_build_error("{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \n", "bad.jsonl:2:");
    expect_build_error("", "no documents");
}

static void expect_open_error(const char *path, const char *needle)
{
    gtr_error e = {0};
    gtr_bm25 *ix = gtr_bm25_open(path, &e);
    if (ix) fail_msg("opened a damaged index (expected '%s')", needle);
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    if (!strstr(e.message, needle)) fail_msg("message '%s' lacks '%s'", e.message, needle);
}

static void test_corrupt_index(void **state)
{
    (void)state;
    gtr_error e;
    gtr_bm25 *ix = build_open(TINY, "good.bm25");
    gtr_bm25_free(ix);
    char *good = tu_tmp("good.bm25"), *bad = tu_tmp("damaged.bm25");
    char *data;
    size_t len;
    TU_OK(gtr_read_file(good, 0, &data, &len, &e), &e);
    /* truncated */
    tu_write(bad, data, len - 10);
    expect_open_error(bad, "truncated");
    tu_write(bad, data, 100);
    expect_open_error(bad, "not a gtr BM25 index");
    /* a flipped bit in the postings, in the header, in the magic */
    const bm25_header *h = (const bm25_header *)data;
    size_t at = (size_t)h->sect[BM25_S_POST_FREQ].off;
    data[at] ^= 1;
    tu_write(bad, data, len);
    expect_open_error(bad, "checksum mismatch in section 'posting frequencies'");
    data[at] ^= 1;
    data[40] ^= 1;
    tu_write(bad, data, len);
    expect_open_error(bad, "header checksum");
    data[40] ^= 1;
    data[0] = 'X';
    tu_write(bad, data, len);
    expect_open_error(bad, "not a gtr BM25 index");
    tu_write(bad, "", 0);
    expect_open_error(bad, "empty file");
    assert_null(gtr_bm25_open("/nonexistent/index.bm25", &e));
    assert_non_null(strstr(e.message, "/nonexistent/index.bm25"));
    free(data);
    free(good);
    free(bad);
}

/* BM25 on BEIR SciFact's test queries. Anserini's BEIR regression (BM25 flat, k1=0.9, b=0.4)
 * reports nDCG@10 0.6789 (Kamphuis et al. / Pyserini BEIR tables); ours must be within 0.01. */
static void test_scifact(void **state)
{
    (void)state;
    gtr_error e;
    char *corpus = tu_shared("beir/scifact/corpus.jsonl"), *queries = tu_shared("beir/scifact/queries.jsonl");
    char *qrels_path = tu_shared("beir/scifact/qrels/test.tsv"), *ipath = tu_tmp("scifact.bm25");
    gtr_pool *pool = gtr_pool_create(2, &e);
    assert_non_null(pool);
    gtr_bm25_build_options bo = gtr_bm25_default_build_options();
    bo.pool = pool;
    gtr_bm25_build_stats st;
    TU_OK(gtr_bm25_build(corpus, ipath, &bo, &st, &e), &e);
    assert_int_equal(st.docs, 5183);
    gtr_bm25 *ix = gtr_bm25_open(ipath, &e);
    assert_non_null(ix);
    gtr_qrels *qrels = gtr_qrels_load(qrels_path, &e);
    assert_non_null(qrels);
    /* the test split's queries */
    gtr_text_reader *r = gtr_text_reader_open(queries, GTR_TEXT_JSONL, &e);
    assert_non_null(r);
    char *texts[400], *ids[400];
    size_t nq = 0;
    for (;;) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
        if (eof) break;
        if (!gtr_qrels_has_query(qrels, rec.id, rec.id_len)) continue;
        assert_true(nq < 400);
        texts[nq] = strndup(rec.text, rec.text_len);
        ids[nq++] = strndup(rec.id, rec.id_len);
    }
    gtr_text_reader_close(r);
    assert_int_equal(nq, 300);
    size_t k = 100;
    gtr_hit *hits = malloc(nq * k * sizeof *hits), *hits1 = malloc(nq * k * sizeof *hits1);
    size_t n_hits[400], n_hits1[400];
    gtr_bm25_search_options o = gtr_bm25_default_search_options();
    o.skip_ids = (const char *const *)ids; /* BEIR's ignore_identical_ids */
    o.pool = pool;
    TU_OK(gtr_bm25_search(ix, (const char *const *)texts, NULL, nq, k, &o, hits, n_hits, &e), &e);
    /* threads do not change the result */
    o.pool = NULL;
    TU_OK(gtr_bm25_search(ix, (const char *const *)texts, NULL, nq, k, &o, hits1, n_hits1, &e), &e);
    assert_memory_equal(n_hits, n_hits1, nq * sizeof *n_hits);
    gtr_run *run = gtr_run_new(&e);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < n_hits[i]; j++) {
            assert_int_equal(hits[i * k + j].doc, hits1[i * k + j].doc);
            assert_true(hits[i * k + j].score == hits1[i * k + j].score);
            size_t dl;
            const char *d = gtr_bm25_doc_id(ix, hits[i * k + j].doc, &dl);
            TU_OK(gtr_run_add(run, ids[i], strlen(ids[i]), d, dl, hits[i * k + j].score, &e), &e);
        }
    gtr_eval_result *res = gtr_run_evaluate(qrels, run, NULL, GTR_EVAL_COMPLETE, &e);
    assert_non_null(res);
    double ndcg10 = gtr_eval_get(res, "ndcg_cut_10");
    print_message("# SciFact BM25: nDCG@10 %.4f, R@100 %.4f (Anserini flat: 0.6789, 0.9253)\n", ndcg10,
                  gtr_eval_get(res, "recall_100"));
    assert_true(ndcg10 >= 0.669);
    assert_int_equal((int)gtr_eval_get(res, "num_q"), 300);
    gtr_eval_free(res);
    gtr_run_free(run);
    for (size_t i = 0; i < nq; i++) {
        free(texts[i]);
        free(ids[i]);
    }
    free(hits);
    free(hits1);
    gtr_qrels_free(qrels);
    gtr_bm25_free(ix);
    gtr_pool_free(pool);
    free(corpus);
    free(queries);
    free(qrels_path);
    free(ipath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_porter),     cmocka_unit_test(test_analyzer),
        cmocka_unit_test(test_norms),      cmocka_unit_test(test_scores),
        cmocka_unit_test(test_bad_corpus), cmocka_unit_test(test_corrupt_index),
        cmocka_unit_test(test_scifact),
    };
    return cmocka_run_group_tests_name("bm25", tests, NULL, NULL);
}
