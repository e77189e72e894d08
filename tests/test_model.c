/* test_model.c — the model against the reference outputs in ../shared/models/<name>/reference:
 * final embeddings (transformers + sentence-transformers, float32) within 1e-5 for every model
 * directory (F32/F16 safetensors, pytorch_model.bin, gated-gelu, heads·d_kv != d_model, tied
 * embedding under either name), per-layer states of single texts within 1e-5 relative, the
 * position buckets exactly, the text path (tokenizer + model), batch/thread invariance and the
 * fingerprint. */
#include "support/testutil.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Under AddressSanitizer the GEMM kernels run ~50x slower: there the parity tests skip the
 * texts longer than 300 tokens (all code paths still run: several query blocks, chunks, both
 * FF kinds); the release build checks every text. */
static bool keep_text(size_t n_tokens) { return !TU_SANITIZED || n_tokens <= 300; }

/* ---- reference data ------------------------------------------------------- */

typedef struct {
    size_t n;
    int32_t **ids;
    size_t *lens;
} tokens;

static tokens load_tokens(const char *model)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference/tokens.jsonl", model);
    char *p = tu_shared(rel);
    json_t **v;
    tokens t;
    t.n = tu_json_lines(p, &v);
    t.ids = calloc(t.n, sizeof *t.ids);
    t.lens = calloc(t.n, sizeof *t.lens);
    assert_non_null(t.ids);
    assert_non_null(t.lens);
    for (size_t i = 0; i < t.n; i++) {
        assert_true(json_is_array(v[i]));
        t.lens[i] = json_array_size(v[i]);
        t.ids[i] = calloc(t.lens[i] + 1, sizeof(int32_t));
        assert_non_null(t.ids[i]);
        for (size_t k = 0; k < t.lens[i]; k++)
            t.ids[i][k] = (int32_t)json_integer_value(json_array_get(v[i], k));
    }
    tu_json_lines_free(v, t.n);
    free(p);
    return t;
}

static void free_tokens(tokens *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->ids[i]);
    free(t->ids);
    free(t->lens);
}

static float *load_expected(const char *model, size_t *rows, size_t *cols)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference/embeddings.npy", model);
    char *p = tu_shared(rel);
    gtr_array a;
    gtr_error e;
    TU_OK(gtr_npy_load(p, &a, &e), &e);
    assert_int_equal(a.ndim, 2);
    *rows = a.shape[0];
    *cols = a.shape[1];
    float *f = gtr_array_to_f32(&a, &e);
    assert_non_null(f);
    gtr_array_free(&a);
    free(p);
    return f;
}

static gtr_model *load_model_dir(const char *dir, int threads)
{
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = threads;
    gtr_error e;
    gtr_model *m = gtr_model_load(dir, &o, &e);
    if (!m) fail_msg("load %s: %s", dir, e.message);
    return m;
}

static gtr_model *load_model(const char *name, int threads)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    char *p = tu_shared(rel);
    gtr_model *m = load_model_dir(p, threads);
    free(p);
    return m;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Encode the reference token ids with m and compare with embeddings.npy of ref. */
static void check_embeddings(gtr_model *m, const char *ref, const char *label)
{
    tokens t = load_tokens(ref);
    size_t rows, cols;
    float *want = load_expected(ref, &rows, &cols);
    assert_int_equal(rows, t.n);
    assert_int_equal(cols, (size_t)gtr_model_dim(m));
    /* the texts to check, packed */
    const int32_t **ids = calloc(t.n, sizeof *ids);
    size_t *lens = calloc(t.n, sizeof *lens), *which = calloc(t.n, sizeof *which), k = 0;
    for (size_t i = 0; i < t.n; i++)
        if (keep_text(t.lens[i])) {
            ids[k] = t.ids[i];
            lens[k] = t.lens[i];
            which[k++] = i;
        }
    float *got = calloc(k * cols, sizeof *got);
    assert_non_null(got);
    gtr_error e;
    TU_OK(gtr_model_encode_ids(m, ids, lens, k, got, &e), &e);
    double d = 0;
    for (size_t j = 0; j < k; j++) {
        double dj = max_abs_diff(got + j * cols, want + which[j] * cols, cols);
        if (dj > d) d = dj;
    }
    print_message("# %s: max |embedding - reference| = %.3g over %zu texts\n", label, d, k);
    assert_true(d <= 1e-5);
    free(got);
    free(want);
    free(ids);
    free(lens);
    free(which);
    free_tokens(&t);
}

static void embed_model(const char *name)
{
    gtr_model *m = load_model(name, 2);
    check_embeddings(m, name, name);
    gtr_model_free(m);
}

static void test_embed_gtr_tiny(void **state) { (void)state; embed_model("gtr-tiny"); }
static void test_embed_gtr_tiny_f16(void **state) { (void)state; embed_model("gtr-tiny-f16"); }
static void test_embed_gtr_tiny_v11(void **state) { (void)state; embed_model("gtr-tiny-v11"); }
static void test_embed_gtr_tiny_wide(void **state) { (void)state; embed_model("gtr-tiny-wide"); }

/* gtr-tiny holds both model.safetensors and pytorch_model.bin (also in 2_Dense): a directory
 * of links without the safetensors files makes the loader read the .bin files. */
static char *tiny_bin_dir(void)
{
    char *src = tu_shared("models/gtr-tiny");
    char *dir = tu_tmp("gtr-tiny-bin");
    if (!gtr_dir_exists(dir)) {
        char *abs = realpath(src, NULL);
        assert_non_null(abs);
        assert_int_equal(tu_system("mkdir -p '%s/2_Dense' && cd '%s' && "
                                   "for f in config.json modules.json sentence_bert_config.json "
                                   "spiece.model pytorch_model.bin 1_Pooling; do ln -s '%s'/$f $f; done && "
                                   "ln -s '%s/2_Dense/config.json' 2_Dense/config.json && "
                                   "ln -s '%s/2_Dense/pytorch_model.bin' 2_Dense/pytorch_model.bin",
                                   dir, dir, abs, abs, abs),
                         0);
        free(abs);
    }
    free(src);
    return dir;
}

static void test_embed_gtr_tiny_bin(void **state)
{
    (void)state;
    char *dir = tiny_bin_dir();
    gtr_model *m = load_model_dir(dir, 2);
    assert_non_null(strstr(gtr_model_describe(m), "pytorch_model.bin"));
    assert_null(strstr(gtr_model_describe(m), "model.safetensors"));
    check_embeddings(m, "gtr-tiny", "gtr-tiny (pytorch_model.bin)");
    gtr_model_free(m);
    free(dir);
}

/* ---- the text path ----------------------------------------------------------- */

/* gtr-small (the largest reference model) goes through the text path: the tokenizer must give
 * exactly the ids of tokens.jsonl, and the vectors must match embeddings.npy. */
static void test_embed_gtr_small_texts(void **state)
{
    (void)state;
    const char *name = "gtr-small";
    gtr_model *m = load_model(name, 2);
    char *p = tu_shared("models/gtr-small/reference/texts.jsonl");
    json_t **v;
    size_t n = tu_json_lines(p, &v);
    tokens t = load_tokens(name);
    assert_int_equal(n, t.n);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    assert_non_null(texts);
    assert_non_null(lens);
    gtr_ids ids = {0};
    gtr_error e;
    size_t tok_mismatch = 0;
    for (size_t i = 0; i < n; i++) {
        texts[i] = json_string_value(v[i]);
        assert_non_null(texts[i]);
        lens[i] = json_string_length(v[i]);
        TU_OK(gtr_tokenizer_encode(gtr_model_tokenizer(m), texts[i], lens[i], gtr_model_max_len(m), 1, &ids, &e), &e);
        if (ids.n != t.lens[i] || memcmp(ids.ids, t.ids[i], ids.n * sizeof(int32_t))) {
            print_message("# text %zu: tokenizer ids differ from tokens.jsonl\n", i);
            tok_mismatch++;
        }
    }
    assert_int_equal(tok_mismatch, 0);
    size_t rows, cols;
    float *want = load_expected(name, &rows, &cols);
    float *got = calloc(rows * cols, sizeof *got);
    assert_non_null(got);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (keep_text(t.lens[i])) {
            texts[k] = texts[i];
            lens[k] = lens[i];
            memmove(want + k * cols, want + i * cols, cols * sizeof *want);
            k++;
        }
    TU_OK(gtr_model_encode(m, texts, lens, k, got, &e), &e);
    double d = max_abs_diff(got, want, k * cols);
    print_message("# %s via texts: max |embedding - reference| = %.3g over %zu texts\n", name, d, k);
    assert_true(d <= 1e-5);
    /* lens NULL: NUL-terminated texts (the reference texts hold no NUL bytes) */
    float *got2 = calloc(3 * cols, sizeof *got2);
    assert_non_null(got2);
    TU_OK(gtr_model_encode(m, texts, NULL, 3, got2, &e), &e);
    assert_memory_equal(got2, got, 3 * cols * sizeof(float));
    free(got2);
    gtr_ids_free(&ids);
    free(got);
    free(want);
    free(texts);
    free(lens);
    free_tokens(&t);
    tu_json_lines_free(v, n);
    free(p);
    gtr_model_free(m);
}

/* ---- per-layer states ---------------------------------------------------------- */

#define MAX_STATES 64
typedef struct {
    size_t want_text;
    size_t n;
    char *name[MAX_STATES];
    float *data[MAX_STATES];
    size_t count[MAX_STATES];
} capture;

static void capture_probe(void *user, size_t text, const char *name, const float *x, size_t rows,
                          size_t cols)
{
    capture *c = user;
    if (text != c->want_text || c->n == MAX_STATES) return;
    c->name[c->n] = strdup(name);
    c->count[c->n] = rows * cols;
    c->data[c->n] = malloc(rows * cols * sizeof(float));
    memcpy(c->data[c->n], x, rows * cols * sizeof(float));
    c->n++;
}

static void capture_free(capture *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->name[i]);
        free(c->data[i]);
    }
    c->n = 0;
}

static const float *captured(const capture *c, const char *name, size_t *count)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name)) {
            *count = c->count[i];
            return c->data[i];
        }
    return NULL;
}

/* max|got - want| / max|want| over one array of the npz */
static double rel_diff(const float *got, size_t n, gtr_array *want)
{
    double *w = gtr_array_to_f64(want, NULL);
    assert_non_null(w);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - w[i]);
        if (!(d <= num)) num = d;
        if (fabs(w[i]) > den) den = fabs(w[i]);
    }
    free(w);
    return den > 0 ? num / den : num;
}

static void check_hidden(const char *name, int text)
{
    gtr_model *m = load_model(name, 2);
    const gtr_t5_config *cfg = NULL;
    (void)cfg;
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/reference/hidden_%d.npz", name, text);
    char *p = tu_shared(rel);
    gtr_error e;
    gtr_npz *z = gtr_npz_open(p, &e);
    if (!z) fail_msg("%s", e.message);
    gtr_array ids;
    TU_OK(gtr_npz_get(z, "input_ids", &ids, &e), &e);
    size_t L = ids.count;
    int32_t *ids32 = calloc(L, sizeof *ids32);
    assert_non_null(ids32);
    double *idd = gtr_array_to_f64(&ids, &e);
    for (size_t i = 0; i < L; i++) ids32[i] = (int32_t)idd[i];
    free(idd);
    gtr_array_free(&ids);

    /* the ids are those of tokens.jsonl line `text` */
    tokens t = load_tokens(name);
    assert_int_equal(t.lens[text], L);
    assert_memory_equal(t.ids[text], ids32, L * sizeof(int32_t));
    free_tokens(&t);

    capture c = {.want_text = 0};
    gtr_model_set_probe(m, capture_probe, &c);
    float *out = calloc((size_t)gtr_model_dim(m), sizeof *out);
    const int32_t *idp = ids32;
    TU_OK(gtr_model_encode_ids(m, &idp, &L, 1, out, &e), &e);

    /* buckets exactly, as transformers computes them in float32 */
    gtr_array b;
    TU_OK(gtr_npz_get(z, "buckets", &b, &e), &e);
    assert_int_equal(b.ndim, 2);
    assert_int_equal(b.shape[0], L);
    double *bd = gtr_array_to_f64(&b, &e);
    size_t bad = 0;
    for (size_t q = 0; q < L; q++)
        for (size_t k = 0; k < L; k++)
            if (gtr_t5_bucket((long)k - (long)q, 32, 128) != (int)bd[q * L + k]) bad++;
    free(bd);
    gtr_array_free(&b);
    assert_int_equal(bad, 0);

    /* every state the reference dumped (all but input_ids and buckets) */
    static const char *fixed[] = {"embeddings", "position_bias", "final_norm", "pooled", "dense",
                                  "embedding"};
    char names[64][32];
    size_t nn = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) snprintf(names[nn++], 32, "%s", fixed[i]);
    for (int l = 0; l < 64 && gtr_npz_has(z, (snprintf(names[nn], 32, "layer%02d.out", l), names[nn])); l++) {
        nn++;
        snprintf(names[nn++], 32, "layer%02d.attn_out", l);
    }
    assert_true(nn > sizeof fixed / sizeof fixed[0]);
    double worst = 0;
    for (size_t i = 0; i < nn; i++) {
        gtr_array a;
        TU_OK(gtr_npz_get(z, names[i], &a, &e), &e);
        size_t cnt = 0;
        const float *got = captured(&c, names[i], &cnt);
        if (!got) fail_msg("%s: no state '%s' captured", name, names[i]);
        assert_int_equal(cnt, a.count);
        double d = rel_diff(got, cnt, &a);
        if (d > 1e-5) print_message("# %s text %d %s: relative diff %.3g\n", name, text, names[i], d);
        if (d > worst) worst = d;
        gtr_array_free(&a);
    }
    print_message("# %s text %d (%zu tokens): %zu states, worst relative diff %.3g\n", name, text, L,
                  nn, worst);
    assert_true(worst <= 1e-5);
    capture_free(&c);
    free(out);
    free(ids32);
    gtr_npz_close(z);
    free(p);
    gtr_model_free(m);
}

static void hidden_all(const char *name)
{
    check_hidden(name, 0);
    check_hidden(name, 7);
    check_hidden(name, 30);
}

static void test_hidden_gtr_tiny(void **state) { (void)state; hidden_all("gtr-tiny"); }
static void test_hidden_gtr_tiny_f16(void **state) { (void)state; hidden_all("gtr-tiny-f16"); }
static void test_hidden_gtr_tiny_v11(void **state) { (void)state; hidden_all("gtr-tiny-v11"); }
static void test_hidden_gtr_tiny_wide(void **state) { (void)state; hidden_all("gtr-tiny-wide"); }
static void test_hidden_gtr_small(void **state) { (void)state; hidden_all("gtr-small"); }

/* The bucket boundaries where a careless float computation goes wrong. */
static void test_buckets(void **state)
{
    (void)state;
    static const struct {
        long rel;
        int b;
    } cases[] = {{0, 0},    {1, 17},   {-1, 1},   {7, 23},   {8, 24},   {-8, 8},   {15, 25},
                 {16, 26},  {-16, 10}, {31, 27},  {32, 28},  {-32, 12}, {63, 29},  {64, 30},
                 {-64, 14}, {-63, 13}, {127, 31}, {128, 31}, {-128, 15}, {100000, 31},
                 {-100000, 15}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(gtr_t5_bucket(cases[i].rel, 32, 128), cases[i].b);
}

/* ---- invariance ------------------------------------------------------------------ */

/* A text's vector is the same alone, in any batch, in any order, with any thread count. */
static void test_batch_invariance(void **state)
{
    (void)state;
    const char *name = "gtr-tiny-wide";
    tokens t = load_tokens(name);
    size_t n = TU_SANITIZED ? 8 : 24, dim;
    gtr_model *m1 = load_model(name, 1), *m3 = load_model(name, 3);
    dim = (size_t)gtr_model_dim(m1);
    float *batch = calloc(n * dim, sizeof *batch), *alone = calloc(n * dim, sizeof *alone),
          *rev = calloc(n * dim, sizeof *rev);
    assert_non_null(batch);
    assert_non_null(alone);
    assert_non_null(rev);
    gtr_error e;
    /* texts 20..43 include long (512-token) and short ones */
    TU_OK(gtr_model_encode_ids(m3, (const int32_t *const *)t.ids + 20, t.lens + 20, n, batch, &e), &e);
    for (size_t i = 0; i < n; i++) {
        const int32_t *ids = t.ids[20 + i];
        TU_OK(gtr_model_encode_ids(m1, &ids, &t.lens[20 + i], 1, alone + i * dim, &e), &e);
    }
    const int32_t *rids[24];
    size_t rlens[24];
    for (size_t i = 0; i < n; i++) {
        rids[i] = t.ids[20 + n - 1 - i];
        rlens[i] = t.lens[20 + n - 1 - i];
    }
    TU_OK(gtr_model_encode_ids(m1, rids, rlens, n, rev, &e), &e);
    double d1 = max_abs_diff(batch, alone, n * dim), d2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = max_abs_diff(rev + (n - 1 - i) * dim, alone + i * dim, dim);
        if (d > d2) d2 = d;
    }
    bool bitwise = !memcmp(batch, alone, n * dim * sizeof(float));
    print_message("# batch vs alone: %.3g, reversed batch vs alone: %.3g, bit-identical: %s\n", d1,
                  d2, bitwise ? "yes" : "no");
    assert_true(d1 <= 1e-6);
    assert_true(d2 <= 1e-6);
    free(batch);
    free(alone);
    free(rev);
    free_tokens(&t);
    gtr_model_free(m1);
    gtr_model_free(m3);
}

/* ---- fingerprint and description ----------------------------------------------- */

/* no_fingerprint (gtr embed, gtr serve without an index): an F16 checkpoint's Linears packed
 * without the hash give bit for bit the vectors of a normal load at every precision; the model
 * then has no fingerprint (0, "none" in its description), and an index refuses it, to build
 * or to search, with an error that names the option. */
static void test_no_fingerprint(void **state)
{
    (void)state;
    static const gtr_compute_dtype dts[3] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    const char *texts[3] = {"hello world", "the quick brown fox jumps over the lazy dog, twice over", "GTR"};
    char *p = tu_shared("models/gtr-tiny-f16");
    for (int d = 0; d < 3; d++) {
        gtr_model_options o = gtr_model_default_options();
        o.n_threads = 2;
        o.dtype = dts[d];
        gtr_error e;
        gtr_model *a = gtr_model_load(p, &o, &e);
        if (!a) fail_msg("%s", e.message);
        o.no_fingerprint = 1;
        gtr_model *b = gtr_model_load(p, &o, &e);
        if (!b) fail_msg("%s", e.message);
        assert_true(gtr_model_has_fingerprint(a));
        assert_true(gtr_model_fingerprint(a) != 0);
        assert_false(gtr_model_has_fingerprint(b));
        assert_true(gtr_model_fingerprint(b) == 0);
        assert_non_null(strstr(gtr_model_describe(b), "fingerprint: none (loaded with no_fingerprint)"));
        size_t dim = (size_t)gtr_model_dim(a);
        float *va = malloc(3 * dim * sizeof *va), *vb = malloc(3 * dim * sizeof *vb);
        assert_true(va && vb);
        TU_OK(gtr_model_encode(a, texts, NULL, 3, va, &e), &e);
        TU_OK(gtr_model_encode(b, texts, NULL, 3, vb, &e), &e);
        assert_memory_equal(va, vb, 3 * dim * sizeof *va);
        /* an index made with a's fingerprint: a passes, b is refused */
        const char *ids[3] = {"d1", "d2", "d3"};
        size_t id_lens[3] = {2, 2, 2};
        gtr_index *ix = gtr_index_wrap(va, 3, (int)dim, ids, id_lens, gtr_model_fingerprint(a), &e);
        if (!ix) fail_msg("%s", e.message);
        TU_OK(gtr_index_check_model(ix, a, &e), &e);
        assert_int_equal(gtr_index_check_model(ix, b, &e), GTR_ERR_INVALID_ARG);
        assert_non_null(strstr(e.message, "no_fingerprint"));
        gtr_index_free(ix);
        char *out = tu_tmp("nofp.gtri");
        assert_int_equal(gtr_index_build(b, "no-such-corpus.jsonl", NULL, out, NULL, NULL, &e), GTR_ERR_INVALID_ARG);
        assert_non_null(strstr(e.message, "no_fingerprint"));
        assert_int_not_equal(access(out, F_OK), 0); /* nothing written */
        free(out);
        free(va);
        free(vb);
        gtr_model_free(a);
        gtr_model_free(b);
    }
    free(p);
}

static void test_fingerprint(void **state)
{
    (void)state;
    gtr_model *a = load_model("gtr-tiny", 1), *b = load_model("gtr-tiny", 3),
              *f16 = load_model("gtr-tiny-f16", 2);
    char *dir = tiny_bin_dir();
    gtr_model *bin = load_model_dir(dir, 2);
    /* stable across loads and thread counts, and the same weights in .bin give the same */
    assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(b));
    assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(bin));
    assert_true(gtr_model_fingerprint(a) != gtr_model_fingerprint(f16));
    assert_true(gtr_model_fingerprint(a) != 0);
    /* max_len is a load option, not part of the model */
    gtr_model_options o = gtr_model_default_options();
    o.max_len = 128;
    gtr_error e;
    char *p = tu_shared("models/gtr-tiny");
    gtr_model *c = gtr_model_load(p, &o, &e);
    assert_non_null(c);
    assert_int_equal(gtr_model_max_len(c), 128);
    assert_int_equal(gtr_model_max_len(a), 512);
    assert_true(gtr_model_fingerprint(a) == gtr_model_fingerprint(c));
    gtr_model_free(c);
    free(p);

    const char *d = gtr_model_describe(f16);
    print_message("# %s\n", d);
    assert_non_null(strstr(d, "F16"));
    assert_non_null(strstr(d, "relu"));
    assert_int_equal(gtr_model_dim(f16), 64);
    /* gtr-tiny: 32128x64 embedding + 2 layers x (4 x 64x64 + 2 x 64x128 + 2 x 64) + rel 32x4
     * + final 64 + Dense 64x64 */
    size_t want = 32128 * 64 + 2 * (4 * 64 * 64 + 2 * 64 * 128 + 2 * 64) + 32 * 4 + 64 + 64 * 64;
    assert_int_equal(gtr_model_n_params(a), want);
    assert_int_equal(gtr_model_weight_bytes(a), want * sizeof(float));
    gtr_model_free(a);
    gtr_model_free(b);
    gtr_model_free(f16);
    gtr_model_free(bin);
    free(dir);

    gtr_model *v11 = load_model("gtr-tiny-v11", 1);
    assert_non_null(strstr(gtr_model_describe(v11), "gated-gelu"));
    assert_int_equal(gtr_model_dim(v11), 48);
    gtr_model_free(v11);
}

/* max_len truncates the text path; encode_ids refuses longer inputs. */
static void test_max_len(void **state)
{
    (void)state;
    gtr_model_options o = gtr_model_default_options();
    o.max_len = 8;
    o.n_threads = 1;
    gtr_error e;
    char *p = tu_shared("models/gtr-tiny");
    gtr_model *m = gtr_model_load(p, &o, &e);
    assert_non_null(m);
    const char *text = "one two three four five six seven eight nine ten eleven twelve";
    float v[64], w[64];
    TU_OK(gtr_model_encode(m, &text, NULL, 1, v, &e), &e);
    gtr_ids ids = {0};
    TU_OK(gtr_tokenizer_encode(gtr_model_tokenizer(m), text, strlen(text), 8, 1, &ids, &e), &e);
    assert_int_equal(ids.n, 8);
    assert_int_equal(ids.ids[7], 1);
    const int32_t *ip = ids.ids;
    TU_OK(gtr_model_encode_ids(m, &ip, &ids.n, 1, w, &e), &e);
    assert_memory_equal(v, w, sizeof v);
    size_t nine = 9;
    int32_t nine_ids[9] = {100, 19, 46, 677, 7142, 100, 19, 46, 1};
    ip = nine_ids;
    assert_int_equal(gtr_model_encode_ids(m, &ip, &nine, 1, w, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "max_len"));
    int32_t bad[2] = {40000, 1};
    size_t two = 2;
    ip = bad;
    assert_int_equal(gtr_model_encode_ids(m, &ip, &two, 1, w, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "40000"));
    size_t zero = 0;
    assert_int_equal(gtr_model_encode_ids(m, &ip, &zero, 1, w, &e), GTR_ERR_INVALID_ARG);
    /* n == 0 is a no-op */
    TU_OK(gtr_model_encode(m, NULL, NULL, 0, NULL, &e), &e);
    gtr_ids_free(&ids);
    gtr_model_free(m);
    free(p);
}

/* ---- other sentence-transformers heads -------------------------------------------- */

/* A copy of gtr-tiny whose files are links, with the listed files replaced. */
static char *tiny_variant(const char *name)
{
    char *src = tu_shared("models/gtr-tiny");
    char *abs = realpath(src, NULL);
    assert_non_null(abs);
    char *dir = tu_tmp(name);
    assert_int_equal(tu_system("mkdir -p '%s/1_Pooling' '%s/2_Dense' && cd '%s' && "
                               "for f in config.json sentence_bert_config.json spiece.model "
                               "model.safetensors 1_Pooling/config.json; do ln -s '%s'/$f $f; done",
                               dir, dir, dir, abs),
                     0);
    free(abs);
    free(src);
    return dir;
}

static void write_text(const char *dir, const char *rel, const char *text)
{
    char *p = gtr_path_join(dir, rel);
    tu_write(p, text, strlen(text));
    free(p);
}

/* Dense with bias and Tanh (sentence-transformers' default activation): a hand-made
 * 2_Dense/model.safetensors with W = 0.5 I and b[j] = j / 100, so dense = tanh(pooled/2 + b). */
static void test_dense_bias_tanh(void **state)
{
    (void)state;
    char *dir = tiny_variant("dense-tanh");
    write_text(dir, "modules.json",
               "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
               "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
               "{\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]");
    write_text(dir, "2_Dense/config.json", "{\"in_features\":64,\"out_features\":64,\"bias\":true,"
               "\"activation_function\":\"torch.nn.modules.activation.Tanh\"}");
    char hdr[200];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"linear.weight\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[0,16384]},"
                      "\"linear.bias\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[16384,16640]}}");
    size_t len = 8 + (size_t)hl + 16640;
    uint8_t *f = calloc(1, len);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(f + 8, hdr, (size_t)hl);
    float *w = (float *)calloc(64 * 64 + 64, sizeof(float));
    for (int j = 0; j < 64; j++) {
        w[j * 64 + j] = 0.5f;
        w[64 * 64 + j] = (float)j / 100.0f;
    }
    memcpy(f + 8 + hl, w, 16640);
    char *p = gtr_path_join(dir, "2_Dense/model.safetensors");
    tu_write(p, f, len);
    free(p);
    free(f);
    gtr_model *m = load_model_dir(dir, 1);
    assert_non_null(strstr(gtr_model_describe(m), "bias, tanh"));
    assert_null(strstr(gtr_model_describe(m), "normalize"));
    capture c = {.want_text = 0};
    gtr_model_set_probe(m, capture_probe, &c);
    const char *text = "A passage about dense retrieval.";
    float out[64];
    gtr_error e;
    TU_OK(gtr_model_encode(m, &text, NULL, 1, out, &e), &e);
    size_t n;
    const float *pooled = captured(&c, "pooled", &n);
    assert_non_null(pooled);
    assert_int_equal(n, 64);
    double d = 0;
    for (int j = 0; j < 64; j++) {
        double want = tanh(0.5 * pooled[j] + w[64 * 64 + j]);
        if (fabs(want - out[j]) > d) d = fabs(want - out[j]);
    }
    print_message("# dense with bias and tanh: max diff %.3g\n", d);
    assert_true(d <= 1e-6);
    capture_free(&c);
    free(w);
    gtr_model_free(m);
    free(dir);
}

/* Transformer + Pooling only: the output is the mean-pooled state, not normalised. */
static void test_pooling_only(void **state)
{
    (void)state;
    char *dir = tiny_variant("pool-only");
    write_text(dir, "modules.json",
               "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
               "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
    gtr_model *m = load_model_dir(dir, 1);
    assert_int_equal(gtr_model_dim(m), 64);
    capture c = {.want_text = 0};
    gtr_model_set_probe(m, capture_probe, &c);
    const char *text = "Another passage.";
    float out[64];
    gtr_error e;
    TU_OK(gtr_model_encode(m, &text, NULL, 1, out, &e), &e);
    size_t n;
    const float *pooled = captured(&c, "pooled", &n);
    assert_non_null(pooled);
    assert_memory_equal(out, pooled, sizeof out);
    capture_free(&c);
    gtr_model_free(m);
    free(dir);
}

/* ---- the fingerprint read from a stored tensor ------------------------------------ */

/* The fingerprint's definition (fingerprint.c), serially: name with its NUL, shape {rows, cols} as
 * two u64, then per chunk of 2^20 floats (the last shorter) the FNV-1a-64 of its 8-byte words
 * (an odd last float as a 4-byte word), folded in order. */
static uint64_t fp_reference(uint64_t h, const char *name, size_t rows, size_t cols, const float *x, size_t n)
{
    h = gtr_fnv1a64(name, strlen(name) + 1, h);
    uint64_t shape[2] = {rows, cols};
    h = gtr_fnv1a64(shape, sizeof shape, h);
    for (size_t c0 = 0; c0 < n; c0 += (size_t)1 << 20) {
        size_t c1 = GTR_MIN(n, c0 + ((size_t)1 << 20)), i = c0;
        uint64_t ch = GTR_FNV_SEED;
        for (; i + 2 <= c1; i += 2) {
            uint64_t w;
            memcpy(&w, x + i, 8);
            ch = (ch ^ w) * 0x100000001b3ull;
        }
        if (i < c1) {
            uint32_t w;
            memcpy(&w, x + i, 4);
            ch = (ch ^ w) * 0x100000001b3ull;
        }
        h = gtr_fnv1a64(&ch, sizeof ch, h);
    }
    return h;
}

/* gtr_fingerprint_stored (F16/BF16/F32 read in place, 4 chunks at a time) and
 * gtr_fingerprint_tensor (float32, 4 chunks at a time) against the serial definition, on
 * sizes with groups of 4 full chunks, a short group, a partial last chunk and an odd count;
 * a non-finite value gives the error naming the first one either way. */
static void test_fingerprint_stored(void **state)
{
    (void)state;
    gtr_error e;
    gtr_pool *pool = gtr_pool_create(3, &e);
    assert_non_null(pool);
    const size_t counts[] = {5, 1 << 20, 9 * (1 << 20) + 12345, 3 * (1 << 20) + 1};
    const gtr_dtype_id dts[] = {GTR_DT_F16, GTR_DT_BF16, GTR_DT_F32};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
        for (size_t di = 0; di < 3; di++) {
            size_t n = counts[ci], es = di == 2 ? 4 : 2, cols = n % 5 == 0 ? 5 : 1;
            uint8_t *raw = malloc(n * es + 1);
            float *x = malloc(n * sizeof *x);
            assert_non_null(raw);
            assert_non_null(x);
            uint32_t r = 12345u + (uint32_t)ci;
            for (size_t i = 0; i < n; i++) {
                r = r * 1664525u + 1013904223u;
                uint16_t h16 = (uint16_t)((r >> 16) & 0xbfff); /* exponents below 31: finite */
                if (dts[di] == GTR_DT_F16) {
                    memcpy(raw + 1 + 2 * i, &h16, 2);
                    x[i] = gtr_f16_to_f32(h16);
                } else if (dts[di] == GTR_DT_BF16) {
                    memcpy(raw + 1 + 2 * i, &h16, 2);
                    x[i] = gtr_bf16_to_f32(h16);
                } else {
                    x[i] = (float)(int32_t)r * 1e-9f;
                    memcpy(raw + 1 + 4 * i, &x[i], 4);
                }
            }
            gtr_tensor t;
            memset(&t, 0, sizeof t);
            t.name = (char *)"w";
            t.dtype = dts[di];
            t.ndim = 2;
            t.shape[0] = n / cols;
            t.shape[1] = cols;
            t.stride[0] = cols;
            t.stride[1] = 1;
            t.count = n;
            t.data = raw + 1; /* odd address */
            t.span = n * es;
            assert_true(gtr_tensor_contiguous(&t));
            uint64_t want = fp_reference(42, "w", n / cols, cols, x, n), a = 42, b = 42;
            TU_OK(gtr_fingerprint_stored(&a, pool, "w", &t, n / cols, cols, &e), &e);
            TU_OK(gtr_fingerprint_tensor(&b, pool, "w", x, n / cols, cols, &e), &e);
            assert_true(a == want);
            assert_true(b == want);
            if (n > 100) { /* a NaN: the same message from both */
                size_t at = n - 77;
                uint16_t nan16 = dts[di] == GTR_DT_F16 ? 0x7e00 : 0x7fc0;
                if (dts[di] == GTR_DT_F32) {
                    float f = NAN;
                    memcpy(raw + 1 + 4 * at, &f, 4);
                } else {
                    memcpy(raw + 1 + 2 * at, &nan16, 2);
                }
                x[at] = NAN;
                gtr_error e1, e2;
                a = b = 42;
                assert_int_equal(gtr_fingerprint_stored(&a, pool, "w", &t, n / cols, cols, &e1), GTR_ERR_FORMAT);
                assert_int_equal(gtr_fingerprint_tensor(&b, NULL, "w", x, n / cols, cols, &e2), GTR_ERR_FORMAT);
                assert_string_equal(e1.message, e2.message);
                assert_non_null(strstr(e1.message, "NaN"));
            }
            free(raw);
            free(x);
        }
    gtr_pool_free(pool);
}

/* gtr_pack_fingerprinted (the load's Linear weights: hashed inside the packing tasks, aligned
 * shapes a panel of four chunks at a time with the int8 row maxima taken on the way, or, for
 * short rows, a band of 16 rows of each chunk packed from the hash's own float32 pieces) against
 * gtr_fingerprint_stored of each part folded in order and gtr_wmat_pack_src: the same hash and
 * the same bytes, on aligned shapes with chunks longer and shorter than a panel, several
 * parts (F16, BF16, F32), a group short of four, and shapes that are not aligned; a NaN in the
 * second part gives gtr_fingerprint_stored's error and names that part. */
static void test_pack_fingerprinted(void **state)
{
    (void)state;
    gtr_error e;
    static const struct {
        size_t k, rows[3];
        int n;
        bool mixed;
    } cases[] = {
        {256, {4096, 8192, 4096}, 3, true}, /* aligned, 4096-row chunks, lanes across parts */
        {512, {10240, 0, 0}, 1, false},     /* aligned, 5 chunks: a group of 4 and one */
        {32768, {96, 0, 0}, 1, false},      /* aligned, 32-row chunks (shorter than nr 64) */
        {5120, {300, 200, 0}, 2, false},    /* chunks end inside rows */
        {768, {768, 768, 768}, 3, true},    /* base-like, under a chunk a part */
        {1024, {1536, 0, 0}, 1, false},     /* a part of 1.5 chunks */
        {1024, {1024, 2048, 1024}, 3, true}, /* aligned as xxl's q, k, v: bf16 and int8 in bands */
        {2048, {1024, 0, 0}, 1, false},     /* int8 in bands, bf16 and f32 in panels */
        {512, {8192, 0, 0}, 1, false},      /* every type in bands */
        {16384, {128, 0, 0}, 1, false},     /* 64-row chunks, as xxl's o (a panel each at nr 64) */
        {65536, {64, 0, 0}, 1, false},      /* 16-row chunks, as xxl's wo */
    };
    gtr_pool *pool3 = gtr_pool_create(3, &e);
    assert_non_null(pool3);
    gtr_pool *pools[2] = {NULL, pool3};
    const gtr_kernels *tables[2] = {gtr_kernels_generic(), gtr_kernels_select()};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t k = cases[ci].k;
        gtr_tensor t[3];
        uint8_t *raw[3];
        const gtr_tensor *tp[3];
        gtr_wsrc src[3];
        static const char *names[3] = {"a.weight", "b.weight", "c.weight"};
        uint32_t r = 99u + (uint32_t)ci;
        for (int i = 0; i < cases[ci].n; i++) {
            size_t rows = cases[ci].rows[i], n = rows * k;
            gtr_dtype_id dt = cases[ci].mixed ? (i == 0 ? GTR_DT_F16 : i == 1 ? GTR_DT_BF16 : GTR_DT_F32) : GTR_DT_F16;
            size_t es = dt == GTR_DT_F32 ? 4 : 2;
            raw[i] = malloc(n * es);
            assert_non_null(raw[i]);
            for (size_t j = 0; j < n; j++) {
                r = r * 1664525u + 1013904223u;
                if (dt == GTR_DT_F32) {
                    float f = (float)(int32_t)r * 1e-10f;
                    memcpy(raw[i] + 4 * j, &f, 4);
                } else {
                    uint16_t h = (uint16_t)((r >> 16) & 0xbfff);
                    memcpy(raw[i] + 2 * j, &h, 2);
                }
            }
            memset(&t[i], 0, sizeof t[i]);
            t[i].name = (char *)names[i];
            t[i].dtype = dt;
            t[i].ndim = 2;
            t[i].shape[0] = rows;
            t[i].shape[1] = k;
            t[i].stride[0] = k;
            t[i].stride[1] = 1;
            t[i].count = n;
            t[i].data = raw[i];
            t[i].span = n * es;
            tp[i] = &t[i];
            src[i] = (gtr_wsrc){raw[i], rows, dt == GTR_DT_F16 ? GTR_SRC_F16 : dt == GTR_DT_BF16 ? GTR_SRC_BF16 : GTR_SRC_F32};
        }
        for (int ti = 0; ti < 2; ti++)
            for (int wt = 0; wt < GTR_W_NTYPES; wt++)
                for (int pi = 0; pi < 2; pi++) {
                    uint64_t want = 7, got = 7;
                    for (int i = 0; i < cases[ci].n; i++)
                        TU_OK(gtr_fingerprint_stored(&want, pools[pi], names[i], &t[i], t[i].shape[0], k, &e), &e);
                    gtr_wmat a, b;
                    TU_OK(gtr_wmat_pack_src(tables[ti], pools[pi], &a, src, (size_t)cases[ci].n, k, (gtr_wtype)wt, &e), &e);
                    TU_OK(gtr_pack_fingerprinted(tables[ti], pools[pi], tp, cases[ci].n, k, (gtr_wtype)wt, &b, &got, NULL, &e), &e);
                    assert_true(got == want);
                    tu_assert_wmat_equal(&a, &b);
                    gtr_wmat_free(&b);
                    if (!cases[ci].mixed) { /* all F16: packed without the hash, the same bytes */
                        TU_OK(gtr_pack_unhashed(tables[ti], pools[pi], tp, cases[ci].n, k, (gtr_wtype)wt, &b, NULL, &e), &e);
                        tu_assert_wmat_equal(&a, &b);
                        gtr_wmat_free(&b);
                        bool nonfinite = true;
                        TU_OK(gtr_wmat_pack_src_finite(tables[ti], pools[pi], &b, src, (size_t)cases[ci].n, k, (gtr_wtype)wt,
                                                       &nonfinite, &e), &e);
                        assert_false(nonfinite);
                        gtr_wmat_free(&b);
                    } else { /* only F16 parts go without the hash */
                        assert_int_equal(gtr_pack_unhashed(tables[ti], pools[pi], tp, cases[ci].n, k, (gtr_wtype)wt, &b, NULL, &e),
                                         GTR_ERR_INTERNAL);
                    }
                    gtr_wmat_free(&a);
                }
        if (cases[ci].n >= 2) { /* a NaN in the second part, late in it */
            size_t at = t[1].count - 3 * k / 2;
            if (t[1].dtype == GTR_DT_F32) {
                float f = NAN;
                memcpy(raw[1] + 4 * at, &f, 4);
            } else {
                uint16_t nan16 = t[1].dtype == GTR_DT_F16 ? 0x7e00 : 0x7fc0;
                memcpy(raw[1] + 2 * at, &nan16, 2);
            }
            for (int wt = 0; wt < GTR_W_NTYPES; wt++) {
                gtr_error e1, e2;
                uint64_t h1 = 7, h2 = 7;
                int bad = -1;
                gtr_wmat b;
                TU_OK(gtr_fingerprint_stored(&h1, pool3, names[0], &t[0], t[0].shape[0], k, &e1), &e1);
                assert_int_equal(gtr_fingerprint_stored(&h1, pool3, names[1], &t[1], t[1].shape[0], k, &e1), GTR_ERR_FORMAT);
                assert_int_equal(gtr_pack_fingerprinted(tables[1], pool3, tp, cases[ci].n, k, (gtr_wtype)wt, &b, &h2, &bad, &e2),
                                 GTR_ERR_FORMAT);
                assert_int_equal(bad, 1);
                assert_string_equal(e1.message, e2.message);
                assert_null(b.data);
                if (!cases[ci].mixed) { /* without the hash: the same error, naming the same part */
                    gtr_error e3;
                    bad = -1;
                    assert_int_equal(gtr_pack_unhashed(tables[1], pool3, tp, cases[ci].n, k, (gtr_wtype)wt, &b, &bad, &e3),
                                     GTR_ERR_FORMAT);
                    assert_int_equal(bad, 1);
                    assert_string_equal(e1.message, e3.message);
                    assert_null(b.data);
                    /* and the packing alone reports that an F16 value was not finite */
                    bool nonfinite = false;
                    gtr_wmat c;
                    TU_OK(gtr_wmat_pack_src_finite(tables[1], pool3, &c, src, (size_t)cases[ci].n, k, (gtr_wtype)wt,
                                                   &nonfinite, &e3), &e3);
                    assert_true(nonfinite);
                    gtr_wmat_free(&c);
                }
            }
        }
        for (int i = 0; i < cases[ci].n; i++) free(raw[i]);
    }
    gtr_pool_free(pool3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_embed_gtr_tiny),
        cmocka_unit_test(test_embed_gtr_tiny_bin),
        cmocka_unit_test(test_embed_gtr_tiny_f16),
        cmocka_unit_test(test_embed_gtr_tiny_v11),
        cmocka_unit_test(test_embed_gtr_tiny_wide),
        cmocka_unit_test(test_embed_gtr_small_texts),
        cmocka_unit_test(test_hidden_gtr_tiny),
        cmocka_unit_test(test_hidden_gtr_tiny_f16),
        cmocka_unit_test(test_hidden_gtr_tiny_v11),
        cmocka_unit_test(test_hidden_gtr_tiny_wide),
        cmocka_unit_test(test_hidden_gtr_small),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_no_fingerprint),
        cmocka_unit_test(test_fingerprint_stored),
        cmocka_unit_test(test_pack_fingerprinted),
        cmocka_unit_test(test_max_len),
        cmocka_unit_test(test_dense_bias_tanh),
        cmocka_unit_test(test_pooling_only),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
