/* batcher.c — dynamic batching. Connection threads submit jobs (a request's tokenized texts)
 * to a bounded FIFO and sleep on the job's condition variable; `workers` encoder threads, each
 * with a gtr_context of its own over the one shared model, take texts from the front of the
 * queue into a batch until the next text would exceed the token budget, encode the batch,
 * copy each vector to its job and wake the jobs that are complete. While one worker encodes,
 * another forms and encodes the next batch (the weights exist once; each adds its arena).
 *
 * When to encode: as soon as the queued texts fill the token budget, or when the oldest queued
 * text has waited max_wait_ms, or when no other request is on its way (every request the server
 * has started reading is already queued: waiting could not add a text). So a lone request pays
 * no waiting, simultaneous requests share a batch, and under load (texts pile up while the
 * previous batch encodes) batches form with no waiting at all.
 * A request larger than the budget is split over several batches; texts are never reordered,
 * so every request is answered in submission order of its texts (no starvation).
 *
 * Admission: at most queue_cap jobs are admitted and unfinished at a time; beyond that submit
 * says FULL and the server answers 503, so memory is bounded by queue_cap requests.
 *
 * Abort (shutdown past its drain deadline): queued texts are dropped, the batch being encoded
 * stops at its next half layer (every worker's context watches the abort flag), and every
 * waiting job fails with
 * GTR_ERR_INTERRUPTED, so no thread keeps encoding work whose requests are being answered
 * 503. */
#include "model/model_internal.h" /* gtr_context_set_interrupt */
#include "server/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One encoder thread and the batch it forms / encodes (touched by that thread only, except
 * under the batcher's lock in form_batch / finish_batch). */
typedef struct gs_worker {
    gs_batcher *b;
    gtr_context *ctx;
    pthread_t thread;
    bool started;
    size_t n, n_cap;
    const int32_t **ids;
    size_t *n_ids, *index;
    gs_job **owner;
    float *out;
    size_t out_cap;
} gs_worker;

struct gs_batcher {
    gtr_model *model;
    atomic_int abort;    /* set once: stop encoding, fail everything */
    size_t dim, max_tokens, cap;
    long max_wait_ns;
    gs_metrics *metrics;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job arrived, or closing */
    gs_job *head, *tail; /* jobs with texts not yet in a batch */
    size_t jobs;         /* admitted and unfinished */
    size_t texts;        /* admitted texts not yet encoded */
    size_t pending_tokens;
    size_t expected;     /* announced requests not yet submitted or withdrawn */
    bool closed;
    gs_worker *w;
    int n_workers;
};

static void deadline_after(struct timespec *ts, double queued, long wait_ns)
{
    /* queued is CLOCK_MONOTONIC seconds (gtr_now_seconds); the condition uses the same clock */
    double t = queued + (double)wait_ns * 1e-9;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool grow(gs_worker *w)
{
    size_t c = w->n_cap ? 2 * w->n_cap : 64;
    const int32_t **ids = realloc(w->ids, c * sizeof *ids);
    if (ids) w->ids = ids;
    size_t *n_ids = realloc(w->n_ids, c * sizeof *n_ids);
    if (n_ids) w->n_ids = n_ids;
    size_t *index = realloc(w->index, c * sizeof *index);
    if (index) w->index = index;
    gs_job **owner = realloc(w->owner, c * sizeof *owner);
    if (owner) w->owner = owner;
    if (!ids || !n_ids || !index || !owner) return false;
    w->n_cap = c;
    return true;
}

/* Take texts from the front of the queue (lock held). Returns the number of requests with
 * texts in the batch. */
static size_t form_batch(gs_worker *w, size_t *tokens)
{
    gs_batcher *b = w->b;
    size_t t = 0, requests = 0;
    w->n = 0;
    while (b->head) {
        gs_job *j = b->head;
        bool took = false;
        while (j->next < j->n) {
            size_t len = j->n_ids[j->next];
            if (w->n > 0 && t + len > b->max_tokens) goto full;
            if (w->n == w->n_cap && !grow(w)) goto full; /* out of memory: a smaller batch */
            w->ids[w->n] = j->ids[j->next];
            w->n_ids[w->n] = len;
            w->index[w->n] = j->next;
            w->owner[w->n] = j;
            w->n++;
            t += len;
            b->pending_tokens -= len;
            j->next++;
            took = true;
        }
        requests += took;
        b->head = j->link; /* every text of j is in a batch now */
        if (!b->head) b->tail = NULL;
        continue;
    full:
        requests += took;
        break;
    }
    *tokens = t;
    return requests;
}

static void finish_batch(gs_worker *w, gtr_status st, const gtr_error *e)
{
    gs_batcher *b = w->b;
    for (size_t i = 0; i < w->n; i++) {
        gs_job *j = w->owner[i];
        if (st) {
            if (!j->status) {
                j->status = st;
                j->err = *e;
            }
        } else {
            memcpy(j->out + w->index[i] * b->dim, w->out + i * b->dim, b->dim * sizeof(float));
        }
        if (++j->done == j->n) {
            j->finished = true;
            b->jobs--;
            pthread_cond_signal(&j->cv);
        }
    }
    b->texts -= w->n;
    w->n = 0;
}

static void *batcher_main(void *arg)
{
    gs_worker *w = arg;
    gs_batcher *b = w->b;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->closed) pthread_cond_wait(&b->wake, &b->mu);
        if (!b->head) break; /* closed and nothing left */
        /* wait for a fuller batch, until the oldest queued text's deadline */
        struct timespec dl;
        deadline_after(&dl, b->head->t_queued, b->max_wait_ns);
        while (!b->closed && b->head && b->pending_tokens < b->max_tokens && b->expected > 0)
            if (pthread_cond_timedwait(&b->wake, &b->mu, &dl) == ETIMEDOUT) break;
        if (!b->head) continue;
        size_t tokens;
        size_t requests = form_batch(w, &tokens);
        pthread_mutex_unlock(&b->mu);

        gtr_error e = {0};
        gtr_status st = GTR_OK;
        double t0 = gtr_now_seconds();
        if (w->n * b->dim > w->out_cap) {
            float *o = realloc(w->out, w->n * b->dim * sizeof *o);
            if (o) {
                w->out = o;
                w->out_cap = w->n * b->dim;
            } else {
                st = gtr_seterr(&e, GTR_ERR_NOMEM, "out of memory for a batch of %zu texts", w->n);
            }
        }
        if (!st) st = gtr_context_encode_ids(w->ctx, w->ids, w->n_ids, w->n, w->out, &e);
        double secs = gtr_now_seconds() - t0;
        gs_metrics_batch(b->metrics, w->n, tokens, requests, secs);

        pthread_mutex_lock(&b->mu);
        finish_batch(w, st, &e);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void worker_free(gs_worker *w)
{
    gtr_context_free(w->ctx);
    free(w->ids);
    free(w->n_ids);
    free(w->index);
    free(w->owner);
    free(w->out);
}

gs_batcher *gs_batcher_start(gtr_model *m, int workers, size_t max_batch_tokens, int max_wait_ms,
                             size_t queue_cap, gs_metrics *metrics, gtr_error *err)
{
    if (workers < 1) workers = 1;
    gs_batcher *b = gtr_xcalloc(1, sizeof *b, "batcher", err);
    if (!b) return NULL;
    b->model = m;
    b->dim = (size_t)gtr_model_dim(m);
    b->max_tokens = max_batch_tokens;
    b->max_wait_ns = (long)max_wait_ms * 1000000L;
    b->cap = queue_cap;
    b->metrics = metrics;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (!(b->w = gtr_xcalloc((size_t)workers, sizeof *b->w, "encoder workers", err))) {
        gs_batcher_free(b);
        return NULL;
    }
    b->n_workers = workers;
    /* one worker computes on the model's pool (as gtr_model_encode would); several share the
     * cores out, each a pool of its own */
    int per = workers > 1 ? GTR_MAX(1, gtr_pool_size(m->pool) / workers) : 0;
    for (int i = 0; i < workers; i++) {
        gs_worker *w = &b->w[i];
        w->b = b;
        gtr_context_options o = gtr_context_default_options();
        o.n_threads = per;
        if (!(w->ctx = gtr_context_create(m, &o, err))) {
            gtr_error_prefix(err, "encoder worker %d", i);
            gs_batcher_free(b);
            return NULL;
        }
        gtr_context_set_interrupt(w->ctx, &b->abort);
        if (!grow(w) || pthread_create(&w->thread, NULL, batcher_main, w) != 0) {
            gtr_seterr(err, GTR_ERR_NOMEM, "cannot start encoder worker %d", i);
            gs_batcher_free(b);
            return NULL;
        }
        w->started = true;
    }
    return b;
}

void gs_batcher_abort(gs_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    atomic_store(&b->abort, 1); /* every worker's context stops at its next half layer */
    for (gs_job *j = b->head; j; j = j->link) {
        size_t left = j->n - j->next;
        for (size_t i = j->next; i < j->n; i++) b->pending_tokens -= j->n_ids[i];
        b->texts -= left;
        j->next = j->n;
        j->done += left;
        if (!j->status) {
            j->status = GTR_ERR_INTERRUPTED;
            gtr_seterr(&j->err, GTR_ERR_INTERRUPTED, "the server is shutting down");
        }
        if (j->done == j->n) { /* none of its texts is in the batch being encoded */
            j->finished = true;
            b->jobs--;
            pthread_cond_signal(&j->cv);
        }
    }
    b->head = b->tail = NULL;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

void gs_batcher_free(gs_batcher *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_workers; i++)
        if (b->w[i].started) pthread_join(b->w[i].thread, NULL);
    for (int i = 0; i < b->n_workers; i++) worker_free(&b->w[i]);
    free(b->w);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void gs_batcher_announce(gs_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->expected++;
    pthread_mutex_unlock(&b->mu);
}

void gs_batcher_withdraw(gs_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->expected && --b->expected == 0) pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

gs_submit_result gs_batcher_submit(gs_batcher *b, gs_job *job, bool announced)
{
    job->next = job->done = 0;
    job->finished = job->n == 0;
    job->status = GTR_OK;
    job->err.code = GTR_OK;
    job->err.message[0] = '\0';
    job->link = NULL;
    job->t_queued = gtr_now_seconds();
    size_t tokens = 0;
    for (size_t i = 0; i < job->n; i++) tokens += job->n_ids[i];
    pthread_mutex_lock(&b->mu);
    if (announced && b->expected) b->expected--;
    gs_submit_result res = b->closed ? GS_SUBMIT_CLOSED : b->jobs >= b->cap ? GS_SUBMIT_FULL : GS_SUBMIT_OK;
    if (res == GS_SUBMIT_OK && job->n) {
        pthread_cond_init(&job->cv, NULL);
        if (b->tail) b->tail->link = job;
        else b->head = job;
        b->tail = job;
        b->jobs++;
        b->texts += job->n;
        b->pending_tokens += tokens;
    }
    /* a new job, or one fewer request on its way: the batcher re-decides */
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
    return res;
}

gtr_status gs_batcher_wait(gs_batcher *b, gs_job *job, gtr_error *err)
{
    if (job->n == 0) return GTR_OK;
    pthread_mutex_lock(&b->mu);
    while (!job->finished) pthread_cond_wait(&job->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&job->cv);
    if (job->status && err) *err = job->err;
    return job->status;
}

void gs_batcher_depth(gs_batcher *b, size_t *jobs, size_t *texts, size_t *expected)
{
    pthread_mutex_lock(&b->mu);
    *jobs = b->jobs;
    *texts = b->texts;
    if (expected) *expected = b->expected;
    pthread_mutex_unlock(&b->mu);
}
