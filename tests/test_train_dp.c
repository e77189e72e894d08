/* test_train_dp.c — data-parallel training (gtr_train_comm) without MPI: N threads, each with
 * its own trainer, talk through an in-process implementation of the four collectives. After
 * three steps every rank's checkpoint (parameters, optimizer state, step, data position, RNG)
 * is byte-identical to the single-process trainer's, for 1-4 ranks, with more micro-batches
 * than ranks and fewer (an idle rank), Adafactor and AdamW, hard negatives; a bad
 * communicator is refused. The MPI binary is tested end to end by tests/scripts/mpi_train.sh;
 * this one runs under the sanitizers too. */
#include "support/testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAXR 4

static char *g_model;

/* ---- the in-process collectives --------------------------------------------------------- */

typedef struct hub {
    int n;
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *shared; /* all-gather / broadcast staging */
    float *box[MAXR][MAXR];  /* [from][to]: one message in flight */
    size_t boxn[MAXR][MAXR];
} hub;

typedef struct peer {
    hub *h;
    int rank;
} peer;

static int hub_allgather(void *user, const void *mine, size_t n, void *all, const size_t *counts)
{
    peer *p = user;
    hub *h = p->h;
    size_t total = 0, off = 0;
    for (int r = 0; r < h->n; r++) {
        if (r < p->rank) off += counts[r];
        total += counts[r];
    }
    pthread_barrier_wait(&h->bar);
    if (p->rank == 0) {
        free(h->shared);
        h->shared = malloc(total + 1);
    }
    pthread_barrier_wait(&h->bar);
    memcpy(h->shared + off, mine, n);
    pthread_barrier_wait(&h->bar);
    memcpy(all, h->shared, total);
    pthread_barrier_wait(&h->bar);
    return 0;
}

static int hub_bcast(void *user, int root, float *x, size_t n)
{
    peer *p = user;
    hub *h = p->h;
    pthread_barrier_wait(&h->bar);
    if (p->rank == root) {
        free(h->shared);
        h->shared = malloc(n * sizeof *x + 1);
        memcpy(h->shared, x, n * sizeof *x);
    }
    pthread_barrier_wait(&h->bar);
    if (p->rank != root) memcpy(x, h->shared, n * sizeof *x);
    pthread_barrier_wait(&h->bar);
    return 0;
}

static int hub_send(void *user, int to, const float *x, size_t n)
{
    peer *p = user;
    hub *h = p->h;
    pthread_mutex_lock(&h->mu);
    while (h->box[p->rank][to]) pthread_cond_wait(&h->cv, &h->mu);
    h->box[p->rank][to] = malloc(n * sizeof *x + 1);
    memcpy(h->box[p->rank][to], x, n * sizeof *x);
    h->boxn[p->rank][to] = n;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static int hub_recv(void *user, int from, float *x, size_t n)
{
    peer *p = user;
    hub *h = p->h;
    pthread_mutex_lock(&h->mu);
    while (!h->box[from][p->rank]) pthread_cond_wait(&h->cv, &h->mu);
    int bad = h->boxn[from][p->rank] != n;
    memcpy(x, h->box[from][p->rank], (bad ? 0 : n) * sizeof *x);
    free(h->box[from][p->rank]);
    h->box[from][p->rank] = NULL;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return bad;
}

/* ---- ranks ------------------------------------------------------------------------------- */

typedef struct rank_job {
    peer p;
    const gtr_train_data *data;
    gtr_train_options o;
    char *ckpt;
    gtr_error err;
    gtr_status st;
    double loss[3];
} rank_job;

static void *rank_main(void *arg)
{
    rank_job *j = arg;
    gtr_trainer *t = gtr_trainer_create(g_model, j->data, &j->o, &j->err);
    if (!t) {
        j->st = j->err.code ? j->err.code : GTR_ERR_INTERNAL;
        return NULL; /* the test fails; the other ranks may block, so never reached with good input */
    }
    gtr_train_comm c = {.size = sizeof c, .rank = j->p.rank, .n_ranks = j->p.h->n, .user = &j->p,
                        .allgather = hub_allgather, .send = hub_send, .recv = hub_recv, .bcast = hub_bcast};
    j->st = gtr_trainer_set_comm(t, &c, &j->err);
    for (int s = 0; !j->st && s < 3; s++) {
        gtr_train_step_info info;
        j->st = gtr_trainer_step(t, &info, &j->err);
        j->loss[s] = info.loss;
    }
    if (!j->st) j->st = gtr_trainer_save_checkpoint(t, j->ckpt, &j->err);
    gtr_trainer_free(t);
    return NULL;
}

static char *slurp(const char *path, size_t *len)
{
    char *d;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, len, &e), &e);
    return d;
}

/* Train 3 steps on n ranks and compare every rank's checkpoint with the single process's. */
static void check(const gtr_train_data *d, gtr_train_options o, int n)
{
    gtr_error e;
    char *ref = tu_tmp("dp_ref.ckpt");
    gtr_trainer *t = gtr_trainer_create(g_model, d, &o, &e);
    if (!t) fail_msg("%s", e.message);
    double loss[3];
    for (int s = 0; s < 3; s++) {
        gtr_train_step_info info;
        TU_OK(gtr_trainer_step(t, &info, &e), &e);
        loss[s] = info.loss;
    }
    TU_OK(gtr_trainer_save_checkpoint(t, ref, &e), &e);
    gtr_trainer_free(t);
    size_t lr, lk;
    char *want = slurp(ref, &lr);

    hub h = {.n = n};
    pthread_barrier_init(&h.bar, NULL, (unsigned)n);
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    rank_job jobs[MAXR];
    pthread_t th[MAXR];
    for (int r = 0; r < n; r++) {
        char name[32];
        snprintf(name, sizeof name, "dp_rank%d.ckpt", r);
        jobs[r] = (rank_job){.p = {&h, r}, .data = d, .o = o, .ckpt = tu_tmp(name)};
        jobs[r].o.n_threads = 1 + r % 2; /* ranks need not have the same threads */
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) {
        if (jobs[r].st) fail_msg("rank %d: %s", r, jobs[r].err.message);
        char *got = slurp(jobs[r].ckpt, &lk);
        assert_int_equal(lk, lr);
        assert_memory_equal(got, want, lr);
        free(got);
        free(jobs[r].ckpt);
    }
    /* the loss is reported by every rank that saw the first micro-batch: rank 0 */
    for (int s = 0; s < 3; s++) assert_true(jobs[0].loss[s] == loss[s]);
    free(h.shared);
    pthread_barrier_destroy(&h.bar);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    free(want);
    free(ref);
}

static gtr_train_data *beir_data(void)
{
    gtr_error e;
    char *dir = tu_shared("beir/scifact");
    gtr_train_data *d = gtr_train_data_load_beir(dir, "train", &e);
    if (!d) fail_msg("%s", e.message);
    free(dir);
    return d;
}

static gtr_train_options options(size_t batch, size_t micro, gtr_optimizer kind)
{
    gtr_train_options o = gtr_train_default_options();
    o.optimizer = kind;
    o.batch_size = batch;
    o.micro_batch = micro;
    o.passage_max_len = 32;
    o.query_max_len = 16;
    o.total_steps = 5;
    o.warmup_steps = 1;
    o.seed = 11;
    o.n_threads = 2;
    return o;
}

static void test_more_chunks_than_ranks(void **s)
{
    (void)s;
    gtr_train_data *d = beir_data();
    gtr_train_options o = options(10, 2, GTR_OPTIM_ADAFACTOR); /* 5 micro-batches */
    for (int n = 1; n <= 4; n++) check(d, o, n);
    gtr_train_data_free(d);
}

static void test_idle_ranks(void **s)
{
    (void)s;
    gtr_train_data *d = beir_data();
    check(d, options(8, 5, GTR_OPTIM_ADAMW), 3); /* 2 micro-batches on 3 ranks */
    check(d, options(8, 0, GTR_OPTIM_ADAMW), 2); /* the whole batch at once */
    gtr_train_data_free(d);
}

static void test_hard_negatives(void **s)
{
    (void)s;
    gtr_error e;
    /* a query, its positive and 0-2 negatives per line, from the tokenizer's reference texts */
    json_t **v;
    char *texts = tu_shared("tokenizer/texts.jsonl"), *path = tu_tmp("dp.jsonl");
    size_t nt = tu_json_lines(texts, &v);
    assert_true(nt >= 120);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < 20; i++) {
        size_t b = 40 + 4 * i;
        json_t *neg = json_array();
        for (size_t k = 0; k < i % 3; k++) json_array_append(neg, v[b + 2 + k]);
        json_t *o = json_pack("{s:O, s:O, s:o}", "query", v[b], "pos", v[b + 1], "neg", neg);
        char *js = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", js);
        free(js);
        json_decref(o);
    }
    fclose(f);
    tu_json_lines_free(v, nt);
    gtr_train_data *d = gtr_train_data_load_jsonl(path, &e);
    if (!d) fail_msg("%s", e.message);
    gtr_train_options o = options(9, 2, GTR_OPTIM_ADAFACTOR);
    o.n_negatives = 2;
    check(d, o, 3);
    gtr_train_data_free(d);
    free(texts);
    free(path);
}

static void test_bad_comm(void **s)
{
    (void)s;
    gtr_error e;
    gtr_train_data *d = beir_data();
    gtr_train_options o = options(4, 0, GTR_OPTIM_ADAFACTOR);
    gtr_trainer *t = gtr_trainer_create(g_model, d, &o, &e);
    if (!t) fail_msg("%s", e.message);
    gtr_train_comm c = {.size = sizeof c, .rank = 2, .n_ranks = 2, .allgather = hub_allgather,
                        .send = hub_send, .recv = hub_recv, .bcast = hub_bcast};
    assert_int_equal(gtr_trainer_set_comm(t, &c, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "rank 2 of 2"));
    c.rank = 0;
    c.bcast = NULL;
    assert_int_equal(gtr_trainer_set_comm(t, &c, &e), GTR_ERR_INVALID_ARG);
    c.bcast = hub_bcast;
    c.size = 8;
    assert_int_equal(gtr_trainer_set_comm(t, &c, &e), GTR_ERR_INVALID_ARG);
    assert_int_equal(gtr_trainer_set_comm(t, NULL, &e), GTR_OK);
    gtr_trainer_free(t);
    gtr_train_data_free(d);
}

int main(void)
{
    g_model = tu_shared("models/gtr-tiny");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_chunks_than_ranks),
        cmocka_unit_test(test_idle_ranks),
        cmocka_unit_test(test_hard_negatives),
        cmocka_unit_test(test_bad_comm),
    };
    int rc = cmocka_run_group_tests_name("train_dp", tests, NULL, NULL);
    free(g_model);
    return rc;
}
