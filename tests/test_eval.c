/* test_eval.c — evaluation: trec_eval parity on ../shared/trec_eval (line for line), the
 * ranking and averaging rules on hand-made qrels/runs, and errors for malformed input. */
#include "support/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The measures the reference files were made with (../shared/README.md). */
static const char *REF_MEASURES =
    "ndcg_cut.1,3,5,10,100,1000 map_cut.10,100,1000 recall.1,5,10,100,1000 P.1,5,10,100 "
    "recip_rank map ndcg num_q num_ret num_rel num_rel_ret";

static char *read_shared(const char *rel, size_t *len)
{
    char *p = tu_shared(rel), *d;
    gtr_error e;
    TU_OK(gtr_read_file(p, 0, &d, len, &e), &e);
    free(p);
    return d;
}

/* Compare our output with an expected file line by line, naming the first difference. */
static void assert_same_lines(const char *got, const char *want, const char *what)
{
    size_t line = 1;
    const char *g = got, *w = want;
    while (*g || *w) {
        const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        size_t gl = ge ? (size_t)(ge - g) : strlen(g), wl = we ? (size_t)(we - w) : strlen(w);
        if (gl != wl || memcmp(g, w, gl))
            fail_msg("%s line %zu:\n  got:  %.*s\n  want: %.*s", what, line, (int)gl, g, (int)wl, w);
        g += gl + (ge != NULL);
        w += wl + (we != NULL);
        line++;
    }
}

static void check_parity(const char *qrels_name, const char *run_name)
{
    gtr_error e;
    char qp[128], rp[128];
    snprintf(qp, sizeof qp, "trec_eval/%s", qrels_name);
    snprintf(rp, sizeof rp, "trec_eval/%s.run", run_name);
    char *qpath = tu_shared(qp), *rpath = tu_shared(rp);
    gtr_qrels *q = gtr_qrels_load(qpath, &e);
    assert_non_null(q);
    gtr_run *r = gtr_run_load(rpath, &e);
    assert_non_null(r);
    gtr_measures *ms = gtr_measures_parse(REF_MEASURES, &e);
    assert_non_null(ms);
    static const struct {
        const char *suffix;
        unsigned flags;
        int per_query;
    } modes[] = {{"expected_beir", 0, 0}, {"expected_c", GTR_EVAL_COMPLETE, 0}, {"expected_q", GTR_EVAL_COMPLETE, 1}};
    for (size_t m = 0; m < 3; m++) {
        gtr_eval_result *res = gtr_run_evaluate(q, r, ms, modes[m].flags, &e);
        if (!res) fail_msg("%s", e.message);
        char *out;
        size_t len;
        TU_OK(gtr_eval_format(res, modes[m].per_query, &out, &len, &e), &e);
        char name[128];
        snprintf(name, sizeof name, "trec_eval/%s.%s.txt", run_name, modes[m].suffix);
        size_t wlen;
        char *want = read_shared(name, &wlen);
        assert_same_lines(out, want, name);
        free(want);
        gtr_free(out);
        gtr_eval_free(res);
    }
    gtr_measures_free(ms);
    gtr_run_free(r);
    gtr_qrels_free(q);
    free(qpath);
    free(rpath);
}

static void test_parity_tiny(void **state) { (void)state; check_parity("tiny.qrels", "tiny"); }
static void test_parity_full(void **state) { (void)state; check_parity("scifact.qrels", "scifact_full"); }
static void test_parity_partial(void **state) { (void)state; check_parity("scifact.qrels", "scifact_partial"); }

/* BEIR's qrels TSV (with header) and the TREC qrels of the same judgments evaluate alike. */
static void test_beir_tsv_qrels(void **state)
{
    (void)state;
    gtr_error e;
    char *tsv = tu_shared("beir/scifact/qrels/test.tsv"), *trec = tu_shared("beir/scifact/qrels/test.trec");
    char *rp = tu_shared("trec_eval/scifact_full.run");
    gtr_qrels *a = gtr_qrels_load(tsv, &e), *b = gtr_qrels_load(trec, &e);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(gtr_qrels_num_queries(a), 300);
    assert_int_equal(gtr_qrels_num_queries(b), 300);
    assert_true(gtr_qrels_has_query(a, "1", 1));
    assert_false(gtr_qrels_has_query(a, "query-id", 8));
    gtr_run *r = gtr_run_load(rp, &e);
    gtr_eval_result *x = gtr_run_evaluate(a, r, NULL, 0, &e), *y = gtr_run_evaluate(b, r, NULL, 0, &e);
    assert_non_null(x);
    assert_non_null(y);
    char *ox, *oy;
    TU_OK(gtr_eval_format(x, 1, &ox, NULL, &e), &e);
    TU_OK(gtr_eval_format(y, 1, &oy, NULL, &e), &e);
    assert_string_equal(ox, oy);
    /* 809 run queries are not in the test judgments */
    assert_int_equal(gtr_eval_num_unjudged(x), 809);
    gtr_free(ox);
    gtr_free(oy);
    gtr_eval_free(x);
    gtr_eval_free(y);
    gtr_run_free(r);
    gtr_qrels_free(a);
    gtr_qrels_free(b);
    free(tsv);
    free(trec);
    free(rp);
}

static gtr_qrels *qrels_of(const char *text)
{
    gtr_error e;
    gtr_qrels *q = gtr_qrels_parse(text, strlen(text), "q.txt", &e);
    if (!q) fail_msg("%s", e.message);
    return q;
}

static gtr_run *run_of(const char *text)
{
    gtr_error e;
    gtr_run *r = gtr_run_parse(text, strlen(text), "r.txt", &e);
    if (!r) fail_msg("%s", e.message);
    return r;
}

static double value(const gtr_qrels *q, const gtr_run *r, const char *spec, unsigned flags, const char *name)
{
    gtr_error e;
    gtr_measures *ms = gtr_measures_parse(spec, &e);
    if (!ms) fail_msg("%s", e.message);
    gtr_eval_result *res = gtr_run_evaluate(q, r, ms, flags, &e);
    if (!res) fail_msg("%s", e.message);
    double v = gtr_eval_get(res, name);
    gtr_eval_free(res);
    gtr_measures_free(ms);
    return v;
}

/* Equal scores rank by document id descending, bytewise ("b" > "a", "10" < "9"). */
static void test_ties(void **state)
{
    (void)state;
    gtr_qrels *q = qrels_of("q 0 a 1\nq 0 9 1\n");
    /* all four tie: order is b, a, 9, 10 -> first relevant (a) at rank 2 */
    gtr_run *r = run_of("q Q0 a 1 5 t\nq Q0 b 2 5 t\nq Q0 10 3 5 t\nq Q0 9 4 5 t\n");
    assert_true(fabs(value(q, r, "recip_rank", 0, "recip_rank") - 0.5) < 1e-12);
    /* relevant at ranks 2 and 3: AP = (1/2 + 2/3) / 2 */
    assert_true(fabs(value(q, r, "map", 0, "map") - (0.5 + 2.0 / 3) / 2) < 1e-12);
    /* the rank column is ignored: a higher score wins over the file order */
    gtr_run *r2 = run_of("q Q0 b 1 1 t\nq Q0 a 2 2 t\n");
    assert_true(fabs(value(q, r2, "recip_rank", 0, "recip_rank") - 1.0) < 1e-12);
    /* formatting a run prints it in that order with ranks 1..n */
    gtr_error e;
    char *txt;
    TU_OK(gtr_run_format(r, "x", &txt, NULL, &e), &e);
    assert_string_equal(txt, "q Q0 b 1 5 x\nq Q0 a 2 5 x\nq Q0 9 3 5 x\nq Q0 10 4 5 x\n");
    gtr_free(txt);
    gtr_run_free(r);
    gtr_run_free(r2);
    gtr_qrels_free(q);
}

/* Graded judgments, negative and zero judgments, P with fewer documents than K. */
static void test_levels_and_cutoffs(void **state)
{
    (void)state;
    gtr_qrels *q = qrels_of("q 0 a 2\nq 0 b 0\nq 0 c 1\nq 0 d -1\nq 0 e 1\n");
    gtr_run *r = run_of("q Q0 d 1 9 t\nq Q0 c 2 8 t\nq Q0 a 3 7 t\nq Q0 x 4 6 t\n");
    /* ranks: d (judged -1: not relevant, no gain), c (1), a (2), x (unjudged) */
    assert_true(value(q, r, "num_rel", 0, "num_rel") == 3);
    assert_true(value(q, r, "num_rel_ret", 0, "num_rel_ret") == 2);
    assert_true(value(q, r, "num_ret", 0, "num_ret") == 4);
    assert_true(fabs(value(q, r, "P.10", 0, "P_10") - 0.2) < 1e-12);
    assert_true(fabs(value(q, r, "recall.3", 0, "recall_3") - 2.0 / 3) < 1e-12);
    double dcg = 1 / log2(3.0) + 2 / log2(4.0);
    double idcg = 2 / log2(2.0) + 1 / log2(3.0) + 1 / log2(4.0);
    assert_true(fabs(value(q, r, "ndcg", 0, "ndcg") - dcg / idcg) < 1e-12);
    double idcg2 = 2 / log2(2.0) + 1 / log2(3.0);
    assert_true(fabs(value(q, r, "ndcg_cut.2", 0, "ndcg_cut_2") - (1 / log2(3.0)) / idcg2) < 1e-12);
    assert_true(fabs(value(q, r, "map_cut.2", 0, "map_cut_2") - (1.0 / 2) / 3) < 1e-12);
    gtr_run_free(r);
    gtr_qrels_free(q);
}

/* Default averaging is over judged queries in the run; -c averages over all judged queries.
 * A judged query with no relevant document counts (scores 0). */
static void test_averaging(void **state)
{
    (void)state;
    gtr_qrels *q = qrels_of("q1 0 a 1\nq2 0 b 1\nq3 0 c 0\n");
    gtr_run *r = run_of("q1 Q0 a 1 1 t\nq3 Q0 c 1 1 t\nzz Q0 a 1 1 t\n");
    /* BEIR: q1 (1.0) and q3 (no relevant: 0) */
    assert_true(fabs(value(q, r, "recip_rank", 0, "recip_rank") - 0.5) < 1e-12);
    assert_true(value(q, r, "num_q", 0, "num_q") == 2);
    /* -c: q2 is absent and scores 0 */
    assert_true(fabs(value(q, r, "recip_rank", GTR_EVAL_COMPLETE, "recip_rank") - 1.0 / 3) < 1e-12);
    assert_true(value(q, r, "num_q", GTR_EVAL_COMPLETE, "num_q") == 3);
    assert_true(value(q, r, "num_rel", GTR_EVAL_COMPLETE, "num_rel") == 2);
    gtr_error e;
    gtr_eval_result *res = gtr_run_evaluate(q, r, NULL, GTR_EVAL_COMPLETE, &e);
    assert_non_null(res);
    assert_int_equal(gtr_eval_num_unjudged(res), 1);
    assert_string_equal(gtr_eval_unjudged_id(res, 0), "zz");
    assert_int_equal(gtr_eval_num_queries(res), 3);
    assert_string_equal(gtr_eval_query_id(res, 1), "q2");
    assert_true(isnan(gtr_eval_get(res, "P_7")));
    gtr_eval_free(res);
    /* a run that answers no judged query is an error without -c */
    gtr_run *none = run_of("zz Q0 a 1 1 t\n");
    assert_null(gtr_run_evaluate(q, none, NULL, 0, &e));
    assert_int_equal(e.code, GTR_ERR_MISMATCH);
    gtr_run_free(none);
    gtr_run_free(r);
    gtr_qrels_free(q);
}

/* A run built in memory evaluates like the same run read from text; an empty query counts. */
static void test_memory_run(void **state)
{
    (void)state;
    gtr_error e;
    gtr_qrels *q = qrels_of("q1 0 a 1\nq2 0 b 1\n");
    gtr_run *r = gtr_run_new(&e);
    TU_OK(gtr_run_add(r, "q1", 2, "x", 1, 0.25f, &e), &e);
    TU_OK(gtr_run_add(r, "q1", 2, "a", 1, 0.125f, &e), &e);
    assert_int_equal(gtr_run_add(r, "q1", 2, "a", 1, 3.0, &e), GTR_ERR_INVALID_ARG);
    assert_int_equal(gtr_run_add(r, "q1", 2, "y", 1, NAN, &e), GTR_ERR_INVALID_ARG);
    assert_true(fabs(value(q, r, "recip_rank", 0, "recip_rank") - 0.5) < 1e-12);
    TU_OK(gtr_run_add_query(r, "q2", 2, &e), &e);
    assert_true(fabs(value(q, r, "recip_rank", 0, "recip_rank") - 0.25) < 1e-12);
    assert_int_equal(gtr_run_num_queries(r), 2);
    assert_int_equal(gtr_run_num_docs(r), 2);
    /* write and re-read: the same ranking */
    char *path = tu_tmp("mem.run");
    TU_OK(gtr_run_write(r, path, NULL, &e), &e);
    gtr_run *back = gtr_run_load(path, &e);
    assert_non_null(back);
    char *t1, *t2;
    TU_OK(gtr_run_format(r, "t", &t1, NULL, &e), &e);
    TU_OK(gtr_run_format(back, "t", &t2, NULL, &e), &e);
    assert_string_equal(t1, t2);
    assert_string_equal(t1, "q1 Q0 x 1 0.25 t\nq1 Q0 a 2 0.125 t\n");
    assert_int_equal(gtr_run_format(r, "bad tag", &t2, NULL, &e), GTR_ERR_INVALID_ARG);
    TU_OK(gtr_run_add(r, "q 3", 3, "z", 1, 1.0, &e), &e);
    assert_int_equal(gtr_run_format(r, "t", &t2, NULL, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "query id 'q 3' contains whitespace"));
    gtr_free(t1);
    gtr_free(t2);
    free(path);
    gtr_run_free(back);
    gtr_run_free(r);
    gtr_qrels_free(q);
}

static void expect_error(bool qrels, const char *text, const char *needle)
{
    gtr_error e = {0};
    void *h = qrels ? (void *)gtr_qrels_parse(text, strlen(text), "in.txt", &e)
                    : (void *)gtr_run_parse(text, strlen(text), "in.txt", &e);
    if (h) fail_msg("accepted malformed input: %s", text);
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    if (!strstr(e.message, needle)) fail_msg("message '%s' lacks '%s'", e.message, needle);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error(true, "q 0 a 1\nq 0 b\n", "in.txt:2:");
    expect_error(true, "q 0 a 1\n\nq 0 b x\n", "in.txt:3: relevance 'x' is not an integer");
    expect_error(true, "q 0 a 1\nq 0 a 2\n", "in.txt:2: document 'a' judged twice for query 'q' (also line 1)");
    expect_error(true, "# only a comment\n", "no judgments");
    expect_error(true, "query-id\tcorpus-id\tscore\nq\td\tx\n", "in.txt:2:");
    expect_error(true, "q\td\t1\nq\td\n", "in.txt:2: expected 3 tab-separated fields");
    expect_error(false, "q Q0 a 1 1.0 t\nq Q0 b 2 1.0\n", "in.txt:2: expected 6 fields");
    expect_error(false, "q Q0 a 1 abc t\n", "in.txt:1: score 'abc' is not a number");
    expect_error(false, "q Q0 a 1 nan t\n", "in.txt:1:");
    expect_error(false, "q Q0 a 1 1 t\n# c\nq Q0 a 2 0.5 t\n", "in.txt:3: document 'a' listed twice for query 'q' (also line 1)");
    /* a NUL byte inside a line */
    gtr_error e;
    static const char nul[] = "q Q0 a\0 1 1 t\n";
    assert_null(gtr_run_parse(nul, sizeof nul - 1, "in.txt", &e));
    assert_string_equal(e.message, "in.txt:1: line contains a NUL byte");
    /* a file that does not exist names itself */
    assert_null(gtr_run_load("/nonexistent/run.trec", &e));
    assert_non_null(strstr(e.message, "/nonexistent/run.trec"));
}

/* What is accepted: comments, blank lines, CRLF, extra run fields, BEIR TSV duplicates
 * (the last line wins, as in BEIR's loader). */
static void test_lenient(void **state)
{
    (void)state;
    gtr_qrels *q = qrels_of("query-id\tcorpus-id\tscore\r\nq\ta\t0\r\nq\ta\t1\r\n\r\n");
    gtr_run *r = run_of("# header\n\nq Q0 a 1 1 t extra fields\r\n");
    assert_true(value(q, r, "num_rel_ret", 0, "num_rel_ret") == 1);
    gtr_run_free(r);
    gtr_qrels_free(q);
}

static void test_measure_specs(void **state)
{
    (void)state;
    gtr_error e;
    gtr_qrels *q = qrels_of("q 0 a 1\n");
    gtr_run *r = run_of("q Q0 a 1 1 t\n");
    gtr_measures *ms = gtr_measures_parse("ndcg_cut map P.10,1 P.5", &e);
    assert_non_null(ms);
    gtr_eval_result *res = gtr_run_evaluate(q, r, ms, 0, &e);
    assert_non_null(res);
    /* trec_eval's print order, bare ndcg_cut with its default cutoffs, P cutoffs merged */
    const char *want[] = {"map", "P_1", "P_5", "P_10", "ndcg_cut_5", "ndcg_cut_10", "ndcg_cut_15",
                          "ndcg_cut_20", "ndcg_cut_30", "ndcg_cut_100", "ndcg_cut_200",
                          "ndcg_cut_500", "ndcg_cut_1000"};
    assert_int_equal(gtr_eval_num_values(res), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_string_equal(gtr_eval_value_name(res, i), want[i]);
    gtr_eval_free(res);
    gtr_measures_free(ms);
    assert_null(gtr_measures_parse("ndcg_cut.10,10", &e));
    assert_non_null(strstr(e.message, "twice"));
    assert_null(gtr_measures_parse("P.0", &e));
    assert_null(gtr_measures_parse("P.5,", &e));
    assert_null(gtr_measures_parse("map.5", &e));
    assert_null(gtr_measures_parse("bpref", &e));
    assert_non_null(strstr(e.message, "unknown measure 'bpref'"));
    gtr_run_free(r);
    gtr_qrels_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_tiny),      cmocka_unit_test(test_parity_full),
        cmocka_unit_test(test_parity_partial),   cmocka_unit_test(test_beir_tsv_qrels),
        cmocka_unit_test(test_ties),             cmocka_unit_test(test_levels_and_cutoffs),
        cmocka_unit_test(test_averaging),        cmocka_unit_test(test_memory_run),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_lenient),
        cmocka_unit_test(test_measure_specs),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
