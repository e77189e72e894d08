/* test_lowp.c — accuracy of the low-precision paths against float32, on the reference models:
 *  - every model directory of ../shared/models: the bf16 embedding of every reference text has
 *    cosine >= 0.999 with the float32 reference (embeddings.npy), int8 >= 0.99;
 *  - retrieval on BEIR SciFact with gtr-small: the top 10 of each test query by bf16 vectors
 *    shares >= 95% of its documents with the top 10 by float32 vectors on average, int8 >= 90%.
 *    To stay fast the corpus is a subset: every document judged for the test queries (283
 *    documents) plus the first other documents of corpus.jsonl up to 1,000, and passages are
 *    cut at 256 tokens (SciFact abstracts average ~300); under the sanitizers, where the
 *    GEMMs run ~50x slower: the first 30 test queries, 100 documents, 64 tokens;
 *  - at every precision, vectors are bit-identical whatever the batch, order and threads. */
#include "support/testutil.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static gtr_model *load(const char *rel_dir, gtr_compute_dtype dt, int max_len)
{
    char *p = tu_shared(rel_dir);
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = 2;
    o.dtype = dt;
    o.max_len = max_len;
    gtr_error e;
    gtr_model *m = gtr_model_load(p, &o, &e);
    if (!m) fail_msg("load %s: %s", p, e.message);
    free(p);
    return m;
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* ---- reference texts ---------------------------------------------------------------- */

static void reference_cosines(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference/tokens.jsonl", name);
    char *p = tu_shared(rel);
    json_t **v;
    size_t n = tu_json_lines(p, &v), k = 0;
    free(p);
    int32_t **ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens), *which = calloc(n, sizeof *which);
    assert_non_null(ids);
    assert_non_null(lens);
    assert_non_null(which);
    for (size_t i = 0; i < n; i++) {
        size_t L = json_array_size(v[i]);
        if (TU_SANITIZED && L > 300) continue; /* the GEMMs are ~50x slower under ASan */
        ids[k] = calloc(L, sizeof(int32_t));
        assert_non_null(ids[k]);
        for (size_t t = 0; t < L; t++) ids[k][t] = (int32_t)json_integer_value(json_array_get(v[i], t));
        lens[k] = L;
        which[k++] = i;
    }
    tu_json_lines_free(v, n);
    snprintf(rel, sizeof rel, "models/%s/reference/embeddings.npy", name);
    p = tu_shared(rel);
    gtr_array a;
    gtr_error e;
    TU_OK(gtr_npy_load(p, &a, &e), &e);
    float *want = gtr_array_to_f32(&a, &e);
    assert_non_null(want);
    size_t dim = a.shape[1];
    gtr_array_free(&a);
    free(p);

    snprintf(rel, sizeof rel, "models/%s", name);
    double t0 = gtr_now_seconds();
    static const gtr_compute_dtype dts[2] = {GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    static const double bound[2] = {0.999, 0.99};
    for (int d = 0; d < 2; d++) {
        gtr_model *m = load(rel, dts[d], 0);
        assert_int_equal((size_t)gtr_model_dim(m), dim);
        float *got = calloc(k * dim, sizeof *got);
        assert_non_null(got);
        TU_OK(gtr_model_encode_ids(m, (const int32_t *const *)ids, lens, k, got, &e), &e);
        double lo = 1, sum = 0;
        size_t worst = 0;
        for (size_t j = 0; j < k; j++) {
            double c = cosine(got + j * dim, want + which[j] * dim, dim);
            sum += c;
            if (c < lo) lo = c, worst = which[j];
        }
        print_message("# %s %s: cosine to float32 min %.6f (text %zu) mean %.6f over %zu texts (%.1f s)\n",
                      name, d ? "int8" : "bf16", lo, worst, sum / (double)k, k, gtr_now_seconds() - t0);
        assert_true(lo >= bound[d]);
        free(got);
        gtr_model_free(m);
    }
    for (size_t j = 0; j < k; j++) free(ids[j]);
    free(ids);
    free(lens);
    free(which);
    free(want);
}

static void test_cos_gtr_tiny(void **state) { (void)state; reference_cosines("gtr-tiny"); }
static void test_cos_gtr_tiny_f16(void **state) { (void)state; reference_cosines("gtr-tiny-f16"); }
static void test_cos_gtr_tiny_v11(void **state) { (void)state; reference_cosines("gtr-tiny-v11"); }
static void test_cos_gtr_tiny_wide(void **state) { (void)state; reference_cosines("gtr-tiny-wide"); }
static void test_cos_gtr_small(void **state) { (void)state; reference_cosines("gtr-small"); }

/* ---- SciFact retrieval ---------------------------------------------------------------- */

typedef struct {
    char **s;
    size_t n, cap;
} strs;

static void strs_add(strs *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->s = realloc(a->s, a->cap * sizeof *a->s);
        assert_non_null(a->s);
    }
    a->s[a->n] = strndup(s, len);
    assert_non_null(a->s[a->n]);
    a->n++;
}

static bool strs_has(const strs *a, const char *s, size_t len)
{
    for (size_t i = 0; i < a->n; i++)
        if (strlen(a->s[i]) == len && !memcmp(a->s[i], s, len)) return true;
    return false;
}

static void strs_free(strs *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->s[i]);
    free(a->s);
}

/* qrels/test.tsv: the test queries (first max_q in file order) and their judged documents. */
static void read_qrels(strs *qids, strs *docs, size_t max_q)
{
    char *p = tu_shared("beir/scifact/qrels/test.tsv");
    char *data;
    size_t len;
    gtr_error e;
    TU_OK(gtr_read_file(p, 0, &data, &len, &e), &e);
    free(p);
    char *save = NULL;
    bool header = true;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (header) { /* query-id corpus-id score */
            header = false;
            continue;
        }
        char *tab = strchr(line, '\t'), *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
        assert_non_null(tab2);
        size_t ql = (size_t)(tab - line), dl = (size_t)(tab2 - tab - 1);
        if (!strs_has(qids, line, ql)) {
            if (qids->n == max_q) continue;
            strs_add(qids, line, ql);
        }
        if (!strs_has(docs, tab + 1, dl)) strs_add(docs, tab + 1, dl);
    }
    free(data);
}

/* Passages of the judged documents plus the first others, up to max_docs. */
static void read_corpus(const strs *judged, size_t max_docs, strs *texts)
{
    char *p = tu_shared("beir/scifact/corpus.jsonl");
    gtr_error e;
    gtr_text_reader *r = gtr_text_reader_open(p, GTR_TEXT_JSONL, &e);
    if (!r) fail_msg("%s", e.message);
    free(p);
    size_t others = max_docs > judged->n ? max_docs - judged->n : 0;
    gtr_buf b = {0};
    for (;;) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
        if (eof) break;
        bool is_judged = strs_has(judged, rec.id, rec.id_len);
        if (!is_judged && others == 0) continue;
        if (!is_judged) others--;
        TU_OK(gtr_record_passage(&rec, &b, &e), &e);
        strs_add(texts, b.data ? b.data : "", b.len);
    }
    gtr_buf_free(&b);
    gtr_text_reader_close(r);
}

static void read_queries(const strs *qids, strs *texts)
{
    char *p = tu_shared("beir/scifact/queries.jsonl");
    gtr_error e;
    gtr_text_reader *r = gtr_text_reader_open(p, GTR_TEXT_JSONL, &e);
    if (!r) fail_msg("%s", e.message);
    free(p);
    /* in the order of qids */
    char **by = calloc(qids->n, sizeof *by);
    assert_non_null(by);
    for (;;) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
        if (eof) break;
        for (size_t i = 0; i < qids->n; i++)
            if (strlen(qids->s[i]) == rec.id_len && !memcmp(qids->s[i], rec.id, rec.id_len))
                by[i] = strndup(rec.text, rec.text_len);
    }
    gtr_text_reader_close(r);
    for (size_t i = 0; i < qids->n; i++) {
        assert_non_null(by[i]);
        strs_add(texts, by[i], strlen(by[i]));
        free(by[i]);
    }
    free(by);
}

/* Indices of the 10 best documents for query q (ties to the lower index). */
static void top10(const float *q, const float *docs, size_t n, size_t dim, size_t out[10])
{
    float best[10];
    size_t k = 0;
    for (size_t d = 0; d < n; d++) {
        float s = 0;
        for (size_t j = 0; j < dim; j++) s += q[j] * docs[d * dim + j];
        if (k == 10 && !(s > best[9])) continue;
        size_t pos = k < 10 ? k++ : 9;
        while (pos > 0 && s > best[pos - 1]) {
            best[pos] = best[pos - 1];
            out[pos] = out[pos - 1];
            pos--;
        }
        best[pos] = s;
        out[pos] = d;
    }
}

static float *encode_all(gtr_model *m, const strs *t)
{
    size_t dim = (size_t)gtr_model_dim(m);
    float *v = malloc(t->n * dim * sizeof *v);
    assert_non_null(v);
    gtr_error e;
    TU_OK(gtr_model_encode(m, (const char *const *)t->s, NULL, t->n, v, &e), &e);
    return v;
}

static void test_scifact_overlap(void **state)
{
    (void)state;
    size_t max_q = TU_SANITIZED ? 30 : SIZE_MAX, max_docs = TU_SANITIZED ? 100 : 1000;
    int max_len = TU_SANITIZED ? 64 : 256;
    strs qids = {0}, judged = {0}, docs = {0}, queries = {0};
    read_qrels(&qids, &judged, max_q);
    read_corpus(&judged, max_docs, &docs);
    read_queries(&qids, &queries);
    assert_true(docs.n >= judged.n);
    float *dv[3], *qv[3];
    static const gtr_compute_dtype dts[3] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    size_t dim = 0;
    for (int d = 0; d < 3; d++) {
        gtr_model *m = load("models/gtr-small", dts[d], max_len);
        dim = (size_t)gtr_model_dim(m);
        dv[d] = encode_all(m, &docs);
        qv[d] = encode_all(m, &queries);
        gtr_model_free(m);
    }
    double overlap[3] = {0, 0, 0};
    for (size_t q = 0; q < queries.n; q++) {
        size_t t[3][10];
        for (int d = 0; d < 3; d++) top10(qv[d] + q * dim, dv[d], docs.n, dim, t[d]);
        for (int d = 1; d < 3; d++) {
            size_t same = 0;
            for (int i = 0; i < 10; i++)
                for (int j = 0; j < 10; j++) same += t[0][i] == t[d][j];
            overlap[d] += (double)same / 10.0;
        }
    }
    for (int d = 1; d < 3; d++) overlap[d] /= (double)queries.n;
    print_message("# SciFact, gtr-small, %zu test queries x %zu documents (%zu judged), passages cut "
                  "at %d tokens: top-10 overlap with float32: bf16 %.4f, int8 %.4f\n",
                  queries.n, docs.n, judged.n, max_len, overlap[1], overlap[2]);
    assert_true(overlap[1] >= 0.95);
    assert_true(overlap[2] >= 0.90);
    for (int d = 0; d < 3; d++) {
        free(dv[d]);
        free(qv[d]);
    }
    strs_free(&qids);
    strs_free(&judged);
    strs_free(&docs);
    strs_free(&queries);
}

/* ---- invariance ---------------------------------------------------------------------- */

/* At every precision a text's vector is bit for bit the same alone, in a batch (several
 * chunks, texts reordered by length inside), in the reversed batch, with 1 or 3 threads. */
static void test_invariance(void **state)
{
    (void)state;
    char *p = tu_shared("models/gtr-small/reference/tokens.jsonl");
    json_t **v;
    size_t nl = tu_json_lines(p, &v), n = 0;
    free(p);
    /* texts 20-43: short ones and 512-token ones (several chunks) */
    int32_t *ids[24];
    size_t lens[24];
    for (size_t i = 20; i < nl && n < 24; i++) {
        size_t L = json_array_size(v[i]);
        if (TU_SANITIZED && (L > 200 || n >= 12)) continue;
        ids[n] = calloc(L, sizeof(int32_t));
        assert_non_null(ids[n]);
        for (size_t t = 0; t < L; t++) ids[n][t] = (int32_t)json_integer_value(json_array_get(v[i], t));
        lens[n++] = L;
    }
    tu_json_lines_free(v, nl);
    static const gtr_compute_dtype dts[3] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    for (int d = 0; d < 3; d++) {
        char *dir = tu_shared("models/gtr-small");
        gtr_model_options o = gtr_model_default_options();
        o.dtype = dts[d];
        o.n_threads = 1;
        gtr_error e;
        gtr_model *m1 = gtr_model_load(dir, &o, &e);
        o.n_threads = 3;
        gtr_model *m3 = gtr_model_load(dir, &o, &e);
        free(dir);
        assert_non_null(m1);
        assert_non_null(m3);
        size_t dim = (size_t)gtr_model_dim(m1), bytes = n * dim * sizeof(float);
        float *batch = malloc(bytes), *alone = malloc(bytes), *rev = malloc(bytes);
        assert_non_null(batch);
        assert_non_null(alone);
        assert_non_null(rev);
        TU_OK(gtr_model_encode_ids(m3, (const int32_t *const *)ids, lens, n, batch, &e), &e);
        for (size_t i = 0; i < n; i++) {
            const int32_t *one = ids[i];
            TU_OK(gtr_model_encode_ids(m1, &one, &lens[i], 1, alone + i * dim, &e), &e);
        }
        const int32_t *rids[24];
        size_t rlens[24];
        for (size_t i = 0; i < n; i++) {
            rids[i] = ids[n - 1 - i];
            rlens[i] = lens[n - 1 - i];
        }
        TU_OK(gtr_model_encode_ids(m1, rids, rlens, n, rev, &e), &e);
        size_t same_rev = 0;
        for (size_t i = 0; i < n; i++) same_rev += !memcmp(rev + (n - 1 - i) * dim, alone + i * dim, dim * sizeof(float));
        print_message("# %s, %zu texts: batch (3 threads) %s alone (1 thread); reversed batch: %zu of %zu identical\n",
                      d == 0 ? "f32" : d == 1 ? "bf16" : "int8", n,
                      memcmp(batch, alone, bytes) ? "DIFFERS from" : "bit-identical to", same_rev, n);
        assert_memory_equal(batch, alone, bytes);
        assert_int_equal(same_rev, n);
        free(batch);
        free(alone);
        free(rev);
        gtr_model_free(m1);
        gtr_model_free(m3);
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cos_gtr_tiny),
        cmocka_unit_test(test_cos_gtr_tiny_f16),
        cmocka_unit_test(test_cos_gtr_tiny_v11),
        cmocka_unit_test(test_cos_gtr_tiny_wide),
        cmocka_unit_test(test_cos_gtr_small),
        cmocka_unit_test(test_invariance),
        cmocka_unit_test(test_scifact_overlap),
    };
    return cmocka_run_group_tests_name("lowp", tests, NULL, NULL);
}
