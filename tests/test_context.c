/* test_context.c — one loaded model shared by several threads: N threads, each with its own
 * gtr_context (own pool, the model's pool, one thread), encode different batches of the
 * reference texts of ../shared/models/gtr-small at the same time, several rounds, and every
 * vector is bit-identical to what one thread gets from gtr_model_encode; concurrent
 * gtr_model_encode calls (the locked convenience path) too; a context's interrupt flag stops
 * only that context. */
#include "support/testutil.h"
#include "model/model_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 4
#define ROUNDS 3

typedef struct {
    size_t n;
    const char **texts;
    size_t *lens;
    json_t **v;
    size_t nv;
} texts;

static texts load_texts(void)
{
    texts t = {0};
    char *p = tu_shared("models/gtr-small/reference/texts.jsonl");
    size_t n = t.nv = tu_json_lines(p, &t.v);
    free(p);
    t.texts = calloc(n, sizeof *t.texts);
    t.lens = calloc(n, sizeof *t.lens);
    assert_non_null(t.texts);
    assert_non_null(t.lens);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(t.v[i]);
        assert_non_null(s);
        /* under AddressSanitizer the kernels are ~50x slower: keep the short texts there */
        if (TU_SANITIZED && json_string_length(t.v[i]) > 300) continue;
        t.texts[t.n] = s;
        t.lens[t.n++] = json_string_length(t.v[i]);
    }
    assert_true(t.n >= 8);
    return t;
}

static void free_texts(texts *t)
{
    tu_json_lines_free(t->v, t->nv);
    free(t->texts);
    free(t->lens);
}

static gtr_model *load(int threads)
{
    gtr_model_options o = gtr_model_default_options();
    o.n_threads = threads;
    gtr_error e;
    char *p = tu_shared("models/gtr-small");
    gtr_model *m = gtr_model_load(p, &o, &e);
    if (!m) fail_msg("load %s: %s", p, e.message);
    free(p);
    return m;
}

typedef struct {
    gtr_model *m;
    gtr_context *ctx; /* NULL: gtr_model_encode */
    const texts *t;
    int id;
    const float *want;
    size_t dim;
    size_t mismatched; /* vectors that differ from want */
    gtr_status st;
    char msg[256];
} worker;

/* Thread id encodes the texts i with (i + round) % N_THREADS == id, in batches of a few texts
 * (a different split every round), and compares each vector with one thread's. */
static void *work(void *arg)
{
    worker *w = arg;
    const texts *t = w->t;
    const char **bt = calloc(t->n, sizeof *bt);
    size_t *bl = calloc(t->n, sizeof *bl), *bi = calloc(t->n, sizeof *bi);
    float *out = calloc(t->n * w->dim, sizeof *out);
    if (!bt || !bl || !bi || !out) {
        w->st = GTR_ERR_NOMEM;
        goto done;
    }
    for (int r = 0; r < ROUNDS; r++) {
        size_t k = 0;
        for (size_t i = 0; i < t->n; i++)
            if ((i + (size_t)r) % N_THREADS == (size_t)w->id) {
                bt[k] = t->texts[i];
                bl[k] = t->lens[i];
                bi[k++] = i;
            }
        gtr_error e;
        for (size_t b0 = 0; b0 < k; b0 += (size_t)r + 2) {
            size_t nb = GTR_MIN((size_t)r + 2, k - b0);
            w->st = w->ctx ? gtr_context_encode(w->ctx, bt + b0, bl + b0, nb, out, &e)
                           : gtr_model_encode(w->m, bt + b0, bl + b0, nb, out, &e);
            if (w->st) {
                snprintf(w->msg, sizeof w->msg, "%s", e.message);
                goto done;
            }
            for (size_t j = 0; j < nb; j++)
                if (memcmp(out + j * w->dim, w->want + bi[b0 + j] * w->dim, w->dim * sizeof(float)))
                    w->mismatched++;
        }
    }
done:
    free(bt);
    free(bl);
    free(bi);
    free(out);
    return NULL;
}

static void run_workers(gtr_model *m, gtr_context **ctx, const texts *t, const float *want)
{
    worker w[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){.m = m, .ctx = ctx ? ctx[i] : NULL, .t = t, .id = i, .want = want,
                        .dim = (size_t)gtr_model_dim(m)};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        if (w[i].st) fail_msg("thread %d: %s", i, w[i].msg);
        assert_int_equal(w[i].mismatched, 0);
    }
}

/* One thread's vectors: a model of its own with one thread, encoding every text in one call. */
static float *one_thread(const texts *t, size_t *dim)
{
    gtr_model *m = load(1);
    *dim = (size_t)gtr_model_dim(m);
    float *want = calloc(t->n * *dim, sizeof *want);
    assert_non_null(want);
    gtr_error e;
    TU_OK(gtr_model_encode(m, t->texts, t->lens, t->n, want, &e), &e);
    gtr_model_free(m);
    return want;
}

static void test_contexts_concurrent(void **state)
{
    (void)state;
    texts t = load_texts();
    size_t dim;
    float *want = one_thread(&t, &dim);
    gtr_model *m = load(2);
    gtr_context *ctx[N_THREADS];
    gtr_error e;
    for (int i = 0; i < N_THREADS; i++) {
        gtr_context_options o = gtr_context_default_options();
        o.n_threads = i % 3 == 0 ? 2 : i % 3 == 1 ? 0 : 1; /* own pool / model's / one thread */
        ctx[i] = gtr_context_create(m, &o, &e);
        if (!ctx[i]) fail_msg("context %d: %s", i, e.message);
        assert_ptr_equal(gtr_context_model(ctx[i]), m);
    }
    run_workers(m, ctx, &t, want);
    for (int i = 0; i < N_THREADS; i++) gtr_context_free(ctx[i]);
    gtr_model_free(m);
    free(want);
    free_texts(&t);
}

/* Callers that share a model without contexts take turns on its lock: same bits. */
static void test_model_encode_concurrent(void **state)
{
    (void)state;
    texts t = load_texts();
    size_t dim;
    float *want = one_thread(&t, &dim);
    gtr_model *m = load(2);
    run_workers(m, NULL, &t, want);
    gtr_model_free(m);
    free(want);
    free_texts(&t);
}

/* A context whose interrupt flag is set fails with GTR_ERR_INTERRUPTED; another context of the
 * same model is not affected. */
static void test_interrupt(void **state)
{
    (void)state;
    texts t = load_texts();
    gtr_model *m = load(1);
    gtr_error e;
    gtr_context *a = gtr_context_create(m, NULL, &e), *b = gtr_context_create(m, NULL, &e);
    assert_non_null(a);
    assert_non_null(b);
    atomic_int stop = 1;
    gtr_context_set_interrupt(a, &stop);
    float *out = calloc(2 * (size_t)gtr_model_dim(m), sizeof *out);
    assert_non_null(out);
    assert_int_equal(gtr_context_encode(a, t.texts, t.lens, 2, out, &e), GTR_ERR_INTERRUPTED);
    TU_OK(gtr_context_encode(b, t.texts, t.lens, 2, out, &e), &e);
    atomic_store(&stop, 0);
    TU_OK(gtr_context_encode(a, t.texts, t.lens, 2, out, &e), &e);
    assert_null(gtr_context_create(NULL, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    gtr_context_free(a);
    gtr_context_free(b);
    free(out);
    gtr_model_free(m);
    free_texts(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexts_concurrent),
        cmocka_unit_test(test_model_encode_concurrent),
        cmocka_unit_test(test_interrupt),
    };
    return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
