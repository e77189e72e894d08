/* test_index_model.c — the dense index with a real model: gtr-tiny over the start of SciFact.
 * The stored vectors are the model's vectors of the BEIR passages, search equals a brute-force
 * reference exactly, and a different model is refused (search and --add). */
#include "support/testutil.h"

#include "index_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_DOCS 300
#define N_QUERIES 60

typedef struct {
    gtr_model *model;
    char *corpus, *index;
} fixture;

/* the first n lines of a shared file into a temporary one */
static char *head_of(const char *shared_rel, const char *name, size_t n)
{
    char *src = tu_shared(shared_rel), *dst = tu_tmp(name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n && getline(&line, &cap, in) > 0; i++) fputs(line, out);
    free(line);
    fclose(in);
    fclose(out);
    free(src);
    return dst;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    gtr_error e;
    char *dir = tu_shared("models/gtr-tiny");
    gtr_model_options mo = gtr_model_default_options();
    mo.n_threads = 2;
    f->model = gtr_model_load(dir, &mo, &e);
    free(dir);
    if (!f->model) {
        fprintf(stderr, "gtr-tiny: %s\n", e.message);
        free(f);
        return -1;
    }
    f->corpus = head_of("beir/scifact/corpus.jsonl", "corpus.jsonl", N_DOCS);
    f->index = tu_tmp("scifact-tiny.gtri");
    gtr_index_build_options o = gtr_index_default_build_options();
    o.batch_size = 16;
    gtr_index_build_stats st;
    if (gtr_index_build(f->model, f->corpus, NULL, f->index, &o, &st, &e) || st.docs_total != N_DOCS) {
        fprintf(stderr, "build: %s\n", e.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gtr_model_free(f->model);
    free(f->corpus);
    free(f->index);
    free(f);
    return 0;
}

static void test_vectors_are_the_models(void **state)
{
    fixture *f = *state;
    gtr_error e;
    gtr_index *ix = gtr_index_open(f->index, 0, NULL, &e);
    assert_non_null(ix);
    assert_int_equal(gtr_index_count(ix), N_DOCS);
    assert_int_equal(gtr_index_dim(ix), gtr_model_dim(f->model));
    assert_true(gtr_index_fingerprint(ix) == gtr_model_fingerprint(f->model));
    TU_OK(gtr_index_check_model(ix, f->model, &e), &e);
    /* re-read the corpus and embed each passage alone */
    gtr_text_reader *r = gtr_text_reader_open(f->corpus, GTR_TEXT_JSONL, &e);
    assert_non_null(r);
    gtr_buf passage = {0};
    size_t dim = (size_t)gtr_index_dim(ix);
    float *v = malloc(dim * sizeof *v);
    for (size_t i = 0; i < N_DOCS; i++) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
        assert_false(eof);
        size_t len;
        const char *id = gtr_index_doc_id(ix, i, &len);
        assert_int_equal(len, rec.id_len);
        assert_memory_equal(id, rec.id, len);
        if (i % 10) continue; /* every tenth vector is recomputed */
        TU_OK(gtr_record_passage(&rec, &passage, &e), &e);
        const char *t = passage.data;
        TU_OK(gtr_model_encode(f->model, &t, &passage.len, 1, v, &e), &e);
        assert_memory_equal(gtr_index_vector(ix, i), v, dim * sizeof *v);
        const char *sn = gtr_index_doc_snippet(ix, i, &len);
        assert_true(len > 0 && len <= 240);
        assert_memory_equal(sn, passage.data, len);
    }
    free(v);
    gtr_buf_free(&passage);
    gtr_text_reader_close(r);
    gtr_index_free(ix);
}

static void test_queries_match_brute_force(void **state)
{
    fixture *f = *state;
    gtr_error e;
    gtr_index *ix = gtr_index_open(f->index, 0, NULL, &e);
    assert_non_null(ix);
    char *qpath = tu_shared("beir/scifact/queries.jsonl");
    gtr_text_reader *r = gtr_text_reader_open(qpath, GTR_TEXT_JSONL, &e);
    assert_non_null(r);
    size_t dim = (size_t)gtr_index_dim(ix), k = 25;
    float *Q = malloc(N_QUERIES * dim * sizeof *Q);
    for (size_t i = 0; i < N_QUERIES; i++) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
        const char *t = rec.text;
        TU_OK(gtr_model_encode(f->model, &t, &rec.text_len, 1, Q + i * dim, &e), &e);
    }
    gtr_text_reader_close(r);
    free(qpath);
    gtr_hit *hits = calloc(N_QUERIES * k, sizeof *hits);
    size_t *n = calloc(N_QUERIES, sizeof *n);
    gtr_pool *pool = gtr_pool_create(2, &e);
    gtr_search_options so = gtr_index_default_search_options();
    so.pool = pool;
    TU_OK(gtr_index_search(ix, Q, N_QUERIES, k, &so, hits, n, &e), &e);
    check_against_brute_force(ix, Q, N_QUERIES, k, hits, n);
    gtr_pool_free(pool);
    free(Q);
    free(hits);
    free(n);
    gtr_index_free(ix);
}

static void test_other_models_refused(void **state)
{
    fixture *f = *state;
    gtr_error e;
    gtr_index *ix = gtr_index_open(f->index, 0, NULL, &e);
    assert_non_null(ix);
    const char *others[] = {"models/gtr-tiny-v11", "models/gtr-tiny-f16"};
    for (int i = 0; i < 2; i++) {
        char *dir = tu_shared(others[i]);
        gtr_model *m = gtr_model_load(dir, NULL, &e);
        assert_non_null(m);
        assert_true(gtr_model_fingerprint(m) != gtr_model_fingerprint(f->model));
        assert_int_equal(gtr_index_check_model(ix, m, &e), GTR_ERR_MISMATCH);
        assert_non_null(strstr(e.message, "another model"));
        assert_non_null(strstr(e.message, "scifact-tiny.gtri"));
        /* nor can it extend the index */
        char *out = tu_tmp("extended.gtri");
        assert_int_equal(gtr_index_build(m, f->corpus, f->index, out, NULL, NULL, &e), GTR_ERR_MISMATCH);
        assert_false(gtr_file_exists(out));
        free(out);
        gtr_model_free(m);
        free(dir);
    }
    gtr_index_free(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_are_the_models),
        cmocka_unit_test(test_queries_match_brute_force),
        cmocka_unit_test(test_other_models_refused),
    };
    return cmocka_run_group_tests_name("index_model", tests, setup, teardown);
}
